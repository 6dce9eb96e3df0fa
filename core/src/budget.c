/* budget.c - one rate budget per key, shared by processes (rate_limit_scope). */

/*
 * The API counts its limits per key (5 requests in any second, 250 in any
 * 300 s), not per client: a web backend's 8 worker processes on one key
 * each limited to 5/s send 40/s and meet 429s.  With rate_limit_scope
 * "host" (the default) every client on this machine with the same key,
 * base URL and rate options takes its slots from one budget in shared
 * memory (budget_host.c); "process" keeps the client's own limiter only.
 *
 * The shared state (sa__budget_state, plain data in the mapping) holds the
 * two windows that mirror the server's, counted exactly like limiter.c: a
 * ring of the last `max` send times per window, a send allowed when the
 * max-th most recent one is at least span_ms old.  The guard is wider
 * than the limiter's (SA__BUDGET_GUARD_MS, 50 ms, against 20): the time
 * from taking a slot to the request's arrival varies by process, and
 * processes are scheduled independently (one process's sends share their
 * delays; measured: BENCHMARKS.md, "The rate-limit guards").  The 429
 * pause is shared too.  The client's own limiter still runs beside it
 * (its burst window is client-side smoothing; its windows only ever allow
 * more than the shared ones).
 *
 * Leases.  A slot is a send time: it is never "held", it ages out of its
 * window whatever becomes of the process that took it.  What a process
 * does hold is admitted jobs (sched.c's admission cap and poll reserve,
 * which must count every job polling on the key, or 8 processes admit 8
 * times the jobs the long window can poll): each client keeps a lease in
 * the state, renewed with its count whenever its scheduler looks for a
 * slot.  A lease not renewed for SA__BUDGET_LEASE_MS counts for nothing; a
 * lease whose process is gone (kill(pid, 0) says ESRCH) is reclaimed, so
 * a process that dies leaks nothing.  The leases of live processes also
 * keep the file: the last client to close removes it.
 *
 * Pure: the functions on sa__budget_state take the time and a liveness
 * callback; tests/c/test_budget.c drives them with fake time.
 */
#include "budget.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static int64_t sat_add(int64_t a, int64_t b)
{
    return a > INT64_MAX - b ? INT64_MAX : a + b;
}

int sa__budget_plan(const sa_client_options *o, int *n_rate,
                   int64_t *rate_span, int *n_long, int64_t *long_span)
{
    double whole;

    if (!o->rate_limit || !(o->rate_per_second > 0.0)
        || !isfinite(o->rate_per_second) || 1000.0 / o->rate_per_second > 1e12)
        return 0;
    whole = floor(o->rate_per_second);
    if (whole > SA__BUDGET_RATE_MAX) return 0;
    *n_rate = whole < 1.0 ? 1 : (int)whole;
    *rate_span = (o->rate_per_second >= 1.0 ? 1000
                  : (int64_t)ceil(1000.0 / o->rate_per_second))
               + SA__BUDGET_GUARD_MS;
    *n_long = 0;
    *long_span = 0;
    if (o->rate_window_max > 0 && o->rate_window_ms > 0) {
        if (o->rate_window_max > SA__BUDGET_LONG_MAX) return 0;
        *n_long = o->rate_window_max;
        *long_span = (int64_t)o->rate_window_ms + SA__BUDGET_GUARD_MS;
    }
    return 1;
}

void sa__budget_state_init(sa__budget_state *st, int n_rate, int64_t rate_span,
                          int n_long, int64_t long_span)
{
    memset(st, 0, sizeof *st);
    st->magic = SA__BUDGET_MAGIC;
    st->version = SA__BUDGET_VERSION;
    st->last_ms = INT64_MIN;
    st->blocked_until = INT64_MIN;
    st->pace_last = INT64_MIN;
    st->fb_sent = INT64_MIN;
    st->fb_hold = INT64_MIN;
    st->rate.max = n_rate;
    st->rate.span_ms = rate_span;
    st->lng.max = n_long;
    st->lng.span_ms = long_span;
}

int sa__budget_state_matches(const sa__budget_state *st, int n_rate,
                            int64_t rate_span, int n_long, int64_t long_span)
{
    return st->magic == SA__BUDGET_MAGIC && st->version == SA__BUDGET_VERSION
        && st->rate.max == n_rate && st->rate.span_ms == rate_span
        && st->lng.max == n_long && st->lng.span_ms == long_span
        && n_rate >= 1 && n_rate <= SA__BUDGET_RATE_MAX
        && n_long >= 0 && n_long <= SA__BUDGET_LONG_MAX;
}

/* A ring corrupted by a process that died mid-update (a robust lock was
 * recovered): put it back in range. */
