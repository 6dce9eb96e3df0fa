/* budget.h - the rate budget shared beyond one client (rate_limit_scope).
 *
 * One budget per key; see budget.c for the model. */
#ifndef SA_BUDGET_H
#define SA_BUDGET_H

#include "sa_internal.h"

#include <stdint.h>

/* The scopes of option rate_limit_scope. */
enum {
    SA__SCOPE_PROCESS = 0,   /* "process": the client's own limiter only */
    SA__SCOPE_HOST = 1,      /* "host": shared memory on this machine */
    SA__SCOPE_REDIS = 2      /* "redis://HOST:PORT[/DB]": a fleet */
};

/* Added to the windows that mirror the server's in a shared budget (the
 * limiter's is SA__LIMITER_GUARD_MS): see budget.c. */
#define SA__BUDGET_GUARD_MS 50

/* Largest windows a shared budget holds (larger options: process scope). */
#define SA__BUDGET_RATE_MAX 64
#define SA__BUDGET_LONG_MAX 4096
#define SA__BUDGET_LEASES 128
/* A lease (one client's count of admitted jobs) that was not renewed for
 * this long counts for nothing: a client with admitted jobs polls at least
 * every max_poll_interval_ms, and renews it with every request. */
#define SA__BUDGET_LEASE_MS 60000
/* How often a client blocked by the shared admission cap looks again (a
 * job that ends in another process does not wake it). */
#define SA__BUDGET_RECHECK_MS 200

/* ------------------------------------------------------------------ */
/* budget.c (pure; time is an input): the shared state                  */
/* ------------------------------------------------------------------ */

typedef struct sa__budget_win {
    int32_t max;          /* at most max sends ... */
    int32_t head;
    int32_t count;
    int32_t pad;
    int64_t span_ms;      /* ... in any span_ms (guard included) */
} sa__budget_win;

typedef struct sa__budget_lease {
    int32_t pid;          /* 0: free */
    uint32_t token;       /* which client of that process */
    int32_t admitted;     /* its admitted jobs (sched.c) */
    int32_t away;         /* budget_redis.c's pacer: this client is away
                             from Redis, for this many ms after seen_ms
                             (0: not away; sa__budget_state_away) */
    int64_t seen_ms;      /* last renewed */
} sa__budget_lease;

/* Plain data, no pointers: it lives in a shared mapping. */
typedef struct sa__budget_state {
    uint32_t magic;
    uint32_t version;
    int64_t last_ms;          /* latest time seen (never goes back) */
    int64_t blocked_until;    /* 429 pause, shared */
    int64_t pace_last;        /* the pacer's last send (budget_redis.c's
                                 fallback; INT64_MIN: none yet) */
    int64_t fb_sent;          /* the pacer's last send by a client away
                                 from Redis (INT64_MIN: none) */
    int64_t fb_hold;          /* no fallback send before this: a client
                                 that goes away while the clients on Redis
                                 were not pacing lets their sends of the
                                 last span age out first */
    sa__budget_win rate;
    sa__budget_win lng;        /* max 0: no long window */
    int64_t rate_ring[SA__BUDGET_RATE_MAX];
    int64_t long_ring[SA__BUDGET_LONG_MAX];
    sa__budget_lease lease[SA__BUDGET_LEASES];
} sa__budget_state;

#define SA__BUDGET_MAGIC 0x53414255u  /* "SABU" */
#define SA__BUDGET_VERSION 3u

/* Is a process alive?  (kill(pid, 0) in the host budget; a fake in the
 * tests.) */
typedef int (*sa__budget_alive_fn)(void *ud, int32_t pid);

/* The windows of the client options (the limiter's model: rate and long
 * window, each with SA__BUDGET_GUARD_MS).  0 when they do not fit a shared
 * state (then the client keeps to process scope). */
int sa__budget_plan(const sa_client_options *o, int *n_rate,
                   int64_t *rate_span, int *n_long, int64_t *long_span);
void sa__budget_state_init(sa__budget_state *st, int n_rate, int64_t rate_span,
                          int n_long, int64_t long_span);
/* 1 when the state is one sa__budget_state_init made with these windows. */
int sa__budget_state_matches(const sa__budget_state *st, int n_rate,
                            int64_t rate_span, int n_long, int64_t long_span);
/* Take a slot at now: 1 and the send recorded, or 0 and *ready_at. */
int sa__budget_state_acquire(sa__budget_state *st, int64_t now,
                            int64_t *ready_at);
