/* limiter.c - the client-side rate limiter: the API's sliding windows (pure).
 *
 * The client-side rate limiter: the API's own model (API.md
 * section 10), sliding windows counted on arrival: at most 5 requests in
 * any 1 s AND at most 250 in any 300 s, per key and per IP.
 *
 * Pure: time is an input (monotonic milliseconds); nothing here reads a
 * clock, sleeps or keeps global state.
 *
 * The model.  The limiter is a set of sliding windows, all enforced.  A
 * window "at most max sends in any span_ms" keeps the times of its last max
 * sends in a ring; a send at t is allowed when fewer than max sends happened
 * in (t - span_ms, t], that is when the max-th most recent one happened at
 * or before t - span_ms.  Then any half-open interval [a, a + span_ms) holds
 * at most max sends.  The windows, for rate R, burst B, window_max W per
 * window_ms:
 *   rate   at most n = max(1, floor(R)) sends in any max(1000, ceil(1000 /
 *          R)) ms: R is the number of requests allowed in any second
 *          (5 -> 5 per 1000 ms); a fractional R counts its whole part
 *          (2.5 -> 2 per 1000 ms), and an R below 1 means one request per
 *          1000 / R ms (0.5 -> 1 per 2000 ms).
 *   burst  only when B < n: at most B sends in any ceil(B * 1000 / R) ms.
 *          Client-side smoothing (no server window to mirror): B = 1 spaces
 *          the requests evenly, 1000 / R ms apart.
 *   long   at most W sends in any window_ms (none when W or window_ms is 0).
 * Safety margin.  A slot is taken when the request is handed to libcurl,
 * but the server counts it on arrival, and that delay varies a little
 * (connection reuse, a busy loop).  Two sends s1 < s2 whose delays differ
 * by at most G arrive at least s2 - s1 - G apart, so the windows that
 * mirror the server's (rate and long) are SA__LIMITER_GUARD_MS (20 ms)
 * longer here than on the server: 5 per 1020 ms and 250 per 300020 ms with
 * the defaults (why 20: BENCHMARKS.md, "The rate-limit guards").  A shared
 * budget (rate_limit_scope, budget.c) keeps its own copy of these windows
 * with a wider guard, SA__BUDGET_GUARD_MS (50 ms).  A 429 that still
 * happens is retried by the job and pauses the limiter
 * (sa__limiter_penalize).
 *
 * A refusal reports the exact earliest time every window (and the penalty)
 * allows a send again: each condition only gets better while nobody sends,
 * so it is the latest of their ready times.  tests/c/test_limiter.c checks
 * the invariants and the exactness over thousands of sends at random times.
 *
 * Time that goes backwards (a caller mixing clocks) is treated as "no time
 * passed": the limiter never forgets sends because of it.
 */
#include "sa_internal.h"

#include <limits.h>
#include <math.h>
#include <string.h>

/* No span or pause beyond this (~35 years in ms). */
#define LIMITER_MAX_MS ((int64_t)1 << 40)
/* Largest number of send times kept over all windows (8 MiB). */
#define LIMITER_MAX_RING (1 << 20)

/* Time as the limiter sees it: never earlier than the last time it saw. */
static int64_t limiter_clamp(sa__limiter *l, int64_t now_ms)
{
    if (l->last_ms != INT64_MIN && now_ms < l->last_ms) return l->last_ms;
    l->last_ms = now_ms;
    return now_ms;
}

/* a + b for b >= 0, saturating at INT64_MAX. */
static int64_t sat_add(int64_t a, int64_t b)
{
    return a > INT64_MAX - b ? INT64_MAX : a + b;
}

/* 1 when w has room at now_ms, else 0 with the time it will. */
static int window_ok(const sa__limiter_window *w, int64_t now_ms,
                     int64_t *ready_at_ms)
{
    int64_t oldest;

    if (w->count < w->max) return 1;
    oldest = w->ring[w->head];
    if (now_ms - oldest >= w->span_ms) return 1;
    *ready_at_ms = sat_add(oldest, w->span_ms);
    return 0;
}

static void window_record(sa__limiter_window *w, int64_t now_ms)
{
    if (w->count < w->max) {
        w->ring[(w->head + w->count) % w->max] = now_ms;
        w->count++;
    } else {
        w->ring[w->head] = now_ms;
        w->head = (w->head + 1) % w->max;
    }
}

/* ceil(x) as an integer, for 0 < x <= LIMITER_MAX_MS. */
static int64_t ceil_ms(double x)
{
    int64_t v = (int64_t)x;
    return (double)v < x ? v + 1 : v;
}

static void add_window(sa__limiter *l, int max, int64_t span_ms)
{
    l->win[l->n_win].max = max;
    l->win[l->n_win].span_ms = span_ms;
    l->n_win++;
}

/* Lay out the windows of the model (see the top of the file); 0 when the
 * parameters are out of range. */
static int plan_windows(sa__limiter *l, double rate, int burst, int window_max,
                        int64_t window_ms)
{
    double whole = floor(rate);
    int n;

    if (!(rate > 0.0) || !isfinite(rate) || 1000.0 / rate > (double)LIMITER_MAX_MS
        || whole > (double)LIMITER_MAX_RING || burst < 1 || window_max < 0
        || window_ms < 0 || window_max > LIMITER_MAX_RING
        || window_ms > LIMITER_MAX_MS)
        return 0;
    n = whole < 1.0 ? 1 : (int)whole;
    if (n + (window_max > 0 && window_ms > 0 ? window_max : 0)
        + (burst < n ? burst : 0) > LIMITER_MAX_RING)
        return 0;
    add_window(l, n, (rate >= 1.0 ? 1000 : ceil_ms(1000.0 / rate))
                     + SA__LIMITER_GUARD_MS);
    if (burst < n) add_window(l, burst, ceil_ms((double)burst * 1000.0 / rate));
    if (window_max > 0 && window_ms > 0) {
        l->long_win = l->n_win;
        add_window(l, window_max, window_ms + SA__LIMITER_GUARD_MS);
    }
    return 1;
}

