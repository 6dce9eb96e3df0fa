/*
 * lsa_module.c - luaopen_skinanalysis_core and the module-level functions
 * of the Lua binding (catalogue, costs, image probing, status names,
 * webhook verification).
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lsa.h"

/* Registry key (its address) of the sa_global_init sentinel of a state. */
static const char lsa_init_key = 'i';

int lsa_push_error(lua_State *L, int status, const char *msg)
{
    lua_pushnil(L);
    lua_pushstring(L, (msg != NULL && msg[0] != '\0') ? msg
                                                      : sa_strerror(status));
    lua_pushstring(L, sa_status_name(status));
    return 3;
}

long long lsa_now_ms(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0;
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long lsa_timeout_arg(lua_State *L, int idx)
{
    long ms;

    if (lua_isnoneornil(L, idx))
        return -1;
    ms = lsa_seconds_to_ms(L, luaL_checknumber(L, idx), "timeout");
    return ms < 0 ? -1 : ms;
}

const char *lsa_option_name(lua_State *L)
{
    if (lua_type(L, -2) != LUA_TSTRING)
        luaL_error(L, "option names must be strings, got %s",
                   luaL_typename(L, -2));
    return lua_tostring(L, -2);
}

long lsa_seconds_to_ms(lua_State *L, lua_Number s, const char *what)
{
    /* 10^9 ms is about 11.5 days: more than any deadline needs, and it
     * fits in a 32-bit long. */
    if (!(s == s) || s > 1e6 || s < -1e6)
        luaL_error(L, "%s: %f seconds is out of range", what, (double)s);
    return (long)floor(s * 1000.0 + 0.5);
}

int lsa_check_api_version(lua_State *L, int idx, const char *what)
{
    if (lua_type(L, idx) == LUA_TNUMBER) {
        lua_Number v = lua_tonumber(L, idx);
        if (v == 20 || v == 2.0)
            return SA_API_V2_0;
        if (v == 21 || v == 2.1)
            return SA_API_V2_1;
    } else if (lua_type(L, idx) == LUA_TSTRING) {
        const char *s = lua_tostring(L, idx);
        if (s[0] == 'v' || s[0] == 'V')
            s++;
        if (strcmp(s, "2.0") == 0 || strcmp(s, "20") == 0)
            return SA_API_V2_0;
        if (strcmp(s, "2.1") == 0 || strcmp(s, "21") == 0)
            return SA_API_V2_1;
    }
    return luaL_error(L, "%s: expected API version \"2.0\" or \"2.1\"", what);
}

void lsa_new_class(lua_State *L, const char *tname, lua_CFunction close,
                   lua_CFunction tostring, const luaL_Reg *methods)
{
    luaL_newmetatable(L, tname);
    if (lua_getfield(L, -1, "__lsa_complete") == LUA_TBOOLEAN) {
        /* The module was opened before in this state (require after
         * package.loaded was cleared): keep the existing class, which live
         * objects and the facade's added methods share. */
        lua_pop(L, 2);
        return;
    }
    lua_pop(L, 1);
    /* New, or left half-built by a memory error during an earlier open. */
    lua_pushcfunction(L, tostring);
    lua_setfield(L, -2, "__tostring");
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    if (close != NULL) {
        /* obj:close(), __close and __gc are one function */
        lua_pushcfunction(L, close);
        lua_setfield(L, -2, "close");
        lua_getfield(L, -1, "close");
        lua_setfield(L, -3, "__close");
        lua_getfield(L, -1, "close");
        lua_setfield(L, -3, "__gc");
    }
    lua_setfield(L, -2, "__index");
    lua_pushstring(L, tname);
    lua_setfield(L, -2, "__name");
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "__lsa_complete");
    lua_pop(L, 1);
}

int lsa_tostring(lua_State *L, const char *tname, const void *self,
                 const char *detail)
{
    lua_pushfstring(L, "%s (%s): %p", tname, detail, self);
    return 1;
}

