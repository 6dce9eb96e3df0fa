/*
 * client.c - the public sa_client / sa_job API on top of the job state
 * machine (job.c) and the transport (engine.c).
 *
 * A client owns its jobs and drives them: for each job it asks
 * sa_jobsm_next(now) what to do, sends requests through the engine (API
 * host requests only after the limiter gives a slot), feeds the answers
 * back, and tells the caller what happened.
 *
 * Job lists.  A job is in exactly one of the client's lists:
 *   queued   submitted past max_jobs; no state machine yet
 *   active   the engine drives its machine (including background polling
 *            of a task whose caller cancelled it or freed its handle)
 *   idle     the engine is done with it; the caller still holds it
 *   dead     nobody needs it; freed when control returns to the caller
 * and, besides, possibly in one of the scheduler's queues (sched.c: its
 * API request waits for a limiter slot, or its image upload waits while
 * max_uploads uploads are in flight), and in `evq` (it has callbacks to
 * deliver).  One `sq` serves both queues: a job has one request at a time.
 *
 * Bounded steps.  A non-blocking call (sa_client_step with timeout 0,
 * sa_client_socket_action) handles at most SA_STEP_BATCH socket events
 * and finished transfers, drives at most SA_STEP_BATCH due jobs, hands
 * libcurl at most SA_STEP_BATCH / 4 new transfers, and takes no new item
 * of any kind once opt.step_budget_us has passed (at least one of each
 * that is ready), so that a burst of work is spread over several frames
 * of a caller's loop; what is left makes sa_client_timeout_ms (and the
 * timer hook) say 0.  The
 * blocking calls (a step with a timeout, sa_client_run, sa_job_wait)
 * handle everything.
 *
 * The limiter queue, the upload queue and their policies (priority,
 * admission, reserve) are sched.c's: a pure scheduler that the client
 * asks which waiting request may go now.
 *
 * Callbacks and reentrancy (STYLE.md 7).  `depth` counts the public calls
 * running on this client.  A user callback only ever runs inside one, so
 * depth > 0 at the start of a driving call means "called from a callback":
 * sa_client_step / run / sa_job_wait / socket_action answer SA_ERR_BUSY,
 * and sa_client_free is deferred.  Job memory is only released when depth
 * drops back to 0 (the dead list), so no frame ever holds a freed job.  Job
 * callbacks are collected while the engine works and delivered after it,
 * never from inside libcurl.
 *
 * Result downloads (sa_client_fetch_masks).  The job the caller gets is a
 * fetch job: its machine (sa_jobsm_new_fetch) holds a copy of the result
 * and the URLs to download, and sends nothing.  The client runs the
 * downloads as child jobs: internal sa_jobs with a download machine each
 * (sa_jobsm_new_download), driven like any job (a refresh poll of an
 * expired URL goes through the limiter queue; the GETs do not), never
 * visible to the caller: no callbacks, not counted by sa_client_active or
 * max_jobs.  At most FETCH_CONCURRENCY children of a fetch run at once;
 * the fetch job starts the next ones when it is driven (drive_job) and a
 * child that ends reports its bytes (written to the folder first) or its
 * failure to the fetch machine and wakes the fetch job.  When the fetch
 * job ends (done, failed, cancelled, freed) its remaining children are
 * cancelled.  The fetch job has the callback and user data of the job it
 * was made from.
 *
 * Two views of a job.  While it runs, the accessors read its state
 * machine.  The first terminal state is published: copied into the job
 * (pub_*) and never changed again, even while the machine goes on polling
 * the task in the background.  Strings handed to the caller are kept until
 * sa_job_free (the `kept` list), as the header promises.
 */
#include "sa_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CLIENT_ERRLEN 512
#define LOG_LINE 1024
#define EV_MAX 8            /* progress events buffered per job */
#define STUCK_MAX 20        /* state machine out of memory this often: give up */
#define WAIT_SLICE_MS 50    /* interrupt hook checked at least this often */
#define MAX_URL_LEN 8192
#define MAX_ID_LEN 1024
#define MAX_NAME_LEN 255
#define FETCH_CONCURRENCY 8 /* downloads at once per sa_client_fetch_masks */
#define SA_STEP_BATCH 16    /* per non-blocking call (see "Bounded steps") */

#define JOB_OF(l, field) SA_CONTAINER_OF(l, sa_job, field)

enum { J_QUEUED = 1, J_ACTIVE, J_IDLE, J_DEAD, J_DETACHED };
enum { KIND_ANALYSIS = 0, KIND_FETCH, KIND_CHILD };
enum {
    K_ERRMSG, K_API_CODE, K_ENGINE, K_TASK, K_FILE, K_REQUEST, K__LAST
};

typedef struct sa_kept {
    struct sa_kept *next;
    char s[];
} sa_kept;

struct sa_job {
    sa_link link;               /* queued / active / idle / dead */
    sa_sched_item sq;           /* in a scheduler queue (sched.c) */
    sa_link ev_link;            /* event queue */
    sa_client *client;          /* NULL once detached */
    sa_mem memv;                /* own copy: the job may outlive its client */
    const sa_mem *mem;
    uint64_t rng;               /* jitter for this job's machine */
    unsigned long seq;          /* "job #N" in log lines */
    int where;
    int kind;                   /* KIND_*: analysis, fetch, child */
    struct sa_job *parent;      /* child: its fetch job (NULL: detached) */
    char *folder;               /* fetch: where files go, or NULL */
    int n_children;             /* fetch: children running */

    /* the validated request (strings owned) */
    char *file_path, *image_url, *file_id, *file_name;
    const char *content_type;
    const void *buffer;
    uint64_t file_size;
    const char *actions[SA_MAX_ACTIONS];  /* catalogue strings */
    size_t n_actions;
    int format, api_version, pf_camera_kit, mask_overlay;
    cJSON *msargs;
    long deadline_ms;
    int units;
    sa_job_cb cb;
    void *user_data;

    /* engine side */
    sa_jobsm *sm;
    int64_t deadline_at;
    int64_t wake_at;            /* call sa_jobsm_next again at this time */
    const sa_http_request *parked;  /* waits in a scheduler queue */
    sa_xfer *xfer;              /* in flight */
    int xfer_api;               /* ... to the API host */
    int xfer_upload;            /* ... an image upload (counted by sched) */
    int stuck;                  /* consecutive out-of-memory from the machine */
    int quiet_end;              /* runs on after the caller's outcome (or
                                   the caller let go): log how it ends */

    /* caller side */
    int caller_released;
    int published;
    int last_state;
    int ev[EV_MAX];
    int n_ev;
    int term_pending;
    int pub_state, pub_status, pub_http, pub_polls;
    const char *pub[K__LAST];
    const sa_result *pub_result;
    const char *last[K__LAST];  /* latest kept copy per field */
    sa_kept *kept;
};

struct sa_client {
    sa_mem memv;
    const sa_mem *mem;
    sa_client_options opt;      /* strings below are the owned copies */
    char *api_key;
    char *base_url;
    sa_engine *engine;
    sa_sched sched;             /* limiter and upload queues (sched.c) */
    uint64_t rng;
    unsigned long next_seq;

    sa_link queued, active, idle, dead, evq;
    int bounded;                /* in a non-blocking call: see "Bounded steps" */
    int due_left;               /* due jobs it may still drive */
    int64_t budget_end;         /* its time budget ends (sa_engine_now_us) */
    int done_now;               /* finished transfers it handled */
    int peak_done;              /* most of them in one call */
    int n_queued, n_active;
    int n_child;                /* children among the active (internal) */

    int depth;
    int free_pending;
    int freeing;

    /* event hooks */
    int hooks;
    sa_socket_fn sock;
    sa_timer_fn timer;
    void *hook_ud;
    int64_t curl_timer_at;      /* libcurl's timer, absolute; -1 none */
    int64_t reported_at;        /* what the timer hook was last told */

    atomic_int woken;           /* sa_client_wakeup was called */
    char errmsg[CLIENT_ERRLEN];
};

static void drive_job(sa_client *c, sa_job *j, int64_t now);
static void client_teardown(sa_client *c);

/* ================================================================== */
/* Version and process-wide setup                                      */
/* ================================================================== */

const char *sa_version(void)
{
    return SA_VERSION;
}

int sa_version_num(void)
{
    return SA_VERSION_NUM;
}

const char *sa_job_state_name(int state)
{
    return sa_jobsm_state_name(state);
}

static int is_terminal(int state)
{
    return state == SA_JOB_DONE || state == SA_JOB_FAILED ||
           state == SA_JOB_CANCELLED;
}

/* ================================================================== */
/* Lists                                                               */
/* ================================================================== */

static sa_link *list_for(sa_client *c, int where)
{
    switch (where) {
    case J_QUEUED: return &c->queued;
    case J_ACTIVE: return &c->active;
    case J_IDLE: return &c->idle;
    case J_DEAD: return &c->dead;
    default: return NULL;
    }
}

/* Move a job to another list of its client, keeping the counts. */
static void set_where(sa_client *c, sa_job *j, int where)
{
    sa_link *to = list_for(c, where);
    int child = j->kind == KIND_CHILD;
    if (j->where == J_QUEUED) c->n_queued--;
    if (j->where == J_ACTIVE) {
        c->n_active--;
        c->n_child -= child;
    }
    if (sa_link_linked(&j->link)) sa_link_remove(&j->link);
    j->where = where;
    if (where == J_QUEUED) c->n_queued++;
    if (where == J_ACTIVE) {
        c->n_active++;
        c->n_child += child;
    }
    if (to) sa_link_append(to, &j->link);
}

/* Jobs the caller sees running (children are internal). */
static int n_visible(const sa_client *c)
{
    return c->n_active - c->n_child + c->n_queued;
}

/* Active jobs that count against max_jobs. */
static int n_running(const sa_client *c)
{
    return c->n_active - c->n_child;
}

/* ================================================================== */
/* Messages and logging                                                */
/* ================================================================== */

