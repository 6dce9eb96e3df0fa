/*
 * lsa_job.c - the job type of skinanalysis.core: submit, the event ring
 * filled by the core's callback, the cached end of a job, close.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <string.h>

#include "lsa.h"

/* ------------------------------------------------------------------ */
/* Event ring and pending list (no Lua calls here)                     */
/* ------------------------------------------------------------------ */

void lsa_job_link(lsa_job *lj)
{
    lsa_client *lc = lj->owner;

    if (lj->pending || lc == NULL)
        return;
    lj->pending = 1;
    lj->next_pending = NULL;
    if (lc->pend_tail != NULL)
        lc->pend_tail->next_pending = lj;
    else
        lc->pend_head = lj;
    lc->pend_tail = lj;
}

void lsa_job_unlink(lsa_job *lj)
{
    lsa_client *lc = lj->owner;
    lsa_job *prev = NULL, *cur;

    if (!lj->pending || lc == NULL)
        return;
    for (cur = lc->pend_head; cur != NULL; cur = cur->next_pending) {
        if (cur == lj)
            break;
        prev = cur;
    }
    if (cur != NULL) {
        if (prev != NULL)
            prev->next_pending = lj->next_pending;
        else
            lc->pend_head = lj->next_pending;
        if (lc->pend_tail == lj)
            lc->pend_tail = prev;
    }
    lj->next_pending = NULL;
    lj->pending = 0;
}

int lsa_job_event(sa_job *job, int state, void *user_data)
{
    lsa_job *lj = user_data;

    /* Every job, a fetch job too (sa_client_fetch), has its own lj as
     * user data; lj->job is set once submit or fetch returns. */
    if (lj == NULL || lj->closed || lj->owner == NULL ||
        lj->owner->client == NULL || (lj->job != NULL && job != lj->job))
        return 0;
    if (state < 0 || state >= SA_JOB_STATE__LAST)
        return 0;
    if (lj->ev_count == LSA_EVQ) /* full: the newest replaces the last */
        lj->ev[(lj->ev_head + lj->ev_count - 1) % LSA_EVQ] =
            (unsigned char)state;
    else
        lj->ev[(lj->ev_head + lj->ev_count++) % LSA_EVQ] =
            (unsigned char)state;
    lsa_job_link(lj);
    return 0;
}

int lsa_job_pop_event(lsa_job *lj)
{
    int state;

    if (lj->ev_count == 0)
        return -1;
    state = lj->ev[lj->ev_head];
    lj->ev_head = (lj->ev_head + 1) % LSA_EVQ;
    lj->ev_count--;
    return state;
}

static void lsa_job_forget_events(lsa_job *lj)
{
    lsa_job_unlink(lj);
    lj->ev_head = 0;
    lj->ev_count = 0;
}

/* ------------------------------------------------------------------ */
/* Request options                                                     */
/* ------------------------------------------------------------------ */

/* The keys in `keep` under which a refused miniserver_args table leaves
 * the core's message and status (submit then returns nil, message, code:
 * "bad_option", or "nomem"). */
static const char lsa_msargs_error_key = 0;
static const char lsa_msargs_status_key = 0;

/* Push the C string given as a light userdata (run under lua_pcall, so a
 * memory error cannot leave the caller's malloc'd string behind). */
static int lsa_push_cstring(lua_State *L)
{
    lua_pushstring(L, (const char *)lua_touserdata(L, 1));
    return 1;
}

/* Push the JSON text of a flat table of miniserver_args, encoded by the
 * core (sa_miniserver_args_json) from the members' Lua types; or, when
 * the core refuses one, nil with the message parked in keep.  The strings
 * are borrowed from the table, which outlives the call. */
static void lsa_push_miniserver_args(lua_State *L, int idx, int keep)
{
    char err[256];
    size_t n = 0, cap = 0;
    sa_arg *args;
    char *json = NULL;
    int rc;

    idx = lua_absindex(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        cap++;
        lua_pop(L, 1);
    }
    args = lua_newuserdatauv(L, (cap > 0 ? cap : 1) * sizeof(*args), 0);
    memset(args, 0, (cap > 0 ? cap : 1) * sizeof(*args));
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        sa_arg *a;
        if (n == cap) { /* cannot grow during a traversal: a guard only */
            lua_pop(L, 1);
            continue;
        }
        a = &args[n++];
        if (lua_type(L, -2) == LUA_TSTRING)
            a->key = lua_tolstring(L, -2, &a->key_len);
        switch (lua_type(L, -1)) {
        case LUA_TBOOLEAN:
            a->type = SA_ARG_BOOL;
            a->boolean = lua_toboolean(L, -1);
            break;
        case LUA_TNUMBER:
            a->type = SA_ARG_NUMBER;
            a->number = (double)lua_tonumber(L, -1);
            break;
        case LUA_TSTRING:
            a->type = SA_ARG_STRING;
            a->string = lua_tolstring(L, -1, &a->string_len);
            break;
        default:
            a->type = SA_ARG_OTHER;
            a->type_name = luaL_typename(L, -1);
        }
        lua_pop(L, 1);
    }
    luaL_checkstack(L, 3, "miniserver_args");
    rc = sa_miniserver_args_json(args, n, &json, err, sizeof err);
    lua_pop(L, 1); /* args */
    if (rc != SA_OK) {
        lua_pushstring(L, err);
        lua_rawsetp(L, keep, &lsa_msargs_error_key);
        lua_pushinteger(L, rc);
        lua_rawsetp(L, keep, &lsa_msargs_status_key);
        lua_pushnil(L);
        return;
    }
    /* the only Lua allocation while json is held: protected, so json is
     * freed whatever happens, then a memory error goes on as raised */
    lua_pushcfunction(L, lsa_push_cstring);
    lua_pushlightuserdata(L, json);
    rc = lua_pcall(L, 1, 1, 0);
    sa_free(json);
    if (rc != LUA_OK)
        lua_error(L);
}

