/*
 * test_util.c - util.c (allocation, buffers, redaction, URLs), status.c
 * (names, messages, classification) and json.c (validating parse, depth
 * limit, tolerant accessors, raw-text locator, writer).
 */
#include "harness.h"
#include "sa_internal.h"
#include "unit_helpers.h"

#include <pthread.h>

/* ---------------------------------------------------------------- */
/* util                                                              */
/* ---------------------------------------------------------------- */

TEST(alloc_through_mem)
{
    counting c = {0, 0};
    sa_mem mem = counting_mem(&c);
    char *s = sa__strdup(&mem, "hello");
    char *t = sa__strndup(&mem, "hello world", 5);
    char *u = sa__strndup(&mem, "hi", 10);
    int *z = sa__calloc(&mem, 4, sizeof(int));
    CHECK_STR(s, "hello");
    CHECK_STR(t, "hello");
    CHECK_STR(u, "hi");
    REQUIRE(z != NULL);
    CHECK_EQ_INT(z[0] + z[1] + z[2] + z[3], 0);
    CHECK(sa__strdup(&mem, NULL) == NULL);
    CHECK(sa__calloc(&mem, SIZE_MAX / 2, 4) == NULL); /* overflow */
    sa__free(&mem, s);
    sa__free(&mem, t);
    sa__free(&mem, u);
    sa__free(&mem, z);
    sa__free(&mem, NULL);
    CHECK_EQ_INT(c.allocs, 4);
    CHECK_EQ_INT(c.frees, 4);
}

TEST(buf_append_limit_steal)
{
    sa__buf b;
    char *s;
    int i;
    sa__buf_init(&b, NULL, 10);
    CHECK_EQ_INT(sa__buf_append(&b, "12345", 5), SA_OK);
    CHECK_EQ_INT(sa__buf_appendf(&b, "%d%s", 67, "8"), SA_OK);
    CHECK_STR(b.data, "12345678");
    CHECK_EQ_INT(sa__buf_append(&b, "abc", 3), SA_ERR_LIMIT);
    CHECK_STR(b.data, "12345678"); /* unchanged */
    CHECK_EQ_INT(sa__buf_appendf(&b, "%s", "abc"), SA_ERR_LIMIT);
    CHECK_EQ_INT(sa__buf_append(&b, "90", 2), SA_OK);
    CHECK_EQ_INT(b.len, 10);
    sa__buf_reset(&b);
    CHECK_EQ_INT(b.len, 0);
    CHECK_STR(b.data, "");
    sa__buf_free(&b);

    sa__buf_init(&b, NULL, 0);
    for (i = 0; i < 1000; i++) CHECK_EQ_INT(sa__buf_append(&b, "xy", 2), SA_OK);
    CHECK_EQ_INT(b.len, 2000);
    CHECK_EQ_INT(strlen(b.data), 2000);
    s = sa__buf_steal(&b);
    CHECK(b.data == NULL && b.len == 0);
    CHECK_EQ_INT(strlen(s), 2000);
    free(s);

    sa__buf_init(&b, NULL, 0);
    s = sa__buf_steal(&b); /* nothing appended: an empty string */
    CHECK_STR(s, "");
    free(s);
}

TEST(errf_truncates)
{
    char small[6];
    sa__errf(small, sizeof small, "%s", "abcdefghij");
    CHECK_STR(small, "abcde");
    sa__errf(NULL, 0, "%d", 1); /* tolerated */
    sa__errf(small, 0, "%d", 1);
}

/* A text, the secret to hide in it, what sa__redact or sa__scrub makes
 * of it. */
typedef struct hide_case {
    const char *in, *secret, *want;
} hide_case;

