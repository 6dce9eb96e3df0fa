/*
 * test_fetch.c - result downloads against the local emulator: ZIP results
 * end to end, sa_client_fetch_masks into a folder (JSON and ZIP results),
 * expired result URLs refreshed by a status poll, result-host faults
 * retried, freeing a fetch job, and sa_client_notify moving a poll.  The
 * emulator's log shows no Authorization header on /_results.
 */
#include "harness.h"
#include "sa_internal.h"
#include "support_emulator.h"
#include "support_fakeserver.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define KEYS "--keys emulator-key"
#define FAST "--task-seconds 0.1 --rate-limit off " KEYS
#define SD_JPG SA_FIXTURES "/portrait_sd.jpg"

static const char *const sd3[] = {"wrinkle", "pore", "skin_type"};

static sa_client *client_for(const emu *e, long poll_ms)
{
    sa_client_options o;

    emu_options(e, &o, EMU_KEY, poll_ms, 5000);
    return emu_client(&o);
}

/* A request for the SD fixture and its three concerns, in `format`. */
static void sd3_request(sa_request *r, int format)
{
    sa_request_init(r);
    r->file_path = SD_JPG;
    r->actions = sd3;
    r->n_actions = 3;
    r->format = format;
}

static sa_job *run_job(sa_client *c, int format)
{
    sa_request r;
    sa_job *j = NULL;

    sd3_request(&r, format);
    if (sa_client_submit(c, &r, &j) != SA_OK) return NULL;
    if (sa_job_wait(j, 20000) != SA_OK)
        fprintf(stderr, "job did not end\n");
    return j;
}

static void check_no_key_on_results(const emu *e, int line)
{
    char why[256];
    if (emu_check_invariants(e, 100, 30.0, 0, why, sizeof why) != 0)
        HARNESS_FAIL("line %d: %s", line, why);
    if (emu_counter(e, "auth_on_results") != 0)
        HARNESS_FAIL("line %d: Authorization sent to /_results", line);
}

/* The end of a test: no download carried the key (check_no_key_on_results);
 * j and c are freed. */
#define END_WITH_NO_KEY(e, j, c)                                         \
    do {                                                                 \
        check_no_key_on_results((e), __LINE__);                          \
        sa_job_free(j);                                                  \
        sa_client_free(c);                                               \
    } while (0)

/* Every file of r was written into folder (the path says so, nothing is
 * held in memory) and, when `like` is not NULL, has the bytes of the file
 * of the same name in `like`; the files are removed. */
static void check_folder(const char *folder, const sa_result *r,
                         const sa_result *like)
{
    size_t i, j;
    for (i = 0; i < sa_result_file_count(r); i++) {
        char path[1024];
        size_t len = 0, flen = 0;
        const char *name = sa_result_file_name(r, i);
        char *disk;
        snprintf(path, sizeof path, "%s/%s", folder, name);
        CHECK_STR(sa_result_file_path(r, i), path);
        CHECK(sa_result_file_data(r, i, &len) == NULL && len == 0);
        disk = harness_slurp(path, &flen);
        if (!disk) HARNESS_FAIL("%s missing", path);
        for (j = 0; disk && like && j < sa_result_file_count(like); j++) {
            const void *data = sa_result_file_data(like, j, &len);
            if (strcmp(sa_result_file_name(like, j), name) != 0) continue;
            if (flen != len || memcmp(disk, data, len) != 0)
                HARNESS_FAIL("%s differs", path);
            break;
        }
        if (like && j == sa_result_file_count(like))
            HARNESS_FAIL("%s: no such file in memory", name);
        free(disk);
        unlink(path);
    }
}

static int count_format(const sa_result *r, int format)
{
    size_t i;
    int n = 0;
    for (i = 0; i < sa_result_file_count(r); i++)
        n += sa_result_file_format(r, i) == format;
    return n;
}

static int cb_terminal;
static sa_job *cb_job;
static void *cb_ud;
static int count_cb(sa_job *job, int state, void *ud)
{
    if (state >= SA_JOB_DONE) {
        cb_terminal++;
        cb_job = job;
        cb_ud = ud;
    }
    return 0;
}

static emu g_emu;

TEST(zip_result_end_to_end)
{
    sa_client *c = client_for(&g_emu, 50);
    sa_job *j;
    const sa_result *r;

    REQUIRE(c);
    emu_reset(&g_emu);
    j = run_job(c, SA_FORMAT_ZIP);
    REQUIRE(j);
    CHECK_EQ_INT(sa_job_status(j), SA_OK);
    r = sa_job_result(j);
    REQUIRE(r);
    CHECK_EQ_INT(sa_result_format(r), SA_FORMAT_ZIP);
    CHECK(sa_result_get(r, "wrinkle", NULL) != NULL);
    CHECK(sa_result_get(r, "skin_type", "t_zone") != NULL);
    CHECK(sa_result_file_count(r) >= 3);
    CHECK_EQ_INT(count_format(r, SA_IMAGE_PNG), (int)sa_result_file_count(r));
    CHECK_EQ_INT(emu_counter2(&g_emu, "requests", "result"), 1);
    END_WITH_NO_KEY(&g_emu, j, c);
}

