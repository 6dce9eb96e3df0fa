/* c_analyze - benchmark driver for the skinanalysis C API.
 *
 *   c_analyze BASE_URL IMAGE N INFLIGHT POLL_MS RATE_LIMIT [upload|putonly|rawflow|-] [WARMUP]
 *
 * Submits N analyses of IMAGE (a file streamed from disk), keeping at most
 * INFLIGHT of them running (max_jobs), with poll_interval_ms = POLL_MS
 * (0 keeps the default) and the client's limiter on (RATE_LIMIT = 1, with
 * the client's default limits) or off (0).  With "upload" it also times
 * the UPLOAD state of the first job (throughput).  With "putonly" no
 * analysis runs: N plain libcurl PUTs of IMAGE (streamed from disk, 64 KiB
 * upload buffer like the core's, INFLIGHT at a time, connections reused)
 * to the emulator's /_control/public/ store, the floor of what the upload
 * step of an analysis can cost with this libcurl.  With "rawflow" no
 * analysis runs through the library either: the same HTTP exchanges by
 * hand with libcurl and cJSON (see raw_flow).  With WARMUP (an image
 * path) one analysis of it runs first, unmeasured, so that the pages of
 * libcurl, OpenSSL and the core that the first request touches are not
 * counted as memory of the measured jobs.
 *
 * The environment variable SA_MAX_UPLOADS, when set, replaces the default
 * max_uploads (for A/B runs; bench/run never sets it).
 *
 * Prints one line of JSON: n, ok, wall_s, user_us, sys_us (client CPU from
 * getrusage over the submit+run section only), rss_base_kb (VmRSS right
 * before submitting), rss_peak_kb (VmHWM at the end) and upload_s.
 */
#define _POSIX_C_SOURCE 200809L
#include <skinanalysis.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

typedef struct bench {
    double upload_start;
    double upload_end;
    int time_upload;  /* the first job's callback times its UPLOAD */
} bench;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double tv_us(struct timeval tv)
{
    return (double)tv.tv_sec * 1e6 + (double)tv.tv_usec;
}

/* A "Vm...:" field of /proc/self/status in KiB (VmRSS: now; VmHWM: peak of
 * this program; ru_maxrss is not used because Linux carries it over from the
 * parent across exec), or -1. */
static long status_kb(const char *field)
{
    char line[256];
    long kb = -1;
    size_t len = strlen(field);
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, len) == 0) {
            kb = atol(line + len);
            break;
        }
    fclose(f);
    return kb;
}

/* Records when the first job enters and leaves UPLOAD. */
static int on_state(sa_job *job, int state, void *user_data)
{
    bench *b = user_data;
    (void)job;
    if (state == SA_JOB_UPLOAD && b->upload_start == 0)
        b->upload_start = now_s();
    else if (state != SA_JOB_UPLOAD && b->upload_start != 0
             && b->upload_end == 0)
        b->upload_end = now_s();
    return 0;
}

static size_t discard(char *data, size_t size, size_t n, void *ud)
{
    (void)data;
    (void)ud;
    return size * n;
}

/* One PUT of image to url on handle h, streamed from an open FILE. */
static int put_setup(CURL *h, const char *url, FILE *f, long size)
{
    rewind(f);
    return curl_easy_setopt(h, CURLOPT_URL, url) != CURLE_OK
        || curl_easy_setopt(h, CURLOPT_UPLOAD, 1L) != CURLE_OK
        || curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, 65536L) != CURLE_OK
        || curl_easy_setopt(h, CURLOPT_READDATA, f) != CURLE_OK
        || curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)size) != CURLE_OK
        || curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard) != CURLE_OK
        ? -1 : 0;
}

