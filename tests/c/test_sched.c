/* test_sched.c - the client's scheduler (core/src/sched.c) with fake time. */

/*
 * Each test names one policy of the limiter queue or the upload queue and
 * checks it through the scheduler's own interface, the way drive.c uses it:
 * park a request, ask at `now` which one may go, move the clock.  The
 * items are bare sa_sched_items standing for jobs.
 */
#include "harness.h"
#include "support_fakeserver.h"

#include <stdint.h>

#define T0 ((int64_t)1000000)
#define G SA__LIMITER_GUARD_MS
#define N_ITEMS 64

/* One test's world: options, scheduler, jobs, fake clock. */
typedef struct st {
    fs_mem m;
    sa_client_options o;
    sa__sched s;
    sa__sched_item it[N_ITEMS];
    int64_t now;
} st;

static void st_init(st *t)
{
    int i;
    memset(t, 0, sizeof *t);
    fs_mem_init(&t->m, 0, 0);
    sa_client_options_init(&t->o);
    for (i = 0; i < N_ITEMS; i++) sa__sched_item_init(&t->it[i]);
    t->now = T0;
}

static int st_start(st *t)
{
    return sa__sched_init(&t->s, &t->m.mem, &t->o);
}

/* st_init and st_start, with the default options. */
static int st_open(st *t)
{
    st_init(t);
    return st_start(t);
}

static void st_end(st *t)
{
    sa__sched_free(&t->s);
    if (t->m.live != 0) HARNESS_FAIL("%ld allocations leaked", t->m.live);
}

static void park(st *t, int i, int step)
{
    sa__sched_park_api(&t->s, &t->it[i], step, t->now);
}

/* The job whose request the scheduler lets go now, or -1. */
static int next(st *t)
{
    sa__sched_item *it = sa__sched_next_api(&t->s, t->now);
    return it ? (int)(it - t->it) : -1;
}

/* Park a request of job i and check that it goes at once. */
static void send_now(st *t, int i, int step)
{
    park(t, i, step);
    CHECK_EQ_INT(next(t), i);
}

/* Park requests of jobs 0 .. n-1 (n > 5): the first five go at once, the
 * sixth is held by the rate (5 per second). */
static void park_five_go(st *t, int n, int step)
{
    int i;
    for (i = 0; i < n; i++) park(t, i, step);
    for (i = 0; i < 5; i++) CHECK_EQ_INT(next(t), i);
    CHECK_EQ_INT(next(t), -1);
}

/* Nothing may go now; the scheduler says something may at `when`: move
 * the clock there. */
static void held_until(st *t, int64_t when)
{
    CHECK_EQ_INT(next(t), -1);
    CHECK_EQ_INT(sa__sched_ready_at(&t->s, t->now), when);
    t->now = when;
}

/* Job i's parked request is held until `when`, not a millisecond less:
 * it goes at `when`. */
static void goes_at(st *t, int64_t when, int i)
{
    held_until(t, when);
    t->now = when - 1;
    CHECK_EQ_INT(next(t), -1);
    t->now = when;
    CHECK_EQ_INT(next(t), i);
}

/* ------------------------------------------------------------------ */
/* Parameters                                                          */
/* ------------------------------------------------------------------ */

/* st_start succeeds (1, else 0) with the limiter on or off (limited), this
 * admission cap and this reserve. */
static int started_with(st *t, int limited, int admit_cap, int reserve_max)
{
    int rc = st_start(t);
    CHECK_EQ_INT(rc, SA_OK);
    CHECK_EQ_INT(sa__sched_limited(&t->s), limited);
    CHECK_EQ_INT(t->s.admit_cap, admit_cap);
    CHECK_EQ_INT(t->s.reserve_max, reserve_max);
    return rc == SA_OK;
}

/* admit_cap = max(1, floor(0.8 * window_max * max_poll_interval /
 * window_ms)), reserve at most 80% of the window, both only with the
 * limiter on and a long window; the 429 pause is max(1 s, backoff). */
