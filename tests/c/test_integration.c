/*
 * test_integration.c - the whole library against the local emulator
 * (scripts/emulator, started per group with the flags it needs): every
 * source kind, both API versions and both result formats, the documented
 * errors, the fault matrix (each injectable fault on each step against its
 * expected outcome, with the emulator's log and counters checked after
 * each scenario), many jobs on one client, the rate limiter against the
 * emulator's default limits, four clients in four threads, and the API key
 * never appearing in a log line or an error message.
 */
#include "harness.h"
#include "sa_internal.h"
#include "support_emulator.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A distinctive key: every log line of every client is searched for it. */
#define SECRET "sa-test-Zq81xLmT3-secret"
#define KEYS "--keys " SECRET
#define FAST "--task-seconds 0.15 --rate-limit off " KEYS

#define SD_JPG SA_FIXTURES "/portrait_sd.jpg"
#define HD_JPG SA_FIXTURES "/portrait_hd.jpg"
#define PNG SA_FIXTURES "/portrait.png"

static const char *const sd3[] = {"wrinkle", "pore", "skin_type"};
static const char *const hd2[] = {"hd_wrinkle", "hd_pore"};

/* ------------------------------------------------------------------ */
/* Log capture shared by every client (and thread)                     */
/* ------------------------------------------------------------------ */

typedef struct logcap {
    pthread_mutex_t lock;
    long lines;
    long with_key;
    long warnings;
    long background_ok;   /* "succeeded in the background" */
    long abandoned;       /* WARNING lines about abandoned tasks */
} logcap;

static logcap g_log = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, 0, 0};

static void cap_log(void *ud, int level, const char *msg)
{
    logcap *l = ud;
    pthread_mutex_lock(&l->lock);
    l->lines++;
    if (strstr(msg, SECRET)) l->with_key++;
    if (level >= SA_LOG_WARNING) l->warnings++;
    if (strstr(msg, "succeeded in the background")) l->background_ok++;
    if (level == SA_LOG_WARNING && strstr(msg, "abandoned")) l->abandoned++;
    pthread_mutex_unlock(&l->lock);
}

static long log_get(long *field)
{
    long v;
    pthread_mutex_lock(&g_log.lock);
    v = *field;
    pthread_mutex_unlock(&g_log.lock);
    return v;
}

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

/* Under valgrind the client runs ~20x slower: the delay between a
 * limiter slot and the request's arrival then varies by more than the
 * limiter's margin (the first request on a cold client arrives ~100 ms
 * late), so a rare 429 is possible there; it is retried.  Normal and
 * sanitizer builds must see none. */
static int under_valgrind(void)
{
    const char *p = getenv("LD_PRELOAD");
    return p && strstr(p, "vgpreload") != NULL;
}

static void base_options(sa_client_options *o, const emu *e)
{
    emu_options(e, o, SECRET, 50, 3000);
    o->max_retries = 4;
    o->rate_limit = 0;
    o->log = cap_log;
    o->log_user_data = &g_log;
    o->log_level = SA_LOG_DEBUG;
}

static sa_client *client_for(const emu *e)
{
    sa_client_options o;
    base_options(&o, e);
    return emu_client(&o);
}

static void file_request(sa_request *r, const char *path)
{
    sa_request_init(r);
    r->file_path = path;
    r->actions = sd3;
    r->n_actions = 3;
}

/* Submit, wait, and return the ended job (NULL on a submit failure). */
static sa_job *run_job(sa_client *c, const sa_request *r)
{
    sa_job *j = NULL;
    if (sa_client_submit(c, r, &j) != SA_OK) {
        fprintf(stderr, "submit: %s\n", sa_client_errmsg(c));
        return NULL;
    }
    if (sa_job_wait(j, 20000) != SA_OK)
        fprintf(stderr, "wait did not end the job (%s)\n",
                sa_job_state_name(sa_job_state(j)));
    if (strstr(sa_job_errmsg(j), SECRET))
        fprintf(stderr, "the key is in a job message!\n");
    return j;
}

/* Run r on c to its end (run_job): the job j must be there and have ended
 * with `status`. */
#define RUN_JOB(j, c, r, status)                                         \
    do {                                                                 \
        (j) = run_job((c), (r));                                         \
        REQUIRE((j) != NULL);                                            \
        CHECK_EQ_INT(sa_job_status(j), (status));                        \
    } while (0)

static void check_invariants(const emu *e, long max_tasks, int idle, int line)
{
    char why[256];
    if (emu_check_invariants(e, max_tasks, 1.6, idle, why, sizeof why) != 0)
        HARNESS_FAIL("line %d: emulator invariant: %s", line, why);
}

#define INVARIANTS(e, max_tasks, idle) \
    check_invariants((e), (max_tasks), (idle), __LINE__)

/* The end of a test of one job on the shared emulator: the invariants
 * hold (at most one task, none running); j and c are freed. */
#define END_ONE_JOB(j, c)                                                \
    do {                                                                 \
        INVARIANTS(&g_emu, 1, 1);                                        \
        sa_job_free(j);                                                  \
        sa_client_free(c);                                               \
    } while (0)

/* A successful JSON result: every requested concern scored. */
static void check_json_result(const sa_job *j, const char *concern,
                              const char *region)
{
    const sa_result *r = sa_job_result(j);
    const sa_score *s;
    if (!r) {
        HARNESS_FAIL("no result (%s)", sa_job_errmsg(j));
        return;
    }
    CHECK_EQ_INT(sa_result_format(r), SA_FORMAT_JSON);
    CHECK(sa_result_count(r) > 0);
    CHECK_STR(sa_result_task_id(r), sa_job_task_id(j));
    s = sa_result_get(r, concern, region);
    CHECK(s != NULL);
    if (s) CHECK(s->ui_score >= 1 && s->ui_score <= 100);
    CHECK(sa_result_overall(r) >= 1 && sa_result_overall(r) <= 100);
    CHECK(sa_result_resize_image_url(r) != NULL);
}

static emu g_emu;  /* the shared emulator of the FAST groups */

/* A client of the shared emulator, reset (its counters at zero): NULL
 * if the client could not be made (the emulator is then left as it was). */
static sa_client *client_for_reset(void)
{
    sa_client *c = client_for(&g_emu);
    if (c) emu_reset(&g_emu);
    return c;
}

/* ------------------------------------------------------------------ */
/* Sources, versions, formats                                          */
/* ------------------------------------------------------------------ */

TEST(file_path_sd_json_v21)
{
    sa_client *c = client_for_reset();
    sa_request r;
    sa_job *j;

    REQUIRE(c != NULL);
    file_request(&r, SD_JPG);
    RUN_JOB(j, c, &r, SA_OK);
    CHECK_EQ_INT(sa_job_state(j), SA_JOB_DONE);
    CHECK_STR(sa_job_errmsg(j), "");
    CHECK_EQ_INT(sa_job_http_status(j), 200);
    CHECK(sa_job_task_id(j) != NULL && sa_job_file_id(j) != NULL);
    CHECK(sa_job_request_id(j) != NULL);
    CHECK(sa_job_polls(j) >= 1);
    CHECK_EQ_INT(sa_job_units(j), 9);
    CHECK(sa_job_api_error_code(j) == NULL && sa_job_engine_error(j) == NULL);
    check_json_result(j, "wrinkle", NULL);
    CHECK(sa_result_get(sa_job_result(j), "skin_type", "t_zone") != NULL);
    CHECK_EQ_INT(emu_counter2(&g_emu, "requests", "upload"), 1);
    CHECK_EQ_INT(emu_counter2(&g_emu, "units_charged", SECRET), 9);
    INVARIANTS(&g_emu, 1, 1);
    /* a job that outlives its client keeps its outcome and result */
    sa_client_free(c);
    CHECK_EQ_INT(sa_job_status(j), SA_OK);
    check_json_result(j, "wrinkle", NULL);
    CHECK_EQ_INT(sa_job_wait(j, 0), SA_OK);
    sa_job_free(j);
}

