/* proto.c - the protocol without I/O: paths, bodies, answers classified.
 *
 * The protocol without I/O: endpoint paths, request bodies,
 * parsing of the 200 answers and classification of every other answer
 * (shared/API.md §3, §8).
 *
 * Everything a server sends is treated as hostile: ids and texts are
 * length-bounded, upload header names and values are checked so that they
 * cannot inject lines into the upload request, and numeric ids are copied
 * from the raw JSON text rather than through a double.
 */
#include "sa_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Longest error code / message / engine text kept. */
#define PROTO_MAX_TEXT 512
/* Upload instructions: at most this many headers and bytes per line. */
#define PROTO_MAX_HEADERS 32
#define PROTO_MAX_HEADER_NAME 256
#define PROTO_MAX_HEADER_VALUE 8192
#define PROTO_MAX_URL 16384
/* polling_interval is clamped to one day. */
#define PROTO_MAX_POLL_MS 86400000.0

/* ------------------------------------------------------------------ */
/* Paths                                                               */
/* ------------------------------------------------------------------ */

/* SA_API_V2_0 selects v2.0; any other value the default, v2.1. */
const char *sa__proto_file_path(int api_version, int upload_path)
{
    if (upload_path == SA_UPLOAD_GENERIC) return "/s2s/v2.0/file";
    return api_version == SA_API_V2_0 ? "/s2s/v2.0/file/skin-analysis"
                                      : "/s2s/v2.1/file/skin-analysis";
}

/* The status path is this path + "/" + sa__urlencode(task_id). */
const char *sa__proto_task_path(int api_version)
{
    return api_version == SA_API_V2_0 ? "/s2s/v2.0/task/skin-analysis"
                                      : "/s2s/v2.1/task/skin-analysis";
}

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

/* Append s when everything before succeeded. */
static int put(sa__buf *b, int rc, const char *s)
{
    return rc == SA_OK ? sa__buf_append(b, s, strlen(s)) : rc;
}

static int put_str(sa__buf *b, int rc, const char *s)
{
    return rc == SA_OK ? sa__json_put_string(b, s) : rc;
}

static int ascii_lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

static int eq_icase(const char *a, const char *b)
{
    if (!a || !b) return 0;
    for (; *a && *b; a++, b++)
        if (ascii_lower((unsigned char)*a) != ascii_lower((unsigned char)*b))
            return 0;
    return *a == *b;
}

/* Case-insensitive search of needle in hay[0..n); a pointer into hay or
 * NULL. */
static const char *find_icase(const char *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle), i, j;
    if (!hay || m == 0 || m > n) return NULL;
    for (i = 0; i + m <= n; i++) {
        for (j = 0; j < m; j++)
            if (ascii_lower((unsigned char)hay[i + j]) !=
                ascii_lower((unsigned char)needle[j]))
                break;
        if (j == m) return hay + i;
    }
    return NULL;
}

static int contains_icase(const char *s, const char *needle)
{
    return s && find_icase(s, strlen(s), needle) != NULL;
}

/* A server text made safe for messages and logs: at most max bytes (cut at
 * the last white space before the bound when there is one, else at a UTF-8
 * boundary: a word the server echoed, such as the API key, is kept whole
 * or dropped, not cut), control characters turned into spaces,
 * surrounding white space trimmed.  NULL for NULL or an empty result;
 * *nomem set when the copy failed. */
static char *dup_text(const sa_mem *mem, const char *s, size_t n, size_t max,
                      int *nomem)
{
    char *out;
    size_t i;
    while (n > 0 && (unsigned char)*s <= ' ') {
        s++;
        n--;
    }
    if (n > max) {
        n = max;
        for (i = n; i > 0 && (unsigned char)s[i] > ' '; i--) {}
        if (i > 0) n = i;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
    }
    while (n > 0 && (unsigned char)s[n - 1] <= ' ') n--;
    if (n == 0) return NULL;
    out = sa__malloc(mem, n + 1);
    if (!out) {
        *nomem = 1;
        return NULL;
    }
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = (c < 0x20 || c == 0x7F) ? ' ' : (char)c;
    }
    out[n] = '\0';
    return out;
}