/* Without recording: 1 when a slot is free at now, else 0 and *ready_at. */
int sa__budget_state_check(sa__budget_state *st, int64_t now,
                          int64_t *ready_at);
void sa__budget_state_penalize(sa__budget_state *st, int64_t now,
                              int64_t pause_ms);
/* Free slots of the long window (INT_MAX without one), *next_free. */
int sa__budget_state_room(const sa__budget_state *st, int64_t now,
                         int64_t *next_free);
/* Renew (pid, token)'s lease with `admitted` jobs, reclaim the leases of
 * dead processes (asked of `alive` once a lease is a second old), count
 * for nothing those not renewed for SA__BUDGET_LEASE_MS, and return the
 * admitted jobs of every live lease (this one's included); -1 when the
 * table is full (the caller counts its own only). */
int sa__budget_state_lease(sa__budget_state *st, int64_t now, int32_t pid,
                          uint32_t token, int admitted,
                          sa__budget_alive_fn alive, void *ud);
/* Leases renewed in the last SA__BUDGET_LEASE_MS: the clients using the
 * state now (at least 1). */
int sa__budget_state_clients(const sa__budget_state *st, int64_t now);
/* The pacer: sends spaced at least gap_ms apart, whoever sends them.  1
 * when a send may go at now (recorded when record), else 0 and *ready_at. */
int sa__budget_state_pace(sa__budget_state *st, int64_t now, int64_t gap_ms,
                         int record, int64_t *ready_at);
/* The machine's clients across a switch (budget_redis.c).  A client away
 * from Redis flags its lease (away_ms > 0: the flag counts until the lease
 * is that old, at most SA__BUDGET_LEASE_MS; 0 when it is back); while any
 * lease's flag counts, or within one span of the per-second window of a
 * fallback send, the clients on Redis pace their sends too ("mixing").  A
 * client that goes away while nobody was mixing holds the fallback's sends
 * for one span (the clients on Redis sent unpaced until then).  Called
 * before the client's lease is renewed at now (sa__budget_state_lease),
 * which would make a flag that had stopped counting count again; without
 * a lease (table full) only the hold and the span after each send apply. */
void sa__budget_state_away(sa__budget_state *st, int64_t now, int32_t pid,
                          uint32_t token, int64_t away_ms);
int sa__budget_state_mixing(const sa__budget_state *st, int64_t now);
/* A client away from Redis (sa__budget_state_away first): the hold, then
 * the pacer; a send recorded is the fallback's last. */
int sa__budget_state_pace_fallback(sa__budget_state *st, int64_t now,
                                  int64_t gap_ms, int record,
                                  int64_t *ready_at);
/* A client on Redis, before it asks Redis for a slot: 1 at once (and
 * *taken INT64_MIN) when nobody is mixing, else the pacer's answer; a
 * slot taken (record) is *taken, the pacer's previous send *prev, to give
 * back with sa__budget_state_unpace when Redis refuses. */
int sa__budget_state_pace_redis(sa__budget_state *st, int64_t now,
                               int64_t gap_ms, int record, int64_t *taken,
                               int64_t *prev, int64_t *ready_at);
/* Give back a pacer slot no send used (unless a later one was taken). */
void sa__budget_state_unpace(sa__budget_state *st, int64_t taken,
                            int64_t prev);
/* Drop (pid, token)'s lease (and those of dead processes); returns the
 * leases of live processes left. */
int sa__budget_state_release(sa__budget_state *st, int32_t pid,
                            uint32_t token, sa__budget_alive_fn alive,
                            void *ud);

/* ------------------------------------------------------------------ */
/* The budget a scheduler asks (budget.c; backends in budget_*.c)      */
/* ------------------------------------------------------------------ */

typedef struct sa__budget_host sa__budget_host;
typedef struct sa__budget_redis sa__budget_redis;

typedef struct sa__budget {
    int scope;                /* SA_SCOPE_* in use (after any fallback) */
    const sa_mem *mem;
    sa__budget_host *host;     /* SA__SCOPE_HOST */
    sa__budget_redis *redis;   /* SA__SCOPE_REDIS */
    int admitted_all;         /* last total across the scope */
    char note[256];           /* a line for the client's log */
} sa__budget;

/* Parse option rate_limit_scope (NULL: the default, "host"; a redis://
 * URL is checked for its form).  Returns SA_SCOPE_* or -1 with a
 * message. */
int sa__budget_parse_scope(const char *scope, char *err, size_t errlen);

