/* test_pollplan.c - the poll planner (core/src/pollplan.c) with fake time. */

/*
 * Unit checks of each rule (buckets, round trips, censored intervals,
 * cold start, the fixed strategy, webhooks, the hard gap rules), then a
 * fake-time simulation: tasks of 3-8 s (uniform, a fixed LCG), a server
 * 10 ms of round trip away, polled the way job.c asks the planner.  It
 * checks that the learned planner detects the end sooner than the fixed
 * interval when the budget has room and polls about once when it binds,
 * and never breaks the gap rules.
 */
#include "harness.h"
#include "sa_internal.h"

#include <stdint.h>

#define T0 ((int64_t)5000000)

static sa__pollplan P;

static void plan_init(int strategy, int webhooks)
{
    sa__pollplan_init(&P, strategy, webhooks, 2000, 10000);
}

static sa__pp_task task_at(int64_t created, int64_t running, int64_t last)
{
    sa__pp_task t;
    memset(&t, 0, sizeof t);
    t.bucket = sa__pollplan_bucket(0, 4);
    t.created_ms = created;
    t.running_ms = running;
    t.last_poll_ms = last;
    t.min_gap_ms = 0;
    t.fixed_ms = 2000;
    return t;
}

/* Teach the planner n tasks that ended between lo and hi ms (zero rtt). */
static void teach(int bucket, int n, int64_t lo, int64_t hi)
{
    int i;
    for (i = 0; i < n; i++)
        sa__pollplan_observe(&P, bucket, T0, T0 + lo, T0 + hi);
}

TEST(buckets_by_tier_and_action_count)
{
    CHECK_EQ_INT(sa__pollplan_bucket(0, 1), 0);
    CHECK_EQ_INT(sa__pollplan_bucket(0, 2), 1);
    CHECK_EQ_INT(sa__pollplan_bucket(0, 4), 1);
    CHECK_EQ_INT(sa__pollplan_bucket(0, 5), 2);
    CHECK_EQ_INT(sa__pollplan_bucket(0, 16), 3);
    CHECK_EQ_INT(sa__pollplan_bucket(1, 1), 4);
    CHECK_EQ_INT(sa__pollplan_bucket(1, 16), 7);
}

TEST(round_trip_is_the_median_of_the_last_ones)
{
    int i;
    plan_init(SA_POLL_LEARNED, 0);
    CHECK_EQ_INT(sa__pollplan_rtt_ms(&P), 0);
    sa__pollplan_rtt(&P, 30);
    sa__pollplan_rtt(&P, 10);
    sa__pollplan_rtt(&P, 2000);  /* one slow answer does not move it much */
    CHECK_EQ_INT(sa__pollplan_rtt_ms(&P), 30);
    for (i = 0; i < SA__PP_RTTS; i++) sa__pollplan_rtt(&P, 12);
    CHECK_EQ_INT(sa__pollplan_rtt_ms(&P), 12);  /* only the last 16 count */
    sa__pollplan_rtt(&P, -5);                    /* ignored */
    CHECK_EQ_INT(sa__pollplan_rtt_ms(&P), 12);
}

TEST(observations_are_censored_intervals_shifted_by_the_round_trip)
{
    const sa__pp_bucket *m;
    plan_init(SA_POLL_LEARNED, 0);
    sa__pollplan_rtt(&P, 40);
    /* seen running by the poll sent at +4000, final at +6000 */
    sa__pollplan_observe(&P, 1, T0, T0 + 4000, T0 + 6000);
    CHECK_EQ_INT(P.bucket[1].n, 1);
    CHECK_EQ_INT(P.bucket[1].obs[0].lo_ms, 4040);
    CHECK_EQ_INT(P.bucket[1].obs[0].hi_ms, 6040);
    /* final at the first poll: it ended any time after its creation */
    sa__pollplan_observe(&P, 1, T0, T0, T0 + 9000);
    CHECK_EQ_INT(P.bucket[1].obs[1].lo_ms, 0);
    CHECK_EQ_INT(P.bucket[1].obs[1].hi_ms, 9040);
    CHECK_EQ_INT(P.all.n, 2);
    /* a resumed task (creation unknown) teaches nothing */
    sa__pollplan_observe(&P, 1, -1, T0, T0 + 100);
    CHECK_EQ_INT(P.all.n, 2);
    /* cold until SA__PP_MIN_SAMPLES; a bucket borrows from all first */
    CHECK(sa__pollplan_model(&P, 1) == NULL);
    teach(2, SA__PP_MIN_SAMPLES, 3000, 3500);
    m = sa__pollplan_model(&P, 1);
    CHECK(m == &P.all);
    CHECK(sa__pollplan_model(&P, 2) == &P.bucket[2]);
    /* the ring keeps the newest SA__PP_SAMPLES */
    teach(2, SA__PP_SAMPLES + 5, 100, 200);
    CHECK_EQ_INT(P.bucket[2].n, SA__PP_SAMPLES);
}

