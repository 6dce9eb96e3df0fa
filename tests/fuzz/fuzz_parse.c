/*
 * fuzz_parse.c - libFuzzer target over everything that reads a response
 * body: sa__json_parse (checked against cJSON itself), the file-create,
 * task-create and status parsers, sa__proto_classify for several steps and
 * HTTP statuses, and sa_result_parse of both kinds.  Besides the sanitizers
 * it checks the invariants the rest of the library relies on and abort()s
 * when one breaks.
 */
#include "sa_internal.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_DEPTH 64

static void require(int cond)
{
    if (!cond) abort();
}

/* No control characters (CR/LF above all) and bounded; a header value may
 * hold a tab (HTTP allows HTAB in field values), a URL may not. */
static void check_text(const char *s, size_t max, int tab_ok)
{
    size_t n = 0;
    if (!s) return;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        require((c >= 0x20 && c != 0x7F) || (tab_ok && c == '\t'));
    }
    require(n > 0 && n <= max);
}

/* 1 when a string of the JSON text (valid: the scanner accepted it)
 * holds a NUL, raw or as \u0000: found by a walk of its own, not the
 * scanner's. */
static int has_nul_in_string(const char *text, size_t size)
{
    size_t i;
    int in_string = 0;
    for (i = 0; i < size; i++) {
        char c = text[i];
        if (!in_string) {
            in_string = c == '"';
            continue;
        }
        if (c == '\0') return 1;
        if (c == '"') {
            in_string = 0;
        } else if (c == '\\' && i + 1 < size) {
            if (text[i + 1] == 'u' && i + 5 < size &&
                memcmp(text + i + 2, "0000", 4) == 0)
                return 1;
            i++;
        }
    }
    return 0;
}

/* An id the client would put in a request: base64 and URL-unreserved
 * characters only, not only dots (checked here independently of proto). */
static void check_id(const char *id)
{
    size_t n = strlen(id), dots = 0, i;
    require(n > 0 && n <= 4096);
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)id[i];
        if (c == '.') dots++;
        require((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                (c >= '0' && c <= '9') || (c && strchr("+/=-_.~", c)));
    }
    require(dots < n);
}

/* The scanner accepts exactly a subset of what cJSON accepts, so a NULL
 * from cJSON after an accepted scan (reported as NOMEM) is a bug.  No text
 * with a NUL in a string is accepted (cJSON would cut the string); one
 * refused only for that (sa__json_nul_only) does hold one. */
static void fuzz_json(const char *text, size_t size)
{
    static const char *const path[] = {"data", "files", "[0]", "file_id"};
    cJSON *root = NULL;
    const char *raw;
    size_t n;
    int rc = sa__json_parse(text, size, FUZZ_DEPTH, &root);
    require(rc != SA_ERR_NOMEM);
    require((rc == SA_OK) == (root != NULL));
    if (rc == SA_OK) require(!has_nul_in_string(text, size));
    if (sa__json_nul_only(text, size, FUZZ_DEPTH))
        require(rc == SA_ERR_PROTOCOL && has_nul_in_string(text, size));
    if (rc == SA_OK && sa__json_raw_at(text, size, path, 4, &raw, &n))
        require(raw >= text && raw + n <= text + size && n > 0);
    cJSON_Delete(root);
}

static void fuzz_file_create(const char *text, size_t size)
{
    char *id = NULL, err[256];
    sa__upload_spec up;
    size_t i;
    int rc = sa__proto_parse_file_create(NULL, text, size, FUZZ_DEPTH, &id,
                                        &up, err, sizeof err);
    if (rc != SA_OK) {
        require(!id && !up.url && !up.method && !up.headers);
        require(err[0] != '\0');
        return;
    }
    require(id != NULL);
    check_id(id);
    if (up.unusable[0]) {
        /* readable, slot never usable: nothing of it may be sent */
        require(!up.url && !up.method && !up.headers && up.n_headers == 0);
        free(id);
        return;
    }
    require(up.method && up.url && sa__url_scheme(up.url));
    check_text(up.url, 16384, 0);
    require(up.n_headers <= 32);
    for (i = 0; i < up.n_headers; i++) {
        const char *colon = strstr(up.headers[i], ": ");
        char name[300];
        check_text(up.headers[i], 16384, 1);
        require(colon != NULL &&
                (size_t)(colon - up.headers[i]) < sizeof name);
        memcpy(name, up.headers[i], (size_t)(colon - up.headers[i]));
        name[colon - up.headers[i]] = '\0';
        require(sa__proto_upload_header_allowed(name));
    }
    free(id);
    sa__upload_spec_free(NULL, &up);
}

