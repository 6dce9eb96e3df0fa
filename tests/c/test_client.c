/*
 * test_client.c - the public client/job API without a server: options and
 * their defaults, every validation error and its message, insecure URLs,
 * misuse, callbacks and reentrancy, cancel/free/abandon, queueing, the
 * allocator hooks (with a failing-allocator loop), and jobs against
 * loopback ports that refuse or never answer.
 */
#include "harness.h"
#include "sa_internal.h"
#include "support_fakeserver.h"
#include "support_emulator.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define KEY "test-key-6f1d2c"
#define SD_JPG SA_FIXTURES "/portrait_sd.jpg"
#define HD_JPG SA_FIXTURES "/portrait_hd.jpg"
#define PNG SA_FIXTURES "/portrait.png"
#define SMALL_JPG SA_FIXTURES "/small.jpg"
#define NOT_IMAGE SA_FIXTURES "/not_an_image.jpg"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const char *const sd2[] = {"wrinkle", "pore"};
static const char *const hd1[] = {"hd_wrinkle"};

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

/* Log lines captured for a test. */
typedef struct logcap {
    int lines;
    int with_key;
    int warnings;
    char last[1024];
} logcap;

static void cap_log(void *ud, int level, const char *msg)
{
    logcap *l = ud;
    l->lines++;
    if (strstr(msg, KEY)) l->with_key++;
    if (level >= SA_LOG_WARNING) l->warnings++;
    snprintf(l->last, sizeof l->last, "%s", msg);
}

/* A loopback port nothing listens on (bound, then closed). */
static int closed_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int s = socket(AF_INET, SOCK_STREAM, 0), port;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(s, (struct sockaddr *)&a, &len) != 0)
        return 1;
    port = ntohs(a.sin_port);
    close(s);
    return port;
}

/* A loopback socket that accepts connections (kernel backlog) and never
 * answers: requests to it hang until their timeout. */
static int silent_listener(int *port)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(s, 64) != 0 || getsockname(s, (struct sockaddr *)&a, &len) != 0)
        return -1;
    *port = ntohs(a.sin_port);
    return s;
}

static void test_options(sa_client_options *o, const char *base)
{
    quick_options(o, KEY, base, 2000, 0);  /* polls at the defaults */
    o->max_retries = 2;
    o->backoff_initial_ms = 5;
    o->backoff_max_ms = 20;
    o->request_timeout_ms = 2000;
    o->rate_limit = 0;
}

static sa_client *new_client_at(const char *base, logcap *cap)
{
    sa_client_options o;
    sa_client *c = NULL;
    char err[256];
    test_options(&o, base);
    if (cap) {
        o.log = cap_log;
        o.log_user_data = cap;
        o.log_level = SA_LOG_DEBUG;
    }
    if (sa_client_new(&c, &o, err, sizeof err) != SA_OK) {
        fprintf(stderr, "sa_client_new: %s\n", err);
        return NULL;
    }
    return c;
}

/* A client pointed at a closed loopback port. */
static sa_client *new_client(logcap *cap)
{
    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%d", closed_port());
    return new_client_at(base, cap);
}

static void sd_request(sa_request *r, const char *path)
{
    sa_request_init(r);
    r->file_path = path;
    r->actions = sd2;
    r->n_actions = 2;
}

/* Submit and expect a validation failure with `code` whose message
 * contains `needle`. */
static void expect_invalid(sa_client *c, const sa_request *r, int code,
                           const char *needle, int line)
{
    sa_job *j = (sa_job *)1;
    int rc = sa_client_submit(c, r, &j);
    if (rc != code || j != NULL ||
        (needle && !strstr(sa_client_errmsg(c), needle))) {
        HARNESS_FAIL("line %d: submit -> %d (%s), expected %d with '%s'",
                     line, rc, sa_client_errmsg(c), code,
                     needle ? needle : "");
    }
    if (strstr(sa_client_errmsg(c), KEY))
        HARNESS_FAIL("line %d: the key is in a message", line);
}

/* sa_client_submit, and where it took the job (*j), a wait of up to ms
 * that must end it; returns the submit's code. */
static int submit_and_wait(sa_client *c, const sa_request *r, sa_job **j,
                           long ms)
{
    int rc = sa_client_submit(c, r, j);
    if (rc == SA_OK) CHECK_EQ_INT(sa_job_wait(*j, ms), SA_OK);
    return rc;
}

#define EXPECT_INVALID(c, r, code, needle) \
    expect_invalid((c), (r), (code), (needle), __LINE__)

/* ------------------------------------------------------------------ */
/* Versions, globals, options                                          */
/* ------------------------------------------------------------------ */

TEST(version)
{
    CHECK_STR(sa_version(), SA_VERSION);
    CHECK_EQ_INT(sa_version_num(), SA_VERSION_NUM);
    CHECK_EQ_INT(SA_VERSION_NUM, 0x000200);
}

TEST(global_init_required_and_nesting)
{
    sa_client_options o;
    sa_client *c = NULL;
    char err[128];

    test_options(&o, "http://127.0.0.1:1");
    CHECK_EQ_INT(sa_client_new(&c, &o, err, sizeof err), SA_ERR_INIT);
    CHECK(strstr(err, "sa_global_init") != NULL);
    CHECK(c == NULL);
    REQUIRE(sa_global_init() == SA_OK);
    REQUIRE(sa_global_init() == SA_OK);
    sa_global_cleanup();
    CHECK_EQ_INT(sa_client_new(&c, &o, err, sizeof err), SA_OK);
    sa_client_free(c);
    sa_global_cleanup();
    CHECK_EQ_INT(sa_client_new(&c, &o, err, sizeof err), SA_ERR_INIT);
    sa_global_cleanup();  /* one too many: harmless */
    REQUIRE(sa_global_init() == SA_OK);  /* stays on for the other tests */
}

TEST(options_defaults)
{
    sa_client_options o;
    memset(&o, 0xAB, sizeof o);
    sa_client_options_init(&o);
    CHECK(o.api_key == NULL);
    CHECK_STR(o.base_url, "https://yce-api-01.makeupar.com");
    CHECK_EQ_INT(o.api_version, SA_API_V2_1);
    CHECK_EQ_INT(o.upload_path, SA_UPLOAD_SKIN_ANALYSIS);
    CHECK_EQ_INT(o.allow_insecure_http, 0);
    CHECK(o.ca_bundle == NULL && o.proxy == NULL && o.user_agent == NULL);
    CHECK_EQ_INT(o.connect_timeout_ms, 10000);
    CHECK_EQ_INT(o.request_timeout_ms, 30000);
    CHECK_EQ_INT(o.upload_timeout_ms, 120000);
    CHECK_EQ_INT(o.max_connections, 16);
    CHECK_EQ_INT(o.max_jobs, 0);
    CHECK_EQ_INT(o.poll_interval_ms, 2000);
    CHECK_EQ_INT(o.max_poll_interval_ms, 10000);
    CHECK_EQ_INT(o.job_deadline_ms, 600000);
    CHECK_EQ_INT(o.max_polls, 0);
    CHECK_EQ_INT(o.max_retries, 6);
    CHECK_EQ_INT(o.backoff_initial_ms, 500);
    CHECK_EQ_INT(o.backoff_max_ms, 16000);
    CHECK_EQ_INT(o.rate_limit, 1);
    CHECK(o.rate_per_second == 5.0);
    CHECK_EQ_INT(o.rate_burst, 5);
    CHECK_EQ_INT(o.rate_window_max, 250);
    CHECK_EQ_INT(o.rate_window_ms, 300000);
    CHECK_EQ_INT(o.max_body_bytes, 8 * 1024 * 1024);
    CHECK_EQ_INT(o.max_json_depth, 64);
    CHECK(o.log == NULL && o.interrupt == NULL && o.mem == NULL);
    CHECK_EQ_INT(o.log_level, SA_LOG_INFO);
    CHECK(o.jitter_seed == 0);
    sa_client_options_init_sized(NULL, sizeof(sa_client_options)); /* no crash */
}

