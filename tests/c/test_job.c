/*
 * test_job.c - the job state machine (core/src/job.c) with scripted answers
 * and fake time: every transition, every retry rule, polling, deadline,
 * cancel/abandon, limits, sticky errors, and what goes on the wire.
 */
#include "harness.h"
#include "support_fakeserver.h"

#include <stdint.h>

#define T0 ((int64_t)1000000)
#define BASE "https://api.test"
#define IMG_SIZE 547541  /* the size file-create-response.json declares */

static const char *const sd_actions[] = { "wrinkle", "pore" };

/* Scripted answers (the spec's example bodies where one exists). */
#define FILE_OK FS_FILE_OK("rid-file")
#define TASK_OK FS_TASK_OK(120, "rid-task")
#define RUNNING FS_RUNNING(NULL)
#define SUCCESS FS_SUCCESS("task-status-success-json-sd.json", "rid-poll")
/* A whole job from the file create on, every answer a success. */
#define ALL_OK FILE_OK, FS_UPLOAD_OK, TASK_OK, SUCCESS
#define HTTP(stp, code, txt) { .step = (stp), .http = (code), .body = (txt), \
                               .latency_ms = 50 }
#define EXAMPLE(stp, code, file) { .step = (stp), .http = (code), \
                                   .example = (file), .latency_ms = 50 }
#define NET(stp, err, unsent) { .step = (stp), .transport = (err), \
                                .not_sent = (unsent), .latency_ms = 30 }
#define TIMEOUT(stp) { .step = (stp), .transport = SA_ERR_TIMEOUT, \
                       .latency_ms = FS_TIMEOUT }

#define TASK_ID "SaGaqpDgKwFrVBgMpQMA3HY0LeqdT9_13W5TOD8_u_GPi6NqQ3dhlmN-6ntFwhzT"
#define FILE_ID "SaGaqpDgKwFrVBgMpQMA3HY0LeqdT9/13W5TOD8/u/FfjK3xgCQ+hRt9MJXBFaud"
#define POLL_URL BASE "/s2s/v2.1/task/skin-analysis/" TASK_ID

static const char html_502[] =
    "<html><head><title>502 Bad Gateway</title></head><body><center><h1>"
    "502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>";

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* One test's world: allocator, rng, config, machine, fake clock. */
typedef struct jt {
    fs_mem m;
    uint64_t rng;
    sa__job_config cfg;
    sa__jobsm *sm;
    fs_run run;
} jt;

static jt *jt_new(void)
{
    jt *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    fs_mem_init(&t->m, 0, 0);
    t->rng = 0x2545F4914F6CDD1DULL;
    fs_job_config(&t->cfg, &t->m, &t->rng, BASE, T0);
    t->cfg.file_path = "/photos/me.png";
    t->cfg.file_size = IMG_SIZE;
    t->cfg.content_type = "image/png";
    t->cfg.file_name = "me.png";
    t->cfg.task.actions = sd_actions;
    t->cfg.task.n_actions = N(sd_actions);
    t->cfg.task.format = SA_FORMAT_JSON;
    t->cfg.task.pf_camera_kit = -1;
    t->cfg.task.mask_overlay = -1;
    t->cfg.max_polls = 2000;
    fs_run_init(&t->run, T0);
    return t;
}

static void use_image_url(jt *t)
{
    t->cfg.file_path = NULL;
    t->cfg.file_size = 0;
    t->cfg.content_type = NULL;
    t->cfg.file_name = NULL;
    t->cfg.image_url = "https://img.example/face.jpg";
}

static void use_task_id(jt *t)
{
    use_image_url(t);
    t->cfg.image_url = NULL;
    t->cfg.task.actions = NULL;
    t->cfg.task.n_actions = 0;
    t->cfg.task_id = TASK_ID;
}

/* Where the job's image comes from: the local file jt_new sets, an image
 * URL, or a task created earlier (resumed by id). */
typedef enum { FROM_FILE, FROM_URL, FROM_TASK } jt_source;

/* jt_new with the source set (NULL if out of memory). */
static jt *jt_from(jt_source src)
{
    jt *t = jt_new();
    if (t && src == FROM_URL) use_image_url(t);
    if (t && src == FROM_TASK) use_task_id(t);
    return t;
}

static int jt_start(jt *t)
{
    return sa__jobsm_new(&t->cfg, t->run.now, &t->sm);
}

/* jt_from with the machine started: NULL if either failed. */
static jt *jt_started(jt_source src)
{
    jt *t = jt_from(src);
    if (t && jt_start(t) != SA_OK) {
        free(t);
        return NULL;
    }
    return t;
}

static size_t jt_drive(jt *t, const fs_reply *script, size_t n)
{
    return fs_drive(&t->run, t->sm, script, n);
}

/* jt_started, driven through script[0..n) and cancelled then (abandon:
 * the task is not polled to its end), which must answer `polled` (whether
 * the task is still polled).  NULL if it did not start. */
static jt *jt_cancelled(jt_source src, const fs_reply *script, size_t n,
                        int abandon, int polled)
{
    jt *t = jt_started(src);
    if (!t) return NULL;
    jt_drive(t, script, n);
    CHECK_EQ_INT(sa__jobsm_cancel(t->sm, t->run.now, abandon), polled);
    return t;
}

/* jt_started, then driven through script[0..n), its status checked
 * against `status` (NULL if it did not start). */
static jt *jt_ran(jt_source src, const fs_reply *script, size_t n,
                  int status)
{
    jt *t = jt_started(src);
    if (!t) return NULL;
    jt_drive(t, script, n);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), status);
    return t;
}

/* Free everything; nothing may leak, the driver saw no violation, and no
 * known task was ever left unpolled for longer than the safe window. */
static void jt_end(jt *t)
{
    if (t->run.max_poll_gap > t->cfg.max_poll_interval_ms)
        HARNESS_FAIL("a task went unpolled for %lld ms",
                     (long long)t->run.max_poll_gap);
    sa__jobsm_free(t->sm);
    if (t->m.live != 0) HARNESS_FAIL("%ld allocations leaked", t->m.live);
    if (t->run.errors)
        HARNESS_FAIL("driver: %d error(s), first: %s", t->run.errors,
                     t->run.error);
    free(t);
}

/* t: a job from src with one setting changed (t->cfg.field = value),
 * started; the test stops where it cannot be. */
#define JT_WITH(t, src, field, value)                                    \
    do {                                                                 \
        (t) = jt_from(src);                                              \
        REQUIRE(t);                                                      \
        (t)->cfg.field = (value);                                        \
        REQUIRE(jt_start(t) == SA_OK);                                   \
    } while (0)

/* A whole run that must end with `status` after `count` requests of
 * `step` (jt_ran, fs_count, jt_end). */
static void jt_ran_counts(jt_source src, const fs_reply *script, size_t n,
                          int status, int step, size_t count)
{
    jt *t = jt_ran(src, script, n, status);
    REQUIRE(t);
    CHECK_EQ_INT(fs_count(&t->run, step), count);
    jt_end(t);
}

/* The machine ended: the job with `status`, its task polled to a success
 * (the task's outcome SA_OK). */
static void jt_check_task_done(jt *t, int status)
{
    const char *msg = NULL;
    CHECK(t->run.ended);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), status);
    CHECK_EQ_INT(sa__jobsm_task_outcome(t->sm, &msg), SA_OK);
}

static int contains(const char *s, const char *needle)
{
    return s && needle && strstr(s, needle) != NULL;
}

/* Stands for a request that was never sent (step -1, empty strings). */
static const fs_event no_event = { .step = -1, .answered_at = -1 };

/* The i-th request sent, or no_event. */
static const fs_event *ev(const jt *t, size_t i)
{
    return i < t->run.n_events && i < FS_MAX_EVENTS ? &t->run.ev[i]
                                                     : &no_event;
}

/* The i-th request of a step, or no_event. */
static const fs_event *ev_of(const jt *t, int step, size_t i)
{
    size_t k;
    for (k = 0; k < t->run.n_events && k < FS_MAX_EVENTS; k++)
        if (t->run.ev[k].step == step && i-- == 0) return &t->run.ev[k];
    return &no_event;
}

/* Delay between the answer of request i and the next send (-1: none). */
static int64_t gap_after(const jt *t, size_t i)
{
    const fs_event *a = ev(t, i), *b = ev(t, i + 1);
    return a->step >= 0 && b->step >= 0 ? b->sent_at - a->answered_at : -1;
}

/* ------------------------------------------------------------------ */
/* Happy paths and transitions                                         */
/* ------------------------------------------------------------------ */

TEST(happy_path_upload)
{
    static const fs_reply script[] = { FILE_OK, FS_UPLOAD_OK, TASK_OK, RUNNING,
                                       RUNNING, SUCCESS };
    static const int states[] = {
        SA_JOB_FILE_CREATE, SA_JOB_UPLOAD, SA_JOB_TASK_CREATE,
        SA_JOB_POLL_WAIT, SA_JOB_POLLING, SA_JOB_POLL_WAIT, SA_JOB_POLLING,
        SA_JOB_POLL_WAIT, SA_JOB_POLLING, SA_JOB_DONE };
    jt *t = jt_started(FROM_FILE);
    const fs_event *e;
    const sa_result *r;

    REQUIRE(t);
    CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_FILE_CREATE);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_NOT_DONE);
    CHECK_EQ_INT(jt_drive(t, script, N(script)), N(script));
    CHECK(t->run.ended && !t->run.abandoned);
    CHECK(fs_trace_is(&t->run, states, N(states)));
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_OK);
    CHECK_STR(sa__jobsm_errmsg(t->sm), "");
    CHECK_EQ_INT(sa__jobsm_polls(t->sm), 3);
    CHECK_STR(sa__jobsm_task_id(t->sm), TASK_ID);
    CHECK_STR(sa__jobsm_file_id(t->sm), FILE_ID);
    CHECK_STR(sa__jobsm_request_id(t->sm), "rid-poll");
    CHECK_EQ_INT(sa__jobsm_http_status(t->sm), 200);
    CHECK_EQ_INT(sa__jobsm_task_maybe_created(t->sm), 1);
    CHECK_EQ_INT(sa__jobsm_background(t->sm), 0);
    r = sa__jobsm_result(t->sm);
    CHECK(r != NULL);
    CHECK(sa_result_count(r) > 0);
    CHECK_STR(sa_result_task_id(r), TASK_ID);

    /* file create: POST, API host, JSON body with the declared size */
    e = ev(t, 0);
    CHECK_EQ_INT(e->step, SA__STEP_FILE_CREATE);
    CHECK_EQ_INT(e->method, SA__HTTP_POST);
    CHECK_EQ_INT(e->api_host, 1);
    CHECK_STR(e->url, BASE "/s2s/v2.1/file/skin-analysis");
    CHECK_EQ_INT(e->n_headers, 1);
    CHECK_STR(e->headers[0], "Content-Type: application/json");
    CHECK(contains(e->body, "547541"));
    CHECK(contains(e->body, "image/png"));
    CHECK(contains(e->body, "me.png"));
    CHECK_EQ_INT(e->timeout_ms, 30000);
    /* upload: PUT to the pre-signed URL, the slot's headers only, no auth */
    e = ev(t, 1);
    CHECK_EQ_INT(e->step, SA__STEP_UPLOAD);
    CHECK_EQ_INT(e->method, SA__HTTP_PUT);
    CHECK_EQ_INT(e->api_host, 0);
    CHECK_STR(e->url, "https://yce-us.s3-accelerate.amazonaws.com/demo/ttl30/"
                      "...signature...");
    CHECK_EQ_INT(e->n_headers, 2);
    CHECK_STR(e->headers[0], "Content-Length: 547541");
    CHECK_STR(e->headers[1], "Content-Type: image/png");
    CHECK_STR(e->upload_file, "/photos/me.png");
    CHECK(e->upload_buf == NULL);
    CHECK_EQ_INT(e->upload_size, IMG_SIZE);
    CHECK_EQ_INT(e->timeout_ms, 120000);
    CHECK(e->body[0] == '\0');
    /* task create: POST with the file id */
    e = ev(t, 2);
    CHECK_EQ_INT(e->step, SA__STEP_TASK_CREATE);
    CHECK_EQ_INT(e->method, SA__HTTP_POST);
    CHECK_EQ_INT(e->api_host, 1);
    CHECK_STR(e->url, BASE "/s2s/v2.1/task/skin-analysis");
    CHECK(contains(e->body, "src_file_id"));
    CHECK(contains(e->body, "13W5TOD8"));
    CHECK(contains(e->body, "wrinkle") && contains(e->body, "pore"));
    CHECK_STR(e->headers[0], "Content-Type: application/json");
    /* polls: GET task path + "/" + id, API host, short timeout, no body */
    e = ev(t, 3);
    CHECK_EQ_INT(e->step, SA__STEP_POLL);
    CHECK_EQ_INT(e->method, SA__HTTP_GET);
    CHECK_EQ_INT(e->api_host, 1);
    CHECK_STR(e->url, POLL_URL);
    CHECK(e->body[0] == '\0');
    CHECK(e->timeout_ms > 0 && e->timeout_ms <= 5000);
    /* first poll poll_interval_ms after the create answer, then every 2 s */
    CHECK_EQ_INT(gap_after(t, 2), 2000);
    CHECK_EQ_INT(gap_after(t, 3), 2000);
    CHECK(t->run.max_poll_gap <= 10000);
    jt_end(t);
}

TEST(happy_path_image_url)
{
    static const fs_reply script[] = { TASK_OK, SUCCESS };
    static const int states[] = { SA_JOB_TASK_CREATE, SA_JOB_POLL_WAIT,
                                  SA_JOB_POLLING, SA_JOB_DONE };
    jt *t;

    JT_WITH(t, FROM_URL, api_version, SA_API_V2_0);
    CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_TASK_CREATE);
    jt_drive(t, script, N(script));
    CHECK(fs_trace_is(&t->run, states, N(states)));
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_OK);
    CHECK_EQ_INT(fs_count(&t->run, SA__STEP_FILE_CREATE), 0);
    CHECK_EQ_INT(fs_count(&t->run, SA__STEP_UPLOAD), 0);
    CHECK_STR(ev(t, 0)->url, BASE "/s2s/v2.0/task/skin-analysis");
    CHECK(contains(ev(t, 0)->body, "src_file_url"));
    CHECK(contains(ev(t, 0)->body, "img.example/face.jpg"));
    CHECK(!contains(ev(t, 0)->body, "src_file_id"));
    CHECK_STR(ev(t, 1)->url, BASE "/s2s/v2.0/task/skin-analysis/" TASK_ID);
    CHECK(sa__jobsm_file_id(t->sm) == NULL);
    jt_end(t);
}

TEST(happy_path_file_id_and_buffer)
{
    static const fs_reply script[] = { TASK_OK, SUCCESS };
    static const fs_reply script2[] = { ALL_OK };
    static const char bytes[IMG_SIZE];
    jt *t = jt_from(FROM_URL);

    REQUIRE(t);
    t->cfg.image_url = NULL;
    t->cfg.file_id = "known/file+id=";
    REQUIRE(jt_start(t) == SA_OK);
    CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_TASK_CREATE);
    CHECK_STR(sa__jobsm_file_id(t->sm), "known/file+id=");
    jt_drive(t, script, N(script));
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_OK);
    CHECK(contains(ev(t, 0)->body, "known/file+id="));
    jt_end(t);

    /* an in-memory image is uploaded from the caller's buffer */
    t = jt_new();
    REQUIRE(t);
    t->cfg.file_path = NULL;
    t->cfg.buffer = bytes;
    REQUIRE(jt_start(t) == SA_OK);
    jt_drive(t, script2, N(script2));
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_OK);
    CHECK(ev(t, 1)->upload_buf == bytes);
    CHECK(ev(t, 1)->upload_file == NULL);
    CHECK_EQ_INT(ev(t, 1)->upload_size, IMG_SIZE);
    jt_end(t);
}

