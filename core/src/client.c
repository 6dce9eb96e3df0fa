/* client.c - the sa_client handle: creation, the drive modes, event hooks. */

/*
 * A client owns its jobs and drives them: for each job it asks
 * sa__jobsm_next(now) what to do, sends requests through the engine (API
 * host requests only when the scheduler gives a slot), feeds the answers
 * back, and tells the caller what happened.  This file is the public glue
 * of that: sa_client_new / sa_client_free, the three ways to drive a
 * client (blocking: sa_job_wait, sa_client_run; stepping: sa_client_step;
 * event loops: sa_client_set_event_hooks + sa_client_socket_action), the
 * client's log and error message, and sa_client_notify.  The rest of the
 * client layer, sharing sa_client.h:
 *   options.c  sa_client_options: defaults, and the checks of sa_client_new
 *   request.c  sa_request: validation before anything is sent; submit
 *   drive.c    the engine side of jobs: lists, lifetime, sending, cancel
 *   sched.c    which waiting request goes next (pure; sa_internal.h)
 *   publish.c  the caller's side of jobs: outcome, callbacks, sa_job_*
 *   fetch.c    result downloads (sa_client_fetch_masks) and their files
 *
 * Bounded steps.  A non-blocking call (sa_client_step with timeout 0,
 * sa_client_socket_action) handles at most SA__STEP_BATCH socket events
 * and finished transfers, drives at most SA__STEP_BATCH due jobs, hands
 * libcurl at most SA__STEP_BATCH / 4 new transfers, and takes no new item
 * of any kind once opt.step_budget_us has passed (at least one of each
 * that is ready), so that a burst of work is spread over several frames
 * of a caller's loop; what is left makes sa_client_timeout_ms (and the
 * timer hook) say 0.  The blocking calls (a step with a timeout,
 * sa_client_run, sa_job_wait) handle everything.
 *
 * Callbacks and reentrancy (STYLE.md 7).  `depth` counts the public calls
 * running on this client (sa__enter / sa__leave).  A user callback only
 * ever runs inside one, so depth > 0 at the start of a driving call means
 * "called from a callback": sa_client_step / run / sa_job_wait /
 * socket_action answer SA_ERR_BUSY, and sa_client_free is deferred.  Job
 * memory is only released when depth drops back to 0 (the dead list), so
 * no frame ever holds a freed job.  Job callbacks are collected while the
 * engine works and delivered after it (publish.c), never from inside
 * libcurl.
 */
#include "sa_client.h"
#include "budget.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define LOG_LINE 1024
#define WAIT_SLICE_MS 50    /* interrupt hook checked at least this often */

static void client_teardown(sa_client *c);
static void report_timer(sa_client *c);

/* ================================================================== */
/* Version                                                            */
/* ================================================================== */

const char *sa_version(void)
{
    return SA_VERSION;
}

int sa_version_num(void)
{
    return SA_VERSION_NUM;
}

/* ================================================================== */
/* Messages and logging                                               */
/* ================================================================== */

/* One log line, redacted (API key, URL query strings), at the level. */
void sa__jlog(sa_client *c, int level, const char *fmt, ...)
{
    char line[LOG_LINE];
    va_list ap;

    if (!c->opt.log || level < c->opt.log_level) return;
    va_start(ap, fmt);
    sa__vredact(line, sizeof line, c->api_key, fmt, ap);
    va_end(ap);
    c->opt.log(c->opt.log_user_data, level, line);
}

/* Set the client's message (redacted) and return status. */
int sa__cfail(sa_client *c, int status, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    sa__vredact(c->errmsg, sizeof c->errmsg, c->api_key, fmt, ap);
    va_end(ap);
    return status;
}

/* The engine's log lines go through the same redaction. */
static void engine_log(void *ctx, int level, const char *line)
{
    sa__jlog(ctx, level, "%s", line);
}

/* ================================================================== */
/* Public calls: depth                                                */
/* ================================================================== */

void sa__enter(sa_client *c)
{
    c->depth++;
}

/* Leave a public call.  At depth 0: re-report the timer, free the dead
 * jobs, and run a deferred sa_client_free.  Returns 1 when the client is
 * gone. */
int sa__leave(sa_client *c)
{
    if (c->depth == 1) report_timer(c);
    if (--c->depth > 0) return 0;
    sa__sweep_dead(c);
    if (c->free_pending) {
        client_teardown(c);
        return 1;
    }
    return 0;
}

