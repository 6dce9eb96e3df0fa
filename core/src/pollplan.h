/* pollplan.h - the poll planner's interface: when a running task is polled (pollplan.c).
 *
 * Part of sa_internal.h, which includes it where the planner's section
 * would be: include sa_internal.h, not this file.  Pure: time is an input.
 * Every symbol here is hidden (not SA_API).
 */
#ifndef SA_POLLPLAN_H
#define SA_POLLPLAN_H


#define SA__PP_BUCKETS 8      /* tier (SD/HD) x 4 action-count classes */
#define SA__PP_SAMPLES 64     /* observations kept per bucket (newest) */
#define SA__PP_RTTS 16        /* poll round trips kept */
#define SA__PP_MIN_SAMPLES 4  /* fewer: the planner is cold (fixed polls) */
#define SA__PP_EM_ROUNDS 25   /* rounds of the fit per observation */

/* One observed task: it ended (server time since its creation) somewhere
 * in [lo_ms, hi_ms] (censored: seen running at lo, final at hi). */
typedef struct sa__pp_obs { int32_t lo_ms, hi_ms; } sa__pp_obs;

#define SA__PP_BINS 128       /* the fitted distribution's grid */

typedef struct sa__pp_bucket {
    sa__pp_obs obs[SA__PP_SAMPLES];
    int n, head;             /* ring: n kept, next slot to write */
    /* The durations' distribution fitted to obs (pollplan.c: Turnbull's
     * self-consistent estimate on a grid): mass per bin of bin_ms. */
    float pmf[SA__PP_BINS];
    int32_t bin_ms;
    /* the observations' extent: the shortest duration they allow and the
     * longest interval end (before the grid's extension past both) */
    int32_t low_ms, top_ms;
} sa__pp_bucket;

typedef struct sa__pollplan {  /* one per client */
    int strategy;            /* SA_POLL_LEARNED / SA_POLL_FIXED */
    int webhooks;            /* deliveries arrive: insurance polls only */
    long poll_interval_ms;
    long max_poll_interval_ms;
    double load;             /* 0 (room) .. 1 (the budget binds): from
                                sa__sched_load, set by the client */
    sa__pp_bucket bucket[SA__PP_BUCKETS];
    sa__pp_bucket all;        /* every bucket together */
    int32_t rtt[SA__PP_RTTS]; /* poll round trips (ms), a ring */
    int n_rtt, rtt_head;
} sa__pollplan;

/* What the planner needs of one running task (times: the client's ms). */
typedef struct sa__pp_task {
    int bucket;              /* sa__pollplan_bucket */
    int64_t created_ms;      /* task create answer; -1: unknown (resumed) */
    int64_t running_ms;      /* send time of the last poll that answered
                                running; created_ms when none */
    int64_t last_poll_ms;    /* the last poll handed out (or the create) */
    long min_gap_ms;         /* the API's polling_interval (>= 200), or 0 */
    long fixed_ms;           /* what the fixed strategy waits now */
} sa__pp_task;

void sa__pollplan_init(sa__pollplan *p, int strategy, int webhooks,
                      long poll_interval_ms, long max_poll_interval_ms);
/* The bucket of a task: its tier (0 SD, 1 HD) and action count. */
int sa__pollplan_bucket(int hd, size_t n_actions);
/* A poll's round trip (handed to the engine .. answer), in ms. */
void sa__pollplan_rtt(sa__pollplan *p, int64_t rtt_ms);
/* The median of the kept round trips (0 when none). */
long sa__pollplan_rtt_ms(const sa__pollplan *p);
/* A task of `bucket` answered its create at created_ms, was last seen
 * running by a poll sent at running_ms (created_ms when none) and seen
 * final by a poll sent at final_ms: record its duration interval. */
void sa__pollplan_observe(sa__pollplan *p, int bucket, int64_t created_ms,
                         int64_t running_ms, int64_t final_ms);
/* Observations the planner would use for `bucket` (its own when it has
 * SA__PP_MIN_SAMPLES, else all buckets'), or NULL while cold. */
const sa__pp_bucket *sa__pollplan_model(const sa__pollplan *p, int bucket);
/* When to send the next poll of a running task (absolute ms, >= now_ms +
 * min_gap_ms, <= last_poll_ms + the safe gap): see pollplan.c. */
int64_t sa__pollplan_next(const sa__pollplan *p, const sa__pp_task *t,
                         int64_t now_ms);
/* The safe longest gap between two polls of a task the planner places:
 * max_poll_interval_ms less a margin for the limiter queue and jitter. */
long sa__pollplan_max_gap(const sa__pollplan *p);
/* The price of a poll, in ms of detection delay, at the plan's load. */
double sa__pollplan_price_ms(const sa__pollplan *p);

#endif /* SA_POLLPLAN_H */
