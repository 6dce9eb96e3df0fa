/* sa_sched.h - the rate limiter's and the scheduler's interface (limiter.c, sched.c).
 *
 * Part of sa_internal.h, which includes it where their sections would be:
 * include sa_internal.h, not this file.  Pure: time is an input.
 * Every symbol here is hidden (not SA_API).
 */
#ifndef SA_SCHED_H
#define SA_SCHED_H

/* ================================================================== */
/* limiter.c (pure; time is an input)                                  */
/* ================================================================== */

/* The limiter is a set of sliding windows, all enforced: "at most `max`
 * sends in any `span_ms`" each (see limiter.c for the exact model). */
#define SA__LIMITER_GUARD_MS 20   /* added to every window the server keeps */
#define SA__LIMITER_WINDOWS 3     /* rate, burst, long window */

typedef struct sa__limiter_window {
    int max;              /* at most max sends ... */
    int64_t span_ms;      /* ... in any half-open span_ms */
    int64_t *ring;        /* the last max send times, oldest at head */
    int head;
    int count;
} sa__limiter_window;

typedef struct sa__limiter {
    int enabled;
    sa__limiter_window win[SA__LIMITER_WINDOWS];
    int n_win;
    int long_win;         /* index of the long window, -1 when none */
    int64_t last_ms;      /* latest time seen (time never goes back) */
    int64_t blocked_until;/* penalty: no send before this */
    const sa_mem *mem;
} sa__limiter;

/* rate: at most max(1, floor(rate)) sends in any max(1000, ceil(1000 /
 * rate)) ms, plus SA__LIMITER_GUARD_MS; burst: when below that count, at
 * most burst sends in any ceil(burst * 1000 / rate) ms (client-side
 * smoothing, no guard); window_max sends in any window_ms plus the guard
 * (either 0: no long window).  Returns SA_OK, SA_ERR_INVALID_ARGUMENT or
 * SA_ERR_NOMEM; sa__limiter_free is safe after a failure. */
/* The free room of a sliding window kept as a ring of send times (count
 * of them from head, capacity max, in send order: time never goes back):
 * max minus the sends less than span_ms before now, found by binary search
 * (they are a suffix of the ring); *next_free (if not NULL) gets the time
 * the oldest of them leaves the window.  Shared by the limiter and the
 * shared budget (budget.c). */
int sa__ring_room(const int64_t *ring, int head, int max, int count,
                  int64_t span_ms, int64_t now, int64_t *next_free);
int sa__limiter_init(sa__limiter *l, const sa_mem *mem, int enabled,
                    double rate, int burst, int window_max,
                    int64_t window_ms);
void sa__limiter_free(sa__limiter *l);
/* Take one send slot at now_ms: returns 1 and records the send, or 0 and
 * writes the earliest time a slot will be free to *ready_at_ms. */
int sa__limiter_acquire(sa__limiter *l, int64_t now_ms, int64_t *ready_at_ms);
/* The same answer without recording a send. */
int sa__limiter_check(sa__limiter *l, int64_t now_ms, int64_t *ready_at_ms);
/* Push the limiter back after a 429 (the server saw more than we did):
 * no send before now_ms + pause_ms. */
void sa__limiter_penalize(sa__limiter *l, int64_t now_ms, int64_t pause_ms);
/* The long window's budget at now_ms: its free slots (INT_MAX when the
 * limiter is off or has no long window), and in *next_free_ms the time
 * the oldest send in it ages out (INT64_MAX when none is in it).  Read
 * only: nothing is recorded. */
int sa__limiter_room(const sa__limiter *l, int64_t now_ms,
                    int64_t *next_free_ms);

/* ================================================================== */
/* sched.c (pure; time is an input): which waiting request goes next   */
/* ================================================================== */

/* A job's place in the scheduler (embedded in the job).  A job has at most
 * one request waiting, in at most one of the two queues. */
typedef struct sa__sched_item {
    sa__link link;            /* in the limiter queue or the upload queue */
    int step;                /* sa__step of the request waiting */
    int admitted;            /* its first API request was sent */
    int poll_admits;         /* a resumed job: its first poll admits it */
    unsigned long seq;       /* arrival order in the limiter queue */
    int64_t poll_anchor;     /* when its last poll or task create was sent */
} sa__sched_item;