enum lsa_req_opt {
    LSA_REQ_ACTIONS,
    LSA_REQ_FORMAT,
    LSA_REQ_VERSION,
    LSA_REQ_CAMERA_KIT,
    LSA_REQ_MASK_OVERLAY,
    LSA_REQ_MINISERVER,
    LSA_REQ_DEADLINE,
    LSA_REQ_FILE_NAME,
    LSA_REQ_BUFFER,
    LSA_REQ_URL,
    LSA_REQ_FILE_ID,
    LSA_REQ_ON_PROGRESS,
    LSA_REQ_ON_DONE,
    LSA_REQ_DELETE_AFTER
};

static const char *const lsa_req_names[] = {
    "actions", "format", "version", "pf_camera_kit", "mask_overlay",
    "miniserver_args", "deadline", "file_name", "buffer", "url", "file_id",
    "on_progress", "on_done", "delete_after", NULL};

static const char *lsa_req_string(lua_State *L, const char *name, size_t *len)
{
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "option '%s': string expected, got %s", name,
                   luaL_typename(L, -1));
    return lua_tolstring(L, -1, len);
}

static int lsa_req_bool(lua_State *L, const char *name)
{
    if (lua_type(L, -1) != LUA_TBOOLEAN)
        luaL_error(L, "option '%s': boolean expected, got %s", name,
                   luaL_typename(L, -1));
    return lua_toboolean(L, -1);
}

/* Fill req from the options table at `opts` (the value being read is on
 * the top of the stack).  Strings are borrowed from the table; derived
 * values (action array, miniserver JSON) are parked in `keep`, a table
 * that lives on the stack until the submit returns.  The source buffer
 * and the callbacks go to the job's uservalues (job at `ji`). */
static void lsa_req_option(lua_State *L, int which, int keep, int ji,
                           sa_request *req)
{
    const char *name = lsa_req_names[which];
    size_t len;

    switch (which) {
    case LSA_REQ_ACTIONS:
        req->actions = lsa_check_actions(L, -1, &req->n_actions);
        lua_rawsetp(L, keep, &req->actions);
        break;
    case LSA_REQ_FORMAT: {
        static const char *const formats[] = {"json", "zip", NULL};
        lsa_req_string(L, name, &len);
        req->format = luaL_checkoption(L, -1, NULL, formats) == 0
                          ? SA_FORMAT_JSON
                          : SA_FORMAT_ZIP;
        break;
    }
    case LSA_REQ_VERSION:
        req->api_version = lsa_check_api_version(L, -1, name);
        break;
    case LSA_REQ_CAMERA_KIT:
        req->pf_camera_kit = lsa_req_bool(L, name);
        break;
    case LSA_REQ_MASK_OVERLAY:
        req->mask_overlay = lsa_req_bool(L, name);
        break;
    case LSA_REQ_MINISERVER:
        if (lua_type(L, -1) == LUA_TTABLE)
            lsa_push_miniserver_args(L, -1, keep);
        else
            lua_pushstring(L, lsa_req_string(L, name, &len));
        req->miniserver_args_json = lua_tostring(L, -1);
        lua_rawsetp(L, keep, &req->miniserver_args_json);
        break;
    case LSA_REQ_DEADLINE:
        if (lua_type(L, -1) != LUA_TNUMBER)
            luaL_error(L, "option 'deadline': number expected, got %s",
                       luaL_typename(L, -1));
        req->deadline_ms = lsa_seconds_to_ms(L, lua_tonumber(L, -1), name);
        break;
    case LSA_REQ_FILE_NAME:
        req->file_name = lsa_req_string(L, name, &len);
        break;
    case LSA_REQ_BUFFER:
        req->buffer = lsa_req_string(L, name, &req->buffer_len);
        lua_pushvalue(L, -1);
        lua_setiuservalue(L, ji, LSA_JOB_UV_BUFFER);
        break;
    case LSA_REQ_URL:
        req->image_url = lsa_req_string(L, name, &len);
        break;
    case LSA_REQ_FILE_ID:
        req->file_id = lsa_req_string(L, name, &len);
        break;
    case LSA_REQ_ON_PROGRESS:
    case LSA_REQ_ON_DONE:
        if (lua_type(L, -1) != LUA_TFUNCTION)
            luaL_error(L, "option '%s': function expected, got %s", name,
                       luaL_typename(L, -1));
        lua_pushvalue(L, -1);
        lua_setiuservalue(L, ji, which == LSA_REQ_ON_DONE
                                     ? LSA_JOB_UV_DONE
                                     : LSA_JOB_UV_PROGRESS);
        break;
    case LSA_REQ_DELETE_AFTER:
        req->delete_after = lsa_req_bool(L, name);
        break;
    default:
        luaL_error(L, "option '%s': internal error", name);
    }
}