static void jlog(sa_client *c, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* One log line, redacted (API key, URL query strings), at the level. */
static void jlog(sa_client *c, int level, const char *fmt, ...)
{
    char raw[LOG_LINE], line[LOG_LINE];
    va_list ap;

    if (!c->opt.log || level < c->opt.log_level) return;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    sa__redact(line, sizeof line, raw, c->api_key);
    c->opt.log(c->opt.log_user_data, level, line);
}

static int cfail(sa_client *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Set the client's message (redacted) and return status. */
static int cfail(sa_client *c, int status, const char *fmt, ...)
{
    char raw[CLIENT_ERRLEN];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    sa__redact(c->errmsg, sizeof c->errmsg, raw, c->api_key);
    return status;
}

/* The engine's log lines go through the same redaction. */
static void engine_log(void *ctx, int level, const char *line)
{
    jlog(ctx, level, "%s", line);
}

/* "task <id>" when the machine knows it, else "job #N". */
static const char *job_label(const sa_job *j, char *buf, size_t len)
{
    const char *task = j->sm ? sa_jobsm_task_id(j->sm) : NULL;
    if (task) snprintf(buf, len, "task %s", task);
    else snprintf(buf, len, "job #%lu", j->seq);
    return buf;
}

/* ================================================================== */
/* Strings handed to the caller                                        */
/* ================================================================== */

/* A copy of s that lives until the job is freed; the same pointer again
 * while the value does not change.  NULL for NULL or out of memory. */
static const char *keep(sa_job *j, int field, const char *s)
{
    sa_kept *k;
    size_t n;

    if (!s) return NULL;
    if (j->last[field] && strcmp(j->last[field], s) == 0)
        return j->last[field];
    n = strlen(s);
    k = sa__malloc(j->mem, sizeof *k + n + 1);
    if (!k) return NULL;
    memcpy(k->s, s, n + 1);
    k->next = j->kept;
    j->kept = k;
    j->last[field] = k->s;
    return k->s;
}

/* ================================================================== */
/* Job lifetime                                                        */
/* ================================================================== */

static void job_destroy(sa_job *j)
{
    sa_mem memv = j->memv;
    const sa_mem *mem = j->mem ? &memv : NULL;

    sa_sched_withdraw(&j->sq);
    if (sa_link_linked(&j->ev_link)) sa_link_remove(&j->ev_link);
    if (sa_link_linked(&j->link)) sa_link_remove(&j->link);
    sa_jobsm_free(j->sm);
    while (j->kept) {
        sa_kept *k = j->kept;
        j->kept = k->next;
        sa__free(mem, k);
    }
    cJSON_Delete(j->msargs);
    sa__free(mem, j->folder);
    sa__free(mem, j->file_path);
    sa__free(mem, j->image_url);
    sa__free(mem, j->file_id);
    sa__free(mem, j->file_name);
    sa__free(mem, j);
}

/* Destroy the dead jobs (only at depth 0: no frame holds them). */
static void sweep_dead(sa_client *c)
{
    while (!sa_link_empty(&c->dead)) {
        sa_job *j = JOB_OF(c->dead.next, link);
        sa_link_remove(&j->link);
        job_destroy(j);
    }
}

static void report_timer(sa_client *c);

static void enter(sa_client *c)
{
    c->depth++;
}

/* Leave a public call.  At depth 0: re-report the timer, free the dead
 * jobs, and run a deferred sa_client_free.  Returns 1 when the client is
 * gone. */
static int leave(sa_client *c)
{
    if (c->depth == 1) report_timer(c);
    if (--c->depth > 0) return 0;
    sweep_dead(c);
    if (c->free_pending) {
        client_teardown(c);
        return 1;
    }
    return 0;
}

/* ================================================================== */
/* Publishing and callbacks                                            */
/* ================================================================== */

static void ev_link_job(sa_client *c, sa_job *j)
{
    if (!sa_link_linked(&j->ev_link)) sa_link_append(&c->evq, &j->ev_link);
}

/* A progress event (a non-terminal state the job entered). */
static void ev_push(sa_client *c, sa_job *j, int state)
{
    if (!j->cb || j->caller_released || j->published) return;
    if (j->n_ev == EV_MAX) j->ev[EV_MAX - 1] = state;  /* coalesce */
    else j->ev[j->n_ev++] = state;
    ev_link_job(c, j);
}

/* Fix what the caller sees, once: the terminal state and status given,
 * msg (NULL: the machine's message), and the machine's details.  Progress
 * not delivered yet is dropped; the terminal callback is queued. */
static void publish(sa_client *c, sa_job *j, int state, int status,
                    const char *msg)
{
    const sa_jobsm *sm = j->sm;

    if (j->published) return;
    j->published = 1;
    j->pub_state = state;
    j->pub_status = status;
    if (sm) {
        j->pub_http = sa_jobsm_http_status(sm);
        j->pub_polls = sa_jobsm_polls(sm);
        j->pub[K_API_CODE] = keep(j, K_API_CODE, sa_jobsm_api_error_code(sm));
        j->pub[K_ENGINE] = keep(j, K_ENGINE, sa_jobsm_engine_error(sm));
        j->pub[K_TASK] = keep(j, K_TASK, sa_jobsm_task_id(sm));
        j->pub[K_FILE] = keep(j, K_FILE, sa_jobsm_file_id(sm));
        j->pub[K_REQUEST] = keep(j, K_REQUEST, sa_jobsm_request_id(sm));
        if (state == SA_JOB_DONE) j->pub_result = sa_jobsm_result(sm);
        if (!msg) msg = sa_jobsm_errmsg(sm);
    }
    j->pub[K_ERRMSG] = keep(j, K_ERRMSG, msg ? msg : "");
    if (!j->pub[K_ERRMSG]) j->pub[K_ERRMSG] = "";
    j->n_ev = 0;  /* progress not yet delivered is moot now */
    if (j->caller_released || !j->cb) return;
    j->term_pending = 1;
    ev_link_job(c, j);
}

/* Publish the machine's own outcome. */
static void publish_sm(sa_client *c, sa_job *j)
{
    int st = sa_jobsm_state(j->sm), status = sa_jobsm_status(j->sm);
    if (!is_terminal(st)) {
        st = SA_JOB_FAILED;
        status = SA_ERR_PROTOCOL;
    }
    if (st == SA_JOB_DONE) status = SA_OK;
    else if (status >= 0) status = SA_ERR_PROTOCOL;
    publish(c, j, st, status, NULL);
}

/* The job needs no more slots under admit_cap (it ended, or its task did
 * and only its result is downloaded): look at the queue again. */
static void unadmit(sa_client *c, sa_job *j)
{
    sa_sched_unadmit(&c->sched, &j->sq, sa_engine_now());
}

/* After every call into the machine: queue a progress event when the
 * state changed, publish when it became terminal.  A machine that goes on
 * after the public outcome (a task to poll to its end) gets its end
 * logged. */
static void note_state(sa_client *c, sa_job *j)
{
    int st;
    if (!j->sm || j->published) return;
    st = sa_jobsm_state(j->sm);
    if (is_terminal(st)) {
        publish_sm(c, j);
        if (sa_jobsm_background(j->sm)) j->quiet_end = 1;
        return;
    }
    if (st == SA_JOB_FETCHING) unadmit(c, j);
    if (st != j->last_state) {
        j->last_state = st;
        ev_push(c, j, st);
    }
}

static void user_cancel(sa_client *c, sa_job *j, int abandon, int status,
                        const char *why);

/* Deliver one job's events: its progress in order, then its terminal
 * callback.  A non-zero return from a progress callback cancels the job
 * with SA_ERR_CALLBACK. */
static void deliver_job(sa_client *c, sa_job *j)
{
    int evs[EV_MAX], n = j->n_ev, i;

    memcpy(evs, j->ev, sizeof evs);
    j->n_ev = 0;
    for (i = 0; i < n && !j->published && !j->caller_released; i++) {
        if (j->cb(j, evs[i], j->user_data) != 0 && !j->published &&
            !j->caller_released) {
            char why[128];
            snprintf(why, sizeof why, "cancelled: the job callback returned "
                     "non-zero in state %s", sa_job_state_name(evs[i]));
            user_cancel(c, j, 0, SA_ERR_CALLBACK, why);
        }
    }
    if (j->term_pending) {
        j->term_pending = 0;
        if (!j->caller_released)
            (void)j->cb(j, j->pub_state, j->user_data);
    }
}

/* Deliver every queued event.  Only from the outermost public call, so
 * callbacks never nest. */
static void deliver(sa_client *c)
{
    long guard;
    if (c->depth != 1) return;
    for (guard = 0; guard < 10000000L && !sa_link_empty(&c->evq); guard++) {
        sa_job *j = JOB_OF(c->evq.next, ev_link);
        sa_link_remove(&j->ev_link);
        deliver_job(c, j);
    }
}

/* ================================================================== */
/* Engine side of a job                                                */
/* ================================================================== */

/* Log how a job nobody waits for any more ended (its task may be
 * billed). */
static void log_quiet_end(sa_client *c, sa_job *j)
{
    const char *msg = "";
    char label[160];
    int rc = sa_jobsm_task_outcome(j->sm, &msg);

    job_label(j, label, sizeof label);
    if (!sa_jobsm_task_id(j->sm) && !sa_jobsm_task_maybe_created(j->sm))
        jlog(c, SA_LOG_DEBUG, "%s ended after its caller left: %s", label,
             msg);
    else if (rc == SA_OK)
        jlog(c, SA_LOG_INFO, "%s, no longer awaited by its caller, "
             "succeeded in the background: its units are billed", label);
    else
        jlog(c, SA_LOG_WARNING, "%s, no longer awaited by its caller, "
             "ended in the background: %s: %s", label, sa_status_name(rc),
             msg);
}

/* The engine is done with the job: drop its request (the machine no
 * longer wants it), tell or log the outcome, move the job to idle (or dead
 * when the caller let go). */
static void child_ended(sa_client *c, sa_job *j);
static void cancel_children(sa_client *c, sa_job *parent);
static void xfer_gone(sa_client *c, sa_job *j);

static void engine_end(sa_client *c, sa_job *j)
{
    if (j->xfer) {
        sa_engine_abort(c->engine, j->xfer);
        xfer_gone(c, j);
    }
    sa_sched_withdraw(&j->sq);
    j->parked = NULL;
    unadmit(c, j);
    if (j->kind == KIND_CHILD) child_ended(c, j);
    if (j->kind == KIND_FETCH) cancel_children(c, j);
    if (!j->published) publish_sm(c, j);
    if (j->quiet_end) log_quiet_end(c, j);
    set_where(c, j, j->caller_released ? J_DEAD : J_IDLE);
}

/* The machine ran out of memory: try again a little later, a few times,
 * then give up on the job (its task, if any, is abandoned). */
static void job_stuck(sa_client *c, sa_job *j, int64_t now)
{
    char label[160];
    if (++j->stuck < STUCK_MAX) {
        j->wake_at = now + 10 * j->stuck;
        return;
    }
    if (sa_jobsm_task_maybe_created(j->sm))
        jlog(c, SA_LOG_WARNING, "%s abandoned: out of memory; it is no longer "
             "polled and may still be billed", job_label(j, label, sizeof label));
    publish(c, j, SA_JOB_FAILED, SA_ERR_NOMEM, "out of memory driving the job");
    sa_jobsm_cancel(j->sm, now, 1);
    engine_end(c, j);
}

/* Feed a response the engine synthesised (the request was not sent). */
static void feed_not_sent(sa_client *c, sa_job *j, int64_t now, int transport,
                          const char *msg)
{
    sa_http_response r;
    memset(&r, 0, sizeof r);
    r.transport = transport;
    r.not_sent = 1;
    r.transport_msg = msg;
    /* out of memory in there ends the machine FAILED; next() says END */
    (void)sa_jobsm_on_response(j->sm, now, &r);
    note_state(c, j);
}

/* An image upload (the PUT to the storage URL), counted by max_uploads. */
static int is_upload(const sa_http_request *req)
{
    return !req->api_host && req->step == SA_STEP_UPLOAD;
}

/* j's transfer is no longer in flight (ended or aborted). */
static void xfer_gone(sa_client *c, sa_job *j)
{
    j->xfer = NULL;
    if (j->xfer_upload) sa_sched_upload_ended(&c->sched);
    j->xfer_upload = 0;
}

/* Hand a request to the engine.  Returns 1 when it is in flight, 0 when
 * it failed at once (the failure was fed to the machine). */
static int start_xfer(sa_client *c, sa_job *j, const sa_http_request *req,
                      int64_t now)
{
    sa_http_request r = *req;
    sa_xfer *x = NULL;
    int rc;

    /* Task create is billed and not idempotent: never on a reused
     * connection, which libcurl may silently resend on (see engine.c). */
    r.fresh_connection = req->step == SA_STEP_TASK_CREATE;
    rc = sa_engine_send(c->engine, &r, j, &x);
    if (rc == SA_OK) {
        j->xfer = x;
        j->xfer_api = req->api_host;
        j->xfer_upload = is_upload(req);
        if (j->xfer_upload) sa_sched_upload_started(&c->sched);
        j->wake_at = j->deadline_at;
        return 1;
    }
    feed_not_sent(c, j, now, rc, sa_engine_errmsg(c->engine));
    return 0;
}

/* Send now, or (API host, limiter on) wait in the limiter queue, which
 * is looked at again at once: service_limq sends what the scheduler picks;
 * or (an upload past max_uploads, or behind others waiting) wait in the
 * upload queue. */
static int send_or_park(sa_client *c, sa_job *j, const sa_http_request *req,
                        int64_t now)
{
    if (req->api_host && sa_sched_limited(&c->sched)) {
        j->parked = req;
        j->wake_at = j->deadline_at;
        sa_sched_park_api(&c->sched, &j->sq, req->step, now);
        return 1;
    }
    if (is_upload(req) && sa_sched_upload_must_wait(&c->sched)) {
        j->parked = req;
        j->wake_at = j->deadline_at;
        sa_sched_park_upload(&c->sched, &j->sq);
        return 1;
    }
    return start_xfer(c, j, req, now);
}

/* Ask the machine what to do until it has to wait.  Bounded: every SEND
 * either goes out or fails into a BACKOFF. */
static void fetch_pump(sa_client *c, sa_job *j, int64_t now);

static void drive_job(sa_client *c, sa_job *j, int64_t now)
{
    int guard;

    if (j->kind == KIND_FETCH) fetch_pump(c, j, now);
    for (guard = 0; guard < 16; guard++) {
        sa_next nx;
        int rc = sa_jobsm_next(j->sm, now, &nx);
        note_state(c, j);
        /* out of memory ends the machine (END); anything else is stuck */
        if (rc != SA_OK && nx.kind != SA_NEXT_END) {
            job_stuck(c, j, now);
            return;
        }
        j->stuck = 0;
        if (nx.kind == SA_NEXT_END) {
            engine_end(c, j);
            return;
        }
        if (nx.kind == SA_NEXT_WAIT) {
            j->wake_at = nx.wake_at_ms;
            return;
        }
        if (j->xfer || j->parked) {
            /* never a second request: the machine will not ask for one */
            j->wake_at = now + 1000;
            return;
        }
        if (send_or_park(c, j, nx.req, now)) return;
    }
    j->wake_at = now + 1;
}

/* Give queued jobs a slot under max_jobs. */
static int start_job(sa_client *c, sa_job *j, int64_t now);

static void start_queued(sa_client *c, int64_t now)
{
    while (!sa_link_empty(&c->queued) &&
           (c->opt.max_jobs <= 0 || n_running(c) < c->opt.max_jobs)) {
        sa_job *j = JOB_OF(c->queued.next, link);
        if (start_job(c, j, now) != SA_OK) {
            publish(c, j, SA_JOB_FAILED, SA_ERR_NOMEM,
                    "out of memory starting the job");
            set_where(c, j, j->caller_released ? J_DEAD : J_IDLE);
        }
    }
}

/* A job's request the scheduler let go: send it (a request that fails at
 * once goes back to its machine, which may ask again). */
static void send_parked(sa_client *c, sa_job *j, int64_t now)
{
    const sa_http_request *req = j->parked;

    j->parked = NULL;
    if (!start_xfer(c, j, req, now)) drive_job(c, j, now);
}

/* Send what the limiter queue lets go now (sched.c decides); the guard:
 * a request that fails at once may queue again. */
static void service_limq(sa_client *c, int64_t now)
{
    long guard;

    for (guard = 0; guard < 100000L; guard++) {
        sa_sched_item *it = sa_sched_next_api(&c->sched, now);
        if (!it) return;
        send_parked(c, JOB_OF(it, sq), now);
    }
    sa_sched_recheck(&c->sched, now + 1);
}

/* Start waiting uploads, oldest first, while max_uploads allows.  An
 * upload that fails at once may queue again (at the end): the guard. */
static void service_upq(sa_client *c, int64_t now)
{
    long guard;

    for (guard = 0; guard < 100000L; guard++) {
        sa_sched_item *it = sa_sched_next_upload(&c->sched);
        if (!it) return;
        send_parked(c, JOB_OF(it, sq), now);
    }
}

/* Everything that is due at `now` (in a bounded call, at most due_left
 * jobs are driven; the others stay due). */
static void advance(sa_client *c, int64_t now)
{
    sa_link *l, *next;
    long restarts = 0;

    start_queued(c, now);
    service_upq(c, now);
    service_limq(c, now);
    for (l = c->active.next; l != &c->active; l = next) {
        sa_job *j = JOB_OF(l, link);
        next = l->next;
        if (j->wake_at > now) continue;
        if (c->bounded &&
            (c->due_left-- <= 0 ||
             (c->due_left < SA_STEP_BATCH - 1 && c->budget_end > 0 &&
              sa_engine_now_us() >= c->budget_end)))
            break;
        drive_job(c, j, now);
        /* Only j moves while it is driven, unless a hook called back into
         * the library against the rules: then start over (the jobs driven
         * already wait for a later time). */
        if (next != &c->active && JOB_OF(next, link)->where != J_ACTIVE &&
            ++restarts < 1000)
            next = c->active.next;
    }
    service_upq(c, now);   /* slots the ended uploads freed */
    service_limq(c, now);  /* what the jobs just parked */
}

/* A transfer ended (engine hook; outside libcurl's callbacks). */
static void on_done(void *ctx, void *owner, const sa_http_response *resp)
{
    sa_client *c = ctx;
    sa_job *j = owner;
    int64_t now = sa_engine_now();
    char label[160];

    xfer_gone(c, j);
    if (c->bounded && ++c->done_now > c->peak_done)
        c->peak_done = c->done_now;
    if (resp->transport == SA_OK && resp->http_status == 429 && j->xfer_api)
        sa_sched_penalize(&c->sched, now);
    (void)sa_jobsm_on_response(j->sm, now, resp);  /* NOMEM: ends FAILED */
    note_state(c, j);
    if (sa_jobsm_state(j->sm) == SA_JOB_BACKOFF)
        jlog(c, SA_LOG_INFO, "%s: %s", job_label(j, label, sizeof label),
             sa_jobsm_errmsg(j->sm));
    drive_job(c, j, now);
}

/* ================================================================== */
/* Cancel and abandon                                                  */
/* ================================================================== */

/* The caller gives up on a running job.  The machine decides whether a
 * task must still be polled (cancel returns 1).  A task create that never
 * left the limiter queue is withdrawn (no task can exist), so cancelling
 * never sends a billed request. */
static void user_cancel(sa_client *c, sa_job *j, int abandon, int status,
                        const char *why)
{
    int64_t now = sa_engine_now();
    char label[160], msg[768];
    int keep_polling;

    if (j->where == J_QUEUED) {
        publish(c, j, SA_JOB_CANCELLED, status, why ? why
                : "cancelled before it started: nothing was sent");
        set_where(c, j, j->caller_released ? J_DEAD : J_IDLE);
        return;
    }
    if (j->where != J_ACTIVE) return;
    if (j->parked && j->parked->step == SA_STEP_TASK_CREATE) {
        sa_sched_withdraw(&j->sq);
        j->parked = NULL;
        abandon = 1;
        if (!why) why = "cancelled before the task create request was sent: "
                        "nothing was billed";
    } else if (abandon && sa_jobsm_task_maybe_created(j->sm)) {
        jlog(c, SA_LOG_WARNING, "%s abandoned: it is no longer polled and may "
             "still be billed", job_label(j, label, sizeof label));
    }
    keep_polling = sa_jobsm_cancel(j->sm, now, abandon);
    if (why) {
        snprintf(msg, sizeof msg, "%s%s%s", why, keep_polling ? "; " : "",
                 keep_polling ? sa_jobsm_errmsg(j->sm) : "");
        publish(c, j, SA_JOB_CANCELLED, status, msg);
    } else {
        publish(c, j, SA_JOB_CANCELLED, status, NULL);
    }
    if (keep_polling) {
        j->quiet_end = 1;
        jlog(c, SA_LOG_INFO, "%s cancelled: still polled until it ends",
             job_label(j, label, sizeof label));
        j->wake_at = now;
        return;
    }
    engine_end(c, j);
}

/* Stop a job's engine side for good (client going away, or an abandon of
 * a job already published).  Warns when a task is left unpolled. */
static void abandon_engine_side(sa_client *c, sa_job *j, const char *who)
{
    char label[160];
    int64_t now = sa_engine_now();

    if (j->where != J_ACTIVE) return;
    if (sa_jobsm_task_maybe_created(j->sm))
        jlog(c, SA_LOG_WARNING, "%s abandoned (%s): it is no longer polled "
             "and may still be billed", job_label(j, label, sizeof label),
             who);
    (void)sa_jobsm_cancel(j->sm, now, 1);
    j->quiet_end = 0;
    engine_end(c, j);
}

/* ================================================================== */
/* Starting jobs                                                       */
/* ================================================================== */

static int start_job(sa_client *c, sa_job *j, int64_t now)
{
    sa_job_config cfg;
    long dl = j->deadline_ms > 0 ? j->deadline_ms : c->opt.job_deadline_ms;
    int rc, was_queued = j->where == J_QUEUED, st;

    memset(&cfg, 0, sizeof cfg);
    cfg.mem = j->mem;
    cfg.base_url = c->base_url;
    cfg.api_version = j->api_version;
    cfg.upload_path = c->opt.upload_path;
    cfg.file_path = j->file_path;
    cfg.buffer = j->buffer;
    cfg.file_size = j->file_size;
    cfg.content_type = j->content_type;
    cfg.file_name = j->file_name;
    cfg.image_url = j->image_url;
    cfg.file_id = j->file_id;
    cfg.task.actions = j->actions;
    cfg.task.n_actions = j->n_actions;
    cfg.task.format = j->format;
    cfg.task.api_version = j->api_version;
    cfg.task.pf_camera_kit = j->pf_camera_kit;
    cfg.task.mask_overlay = j->mask_overlay;
    cfg.task.miniserver_args = j->msargs;
    cfg.request_timeout_ms = c->opt.request_timeout_ms;
    cfg.upload_timeout_ms = c->opt.upload_timeout_ms;
    cfg.poll_interval_ms = c->opt.poll_interval_ms;
    cfg.max_poll_interval_ms = c->opt.max_poll_interval_ms;
    cfg.deadline_at_ms = now + dl;
    cfg.max_polls = c->opt.max_polls;
    cfg.max_retries = c->opt.max_retries;
    cfg.backoff_initial_ms = c->opt.backoff_initial_ms;
    cfg.backoff_max_ms = c->opt.backoff_max_ms;
    cfg.max_json_depth = c->opt.max_json_depth;
    cfg.rng = &j->rng;
    rc = sa_jobsm_new(&cfg, now, &j->sm);
    if (rc != SA_OK) return rc;
    j->deadline_at = cfg.deadline_at_ms;
    j->wake_at = now;
    st = sa_jobsm_state(j->sm);
    if (was_queued) ev_push(c, j, st);
    j->last_state = st;
    set_where(c, j, J_ACTIVE);
    return SA_OK;
}

/* ================================================================== */
/* Submit: validation before anything is sent                         */
/* ================================================================== */

void sa_request_init(sa_request *req)
{
    if (!req) return;
    memset(req, 0, sizeof *req);
    req->format = SA_FORMAT_JSON;
    req->api_version = SA_API_DEFAULT;
    req->pf_camera_kit = -1;
    req->mask_overlay = -1;
}

static int check_actions(sa_client *c, const sa_request *req, sa_job *j,
                         int *tier)
{
    char err[256] = "";
    size_t i;
    int rc;

    if (req->n_actions > 0 && !req->actions)
        return cfail(c, SA_ERR_INVALID_ARGUMENT, "actions is NULL but "
                     "n_actions is %zu", req->n_actions);
    for (i = 0; i < req->n_actions; i++)
        if (!req->actions[i])
            return cfail(c, SA_ERR_UNKNOWN_ACTION, "actions[%zu] is NULL", i);
    rc = sa_catalog_check_actions(req->actions, req->n_actions, tier,
                                  j->actions, &j->n_actions, err, sizeof err);
    if (rc != SA_OK)
        return cfail(c, rc, "%s", err[0] ? err : sa_strerror(rc));
    j->units = sa_catalog_units(*tier, j->n_actions);
    return SA_OK;
}

static int check_source_count(sa_client *c, const sa_request *req)
{
    int n = !!req->file_path + !!req->buffer + !!req->image_url +
            !!req->file_id;
    if (!req->buffer && req->buffer_len > 0)
        return cfail(c, SA_ERR_SOURCE, "buffer_len is %zu but buffer is NULL",
                     req->buffer_len);
    if (n == 0)
        return cfail(c, SA_ERR_SOURCE, "no image: set exactly one of "
                     "file_path, buffer, image_url or file_id");
    if (n > 1)
        return cfail(c, SA_ERR_SOURCE, "%d image sources are set (%s%s%s%s): "
                     "set exactly one", n, req->file_path ? "file_path " : "",
                     req->buffer ? "buffer " : "",
                     req->image_url ? "image_url " : "",
                     req->file_id ? "file_id " : "");
    return SA_OK;
}

static int check_request_options(sa_client *c, const sa_request *req,
                                 sa_job *j)
{
    if (req->format != SA_FORMAT_JSON && req->format != SA_FORMAT_ZIP)
        return cfail(c, SA_ERR_BAD_OPTION, "format must be SA_FORMAT_JSON (0) "
                     "or SA_FORMAT_ZIP (1), not %d", req->format);
    if (req->api_version != SA_API_DEFAULT && req->api_version != SA_API_V2_0
        && req->api_version != SA_API_V2_1)
        return cfail(c, SA_ERR_BAD_OPTION, "api_version must be SA_API_V2_0 "
                     "(20), SA_API_V2_1 (21) or SA_API_DEFAULT (0), not %d",
                     req->api_version);
    j->api_version = req->api_version ? req->api_version : c->opt.api_version;
    if (req->pf_camera_kit < -1 || req->pf_camera_kit > 1)
        return cfail(c, SA_ERR_BAD_OPTION, "pf_camera_kit must be -1 (not "
                     "sent), 0 or 1, not %d", req->pf_camera_kit);
    if (req->pf_camera_kit != -1 && j->api_version != SA_API_V2_1)
        return cfail(c, SA_ERR_BAD_OPTION, "pf_camera_kit is a v2.1 option "
                     "and the v2.0 API refuses it: leave it at -1 or use "
                     "api_version SA_API_V2_1");
    if (req->mask_overlay < -1 || req->mask_overlay > 1)
        return cfail(c, SA_ERR_BAD_OPTION, "mask_overlay must be -1 (not "
                     "sent), 0 or 1, not %d", req->mask_overlay);
    if (req->deadline_ms < 0)
        return cfail(c, SA_ERR_BAD_OPTION, "deadline_ms must be 0 (the "
                     "client's job_deadline_ms) or positive, not %ld",
                     req->deadline_ms);
    j->format = req->format;
    j->pf_camera_kit = req->pf_camera_kit;
    j->mask_overlay = req->mask_overlay;
    j->deadline_ms = req->deadline_ms;
    return SA_OK;
}

static int check_miniserver(sa_client *c, const sa_request *req, sa_job *j)
{
    char err[256] = "";
    const char *text = req->miniserver_args_json;
    int rc;

    if (!text) return SA_OK;
    rc = sa_json_parse(text, strlen(text), c->opt.max_json_depth, &j->msargs);
    if (rc == SA_ERR_NOMEM) return cfail(c, rc, "out of memory");
    if (rc != SA_OK)
        return cfail(c, SA_ERR_BAD_OPTION, "miniserver_args_json is not valid "
                     "JSON (or nested too deeply)");
    if (!cJSON_IsObject(j->msargs))
        return cfail(c, SA_ERR_BAD_OPTION, "miniserver_args_json must be a "
                     "JSON object such as {\"enable_mask_overlay\":true}");
    if (req->mask_overlay != -1 &&
        cJSON_GetObjectItemCaseSensitive(j->msargs, "enable_mask_overlay"))
        return cfail(c, SA_ERR_BAD_OPTION, "enable_mask_overlay is set both "
                     "by mask_overlay and in miniserver_args_json: set it "
                     "once");
    rc = sa_catalog_check_miniserver_args(j->msargs, err, sizeof err);
    if (rc != SA_OK)
        return cfail(c, SA_ERR_BAD_OPTION, "miniserver_args_json: %s",
                     err[0] ? err : "not accepted");
    return SA_OK;
}

static int check_image_size(sa_client *c, const sa_image_info *info,
                            int tier, const char *what)
{
    uint32_t shortside = info->width < info->height ? info->width
                                                    : info->height;
    int min = tier == SA_TIER_HD ? SA_MIN_SIDE_HD : SA_MIN_SIDE_SD;
    if ((long)shortside >= min) return SA_OK;
    return cfail(c, SA_ERR_IMAGE_TOO_SMALL, "%s is %ux%u px; %s actions need "
                 "a short side of at least %d px: use a larger photo%s", what,
                 (unsigned)info->width, (unsigned)info->height,
                 tier == SA_TIER_HD ? "HD" : "SD", min,
                 tier == SA_TIER_HD ? " or the SD actions (480 px)" : "");
}

static const char *content_type_of(const sa_image_info *info)
{
    return info->format == SA_IMAGE_PNG ? "image/png" : "image/jpeg";
}

static int check_file(sa_client *c, const char *path, sa_job *j,
                      sa_image_info *info)
{
    struct stat st;
    char eb[128];
    int fd, rc, st_errno;

    if (!*path) return cfail(c, SA_ERR_FILE, "file_path is empty");
    /* One open for every check: O_NONBLOCK keeps open() from blocking on
     * a FIFO, which fstat then refuses.  The header is probed only in a
     * regular file under the size limit; the descriptor is closed before
     * any error is reported. */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return cfail(c, SA_ERR_FILE, "cannot read image file '%s': %s", path,
                     strerror_r(errno, eb, sizeof eb));
    st_errno = fstat(fd, &st) != 0 ? errno : 0;
    rc = SA_ERR_FILE;
    if (!st_errno && S_ISREG(st.st_mode) && st.st_size < SA_MAX_FILE_SIZE)
        rc = sa_image_probe_fd(fd, info);
    close(fd);
    if (st_errno)
        return cfail(c, SA_ERR_FILE, "cannot read image file '%s': %s", path,
                     strerror_r(st_errno, eb, sizeof eb));
    if (!S_ISREG(st.st_mode))
        return cfail(c, SA_ERR_FILE, "'%s' is not a regular file", path);
    if (st.st_size >= SA_MAX_FILE_SIZE)
        return cfail(c, SA_ERR_IMAGE_TOO_LARGE, "image file '%s' is %lld "
                     "bytes; the API takes files under 10,000,000 bytes: "
                     "resize or recompress it", path, (long long)st.st_size);
    if (rc == SA_ERR_FILE)
        return cfail(c, rc, "cannot read image file '%s'", path);
    if (rc != SA_OK || st.st_size == 0)
        return cfail(c, SA_ERR_IMAGE_FORMAT, "'%s' is not a JPEG or PNG image "
                     "(the format is read from the content, not the name)",
                     path);
    j->file_size = (uint64_t)st.st_size;
    return SA_OK;
}

static int check_buffer(sa_client *c, const sa_request *req, sa_job *j,
                        sa_image_info *info)
{
    if (req->buffer_len == 0)
        return cfail(c, SA_ERR_SOURCE, "buffer is set but buffer_len is 0");
    if (req->buffer_len >= SA_MAX_FILE_SIZE)
        return cfail(c, SA_ERR_IMAGE_TOO_LARGE, "the image buffer is %zu "
                     "bytes; the API takes files under 10,000,000 bytes: "
                     "resize or recompress it", req->buffer_len);
    if (sa_image_probe_buffer(req->buffer, req->buffer_len, info) != SA_OK)
        return cfail(c, SA_ERR_IMAGE_FORMAT, "the image buffer is not a JPEG "
                     "or PNG image (checked by its content)");
    j->buffer = req->buffer;
    j->file_size = req->buffer_len;
    return SA_OK;
}

static int check_url_or_id(sa_client *c, const sa_request *req)
{
    if (req->image_url) {
        if (!sa__url_scheme(req->image_url))
            return cfail(c, SA_ERR_SOURCE, "image_url must be an http:// or "
                         "https:// URL the API servers can download");
        if (strlen(req->image_url) > MAX_URL_LEN ||
            sa__has_space_or_ctl(req->image_url))
            return cfail(c, SA_ERR_SOURCE, "image_url is too long or has "
                         "spaces or control characters: percent-encode it");
    }
    if (req->file_id &&
        (!*req->file_id || strlen(req->file_id) > MAX_ID_LEN ||
         sa__has_space_or_ctl(req->file_id)))
        return cfail(c, SA_ERR_SOURCE, "file_id must be the non-empty id a "
                     "file upload returned");
    return SA_OK;
}

/* The name sent in the file slot request. */
static int pick_file_name(sa_client *c, const sa_request *req, sa_job *j,
                          const sa_image_info *info)
{
    const char *name = req->file_name, *slash;
    char fallback[16];

    if (name) {
        if (!*name || strlen(name) > MAX_NAME_LEN || sa__has_ctl(name))
            return cfail(c, SA_ERR_BAD_OPTION, "file_name must be 1..%d "
                         "printable characters", MAX_NAME_LEN);
    } else if (req->file_path) {
        slash = strrchr(req->file_path, '/');
        name = slash ? slash + 1 : req->file_path;
        if (!*name || strlen(name) > MAX_NAME_LEN || sa__has_ctl(name))
            name = NULL;
    }
    if (!name) {
        snprintf(fallback, sizeof fallback, "image.%s",
                 info->format == SA_IMAGE_PNG ? "png" : "jpg");
        name = fallback;
    }
    j->file_name = sa__strdup(j->mem, name);
    return j->file_name ? SA_OK : cfail(c, SA_ERR_NOMEM, "out of memory");
}

/* The image itself: readable, small enough, JPEG/PNG, big enough. */
static int check_image(sa_client *c, const sa_request *req, sa_job *j,
                       int tier)
{
    sa_image_info info;
    int rc;

    memset(&info, 0, sizeof info);
    if (req->file_path) rc = check_file(c, req->file_path, j, &info);
    else rc = check_buffer(c, req, j, &info);
    if (rc == SA_OK)
        rc = check_image_size(c, &info, tier, req->file_path
                              ? "the image file" : "the image buffer");
    if (rc != SA_OK) return rc;
    j->content_type = content_type_of(&info);
    rc = pick_file_name(c, req, j, &info);
    if (rc == SA_OK && req->file_path) {
        j->file_path = sa__strdup(j->mem, req->file_path);
        if (!j->file_path) rc = cfail(c, SA_ERR_NOMEM, "out of memory");
    }
    return rc;
}

static int validate(sa_client *c, const sa_request *req, sa_job *j)
{
    int tier = SA_TIER_SD, rc;

    rc = check_actions(c, req, j, &tier);
    if (rc == SA_OK) rc = check_source_count(c, req);
    if (rc == SA_OK) rc = check_request_options(c, req, j);
    if (rc == SA_OK) rc = check_miniserver(c, req, j);
    if (rc == SA_OK) rc = check_url_or_id(c, req);
    if (rc != SA_OK) return rc;
    if (req->file_path || req->buffer) return check_image(c, req, j, tier);
    if (req->image_url) j->image_url = sa__strdup(j->mem, req->image_url);
    if (req->file_id) j->file_id = sa__strdup(j->mem, req->file_id);
    if ((req->image_url && !j->image_url) || (req->file_id && !j->file_id))
        return cfail(c, SA_ERR_NOMEM, "out of memory");
    return SA_OK;
}

static sa_job *job_alloc(sa_client *c, const sa_request *req)
{
    sa_job *j = sa__calloc(c->mem, 1, sizeof *j);
    if (!j) return NULL;
    if (c->mem) {
        j->memv = *c->mem;
        j->mem = &j->memv;
    }
    sa_link_init(&j->link);
    sa_sched_item_init(&j->sq);
    sa_link_init(&j->ev_link);
    j->client = c;
    j->rng = sa__rand(&c->rng) | 1u;
    j->seq = ++c->next_seq;
    j->cb = req->callback;
    j->user_data = req->user_data;
    j->last_state = SA_JOB_VALIDATE;
    return j;
}

int sa_client_submit(sa_client *client, const sa_request *req, sa_job **out)
{
    sa_client *c = client;
    sa_job *j;
    int rc;

    if (out) *out = NULL;
    if (!c) return SA_ERR_INVALID_ARGUMENT;
    if (!req || !out)
        return cfail(c, SA_ERR_INVALID_ARGUMENT, "sa_client_submit needs a "
                     "request (sa_request_init) and an out pointer");
    if (c->freeing || c->free_pending)
        return cfail(c, SA_ERR_BUSY, "the client is being freed");
    c->errmsg[0] = '\0';
    j = job_alloc(c, req);
    if (!j) return cfail(c, SA_ERR_NOMEM, "out of memory");
    enter(c);
    rc = validate(c, req, j);
    if (rc == SA_OK) {
        if (c->opt.max_jobs > 0 && n_running(c) >= c->opt.max_jobs) {
            j->last_state = SA_JOB_QUEUED;
            set_where(c, j, J_QUEUED);
        } else {
            rc = start_job(c, j, sa_engine_now());
            if (rc == SA_ERR_NOMEM) cfail(c, rc, "out of memory");
            else if (rc != SA_OK)
                cfail(c, rc, "the request could not be turned into a job");
        }
    }
    if (rc != SA_OK) {
        job_destroy(j);
    } else {
        *out = j;
        jlog(c, SA_LOG_DEBUG, "job #%lu submitted (%zu actions, %d units%s)",
             j->seq, j->n_actions, j->units,
             j->where == J_QUEUED ? ", queued" : "");
    }
    leave(c);
    return rc;
}

/* ================================================================== */
/* Jobs: the caller's side                                             */
/* ================================================================== */

void sa_job_free(sa_job *job)
{
    sa_client *c;

    if (!job) return;
    c = job->client;
    if (!c) {
        job_destroy(job);
        return;
    }
    if (job->caller_released) return;
    enter(c);
    job->caller_released = 1;
    job->n_ev = 0;
    job->term_pending = 0;
    if (sa_link_linked(&job->ev_link)) sa_link_remove(&job->ev_link);
    if (job->where == J_ACTIVE) {
        job->quiet_end = job->kind == KIND_ANALYSIS;
        if (!job->published)
            user_cancel(c, job, 0, SA_ERR_CANCELLED,
                        "the caller freed the job");
    } else if (job->where == J_QUEUED || job->where == J_IDLE) {
        set_where(c, job, J_DEAD);
    }
    leave(c);
}

static int job_cancel(sa_job *j, int abandon)
{
    sa_client *c;

    if (!j || j->caller_released) return SA_ERR_INVALID_ARGUMENT;
    c = j->client;
    if (!c || (j->published && !(abandon && j->where == J_ACTIVE)))
        return SA_OK;  /* ended: no effect */
    enter(c);
    if (j->published) abandon_engine_side(c, j, "by the caller");
    else user_cancel(c, j, abandon, SA_ERR_CANCELLED, NULL);
    deliver(c);
    leave(c);
    return SA_OK;
}

int sa_job_cancel(sa_job *job)
{
    return job_cancel(job, 0);
}

int sa_job_abandon(sa_job *job)
{
    return job_cancel(job, 1);
}

int sa_job_state(const sa_job *job)
{
    int st;
    if (!job) return SA_ERR_INVALID_ARGUMENT;
    if (job->published) return job->pub_state;
    if (job->where == J_QUEUED) return SA_JOB_QUEUED;
    if (!job->sm) return SA_JOB_VALIDATE;
    st = sa_jobsm_state(job->sm);
    return is_terminal(st) ? job->last_state : st;
}

int sa_job_done(const sa_job *job)
{
    return job && job->published;
}

int sa_job_status(const sa_job *job)
{
    if (!job) return SA_ERR_INVALID_ARGUMENT;
    return job->published ? job->pub_status : SA_ERR_NOT_DONE;
}

/* A live string of the machine, kept for the caller (see keep()). */
static const char *live_str(const sa_job *job, int field,
                            const char *(*get)(const sa_jobsm *))
{
    sa_job *j = (sa_job *)(uintptr_t)job;  /* the cache is not the state */
    if (!job) return NULL;
    if (job->published) return job->pub[field];
    if (!job->sm) return NULL;
    return keep(j, field, get(job->sm));
}

const char *sa_job_errmsg(const sa_job *job)
{
    const char *s = live_str(job, K_ERRMSG, sa_jobsm_errmsg);
    return s ? s : "";
}

int sa_job_http_status(const sa_job *job)
{
    if (!job) return 0;
    if (job->published) return job->pub_http;
    return job->sm ? sa_jobsm_http_status(job->sm) : 0;
}

const char *sa_job_api_error_code(const sa_job *job)
{
    return live_str(job, K_API_CODE, sa_jobsm_api_error_code);
}

const char *sa_job_engine_error(const sa_job *job)
{
    return live_str(job, K_ENGINE, sa_jobsm_engine_error);
}

const char *sa_job_task_id(const sa_job *job)
{
    return live_str(job, K_TASK, sa_jobsm_task_id);
}

const char *sa_job_file_id(const sa_job *job)
{
    return live_str(job, K_FILE, sa_jobsm_file_id);
}

const char *sa_job_request_id(const sa_job *job)
{
    return live_str(job, K_REQUEST, sa_jobsm_request_id);
}

void *sa_job_user_data(const sa_job *job)
{
    return job ? job->user_data : NULL;
}

int sa_job_units(const sa_job *job)
{
    return job ? job->units : 0;
}

int sa_job_polls(const sa_job *job)
{
    if (!job) return 0;
    if (job->published) return job->pub_polls;
    return job->sm ? sa_jobsm_polls(job->sm) : 0;
}

const sa_result *sa_job_result(const sa_job *job)
{
    if (!job || !job->published || job->pub_state != SA_JOB_DONE) return NULL;
    return job->pub_result;
}

/* ================================================================== */
/* Client creation                                                     */
/* ================================================================== */

void sa_client_options_init(sa_client_options *opts)
{
    if (!opts) return;
    memset(opts, 0, sizeof *opts);
    opts->base_url = "https://yce-api-01.makeupar.com";
    opts->api_version = SA_API_V2_1;
    opts->upload_path = SA_UPLOAD_SKIN_ANALYSIS;
    opts->connect_timeout_ms = 10000;
    opts->request_timeout_ms = 30000;
    opts->upload_timeout_ms = 120000;
    opts->max_connections = 16;
    opts->max_jobs = 0;
    opts->max_uploads = 8;
    opts->step_budget_us = 500;
    opts->poll_interval_ms = 2000;
    opts->max_poll_interval_ms = 10000;
    opts->job_deadline_ms = 600000;
    opts->max_polls = 2000;
    opts->max_retries = 6;
    opts->backoff_initial_ms = 500;
    opts->backoff_max_ms = 16000;
    opts->rate_limit = 1;
    opts->rate_per_second = 5.0;
    opts->rate_burst = 5;
    opts->rate_window_max = 250;
    opts->rate_window_ms = 300000;
    opts->max_body_bytes = (size_t)8 << 20;
    opts->max_json_depth = 64;
    opts->log_level = SA_LOG_INFO;
}

#define OPT_FAIL(code, ...)                                               \
    do {                                                                  \
        sa__errf(err, errlen, __VA_ARGS__);                               \
        return code;                                                      \
    } while (0)

static int check_key_and_url(const sa_client_options *o, char *err,
                             size_t errlen)
{
    int scheme;
    if (!o->api_key || !*o->api_key)
        OPT_FAIL(SA_ERR_INVALID_ARGUMENT, "api_key is required: the key from "
                 "the API console (for example from YOUCAM_API_KEY)");
    if (strlen(o->api_key) > 4096 || sa__has_space_or_ctl(o->api_key))
        OPT_FAIL(SA_ERR_INVALID_ARGUMENT, "api_key contains a space, line "
                 "break or control character (or is over 4096 bytes): copy "
                 "the key without surrounding whitespace");
    if (!o->base_url || strlen(o->base_url) > 2048 ||
        sa__has_space_or_ctl(o->base_url))
        OPT_FAIL(SA_ERR_INVALID_ARGUMENT, "base_url must be a URL without "
                 "spaces, like https://yce-api-01.makeupar.com");
    scheme = sa__url_scheme(o->base_url);
    if (!scheme)
        OPT_FAIL(SA_ERR_INVALID_ARGUMENT, "base_url must start with "
                 "https:// (or http:// for a local emulator)");
    if (scheme == 1 && !o->allow_insecure_http &&
        !sa__url_is_loopback(o->base_url))
        OPT_FAIL(SA_ERR_INSECURE, "base_url uses plain http:// to a host that "
                 "is not loopback: the API key would cross the network "
                 "unencrypted; use https://, or set allow_insecure_http");
    return SA_OK;
}

static int check_numbers(const sa_client_options *o, char *err, size_t errlen)
{
    if (o->api_version != SA_API_DEFAULT && o->api_version != SA_API_V2_0 &&
        o->api_version != SA_API_V2_1)
        OPT_FAIL(SA_ERR_INVALID_ARGUMENT, "api_version must be SA_API_V2_0 "
                 "(20) or SA_API_V2_1 (21)");
    if (o->upload_path != SA_UPLOAD_SKIN_ANALYSIS &&
        o->upload_path != SA_UPLOAD_GENERIC)
        OPT_FAIL(SA_ERR_INVALID_ARGUMENT, "upload_path must be "
                 "SA_UPLOAD_SKIN_ANALYSIS or SA_UPLOAD_GENERIC");
    if (o->connect_timeout_ms <= 0 || o->request_timeout_ms <= 0 ||
        o->upload_timeout_ms <= 0)
        OPT_FAIL(SA_ERR_INVALID_ARGUMENT, "connect_timeout_ms, "
                 "request_timeout_ms and upload_timeout_ms must be > 0");
    if (o->max_connections < 1 || o->max_jobs < 0 || o->max_uploads < 0)
        OPT_FAIL(SA_ERR_INVALID_ARGUMENT, "max_connections must be >= 1, "
                 "max_jobs and max_uploads >= 0 (0 = no cap)");
    if (o->step_budget_us < 0 || o->step_budget_us > 10000000L)
        OPT_FAIL(SA_ERR_INVALID_ARGUMENT, "step_budget_us (the time budget "
                 "of a non-blocking step) must be between 0 (none) and "
                 "10000000 us (10 s)");
    if (o->poll_interval_ms <= 0 || o->max_poll_interval_ms < 200 ||
        o->job_deadline_ms <= 0 || o->max_polls < 1)
        OPT_FAIL(SA_ERR_INVALID_ARGUMENT, "poll_interval_ms and "
                 "job_deadline_ms must be > 0, max_poll_interval_ms >= 200 "
                 "and max_polls >= 1");
    if (o->max_retries < 0 || o->max_retries > 1000 ||
        o->backoff_initial_ms < 0 || o->backoff_max_ms < o->backoff_initial_ms)
        OPT_FAIL(SA_ERR_INVALID_ARGUMENT, "max_retries must be 0..1000, "
                 "backoff_initial_ms >= 0 and backoff_max_ms >= "
                 "backoff_initial_ms");
    if (o->rate_limit &&
        (!(o->rate_per_second > 0.0) || !isfinite(o->rate_per_second) ||
         o->rate_burst < 1 || o->rate_window_max < 0 || o->rate_window_ms < 0))
        OPT_FAIL(SA_ERR_INVALID_ARGUMENT, "rate_per_second must be > 0, "
                 "rate_burst >= 1, rate_window_max and rate_window_ms >= 0 "
                 "(or set rate_limit = 0)");
    if (o->max_body_bytes < 1024 || o->max_json_depth < 1 ||
        o->max_json_depth > 10000)
        OPT_FAIL(SA_ERR_INVALID_ARGUMENT, "max_body_bytes must be >= 1024 and "
                 "max_json_depth 1..10000");
    return SA_OK;
}

static int check_options(const sa_client_options *o, char *err, size_t errlen)
{
    int rc = check_key_and_url(o, err, errlen);
    if (rc == SA_OK) rc = check_numbers(o, err, errlen);
    if (rc != SA_OK) return rc;
    if (o->user_agent && (strlen(o->user_agent) > 256 || sa__has_ctl(o->user_agent)))
        OPT_FAIL(SA_ERR_INVALID_ARGUMENT, "user_agent must be up to 256 "
                 "printable characters");
    if ((o->ca_bundle && sa__has_ctl(o->ca_bundle)) ||
        (o->proxy && sa__has_ctl(o->proxy)))
        OPT_FAIL(SA_ERR_INVALID_ARGUMENT, "ca_bundle and proxy must not "
                 "contain control characters");
    if (o->mem && (!o->mem->malloc || !o->mem->realloc || !o->mem->free))
        OPT_FAIL(SA_ERR_INVALID_ARGUMENT, "mem needs all three of malloc, "
                 "realloc and free");
    return SA_OK;
}

#undef OPT_FAIL

/* splitmix64: spreads a weak seed over all bits. */
static uint64_t mix_seed(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    x ^= x >> 31;
    return x ? x : 1;
}

static void on_curl_timer(void *ctx, int64_t at_ms);
static void on_curl_socket(void *ctx, int fd, int what);

static int client_init_parts(sa_client *c, const sa_client_options *o,
                             char *err, size_t errlen)
{
    sa_engine_options eo;
    sa_engine_hooks eh;
    size_t n;
    int rc;

    c->api_key = sa__strdup(c->mem, o->api_key);
    c->base_url = sa__strdup(c->mem, o->base_url);
    if (!c->api_key || !c->base_url) {
        sa__errf(err, errlen, "out of memory creating the client");
        return SA_ERR_NOMEM;
    }
    for (n = strlen(c->base_url); n > 0 && c->base_url[n - 1] == '/'; n--)
        c->base_url[n - 1] = '\0';
    rc = sa_sched_init(&c->sched, c->mem, o);
    if (rc != SA_OK) {
        sa__errf(err, errlen, rc == SA_ERR_NOMEM ? "out of memory creating "
                 "the client" : "the rate limit options are out of range");
        return rc;
    }
    memset(&eo, 0, sizeof eo);
    eo.mem = c->mem;
    eo.api_key = o->api_key;
    eo.user_agent = o->user_agent;
    eo.ca_bundle = o->ca_bundle;
    eo.proxy = o->proxy;
    eo.connect_timeout_ms = o->connect_timeout_ms;
    eo.max_connections = o->max_connections;
    eo.max_body_bytes = o->max_body_bytes;
    memset(&eh, 0, sizeof eh);
    eh.ctx = c;
    eh.done = on_done;
    eh.timer = on_curl_timer;
    eh.socket = on_curl_socket;
    eh.log = engine_log;
    eh.log_level = o->log ? o->log_level : INT_MAX;
    return sa_engine_new(&eo, &eh, &c->engine, err, errlen);
}

static void client_free_parts(sa_client *c)
{
    sa_mem memv = c->memv;
    const sa_mem *mem = c->mem ? &memv : NULL;

    sa_engine_free(c->engine);
    sa_sched_free(&c->sched);
    if (c->api_key) memset(c->api_key, 0, strlen(c->api_key));
    sa__free(mem, c->api_key);
    sa__free(mem, c->base_url);
    sa__free(mem, c);
}

int sa_client_new(sa_client **out, const sa_client_options *opts,
                  char *errbuf, size_t errbuf_len)
{
    sa_client *c;
    int rc;

    if (errbuf && errbuf_len) errbuf[0] = '\0';
    if (!out) {
        sa__errf(errbuf, errbuf_len, "out is NULL");
        return SA_ERR_INVALID_ARGUMENT;
    }
    *out = NULL;
    if (!opts) {
        sa__errf(errbuf, errbuf_len, "options are required: call "
                 "sa_client_options_init() and set api_key");
        return SA_ERR_INVALID_ARGUMENT;
    }
    if (!sa_engine_global_ready()) {
        sa__errf(errbuf, errbuf_len, "call sa_global_init() once per process "
                 "before sa_client_new()");
        return SA_ERR_INIT;
    }
    rc = check_options(opts, errbuf, errbuf_len);
    if (rc != SA_OK) return rc;
    c = sa__calloc(opts->mem, 1, sizeof *c);
    if (!c) {
        sa__errf(errbuf, errbuf_len, "out of memory creating the client");
        return SA_ERR_NOMEM;
    }
    if (opts->mem) {
        c->memv = *opts->mem;
        c->mem = &c->memv;
    }
    c->opt = *opts;
    sa_link_init(&c->queued);
    sa_link_init(&c->active);
    sa_link_init(&c->idle);
    sa_link_init(&c->dead);
    sa_link_init(&c->evq);
    c->curl_timer_at = -1;
    c->reported_at = INT64_MIN;
    rc = client_init_parts(c, opts, errbuf, errbuf_len);
    if (rc != SA_OK) {
        client_free_parts(c);
        return rc;
    }
    /* Only owned strings stay reachable from the copy of the options. */
    c->opt.mem = c->mem;
    c->opt.api_key = c->api_key;
    c->opt.base_url = c->base_url;
    c->opt.user_agent = c->opt.ca_bundle = c->opt.proxy = NULL;
    if (!c->opt.api_version) c->opt.api_version = SA_API_V2_1;
    c->rng = mix_seed(opts->jitter_seed ? opts->jitter_seed
                      : (uint64_t)sa_engine_now() * 1000003u ^
                        (uint64_t)(uintptr_t)c);
    *out = c;
    return SA_OK;
}

/* Freeing: every job still running is abandoned (a warning per task that
 * may be billed) and gets its terminal callback; jobs the caller still
 * holds become detached shells that keep their final state. */
static void client_teardown(sa_client *c)
{
    c->freeing = 1;
    c->free_pending = 0;
    c->depth = 1;
    while (!sa_link_empty(&c->queued)) {
        sa_job *j = JOB_OF(c->queued.next, link);
        publish(c, j, SA_JOB_CANCELLED, SA_ERR_CANCELLED, "the client was "
                "freed before the job started: nothing was sent");
        set_where(c, j, j->caller_released ? J_DEAD : J_IDLE);
    }
    while (!sa_link_empty(&c->active)) {
        sa_job *j = JOB_OF(c->active.next, link);
        if (!j->published)
            publish(c, j, SA_JOB_CANCELLED, SA_ERR_CANCELLED,
                    sa_jobsm_task_maybe_created(j->sm)
                    ? "the client was freed while the task ran: it is no "
                      "longer polled and may still be billed"
                    : "the client was freed before a task was created: "
                      "nothing was billed");
        abandon_engine_side(c, j, "the client was freed");
    }
    deliver(c);
    sweep_dead(c);
    while (!sa_link_empty(&c->idle)) {
        sa_job *j = JOB_OF(c->idle.next, link);
        sa_link_remove(&j->link);
        j->where = J_DETACHED;
        j->client = NULL;
    }
    client_free_parts(c);
}

void sa_client_free(sa_client *client)
{
    if (!client || client->freeing) return;
    if (client->depth > 0) {
        client->free_pending = 1;
        return;
    }
    client_teardown(client);
}

const char *sa_client_errmsg(const sa_client *client)
{
    return client ? client->errmsg : "";
}

/* ================================================================== */
/* Driving                                                             */
/* ================================================================== */

/* The next time anything is due: a job's wake time, a queued job or
 * upload with a free slot, the limiter, finished transfers not handled
 * yet, libcurl's timer.  -1 when nothing is. */
static int64_t next_deadline(sa_client *c, int64_t now)
{
    int64_t at = -1;
    sa_link *l;

    for (l = c->active.next; l != &c->active; l = l->next)
        sa__min_at(&at, JOB_OF(l, link)->wake_at);
    if (!sa_link_empty(&c->queued) &&
        (c->opt.max_jobs <= 0 || n_running(c) < c->opt.max_jobs))
        sa__min_at(&at, now);
    sa__min_at(&at, sa_sched_ready_at(&c->sched, now));
    if (sa_engine_has_leftover(c->engine)) sa__min_at(&at, now);
    if (c->hooks) {
        sa__min_at(&at, c->curl_timer_at);
    } else {
        long t = sa_engine_timeout(c->engine);
        if (t >= 0) sa__min_at(&at, now + t);
    }
    return at;
}

static int drive_check(sa_client *c)
{
    if (c->depth > 0 || c->freeing)
        return cfail(c, SA_ERR_BUSY, "not allowed from inside a callback");
    if (c->hooks)
        return cfail(c, SA_ERR_BUSY, "event hooks are installed: the event "
                     "loop drives this client (sa_client_socket_action)");
    return SA_OK;
}

/* Enter (1) or leave (0) a bounded call (see "Bounded steps"). */
static void set_bounded(sa_client *c, int on)
{
    c->bounded = on;
    c->due_left = SA_STEP_BATCH;
    c->done_now = 0;
    c->budget_end = on && c->opt.step_budget_us > 0
                  ? sa_engine_now_us() + c->opt.step_budget_us : 0;
    sa_engine_set_batch(c->engine, on ? SA_STEP_BATCH : 0, c->budget_end);
}

/* One round: due work, wait up to timeout_ms (< 0: no limit) for the next
 * deadline or socket activity, transfers, due work, callbacks. */
static int step_round(sa_client *c, long timeout_ms)
{
    int64_t now = sa_engine_now(), at;
    int rc = SA_OK, rc2;

    advance(c, now);
    deliver(c);
    if (c->free_pending) return SA_OK;
    if (timeout_ms != 0 && c->n_active + c->n_queued > 0) {
        long wait = timeout_ms;
        now = sa_engine_now();
        at = next_deadline(c, now);
        if (at >= 0) {
            int64_t d = at > now ? at - now : 0;
            if (wait < 0 || d < wait) wait = (long)d;
        }
        if (wait < 0) wait = LONG_MAX;
        if (wait > 0) rc = sa_engine_wait(c->engine, wait);
    }
    rc2 = sa_engine_perform(c->engine);
    now = sa_engine_now();
    advance(c, now);
    deliver(c);
    if (rc == SA_OK) rc = rc2;
    if (rc != SA_OK) cfail(c, rc, "libcurl failed: %s", sa_strerror(rc));
    return rc;
}

/* A round; bounded with timeout 0 (see "Bounded steps"). */
static int step_once(sa_client *c, long timeout_ms)
{
    int rc;

    set_bounded(c, timeout_ms == 0);
    rc = step_round(c, timeout_ms);
    set_bounded(c, 0);
    return rc;
}

int sa_client_step(sa_client *client, long timeout_ms)
{
    int rc, n;

    if (!client) return SA_ERR_INVALID_ARGUMENT;
    rc = drive_check(client);
    if (rc != SA_OK) return rc;
    enter(client);
    rc = step_once(client, timeout_ms);
    n = n_visible(client);
    if (leave(client)) return 0;
    return rc != SA_OK ? rc : n;
}

/* Step in slices until `job` (NULL: every job) has ended, time is up, or
 * the interrupt hook (or sa_client_wakeup without one) says stop. */
static int wait_loop(sa_client *c, const sa_job *job, long timeout_ms)
{
    int64_t start = sa_engine_now(), checked = start;

    atomic_store(&c->woken, 0);
    for (;;) {
        int64_t now, elapsed;
        long slice = WAIT_SLICE_MS;
        int woken;
        if (job ? job->published : c->n_active + c->n_queued == 0)
            return SA_OK;
        if (c->free_pending) return SA_OK;
        now = sa_engine_now();
        woken = atomic_exchange(&c->woken, 0);
        if (woken || now - checked >= WAIT_SLICE_MS) {
            checked = now;
            if (c->opt.interrupt
                    ? c->opt.interrupt(c->opt.interrupt_user_data) != 0
                    : woken)
                return SA_ERR_INTERRUPTED;
        }
        elapsed = now - start;
        if (timeout_ms >= 0 && elapsed >= timeout_ms)
            return SA_ERR_WAIT_TIMEOUT;
        if (timeout_ms >= 0 && timeout_ms - elapsed < slice)
            slice = (long)(timeout_ms - elapsed);
        (void)step_once(c, slice);
    }
}

int sa_job_wait(sa_job *job, long timeout_ms)
{
    sa_client *c;
    int rc;

    if (!job || job->caller_released) return SA_ERR_INVALID_ARGUMENT;
    c = job->client;
    if (!c) return job->published ? SA_OK : SA_ERR_INVALID_ARGUMENT;
    if (job->published) return SA_OK;
    rc = drive_check(c);
    if (rc != SA_OK) return rc;
    enter(c);
    rc = wait_loop(c, job, timeout_ms);
    leave(c);
    return rc;
}

int sa_client_run(sa_client *client, long timeout_ms)
{
    int rc;

    if (!client) return SA_ERR_INVALID_ARGUMENT;
    rc = drive_check(client);
    if (rc != SA_OK) return rc;
    enter(client);
    rc = wait_loop(client, NULL, timeout_ms);
    leave(client);
    return rc;
}

int sa_client_active(const sa_client *client)
{
    return client ? n_visible(client) : 0;
}

long sa_client_timeout_ms(sa_client *client)
{
    int64_t now, at;

    if (!client || client->freeing) return -1;
    now = sa_engine_now();
    at = next_deadline(client, now);
    if (at < 0) return -1;
    if (at <= now) return 0;
    return at - now > LONG_MAX ? LONG_MAX : (long)(at - now);
}

int sa_client_wakeup(sa_client *client)
{
    if (!client) return SA_ERR_INVALID_ARGUMENT;
    atomic_store(&client->woken, 1);
    return sa_engine_wakeup(client->engine);
}

/* ================================================================== */
/* Event hooks                                                         */
/* ================================================================== */

/* Tell the loop when to call sa_client_socket_action(SA_SOCKET_TIMEOUT):
 * whenever that time changes, and again whenever something is due now. */
static void report_timer(sa_client *c)
{
    int64_t now, at;

    if (!c->hooks || c->freeing) return;
    now = sa_engine_now();
    at = next_deadline(c, now);
    if (at == c->reported_at && (at < 0 || at > now)) return;
    c->reported_at = at;
    c->timer(c->hook_ud, at < 0 ? -1L
             : at <= now ? 0L
             : (at - now > LONG_MAX ? LONG_MAX : (long)(at - now)));
}

/* libcurl's timer changed (from inside libcurl: no engine calls here). */
static void on_curl_timer(void *ctx, int64_t at_ms)
{
    sa_client *c = ctx;
    c->curl_timer_at = at_ms;
    report_timer(c);
}

static void on_curl_socket(void *ctx, int fd, int what)
{
    sa_client *c = ctx;
    if (c->hooks && c->sock) (void)c->sock(c->hook_ud, fd, what);
}

int sa_client_set_event_hooks(sa_client *client, sa_socket_fn sock,
                              sa_timer_fn timer, void *user_data)
{
    sa_client *c = client;
    int rc;

    if (!c) return SA_ERR_INVALID_ARGUMENT;
    if (c->depth > 0 || c->freeing)
        return cfail(c, SA_ERR_BUSY, "not allowed from inside a callback");
    if (!sock != !timer)
        return cfail(c, SA_ERR_INVALID_ARGUMENT, "give both a socket and a "
                     "timer hook, or neither");
    if (sa_engine_in_flight(c->engine) > 0)
        return cfail(c, SA_ERR_BUSY, "requests are in flight: install or "
                     "remove event hooks while the client has none");
    rc = sa_engine_set_event_mode(c->engine, sock != NULL);
    if (rc != SA_OK) return cfail(c, rc, "libcurl refused the event hooks");
    c->hooks = sock != NULL;
    c->sock = sock;
    c->timer = timer;
    c->hook_ud = user_data;
    c->curl_timer_at = -1;
    c->reported_at = INT64_MIN;
    enter(c);
    leave(c);  /* reports the timer */
    return SA_OK;
}

int sa_client_socket_action(sa_client *client, int fd, int what)
{
    sa_client *c = client;
    int64_t now;
    int rc, n;

    if (!c) return SA_ERR_INVALID_ARGUMENT;
    if (c->depth > 0 || c->freeing)
        return cfail(c, SA_ERR_BUSY, "not allowed from inside a callback");
    if (!c->hooks)
        return cfail(c, SA_ERR_INVALID_ARGUMENT, "no event hooks installed "
                     "(sa_client_set_event_hooks)");
    enter(c);
    now = sa_engine_now();
    /* a timer libcurl already saw expire is re-reported by libcurl */
    if (fd == SA_SOCKET_TIMEOUT && c->curl_timer_at >= 0 &&
        c->curl_timer_at <= now)
        c->curl_timer_at = -1;
    set_bounded(c, 1);
    rc = sa_engine_socket_action(c->engine, fd, what);
    advance(c, sa_engine_now());
    set_bounded(c, 0);
    deliver(c);
    n = n_visible(c);
    if (rc != SA_OK) cfail(c, rc, "libcurl failed: %s", sa_strerror(rc));
    if (leave(c)) return 0;
    return rc != SA_OK ? rc : n;
}

void sa__client_stats(const sa_client *c, long *transfers, long *connects)
{
    sa_engine_stats(c ? c->engine : NULL, transfers, connects);
}

void sa__client_peaks(const sa_client *c, int *uploads, int *done_per_step)
{
    if (uploads) *uploads = c ? c->sched.peak_uploads : 0;
    if (done_per_step) *done_per_step = c ? c->peak_done : 0;
}

/* ================================================================== */
/* Webhooks: poll a task now                                           */
/* ================================================================== */

/* The poll still goes through the limiter queue: only its wait ends. */
int sa_client_notify(sa_client *client, const char *task_id)
{
    sa_client *c = client;
    int64_t now;
    sa_link *l;
    int n = 0;

    if (!c || !task_id || c->freeing) return SA_ERR_INVALID_ARGUMENT;
    enter(c);
    now = sa_engine_now();
    for (l = c->active.next; l != &c->active; l = l->next) {
        sa_job *j = JOB_OF(l, link);
        const char *id = j->kind == KIND_ANALYSIS ? sa_jobsm_task_id(j->sm)
                                                  : NULL;
        if (!id || strcmp(id, task_id) != 0) continue;
        if (sa_jobsm_poll_now(j->sm, now)) {
            if (j->wake_at > now) j->wake_at = now;
            n++;
        }
    }
    jlog(c, SA_LOG_DEBUG, "notify: %d job(s) of task %s poll now", n,
         task_id);
    leave(c);
    return n;
}

/* ================================================================== */
/* Result downloads (see "Result downloads" at the top)                */
/* ================================================================== */

/* The settings of a download or fetch machine, from the options. */
static void fetch_config(const sa_client *c, sa_job *j, int api_version,
                         int64_t deadline_at, sa_job_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->mem = j->mem;
    cfg->base_url = c->base_url;
    cfg->api_version = api_version;
    cfg->request_timeout_ms = c->opt.request_timeout_ms;
    cfg->upload_timeout_ms = c->opt.upload_timeout_ms;
    cfg->poll_interval_ms = c->opt.poll_interval_ms;
    cfg->max_poll_interval_ms = c->opt.max_poll_interval_ms;
    cfg->deadline_at_ms = deadline_at;
    cfg->max_polls = c->opt.max_polls;
    cfg->max_retries = c->opt.max_retries;
    cfg->backoff_initial_ms = c->opt.backoff_initial_ms;
    cfg->backoff_max_ms = c->opt.backoff_max_ms;
    cfg->max_json_depth = c->opt.max_json_depth;
    cfg->rng = &j->rng;
}

/* A bare job of the client (no request). */
static sa_job *job_new(sa_client *c, int kind)
{
    sa_request req;
    sa_job *j;

    sa_request_init(&req);
    j = job_alloc(c, &req);
    if (j) j->kind = kind;
    return j;
}

/* Write one file to folder/name (name is a base name). */
static int write_file(const char *folder, const char *name, const void *data,
                      size_t len, char *msg, size_t msglen)
{
    char path[4096], eb[128];
    const char *p = data;
    int fd, n;

    if (!*name || strchr(name, '/') || !strcmp(name, ".") ||
        !strcmp(name, "..")) {
        snprintf(msg, msglen, "refusing to write a file named '%s'", name);
        return SA_ERR_FILE;
    }
    n = snprintf(path, sizeof path, "%s/%s", folder, name);
    if (n < 0 || (size_t)n >= sizeof path) {
        snprintf(msg, msglen, "the path of '%s' is too long", name);
        return SA_ERR_FILE;
    }
    fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) goto fail;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            close(fd);
            goto fail;
        }
        p += w;
        len -= (size_t)w;
    }
    if (close(fd) == 0) return SA_OK;
