/* test_budget.c - the shared rate budget (core/src/budget.c with fake
 * time, budget_host.c across real processes). */
#include "harness.h"
#include "budget.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define T0 ((int64_t)5000000)
#define G SA__BUDGET_GUARD_MS

static sa__budget_state st;

static void plan_default(void)
{
    sa_client_options o;
    int nr, nl;
    int64_t rs, ls;
    sa_client_options_init(&o);
    CHECK(sa__budget_plan(&o, &nr, &rs, &nl, &ls));
    CHECK_EQ_INT(nr, 5);
    CHECK(rs == 1000 + G);
    CHECK_EQ_INT(nl, 250);
    CHECK(ls == 300000 + G);
    sa__budget_state_init(&st, nr, rs, nl, ls);
}

/* The windows are the limiter's, guard included: 5 in any 1020 ms. */
TEST(rate_window_with_guard)
{
    int64_t ready = 0;
    int i;
    plan_default();
    for (i = 0; i < 5; i++) CHECK(sa__budget_state_acquire(&st, T0 + i, &ready));
    CHECK(!sa__budget_state_acquire(&st, T0 + 10, &ready));
    CHECK(ready == T0 + 1000 + G);
    CHECK(!sa__budget_state_check(&st, T0 + 1000 + G - 1, &ready));
    CHECK(sa__budget_state_check(&st, T0 + 1000 + G, &ready));
    /* check records nothing */
    CHECK(sa__budget_state_acquire(&st, T0 + 1000 + G, &ready));
    CHECK(!sa__budget_state_acquire(&st, T0 + 1000 + G, &ready));
    CHECK(ready == T0 + 1 + 1000 + G);
}

/* Two "processes" on one state: together at most 5 per 1020 ms and 250
 * per 300020 ms, at random times over 20 minutes. */
TEST(two_clients_share_both_windows)
{
    int64_t now = T0, ready, sends[4000];
    int n = 0, i, j;
    unsigned seed = 7;
    plan_default();
    while (now < T0 + 1200000 && n < 4000) {
        now += (int64_t)(rand_r(&seed) % 300);
        if (sa__budget_state_acquire(&st, now, &ready)) sends[n++] = now;
    }
    CHECK(n > 900);
    for (i = 0; i < n; i++) {
        int in1 = 0, in300 = 0;
        for (j = i; j < n && sends[j] < sends[i] + 1000 + G; j++) in1++;
        for (j = i; j < n && sends[j] < sends[i] + 300000 + G; j++) in300++;
        CHECK(in1 <= 5);
        CHECK(in300 <= 250);
        if (in1 > 5 || in300 > 250) break;
    }
    /* the long window binds: about 250 per 300 s over 20 minutes */
    CHECK(n <= 4 * 250 + 250);
}

TEST(room_and_penalty)
{
    int64_t ready = 0, next = 0;
    int i;
    plan_default();
    CHECK(sa__budget_state_room(&st, T0, &next) == 250);
    CHECK(next == INT64_MAX);
    for (i = 0; i < 3; i++) CHECK(sa__budget_state_acquire(&st, T0 + i, &ready));
    CHECK(sa__budget_state_room(&st, T0 + 10, &next) == 247);
    CHECK(next == T0 + 300000 + G);
    CHECK(sa__budget_state_room(&st, T0 + 300000 + G, &next) == 248);
    sa__budget_state_penalize(&st, T0 + 100, 1000);
    CHECK(!sa__budget_state_acquire(&st, T0 + 500, &ready));
    CHECK(ready == T0 + 1100);
    CHECK(sa__budget_state_acquire(&st, T0 + 1100, &ready));
}

/* Time that goes back (a caller's clock) is "no time passed". */
TEST(time_never_goes_back)
{
    int64_t ready = 0;
    int i;
    plan_default();
    for (i = 0; i < 5; i++) CHECK(sa__budget_state_acquire(&st, T0, &ready));
    CHECK(!sa__budget_state_acquire(&st, T0 - 5000, &ready));
    CHECK(ready == T0 + 1000 + G);
}

/* A ring left out of range by a process that died mid-update is reset,
 * never read out of bounds. */
TEST(corrupt_ring_is_sanitised)
{
    int64_t ready = 0;
    plan_default();
    st.rate.count = 99;
    st.lng.head = -3;
    CHECK(sa__budget_state_acquire(&st, T0, &ready));
    CHECK(st.rate.count == 1);
}

static int dead_pid = 0;
static int fake_alive(void *ud, int32_t pid)
{
    (void)ud;
    return pid != dead_pid;
}

/* Leases: every client's admitted jobs count; a dead process's and an
 * expired lease's count for nothing; release says who is left. */