TEST(buffer_hd_json_v20)
{
    sa_client_options o;
    sa_client *c;
    sa_request r;
    sa_job *j;
    size_t len = 0;
    char *img = harness_slurp(HD_JPG, &len);

    REQUIRE(img != NULL);
    base_options(&o, &g_emu);
    o.api_version = SA_API_V2_0;
    c = emu_client(&o);
    REQUIRE(c != NULL);
    emu_reset(&g_emu);
    sa_request_init(&r);
    r.buffer = img;
    r.buffer_len = len;
    r.actions = hd2;
    r.n_actions = 2;
    RUN_JOB(j, c, &r, SA_OK);
    check_json_result(j, "hd_wrinkle", "forehead");
    CHECK(sa_result_get(sa_job_result(j), "wrinkle", "whole") != NULL);
    CHECK_EQ_INT(sa_job_units(j), 12);
    CHECK_EQ_INT(emu_counter2(&g_emu, "units_charged", SECRET), 12);
    INVARIANTS(&g_emu, 1, 1);
    sa_job_free(j);
    free(img);
    sa_client_free(c);
}

/* Status answers larger than 4 KiB (all 16 HD concerns: about 7.7 KB),
 * one analysis after another on one connection.  Easy handles used to be
 * pooled and reset: libcurl 7.88 then read 16 KiB at a time into the 4 KiB
 * receive buffer of the handle's earlier transfer (valgrind saw it; a big
 * answer overflows it, which ASan reports).  Each transfer now gets its own
 * handle. */
TEST(large_answers_on_reused_connections)
{
    static const char *const hd16[] = {
        "hd_wrinkle", "hd_pore", "hd_texture", "hd_acne", "hd_oiliness",
        "hd_radiance", "hd_eye_bag", "hd_age_spot", "hd_dark_circle",
        "hd_droopy_upper_eyelid", "hd_droopy_lower_eyelid", "hd_firmness",
        "hd_moisture", "hd_redness", "hd_skin_type", "hd_tear_trough"};
    sa_client_options o;
    sa_client *c;
    sa_request r;
    int i;

    base_options(&o, &g_emu);
    o.max_connections = 1;
    c = emu_client(&o);
    REQUIRE(c != NULL);
    sa_request_init(&r);
    r.file_path = HD_JPG;
    r.actions = hd16;
    r.n_actions = 16;
    for (i = 0; i < 6; i++) {
        sa_job *j;
        RUN_JOB(j, c, &r, SA_OK);
        CHECK(sa_job_result(j) != NULL &&
              sa_result_count(sa_job_result(j)) >= 16);
        CHECK(sa_job_result(j) != NULL &&
              strlen(sa_result_json(sa_job_result(j))) > 4096);
        sa_job_free(j);
    }
    sa_client_free(c);
}

/* A ZIP result is downloaded (without the key) and parsed before DONE:
 * scores from score_info.json, one mask file per scored concern. */
static void check_zip_result(const sa_job *j, int mask_format)
{
    const sa_result *r = sa_job_result(j);
    size_t i;

    if (!r) {
        HARNESS_FAIL("no result (%s)", sa_job_errmsg(j));
        return;
    }
    CHECK_EQ_INT(sa_result_format(r), SA_FORMAT_ZIP);
    CHECK(sa_result_get(r, "wrinkle", NULL) != NULL);
    CHECK(sa_result_get(r, "pore", NULL) != NULL);
    CHECK(sa_result_overall(r) >= 1 && sa_result_overall(r) <= 100);
    CHECK(sa_result_file_count(r) >= 3);
    for (i = 0; i < sa_result_file_count(r); i++)
        CHECK_EQ_INT(sa_result_file_format(r, i), mask_format);
}

TEST(png_zip_with_options_v21)
{
    sa_client *c = client_for_reset();
    sa_request r;
    sa_job *j;

    REQUIRE(c != NULL);
    file_request(&r, PNG);
    r.format = SA_FORMAT_ZIP;
    r.pf_camera_kit = 0;
    r.mask_overlay = 1;     /* JPEG overlays instead of PNG masks */
    RUN_JOB(j, c, &r, SA_OK);
    check_zip_result(j, SA_IMAGE_JPEG);
    CHECK_EQ_INT(emu_counter2(&g_emu, "requests", "result"), 1);
    END_ONE_JOB(j, c);
}

TEST(image_url_source)
{
    sa_client *c = client_for_reset();
    sa_request r;
    sa_job *j;
    char url[512];

    REQUIRE(c != NULL);
    REQUIRE(emu_host_public(&g_emu, "selfie.jpg", SD_JPG, url,
                            sizeof url) == 0);
    sa_request_init(&r);
    r.image_url = url;
    r.actions = sd3;
    r.n_actions = 3;
    RUN_JOB(j, c, &r, SA_OK);
    CHECK(sa_job_file_id(j) == NULL);
    check_json_result(j, "pore", NULL);
    CHECK_EQ_INT(emu_counter2(&g_emu, "requests", "file_create"), 0);
    CHECK_EQ_INT(emu_counter2(&g_emu, "requests", "upload"), 0);
    END_ONE_JOB(j, c);
}

TEST(file_id_source_reuses_an_upload)
{
    sa_client *c = client_for_reset();
    sa_request r;
    sa_job *a, *b;

    REQUIRE(c != NULL);
    file_request(&r, SD_JPG);
    a = run_job(c, &r);
    REQUIRE(a != NULL && sa_job_file_id(a) != NULL);
    sa_request_init(&r);
    r.file_id = sa_job_file_id(a);
    r.actions = sd3;
    r.n_actions = 3;
    r.api_version = SA_API_V2_0;
    b = run_job(c, &r);
    REQUIRE(b != NULL);
    CHECK_EQ_INT(sa_job_status(b), SA_OK);
    check_json_result(b, "wrinkle", NULL);
    CHECK_EQ_INT(emu_counter2(&g_emu, "requests", "upload"), 1);
    INVARIANTS(&g_emu, 2, 1);
    sa_job_free(a);
    sa_job_free(b);
    sa_client_free(c);
}

TEST(quirks_are_survived)
{
    emu e;
    sa_client *c;
    sa_request r;
    sa_job *j;

    REQUIRE(emu_start(&e, FAST " --quirks zip_bare_string,numeric_headers,"
                          "extra_fields,polling_interval "
                          "--polling-interval-ms 200") == 0);
    c = client_for(&e);
    REQUIRE(c != NULL);
    file_request(&r, SD_JPG);
    RUN_JOB(j, c, &r, SA_OK);
    check_json_result(j, "wrinkle", NULL);
    sa_job_free(j);
    r.format = SA_FORMAT_ZIP;
    RUN_JOB(j, c, &r, SA_OK);
    check_zip_result(j, SA_IMAGE_PNG);   /* from the bare-string URL */
    INVARIANTS(&e, 2, 1);
    sa_job_free(j);
    sa_client_free(c);
    emu_stop(&e);
}

typedef struct progress {
    int states[64];
    int n;
    int terminal;
    int running_max;     /* jobs between start and end at once */
    int *running;        /* shared counter, or NULL */
} progress;

static int progress_cb(sa_job *job, int state, void *ud)
{
    progress *p = ud;
    (void)job;
    if (p->n < 64) p->states[p->n++] = state;
    if (p->running) {
        if (state == SA_JOB_UPLOAD) ++*p->running;
        if (state >= SA_JOB_DONE) --*p->running;
        if (*p->running > p->running_max) p->running_max = *p->running;
    }
    if (state >= SA_JOB_DONE) p->terminal++;
    return 0;
}

static int has_state(const progress *p, int state)
{
    int i;
    for (i = 0; i < p->n; i++)
        if (p->states[i] == state) return 1;
    return 0;
}

TEST(progress_callbacks_and_stable_strings)
{
    sa_client *c = client_for_reset();
    sa_request r;
    sa_job *j = NULL;
    progress p;
    const char *ids[400];
    int n = 0, i;

    REQUIRE(c != NULL);
    memset(&p, 0, sizeof p);
    file_request(&r, SD_JPG);
    r.callback = progress_cb;
    r.user_data = &p;
    REQUIRE(sa_client_submit(c, &r, &j) == SA_OK);
    while (!sa_job_done(j) && n < 400) {
        sa_client_step(c, 20);
        /* "borrowed until sa_job_free": every pointer handed out stays */
        if ((ids[n] = sa_job_request_id(j)) != NULL) n++;
        (void)sa_job_errmsg(j);
    }
    CHECK_EQ_INT(sa_job_status(j), SA_OK);
    for (i = 0; i < n; i++) CHECK(strlen(ids[i]) > 0);
    CHECK_EQ_INT(p.terminal, 1);
    CHECK_EQ_INT(p.states[p.n - 1], SA_JOB_DONE);
    CHECK(has_state(&p, SA_JOB_UPLOAD));
    CHECK(has_state(&p, SA_JOB_TASK_CREATE));
    CHECK(has_state(&p, SA_JOB_POLL_WAIT));
    CHECK(has_state(&p, SA_JOB_POLLING));
    sa_job_free(j);
    sa_client_free(c);
}

