/* sa_client.h - what the client layer's files share: sa_client, sa_job. */

/*
 * Not installed; every symbol here is hidden.  The client layer is the
 * public sa_client / sa_job API on top of the job state machine (job.c),
 * the scheduler (sched.c) and the transport (engine.c):
 *   client.c   the sa_client handle: creation, drive modes, event hooks
 *   options.c  sa_client_options: defaults and checks
 *   request.c  sa_request: validation before anything is sent; submit
 *   drive.c    the engine side of jobs: lists, lifetime, sending, cancel
 *   publish.c  the caller's side of jobs: outcome, callbacks, sa_job_*
 *   fetch.c    result downloads (sa_client_fetch_masks) and their files
 * Functions shared between them are prefixed sa__ (the library's internal
 * namespace: hidden in the shared library, and out of a static linker's
 * way).
 */
#ifndef SA_CLIENT_H
#define SA_CLIENT_H

#include "sa_internal.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define CLIENT_ERRLEN 512
#define EV_MAX 8            /* progress events buffered per job */
#define SA__STEP_BATCH 16    /* per non-blocking call (see "Bounded steps"
                               in docs/architecture.md) */

#define JOB_OF(l, field) SA__CONTAINER_OF(l, sa_job, field)

/* Job lists.  A job is in exactly one of the client's lists (`where`):
 *   queued   submitted past max_jobs; no state machine yet
 *   active   the engine drives its machine (including background polling
 *            of a task whose caller cancelled it or freed its handle)
 *   idle     the engine is done with it; the caller still holds it
 *   dead     nobody needs it; freed when control returns to the caller
 * and, besides, possibly in one of the scheduler's queues (sched.c: its
 * API request waits for a limiter slot, or its image upload waits while
 * max_uploads uploads are in flight), and in `evq` (it has callbacks to
 * deliver).  One `sq` serves both queues: a job has one request at a time.
 * A detached job outlived its client (sa_client_free) and is in no list. */
enum { J_QUEUED = 1, J_ACTIVE, J_IDLE, J_DEAD, J_DETACHED };
enum { KIND_ANALYSIS = 0, KIND_FETCH, KIND_CHILD, KIND_ACCOUNT };
/* Strings the caller reads (kept until sa_job_free: see publish.c). */
enum {
    K_ERRMSG, K_API_CODE, K_ENGINE, K_TASK, K_FILE, K_REQUEST, K__LAST
};

typedef struct sa__kept {
    struct sa__kept *next;
    char s[];
} sa__kept;

struct sa_job {
    sa__link link;               /* queued / active / idle / dead */
    sa__sched_item sq;           /* in a scheduler queue (sched.c) */
    sa__link ev_link;            /* event queue */
    sa_client *client;          /* NULL once detached */
    sa_mem memv;                /* own copy: the job may outlive its client */
    const sa_mem *mem;
    uint64_t rng;               /* jitter for this job's machine */
    unsigned long seq;          /* "job #N" in log lines */
    int where;
    int kind;                   /* KIND_*: analysis, fetch, child */
    struct sa_job *parent;      /* child: its fetch job (NULL: detached) */
    struct sa__fetch *fetch;     /* fetch: folder, names, memory budget */
    struct sa__dl *dl;           /* child: where its bytes go */
    int n_children;             /* fetch: children running */

    /* the validated request (strings owned); task_id: a resumed task */
    char *file_path, *image_url, *file_id, *file_name, *task_id;
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
    sa__jobsm *sm;
    int64_t deadline_at;
    int64_t wake_at;            /* call sa__jobsm_next again at this time */
    const sa__http_request *parked;  /* waits in a scheduler queue */
    sa__xfer *xfer;              /* in flight */
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
    sa_result *pub_result_own;  /* a copy scrubbed of the key, or NULL */
    const char *last[K__LAST];  /* latest kept copy per field */
    sa__kept *kept;

    /* delete_after (account.c): while the delete runs, `sm` is the delete
     * machine and `del_other` the ended analysis (or fetch) machine */
    int delete_after;
    int del_state;              /* 0 not started, 1 running, 2 ended */
    int del_status;             /* its outcome once ended */
    sa__jobsm *del_other;
    char del_msg[256];          /* scrubbed */
    char del_code[64];          /* its API error_code, scrubbed */
};

struct sa_client {
    sa_mem memv;
    const sa_mem *mem;
    sa_client_options opt;      /* strings below are the owned copies */
    char *api_key;
    char *base_url;
    sa__engine *engine;
    sa__sched sched;             /* limiter and upload queues (sched.c) */
    sa__pollplan plan;           /* poll placement, learned (pollplan.c) */
    uint64_t rng;
    unsigned long next_seq;

