/*
 * test_limiter.c - the sliding-window limiter (core/src/limiter.c): exact
 * ready times, fractional rates, bursts, penalties, and the invariants
 * checked over thousands of sends at random times with a fake clock.
 */
#include "harness.h"
#include "support_fakeserver.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define G ((int64_t)SA__LIMITER_GUARD_MS)

/* Most sends in any half-open [t, t + len) of the sorted times[0..n). */
static size_t max_in_window(const int64_t *times, size_t n, int64_t len)
{
    size_t i, j = 0, best = 0;
    for (i = 0; i < n; i++) {
        if (j < i) j = i;
        while (j < n && times[j] - times[i] < len) j++;
        if (j - i > best) best = j - i;
    }
    return best;
}

typedef struct lim_case {
    double rate;
    int burst;
    int window_max;
    int64_t window_ms;
} lim_case;

/* An enabled limiter without a custom allocator: 1 when it starts. */
static int lim_on(sa__limiter *l, double rate, int burst, int window_max,
                  int64_t window_ms)
{
    return sa__limiter_init(l, NULL, 1, rate, burst, window_max,
                            window_ms) == SA_OK;
}

/* n acquires at `now` are granted. */
static void granted(sa__limiter *l, int64_t now, int n)
{
    int64_t ready = 0;
    int i;
    for (i = 0; i < n; i++)
        CHECK_EQ_INT(sa__limiter_acquire(l, now, &ready), 1);
}

/* An acquire at `now` is refused and told to come back at `when`. */
static void refused(sa__limiter *l, int64_t now, int64_t when)
{
    int64_t ready = 0;
    CHECK_EQ_INT(sa__limiter_acquire(l, now, &ready), 0);
    CHECK_EQ_INT(ready, when);
}

/* Refused at `now` and a millisecond before `when`, granted at `when`. */
static void held_until(sa__limiter *l, int64_t now, int64_t when)
{
    refused(l, now, when);
    refused(l, when - 1, when);
    granted(l, when, 1);
}

TEST(disabled_always_allows)
{
    sa__limiter l;
    int64_t ready = -7;
    int i, ok = 1;

    CHECK_EQ_INT(sa__limiter_init(&l, NULL, 0, 5.0, 5, 250, 300000), SA_OK);
    for (i = 0; i < 10000; i++) ok &= sa__limiter_acquire(&l, 0, &ready);
    CHECK(ok);
    CHECK_EQ_INT(ready, -7);
    sa__limiter_penalize(&l, 0, 100000);
    CHECK_EQ_INT(sa__limiter_acquire(&l, 0, &ready), 1);
    CHECK_EQ_INT(sa__limiter_acquire(NULL, 0, &ready), 1);
    sa__limiter_free(&l);
    sa__limiter_free(NULL);
}

TEST(init_validates)
{
    sa__limiter l;
    fs_mem m;

    static const lim_case bad[] = {
        {0.0, 5, 250, 300000}, {-1.0, 5, 250, 300000},
        {NAN, 5, 250, 300000}, {INFINITY, 5, 250, 300000},
        {1e-12, 5, 250, 300000}, {1e9, 5, 250, 300000},
        {5.0, 0, 250, 300000}, {5.0, 5, -1, 300000}, {5.0, 5, 250, -1},
        {5.0, 5, 1 << 30, 300000}};
    /* no long window when either bound is 0; no burst window at burst >=
     * the rate's whole part: the windows, and the one (w) checked */
    static const struct {
        lim_case k;
        int n_win, w, max;
        int64_t span_ms;
    } good[] = {
        {{5.0, 5, 0, 300000}, 1, 0, 5, 1000 + G},
        {{5.0, 9, 250, 300000}, 2, 1, 250, 300000 + G},
        {{20.0, 2, 250, 300000}, 3, 1, 2, 100}};
    size_t i;

    CHECK_EQ_INT(sa__limiter_init(NULL, NULL, 1, 5, 5, 250, 300000),
                 SA_ERR_INVALID_ARGUMENT);
    for (i = 0; i < N(bad); i++)
        if (sa__limiter_init(&l, NULL, 1, bad[i].rate, bad[i].burst,
                             bad[i].window_max, bad[i].window_ms)
            != SA_ERR_INVALID_ARGUMENT)
            HARNESS_FAIL("bad case %zu accepted", i);
    sa__limiter_free(&l);
    for (i = 0; i < N(good); i++) {
        const lim_case *k = &good[i].k;
        CHECK_EQ_INT(sa__limiter_init(&l, NULL, 1, k->rate, k->burst,
                                      k->window_max, k->window_ms), SA_OK);
        CHECK_EQ_INT(l.n_win, good[i].n_win);
        CHECK_EQ_INT(l.win[good[i].w].max, good[i].max);
        CHECK_EQ_INT(l.win[good[i].w].span_ms, good[i].span_ms);
        sa__limiter_free(&l);
    }
    /* the rings are one allocation through sa_mem; out of memory is
     * reported and leaves nothing behind */
    fs_mem_init(&m, 1, 0);
    CHECK_EQ_INT(sa__limiter_init(&l, &m.mem, 1, 5.0, 5, 250, 300000),
                 SA_ERR_NOMEM);
    sa__limiter_free(&l);
    CHECK_EQ_INT(m.live, 0);
    fs_mem_init(&m, 0, 0);
    CHECK_EQ_INT(sa__limiter_init(&l, &m.mem, 1, 20.0, 2, 250, 300000), SA_OK);
    CHECK_EQ_INT(m.live, 1);
    sa__limiter_free(&l);
    CHECK_EQ_INT(m.live, 0);
}