TEST(parameters_follow_the_options)
{
    st t;
    sa__sched z;

    st_init(&t);
    started_with(&t, 1, 6, 200);            /* 0.8 * 250 * 10 s / 300 s */
    CHECK_EQ_INT(t.s.penalty_ms, 1000);
    CHECK_EQ_INT(t.s.max_uploads, 8);
    CHECK_EQ_INT(sa__sched_ready_at(&t.s, t.now), -1);
    st_end(&t);

    st_init(&t);
    t.o.max_poll_interval_ms = 60000;
    t.o.backoff_initial_ms = 3000;
    started_with(&t, 1, 40, 200);
    CHECK_EQ_INT(t.s.penalty_ms, 3000);
    st_end(&t);

    st_init(&t);                            /* a tiny window: at least 1 */
    t.o.rate_window_max = 5;
    started_with(&t, 1, 1, 4);
    st_end(&t);

    st_init(&t);                            /* no long window: no cap */
    t.o.rate_window_max = 0;
    started_with(&t, 1, 0, 0);
    st_end(&t);

    st_init(&t);                            /* limiter off */
    t.o.rate_limit = 0;
    started_with(&t, 0, 0, 0);
    st_end(&t);

    st_init(&t);                            /* the limiter refuses */
    t.o.rate_per_second = 0.0;
    CHECK_EQ_INT(st_start(&t), SA_ERR_INVALID_ARGUMENT);
    st_end(&t);
    memset(&z, 0, sizeof z);                /* free is safe when zeroed */
    sa__sched_free(&z);
    sa__sched_free(NULL);
}

/* ------------------------------------------------------------------ */
/* Priority                                                            */
/* ------------------------------------------------------------------ */

/* Polls before task creates before file creates, whatever the arrival
 * order; among polls the task that must be polled soonest (its last poll
 * or task create is the oldest) first. */
TEST(polls_first_most_urgent_first)
{
    st t;

    REQUIRE(st_open(&t) == SA_OK);
    send_now(&t, 2, SA__STEP_TASK_CREATE);   /* anchors job 2 at T0 */
    t.now = T0 + 1100;
    send_now(&t, 3, SA__STEP_TASK_CREATE);   /* job 3 at T0 + 1100 */
    t.now = T0 + 5000;
    park(&t, 0, SA__STEP_FILE_CREATE);
    park(&t, 1, SA__STEP_TASK_CREATE);
    park(&t, 3, SA__STEP_POLL);
    park(&t, 2, SA__STEP_POLL);
    CHECK_EQ_INT(sa__sched_ready_at(&t.s, t.now), t.now);
    CHECK_EQ_INT(next(&t), 2);
    CHECK_EQ_INT(next(&t), 3);
    CHECK_EQ_INT(next(&t), 1);
    CHECK_EQ_INT(next(&t), 0);
    CHECK_EQ_INT(next(&t), -1);
    CHECK_EQ_INT(sa__sched_ready_at(&t.s, t.now), -1);  /* nothing waits */
    CHECK_EQ_INT(t.s.n_admitted, 4);
    /* a poll or task create sent moves the anchor; a file create not */
    CHECK_EQ_INT(t.it[2].poll_anchor, T0 + 5000);
    CHECK_EQ_INT(t.it[0].poll_anchor, 0);
    st_end(&t);
}

/* First come first served within a class, polls of equal urgency too. */
TEST(first_come_first_served_within_a_class)
{
    st t;
    int i;

    REQUIRE(st_open(&t) == SA_OK);
    for (i = 0; i < 4; i++) park(&t, i, SA__STEP_FILE_CREATE);
    for (i = 0; i < 4; i++) CHECK_EQ_INT(next(&t), i);
    t.now += 1100;
    send_now(&t, 4, SA__STEP_TASK_CREATE);
    send_now(&t, 5, SA__STEP_TASK_CREATE);   /* same anchor as job 4 */
    t.now += 1100;
    park(&t, 5, SA__STEP_POLL);
    park(&t, 4, SA__STEP_POLL);
    CHECK_EQ_INT(next(&t), 5);
    CHECK_EQ_INT(next(&t), 4);
    st_end(&t);
}