TEST(redact_secret_and_query)
{
    static const hide_case cases[] = {
        {"key sk_live_123 and sk_live_123 again", "sk_live_123",
         "key [REDACTED] and [REDACTED] again"},
        {"PUT https://s3.example.com/bucket/obj?X-Amz-Signature=abc&x=1"
         " failed; see HTTP://h/p?q=1#frag\nnext?", NULL,
         "PUT https://s3.example.com/bucket/obj?[...] failed; see "
         "HTTP://h/p?[...]\nnext?"},
        {"url=\"https://a/b?token=K\" key=K", "K",
         "url=\"https://a/b?[...]\" key=[REDACTED]"},
        {"Bearer SECRET in path https://h/SECRET/x", "SECRET",
         "Bearer [REDACTED] in path https://h/[REDACTED]/x"},
        {NULL, "x", ""},
        {"no secret given", "", "no secret given"}};
    char out[256];
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sa__redact(out, sizeof out, cases[i].in, cases[i].secret);
        CHECK_STR(out, cases[i].want);
    }
    /* truncation never shows part of the secret */
    sa__redact(out, 8, "ab SECRETSECRET", "SECRETSECRET");
    CHECK_STR(out, "ab [RED");
    CHECK(strstr(out, "SECRET") == NULL);
}

TEST(scrub_secret_whole_and_cut)
{
    static const char key[] = "sk-live-0123456789abcdef";
    static const hide_case cases[] = {
        /* what a bounded copy left of it: 8 or more of its first bytes */
        {"key sk-live-01", key, "key [REDACTED]"},
        {"id sk-live-0123 x-request-id 7", key, "id [REDACTED] x-request-id 7"},
        /* at the very end of a text (a bounded message cut it), 4 suffice */
        {"HTTP 401: Bearer sk-l", key, "HTTP 401: Bearer [REDACTED]"},
        {"HTTP 401: Bearer sk-", key, "HTTP 401: Bearer sk-"},
        /* shorter runs are ordinary text */
        {"sk-live is a prefix", key, "sk-live is a prefix"},
        {"sk-live- is 8 bytes of it", key, "[REDACTED] is 8 bytes of it"},
        /* URLs stay whole: only the key goes */
        {"https://h/x?sig=sk-live-0123456789abcdef&a=1", key,
         "https://h/x?sig=[REDACTED]&a=1"},
        /* a short key: only whole occurrences */
        {"K and KK", "K", "[REDACTED] and [REDACTED][REDACTED]"},
        /* nothing to hide */
        {"plain", NULL, "plain"},
        {"plain", "", "plain"}};
    char out[256], *dup;
    size_t i;

    /* the whole key, "Bearer <key>", several times */
    CHECK(sa__has_secret("Invalid API key Bearer sk-live-0123456789abcdef",
                         key));
    dup = sa__scrub_dup(NULL, "Invalid API key Bearer "
                        "sk-live-0123456789abcdef (sk-live-0123456789abcdef)",
                        key);
    REQUIRE(dup != NULL);
    CHECK_STR(dup, "Invalid API key Bearer [REDACTED] ([REDACTED])");
    free(dup);
    /* the length sa__scrub writes for the first case */
    CHECK_EQ_INT(sa__scrub_len("key sk-live-01", key), 14);
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sa__scrub(out, cases[i].in, cases[i].secret);
        CHECK_STR(out, cases[i].want);
    }
    /* shorter runs are ordinary text */
    CHECK(!sa__has_secret("sk-live is a prefix", key));
    CHECK(!sa__has_secret(NULL, key));
    CHECK(sa__scrub_dup(NULL, NULL, key) == NULL);
    CHECK_EQ_INT(sa__scrub_len(NULL, key), 0);
    /* the log/message redaction hides cut keys too */
    sa__redact(out, sizeof out, "HTTP 401: Bearer sk-live-0123456 x", key);
    CHECK_STR(out, "HTTP 401: Bearer [REDACTED] x");
}

