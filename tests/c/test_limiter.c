/*
 * test_limiter.c - the token bucket + sliding window (core/src/limiter.c):
 * exact ready times, penalties, and the two invariants checked over
 * thousands of sends at random times with a fake clock.
 */
#include "harness.h"
#include "support_fakeserver.h"

#include <math.h>
#include <stdint.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))

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

TEST(disabled_always_allows)
{
    sa_limiter l;
    int64_t ready = -7;
    int i, ok = 1;

    CHECK_EQ_INT(sa_limiter_init(&l, NULL, 0, 5.0, 5, 250, 300000), SA_OK);
    for (i = 0; i < 10000; i++) ok &= sa_limiter_acquire(&l, 0, &ready);
    CHECK(ok);
    CHECK_EQ_INT(ready, -7);
    sa_limiter_penalize(&l, 0, 100000);
    CHECK_EQ_INT(sa_limiter_acquire(&l, 0, &ready), 1);
    CHECK_EQ_INT(sa_limiter_acquire(NULL, 0, &ready), 1);
    sa_limiter_free(&l);
    sa_limiter_free(NULL);
}

TEST(init_validates)
{
    sa_limiter l;
    fs_mem m;

    CHECK_EQ_INT(sa_limiter_init(NULL, NULL, 1, 5, 5, 250, 300000),
                 SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(sa_limiter_init(&l, NULL, 1, 0.0, 5, 250, 300000),
                 SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(sa_limiter_init(&l, NULL, 1, -1.0, 5, 250, 300000),
                 SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(sa_limiter_init(&l, NULL, 1, NAN, 5, 250, 300000),
                 SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(sa_limiter_init(&l, NULL, 1, INFINITY, 5, 250, 300000),
                 SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(sa_limiter_init(&l, NULL, 1, 1e-12, 5, 250, 300000),
                 SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(sa_limiter_init(&l, NULL, 1, 5.0, 0, 250, 300000),
                 SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(sa_limiter_init(&l, NULL, 1, 5.0, 5, -1, 300000),
                 SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(sa_limiter_init(&l, NULL, 1, 5.0, 5, 250, -1),
                 SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(sa_limiter_init(&l, NULL, 1, 5.0, 5, 1 << 30, 300000),
                 SA_ERR_INVALID_ARGUMENT);
    /* no window when either bound is 0: no ring */
    CHECK_EQ_INT(sa_limiter_init(&l, NULL, 1, 5.0, 5, 0, 300000), SA_OK);
    CHECK(l.ring == NULL);
    sa_limiter_free(&l);
    /* the ring goes through sa_mem; out of memory is reported */
    fs_mem_init(&m, 1, 0);
    CHECK_EQ_INT(sa_limiter_init(&l, &m.mem, 1, 5.0, 5, 250, 300000),
                 SA_ERR_NOMEM);
    sa_limiter_free(&l);
    CHECK_EQ_INT(m.live, 0);
    fs_mem_init(&m, 0, 0);
    CHECK_EQ_INT(sa_limiter_init(&l, &m.mem, 1, 5.0, 5, 250, 300000), SA_OK);
    CHECK_EQ_INT(m.live, 1);
    sa_limiter_free(&l);
    CHECK_EQ_INT(m.live, 0);
}

TEST(burst_then_rate_exactly)
{
    sa_limiter l;
    int64_t ready = 0;
    int i;

    REQUIRE(sa_limiter_init(&l, NULL, 1, 5.0, 5, 0, 0) == SA_OK);
    for (i = 0; i < 5; i++) CHECK_EQ_INT(sa_limiter_acquire(&l, 1000, &ready), 1);
    CHECK_EQ_INT(sa_limiter_acquire(&l, 1000, &ready), 0);
    CHECK_EQ_INT(ready, 1200);
    CHECK_EQ_INT(sa_limiter_acquire(&l, 1199, &ready), 0);
    CHECK_EQ_INT(ready, 1200);
    CHECK_EQ_INT(sa_limiter_acquire(&l, 1200, &ready), 1);
    CHECK_EQ_INT(sa_limiter_acquire(&l, 1250, &ready), 0);
    CHECK_EQ_INT(ready, 1400);
    /* a long pause refills the bucket to the burst, not beyond */
    for (i = 0; i < 5; i++) CHECK_EQ_INT(sa_limiter_acquire(&l, 900000, &ready), 1);
    CHECK_EQ_INT(sa_limiter_acquire(&l, 900000, &ready), 0);
    CHECK_EQ_INT(ready, 900200);
    sa_limiter_free(&l);
}

TEST(window_exactly)
{
    sa_limiter l;
    int64_t ready = 0;

    REQUIRE(sa_limiter_init(&l, NULL, 1, 1000.0, 1000, 3, 1000) == SA_OK);
    CHECK_EQ_INT(sa_limiter_acquire(&l, 0, &ready), 1);
    CHECK_EQ_INT(sa_limiter_acquire(&l, 10, &ready), 1);
    CHECK_EQ_INT(sa_limiter_acquire(&l, 20, &ready), 1);
    CHECK_EQ_INT(sa_limiter_acquire(&l, 30, &ready), 0);
    CHECK_EQ_INT(ready, 1000);
    CHECK_EQ_INT(sa_limiter_acquire(&l, 999, &ready), 0);
    CHECK_EQ_INT(ready, 1000);
    CHECK_EQ_INT(sa_limiter_acquire(&l, 1000, &ready), 1);
    CHECK_EQ_INT(sa_limiter_acquire(&l, 1000, &ready), 0);
    CHECK_EQ_INT(ready, 1010);
    sa_limiter_free(&l);
}

/* Refused by both: the ready time is the later of the two. */
TEST(both_limits_hold)
{
    sa_limiter l;
    int64_t ready = 0;
    int i;

    REQUIRE(sa_limiter_init(&l, NULL, 1, 5.0, 5, 5, 10000) == SA_OK);
    for (i = 0; i < 5; i++) CHECK_EQ_INT(sa_limiter_acquire(&l, 0, &ready), 1);
    CHECK_EQ_INT(sa_limiter_acquire(&l, 0, &ready), 0);
    CHECK_EQ_INT(ready, 10000);          /* the window, not the bucket's 200 */
    CHECK_EQ_INT(sa_limiter_acquire(&l, 9999, &ready), 0);
    CHECK_EQ_INT(sa_limiter_acquire(&l, 10000, &ready), 1);
    sa_limiter_free(&l);

    REQUIRE(sa_limiter_init(&l, NULL, 1, 1.0, 1, 100, 1000) == SA_OK);
    CHECK_EQ_INT(sa_limiter_acquire(&l, 0, &ready), 1);
    CHECK_EQ_INT(sa_limiter_acquire(&l, 0, &ready), 0);
    CHECK_EQ_INT(ready, 1000);           /* the bucket */
    sa_limiter_free(&l);
}

TEST(penalize_after_429)
{
    sa_limiter l;
    int64_t ready = 0;
    int i;

    REQUIRE(sa_limiter_init(&l, NULL, 1, 5.0, 5, 250, 300000) == SA_OK);
    CHECK_EQ_INT(sa_limiter_acquire(&l, 1000, &ready), 1);
    sa_limiter_penalize(&l, 1000, 3000);
    CHECK_EQ_INT(sa_limiter_acquire(&l, 1000, &ready), 0);
    CHECK_EQ_INT(ready, 4000);
    CHECK_EQ_INT(sa_limiter_acquire(&l, 3999, &ready), 0);
    CHECK_EQ_INT(ready, 4000);
    CHECK_EQ_INT(sa_limiter_acquire(&l, 4000, &ready), 1);
    /* the burst is gone: it has to be earned again */
    CHECK_EQ_INT(sa_limiter_acquire(&l, 4000, &ready), 0);
    CHECK_EQ_INT(ready, 4200);
    /* a shorter penalty never brings a later ready time forward */
    sa_limiter_penalize(&l, 4000, 10000);
    sa_limiter_penalize(&l, 4000, 100);
    CHECK_EQ_INT(sa_limiter_acquire(&l, 4000, &ready), 0);
    CHECK_EQ_INT(ready, 14000);
    /* a pause of 0 (or less) only drains the burst */
    for (i = 0; i < 5; i++) CHECK_EQ_INT(sa_limiter_acquire(&l, 100000, &ready), 1);
    for (i = 0; i < 5; i++) sa_limiter_acquire(&l, 200000, &ready);
    sa_limiter_penalize(&l, 300000, -5);
    CHECK_EQ_INT(sa_limiter_acquire(&l, 300000, &ready), 1);
    CHECK_EQ_INT(sa_limiter_acquire(&l, 300000, &ready), 0);
    CHECK_EQ_INT(ready, 300200);
    sa_limiter_free(&l);
}

TEST(time_going_backwards_is_no_time)
{
    sa_limiter l;
    int64_t ready = 0;
    int i;

    REQUIRE(sa_limiter_init(&l, NULL, 1, 5.0, 5, 0, 0) == SA_OK);
    for (i = 0; i < 5; i++) CHECK_EQ_INT(sa_limiter_acquire(&l, 5000, &ready), 1);
    CHECK_EQ_INT(sa_limiter_acquire(&l, 100, &ready), 0);
    CHECK_EQ_INT(ready, 5200);
    CHECK_EQ_INT(sa_limiter_acquire(&l, -100000, &ready), 0);
    CHECK_EQ_INT(ready, 5200);
    CHECK_EQ_INT(sa_limiter_acquire(&l, 5200, &ready), 1);
    sa_limiter_free(&l);
}

/* A greedy sender gets exactly the configured throughput, without drift. */
TEST(greedy_sender_exact_throughput)
{
    sa_limiter l;
    int64_t now = 0, ready = 0, last = 0;
    int sent = 0, guard;

    /* 3/s: one send per 334 ms (rounded so the limit holds), burst 2 */
    REQUIRE(sa_limiter_init(&l, NULL, 1, 3.0, 2, 0, 0) == SA_OK);
    for (guard = 0; sent < 3002 && guard < 100000; guard++) {
        if (sa_limiter_acquire(&l, now, &ready)) {
            sent++;
            last = now;
        } else {
            CHECK(ready > now);
            now = ready;
        }
    }
    CHECK_EQ_INT(sent, 3002);
    CHECK_EQ_INT(last, (int64_t)3000 * 334);
    sa_limiter_free(&l);

    /* the API's limits: 250 per 300 s dominate 5/s: exactly 500 sends in
     * [0, 600 s), the 251st exactly 300 s after the first */
    REQUIRE(sa_limiter_init(&l, NULL, 1, 5.0, 5, 250, 300000) == SA_OK);
    now = 0;
    sent = 0;
    for (guard = 0; now < 600000 && guard < 100000; guard++) {
        if (sa_limiter_acquire(&l, now, &ready)) {
            sent++;
            if (sent == 250) CHECK_EQ_INT(now, 245 * 200);
            if (sent == 251) CHECK_EQ_INT(now, 300000);
        } else {
            now = ready;
        }
    }
    CHECK_EQ_INT(sent, 500);
    sa_limiter_free(&l);
}

typedef struct lim_case {
    double rate;
    int burst;
    int window_max;
    int64_t window_ms;
    int64_t interval;   /* ceil(1000 / rate) */
} lim_case;

/* 5,000 acquires at random times (and at the reported ready times): no
 * interval ever holds more than the bucket allows, no window more than
 * window_max, and every reported ready time is exact. */
TEST(random_sends_never_exceed_either_limit)
{
    static const lim_case cases[] = {
        { 5.0, 5, 250, 300000, 200 },
        { 3.0, 2, 7, 2000, 334 },
        { 0.5, 1, 0, 0, 2000 },
        { 10.0, 1, 50, 10000, 100 },
        { 7.0, 20, 30, 5000, 143 },
    };
    static const int64_t lens[] = { 1, 100, 200, 999, 1000, 1001, 5000, 60000 };
    enum { SENDS = 5000 };
    int64_t *times = malloc(sizeof *times * SENDS);
    size_t c;

    REQUIRE(times);
    for (c = 0; c < N(cases); c++) {
        const lim_case *k = &cases[c];
        sa_limiter l;
        uint64_t rng = 0xC0FFEEULL + c;
        int64_t now = 12345, ready = 0;
        size_t n = 0, i;
        int tries;

        REQUIRE(sa_limiter_init(&l, NULL, 1, k->rate, k->burst, k->window_max,
                                k->window_ms) == SA_OK);
        for (tries = 0; n < SENDS && tries < 50 * SENDS; tries++) {
            uint64_t v = sa__rand(&rng);
            if (sa_limiter_acquire(&l, now, &ready)) {
                times[n++] = now;
            } else {
                CHECK(ready > now);
                if (v & 1) {
                    /* exactness: refused just before, granted at ready */
                    CHECK_EQ_INT(sa_limiter_acquire(&l, ready - 1, &ready), 0);
                    now = ready;
                    CHECK_EQ_INT(sa_limiter_acquire(&l, now, &ready), 1);
                    times[n++] = now;
                }
            }
            /* jump ahead: mostly short steps, sometimes long pauses */
            v >>= 1;
            now += (v % 16 == 0) ? (int64_t)(v % 20000)
                                 : (int64_t)(v % (uint64_t)(k->interval * 2));
        }
        CHECK_EQ_INT(n, SENDS);
        for (i = 0; i < N(lens); i++) {
            size_t bound = (size_t)k->burst
                         + (size_t)((lens[i] - 1) / k->interval);
            size_t seen = max_in_window(times, n, lens[i]);
            if (seen > bound)
                HARNESS_FAIL("case %zu: %zu sends in %lld ms (max %zu)", c,
                             seen, (long long)lens[i], bound);
        }
        if (k->window_max > 0) {
            size_t seen = max_in_window(times, n, k->window_ms);
            if (seen > (size_t)k->window_max)
                HARNESS_FAIL("case %zu: %zu sends in the window (max %d)", c,
                             seen, k->window_max);
        }
        sa_limiter_free(&l);
    }
    free(times);
}

int main(void)
{
    RUN(disabled_always_allows);
    RUN(init_validates);
    RUN(burst_then_rate_exactly);
    RUN(window_exactly);
    RUN(both_limits_hold);
    RUN(penalize_after_429);
    RUN(time_going_backwards_is_no_time);
    RUN(greedy_sender_exact_throughput);
    RUN(random_sends_never_exceed_either_limit);
    (void)harness_slurp;
    return harness_report();
}