fail:
    sa__errf(msg, msglen, "cannot write '%s' in the folder: %s", name,
             strerror_r(errno, eb, sizeof eb));
    return SA_ERR_FILE;
}

/* Start one download of fetch job j. */
static int start_child(sa_client *c, sa_job *j, const char *url, int64_t now)
{
    sa_job_config cfg;
    sa_job *k = job_new(c, KIND_CHILD);
    int rc;

    if (!k) return SA_ERR_NOMEM;
    k->caller_released = 1;  /* internal: no callbacks, freed when done */
    fetch_config(c, k, j->api_version, j->deadline_at, &cfg);
    rc = sa_jobsm_new_download(&cfg, url, sa_jobsm_task_id(j->sm), now,
                               &k->sm);
    if (rc != SA_OK) {
        job_destroy(k);
        return rc;
    }
    k->parent = j;
    k->deadline_at = j->deadline_at;
    k->wake_at = now;
    k->last_state = SA_JOB_FETCHING;
    k->published = 1;        /* nothing to publish: the parent tells */
    set_where(c, k, J_ACTIVE);
    j->n_children++;
    return SA_OK;
}

/* Start downloads while fewer than FETCH_CONCURRENCY run. */
static void fetch_pump(sa_client *c, sa_job *j, int64_t now)
{
    int guard;

    for (guard = 0; guard < FETCH_CONCURRENCY; guard++) {
        const char *url;
        int rc;
        if (j->n_children >= FETCH_CONCURRENCY) return;
        url = sa_jobsm_fetch_next(j->sm);
        if (!url) return;
        rc = start_child(c, j, url, now);
        if (rc != SA_OK)
            (void)sa_jobsm_fetch_done(j->sm, rc, NULL, NULL, 0, rc ==
                                      SA_ERR_NOMEM ? "out of memory starting "
                                      "a download" : "a result URL was "
                                      "refused");
    }
}

