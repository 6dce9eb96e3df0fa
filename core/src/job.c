/* job.c - the analysis job: a sans-IO state machine (time is an input). */
/*
 * The machine never calls curl, never sleeps and never reads a clock.  The
 * engine asks sa__jobsm_next(now) what to do -- SEND a request, WAIT until a
 * time, or END -- and feeds the outcome of each request back with
 * sa__jobsm_on_response(now).  Tests drive it with scripted answers and fake
 * time (tests/c/test_job.c).
 *
 *   FILE_CREATE -> UPLOAD -> TASK_CREATE -> POLL_WAIT <-> POLLING -> DONE
 *   (image_url / file_id start in TASK_CREATE)        any step -> FAILED
 *   (a resumed task id starts in POLLING: nothing is created)
 *   transient failure -> BACKOFF -> the same step again (retry budget;
 *   none for the status polls of a task that exists)
 *   ZIP results: POLLING -> FETCHING (GET the ZIP) -> DONE
 *
 * Four kinds of machine share one state (struct sa__jobsm, in
 * job_internal.h) and four files: job.c (this one: the machine, its
 * requests, retries, poll timing and driving), job_answers.c (what each
 * answer of an analysis means; "What a hostile server cannot do"),
 * job_fetch.c (downloads; "Fetching") and job_account.c (account
 * requests).  An analysis (sa__jobsm_new) is the graph above.  A download
 * (sa__jobsm_new_download) is only its FETCHING step: one result URL.  A
 * fetch (sa__jobsm_new_fetch) is the public side of sa_client_fetch: it
 * sends nothing, the client runs downloads for it and reports each one.
 * An account machine (sa__jobsm_new_account) is one FETCHING step,
 * SA__STEP_ACCOUNT, to the API host: the balance, the price list pages or
 * a task delete.
 *
 * Built like curl's multi state machine: sa__jsm_set_state() is the only
 * writer of `state`, a name table (sa__jobsm_state_name), and one switch in
 * sa__jobsm_next() whose default branch fails safe (FAILED, SA_ERR_PROTOCOL
 * "internal error"), never aborts.
 *
 * Two outcomes: the public job and the machine.
 *   The public outcome (what sa__jobsm_state / sa__jobsm_status report) is
 *   fixed exactly once, by fix_outcome().  Usually the machine ends at the
 *   same moment.  But a task that exists, or may exist (its create request
 *   is out), must be polled to its end even when nobody waits for it any
 *   more: unpolled tasks expire on the server and may still be billed.  So
 *   when the deadline passes or the job is cancelled (abandon == 0) while a
 *   task exists or may exist, the public outcome is fixed at once (FAILED
 *   SA_ERR_DEADLINE, or CANCELLED SA_ERR_CANCELLED) and the machine goes on
 *   in the background:
 *     - sa__jobsm_state() reports the public terminal state and
 *       sa__jobsm_status() its code from then on; the detail getters (HTTP
 *       status, error codes, request id) keep the values they had (sticky;
 *       only the task id is still recorded when a create answers);
 *       sa__jobsm_result() stays NULL;
 *     - sa__jobsm_background() is 1 and sa__jobsm_next() keeps answering
 *       SEND (polls) and WAIT, never touching the deadline again, until a
 *       final answer (success, engine error, expired, timed out, 401 or
 *       another refusal), max_polls when the user set one, or the task
 *       create turns out to have been refused; then it answers END.
 *       Failed polls never end it: the engine polls on while the client
 *       lives;
 *     - sa__jobsm_task_outcome() says what the background polling found
 *       (SA_ERR_NOT_DONE while it runs, SA_OK when the task succeeded and
 *       may be billed, else the failure) with a message for the log.
 *   The engine therefore drives every machine until sa__jobsm_next() answers
 *   END, and fires the job's terminal callback when sa__jobsm_state() first
 *   becomes terminal.  When next() answers END (or cancel returns 0) while
 *   the engine still has a transfer out for the machine, the engine drops
 *   that transfer and never reports it: this is how a deadline or cancel
 *   before any task exists abandons a file create or an upload in flight.
 *
 * Retries (API.md sections 8 and 16).  File create, upload and status polls
 * are retried on transport errors, timeouts, 429 and 5xx after a BACKOFF of
 * full jitter.  File create is also retried on a 200 whose body cannot be
 * read (not JSON, too deep, no file id or slot: it costs no units).  A
 * status poll is also retried when its answer was larger than
 * max_body_bytes (SA_ERR_LIMIT from the engine) or could not be read: a
 * task must keep being polled, so any answer short of a task status counts
 * as a failed poll, in the foreground and in background polling alike.
 * The delay of the n-th consecutive failure is
 * uniform in [0, min(backoff_max_ms, backoff_initial_ms * 2^(n-1))],
 * drawn with sa__rand from the client's rng.  At most
 * max_retries retries in a row per step; a success resets the count --
 * except for the status polls of a task that exists, which have no budget
 * at all (see "Poll timing" and job_answers.c).  Task
 * create is billed and not idempotent: it is retried only when nothing
 * reached the server (response not_sent) or on 429; any other failure after
 * sending (timeout, reset, 5xx, an unreadable 200) ends FAILED
 * SA_ERR_AMBIGUOUS with everything known, and a second create is never sent.
 * Other failures the engine reports (LIMIT: body too big, except on a
 * poll; FILE, PROTOCOL, INSECURE...) are final: trying again would fail
 * the same way.
 * A 404 on the versioned file path is retried once on the generic
 * /s2s/v2.0/file path (API.md section 3); an upload refused because its
 * pre-signed URL expired (403 "Request has expired") gets one fresh slot.
 *
 * Memory: everything through the job's copy of cfg->mem; every string of
 * the configuration is copied (not `buffer`, which stays borrowed).  Out of
 * memory anywhere ends the machine FAILED with SA_ERR_NOMEM, and the call
 * that hit it returns SA_ERR_NOMEM.
 */
