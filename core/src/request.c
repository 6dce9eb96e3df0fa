/* request.c - a sa_request: checked before anything is sent, submitted. */

/*
 * VALIDATE (docs/architecture.md) runs in sa_client_submit before a job
 * exists: nothing is sent and nothing is billed until it passes.  The
 * checks: the actions (names, one tier, 1..16, through the catalogue),
 * exactly one image source, the request's own options, miniserver_args,
 * the syntax of an image_url or file_id, and for a file or buffer the
 * image itself: readable, a regular file, under 10 MB, JPEG or PNG by its
 * content, large enough for the tier (read from the image headers).  This
 * is the only file I/O of validation: one open per file for every check.
 * A valid request becomes a job (drive.c), or waits in the queued list
 * when max_jobs jobs run.  sa_client_resume makes a job for a task that
 * exists (its id checked here too): it creates nothing and starts at
 * polling.
 */
#include "sa_client.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_URL_LEN 8192
#define MAX_ID_LEN 1024
#define MAX_NAME_LEN 255

static void request_defaults(sa_request *req)
{
    memset(req, 0, sizeof *req);
    req->struct_size = sizeof *req;
    req->format = SA_FORMAT_JSON;
    req->api_version = SA_API_DEFAULT;
    req->pf_camera_kit = -1;
    req->mask_overlay = -1;
}

void sa_request_init_sized(sa_request *req, size_t struct_size)
{
    sa_request d;

    request_defaults(&d);
    sa__struct_init(req, struct_size, &d, sizeof d);
}

static int check_actions(sa_client *c, const sa_request *req, sa_job *j,
                         int *tier)
{
    char err[256] = "";
    size_t i;
    int rc;

    if (req->n_actions > 0 && !req->actions)
        return sa__cfail(c, SA_ERR_INVALID_ARGUMENT, "actions is NULL but "
                         "n_actions is %zu", req->n_actions);
    for (i = 0; i < req->n_actions; i++)
        if (!req->actions[i])
            return sa__cfail(c, SA_ERR_UNKNOWN_ACTION, "actions[%zu] is NULL",
                             i);
    rc = sa__catalog_check_actions(req->actions, req->n_actions, tier,
                                  j->actions, &j->n_actions, err, sizeof err);
    if (rc != SA_OK)
        return sa__cfail(c, rc, "%s", err[0] ? err : sa_strerror(rc));
    j->units = sa__catalog_units(*tier, j->n_actions);
    return SA_OK;
}

static int check_source_count(sa_client *c, const sa_request *req)
{
    int n = !!req->file_path + !!req->buffer + !!req->image_url +
            !!req->file_id;
    if (!req->buffer && req->buffer_len > 0)
        return sa__cfail(c, SA_ERR_SOURCE, "buffer_len is %zu but buffer is "
                         "NULL", req->buffer_len);
    if (n == 0)
        return sa__cfail(c, SA_ERR_SOURCE, "no image: set exactly one of "
                         "file_path, buffer, image_url or file_id");
    if (n > 1)
        return sa__cfail(c, SA_ERR_SOURCE, "%d image sources are set "
                         "(%s%s%s%s): set exactly one", n,
                         req->file_path ? "file_path " : "",
                         req->buffer ? "buffer " : "",
                         req->image_url ? "image_url " : "",
                         req->file_id ? "file_id " : "");
    return SA_OK;
}