TEST(url_loopback)
{
    static const char *const loopback[] = {
        "http://localhost",
        "http://LOCALHOST:8080/x",
        "http://127.0.0.1:5000",
        "http://127.255.3.4/path?q",
        "http://[::1]:8080/",
        "https://[::ffff:127.0.0.1]/",
        "http://user:pw@127.0.0.1:1/",
        "http://localhost./"};
    static const char *const not_loopback[] = {
        /* tricks */
        "http://127.0.0.1.evil.com/",
        "http://localhost.evil.com/",
        "http://127.0.0.1@evil.com/",
        "http://127.0.0.1:80@evil.com/",
        "http://evil.com/127.0.0.1",
        "http://evil.com?h=localhost",
        "http://evil.com#@localhost",
        "http://[::2]/",
        "http://[::1]evil/",
        "http://128.0.0.1/",
        "http://127.1/", /* not strict */
        "http://localhost:99999/",
        "http://localhost:8x/",
        "localhost:80",
        "http://",
        ""};
    size_t i;
    for (i = 0; i < sizeof loopback / sizeof loopback[0]; i++)
        if (sa__url_is_loopback(loopback[i]) != 1)
            HARNESS_FAIL("not taken for loopback: %s", loopback[i]);
    for (i = 0; i < sizeof not_loopback / sizeof not_loopback[0]; i++)
        if (sa__url_is_loopback(not_loopback[i]) != 0)
            HARNESS_FAIL("taken for loopback: %s", not_loopback[i]);
    CHECK_EQ_INT(sa__url_is_loopback(NULL), 0);
}

TEST(url_scheme_and_encode)
{
    char *e;
    CHECK_EQ_INT(sa__url_scheme("http://x"), 1);
    CHECK_EQ_INT(sa__url_scheme("HTTPS://x"), 2);
    CHECK_EQ_INT(sa__url_scheme("ftp://x"), 0);
    CHECK_EQ_INT(sa__url_scheme("http:/x"), 0);
    CHECK_EQ_INT(sa__url_scheme(NULL), 0);
    e = sa__urlencode(NULL, "Sa_Ga-q.p~D/+=? \xc3\xa9");
    CHECK_STR(e, "Sa_Ga-q.p~D%2F%2B%3D%3F%20%C3%A9");
    free(e);
    CHECK(sa__urlencode(NULL, NULL) == NULL);
}

TEST(rand_sequence)
{
    uint64_t s = 42, t = 42, z = 0;
    uint64_t a = sa__rand(&s), b = sa__rand(&s);
    CHECK(a != b);
    CHECK_EQ_INT(sa__rand(&t) == a, 1); /* deterministic */
    CHECK(sa__rand(&z) != 0);            /* zero state replaced */
    CHECK(z != 0);
}

/* ---------------------------------------------------------------- */
/* status                                                            */
/* ---------------------------------------------------------------- */

/* A status code and its name; a status code and whether it is in a class. */
typedef struct code_name {
    int code;
    const char *name;
} code_name;

typedef struct code_flag {
    int code, yes;
} code_flag;

TEST(status_names_messages)
{
    static const code_name names[] = {
        {SA_OK, "ok"}, {SA_ERR_NOMEM, "nomem"},
        {SA_ERR_INVALID_ARGUMENT, "invalid_argument"},
        {SA_ERR_UNKNOWN_ACTION, "unknown_action"},
        {SA_ERR_ENGINE, "engine"}, {SA_ERR_TASK_EXPIRED, "task_expired"},
        {SA_ERR_WAIT_TIMEOUT, "wait_timeout"},
        {SA_ERR_IMAGE_TOO_SMALL, "image_too_small"},
        {-999, "unknown"}, {1, "unknown"},
        {SA_ERR_CALLBACK, "callback"}, {SA_ERR_ZIP, "zip"},
        {SA_ERR_URL_EXPIRED, "url_expired"},
        {SA_ERR_DOWNLOAD, "download"},
        {SA_ERR_IMAGE_DECODE, "image_decode"},
        {SA_ERR_WEBHOOK_SIGNATURE, "webhook_signature"},
        {SA_ERR_WEBHOOK_STALE, "webhook_stale"}};
    size_t i;
    int s;
    for (i = 0; i < sizeof names / sizeof names[0]; i++)
        CHECK_STR(sa_status_name(names[i].code), names[i].name);
    CHECK(strstr(sa_strerror(SA_ERR_AMBIGUOUS), "may be billed") != NULL);
    CHECK_STR(sa_strerror(-999), "unknown status code");
    /* every code of the enum has its own name and a message */
    for (s = 0; s > SA_ERR__LAST; s--) {
        const char *n = sa_status_name(s);
        if (strcmp(n, "unknown") == 0) {
            CHECK_STR(sa_strerror(s), "unknown status code");
            continue;
        }
        CHECK(strcmp(sa_strerror(s), "unknown status code") != 0);
    }
    CHECK(strstr(sa_strerror(SA_ERR_WEBHOOK_SIGNATURE), "secret") != NULL);
}

