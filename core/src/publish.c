/* publish.c - what a sa_job's caller sees: outcome, callbacks, sa_job_*. */

/*
 * Two views of a job.  While it runs, the accessors read its state
 * machine.  The first terminal state is published: copied into the job
 * (pub_*) and never changed again, even while the machine goes on polling
 * the task in the background.  Strings handed to the caller are kept until
 * sa_job_free (the `kept` list), as the header promises.
 *
 * Callbacks.  Progress events (the non-terminal states a job enters) and
 * the one terminal callback are queued while the engine works (the
 * client's `evq`) and delivered by sa__deliver from the outermost public
 * call only (see "Callbacks and reentrancy" in client.c), so callbacks
 * never nest and never run inside libcurl.
 */
#include "sa_client.h"

#include <stdio.h>
#include <string.h>

const char *sa_job_state_name(int state)
{
    return sa__jobsm_state_name(state);
}

/* ================================================================== */
/* Strings handed to the caller                                       */
/* ================================================================== */

/* The API key of the job's client: no string handed to the caller may
 * hold it.  A job outlives its client only once published (its strings
 * are kept by then). */
static const char *job_secret(const sa_job *j)
{
    return j->client ? j->client->api_key : NULL;
}

/* A copy of s that lives until the job is freed, scrubbed of the API key
 * (sa__scrub): every string the caller reads from a job (message, codes,
 * ids, x-request-id) comes through here, so none of them can show the key
 * whatever the server echoed.  The same pointer again while the value
 * does not change.  NULL for NULL or out of memory. */
static const char *keep(sa_job *j, int field, const char *s)
{
    const char *secret = job_secret(j);
    sa__kept *k;
    size_t n;

    if (!s) return NULL;
    if (!sa__has_secret(s, secret)) {
        if (j->last[field] && strcmp(j->last[field], s) == 0)
            return j->last[field];
        n = strlen(s);
        k = sa__malloc(j->mem, sizeof *k + n + 1);
        if (!k) return NULL;
        memcpy(k->s, s, n + 1);
    } else {
        n = sa__scrub_len(s, secret);
        k = sa__malloc(j->mem, sizeof *k + n + 1);
        if (!k) return NULL;
        sa__scrub(k->s, s, secret);
        if (j->last[field] && strcmp(j->last[field], k->s) == 0) {
            sa__free(j->mem, k);
            return j->last[field];
        }
    }
    k->next = j->kept;
    j->kept = k;
    j->last[field] = k->s;
    return k->s;
}

/* The result the caller sees: the machine's own, or, when a string of it
 * holds the API key (a concern name, a URL, the raw JSON, a file's name
 * or path...), a scrubbed copy owned by the job.  The copy takes the
 * machine's files over (sa__result_scrub_take): a file's bytes are never
 * held twice, so the result stays within max_files_bytes, and a file
 * written into a folder stays a name and a path.  NULL on NOMEM. */
static const sa_result *visible_result(sa_job *j, sa_result *r)
{
    sa_result *copy = NULL;

    if (sa__result_scrub_take(j->mem, r, job_secret(j), &copy) != SA_OK)
        return NULL;
    if (!copy) return r;
    sa_result_free(j->pub_result_own);
    j->pub_result_own = copy;
    return copy;
}

/* ================================================================== */
/* Publishing and callbacks                                           */
/* ================================================================== */

static void ev_link_job(sa_client *c, sa_job *j)
{
    if (!sa_link_linked(&j->ev_link)) sa_link_append(&c->evq, &j->ev_link);
}

/* A progress event (a non-terminal state the job entered). */
void sa__ev_push(sa_client *c, sa_job *j, int state)
{
    if (!j->cb || j->caller_released || j->published) return;
    if (j->n_ev == EV_MAX) j->ev[EV_MAX - 1] = state;  /* coalesce */
    else j->ev[j->n_ev++] = state;
    ev_link_job(c, j);
}

/* Fix what the caller sees, once: the terminal state and status given,
 * msg (NULL: the machine's message), and the machine's details.  Progress
 * not delivered yet is dropped; the terminal callback is queued. */
void sa__publish(sa_client *c, sa_job *j, int state, int status,
                 const char *msg)
{
    const sa__jobsm *sm = j->sm;

    if (j->published) return;
    j->published = 1;
    j->pub_state = state;
    j->pub_status = status;
    if (sm) {
        j->pub_http = sa__jobsm_http_status(sm);
        j->pub_polls = sa__jobsm_polls(sm);
        j->pub[K_API_CODE] = keep(j, K_API_CODE, sa__jobsm_api_error_code(sm));
        j->pub[K_ENGINE] = keep(j, K_ENGINE, sa__jobsm_engine_error(sm));
        j->pub[K_TASK] = keep(j, K_TASK, sa__jobsm_task_id(sm));
        j->pub[K_FILE] = keep(j, K_FILE, sa__jobsm_file_id(sm));
        j->pub[K_REQUEST] = keep(j, K_REQUEST, sa__jobsm_request_id(sm));
        if (!msg) msg = sa__jobsm_errmsg(sm);
        /* a fetch that ended FAILED keeps the files that did arrive */
        if (state == SA_JOB_DONE || state == SA_JOB_FAILED) {
            sa_result *own = sa__jobsm_result_own(j->sm);
            j->pub_result = visible_result(j, own);
            if (!j->pub_result && own && state == SA_JOB_DONE) {
                j->pub_state = SA_JOB_FAILED;
                j->pub_status = SA_ERR_NOMEM;
                msg = "out of memory copying the result";
            }
        }
    } else if (j->task_id) {
        j->pub[K_TASK] = keep(j, K_TASK, j->task_id);  /* a queued resume */
    }
    j->pub[K_ERRMSG] = keep(j, K_ERRMSG, msg ? msg : "");
    if (!j->pub[K_ERRMSG]) j->pub[K_ERRMSG] = "";
    j->n_ev = 0;  /* progress not yet delivered is moot now */
    if (j->caller_released || !j->cb) return;
    j->term_pending = 1;
    ev_link_job(c, j);
}

