/* fetch.c - result downloads (sa_client_fetch) and the files written. */

/*
 * The job the caller gets is a fetch job: its machine (sa__jobsm_new_fetch)
 * holds a copy of the result's scores and the URLs to download, and sends
 * nothing.  The client runs the downloads as child jobs: internal sa_jobs
 * with a download machine each (sa__jobsm_new_download), driven like any
 * job (a refresh poll of an expired URL goes through the limiter queue; the
 * GETs do not), never visible to the caller: no callbacks, not counted by
 * sa_client_active or max_jobs.  At most FETCH_CONCURRENCY children of a
 * fetch run at once; the fetch job starts the next ones when it is driven
 * (drive.c calls sa__fetch_pump), and a child that ends reports to the
 * fetch machine and wakes the fetch job.  When the fetch job ends (done,
 * failed, cancelled, freed) its remaining children are cancelled and their
 * partial files removed.
 *
 * Names.  Each URL gets its file name when its download starts, in URL
 * order: the last path segment, cleaned and made unique within the result
 * (sa__names_claim in files.c: "mask.png", "mask-2.png", ...).  Into a
 * folder the names are claimed in the folder's own set, so the files
 * written are unique too.
 *
 * Where the bytes go.  A child's GET carries a body sink (sa__fetch_attach,
 * called by drive.c as the request leaves), so the engine never holds a
 * download's body:
 *   - into a folder, each chunk goes to the child's temporary file
 *     (sa__file_out); a child that ends DONE has its file committed under
 *     its name (never over a file the library did not write, see files.c)
 *     and the result gets the name and the path: no byte of it stays in
 *     memory;
 *   - in memory, the chunks go to the child's buffer, whose growth is
 *     reserved from the fetch's budget (max_files_bytes for all the files
 *     of the result, held or in flight): a download the budget cannot take
 *     fails SA_ERR_LIMIT (at its first bytes when the server announced its
 *     size); a DONE child's buffer becomes the result's file without a
 *     copy.
 *   A download tried again (transport error, fresh URL) starts its file or
 *   buffer again.
 *
 * Failures are per URL: a URL that is not http(s), a download that fails,
 * a file that cannot be written fail that URL only, and the fetch goes on
 * with the others (sa__jobsm_fetch_done).  Writing errors are reported as
 * SA_ERR_DOWNLOAD: SA_ERR_FILE and SA_ERR_INVALID_ARGUMENT mean that the
 * caller's input was wrong and nothing was sent, which is not the case.
 *
 * The fetch job has its own callback and user data (sa_fetch_options),
 * never those of the job it was made from: that job may be freed first.
 */
#include "sa_client.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define FETCH_CONCURRENCY 8   /* downloads at once per fetch */
#define DL_FIRST_CAP 65536    /* a buffer's first size when none is known */
#define PATH_LEN 4352         /* a folder path (PATH_MAX) plus a name */

struct sa__fetch {             /* of a fetch job */
    sa_folder *dir;           /* NULL: the files stay in memory */
    sa__names names;           /* in memory: the names given so far */
    size_t mem_max;           /* max_files_bytes */
    size_t mem_used;          /* reserved by buffers and held by files */
};

struct sa__dl {                /* of a child: one download */
    size_t index;             /* its URL's place */
    char name[SA_FILE_NAME_MAX];
    sa__file_out out;          /* into a folder */
    char *buf;                /* in memory */
    size_t len, cap;
    unsigned char head[8];    /* the first bytes (format of a file) */
    size_t head_len;
};

void sa_fetch_options_init_sized(sa_fetch_options *opts, size_t struct_size)
{
    sa_fetch_options d;

    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    sa__struct_init(opts, struct_size, &d, sizeof d);
}

/* The settings of a download or fetch machine, from the options (also the
 * base of an account machine's: account.c). */
void sa__fetch_config(const sa_client *c, sa_job *j, int api_version,
                         int64_t deadline_at, sa__job_config *cfg)
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
    cfg->max_files_bytes = c->opt.max_files_bytes;
    cfg->low_speed_limit = c->opt.low_speed_limit;
    cfg->low_speed_time_ms = c->opt.low_speed_time_ms;
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