/* 5 per second: five at once, the sixth exactly 1000 ms + guard after the
 * first; a sliding window, not a refill. */
TEST(rate_window_exactly)
{
    sa__limiter l;
    int i;

    REQUIRE(lim_on(&l, 5.0, 5, 0, 0));
    for (i = 0; i < 5; i++) granted(&l, 1000 + 100 * i, 1);
    held_until(&l, 1400, 2000 + G);
    /* the next slot frees when the second send leaves the window */
    refused(&l, 2000 + G, 2100 + G);
    /* a long pause: five at once again, never six */
    granted(&l, 900000, 5);
    refused(&l, 900000, 901000 + G);
    sa__limiter_free(&l);
}

/* A fractional rate counts its whole part per second; below 1 it is one
 * request per 1000 / rate ms. */
TEST(fractional_rates)
{
    sa__limiter l;

    REQUIRE(lim_on(&l, 2.5, 5, 0, 0));
    granted(&l, 0, 2);
    refused(&l, 0, 1000 + G);
    sa__limiter_free(&l);

    REQUIRE(lim_on(&l, 0.5, 5, 0, 0));
    granted(&l, 0, 1);
    held_until(&l, 1, 2000 + G);
    sa__limiter_free(&l);

    /* 0.3/s: one per ceil(3333.3) ms */
    REQUIRE(lim_on(&l, 0.3, 1, 0, 0));
    granted(&l, 0, 1);
    refused(&l, 0, 3334 + G);
    sa__limiter_free(&l);
}

/* A burst below the rate spaces the sends: 20/s with burst 2 is at most 2
 * in any 100 ms (and still 20 in any second). */
TEST(burst_spaces_sends)
{
    sa__limiter l;
    int64_t ready = 0, now = 0;
    int sent = 0, guard;

    REQUIRE(lim_on(&l, 20.0, 2, 0, 0));
    granted(&l, 0, 2);
    refused(&l, 0, 100);
    sa__limiter_free(&l);

    /* a greedy sender gets 2 per 100 ms, so 20 in [0, 1000) ... and then
     * the second-long window holds the 21st until 1000 + guard */
    REQUIRE(lim_on(&l, 20.0, 2, 0, 0));
    for (guard = 0; now < 1000 && guard < 1000; guard++) {
        if (sa__limiter_acquire(&l, now, &ready)) sent++;
        else now = ready;
    }
    CHECK_EQ_INT(sent, 20);
    CHECK_EQ_INT(now, 1000 + G);
    sa__limiter_free(&l);
}

TEST(window_exactly)
{
    sa__limiter l;
    int i;

    REQUIRE(lim_on(&l, 1000.0, 1000, 3, 1000));
    for (i = 0; i < 3; i++) granted(&l, 10 * i, 1);
    held_until(&l, 30, 1000 + G);
    refused(&l, 1000 + G, 1010 + G);
    sa__limiter_free(&l);
}

/* Refused by both: the ready time is the later of the two. */
TEST(both_limits_hold)
{
    sa__limiter l;

    REQUIRE(lim_on(&l, 5.0, 5, 5, 10000));
    granted(&l, 0, 5);
    held_until(&l, 0, 10000 + G);       /* the long window, not the second */
    sa__limiter_free(&l);

    REQUIRE(lim_on(&l, 1.0, 1, 100, 1000));
    granted(&l, 0, 1);
    refused(&l, 0, 1000 + G);           /* the second */
    sa__limiter_free(&l);
}