static char *dup_cstr_text(const sa_mem *mem, const char *s, int *nomem)
{
    return s ? dup_text(mem, s, strlen(s), PROTO_MAX_TEXT, nomem) : NULL;
}

/* A string or integer JSON value as text (error codes may be numbers). */
static char *dup_scalar_text(const sa_mem *mem, const cJSON *item,
                             int *nomem)
{
    char *raw, *t;
    int nm = 0;
    raw = sa__json_dup_scalar(mem, item, &nm);
    if (nm) *nomem = 1;
    if (!raw) return NULL;
    t = dup_cstr_text(mem, raw, nomem);
    sa__free(mem, raw);
    return t;
}

/* Map a failure of sa__json_parse to a message. */
static int json_failure(int rc, const char *what, int max_depth, char *err,
                        size_t errlen)
{
    if (rc == SA_ERR_LIMIT)
        sa__errf(err, errlen, "%s: JSON nested deeper than %d levels", what,
                 max_depth > 0 ? max_depth : 64);
    else if (rc == SA_ERR_NOMEM)
        sa__errf(err, errlen, "%s: out of memory", what);
    else
        sa__errf(err, errlen, "%s: not valid JSON, or a string in it holds "
                 "a NUL (\\u0000)", what);
    return rc;
}

/* data of a 200 answer, or a message naming what was sent instead. */
static const cJSON *get_data(const cJSON *root, const char *what, char *err,
                             size_t errlen)
{
    const cJSON *data = sa__json_get(root, "data");
    const char *e;
    char msg[160];
    if (cJSON_IsObject(data)) return data;
    e = sa__json_string(root, "error");
    if (e) {
        sa__redact(msg, sizeof msg, e, NULL);
        sa__errf(err, errlen, "%s: no data object (error: %s)", what, msg);
    } else {
        sa__errf(err, errlen, "%s: no data object", what);
    }
    return NULL;
}

static int is_digits_id(const char *s, size_t n)
{
    size_t i = 0;
    if (n > 0 && s[0] == '-') i = 1;
    if (i == n) return 0;
    for (; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return 1;
}

/* The characters of an id (file_id, task_id): what the documented ids
 * are made of (standard and URL-safe base64: letters, digits, + / = - _)
 * and the other unreserved characters of a URL (. ~).  Nothing that could
 * end or split a JSON string, a header line or a path segment once
 * encoded, and never only dots ("." or ".." would be a dot segment of the
 * status URL).  The one id rule: ids in answers (file create, task
 * create, webhook payloads) and the task id a caller resumes
 * (sa_client_resume, request.c). */
int sa__proto_id_ok(const char *s, size_t n)
{
    size_t i, dots = 0;
    if (!s || n == 0 || n > SA__MAX_ID_LEN) return 0;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
            (c >= '0' && c <= '9'))
            continue;
        if (c == '.') {
            dots++;
            continue;
        }
        if (!strchr("+/=-_~", c) || c == '\0') return 0;
    }
    return dots < n;
}

/* An id: a non-empty string of id characters (sa__proto_id_ok), or an
 * integer copied from the raw text at `path` (never through a double;
 * without the raw text, integers up to 2^53 only).  NULL when absent or
 * unusable; *nomem on NOMEM. */
static char *dup_id(const sa_mem *mem, const cJSON *item, const char *body,
                    size_t len, const char *const *path, size_t npath,
                    int *nomem)
{
    const char *raw = NULL;
    size_t n = 0;
    char *s;

    if (cJSON_IsString(item)) {
        raw = item->valuestring;
        n = strlen(raw);
    } else if (cJSON_IsNumber(item)) {
        if (!sa__json_raw_at(body, len, path, npath, &raw, &n) ||
            !is_digits_id(raw, n))
            return sa__json_dup_scalar(mem, item, nomem);
    }
    if (!sa__proto_id_ok(raw, n)) return NULL;
    s = sa__strndup(mem, raw, n);
    if (!s) *nomem = 1;
    return s;
}

