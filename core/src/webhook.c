/* webhook.c - sa_webhook_verify: the Standard Webhooks signature check.
 *
 * Sa_webhook_verify: the Standard Webhooks signature check
 * (HMAC-SHA256) for Perfect Corp's task notifications (API.md section 12).
 *
 * Signed content: "<webhook-id>.<webhook-timestamp>.<raw body>", keyed with
 * the base64-decoded secret ("whsec_<base64>"; a secret without the
 * "whsec_" prefix is accepted as bare base64, like the Standard Webhooks
 * libraries do).  The body is fed to the MAC in place, so nothing is
 * allocated for it and it is never re-serialised.  The computed MAC is
 * compared in constant time with every "v1,<base64>" entry of the
 * space-separated signature header; other versions ("v1a,...") are
 * ignored.  The signature is checked before the timestamp, so STALE means
 * "authentic but outside the tolerance" (a replay or a wrong clock).
 *
 * The function is pure apart from one clock read: now_s == 0 reads
 * time(NULL).  No state is kept between calls.
 *
 * sa_webhook_parse then reads the notification out of the verified body,
 * the one reading every binding uses (Python's verify_webhook and Lua's
 * verify_webhook agree because neither reads the body itself).
 */
#include "sa_internal.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define WH_PREFIX "whsec_"
#define WH_MAC_LEN 32              /* SHA-256 */
#define WH_KEY_MAX 256             /* decoded secret bytes */
#define WH_SECRET_MAX 1024         /* secret string, prefix included */
#define WH_ID_MAX 1024             /* webhook-id characters */
#define WH_TS_DIGITS 18            /* fits int64 without overflow checks */
#define WH_SIG_HEADER_MAX 8192     /* webhook-signature characters */
#define WH_DEFAULT_TOLERANCE 300L  /* seconds, both ways */

/* The 6-bit value of a standard base64 character, or -1. */
static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Decode n characters of standard base64 into out (at most cap bytes).
 * Padding is optional; whitespace, other alphabets and non-zero unused
 * bits are refused.  Returns the byte count, or -1 when malformed or
 * longer than cap. */
static long b64_decode(const char *s, size_t n, unsigned char *out,
                       size_t cap)
{
    size_t i, o = 0;
    unsigned acc = 0;
    int bits = 0;

    if (n % 4 == 0 && n > 0 && s[n - 1] == '=') {
        n--;
        if (s[n - 1] == '=') n--;
    }
    if (n % 4 == 1) return -1;
    for (i = 0; i < n; i++) {
        int v = b64_value((unsigned char)s[i]);
        if (v < 0) return -1;
        acc = ((acc << 6) | (unsigned)v) & 0x3fffu;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap) return -1;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    if (acc & ((1u << bits) - 1u)) return -1; /* non-canonical tail */
    return (long)o;
}

/* The key bytes of "whsec_<base64>" (or bare base64).  Returns the key
 * length, or -1 (with a message that never shows the secret). */
static long decode_secret(const char *secret, unsigned char *key,
                          char *errbuf, size_t errbuf_len)
{
    size_t n = strlen(secret);
    long klen;
    if (n > WH_SECRET_MAX) {
        sa__errf(errbuf, errbuf_len, "webhook secret is longer than %d "
                 "characters; copy it from the API console", WH_SECRET_MAX);
        return -1;
    }
    if (strncmp(secret, WH_PREFIX, sizeof WH_PREFIX - 1) == 0) {
        secret += sizeof WH_PREFIX - 1;
        n -= sizeof WH_PREFIX - 1;
    }
    klen = b64_decode(secret, n, key, WH_KEY_MAX);
    if (klen <= 0) {
        sa__errf(errbuf, errbuf_len, "webhook secret is not \"whsec_\" "
                 "followed by standard base64 (1 to %d bytes); copy it "
                 "from the API console", WH_KEY_MAX);
        return -1;
    }
    return klen;
}