/* "putonly": n PUTs of image, inflight at a time; returns how many got 200. */
static int put_only(const char *base_url, const char *image, int n, int inflight)
{
    enum { MAXP = 64 };
    CURLM *m = curl_multi_init();
    CURL *h[MAXP];
    FILE *f[MAXP];
    char url[512];
    long size;
    int i, started = 0, ok = 0, running = 1, guard;

    if (inflight > MAXP)
        inflight = MAXP;
    snprintf(url, sizeof url, "%s/_control/public/bench", base_url);
    for (i = 0; i < inflight; i++) {
        h[i] = curl_easy_init();
        f[i] = fopen(image, "rb");
        if (!m || !h[i] || !f[i])
            return -1;
        curl_easy_setopt(h[i], CURLOPT_PRIVATE, (void *)f[i]);
    }
    fseek(f[0], 0, SEEK_END);
    size = ftell(f[0]);
    for (i = 0; i < inflight && started < n; i++, started++)
        if (put_setup(h[i], url, f[i], size) || curl_multi_add_handle(m, h[i]))
            return -1;
    for (guard = 0; running && guard < 100000000; guard++) {
        CURLMsg *msg;
        int left;
        curl_multi_perform(m, &running);
        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            long code = 0;
            FILE *fp = NULL;
            CURL *e = msg->easy_handle;
            curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
            curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&fp);
            ok += msg->data.result == CURLE_OK && code == 200;
            curl_multi_remove_handle(m, e);
            if (started < n && put_setup(e, url, fp, size) == 0
                && curl_multi_add_handle(m, e) == CURLM_OK) {
                started++;
                running = 1;
            }
        }
        if (running)
            curl_multi_poll(m, NULL, 0, 1000, NULL);
    }
    for (i = 0; i < inflight; i++) {
        curl_easy_cleanup(h[i]);
        fclose(f[i]);
    }
    curl_multi_cleanup(m);
    return ok;
}

/* The 16 SD actions (what every analysis of this program asks for). */
static size_t sd_actions(const char **sd)
{
    size_t k, n_sd = 0;
    for (k = 0; k < sa_action_count() && n_sd < SA_MAX_ACTIONS; k++)
        if (sa_action_tier(sa_action_name(k)) == SA_TIER_SD)
            sd[n_sd++] = sa_action_name(k);
    return n_sd;
}

/* "rawflow": the same HTTP exchanges as an analysis, written the way a C
 * programmer would with libcurl and cJSON alone: POST the file slot, PUT the
 * image (streamed, 64 KiB buffer), POST the task on a fresh connection (as
 * the core does: a reused one lets libcurl resend a billed POST), GET the
 * status 10 ms later until it is not "running", parse it with cJSON.
 * curl_multi_poll + curl_multi_perform, a handle per slot kept and reset
 * between steps.  No validation, no limiter, no retries: a baseline of what
 * the protocol's HTTP work costs when written directly with these
 * libraries (not a floor: this loop style costs libcurl extra polls). */
enum { RAW_FILE, RAW_PUT, RAW_TASK, RAW_POLL, RAW_WAIT, RAW_IDLE };
#define RAW_AUTH "Authorization: Bearer emulator-key"

typedef struct raw_slot {
    CURL *h;
    FILE *f;
    int phase;
    double not_before;
    char *body;
    size_t len, cap;
    struct curl_slist *hdrs;
    char url[1024];
    char file_id[256];
    char task_id[256];
} raw_slot;

static size_t raw_collect(char *data, size_t size, size_t n, void *ud)
{
    raw_slot *s = ud;
    size_t add = size * n;
    if (s->len + add + 1 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        char *p;
        while (cap < s->len + add + 1)
            cap *= 2;
        p = realloc(s->body, cap);
        if (!p)
            return 0;
        s->body = p;
        s->cap = cap;
    }
    memcpy(s->body + s->len, data, add);
    s->len += add;
    s->body[s->len] = '\0';
    return add;
}

static int raw_api(raw_slot *s, const char *url, const char *post)
{
    curl_easy_reset(s->h);
    curl_slist_free_all(s->hdrs);
    s->hdrs = curl_slist_append(NULL, RAW_AUTH);
    if (post && s->hdrs)
        s->hdrs = curl_slist_append(s->hdrs, "Content-Type: application/json");
    s->len = 0;
    return !s->hdrs
        || curl_easy_setopt(s->h, CURLOPT_URL, url) != CURLE_OK
        || curl_easy_setopt(s->h, CURLOPT_HTTPHEADER, s->hdrs) != CURLE_OK
        || curl_easy_setopt(s->h, CURLOPT_WRITEFUNCTION, raw_collect) != CURLE_OK
        || curl_easy_setopt(s->h, CURLOPT_WRITEDATA, s) != CURLE_OK
        || (post && curl_easy_setopt(s->h, CURLOPT_COPYPOSTFIELDS, post) != CURLE_OK)
        ? -1 : 0;
}

