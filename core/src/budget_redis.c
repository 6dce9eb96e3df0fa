/* budget_redis.c - rate_limit_scope "redis://HOST:PORT[/DB]": a fleet's budget. */

/*
 * Every client of every machine with the same key, base URL and rate
 * options takes its slots from Redis, through one server-side Lua script
 * (SCRIPT below, run with EVALSHA, and EVAL after a NOSCRIPT) that checks
 * and records both windows atomically on sorted sets of send times, using
 * the server's clock (TIME), so the machines' clocks never matter.  The
 * keys are "skinanalysis:budget:<32 hex of SHA-256 of key, base URL and
 * windows>:<part>": never the key.
 *
 * Never blocking.  The client talks RESP itself over one non-blocking TCP
 * socket (no new library): a request is written, and its answer read,
 * only by sa__budget_redis_pump, which the client calls with every advance
 * (drive.c), a zero-timeout look at the socket.  While an answer is
 * awaited, sa__budget_redis_acquire answers "not yet, look again in
 * REDIS_POLL_MS", which the scheduler turns into its timer: a step, a
 * blocking wait or an event loop's timer hook comes back that soon.  A
 * grant is a slot to use at once: used by the advance that reads it (it
 * is dropped unless it is used within REDIS_GRANT_MS of sending its
 * request: the script ran in between, so the delay from the script's
 * clock to the send stays within the shared windows' guard
 * (SA__BUDGET_GUARD_MS, budget.c), like a host slot's.  A client too slow
 * to read its answer in time wastes that slot, never overruns.
 *
 * Redis away (connect refused, an error, no answer in REDIS_TIMEOUT_MS):
 * the client falls back to its own share of the budget (4/5 of the rate,
 * and the long window, divided by rate_limit_fleet_size), logs it once, and
 * tries to connect again with backoff (0.5 s doubling to 2 s); when Redis
 * answers again it is used again (logged once).  Jobs never see any of
 * it: their requests only wait in the scheduler a little longer.  Each
 * switch (away, back) holds every send for one span of the per-second
 * window, so that the sends the other side granted have aged out of the
 * server's window first.
 *
 * The clients of one machine spend their shares together: besides its own
 * share (a limiter), a client away from Redis takes each send from a pacer
 * in a shared-memory file of its own (budget_host.c, tag "redis-fallback"),
 * which spaces the machine's sends evenly: one share's gap divided by the
 * clients using the file.  Shares sent independently meet in bursts (8
 * clients each sending every 2 s put 6 or more sends in a given second
 * 14 % of the time: 429s); paced, one machine never bunches its own (nor
 * sends more than 4/5 of the whole rate, however many clients it runs),
 * and only machines meet at random.  No shared memory: shares alone.
 *
 * Clients do not switch together: each reconnects on its own backoff, so
 * for a second or two after Redis comes back (or while one client alone
 * lost its connection) some clients of a machine are on Redis, whose
 * windows do not hold the fallback's sends (a restarted Redis holds
 * nothing), beside others still in fallback.  So a client away flags its
 * lease in the pacer's file (at the switch and with every look at the
 * pacer; cleared when it is back), and while a flag is up, or the
 * fallback's last send is less than one span of the per-second window
 * old, a client on Redis takes a pacer slot too for each send, before it
 * asks Redis: a slot the pacer refuses is never asked of Redis, and the
 * pacer slot of one Redis refuses (or a grant dropped, a connection lost)
 * is given back.  The machine then stays within the pacer's rate however
 * its clients are split, and goes back to Redis's whole rate a span after
 * its last client is back.  A client that goes away while nobody was
 * pacing holds the fallback's first send for one span, so the clients on
 * Redis, which sent unpaced until then, have their sends age out first.
 * The flag lives in the lease (a dead process's is reclaimed; a silent
 * client's stops counting after away_ms, and its next look holds again)
 * and the rest are times: a process that dies leaves nothing that
 * outlasts them.
 */
#include "budget.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <openssl/evp.h>

#define REDIS_POLL_MS 2        /* look at the socket again while waiting */
#define REDIS_GRANT_MS 30      /* a grant used later than this after its
                                  request was sent is dropped */
