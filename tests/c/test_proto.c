/*
 * test_proto.c - proto.c: endpoint paths, request bodies (compared with
 * the spec's example requests), parsing of every example answer, tolerant
 * and hostile variants, and classification of every error body (JSON,
 * HTML gateways, S3 XML, plain text).
 */
#include "harness.h"
#include "sa_internal.h"

static char *example(const char *name, size_t *len)
{
    char path[512];
    char *text;
    snprintf(path, sizeof path, "%s/%s", SA_EXAMPLES, name);
    text = harness_slurp(path, len);
    if (!text) fprintf(stderr, "  cannot read %s\n", path);
    return text;
}

/* 1 when two JSON texts hold the same value (member order ignored). */
static int same_json(const char *a, const char *b)
{
    cJSON *x = NULL, *y = NULL;
    int same = sa__json_parse(a, strlen(a), 16, &x) == SA_OK &&
               sa__json_parse(b, strlen(b), 16, &y) == SA_OK &&
               cJSON_Compare(x, y, 1);
    cJSON_Delete(x);
    cJSON_Delete(y);
    return same;
}

TEST(paths)
{
    CHECK_STR(sa__proto_file_path(SA_API_V2_0, SA_UPLOAD_SKIN_ANALYSIS),
              "/s2s/v2.0/file/skin-analysis");
    CHECK_STR(sa__proto_file_path(SA_API_V2_1, SA_UPLOAD_SKIN_ANALYSIS),
              "/s2s/v2.1/file/skin-analysis");
    CHECK_STR(sa__proto_file_path(SA_API_V2_1, SA_UPLOAD_GENERIC),
              "/s2s/v2.0/file");
    CHECK_STR(sa__proto_file_path(SA_API_V2_0, SA_UPLOAD_GENERIC),
              "/s2s/v2.0/file");
    CHECK_STR(sa__proto_task_path(SA_API_V2_0), "/s2s/v2.0/task/skin-analysis");
    CHECK_STR(sa__proto_task_path(SA_API_V2_1), "/s2s/v2.1/task/skin-analysis");
    CHECK_STR(sa__proto_task_path(SA_API_DEFAULT),
              "/s2s/v2.1/task/skin-analysis");
}

/* ---------------------------------------------------------------- */
/* file create                                                       */
/* ---------------------------------------------------------------- */

TEST(file_create_body)
{
    size_t len;
    char *want = example("request-file-create.json", &len);
    char *body = sa__proto_file_create_body(
        NULL, "image/png", "skin_analysis_01_3dbd1b6683.png", 547541);
    REQUIRE(want && body);
    CHECK(same_json(body, want));
    free(body);
    free(want);
    body = sa__proto_file_create_body(NULL, "image/jpeg", "a \"b\"\\c.jpg",
                                     UINT64_C(9999999999));
    CHECK_STR(body, "{\"files\":[{\"content_type\":\"image/jpeg\","
                    "\"file_name\":\"a \\\"b\\\"\\\\c.jpg\","
                    "\"file_size\":9999999999}]}");
    free(body);
    CHECK(sa__proto_file_create_body(NULL, NULL, "x", 1) == NULL);
}

static int parse_fc(const char *body, char **id, sa__upload_spec *up,
                    char *err, size_t errlen)
{
    return sa__proto_parse_file_create(NULL, body, strlen(body), 64, id, up,
                                      err, errlen);
}

/* The upload sends exactly the headers want[0 .. n). */
static void check_headers(const sa__upload_spec *up, const char *const *want,
                          size_t n)
{
    size_t i;
    CHECK_EQ_INT(up->n_headers, n);
    for (i = 0; i < up->n_headers && i < n; i++)
        CHECK_STR(up->headers[i], want[i]);
}

TEST(file_create_example)
{
    size_t len;
    static const char *const want[] = {"Content-Length: 547541",
                                       "Content-Type: image/png"};
    char *body = example("file-create-response.json", &len), *id = NULL;
    char err[256] = "";
    sa__upload_spec up;
    REQUIRE(body);
    CHECK_EQ_INT(sa__proto_parse_file_create(NULL, body, len, 64, &id, &up,
                                            err, sizeof err),
                 SA_OK);
    CHECK_STR(id, "SaGaqpDgKwFrVBgMpQMA3HY0LeqdT9/13W5TOD8/u/"
                  "FfjK3xgCQ+hRt9MJXBFaud");
    CHECK_STR(up.method, "PUT");
    CHECK_STR(up.url, "https://yce-us.s3-accelerate.amazonaws.com/demo/"
                      "ttl30/...signature...");
    check_headers(&up, want, 2);
    free(id);
    sa__upload_spec_free(NULL, &up);
    CHECK(up.headers == NULL && up.n_headers == 0);
    free(body);
}

TEST(file_create_tolerant)
{
    static const char *const want[] = {"Content-Length: 50000",
                                       "Content-Type: image/jpeg"};
    char *id = NULL, err[256];
    sa__upload_spec up;
    /* numbers for header values and the id; no method; extra fields;
     * a null header is skipped */
    const char *b1 =
        "{\"status\":200,\"extra\":[1,2],\"data\":{\"files\":[{"
        "\"file_id\":123456789012345678901,\"requests\":[{\"url\":"
        "\"http://127.0.0.1:9/up?sig=1\",\"headers\":{\"Content-Length\":"
        "50000,\"Content-Type\":\"image/jpeg\",\"X-Null\":null}}]}]}}";
    CHECK_EQ_INT(parse_fc(b1, &id, &up, err, sizeof err), SA_OK);
    CHECK_STR(id, "123456789012345678901"); /* exact, not via a double */
    CHECK_STR(up.method, "PUT");
    check_headers(&up, want, 2);
    free(id);
    sa__upload_spec_free(NULL, &up);
    /* no headers at all */
    CHECK_EQ_INT(parse_fc("{\"data\":{\"files\":[{\"file_id\":\"f\","
                          "\"requests\":[{\"method\":\"PUT\",\"url\":"
                          "\"https://h/x\"}]}]}}",
                          &id, &up, err, sizeof err),
                 SA_OK);
    CHECK_EQ_INT(up.n_headers, 0);
    free(id);
    sa__upload_spec_free(NULL, &up);
}