/* ------------------------------------------------------------------ */
/* File create                                                         */
/* ------------------------------------------------------------------ */

char *sa__proto_file_create_body(const sa_mem *mem, const char *content_type,
                                const char *file_name, uint64_t file_size)
{
    sa__buf b;
    char num[32];
    int rc;

    if (!content_type || !file_name) return NULL;
    snprintf(num, sizeof num, "%llu", (unsigned long long)file_size);
    sa__buf_init(&b, mem, 0);
    rc = put(&b, SA_OK, "{\"files\":[{\"content_type\":");
    rc = put_str(&b, rc, content_type);
    rc = put(&b, rc, ",\"file_name\":");
    rc = put_str(&b, rc, file_name);
    rc = put(&b, rc, ",\"file_size\":");
    rc = put(&b, rc, num);
    rc = put(&b, rc, "}]}");
    if (rc != SA_OK) {
        sa__buf_free(&b);
        return NULL;
    }
    return sa__buf_steal(&b);
}

void sa__upload_spec_free(const sa_mem *mem, sa__upload_spec *u)
{
    size_t i;
    if (!u) return;
    sa__free(mem, u->method);
    sa__free(mem, u->url);
    for (i = 0; i < u->n_headers; i++) sa__free(mem, u->headers[i]);
    sa__free(mem, u->headers);
    memset(u, 0, sizeof *u);
}

/* RFC 9110 token characters. */
static int is_token(const char *s, size_t max)
{
    size_t n = 0;
    for (; *s; s++, n++) {
        unsigned char c = (unsigned char)*s;
        if (n >= max) return 0;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
            (c >= '0' && c <= '9'))
            continue;
        if (!strchr("!#$%&'*+-.^_`|~", c)) return 0;
    }
    return n > 0;
}

/* Printable (or tab) with no CR/LF: safe inside one header line or a
 * request line. */
static int is_line_safe(const char *s, size_t max, int allow_space)
{
    size_t n = 0;
    for (; *s; s++, n++) {
        unsigned char c = (unsigned char)*s;
        if (n >= max) return 0;
        if (c == 0x7F || (c < 0x20 && c != '\t')) return 0;
        if (!allow_space && (c == ' ' || c == '\t')) return 0;
    }
    return 1;
}