static int check_request_options(sa_client *c, const sa_request *req,
                                 sa_job *j)
{
    if (req->format != SA_FORMAT_JSON && req->format != SA_FORMAT_ZIP)
        return sa__cfail(c, SA_ERR_BAD_OPTION, "format must be SA_FORMAT_JSON "
                         "(0) or SA_FORMAT_ZIP (1), not %d", req->format);
    if (req->api_version != SA_API_DEFAULT && req->api_version != SA_API_V2_0
        && req->api_version != SA_API_V2_1)
        return sa__cfail(c, SA_ERR_BAD_OPTION, "api_version must be "
                         "SA_API_V2_0 (20), SA_API_V2_1 (21) or "
                         "SA_API_DEFAULT (0), not %d", req->api_version);
    j->api_version = req->api_version ? req->api_version : c->opt.api_version;
    if (req->pf_camera_kit < -1 || req->pf_camera_kit > 1)
        return sa__cfail(c, SA_ERR_BAD_OPTION, "pf_camera_kit must be -1 (not "
                         "sent), 0 or 1, not %d", req->pf_camera_kit);
    if (req->pf_camera_kit != -1 && j->api_version != SA_API_V2_1)
        return sa__cfail(c, SA_ERR_BAD_OPTION, "pf_camera_kit is a v2.1 "
                         "option and the v2.0 API refuses it: leave it at -1 "
                         "or use api_version SA_API_V2_1");
    if (req->mask_overlay < -1 || req->mask_overlay > 1)
        return sa__cfail(c, SA_ERR_BAD_OPTION, "mask_overlay must be -1 (not "
                         "sent), 0 or 1, not %d", req->mask_overlay);
    if (req->deadline_ms < 0)
        return sa__cfail(c, SA_ERR_BAD_OPTION, "deadline_ms must be 0 (the "
                         "client's job_deadline_ms) or positive, not %ld",
                         req->deadline_ms);
    j->format = req->format;
    j->pf_camera_kit = req->pf_camera_kit;
    j->mask_overlay = req->mask_overlay;
    j->deadline_ms = req->deadline_ms;
    j->delete_after = req->delete_after != 0;
    return SA_OK;
}

static int check_miniserver(sa_client *c, const sa_request *req, sa_job *j)
{
    char err[256] = "";
    const char *text = req->miniserver_args_json;
    int rc;

    if (!text) return SA_OK;
    rc = sa__json_parse(text, strlen(text), c->opt.max_json_depth, &j->msargs);
    if (rc == SA_ERR_NOMEM) return sa__cfail(c, rc, "out of memory");
    if (rc != SA_OK)
        return sa__cfail(c, SA_ERR_BAD_OPTION, "miniserver_args_json is not "
                         "valid JSON (or nested too deeply)");
    if (!cJSON_IsObject(j->msargs))
        return sa__cfail(c, SA_ERR_BAD_OPTION, "miniserver_args_json must be "
                         "a JSON object such as "
                         "{\"enable_mask_overlay\":true}");
    if (req->mask_overlay != -1 &&
        cJSON_GetObjectItemCaseSensitive(j->msargs, "enable_mask_overlay"))
        return sa__cfail(c, SA_ERR_BAD_OPTION, "enable_mask_overlay is set "
                         "both by mask_overlay and in miniserver_args_json: "
                         "set it once");
    rc = sa__catalog_check_miniserver_args(j->msargs, err, sizeof err);
    if (rc != SA_OK)
        return sa__cfail(c, SA_ERR_BAD_OPTION, "miniserver_args_json: %s",
                         err[0] ? err : "not accepted");
    return SA_OK;
}

static int check_image_size(sa_client *c, const sa_image_info *info,
                            int tier, const char *what)
{
    uint32_t shortside = info->width < info->height ? info->width
                                                    : info->height;
    int min = tier == SA_TIER_HD ? SA_MIN_SIDE_HD : SA_MIN_SIDE_SD;
    if ((long)shortside >= min) return SA_OK;
    return sa__cfail(c, SA_ERR_IMAGE_TOO_SMALL, "%s is %ux%u px; %s actions "
                     "need a short side of at least %d px: use a larger "
                     "photo%s", what,
                     (unsigned)info->width, (unsigned)info->height,
                     tier == SA_TIER_HD ? "HD" : "SD", min,
                     tier == SA_TIER_HD ? " or the SD actions (480 px)" : "");
}

static const char *content_type_of(const sa_image_info *info)
{
    return info->format == SA_IMAGE_PNG ? "image/png" : "image/jpeg";
}

