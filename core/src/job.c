/*
 * job.c - one analysis as a sans-IO state machine (time is an input).
 *
 * The machine never calls curl, never sleeps and never reads a clock.  The
 * engine asks sa_jobsm_next(now) what to do -- SEND a request, WAIT until a
 * time, or END -- and feeds the outcome of each request back with
 * sa_jobsm_on_response(now).  Tests drive it with scripted answers and fake
 * time (tests/c/test_job.c).
 *
 *   FILE_CREATE -> UPLOAD -> TASK_CREATE -> POLL_WAIT <-> POLLING -> DONE
 *   (image_url / file_id start in TASK_CREATE)        any step -> FAILED
 *   (a resumed task id starts in POLLING: nothing is created)
 *   transient failure -> BACKOFF -> the same step again (retry budget;
 *   none for the status polls of a task that exists)
 *   ZIP results: POLLING -> FETCHING (GET the ZIP) -> DONE
 *
 * Three kinds of machine share this file.  An analysis (sa_jobsm_new) is
 * the graph above.  A download (sa_jobsm_new_download) is only its
 * FETCHING step: one result URL.  A fetch (sa_jobsm_new_fetch) is the
 * public side of sa_client_fetch_masks: it sends nothing, the client runs
 * downloads for it and reports each one (see "Fetching" below).
 *
 * Built like curl's multi state machine: set_state() is the only writer of
 * `state`, a name table (sa_jobsm_state_name), and one switch in
 * sa_jobsm_next() whose default branch fails safe (FAILED, SA_ERR_PROTOCOL
 * "internal error"), never aborts.
 *
 * Two outcomes: the public job and the machine.
 *   The public outcome (what sa_jobsm_state / sa_jobsm_status report) is
 *   fixed exactly once, by fix_outcome().  Usually the machine ends at the
 *   same moment.  But a task that exists, or may exist (its create request
 *   is out), must be polled to its end even when nobody waits for it any
 *   more: unpolled tasks expire on the server and may still be billed.  So
 *   when the deadline passes or the job is cancelled (abandon == 0) while a
 *   task exists or may exist, the public outcome is fixed at once (FAILED
 *   SA_ERR_DEADLINE, or CANCELLED SA_ERR_CANCELLED) and the machine goes on
 *   in the background:
 *     - sa_jobsm_state() reports the public terminal state and
 *       sa_jobsm_status() its code from then on; the detail getters (HTTP
 *       status, error codes, request id) keep the values they had (sticky;
 *       only the task id is still recorded when a create answers);
 *       sa_jobsm_result() stays NULL;
 *     - sa_jobsm_background() is 1 and sa_jobsm_next() keeps answering
 *       SEND (polls) and WAIT, never touching the deadline again, until a
 *       final answer (success, engine error, expired, timed out, 401 or
 *       another refusal), max_polls when the user set one, or the task
 *       create turns out to have been refused; then it answers END.
 *       Failed polls never end it: the engine polls on while the client
 *       lives;
 *     - sa_jobsm_task_outcome() says what the background polling found
 *       (SA_ERR_NOT_DONE while it runs, SA_OK when the task succeeded and
 *       may be billed, else the failure) with a message for the log.
 *   The engine therefore drives every machine until sa_jobsm_next() answers
 *   END, and fires the job's terminal callback when sa_jobsm_state() first
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
 * at all (see "Polling").  Task
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
 * Polling.  The first poll goes out min(poll_interval_ms,
 * max_poll_interval_ms) after the task create answer (at once for a
 * resumed task: it has gone unpolled for as long as nobody knew of it).
 * After "running" the next poll is due polling_interval (when the answer
 * carries one, clamped to [200 ms, max_poll_interval_ms]) or
 * poll_interval_ms later, and never later than max_poll_interval_ms after
 * the previous poll was sent.  A task_status the API does not document
 * ("queued") is "not finished yet": polled on exactly like "running", and
 * said once per job (sa_jobsm_take_notice, for the client's log).
 *
 * What a hostile or broken server cannot do (issue 12): once the task
 * exists, no answer short of a final one ends the polling.  A failed poll
 * (transport error, timeout or trickled answer, 429, 5xx other than "Task
 * execution timed out", an oversized 200, or one that is cut, garbled, not
 * JSON, nested too deep or without data.task_status) never uses up a
 * budget: the task is polled until it ends, until the caller's deadline
 * (then on in the background, see above), or until the client frees the
 * machine.  Giving up after a few failed polls would leave a task that
 * still runs, and is billed when it succeeds, behind -- and a caller who
 * tries again creates and pays for a second one.  Final answers stay
 * final: success, task_status "error", 400 "Invalid task ID" / 404
 * (expired), 500 "Task execution timed out"; and so do 401 and other 4xx
 * refusals, which say the request itself is wrong (their error keeps the
 * task id: the task can be resumed once that is fixed).  Refused answers
 * keep a budget (on_refused_answer): a whole answer that says the task
 * succeeded but whose result cannot be used (the results rule), or a JSON
 * answer holding a NUL in a string, is the API saying something it will
 * say again, so it is retried only while at most max_retries retries in a
 * row met one; then the job fails SA_ERR_PROTOCOL (after a success the
 * task has ended; after a NUL it is polled on in the background, as after
 * the deadline).  A failed poll is retried after its backoff; the first
 * max_retries retries in a row are quick (the backoff alone), later ones
 * no sooner than poll_interval_ms, so that a storm is polled at the pace
 * of a running task however small the configured backoff.  Every retry
 * delay is cut so that the retry also goes out at most
 * max_poll_interval_ms after the previous poll; and a poll request's own
 * timeout is at most max_poll_interval_ms / 2, so a hung poll cannot
 * stretch the gap either.  Hence, as long as the engine sends
 * what it is given when it is given (a poll must not queue behind other
 * requests in the rate limiter), a running task is never left unpolled for
 * longer than max_poll_interval_ms.  max_polls is 0 (no bound) unless the
 * user sets it; then it is a hard bound: when it is reached the machine
 * ends (SA_ERR_LIMIT) and polls no more (the task may still be billed).
 *
 * Fetching.  A task that succeeds with a ZIP result (a zip URL, no
 * scores) is not DONE yet: the machine enters FETCHING and GETs the ZIP
 * (api_host 0: never the key, never the limiter; the answer may be up to
 * SA_FETCH_MAX_BODY; per-download timeout upload_timeout_ms), parses it
 * (sa_result_from_zip) and only then ends DONE with the scores and mask
 * files.  A download is retried like a poll (transport, 429, 5xx).  A 403
 * means the pre-signed URL expired (S3 "Request has expired"; any 403 of a
 * result host is taken as that): the machine polls the task once more
 * (SA_STEP_POLL, api_host 1, still FETCHING) for a fresh URL and tries
 * again, once; refused again, it ends FAILED SA_ERR_URL_EXPIRED.  A ZIP
 * that does not parse ends FAILED SA_ERR_ZIP.  The task itself succeeded
 * and is billed: every failure in this phase says so in the message and
 * keeps the task id.  The deadline and cancel end a FETCHING machine at
 * once (nothing is left to poll).
 *
 * Memory: everything through the job's copy of cfg->mem; every string of
 * the configuration is copied (not `buffer`, which stays borrowed).  Out of
 * memory anywhere ends the machine FAILED with SA_ERR_NOMEM, and the call
 * that hit it returns SA_ERR_NOMEM.
 */
#include "sa_internal.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define JOB_MSG_LEN 512
#define JOB_MIN_POLL_MS 200  /* floor of a server's polling_interval */
#define JOB_NAME_LEN 256     /* a download's file name */
#define JOB_STEPS (SA_STEP_ACCOUNT + 1)

enum { KIND_ANALYSIS = 0, KIND_DOWNLOAD, KIND_FETCH, KIND_ACCOUNT };

struct sa_jobsm {
    sa_mem memv;             /* copy of cfg->mem ... */
    const sa_mem *mem;       /* ... &memv, or NULL for libc */
    int kind;                /* KIND_* */

    /* Configuration (strings copied). */
    char *base_url;
    int api_version;
    int upload_path;
    char *file_path;
    const void *buffer;      /* borrowed */
    uint64_t file_size;
    char *content_type;
    char *file_name;
    char *image_url;
    char **actions;
    size_t n_actions;
    int format;
    int pf_camera_kit;
    int mask_overlay;
    cJSON *miniserver_args;
    long request_timeout_ms;
    long upload_timeout_ms;
    long poll_interval_ms;
    long max_poll_interval_ms;
    int64_t deadline_at_ms;  /* INT64_MAX: none */
    int max_polls;
    int max_retries;
    long backoff_initial_ms;
    long backoff_max_ms;
    int max_json_depth;
    uint64_t *rng;           /* the client's, or &rng_own */
    uint64_t rng_own;
    size_t max_files_bytes;  /* a ZIP result's images */
    long low_speed_limit;    /* result downloads */
    long low_speed_time_ms;

    /* The machine. */
    int state;               /* sa_job_state: written only by set_state() */
    int step;                /* sa_step being worked on (BACKOFF returns) */
    int in_flight;           /* a request is out */
    int64_t wake_at_ms;      /* POLL_WAIT / BACKOFF: when to move on */
    int failures;            /* consecutive failures of `step` */
    int refused;             /* refused status answers since the last
                                readable one (on_refused_answer) */
    int64_t last_poll_ms;    /* last poll handed out (or task created) */
    int polls;
    int task_maybe;          /* a task exists or may exist */
    int refreshed_slot;      /* file create redone after an expired URL */
    int resumed;             /* started from a task id (sa_client_resume) */
    int unknown_seen;        /* an unknown task_status was noted ... */
    int notice_pending;      /* ... and waits for sa_jobsm_take_notice */
    char unknown_status[64]; /* that status (sa_status_info) */