TEST(config_is_copied)
{
    char base[64], path[64], action[32], args_txt[] = "{\"enable_mask_overlay\":true}";
    const char *actions[1];
    static const fs_reply script[] = { ALL_OK };
    cJSON *args = NULL;
    jt *t = jt_new();

    REQUIRE(sa__json_parse(args_txt, strlen(args_txt), 8, &args) == SA_OK);
    REQUIRE(t && args);
    strcpy(base, BASE "/");   /* a trailing slash is tolerated */
    strcpy(path, "/photos/me.png");
    strcpy(action, "texture");
    actions[0] = action;
    t->cfg.base_url = base;
    t->cfg.file_path = path;
    t->cfg.task.actions = actions;
    t->cfg.task.n_actions = 1;
    t->cfg.task.miniserver_args = args;
    REQUIRE(jt_start(t) == SA_OK);
    memset(base, 'x', sizeof base - 1);
    memset(path, 'y', sizeof path - 1);
    strcpy(action, "garbage");
    cJSON_Delete(args);
    t->cfg.task.miniserver_args = NULL;
    jt_drive(t, script, N(script));
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_OK);
    CHECK_STR(ev(t, 0)->url, BASE "/s2s/v2.1/file/skin-analysis");
    CHECK_STR(ev(t, 1)->upload_file, "/photos/me.png");
    CHECK(contains(ev(t, 2)->body, "texture"));
    CHECK(!contains(ev(t, 2)->body, "garbage"));
    jt_end(t);
}

TEST(new_rejects_bad_configs)
{
    jt *t = jt_new();
    int dummy = 0;
    sa__jobsm *sm = (sa__jobsm *)(void *)&dummy;

    REQUIRE(t);
    CHECK_EQ_INT(sa__jobsm_new(NULL, T0, &sm), SA_ERR_INVALID_ARGUMENT);
    CHECK(sm == NULL);
    CHECK_EQ_INT(sa__jobsm_new(&t->cfg, T0, NULL), SA_ERR_INVALID_ARGUMENT);
    t->cfg.image_url = "https://x/y.jpg";       /* two sources */
    CHECK_EQ_INT(jt_start(t), SA_ERR_INVALID_ARGUMENT);
    t->cfg.image_url = NULL;
    t->cfg.task.n_actions = 0;
    CHECK_EQ_INT(jt_start(t), SA_ERR_INVALID_ARGUMENT);
    t->cfg.task.n_actions = 2;
    t->cfg.max_poll_interval_ms = 100;
    CHECK_EQ_INT(jt_start(t), SA_ERR_INVALID_ARGUMENT);
    t->cfg.max_poll_interval_ms = 10000;
    t->cfg.max_polls = -1;                      /* 0 is "no bound" */
    CHECK_EQ_INT(jt_start(t), SA_ERR_INVALID_ARGUMENT);
    t->cfg.max_polls = 10;
    t->cfg.task_id = TASK_ID;                   /* resume, with a source */
    CHECK_EQ_INT(jt_start(t), SA_ERR_INVALID_ARGUMENT);
    t->cfg.file_path = NULL;
    t->cfg.task_id = "";                        /* resume, empty id */
    CHECK_EQ_INT(jt_start(t), SA_ERR_INVALID_ARGUMENT);
    t->cfg.task_id = NULL;
    t->cfg.file_path = "/photos/me.png";
    t->cfg.api_version = 3;
    CHECK_EQ_INT(jt_start(t), SA_ERR_INVALID_ARGUMENT);
    t->cfg.api_version = SA_API_V2_1;
    t->cfg.file_size = 0;
    CHECK_EQ_INT(jt_start(t), SA_ERR_INVALID_ARGUMENT);
    CHECK(t->sm == NULL);
    /* NULL-safe getters and free */
    CHECK_EQ_INT(sa__jobsm_state(NULL), SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(sa__jobsm_status(NULL), SA_ERR_INVALID_ARGUMENT);
    CHECK_STR(sa__jobsm_errmsg(NULL), "");
    CHECK(sa__jobsm_task_id(NULL) == NULL && sa__jobsm_result(NULL) == NULL);
    CHECK_EQ_INT(sa__jobsm_cancel(NULL, T0, 0), 0);
    CHECK_EQ_INT(sa__jobsm_next(NULL, T0, NULL), SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(sa__jobsm_on_response(NULL, T0, NULL),
                 SA_ERR_INVALID_ARGUMENT);
    sa__jobsm_free(NULL);
    CHECK_STR(sa__jobsm_state_name(SA_JOB_POLL_WAIT), "poll_wait");
    CHECK_STR(sa__jobsm_state_name(SA_JOB_STATE__LAST), "?");
    CHECK_STR(sa__jobsm_state_name(-1), "?");
    jt_end(t);
}

/* ------------------------------------------------------------------ */
/* Retries                                                             */
/* ------------------------------------------------------------------ */

TEST(file_create_503_then_ok)
{
    static const fs_reply script[] = {
        HTTP(SA__STEP_FILE_CREATE, 503, "{\"status\":503,\"error\":\"busy\"}"),
        ALL_OK };
    static const int states[] = {
        SA_JOB_FILE_CREATE, SA_JOB_BACKOFF, SA_JOB_FILE_CREATE, SA_JOB_UPLOAD,
        SA_JOB_TASK_CREATE, SA_JOB_POLL_WAIT, SA_JOB_POLLING, SA_JOB_DONE };
    jt *t = jt_started(FROM_FILE);

    REQUIRE(t);
    t->run.stop_state = SA_JOB_BACKOFF;
    jt_drive(t, script, 1);
    CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_BACKOFF);
    CHECK(contains(sa__jobsm_errmsg(t->sm), "503"));
    CHECK(contains(sa__jobsm_errmsg(t->sm), "retry 1 of 6"));
    t->run.stop_state = -1;
    jt_drive(t, script + 1, N(script) - 1);
    CHECK(fs_trace_is(&t->run, states, N(states)));
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_OK);
    CHECK_STR(sa__jobsm_errmsg(t->sm), "");
    CHECK(gap_after(t, 0) >= 0 && gap_after(t, 0) <= 500);
    jt_end(t);
}

TEST(upload_reset_then_ok)
{
    static const fs_reply script[] = {
        FILE_OK, NET(SA__STEP_UPLOAD, SA_ERR_TRANSPORT, 0),
        TIMEOUT(SA__STEP_UPLOAD), FS_UPLOAD_OK, TASK_OK, SUCCESS };
    static const int states[] = {
        SA_JOB_FILE_CREATE, SA_JOB_UPLOAD, SA_JOB_BACKOFF, SA_JOB_UPLOAD,
        SA_JOB_BACKOFF, SA_JOB_UPLOAD, SA_JOB_TASK_CREATE };
    jt *t = jt_started(FROM_FILE);

    REQUIRE(t);
    jt_drive(t, script, N(script));
    CHECK(fs_trace_has(&t->run, states, N(states)));
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_OK);
    CHECK_EQ_INT(fs_count(&t->run, SA__STEP_UPLOAD), 3);
    CHECK_EQ_INT(fs_count(&t->run, SA__STEP_FILE_CREATE), 1);
    CHECK(gap_after(t, 1) <= 500);
    CHECK(gap_after(t, 2) <= 1000);
    /* the same slot is used again, verbatim */
    CHECK_STR(ev_of(t, SA__STEP_UPLOAD, 2)->headers[0], "Content-Length: 547541");
    CHECK_EQ_INT(ev_of(t, SA__STEP_UPLOAD, 2)->api_host, 0);
    jt_end(t);
}

TEST(poll_502_html_then_ok)
{
    static const fs_reply script[] = {
        TASK_OK, RUNNING, HTTP(SA__STEP_POLL, 502, html_502), SUCCESS };
    jt *t = jt_ran(FROM_URL, script, N(script), SA_OK);

    REQUIRE(t);
    CHECK_EQ_INT(sa__jobsm_polls(t->sm), 3);
    CHECK(gap_after(t, 2) <= 500);
    CHECK(t->run.max_poll_gap <= 10000);
    jt_end(t);
}

TEST(rate_limited_on_every_step)
{
    static const fs_reply script[] = {
        EXAMPLE(SA__STEP_FILE_CREATE, 429, "error-429.json"), FILE_OK,
        HTTP(SA__STEP_UPLOAD, 429, ""), FS_UPLOAD_OK,
        EXAMPLE(SA__STEP_TASK_CREATE, 429, "error-429.json"), TASK_OK,
        EXAMPLE(SA__STEP_POLL, 429, "error-429.json"), RUNNING,
        EXAMPLE(SA__STEP_POLL, 429, "error-429.json"), SUCCESS };
    jt *t = jt_started(FROM_FILE);

    REQUIRE(t);
    CHECK_EQ_INT(jt_drive(t, script, N(script)), N(script));
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_OK);
    CHECK_EQ_INT(fs_count(&t->run, SA__STEP_FILE_CREATE), 2);
    CHECK_EQ_INT(fs_count(&t->run, SA__STEP_UPLOAD), 2);
    CHECK_EQ_INT(fs_count(&t->run, SA__STEP_TASK_CREATE), 2);
    CHECK_EQ_INT(fs_count(&t->run, SA__STEP_POLL), 4);
    jt_end(t);
}

TEST(task_create_not_sent_is_retried)
{
    static const fs_reply script[] = {
        NET(SA__STEP_TASK_CREATE, SA_ERR_TRANSPORT, 1),
        NET(SA__STEP_TASK_CREATE, SA_ERR_TIMEOUT, 1), TASK_OK, SUCCESS };
    jt *t = jt_started(FROM_URL);

    REQUIRE(t);
    t->run.stop_state = SA_JOB_BACKOFF;
    jt_drive(t, script, 1);
    CHECK_EQ_INT(sa__jobsm_task_maybe_created(t->sm), 0);
    t->run.stop_state = -1;
    jt_drive(t, script + 1, N(script) - 1);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_OK);
    CHECK_EQ_INT(fs_count(&t->run, SA__STEP_TASK_CREATE), 3);
    jt_end(t);
}

/* Every failure after the create request may have reached the server ends
 * AMBIGUOUS, and a second create is never sent. */
TEST(task_create_ambiguous)
{
    static const fs_reply cases[] = {
        TIMEOUT(SA__STEP_TASK_CREATE),
        NET(SA__STEP_TASK_CREATE, SA_ERR_TRANSPORT, 0),
        NET(SA__STEP_TASK_CREATE, SA_ERR_LIMIT, 0),
        HTTP(SA__STEP_TASK_CREATE, 500,
             "{\"status\":500,\"error\":\"unknown_internal_error\"}"),
        HTTP(SA__STEP_TASK_CREATE, 502, html_502),
        HTTP(SA__STEP_TASK_CREATE, 503, ""),
        HTTP(SA__STEP_TASK_CREATE, 200, "<html>oops</html>"),
        HTTP(SA__STEP_TASK_CREATE, 200, "{\"status\":200,\"data\":{}}"),
        HTTP(SA__STEP_TASK_CREATE, 200, ""),
        /* an id cut by a NUL would poll another task ("TASK"): unreadable */
        HTTP(SA__STEP_TASK_CREATE, 200, "{\"status\":200,\"data\":{\"task_id\":"
             "\"" TASK_ID "\\u0000/../../other\"}}"),
        HTTP(SA__STEP_TASK_CREATE, 200, "{\"status\":200,\"data\":{\"task_id\":"
             "\"..\"}}"),
    };
    size_t i;

    for (i = 0; i < N(cases); i++) {
        fs_reply script[2];
        jt *t = jt_from(FROM_URL);
        REQUIRE(t);
        script[0] = cases[i];
        script[1] = (fs_reply)TASK_OK;
        REQUIRE(jt_start(t) == SA_OK);
        CHECK_EQ_INT(jt_drive(t, script, 2), 1);
        CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_FAILED);
        CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_AMBIGUOUS);
        CHECK_EQ_INT(fs_count(&t->run, SA__STEP_TASK_CREATE), 1);
        CHECK_EQ_INT(sa__jobsm_task_maybe_created(t->sm), 1);
        CHECK(contains(sa__jobsm_errmsg(t->sm), "may have been created"));
        CHECK(t->run.ended);
        if (harness_cur_failed) fprintf(stderr, "  (case %zu)\n", i);
        jt_end(t);
    }
}

/* The details describe the last request: a task create that got no answer
 * has no HTTP status, not the upload's 200 (nor the file create's
 * x-request-id). */
TEST(ambiguous_create_reports_no_earlier_status)
{
    static const fs_reply script[] = {
        FILE_OK, FS_UPLOAD_OK, TIMEOUT(SA__STEP_TASK_CREATE) };
    jt *t = jt_started(FROM_FILE);

    REQUIRE(t);
    CHECK_EQ_INT(jt_drive(t, script, N(script)), N(script));
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_AMBIGUOUS);
    CHECK_EQ_INT(sa__jobsm_http_status(t->sm), 0);
    CHECK(sa__jobsm_request_id(t->sm) == NULL);
    jt_end(t);
}

TEST(task_create_refusals_are_final)
{
    static const struct { fs_reply r; int status; const char *code; } cases[] = {
        { EXAMPLE(SA__STEP_TASK_CREATE, 401, "error-401.json"), SA_ERR_AUTH, NULL },
        { EXAMPLE(SA__STEP_TASK_CREATE, 401, "error-401-observed.json"),
          SA_ERR_AUTH, "InvalidApiKey" },
        { HTTP(SA__STEP_TASK_CREATE, 400, "{\"status\":400,\"error\":\"no units\","
               "\"error_code\":\"CreditInsufficiency\"}"),
          SA_ERR_CREDITS, "CreditInsufficiency" },
        { EXAMPLE(SA__STEP_TASK_CREATE, 400, "error-400-mix-hd-sd.json"),
          SA_ERR_BAD_REQUEST, "InvalidParameters" },
        { HTTP(SA__STEP_TASK_CREATE, 404, "{\"status\":404,\"error\":\"not found\"}"),
          SA_ERR_BAD_REQUEST, NULL },
    };
    size_t i;

    for (i = 0; i < N(cases); i++) {
        jt *t = jt_ran(FROM_URL, &cases[i].r, 1, cases[i].status);
        REQUIRE(t);
        CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_FAILED);
        CHECK_EQ_INT(sa__jobsm_task_maybe_created(t->sm), 0);
        CHECK_EQ_INT(sa__jobsm_http_status(t->sm), cases[i].r.http);
        if (cases[i].code)
            CHECK_STR(sa__jobsm_api_error_code(t->sm), cases[i].code);
        CHECK(contains(sa__jobsm_errmsg(t->sm), "task create"));
        if (harness_cur_failed) fprintf(stderr, "  (case %zu)\n", i);
        jt_end(t);
    }
}

TEST(file_create_refusals_are_final)
{
    static const struct { fs_reply r; int status; } cases[] = {
        { EXAMPLE(SA__STEP_FILE_CREATE, 401, "error-401.json"), SA_ERR_AUTH },
        { HTTP(SA__STEP_FILE_CREATE, 400, "{\"status\":400,\"error\":\"Invalid "
               "parameter value\",\"error_code\":\"InvalidParameters\"}"),
          SA_ERR_BAD_REQUEST },
        { NET(SA__STEP_FILE_CREATE, SA_ERR_LIMIT, 0), SA_ERR_LIMIT },
    };
    size_t i;

    for (i = 0; i < N(cases); i++) {
        jt *t = jt_ran(FROM_FILE, &cases[i].r, 1, cases[i].status);
        REQUIRE(t);
        CHECK_EQ_INT(fs_count(&t->run, SA__STEP_FILE_CREATE), 1);
        CHECK(t->run.ended);
        if (harness_cur_failed) fprintf(stderr, "  (case %zu)\n", i);
        jt_end(t);
    }
}

/* An unreadable 200 to a file create (no units involved) is retried like
 * a transport error, within the retry budget. */
TEST(file_create_unreadable_200_is_retried)
{
    static const fs_reply script[] = {
        HTTP(SA__STEP_FILE_CREATE, 200, "{\"status\":200,\"data\":{}}"),
        HTTP(SA__STEP_FILE_CREATE, 200, "<html>proxy</html>"),
        ALL_OK };
    fs_reply bad[4];
    size_t i;
    jt *t = jt_started(FROM_FILE);

    REQUIRE(t);
    CHECK_EQ_INT(jt_drive(t, script, N(script)), N(script));
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_OK);
    CHECK_EQ_INT(fs_count(&t->run, SA__STEP_FILE_CREATE), 3);
    jt_end(t);

    /* the budget: max_retries retries, then SA_ERR_PROTOCOL */
    t = jt_new();
    REQUIRE(t);
    t->cfg.max_retries = 2;
    for (i = 0; i < N(bad); i++)
        bad[i] = (fs_reply)HTTP(SA__STEP_FILE_CREATE, 200, "not json");
    REQUIRE(jt_start(t) == SA_OK);
    CHECK_EQ_INT(jt_drive(t, bad, N(bad)), 3);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_PROTOCOL);
    CHECK_EQ_INT(sa__jobsm_task_maybe_created(t->sm), 0);
    CHECK(contains(sa__jobsm_errmsg(t->sm), "gave up after 3"));
    CHECK(t->run.ended);
    jt_end(t);
}