/* A ZIP download is bounded by its own limit (64 MiB), not by the API
 * responses' max_body_bytes: a client with a tiny max_body_bytes still gets
 * its ZIP result. */
TEST(zip_download_has_its_own_body_limit)
{
    sa_client_options o;
    sa_client *c = NULL;
    sa_request r;
    sa_job *j = NULL;

    emu_options(&g_emu, &o, EMU_KEY, 50, 0);
    o.max_body_bytes = 4096;   /* the ZIP is bigger than this */
    c = emu_client(&o);
    REQUIRE(c != NULL);
    emu_reset(&g_emu);
    sd3_request(&r, SA_FORMAT_ZIP);
    REQUIRE(sa_client_submit(c, &r, &j) == SA_OK);
    CHECK_EQ_INT(sa_job_wait(j, 20000), SA_OK);
    CHECK_EQ_INT(sa_job_status(j), SA_OK);
    CHECK(sa_result_file_count(sa_job_result(j)) >= 3);
    sa_job_free(j);
    sa_client_free(c);
}

TEST(fetch_masks_json_into_folder)
{
    sa_client *c = client_for(&g_emu, 50);
    char folder[] = "/tmp/sa_fetch_XXXXXX";
    sa_job *j, *f = NULL, *m = NULL;
    sa_request r;
    sa_fetch_options fo;
    const sa_result *res;
    size_t n_urls;
    int mark;

    REQUIRE(c && mkdtemp(folder));
    emu_reset(&g_emu);
    sd3_request(&r, SA_FORMAT_JSON);
    r.callback = count_cb;
    REQUIRE(sa_client_submit(c, &r, &j) == SA_OK);
    CHECK_EQ_INT(sa_client_fetch_masks(c, j, folder, &f), SA_ERR_NOT_DONE);
    REQUIRE(sa_job_wait(j, 20000) == SA_OK && sa_job_status(j) == SA_OK);
    CHECK_EQ_INT(sa_client_fetch_masks(c, j, "/nonexistent/x", &f),
                 SA_ERR_FILE);
    CHECK(strstr(sa_client_errmsg(c), "/nonexistent/x") != NULL);
    /* the fetch job has its own callback and user data, never j's */
    cb_terminal = 0;
    sa_fetch_options_init(&fo);
    fo.folder = folder;
    fo.callback = count_cb;
    fo.user_data = &mark;
    CHECK_EQ_INT(sa_client_fetch(c, j, &fo, &f), SA_OK);
    REQUIRE(f);
    CHECK_EQ_INT(sa_job_state(f), SA_JOB_FETCHING);
    CHECK_EQ_INT(sa_client_active(c), 1);   /* children are internal */
    REQUIRE(sa_job_wait(f, 20000) == SA_OK);
    CHECK_EQ_INT(sa_job_status(f), SA_OK);
    CHECK_EQ_INT(cb_terminal, 1);
    CHECK(cb_job == f && cb_ud == &mark);
    res = sa_job_result(f);
    REQUIRE(res);
    n_urls = sa__result_urls(sa_job_result(j), NULL, 0);
    CHECK(n_urls >= 4);
    CHECK_EQ_INT(sa_result_file_count(res), n_urls);
    /* masks are PNG; the resized image is the uploaded JPEG */
    CHECK_EQ_INT(count_format(res, SA_IMAGE_PNG), (int)n_urls - 1);
    CHECK_EQ_INT(count_format(res, SA_IMAGE_JPEG), 1);
    CHECK_EQ_INT(sa_result_count(res), sa_result_count(sa_job_result(j)));
    CHECK_STR(sa_job_task_id(f), sa_job_task_id(j));
    CHECK_EQ_INT(emu_counter2(&g_emu, "requests", "result"), (long)n_urls);
    /* the same files in memory (sa_client_fetch_masks: no callback) */
    cb_terminal = 0;
    REQUIRE(sa_client_fetch_masks(c, j, NULL, &m) == SA_OK);
    REQUIRE(sa_job_wait(m, 20000) == SA_OK && sa_job_status(m) == SA_OK);
    CHECK_EQ_INT(cb_terminal, 0);
    CHECK_EQ_INT(sa_result_file_count(sa_job_result(m)), n_urls);
    CHECK(sa_result_file_path(sa_job_result(m), 0) == NULL);
    check_folder(folder, res, sa_job_result(m));
    check_no_key_on_results(&g_emu, __LINE__);
    CHECK_EQ_INT(sa_client_active(c), 0);
    sa_job_free(m);
    sa_job_free(f);
    sa_job_free(j);
    CHECK_EQ_INT(rmdir(folder), 0);   /* nothing else was left there */
    sa_client_free(c);
}