#define REDIS_TIMEOUT_MS 1000  /* connect or answer: Redis is away */
#define REDIS_BACKOFF_MIN 500
#define REDIS_BACKOFF_MAX 2000
#define REDIS_LEASE_REFRESH_MS 200
#define REDIS_BUF 4096

/* KEYS: rate zset, long zset, pause, admitted hash, alive zset, seq.
 * ARGV: n_rate, rate_span, n_long, long_span, client id, admitted,
 *       op (0 leases only, 1 take a slot, 2 pause), pause_ms.
 * Returns {granted 0/1, wait_ms, admitted total}. */
static const char SCRIPT[] =
"local t = redis.call('TIME')\n"
"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
"local nr, rs = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
"local nl, ls = tonumber(ARGV[3]), tonumber(ARGV[4])\n"
"local id, adm, op = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])\n"
"redis.call('HSET', KEYS[4], id, adm)\n"
"redis.call('ZADD', KEYS[5], now, id)\n"
"for _, s in ipairs(redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now - 60000)) do\n"
"  redis.call('HDEL', KEYS[4], s)\n"
"end\n"
"redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now - 60000)\n"
"redis.call('PEXPIRE', KEYS[4], 120000)\n"
"redis.call('PEXPIRE', KEYS[5], 120000)\n"
"local total = 0\n"
"for _, v in ipairs(redis.call('HVALS', KEYS[4])) do total = total + tonumber(v) end\n"
"if op == 2 then\n"
"  local until_ms = now + tonumber(ARGV[8])\n"
"  local p = tonumber(redis.call('GET', KEYS[3]) or '0')\n"
"  if until_ms > p then redis.call('SET', KEYS[3], until_ms, 'PX', tonumber(ARGV[8]) + 1000) end\n"
"  return {0, 0, total}\n"
"end\n"
"if op == 0 then return {0, 0, total} end\n"
"local ready = now\n"
"local p = tonumber(redis.call('GET', KEYS[3]) or '0')\n"
"if p > ready then ready = p end\n"
"redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - rs)\n"
"if redis.call('ZCARD', KEYS[1]) >= nr then\n"
"  local o = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')\n"
"  if tonumber(o[2]) + rs > ready then ready = tonumber(o[2]) + rs end\n"
"end\n"
"if nl > 0 then\n"
"  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - ls)\n"
"  local n = redis.call('ZCARD', KEYS[2])\n"
"  if n >= nl then\n"
"    local o = redis.call('ZRANGE', KEYS[2], n - nl, n - nl, 'WITHSCORES')\n"
"    if tonumber(o[2]) + ls > ready then ready = tonumber(o[2]) + ls end\n"
"  end\n"
"end\n"
"if ready > now then return {0, ready - now, total} end\n"
"local m = now .. ':' .. redis.call('INCR', KEYS[6])\n"
"redis.call('PEXPIRE', KEYS[6], ls + rs + 1000)\n"
"redis.call('ZADD', KEYS[1], now, m)\n"
"redis.call('PEXPIRE', KEYS[1], rs + 1000)\n"
"if nl > 0 then\n"
"  redis.call('ZADD', KEYS[2], now, m)\n"
"  redis.call('PEXPIRE', KEYS[2], ls + 1000)\n"
"end\n"
"return {1, 0, total}\n";

enum { R_DOWN, R_CONNECTING, R_READY };

struct sa__budget_redis {
    const sa_mem *mem;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int db;
    int fd;
    int state;
    int64_t state_since;       /* connect started, or request sent */
    int64_t retry_at;          /* next connect attempt */
    long backoff;
    int down_logged;           /* "away" logged since the last success */
    int ever_up;
    char note[256];            /* a line for the client's log; "" none */