typedef struct sa__sched {
    sa__limiter lim;          /* every API-host request (limiter.c) */
    sa__link limq;            /* API requests waiting for a limiter slot */
    sa__link upq;             /* uploads waiting under max_uploads (FIFO) */
    long max_poll_interval_ms;
    long penalty_ms;         /* no API request this long after a 429 */
    int max_uploads;         /* 0: no cap */
    int n_uploads;           /* uploads in flight */
    int peak_uploads;        /* most of them at once */
    int n_admitted;          /* jobs past their first request, not ended */
    int admit_cap;           /* most admitted jobs; 0: no cap */
    int64_t reserve_max;     /* most long-window slots kept for polls */
    unsigned long seq;
    int64_t lim_ready;       /* look at limq again at; -1: no need */
    struct sa__budget *budget;/* shared budget (budget.c); NULL: none */
    int n_admitted_all;      /* admitted jobs across the budget's scope */
} sa__sched;

/* Set up from the client's options (rate_limit and rate_*,
 * max_poll_interval_ms, max_uploads, backoff_initial_ms), which must have
 * passed the client's checks.  Returns what sa__limiter_init returns;
 * sa__sched_free is safe after a failure, and on a zeroed sa__sched. */
int sa__sched_init(sa__sched *s, const sa_mem *mem, const sa_client_options *o);
void sa__sched_free(sa__sched *s);
void sa__sched_item_init(sa__sched_item *it);

/* 1 when API-host requests wait in the limiter queue (the limiter is on);
 * 0: they go at once. */
int sa__sched_limited(const sa__sched *s);
/* Queue an API-host request of `step` (sa__step); the queue is looked at
 * again at now. */
void sa__sched_park_api(sa__sched *s, sa__sched_item *it, int step,
                       int64_t now);
/* The best eligible waiting API request, when the limiter has a slot at
 * now: taken out of the queue, the send recorded by the limiter, the job
 * admitted (a first request that is not a poll, or the first poll of an
 * item with poll_admits: a resumed task) and its poll anchor set (a poll
 * or a task create).  NULL when none may go now: then
 * sa__sched_ready_at says when to look again. */
sa__sched_item *sa__sched_next_api(sa__sched *s, int64_t now);
/* Look at the limiter queue again at `at` (a caller that stopped early). */
void sa__sched_recheck(sa__sched *s, int64_t at);

/* 1 when an upload may not start now: max_uploads are in flight, or
 * others already wait (first come, first served). */
int sa__sched_upload_must_wait(const sa__sched *s);
void sa__sched_park_upload(sa__sched *s, sa__sched_item *it);
/* The oldest waiting upload when one may start now (taken out of the
 * queue), else NULL. */
sa__sched_item *sa__sched_next_upload(sa__sched *s);
/* An upload went out / is no longer in flight. */
void sa__sched_upload_started(sa__sched *s);
void sa__sched_upload_ended(sa__sched *s);

/* 1 while the item waits in a queue. */
int sa__sched_waiting(const sa__sched_item *it);
/* Take the item out of the queue it waits in (none: nothing happens). */
void sa__sched_withdraw(sa__sched_item *it);
/* The job needs no more slots under the admission cap (it ended, or only
 * its result is downloaded): waiting first requests look again at now. */
void sa__sched_unadmit(sa__sched *s, sa__sched_item *it, int64_t now);
/* The API answered 429 (it counted more than the limiter did): no API
 * request before now + penalty_ms (max(1 s, backoff_initial_ms)). */
void sa__sched_penalize(sa__sched *s, int64_t now);
/* The next time something waiting may go: the limiter queue's next look,
 * or now for an upload with room; -1 when nothing waits. */
int64_t sa__sched_ready_at(const sa__sched *s, int64_t now);

/* sched.c: how much the rate budget binds, 0 (room) .. 1 (bound): the
 * long window's use (the shared one under rate_limit_scope "host") and
 * whether new work waits for it (read only). */
double sa__sched_load(const sa__sched *s, int64_t now);

#endif /* SA_SCHED_H */