/* Parse webhook-timestamp: 1 to 18 decimal digits.  Returns 0 or -1. */
static int parse_timestamp(const char *s, int64_t *out)
{
    int64_t v = 0;
    size_t i;
    for (i = 0; s[i]; i++) {
        if (i >= WH_TS_DIGITS || s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (i == 0) return -1;
    *out = v;
    return 0;
}

/* HMAC-SHA256(key, id "." ts "." body) into mac.  Returns SA_OK or
 * SA_ERR_NOMEM (OpenSSL could not allocate or has no HMAC/SHA-256). */
static int compute_mac(const unsigned char *key, size_t klen,
                       const char *id, const char *ts, const void *body,
                       size_t body_len, unsigned char mac[WH_MAC_LEN])
{
    EVP_MAC *alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = alg ? EVP_MAC_CTX_new(alg) : NULL;
    char digest[] = "SHA256";
    OSSL_PARAM params[2];
    size_t outlen = 0;
    int ok;

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                 digest, 0);
    params[1] = OSSL_PARAM_construct_end();
    ok = ctx != NULL && EVP_MAC_init(ctx, key, klen, params) == 1 &&
         EVP_MAC_update(ctx, (const unsigned char *)id, strlen(id)) == 1 &&
         EVP_MAC_update(ctx, (const unsigned char *)".", 1) == 1 &&
         EVP_MAC_update(ctx, (const unsigned char *)ts, strlen(ts)) == 1 &&
         EVP_MAC_update(ctx, (const unsigned char *)".", 1) == 1 &&
         (body_len == 0 ||
          EVP_MAC_update(ctx, body, body_len) == 1) &&
         EVP_MAC_final(ctx, mac, &outlen, WH_MAC_LEN) == 1 &&
         outlen == WH_MAC_LEN;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(alg);
    return ok ? SA_OK : SA_ERR_NOMEM;
}

/* Compare mac with every "v1,<base64>" entry of the header, in constant
 * time per entry and without stopping at the first match.  Counts the v1
 * entries in *n_v1.  Returns 1 when one matches. */
static int match_signatures(const char *header,
                            const unsigned char mac[WH_MAC_LEN], int *n_v1)
{
    const char *p = header;
    int found = 0;
    *n_v1 = 0;
    while (*p) {
        size_t len = strcspn(p, " ");
        if (len > 3 && memcmp(p, "v1,", 3) == 0) {
            unsigned char sig[WH_MAC_LEN];
            long slen = b64_decode(p + 3, len - 3, sig, sizeof sig);
            (*n_v1)++;
            if (slen == WH_MAC_LEN &&
                CRYPTO_memcmp(sig, mac, WH_MAC_LEN) == 0)
                found = 1;
        }
        p += len;
        p += strspn(p, " ");
    }
    return found;
}

/* 1 when the argument `what` is there and at most max bytes long (0: any
 * length), else 0 with the message. */
static int present(const char *v, size_t max, const char *what,
                   char *errbuf, size_t errbuf_len)
{
    if (!v || !*v) {
        sa__errf(errbuf, errbuf_len, "%s is missing", what);
        return 0;
    }
    if (max && strlen(v) > max) {
        sa__errf(errbuf, errbuf_len, "%s is longer than %zu characters", what,
                 max);
        return 0;
    }
    return 1;
}

/* SA_OK when every argument is present and in range (message otherwise). */
static int check_args(const char *secret, const char *msg_id,
                      const char *msg_timestamp, const char *msg_signature,
                      const void *body, size_t body_len, long tolerance_s,
                      int64_t now_s, char *errbuf, size_t errbuf_len)
{
    if (!present(secret, 0, "webhook secret", errbuf, errbuf_len)
        || !present(msg_id, WH_ID_MAX, "webhook-id header", errbuf,
                    errbuf_len)
        || !present(msg_timestamp, 0, "webhook-timestamp header", errbuf,
                    errbuf_len)
        || !present(msg_signature, WH_SIG_HEADER_MAX, "webhook-signature "
                    "header", errbuf, errbuf_len))
        return SA_ERR_INVALID_ARGUMENT;
    if (!body && body_len > 0) {
        sa__errf(errbuf, errbuf_len, "body is NULL but body_len is %zu",
                 body_len);
    } else if (tolerance_s < 0 || now_s < 0) {
        sa__errf(errbuf, errbuf_len, "tolerance_s and now_s must be >= 0 "
                 "(0 = the defaults)");
    } else {
        return SA_OK;
    }
    return SA_ERR_INVALID_ARGUMENT;
}

int sa_webhook_verify(const char *secret, const char *msg_id,
                      const char *msg_timestamp, const char *msg_signature,
                      const void *body, size_t body_len, long tolerance_s,
                      int64_t now_s, char *errbuf, size_t errbuf_len)
{
    unsigned char key[WH_KEY_MAX], mac[WH_MAC_LEN];
    int64_t ts, now, age;
    long klen;
    int rc, n_v1 = 0, valid;

    if (errbuf && errbuf_len) errbuf[0] = '\0';
    rc = check_args(secret, msg_id, msg_timestamp, msg_signature, body,
                    body_len, tolerance_s, now_s, errbuf, errbuf_len);
    if (rc != SA_OK) return rc;
    if (parse_timestamp(msg_timestamp, &ts) != 0) {
        sa__errf(errbuf, errbuf_len, "webhook-timestamp is not Unix "
                 "seconds (1 to %d decimal digits)", WH_TS_DIGITS);
        return SA_ERR_INVALID_ARGUMENT;
    }
    klen = decode_secret(secret, key, errbuf, errbuf_len);
    if (klen < 0) return SA_ERR_INVALID_ARGUMENT;
    rc = compute_mac(key, (size_t)klen, msg_id, msg_timestamp, body,
                     body_len, mac);
    OPENSSL_cleanse(key, sizeof key);
    if (rc != SA_OK) {
        sa__errf(errbuf, errbuf_len, "HMAC-SHA256 failed in OpenSSL (out "
                 "of memory or no default provider)");
        return rc;
    }
    valid = match_signatures(msg_signature, mac, &n_v1);
    if (!valid) {
        if (n_v1 == 0)
            sa__errf(errbuf, errbuf_len, "webhook-signature has no \"v1,\" "
                     "entry");
        else
            sa__errf(errbuf, errbuf_len, "none of the %d v1 signatures "
                     "matches: wrong secret, or the body or headers were "
                     "changed (pass the raw body bytes)", n_v1);
        return SA_ERR_WEBHOOK_SIGNATURE;
    }
    now = now_s ? now_s : (int64_t)time(NULL);
    age = now - ts; /* both in [0, 2^63): no overflow */
    if (tolerance_s == 0) tolerance_s = WH_DEFAULT_TOLERANCE;
    if (age > tolerance_s || -age > tolerance_s) {
        sa__errf(errbuf, errbuf_len, "webhook-timestamp is %lld s %s now, "
                 "outside the tolerance of %ld s (replay or wrong clock)",
                 (long long)(age < 0 ? -age : age),
                 age < 0 ? "ahead of" : "behind", tolerance_s);
        return SA_ERR_WEBHOOK_STALE;
    }
    return SA_OK;
}

/* ------------------------------------------------------------------ */
/* The notification in a verified body                                */
/* ------------------------------------------------------------------ */

#define WH_JSON_DEPTH 32

/* 1 when s[0..n) is well-formed UTF-8 (no overlong forms, no surrogates,
 * nothing above U+10FFFF). */
static int utf8_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t k, len;
        unsigned long cp;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
            cp = c & 0x1Fu;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            cp = c & 0x0Fu;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            cp = c & 0x07u;
        } else {
            return 0;
        }
        if (n - i < len) return 0;
        for (k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3Fu);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
            return 0;
        i += len;
    }
    return 1;
}

