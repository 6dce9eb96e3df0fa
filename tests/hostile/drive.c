/*
 * drive.c - one analysis through the C library, for the hostile-server
 * suite (tests/hostile/test_hostile.py).
 *
 *   YOUCAM_API_KEY=... hostile_drive BASE_URL [name=value ...]
 *
 * Options (seconds for times): image, actions (comma list), format
 * (json|zip), version (2.0|2.1), timeout (per API request),
 * connect_timeout, upload_timeout, poll_interval, max_poll_interval,
 * deadline, backoff_initial, backoff_max, max_retries, wait (how long to
 * wait for the job), masks (an existing folder: sa_client_fetch_masks into
 * it).
 *
 * Every log line of the library goes to stderr (debug level); one JSON line
 * goes to stdout: the outcome ("ok" or sa_status_name), sa_job_errmsg, the
 * status code, the job's details (HTTP status, API error code, engine
 * error, task and file ids, x-request-id, polls), the scores and the mask
 * files.
 */
#include <skinanalysis.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_ACTIONS 16

static void on_log(void *user_data, int level, const char *message)
{
    static const char *const names[] = {"DEBUG", "INFO", "WARNING", "ERROR"};
    int i = level >= SA_LOG_ERROR     ? 3
            : level >= SA_LOG_WARNING ? 2
            : level >= SA_LOG_INFO    ? 1
                                      : 0;
    (void)user_data;
    fprintf(stderr, "%s skinanalysis: %s\n", names[i], message);
}

/* JSON string (or null): control characters and bytes >= 0x80 as \u00XX
 * so that the line is ASCII whatever the library hands out. */
