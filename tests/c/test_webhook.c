/*
 * test_webhook.c - sa_webhook_verify (Standard Webhooks, HMAC-SHA256)
 * against fixed vectors, and end to end: the emulator delivers a signed
 * notification to a receiver in this test, which verifies it.
 *
 * The vectors were computed once with Python's hmac module (not with this
 * library):
 *
 *   python3 -c 'import hmac, hashlib, base64
 *   def sig(secret, mid, ts, body):
 *       k = base64.b64decode(secret.removeprefix("whsec_"))
 *       m = mid.encode() + b"." + ts.encode() + b"." + body
 *       d = hmac.new(k, m, hashlib.sha256).digest()
 *       return "v1," + base64.b64encode(d).decode()
 *   S = "whsec_" + base64.b64encode(b"skinanalysis-webhook-test-key-32").decode()
 *   print(sig(S, MSG_ID, "1764374400", BODY))
 *   print(sig(S, "msg_big", "1764374400",
 *             bytes((i * 31 + 7) & 0xff for i in range(4 << 20))))
 *   print(sig(S, "msg_empty", "1764374400", b""))
 *   print(sig(S, "msg_" + TASK + ":1761112848", "1761112848",
 *             open(EXAMPLES + "/webhook-notification.json", "rb").read()))'
 *
 * The Standard Webhooks example (secret, id, timestamp, body and
 * signature from the specification) gives the same value with it.
 */
#include "harness.h"
#include "sa_internal.h"
#include "support_emulator.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* The Standard Webhooks specification's example. */
#define SPEC_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SPEC_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define SPEC_TS "1614265330"
#define SPEC_BODY "{\"test\": 2432232314}"
#define SPEC_SIG "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

/* This project's vectors (see the command above). */
#define SECRET "whsec_c2tpbmFuYWx5c2lzLXdlYmhvb2stdGVzdC1rZXktMzI="
#define SECRET_BARE "c2tpbmFuYWx5c2lzLXdlYmhvb2stdGVzdC1rZXktMzI="
#define TASK "1eWPv9cWJCnEP99UJncmVJ6KjK_xVXRhZPe_eSGnRNbLlXEPjiG3gb3Usg9le3_4"
#define MSG_ID "msg_" TASK ":1764374400"
#define TS "1764374400"
#define NOW 1764374400
#define BODY "{\"created_at\":1764374400,\"data\":{\"task_id\":\"" TASK \
             "\",\"task_status\":\"success\"}}"
#define SIG "v1,98Iq4s3ABRtsvKXi9CNuhKDC7vlRT+pLMP8rFbwqaqw="
#define SIG_BIG "v1,fWevODaXbHsRUMcQIWWCTvGFwIwuTbRLKx52lnhFZG4="
#define SIG_EMPTY "v1,1GMttX8TCugkkwfc5vezhdQ+DH2KEkp/A4dtb5RWv5A="
#define SIG_EXAMPLE "v1,qRYFmpFHpRTFgQl4jZdBXg3R+J1laU4UxRxHkO/prNQ="
/* Well-formed v1 signatures that do not match. */
#define BAD1 "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
#define BAD2 "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

static char err[256];

/* Verify BODY with the given pieces at NOW, default tolerance. */
static int verify(const char *secret, const char *id, const char *ts,
                  const char *sig)
{
    return sa_webhook_verify(secret, id, ts, sig, BODY, strlen(BODY), 0, NOW,
                             err, sizeof err);
}

/* ------------------------------------------------------------------ */
/* Vectors                                                             */
/* ------------------------------------------------------------------ */

TEST(spec_example)
{
    CHECK_EQ_INT(sa_webhook_verify(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_SIG,
                                   SPEC_BODY, strlen(SPEC_BODY), 0,
                                   1614265330, err, sizeof err),
                 SA_OK);
    CHECK_STR(err, "");
    /* one changed byte of the body */
    CHECK_EQ_INT(sa_webhook_verify(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_SIG,
                                   "{\"test\": 2432232315}",
                                   strlen(SPEC_BODY), 0, 1614265330, err,
                                   sizeof err),
                 SA_ERR_WEBHOOK_SIGNATURE);
}

