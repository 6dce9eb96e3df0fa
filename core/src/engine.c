/*
 * engine.c - the libcurl side of a client: one multi handle, an easy
 * handle per transfer, and the translation of a job's sa_http_request
 * into a transfer and of the transfer's outcome into a sa_http_response.
 *
 * The engine knows nothing about jobs or the protocol: it sends what it is
 * given and reports what happened through sa_engine_hooks.  It is also the
 * only place that reads a clock (sa_engine_now), and it owns libcurl's
 * process-wide setup (sa_global_init / sa_global_cleanup).
 *
 * Secrets: the Bearer key is added only when req->api_host is set;
 * requests to other hosts carry the job's header lines (plus the
 * User-Agent), except those that are libcurl's or the engine's
 * (header_reserved: Authorization, Host, Content-Length, ...).
 * Redirects are never followed, so the key cannot be carried to another
 * host by a Location header.
 */
#include "sa_internal.h"

#include <curl/curl.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The blocking and non-blocking drive modes run libcurl's socket API on an
 * epoll set of their own where there is one (see "Driving"). */
#if defined(__linux__) && !defined(SA_NO_EPOLL)
#define SA_HAVE_EPOLL 1
#include <sys/epoll.h>
#include <sys/eventfd.h>
/* Most socket events handled per sa_engine_perform. */
#define EPOLL_BATCH 64
#endif

#define ENGINE_ERRLEN 512
#define REQUEST_ID_MAX 128
/* libcurl's buffers live in each easy handle: 64 KiB to upload and 16 KiB
 * to receive by default, the biggest part of an in-flight job's memory.
 * Uploads keep libcurl's 64 KiB: the buffer exists only while a PUT runs
 * (at most max_uploads of them), and 16 KiB cost a third more CPU per
 * upload in send and read calls (bench/run part 1).  Answers to API calls
 * and to the upload PUT are a few KB, so they are read through a 4 KiB
 * buffer (a bigger answer only costs more recv calls); downloads (a GET to
 * another host: result files) keep libcurl's default. */
#define UPLOAD_BUFFER_BYTES 65536L
#define SMALL_RECV_BUFFER_BYTES 4096L

struct sa_xfer {
    sa_engine *e;
    CURL *h;
    sa_xfer *prev, *next;          /* in e->busy */
    sa_xfer *add_next;             /* in e->to_add, while not added */
    int added;                     /* handed to the multi handle */
    void *owner;
    struct curl_slist *headers;
    sa_buf body;
    char errbuf[CURL_ERROR_SIZE];
    char request_id[REQUEST_ID_MAX];
    /* upload source: a file descriptor or a caller's buffer */
    int fd;
    const unsigned char *up_buf;
    uint64_t up_size;
    uint64_t up_pos;
    /* request facts kept for the log line and the error mapping */
    int method;
    int api_host;
    char *url;                     /* a copy, for log lines */
    int64_t started_ms;
    /* why a callback stopped the transfer */
    int body_overflow;
    int body_nomem;
    int read_error;
    int read_errno;
};

struct sa_engine {
    const sa_mem *mem;
    CURLM *multi;
    sa_engine_hooks hooks;
    char *api_key;
    char *auth_header;             /* "Authorization: Bearer KEY" */
    char *user_agent;
    char *ca_bundle;
    char *proxy;
    long connect_timeout_ms;
    int max_connections;
    size_t max_body_bytes;
    sa_xfer *busy;                 /* transfers in flight */
    int n_busy;
    int event_mode;
    long transfers;
    long connects;
    int batch;                     /* bound of a round (sa_engine_set_batch) */
    int64_t budget_end;            /* its time budget ends (us); 0: none */
    int pending;                   /* finished transfers not reported yet */
    /* transfers sent but not yet handed to libcurl (see add_started):
     * a FIFO, head and tail */
    sa_xfer *to_add, *to_add_tail;
    int events_left;               /* a bounded round left socket events */
#ifdef SA_HAVE_EPOLL
    /* the internal loop (no event hooks): sockets libcurl asks to watch,
     * the eventfd of sa_engine_wakeup, events sa_engine_wait saw and
     * sa_engine_perform has not handled yet */
    int epfd;
    int wakefd;
    int n_ready;
    struct epoll_event ready[EPOLL_BATCH];
#endif
    char errmsg[ENGINE_ERRLEN];
};

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