    char out[REDIS_BUF * 2];   /* request being written */
    size_t out_len, out_off;
    char in[REDIS_BUF];        /* answer being read */
    size_t in_len;
    int awaiting;              /* answers still expected (SELECT + script) */
    int inflight_op;           /* op of the script call awaited; -1 none */
    int resent;                /* EVAL sent after a NOSCRIPT */
    int64_t inflight_pause;    /* its pause (op 2) */
    int fleet;                 /* rate_limit_fleet_size */
    int64_t share_gap;         /* ms between the share's sends */
    int64_t machine_gap;       /* ... and a machine's: at most 4/5 of the
                                  whole rate from one machine */
    uint32_t phase_seed;       /* spreads the fleet's shares apart */
    int64_t away_ms;           /* this client's "away" flag counts until
                                  its lease is this old */
    int64_t pace_taken;        /* on Redis: the pacer slot taken for the
                                  slot request awaited or the grant in
                                  hand (INT64_MIN: none) ... */
    int64_t pace_prev;         /* ... and the pacer's send before it */

    char sha[41];
    char keys[6][96];
    char id[64];
    int nr, nl;
    int64_t rs, ls;

    int grant;                 /* a slot granted and not used */
    int64_t grant_at;          /* when its request was sent: the script ran
                                  after that */
    int64_t req_at;            /* the slot request awaited was sent */
    int64_t wait_until;        /* Redis said: no slot before this */
    int64_t hold_until;        /* a switch between Redis and the share:
                                  no send before this */
    int admitted_total, admitted_mine;
    int64_t admitted_at;
    int64_t pause_pending;     /* a 429 pause to tell Redis; 0 none */

    sa__limiter share;          /* the fallback: this client's share */
    sa__budget_host *pace;      /* ... paced with the machine's clients;
                                  NULL: no shared memory */
};

/* ------------------------------------------------------------------ */
/* Address                                                              */
/* ------------------------------------------------------------------ */

int sa__budget_redis_parse(const char *url, char *host, size_t hostlen,
                          char *port, size_t portlen, int *db)
{
    const char *p, *colon, *slash;
    size_t n;
    long v;
    char *end;

    if (!url || strncmp(url, "redis://", 8) != 0) return 0;
    p = url + 8;
    slash = strchr(p, '/');
    colon = strrchr(p, ':');
    if (!colon || (slash && colon > slash) || colon == p) return 0;
    n = (size_t)(colon - p);
    if (n >= hostlen) return 0;
    memcpy(host, p, n);
    host[n] = '\0';
    if (strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
               "0123456789.-") != n)
        return 0;
    p = colon + 1;
    n = slash ? (size_t)(slash - p) : strlen(p);
    if (n == 0 || n >= portlen || n > 5 || strspn(p, "0123456789") != n)
        return 0;
    memcpy(port, p, n);
    port[n] = '\0';
    v = strtol(port, &end, 10);
    if (v < 1 || v > 65535) return 0;
    *db = 0;
    if (slash) {
        p = slash + 1;
        n = strlen(p);
        if (n == 0 || n > 5 || strspn(p, "0123456789") != n) return 0;
        v = strtol(p, &end, 10);
        if (v < 0 || v > 65535) return 0;
        *db = (int)v;
    }
    return 1;
}

/* ------------------------------------------------------------------ */
/* Connection                                                          */
/* ------------------------------------------------------------------ */

/* The pacer slot taken for a Redis slot that will not be sent (refused,
 * dropped, connection lost): given back. */
static void pace_return(sa__budget_redis *r)
{
    if (r->pace_taken != INT64_MIN && r->pace)
        sa__budget_host_unpace(r->pace, r->pace_taken, r->pace_prev);
    r->pace_taken = INT64_MIN;
}

static void r_close(sa__budget_redis *r)
{
    pace_return(r);
    if (r->fd >= 0) close(r->fd);
    r->fd = -1;
    r->out_len = r->out_off = r->in_len = 0;
    r->awaiting = 0;
    r->inflight_op = -1;
    r->grant = 0;
}

