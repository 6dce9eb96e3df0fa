/* job_fetch.c - the download and fetch jobs; an analysis's ZIP download. */
/*
 * Two more kinds of machine share the state of job.c: a download
 * (sa__jobsm_new_download: only the FETCHING step, one result URL) and a
 * fetch (sa__jobsm_new_fetch: the public side of sa_client_fetch, which
 * sends nothing itself; the client runs downloads for it and reports
 * each one).
 *
 * Fetching.  A task that succeeds with a ZIP result (a zip URL, no
 * scores) is not DONE yet: the machine enters FETCHING and GETs the ZIP
 * (api_host 0: never the key, never the limiter; the answer may be up to
 * SA__FETCH_MAX_BODY; per-download timeout upload_timeout_ms), parses it
 * (sa__result_from_zip) and only then ends DONE with the scores and mask
 * files.  A download is retried like a poll (transport, 429, 5xx).  A 403
 * means the pre-signed URL expired (S3 "Request has expired"; any 403 of a
 * result host is taken as that): the machine polls the task once more
 * (SA__STEP_POLL, api_host 1, still FETCHING) for a fresh URL and tries
 * again, once; refused again, it ends FAILED SA_ERR_URL_EXPIRED.  A ZIP
 * that does not parse ends FAILED SA_ERR_ZIP.  The task itself succeeded
 * and is billed: every failure in this phase says so in the message and
 * keeps the task id.  The deadline and cancel end a FETCHING machine at
 * once (nothing is left to poll).
 */
#include "job_internal.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Fetching: result ZIP, masks                                         */
/* ------------------------------------------------------------------ */

/* A downloaded ZIP: parse it into the result (analysis), or keep the
 * bytes (download). */
static int on_fetch_ok(sa__jobsm *sm, const sa__http_response *resp)
{
    char why[256] = "";
    sa_result *r = NULL;
    int rc;

    sa__jsm_step_succeeded(sm);
    if (sm->kind == KIND_DOWNLOAD) {
        sm->dl_data = sa__malloc(sm->mem, sa__jsm_resp_len(resp) + 1);
        if (!sm->dl_data) return sa__jsm_fail_nomem(sm, "download");
        memcpy(sm->dl_data, sa__jsm_resp_body(resp), sa__jsm_resp_len(resp));
        sm->dl_data[sa__jsm_resp_len(resp)] = '\0';
        sm->dl_len = sa__jsm_resp_len(resp);
        sa__jsm_finish(sm, SA_JOB_DONE, SA_OK, "%s", "");
        return SA_OK;
    }
    rc = sa__result_from_zip(sm->mem, sa__jsm_resp_body(resp),
                            sa__jsm_resp_len(resp), 0,
                            sm->max_files_bytes, sm->task_id, &r, why,
                            sizeof why);
    if (rc == SA_ERR_NOMEM) return sa__jsm_fail_nomem(sm, "result ZIP");
    if (rc != SA_OK) {
        sa__jsm_finish(sm, SA_JOB_FAILED,
                       rc == SA_ERR_LIMIT ? SA_ERR_LIMIT : SA_ERR_ZIP,
                       "result ZIP (%zu bytes): %s", sa__jsm_resp_len(resp),
                       why[0] ? why : sa_strerror(rc));
        return SA_OK;
    }
    if (sm->fetch_url && sa__result_set_zip_url(r, sm->fetch_url) != SA_OK) {
        sa_result_free(r);
        return sa__jsm_fail_nomem(sm, "result ZIP URL");
    }
    sa_result_free(sm->result);
    sm->result = r;
    sa__jsm_finish(sm, SA_JOB_DONE, SA_OK, "%s", "");
    return SA_OK;
}

int sa__jsm_on_fetch(sa__jobsm *sm, int64_t now_ms,
                     const sa__http_response *resp)
{
    char why[JOB_MSG_LEN];
    int code;

    if (resp->transport != SA_OK)
        return sa__jsm_on_transport_failure(sm, now_ms, resp);
    if (sa__jsm_is_2xx(resp)) return on_fetch_ok(sm, resp);
    code = sa__jsm_classify_answer(sm, resp, "download answer", why,
                                   sizeof why);
    if (code == SA_ERR_NOMEM) return code;
    if (resp->http_status == 403 && !sm->refreshed_url && sm->task_id) {
        /* an expired pre-signed URL: ask the task for fresh ones, once */
        sm->refreshed_url = 1;
        sm->failures = 0;
        if (!sm->pub_state)
            sa__jsm_msgf(sm->errmsg, sizeof sm->errmsg, "result download: %s; "
                         "asking task %s for a fresh URL", why, sm->task_id);
        sa__jsm_set_fetch_step(sm, SA__STEP_POLL);
    } else if (resp->http_status == 403) {
        sa__jsm_finish(sm, SA_JOB_FAILED, SA_ERR_URL_EXPIRED, "result "
                       "download: %s%s", why,
                       sm->refreshed_url ? " (again, with a fresh URL)"
                                         : "");
    } else if (resp->http_status == 429 || resp->http_status >= 500) {
        sa__jsm_retry_or_fail(sm, now_ms, SA_ERR_DOWNLOAD, why);
    } else {
        sa__jsm_finish(sm, SA_JOB_FAILED, SA_ERR_DOWNLOAD, "result download: "
                       "%s", why);
    }
    return SA_OK;
}