TEST(fetch_masks_of_a_zip_result)
{
    sa_client *c = client_for(&g_emu, 50);
    char folder[] = "/tmp/sa_fetch_XXXXXX";
    sa_job *j, *f = NULL;

    REQUIRE(c && mkdtemp(folder));
    emu_reset(&g_emu);
    j = run_job(c, SA_FORMAT_ZIP);
    REQUIRE(j && sa_job_status(j) == SA_OK);
    CHECK_EQ_INT(sa_client_fetch_masks(c, j, folder, &f), SA_OK);
    REQUIRE(f);
    CHECK_EQ_INT(sa_job_wait(f, 5000), SA_OK);
    CHECK_EQ_INT(sa_job_status(f), SA_OK);
    CHECK_EQ_INT(sa_result_file_count(sa_job_result(f)),
                 sa_result_file_count(sa_job_result(j)));
    check_folder(folder, sa_job_result(f), sa_job_result(j));
    CHECK_EQ_INT(emu_counter2(&g_emu, "requests", "result"), 1);  /* none */
    sa_job_free(f);
    sa_job_free(j);
    CHECK_EQ_INT(rmdir(folder), 0);
    sa_client_free(c);
}

TEST(expired_urls_are_refreshed)
{
    emu e;
    sa_client *c;
    sa_job *j, *f = NULL;
    long polls;

    REQUIRE(emu_start(&e, FAST " --url-ttl 1") == 0);
    c = client_for(&e, 50);
    REQUIRE(c);
    j = run_job(c, SA_FORMAT_JSON);
    REQUIRE(j && sa_job_status(j) == SA_OK);
    /* the URLs expire: stop the emulator's clock 1.5 s later (no sleep) */
    REQUIRE(emu_post_json(&e, "/_control/clock",
                          "{\"mode\": \"test\", \"advance_ms\": 1500}") == 200);
    polls = emu_counter2(&e, "requests", "task_status");
    REQUIRE(sa_client_fetch_masks(c, j, NULL, &f) == SA_OK);
    CHECK_EQ_INT(sa_job_wait(f, 20000), SA_OK);
    CHECK_EQ_INT(sa_job_status(f), SA_OK);
    if (sa_job_status(f) != SA_OK) fprintf(stderr, "  %s\n", sa_job_errmsg(f));
    CHECK_EQ_INT(sa_result_file_count(sa_job_result(f)),
                 sa__result_urls(sa_job_result(j), NULL, 0));
    CHECK(emu_counter2(&e, "responses", "403") >= 1);
    CHECK(emu_counter2(&e, "requests", "task_status") > polls);
    check_no_key_on_results(&e, __LINE__);
    sa_job_free(f);
    /* the clock runs again (from where it stood) for the next job */
    REQUIRE(emu_post_json(&e, "/_control/clock", "{\"mode\": \"real\"}") == 200);

    /* a slow result host (1.2 s, longer than the URLs live) still works */
    emu_scenario(&e, "{\"faults\":[{\"endpoint\":\"result\",\"nth\":[1],"
                     "\"fault\":\"delay\",\"delay_ms\":1200}]}");
    sa_job_free(j);
    j = run_job(c, SA_FORMAT_ZIP);
    REQUIRE(j);
    CHECK_EQ_INT(sa_job_status(j), SA_OK);
    sa_job_free(j);
    sa_client_free(c);
    emu_stop(&e);
}

/* The end of a test with a fault scenario: the scenario cleared, the
 * fetch job f, its job j and the client freed. */
static void end_fault_test(sa_client *c, sa_job *j, sa_job *f)
{
    emu_scenario(&g_emu, NULL);
    sa_job_free(f);
    sa_job_free(j);
    sa_client_free(c);
}