/* Redis is away: own share from now on, connect again later. */
static void r_down(sa__budget_redis *r, int64_t now, const char *why)
{
    r_close(r);
    r->state = R_DOWN;
    r->retry_at = now + r->backoff;
    r->backoff = r->backoff * 2 > REDIS_BACKOFF_MAX ? REDIS_BACKOFF_MAX
                                                    : r->backoff * 2;
    r->wait_until = 0;
    /* this machine has a client away: its clients on Redis pace their
     * sends with it until it is back */
    if (r->pace)
        sa__budget_host_away(r->pace, now, r->away_ms, r->admitted_mine);
    if (!r->down_logged) {
        r->down_logged = 1;
        /* Redis granted sends in the last span that the share does not
         * know: let the server's per-second window empty first.  Then
         * each client starts its share at its own phase: clients that all
         * started at once would send together at every gap. */
        r->phase_seed = r->phase_seed * 1103515245u + 12345u;
        r->hold_until = now + r->rs
                      + (int64_t)((r->phase_seed >> 8) % (uint32_t)
                                  (r->share_gap > 0 ? r->share_gap : 1));
        snprintf(r->note, sizeof r->note, "redis rate budget unreachable (%s):"
                 " this client keeps to its share of the rate (1/%d, "
                 "rate_limit_fleet_size) until it answers again", why,
                 r->fleet);
    }
}

static int r_connect(sa__budget_redis *r, int64_t now)
{
    int fd, one = 1, fl;

    r->state_since = now;
    fd = socket(r->addr.ss_family, SOCK_STREAM, 0);
    if (fd < 0) {
        r_down(r, now, "socket");
        return 0;
    }
    fl = fcntl(fd, F_GETFL, 0);
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) {
        close(fd);
        r_down(r, now, "fcntl");
        return 0;
    }
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    r->fd = fd;
    if (connect(fd, (struct sockaddr *)&r->addr, r->addrlen) != 0
        && errno != EINPROGRESS) {
        r_down(r, now, strerror(errno));
        return 0;
    }
    r->state = R_CONNECTING;
    return 1;
}

/* ------------------------------------------------------------------ */
/* RESP                                                                */
/* ------------------------------------------------------------------ */

/* Append one command (bulk strings) to the output. */
static int r_cmd(sa__budget_redis *r, int argc, const char *const *argv)
{
    size_t cap = sizeof r->out, n = r->out_len;
    int i, w;

    w = snprintf(r->out + n, cap - n, "*%d\r\n", argc);
    if (w < 0 || (size_t)w >= cap - n) return 0;
    n += (size_t)w;
    for (i = 0; i < argc; i++) {
        size_t len = strlen(argv[i]);
        w = snprintf(r->out + n, cap - n, "$%zu\r\n", len);
        if (w < 0 || (size_t)w + len + 2 >= cap - n) return 0;
        n += (size_t)w;
        memcpy(r->out + n, argv[i], len);
        n += len;
        memcpy(r->out + n, "\r\n", 2);
        n += 2;
    }
    r->out_len = n;
    return 1;
}

static int r_script(sa__budget_redis *r, int op, int64_t pause, int eval)
{
    char a[8][32];
    const char *argv[3 + 6 + 8];
    int i, argc = 0;

    snprintf(a[0], sizeof a[0], "%d", r->nr);
    snprintf(a[1], sizeof a[1], "%lld", (long long)r->rs);
    snprintf(a[2], sizeof a[2], "%d", r->nl);
    snprintf(a[3], sizeof a[3], "%lld", (long long)r->ls);
    snprintf(a[4], sizeof a[4], "%d", r->admitted_mine);
    snprintf(a[5], sizeof a[5], "%d", op);
    snprintf(a[6], sizeof a[6], "%lld", (long long)pause);
    argv[argc++] = eval ? "EVAL" : "EVALSHA";
    argv[argc++] = eval ? SCRIPT : r->sha;
    argv[argc++] = "6";
    for (i = 0; i < 6; i++) argv[argc++] = r->keys[i];
    argv[argc++] = a[0];
    argv[argc++] = a[1];
    argv[argc++] = a[2];
    argv[argc++] = a[3];
    argv[argc++] = r->id;
    argv[argc++] = a[4];
    argv[argc++] = a[5];
    argv[argc++] = a[6];
    if (!r_cmd(r, argc, argv)) return 0;
    r->awaiting++;
    r->inflight_op = op;
    r->inflight_pause = pause;
    r->resent = eval;
    return 1;
}