/* Sets up the request of s's phase; returns -1 on a setup error. */
static int raw_start(raw_slot *s, const char *base, const char *task_body,
                     long size)
{
    char url[1024], body[1024];
    if (s->phase == RAW_FILE) {
        snprintf(url, sizeof url, "%s/s2s/v2.1/file/skin-analysis", base);
        snprintf(body, sizeof body, "{\"files\":[{\"content_type\":\"image/jpeg\","
                 "\"file_name\":\"face.jpg\",\"file_size\":%ld}]}", size);
        return raw_api(s, url, body);
    }
    if (s->phase == RAW_PUT) {
        curl_easy_reset(s->h);
        return put_setup(s->h, s->url, s->f, size)
            || curl_easy_setopt(s->h, CURLOPT_HTTPHEADER, s->hdrs) != CURLE_OK
            ? -1 : 0;
    }
    if (s->phase == RAW_TASK) {
        int rc;
        snprintf(url, sizeof url, "%s/s2s/v2.1/task/skin-analysis", base);
        snprintf(body, sizeof body, "{\"src_file_id\":\"%s\",\"dst_actions\":%s,"
                 "\"format\":\"json\"}", s->file_id, task_body);
        rc = raw_api(s, url, body);
        return rc || curl_easy_setopt(s->h, CURLOPT_FRESH_CONNECT, 1L) != CURLE_OK
            ? -1 : 0;
    }
    snprintf(url, sizeof url, "%s/s2s/v2.1/task/skin-analysis/%s", base,
             s->task_id);
    return raw_api(s, url, NULL);
}

static const char *raw_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Reads s's answer and moves to the next phase; 1 = analysis ended well,
 * 0 = continue, -1 = failed. */
static int raw_next(raw_slot *s)
{
    cJSON *root;
    const cJSON *data;
    int rc = -1;
    if (s->phase == RAW_PUT) {  /* the storage answer has no body to read */
        s->phase = RAW_TASK;
        return 0;
    }
    root = cJSON_ParseWithLength(s->body ? s->body : "", s->len);
    data = cJSON_GetObjectItemCaseSensitive(root, "data");
    if (s->phase == RAW_FILE && data) {
        const cJSON *f = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(data, "files"), 0);
        const cJSON *r = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(f, "requests"), 0);
        const cJSON *h;
        const char *id = raw_str(f, "file_id"), *u = raw_str(r, "url");
        if (id && u && strlen(id) < sizeof s->file_id && strlen(u) < sizeof s->url) {
            strcpy(s->file_id, id);
            strcpy(s->url, u);
            curl_slist_free_all(s->hdrs);
            s->hdrs = NULL;
            rc = 0;
            cJSON_ArrayForEach(h, cJSON_GetObjectItemCaseSensitive(r, "headers")) {
                char line[512];
                struct curl_slist *l;
                if (!cJSON_IsString(h) || strcmp(h->string, "Content-Length") == 0)
                    continue;
                snprintf(line, sizeof line, "%s: %s", h->string, h->valuestring);
                if (!(l = curl_slist_append(s->hdrs, line))) {
                    rc = -1;
                    break;
                }
                s->hdrs = l;
            }
            s->phase = RAW_PUT;
        }
    } else if (s->phase == RAW_TASK && data) {
        const char *id = raw_str(data, "task_id");
        if (id && strlen(id) < sizeof s->task_id) {
            strcpy(s->task_id, id);
            s->phase = RAW_WAIT;
            s->not_before = now_s() + 0.010;
            rc = 0;
        }
    } else if (s->phase == RAW_POLL && data) {
        const char *st = raw_str(data, "task_status");
        if (st && strcmp(st, "running") == 0) {
            s->phase = RAW_WAIT;
            s->not_before = now_s() + 0.010;
            rc = 0;
        } else if (st && strcmp(st, "success") == 0) {
            const cJSON *o, *out = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(data, "results"), "output");
            rc = -1;
            cJSON_ArrayForEach(o, out)
                if (raw_str(o, "type") && strcmp(raw_str(o, "type"), "all") == 0)
                    rc = 1;
            s->phase = RAW_IDLE;
        }
    }
    cJSON_Delete(root);
    return rc;
}