/* A file_id that a NUL would cut ("FILE\u0000EVIL": a billed task on file
 * FILE) makes the answer unreadable: retried like any unreadable file
 * create answer, never uploaded to, never leading to a task create. */
TEST(file_create_nul_id_never_creates_a_task)
{
    fs_reply script[6];
    size_t i;
    jt *t = jt_new();

    REQUIRE(t);
    t->cfg.max_retries = 2;
    for (i = 0; i < 3; i++)
        script[i] = (fs_reply)HTTP(SA__STEP_FILE_CREATE, 200,
            "{\"status\":200,\"data\":{\"files\":[{\"file_id\":"
            "\"FILE\\u0000EVIL\",\"requests\":[{\"method\":\"PUT\",\"url\":"
            "\"https://s3.test/up\",\"headers\":{\"Content-Type\":"
            "\"image/png\"}}]}]}}");
    script[3] = (fs_reply)FS_UPLOAD_OK;
    script[4] = (fs_reply)TASK_OK;
    script[5] = (fs_reply)SUCCESS;
    REQUIRE(jt_start(t) == SA_OK);
    CHECK_EQ_INT(jt_drive(t, script, N(script)), 3);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_PROTOCOL);
    CHECK_EQ_INT(fs_count(&t->run, SA__STEP_UPLOAD), 0);
    CHECK_EQ_INT(fs_count(&t->run, SA__STEP_TASK_CREATE), 0);
    CHECK_EQ_INT(sa__jobsm_task_maybe_created(t->sm), 0);
    CHECK(sa__jobsm_file_id(t->sm) == NULL);
    CHECK(contains(sa__jobsm_errmsg(t->sm), "NUL"));
    jt_end(t);
}

TEST(file_create_404_falls_back_to_generic_path)
{
    static const fs_reply script[] = {
        HTTP(SA__STEP_FILE_CREATE, 404, "{\"status\":404,\"error\":\"Not Found\"}"),
        ALL_OK };
    static const fs_reply twice[] = {
        HTTP(SA__STEP_FILE_CREATE, 404, ""), HTTP(SA__STEP_FILE_CREATE, 404, "") };
    jt *t = jt_ran(FROM_FILE, script, N(script), SA_OK);

    REQUIRE(t);
    CHECK_STR(ev(t, 0)->url, BASE "/s2s/v2.1/file/skin-analysis");
    CHECK_STR(ev(t, 1)->url, BASE "/s2s/v2.0/file");
    CHECK_EQ_INT(gap_after(t, 0), 0);
    jt_end(t);

    jt_ran_counts(FROM_FILE, twice, N(twice), SA_ERR_BAD_REQUEST,
                  SA__STEP_FILE_CREATE, 2);
}

TEST(upload_refusals)
{
    static const char expired[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied"
        "</Code><Message>Request has expired</Message></Error>";
    static const char mismatch[] =
        "<Error><Code>SignatureDoesNotMatch</Code><Message>The request "
        "signature we calculated does not match</Message></Error>";
    static const fs_reply refused[] = {
        FILE_OK, HTTP(SA__STEP_UPLOAD, 403, mismatch), TASK_OK };
    static const fs_reply refresh[] = {
        FILE_OK, HTTP(SA__STEP_UPLOAD, 403, expired), FILE_OK, FS_UPLOAD_OK,
        TASK_OK, SUCCESS };
    static const fs_reply refresh_once[] = {
        FILE_OK, HTTP(SA__STEP_UPLOAD, 403, expired), FILE_OK,
        HTTP(SA__STEP_UPLOAD, 403, expired), FILE_OK };
    static const fs_reply unreadable[] = {
        FILE_OK, NET(SA__STEP_UPLOAD, SA_ERR_FILE, 1) };
    jt *t = jt_ran(FROM_FILE, refused, N(refused), SA_ERR_UPLOAD);

    REQUIRE(t);
    CHECK_EQ_INT(sa__jobsm_http_status(t->sm), 403);
    CHECK(contains(sa__jobsm_errmsg(t->sm), "signature"));
    CHECK_EQ_INT(fs_count(&t->run, SA__STEP_TASK_CREATE), 0);
    jt_end(t);

    jt_ran_counts(FROM_FILE, refresh, N(refresh), SA_OK,
                  SA__STEP_FILE_CREATE, 2);

    t = jt_started(FROM_FILE);
    REQUIRE(t);
    CHECK_EQ_INT(jt_drive(t, refresh_once, N(refresh_once)), 4);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_UPLOAD);
    CHECK_EQ_INT(fs_count(&t->run, SA__STEP_FILE_CREATE), 2);
    jt_end(t);

    jt_ran_counts(FROM_FILE, unreadable, N(unreadable), SA_ERR_FILE,
                  SA__STEP_TASK_CREATE, 0);
}

TEST(upload_slot_checks)
{
    static const fs_reply numeric[] = {
        HTTP(SA__STEP_FILE_CREATE, 200,
             "{\"status\":200,\"data\":{\"files\":[{\"file_id\":\"F1\","
             "\"requests\":[{\"method\":\"PUT\",\"url\":\"https://s3.test/up?"
             "sig=1\",\"headers\":{\"Content-Type\":\"image/png\","
             "\"Content-Length\":547541,\"x-amz-acl\":\"private\"}}]}]}}"),
        FS_UPLOAD_OK };
    static const fs_reply wrong_size[] = {
        HTTP(SA__STEP_FILE_CREATE, 200,
             "{\"status\":200,\"data\":{\"files\":[{\"file_id\":\"F1\","
             "\"requests\":[{\"method\":\"PUT\",\"url\":\"https://s3.test/up\","
             "\"headers\":{\"Content-Length\":\"50000\"}}]}]}}") };
    static const fs_reply wrong_method[] = {
        HTTP(SA__STEP_FILE_CREATE, 200,
             "{\"status\":200,\"data\":{\"files\":[{\"file_id\":\"F1\","
             "\"requests\":[{\"method\":\"POST\",\"url\":\"https://s3.test/up\","
             "\"headers\":{}}]}]}}") };
    const fs_event *e;
    jt *t = jt_started(FROM_FILE);

    REQUIRE(t);
    t->run.stop_state = SA_JOB_TASK_CREATE;
    jt_drive(t, numeric, N(numeric));
    e = ev_of(t, SA__STEP_UPLOAD, 0);
    CHECK_EQ_INT(e->step, SA__STEP_UPLOAD);
    CHECK_EQ_INT(e->n_headers, 3);
    CHECK_STR(e->headers[0], "Content-Type: image/png");
    CHECK_STR(e->headers[1], "Content-Length: 547541");
    CHECK_STR(e->headers[2], "x-amz-acl: private");
    CHECK_STR(e->url, "https://s3.test/up?sig=1");
    CHECK_EQ_INT(e->api_host, 0);
    CHECK_STR(sa__jobsm_file_id(t->sm), "F1");
    jt_end(t);

    t = jt_ran(FROM_FILE, wrong_size, N(wrong_size), SA_ERR_PROTOCOL);
    REQUIRE(t);
    CHECK(contains(sa__jobsm_errmsg(t->sm), "50000"));
    CHECK_EQ_INT(fs_count(&t->run, SA__STEP_UPLOAD), 0);
    jt_end(t);

    jt_ran_counts(FROM_FILE, wrong_method, N(wrong_method), SA_ERR_PROTOCOL,
                  SA__STEP_UPLOAD, 0);
}

/* A slot that can never be used (not an http(s) URL, a line break in
 * it) fails the job at once: another file create would not get better. */
TEST(unusable_upload_slot_is_refused_at_once)
{
    static const char *const slots[] = {
        "\"url\":\"ftp://s3.test/up\"",
        "\"url\":\"https://s3.test/up\\r\\nHost: evil\"",
        "\"url\":\"https://s3.test/up\",\"headers\":{\"x-amz-acl\":\"a\\nb\"}",
    };
    size_t i;

    for (i = 0; i < N(slots); i++) {
        char body[512];
        fs_reply script[8];
        size_t k;
        jt *t = jt_new();
        REQUIRE(t);
        snprintf(body, sizeof body, "{\"status\":200,\"data\":{\"files\":[{"
                 "\"file_id\":\"F1\",\"requests\":[{%s}]}]}}", slots[i]);
        for (k = 0; k < N(script); k++)
            script[k] = (fs_reply)HTTP(SA__STEP_FILE_CREATE, 200, body);
        REQUIRE(jt_start(t) == SA_OK);
        CHECK_EQ_INT(jt_drive(t, script, N(script)), 1);
        CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_PROTOCOL);
        CHECK_EQ_INT(fs_count(&t->run, SA__STEP_FILE_CREATE), 1);
        CHECK_EQ_INT(fs_count(&t->run, SA__STEP_UPLOAD), 0);
        CHECK(contains(sa__jobsm_errmsg(t->sm), "file create: the upload"));
        CHECK(t->run.ended);
        if (harness_cur_failed) fprintf(stderr, "  (slot %zu)\n", i);
        jt_end(t);
    }
}

/* The budget is max_retries retries in a row; then the step's code.  The
 * status polls of a task that exists have no budget: they go on. */
TEST(retry_budget_exhausted)
{
    static const struct { fs_reply r; int before; int status; int step; } cases[] = {
        { HTTP(SA__STEP_FILE_CREATE, 503, ""), 0, SA_ERR_SERVER,
          SA__STEP_FILE_CREATE },
        { NET(SA__STEP_UPLOAD, SA_ERR_TRANSPORT, 0), 1, SA_ERR_TRANSPORT,
          SA__STEP_UPLOAD },
        { TIMEOUT(SA__STEP_UPLOAD), 1, SA_ERR_TIMEOUT, SA__STEP_UPLOAD },
        { EXAMPLE(SA__STEP_TASK_CREATE, 429, "error-429.json"), 3,
          SA_ERR_RATE_LIMITED, SA__STEP_TASK_CREATE },
        { NET(SA__STEP_TASK_CREATE, SA_ERR_TRANSPORT, 1), 3, SA_ERR_TRANSPORT,
          SA__STEP_TASK_CREATE },
        { EXAMPLE(SA__STEP_POLL, 429, "error-429.json"), 4, SA_ERR_RATE_LIMITED,
          SA__STEP_POLL },
        { HTTP(SA__STEP_POLL, 502, html_502), 4, SA_ERR_SERVER, SA__STEP_POLL },
        { HTTP(SA__STEP_POLL, 200, "not json"), 4, SA_ERR_PROTOCOL,
          SA__STEP_POLL },
        { TIMEOUT(SA__STEP_POLL), 4, SA_ERR_TIMEOUT, SA__STEP_POLL },
    };
    static const fs_reply prefix[] = { FILE_OK, FS_UPLOAD_OK, TASK_OK, RUNNING };
    size_t i, k;

    for (i = 0; i < N(cases); i++) {
        fs_reply script[16];
        size_t n = 0;
        jt *t = jt_new();
        REQUIRE(t);
        t->cfg.max_retries = 3;
        if (cases[i].before == 3) {        /* image_url: task create first */
            use_image_url(t);
        } else {
            for (k = 0; k < (size_t)cases[i].before; k++) script[n++] = prefix[k];
        }
        for (k = 0; k < 4; k++) script[n++] = cases[i].r;
        script[n++] = (fs_reply)SUCCESS;
        REQUIRE(jt_start(t) == SA_OK);
        jt_drive(t, script, n);
        if (cases[i].step == SA__STEP_POLL) {
            /* past the budget: polled on, and the success is DONE */
            CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_DONE);
            CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_OK);
            CHECK_EQ_INT(fs_count(&t->run, SA__STEP_POLL), 6);
        } else {
            CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_FAILED);
            CHECK_EQ_INT(sa__jobsm_status(t->sm), cases[i].status);
            CHECK_EQ_INT(fs_count(&t->run, cases[i].step), 4);
            CHECK(contains(sa__jobsm_errmsg(t->sm),
                           "gave up after 4 attempts"));
        }
        CHECK(t->run.max_poll_gap <= 10000);
        if (harness_cur_failed) fprintf(stderr, "  (case %zu)\n", i);
        jt_end(t);
    }
}

/* Consecutive failures: a success in between resets the count. */
TEST(poll_retry_budget_is_consecutive)
{
    static const fs_reply script[] = {
        TASK_OK, HTTP(SA__STEP_POLL, 503, ""), HTTP(SA__STEP_POLL, 503, ""),
        RUNNING, HTTP(SA__STEP_POLL, 503, ""), HTTP(SA__STEP_POLL, 503, ""),
        RUNNING, HTTP(SA__STEP_POLL, 503, ""), HTTP(SA__STEP_POLL, 503, ""),
        SUCCESS };
    jt *t;

    JT_WITH(t, FROM_URL, max_retries, 2);
    CHECK_EQ_INT(jt_drive(t, script, N(script)), N(script));
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_OK);
    CHECK_EQ_INT(sa__jobsm_polls(t->sm), 9);
    jt_end(t);
}

/* Backoff delays: within [0, min(max, initial * 2^(n-1))], the cap grows,
 * and so does the mean over many seeds. */
TEST(backoff_delays_grow_within_caps)
{
    enum { SEEDS = 200, TRIES = 7 };
    static const int64_t caps[TRIES] = { 500, 1000, 2000, 4000, 8000, 16000,
                                         16000 };
    double sum[TRIES] = { 0 };
    int64_t maxseen[TRIES] = { 0 };
    int s, k;

    for (s = 0; s < SEEDS; s++) {
        fs_reply script[TRIES + 1];
        jt *t = jt_new();
        REQUIRE(t);
        t->rng = 0x9E3779B97F4A7C15ULL * (uint64_t)(s + 1);
        t->cfg.max_retries = TRIES;
        for (k = 0; k < TRIES; k++)
            script[k] = (fs_reply)HTTP(SA__STEP_FILE_CREATE, 503, "");
        script[TRIES] = (fs_reply)FILE_OK;
        REQUIRE(jt_start(t) == SA_OK);
        t->run.stop_state = SA_JOB_UPLOAD;
        jt_drive(t, script, TRIES + 1);
        CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_UPLOAD);
        for (k = 0; k < TRIES; k++) {
            int64_t d = gap_after(t, (size_t)k);
            CHECK(d >= 0 && d <= caps[k]);
            sum[k] += (double)d;
            if (d > maxseen[k]) maxseen[k] = d;
        }
        jt_end(t);
    }
    for (k = 0; k + 1 < TRIES - 1; k++)
        CHECK(sum[k + 1] > sum[k] * 1.4);   /* mean roughly doubles */
    for (k = 0; k < TRIES; k++)
        CHECK(maxseen[k] > caps[k] * 8 / 10);  /* the whole range is used */
}

/* ------------------------------------------------------------------ */
/* Polling                                                             */
/* ------------------------------------------------------------------ */

TEST(polling_interval_honoured_and_clamped)
{
    static const fs_reply script[] = {
        TASK_OK,
        HTTP(SA__STEP_POLL, 200, "{\"status\":200,\"data\":{\"task_status\":"
             "\"running\",\"polling_interval\":1000}}"),
        HTTP(SA__STEP_POLL, 200, "{\"status\":200,\"data\":{\"task_status\":"
             "\"running\",\"polling_interval\":5}}"),
        HTTP(SA__STEP_POLL, 200, "{\"status\":200,\"data\":{\"task_status\":"
             "\"running\",\"polling_interval\":60000}}"),
        HTTP(SA__STEP_POLL, 200, "{\"status\":200,\"data\":{\"task_status\":"
             "\"running\",\"polling_interval\":null}}"),
        RUNNING,
        SUCCESS };
    jt *t = jt_ran(FROM_URL, script, N(script), SA_OK);

    REQUIRE(t);
    CHECK_EQ_INT(gap_after(t, 1), 1000);         /* as given */
    CHECK_EQ_INT(gap_after(t, 2), 200);          /* clamped up to 200 */
    /* clamped down: due 10 s after the previous poll was SENT */
    CHECK_EQ_INT(ev(t, 4)->sent_at - ev(t, 3)->sent_at, 10000);
    CHECK_EQ_INT(gap_after(t, 4), 2000);         /* absent: the default */
    CHECK_EQ_INT(gap_after(t, 5), 2000);
    CHECK(t->run.max_poll_gap <= 10000);
    jt_end(t);
}