    sa__link queued, active, idle, dead, evq;
    int bounded;                /* in a non-blocking call: see "Bounded steps" */
    int due_left;               /* due jobs it may still drive */
    int64_t budget_end;         /* its time budget ends (sa__engine_now_us) */
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

static inline int sa__is_terminal(int state)
{
    return state == SA_JOB_DONE || state == SA_JOB_FAILED ||
           state == SA_JOB_CANCELLED;
}

/* Jobs the caller sees running (children are internal). */
static inline int sa__n_visible(const sa_client *c)
{
    return c->n_active - c->n_child + c->n_queued;
}

/* Active jobs that count against max_jobs. */
static inline int sa__n_running(const sa_client *c)
{
    return c->n_active - c->n_child;
}

/* ------------------------------------------------------------------ */
/* client.c                                                            */
/* ------------------------------------------------------------------ */

/* One log line, redacted (API key, URL query strings), at the level. */
void sa__jlog(sa_client *c, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Set the client's message (redacted) and return status. */
int sa__cfail(sa_client *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Enter / leave a public call (see "Callbacks and reentrancy" in
 * client.c).  sa__leave returns 1 when the client is gone. */
void sa__enter(sa_client *c);
int sa__leave(sa_client *c);

/* ------------------------------------------------------------------ */
/* options.c                                                           */
/* ------------------------------------------------------------------ */

/* The checks of sa_client_new: SA_OK, or an error with a message in err. */
int sa__options_check(const sa_client_options *o, char *err, size_t errlen);
/* The caller's options (its struct_size bytes) over the defaults, into the
 * library's full-size struct; SA_ERR_INVALID_ARGUMENT as sa__struct_in. */
int sa__options_in(sa_client_options *full, const sa_client_options *user,
                   char *err, size_t errlen);

/* ------------------------------------------------------------------ */
/* drive.c                                                             */
/* ------------------------------------------------------------------ */

/* A job of c for req's callback and user data (nothing validated yet),
 * or NULL on NOMEM. */
sa_job *sa__job_alloc(sa_client *c, const sa_request *req);
/* Free a job and everything it holds (its own copy of the allocator: the
 * job may have outlived its client). */
void sa__job_destroy(sa_job *j);
/* Move a job to another list of its client, keeping the counts. */
void sa__set_where(sa_client *c, sa_job *j, int where);
/* Destroy the dead jobs (only at depth 0: no frame holds them). */
void sa__sweep_dead(sa_client *c);
/* Give a validated (or queued) job its state machine and make it active.
 * SA_OK or SA_ERR_NOMEM. */
int sa__start_job(sa_client *c, sa_job *j, int64_t now);
/* Everything that is due at `now` (bounded in a non-blocking call). */
void sa__advance(sa_client *c, int64_t now);
/* The engine's `done` hook: a transfer ended. */
void sa__on_done(void *ctx, void *owner, const sa__http_response *resp);
/* The engine is done with the job: it goes idle (or dead). */
void sa__engine_end(sa_client *c, sa_job *j);
/* The caller gives up on a running job (cancel, callback abort, free). */
void sa__user_cancel(sa_client *c, sa_job *j, int abandon, int status,
                     const char *why);
/* Stop a job's engine side for good (warns when a task is left unpolled). */
void sa__abandon_engine_side(sa_client *c, sa_job *j, const char *who);

/* ------------------------------------------------------------------ */
/* publish.c                                                           */
/* ------------------------------------------------------------------ */

/* A progress event (a non-terminal state the job entered). */
void sa__ev_push(sa_client *c, sa_job *j, int state);
/* Fix what the caller sees, once, and queue the terminal callback. */
void sa__publish(sa_client *c, sa_job *j, int state, int status,
                 const char *msg);
/* Publish the machine's own outcome. */
void sa__publish_sm(sa_client *c, sa_job *j);
/* Deliver every queued event (only from the outermost public call). */
void sa__deliver(sa_client *c);

/* ------------------------------------------------------------------ */
/* account.c (delete_after)                                            */
/* ------------------------------------------------------------------ */

/* j's machine just became terminal: with delete_after and a DONE result,
 * start the delete (j->sm becomes the delete machine; returns 1: do not
 * publish yet); when the delete machine itself ended, record its outcome
 * and give j its machine back (returns 0: publish now).  0 otherwise. */
int sa__delete_after_step(sa_client *c, sa_job *j);
/* A delete in progress is given up (cancel, client going away, out of
 * memory): recorded with status and j's machine given back.  1 when there
 * was one. */
int sa__delete_after_abort(sa_client *c, sa_job *j, int status,
                           const char *why);

/* ------------------------------------------------------------------ */
/* fetch.c                                                             */
/* ------------------------------------------------------------------ */

/* Start downloads of fetch job j while fewer than FETCH_CONCURRENCY run. */
void sa__fetch_pump(sa_client *c, sa_job *j, int64_t now);
/* A child download ended: report it to its fetch job. */
void sa__child_ended(sa_client *c, sa_job *k);
/* The fetch job ended: its children stop (no report). */
void sa__cancel_children(sa_client *c, sa_job *parent);
/* A child's GET is about to be sent: it starts its file or buffer again,
 * and its body goes to them (req->sink).  Nothing for other requests. */
void sa__fetch_attach(sa_job *k, sa__http_request *req);
/* Free what fetch.c keeps in a fetch job or a child (sa__job_destroy). */
void sa__fetch_free(sa_job *j);

/* fetch.c: the job settings of a download, fetch or account machine. */
void sa__fetch_config(const sa_client *c, sa_job *j, int api_version,
                      int64_t deadline_at, sa__job_config *cfg);

#endif /* SA_CLIENT_H */