TEST(upload_file_changed_or_deleted_after_submit)
{
    sa_client *c = client_for(&g_emu);
    sa_request r;
    sa_job *j;
    char path[] = "/tmp/sa_integration_XXXXXX";
    size_t len = 0;
    char *img = harness_slurp(SD_JPG, &len);
    FILE *f;
    int fd;

    REQUIRE(c != NULL && img != NULL);
    fd = mkstemp(path);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, img, len) == (ssize_t)len);
    close(fd);
    emu_reset(&g_emu);
    file_request(&r, path);
    REQUIRE(sa_client_submit(c, &r, &j) == SA_OK);
    f = fopen(path, "ab");  /* grows after validation */
    REQUIRE(f != NULL);
    fputs("trailing bytes", f);
    fclose(f);
    CHECK_EQ_INT(sa_job_wait(j, 10000), SA_OK);
    CHECK_EQ_INT(sa_job_status(j), SA_ERR_FILE);
    CHECK(strstr(sa_job_errmsg(j), "changed since it was checked") != NULL);
    sa_job_free(j);

    REQUIRE(sa_client_submit(c, &r, &j) == SA_OK);  /* validated as is */
    unlink(path);
    CHECK_EQ_INT(sa_job_wait(j, 10000), SA_OK);
    CHECK_EQ_INT(sa_job_status(j), SA_ERR_FILE);
    CHECK(strstr(sa_job_errmsg(j), "No such file") != NULL);
    CHECK_EQ_INT(emu_counter(&g_emu, "uploads"), 0);
    INVARIANTS(&g_emu, 0, 1);
    sa_job_free(j);
    free(img);
    sa_client_free(c);
}

TEST(max_jobs_caps_concurrency)
{
    sa_client_options o;
    sa_client *c;
    sa_request r;
    sa_job *jobs[6];
    progress p[6];
    int running = 0, i, done = 0, peak = 0;

    base_options(&o, &g_emu);
    o.max_jobs = 2;
    c = emu_client(&o);
    REQUIRE(c != NULL);
    emu_reset(&g_emu);
    file_request(&r, SD_JPG);
    r.callback = progress_cb;
    for (i = 0; i < 6; i++) {
        memset(&p[i], 0, sizeof p[i]);
        p[i].running = &running;
        r.user_data = &p[i];
        REQUIRE(sa_client_submit(c, &r, &jobs[i]) == SA_OK);
    }
    CHECK_EQ_INT(sa_job_state(jobs[5]), SA_JOB_QUEUED);
    CHECK_EQ_INT(sa_client_run(c, 20000), SA_OK);
    for (i = 0; i < 6; i++) {
        done += sa_job_status(jobs[i]) == SA_OK;
        if (p[i].running_max > peak) peak = p[i].running_max;
        sa_job_free(jobs[i]);
    }
    CHECK_EQ_INT(done, 6);
    CHECK(peak >= 1 && peak <= 2);
    INVARIANTS(&g_emu, 6, 1);
    sa_client_free(c);
}

/* ------------------------------------------------------------------ */
/* Documented errors                                                   */
/* ------------------------------------------------------------------ */

/* One job against an emulator started with `flags`; checks its status
 * and (when not NULL) its API error code and engine error. */
static void error_case(const char *flags, int status, const char *api_code,
                       const char *engine, long max_tasks, int line)
{
    emu e;
    sa_client *c;
    sa_request r;
    sa_job *j;

    if (emu_start(&e, flags) != 0) {
        HARNESS_FAIL("line %d: emulator did not start", line);
        return;
    }
    c = client_for(&e);
    file_request(&r, SD_JPG);
    j = c ? run_job(c, &r) : NULL;
    if (!j) {
        HARNESS_FAIL("line %d: no job", line);
    } else {
        if (sa_job_status(j) != status)
            HARNESS_FAIL("line %d: status %s (%s), expected %s", line,
                         sa_status_name(sa_job_status(j)), sa_job_errmsg(j),
                         sa_status_name(status));
        CHECK_EQ_INT(sa_job_state(j), SA_JOB_FAILED);
        CHECK(sa_job_errmsg(j)[0] != '\0');
        if (api_code) CHECK_STR(sa_job_api_error_code(j), api_code);
        if (engine) {
            CHECK_STR(sa_job_engine_error(j), engine);
            CHECK(strstr(sa_job_errmsg(j), engine) != NULL);
        }
        check_invariants(&e, max_tasks, 1, line);
    }
    sa_job_free(j);
    sa_client_free(c);
    emu_stop(&e);
}

TEST(documented_errors)
{
    /* 401 in each observed shape: the client's key is not accepted */
    error_case("--task-seconds 0 --rate-limit off --keys other-key "
               "--auth-variant docs", SA_ERR_AUTH, NULL, NULL, 0, __LINE__);
    error_case("--task-seconds 0 --rate-limit off --keys other-key "
               "--auth-variant observed", SA_ERR_AUTH, "InvalidApiKey", NULL,
               0, __LINE__);
    error_case("--task-seconds 0 --rate-limit off --keys other-key "
               "--auth-variant token", SA_ERR_AUTH, "InvalidAccessToken",
               NULL, 0, __LINE__);
    error_case(FAST " --units 5", SA_ERR_CREDITS, "CreditInsufficiency",
               NULL, 0, __LINE__);
    error_case(FAST " --engine-error error_no_face", SA_ERR_ENGINE, NULL,
               "error_no_face", 1, __LINE__);
    error_case("--task-seconds 5 --task-timeout-after 0.2 " KEYS
               " --rate-limit off", SA_ERR_TASK_TIMEOUT, NULL, NULL, 1,
               __LINE__);
}

TEST(expired_task_is_task_expired)
{
    emu e;
    sa_client_options o;
    sa_client *c;
    sa_request r;
    sa_job *j;

    REQUIRE(emu_start(&e, "--task-seconds 5 --poll-window 0.3 "
                          "--rate-limit off " KEYS) == 0);
    base_options(&o, &e);
    o.poll_interval_ms = 700;  /* slower than the server's window */
    o.max_poll_interval_ms = 700;
    c = emu_client(&o);
    REQUIRE(c != NULL);
    file_request(&r, SD_JPG);
    RUN_JOB(j, c, &r, SA_ERR_TASK_EXPIRED);
    CHECK_EQ_INT(sa_job_http_status(j), 400);
    CHECK(sa_job_task_id(j) != NULL);
    CHECK_EQ_INT(emu_counter(&e, "tasks_expired"), 1);
    sa_job_free(j);
    sa_client_free(c);
    emu_stop(&e);
}

