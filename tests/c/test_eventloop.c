/*
 * test_eventloop.c - the two non-blocking ways to drive a client:
 *   - event hooks: the test owns a poll() loop over the sockets and the
 *     timer the client reports (sa_client_set_event_hooks) and calls
 *     sa_client_socket_action; sa_client_step is never called;
 *   - a frame loop calling sa_client_step(c, 0) at 60 Hz, measuring that
 *     no call takes more than a few milliseconds.
 * Both against the emulator, with faults (retries and backoff are job
 * timers, not libcurl timers) and with the rate limiter parking requests.
 */
#include "harness.h"
#include "sa_internal.h"
#include "support_emulator.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SECRET "sa-eventloop-key-93kd"
#define SD_JPG SA_FIXTURES "/portrait_sd.jpg"
#define MAX_FDS 128

static const char *const sd2[] = {"wrinkle", "acne"};
static emu g_emu;

/* Valgrind runs everything 10-50 times slower: timing limits scale. */
static int slow_factor(void)
{
    const char *p = getenv("LD_PRELOAD");
    return p && strstr(p, "vgpreload") ? 25 : 1;
}

/* ------------------------------------------------------------------ */
/* A poll() loop owned by the test                                     */
/* ------------------------------------------------------------------ */

typedef struct loop {
    sa_client *c;
    struct pollfd fds[MAX_FDS];
    int n;
    int64_t timer_at;        /* -1: no timer */
    long sock_calls, timer_calls, actions, reentry_busy, bad;
} loop;

static int loop_find(loop *l, int fd)
{
    int i;
    for (i = 0; i < l->n; i++)
        if (l->fds[i].fd == fd) return i;
    return -1;
}

static int on_socket(void *ud, int fd, int what)
{
    loop *l = ud;
    int i = loop_find(l, fd);
    l->sock_calls++;
    /* never allowed from inside the library's own callbacks */
    if (sa_client_socket_action(l->c, SA_SOCKET_TIMEOUT, 0) == SA_ERR_BUSY)
        l->reentry_busy++;
    if (what & SA_POLL_REMOVE) {
        if (i >= 0) l->fds[i] = l->fds[--l->n];
        return 0;
    }
    if (i < 0) {
        if (l->n == MAX_FDS) {
            l->bad++;
            return 0;
        }
        i = l->n++;
        l->fds[i].fd = fd;
    }
    l->fds[i].events = (short)(((what & SA_POLL_IN) ? POLLIN : 0) |
                               ((what & SA_POLL_OUT) ? POLLOUT : 0));
    return 0;
}

static int on_timer(void *ud, long ms)
{
    loop *l = ud;
    l->timer_calls++;
    if (ms < -1) l->bad++;
    l->timer_at = ms < 0 ? -1 : harness_now_ms() + ms;
    return 0;
}

/* Run until the client has nothing left or time is up.  Returns the
 * number of jobs still running. */
static int loop_run(loop *l, long limit_ms)
{
    int64_t end = harness_now_ms() + limit_ms;
    int left = sa_client_active(l->c);

    while (left > 0 && harness_now_ms() < end) {
        struct pollfd ready[MAX_FDS];
        int i, n = l->n, timeout = 1000, rc;
        int64_t now = harness_now_ms();

        if (l->timer_at >= 0)
            timeout = l->timer_at <= now ? 0 : (int)(l->timer_at - now);
        memcpy(ready, l->fds, sizeof ready[0] * (size_t)n);
        rc = poll(ready, (nfds_t)n, timeout);
        if (rc < 0) break;
        for (i = 0; i < n; i++) {
            int what = 0;
            if (!ready[i].revents) continue;
            if (ready[i].revents & (POLLIN | POLLHUP | POLLERR))
                what |= SA_POLL_IN;
            if (ready[i].revents & POLLOUT) what |= SA_POLL_OUT;
            rc = sa_client_socket_action(l->c, ready[i].fd, what);
            l->actions++;
            if (rc < 0) l->bad++;
            else left = rc;
        }
        if (l->timer_at >= 0 && l->timer_at <= harness_now_ms()) {
            l->timer_at = -1;
            rc = sa_client_socket_action(l->c, SA_SOCKET_TIMEOUT, 0);
            l->actions++;
            if (rc < 0) l->bad++;
            else left = rc;
        }
    }
    return left;
}

