/* engine_loop.c - driving the multi handle: epoll loop, event hooks, rounds. */
#include "engine_internal.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Socket and timer callbacks                                          */
/* ------------------------------------------------------------------ */

static int on_socket(CURL *h, curl_socket_t s, int what, void *ud, void *sp)
{
    sa__engine *e = ud;
    int out = SA_POLL_NONE;
    (void)h;
    (void)sp;
    if (what == CURL_POLL_REMOVE) out = SA_POLL_REMOVE;
    else {
        if (what & CURL_POLL_IN) out |= SA_POLL_IN;
        if (what & CURL_POLL_OUT) out |= SA_POLL_OUT;
    }
    e->hooks.socket(e->hooks.ctx, (int)s, out);
    return 0;
}

static int on_timer(CURLM *m, long timeout_ms, void *ud)
{
    sa__engine *e = ud;
    (void)m;
    e->hooks.timer(e->hooks.ctx,
                   timeout_ms < 0 ? -1 : sa__engine_now() + timeout_ms);
    return 0;
}

#ifdef SA_HAVE_EPOLL
/* The internal loop's socket callback: keep the epoll set in step with
 * what libcurl wants to know about each socket. */
static int on_socket_internal(CURL *h, curl_socket_t s, int what, void *ud,
                              void *sp)
{
    sa__engine *e = ud;
    struct epoll_event ev;
    int op = sp ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    (void)h;
    if (what == CURL_POLL_REMOVE) {
        /* libcurl may already have closed it: that removed it too */
        (void)epoll_ctl(e->epfd, EPOLL_CTL_DEL, (int)s, NULL);
        return 0;
    }
    memset(&ev, 0, sizeof ev);
    if (what & CURL_POLL_IN) ev.events |= EPOLLIN;
    if (what & CURL_POLL_OUT) ev.events |= EPOLLOUT;
    ev.data.fd = (int)s;
    /* sp (curl_multi_assign) marks a socket already in the set */
    if (epoll_ctl(e->epfd, op, (int)s, &ev) != 0) {
        int again = op == EPOLL_CTL_ADD ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
        if (epoll_ctl(e->epfd, again, (int)s, &ev) != 0)
            return -1;  /* libcurl fails the transfers on this socket */
    }
    if (!sp) (void)curl_multi_assign(e->multi, s, (void *)e);
    return 0;
}

/* The epoll set and the wakeup eventfd of the internal loop. */
int sa__eng_loop_open(sa__engine *e)
{
    struct epoll_event ev;

    e->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (e->epfd < 0) return SA_ERR_INIT;
    e->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (e->wakefd < 0) return SA_ERR_INIT;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.fd = e->wakefd;
    return epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->wakefd, &ev) == 0
               ? SA_OK : SA_ERR_INIT;
}
#endif

/* ------------------------------------------------------------------ */
/* Finished transfers                                                  */
/* ------------------------------------------------------------------ */

/* 1 when a bounded round has used its time budget. */
int sa__eng_over_budget(const sa__engine *e)
{
    return e->budget_end > 0 && sa__engine_now_us() >= e->budget_end;
}

/* Report finished transfers, at most e->batch of them (0: all); the rest
 * stay in libcurl's message queue for the next call (e->pending).  One
 * message at a time: a done hook may start new transfers or abort others
 * (whose messages libcurl drops). */
static void collect(sa__engine *e)
{
    CURLMsg *m;
    int left = 0, guard, done = 0;

    e->pending = 0;
    for (guard = 0; guard < 1000000; guard++) {
        sa__xfer *x = NULL;
        if (e->batch > 0 &&
            (done >= e->batch || (done > 0 && sa__eng_over_budget(e)))) {
            e->pending = left > 0;
            return;
        }
        m = curl_multi_info_read(e->multi, &left);
        if (!m) break;
        if (m->msg != CURLMSG_DONE) continue;
        if (curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x)
                != CURLE_OK || !x)
            continue;
        sa__eng_finish(e, x, m->data.result);
        done++;
    }
}

/* ------------------------------------------------------------------ */
/* Driving                                                             */
/* ------------------------------------------------------------------ */

/* Hand sent transfers to libcurl, in the order they were sent; at most
 * e->batch / 4 of them in a bounded round (why: docs/architecture.md,
 * "Bounded steps").  A transfer libcurl refuses ends here, certainly not
 * sent. */
