/*
 * support_emulator.c - the emulator as a subprocess of a C test (see
 * support_emulator.h).  Uses libcurl's easy interface directly for the
 * control endpoint, and the library's sa__json_parse for its answers.
 */
#include "support_emulator.h"
#include "support_harness.h"

#include "sa_internal.h"

#include <curl/curl.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define EMU_MAX_ARGS 48
#define EMU_START_TIMEOUT_MS 20000
#define EMU_NO_PROXY "127.0.0.1,localhost"

/* Read the first stdout line of the emulator within the timeout. */
static int read_first_line(int fd, char *line, size_t len)
{
    size_t n = 0;
    struct timespec t0, t1;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (n + 1 < len) {
        struct pollfd p = {fd, POLLIN, 0};
        long waited;
        ssize_t got;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        waited = (t1.tv_sec - t0.tv_sec) * 1000 +
                 (t1.tv_nsec - t0.tv_nsec) / 1000000;
        if (waited >= EMU_START_TIMEOUT_MS) return -1;
        if (poll(&p, 1, (int)(EMU_START_TIMEOUT_MS - waited)) <= 0) continue;
        got = read(fd, line + n, 1);
        if (got <= 0) return -1;
        if (line[n] == '\n') break;
        n++;
    }
    line[n] = '\0';
    return 0;
}