/* ================================================================== */
/* Client creation                                                    */
/* ================================================================== */

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
    sa__engine_options eo;
    sa__engine_hooks eh;
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
    sa__pollplan_init(&c->plan, o->poll_strategy, o->webhooks,
                     o->poll_interval_ms, o->max_poll_interval_ms);
    rc = sa__sched_init(&c->sched, c->mem, o);
    if (rc != SA_OK) {
        sa__errf(err, errlen, rc == SA_ERR_NOMEM ? "out of memory creating "
                 "the client" : "the rate limit options are out of range");
        return rc;
    }
    {
        /* rate_limit_scope: the budget the scheduler shares (budget.c) */
        sa__budget *b = NULL;
        char note[CLIENT_ERRLEN];
        rc = sa__budget_open(&b, c->mem, o, c->api_key, c->base_url, note,
                            sizeof note);
        if (rc != SA_OK) {
            if (rc == SA_ERR_NOMEM)
                sa__errf(err, errlen, "out of memory creating the client");
            else
                sa__errf(err, errlen, "%s", note);
            return rc;
        }
        c->sched.budget = b;
        if (*note) sa__jlog(c, SA_LOG_INFO, "%s", note);
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
    eh.done = sa__on_done;
    eh.timer = on_curl_timer;
    eh.socket = on_curl_socket;
    eh.log = engine_log;
    eh.log_level = o->log ? o->log_level : INT_MAX;
    return sa__engine_new(&eo, &eh, &c->engine, err, errlen);
}

static void client_free_parts(sa_client *c)
{
    sa_mem memv = c->memv;
    const sa_mem *mem = c->mem ? &memv : NULL;

    sa__engine_free(c->engine);
    sa__budget_close(c->sched.budget);
    c->sched.budget = NULL;
    sa__sched_free(&c->sched);
    if (c->api_key) memset(c->api_key, 0, strlen(c->api_key));
    sa__free(mem, c->api_key);
    sa__free(mem, c->base_url);
    sa__free(mem, c);
}

static int client_new(sa_client **out, const sa_client_options *user,
                      char *errbuf, size_t errbuf_len)
{
    sa_client_options full;   /* the caller's fields, defaults beyond */
    const sa_client_options *opts = &full;
    sa_client *c;
    int rc;

    if (!out) {
        sa__errf(errbuf, errbuf_len, "out is NULL");
        return SA_ERR_INVALID_ARGUMENT;
    }
    *out = NULL;
    if (!user) {
        sa__errf(errbuf, errbuf_len, "options are required: call "
                 "sa_client_options_init() and set api_key");
        return SA_ERR_INVALID_ARGUMENT;
    }
    rc = sa__options_in(&full, user, errbuf, errbuf_len);
    if (rc != SA_OK) return rc;
    if (!sa__engine_global_ready()) {
        sa__errf(errbuf, errbuf_len, "call sa_global_init() once per process "
                 "before sa_client_new()");
        return SA_ERR_INIT;
    }
    rc = sa__options_check(opts, errbuf, errbuf_len);
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
    c->opt.rate_limit_scope = NULL;
    if (!c->opt.api_version) c->opt.api_version = SA_API_V2_1;
    c->rng = mix_seed(opts->jitter_seed ? opts->jitter_seed
                      : (uint64_t)sa__engine_now() * 1000003u ^
                        (uint64_t)(uintptr_t)c);
    *out = c;
    return SA_OK;
}

/* The message in errbuf goes through the same redaction as every other
 * message of the client (libcurl's text of a failed setup included). */
int sa_client_new(sa_client **out, const sa_client_options *opts,
                  char *errbuf, size_t errbuf_len)
{
    char raw[CLIENT_ERRLEN];
    int rc;

    if (errbuf && errbuf_len) errbuf[0] = '\0';
    rc = client_new(out, opts, errbuf, errbuf_len);
    if (rc != SA_OK && errbuf && errbuf_len && opts &&
        sa__has_secret(errbuf, opts->api_key)) {
        snprintf(raw, sizeof raw, "%s", errbuf);
        sa__redact(errbuf, errbuf_len, raw, opts->api_key);
    }
    return rc;
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
        sa__publish(c, j, SA_JOB_CANCELLED, SA_ERR_CANCELLED, "the client was "
                    "freed before the job started: nothing was sent");
        sa__set_where(c, j, j->caller_released ? J_DEAD : J_IDLE);
    }
    while (!sa_link_empty(&c->active)) {
        sa_job *j = JOB_OF(c->active.next, link);
        if (!j->published)
            sa__publish(c, j, SA_JOB_CANCELLED, SA_ERR_CANCELLED,
                        sa__jobsm_task_maybe_created(j->sm)
                        ? "the client was freed while the task ran: it is no "
                          "longer polled and may still be billed"
                        : "the client was freed before a task was created: "
                          "nothing was billed");
        sa__abandon_engine_side(c, j, "the client was freed");
    }
    sa__deliver(c);
    sa__sweep_dead(c);
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
/* Driving                                                            */
/* ================================================================== */