static void jstr(const char *s)
{
    const unsigned char *p;
    if (!s) {
        fputs("null", stdout);
        return;
    }
    putchar('"');
    for (p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static void jkey(const char *k, int first)
{
    if (!first) putchar(',');
    jstr(k);
    putchar(':');
}

/* ,"k":v with v a JSON string (or null), and ,"k":n */
static void jfield(const char *k, const char *v)
{
    jkey(k, 0);
    jstr(v);
}

static void jfield_int(const char *k, int n)
{
    jkey(k, 0);
    printf("%d", n);
}

static void jnum(double v)
{
    if (isnan(v))
        fputs("null", stdout);
    else
        printf("%.17g", v);
}

static const char *opt(int argc, char **argv, const char *name)
{
    size_t n = strlen(name);
    int i;
    for (i = 2; i < argc; i++)
        if (strncmp(argv[i], name, n) == 0 && argv[i][n] == '=')
            return argv[i] + n + 1;
    return NULL;
}

static long opt_ms(int argc, char **argv, const char *name, long dflt)
{
    const char *v = opt(argc, argv, name);
    return v ? (long)(atof(v) * 1000.0 + 0.5) : dflt;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void print_job(const sa_job *job)
{
    jfield("errmsg", sa_job_errmsg(job));
    jfield_int("http_status", sa_job_http_status(job));
    jfield("api_code", sa_job_api_error_code(job));
    jfield("engine_error", sa_job_engine_error(job));
    jfield("task_id", sa_job_task_id(job));
    jfield("file_id", sa_job_file_id(job));
    jfield("request_id", sa_job_request_id(job));
    jfield_int("polls", sa_job_polls(job));
    jfield("state", sa_job_state_name(sa_job_state(job)));
}

static void print_result(const sa_result *r)
{
    size_t i, j;
    jkey("scores", 0);
    putchar('[');
    for (i = 0; i < sa_result_count(r); i++) {
        const sa_score *s = sa_result_score(r, i);
        if (i) putchar(',');
        putchar('{');
        jkey("concern", 1);
        jstr(s->concern);
        jfield("region", s->region);
        jfield("skin_type", s->skin_type);
        jkey("ui_score", 0);
        jnum(s->ui_score);
        jkey("mask_urls", 0);
        putchar('[');
        for (j = 0; j < s->n_mask_urls; j++) {
            if (j) putchar(',');
            jstr(s->mask_urls[j]);
        }
        fputs("]}", stdout);
    }
    putchar(']');
    jfield("result_task_id", sa_result_task_id(r));
    jfield("result_json", sa_result_json(r));
    jfield("resize_image_url", sa_result_resize_image_url(r));
}

/* "ok", "stage", "outcome" ("ok" or sa_status_name) and "status" of a
 * stage (client, submit, analyze) that ended with st. */
static void print_outcome(const char *stage, int st)
{
    jkey("ok", 0);
    fputs(st == SA_OK ? "true" : "false", stdout);
    jfield("stage", stage);
    jfield("outcome", st == SA_OK ? "ok" : sa_status_name(st));
    jfield_int("status", st);
}

int main(int argc, char **argv)
{
    sa_client_options o;
    sa_request req;
    sa_client *client = NULL;
    sa_job *job = NULL, *fetch = NULL;
    char err[512] = "";
    char actions_buf[512];
    const char *actions[MAX_ACTIONS];
    size_t n_actions = 0;
    const char *v, *masks;
    char *tok, *save = NULL;
    double t0 = now_s();
    long wait_ms;
    int rc, st;

    if (argc < 2) {
        fprintf(stderr, "usage: hostile_drive BASE_URL [name=value ...]\n");
        return 2;
    }
    if (sa_global_init() != SA_OK) {
        fprintf(stderr, "hostile_drive: sa_global_init failed\n");
        return 1;
    }
    sa_client_options_init(&o);
    o.api_key = getenv("YOUCAM_API_KEY");
    o.base_url = argv[1];
    o.log = on_log;
    o.log_level = SA_LOG_DEBUG;
    v = opt(argc, argv, "version");
    if (v) o.api_version = strcmp(v, "2.0") == 0 ? SA_API_V2_0 : SA_API_V2_1;
    o.request_timeout_ms = opt_ms(argc, argv, "timeout", o.request_timeout_ms);
    o.connect_timeout_ms =
        opt_ms(argc, argv, "connect_timeout", o.connect_timeout_ms);
    o.upload_timeout_ms =
        opt_ms(argc, argv, "upload_timeout", o.upload_timeout_ms);
    o.poll_interval_ms = opt_ms(argc, argv, "poll_interval", o.poll_interval_ms);
    o.max_poll_interval_ms =
        opt_ms(argc, argv, "max_poll_interval", o.max_poll_interval_ms);
    o.job_deadline_ms = opt_ms(argc, argv, "deadline", o.job_deadline_ms);
    o.backoff_initial_ms =
        opt_ms(argc, argv, "backoff_initial", o.backoff_initial_ms);
    o.backoff_max_ms = opt_ms(argc, argv, "backoff_max", o.backoff_max_ms);
    v = opt(argc, argv, "max_retries");
    if (v) o.max_retries = atoi(v);
    wait_ms = opt_ms(argc, argv, "wait", -1);
    masks = opt(argc, argv, "masks");

    printf("{\"lang\":\"c\"");
    rc = sa_client_new(&client, &o, err, sizeof err);
    if (rc != SA_OK) {
        print_outcome("client", rc);
        jfield("errmsg", err);
        goto out;
    }

    v = opt(argc, argv, "actions");
    snprintf(actions_buf, sizeof actions_buf, "%s", v ? v : "wrinkle,pore");
    for (tok = strtok_r(actions_buf, ",", &save); tok && n_actions < MAX_ACTIONS;
         tok = strtok_r(NULL, ",", &save))
        actions[n_actions++] = tok;
    sa_request_init(&req);
    req.file_path = opt(argc, argv, "image");
    if (!req.file_path) req.file_path = SA_FIXTURES "/portrait_sd.jpg";
    req.actions = actions;
    req.n_actions = n_actions;
    v = opt(argc, argv, "format");
    req.format = v && strcmp(v, "zip") == 0 ? SA_FORMAT_ZIP : SA_FORMAT_JSON;
    rc = sa_client_submit(client, &req, &job);
    if (rc != SA_OK) {
        print_outcome("submit", rc);
        jfield("errmsg", sa_client_errmsg(client));
        goto out;
    }
    rc = sa_job_wait(job, wait_ms);
    st = rc != SA_OK ? rc : sa_job_status(job);
    print_outcome("analyze", st);
    jfield("status_text", sa_strerror(st));
    print_job(job);
    if (st == SA_OK) {
        print_result(sa_job_result(job));
        if (masks) {
            rc = sa_client_fetch_masks(client, job, masks, &fetch);
            if (rc == SA_OK) rc = sa_job_wait(fetch, wait_ms);
            if (rc == SA_OK) rc = sa_job_status(fetch);
            jfield("masks_outcome", rc == SA_OK ? "ok" : sa_status_name(rc));
            jfield("masks_errmsg",
                   fetch ? sa_job_errmsg(fetch) : sa_client_errmsg(client));
            if (rc == SA_OK) {
                const sa_result *r = sa_job_result(fetch);
                size_t i;
                jkey("files", 0);
                putchar('[');
                for (i = 0; r && i < sa_result_file_count(r); i++) {
                    if (i) putchar(',');
                    jstr(sa_result_file_name(r, i));
                }
                putchar(']');
            }
        }
    }
out:
    jkey("elapsed", 0);
    printf("%.3f", now_s() - t0);
    fputs("}\n", stdout);
    fflush(stdout);
    sa_job_free(fetch);
    sa_job_free(job);
    sa_client_free(client);
    sa_global_cleanup();
    return 0;
}