#include "job_internal.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const job_state_names[] = {
    "validate", "queued", "file_create", "upload", "task_create",
    "poll_wait", "polling", "backoff", "fetching", "done", "failed",
    "cancelled"
};
_Static_assert(sizeof job_state_names / sizeof job_state_names[0]
                   == SA_JOB_STATE__LAST,
               "one name per sa_job_state");

static const char *const step_names[JOB_STEPS] = {
    "file create", "upload", "task create", "status poll", "result download",
    "account request"
};

static const char *const json_headers[] = {
    "Content-Type: application/json"
};

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

/* "file_create", ... for a sa_job_state; "?" when out of range.  The public
 * sa_job_state_name() can use this table. */
const char *sa__jobsm_state_name(int state)
{
    if (state < 0 || state >= SA_JOB_STATE__LAST) return "?";
    return job_state_names[state];
}

const char *sa__jsm_step_name(int step)
{
    return step >= 0 && step < JOB_STEPS ? step_names[step] : "?";
}

void sa__jsm_msgf(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

int sa__jsm_is_terminal(int state)
{
    return state == SA_JOB_DONE || state == SA_JOB_FAILED
        || state == SA_JOB_CANCELLED;
}

static int ascii_lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* Case-insensitive: does `s` start with `prefix`? */
int sa__jsm_starts_with_ci(const char *s, const char *prefix)
{
    for (; *prefix; s++, prefix++)
        if (ascii_lower((unsigned char)*s) !=
            ascii_lower((unsigned char)*prefix))
            return 0;
    return 1;
}

/* Case-insensitive substring test (bounded by the NUL of s). */
int sa__jsm_contains_ci(const char *s, const char *needle)
{
    if (!s) return 0;
    for (; *s; s++)
        if (sa__jsm_starts_with_ci(s, needle)) return 1;
    return 0;
}

/* a + b + c (b, c may be NULL) as a new string, or NULL on NOMEM. */
static char *concat3(const sa_mem *mem, const char *a, const char *b,
                     const char *c)
{
    size_t la = strlen(a), lb = b ? strlen(b) : 0, lc = c ? strlen(c) : 0;
    char *s = sa__malloc(mem, la + lb + lc + 1);
    if (!s) return NULL;
    memcpy(s, a, la);
    if (lb) memcpy(s + la, b, lb);
    if (lc) memcpy(s + la + lb, c, lc);
    s[la + lb + lc] = '\0';
    return s;
}

/* Replace *slot with a copy of s; 0 or SA_ERR_NOMEM. */
int sa__jsm_replace_str(const sa_mem *mem, char **slot, const char *s)
{
    char *copy = sa__strdup(mem, s);
    if (s && !copy) return SA_ERR_NOMEM;
    sa__free(mem, *slot);
    *slot = copy;
    return SA_OK;
}

/* Replace *slot with s, taking ownership. */
void sa__jsm_take_str(const sa_mem *mem, char **slot, char **s)
{
    sa__free(mem, *slot);
    *slot = *s;
    *s = NULL;
}

static uint64_t job_rand(sa__jobsm *sm)
{
    return sa__rand(sm->rng);
}

/* ------------------------------------------------------------------ */
/* State and outcome                                                   */
/* ------------------------------------------------------------------ */

/* The only writer of sm->state.  Entering a working state also says which
 * step is being worked on (BACKOFF keeps the step it returns to). */
void sa__jsm_set_state(sa__jobsm *sm, int state)
{
    if (state < 0 || state >= SA_JOB_STATE__LAST) state = SA_JOB_FAILED;
    sm->state = state;
    switch (state) {
    case SA_JOB_FILE_CREATE: sm->step = SA__STEP_FILE_CREATE; break;
    case SA_JOB_UPLOAD: sm->step = SA__STEP_UPLOAD; break;
    case SA_JOB_TASK_CREATE: sm->step = SA__STEP_TASK_CREATE; break;
    case SA_JOB_POLL_WAIT:
    case SA_JOB_POLLING: sm->step = SA__STEP_POLL; break;
    default: break;  /* FETCHING: the caller says download or poll */
    }
}

/* Enter FETCHING for a download (SA__STEP_FETCH) or the poll that asks
 * for a fresh URL (SA__STEP_POLL). */
void sa__jsm_set_fetch_step(sa__jobsm *sm, int step)
{
    sa__jsm_set_state(sm, SA_JOB_FETCHING);
    sm->step = step;
}

/* The state a step is (re)tried in. */
static int step_state(const sa__jobsm *sm, int step)
{
    if (sm->fetch_phase) return SA_JOB_FETCHING;
    switch (step) {
    case SA__STEP_FILE_CREATE: return SA_JOB_FILE_CREATE;
    case SA__STEP_UPLOAD: return SA_JOB_UPLOAD;
    case SA__STEP_TASK_CREATE: return SA_JOB_TASK_CREATE;
    case SA__STEP_POLL: return SA_JOB_POLLING;
    default: return SA_JOB_STATE__LAST;  /* fails safe in next() */
    }
}

/* The only writer of the public outcome; fixed once. */
static void fix_outcome(sa__jobsm *sm, int state, int status, const char *msg)
{
    if (sm->pub_state) return;
    sm->pub_state = state;
    sm->pub_status = status;
    sa__jsm_msgf(sm->errmsg, sizeof sm->errmsg, "%s", msg);
}

/* A failure after the task succeeded: say that it is billed and how to
 * find it again. */
static void billed_note(const sa__jobsm *sm, char *msg, size_t len)
{
    size_t n = strlen(msg);
    if (n < len)
        sa__jsm_msgf(msg + n, len - n, "; task %s succeeded and its units are "
                     "billed: its result can be fetched again with that task "
                     "id", sm->task_id ? sm->task_id : "(id unknown)");
}

static void release_request(sa__jobsm *sm)
{
    sa__free(sm->mem, sm->req_url);
    sa__free(sm->mem, sm->req_body);
    sm->req_url = NULL;
    sm->req_body = NULL;
    memset(&sm->req, 0, sizeof sm->req);
    sm->in_flight = 0;
}

/* End the machine.  Fixes the public outcome if it is still open;
 * otherwise records what the background polling found.  Any request out is
 * abandoned (the engine drops it when next() answers END). */
void sa__jsm_finish(sa__jobsm *sm, int state, int status, const char *fmt,
                    ...)
{
    char msg[JOB_MSG_LEN];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (sm->kind == KIND_ANALYSIS && sm->fetch_phase && state != SA_JOB_DONE)
        billed_note(sm, msg, sizeof msg);
    if (!sm->pub_state) {
        fix_outcome(sm, state, status, msg);
    } else if (sm->background) {
        sm->bg_status = status;
        sa__jsm_msgf(sm->bgmsg, sizeof sm->bgmsg, "%s", msg);
    }
    release_request(sm);
    sa__jsm_set_state(sm, state);
}

/* Fix the public outcome now and keep the machine going in the background
 * (a task exists or may exist and must be polled to its end). */
void sa__jsm_go_background(sa__jobsm *sm, int state, int status,
                           const char *what)
{
    char msg[JOB_MSG_LEN];

    if (sm->task_id)
        sa__jsm_msgf(msg, sizeof msg, "%s; task %s is still polled until it "
                     "ends and may be billed", what, sm->task_id);
    else
        sa__jsm_msgf(msg, sizeof msg, "%s while the task create request was "
                     "out: a task may exist; it is polled until it ends and "
                     "may be billed", what);
    fix_outcome(sm, state, status, msg);
    sm->background = 1;
    sm->bg_status = SA_ERR_NOT_DONE;
}

int sa__jsm_fail_nomem(sa__jobsm *sm, const char *what)
{
    sa__jsm_finish(sm, SA_JOB_FAILED, SA_ERR_NOMEM, "out of memory (%s)",
                   what);
    return SA_ERR_NOMEM;
}

/* The deadline ends the public job; a task that exists or may exist is
 * still polled in the background. */
static void check_deadline(sa__jobsm *sm, int64_t now_ms)
{
    if (sm->pub_state || sa__jsm_is_terminal(sm->state) ||
        now_ms < sm->deadline_at_ms)
        return;
    if (sm->fetch_phase || sm->kind != KIND_ANALYSIS) {
        sa__jsm_finish(sm, SA_JOB_FAILED, SA_ERR_DEADLINE, "deadline passed "
                       "during %s", sm->kind == KIND_FETCH ? "the downloads"
                                    : sa__jsm_step_name(sm->step));
        return;
    }
    if (!sm->task_maybe) {
        sa__jsm_finish(sm, SA_JOB_FAILED, SA_ERR_DEADLINE, "deadline passed "
                       "during %s, before any task was created: nothing was "
                       "billed", sa__jsm_step_name(sm->step));
        return;
    }
    if (sm->errmsg[0]) {
        /* say what the last attempt met (a storm of failed polls...),
         * without the retry it was waiting for */
        char what[JOB_MSG_LEN], *cut = NULL, *p = sm->errmsg;
        while ((p = strstr(p, "; retry ")) != NULL) cut = p++;
        sa__jsm_msgf(what, sizeof what, "deadline passed (last: %.*s)",
                     cut ? (int)(cut - sm->errmsg) : (int)strlen(sm->errmsg),
                     sm->errmsg);
        sa__jsm_go_background(sm, SA_JOB_FAILED, SA_ERR_DEADLINE, what);
        return;
    }
    sa__jsm_go_background(sm, SA_JOB_FAILED, SA_ERR_DEADLINE, "deadline "
                          "passed");
}

/* A step answered as hoped: its retry count starts again. */
void sa__jsm_step_succeeded(sa__jobsm *sm)
{
    sm->failures = 0;
    sm->refused = 0;
    if (!sm->pub_state) sm->errmsg[0] = '\0';
}

/* ------------------------------------------------------------------ */
/* Retries                                                             */
/* ------------------------------------------------------------------ */

/* Full jitter: uniform in [0, min(max, initial * 2^(n-1))] for the n-th
 * consecutive failure. */
static int64_t backoff_delay(sa__jobsm *sm, int n)
{
    int64_t cap = sm->backoff_initial_ms, max = sm->backoff_max_ms;
    int i;

    if (cap <= 0 || max <= 0) return 0;
    for (i = 1; i < n && cap < max && cap <= INT64_MAX / 2; i++) cap *= 2;
    if (cap > max) cap = max;
    return (int64_t)(job_rand(sm) % ((uint64_t)cap + 1));
}

/* 1 for the status polls of the task itself (not the poll of a finished
 * task for a fresh result URL): they have no retry budget. */
static int endless_step(const sa__jobsm *sm)
{
    return sm->step == SA__STEP_POLL && !sm->fetch_phase;
}

/* Another failure of the current step: BACKOFF and try again, or, once
 * max_retries retries in a row failed, end with `status`.  A failed status
 * poll is always tried again (see "Polling" above). */
void sa__jsm_retry_or_fail(sa__jobsm *sm, int64_t now_ms, int status,
                           const char *why)
{
    int64_t delay, room;
    int endless = endless_step(sm);

    if (sm->failures < INT_MAX) sm->failures++;
    if (sm->failures > sm->max_retries && !endless) {
        sa__jsm_finish(sm, SA_JOB_FAILED, status, "%s: %s (gave up after %d "
                       "attempts)", sa__jsm_step_name(sm->step), why,
                       sm->failures);
        return;
    }
    delay = backoff_delay(sm, sm->failures);
    if (sm->step == SA__STEP_POLL) {
        /* never leave the task unpolled for longer than the safe window */
        room = sm->last_poll_ms + sm->max_poll_interval_ms - now_ms;
        if (room < 0) room = 0;
        /* a storm past the quick retries is polled at the pace of a
         * running task, however small the backoff is configured */
        if (endless && sm->failures > sm->max_retries
            && delay < sm->poll_interval_ms)
            delay = sm->poll_interval_ms;
        if (delay > room) delay = room;
    }
    sm->wake_at_ms = now_ms + delay;
    if (!sm->pub_state && endless)
        sa__jsm_msgf(sm->errmsg, sizeof sm->errmsg, "%s: %s; retry %d in %lld "
                     "ms (task %s is polled until it ends)",
                     sa__jsm_step_name(sm->step), why, sm->failures,
                     (long long)delay, sm->task_id);
    else if (!sm->pub_state)
        sa__jsm_msgf(sm->errmsg, sizeof sm->errmsg, "%s: %s; retry %d of %d "
                     "in %lld ms", sa__jsm_step_name(sm->step), why,
                     sm->failures, sm->max_retries, (long long)delay);
    sa__jsm_set_state(sm, SA_JOB_BACKOFF);
}

/* ------------------------------------------------------------------ */
/* Requests                                                            */
/* ------------------------------------------------------------------ */

/* A request to the API host: base_url + path [+ "/" + encoded id]. */
static int api_request(sa__jobsm *sm, int method, const char *path,
                       const char *id, char *body, long timeout_ms)
{
    char *enc = NULL;

    if (!path) {
        sa__free(sm->mem, body);
        return SA_ERR_PROTOCOL;
    }
    if (id) {
        enc = sa__urlencode(sm->mem, id);
        if (!enc) {
            sa__free(sm->mem, body);
            return SA_ERR_NOMEM;
        }
    }
    sm->req_url = concat3(sm->mem, sm->base_url, path, enc ? "/" : NULL);
    if (sm->req_url && enc) {
        char *full = concat3(sm->mem, sm->req_url, enc, NULL);
        sa__free(sm->mem, sm->req_url);
        sm->req_url = full;
    }
    sa__free(sm->mem, enc);
    sm->req_body = body;
    if (!sm->req_url) return SA_ERR_NOMEM;

    sm->req.step = sm->step;
    sm->req.method = method;
    sm->req.url = sm->req_url;
    sm->req.api_host = 1;
    if (body) {
        sm->req.headers = json_headers;
        sm->req.n_headers = sizeof json_headers / sizeof json_headers[0];
        sm->req.body = body;
        sm->req.body_len = strlen(body);
    }
    sm->req.timeout_ms = timeout_ms;
    return SA_OK;
}

int sa__jsm_api_request(sa__jobsm *sm, int method, const char *path,
                        const char *id, char *body, long timeout_ms)
{
    return api_request(sm, method, path, id, body, timeout_ms);
}

static int build_file_create(sa__jobsm *sm)
{
    char *body = sa__proto_file_create_body(sm->mem, sm->content_type,
                                           sm->file_name, sm->file_size);
    if (!body) return SA_ERR_NOMEM;
    return api_request(sm, SA__HTTP_POST,
                       sa__proto_file_path(sm->api_version, sm->upload_path),
                       NULL, body, sm->request_timeout_ms);
}

/* The PUT to the pre-signed URL: the headers of the slot that proto kept
 * (sa__proto_upload_header_allowed), never the API key (api_host = 0). */
static int build_upload(sa__jobsm *sm)
{
    sm->req.step = SA__STEP_UPLOAD;
    sm->req.method = SA__HTTP_PUT;
    sm->req.url = sm->upload.url;
    sm->req.api_host = 0;
    sm->req.headers = (const char *const *)sm->upload.headers;
    sm->req.n_headers = sm->upload.n_headers;
    sm->req.upload_file = sm->file_path;
    sm->req.upload_buf = sm->file_path ? NULL : sm->buffer;
    sm->req.upload_size = sm->file_size;
    sm->req.timeout_ms = sm->upload_timeout_ms;
    return SA_OK;
}

static int build_task_create(sa__jobsm *sm)
{
    sa__task_params p = sm->task;
    char *body;

    p.src_file_url = sm->image_url;
    p.src_file_id = sm->image_url ? NULL : sm->file_id;
    body = sa__proto_task_body(sm->mem, &p);
    if (!body) return SA_ERR_NOMEM;
    return api_request(sm, SA__HTTP_POST, sa__proto_task_path(sm->api_version),
                       NULL, body, sm->request_timeout_ms);
}

/* The GET of a result URL: never the key, a larger body limit. */
static int build_fetch(sa__jobsm *sm)
{
    if (!sm->fetch_url) return SA_ERR_PROTOCOL;
    sm->req.step = SA__STEP_FETCH;
    sm->req.method = SA__HTTP_GET;
    sm->req.url = sm->fetch_url;
    sm->req.api_host = 0;
    sm->req.timeout_ms = sm->upload_timeout_ms;
    sm->req.max_body = SA__FETCH_MAX_BODY;
    sm->req.low_speed_limit = sm->low_speed_limit;
    sm->req.low_speed_time_ms = sm->low_speed_time_ms;
    return SA_OK;
}

static int build_poll(sa__jobsm *sm)
{
    long timeout = sm->max_poll_interval_ms / 2;
    if (sm->request_timeout_ms < timeout) timeout = sm->request_timeout_ms;
    return api_request(sm, SA__HTTP_GET, sa__proto_task_path(sm->api_version),
                       sm->task_id, NULL, timeout);
}

/* Hand out the request of the current step. */
static int send_step(sa__jobsm *sm, int64_t now_ms, sa__next *out)
{
    int rc;

    switch (sm->step) {
    case SA__STEP_FILE_CREATE: rc = build_file_create(sm); break;
    case SA__STEP_UPLOAD: rc = build_upload(sm); break;
    case SA__STEP_TASK_CREATE: rc = build_task_create(sm); break;
    case SA__STEP_POLL:
        if (sm->max_polls > 0 && sm->polls >= sm->max_polls
            && !sm->fetch_phase) {
            sa__jsm_finish(sm, SA_JOB_FAILED, SA_ERR_LIMIT, "gave up after %d "
                           "status polls (max_polls); task %s may still be "
                           "running and may be billed", sm->polls,
                           sm->task_id);
            out->kind = SA__NEXT_END;
            return SA_OK;
        }
        rc = build_poll(sm);
        break;
    case SA__STEP_FETCH: rc = build_fetch(sm); break;
    case SA__STEP_ACCOUNT: rc = sa__jsm_build_account(sm); break;
    default:
        rc = SA_ERR_PROTOCOL;
        break;
    }
    if (rc == SA_ERR_NOMEM) {
        release_request(sm);
        out->kind = SA__NEXT_END;
        return sa__jsm_fail_nomem(sm, sa__jsm_step_name(sm->step));
    }
    if (rc != SA_OK) {
        sa__jsm_finish(sm, SA_JOB_FAILED, SA_ERR_PROTOCOL, "internal error: "
                       "no request for step %d", sm->step);
        out->kind = SA__NEXT_END;
        return SA_OK;
    }
    if (sm->step == SA__STEP_TASK_CREATE) sm->task_maybe = 1;
    if (sm->step == SA__STEP_POLL) {
        if (sm->polls < INT_MAX) sm->polls++;
        sm->last_poll_ms = sm->poll_sent_ms = now_ms;
    }
    sm->in_flight = 1;
    out->kind = SA__NEXT_SEND;
    out->req = &sm->req;
    return SA_OK;
}

static int wait_until(sa__jobsm *sm, int64_t at_ms, sa__next *out)
{
    out->kind = SA__NEXT_WAIT;
    out->wake_at_ms = at_ms;
    if (!sm->pub_state && sm->deadline_at_ms < at_ms)
        out->wake_at_ms = sm->deadline_at_ms;
    return SA_OK;
}

/* ------------------------------------------------------------------ */
/* Poll timing: when the next status poll goes out (POLL_WAIT)        */
/* ------------------------------------------------------------------ */

/*
 * Polling.  The first poll goes out min(poll_interval_ms,
 * max_poll_interval_ms) after the task create answer (at once for a
 * resumed task: it has gone unpolled for as long as nobody knew of it).
 * After "running" the next poll is due polling_interval (when the answer
 * carries one, clamped to [200 ms, max_poll_interval_ms]) or
 * poll_interval_ms later, and never later than max_poll_interval_ms after
 * the previous poll was sent.  That is the fixed strategy; with the
 * client's planner (cfg->plan: poll_strategy "learned" or webhooks, see
 * pollplan.c) each of these waits is what the planner answers instead
 * (sa__jsm_plan_delay), still capped the same way and never sooner than
 * the API's polling_interval; the machine tells the planner each poll's
 * round trip and, at the first final answer, when the task was last seen
 * running and when it was seen ended.  A task_status the API does not
 * document ("queued") is "not finished yet": polled on exactly like "running", and
 * said once per job (sa__jobsm_take_notice, for the client's log).
 */
void sa__jsm_schedule_poll(sa__jobsm *sm, int64_t now_ms, long interval_ms)
{
    int64_t at = now_ms + interval_ms;
    int64_t latest = sm->last_poll_ms + sm->max_poll_interval_ms;
    if (at > latest) at = latest;
    if (at < now_ms) at = now_ms;
    sm->wake_at_ms = at;
    sa__jsm_set_state(sm, SA_JOB_POLL_WAIT);
}

/* The wait before the next poll: `fixed` (today's rule) unless the
 * client's planner places it (poll_strategy "learned", webhooks: see
 * pollplan.c); api_min_ms: the API's polling_interval, or 0. */
long sa__jsm_plan_delay(sa__jobsm *sm, int64_t now_ms, long fixed,
                        long api_min_ms)
{
    sa__pp_task t;
    int64_t at;

    if (!sm->plan || (sm->plan->strategy == SA_POLL_FIXED
                      && !sm->plan->webhooks))
        return fixed;
    t.bucket = sm->pp_bucket;
    t.created_ms = sm->created_ms;
    t.running_ms = sm->running_ms;
    t.last_poll_ms = sm->last_poll_ms;
    t.min_gap_ms = api_min_ms;
    t.fixed_ms = fixed;
    at = sa__pollplan_next(sm->plan, &t, now_ms) - now_ms;
    return at < 0 ? 0 : at > LONG_MAX ? LONG_MAX : (long)at;
}

long sa__jsm_first_poll_delay(const sa__jobsm *sm)
{
    return sm->poll_interval_ms < sm->max_poll_interval_ms
         ? sm->poll_interval_ms : sm->max_poll_interval_ms;
}

/* ------------------------------------------------------------------ */
/* Creation                                                            */
/* ------------------------------------------------------------------ */

/* The settings every kind of machine uses. */
int sa__jsm_settings_valid(const sa__job_config *cfg)
{
    if (!cfg->base_url) return 0;
    if (cfg->api_version != SA_API_V2_0 && cfg->api_version != SA_API_V2_1)
        return 0;
    return cfg->request_timeout_ms > 0 && cfg->upload_timeout_ms > 0
        && cfg->max_poll_interval_ms >= JOB_MIN_POLL_MS
        && cfg->max_polls >= 0 && cfg->max_retries >= 0
        && cfg->backoff_initial_ms >= 0 && cfg->backoff_max_ms >= 0
        && cfg->max_json_depth > 0;
}

static int config_valid(const sa__job_config *cfg)
{
    int sources = (cfg->file_path || cfg->buffer) + !!cfg->image_url
                + !!cfg->file_id;
    size_t i;

    if (cfg->task_id)  /* resume: the task exists; nothing to create */
        return sources == 0 && cfg->task_id[0] != '\0'
            && sa__jsm_settings_valid(cfg) && cfg->poll_interval_ms > 0;
    if (!cfg->base_url || sources != 1 || (cfg->file_path && cfg->buffer))
        return 0;
    if ((cfg->file_path || cfg->buffer)
        && (!cfg->content_type || !cfg->file_name || cfg->file_size == 0))
        return 0;
    if (cfg->api_version != SA_API_V2_0 && cfg->api_version != SA_API_V2_1)
        return 0;
    if (!cfg->task.actions || cfg->task.n_actions == 0
        || cfg->task.n_actions > SA_MAX_ACTIONS)
        return 0;
    for (i = 0; i < cfg->task.n_actions; i++)
        if (!cfg->task.actions[i]) return 0;
    return cfg->request_timeout_ms > 0 && cfg->upload_timeout_ms > 0
        && cfg->poll_interval_ms > 0
        && cfg->max_poll_interval_ms >= JOB_MIN_POLL_MS
        && cfg->max_polls >= 0 && cfg->max_retries >= 0
        && cfg->backoff_initial_ms >= 0 && cfg->backoff_max_ms >= 0
        && cfg->max_json_depth > 0;
}

static int copy_strings(sa__jobsm *sm, const sa__job_config *cfg)
{
    size_t i, n;

    sm->base_url = sa__strdup(sm->mem, cfg->base_url);
    if (!sm->base_url) return SA_ERR_NOMEM;
    for (n = strlen(sm->base_url); n > 0 && sm->base_url[n - 1] == '/'; n--)
        sm->base_url[n - 1] = '\0';
    if (sa__jsm_replace_str(sm->mem, &sm->file_path, cfg->file_path)
        || sa__jsm_replace_str(sm->mem, &sm->content_type, cfg->content_type)
        || sa__jsm_replace_str(sm->mem, &sm->file_name, cfg->file_name)
        || sa__jsm_replace_str(sm->mem, &sm->image_url, cfg->image_url)
        || sa__jsm_replace_str(sm->mem, &sm->file_id, cfg->file_id)
        || sa__jsm_replace_str(sm->mem, &sm->task_id, cfg->task_id))
        return SA_ERR_NOMEM;
    if (cfg->task.n_actions == 0) return SA_OK;  /* resume */
    sm->actions = sa__calloc(sm->mem, cfg->task.n_actions, sizeof(char *));
    if (!sm->actions) return SA_ERR_NOMEM;
    for (i = 0; i < cfg->task.n_actions; i++) {
        sm->actions[i] = sa__strdup(sm->mem, cfg->task.actions[i]);
        if (!sm->actions[i]) return SA_ERR_NOMEM;
        sm->n_actions = i + 1;
    }
    if (cfg->task.miniserver_args) {
        /* cJSON allocates with its own (process-wide) hooks */
        sm->miniserver_args = cJSON_Duplicate(cfg->task.miniserver_args, 1);
        if (!sm->miniserver_args) return SA_ERR_NOMEM;
    }
    sm->task.actions = (const char *const *)sm->actions;
    sm->task.n_actions = sm->n_actions;
    sm->task.miniserver_args = sm->miniserver_args;
    return SA_OK;
}

void sa__jsm_copy_settings(sa__jobsm *sm, const sa__job_config *cfg)
{
    sm->api_version = cfg->api_version;
    sm->upload_path = cfg->upload_path;
    sm->buffer = cfg->buffer;
    sm->file_size = cfg->file_size;
    sm->task.format = cfg->task.format;
    sm->task.api_version = cfg->api_version;
    sm->task.pf_camera_kit = cfg->task.pf_camera_kit;
    sm->task.mask_overlay = cfg->task.mask_overlay;
    sm->request_timeout_ms = cfg->request_timeout_ms;
    sm->upload_timeout_ms = cfg->upload_timeout_ms;
    sm->poll_interval_ms = cfg->poll_interval_ms;
    sm->max_poll_interval_ms = cfg->max_poll_interval_ms;
    sm->deadline_at_ms = cfg->deadline_at_ms > 0 ? cfg->deadline_at_ms
                                                 : INT64_MAX;
    sm->max_polls = cfg->max_polls;
    sm->max_retries = cfg->max_retries;
    sm->backoff_initial_ms = cfg->backoff_initial_ms;
    sm->backoff_max_ms = cfg->backoff_max_ms;
    sm->max_json_depth = cfg->max_json_depth;
    sm->max_files_bytes = cfg->max_files_bytes;
    sm->low_speed_limit = cfg->low_speed_limit;
    sm->low_speed_time_ms = cfg->low_speed_time_ms;
    sm->rng_own = 0x9E3779B97F4A7C15ULL;
    sm->rng = cfg->rng && *cfg->rng ? cfg->rng : &sm->rng_own;
    sm->plan = cfg->plan;
    sm->pp_bucket = sa__pollplan_bucket(
        cfg->task.n_actions > 0 && cfg->task.actions && cfg->task.actions[0]
        && sa__catalog_tier(sa__catalog_find(cfg->task.actions[0]))
               == SA_TIER_HD,
        cfg->task.n_actions);
    sm->created_ms = -1;
}

/* Also: SA_ERR_INVALID_ARGUMENT for a NULL/incoherent cfg (no or several
 * sources, no actions, non-positive timeouts or intervals,
 * max_poll_interval_ms below 200, max_polls < 0; with task_id: a source or
 * an empty id).  A deadline_at_ms <= 0 means no deadline. */
int sa__jobsm_new(const sa__job_config *cfg, int64_t now_ms, sa__jobsm **out)
{
    sa__jobsm *sm;
    int rc;

    if (!out) return SA_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!cfg || !config_valid(cfg)) return SA_ERR_INVALID_ARGUMENT;
    sm = sa__calloc(cfg->mem, 1, sizeof *sm);
    if (!sm) return SA_ERR_NOMEM;
    if (cfg->mem) {
        sm->memv = *cfg->mem;
        sm->mem = &sm->memv;
    }
    sa__jsm_copy_settings(sm, cfg);
    rc = copy_strings(sm, cfg);
    if (rc != SA_OK) {
        sa__jobsm_free(sm);
        return rc;
    }
    sm->last_poll_ms = now_ms;
    if (sm->task_id) {
        /* resume: the task exists (and has gone unpolled for a while, as
         * far as we know): poll it at once */
        sm->resumed = 1;
        sm->task_maybe = 1;
        sa__jsm_set_state(sm, SA_JOB_POLLING);
    } else {
        sa__jsm_set_state(sm, sm->image_url || sm->file_id ? SA_JOB_TASK_CREATE
                          : SA_JOB_FILE_CREATE);
    }
    *out = sm;
    return SA_OK;
}