    /* The public outcome: written only by fix_outcome(). */
    int pub_state;           /* 0 while open, then DONE/FAILED/CANCELLED */
    int pub_status;
    char errmsg[JOB_MSG_LEN];
    int background;          /* outcome fixed while a task still runs */
    int bg_status;           /* what the background polling found */
    char bgmsg[JOB_MSG_LEN];

    /* Details of the answers (sticky once the outcome is fixed). */
    long http_status;
    char *api_error_code;
    char *engine_error;
    char *request_id;
    char *task_id;
    char *file_id;
    sa_upload_spec upload;
    sa_result *result;

    /* Fetching: an analysis's ZIP, or a download's one URL. */
    int fetch_phase;         /* the task ended; its result is downloaded */
    char *fetch_url;         /* the URL being downloaded */
    int refreshed_url;       /* a fresh URL was asked for once */
    char dl_name[JOB_NAME_LEN]; /* download: file name of the URL */
    size_t dl_index;         /* download: its place among the result's
                                URLs, or SIZE_MAX */
    char *dl_data;           /* download: the bytes once DONE */
    size_t dl_len;

    /* A fetch (sa_client_fetch): URLs handed out and reported.  Each
     * download counts on its own; the failure kept is the first in URL
     * order (fail_index). */
    char **urls;
    size_t n_urls, n_started, n_ended;
    size_t n_failed;
    size_t fail_index;
    int fail_status;         /* that failure, or SA_OK */
    char failmsg[JOB_MSG_LEN];

    /* An account machine (account.c): what it read, and whether a delete
     * may have reached the server already. */
    sa_account *account;
    int delete_maybe;

    /* The request out: valid until on_response / free. */
    sa_http_request req;
    char *req_url;
    char *req_body;
};

