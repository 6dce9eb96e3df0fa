/* pollplan.c - when the next poll of a running task goes (pure). */

/*
 * The poll planner of one client (option poll_strategy; issue 15).  It
 * never sends, sleeps or reads a clock: job.c asks it, with the time
 * passed in, when a running task is polled next, and tells it how each
 * task ended.  Tested with fake time in tests/c/test_pollplan.c.
 *
 * What it learns.  Per bucket (tier SD/HD x action count 1, 2-4, 5-8,
 * 9+) the last SA__PP_SAMPLES task durations it saw, each an interval: a
 * task seen running by a poll sent at r and final by one sent at f (times
 * since its task create answer) ended on the server between r + rtt and
 * f + rtt (the server created it about rtt/2 before the answer arrived,
 * and a poll reaches it about rtt/2 after it is sent; rtt is the median of
 * the last SA__PP_RTTS poll round trips).  Durations are censored, so the
 * distribution F is fitted to the intervals (see fit(): Turnbull's
 * self-consistent estimate, a few EM rounds on a 128-bin grid, redone
 * when an observation arrives): a task seen final at its first poll only
 * says "between 0 and then", and its mass goes where the narrow
 * intervals of the others say tasks end.
 * A bucket with fewer than SA__PP_MIN_SAMPLES observations uses all
 * buckets'; with fewer in all, the planner is cold and the task is polled
 * as the fixed strategy would (today's defaults), the interval stretched
 * toward the safe gap as the load rises (0 while the budget has room).
 *
 * Where the polls go.  A poll costs `c` (the price, in ms of detection
 * delay).  Given that the task was last seen running at server elapsed
 * e0, the next poll at elapsed t costs c * S(e0) (S = 1 - F: the tasks
 * still running pay for it), plus the delay of the tasks that end in
 * (e0, t], integral of (t - u) dF(u), plus the least expected cost of the
 * polls after it (plan_costs: dynamic programming over the grid's edges,
 * the polls at least the least gap and at most the safe gap apart).  The
 * planner picks the send time, every 20 ms between the earliest and the
 * latest allowed, with the least total: in a region of hazard h this
 * places polls about sqrt(2 c / h) apart (denser where the tasks end,
 * sparse where none does, the first poll just after the shortest
 * durations seen).  A prior (PRIOR_N tasks' worth of mass spread evenly
 * over the durations' range, widened past the shortest and longest seen
 * by the range over the number seen: a sample's extremes fall short of
 * the true bounds) keeps a few observations from leaving holes the polls
 * would never look into.  The price follows the load the scheduler
 * reports (sa__sched_load: the long window's use and whether new work
 * waits for it): PRICE_ROOM_MS while the budget has room, rising
 * geometrically to PRICE_BOUND_MS when it binds, where one poll near the
 * end of the longest durations seen is cheapest.  A task running past
 * nearly all durations seen (S(e0) < 2%) is polled at the price's gap for
 * a scale-free tail (the hazard falls as it runs on: the gaps grow with
 * the time past the longest seen), never wider than the fixed interval
 * stretched toward the safe gap as the load rises.
 *
 * Hard rules, whatever the model says: the next poll goes no sooner than
 * the API's polling_interval (or 200 ms) after the last answer and no
 * later than the safe gap (max_poll_interval_ms less 10%, at most 1 s, up
 * to twice that as the load rises: room for the limiter queue and jitter)
 * after the last poll; job.c also
 * caps it at max_poll_interval_ms.  With webhooks on, a running task is
 * polled only at the safe gap (sa_client_notify polls it at once when its
 * delivery arrives).
 */
#include "sa_internal.h"

#include <math.h>
#include <string.h>

#define MIN_GAP_MS 200          /* no two polls closer (as job.c) */
#define STEP_MS 20              /* send times tried */
#define MAX_STEPS 600
#ifndef SMOOTH
#define SMOOTH 9                /* smoothing passes per EM round */
#endif
#define PRIOR_N 4.0             /* weight of the even prior, in tasks */
#define EXPLORE 0.2             /* first polls drawn this much earlier, */
#define EXPLORE_N 16.0          /* ... half that from 32 tasks seen on */
#define TAIL_S 0.02             /* past this survival: the tail's gaps */
#ifndef PRICE_ROOM_MS
#define PRICE_ROOM_MS 110.0    /* a poll's price while the budget has room */
#endif
#define PRICE_BOUND_MS 30000.0  /* ... and when it binds */