static void options(sa_client_options *o)
{
    emu_options(&g_emu, o, SECRET, 50, 1000);
    o->backoff_initial_ms = 30;
    o->backoff_max_ms = 120;
    o->rate_limit = 0;
}

static void request(sa_request *r)
{
    sa_request_init(r);
    r->file_path = SD_JPG;
    r->actions = sd2;
    r->n_actions = 2;
}

/* n jobs driven by the poll loop only; returns how many ended DONE. */
static int hooks_round(const sa_client_options *o, int n, loop *l,
                       const char *scenario)
{
    sa_request r;
    sa_job *jobs[16];
    char err[256];
    int i, ok = 0;

    memset(l, 0, sizeof *l);
    l->timer_at = -1;
    emu_reset(&g_emu);
    if (scenario && emu_scenario(&g_emu, scenario) != 0) return -1;
    if (sa_client_new(&l->c, o, err, sizeof err) != SA_OK) return -1;
    if (sa_client_set_event_hooks(l->c, on_socket, on_timer, l) != SA_OK)
        return -1;
    request(&r);
    for (i = 0; i < n; i++)
        if (sa_client_submit(l->c, &r, &jobs[i]) != SA_OK) return -1;
    /* a new job needs the loop: the timer says "now" */
    if (l->timer_at < 0 || l->timer_at > harness_now_ms() + 5) l->bad++;
    if (loop_run(l, 20000) != 0) l->bad++;
    for (i = 0; i < n; i++) {
        ok += sa_job_status(jobs[i]) == SA_OK;
        sa_job_free(jobs[i]);
    }
    if (l->n != 0) l->bad++;  /* every socket was removed again */
    /* back to stepping once idle */
    if (sa_client_set_event_hooks(l->c, NULL, NULL, NULL) != SA_OK) l->bad++;
    if (sa_client_step(l->c, 0) != 0) l->bad++;
    sa_client_free(l->c);
    emu_scenario(&g_emu, NULL);
    return ok;
}

TEST(event_hooks_drive_jobs_to_completion)
{
    sa_client_options o;
    loop l;
    char why[256];

    options(&o);
    CHECK_EQ_INT(hooks_round(&o, 6, &l, NULL), 6);
    CHECK_EQ_INT(l.bad, 0);
    CHECK(l.sock_calls > 0 && l.timer_calls > 0 && l.actions > 0);
    CHECK_EQ_INT(l.reentry_busy, l.sock_calls);
    CHECK_EQ_INT(emu_check_invariants(&g_emu, 6, 1.6, 1, why, sizeof why), 0);
    fprintf(stderr, "  hooks: %ld socket calls, %ld timer calls, %ld actions\n",
            l.sock_calls, l.timer_calls, l.actions);
}

TEST(event_hooks_with_retries_and_backoff)
{
    sa_client_options o;
    loop l;
    char why[256];

    options(&o);
    /* every first request of each step fails: the retries wait on job
     * timers that only the reported timer can wake */
    CHECK_EQ_INT(hooks_round(&o, 3, &l,
        "[{\"endpoint\":\"file_create\",\"every\":2,\"fault\":\"http_503\"},"
        "{\"endpoint\":\"upload\",\"nth\":[1,2],\"fault\":\"close_before_response\"},"
        "{\"endpoint\":\"task_create\",\"nth\":[1],\"fault\":\"http_429\"},"
        "{\"endpoint\":\"task_status\",\"every\":3,\"fault\":\"http_502_html\"},"
        "{\"endpoint\":\"task_status\",\"nth\":[2],\"fault\":\"delay\","
        "\"delay_ms\":700}]"), 3);
    CHECK_EQ_INT(l.bad, 0);
    CHECK_EQ_INT(emu_check_invariants(&g_emu, 3, 1.6, 1, why, sizeof why), 0);
}