TEST(result_host_faults_are_retried)
{
    sa_client *c = client_for(&g_emu, 50);
    sa_job *j, *f = NULL;

    REQUIRE(c);
    emu_reset(&g_emu);
    REQUIRE(emu_scenario(&g_emu, "{\"faults\":[{\"endpoint\":\"result\","
                         "\"nth\":[1],\"fault\":\"http_500_html\"},"
                         "{\"endpoint\":\"result\",\"nth\":[3],"
                         "\"fault\":\"close_mid_response\"}]}") == 0);
    j = run_job(c, SA_FORMAT_ZIP);
    REQUIRE(j);
    CHECK_EQ_INT(sa_job_status(j), SA_OK);
    CHECK(sa_result_file_count(sa_job_result(j)) > 0);
    CHECK_EQ_INT(emu_counter2(&g_emu, "requests", "result"), 2);
    sa_job_free(j);
    j = run_job(c, SA_FORMAT_JSON);
    REQUIRE(j && sa_job_status(j) == SA_OK);
    REQUIRE(sa_client_fetch_masks(c, j, NULL, &f) == SA_OK);
    CHECK_EQ_INT(sa_job_wait(f, 20000), SA_OK);
    CHECK_EQ_INT(sa_job_status(f), SA_OK);
    end_fault_test(c, j, f);
}

TEST(freeing_a_fetch_job_stops_its_downloads)
{
    sa_client *c = client_for(&g_emu, 50);
    sa_job *j, *f = NULL;
    int64_t t0;

    REQUIRE(c);
    emu_reset(&g_emu);
    j = run_job(c, SA_FORMAT_JSON);
    REQUIRE(j && sa_job_status(j) == SA_OK);
    REQUIRE(emu_scenario(&g_emu, "{\"faults\":[{\"endpoint\":\"result\","
                         "\"fault\":\"delay\",\"delay_ms\":3000}]}") == 0);
    REQUIRE(sa_client_fetch_masks(c, j, NULL, &f) == SA_OK);
    CHECK(sa_client_step(c, 100) >= 0);
    sa_job_free(f);
    t0 = harness_now_ms();
    CHECK_EQ_INT(sa_client_run(c, 5000), SA_OK);
    CHECK(harness_now_ms() - t0 < 1000);
    CHECK_EQ_INT(sa_client_active(c), 0);
    emu_scenario(&g_emu, NULL);
    sa_job_free(j);
    sa_client_free(c);
}

/* Host `data` at /_public/<name>. */
static int host(const emu *e, const char *name, const char *data, size_t len)
{
    char ctl[256];
    snprintf(ctl, sizeof ctl, "/_control/public/%s", name);
    return emu_http(e, "POST", ctl, data, len, "image/png", NULL) == 200 ? 0
                                                                          : -1;
}

/* A DONE job whose result is `results` (data.results JSON, see the
 * emulator's POST /_control/task/<id>/results), on an emulator whose tasks
 * run until finished. */
static sa_job *job_with_results(sa_client *c, const emu *e,
                                const char *results)
{
    char ctl[256], *body;
    sa_request r;
    sa_job *j = NULL;
    size_t n = strlen(results) + 32;
    int i;

    sd3_request(&r, SA_FORMAT_JSON);
    if (sa_client_submit(c, &r, &j) != SA_OK) return NULL;
    for (i = 0; i < 500 && !sa_job_task_id(j); i++) sa_client_step(c, 10);
    body = malloc(n);
    if (!body || !sa_job_task_id(j)) {
        free(body);
        sa_job_free(j);
        return NULL;
    }
    snprintf(body, n, "{\"results\":%s}", results);
    snprintf(ctl, sizeof ctl, "/_control/task/%s/results", sa_job_task_id(j));
    i = emu_post_json(e, ctl, body) == 200;
    snprintf(ctl, sizeof ctl, "/_control/task/%s/finish", sa_job_task_id(j));
    i = i && emu_post_json(e, ctl, "{}") == 200;
    free(body);
    sa_client_notify(c, sa_job_task_id(j));
    if (!i || sa_job_wait(j, 20000) != SA_OK || sa_job_status(j) != SA_OK) {
        fprintf(stderr, "  job_with_results: %s\n", sa_job_errmsg(j));
        sa_job_free(j);
        return NULL;
    }
    return j;
}

/* The file of r named `name`: its index, or -1. */
static long file_index(const sa_result *r, const char *name)
{
    size_t i;
    for (i = 0; i < sa_result_file_count(r); i++)
        if (strcmp(sa_result_file_name(r, i), name) == 0) return (long)i;
    return -1;
}

/* The bytes of file `name` of r (on disk or in memory) are `want`. */
static int file_is(const sa_result *r, const char *name, const char *want)
{
    long i = file_index(r, name);
    size_t len = 0;
    const char *data;
    char *disk;
    int same;

    if (i < 0) return 0;
    data = sa_result_file_data(r, (size_t)i, &len);
    if (data) return len == strlen(want) && memcmp(data, want, len) == 0;
    disk = harness_slurp(sa_result_file_path(r, (size_t)i), &len);
    same = disk && len == strlen(want) && memcmp(disk, want, len) == 0;
    free(disk);
    return same;
}

