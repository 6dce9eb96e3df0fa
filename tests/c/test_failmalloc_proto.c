/*
 * test_failmalloc_proto.c - every allocation of proto/result/json through
 * sa_mem may fail: for N = 1, 2, ... the N-th call of the allocator fails
 * and the operation must return SA_ERR_NOMEM (classify: status NOMEM, or a
 * NULL body for the builders), leave nothing allocated, and finally
 * succeed once N is past its last allocation.  cJSON's own allocations go
 * through cJSON's hooks, not sa_mem, and are released by cJSON_Delete.
 */
#include "harness.h"
#include "sa_internal.h"
#include "support_fakeserver.h"

/* One operation under test: returns SA_OK or a negative status and
 * releases whatever it produced on success. */
typedef int (*op_fn)(const sa_mem *mem, void *arg);

#define MAX_N 5000

/* Run op with the N-th allocation failing for every N; returns the number
 * of allocations the successful run made. */
static long failmalloc_loop(const char *name, op_fn op, void *arg)
{
    long n;
    for (n = 1; n <= MAX_N; n++) {
        fs_mem f;
        int rc;
        fs_mem_init(&f, n, 0);  /* only the N-th call fails */
        rc = op(&f.mem, arg);
        if (f.live != 0)
            HARNESS_FAIL("%s: N=%ld leaks %ld blocks (rc %d)", name, n,
                         f.live, rc);
        if (rc == SA_OK) {
            if (f.calls >= n)
                HARNESS_FAIL("%s: N=%ld: success despite a failed alloc",
                             name, n);
            return n - 1;
        }
        if (rc != SA_ERR_NOMEM) {
            HARNESS_FAIL("%s: N=%ld: rc %d, not NOMEM", name, n, rc);
            return -1;
        }
    }
    HARNESS_FAIL("%s: never succeeded", name);
    return -1;
}

typedef struct text_arg {
    const char *text;
    size_t len;
} text_arg;

static int op_file_create(const sa_mem *mem, void *arg)
{
    text_arg *t = arg;
    char *id = NULL, err[128];
    sa__upload_spec up;
    int rc = sa__proto_parse_file_create(mem, t->text, t->len, 64, &id, &up,
                                        err, sizeof err);
    if (rc == SA_OK) {
        sa__free(mem, id);
        sa__upload_spec_free(mem, &up);
    } else if (id || up.url || up.headers) {
        return -1000; /* outputs must be cleared on failure */
    }
    return rc;
}

static int op_task_create(const sa_mem *mem, void *arg)
{
    text_arg *t = arg;
    char *id = NULL, err[128];
    int rc = sa__proto_parse_task_create(mem, t->text, t->len, 64, &id, err,
                                        sizeof err);
    sa__free(mem, id);
    return rc;
}

static int op_task_body(const sa_mem *mem, void *arg)
{
    sa__task_params *p = arg;
    char *body = sa__proto_task_body(mem, p);
    if (!body) return SA_ERR_NOMEM;
    sa__free(mem, body);
    return SA_OK;
}

static int op_file_body(const sa_mem *mem, void *arg)
{
    char *body = sa__proto_file_create_body(mem, "image/jpeg", arg, 12345);
    if (!body) return SA_ERR_NOMEM;
    sa__free(mem, body);
    return SA_OK;
}

static int op_status(const sa_mem *mem, void *arg)
{
    text_arg *t = arg;
    sa__status_info si;
    char err[128];
    int rc = sa__proto_parse_status(mem, t->text, t->len, 64, "task-1", &si,
                                   err, sizeof err);
    if (rc == SA_OK) sa__status_info_free(mem, &si);
    return rc;
}

static int op_score_info(const sa_mem *mem, void *arg)
{
    text_arg *t = arg;
    cJSON *root = NULL;
    sa_result *r = NULL;
    char err[128];
    int rc = sa__json_parse(t->text, t->len, 64, &root);
    if (rc != SA_OK) return -2000;
    rc = sa__result_from_score_info(mem, root, "task-1", &r, err, sizeof err);
    cJSON_Delete(root);
    sa_result_free(r);
    return rc;
}

static int op_classify(const sa_mem *mem, void *arg)
{
    text_arg *t = arg;
    sa__api_error e;
    int rc = sa__proto_classify(mem, SA__STEP_UPLOAD, 403, t->text, t->len, 64,
                               &e);
    sa__api_error_free(mem, &e);
    return rc == SA_ERR_NOMEM ? rc : SA_OK;
}

static void run_file(const char *name, op_fn op, long min_allocs)
{
    text_arg t;
    char *text = fs_example(name, &t.len);
    long n;
    if (!text) {
        HARNESS_FAIL("cannot read %s", name);
        return;
    }
    t.text = text;
    n = failmalloc_loop(name, op, &t);
    if (n < min_allocs) HARNESS_FAIL("%s: only %ld allocations", name, n);
    free(text);
}

TEST(fm_file_create)
{
    run_file("file-create-response.json", op_file_create, 4);
}

TEST(fm_task_create)
{
    run_file("task-create-response.json", op_task_create, 1);
}

TEST(fm_status_json_hd)
{
    run_file("task-status-success-json-hd.json", op_status, 1);
    run_file("task-status-error-no-face.json", op_status, 2);
}

TEST(fm_score_info)
{
    run_file("score-info-hd.json", op_score_info, 1);
}

TEST(fm_task_body)
{
    static const char *const acts[] = {"hd_wrinkle", "hd_pore", "hd_acne"};
    const char *ms = "{\"color_dark_background_hd_pore\":\"3D3D3D\","
                     "\"opacity_dark_background_hd_pore\":0.4}";
    sa__task_params p;
    cJSON *extra = NULL;
    long n;
    REQUIRE(sa__json_parse(ms, strlen(ms), 8, &extra) == SA_OK);
    p = (sa__task_params){
        .src_file_id = "SaGaqpDgKwFrVBgMpQMA3HY0LeqdT9/13W5TOD8/u/FfjK3xgCQ+"
                       "hRt9MJXBFaud-a-long-id-to-make-the-buffer-grow-more-"
                       "than-once-0123456789012345678901234567890123456789",
        .actions = acts, .n_actions = 3, .format = SA_FORMAT_JSON,
        .api_version = SA_API_V2_1, .pf_camera_kit = 1, .mask_overlay = 1,
        .miniserver_args = extra};
    n = failmalloc_loop("task body", op_task_body, &p);
    CHECK(n >= 2); /* the buffer grows at least once */
    n = failmalloc_loop("file body", op_file_body, "portrait.jpg");
    CHECK(n >= 1);
    cJSON_Delete(extra);
}

TEST(fm_classify)
{
    static const char *const bodies[] = {
        "{\"status\":400,\"error\":\"Invalid task ID\",\"error_code\":\"X\"}",
        "<Error><Code>AccessDenied</Code><Message>Request has expired"
        "</Message></Error>",
        "<html><title>502 Bad Gateway</title></html>", "plain text\nmore"};
    size_t i;
    for (i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        text_arg t;
        t.text = bodies[i];
        t.len = strlen(bodies[i]);
        CHECK(failmalloc_loop("classify", op_classify, &t) >= 1);
    }
}

int main(void)
{
    RUN(fm_file_create);
    RUN(fm_task_create);
    RUN(fm_status_json_hd);
    RUN(fm_score_info);
    RUN(fm_task_body);
    RUN(fm_classify);
    (void)harness_slurp;
    return harness_report();
}