/* A readable answer whose slot can never be used: SA_OK with the reason
 * in `unusable` and nothing of the slot kept (the job fails at once: a
 * second file create would get the same kind of slot). */
TEST(file_create_unusable_slots)
{
    static const struct {
        const char *request;
        const char *why;
    } rows[] = {
        {"{\"url\":\"ftp://h/x\"}",
         "the upload URL is not an http(s) URL on one line"},
        {"{\"url\":\"file:///etc/passwd\"}", NULL},
        {"{\"url\":\"https://h/x\\r\\nHost: evil\"}", NULL},
        {"{\"url\":\"https://h/x y\"}", NULL},
        {"{\"url\":\"https://h/x\",\"method\":\"P T\"}",
         "the upload method is not an HTTP method"},
        {"{\"url\":\"https://h/x\",\"headers\":{\"x-amz-acl\":"
         "\"a\\r\\nAuthorization: y\"}}",
         "the upload header 'x-amz-acl' has a value that cannot be sent"},
        {"{\"url\":\"https://h/x\",\"headers\":{\"Content-Type\":true}}",
         NULL},
        {"{\"url\":\"https://h/x\",\"headers\":{\"x-amz-bad name\":\"v\"}}",
         NULL},
        {"{\"url\":\"https://h/x\",\"headers\":{\"Content-Length\":"
         "\"10, 20\"}}", NULL},
    };
    size_t i;
    for (i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char body[512], *id = NULL, err[256] = "";
        sa__upload_spec up;
        int rc;
        snprintf(body, sizeof body, "{\"data\":{\"files\":[{\"file_id\":"
                 "\"F1\",\"requests\":[%s]}]}}", rows[i].request);
        rc = parse_fc(body, &id, &up, err, sizeof err);
        if (rc != SA_OK) HARNESS_FAIL("row %zu: rc %d (%s)", i, rc, err);
        CHECK_STR(id, "F1");
        CHECK(up.url == NULL && up.headers == NULL && up.method == NULL);
        if (up.unusable[0] == '\0') HARNESS_FAIL("row %zu: usable", i);
        if (rows[i].why && strcmp(up.unusable, rows[i].why) != 0)
            HARNESS_FAIL("row %zu: \"%s\"", i, up.unusable);
        free(id);
        sa__upload_spec_free(NULL, &up);
    }
}

/* What a pre-signed PUT needs is sent; the rest of what the answer lists
 * (Host, Cookie, Authorization, framing headers...) never is. */
TEST(file_create_header_allow_list)
{
    char *id = NULL, err[256];
    sa__upload_spec up;
    const char *body =
        "{\"data\":{\"files\":[{\"file_id\":\"F1\",\"requests\":[{\"url\":"
        "\"https://s3.test/up?sig=1\",\"headers\":{"
        "\"Host\":\"evil.test\",\"Cookie\":\"session=1\","
        "\"Authorization\":\"Bearer x\",\"Transfer-Encoding\":\"chunked\","
        "\"Connection\":\"close\",\"Expect\":\"100-continue\","
        "\"X-Forwarded-For\":\"1.2.3.4\",\"Bad Name\":\"v\",\"X\":true,"
        "\"content-type\":\"image/png\",\"Content-Length\":547541,"
        "\"Content-MD5\":\"abc==\",\"Cache-Control\":\"no-cache\","
        "\"Content-Disposition\":\"inline\",\"Content-Encoding\":\"identity\","
        "\"Content-Language\":\"en\",\"Expires\":\"0\","
        "\"X-Amz-Meta-User\":\"me\",\"x-goog-acl\":\"private\","
        "\"x-ms-blob-type\":\"BlockBlob\",\"x-amz-\":\"empty suffix\"}}]}]}}";
    static const char *const sent[] = {
        "content-type: image/png", "Content-Length: 547541",
        "Content-MD5: abc==", "Cache-Control: no-cache",
        "Content-Disposition: inline", "Content-Encoding: identity",
        "Content-Language: en", "Expires: 0", "X-Amz-Meta-User: me",
        "x-goog-acl: private", "x-ms-blob-type: BlockBlob"};

    REQUIRE(parse_fc(body, &id, &up, err, sizeof err) == SA_OK);
    CHECK_STR(up.unusable, "");
    check_headers(&up, sent, sizeof sent / sizeof sent[0]);
    CHECK(sa__proto_upload_header_allowed("X-AMZ-DATE"));
    CHECK(!sa__proto_upload_header_allowed("x-amz"));
    CHECK(!sa__proto_upload_header_allowed("Content-Typo"));
    CHECK(!sa__proto_upload_header_allowed(NULL));
    free(id);
    sa__upload_spec_free(NULL, &up);
}

/* A body a parser refuses: the status it returns and its message (NULL:
 * any message). */
typedef struct refused_row {
    const char *body;
    int rc;
    const char *msg;
} refused_row;