/* folder/name into buf; 0 when it does not fit. */
static int join_path(const sa_folder *dir, const char *name, char *buf,
                     size_t len)
{
    const char *folder = sa__folder_path(dir);
    size_t n = strlen(folder);
    int w = snprintf(buf, len, "%s%s%s", folder,
                     n > 0 && folder[n - 1] == '/' ? "" : "/", name);
    return w >= 0 && (size_t)w < len;
}

/* ------------------------------------------------------------------ */
/* A child's bytes                                                     */
/* ------------------------------------------------------------------ */

/* Give back what the child's buffer reserved and drop its file. */
static void dl_drop(struct sa__fetch *fx, sa_job *k)
{
    struct sa__dl *d = k->dl;

    if (!d) return;
    if (d->buf) {
        sa__free(k->mem, d->buf);
        if (fx) fx->mem_used -= d->cap;
        d->buf = NULL;
    }
    d->len = d->cap = 0;
    if (d->out.dir) sa__file_out_discard(&d->out);
}

/* Make room for `need` bytes in the child's buffer, reserving its growth
 * from the fetch's budget.  `target` is the size the server announced (or
 * 0): the buffer is made that big at once. */
static int dl_reserve(struct sa__fetch *fx, sa_job *k, size_t need,
                      size_t target, char *msg, size_t msglen)
{
    struct sa__dl *d = k->dl;
    size_t want, left = fx->mem_max - fx->mem_used;
    char *p;

    if (need <= d->cap) return SA_OK;
    if (target >= need) {
        want = target;
    } else {
        want = d->cap ? d->cap : DL_FIRST_CAP;
        while (want < need && want <= SIZE_MAX / 2) want *= 2;
        if (want < need) want = need;
        if (want > SA__FETCH_MAX_BODY && need <= SA__FETCH_MAX_BODY)
            want = SA__FETCH_MAX_BODY;
        if (want - d->cap > left) want = need;  /* just what it needs */
    }
    if (want - d->cap > left) {
        sa__errf(msg, msglen, "%s%s %zu bytes: the files of this result "
                 "would take more than max_files_bytes (%zu bytes) in memory;"
                 " fetch them into a folder instead", d->name,
                 target ? " announces" : " passed", target ? target : need,
                 fx->mem_max);
        return SA_ERR_LIMIT;
    }
    p = sa__realloc(k->mem, d->buf, want);
    if (!p) {
        sa__errf(msg, msglen, "%s: out of memory (%zu bytes)", d->name, want);
        return SA_ERR_NOMEM;
    }
    fx->mem_used += want - d->cap;
    d->buf = p;
    d->cap = want;
    return SA_OK;
}

/* The body sink of a child's GET (see sa__http_request.sink). */
static int dl_sink(void *ud, const void *data, size_t len, int64_t announced,
                   char *msg, size_t msglen)
{
    sa_job *k = ud;
    struct sa__dl *d = k->dl;
    struct sa__fetch *fx = k->parent ? k->parent->fetch : NULL;
    size_t target = 0;
    int rc;

    if (!d || !fx) {
        sa__errf(msg, msglen, "the fetch ended");
        return SA_ERR_CANCELLED;
    }
    if (d->head_len < sizeof d->head) {
        size_t n = sizeof d->head - d->head_len;
        if (n > len) n = len;
        memcpy(d->head + d->head_len, data, n);
        d->head_len += n;
    }
    if (fx->dir) {
        rc = sa__file_out_write(&d->out, data, len, msg, msglen);
        return rc == SA_OK ? SA_OK : SA_ERR_DOWNLOAD;
    }
    if (len > SIZE_MAX - d->len) return SA_ERR_LIMIT;
    if (announced > 0 && (uint64_t)announced >= d->len + len &&
        (uint64_t)announced <= SA__FETCH_MAX_BODY)
        target = (size_t)announced;
    rc = dl_reserve(fx, k, d->len + len, target, msg, msglen);
    if (rc != SA_OK) return rc;
    memcpy(d->buf + d->len, data, len);
    d->len += len;
    return SA_OK;
}