TEST(deadline_cancel_abandon_free_with_running_tasks)
{
    emu e;
    sa_client *c;
    sa_request r;
    sa_job *d, *k, *a, *f;
    long bg0 = log_get(&g_log.background_ok), ab0 = log_get(&g_log.abandoned);
    int i;

    REQUIRE(emu_start(&e, "--task-seconds 0.8 --rate-limit off " KEYS) == 0);
    c = client_for(&e);
    REQUIRE(c != NULL);
    file_request(&r, SD_JPG);

    /* deadline: the job fails at once, its task is polled to its end */
    r.deadline_ms = 300;
    REQUIRE(sa_client_submit(c, &r, &d) == SA_OK);
    CHECK_EQ_INT(sa_job_wait(d, 5000), SA_OK);
    CHECK_EQ_INT(sa_job_status(d), SA_ERR_DEADLINE);
    CHECK(sa_job_task_id(d) != NULL);
    CHECK_EQ_INT(sa_client_active(c), 1);
    r.deadline_ms = 0;

    /* cancel / abandon / free once each task exists */
    REQUIRE(sa_client_submit(c, &r, &k) == SA_OK);
    REQUIRE(sa_client_submit(c, &r, &a) == SA_OK);
    REQUIRE(sa_client_submit(c, &r, &f) == SA_OK);
    for (i = 0; i < 400 && !(sa_job_task_id(k) && sa_job_task_id(a) &&
                             sa_job_task_id(f)); i++)
        sa_client_step(c, 10);
    REQUIRE(sa_job_task_id(k) && sa_job_task_id(a) && sa_job_task_id(f));
    CHECK_EQ_INT(sa_job_cancel(k), SA_OK);
    CHECK_EQ_INT(sa_job_state(k), SA_JOB_CANCELLED);
    CHECK(strstr(sa_job_errmsg(k), "may be billed") != NULL);
    CHECK_EQ_INT(sa_job_abandon(a), SA_OK);
    CHECK_EQ_INT(sa_job_state(a), SA_JOB_CANCELLED);
    sa_job_free(f);
    CHECK_EQ_INT(sa_client_active(c), 3);  /* d, k, f polled on */
    CHECK_EQ_INT(sa_client_run(c, 10000), SA_OK);
    CHECK_EQ_INT(sa_client_active(c), 0);
    /* the published outcomes never changed */
    CHECK_EQ_INT(sa_job_status(d), SA_ERR_DEADLINE);
    CHECK_EQ_INT(sa_job_status(k), SA_ERR_CANCELLED);
    CHECK(sa_job_result(k) == NULL);
    CHECK_EQ_INT(log_get(&g_log.background_ok) - bg0, 3);
    CHECK_EQ_INT(log_get(&g_log.abandoned) - ab0, 1);
    /* 4 tasks; only the abandoned one was never polled to its end */
    CHECK_EQ_INT(emu_counter(&e, "tasks_created"), 4);
    CHECK_EQ_INT(emu_counter(&e, "tasks_succeeded") +
                 emu_counter(&e, "tasks_running"), 4);
    sa_job_free(d);
    sa_job_free(k);
    sa_job_free(a);
    sa_client_free(c);
    emu_stop(&e);
}

TEST(client_free_abandons_running_tasks)
{
    emu e;
    sa_client *c;
    sa_request r;
    sa_job *j;
    long ab0 = log_get(&g_log.abandoned);
    int i;

    REQUIRE(emu_start(&e, "--task-seconds 5 --rate-limit off " KEYS) == 0);
    c = client_for(&e);
    REQUIRE(c != NULL);
    file_request(&r, SD_JPG);
    REQUIRE(sa_client_submit(c, &r, &j) == SA_OK);
    for (i = 0; i < 400 && !sa_job_task_id(j); i++) sa_client_step(c, 10);
    REQUIRE(sa_job_task_id(j) != NULL);
    sa_client_free(c);
    CHECK_EQ_INT(log_get(&g_log.abandoned) - ab0, 1);
    CHECK_EQ_INT(sa_job_status(j), SA_ERR_CANCELLED);
    CHECK(strstr(sa_job_errmsg(j), "may still be billed") != NULL);
    CHECK(sa_job_task_id(j) != NULL);  /* a detached shell keeps its facts */
    sa_job_free(j);
    emu_stop(&e);
}

/* sa_client_resume against the emulator: a task abandoned by one client
 * (a crash, a restart) is resumed from its id by another and yields the
 * same result, with no second task, file or upload; an unknown id is
 * task_expired; a ZIP result is downloaded as for a submitted job. */
TEST(resume_a_task_by_id)
{
    sa_client *c1, *c2;
    sa_request r;
    sa_resume_options ro;
    sa_job *j, *k;
    char task[256];
    long files, uploads;
    int i;

    c1 = client_for(&g_emu);
    c2 = client_for(&g_emu);
    REQUIRE(c1 != NULL && c2 != NULL);
    emu_reset(&g_emu);
    file_request(&r, SD_JPG);
    REQUIRE(sa_client_submit(c1, &r, &j) == SA_OK);
    for (i = 0; i < 400 && !sa_job_task_id(j); i++) sa_client_step(c1, 10);
    REQUIRE(sa_job_task_id(j) != NULL);
    snprintf(task, sizeof task, "%s", sa_job_task_id(j));
    sa_job_abandon(j);                 /* the first client "dies" */
    sa_job_free(j);
    sa_client_free(c1);
    files = emu_counter(&g_emu, "files_created");
    uploads = emu_counter2(&g_emu, "requests", "upload");

    sa_resume_options_init(&ro);
    ro.api_version = SA_API_V2_0;      /* task ids work on both versions */
    REQUIRE(sa_client_resume(c2, task, &ro, &k) == SA_OK);
    CHECK_STR(sa_job_task_id(k), task);
    CHECK_EQ_INT(sa_job_wait(k, 20000), SA_OK);
    CHECK_EQ_INT(sa_job_status(k), SA_OK);
    check_json_result(k, "wrinkle", NULL);
    CHECK_STR(sa_result_task_id(sa_job_result(k)), task);
    CHECK(sa_job_polls(k) >= 1);
    CHECK_EQ_INT(emu_counter(&g_emu, "tasks_created"), 1);
    CHECK_EQ_INT(emu_counter(&g_emu, "files_created"), files);
    CHECK_EQ_INT(emu_counter2(&g_emu, "requests", "upload"), uploads);
    CHECK_EQ_INT(emu_counter2(&g_emu, "requests", "task_create"), 1);
    INVARIANTS(&g_emu, 1, 1);
    sa_job_free(k);

    /* resumed again once it ended: the same result (still retained) */
    REQUIRE(sa_client_resume(c2, task, NULL, &k) == SA_OK);
    CHECK_EQ_INT(sa_job_wait(k, 20000), SA_OK);
    CHECK_EQ_INT(sa_job_status(k), SA_OK);
    CHECK_EQ_INT(emu_counter(&g_emu, "tasks_created"), 1);
    sa_job_free(k);

    /* an id the server does not know */
    REQUIRE(sa_client_resume(c2, "no-such-task", NULL, &k) == SA_OK);
    CHECK_EQ_INT(sa_job_wait(k, 20000), SA_OK);
    CHECK_EQ_INT(sa_job_status(k), SA_ERR_TASK_EXPIRED);
    CHECK(strstr(sa_job_errmsg(k), "no-such-task") != NULL);
    sa_job_free(k);

    /* a ZIP result: downloaded and parsed before DONE */
    emu_reset(&g_emu);
    file_request(&r, SD_JPG);
    r.format = SA_FORMAT_ZIP;
    j = run_job(c2, &r);
    REQUIRE(j != NULL && sa_job_status(j) == SA_OK);
    snprintf(task, sizeof task, "%s", sa_job_task_id(j));
    sa_job_free(j);
    REQUIRE(sa_client_resume(c2, task, NULL, &k) == SA_OK);
    CHECK_EQ_INT(sa_job_wait(k, 20000), SA_OK);
    CHECK_EQ_INT(sa_job_status(k), SA_OK);
    CHECK_EQ_INT(sa_result_format(sa_job_result(k)), SA_FORMAT_ZIP);
    CHECK(sa_result_count(sa_job_result(k)) > 0);
    CHECK(sa_result_file_count(sa_job_result(k)) > 0);
    CHECK_EQ_INT(emu_counter(&g_emu, "tasks_created"), 1);
    sa_job_free(k);
    sa_client_free(c2);
}

/* A storm of failed polls far past the retry budget, then the task ends:
 * DONE, one task (issue 12). */
TEST(poll_storm_past_the_budget_is_done)
{
    sa_client *c = client_for_reset();
    sa_request r;
    sa_job *j;

    REQUIRE(c != NULL);
    /* "after": the server sees each poll (the task stays polled), its
     * answer is lost to a 503 */
    REQUIRE(emu_scenario(&g_emu, "[{\"endpoint\":\"task_status\","
                         "\"times\":25,\"fault\":\"http_503\","
                         "\"apply\":\"after\"}]") == 0);
    file_request(&r, SD_JPG);
    RUN_JOB(j, c, &r, SA_OK);
    CHECK(sa_job_polls(j) >= 26);
    CHECK_EQ_INT(emu_counter(&g_emu, "tasks_created"), 1);
    CHECK(emu_counter2(&g_emu, "faults_applied", "http_503") >= 25);
    INVARIANTS(&g_emu, 1, 1);
    sa_job_free(j);
    emu_scenario(&g_emu, NULL);
    sa_client_free(c);
}