TEST(file_create_hostile)
{
    static const refused_row rows[] = {
        {"{\"status\":400,\"error\":\"Invalid parameter value\"}",
         SA_ERR_PROTOCOL, "file-create response: no data object (error: "
                          "Invalid parameter value)"},
        {"{\"data\":{}}", SA_ERR_PROTOCOL,
         "file-create response: data.files[0] missing"},
        {"{\"data\":{\"files\":[]}}", SA_ERR_PROTOCOL,
         "file-create response: data.files[0] missing"},
        {"{\"data\":{\"files\":[{\"requests\":[]}]}}", SA_ERR_PROTOCOL,
         "file-create response: data.files[0].file_id is missing or not a "
         "usable id"},
        {"{\"data\":{\"files\":[{\"file_id\":\"\"}]}}", SA_ERR_PROTOCOL,
         NULL},
        {"{\"data\":{\"files\":[{\"file_id\":1.5}]}}", SA_ERR_PROTOCOL, NULL},
        {"{\"data\":{\"files\":[{\"file_id\":\"f\"}]}}", SA_ERR_PROTOCOL,
         "file-create response: data.files[0].requests[0] missing"},
        {"{\"data\":{\"files\":[{\"file_id\":\"f\",\"requests\":[{"
         "\"method\":\"PUT\"}]}]}}",
         SA_ERR_PROTOCOL, "file-create response: "
                          "data.files[0].requests[0].url is missing"},
        {"{\"data\":{\"files\":[{\"file_id\":\"f\",\"requests\":[{\"url\":"
         "\"https://h/x\",\"headers\":[\"X: 1\"]}]}]}}",
         SA_ERR_PROTOCOL, NULL},
        {"{\"data\":{\"files\":[{\"file_id\":\"f\"", SA_ERR_PROTOCOL,
         "file-create response: not valid JSON, or a string in it holds a "
         "NUL (\\u0000)"},
        /* a NUL would cut the id: a task would be created on file FILE */
        {"{\"data\":{\"files\":[{\"file_id\":\"FILE\\u0000EVIL\",\"requests\""
         ":[{\"url\":\"https://h/x\"}]}]}}",
         SA_ERR_PROTOCOL, "file-create response: not valid JSON, or a string "
                          "in it holds a NUL (\\u0000)"},
        {"{\"data\":{\"files\":[{\"file_id\":\"f\",\"requests\":[{\"url\":"
         "\"https://h/x\\u0000.evil\"}]}]}}",
         SA_ERR_PROTOCOL, NULL},
        {"{\"data\":{\"files\":[{\"file_id\":\"f\",\"requests\":[{\"url\":"
         "\"https://h/x\",\"headers\":{\"X-Amz-Acl\":\"a\\u0000b\"}}]}]}}",
         SA_ERR_PROTOCOL, NULL},
        /* ids of other characters than base64 and URL-unreserved ones */
        {"{\"data\":{\"files\":[{\"file_id\":\"A B\",\"requests\":[{\"url\":"
         "\"https://h/x\"}]}]}}",
         SA_ERR_PROTOCOL, "file-create response: data.files[0].file_id is "
                          "missing or not a usable id"},
        {"{\"data\":{\"files\":[{\"file_id\":\"a\\\"b\",\"requests\":[{"
         "\"url\":\"https://h/x\"}]}]}}",
         SA_ERR_PROTOCOL, NULL},
        {"{\"data\":{\"files\":[{\"file_id\":\"..\",\"requests\":[{\"url\":"
         "\"https://h/x\"}]}]}}",
         SA_ERR_PROTOCOL, NULL},
        {"<html>502</html>", SA_ERR_PROTOCOL, NULL},
        {"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
         "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
         SA_ERR_LIMIT, "file-create response: JSON nested deeper than 64 "
                       "levels"},
    };
    size_t i;
    for (i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char *id = (char *)1, err[256] = "";
        sa__upload_spec up;
        int rc = parse_fc(rows[i].body, &id, &up, err, sizeof err);
        if (rc != rows[i].rc) HARNESS_FAIL("row %zu: rc %d", i, rc);
        CHECK(id == NULL);
        CHECK(up.url == NULL && up.headers == NULL && up.method == NULL);
        CHECK(err[0] != '\0');
        if (rows[i].msg && strcmp(err, rows[i].msg) != 0)
            HARNESS_FAIL("row %zu: message \"%s\"", i, err);
    }
    /* 33 headers: too many */
    {
        sa__buf b;
        char *id, err[256];
        sa__upload_spec up;
        int k;
        sa__buf_init(&b, NULL, 0);
        sa__buf_appendf(&b, "{\"data\":{\"files\":[{\"file_id\":\"f\","
                           "\"requests\":[{\"url\":\"https://h/\","
                           "\"headers\":{");
        for (k = 0; k < 33; k++) sa__buf_appendf(&b, "%s\"H%d\":\"v\"",
                                                k ? "," : "", k);
        sa__buf_appendf(&b, "}}]}]}}");
        CHECK_EQ_INT(parse_fc(b.data, &id, &up, err, sizeof err),
                     SA_ERR_PROTOCOL);
        sa__buf_free(&b);
    }
}

/* ---------------------------------------------------------------- */
/* task create                                                       */
/* ---------------------------------------------------------------- */