/* Sets up s's next request and hands it to m; -1 on a setup error. */
static int raw_send(CURLM *m, raw_slot *s, const char *base,
                    const char *task_body, long size)
{
    return raw_start(s, base, task_body, size)
        || curl_easy_setopt(s->h, CURLOPT_PRIVATE, (void *)s) != CURLE_OK
        || curl_multi_add_handle(m, s->h) != CURLM_OK ? -1 : 0;
}

static int raw_flow(const char *base, const char *image, int n, int inflight)
{
    enum { MAXR = 64 };
    CURLM *m = curl_multi_init();
    raw_slot slot[MAXR];
    const char *actions[SA_MAX_ACTIONS];
    size_t n_actions = sd_actions(actions), len = 1;
    char task_body[1024];
    long size;
    int i, started = 0, ended = 0, ok = 0;
    FILE *f0 = fopen(image, "rb");

    if (!m || !f0 || fseek(f0, 0, SEEK_END) != 0)
        return -1;
    size = ftell(f0);
    fclose(f0);
    task_body[0] = '[';
    for (i = 0; (size_t)i < n_actions; i++)
        len += (size_t)snprintf(task_body + len, sizeof task_body - len, "%s\"%s\"",
                                i ? "," : "", actions[i]);
    snprintf(task_body + len, sizeof task_body - len, "]");
    if (inflight > MAXR)
        inflight = MAXR;
    memset(slot, 0, sizeof slot);
    for (i = 0; i < inflight; i++) {
        slot[i].h = curl_easy_init();
        slot[i].f = fopen(image, "rb");
        slot[i].phase = RAW_IDLE;
        if (!slot[i].h || !slot[i].f)
            return -1;
    }
    while (ended < n) {
        CURLMsg *msg;
        int left, running;
        double now = now_s(), wait = 1.0;
        for (i = 0; i < inflight; i++) {
            raw_slot *s = &slot[i];
            if (s->phase == RAW_IDLE && started < n) {
                s->phase = RAW_FILE;
                started++;
            } else if (s->phase == RAW_WAIT) {
                if (s->not_before > now) {
                    if (s->not_before - now < wait)
                        wait = s->not_before - now;
                    continue;
                }
                s->phase = RAW_POLL;
            } else {
                continue;
            }
            if (raw_send(m, s, base, task_body, size))
                return -1;
        }
        curl_multi_perform(m, &running);
        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            raw_slot *s = NULL;
            long code = 0;
            int rc = -1;
            if (msg->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
            curl_multi_remove_handle(m, msg->easy_handle);
            if (msg->data.result == CURLE_OK && code == 200)
                rc = raw_next(s);
            if (s->phase == RAW_WAIT && wait > 0.010)
                wait = 0.010;
            if (rc != 0) {
                ended++;
                ok += rc == 1;
                s->phase = RAW_IDLE;
            } else if (s->phase != RAW_WAIT && raw_send(m, s, base, task_body, size)) {
                return -1;
            }
        }
        if (ended < n)
            curl_multi_poll(m, NULL, 0, (int)(wait * 1000) + 1, NULL);
    }
    for (i = 0; i < inflight; i++) {
        curl_easy_cleanup(slot[i].h);
        curl_slist_free_all(slot[i].hdrs);
        free(slot[i].body);
        fclose(slot[i].f);
    }
    curl_multi_cleanup(m);
    return ok;
}