const char **lsa_check_actions(lua_State *L, int idx, size_t *n)
{
    const char **names;
    lua_Integer i, len;

    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) == LUA_TSTRING) {
        names = lua_newuserdatauv(L, sizeof(*names), 0);
        names[0] = lua_tostring(L, idx);
        *n = 1;
        return names;
    }
    if (lua_type(L, idx) != LUA_TTABLE)
        luaL_error(L, "actions: table of action names expected, got %s",
                   luaL_typename(L, idx));
    len = (lua_Integer)lua_rawlen(L, idx);
    names = lua_newuserdatauv(L, sizeof(*names) * (size_t)(len > 0 ? len : 1),
                              0);
    for (i = 1; i <= len; i++) {
        if (lua_rawgeti(L, idx, i) != LUA_TSTRING)
            luaL_error(L, "actions[%d]: string expected, got %s", (int)i,
                       luaL_typename(L, -1));
        names[i - 1] = lua_tostring(L, -1); /* the table keeps it alive */
        lua_pop(L, 1);
    }
    *n = (size_t)len;
    return names;
}

/* core.cost(actions): units, or nil, message, code. */
static int lsa_cost(lua_State *L)
{
    char err[256];
    size_t n;
    const char **names = lsa_check_actions(L, 1, &n);
    int rc = sa_cost(names, n, err, sizeof err);

    if (rc < 0)
        return lsa_push_error(L, rc, err);
    lua_pushinteger(L, rc);
    return 1;
}

/* core.actions([tier]): an array of action names: all 32, or "sd"/"hd". */
static int lsa_actions(lua_State *L)
{
    static const char *const tiers[] = {"all", "sd", "hd", NULL};
    int which = luaL_checkoption(L, 1, "all", tiers);
    size_t i, n = sa_action_count();
    lua_Integer k = 0;

    lua_createtable(L, (int)n, 0);
    for (i = 0; i < n; i++) {
        const char *name = sa_action_name(i);
        int tier;
        if (name == NULL)
            break;
        tier = sa_action_tier(name);
        if ((which == 1 && tier != SA_TIER_SD) ||
            (which == 2 && tier != SA_TIER_HD))
            continue;
        lua_pushstring(L, name);
        lua_rawseti(L, -2, ++k);
    }
    return 1;
}

/* core.action_tier(name): "sd", "hd", or nil, message, "unknown_action". */
static int lsa_action_tier(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    int tier = sa_action_tier(name);

    if (tier == SA_TIER_SD)
        lua_pushliteral(L, "sd");
    else if (tier == SA_TIER_HD)
        lua_pushliteral(L, "hd");
    else
        return lsa_push_error(L, tier, NULL);
    return 1;
}

/* core.counterpart(name): the same concern in the other tier
 * ("wrinkle" -> "hd_wrinkle"), or nil (sa_action_counterpart). */
static int lsa_counterpart(lua_State *L)
{
    const char *other = sa_action_counterpart(luaL_checkstring(L, 1));

    if (other == NULL)
        return 0;
    lua_pushstring(L, other);
    return 1;
}

/* core.default_actions([tier]): the array of actions a request without
 * `actions` asks for; tier "sd" (default) or "hd" (sa_default_actions). */
