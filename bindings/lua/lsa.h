/*
 * lsa.h - shared declarations of the Lua 5.4 binding skinanalysis.core.
 *
 * The binding is thin: it translates Lua values to the public C API
 * (core/include/skinanalysis.h) and back.  Sugar (analyze, coroutine
 * helpers, the scheduler) lives in lua/skinanalysis.lua.
 *
 * Lifetime model
 *   - Every handle is a full userdata whose metatable is set before the C
 *     handle is allocated, so __gc always finds a consistent object.
 *   - A job holds its client through uservalue LSA_JOB_UV_CLIENT, so a
 *     client is never collected while one of its jobs is reachable.
 *   - A client holds every job that has not ended in its "running set"
 *     (uservalue LSA_CLIENT_UV_JOBS, light userdata -> job userdata), so a
 *     job whose handle the script dropped still ends and still gets its
 *     on_done call.  The set entry goes when the terminal event is
 *     dispatched, when the job is closed, or when the client is closed.
 *
 * Callbacks
 *   The core calls sa_job_cb (and the log hook) from inside
 *   sa_client_step / sa_job_wait / sa_client_run / sa_job_cancel /
 *   sa_client_free.  Those C callbacks never call Lua: they record the
 *   event in a fixed-size ring in the job (or a bounded log ring in the
 *   client) and return.  client:step(), client:run() and job:wait() deliver
 *   the recorded events to Lua after the core call has returned, each
 *   under lua_pcall on the calling coroutine.  The first Lua error stops
 *   the delivery and is re-raised by the method that was delivering;
 *   events not yet delivered stay queued for the next call.
 *
 * No C globals: metatables live in the registry under their names, the
 * global-init sentinel under the address of a constant key.
 */
#ifndef LSA_H
#define LSA_H

#include <stddef.h>

#include <lua.h>
#include <lauxlib.h>

#include "skinanalysis.h"

/* Everything declared below stays inside core.so even when the module is
 * built without -fvisibility=hidden (LuaRocks' builtin backend): only
 * luaopen_skinanalysis_core is exported. */
#if defined(__GNUC__)
#pragma GCC visibility push(hidden)
#endif

#define LSA_CLIENT_MT "skinanalysis.client"
#define LSA_JOB_MT "skinanalysis.job"
#define LSA_RESULT_MT "skinanalysis.result"

/* Uservalues of a client userdata. */
#define LSA_CLIENT_UV_JOBS 1  /* running set: lightuserdata -> job */
#define LSA_CLIENT_UV_LOG 2   /* log function or nil */
#define LSA_CLIENT_UV_LAZY 3  /* weak: lightuserdata -> ended job whose
                                 result table is not built yet */
#define LSA_CLIENT_NUV 3

/* Uservalues of a job userdata. */
#define LSA_JOB_UV_CLIENT 1   /* the client userdata */
#define LSA_JOB_UV_BUFFER 2   /* source string (opts.buffer) until the end */
#define LSA_JOB_UV_PROGRESS 3 /* opts.on_progress or nil */
#define LSA_JOB_UV_DONE 4     /* opts.on_done or nil */
#define LSA_JOB_UV_FINAL 5    /* table cached when the job ends */
#define LSA_JOB_NUV 5

/* Capacity of a job's event ring.  A job has at most a few dozen state
 * changes in its life and they are delivered every step; when the ring is
 * full the newest event replaces the last one (a terminal event is always
 * the last event of a job, so it is never lost). */
#define LSA_EVQ 16

/* Capacity of a client's log ring; the oldest line goes when it is full. */
#define LSA_LOGQ 64

/* Most events delivered by one dispatch call (bounded loop); the rest are
 * delivered by the next call. */
#define LSA_DISPATCH_MAX 4096

/* Slice of a blocking wait between two deliveries of events (ms). */
#define LSA_WAIT_SLICE_MS 100

typedef struct lsa_client lsa_client;
typedef struct lsa_job lsa_job;