void sa__pollplan_init(sa__pollplan *p, int strategy, int webhooks,
                      long poll_interval_ms, long max_poll_interval_ms)
{
    memset(p, 0, sizeof *p);
    p->strategy = strategy;
    p->webhooks = webhooks;
    p->poll_interval_ms = poll_interval_ms;
    p->max_poll_interval_ms = max_poll_interval_ms;
}

int sa__pollplan_bucket(int hd, size_t n_actions)
{
    int cls = n_actions <= 1 ? 0 : n_actions <= 4 ? 1 : n_actions <= 8 ? 2
            : 3;
    return (hd ? SA__PP_BUCKETS / 2 : 0) + cls;
}

void sa__pollplan_rtt(sa__pollplan *p, int64_t rtt_ms)
{
    if (!p || rtt_ms < 0) return;
    if (rtt_ms > 60000) rtt_ms = 60000;
    p->rtt[p->rtt_head] = (int32_t)rtt_ms;
    p->rtt_head = (p->rtt_head + 1) % SA__PP_RTTS;
    if (p->n_rtt < SA__PP_RTTS) p->n_rtt++;
}

long sa__pollplan_rtt_ms(const sa__pollplan *p)
{
    int32_t v[SA__PP_RTTS];
    int i, j, n;

    if (!p || p->n_rtt == 0) return 0;
    n = p->n_rtt;
    memcpy(v, p->rtt, sizeof v);
    for (i = 1; i < n; i++) {  /* insertion sort: 16 at most */
        int32_t x = v[i];
        for (j = i; j > 0 && v[j - 1] > x; j--) v[j] = v[j - 1];
        v[j] = x;
    }
    return v[n / 2];
}

static int32_t clamp32(int64_t v)
{
    return v < 0 ? 0 : v > INT32_MAX ? INT32_MAX : (int32_t)v;
}

/* Overlap of [lo, hi] with bin j of width w, as a fraction of the bin
 * (a point interval: 1 in the bin that holds it). */
static double overlap(const sa__pp_obs *o, int j, double w)
{
    double a = j * w, b = a + w, lo = o->lo_ms, hi = o->hi_ms;
    if (hi <= lo) return lo >= a && lo < b ? 1.0 : 0.0;
    if (lo > a) a = lo;
    if (hi < b) b = hi;
    return b > a ? (b - a) / w : 0.0;
}

/* p = q convolved with a small kernel (1 4 6 4 1)/16, mass kept at
 * the edges. */
static void smooth(const double *q, double *p)
{
    static const double k[5] = { 1 / 16.0, 4 / 16.0, 6 / 16.0, 4 / 16.0,
                                 1 / 16.0 };
    int j, d;

    memset(p, 0, SA__PP_BINS * sizeof *p);
    for (j = 0; j < SA__PP_BINS; j++)
        for (d = -2; d <= 2; d++) {
            int t = j + d;
            if (t < 0) t = 0;
            if (t >= SA__PP_BINS) t = SA__PP_BINS - 1;
            p[t] += q[j] * k[d + 2];
        }
}

/* Fit the durations' distribution to the censored observations:
 * Turnbull's self-consistency (EM) on a grid of SA__PP_BINS bins up to the
 * longest interval end.  Each observation's unit of mass is shared among
 * the bins it overlaps in proportion to their current mass, which moves
 * the mass of a wide interval (a task seen final at its first poll: it
 * ended "between 0 and 3.7 s") to where the narrow ones say tasks end. */