void sa__fetch_attach(sa_job *k, sa__http_request *req)
{
    struct sa__dl *d = k->dl;
    char msg[256];

    if (k->kind != KIND_CHILD || !d || req->step != SA__STEP_FETCH) return;
    /* a new attempt starts from nothing */
    d->len = 0;
    d->head_len = 0;
    if (d->out.dir && sa__file_out_rewind(&d->out, msg, sizeof msg) != SA_OK) {
        sa_folder *dir = d->out.dir;
        sa__file_out_discard(&d->out);
        sa__file_out_init(&d->out, dir);
    }
    req->sink = dl_sink;
    req->sink_ud = k;
}

/* ------------------------------------------------------------------ */
/* Children                                                            */
/* ------------------------------------------------------------------ */

/* The status a fetch reports for a failed download: never one that says
 * the caller's input was wrong. */
static int child_status(int status)
{
    if (status >= 0 || status == SA_ERR_FILE ||
        status == SA_ERR_INVALID_ARGUMENT)
        return SA_ERR_DOWNLOAD;
    return status;
}

/* Start the download of URL `index` of fetch job j.  SA_OK, or
 * SA_ERR_INVALID_ARGUMENT (not an http(s) URL) / SA_ERR_NOMEM with nothing
 * started. */
static int start_child(sa_client *c, sa_job *j, const char *url,
                       size_t index, const char *name, int64_t now)
{
    struct sa__fetch *fx = j->fetch;
    sa__job_config cfg;
    sa_job *k = job_new(c, KIND_CHILD);
    int rc;

    if (!k) return SA_ERR_NOMEM;
    k->caller_released = 1;  /* internal: no callbacks, freed when done */
    k->dl = sa__calloc(k->mem, 1, sizeof *k->dl);
    if (!k->dl) {
        sa__job_destroy(k);
        return SA_ERR_NOMEM;
    }
    k->dl->index = index;
    snprintf(k->dl->name, sizeof k->dl->name, "%s", name);
    sa__file_out_init(&k->dl->out, fx->dir);   /* fd -1, even in memory */
    sa__fetch_config(c, k, j->api_version, j->deadline_at, &cfg);
    rc = sa__jobsm_new_download(&cfg, url, sa__jobsm_task_id(j->sm), now,
                               &k->sm);
    if (rc != SA_OK) {
        sa__job_destroy(k);
        return rc;
    }
    sa__jobsm_download_set_index(k->sm, index);
    k->parent = j;
    k->deadline_at = j->deadline_at;
    k->wake_at = now;
    k->last_state = SA_JOB_FETCHING;
    k->published = 1;        /* nothing to publish: the parent tells */
    sa__set_where(c, k, J_ACTIVE);
    j->n_children++;
    return SA_OK;
}

/* Start downloads while fewer than FETCH_CONCURRENCY run.  A URL that
 * cannot be started fails alone; every URL is handed out once, so the
 * loop ends. */
void sa__fetch_pump(sa_client *c, sa_job *j, int64_t now)
{
    struct sa__fetch *fx = j->fetch;

    while (fx && j->n_children < FETCH_CONCURRENCY) {
        char name[SA_FILE_NAME_MAX], msg[512];
        size_t index = 0;
        const char *url = sa__jobsm_fetch_next(j->sm, &index);
        int rc;

        if (!url) return;
        rc = fx->dir ? sa__folder_claim(fx->dir, url, name, sizeof name)
                     : sa__names_claim(&fx->names, url, name, sizeof name);
        if (rc == SA_OK) rc = start_child(c, j, url, index, name, now);
        if (rc == SA_OK) continue;
        if (rc == SA_ERR_NOMEM)
            snprintf(msg, sizeof msg, "out of memory starting a download");
        else if (rc == SA_ERR_LIMIT)
            snprintf(msg, sizeof msg, "no free file name for URL %zu",
                     index + 1);
        else
            snprintf(msg, sizeof msg, "%s: its URL is not an http(s) URL: "
                     "not downloaded", name);
        sa__jobsm_fetch_done(j->sm, index, rc == SA_ERR_NOMEM ? rc
                            : SA_ERR_DOWNLOAD, msg);
    }
}

/* A DONE child's file goes into the result: committed into the folder,
 * or its buffer handed over.  SA_OK, or a failure with a message. */