TEST(project_vector)
{
    CHECK_EQ_INT(verify(SECRET, MSG_ID, TS, SIG), SA_OK);
    /* a bare base64 secret (no "whsec_") is the same key */
    CHECK_EQ_INT(verify(SECRET_BARE, MSG_ID, TS, SIG), SA_OK);
    /* errbuf may be NULL */
    CHECK_EQ_INT(sa_webhook_verify(SECRET, MSG_ID, TS, SIG, BODY,
                                   strlen(BODY), 0, NOW, NULL, 0),
                 SA_OK);
}

/* The documented notification body (tests/fixtures/spec/examples), as
 * raw file bytes: verified without any parsing or re-serialising. */
TEST(documented_example_body)
{
    size_t len = 0;
    char *body = harness_slurp(SA_EXAMPLES "/webhook-notification.json", &len);
    REQUIRE(body != NULL);
    CHECK_EQ_INT(sa_webhook_verify(SECRET, "msg_" TASK ":1761112848",
                                   "1761112848", SIG_EXAMPLE, body, len, 0,
                                   1761112848 + 10, err, sizeof err),
                 SA_OK);
    /* the same JSON without its final newline is other bytes */
    CHECK_EQ_INT(sa_webhook_verify(SECRET, "msg_" TASK ":1761112848",
                                   "1761112848", SIG_EXAMPLE, body, len - 1,
                                   0, 1761112848 + 10, err, sizeof err),
                 SA_ERR_WEBHOOK_SIGNATURE);
    free(body);
}

TEST(several_signatures)
{
    CHECK_EQ_INT(verify(SECRET, MSG_ID, TS, BAD1 " " SIG " " BAD2), SA_OK);
    CHECK_EQ_INT(verify(SECRET, MSG_ID, TS, SIG " " BAD1), SA_OK);
    CHECK_EQ_INT(verify(SECRET, MSG_ID, TS, BAD1 "  " SIG), SA_OK);
    /* a malformed entry next to the valid one does not hide it */
    CHECK_EQ_INT(verify(SECRET, MSG_ID, TS, "v1,%%%% " SIG), SA_OK);
    CHECK_EQ_INT(verify(SECRET, MSG_ID, TS, "v1,QUJD " SIG), SA_OK);
}

TEST(only_invalid_signatures)
{
    CHECK_EQ_INT(verify(SECRET, MSG_ID, TS, BAD1), SA_ERR_WEBHOOK_SIGNATURE);
    CHECK(strstr(err, "none of the 1 v1 signatures") != NULL);
    CHECK_EQ_INT(verify(SECRET, MSG_ID, TS, BAD1 " " BAD2),
                 SA_ERR_WEBHOOK_SIGNATURE);
    CHECK(strstr(err, "none of the 2") != NULL);
    /* the right value without its "v1," or with a truncated MAC */
    CHECK_EQ_INT(verify(SECRET, MSG_ID, TS, &SIG[3]),
                 SA_ERR_WEBHOOK_SIGNATURE);
    CHECK(strstr(err, "no \"v1,\" entry") != NULL);
    CHECK_EQ_INT(verify(SECRET, MSG_ID, TS,
                        "v1,98Iq4s3ABRtsvKXi9CNuhKDC7vlRT+pLMP8rFbwqaq"),
                 SA_ERR_WEBHOOK_SIGNATURE);
    /* non-canonical base64 of the right bytes is not accepted */
    CHECK_EQ_INT(verify(SECRET, MSG_ID, TS,
                        "v1,98Iq4s3ABRtsvKXi9CNuhKDC7vlRT+pLMP8rFbwqaqx="),
                 SA_ERR_WEBHOOK_SIGNATURE);
    /* the URL-safe alphabet is not the standard one */
    CHECK_EQ_INT(verify(SECRET, MSG_ID, TS,
                        "v1,98Iq4s3ABRtsvKXi9CNuhKDC7vlRT-pLMP8rFbwqaqw="),
                 SA_ERR_WEBHOOK_SIGNATURE);
}

