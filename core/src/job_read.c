/* job_read.c - what a job machine reads out: its state, outcome and answers (NULL-safe getters). */
/*
 * The client (publish.c, drive.c) reads a machine only through these; each
 * takes NULL and answers as for a machine that has nothing yet.
 */
#include "job_internal.h"

int sa__jobsm_state(const sa__jobsm *sm)
{
    if (!sm) return SA_ERR_INVALID_ARGUMENT;
    return sm->pub_state ? sm->pub_state : sm->state;
}

int sa__jobsm_status(const sa__jobsm *sm)
{
    if (!sm) return SA_ERR_INVALID_ARGUMENT;
    return sm->pub_state ? sm->pub_status : SA_ERR_NOT_DONE;
}

SA__GETTER(const char *, sa__jobsm_errmsg, sa__jobsm, errmsg, "")

int sa__jobsm_http_status(const sa__jobsm *sm)
{
    return sm ? (int)sm->http_status : 0;
}

SA__GETTER(const char *, sa__jobsm_api_error_code, sa__jobsm, api_error_code,
           NULL)
SA__GETTER(const char *, sa__jobsm_engine_error, sa__jobsm, engine_error, NULL)
SA__GETTER(const char *, sa__jobsm_task_id, sa__jobsm, task_id, NULL)
SA__GETTER(const char *, sa__jobsm_file_id, sa__jobsm, file_id, NULL)
SA__GETTER(const char *, sa__jobsm_request_id, sa__jobsm, request_id, NULL)
SA__GETTER(int, sa__jobsm_polls, sa__jobsm, polls, 0)
SA__GETTER(int, sa__jobsm_task_maybe_created, sa__jobsm, task_maybe, 0)

/* A fetch that ended FAILED keeps the files that did arrive readable. */
const sa_result *sa__jobsm_result(const sa__jobsm *sm)
{
    if (!sm) return NULL;
    if (sm->pub_state == SA_JOB_DONE) return sm->result;
    if (sm->kind == KIND_FETCH && sm->pub_state == SA_JOB_FAILED)
        return sm->result;
    return NULL;
}

sa_result *sa__jobsm_result_own(sa__jobsm *sm)
{
    return sa__jobsm_result(sm) ? sm->result : NULL;
}

int sa__jobsm_background(const sa__jobsm *sm)
{
    return sm && sm->background && !sa__jsm_is_terminal(sm->state);
}

int sa__jobsm_take_notice(sa__jobsm *sm, char *buf, size_t len)
{
    if (!sm || !sm->notice_pending || !buf || len == 0) return 0;
    sm->notice_pending = 0;
    sa__jsm_msgf(buf, len, "task %s answers task_status '%s', which the API "
                 "does not document: taken as not finished yet; it is polled "
                 "until it ends", sm->task_id ? sm->task_id : "?",
                 sm->unknown_status);
    return 1;
}

SA__GETTER(int, sa__jobsm_resumed, sa__jobsm, resumed, 0)

int sa__jobsm_task_outcome(const sa__jobsm *sm, const char **msg)
{
    if (msg) *msg = "";
    if (!sm) return SA_ERR_INVALID_ARGUMENT;
    if (!sm->background) {
        if (msg) *msg = sm->errmsg;
        return sa__jobsm_status(sm);
    }
    if (msg) *msg = sm->bgmsg;
    return sm->bg_status;
}