static void add_started(sa__engine *e)
{
    int n = 0, max = e->batch / 4 > 1 ? e->batch / 4 : 1;

    while (e->to_add && (e->batch == 0 || n < max)) {
        sa__xfer *x = e->to_add;
        CURLMcode mc;

        e->to_add = x->add_next;
        if (!e->to_add) e->to_add_tail = NULL;
        x->add_next = NULL;
        n++;
        mc = curl_multi_add_handle(e->multi, x->h);
        if (mc == CURLM_OK) {
            x->added = 1;
            continue;
        }
        {
            sa__http_response resp;
            char msg[256];
            memset(&resp, 0, sizeof resp);
            resp.transport = mc == CURLM_OUT_OF_MEMORY ? SA_ERR_NOMEM
                                                       : SA_ERR_TRANSPORT;
            resp.not_sent = 1;
            sa__errf(msg, sizeof msg, "libcurl did not take the request: %s",
                     curl_multi_strerror(mc));
            resp.transport_msg = msg;
            sa__eng_unlink(&e->busy, x);
            e->n_busy--;
            sa__eng_log(e, SA_LOG_DEBUG, "%s %s not sent: %s",
                        sa__eng_method(x->method), x->url, msg);
            e->hooks.done(e->hooks.ctx, x->owner, &resp);
            sa__eng_release(e, x);
        }
    }
}

#ifdef SA_HAVE_EPOLL
/* Without event hooks the engine drives libcurl's socket API itself, on
 * its own epoll set: a round costs one epoll_wait plus work for the
 * sockets that are ready and the timers that expired.  (curl_multi_poll
 * and curl_multi_perform would poll every socket and then every transfer,
 * each with a poll call of its own, on every round.) */

/* Wait up to timeout_ms for a socket, the wakeup eventfd or nothing; the
 * events are kept for sa__engine_perform. */
int sa__engine_wait(sa__engine *e, long timeout_ms)
{
    int n;
    if (timeout_ms < 0) timeout_ms = 0;
    if (timeout_ms > 0x7fffffffL) timeout_ms = 0x7fffffffL;
    if (e->n_ready > 0) return SA_OK;  /* not handled yet */
    n = epoll_wait(e->epfd, e->ready, EPOLL_BATCH, (int)timeout_ms);
    if (n < 0) return errno == EINTR ? SA_OK : SA_ERR_TRANSPORT;
    e->n_ready = n;
    return SA_OK;
}

int sa__engine_perform(sa__engine *e)
{
    CURLMcode mc = CURLM_OK, m2;
    int running = 0, i, n, max = EPOLL_BATCH;

    add_started(e);
    /* a bounded round handles at most e->batch socket events; the others
     * stay ready (level-triggered) for the next round */
    if (e->batch > 0 && e->batch < max) max = e->batch;
    if (e->n_ready == 0) {
        n = epoll_wait(e->epfd, e->ready, max, 0);
        e->n_ready = n > 0 ? n : 0;
    }
    n = e->n_ready < max ? e->n_ready : max;
    e->events_left = e->batch > 0 && n == max;
    e->n_ready = 0;
    for (i = 0; i < n; i++) {
        struct epoll_event *ev = &e->ready[i];
        int what = 0;
        if (i > 0 && sa__eng_over_budget(e)) {
            e->events_left = 1;  /* still ready: the next round sees them */
            break;
        }
        if (ev->data.fd == e->wakefd) {
            uint64_t v;
            (void)!read(e->wakefd, &v, sizeof v);
            continue;
        }
        if (ev->events & (EPOLLIN | EPOLLHUP)) what |= CURL_CSELECT_IN;
        if (ev->events & EPOLLOUT) what |= CURL_CSELECT_OUT;
        if (ev->events & EPOLLERR) what |= CURL_CSELECT_ERR;
        /* a socket libcurl closed while handling an earlier event is
         * CURLM_BAD_SOCKET: harmless */
        m2 = curl_multi_socket_action(e->multi, (curl_socket_t)ev->data.fd,
                                      what, &running);
        if (m2 != CURLM_OK && m2 != CURLM_BAD_SOCKET) mc = m2;
    }
    /* Timers: asked of curl_multi_timeout every round (no timer callback,
     * no timer state here; sa__engine_timeout asks it too). */
    {
        long t = -1;
        if (curl_multi_timeout(e->multi, &t) == CURLM_OK && t == 0) {
            m2 = curl_multi_socket_action(e->multi, CURL_SOCKET_TIMEOUT, 0,
                                          &running);
            if (m2 != CURLM_OK) mc = m2;
        }
    }
    collect(e);
    if (mc == CURLM_OUT_OF_MEMORY) return SA_ERR_NOMEM;
    return mc == CURLM_OK ? SA_OK : SA_ERR_TRANSPORT;
}
#else
int sa__engine_wait(sa__engine *e, long timeout_ms)
{
    int n = 0;
    if (timeout_ms < 0) timeout_ms = 0;
    if (timeout_ms > 0x7fffffffL) timeout_ms = 0x7fffffffL;
    if (curl_multi_poll(e->multi, NULL, 0, (int)timeout_ms, &n) != CURLM_OK)
        return SA_ERR_TRANSPORT;
    return SA_OK;
}

