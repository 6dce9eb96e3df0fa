/* engine.c - the libcurl transport: global setup, clock, lifetime, outcomes.
 *
 * The libcurl side of a client: one multi handle, an easy handle per
 * transfer, and the translation of a job's sa__http_request into a transfer
 * and of the transfer's outcome into a sa__http_response.
 *
 * The engine knows nothing about jobs or the protocol: it sends what it is
 * given and reports what happened through sa__engine_hooks.  It is also the
 * only place that reads a clock (sa__engine_now), and it owns libcurl's
 * process-wide setup (sa_global_init / sa_global_cleanup).
 *
 * Its files: engine.c (this one: global setup, the clock, creation and
 * teardown, a finished transfer mapped into a sa__http_response),
 * engine_send.c (a sa__http_request made into an easy handle; libcurl's
 * per-transfer callbacks), engine_loop.c (driving the multi handle: the
 * internal epoll loop, the caller's event hooks, bounded rounds).
 * engine_internal.h holds their shared state.
 */
#include "engine_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const method_names[] = {"GET", "POST", "PUT"};

/* ------------------------------------------------------------------ */
/* Process-wide setup                                                  */
/* ------------------------------------------------------------------ */

/* The one process-wide variable: how many times sa_global_init succeeded
 * more than sa_global_cleanup ran (see skinanalysis.h). */
static atomic_int sa_global_refs;

/* libcurl's global init, counted.  Needs libcurl 7.68 or later
 * (curl_multi_poll, curl_multi_wakeup). */
int sa_global_init(void)
{
    const curl_version_info_data *v;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return SA_ERR_INIT;
    v = curl_version_info(CURLVERSION_NOW);
    if (!v || v->version_num < 0x074400) {
        curl_global_cleanup();
        return SA_ERR_INIT;
    }
    atomic_fetch_add(&sa_global_refs, 1);
    return SA_OK;
}

void sa_global_cleanup(void)
{
    int n = atomic_load(&sa_global_refs);
    while (n > 0 &&
           !atomic_compare_exchange_weak(&sa_global_refs, &n, n - 1)) {
    }
    if (n > 0) curl_global_cleanup();
}

int sa__engine_global_ready(void)
{
    return atomic_load(&sa_global_refs) > 0;
}

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

int64_t sa__engine_now(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return 0;
    return (int64_t)ts.tv_sec * 1000 + (int64_t)(ts.tv_nsec / 1000000);
}

int64_t sa__engine_now_us(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return 0;
    return (int64_t)ts.tv_sec * 1000000 + (int64_t)(ts.tv_nsec / 1000);
}

void sa__eng_log(sa__engine *e, int level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    if (level < e->hooks.log_level) return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    e->hooks.log(e->hooks.ctx, level, line);
}

void sa__eng_err(sa__engine *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sa__vredact(e->errmsg, sizeof e->errmsg, e->api_key, fmt, ap);
    va_end(ap);
}

const char *sa__eng_method(int m)
{
    return (m >= 0 && m <= SA__HTTP_PUT) ? method_names[m] : "?";
}

void sa__eng_push(sa__xfer **head, sa__xfer *x)
{
    x->prev = NULL;
    x->next = *head;
    if (*head) (*head)->prev = x;
    *head = x;
}

void sa__eng_unlink(sa__xfer **head, sa__xfer *x)
{
    if (x->prev) x->prev->next = x->next;
    else *head = x->next;
    if (x->next) x->next->prev = x->prev;
    x->prev = x->next = NULL;
}

/* ------------------------------------------------------------------ */
/* Creation                                                            */
/* ------------------------------------------------------------------ */

static int engine_copy_strings(sa__engine *e, const sa__engine_options *o)
{
    sa__buf auth;
    const char *ua = o->user_agent ? o->user_agent : "skinanalysis/" SA_VERSION;

    sa__buf_init(&auth, e->mem, 0);
    if (sa__buf_appendf(&auth, "Authorization: Bearer %s", o->api_key) != SA_OK) {
        sa__buf_free(&auth);
        return SA_ERR_NOMEM;
    }
    e->auth_header = sa__buf_steal(&auth);
    e->api_key = sa__strdup(e->mem, o->api_key);
    e->user_agent = sa__strdup(e->mem, ua);
    e->ca_bundle = sa__strdup(e->mem, o->ca_bundle);
    e->proxy = sa__strdup(e->mem, o->proxy);
    if (!e->auth_header || !e->api_key || !e->user_agent ||
        (o->ca_bundle && !e->ca_bundle) || (o->proxy && !e->proxy))
        return SA_ERR_NOMEM;
    return SA_OK;
}

