/*
 * lsa_result.c - results as plain Lua tables with a small metatable
 * (result:get, result:file, result:save_masks, result:composite,
 * result:compare), and
 * core.parse_result / core.parse_zip.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "lsa.h"

static void lsa_field_string(lua_State *L, const char *key, const char *v)
{
    if (v != NULL) {
        lua_pushstring(L, v);
        lua_setfield(L, -2, key);
    }
}

/* NaN means absent: the field stays nil. */
static void lsa_field_number(lua_State *L, const char *key, double v)
{
    if (isnan(v))
        return;
    lua_pushnumber(L, (lua_Number)v);
    lua_setfield(L, -2, key);
}

/* ui_score (and skin_age) are integers when present: keep them integers
 * in Lua when they are integral. */
static void lsa_field_integral(lua_State *L, const char *key, double v)
{
    if (isnan(v))
        return;
    if (v == floor(v) && fabs(v) < 9007199254740992.0)
        lua_pushinteger(L, (lua_Integer)v);
    else
        lua_pushnumber(L, (lua_Number)v);
    lua_setfield(L, -2, key);
}

static void lsa_push_score(lua_State *L, const sa_score *s)
{
    size_t i;

    lua_createtable(L, 0, 8);
    lsa_field_string(L, "concern", s->concern);
    lsa_field_string(L, "region", s->region != NULL ? s->region : "whole");
    lsa_field_number(L, "raw_score", s->raw_score);
    lsa_field_integral(L, "ui_score", s->ui_score);
    lsa_field_string(L, "skin_type", s->skin_type);
    lsa_field_string(L, "mask_name", s->mask_name);
    lua_createtable(L, (int)s->n_mask_urls, 0);
    for (i = 0; i < s->n_mask_urls; i++) {
        if (s->mask_urls[i] == NULL)
            continue;
        lua_pushstring(L, s->mask_urls[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "mask_urls");
}

static const char *lsa_image_format_name(int format)
{
    if (format == SA_IMAGE_PNG)
        return "png";
    if (format == SA_IMAGE_JPEG)
        return "jpeg";
    return NULL;
}

/* Push the array of the result's files: {name=, data=, format=} for a
 * file held in memory, {name=, path=, format=} for one written into a
 * folder. */
static void lsa_push_files(lua_State *L, const sa_result *r)
{
    size_t i, n = sa_result_file_count(r);
    lua_Integer k = 0;

    lua_createtable(L, (int)n, 0);
    for (i = 0; i < n; i++) {
        const char *name = sa_result_file_name(r, i);
        const char *path = sa_result_file_path(r, i);
        size_t len = 0;
        const void *data = sa_result_file_data(r, i, &len);

        if (name == NULL || (data == NULL && path == NULL))
            continue;
        lua_createtable(L, 0, 3);
        lsa_field_string(L, "name", name);
        if (path != NULL) {
            lsa_field_string(L, "path", path);
        } else {
            lua_pushlstring(L, data, len);
            lua_setfield(L, -2, "data");
        }
        lsa_field_string(L, "format",
                         lsa_image_format_name(sa_result_file_format(r, i)));
        lua_rawseti(L, -2, ++k);
    }
}

void lsa_push_result(lua_State *L, const sa_result *r)
{
    size_t i, n = sa_result_count(r);
    lua_Integer k = 0;

    lua_createtable(L, 0, 10);
    luaL_setmetatable(L, LSA_RESULT_MT);
    lsa_field_string(L, "format",
                     sa_result_format(r) == SA_FORMAT_ZIP ? "zip" : "json");
    lsa_field_string(L, "task_id", sa_result_task_id(r));
    lsa_field_number(L, "overall", sa_result_overall(r));
    lsa_field_integral(L, "skin_age", sa_result_skin_age(r));
    lsa_field_string(L, "resize_image_url", sa_result_resize_image_url(r));
    lsa_field_string(L, "zip_url", sa_result_zip_url(r));
    lsa_field_string(L, "json", sa_result_json(r));
    lua_createtable(L, (int)n, 0);
    for (i = 0; i < n; i++) {
        const sa_score *s = sa_result_score(r, i);
        if (s == NULL)
            continue;
        lsa_push_score(L, s);
        lua_rawseti(L, -2, ++k);
    }
    lua_setfield(L, -2, "scores");
    lsa_push_files(L, r);
    lua_setfield(L, -2, "files");
}

/* 1 when field `key` of the table on the top is the string `want`. */
static int lsa_field_is(lua_State *L, const char *key, const char *want)
{
    int same;

    if (want == NULL)
        return 0;
    same = lua_getfield(L, -1, key) == LUA_TSTRING &&
           strcmp(lua_tostring(L, -1), want) == 0;
    lua_pop(L, 1);
    return same;
}

/* result:get(concern [, region]): the score table, or nil.  region
 * defaults to "whole"; an SD name finds its HD counterpart and back. */
static int lsa_result_get(lua_State *L)
{
    const char *concern, *region, *alias;
    lua_Integer i, n;

    luaL_checktype(L, 1, LUA_TTABLE);
    concern = luaL_checkstring(L, 2);
    region = luaL_optstring(L, 3, "whole");
    /* the rule sa_result_get uses: "wrinkle" also finds "hd_wrinkle" */
    alias = sa_action_counterpart(concern);
    lua_settop(L, 3);
    if (lua_getfield(L, 1, "scores") != LUA_TTABLE)
        return 0;
    n = (lua_Integer)lua_rawlen(L, 4);
    for (i = 1; i <= n; i++) {
        if (lua_rawgeti(L, 4, i) == LUA_TTABLE &&
            (lsa_field_is(L, "concern", concern) ||
             lsa_field_is(L, "concern", alias)) &&
            lsa_field_is(L, "region", region))
            return 1;
        lua_pop(L, 1);
    }
    return 0;
}

static int lsa_result_tostring(lua_State *L)
{
    lua_Integer n = 0;

    luaL_checktype(L, 1, LUA_TTABLE);
    if (lua_getfield(L, 1, "scores") == LUA_TTABLE)
        n = (lua_Integer)lua_rawlen(L, -1);
    lua_getfield(L, 1, "task_id");
    lua_pushfstring(L, "task %s, %I scores",
                    lua_isstring(L, -1) ? lua_tostring(L, -1) : "?", n);
    return lsa_tostring(L, LSA_RESULT_MT, lua_topointer(L, 1),
                        lua_tostring(L, -1));
}

/* ------------------------------------------------------------------ */
/* The job behind a result                                             */
/* ------------------------------------------------------------------ */

/* Registry key (its address) of the table that maps a result table to the
 * job userdata that produced it.  The keys are weak (an ephemeron table):
 * the job lives as long as its result is reachable, and a result that only
 * its job's cached end refers to goes with the job.  Kept out of the
 * result's fields, so serialising a result never meets a handle. */
static const char lsa_result_jobs_key = 'r';

static void lsa_push_result_jobs(lua_State *L)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &lsa_result_jobs_key) == LUA_TTABLE)
        return;
    lua_pop(L, 1);
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &lsa_result_jobs_key);
}