/* A child ended: its file goes to the folder and into the parent's
 * result, or its failure to the parent; the parent looks again now. */
static void child_ended(sa_client *c, sa_job *k)
{
    sa_job *j = k->parent;
    const void *data;
    size_t len;
    char msg[768];
    int st, status;

    if (!j) return;
    k->parent = NULL;
    j->n_children--;
    j->wake_at = sa_engine_now();
    st = sa_jobsm_state(k->sm);
    data = sa_jobsm_download_data(k->sm, &len);
    if (st != SA_JOB_DONE || !data) {
        status = sa_jobsm_status(k->sm);
        snprintf(msg, sizeof msg, "downloading %s: %s",
                 sa_jobsm_download_name(k->sm), sa_jobsm_errmsg(k->sm));
        (void)sa_jobsm_fetch_done(j->sm, status < 0 ? status
                                  : SA_ERR_DOWNLOAD, NULL, NULL, 0, msg);
        return;
    }
    status = j->folder ? write_file(j->folder, sa_jobsm_download_name(k->sm),
                                    data, len, msg, sizeof msg) : SA_OK;
    (void)sa_jobsm_fetch_done(j->sm, status, sa_jobsm_download_name(k->sm),
                              data, len, msg);
    (void)c;
}

/* The fetch job ended: its children stop (no report). */
static void cancel_children(sa_client *c, sa_job *parent)
{
    sa_link *l, *next;
    int64_t now = sa_engine_now();

    for (l = c->active.next; l != &c->active; l = next) {
        sa_job *k = JOB_OF(l, link);
        next = l->next;
        if (k->kind != KIND_CHILD || k->parent != parent) continue;
        k->parent = NULL;
        (void)sa_jobsm_cancel(k->sm, now, 1);
        engine_end(c, k);
    }
    parent->n_children = 0;
}