static void win_sane(sa__budget_win *w)
{
    if (w->count < 0 || w->count > w->max) w->count = 0;
    if (w->head < 0 || (w->max > 0 && w->head >= w->max)) w->head = 0;
}

static int64_t clamp_now(sa__budget_state *st, int64_t now)
{
    if (st->last_ms != INT64_MIN && now < st->last_ms) return st->last_ms;
    st->last_ms = now;
    return now;
}

static int win_ok(const sa__budget_win *w, const int64_t *ring, int64_t now,
                  int64_t *ready)
{
    int64_t oldest;
    if (w->max <= 0 || w->count < w->max) return 1;
    oldest = ring[w->head];
    if (now - oldest >= w->span_ms) return 1;
    *ready = sat_add(oldest, w->span_ms);
    return 0;
}

static void win_record(sa__budget_win *w, int64_t *ring, int64_t now)
{
    if (w->max <= 0) return;
    if (w->count < w->max) {
        ring[(w->head + w->count) % w->max] = now;
        w->count++;
    } else {
        ring[w->head] = now;
        w->head = (w->head + 1) % w->max;
    }
}

int sa__budget_state_check(sa__budget_state *st, int64_t now, int64_t *ready_at)
{
    int64_t ready, at;

    win_sane(&st->rate);
    win_sane(&st->lng);
    now = clamp_now(st, now);
    ready = st->blocked_until > now ? st->blocked_until : now;
    at = now;
    if (!win_ok(&st->rate, st->rate_ring, now, &at) && at > ready) ready = at;
    at = now;
    if (!win_ok(&st->lng, st->long_ring, now, &at) && at > ready) ready = at;
    if (ready > now) {
        if (ready_at) *ready_at = ready;
        return 0;
    }
    return 1;
}

int sa__budget_state_acquire(sa__budget_state *st, int64_t now,
                            int64_t *ready_at)
{
    if (!sa__budget_state_check(st, now, ready_at)) return 0;
    now = st->last_ms;
    win_record(&st->rate, st->rate_ring, now);
    win_record(&st->lng, st->long_ring, now);
    return 1;
}

void sa__budget_state_penalize(sa__budget_state *st, int64_t now,
                              int64_t pause_ms)
{
    if (pause_ms < 0) pause_ms = 0;
    now = clamp_now(st, now);
    if (sat_add(now, pause_ms) > st->blocked_until)
        st->blocked_until = sat_add(now, pause_ms);
}

int sa__budget_state_room(const sa__budget_state *st, int64_t now,
                         int64_t *next_free)
{
    const sa__budget_win *w = &st->lng;

    if (next_free) *next_free = INT64_MAX;
    if (w->max <= 0 || w->count < 0 || w->count > w->max || w->head < 0
        || w->head >= w->max)
        return INT_MAX;
    if (st->last_ms != INT64_MIN && now < st->last_ms) now = st->last_ms;
    return sa__ring_room(st->long_ring, w->head, w->max, w->count,
                         w->span_ms, now, next_free);
}

int sa__budget_state_lease(sa__budget_state *st, int64_t now, int32_t pid,
                          uint32_t token, int admitted,
                          sa__budget_alive_fn alive, void *ud)
{
    int i, mine = -1, free_slot = -1;
    long total = 0;

    for (i = 0; i < SA__BUDGET_LEASES; i++) {
        sa__budget_lease *l = &st->lease[i];
        int stale;
        if (l->pid == pid && l->token == token) {
            mine = i;
            continue;
        }
        stale = l->pid != 0 && (now - l->seen_ms >= SA__BUDGET_LEASE_MS
                                || l->seen_ms - now > SA__BUDGET_LEASE_MS);
        /* liveness is asked only of leases not renewed for a second */
        if (l->pid != 0 && now - l->seen_ms >= 1000 && alive
            && !alive(ud, l->pid))
            memset(l, 0, sizeof *l);   /* its process is gone */
        if (l->pid == 0) {
            if (free_slot < 0) free_slot = i;
            continue;
        }
        if (stale) l->admitted = 0;    /* expired: counts for nothing */
        if (l->admitted > 0) total += l->admitted;
    }
    if (mine < 0) {
        if (free_slot < 0) return -1;
        mine = free_slot;
        st->lease[mine].pid = pid;
        st->lease[mine].token = token;
    }
    st->lease[mine].admitted = admitted > 0 ? admitted : 0;
    st->lease[mine].seen_ms = now;
    total += st->lease[mine].admitted;
    return total > INT_MAX ? INT_MAX : (int)total;
}