int sa_engine_global_ready(void)
{
    return atomic_load(&sa_global_refs) > 0;
}

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

int64_t sa_engine_now(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return 0;
    return (int64_t)ts.tv_sec * 1000 + (int64_t)(ts.tv_nsec / 1000000);
}

int64_t sa_engine_now_us(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return 0;
    return (int64_t)ts.tv_sec * 1000000 + (int64_t)(ts.tv_nsec / 1000);
}

static void elog(sa_engine *e, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void elog(sa_engine *e, int level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    if (level < e->hooks.log_level) return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    e->hooks.log(e->hooks.ctx, level, line);
}

static void eerr(sa_engine *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The message of a failed send (it reaches the job's message): redacted,
 * so neither the key nor a signed query string can show. */
static void eerr(sa_engine *e, const char *fmt, ...)
{
    char raw[ENGINE_ERRLEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    sa__redact(e->errmsg, sizeof e->errmsg, raw, e->api_key);
}

static const char *method_name(int m)
{
    return (m >= 0 && m <= SA_HTTP_PUT) ? method_names[m] : "?";
}

static void list_push(sa_xfer **head, sa_xfer *x)
{
    x->prev = NULL;
    x->next = *head;
    if (*head) (*head)->prev = x;
    *head = x;
}

static void list_unlink(sa_xfer **head, sa_xfer *x)
{
    if (x->prev) x->prev->next = x->next;
    else *head = x->next;
    if (x->next) x->next->prev = x->prev;
    x->prev = x->next = NULL;
}

/* 1 when the header line `line` names header `name` (case-insensitive). */
static int header_is(const char *line, const char *name)
{
    size_t n = strlen(name);
    return strncasecmp(line, name, n) == 0 && line[n] == ':';
}

/* 1 when a job's header line is safe to send: "Name: value", printable,
 * no CR/LF (a server-supplied upload header must not inject lines). */
static int header_line_ok(const char *line)
{
    const unsigned char *p = (const unsigned char *)line;
    const char *colon = strchr(line, ':');
    if (!colon || colon == line) return 0;
    for (; *p; p++)
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f) return 0;
    return 1;
}

/* ------------------------------------------------------------------ */
/* libcurl callbacks (no job code runs in here)                         */
/* ------------------------------------------------------------------ */

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    sa_xfer *x = ud;
    size_t len = size * n;
    int rc = sa_buf_append(&x->body, data, len);
    if (rc == SA_OK) return len;
    if (rc == SA_ERR_LIMIT) x->body_overflow = 1;
    else x->body_nomem = 1;
    return 0; /* CURLE_WRITE_ERROR */
}

static size_t on_header(char *data, size_t size, size_t n, void *ud)
{
    static const char name[] = "x-request-id:";
    sa_xfer *x = ud;
    size_t len = size * n, i, j = 0;

    /* A new status line starts a new response (after 100 Continue). */
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) x->request_id[0] = '\0';
    if (len <= sizeof name - 1 ||
        strncasecmp(data, name, sizeof name - 1) != 0)
        return len;
    i = sizeof name - 1;
    while (i < len && (data[i] == ' ' || data[i] == '\t')) i++;
    while (i < len && data[i] != '\r' && data[i] != '\n') {
        unsigned char c = (unsigned char)data[i++];
        if (c < 0x20 || c == 0x7f) continue;
        if (j + 1 >= sizeof x->request_id) {
            /* too long for an id (a real one is a short integer): not
             * kept, rather than cut inside whatever it echoes */
            x->request_id[0] = '\0';
            return len;
        }
        x->request_id[j++] = (char)c;
    }
    while (j > 0 && (x->request_id[j - 1] == ' ' ||
                     x->request_id[j - 1] == '\t'))
        j--;
    x->request_id[j] = '\0';
    return len;
}

static size_t on_read(char *buf, size_t size, size_t n, void *ud)
{
    sa_xfer *x = ud;
    size_t want = size * n;
    uint64_t left = x->up_size - x->up_pos;
    ssize_t got;

    if ((uint64_t)want > left) want = (size_t)left;
    if (want == 0) return 0;
    if (x->up_buf) {
        memcpy(buf, x->up_buf + x->up_pos, want);
        x->up_pos += want;
        return want;
    }
    do {
        got = read(x->fd, buf, want);
    } while (got < 0 && errno == EINTR);
    if (got <= 0) {
        /* an error, or the file is shorter than when it was checked */
        x->read_error = 1;
        x->read_errno = got < 0 ? errno : 0;
        return CURL_READFUNC_ABORT;
    }
    x->up_pos += (uint64_t)got;
    return (size_t)got;
}

static int on_seek(void *ud, curl_off_t offset, int origin)
{
    sa_xfer *x = ud;
    if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > x->up_size)
        return CURL_SEEKFUNC_CANTSEEK;
    if (!x->up_buf && lseek(x->fd, (off_t)offset, SEEK_SET) < 0)
        return CURL_SEEKFUNC_FAIL;
    x->up_pos = (uint64_t)offset;
    return CURL_SEEKFUNC_OK;
}