/* A ZIP result's files are in the result already: write them now; a
 * failure ends the fetch job FAILED when it is first driven. */
static void write_result_files(sa_job *j, const sa_result *r)
{
    size_t i, n = sa_result_file_count(r), len;
    char msg[768];

    for (i = 0; i < n && j->folder; i++) {
        const void *data = sa_result_file_data(r, i, &len);
        const char *name = sa_result_file_name(r, i);
        if (write_file(j->folder, name ? name : "", data, len, msg,
                       sizeof msg) != SA_OK) {
            sa_jobsm_fetch_fail(j->sm, SA_ERR_FILE, msg);
            return;
        }
    }
}

static int check_fetch_args(sa_client *c, sa_job *done, const char *folder)
{
    struct stat st;
    char eb[128];

    if (c->freeing || c->free_pending)
        return cfail(c, SA_ERR_BUSY, "the client is being freed");
    if (!done || done->client != c || done->caller_released ||
        done->kind == KIND_CHILD)
        return cfail(c, SA_ERR_INVALID_ARGUMENT, "the job is not a job of "
                     "this client");
    if (!done->published)
        return cfail(c, SA_ERR_NOT_DONE, "the job has not ended yet");
    if (done->pub_state != SA_JOB_DONE || !done->pub_result)
        return cfail(c, SA_ERR_INVALID_ARGUMENT, "the job ended %s, not "
                     "DONE: it has no result to download",
                     sa_job_state_name(done->pub_state));
    if (!folder) return SA_OK;
    if (stat(folder, &st) != 0)
        return cfail(c, SA_ERR_FILE, "folder '%s': %s", folder,
                     strerror_r(errno, eb, sizeof eb));
    if (!S_ISDIR(st.st_mode))
        return cfail(c, SA_ERR_FILE, "'%s' is not a folder", folder);
    return SA_OK;
}