static int lsa_default_actions(lua_State *L)
{
    static const char *const tiers[] = {"sd", "hd", NULL};
    const char *names[SA_MAX_ACTIONS];
    int tier = luaL_checkoption(L, 1, "sd", tiers) == 0 ? SA_TIER_SD
                                                        : SA_TIER_HD;
    size_t i, n = sa_default_actions(tier, names, SA_MAX_ACTIONS);

    if (n > SA_MAX_ACTIONS)
        n = SA_MAX_ACTIONS;
    lua_createtable(L, (int)n, 0);
    for (i = 0; i < n; i++) {
        lua_pushstring(L, names[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

static void lsa_push_image_info(lua_State *L, const sa_image_info *info)
{
    lua_createtable(L, 0, 3);
    lua_pushstring(L, info->format == SA_IMAGE_PNG ? "png" : "jpeg");
    lua_setfield(L, -2, "format");
    lua_pushinteger(L, (lua_Integer)info->width);
    lua_setfield(L, -2, "width");
    lua_pushinteger(L, (lua_Integer)info->height);
    lua_setfield(L, -2, "height");
}

/* core.probe_file(path) / core.probe_buffer(bytes):
 * {format=, width=, height=}, or nil, message, code. */
static int lsa_probe_file(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    sa_image_info info;
    int rc;

    sa_image_info_init(&info);
    rc = sa_image_probe_file(path, &info);
    if (rc != SA_OK)
        return lsa_push_error(L, rc, NULL);
    lsa_push_image_info(L, &info);
    return 1;
}

static int lsa_probe_buffer(lua_State *L)
{
    size_t len;
    const char *data = luaL_checklstring(L, 1, &len);
    sa_image_info info;
    int rc;

    sa_image_info_init(&info);
    rc = sa_image_probe_buffer(data, len, &info);
    if (rc != SA_OK)
        return lsa_push_error(L, rc, NULL);
    lsa_push_image_info(L, &info);
    return 1;
}

/* core.strerror(name_or_number) and core.status_name(number). */
static int lsa_status_from_arg(lua_State *L, int idx)
{
    int st;

    if (lua_type(L, idx) == LUA_TNUMBER)
        return (int)luaL_checkinteger(L, idx);
    luaL_checkstring(L, idx);
    for (st = SA_OK; st > SA_ERR__LAST; st--) {
        const char *name = sa_status_name(st);
        /* gaps in the enum are named "unknown": not a status name */
        if (strcmp(name, "unknown") != 0 &&
            strcmp(name, lua_tostring(L, idx)) == 0)
            return st;
    }
    return luaL_argerror(L, idx, "unknown status name");
}

static int lsa_strerror(lua_State *L)
{
    lua_pushstring(L, sa_strerror(lsa_status_from_arg(L, 1)));
    return 1;
}

static int lsa_is_retryable(lua_State *L)
{
    lua_pushboolean(L, sa_status_is_retryable(lsa_status_from_arg(L, 1)));
    return 1;
}

static int lsa_is_validation(lua_State *L)
{
    lua_pushboolean(L, sa_status_is_validation(lsa_status_from_arg(L, 1)));
    return 1;
}

/* core.now(): seconds on a monotonic clock (for timeouts in Lua code). */
static int lsa_now(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)lsa_now_ms() / 1000.0);
    return 1;
}

/* core.sleep(seconds): block the calling thread (at most 10 s; for the
 * facade's scheduler when no client has work: never call it in a frame). */
static int lsa_sleep(lua_State *L)
{
    lua_Number s = luaL_checknumber(L, 1);
    struct timespec ts;
    int tries;

    luaL_argcheck(L, s >= 0 && s <= 10, 1, "0..10 seconds expected");
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (lua_Number)ts.tv_sec) * 1e9);
    if (ts.tv_nsec > 999999999L)
        ts.tv_nsec = 999999999L;
    for (tries = 0; tries < 100 && nanosleep(&ts, &ts) != 0; tries++)
        ; /* EINTR: sleep the rest */
    return 0;
}

/* core.job_states(): the array of state names, in order. */
static int lsa_job_states(lua_State *L)
{
    int s;

    lua_createtable(L, SA_JOB_STATE__LAST, 0);
    for (s = 0; s < SA_JOB_STATE__LAST; s++) {
        lua_pushstring(L, sa_job_state_name(s));
        lua_rawseti(L, -2, s + 1);
    }
    return 1;
}

/* ------------------------------------------------------------------ */
/* Webhooks                                                            */
/* ------------------------------------------------------------------ */

/* The value of header `want` in the headers table at idx, whose keys are
 * matched without regard to case; NULL when absent.  Raises for a value
 * that is not a string.  *nul is set when the value holds a NUL (the C
 * string would end there: refused, as Python's verify_webhook does). */
static const char *lsa_header(lua_State *L, int idx, const char *want,
                              int *nul)
{
    const char *found = NULL;
    size_t len;

    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        if (lua_type(L, -2) == LUA_TSTRING &&
            strcasecmp(lua_tostring(L, -2), want) == 0) {
            if (lua_type(L, -1) != LUA_TSTRING)
                luaL_error(L, "headers['%s']: string expected, got %s", want,
                           luaL_typename(L, -1));
            found = lua_tolstring(L, -1, &len); /* the table keeps it */
            if (strlen(found) != len) *nul = 1;
            lua_pop(L, 2);
            break;
        }
        lua_pop(L, 1);
    }
    return found;
}

/* The strings sa_webhook_parse returns, owned by a userdata, so a Lua
 * error while they are pushed cannot leak them. */
#define LSA_WEBHOOK_BOX "skinanalysis.webhook_box"

typedef struct lsa_webhook_box {
    char *task_id;
    char *task_status;
} lsa_webhook_box;

