/*
 * result.c - the result model behind sa_result / sa_score.
 *
 * A result is one allocation (an arena): the sa_result header, the score
 * array, the mask URL pointer arrays and every string, laid out in that
 * order.  It is built in two passes over the parsed JSON by the same walker:
 * the first pass only measures, the second copies.  The allocator is copied
 * into the result so that it can be freed after its client is gone.
 * Two things live outside the arena because they arrive after it is built:
 * the raw JSON text (sa_result_set_raw_json: the caller hands over the byte
 * range of data.results in the response body, so nothing is re-printed)
 * and the result files (sa_result_add_file: one allocation per file, name
 * and bytes together, plus a growable array of them).
 *
 * Shapes accepted (shared/API.md §6):
 *   - format json: results.output[] entries {type, region?, raw_score?,
 *     ui_score?, score?, skin_type?, mask_urls?}; "all" gives the overall
 *     score, "skin_age" the skin age, "resize_image" the resized image URL;
 *     every other type (known or not) is kept as a score, a missing region
 *     is "whole".  A bare array is taken as the output list.  Elements that
 *     are not objects with a string type are skipped, but a list with none
 *     is no result (SA_ERR_PROTOCOL, as results of any other type).
 *   - format zip: results {"url": ...} or a bare string: the ZIP URL.
 *   - score_info.json: one key per concern, {raw_score, ui_score,
 *     output_mask_name} or a map region -> that object; "all": {score} (or a
 *     number); "skin_age": a number (or {score}).  Other shapes are skipped.
 * Numbers may arrive as numeric strings and nulls are ignored everywhere.
 */
#include "sa_internal.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

/* One file of a result, in one allocation (block): the bytes then the
 * NUL-terminated name, or, for a file written to disk, the name then the
 * path (no bytes).  A file taken over by a scrubbed copy
 * (sa_result_scrub_take) whose name or path showed the key keeps its
 * block and has its scrubbed name (then path) in `names`. */
typedef struct sa_result_file {
    unsigned char *data;   /* the bytes; NULL for a file on disk */
    size_t len;
    const char *name;
    const char *path;      /* a file on disk: where it is; else NULL */
    void *block;
    char *names;           /* own name (and path), or NULL */
    int format;
} sa_result_file;

struct sa_result {
    sa_mem mem; /* copy of the allocator (has_mem) */
    int has_mem;
    int format;
    size_t count;
    sa_score *scores;
    double overall;
    double skin_age;
    const char *resize_url;
    const char *zip_url;  /* in the arena, or zip_url_own */
    char *zip_url_own;   /* set by sa_result_set_zip_url, own allocation */
    char *json;          /* raw JSON text, own allocation, or NULL */
    const char *task_id;
    sa_result_file *files; /* n_files used of cap_files */
    size_t n_files, cap_files;
};

#define ARENA_ALIGN (_Alignof(max_align_t))

