/* job_internal.h - a job machine's state, shared by job.c, job_*.c. */
/*
 * Not installed; included only by the four job*.c files.  Everything
 * else of the library sees a machine through sa_internal.h (sa_jobsm_*).
 * The functions below are the machine's own steps that one file uses from
 * another (file named after each); sa__ keeps them out of the public
 * namespace.
 */
#ifndef SA_JOB_INTERNAL_H
#define SA_JOB_INTERNAL_H

#include "sa_internal.h"

#define JOB_MSG_LEN 512
#define JOB_MIN_POLL_MS 200  /* floor of a server's polling_interval */
#define JOB_NAME_LEN 256     /* a download's file name */
#define JOB_STEPS (SA__STEP_ACCOUNT + 1)

enum { KIND_ANALYSIS = 0, KIND_DOWNLOAD, KIND_FETCH, KIND_ACCOUNT };

struct sa__jobsm {
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
    char **actions;          /* owned copies ... */
    size_t n_actions;
    cJSON *miniserver_args;
    sa__task_params task;    /* ... which task create sends with these
                                (its source is set when it is sent) */
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
    sa__pollplan *plan;       /* the client's poll planner, or NULL */
    int pp_bucket;           /* its bucket for this task */

    /* The machine. */
    int state;               /* sa_job_state: written only by set_state() */
    int step;                /* sa__step being worked on (BACKOFF returns) */
    int in_flight;           /* a request is out */
    int64_t wake_at_ms;      /* POLL_WAIT / BACKOFF: when to move on */
    int failures;            /* consecutive failures of `step` */
    int refused;             /* refused status answers since the last
                                readable one (on_refused_answer) */
    int64_t last_poll_ms;    /* last poll handed out (or task created) */
    int polls;
    int64_t created_ms;      /* task create answer; -1: none (resumed) */
    int64_t running_ms;      /* poll that last answered running: sent at */
    int64_t poll_sent_ms;    /* the poll out: sent at (sa__jobsm_note_sent) */
    int task_maybe;          /* a task exists or may exist */
    int refreshed_slot;      /* file create redone after an expired URL */
    int resumed;             /* started from a task id (sa_client_resume) */
    int unknown_seen;        /* an unknown task_status was noted ... */
    int notice_pending;      /* ... and waits for sa__jobsm_take_notice */
    int notified;            /* a delivery came while a poll was on its way:
                                if it answers running, poll again soon */
    char unknown_status[64]; /* that status (sa__status_info) */

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
    sa__upload_spec upload;
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

    /* An account machine (job_account.c; account.c reads the answers):
     * what it read, and whether a delete may have reached the server
     * already. */
    sa__account *account;
    int delete_maybe;

    /* The request out: valid until on_response / free. */
    sa__http_request req;
    char *req_url;
    char *req_body;
};

/* job.c: helpers, state and outcome, retries, poll timing, creation */
int sa__jsm_is_terminal(int state);
const char *sa__jsm_step_name(int step);
void sa__jsm_msgf(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int sa__jsm_starts_with_ci(const char *s, const char *prefix);
int sa__jsm_contains_ci(const char *s, const char *needle);
int sa__jsm_replace_str(const sa_mem *mem, char **slot, const char *s);
void sa__jsm_take_str(const sa_mem *mem, char **slot, char **s);
void sa__jsm_set_state(sa__jobsm *sm, int state);
void sa__jsm_set_fetch_step(sa__jobsm *sm, int step);
void sa__jsm_finish(sa__jobsm *sm, int state, int status, const char *fmt,
                    ...) __attribute__((format(printf, 4, 5)));
void sa__jsm_go_background(sa__jobsm *sm, int state, int status,
                           const char *what);
int sa__jsm_fail_nomem(sa__jobsm *sm, const char *what);
void sa__jsm_step_succeeded(sa__jobsm *sm);
void sa__jsm_retry_or_fail(sa__jobsm *sm, int64_t now_ms, int status,
                           const char *why);
void sa__jsm_schedule_poll(sa__jobsm *sm, int64_t now_ms, long interval_ms);
long sa__jsm_first_poll_delay(const sa__jobsm *sm);
long sa__jsm_plan_delay(sa__jobsm *sm, int64_t now_ms, long fixed,
                        long api_min_ms);
int sa__jsm_settings_valid(const sa__job_config *cfg);
void sa__jsm_copy_settings(sa__jobsm *sm, const sa__job_config *cfg);
int sa__jsm_api_request(sa__jobsm *sm, int method, const char *path,
                        const char *id, char *body, long timeout_ms);

/* job_answers.c: the answers to the analysis's requests */
int sa__jsm_note_answer(sa__jobsm *sm, const sa__http_response *resp);
const char *sa__jsm_resp_body(const sa__http_response *resp);
size_t sa__jsm_resp_len(const sa__http_response *resp);
int sa__jsm_is_2xx(const sa__http_response *resp);
int sa__jsm_classify(sa__jobsm *sm, const sa__http_response *resp,
                     sa__api_error *e, char *why, size_t whylen);
int sa__jsm_classify_answer(sa__jobsm *sm, const sa__http_response *resp,
                            const char *what, char *why, size_t whylen);
/* What each sa__jsm_on_* is: it takes the answer to the request of its
 * step at now_ms and moves the machine on (SA_OK or SA_ERR_NOMEM). */
typedef int sa__jsm_answer_fn(sa__jobsm *sm, int64_t now_ms,
                              const sa__http_response *resp);
sa__jsm_answer_fn sa__jsm_on_transport_failure, sa__jsm_on_file_create,
    sa__jsm_on_upload, sa__jsm_on_task_create, sa__jsm_on_poll;

/* job_fetch.c: downloads (a ZIP result, a fetch's URLs) */
sa__jsm_answer_fn sa__jsm_on_fetch, sa__jsm_on_refresh;
int sa__jsm_fetch_next(sa__jobsm *sm, sa__next *out);
int sa__jsm_new_other(const sa__job_config *cfg, int kind, const char *task_id,
                      int64_t now_ms, sa__jobsm **out);

/* job_account.c: an account machine's request and answers */
int sa__jsm_build_account(sa__jobsm *sm);
sa__jsm_answer_fn sa__jsm_on_account;

#endif /* SA_JOB_INTERNAL_H */