TEST(leases_count_and_expire)
{
    plan_default();
    dead_pid = 0;
    CHECK_EQ_INT(sa__budget_state_lease(&st, T0, 100, 1, 2, fake_alive, NULL), 2);
    CHECK_EQ_INT(sa__budget_state_lease(&st, T0, 200, 1, 3, fake_alive, NULL), 5);
    CHECK_EQ_INT(sa__budget_state_lease(&st, T0, 100, 2, 1, fake_alive, NULL), 6);
    CHECK_EQ_INT(sa__budget_state_lease(&st, T0 + 10, 100, 1, 0, fake_alive, NULL), 4);
    /* process 200 dies: its 3 are reclaimed once its lease is a second old */
    dead_pid = 200;
    CHECK_EQ_INT(sa__budget_state_lease(&st, T0 + 500, 100, 1, 0, fake_alive, NULL), 4);
    CHECK_EQ_INT(sa__budget_state_lease(&st, T0 + 1000, 100, 1, 0, fake_alive, NULL), 1);
    /* a live lease not renewed for SA__BUDGET_LEASE_MS counts 0 */
    CHECK_EQ_INT(sa__budget_state_lease(&st, T0 + SA__BUDGET_LEASE_MS + 1, 100, 1,
                                       2, fake_alive, NULL), 2);
    CHECK_EQ_INT(sa__budget_state_release(&st, 100, 1, fake_alive, NULL), 1);
    CHECK_EQ_INT(sa__budget_state_release(&st, 100, 2, fake_alive, NULL), 0);
}

TEST(lease_table_full)
{
    int i;
    plan_default();
    for (i = 0; i < SA__BUDGET_LEASES; i++)
        CHECK(sa__budget_state_lease(&st, T0, 1000 + i, 1, 1, NULL, NULL) == i + 1);
    CHECK_EQ_INT(sa__budget_state_lease(&st, T0, 5, 1, 1, NULL, NULL), -1);
}

/* The redis scope's fallback pacer (budget_redis.c): a machine's sends
 * spaced by one share's gap divided by the clients on the file, the gap of
 * the moment counted from the last send; never 6 sends in a second where
 * 8 independent shares of 1 send per 2 s would (checked over 10 minutes
 * of fake time with every client asking every millisecond). */
TEST(fallback_pacer_spaces_a_machines_sends)
{
    int64_t ready = 0, t, sends[4096];
    int i, n = 0, worst = 0, lo = 0;

    plan_default();
    CHECK_EQ_INT(sa__budget_state_clients(&st, T0), 1);   /* never 0 */
    for (i = 0; i < 8; i++)
        (void)sa__budget_state_lease(&st, T0, 100 + i, 1, 0, NULL, NULL);
    CHECK_EQ_INT(sa__budget_state_clients(&st, T0), 8);
    CHECK_EQ_INT(sa__budget_state_clients(&st, T0 + SA__BUDGET_LEASE_MS), 1);
    /* the first send goes at once; check does not record */
    CHECK(sa__budget_state_pace(&st, T0, 250, 0, &ready));
    CHECK(sa__budget_state_pace(&st, T0, 250, 1, &ready));
    CHECK(!sa__budget_state_pace(&st, T0 + 100, 250, 1, &ready));
    CHECK_EQ_INT((int)(ready - T0), 250);
    /* a client joins: the gap shrinks from the last send, not from the
     * next time the old gap gave */
    CHECK(sa__budget_state_pace(&st, T0 + 125, 125, 1, &ready));
    /* 8 clients asking every millisecond, each share 2000 ms apart */
    for (t = T0 + 1000; t < T0 + 601000 && n < 4096; t++)
        if (sa__budget_state_pace(&st, t, 2000 / 8, 1, &ready))
            sends[n++] = t;
    CHECK(n >= 2390 && n <= 2401);   /* 4 a second, evenly */
    for (i = 0; i < n; i++) {
        while (sends[i] - sends[lo] >= 1000) lo++;
        if (i - lo + 1 > worst) worst = i - lo + 1;
    }
    CHECK_EQ_INT(worst, 4);
}

/* Most sends in any `span` ms of sorted times. */
static int worst_window(const int64_t *t, int n, int64_t span)
{
    int i, lo = 0, worst = 0;
    for (i = 0; i < n; i++) {
        while (t[i] - t[lo] >= span) lo++;
        if (i - lo + 1 > worst) worst = i - lo + 1;
    }
    return worst;
}

#define MIX_CLIENTS 8
#define MIX_GAP 250      /* 8 clients, fleet 8: 2000 ms / 8 (4/5 of 5/s) */
#define MIX_SHARE 2000   /* one client's share: 0.8 * 5/s / 8 */
#define MIX_AWAY 4000    /* budget_redis.c's away_ms: 2 x MIX_SHARE */