/* Open the client's budget.  Never fails for lack of a shared store: it
 * falls back to SA__SCOPE_PROCESS (host) or the client's share (redis)
 * and writes why into note (one log line for the caller); returns
 * SA_ERR_NOMEM, or SA_ERR_INVALID_ARGUMENT with the message in note for a
 * redis:// URL whose host does not resolve. */
int sa__budget_open(sa__budget **out, const sa_mem *mem,
                   const sa_client_options *o, const char *api_key,
                   const char *base_url, char *note, size_t notelen);
void sa__budget_close(sa__budget *b);

/* What sched.c asks (b NULL or process scope: answers that never limit). */
int sa__budget_acquire(sa__budget *b, int64_t now, int64_t *ready_at);
int sa__budget_check(sa__budget *b, int64_t now, int64_t *ready_at);
void sa__budget_penalize(sa__budget *b, int64_t now, int64_t pause_ms);
int sa__budget_room(sa__budget *b, int64_t now, int64_t *next_free);
/* Admitted jobs across the scope, this client's `mine` included. */
int sa__budget_admitted(sa__budget *b, int64_t now, int mine);
int sa__budget_shared(const sa__budget *b);
/* Non-blocking I/O of the redis scope (nothing for the others), called
 * with every advance; returns a line to log once, or NULL. */
const char *sa__budget_pump(sa__budget *b, int64_t now);

/* budget_host.c: the shared-memory file.  tag NULL: the "host" scope's
 * budget; another tag names another file for the same key and options
 * (budget_redis.c's "redis-fallback" pacer). */
int sa__budget_host_open(sa__budget_host **out, const sa_mem *mem,
                        const sa_client_options *o, const char *api_key,
                        const char *base_url, const char *tag, char *note,
                        size_t notelen);
void sa__budget_host_close(sa__budget_host *h);
int sa__budget_host_acquire(sa__budget_host *h, int64_t now, int64_t *ready_at,
                           int record);
void sa__budget_host_penalize(sa__budget_host *h, int64_t now, int64_t pause);
int sa__budget_host_room(sa__budget_host *h, int64_t now, int64_t *next_free);
int sa__budget_host_admitted(sa__budget_host *h, int64_t now, int mine);
/* budget_redis.c's fallback: renew this client's lease (with `mine`
 * admitted jobs), flagged away, and pace the sends of every client of the
 * file, each counted for one share: client_gap_ms / (clients) apart, never
 * less than min_gap_ms. */
int sa__budget_host_pace(sa__budget_host *h, int64_t now, int64_t client_gap_ms,
                        int64_t min_gap_ms, int64_t away_ms, int mine,
                        int record, int64_t *ready_at);
/* ... and a client on Redis (sa__budget_state_pace_redis, same gap). */
int sa__budget_host_pace_redis(sa__budget_host *h, int64_t now,
                              int64_t client_gap_ms, int64_t min_gap_ms,
                              int mine, int record, int64_t *taken,
                              int64_t *prev, int64_t *ready_at);
void sa__budget_host_unpace(sa__budget_host *h, int64_t taken, int64_t prev);
/* This client goes away from Redis (away_ms > 0) or is back (0). */
void sa__budget_host_away(sa__budget_host *h, int64_t now, int64_t away_ms,
                         int mine);
/* The file's path (tests). */
const char *sa__budget_host_path(const sa__budget_host *h);

/* budget_redis.c: the fleet's budget in Redis. */
int sa__budget_redis_parse(const char *url, char *host, size_t hostlen,
                          char *port, size_t portlen, int *db);
int sa__budget_redis_open(sa__budget_redis **out, const sa_mem *mem,
                         const sa_client_options *o, const char *api_key,
                         const char *base_url, int64_t now, char *err,
                         size_t errlen);
void sa__budget_redis_close(sa__budget_redis *r);
void sa__budget_redis_pump(sa__budget_redis *r, int64_t now);
const char *sa__budget_redis_note(const sa__budget_redis *r);
void sa__budget_redis_clear_note(sa__budget_redis *r);
int sa__budget_redis_up(const sa__budget_redis *r);
int sa__budget_redis_acquire(sa__budget_redis *r, int64_t now,
                            int64_t *ready_at, int record);
void sa__budget_redis_penalize(sa__budget_redis *r, int64_t now, int64_t pause);
int sa__budget_redis_admitted(sa__budget_redis *r, int64_t now, int mine);

#endif