/* Inside a lua_next walk: the index in lsa_req_names of the key at -2 (the
 * index of the final NULL when it names no option), its name in *name. */
static int lsa_req_which(lua_State *L, const char **name)
{
    int which;

    *name = lsa_option_name(L);
    for (which = 0; lsa_req_names[which] != NULL; which++) {
        if (strcmp(lsa_req_names[which], *name) == 0)
            break;
    }
    return which;
}

/* The options table at opts when only the options in the mask `allowed`
 * (LSA_REQ_BIT) are taken: another raises "unknown <what> option" naming
 * the list. */
#define LSA_REQ_BIT(x) (1u << LSA_REQ_##x)
static void lsa_req_some_options(lua_State *L, int opts, int keep, int ji,
                                 sa_request *req, unsigned allowed,
                                 const char *what, const char *list)
{
    lua_pushnil(L);
    while (lua_next(L, opts) != 0) {
        const char *name;
        int which = lsa_req_which(L, &name);

        if (lsa_req_names[which] == NULL || !(allowed & (1u << which)))
            luaL_error(L, "unknown %s option '%s' (%s)", what, name, list);
        lsa_req_option(L, which, keep, ji, req);
        lua_pop(L, 1);
    }
}

/* The start of submit, resume and the account calls (client at 1, its
 * options at 3): pushes the keep table (4) and a new job (5) of client lc. */
static lsa_job *lsa_job_push_new(lua_State *L, lsa_client *lc)
{
    lsa_job *lj;

    lua_newtable(L); /* 4: keep */
    lj = lua_newuserdatauv(L, sizeof(*lj), LSA_JOB_NUV); /* 5 */
    memset(lj, 0, sizeof(*lj));
    luaL_setmetatable(L, LSA_JOB_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, 5, LSA_JOB_UV_CLIENT);
    lj->owner = lc;
    return lj;
}

/* Into the client's running set (pushed at 6) before the C job exists
 * (the only allocation left), so nothing can fail between the start and
 * the bookkeeping. */
static void lsa_job_enter_running(lua_State *L, lsa_job *lj)
{
    lua_getiuservalue(L, 1, LSA_CLIENT_UV_JOBS); /* 6 */
    lua_pushvalue(L, 5);
    lua_rawsetp(L, 6, lj);
}

/* After the core call that started lj (rc its status): the job, or nil,
 * message, code with the job out of the running set again. */
static int lsa_job_started(lua_State *L, lsa_client *lc, lsa_job *lj, int rc)
{
    if (rc != SA_OK) {
        lj->job = NULL;
        lj->closed = 1;
        lsa_job_forget_events(lj);
        lua_pushnil(L);
        lua_rawsetp(L, 6, lj);
        return lsa_push_error(L, rc, sa_client_errmsg(lc->client));
    }
    lua_pushvalue(L, 5);
    return 1;
}

static void lsa_req_options(lua_State *L, int opts, int keep, int ji,
                            sa_request *req)
{
    lua_pushnil(L);
    while (lua_next(L, opts) != 0) {
        const char *name;
        int which = lsa_req_which(L, &name);

        if (lsa_req_names[which] == NULL)
            luaL_error(L, "unknown analysis option '%s'", name);
        lsa_req_option(L, which, keep, ji, req);
        lua_pop(L, 1);
    }
}

/* ------------------------------------------------------------------ */
/* Submit                                                              */
/* ------------------------------------------------------------------ */

int lsa_job_submit(lua_State *L)
{
    const char *defaults[SA_MAX_ACTIONS];
    lsa_client *lc = lsa_check_open_client(L, 1);
    sa_request req;
    lsa_job *lj;
    int rc;

    sa_request_init(&req);
    if (!lua_isnoneornil(L, 2))
        req.file_path = luaL_checkstring(L, 2);
    if (!lua_isnoneornil(L, 3))
        luaL_checktype(L, 3, LUA_TTABLE);
    lua_settop(L, 3);
    lj = lsa_job_push_new(L, lc);

    if (lua_istable(L, 3))
        lsa_req_options(L, 3, 4, 5, &req);
    if (lua_rawgetp(L, 4, &lsa_msargs_status_key) == LUA_TNUMBER) {
        int status = (int)lua_tointeger(L, -1);
        lj->closed = 1;
        lsa_job_forget_events(lj);
        lua_rawgetp(L, 4, &lsa_msargs_error_key);
        return lsa_push_error(L, status, lua_tostring(L, -1));
    }
    lua_pop(L, 1);
    if (req.actions == NULL) {
        req.n_actions = sa_default_actions(SA_TIER_SD, defaults,
                                           SA_MAX_ACTIONS);
        req.actions = defaults;
    }
    req.callback = lsa_job_event;
    req.user_data = lj;

    lsa_job_enter_running(L, lj);
    rc = sa_client_submit(lc->client, &req, &lj->job);
    return lsa_job_started(L, lc, lj, rc);
}

/* ------------------------------------------------------------------ */
/* Resume                                                              */
/* ------------------------------------------------------------------ */

/* The options of client:resume: version, deadline and the callbacks (a
 * subset of submit's, read the same way). */