/* ------------------------------------------------------------------ */
/* Fault matrix                                                        */
/* ------------------------------------------------------------------ */

typedef struct fault_case {
    const char *scenario;
    int status;              /* expected job status */
    long tasks;              /* tasks the emulator must have created */
    const char *retried;     /* endpoint that must have seen >= 2 requests */
} fault_case;

#define F(ep, fault) "[{\"endpoint\":\"" ep "\",\"nth\":[1],\"fault\":\"" fault "\"}]"
#define FA(ep, fault) "[{\"endpoint\":\"" ep "\",\"nth\":[1],\"fault\":\"" \
    fault "\",\"apply\":\"after\"}]"
#define FX(ep, fault, extra) "[{\"endpoint\":\"" ep "\",\"nth\":[1]," \
    "\"fault\":\"" fault "\"," extra "}]"
#define DELAY "\"delay_ms\":1600"
#define BIG "\"size_bytes\":2097152"

static const fault_case fault_matrix[] = {
    /* file create: safe to retry on transport errors, 429, 5xx */
    {F("file_create", "http_500_html"), SA_OK, 1, "file_create"},
    {F("file_create", "http_502_html"), SA_OK, 1, "file_create"},
    {F("file_create", "http_503"), SA_OK, 1, "file_create"},
    {F("file_create", "http_429"), SA_OK, 1, "file_create"},
    {F("file_create", "close_before_response"), SA_OK, 1, "file_create"},
    {F("file_create", "close_mid_response"), SA_OK, 1, "file_create"},
    {FX("file_create", "delay", DELAY), SA_OK, 1, "file_create"},
    /* ... and on an unreadable 200 (no units involved) */
    {F("file_create", "malformed_json"), SA_OK, 1, "file_create"},
    {F("file_create", "truncated_json"), SA_OK, 1, "file_create"},
    {FX("file_create", "oversized_body", BIG), SA_ERR_LIMIT, 0, NULL},
    {"[{\"endpoint\":\"file_create\",\"fault\":\"http_503\"}]",
     SA_ERR_SERVER, 0, "file_create"},
    {"[{\"endpoint\":\"file_create\",\"fault\":\"http_429\"}]",
     SA_ERR_RATE_LIMITED, 0, "file_create"},
    /* upload */
    {F("upload", "http_500_html"), SA_OK, 1, "upload"},
    {F("upload", "http_503"), SA_OK, 1, "upload"},
    {F("upload", "http_429"), SA_OK, 1, "upload"},
    {F("upload", "close_before_response"), SA_OK, 1, "upload"},
    /* an upload answer has no body: half of it is all of it */
    {F("upload", "close_mid_response"), SA_OK, 1, NULL},
    {FX("upload", "delay", DELAY), SA_OK, 1, "upload"},
    {FX("upload", "oversized_body", BIG), SA_ERR_LIMIT, 0, NULL},
    /* task create: billed, never retried once it may have been sent */
    {F("task_create", "http_429"), SA_OK, 1, "task_create"},
    {F("task_create", "close_before_response"), SA_ERR_AMBIGUOUS, 0, NULL},
    {FA("task_create", "close_before_response"), SA_ERR_AMBIGUOUS, 1, NULL},
    {F("task_create", "close_mid_response"), SA_ERR_AMBIGUOUS, 1, NULL},
    {F("task_create", "http_500_html"), SA_ERR_AMBIGUOUS, 0, NULL},
    {FA("task_create", "http_502_html"), SA_ERR_AMBIGUOUS, 1, NULL},
    {FX("task_create", "delay", DELAY), SA_ERR_AMBIGUOUS, 1, NULL},
    {F("task_create", "malformed_json"), SA_ERR_AMBIGUOUS, 0, NULL},
    {F("task_create", "truncated_json"), SA_ERR_AMBIGUOUS, 1, NULL},
    {FX("task_create", "oversized_body", BIG), SA_ERR_AMBIGUOUS, 0, NULL},
    /* status polls: safe; specific task errors end the job */
    {F("task_status", "http_500_html"), SA_OK, 1, "task_status"},
    {F("task_status", "http_502_html"), SA_OK, 1, "task_status"},
    {F("task_status", "http_503"), SA_OK, 1, "task_status"},
    {F("task_status", "http_429"), SA_OK, 1, "task_status"},
    {F("task_status", "close_before_response"), SA_OK, 1, "task_status"},
    {F("task_status", "close_mid_response"), SA_OK, 1, "task_status"},
    {FX("task_status", "delay", DELAY), SA_OK, 1, "task_status"},
    {F("task_status", "malformed_json"), SA_OK, 1, "task_status"},
    {F("task_status", "truncated_json"), SA_OK, 1, "task_status"},
    /* an answer over max_body_bytes is a failed poll: polled again ... */
    {"[{\"endpoint\":\"task_status\",\"times\":1,"
     "\"fault\":\"oversized_body\"," BIG "}]", SA_OK, 1, "task_status"},
    /* ... past the retry budget (max_retries 4): a task that exists is
     * polled until a final answer, whatever the polls meet */
    {"[{\"endpoint\":\"task_status\",\"times\":7,"
     "\"fault\":\"oversized_body\"," BIG "}]", SA_OK, 1, "task_status"},
    {"[{\"endpoint\":\"task_status\",\"times\":7,\"fault\":\"http_503\"}]",
     SA_OK, 1, "task_status"},
    {F("task_status", "invalid_task_id"), SA_ERR_TASK_EXPIRED, 1, NULL},
    {F("task_status", "task_timeout_500"), SA_ERR_TASK_TIMEOUT, 1, NULL},
    {FX("task_status", "engine_error", "\"code\":\"error_pose\""),
     SA_ERR_ENGINE, 1, NULL},
};

TEST(fault_matrix_each_fault_on_each_step)
{
    sa_client_options o;
    sa_client *c;
    size_t i;

    base_options(&o, &g_emu);
    o.request_timeout_ms = 1000;
    o.upload_timeout_ms = 1000;
    o.max_body_bytes = 1 << 20;
    /* the faults on the first poll need it to meet a running task: a
     * learned planner would first poll after the task ended */
    o.poll_strategy = SA_POLL_FIXED;
    c = emu_client(&o);
    REQUIRE(c != NULL);
    for (i = 0; i < sizeof fault_matrix / sizeof fault_matrix[0]; i++) {
        const fault_case *fc = &fault_matrix[i];
        sa_request r;
        sa_job *j;
        char why[256];
        int ambiguous = fc->status == SA_ERR_AMBIGUOUS;
        /* a task the client stopped polling (it was told the task is
         * gone, or could not read about it) still runs on the server */
        int idle = fc->status == SA_OK || fc->status == SA_ERR_ENGINE ||
                   fc->tasks == 0;

        emu_reset(&g_emu);
        REQUIRE(emu_scenario(&g_emu, fc->scenario) == 0);
        file_request(&r, SD_JPG);
        j = run_job(c, &r);
        if (!j || sa_job_status(j) != fc->status)
            HARNESS_FAIL("%s: status %s (%s), expected %s", fc->scenario,
                         j ? sa_status_name(sa_job_status(j)) : "none",
                         j ? sa_job_errmsg(j) : "",
                         sa_status_name(fc->status));
        if (emu_counter(&g_emu, "tasks_created") != fc->tasks)
            HARNESS_FAIL("%s: %ld tasks created, expected %ld", fc->scenario,
                         emu_counter(&g_emu, "tasks_created"), fc->tasks);
        if (fc->retried && emu_counter2(&g_emu, "requests", fc->retried) < 2)
            HARNESS_FAIL("%s: %s was not retried", fc->scenario, fc->retried);
        if (emu_check_invariants(&g_emu, fc->tasks, 1.6, idle, why,
                                 sizeof why) != 0)
            HARNESS_FAIL("%s: %s", fc->scenario, why);
        if (j && ambiguous)
            CHECK(strstr(sa_job_errmsg(j), "may have been created") != NULL);
        sa_job_free(j);
    }
    emu_scenario(&g_emu, NULL);
    sa_client_free(c);
}