TEST(status_classes)
{
    static const code_flag retryable_of[] = {
        {SA_ERR_TRANSPORT, 1}, {SA_ERR_TIMEOUT, 1},
        {SA_ERR_RATE_LIMITED, 1}, {SA_ERR_SERVER, 1},
        {SA_ERR_TASK_TIMEOUT, 0}, {SA_ERR_AMBIGUOUS, 0},
        {SA_ERR_DOWNLOAD, 1}, {SA_ERR_URL_EXPIRED, 0},
        {SA_ERR_ZIP, 0}, {SA_ERR_WEBHOOK_SIGNATURE, 0},
        {SA_ERR_WEBHOOK_STALE, 0}};
    static const code_flag validation_of[] = {
        {SA_ERR_UNKNOWN_ACTION, 1}, {SA_ERR_INSECURE, 1},
        {SA_ERR_INIT, 0}, {SA_ERR_AUTH, 0}};
    size_t i;
    int s, retryable = 0, validation = 0;
    for (s = 0; s > SA_ERR__LAST; s--) {
        retryable += sa_status_is_retryable(s);
        validation += sa_status_is_validation(s);
    }
    CHECK_EQ_INT(retryable, 5);
    for (i = 0; i < sizeof retryable_of / sizeof retryable_of[0]; i++)
        if (sa_status_is_retryable(retryable_of[i].code) != retryable_of[i].yes)
            HARNESS_FAIL("retryable(%d) != %d", retryable_of[i].code,
                         retryable_of[i].yes);
    CHECK_EQ_INT(validation, 10);
    for (i = 0; i < sizeof validation_of / sizeof validation_of[0]; i++)
        if (sa_status_is_validation(validation_of[i].code)
            != validation_of[i].yes)
            HARNESS_FAIL("validation(%d) != %d", validation_of[i].code,
                         validation_of[i].yes);
}

/* ---------------------------------------------------------------- */
/* json                                                              */
/* ---------------------------------------------------------------- */

static int parse_rc(const char *text, int depth)
{
    cJSON *root = NULL;
    int rc = sa__json_parse(text, strlen(text), depth, &root);
    cJSON_Delete(root);
    return rc;
}