void sa__jobsm_free(sa__jobsm *sm)
{
    sa_mem memv;
    const sa_mem *mem;
    size_t i;

    if (!sm) return;
    memv = sm->memv;
    mem = sm->mem ? &memv : NULL;
    release_request(sm);
    for (i = 0; i < sm->n_actions; i++) sa__free(mem, sm->actions[i]);
    sa__free(mem, sm->actions);
    cJSON_Delete(sm->miniserver_args);
    sa__free(mem, sm->base_url);
    sa__free(mem, sm->file_path);
    sa__free(mem, sm->content_type);
    sa__free(mem, sm->file_name);
    sa__free(mem, sm->image_url);
    sa__free(mem, sm->api_error_code);
    sa__free(mem, sm->engine_error);
    sa__free(mem, sm->request_id);
    sa__free(mem, sm->task_id);
    sa__free(mem, sm->file_id);
    sa__upload_spec_free(mem, &sm->upload);
    sa_result_free(sm->result);
    sa__free(mem, sm->fetch_url);
    sa__free(mem, sm->dl_data);
    for (i = 0; i < sm->n_urls; i++) sa__free(mem, sm->urls[i]);
    sa__free(mem, sm->urls);
    sa__account_free(sm->account);
    sa__free(mem, sm);
}

/* ------------------------------------------------------------------ */
/* Driving                                                             */
/* ------------------------------------------------------------------ */