/* The next time anything is due: a job's wake time, a queued job or
 * upload with a free slot, the limiter, finished transfers not handled
 * yet, libcurl's timer.  -1 when nothing is. */
static int64_t next_deadline(sa_client *c, int64_t now)
{
    int64_t at = -1;
    sa__link *l;

    for (l = c->active.next; l != &c->active; l = l->next)
        sa__min_at(&at, JOB_OF(l, link)->wake_at);
    if (!sa_link_empty(&c->queued) &&
        (c->opt.max_jobs <= 0 || sa__n_running(c) < c->opt.max_jobs))
        sa__min_at(&at, now);
    sa__min_at(&at, sa__sched_ready_at(&c->sched, now));
    if (sa__engine_has_leftover(c->engine)) sa__min_at(&at, now);
    if (c->hooks) {
        sa__min_at(&at, c->curl_timer_at);
    } else {
        long t = sa__engine_timeout(c->engine);
        if (t >= 0) sa__min_at(&at, now + t);
    }
    return at;
}

static int drive_check(sa_client *c)
{
    if (c->depth > 0 || c->freeing)
        return sa__cfail(c, SA_ERR_BUSY, "not allowed from inside a callback");
    if (c->hooks)
        return sa__cfail(c, SA_ERR_BUSY, "event hooks are installed: the "
                         "event loop drives this client "
                         "(sa_client_socket_action)");
    return SA_OK;
}

/* Enter (1) or leave (0) a bounded call (see "Bounded steps"). */
static void set_bounded(sa_client *c, int on)
{
    c->bounded = on;
    c->due_left = SA__STEP_BATCH;
    c->done_now = 0;
    c->budget_end = on && c->opt.step_budget_us > 0
                  ? sa__engine_now_us() + c->opt.step_budget_us : 0;
    sa__engine_set_batch(c->engine, on ? SA__STEP_BATCH : 0, c->budget_end);
}

/* One round: due work, wait up to timeout_ms (< 0: no limit) for the next
 * deadline or socket activity, transfers, due work, callbacks. */
static int step_round(sa_client *c, long timeout_ms)
{
    int64_t now = sa__engine_now(), at;
    int rc = SA_OK, rc2;

    sa__advance(c, now);
    sa__deliver(c);
    if (c->free_pending) return SA_OK;
    if (timeout_ms != 0 && c->n_active + c->n_queued > 0) {
        long wait = timeout_ms;
        now = sa__engine_now();
        at = next_deadline(c, now);
        if (at >= 0) {
            int64_t d = at > now ? at - now : 0;
            if (wait < 0 || d < wait) wait = (long)d;
        }
        if (wait < 0) wait = LONG_MAX;
        if (wait > 0) rc = sa__engine_wait(c->engine, wait);
    }
    rc2 = sa__engine_perform(c->engine);
    now = sa__engine_now();
    sa__advance(c, now);
    sa__deliver(c);
    if (rc == SA_OK) rc = rc2;
    if (rc != SA_OK) sa__cfail(c, rc, "libcurl failed: %s", sa_strerror(rc));
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
    sa__enter(client);
    rc = step_once(client, timeout_ms);
    n = sa__n_visible(client);
    if (sa__leave(client)) return 0;
    return rc != SA_OK ? rc : n;
}

/* Step in slices until `job` (NULL: every job) has ended, time is up, or
 * the interrupt hook (or sa_client_wakeup without one) says stop. */