void lsa_result_link(lua_State *L, int ri, int ji)
{
    ri = lua_absindex(L, ri);
    ji = lua_absindex(L, ji);
    lsa_push_result_jobs(L);
    lua_pushvalue(L, ri);
    lua_pushvalue(L, ji);
    lua_rawset(L, -3);
    lua_pop(L, 1);
}

/* Push the job userdata linked to the result at ri (or nil); returns its
 * Lua type. */
static int lsa_result_job(lua_State *L, int ri)
{
    ri = lua_absindex(L, ri);
    lsa_push_result_jobs(L);
    lua_pushvalue(L, ri);
    lua_rawget(L, -2);
    lua_remove(L, -2);
    return lua_type(L, -1);
}

/* ------------------------------------------------------------------ */
/* Files: lookup, saving, composites                                   */
/* ------------------------------------------------------------------ */

/* The last path segment of s (up to a '?' or '#' when `url`), with its
 * length in *len. */
static const char *lsa_base_name(const char *s, int url, size_t *len)
{
    const char *start = s, *p;

    for (p = s; *p != '\0' && !(url && (*p == '?' || *p == '#')); p++) {
        if (*p == '/')
            start = p + 1;
    }
    *len = (size_t)(p - start);
    return start;
}

/* Push the result's files array (field "files" of the table at ri), an
 * empty table when it has none; returns its length. */