TEST(poll_interval_above_max_is_capped)
{
    static const fs_reply script[] = { TASK_OK, RUNNING, RUNNING, SUCCESS };
    jt *t = jt_from(FROM_URL);

    REQUIRE(t);
    t->cfg.poll_interval_ms = 30000;
    t->cfg.max_poll_interval_ms = 4000;
    REQUIRE(jt_start(t) == SA_OK);
    jt_drive(t, script, N(script));
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_OK);
    CHECK_EQ_INT(gap_after(t, 0), 4000);
    CHECK_EQ_INT(ev(t, 2)->sent_at - ev(t, 1)->sent_at, 4000);
    CHECK(ev(t, 1)->timeout_ms <= 2000);
    CHECK(t->run.max_poll_gap <= 4000);
    jt_end(t);
}

/* Random mixes of poll failures, latencies and intervals: a known task is
 * never left unpolled for longer than max_poll_interval_ms. */
TEST(no_poll_gap_above_max_in_any_scenario)
{
    static const char *const bodies[] = {
        "{\"status\":200,\"data\":{\"task_status\":\"running\"}}",
        "{\"status\":200,\"data\":{\"task_status\":\"running\","
        "\"polling_interval\":9999}}",
        "{\"status\":200,\"data\":{\"task_status\":\"running\","
        "\"polling_interval\":300}}",
        "<html>502</html>", "{\"status\":429,\"error\":\"Too many requests\"}",
        "garbage" };
    int seed, worst_case = 0;
    int64_t worst = 0;

    for (seed = 1; seed <= 300; seed++) {
        fs_reply script[160];
        uint64_t r = 0x51ED2701ULL * (uint64_t)seed;
        size_t n = 0, k;
        jt *t = jt_from(FROM_URL);
        REQUIRE(t);
        t->rng = r | 1;
        t->cfg.max_retries = 8;
        t->cfg.backoff_initial_ms = 1000 + (long)(seed % 7) * 1000;
        t->cfg.backoff_max_ms = 60000;
        script[n++] = (fs_reply)TASK_OK;
        for (k = 0; k < 150; k++) {
            fs_reply x;
            uint64_t v = sa__rand(&r);
            memset(&x, 0, sizeof x);
            x.step = SA__STEP_POLL;
            x.latency_ms = (long)(v % 5001);
            switch ((v >> 20) % 8) {
            case 0: case 1: case 2:
                x.http = 200; x.body = bodies[(v >> 24) % 3]; break;
            case 3: x.http = 502; x.body = bodies[3]; break;
            case 4: x.http = 429; x.body = bodies[4]; break;
            case 5: x.http = 200; x.body = bodies[5]; break;
            case 6: x.transport = SA_ERR_TIMEOUT; x.latency_ms = FS_TIMEOUT;
                break;
            default: x.transport = SA_ERR_TRANSPORT; break;
            }
            script[n++] = x;
        }
        script[n++] = (fs_reply)SUCCESS;
        REQUIRE(jt_start(t) == SA_OK);
        jt_drive(t, script, n);
        CHECK(t->run.ended);
        if (t->run.max_poll_gap > worst) {
            worst = t->run.max_poll_gap;
            worst_case = seed;
        }
        jt_end(t);
    }
    if (worst > 10000)
        HARNESS_FAIL("seed %d left the task unpolled for %lld ms",
                     worst_case, (long long)worst);
}

/* ------------------------------------------------------------------ */
/* Result downloads: ZIP results, download and fetch machines          */
/* ------------------------------------------------------------------ */

#define ZIP_URL "https://res.test/_results/tok/result.zip?expires=1&sig=a"
#define ZIP_URL2 "https://res.test/_results/tok/result.zip?expires=2&sig=b"
#define ZIP_SUCCESS(url) HTTP(SA__STEP_POLL, 200, "{\"status\":200,\"data\":{" \
    "\"task_status\":\"success\",\"error\":null,\"results\":{\"url\":\"" \
    url "\"}}}")
static const char s3_expired[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied"
    "</Code><Message>Request has expired</Message></Error>";

/* Ask for the next request, which must be a SEND; record it. */
static const fs_event *zt_send(jt *t)
{
    static fs_event none = { .step = -1 };
    sa__next nx;

    if (sa__jobsm_next(t->sm, t->run.now, &nx) != SA_OK
        || nx.kind != SA__NEXT_SEND || t->run.n_events >= FS_MAX_EVENTS) {
        HARNESS_FAIL("no SEND (kind %d, state %s)", nx.kind,
                     sa_job_state_name(sa__jobsm_state(t->sm)));
        return &none;
    }
    if (nx.req->step == SA__STEP_FETCH
        && nx.req->max_body != SA__FETCH_MAX_BODY)
        HARNESS_FAIL("a download without the large body limit");
    t->run.ev[t->run.n_events].step = nx.req->step;
    t->run.ev[t->run.n_events].api_host = nx.req->api_host;
    t->run.ev[t->run.n_events].method = nx.req->method;
    snprintf(t->run.ev[t->run.n_events].url, sizeof t->run.ev[0].url, "%s",
             nx.req->url);
    return &t->run.ev[t->run.n_events++];
}

/* Answer the request out with these bytes, 100 ms later. */
static void zt_answer(jt *t, long http, const void *body, size_t len)
{
    sa__http_response r;

    memset(&r, 0, sizeof r);
    r.http_status = http;
    r.body = body;
    r.body_len = len;
    t->run.now += 100;
    CHECK_EQ_INT(sa__jobsm_on_response(t->sm, t->run.now, &r), SA_OK);
}

static void zt_answer_str(jt *t, long http, const char *body)
{
    zt_answer(t, http, body, strlen(body));
}

/* A job with a ZIP result, driven until it wants to download the ZIP. */
static jt *zt_start(const char *success_url_body)
{
    fs_reply script[2] = { TASK_OK, HTTP(SA__STEP_POLL, 200, NULL) };
    jt *t = jt_new();

    if (!t) return NULL;
    use_image_url(t);
    t->cfg.task.format = SA_FORMAT_ZIP;
    script[1].body = success_url_body;
    t->run.stop_state = SA_JOB_FETCHING;
    if (jt_start(t) != SA_OK || jt_drive(t, script, 2) != 2
        || sa__jobsm_state(t->sm) != SA_JOB_FETCHING) {
        HARNESS_FAIL("the job did not reach FETCHING");
        jt_end(t);
        return NULL;
    }
    return t;
}

static char *zip_fixture(const char *name, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/zips/%s", SA_FIXTURES, name);
    return harness_slurp(path, len);
}

static const char zip_success_body[] = "{\"status\":200,\"data\":{"
    "\"task_status\":\"success\",\"error\":null,\"results\":{\"url\":\""
    ZIP_URL "\"}}}";
static const char zip_success_body2[] = "{\"status\":200,\"data\":{"
    "\"task_status\":\"success\",\"error\":null,\"results\":{\"url\":\""
    ZIP_URL2 "\"}}}";

TEST(zip_result_fetched)
{
    jt *t = zt_start(zip_success_body);
    const fs_event *e;
    const sa_result *r;
    size_t len = 0;
    char *zip = zip_fixture("result_sd_root.zip", &len);

    REQUIRE(t && zip);
    CHECK(sa__jobsm_result(t->sm) == NULL);  /* not DONE before the ZIP */
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_NOT_DONE);
    e = zt_send(t);
    CHECK_EQ_INT(e->step, SA__STEP_FETCH);
    CHECK_EQ_INT(e->method, SA__HTTP_GET);
    CHECK_EQ_INT(e->api_host, 0);          /* never the key */
    CHECK_STR(e->url, ZIP_URL);
    zt_answer(t, 200, zip, len);
    CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_DONE);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_OK);
    r = sa__jobsm_result(t->sm);
    REQUIRE(r != NULL);
    CHECK(sa_result_count(r) > 0);
    CHECK(sa_result_file_count(r) > 0);
    CHECK_EQ_INT(sa_result_file_format(r, 0), SA_IMAGE_PNG);
    CHECK_STR(sa_result_task_id(r), TASK_ID);
    CHECK_STR(sa_result_zip_url(r), ZIP_URL);  /* kept after parsing */
    CHECK_EQ_INT(sa__jobsm_polls(t->sm), 1);
    free(zip);
    jt_end(t);
}

TEST(zip_transient_failures_retried)
{
    jt *t = zt_start(zip_success_body);
    size_t len = 0;
    char *zip = zip_fixture("result_sd_root.zip", &len);
    sa__http_response r;
    sa__next nx;

    REQUIRE(t && zip);
    CHECK_EQ_INT(zt_send(t)->step, SA__STEP_FETCH);
    zt_answer_str(t, 503, html_502);
    CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_BACKOFF);
    REQUIRE(sa__jobsm_next(t->sm, t->run.now, &nx) == SA_OK);
    CHECK_EQ_INT(nx.kind, SA__NEXT_WAIT);
    t->run.now = nx.wake_at_ms;
    CHECK_EQ_INT(zt_send(t)->step, SA__STEP_FETCH);
    memset(&r, 0, sizeof r);
    r.transport = SA_ERR_TRANSPORT;
    t->run.now += 10;
    CHECK_EQ_INT(sa__jobsm_on_response(t->sm, t->run.now, &r), SA_OK);
    CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_BACKOFF);
    REQUIRE(sa__jobsm_next(t->sm, t->run.now, &nx) == SA_OK);
    t->run.now = nx.kind == SA__NEXT_WAIT ? nx.wake_at_ms : t->run.now;
    CHECK_STR(zt_send(t)->url, ZIP_URL);
    zt_answer(t, 200, zip, len);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_OK);
    CHECK_EQ_INT(sa__jobsm_polls(t->sm), 1);  /* no poll for a 5xx */
    free(zip);
    jt_end(t);
}

TEST(zip_expired_url_refreshed)
{
    jt *t = zt_start(zip_success_body);
    const fs_event *e;
    size_t len = 0;
    char *zip = zip_fixture("result_sd_root.zip", &len);

    REQUIRE(t && zip);
    CHECK_EQ_INT(zt_send(t)->step, SA__STEP_FETCH);
    zt_answer_str(t, 403, s3_expired);
    CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_FETCHING);
    e = zt_send(t);                         /* one poll for a fresh URL */
    CHECK_EQ_INT(e->step, SA__STEP_POLL);
    CHECK_EQ_INT(e->api_host, 1);
    CHECK_STR(e->url, POLL_URL);
    CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_FETCHING);
    zt_answer_str(t, 200, zip_success_body2);
    e = zt_send(t);
    CHECK_EQ_INT(e->step, SA__STEP_FETCH);
    CHECK_EQ_INT(e->api_host, 0);
    CHECK_STR(e->url, ZIP_URL2);
    zt_answer(t, 200, zip, len);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_OK);
    CHECK(sa_result_file_count(sa__jobsm_result(t->sm)) > 0);
    CHECK_EQ_INT(sa__jobsm_polls(t->sm), 2);
    free(zip);
    jt_end(t);
}

/* The job failed with `status` after its task succeeded: the message says
 * why (needle), that the task is billed and which task it was. */
static void check_billed_failure(jt *t, int status, const char *needle)
{
    CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_FAILED);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), status);
    CHECK(contains(sa__jobsm_errmsg(t->sm), needle));
    CHECK(contains(sa__jobsm_errmsg(t->sm), "billed"));
    CHECK(contains(sa__jobsm_errmsg(t->sm), TASK_ID));
    CHECK_STR(sa__jobsm_task_id(t->sm), TASK_ID);
}

TEST(zip_expired_twice)
{
    jt *t = zt_start(zip_success_body);

    REQUIRE(t);
    zt_send(t);
    zt_answer_str(t, 403, s3_expired);
    CHECK_EQ_INT(zt_send(t)->api_host, 1);
    zt_answer_str(t, 200, zip_success_body2);
    CHECK_STR(zt_send(t)->url, ZIP_URL2);
    zt_answer_str(t, 403, s3_expired);
    check_billed_failure(t, SA_ERR_URL_EXPIRED, "Request has expired");
    CHECK(sa__jobsm_result(t->sm) == NULL);
    CHECK_EQ_INT(sa__jobsm_polls(t->sm), 2);  /* one refresh, not more */
    jt_end(t);
}

TEST(zip_corrupt)
{
    static const char junk[] = "PK\x03\x04 this is not a zip at all";
    jt *t = zt_start(zip_success_body);
    size_t len = 0;
    char *nosi = zip_fixture("no_score_info.zip", &len);

    REQUIRE(t && nosi);
    zt_send(t);
    zt_answer(t, 200, junk, sizeof junk - 1);
    check_billed_failure(t, SA_ERR_ZIP, "succeeded");
    jt_end(t);

    t = zt_start(zip_success_body);  /* a ZIP without score_info.json */
    REQUIRE(t);
    zt_send(t);
    zt_answer(t, 200, nosi, len);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_ZIP);
    free(nosi);
    jt_end(t);

    t = zt_start(zip_success_body);  /* 404: a download failure */
    REQUIRE(t);
    zt_send(t);
    zt_answer_str(t, 404, "<Error><Code>NoSuchKey</Code></Error>");
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_DOWNLOAD);
    CHECK(contains(sa__jobsm_errmsg(t->sm), TASK_ID));
    jt_end(t);
}

TEST(zip_cancel_and_deadline_while_fetching)
{
    jt *t = zt_start(zip_success_body);
    sa__next nx;

    REQUIRE(t);
    zt_send(t);
    CHECK_EQ_INT(sa__jobsm_cancel(t->sm, t->run.now, 0), 0);  /* no task to
                                                                poll */
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_CANCELLED);
    CHECK(sa__jobsm_next(t->sm, t->run.now, &nx) == SA_OK
          && nx.kind == SA__NEXT_END);
    jt_end(t);

    t = zt_start(zip_success_body);
    REQUIRE(t);
    zt_send(t);
    CHECK(sa__jobsm_next(t->sm, t->cfg.deadline_at_ms, &nx) == SA_OK
          && nx.kind == SA__NEXT_END);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_DEADLINE);
    CHECK_EQ_INT(sa__jobsm_background(t->sm), 0);
    CHECK(contains(sa__jobsm_errmsg(t->sm), "billed"));
    jt_end(t);
}

TEST(poll_now_moves_the_next_poll)
{
    static const fs_reply script[] = { TASK_OK };
    jt *t = jt_started(FROM_URL);
    const fs_event *e;
    sa__next nx;

    REQUIRE(t);
    CHECK_EQ_INT(sa__jobsm_poll_now(t->sm, t->run.now), 0);  /* no task */
    t->run.stop_state = SA_JOB_POLL_WAIT;
    jt_drive(t, script, N(script));
    REQUIRE(sa__jobsm_state(t->sm) == SA_JOB_POLL_WAIT);
    REQUIRE(sa__jobsm_next(t->sm, t->run.now, &nx) == SA_OK);
    CHECK_EQ_INT(nx.kind, SA__NEXT_WAIT);
    CHECK(nx.wake_at_ms > t->run.now + 1000);
    t->run.now += 10;
    CHECK_EQ_INT(sa__jobsm_poll_now(t->sm, t->run.now), 1);
    e = zt_send(t);                         /* the poll goes out now */
    CHECK_EQ_INT(e->step, SA__STEP_POLL);
    CHECK_EQ_INT(e->api_host, 1);
    /* a second delivery while that poll is out (it may have been sent
     * before the task ended): noted, and when it answers running the next
     * poll goes at the least gap (200 ms), not the usual 2 s */
    CHECK_EQ_INT(sa__jobsm_poll_now(t->sm, t->run.now), 1);
    t->run.pending = 1;
    {
        static const fs_reply running[] = { RUNNING };
        jt_drive(t, running, N(running));
    }
    REQUIRE(sa__jobsm_state(t->sm) == SA_JOB_POLL_WAIT);
    REQUIRE(sa__jobsm_next(t->sm, t->run.now, &nx) == SA_OK);
    CHECK_EQ_INT(nx.kind, SA__NEXT_WAIT);
    CHECK_EQ_INT(nx.wake_at_ms - t->run.now, 200);
    /* once: the answer after it waits the usual interval again */
    t->run.now = nx.wake_at_ms;
    e = zt_send(t);
    CHECK_EQ_INT(e->step, SA__STEP_POLL);
    t->run.pending = 1;
    {
        static const fs_reply running[] = { RUNNING };
        jt_drive(t, running, N(running));
    }
    REQUIRE(sa__jobsm_next(t->sm, t->run.now, &nx) == SA_OK);
    CHECK(nx.wake_at_ms - t->run.now >= 1000);
    t->run.now = nx.wake_at_ms;
    e = zt_send(t);
    t->run.pending = 1;
    t->run.stop_state = -1;
    {
        static const fs_reply rest[] = { SUCCESS };
        jt_drive(t, rest, N(rest));
    }
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_OK);
    CHECK_EQ_INT(sa__jobsm_poll_now(t->sm, t->run.now), 0);  /* ended */
    jt_end(t);
}