int sa__proto_upload_header_allowed(const char *name)
{
    static const char *const exact[] = {
        "Content-Type", "Content-Length", "Content-MD5", "Content-Encoding",
        "Content-Language", "Content-Disposition", "Cache-Control", "Expires"
    };
    static const char *const prefixes[] = {"x-amz-", "x-goog-", "x-ms-"};
    size_t i;

    if (!name) return 0;
    for (i = 0; i < sizeof exact / sizeof exact[0]; i++)
        if (eq_icase(name, exact[i])) return 1;
    for (i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (find_icase(name, strlen(name), prefixes[i]) == name &&
            name[strlen(prefixes[i])] != '\0')
            return 1;
    return 0;
}

/* The slot cannot be used: why, and nothing of it is kept. */
static int slot_unusable(const sa_mem *mem, sa__upload_spec *up,
                         const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int slot_unusable(const sa_mem *mem, sa__upload_spec *up,
                         const char *fmt, ...)
{
    char why[sizeof up->unusable];
    va_list ap;
    va_start(ap, fmt);
    if (vsnprintf(why, sizeof why, fmt, ap) < 0) why[0] = '\0';
    va_end(ap);
    sa__upload_spec_free(mem, up);
    memcpy(up->unusable, why, sizeof why);
    if (!up->unusable[0]) snprintf(up->unusable, sizeof up->unusable, "?");
    return SA_OK;
}

/* Content-Length: decimal digits only (it is compared with the image
 * size). */
static int is_length(const char *v)
{
    if (!*v || strlen(v) > 19) return 0;
    for (; *v; v++)
        if (*v < '0' || *v > '9') return 0;
    return 1;
}

/* requests[0].headers -> "Name: value" lines, those that are allowed. */
static int parse_upload_headers(const sa_mem *mem, const cJSON *headers,
                                sa__upload_spec *up, char *err, size_t errlen)
{
    const cJSON *h;
    int n = cJSON_GetArraySize(headers);
    if (n > PROTO_MAX_HEADERS) {
        sa__errf(err, errlen, "file-create response: %d upload headers "
                 "(at most %d accepted)", n, PROTO_MAX_HEADERS);
        return SA_ERR_PROTOCOL;
    }
    up->headers = sa__calloc(mem, n > 0 ? (size_t)n : 1, sizeof(char *));
    if (!up->headers) return SA_ERR_NOMEM;
    cJSON_ArrayForEach(h, headers) {
        int nomem = 0;
        char *value;
        sa__buf line;
        if (cJSON_IsNull(h)) continue;
        if (!h->string || !sa__proto_upload_header_allowed(h->string))
            continue;  /* never sent: libcurl's, or no business of a PUT */
        value = sa__json_dup_scalar(mem, h, &nomem);
        if (nomem) return SA_ERR_NOMEM;
        if (!value || !is_token(h->string, PROTO_MAX_HEADER_NAME) ||
            !is_line_safe(value, PROTO_MAX_HEADER_VALUE, 1) ||
            (eq_icase(h->string, "Content-Length") && !is_length(value))) {
            sa__free(mem, value);
            return slot_unusable(mem, up, "the upload header '%.64s' has a "
                                 "value that cannot be sent", h->string);
        }
        sa__buf_init(&line, mem, 0);
        if (sa__buf_appendf(&line, "%s: %s", h->string, value) != SA_OK) {
            sa__free(mem, value);
            sa__buf_free(&line);
            return SA_ERR_NOMEM;
        }
        sa__free(mem, value);
        up->headers[up->n_headers] = sa__buf_steal(&line);
        if (!up->headers[up->n_headers]) return SA_ERR_NOMEM;
        up->n_headers++;
    }
    return SA_OK;
}

/* requests[0] -> method, url, headers. */
static int parse_upload_request(const sa_mem *mem, const cJSON *req,
                                sa__upload_spec *up, char *err, size_t errlen)
{
    const char *method = sa__json_string(req, "method");
    const char *url = sa__json_string(req, "url");
    const cJSON *headers = sa__json_get(req, "headers");

    if (!method) method = "PUT";
    if (!url) {
        sa__errf(err, errlen, "file-create response: "
                 "data.files[0].requests[0].url is missing");
        return SA_ERR_PROTOCOL;
    }
    /* readable, but never usable: asking again would not help */
    if (!is_token(method, 16))
        return slot_unusable(mem, up, "the upload method is not an HTTP "
                             "method");
    if (!sa__url_scheme(url) || !is_line_safe(url, PROTO_MAX_URL, 0))
        return slot_unusable(mem, up, "the upload URL is not an http(s) URL "
                             "on one line");
    if (headers && !cJSON_IsObject(headers)) {
        sa__errf(err, errlen,
                 "file-create response: upload headers are not an object");
        return SA_ERR_PROTOCOL;
    }
    up->method = sa__strdup(mem, method);
    up->url = sa__strdup(mem, url);
    if (!up->method || !up->url) return SA_ERR_NOMEM;
    return parse_upload_headers(mem, headers, up, err, errlen);
}

static int file_create_fields(const sa_mem *mem, const cJSON *root,
                              const char *body, size_t len, char **file_id,
                              sa__upload_spec *upload, char *err,
                              size_t errlen)
{
    static const char *const id_path[] = {"data", "files", "[0]",
                                          "file_id"};
    const cJSON *data, *files, *f0, *reqs;
    int nomem = 0;

    data = get_data(root, "file-create response", err, errlen);
    if (!data) return SA_ERR_PROTOCOL;
    files = sa__json_get(data, "files");
    f0 = cJSON_IsArray(files) ? cJSON_GetArrayItem(files, 0) : NULL;
    if (!cJSON_IsObject(f0)) {
        sa__errf(err, errlen, "file-create response: data.files[0] missing");
        return SA_ERR_PROTOCOL;
    }
    *file_id = dup_id(mem, sa__json_get(f0, "file_id"), body, len, id_path,
                      4, &nomem);
    if (nomem) return SA_ERR_NOMEM;
    if (!*file_id) {
        sa__errf(err, errlen, "file-create response: data.files[0].file_id "
                 "is missing or not a usable id");
        return SA_ERR_PROTOCOL;
    }
    reqs = sa__json_get(f0, "requests");
    if (!cJSON_IsArray(reqs) || !cJSON_IsObject(cJSON_GetArrayItem(reqs, 0))) {
        sa__errf(err, errlen, "file-create response: "
                 "data.files[0].requests[0] missing");
        return SA_ERR_PROTOCOL;
    }
    return parse_upload_request(mem, cJSON_GetArrayItem(reqs, 0), upload,
                                err, errlen);
}

int sa__proto_parse_file_create(const sa_mem *mem, const char *body,
                               size_t len, int max_depth, char **file_id,
                               sa__upload_spec *upload, char *err,
                               size_t errlen)
{
    cJSON *root;
    int rc;

    *file_id = NULL;
    memset(upload, 0, sizeof *upload);
    rc = sa__json_parse(body, len, max_depth, &root);
    if (rc != SA_OK)
        return json_failure(rc, "file-create response", max_depth, err,
                            errlen);
    rc = file_create_fields(mem, root, body, len, file_id, upload, err,
                            errlen);
    cJSON_Delete(root);
    if (rc != SA_OK) {
        if (rc == SA_ERR_NOMEM)
            sa__errf(err, errlen, "file-create response: out of memory");
        sa__free(mem, *file_id);
        *file_id = NULL;
        sa__upload_spec_free(mem, upload);
    }
    return rc;
}

/* ------------------------------------------------------------------ */
/* Task create                                                         */
/* ------------------------------------------------------------------ */

/* The miniserver_args object: enable_mask_overlay from mask_overlay (which
 * wins over the same key in the extra arguments), then the extra keys. */
static int put_miniserver_args(sa__buf *b, int rc, const sa__task_params *p)
{
    const cJSON *item;
    int first = 1;

    rc = put(b, rc, ",\"miniserver_args\":{");
    if (p->mask_overlay != -1) {
        rc = put(b, rc, p->mask_overlay ? "\"enable_mask_overlay\":true"
                                        : "\"enable_mask_overlay\":false");
        first = 0;
    }
    if (cJSON_IsObject(p->miniserver_args)) {
        cJSON_ArrayForEach(item, p->miniserver_args) {
            if (!item->string) continue;
            if (p->mask_overlay != -1 &&
                strcmp(item->string, "enable_mask_overlay") == 0)
                continue;
            rc = put(b, rc, first ? "" : ",");
            rc = put_str(b, rc, item->string);
            rc = put(b, rc, ":");
            if (rc == SA_OK) rc = sa__json_put_item(b, item);
            first = 0;
        }
    }
    return put(b, rc, "}");
}

static int has_members(const cJSON *obj)
{
    return cJSON_IsObject(obj) && obj->child != NULL;
}

/* NULL on NOMEM, or when p breaks its contract (no source or both, no
 * actions): the client's validation rules those out before. */
char *sa__proto_task_body(const sa_mem *mem, const sa__task_params *p)
{
    sa__buf b;
    size_t i;
    int rc;

    if (!p || !p->src_file_id == !p->src_file_url || !p->actions ||
        p->n_actions == 0)
        return NULL;
    sa__buf_init(&b, mem, 0);
    rc = put(&b, SA_OK, p->src_file_id ? "{\"src_file_id\":"
                                       : "{\"src_file_url\":");
    rc = put_str(&b, rc, p->src_file_id ? p->src_file_id : p->src_file_url);
    rc = put(&b, rc, ",\"dst_actions\":[");
    for (i = 0; i < p->n_actions; i++) {
        rc = put(&b, rc, i ? "," : "");
        rc = put_str(&b, rc, p->actions[i]);
    }
    rc = put(&b, rc, "]");
    if (p->mask_overlay != -1 || has_members(p->miniserver_args))
        rc = put_miniserver_args(&b, rc, p);
    rc = put(&b, rc, p->format == SA_FORMAT_ZIP ? ",\"format\":\"zip\""
                                                : ",\"format\":\"json\"");
    if (p->api_version == SA_API_V2_1 && p->pf_camera_kit != -1)
        rc = put(&b, rc, p->pf_camera_kit ? ",\"pf_camera_kit\":true"
                                          : ",\"pf_camera_kit\":false");
    rc = put(&b, rc, "}");
    if (rc != SA_OK) {
        sa__buf_free(&b);
        return NULL;
    }
    return sa__buf_steal(&b);
}

int sa__proto_parse_task_create(const sa_mem *mem, const char *body,
                               size_t len, int max_depth, char **task_id,
                               char *err, size_t errlen)
{
    static const char *const id_path[] = {"data", "task_id"};
    const cJSON *data;
    cJSON *root;
    int rc, nomem = 0;

    *task_id = NULL;
    rc = sa__json_parse(body, len, max_depth, &root);
    if (rc != SA_OK)
        return json_failure(rc, "task-create response", max_depth, err,
                            errlen);
    data = get_data(root, "task-create response", err, errlen);
    rc = SA_ERR_PROTOCOL;
    if (data) {
        *task_id = dup_id(mem, sa__json_get(data, "task_id"), body, len,
                          id_path, 2, &nomem);
        if (nomem)
            rc = SA_ERR_NOMEM;
        else if (*task_id)
            rc = SA_OK;
        else
            sa__errf(err, errlen, "task-create response: data.task_id is "
                     "missing or not a usable id");
    }
    cJSON_Delete(root);
    if (rc == SA_ERR_NOMEM)
        sa__errf(err, errlen, "task-create response: out of memory");
    return rc;
}

/* ------------------------------------------------------------------ */
/* Status                                                              */
/* ------------------------------------------------------------------ */

void sa__status_info_free(const sa_mem *mem, sa__status_info *s)
{
    if (!s) return;
    sa__free(mem, s->engine_error);
    sa__free(mem, s->engine_message);
    sa_result_free(s->result);
    s->engine_error = NULL;
    s->engine_message = NULL;
    s->result = NULL;
}

static int parse_task_status(const char *s)
{
    if (eq_icase(s, "running")) return SA__TASK_RUNNING;
    if (eq_icase(s, "success")) return SA__TASK_SUCCESS;
    if (eq_icase(s, "error")) return SA__TASK_ERROR;
    return -1;
}

static int status_fields(const sa_mem *mem, const cJSON *root,
                         const char *task_id, sa__status_info *out, char *err,
                         size_t errlen)
{
    const cJSON *data;
    const char *ts;
    char *c;
    double v;
    int nomem = 0;

    data = get_data(root, "status response", err, errlen);
    if (!data) return SA_ERR_PROTOCOL;
    ts = sa__json_string(data, "task_status");
    out->task_status = parse_task_status(ts);
    if (!ts) {
        sa__errf(err, errlen, "status response: no data.task_status");
        return SA_ERR_PROTOCOL;
    }
    if (out->task_status < 0) {
        /* not documented ("queued", "pending"...): the task has not ended
         * as far as we can tell, so it is polled on like a running one */
        out->task_status = SA__TASK_UNKNOWN;
        sa__redact(out->unknown_status, sizeof out->unknown_status, ts,
                   NULL);
        for (c = out->unknown_status; *c; c++)  /* it goes into a log line */
            if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
    }
    if (sa__json_number(data, "polling_interval", &v) && v >= 1.0)
        out->polling_interval_ms =
            (long)(v > PROTO_MAX_POLL_MS ? PROTO_MAX_POLL_MS : v);
    out->engine_error = dup_scalar_text(mem, sa__json_get(data, "error"),
                                        &nomem);
    out->engine_message =
        dup_cstr_text(mem, sa__json_string(data, "error_message"), &nomem);
    if (nomem) return SA_ERR_NOMEM;
    if (out->task_status != SA__TASK_SUCCESS) return SA_OK;
    return sa__result_from_results(mem, sa__json_get(data, "results"), task_id,
                                  &out->result, err, errlen);
}

int sa__proto_parse_status(const sa_mem *mem, const char *body, size_t len,
                          int max_depth, const char *task_id,
                          sa__status_info *out, char *err, size_t errlen)
{
    cJSON *root;
    int rc;

    memset(out, 0, sizeof *out);
    out->polling_interval_ms = -1;
    rc = sa__json_parse(body, len, max_depth, &root);
    if (rc != SA_OK)
        return json_failure(rc, "status response", max_depth, err, errlen);
    rc = status_fields(mem, root, task_id, out, err, errlen);
    if (rc == SA_OK && out->result) {
        /* sa_result_json gives data.results as sent: its bytes in the body
         * (cJSON's "first match", as sa__json_get), not a re-print */
        static const char *const path[2] = {"data", "results"};
        const char *raw;
        size_t n;
        rc = sa__json_raw_at(body, len, path, 2, &raw, &n)
                 ? sa__result_set_raw_json(out->result, raw, n)
                 : sa__result_set_json_item(
                       out->result,
                       sa__json_get(sa__json_get(root, "data"), "results"));
    }
    cJSON_Delete(root);
    if (rc != SA_OK) {
        if (rc == SA_ERR_NOMEM)
            sa__errf(err, errlen, "status response: out of memory");
        sa__status_info_free(mem, out);
        out->polling_interval_ms = -1;
    }
    return rc;
}

/* ------------------------------------------------------------------ */
/* Classification of non-2xx answers                                   */
/* ------------------------------------------------------------------ */

void sa__api_error_free(const sa_mem *mem, sa__api_error *e)
{
    if (!e) return;
    sa__free(mem, e->error_code);
    sa__free(mem, e->message);
    e->error_code = NULL;
    e->message = NULL;
}

/* error_code and error (or message, or error.{code,message}) of a JSON
 * envelope.  SA_OK, SA_ERR_NOMEM, or another code when not JSON. */
static int extract_json(const sa_mem *mem, const char *body, size_t len,
                        int max_depth, sa__api_error *out)
{
    const cJSON *e, *code;
    const char *msg;
    cJSON *root;
    int nomem = 0, rc;

    rc = sa__json_parse(body, len, max_depth, &root);
    if (rc != SA_OK) return rc;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return SA_ERR_PROTOCOL;
    }
    e = sa__json_get(root, "error");
    code = sa__json_get(root, "error_code");
    msg = cJSON_IsString(e) ? e->valuestring
                            : sa__json_string(root, "message");
    if (cJSON_IsObject(e)) { /* {"error": {"code": .., "message": ..}} */
        if (!code) code = sa__json_get(e, "code");
        msg = sa__json_string(e, "message");
    }
    out->error_code = dup_scalar_text(mem, code, &nomem);
    out->message = dup_cstr_text(mem, msg, &nomem);
    cJSON_Delete(root);
    return nomem ? SA_ERR_NOMEM : SA_OK;
}

/* The text between <tag> and </tag> (case-insensitive), or NULL. */
static char *xml_element(const sa_mem *mem, const char *body, size_t len,
                         const char *open, const char *close, int *nomem)
{
    const char *start = find_icase(body, len, open), *end;
    if (!start) return NULL;
    start += strlen(open);
    end = find_icase(start, len - (size_t)(start - body), close);
    if (!end) return NULL;
    return dup_text(mem, start, (size_t)(end - start), PROTO_MAX_TEXT, nomem);
}

/* S3 XML (<Code>, <Message>), an HTML <title>, or the first line. */
static int extract_text(const sa_mem *mem, const char *body, size_t len,
                        sa__api_error *out)
{
    int nomem = 0;
    size_t n = 0;
    if (!body || len == 0) return SA_OK;
    out->error_code = xml_element(mem, body, len, "<Code>", "</Code>",
                                  &nomem);
    out->message = xml_element(mem, body, len, "<Message>", "</Message>",
                               &nomem);
    if (!out->message && !nomem)
        out->message = xml_element(mem, body, len, "<title>", "</title>",
                                   &nomem);
    if (!out->message && !nomem)
        out->message = xml_element(mem, body, len, "<h1>", "</h1>", &nomem);
    if (!out->message && !nomem && !find_icase(body, len, "<")) {
        while (n < len && (unsigned char)body[n] <= ' ') n++;
        while (n < len && body[n] != '\n' && body[n] != '\r') n++;
        out->message = dup_text(mem, body, n, PROTO_MAX_TEXT, &nomem);
    }
    return nomem ? SA_ERR_NOMEM : SA_OK;
}

static int is_auth_code(const char *code)
{
    return eq_icase(code, "InvalidApiKey") ||
           eq_icase(code, "InactiveApiKey") ||
           eq_icase(code, "ExpiredApiKey") ||
           eq_icase(code, "InvalidAccessToken");
}

static int classify_status(int step, long http, const sa__api_error *e)
{
    if (http == 429) return SA_ERR_RATE_LIMITED;
    if (http == 408) return SA_ERR_TIMEOUT;
    if (http >= 500 && http <= 599) {
        if (step == SA__STEP_POLL &&
            (contains_icase(e->message, "task execution timed out") ||
             eq_icase(e->error_code, "TaskTimeout")))
            return SA_ERR_TASK_TIMEOUT;
        return SA_ERR_SERVER;
    }
    if (http < 400 || http > 499) return SA_ERR_PROTOCOL;
    if (step == SA__STEP_UPLOAD) return SA_ERR_UPLOAD;
    if (http == 401 || http == 403 || is_auth_code(e->error_code))
        return SA_ERR_AUTH;
    if (eq_icase(e->error_code, "CreditInsufficiency")) return SA_ERR_CREDITS;
    if (step == SA__STEP_POLL &&
        (http == 404 || eq_icase(e->error_code, "InvalidTaskId") ||
         contains_icase(e->message, "invalid task id")))
        return SA_ERR_TASK_EXPIRED;
    return SA_ERR_BAD_REQUEST;
}

/* As documented in sa_internal.h, plus: 403 from the API host is AUTH
 * (an auth error_code is AUTH whatever the status), 408 is TIMEOUT, and a
 * status outside 4xx/5xx is PROTOCOL.  On NOMEM while copying the texts,
 * out->status is SA_ERR_NOMEM. */
int sa__proto_classify(const sa_mem *mem, int step, long http_status,
                      const char *body, size_t len, int max_depth,
                      sa__api_error *out)
{
    const char *p = body;
    int rc = SA_ERR_PROTOCOL;

    memset(out, 0, sizeof *out);
    out->http_status = http_status;
    if (!body) len = 0;
    while (len > 0 && p < body + len && (unsigned char)*p <= ' ') p++;
    if (len > 0 && p < body + len && (*p == '{' || *p == '['))
        rc = extract_json(mem, body, len, max_depth, out);
    if (rc != SA_OK && rc != SA_ERR_NOMEM) {
        sa__api_error_free(mem, out);
        rc = extract_text(mem, body, len, out);
    }
    if (rc == SA_ERR_NOMEM) {
        sa__api_error_free(mem, out);
        out->status = SA_ERR_NOMEM;
        return out->status;
    }
    out->status = classify_status(step, http_status, out);
    return out->status;
}
