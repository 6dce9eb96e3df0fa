/*
 * lsa_client.c - the client type of skinanalysis.core: options, stepping,
 * blocking waits, delivery of queued events to Lua, close.
 */
#define _POSIX_C_SOURCE 200809L

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lsa.h"

/* ------------------------------------------------------------------ */
/* Options                                                             */
/* ------------------------------------------------------------------ */

enum lsa_opt_kind {
    LSA_OPT_STRING,    /* const char *            */
    LSA_OPT_INT,       /* int                     */
    LSA_OPT_LONG,      /* long, 0 .. 2^31-1       */
    LSA_OPT_SECONDS,   /* long ms, given in s     */
    LSA_OPT_MICROS,    /* long us, given in s     */
    LSA_OPT_NUMBER,    /* double                  */
    LSA_OPT_BOOL,      /* int 0/1                 */
    LSA_OPT_SIZE,      /* size_t                  */
    LSA_OPT_SEED,      /* uint64_t                */
    LSA_OPT_VERSION,   /* int SA_API_*            */
    LSA_OPT_UPLOAD,    /* int sa_upload_path      */
    LSA_OPT_POLL,      /* int sa_poll_strategy    */
    LSA_OPT_LOG_LEVEL, /* int sa_log_level        */
    LSA_OPT_LOG        /* function, kept in a uservalue */
};

typedef struct lsa_opt {
    const char *name;
    int kind;
    size_t offset;
} lsa_opt;

#define LSA_OFF(field) offsetof(sa_client_options, field)

static const lsa_opt lsa_client_opts[] = {
    {"api_key", LSA_OPT_STRING, LSA_OFF(api_key)},
    {"base_url", LSA_OPT_STRING, LSA_OFF(base_url)},
    {"version", LSA_OPT_VERSION, LSA_OFF(api_version)},
    {"upload_path", LSA_OPT_UPLOAD, LSA_OFF(upload_path)},
    {"allow_insecure_http", LSA_OPT_BOOL, LSA_OFF(allow_insecure_http)},
    {"ca_bundle", LSA_OPT_STRING, LSA_OFF(ca_bundle)},
    {"proxy", LSA_OPT_STRING, LSA_OFF(proxy)},
    {"connect_timeout", LSA_OPT_SECONDS, LSA_OFF(connect_timeout_ms)},
    {"request_timeout", LSA_OPT_SECONDS, LSA_OFF(request_timeout_ms)},
    {"upload_timeout", LSA_OPT_SECONDS, LSA_OFF(upload_timeout_ms)},
    {"user_agent", LSA_OPT_STRING, LSA_OFF(user_agent)},
    {"max_connections", LSA_OPT_INT, LSA_OFF(max_connections)},
    {"max_uploads", LSA_OPT_INT, LSA_OFF(max_uploads)},
    {"step_budget", LSA_OPT_MICROS, LSA_OFF(step_budget_us)},
    {"max_jobs", LSA_OPT_INT, LSA_OFF(max_jobs)},
    {"poll_interval", LSA_OPT_SECONDS, LSA_OFF(poll_interval_ms)},
    {"max_poll_interval", LSA_OPT_SECONDS, LSA_OFF(max_poll_interval_ms)},
    {"job_deadline", LSA_OPT_SECONDS, LSA_OFF(job_deadline_ms)},
    {"max_polls", LSA_OPT_INT, LSA_OFF(max_polls)},
    {"max_retries", LSA_OPT_INT, LSA_OFF(max_retries)},
    {"backoff_initial", LSA_OPT_SECONDS, LSA_OFF(backoff_initial_ms)},
    {"backoff_max", LSA_OPT_SECONDS, LSA_OFF(backoff_max_ms)},
    {"rate_limit", LSA_OPT_BOOL, LSA_OFF(rate_limit)},
    {"rate_per_second", LSA_OPT_NUMBER, LSA_OFF(rate_per_second)},
    {"rate_burst", LSA_OPT_INT, LSA_OFF(rate_burst)},
    {"rate_window_max", LSA_OPT_INT, LSA_OFF(rate_window_max)},
    {"rate_window", LSA_OPT_SECONDS, LSA_OFF(rate_window_ms)},
    {"max_body_bytes", LSA_OPT_SIZE, LSA_OFF(max_body_bytes)},
    {"max_files_bytes", LSA_OPT_SIZE, LSA_OFF(max_files_bytes)},
    {"low_speed_limit", LSA_OPT_LONG, LSA_OFF(low_speed_limit)},
    {"low_speed_time", LSA_OPT_SECONDS, LSA_OFF(low_speed_time_ms)},
    {"max_json_depth", LSA_OPT_INT, LSA_OFF(max_json_depth)},
    {"log_level", LSA_OPT_LOG_LEVEL, LSA_OFF(log_level)},
    {"jitter_seed", LSA_OPT_SEED, LSA_OFF(jitter_seed)},
    {"rate_limit_scope", LSA_OPT_STRING, LSA_OFF(rate_limit_scope)},
    {"rate_limit_fleet_size", LSA_OPT_INT, LSA_OFF(rate_limit_fleet_size)},
    {"poll_strategy", LSA_OPT_POLL, LSA_OFF(poll_strategy)},
    {"webhooks", LSA_OPT_BOOL, LSA_OFF(webhooks)},
    {"log", LSA_OPT_LOG, 0},
    {NULL, 0, 0}};