TEST(json_valid_and_invalid)
{
    static const char *const good[] = {
        "{}", "[]", "0", "-0.5e+3", "\"x\"", "true", "null",
        " {\"a\" : [1, 2.5, \"s\\n\\u00e9\\ud83d\\ude00\", null, false]} ",
        "\xEF\xBB\xBF{\"bom\":1}", "{\"a\":{\"b\":{}}}", "[[],[[]]]",
        "\"raw\ttab\"", "\"\\u0001\\u0100\\\\u0000\""};
    static const char *const bad[] = {
        "", "   ", "{", "}", "[1,]", "{\"a\":1,}", "{\"a\"}", "{a:1}",
        "[1 2]", "01", "1.", ".5", "+1", "1e", "-", "tru", "nul", "\"abc",
        "\"\\x\"", "\"\\u12\"", "\"\\udc00\"", "\"\\ud800\"",
        "\"\\ud800\\u0041\"", "{} x", "{}{}", "[1]]", "NaN", "Infinity",
        "<html>", "{\"a\":1]", "[1}",
        /* a NUL escape: cJSON would cut the string at it */
        "\"\\u0000\"", "\"TASK\\u0000/../x\"", "{\"k\\u0000\":1}",
        "[\"a\\u0000\"]",
        /* 64 digits: cJSON cannot parse it, the scanner refuses first */
        "1234567890123456789012345678901234567890123456789012345678901234"};
    size_t i;
    for (i = 0; i < sizeof good / sizeof good[0]; i++)
        if (parse_rc(good[i], 64) != SA_OK) HARNESS_FAIL("good %s", good[i]);
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (parse_rc(bad[i], 64) != SA_ERR_PROTOCOL)
            HARNESS_FAIL("bad '%s'", bad[i]);
    /* embedded NUL, in and out of strings */
    {
        cJSON *root = NULL;
        CHECK_EQ_INT(sa__json_parse("\"a\0b\"", 5, 8, &root), SA_ERR_PROTOCOL);
        CHECK_EQ_INT(sa__json_parse("{}\0", 3, 8, &root), SA_ERR_PROTOCOL);
        CHECK_EQ_INT(sa__json_parse(NULL, 0, 8, &root), SA_ERR_PROTOCOL);
        CHECK_EQ_INT(sa__json_parse("{}", 2, 8, NULL),
                     SA_ERR_INVALID_ARGUMENT);
    }
    /* sa__json_nul_only: refused only for a NUL (a whole text that holds
     * one), not for a cut or garbled one */
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (sa__json_nul_only(bad[i], strlen(bad[i]), 64)
            != (strstr(bad[i], "\\u0000") != NULL))
            HARNESS_FAIL("nul_only '%s'", bad[i]);
    for (i = 0; i < sizeof good / sizeof good[0]; i++)
        if (sa__json_nul_only(good[i], strlen(good[i]), 64))
            HARNESS_FAIL("nul_only good '%s'", good[i]);
    CHECK_EQ_INT(sa__json_nul_only("\"a\0b\"", 5, 8), 1);
    CHECK_EQ_INT(sa__json_nul_only("{\"a\\u0000\":[1,2]}", 17, 8), 1);
    CHECK_EQ_INT(sa__json_nul_only("{\"a\\u0000\":[1,2]", 16, 8), 0);
    CHECK_EQ_INT(sa__json_nul_only("{}\0", 3, 8), 0);
    CHECK_EQ_INT(sa__json_nul_only("[[\"\\u0000\"]]", 12, 1), 0);  /* depth */
    CHECK_EQ_INT(sa__json_nul_only(NULL, 0, 8), 0);
}

TEST(json_length_delimited)
{
    /* only len bytes count: the rest of the buffer is never looked at */
    const char text[] = "{\"a\":1}GARBAGE";
    cJSON *root = NULL;
    CHECK_EQ_INT(sa__json_parse(text, 7, 8, &root), SA_OK);
    REQUIRE(root != NULL);
    CHECK_EQ_INT(cJSON_GetObjectItem(root, "a")->valueint, 1);
    cJSON_Delete(root);
    CHECK_EQ_INT(sa__json_parse(text, 6, 8, &root), SA_ERR_PROTOCOL);
    CHECK_EQ_INT(sa__json_parse(text, 8, 8, &root), SA_ERR_PROTOCOL);
}

static char *nested(int depth, char open, char close)
{
    char *s = malloc((size_t)depth * 2 + 1);
    int i;
    for (i = 0; i < depth; i++) {
        s[i] = open;
        s[depth * 2 - 1 - i] = close;
    }
    s[depth * 2] = '\0';
    return s;
}