TEST(task_body_examples)
{
    static const char *const sd[] = {"wrinkle", "pore", "texture", "acne"};
    static const char *const hd[] = {"hd_wrinkle", "hd_pore", "hd_texture",
                                     "hd_acne"};
    const char *extra_text = "{\"enable_dark_background_hd_pore\":true,"
                             "\"color_dark_background_hd_pore\":\"3D3D3D\","
                             "\"opacity_dark_background_hd_pore\":0.4}";
    sa__task_params p;
    cJSON *extra = NULL;
    size_t len;
    char *want, *body;

    p = (sa__task_params){
        .src_file_id =
            "SaGaqpDgKwFrVBgMpQMA3HY0LeqdT9/13W5TOD8/u/FfjK3xgCQ+hRt9MJXBFaud",
        .actions = sd, .n_actions = 4, .format = SA_FORMAT_JSON,
        .api_version = SA_API_V2_1, .pf_camera_kit = 0, .mask_overlay = 0};
    want = example("request-task-v21-sd-json.json", &len);
    body = sa__proto_task_body(NULL, &p);
    REQUIRE(want && body);
    CHECK(same_json(body, want));
    free(want);
    free(body);

    REQUIRE(sa__json_parse(extra_text, strlen(extra_text), 8, &extra) ==
            SA_OK);
    p = (sa__task_params){
        .src_file_url = "https://example.com/selfie.jpg", .actions = hd,
        .n_actions = 4, .format = SA_FORMAT_ZIP, .api_version = SA_API_V2_0,
        .pf_camera_kit = 1, /* never sent on v2.0 */
        .mask_overlay = 1, .miniserver_args = extra};
    want = example("request-task-v20-hd-zip.json", &len);
    body = sa__proto_task_body(NULL, &p);
    REQUIRE(want && body);
    CHECK(same_json(body, want));
    CHECK(strstr(body, "pf_camera_kit") == NULL);
    free(want);
    free(body);
    cJSON_Delete(extra);
}

TEST(task_body_options)
{
    static const char *const one[] = {"pore"};
    const char *ms = "{\"enable_mask_overlay\":true,"
                     "\"opacity_dark_background_hd_acne\":0.25}";
    sa__task_params p;
    cJSON *extra = NULL;
    char *body;

    p = (sa__task_params){.src_file_url = "https://h/\"q\".jpg",
                          .actions = one, .n_actions = 1,
                          .api_version = SA_API_V2_1, .pf_camera_kit = -1,
                          .mask_overlay = -1};
    body = sa__proto_task_body(NULL, &p);
    CHECK_STR(body, "{\"src_file_url\":\"https://h/\\\"q\\\".jpg\","
                    "\"dst_actions\":[\"pore\"],\"format\":\"json\"}");
    free(body);

    p.pf_camera_kit = 1;
    body = sa__proto_task_body(NULL, &p);
    CHECK(body && strstr(body, ",\"pf_camera_kit\":true}") != NULL);
    free(body);

    /* extra args alone; then mask_overlay wins over the same extra key */
    REQUIRE(sa__json_parse(ms, strlen(ms), 8, &extra) == SA_OK);
    p.pf_camera_kit = -1;
    p.miniserver_args = extra;
    body = sa__proto_task_body(NULL, &p);
    CHECK_STR(body, "{\"src_file_url\":\"https://h/\\\"q\\\".jpg\","
                    "\"dst_actions\":[\"pore\"],\"miniserver_args\":{"
                    "\"enable_mask_overlay\":true,"
                    "\"opacity_dark_background_hd_acne\":0.25},"
                    "\"format\":\"json\"}");
    free(body);
    p.mask_overlay = 0;
    body = sa__proto_task_body(NULL, &p);
    CHECK_STR(body, "{\"src_file_url\":\"https://h/\\\"q\\\".jpg\","
                    "\"dst_actions\":[\"pore\"],\"miniserver_args\":{"
                    "\"enable_mask_overlay\":false,"
                    "\"opacity_dark_background_hd_acne\":0.25},"
                    "\"format\":\"json\"}");
    free(body);
    cJSON_Delete(extra);

    /* an empty extra object sends nothing */
    extra = cJSON_CreateObject();
    p.mask_overlay = -1;
    p.miniserver_args = extra;
    body = sa__proto_task_body(NULL, &p);
    CHECK(body && strstr(body, "miniserver_args") == NULL);
    free(body);
    cJSON_Delete(extra);

    /* contract violations */
    p.miniserver_args = NULL;
    p.src_file_id = "id";
    CHECK(sa__proto_task_body(NULL, &p) == NULL); /* two sources */
    p.src_file_url = NULL;
    p.src_file_id = NULL;
    CHECK(sa__proto_task_body(NULL, &p) == NULL); /* none */
    p.src_file_id = "id";
    p.n_actions = 0;
    CHECK(sa__proto_task_body(NULL, &p) == NULL);
    CHECK(sa__proto_task_body(NULL, NULL) == NULL);
}

static int parse_tc(const char *body, char **id, char *err, size_t n)
{
    return sa__proto_parse_task_create(NULL, body, strlen(body), 64, id, err,
                                      n);
}