#define MASK3000(ch) (memset(big, ch, 3000), big[3000] = '\0', big)

/* Three URLs ending in mask.png, "x y.png" and "x_y.png", a URL that is
 * not http(s) and one that answers 404: five files, none lost or
 * mislabelled; the two failures fail alone, as download errors (not
 * validation or usage errors), and the fetch keeps what arrived.  In
 * memory, max_files_bytes bounds the files of the result: the mask that
 * passes it fails SA_ERR_LIMIT, the others arrive. */
static void names_failures_and_bound(const emu *ep)
{
    static const char results[] =
        "{\"output\":["
        "{\"type\":\"wrinkle\",\"ui_score\":50,\"raw_score\":50.5,"
        "\"mask_urls\":[\"{base}/_public/a/mask.png?sig=1\","
        "\"{base}/_public/b/mask.png?sig=2\"]},"
        "{\"type\":\"pore\",\"ui_score\":60,\"raw_score\":60.5,"
        "\"mask_urls\":[\"{base}/_public/c/mask.png\","
        "\"ftp://elsewhere/bad.png\",\"{base}/_public/missing.png\"]},"
        "{\"type\":\"acne\",\"ui_score\":70,\"raw_score\":70.5,"
        "\"mask_urls\":[\"{base}/_public/x%20y.png\","
        "\"{base}/_public/x_y.png\"]}]}";
    emu e = *ep;
    sa_client_options o;
    sa_client *c = NULL;
    sa_job *j, *f = NULL, *m = NULL;
    const sa_result *res;
    char folder[] = "/tmp/sa_fetch_XXXXXX", big[3001];
    size_t i;
    int st, limited = 0;

    REQUIRE(mkdtemp(folder));
    REQUIRE(host(&e, "a/mask.png", MASK3000('A'), 3000) == 0);
    REQUIRE(host(&e, "b/mask.png", MASK3000('B'), 3000) == 0);
    REQUIRE(host(&e, "c/mask.png", MASK3000('C'), 3000) == 0);
    REQUIRE(host(&e, "x%20y.png", "space", 5) == 0);
    REQUIRE(host(&e, "x_y.png", "underscore", 10) == 0);
    emu_options(&e, &o, EMU_KEY, 50, 0);
    o.backoff_initial_ms = 10;
    o.backoff_max_ms = 20;
    o.max_files_bytes = 7000;      /* two of the 3000-byte masks */
    c = emu_client(&o);
    REQUIRE(c != NULL);
    j = job_with_results(c, &e, results);
    REQUIRE(j);
    CHECK_EQ_INT(sa__result_urls(sa_job_result(j), NULL, 0), 7);

    /* into a folder: nothing in memory, so no bound */
    REQUIRE(sa_client_fetch_masks(c, j, folder, &f) == SA_OK);
    REQUIRE(sa_job_wait(f, 20000) == SA_OK);
    st = sa_job_status(f);
    CHECK_EQ_INT(st, SA_ERR_DOWNLOAD);
    CHECK(!sa_status_is_validation(st) && st != SA_ERR_INVALID_ARGUMENT);
    CHECK(strstr(sa_job_errmsg(f), "2 of 7 files failed; the first: "
                 "bad.png: its URL is not an http(s) URL") != NULL);
    res = sa_job_result(f);
    REQUIRE(res);
    CHECK_EQ_INT(sa_result_file_count(res), 5);
    CHECK(file_is(res, "mask.png", MASK3000('A')));
    CHECK(file_is(res, "mask-2.png", MASK3000('B')));
    CHECK(file_is(res, "mask-3.png", MASK3000('C')));
    CHECK(file_is(res, "x_y.png", "space"));
    CHECK(file_is(res, "x_y-2.png", "underscore"));
    for (i = 0; i < sa_result_file_count(res); i++) {
        CHECK(sa_result_file_path(res, i) != NULL);
        unlink(sa_result_file_path(res, i));
    }
    CHECK_EQ_INT(rmdir(folder), 0);   /* no partial file was left */
    sa_job_free(f);

    /* in memory: the bound, the same names, the same failures */
    REQUIRE(sa_client_fetch_masks(c, j, NULL, &m) == SA_OK);
    REQUIRE(sa_job_wait(m, 20000) == SA_OK);
    st = sa_job_status(m);
    CHECK_EQ_INT(st, SA_ERR_LIMIT);   /* a mask comes before bad.png */
    CHECK(strstr(sa_job_errmsg(m), "3 of 7 files failed; the first: ") !=
          NULL);
    CHECK(strstr(sa_job_errmsg(m), "max_files_bytes (7000 bytes)") != NULL);
    res = sa_job_result(m);
    REQUIRE(res);
    CHECK_EQ_INT(sa_result_file_count(res), 4);
    limited = (file_index(res, "mask.png") < 0) +
              (file_index(res, "mask-2.png") < 0) +
              (file_index(res, "mask-3.png") < 0);
    CHECK_EQ_INT(limited, 1);
    CHECK(file_index(res, "mask.png") < 0 ||
          file_is(res, "mask.png", MASK3000('A')));
    CHECK(file_index(res, "mask-3.png") < 0 ||
          file_is(res, "mask-3.png", MASK3000('C')));
    CHECK(file_is(res, "x_y-2.png", "underscore"));
    sa_job_free(m);
    sa_job_free(j);
    sa_client_free(c);
}