static void fit(sa__pp_bucket *b)
{
    double p[SA__PP_BINS], q[SA__PP_BINS], w, top = 1;
    double prior = PRIOR_N / (b->n + PRIOR_N), low = HUGE_VAL, sum;
    int i, j, k, r, lo_bin, hi_bin, lo_all, hi_all;

    for (i = 0; i < b->n; i++) {
        const sa__pp_obs *o = &b->obs[i];
        if (o->hi_ms + 1.0 > top) top = o->hi_ms + 1.0;
        /* the shortest a duration may be: a nonzero lower bound seen, or
         * an upper bound below every such one */
        if (o->lo_ms > 0 && o->lo_ms < low) low = o->lo_ms;
    }
    for (i = 0; i < b->n; i++)
        if (b->obs[i].hi_ms < low) low = b->obs[i].hi_ms;
    b->top_ms = (int32_t)top;
    b->low_ms = low < top ? (int32_t)low : 0;
    /* The durations seen are a sample: the true range extends past both
     * ends, by about the range over the number seen (the gap expected
     * between a uniform sample's extreme and its bound).  The grid and
     * the prior cover that extension, so a task shorter or longer than
     * every one seen is looked for where it is likely to be. */
    if (low < top && b->n >= 2) {
        double ext = (top - low) / b->n;
        low = low > ext ? low - ext : 0;
        top += ext;
    }
    w = ceil(top / SA__PP_BINS);
    if (w < 1) w = 1;
    b->bin_ms = (int32_t)w;
    lo_all = low < top ? (int)(low / w) : 0;
    hi_all = (int)((top - 1) / w);
    if (hi_all >= SA__PP_BINS) hi_all = SA__PP_BINS - 1;
    if (lo_all > hi_all) lo_all = hi_all;
    /* start: each observation uniform over its interval, only those seen
     * running once when there are such (an interval from 0 says nothing
     * of where in it durations begin: its mass goes where these put it) */
    for (i = 0, r = 0; i < b->n; i++) r += b->obs[i].lo_ms > 0;
    memset(p, 0, sizeof p);
    for (i = 0; i < b->n; i++) {
        const sa__pp_obs *o = &b->obs[i];
        double tot = 0;
        if (r > 0 && o->lo_ms == 0) continue;
        lo_bin = (int)(o->lo_ms / w);
        hi_bin = (int)(o->hi_ms / w);
        if (hi_bin >= SA__PP_BINS) hi_bin = SA__PP_BINS - 1;
        for (j = lo_bin; j <= hi_bin; j++) tot += overlap(o, j, w);
        for (j = lo_bin; j <= hi_bin && tot > 0; j++)
            p[j] += overlap(o, j, w) / tot / (r > 0 ? r : b->n);
    }
    for (r = 0; r < SA__PP_EM_ROUNDS; r++) {
        memset(q, 0, sizeof q);
        for (i = 0; i < b->n; i++) {
            const sa__pp_obs *o = &b->obs[i];
            double tot = 0;
            lo_bin = (int)(o->lo_ms / w);
            hi_bin = (int)(o->hi_ms / w);
            if (hi_bin >= SA__PP_BINS) hi_bin = SA__PP_BINS - 1;
            for (j = lo_bin; j <= hi_bin; j++) tot += overlap(o, j, w) * p[j];
            if (!(tot > 0)) continue;
            for (j = lo_bin; j <= hi_bin; j++)
                q[j] += overlap(o, j, w) * p[j] / tot / b->n;
        }
        /* EMS: EM, then a smoothing step (SMOOTH passes of the kernel:
         * a spread of sqrt(SMOOTH) bins) */
        for (k = 0; k < SMOOTH; k++) {
            smooth(q, p);
            if (k + 1 < SMOOTH) memcpy(q, p, sizeof q);
        }
        /* and a prior: a share PRIOR_N / (n + PRIOR_N) of the mass spread
         * evenly over [shortest, longest] interval bounds seen, so that a
         * few observations leave no hole the polls would never look into
         * (tasks ending there would only ever be seen late, and the fit
         * would put their mass at the hole's edges) */
        for (j = lo_all; j <= hi_all; j++)
            p[j] = (1 - prior) * p[j] + prior / (hi_all - lo_all + 1);
        for (j = 0; j < lo_all; j++) p[j] *= 1 - prior;
        for (j = hi_all + 1; j < SA__PP_BINS; j++) p[j] *= 1 - prior;
        /* one unit of mass (an interval that met none is skipped above) */
        for (j = 0, sum = 0; j < SA__PP_BINS; j++) sum += p[j];
        for (j = 0; j < SA__PP_BINS && sum > 0; j++) p[j] /= sum;
    }
    for (j = 0; j < SA__PP_BINS; j++) b->pmf[j] = (float)p[j];
}

static void push(sa__pp_bucket *b, int32_t lo, int32_t hi)
{
    b->obs[b->head].lo_ms = lo;
    b->obs[b->head].hi_ms = hi;
    b->head = (b->head + 1) % SA__PP_SAMPLES;
    if (b->n < SA__PP_SAMPLES) b->n++;
    fit(b);
}