static size_t align_up(size_t n)
{
    return (n + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
}

/* The walker's state: counters that advance the same way in both passes,
 * and the arena areas (NULL while measuring). */
typedef struct builder {
    const char *secret;  /* hidden in every string copied (sa__scrub) */
    size_t n_scores, n_urls, n_bytes;
    int overflow;        /* sizes too large to represent */
    sa_score *scores;    /* pass 2 areas */
    const char **urls;
    char *bytes;
    double overall, skin_age;
    const char *resize_url, *zip_url;
    int have_overall, have_skin_age;
} builder;

static void builder_reset(builder *b, const char *secret)
{
    memset(b, 0, sizeof *b);
    b->secret = secret;
    b->overall = NAN;
    b->skin_age = NAN;
}

/* Reserve (and in pass 2 copy) a string; NULL stays NULL. */
static const char *b_str(builder *b, const char *s)
{
    size_t n;
    char *dst;
    if (!s) return NULL;
    n = (b->secret ? sa__scrub_len(s, b->secret) : strlen(s)) + 1;
    if (n > SIZE_MAX - b->n_bytes) {
        b->overflow = 1;
        return NULL;
    }
    dst = b->bytes ? b->bytes + b->n_bytes : NULL;
    if (dst && b->secret) sa__scrub(dst, s, b->secret);
    else if (dst) memcpy(dst, s, n);
    b->n_bytes += n;
    return dst;
}

static double item_number(const cJSON *obj, const char *key)
{
    double v;
    return sa_json_number(obj, key, &v) ? v : NAN;
}

/* Mask URLs: an array of strings (others skipped) or a single string. */
static size_t add_urls(builder *b, const cJSON *urls, const char ***first)
{
    const cJSON *u;
    size_t n = 0;
    *first = b->urls ? b->urls + b->n_urls : NULL;
    if (!urls) return 0;
    if (cJSON_IsString(urls)) {
        const char *s = b_str(b, urls->valuestring);
        if (b->urls) b->urls[b->n_urls] = s;
        b->n_urls++;
        return 1;
    }
    if (!cJSON_IsArray(urls)) return 0;
    cJSON_ArrayForEach(u, urls) {
        const char *s;
        if (!cJSON_IsString(u)) continue;
        s = b_str(b, u->valuestring);
        if (b->urls) b->urls[b->n_urls] = s;
        b->n_urls++;
        n++;
    }
    return n;
}

/* One scored entry from a JSON object `e` (output[] entry or score_info
 * leaf). */
static void add_score(builder *b, const char *concern, const char *region,
                      const cJSON *e)
{
    sa_score *s = b->scores ? &b->scores[b->n_scores] : NULL;
    const char **urls;
    const char *c = b_str(b, concern);
    const char *r = region ? b_str(b, region) : "whole";
    const char *st = b_str(b, sa_json_string(e, "skin_type"));
    const char *mn = b_str(b, sa_json_string(e, "output_mask_name"));
    size_t nu = add_urls(b, sa_json_get(e, "mask_urls"), &urls);

    if (s) {
        s->concern = c;
        s->region = r;
        s->raw_score = item_number(e, "raw_score");
        s->ui_score = item_number(e, "ui_score");
        s->skin_type = st;
        s->mask_name = mn;
        s->mask_urls = nu ? urls : NULL;
        s->n_mask_urls = nu;
    }
    b->n_scores++;
}

/* The first string of mask_urls (or a "url" string) of an entry. */
static const char *entry_first_url(const cJSON *e)
{
    const cJSON *urls = sa_json_get(e, "mask_urls"), *u;
    if (cJSON_IsString(urls)) return urls->valuestring;
    if (cJSON_IsArray(urls)) {
        cJSON_ArrayForEach(u, urls) {
            if (cJSON_IsString(u)) return u->valuestring;
        }
    }
    return sa_json_string(e, "url");
}

static void set_overall(builder *b, double v)
{
    if (b->have_overall) return;
    b->overall = v;
    b->have_overall = 1;
}

static void set_skin_age(builder *b, double v)
{
    if (b->have_skin_age) return;
    b->skin_age = v;
    b->have_skin_age = 1;
}

static void walk_output(builder *b, const cJSON *output)
{
    const cJSON *e;
    double v;
    cJSON_ArrayForEach(e, output) {
        const char *type = sa_json_string(e, "type");
        if (!type) continue;
        if (strcmp(type, "all") == 0) {
            if (sa_json_number(e, "score", &v)) set_overall(b, v);
        } else if (strcmp(type, "skin_age") == 0) {
            if (sa_json_number(e, "score", &v)) set_skin_age(b, v);
        } else if (strcmp(type, "resize_image") == 0) {
            if (!b->resize_url) b->resize_url = entry_first_url(e);
        } else {
            add_score(b, type, sa_json_string(e, "region"), e);
        }
    }
}

/* An object that carries a score (a score_info leaf). */
static int is_score_object(const cJSON *o)
{
    return cJSON_IsObject(o) &&
           (sa_json_get(o, "raw_score") || sa_json_get(o, "ui_score") ||
            sa_json_get(o, "output_mask_name") ||
            sa_json_get(o, "skin_type"));
}

/* A bare number or an object with "score". */
static int score_value(const cJSON *item, double *v)
{
    if (cJSON_IsObject(item)) return sa_json_number(item, "score", v);
    return sa_json_as_number(item, v);
}

static void walk_score_info(builder *b, const cJSON *root)
{
    const cJSON *item, *sub;
    double v;
    cJSON_ArrayForEach(item, root) {
        const char *key = item->string;
        if (!key || cJSON_IsNull(item)) continue;
        if (strcmp(key, "all") == 0) {
            if (score_value(item, &v)) set_overall(b, v);
        } else if (strcmp(key, "skin_age") == 0) {
            if (score_value(item, &v)) set_skin_age(b, v);
        } else if (is_score_object(item)) {
            add_score(b, key, NULL, item);
        } else if (cJSON_IsObject(item)) {
            cJSON_ArrayForEach(sub, item) {
                if (sub->string && is_score_object(sub))
                    add_score(b, key, sub->string, sub);
            }
        }
    }
}

/* Copy the scores of an existing result (sa_result_clone). */
static void walk_clone(builder *b, const sa_result *src)
{
    size_t i, j;
    for (i = 0; i < src->count; i++) {
        const sa_score *from = &src->scores[i];
        sa_score *s = b->scores ? &b->scores[b->n_scores] : NULL;
        const char **urls = b->urls ? b->urls + b->n_urls : NULL;
        const char *c = b_str(b, from->concern);
        const char *r = b_str(b, from->region);
        const char *st = b_str(b, from->skin_type);
        const char *mn = b_str(b, from->mask_name);
        for (j = 0; j < from->n_mask_urls; j++) {
            const char *u = b_str(b, from->mask_urls[j]);
            if (b->urls) b->urls[b->n_urls] = u;
            b->n_urls++;
        }
        if (s) {
            *s = *from;
            s->concern = c;
            s->region = r;
            s->skin_type = st;
            s->mask_name = mn;
            s->mask_urls = from->n_mask_urls ? urls : NULL;
        }
        b->n_scores++;
    }
    b->resize_url = src->resize_url;
    b->zip_url = src->zip_url;
    b->overall = src->overall;
    b->skin_age = src->skin_age;
}

enum walk_kind { WALK_OUTPUT, WALK_ZIP, WALK_SCORE_INFO, WALK_CLONE };

/* What a result is built from: a cJSON node, a bare ZIP URL or a result. */
typedef struct source {
    int kind;              /* walk_kind */
    const cJSON *node;     /* OUTPUT, SCORE_INFO */
    const char *zip;       /* ZIP */
    const sa_result *src;  /* CLONE */
} source;

static void walk(builder *b, const source *from)
{
    switch (from->kind) {
    case WALK_OUTPUT: walk_output(b, from->node); break;
    case WALK_SCORE_INFO: walk_score_info(b, from->node); break;
    case WALK_ZIP: b->zip_url = from->zip; break;
    default: walk_clone(b, from->src); break;
    }
}

static int result_format(const source *from)
{
    if (from->kind == WALK_CLONE) return from->src->format;
    return from->kind == WALK_OUTPUT ? SA_FORMAT_JSON : SA_FORMAT_ZIP;
}

/* Arena offsets of the score array, URL array and string bytes. */
typedef struct layout {
    size_t scores, urls, bytes, total;
} layout;

static int plan(const builder *b, layout *l)
{
    if (b->overflow || b->n_scores > (SIZE_MAX / 2) / sizeof(sa_score) ||
        b->n_urls > (SIZE_MAX / 2) / sizeof(char *))
        return SA_ERR_NOMEM;
    l->scores = align_up(sizeof(sa_result));
    l->urls = l->scores + align_up(b->n_scores * sizeof(sa_score));
    l->bytes = l->urls + align_up(b->n_urls * sizeof(char *));
    if (b->n_bytes > SIZE_MAX - l->bytes) return SA_ERR_NOMEM;
    l->total = l->bytes + b->n_bytes;
    return SA_OK;
}

/* Measure, allocate one arena, fill it (every string scrubbed of
 * secret when it is not NULL). */
static int build(const sa_mem *mem, const source *from, const char *task_id,
                 const char *secret, sa_result **out)
{
    builder b;
    layout l;
    char *base;
    sa_result *r;

    builder_reset(&b, secret);
    walk(&b, from);
    b_str(&b, b.resize_url);
    b_str(&b, b.zip_url);
    b_str(&b, task_id);
    if (plan(&b, &l) != SA_OK) return SA_ERR_NOMEM;
    base = sa__malloc(mem, l.total);
    if (!base) return SA_ERR_NOMEM;

    r = (sa_result *)(void *)base;
    memset(r, 0, sizeof *r);
    builder_reset(&b, secret);
    b.scores = (sa_score *)(void *)(base + l.scores);
    b.urls = (const char **)(void *)(base + l.urls);
    b.bytes = base + l.bytes;
    walk(&b, from);
    r->resize_url = b_str(&b, b.resize_url);
    r->zip_url = b_str(&b, b.zip_url);
    r->task_id = b_str(&b, task_id);

    if (mem) {
        r->mem = *mem;
        r->has_mem = 1;
    }
    r->format = result_format(from);
    r->count = b.n_scores;
    r->scores = b.n_scores ? b.scores : NULL;
    r->overall = b.overall;
    r->skin_age = b.skin_age;
    *out = r;
    return SA_OK;
}

/* Entries of an output list the walker reads: objects with a string
 * "type" (the rest is skipped). */
static size_t output_entries(const cJSON *output)
{
    const cJSON *e;
    size_t n = 0;
    cJSON_ArrayForEach(e, output) {
        if (sa_json_string(e, "type")) n++;
    }
    return n;
}

/* data.results without its raw text: the caller (sa_proto_parse_status)
 * adds it with sa_result_set_raw_json from the body it parsed.  One rule
 * for every shape: a success must carry a result, a ZIP URL or at least
 * one output entry; what the reader cannot use inside a list is skipped,
 * and data.results that yields neither (12345, [], [1,2,3], {}) is a
 * protocol error. */
int sa_result_from_results(const sa_mem *mem, const cJSON *results,
                           const char *task_id, sa_result **out, char *err,
                           size_t errlen)
{
    source from = {WALK_OUTPUT, NULL, NULL, NULL};

    *out = NULL;
    if (!results || cJSON_IsNull(results)) {
        sa__errf(err, errlen, "task succeeded but data.results is missing");
        return SA_ERR_PROTOCOL;
    }
    if (cJSON_IsString(results) && results->valuestring[0]) {
        from.kind = WALK_ZIP;
        from.zip = results->valuestring;
    } else if (cJSON_IsArray(results)) {
        from.node = results;
    } else if (cJSON_IsArray(sa_json_get(results, "output"))) {
        from.node = sa_json_get(results, "output");
    } else if (sa_json_string(results, "url") &&
               sa_json_string(results, "url")[0]) {
        from.kind = WALK_ZIP;
        from.zip = sa_json_string(results, "url");
    } else {
        sa__errf(err, errlen,
                 "data.results has neither an output[] list nor a url");
        return SA_ERR_PROTOCOL;
    }
    if (from.kind == WALK_OUTPUT && output_entries(from.node) == 0) {
        sa__errf(err, errlen, "data.results has no output entry (an object "
                 "with a type): no result");
        return SA_ERR_PROTOCOL;
    }
    return build(mem, &from, task_id, NULL, out);
}

int sa_result_from_score_info(const sa_mem *mem, const cJSON *root,
                              const char *task_id, sa_result **out, char *err,
                              size_t errlen)
{
    source from = {WALK_SCORE_INFO, NULL, NULL, NULL};

    *out = NULL;
    if (!cJSON_IsObject(root)) {
        sa__errf(err, errlen, "score_info.json is not a JSON object");
        return SA_ERR_PROTOCOL;
    }
    from.node = root;
    return build(mem, &from, task_id, NULL, out);
}

static const sa_mem *result_mem(const sa_result *r)
{
    return r->has_mem ? &r->mem : NULL;
}

/* Replace the raw JSON text by a copy of text[0..len). */
int sa_result_set_raw_json(sa_result *r, const char *text, size_t len)
{
    char *copy;
    if (!r || !text || len == SIZE_MAX) return SA_ERR_INVALID_ARGUMENT;
    copy = sa__malloc(result_mem(r), len + 1);
    if (!copy) return SA_ERR_NOMEM;
    memcpy(copy, text, len);
    copy[len] = '\0';
    sa__free(result_mem(r), r->json);
    r->json = copy;
    return SA_OK;
}

/* The fallback when the raw text cannot be located: cJSON's printing. */
int sa_result_set_json_item(sa_result *r, const cJSON *item)
{
    char *text;
    int rc;
    if (!r || !item) return SA_ERR_INVALID_ARGUMENT;
    text = cJSON_PrintUnformatted(item);
    if (!text) return SA_ERR_NOMEM;
    rc = sa_result_set_raw_json(r, text, strlen(text));
    cJSON_free(text);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Files, clones and URLs                                              */
/* ------------------------------------------------------------------ */

#define RESULT_MAX_FILES 100000

int sa_result_sniff_format(const void *data, size_t len)
{
    const unsigned char *p = data;
    static const unsigned char png[8] = {0x89, 'P', 'N', 'G',
                                         '\r', '\n', 0x1a, '\n'};
    if (len >= 8 && memcmp(p, png, 8) == 0) return SA_IMAGE_PNG;
    if (len >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF)
        return SA_IMAGE_JPEG;
    return SA_IMAGE_UNKNOWN;
}

static int grow_files(sa_result *r)
{
    sa_result_file *files;
    size_t cap;
    if (r->n_files < r->cap_files) return SA_OK;
    if (r->n_files >= RESULT_MAX_FILES) return SA_ERR_LIMIT;
    cap = r->cap_files ? r->cap_files * 2 : 8;
    files = sa__realloc(result_mem(r), r->files, cap * sizeof *files);
    if (!files) return SA_ERR_NOMEM;
    r->files = files;
    r->cap_files = cap;
    return SA_OK;
}

/* Append a file whose block holds the bytes (len) then the name. */
static void push_file(sa_result *r, unsigned char *block, size_t len)
{
    sa_result_file *f = &r->files[r->n_files++];
    f->block = block;
    f->data = block;
    f->len = len;
    f->name = (const char *)block + len;
    f->path = NULL;
    f->names = NULL;
    f->format = sa_result_sniff_format(block, len);
}

int sa_result_add_file(sa_result *r, const char *name, const void *data,
                       size_t len)
{
    unsigned char *block;
    size_t nlen;
    int rc;

    if (!r || !name || (!data && len)) return SA_ERR_INVALID_ARGUMENT;
    nlen = strlen(name);
    if (len > SIZE_MAX - nlen - 1) return SA_ERR_NOMEM;
    rc = grow_files(r);
    if (rc != SA_OK) return rc;
    block = sa__malloc(result_mem(r), len + nlen + 1);
    if (!block) return SA_ERR_NOMEM;
    if (len) memcpy(block, data, len);
    memcpy(block + len, name, nlen + 1);
    push_file(r, block, len);
    return SA_OK;
}

int sa_result_add_file_owned(sa_result *r, const char *name, char *data,
                             size_t len)
{
    unsigned char *block;
    size_t nlen;
    int rc;

    if (!r || !name) {
        if (r) sa__free(result_mem(r), data);
        return SA_ERR_INVALID_ARGUMENT;
    }
    nlen = strlen(name);
    rc = len > SIZE_MAX - nlen - 1 ? SA_ERR_NOMEM : grow_files(r);
    /* the name goes after the bytes: no copy of the bytes (realloc keeps
     * them where they are, or moves a block it can) */
    block = rc == SA_OK ? sa__realloc(result_mem(r), data, len + nlen + 1)
                        : NULL;
    if (!block) {
        sa__free(result_mem(r), data);
        return rc == SA_OK ? SA_ERR_NOMEM : rc;
    }
    memcpy(block + len, name, nlen + 1);
    push_file(r, block, len);
    return SA_OK;
}

/* name then path in one new block (names of f), or NULL on NOMEM. */
static char *name_path_block(const sa_mem *mem, const char *name,
                             const char *path)
{
    size_t nlen = strlen(name), plen = path ? strlen(path) : 0;
    char *block;

    if (plen > SIZE_MAX - nlen - 2) return NULL;
    block = sa__malloc(mem, nlen + plen + 2);
    if (!block) return NULL;
    memcpy(block, name, nlen + 1);
    if (path) memcpy(block + nlen + 1, path, plen + 1);
    else block[nlen + 1] = '\0';
    return block;
}

int sa_result_add_file_path(sa_result *r, const char *name, const char *path,
                            int format)
{
    sa_result_file *f;
    char *block;
    int rc;

    if (!r || !name || !path) return SA_ERR_INVALID_ARGUMENT;
    rc = grow_files(r);
    if (rc != SA_OK) return rc;
    block = name_path_block(result_mem(r), name, path);
    if (!block) return SA_ERR_NOMEM;
    f = &r->files[r->n_files++];
    memset(f, 0, sizeof *f);
    f->block = block;
    f->data = NULL;
    f->len = 0;
    f->name = block;
    f->path = block + strlen(name) + 1;
    f->format = format;
    return SA_OK;
}

/* The raw JSON (scrubbed of secret when not NULL). */
static int copy_json(sa_result *dst, const sa_result *src, const char *secret)
{
    const sa_mem *mem = result_mem(dst);
    char *tmp;
    int rc;

    if (!src->json) return SA_OK;
    tmp = secret ? sa__scrub_dup(mem, src->json, secret) : NULL;
    if (secret && !tmp) return SA_ERR_NOMEM;
    rc = sa_result_set_raw_json(dst, tmp ? tmp : src->json,
                                strlen(tmp ? tmp : src->json));
    sa__free(mem, tmp);
    return rc;
}

/* The files of src, copied into dst (names, and the paths of files on
 * disk, scrubbed of secret when not NULL; the bytes of a file held in
 * memory are copied as they are; a file on disk stays a name and a
 * path). */
static int copy_files(sa_result *dst, const sa_result *src,
                      const char *secret)
{
    const sa_mem *mem = result_mem(dst);
    char *name, *path;
    size_t i;
    int rc = SA_OK;

    for (i = 0; rc == SA_OK && i < src->n_files; i++) {
        const sa_result_file *f = &src->files[i];
        name = secret ? sa__scrub_dup(mem, f->name, secret) : NULL;
        path = secret && f->path ? sa__scrub_dup(mem, f->path, secret)
                                 : NULL;
        if (secret && (!name || (f->path && !path))) {
            sa__free(mem, name);
            sa__free(mem, path);
            return SA_ERR_NOMEM;
        }
        rc = f->path ? sa_result_add_file_path(dst, name ? name : f->name,
                                               path ? path : f->path,
                                               f->format)
                     : sa_result_add_file(dst, name ? name : f->name,
                                          f->data, f->len);
        sa__free(mem, name);
        sa__free(mem, path);
    }
    return rc;
}

/* The scores, URLs and JSON of src (scrubbed of secret when not NULL),
 * and its files when with_files. */
static int clone_with(const sa_mem *mem, const sa_result *src,
                      const char *secret, int with_files, sa_result **out)
{
    source from = {WALK_CLONE, NULL, NULL, NULL};
    int rc;

    from.src = src;
    rc = build(mem, &from, src->task_id, secret, out);
    if (rc != SA_OK) return rc;
    rc = copy_json(*out, src, secret);
    if (rc == SA_OK && with_files) rc = copy_files(*out, src, secret);
    if (rc != SA_OK) {
        sa_result_free(*out);
        *out = NULL;
    }
    return rc;
}

static int clone_result(const sa_mem *mem, const sa_result *src,
                        int with_files, sa_result **out)
{
    if (!out) return SA_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!src) return SA_ERR_INVALID_ARGUMENT;
    return clone_with(mem, src, NULL, with_files, out);
}

/* 1 when a string of r (scores, URLs, task id, raw JSON, file names and
 * paths) holds something sa__scrub hides. */
static int result_has_secret(const sa_result *r, const char *secret)
{
    size_t i, j;
    for (i = 0; i < r->count; i++) {
        const sa_score *s = &r->scores[i];
        if (sa__has_secret(s->concern, secret)
            || sa__has_secret(s->region, secret)
            || sa__has_secret(s->skin_type, secret)
            || sa__has_secret(s->mask_name, secret))
            return 1;
        for (j = 0; j < s->n_mask_urls; j++)
            if (sa__has_secret(s->mask_urls[j], secret)) return 1;
    }
    for (i = 0; i < r->n_files; i++)
        if (sa__has_secret(r->files[i].name, secret)
            || sa__has_secret(r->files[i].path, secret))
            return 1;
    return sa__has_secret(r->resize_url, secret)
        || sa__has_secret(r->zip_url, secret)
        || sa__has_secret(r->task_id, secret)
        || sa__has_secret(r->json, secret);
}

int sa_result_scrub(const sa_mem *mem, const sa_result *src,
                    const char *secret, sa_result **out)
{
    if (!out) return SA_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!src || !secret || !*secret || !result_has_secret(src, secret))
        return SA_OK;
    return clone_with(mem, src, secret, 1, out);
}