/* The URL of the same file in a fresh status answer, or NULL: the URL at
 * the download's place when it names the same file (several URLs may end
 * in the same name), else the first URL with that name. */
static const char *fresh_url(const sa__jobsm *sm, const sa_result *fresh)
{
    const char *url;
    char name[JOB_NAME_LEN];

    if (!fresh) return NULL;
    if (sm->kind == KIND_ANALYSIS) return sa_result_zip_url(fresh);
    url = sm->dl_index != SIZE_MAX ? sa__result_url_at(fresh, sm->dl_index)
                                   : NULL;
    if (url) {
        sa__url_file_name(url, name, sizeof name);
        if (strcmp(name, sm->dl_name) == 0) return url;
    }
    return sa__result_find_url(fresh, sm->dl_name);
}

/* A parsed status answer to the poll for fresh URLs. */
static int on_refresh_status(sa__jobsm *sm, const sa__status_info *info)
{
    const char *url;

    sa__jsm_step_succeeded(sm);
    if (info->task_status != SA__TASK_SUCCESS) {
        sa__jsm_finish(sm, SA_JOB_FAILED, SA_ERR_URL_EXPIRED, "the result URL "
                       "expired and task %s answers task_status %s, not "
                       "success: no fresh URL", sm->task_id,
                       info->task_status == SA__TASK_RUNNING ? "running"
                       : info->task_status == SA__TASK_ERROR ? "error"
                       : info->unknown_status);
        return SA_OK;
    }
    url = fresh_url(sm, info->result);
    if (!url) {
        sa__jsm_finish(sm, SA_JOB_FAILED, SA_ERR_URL_EXPIRED, "the result URL "
                       "expired and task %s's fresh answer has no URL for %s",
                       sm->task_id,
                       sm->kind == KIND_ANALYSIS ? "the ZIP" : sm->dl_name);
        return SA_OK;
    }
    if (sa__jsm_replace_str(sm->mem, &sm->fetch_url, url))
        return sa__jsm_fail_nomem(sm, "fresh URL");
    sa__jsm_set_fetch_step(sm, SA__STEP_FETCH);
    return SA_OK;
}

/* The answer to the poll for fresh URLs: retried like a poll; a task
 * that cannot be asked any more leaves the URL expired. */
int sa__jsm_on_refresh(sa__jobsm *sm, int64_t now_ms,
                       const sa__http_response *resp)
{
    char why[JOB_MSG_LEN] = "";
    sa__status_info info;
    int rc;

    if (resp->transport != SA_OK)
        return sa__jsm_on_transport_failure(sm, now_ms, resp);
    if (!sa__jsm_is_2xx(resp)) {
        rc = sa__jsm_classify_answer(sm, resp, "status answer", why,
                                     sizeof why);
        if (rc == SA_ERR_NOMEM) return rc;
        if (rc == SA_ERR_RATE_LIMITED || rc == SA_ERR_SERVER
            || rc == SA_ERR_PROTOCOL)
            sa__jsm_retry_or_fail(sm, now_ms, rc, why);
        else
            sa__jsm_finish(sm, SA_JOB_FAILED, SA_ERR_URL_EXPIRED, "the result "
                           "URL expired and the status poll for a fresh one "
                           "failed: %s (task %s)", why, sm->task_id);
        return SA_OK;
    }
    memset(&info, 0, sizeof info);
    info.polling_interval_ms = -1;
    rc = sa__proto_parse_status(sm->mem, sa__jsm_resp_body(resp),
                               sa__jsm_resp_len(resp),
                               sm->max_json_depth, sm->task_id, &info, why,
                               sizeof why);
    if (rc == SA_OK) rc = on_refresh_status(sm, &info);
    else if (rc == SA_ERR_NOMEM) rc = sa__jsm_fail_nomem(sm, "status answer");
    else {
        sa__jsm_retry_or_fail(sm, now_ms, SA_ERR_PROTOCOL, why);
        rc = SA_OK;
    }
    sa__status_info_free(sm->mem, &info);
    return rc;
}