static lua_Integer lsa_push_result_files(lua_State *L, int ri)
{
    if (lua_getfield(L, ri, "files") != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
    }
    return (lua_Integer)lua_rawlen(L, -1);
}

/* result:file(name): the file table {name=, data=, format=} whose name (or
 * whose name's last path segment) is `name`, or nil. */
static int lsa_result_file(lua_State *L)
{
    size_t want_len, base_len;
    const char *want, *name, *base;
    lua_Integer i, n;

    luaL_checktype(L, 1, LUA_TTABLE);
    want = luaL_checklstring(L, 2, &want_len);
    lua_settop(L, 2);
    n = lsa_push_result_files(L, 1); /* 3 */
    for (i = 1; i <= n; i++) {
        if (lua_rawgeti(L, 3, i) == LUA_TTABLE &&
            lua_getfield(L, -1, "name") == LUA_TSTRING) {
            name = lua_tostring(L, -1);
            base = lsa_base_name(name, 0, &base_len);
            if (strcmp(name, want) == 0 ||
                (base_len == want_len && memcmp(base, want, want_len) == 0)) {
                lua_pop(L, 1);
                return 1;
            }
        }
        lua_settop(L, 3);
    }
    return 0;
}

/* The number of files of the files array on the top held in memory (with
 * data). */
static lua_Integer lsa_files_in_memory(lua_State *L)
{
    lua_Integer i, n = (lua_Integer)lua_rawlen(L, -1), k = 0;

    for (i = 1; i <= n; i++) {
        if (lua_rawgeti(L, -1, i) == LUA_TTABLE &&
            lua_getfield(L, -1, "data") == LUA_TSTRING)
            k++;
        lua_pop(L, lua_type(L, -1) == LUA_TTABLE ? 1 : 2);
    }
    return k;
}

/* Make sure the result at ri has its files in memory: when it has none,
 * download them through the job that produced it (blocking, at most
 * timeout_ms; at most the client's max_files_bytes) and store them in its
 * "files" field.  Returns 0, or pushes nil, message, code (and the files
 * that arrived) and returns 3 or 4. */
static int lsa_result_need_files(lua_State *L, int ri, long timeout_ms)
{
    int n, top = lua_gettop(L);

    lsa_push_result_files(L, ri);
    if (lsa_files_in_memory(L) > 0) {
        lua_pop(L, 1);
        return 0;
    }
    lua_pop(L, 1);
    if (lsa_result_job(L, ri) != LUA_TUSERDATA) {
        lua_pop(L, 1);
        return lsa_push_error(L, SA_ERR_INVALID_ARGUMENT,
                              "this result has no files and no job to "
                              "download its masks through");
    }
    n = lsa_fetch_files(L, lua_gettop(L), NULL, timeout_ms);
    if (n != 1)
        return n;
    lua_setfield(L, ri, "files");
    lua_settop(L, top);
    return 0;
}

/* The paths of the files array at fi (files written into a folder) as a
 * new array on the top. */
static void lsa_push_paths(lua_State *L, int fi)
{
    lua_Integer i, n = (lua_Integer)lua_rawlen(L, fi), k = 0;

    fi = lua_absindex(L, fi);
    lua_createtable(L, (int)n, 0);
    for (i = 1; i <= n; i++) {
        if (lua_rawgeti(L, fi, i) == LUA_TTABLE &&
            lua_getfield(L, -1, "path") == LUA_TSTRING) {
            lua_rawseti(L, -3, ++k);
            lua_pop(L, 1);
        } else {
            lua_pop(L, lua_type(L, -1) == LUA_TTABLE ? 1 : 2);
        }
    }
}