/* Parse one reply at r->in.  Returns its length (0: incomplete, -1:
 * garbage).  A script answer fills v[3] (*nv = 3); an error sets *err. */
static long r_reply(const char *s, size_t len, long long v[3], int *nv,
                    int *err, int *noscript)
{
    const char *eol = memchr(s, '\n', len);
    size_t line;
    long long n;
    long long i;
    size_t off;

    *nv = 0;
    *err = 0;
    if (!eol) return len > 1024 ? -1 : 0;
    line = (size_t)(eol - s) + 1;
    switch (s[0]) {
    case '+':
        return (long)line;
    case '-':
        *err = 1;
        *noscript = strncmp(s, "-NOSCRIPT", 9) == 0;
        return (long)line;
    case ':':
        return (long)line;
    case '$':
        n = strtoll(s + 1, NULL, 10);
        if (n < 0) return (long)line;
        if (n > 512) return -1;
        if (len < line + (size_t)n + 2) return 0;
        return (long)(line + (size_t)n + 2);
    case '*':
        n = strtoll(s + 1, NULL, 10);
        if (n != 3) return -1;
        off = line;
        for (i = 0; i < 3; i++) {
            const char *e;
            if (off >= len) return 0;
            e = memchr(s + off, '\n', len - off);
            if (!e) return 0;
            if (s[off] != ':') return -1;
            v[i] = strtoll(s + off + 1, NULL, 10);
            off = (size_t)(e - s) + 1;
        }
        *nv = 3;
        return (long)off;
    default:
        return -1;
    }
}

static void r_answer(sa__budget_redis *r, int64_t now, const long long v[3])
{
    int op = r->inflight_op;
    r->inflight_op = -1;
    r->admitted_total = v[2] < 0 ? 0 : v[2] > INT_MAX ? INT_MAX : (int)v[2];
    r->admitted_at = now;
    if (op == 1) {
        if (v[0] == 1) {
            r->grant = 1;
            r->grant_at = r->req_at;
        } else {
            r->wait_until = now + (v[1] > 0 ? (int64_t)v[1] : 1);
            pace_return(r);
        }
    }
}

/* Read and write what the socket takes now; never waits. */
static void r_io(sa__budget_redis *r, int64_t now)
{
    if (r->state == R_CONNECTING) {
        int e = 0;
        socklen_t el = sizeof e;
        struct pollfd pf;
        pf.fd = r->fd;
        pf.events = POLLOUT;
        pf.revents = 0;
        if (poll(&pf, 1, 0) == 0) {   /* zero timeout: never waits */
            if (now - r->state_since > REDIS_TIMEOUT_MS)
                r_down(r, now, "connect timed out");
            return;
        }
        if (getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0) e = errno;
        if (e != 0 || (pf.revents & (POLLERR | POLLHUP))) {
            r_down(r, now, e ? strerror(e) : "connection refused");
            return;
        }
        r->state = R_READY;
        if (r->db != 0) {
            char dbs[16];
            const char *argv[2];
            snprintf(dbs, sizeof dbs, "%d", r->db);
            argv[0] = "SELECT";
            argv[1] = dbs;
            if (r_cmd(r, 2, argv)) r->awaiting++;
        }
        if (r->ever_up && r->down_logged) {
            snprintf(r->note, sizeof r->note, "redis rate budget reachable "
                     "again: shared with the fleet");
            /* a Redis that restarted empty does not know the share's
             * sends of the last span: let that window empty first */
            r->hold_until = now + r->rs;
        }
        /* back: the clients on Redis pace until nobody is away and the
         * fallback's last send has aged out of the per-second window */
        if (r->pace) sa__budget_host_away(r->pace, now, 0, r->admitted_mine);
        r->down_logged = 0;
        r->ever_up = 1;
        r->backoff = REDIS_BACKOFF_MIN;
    }
    while (r->out_off < r->out_len) {
        ssize_t k = send(r->fd, r->out + r->out_off, r->out_len - r->out_off,
                         MSG_NOSIGNAL);
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            r_down(r, now, k < 0 ? strerror(errno) : "closed");
            return;
        }
        r->out_off += (size_t)k;
    }
    if (r->out_off == r->out_len) r->out_off = r->out_len = 0;
    while (r->awaiting > 0) {
        long long v[3];
        int nv, err, noscript = 0;
        long used;
        ssize_t k = recv(r->fd, r->in + r->in_len, sizeof r->in - r->in_len, 0);
        if (k == 0) {
            r_down(r, now, "connection closed");
            return;
        }
        if (k < 0 && errno == EINTR) continue;
        if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            r_down(r, now, strerror(errno));
            return;
        }
        if (k > 0) r->in_len += (size_t)k;
        while (r->awaiting > 0 && r->in_len > 0) {
            used = r_reply(r->in, r->in_len, v, &nv, &err, &noscript);
            if (used < 0) {
                r_down(r, now, "an answer that is not RESP");
                return;
            }
            if (used == 0) break;
            memmove(r->in, r->in + used, r->in_len - (size_t)used);
            r->in_len -= (size_t)used;
            r->awaiting--;
            if (err && noscript && !r->resent && r->inflight_op >= 0) {
                int op = r->inflight_op;
                (void)r_script(r, op, r->inflight_pause, 1);
                continue;
            }
            if (err && r->inflight_op >= 0) {
                r_down(r, now, "the script failed");
                return;
            }
            if (nv == 3) r_answer(r, now, v);
        }
        if (k < 0) break;   /* nothing more to read now */
        if (r->in_len == sizeof r->in) {
            r_down(r, now, "an answer too long");
            return;
        }
    }
    if (r->out_len > r->out_off) {
        /* flush what the EVAL fallback queued */
        ssize_t k = send(r->fd, r->out + r->out_off,
                         r->out_len - r->out_off, MSG_NOSIGNAL);
        if (k > 0) r->out_off += (size_t)k;
    }
    if (r->awaiting > 0 && now - r->state_since > REDIS_TIMEOUT_MS)
        r_down(r, now, "no answer in time");
}