/* Set up a limiter.  With enabled == 0 nothing is checked and every acquire
 * succeeds.  One allocation holds the rings of every window.  Returns SA_OK,
 * SA_ERR_INVALID_ARGUMENT or SA_ERR_NOMEM; after a failure nothing is held
 * (sa__limiter_free is safe to call). */
int sa__limiter_init(sa__limiter *l, const sa_mem *mem, int enabled,
                    double rate, int burst, int window_max,
                    int64_t window_ms)
{
    size_t total = 0;
    int64_t *ring;
    int i;

    if (!l) return SA_ERR_INVALID_ARGUMENT;
    memset(l, 0, sizeof *l);
    l->mem = mem;
    l->last_ms = INT64_MIN;
    l->blocked_until = INT64_MIN;
    l->long_win = -1;
    if (!enabled) return SA_OK;
    if (!plan_windows(l, rate, burst, window_max, window_ms)) {
        l->n_win = 0;
        l->long_win = -1;
        return SA_ERR_INVALID_ARGUMENT;
    }
    for (i = 0; i < l->n_win; i++) total += (size_t)l->win[i].max;
    ring = sa__calloc(mem, total, sizeof *ring);
    if (!ring) {
        l->n_win = 0;
        l->long_win = -1;
        return SA_ERR_NOMEM;
    }
    for (i = 0; i < l->n_win; i++) {
        l->win[i].ring = ring;
        ring += l->win[i].max;
    }
    l->enabled = 1;
    return SA_OK;
}

/* Release the rings; the limiter is left disabled.  NULL is fine. */
void sa__limiter_free(sa__limiter *l)
{
    if (!l) return;
    if (l->n_win > 0) sa__free(l->mem, l->win[0].ring);
    memset(l->win, 0, sizeof l->win);
    l->n_win = 0;
    l->long_win = -1;
    l->enabled = 0;
}

/* The check of sa__limiter_check and sa__limiter_acquire on an enabled
 * limiter: 1 when a request may go at *now_ms (clamped to the limiter's
 * clock on return), else 0 with the time it may in *ready_at_ms. */
static int limiter_ready(sa__limiter *l, int64_t *now_ms, int64_t *ready_at_ms)
{
    int64_t now = limiter_clamp(l, *now_ms);
    int64_t ready = l->blocked_until > now ? l->blocked_until : now;
    int i;

    *now_ms = now;
    for (i = 0; i < l->n_win; i++) {
        int64_t at = now;
        if (!window_ok(&l->win[i], now, &at) && at > ready) ready = at;
    }
    if (ready > now) {
        if (ready_at_ms) *ready_at_ms = ready;
        return 0;
    }
    return 1;
}

int sa__limiter_check(sa__limiter *l, int64_t now_ms, int64_t *ready_at_ms)
{
    if (!l || !l->enabled) return 1;
    return limiter_ready(l, &now_ms, ready_at_ms);
}

int sa__limiter_acquire(sa__limiter *l, int64_t now_ms, int64_t *ready_at_ms)
{
    int i;

    if (!l || !l->enabled) return 1;
    if (!limiter_ready(l, &now_ms, ready_at_ms)) return 0;
    for (i = 0; i < l->n_win; i++) window_record(&l->win[i], now_ms);
    return 1;
}

/* After a 429 the server counted more than we did: no send before
 * now_ms + pause_ms (a pause of a second or more also empties the server's
 * 1 s window).  Never brings a later ready time forward; pause_ms below 0
 * counts as 0. */
void sa__limiter_penalize(sa__limiter *l, int64_t now_ms, int64_t pause_ms)
{
    if (!l || !l->enabled) return;
    if (pause_ms < 0) pause_ms = 0;
    if (pause_ms > LIMITER_MAX_MS) pause_ms = LIMITER_MAX_MS;
    now_ms = limiter_clamp(l, now_ms);
    if (sat_add(now_ms, pause_ms) > l->blocked_until)
        l->blocked_until = sat_add(now_ms, pause_ms);
}

/* The ring is in send order (time never goes back), so the sends still in
 * the window are a suffix of it: binary search for its first element. */
int sa__limiter_room(const sa__limiter *l, int64_t now_ms,
                    int64_t *next_free_ms)
{
    const sa__limiter_window *w;

    if (next_free_ms) *next_free_ms = INT64_MAX;
    if (!l || !l->enabled || l->long_win < 0) return INT_MAX;
    w = &l->win[l->long_win];
    if (l->last_ms != INT64_MIN && now_ms < l->last_ms) now_ms = l->last_ms;
    return sa__ring_room(w->ring, w->head, w->max, w->count, w->span_ms,
                         now_ms, next_free_ms);
}

int sa__ring_room(const int64_t *ring, int head, int max, int count,
                  int64_t span_ms, int64_t now, int64_t *next_free)
{
    int lo = 0, hi = count;

    while (lo < hi) {  /* first i with now - ring[i] < span */
        int mid = lo + (hi - lo) / 2;
        if (now - ring[(head + mid) % max] >= span_ms)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < count && next_free)
        *next_free = sat_add(ring[(head + lo) % max], span_ms);
    return max - (count - lo);
}