/* A box is a userdata holding one pointer to a core object it owns: its
 * __gc (defined here) frees the object once, so a Lua error while the
 * object is converted cannot leak it. */
#define LSA_BOX_GC(fname, type, free_fn, mt)                              \
    static int fname(lua_State *L)                                        \
    {                                                                     \
        type **box = luaL_checkudata(L, 1, mt);                           \
                                                                          \
        free_fn(*box);                                                    \
        *box = NULL;                                                      \
        return 0;                                                         \
    }

/* A sa_folder for the Lua stack: closed by __gc. */
#define LSA_FOLDER_BOX "skinanalysis.folder_box"
LSA_BOX_GC(lsa_folder_box_gc, sa_folder, sa_folder_free, LSA_FOLDER_BOX)

/* Write every file held in memory of the files array at fi into folder,
 * through the core (sa_folder_write: names cleaned and unique, no file
 * replaced or followed); push the array of written paths and return 1,
 * or nil, message, code and return 3. */
static int lsa_write_files(lua_State *L, int fi, const char *folder)
{
    lua_Integer i, n = (lua_Integer)lua_rawlen(L, fi), k = 0;
    char err[512], written[SA_FILE_NAME_MAX];
    sa_folder **box;
    size_t flen = strlen(folder);
    int out, rc;

    fi = lua_absindex(L, fi);
    box = lua_newuserdatauv(L, sizeof(*box), 0);
    *box = NULL;
    luaL_setmetatable(L, LSA_FOLDER_BOX);
    rc = sa_folder_open(folder, box, err, sizeof err);
    if (rc != SA_OK)
        return lsa_push_error(L, rc, err);
    lua_createtable(L, (int)n, 0);
    out = lua_gettop(L);
    for (i = 1; i <= n; i++) {
        size_t len;
        const char *data;

        if (lua_rawgeti(L, fi, i) != LUA_TTABLE ||
            lua_getfield(L, -1, "name") != LUA_TSTRING ||
            lua_getfield(L, -2, "data") != LUA_TSTRING) {
            lua_settop(L, out);
            continue;
        }
        data = lua_tolstring(L, -1, &len);
        rc = sa_folder_write(*box, lua_tostring(L, -2), data, len, written,
                             sizeof written, err, sizeof err);
        if (rc != SA_OK)
            return lsa_push_error(L, rc, err);
        lua_pushlstring(L, folder, flen);
        lua_pushstring(L, folder[flen - 1] == '/' ? "" : "/");
        lua_pushstring(L, written);
        lua_concat(L, 3);
        lua_rawseti(L, out, ++k);
        lua_settop(L, out);
    }
    return 1;
}

/* result:save_masks(folder [, timeout]): write the result's files into
 * the existing folder: the files it holds, written through the core; or,
 * for a JSON result without files, downloaded through the result's job
 * straight into the folder (never held in memory).  The array of written
 * paths, or nil, message, code and, when some files failed, the array of
 * those written. */
static int lsa_result_save_masks(lua_State *L)
{
    const char *folder;
    long ms;
    int n;

    luaL_checktype(L, 1, LUA_TTABLE);
    folder = luaL_checkstring(L, 2);
    luaL_argcheck(L, folder[0] != '\0', 2, "folder expected, got \"\"");
    ms = lsa_timeout_arg(L, 3);
    lua_settop(L, 2);
    lsa_push_result_files(L, 1); /* 3 */
    if (lsa_files_in_memory(L) > 0)
        return lsa_write_files(L, 3, folder);
    if (lsa_result_job(L, 1) != LUA_TUSERDATA)
        return lsa_push_error(L, SA_ERR_INVALID_ARGUMENT,
                              "this result has no files and no job to "
                              "download its masks through");
    n = lsa_fetch_files(L, 4, folder, ms);
    if (n == 1) {
        lsa_push_paths(L, -1);
        return 1;
    }
    if (n == 4) {
        lsa_push_paths(L, -1);
        lua_replace(L, -2);
    }
    return n;
}