static const char *const lsa_log_level_names[] = {"debug", "info", "warning",
                                                  "error", NULL};
static const int lsa_log_level_values[] = {SA_LOG_DEBUG, SA_LOG_INFO,
                                           SA_LOG_WARNING, SA_LOG_ERROR};

static const char *const lsa_upload_names[] = {"skin-analysis", "generic",
                                               NULL};
static const int lsa_upload_values[] = {SA_UPLOAD_SKIN_ANALYSIS,
                                        SA_UPLOAD_GENERIC};
static const char *const lsa_poll_names[] = {"learned", "fixed", NULL};
static const int lsa_poll_values[] = {SA_POLL_LEARNED, SA_POLL_FIXED};

static const char *lsa_log_level_name(int level)
{
    if (level >= SA_LOG_ERROR)
        return "error";
    if (level >= SA_LOG_WARNING)
        return "warning";
    if (level >= SA_LOG_INFO)
        return "info";
    return "debug";
}

/* An integer option value; raises unless it is an integer in [lo, hi]. */
static lua_Integer lsa_opt_integer(lua_State *L, const char *name,
                                   lua_Integer lo, lua_Integer hi)
{
    int isint = 0;
    lua_Integer v = lua_tointegerx(L, -1, &isint);

    if (!isint)
        luaL_error(L, "option '%s': integer expected, got %s", name,
                   luaL_typename(L, -1));
    if (v < lo || v > hi)
        luaL_error(L, "option '%s': %I is out of range", name, v);
    return v;
}

static void lsa_opt_expect(lua_State *L, const char *name, int type)
{
    if (lua_type(L, -1) != type)
        luaL_error(L, "option '%s': %s expected, got %s", name,
                   lua_typename(L, type), luaL_typename(L, -1));
}

/* The value of an option that names one of a few strings (upload_path,
 * poll_strategy, log_level): the C value of the name; raises for
 * anything else. */
static int lsa_opt_choice(lua_State *L, const lsa_opt *d)
{
    const char *const *names = lsa_log_level_names;
    const int *values = lsa_log_level_values;

    if (d->kind == LSA_OPT_UPLOAD) {
        names = lsa_upload_names;
        values = lsa_upload_values;
    } else if (d->kind == LSA_OPT_POLL) {
        names = lsa_poll_names;
        values = lsa_poll_values;
    }
    lsa_opt_expect(L, d->name, LUA_TSTRING);
    return values[luaL_checkoption(L, -1, NULL, names)];
}

/* Store the value on the top of the stack into *o.  Strings are borrowed
 * from the options table, which outlives sa_client_new. */