int emu_start(emu *e, const char *flags)
{
    static const char prefix[] = "listening on ";
    char *argv[EMU_MAX_ARGS], *copy = NULL, *tok, *save = NULL;
    char script[1024], line[256];
    int pipefd[2], argc = 0, rc;
    posix_spawn_file_actions_t fa;

    memset(e, 0, sizeof *e);
    e->pid = -1;
    e->out_fd = -1;
    /* The tests only talk to loopback: never through a proxy.  Set once
     * (the first call, before any test thread): setenv would race with
     * libcurl's getenv in other threads. */
    if (!getenv("no_proxy") || strcmp(getenv("no_proxy"), EMU_NO_PROXY))
        setenv("no_proxy", EMU_NO_PROXY, 1);
    if (!getenv("NO_PROXY") || strcmp(getenv("NO_PROXY"), EMU_NO_PROXY))
        setenv("NO_PROXY", EMU_NO_PROXY, 1);
    snprintf(script, sizeof script, "%s/scripts/emulator", SA_SOURCE_DIR);
    argv[argc++] = script;
    argv[argc++] = "--port";
    argv[argc++] = "0";
    if (flags) {
        copy = strdup(flags);
        if (!copy) return -1;
        for (tok = strtok_r(copy, " ", &save); tok && argc < EMU_MAX_ARGS - 1;
             tok = strtok_r(NULL, " ", &save))
            argv[argc++] = tok;
    }
    argv[argc] = NULL;
    if (pipe(pipefd) != 0) {
        free(copy);
        return -1;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
    posix_spawn_file_actions_addclose(&fa, pipefd[0]);
    posix_spawn_file_actions_addclose(&fa, pipefd[1]);
    rc = posix_spawn(&e->pid, script, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pipefd[1]);
    free(copy);
    if (rc != 0) {
        fprintf(stderr, "emulator: cannot start %s: %s\n", script, strerror(rc));
        close(pipefd[0]);
        e->pid = -1;
        return -1;
    }
    e->out_fd = pipefd[0];
    if (read_first_line(e->out_fd, line, sizeof line) != 0 ||
        strncmp(line, prefix, sizeof prefix - 1) != 0 ||
        strlen(line + sizeof prefix - 1) >= sizeof e->base_url) {
        fprintf(stderr, "emulator: no 'listening on' line (flags: %s)\n",
                flags ? flags : "");
        emu_stop(e);
        return -1;
    }
    strcpy(e->base_url, line + sizeof prefix - 1);
    return 0;
}

void emu_stop(emu *e)
{
    int status, i;

    if (e->pid > 0) {
        kill(e->pid, SIGTERM);
        for (i = 0; i < 500; i++) {
            if (waitpid(e->pid, &status, WNOHANG) == e->pid) break;
            usleep(10000);
        }
        if (i == 500) {
            kill(e->pid, SIGKILL);
            waitpid(e->pid, &status, 0);
        }
    }
    if (e->out_fd >= 0) close(e->out_fd);
    e->pid = -1;
    e->out_fd = -1;
}

typedef struct emu_buf {
    char *data;
    size_t len;
} emu_buf;

static size_t emu_write(char *p, size_t size, size_t n, void *ud)
{
    emu_buf *b = ud;
    size_t len = size * n;
    char *d = realloc(b->data, b->len + len + 1);
    if (!d) return 0;
    memcpy(d + b->len, p, len);
    b->len += len;
    d[b->len] = '\0';
    b->data = d;
    return len;
}

long emu_http(const emu *e, const char *method, const char *path,
              const char *data, size_t len, const char *content_type,
              char **body)
{
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = NULL;
    char url[1024], ct[128];
    emu_buf b = {NULL, 0};
    long status = -1;

    if (body) *body = NULL;
    if (!h) return -1;
    snprintf(url, sizeof url, "%s%s", e->base_url, path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, emu_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    if (data) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, data);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    snprintf(ct, sizeof ct, "Content-Type: %s",
             content_type ? content_type : "application/json");
    hdr = curl_slist_append(hdr, ct);
    hdr = curl_slist_append(hdr, "Expect:");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    if (curl_easy_perform(h) == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    if (body) *body = b.data;
    else free(b.data);
    return status;
}

cJSON *emu_get_json(const emu *e, const char *path)
{
    char *body = NULL;
    cJSON *root = NULL;
    if (emu_http(e, "GET", path, NULL, 0, NULL, &body) == 200 && body)
        (void)sa__json_parse(body, strlen(body), 64, &root);
    free(body);
    return root;
}

long emu_post_json(const emu *e, const char *path, const char *json)
{
    return emu_http(e, "POST", path, json, strlen(json), NULL, NULL);
}

long emu_counter(const emu *e, const char *name)
{
    cJSON *root = emu_get_json(e, "/_control/counters");
    const cJSON *v = root ? cJSON_GetObjectItemCaseSensitive(root, name) : NULL;
    long n = cJSON_IsNumber(v) ? (long)v->valuedouble : -1;
    cJSON_Delete(root);
    return n;
}

long emu_counter2(const emu *e, const char *name, const char *key)
{
    cJSON *root = emu_get_json(e, "/_control/counters");
    const cJSON *o = root ? cJSON_GetObjectItemCaseSensitive(root, name) : NULL;
    const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    long n = cJSON_IsNumber(v) ? (long)v->valuedouble : 0;
    cJSON_Delete(root);
    return n;
}

int emu_host_public(const emu *e, const char *name, const char *path,
                    char *url, size_t urllen)
{
    char ctl[256], *data, *body = NULL;
    size_t n = 0;
    long status;
    cJSON *root = NULL;
    const char *u;
    int rc = -1;

    data = harness_slurp(path, &n);
    if (!data) return -1;
    snprintf(ctl, sizeof ctl, "/_control/public/%s", name);
    status = emu_http(e, "POST", ctl, data, n, "image/jpeg", &body);
    free(data);
    if (status == 200 && body &&
        sa__json_parse(body, strlen(body), 16, &root) == SA_OK &&
        (u = sa__json_string(root, "url")) && strlen(u) < urllen) {
        strcpy(url, u);
        rc = 0;
    }
    cJSON_Delete(root);
    free(body);
    return rc;
}

int emu_scenario(const emu *e, const char *json)
{
    if (!json)
        return emu_http(e, "DELETE", "/_control/scenario", NULL, 0, NULL,
                        NULL) == 200 ? 0 : -1;
    return emu_post_json(e, "/_control/scenario", json) == 200 ? 0 : -1;
}

int emu_reset(const emu *e)
{
    return emu_post_json(e, "/_control/reset", "{}") == 200 ? 0 : -1;
}

static int check_log(const emu *e, char *why, size_t whylen)
{
    cJSON *root = emu_get_json(e, "/_control/log");
    const cJSON *log = root ? cJSON_GetObjectItemCaseSensitive(root, "log")
                            : NULL, *rec;
    int rc = 0;

    if (!cJSON_IsArray(log)) {
        snprintf(why, whylen, "no request log");
        cJSON_Delete(root);
        return -1;
    }
    cJSON_ArrayForEach(rec, log) {
        const char *ep = sa__json_string(rec, "endpoint");
        const cJSON *auth = cJSON_GetObjectItemCaseSensitive(rec,
                                                             "authorization");
        if (ep && strncmp(ep, "file_", 5) != 0 && strncmp(ep, "task_", 5) != 0
            && cJSON_IsTrue(auth)) {
            snprintf(why, whylen, "Authorization sent to the %s endpoint", ep);
            rc = -1;
            break;
        }
    }
    cJSON_Delete(root);
    return rc;
}

int emu_check_invariants(const emu *e, long max_tasks, double max_gap_s,
                         int require_idle, char *why, size_t whylen)
{
    cJSON *root;
    const cJSON *gaps, *g;
    long tasks, running, storage, results;

    why[0] = '\0';
    if (check_log(e, why, whylen) != 0) return -1;
    root = emu_get_json(e, "/_control/counters");
    if (!root) {
        snprintf(why, whylen, "no counters");
        return -1;
    }
    tasks = (long)cJSON_GetNumberValue(
        cJSON_GetObjectItemCaseSensitive(root, "tasks_created"));
    running = (long)cJSON_GetNumberValue(
        cJSON_GetObjectItemCaseSensitive(root, "tasks_running"));
    storage = (long)cJSON_GetNumberValue(
        cJSON_GetObjectItemCaseSensitive(root, "auth_on_storage"));
    results = (long)cJSON_GetNumberValue(
        cJSON_GetObjectItemCaseSensitive(root, "auth_on_results"));
    gaps = cJSON_GetObjectItemCaseSensitive(root, "max_unpolled_gap");
    if (tasks > max_tasks)
        snprintf(why, whylen, "%ld tasks created, at most %ld expected",
                 tasks, max_tasks);
    else if (storage || results)
        snprintf(why, whylen, "Authorization seen on storage/results");
    else if (require_idle && running)
        snprintf(why, whylen, "%ld tasks left running", running);
    cJSON_ArrayForEach(g, gaps) {
        if (!why[0] && cJSON_IsNumber(g) && g->valuedouble > max_gap_s)
            snprintf(why, whylen, "task %s left unpolled for %.2f s",
                     g->string ? g->string : "?", g->valuedouble);
    }
    cJSON_Delete(root);
    return why[0] ? -1 : 0;
}

void emu_options(const emu *e, sa_client_options *o, const char *key,
                 long poll_ms, long timeout_ms)
{
    quick_options(o, key, e->base_url, poll_ms, timeout_ms);
}

void quick_options(sa_client_options *o, const char *key,
                   const char *base_url, long poll_ms, long timeout_ms)
{
    sa_client_options_init(o);
    o->api_key = key;
    o->base_url = base_url;
    o->poll_interval_ms = poll_ms;
    o->max_poll_interval_ms = poll_ms > 1000 ? 10000 : 1000;
    o->backoff_initial_ms = 20;
    o->backoff_max_ms = 100;
    o->connect_timeout_ms = 2000;
    if (timeout_ms > 0) {
        o->request_timeout_ms = timeout_ms;
        o->upload_timeout_ms = timeout_ms;
    }
}

sa_client *emu_client(const sa_client_options *o)
{
    sa_client *c = NULL;
    char err[256];

    if (sa_client_new(&c, o, err, sizeof err) != SA_OK) {
        fprintf(stderr, "sa_client_new: %s\n", err);
        return NULL;
    }
    return c;
}