static int check_file(sa_client *c, const char *path, sa_job *j,
                      sa_image_info *info)
{
    struct stat st;
    char eb[128];
    int fd, rc, st_errno;

    if (!*path) return sa__cfail(c, SA_ERR_FILE, "file_path is empty");
    /* One open for every check: O_NONBLOCK keeps open() from blocking on
     * a FIFO, which fstat then refuses.  The header is probed only in a
     * regular file under the size limit; the descriptor is closed before
     * any error is reported. */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return sa__cfail(c, SA_ERR_FILE, "cannot read image file '%s': %s",
                         path, sa__strerror(errno, eb, sizeof eb));
    st_errno = fstat(fd, &st) != 0 ? errno : 0;
    rc = SA_ERR_FILE;
    if (!st_errno && S_ISREG(st.st_mode) && st.st_size < SA_MAX_FILE_SIZE)
        rc = sa__image_probe_fd(fd, info);
    close(fd);
    if (st_errno)
        return sa__cfail(c, SA_ERR_FILE, "cannot read image file '%s': %s",
                         path, sa__strerror(st_errno, eb, sizeof eb));
    if (!S_ISREG(st.st_mode))
        return sa__cfail(c, SA_ERR_FILE, "'%s' is not a regular file", path);
    if (st.st_size >= SA_MAX_FILE_SIZE)
        return sa__cfail(c, SA_ERR_IMAGE_TOO_LARGE, "image file '%s' is %lld "
                         "bytes; the API takes files under 10,000,000 bytes: "
                         "resize or recompress it", path,
                         (long long)st.st_size);
    if (rc == SA_ERR_FILE)
        return sa__cfail(c, rc, "cannot read image file '%s'", path);
    if (rc != SA_OK || st.st_size == 0)
        return sa__cfail(c, SA_ERR_IMAGE_FORMAT, "'%s' is not a JPEG or PNG "
                         "image (the format is read from the content, not the "
                         "name)", path);
    j->file_size = (uint64_t)st.st_size;
    return SA_OK;
}

static int check_buffer(sa_client *c, const sa_request *req, sa_job *j,
                        sa_image_info *info)
{
    if (req->buffer_len == 0)
        return sa__cfail(c, SA_ERR_SOURCE,
                         "buffer is set but buffer_len is 0");
    if (req->buffer_len >= SA_MAX_FILE_SIZE)
        return sa__cfail(c, SA_ERR_IMAGE_TOO_LARGE, "the image buffer is %zu "
                         "bytes; the API takes files under 10,000,000 bytes: "
                         "resize or recompress it", req->buffer_len);
    if (sa_image_probe_buffer(req->buffer, req->buffer_len, info) != SA_OK)
        return sa__cfail(c, SA_ERR_IMAGE_FORMAT, "the image buffer is not a "
                         "JPEG or PNG image (checked by its content)");
    j->buffer = req->buffer;
    j->file_size = req->buffer_len;
    return SA_OK;
}

static int check_url_or_id(sa_client *c, const sa_request *req)
{
    if (req->image_url) {
        if (!sa__url_scheme(req->image_url))
            return sa__cfail(c, SA_ERR_SOURCE, "image_url must be an http:// "
                             "or https:// URL the API servers can download");
        if (strlen(req->image_url) > MAX_URL_LEN ||
            sa__has_space_or_ctl(req->image_url))
            return sa__cfail(c, SA_ERR_SOURCE, "image_url is too long or has "
                             "spaces or control characters: "
                             "percent-encode it");
    }
    if (req->file_id &&
        (!*req->file_id || strlen(req->file_id) > MAX_ID_LEN ||
         sa__has_space_or_ctl(req->file_id)))
        return sa__cfail(c, SA_ERR_SOURCE, "file_id must be the non-empty id "
                         "a file upload returned");
    return SA_OK;
}

/* The name sent in the file slot request. */
static int pick_file_name(sa_client *c, const sa_request *req, sa_job *j,
                          const sa_image_info *info)
{
    const char *name = req->file_name, *slash;
    char fallback[16];

    if (name) {
        if (!*name || strlen(name) > MAX_NAME_LEN || sa__has_ctl(name))
            return sa__cfail(c, SA_ERR_BAD_OPTION, "file_name must be 1..%d "
                             "printable characters", MAX_NAME_LEN);
    } else if (req->file_path) {
        slash = strrchr(req->file_path, '/');
        name = slash ? slash + 1 : req->file_path;
        if (!*name || strlen(name) > MAX_NAME_LEN || sa__has_ctl(name))
            name = NULL;
    }
    if (!name) {
        snprintf(fallback, sizeof fallback, "image.%s",
                 info->format == SA_IMAGE_PNG ? "png" : "jpg");
        name = fallback;
    }
    j->file_name = sa__strdup(j->mem, name);
    return j->file_name ? SA_OK : sa__cfail(c, SA_ERR_NOMEM, "out of memory");
}