int sa__jobsm_next(sa__jobsm *sm, int64_t now_ms, sa__next *out)
{
    int hops, step;

    if (!sm || !out) return SA_ERR_INVALID_ARGUMENT;
    memset(out, 0, sizeof *out);
    check_deadline(sm, now_ms);
    if (sm->in_flight) {  /* one request at a time: never a second SEND */
        out->kind = SA__NEXT_WAIT;
        out->wake_at_ms = sm->pub_state ? INT64_MAX : sm->deadline_at_ms;
        return SA_OK;
    }
    /* At most: a wait ends, its step starts, its request goes out. */
    for (hops = 0; hops < 3; hops++) {
        switch (sm->state) {
        case SA_JOB_FILE_CREATE:
        case SA_JOB_UPLOAD:
        case SA_JOB_TASK_CREATE:
        case SA_JOB_POLLING:
            return send_step(sm, now_ms, out);
        case SA_JOB_FETCHING:
            if (sm->kind == KIND_FETCH) return sa__jsm_fetch_next(sm, out);
            return send_step(sm, now_ms, out);
        case SA_JOB_POLL_WAIT:
            if (now_ms < sm->wake_at_ms)
                return wait_until(sm, sm->wake_at_ms, out);
            sa__jsm_set_state(sm, SA_JOB_POLLING);
            break;
        case SA_JOB_BACKOFF:
            if (now_ms < sm->wake_at_ms)
                return wait_until(sm, sm->wake_at_ms, out);
            step = sm->step;
            sa__jsm_set_state(sm, step_state(sm, step));
            sm->step = step;
            break;
        case SA_JOB_DONE:
        case SA_JOB_FAILED:
        case SA_JOB_CANCELLED:
            out->kind = SA__NEXT_END;
            return SA_OK;
        default:
            sa__jsm_finish(sm, SA_JOB_FAILED, SA_ERR_PROTOCOL, "internal "
                           "error: job in state %d", sm->state);
            out->kind = SA__NEXT_END;
            return SA_OK;
        }
    }
    sa__jsm_finish(sm, SA_JOB_FAILED, SA_ERR_PROTOCOL, "internal error: job "
                   "does not settle in state %s",
                   sa__jobsm_state_name(sm->state));
    out->kind = SA__NEXT_END;
    return SA_OK;
}