struct lsa_job {
    sa_job *job;              /* NULL until submitted, and once closed */
    int closed;               /* 1 once close()/__gc ran: events ignored */
    lsa_client *owner;        /* memory kept alive by LSA_JOB_UV_CLIENT */
    lsa_job *next_pending;    /* link in owner's pending list */
    int pending;              /* 1 while linked in owner's pending list */
    unsigned char ev[LSA_EVQ];/* states not yet delivered to Lua */
    int ev_head;
    int ev_count;
    int final;                /* 1 once LSA_JOB_UV_FINAL is filled */
    int result_lazy;          /* 1 while the final table lacks the result
                                 the C job holds (built on first use) */
};

typedef struct lsa_log_line {
    int level;
    char *text;               /* malloc'd copy */
} lsa_log_line;

struct lsa_client {
    sa_client *client;        /* NULL once closed */
    int api_version;          /* for __tostring */
    lsa_job *pend_head;       /* jobs with undelivered events, FIFO */
    lsa_job *pend_tail;
    lsa_log_line log[LSA_LOGQ];
    int log_head;
    int log_count;
    long log_dropped;         /* lines lost because the ring was full */
    /* While a blocking wait runs: the calling thread and the main thread,
     * and their hooks at the start, so the interrupt hook can notice that
     * the standalone interpreter's SIGINT handler installed a hook. */
    lua_State *wait_L;
    lua_State *wait_main;
    lua_Hook wait_hook;
    lua_Hook wait_main_hook;
};

/* lsa_module.c */

/* Push nil, message, code name and return 3 (the runtime-failure
 * convention).  msg NULL or "" means sa_strerror(status). */
int lsa_push_error(lua_State *L, int status, const char *msg);
/* Milliseconds on CLOCK_MONOTONIC. */
long long lsa_now_ms(void);
/* A Lua number of seconds (argument or field) as milliseconds; raises for
 * NaN, infinities and values out of range.  Negative values stay negative
 * (the core decides what they mean). */
long lsa_seconds_to_ms(lua_State *L, lua_Number s, const char *what);
/* A timeout argument in seconds at idx: nil or negative = no limit (-1). */
long lsa_timeout_arg(lua_State *L, int idx);
/* Inside a lua_next walk of an options table: the key at -2 as a string;
 * raises when it is not one. */
const char *lsa_option_name(lua_State *L);
/* An API version given as 20/21, 2.0/2.1 or "2.0"/"2.1"/"v2.1"; raises on
 * anything else. */
int lsa_check_api_version(lua_State *L, int idx, const char *what);
/* Build the metatable registered under `tname` (luaL_newmetatable):
 * __index (the `methods`), __name, __tostring, and when `close` is not
 * NULL the method close, __close and __gc (all three `close`). */
void lsa_new_class(lua_State *L, const char *tname, lua_CFunction close,
                   lua_CFunction tostring, const luaL_Reg *methods);

/* __tostring of every type: push "tname (detail): self" and return 1. */
int lsa_tostring(lua_State *L, const char *tname, const void *self,
                 const char *detail);

/* The action names in the table or string at idx as a C array (held by a
 * userdata pushed on the stack, so nothing leaks if a later check raises);
 * writes the count to *n.  Raises for non-string entries. */
const char **lsa_check_actions(lua_State *L, int idx, size_t *n);

/* lsa_client.c */

/* core.client(options): a client, or nil, message, code. */
int lsa_client_new(lua_State *L);
void lsa_client_register(lua_State *L);
/* The client at idx, raising when it is not a client or is closed. */
lsa_client *lsa_check_open_client(lua_State *L, int idx);
/* Deliver queued log lines and job events of the client at index ci to
 * Lua.  Returns 0 when everything was delivered (or the client was
 * closed), 1 with the error object of a raising callback on the top of the
 * stack. */
int lsa_dispatch(lua_State *L, int ci);
/* Run the client (or until the job lj ends, when lj is not NULL) for at
 * most timeout_ms (-1 = no limit), delivering events between slices of
 * LSA_WAIT_SLICE_MS.  The client userdata is at ci.  Returns SA_OK when
 * the job (or every job) has ended or the client was closed by a
 * callback, SA_ERR_WAIT_TIMEOUT, SA_ERR_INTERRUPTED or another negative
 * status; re-raises the error of a raising callback. */