static int lsa_webhook_box_gc(lua_State *L)
{
    lsa_webhook_box *box = luaL_checkudata(L, 1, LSA_WEBHOOK_BOX);

    sa_free(box->task_id);
    sa_free(box->task_status);
    box->task_id = box->task_status = NULL;
    return 0;
}

/* Push the delivery table of a verified webhook: id and timestamp from the
 * headers, task_id, task_status and created_at as the core reads the body
 * (sa_webhook_parse: the contract Python's verify_webhook shares).
 * Returns 1, or 3 (nil, message, "protocol" or "limit") for a body that is
 * no task notification. */
static int lsa_push_delivery(lua_State *L, const char *id, const char *ts,
                             const char *body, size_t len)
{
    lsa_webhook_box *box;
    int64_t created_at = INT64_MIN;
    char err[256];
    int rc;

    box = lua_newuserdatauv(L, sizeof(*box), 0);
    box->task_id = box->task_status = NULL;
    luaL_setmetatable(L, LSA_WEBHOOK_BOX);
    err[0] = '\0';
    rc = sa_webhook_parse(body, len, &box->task_id, &box->task_status,
                          &created_at, err, sizeof err);
    if (rc != SA_OK)
        return lsa_push_error(L, rc, err);
    lua_createtable(L, 0, 5);
    lua_pushstring(L, id);
    lua_setfield(L, -2, "id");
    lua_pushinteger(L, (lua_Integer)strtoll(ts, NULL, 10));
    lua_setfield(L, -2, "timestamp");
    lua_pushstring(L, box->task_id);
    lua_setfield(L, -2, "task_id");
    if (box->task_status != NULL) {
        lua_pushstring(L, box->task_status);
        lua_setfield(L, -2, "task_status");
    }
    if (created_at != INT64_MIN) {
        lua_pushinteger(L, (lua_Integer)created_at);
        lua_setfield(L, -2, "created_at");
    }
    return 1;
}

/* Read opts.<key> (seconds) of the options table at idx; dflt when nil. */
static lua_Integer lsa_opt_seconds(lua_State *L, int idx, const char *key,
                                   lua_Integer dflt)
{
    lua_Integer v = dflt;
    int isint = 1;

    if (lua_isnoneornil(L, idx))
        return dflt;
    if (lua_getfield(L, idx, key) != LUA_TNIL)
        v = lua_tointegerx(L, -1, &isint);
    if (!isint || v < 0)
        luaL_error(L, "opts.%s: whole seconds >= 0 expected", key);
    lua_pop(L, 1);
    return v;
}

/* core.verify_webhook(secret, headers, body [, opts]): the delivery
 * {id=, timestamp=, task_id=, task_status=, created_at=}, or nil, message,
 * code ("webhook_signature", "webhook_stale", "invalid_argument").
 * opts: tolerance (seconds, default 300) and now (Unix seconds). */
static int lsa_verify_webhook(lua_State *L)
{
    size_t secret_len, len;
    const char *secret = luaL_checklstring(L, 1, &secret_len);
    const char *id, *ts, *sig, *body;
    lua_Integer tolerance, now;
    char err[256];
    int rc, nul = 0;

    luaL_checktype(L, 2, LUA_TTABLE);
    body = luaL_checklstring(L, 3, &len);
    if (!lua_isnoneornil(L, 4))
        luaL_checktype(L, 4, LUA_TTABLE);
    tolerance = lsa_opt_seconds(L, 4, "tolerance", 0);
    now = lsa_opt_seconds(L, 4, "now", 0);
    luaL_argcheck(L, tolerance <= 86400 * 365, 4, "tolerance too large");
    lua_settop(L, 4);
    id = lsa_header(L, 2, "webhook-id", &nul);
    ts = lsa_header(L, 2, "webhook-timestamp", &nul);
    sig = lsa_header(L, 2, "webhook-signature", &nul);
    if (nul || strlen(secret) != secret_len)
        return lsa_push_error(L, SA_ERR_INVALID_ARGUMENT, "the secret or a "
                              "webhook header holds a NUL");
    if (id == NULL || ts == NULL || sig == NULL)
        return lsa_push_error(L, SA_ERR_INVALID_ARGUMENT,
                              id == NULL   ? "no webhook-id header"
                              : ts == NULL ? "no webhook-timestamp header"
                                           : "no webhook-signature header");
    err[0] = '\0';
    rc = sa_webhook_verify(secret, id, ts, sig, body, len, (long)tolerance,
                           (int64_t)now, err, sizeof err);
    if (rc != SA_OK)
        return lsa_push_error(L, rc, err);
    return lsa_push_delivery(L, id, ts, body, len);
}

