/*
 * limiter.c - the client-side rate limiter: a token bucket AND a sliding
 * window, both enforced (API.md section 10: 5 requests per second and 250
 * per 300 s, per key and per IP).
 *
 * Pure: time is an input (monotonic milliseconds); nothing here reads a
 * clock, sleeps or keeps global state.
 *
 * Exact arithmetic, no drift.  Every quantity is a whole number of
 * milliseconds:
 *   - The bucket holds send credit in milliseconds.  One send costs
 *     interval = ceil(1000 / rate) ms of credit; the credit grows by one per
 *     elapsed millisecond up to burst * interval.  The `tokens` field holds
 *     that credit; it is a double in the shared struct but only ever holds
 *     integers below 2^53, where double arithmetic is exact.  A rate whose
 *     interval is not a whole number of milliseconds (3/s -> 334 ms) is
 *     rounded down, never up, so the configured limit always holds.
 *   - The window keeps the times of the last window_max sends in a ring.  A
 *     send at t is allowed when fewer than window_max sends happened in
 *     (t - window_ms, t], that is when the window_max-th most recent send
 *     happened at or before t - window_ms.
 * What that guarantees (tests/c/test_limiter.c checks it over thousands of
 * sends at random times): any half-open interval [t, t + L) holds at most
 * burst + floor((L - 1) / interval) sends, and any window_ms holds at most
 * window_max.  A refusal reports the exact earliest time both hold again.
 *
 * Time that goes backwards (a caller mixing clocks) is treated as "no time
 * passed": the limiter never refills or forgets sends because of it.
 */
#include "sa_internal.h"

#include <math.h>
#include <string.h>

/* No credit or interval beyond this (~35 years in ms): keeps every value far
 * below 2^53, where doubles hold integers exactly. */
#define LIMITER_MAX_MS ((int64_t)1 << 40)
/* Largest window ring accepted (8 MiB of send times). */
#define LIMITER_MAX_WINDOW (1 << 20)

/* Milliseconds of credit one send costs: ceil(1000 / rate). */
static int64_t limiter_interval(const sa_limiter *l)
{
    double q = 1000.0 / l->rate;
    int64_t iv = (int64_t)q;
    if ((double)iv < q) iv++;
    return iv < 1 ? 1 : iv;
}

static double limiter_capacity(const sa_limiter *l)
{
    return l->burst * (double)limiter_interval(l);
}

/* Time as the limiter sees it: never earlier than the last time it saw. */
static int64_t limiter_clamp(const sa_limiter *l, int64_t now_ms)
{
    if (l->last_ms != INT64_MIN && now_ms < l->last_ms) return l->last_ms;
    return now_ms;
}

/* Add the credit earned since last_ms (never above the capacity). */
static void limiter_refill(sa_limiter *l, int64_t now_ms)
{
    double cap = limiter_capacity(l);
    uint64_t elapsed;

    if (l->last_ms == INT64_MIN) {  /* first use: the bucket starts full */
        l->last_ms = now_ms;
        return;
    }
    elapsed = (uint64_t)now_ms - (uint64_t)l->last_ms;
    if (l->tokens >= cap || (double)elapsed >= cap - l->tokens)
        l->tokens = cap;
    else
        l->tokens += (double)elapsed;
    l->last_ms = now_ms;
}

/* 1 when the window has room at now_ms, else 0 with the time it will. */
static int limiter_window_ok(const sa_limiter *l, int64_t now_ms,
                             int64_t *ready_at_ms)
{
    int64_t oldest;

    if (!l->ring || l->ring_count < l->window_max) return 1;
    oldest = l->ring[l->ring_head];
    if (now_ms - oldest >= l->window_ms) return 1;
    *ready_at_ms = oldest + l->window_ms;
    return 0;
}

static void limiter_window_record(sa_limiter *l, int64_t now_ms)
{
    if (!l->ring) return;
    if (l->ring_count < l->window_max) {
        l->ring[(l->ring_head + l->ring_count) % l->window_max] = now_ms;
        l->ring_count++;
    } else {
        l->ring[l->ring_head] = now_ms;
        l->ring_head = (l->ring_head + 1) % l->window_max;
    }
}