/* A fetch machine: END once every URL was handed out and reported (DONE,
 * or FAILED with the first failure in URL order); else wait for the
 * client's reports. */
int sa__jsm_fetch_next(sa__jobsm *sm, sa__next *out)
{
    if (sm->n_ended >= sm->n_started && sm->n_started == sm->n_urls) {
        if (sm->n_failed == 1)
            sa__jsm_finish(sm, SA_JOB_FAILED, sm->fail_status, "%s",
                           sm->failmsg);
        else if (sm->n_failed > 1)
            sa__jsm_finish(sm, SA_JOB_FAILED, sm->fail_status, "%zu of %zu "
                           "files failed; the first: %s", sm->n_failed,
                           sm->n_urls > sm->n_failed ? sm->n_urls
                                                     : sm->n_failed,
                           sm->failmsg);
        else
            sa__jsm_finish(sm, SA_JOB_DONE, SA_OK, "%s", "");
        out->kind = SA__NEXT_END;
        return SA_OK;
    }
    out->kind = SA__NEXT_WAIT;
    out->wake_at_ms = sm->deadline_at_ms;
    return SA_OK;
}

const char *sa__jobsm_fetch_next(sa__jobsm *sm, size_t *index)
{
    if (!sm || sm->kind != KIND_FETCH || sa__jsm_is_terminal(sm->state)
        || sm->n_started >= sm->n_urls)
        return NULL;
    if (index) *index = sm->n_started;
    return sm->urls[sm->n_started++];
}

/* Record a failure; the one kept is the first in URL order. */
static void fetch_failed(sa__jobsm *sm, size_t index, int status,
                         const char *msg)
{
    sm->n_failed++;
    if (sm->fail_status != SA_OK && index >= sm->fail_index) return;
    sm->fail_index = index;
    sm->fail_status = status < 0 ? status : SA_ERR_DOWNLOAD;
    sa__jsm_msgf(sm->failmsg, sizeof sm->failmsg, "%s", msg ? msg : "");
}

void sa__jobsm_fetch_fail(sa__jobsm *sm, int status, const char *msg)
{
    if (!sm || sm->kind != KIND_FETCH) return;
    fetch_failed(sm, SIZE_MAX, status, msg);
}

void sa__jobsm_fetch_done(sa__jobsm *sm, size_t index, int status,
                         const char *msg)
{
    if (!sm || sm->kind != KIND_FETCH || sm->n_ended >= sm->n_started)
        return;
    sm->n_ended++;
    if (status != SA_OK) fetch_failed(sm, index, status, msg);
}

sa_result *sa__jobsm_fetch_result(sa__jobsm *sm)
{
    return sm && sm->kind == KIND_FETCH ? sm->result : NULL;
}

void sa__jobsm_note_sent(sa__jobsm *sm, int64_t now_ms)
{
    if (sm && sm->in_flight && sm->step == SA__STEP_POLL)
        sm->poll_sent_ms = now_ms;
}

int sa__jobsm_poll_now(sa__jobsm *sm, int64_t now_ms)
{
    if (!sm || sm->kind != KIND_ANALYSIS || sm->fetch_phase) return 0;
    if (sm->state == SA_JOB_POLLING) {
        /* a poll is queued or on its way, maybe sent before the task
         * ended: if it answers running, the next goes at the least gap */
        sm->notified = 1;
        return 1;
    }
    if (sm->state != SA_JOB_POLL_WAIT
        && !(sm->state == SA_JOB_BACKOFF && sm->step == SA__STEP_POLL))
        return 0;
    if (sm->wake_at_ms > now_ms) sm->wake_at_ms = now_ms;
    return 1;
}

const void *sa__jobsm_download_data(const sa__jobsm *sm, size_t *len)
{
    if (len) *len = 0;
    if (!sm || sm->kind != KIND_DOWNLOAD || sm->pub_state != SA_JOB_DONE)
        return NULL;
    if (len) *len = sm->dl_len;
    return sm->dl_data;
}

const char *sa__jobsm_download_name(const sa__jobsm *sm)
{
    return sm ? sm->dl_name : "";
}

void sa__jobsm_download_set_index(sa__jobsm *sm, size_t index)
{
    if (sm && sm->kind == KIND_DOWNLOAD) sm->dl_index = index;
}