static int on_socket(CURL *h, curl_socket_t s, int what, void *ud, void *sp)
{
    sa_engine *e = ud;
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
    sa_engine *e = ud;
    (void)m;
    e->hooks.timer(e->hooks.ctx,
                   timeout_ms < 0 ? -1 : sa_engine_now() + timeout_ms);
    return 0;
}

#ifdef SA_HAVE_EPOLL
/* The internal loop's socket callback: keep the epoll set in step with
 * what libcurl wants to know about each socket. */
static int on_socket_internal(CURL *h, curl_socket_t s, int what, void *ud,
                              void *sp)
{
    sa_engine *e = ud;
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
static int loop_open(sa_engine *e)
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
/* Creation                                                            */
/* ------------------------------------------------------------------ */

static int engine_copy_strings(sa_engine *e, const sa_engine_options *o)
{
    sa_buf auth;
    const char *ua = o->user_agent ? o->user_agent : "skinanalysis/" SA_VERSION;

    sa_buf_init(&auth, e->mem, 0);
    if (sa_buf_appendf(&auth, "Authorization: Bearer %s", o->api_key) != SA_OK) {
        sa_buf_free(&auth);
        return SA_ERR_NOMEM;
    }
    e->auth_header = sa_buf_steal(&auth);
    e->api_key = sa__strdup(e->mem, o->api_key);
    e->user_agent = sa__strdup(e->mem, ua);
    e->ca_bundle = sa__strdup(e->mem, o->ca_bundle);
    e->proxy = sa__strdup(e->mem, o->proxy);
    if (!e->auth_header || !e->api_key || !e->user_agent ||
        (o->ca_bundle && !e->ca_bundle) || (o->proxy && !e->proxy))
        return SA_ERR_NOMEM;
    return SA_OK;
}

int sa_engine_new(const sa_engine_options *o, const sa_engine_hooks *h,
                  sa_engine **out, char *err, size_t errlen)
{
    sa_engine *e;
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
        sa_engine_free(e);
        return rc;
    }
    e->multi = curl_multi_init();
    if (!e->multi) {
        sa__errf(err, errlen, "curl_multi_init failed (out of memory, or "
                              "sa_global_init was not called)");
        sa_engine_free(e);
        return SA_ERR_INIT;
    }
    if (curl_multi_setopt(e->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                          (long)o->max_connections) != CURLM_OK ||
        curl_multi_setopt(e->multi, CURLMOPT_PIPELINING,
                          (long)CURLPIPE_MULTIPLEX) != CURLM_OK) {
        sa__errf(err, errlen, "libcurl refused the connection options");
        sa_engine_free(e);
        return SA_ERR_INIT;
    }
#ifdef SA_HAVE_EPOLL
    if (loop_open(e) != SA_OK) {
        char ebuf[128];
        sa__errf(err, errlen, "cannot create the client's epoll set: %s",
                 sa__strerror(errno, ebuf, sizeof ebuf));
        sa_engine_free(e);
        return SA_ERR_INIT;
    }
    if (sa_engine_set_event_mode(e, 0) != SA_OK) {
        sa__errf(err, errlen, "libcurl refused the socket callbacks");
        sa_engine_free(e);
        return SA_ERR_INIT;
    }
#endif
    *out = e;
    return SA_OK;
}