/* ------------------------------------------------------------------ */
/* Admission                                                           */
/* ------------------------------------------------------------------ */

/* A job's first request waits while admit_cap jobs are admitted, even
 * with slots free; an admitted job's later requests and polls never
 * wait for it; a poll never admits (a download's refresh poll); a job
 * that ends makes the queue look again at once. */
TEST(admission_cap_holds_first_requests)
{
    st t;

    REQUIRE(st_open(&t) == SA_OK);
    park_five_go(&t, 8, SA__STEP_FILE_CREATE);  /* 5 per second */
    goes_at(&t, T0 + 1000 + G, 5);
    CHECK_EQ_INT(t.s.n_admitted, 6);
    /* the cap, not the limiter: job 6 waits with 244 slots free, until
     * the oldest send leaves the window or a job ends */
    CHECK_EQ_INT(next(&t), -1);
    CHECK_EQ_INT(sa__sched_ready_at(&t.s, t.now), T0 + 300000 + G);
    CHECK_EQ_INT(sa__sched_waiting(&t.it[6]), 1);
    /* a poll of a job never admitted goes past the cap and admits not */
    park(&t, 10, SA__STEP_POLL);
    CHECK_EQ_INT(next(&t), 10);
    CHECK_EQ_INT(t.it[10].admitted, 0);
    CHECK_EQ_INT(t.s.n_admitted, 6);
    /* an admitted job's task create goes at the cap */
    park(&t, 0, SA__STEP_TASK_CREATE);
    CHECK_EQ_INT(next(&t), 0);
    CHECK_EQ_INT(next(&t), -1);
    /* job 1 ends: job 6 goes at once, job 7 still waits */
    sa__sched_unadmit(&t.s, &t.it[1], t.now);
    CHECK_EQ_INT(t.s.n_admitted, 5);
    CHECK_EQ_INT(sa__sched_ready_at(&t.s, t.now), t.now);
    CHECK_EQ_INT(next(&t), 6);
    CHECK_EQ_INT(next(&t), -1);
    CHECK_EQ_INT(t.s.n_admitted, 6);
    /* unadmitting twice, or a job never admitted, changes nothing */
    sa__sched_unadmit(&t.s, &t.it[1], t.now);
    sa__sched_unadmit(&t.s, &t.it[7], t.now);
    CHECK_EQ_INT(t.s.n_admitted, 6);
    CHECK_EQ_INT(next(&t), -1);
    t.now += 1000 + G;
    /* the first poll of a resumed task goes past the cap too, but admits
     * its job (it needs polls from then on); its next polls do not */
    t.it[11].poll_admits = 1;
    park(&t, 11, SA__STEP_POLL);
    CHECK_EQ_INT(next(&t), 11);
    CHECK_EQ_INT(t.it[11].admitted, 1);
    CHECK_EQ_INT(t.it[11].poll_admits, 0);
    CHECK_EQ_INT(t.s.n_admitted, 7);
    park(&t, 11, SA__STEP_POLL);
    CHECK_EQ_INT(next(&t), 11);
    CHECK_EQ_INT(t.s.n_admitted, 7);
    CHECK_EQ_INT(next(&t), -1);             /* job 7: the cap holds */
    sa__sched_unadmit(&t.s, &t.it[11], t.now);
    CHECK_EQ_INT(t.s.n_admitted, 6);
    CHECK_EQ_INT(next(&t), -1);
    sa__sched_withdraw(&t.it[7]);
    st_end(&t);
}

/* An account request (delete_after's delete, a balance) goes before file
 * creates queued ahead of it, past the admission cap, and admits nothing:
 * a finished task's image is deleted without waiting for new uploads. */