/* Redis comes back (empty) while 8 clients of a machine are in fallback;
 * they reconnect one by one over 2 s (their own backoffs), each holding
 * one span after its reconnect as budget_redis.c does, and every client
 * asks for a slot every millisecond.  Clients back on Redis take a pacer
 * slot before asking (a fake Redis: the windows of a second state), and
 * give it back when Redis refuses; clients in fallback take their share
 * and the pacer.  Never more than 5 sends in any second (main, where the
 * clients on Redis ignore the pacer, put 8 in one: the empty Redis grants
 * 5 beside the fallback's sends); a span after the last client is back,
 * Redis alone gives its 5 per span again. */
TEST(clients_on_redis_pace_with_the_fallback)
{
    static sa__budget_state rd;   /* the restarted Redis's windows */
    static int64_t sends[8192];
    int64_t back_at[MIX_CLIENTS], share_last[MIX_CLIENTS], t, ready = 0;
    int64_t all_back, taken, prev;
    int i, n = 0, late = 0, redis_refused = 0;

    plan_default();
    sa__budget_state_init(&rd, st.rate.max, st.rate.span_ms, st.lng.max,
                          st.lng.span_ms);
    for (i = 0; i < MIX_CLIENTS; i++) {
        back_at[i] = T0 + 100 + 250 * i;
        share_last[i] = INT64_MIN;
        (void)sa__budget_state_lease(&st, T0 - 10000, 100 + i, 1, 0, NULL,
                                    NULL);
    }
    all_back = back_at[MIX_CLIENTS - 1] + st.rate.span_ms;
    /* ten seconds in fallback before Redis is back */
    for (t = T0 - 10000; t < T0 + 14000 && n < 8192; t++) {
        for (i = 0; i < MIX_CLIENTS; i++) {
            /* every look flags a client away, then renews the lease
             * (budget_host.c) */
            if (t <= back_at[i])            /* connected at back_at: 0 */
                sa__budget_state_away(&st, t, 100 + i, 1,
                                      t < back_at[i] ? MIX_AWAY : 0);
            (void)sa__budget_state_lease(&st, t, 100 + i, 1, 0, NULL, NULL);
            if (t < back_at[i]) {           /* fallback: share, then pacer */
                if (share_last[i] != INT64_MIN
                    && t - share_last[i] < MIX_SHARE)
                    continue;
                if (!sa__budget_state_pace_fallback(&st, t, MIX_GAP, 1,
                                                   &ready))
                    continue;
                share_last[i] = t;
                sends[n++] = t;
            } else if (t >= back_at[i] + st.rate.span_ms) {   /* on Redis */
                int64_t rd_ready;
                if (!sa__budget_state_pace_redis(&st, t, MIX_GAP, 1, &taken,
                                                &prev, &ready))
                    continue;
                if (!sa__budget_state_acquire(&rd, t, &rd_ready)) {
                    sa__budget_state_unpace(&st, taken, prev);
                    redis_refused++;
                    continue;
                }
                sends[n++] = t;
                if (t >= all_back) late++;
            }
        }
    }
    CHECK(n < 8192);
    CHECK(worst_window(sends, n, 1000) <= 5);
    printf("  (%d sends, at most %d in a second, %d Redis refusals, %d on "
           "Redis alone)\n", n, worst_window(sends, n, 1000), redis_refused,
           late);
    /* nobody away and the fallback's last send a span old: Redis alone,
     * 5 a span (paced, 4 a second, would be 4 x 10.9 s = 43) */
    CHECK(!sa__budget_state_mixing(&st, all_back));
    CHECK(late >= (int)(5 * (T0 + 14000 - all_back) / st.rate.span_ms) - 1);
}

/* The order of the two slots while mixed: a refused pacer slot spends no
 * Redis slot (the client does not ask), a pacer slot Redis refused is
 * given back (the next client may send at once), unless another was
 * spaced from it since; a client going away while nobody was mixing holds
 * the fallback one span (the clients on Redis sent unpaced until then);
 * the flag of a dead process is reclaimed, a silent one's expires. */