int sa__engine_perform(sa__engine *e)
{
    int running = 0;
    CURLMcode mc;

    add_started(e);
    mc = curl_multi_perform(e->multi, &running);
    collect(e);
    if (mc == CURLM_OUT_OF_MEMORY) return SA_ERR_NOMEM;
    return mc == CURLM_OK ? SA_OK : SA_ERR_TRANSPORT;
}
#endif

int sa__engine_socket_action(sa__engine *e, int fd, int what)
{
    int running = 0, ev = 0;
    CURLMcode mc;

    add_started(e);
    if (fd == SA_SOCKET_TIMEOUT) {
        mc = curl_multi_socket_action(e->multi, CURL_SOCKET_TIMEOUT, 0,
                                      &running);
    } else {
        if (what & SA_POLL_IN) ev |= CURL_CSELECT_IN;
        if (what & SA_POLL_OUT) ev |= CURL_CSELECT_OUT;
        mc = curl_multi_socket_action(e->multi, (curl_socket_t)fd, ev,
                                      &running);
    }
    collect(e);
    if (mc == CURLM_OUT_OF_MEMORY) return SA_ERR_NOMEM;
    /* A socket the loop reports after libcurl dropped it is harmless. */
    return (mc == CURLM_OK || mc == CURLM_BAD_SOCKET) ? SA_OK
                                                      : SA_ERR_TRANSPORT;
}

long sa__engine_timeout(sa__engine *e)
{
    long t = -1;
    if (e->to_add) return 0;  /* the next perform hands them to libcurl */
#ifdef SA_HAVE_EPOLL
    if (!e->event_mode && (e->n_ready > 0 || e->events_left)) return 0;
#endif
    if (curl_multi_timeout(e->multi, &t) != CURLM_OK) return -1;
    return t;
}

int sa__engine_wakeup(sa__engine *e)
{
#ifdef SA_HAVE_EPOLL
    uint64_t one = 1;
    ssize_t w;
    if (e->event_mode) return SA_OK;  /* the caller's loop has no wait here */
    do {
        w = write(e->wakefd, &one, sizeof one);
    } while (w < 0 && errno == EINTR);
    /* EAGAIN: the counter is full, so a wakeup is pending anyway */
    return (w == (ssize_t)sizeof one || errno == EAGAIN) ? SA_OK
                                                         : SA_ERR_TRANSPORT;
#else
    return curl_multi_wakeup(e->multi) == CURLM_OK ? SA_OK
                                                   : SA_ERR_TRANSPORT;
#endif
}

int sa__engine_set_event_mode(sa__engine *e, int on)
{
    CURLMcode a, b, c, d;
    if (on) {
        a = curl_multi_setopt(e->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
        b = curl_multi_setopt(e->multi, CURLMOPT_SOCKETDATA, (void *)e);
        c = curl_multi_setopt(e->multi, CURLMOPT_TIMERFUNCTION, on_timer);
        d = curl_multi_setopt(e->multi, CURLMOPT_TIMERDATA, (void *)e);
    } else {
#ifdef SA_HAVE_EPOLL
        a = curl_multi_setopt(e->multi, CURLMOPT_SOCKETFUNCTION,
                              on_socket_internal);
        b = curl_multi_setopt(e->multi, CURLMOPT_SOCKETDATA, (void *)e);
        /* no timer callback: sa__engine_perform asks curl_multi_timeout */
        c = curl_multi_setopt(e->multi, CURLMOPT_TIMERFUNCTION,
                              (curl_multi_timer_callback)NULL);
        d = curl_multi_setopt(e->multi, CURLMOPT_TIMERDATA, (void *)NULL);
        e->n_ready = 0;
#else
        a = curl_multi_setopt(e->multi, CURLMOPT_SOCKETFUNCTION,
                              (curl_socket_callback)NULL);
        b = curl_multi_setopt(e->multi, CURLMOPT_SOCKETDATA, (void *)NULL);
        c = curl_multi_setopt(e->multi, CURLMOPT_TIMERFUNCTION,
                              (curl_multi_timer_callback)NULL);
        d = curl_multi_setopt(e->multi, CURLMOPT_TIMERDATA, (void *)NULL);
#endif
    }
    if (a != CURLM_OK || b != CURLM_OK || c != CURLM_OK || d != CURLM_OK)
        return SA_ERR_TRANSPORT;
    e->event_mode = on;
    return SA_OK;
}

void sa__engine_set_batch(sa__engine *e, int max, int64_t budget_end_us)
{
    if (!e) return;
    e->batch = max > 0 ? max : 0;
    e->budget_end = e->batch > 0 ? budget_end_us : 0;
}

int sa__engine_has_leftover(const sa__engine *e)
{
    return e ? e->pending || e->to_add != NULL || e->events_left : 0;
}