int sa__engine_new(const sa__engine_options *o, const sa__engine_hooks *h,
                  sa__engine **out, char *err, size_t errlen)
{
    sa__engine *e;
    int rc;

    *out = NULL;
    e = sa__calloc(o->mem, 1, sizeof *e);
    if (!e) {
        sa__errf(err, errlen, "out of memory creating the client");
        return SA_ERR_NOMEM;
    }
#ifdef SA_HAVE_EPOLL
    e->epfd = e->wakefd = -1;
#endif
    e->mem = o->mem;
    e->hooks = *h;
    e->connect_timeout_ms = o->connect_timeout_ms;
    e->max_connections = o->max_connections;
    e->max_body_bytes = o->max_body_bytes;
    rc = engine_copy_strings(e, o);
    if (rc != SA_OK) {
        sa__errf(err, errlen, "out of memory creating the client");
        sa__engine_free(e);
        return rc;
    }
    e->multi = curl_multi_init();
    if (!e->multi) {
        sa__errf(err, errlen, "curl_multi_init failed (out of memory, or "
                              "sa_global_init was not called)");
        sa__engine_free(e);
        return SA_ERR_INIT;
    }
    if (curl_multi_setopt(e->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                          (long)o->max_connections) != CURLM_OK ||
        curl_multi_setopt(e->multi, CURLMOPT_PIPELINING,
                          (long)CURLPIPE_MULTIPLEX) != CURLM_OK) {
        sa__errf(err, errlen, "libcurl refused the connection options");
        sa__engine_free(e);
        return SA_ERR_INIT;
    }
#ifdef SA_HAVE_EPOLL
    if (sa__eng_loop_open(e) != SA_OK) {
        char ebuf[128];
        sa__errf(err, errlen, "cannot create the client's epoll set: %s",
                 sa__strerror(errno, ebuf, sizeof ebuf));
        sa__engine_free(e);
        return SA_ERR_INIT;
    }
    if (sa__engine_set_event_mode(e, 0) != SA_OK) {
        sa__errf(err, errlen, "libcurl refused the socket callbacks");
        sa__engine_free(e);
        return SA_ERR_INIT;
    }
#endif
    *out = e;
    return SA_OK;
}

static void xfer_destroy(sa__engine *e, sa__xfer *x)
{
    if (x->h) curl_easy_cleanup(x->h);
    sa__buf_free(&x->body);
    sa__free(e->mem, x);
}

/* Free a finished (or never started) transfer and its easy handle.
 *
 * Easy handles are not reused.  They were pooled and curl_easy_reset:
 * libcurl 7.88 then refused the next CURLOPT_BUFFERSIZE on about a fifth
 * of the reused handles (CURLE_BAD_FUNCTION_ARGUMENT) and read with its
 * default 16 KiB into the 4 KiB receive buffer the handle already had
 * (valgrind: recv given a length past the buffer; an answer over 4 KiB
 * would have been written past it).  A handle per transfer costs no
 * measurable CPU (A/B, BENCHMARKS.md) and frees the buffers of idle
 * handles; connections live in the multi handle, so keep-alive reuse is
 * unaffected. */
void sa__eng_release(sa__engine *e, sa__xfer *x)
{
    if (x->fd >= 0) close(x->fd);
    x->fd = -1;
    sa__free(e->mem, x->url);
    x->url = NULL;
    curl_slist_free_all(x->headers);
    x->headers = NULL;
    xfer_destroy(e, x);
}

void sa__engine_free(sa__engine *e)
{
    if (!e) return;
    while (e->busy) {
        sa__xfer *x = e->busy;
        sa__eng_unlink(&e->busy, x);
        if (e->multi) curl_multi_remove_handle(e->multi, x->h);
        if (x->fd >= 0) close(x->fd);
        curl_slist_free_all(x->headers);
        sa__free(e->mem, x->url);
        xfer_destroy(e, x);
    }
    if (e->multi) curl_multi_cleanup(e->multi);
#ifdef SA_HAVE_EPOLL
    if (e->epfd >= 0) close(e->epfd);
    if (e->wakefd >= 0) close(e->wakefd);
#endif
    if (e->api_key) memset(e->api_key, 0, strlen(e->api_key));
    if (e->auth_header) memset(e->auth_header, 0, strlen(e->auth_header));
    sa__free(e->mem, e->api_key);
    sa__free(e->mem, e->auth_header);
    sa__free(e->mem, e->user_agent);
    sa__free(e->mem, e->ca_bundle);
    sa__free(e->mem, e->proxy);
    sa__free(e->mem, e);
}

const char *sa__engine_errmsg(const sa__engine *e)
{
    return e ? e->errmsg : "";
}

/* ------------------------------------------------------------------ */
/* Completion                                                          */
/* ------------------------------------------------------------------ */