int lsa_wait(lua_State *L, int ci, lsa_job *lj, long timeout_ms);

/* lsa_job.c */

/* client:submit(image, opts): a job, or nil, message, code. */
int lsa_job_submit(lua_State *L);
/* client:resume(task_id [, opts]) -> job | nil, msg, code
 * (sa_client_resume; opts: version, deadline, on_progress, on_done). */
int lsa_job_resume(lua_State *L);
/* client:credit_job([opts]), client:price_list_job([opts]),
 * client:delete_job(task_id [, opts]) -> job | nil, msg, code (the
 * account calls; opts: deadline, on_progress, on_done).  The job's result
 * is the balance table, the price list array, or true for a delete. */
int lsa_job_credit(lua_State *L);
int lsa_job_price_list(lua_State *L);
int lsa_job_delete(lua_State *L);
void lsa_job_register(lua_State *L);
/* The sa_job_cb installed on every job; records the event, never calls
 * Lua. */
int lsa_job_event(sa_job *job, int state, void *user_data);
/* Pop the oldest undelivered state of a job; -1 when none. */
int lsa_job_pop_event(lsa_job *lj);
/* Cache the job's end (status, message, details) in its LSA_JOB_UV_FINAL
 * table; its result table is built on first use (lsa_job_materialize).
 * The job userdata is at idx; the job must have ended.  Idempotent. */
void lsa_job_finish(lua_State *L, int idx);
/* Build the result table of the ended job at idx into its final table, if
 * that was left for later (see lsa_job_finish).  Before the client frees
 * the C jobs, lsa_client_close builds the ones still left. */
void lsa_job_materialize(lua_State *L, int idx);
/* Mark a job whose client is being closed as ended ("cancelled" unless it
 * had ended before), forget its events and its source buffer.  The job
 * userdata is at idx.  Must be called before sa_client_free. */
void lsa_job_detach(lua_State *L, int idx);
/* Forget the source buffer of the job at idx (after its end). */
void lsa_job_release_buffer(lua_State *L, int idx);
/* Unlink a job from its owner's pending list (no-op when not linked). */
void lsa_job_unlink(lsa_job *lj);
/* Append a job to its owner's pending list (no-op when linked). */
void lsa_job_link(lsa_job *lj);

/* Start downloading the masks of the ended job at ji (a job of the client
 * at ci) into folder (NULL = memory only): push the new job (state
 * FETCHING, in the running set, with lsa_job_event and its own lsa_job as
 * the core's callback and user data: never the job at ji's, which may be
 * collected first) and return 1, or push nil, message, code and return
 * 3. */
int lsa_fetch_start(lua_State *L, int ci, int ji, const char *folder);
/* Download the masks of the job at ji into folder (NULL: memory),
 * blocking for at most timeout_ms (-1 = no limit): push the files array
 * of the download's result and return 1, or push nil, message, code, and
 * the files array of what did arrive, and return 4. */
int lsa_fetch_files(lua_State *L, int ji, const char *folder,
                    long timeout_ms);
/* client:fetch_masks(job [, folder]): the download job, or nil, msg,
 * code. */
int lsa_client_fetch_masks(lua_State *L);

/* lsa_result.c */

/* Push a result table (with the result metatable) for r; its "files"
 * field holds the result's files ({name=, data=, format=}). */
void lsa_push_result(lua_State *L, const sa_result *r);
/* Remember that the result table at ri came from the job at ji (kept
 * off the table, in a weak-keyed registry table), for result:save_masks
 * and result:composite. */
void lsa_result_link(lua_State *L, int ri, int ji);
/* core.parse_result(json [, kind]): a result table, or nil, msg, code. */
int lsa_parse_result(lua_State *L);
/* core.parse_zip(bytes [, max_entry_bytes]): a result table, or nil, msg,
 * code. */
int lsa_parse_zip(lua_State *L);
/* core.concern_color(concern): r, g, b (0..255), the colour composites
 * tint the concern's masks with (sa_concern_color). */
int lsa_concern_color(lua_State *L);
void lsa_result_register(lua_State *L);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif /* LSA_H */