int sa_client_fetch_masks(sa_client *client, sa_job *done_job,
                          const char *folder, sa_job **out)
{
    sa_client *c = client;
    sa_job_config cfg;
    sa_job *j;
    int64_t now;
    int rc;

    if (out) *out = NULL;
    if (!c) return SA_ERR_INVALID_ARGUMENT;
    if (!out)
        return cfail(c, SA_ERR_INVALID_ARGUMENT, "out is NULL");
    rc = check_fetch_args(c, done_job, folder);
    if (rc != SA_OK) return rc;
    j = job_new(c, KIND_FETCH);
    if (!j) return cfail(c, SA_ERR_NOMEM, "out of memory");
    enter(c);
    now = sa_engine_now();
    j->cb = done_job->cb;
    j->user_data = done_job->user_data;
    j->api_version = done_job->api_version;
    j->deadline_at = now + c->opt.job_deadline_ms;
    fetch_config(c, j, j->api_version, j->deadline_at, &cfg);
    rc = sa_jobsm_new_fetch(&cfg, done_job->pub_result, now, &j->sm);
    if (rc == SA_OK && folder) {
        j->folder = sa__strdup(j->mem, folder);
        if (!j->folder) rc = SA_ERR_NOMEM;
    }
    if (rc != SA_OK) {
        job_destroy(j);
        leave(c);
        return cfail(c, rc, rc == SA_ERR_NOMEM ? "out of memory"
                     : "the result cannot be downloaded");
    }
    write_result_files(j, done_job->pub_result);
    j->wake_at = now;
    j->last_state = SA_JOB_FETCHING;
    set_where(c, j, J_ACTIVE);
    *out = j;
    jlog(c, SA_LOG_DEBUG, "job #%lu fetches the files of job #%lu%s%s",
         j->seq, done_job->seq, folder ? " into " : "", folder ? folder : "");
    leave(c);
    return SA_OK;
}