static void xfer_destroy(sa_engine *e, sa_xfer *x)
{
    if (x->h) curl_easy_cleanup(x->h);
    sa_buf_free(&x->body);
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
static void xfer_release(sa_engine *e, sa_xfer *x)
{
    if (x->fd >= 0) close(x->fd);
    x->fd = -1;
    sa__free(e->mem, x->url);
    x->url = NULL;
    curl_slist_free_all(x->headers);
    x->headers = NULL;
    xfer_destroy(e, x);
}

void sa_engine_free(sa_engine *e)
{
    if (!e) return;
    while (e->busy) {
        sa_xfer *x = e->busy;
        list_unlink(&e->busy, x);
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

/* ------------------------------------------------------------------ */
/* Sending                                                             */
/* ------------------------------------------------------------------ */

static sa_xfer *xfer_get(sa_engine *e)
{
    sa_xfer *x = sa__calloc(e->mem, 1, sizeof *x);
    if (!x) return NULL;
    x->h = curl_easy_init();
    if (!x->h) {
        sa__free(e->mem, x);
        return NULL;
    }
    x->e = e;
    x->fd = -1;
    sa_buf_init(&x->body, e->mem, e->max_body_bytes);
    return x;
}

static int add_header(struct curl_slist **list, const char *line)
{
    struct curl_slist *n = curl_slist_append(*list, line);
    if (!n) return SA_ERR_NOMEM;
    *list = n;
    return SA_OK;
}

/* Headers a request's owner never sets: the Bearer key is the engine's to
 * add (API host only), and routing and framing are libcurl's (the Host of
 * the URL, Content-Length from the body or upload size, no chunking). */
static int header_reserved(const char *line)
{
    static const char *const names[] = {
        "Authorization", "Host", "Content-Length", "Transfer-Encoding",
        "Connection", "Expect", "Proxy-Authorization", "Upgrade", "TE"
    };
    size_t i;
    for (i = 0; i < sizeof names / sizeof names[0]; i++)
        if (header_is(line, names[i])) return 1;
    return 0;
}

/* The header list: the key only for the API host; curl's automatic
 * "Expect: 100-continue" is always off. */
static int build_headers(sa_engine *e, sa_xfer *x, const sa_http_request *req)
{
    size_t i;
    int has_ctype = 0;

    for (i = 0; i < req->n_headers; i++) {
        if (!req->headers[i] || !header_line_ok(req->headers[i])) {
            eerr(e, "refusing to send a malformed header line (%s step)",
                 req->api_host ? "API" : "upload");
            return SA_ERR_TRANSPORT;
        }
        if (header_reserved(req->headers[i])) continue;
        if (header_is(req->headers[i], "Content-Type")) has_ctype = 1;
        if (add_header(&x->headers, req->headers[i]) != SA_OK)
            return SA_ERR_NOMEM;
    }
    if (add_header(&x->headers, "Expect:") != SA_OK) return SA_ERR_NOMEM;
    if (!req->api_host)
        return add_header(&x->headers, "Accept:");
    if (add_header(&x->headers, e->auth_header) != SA_OK ||
        add_header(&x->headers, "Accept: application/json") != SA_OK)
        return SA_ERR_NOMEM;
    if (req->method == SA_HTTP_POST && !has_ctype &&
        add_header(&x->headers, "Content-Type: application/json") != SA_OK)
        return SA_ERR_NOMEM;
    return SA_OK;
}

/* Open the upload file now (never earlier, never read whole) and check
 * that it still has the size validation saw. */
static int open_upload(sa_engine *e, sa_xfer *x, const sa_http_request *req)
{
    struct stat st;
    char ebuf[128];

    if (req->upload_buf) {
        x->up_buf = req->upload_buf;
        return SA_OK;
    }
    /* O_NONBLOCK: a FIFO put in the file's place must not block us */
    x->fd = open(req->upload_file, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (x->fd < 0 || fstat(x->fd, &st) != 0) {
        int err = errno;
        eerr(e, "cannot open image file '%s' for upload: %s",
             req->upload_file, sa__strerror(err, ebuf, sizeof ebuf));
        return SA_ERR_FILE;
    }
    if (!S_ISREG(st.st_mode)) {
        eerr(e, "'%s' is no longer a regular file", req->upload_file);
        return SA_ERR_FILE;
    }
    if ((uint64_t)st.st_size != req->upload_size) {
        eerr(e, "image file '%s' changed since it was checked "
             "(%llu bytes, expected %llu)", req->upload_file,
             (unsigned long long)st.st_size,
             (unsigned long long)req->upload_size);
        return SA_ERR_FILE;
    }
    return SA_OK;
}

#define SETOPT(opt, val)                                                  \
    do {                                                                  \
        if (curl_easy_setopt(h, opt, val) != CURLE_OK) goto refused;      \
    } while (0)

static int setup_method(sa_engine *e, sa_xfer *x, const sa_http_request *req)
{
    CURL *h = x->h;
    int rc;

    (void)e;
    switch (req->method) {
    case SA_HTTP_GET:
        SETOPT(CURLOPT_HTTPGET, 1L);
        return SA_OK;
    case SA_HTTP_POST:
        SETOPT(CURLOPT_POST, 1L);
        SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        /* copied: the transfer never points into the job's memory */
        SETOPT(CURLOPT_COPYPOSTFIELDS, req->body ? req->body : "");
        return SA_OK;
    case SA_HTTP_PUT:
        if (!req->upload_buf && !req->upload_file) break;
        rc = open_upload(e, x, req);
        if (rc != SA_OK) return rc;
        x->up_size = req->upload_size;
        SETOPT(CURLOPT_UPLOAD, 1L);
        (void)curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE,
                               UPLOAD_BUFFER_BYTES);
        SETOPT(CURLOPT_INFILESIZE_LARGE, (curl_off_t)req->upload_size);
        SETOPT(CURLOPT_READFUNCTION, on_read);
        SETOPT(CURLOPT_READDATA, x);
        SETOPT(CURLOPT_SEEKFUNCTION, on_seek);
        SETOPT(CURLOPT_SEEKDATA, x);
        return SA_OK;
    default:
        break;
    }
    eerr(e, "unsupported request (method %d)", req->method);
    return SA_ERR_TRANSPORT;
refused:
    eerr(e, "libcurl refused a request option");
    return SA_ERR_TRANSPORT;
}

static int setup_easy(sa_engine *e, sa_xfer *x, const sa_http_request *req)
{
    CURL *h = x->h;
    int rc = build_headers(e, x, req);

    if (rc == SA_ERR_NOMEM)
        eerr(e, "out of memory");
    if (rc != SA_OK) return rc;
    SETOPT(CURLOPT_PRIVATE, (void *)x);
    SETOPT(CURLOPT_URL, req->url);
#if LIBCURL_VERSION_NUM >= 0x075500
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
#else
    SETOPT(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(CURLOPT_TIMEOUT_MS, req->timeout_ms > 0 ? req->timeout_ms : 0L);
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, e->connect_timeout_ms);
    SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
    SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
    if (e->ca_bundle) SETOPT(CURLOPT_CAINFO, e->ca_bundle);
    if (e->proxy) SETOPT(CURLOPT_PROXY, e->proxy);
    SETOPT(CURLOPT_USERAGENT, e->user_agent);
    SETOPT(CURLOPT_ERRORBUFFER, x->errbuf);
    SETOPT(CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(CURLOPT_WRITEDATA, x);
    SETOPT(CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(CURLOPT_HEADERDATA, x);
    SETOPT(CURLOPT_HTTPHEADER, x->headers);
    /* Optional features: a libcurl without them still works. */
    (void)curl_easy_setopt(h, CURLOPT_HTTP_VERSION,
                           (long)CURL_HTTP_VERSION_2TLS);
    if (req->api_host) (void)curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
    if (req->api_host || req->method != SA_HTTP_GET)
        (void)curl_easy_setopt(h, CURLOPT_BUFFERSIZE, SMALL_RECV_BUFFER_BYTES);
    /* On a reused connection that dies before an answer, libcurl silently
     * sends the request again on a new one; a request on a fresh connection
     * is never resent.  The owner asks for one when a second copy would
     * cost (the client: task create, billed and not idempotent). */
    if (req->fresh_connection) SETOPT(CURLOPT_FRESH_CONNECT, 1L);
    else (void)curl_easy_setopt(h, CURLOPT_PIPEWAIT, 1L);
    return setup_method(e, x, req);
refused:
    eerr(e, "libcurl refused a request option");
    return SA_ERR_TRANSPORT;
}

#undef SETOPT

int sa_engine_send(sa_engine *e, const sa_http_request *req, void *owner,
                   sa_xfer **out)
{
    sa_xfer *x;
    int rc;

    *out = NULL;
    e->errmsg[0] = '\0';
    x = xfer_get(e);
    if (!x) {
        eerr(e, "out of memory starting a request");
        return SA_ERR_NOMEM;
    }
    x->owner = owner;
    x->method = req->method;
    x->api_host = req->api_host;
    /* the request's own bound (ZIP and mask downloads), else the client's */
    x->body.limit = req->max_body ? req->max_body : e->max_body_bytes;
    x->url = sa__strdup(e->mem, req->url);
    x->started_ms = sa_engine_now();
    if (!x->url) {
        eerr(e, "out of memory starting a request");
        rc = SA_ERR_NOMEM;
    } else {
        rc = setup_easy(e, x, req);
    }
    if (rc != SA_OK) {
        elog(e, SA_LOG_DEBUG, "%s %s not sent: %s", method_name(req->method),
             req->url, e->errmsg);
        xfer_release(e, x);
        return rc;
    }
    /* handed to libcurl by the next perform or socket action */
    x->add_next = NULL;
    if (e->to_add_tail) e->to_add_tail->add_next = x;
    else e->to_add = x;
    e->to_add_tail = x;
    list_push(&e->busy, x);
    e->n_busy++;
    elog(e, SA_LOG_DEBUG, "%s %s", method_name(req->method), req->url);
    *out = x;
    return SA_OK;
}

/* Take x off the to_add FIFO. */
static void unqueue(sa_engine *e, sa_xfer *x)
{
    sa_xfer **pp = &e->to_add, *prev = NULL;
    while (*pp && *pp != x) {
        prev = *pp;
        pp = &(*pp)->add_next;
    }
    if (!*pp) return;
    *pp = x->add_next;
    if (e->to_add_tail == x) e->to_add_tail = prev;
    x->add_next = NULL;
}

void sa_engine_abort(sa_engine *e, sa_xfer *x)
{
    if (!e || !x) return;
    if (x->added) curl_multi_remove_handle(e->multi, x->h);
    else unqueue(e, x);
    list_unlink(&e->busy, x);
    e->n_busy--;
    elog(e, SA_LOG_DEBUG, "%s %s aborted", method_name(x->method), x->url);
    xfer_release(e, x);
}

const char *sa_engine_errmsg(const sa_engine *e)
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
static void map_result(sa_engine *e, sa_xfer *x, CURLcode code,
                       sa_http_response *resp, char *msg, size_t msglen)
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
    if (x->body_overflow) {
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

static void finish(sa_engine *e, sa_xfer *x, CURLcode code)
{
    sa_http_response resp;
    char msg[CURL_ERROR_SIZE + 128];
    long connects = 0;

    if (x->added) curl_multi_remove_handle(e->multi, x->h);
    list_unlink(&e->busy, x);
    e->n_busy--;
    e->transfers++;
    if (curl_easy_getinfo(x->h, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK)
        e->connects += connects;
    map_result(e, x, code, &resp, msg, sizeof msg);
    if (resp.transport == SA_OK)
        elog(e, SA_LOG_DEBUG, "%s %s -> %ld in %lld ms%s%s",
             method_name(x->method), x->url, resp.http_status,
             (long long)(sa_engine_now() - x->started_ms),
             resp.request_id ? ", x-request-id " : "",
             resp.request_id ? resp.request_id : "");
    else
        elog(e, SA_LOG_DEBUG, "%s %s -> %s after %lld ms: %s",
             method_name(x->method), x->url, sa_status_name(resp.transport),
             (long long)(sa_engine_now() - x->started_ms), msg);
    e->hooks.done(e->hooks.ctx, x->owner, &resp);
    xfer_release(e, x);
}

/* Report finished transfers, at most e->batch of them (0: all); the rest
 * stay in libcurl's message queue for the next call (e->pending).  One
 * message at a time: a done hook may start new transfers or abort others
 * (whose messages libcurl drops). */
/* 1 when a bounded round has used its time budget. */
static int over_budget(const sa_engine *e)
{
    return e->budget_end > 0 && sa_engine_now_us() >= e->budget_end;
}

static void collect(sa_engine *e)
{
    CURLMsg *m;
    int left = 0, guard, done = 0;

    e->pending = 0;
    for (guard = 0; guard < 1000000; guard++) {
        sa_xfer *x = NULL;
        if (e->batch > 0 &&
            (done >= e->batch || (done > 0 && over_budget(e)))) {
            e->pending = left > 0;
            return;
        }
        m = curl_multi_info_read(e->multi, &left);
        if (!m) break;
        if (m->msg != CURLMSG_DONE) continue;
        if (curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x)
                != CURLE_OK || !x)
            continue;
        finish(e, x, m->data.result);
        done++;
    }
}

/* ------------------------------------------------------------------ */
/* Driving                                                             */
/* ------------------------------------------------------------------ */

/* Hand sent transfers to libcurl, in the order they were sent; at most
 * e->batch / 4 of them in a bounded round (libcurl connects and writes
 * every added transfer in its next timeout action, so 64 submits at once
 * would otherwise all land in one frame).  A transfer libcurl refuses ends here,
 * certainly not sent. */
static void add_started(sa_engine *e)
{
    int n = 0, max = e->batch / 4 > 1 ? e->batch / 4 : 1;

    while (e->to_add && (e->batch == 0 || n < max)) {
        sa_xfer *x = e->to_add;
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
            sa_http_response resp;
            char msg[256];
            memset(&resp, 0, sizeof resp);
            resp.transport = mc == CURLM_OUT_OF_MEMORY ? SA_ERR_NOMEM
                                                       : SA_ERR_TRANSPORT;
            resp.not_sent = 1;
            sa__errf(msg, sizeof msg, "libcurl did not take the request: %s",
                     curl_multi_strerror(mc));
            resp.transport_msg = msg;
            list_unlink(&e->busy, x);
            e->n_busy--;
            elog(e, SA_LOG_DEBUG, "%s %s not sent: %s", method_name(x->method),
                 x->url, msg);
            e->hooks.done(e->hooks.ctx, x->owner, &resp);
            xfer_release(e, x);
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
 * events are kept for sa_engine_perform. */
int sa_engine_wait(sa_engine *e, long timeout_ms)
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

int sa_engine_perform(sa_engine *e)
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
        if (i > 0 && over_budget(e)) {
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
     * no timer state here; sa_engine_timeout asks it too). */
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
int sa_engine_wait(sa_engine *e, long timeout_ms)
{
    int n = 0;
    if (timeout_ms < 0) timeout_ms = 0;
    if (timeout_ms > 0x7fffffffL) timeout_ms = 0x7fffffffL;
    if (curl_multi_poll(e->multi, NULL, 0, (int)timeout_ms, &n) != CURLM_OK)
        return SA_ERR_TRANSPORT;
    return SA_OK;
}

int sa_engine_perform(sa_engine *e)
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

int sa_engine_socket_action(sa_engine *e, int fd, int what)
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

long sa_engine_timeout(sa_engine *e)
{
    long t = -1;
    if (e->to_add) return 0;  /* the next perform hands them to libcurl */
#ifdef SA_HAVE_EPOLL
    if (!e->event_mode && (e->n_ready > 0 || e->events_left)) return 0;
#endif
    if (curl_multi_timeout(e->multi, &t) != CURLM_OK) return -1;
    return t;
}

int sa_engine_wakeup(sa_engine *e)
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

int sa_engine_set_event_mode(sa_engine *e, int on)
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
        /* no timer callback: sa_engine_perform asks curl_multi_timeout */
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

int sa_engine_in_flight(const sa_engine *e)
{
    return e ? e->n_busy : 0;
}

void sa_engine_set_batch(sa_engine *e, int max, int64_t budget_end_us)
{
    if (!e) return;
    e->batch = max > 0 ? max : 0;
    e->budget_end = e->batch > 0 ? budget_end_us : 0;
}

int sa_engine_has_leftover(const sa_engine *e)
{
    return e ? e->pending || e->to_add != NULL || e->events_left : 0;
}

void sa_engine_stats(const sa_engine *e, long *transfers, long *connects)
{
    if (transfers) *transfers = e ? e->transfers : 0;
    if (connects) *connects = e ? e->connects : 0;
}
