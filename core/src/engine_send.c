/* engine_send.c - a sa__http_request made into a libcurl transfer (easy handle).
 *
 * Secrets: the Bearer key is added only when req->api_host is set;
 * requests to other hosts carry the job's header lines (plus the
 * User-Agent), except those that are libcurl's or the engine's
 * (header_reserved: Authorization, Host, Content-Length, ...).
 * Redirects are never followed, so the key cannot be carried to another
 * host by a Location header.
 */
#include "engine_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

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
/* A request with a body sink (result downloads) keeps at most this much
 * of the body of an answer that is not 2xx (an S3 error document). */
#define SINK_ERROR_BODY_MAX ((size_t)64 * 1024)

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

/* The body of a request with a sink: a 2xx answer's bytes go to the sink
 * (bounded by the request's max_body), any other answer's first
 * SINK_ERROR_BODY_MAX bytes to memory (for its classification). */
static size_t on_body_sink(sa__xfer *x, char *data, size_t len)
{
    int rc;

    if (x->sink_mode == 0) {
        long status = 0;
        (void)curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
        x->sink_mode = status >= 200 && status < 300 ? 1 : 2;
        if (x->sink_mode == 2) x->body.limit = 0;
    }
    if (x->sink_mode == 2) {
        size_t room = SINK_ERROR_BODY_MAX - (x->body.len < SINK_ERROR_BODY_MAX
                                             ? x->body.len
                                             : SINK_ERROR_BODY_MAX);
        if (room > 0 &&
            sa__buf_append(&x->body, data, len < room ? len : room) != SA_OK) {
            x->body_nomem = 1;
            return 0;
        }
        return len;  /* the rest of an error page is dropped */
    }
    if (x->body.limit && (len > x->body.limit ||
                          x->received > x->body.limit - len)) {
        x->body_overflow = 1;
        return 0;
    }
    {
        curl_off_t cl = -1;
        if (curl_easy_getinfo(x->h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl)
                != CURLE_OK)
            cl = -1;
        rc = x->sink(x->sink_ud, data, len, (int64_t)cl, x->sink_msg,
                     sizeof x->sink_msg);
    }
    if (rc != SA_OK) {
        x->sink_error = rc;
        return 0; /* CURLE_WRITE_ERROR */
    }
    x->received += len;
    return len;
}

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    sa__xfer *x = ud;
    size_t len = size * n;
    int rc;

    if (x->sink) return on_body_sink(x, data, len);
    rc = sa__buf_append(&x->body, data, len);
    if (rc == SA_OK) return len;
    if (rc == SA_ERR_LIMIT) x->body_overflow = 1;
    else x->body_nomem = 1;
    return 0; /* CURLE_WRITE_ERROR */
}

static size_t on_header(char *data, size_t size, size_t n, void *ud)
{
    static const char name[] = "x-request-id:";
    sa__xfer *x = ud;
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
    sa__xfer *x = ud;
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
    sa__xfer *x = ud;
    if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > x->up_size)
        return CURL_SEEKFUNC_CANTSEEK;
    if (!x->up_buf && lseek(x->fd, (off_t)offset, SEEK_SET) < 0)
        return CURL_SEEKFUNC_FAIL;
    x->up_pos = (uint64_t)offset;
    return CURL_SEEKFUNC_OK;
}

/* ------------------------------------------------------------------ */
/* Sending                                                             */
/* ------------------------------------------------------------------ */