/* A download machine for one mask URL of the SD example. */
#define MASK_URL "https://yce-us.s3-accelerate.amazonaws.com/...pore_output.jpg"

TEST(download_refreshes_an_expired_url)
{
    static const char fresh[] = "{\"status\":200,\"data\":{\"task_status\":"
        "\"success\",\"results\":{\"output\":[{\"type\":\"pore\","
        "\"ui_score\":9,\"raw_score\":9.5,\"mask_urls\":[\"https://r.test/"
        "x/pore_output.jpg?sig=new\"]}]}}}";
    jt *t = jt_new();
    const fs_event *e;
    const void *data;
    size_t len;

    REQUIRE(t);
    REQUIRE(sa__jobsm_new_download(&t->cfg, MASK_URL, TASK_ID, t->run.now,
                                  &t->sm) == SA_OK);
    CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_FETCHING);
    CHECK_STR(sa__jobsm_download_name(t->sm), "...pore_output.jpg");
    e = zt_send(t);
    CHECK_EQ_INT(e->step, SA__STEP_FETCH);
    CHECK_EQ_INT(e->api_host, 0);
    CHECK_STR(e->url, MASK_URL);
    zt_answer_str(t, 403, s3_expired);
    e = zt_send(t);
    CHECK_EQ_INT(e->step, SA__STEP_POLL);
    CHECK_EQ_INT(e->api_host, 1);
    CHECK_STR(e->url, POLL_URL);
    zt_answer_str(t, 200, fresh);
    /* the fresh answer names the file differently: no URL for it */
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_URL_EXPIRED);
    CHECK(sa__jobsm_download_data(t->sm, &len) == NULL);
    sa__jobsm_free(t->sm);

    REQUIRE(sa__jobsm_new_download(&t->cfg, "https://r.test/x/pore_output.jpg"
                                  "?sig=old", TASK_ID, t->run.now, &t->sm)
            == SA_OK);
    CHECK_STR(sa__jobsm_download_name(t->sm), "pore_output.jpg");
    zt_send(t);
    zt_answer_str(t, 403, s3_expired);
    zt_send(t);
    zt_answer_str(t, 200, fresh);
    e = zt_send(t);
    CHECK_STR(e->url, "https://r.test/x/pore_output.jpg?sig=new");
    CHECK_EQ_INT(e->api_host, 0);
    zt_answer(t, 200, "\x89PNG\r\n", 6);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_OK);
    data = sa__jobsm_download_data(t->sm, &len);
    CHECK(data && len == 6 && memcmp(data, "\x89PNG", 4) == 0);
    sa__jobsm_free(t->sm);

    /* refused again after the fresh URL; other answers */
    REQUIRE(sa__jobsm_new_download(&t->cfg, "https://r.test/x/pore_output.jpg",
                                  TASK_ID, t->run.now, &t->sm) == SA_OK);
    zt_send(t);
    zt_answer_str(t, 403, s3_expired);
    zt_send(t);
    zt_answer_str(t, 200, fresh);
    zt_send(t);
    zt_answer_str(t, 403, s3_expired);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_URL_EXPIRED);
    sa__jobsm_free(t->sm);
    REQUIRE(sa__jobsm_new_download(&t->cfg, "https://r.test/x/a.png",
                                  TASK_ID, t->run.now, &t->sm) == SA_OK);
    zt_send(t);
    zt_answer_str(t, 410, "gone");
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_DOWNLOAD);
    sa__jobsm_free(t->sm);
    t->sm = NULL;
    CHECK_EQ_INT(sa__jobsm_new_download(&t->cfg, "ftp://x/a.png", TASK_ID,
                                       t->run.now, &t->sm),
                 SA_ERR_INVALID_ARGUMENT);
    jt_end(t);
}

TEST(fetch_machine_counts_downloads)
{
    char *body = fs_example("task-status-success-json-sd.json", NULL);
    sa_result *src = NULL;
    const char *url;
    size_t n = 0, idx = 99, i0 = 0, i1 = 0, n_urls;
    char msg[64];
    jt *t = jt_new();
    sa__next nx;

    REQUIRE(t && body);
    REQUIRE(sa_result_parse(body, strlen(body), SA_PARSE_STATUS_BODY, &src)
            == SA_OK);
    n_urls = sa__result_urls(src, NULL, 0);
    REQUIRE(sa__jobsm_new_fetch(&t->cfg, src, 1, t->run.now, &t->sm) == SA_OK);
    CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_FETCHING);
    REQUIRE(sa__jobsm_next(t->sm, t->run.now, &nx) == SA_OK);
    CHECK_EQ_INT(nx.kind, SA__NEXT_WAIT);     /* it never sends itself */
    while ((url = sa__jobsm_fetch_next(t->sm, &idx)) != NULL && n < 100) {
        char name[256];
        CHECK_EQ_INT(idx, n);                /* in URL order */
        CHECK_STR(url, sa__result_url_at(src, idx));
        sa__url_file_name(url, name, sizeof name);
        CHECK_EQ_INT(sa__result_add_file(sa__jobsm_fetch_result(t->sm), name,
                                        "\x89PNG", 4), SA_OK);
        sa__jobsm_fetch_done(t->sm, idx, SA_OK, NULL);
        n++;
    }
    CHECK_EQ_INT(n, n_urls);
    CHECK(n > 3);
    REQUIRE(sa__jobsm_next(t->sm, t->run.now, &nx) == SA_OK);
    CHECK_EQ_INT(nx.kind, SA__NEXT_END);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_OK);
    CHECK_EQ_INT(sa_result_file_count(sa__jobsm_result(t->sm)), n);
    CHECK_EQ_INT(sa_result_count(sa__jobsm_result(t->sm)),
                 sa_result_count(src));
    sa__jobsm_free(t->sm);

    /* failures do not stop the others: every URL is handed out; the job
     * ends FAILED with the first failure in URL order, the others
     * counted, and its result keeps the files that arrived */
    REQUIRE(sa__jobsm_new_fetch(&t->cfg, src, 1, t->run.now, &t->sm) == SA_OK);
    CHECK(sa__jobsm_fetch_next(t->sm, &i0) != NULL);
    CHECK(sa__jobsm_fetch_next(t->sm, &i1) != NULL);
    sa__jobsm_fetch_done(t->sm, i1, SA_ERR_URL_EXPIRED, "b: expired");
    REQUIRE(sa__jobsm_next(t->sm, t->run.now, &nx) == SA_OK);
    CHECK_EQ_INT(nx.kind, SA__NEXT_WAIT);
    sa__jobsm_fetch_done(t->sm, i0, SA_ERR_DOWNLOAD, "a: gone");
    n = 2;
    while ((url = sa__jobsm_fetch_next(t->sm, &idx)) != NULL && n < 100) {
        snprintf(msg, sizeof msg, "f%zu.png", idx);
        sa__result_add_file(sa__jobsm_fetch_result(t->sm), msg, "x", 1);
        sa__jobsm_fetch_done(t->sm, idx, SA_OK, NULL);
        n++;
    }
    CHECK_EQ_INT(n, n_urls);
    REQUIRE(sa__jobsm_next(t->sm, t->run.now, &nx) == SA_OK);
    CHECK_EQ_INT(nx.kind, SA__NEXT_END);
    CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_FAILED);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_DOWNLOAD);
    snprintf(msg, sizeof msg, "2 of %zu files failed; the first: a: gone",
             n_urls);
    CHECK_STR(sa__jobsm_errmsg(t->sm), msg);
    REQUIRE(sa__jobsm_result(t->sm) != NULL);
    CHECK_EQ_INT(sa_result_file_count(sa__jobsm_result(t->sm)), n_urls - 2);
    sa__jobsm_free(t->sm);

    /* one failure alone: its own message */
    REQUIRE(sa__jobsm_new_fetch(&t->cfg, src, 0, t->run.now, &t->sm) == SA_OK);
    while ((url = sa__jobsm_fetch_next(t->sm, &idx)) != NULL)
        sa__jobsm_fetch_done(t->sm, idx, idx == 1 ? SA_ERR_LIMIT : SA_OK,
                            "b: too big");
    REQUIRE(sa__jobsm_next(t->sm, t->run.now, &nx) == SA_OK);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_LIMIT);
    CHECK_STR(sa__jobsm_errmsg(t->sm), "b: too big");
    sa__jobsm_free(t->sm);

    /* the deadline */
    REQUIRE(sa__jobsm_new_fetch(&t->cfg, src, 1, t->run.now, &t->sm) == SA_OK);
    CHECK(sa__jobsm_fetch_next(t->sm, NULL) != NULL);
    REQUIRE(sa__jobsm_next(t->sm, t->cfg.deadline_at_ms, &nx) == SA_OK);
    CHECK_EQ_INT(nx.kind, SA__NEXT_END);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_DEADLINE);
    sa_result_free(src);
    free(body);
    jt_end(t);
}

TEST(every_status_answer)
{
    static const struct { fs_reply r; int status; const char *engine; } cases[] = {
        { EXAMPLE(SA__STEP_POLL, 200, "task-status-success-json-sd.json"),
          SA_OK, NULL },
        { EXAMPLE(SA__STEP_POLL, 200, "task-status-success-json-hd.json"),
          SA_OK, NULL },
        { EXAMPLE(SA__STEP_POLL, 200, "task-status-success-zip.json"),
          SA_OK, NULL },
        { HTTP(SA__STEP_POLL, 200, "{\"status\":200,\"data\":{\"task_status\":"
               "\"success\",\"error\":null,\"results\":"
               "\"https://example.com/sample-result-url\"}}"), SA_OK, NULL },
        { EXAMPLE(SA__STEP_POLL, 200, "task-status-error-no-face.json"),
          SA_ERR_ENGINE, "error_no_face" },
        { HTTP(SA__STEP_POLL, 200, "{\"status\":200,\"data\":{\"task_status\":"
               "\"error\",\"error\":\"error_lighting_dark\",\"error_message\":"
               "\"too dark\"}}"), SA_ERR_ENGINE, "error_lighting_dark" },
        { EXAMPLE(SA__STEP_POLL, 400, "error-400-invalid-task-id.json"),
          SA_ERR_TASK_EXPIRED, NULL },
        { HTTP(SA__STEP_POLL, 404, "{\"status\":404,\"error\":\"Not Found\"}"),
          SA_ERR_TASK_EXPIRED, NULL },
        { EXAMPLE(SA__STEP_POLL, 500, "error-500-task-timeout.json"),
          SA_ERR_TASK_TIMEOUT, NULL },
        { EXAMPLE(SA__STEP_POLL, 401, "error-401.json"), SA_ERR_AUTH, NULL },
        { EXAMPLE(SA__STEP_POLL, 401, "error-401-observed.json"), SA_ERR_AUTH,
          NULL },
        { HTTP(SA__STEP_POLL, 401, "{\"status\":401,\"error\":\"Unauthorized\","
               "\"error_code\":\"InvalidAccessToken\"}"), SA_ERR_AUTH, NULL },
    };
    size_t i;

    for (i = 0; i < N(cases); i++) {
        fs_reply script[3];
        jt *t = jt_from(FROM_URL);
        REQUIRE(t);
        t->cfg.task.format = i == 2 || i == 3 ? SA_FORMAT_ZIP : SA_FORMAT_JSON;
        script[0] = (fs_reply)TASK_OK;
        script[1] = cases[i].r;
        script[2] = (fs_reply)SUCCESS;
        REQUIRE(jt_start(t) == SA_OK);
        if (i == 2 || i == 3) {
            /* a ZIP result: the ZIP is downloaded before DONE (see
             * zip_result_fetched) */
            t->run.stop_state = SA_JOB_FETCHING;
            CHECK_EQ_INT(jt_drive(t, script, 3), 2);
            CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_FETCHING);
            CHECK_STR(zt_send(t)->url, "https://example.com/sample-result-url");
            jt_end(t);
            continue;
        }
        CHECK_EQ_INT(jt_drive(t, script, 3), 2);
        CHECK(t->run.ended);
        CHECK_EQ_INT(sa__jobsm_status(t->sm), cases[i].status);
        CHECK_EQ_INT(sa__jobsm_state(t->sm), cases[i].status == SA_OK
                     ? SA_JOB_DONE : SA_JOB_FAILED);
        CHECK_EQ_INT(sa__jobsm_polls(t->sm), 1);
        if (cases[i].status == SA_OK) {
            CHECK(sa__jobsm_result(t->sm) != NULL);
            if (i == 2 || i == 3)
                CHECK_STR(sa_result_zip_url(sa__jobsm_result(t->sm)),
                          "https://example.com/sample-result-url");
        } else {
            CHECK(sa__jobsm_result(t->sm) == NULL);
            CHECK(sa__jobsm_errmsg(t->sm)[0] != '\0');
        }
        if (cases[i].engine) {
            CHECK_STR(sa__jobsm_engine_error(t->sm), cases[i].engine);
            CHECK(contains(sa__jobsm_errmsg(t->sm), cases[i].engine));
        }
        if (i == 4) CHECK(contains(sa__jobsm_errmsg(t->sm), "No face detected"));
        if (i == 6) CHECK(contains(sa__jobsm_errmsg(t->sm), "Invalid task ID"));
        if (i == 10) CHECK_STR(sa__jobsm_api_error_code(t->sm), "InvalidApiKey");
        if (harness_cur_failed) fprintf(stderr, "  (case %zu)\n", i);
        jt_end(t);
    }
}

TEST(task_id_is_url_encoded)
{
    static const fs_reply script[] = {
        HTTP(SA__STEP_TASK_CREATE, 200, "{\"status\":200,\"data\":{\"task_id\":"
             "\"ab/cd+ef==\"}}"), SUCCESS };
    jt *t = jt_ran(FROM_URL, script, N(script), SA_OK);

    REQUIRE(t);
    CHECK_STR(sa__jobsm_task_id(t->sm), "ab/cd+ef==");
    CHECK_STR(ev(t, 1)->url, BASE "/s2s/v2.1/task/skin-analysis/ab%2Fcd%2Bef%3D%3D");
    jt_end(t);
}

/* A poll whose answer outgrew max_body_bytes (SA_ERR_LIMIT from the
 * engine), was nested too deep or could not be read is a failed poll: the
 * task is polled again, with no retry budget, in the foreground and in
 * the background. */
TEST(oversized_or_unreadable_poll_is_retried)
{
    static const fs_reply script[] = {
        TASK_OK, NET(SA__STEP_POLL, SA_ERR_LIMIT, 0),
        HTTP(SA__STEP_POLL, 200, "not json"),
        HTTP(SA__STEP_POLL, 200, "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
             "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]"
             "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"),
        SUCCESS };
    fs_reply over[5];
    size_t i;
    jt *t;

    JT_WITH(t, FROM_URL, max_json_depth, 16);
    CHECK_EQ_INT(jt_drive(t, script, N(script)), N(script));
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_OK);
    CHECK_EQ_INT(sa__jobsm_polls(t->sm), 4);
    CHECK(sa__jobsm_result(t->sm) != NULL);
    jt_end(t);

    /* no budget: still polled after max_retries retries failed */
    t = jt_from(FROM_URL);
    REQUIRE(t);
    t->cfg.max_retries = 2;
    over[0] = (fs_reply)TASK_OK;
    for (i = 1; i < N(over); i++)
        over[i] = (fs_reply)NET(SA__STEP_POLL, SA_ERR_LIMIT, 0);
    REQUIRE(jt_start(t) == SA_OK);
    CHECK_EQ_INT(jt_drive(t, over, N(over)), N(over));
    CHECK(!t->run.ended);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_NOT_DONE);
    CHECK_EQ_INT(sa__jobsm_polls(t->sm), 5);
    CHECK(contains(sa__jobsm_errmsg(t->sm), "larger than the limit"));
    CHECK(contains(sa__jobsm_errmsg(t->sm), "polled until it ends"));
    CHECK_EQ_INT(jt_drive(t, script + 4, 1), 1);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_OK);
    jt_end(t);

    /* background polling (cancelled job) keeps polling past it too */
    t = jt_cancelled(FROM_URL, script, 1, 0, 1);
    REQUIRE(t);
    CHECK_EQ_INT(jt_drive(t, script + 1, N(script) - 1), N(script) - 1);
    jt_check_task_done(t, SA_ERR_CANCELLED);
    CHECK_EQ_INT(sa__jobsm_polls(t->sm), 4);
    jt_end(t);
}