int sa__budget_state_clients(const sa__budget_state *st, int64_t now)
{
    int i, n = 0;
    for (i = 0; i < SA__BUDGET_LEASES; i++) {
        const sa__budget_lease *l = &st->lease[i];
        if (l->pid != 0 && now - l->seen_ms < SA__BUDGET_LEASE_MS
            && l->seen_ms - now <= SA__BUDGET_LEASE_MS)
            n++;
    }
    return n > 0 ? n : 1;
}

int sa__budget_state_pace(sa__budget_state *st, int64_t now, int64_t gap_ms,
                         int record, int64_t *ready_at)
{
    int64_t next;
    now = clamp_now(st, now);
    if (gap_ms < 0) gap_ms = 0;
    /* the last send, not the next free time, is kept: the gap shrinks as
     * clients join (budget_redis.c) and the next send follows the gap of
     * the moment; the last send is never later than now (clamp_now) */
    next = st->pace_last == INT64_MIN ? now : sat_add(st->pace_last, gap_ms);
    if (now < next) {
        if (ready_at) *ready_at = next;
        return 0;
    }
    if (record) st->pace_last = now;
    return 1;
}

int sa__budget_state_mixing(const sa__budget_state *st, int64_t now)
{
    int i;
    if (st->last_ms != INT64_MIN && now < st->last_ms) now = st->last_ms;
    /* a fallback send is in the per-second window for one span */
    if (st->fb_sent != INT64_MIN && now - st->fb_sent < st->rate.span_ms)
        return 1;
    for (i = 0; i < SA__BUDGET_LEASES; i++) {
        const sa__budget_lease *l = &st->lease[i];
        if (l->pid != 0 && l->away > 0 && now - l->seen_ms < l->away
            && now - l->seen_ms < SA__BUDGET_LEASE_MS
            && l->seen_ms - now <= SA__BUDGET_LEASE_MS)
            return 1;
    }
    return 0;
}

void sa__budget_state_away(sa__budget_state *st, int64_t now, int32_t pid,
                          uint32_t token, int64_t away_ms)
{
    int i;
    now = clamp_now(st, now);
    if (away_ms < 0) away_ms = 0;
    if (away_ms > SA__BUDGET_LEASE_MS) away_ms = SA__BUDGET_LEASE_MS;
    if (away_ms > 0 && !sa__budget_state_mixing(st, now)) {
        /* nobody was away: the clients on Redis sent without the pacer
         * until now, so many as the per-second window allows; the
         * fallback's first send waits until those have aged out (the
         * clients on Redis see the flag at their next slot, and a grant
         * they are using ages within the guard) */
        st->fb_hold = sat_add(now, st->rate.span_ms);
    }
    for (i = 0; i < SA__BUDGET_LEASES; i++) {
        sa__budget_lease *l = &st->lease[i];
        if (l->pid == pid && l->token == token) {
            l->away = (int32_t)away_ms;
            break;
        }
    }
}

int sa__budget_state_pace_fallback(sa__budget_state *st, int64_t now,
                                  int64_t gap_ms, int record,
                                  int64_t *ready_at)
{
    now = clamp_now(st, now);
    if (st->fb_hold != INT64_MIN && now < st->fb_hold
        && st->fb_hold - now <= st->rate.span_ms) {
        if (ready_at) *ready_at = st->fb_hold;
        return 0;
    }
    if (!sa__budget_state_pace(st, now, gap_ms, record, ready_at)) return 0;
    if (record) st->fb_sent = now;
    return 1;
}

int sa__budget_state_pace_redis(sa__budget_state *st, int64_t now,
                               int64_t gap_ms, int record, int64_t *taken,
                               int64_t *prev, int64_t *ready_at)
{
    int64_t before = st->pace_last;

    *taken = INT64_MIN;
    *prev = INT64_MIN;
    now = clamp_now(st, now);
    if (!sa__budget_state_mixing(st, now)) return 1;
    if (!sa__budget_state_pace(st, now, gap_ms, record, ready_at)) return 0;
    if (record) {
        *taken = st->pace_last;
        *prev = before;
    }
    return 1;
}

void sa__budget_state_unpace(sa__budget_state *st, int64_t taken, int64_t prev)
{
    /* a slot taken after this one was spaced from it: keep it then */
    if (taken != INT64_MIN && st->pace_last == taken) st->pace_last = prev;
}

int sa__budget_state_release(sa__budget_state *st, int32_t pid, uint32_t token,
                            sa__budget_alive_fn alive, void *ud)
{
    int i, left = 0;
    for (i = 0; i < SA__BUDGET_LEASES; i++) {
        sa__budget_lease *l = &st->lease[i];
        if (l->pid == pid && l->token == token) memset(l, 0, sizeof *l);
        else if (l->pid != 0 && (l->pid == pid || !alive || alive(ud, l->pid)))
            left++;
        else if (l->pid != 0) memset(l, 0, sizeof *l);
    }
    return left;
}

