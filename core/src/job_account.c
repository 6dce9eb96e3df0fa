/* job_account.c - the account machine: balance, price list pages, task delete. */
#include "job_internal.h"

#include <string.h>

/* An account request: the balance, the next price list page, or the
 * delete of task_id. */
int sa__jsm_build_account(sa__jobsm *sm)
{
    char *path;
    int rc;

    if (!sm->account) return SA_ERR_PROTOCOL;
    if (sa__account_op(sm->account) == SA__ACCOUNT_DELETE) {
        char *body = sa__account_delete_body(sm->mem, sm->task_id);
        if (!body) return SA_ERR_NOMEM;
        return sa__jsm_api_request(sm, SA__HTTP_POST, "/s2s/v2.0/task/delete",
                                   NULL, body, sm->request_timeout_ms);
    }
    path = sa__account_path(sm->account);
    if (!path) return SA_ERR_NOMEM;
    rc = sa__jsm_api_request(sm, SA__HTTP_GET, path, NULL, NULL,
                             sm->request_timeout_ms);
    sa__free(sm->mem, path);
    return rc;
}

static int is_delete(const sa__jobsm *sm)
{
    return sa__account_op(sm->account) == SA__ACCOUNT_DELETE;
}

static const char *account_label(const sa__jobsm *sm)
{
    switch (sa__account_op(sm->account)) {
    case SA__ACCOUNT_CREDIT: return "balance request";
    case SA__ACCOUNT_PRICES: return "price list request";
    default: return "task delete";
    }
}

int sa__jsm_on_account(sa__jobsm *sm, int64_t now_ms,
                       const sa__http_response *resp)
{
    char why[JOB_MSG_LEN], what[JOB_MSG_LEN + 64];
    sa__api_error e;
    int code, more = 0;

    if (resp->transport != SA_OK) {
        /* a delete that was sent may have been carried out */
        if (is_delete(sm) && !resp->not_sent) sm->delete_maybe = 1;
        return sa__jsm_on_transport_failure(sm, now_ms, resp);
    }
    if (sa__jsm_is_2xx(resp)) {
        code = sa__account_feed(sm->account, sa__jsm_resp_body(resp),
                                sa__jsm_resp_len(resp), sm->max_json_depth,
                                &more, why, sizeof why);
        if (code == SA_ERR_NOMEM)
            return sa__jsm_fail_nomem(sm, "account answer");
        if (code == SA_ERR_LIMIT) {
            sa__jsm_finish(sm, SA_JOB_FAILED, code, "%s: %s",
                           account_label(sm), why);
            return SA_OK;
        }
        if (code != SA_OK) {
            /* an unreadable 200 (a proxy, a cut body): reading is safe to
             * repeat; a page loop is not worth repeating */
            sa__jsm_msgf(what, sizeof what, "unreadable HTTP %ld answer (%s)",
                         resp->http_status, why);
            if (strstr(why, "loop"))
                sa__jsm_finish(sm, SA_JOB_FAILED, code, "%s: %s",
                               account_label(sm), what);
            else
                sa__jsm_retry_or_fail(sm, now_ms, code, what);
            return SA_OK;
        }
        sa__jsm_step_succeeded(sm);
        if (more) {
            sa__jsm_set_fetch_step(sm, SA__STEP_ACCOUNT);
            return SA_OK;
        }
        sa__jsm_finish(sm, SA_JOB_DONE, SA_OK, "%s", "");
        return SA_OK;
    }
    code = sa__jsm_classify(sm, resp, &e, why, sizeof why);
    if (code == SA_ERR_NOMEM) {
        sa__api_error_free(sm->mem, &e);
        return sa__jsm_fail_nomem(sm, "account answer");
    }
    /* classify() took the error_code over (sm->api_error_code) */
    if (is_delete(sm) && resp->http_status == 400 && sm->api_error_code
        && strcmp(sm->api_error_code, "InvalidTaskId") == 0) {
        sa__api_error_free(sm->mem, &e);
        if (sm->delete_maybe) {
            /* an earlier attempt reached the server and deleted it */
            sa__jsm_finish(sm, SA_JOB_DONE, SA_OK, "%s", "");
            return SA_OK;
        }
        sa__jsm_finish(sm, SA_JOB_FAILED, SA_ERR_TASK_EXPIRED,
                       "task delete: %s", why);
        return SA_OK;
    }
    sa__api_error_free(sm->mem, &e);
    if (code == SA_ERR_RATE_LIMITED || code == SA_ERR_SERVER
        || code == SA_ERR_TIMEOUT) {
        if (is_delete(sm) && code != SA_ERR_RATE_LIMITED)
            sm->delete_maybe = 1;
        sa__jsm_retry_or_fail(sm, now_ms, code, why);
    } else {
        sa__jsm_finish(sm, SA_JOB_FAILED, code, "%s: %s", account_label(sm),
                       why);
    }
    return SA_OK;
}

int sa__jobsm_new_account(const sa__job_config *cfg, int op,
                         const char *task_id, const char *secret,
                         int64_t now_ms, sa__jobsm **out)
{
    sa__jobsm *sm = NULL;
    int rc;

    if (!out) return SA_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!cfg || !sa__jsm_settings_valid(cfg)
        || (op != SA__ACCOUNT_CREDIT && op != SA__ACCOUNT_PRICES
            && op != SA__ACCOUNT_DELETE)
        || (op == SA__ACCOUNT_DELETE) != (task_id != NULL))
        return SA_ERR_INVALID_ARGUMENT;
    rc = sa__jsm_new_other(cfg, KIND_ACCOUNT, task_id, now_ms, &sm);
    if (rc != SA_OK) return rc;
    rc = sa__account_new(sm->mem, op, secret, &sm->account);
    if (rc != SA_OK) {
        sa__jobsm_free(sm);
        return rc;
    }
    sa__jsm_set_fetch_step(sm, SA__STEP_ACCOUNT);
    *out = sm;
    return SA_OK;
}

const sa__account *sa__jobsm_account(const sa__jobsm *sm)
{
    return sm && sm->kind == KIND_ACCOUNT && sm->pub_state == SA_JOB_DONE
        ? sm->account : NULL;
}