/* Most bytes read from a composite's source image. */
#define LSA_SOURCE_MAX ((size_t)64 * 1024 * 1024)

/* Push the contents of the file at path; returns SA_OK, or SA_ERR_FILE
 * (missing, unreadable, larger than LSA_SOURCE_MAX) with nothing pushed. */
static int lsa_push_file_contents(lua_State *L, const char *path)
{
    FILE *f = fopen(path, "rb");
    luaL_Buffer b;
    size_t got, total = 0;
    int ok;

    if (f == NULL)
        return SA_ERR_FILE;
    luaL_buffinit(L, &b);
    do {
        char *p = luaL_prepbuffer(&b);
        got = fread(p, 1, LUAL_BUFFERSIZE, f);
        luaL_addsize(&b, got);
        total += got;
    } while (got == LUAL_BUFFERSIZE && total <= LSA_SOURCE_MAX);
    ok = !ferror(f) && total <= LSA_SOURCE_MAX;
    fclose(f);
    luaL_pushresult(&b);
    if (!ok) {
        lua_pop(L, 1);
        return SA_ERR_FILE;
    }
    return SA_OK;
}

/* 1 when the file table on the top is a mask image (sa_file_is_mask: an
 * image other than the resized input, whose URL is rz). */
static int lsa_is_mask_file(lua_State *L, const char *rz)
{
    const char *name = NULL, *data = NULL;
    size_t len = 0;
    int mask;

    if (lua_getfield(L, -1, "name") == LUA_TSTRING)
        name = lua_tostring(L, -1);
    if (lua_getfield(L, -2, "data") == LUA_TSTRING)
        data = lua_tolstring(L, -1, &len);
    mask = sa_file_is_mask(name, data, len, rz);
    lua_pop(L, 2);
    return mask;
}

/* The concern of the mask file `name` of the result at ri, for its tint
 * (sa_concern_color): the score naming it (mask_name, or the core's file
 * name of one of its mask_urls), else the longest action name the file
 * name starts with; NULL when none fits.  The string is the score
 * table's (referenced by the result) or the catalogue's. */
static const char *lsa_mask_concern(lua_State *L, int ri, const char *name)
{
    const char *found = NULL, *best = NULL;
    char clean[SA_FILE_NAME_MAX];
    lua_Integer i, j, n;
    size_t k, best_len = 0;
    int top = lua_gettop(L);

    if (name == NULL)
        return NULL;
    if (lua_getfield(L, ri, "scores") == LUA_TTABLE) {
        n = (lua_Integer)lua_rawlen(L, -1);
        for (i = 1; i <= n && found == NULL; i++) {
            /* top + 2: the score, top + 3: its concern */
            if (lua_rawgeti(L, top + 1, i) == LUA_TTABLE &&
                lua_getfield(L, top + 2, "concern") == LUA_TSTRING) {
                const char *concern = lua_tostring(L, top + 3);
                lua_pushvalue(L, top + 2);
                if (lsa_field_is(L, "mask_name", name))
                    found = concern;
                lua_pop(L, 1);
                if (found == NULL &&
                    lua_getfield(L, top + 2, "mask_urls") == LUA_TTABLE) {
                    lua_Integer m = (lua_Integer)lua_rawlen(L, -1);
                    for (j = 1; j <= m && found == NULL; j++) {
                        if (lua_rawgeti(L, -1, j) == LUA_TSTRING &&
                            sa_file_name_clean(lua_tostring(L, -1), clean,
                                               sizeof clean) == SA_OK &&
                            strcmp(clean, name) == 0)
                            found = concern;
                        lua_pop(L, 1);
                    }
                }
            }
            lua_settop(L, top + 1);
        }
    }
    lua_settop(L, top);
    if (found != NULL)
        return found;
    for (k = 0; k < sa_action_count(); k++) {
        const char *a = sa_action_name(k);
        size_t len = strlen(a);
        if (len > best_len && strncmp(name, a, len) == 0) {
            best = a;
            best_len = len;
        }
    }
    return best;
}