/* ------------------------------------------------------------------ */
/* Scale, limiter, threads                                             */
/* ------------------------------------------------------------------ */

TEST(fifty_jobs_share_connections)
{
    emu e;
    sa_client *c;
    sa_request r;
    sa_job *jobs[50];
    long transfers = 0, connects = 0;
    int i, done = 0;
    int64_t t0;

    REQUIRE(emu_start(&e, "--task-seconds 0 --rate-limit off " KEYS) == 0);
    c = client_for(&e);
    REQUIRE(c != NULL);
    file_request(&r, SD_JPG);
    t0 = harness_now_ms();
    for (i = 0; i < 50; i++) REQUIRE(sa_client_submit(c, &r, &jobs[i]) == SA_OK);
    CHECK_EQ_INT(sa_client_run(c, 30000), SA_OK);
    for (i = 0; i < 50; i++) {
        done += sa_job_status(jobs[i]) == SA_OK;
        sa_job_free(jobs[i]);
    }
    CHECK_EQ_INT(done, 50);
    sa__client_stats(c, &transfers, &connects);
    fprintf(stderr, "  50 jobs: %lld ms, %ld transfers, %ld new connections\n",
            (long long)(harness_now_ms() - t0), transfers, connects);
    CHECK(transfers >= 200);
    /* one fresh connection per task create (never retried silently),
     * the other 150 transfers mostly on reused connections */
    CHECK(connects >= 50);
    CHECK(connects <= 50 + 3 * 16);
    CHECK_EQ_INT(emu_counter(&e, "tasks_created"), 50);
    INVARIANTS(&e, 50, 1);
    sa_client_free(c);
    emu_stop(&e);
}

/* Submit n analyses on c, run them to the end, free them; returns how
 * many succeeded and sets *ms to the time sa_client_run took. */
static int run_batch(sa_client *c, int n, int64_t *ms)
{
    sa_request r;
    sa_job *jobs[16];
    int i, ok = 0;
    int64_t t0 = harness_now_ms();

    file_request(&r, SD_JPG);
    for (i = 0; i < n && i < 16; i++)
        if (sa_client_submit(c, &r, &jobs[i]) != SA_OK) jobs[i] = NULL;
    CHECK_EQ_INT(sa_client_run(c, 30000), SA_OK);
    *ms = harness_now_ms() - t0;
    for (i = 0; i < n && i < 16; i++) {
        ok += jobs[i] && sa_job_status(jobs[i]) == SA_OK;
        sa_job_free(jobs[i]);
    }
    return ok;
}

/* Every upload answered 300 ms late: with max_uploads = 2 the 10 uploads
 * go two at a time (>= 1.5 s in all), without a cap all at once. */
TEST(max_uploads_caps_simultaneous_uploads)
{
    emu e;
    sa_client_options o;
    sa_client *c;
    int peak = -1;
    int64_t ms = 0;

    REQUIRE(emu_start(&e, "--task-seconds 0 --rate-limit off " KEYS) == 0);
    REQUIRE(emu_scenario(&e, "{\"faults\": [{\"endpoint\": \"upload\", "
                         "\"fault\": \"delay\", \"delay_ms\": 300}]}") == 0);
    base_options(&o, &e);
    o.max_uploads = 2;
    c = emu_client(&o);
    REQUIRE(c != NULL);
    CHECK_EQ_INT(run_batch(c, 10, &ms), 10);
    sa__client_peaks(c, &peak, NULL);
    fprintf(stderr, "  max_uploads 2: 10 analyses in %lld ms\n", (long long)ms);
    CHECK_EQ_INT(peak, 2);
    CHECK(ms >= 5 * 300);
    CHECK_EQ_INT(emu_counter(&e, "uploads"), 10);
    sa_client_free(c);

    o.max_uploads = 0;
    c = emu_client(&o);
    REQUIRE(c != NULL);
    CHECK_EQ_INT(run_batch(c, 10, &ms), 10);
    sa__client_peaks(c, &peak, NULL);
    CHECK(peak > 2);
    sa_client_free(c);
    emu_stop(&e);
}

/* Non-blocking steps handle at most 16 (SA__STEP_BATCH) finished transfers
 * each (budget_us 0: the count bound alone), or, with a time budget that
 * is always used up, one.  Every file create is answered 2 s late, so the
 * 40 answers are all waiting when the non-blocking steps start (blocking
 * steps send the requests first, until the emulator has them all: a
 * non-blocking step hands libcurl only 4 new transfers); they take several
 * steps, and every job still ends. */
static void bounded_steps(long budget_us, int want_peak)
{
    emu e;
    sa_client_options o;
    sa_client *c;
    sa_request r;
    sa_job *jobs[40];
    int i, ok = 0, peak = -1, zero_timeout = 0;
    long guard;
    int64_t t0;

    REQUIRE(emu_start(&e, "--task-seconds 0 --rate-limit off " KEYS) == 0);
    REQUIRE(emu_scenario(&e, "[{\"endpoint\":\"file_create\",\"every\":1,"
                             "\"fault\":\"delay\",\"delay_ms\":2000}]") == 0);
    base_options(&o, &e);
    o.max_connections = 40;  /* all 40 requests out at once */
    o.step_budget_us = budget_us;
    c = emu_client(&o);
    REQUIRE(c != NULL);
    file_request(&r, SD_JPG);
    for (i = 0; i < 40; i++) REQUIRE(sa_client_submit(c, &r, &jobs[i]) == SA_OK);
    /* until the emulator has all 40 requests (their answers wait 2 s) */
    t0 = harness_now_ms();
    while (emu_counter2(&e, "requests", "file_create") < 40 &&
           harness_now_ms() - t0 < 20000)
        (void)sa_client_step(c, 20);
    CHECK_EQ_INT(emu_counter2(&e, "requests", "file_create"), 40);
    CHECK_EQ_INT(sa_client_active(c), 40);  /* no answer yet */
    t0 = harness_now_ms();
    while (harness_now_ms() - t0 < 2300) usleep(50000);
    for (guard = 0; guard < 20000 && sa_client_active(c) > 0; guard++) {
        int n = sa_client_step(c, 0);
        CHECK(n >= 0);
        if (n > 0 && sa_client_timeout_ms(c) == 0) zero_timeout++;
        usleep(2000);
    }
    CHECK_EQ_INT(sa_client_active(c), 0);
    for (i = 0; i < 40; i++) {
        ok += sa_job_status(jobs[i]) == SA_OK;
        if (sa_job_status(jobs[i]) != SA_OK)
            fprintf(stderr, "  job %d: %s\n", i, sa_job_errmsg(jobs[i]));
        sa_job_free(jobs[i]);
    }
    CHECK_EQ_INT(ok, 40);
    sa__client_peaks(c, NULL, &peak);
    CHECK_EQ_INT(peak, want_peak);
    CHECK(zero_timeout > 0);
    CHECK_EQ_INT(emu_counter(&e, "tasks_created"), 40);
    sa_client_free(c);
    emu_stop(&e);
}

TEST(nonblocking_step_bounds_completions)
{
    bounded_steps(0, 16);
}

TEST(nonblocking_step_time_budget)
{
    bounded_steps(1, 1);  /* 1 us: over after the first of each kind */
}

/* A load test that runs in its own thread, on an emulator of its own,
 * while the other tests run: `jobs` analyses, all to succeed with at most
 * max_429[under valgrind] answers 429 (the emulator's count); with
 * check_rate_limited, every 429 counted by the emulator's rate limiter;
 * gaps_ok, or why not. */
typedef struct load_run {
    emu e;
    int started;
    const char *what;
    int jobs;
    long max_429[2];
    int check_rate_limited;
    int done;
    long responses_429;
    long rate_limited;
    int gaps_ok;
    char why[256];
    long ms;
} load_run;

/* Runs in its own thread (it takes ~20 s at 5 requests/s) while the other
 * tests run: 30 analyses against the emulator's default rate limits with
 * the client's default limiter. */

/* Submit n (at most 30) jobs of the SD portrait on a client made with o,
 * run it for up to run_ms and count the ones that succeeded: -1 if there
 * was no client. */