TEST(json_depth_limit)
{
    char *s = nested(64, '[', ']');
    CHECK_EQ_INT(parse_rc(s, 64), SA_OK);
    CHECK_EQ_INT(parse_rc(s, 63), SA_ERR_LIMIT);
    CHECK_EQ_INT(parse_rc(s, 0), SA_OK); /* default 64 */
    free(s);
    s = nested(65, '[', ']');
    CHECK_EQ_INT(parse_rc(s, 0), SA_ERR_LIMIT);
    free(s);
    /* objects count too, and brackets inside strings do not */
    CHECK_EQ_INT(parse_rc("{\"a\":{\"b\":{\"c\":1}}}", 3), SA_OK);
    CHECK_EQ_INT(parse_rc("{\"a\":{\"b\":{\"c\":1}}}", 2), SA_ERR_LIMIT);
    CHECK_EQ_INT(parse_rc("{\"a\":\"[[[[[[{{{{{\"}", 1), SA_OK);
    /* a deep truncated text is refused as soon as it is too deep */
    s = nested(200000, '[', ']');
    s[200000] = '\0';
    CHECK_EQ_INT(parse_rc(s, 64), SA_ERR_LIMIT);
    CHECK_EQ_INT(parse_rc(s, 100000), SA_ERR_LIMIT); /* capped at 1000 */
    free(s);
    s = nested(1000, '[', ']');
    CHECK_EQ_INT(parse_rc(s, 5000), SA_OK);
    free(s);
}

TEST(json_accessors)
{
    cJSON *root = NULL;
    const char *t = "{\"s\":\"str\",\"n\":12.5,\"ns\":\" 57.33 \",\"z\":null,"
                    "\"b\":true,\"i\":547541,\"big\":1e300,\"neg\":-3,"
                    "\"frac\":1.5,\"bad\":\"12abc\",\"e\":\"1e3\","
                    "\"huge\":18014398509481985,\"hex\":\"0x10\"}";
    const cJSON *z;
    double v = 0;
    char *d;
    int nomem = 7;
    REQUIRE(sa__json_parse(t, strlen(t), 8, &root) == SA_OK);
    CHECK_STR(sa__json_string(root, "s"), "str");
    CHECK(sa__json_string(root, "n") == NULL);
    CHECK(sa__json_string(root, "missing") == NULL);
    CHECK(sa__json_get(root, "z") == NULL); /* null is absent */
    CHECK(sa__json_get(NULL, "z") == NULL);
    z = sa__json_get(root, "s");
    CHECK(sa__json_get(z, "x") == NULL); /* not an object */
    CHECK_EQ_INT(sa__json_number(root, "n", &v), 1);
    CHECK_NEAR(v, 12.5, 0);
    CHECK_EQ_INT(sa__json_number(root, "ns", &v), 1);
    CHECK_NEAR(v, 57.33, 0);
    CHECK_EQ_INT(sa__json_number(root, "e", &v), 1);
    CHECK_NEAR(v, 1000, 0);
    CHECK_EQ_INT(sa__json_number(root, "bad", &v), 0);
    CHECK_EQ_INT(sa__json_number(root, "hex", &v), 0);
    CHECK_EQ_INT(sa__json_number(root, "b", &v), 0);
    CHECK_EQ_INT(sa__json_number(root, "z", &v), 0);
    d = sa__json_dup_scalar(NULL, sa__json_get(root, "i"), &nomem);
    CHECK_STR(d, "547541");
    CHECK_EQ_INT(nomem, 0);
    free(d);
    d = sa__json_dup_scalar(NULL, sa__json_get(root, "neg"), NULL);
    CHECK_STR(d, "-3");
    free(d);
    d = sa__json_dup_scalar(NULL, sa__json_get(root, "s"), NULL);
    CHECK_STR(d, "str");
    free(d);
    CHECK(sa__json_dup_scalar(NULL, sa__json_get(root, "frac"), NULL) == NULL);
    CHECK(sa__json_dup_scalar(NULL, sa__json_get(root, "big"), NULL) == NULL);
    CHECK(sa__json_dup_scalar(NULL, sa__json_get(root, "huge"), NULL) == NULL);
    CHECK(sa__json_dup_scalar(NULL, sa__json_get(root, "b"), NULL) == NULL);
    CHECK(sa__json_dup_scalar(NULL, NULL, NULL) == NULL);
    cJSON_Delete(root);
}