static void raise_nofile(int want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < (rlim_t)want) {
        rl.rlim_cur = rl.rlim_max < (rlim_t)want ? rl.rlim_max : (rlim_t)want;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int make_client(sa_client **c, const char *base_url, int inflight,
                       long poll_ms, int rate_limit)
{
    char err[256];
    sa_client_options o;
    sa_client_options_init(&o);
    o.api_key = "emulator-key";
    o.base_url = base_url;
    o.max_jobs = inflight;
    if (rate_limit == 0) {
        o.rate_limit = 0;
        o.max_connections = inflight > 16 ? inflight : 16;
    }
    if (poll_ms > 0)
        o.poll_interval_ms = poll_ms;
    if (getenv("SA_MAX_UPLOADS"))
        o.max_uploads = atoi(getenv("SA_MAX_UPLOADS"));
    if (sa_client_new(c, &o, err, sizeof err) != SA_OK) {
        fprintf(stderr, "c_analyze: client: %s\n", err);
        return -1;
    }
    return 0;
}

/* Submits n jobs (all 16 SD actions, format json); returns how many ended DONE, or -1. */
static int run_jobs(sa_client *c, const char *image, int n, bench *b)
{
    sa_job **jobs = calloc((size_t)n, sizeof *jobs);
    const char *sd[SA_MAX_ACTIONS];
    size_t n_sd = sd_actions(sd);
    int i, ok = 0;
    if (!jobs)
        return -1;
    for (i = 0; i < n; i++) {
        sa_request r;
        sa_request_init(&r);
        r.file_path = image;
        r.actions = sd;
        r.n_actions = n_sd;
        r.callback = i == 0 && b->time_upload ? on_state : NULL;
        r.user_data = b;
        if (sa_client_submit(c, &r, &jobs[i]) != SA_OK) {
            fprintf(stderr, "c_analyze: submit: %s\n", sa_client_errmsg(c));
            break;
        }
    }
    sa_client_run(c, -1);
    for (i = 0; i < n && jobs[i]; i++) {
        if (sa_job_status(jobs[i]) == SA_OK)
            ok++;
        else if (ok == 0)
            fprintf(stderr, "c_analyze: job: %s\n", sa_job_errmsg(jobs[i]));
        sa_job_free(jobs[i]);
    }
    free(jobs);
    return ok;
}

int main(int argc, char **argv)
{
    sa_client *c = NULL;
    struct rusage r0, r1;
    bench b = {0, 0, 0};
    double t0, t1;
    long rss_base, rss_peak;
    int n, inflight, ok;

    if (argc < 7) {
        fprintf(stderr, "usage: c_analyze BASE_URL IMAGE N INFLIGHT POLL_MS "
                        "RATE_LIMIT [upload|putonly|rawflow|-] [WARMUP]\n");
        return 2;
    }
    n = atoi(argv[3]);
    inflight = atoi(argv[4]);
    if (n <= 0 || inflight <= 0)
        return 2;
    b.time_upload = argc > 7 && strcmp(argv[7], "upload") == 0;
    raise_nofile(inflight + 256);
    if (sa_global_init() != SA_OK)
        return 1;
    if (make_client(&c, argv[1], inflight, atol(argv[5]), atoi(argv[6])))
        return 1;
    if (argc > 8 && run_jobs(c, argv[8], 1, &b) != 1)
        return 1;
    b.upload_start = b.upload_end = 0;
    rss_base = status_kb("VmRSS:");
    getrusage(RUSAGE_SELF, &r0);
    t0 = now_s();
    if (argc > 7 && strcmp(argv[7], "putonly") == 0)
        ok = put_only(argv[1], argv[2], n, inflight);
    else if (argc > 7 && strcmp(argv[7], "rawflow") == 0)
        ok = raw_flow(argv[1], argv[2], n, inflight);
    else
        ok = run_jobs(c, argv[2], n, &b);
    t1 = now_s();
    getrusage(RUSAGE_SELF, &r1);
    rss_peak = status_kb("VmHWM:");
    printf("{\"n\": %d, \"ok\": %d, \"wall_s\": %.6f, \"user_us\": %.0f, "
           "\"sys_us\": %.0f, \"rss_base_kb\": %ld, \"rss_peak_kb\": %ld, "
           "\"upload_s\": %.6f}\n",
           n, ok, t1 - t0, tv_us(r1.ru_utime) - tv_us(r0.ru_utime),
           tv_us(r1.ru_stime) - tv_us(r0.ru_stime), rss_base, rss_peak,
           b.upload_end > b.upload_start ? b.upload_end - b.upload_start : 0.0);
    sa_client_free(c);
    sa_global_cleanup();
    return ok == n ? 0 : 1;
}
