/* job_answers.c - the analysis job: what each answer to its requests means. */
/*
 * The answers half of the machine of job.c: each on_* takes the answer to
 * the request the machine handed out and moves the machine on (see job.c
 * for the states, the two outcomes and the retries).
 *
 * What a hostile or broken server cannot do (issue 12): once the task
 * exists, no answer short of a final one ends the polling.  A failed poll
 * (transport error, timeout or trickled answer, 429, 5xx other than "Task
 * execution timed out", an oversized 200, or one that is cut, garbled, not
 * JSON, nested too deep or without data.task_status) never uses up a
 * budget: the task is polled until it ends, until the caller's deadline
 * (then on in the background, see job.c), or until the client frees the
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
 */
#include "job_internal.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Answers                                                             */
/* ------------------------------------------------------------------ */

/* Remember the HTTP status and x-request-id of the last request's answer:
 * 0 and NULL when no answer arrived (a timeout must not report the status
 * of the step before) or it had no x-request-id.  Frozen once the public
 * outcome is fixed. */
int sa__jsm_note_answer(sa__jobsm *sm, const sa__http_response *resp)
{
    if (sm->pub_state) return SA_OK;
    sm->http_status = resp->transport == SA_OK ? resp->http_status : 0;
    return sa__jsm_replace_str(sm->mem, &sm->request_id, resp->request_id);
}

const char *sa__jsm_resp_body(const sa__http_response *resp)
{
    return resp->body ? resp->body : "";
}

size_t sa__jsm_resp_len(const sa__http_response *resp)
{
    return resp->body ? resp->body_len : 0;
}

int sa__jsm_is_2xx(const sa__http_response *resp)
{
    return resp->http_status >= 200 && resp->http_status <= 299;
}

/* "HTTP 401 InvalidApiKey: This API key is not recognized." + request id */
static void describe_http(const sa__jobsm *sm, long http, const sa__api_error *e,
                          char *buf, size_t len)
{
    sa__jsm_msgf(buf, len, "HTTP %ld%s%s%s%s%s%s", http,
                 e && e->error_code ? " " : "",
                 e && e->error_code ? e->error_code : "",
                 e && e->message ? ": " : "",
                 e && e->message ? e->message : "",
                 sm->request_id ? " x-request-id " : "",
                 sm->request_id ? sm->request_id : "");
}

/* The status of a failed transfer: what the engine reported, or
 * SA_ERR_TRANSPORT for a value that is not a sa_status. */
static int transport_code(const sa__http_response *resp)
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

static void describe_transport(const sa__http_response *resp, char *buf,
                               size_t len)
{
    int code = transport_code(resp);
    const char *sep = resp->transport_msg ? ": " : "";
    const char *detail = resp->transport_msg ? resp->transport_msg : "";

    switch (code) {
    case SA_ERR_TRANSPORT:
        sa__jsm_msgf(buf, len, "transport error%s%s", sep, detail); break;
    case SA_ERR_TIMEOUT:
        sa__jsm_msgf(buf, len, "request timed out%s%s", sep, detail); break;
    case SA_ERR_LIMIT:
        sa__jsm_msgf(buf, len, "answer larger than the limit%s%s", sep,
                     detail); break;
    case SA_ERR_FILE:
        sa__jsm_msgf(buf, len, "cannot read the image file%s%s", sep,
                     detail); break;
    default:
        sa__jsm_msgf(buf, len, "request failed (%s)%s%s", sa_status_name(code),
                     sep, detail);
        break;
    }
}

/* A failed transfer of file create, upload or poll (all safe to retry). */
int sa__jsm_on_transport_failure(sa__jobsm *sm, int64_t now_ms,
                                 const sa__http_response *resp)
{
    char why[JOB_MSG_LEN];
    int code = transport_code(resp);

    describe_transport(resp, why, sizeof why);
    if (code == SA_ERR_NOMEM) return sa__jsm_fail_nomem(sm, "transport");
    if (transport_transient(code))
        sa__jsm_retry_or_fail(sm, now_ms, code, why);
    else
        sa__jsm_finish(sm, SA_JOB_FAILED, code, "%s: %s",
                       sa__jsm_step_name(sm->step), why);
    return SA_OK;
}

/* Classify a non-2xx answer: fills *e (free with sa__api_error_free) and
 * keeps its error_code; returns the status or SA_ERR_NOMEM. */