TEST(penalize_after_429)
{
    sa__limiter l;
    int64_t ready = 0;

    REQUIRE(lim_on(&l, 5.0, 5, 250, 300000));
    granted(&l, 1000, 1);
    sa__limiter_penalize(&l, 1000, 3000);
    refused(&l, 1000, 4000);
    refused(&l, 3999, 4000);
    /* the pause is over: the windows alone decide again */
    granted(&l, 4000, 5);
    refused(&l, 4000, 5000 + G);
    /* a shorter penalty never brings a later ready time forward */
    sa__limiter_penalize(&l, 4000, 10000);
    sa__limiter_penalize(&l, 4000, 100);
    refused(&l, 4000, 14000);
    /* a pause of 0 (or less) changes nothing */
    sa__limiter_penalize(&l, 300000, -5);
    sa__limiter_penalize(&l, 300000, 0);
    granted(&l, 300000, 1);
    /* a huge pause saturates instead of overflowing */
    sa__limiter_penalize(&l, 300000, INT64_MAX);
    CHECK_EQ_INT(sa__limiter_acquire(&l, 300001, &ready), 0);
    CHECK(ready > 300001);
    sa__limiter_free(&l);
}

TEST(time_going_backwards_is_no_time)
{
    sa__limiter l;

    REQUIRE(lim_on(&l, 5.0, 5, 0, 0));
    granted(&l, 5000, 5);
    refused(&l, 100, 6000 + G);
    refused(&l, -100000, 6000 + G);
    granted(&l, 6000 + G, 1);
    sa__limiter_free(&l);
}

/* A greedy sender gets exactly the configured throughput, without drift. */
TEST(greedy_sender_exact_throughput)
{
    sa__limiter l;
    int64_t now = 0, ready = 0, last = 0;
    int sent = 0, guard;

    /* 3/s: three per 1000 ms + guard, for ever */
    REQUIRE(lim_on(&l, 3.0, 3, 0, 0));
    for (guard = 0; sent < 3000 && guard < 100000; guard++) {
        if (sa__limiter_acquire(&l, now, &ready)) {
            sent++;
            last = now;
        } else {
            CHECK(ready > now);
            now = ready;
        }
    }
    CHECK_EQ_INT(sent, 3000);
    CHECK_EQ_INT(last, (int64_t)999 * (1000 + G));
    sa__limiter_free(&l);

    /* the API's limits: 250 per 300 s dominate 5/s: exactly 500 sends
     * before 600 s + 2 guards, the 251st exactly 300 s + guard after the
     * first */
    REQUIRE(lim_on(&l, 5.0, 5, 250, 300000));
    now = 0;
    sent = 0;
    for (guard = 0; now < 600000 + 2 * G && guard < 100000; guard++) {
        if (sa__limiter_acquire(&l, now, &ready)) {
            sent++;
            if (sent == 250) CHECK_EQ_INT(now, 49 * (1000 + G));
            if (sent == 251) CHECK_EQ_INT(now, 300000 + G);
        } else {
            now = ready;
        }
    }
    CHECK_EQ_INT(sent, 500);
    CHECK_EQ_INT(now, 600000 + 2 * G);
    sa__limiter_free(&l);
}

/* The long window's budget, read without taking anything. */
TEST(room_of_the_long_window)
{
    sa__limiter l;
    int64_t next = 0;
    int i;

    REQUIRE(sa__limiter_init(&l, NULL, 0, 5.0, 5, 40, 20000) == SA_OK);
    CHECK_EQ_INT(sa__limiter_room(&l, 0, &next), INT_MAX);
    CHECK_EQ_INT(next, INT64_MAX);
    sa__limiter_free(&l);
    REQUIRE(lim_on(&l, 5.0, 5, 0, 0));
    CHECK_EQ_INT(sa__limiter_room(&l, 0, &next), INT_MAX);
    sa__limiter_free(&l);

    REQUIRE(lim_on(&l, 5.0, 5, 4, 20000));
    CHECK_EQ_INT(sa__limiter_room(&l, 0, &next), 4);
    CHECK_EQ_INT(next, INT64_MAX);
    for (i = 0; i < 3; i++) granted(&l, 100 * i, 1);
    CHECK_EQ_INT(sa__limiter_room(&l, 500, &next), 1);
    CHECK_EQ_INT(next, 20000 + G);
    CHECK_EQ_INT(sa__limiter_room(&l, 500, NULL), 1);  /* nothing taken */
    CHECK_EQ_INT(sa__limiter_room(&l, 20000 + G, &next), 2);
    CHECK_EQ_INT(next, 20100 + G);
    CHECK_EQ_INT(sa__limiter_room(&l, 20200 + G, &next), 4);
    CHECK_EQ_INT(next, INT64_MAX);
    /* a full ring, then ageing out one by one */
    granted(&l, 300, 1);
    CHECK_EQ_INT(sa__limiter_room(&l, 300, &next), 0);
    refused(&l, 300, next);
    CHECK_EQ_INT(sa__limiter_room(&l, 20250 + G, &next), 3);
    CHECK_EQ_INT(next, 20300 + G);
    sa__limiter_free(&l);
}