/* A machine of another kind than an analysis: settings and base URL. */
static int new_other(const sa__job_config *cfg, int kind, const char *task_id,
                     int64_t now_ms, sa__jobsm **out)
{
    sa__jobsm *sm;
    size_t n;

    sm = sa__calloc(cfg->mem, 1, sizeof *sm);
    if (!sm) return SA_ERR_NOMEM;
    if (cfg->mem) {
        sm->memv = *cfg->mem;
        sm->mem = &sm->memv;
    }
    sm->kind = kind;
    sa__jsm_copy_settings(sm, cfg);
    sm->fetch_phase = 1;
    sm->last_poll_ms = now_ms;
    sm->base_url = sa__strdup(sm->mem, cfg->base_url);
    if (!sm->base_url || sa__jsm_replace_str(sm->mem, &sm->task_id, task_id)) {
        sa__jobsm_free(sm);
        return SA_ERR_NOMEM;
    }
    for (n = strlen(sm->base_url); n > 0 && sm->base_url[n - 1] == '/'; n--)
        sm->base_url[n - 1] = '\0';
    *out = sm;
    return SA_OK;
}

int sa__jsm_new_other(const sa__job_config *cfg, int kind, const char *task_id,
                      int64_t now_ms, sa__jobsm **out)
{
    return new_other(cfg, kind, task_id, now_ms, out);
}

/* Also SA_ERR_INVALID_ARGUMENT for a URL that is not http(s). */
int sa__jobsm_new_download(const sa__job_config *cfg, const char *url,
                          const char *task_id, int64_t now_ms,
                          sa__jobsm **out)
{
    sa__jobsm *sm = NULL;
    int rc;

    if (!out) return SA_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!cfg || !sa__jsm_settings_valid(cfg) || !url || !sa__url_scheme(url))
        return SA_ERR_INVALID_ARGUMENT;
    rc = new_other(cfg, KIND_DOWNLOAD, task_id, now_ms, &sm);
    if (rc != SA_OK) return rc;
    sm->fetch_url = sa__strdup(sm->mem, url);
    if (!sm->fetch_url) {
        sa__jobsm_free(sm);
        return SA_ERR_NOMEM;
    }
    sa__url_file_name(url, sm->dl_name, sizeof sm->dl_name);
    sm->dl_index = SIZE_MAX;
    sa__jsm_set_fetch_step(sm, SA__STEP_FETCH);
    *out = sm;
    return SA_OK;
}

/* Copy the URLs a fetch downloads: none when src holds files already. */
static int copy_urls(sa__jobsm *sm, const sa_result *src)
{
    const char **tmp;
    size_t n, i;

    if (sa_result_file_count(src) > 0 ||
        sa_result_format(src) == SA_FORMAT_ZIP)
        return SA_OK;
    n = sa__result_urls(src, NULL, 0);
    if (n == 0) return SA_OK;
    tmp = sa__calloc(sm->mem, n, sizeof *tmp);
    sm->urls = sa__calloc(sm->mem, n, sizeof *sm->urls);
    if (!tmp || !sm->urls) {
        sa__free(sm->mem, tmp);
        return SA_ERR_NOMEM;
    }
    n = sa__result_urls(src, tmp, n);
    for (i = 0; i < n; i++) {
        sm->urls[i] = sa__strdup(sm->mem, tmp[i]);
        if (!sm->urls[i]) break;
        sm->n_urls = i + 1;
    }
    sa__free(sm->mem, tmp);
    return sm->n_urls == n ? SA_OK : SA_ERR_NOMEM;
}

int sa__jobsm_new_fetch(const sa__job_config *cfg, const sa_result *src,
                       int with_files, int64_t now_ms, sa__jobsm **out)
{
    sa__jobsm *sm = NULL;
    int rc;

    if (!out) return SA_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!cfg || !sa__jsm_settings_valid(cfg) || !src)
        return SA_ERR_INVALID_ARGUMENT;
    rc = new_other(cfg, KIND_FETCH, sa_result_task_id(src), now_ms, &sm);
    if (rc != SA_OK) return rc;
    rc = with_files ? sa__result_clone(sm->mem, src, &sm->result)
                    : sa__result_clone_scores(sm->mem, src, &sm->result);
    if (rc == SA_OK) rc = copy_urls(sm, src);
    if (rc != SA_OK) {
        sa__jobsm_free(sm);
        return rc;
    }
    sa__jsm_set_fetch_step(sm, SA__STEP_FETCH);
    *out = sm;
    return SA_OK;
}