static const char *const job_state_names[] = {
    "VALIDATE", "QUEUED", "FILE_CREATE", "UPLOAD", "TASK_CREATE",
    "POLL_WAIT", "POLLING", "BACKOFF", "FETCHING", "DONE", "FAILED",
    "CANCELLED"
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

/* "FILE_CREATE", ... for a sa_job_state; "?" when out of range.  The public
 * sa_job_state_name() can use this table. */
const char *sa_jobsm_state_name(int state)
{
    if (state < 0 || state >= SA_JOB_STATE__LAST) return "?";
    return job_state_names[state];
}

static const char *step_name(int step)
{
    return step >= 0 && step < JOB_STEPS ? step_names[step] : "?";
}

static void msgf(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void msgf(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

static int is_terminal(int state)
{
    return state == SA_JOB_DONE || state == SA_JOB_FAILED
        || state == SA_JOB_CANCELLED;
}

static int ascii_lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* Case-insensitive: does `s` start with `prefix`? */
static int starts_with_ci(const char *s, const char *prefix)
{
    for (; *prefix; s++, prefix++)
        if (ascii_lower((unsigned char)*s) != ascii_lower((unsigned char)*prefix))
            return 0;
    return 1;
}

/* Case-insensitive substring test (bounded by the NUL of s). */
static int contains_ci(const char *s, const char *needle)
{
    if (!s) return 0;
    for (; *s; s++)
        if (starts_with_ci(s, needle)) return 1;
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
static int replace_str(const sa_mem *mem, char **slot, const char *s)
{
    char *copy = sa__strdup(mem, s);
    if (s && !copy) return SA_ERR_NOMEM;
    sa__free(mem, *slot);
    *slot = copy;
    return SA_OK;
}

/* Replace *slot with s, taking ownership. */
static void take_str(const sa_mem *mem, char **slot, char **s)
{
    sa__free(mem, *slot);
    *slot = *s;
    *s = NULL;
}

static uint64_t job_rand(sa_jobsm *sm)
{
    return sa__rand(sm->rng);
}

/* ------------------------------------------------------------------ */
/* State and outcome                                                   */
/* ------------------------------------------------------------------ */

/* The only writer of sm->state.  Entering a working state also says which
 * step is being worked on (BACKOFF keeps the step it returns to). */
static void set_state(sa_jobsm *sm, int state)
{
    if (state < 0 || state >= SA_JOB_STATE__LAST) state = SA_JOB_FAILED;
    sm->state = state;
    switch (state) {
    case SA_JOB_FILE_CREATE: sm->step = SA_STEP_FILE_CREATE; break;
    case SA_JOB_UPLOAD: sm->step = SA_STEP_UPLOAD; break;
    case SA_JOB_TASK_CREATE: sm->step = SA_STEP_TASK_CREATE; break;
    case SA_JOB_POLL_WAIT:
    case SA_JOB_POLLING: sm->step = SA_STEP_POLL; break;
    default: break;  /* FETCHING: the caller says download or poll */
    }
}

/* Enter FETCHING for a download (SA_STEP_FETCH) or the poll that asks
 * for a fresh URL (SA_STEP_POLL). */
static void set_fetch_step(sa_jobsm *sm, int step)
{
    set_state(sm, SA_JOB_FETCHING);
    sm->step = step;
}

/* The state a step is (re)tried in. */
static int step_state(const sa_jobsm *sm, int step)
{
    if (sm->fetch_phase) return SA_JOB_FETCHING;
    switch (step) {
    case SA_STEP_FILE_CREATE: return SA_JOB_FILE_CREATE;
    case SA_STEP_UPLOAD: return SA_JOB_UPLOAD;
    case SA_STEP_TASK_CREATE: return SA_JOB_TASK_CREATE;
    case SA_STEP_POLL: return SA_JOB_POLLING;
    default: return SA_JOB_STATE__LAST;  /* fails safe in next() */
    }
}

/* The only writer of the public outcome; fixed once. */
static void fix_outcome(sa_jobsm *sm, int state, int status, const char *msg)
{
    if (sm->pub_state) return;
    sm->pub_state = state;
    sm->pub_status = status;
    msgf(sm->errmsg, sizeof sm->errmsg, "%s", msg);
}

/* A failure after the task succeeded: say that it is billed and how to
 * find it again. */
static void billed_note(const sa_jobsm *sm, char *msg, size_t len)
{
    size_t n = strlen(msg);
    if (n < len)
        msgf(msg + n, len - n, "; task %s succeeded and its units are billed:"
             " its result can be fetched again with that task id",
             sm->task_id ? sm->task_id : "(id unknown)");
}

static void release_request(sa_jobsm *sm)
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
static void finish(sa_jobsm *sm, int state, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void finish(sa_jobsm *sm, int state, int status, const char *fmt, ...)
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
        msgf(sm->bgmsg, sizeof sm->bgmsg, "%s", msg);
    }
    release_request(sm);
    set_state(sm, state);
}

/* Fix the public outcome now and keep the machine going in the background
 * (a task exists or may exist and must be polled to its end). */
static void go_background(sa_jobsm *sm, int state, int status,
                          const char *what)
{
    char msg[JOB_MSG_LEN];

    if (sm->task_id)
        msgf(msg, sizeof msg, "%s; task %s is still polled until it ends "
             "and may be billed", what, sm->task_id);
    else
        msgf(msg, sizeof msg, "%s while the task create request was out: a "
             "task may exist; it is polled until it ends and may be billed",
             what);
    fix_outcome(sm, state, status, msg);
    sm->background = 1;
    sm->bg_status = SA_ERR_NOT_DONE;
}

static int fail_nomem(sa_jobsm *sm, const char *what)
{
    finish(sm, SA_JOB_FAILED, SA_ERR_NOMEM, "out of memory (%s)", what);
    return SA_ERR_NOMEM;
}

/* The deadline ends the public job; a task that exists or may exist is
 * still polled in the background. */
static void check_deadline(sa_jobsm *sm, int64_t now_ms)
{
    if (sm->pub_state || is_terminal(sm->state) || now_ms < sm->deadline_at_ms)
        return;
    if (sm->fetch_phase || sm->kind != KIND_ANALYSIS) {
        finish(sm, SA_JOB_FAILED, SA_ERR_DEADLINE, "deadline passed during "
               "%s", sm->kind == KIND_FETCH ? "the downloads"
                                            : step_name(sm->step));
        return;
    }
    if (!sm->task_maybe) {
        finish(sm, SA_JOB_FAILED, SA_ERR_DEADLINE, "deadline passed during "
               "%s, before any task was created: nothing was billed",
               step_name(sm->step));
        return;
    }
    if (sm->errmsg[0]) {
        /* say what the last attempt met (a storm of failed polls...),
         * without the retry it was waiting for */
        char what[JOB_MSG_LEN], *cut = NULL, *p = sm->errmsg;
        while ((p = strstr(p, "; retry ")) != NULL) cut = p++;
        msgf(what, sizeof what, "deadline passed (last: %.*s)",
             cut ? (int)(cut - sm->errmsg) : (int)strlen(sm->errmsg),
             sm->errmsg);
        go_background(sm, SA_JOB_FAILED, SA_ERR_DEADLINE, what);
        return;
    }
    go_background(sm, SA_JOB_FAILED, SA_ERR_DEADLINE, "deadline passed");
}

/* A step answered as hoped: its retry count starts again. */
static void step_succeeded(sa_jobsm *sm)
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
static int64_t backoff_delay(sa_jobsm *sm, int n)
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
static int endless_step(const sa_jobsm *sm)
{
    return sm->step == SA_STEP_POLL && !sm->fetch_phase;
}

/* Another failure of the current step: BACKOFF and try again, or, once
 * max_retries retries in a row failed, end with `status`.  A failed status
 * poll is always tried again (see "Polling" above). */
static void retry_or_fail(sa_jobsm *sm, int64_t now_ms, int status,
                          const char *why)
{
    int64_t delay, room;
    int endless = endless_step(sm);

    if (sm->failures < INT_MAX) sm->failures++;
    if (sm->failures > sm->max_retries && !endless) {
        finish(sm, SA_JOB_FAILED, status, "%s: %s (gave up after %d "
               "attempts)", step_name(sm->step), why, sm->failures);
        return;
    }
    delay = backoff_delay(sm, sm->failures);
    if (sm->step == SA_STEP_POLL) {
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
        msgf(sm->errmsg, sizeof sm->errmsg, "%s: %s; retry %d in %lld ms "
             "(task %s is polled until it ends)", step_name(sm->step), why,
             sm->failures, (long long)delay, sm->task_id);
    else if (!sm->pub_state)
        msgf(sm->errmsg, sizeof sm->errmsg, "%s: %s; retry %d of %d in "
             "%lld ms", step_name(sm->step), why, sm->failures,
             sm->max_retries, (long long)delay);
    set_state(sm, SA_JOB_BACKOFF);
}

/* ------------------------------------------------------------------ */
/* Requests                                                            */
/* ------------------------------------------------------------------ */

/* A request to the API host: base_url + path [+ "/" + encoded id]. */
static int api_request(sa_jobsm *sm, int method, const char *path,
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

static int build_file_create(sa_jobsm *sm)
{
    char *body = sa_proto_file_create_body(sm->mem, sm->content_type,
                                           sm->file_name, sm->file_size);
    if (!body) return SA_ERR_NOMEM;
    return api_request(sm, SA_HTTP_POST,
                       sa_proto_file_path(sm->api_version, sm->upload_path),
                       NULL, body, sm->request_timeout_ms);
}

/* The PUT to the pre-signed URL: the headers of the slot that proto kept
 * (sa_proto_upload_header_allowed), never the API key (api_host = 0). */
static int build_upload(sa_jobsm *sm)
{
    sm->req.step = SA_STEP_UPLOAD;
    sm->req.method = SA_HTTP_PUT;
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

static int build_task_create(sa_jobsm *sm)
{
    sa_task_params p;
    char *body;

    memset(&p, 0, sizeof p);
    p.src_file_url = sm->image_url;
    p.src_file_id = sm->image_url ? NULL : sm->file_id;
    p.actions = (const char *const *)sm->actions;
    p.n_actions = sm->n_actions;
    p.format = sm->format;
    p.api_version = sm->api_version;
    p.pf_camera_kit = sm->pf_camera_kit;
    p.mask_overlay = sm->mask_overlay;
    p.miniserver_args = sm->miniserver_args;
    body = sa_proto_task_body(sm->mem, &p);
    if (!body) return SA_ERR_NOMEM;
    return api_request(sm, SA_HTTP_POST, sa_proto_task_path(sm->api_version),
                       NULL, body, sm->request_timeout_ms);
}

/* The GET of a result URL: never the key, a larger body limit. */
static int build_fetch(sa_jobsm *sm)
{
    if (!sm->fetch_url) return SA_ERR_PROTOCOL;
    sm->req.step = SA_STEP_FETCH;
    sm->req.method = SA_HTTP_GET;
    sm->req.url = sm->fetch_url;
    sm->req.api_host = 0;
    sm->req.timeout_ms = sm->upload_timeout_ms;
    sm->req.max_body = SA_FETCH_MAX_BODY;
    sm->req.low_speed_limit = sm->low_speed_limit;
    sm->req.low_speed_time_ms = sm->low_speed_time_ms;
    return SA_OK;
}

static int build_poll(sa_jobsm *sm)
{
    long timeout = sm->max_poll_interval_ms / 2;
    if (sm->request_timeout_ms < timeout) timeout = sm->request_timeout_ms;
    return api_request(sm, SA_HTTP_GET, sa_proto_task_path(sm->api_version),
                       sm->task_id, NULL, timeout);
}

/* An account request: the balance, the next price list page, or the
 * delete of task_id. */
static int build_account(sa_jobsm *sm)
{
    char *path;
    int rc;

    if (!sm->account) return SA_ERR_PROTOCOL;
    if (sa__account_op(sm->account) == SA_ACCOUNT_DELETE) {
        char *body = sa__account_delete_body(sm->mem, sm->task_id);
        if (!body) return SA_ERR_NOMEM;
        return api_request(sm, SA_HTTP_POST, "/s2s/v2.0/task/delete", NULL,
                           body, sm->request_timeout_ms);
    }
    path = sa__account_path(sm->account);
    if (!path) return SA_ERR_NOMEM;
    rc = api_request(sm, SA_HTTP_GET, path, NULL, NULL,
                     sm->request_timeout_ms);
    sa__free(sm->mem, path);
    return rc;
}

/* Hand out the request of the current step. */
static int send_step(sa_jobsm *sm, int64_t now_ms, sa_next *out)
{
    int rc;

    switch (sm->step) {
    case SA_STEP_FILE_CREATE: rc = build_file_create(sm); break;
    case SA_STEP_UPLOAD: rc = build_upload(sm); break;
    case SA_STEP_TASK_CREATE: rc = build_task_create(sm); break;
    case SA_STEP_POLL:
        if (sm->max_polls > 0 && sm->polls >= sm->max_polls
            && !sm->fetch_phase) {
            finish(sm, SA_JOB_FAILED, SA_ERR_LIMIT, "gave up after %d status "
                   "polls (max_polls); task %s may still be running and may "
                   "be billed", sm->polls, sm->task_id);
            out->kind = SA_NEXT_END;
            return SA_OK;
        }
        rc = build_poll(sm);
        break;
    case SA_STEP_FETCH: rc = build_fetch(sm); break;
    case SA_STEP_ACCOUNT: rc = build_account(sm); break;
    default:
        rc = SA_ERR_PROTOCOL;
        break;
    }
    if (rc == SA_ERR_NOMEM) {
        release_request(sm);
        out->kind = SA_NEXT_END;
        return fail_nomem(sm, step_name(sm->step));
    }
    if (rc != SA_OK) {
        finish(sm, SA_JOB_FAILED, SA_ERR_PROTOCOL, "internal error: no "
               "request for step %d", sm->step);
        out->kind = SA_NEXT_END;
        return SA_OK;
    }
    if (sm->step == SA_STEP_TASK_CREATE) sm->task_maybe = 1;
    if (sm->step == SA_STEP_POLL) {
        if (sm->polls < INT_MAX) sm->polls++;
        sm->last_poll_ms = now_ms;
    }
    sm->in_flight = 1;
    out->kind = SA_NEXT_SEND;
    out->req = &sm->req;
    return SA_OK;
}

static int wait_until(sa_jobsm *sm, int64_t at_ms, sa_next *out)
{
    out->kind = SA_NEXT_WAIT;
    out->wake_at_ms = at_ms;
    if (!sm->pub_state && sm->deadline_at_ms < at_ms)
        out->wake_at_ms = sm->deadline_at_ms;
    return SA_OK;
}

/* ------------------------------------------------------------------ */
/* Answers                                                             */
/* ------------------------------------------------------------------ */

/* Remember the HTTP status and x-request-id of the last request's answer:
 * 0 and NULL when no answer arrived (a timeout must not report the status
 * of the step before) or it had no x-request-id.  Frozen once the public
 * outcome is fixed. */
static int note_answer(sa_jobsm *sm, const sa_http_response *resp)
{
    if (sm->pub_state) return SA_OK;
    sm->http_status = resp->transport == SA_OK ? resp->http_status : 0;
    return replace_str(sm->mem, &sm->request_id, resp->request_id);
}

static const char *resp_body(const sa_http_response *resp)
{
    return resp->body ? resp->body : "";
}

static size_t resp_len(const sa_http_response *resp)
{
    return resp->body ? resp->body_len : 0;
}

static int is_2xx(const sa_http_response *resp)
{
    return resp->http_status >= 200 && resp->http_status <= 299;
}

/* "HTTP 401 InvalidApiKey: This API key is not recognized." + request id */
static void describe_http(const sa_jobsm *sm, long http, const sa_api_error *e,
                          char *buf, size_t len)
{
    msgf(buf, len, "HTTP %ld%s%s%s%s%s%s", http,
         e && e->error_code ? " " : "", e && e->error_code ? e->error_code : "",
         e && e->message ? ": " : "", e && e->message ? e->message : "",
         sm->request_id ? " x-request-id " : "",
         sm->request_id ? sm->request_id : "");
}

/* The status of a failed transfer: what the engine reported, or
 * SA_ERR_TRANSPORT for a value that is not a sa_status. */
static int transport_code(const sa_http_response *resp)
{
    if (resp->transport < 0 && resp->transport > SA_ERR__LAST)
        return resp->transport;
    return SA_ERR_TRANSPORT;
}

/* Only network failures are worth another try; anything else the engine
 * reports (LIMIT: body too big, FILE: image unreadable, PROTOCOL: a header
 * it refuses to send, INSECURE...) would fail the same way again. */
static int transport_transient(int code)
{
    return code == SA_ERR_TRANSPORT || code == SA_ERR_TIMEOUT;
}

static void describe_transport(const sa_http_response *resp, char *buf,
                               size_t len)
{
    int code = transport_code(resp);
    const char *sep = resp->transport_msg ? ": " : "";
    const char *detail = resp->transport_msg ? resp->transport_msg : "";

    switch (code) {
    case SA_ERR_TRANSPORT:
        msgf(buf, len, "transport error%s%s", sep, detail); break;
    case SA_ERR_TIMEOUT:
        msgf(buf, len, "request timed out%s%s", sep, detail); break;
    case SA_ERR_LIMIT:
        msgf(buf, len, "answer larger than the limit%s%s", sep, detail); break;
    case SA_ERR_FILE:
        msgf(buf, len, "cannot read the image file%s%s", sep, detail); break;
    default:
        msgf(buf, len, "request failed (%s)%s%s", sa_status_name(code), sep,
             detail);
        break;
    }
}

/* A failed transfer of file create, upload or poll (all safe to retry). */
static int on_transport_failure(sa_jobsm *sm, int64_t now_ms,
                                const sa_http_response *resp)
{
    char why[JOB_MSG_LEN];
    int code = transport_code(resp);

    describe_transport(resp, why, sizeof why);
    if (code == SA_ERR_NOMEM) return fail_nomem(sm, "transport");
    if (transport_transient(code))
        retry_or_fail(sm, now_ms, code, why);
    else
        finish(sm, SA_JOB_FAILED, code, "%s: %s", step_name(sm->step), why);
    return SA_OK;
}

/* Classify a non-2xx answer: fills *e (free with sa_api_error_free) and
 * keeps its error_code; returns the status or SA_ERR_NOMEM. */
static int classify(sa_jobsm *sm, const sa_http_response *resp,
                    sa_api_error *e, char *why, size_t whylen)
{
    int code;

    memset(e, 0, sizeof *e);
    code = sa_proto_classify(sm->mem, sm->step, resp->http_status,
                             resp_body(resp), resp_len(resp),
                             sm->max_json_depth, e);
    if (code == SA_ERR_NOMEM) return code;
    describe_http(sm, resp->http_status, e, why, whylen);
    if (!sm->pub_state && e->error_code)
        take_str(sm->mem, &sm->api_error_code, &e->error_code);
    return code;
}

/* The Content-Length a slot asks for, or -1 when absent or not a number. */
static int64_t slot_content_length(const sa_upload_spec *u)
{
    size_t i;
    for (i = 0; i < u->n_headers; i++) {
        const char *h = u->headers[i], *p;
        int64_t v = 0;
        if (!h || !starts_with_ci(h, "Content-Length:")) continue;
        for (p = h + 15; *p == ' ' || *p == '\t'; p++) {}
        if (*p < '0' || *p > '9') return -1;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (v > (INT64_MAX - 9) / 10) return -1;
            v = v * 10 + (*p - '0');
        }
        return v;
    }
    return -1;
}

/* A parsed slot we can use: a PUT, and the size we declared. */
static int check_slot(sa_jobsm *sm, const sa_upload_spec *u, char *why,
                      size_t len)
{
    int64_t cl;

    if (u->unusable[0]) {
        msgf(why, len, "%s", u->unusable);
        return SA_ERR_PROTOCOL;
    }
    if (u->method && (!starts_with_ci(u->method, "PUT")
                      || u->method[3] != '\0')) {
        msgf(why, len, "upload method '%s' is not supported (PUT expected)",
             u->method);
        return SA_ERR_PROTOCOL;
    }
    if (!u->url || !sa__url_scheme(u->url)) {
        msgf(why, len, "the upload slot has no http(s) URL");
        return SA_ERR_PROTOCOL;
    }
    cl = slot_content_length(u);
    if (cl >= 0 && (uint64_t)cl != sm->file_size) {
        msgf(why, len, "the upload slot expects %lld bytes but the image has "
             "%llu", (long long)cl, (unsigned long long)sm->file_size);
        return SA_ERR_PROTOCOL;
    }
    return SA_OK;
}

static int on_file_create_ok(sa_jobsm *sm, int64_t now_ms,
                             const sa_http_response *resp)
{
    char why[256] = "", what[320];
    char *file_id = NULL;
    sa_upload_spec up;
    int rc;

    memset(&up, 0, sizeof up);
    rc = sa_proto_parse_file_create(sm->mem, resp_body(resp), resp_len(resp),
                                    sm->max_json_depth, &file_id, &up, why,
                                    sizeof why);
    if (rc != SA_OK) {
        /* an unreadable 200 (a proxy, a truncated body): file create is
         * safe to repeat, like a transport error */
        sa__free(sm->mem, file_id);
        sa_upload_spec_free(sm->mem, &up);
        if (rc == SA_ERR_NOMEM) return fail_nomem(sm, "file create answer");
        msgf(what, sizeof what, "unreadable HTTP %ld answer (%s)",
             resp->http_status, why);
        retry_or_fail(sm, now_ms, rc, what);
        return SA_OK;
    }
    rc = check_slot(sm, &up, why, sizeof why);
    if (rc != SA_OK) {
        /* readable, but a slot we cannot use: asking again would get the
         * same kind of slot */
        sa__free(sm->mem, file_id);
        sa_upload_spec_free(sm->mem, &up);
        finish(sm, SA_JOB_FAILED, rc, "file create: %s", why);
        return SA_OK;
    }
    take_str(sm->mem, &sm->file_id, &file_id);
    sa_upload_spec_free(sm->mem, &sm->upload);
    sm->upload = up;
    step_succeeded(sm);
    set_state(sm, SA_JOB_UPLOAD);
    return SA_OK;
}

static int on_file_create(sa_jobsm *sm, int64_t now_ms,
                          const sa_http_response *resp)
{
    char why[JOB_MSG_LEN];
    sa_api_error e;
    int code;

    if (resp->transport != SA_OK)
        return on_transport_failure(sm, now_ms, resp);
    if (is_2xx(resp)) return on_file_create_ok(sm, now_ms, resp);

    code = classify(sm, resp, &e, why, sizeof why);
    sa_api_error_free(sm->mem, &e);
    if (code == SA_ERR_NOMEM) return fail_nomem(sm, "file create answer");
    if (resp->http_status == 404 && sm->upload_path == SA_UPLOAD_SKIN_ANALYSIS) {
        /* API.md section 3: the generic upload path is the newer one (once:
         * the path is then generic) */
        sm->upload_path = SA_UPLOAD_GENERIC;
        set_state(sm, SA_JOB_FILE_CREATE);
        return SA_OK;
    }
    if (code == SA_ERR_RATE_LIMITED || code == SA_ERR_SERVER)
        retry_or_fail(sm, now_ms, code, why);
    else
        finish(sm, SA_JOB_FAILED, code, "file create: %s", why);
    return SA_OK;
}

static int on_upload(sa_jobsm *sm, int64_t now_ms,
                     const sa_http_response *resp)
{
    char why[JOB_MSG_LEN];
    sa_api_error e;
    int code, expired;

    if (resp->transport != SA_OK)
        return on_transport_failure(sm, now_ms, resp);
    if (is_2xx(resp)) {
        step_succeeded(sm);
        set_state(sm, SA_JOB_TASK_CREATE);
        return SA_OK;
    }
    code = classify(sm, resp, &e, why, sizeof why);
    expired = resp->http_status == 403 && contains_ci(e.message, "expired");
    sa_api_error_free(sm->mem, &e);
    if (code == SA_ERR_NOMEM) return fail_nomem(sm, "upload answer");
    if (expired && !sm->refreshed_slot) {
        /* the pre-signed URL expired: ask for a fresh slot, once */
        sm->refreshed_slot = 1;
        sm->failures = 0;
        set_state(sm, SA_JOB_FILE_CREATE);
        return SA_OK;
    }
    if (resp->http_status == 429 || resp->http_status >= 500)
        retry_or_fail(sm, now_ms, resp->http_status == 429
                      ? SA_ERR_RATE_LIMITED : SA_ERR_SERVER, why);
    else
        finish(sm, SA_JOB_FAILED, SA_ERR_UPLOAD, "upload: %s", why);
    return SA_OK;
}

/* Task create failed after its request may have reached the server. */
static void ambiguous(sa_jobsm *sm, const char *why)
{
    finish(sm, SA_JOB_FAILED, SA_ERR_AMBIGUOUS, "task create: %s after the "
           "request was sent: a task may have been created and may be "
           "billed; not retried (task create is not idempotent)", why);
}

/* Task create was certainly refused: no task.  Retry when allowed, unless
 * the job already ended (then nothing is left to do in the background). */
static void task_refused(sa_jobsm *sm, int64_t now_ms, int code,
                         const char *why, int retry)
{
    sm->task_maybe = 0;
    if (sm->background)
        finish(sm, SA_JOB_CANCELLED, code, "task create: %s: no task was "
               "created", why);
    else if (retry)
        retry_or_fail(sm, now_ms, code, why);
    else
        finish(sm, SA_JOB_FAILED, code, "task create: %s", why);
}

static void schedule_poll(sa_jobsm *sm, int64_t now_ms, long interval_ms)
{
    int64_t at = now_ms + interval_ms;
    int64_t latest = sm->last_poll_ms + sm->max_poll_interval_ms;
    if (at > latest) at = latest;
    if (at < now_ms) at = now_ms;
    sm->wake_at_ms = at;
    set_state(sm, SA_JOB_POLL_WAIT);
}

static long first_poll_delay(const sa_jobsm *sm)
{
    return sm->poll_interval_ms < sm->max_poll_interval_ms
         ? sm->poll_interval_ms : sm->max_poll_interval_ms;
}

static int on_task_create_ok(sa_jobsm *sm, int64_t now_ms,
                             const sa_http_response *resp)
{
    char why[256] = "", what[320];
    char *task_id = NULL;
    int rc;

    rc = sa_proto_parse_task_create(sm->mem, resp_body(resp), resp_len(resp),
                                    sm->max_json_depth, &task_id, why,
                                    sizeof why);
    if (rc == SA_ERR_NOMEM) return fail_nomem(sm, "task create answer");
    if (rc != SA_OK || !task_id) {
        sa__free(sm->mem, task_id);
        msgf(what, sizeof what, "unreadable HTTP %ld answer (%s)",
             resp->http_status, why);
        ambiguous(sm, what);
        return SA_OK;
    }
    take_str(sm->mem, &sm->task_id, &task_id);
    step_succeeded(sm);
    sm->last_poll_ms = now_ms;  /* the polling window starts now */
    schedule_poll(sm, now_ms, first_poll_delay(sm));
    return SA_OK;
}

static int on_task_create(sa_jobsm *sm, int64_t now_ms,
                          const sa_http_response *resp)
{
    char why[JOB_MSG_LEN];
    sa_api_error e;
    int code;

    if (resp->transport != SA_OK) {
        code = transport_code(resp);
        describe_transport(resp, why, sizeof why);
        if (!resp->not_sent) {
            ambiguous(sm, why);
        } else if (code == SA_ERR_NOMEM) {
            sm->task_maybe = 0;
            return fail_nomem(sm, "transport");
        } else {
            task_refused(sm, now_ms, code, why, transport_transient(code));
        }
        return SA_OK;
    }
    if (is_2xx(resp)) return on_task_create_ok(sm, now_ms, resp);

    code = classify(sm, resp, &e, why, sizeof why);
    sa_api_error_free(sm->mem, &e);
    if (code == SA_ERR_NOMEM) return fail_nomem(sm, "task create answer");
    if (resp->http_status >= 500 || code == SA_ERR_SERVER)
        ambiguous(sm, why);
    else
        task_refused(sm, now_ms, code, why, code == SA_ERR_RATE_LIMITED);
    return SA_OK;
}

/* A ZIP result: a zip URL and no scores yet. */
static int needs_zip(const sa_result *r)
{
    return r && sa_result_zip_url(r) && sa_result_count(r) == 0;
}

/* The task succeeded with a ZIP result: download it before DONE. */
static int start_zip(sa_jobsm *sm)
{
    if (replace_str(sm->mem, &sm->fetch_url, sa_result_zip_url(sm->result)))
        return fail_nomem(sm, "zip URL");
    sm->fetch_phase = 1;
    sm->failures = 0;
    set_fetch_step(sm, SA_STEP_FETCH);
    return SA_OK;
}

/* A status answer parsed: running, success or error. */
static int on_status(sa_jobsm *sm, int64_t now_ms, sa_status_info *info)
{
    long interval = sm->poll_interval_ms;

    step_succeeded(sm);
    if (info->task_status == SA_TASK_UNKNOWN) {
        /* not a documented status: not finished yet (logged once) */
        if (!sm->unknown_seen) {
            msgf(sm->unknown_status, sizeof sm->unknown_status, "%s",
                 info->unknown_status);
            sm->notice_pending = 1;
        }
        sm->unknown_seen = 1;
        info->task_status = SA_TASK_RUNNING;
    }
    switch (info->task_status) {
    case SA_TASK_RUNNING:
        if (info->polling_interval_ms >= 0) {
            interval = info->polling_interval_ms;
            if (interval < JOB_MIN_POLL_MS) interval = JOB_MIN_POLL_MS;
        }
        if (interval > sm->max_poll_interval_ms)
            interval = sm->max_poll_interval_ms;
        schedule_poll(sm, now_ms, interval);
        return SA_OK;
    case SA_TASK_SUCCESS:
        if (!sm->pub_state) {
            sm->result = info->result;
            info->result = NULL;
            if (needs_zip(sm->result)) return start_zip(sm);
        }
        if (sm->pub_state)
            finish(sm, SA_JOB_DONE, SA_OK, "task %s succeeded after the job "
                   "ended: it may be billed", sm->task_id);
        else
            finish(sm, SA_JOB_DONE, SA_OK, "%s", "");
        return SA_OK;
    case SA_TASK_ERROR:
        if (!sm->pub_state)
            take_str(sm->mem, &sm->engine_error, &info->engine_error);
        finish(sm, SA_JOB_FAILED, SA_ERR_ENGINE, "task %s ended with engine "
               "error %s: %s", sm->task_id,
               info->engine_error ? info->engine_error
               : sm->engine_error ? sm->engine_error : "(no code)",
               info->engine_message ? info->engine_message : "(no message)");
        return SA_OK;
    default:
        finish(sm, SA_JOB_FAILED, SA_ERR_PROTOCOL, "status poll: unknown "
               "task status %d", info->task_status);
        return SA_OK;
    }
}

/* A whole status answer the client refuses (see "Polling" above): it
 * says the task succeeded but its result cannot be used (no ZIP URL and
 * no usable output entry), or a string in it holds a NUL.  Not a cut or
 * garbled answer, but the API saying something it will most likely say
 * again: retried like any failed poll while at most max_retries retries in
 * a row met one, then the job fails SA_ERR_PROTOCOL.  A success ended the
 * task (nothing is left to poll); after a NUL the task is polled on in the
 * background, as after a deadline. */
static void on_refused_answer(sa_jobsm *sm, int64_t now_ms, int succeeded,
                              const char *what)
{
    char msg[JOB_MSG_LEN];

    if (sm->refused < INT_MAX) sm->refused++;
    if (sm->refused <= sm->max_retries) {
        retry_or_fail(sm, now_ms, SA_ERR_PROTOCOL, what);
        return;
    }
    if (succeeded) {
        finish(sm, SA_JOB_FAILED, SA_ERR_PROTOCOL, "status poll: %s, %d times "
               "in a row: task %s succeeded (it is billed) but its result "
               "cannot be used", what, sm->refused, sm->task_id);
        return;
    }
    retry_or_fail(sm, now_ms, SA_ERR_PROTOCOL, what);
    if (sm->pub_state) return;  /* already in the background */
    msgf(msg, sizeof msg, "status poll: %s, %d times in a row", what,
         sm->refused);
    go_background(sm, SA_JOB_FAILED, SA_ERR_PROTOCOL, msg);
}

static int on_poll_ok(sa_jobsm *sm, int64_t now_ms,
                      const sa_http_response *resp)
{
    char why[256] = "", what[320];
    sa_status_info info;
    int rc;

    memset(&info, 0, sizeof info);
    info.polling_interval_ms = -1;
    rc = sa_proto_parse_status(sm->mem, resp_body(resp), resp_len(resp),
                               sm->max_json_depth, sm->task_id, &info, why,
                               sizeof why);
    if (rc == SA_OK) rc = on_status(sm, now_ms, &info);
    else if (rc == SA_ERR_NOMEM) rc = fail_nomem(sm, "status answer");
    else {
        msgf(what, sizeof what, "unreadable HTTP %ld answer (%s)",
             resp->http_status, why);
        if (rc == SA_ERR_PROTOCOL
            && (info.task_status == SA_TASK_SUCCESS
                || sa_json_nul_only(resp_body(resp), resp_len(resp),
                                    sm->max_json_depth)))
            on_refused_answer(sm, now_ms,
                              info.task_status == SA_TASK_SUCCESS, what);
        else  /* a proxy, a cut body, no data or task_status, nested too
               * deep: a failed poll; the task must keep being polled */
            retry_or_fail(sm, now_ms,
                          rc == SA_ERR_LIMIT ? rc : SA_ERR_PROTOCOL, what);
        rc = SA_OK;
    }
    sa_status_info_free(sm->mem, &info);
    return rc;
}

static int on_poll(sa_jobsm *sm, int64_t now_ms, const sa_http_response *resp)
{
    char why[JOB_MSG_LEN];
    sa_api_error e;
    int code;

    if (resp->transport == SA_ERR_LIMIT) {
        /* the answer outgrew max_body_bytes: a failed poll, polled again */
        describe_transport(resp, why, sizeof why);
        retry_or_fail(sm, now_ms, SA_ERR_LIMIT, why);
        return SA_OK;
    }
    if (resp->transport != SA_OK)
        return on_transport_failure(sm, now_ms, resp);
    if (is_2xx(resp)) return on_poll_ok(sm, now_ms, resp);

    code = classify(sm, resp, &e, why, sizeof why);
    sa_api_error_free(sm->mem, &e);
    if (code == SA_ERR_NOMEM) return fail_nomem(sm, "status answer");
    if (code == SA_ERR_RATE_LIMITED || code == SA_ERR_SERVER
        || code == SA_ERR_PROTOCOL)
        retry_or_fail(sm, now_ms, code, why);
    else
        finish(sm, SA_JOB_FAILED, code, "status poll: %s (task %s)", why,
               sm->task_id);
    return SA_OK;
}

/* ------------------------------------------------------------------ */
/* Fetching: result ZIP, masks                                         */
/* ------------------------------------------------------------------ */

/* A downloaded ZIP: parse it into the result (analysis), or keep the
 * bytes (download). */
static int on_fetch_ok(sa_jobsm *sm, const sa_http_response *resp)
{
    char why[256] = "";
    sa_result *r = NULL;
    int rc;

    step_succeeded(sm);
    if (sm->kind == KIND_DOWNLOAD) {
        sm->dl_data = sa__malloc(sm->mem, resp_len(resp) + 1);
        if (!sm->dl_data) return fail_nomem(sm, "download");
        memcpy(sm->dl_data, resp_body(resp), resp_len(resp));
        sm->dl_data[resp_len(resp)] = '\0';
        sm->dl_len = resp_len(resp);
        finish(sm, SA_JOB_DONE, SA_OK, "%s", "");
        return SA_OK;
    }
    rc = sa_result_from_zip(sm->mem, resp_body(resp), resp_len(resp), 0,
                            sm->max_files_bytes, sm->task_id, &r, why,
                            sizeof why);
    if (rc == SA_ERR_NOMEM) return fail_nomem(sm, "result ZIP");
    if (rc != SA_OK) {
        finish(sm, SA_JOB_FAILED, rc == SA_ERR_LIMIT ? SA_ERR_LIMIT : SA_ERR_ZIP,
               "result ZIP (%zu bytes): %s", resp_len(resp),
               why[0] ? why : sa_strerror(rc));
        return SA_OK;
    }
    if (sm->fetch_url && sa_result_set_zip_url(r, sm->fetch_url) != SA_OK) {
        sa_result_free(r);
        return fail_nomem(sm, "result ZIP URL");
    }
    sa_result_free(sm->result);
    sm->result = r;
    finish(sm, SA_JOB_DONE, SA_OK, "%s", "");
    return SA_OK;
}

static int on_fetch(sa_jobsm *sm, int64_t now_ms,
                    const sa_http_response *resp)
{
    char why[JOB_MSG_LEN];
    sa_api_error e;
    int code;

    if (resp->transport != SA_OK)
        return on_transport_failure(sm, now_ms, resp);
    if (is_2xx(resp)) return on_fetch_ok(sm, resp);
    code = classify(sm, resp, &e, why, sizeof why);
    sa_api_error_free(sm->mem, &e);
    if (code == SA_ERR_NOMEM) return fail_nomem(sm, "download answer");
    if (resp->http_status == 403 && !sm->refreshed_url && sm->task_id) {
        /* an expired pre-signed URL: ask the task for fresh ones, once */
        sm->refreshed_url = 1;
        sm->failures = 0;
        if (!sm->pub_state)
            msgf(sm->errmsg, sizeof sm->errmsg, "result download: %s; "
                 "asking task %s for a fresh URL", why, sm->task_id);
        set_fetch_step(sm, SA_STEP_POLL);
    } else if (resp->http_status == 403) {
        finish(sm, SA_JOB_FAILED, SA_ERR_URL_EXPIRED, "result download: %s%s",
               why, sm->refreshed_url ? " (again, with a fresh URL)" : "");
    } else if (resp->http_status == 429 || resp->http_status >= 500) {
        retry_or_fail(sm, now_ms, SA_ERR_DOWNLOAD, why);
    } else {
        finish(sm, SA_JOB_FAILED, SA_ERR_DOWNLOAD, "result download: %s", why);
    }
    return SA_OK;
}

/* ------------------------------------------------------------------ */
/* Account requests (account.c reads the answers)                      */
/* ------------------------------------------------------------------ */

static int is_delete(const sa_jobsm *sm)
{
    return sa__account_op(sm->account) == SA_ACCOUNT_DELETE;
}

static const char *account_label(const sa_jobsm *sm)
{
    switch (sa__account_op(sm->account)) {
    case SA_ACCOUNT_CREDIT: return "balance request";
    case SA_ACCOUNT_PRICES: return "price list request";
    default: return "task delete";
    }
}

static int on_account(sa_jobsm *sm, int64_t now_ms,
                      const sa_http_response *resp)
{
    char why[JOB_MSG_LEN], what[JOB_MSG_LEN + 64];
    sa_api_error e;
    int code, more = 0;

    if (resp->transport != SA_OK) {
        /* a delete that was sent may have been carried out */
        if (is_delete(sm) && !resp->not_sent) sm->delete_maybe = 1;
        return on_transport_failure(sm, now_ms, resp);
    }
    if (is_2xx(resp)) {
        code = sa__account_feed(sm->account, resp_body(resp), resp_len(resp),
                                sm->max_json_depth, &more, why, sizeof why);
        if (code == SA_ERR_NOMEM) return fail_nomem(sm, "account answer");
        if (code == SA_ERR_LIMIT) {
            finish(sm, SA_JOB_FAILED, code, "%s: %s", account_label(sm),
                   why);
            return SA_OK;
        }
        if (code != SA_OK) {
            /* an unreadable 200 (a proxy, a cut body): reading is safe to
             * repeat; a page loop is not worth repeating */
            msgf(what, sizeof what, "unreadable HTTP %ld answer (%s)",
                 resp->http_status, why);
            if (strstr(why, "loop")) finish(sm, SA_JOB_FAILED, code, "%s: %s",
                                            account_label(sm), what);
            else retry_or_fail(sm, now_ms, code, what);
            return SA_OK;
        }
        step_succeeded(sm);
        if (more) {
            set_fetch_step(sm, SA_STEP_ACCOUNT);
            return SA_OK;
        }
        finish(sm, SA_JOB_DONE, SA_OK, "%s", "");
        return SA_OK;
    }
    code = classify(sm, resp, &e, why, sizeof why);
    if (code == SA_ERR_NOMEM) {
        sa_api_error_free(sm->mem, &e);
        return fail_nomem(sm, "account answer");
    }
    /* classify() took the error_code over (sm->api_error_code) */
    if (is_delete(sm) && resp->http_status == 400 && sm->api_error_code
        && strcmp(sm->api_error_code, "InvalidTaskId") == 0) {
        sa_api_error_free(sm->mem, &e);
        if (sm->delete_maybe) {
            /* an earlier attempt reached the server and deleted it */
            finish(sm, SA_JOB_DONE, SA_OK, "%s", "");
            return SA_OK;
        }
        finish(sm, SA_JOB_FAILED, SA_ERR_TASK_EXPIRED, "task delete: %s",
               why);
        return SA_OK;
    }
    sa_api_error_free(sm->mem, &e);
    if (code == SA_ERR_RATE_LIMITED || code == SA_ERR_SERVER
        || code == SA_ERR_TIMEOUT) {
        if (is_delete(sm) && code != SA_ERR_RATE_LIMITED)
            sm->delete_maybe = 1;
        retry_or_fail(sm, now_ms, code, why);
    } else {
        finish(sm, SA_JOB_FAILED, code, "%s: %s", account_label(sm), why);
    }
    return SA_OK;
}

/* The URL of the same file in a fresh status answer, or NULL: the URL at
 * the download's place when it names the same file (several URLs may end
 * in the same name), else the first URL with that name. */
static const char *fresh_url(const sa_jobsm *sm, const sa_result *fresh)
{
    const char *url;
    char name[JOB_NAME_LEN];

    if (!fresh) return NULL;
    if (sm->kind == KIND_ANALYSIS) return sa_result_zip_url(fresh);
    url = sm->dl_index != SIZE_MAX ? sa_result_url_at(fresh, sm->dl_index)
                                   : NULL;
    if (url) {
        sa_url_file_name(url, name, sizeof name);
        if (strcmp(name, sm->dl_name) == 0) return url;
    }
    return sa_result_find_url(fresh, sm->dl_name);
}

/* A parsed status answer to the poll for fresh URLs. */
static int on_refresh_status(sa_jobsm *sm, const sa_status_info *info)
{
    const char *url;

    step_succeeded(sm);
    if (info->task_status != SA_TASK_SUCCESS) {
        finish(sm, SA_JOB_FAILED, SA_ERR_URL_EXPIRED, "the result URL "
               "expired and task %s answers task_status %s, not success: no "
               "fresh URL", sm->task_id, info->task_status == SA_TASK_RUNNING
               ? "running" : info->task_status == SA_TASK_ERROR ? "error"
               : info->unknown_status);
        return SA_OK;
    }
    url = fresh_url(sm, info->result);
    if (!url) {
        finish(sm, SA_JOB_FAILED, SA_ERR_URL_EXPIRED, "the result URL expired "
               "and task %s's fresh answer has no URL for %s", sm->task_id,
               sm->kind == KIND_ANALYSIS ? "the ZIP" : sm->dl_name);
        return SA_OK;
    }
    if (replace_str(sm->mem, &sm->fetch_url, url))
        return fail_nomem(sm, "fresh URL");
    set_fetch_step(sm, SA_STEP_FETCH);
    return SA_OK;
}

/* The answer to the poll for fresh URLs: retried like a poll; a task
 * that cannot be asked any more leaves the URL expired. */
static int on_refresh(sa_jobsm *sm, int64_t now_ms,
                      const sa_http_response *resp)
{
    char why[JOB_MSG_LEN] = "";
    sa_status_info info;
    sa_api_error e;
    int rc;

    if (resp->transport != SA_OK)
        return on_transport_failure(sm, now_ms, resp);
    if (!is_2xx(resp)) {
        rc = classify(sm, resp, &e, why, sizeof why);
        sa_api_error_free(sm->mem, &e);
        if (rc == SA_ERR_NOMEM) return fail_nomem(sm, "status answer");
        if (rc == SA_ERR_RATE_LIMITED || rc == SA_ERR_SERVER
            || rc == SA_ERR_PROTOCOL)
            retry_or_fail(sm, now_ms, rc, why);
        else
            finish(sm, SA_JOB_FAILED, SA_ERR_URL_EXPIRED, "the result URL "
                   "expired and the status poll for a fresh one failed: %s "
                   "(task %s)", why, sm->task_id);
        return SA_OK;
    }
    memset(&info, 0, sizeof info);
    info.polling_interval_ms = -1;
    rc = sa_proto_parse_status(sm->mem, resp_body(resp), resp_len(resp),
                               sm->max_json_depth, sm->task_id, &info, why,
                               sizeof why);
    if (rc == SA_OK) rc = on_refresh_status(sm, &info);
    else if (rc == SA_ERR_NOMEM) rc = fail_nomem(sm, "status answer");
    else {
        retry_or_fail(sm, now_ms, SA_ERR_PROTOCOL, why);
        rc = SA_OK;
    }
    sa_status_info_free(sm->mem, &info);
    return rc;
}

/* A fetch machine: END once every URL was handed out and reported (DONE,
 * or FAILED with the first failure in URL order); else wait for the
 * client's reports. */
static int fetch_next(sa_jobsm *sm, sa_next *out)
{
    if (sm->n_ended >= sm->n_started && sm->n_started == sm->n_urls) {
        if (sm->n_failed == 1)
            finish(sm, SA_JOB_FAILED, sm->fail_status, "%s", sm->failmsg);
        else if (sm->n_failed > 1)
            finish(sm, SA_JOB_FAILED, sm->fail_status, "%zu of %zu files "
                   "failed; the first: %s", sm->n_failed,
                   sm->n_urls > sm->n_failed ? sm->n_urls : sm->n_failed,
                   sm->failmsg);
        else
            finish(sm, SA_JOB_DONE, SA_OK, "%s", "");
        out->kind = SA_NEXT_END;
        return SA_OK;
    }
    out->kind = SA_NEXT_WAIT;
    out->wake_at_ms = sm->deadline_at_ms;
    return SA_OK;
}

const char *sa_jobsm_fetch_next(sa_jobsm *sm, size_t *index)
{
    if (!sm || sm->kind != KIND_FETCH || is_terminal(sm->state)
        || sm->n_started >= sm->n_urls)
        return NULL;
    if (index) *index = sm->n_started;
    return sm->urls[sm->n_started++];
}

/* Record a failure; the one kept is the first in URL order. */
static void fetch_failed(sa_jobsm *sm, size_t index, int status,
                         const char *msg)
{
    sm->n_failed++;
    if (sm->fail_status != SA_OK && index >= sm->fail_index) return;
    sm->fail_index = index;
    sm->fail_status = status < 0 ? status : SA_ERR_DOWNLOAD;
    msgf(sm->failmsg, sizeof sm->failmsg, "%s", msg ? msg : "");
}

void sa_jobsm_fetch_fail(sa_jobsm *sm, int status, const char *msg)
{
    if (!sm || sm->kind != KIND_FETCH) return;
    fetch_failed(sm, SIZE_MAX, status, msg);
}

void sa_jobsm_fetch_done(sa_jobsm *sm, size_t index, int status,
                         const char *msg)
{
    if (!sm || sm->kind != KIND_FETCH || sm->n_ended >= sm->n_started)
        return;
    sm->n_ended++;
    if (status != SA_OK) fetch_failed(sm, index, status, msg);
}

sa_result *sa_jobsm_fetch_result(sa_jobsm *sm)
{
    return sm && sm->kind == KIND_FETCH ? sm->result : NULL;
}

int sa_jobsm_poll_now(sa_jobsm *sm, int64_t now_ms)
{
    if (!sm || sm->kind != KIND_ANALYSIS || sm->fetch_phase) return 0;
    if (sm->state != SA_JOB_POLL_WAIT
        && !(sm->state == SA_JOB_BACKOFF && sm->step == SA_STEP_POLL))
        return 0;
    if (sm->wake_at_ms > now_ms) sm->wake_at_ms = now_ms;
    return 1;
}

const void *sa_jobsm_download_data(const sa_jobsm *sm, size_t *len)
{
    if (len) *len = 0;
    if (!sm || sm->kind != KIND_DOWNLOAD || sm->pub_state != SA_JOB_DONE)
        return NULL;
    if (len) *len = sm->dl_len;
    return sm->dl_data;
}

const char *sa_jobsm_download_name(const sa_jobsm *sm)
{
    return sm ? sm->dl_name : "";
}

void sa_jobsm_download_set_index(sa_jobsm *sm, size_t index)
{
    if (sm && sm->kind == KIND_DOWNLOAD) sm->dl_index = index;
}

/* ------------------------------------------------------------------ */
/* Creation                                                            */
/* ------------------------------------------------------------------ */

/* The settings every kind of machine uses. */
static int settings_valid(const sa_job_config *cfg)
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

static int config_valid(const sa_job_config *cfg)
{
    int sources = (cfg->file_path || cfg->buffer) + !!cfg->image_url
                + !!cfg->file_id;
    size_t i;

    if (cfg->task_id)  /* resume: the task exists; nothing to create */
        return sources == 0 && cfg->task_id[0] != '\0'
            && settings_valid(cfg) && cfg->poll_interval_ms > 0;
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

static int copy_strings(sa_jobsm *sm, const sa_job_config *cfg)
{
    size_t i, n;

    sm->base_url = sa__strdup(sm->mem, cfg->base_url);
    if (!sm->base_url) return SA_ERR_NOMEM;
    for (n = strlen(sm->base_url); n > 0 && sm->base_url[n - 1] == '/'; n--)
        sm->base_url[n - 1] = '\0';
    if (replace_str(sm->mem, &sm->file_path, cfg->file_path)
        || replace_str(sm->mem, &sm->content_type, cfg->content_type)
        || replace_str(sm->mem, &sm->file_name, cfg->file_name)
        || replace_str(sm->mem, &sm->image_url, cfg->image_url)
        || replace_str(sm->mem, &sm->file_id, cfg->file_id)
        || replace_str(sm->mem, &sm->task_id, cfg->task_id))
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
    return SA_OK;
}

static void copy_settings(sa_jobsm *sm, const sa_job_config *cfg)
{
    sm->api_version = cfg->api_version;
    sm->upload_path = cfg->upload_path;
    sm->buffer = cfg->buffer;
    sm->file_size = cfg->file_size;
    sm->format = cfg->task.format;
    sm->pf_camera_kit = cfg->task.pf_camera_kit;
    sm->mask_overlay = cfg->task.mask_overlay;
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
}

/* Also: SA_ERR_INVALID_ARGUMENT for a NULL/incoherent cfg (no or several
 * sources, no actions, non-positive timeouts or intervals,
 * max_poll_interval_ms below 200, max_polls < 0; with task_id: a source or
 * an empty id).  A deadline_at_ms <= 0 means no deadline. */
int sa_jobsm_new(const sa_job_config *cfg, int64_t now_ms, sa_jobsm **out)
{
    sa_jobsm *sm;
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
    copy_settings(sm, cfg);
    rc = copy_strings(sm, cfg);
    if (rc != SA_OK) {
        sa_jobsm_free(sm);
        return rc;
    }
    sm->last_poll_ms = now_ms;
    if (sm->task_id) {
        /* resume: the task exists (and has gone unpolled for a while, as
         * far as we know): poll it at once */
        sm->resumed = 1;
        sm->task_maybe = 1;
        set_state(sm, SA_JOB_POLLING);
    } else {
        set_state(sm, sm->image_url || sm->file_id ? SA_JOB_TASK_CREATE
                                                   : SA_JOB_FILE_CREATE);
    }
    *out = sm;
    return SA_OK;
}

/* A machine of another kind than an analysis: settings and base URL. */
static int new_other(const sa_job_config *cfg, int kind, const char *task_id,
                     int64_t now_ms, sa_jobsm **out)
{
    sa_jobsm *sm;
    size_t n;

    sm = sa__calloc(cfg->mem, 1, sizeof *sm);
    if (!sm) return SA_ERR_NOMEM;
    if (cfg->mem) {
        sm->memv = *cfg->mem;
        sm->mem = &sm->memv;
    }
    sm->kind = kind;
    copy_settings(sm, cfg);
    sm->fetch_phase = 1;
    sm->last_poll_ms = now_ms;
    sm->base_url = sa__strdup(sm->mem, cfg->base_url);
    if (!sm->base_url || replace_str(sm->mem, &sm->task_id, task_id)) {
        sa_jobsm_free(sm);
        return SA_ERR_NOMEM;
    }
    for (n = strlen(sm->base_url); n > 0 && sm->base_url[n - 1] == '/'; n--)
        sm->base_url[n - 1] = '\0';
    *out = sm;
    return SA_OK;
}

/* Also SA_ERR_INVALID_ARGUMENT for a URL that is not http(s). */
int sa_jobsm_new_download(const sa_job_config *cfg, const char *url,
                          const char *task_id, int64_t now_ms,
                          sa_jobsm **out)
{
    sa_jobsm *sm = NULL;
    int rc;

    if (!out) return SA_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!cfg || !settings_valid(cfg) || !url || !sa__url_scheme(url))
        return SA_ERR_INVALID_ARGUMENT;
    rc = new_other(cfg, KIND_DOWNLOAD, task_id, now_ms, &sm);
    if (rc != SA_OK) return rc;
    sm->fetch_url = sa__strdup(sm->mem, url);
    if (!sm->fetch_url) {
        sa_jobsm_free(sm);
        return SA_ERR_NOMEM;
    }
    sa_url_file_name(url, sm->dl_name, sizeof sm->dl_name);
    sm->dl_index = SIZE_MAX;
    set_fetch_step(sm, SA_STEP_FETCH);
    *out = sm;
    return SA_OK;
}

int sa_jobsm_new_account(const sa_job_config *cfg, int op,
                         const char *task_id, const char *secret,
                         int64_t now_ms, sa_jobsm **out)
{
    sa_jobsm *sm = NULL;
    int rc;

    if (!out) return SA_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!cfg || !settings_valid(cfg)
        || (op != SA_ACCOUNT_CREDIT && op != SA_ACCOUNT_PRICES
            && op != SA_ACCOUNT_DELETE)
        || (op == SA_ACCOUNT_DELETE) != (task_id != NULL))
        return SA_ERR_INVALID_ARGUMENT;
    rc = new_other(cfg, KIND_ACCOUNT, task_id, now_ms, &sm);
    if (rc != SA_OK) return rc;
    rc = sa__account_new(sm->mem, op, secret, &sm->account);
    if (rc != SA_OK) {
        sa_jobsm_free(sm);
        return rc;
    }
    set_fetch_step(sm, SA_STEP_ACCOUNT);
    *out = sm;
    return SA_OK;
}

const sa_account *sa_jobsm_account(const sa_jobsm *sm)
{
    return sm && sm->kind == KIND_ACCOUNT && sm->pub_state == SA_JOB_DONE
        ? sm->account : NULL;
}

/* Copy the URLs a fetch downloads: none when src holds files already. */
static int copy_urls(sa_jobsm *sm, const sa_result *src)
{
    const char **tmp;
    size_t n, i;

    if (sa_result_file_count(src) > 0 || sa_result_format(src) == SA_FORMAT_ZIP)
        return SA_OK;
    n = sa_result_urls(src, NULL, 0);
    if (n == 0) return SA_OK;
    tmp = sa__calloc(sm->mem, n, sizeof *tmp);
    sm->urls = sa__calloc(sm->mem, n, sizeof *sm->urls);
    if (!tmp || !sm->urls) {
        sa__free(sm->mem, tmp);
        return SA_ERR_NOMEM;
    }
    n = sa_result_urls(src, tmp, n);
    for (i = 0; i < n; i++) {
        sm->urls[i] = sa__strdup(sm->mem, tmp[i]);
        if (!sm->urls[i]) break;
        sm->n_urls = i + 1;
    }
    sa__free(sm->mem, tmp);
    return sm->n_urls == n ? SA_OK : SA_ERR_NOMEM;
}

int sa_jobsm_new_fetch(const sa_job_config *cfg, const sa_result *src,
                       int with_files, int64_t now_ms, sa_jobsm **out)
{
    sa_jobsm *sm = NULL;
    int rc;

    if (!out) return SA_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!cfg || !settings_valid(cfg) || !src) return SA_ERR_INVALID_ARGUMENT;
    rc = new_other(cfg, KIND_FETCH, sa_result_task_id(src), now_ms, &sm);
    if (rc != SA_OK) return rc;
    rc = with_files ? sa_result_clone(sm->mem, src, &sm->result)
                    : sa_result_clone_scores(sm->mem, src, &sm->result);
    if (rc == SA_OK) rc = copy_urls(sm, src);
    if (rc != SA_OK) {
        sa_jobsm_free(sm);
        return rc;
    }
    set_fetch_step(sm, SA_STEP_FETCH);
    *out = sm;
    return SA_OK;
}

void sa_jobsm_free(sa_jobsm *sm)
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
    sa_upload_spec_free(mem, &sm->upload);
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

int sa_jobsm_next(sa_jobsm *sm, int64_t now_ms, sa_next *out)
{
    int hops, step;

    if (!sm || !out) return SA_ERR_INVALID_ARGUMENT;
    memset(out, 0, sizeof *out);
    check_deadline(sm, now_ms);
    if (sm->in_flight) {  /* one request at a time: never a second SEND */
        out->kind = SA_NEXT_WAIT;
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
            if (sm->kind == KIND_FETCH) return fetch_next(sm, out);
            return send_step(sm, now_ms, out);
        case SA_JOB_POLL_WAIT:
            if (now_ms < sm->wake_at_ms)
                return wait_until(sm, sm->wake_at_ms, out);
            set_state(sm, SA_JOB_POLLING);
            break;
        case SA_JOB_BACKOFF:
            if (now_ms < sm->wake_at_ms)
                return wait_until(sm, sm->wake_at_ms, out);
            step = sm->step;
            set_state(sm, step_state(sm, step));
            sm->step = step;
            break;
        case SA_JOB_DONE:
        case SA_JOB_FAILED:
        case SA_JOB_CANCELLED:
            out->kind = SA_NEXT_END;
            return SA_OK;
        default:
            finish(sm, SA_JOB_FAILED, SA_ERR_PROTOCOL, "internal error: job "
                   "in state %d", sm->state);
            out->kind = SA_NEXT_END;
            return SA_OK;
        }
    }
    finish(sm, SA_JOB_FAILED, SA_ERR_PROTOCOL, "internal error: job does not "
           "settle in state %s", sa_jobsm_state_name(sm->state));
    out->kind = SA_NEXT_END;
    return SA_OK;
}

/* Returns SA_OK (whatever the answer meant: see the state), SA_ERR_NOMEM
 * (the job is then FAILED with SA_ERR_NOMEM), or SA_ERR_INVALID_ARGUMENT
 * when no request is out (nothing changes). */
int sa_jobsm_on_response(sa_jobsm *sm, int64_t now_ms,
                         const sa_http_response *resp)
{
    int rc;

    if (!sm || !resp || !sm->in_flight) return SA_ERR_INVALID_ARGUMENT;
    sm->in_flight = 0;
    rc = note_answer(sm, resp);
    if (rc != SA_OK) {
        rc = fail_nomem(sm, "x-request-id");
    } else {
        switch (sm->step) {
        case SA_STEP_FILE_CREATE: rc = on_file_create(sm, now_ms, resp); break;
        case SA_STEP_UPLOAD: rc = on_upload(sm, now_ms, resp); break;
        case SA_STEP_TASK_CREATE: rc = on_task_create(sm, now_ms, resp); break;
        case SA_STEP_POLL:
            rc = sm->fetch_phase ? on_refresh(sm, now_ms, resp)
                                 : on_poll(sm, now_ms, resp);
            break;
        case SA_STEP_FETCH: rc = on_fetch(sm, now_ms, resp); break;
        case SA_STEP_ACCOUNT: rc = on_account(sm, now_ms, resp); break;
        default:
            finish(sm, SA_JOB_FAILED, SA_ERR_PROTOCOL, "internal error: "
                   "answer for step %d", sm->step);
            break;
        }
    }
    release_request(sm);
    if (rc == SA_OK) check_deadline(sm, now_ms);
    return rc;
}

int sa_jobsm_cancel(sa_jobsm *sm, int64_t now_ms, int abandon)
{
    if (!sm || is_terminal(sm->state)) return 0;
    if (sm->fetch_phase || sm->kind != KIND_ANALYSIS) {
        /* the task has ended (or is not ours): nothing to poll */
        finish(sm, SA_JOB_CANCELLED, SA_ERR_CANCELLED, "cancelled during %s",
               sm->kind == KIND_FETCH ? "the downloads"
                                      : step_name(sm->step));
        return 0;
    }
    if (abandon) {
        if (sm->task_maybe)
            finish(sm, SA_JOB_CANCELLED, SA_ERR_CANCELLED, "abandoned: task "
                   "%s is no longer polled; it may expire and may still be "
                   "billed", sm->task_id ? sm->task_id : "(id unknown)");
        else
            finish(sm, SA_JOB_CANCELLED, SA_ERR_CANCELLED, "abandoned before "
                   "any task was created: nothing was billed");
        return 0;
    }
    if (sm->pub_state) return 1;  /* already polling in the background */
    if (!sm->task_maybe) {
        finish(sm, SA_JOB_CANCELLED, SA_ERR_CANCELLED, "cancelled during %s, "
               "before any task was created: nothing was billed",
               step_name(sm->step));
        return 0;
    }
    go_background(sm, SA_JOB_CANCELLED, SA_ERR_CANCELLED, "cancelled");
    return 1;
}

/* ------------------------------------------------------------------ */
/* Getters (NULL-safe)                                                 */
/* ------------------------------------------------------------------ */

int sa_jobsm_state(const sa_jobsm *sm)
{
    if (!sm) return SA_ERR_INVALID_ARGUMENT;
    return sm->pub_state ? sm->pub_state : sm->state;
}

int sa_jobsm_status(const sa_jobsm *sm)
{
    if (!sm) return SA_ERR_INVALID_ARGUMENT;
    return sm->pub_state ? sm->pub_status : SA_ERR_NOT_DONE;
}

const char *sa_jobsm_errmsg(const sa_jobsm *sm)
{
    return sm ? sm->errmsg : "";
}

int sa_jobsm_http_status(const sa_jobsm *sm)
{
    return sm ? (int)sm->http_status : 0;
}

const char *sa_jobsm_api_error_code(const sa_jobsm *sm)
{
    return sm ? sm->api_error_code : NULL;
}

const char *sa_jobsm_engine_error(const sa_jobsm *sm)
{
    return sm ? sm->engine_error : NULL;
}

const char *sa_jobsm_task_id(const sa_jobsm *sm)
{
    return sm ? sm->task_id : NULL;
}

const char *sa_jobsm_file_id(const sa_jobsm *sm)
{
    return sm ? sm->file_id : NULL;
}

const char *sa_jobsm_request_id(const sa_jobsm *sm)
{
    return sm ? sm->request_id : NULL;
}

int sa_jobsm_polls(const sa_jobsm *sm)
{
    return sm ? sm->polls : 0;
}

int sa_jobsm_task_maybe_created(const sa_jobsm *sm)
{
    return sm ? sm->task_maybe : 0;
}

/* A fetch that ended FAILED keeps the files that did arrive readable. */
const sa_result *sa_jobsm_result(const sa_jobsm *sm)
{
    if (!sm) return NULL;
    if (sm->pub_state == SA_JOB_DONE) return sm->result;
    if (sm->kind == KIND_FETCH && sm->pub_state == SA_JOB_FAILED)
        return sm->result;
    return NULL;
}

sa_result *sa_jobsm_result_own(sa_jobsm *sm)
{
    return sa_jobsm_result(sm) ? sm->result : NULL;
}

int sa_jobsm_background(const sa_jobsm *sm)
{
    return sm && sm->background && !is_terminal(sm->state);
}

int sa_jobsm_take_notice(sa_jobsm *sm, char *buf, size_t len)
{
    if (!sm || !sm->notice_pending || !buf || len == 0) return 0;
    sm->notice_pending = 0;
    msgf(buf, len, "task %s answers task_status '%s', which the API does "
         "not document: taken as not finished yet; it is polled until it "
         "ends", sm->task_id ? sm->task_id : "?", sm->unknown_status);
    return 1;
}

int sa_jobsm_resumed(const sa_jobsm *sm)
{
    return sm ? sm->resumed : 0;
}

int sa_jobsm_task_outcome(const sa_jobsm *sm, const char **msg)
{
    if (msg) *msg = "";
    if (!sm) return SA_ERR_INVALID_ARGUMENT;
    if (!sm->background) {
        if (msg) *msg = sm->errmsg;
        return sa_jobsm_status(sm);
    }
    if (msg) *msg = sm->bgmsg;
    return sm->bg_status;
}