TEST(account_requests_go_before_file_creates_past_the_cap)
{
    st t;

    REQUIRE(st_open(&t) == SA_OK);
    park_five_go(&t, 8, SA__STEP_FILE_CREATE);  /* 5 per second */
    goes_at(&t, T0 + 1000 + G, 5);
    CHECK_EQ_INT(t.s.n_admitted, 6);            /* the cap: 6 and 7 wait */
    park(&t, 20, SA__STEP_ACCOUNT);
    CHECK_EQ_INT(next(&t), 20);
    CHECK_EQ_INT(t.it[20].admitted, 0);
    CHECK_EQ_INT(t.s.n_admitted, 6);
    CHECK_EQ_INT(next(&t), -1);
    /* with room under the cap, still ahead of the file creates queued
     * before it; behind a task create */
    sa__sched_unadmit(&t.s, &t.it[0], t.now);
    sa__sched_unadmit(&t.s, &t.it[1], t.now);
    t.now += 1000 + G;
    park(&t, 21, SA__STEP_ACCOUNT);
    park(&t, 2, SA__STEP_TASK_CREATE);
    CHECK_EQ_INT(next(&t), 2);
    CHECK_EQ_INT(next(&t), 21);
    CHECK_EQ_INT(next(&t), 6);
    CHECK_EQ_INT(next(&t), 7);
    CHECK_EQ_INT(t.s.n_admitted, 6);
    st_end(&t);
}

/* ------------------------------------------------------------------ */
/* Reserve                                                             */
/* ------------------------------------------------------------------ */

/* The long window keeps one free slot per admitted job for polls: a
 * request that is not an urgent poll goes only when that many slots stay
 * free after it (counting the job a first request admits); a poll is
 * urgent from half of max_poll_interval_ms before its deadline, and then
 * takes a reserved slot. */
TEST(reserve_keeps_a_slot_per_admitted_job)
{
    st t;
    int i;

    st_init(&t);
    t.o.rate_window_max = 10;               /* 10 per 60 s; cap 8 */
    t.o.rate_window_ms = 60000;
    t.o.max_poll_interval_ms = 60000;
    REQUIRE(st_start(&t) == SA_OK);
    REQUIRE(t.s.admit_cap == 8 && t.s.reserve_max == 8);
    for (i = 0; i < 3; i++) send_now(&t, i, SA__STEP_FILE_CREATE);
    t.now = T0 + 1100;                      /* room 7, 3 kept */
    for (i = 0; i < 3; i++) send_now(&t, i, SA__STEP_TASK_CREATE);
    t.now = T0 + 2200;                      /* room 4 */
    /* a new job would leave 3 free for 4 admitted jobs: it waits, though
     * the cap (8) is far */
    park(&t, 3, SA__STEP_FILE_CREATE);
    CHECK_EQ_INT(next(&t), -1);
    /* an eager poll may leave exactly one slot per job (room 4 -> 3) */
    park(&t, 0, SA__STEP_POLL);
    CHECK_EQ_INT(next(&t), 0);
    /* the next eager poll may not; it waits until it is urgent:
     * T0 + 1100 + 60000 - 30000 */
    park(&t, 1, SA__STEP_POLL);
    goes_at(&t, T0 + 31100, 1);             /* urgent: takes a reserved slot */
    /* a refresh poll of a job that never created a task is urgent at once
     * and takes a reserved slot too */
    park(&t, 20, SA__STEP_POLL);
    CHECK_EQ_INT(next(&t), 20);
    /* the new job waits until the window keeps a slot for each of the
     * four: not when the three file creates leave it (room 4), but when
     * the task creates do too (room 7) */
    held_until(&t, T0 + 60000 + G);
    goes_at(&t, T0 + 61100 + G, 3);
    CHECK_EQ_INT(t.s.n_admitted, 4);
    st_end(&t);
}

/* ------------------------------------------------------------------ */
/* The limiter's edges                                                 */
/* ------------------------------------------------------------------ */

/* 5 per second: the sixth request goes exactly 1000 ms + guard after the
 * first, not a millisecond earlier. */
TEST(rate_edge_sixth_request_waits_a_second)
{
    st t;

    REQUIRE(st_open(&t) == SA_OK);
    park_five_go(&t, 6, SA__STEP_POLL);
    goes_at(&t, T0 + 1000 + G, 5);
    st_end(&t);
}

