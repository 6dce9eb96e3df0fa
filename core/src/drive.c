/* drive.c - the engine side of a client's jobs: lifetime, sending, cancel. */

/*
 * A job is in one of the client's lists (see sa_client.h); this file moves
 * it between them, from its start (sa__start_job: a state machine for a
 * validated request) to its end on the engine side (sa__engine_end).  In
 * between, sa__advance drives every job that is due: it asks the job's
 * machine what to do next, sends the request through the engine at once
 * or parks it in the scheduler (sched.c decides when a parked request may
 * go), feeds each answer back (sa__on_done), and after every call into
 * the machine notes a new state for the caller (publish.c).  Cancel and
 * abandon end the engine side early; a task that exists or may exist is
 * polled to its end unless abandoned.
 */
#include "sa_client.h"
#include "budget.h"

#include <stdio.h>
#include <string.h>

#define STUCK_MAX 20        /* state machine out of memory this often: give up */

static void drive_job(sa_client *c, sa_job *j, int64_t now);
static void xfer_gone(sa_client *c, sa_job *j);

/* ================================================================== */
/* Lists and lifetime                                                 */
/* ================================================================== */

static sa__link *list_for(sa_client *c, int where)
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
void sa__set_where(sa_client *c, sa_job *j, int where)
{
    sa__link *to = list_for(c, where);
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

sa_job *sa__job_alloc(sa_client *c, const sa_request *req)
{
    sa_job *j = sa__calloc(c->mem, 1, sizeof *j);
    if (!j) return NULL;
    if (c->mem) {
        j->memv = *c->mem;
        j->mem = &j->memv;
    }
    sa_link_init(&j->link);
    sa__sched_item_init(&j->sq);
    sa_link_init(&j->ev_link);
    j->client = c;
    j->rng = sa__rand(&c->rng) | 1u;
    j->seq = ++c->next_seq;
    j->cb = req->callback;
    j->user_data = req->user_data;
    j->last_state = SA_JOB_VALIDATE;
    return j;
}

void sa__job_destroy(sa_job *j)
{
    sa_mem memv = j->memv;
    const sa_mem *mem = j->mem ? &memv : NULL;

    sa__sched_withdraw(&j->sq);
    if (sa_link_linked(&j->ev_link)) sa_link_remove(&j->ev_link);
    if (sa_link_linked(&j->link)) sa_link_remove(&j->link);
    sa__jobsm_free(j->sm);
    sa__jobsm_free(j->del_other);
    sa_result_free(j->pub_result_own);
    while (j->kept) {
        sa__kept *k = j->kept;
        j->kept = k->next;
        sa__free(mem, k);
    }
    cJSON_Delete(j->msargs);
    sa__fetch_free(j);
    sa__free(mem, j->file_path);
    sa__free(mem, j->image_url);
    sa__free(mem, j->file_id);
    sa__free(mem, j->file_name);
    sa__free(mem, j->task_id);
    sa__free(mem, j);
}

/* Destroy the dead jobs (only at depth 0: no frame holds them). */
void sa__sweep_dead(sa_client *c)
{
    while (!sa_link_empty(&c->dead)) {
        sa_job *j = JOB_OF(c->dead.next, link);
        sa_link_remove(&j->link);
        sa__job_destroy(j);
    }
}

/* ================================================================== */
/* Engine side of a job                                               */
/* ================================================================== */

/* "task <id>" when the machine knows it, else "job #N". */
static const char *job_label(const sa_job *j, char *buf, size_t len)
{
    const char *task = j->sm ? sa__jobsm_task_id(j->sm) : NULL;
    if (task) snprintf(buf, len, "task %s", task);
    else snprintf(buf, len, "job #%lu", j->seq);
    return buf;
}

/* The job needs no more slots under admit_cap (it ended, or its task did
 * and only its result is downloaded): look at the queue again. */
static void unadmit(sa_client *c, sa_job *j)
{
    sa__sched_unadmit(&c->sched, &j->sq, sa__engine_now());
}

/* After every call into the machine: queue a progress event when the
 * state changed, publish when it became terminal.  A machine that goes on
 * after the public outcome (a task to poll to its end) gets its end
 * logged. */
static void note_state(sa_client *c, sa_job *j)
{
    int st;
    if (!j->sm || j->published) return;
    st = sa__jobsm_state(j->sm);
    if (sa__is_terminal(st)) {
        if (sa__delete_after_step(c, j)) return;  /* deleting first */
        sa__publish_sm(c, j);
        if (sa__jobsm_background(j->sm)) j->quiet_end = 1;
        return;
    }
    if (st == SA_JOB_FETCHING) unadmit(c, j);
    if (st != j->last_state) {
        j->last_state = st;
        sa__ev_push(c, j, st);
    }
}

/* Log how a job nobody waits for any more ended (its task may be
 * billed). */
static void log_quiet_end(sa_client *c, sa_job *j)
{
    const char *msg = "";
    char label[160];
    int rc = sa__jobsm_task_outcome(j->sm, &msg);

    job_label(j, label, sizeof label);
    if (!sa__jobsm_task_id(j->sm) && !sa__jobsm_task_maybe_created(j->sm))
        sa__jlog(c, SA_LOG_DEBUG, "%s ended after its caller left: %s", label,
                 msg);
    else if (rc == SA_OK)
        sa__jlog(c, SA_LOG_INFO, "%s, no longer awaited by its caller, "
                 "succeeded in the background: its units are billed", label);
    else
        sa__jlog(c, SA_LOG_WARNING, "%s, no longer awaited by its caller, "
                 "ended in the background: %s: %s", label, sa_status_name(rc),
                 msg);
}

/* The engine is done with the job: drop its request (the machine no
 * longer wants it), tell or log the outcome, move the job to idle (or dead
 * when the caller let go). */
void sa__engine_end(sa_client *c, sa_job *j)
{
    if (j->xfer) {
        sa__engine_abort(c->engine, j->xfer);
        xfer_gone(c, j);
    }
    sa__sched_withdraw(&j->sq);
    j->parked = NULL;
    unadmit(c, j);
    (void)sa__delete_after_abort(c, j, SA_ERR_CANCELLED, "the delete was "
                                 "stopped: the job's engine side ended");
    if (j->kind == KIND_CHILD) sa__child_ended(c, j);
    if (j->kind == KIND_FETCH) sa__cancel_children(c, j);
    if (!j->published) sa__publish_sm(c, j);
    if (j->quiet_end) log_quiet_end(c, j);
    sa__set_where(c, j, j->caller_released ? J_DEAD : J_IDLE);
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
    if (sa__delete_after_abort(c, j, SA_ERR_NOMEM, "out of memory")) {
        sa__engine_end(c, j);  /* the result is published DONE */
        return;
    }
    if (sa__jobsm_task_maybe_created(j->sm))
        sa__jlog(c, SA_LOG_WARNING, "%s abandoned: out of memory; it is no "
                 "longer polled and may still be billed",
                 job_label(j, label, sizeof label));
    sa__publish(c, j, SA_JOB_FAILED, SA_ERR_NOMEM,
                "out of memory driving the job");
    sa__jobsm_cancel(j->sm, now, 1);
    sa__engine_end(c, j);
}

/* Feed a response the engine synthesised (the request was not sent). */
static void feed_not_sent(sa_client *c, sa_job *j, int64_t now, int transport,
                          const char *msg)
{
    sa__http_response r;
    memset(&r, 0, sizeof r);
    r.transport = transport;
    r.not_sent = 1;
    r.transport_msg = msg;
    /* out of memory in there ends the machine FAILED; next() says END */
    (void)sa__jobsm_on_response(j->sm, now, &r);
    note_state(c, j);
}

/* An image upload (the PUT to the storage URL), counted by max_uploads. */
static int is_upload(const sa__http_request *req)
{
    return !req->api_host && req->step == SA__STEP_UPLOAD;
}

/* j's transfer is no longer in flight (ended or aborted). */
static void xfer_gone(sa_client *c, sa_job *j)
{
    j->xfer = NULL;
    if (j->xfer_upload) sa__sched_upload_ended(&c->sched);
    j->xfer_upload = 0;
}

/* Hand a request to the engine.  Returns 1 when it is in flight, 0 when
 * it failed at once (the failure was fed to the machine). */
static int start_xfer(sa_client *c, sa_job *j, const sa__http_request *req,
                      int64_t now)
{
    sa__http_request r = *req;
    sa__xfer *x = NULL;
    int rc;

    /* Task create is billed and not idempotent: never on a reused
     * connection, which libcurl may silently resend on (see engine.c). */
    r.fresh_connection = req->step == SA__STEP_TASK_CREATE;
    sa__fetch_attach(j, &r);  /* a download's body goes to disk or its
                                 buffer (fetch.c) */
    rc = sa__engine_send(c->engine, &r, j, &x);
    if (rc == SA_OK) {
        sa__jobsm_note_sent(j->sm, now);  /* the planner times from here */
        j->xfer = x;
        j->xfer_api = req->api_host;
        j->xfer_upload = is_upload(req);
        if (j->xfer_upload) sa__sched_upload_started(&c->sched);
        j->wake_at = j->deadline_at;
        return 1;
    }
    feed_not_sent(c, j, now, rc, sa__engine_errmsg(c->engine));
    return 0;
}

/* Send now, or (API host, limiter on) wait in the limiter queue, which
 * is looked at again at once: service_limq sends what the scheduler picks;
 * or (an upload past max_uploads, or behind others waiting) wait in the
 * upload queue. */
static int send_or_park(sa_client *c, sa_job *j, const sa__http_request *req,
                        int64_t now)
{
    if (req->api_host && sa__sched_limited(&c->sched)) {
        j->parked = req;
        j->wake_at = j->deadline_at;
        sa__sched_park_api(&c->sched, &j->sq, req->step, now);
        return 1;
    }
    if (is_upload(req) && sa__sched_upload_must_wait(&c->sched)) {
        j->parked = req;
        j->wake_at = j->deadline_at;
        sa__sched_park_upload(&c->sched, &j->sq);
        return 1;
    }
    return start_xfer(c, j, req, now);
}

/* Ask the machine what to do until it has to wait.  Bounded: every SEND
 * either goes out or fails into a BACKOFF. */
static void drive_job(sa_client *c, sa_job *j, int64_t now)
{
    int guard;

    if (j->kind == KIND_FETCH) sa__fetch_pump(c, j, now);
    for (guard = 0; guard < 16; guard++) {
        sa__next nx;
        int rc = sa__jobsm_next(j->sm, now, &nx);
        const sa__jobsm *was = j->sm;
        note_state(c, j);
        if (j->sm != was) continue;  /* delete_after: on with the delete */
        /* out of memory ends the machine (END); anything else is stuck */
        if (rc != SA_OK && nx.kind != SA__NEXT_END) {
            job_stuck(c, j, now);
            return;
        }
        j->stuck = 0;
        if (nx.kind == SA__NEXT_END) {
            sa__engine_end(c, j);
            return;
        }
        if (nx.kind == SA__NEXT_WAIT) {
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
static void start_queued(sa_client *c, int64_t now)
{
    while (!sa_link_empty(&c->queued) &&
           (c->opt.max_jobs <= 0 || sa__n_running(c) < c->opt.max_jobs)) {
        sa_job *j = JOB_OF(c->queued.next, link);
        if (sa__start_job(c, j, now) != SA_OK) {
            sa__publish(c, j, SA_JOB_FAILED, SA_ERR_NOMEM,
                        "out of memory starting the job");
            sa__set_where(c, j, j->caller_released ? J_DEAD : J_IDLE);
        }
    }
}

/* A job's request the scheduler let go: send it (a request that fails at
 * once goes back to its machine, which may ask again). */
static void send_parked(sa_client *c, sa_job *j, int64_t now)
{
    const sa__http_request *req = j->parked;

    j->parked = NULL;
    if (!start_xfer(c, j, req, now)) drive_job(c, j, now);
}

/* Send what the limiter queue lets go now (sched.c decides); the guard:
 * a request that fails at once may queue again. */
static void service_limq(sa_client *c, int64_t now)
{
    long guard;

    for (guard = 0; guard < 100000L; guard++) {
        sa__sched_item *it = sa__sched_next_api(&c->sched, now);
        if (!it) return;
        send_parked(c, JOB_OF(it, sq), now);
    }
    sa__sched_recheck(&c->sched, now + 1);
}

/* Start waiting uploads, oldest first, while max_uploads allows.  An
 * upload that fails at once may queue again (at the end): the guard. */
static void service_upq(sa_client *c, int64_t now)
{
    long guard;

    for (guard = 0; guard < 100000L; guard++) {
        sa__sched_item *it = sa__sched_next_upload(&c->sched);
        if (!it) return;
        send_parked(c, JOB_OF(it, sq), now);
    }
}

/* Everything that is due at `now` (in a bounded call, at most due_left
 * jobs are driven; the others stay due). */
void sa__advance(sa_client *c, int64_t now)
{
    sa__link *l, *next;
    long restarts = 0;
    const char *note = sa__budget_pump(c->sched.budget, now);  /* redis */

    if (note) sa__jlog(c, SA_LOG_WARNING, "%s", note);
    start_queued(c, now);
    service_upq(c, now);
    service_limq(c, now);
    for (l = c->active.next; l != &c->active; l = next) {
        sa_job *j = JOB_OF(l, link);
        next = l->next;
        if (j->wake_at > now) continue;
        if (c->bounded &&
            (c->due_left-- <= 0 ||
             (c->due_left < SA__STEP_BATCH - 1 && c->budget_end > 0 &&
              sa__engine_now_us() >= c->budget_end)))
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
void sa__on_done(void *ctx, void *owner, const sa__http_response *resp)
{
    sa_client *c = ctx;
    sa_job *j = owner;
    int64_t now = sa__engine_now();
    char label[160], notice[640];

    xfer_gone(c, j);
    if (c->bounded && ++c->done_now > c->peak_done)
        c->peak_done = c->done_now;
    if (resp->transport == SA_OK && resp->http_status == 429 && j->xfer_api)
        sa__sched_penalize(&c->sched, now);
    c->plan.load = sa__sched_load(&c->sched, now);  /* prices its polls */
    (void)sa__jobsm_on_response(j->sm, now, resp);  /* NOMEM: ends FAILED */
    note_state(c, j);
    if (sa__jobsm_take_notice(j->sm, notice, sizeof notice))
        sa__jlog(c, SA_LOG_WARNING, "%s", notice);
    if (sa__jobsm_state(j->sm) == SA_JOB_BACKOFF)
        sa__jlog(c, SA_LOG_INFO, "%s: %s", job_label(j, label, sizeof label),
                 sa__jobsm_errmsg(j->sm));
    drive_job(c, j, now);
}

/* ================================================================== */
/* Cancel and abandon                                                 */
/* ================================================================== */

/* The caller gives up on a running job.  The machine decides whether a
 * task must still be polled (cancel returns 1).  A task create that never
 * left the limiter queue is withdrawn (no task can exist), so cancelling
 * never sends a billed request. */
void sa__user_cancel(sa_client *c, sa_job *j, int abandon, int status,
                     const char *why)
{
    int64_t now = sa__engine_now();
    char label[160], msg[768];
    int keep_polling;

    if (j->where == J_QUEUED) {
        sa__publish(c, j, SA_JOB_CANCELLED, status, why ? why
                    : "cancelled before it started: nothing was sent");
        sa__set_where(c, j, j->caller_released ? J_DEAD : J_IDLE);
        return;
    }
    if (j->where != J_ACTIVE) return;
    if (j->del_state == 1 && j->caller_released) {
        j->quiet_end = 0;
        return;  /* a freed handle: the delete goes on, then the job ends */
    }
    if (sa__delete_after_abort(c, j, status, why ? why : "cancelled")) {
        /* the analysis succeeded: its result stands, only the delete
         * stops */
        sa__engine_end(c, j);
        return;
    }
    if (j->parked && j->parked->step == SA__STEP_TASK_CREATE) {
        sa__sched_withdraw(&j->sq);
        j->parked = NULL;
        abandon = 1;
        if (!why) why = "cancelled before the task create request was sent: "
                        "nothing was billed";
    } else if (abandon && sa__jobsm_task_maybe_created(j->sm)) {
        sa__jlog(c, SA_LOG_WARNING, "%s abandoned: it is no longer polled and "
                 "may still be billed", job_label(j, label, sizeof label));
    }
    keep_polling = sa__jobsm_cancel(j->sm, now, abandon);
    if (why) {
        snprintf(msg, sizeof msg, "%s%s%s", why, keep_polling ? "; " : "",
                 keep_polling ? sa__jobsm_errmsg(j->sm) : "");
        sa__publish(c, j, SA_JOB_CANCELLED, status, msg);
    } else {
        sa__publish(c, j, SA_JOB_CANCELLED, status, NULL);
    }
    if (keep_polling) {
        j->quiet_end = 1;
        sa__jlog(c, SA_LOG_INFO, "%s cancelled: still polled until it ends",
                 job_label(j, label, sizeof label));
        j->wake_at = now;
        return;
    }
    sa__engine_end(c, j);
}

/* Stop a job's engine side for good (client going away, or an abandon of
 * a job already published).  Warns when a task is left unpolled. */
void sa__abandon_engine_side(sa_client *c, sa_job *j, const char *who)
{
    char label[160];
    int64_t now = sa__engine_now();

    if (j->where != J_ACTIVE) return;
    if (sa__jobsm_task_maybe_created(j->sm))
        sa__jlog(c, SA_LOG_WARNING, "%s abandoned (%s): it is no longer "
                 "polled and may still be billed",
                 job_label(j, label, sizeof label), who);
    (void)sa__jobsm_cancel(j->sm, now, 1);
    j->quiet_end = 0;
    sa__engine_end(c, j);
}

/* ================================================================== */
/* Starting jobs                                                      */
/* ================================================================== */

int sa__start_job(sa_client *c, sa_job *j, int64_t now)
{
    sa__job_config cfg;
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
    cfg.task_id = j->task_id;
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
    cfg.max_files_bytes = c->opt.max_files_bytes;   /* ZIP results */
    cfg.low_speed_limit = c->opt.low_speed_limit;
    cfg.low_speed_time_ms = c->opt.low_speed_time_ms;
    cfg.plan = &c->plan;
    rc = sa__jobsm_new(&cfg, now, &j->sm);
    if (rc != SA_OK) return rc;
    j->deadline_at = cfg.deadline_at_ms;
    j->wake_at = now;
    /* a resumed task needs polls from its first one on (sched.c) */
    j->sq.poll_admits = j->task_id != NULL;
    st = sa__jobsm_state(j->sm);
    if (was_queued) sa__ev_push(c, j, st);
    j->last_state = st;
    sa__set_where(c, j, J_ACTIVE);
    return SA_OK;
}