/* A copy of a string for the caller (sa_free), or NULL with *nomem. */
static char *caller_copy(const char *s, int *nomem)
{
    char *copy = sa__strdup(NULL, s);
    if (!copy) *nomem = 1;
    return copy;
}

static int parse_fail(char *errbuf, size_t errbuf_len, const char *why)
{
    sa__errf(errbuf, errbuf_len, "the webhook body is not a task "
             "notification: %s", why);
    return SA_ERR_PROTOCOL;
}

int sa_webhook_parse(const void *body, size_t body_len, char **task_id,
                     char **task_status, int64_t *created_at, char *errbuf,
                     size_t errbuf_len)
{
    const cJSON *data, *id, *status, *created;
    cJSON *root = NULL;
    double v;
    int rc, nomem = 0;

    if (errbuf && errbuf_len) errbuf[0] = '\0';
    if (!task_id || !task_status || !created_at || (!body && body_len)) {
        sa__errf(errbuf, errbuf_len, "body, task_id, task_status and "
                 "created_at are required");
        return SA_ERR_INVALID_ARGUMENT;
    }
    *task_id = *task_status = NULL;
    *created_at = INT64_MIN;
    if (body_len > SA_WEBHOOK_BODY_MAX) {
        sa__errf(errbuf, errbuf_len, "the webhook body (%zu bytes) is larger "
                 "than a task notification (at most %d)", body_len,
                 SA_WEBHOOK_BODY_MAX);
        return SA_ERR_LIMIT;
    }
    if (!utf8_ok(body, body_len))
        return parse_fail(errbuf, errbuf_len, "it is not UTF-8");
    rc = sa__json_parse(body, body_len, WH_JSON_DEPTH, &root);
    if (rc == SA_ERR_NOMEM) {
        sa__errf(errbuf, errbuf_len, "out of memory");
        return rc;
    }
    if (rc != SA_OK)
        return parse_fail(errbuf, errbuf_len, rc == SA_ERR_LIMIT
                          ? "it is nested too deep" : "it is not JSON (or a "
                            "string in it holds a NUL)");
    data = sa__json_get(root, "data");
    id = sa__json_get(data, "task_id");
    if (!cJSON_IsObject(root) || !cJSON_IsObject(data) ||
        !cJSON_IsString(id) ||
        !sa__proto_id_ok(id->valuestring, strlen(id->valuestring))) {
        cJSON_Delete(root);
        return parse_fail(errbuf, errbuf_len, "no data.task_id string of id "
                          "characters");
    }
    status = sa__json_get(data, "task_status");
    created = sa__json_get(root, "created_at");
    *task_id = caller_copy(id->valuestring, &nomem);
    if (cJSON_IsString(status))
        *task_status = caller_copy(status->valuestring, &nomem);
    if (cJSON_IsNumber(created) && sa__json_as_number(created, &v) &&
        v == floor(v) && fabs(v) < 9007199254740992.0)
        *created_at = (int64_t)v;
    cJSON_Delete(root);
    if (nomem) {
        sa_free(*task_id);
        sa_free(*task_status);
        *task_id = *task_status = NULL;
        *created_at = INT64_MIN;
        sa__errf(errbuf, errbuf_len, "out of memory");
        return SA_ERR_NOMEM;
    }
    return SA_OK;
}