/* A full long window holds even an urgent poll until its oldest send
 * leaves the window (plus the guard). */
TEST(full_window_holds_even_urgent_polls)
{
    st t;
    int i;

    st_init(&t);
    t.o.rate_window_max = 10;
    t.o.rate_window_ms = 60000;
    REQUIRE(st_start(&t) == SA_OK);
    for (i = 0; i < 5; i++) send_now(&t, i, SA__STEP_POLL);
    t.now = T0 + 1000 + G;
    for (i = 5; i < 10; i++) send_now(&t, i, SA__STEP_POLL);
    t.now = T0 + 2000 + 2 * G;
    park(&t, 10, SA__STEP_POLL);
    goes_at(&t, T0 + 60000 + G, 10);
    st_end(&t);
}

/* After a 429 nothing goes for max(1 s, backoff_initial_ms). */
TEST(a_429_pauses_every_api_request)
{
    st t;

    REQUIRE(st_open(&t) == SA_OK);
    sa__sched_penalize(&t.s, t.now);
    park(&t, 0, SA__STEP_POLL);
    goes_at(&t, T0 + 1000, 0);
    st_end(&t);

    st_init(&t);
    t.o.backoff_initial_ms = 3000;
    REQUIRE(st_start(&t) == SA_OK);
    sa__sched_penalize(&t.s, t.now);
    park(&t, 0, SA__STEP_FILE_CREATE);
    CHECK_EQ_INT(next(&t), -1);
    CHECK_EQ_INT(sa__sched_ready_at(&t.s, t.now), T0 + 3000);
    st_end(&t);
}

/* With the limiter off the client sends API requests at once; what is
 * parked anyway all goes at once: no rate, no cap, no reserve. */
TEST(limiter_off_holds_nothing)
{
    st t;
    int i;

    st_init(&t);
    t.o.rate_limit = 0;
    REQUIRE(started_with(&t, 0, 0, 0));
    for (i = 0; i < 50; i++) park(&t, i, SA__STEP_FILE_CREATE);
    for (i = 0; i < 50; i++) CHECK_EQ_INT(next(&t), i);
    CHECK_EQ_INT(t.s.n_admitted, 50);
    st_end(&t);
}

/* A withdrawn request (a cancelled job's task create) never goes. */
TEST(withdrawn_request_never_goes)
{
    st t;

    REQUIRE(st_open(&t) == SA_OK);
    park(&t, 0, SA__STEP_TASK_CREATE);
    park(&t, 1, SA__STEP_FILE_CREATE);
    CHECK_EQ_INT(sa__sched_waiting(&t.it[0]), 1);
    sa__sched_withdraw(&t.it[0]);
    CHECK_EQ_INT(sa__sched_waiting(&t.it[0]), 0);
    sa__sched_withdraw(&t.it[0]);            /* not waiting: nothing */
    CHECK_EQ_INT(next(&t), 1);
    CHECK_EQ_INT(next(&t), -1);
    CHECK_EQ_INT(t.s.n_admitted, 1);
    CHECK_EQ_INT(t.it[0].admitted, 0);
    st_end(&t);
}

/* ------------------------------------------------------------------ */
/* The upload queue                                                    */
/* ------------------------------------------------------------------ */

/* At most max_uploads in flight; the rest wait, first come first served,
 * and a new upload waits behind those waiting even when there is room. */