static int lsa_global_gc(lua_State *L)
{
    int *inited = lua_touserdata(L, 1);

    if (inited != NULL && *inited) {
        *inited = 0;
        sa_global_cleanup();
    }
    return 0;
}

/* sa_global_init once per Lua state, undone by the __gc of a sentinel in
 * the registry.  The sentinel is created before any client of the state,
 * so lua_close finalizes it after them (finalizers run in reverse order of
 * creation). */
static void lsa_global_init(lua_State *L)
{
    int *inited;
    int rc;

    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &lsa_init_key) != LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    lua_pop(L, 1);
    inited = lua_newuserdatauv(L, sizeof(*inited), 0);
    *inited = 0;
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, lsa_global_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    rc = sa_global_init();
    if (rc != SA_OK)
        luaL_error(L, "skinanalysis: sa_global_init failed: %s",
                   sa_strerror(rc));
    *inited = 1;
    lua_rawsetp(L, LUA_REGISTRYINDEX, &lsa_init_key);
}

/* Publish the method table of a class as core.<field>, so the Lua facade
 * can add methods written in Lua. */
static void lsa_export_methods(lua_State *L, const char *tname,
                               const char *field)
{
    luaL_getmetatable(L, tname);
    lua_getfield(L, -1, "__index");
    lua_setfield(L, -3, field);
    lua_pop(L, 1);
}

/* core.clean_file_name(name): the name the core gives a file from the
 * network (sa_file_name_clean). */
static int lsa_clean_file_name(lua_State *L)
{
    size_t len;
    const char *name = luaL_checklstring(L, 1, &len);
    char out[SA_FILE_NAME_MAX];

    luaL_argcheck(L, strlen(name) == len, 1, "embedded NUL");
    if (sa_file_name_clean(name, out, sizeof out) != SA_OK)
        return luaL_error(L, "clean_file_name failed");
    lua_pushstring(L, out);
    return 1;
}

__attribute__((visibility("default"))) int luaopen_skinanalysis_core(lua_State *L);

int luaopen_skinanalysis_core(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"client", lsa_client_new},
        {"cost", lsa_cost},
        {"actions", lsa_actions},
        {"action_tier", lsa_action_tier},
        {"counterpart", lsa_counterpart},
        {"default_actions", lsa_default_actions},
        {"probe_file", lsa_probe_file},
        {"probe_buffer", lsa_probe_buffer},
        {"parse_result", lsa_parse_result},
        {"parse_zip", lsa_parse_zip},
        {"concern_color", lsa_concern_color},
        {"clean_file_name", lsa_clean_file_name},
        {"verify_webhook", lsa_verify_webhook},
        {"strerror", lsa_strerror},
        {"is_retryable", lsa_is_retryable},
        {"is_validation", lsa_is_validation},
        {"job_states", lsa_job_states},
        {"now", lsa_now},
        {"sleep", lsa_sleep},
        {NULL, NULL}};

    luaL_checkversion(L);
    if (sa_version_num() != SA_VERSION_NUM)
        return luaL_error(L, "skinanalysis.core was built for libskinanalysis "
                          "%s but runs with %s", SA_VERSION, sa_version());
    lsa_global_init(L);
    lsa_client_register(L);
    lsa_job_register(L);
    lsa_result_register(L);
    luaL_newmetatable(L, LSA_WEBHOOK_BOX);
    lua_pushcfunction(L, lsa_webhook_box_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);

    luaL_newlib(L, funcs);
    lua_pushstring(L, sa_version());
    lua_setfield(L, -2, "version");
    lua_pushinteger(L, sa_version_num());
    lua_setfield(L, -2, "version_num");
    lua_pushinteger(L, SA_MAX_ACTIONS);
    lua_setfield(L, -2, "MAX_ACTIONS");
    lsa_export_methods(L, LSA_CLIENT_MT, "Client");
    lsa_export_methods(L, LSA_JOB_MT, "Job");
    lsa_export_methods(L, LSA_RESULT_MT, "Result");
    return 1;
}