TEST(pacer_slots_across_a_switch)
{
    int64_t ready = 0, taken, prev, taken2, prev2, fsent, t;

    plan_default();
    dead_pid = 0;
    (void)sa__budget_state_lease(&st, T0, 100, 1, 0, fake_alive, NULL);
    (void)sa__budget_state_lease(&st, T0, 200, 1, 0, fake_alive, NULL);
    CHECK(!sa__budget_state_mixing(&st, T0));
    /* nobody away: the clients on Redis do not touch the pacer */
    CHECK(sa__budget_state_pace_redis(&st, T0, MIX_GAP, 1, &taken, &prev,
                                     &ready));
    CHECK(taken == INT64_MIN && st.pace_last == INT64_MIN);
    /* 200 goes away at T0 + 10: the sends the clients on Redis made
     * unpaced in the last span age out before its first */
    sa__budget_state_away(&st, T0 + 10, 200, 1, MIX_AWAY);
    CHECK(sa__budget_state_mixing(&st, T0 + 10));
    CHECK(!sa__budget_state_pace_fallback(&st, T0 + 20, MIX_GAP, 1, &ready));
    CHECK(ready == T0 + 10 + st.rate.span_ms);
    CHECK(sa__budget_state_pace_fallback(&st, ready, MIX_GAP, 1, &ready));
    CHECK(st.pace_last == T0 + 10 + st.rate.span_ms);
    /* a client on Redis now takes a pacer slot first */
    CHECK(!sa__budget_state_pace_redis(&st, st.pace_last + 100, MIX_GAP, 1,
                                      &taken, &prev, &ready));
    CHECK(taken == INT64_MIN && ready == st.pace_last + MIX_GAP);
    CHECK(sa__budget_state_pace_redis(&st, ready, MIX_GAP, 1, &taken, &prev,
                                     &ready));
    CHECK(taken == st.pace_last && prev == taken - MIX_GAP);
    /* Redis refused it: given back, the fallback client sends at once */
    sa__budget_state_unpace(&st, taken, prev);
    CHECK(st.pace_last == prev);
    fsent = taken + 1;
    CHECK(sa__budget_state_pace_fallback(&st, fsent, MIX_GAP, 1, &ready));
    /* a slot spaced from a taken one stays when the first is given back */
    CHECK(sa__budget_state_pace_redis(&st, fsent + MIX_GAP, MIX_GAP, 1,
                                     &taken, &prev, &ready));
    CHECK(sa__budget_state_pace_redis(&st, taken + MIX_GAP, MIX_GAP, 1,
                                     &taken2, &prev2, &ready));
    sa__budget_state_unpace(&st, taken, prev);
    CHECK(st.pace_last == taken2);
    /* check (record 0) takes nothing */
    CHECK(sa__budget_state_pace_redis(&st, taken2 + MIX_GAP, MIX_GAP, 0,
                                     &taken, &prev, &ready));
    CHECK(taken == INT64_MIN && st.pace_last == taken2);
    /* 200 is back: pacing lasts until its last send is a span old */
    sa__budget_state_away(&st, taken2 + MIX_GAP, 200, 1, 0);
    CHECK(sa__budget_state_mixing(&st, fsent + st.rate.span_ms - 1));
    CHECK(!sa__budget_state_mixing(&st, fsent + st.rate.span_ms));
    CHECK(sa__budget_state_pace_redis(&st, fsent + st.rate.span_ms, MIX_GAP,
                                     1, &taken, &prev, &ready));
    CHECK(taken == INT64_MIN && st.pace_last == taken2);
    /* away again while nobody is: the hold again */
    t = fsent + st.rate.span_ms + 5;
    sa__budget_state_away(&st, t, 200, 1, MIX_AWAY);
    (void)sa__budget_state_lease(&st, t, 200, 1, 0, fake_alive, NULL);
    CHECK(!sa__budget_state_pace_fallback(&st, t, MIX_GAP, 1, &ready));
    CHECK(ready == t + st.rate.span_ms);
    /* 200 dies away: its lease, flag and all, is reclaimed at the next
     * renewal once it is a second old (and its last send a span old) */
    dead_pid = 200;
    CHECK(sa__budget_state_mixing(&st, t + 1000));
    (void)sa__budget_state_lease(&st, t + 1000, 100, 1, 0, fake_alive, NULL);
    CHECK(!sa__budget_state_mixing(&st, t + 1000));
    /* a live client away but silent (idle, or never advanced) counts for
     * its away_ms; its next look holds one span again */
    dead_pid = 0;
    t += 2000;
    (void)sa__budget_state_lease(&st, t, 300, 1, 0, fake_alive, NULL);
    sa__budget_state_away(&st, t, 300, 1, MIX_AWAY);
    CHECK(sa__budget_state_mixing(&st, t + MIX_AWAY - 1));
    CHECK(!sa__budget_state_mixing(&st, t + MIX_AWAY));
    t += MIX_AWAY;
    sa__budget_state_away(&st, t, 300, 1, MIX_AWAY);
    (void)sa__budget_state_lease(&st, t, 300, 1, 0, fake_alive, NULL);
    CHECK(!sa__budget_state_pace_fallback(&st, t, MIX_GAP, 1, &ready));
    CHECK(ready == t + st.rate.span_ms);
    /* a flag never counts longer than a lease */
    sa__budget_state_away(&st, t, 300, 1, 10 * SA__BUDGET_LEASE_MS);
    CHECK(sa__budget_state_mixing(&st, t + SA__BUDGET_LEASE_MS - 1));
    CHECK(!sa__budget_state_mixing(&st, t + SA__BUDGET_LEASE_MS));
}