TEST(cold_and_fixed_poll_at_the_fixed_interval)
{
    sa__pp_task t;
    plan_init(SA_POLL_LEARNED, 0);
    t = task_at(T0, T0, T0);
    CHECK_EQ_INT(sa__pollplan_next(&P, &t, T0), T0 + 2000);  /* cold */
    plan_init(SA_POLL_FIXED, 0);
    teach(1, 20, 3000, 3100);
    CHECK_EQ_INT(sa__pollplan_next(&P, &t, T0), T0 + 2000);  /* fixed */
    t.created_ms = -1;                                       /* resumed */
    plan_init(SA_POLL_LEARNED, 0);
    teach(1, 20, 3000, 3100);
    CHECK_EQ_INT(sa__pollplan_next(&P, &t, T0), T0 + 2000);
}

TEST(webhooks_poll_only_at_the_safe_gap)
{
    sa__pp_task t;
    plan_init(SA_POLL_LEARNED, 1);
    teach(1, 20, 3000, 3100);
    t = task_at(T0, T0, T0);
    CHECK_EQ_INT(sa__pollplan_max_gap(&P), 9000);
    CHECK_EQ_INT(sa__pollplan_next(&P, &t, T0), T0 + 9000);
    t.last_poll_ms = T0 + 9000;
    CHECK_EQ_INT(sa__pollplan_next(&P, &t, T0 + 9010), T0 + 18000);
}

TEST(learned_first_poll_lands_after_the_shortest_durations)
{
    sa__pp_task t;
    int64_t at;
    plan_init(SA_POLL_LEARNED, 0);
    teach(1, 30, 3000, 3050);  /* every task ended at about 3 s */
    t = task_at(T0, T0, T0);
    at = sa__pollplan_next(&P, &t, T0);
    fprintf(stderr, "  room: first poll at +%lld\n", (long long)(at - T0));
    CHECK(at >= T0 + 2400 && at <= T0 + 3300);  /* EXPLORE: up to 20% sooner */
    /* the budget binds: just past them (one poll catches them all) */
    P.load = 1.0;
    at = sa__pollplan_next(&P, &t, T0);
    fprintf(stderr, "  bound: first poll at +%lld\n", (long long)(at - T0));
    CHECK(at >= T0 + 3050 && at <= T0 + 3500);
}

TEST(binding_budget_polls_near_the_end_room_polls_sooner)
{
    sa__pp_task t;
    int64_t room, bound;
    plan_init(SA_POLL_LEARNED, 0);
    teach(1, 10, 3000, 3500);
    teach(1, 10, 5000, 5500);
    teach(1, 10, 7500, 8000);
    t = task_at(T0, T0, T0);
    room = sa__pollplan_next(&P, &t, T0);
    P.load = 1.0;
    bound = sa__pollplan_next(&P, &t, T0);
    fprintf(stderr, "  room +%lld, bound +%lld\n", (long long)(room - T0),
            (long long)(bound - T0));
    CHECK(room >= T0 + 2400 && room <= T0 + 3600);
    CHECK(bound >= T0 + 7900 && bound <= T0 + 8500);
    CHECK(sa__pollplan_price_ms(&P) > 300 * 80.0 - 1);
}