void sa__pollplan_observe(sa__pollplan *p, int bucket, int64_t created_ms,
                         int64_t running_ms, int64_t final_ms)
{
    long rtt;
    int32_t lo, hi;

    if (!p || created_ms < 0 || bucket < 0 || bucket >= SA__PP_BUCKETS
        || final_ms < created_ms)
        return;
    rtt = sa__pollplan_rtt_ms(p);
    lo = running_ms > created_ms ? clamp32(running_ms - created_ms + rtt) : 0;
    hi = clamp32(final_ms - created_ms + rtt);
    if (hi < lo) hi = lo;
    push(&p->bucket[bucket], lo, hi);
    push(&p->all, lo, hi);
}

const sa__pp_bucket *sa__pollplan_model(const sa__pollplan *p, int bucket)
{
    if (!p) return NULL;
    if (bucket >= 0 && bucket < SA__PP_BUCKETS
        && p->bucket[bucket].n >= SA__PP_MIN_SAMPLES)
        return &p->bucket[bucket];
    return p->all.n >= SA__PP_MIN_SAMPLES ? &p->all : NULL;
}

long sa__pollplan_max_gap(const sa__pollplan *p)
{
    /* 10% (at most 1 s) while the budget has room, up to twice that as it
     * binds: a poll may then wait for a slot in the limiter queue */
    double load = p->load > 0 ? (p->load < 1 ? p->load : 1) : 0;
    long m = p->max_poll_interval_ms, margin = m / 10;
    if (margin > 1000) margin = 1000;
    return m - (long)((double)margin * (1 + load));
}

double sa__pollplan_price_ms(const sa__pollplan *p)
{
    double s = p->load;
    if (!(s > 0)) s = 0;   /* NaN too */
    if (s > 1) s = 1;
    return PRICE_ROOM_MS * pow(PRICE_BOUND_MS / PRICE_ROOM_MS, s);
}

/* F(t) and G(t) = integral of F over [0, t] of a fitted model (t in ms;
 * the mass of a bin spread evenly over it). */
static void model_at(const sa__pp_bucket *b, double t, double *F, double *G)
{
    double f = 0, g = 0, w = b->bin_ms;
    int j;

    for (j = 0; j < SA__PP_BINS; j++) {
        double lo = j * w, hi = lo + w, m = b->pmf[j];
        if (t <= lo) break;
        if (m == 0) continue;
        if (t >= hi) {
            f += m;
            g += m * (w / 2 + (t - hi));
        } else {
            f += m * (t - lo) / w;
            g += m * (t - lo) * (t - lo) / (2 * w);
        }
    }
    *F = f;
    *G = g;
}

/* The expected cost (polls at price c, delays) still to come for the
 * tasks running at each bin edge x_j = j * bin_ms, when the polls after
 * are placed at the best bin edges at least min_gap and at most max_gap
 * apart (dynamic programming from the last edge, where every task seen has
 * ended): W[j] = min over k of c S(x_j) + delay of the tasks ending in
 * (x_j, x_k] + W[k].  Unnormalised (by the running mass), in ms. */
static void plan_costs(const sa__pp_bucket *m, double c, long min_gap,
                       long max_gap, double *W)
{
    double F[SA__PP_BINS + 1], G[SA__PP_BINS + 1], w = m->bin_ms;
    int j, k, kmin, kmax;

    F[0] = G[0] = 0;
    for (j = 0; j < SA__PP_BINS; j++) {
        F[j + 1] = F[j] + m->pmf[j];
        G[j + 1] = G[j] + w * (F[j] + F[j + 1]) / 2;
    }
    kmin = (int)ceil(min_gap / w);
    kmax = (int)(max_gap / w);
    if (kmin < 1) kmin = 1;
    if (kmax < kmin) kmax = kmin;
    W[SA__PP_BINS] = 0;
    for (j = SA__PP_BINS - 1; j >= 0; j--) {
        double best = HUGE_VAL, S = 1 - F[j];
        if (S < 1e-9) {
            W[j] = 0;
            continue;
        }
        for (k = j + kmin; k <= j + kmax; k++) {
            int kk = k > SA__PP_BINS ? SA__PP_BINS : k;
            double delay = G[kk] - G[j] - (kk - j) * w * F[j];
            double v = c * S + delay + W[kk];
            if (v < best) best = v;
            if (kk == SA__PP_BINS) break;
        }
        W[j] = best;
    }
}