/* Collect the mask images of the files array at fi into masks/lens and
 * their concerns (held by a userdata pushed on the stack; the strings
 * stay referenced by the files and scores tables).  Returns the count. */
static size_t lsa_collect_masks(lua_State *L, int ri, int fi,
                                const void ***masks, size_t **lens,
                                const char ***concerns)
{
    size_t n = (size_t)lua_rawlen(L, fi), k = 0;
    const char *rz = NULL;
    lua_Integer i;
    void *block;
    int top;

    /* stays referenced by the result table at ri */
    if (lua_getfield(L, ri, "resize_image_url") == LUA_TSTRING)
        rz = lua_tostring(L, -1);
    lua_pop(L, 1);
    block = lua_newuserdatauv(L, (n > 0 ? n : 1) *
                                     (2 * sizeof(void *) + sizeof(size_t)), 0);
    *masks = block;
    *concerns = (const char **)(void *)((char *)block + (n > 0 ? n : 1) *
                                                            sizeof(void *));
    *lens = (size_t *)(void *)((char *)block + (n > 0 ? n : 1) * 2 *
                                                   sizeof(void *));
    top = lua_gettop(L);
    for (i = 1; i <= (lua_Integer)n; i++) {
        if (lua_rawgeti(L, fi, i) == LUA_TTABLE &&
            lsa_is_mask_file(L, rz) &&
            lua_getfield(L, -1, "data") == LUA_TSTRING) {
            (*masks)[k] = lua_tolstring(L, -1, &(*lens)[k]);
            lua_getfield(L, -2, "name");
            (*concerns)[k] = lsa_mask_concern(L, ri, lua_tostring(L, -1));
            k++;
        }
        lua_settop(L, top);
    }
    return k;
}

/* result:composite(source_path, out_path [, timeout]): write one PNG, the
 * source image with every mask blended over it, each in its concern's
 * colour (sa_concern_color, as Python's legends) (downloading the masks
 * first through the result's job when the result has no files); out_path,
 * or nil, message, code. */
static int lsa_result_composite(lua_State *L)
{
    const char *source_path, *out_path, *source;
    const void **masks;
    const char **concerns;
    size_t *lens, n, source_len;
    char err[256];
    long ms;
    int rc;

    luaL_checktype(L, 1, LUA_TTABLE);
    source_path = luaL_checkstring(L, 2);
    out_path = luaL_checkstring(L, 3);
    ms = lsa_timeout_arg(L, 4);
    lua_settop(L, 3);
    rc = lsa_push_file_contents(L, source_path); /* 4 */
    if (rc != SA_OK)
        return lsa_push_error(L, rc, lua_pushfstring(L, "cannot read %s",
                                                     source_path));
    source = lua_tolstring(L, 4, &source_len);
    rc = lsa_result_need_files(L, 1, ms);
    if (rc != 0)
        return rc;
    lsa_push_result_files(L, 1); /* 5 */
    n = lsa_collect_masks(L, 1, 5, &masks, &lens, &concerns);
    if (n == 0)
        return lsa_push_error(L, SA_ERR_INVALID_ARGUMENT,
                              "the result has no mask images");
    err[0] = '\0';
    rc = sa_composite_write_concerns(source, source_len, masks, lens,
                                     concerns, n, 0, out_path, err,
                                     sizeof err);
    if (rc != SA_OK)
        return lsa_push_error(L, rc, err);
    lua_pushvalue(L, 3);
    return 1;
}

/* ------------------------------------------------------------------ */
/* result:compare(other)                                               */
/* ------------------------------------------------------------------ */

/* A comparison waiting to be converted: the box owns it, so a Lua error
 * (out of memory) while building the tables cannot leak it. */
#define LSA_COMPARISON_BOX "skinanalysis.comparison_box"
LSA_BOX_GC(lsa_comparison_box_gc, sa_comparison, sa_comparison_free,
           LSA_COMPARISON_BOX)