/* 1 when libcurl certainly sent no byte of the request: it could not
 * resolve or connect, or it timed out before a connection existed and
 * before anything was written. */
static int certainly_not_sent(CURL *h, CURLcode code)
{
    curl_off_t connect_us = 0, pre_us = 0;
    long req_size = 0;

    switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
        return 1;
    case CURLE_OPERATION_TIMEDOUT:
        if (curl_easy_getinfo(h, CURLINFO_CONNECT_TIME_T, &connect_us) != CURLE_OK ||
            curl_easy_getinfo(h, CURLINFO_PRETRANSFER_TIME_T, &pre_us) != CURLE_OK ||
            curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &req_size) != CURLE_OK)
            return 0;
        return connect_us == 0 && pre_us == 0 && req_size == 0;
    default:
        return 0;
    }
}

/* Fill resp from a finished transfer; msg receives the transport text. */
static void map_result(sa__engine *e, sa__xfer *x, CURLcode code,
                       sa__http_response *resp, char *msg, size_t msglen)
{
    const char *detail = x->errbuf[0] ? x->errbuf : curl_easy_strerror(code);
    char ebuf[128], ebuf2[CURL_ERROR_SIZE + 128];

    memset(resp, 0, sizeof *resp);
    resp->request_id = x->request_id[0] ? x->request_id : NULL;
    msg[0] = '\0';
    if (code == CURLE_OK) {
        long status = 0;
        curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
        resp->transport = SA_OK;
        resp->http_status = status;
        resp->body = x->body.data;
        resp->body_len = x->body.len;
        return;
    }
    resp->not_sent = certainly_not_sent(x->h, code);
    if (x->sink_error != SA_OK) {
        resp->transport = x->sink_error;
        sa__errf(msg, msglen, "%s", x->sink_msg[0] ? x->sink_msg
                 : sa_strerror(x->sink_error));
    } else if (x->body_overflow) {
        resp->transport = SA_ERR_LIMIT;
        sa__errf(msg, msglen, "response body larger than its limit "
                 "(%zu bytes)", x->body.limit);
    } else if (x->body_nomem) {
        resp->transport = SA_ERR_NOMEM;
        sa__errf(msg, msglen, "out of memory reading the response");
    } else if (x->read_error || code == CURLE_READ_ERROR) {
        resp->transport = SA_ERR_FILE;
        if (x->read_errno)
            sa__errf(msg, msglen, "reading the image file failed: %s",
                     sa__strerror(x->read_errno, ebuf, sizeof ebuf));
        else
            sa__errf(msg, msglen, "the image file got shorter during "
                     "the upload");
    } else if (code == CURLE_OPERATION_TIMEDOUT) {
        resp->transport = SA_ERR_TIMEOUT;
        sa__errf(msg, msglen, "%s", detail);
    } else {
        resp->transport = SA_ERR_TRANSPORT;
        sa__errf(msg, msglen, "%s", detail);
    }
    /* it ends up in the job's message: no key, no signed query string */
    sa__redact(ebuf2, sizeof ebuf2, msg, e->api_key);
    sa__errf(msg, msglen, "%s", ebuf2);
    resp->transport_msg = msg;
}

void sa__eng_finish(sa__engine *e, sa__xfer *x, CURLcode code)
{
    sa__http_response resp;
    char msg[CURL_ERROR_SIZE + 128];
    long connects = 0;

    if (x->added) curl_multi_remove_handle(e->multi, x->h);
    sa__eng_unlink(&e->busy, x);
    e->n_busy--;
    e->transfers++;
    if (curl_easy_getinfo(x->h, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK)
        e->connects += connects;
    map_result(e, x, code, &resp, msg, sizeof msg);
    if (resp.transport == SA_OK)
        sa__eng_log(e, SA_LOG_DEBUG, "%s %s -> %ld in %lld ms%s%s",
                    sa__eng_method(x->method), x->url, resp.http_status,
                    (long long)(sa__engine_now() - x->started_ms),
                    resp.request_id ? ", x-request-id " : "",
                    resp.request_id ? resp.request_id : "");
    else
        sa__eng_log(e, SA_LOG_DEBUG, "%s %s -> %s after %lld ms: %s",
                    sa__eng_method(x->method), x->url,
                    sa_status_name(resp.transport),
                    (long long)(sa__engine_now() - x->started_ms), msg);
    e->hooks.done(e->hooks.ctx, x->owner, &resp);
    sa__eng_release(e, x);
}

int sa__engine_in_flight(const sa__engine *e)
{
    return e ? e->n_busy : 0;
}

void sa__engine_stats(const sa__engine *e, long *transfers, long *connects)
{
    if (transfers) *transfers = e ? e->transfers : 0;
    if (connects) *connects = e ? e->connects : 0;
}