TEST(request_defaults)
{
    sa_request r;
    memset(&r, 0x5A, sizeof r);
    sa_request_init(&r);
    CHECK(r.file_path == NULL && r.buffer == NULL && r.image_url == NULL);
    CHECK(r.file_id == NULL && r.file_name == NULL && r.actions == NULL);
    CHECK_EQ_INT(r.buffer_len, 0);
    CHECK_EQ_INT(r.format, SA_FORMAT_JSON);
    CHECK_EQ_INT(r.api_version, SA_API_DEFAULT);
    CHECK_EQ_INT(r.pf_camera_kit, -1);
    CHECK_EQ_INT(r.mask_overlay, -1);
    CHECK_EQ_INT(r.deadline_ms, 0);
    CHECK(r.callback == NULL && r.user_data == NULL);
    sa_request_init_sized(NULL, sizeof(sa_request));
}

static int new_with(sa_client_options *o, char *err, size_t len)
{
    sa_client *c = NULL;
    int rc = sa_client_new(&c, o, err, len);
    sa_client_free(c);
    if (strstr(err, KEY)) return 999;  /* the key must never be echoed */
    return rc;
}

/* A value of a string option and what sa_client_new answers to it: the
 * code, and a part of the message (NULL: not checked). */
typedef struct opt_case {
    const char *value;
    int code;
    const char *needle;
} opt_case;

/* Give *field (a string option of o) each case's value in turn and check
 * sa_client_new's answer; *field keeps the last value. */
static void check_option_cases(sa_client_options *o, const char **field,
                               const opt_case *cases, size_t n)
{
    char err[256];
    size_t i;

    for (i = 0; i < n; i++) {
        *field = cases[i].value;
        CHECK_EQ_INT(new_with(o, err, sizeof err), cases[i].code);
        if (cases[i].needle) CHECK(strstr(err, cases[i].needle) != NULL);
        if (harness_cur_failed) fprintf(stderr, "  (case %zu)\n", i);
    }
}