/* The image itself: readable, small enough, JPEG/PNG, big enough. */
static int check_image(sa_client *c, const sa_request *req, sa_job *j,
                       int tier)
{
    sa_image_info info;
    int rc;

    sa_image_info_init(&info);
    if (req->file_path) rc = check_file(c, req->file_path, j, &info);
    else rc = check_buffer(c, req, j, &info);
    if (rc == SA_OK)
        rc = check_image_size(c, &info, tier, req->file_path
                              ? "the image file" : "the image buffer");
    if (rc != SA_OK) return rc;
    j->content_type = content_type_of(&info);
    rc = pick_file_name(c, req, j, &info);
    if (rc == SA_OK && req->file_path) {
        j->file_path = sa__strdup(j->mem, req->file_path);
        if (!j->file_path) rc = sa__cfail(c, SA_ERR_NOMEM, "out of memory");
    }
    return rc;
}

static int validate(sa_client *c, const sa_request *req, sa_job *j)
{
    int tier = SA_TIER_SD, rc;

    rc = check_actions(c, req, j, &tier);
    if (rc == SA_OK) rc = check_source_count(c, req);
    if (rc == SA_OK) rc = check_request_options(c, req, j);
    if (rc == SA_OK) rc = check_miniserver(c, req, j);
    if (rc == SA_OK) rc = check_url_or_id(c, req);
    if (rc != SA_OK) return rc;
    if (req->file_path || req->buffer) return check_image(c, req, j, tier);
    if (req->image_url) j->image_url = sa__strdup(j->mem, req->image_url);
    if (req->file_id) j->file_id = sa__strdup(j->mem, req->file_id);
    if ((req->image_url && !j->image_url) || (req->file_id && !j->file_id))
        return sa__cfail(c, SA_ERR_NOMEM, "out of memory");
    return SA_OK;
}

/* A validated job starts now, or waits in the queue under max_jobs. */
static int start_or_queue(sa_client *c, sa_job *j)
{
    int rc;

    if (c->opt.max_jobs > 0 && sa__n_running(c) >= c->opt.max_jobs) {
        j->last_state = SA_JOB_QUEUED;
        sa__set_where(c, j, J_QUEUED);
        return SA_OK;
    }
    rc = sa__start_job(c, j, sa__engine_now());
    if (rc == SA_ERR_NOMEM) sa__cfail(c, rc, "out of memory");
    else if (rc != SA_OK)
        sa__cfail(c, rc, "the request could not be turned into a job");
    return rc;
}

int sa__job_call_begin(sa_client *c, sa_job **out, int args_ok,
                       const char *bad_args)
{
    if (out) *out = NULL;
    if (!c) return SA_ERR_INVALID_ARGUMENT;
    if (!args_ok) return sa__cfail(c, SA_ERR_INVALID_ARGUMENT, "%s", bad_args);
    if (c->freeing || c->free_pending)
        return sa__cfail(c, SA_ERR_BUSY, "the client is being freed");
    c->errmsg[0] = '\0';
    return SA_OK;
}

int sa_client_submit(sa_client *client, const sa_request *user,
                     sa_job **out)
{
    sa_client *c = client;
    sa_request full;   /* the caller's fields, defaults beyond */
    const sa_request *req = &full;
    char err[256];
    sa_job *j;
    int rc;

    rc = sa__job_call_begin(c, out, user && out, "sa_client_submit needs "
                            "a request (sa_request_init) and an out pointer");
    if (rc != SA_OK) return rc;
    request_defaults(&full);
    rc = sa__struct_in(&full, sizeof full, user, err, sizeof err);
    if (rc != SA_OK) return sa__cfail(c, rc, "request: %s", err);
    j = sa__job_alloc(c, req);
    if (!j) return sa__cfail(c, SA_ERR_NOMEM, "out of memory");
    sa__enter(c);
    rc = validate(c, req, j);
    if (rc == SA_OK) rc = start_or_queue(c, j);
    if (rc != SA_OK) {
        sa__job_destroy(j);
    } else {
        *out = j;
        sa__jlog(c, SA_LOG_DEBUG, "job #%lu submitted (%zu actions, %d "
                 "units%s)", j->seq, j->n_actions, j->units,
                 j->where == J_QUEUED ? ", queued" : "");
    }
    sa__leave(c);
    return rc;
}

