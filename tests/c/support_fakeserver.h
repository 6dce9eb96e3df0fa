/*
 * support_fakeserver.h - scripted answers, fake time and a counting
 * allocator for the tests of the job state machine (tests/c/test_job.c,
 * tests/c/test_failmalloc_job.c).  Linked into every C test; no main().
 */
#ifndef SA_SUPPORT_FAKESERVER_H
#define SA_SUPPORT_FAKESERVER_H

#include "sa_internal.h"

#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------ */
/* Counting allocator (a sa_mem)                                       */
/* ------------------------------------------------------------------ */

typedef struct fs_mem {
    long calls;      /* allocation calls (malloc, realloc) so far */
    long live;       /* blocks not freed yet */
    long fail_at;    /* 0: never fail; N: the N-th call fails ... */
    int fail_after;  /* ... and, when set, every call after it too */
    long failed;     /* calls that failed */
    sa_mem mem;      /* pass &m.mem as cfg->mem */
} fs_mem;

void fs_mem_init(fs_mem *m, long fail_at, int fail_after);

/* ------------------------------------------------------------------ */
/* Scripted answers                                                    */
/* ------------------------------------------------------------------ */

#define FS_ANY_STEP (-1)
#define FS_TIMEOUT (-1)   /* latency_ms: the request's own timeout_ms */

typedef struct fs_reply {
    int step;                /* the sa__step expected, or FS_ANY_STEP */
    long http;               /* HTTP status when transport == SA_OK */
    const char *body;        /* literal body ... */
    const char *example;     /* ... or a file of SA_EXAMPLES */
    long latency_ms;         /* answer time after the send (FS_TIMEOUT) */
    int transport;           /* SA_OK, SA_ERR_TRANSPORT, SA_ERR_TIMEOUT... */
    int not_sent;            /* 1: nothing reached the server */
    const char *request_id;  /* x-request-id, or NULL */
} fs_reply;

/* One request the machine handed out (copied). */
typedef struct fs_event {
    int64_t sent_at;
    int64_t answered_at;     /* -1: dropped or never answered */
    int step;
    int method;
    int api_host;
    char url[512];
    size_t n_headers;
    char headers[8][160];
    char body[1024];
    long timeout_ms;
    const char *upload_file;
    const void *upload_buf;
    uint64_t upload_size;
} fs_event;

#define FS_MAX_EVENTS 256
#define FS_MAX_TRACE 256

typedef struct fs_run {
    int64_t now;             /* the fake clock */
    int stop_state;          /* stop when the job is in this state, or -1 */
    int pending;             /* a request is out (its answer is next) */
    int ended;               /* sa__jobsm_next answered END */
    int abandoned;           /* END came while a request was out */
    int stopped;             /* stopped: stop_state reached / script out */
    int last_rc;             /* last non-SA_OK return of the machine */
    int errors;              /* protocol violations seen by the driver */
    char error[256];         /* the first of them */
    size_t n_events;         /* requests sent (may exceed the array) */
    fs_event ev[FS_MAX_EVENTS];
    int64_t poll_ref;        /* last poll sent (or task created), or -1 */
    int64_t max_poll_gap;    /* longest time a known task went unpolled */
    int64_t last_wait;       /* last wake_at_ms answered */
    size_t n_trace;          /* the states the job went through, in order */
    int trace[FS_MAX_TRACE]; /* (sa__jobsm_state after every call) */
} fs_run;

void fs_run_init(fs_run *run, int64_t now);

/* The answers of a job that goes well, for the job suites' scripts (the
 * spec's example bodies; rid: the answer's x-request-id, may be NULL). */
#define FS_FILE_OK(rid) { .step = SA__STEP_FILE_CREATE, .http = 200, \
                          .example = "file-create-response.json", \
                          .latency_ms = 80, .request_id = (rid) }
#define FS_UPLOAD_OK { .step = SA__STEP_UPLOAD, .http = 200, .body = "", \
                       .latency_ms = 400 }
#define FS_TASK_OK(ms, rid) { .step = SA__STEP_TASK_CREATE, .http = 200, \
                              .example = "task-create-response.json", \
                              .latency_ms = (ms), .request_id = (rid) }
#define FS_RUNNING(rid) { .step = SA__STEP_POLL, .http = 200, \
                          .example = "task-status-running.json", \
                          .latency_ms = 60, .request_id = (rid) }
#define FS_SUCCESS(file, rid) { .step = SA__STEP_POLL, .http = 200, \
                                .example = (file), .latency_ms = 70, \
                                .request_id = (rid) }

/* The settings the state-machine suites start a job from (all else zero):
 * m's allocator, base_url, API v2.1 on the skin-analysis upload path, the
 * client's default timeouts, pacing and retries (requests 30 s, uploads
 * 120 s, polls every 2 s to 10 s, a deadline 600 s after now, 6 retries
 * backing off 500 ms to 16 s), JSON nesting 64 deep, and rng. */
void fs_job_config(sa__job_config *c, fs_mem *m, uint64_t *rng,
                   const char *base_url, int64_t now);

/* Drive sm with the script until END, the script runs out (a request may
 * stay out: run->pending), or the job reaches run->stop_state.  Checks on
 * the way (counted in run->errors): never a second SEND while a request is
 * out, WAIT times that move forward, the step of each request as scripted.
 * Returns the number of replies used. */
size_t fs_drive(fs_run *run, sa__jobsm *sm, const fs_reply *script,
                size_t n);

/* Record sa__jobsm_state(sm) in the trace when it changed. */
void fs_note_state(fs_run *run, const sa__jobsm *sm);
/* 1 when the trace is exactly states[0..n). */
int fs_trace_is(const fs_run *run, const int *states, size_t n);
/* 1 when states[0..n) occur in the trace in this order (not necessarily
 * next to each other). */
int fs_trace_has(const fs_run *run, const int *states, size_t n);

/* The number of events of a step. */
size_t fs_count(const fs_run *run, int step);

/* Read SA_EXAMPLES/<name> into a malloc'd string (free()); NULL if absent. */
char *fs_example(const char *name, size_t *len);

#endif