static int keep_file(sa_job *j, sa_job *k, char *msg, size_t msglen)
{
    struct sa__fetch *fx = j->fetch;
    struct sa__dl *d = k->dl;
    sa_result *r = sa__jobsm_fetch_result(j->sm);
    char final[SA_FILE_NAME_MAX], path[PATH_LEN], why[512];
    int rc;

    if (fx->dir) {
        rc = sa__file_out_commit(&d->out, d->name, final, sizeof final, why,
                                sizeof why);
        if (rc != SA_OK) {
            snprintf(msg, msglen, "%s: %s", d->name, why);
            return rc == SA_ERR_NOMEM ? rc : SA_ERR_DOWNLOAD;
        }
        if (!join_path(fx->dir, final, path, sizeof path)) {
            snprintf(msg, msglen, "%s: the path is too long", final);
            return SA_ERR_DOWNLOAD;
        }
        rc = sa__result_add_file_path(r, final, path, sa__result_sniff_format(
                                         d->head, d->head_len));
    } else {
        size_t len = d->len;
        char *buf = d->buf;
        /* the buffer becomes the file: only its bytes stay reserved */
        fx->mem_used -= d->cap - len;
        d->buf = NULL;
        d->len = d->cap = 0;
        if (!buf) {
            buf = sa__malloc(k->mem, 1);  /* an empty file */
            if (!buf) rc = SA_ERR_NOMEM;
        }
        rc = buf ? sa__result_add_file_owned(r, d->name, buf, len)
                 : SA_ERR_NOMEM;
        if (rc != SA_OK) fx->mem_used -= len;
    }
    if (rc != SA_OK)
        snprintf(msg, msglen, "%s: out of memory keeping the file", d->name);
    return rc;
}

/* A child ended: its file goes into the parent's result (and folder), or
 * its failure to the parent; the parent looks again now. */
void sa__child_ended(sa_client *c, sa_job *k)
{
    sa_job *j = k->parent;
    char msg[768];
    size_t index;
    int rc;

    (void)c;
    if (!j || !k->dl) return;
    k->parent = NULL;
    j->n_children--;
    j->wake_at = sa__engine_now();
    index = k->dl->index;
    if (sa__jobsm_state(k->sm) != SA_JOB_DONE) {
        snprintf(msg, sizeof msg, "%s: %s", k->dl->name,
                 sa__jobsm_errmsg(k->sm));
        dl_drop(j->fetch, k);
        sa__jobsm_fetch_done(j->sm, index,
                            child_status(sa__jobsm_status(k->sm)), msg);
        return;
    }
    rc = keep_file(j, k, msg, sizeof msg);
    dl_drop(j->fetch, k);
    sa__jobsm_fetch_done(j->sm, index, rc, msg);
}

/* The fetch job ended: its children stop (no report), their partial
 * files go. */
void sa__cancel_children(sa_client *c, sa_job *parent)
{
    sa__link *l, *next;
    int64_t now = sa__engine_now();

    for (l = c->active.next; l != &c->active; l = next) {
        sa_job *k = JOB_OF(l, link);
        next = l->next;
        if (k->kind != KIND_CHILD || k->parent != parent) continue;
        dl_drop(parent->fetch, k);
        k->parent = NULL;
        (void)sa__jobsm_cancel(k->sm, now, 1);
        sa__engine_end(c, k);
    }
    parent->n_children = 0;
}

void sa__fetch_free(sa_job *j)
{
    if (j->fetch) {
        sa__folder_free(j->fetch->dir);
        sa__names_free(&j->fetch->names);
        sa__free(j->mem, j->fetch);
        j->fetch = NULL;
    }
    if (j->dl) {
        /* dropped when the child ended; a file still open is only closed
         * here (its folder may be gone) */
        if (j->dl->out.fd >= 0) close(j->dl->out.fd);
        sa__free(j->mem, j->dl->buf);
        sa__free(j->mem, j->dl);
        j->dl = NULL;
    }
}

/* ------------------------------------------------------------------ */
/* Starting a fetch                                                    */
/* ------------------------------------------------------------------ */

/* A ZIP result's files are in the result already: write them into the
 * folder now, each on its own; a failure counts for that file. */