static void lsa_set_client_opt(lua_State *L, const lsa_opt *d,
                               sa_client_options *o, int ud)
{
    char *base = (char *)o + d->offset;

    switch (d->kind) {
    case LSA_OPT_STRING:
        lsa_opt_expect(L, d->name, LUA_TSTRING);
        *(const char **)(void *)base = lua_tostring(L, -1);
        break;
    case LSA_OPT_INT:
        *(int *)(void *)base = (int)lsa_opt_integer(L, d->name, INT32_MIN,
                                                    INT32_MAX);
        break;
    case LSA_OPT_LONG:
        *(long *)(void *)base = (long)lsa_opt_integer(L, d->name, 0,
                                                      INT32_MAX);
        break;
    case LSA_OPT_SECONDS:
        lsa_opt_expect(L, d->name, LUA_TNUMBER);
        *(long *)(void *)base = lsa_seconds_to_ms(L, lua_tonumber(L, -1),
                                                  d->name);
        break;
    case LSA_OPT_MICROS: {
        double v;
        lsa_opt_expect(L, d->name, LUA_TNUMBER);
        v = (double)lua_tonumber(L, -1);
        /* out of range (or NaN): -1, which the core refuses (a runtime
         * failure, like every bad option value) */
        *(long *)(void *)base = (v >= 0 && v <= 10.0)
                                    ? (long)(v * 1e6 + 0.5) : -1L;
        break;
    }
    case LSA_OPT_NUMBER:
        lsa_opt_expect(L, d->name, LUA_TNUMBER);
        *(double *)(void *)base = (double)lua_tonumber(L, -1);
        break;
    case LSA_OPT_BOOL:
        lsa_opt_expect(L, d->name, LUA_TBOOLEAN);
        *(int *)(void *)base = lua_toboolean(L, -1);
        break;
    case LSA_OPT_SIZE:
        *(size_t *)(void *)base =
            (size_t)lsa_opt_integer(L, d->name, 0, INT32_MAX);
        break;
    case LSA_OPT_SEED:
        *(uint64_t *)(void *)base =
            (uint64_t)lsa_opt_integer(L, d->name, 0, LUA_MAXINTEGER);
        break;
    case LSA_OPT_VERSION:
        *(int *)(void *)base = lsa_check_api_version(L, -1, d->name);
        break;
    case LSA_OPT_UPLOAD:
    case LSA_OPT_POLL:
    case LSA_OPT_LOG_LEVEL:
        *(int *)(void *)base = lsa_opt_choice(L, d);
        break;
    case LSA_OPT_LOG:
        lsa_opt_expect(L, d->name, LUA_TFUNCTION);
        lua_pushvalue(L, -1);
        lua_setiuservalue(L, ud, LSA_CLIENT_UV_LOG);
        break;
    default:
        luaL_error(L, "option '%s': internal error", d->name);
    }
}

/* Walk the options table at idx; raises on unknown names and bad types. */
static void lsa_client_options(lua_State *L, int idx, int ud,
                               sa_client_options *o)
{
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        const lsa_opt *d;
        const char *name;

        name = lsa_option_name(L);
        for (d = lsa_client_opts; d->name != NULL; d++) {
            if (strcmp(d->name, name) == 0)
                break;
        }
        if (d->name == NULL)
            luaL_error(L, "unknown client option '%s'", name);
        lsa_set_client_opt(L, d, o, ud);
        lua_pop(L, 1);
    }
}

/* ------------------------------------------------------------------ */
/* Hooks called by the core: they never call Lua                       */
/* ------------------------------------------------------------------ */

/* sa_log_fn: copy the (already redacted) line into the client's ring. */
static void lsa_log_hook(void *user_data, int level, const char *message)
{
    lsa_client *lc = user_data;
    lsa_log_line *slot;
    size_t len;
    char *copy;

    if (lc == NULL || message == NULL)
        return;
    len = strlen(message);
    copy = malloc(len + 1);
    if (copy == NULL) {
        lc->log_dropped++;
        return;
    }
    memcpy(copy, message, len + 1);
    if (lc->log_count == LSA_LOGQ) {
        free(lc->log[lc->log_head].text);
        lc->log_head = (lc->log_head + 1) % LSA_LOGQ;
        lc->log_count--;
        lc->log_dropped++;
    }
    slot = &lc->log[(lc->log_head + lc->log_count) % LSA_LOGQ];
    slot->level = level;
    slot->text = copy;
    lc->log_count++;
}

/* 1 when a hook appeared on the waiting thread or the main thread since
 * lsa_wait_begin.  Only reads the states, never runs Lua. */
static int lsa_hook_changed(const lsa_client *lc)
{
    if (lc->wait_L != NULL && lua_gethook(lc->wait_L) != lc->wait_hook)
        return 1;
    if (lc->wait_main != NULL &&
        lua_gethook(lc->wait_main) != lc->wait_main_hook)
        return 1;
    return 0;
}