int sa__jsm_classify(sa__jobsm *sm, const sa__http_response *resp,
                     sa__api_error *e, char *why, size_t whylen)
{
    int code;

    memset(e, 0, sizeof *e);
    code = sa__proto_classify(sm->mem, sm->step, resp->http_status,
                             sa__jsm_resp_body(resp), sa__jsm_resp_len(resp),
                             sm->max_json_depth, e);
    if (code == SA_ERR_NOMEM) return code;
    describe_http(sm, resp->http_status, e, why, whylen);
    if (!sm->pub_state && e->error_code)
        sa__jsm_take_str(sm->mem, &sm->api_error_code, &e->error_code);
    return code;
}

/* sa__jsm_classify for an answer whose error body only makes why: the
 * status, or SA_ERR_NOMEM once the machine failed for lack of memory
 * (reading `what`). */
int sa__jsm_classify_answer(sa__jobsm *sm, const sa__http_response *resp,
                            const char *what, char *why, size_t whylen)
{
    sa__api_error e;
    int code = sa__jsm_classify(sm, resp, &e, why, whylen);

    sa__api_error_free(sm->mem, &e);
    return code == SA_ERR_NOMEM ? sa__jsm_fail_nomem(sm, what) : code;
}

/* The Content-Length a slot asks for, or -1 when absent or not a number. */
static int64_t slot_content_length(const sa__upload_spec *u)
{
    size_t i;
    for (i = 0; i < u->n_headers; i++) {
        const char *h = u->headers[i], *p;
        int64_t v = 0;
        if (!h || !sa__jsm_starts_with_ci(h, "Content-Length:")) continue;
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
static int check_slot(sa__jobsm *sm, const sa__upload_spec *u, char *why,
                      size_t len)
{
    int64_t cl;

    if (u->unusable[0]) {
        sa__jsm_msgf(why, len, "%s", u->unusable);
        return SA_ERR_PROTOCOL;
    }
    if (u->method && (!sa__jsm_starts_with_ci(u->method, "PUT")
                      || u->method[3] != '\0')) {
        sa__jsm_msgf(why, len, "upload method '%s' is not supported (PUT "
                     "expected)", u->method);
        return SA_ERR_PROTOCOL;
    }
    if (!u->url || !sa__url_scheme(u->url)) {
        sa__jsm_msgf(why, len, "the upload slot has no http(s) URL");
        return SA_ERR_PROTOCOL;
    }
    cl = slot_content_length(u);
    if (cl >= 0 && (uint64_t)cl != sm->file_size) {
        sa__jsm_msgf(why, len, "the upload slot expects %lld bytes but the "
                     "image has %llu", (long long)cl,
                     (unsigned long long)sm->file_size);
        return SA_ERR_PROTOCOL;
    }
    return SA_OK;
}

static int on_file_create_ok(sa__jobsm *sm, int64_t now_ms,
                             const sa__http_response *resp)
{
    char why[256] = "", what[320];
    char *file_id = NULL;
    sa__upload_spec up;
    int rc;

    memset(&up, 0, sizeof up);
    rc = sa__proto_parse_file_create(sm->mem, sa__jsm_resp_body(resp),
                                    sa__jsm_resp_len(resp),
                                    sm->max_json_depth, &file_id, &up, why,
                                    sizeof why);
    if (rc != SA_OK) {
        /* an unreadable 200 (a proxy, a truncated body): file create is
         * safe to repeat, like a transport error */
        sa__free(sm->mem, file_id);
        sa__upload_spec_free(sm->mem, &up);
        if (rc == SA_ERR_NOMEM) return sa__jsm_fail_nomem(sm, "file create "
                                                          "answer");
        sa__jsm_msgf(what, sizeof what, "unreadable HTTP %ld answer (%s)",
                     resp->http_status, why);
        sa__jsm_retry_or_fail(sm, now_ms, rc, what);
        return SA_OK;
    }
    rc = check_slot(sm, &up, why, sizeof why);
    if (rc != SA_OK) {
        /* readable, but a slot we cannot use: asking again would get the
         * same kind of slot */
        sa__free(sm->mem, file_id);
        sa__upload_spec_free(sm->mem, &up);
        sa__jsm_finish(sm, SA_JOB_FAILED, rc, "file create: %s", why);
        return SA_OK;
    }
    sa__jsm_take_str(sm->mem, &sm->file_id, &file_id);
    sa__upload_spec_free(sm->mem, &sm->upload);
    sm->upload = up;
    sa__jsm_step_succeeded(sm);
    sa__jsm_set_state(sm, SA_JOB_UPLOAD);
    return SA_OK;
}

int sa__jsm_on_file_create(sa__jobsm *sm, int64_t now_ms,
                           const sa__http_response *resp)
{
    char why[JOB_MSG_LEN];
    int code;

    if (resp->transport != SA_OK)
        return sa__jsm_on_transport_failure(sm, now_ms, resp);
    if (sa__jsm_is_2xx(resp)) return on_file_create_ok(sm, now_ms, resp);

    code = sa__jsm_classify_answer(sm, resp, "file create answer", why,
                                   sizeof why);
    if (code == SA_ERR_NOMEM) return code;
    if (resp->http_status == 404 &&
        sm->upload_path == SA_UPLOAD_SKIN_ANALYSIS) {
        /* API.md section 3: the generic upload path is the newer one (once:
         * the path is then generic) */
        sm->upload_path = SA_UPLOAD_GENERIC;
        sa__jsm_set_state(sm, SA_JOB_FILE_CREATE);
        return SA_OK;
    }
    if (code == SA_ERR_RATE_LIMITED || code == SA_ERR_SERVER)
        sa__jsm_retry_or_fail(sm, now_ms, code, why);
    else
        sa__jsm_finish(sm, SA_JOB_FAILED, code, "file create: %s", why);
    return SA_OK;
}

int sa__jsm_on_upload(sa__jobsm *sm, int64_t now_ms,
                      const sa__http_response *resp)
{
    char why[JOB_MSG_LEN];
    sa__api_error e;
    int code, expired;

    if (resp->transport != SA_OK)
        return sa__jsm_on_transport_failure(sm, now_ms, resp);
    if (sa__jsm_is_2xx(resp)) {
        sa__jsm_step_succeeded(sm);
        sa__jsm_set_state(sm, SA_JOB_TASK_CREATE);
        return SA_OK;
    }
    code = sa__jsm_classify(sm, resp, &e, why, sizeof why);
    expired = resp->http_status == 403 && sa__jsm_contains_ci(e.message,
                                                              "expired");
    sa__api_error_free(sm->mem, &e);
    if (code == SA_ERR_NOMEM) return sa__jsm_fail_nomem(sm, "upload answer");
    if (expired && !sm->refreshed_slot) {
        /* the pre-signed URL expired: ask for a fresh slot, once */
        sm->refreshed_slot = 1;
        sm->failures = 0;
        sa__jsm_set_state(sm, SA_JOB_FILE_CREATE);
        return SA_OK;
    }
    if (resp->http_status == 429 || resp->http_status >= 500)
        sa__jsm_retry_or_fail(sm, now_ms, resp->http_status == 429
                                          ? SA_ERR_RATE_LIMITED
                                          : SA_ERR_SERVER, why);
    else
        sa__jsm_finish(sm, SA_JOB_FAILED, SA_ERR_UPLOAD, "upload: %s", why);
    return SA_OK;
}

/* Task create failed after its request may have reached the server. */
static void ambiguous(sa__jobsm *sm, const char *why)
{
    sa__jsm_finish(sm, SA_JOB_FAILED, SA_ERR_AMBIGUOUS, "task create: %s "
                   "after the request was sent: a task may have been created "
                   "and may be billed; not retried (task create is not "
                   "idempotent)", why);
}

/* Task create was certainly refused: no task.  Retry when allowed, unless
 * the job already ended (then nothing is left to do in the background). */
static void task_refused(sa__jobsm *sm, int64_t now_ms, int code,
                         const char *why, int retry)
{
    sm->task_maybe = 0;
    if (sm->background)
        sa__jsm_finish(sm, SA_JOB_CANCELLED, code, "task create: %s: no task "
                       "was created", why);
    else if (retry)
        sa__jsm_retry_or_fail(sm, now_ms, code, why);
    else
        sa__jsm_finish(sm, SA_JOB_FAILED, code, "task create: %s", why);
}

static int on_task_create_ok(sa__jobsm *sm, int64_t now_ms,
                             const sa__http_response *resp)
{
    char why[256] = "", what[320];
    char *task_id = NULL;
    int rc;

    rc = sa__proto_parse_task_create(sm->mem, sa__jsm_resp_body(resp),
                                    sa__jsm_resp_len(resp),
                                    sm->max_json_depth, &task_id, why,
                                    sizeof why);
    if (rc == SA_ERR_NOMEM) return sa__jsm_fail_nomem(sm, "task create "
                                                      "answer");
    if (rc != SA_OK || !task_id) {
        sa__free(sm->mem, task_id);
        sa__jsm_msgf(what, sizeof what, "unreadable HTTP %ld answer (%s)",
                     resp->http_status, why);
        ambiguous(sm, what);
        return SA_OK;
    }
    sa__jsm_take_str(sm->mem, &sm->task_id, &task_id);
    sa__jsm_step_succeeded(sm);
    sm->last_poll_ms = now_ms;  /* the polling window starts now */
    sm->created_ms = sm->running_ms = now_ms;
    sa__jsm_schedule_poll(sm, now_ms,
                          sa__jsm_plan_delay(sm, now_ms,
                                             sa__jsm_first_poll_delay(sm),
                                             0));
    return SA_OK;
}

int sa__jsm_on_task_create(sa__jobsm *sm, int64_t now_ms,
                           const sa__http_response *resp)
{
    char why[JOB_MSG_LEN];
    int code;

    if (resp->transport != SA_OK) {
        code = transport_code(resp);
        describe_transport(resp, why, sizeof why);
        if (!resp->not_sent) {
            ambiguous(sm, why);
        } else if (code == SA_ERR_NOMEM) {
            sm->task_maybe = 0;
            return sa__jsm_fail_nomem(sm, "transport");
        } else {
            task_refused(sm, now_ms, code, why, transport_transient(code));
        }
        return SA_OK;
    }
    if (sa__jsm_is_2xx(resp)) return on_task_create_ok(sm, now_ms, resp);

    code = sa__jsm_classify_answer(sm, resp, "task create answer", why,
                                   sizeof why);
    if (code == SA_ERR_NOMEM) return code;
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
static int start_zip(sa__jobsm *sm)
{
    if (sa__jsm_replace_str(sm->mem, &sm->fetch_url,
                            sa_result_zip_url(sm->result)))
        return sa__jsm_fail_nomem(sm, "zip URL");
    sm->fetch_phase = 1;
    sm->failures = 0;
    sa__jsm_set_fetch_step(sm, SA__STEP_FETCH);
    return SA_OK;
}

/* A status answer parsed: running, success or error. */
static int on_status(sa__jobsm *sm, int64_t now_ms, sa__status_info *info)
{
    long interval = sm->poll_interval_ms, api_min = 0, delay;
    int notified = sm->notified;

    sm->notified = 0;
    sa__jsm_step_succeeded(sm);
    if (info->task_status == SA__TASK_UNKNOWN) {
        /* not a documented status: not finished yet (logged once) */
        if (!sm->unknown_seen) {
            sa__jsm_msgf(sm->unknown_status, sizeof sm->unknown_status, "%s",
                         info->unknown_status);
            sm->notice_pending = 1;
        }
        sm->unknown_seen = 1;
        info->task_status = SA__TASK_RUNNING;
    }
    if (info->task_status != SA__TASK_RUNNING && sm->plan && !sm->fetch_phase
        && sm->created_ms >= 0)  /* a duration seen: teach the planner */
        sa__pollplan_observe(sm->plan, sm->pp_bucket, sm->created_ms,
                            sm->running_ms, sm->poll_sent_ms);
    switch (info->task_status) {
    case SA__TASK_RUNNING:
        if (info->polling_interval_ms >= 0) {
            interval = info->polling_interval_ms;
            if (interval < JOB_MIN_POLL_MS) interval = JOB_MIN_POLL_MS;
            api_min = interval;
        }
        if (interval > sm->max_poll_interval_ms)
            interval = sm->max_poll_interval_ms;
        if (api_min > interval) api_min = interval;
        if (!sm->fetch_phase) sm->running_ms = sm->poll_sent_ms;
        delay = sa__jsm_plan_delay(sm, now_ms, interval, api_min);
        if (notified) {  /* the delivery said it ended: soon, not planned */
            long soon = api_min > JOB_MIN_POLL_MS ? api_min : JOB_MIN_POLL_MS;
            if (soon < delay) delay = soon;
        }
        sa__jsm_schedule_poll(sm, now_ms, delay);
        return SA_OK;
    case SA__TASK_SUCCESS:
        if (!sm->pub_state) {
            sm->result = info->result;
            info->result = NULL;
            if (needs_zip(sm->result)) return start_zip(sm);
        }
        if (sm->pub_state)
            sa__jsm_finish(sm, SA_JOB_DONE, SA_OK, "task %s succeeded after "
                           "the job ended: it may be billed", sm->task_id);
        else
            sa__jsm_finish(sm, SA_JOB_DONE, SA_OK, "%s", "");
        return SA_OK;
    case SA__TASK_ERROR:
        if (!sm->pub_state)
            sa__jsm_take_str(sm->mem, &sm->engine_error, &info->engine_error);
        sa__jsm_finish(sm, SA_JOB_FAILED, SA_ERR_ENGINE, "task %s ended with "
                       "engine error %s: %s", sm->task_id,
                       info->engine_error ? info->engine_error
                       : sm->engine_error ? sm->engine_error : "(no code)",
                       info->engine_message ? info->engine_message
                                            : "(no message)");
        return SA_OK;
    default:
        sa__jsm_finish(sm, SA_JOB_FAILED, SA_ERR_PROTOCOL, "status poll: "
                       "unknown task status %d", info->task_status);
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
static void on_refused_answer(sa__jobsm *sm, int64_t now_ms, int succeeded,
                              const char *what)
{
    char msg[JOB_MSG_LEN];

    if (sm->refused < INT_MAX) sm->refused++;
    if (sm->refused <= sm->max_retries) {
        sa__jsm_retry_or_fail(sm, now_ms, SA_ERR_PROTOCOL, what);
        return;
    }
    if (succeeded) {
        sa__jsm_finish(sm, SA_JOB_FAILED, SA_ERR_PROTOCOL, "status poll: %s, "
                       "%d times in a row: task %s succeeded (it is billed) "
                       "but its result cannot be used", what, sm->refused,
                       sm->task_id);
        return;
    }
    sa__jsm_retry_or_fail(sm, now_ms, SA_ERR_PROTOCOL, what);
    if (sm->pub_state) return;  /* already in the background */
    sa__jsm_msgf(msg, sizeof msg, "status poll: %s, %d times in a row", what,
                 sm->refused);
    sa__jsm_go_background(sm, SA_JOB_FAILED, SA_ERR_PROTOCOL, msg);
}

static int on_poll_ok(sa__jobsm *sm, int64_t now_ms,
                      const sa__http_response *resp)
{
    char why[256] = "", what[320];
    sa__status_info info;
    int rc;

    memset(&info, 0, sizeof info);
    info.polling_interval_ms = -1;
    if (sm->plan) sa__pollplan_rtt(sm->plan, now_ms - sm->poll_sent_ms);
    rc = sa__proto_parse_status(sm->mem, sa__jsm_resp_body(resp),
                               sa__jsm_resp_len(resp),
                               sm->max_json_depth, sm->task_id, &info, why,
                               sizeof why);
    if (rc == SA_OK) rc = on_status(sm, now_ms, &info);
    else if (rc == SA_ERR_NOMEM) rc = sa__jsm_fail_nomem(sm, "status answer");
    else {
        sa__jsm_msgf(what, sizeof what, "unreadable HTTP %ld answer (%s)",
                     resp->http_status, why);
        if (rc == SA_ERR_PROTOCOL
            && (info.task_status == SA__TASK_SUCCESS
                || sa__json_nul_only(sa__jsm_resp_body(resp),
                                    sa__jsm_resp_len(resp),
                                    sm->max_json_depth)))
            on_refused_answer(sm, now_ms,
                              info.task_status == SA__TASK_SUCCESS, what);
        else  /* a proxy, a cut body, no data or task_status, nested too
               * deep: a failed poll; the task must keep being polled */
            sa__jsm_retry_or_fail(sm, now_ms,
                                  rc == SA_ERR_LIMIT ? rc : SA_ERR_PROTOCOL,
                                  what);
        rc = SA_OK;
    }
    sa__status_info_free(sm->mem, &info);
    return rc;
}

int sa__jsm_on_poll(sa__jobsm *sm, int64_t now_ms, const sa__http_response *resp)
{
    char why[JOB_MSG_LEN];
    int code;

    if (resp->transport == SA_ERR_LIMIT) {
        /* the answer outgrew max_body_bytes: a failed poll, polled again */
        describe_transport(resp, why, sizeof why);
        sa__jsm_retry_or_fail(sm, now_ms, SA_ERR_LIMIT, why);
        return SA_OK;
    }
    if (resp->transport != SA_OK)
        return sa__jsm_on_transport_failure(sm, now_ms, resp);
    if (sa__jsm_is_2xx(resp)) return on_poll_ok(sm, now_ms, resp);

    code = sa__jsm_classify_answer(sm, resp, "status answer", why,
                                   sizeof why);
    if (code == SA_ERR_NOMEM) return code;
    if (code == SA_ERR_RATE_LIMITED || code == SA_ERR_SERVER
        || code == SA_ERR_PROTOCOL)
        sa__jsm_retry_or_fail(sm, now_ms, code, why);
    else
        sa__jsm_finish(sm, SA_JOB_FAILED, code, "status poll: %s (task %s)",
                       why, sm->task_id);
    return SA_OK;
}