static void write_result_files(sa_job *j, const sa_result *src)
{
    struct sa__fetch *fx = j->fetch;
    sa_result *r = sa__jobsm_fetch_result(j->sm);
    size_t i, n = sa_result_file_count(src), len;
    char written[SA_FILE_NAME_MAX], path[PATH_LEN], why[512], msg[768];

    for (i = 0; i < n; i++) {
        const void *data = sa_result_file_data(src, i, &len);
        const char *name = sa_result_file_name(src, i);
        int rc;

        if (!data) continue;  /* a file on disk already */
        rc = sa_folder_write(fx->dir, name, data, len, written,
                             sizeof written, why, sizeof why);
        if (rc == SA_OK && !join_path(fx->dir, written, path, sizeof path)) {
            snprintf(why, sizeof why, "the path is too long");
            rc = SA_ERR_FILE;
        }
        if (rc == SA_OK)
            rc = sa__result_add_file_path(r, written, path,
                                         sa_result_file_format(src, i));
        if (rc != SA_OK) {
            snprintf(msg, sizeof msg, "%s: %s", name ? name : "?",
                     rc == SA_ERR_NOMEM ? "out of memory" : why);
            sa__jobsm_fetch_fail(j->sm, child_status(rc), msg);
        }
    }
}

static int check_fetch_args(sa_client *c, sa_job *done)
{
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
    return SA_OK;
}

int sa_client_fetch(sa_client *client, sa_job *done_job,
                    const sa_fetch_options *user, sa_job **out)
{
    sa_client *c = client;
    sa_fetch_options full;   /* the caller's fields, defaults beyond */
    const sa_fetch_options *opts = &full;
    const char *folder;
    sa__job_config cfg;
    sa_job *j;
    int64_t now;
    char err[512];
    int rc;

    if (out) *out = NULL;
    if (!c) return SA_ERR_INVALID_ARGUMENT;
    if (!out)
        return sa__cfail(c, SA_ERR_INVALID_ARGUMENT, "out is NULL");
    sa_fetch_options_init(&full);
    if (user) {
        rc = sa__struct_in(&full, sizeof full, user, err, sizeof err);
        if (rc != SA_OK) return sa__cfail(c, rc, "fetch options: %s", err);
    }
    folder = opts->folder;
    rc = check_fetch_args(c, done_job);
    if (rc != SA_OK) return rc;
    j = job_new(c, KIND_FETCH);
    if (j) j->fetch = sa__calloc(j->mem, 1, sizeof *j->fetch);
    if (!j || !j->fetch) {
        if (j) sa__job_destroy(j);
        return sa__cfail(c, SA_ERR_NOMEM, "out of memory");
    }
    sa__names_init(&j->fetch->names, j->mem);
    /* no file name shows the key, even from a URL that echoes it: the
     * name written is the one the (scrubbed) result shows */
    j->fetch->names.secret = c->api_key;
    j->fetch->mem_max = c->opt.max_files_bytes;
    if (folder) {
        rc = sa__folder_open(j->mem, folder, &j->fetch->dir, err, sizeof err);
        if (rc != SA_OK) {
            sa__job_destroy(j);
            return sa__cfail(c, rc, "%s", err);
        }
        sa__folder_set_secret(j->fetch->dir, c->api_key);
    }
    sa__enter(c);
    now = sa__engine_now();
    j->cb = opts->callback;
    j->delete_after = opts->delete_after != 0;
    j->user_data = opts->user_data;
    j->api_version = done_job->api_version;
    j->deadline_at = now + c->opt.job_deadline_ms;
    sa__fetch_config(c, j, j->api_version, j->deadline_at, &cfg);
    /* into a folder, a ZIP result's files are written from done_job's
     * result, never copied */
    rc = sa__jobsm_new_fetch(&cfg, done_job->pub_result, folder == NULL, now,
                            &j->sm);
    if (rc != SA_OK) {
        sa__job_destroy(j);
        sa__leave(c);
        return sa__cfail(c, rc, rc == SA_ERR_NOMEM ? "out of memory"
                         : "the result cannot be downloaded");
    }
    if (folder) write_result_files(j, done_job->pub_result);
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

int sa_client_fetch_masks(sa_client *client, sa_job *done_job,
                          const char *folder, sa_job **out)
{
    sa_fetch_options o;

    sa_fetch_options_init(&o);
    o.folder = folder;
    return sa_client_fetch(client, done_job, &o, out);
}
