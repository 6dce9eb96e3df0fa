/* fetch.c - result downloads (sa_client_fetch_masks) and the files written. */

/*
 * The job the caller gets is a fetch job: its machine (sa_jobsm_new_fetch)
 * holds a copy of the result and the URLs to download, and sends nothing.
 * The client runs the downloads as child jobs: internal sa_jobs with a
 * download machine each (sa_jobsm_new_download), driven like any job (a
 * refresh poll of an expired URL goes through the limiter queue; the GETs
 * do not), never visible to the caller: no callbacks, not counted by
 * sa_client_active or max_jobs.  At most FETCH_CONCURRENCY children of a
 * fetch run at once; the fetch job starts the next ones when it is driven
 * (drive.c calls sa__fetch_pump) and a child that ends reports its bytes
 * (written to the folder first) or its failure to the fetch machine and
 * wakes the fetch job.  When the fetch job ends (done, failed, cancelled,
 * freed) its remaining children are cancelled.  The fetch job has the
 * callback and user data of the job it was made from.
 */
#include "sa_client.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FETCH_CONCURRENCY 8 /* downloads at once per sa_client_fetch_masks */

/* The settings of a download or fetch machine, from the options. */
static void fetch_config(const sa_client *c, sa_job *j, int api_version,
                         int64_t deadline_at, sa_job_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->mem = j->mem;
    cfg->base_url = c->base_url;
    cfg->api_version = api_version;
    cfg->request_timeout_ms = c->opt.request_timeout_ms;
    cfg->upload_timeout_ms = c->opt.upload_timeout_ms;
    cfg->poll_interval_ms = c->opt.poll_interval_ms;
    cfg->max_poll_interval_ms = c->opt.max_poll_interval_ms;
    cfg->deadline_at_ms = deadline_at;
    cfg->max_polls = c->opt.max_polls;
    cfg->max_retries = c->opt.max_retries;
    cfg->backoff_initial_ms = c->opt.backoff_initial_ms;
    cfg->backoff_max_ms = c->opt.backoff_max_ms;
    cfg->max_json_depth = c->opt.max_json_depth;
    cfg->rng = &j->rng;
}

/* A bare job of the client (no request). */
static sa_job *job_new(sa_client *c, int kind)
{
    sa_request req;
    sa_job *j;

    sa_request_init(&req);
    j = sa__job_alloc(c, &req);
    if (j) j->kind = kind;
    return j;
}

/* Write one file to folder/name (name is a base name). */
static int write_file(const char *folder, const char *name, const void *data,
                      size_t len, char *msg, size_t msglen)
{
    char path[4096], eb[128];
    const char *p = data;
    int fd, n;

    if (!*name || strchr(name, '/') || !strcmp(name, ".") ||
        !strcmp(name, "..")) {
        snprintf(msg, msglen, "refusing to write a file named '%s'", name);
        return SA_ERR_FILE;
    }
    n = snprintf(path, sizeof path, "%s/%s", folder, name);
    if (n < 0 || (size_t)n >= sizeof path) {
        snprintf(msg, msglen, "the path of '%s' is too long", name);
        return SA_ERR_FILE;
    }
    fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) goto fail;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            close(fd);
            goto fail;
        }
        p += w;
        len -= (size_t)w;
    }
    if (close(fd) == 0) return SA_OK;
fail:
    sa__errf(msg, msglen, "cannot write '%s' in the folder: %s", name,
             sa__strerror(errno, eb, sizeof eb));
    return SA_ERR_FILE;
}

/* Start one download of fetch job j. */
static int start_child(sa_client *c, sa_job *j, const char *url, int64_t now)
{
    sa_job_config cfg;
    sa_job *k = job_new(c, KIND_CHILD);
    int rc;

    if (!k) return SA_ERR_NOMEM;
    k->caller_released = 1;  /* internal: no callbacks, freed when done */
    fetch_config(c, k, j->api_version, j->deadline_at, &cfg);
    rc = sa_jobsm_new_download(&cfg, url, sa_jobsm_task_id(j->sm), now,
                               &k->sm);
    if (rc != SA_OK) {
        sa__job_destroy(k);
        return rc;
    }
    k->parent = j;
    k->deadline_at = j->deadline_at;
    k->wake_at = now;
    k->last_state = SA_JOB_FETCHING;
    k->published = 1;        /* nothing to publish: the parent tells */
    sa__set_where(c, k, J_ACTIVE);
    j->n_children++;
    return SA_OK;
}

/* Start downloads while fewer than FETCH_CONCURRENCY run. */
void sa__fetch_pump(sa_client *c, sa_job *j, int64_t now)
{
    int guard;

    for (guard = 0; guard < FETCH_CONCURRENCY; guard++) {
        const char *url;
        int rc;
        if (j->n_children >= FETCH_CONCURRENCY) return;
        url = sa_jobsm_fetch_next(j->sm);
        if (!url) return;
        rc = start_child(c, j, url, now);
        if (rc != SA_OK)
            (void)sa_jobsm_fetch_done(j->sm, rc, NULL, NULL, 0, rc ==
                                      SA_ERR_NOMEM ? "out of memory starting "
                                      "a download" : "a result URL was "
                                      "refused");
    }
}

/* A child ended: its file goes to the folder and into the parent's
 * result, or its failure to the parent; the parent looks again now. */