TEST(event_hooks_with_the_limiter_parking_requests)
{
    sa_client_options o;
    loop l;
    int64_t t0 = harness_now_ms();

    options(&o);
    o.rate_limit = 1;
    o.rate_per_second = 20;
    o.rate_burst = 2;
    /* 4 jobs x >= 3 API requests at ~19/s with 2 per second burst */
    CHECK_EQ_INT(hooks_round(&o, 4, &l, NULL), 4);
    CHECK_EQ_INT(l.bad, 0);
    CHECK(harness_now_ms() - t0 >= 400);
}

TEST(hooks_cannot_change_while_requests_are_out)
{
    sa_client_options o;
    sa_client *c = NULL;
    sa_request r;
    sa_job *j = NULL;
    loop l;
    char err[128];

    memset(&l, 0, sizeof l);
    options(&o);
    REQUIRE(sa_client_new(&c, &o, err, sizeof err) == SA_OK);
    request(&r);
    REQUIRE(sa_client_submit(c, &r, &j) == SA_OK);
    sa_client_step(c, 0);
    CHECK_EQ_INT(sa_client_set_event_hooks(c, on_socket, on_timer, &l),
                 SA_ERR_BUSY);
    CHECK(strstr(sa_client_errmsg(c), "in flight") != NULL);
    CHECK_EQ_INT(sa_job_wait(j, 20000), SA_OK);
    CHECK_EQ_INT(sa_job_status(j), SA_OK);
    sa_job_free(j);
    sa_client_free(c);
}

/* ------------------------------------------------------------------ */
/* A 60 Hz frame loop                                                  */
/* ------------------------------------------------------------------ */

TEST(frame_loop_step_zero_never_stalls)
{
    sa_client_options o;
    sa_client *c = NULL;
    sa_request r;
    sa_job *jobs[10];
    char err[128], *img;
    size_t len = 0;
    int i, left, frames = 0, ok = 0;
    int64_t worst = 0, total = 0, t0 = harness_now_ms(), limit = 150 * slow_factor();

    img = harness_slurp(SD_JPG, &len);
    REQUIRE(img != NULL);
    options(&o);
    REQUIRE(sa_client_new(&c, &o, err, sizeof err) == SA_OK);
    emu_reset(&g_emu);
    REQUIRE(emu_scenario(&g_emu, "[{\"endpoint\":\"task_status\","
        "\"every\":4,\"fault\":\"delay\",\"delay_ms\":300}]") == 0);
    request(&r);
    for (i = 0; i < 10; i++) {
        int from_memory = i % 2;  /* half of them */
        r.file_path = from_memory ? NULL : SD_JPG;
        r.buffer = from_memory ? img : NULL;
        r.buffer_len = from_memory ? len : 0;
        REQUIRE(sa_client_submit(c, &r, &jobs[i]) == SA_OK);
    }
    do {
        int64_t s = harness_now_ms(), took;
        struct timespec frame = {0, 16666667};
        left = sa_client_step(c, 0);
        took = harness_now_ms() - s;
        total += took;
        if (took > worst) worst = took;
        frames++;
        nanosleep(&frame, NULL);  /* the rest of the frame */
    } while (left > 0 && harness_now_ms() - t0 < 30000);
    CHECK_EQ_INT(left, 0);
    for (i = 0; i < 10; i++) {
        ok += sa_job_status(jobs[i]) == SA_OK;
        sa_job_free(jobs[i]);
    }
    CHECK_EQ_INT(ok, 10);
    fprintf(stderr, "  frame loop: %d frames, worst step %lld ms, mean "
            "%.2f ms\n", frames, (long long)worst,
            frames ? (double)total / frames : 0.0);
    CHECK(worst <= limit);
    emu_scenario(&g_emu, NULL);
    sa_client_free(c);
    free(img);
}

int main(void)
{
    if (sa_global_init() != SA_OK) return 1;
    if (emu_start(&g_emu, "--task-seconds 0.2 --rate-limit off --keys "
                          SECRET) != 0)
        return 1;
    RUN(event_hooks_drive_jobs_to_completion);
    RUN(event_hooks_with_retries_and_backoff);
    RUN(event_hooks_with_the_limiter_parking_requests);
    RUN(hooks_cannot_change_while_requests_are_out);
    RUN(frame_loop_step_zero_never_stalls);
    emu_stop(&g_emu);
    sa_global_cleanup();
    return harness_report();
}