static double lsa_number_field(lua_State *L, int t, const char *key)
{
    double v = NAN;
    if (lua_getfield(L, t, key) == LUA_TNUMBER)
        v = (double)lua_tonumber(L, -1);
    lua_pop(L, 1);
    return v;
}

/* The scores of the result table at ri as an sa_scores view; the array
 * is a userdata pushed on the stack, the strings stay referenced by the
 * result's own score tables.  Entries without a concern are skipped. */
static void lsa_scores_view(lua_State *L, int ri, sa_scores *out)
{
    size_t n, k = 0;
    lua_Integer i;
    sa_score *list;
    int st, top;

    out->overall = lsa_number_field(L, ri, "overall");
    out->skin_age = lsa_number_field(L, ri, "skin_age");
    if (lua_getfield(L, ri, "scores") != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
    }
    st = lua_gettop(L);
    n = (size_t)lua_rawlen(L, st);
    list = lua_newuserdatauv(L, (n > 0 ? n : 1) * sizeof *list, 0);
    memset(list, 0, (n > 0 ? n : 1) * sizeof *list);
    top = lua_gettop(L);
    for (i = 1; i <= (lua_Integer)n; i++) {
        sa_score *sc = &list[k];
        if (lua_rawgeti(L, st, i) != LUA_TTABLE ||
            lua_getfield(L, -1, "concern") != LUA_TSTRING) {
            lua_settop(L, top);
            continue;
        }
        sc->concern = lua_tostring(L, -1);
        lua_pop(L, 1);
        sc->region = lua_getfield(L, -1, "region") == LUA_TSTRING
                         ? lua_tostring(L, -1) : "whole";
        lua_pop(L, 1);
        sc->skin_type = lua_getfield(L, -1, "skin_type") == LUA_TSTRING
                            ? lua_tostring(L, -1) : NULL;
        lua_pop(L, 1);
        sc->raw_score = lsa_number_field(L, -1, "raw_score");
        sc->ui_score = lsa_number_field(L, -1, "ui_score");
        k++;
        lua_settop(L, top);
    }
    out->scores = list;
    out->count = k;
}

static void lsa_push_change(lua_State *L, const sa_change *ch)
{
    lua_createtable(L, 0, 12);
    lsa_field_string(L, "concern", ch->concern);
    lsa_field_string(L, "region", ch->region);
    lsa_field_number(L, "before", ch->ui_before);
    lsa_field_number(L, "after", ch->ui_after);
    lsa_field_number(L, "ui_change", ch->ui_change);
    lsa_field_number(L, "raw_before", ch->raw_before);
    lsa_field_number(L, "raw_after", ch->raw_after);
    lsa_field_number(L, "raw_change", ch->raw_change);
    lsa_field_string(L, "skin_type_before", ch->skin_type_before);
    lsa_field_string(L, "skin_type_after", ch->skin_type_after);
    lua_pushboolean(L, ch->in_before);
    lua_setfield(L, -2, "in_before");
    lua_pushboolean(L, ch->in_after);
    lua_setfield(L, -2, "in_after");
}

/* result:compare(other): what changed from this result (before) to other
 * (after), by the core (sa_scores_compare): {changes = {{concern, region,
 * before, after, ui_change, raw_before, raw_after, raw_change,
 * skin_type_before, skin_type_after, in_before, in_after}, ...},
 * overall = {...}, skin_age = {...}}; absent numbers are nil.  Or nil,
 * message, code. */
static int lsa_result_compare(lua_State *L)
{
    sa_scores before, after;
    sa_comparison **box;
    size_t i, n;
    int rc;

    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    lsa_scores_view(L, 1, &before); /* 3, 4: scores, array */
    lsa_scores_view(L, 2, &after);  /* 5, 6 */
    box = lua_newuserdatauv(L, sizeof(*box), 0);
    *box = NULL;
    luaL_setmetatable(L, LSA_COMPARISON_BOX);
    rc = sa_scores_compare(&before, &after, box);
    if (rc != SA_OK)
        return lsa_push_error(L, rc, NULL);
    n = sa_comparison_count(*box);
    lua_createtable(L, 0, 3);
    lua_createtable(L, (int)n, 0);
    for (i = 0; i < n; i++) {
        lsa_push_change(L, sa_comparison_change(*box, i));
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "changes");
    lsa_push_change(L, sa_comparison_overall(*box));
    lua_setfield(L, -2, "overall");
    lsa_push_change(L, sa_comparison_skin_age(*box));
    lua_setfield(L, -2, "skin_age");
    return 1;
}