int sa_result_scrub_take(const sa_mem *mem, sa_result *src,
                         const char *secret, sa_result **out)
{
    sa_result *copy = NULL;
    char **names = NULL;
    size_t i, n;
    int rc;

    if (!out) return SA_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!src || !secret || !*secret || !result_has_secret(src, secret))
        return SA_OK;
    rc = clone_with(mem, src, secret, 0, &copy);
    if (rc != SA_OK) return rc;
    n = src->n_files;
    /* the new names first: on NOMEM src keeps its files */
    if (n > 0) {
        names = sa__calloc(mem, n, sizeof *names);
        if (!names) rc = SA_ERR_NOMEM;
    }
    for (i = 0; rc == SA_OK && i < n; i++) {
        const sa_result_file *f = &src->files[i];
        char *name, *path = NULL;
        if (!sa__has_secret(f->name, secret) &&
            !sa__has_secret(f->path, secret))
            continue;
        name = sa__scrub_dup(mem, f->name, secret);
        if (name && f->path) path = sa__scrub_dup(mem, f->path, secret);
        if (name && (path || !f->path))
            names[i] = name_path_block(mem, name, path);
        if (!names[i]) rc = SA_ERR_NOMEM;
        sa__free(mem, name);
        sa__free(mem, path);
    }
    if (rc != SA_OK) {
        for (i = 0; names && i < n; i++) sa__free(mem, names[i]);
        sa__free(mem, names);
        sa_result_free(copy);
        return rc;
    }
    /* the files change hands: their bytes are never copied */
    copy->files = src->files;
    copy->n_files = src->n_files;
    copy->cap_files = src->cap_files;
    src->files = NULL;
    src->n_files = src->cap_files = 0;
    for (i = 0; i < n; i++) {
        sa_result_file *f = &copy->files[i];
        if (!names[i]) continue;
        f->names = names[i];
        f->name = names[i];
        if (f->path) f->path = names[i] + strlen(names[i]) + 1;
    }
    sa__free(mem, names);
    *out = copy;
    return SA_OK;
}