static void fuzz_task_create(const char *text, size_t size)
{
    char *id = NULL, err[256];
    int rc = sa__proto_parse_task_create(NULL, text, size, FUZZ_DEPTH, &id,
                                        err, sizeof err);
    require((rc == SA_OK) == (id != NULL));
    if (id) check_id(id);
    free(id);
}

/* Walk a result through every accessor. */
static void walk_result(const sa_result *r)
{
    size_t i, k;
    require(sa_result_json(r) != NULL);
    for (i = 0; i < sa_result_count(r); i++) {
        const sa_score *s = sa_result_score(r, i);
        require(s && s->concern && s->region);
        for (k = 0; k < s->n_mask_urls; k++) require(s->mask_urls[k] != NULL);
        require(sa_result_get(r, s->concern, s->region) != NULL);
    }
    require(sa_result_score(r, sa_result_count(r)) == NULL);
    (void)sa_result_overall(r);
    (void)sa_result_skin_age(r);
    (void)sa_result_zip_url(r);
    (void)sa_result_resize_image_url(r);
    (void)sa_result_get(r, "wrinkle", NULL);
}

static void fuzz_status(const char *text, size_t size)
{
    sa__status_info si;
    char err[256];
    int rc = sa__proto_parse_status(NULL, text, size, FUZZ_DEPTH, "t", &si,
                                   err, sizeof err);
    if (rc != SA_OK) {
        require(!si.result && !si.engine_error && !si.engine_message);
        return;
    }
    require(si.task_status >= SA__TASK_RUNNING &&
            si.task_status <= SA__TASK_UNKNOWN);
    require(si.task_status == SA__TASK_UNKNOWN || !si.unknown_status[0]);
    if (si.unknown_status[0])  /* cleaned for a log line */
        check_text(si.unknown_status, sizeof si.unknown_status - 1, 0);
    require((si.task_status == SA__TASK_SUCCESS) == (si.result != NULL));
    require(si.polling_interval_ms == -1 || si.polling_interval_ms >= 1);
    check_text(si.engine_error, 512, 0);
    check_text(si.engine_message, 512, 0);
    if (si.result) walk_result(si.result);
    sa__status_info_free(NULL, &si);
}

static void fuzz_classify(const char *text, size_t size)
{
    static const struct {
        int step;
        long http;
    } cases[] = {{SA__STEP_FILE_CREATE, 400}, {SA__STEP_UPLOAD, 403},
                 {SA__STEP_TASK_CREATE, 401}, {SA__STEP_POLL, 400},
                 {SA__STEP_POLL, 500},        {SA__STEP_TASK_CREATE, 502}};
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sa__api_error e;
        int rc = sa__proto_classify(NULL, cases[i].step, cases[i].http, text,
                                   size, FUZZ_DEPTH, &e);
        require(rc == e.status && rc < 0 && rc != SA_ERR_NOMEM);
        check_text(e.error_code, 512, 0);
        check_text(e.message, 512, 0);
        sa__api_error_free(NULL, &e);
    }
}

static void fuzz_result_parse(const char *text, size_t size)
{
    int kind;
    for (kind = SA_PARSE_STATUS_BODY; kind <= SA_PARSE_SCORE_INFO; kind++) {
        sa_result *r = NULL;
        int rc = sa_result_parse(text, size, kind, &r);
        require((rc == SA_OK) == (r != NULL));
        if (r) walk_result(r);
        sa_result_free(r);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    if (size > (1u << 20)) return 0;
    fuzz_json(text, size);
    fuzz_file_create(text, size);
    fuzz_task_create(text, size);
    fuzz_status(text, size);
    fuzz_classify(text, size);
    fuzz_result_parse(text, size);
    return 0;
}