/* sa_interrupt_fn: ask a blocking wait to return when a hook appeared.
 * lua.c's SIGINT handler installs such a hook; after the wait returns, the
 * hook raises "interrupted!" in Lua. */
static int lsa_interrupt_hook(void *user_data)
{
    const lsa_client *lc = user_data;

    return lc != NULL && lsa_hook_changed(lc);
}

/* Remember the hooks of the calling thread and the main thread at the
 * start of a whole wait (not of each slice: a signal that arrives between
 * two slices must not become the new baseline). */
static void lsa_wait_begin(lua_State *L, lsa_client *lc)
{
    lc->wait_L = L;
    lc->wait_hook = lua_gethook(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    lc->wait_main = lua_tothread(L, -1); /* lives as long as the state */
    lua_pop(L, 1);
    lc->wait_main_hook =
        lc->wait_main != NULL ? lua_gethook(lc->wait_main) : NULL;
}

/* ------------------------------------------------------------------ */
/* Delivery of queued events                                           */
/* ------------------------------------------------------------------ */

/* After a failed lua_pcall: leave only the error object (on the top) at
 * `base + 1` and return 1. */
static int lsa_keep_error(lua_State *L, int base)
{
    if (lua_gettop(L) > base + 1) {
        lua_replace(L, base + 1);
        lua_settop(L, base + 1);
    }
    return 1;
}

/* Call the function below its nargs arguments under lua_pcall.  On error,
 * leave only the error object at `base + 1` and return 1; else restore the
 * stack to `base` and return 0. */
static int lsa_pcall_at(lua_State *L, int nargs, int base)
{
    if (lua_pcall(L, nargs, 0, 0) != LUA_OK)
        return lsa_keep_error(L, base);
    lua_settop(L, base);
    return 0;
}

/* Deliver the oldest log line.  The line leaves the ring only once its
 * text is on the Lua stack, so a Lua memory error cannot leak it. */
static int lsa_deliver_log(lua_State *L, int ci, lsa_client *lc)
{
    lsa_log_line *line = &lc->log[lc->log_head];
    int base = lua_gettop(L);
    int has_fn = lua_getiuservalue(L, ci, LSA_CLIENT_UV_LOG) == LUA_TFUNCTION;

    if (has_fn) {
        lua_pushstring(L, lsa_log_level_name(line->level));
        lua_pushstring(L, line->text);
    }
    free(line->text);
    line->text = NULL;
    lc->log_head = (lc->log_head + 1) % LSA_LOGQ;
    lc->log_count--;
    if (!has_fn) {
        lua_settop(L, base);
        return 0;
    }
    return lsa_pcall_at(L, 2, base);
}

/* Deliver the oldest event of the first job in the pending list.  The
 * event leaves the job's ring after the allocating bookkeeping (caching the
 * end of the job), so a Lua memory error there loses nothing. */
static int lsa_deliver_event(lua_State *L, int ci, lsa_client *lc)
{
    lsa_job *lj = lc->pend_head;
    int base = lua_gettop(L);
    int state, set, ji;

    if (lj->ev_count == 0) {
        lsa_job_unlink(lj);
        return 0;
    }
    state = lj->ev[lj->ev_head];
    lua_getiuservalue(L, ci, LSA_CLIENT_UV_JOBS);
    set = lua_gettop(L);
    if (lua_rawgetp(L, set, lj) != LUA_TUSERDATA) {
        lsa_job_unlink(lj); /* not a job of this client any more */
        lua_settop(L, base);
        return 0;
    }
    ji = lua_gettop(L);
    if (state >= SA_JOB_DONE)
        lsa_job_finish(L, ji);
    /* The job leaves the head: unlinked when it has nothing left, else
     * moved to the tail so that every job progresses. */
    lsa_job_pop_event(lj);
    lsa_job_unlink(lj);
    if (lj->ev_count > 0)
        lsa_job_link(lj);
    if (state >= SA_JOB_DONE) {
        /* Released before on_done runs: on_done sees an ended job. */
        lsa_job_release_buffer(L, ji);
        lua_pushnil(L);
        lua_rawsetp(L, set, lj);
    }
    if (lua_getiuservalue(L, ji, LSA_JOB_UV_PROGRESS) == LUA_TFUNCTION) {
        lua_pushvalue(L, ji);
        lua_pushstring(L, sa_job_state_name(state));
        if (lua_pcall(L, 2, 0, 0) != LUA_OK)
            return lsa_keep_error(L, base);
    } else {
        lua_pop(L, 1);
    }
    if (state >= SA_JOB_DONE &&
        lua_getiuservalue(L, ji, LSA_JOB_UV_DONE) == LUA_TFUNCTION) {
        lua_pushvalue(L, ji);
        return lsa_pcall_at(L, 1, base);
    }
    lua_settop(L, base);
    return 0;
}

int lsa_dispatch(lua_State *L, int ci)
{
    lsa_client *lc;
    int n;

    ci = lua_absindex(L, ci);
    lc = lua_touserdata(L, ci);
    for (n = 0; n < LSA_DISPATCH_MAX; n++) {
        if (lc->log_count > 0) {
            if (lsa_deliver_log(L, ci, lc))
                return 1;
            continue;
        }
        if (lc->client == NULL || lc->pend_head == NULL)
            return 0;
        if (lsa_deliver_event(L, ci, lc))
            return 1;
    }
    return 0;
}

/* Deliver log lines left after the client was freed; errors of the log
 * function are dropped (this runs from close, __close and __gc). */
static void lsa_deliver_final_logs(lua_State *L, int ci, lsa_client *lc)
{
    int n;

    for (n = 0; n < LSA_LOGQ && lc->log_count > 0; n++) {
        if (lsa_deliver_log(L, ci, lc))
            lua_pop(L, 1);
    }
}

/* ------------------------------------------------------------------ */
/* Waiting                                                             */
/* ------------------------------------------------------------------ */

static int lsa_wait_target_done(lsa_client *lc, lsa_job *lj)
{
    if (lc->client == NULL)
        return 1;
    if (lj != NULL)
        return lj->closed || lj->final || sa_job_done(lj->job);
    return sa_client_active(lc->client) == 0 && lc->pend_head == NULL;
}

/* The loop of lsa_wait, between lsa_wait_begin and lsa_wait_end. */
static int lsa_wait_loop(lua_State *L, int ci, lsa_client *lc, lsa_job *lj,
                         long long deadline)
{
    int rc;

    for (;;) {
        long slice = LSA_WAIT_SLICE_MS;

        if (lsa_dispatch(L, ci))
            return -1;
        if (lsa_wait_target_done(lc, lj))
            return SA_OK;
        if (lsa_hook_changed(lc))
            return SA_ERR_INTERRUPTED;
        if (deadline >= 0) {
            long long left = deadline - lsa_now_ms();
            if (left <= 0)
                return SA_ERR_WAIT_TIMEOUT;
            if (left < slice)
                slice = (long)left;
        }
        rc = lj != NULL ? sa_job_wait(lj->job, slice)
                        : sa_client_run(lc->client, slice);
        if (rc == SA_OK || rc == SA_ERR_WAIT_TIMEOUT)
            continue;
        if (lsa_dispatch(L, ci))
            return -1;
        return rc;
    }
}

int lsa_wait(lua_State *L, int ci, lsa_job *lj, long timeout_ms)
{
    lsa_client *lc;
    long long deadline = -1;
    int rc;
    lua_State *saved_L, *saved_main;
    lua_Hook saved_hook, saved_main_hook;

    ci = lua_absindex(L, ci);
    lc = lua_touserdata(L, ci);
    if (timeout_ms >= 0)
        deadline = lsa_now_ms() + timeout_ms;
    /* A callback delivered by this wait may wait itself: keep the outer
     * wait's baseline and put it back afterwards. */
    saved_L = lc->wait_L;
    saved_main = lc->wait_main;
    saved_hook = lc->wait_hook;
    saved_main_hook = lc->wait_main_hook;
    lsa_wait_begin(L, lc);
    rc = lsa_wait_loop(L, ci, lc, lj, deadline);
    lc->wait_L = saved_L;
    lc->wait_main = saved_main;
    lc->wait_hook = saved_hook;
    lc->wait_main_hook = saved_main_hook;
    if (rc == -1) /* a callback raised: its error is on the top */
        return lua_error(L);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Methods                                                             */
/* ------------------------------------------------------------------ */

lsa_client *lsa_check_open_client(lua_State *L, int idx)
{
    lsa_client *lc = luaL_checkudata(L, idx, LSA_CLIENT_MT);

    luaL_argcheck(L, lc->client != NULL, idx, "client is closed");
    return lc;
}

int lsa_client_new(lua_State *L)
{
    sa_client_options o;
    lsa_client *lc;
    char err[256];
    int rc;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lc = lua_newuserdatauv(L, sizeof(*lc), LSA_CLIENT_NUV);
    memset(lc, 0, sizeof(*lc));
    luaL_setmetatable(L, LSA_CLIENT_MT);
    lua_newtable(L);
    lua_setiuservalue(L, 2, LSA_CLIENT_UV_JOBS);
    lua_createtable(L, 0, 0);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "v");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_setiuservalue(L, 2, LSA_CLIENT_UV_LAZY);

    sa_client_options_init(&o);
    lsa_client_options(L, 1, 2, &o);
    if (lua_getiuservalue(L, 2, LSA_CLIENT_UV_LOG) == LUA_TFUNCTION) {
        o.log = lsa_log_hook;
        o.log_user_data = lc;
    }
    lua_pop(L, 1);
    o.interrupt = lsa_interrupt_hook;
    o.interrupt_user_data = lc;

    err[0] = '\0';
    rc = sa_client_new(&lc->client, &o, err, sizeof err);
    if (rc != SA_OK) {
        lc->client = NULL;
        return lsa_push_error(L, rc, err);
    }
    lc->api_version = o.api_version;
    return 1;
}

/* Free the log lines still queued (no Lua calls). */
static void lsa_drop_logs(lsa_client *lc)
{
    while (lc->log_count > 0) {
        free(lc->log[lc->log_head].text);
        lc->log[lc->log_head].text = NULL;
        lc->log_head = (lc->log_head + 1) % LSA_LOGQ;
        lc->log_count--;
    }
}

/* Close the client at ci: cache the end of every job it still holds, then
 * free the C client (jobs still running are abandoned by the core), then
 * deliver the last log lines.  Idempotent; raises only when Lua runs out
 * of memory (and then the next close or __gc finishes the work). */
static void lsa_client_close(lua_State *L, int ci)
{
    lsa_client *lc = lua_touserdata(L, ci);
    sa_client *c = lc->client;

    if (c != NULL) {
        lua_newtable(L); /* the next, empty running set: allocated first */
        lua_getiuservalue(L, ci, LSA_CLIENT_UV_JOBS);
        lua_pushnil(L);
        while (lua_next(L, -2) != 0) {
            lsa_job_detach(L, lua_gettop(L));
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
        /* ended jobs (those just detached too) whose result table is still
         * to build: now, while the C jobs can be read */
        if (lua_getiuservalue(L, ci, LSA_CLIENT_UV_LAZY) == LUA_TTABLE) {
            lua_pushnil(L);
            while (lua_next(L, -2) != 0) {
                lsa_job_materialize(L, lua_gettop(L)); /* clears its entry */
                lua_pop(L, 1);
            }
        }
        lua_pop(L, 1);
        lc->pend_head = NULL;
        lc->pend_tail = NULL;
        lc->client = NULL; /* from here on lsa_job_event ignores events */
        sa_client_free(c);
        lua_setiuservalue(L, ci, LSA_CLIENT_UV_JOBS);
        lsa_deliver_final_logs(L, ci, lc);
    }
    lsa_drop_logs(lc);
}

static int lsa_client_close_m(lua_State *L)
{
    luaL_checkudata(L, 1, LSA_CLIENT_MT);
    lsa_client_close(L, 1);
    return 0;
}

/* client:step([wait_seconds]): the number of jobs still running, or nil,
 * message, code. */
static int lsa_client_step(lua_State *L)
{
    lsa_client *lc = lsa_check_open_client(L, 1);
    long ms = 0;
    int rc;

    if (!lua_isnoneornil(L, 2))
        ms = lsa_seconds_to_ms(L, luaL_checknumber(L, 2), "step");
    if (ms < 0)
        ms = 0;
    lua_settop(L, 1);
    if (lsa_dispatch(L, 1))
        return lua_error(L);
    if (lc->client == NULL) {
        lua_pushinteger(L, 0);
        return 1;
    }
    rc = sa_client_step(lc->client, ms);
    if (lsa_dispatch(L, 1))
        return lua_error(L);
    if (rc < 0)
        return lsa_push_error(L, rc, lc->client != NULL
                                         ? sa_client_errmsg(lc->client)
                                         : NULL);
    lua_pushinteger(L, rc);
    return 1;
}

/* client:run([timeout]): true once every job (background polls included)
 * has ended, or nil, message, code ("wait_timeout", "interrupted"). */
static int lsa_client_run(lua_State *L)
{
    long ms;
    int rc;

    lsa_check_open_client(L, 1);
    ms = lsa_timeout_arg(L, 2);
    lua_settop(L, 1);
    rc = lsa_wait(L, 1, NULL, ms);
    if (rc != SA_OK)
        return lsa_push_error(L, rc, NULL);
    lua_pushboolean(L, 1);
    return 1;
}

/* client:active(): jobs the client drives (background polls included). */
static int lsa_client_active(lua_State *L)
{
    lsa_client *lc = lsa_check_open_client(L, 1);

    lua_pushinteger(L, sa_client_active(lc->client));
    return 1;
}

/* client:timeout(): seconds until the client next needs a step (0 = now),
 * or nil when nothing is pending. */
static int lsa_client_timeout(lua_State *L)
{
    lsa_client *lc = lsa_check_open_client(L, 1);
    long ms = sa_client_timeout_ms(lc->client);

    if (ms < 0)
        lua_pushnil(L);
    else
        lua_pushnumber(L, (lua_Number)ms / 1000.0);
    return 1;
}

/* client:notify(task_id): poll that task at once (a webhook said it
 * ended); the number of jobs notified, or nil, message, code. */
static int lsa_client_notify(lua_State *L)
{
    lsa_client *lc = lsa_check_open_client(L, 1);
    const char *task_id = luaL_checkstring(L, 2);
    int rc = sa_client_notify(lc->client, task_id);

    if (rc < 0)
        return lsa_push_error(L, rc, NULL);
    lua_pushinteger(L, rc);
    return 1;
}

/* client:closed(): true once closed. */
static int lsa_client_closed(lua_State *L)
{
    lsa_client *lc = luaL_checkudata(L, 1, LSA_CLIENT_MT);

    lua_pushboolean(L, lc->client == NULL);
    return 1;
}

/* client:log_dropped(): log lines lost because the ring was full or
 * memory ran out. */
static int lsa_client_log_dropped(lua_State *L)
{
    lsa_client *lc = luaL_checkudata(L, 1, LSA_CLIENT_MT);

    lua_pushinteger(L, (lua_Integer)lc->log_dropped);
    return 1;
}

/* Never shows the key (nor the base URL, which may carry credentials). */
static int lsa_client_tostring(lua_State *L)
{
    lsa_client *lc = luaL_checkudata(L, 1, LSA_CLIENT_MT);

    if (lc->client == NULL)
        return lsa_tostring(L, LSA_CLIENT_MT, lc, "closed");
    lua_pushfstring(L, "v2.%d, %d active",
                    lc->api_version == SA_API_V2_0 ? 0 : 1,
                    sa_client_active(lc->client));
    return lsa_tostring(L, LSA_CLIENT_MT, lc, lua_tostring(L, -1));
}

void lsa_client_register(lua_State *L)
{
    /* close: added by lsa_new_class */
    static const luaL_Reg methods[] = {
        {"submit", lsa_job_submit},
        {"resume", lsa_job_resume},
        {"credit_job", lsa_job_credit},
        {"price_list_job", lsa_job_price_list},
        {"delete_job", lsa_job_delete},
        {"step", lsa_client_step},
        {"run", lsa_client_run},
        {"active", lsa_client_active},
        {"timeout", lsa_client_timeout},
        {"notify", lsa_client_notify},
        {"fetch_masks", lsa_client_fetch_masks},
        {"closed", lsa_client_closed},
        {"log_dropped", lsa_client_log_dropped},
        {NULL, NULL}};

    lsa_new_class(L, LSA_CLIENT_MT, lsa_client_close_m, lsa_client_tostring,
                  methods);
}