/* Set up a limiter.  With enabled == 0 nothing is checked and every acquire
 * succeeds.  Otherwise rate (> 0 per second) and burst (>= 1) define the
 * bucket; window_max sends per window_ms define the window (either 0: no
 * window).  Returns SA_OK, SA_ERR_INVALID_ARGUMENT or SA_ERR_NOMEM; after a
 * failure the limiter needs no sa_limiter_free (it is safe to call). */
int sa_limiter_init(sa_limiter *l, const sa_mem *mem, int enabled,
                    double rate, int burst, int window_max,
                    int64_t window_ms)
{
    if (!l) return SA_ERR_INVALID_ARGUMENT;
    memset(l, 0, sizeof *l);
    l->mem = mem;
    l->last_ms = INT64_MIN;
    if (!enabled) return SA_OK;

    if (!(rate > 0.0) || !isfinite(rate) || 1000.0 / rate > (double)LIMITER_MAX_MS
        || burst < 1 || window_max < 0 || window_ms < 0
        || window_max > LIMITER_MAX_WINDOW || window_ms > LIMITER_MAX_MS)
        return SA_ERR_INVALID_ARGUMENT;
    l->rate = rate;
    l->burst = (double)burst;
    if (limiter_capacity(l) > (double)LIMITER_MAX_MS * 1024.0)
        return SA_ERR_INVALID_ARGUMENT;
    l->tokens = limiter_capacity(l);
    if (window_max > 0 && window_ms > 0) {
        l->ring = sa__calloc(mem, (size_t)window_max, sizeof *l->ring);
        if (!l->ring) return SA_ERR_NOMEM;
        l->window_max = window_max;
        l->window_ms = window_ms;
    }
    l->enabled = 1;
    return SA_OK;
}

/* Release the ring; the limiter is left disabled.  NULL is fine. */
void sa_limiter_free(sa_limiter *l)
{
    if (!l) return;
    sa__free(l->mem, l->ring);
    l->ring = NULL;
    l->ring_count = 0;
    l->enabled = 0;
}

int sa_limiter_acquire(sa_limiter *l, int64_t now_ms, int64_t *ready_at_ms)
{
    int64_t interval, bucket_ready = 0, window_ready = 0;
    int bucket_ok, window_ok;

    if (!l || !l->enabled) return 1;
    now_ms = limiter_clamp(l, now_ms);
    limiter_refill(l, now_ms);
    interval = limiter_interval(l);

    bucket_ok = l->tokens >= (double)interval;
    if (!bucket_ok) bucket_ready = now_ms + (interval - (int64_t)l->tokens);
    window_ok = limiter_window_ok(l, now_ms, &window_ready);

    if (bucket_ok && window_ok) {
        l->tokens -= (double)interval;
        limiter_window_record(l, now_ms);
        return 1;
    }
    if (ready_at_ms) {
        /* Both conditions only get better while nobody sends, so the
         * earliest time both hold is the later of the two. */
        int64_t r = bucket_ok ? window_ready
                  : window_ok ? bucket_ready
                  : (bucket_ready > window_ready ? bucket_ready : window_ready);
        *ready_at_ms = r;
    }
    return 0;
}

/* After a 429 the server counted more than we did: drain the bucket so that
 * the next send is at now_ms + pause_ms at the earliest, and the burst has
 * to be earned again.  Never brings a later ready time forward.  pause_ms
 * below 0 counts as 0 (only the burst is drained). */
void sa_limiter_penalize(sa_limiter *l, int64_t now_ms, int64_t pause_ms)
{
    double floor_credit;

    if (!l || !l->enabled) return;
    if (pause_ms < 0) pause_ms = 0;
    if (pause_ms > LIMITER_MAX_MS) pause_ms = LIMITER_MAX_MS;
    now_ms = limiter_clamp(l, now_ms);
    limiter_refill(l, now_ms);
    floor_credit = (double)(limiter_interval(l) - pause_ms);
    if (l->tokens > floor_credit) l->tokens = floor_credit;
}