TEST(tail_past_every_duration_seen_spreads_out_to_the_fixed_interval)
{
    sa__pp_task t;
    int64_t prev = 0;
    int k;
    plan_init(SA_POLL_LEARNED, 0);
    teach(1, 20, 3000, 3100);
    /* still running at 3.5 s, 5 s, 10 s, 30 s: the gap grows with the
     * time past the longest seen (sqrt(2 x 110 x (5 + past)) ms), never
     * under 200 ms nor over the fixed 2 s */
    for (k = 0; k < 4; k++) {
        static const int64_t at_ms[4] = { 3500, 5000, 10000, 30000 };
        int64_t gap;
        t = task_at(T0, T0 + at_ms[k], T0 + at_ms[k]);
        gap = sa__pollplan_next(&P, &t, T0 + at_ms[k] + 10) - (T0 + at_ms[k] + 10);
        fprintf(stderr, "  running at %lld ms: next poll in %lld ms\n",
                (long long)at_ms[k], (long long)gap);
        CHECK(gap >= 200 && gap <= 2000);
        CHECK(gap >= prev);
        prev = gap;
    }
    CHECK(prev == 2000);                         /* far past: the fixed 2 s */
    t = task_at(T0, T0 + 5000, T0 + 5000);
    CHECK_EQ_INT(sa__pollplan_next(&P, &t, T0 + 5010), T0 + 5010 + 647);
    P.load = 1.0;  /* stretched to the safe gap (8 s when the budget binds) */
    CHECK_EQ_INT(sa__pollplan_max_gap(&P), 8000);
    CHECK_EQ_INT(sa__pollplan_next(&P, &t, T0 + 5010), T0 + 13000);
}

TEST(model_reaches_past_the_durations_seen)
{
    /* four tasks of exactly 4, 5, 6 and 7 s: the durations' true range
     * is wider than the sample's, so the fit keeps mass below 4 s and
     * above 7 s (about a quarter of the range, 750 ms, each side) */
    const sa__pp_bucket *m;
    double below = 0, above = 0;
    int j;
    plan_init(SA_POLL_LEARNED, 0);
    teach(1, 1, 3990, 4000);
    teach(1, 1, 4990, 5000);
    teach(1, 1, 5990, 6000);
    teach(1, 1, 6990, 7000);
    m = sa__pollplan_model(&P, sa__pollplan_bucket(0, 4));
    CHECK(m != NULL);
    if (!m) return;
    CHECK_EQ_INT(m->low_ms, 3990);
    CHECK_EQ_INT(m->top_ms, 7001);
    for (j = 0; j < SA__PP_BINS; j++) {
        if ((j + 1) * m->bin_ms <= 3900) below += m->pmf[j];
        if (j * m->bin_ms >= 7100) above += m->pmf[j];
    }
    fprintf(stderr, "  mass below 3.9 s %.3f, above 7.1 s %.3f\n", below, above);
    CHECK(below > 0.04 && above > 0.04);
    CHECK((double)m->bin_ms * SA__PP_BINS >= 7001 + 700);  /* the grid too */
}

TEST(hard_rules_hold_in_every_state)
{
    uint64_t x = 12345;
    int i, k;
    plan_init(SA_POLL_LEARNED, 0);
    for (k = 0; k < 40; k++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        teach(1, 1, (int64_t)(x >> 33) % 20000, 20000 + (int64_t)(x >> 40) % 500);
    }
    for (i = 0; i < 2000; i++) {
        sa__pp_task t;
        int64_t now, at, last;
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        last = T0 + (int64_t)((x >> 20) % 30000);
        now = last + (int64_t)((x >> 8) % 3000);
        t = task_at(T0, last, last);
        t.min_gap_ms = (x >> 50) % 3 == 0 ? 0 : (long)(200 + (x >> 40) % 5000);
        P.load = (double)((x >> 45) % 11) / 10.0;
        at = sa__pollplan_next(&P, &t, now);
        /* never sooner than the API's interval (or 200 ms) after now */
        CHECK(at >= now + (t.min_gap_ms > 200 ? t.min_gap_ms : 200));
        /* never later than the safe gap, unless the API's interval
         * forces it (job.c then caps at max_poll_interval_ms) */
        CHECK(at <= last + sa__pollplan_max_gap(&P)
              || at == now + (t.min_gap_ms > 200 ? t.min_gap_ms : 200));
    }
}

/* ---------------------------------------------------------------- */
/* Fake-time simulation                                              */
/* ---------------------------------------------------------------- */