/* ------------------------------------------------------------------ */
/* Interface                                                           */
/* ------------------------------------------------------------------ */

static int sha_hex(const EVP_MD *md, const void *data, size_t len, char *hex,
                   size_t nbytes)
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dl = 0;
    size_t i;
    if (EVP_Digest(data, len, d, &dl, md, NULL) != 1 || dl < nbytes) return 0;
    for (i = 0; i < nbytes; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    return 1;
}

int sa__budget_redis_open(sa__budget_redis **out, const sa_mem *mem,
                         const sa_client_options *o, const char *api_key,
                         const char *base_url, int64_t now, char *err,
                         size_t errlen)
{
    static const char *const parts[6] = {"rate", "long", "pause", "admitted",
                                         "alive", "seq"};
    sa__budget_redis *r;
    char host[256], port[8], hex[33], *buf;
    struct addrinfo hints, *res = NULL;
    size_t blen;
    int db, i, fleet, rc;

    *out = NULL;
    if (!sa__budget_redis_parse(o->rate_limit_scope, host, sizeof host, port,
                               sizeof port, &db)) {
        sa__errf(err, errlen, "rate_limit_scope must be \"process\", \"host\" "
                 "or \"redis://HOST:PORT[/DB]\"");
        return SA_ERR_INVALID_ARGUMENT;
    }
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0 || !res || res->ai_addrlen > sizeof(struct sockaddr_storage)) {
        if (res) freeaddrinfo(res);
        sa__errf(err, errlen, "rate_limit_scope: cannot resolve the Redis "
                 "host %s (%s)", host, rc ? gai_strerror(rc) : "no address");
        return SA_ERR_INVALID_ARGUMENT;
    }
    r = sa__calloc(mem, 1, sizeof *r);
    if (!r) {
        freeaddrinfo(res);
        return SA_ERR_NOMEM;
    }
    r->mem = mem;
    memcpy(&r->addr, res->ai_addr, res->ai_addrlen);
    r->addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    r->db = db;
    r->fd = -1;
    r->inflight_op = -1;
    r->backoff = REDIS_BACKOFF_MIN;
    r->pace_taken = INT64_MIN;
    if (!sa__budget_plan(o, &r->nr, &r->rs, &r->nl, &r->ls)) {
        sa__free(mem, r);
        sa__errf(err, errlen, "the rate options are too large for a shared "
                 "budget");
        return SA_ERR_INVALID_ARGUMENT;
    }
    blen = strlen(api_key) + strlen(base_url) + 128;
    buf = sa__calloc(mem, 1, blen);
    if (!buf) {
        sa__free(mem, r);
        return SA_ERR_NOMEM;
    }
    snprintf(buf, blen, "skinanalysis-budget\n%s\n%s\n%d/%lld/%d/%lld",
             api_key, base_url, r->nr, (long long)r->rs, r->nl,
             (long long)r->ls);
    rc = sha_hex(EVP_sha256(), buf, strlen(buf), hex, 16)
      && sha_hex(EVP_sha1(), SCRIPT, strlen(SCRIPT), r->sha, 20);
    memset(buf, 0, blen);
    sa__free(mem, buf);
    if (!rc) {
        sa__free(mem, r);
        sa__errf(err, errlen, "cannot hash the Redis budget's name");
        return SA_ERR_INVALID_ARGUMENT;
    }
    for (i = 0; i < 6; i++)
        snprintf(r->keys[i], sizeof r->keys[i], "skinanalysis:budget:%s:%s",
                 hex, parts[i]);
    snprintf(r->id, sizeof r->id, "%ld-%llx", (long)getpid(),
             (unsigned long long)(uintptr_t)r ^ (unsigned long long)now);
    fleet = o->rate_limit_fleet_size > 0 ? o->rate_limit_fleet_size : 4;
    r->fleet = fleet;
    r->share_gap = (int64_t)(1000.0 * fleet / (0.8 * o->rate_per_second));
    if (r->share_gap > 3600000) r->share_gap = 3600000;
    r->machine_gap = r->share_gap / fleet;
    /* a client away looks at the pacer about once a share's gap while it
     * has sends to make (and tries Redis every backoff): twice either.
     * One silent for longer (idle, or stuck in R_DOWN unadvanced) stops
     * counting, and its next send waits one span
     * (sa__budget_state_away) */
    r->away_ms = 2 * r->share_gap > 2 * REDIS_BACKOFF_MAX ? 2 * r->share_gap
                                                         : 2 * REDIS_BACKOFF_MAX;
    if (r->away_ms > SA__BUDGET_LEASE_MS) r->away_ms = SA__BUDGET_LEASE_MS;
    r->phase_seed = (uint32_t)getpid() * 2654435761u
                  ^ (uint32_t)(uintptr_t)r ^ (uint32_t)now;
    /* 4/5 of an even share: the fleet's clients send independently, so
     * their shares meet in bursts */
    rc = sa__limiter_init(&r->share, mem, 1, 0.8 * o->rate_per_second / fleet,
                         o->rate_burst, o->rate_window_max / fleet > 0
                         ? o->rate_window_max / fleet : (o->rate_window_max > 0),
                         (int64_t)o->rate_window_ms);
    if (rc != SA_OK) {
        sa__free(mem, r);
        if (rc == SA_ERR_NOMEM) return rc;
        sa__errf(err, errlen, "rate_limit_fleet_size leaves no rate");
        return SA_ERR_INVALID_ARGUMENT;
    }
    {
        char why[256];
        rc = sa__budget_host_open(&r->pace, mem, o, api_key, base_url,
                                 "redis-fallback", why, sizeof why);
        if (rc == SA_ERR_NOMEM) {
            sa__limiter_free(&r->share);
            sa__free(mem, r);
            return rc;
        }
    }
    (void)r_connect(r, now);
    *out = r;
    return SA_OK;
}