/* Publish the machine's own outcome. */
void sa__publish_sm(sa_client *c, sa_job *j)
{
    int st = sa__jobsm_state(j->sm), status = sa__jobsm_status(j->sm);
    if (!sa__is_terminal(st)) {
        st = SA_JOB_FAILED;
        status = SA_ERR_PROTOCOL;
    }
    if (st == SA_JOB_DONE) status = SA_OK;
    else if (status >= 0) status = SA_ERR_PROTOCOL;
    sa__publish(c, j, st, status, NULL);
}

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
            sa__user_cancel(c, j, 0, SA_ERR_CALLBACK, why);
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
void sa__deliver(sa_client *c)
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
/* Jobs: the caller's side                                            */
/* ================================================================== */

void sa_job_free(sa_job *job)
{
    sa_client *c;

    if (!job) return;
    c = job->client;
    if (!c) {
        sa__job_destroy(job);
        return;
    }
    if (job->caller_released) return;
    sa__enter(c);
    job->caller_released = 1;
    job->n_ev = 0;
    job->term_pending = 0;
    if (sa_link_linked(&job->ev_link)) sa_link_remove(&job->ev_link);
    if (job->where == J_ACTIVE) {
        job->quiet_end = job->kind == KIND_ANALYSIS;
        if (!job->published)
            sa__user_cancel(c, job, 0, SA_ERR_CANCELLED,
                            "the caller freed the job");
    } else if (job->where == J_QUEUED || job->where == J_IDLE) {
        sa__set_where(c, job, J_DEAD);
    }
    sa__leave(c);
}

static int job_cancel(sa_job *j, int abandon)
{
    sa_client *c;

    if (!j || j->caller_released) return SA_ERR_INVALID_ARGUMENT;
    c = j->client;
    if (!c || (j->published && !(abandon && j->where == J_ACTIVE)))
        return SA_OK;  /* ended: no effect */
    sa__enter(c);
    if (j->published) sa__abandon_engine_side(c, j, "by the caller");
    else sa__user_cancel(c, j, abandon, SA_ERR_CANCELLED, NULL);
    sa__deliver(c);
    sa__leave(c);
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
    st = sa__jobsm_state(job->sm);
    return sa__is_terminal(st) ? job->last_state : st;
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

/* The machine whose details a running job shows: its own, also while
 * delete_after's delete runs (account.c). */
static const sa__jobsm *view_sm(const sa_job *job)
{
    return job->del_state == 1 ? job->del_other : job->sm;
}

/* A live string of the machine, kept for the caller (see keep()). */
static const char *live_str(const sa_job *job, int field,
                            const char *(*get)(const sa__jobsm *))
{
    sa_job *j = (sa_job *)(uintptr_t)job;  /* the cache is not the state */
    if (!job) return NULL;
    if (job->published) return job->pub[field];
    if (!view_sm(job)) return NULL;
    return keep(j, field, get(view_sm(job)));
}

const char *sa_job_errmsg(const sa_job *job)
{
    const char *s = live_str(job, K_ERRMSG, sa__jobsm_errmsg);
    return s ? s : "";
}

int sa_job_http_status(const sa_job *job)
{
    if (!job) return 0;
    if (job->published) return job->pub_http;
    return view_sm(job) ? sa__jobsm_http_status(view_sm(job)) : 0;
}

const char *sa_job_api_error_code(const sa_job *job)
{
    return live_str(job, K_API_CODE, sa__jobsm_api_error_code);
}

const char *sa_job_engine_error(const sa_job *job)
{
    return live_str(job, K_ENGINE, sa__jobsm_engine_error);
}

const char *sa_job_task_id(const sa_job *job)
{
    sa_job *j = (sa_job *)(uintptr_t)job;  /* the cache is not the state */
    if (job && !job->published && !job->sm && job->task_id)
        return keep(j, K_TASK, job->task_id);  /* a resumed job still queued */
    return live_str(job, K_TASK, sa__jobsm_task_id);
}

const char *sa_job_file_id(const sa_job *job)
{
    return live_str(job, K_FILE, sa__jobsm_file_id);
}

const char *sa_job_request_id(const sa_job *job)
{
    return live_str(job, K_REQUEST, sa__jobsm_request_id);
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
    return view_sm(job) ? sa__jobsm_polls(view_sm(job)) : 0;
}

/* pub_result is set for DONE jobs, and for fetch jobs that ended FAILED
 * (the files that arrived). */
const sa_result *sa_job_result(const sa_job *job)
{
    if (!job || !job->published) return NULL;
    if (job->pub_state != SA_JOB_DONE &&
        !(job->pub_state == SA_JOB_FAILED && job->kind == KIND_FETCH))
        return NULL;
    return job->pub_result;
}