/* W at elapsed e (linear between bin edges; 0 past the last). */
static double cost_after(const sa__pp_bucket *m, const double *W, double e)
{
    double x = e / m->bin_ms;
    int j = (int)x;
    if (j >= SA__PP_BINS) return 0;
    if (j < 0) return W[0];
    return W[j] + (x - j) * (W[j + 1] - W[j]);
}

/* A well-mixed 64-bit hash of a time (splitmix64's finaliser). */
static uint64_t mix(int64_t v)
{
    uint64_t z = (uint64_t)v + 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

int64_t sa__pollplan_next(const sa__pollplan *p, const sa__pp_task *t,
                         int64_t now_ms)
{
    const sa__pp_bucket *m;
    long min_gap = t->min_gap_ms > MIN_GAP_MS ? t->min_gap_ms : MIN_GAP_MS;
    long gap = sa__pollplan_max_gap(p), rtt;
    int64_t earliest = now_ms + min_gap, latest = t->last_poll_ms + gap;
    int64_t s, step, best;
    double F0, G0, e0, c, best_r = HUGE_VAL, W[SA__PP_BINS + 1];

    if (latest < earliest) latest = earliest;
    if (p->webhooks) return latest;          /* insurance only */
    m = p->strategy == SA_POLL_LEARNED ? sa__pollplan_model(p, t->bucket)
                                       : NULL;
    if (!m || t->created_ms < 0) {           /* fixed, cold or resumed */
        double g = (double)t->fixed_ms;
        if (p->strategy == SA_POLL_LEARNED && t->fixed_ms < gap)
            g += p->load * (double)(gap - t->fixed_ms);  /* budget binds */
        return clamp64(now_ms + (int64_t)g, earliest, latest);
    }

    rtt = sa__pollplan_rtt_ms(p);
    e0 = t->running_ms > t->created_ms
       ? (double)(t->running_ms - t->created_ms + rtt) : 0.0;
    model_at(m, e0, &F0, &G0);
    if (1 - F0 < TAIL_S) {
        /* Running longer than (nearly) every task seen: the model says
         * nothing more.  The tail is taken to be scale-free: a task past
         * the longest seen by x is as likely to end within the next
         * (spacing + x) as a fresh one within its spacing (spacing: the
         * range seen over the tasks seen), so the polls spread out as it
         * runs on, each at the price's gap sqrt(2 c / hazard), never
         * wider than the fixed interval (stretched as the budget binds). */
        double g = (double)t->fixed_ms
                 + p->load * (double)(gap - t->fixed_ms);
        double past = e0 > m->top_ms ? e0 - m->top_ms : 0;
        double scale = (double)(m->top_ms - m->low_ms) / (m->n + 1) + past;
        double g_tail = sqrt(2 * sa__pollplan_price_ms(p) * scale);
        if (g_tail < g) g = g_tail;
        return clamp64(now_ms + (int64_t)g, earliest, latest);
    }
    c = sa__pollplan_price_ms(p);
    plan_costs(m, c, min_gap, gap, W);
    step = (latest - earliest) / MAX_STEPS;
    if (step < STEP_MS) step = STEP_MS;
    best = latest;
    for (s = earliest; s <= latest; s += step) {
        double e = (double)(s - t->created_ms + rtt), F, G, r;
        model_at(m, e, &F, &G);
        /* this poll, the delay of the tasks that end before it, and the
         * best placement of the polls after it */
        r = c * (1 - F0) + (G - G0 - (e - e0) * F0) + cost_after(m, W, e);
        if (r < best_r * (1 - 1e-12)) {
            best_r = r;
            best = s;
        }
    }
    if (t->running_ms <= t->created_ms) {
        /* the first poll, drawn up to EXPLORE earlier (less as the load
         * rises, and down to half as the tasks seen pass EXPLORE_N):
         * tasks polled first at different times tell where in [0, first
         * poll] durations begin, which those seen final at a fixed first
         * poll never would (the fit would drift later) */
        double u = (double)(mix(t->created_ms) >> 11) / 9007199254740992.0;
        double k = EXPLORE_N / (double)m->n;   /* less once much is seen */
        double back, ex = EXPLORE * (k > 1 ? 1 : k < 0.5 ? 0.5 : k);
        back = ex * (1 - p->load) * u * (double)(best - t->created_ms);
        best -= (int64_t)back;
        if (best < earliest) best = earliest;
    }
    return best;
}