/* Check the invariants of one run: at most floor(rate) sends in ANY 1000 ms
 * (one per ceil(1000 / rate) ms below 1/s), at most burst in any
 * ceil(burst * 1000 / rate) ms, at most window_max in any window_ms. */
static void check_invariants(size_t c, const lim_case *k,
                             const int64_t *times, size_t n)
{
    size_t whole = (size_t)floor(k->rate), seen;
    int64_t span = 1000;

    if (whole < 1) {
        whole = 1;
        span = (int64_t)ceil(1000.0 / k->rate);
    }
    seen = max_in_window(times, n, span);
    if (seen > whole)
        HARNESS_FAIL("case %zu: %zu sends in %lld ms (max %zu)", c, seen,
                     (long long)span, whole);
    /* the guard: not even in 1000 ms + guard */
    seen = max_in_window(times, n, span + G);
    if (seen > whole)
        HARNESS_FAIL("case %zu: %zu sends in %lld ms + guard", c, seen,
                     (long long)span);
    if ((size_t)k->burst < whole) {
        int64_t bspan = (int64_t)ceil((double)k->burst * 1000.0 / k->rate);
        seen = max_in_window(times, n, bspan);
        if (seen > (size_t)k->burst)
            HARNESS_FAIL("case %zu: %zu sends in %lld ms (burst %d)", c, seen,
                         (long long)bspan, k->burst);
    }
    if (k->window_max > 0) {
        seen = max_in_window(times, n, k->window_ms + G);
        if (seen > (size_t)k->window_max)
            HARNESS_FAIL("case %zu: %zu sends in the window (max %d)", c,
                         seen, k->window_max);
    }
}

/* 5,000 acquires at random times (and at the reported ready times): the
 * invariants hold and every reported ready time is exact. */
TEST(random_sends_never_exceed_either_limit)
{
    static const lim_case cases[] = {
        { 5.0, 5, 250, 300000 },
        { 5.0, 5, 40, 20000 },
        { 3.0, 2, 7, 2000 },
        { 0.5, 1, 0, 0 },
        { 10.0, 1, 50, 10000 },
        { 7.5, 20, 30, 5000 },
        { 20.0, 3, 0, 0 },
    };
    enum { SENDS = 5000 };
    int64_t *times = malloc(sizeof *times * SENDS);
    size_t c;

    REQUIRE(times);
    for (c = 0; c < N(cases); c++) {
        const lim_case *k = &cases[c];
        sa__limiter l;
        uint64_t rng = 0xC0FFEEULL + c;
        int64_t now = 12345, ready = 0, step = (int64_t)(2000.0 / k->rate) + 1;
        size_t n = 0;
        int tries;

        REQUIRE(lim_on(&l, k->rate, k->burst, k->window_max, k->window_ms));
        for (tries = 0; n < SENDS && tries < 50 * SENDS; tries++) {
            uint64_t v = sa__rand(&rng);
            if (sa__limiter_acquire(&l, now, &ready)) {
                times[n++] = now;
            } else {
                CHECK(ready > now);
                if (v & 1) {
                    /* exactness: refused just before, granted at ready */
                    CHECK_EQ_INT(sa__limiter_acquire(&l, ready - 1, &ready), 0);
                    now = ready;
                    CHECK_EQ_INT(sa__limiter_acquire(&l, now, &ready), 1);
                    times[n++] = now;
                }
            }
            /* jump ahead: mostly short steps, sometimes long pauses */
            v >>= 1;
            now += (v % 16 == 0) ? (int64_t)(v % 20000)
                                 : (int64_t)(v % (uint64_t)step);
        }
        CHECK_EQ_INT(n, SENDS);
        check_invariants(c, k, times, n);
        sa__limiter_free(&l);
    }
    free(times);
}

int main(void)
{
    RUN(disabled_always_allows);
    RUN(init_validates);
    RUN(rate_window_exactly);
    RUN(fractional_rates);
    RUN(burst_spaces_sends);
    RUN(window_exactly);
    RUN(both_limits_hold);
    RUN(penalize_after_429);
    RUN(time_going_backwards_is_no_time);
    RUN(greedy_sender_exact_throughput);
    RUN(room_of_the_long_window);
    RUN(random_sends_never_exceed_either_limit);
    (void)harness_slurp;
    return harness_report();
}