void sa__budget_redis_close(sa__budget_redis *r)
{
    if (!r) return;
    r_close(r);
    sa__budget_host_close(r->pace);
    sa__limiter_free(&r->share);
    sa__free(r->mem, r);
}

void sa__budget_redis_pump(sa__budget_redis *r, int64_t now)
{
    if (!r) return;
    if (r->state == R_DOWN) {
        if (now < r->retry_at) return;
        if (!r_connect(r, now)) return;
    }
    r_io(r, now);
    if (r->state == R_READY && r->pause_pending > 0 && r->inflight_op < 0) {
        if (r_script(r, 2, r->pause_pending, 0)) {
            r->state_since = now;
            r->pause_pending = 0;
            r_io(r, now);
        }
    }
}

const char *sa__budget_redis_note(const sa__budget_redis *r)
{
    return r && r->note[0] ? r->note : NULL;
}

void sa__budget_redis_clear_note(sa__budget_redis *r)
{
    if (r) r->note[0] = '\0';
}

int sa__budget_redis_up(const sa__budget_redis *r)
{
    return r && r->state != R_DOWN;
}

int sa__budget_redis_acquire(sa__budget_redis *r, int64_t now,
                            int64_t *ready_at, int record)
{
    int64_t ready = now;

    if (now < r->hold_until) {
        *ready_at = r->hold_until;
        return 0;
    }
    if (r->state == R_DOWN) {
        /* own share while Redis is away, paced with the machine's */
        if (!sa__limiter_check(&r->share, now, ready_at)) return 0;
        if (r->pace && !sa__budget_host_pace(r->pace, now, r->share_gap,
                                             r->machine_gap, r->away_ms,
                                             r->admitted_mine, record,
                                             ready_at))
            return 0;
        return record ? sa__limiter_acquire(&r->share, now, ready_at) : 1;
    }
    if (r->grant && now - r->grant_at > REDIS_GRANT_MS) {
        r->grant = 0;
        pace_return(r);
    }
    if (r->grant) {
        if (record) {
            r->grant = 0;
            r->pace_taken = INT64_MIN;   /* sent: the pacer slot is used */
        }
        return 1;
    }
    if (!record) {             /* whether to ask at all */
        int64_t taken, prev;
        return !r->pace || sa__budget_host_pace_redis(
                   r->pace, now, r->share_gap, r->machine_gap,
                   r->admitted_mine, 0, &taken, &prev, ready_at);
    }
    if (r->wait_until > now) {
        *ready_at = r->wait_until;
        return 0;
    }
    if (r->state == R_READY && r->inflight_op < 0) {
        /* a client of this machine is away from Redis (or was, lately):
         * its sends are not in Redis's windows, so this one also takes a
         * pacer slot, before asking Redis: a slot the pacer refuses never
         * spends one in Redis, and one Redis refuses is given back */
        if (r->pace && !sa__budget_host_pace_redis(
                           r->pace, now, r->share_gap, r->machine_gap,
                           r->admitted_mine, 1, &r->pace_taken,
                           &r->pace_prev, ready_at))
            return 0;
        if (r_script(r, 1, 0, 0)) {
            r->state_since = now;
            r->req_at = now;
            r_io(r, now);
        } else {
            pace_return(r);
        }
    }
    ready = now + REDIS_POLL_MS;
    if (r->grant) {            /* answered at once */
        r->grant = 0;
        r->pace_taken = INT64_MIN;
        return 1;
    }
    if (r->state == R_DOWN) {  /* it went away just now */
        *ready_at = r->hold_until;
        return 0;
    }
    if (r->wait_until > now) ready = r->wait_until;
    *ready_at = ready;
    return 0;
}

void sa__budget_redis_penalize(sa__budget_redis *r, int64_t now, int64_t pause)
{
    sa__limiter_penalize(&r->share, now, pause);
    if (r->state != R_DOWN) {
        r->pause_pending = pause > 0 ? pause : 1;
        if (r->wait_until < now + pause) r->wait_until = now + pause;
    }
}

int sa__budget_redis_admitted(sa__budget_redis *r, int64_t now, int mine)
{
    int others = r->admitted_total - r->admitted_mine;
    r->admitted_mine = mine;
    if (r->state == R_DOWN) return mine;
    if (r->state == R_READY && r->inflight_op < 0
        && now - r->admitted_at >= REDIS_LEASE_REFRESH_MS) {
        if (r_script(r, 0, 0, 0)) {
            r->state_since = now;
            r_io(r, now);
        }
    }
    if (others < 0) others = 0;
    return mine + others;
}