TEST(json_number_strings_exact)
{
    /* numeric strings parse to the same double as the JSON number */
    static const char *const nums[] = {"57.33", "95.34", "0.4", "0.1",
                                       "72.011962890625", "1e-5", "-0.0",
                                       "75.75757575757575", "100", "3.0E2"};
    size_t i;
    for (i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        char text[64];
        cJSON *root = NULL;
        double a = 0, b = 0;
        snprintf(text, sizeof text, "{\"n\":%s,\"s\":\"%s\"}", nums[i],
                 nums[i]);
        REQUIRE(sa__json_parse(text, strlen(text), 4, &root) == SA_OK);
        CHECK_EQ_INT(sa__json_number(root, "n", &a), 1);
        CHECK_EQ_INT(sa__json_number(root, "s", &b), 1);
        if (a != b) HARNESS_FAIL("%s: %.17g != %.17g", nums[i], a, b);
        cJSON_Delete(root);
    }
}

TEST(json_raw_at)
{
    const char *t = "{\"x\":\"\\\"task_id\\\":1\",\"data\":{\"files\":["
                    "{\"file_id\": 123456789012345678901 ,\"n\":[1,{}]}],"
                    "\"task_id\":-42,\"o\":{\"a\":\"}\"}}}";
    static const char *const p1[] = {"data", "files", "[0]", "file_id"};
    static const char *const p2[] = {"data", "task_id"};
    static const char *const p3[] = {"data", "o"};
    static const char *const p4[] = {"data", "missing"};
    static const char *const p5[] = {"x", "[0]"};
    const char *s;
    size_t n;
    cJSON *root = NULL;
    REQUIRE(sa__json_parse(t, strlen(t), 8, &root) == SA_OK);
    cJSON_Delete(root);
    CHECK_EQ_INT(sa__json_raw_at(t, strlen(t), p1, 4, &s, &n), 1);
    CHECK_EQ_INT(n, 21);
    CHECK(strncmp(s, "123456789012345678901", n) == 0);
    CHECK_EQ_INT(sa__json_raw_at(t, strlen(t), p2, 2, &s, &n), 1);
    CHECK(n == 3 && strncmp(s, "-42", 3) == 0);
    CHECK_EQ_INT(sa__json_raw_at(t, strlen(t), p3, 2, &s, &n), 1);
    CHECK(n == 9 && strncmp(s, "{\"a\":\"}\"}", 9) == 0);
    CHECK_EQ_INT(sa__json_raw_at(t, strlen(t), p4, 2, &s, &n), 0);
    CHECK_EQ_INT(sa__json_raw_at(t, strlen(t), p5, 2, &s, &n), 0);
    CHECK_EQ_INT(sa__json_raw_at(t, 10, p2, 2, &s, &n), 0); /* cut short */
}

TEST(json_writer)
{
    sa__buf b;
    cJSON *o = cJSON_CreateObject();
    sa__buf_init(&b, NULL, 0);
    CHECK_EQ_INT(sa__json_put_string(&b, "a\"b\\c/\n\t\x01\xc3\xa9"), SA_OK);
    CHECK_STR(b.data, "\"a\\\"b\\\\c/\\n\\t\\u0001\xc3\xa9\"");
    sa__buf_reset(&b);
    CHECK_EQ_INT(sa__json_put_string(&b, NULL), SA_OK);
    CHECK_STR(b.data, "null");
    sa__buf_reset(&b);
    cJSON_AddNumberToObject(o, "x", 0.4);
    cJSON_AddStringToObject(o, "c", "3D3D3D");
    CHECK_EQ_INT(sa__json_put_item(&b, o), SA_OK);
    CHECK_STR(b.data, "{\"x\":0.4,\"c\":\"3D3D3D\"}");
    sa__buf_free(&b);
    cJSON_Delete(o);
    /* the output of the writer parses back */
    sa__buf_init(&b, NULL, 0);
    {
        cJSON *root = NULL;
        char all[256];
        int i;
        for (i = 1; i < 256; i++) all[i - 1] = (char)i;
        all[255] = '\0';
        CHECK_EQ_INT(sa__json_put_string(&b, all), SA_OK);
        CHECK_EQ_INT(sa__json_parse(b.data, b.len, 4, &root), SA_OK);
        CHECK(cJSON_IsString(root) && strcmp(root->valuestring, all) == 0);
        cJSON_Delete(root);
    }
    sa__buf_free(&b);
}