void sa__child_ended(sa_client *c, sa_job *k)
{
    sa_job *j = k->parent;
    const void *data;
    size_t len;
    char msg[768];
    int st, status;

    if (!j) return;
    k->parent = NULL;
    j->n_children--;
    j->wake_at = sa_engine_now();
    st = sa_jobsm_state(k->sm);
    data = sa_jobsm_download_data(k->sm, &len);
    if (st != SA_JOB_DONE || !data) {
        status = sa_jobsm_status(k->sm);
        snprintf(msg, sizeof msg, "downloading %s: %s",
                 sa_jobsm_download_name(k->sm), sa_jobsm_errmsg(k->sm));
        (void)sa_jobsm_fetch_done(j->sm, status < 0 ? status
                                  : SA_ERR_DOWNLOAD, NULL, NULL, 0, msg);
        return;
    }
    status = j->folder ? write_file(j->folder, sa_jobsm_download_name(k->sm),
                                    data, len, msg, sizeof msg) : SA_OK;
    (void)sa_jobsm_fetch_done(j->sm, status, sa_jobsm_download_name(k->sm),
                              data, len, msg);
    (void)c;
}

/* The fetch job ended: its children stop (no report). */
void sa__cancel_children(sa_client *c, sa_job *parent)
{
    sa_link *l, *next;
    int64_t now = sa_engine_now();

    for (l = c->active.next; l != &c->active; l = next) {
        sa_job *k = JOB_OF(l, link);
        next = l->next;
        if (k->kind != KIND_CHILD || k->parent != parent) continue;
        k->parent = NULL;
        (void)sa_jobsm_cancel(k->sm, now, 1);
        sa__engine_end(c, k);
    }
    parent->n_children = 0;
}

/* A ZIP result's files are in the result already: write them now; a
 * failure ends the fetch job FAILED when it is first driven. */
static void write_result_files(sa_job *j, const sa_result *r)
{
    size_t i, n = sa_result_file_count(r), len;
    char msg[768];

    for (i = 0; i < n && j->folder; i++) {
        const void *data = sa_result_file_data(r, i, &len);
        const char *name = sa_result_file_name(r, i);
        if (write_file(j->folder, name ? name : "", data, len, msg,
                       sizeof msg) != SA_OK) {
            sa_jobsm_fetch_fail(j->sm, SA_ERR_FILE, msg);
            return;
        }
    }
}

static int check_fetch_args(sa_client *c, sa_job *done, const char *folder)
{
    struct stat st;
    char eb[128];

    if (c->freeing || c->free_pending)
        return sa__cfail(c, SA_ERR_BUSY, "the client is being freed");
    if (!done || done->client != c || done->caller_released ||
        done->kind == KIND_CHILD)
        return sa__cfail(c, SA_ERR_INVALID_ARGUMENT, "the job is not a job of "
                         "this client");
    if (!done->published)
        return sa__cfail(c, SA_ERR_NOT_DONE, "the job has not ended yet");
    if (done->pub_state != SA_JOB_DONE || !done->pub_result)
        return sa__cfail(c, SA_ERR_INVALID_ARGUMENT, "the job ended %s, not "
                         "DONE: it has no result to download",
                         sa_job_state_name(done->pub_state));
    if (!folder) return SA_OK;
    if (stat(folder, &st) != 0)
        return sa__cfail(c, SA_ERR_FILE, "folder '%s': %s", folder,
                         sa__strerror(errno, eb, sizeof eb));
    if (!S_ISDIR(st.st_mode))
        return sa__cfail(c, SA_ERR_FILE, "'%s' is not a folder", folder);
    return SA_OK;
}

int sa_client_fetch_masks(sa_client *client, sa_job *done_job,
                          const char *folder, sa_job **out)
{
    sa_client *c = client;
    sa_job_config cfg;
    sa_job *j;
    int64_t now;
    int rc;

    if (out) *out = NULL;
    if (!c) return SA_ERR_INVALID_ARGUMENT;
    if (!out)
        return sa__cfail(c, SA_ERR_INVALID_ARGUMENT, "out is NULL");
    rc = check_fetch_args(c, done_job, folder);
    if (rc != SA_OK) return rc;
    j = job_new(c, KIND_FETCH);
    if (!j) return sa__cfail(c, SA_ERR_NOMEM, "out of memory");
    sa__enter(c);
    now = sa_engine_now();
    j->cb = done_job->cb;
    j->user_data = done_job->user_data;
    j->api_version = done_job->api_version;
    j->deadline_at = now + c->opt.job_deadline_ms;
    fetch_config(c, j, j->api_version, j->deadline_at, &cfg);
    rc = sa_jobsm_new_fetch(&cfg, done_job->pub_result, now, &j->sm);
    if (rc == SA_OK && folder) {
        j->folder = sa__strdup(j->mem, folder);
        if (!j->folder) rc = SA_ERR_NOMEM;
    }
    if (rc != SA_OK) {
        sa__job_destroy(j);
        sa__leave(c);
        return sa__cfail(c, rc, rc == SA_ERR_NOMEM ? "out of memory"
                         : "the result cannot be downloaded");
    }
    write_result_files(j, done_job->pub_result);
    j->wake_at = now;
    j->last_state = SA_JOB_FETCHING;
    sa__set_where(c, j, J_ACTIVE);
    *out = j;
    sa__jlog(c, SA_LOG_DEBUG, "job #%lu fetches the files of job #%lu%s%s",
             j->seq, done_job->seq, folder ? " into " : "",
             folder ? folder : "");
    sa__leave(c);
    return SA_OK;
}