TEST(scope_names)
{
    char err[256];
    CHECK_EQ_INT(sa__budget_parse_scope(NULL, err, sizeof err), SA__SCOPE_HOST);
    CHECK_EQ_INT(sa__budget_parse_scope("host", err, sizeof err), SA__SCOPE_HOST);
    CHECK_EQ_INT(sa__budget_parse_scope("process", err, sizeof err),
                 SA__SCOPE_PROCESS);
    CHECK_EQ_INT(sa__budget_parse_scope("Host", err, sizeof err), -1);
    CHECK_EQ_INT(sa__budget_parse_scope("", err, sizeof err), -1);
    CHECK_EQ_INT(sa__budget_parse_scope("redis://127.0.0.1:6379", err,
                                       sizeof err), SA__SCOPE_REDIS);
    CHECK_EQ_INT(sa__budget_parse_scope("redis://cache.internal:6380/3", err,
                                       sizeof err), SA__SCOPE_REDIS);
    CHECK_EQ_INT(sa__budget_parse_scope("redis://h:0", err, sizeof err), -1);
    CHECK_EQ_INT(sa__budget_parse_scope("redis://h:70000", err, sizeof err), -1);
    CHECK_EQ_INT(sa__budget_parse_scope("redis://h:1/", err, sizeof err), -1);
    CHECK_EQ_INT(sa__budget_parse_scope("redis://:1", err, sizeof err), -1);
    CHECK_EQ_INT(sa__budget_parse_scope("redis://h", err, sizeof err), -1);
    CHECK_EQ_INT(sa__budget_parse_scope("redis://u:p@h:1", err, sizeof err), -1);
    CHECK(strstr(err, "redis://HOST:PORT") != NULL);
}

/* sa_client_new: a bad scope is a typed error before anything else. */
TEST(client_rejects_bad_scope)
{
    sa_client_options o;
    sa_client *c = NULL;
    char err[512];
    CHECK_EQ_INT(sa_global_init(), SA_OK);
    sa_client_options_init(&o);
    o.api_key = "k-scope-test";
    o.base_url = "http://127.0.0.1:9";
    o.rate_limit_scope = "planet";
    CHECK_EQ_INT(sa_client_new(&c, &o, err, sizeof err),
                 SA_ERR_INVALID_ARGUMENT);
    CHECK(strstr(err, "rate_limit_scope") != NULL);
    CHECK(c == NULL);
    o.rate_limit_scope = "process";
    CHECK_EQ_INT(sa_client_new(&c, &o, err, sizeof err), SA_OK);
    sa_client_free(c);
}

/* ------------------------------------------------------------------ */
/* Host scope across real processes                                    */
/* ------------------------------------------------------------------ */

static void host_opts(sa_client_options *o, const char *key)
{
    sa_client_options_init(o);
    o->api_key = key;
    o->base_url = "http://127.0.0.1:1";
    o->rate_limit_scope = "host";
}

/* o's host budget, shared between processes: NULL where this system has
 * none (the reason in note) or it failed to open (a failed check). */
static sa__budget *host_budget(const sa_client_options *o, char *note,
                               size_t notelen)
{
    sa__budget *b = NULL;

    CHECK_EQ_INT(sa__budget_open(&b, NULL, o, o->api_key, o->base_url, note,
                                notelen), SA_OK);
    if (b && !sa__budget_shared(b)) {
        sa__budget_close(b);
        b = NULL;
    }
    return b;
}

#define PROCS 4
#define PER_PROC 6

/* 4 processes take 6 slots each from one host budget: together never more
 * than 5 in any 1020 ms (times written to a shared array); the file is
 * 0600, does not hold the key, and is gone after the last close. */