/* ------------------------------------------------------------------ */
/* The budget a scheduler asks                                          */
/* ------------------------------------------------------------------ */

int sa__budget_parse_scope(const char *scope, char *err, size_t errlen)
{
    char host[256], port[8];
    int db;
    if (!scope || strcmp(scope, "host") == 0) return SA__SCOPE_HOST;
    if (strcmp(scope, "process") == 0) return SA__SCOPE_PROCESS;
    if (sa__budget_redis_parse(scope, host, sizeof host, port, sizeof port,
                              &db))
        return SA__SCOPE_REDIS;
    sa__errf(err, errlen, "rate_limit_scope must be \"process\", \"host\" "
             "or \"redis://HOST:PORT[/DB]\"");
    return -1;
}

int sa__budget_open(sa__budget **out, const sa_mem *mem,
                   const sa_client_options *o, const char *api_key,
                   const char *base_url, char *note, size_t notelen)
{
    sa__budget *b;
    int scope = sa__budget_parse_scope(o->rate_limit_scope, NULL, 0);

    if (note && notelen) note[0] = '\0';
    *out = NULL;
    b = sa__calloc(mem, 1, sizeof *b);
    if (!b) return SA_ERR_NOMEM;
    b->mem = mem;
    b->scope = SA__SCOPE_PROCESS;
    if (scope == SA__SCOPE_HOST && o->rate_limit) {
        int rc = sa__budget_host_open(&b->host, mem, o, api_key, base_url,
                                     NULL, note, notelen);
        if (rc == SA_ERR_NOMEM) {
            sa__free(mem, b);
            return rc;
        }
        if (rc == SA_OK) b->scope = SA__SCOPE_HOST;
    }
    if (scope == SA__SCOPE_REDIS && o->rate_limit) {
        int rc = sa__budget_redis_open(&b->redis, mem, o, api_key, base_url,
                                      sa__engine_now(), note, notelen);
        if (rc != SA_OK) {
            sa__free(mem, b);
            return rc;
        }
        b->scope = SA__SCOPE_REDIS;
    }
    *out = b;
    return SA_OK;
}

void sa__budget_close(sa__budget *b)
{
    if (!b) return;
    sa__budget_host_close(b->host);
    sa__budget_redis_close(b->redis);
    sa__free(b->mem, b);
}

int sa__budget_shared(const sa__budget *b)
{
    return b && b->scope != SA__SCOPE_PROCESS;
}

const char *sa__budget_pump(sa__budget *b, int64_t now)
{
    const char *n;
    if (!b || b->scope != SA__SCOPE_REDIS) return NULL;
    sa__budget_redis_pump(b->redis, now);
    n = sa__budget_redis_note(b->redis);
    if (!n) return NULL;
    snprintf(b->note, sizeof b->note, "%s", n);
    sa__budget_redis_clear_note(b->redis);
    return b->note;
}

int sa__budget_acquire(sa__budget *b, int64_t now, int64_t *ready_at)
{
    if (!sa__budget_shared(b)) return 1;
    if (b->scope == SA__SCOPE_REDIS)
        return sa__budget_redis_acquire(b->redis, now, ready_at, 1);
    return sa__budget_host_acquire(b->host, now, ready_at, 1);
}

int sa__budget_check(sa__budget *b, int64_t now, int64_t *ready_at)
{
    if (!sa__budget_shared(b)) return 1;
    if (b->scope == SA__SCOPE_REDIS)
        return sa__budget_redis_acquire(b->redis, now, ready_at, 0);
    return sa__budget_host_acquire(b->host, now, ready_at, 0);
}

void sa__budget_penalize(sa__budget *b, int64_t now, int64_t pause_ms)
{
    if (!sa__budget_shared(b)) return;
    if (b->scope == SA__SCOPE_REDIS)
        sa__budget_redis_penalize(b->redis, now, pause_ms);
    else
        sa__budget_host_penalize(b->host, now, pause_ms);
}

int sa__budget_room(sa__budget *b, int64_t now, int64_t *next_free)
{
    if (next_free) *next_free = INT64_MAX;
    /* redis: the script keeps the long window; no room is read back */
    if (!sa__budget_shared(b) || b->scope == SA__SCOPE_REDIS) return INT_MAX;
    return sa__budget_host_room(b->host, now, next_free);
}

int sa__budget_admitted(sa__budget *b, int64_t now, int mine)
{
    if (!sa__budget_shared(b)) return mine;
    if (b->scope == SA__SCOPE_REDIS)
        b->admitted_all = sa__budget_redis_admitted(b->redis, now, mine);
    else
        b->admitted_all = sa__budget_host_admitted(b->host, now, mine);
    return b->admitted_all;
}