static int wait_loop(sa_client *c, const sa_job *job, long timeout_ms)
{
    int64_t start = sa__engine_now(), checked = start;

    atomic_store(&c->woken, 0);
    for (;;) {
        int64_t now, elapsed;
        long slice = WAIT_SLICE_MS;
        int woken;
        if (job ? job->published : c->n_active + c->n_queued == 0)
            return SA_OK;
        if (c->free_pending) return SA_OK;
        now = sa__engine_now();
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

/* wait_loop for a caller that may drive the client now. */
static int drive_wait(sa_client *c, sa_job *job, long timeout_ms)
{
    int rc = drive_check(c);

    if (rc != SA_OK) return rc;
    sa__enter(c);
    rc = wait_loop(c, job, timeout_ms);
    sa__leave(c);
    return rc;
}

int sa_job_wait(sa_job *job, long timeout_ms)
{
    sa_client *c;

    if (!job || job->caller_released) return SA_ERR_INVALID_ARGUMENT;
    c = job->client;
    if (!c) return job->published ? SA_OK : SA_ERR_INVALID_ARGUMENT;
    if (job->published) return SA_OK;
    return drive_wait(c, job, timeout_ms);
}

int sa_client_run(sa_client *client, long timeout_ms)
{
    if (!client) return SA_ERR_INVALID_ARGUMENT;
    return drive_wait(client, NULL, timeout_ms);
}

int sa_client_active(const sa_client *client)
{
    return client ? sa__n_visible(client) : 0;
}

long sa_client_timeout_ms(sa_client *client)
{
    int64_t now, at;

    if (!client || client->freeing) return -1;
    now = sa__engine_now();
    at = next_deadline(client, now);
    if (at < 0) return -1;
    if (at <= now) return 0;
    return at - now > LONG_MAX ? LONG_MAX : (long)(at - now);
}

int sa_client_wakeup(sa_client *client)
{
    if (!client) return SA_ERR_INVALID_ARGUMENT;
    atomic_store(&client->woken, 1);
    return sa__engine_wakeup(client->engine);
}

/* ================================================================== */
/* Event hooks                                                        */
/* ================================================================== */

/* Tell the loop when to call sa_client_socket_action(SA_SOCKET_TIMEOUT):
 * whenever that time changes, and again whenever something is due now. */
static void report_timer(sa_client *c)
{
    int64_t now, at;

    if (!c->hooks || c->freeing) return;
    now = sa__engine_now();
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
        return sa__cfail(c, SA_ERR_BUSY, "not allowed from inside a callback");
    if (!sock != !timer)
        return sa__cfail(c, SA_ERR_INVALID_ARGUMENT, "give both a socket and "
                         "a timer hook, or neither");
    if (sa__engine_in_flight(c->engine) > 0)
        return sa__cfail(c, SA_ERR_BUSY, "requests are in flight: install or "
                         "remove event hooks while the client has none");
    rc = sa__engine_set_event_mode(c->engine, sock != NULL);
    if (rc != SA_OK)
        return sa__cfail(c, rc, "libcurl refused the event hooks");
    c->hooks = sock != NULL;
    c->sock = sock;
    c->timer = timer;
    c->hook_ud = user_data;
    c->curl_timer_at = -1;
    c->reported_at = INT64_MIN;
    sa__enter(c);
    sa__leave(c);  /* reports the timer */
    return SA_OK;
}

int sa_client_socket_action(sa_client *client, int fd, int what)
{
    sa_client *c = client;
    int64_t now;
    int rc, n;

    if (!c) return SA_ERR_INVALID_ARGUMENT;
    if (c->depth > 0 || c->freeing)
        return sa__cfail(c, SA_ERR_BUSY, "not allowed from inside a callback");
    if (!c->hooks)
        return sa__cfail(c, SA_ERR_INVALID_ARGUMENT, "no event hooks "
                         "installed (sa_client_set_event_hooks)");
    sa__enter(c);
    now = sa__engine_now();
    /* a timer libcurl already saw expire is re-reported by libcurl */
    if (fd == SA_SOCKET_TIMEOUT && c->curl_timer_at >= 0 &&
        c->curl_timer_at <= now)
        c->curl_timer_at = -1;
    set_bounded(c, 1);
    rc = sa__engine_socket_action(c->engine, fd, what);
    sa__advance(c, sa__engine_now());
    set_bounded(c, 0);
    sa__deliver(c);
    n = sa__n_visible(c);
    if (rc != SA_OK) sa__cfail(c, rc, "libcurl failed: %s", sa_strerror(rc));
    if (sa__leave(c)) return 0;
    return rc != SA_OK ? rc : n;
}

void sa__client_stats(const sa_client *c, long *transfers, long *connects)
{
    sa__engine_stats(c ? c->engine : NULL, transfers, connects);
}

void sa__client_peaks(const sa_client *c, int *uploads, int *done_per_step)
{
    if (uploads) *uploads = c ? c->sched.peak_uploads : 0;
    if (done_per_step) *done_per_step = c ? c->peak_done : 0;
}

/* ================================================================== */
/* Webhooks: poll a task now                                          */
/* ================================================================== */

/* The poll still goes through the limiter queue: only its wait ends. */
int sa_client_notify(sa_client *client, const char *task_id)
{
    sa_client *c = client;
    int64_t now;
    sa__link *l;
    int n = 0;

    if (!c || !task_id || c->freeing) return SA_ERR_INVALID_ARGUMENT;
    sa__enter(c);
    now = sa__engine_now();
    for (l = c->active.next; l != &c->active; l = l->next) {
        sa_job *j = JOB_OF(l, link);
        const char *id = j->kind == KIND_ANALYSIS ? sa__jobsm_task_id(j->sm)
                                                  : NULL;
        if (!id || strcmp(id, task_id) != 0) continue;
        if (sa__jobsm_poll_now(j->sm, now)) {
            if (j->wake_at > now) j->wake_at = now;
            n++;
        }
    }
    sa__jlog(c, SA_LOG_DEBUG, "notify: %d job(s) of task %s poll now", n,
             task_id);
    sa__leave(c);
    return n;
}
