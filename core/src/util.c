/* util.c - allocation through sa_mem, growable buffers, string/URL helpers.
 *
 * Allocation through sa_mem, growable buffers, small string and
 * URL helpers shared by every module.  No state of its own.
 */
#include "sa_internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Allocation                                                          */
/* ------------------------------------------------------------------ */

/* malloc through mem (NULL = libc).  A zero size allocates one byte so that
 * NULL always means "out of memory". */
void *sa__malloc(const sa_mem *mem, size_t size)
{
    if (size == 0) size = 1;
    if (mem && mem->malloc) return mem->malloc(size, mem->user_data);
    return malloc(size);
}

/* Zeroed array of n elements; NULL on overflow of n * size or NOMEM. */
void *sa__calloc(const sa_mem *mem, size_t n, size_t size)
{
    void *p;
    size_t total;
    if (size != 0 && n > SIZE_MAX / size) return NULL;
    total = n * size;
    p = sa__malloc(mem, total);
    if (p) memset(p, 0, total ? total : 1);
    return p;
}

/* realloc through mem; ptr NULL behaves as malloc.  On failure the old
 * block is left untouched. */
void *sa__realloc(const sa_mem *mem, void *ptr, size_t size)
{
    if (size == 0) size = 1;
    if (mem && mem->realloc) return mem->realloc(ptr, size, mem->user_data);
    return realloc(ptr, size);
}

/* free through mem; NULL is ignored. */
void sa__free(const sa_mem *mem, void *ptr)
{
    if (!ptr) return;
    if (mem && mem->free) {
        mem->free(ptr, mem->user_data);
        return;
    }
    free(ptr);
}

/* Copy of s, NULL when s is NULL or on NOMEM. */
char *sa__strdup(const sa_mem *mem, const char *s)
{
    if (!s) return NULL;
    return sa__strndup(mem, s, strlen(s));
}