/* Every example body of the spec is valid JSON for the scanner and cJSON
 * alike; no prefix of it (short of its final brace) is. */
TEST(json_examples_and_prefixes)
{
    static const char *const names[] = {
        "error-400-invalid-task-id.json", "file-create-response.json",
        "task-status-success-json-hd.json", "score-info-hd.json",
        "request-task-v20-hd-zip.json", "webhook-notification.json"};
    size_t i, cut, end;
    for (i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[512];
        size_t len = 0;
        char *text;
        cJSON *root = NULL;
        snprintf(path, sizeof path, "%s/%s", SA_EXAMPLES, names[i]);
        text = harness_slurp(path, &len);
        if (!text) {
            HARNESS_FAIL("cannot read %s", path);
            continue;
        }
        CHECK_EQ_INT(sa__json_parse(text, len, 64, &root), SA_OK);
        cJSON_Delete(root);
        end = len;
        while (end > 0 && (text[end - 1] == '\n' || text[end - 1] == ' '))
            end--;
        for (cut = 0; cut < end; cut++) {
            int rc = sa__json_parse(text, cut, 64, &root);
            cJSON_Delete(root);
            root = NULL;
            if (rc != SA_ERR_PROTOCOL) {
                HARNESS_FAIL("%s cut at %zu: %d", names[i], cut, rc);
                break;
            }
        }
        free(text);
    }
}

/* Many threads parsing valid and invalid texts at once get the right
 * answers.  (The race the lock prevents is inside the uninstrumented
 * libcjson, so no sanitizer can show it; this checks the serialised path.) */
static void *parse_worker(void *arg)
{
    int i, *bad = arg;
    for (i = 0; i < 2000; i++) {
        cJSON *root = NULL;
        const char *t = (i % 2) ? "{\"a\":[1,2,3]}" : "{\"a\":[1,2,3";
        int rc = sa__json_parse(t, strlen(t), 8, &root);
        if (rc != ((i % 2) ? SA_OK : SA_ERR_PROTOCOL)) (*bad)++;
        cJSON_Delete(root);
    }
    return NULL;
}

TEST(json_threads)
{
    pthread_t th[4];
    int bad[4] = {0, 0, 0, 0}, i;
    for (i = 0; i < 4; i++)
        REQUIRE(pthread_create(&th[i], NULL, parse_worker, &bad[i]) == 0);
    for (i = 0; i < 4; i++) pthread_join(th[i], NULL);
    CHECK_EQ_INT(bad[0] + bad[1] + bad[2] + bad[3], 0);
}

int main(void)
{
    RUN(alloc_through_mem);
    RUN(buf_append_limit_steal);
    RUN(errf_truncates);
    RUN(redact_secret_and_query);
    RUN(scrub_secret_whole_and_cut);
    RUN(url_loopback);
    RUN(url_scheme_and_encode);
    RUN(rand_sequence);
    RUN(status_names_messages);
    RUN(status_classes);
    RUN(json_valid_and_invalid);
    RUN(json_length_delimited);
    RUN(json_depth_limit);
    RUN(json_accessors);
    RUN(json_number_strings_exact);
    RUN(json_raw_at);
    RUN(json_writer);
    RUN(json_examples_and_prefixes);
    RUN(json_threads);
    return harness_report();
}