int lsa_concern_color(lua_State *L)
{
    unsigned char rgb[3];
    size_t len;
    const char *name = luaL_checklstring(L, 1, &len);

    luaL_argcheck(L, strlen(name) == len, 1, "embedded NUL");
    sa_concern_color(name, rgb);
    lua_pushinteger(L, rgb[0]);
    lua_pushinteger(L, rgb[1]);
    lua_pushinteger(L, rgb[2]);
    return 3;
}

/* A parsed result waiting to be converted: the box owns it, so a Lua
 * error (out of memory) during the conversion cannot leak it. */
#define LSA_RESULT_BOX "skinanalysis.result_box"
LSA_BOX_GC(lsa_result_box_gc, sa_result, sa_result_free, LSA_RESULT_BOX)

int lsa_parse_result(lua_State *L)
{
    static const char *const kinds[] = {"status", "score_info", NULL};
    size_t len;
    const char *json = luaL_checklstring(L, 1, &len);
    int kind = luaL_checkoption(L, 2, "status", kinds);
    sa_result **box;
    int rc;

    lua_settop(L, 2);
    box = lua_newuserdatauv(L, sizeof(*box), 0);
    *box = NULL;
    luaL_setmetatable(L, LSA_RESULT_BOX);
    rc = sa_result_parse(json, len,
                         kind == 0 ? SA_PARSE_STATUS_BODY : SA_PARSE_SCORE_INFO,
                         box);
    if (rc != SA_OK)
        return lsa_push_error(L, rc, NULL);
    lsa_push_result(L, *box);
    sa_result_free(*box);
    *box = NULL;
    return 1;
}

/* core.parse_zip(bytes [, max_entry_bytes]): a result table with files
 * from a result ZIP, or nil, msg, code. */
int lsa_parse_zip(lua_State *L)
{
    size_t len;
    const char *zip = luaL_checklstring(L, 1, &len);
    lua_Integer max = luaL_optinteger(L, 2, 0);
    sa_result **box;
    char err[256];
    int rc;

    luaL_argcheck(L, max >= 0 && max <= INT32_MAX, 2, "0..2^31-1 expected");
    lua_settop(L, 2);
    box = lua_newuserdatauv(L, sizeof(*box), 0);
    *box = NULL;
    luaL_setmetatable(L, LSA_RESULT_BOX);
    err[0] = '\0';
    rc = sa_result_parse_zip(zip, len, (size_t)max, box, err, sizeof err);
    if (rc != SA_OK)
        return lsa_push_error(L, rc, err);
    lsa_push_result(L, *box);
    sa_result_free(*box);
    *box = NULL;
    return 1;
}

/* The metatable of a box: only its __gc. */
static void lsa_box_class(lua_State *L, const char *mt, lua_CFunction gc)
{
    luaL_newmetatable(L, mt);
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
}

void lsa_result_register(lua_State *L)
{
    static const luaL_Reg methods[] = {{"get", lsa_result_get},
                                      {"file", lsa_result_file},
                                      {"save_masks", lsa_result_save_masks},
                                      {"composite", lsa_result_composite},
                                      {"compare", lsa_result_compare},
                                      {NULL, NULL}};

    lsa_new_class(L, LSA_RESULT_MT, NULL, lsa_result_tostring, methods);
    lsa_box_class(L, LSA_RESULT_BOX, lsa_result_box_gc);
    lsa_box_class(L, LSA_COMPARISON_BOX, lsa_comparison_box_gc);
    lsa_box_class(L, LSA_FOLDER_BOX, lsa_folder_box_gc);
}