TEST(task_create_parse)
{
    size_t len;
    char *body = example("task-create-response.json", &len), *id = NULL;
    char err[256];
    REQUIRE(body);
    CHECK_EQ_INT(sa__proto_parse_task_create(NULL, body, len, 64, &id, err,
                                            sizeof err),
                 SA_OK);
    CHECK_STR(id,
              "SaGaqpDgKwFrVBgMpQMA3HY0LeqdT9_13W5TOD8_u_GPi6NqQ3dhlmN-6ntFwhzT");
    free(id);
    free(body);

    CHECK_EQ_INT(parse_tc("{\"data\":{\"task_id\":9007199254740993}}", &id,
                          err, sizeof err),
                 SA_OK);
    CHECK_STR(id, "9007199254740993"); /* 2^53 + 1, exact */
    free(id);
    CHECK_EQ_INT(parse_tc("{\"data\":{\"task_id\":1e3}}", &id, err,
                          sizeof err),
                 SA_OK);
    CHECK_STR(id, "1000");
    free(id);
    CHECK_EQ_INT(parse_tc("{\"data\":{\"task_id\":\"\"}}", &id, err,
                          sizeof err),
                 SA_ERR_PROTOCOL);
    CHECK(id == NULL);
    CHECK_STR(err, "task-create response: data.task_id is missing or not a "
                   "usable id");
    CHECK_EQ_INT(parse_tc("{\"data\":{\"task_id\":null}}", &id, err,
                          sizeof err),
                 SA_ERR_PROTOCOL);
    /* a NUL would make the client poll .../TASK (another task) */
    CHECK_EQ_INT(parse_tc("{\"data\":{\"task_id\":\"TASK\\u0000/../../other"
                          "\"}}", &id, err, sizeof err),
                 SA_ERR_PROTOCOL);
    CHECK(id == NULL);
    CHECK_EQ_INT(parse_tc("{\"data\":{\"task_\\u0000id\":\"T\"}}", &id, err,
                          sizeof err),
                 SA_ERR_PROTOCOL);
    {
        static const char *const bad[] = {"..", ".", "a b", "a%2Fb", "a?b",
                                          "a#b", "a\\\\b", "t\\r\\n", "\\u00e9"};
        static const char *const good[] = {
            "SaGaqpDgKwFrVBgMpQMA3HY0LeqdT9/13W5TOD8/u/FfjK3xgCQ+hRt9MJXB==",
            "a..b", "-_.~", "123"};
        size_t k;
        char b[128];
        for (k = 0; k < sizeof bad / sizeof bad[0]; k++) {
            snprintf(b, sizeof b, "{\"data\":{\"task_id\":\"%s\"}}", bad[k]);
            if (parse_tc(b, &id, err, sizeof err) != SA_ERR_PROTOCOL)
                HARNESS_FAIL("task id %s accepted", bad[k]);
            free(id);
            id = NULL;
        }
        for (k = 0; k < sizeof good / sizeof good[0]; k++) {
            snprintf(b, sizeof b, "{\"data\":{\"task_id\":\"%s\"}}", good[k]);
            if (parse_tc(b, &id, err, sizeof err) != SA_OK)
                HARNESS_FAIL("task id %s refused: %s", good[k], err);
            else
                CHECK_STR(id, good[k]);
            free(id);
            id = NULL;
        }
        CHECK_EQ_INT(sa__proto_id_ok("abc", 4), 0);  /* a NUL inside */
    }
    CHECK_EQ_INT(parse_tc("{\"data\":{\"task_id\":{}}}", &id, err,
                          sizeof err),
                 SA_ERR_PROTOCOL);
    CHECK_EQ_INT(parse_tc("{\"data\":\"x\"}", &id, err, sizeof err),
                 SA_ERR_PROTOCOL);
    CHECK_STR(err, "task-create response: no data object");
    CHECK_EQ_INT(parse_tc("{\"data\":{\"task_id\":\"t\"}} trailing", &id,
                          err, sizeof err),
                 SA_ERR_PROTOCOL);
    CHECK_EQ_INT(parse_tc("", &id, err, sizeof err), SA_ERR_PROTOCOL);
    CHECK(id == NULL);
}

/* ---------------------------------------------------------------- */
/* status                                                            */
/* ---------------------------------------------------------------- */

static int parse_st(const char *body, sa__status_info *si, char *err,
                    size_t n)
{
    return sa__proto_parse_status(NULL, body, strlen(body), 64, "tid", si,
                                 err, n);
}

TEST(status_examples)
{
    static const struct {
        const char *file;
        int task_status;
        int has_result;
        const char *engine_error;
    } rows[] = {
        {"task-status-running.json", SA__TASK_RUNNING, 0, NULL},
        {"task-status-success-json-hd.json", SA__TASK_SUCCESS, 1, NULL},
        {"task-status-success-json-sd.json", SA__TASK_SUCCESS, 1, NULL},
        {"task-status-success-zip.json", SA__TASK_SUCCESS, 1, NULL},
        {"task-status-error-no-face.json", SA__TASK_ERROR, 0,
         "error_no_face"},
    };
    size_t i;
    for (i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        size_t len;
        char *body = example(rows[i].file, &len), err[256] = "";
        sa__status_info si;
        if (!body) {
            HARNESS_FAIL("missing %s", rows[i].file);
            continue;
        }
        CHECK_EQ_INT(sa__proto_parse_status(NULL, body, len, 64, "tid", &si,
                                           err, sizeof err),
                     SA_OK);
        CHECK_EQ_INT(si.task_status, rows[i].task_status);
        CHECK_EQ_INT(si.result != NULL, rows[i].has_result);
        CHECK_EQ_INT(si.polling_interval_ms, -1);
        if (rows[i].engine_error) {
            CHECK_STR(si.engine_error, rows[i].engine_error);
            CHECK_STR(si.engine_message, "No face detected on source image");
        } else {
            CHECK(si.engine_error == NULL);
        }
        if (si.result) CHECK_STR(sa_result_task_id(si.result), "tid");
        sa__status_info_free(NULL, &si);
        CHECK(si.result == NULL && si.engine_error == NULL);
        free(body);
    }
}