TEST(max_polls_is_a_hard_bound)
{
    fs_reply script[8];
    size_t i;
    jt *t;

    script[0] = (fs_reply)TASK_OK;
    for (i = 1; i < N(script); i++) script[i] = (fs_reply)RUNNING;
    JT_WITH(t, FROM_URL, max_polls, 3);
    CHECK_EQ_INT(jt_drive(t, script, N(script)), 4);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_LIMIT);
    CHECK_EQ_INT(sa__jobsm_polls(t->sm), 3);
    CHECK_EQ_INT(fs_count(&t->run, SA__STEP_POLL), 3);
    CHECK(contains(sa__jobsm_errmsg(t->sm), "max_polls"));
    CHECK(t->run.ended);
    jt_end(t);
}

/* ------------------------------------------------------------------ */
/* A hostile or broken server (issue 12): once the task exists, failed   */
/* polls never exhaust a budget; only a final answer ends the polling.  */
/* ------------------------------------------------------------------ */

/* Answer every request with r until the fake clock reaches `until` (or
 * the machine ends); a request is left out for the next answer. */
static void storm_until(jt *t, fs_reply r, int64_t until)
{
    while (t->run.now < until && !t->run.ended && !t->run.errors)
        jt_drive(t, &r, 1);
}

/* The poll answers a hostile or broken server gives for minutes. */
static const struct { fs_reply r; const char *name; } storms[] = {
    { HTTP(SA__STEP_POLL, 503, "<html>503 Service Unavailable</html>"), "503" },
    { EXAMPLE(SA__STEP_POLL, 429, "error-429.json"), "429" },
    { HTTP(SA__STEP_POLL, 502, html_502), "502 html" },
    { NET(SA__STEP_POLL, SA_ERR_TRANSPORT, 0), "reset" },
    { TIMEOUT(SA__STEP_POLL), "trickled (timed out)" },
    { HTTP(SA__STEP_POLL, 200, "{\"status\":200,\"data\":{\"task_st"),
      "truncated 200" },
    { NET(SA__STEP_POLL, SA_ERR_LIMIT, 0), "oversized 200" },
    { HTTP(SA__STEP_POLL, 200, "{\"status\":200}"), "200 without data" },
};

/* A 5-minute storm of each kind, then success: DONE, one task, never a
 * gap over max_poll_interval_ms, and the storm is polled at a sane pace
 * (no faster than the backoff allows, no slower than the window). */
TEST(poll_storm_then_success_is_done)
{
    size_t i;

    for (i = 0; i < N(storms); i++) {
        static const fs_reply task_ok = TASK_OK, success = SUCCESS;
        jt *t = jt_started(FROM_URL);
        int polls;

        REQUIRE(t);
        jt_drive(t, &task_ok, 1);
        storm_until(t, storms[i].r, T0 + 5 * 60 * 1000);
        jt_drive(t, &success, 1);
        CHECK(t->run.ended);
        CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_DONE);
        CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_OK);
        CHECK(sa__jobsm_result(t->sm) != NULL);
        CHECK_EQ_INT(fs_count(&t->run, SA__STEP_TASK_CREATE), 1);
        polls = sa__jobsm_polls(t->sm);
        CHECK(polls > t->cfg.max_retries + 1);  /* past the old budget */
        CHECK(polls >= 5 * 60 / 10);            /* at least every 10 s */
        CHECK(polls <= 5 * 60 * 5);             /* not hammering */
        CHECK(t->run.max_poll_gap <= t->cfg.max_poll_interval_ms);
        if (harness_cur_failed)
            fprintf(stderr, "  (storm %s: %d polls)\n", storms[i].name, polls);
        jt_end(t);
    }
}

/* A storm in the background (the caller cancelled): polled to the end. */
TEST(poll_storm_in_the_background)
{
    static const fs_reply task_ok = TASK_OK, success = SUCCESS;
    jt *t = jt_cancelled(FROM_URL, &task_ok, 1, 0, 1);

    REQUIRE(t);
    storm_until(t, storms[0].r, T0 + 3 * 60 * 1000);
    jt_drive(t, &success, 1);
    jt_check_task_done(t, SA_ERR_CANCELLED);
    CHECK(t->run.max_poll_gap <= t->cfg.max_poll_interval_ms);
    jt_end(t);
}

/* The deadline passes in a storm: the public job fails at the deadline
 * (saying what the polls answered), the task is still polled to its end. */
TEST(poll_storm_past_the_deadline)
{
    static const fs_reply task_ok = TASK_OK, success = SUCCESS;
    jt *t;

    JT_WITH(t, FROM_URL, deadline_at_ms, T0 + 60 * 1000);
    jt_drive(t, &task_ok, 1);
    storm_until(t, storms[0].r, T0 + 3 * 60 * 1000);
    CHECK(!t->run.ended);
    CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_FAILED);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_DEADLINE);
    CHECK(contains(sa__jobsm_errmsg(t->sm), "deadline passed (last: status "
                   "poll: HTTP 503"));
    CHECK(!contains(sa__jobsm_errmsg(t->sm), "; retry"));
    CHECK(contains(sa__jobsm_errmsg(t->sm), TASK_ID));
    CHECK_EQ_INT(sa__jobsm_background(t->sm), 1);
    jt_drive(t, &success, 1);
    jt_check_task_done(t, SA_ERR_DEADLINE);
    CHECK(t->run.max_poll_gap <= t->cfg.max_poll_interval_ms);
    jt_end(t);
}

/* Final answers stay final, even in the middle of a storm. */
TEST(final_answers_end_a_storm)
{
    static const struct { fs_reply r; int status; } finals[] = {
        { EXAMPLE(SA__STEP_POLL, 400, "error-400-invalid-task-id.json"),
          SA_ERR_TASK_EXPIRED },
        { HTTP(SA__STEP_POLL, 404, "{\"status\":404,\"error\":\"Not Found\"}"),
          SA_ERR_TASK_EXPIRED },
        { EXAMPLE(SA__STEP_POLL, 500, "error-500-task-timeout.json"),
          SA_ERR_TASK_TIMEOUT },
        { EXAMPLE(SA__STEP_POLL, 200, "task-status-error-no-face.json"),
          SA_ERR_ENGINE },
    };
    size_t i;

    for (i = 0; i < N(finals); i++) {
        static const fs_reply task_ok = TASK_OK;
        jt *t = jt_started(FROM_URL);
        REQUIRE(t);
        jt_drive(t, &task_ok, 1);
        storm_until(t, storms[1].r, T0 + 2 * 60 * 1000);
        jt_drive(t, &finals[i].r, 1);
        CHECK(t->run.ended);
        CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_FAILED);
        CHECK_EQ_INT(sa__jobsm_status(t->sm), finals[i].status);
        CHECK(contains(sa__jobsm_errmsg(t->sm), TASK_ID));
        if (harness_cur_failed) fprintf(stderr, "  (case %zu)\n", i);
        jt_end(t);
    }
}

#define EMPTY_SUCCESS HTTP(SA__STEP_POLL, 200, "{\"status\":200,\"data\":{" \
                           "\"task_status\":\"success\",\"results\":[]}}")
#define NUL_RUNNING HTTP(SA__STEP_POLL, 200, "{\"status\":200,\"data\":{" \
                         "\"task_status\":\"running\",\"x\":\"a\\u0000\"}}")

/* A job from an image URL, max_retries 2, its task just created (NULL if it
 * could not be set up). */
static jt *jt_created_2_retries(void)
{
    static const fs_reply task_ok = TASK_OK;
    jt *t = jt_from(FROM_URL);
    if (!t) return NULL;
    t->cfg.max_retries = 2;
    if (jt_start(t) != SA_OK) {
        free(t);
        return NULL;
    }
    jt_drive(t, &task_ok, 1);
    return t;
}

/* A whole answer the client refuses (a success without a usable result,
 * a NUL in a string) is retried while at most max_retries retries in a row
 * met one, then the job fails SA_ERR_PROTOCOL: a success ended the task;
 * after a NUL the task is polled on in the background.  A readable answer
 * in between starts the count again.  (Cut or garbled answers are polled
 * through: poll_storm_then_success_is_done.) */
TEST(refused_status_answers_end_in_protocol)
{
    static const fs_reply empty = EMPTY_SUCCESS, nul = NUL_RUNNING,
                          running = RUNNING, success = SUCCESS;
    static const fs_reply mixed[] = { NUL_RUNNING, NUL_RUNNING, RUNNING,
                                      NUL_RUNNING, NUL_RUNNING, SUCCESS };
    int i;
    jt *t = jt_created_2_retries();

    /* a success without a result: max_retries + 1 polls, then it ends */
    REQUIRE(t);
    for (i = 0; i < 3 && !t->run.ended; i++) jt_drive(t, &empty, 1);
    CHECK(t->run.ended);
    CHECK_EQ_INT(sa__jobsm_polls(t->sm), 3);
    CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_FAILED);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_PROTOCOL);
    CHECK(contains(sa__jobsm_errmsg(t->sm), "data.results"));
    CHECK(contains(sa__jobsm_errmsg(t->sm), "succeeded (it is billed)"));
    CHECK(contains(sa__jobsm_errmsg(t->sm), TASK_ID));
    jt_end(t);

    /* a NUL: the job fails, the task is polled on to its end */
    t = jt_created_2_retries();
    REQUIRE(t);
    for (i = 0; i < 3; i++) jt_drive(t, &nul, 1);
    CHECK(!t->run.ended);
    CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_FAILED);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_PROTOCOL);
    CHECK(contains(sa__jobsm_errmsg(t->sm), "NUL"));
    CHECK(contains(sa__jobsm_errmsg(t->sm), "3 times in a row"));
    CHECK(contains(sa__jobsm_errmsg(t->sm), "still polled until it ends"));
    CHECK_EQ_INT(sa__jobsm_background(t->sm), 1);
    for (i = 0; i < 10; i++) jt_drive(t, &nul, 1);
    jt_drive(t, &running, 1);
    CHECK(!t->run.ended);
    jt_drive(t, &success, 1);
    jt_check_task_done(t, SA_ERR_PROTOCOL);
    CHECK_EQ_INT(sa__jobsm_polls(t->sm), 15);
    jt_end(t);

    /* never more than max_retries in a row: polled through */
    t = jt_created_2_retries();
    REQUIRE(t);
    CHECK_EQ_INT(jt_drive(t, mixed, N(mixed)), N(mixed));
    CHECK(t->run.ended);
    CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_DONE);
    CHECK_EQ_INT(sa__jobsm_polls(t->sm), 6);
    jt_end(t);
}

#define QUEUED HTTP(SA__STEP_POLL, 200, "{\"status\":200,\"data\":{" \
                    "\"task_status\":\"queued\",\"error\":null}}")

/* An unknown task_status is "not finished yet": polled like running. */
TEST(unknown_task_status_is_not_finished)
{
    static const fs_reply task_ok = TASK_OK, queued = QUEUED,
                          success = SUCCESS;
    jt *t = jt_started(FROM_URL);
    char note[600];
    int i;

    REQUIRE(t);
    jt_drive(t, &task_ok, 1);
    for (i = 0; i < 20 && !t->run.ended; i++) jt_drive(t, &queued, 1);
    jt_drive(t, &success, 1);
    CHECK(t->run.ended);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_OK);
    CHECK_EQ_INT(sa__jobsm_polls(t->sm), 21);
    /* at the polling pace of a running task, not a backoff */
    CHECK_EQ_INT(gap_after(t, 1), 2000);
    CHECK_EQ_INT(gap_after(t, 10), 2000);
    /* said once (for the log), with the string it got */
    CHECK_EQ_INT(sa__jobsm_take_notice(t->sm, note, sizeof note), 1);
    CHECK(contains(note, "'queued'") && contains(note, TASK_ID));
    CHECK_EQ_INT(sa__jobsm_take_notice(t->sm, note, sizeof note), 0);
    jt_end(t);

    /* a long string with control characters is cut and cleaned */
    t = jt_started(FROM_URL);
    REQUIRE(t);
    {
        static const fs_reply odd[] = {
            TASK_OK,
            HTTP(SA__STEP_POLL, 200, "{\"status\":200,\"data\":{"
                 "\"task_status\":"
                 "\"in\\nline\\u0007 0123456789012345678901234567890123456789"
                 "0123456789012345678901234567890123456789\"}}"),
            RUNNING, SUCCESS };
        jt_drive(t, odd, 2);
        CHECK_EQ_INT(sa__jobsm_take_notice(t->sm, note, sizeof note), 1);
        CHECK(contains(note, "'in?line? 0123"));
        CHECK(!strchr(note, '\n') && !strchr(note, '\a'));
        CHECK_EQ_INT(sa__jobsm_take_notice(t->sm, note, sizeof note), 0);
        jt_drive(t, odd + 2, 2);
        CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_OK);
    }
    jt_end(t);
}

/* ------------------------------------------------------------------ */
/* Resume: a machine for an existing task (sa_client_resume)           */
/* ------------------------------------------------------------------ */

/* A config that resumes TASK_ID: no source, no actions. */

TEST(resume_polls_the_task_at_once)
{
    static const fs_reply script[] = { RUNNING, RUNNING, SUCCESS };
    static const int states[] = { SA_JOB_POLLING, SA_JOB_POLL_WAIT,
                                  SA_JOB_POLLING, SA_JOB_POLL_WAIT,
                                  SA_JOB_POLLING, SA_JOB_DONE };
    jt *t = jt_started(FROM_TASK);

    REQUIRE(t);
    CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_POLLING);
    CHECK_STR(sa__jobsm_task_id(t->sm), TASK_ID);
    CHECK_EQ_INT(sa__jobsm_task_maybe_created(t->sm), 1);
    CHECK_EQ_INT(sa__jobsm_resumed(t->sm), 1);
    CHECK_EQ_INT(jt_drive(t, script, N(script)), N(script));
    CHECK(fs_trace_is(&t->run, states, N(states)));
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_OK);
    CHECK_STR(sa_result_task_id(sa__jobsm_result(t->sm)), TASK_ID);
    /* nothing created: polls only, the first one at once */
    CHECK_EQ_INT(t->run.n_events, 3);
    CHECK_EQ_INT(fs_count(&t->run, SA__STEP_POLL), 3);
    CHECK_EQ_INT(ev(t, 0)->sent_at, T0);
    CHECK_STR(ev(t, 0)->url, POLL_URL);
    CHECK_EQ_INT(ev(t, 0)->method, SA__HTTP_GET);
    CHECK_EQ_INT(gap_after(t, 0), 2000);
    jt_end(t);

    /* v2.0 polls the v2.0 path */
    JT_WITH(t, FROM_TASK, api_version, SA_API_V2_0);
    jt_drive(t, script + 2, 1);
    CHECK_STR(ev(t, 0)->url, BASE "/s2s/v2.0/task/skin-analysis/" TASK_ID);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_OK);
    jt_end(t);

    /* a resumed id is percent-encoded into the path like one the API
     * returned: '/' '+' '=' cannot add a segment */
    JT_WITH(t, FROM_TASK, task_id, "ab/cd+ef==");
    jt_drive(t, script + 2, 1);
    CHECK_STR(ev(t, 0)->url,
              BASE "/s2s/v2.1/task/skin-analysis/ab%2Fcd%2Bef%3D%3D");
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_OK);
    jt_end(t);
}

/* A resumed task ends like a submitted one: ZIP results are downloaded,
 * final answers are final, storms are polled through. */
