/*
 * support_fakeserver.c - see support_fakeserver.h.
 */
#include "support_fakeserver.h"
#include "support_harness.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Counting allocator                                                  */
/* ------------------------------------------------------------------ */

static int fs_mem_fail(fs_mem *m)
{
    m->calls++;
    if (m->fail_at > 0 && (m->calls == m->fail_at
                           || (m->fail_after && m->calls > m->fail_at))) {
        m->failed++;
        return 1;
    }
    return 0;
}

static void *fs_malloc(size_t size, void *ud)
{
    fs_mem *m = ud;
    void *p;
    if (fs_mem_fail(m)) return NULL;
    p = malloc(size ? size : 1);
    if (p) m->live++;
    return p;
}

static void *fs_realloc(void *ptr, size_t size, void *ud)
{
    fs_mem *m = ud;
    void *p;
    if (fs_mem_fail(m)) return NULL;
    p = realloc(ptr, size ? size : 1);
    if (p && !ptr) m->live++;
    return p;
}

static void fs_free(void *ptr, void *ud)
{
    fs_mem *m = ud;
    if (!ptr) return;
    m->live--;
    free(ptr);
}

void fs_mem_init(fs_mem *m, long fail_at, int fail_after)
{
    *m = (fs_mem){ .fail_at = fail_at, .fail_after = fail_after,
                   .mem = { .user_data = m, .malloc = fs_malloc,
                            .realloc = fs_realloc, .free = fs_free } };
}

/* ------------------------------------------------------------------ */
/* Driver                                                              */
/* ------------------------------------------------------------------ */

char *fs_example(const char *name, size_t *len)
{
    char path[1024];

    snprintf(path, sizeof path, "%s/%s", SA_EXAMPLES, name);
    return harness_slurp(path, len);
}

static void fs_error(fs_run *run, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void fs_error(fs_run *run, const char *fmt, ...)
{
    va_list ap;
    if (run->errors++ == 0) {
        va_start(ap, fmt);
        vsnprintf(run->error, sizeof run->error, fmt, ap);
        va_end(ap);
    }
}

void fs_run_init(fs_run *run, int64_t now)
{
    memset(run, 0, sizeof *run);
    run->now = now;
    run->stop_state = -1;
    run->poll_ref = -1;
    run->last_wait = INT64_MIN;
}

void fs_job_config(sa__job_config *c, fs_mem *m, uint64_t *rng,
                   const char *base_url, int64_t now)
{
    *c = (sa__job_config){
        .mem = &m->mem, .base_url = base_url, .api_version = SA_API_V2_1,
        .upload_path = SA_UPLOAD_SKIN_ANALYSIS,
        .request_timeout_ms = 30000, .upload_timeout_ms = 120000,
        .poll_interval_ms = 2000, .max_poll_interval_ms = 10000,
        .deadline_at_ms = now + 600000, .max_retries = 6,
        .backoff_initial_ms = 500, .backoff_max_ms = 16000,
        .max_json_depth = 64, .rng = rng };
}

static void fs_copy(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src ? src : "");
}

static fs_event *fs_record(fs_run *run, const sa__http_request *req)
{
    fs_event *e;
    size_t i;

    run->n_events++;
    if (run->n_events > FS_MAX_EVENTS) return NULL;
    e = &run->ev[run->n_events - 1];
    memset(e, 0, sizeof *e);
    e->sent_at = run->now;
    e->answered_at = -1;
    e->step = req->step;
    e->method = req->method;
    e->api_host = req->api_host;
    fs_copy(e->url, sizeof e->url, req->url);
    e->n_headers = req->n_headers;
    for (i = 0; i < req->n_headers && i < 8; i++)
        fs_copy(e->headers[i], sizeof e->headers[i], req->headers[i]);
    if (req->body) {
        if (req->body_len != strlen(req->body))
            fs_error(run, "body_len %zu != strlen %zu", req->body_len,
                     strlen(req->body));
        fs_copy(e->body, sizeof e->body, req->body);
    }
    e->timeout_ms = req->timeout_ms;
    e->upload_file = req->upload_file;
    e->upload_buf = req->upload_buf;
    e->upload_size = req->upload_size;
    return e;
}

/* Ask for the next thing to do and act on WAIT/END; returns 1 when a
 * request went out (run->pending), 0 to stop. */