int sa_result_clone(const sa_mem *mem, const sa_result *src,
                    sa_result **out)
{
    return clone_result(mem, src, 1, out);
}

int sa_result_clone_scores(const sa_mem *mem, const sa_result *src,
                           sa_result **out)
{
    return clone_result(mem, src, 0, out);
}

const char *sa_result_url_at(const sa_result *r, size_t index)
{
    size_t i, n = 0;
    if (!r) return NULL;
    for (i = 0; i < r->count; i++) {
        if (index < n + r->scores[i].n_mask_urls)
            return r->scores[i].mask_urls[index - n];
        n += r->scores[i].n_mask_urls;
    }
    return index == n ? r->resize_url : NULL;
}

size_t sa_result_urls(const sa_result *r, const char **urls, size_t max)
{
    size_t i, j, n = 0;
    if (!r) return 0;
    for (i = 0; i < r->count; i++) {
        for (j = 0; j < r->scores[i].n_mask_urls; j++, n++) {
            if (urls && n < max) urls[n] = r->scores[i].mask_urls[j];
        }
    }
    if (r->resize_url) {
        if (urls && n < max) urls[n] = r->resize_url;
        n++;
    }
    return n;
}

/* The last segment of the URL's path: after "scheme://authority", cut at
 * '?' or '#'.  Sets *start / *n (n = 0 when the URL has no path). */