typedef struct sim_out {
    int n;
    double polls;          /* per task */
    double median_ms, p95_ms, max_gap_ms;
} sim_out;

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* n tasks one after the other, durations uniform in [3000, 8000] ms,
 * round trip rtt; polls placed as job.c places them (first: the
 * planner's answer with fixed 2000, later ones likewise, each capped at
 * the last poll + max_poll_interval_ms). */
static sim_out simulate(int n, double load, uint64_t *seed)
{
    enum { RTT = 10 };
    static double delay[1000];
    sim_out o;
    int i, polls = 0;
    int64_t T = T0;

    memset(&o, 0, sizeof o);
    P.load = load;
    for (i = 0; i < n && i < 1000; i++) {
        int64_t created, last, running, now, at;
        double d;
        *seed = *seed * 6364136223846793005ULL + 1442695040888963407ULL;
        d = 3000.0 + (double)((*seed >> 33) % 5001);
        created = T;                 /* server created at T - RTT/2 */
        last = running = now = created;
        for (;;) {
            sa__pp_task t = task_at(created, running, last);
            double elapsed;
            at = sa__pollplan_next(&P, &t, now);
            if (at > last + 10000) at = last + 10000;
            if (at - last > o.max_gap_ms) o.max_gap_ms = (double)(at - last);
            polls++;
            elapsed = (double)(at - created) + RTT;  /* at the server */
            sa__pollplan_rtt(&P, RTT);
            if (elapsed >= d) {
                delay[i] = elapsed - d;
                sa__pollplan_observe(&P, t.bucket, created, running, at);
                T = at + 1000;
                break;
            }
            last = running = at;
            now = at + RTT;
        }
    }
    o.n = i;
    o.polls = (double)polls / i;
    qsort(delay, (size_t)i, sizeof delay[0], cmp_d);
    o.median_ms = delay[i / 2];
    o.p95_ms = delay[(i * 95) / 100];
    return o;
}

TEST(simulation_learned_beats_fixed)
{
    uint64_t seed = 99;
    sim_out fixed, room, bound;

    plan_init(SA_POLL_FIXED, 0);
    fixed = simulate(400, 0.0, &seed);
    plan_init(SA_POLL_LEARNED, 0);
    (void)simulate(40, 0.0, &seed);       /* learn */
    room = simulate(400, 0.0, &seed);
    bound = simulate(400, 1.0, &seed);
    fprintf(stderr, "  fixed:          %.2f polls, delay median %.0f p95 %.0f ms\n",
            fixed.polls, fixed.median_ms, fixed.p95_ms);
    fprintf(stderr, "  learned, room:  %.2f polls, delay median %.0f p95 %.0f ms\n",
            room.polls, room.median_ms, room.p95_ms);
    fprintf(stderr, "  learned, bound: %.2f polls, delay median %.0f p95 %.0f ms\n",
            bound.polls, bound.median_ms, bound.p95_ms);
    CHECK(fixed.polls > 2.5 && fixed.median_ms > 700);
    /* room: a lower delay than fixed, with about as many polls */
    CHECK(room.median_ms < fixed.median_ms / 2);
    CHECK(room.p95_ms < fixed.p95_ms);
    CHECK(room.polls <= 5.0);
    /* bound: about one poll per task */
    CHECK(bound.polls <= 1.3);
    CHECK(room.max_gap_ms <= 9000 && bound.max_gap_ms <= 8000);
}

int main(void)
{
    RUN(buckets_by_tier_and_action_count);
    RUN(round_trip_is_the_median_of_the_last_ones);
    RUN(observations_are_censored_intervals_shifted_by_the_round_trip);
    RUN(cold_and_fixed_poll_at_the_fixed_interval);
    RUN(webhooks_poll_only_at_the_safe_gap);
    RUN(learned_first_poll_lands_after_the_shortest_durations);
    RUN(binding_budget_polls_near_the_end_room_polls_sooner);
    RUN(tail_past_every_duration_seen_spreads_out_to_the_fixed_interval);
    RUN(model_reaches_past_the_durations_seen);
    RUN(hard_rules_hold_in_every_state);
    RUN(simulation_learned_beats_fixed);
    (void)harness_slurp;
    return harness_report();
}