TEST(names_failures_and_the_memory_bound)
{
    emu e;
    REQUIRE(emu_start(&e, "--task-seconds 60 --rate-limit off " KEYS) == 0);
    names_failures_and_bound(&e);
    emu_stop(&e);
}

/* Mask URLs that echo the API key (whole, or %-encoded so that only the
 * cleaned name shows it): the DONE result is published scrubbed, so the
 * URL with the key in clear is never requested (it fails alone); the
 * %-encoded one arrives under a name that does not show the key, and that
 * name is the file's on disk, so the path in the (scrubbed) result is
 * real.  In memory the same names. */
static int empty_folder(const char *folder);
#define KEY_PCT "%65%6d%75%6c%61%74%6f%72%2d%6b%65%79"   /* emulator-key */
static void key_in_mask_urls(const emu *ep)
{
    static const char results[] =
        "{\"output\":["
        "{\"type\":\"wrinkle\",\"ui_score\":50,\"raw_score\":50.5,"
        "\"mask_urls\":[\"{base}/_public/k/" EMU_KEY ".png\","
        "\"{base}/_public/e/" KEY_PCT ".png\","
        "\"{base}/_public/p/pore.png\"]}]}";
    emu e = *ep;
    sa_client *c = client_for(&e, 50);
    sa_job *j, *f = NULL;
    const sa_result *res;
    char folder[] = "/tmp/sa_fetch_XXXXXX", path[256];
    size_t i;
    int pass;
    DIR *d;
    struct dirent *de;

    REQUIRE(c);
    REQUIRE(mkdtemp(folder));
    REQUIRE(host(&e, "e/" KEY_PCT ".png", "encoded", 7) == 0);
    REQUIRE(host(&e, "p/pore.png", "pore", 4) == 0);
    j = job_with_results(c, &e, results);
    REQUIRE(j);
    REQUIRE(sa_job_result(j));
    CHECK(!sa__has_secret(sa__result_url_at(sa_job_result(j), 0), EMU_KEY));
    for (pass = 0; pass < 2; pass++) {
        REQUIRE(sa_client_fetch_masks(c, j, pass ? NULL : folder, &f) ==
                SA_OK);
        REQUIRE(sa_job_wait(f, 20000) == SA_OK);
        CHECK_EQ_INT(sa_job_status(f), SA_ERR_DOWNLOAD);
        /* the scrubbed URL is claimed first: "REDACTED_.png", a 404 */
        CHECK(strstr(sa_job_errmsg(f), "REDACTED_.png: result download: "
                     "HTTP 404") != NULL);
        CHECK(!sa__has_secret(sa_job_errmsg(f), EMU_KEY));
        res = sa_job_result(f);
        REQUIRE(res);
        CHECK_EQ_INT(sa_result_file_count(res), 2);
        CHECK(file_is(res, "REDACTED_-2.png", "encoded"));
        CHECK(file_is(res, "pore.png", "pore"));
        for (i = 0; i < sa_result_file_count(res); i++) {
            CHECK(!sa__has_secret(sa_result_file_name(res, i), EMU_KEY));
            if (pass) {
                CHECK(sa_result_file_path(res, i) == NULL);
                continue;
            }
            snprintf(path, sizeof path, "%s/%s", folder,
                     sa_result_file_name(res, i));
            CHECK_STR(sa_result_file_path(res, i), path);
        }
        sa_job_free(f);
        f = NULL;
    }
    d = opendir(folder);
    REQUIRE(d);
    i = 0;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        i++;
        if (sa__has_secret(de->d_name, EMU_KEY))
            HARNESS_FAIL("%s/%s shows the key", folder, de->d_name);
    }
    closedir(d);
    CHECK_EQ_INT(i, 2);
    CHECK_EQ_INT(empty_folder(folder), 0);
    rmdir(folder);
    END_WITH_NO_KEY(&e, j, c);
}