static sa__xfer *xfer_get(sa__engine *e)
{
    sa__xfer *x = sa__calloc(e->mem, 1, sizeof *x);
    if (!x) return NULL;
    x->h = curl_easy_init();
    if (!x->h) {
        sa__free(e->mem, x);
        return NULL;
    }
    x->e = e;
    x->fd = -1;
    sa__buf_init(&x->body, e->mem, e->max_body_bytes);
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
static int build_headers(sa__engine *e, sa__xfer *x, const sa__http_request *req)
{
    size_t i;
    int has_ctype = 0;

    for (i = 0; i < req->n_headers; i++) {
        if (!req->headers[i] || !header_line_ok(req->headers[i])) {
            sa__eng_err(e, "refusing to send a malformed header line "
                        "(%s step)", req->api_host ? "API" : "upload");
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
    if (req->method == SA__HTTP_POST && !has_ctype &&
        add_header(&x->headers, "Content-Type: application/json") != SA_OK)
        return SA_ERR_NOMEM;
    return SA_OK;
}

/* Open the upload file now (never earlier, never read whole) and check
 * that it still has the size validation saw. */
static int open_upload(sa__engine *e, sa__xfer *x, const sa__http_request *req)
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
        sa__eng_err(e, "cannot open image file '%s' for upload: %s",
             req->upload_file, sa__strerror(err, ebuf, sizeof ebuf));
        return SA_ERR_FILE;
    }
    if (!S_ISREG(st.st_mode)) {
        sa__eng_err(e, "'%s' is no longer a regular file", req->upload_file);
        return SA_ERR_FILE;
    }
    if ((uint64_t)st.st_size != req->upload_size) {
        sa__eng_err(e, "image file '%s' changed since it was checked "
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

static int setup_method(sa__engine *e, sa__xfer *x, const sa__http_request *req)
{
    CURL *h = x->h;
    int rc;

    (void)e;
    switch (req->method) {
    case SA__HTTP_GET:
        SETOPT(CURLOPT_HTTPGET, 1L);
        return SA_OK;
    case SA__HTTP_POST:
        SETOPT(CURLOPT_POST, 1L);
        SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        /* copied: the transfer never points into the job's memory */
        SETOPT(CURLOPT_COPYPOSTFIELDS, req->body ? req->body : "");
        return SA_OK;
    case SA__HTTP_PUT:
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
    sa__eng_err(e, "unsupported request (method %d)", req->method);
    return SA_ERR_TRANSPORT;
refused:
    sa__eng_err(e, "libcurl refused a request option");
    return SA_ERR_TRANSPORT;
}

static int setup_easy(sa__engine *e, sa__xfer *x, const sa__http_request *req)
{
    CURL *h = x->h;
    int rc = build_headers(e, x, req);

    if (rc == SA_ERR_NOMEM)
        sa__eng_err(e, "out of memory");
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
    if (req->api_host || req->method != SA__HTTP_GET)
        (void)curl_easy_setopt(h, CURLOPT_BUFFERSIZE, SMALL_RECV_BUFFER_BYTES);
    /* On a reused connection that dies before an answer, libcurl silently
     * sends the request again on a new one; a request on a fresh connection
     * is never resent.  The owner asks for one when a second copy would
     * cost (the client: task create, billed and not idempotent). */
    if (req->fresh_connection) SETOPT(CURLOPT_FRESH_CONNECT, 1L);
    else (void)curl_easy_setopt(h, CURLOPT_PIPEWAIT, 1L);
    /* A host that trickles (result downloads): cut off below the limit
     * for the time given (libcurl counts whole seconds). */
    if (req->low_speed_limit > 0 && req->low_speed_time_ms > 0) {
        SETOPT(CURLOPT_LOW_SPEED_LIMIT, req->low_speed_limit);
        SETOPT(CURLOPT_LOW_SPEED_TIME, (req->low_speed_time_ms + 999) / 1000);
    }
    return setup_method(e, x, req);
refused:
    sa__eng_err(e, "libcurl refused a request option");
    return SA_ERR_TRANSPORT;
}

#undef SETOPT

int sa__engine_send(sa__engine *e, const sa__http_request *req, void *owner,
                   sa__xfer **out)
{
    sa__xfer *x;
    int rc;

    *out = NULL;
    e->errmsg[0] = '\0';
    x = xfer_get(e);
    if (!x) {
        sa__eng_err(e, "out of memory starting a request");
        return SA_ERR_NOMEM;
    }
    x->owner = owner;
    x->method = req->method;
    x->api_host = req->api_host;
    /* the request's own bound (ZIP and mask downloads), else the client's */
    x->body.limit = req->max_body ? req->max_body : e->max_body_bytes;
    x->sink = req->sink;
    x->sink_ud = req->sink_ud;
    x->url = sa__strdup(e->mem, req->url);
    x->started_ms = sa__engine_now();
    if (!x->url) {
        sa__eng_err(e, "out of memory starting a request");
        rc = SA_ERR_NOMEM;
    } else {
        rc = setup_easy(e, x, req);
    }
    if (rc != SA_OK) {
        sa__eng_log(e, SA_LOG_DEBUG, "%s %s not sent: %s",
                    sa__eng_method(req->method), req->url, e->errmsg);
        sa__eng_release(e, x);
        return rc;
    }
    /* handed to libcurl by the next perform or socket action */
    x->add_next = NULL;
    if (e->to_add_tail) e->to_add_tail->add_next = x;
    else e->to_add = x;
    e->to_add_tail = x;
    sa__eng_push(&e->busy, x);
    e->n_busy++;
    sa__eng_log(e, SA_LOG_DEBUG, "%s %s", sa__eng_method(req->method),
                req->url);
    *out = x;
    return SA_OK;
}

/* Take x off the to_add FIFO. */
static void unqueue(sa__engine *e, sa__xfer *x)
{
    sa__xfer **pp = &e->to_add, *prev = NULL;
    while (*pp && *pp != x) {
        prev = *pp;
        pp = &(*pp)->add_next;
    }
    if (!*pp) return;
    *pp = x->add_next;
    if (e->to_add_tail == x) e->to_add_tail = prev;
    x->add_next = NULL;
}

void sa__engine_abort(sa__engine *e, sa__xfer *x)
{
    if (!e || !x) return;
    if (x->added) curl_multi_remove_handle(e->multi, x->h);
    else unqueue(e, x);
    sa__eng_unlink(&e->busy, x);
    e->n_busy--;
    sa__eng_log(e, SA_LOG_DEBUG, "%s %s aborted", sa__eng_method(x->method),
                x->url);
    sa__eng_release(e, x);
}