/* Returns SA_OK (whatever the answer meant: see the state), SA_ERR_NOMEM
 * (the job is then FAILED with SA_ERR_NOMEM), or SA_ERR_INVALID_ARGUMENT
 * when no request is out (nothing changes). */
int sa__jobsm_on_response(sa__jobsm *sm, int64_t now_ms,
                         const sa__http_response *resp)
{
    int rc;

    if (!sm || !resp || !sm->in_flight) return SA_ERR_INVALID_ARGUMENT;
    sm->in_flight = 0;
    rc = sa__jsm_note_answer(sm, resp);
    if (rc != SA_OK) {
        rc = sa__jsm_fail_nomem(sm, "x-request-id");
    } else {
        switch (sm->step) {
        case SA__STEP_FILE_CREATE: rc = sa__jsm_on_file_create(sm, now_ms,
                                                              resp); break;
        case SA__STEP_UPLOAD: rc = sa__jsm_on_upload(sm, now_ms, resp); break;
        case SA__STEP_TASK_CREATE: rc = sa__jsm_on_task_create(sm, now_ms,
                                                              resp); break;
        case SA__STEP_POLL:
            rc = sm->fetch_phase ? sa__jsm_on_refresh(sm, now_ms, resp)
                                 : sa__jsm_on_poll(sm, now_ms, resp);
            break;
        case SA__STEP_FETCH: rc = sa__jsm_on_fetch(sm, now_ms, resp); break;
        case SA__STEP_ACCOUNT: rc = sa__jsm_on_account(sm, now_ms, resp);
            break;
        default:
            sa__jsm_finish(sm, SA_JOB_FAILED, SA_ERR_PROTOCOL, "internal "
                           "error: answer for step %d", sm->step);
            break;
        }
    }
    release_request(sm);
    if (rc == SA_OK) check_deadline(sm, now_ms);
    return rc;
}