static void url_last_segment(const char *url, const char **start, size_t *n)
{
    const char *p = strstr(url, "://"), *end, *seg;
    if (p) {
        p += 3 + strcspn(p + 3, "/?#"); /* the authority ends here */
        if (*p != '/') p += strlen(p);  /* no path at all */
    } else {
        p = url;
    }
    end = p + strcspn(p, "?#");
    seg = end;
    while (seg > p && seg[-1] != '/') seg--;
    *start = seg;
    *n = (size_t)(end - seg);
}

void sa_url_file_name(const char *url, char *buf, size_t len)
{
    const char *seg;
    size_t n, i;

    if (!buf || len == 0) return;
    buf[0] = '\0';
    if (!url) return;
    url_last_segment(url, &seg, &n);
    if (n == 0 || n >= len) return;
    if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' &&
                                      seg[1] == '.'))
        return;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)seg[i];
        if (c < 0x20 || c == 0x7f || c == '\\') return;
    }
    memcpy(buf, seg, n);
    buf[n] = '\0';
}

const char *sa_result_find_url(const sa_result *r, const char *file_name)
{
    size_t i, j;
    char name[256];

    if (!r || !file_name || !file_name[0]) return NULL;
    for (i = 0; i < r->count; i++) {
        for (j = 0; j < r->scores[i].n_mask_urls; j++) {
            sa_url_file_name(r->scores[i].mask_urls[j], name, sizeof name);
            if (strcmp(name, file_name) == 0) return r->scores[i].mask_urls[j];
        }
    }
    if (r->resize_url) {
        sa_url_file_name(r->resize_url, name, sizeof name);
        if (strcmp(name, file_name) == 0) return r->resize_url;
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Public API                                                          */
/* ------------------------------------------------------------------ */

#define PARSE_MAX_DEPTH 64

int sa_result_parse(const char *json, size_t len, int kind, sa_result **out)
{
    sa_status_info si;
    cJSON *root;
    char err[256];
    int rc;

    if (!out) return SA_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!json) return SA_ERR_INVALID_ARGUMENT;
    if (kind == SA_PARSE_SCORE_INFO) {
        rc = sa_json_parse(json, len, PARSE_MAX_DEPTH, &root);
        if (rc != SA_OK) return rc;
        rc = sa_result_from_score_info(NULL, root, NULL, out, err,
                                       sizeof err);
        cJSON_Delete(root);
        if (rc == SA_OK) rc = sa_result_set_raw_json(*out, json, len);
        if (rc != SA_OK) {
            sa_result_free(*out);
            *out = NULL;
        }
        return rc;
    }
    if (kind != SA_PARSE_STATUS_BODY) return SA_ERR_INVALID_ARGUMENT;
    rc = sa_proto_parse_status(NULL, json, len, PARSE_MAX_DEPTH, NULL, &si,
                               err, sizeof err);
    if (rc != SA_OK) return rc;
    if (si.task_status == SA_TASK_SUCCESS) {
        *out = si.result;
        si.result = NULL;
        rc = SA_OK;
    } else {
        rc = si.task_status == SA_TASK_ERROR ? SA_ERR_ENGINE
                                             : SA_ERR_NOT_DONE;
    }
    sa_status_info_free(NULL, &si);
    return rc;
}

void sa_result_free(sa_result *r)
{
    sa_mem mem;
    const sa_mem *m = NULL;
    size_t i;
    if (!r) return;
    if (r->has_mem) {
        mem = r->mem; /* r->mem goes away with the arena */
        m = &mem;
    }
    for (i = 0; i < r->n_files; i++) {
        sa__free(m, r->files[i].block);
        sa__free(m, r->files[i].names);
    }
    sa__free(m, r->files);
    sa__free(m, r->json);
    sa__free(m, r->zip_url_own);
    sa__free(m, r);
}

int sa_result_set_zip_url(sa_result *r, const char *url)
{
    char *copy;
    if (!r || !url) return SA_ERR_INVALID_ARGUMENT;
    copy = sa__strdup(r->has_mem ? &r->mem : NULL, url);
    if (!copy) return SA_ERR_NOMEM;
    sa__free(r->has_mem ? &r->mem : NULL, r->zip_url_own);
    r->zip_url_own = copy;
    r->zip_url = copy;
    return SA_OK;
}

int sa_result_format(const sa_result *r)
{
    return r ? r->format : SA_FORMAT_JSON;
}

size_t sa_result_count(const sa_result *r)
{
    return r ? r->count : 0;
}

const sa_score *sa_result_score(const sa_result *r, size_t i)
{
    return (r && i < r->count) ? &r->scores[i] : NULL;
}

static const sa_score *find_score(const sa_result *r, const char *concern,
                                  const char *region)
{
    size_t i;
    for (i = 0; i < r->count; i++) {
        const sa_score *s = &r->scores[i];
        if (strcmp(s->concern, concern) == 0 && strcmp(s->region, region) == 0)
            return s;
    }
    return NULL;
}

const sa_score *sa_result_get(const sa_result *r, const char *concern,
                              const char *region)
{
    const sa_score *s;
    const char *other;
    if (!r || !concern) return NULL;
    if (!region) region = "whole";
    s = find_score(r, concern, region);
    if (s) return s;
    other = sa_action_counterpart(concern); /* the bindings' rule too */
    return other ? find_score(r, other, region) : NULL;
}

double sa_result_overall(const sa_result *r)
{
    return r ? r->overall : NAN;
}

double sa_result_skin_age(const sa_result *r)
{
    return r ? r->skin_age : NAN;
}

const char *sa_result_resize_image_url(const sa_result *r)
{
    return r ? r->resize_url : NULL;
}

const char *sa_result_zip_url(const sa_result *r)
{
    return r ? r->zip_url : NULL;
}

const char *sa_result_json(const sa_result *r)
{
    return r ? r->json : NULL;
}

size_t sa_result_file_count(const sa_result *r)
{
    return r ? r->n_files : 0;
}

const char *sa_result_file_name(const sa_result *r, size_t i)
{
    return (r && i < r->n_files) ? r->files[i].name : NULL;
}

const void *sa_result_file_data(const sa_result *r, size_t i, size_t *len)
{
    if (!r || i >= r->n_files) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = r->files[i].len;
    return r->files[i].data;
}

int sa_result_file_format(const sa_result *r, size_t i)
{
    return (r && i < r->n_files) ? r->files[i].format : SA_IMAGE_UNKNOWN;
}

const char *sa_result_file_path(const sa_result *r, size_t i)
{
    return (r && i < r->n_files) ? r->files[i].path : NULL;
}

int sa_file_is_mask(const char *name, const void *data, size_t len,
                    const char *resize_image_url)
{
    char rz[SA_FILE_NAME_MAX];

    if (!name || !data || sa_result_sniff_format(data, len) ==
                              SA_IMAGE_UNKNOWN)
        return 0;
    if (resize_image_url &&
        sa_file_name_clean(resize_image_url, rz, sizeof rz) == SA_OK &&
        strcmp(name, rz) == 0)
        return 0;
    return 1;
}

/* NULL when the result was parsed without a task id (sa_result_parse). */
const char *sa_result_task_id(const sa_result *r)
{
    return r ? r->task_id : NULL;
}