TEST(resume_ends_like_a_submitted_job)
{
    static const fs_reply expired[] = {
        EXAMPLE(SA__STEP_POLL, 400, "error-400-invalid-task-id.json") };
    static const fs_reply engine[] = {
        RUNNING,
        EXAMPLE(SA__STEP_POLL, 200, "task-status-error-no-face.json") };
    static const fs_reply zip[] = { ZIP_SUCCESS(ZIP_URL) };
    static const fs_reply success = SUCCESS;
    jt *t = jt_started(FROM_TASK);

    REQUIRE(t);
    jt_drive(t, expired, N(expired));
    CHECK(t->run.ended);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_TASK_EXPIRED);
    CHECK(contains(sa__jobsm_errmsg(t->sm), TASK_ID));
    jt_end(t);

    t = jt_ran(FROM_TASK, engine, N(engine), SA_ERR_ENGINE);
    REQUIRE(t);
    CHECK_STR(sa__jobsm_engine_error(t->sm), "error_no_face");
    jt_end(t);

    t = jt_from(FROM_TASK);
    REQUIRE(t);
    t->run.stop_state = SA_JOB_FETCHING;
    REQUIRE(jt_start(t) == SA_OK);
    jt_drive(t, zip, N(zip));
    CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_FETCHING);
    CHECK_STR(zt_send(t)->url, ZIP_URL);
    jt_end(t);

    t = jt_started(FROM_TASK);
    REQUIRE(t);
    storm_until(t, storms[0].r, T0 + 2 * 60 * 1000);
    jt_drive(t, &success, 1);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_OK);
    CHECK(t->run.max_poll_gap <= t->cfg.max_poll_interval_ms);
    jt_end(t);
}

/* The deadline and cancel of a resumed job: the task exists, so it is
 * polled on in the background; abandon stops it. */
TEST(resume_deadline_cancel_abandon)
{
    static const fs_reply script[] = { RUNNING, RUNNING, RUNNING, SUCCESS };
    jt *t = jt_from(FROM_TASK);

    REQUIRE(t);
    t->cfg.deadline_at_ms = T0 + 3000;
    t->run.stop_state = SA_JOB_FAILED;
    REQUIRE(jt_start(t) == SA_OK);
    jt_drive(t, script, N(script));
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_DEADLINE);
    CHECK(contains(sa__jobsm_errmsg(t->sm), TASK_ID));
    CHECK_EQ_INT(sa__jobsm_background(t->sm), 1);
    t->run.stop_state = -1;
    jt_drive(t, script + 2, 2);
    jt_check_task_done(t, SA_ERR_DEADLINE);
    jt_end(t);

    t = jt_cancelled(FROM_TASK, script, 1, 0, 1);
    REQUIRE(t);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_CANCELLED);
    jt_drive(t, script + 1, 3);
    jt_check_task_done(t, SA_ERR_CANCELLED);
    jt_end(t);

    t = jt_cancelled(FROM_TASK, script, 1, 1, 0);
    REQUIRE(t);
    CHECK(contains(sa__jobsm_errmsg(t->sm), "no longer polled"));
    CHECK(contains(sa__jobsm_errmsg(t->sm), TASK_ID));
    jt_end(t);
}

/* max_polls 0 (the client's default) is no bound. */
TEST(max_polls_zero_is_no_bound)
{
    fs_reply script[80];
    size_t i;
    jt *t;

    script[0] = (fs_reply)TASK_OK;
    for (i = 1; i + 1 < N(script); i++) script[i] = (fs_reply)RUNNING;
    script[N(script) - 1] = (fs_reply)SUCCESS;
    JT_WITH(t, FROM_URL, max_polls, 0);
    CHECK_EQ_INT(jt_drive(t, script, N(script)), N(script));
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_OK);
    CHECK_EQ_INT(sa__jobsm_polls(t->sm), (int)N(script) - 1);
    jt_end(t);
}

/* ------------------------------------------------------------------ */
/* Deadline                                                            */
/* ------------------------------------------------------------------ */

TEST(deadline_before_a_task_exists)
{
    /* a request still out at the deadline: abandoned then, no task */
    static const struct {
        fs_reply script[2];
        size_t n;
        int64_t deadline;
    } slow[] = {
        { { { .step = SA__STEP_FILE_CREATE, .http = 200,
              .example = "file-create-response.json", .latency_ms = 20000 } },
          1, T0 + 5000 },
        { { FILE_OK, { .step = SA__STEP_UPLOAD, .http = 200,
                       .latency_ms = 60000 } },
          2, T0 + 30000 },
    };
    static const fs_reply in_backoff[] = {
        FILE_OK, HTTP(SA__STEP_UPLOAD, 503, ""), FS_UPLOAD_OK };
    jt *t = jt_new();
    sa__next nx;
    size_t i;

    /* while the file create is out: ends at the deadline, request dropped */
    REQUIRE(t);
    t->cfg.deadline_at_ms = T0 + 5000;
    REQUIRE(jt_start(t) == SA_OK);
    REQUIRE(sa__jobsm_next(t->sm, T0, &nx) == SA_OK && nx.kind == SA__NEXT_SEND);
    REQUIRE(sa__jobsm_next(t->sm, T0 + 1, &nx) == SA_OK);
    CHECK_EQ_INT(nx.kind, SA__NEXT_WAIT);
    CHECK_EQ_INT(nx.wake_at_ms, T0 + 5000);
    REQUIRE(sa__jobsm_next(t->sm, T0 + 4999, &nx) == SA_OK);
    CHECK_EQ_INT(nx.kind, SA__NEXT_WAIT);
    REQUIRE(sa__jobsm_next(t->sm, T0 + 5000, &nx) == SA_OK);
    CHECK_EQ_INT(nx.kind, SA__NEXT_END);
    CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_FAILED);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_DEADLINE);
    CHECK(contains(sa__jobsm_errmsg(t->sm), "nothing was billed"));
    CHECK_EQ_INT(sa__jobsm_background(t->sm), 0);
    jt_end(t);

    for (i = 0; i < N(slow); i++) {
        t = jt_new();
        REQUIRE(t);
        t->cfg.deadline_at_ms = slow[i].deadline;
        REQUIRE(jt_start(t) == SA_OK);
        jt_drive(t, slow[i].script, slow[i].n);
        CHECK(t->run.abandoned);
        CHECK_EQ_INT(t->run.now, slow[i].deadline);
        CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_DEADLINE);
        CHECK_EQ_INT(fs_count(&t->run, SA__STEP_TASK_CREATE), 0);
        if (harness_cur_failed) fprintf(stderr, "  (case %zu)\n", i);
        jt_end(t);
    }

    /* in BACKOFF: the wait is cut at the deadline */
    t = jt_new();
    REQUIRE(t);
    t->cfg.deadline_at_ms = T0 + 200;
    t->cfg.backoff_initial_ms = 100000;
    t->cfg.backoff_max_ms = 100000;
    t->rng = 7;
    REQUIRE(jt_start(t) == SA_OK);
    jt_drive(t, in_backoff, N(in_backoff));
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_DEADLINE);
    CHECK_EQ_INT(t->run.now, T0 + 200);
    jt_end(t);
}

TEST(deadline_after_the_task_exists)
{
    static const fs_reply script[] = { TASK_OK, RUNNING, RUNNING, RUNNING,
                                       SUCCESS };
    jt *t;
    const char *msg;

    JT_WITH(t, FROM_URL, deadline_at_ms, T0 + 3000);
    t->run.stop_state = SA_JOB_FAILED;
    jt_drive(t, script, N(script));
    /* the public job failed at the deadline ... */
    CHECK_EQ_INT(t->run.now, T0 + 3000);
    CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_FAILED);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_DEADLINE);
    CHECK(contains(sa__jobsm_errmsg(t->sm), TASK_ID));
    CHECK_EQ_INT(sa__jobsm_background(t->sm), 1);
    CHECK_EQ_INT(sa__jobsm_task_outcome(t->sm, &msg), SA_ERR_NOT_DONE);
    /* ... the machine keeps polling until the task ends */
    t->run.stop_state = -1;
    jt_drive(t, script + 2, N(script) - 2);
    CHECK(t->run.ended);
    CHECK_EQ_INT(sa__jobsm_polls(t->sm), 4);
    CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_FAILED);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_DEADLINE);
    CHECK(sa__jobsm_result(t->sm) == NULL);
    CHECK_EQ_INT(sa__jobsm_background(t->sm), 0);
    CHECK_EQ_INT(sa__jobsm_task_outcome(t->sm, &msg), SA_OK);
    CHECK(contains(msg, "may be billed"));
    CHECK(t->run.max_poll_gap <= 10000);
    jt_end(t);
}

TEST(deadline_while_task_create_is_out)
{
    static const fs_reply created[] = {
        { .step = SA__STEP_TASK_CREATE, .http = 200,
          .example = "task-create-response.json", .latency_ms = 9000 },
        RUNNING,
        EXAMPLE(SA__STEP_POLL, 200, "task-status-error-no-face.json") };
    static const fs_reply refused[] = {
        { .step = SA__STEP_TASK_CREATE, .http = 429,
          .example = "error-429.json", .latency_ms = 9000 }, TASK_OK };
    jt *t;
    const char *msg;

    JT_WITH(t, FROM_URL, deadline_at_ms, T0 + 1000);
    t->run.stop_state = SA_JOB_FAILED;
    jt_drive(t, created, 1);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_DEADLINE);
    CHECK(contains(sa__jobsm_errmsg(t->sm), "may exist"));
    CHECK_EQ_INT(t->run.ended, 0);
    t->run.stop_state = -1;
    jt_drive(t, created + 1, N(created) - 1);
    CHECK(t->run.ended && !t->run.abandoned);
    CHECK_EQ_INT(sa__jobsm_polls(t->sm), 2);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_DEADLINE);
    /* details are sticky: no answer had arrived when the job ended */
    CHECK(sa__jobsm_engine_error(t->sm) == NULL);
    CHECK_EQ_INT(sa__jobsm_http_status(t->sm), 0);
    CHECK(sa__jobsm_request_id(t->sm) == NULL);
    CHECK_EQ_INT(sa__jobsm_task_outcome(t->sm, &msg), SA_ERR_ENGINE);
    CHECK(contains(msg, "error_no_face"));
    jt_end(t);

    /* refused (429) after the deadline: no task, no retry, done */
    JT_WITH(t, FROM_URL, deadline_at_ms, T0 + 1000);
    CHECK_EQ_INT(jt_drive(t, refused, N(refused)), 1);
    CHECK(t->run.ended);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_DEADLINE);
    CHECK_EQ_INT(sa__jobsm_task_maybe_created(t->sm), 0);
    CHECK_EQ_INT(sa__jobsm_task_outcome(t->sm, &msg), SA_ERR_RATE_LIMITED);
    CHECK(contains(msg, "no task was created"));
    CHECK_EQ_INT(fs_count(&t->run, SA__STEP_TASK_CREATE), 1);
    jt_end(t);
}

/* ------------------------------------------------------------------ */
/* Cancel and abandon                                                  */
/* ------------------------------------------------------------------ */

/* Cancel with nothing billed possible: ends at once, any request dropped. */
TEST(cancel_before_a_task_may_exist)
{
    static const fs_reply script[] = {
        FILE_OK, HTTP(SA__STEP_UPLOAD, 503, ""), FS_UPLOAD_OK, TASK_OK };
    static const int stops[] = { SA_JOB_FILE_CREATE, SA_JOB_UPLOAD,
                                 SA_JOB_BACKOFF, SA_JOB_TASK_CREATE };
    size_t i;

    for (i = 0; i < N(stops); i++) {
        jt *t = jt_started(FROM_FILE);
        sa__next nx;
        REQUIRE(t);
        t->run.stop_state = stops[i];
        jt_drive(t, script, N(script));
        REQUIRE(sa__jobsm_state(t->sm) == stops[i]);
        if (stops[i] == SA_JOB_FILE_CREATE || stops[i] == SA_JOB_UPLOAD) {
            /* with the request out */
            REQUIRE(sa__jobsm_next(t->sm, t->run.now, &nx) == SA_OK);
            CHECK_EQ_INT(nx.kind, SA__NEXT_SEND);
        }
        CHECK_EQ_INT(sa__jobsm_cancel(t->sm, t->run.now, 0), 0);
        CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_CANCELLED);
        CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_CANCELLED);
        CHECK(contains(sa__jobsm_errmsg(t->sm), "nothing was billed"));
        REQUIRE(sa__jobsm_next(t->sm, t->run.now, &nx) == SA_OK);
        CHECK_EQ_INT(nx.kind, SA__NEXT_END);
        CHECK_EQ_INT(sa__jobsm_task_maybe_created(t->sm), 0);
        CHECK_EQ_INT(fs_count(&t->run, SA__STEP_TASK_CREATE), 0);
        if (harness_cur_failed) fprintf(stderr, "  (case %zu)\n", i);
        jt_end(t);
    }
}

/* Cancel while the task create request is out: the task may exist, so the
 * machine waits for the answer and polls what it created. */
TEST(cancel_while_task_create_is_out)
{
    static const fs_reply created[] = { TASK_OK, RUNNING, SUCCESS };
    /* the create's answer after the cancel: what the task became */
    static const struct {
        fs_reply answer;
        int outcome, maybe_created;
    } ends[] = {
        { EXAMPLE(SA__STEP_TASK_CREATE, 401, "error-401.json"), SA_ERR_AUTH, 0 },
        { TIMEOUT(SA__STEP_TASK_CREATE), SA_ERR_AMBIGUOUS, 1 },
    };
    jt *t = jt_started(FROM_URL);
    const char *msg;
    size_t i;

    REQUIRE(t);
    jt_drive(t, created, 0);
    REQUIRE(t->run.pending);
    CHECK_EQ_INT(sa__jobsm_cancel(t->sm, t->run.now, 0), 1);
    CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_CANCELLED);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_CANCELLED);
    CHECK_EQ_INT(sa__jobsm_background(t->sm), 1);
    CHECK_EQ_INT(sa__jobsm_cancel(t->sm, t->run.now, 0), 1);  /* idempotent */
    jt_drive(t, created, N(created));
    CHECK(t->run.ended && !t->run.abandoned);
    CHECK_EQ_INT(sa__jobsm_polls(t->sm), 2);
    CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_CANCELLED);
    CHECK_EQ_INT(sa__jobsm_task_outcome(t->sm, &msg), SA_OK);
    CHECK_STR(sa__jobsm_task_id(t->sm), TASK_ID);
    CHECK(sa__jobsm_result(t->sm) == NULL);
    jt_end(t);

    for (i = 0; i < N(ends); i++) {
        t = jt_cancelled(FROM_URL, &ends[i].answer, 0, 0, 1);
        REQUIRE(t);
        jt_drive(t, &ends[i].answer, 1);
        CHECK(t->run.ended);
        CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_CANCELLED);
        CHECK_EQ_INT(sa__jobsm_task_outcome(t->sm, &msg), ends[i].outcome);
        CHECK_EQ_INT(sa__jobsm_task_maybe_created(t->sm),
                     ends[i].maybe_created);
        CHECK_EQ_INT(fs_count(&t->run, SA__STEP_TASK_CREATE), 1);
        if (harness_cur_failed) fprintf(stderr, "  (case %zu)\n", i);
        jt_end(t);
    }
}

/* Cancel once the task exists: in POLL_WAIT, POLLING (request out) and a
 * poll BACKOFF, the task is polled to its end in the background. */
TEST(cancel_after_the_task_exists)
{
    static const fs_reply script[] = {
        TASK_OK, RUNNING, HTTP(SA__STEP_POLL, 503, ""), RUNNING, SUCCESS };
    static const int stops[] = { SA_JOB_POLL_WAIT, SA_JOB_POLLING,
                                 SA_JOB_BACKOFF };
    size_t i;

    for (i = 0; i < N(stops); i++) {
        jt *t = jt_started(FROM_URL);
        size_t used;
        const char *msg;
        REQUIRE(t);
        t->run.stop_state = stops[i];
        used = jt_drive(t, script, N(script));
        REQUIRE(sa__jobsm_state(t->sm) == stops[i]);
        CHECK_EQ_INT(sa__jobsm_cancel(t->sm, t->run.now, 0), 1);
        CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_CANCELLED);
        CHECK(contains(sa__jobsm_errmsg(t->sm), "still polled"));
        t->run.stop_state = -1;
        jt_drive(t, script + used, N(script) - used);
        CHECK(t->run.ended && !t->run.abandoned);
        CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_CANCELLED);
        CHECK_EQ_INT(sa__jobsm_task_outcome(t->sm, &msg), SA_OK);
        CHECK_EQ_INT(fs_count(&t->run, SA__STEP_POLL), 4);
        CHECK(t->run.max_poll_gap <= 10000);
        if (harness_cur_failed) fprintf(stderr, "  (case %zu)\n", i);
        jt_end(t);
    }
}