/* A result host that trickles one byte a second is cut off by the
 * low-speed limit (seconds, not the 60 s download timeout), retried, and
 * fails that file alone with SA_ERR_TIMEOUT. */
TEST(a_trickling_host_is_cut_off)
{
    sa_client_options o;
    sa_client *c = NULL;
    sa_job *j, *f = NULL;
    int64_t t0;
    size_t n_urls;

    emu_options(&g_emu, &o, EMU_KEY, 50, 0);
    o.backoff_initial_ms = 10;
    o.backoff_max_ms = 20;
    o.upload_timeout_ms = 60000;
    o.max_retries = 0;
    o.low_speed_limit = 100;
    o.low_speed_time_ms = 1000;
    c = emu_client(&o);
    REQUIRE(c != NULL);
    emu_reset(&g_emu);
    j = run_job(c, SA_FORMAT_JSON);
    REQUIRE(j && sa_job_status(j) == SA_OK);
    n_urls = sa__result_urls(sa_job_result(j), NULL, 0);
    /* the first download trickles */
    REQUIRE(emu_scenario(&g_emu, "{\"faults\":[{\"endpoint\":\"result\","
                         "\"nth\":[1],\"fault\":\"trickle\","
                         "\"size_bytes\":100000,\"delay_ms\":1000}]}") == 0);
    t0 = harness_now_ms();
    REQUIRE(sa_client_fetch_masks(c, j, NULL, &f) == SA_OK);
    REQUIRE(sa_job_wait(f, 30000) == SA_OK);
    CHECK(harness_now_ms() - t0 < 10000);
    CHECK_EQ_INT(sa_job_status(f), SA_ERR_TIMEOUT);
    CHECK(strstr(sa_job_errmsg(f), "too slow") != NULL ||
          strstr(sa_job_errmsg(f), "timed out") != NULL);
    CHECK_EQ_INT(sa_result_file_count(sa_job_result(f)), n_urls - 1);
    end_fault_test(c, j, f);
}

/* The fetch job's own callback and user data: the finished job can be
 * freed while the fetch runs; nothing of it is used. */
TEST(the_fetch_outlives_its_job)
{
    sa_client *c = client_for(&g_emu, 50);
    sa_job *j, *f = NULL;
    sa_fetch_options fo;
    int mark, stdin_open;

    REQUIRE(c);
    emu_reset(&g_emu);
    j = run_job(c, SA_FORMAT_JSON);
    REQUIRE(j && sa_job_status(j) == SA_OK);
    sa_fetch_options_init(&fo);
    fo.callback = count_cb;
    fo.user_data = &mark;
    stdin_open = fcntl(0, F_GETFD) != -1;
    REQUIRE(sa_client_fetch(c, j, &fo, &f) == SA_OK);
    sa_job_free(j);
    cb_terminal = 0;
    CHECK_EQ_INT(sa_job_wait(f, 20000), SA_OK);
    CHECK_EQ_INT(sa_job_status(f), SA_OK);
    CHECK_EQ_INT(cb_terminal, 1);
    CHECK(cb_job == f && cb_ud == &mark);
    CHECK(sa_result_file_count(sa_job_result(f)) >= 4);
    sa_job_free(f);
    /* an in-memory download closes no descriptor of the process */
    if (stdin_open) CHECK(fcntl(0, F_GETFD) != -1);
    sa_client_free(c);
}

/* Remove the files of folder; the number of ".sa-" (temporary) ones. */
static int empty_folder(const char *folder)
{
    DIR *d = opendir(folder);
    struct dirent *e;
    char path[1024];
    int tmp = 0;

    if (!d) return -1;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        tmp += !strncmp(e->d_name, ".sa-", 4);
        snprintf(path, sizeof path, "%s/%s", folder, e->d_name);
        unlink(path);
    }
    closedir(d);
    return tmp;
}

/* Each allocation of a fetch (into a folder and in memory) fails once in
 * turn: the fetch fails (or ends without that file), nothing of its memory
 * is left, no temporary file stays. */