TEST(client_new_errors)
{
    static const opt_case bad_keys[] = {
        { NULL, SA_ERR_INVALID_ARGUMENT, "api_key is required" },
        { "", SA_ERR_INVALID_ARGUMENT, NULL },
        { KEY "\n", SA_ERR_INVALID_ARGUMENT, "line break" },
        { KEY "\r", SA_ERR_INVALID_ARGUMENT, NULL },
        { " " KEY, SA_ERR_INVALID_ARGUMENT, NULL },
        { "Bearer " KEY, SA_ERR_INVALID_ARGUMENT, NULL },
    };
    static const opt_case bad_urls[] = {
        { NULL, SA_ERR_INVALID_ARGUMENT, NULL },
        { "ftp://127.0.0.1", SA_ERR_INVALID_ARGUMENT, "https://" },
        { "yce-api-01.makeupar.com", SA_ERR_INVALID_ARGUMENT, NULL },
        { "http://127.0.0.1:1/\r\nX: y", SA_ERR_INVALID_ARGUMENT, NULL },
    };
    sa_client_options o;
    sa_client *c = (sa_client *)1;
    char err[256];
    static const sa_mem half = {NULL, NULL, NULL, NULL};

    CHECK_EQ_INT(sa_client_new(NULL, NULL, err, sizeof err),
                 SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(sa_client_new(&c, NULL, err, sizeof err),
                 SA_ERR_INVALID_ARGUMENT);
    CHECK(c == NULL);
    CHECK(strstr(err, "sa_client_options_init") != NULL);

    test_options(&o, "http://127.0.0.1:1");
    check_option_cases(&o, &o.api_key, bad_keys, N(bad_keys));
    o.api_key = KEY;
    check_option_cases(&o, &o.base_url, bad_urls, N(bad_urls));

    o.base_url = "https://127.0.0.1:1";
    o.api_version = 22;
    CHECK_EQ_INT(new_with(&o, err, sizeof err), SA_ERR_INVALID_ARGUMENT);
    o.api_version = SA_API_V2_0;
    CHECK_EQ_INT(new_with(&o, err, sizeof err), SA_OK);
    o.api_version = SA_API_DEFAULT;
    CHECK_EQ_INT(new_with(&o, err, sizeof err), SA_OK);
    o.upload_path = 7;
    CHECK_EQ_INT(new_with(&o, err, sizeof err), SA_ERR_INVALID_ARGUMENT);
    o.upload_path = SA_UPLOAD_GENERIC;
    CHECK_EQ_INT(new_with(&o, err, sizeof err), SA_OK);

    test_options(&o, "https://127.0.0.1:1");
    o.request_timeout_ms = 0;
    CHECK_EQ_INT(new_with(&o, err, sizeof err), SA_ERR_INVALID_ARGUMENT);
    test_options(&o, "https://127.0.0.1:1");
    o.max_connections = 0;
    CHECK_EQ_INT(new_with(&o, err, sizeof err), SA_ERR_INVALID_ARGUMENT);
    test_options(&o, "https://127.0.0.1:1");
    CHECK_EQ_INT((int)o.step_budget_us, 500);
    o.step_budget_us = -1;
    CHECK_EQ_INT(new_with(&o, err, sizeof err), SA_ERR_INVALID_ARGUMENT);
    CHECK(strstr(err, "step_budget_us") != NULL);
    o.step_budget_us = 0;
    CHECK_EQ_INT(new_with(&o, err, sizeof err), SA_OK);
    test_options(&o, "https://127.0.0.1:1");
    o.max_poll_interval_ms = 100;
    CHECK_EQ_INT(new_with(&o, err, sizeof err), SA_ERR_INVALID_ARGUMENT);
    test_options(&o, "https://127.0.0.1:1");
    o.max_polls = -1;
    CHECK_EQ_INT(new_with(&o, err, sizeof err), SA_ERR_INVALID_ARGUMENT);
    CHECK(strstr(err, "max_polls >= 0") != NULL);
    o.max_polls = 0;                        /* no bound */
    CHECK_EQ_INT(new_with(&o, err, sizeof err), SA_OK);
    test_options(&o, "https://127.0.0.1:1");
    o.backoff_max_ms = 1;
    o.backoff_initial_ms = 2;
    CHECK_EQ_INT(new_with(&o, err, sizeof err), SA_ERR_INVALID_ARGUMENT);
    test_options(&o, "https://127.0.0.1:1");
    o.rate_limit = 1;
    o.rate_per_second = 0;
    CHECK_EQ_INT(new_with(&o, err, sizeof err), SA_ERR_INVALID_ARGUMENT);
    CHECK(strstr(err, "rate_per_second") != NULL);
    o.rate_limit = 0;  /* ignored when off */
    CHECK_EQ_INT(new_with(&o, err, sizeof err), SA_OK);
    test_options(&o, "https://127.0.0.1:1");
    o.max_body_bytes = 10;
    CHECK_EQ_INT(new_with(&o, err, sizeof err), SA_ERR_INVALID_ARGUMENT);
    test_options(&o, "https://127.0.0.1:1");
    o.user_agent = "agent\r\nX-Evil: 1";
    CHECK_EQ_INT(new_with(&o, err, sizeof err), SA_ERR_INVALID_ARGUMENT);
    test_options(&o, "https://127.0.0.1:1");
    o.mem = &half;
    CHECK_EQ_INT(new_with(&o, err, sizeof err), SA_ERR_INVALID_ARGUMENT);
    CHECK(strstr(err, "malloc") != NULL);
}

TEST(insecure_urls)
{
    /* https, or http to the loopback host only */
    static const opt_case secure[] = {
        { "http://localhost:9", SA_OK, NULL },
        { "http://127.0.0.1:9/", SA_OK, NULL },
        { "http://[::1]:9", SA_OK, NULL },
        { "https://example.com", SA_OK, NULL },
    };
    static const opt_case insecure[] = {
        { "http://127.0.0.1.example.com:80", SA_ERR_INSECURE, NULL },
        { "http://10.0.0.1:8080", SA_ERR_INSECURE, NULL },
        { "http://localhost@evil.example.com", SA_ERR_INSECURE, NULL },
    };
    sa_client_options o;
    char err[256];

    test_options(&o, "http://example.com");
    CHECK_EQ_INT(new_with(&o, err, sizeof err), SA_ERR_INSECURE);
    CHECK(strstr(err, "unencrypted") != NULL);
    CHECK(strstr(err, "allow_insecure_http") != NULL);
    check_option_cases(&o, &o.base_url, secure, N(secure));
    check_option_cases(&o, &o.base_url, insecure, N(insecure));
    /* allow_insecure_http: the last one is accepted */
    o.allow_insecure_http = 1;
    CHECK_EQ_INT(new_with(&o, err, sizeof err), SA_OK);
}

TEST(state_names)
{
    static const char *const names[] = {
        "validate", "queued", "file_create", "upload", "task_create",
        "poll_wait", "polling", "backoff", "fetching", "done", "failed",
        "cancelled"};
    int i;
    CHECK_EQ_INT(sizeof names / sizeof names[0], SA_JOB_STATE__LAST);
    for (i = 0; i < SA_JOB_STATE__LAST; i++)
        CHECK_STR(sa_job_state_name(i), names[i]);
    CHECK_STR(sa_job_state_name(-1), "?");
    CHECK_STR(sa_job_state_name(SA_JOB_STATE__LAST), "?");
}

/* ------------------------------------------------------------------ */
/* Misuse                                                              */
/* ------------------------------------------------------------------ */

TEST(null_handles)
{
    sa_client *c = new_client(NULL);
    sa_request r;
    sa_job *j = (sa_job *)1;

    REQUIRE(c != NULL);
    sa_client_free(NULL);
    sa_job_free(NULL);
    sa_result_free(NULL);
    sa_free(NULL);
    CHECK_STR(sa_client_errmsg(NULL), "");
    CHECK_EQ_INT(sa_client_submit(NULL, NULL, NULL), SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(sa_client_submit(c, NULL, &j), SA_ERR_INVALID_ARGUMENT);
    CHECK(j == NULL);
    sd_request(&r, SD_JPG);
    CHECK_EQ_INT(sa_client_submit(c, &r, NULL), SA_ERR_INVALID_ARGUMENT);
    CHECK(sa_client_errmsg(c)[0] != '\0');
    CHECK_EQ_INT(sa_client_step(NULL, 0), SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(sa_client_run(NULL, 0), SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(sa_client_active(NULL), 0);
    CHECK_EQ_INT(sa_client_timeout_ms(NULL), -1);
    CHECK_EQ_INT(sa_client_wakeup(NULL), SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(sa_client_set_event_hooks(NULL, NULL, NULL, NULL),
                 SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(sa_client_socket_action(NULL, 0, 0),
                 SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(sa_job_wait(NULL, 0), SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(sa_job_cancel(NULL), SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(sa_job_abandon(NULL), SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(sa_job_state(NULL), SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(sa_job_done(NULL), 0);
    CHECK_EQ_INT(sa_job_status(NULL), SA_ERR_INVALID_ARGUMENT);
    CHECK_STR(sa_job_errmsg(NULL), "");
    CHECK_EQ_INT(sa_job_http_status(NULL), 0);
    CHECK(sa_job_api_error_code(NULL) == NULL);
    CHECK(sa_job_engine_error(NULL) == NULL);
    CHECK(sa_job_task_id(NULL) == NULL);
    CHECK(sa_job_file_id(NULL) == NULL);
    CHECK(sa_job_request_id(NULL) == NULL);
    CHECK(sa_job_user_data(NULL) == NULL);
    CHECK_EQ_INT(sa_job_units(NULL), 0);
    CHECK_EQ_INT(sa_job_polls(NULL), 0);
    CHECK(sa_job_result(NULL) == NULL);
    sa_client_free(c);
}

static int dummy_sock(void *ud, int fd, int what)
{
    (void)ud; (void)fd; (void)what;
    return 0;
}

static int dummy_timer(void *ud, long ms)
{
    (void)ud; (void)ms;
    return 0;
}

TEST(hooks_misuse)
{
    sa_client *c = new_client(NULL);
    REQUIRE(c != NULL);
    CHECK_EQ_INT(sa_client_socket_action(c, SA_SOCKET_TIMEOUT, 0),
                 SA_ERR_INVALID_ARGUMENT);
    CHECK(strstr(sa_client_errmsg(c), "no event hooks") != NULL);
    CHECK_EQ_INT(sa_client_set_event_hooks(c, dummy_sock, NULL, NULL),
                 SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(sa_client_set_event_hooks(c, dummy_sock, dummy_timer, NULL),
                 SA_OK);
    CHECK_EQ_INT(sa_client_step(c, 0), SA_ERR_BUSY);
    CHECK_EQ_INT(sa_client_run(c, 0), SA_ERR_BUSY);
    CHECK(sa_client_socket_action(c, SA_SOCKET_TIMEOUT, 0) >= 0);
    CHECK_EQ_INT(sa_client_set_event_hooks(c, NULL, NULL, NULL), SA_OK);
    CHECK_EQ_INT(sa_client_step(c, 0), 0);
    sa_client_free(c);
}

/* ------------------------------------------------------------------ */
/* Validation                                                          */
/* ------------------------------------------------------------------ */

TEST(validation_actions)
{
    sa_client *c = new_client(NULL);
    static const char *const none[] = {NULL};
    static const char *const unknown[] = {"wrinkles"};
    static const char *const mixed[] = {"wrinkle", "hd_pore"};
    static const char *const dups[] = {"wrinkle", "pore", "wrinkle", "pore"};
    static const char *const all_sd[] = {
        "wrinkle", "pore", "texture", "acne", "oiliness", "radiance",
        "eye_bag", "age_spot", "dark_circle_v2", "droopy_upper_eyelid",
        "droopy_lower_eyelid", "firmness", "moisture", "redness",
        "tear_trough", "skin_type", "hd_wrinkle"};
    /* refused lists: the code and a part of the message */
    static const struct {
        const char *const *actions;
        size_t n;
        int code;
        const char *needle, *also;
    } bad[] = {
        { sd2, 0, SA_ERR_ACTION_COUNT, NULL, NULL },
        { NULL, 2, SA_ERR_INVALID_ARGUMENT, "actions is NULL", NULL },
        { none, 1, SA_ERR_UNKNOWN_ACTION, "actions[0] is NULL", NULL },
        { unknown, 1, SA_ERR_UNKNOWN_ACTION, "wrinkles",
          "did you mean 'wrinkle'" },
        { mixed, 2, SA_ERR_MIXED_TIERS, NULL, NULL },
        { all_sd, 17, SA_ERR_ACTION_COUNT, "at most 16", NULL },
    };
    /* accepted ones (duplicates are removed, and count once): the units */
    static const struct {
        const char *const *actions;
        size_t n;
        const char *file;
        int units;
    } good[] = {
        { dups, 4, SD_JPG, 9 },
        { all_sd, 16, SD_JPG, 16 },
        { hd1, 1, HD_JPG, 12 },
    };
    sa_request r;
    sa_job *j = NULL;
    size_t i;

    REQUIRE(c != NULL);
    for (i = 0; i < N(bad); i++) {
        sd_request(&r, SD_JPG);
        r.actions = bad[i].actions;
        r.n_actions = bad[i].n;
        EXPECT_INVALID(c, &r, bad[i].code, bad[i].needle);
        if (bad[i].also)
            CHECK(strstr(sa_client_errmsg(c), bad[i].also) != NULL);
        if (harness_cur_failed) fprintf(stderr, "  (case %zu)\n", i);
    }
    for (i = 0; i < N(good); i++) {
        sd_request(&r, good[i].file);
        r.actions = good[i].actions;
        r.n_actions = good[i].n;
        REQUIRE(sa_client_submit(c, &r, &j) == SA_OK);
        CHECK_EQ_INT(sa_job_units(j), good[i].units);
        if (i == 0) {
            CHECK_EQ_INT(sa_job_state(j), SA_JOB_FILE_CREATE);
            CHECK_EQ_INT(sa_job_status(j), SA_ERR_NOT_DONE);
            CHECK_EQ_INT(sa_job_done(j), 0);
        }
        sa_job_free(j);
    }
    sa_client_free(c);
}

TEST(validation_sources)
{
    sa_client *c = new_client(NULL);
    sa_request r;
    sa_job *j = NULL;
    static const char bytes[] = "not an image";

    REQUIRE(c != NULL);
    sd_request(&r, NULL);
    EXPECT_INVALID(c, &r, SA_ERR_SOURCE, "no image");
    r.file_path = SD_JPG;
    r.image_url = "https://example.com/a.jpg";
    EXPECT_INVALID(c, &r, SA_ERR_SOURCE, "file_path image_url");
    r.image_url = NULL;
    r.file_id = "abc";
    EXPECT_INVALID(c, &r, SA_ERR_SOURCE, "exactly one");
    r.file_path = NULL;
    r.file_id = "";
    EXPECT_INVALID(c, &r, SA_ERR_SOURCE, "file_id");
    r.file_id = "a b";
    EXPECT_INVALID(c, &r, SA_ERR_SOURCE, "file_id");
    r.file_id = NULL;
    r.image_url = "ftp://example.com/a.jpg";
    EXPECT_INVALID(c, &r, SA_ERR_SOURCE, "http://");
    r.image_url = "https://example.com/a b.jpg";
    EXPECT_INVALID(c, &r, SA_ERR_SOURCE, "percent-encode");
    r.image_url = NULL;
    r.buffer_len = 10;
    EXPECT_INVALID(c, &r, SA_ERR_SOURCE, "buffer is NULL");
    r.buffer = bytes;
    r.buffer_len = 0;
    EXPECT_INVALID(c, &r, SA_ERR_SOURCE, "buffer_len is 0");
    r.buffer_len = sizeof bytes;
    EXPECT_INVALID(c, &r, SA_ERR_IMAGE_FORMAT, "not a JPEG or PNG");

    /* the valid ones */
    sd_request(&r, NULL);
    r.image_url = "https://example.com/selfie.jpg?sig=abc";
    REQUIRE(sa_client_submit(c, &r, &j) == SA_OK);
    CHECK_EQ_INT(sa_job_state(j), SA_JOB_TASK_CREATE);
    sa_job_free(j);
    sd_request(&r, NULL);
    r.file_id = "SaGaqpDgKwFrVBgMpQMA3HY0LeqdT9/13W5TOD8/u/Ff+=";
    REQUIRE(sa_client_submit(c, &r, &j) == SA_OK);
    CHECK_EQ_INT(sa_job_state(j), SA_JOB_TASK_CREATE);
    sa_job_free(j);
    sa_client_free(c);
}

/* A file of `size` zero bytes (sparse) named name in dir: its submit is
 * refused with code and needle (EXPECT_INVALID); it is removed after. */
static void expect_file_invalid(sa_client *c, const char *dir,
                                const char *name, off_t size, int code,
                                const char *needle)
{
    char path[256];
    sa_request r;
    int fd;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    REQUIRE(fd >= 0);
    CHECK_EQ_INT(ftruncate(fd, size), 0);
    close(fd);
    sd_request(&r, path);
    EXPECT_INVALID(c, &r, code, needle);
    unlink(path);
}

TEST(validation_files)
{
    sa_client *c = new_client(NULL);
    sa_request r;
    sa_job *j = NULL;
    char dir[] = "/tmp/sa_test_client_XXXXXX", path[256];
    int fd;

    REQUIRE(c != NULL);
    REQUIRE(mkdtemp(dir) != NULL);

    sd_request(&r, "/nonexistent/dir/selfie.jpg");
    EXPECT_INVALID(c, &r, SA_ERR_FILE, "/nonexistent/dir/selfie.jpg");
    CHECK(strstr(sa_client_errmsg(c), "No such file or directory") != NULL);
    sd_request(&r, dir);
    EXPECT_INVALID(c, &r, SA_ERR_FILE, "not a regular file");
    sd_request(&r, "");
    EXPECT_INVALID(c, &r, SA_ERR_FILE, "empty");

    /* a FIFO with no writer: refused at once, never read (no blocking) */
    snprintf(path, sizeof path, "%s/pipe.jpg", dir);
    if (mkfifo(path, 0600) == 0) {
        sd_request(&r, path);
        EXPECT_INVALID(c, &r, SA_ERR_FILE, "not a regular file");
        unlink(path);
    }

    /* 10,000,000 bytes (sparse): too large, whatever the content */
    expect_file_invalid(c, dir, "big.jpg", SA_MAX_FILE_SIZE,
                        SA_ERR_IMAGE_TOO_LARGE, "10,000,000");
    expect_file_invalid(c, dir, "empty.png", 0, SA_ERR_IMAGE_FORMAT,
                        "not a JPEG or PNG");

    if (geteuid() != 0) {  /* root reads anything */
        snprintf(path, sizeof path, "%s/locked.jpg", dir);
        fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0000);
        REQUIRE(fd >= 0);
        close(fd);
        sd_request(&r, path);
        EXPECT_INVALID(c, &r, SA_ERR_FILE, "Permission denied");
        unlink(path);
    }
    rmdir(dir);

    sd_request(&r, NOT_IMAGE);
    EXPECT_INVALID(c, &r, SA_ERR_IMAGE_FORMAT, "content, not the name");
    sd_request(&r, SMALL_JPG);
    EXPECT_INVALID(c, &r, SA_ERR_IMAGE_TOO_SMALL, "300x400 px");
    CHECK(strstr(sa_client_errmsg(c), "480") != NULL);
    sd_request(&r, SD_JPG);
    r.actions = hd1;
    r.n_actions = 1;
    EXPECT_INVALID(c, &r, SA_ERR_IMAGE_TOO_SMALL, "600x800 px");
    CHECK(strstr(sa_client_errmsg(c), "1080") != NULL);

    sd_request(&r, PNG);
    REQUIRE(sa_client_submit(c, &r, &j) == SA_OK);
    sa_job_free(j);
    sd_request(&r, SD_JPG);
    r.file_name = "line\nbreak.jpg";
    EXPECT_INVALID(c, &r, SA_ERR_BAD_OPTION, "file_name");
    sa_client_free(c);
}

TEST(validation_buffers)
{
    sa_client *c = new_client(NULL);
    sa_request r;
    sa_job *j = NULL;
    size_t len = 0;
    char *img = harness_slurp(SMALL_JPG, &len), *big;

    REQUIRE(c != NULL && img != NULL);
    sd_request(&r, NULL);
    r.buffer = img;
    r.buffer_len = len;
    EXPECT_INVALID(c, &r, SA_ERR_IMAGE_TOO_SMALL, "the image buffer is 300x400");
    free(img);
    img = harness_slurp(SD_JPG, &len);
    REQUIRE(img != NULL);
    r.buffer = img;
    r.buffer_len = len;
    REQUIRE(sa_client_submit(c, &r, &j) == SA_OK);
    sa_job_free(j);
    big = calloc(1, SA_MAX_FILE_SIZE);
    REQUIRE(big != NULL);
    memcpy(big, img, len);
    r.buffer = big;
    r.buffer_len = SA_MAX_FILE_SIZE;
    EXPECT_INVALID(c, &r, SA_ERR_IMAGE_TOO_LARGE, "10,000,000");
    free(big);
    free(img);
    sa_client_free(c);
}

TEST(validation_options)
{
    sa_client *c = new_client(NULL);
    sa_request r;
    sa_job *j = NULL;

    REQUIRE(c != NULL);
    sd_request(&r, SD_JPG);
    r.format = 3;
    EXPECT_INVALID(c, &r, SA_ERR_BAD_OPTION, "format");
    sd_request(&r, SD_JPG);
    r.api_version = 19;
    EXPECT_INVALID(c, &r, SA_ERR_BAD_OPTION, "api_version");
    sd_request(&r, SD_JPG);
    r.pf_camera_kit = 2;
    EXPECT_INVALID(c, &r, SA_ERR_BAD_OPTION, "pf_camera_kit");
    sd_request(&r, SD_JPG);
    r.pf_camera_kit = 1;
    r.api_version = SA_API_V2_0;
    EXPECT_INVALID(c, &r, SA_ERR_BAD_OPTION, "v2.1 option");
    r.api_version = SA_API_V2_1;
    REQUIRE(sa_client_submit(c, &r, &j) == SA_OK);
    sa_job_free(j);
    sd_request(&r, SD_JPG);
    r.mask_overlay = 5;
    EXPECT_INVALID(c, &r, SA_ERR_BAD_OPTION, "mask_overlay");
    sd_request(&r, SD_JPG);
    r.deadline_ms = -5;
    EXPECT_INVALID(c, &r, SA_ERR_BAD_OPTION, "deadline_ms");

    sd_request(&r, SD_JPG);
    r.miniserver_args_json = "{not json";
    EXPECT_INVALID(c, &r, SA_ERR_BAD_OPTION, "not valid JSON");
    r.miniserver_args_json = "[true]";
    EXPECT_INVALID(c, &r, SA_ERR_BAD_OPTION, "JSON object");
    r.miniserver_args_json = "{\"enable_mask_overlay\": \"yes\"}";
    EXPECT_INVALID(c, &r, SA_ERR_BAD_OPTION, "enable_mask_overlay");
    r.miniserver_args_json = "{\"enable_mask_overlai\": true}";
    EXPECT_INVALID(c, &r, SA_ERR_BAD_OPTION, "enable_mask_overlai");
    r.miniserver_args_json = "{\"enable_mask_overlay\": true}";
    r.mask_overlay = 1;
    EXPECT_INVALID(c, &r, SA_ERR_BAD_OPTION, "set it once");
    r.mask_overlay = -1;
    REQUIRE(sa_client_submit(c, &r, &j) == SA_OK);
    sa_job_free(j);
    r.miniserver_args_json = "{\"enable_dark_background_hd_pore\": true, "
                             "\"color_dark_background_hd_pore\": \"3D3D3D\", "
                             "\"opacity_dark_background_hd_pore\": 0.4}";
    REQUIRE(sa_client_submit(c, &r, &j) == SA_OK);
    sa_job_free(j);

    /* a client on v2.0 refuses pf_camera_kit too */
    sa_client_free(c);
    {
        sa_client_options o;
        char err[128];
        test_options(&o, "http://127.0.0.1:1");
        o.api_version = SA_API_V2_0;
        REQUIRE(sa_client_new(&c, &o, err, sizeof err) == SA_OK);
        sd_request(&r, SD_JPG);
        r.pf_camera_kit = 0;
        EXPECT_INVALID(c, &r, SA_ERR_BAD_OPTION, "v2.1 option");
        sa_client_free(c);
    }
}

/* ------------------------------------------------------------------ */
/* Jobs against loopback ports without an API                          */
/* ------------------------------------------------------------------ */

typedef struct cbrec {
    int calls;
    int terminal;
    int states[64];
    int abort_at;        /* return non-zero when entering this state */
    int free_in_terminal;
    int free_client_in_terminal;
    sa_client *client;
    int busy_seen;
} cbrec;

static int record_cb(sa_job *job, int state, void *ud)
{
    cbrec *r = ud;
    if (r->calls < 64) r->states[r->calls] = state;
    r->calls++;
    if (sa_job_wait(job, 0) == SA_ERR_BUSY) r->busy_seen++;
    if (r->client && sa_client_step(r->client, 0) == SA_ERR_BUSY)
        r->busy_seen++;
    if (state >= SA_JOB_DONE) {
        r->terminal++;
        if (r->free_in_terminal) sa_job_free(job);
        if (r->free_client_in_terminal) sa_client_free(r->client);
        return 0;
    }
    return state == r->abort_at;
}

TEST(unreachable_fails_with_transport_after_retries)
{
    logcap cap;
    sa_client *c;
    sa_request r;
    sa_job *j = NULL;
    cbrec rec;
    int64_t t0;

    memset(&cap, 0, sizeof cap);
    memset(&rec, 0, sizeof rec);
    rec.abort_at = -1;
    c = new_client(&cap);
    REQUIRE(c != NULL);
    rec.client = c;
    sd_request(&r, SD_JPG);
    r.callback = record_cb;
    r.user_data = &rec;
    REQUIRE(sa_client_submit(c, &r, &j) == SA_OK);
    CHECK(sa_job_user_data(j) == &rec);
    CHECK_EQ_INT(sa_client_active(c), 1);
    t0 = harness_now_ms();
    CHECK_EQ_INT(sa_job_wait(j, 10000), SA_OK);
    CHECK(harness_now_ms() - t0 < 5000);
    CHECK_EQ_INT(sa_job_state(j), SA_JOB_FAILED);
    CHECK_EQ_INT(sa_job_status(j), SA_ERR_TRANSPORT);
    CHECK(strstr(sa_job_errmsg(j), "gave up after 3 attempts") != NULL);
    CHECK(sa_job_task_id(j) == NULL);
    CHECK_EQ_INT(sa_job_done(j), 1);
    CHECK_EQ_INT(sa_client_active(c), 0);
    CHECK_EQ_INT(sa_client_timeout_ms(c), -1);
    CHECK(sa_job_result(j) == NULL);
    CHECK_EQ_INT(rec.terminal, 1);
    CHECK_EQ_INT(rec.states[rec.calls - 1], SA_JOB_FAILED);
    CHECK(rec.calls >= 3);  /* FILE_CREATE -> BACKOFF ... -> FAILED */
    /* busy inside every callback, except a wait on the ended job */
    CHECK_EQ_INT(rec.busy_seen, 2 * rec.calls - 1);
    CHECK(cap.lines > 0);
    CHECK_EQ_INT(cap.with_key, 0);
    /* the job stays readable and waitable after it ended */
    CHECK_EQ_INT(sa_job_wait(j, 0), SA_OK);
    CHECK_EQ_INT(sa_job_cancel(j), SA_OK);
    CHECK_EQ_INT(sa_job_status(j), SA_ERR_TRANSPORT);
    sa_job_free(j);
    sa_client_free(c);
}

TEST(unreachable_task_create_is_retried_not_ambiguous)
{
    sa_client *c = new_client(NULL);
    sa_request r;
    sa_job *j = NULL;

    REQUIRE(c != NULL);
    sd_request(&r, NULL);
    r.image_url = "https://example.com/selfie.jpg";
    REQUIRE(submit_and_wait(c, &r, &j, 10000) == SA_OK);
    /* connection refused: the create never reached a server */
    CHECK_EQ_INT(sa_job_status(j), SA_ERR_TRANSPORT);
    sa_job_free(j);
    sa_client_free(c);
}

TEST(trailing_slashes_are_stripped)
{
    logcap cap;
    char base[64];
    sa_client *c;
    sa_request r;
    sa_job *j = NULL;

    memset(&cap, 0, sizeof cap);
    snprintf(base, sizeof base, "http://127.0.0.1:%d///", closed_port());
    c = new_client_at(base, &cap);
    REQUIRE(c != NULL);
    sd_request(&r, SD_JPG);
    REQUIRE(sa_client_submit(c, &r, &j) == SA_OK);
    while (cap.lines < 2 && sa_client_step(c, 10) > 0) {}
    CHECK(strstr(cap.last, "/s2s/v2.1/file/skin-analysis") != NULL);
    CHECK(strstr(cap.last, "//s2s") == NULL);
    sa_job_free(j);
    sa_client_free(c);
}

TEST(step_zero_returns_at_once)
{
    sa_client *c;
    sa_request r;
    sa_job *jobs[8];
    char base[64];
    int i, n, rounds = 0;
    int64_t worst = 0, t0, t;

    /* "localhost" goes through the (threaded) resolver */
    snprintf(base, sizeof base, "http://localhost:%d", closed_port());
    c = new_client_at(base, NULL);
    REQUIRE(c != NULL);
    sd_request(&r, SD_JPG);
    for (i = 0; i < 8; i++) REQUIRE(sa_client_submit(c, &r, &jobs[i]) == SA_OK);
    t0 = harness_now_ms();
    do {
        int64_t s = harness_now_ms();
        n = sa_client_step(c, 0);
        t = harness_now_ms() - s;
        if (t > worst) worst = t;
        rounds++;
        usleep(1000);
    } while (n > 0 && harness_now_ms() - t0 < 10000);
    CHECK_EQ_INT(n, 0);
    /* generous: a wall-clock bound on a shared CI machine; a step that
     * blocked would wait for a socket or a timer (hundreds of ms) */
    CHECK(worst <= 150);
    fprintf(stderr, "  step(0): %d calls, worst %lld ms\n", rounds,
            (long long)worst);
    for (i = 0; i < 8; i++) {
        CHECK_EQ_INT(sa_job_status(jobs[i]), SA_ERR_TRANSPORT);
        sa_job_free(jobs[i]);
    }
    sa_client_free(c);
}

TEST(callback_abort_cancels_with_callback_status)
{
    sa_client *c = new_client(NULL);
    sa_request r;
    sa_job *j = NULL;
    cbrec rec;

    REQUIRE(c != NULL);
    memset(&rec, 0, sizeof rec);
    rec.abort_at = SA_JOB_BACKOFF;
    sd_request(&r, SD_JPG);
    r.callback = record_cb;
    r.user_data = &rec;
    REQUIRE(submit_and_wait(c, &r, &j, 10000) == SA_OK);
    CHECK_EQ_INT(sa_job_state(j), SA_JOB_CANCELLED);
    CHECK_EQ_INT(sa_job_status(j), SA_ERR_CALLBACK);
    CHECK(strstr(sa_job_errmsg(j), "callback returned non-zero") != NULL);
    CHECK_EQ_INT(rec.terminal, 1);
    CHECK_EQ_INT(rec.states[rec.calls - 1], SA_JOB_CANCELLED);
    CHECK_EQ_INT(sa_client_active(c), 0);
    sa_job_free(j);
    sa_client_free(c);
}

TEST(free_inside_callbacks_is_deferred)
{
    sa_client *c = new_client(NULL);
    sa_request r;
    sa_job *j = NULL;
    cbrec rec;
    int i;

    REQUIRE(c != NULL);
    memset(&rec, 0, sizeof rec);
    rec.abort_at = -1;
    rec.free_in_terminal = 1;
    sd_request(&r, SD_JPG);
    r.callback = record_cb;
    r.user_data = &rec;
    REQUIRE(sa_client_submit(c, &r, &j) == SA_OK);
    for (i = 0; i < 1000 && rec.terminal == 0; i++) sa_client_step(c, 10);
    CHECK_EQ_INT(rec.terminal, 1);
    CHECK_EQ_INT(sa_client_active(c), 0);

    /* the client freed from a terminal callback: gone after the step */
    memset(&rec, 0, sizeof rec);
    rec.abort_at = -1;
    rec.client = c;
    rec.free_in_terminal = 1;
    rec.free_client_in_terminal = 1;
    REQUIRE(sa_client_submit(c, &r, &j) == SA_OK);
    for (i = 0; i < 1000 && rec.terminal == 0; i++) sa_client_step(c, 10);
    CHECK_EQ_INT(rec.terminal, 1);
    /* c is freed now; ASan/valgrind check nothing leaks or is reused */
}

TEST(cancel_and_queue)
{
    sa_client_options o;
    sa_client *c = NULL;
    sa_request r;
    sa_job *a, *b, *q;
    cbrec ra, rb, rq;
    char base[64], err[128];

    snprintf(base, sizeof base, "http://127.0.0.1:%d", closed_port());
    test_options(&o, base);
    o.max_jobs = 1;
    o.max_retries = 50;
    o.backoff_initial_ms = 50;
    o.backoff_max_ms = 50;
    REQUIRE(sa_client_new(&c, &o, err, sizeof err) == SA_OK);
    memset(&ra, 0, sizeof ra);
    memset(&rb, 0, sizeof rb);
    memset(&rq, 0, sizeof rq);
    ra.abort_at = rb.abort_at = rq.abort_at = -1;
    sd_request(&r, SD_JPG);
    r.callback = record_cb;
    r.user_data = &ra;
    REQUIRE(sa_client_submit(c, &r, &a) == SA_OK);
    r.user_data = &rb;
    REQUIRE(sa_client_submit(c, &r, &b) == SA_OK);
    r.user_data = &rq;
    REQUIRE(sa_client_submit(c, &r, &q) == SA_OK);
    CHECK_EQ_INT(sa_job_state(a), SA_JOB_FILE_CREATE);
    CHECK_EQ_INT(sa_job_state(b), SA_JOB_QUEUED);
    CHECK_EQ_INT(sa_job_state(q), SA_JOB_QUEUED);
    CHECK_EQ_INT(sa_client_active(c), 3);
    CHECK_EQ_INT(sa_client_timeout_ms(c), 0);

    /* a queued job is cancelled at once, with one terminal callback */
    CHECK_EQ_INT(sa_job_cancel(q), SA_OK);
    CHECK_EQ_INT(sa_job_state(q), SA_JOB_CANCELLED);
    CHECK_EQ_INT(sa_job_status(q), SA_ERR_CANCELLED);
    CHECK_EQ_INT(rq.terminal, 1);
    CHECK_EQ_INT(rq.calls, 1);
    CHECK_EQ_INT(sa_job_cancel(q), SA_OK);  /* no effect */
    CHECK_EQ_INT(rq.terminal, 1);

    /* the running one: cancelled before any task, so it just ends */
    CHECK_EQ_INT(sa_client_step(c, 20), 2);
    CHECK_EQ_INT(sa_job_cancel(a), SA_OK);
    CHECK_EQ_INT(sa_job_state(a), SA_JOB_CANCELLED);
    CHECK_EQ_INT(ra.terminal, 1);
    CHECK(strstr(sa_job_errmsg(a), "nothing was billed") != NULL);
    /* b gets the slot at the next step */
    sa_client_step(c, 0);
    CHECK(sa_job_state(b) != SA_JOB_QUEUED);
    CHECK(rb.calls >= 1 && rb.states[0] == SA_JOB_FILE_CREATE);
    CHECK_EQ_INT(sa_job_abandon(b), SA_OK);
    CHECK_EQ_INT(sa_job_status(b), SA_ERR_CANCELLED);
    CHECK_EQ_INT(rb.terminal, 1);
    CHECK_EQ_INT(sa_client_active(c), 0);
    sa_job_free(a);
    sa_job_free(b);
    sa_job_free(q);
    sa_client_free(c);
}

/* sa_client_resume: the task id (by the one id rule, sa__proto_id_ok) and
 * the options are checked before anything is sent; a valid one is a job
 * in POLLING with its task id, or QUEUED under max_jobs (keeping its id),
 * with no units. */
TEST(resume_validation_and_queue)
{
    static const char *const bad_ids[] = {
        "", "a b", "a?b", "a#b", "a%2Fb", "a\nb", "a\rb", "a\x7f",
        ".", "..", "...", "caf\xc3\xa9", "a\"b", "<a>", "a\\b",
        /* path-segment characters no API id holds */
        "a!b", "a$b", "a&b", "a'b", "a(b)", "a*b", "a,b", "a;b", "a:b",
        "a@b" };
    sa_client_options o;
    sa_resume_options ro;
    sa_client *c = NULL;
    sa_job *j = (sa_job *)1, *q = NULL;
    char base[64], err[128], longid[4098];
    size_t i;
    cbrec rq;

    snprintf(base, sizeof base, "http://127.0.0.1:%d", closed_port());
    test_options(&o, base);
    o.max_jobs = 1;
    REQUIRE(sa_client_new(&c, &o, err, sizeof err) == SA_OK);

    CHECK_EQ_INT(sa_client_resume(NULL, "abc", NULL, &j),
                 SA_ERR_INVALID_ARGUMENT);
    CHECK(j == NULL);
    CHECK_EQ_INT(sa_client_resume(c, "abc", NULL, NULL),
                 SA_ERR_INVALID_ARGUMENT);
    j = (sa_job *)1;
    CHECK_EQ_INT(sa_client_resume(c, NULL, NULL, &j), SA_ERR_SOURCE);
    CHECK(j == NULL);
    for (i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
        int rc = sa_client_resume(c, bad_ids[i], NULL, &j);
        if (rc != SA_ERR_SOURCE || j != NULL)
            HARNESS_FAIL("id %zu: %d (%s)", i, rc, sa_client_errmsg(c));
        CHECK(strstr(sa_client_errmsg(c), "task_id") != NULL);
    }
    memset(longid, 'A', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    CHECK_EQ_INT(sa_client_resume(c, longid, NULL, &j), SA_ERR_SOURCE);
    CHECK(strstr(sa_client_errmsg(c), "at most 4096") != NULL);
    longid[4096] = '\0';  /* the longest id an answer may hold */
    REQUIRE(sa_client_resume(c, longid, NULL, &j) == SA_OK);
    CHECK_EQ_INT(sa_job_abandon(j), SA_OK);
    sa_job_free(j);
    j = NULL;

    memset(&ro, 0x5A, sizeof ro);
    sa_resume_options_init(&ro);
    CHECK_EQ_INT(ro.api_version, SA_API_DEFAULT);
    CHECK_EQ_INT(ro.deadline_ms, 0);
    CHECK(ro.callback == NULL && ro.user_data == NULL);
    sa_resume_options_init_sized(NULL, sizeof(sa_resume_options));
    ro.api_version = 22;
    CHECK_EQ_INT(sa_client_resume(c, "abc", &ro, &j), SA_ERR_BAD_OPTION);
    ro.api_version = SA_API_V2_0;
    ro.deadline_ms = -1;
    CHECK_EQ_INT(sa_client_resume(c, "abc", &ro, &j), SA_ERR_BAD_OPTION);
    CHECK(j == NULL);
    CHECK_EQ_INT(sa_client_active(c), 0);  /* nothing started */

    /* valid: every character an id may hold ('/' of base64 too) */
    REQUIRE(sa_client_resume(c, "Sa/+=-_.~09zZ", NULL, &j) == SA_OK);
    CHECK_EQ_INT(sa_job_state(j), SA_JOB_POLLING);
    CHECK_STR(sa_job_task_id(j), "Sa/+=-_.~09zZ");
    CHECK_EQ_INT(sa_job_units(j), 0);
    CHECK(sa_job_file_id(j) == NULL);
    CHECK_EQ_INT(sa_job_status(j), SA_ERR_NOT_DONE);

    /* past max_jobs: queued, its id known, cancelled at once */
    memset(&rq, 0, sizeof rq);
    rq.abort_at = -1;
    sa_resume_options_init(&ro);
    ro.callback = record_cb;
    ro.user_data = &rq;
    REQUIRE(sa_client_resume(c, "queued-task", &ro, &q) == SA_OK);
    CHECK_EQ_INT(sa_job_state(q), SA_JOB_QUEUED);
    CHECK_STR(sa_job_task_id(q), "queued-task");
    CHECK(sa_job_user_data(q) == &rq);
    CHECK_EQ_INT(sa_job_cancel(q), SA_OK);
    CHECK_EQ_INT(sa_job_status(q), SA_ERR_CANCELLED);
    CHECK_STR(sa_job_task_id(q), "queued-task");
    CHECK_EQ_INT(rq.terminal, 1);
    sa_job_free(q);
    /* the running one: a task exists, so abandon is what stops it */
    CHECK_EQ_INT(sa_job_abandon(j), SA_OK);
    CHECK_EQ_INT(sa_job_status(j), SA_ERR_CANCELLED);
    CHECK(strstr(sa_job_errmsg(j), "no longer polled") != NULL);
    sa_job_free(j);
    CHECK_EQ_INT(sa_client_active(c), 0);
    sa_client_free(c);
}

TEST(client_free_detaches_jobs)
{
    sa_client *c = new_client(NULL);
    sa_request r;
    sa_job *a, *b;
    cbrec ra;

    REQUIRE(c != NULL);
    memset(&ra, 0, sizeof ra);
    ra.abort_at = -1;
    sd_request(&r, SD_JPG);
    r.callback = record_cb;
    r.user_data = &ra;
    REQUIRE(sa_client_submit(c, &r, &a) == SA_OK);
    r.callback = NULL;
    REQUIRE(sa_client_submit(c, &r, &b) == SA_OK);
    sa_client_step(c, 0);
    sa_client_free(c);
    CHECK_EQ_INT(ra.terminal, 1);
    CHECK_EQ_INT(sa_job_done(a), 1);
    CHECK_EQ_INT(sa_job_state(a), SA_JOB_CANCELLED);
    CHECK_EQ_INT(sa_job_status(b), SA_ERR_CANCELLED);
    CHECK(strstr(sa_job_errmsg(b), "client was freed") != NULL);
    CHECK_EQ_INT(sa_job_wait(b, 100), SA_OK);
    CHECK_EQ_INT(sa_job_cancel(b), SA_OK);
    sa_job_free(a);
    sa_job_free(b);
}

static int interrupt_after(void *ud)
{
    int *n = ud;
    return --*n <= 0;
}

static void *wake_later(void *ud)
{
    usleep(100000);
    sa_client_wakeup(ud);
    return NULL;
}

TEST(wait_timeout_interrupt_and_wakeup)
{
    sa_client_options o;
    sa_client *c = NULL;
    sa_request r;
    sa_job *j = NULL;
    char base[64], err[128];
    int port = 0, s = silent_listener(&port), budget = 3;
    int64_t t0, took;
    pthread_t th;

    REQUIRE(s >= 0);
    snprintf(base, sizeof base, "http://127.0.0.1:%d", port);
    test_options(&o, base);
    o.request_timeout_ms = 60000;
    REQUIRE(sa_client_new(&c, &o, err, sizeof err) == SA_OK);
    sd_request(&r, SD_JPG);
    REQUIRE(sa_client_submit(c, &r, &j) == SA_OK);

    t0 = harness_now_ms();
    CHECK_EQ_INT(sa_job_wait(j, 120), SA_ERR_WAIT_TIMEOUT);
    took = harness_now_ms() - t0;
    CHECK(took >= 110 && took < 400);
    CHECK_EQ_INT(sa_job_done(j), 0);
    CHECK_EQ_INT(sa_client_run(c, 30), SA_ERR_WAIT_TIMEOUT);

    /* no interrupt hook: sa_client_wakeup from another thread returns */
    t0 = harness_now_ms();
    REQUIRE(pthread_create(&th, NULL, wake_later, c) == 0);
    CHECK_EQ_INT(sa_job_wait(j, 5000), SA_ERR_INTERRUPTED);
    took = harness_now_ms() - t0;
    pthread_join(th, NULL);
    CHECK(took >= 90 && took < 1000);
    CHECK_EQ_INT(sa_job_done(j), 0);
    sa_job_free(j);
    sa_client_free(c);

    /* with an interrupt hook: it decides, checked between slices */
    o.interrupt = interrupt_after;
    o.interrupt_user_data = &budget;
    REQUIRE(sa_client_new(&c, &o, err, sizeof err) == SA_OK);
    REQUIRE(sa_client_submit(c, &r, &j) == SA_OK);
    t0 = harness_now_ms();
    CHECK_EQ_INT(sa_job_wait(j, -1), SA_ERR_INTERRUPTED);
    took = harness_now_ms() - t0;
    CHECK(took >= 100 && took < 1000);
    CHECK_EQ_INT(budget, 0);
    CHECK_EQ_INT(sa_job_done(j), 0);
    CHECK_EQ_INT(sa_client_active(c), 1);
    /* the job still runs and is waited on again */
    CHECK_EQ_INT(sa_job_cancel(j), SA_OK);
    CHECK_EQ_INT(sa_job_wait(j, 0), SA_OK);
    sa_job_free(j);
    sa_client_free(c);
    close(s);
}

/* ------------------------------------------------------------------ */
/* Allocator hooks                                                     */
/* ------------------------------------------------------------------ */

/* One client with one queued and one started job, freed again; returns
 * the first failing status or SA_OK. */
static int alloc_round(fs_mem *m)
{
    sa_client_options o;
    sa_client *c = NULL;
    sa_request r;
    sa_job *a = NULL, *b = NULL;
    char err[128];
    int rc;

    test_options(&o, "http://127.0.0.1:1");
    o.mem = &m->mem;
    o.max_jobs = 1;
    o.rate_limit = 1;
    rc = sa_client_new(&c, &o, err, sizeof err);
    if (rc != SA_OK) return rc;
    sd_request(&r, SD_JPG);
    r.miniserver_args_json = "{\"enable_mask_overlay\": false}";
    rc = sa_client_submit(c, &r, &a);
    if (rc == SA_OK) rc = sa_client_submit(c, &r, &b);
    if (rc == SA_OK) {
        (void)sa_job_errmsg(a);
        (void)sa_job_task_id(a);
        sa_client_step(c, 0);
    }
    sa_job_free(b);
    sa_job_free(a);
    sa_client_free(c);
    return rc;
}

TEST(allocator_hooks_and_failmalloc)
{
    fs_mem m;
    long n, total;
    int rc;

    fs_mem_init(&m, 0, 0);
    CHECK_EQ_INT(alloc_round(&m), SA_OK);
    CHECK(m.calls > 0);
    CHECK_EQ_INT(m.live, 0);
    total = m.calls;
    for (n = 1; n <= total + 5; n++) {
        fs_mem_init(&m, n, 0);
        rc = alloc_round(&m);
        if (rc != SA_OK && rc != SA_ERR_NOMEM)
            HARNESS_FAIL("allocation %ld failing gave %d", n, rc);
        if (m.live != 0)
            HARNESS_FAIL("allocation %ld failing leaked %ld blocks", n, m.live);
    }
}

int main(void)
{
    RUN(version);
    RUN(global_init_required_and_nesting);
    RUN(options_defaults);
    RUN(request_defaults);
    RUN(client_new_errors);
    RUN(insecure_urls);
    RUN(state_names);
    RUN(null_handles);
    RUN(hooks_misuse);
    RUN(validation_actions);
    RUN(validation_sources);
    RUN(validation_files);
    RUN(validation_buffers);
    RUN(validation_options);
    RUN(unreachable_fails_with_transport_after_retries);
    RUN(unreachable_task_create_is_retried_not_ambiguous);
    RUN(trailing_slashes_are_stripped);
    RUN(step_zero_returns_at_once);
    RUN(callback_abort_cancels_with_callback_status);
    RUN(free_inside_callbacks_is_deferred);
    RUN(cancel_and_queue);
    RUN(resume_validation_and_queue);
    RUN(client_free_detaches_jobs);
    RUN(wait_timeout_interrupt_and_wakeup);
    RUN(allocator_hooks_and_failmalloc);
    sa_global_cleanup();
    return harness_report();
}