TEST(host_scope_across_processes)
{
    char key[64], note[512], path[512];
    sa_client_options o;
    sa__budget *b = NULL;
    int64_t *times;
    int p, i, j, n = PROCS * PER_PROC;
    struct stat sb;

    snprintf(key, sizeof key, "secret-key-%ld", (long)getpid());
    host_opts(&o, key);
    b = host_budget(&o, note, sizeof note);
    if (!b) {
        printf("  (no shared memory here: %s)\n", note);
        return;
    }
    snprintf(path, sizeof path, "%s", sa__budget_host_path(b->host));
    CHECK(strstr(path, key) == NULL);
    CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600);
    times = mmap(NULL, sizeof(int64_t) * (size_t)n, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(times != MAP_FAILED);
    for (p = 0; p < PROCS; p++) {
        pid_t pid = fork();
        if (pid == 0) {
            sa__budget *cb = NULL;
            char cnote[512];
            int got = 0;
            if (sa__budget_open(&cb, NULL, &o, key, o.base_url, cnote,
                               sizeof cnote) != SA_OK || !sa__budget_shared(cb))
                _exit(3);
            while (got < PER_PROC) {
                int64_t now = harness_now_ms(), ready = now;
                if (sa__budget_acquire(cb, now, &ready)) {
                    times[p * PER_PROC + got++] = now;
                } else {
                    struct timespec d = {0, 1000000};
                    nanosleep(&d, NULL);   /* a worker's idle loop */
                }
            }
            sa__budget_close(cb);
            _exit(0);
        }
        CHECK(pid > 0);
    }
    for (p = 0; p < PROCS; p++) {
        int status = 0;
        CHECK(wait(&status) > 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    /* sort and check every 1020 ms span */
    for (i = 1; i < n; i++)
        for (j = i; j > 0 && times[j - 1] > times[j]; j--) {
            int64_t t = times[j];
            times[j] = times[j - 1];
            times[j - 1] = t;
        }
    for (i = 0; i < n; i++) {
        int in1 = 0;
        for (j = i; j < n && times[j] < times[i] + 1000 + G; j++) in1++;
        CHECK(in1 <= 5);
    }
    /* 24 sends at 5 per 1020 ms: at least 4 full seconds */
    CHECK(times[n - 1] - times[0] >= 4 * (1000 + G));
    CHECK(times[n - 1] - times[0] < 4 * (1000 + G) + 1000);
    munmap(times, sizeof(int64_t) * (size_t)n);
    sa__budget_close(b);
    CHECK(stat(path, &sb) != 0);   /* the last one out removed it */
}

/* A process that dies without closing leaks nothing: its admitted jobs
 * stop counting once its lease is a second old, and the next close still
 * removes the file. */
TEST(host_scope_dead_process_leaks_nothing)
{
    char key[64], note[512], path[512];
    sa_client_options o;
    sa__budget *b = NULL;
    int64_t now;
    int status = 0;
    pid_t pid;
    struct stat sb;

    snprintf(key, sizeof key, "dead-key-%ld", (long)getpid());
    host_opts(&o, key);
    b = host_budget(&o, note, sizeof note);
    if (!b) return;
    snprintf(path, sizeof path, "%s", sa__budget_host_path(b->host));
    now = harness_now_ms();
    pid = fork();
    if (pid == 0) {
        sa__budget *cb = NULL;
        char cnote[512];
        if (sa__budget_open(&cb, NULL, &o, key, o.base_url, cnote,
                           sizeof cnote) != SA_OK)
            _exit(3);
        (void)sa__budget_admitted(cb, now, 4);
        _exit(0);   /* dies holding 4 admitted jobs, never closes */
    }
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_EQ_INT(sa__budget_admitted(b, now, 1), 5);
    CHECK_EQ_INT(sa__budget_admitted(b, now + 1500, 1), 1);
    sa__budget_close(b);
    CHECK(stat(path, &sb) != 0);
}

/* Two schedulers (two clients) on o's host budget, each with its own
 * handle of it: 0 (nothing left open) where there is no shared memory. */
static int two_schedulers(const sa_client_options *o, sa__sched *sa,
                          sa__sched *sb, sa__budget **ba, sa__budget **bb)
{
    char note[512];

    *ba = host_budget(o, note, sizeof note);
    *bb = host_budget(o, note, sizeof note);
    if (!*ba || !*bb) {
        sa__budget_close(*ba);
        sa__budget_close(*bb);
        return 0;
    }
    CHECK_EQ_INT(sa__sched_init(sa, NULL, o), SA_OK);
    CHECK_EQ_INT(sa__sched_init(sb, NULL, o), SA_OK);
    sa->budget = *ba;
    sb->budget = *bb;
    return 1;
}

/* Two clients' schedulers (sched.c) on one host budget, with fake time
 * from now on: the per-second window and the admission cap are theirs
 * together; a client held by the cap looks again every
 * SA__BUDGET_RECHECK_MS (a job ending elsewhere does not wake it). */
TEST(two_schedulers_share_window_and_cap)
{
    char key[64];
    sa_client_options o;
    sa__sched sa, sb;
    sa__budget *ba = NULL, *bb = NULL;
    sa__sched_item ia[8], ib[8];
    int64_t now;
    int i, n;

    snprintf(key, sizeof key, "sched-key-%ld", (long)getpid());
    host_opts(&o, key);
    if (!two_schedulers(&o, &sa, &sb, &ba, &bb)) return;
    CHECK_EQ_INT(sa.admit_cap, 6);
    now = harness_now_ms();
    for (i = 0; i < 8; i++) {
        sa__sched_item_init(&ia[i]);
        sa__sched_item_init(&ib[i]);
    }
    for (i = 0; i < 4; i++) sa__sched_park_api(&sa, &ia[i], SA__STEP_FILE_CREATE, now);
    for (i = 0; i < 4; i++) sa__sched_park_api(&sb, &ib[i], SA__STEP_FILE_CREATE, now);
    for (n = 0; sa__sched_next_api(&sa, now); n++) {}
    CHECK_EQ_INT(n, 4);
    CHECK(sa__sched_next_api(&sb, now) == &ib[0]);
    CHECK(sa__sched_next_api(&sb, now) == NULL);    /* 5 per second, together */
    CHECK(sa__sched_ready_at(&sb, now) == now + 1000 + G);
    now += 1000 + G;
    /* 5 admitted of a cap of 6: one more, then the cap holds B */
    CHECK(sa__sched_next_api(&sb, now) == &ib[1]);
    CHECK(sa__sched_next_api(&sb, now) == NULL);
    CHECK_EQ_INT(sb.n_admitted_all, 6);
    CHECK(sa__sched_ready_at(&sb, now) == now + SA__BUDGET_RECHECK_MS);
    /* a job of A ends; B sees it when it looks again */
    sa__sched_unadmit(&sa, &ia[0], now);
    now += SA__BUDGET_RECHECK_MS;
    CHECK(sa__sched_next_api(&sb, now) == &ib[2]);
    CHECK(sa__sched_next_api(&sb, now) == NULL);
    sa__sched_free(&sa);
    sa__sched_free(&sb);
    sa__budget_close(ba);
    sa__budget_close(bb);
}

/* The load the poll planner reads (sa__sched_load, issue 15) is the key's:
 * requests another client sent through the host budget raise it for a
 * client that sent nothing. */
TEST(sched_load_reads_the_host_budget)
{
    char key[64];
    sa_client_options o;
    sa__sched sa, sb;
    sa__budget *ba = NULL, *bb = NULL;
    sa__sched_item it;
    int64_t now;
    int i;

    snprintf(key, sizeof key, "load-key-%ld", (long)getpid());
    host_opts(&o, key);
    o.rate_window_max = 20;
    o.rate_window_ms = 60000;
    if (!two_schedulers(&o, &sa, &sb, &ba, &bb)) return;
    now = harness_now_ms();
    CHECK(sa__sched_load(&sb, now) == 0.0);
    sa__sched_item_init(&it);
    /* A sends 14 of the 20 (4 a second): 70% used */
    for (i = 0; i < 14; i++) {
        sa__sched_park_api(&sa, &it, i ? SA__STEP_TASK_CREATE
                                      : SA__STEP_FILE_CREATE, now);
        CHECK(sa__sched_next_api(&sa, now) == &it);
        now += 250;
    }
    CHECK(sa__sched_load(&sa, now) > 0.5);
    CHECK(sa__sched_load(&sb, now) > 0.5);   /* B sent nothing */
    CHECK(sa__sched_load(&sb, now) == sa__sched_load(&sa, now));
    sb.budget = NULL;                       /* its own sends alone: room */
    CHECK(sa__sched_load(&sb, now) == 0.0);
    sb.budget = bb;
    sa__sched_unadmit(&sa, &it, now);
    sa__sched_free(&sa);
    sa__sched_free(&sb);
    sa__budget_close(ba);
    sa__budget_close(bb);
}

/* ------------------------------------------------------------------ */
/* Redis scope against a real redis-server                             */
/* ------------------------------------------------------------------ */

static int free_port(void)
{
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = 0;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0
        && getsockname(fd, (struct sockaddr *)&a, &al) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0) close(fd);
    return port;
}

/* redis-server on 127.0.0.1:port, no persistence; 0 when it is not
 * installed. */
static pid_t redis_start(int port)
{
    char ports[16];
    pid_t pid;
    int i;
    if (access("/usr/bin/redis-server", X_OK) != 0) return 0;
    snprintf(ports, sizeof ports, "%d", port);
    pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        execl("/usr/bin/redis-server", "redis-server", "--port", ports,
              "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
              "--dir", "/tmp", "--loglevel", "warning", (char *)NULL);
        _exit(127);
    }
    for (i = 0; i < 500; i++) {   /* until it accepts (at most 5 s) */
        struct sockaddr_in a;
        int fd = socket(AF_INET, SOCK_STREAM, 0), ok;
        struct timespec d = {0, 10000000};
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_port = htons((uint16_t)port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
        if (fd >= 0) close(fd);
        if (ok) return pid;
        nanosleep(&d, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

static void redis_stop(pid_t pid)
{
    if (pid <= 0) return;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* Take `n` slots the way the scheduler does: pump, ask, wait for the
 * time it names (a worker's loop); the send times go to times[]. */
static void take_slots(sa__budget *b, int n, int64_t *times, const char **note)
{
    int got = 0;
    int64_t end = harness_now_ms() + 20000;
    while (got < n && harness_now_ms() < end) {
        int64_t now = harness_now_ms(), ready = now + 1;
        const char *nt = sa__budget_pump(b, now);
        if (nt && note) *note = nt;
        if (sa__budget_acquire(b, now, &ready)) {
            times[got++] = now;
            continue;
        }
        if (ready > now) {
            struct timespec d = {0, 0};
            int64_t w = ready - now > 5 ? 5 : ready - now;
            d.tv_nsec = (long)w * 1000000L;
            nanosleep(&d, NULL);
        }
    }
    CHECK_EQ_INT(got, n);
}

/* Two clients through one Redis: together never more than 5 in any
 * second; a kill makes each fall back to its share (logged once), a
 * restart brings Redis back (logged), with the script loaded again after
 * NOSCRIPT. */
TEST(redis_scope_shares_and_survives_a_restart)
{
    char url[64], note[512], key[64];
    const char *line = NULL;
    sa_client_options o;
    sa__budget *a = NULL, *b = NULL;
    int64_t t[24], sorted[24];
    int port = free_port(), i, j;
    pid_t srv = redis_start(port);

    if (srv == 0) {
        printf("  (redis-server not installed: skipped)\n");
        return;
    }
    CHECK(srv > 0);
    if (srv <= 0) return;
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    snprintf(key, sizeof key, "redis-key-%ld", (long)getpid());
    sa_client_options_init(&o);
    o.api_key = key;
    o.base_url = "http://127.0.0.1:1";
    o.rate_limit_scope = url;
    o.rate_limit_fleet_size = 2;
    CHECK_EQ_INT(sa__budget_open(&a, NULL, &o, key, o.base_url, note,
                                sizeof note), SA_OK);
    CHECK_EQ_INT(sa__budget_open(&b, NULL, &o, key, o.base_url, note,
                                sizeof note), SA_OK);
    CHECK(a->scope == SA__SCOPE_REDIS && b->scope == SA__SCOPE_REDIS);
    /* a and b interleaved: 12 slots in all */
    for (i = 0; i < 6; i++) {
        take_slots(a, 1, &t[2 * i], NULL);
        take_slots(b, 1, &t[2 * i + 1], NULL);
    }
    for (i = 0; i < 12; i++) sorted[i] = t[i];
    for (i = 0; i < 12; i++) {
        int in1 = 0;
        for (j = 0; j < 12; j++)
            if (sorted[j] >= sorted[i] && sorted[j] < sorted[i] + 1000)
                in1++;
        CHECK(in1 <= 5);
    }
    CHECK(t[11] - t[0] >= 2000);   /* 12 at 5 per second */
    /* Redis goes away: a falls back to half the rate, and says so once */
    redis_stop(srv);
    take_slots(a, 3, t, &line);
    CHECK(line != NULL && strstr(line, "unreachable") != NULL);
    CHECK(line && strstr(line, "1/2") != NULL);
    CHECK(t[2] - t[0] >= 2 * 500);  /* 0.8 * 5 / 2 = 2 per second */
    /* back on the same port: used again */
    srv = redis_start(port);
    CHECK(srv > 0);
    line = NULL;
    {
        int64_t end = harness_now_ms() + 15000;
        while (harness_now_ms() < end) {
            const char *nt = sa__budget_pump(a, harness_now_ms());
            struct timespec d = {0, 5000000};
            if (nt) line = nt;
            if (line && strstr(line, "again")) break;
            nanosleep(&d, NULL);
        }
    }
    CHECK(line != NULL && strstr(line, "again") != NULL);
    take_slots(a, 6, t, NULL);
    CHECK(sa__budget_redis_up(a->redis));
    sa__budget_close(a);
    sa__budget_close(b);
    redis_stop(srv);
}

int main(void)
{
    RUN(rate_window_with_guard);
    RUN(two_clients_share_both_windows);
    RUN(room_and_penalty);
    RUN(time_never_goes_back);
    RUN(corrupt_ring_is_sanitised);
    RUN(leases_count_and_expire);
    RUN(lease_table_full);
    RUN(fallback_pacer_spaces_a_machines_sends);
    RUN(clients_on_redis_pace_with_the_fallback);
    RUN(pacer_slots_across_a_switch);
    RUN(scope_names);
    RUN(client_rejects_bad_scope);
    RUN(host_scope_across_processes);
    RUN(host_scope_dead_process_leaks_nothing);
    RUN(two_schedulers_share_window_and_cap);
    RUN(sched_load_reads_the_host_budget);
    RUN(redis_scope_shares_and_survives_a_restart);
    (void)harness_slurp;
    return harness_report();
}