TEST(upload_queue_caps_and_keeps_order)
{
    st t;
    sa__sched_item *it;

    st_init(&t);
    t.o.max_uploads = 2;
    REQUIRE(st_start(&t) == SA_OK);
    CHECK_EQ_INT(sa__sched_upload_must_wait(&t.s), 0);
    sa__sched_upload_started(&t.s);
    sa__sched_upload_started(&t.s);
    CHECK_EQ_INT(sa__sched_upload_must_wait(&t.s), 1);
    sa__sched_park_upload(&t.s, &t.it[0]);
    sa__sched_park_upload(&t.s, &t.it[1]);
    sa__sched_park_upload(&t.s, &t.it[2]);
    CHECK(sa__sched_next_upload(&t.s) == NULL);
    CHECK_EQ_INT(sa__sched_ready_at(&t.s, t.now), -1);   /* no room */
    sa__sched_upload_ended(&t.s);
    CHECK_EQ_INT(sa__sched_upload_must_wait(&t.s), 1);   /* behind others */
    CHECK_EQ_INT(sa__sched_ready_at(&t.s, t.now), t.now);
    it = sa__sched_next_upload(&t.s);
    CHECK(it == &t.it[0]);
    sa__sched_upload_started(&t.s);
    CHECK(sa__sched_next_upload(&t.s) == NULL);
    sa__sched_upload_ended(&t.s);
    sa__sched_upload_ended(&t.s);
    CHECK(sa__sched_next_upload(&t.s) == &t.it[1]);
    sa__sched_upload_started(&t.s);
    /* a waiting upload can be withdrawn (its job was cancelled) */
    sa__sched_withdraw(&t.it[2]);
    CHECK(sa__sched_next_upload(&t.s) == NULL);
    CHECK_EQ_INT(sa__sched_upload_must_wait(&t.s), 0);   /* room, none wait */
    CHECK_EQ_INT(t.s.peak_uploads, 2);
    /* uploads never touch the limiter or the admission count */
    CHECK_EQ_INT(t.s.n_admitted, 0);
    sa__sched_upload_ended(&t.s);
    CHECK_EQ_INT(t.s.n_uploads, 0);
    st_end(&t);
}

/* max_uploads 0: no cap. */
TEST(upload_queue_without_cap)
{
    st t;
    int i;

    st_init(&t);
    t.o.max_uploads = 0;
    REQUIRE(st_start(&t) == SA_OK);
    for (i = 0; i < 100; i++) {
        CHECK_EQ_INT(sa__sched_upload_must_wait(&t.s), 0);
        sa__sched_upload_started(&t.s);
    }
    CHECK_EQ_INT(t.s.peak_uploads, 100);
    st_end(&t);
}

/* Both queues: the earliest time something waiting may go. */
TEST(ready_at_is_the_earliest_of_both_queues)
{
    st t;

    st_init(&t);
    t.o.max_uploads = 1;
    REQUIRE(st_start(&t) == SA_OK);
    park_five_go(&t, 6, SA__STEP_POLL);
    CHECK_EQ_INT(sa__sched_ready_at(&t.s, t.now), T0 + 1000 + G);
    sa__sched_upload_started(&t.s);
    sa__sched_park_upload(&t.s, &t.it[10]);
    CHECK_EQ_INT(sa__sched_ready_at(&t.s, t.now), T0 + 1000 + G);
    sa__sched_upload_ended(&t.s);
    CHECK_EQ_INT(sa__sched_ready_at(&t.s, t.now), t.now);
    /* a caller that stopped early asks to look again */
    sa__sched_withdraw(&t.it[10]);
    sa__sched_recheck(&t.s, t.now + 1);
    CHECK_EQ_INT(sa__sched_ready_at(&t.s, t.now), t.now + 1);
    st_end(&t);
}

int main(void)
{
    RUN(parameters_follow_the_options);
    RUN(polls_first_most_urgent_first);
    RUN(first_come_first_served_within_a_class);
    RUN(admission_cap_holds_first_requests);
    RUN(account_requests_go_before_file_creates_past_the_cap);
    RUN(reserve_keeps_a_slot_per_admitted_job);
    RUN(rate_edge_sixth_request_waits_a_second);
    RUN(full_window_holds_even_urgent_polls);
    RUN(a_429_pauses_every_api_request);
    RUN(limiter_off_holds_nothing);
    RUN(withdrawn_request_never_goes);
    RUN(upload_queue_caps_and_keeps_order);
    RUN(upload_queue_without_cap);
    RUN(ready_at_is_the_earliest_of_both_queues);
    (void)harness_slurp;
    return harness_report();
}