TEST(other_versions_ignored)
{
    /* the right MAC under another version tag does not count */
    CHECK_EQ_INT(verify(SECRET, MSG_ID, TS,
                        "v1a,98Iq4s3ABRtsvKXi9CNuhKDC7vlRT+pLMP8rFbwqaqw="),
                 SA_ERR_WEBHOOK_SIGNATURE);
    CHECK(strstr(err, "no \"v1,\" entry") != NULL);
    CHECK_EQ_INT(verify(SECRET, MSG_ID, TS,
                        "v2,98Iq4s3ABRtsvKXi9CNuhKDC7vlRT+pLMP8rFbwqaqw="),
                 SA_ERR_WEBHOOK_SIGNATURE);
    CHECK_EQ_INT(verify(SECRET, MSG_ID, TS, "v1a,AAAA " SIG), SA_OK);
}

TEST(wrong_secret_or_tampered)
{
    CHECK_EQ_INT(verify(SPEC_SECRET, MSG_ID, TS, SIG),
                 SA_ERR_WEBHOOK_SIGNATURE);
    CHECK(strstr(err, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") == NULL);
    /* another id or timestamp is other signed content */
    CHECK_EQ_INT(verify(SECRET, "msg_other", TS, SIG),
                 SA_ERR_WEBHOOK_SIGNATURE);
    CHECK_EQ_INT(verify(SECRET, MSG_ID, "1764374401", SIG),
                 SA_ERR_WEBHOOK_SIGNATURE);
    /* the body one byte shorter, and the body with a changed status */
    CHECK_EQ_INT(sa_webhook_verify(SECRET, MSG_ID, TS, SIG, BODY,
                                   strlen(BODY) - 1, 0, NOW, err, sizeof err),
                 SA_ERR_WEBHOOK_SIGNATURE);
    {
        char body[sizeof BODY];
        memcpy(body, BODY, sizeof BODY);
        memcpy(strstr(body, "success"), "failure", 7);
        CHECK_EQ_INT(sa_webhook_verify(SECRET, MSG_ID, TS, SIG, body,
                                       strlen(body), 0, NOW, err, sizeof err),
                     SA_ERR_WEBHOOK_SIGNATURE);
    }
}

TEST(timestamp_tolerance)
{
    /* default tolerance 300 s both ways, inclusive */
    CHECK_EQ_INT(sa_webhook_verify(SECRET, MSG_ID, TS, SIG, BODY,
                                   strlen(BODY), 0, NOW + 300, err,
                                   sizeof err),
                 SA_OK);
    CHECK_EQ_INT(sa_webhook_verify(SECRET, MSG_ID, TS, SIG, BODY,
                                   strlen(BODY), 0, NOW + 301, err,
                                   sizeof err),
                 SA_ERR_WEBHOOK_STALE);
    CHECK(strstr(err, "301 s behind") != NULL);
    CHECK_EQ_INT(sa_webhook_verify(SECRET, MSG_ID, TS, SIG, BODY,
                                   strlen(BODY), 0, NOW - 300, err,
                                   sizeof err),
                 SA_OK);
    CHECK_EQ_INT(sa_webhook_verify(SECRET, MSG_ID, TS, SIG, BODY,
                                   strlen(BODY), 0, NOW - 301, err,
                                   sizeof err),
                 SA_ERR_WEBHOOK_STALE);
    CHECK(strstr(err, "ahead of") != NULL);
    /* an explicit tolerance */
    CHECK_EQ_INT(sa_webhook_verify(SECRET, MSG_ID, TS, SIG, BODY,
                                   strlen(BODY), 5, NOW + 6, err, sizeof err),
                 SA_ERR_WEBHOOK_STALE);
    CHECK_EQ_INT(sa_webhook_verify(SECRET, MSG_ID, TS, SIG, BODY,
                                   strlen(BODY), 3600, NOW + 3000, err,
                                   sizeof err),
                 SA_OK);
    /* now_s = 0 reads the clock: a 2025 timestamp is far in the past */
    CHECK_EQ_INT(sa_webhook_verify(SECRET, MSG_ID, TS, SIG, BODY,
                                   strlen(BODY), 0, 0, err, sizeof err),
                 SA_ERR_WEBHOOK_STALE);
    /* a forged stale message is a signature failure, not STALE */
    CHECK_EQ_INT(sa_webhook_verify(SECRET, MSG_ID, TS, BAD1, BODY,
                                   strlen(BODY), 0, NOW + 9999, err,
                                   sizeof err),
                 SA_ERR_WEBHOOK_SIGNATURE);
}

TEST(malformed_secret)
{
    const char *bad[] = {"whsec_", "whsec_%%%%", "whsec_c2tp bmFu",
                         "whsec_c2tpbmFuYWx5c2lz=", "whsec_Q", "whsec_QUJD=",
                         "whsec_QUJDRA===", "WHSEC_QUJD"};
    size_t i;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ_INT(verify(bad[i], MSG_ID, TS, SIG),
                     SA_ERR_INVALID_ARGUMENT);
        CHECK(strstr(err, "whsec_") != NULL);
        if (strlen(bad[i]) > 6) CHECK(strstr(err, bad[i] + 6) == NULL);
    }
    /* unpadded and padded base64 decode to the same key */
    CHECK_EQ_INT(verify("whsec_c2tpbmFuYWx5c2lzLXdlYmhvb2stdGVzdC1rZXktMzI",
                        MSG_ID, TS, SIG),
                 SA_OK);
}

TEST(missing_or_malformed_headers)
{
    CHECK_EQ_INT(verify(NULL, MSG_ID, TS, SIG), SA_ERR_INVALID_ARGUMENT);
    CHECK(strstr(err, "secret is missing") != NULL);
    CHECK_EQ_INT(verify("", MSG_ID, TS, SIG), SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(verify(SECRET, NULL, TS, SIG), SA_ERR_INVALID_ARGUMENT);
    CHECK(strstr(err, "webhook-id") != NULL);
    CHECK_EQ_INT(verify(SECRET, "", TS, SIG), SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(verify(SECRET, MSG_ID, NULL, SIG), SA_ERR_INVALID_ARGUMENT);
    CHECK(strstr(err, "webhook-timestamp") != NULL);
    CHECK_EQ_INT(verify(SECRET, MSG_ID, "", SIG), SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(verify(SECRET, MSG_ID, TS, NULL), SA_ERR_INVALID_ARGUMENT);
    CHECK(strstr(err, "webhook-signature") != NULL);
    CHECK_EQ_INT(verify(SECRET, MSG_ID, TS, ""), SA_ERR_INVALID_ARGUMENT);
    /* timestamps that are not plain decimal seconds */
    CHECK_EQ_INT(verify(SECRET, MSG_ID, "-1764374400", SIG),
                 SA_ERR_INVALID_ARGUMENT);
    CHECK(strstr(err, "decimal digits") != NULL);
    CHECK_EQ_INT(verify(SECRET, MSG_ID, "+1764374400", SIG),
                 SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(verify(SECRET, MSG_ID, "1764374400 ", SIG),
                 SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(verify(SECRET, MSG_ID, "1764374400.5", SIG),
                 SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(verify(SECRET, MSG_ID, "1234567890123456789", SIG),
                 SA_ERR_INVALID_ARGUMENT);
    /* NULL body with a length; negative tolerance or clock */
    CHECK_EQ_INT(sa_webhook_verify(SECRET, MSG_ID, TS, SIG, NULL, 5, 0, NOW,
                                   err, sizeof err),
                 SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(sa_webhook_verify(SECRET, MSG_ID, TS, SIG, BODY,
                                   strlen(BODY), -1, NOW, err, sizeof err),
                 SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(sa_webhook_verify(SECRET, MSG_ID, TS, SIG, BODY,
                                   strlen(BODY), 0, -5, err, sizeof err),
                 SA_ERR_INVALID_ARGUMENT);
}

TEST(oversized_headers)
{
    size_t n = 9000;
    char *big = malloc(n + 1);
    REQUIRE(big != NULL);
    memset(big, 'a', n);
    big[n] = '\0';
    CHECK_EQ_INT(verify(SECRET, big, TS, SIG), SA_ERR_INVALID_ARGUMENT);
    CHECK(strstr(err, "longer than") != NULL);
    CHECK_EQ_INT(verify(big, MSG_ID, TS, SIG), SA_ERR_INVALID_ARGUMENT);
    memcpy(big, SIG " ", strlen(SIG) + 1);
    CHECK_EQ_INT(verify(SECRET, MSG_ID, TS, big), SA_ERR_INVALID_ARGUMENT);
    /* many entries within the bound: the valid last one still counts */
    {
        size_t off = 0;
        while (off + strlen(BAD1) + 1 + strlen(SIG) + 1 < 8000) {
            memcpy(big + off, BAD1 " ", strlen(BAD1) + 1);
            off += strlen(BAD1) + 1;
        }
        memcpy(big + off, SIG, strlen(SIG) + 1);
        CHECK_EQ_INT(verify(SECRET, MSG_ID, TS, big), SA_OK);
    }
    free(big);
}

TEST(empty_and_huge_body)
{
    size_t i, n = (size_t)4 << 20;
    unsigned char *body;
    CHECK_EQ_INT(sa_webhook_verify(SECRET, "msg_empty", TS, SIG_EMPTY, NULL,
                                   0, 0, NOW, err, sizeof err),
                 SA_OK);
    CHECK_EQ_INT(sa_webhook_verify(SECRET, "msg_empty", TS, SIG_EMPTY, "", 0,
                                   0, NOW, err, sizeof err),
                 SA_OK);
    body = malloc(n);
    REQUIRE(body != NULL);
    for (i = 0; i < n; i++) body[i] = (unsigned char)((i * 31 + 7) & 0xff);
    CHECK_EQ_INT(sa_webhook_verify(SECRET, "msg_big", TS, SIG_BIG, body, n,
                                   0, NOW, err, sizeof err),
                 SA_OK);
    body[n / 2] ^= 1;
    CHECK_EQ_INT(sa_webhook_verify(SECRET, "msg_big", TS, SIG_BIG, body, n,
                                   0, NOW, err, sizeof err),
                 SA_ERR_WEBHOOK_SIGNATURE);
    free(body);
}

TEST(small_errbuf)
{
    char tiny[8];
    CHECK_EQ_INT(sa_webhook_verify(SECRET, MSG_ID, TS, BAD1, BODY,
                                   strlen(BODY), 0, NOW, tiny, sizeof tiny),
                 SA_ERR_WEBHOOK_SIGNATURE);
    CHECK_EQ_INT(strlen(tiny), sizeof tiny - 1);
}

/* ------------------------------------------------------------------ */
/* End to end: the emulator notifies a receiver in this test           */
/* ------------------------------------------------------------------ */

#define RECV_MAX 65536
#define RECV_WAIT_MS 30000

/* A one-request HTTP receiver on 127.0.0.1 (its own thread). */
typedef struct receiver {
    int fd;                 /* listening socket */
    int port;
    char req[RECV_MAX];     /* the request as read, NUL-terminated */
    size_t len;
    size_t head_len;        /* bytes up to and including the blank line */
    int complete;           /* head and Content-Length bytes read */
} receiver;

static int receiver_open(receiver *rv)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    memset(rv, 0, sizeof *rv);
    rv->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (rv->fd < 0) return -1;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(rv->fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(rv->fd, 4) != 0 ||
        getsockname(rv->fd, (struct sockaddr *)&a, &alen) != 0) {
        close(rv->fd);
        return -1;
    }
    rv->port = ntohs(a.sin_port);
    return 0;
}

/* Content-Length of the head in rv->req, or 0. */
static size_t content_length(const receiver *rv)
{
    const char *p = rv->req;
    const char *end = rv->req + rv->head_len;
    while (p && p < end) {
        if (strncasecmp(p, "content-length:", 15) == 0)
            return (size_t)strtoul(p + 15, NULL, 10);
        p = strstr(p, "\r\n");
        if (p) p += 2;
    }
    return 0;
}

/* Read from c until the head and its body are in, the buffer is full,
 * the peer closes or RECV_WAIT_MS passes without data. */
static void receiver_read(receiver *rv, int c)
{
    struct pollfd pfd;
    pfd.fd = c;
    pfd.events = POLLIN;
    while (rv->len < RECV_MAX - 1 && poll(&pfd, 1, RECV_WAIT_MS) == 1) {
        ssize_t n = read(c, rv->req + rv->len, RECV_MAX - 1 - rv->len);
        char *blank;
        if (n <= 0) break;
        rv->len += (size_t)n;
        rv->req[rv->len] = '\0';
        blank = strstr(rv->req, "\r\n\r\n");
        if (!blank) continue;
        rv->head_len = (size_t)(blank - rv->req) + 4;
        if (rv->len >= rv->head_len + content_length(rv)) {
            rv->complete = 1;
            break;
        }
    }
}

static void *receiver_main(void *arg)
{
    static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
                             "Connection: close\r\n\r\n";
    receiver *rv = arg;
    struct pollfd pfd;
    int c;
    pfd.fd = rv->fd;
    pfd.events = POLLIN;
    if (poll(&pfd, 1, RECV_WAIT_MS) != 1) return NULL;
    c = accept(rv->fd, NULL, NULL);
    if (c < 0) return NULL;
    receiver_read(rv, c);
    if (write(c, ok, sizeof ok - 1) < 0) rv->complete = 0;
    close(c);
    return NULL;
}

/* The value of header `name` in the received head, copied to out. */
static int header_value(const receiver *rv, const char *name, char *out,
                        size_t outlen)
{
    const char *p = strstr(rv->req, "\r\n");
    size_t nlen = strlen(name);
    while (p && (size_t)(p - rv->req) + 2 < rv->head_len) {
        p += 2;
        if (strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            const char *v = p + nlen + 1, *e;
            size_t n;
            while (*v == ' ') v++;
            e = strstr(v, "\r\n");
            n = e ? (size_t)(e - v) : strlen(v);
            if (n >= outlen) return -1;
            memcpy(out, v, n);
            out[n] = '\0';
            return 0;
        }
        p = strstr(p, "\r\n");
    }
    return -1;
}

/* Run one SD job to its end on the emulator; returns the job or NULL. */
static sa_job *run_one_job(sa_client **cp, const emu *e)
{
    static const char *const actions[] = {"wrinkle"};
    sa_client_options o;
    sa_request r;
    sa_job *j = NULL;
    sa_client_options_init(&o);
    o.api_key = EMU_KEY;
    o.base_url = e->base_url;
    o.poll_interval_ms = 50;
    o.rate_limit = 0;
    if (sa_client_new(cp, &o, err, sizeof err) != SA_OK) return NULL;
    sa_request_init(&r);
    r.file_path = SA_FIXTURES "/portrait_sd.jpg";
    r.actions = actions;
    r.n_actions = 1;
    if (sa_client_submit(*cp, &r, &j) != SA_OK) return NULL;
    sa_job_wait(j, 20000);
    return j;
}

/* webhooks_sent is counted once the emulator has read our answer. */
static long wait_counter(const emu *e, const char *name, long want)
{
    long v = -1;
    int i;
    for (i = 0; i < 100; i++) {
        v = emu_counter(e, name);
        if (v >= want) break;
        usleep(20000);
    }
    return v;
}

static void check_delivery(receiver *rv, const sa_job *j)
{
    char id[256], ts[32], sig[512], ctype[64], expect_id[256];
    const char *body = rv->req + rv->head_len;
    size_t blen = rv->len - rv->head_len;

    CHECK(strncmp(rv->req, "POST /hook HTTP/1.1\r\n", 21) == 0);
    REQUIRE(header_value(rv, "webhook-id", id, sizeof id) == 0);
    REQUIRE(header_value(rv, "webhook-timestamp", ts, sizeof ts) == 0);
    REQUIRE(header_value(rv, "webhook-signature", sig, sizeof sig) == 0);
    REQUIRE(header_value(rv, "content-type", ctype, sizeof ctype) == 0);
    CHECK_STR(ctype, "application/json");
    snprintf(expect_id, sizeof expect_id, "msg_%s:%s", sa_job_task_id(j), ts);
    CHECK_STR(id, expect_id);
    CHECK(strstr(body, sa_job_task_id(j)) != NULL);
    CHECK(strstr(body, "\"task_status\": \"success\"") != NULL ||
          strstr(body, "\"task_status\":\"success\"") != NULL);
    /* now_s = 0: the delivery is fresh */
    CHECK_EQ_INT(sa_webhook_verify(SECRET, id, ts, sig, body, blen, 0, 0,
                                   err, sizeof err),
                 SA_OK);
    CHECK_STR(err, "");
    CHECK_EQ_INT(sa_webhook_verify(SPEC_SECRET, id, ts, sig, body, blen, 0,
                                   0, err, sizeof err),
                 SA_ERR_WEBHOOK_SIGNATURE);
    rv->req[rv->head_len + blen / 2] ^= 1;
    CHECK_EQ_INT(sa_webhook_verify(SECRET, id, ts, sig, body, blen, 0, 0,
                                   err, sizeof err),
                 SA_ERR_WEBHOOK_SIGNATURE);
}

/* The one reading of a verified body (every binding's): a task
 * notification, or a refusal. */
TEST(parse_notification)
{
    static const struct {
        const char *body;
        int rc;
    } refused[] = {
        {"", SA_ERR_PROTOCOL},
        {"[1,2]", SA_ERR_PROTOCOL},
        {"{}", SA_ERR_PROTOCOL},
        {"{\"data\":[1]}", SA_ERR_PROTOCOL},
        {"{\"data\":{}}", SA_ERR_PROTOCOL},
        {"{\"data\":{\"task_id\":5}}", SA_ERR_PROTOCOL},
        {"{\"data\":{\"task_id\":\"\"}}", SA_ERR_PROTOCOL},
        {"{\"data\":{\"task_id\":\"a\\u0000b\"}}", SA_ERR_PROTOCOL},
        {"{\"data\":{\"task_id\":\"a b\"}}", SA_ERR_PROTOCOL},
        {"{\"data\":{\"task_id\":\"..\"}}", SA_ERR_PROTOCOL},
        {"{\"data\":{\"task_id\":\"\xff\"}}", SA_ERR_PROTOCOL},
        {"{\"data\":{\"task_id\":\"t\",\"x\":\"\xed\xa0\x80\"}}",
         SA_ERR_PROTOCOL},
        {"{\"data\":{\"task_id\":\"t\"}} trailing", SA_ERR_PROTOCOL},
    };
    const char *full = "{\"created_at\":1761112848,\"data\":{\"task_id\":"
                       "\"T-1_a/b+c=\",\"task_status\":\"success\"}}";
    const char *bare = "{\"data\":{\"task_id\":\"T\",\"task_status\":1},"
                       "\"created_at\":1.5}";
    char *id = NULL, *st = NULL, ebuf[256], deep[200];
    int64_t at = 0;
    size_t i;

    CHECK_EQ_INT(sa_webhook_parse(full, strlen(full), &id, &st, &at, ebuf,
                                  sizeof ebuf),
                 SA_OK);
    CHECK_STR(id, "T-1_a/b+c=");
    CHECK_STR(st, "success");
    CHECK_EQ_INT(at, 1761112848);
    sa_free(id);
    sa_free(st);
    /* task_status and created_at are optional */
    CHECK_EQ_INT(sa_webhook_parse(bare, strlen(bare), &id, &st, &at, ebuf,
                                  sizeof ebuf),
                 SA_OK);
    CHECK_STR(id, "T");
    CHECK(st == NULL);
    CHECK(at == INT64_MIN);
    sa_free(id);
    for (i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        id = st = (char *)1;
        if (sa_webhook_parse(refused[i].body, strlen(refused[i].body), &id,
                             &st, &at, ebuf, sizeof ebuf) != refused[i].rc)
            HARNESS_FAIL("row %zu accepted", i);
        CHECK(id == NULL && st == NULL && at == INT64_MIN);
        CHECK(strstr(ebuf, "not a task notification") != NULL);
    }
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    CHECK_EQ_INT(sa_webhook_parse(deep, 200, &id, &st, &at, ebuf, sizeof ebuf),
                 SA_ERR_PROTOCOL);
    CHECK(strstr(ebuf, "too deep") != NULL);
    CHECK_EQ_INT(sa_webhook_parse(deep, SA_WEBHOOK_BODY_MAX + 1, &id, &st,
                                  &at, ebuf, sizeof ebuf),
                 SA_ERR_LIMIT);
    CHECK_EQ_INT(sa_webhook_parse(NULL, 1, &id, &st, &at, ebuf, sizeof ebuf),
                 SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(sa_webhook_parse("{}", 2, NULL, &st, &at, ebuf, sizeof ebuf),
                 SA_ERR_INVALID_ARGUMENT);
}

TEST(emulator_delivers_verifiable_webhook)
{
    receiver *rv = malloc(sizeof *rv);
    char flags[512];
    pthread_t t;
    sa_client *c = NULL;
    sa_job *j;
    emu e;

    REQUIRE(rv != NULL);
    if (receiver_open(rv) != 0) {
        free(rv);
        REQUIRE(!"receiver socket");
    }
    snprintf(flags, sizeof flags,
             "--task-seconds 0.1 --rate-limit off --webhook-url "
             "http://127.0.0.1:%d/hook --webhook-secret %s",
             rv->port, SECRET);
    if (emu_start(&e, flags) != 0 ||
        pthread_create(&t, NULL, receiver_main, rv) != 0) {
        emu_stop(&e);
        close(rv->fd);
        free(rv);
        REQUIRE(!"emulator and receiver started");
    }
    j = run_one_job(&c, &e);
    pthread_join(t, NULL);
    close(rv->fd);
    CHECK(j != NULL);
    if (j) CHECK_EQ_INT(sa_job_status(j), SA_OK);
    CHECK(rv->complete);
    if (j && rv->complete) check_delivery(rv, j);
    CHECK_EQ_INT(wait_counter(&e, "webhooks_sent", 1), 1);
    CHECK_EQ_INT(emu_counter(&e, "webhooks_failed"), 0);
    sa_job_free(j);
    sa_client_free(c);
    emu_stop(&e);
    free(rv);
}

int main(void)
{
    if (sa_global_init() != SA_OK) return 1;
    RUN(spec_example);
    RUN(project_vector);
    RUN(documented_example_body);
    RUN(several_signatures);
    RUN(only_invalid_signatures);
    RUN(other_versions_ignored);
    RUN(wrong_secret_or_tampered);
    RUN(timestamp_tolerance);
    RUN(malformed_secret);
    RUN(missing_or_malformed_headers);
    RUN(oversized_headers);
    RUN(empty_and_huge_body);
    RUN(small_errbuf);
    RUN(parse_notification);
    RUN(emulator_delivers_verifiable_webhook);
    sa_global_cleanup();
    return harness_report();
}