static void lsa_resume_options(lua_State *L, int opts, int keep, int ji,
                               sa_resume_options *ro)
{
    sa_request req;

    sa_request_init(&req);
    lsa_req_some_options(L, opts, keep, ji, &req,
                         LSA_REQ_BIT(VERSION) | LSA_REQ_BIT(DEADLINE)
                             | LSA_REQ_BIT(ON_PROGRESS) | LSA_REQ_BIT(ON_DONE),
                         "resume", "version, deadline, on_progress, on_done");
    ro->api_version = req.api_version;
    ro->deadline_ms = req.deadline_ms;
}

int lsa_job_resume(lua_State *L)
{
    lsa_client *lc = lsa_check_open_client(L, 1);
    size_t len;
    const char *task_id = luaL_checklstring(L, 2, &len);
    sa_resume_options ro;
    lsa_job *lj;
    int rc;

    if (!lua_isnoneornil(L, 3))
        luaL_checktype(L, 3, LUA_TTABLE);
    lua_settop(L, 3);
    if (len != strlen(task_id)) /* the core would see a shorter id */
        return lsa_push_error(L, SA_ERR_SOURCE,
                              "task_id holds a NUL character");
    lj = lsa_job_push_new(L, lc);

    sa_resume_options_init(&ro);
    if (lua_istable(L, 3))
        lsa_resume_options(L, 3, 4, 5, &ro);
    ro.callback = lsa_job_event;
    ro.user_data = lj;

    lsa_job_enter_running(L, lj);
    rc = sa_client_resume(lc->client, task_id, &ro, &lj->job);
    return lsa_job_started(L, lc, lj, rc);
}

/* ------------------------------------------------------------------ */
/* Account calls                                                       */
/* ------------------------------------------------------------------ */

/* client:credit_job / price_list_job / delete_job: as resume, with the
 * account options (deadline and the callbacks). */
static int lsa_job_account(lua_State *L, int op)
{
    lsa_client *lc = lsa_check_open_client(L, 1);
    const char *task_id = NULL;
    int oi = op == 3 ? 3 : 2;
    size_t len = 0;
    sa_account_options ao;
    sa_request req;
    lsa_job *lj;
    int rc;

    if (op == 3)
        task_id = luaL_checklstring(L, 2, &len);
    if (!lua_isnoneornil(L, oi))
        luaL_checktype(L, oi, LUA_TTABLE);
    lua_settop(L, oi);
    if (op != 3) {  /* the same stack as resume: options at 3 */
        lua_pushnil(L);
        lua_insert(L, 2);
    }
    if (task_id != NULL && len != strlen(task_id))
        return lsa_push_error(L, SA_ERR_SOURCE,
                              "task_id holds a NUL character");
    lj = lsa_job_push_new(L, lc);

    sa_account_options_init(&ao);
    sa_request_init(&req);
    if (lua_istable(L, 3))
        lsa_req_some_options(L, 3, 4, 5, &req,
                             LSA_REQ_BIT(DEADLINE) | LSA_REQ_BIT(ON_PROGRESS)
                                 | LSA_REQ_BIT(ON_DONE),
                             "account", "deadline, on_progress, on_done");
    ao.deadline_ms = req.deadline_ms;
    ao.callback = lsa_job_event;
    ao.user_data = lj;

    lsa_job_enter_running(L, lj);
    if (op == 1)
        rc = sa_client_credit(lc->client, &ao, &lj->job);
    else if (op == 2)
        rc = sa_client_price_list(lc->client, &ao, &lj->job);
    else
        rc = sa_client_delete(lc->client, task_id, &ao, &lj->job);
    return lsa_job_started(L, lc, lj, rc);
}

int lsa_job_credit(lua_State *L)
{
    return lsa_job_account(L, 1);
}

int lsa_job_price_list(lua_State *L)
{
    return lsa_job_account(L, 2);
}

int lsa_job_delete(lua_State *L)
{
    return lsa_job_account(L, 3);
}

/* ------------------------------------------------------------------ */
/* The end of a job                                                    */
/* ------------------------------------------------------------------ */

static void lsa_set_string(lua_State *L, const char *key, const char *value)
{
    if (value != NULL && value[0] != '\0') {
        lua_pushstring(L, value);
        lua_setfield(L, -2, key);
    }
}

static void lsa_set_integer(lua_State *L, const char *key, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, key);
}

/* An amount: an integer when whole, else a float. */
static void lsa_push_amount(lua_State *L, double v)
{
    if (v == (double)(long long)v && v > -9.0e15 && v < 9.0e15)
        lua_pushinteger(L, (lua_Integer)v);
    else
        lua_pushnumber(L, v);
}

/* {available=, by_type={type=amount}, grants={{type=, amount=, raw=}}} */
static void lsa_push_credit(lua_State *L, const sa_credit *cr)
{
    size_t i;

    lua_createtable(L, 0, 3);
    lsa_push_amount(L, cr->available);
    lua_setfield(L, -2, "available");
    lua_createtable(L, 0, (int)cr->n_types);
    for (i = 0; i < cr->n_types; i++) {
        lsa_push_amount(L, cr->by_type[i].amount);
        lua_setfield(L, -2, cr->by_type[i].type);
    }
    lua_setfield(L, -2, "by_type");
    lua_createtable(L, (int)cr->n_grants, 0);
    for (i = 0; i < cr->n_grants; i++) {
        lua_createtable(L, 0, 3);
        lua_pushstring(L, cr->grants[i].type);
        lua_setfield(L, -2, "type");
        lsa_push_amount(L, cr->grants[i].amount);
        lua_setfield(L, -2, "amount");
        lua_pushstring(L, cr->grants[i].raw);
        lua_setfield(L, -2, "raw");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "grants");
}