/* Copy of at most n bytes of s (stops at a NUL), always terminated. */
char *sa__strndup(const sa_mem *mem, const char *s, size_t n)
{
    char *p;
    const char *nul;
    if (!s) return NULL;
    nul = memchr(s, '\0', n);
    if (nul) n = (size_t)(nul - s);
    if (n == SIZE_MAX) return NULL;
    p = sa__malloc(mem, n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* The public free for strings the library hands to the caller.  They are
 * always allocated with libc (never through a client's sa_mem). */
void sa_free(void *ptr)
{
    free(ptr);
}

/* ------------------------------------------------------------------ */
/* Growable buffer                                                     */
/* ------------------------------------------------------------------ */

void sa__buf_init(sa__buf *b, const sa_mem *mem, size_t limit)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->limit = limit;
    b->mem = mem;
}

/* Make room for `extra` more bytes plus the terminating NUL. */
static int buf_reserve(sa__buf *b, size_t extra)
{
    size_t need, cap;
    char *p;
    if (extra > SIZE_MAX - 1 - b->len) return SA_ERR_NOMEM;
    need = b->len + extra + 1;
    if (need <= b->cap) return SA_OK;
    cap = b->cap ? b->cap : 64;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    p = sa__realloc(b->mem, b->data, cap);
    if (!p) return SA_ERR_NOMEM;
    b->data = p;
    b->cap = cap;
    return SA_OK;
}

/* Append len bytes.  SA_ERR_LIMIT when the result would exceed the limit
 * (the buffer is then unchanged), SA_ERR_NOMEM on allocation failure. */
int sa__buf_append(sa__buf *b, const void *data, size_t len)
{
    int rc;
    if (b->limit && (len > b->limit || b->len > b->limit - len))
        return SA_ERR_LIMIT;
    rc = buf_reserve(b, len);
    if (rc != SA_OK) return rc;
    if (len) memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return SA_OK;
}

/* printf-style append with the same limit rules as sa__buf_append. */
int sa__buf_appendf(sa__buf *b, const char *fmt, ...)
{
    va_list ap;
    int n, rc;
    size_t room;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return SA_ERR_INVALID_ARGUMENT;
    if (b->limit && ((size_t)n > b->limit || b->len > b->limit - (size_t)n))
        return SA_ERR_LIMIT;
    rc = buf_reserve(b, (size_t)n);
    if (rc != SA_OK) return rc;
    room = b->cap - b->len;
    va_start(ap, fmt);
    n = vsnprintf(b->data + b->len, room, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= room) {
        b->data[b->len] = '\0';
        return SA_ERR_INVALID_ARGUMENT;
    }
    b->len += (size_t)n;
    return SA_OK;
}

void sa__buf_reset(sa__buf *b)
{
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

void sa__buf_free(sa__buf *b)
{
    sa__free(b->mem, b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

/* The data (an empty string when nothing was appended), or NULL on NOMEM.
 * Either way the buffer is left empty and owns nothing. */
char *sa__buf_steal(sa__buf *b)
{
    char *p = b->data;
    if (!p) p = sa__strndup(b->mem, "", 0);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}

/* ------------------------------------------------------------------ */
/* Messages                                                            */
/* ------------------------------------------------------------------ */

void sa__errf(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    if (!buf || len == 0) return;
    va_start(ap, fmt);
    if (vsnprintf(buf, len, fmt, ap) < 0) buf[0] = '\0';
    va_end(ap);
}

/* ASCII-only case-insensitive prefix test (locale independent). */
static int prefix_icase(const char *s, const char *prefix)
{
    for (; *prefix; s++, prefix++) {
        unsigned char a = (unsigned char)*s, b = (unsigned char)*prefix;
        if (a >= 'A' && a <= 'Z') a = (unsigned char)(a - 'A' + 'a');
        if (a != b) return 0;
    }
    return 1;
}

/* Characters that end a URL inside free text. */
static int url_end_char(char c)
{
    return c == '\0' || c == ' ' || c == '\t' || c == '\r' || c == '\n' ||
           c == '"' || c == '\'' || c == '<' || c == '>' || c == '`';
}

/* Output cursor for sa__redact: writes while there is room, always keeps
 * a terminating NUL. */
typedef struct redact_out {
    char *p;
    size_t left; /* bytes available before the NUL slot */
} redact_out;

static void out_put(redact_out *o, const char *s, size_t n)
{
    if (n > o->left) n = o->left;
    memcpy(o->p, s, n);
    o->p += n;
    o->left -= n;
}

#define REDACTED "[REDACTED]"
#define REDACTED_LEN (sizeof REDACTED - 1)

/* How many bytes of secret (length slen) start at s and must be hidden:
 * all of it, or what a bounded copy of a server text left of it where it
 * cut: a run of at least SA__SECRET_MIN_PART of its first bytes, or of
 * SA__SECRET_MIN_TAIL at the very end of s; else 0. */
static size_t secret_at(const char *s, const char *secret, size_t slen)
{
    size_t n = 0;
    if (slen == 0) return 0;
    while (n < slen && s[n] && s[n] == secret[n]) n++;
    if (n == slen || n >= SA__SECRET_MIN_PART) return n;
    return !s[n] && n >= SA__SECRET_MIN_TAIL ? n : 0;
}

static size_t secret_len(const char *secret)
{
    return (secret && *secret) ? strlen(secret) : 0;
}

int sa__has_secret(const char *s, const char *secret)
{
    size_t slen = secret_len(secret);
    if (!s || slen == 0) return 0;
    for (; *s; s++)
        if (*s == secret[0] && secret_at(s, secret, slen)) return 1;
    return 0;
}

size_t sa__scrub_len(const char *s, const char *secret)
{
    size_t slen = secret_len(secret), n = 0, k;
    if (!s) return 0;
    while (*s) {
        k = slen && *s == secret[0] ? secret_at(s, secret, slen) : 0;
        if (k) {
            s += k;
            n += REDACTED_LEN;
        } else {
            s++;
            n++;
        }
    }
    return n;
}

void sa__scrub(char *dst, const char *s, const char *secret)
{
    size_t slen = secret_len(secret), k;
    if (!dst) return;
    if (s) {
        while (*s) {
            k = slen && *s == secret[0] ? secret_at(s, secret, slen) : 0;
            if (k) {
                memcpy(dst, REDACTED, REDACTED_LEN);
                dst += REDACTED_LEN;
                s += k;
            } else {
                *dst++ = *s++;
            }
        }
    }
    *dst = '\0';
}

char *sa__scrub_dup(const sa_mem *mem, const char *s, const char *secret)
{
    size_t n;
    char *out;
    if (!s) return NULL;
    n = sa__scrub_len(s, secret);
    if (n == SIZE_MAX) return NULL;
    out = sa__malloc(mem, n + 1);
    if (out) sa__scrub(out, s, secret);
    return out;
}

void sa__redact(char *dst, size_t dstlen, const char *src, const char *secret)
{
    redact_out o;
    size_t slen = secret_len(secret), k;
    int in_url = 0;

    if (!dst || dstlen == 0) return;
    o.p = dst;
    o.left = dstlen - 1;
    if (!src) src = "";
    while (*src && o.left > 0) {
        k = slen && *src == secret[0] ? secret_at(src, secret, slen) : 0;
        if (k) {
            out_put(&o, REDACTED, REDACTED_LEN);
            src += k;
            continue;
        }
        if (!in_url && (prefix_icase(src, "http://") ||
                        prefix_icase(src, "https://"))) {
            in_url = 1;
        } else if (in_url && *src == '?') {
            out_put(&o, "?[...]", 6);
            while (!url_end_char(*src)) src++;
            in_url = 0;
            continue;
        } else if (in_url && url_end_char(*src)) {
            in_url = 0;
        }
        out_put(&o, src, 1);
        src++;
    }
    *o.p = '\0';
}

void sa__vredact(char *dst, size_t dstlen, const char *secret,
                 const char *fmt, va_list ap)
{
    char raw[1024];

    if (!dst || dstlen == 0) return;
    if (vsnprintf(raw, dstlen < sizeof raw ? dstlen : sizeof raw, fmt, ap) < 0)
        raw[0] = '\0';
    sa__redact(dst, dstlen, raw, secret);
}

/* strerror_r hides two incompatible functions behind one name: the XSI
 * one returns an int and fills buf; GNU's (with _GNU_SOURCE on glibc)
 * returns the message, which may be a static string, and may leave buf
 * untouched.  _Generic picks the reader for the one declared here. */
static const char *strerror_xsi(int rc, char *buf, size_t len, int err)
{
    if (rc != 0 || !buf[0]) sa__errf(buf, len, "error %d", err);
    return buf;
}

static const char *strerror_gnu(const char *msg, char *buf, size_t len,
                                int err)
{
    if (!msg || !*msg) {
        sa__errf(buf, len, "error %d", err);
        return buf;
    }
    return msg;
}

const char *sa__strerror(int err, char *buf, size_t len)
{
    if (!buf || len == 0) return "";
    buf[0] = '\0';
    return _Generic(strerror_r(err, buf, len),
                    char *: strerror_gnu,
                    default: strerror_xsi)(strerror_r(err, buf, len), buf,
                                           len, err);
}

/* ------------------------------------------------------------------ */
/* URLs                                                                */
/* ------------------------------------------------------------------ */

int sa__url_scheme(const char *url)
{
    if (!url) return 0;
    if (prefix_icase(url, "http://")) return 1;
    if (prefix_icase(url, "https://")) return 2;
    return 0;
}

/* 1 when host[0..n) (no brackets) is a loopback address or "localhost". */
static int host_is_loopback(const char *host, size_t n, int bracketed)
{
    char tmp[64];
    unsigned char addr[16];
    static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0,
                                               0, 0, 0, 0, 0xff, 0xff};
    size_t i;

    if (n == 0 || n >= sizeof tmp) return 0;
    for (i = 0; i < n; i++) {
        char c = host[i];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        tmp[i] = c;
    }
    tmp[n] = '\0';
    if (bracketed) {
        if (inet_pton(AF_INET6, tmp, addr) != 1) return 0;
        if (memcmp(addr, &in6addr_loopback, 16) == 0) return 1;
        /* ::ffff:127.x.y.z */
        return memcmp(addr, v4mapped, 12) == 0 && addr[12] == 127;
    }
    if (strcmp(tmp, "localhost") == 0 || strcmp(tmp, "localhost.") == 0)
        return 1;
    /* Only the strict dotted quad: "127.1" or "0x7f.1" are refused (they
     * are not loopback as far as this check goes: the safe side). */
    if (inet_pton(AF_INET, tmp, addr) != 1) return 0;
    return addr[0] == 127;
}

/* A port is empty or 1..5 decimal digits up to 65535. */
static int port_ok(const char *p, size_t n)
{
    unsigned long v = 0;
    size_t i;
    if (n > 5) return 0;
    for (i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return 0;
        v = v * 10 + (unsigned long)(p[i] - '0');
    }
    return v <= 65535;
}

/* scheme://[userinfo@]host[:port][/...]; anything unusual is "not
 * loopback", the safe answer. */
int sa__url_is_loopback(const char *url)
{
    const char *auth, *end, *at, *host, *host_end, *p;
    size_t i;

    if (!url) return 0;
    auth = strstr(url, "://");
    if (!auth || auth == url) return 0;
    for (p = url; p < auth; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.'))
            return 0;
    }
    auth += 3;
    end = auth;
    while (*end && *end != '/' && *end != '?' && *end != '#') end++;
    /* userinfo: everything up to the last '@' of the authority */
    at = NULL;
    for (p = auth; p < end; p++)
        if (*p == '@') at = p;
    host = at ? at + 1 : auth;
    if (host < end && *host == '[') {
        host_end = memchr(host, ']', (size_t)(end - host));
        if (!host_end) return 0;
        p = host_end + 1;
        if (p < end && *p != ':') return 0;
        if (p < end && !port_ok(p + 1, (size_t)(end - p - 1))) return 0;
        return host_is_loopback(host + 1, (size_t)(host_end - host - 1), 1);
    }
    host_end = host;
    while (host_end < end && *host_end != ':') host_end++;
    if (host_end < end &&
        !port_ok(host_end + 1, (size_t)(end - host_end - 1)))
        return 0;
    for (i = 0; host + i < host_end; i++) {
        char c = host[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '-'))
            return 0;
    }
    return host_is_loopback(host, (size_t)(host_end - host), 0);
}

char *sa__urlencode(const sa_mem *mem, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t len;
    const unsigned char *p;
    char *out, *q;

    if (!s) return NULL;
    len = strlen(s);
    if (len > (SIZE_MAX - 1) / 3) return NULL;
    out = sa__malloc(mem, len * 3 + 1);
    if (!out) return NULL;
    q = out;
    for (p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
            (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
            c == '~') {
            *q++ = (char)c;
        } else {
            *q++ = '%';
            *q++ = hex[c >> 4];
            *q++ = hex[c & 15];
        }
    }
    *q = '\0';
    return out;
}

/* xorshift64* (Vigna).  A zero state would stay zero forever: it is
 * replaced by a fixed odd constant. */
uint64_t sa__rand(uint64_t *state)
{
    uint64_t x = *state;
    if (x == 0) x = 0x9E3779B97F4A7C15ULL;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

void sa__min_at(int64_t *at, int64_t t)
{
    if (t < 0 || t == INT64_MAX) return;
    if (*at < 0 || t < *at) *at = t;
}

int sa__has_space_or_ctl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || *s == 0x7f) return 1;
    return 0;
}

int sa__has_ctl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return 1;
    return 0;
}

int sa__task_id_check(const char *task_id, char *why, size_t why_len)
{
    size_t n, i;

    if (!task_id || !*task_id) {
        snprintf(why, why_len, "task_id must be the non-empty id a task "
                 "create returned");
        return SA_ERR_SOURCE;
    }
    n = strlen(task_id);
    if (sa__proto_id_ok(task_id, n)) return SA_OK;
    if (n > SA__MAX_ID_LEN) {
        snprintf(why, why_len, "task_id is %zu bytes long; a task id is at "
                 "most %d", n, SA__MAX_ID_LEN);
        return SA_ERR_SOURCE;
    }
    for (i = 0; i < n; i++) {  /* the first byte the rule refuses alone */
        if (task_id[i] != '.' && !sa__proto_id_ok(task_id + i, 1)) {
            snprintf(why, why_len, "task_id holds a character a task id "
                     "never does (byte %zu, 0x%02x): only letters, digits "
                     "and + / = - _ . ~", i,
                     (unsigned)(unsigned char)task_id[i]);
            return SA_ERR_SOURCE;
        }
    }
    snprintf(why, why_len, "task_id cannot be only dots (\"%s\")", task_id);
    return SA_ERR_SOURCE;
}