static int run_sd_jobs(const sa_client_options *o, int n, long run_ms)
{
    sa_client *c = emu_client(o);
    sa_request r;
    sa_job *jobs[30];
    int i, sent = 0, done = 0;

    if (!c) return -1;
    file_request(&r, SD_JPG);
    for (i = 0; i < n && i < 30; i++)
        if (sa_client_submit(c, &r, &jobs[sent]) == SA_OK) sent++;
    (void)sa_client_run(c, run_ms);
    for (i = 0; i < sent; i++) {
        done += sa_job_status(jobs[i]) == SA_OK;
        sa_job_free(jobs[i]);
    }
    sa_client_free(c);
    return done;
}

static void *limiter_thread(void *ud)
{
    load_run *lr = ud;
    sa_client_options o;
    int64_t t0 = harness_now_ms();

    base_options(&o, &lr->e);
    o.rate_limit = 1;  /* defaults: 5/s, burst 5, 250 per 300 s */
    o.poll_interval_ms = 300;
    lr->done = run_sd_jobs(&o, lr->jobs, 60000);
    if (lr->done < 0) return NULL;
    lr->responses_429 = emu_counter(&lr->e, "responses_429");
    lr->rate_limited = emu_counter(&lr->e, "rate_limited");
    lr->ms = (long)(harness_now_ms() - t0);
    return NULL;
}

/* Also in its own thread (~30 s): a tight long window (40 requests per
 * 20 s) and 20 jobs whose tasks run 1.5 s.  The window, not the 5/s,
 * decides; polls go before creates and new jobs wait for the admission cap,
 * so every task is polled in time (max_poll_interval_ms 4 s: admission cap
 * floor(0.8 * 40 * 4 / 20) = 6) and nothing gets a 429. */
/* The subject is the 40-per-20 s window and the polls' gaps; the
 * emulator's per-second window is shortened to 0.75 s (the client keeps
 * 5 per 1.02 s) because on a loaded machine the emulator, stamping each
 * request when it gets to handle it, sees sends it handled late bunched
 * together: 1 x 429 at nice 19 beside a full CI run.  The per-second
 * window is checked exactly on fake time (test_limiter.c) and end to end
 * by the limiter thread. */
#define TIGHT_EMU "--task-seconds 1.5 --rate-window-max 40 " \
                  "--rate-window-seconds 20 --rate-qps-seconds 0.75 " KEYS

static void *tight_thread(void *ud)
{
    load_run *tr = ud;
    sa_client_options o;
    int64_t t0 = harness_now_ms();

    base_options(&o, &tr->e);
    o.rate_limit = 1;                   /* 5 per second, the default */
    o.rate_window_max = 40;
    o.rate_window_ms = 20000;
    o.max_poll_interval_ms = 4000;
    o.poll_interval_ms = 1000;
    tr->done = run_sd_jobs(&o, tr->jobs, 120000);
    if (tr->done < 0) return NULL;
    tr->responses_429 = emu_counter(&tr->e, "responses_429");
    /* max_poll_interval is 4 s.  The learned planner (the default) places
     * a poll up to 20 % short of it when the window binds, as here; under
     * valgrind a poll can lag its place by more than that margin (the
     * whole client runs 20-50 times slower and the emulator measures
     * arrivals), so there the bound gets one second more. */
    tr->gaps_ok = emu_check_invariants(&tr->e, 20,
                                       under_valgrind() ? 5.0 : 4.0, 1,
                                       tr->why, sizeof tr->why) == 0;
    tr->ms = (long)(harness_now_ms() - t0);
    return NULL;
}

typedef struct thread_run {
    int done;
    int submitted;
} thread_run;

static void *client_thread(void *ud)
{
    thread_run *tr = ud;
    sa_client *c = client_for(&g_emu);
    sa_request r;
    sa_job *jobs[4];
    int i;

    if (!c) return NULL;
    file_request(&r, SD_JPG);
    for (i = 0; i < 4; i++)
        if (sa_client_submit(c, &r, &jobs[tr->submitted]) == SA_OK)
            tr->submitted++;
    for (i = 0; i < tr->submitted; i++) {
        if (sa_job_wait(jobs[i], 20000) == SA_OK &&
            sa_job_status(jobs[i]) == SA_OK)
            tr->done++;
        sa_job_free(jobs[i]);
    }
    sa_client_free(c);
    return NULL;
}

TEST(four_clients_in_four_threads)
{
    pthread_t th[4];
    thread_run tr[4];
    int i;

    emu_reset(&g_emu);
    memset(tr, 0, sizeof tr);
    for (i = 0; i < 4; i++)
        REQUIRE(pthread_create(&th[i], NULL, client_thread, &tr[i]) == 0);
    for (i = 0; i < 4; i++) pthread_join(th[i], NULL);
    for (i = 0; i < 4; i++) {
        CHECK_EQ_INT(tr[i].submitted, 4);
        CHECK_EQ_INT(tr[i].done, 4);
    }
    INVARIANTS(&g_emu, 16, 1);
}

/* ------------------------------------------------------------------ */
/* A server that echoes the key                                        */
/* ------------------------------------------------------------------ */

/* A piece from the middle of SECRET: not even part of the key shows. */
#define SECRET_PIECE "Zq81xLmT"

static int has_key(const char *s)
{
    return s && (strstr(s, SECRET) || strstr(s, SECRET_PIECE));
}

/* Every string a job (and its result) hands out is free of the key. */
static void check_job_clean(const sa_job *j, int line)
{
    const sa_result *r = sa_job_result(j);
    const char *fields[6];
    size_t i, k;

    fields[0] = sa_job_errmsg(j);
    fields[1] = sa_job_api_error_code(j);
    fields[2] = sa_job_engine_error(j);
    fields[3] = sa_job_request_id(j);
    fields[4] = sa_job_task_id(j);
    fields[5] = sa_job_file_id(j);
    for (i = 0; i < 6; i++)
        if (has_key(fields[i]))
            HARNESS_FAIL("line %d: field %zu shows the key: %s", line, i,
                         fields[i]);
    if (!r) return;
    if (has_key(sa_result_json(r)) || has_key(sa_result_resize_image_url(r))
        || has_key(sa_result_task_id(r)) || has_key(sa_result_zip_url(r)))
        HARNESS_FAIL("line %d: the result shows the key", line);
    for (i = 0; i < sa_result_count(r); i++) {
        const sa_score *s = sa_result_score(r, i);
        if (has_key(s->concern) || has_key(s->region) || has_key(s->skin_type)
            || has_key(s->mask_name))
            HARNESS_FAIL("line %d: score %zu shows the key", line, i);
        for (k = 0; k < s->n_mask_urls; k++)
            if (has_key(s->mask_urls[k]))
                HARNESS_FAIL("line %d: a mask URL shows the key", line);
    }
}

/* The outcome of one analysis against the scenario `json`, with a job
 * deadline of deadline_ms (0: the suite's). */
static void echo_case_ms(const emu *e, const char *json, int want_status,
                         int want_marker, long deadline_ms, int line)
{
    sa_client_options o;
    sa_client *c;
    sa_request r;
    sa_job *j;

    if (emu_scenario(e, json) != 0) {
        HARNESS_FAIL("line %d: scenario refused: %s", line, json);
        return;
    }
    base_options(&o, e);
    o.max_retries = 1;
    if (deadline_ms > 0) o.job_deadline_ms = deadline_ms;
    c = emu_client(&o);
    if (!c) {
        HARNESS_FAIL("line %d: no client", line);
        return;
    }
    file_request(&r, SD_JPG);
    j = run_job(c, &r);
    if (j) {
        if (sa_job_status(j) != want_status)
            HARNESS_FAIL("line %d: status %s, expected %s (%s)", line,
                         sa_status_name(sa_job_status(j)),
                         sa_status_name(want_status), sa_job_errmsg(j));
        check_job_clean(j, line);
        if (want_marker && !strstr(sa_job_errmsg(j), "[REDACTED]"))
            HARNESS_FAIL("line %d: the echo is not in the message: %s", line,
                         sa_job_errmsg(j));
    } else {
        HARNESS_FAIL("line %d: no job", line);
    }
    if (has_key(sa_client_errmsg(c)))
        HARNESS_FAIL("line %d: the client message shows the key", line);
    sa_job_free(j);
    sa_client_free(c);
}