/* ================================================================== */
/* Resume: a job for a task that exists                               */
/* ================================================================== */

static void resume_defaults(sa_resume_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->struct_size = sizeof *opts;
    opts->api_version = SA_API_DEFAULT;
}

void sa_resume_options_init_sized(sa_resume_options *opts, size_t struct_size)
{
    sa_resume_options d;

    resume_defaults(&d);
    sa__struct_init(opts, struct_size, &d, sizeof d);
}

/* The id of an existing task, checked by the rule every id from the API
 * meets (sa__proto_id_ok: the same characters a task create answer may
 * hold, so any id this library ever returned resumes).  It becomes the
 * last segment of the status path percent-encoded (sa__urlencode): '/'
 * '+' '=' cannot change the path, and nothing can reach the query or a
 * header. */
static int check_task_id(sa_client *c, const char *task_id)
{
    char why[CLIENT_ERRLEN];
    int rc = sa__task_id_check(task_id, why, sizeof why);

    return rc == SA_OK ? SA_OK : sa__cfail(c, rc, "%s", why);
}

static int check_resume_options(sa_client *c, const sa_resume_options *o,
                                sa_job *j)
{
    if (o->api_version != SA_API_DEFAULT && o->api_version != SA_API_V2_0
        && o->api_version != SA_API_V2_1)
        return sa__cfail(c, SA_ERR_BAD_OPTION, "api_version must be "
                         "SA_API_V2_0 (20), SA_API_V2_1 (21) or "
                         "SA_API_DEFAULT (0), not %d", o->api_version);
    if (o->deadline_ms < 0)
        return sa__cfail(c, SA_ERR_BAD_OPTION, "deadline_ms must be 0 (the "
                         "client's job_deadline_ms) or positive, not %ld",
                         o->deadline_ms);
    j->api_version = o->api_version ? o->api_version : c->opt.api_version;
    j->deadline_ms = o->deadline_ms;
    j->format = SA_FORMAT_JSON;  /* unused: the answer says which */
    j->pf_camera_kit = -1;
    j->mask_overlay = -1;
    return SA_OK;
}

int sa_client_resume(sa_client *client, const char *task_id,
                     const sa_resume_options *user, sa_job **out)
{
    sa_client *c = client;
    sa_resume_options full;   /* the caller's fields, defaults beyond */
    const sa_resume_options *opts = &full;
    char err[256];
    sa_request req;
    sa_job *j;
    int rc;

    rc = sa__job_call_begin(c, out, out != NULL, "sa_client_resume needs "
                            "an out pointer");
    if (rc != SA_OK) return rc;
    resume_defaults(&full);
    if (user) {
        rc = sa__struct_in(&full, sizeof full, user, err, sizeof err);
        if (rc != SA_OK) return sa__cfail(c, rc, "resume options: %s", err);
    }
    rc = check_task_id(c, task_id);
    if (rc != SA_OK) return rc;
    sa_request_init(&req);
    req.callback = opts->callback;
    req.user_data = opts->user_data;
    j = sa__job_alloc(c, &req);
    if (!j) return sa__cfail(c, SA_ERR_NOMEM, "out of memory");
    sa__enter(c);
    rc = check_resume_options(c, opts, j);
    if (rc == SA_OK) {
        j->task_id = sa__strdup(j->mem, task_id);
        rc = j->task_id ? SA_OK : sa__cfail(c, SA_ERR_NOMEM, "out of memory");
    }
    if (rc == SA_OK) rc = start_or_queue(c, j);
    if (rc != SA_OK) {
        sa__job_destroy(j);
    } else {
        *out = j;
        sa__jlog(c, SA_LOG_INFO, "job #%lu resumes task %s%s", j->seq,
                 task_id, j->where == J_QUEUED ? " (queued)" : "");
    }
    sa__leave(c);
    return rc;
}