/* 1 when both are NULL or both the same string. */
static int same_str(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

TEST(status_details)
{
    /* what each answer gives: the state, the polling interval (-1: none or
     * nonsense), an undocumented task_status kept, the engine error */
    static const struct {
        const char *body;
        int task_status;
        long interval_ms;
        const char *unknown, *engine_error, *engine_message;
    } rows[] = {
        {"{\"data\":{\"task_status\":\"running\",\"polling_interval\":1500}}",
         SA__TASK_RUNNING, 1500, "", NULL, NULL},
        {"{\"data\":{\"task_status\":\"RUNNING\","
         "\"polling_interval\":\"2000\"}}",
         SA__TASK_RUNNING, 2000, "", NULL, NULL},
        {"{\"data\":{\"task_status\":\"running\",\"polling_interval\":0}}",
         SA__TASK_RUNNING, -1, "", NULL, NULL}, /* nonsense ignored */
        {"{\"data\":{\"task_status\":\"running\",\"polling_interval\":1e12}}",
         SA__TASK_RUNNING, 86400000, "", NULL, NULL}, /* clamped */
        /* a task_status the API does not document: "not finished yet",
         * with the string kept (redacted, cut, control characters
         * replaced: below) */
        {"{\"data\":{\"task_status\":\"queued\","
         "\"polling_interval\":1500,\"results\":null}}",
         SA__TASK_UNKNOWN, 1500, "queued", NULL, NULL},
        {"{\"data\":{\"task_status\":\"\"}}", SA__TASK_UNKNOWN, -1, "", NULL,
         NULL},
        /* engine error with an unknown code, a numeric code and no message
         * (control characters removed) */
        {"{\"data\":{\"task_status\":\"error\",\"error\":"
         "\"error_brand_new\",\"error_message\":\"a\\nb\"}}",
         SA__TASK_ERROR, -1, "", "error_brand_new", "a b"},
        {"{\"data\":{\"task_status\":\"error\",\"error\":500}}",
         SA__TASK_ERROR, -1, "", "500", NULL},
    };
    sa__status_info si;
    char err[256];
    size_t i;

    for (i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        CHECK_EQ_INT(parse_st(rows[i].body, &si, err, sizeof err), SA_OK);
        if (si.task_status != rows[i].task_status
            || si.polling_interval_ms != rows[i].interval_ms
            || strcmp(si.unknown_status, rows[i].unknown) != 0
            || !same_str(si.engine_error, rows[i].engine_error)
            || !same_str(si.engine_message, rows[i].engine_message)
            || si.result != NULL)
            HARNESS_FAIL("row %zu: status %d, interval %ld, \"%s\", %s, %s",
                         i, si.task_status, si.polling_interval_ms,
                         si.unknown_status,
                         si.engine_error ? si.engine_error : "(null)",
                         si.engine_message ? si.engine_message : "(null)");
        sa__status_info_free(NULL, &si);
    }
    CHECK_EQ_INT(parse_st("{\"data\":{\"task_status\":\"a\\tb "
                          "https://h/p?sig=secret 0123456789012345678901234567"
                          "890123456789012345678901234567890123456789\"}}",
                          &si, err, sizeof err),
                 SA_OK);
    CHECK_EQ_INT(si.task_status, SA__TASK_UNKNOWN);
    CHECK(strncmp(si.unknown_status, "a?b https://h/p?[...] 0123", 26) == 0);
    CHECK(strstr(si.unknown_status, "secret") == NULL);
    CHECK(strlen(si.unknown_status) == sizeof si.unknown_status - 1);
    sa__status_info_free(NULL, &si);
}

TEST(status_bad)
{
    static const refused_row rows[] = {
        {"{\"data\":{\"task_status\":null}}", SA_ERR_PROTOCOL,
         "status response: no data.task_status"},
        {"{\"data\":{\"task_status\":1}}", SA_ERR_PROTOCOL, NULL},
        {"{\"status\":200}", SA_ERR_PROTOCOL,
         "status response: no data object"},
        {"{\"data\":{\"task_status\":\"success\",\"results\":null}}",
         SA_ERR_PROTOCOL, "task succeeded but data.results is missing"},
        {"{\"data\":{\"task_status\":\"success\",\"results\":{}}}",
         SA_ERR_PROTOCOL,
         "data.results has neither an output[] list nor a url"},
        {"{\"data\":{\"task_status\":\"success\",\"results\":42}}",
         SA_ERR_PROTOCOL, NULL},
        /* one rule with 42: a list with no entry is no result either */
        {"{\"data\":{\"task_status\":\"success\",\"results\":[1,2,3]}}",
         SA_ERR_PROTOCOL, "data.results has no output entry (an object with "
                          "a type): no result"},
        {"{\"data\":{\"task_status\":\"success\",\"results\":[]}}",
         SA_ERR_PROTOCOL, NULL},
        {"{\"data\":{\"task_status\":\"success\",\"results\":[null,\"x\"]}}",
         SA_ERR_PROTOCOL, NULL},
        {"{\"data\":{\"task_status\":\"success\",\"results\":{\"output\":"
         "[{\"no_type\":1},{\"type\":7}]}}}",
         SA_ERR_PROTOCOL, NULL},
        {"{\"data\":{\"task_status\":\"success\",\"results\":true}}",
         SA_ERR_PROTOCOL, NULL},
        {"{\"data\":{\"task_status\":\"success\",\"results\":\"\"}}",
         SA_ERR_PROTOCOL, NULL},
        {"{\"data\":{\"task_status\":\"running\"", SA_ERR_PROTOCOL,
         "status response: not valid JSON, or a string in it holds a NUL "
         "(\\u0000)"},
        /* "wrin\u0000kle" would be read as a concern "wrin" */
        {"{\"data\":{\"task_status\":\"success\",\"results\":{\"output\":"
         "[{\"type\":\"wrin\\u0000kle\",\"ui_score\":5}]}}}",
         SA_ERR_PROTOCOL, NULL},
        {"{\"data\":{\"task_status\":\"error\",\"error\":\"error_no_face\","
         "\"error_message\":\"a\\u0000b\"}}",
         SA_ERR_PROTOCOL, NULL},
        {"<html><body>502 Bad Gateway</body></html>", SA_ERR_PROTOCOL, NULL},
        {"", SA_ERR_PROTOCOL, NULL},
    };
    size_t i;
    for (i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        sa__status_info si;
        char err[256] = "";
        int rc = parse_st(rows[i].body, &si, err, sizeof err);
        if (rc != rows[i].rc) HARNESS_FAIL("row %zu: rc %d", i, rc);
        CHECK(si.result == NULL && si.engine_error == NULL);
        if (rows[i].msg && strcmp(err, rows[i].msg) != 0)
            HARNESS_FAIL("row %zu: \"%s\"", i, err);
    }
    /* the depth limit of the caller applies */
    {
        sa__status_info si;
        char err[256];
        const char *deep = "{\"data\":{\"task_status\":\"running\",\"x\":"
                           "[[[[[[[[[[]]]]]]]]]]}}";
        CHECK_EQ_INT(sa__proto_parse_status(NULL, deep, strlen(deep), 8, NULL,
                                           &si, err, sizeof err),
                     SA_ERR_LIMIT);
        CHECK_STR(err, "status response: JSON nested deeper than 8 levels");
        CHECK_EQ_INT(sa__proto_parse_status(NULL, deep, strlen(deep), 12,
                                           NULL, &si, err, sizeof err),
                     SA_OK);
        sa__status_info_free(NULL, &si);
    }
}

/* ---------------------------------------------------------------- */
/* classification                                                    */
/* ---------------------------------------------------------------- */

typedef struct classify_row {
    int step;
    long http;
    const char *body; /* text, or "@file" for an example */
    int status;
    const char *code;
    const char *message;
} classify_row;

static void check_classify(const classify_row *r, size_t i)
{
    sa__api_error e;
    size_t len = 0;
    char *file = NULL;
    const char *body = r->body;
    int rc;
    if (body && body[0] == '@') {
        file = example(body + 1, &len);
        body = file;
    } else if (body) {
        len = strlen(body);
    }
    rc = sa__proto_classify(NULL, r->step, r->http, body, len, 64, &e);
    if (rc != r->status || e.status != rc)
        HARNESS_FAIL("row %zu: status %d (%s)", i, rc, sa_status_name(rc));
    if (e.http_status != r->http) HARNESS_FAIL("row %zu: http", i);
    if ((r->code == NULL) != (e.error_code == NULL) ||
        (r->code && strcmp(r->code, e.error_code) != 0))
        HARNESS_FAIL("row %zu: code %s", i,
                     e.error_code ? e.error_code : "(null)");
    if ((r->message == NULL) != (e.message == NULL) ||
        (r->message && strcmp(r->message, e.message) != 0))
        HARNESS_FAIL("row %zu: message %s", i,
                     e.message ? e.message : "(null)");
    sa__api_error_free(NULL, &e);
    CHECK(e.error_code == NULL && e.message == NULL);
    free(file);
}

TEST(classify_examples)
{
    static const classify_row rows[] = {
        {SA__STEP_POLL, 400, "@error-400-invalid-task-id.json",
         SA_ERR_TASK_EXPIRED, NULL, "Invalid task ID"},
        {SA__STEP_TASK_CREATE, 400, "@error-400-invalid-task-id.json",
         SA_ERR_BAD_REQUEST, NULL, "Invalid task ID"},
        {SA__STEP_TASK_CREATE, 400, "@error-400-mix-hd-sd.json",
         SA_ERR_BAD_REQUEST, "InvalidParameters",
         "cannot mix HD and SD dst_actions"},
        {SA__STEP_TASK_CREATE, 400, "@error-400-unknown-action.json",
         SA_ERR_BAD_REQUEST, "InvalidParameters",
         "Not available dst_action abc123"},
        {SA__STEP_FILE_CREATE, 401, "@error-401.json", SA_ERR_AUTH, NULL,
         "Invalid API key"},
        {SA__STEP_POLL, 401, "@error-401-observed.json", SA_ERR_AUTH,
         "InvalidApiKey", "This API key is not recognized."},
        {SA__STEP_TASK_CREATE, 429, "@error-429.json", SA_ERR_RATE_LIMITED,
         NULL, "Too many requests"},
        {SA__STEP_POLL, 500, "@error-500-task-timeout.json",
         SA_ERR_TASK_TIMEOUT, NULL, "Task execution timed out"},
        {SA__STEP_FILE_CREATE, 500, "@error-500-task-timeout.json",
         SA_ERR_SERVER, NULL, "Task execution timed out"},
    };
    size_t i;
    for (i = 0; i < sizeof rows / sizeof rows[0]; i++)
        check_classify(&rows[i], i);
}

#define DEEP10 "[[[[[[[[[["
#define DEEP70 DEEP10 DEEP10 DEEP10 DEEP10 DEEP10 DEEP10 DEEP10 "]"

TEST(classify_other_bodies)
{
    static const classify_row rows[] = {
        {SA__STEP_TASK_CREATE, 400,
         "{\"status\":400,\"error\":\"Not enough units\",\"error_code\":"
         "\"CreditInsufficiency\"}",
         SA_ERR_CREDITS, "CreditInsufficiency", "Not enough units"},
        {SA__STEP_POLL, 400, "{\"status\":400,\"error_code\":\"InvalidTaskId\"}",
         SA_ERR_TASK_EXPIRED, "InvalidTaskId", NULL},
        {SA__STEP_POLL, 404, "", SA_ERR_TASK_EXPIRED, NULL, NULL},
        {SA__STEP_TASK_CREATE, 404, NULL, SA_ERR_BAD_REQUEST, NULL, NULL},
        {SA__STEP_TASK_CREATE, 400,
         "{\"status\":400,\"error\":\"Unauthorized\",\"error_code\":"
         "\"InvalidAccessToken\"}",
         SA_ERR_AUTH, "InvalidAccessToken", "Unauthorized"},
        {SA__STEP_FILE_CREATE, 403, "{\"message\":\"Forbidden\"}",
         SA_ERR_AUTH, NULL, "Forbidden"},
        {SA__STEP_FILE_CREATE, 400,
         "{\"error\":{\"code\":\"X1\",\"message\":\"nested\"}}",
         SA_ERR_BAD_REQUEST, "X1", "nested"},
        {SA__STEP_FILE_CREATE, 400, "{\"error\":\"e\",\"error_code\":42}",
         SA_ERR_BAD_REQUEST, "42", "e"},
        /* gateways */
        {SA__STEP_POLL, 502,
         "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>"
         "<center><h1>502 Bad Gateway</h1></center></body></html>",
         SA_ERR_SERVER, NULL, "502 Bad Gateway"},
        {SA__STEP_TASK_CREATE, 504,
         "<html><body><h1>504 Gateway Time-out</h1>\nThe server didn't "
         "respond in time.</body></html>",
         SA_ERR_SERVER, NULL, "504 Gateway Time-out"},
        {SA__STEP_POLL, 503, "Service Unavailable\nretry later", SA_ERR_SERVER,
         NULL, "Service Unavailable"},
        /* broken JSON: its first line is the message */
        {SA__STEP_POLL, 500, "{\"status\":500,\"error\":\"boom\"", SA_ERR_SERVER,
         NULL, "{\"status\":500,\"error\":\"boom\""},
        /* S3 */
        {SA__STEP_UPLOAD, 403,
         "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>"
         "SignatureDoesNotMatch</Code><Message>The request signature we "
         "calculated does not match the signature you provided."
         "</Message><RequestId>X</RequestId></Error>",
         SA_ERR_UPLOAD, "SignatureDoesNotMatch",
         "The request signature we calculated does not match the signature "
         "you provided."},
        {SA__STEP_UPLOAD, 400,
         "<Error><Code>EntityTooLarge</Code><Message>Your proposed upload "
         "exceeds the maximum allowed size</Message></Error>",
         SA_ERR_UPLOAD, "EntityTooLarge",
         "Your proposed upload exceeds the maximum allowed size"},
        {SA__STEP_UPLOAD, 401, "", SA_ERR_UPLOAD, NULL, NULL},
        {SA__STEP_UPLOAD, 503,
         "<Error><Code>SlowDown</Code><Message>Please reduce your request "
         "rate.</Message></Error>",
         SA_ERR_SERVER, "SlowDown", "Please reduce your request rate."},
        {SA__STEP_UPLOAD, 429, "", SA_ERR_RATE_LIMITED, NULL, NULL},
        /* odd statuses */
        {SA__STEP_POLL, 408, "", SA_ERR_TIMEOUT, NULL, NULL},
        {SA__STEP_POLL, 200, "{}", SA_ERR_PROTOCOL, NULL, NULL},
        {SA__STEP_POLL, 302, "", SA_ERR_PROTOCOL, NULL, NULL},
        {SA__STEP_POLL, 0, NULL, SA_ERR_PROTOCOL, NULL, NULL},
        /* JSON deeper than the limit is treated as text */
        {SA__STEP_POLL, 500, DEEP70, SA_ERR_SERVER, NULL, DEEP70},
    };
    size_t i;
    for (i = 0; i < sizeof rows / sizeof rows[0]; i++)
        check_classify(&rows[i], i);
}

TEST(classify_bounds)
{
    sa__api_error e;
    sa__buf b;
    int k;
    sa__buf_init(&b, NULL, 0);
    sa__buf_appendf(&b, "{\"error\":\"");
    for (k = 0; k < 300; k++) sa__buf_appendf(&b, "\xc3\xa9"); /* 600 B */
    sa__buf_appendf(&b, "\",\"error_code\":\"C\"}");
    CHECK_EQ_INT(sa__proto_classify(NULL, SA__STEP_POLL, 400, b.data, b.len,
                                   64, &e),
                 SA_ERR_BAD_REQUEST);
    REQUIRE(e.message != NULL);
    CHECK(strlen(e.message) <= 512);
    CHECK_EQ_INT(strlen(e.message) % 2, 0); /* cut between characters */
    CHECK_STR(e.error_code, "C");
    sa__api_error_free(NULL, &e);
    /* a NUL escape makes the JSON unreadable: the body is read as text
     * (its first line), never as a cut string */
    CHECK_EQ_INT(sa__proto_classify(NULL, SA__STEP_POLL, 400,
                                   "{\"error\":\"E\",\"error_code\":\"C\\u0000D\"}",
                                   37, 64, &e),
                 SA_ERR_BAD_REQUEST);
    CHECK(e.error_code == NULL);
    CHECK_STR(e.message, "{\"error\":\"E\",\"error_code\":\"C\\u0000D\"}");
    sa__api_error_free(NULL, &e);
    sa__buf_reset(&b);
    /* over the bound, the cut falls at a space: a word the server echoed
     * (a key) is kept whole or dropped, never cut */
    sa__buf_appendf(&b, "{\"error\":\"");
    for (k = 0; k < 500; k++) sa__buf_appendf(&b, "x");
    sa__buf_appendf(&b, " Bearer sk-echoed-0123456789abcdef\"}");
    CHECK_EQ_INT(sa__proto_classify(NULL, SA__STEP_POLL, 401, b.data, b.len,
                                   64, &e),
                 SA_ERR_AUTH);
    REQUIRE(e.message != NULL);
    CHECK_EQ_INT(strlen(e.message), 507);
    CHECK(strstr(e.message, " Bearer") != NULL);
    CHECK(strstr(e.message, "sk-") == NULL);
    sa__api_error_free(NULL, &e);
    sa__buf_free(&b);
}

int main(void)
{
    RUN(paths);
    RUN(file_create_body);
    RUN(file_create_example);
    RUN(file_create_tolerant);
    RUN(file_create_hostile);
    RUN(file_create_unusable_slots);
    RUN(file_create_header_allow_list);
    RUN(task_body_examples);
    RUN(task_body_options);
    RUN(task_create_parse);
    RUN(status_examples);
    RUN(status_details);
    RUN(status_bad);
    RUN(classify_examples);
    RUN(classify_other_bodies);
    RUN(classify_bounds);
    return harness_report();
}