#define echo_case(e, json, status, marker, line) \
    echo_case_ms((e), (json), (status), (marker), 0, (line))
#define ECHO_CASE(e, json, status) \
    echo_case((e), (json), (status), (status) != SA_OK, __LINE__)

/* A 401 body, a 500 poll body, an engine error code and message, an S3
 * 403 XML body, an x-request-id and the result's strings, each echoing
 * the key (whole, as "Bearer <key>", and cut where the client bounds a
 * server text: 512 bytes of a message, 127 of an x-request-id): no string
 * the client hands out shows it, nor does a log line.  A task that exists
 * is polled through 500s until its deadline, whose message says what the
 * last poll met (scrubbed). */
TEST(key_echoed_by_the_server_never_surfaces)
{
    char pad[601], rid[116], json[4096];
    emu e;

    memset(pad, 'x', sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    memset(rid, 'r', sizeof rid - 1);
    rid[sizeof rid - 1] = '\0';
    REQUIRE(emu_start(&e, FAST) == 0);

    snprintf(json, sizeof json, "[{\"endpoint\":\"file_create\",\"fault\":"
             "\"respond\",\"status\":401,\"body\":{\"status\":401,\"error\":"
             "\"Invalid API key Bearer %s\",\"error_code\":\"%s\"},"
             "\"headers\":{\"x-request-id\":\"%s%s\"}}]", SECRET, SECRET, rid,
             SECRET);
    ECHO_CASE(&e, json, SA_ERR_AUTH);
    /* the job message (511 bytes) cuts the key 5 bytes in */
    snprintf(json, sizeof json, "[{\"endpoint\":\"file_create\",\"fault\":"
             "\"respond\",\"status\":401,\"body\":{\"status\":401,\"error\":"
             "\"%.*s %s\"}}]", 482, pad, SECRET);
    ECHO_CASE(&e, json, SA_ERR_AUTH);
    /* over the 512-byte bound of a server text: cut before the key */
    snprintf(json, sizeof json, "[{\"endpoint\":\"file_create\",\"fault\":"
             "\"respond\",\"status\":401,\"body\":{\"status\":401,\"error\":"
             "\"%.*s %s\"}}]", 500, pad, SECRET);
    echo_case(&e, json, SA_ERR_AUTH, 0, __LINE__);
    snprintf(json, sizeof json, "[{\"endpoint\":\"task_status\",\"fault\":"
             "\"respond\",\"status\":500,\"body\":{\"status\":500,\"error\":"
             "\"upstream said Bearer %s\",\"error_code\":\"E-%s\"},"
             "\"headers\":{\"x-request-id\":\"%s\"}}]", SECRET, SECRET,
             SECRET);
    echo_case_ms(&e, json, SA_ERR_DEADLINE, 1, 3000, __LINE__);
    snprintf(json, sizeof json, "[{\"endpoint\":\"task_create\",\"fault\":"
             "\"engine_error\",\"code\":\"%s\",\"message\":\"Bearer %s "
             "%s\"}]", SECRET, SECRET, pad);
    ECHO_CASE(&e, json, SA_ERR_ENGINE);
    snprintf(json, sizeof json, "[{\"endpoint\":\"upload\",\"fault\":"
             "\"respond\",\"status\":403,\"content_type\":\"application/xml\","
             "\"body\":\"<?xml version=\\\"1.0\\\"?><Error><Code>%s</Code>"
             "<Message>Bearer %s</Message></Error>\"}]", SECRET, SECRET);
    ECHO_CASE(&e, json, SA_ERR_UPLOAD);
    snprintf(json, sizeof json, "[{\"endpoint\":\"task_status\",\"fault\":"
             "\"patch\",\"set\":{\"data.task_status\":\"success\","
             "\"data.results\":{\"output\":[{\"type\":\"wrinkle %s\","
             "\"region\":\"Bearer %s\",\"ui_score\":50,\"mask_urls\":"
             "[\"https://r.example/%s.png\"]},{\"type\":\"resize_image\","
             "\"mask_urls\":[\"https://r.example/x.jpg?k=%s\"]}]}},"
             "\"headers\":{\"x-request-id\":\"%s\"}}]", SECRET, SECRET, SECRET,
             SECRET, SECRET);
    ECHO_CASE(&e, json, SA_OK);
    emu_scenario(&e, NULL);
    emu_stop(&e);
}

TEST(key_never_in_logs_or_messages)
{
    /* every client of this suite logged at DEBUG into g_log, through
     * failures of every kind */
    CHECK(log_get(&g_log.lines) > 500);
    CHECK_EQ_INT(log_get(&g_log.with_key), 0);
}

/* The checks of a load_run (main starts the threads first and joins them
 * last). */
static void check_load_run(const load_run *lr)
{
    fprintf(stderr, "  %s: %d analyses in %ld ms, %ld x 429\n", lr->what,
            lr->jobs, lr->ms, lr->responses_429);
    CHECK_EQ_INT(lr->done, lr->jobs);
    CHECK(lr->responses_429 <= lr->max_429[under_valgrind()]);
    if (lr->check_rate_limited)
        CHECK_EQ_INT(lr->rate_limited, lr->responses_429);
    if (!lr->gaps_ok) HARNESS_FAIL("%s", lr->why);
}

/* RUN for the load_run lr, whose thread is th: failed if the thread did
 * not start, else joined and checked. */
#define RUN_THREAD(name, lr, th)                                         \
    do {                                                                 \
        harness_cur_name = #name;                                        \
        harness_cur_failed = !(lr).started;                              \
        if ((lr).started) {                                              \
            pthread_join((th), NULL);                                    \
            check_load_run(&(lr));                                       \
        }                                                                \
        HARNESS_TALLY();                                                 \
    } while (0)

int main(void)
{
    pthread_t lt, tt;
    load_run lr = { .what = "limiter", .jobs = 30, .max_429 = { 0, 2 },
                    .check_rate_limited = 1, .gaps_ok = 1 };
    /* under valgrind the tight thread shares one CPU with every other
     * test thread: each window edge may cost a 429 (retried) */
    load_run tr = { .what = "tight window", .jobs = 20,
                    .max_429 = { 0, 10 } };

    if (sa_global_init() != SA_OK) return 1;
    if (emu_start(&tr.e, TIGHT_EMU) == 0 &&
        pthread_create(&tt, NULL, tight_thread, &tr) == 0)
        tr.started = 1;
    if (emu_start(&lr.e, "--task-seconds 0.2 " KEYS) == 0 &&
        pthread_create(&lt, NULL, limiter_thread, &lr) == 0)
        lr.started = 1;
    if (emu_start(&g_emu, FAST) != 0) return 1;

    RUN(file_path_sd_json_v21);
    RUN(buffer_hd_json_v20);
    RUN(large_answers_on_reused_connections);
    RUN(png_zip_with_options_v21);
    RUN(image_url_source);
    RUN(file_id_source_reuses_an_upload);
    RUN(quirks_are_survived);
    RUN(progress_callbacks_and_stable_strings);
    RUN(upload_file_changed_or_deleted_after_submit);
    RUN(max_jobs_caps_concurrency);
    RUN(documented_errors);
    RUN(expired_task_is_task_expired);
    RUN(deadline_cancel_abandon_free_with_running_tasks);
    RUN(client_free_abandons_running_tasks);
    RUN(resume_a_task_by_id);
    RUN(poll_storm_past_the_budget_is_done);
    RUN(fault_matrix_each_fault_on_each_step);
    RUN(fifty_jobs_share_connections);
    RUN(max_uploads_caps_simultaneous_uploads);
    RUN(nonblocking_step_bounds_completions);
    RUN(nonblocking_step_time_budget);
    RUN(four_clients_in_four_threads);

    RUN_THREAD(rate_limiter_30_analyses_no_429, lr, lt);
    emu_stop(&lr.e);
    RUN_THREAD(tight_window_polls_never_starve, tr, tt);
    emu_stop(&tr.e);

    RUN(key_echoed_by_the_server_never_surfaces);
    RUN(key_never_in_logs_or_messages);
    emu_stop(&g_emu);
    sa_global_cleanup();
    return harness_report();
}