static int fs_ask(fs_run *run, sa__jobsm *sm)
{
    sa__next nx, again;
    int rc = sa__jobsm_next(sm, run->now, &nx);

    if (rc != SA_OK) run->last_rc = rc;
    fs_note_state(run, sm);
    if (nx.kind == SA__NEXT_END) {
        run->ended = 1;
        return 0;
    }
    if (nx.kind == SA__NEXT_WAIT) {
        if (run->stop_state >= 0 && sa__jobsm_state(sm) == run->stop_state) {
            run->stopped = 1;  /* stop before time moves on */
            return 0;
        }
        if (nx.wake_at_ms <= run->now || nx.wake_at_ms == INT64_MAX) {
            fs_error(run, "WAIT until %lld at %lld with nothing out",
                     (long long)nx.wake_at_ms, (long long)run->now);
            return 0;
        }
        run->last_wait = nx.wake_at_ms;
        run->now = nx.wake_at_ms;
        return 1;
    }
    if (nx.kind != SA__NEXT_SEND || !nx.req) {
        fs_error(run, "unknown next kind %d", nx.kind);
        return 0;
    }
    if (nx.req->step == SA__STEP_POLL) {
        if (run->poll_ref >= 0 && run->now - run->poll_ref > run->max_poll_gap)
            run->max_poll_gap = run->now - run->poll_ref;
        run->poll_ref = run->now;
    }
    fs_record(run, nx.req);
    run->pending = 1;
    /* never a second SEND while one is out */
    if (sa__jobsm_next(sm, run->now, &again) != SA_OK
        || again.kind != SA__NEXT_WAIT)
        fs_error(run, "next() while a request is out: kind %d", again.kind);
    return 1;
}

/* Deliver one scripted answer to the request out, letting the machine see
 * the time pass first (it may end: the request is then dropped). */
static void fs_answer(fs_run *run, sa__jobsm *sm, const fs_reply *r)
{
    fs_event *e = run->n_events <= FS_MAX_EVENTS && run->n_events
                ? &run->ev[run->n_events - 1] : NULL;
    int64_t at = run->now + (r->latency_ms == FS_TIMEOUT
                             ? (e ? e->timeout_ms : 0) : r->latency_ms);
    sa__http_response resp;
    char *file = NULL;
    int had_task = sa__jobsm_task_id(sm) != NULL;
    int guard, rc;

    if (e && r->step != FS_ANY_STEP && r->step != e->step)
        fs_error(run, "request %zu: step %d, script expected %d",
                 run->n_events, e->step, r->step);
    for (guard = 0; guard < 16; guard++) {  /* the machine's own wake-ups */
        sa__next nx;
        sa__jobsm_next(sm, run->now, &nx);
        fs_note_state(run, sm);
        if (nx.kind == SA__NEXT_END) {
            run->pending = 0;
            run->abandoned = 1;
            run->ended = 1;
            return;
        }
        if (nx.kind != SA__NEXT_WAIT) {
            fs_error(run, "SEND while a request is out");
            return;
        }
        if (nx.wake_at_ms >= at) break;
        run->now = nx.wake_at_ms;
    }
    run->now = at;
    memset(&resp, 0, sizeof resp);
    resp.transport = r->transport;
    resp.not_sent = r->not_sent;
    resp.transport_msg = r->transport ? "scripted failure" : NULL;
    resp.http_status = r->transport ? 0 : r->http;
    if (r->example) {
        file = fs_example(r->example, &resp.body_len);
        if (!file) fs_error(run, "example %s not found", r->example);
        resp.body = file;
    } else if (r->body) {
        resp.body = r->body;
        resp.body_len = strlen(r->body);
    }
    resp.request_id = r->request_id;
    run->pending = 0;
    rc = sa__jobsm_on_response(sm, run->now, &resp);
    if (rc != SA_OK) run->last_rc = rc;
    fs_note_state(run, sm);
    if (e) e->answered_at = run->now;
    if (!had_task && sa__jobsm_task_id(sm)) run->poll_ref = run->now;
    free(file);
}

size_t fs_drive(fs_run *run, sa__jobsm *sm, const fs_reply *script, size_t n)
{
    size_t used = 0;
    int guard;

    run->stopped = 0;
    fs_note_state(run, sm);
    for (guard = 0; guard < 100000; guard++) {
        if (!run->pending) {
            if (run->stop_state >= 0 && sa__jobsm_state(sm) == run->stop_state) {
                run->stopped = 1;
                return used;
            }
            if (!fs_ask(run, sm)) return used;
            continue;
        }
        if (used >= n || (run->stop_state >= 0
                          && sa__jobsm_state(sm) == run->stop_state)) {
            run->stopped = 1;  /* with the request out */
            return used;
        }
        fs_answer(run, sm, &script[used++]);
    }
    fs_error(run, "driver loop did not end");
    return used;
}

void fs_note_state(fs_run *run, const sa__jobsm *sm)
{
    int st = sa__jobsm_state(sm);
    if (run->n_trace > 0 && run->trace[run->n_trace - 1] == st) return;
    if (run->n_trace < FS_MAX_TRACE) run->trace[run->n_trace++] = st;
}

int fs_trace_is(const fs_run *run, const int *states, size_t n)
{
    return run->n_trace == n
        && memcmp(run->trace, states, n * sizeof *states) == 0;
}

int fs_trace_has(const fs_run *run, const int *states, size_t n)
{
    size_t i, j = 0;
    for (i = 0; i < run->n_trace && j < n; i++)
        if (run->trace[i] == states[j]) j++;
    return j == n;
}

size_t fs_count(const fs_run *run, int step)
{
    size_t i, n = 0, max = run->n_events < FS_MAX_EVENTS ? run->n_events
                                                          : FS_MAX_EVENTS;
    for (i = 0; i < max; i++)
        if (run->ev[i].step == step) n++;
    return n;
}