/* delete_after: how the delete went, on the result table at the top:
 * deleted (boolean), and when it failed delete_error (message),
 * delete_error_code (status name), delete_api_error_code. */
static void lsa_result_delete_fields(lua_State *L, const sa_job *job)
{
    int st = sa_job_delete_status(job);

    if (st == SA_ERR_NOT_DONE)
        return;
    lua_pushboolean(L, st == SA_OK);
    lua_setfield(L, -2, "deleted");
    if (st == SA_OK)
        return;
    lua_pushstring(L, sa_job_delete_errmsg(job)[0] ? sa_job_delete_errmsg(job)
                                                   : sa_strerror(st));
    lua_setfield(L, -2, "delete_error");
    lua_pushstring(L, sa_status_name(st));
    lua_setfield(L, -2, "delete_error_code");
    if (sa_job_delete_api_error_code(job) != NULL) {
        lua_pushstring(L, sa_job_delete_api_error_code(job));
        lua_setfield(L, -2, "delete_api_error_code");
    }
}

/* an array of {description, amount, unit, proc_unit, run_task_url,
 * feature, raw} */
static void lsa_push_prices(lua_State *L, const sa_price_list *pl)
{
    size_t i;

    lua_createtable(L, (int)pl->n_skus, 1);
    for (i = 0; i < pl->n_skus; i++) {
        const sa_sku *k = &pl->skus[i];
        /* every string field, "" included */
        const struct {
            const char *key, *value;
        } f[] = {{"description", k->description}, {"unit", k->unit},
                 {"proc_unit", k->proc_unit}, {"raw", k->raw},
                 {"run_task_url", k->run_task_url}, {"feature", k->feature}};
        size_t j;

        lua_createtable(L, 0, 7);
        for (j = 0; j < sizeof f / sizeof f[0]; j++) {
            lua_pushstring(L, f[j].value);
            lua_setfield(L, -2, f[j].key);
        }
        lsa_push_amount(L, k->amount);
        lua_setfield(L, -2, "amount");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
}

/* Push a table describing the job now: state, status, code, message,
 * ids, http_status, units, polls; with the result table when `with_result`
 * and the job is DONE. */
static void lsa_push_info(lua_State *L, const sa_job *job, int with_result)
{
    int state = sa_job_state(job);
    int status = sa_job_status(job);

    lua_createtable(L, 0, 14);
    lsa_set_string(L, "state", sa_job_state_name(state));
    lsa_set_integer(L, "status", status);
    if (status != SA_OK && status != SA_ERR_NOT_DONE) {
        const char *msg = sa_job_errmsg(job);
        lsa_set_string(L, "code", sa_status_name(status));
        lsa_set_string(L, "message", (msg != NULL && msg[0] != '\0')
                                         ? msg
                                         : sa_strerror(status));
    }
    lsa_set_string(L, "task_id", sa_job_task_id(job));
    lsa_set_string(L, "file_id", sa_job_file_id(job));
    lsa_set_string(L, "request_id", sa_job_request_id(job));
    lsa_set_string(L, "api_error_code", sa_job_api_error_code(job));
    lsa_set_string(L, "engine_error", sa_job_engine_error(job));
    if (sa_job_http_status(job) > 0)
        lsa_set_integer(L, "http_status", sa_job_http_status(job));
    lsa_set_integer(L, "units", sa_job_units(job));
    lsa_set_integer(L, "polls", sa_job_polls(job));
    if (with_result && status == SA_OK) {
        const sa_result *r = sa_job_result(job);
        if (r != NULL) {
            lsa_push_result(L, r);
            lsa_result_delete_fields(L, job);
            lua_setfield(L, -2, "result");
        }
    }
    /* an account job: its (small) result at once; a delete: true */
    if (status == SA_OK && sa_job_result(job) == NULL) {
        if (sa_job_credit(job) != NULL)
            lsa_push_credit(L, sa_job_credit(job));
        else if (sa_job_price_list(job) != NULL)
            lsa_push_prices(L, sa_job_price_list(job));
        else
            lua_pushboolean(L, 1);
        lua_setfield(L, -2, "result");
    }
}

void lsa_job_finish(lua_State *L, int idx)
{
    lsa_job *lj = lua_touserdata(L, idx);

    if (lj->final || lj->job == NULL || lj->owner == NULL ||
        lj->owner->client == NULL || !sa_job_done(lj->job))
        return;
    idx = lua_absindex(L, idx);
    /* The result table (scores, files, the JSON text: tens of KB of Lua
     * memory) is built on first use, not here: this runs in step() for
     * every job that ends, and a frame loop that only reads job:ok()
     * should not pay for it, nor its garbage collector. */
    lsa_push_info(L, lj->job, 0);
    lua_setiuservalue(L, idx, LSA_JOB_UV_FINAL);
    lj->final = 1;
    /* DONE, or a fetch that failed with the files that did arrive */
    if (sa_job_result(lj->job) != NULL) {
        lj->result_lazy = 1;
        lua_getiuservalue(L, idx, LSA_JOB_UV_CLIENT);
        lua_getiuservalue(L, -1, LSA_CLIENT_UV_LAZY);
        lua_pushvalue(L, idx);
        lua_rawsetp(L, -2, lj);
        lua_pop(L, 2);
    }
}

/* Take the job at idx out of its client's LSA_CLIENT_UV_LAZY table. */
static void lsa_job_unlazy(lua_State *L, int idx)
{
    lsa_job *lj = lua_touserdata(L, idx);

    lj->result_lazy = 0;
    lua_getiuservalue(L, idx, LSA_JOB_UV_CLIENT);
    if (lua_getiuservalue(L, -1, LSA_CLIENT_UV_LAZY) == LUA_TTABLE) {
        lua_pushnil(L);
        lua_rawsetp(L, -2, lj);
    }
    lua_pop(L, 2);
}

void lsa_job_materialize(lua_State *L, int idx)
{
    lsa_job *lj = lua_touserdata(L, idx);
    const sa_result *r;

    if (!lj->result_lazy)
        return;
    idx = lua_absindex(L, idx);
    r = (lj->job != NULL && lj->owner != NULL && lj->owner->client != NULL)
            ? sa_job_result(lj->job) : NULL;
    if (r != NULL) {
        /* built before the job leaves the lazy table: if Lua runs out of
         * memory here, the next use (or the client's close) tries again */
        lua_getiuservalue(L, idx, LSA_JOB_UV_FINAL);
        lsa_push_result(L, r);
        lsa_result_delete_fields(L, lj->job);
        lsa_result_link(L, lua_gettop(L), idx);
        lua_setfield(L, -2, "result");
        lua_pop(L, 1);
    }
    lsa_job_unlazy(L, idx);
}

void lsa_job_release_buffer(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    lua_pushnil(L);
    lua_setiuservalue(L, idx, LSA_JOB_UV_BUFFER);
}

void lsa_job_detach(lua_State *L, int idx)
{
    lsa_job *lj = lua_touserdata(L, idx);

    idx = lua_absindex(L, idx);
    lsa_job_forget_events(lj);
    if (lj->final || lj->job == NULL)
        return;
    if (sa_job_done(lj->job)) {
        lsa_job_finish(L, idx);
    } else {
        lua_createtable(L, 0, 4);
        lsa_set_string(L, "state", sa_job_state_name(SA_JOB_CANCELLED));
        lsa_set_integer(L, "status", SA_ERR_CANCELLED);
        lsa_set_string(L, "code", sa_status_name(SA_ERR_CANCELLED));
        lsa_set_string(L, "message", "the client was closed while the job "
                                     "ran (the task, if any, was abandoned)");
        lsa_set_string(L, "task_id", sa_job_task_id(lj->job));
        lua_setiuservalue(L, idx, LSA_JOB_UV_FINAL);
        lj->final = 1;
    }
    /* The core frees the client next: it no longer reads the buffer. */
    lsa_job_release_buffer(L, idx);
}

/* ------------------------------------------------------------------ */
/* Methods                                                             */
/* ------------------------------------------------------------------ */

/* The open job at idx, its end cached when the core says it has ended. */
static lsa_job *lsa_job_sync(lua_State *L, int idx)
{
    lsa_job *lj = luaL_checkudata(L, idx, LSA_JOB_MT);

    luaL_argcheck(L, !lj->closed, idx, "job is closed");
    if (!lj->final)
        lsa_job_finish(L, idx);
    return lj;
}

/* Push field `key` of the final table of the job at idx. */
static int lsa_final_field(lua_State *L, int idx, const char *key)
{
    if (strcmp(key, "result") == 0)
        lsa_job_materialize(L, idx);
    lua_getiuservalue(L, idx, LSA_JOB_UV_FINAL);
    lua_getfield(L, -1, key);
    lua_remove(L, -2);
    return lua_type(L, -1);
}

/* Result table, or nil, message, code of an ended job at idx; a fetch
 * that failed adds the result table of the files that did arrive. */
static int lsa_push_outcome(lua_State *L, int idx)
{
    lua_Integer status;

    lsa_final_field(L, idx, "status");
    status = lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (status == SA_OK) {
        if (lsa_final_field(L, idx, "result") != LUA_TNIL)
            return 1;
        lua_pop(L, 1);
        return lsa_push_error(L, SA_ERR_PROTOCOL, "the job ended without "
                                                  "a result");
    }
    lua_pushnil(L);
    lsa_final_field(L, idx, "message");
    lsa_final_field(L, idx, "code");
    if (lsa_final_field(L, idx, "result") != LUA_TNIL)
        return 4;
    lua_pop(L, 1);
    return 3;
}

static int lsa_job_done_m(lua_State *L)
{
    lsa_job *lj = lsa_job_sync(L, 1);

    lua_pushboolean(L, lj->final);
    return 1;
}

/* job:state(): the state name ("polling", "done", ...: sa_job_state_name). */
static int lsa_job_state_m(lua_State *L)
{
    lsa_job *lj = lsa_job_sync(L, 1);

    if (lj->final)
        lsa_final_field(L, 1, "state");
    else
        lua_pushstring(L, sa_job_state_name(sa_job_state(lj->job)));
    return 1;
}

/* job:status(): state name, then code and message when the job failed or
 * was cancelled. */
static int lsa_job_status_m(lua_State *L)
{
    lsa_job *lj = lsa_job_sync(L, 1);

    if (!lj->final) {
        lua_pushstring(L, sa_job_state_name(sa_job_state(lj->job)));
        return 1;
    }
    lsa_final_field(L, 1, "state");
    if (lsa_final_field(L, 1, "code") == LUA_TNIL) {
        lua_pop(L, 1);
        return 1;
    }
    lsa_final_field(L, 1, "message");
    return 3;
}

/* job:result(): the result table, or nil, message, code. */
static int lsa_job_result_m(lua_State *L)
{
    lsa_job *lj = lsa_job_sync(L, 1);

    if (!lj->final)
        return lsa_push_error(L, SA_ERR_NOT_DONE, "the job has not ended");
    return lsa_push_outcome(L, 1);
}

/* job:wait([timeout]): the result table, or nil, message, code (the code
 * of the job's failure, or "wait_timeout"/"interrupted" while it runs). */
static int lsa_job_wait_m(lua_State *L)
{
    lsa_job *lj = lsa_job_sync(L, 1);
    long ms = -1;
    int rc = SA_OK;

    if (!lua_isnoneornil(L, 2)) {
        ms = lsa_seconds_to_ms(L, luaL_checknumber(L, 2), "timeout");
        if (ms < 0)
            ms = -1;
    }
    lua_settop(L, 1);
    lua_getiuservalue(L, 1, LSA_JOB_UV_CLIENT); /* 2 */
    if (!lj->final || lj->pending)
        rc = lsa_wait(L, 2, lj, ms);
    if (lj->closed)
        return luaL_error(L, "the job was closed while waiting");
    lsa_job_finish(L, 1);
    if (!lj->final)
        return lsa_push_error(L, rc != SA_OK ? rc : SA_ERR_NOT_DONE, NULL);
    return lsa_push_outcome(L, 1);
}

static int lsa_job_stop(lua_State *L, int abandon)
{
    lsa_job *lj = lsa_job_sync(L, 1);
    int rc;

    if (!lj->final) {
        rc = abandon ? sa_job_abandon(lj->job) : sa_job_cancel(lj->job);
        if (rc != SA_OK)
            return lsa_push_error(L, rc, sa_job_errmsg(lj->job));
        lsa_job_finish(L, 1);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* job:cancel(): stop waiting; a created task keeps being polled in the
 * background.  true, or nil, message, code. */
static int lsa_job_cancel_m(lua_State *L)
{
    return lsa_job_stop(L, 0);
}

/* job:abandon(): stop waiting and stop polling (the task may be billed). */
static int lsa_job_abandon_m(lua_State *L)
{
    return lsa_job_stop(L, 1);
}

/* job:info(): a new table with the details of the job (see lsa_push_info;
 * no result). */
static int lsa_job_info_m(lua_State *L)
{
    lsa_job *lj = lsa_job_sync(L, 1);

    if (!lj->final) {
        lsa_push_info(L, lj->job, 0);
        return 1;
    }
    lua_createtable(L, 0, 14);
    lua_getiuservalue(L, 1, LSA_JOB_UV_FINAL);
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        if (lua_type(L, -2) == LUA_TSTRING &&
            strcmp(lua_tostring(L, -2), "result") == 0) {
            lua_pop(L, 1);
            continue;
        }
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, -5);
    }
    lua_pop(L, 1);
    return 1;
}

/* job:task_id(): the task id once known, else nil. */
static int lsa_job_task_id_m(lua_State *L)
{
    lsa_job *lj = lsa_job_sync(L, 1);
    const char *id;

    if (lj->final) {
        lsa_final_field(L, 1, "task_id");
        return 1;
    }
    id = sa_job_task_id(lj->job);
    if (id != NULL && id[0] != '\0')
        lua_pushstring(L, id);
    else
        lua_pushnil(L);
    return 1;
}

/* Close the job at idx: release the C handle (the client keeps polling a
 * created task in the background, without callbacks).  Idempotent. */
static void lsa_job_close(lua_State *L, int idx)
{
    lsa_job *lj = lua_touserdata(L, idx);
    sa_job *job = lj->job;

    if (lj->closed)
        return;
    lj->closed = 1; /* lsa_job_event ignores this job from now on */
    lsa_job_forget_events(lj);
    if (lj->result_lazy)  /* a closed job's result can no longer be read */
        lsa_job_unlazy(L, idx);
    if (lj->owner != NULL && lj->owner->client != NULL) {
        lua_getiuservalue(L, idx, LSA_JOB_UV_CLIENT);
        lua_getiuservalue(L, -1, LSA_CLIENT_UV_JOBS);
        lua_pushnil(L);
        lua_rawsetp(L, -2, lj);
        lua_pop(L, 2);
    }
    lj->job = NULL;
    sa_job_free(job);
    lsa_job_release_buffer(L, idx);
}

/* ------------------------------------------------------------------ */
/* Mask downloads                                                      */
/* ------------------------------------------------------------------ */

int lsa_fetch_start(lua_State *L, int ci, int ji, const char *folder)
{
    lsa_client *lc = lua_touserdata(L, ci);
    lsa_job *src = lua_touserdata(L, ji);
    sa_fetch_options o;
    lsa_job *lj;
    int rc, fi;

    ci = lua_absindex(L, ci);
    lj = lua_newuserdatauv(L, sizeof(*lj), LSA_JOB_NUV);
    fi = lua_gettop(L);
    memset(lj, 0, sizeof(*lj));
    luaL_setmetatable(L, LSA_JOB_MT);
    lua_pushvalue(L, ci);
    lua_setiuservalue(L, -2, LSA_JOB_UV_CLIENT);
    lj->owner = lc;
    /* Into the running set before the C job exists, as a submit: the
     * fetch ends and is delivered even when the script drops it. */
    lua_getiuservalue(L, ci, LSA_CLIENT_UV_JOBS);
    lua_pushvalue(L, fi);
    lua_rawsetp(L, -2, lj);
    lua_pop(L, 1);
    sa_fetch_options_init(&o);
    o.folder = folder;
    o.callback = lsa_job_event;
    o.user_data = lj;   /* its own, never src's (src may be collected) */
    rc = sa_client_fetch(lc->client, src->job, &o, &lj->job);
    if (rc != SA_OK) {
        lj->job = NULL;
        lj->closed = 1;
        lsa_job_forget_events(lj);
        lua_getiuservalue(L, ci, LSA_CLIENT_UV_JOBS);
        lua_pushnil(L);
        lua_rawsetp(L, -2, lj);
        lua_pop(L, 1);
        return lsa_push_error(L, rc, sa_client_errmsg(lc->client));
    }
    return 1;
}

int lsa_fetch_files(lua_State *L, int ji, const char *folder,
                    long timeout_ms)
{
    lsa_job *src = lua_touserdata(L, ji);
    lsa_job *fj;
    int ci, fi, rc, n;

    ji = lua_absindex(L, ji);
    if (src->closed || src->job == NULL)
        return lsa_push_error(L, SA_ERR_INVALID_ARGUMENT,
                              "the job of this result was closed");
    lua_getiuservalue(L, ji, LSA_JOB_UV_CLIENT);
    ci = lua_gettop(L);
    if (((lsa_client *)lua_touserdata(L, ci))->client == NULL)
        return lsa_push_error(L, SA_ERR_INVALID_ARGUMENT,
                              "the client of this result was closed");
    n = lsa_fetch_start(L, ci, ji, folder);
    if (n != 1)
        return n;
    fi = lua_gettop(L);
    fj = lua_touserdata(L, fi);
    rc = lsa_wait(L, ci, fj, timeout_ms);
    lsa_job_finish(L, fi);
    if (!fj->final) {
        lsa_job_close(L, fi);
        return lsa_push_error(L, rc != SA_OK ? rc : SA_ERR_NOT_DONE, NULL);
    }
    n = lsa_push_outcome(L, fi);
    if (n == 1 || n == 4) {   /* the result, or the files that arrived */
        lua_getfield(L, -1, "files");
        lua_replace(L, -2);
    }
    lsa_job_close(L, fi);
    return n;
}

int lsa_client_fetch_masks(lua_State *L)
{
    lsa_client *lc = lsa_check_open_client(L, 1);
    lsa_job *src = luaL_checkudata(L, 2, LSA_JOB_MT);
    const char *folder = luaL_optstring(L, 3, NULL);

    luaL_argcheck(L, !src->closed, 2, "job is closed");
    luaL_argcheck(L, src->owner == lc, 2, "a job of another client");
    lua_settop(L, 3);
    return lsa_fetch_start(L, 1, 2, folder);
}

static int lsa_job_close_m(lua_State *L)
{
    luaL_checkudata(L, 1, LSA_JOB_MT);
    lsa_job_close(L, 1);
    return 0;
}

static int lsa_job_tostring(lua_State *L)
{
    lsa_job *lj = luaL_checkudata(L, 1, LSA_JOB_MT);
    const char *state;
    const char *task = NULL;

    if (lj->closed)
        return lsa_tostring(L, LSA_JOB_MT, lj, "closed");
    if (lj->final) {
        lsa_final_field(L, 1, "state");
        state = lua_tostring(L, -1);
        if (lsa_final_field(L, 1, "task_id") == LUA_TSTRING)
            task = lua_tostring(L, -1);
    } else {
        state = sa_job_state_name(sa_job_state(lj->job));
        task = sa_job_task_id(lj->job);
    }
    if (task != NULL && task[0] != '\0')
        state = lua_pushfstring(L, "%s, task %s", state, task);
    return lsa_tostring(L, LSA_JOB_MT, lj, state);
}

void lsa_job_register(lua_State *L)
{
    /* close: added by lsa_new_class */
    static const luaL_Reg methods[] = {
        {"done", lsa_job_done_m},
        {"state", lsa_job_state_m},
        {"status", lsa_job_status_m},
        {"result", lsa_job_result_m},
        {"wait", lsa_job_wait_m},
        {"cancel", lsa_job_cancel_m},
        {"abandon", lsa_job_abandon_m},
        {"info", lsa_job_info_m},
        {"task_id", lsa_job_task_id_m},
        {NULL, NULL}};

    lsa_new_class(L, LSA_JOB_MT, lsa_job_close_m, lsa_job_tostring, methods);
}