TEST(abandon_stops_polling)
{
    static const fs_reply script[] = { TASK_OK, RUNNING, RUNNING, SUCCESS };
    jt *t = jt_started(FROM_URL);
    sa__next nx;
    const char *msg;

    /* a running job: ends at once, no more polls */
    REQUIRE(t);
    t->run.stop_state = SA_JOB_POLL_WAIT;
    jt_drive(t, script, N(script));
    CHECK_EQ_INT(sa__jobsm_cancel(t->sm, t->run.now, 1), 0);
    CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_CANCELLED);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_CANCELLED);
    CHECK(contains(sa__jobsm_errmsg(t->sm), "may still be billed"));
    REQUIRE(sa__jobsm_next(t->sm, t->run.now + 100000, &nx) == SA_OK);
    CHECK_EQ_INT(nx.kind, SA__NEXT_END);
    jt_end(t);

    /* a job polling in the background after a cancel */
    t = jt_started(FROM_URL);
    REQUIRE(t);
    t->run.stop_state = SA_JOB_POLL_WAIT;
    jt_drive(t, script, N(script));
    CHECK_EQ_INT(sa__jobsm_cancel(t->sm, t->run.now, 0), 1);
    CHECK_EQ_INT(sa__jobsm_cancel(t->sm, t->run.now, 1), 0);
    CHECK_EQ_INT(sa__jobsm_background(t->sm), 0);
    CHECK_EQ_INT(sa__jobsm_task_outcome(t->sm, &msg), SA_ERR_CANCELLED);
    CHECK(contains(msg, "no longer polled"));
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_CANCELLED);
    REQUIRE(sa__jobsm_next(t->sm, t->run.now, &nx) == SA_OK);
    CHECK_EQ_INT(nx.kind, SA__NEXT_END);
    jt_end(t);

    /* abandon with the create request out: ends at once */
    t = jt_cancelled(FROM_URL, script, 0, 1, 0);
    REQUIRE(t);
    CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_CANCELLED);
    CHECK_EQ_INT(sa__jobsm_task_maybe_created(t->sm), 1);
    REQUIRE(sa__jobsm_next(t->sm, t->run.now, &nx) == SA_OK);
    CHECK_EQ_INT(nx.kind, SA__NEXT_END);
    jt_end(t);
}

/* Background polling: failed polls never end it (only a final answer
 * does); max_polls, when set, bounds it. */
TEST(background_polling_is_bounded)
{
    fs_reply script[12];
    size_t i;
    jt *t = jt_from(FROM_URL);
    const char *msg;

    REQUIRE(t);
    t->cfg.max_retries = 2;
    script[0] = (fs_reply)TASK_OK;
    for (i = 1; i < N(script) - 1; i++)
        script[i] = (fs_reply)HTTP(SA__STEP_POLL, 500, "{\"status\":500}");
    script[N(script) - 1] = (fs_reply)SUCCESS;
    REQUIRE(jt_start(t) == SA_OK);
    jt_drive(t, script, 1);
    CHECK_EQ_INT(sa__jobsm_cancel(t->sm, t->run.now, 0), 1);
    CHECK_EQ_INT(jt_drive(t, script + 1, N(script) - 1), N(script) - 1);
    jt_check_task_done(t, SA_ERR_CANCELLED);
    jt_end(t);

    t = jt_from(FROM_URL);
    REQUIRE(t);
    t->cfg.max_polls = 2;
    script[0] = (fs_reply)TASK_OK;
    for (i = 1; i < N(script); i++) script[i] = (fs_reply)RUNNING;
    REQUIRE(jt_start(t) == SA_OK);
    jt_drive(t, script, 1);
    CHECK_EQ_INT(sa__jobsm_cancel(t->sm, t->run.now, 0), 1);
    jt_drive(t, script + 1, N(script) - 1);
    CHECK(t->run.ended);
    CHECK_EQ_INT(sa__jobsm_polls(t->sm), 2);
    CHECK_EQ_INT(sa__jobsm_task_outcome(t->sm, &msg), SA_ERR_LIMIT);
    jt_end(t);
}

/* ------------------------------------------------------------------ */
/* Sticky outcomes and misuse                                          */
/* ------------------------------------------------------------------ */

TEST(sticky_outcomes)
{
    static const fs_reply script[] = {
        EXAMPLE(SA__STEP_FILE_CREATE, 401, "error-401.json") };
    static const fs_reply done[] = { TASK_OK, SUCCESS };
    sa__http_response resp;
    sa__next nx;
    int k;
    jt *t = jt_new();

    memset(&resp, 0, sizeof resp);
    resp.http_status = 200;
    resp.body = "{}";
    resp.body_len = 2;
    REQUIRE(t && jt_start(t) == SA_OK);
    /* on_response with nothing out: refused, nothing changes */
    CHECK_EQ_INT(sa__jobsm_on_response(t->sm, T0, &resp),
                 SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_FILE_CREATE);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_NOT_DONE);
    jt_drive(t, script, N(script));
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_AUTH);
    for (k = 0; k < 3; k++) {
        CHECK_EQ_INT(sa__jobsm_next(t->sm, T0 + 1000000 * k, &nx), SA_OK);
        CHECK_EQ_INT(nx.kind, SA__NEXT_END);
        CHECK_EQ_INT(sa__jobsm_on_response(t->sm, T0, &resp),
                     SA_ERR_INVALID_ARGUMENT);
        CHECK_EQ_INT(sa__jobsm_cancel(t->sm, T0, k & 1), 0);
        CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_FAILED);
        CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_AUTH);
        CHECK(contains(sa__jobsm_errmsg(t->sm), "401"));
    }
    jt_end(t);

    t = jt_cancelled(FROM_URL, done, N(done), 0, 0);
    REQUIRE(t);
    CHECK_EQ_INT(sa__jobsm_cancel(t->sm, t->run.now, 1), 0);
    CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_DONE);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_OK);
    CHECK(sa__jobsm_result(t->sm) != NULL);
    jt_end(t);
}

/* Out of memory in the transport: the job ends NOMEM (and the call says
 * so); a task create that never left has created nothing. */
TEST(transport_out_of_memory)
{
    static const fs_reply cases[] = {
        NET(SA__STEP_FILE_CREATE, SA_ERR_NOMEM, 1),
        NET(SA__STEP_TASK_CREATE, SA_ERR_NOMEM, 1),
        NET(SA__STEP_TASK_CREATE, SA_ERR_NOMEM, 0),
    };
    size_t i;

    for (i = 0; i < N(cases); i++) {
        jt *t = jt_new();
        REQUIRE(t);
        if (i > 0) use_image_url(t);
        REQUIRE(jt_start(t) == SA_OK);
        jt_drive(t, &cases[i], 1);
        CHECK(t->run.ended);
        CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_FAILED);
        if (i < 2) {
            CHECK_EQ_INT(t->run.last_rc, SA_ERR_NOMEM);
            CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_NOMEM);
            CHECK_EQ_INT(sa__jobsm_task_maybe_created(t->sm), 0);
        } else {   /* it may have reached the server first */
            CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_AMBIGUOUS);
            CHECK_EQ_INT(sa__jobsm_task_maybe_created(t->sm), 1);
        }
        if (harness_cur_failed) fprintf(stderr, "  (case %zu)\n", i);
        jt_end(t);
    }
}

/* An answer without a body (whatever length the engine reports) is read
 * as empty. */
TEST(answers_without_a_body)
{
    jt *t = jt_started(FROM_URL);
    sa__http_response resp;
    sa__next nx;

    REQUIRE(t);
    REQUIRE(sa__jobsm_next(t->sm, T0, &nx) == SA_OK && nx.kind == SA__NEXT_SEND);
    memset(&resp, 0, sizeof resp);
    resp.http_status = 200;
    resp.body = NULL;
    resp.body_len = 4096;
    CHECK_EQ_INT(sa__jobsm_on_response(t->sm, T0 + 10, &resp), SA_OK);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_AMBIGUOUS);
    jt_end(t);

    t = jt_started(FROM_FILE);
    REQUIRE(t);
    REQUIRE(sa__jobsm_next(t->sm, T0, &nx) == SA_OK && nx.kind == SA__NEXT_SEND);
    resp.http_status = 502;
    CHECK_EQ_INT(sa__jobsm_on_response(t->sm, T0 + 10, &resp), SA_OK);
    CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_BACKOFF);
    jt_end(t);
}

/* Failures the engine reports that a retry would not cure end the job. */
TEST(engine_refusals_are_final)
{
    static const struct { fs_reply r; int image_url; } cases[] = {
        { NET(SA__STEP_FILE_CREATE, SA_ERR_INSECURE, 1), 0 },
        { NET(SA__STEP_TASK_CREATE, SA_ERR_PROTOCOL, 1), 1 },
        { NET(SA__STEP_TASK_CREATE, SA_ERR_INSECURE, 1), 1 },
    };
    static const fs_reply upload[] = { FILE_OK,
                                       NET(SA__STEP_UPLOAD, SA_ERR_PROTOCOL, 1) };
    size_t i;
    jt *t;

    for (i = 0; i < N(cases); i++) {
        t = jt_new();
        REQUIRE(t);
        if (cases[i].image_url) use_image_url(t);
        REQUIRE(jt_start(t) == SA_OK);
        jt_drive(t, &cases[i].r, 1);
        CHECK(t->run.ended);
        CHECK_EQ_INT(sa__jobsm_status(t->sm), cases[i].r.transport);
        CHECK_EQ_INT(t->run.n_events, 1);
        CHECK_EQ_INT(sa__jobsm_task_maybe_created(t->sm), 0);
        if (harness_cur_failed) fprintf(stderr, "  (case %zu)\n", i);
        jt_end(t);
    }
    jt_ran_counts(FROM_FILE, upload, N(upload), SA_ERR_PROTOCOL,
                  SA__STEP_UPLOAD, 1);
}

TEST(wait_while_a_request_is_out)
{
    jt *t = jt_new();
    sa__next nx;

    REQUIRE(t);
    t->cfg.deadline_at_ms = 0;   /* none */
    REQUIRE(jt_start(t) == SA_OK);
    REQUIRE(sa__jobsm_next(t->sm, T0, &nx) == SA_OK && nx.kind == SA__NEXT_SEND);
    CHECK_EQ_INT(nx.req->step, SA__STEP_FILE_CREATE);
    REQUIRE(sa__jobsm_next(t->sm, T0 + 999999, &nx) == SA_OK);
    CHECK_EQ_INT(nx.kind, SA__NEXT_WAIT);
    CHECK(nx.wake_at_ms == INT64_MAX);
    CHECK(nx.req == NULL);
    jt_end(t);
}

/* Messages carry the HTTP status, the server's words and the request id,
 * and never a credential or a header. */
TEST(error_details_are_kept)
{
    static const fs_reply script[] = {
        { .step = SA__STEP_TASK_CREATE, .http = 400, .latency_ms = 10,
          .example = "error-400-unknown-action.json",
          .request_id = "987654321012345678901" } };
    jt *t = jt_started(FROM_URL);
    const char *m;

    REQUIRE(t);
    jt_drive(t, script, N(script));
    m = sa__jobsm_errmsg(t->sm);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_BAD_REQUEST);
    CHECK(contains(m, "400"));
    CHECK(contains(m, "InvalidParameters"));
    CHECK(contains(m, "Not available dst_action abc123"));
    CHECK(contains(m, "987654321012345678901"));
    CHECK(!contains(m, "Authorization") && !contains(m, "Bearer"));
    CHECK_STR(sa__jobsm_request_id(t->sm), "987654321012345678901");
    CHECK_STR(sa__jobsm_api_error_code(t->sm), "InvalidParameters");
    jt_end(t);
}

/* Every API request carries api_host = 1; only the upload has 0. */
TEST(auth_only_on_api_requests)
{
    static const fs_reply script[] = {
        HTTP(SA__STEP_FILE_CREATE, 503, ""), FILE_OK,
        NET(SA__STEP_UPLOAD, SA_ERR_TRANSPORT, 0), FS_UPLOAD_OK,
        NET(SA__STEP_TASK_CREATE, SA_ERR_TRANSPORT, 1), TASK_OK, RUNNING,
        HTTP(SA__STEP_POLL, 502, html_502), SUCCESS };
    size_t i, k;
    jt *t = jt_ran(FROM_FILE, script, N(script), SA_OK);

    REQUIRE(t);
    CHECK_EQ_INT(t->run.n_events, N(script));
    for (i = 0; i < t->run.n_events; i++) {
        const fs_event *e = ev(t, i);
        CHECK_EQ_INT(e->api_host, e->step == SA__STEP_UPLOAD ? 0 : 1);
        if (e->step != SA__STEP_UPLOAD) CHECK(strncmp(e->url, BASE "/", 17) == 0);
        for (k = 0; k < e->n_headers && k < 8; k++)
            CHECK(strncmp(e->headers[k], "Authorization", 13) != 0);
    }
    jt_end(t);
}

int main(void)
{
    RUN(happy_path_upload);
    RUN(happy_path_image_url);
    RUN(happy_path_file_id_and_buffer);
    RUN(config_is_copied);
    RUN(new_rejects_bad_configs);
    RUN(file_create_503_then_ok);
    RUN(upload_reset_then_ok);
    RUN(poll_502_html_then_ok);
    RUN(rate_limited_on_every_step);
    RUN(task_create_not_sent_is_retried);
    RUN(task_create_ambiguous);
    RUN(ambiguous_create_reports_no_earlier_status);
    RUN(task_create_refusals_are_final);
    RUN(file_create_refusals_are_final);
    RUN(file_create_unreadable_200_is_retried);
    RUN(file_create_nul_id_never_creates_a_task);
    RUN(file_create_404_falls_back_to_generic_path);
    RUN(upload_refusals);
    RUN(upload_slot_checks);
    RUN(unusable_upload_slot_is_refused_at_once);
    RUN(retry_budget_exhausted);
    RUN(poll_retry_budget_is_consecutive);
    RUN(backoff_delays_grow_within_caps);
    RUN(polling_interval_honoured_and_clamped);
    RUN(poll_interval_above_max_is_capped);
    RUN(no_poll_gap_above_max_in_any_scenario);
    RUN(every_status_answer);
    RUN(oversized_or_unreadable_poll_is_retried);
    RUN(task_id_is_url_encoded);
    RUN(max_polls_is_a_hard_bound);
    RUN(poll_storm_then_success_is_done);
    RUN(poll_storm_in_the_background);
    RUN(poll_storm_past_the_deadline);
    RUN(final_answers_end_a_storm);
    RUN(refused_status_answers_end_in_protocol);
    RUN(unknown_task_status_is_not_finished);
    RUN(resume_polls_the_task_at_once);
    RUN(resume_ends_like_a_submitted_job);
    RUN(resume_deadline_cancel_abandon);
    RUN(max_polls_zero_is_no_bound);
    RUN(deadline_before_a_task_exists);
    RUN(deadline_after_the_task_exists);
    RUN(deadline_while_task_create_is_out);
    RUN(cancel_before_a_task_may_exist);
    RUN(cancel_while_task_create_is_out);
    RUN(cancel_after_the_task_exists);
    RUN(abandon_stops_polling);
    RUN(background_polling_is_bounded);
    RUN(sticky_outcomes);
    RUN(transport_out_of_memory);
    RUN(answers_without_a_body);
    RUN(engine_refusals_are_final);
    RUN(wait_while_a_request_is_out);
    RUN(error_details_are_kept);
    RUN(auth_only_on_api_requests);
    (void)harness_slurp;
    RUN(zip_result_fetched);
    RUN(zip_transient_failures_retried);
    RUN(zip_expired_url_refreshed);
    RUN(zip_expired_twice);
    RUN(zip_corrupt);
    RUN(zip_cancel_and_deadline_while_fetching);
    RUN(poll_now_moves_the_next_poll);
    RUN(download_refreshes_an_expired_url);
    RUN(fetch_machine_counts_downloads);
    return harness_report();
}