TEST(fetch_with_failing_allocations)
{
    sa_client_options o;
    sa_client *c = NULL;
    sa_job *j = NULL;
    fs_mem m;
    char folder[] = "/tmp/sa_fetch_XXXXXX";
    long n, live;
    int pass, done_clean = 0;

    REQUIRE(mkdtemp(folder));
    fs_mem_init(&m, 0, 0);
    emu_options(&g_emu, &o, EMU_KEY, 50, 0);
    o.backoff_initial_ms = 5;
    o.backoff_max_ms = 10;
    o.mem = &m.mem;
    c = emu_client(&o);
    REQUIRE(c != NULL);
    emu_reset(&g_emu);
    j = run_job(c, SA_FORMAT_JSON);
    REQUIRE(j && sa_job_status(j) == SA_OK);
    for (pass = 0; pass < 2; pass++) {
        for (n = 1; n < 400; n++) {
            sa_job *f = NULL;
            long base;
            int rc;

            live = m.live;
            base = m.calls;
            m.fail_at = base + n;
            rc = sa_client_fetch_masks(c, j, pass ? NULL : folder, &f);
            if (rc == SA_OK) sa_job_wait(f, 20000);
            if (rc != SA_OK) CHECK_EQ_INT(rc, SA_ERR_NOMEM);
            else if (sa_job_status(f) != SA_OK)
                CHECK(sa_job_status(f) < 0 &&
                      sa_job_status(f) != SA_ERR_INVALID_ARGUMENT);
            m.fail_at = 0;
            if (f && m.failed == 0 && sa_job_status(f) == SA_OK) {
                done_clean = 1;
                sa_job_free(f);
                CHECK_EQ_INT(empty_folder(folder), 0);
                fprintf(stderr, "  %s: each of %ld allocations failed once\n",
                        pass ? "in memory" : "into a folder", n - 1);
                break;   /* the n-th allocation was never reached */
            }
            m.failed = 0;
            sa_job_free(f);
            sa_client_run(c, 5000);
            CHECK_EQ_INT(m.live, live);
            CHECK_EQ_INT(empty_folder(folder), 0);
        }
    }
    CHECK(done_clean);
    sa_job_free(j);
    sa_client_free(c);
    CHECK_EQ_INT(m.live, 0);
    rmdir(folder);
}

TEST(mask_urls_that_echo_the_key)
{
    emu e;
    REQUIRE(emu_start(&e, "--task-seconds 60 --rate-limit off " KEYS) == 0);
    key_in_mask_urls(&e);
    emu_stop(&e);
}

TEST(notify_polls_at_once)
{
    emu e;
    sa_client *c;
    sa_request r;
    sa_job *j = NULL;
    int64_t t0;
    int i;

    REQUIRE(emu_start(&e, "--task-seconds 2 --rate-limit off " KEYS) == 0);
    c = client_for(&e, 5000);
    REQUIRE(c);
    sd3_request(&r, SA_FORMAT_JSON);
    REQUIRE(sa_client_submit(c, &r, &j) == SA_OK);
    for (i = 0; i < 200 && sa_job_state(j) != SA_JOB_POLL_WAIT; i++)
        sa_client_step(c, 20);
    REQUIRE(sa_job_state(j) == SA_JOB_POLL_WAIT);
    CHECK_EQ_INT(sa_client_notify(c, "no-such-task"), 0);
    CHECK_EQ_INT(sa_client_notify(c, NULL), SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(emu_counter2(&e, "requests", "task_status"), 0);
    CHECK_EQ_INT(sa_client_notify(c, sa_job_task_id(j)), 1);
    for (i = 0; i < 10; i++) sa_client_step(c, 20);
    CHECK_EQ_INT(emu_counter2(&e, "requests", "task_status"), 1);
    /* once the task ended (the webhook's case) it ends at once too: the
     * emulator's clock jumps past the task's 2 s */
    REQUIRE(emu_post_json(&e, "/_control/clock", "{\"advance_ms\": 2100}") == 200);
    t0 = harness_now_ms();
    CHECK_EQ_INT(sa_client_notify(c, sa_job_task_id(j)), 1);
    CHECK_EQ_INT(sa_job_wait(j, 3000), SA_OK);
    CHECK_EQ_INT(sa_job_status(j), SA_OK);
    CHECK(harness_now_ms() - t0 < 1000);
    CHECK_EQ_INT(emu_counter2(&e, "requests", "task_status"), 2);
    sa_job_free(j);
    sa_client_free(c);
    emu_stop(&e);
}

int main(void)
{
    if (sa_global_init() != SA_OK) return 1;
    if (emu_start(&g_emu, FAST) != 0) return 1;
    RUN(zip_result_end_to_end);
    RUN(zip_download_has_its_own_body_limit);
    RUN(fetch_masks_json_into_folder);
    RUN(fetch_masks_of_a_zip_result);
    RUN(expired_urls_are_refreshed);
    RUN(result_host_faults_are_retried);
    RUN(freeing_a_fetch_job_stops_its_downloads);
    RUN(names_failures_and_the_memory_bound);
    RUN(a_trickling_host_is_cut_off);
    RUN(the_fetch_outlives_its_job);
    RUN(fetch_with_failing_allocations);
    RUN(mask_urls_that_echo_the_key);
    RUN(notify_polls_at_once);
    emu_stop(&g_emu);
    sa_global_cleanup();
    return harness_report();
}