int sa__jobsm_cancel(sa__jobsm *sm, int64_t now_ms, int abandon)
{
    if (!sm || sa__jsm_is_terminal(sm->state)) return 0;
    if (sm->fetch_phase || sm->kind != KIND_ANALYSIS) {
        /* the task has ended (or is not ours): nothing to poll */
        sa__jsm_finish(sm, SA_JOB_CANCELLED, SA_ERR_CANCELLED, "cancelled "
                       "during %s", sm->kind == KIND_FETCH ? "the downloads"
                                    : sa__jsm_step_name(sm->step));
        return 0;
    }
    if (abandon) {
        if (sm->task_maybe)
            sa__jsm_finish(sm, SA_JOB_CANCELLED, SA_ERR_CANCELLED,
                           "abandoned: task %s is no longer polled; it may "
                           "expire and may still be billed",
                           sm->task_id ? sm->task_id : "(id " "unknown)");
        else
            sa__jsm_finish(sm, SA_JOB_CANCELLED, SA_ERR_CANCELLED, "abandoned "
                           "before any task was created: nothing was billed");
        return 0;
    }
    if (sm->pub_state) return 1;  /* already polling in the background */
    if (!sm->task_maybe) {
        sa__jsm_finish(sm, SA_JOB_CANCELLED, SA_ERR_CANCELLED, "cancelled "
                       "during %s, before any task was created: nothing was "
                       "billed", sa__jsm_step_name(sm->step));
        return 0;
    }
    sa__jsm_go_background(sm, SA_JOB_CANCELLED, SA_ERR_CANCELLED, "cancelled");
    return 1;
}
