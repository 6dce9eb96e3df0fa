/* result.c - the result model behind sa_result / sa_score: built, parsed, read.
 *
 * A result is one allocation (an arena): the sa_result header, the score
 * array, the mask URL pointer arrays and every string, laid out in that
 * order.  It is built in two passes over the parsed JSON by the same walker:
 * the first pass only measures, the second copies.  The allocator is copied
 * into the result so that it can be freed after its client is gone.
 * Two things live outside the arena because they arrive after it is built:
 * the raw JSON text (sa__result_set_raw_json: the caller hands over the byte
 * range of data.results in the response body, so nothing is re-printed)
 * and the result files (sa__result_add_file: one allocation per file, name
 * and bytes together, plus a growable array of them).  The files, the
 * URL lookups and the copies (clone, scrub) are in result_files.c; the
 * layout both files share, in result_internal.h.
 *
 * Shapes accepted (shared/API.md §6):
 *   - format json: results.output[] entries {type, region?, raw_score?,
 *     ui_score?, score?, skin_type?, mask_urls?}; "all" gives the overall
 *     score, "skin_age" the skin age, "resize_image" the resized image URL;
 *     every other type (known or not) is kept as a score, a missing region
 *     is "whole".  A bare array is taken as the output list.  Elements that
 *     are not objects with a string type are skipped, but a list with none
 *     is no result (SA_ERR_PROTOCOL, as results of any other type).
 *   - format zip: results {"url": ...} or a bare string: the ZIP URL.
 *   - score_info.json: one key per concern, {raw_score, ui_score,
 *     output_mask_name} or a map region -> that object; "all": {score} (or a
 *     number); "skin_age": a number (or {score}).  Other shapes are skipped.
 * Numbers may arrive as numeric strings and nulls are ignored everywhere.
 */
#include "result_internal.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#define ARENA_ALIGN (_Alignof(max_align_t))

static size_t align_up(size_t n)
{
    return (n + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
}

/* The walker's state: counters that advance the same way in both passes,
 * and the arena areas (NULL while measuring). */
typedef struct builder {
    const char *secret;  /* hidden in every string copied (sa__scrub) */
    size_t n_scores, n_urls, n_bytes;
    int overflow;        /* sizes too large to represent */
    sa_score *scores;    /* pass 2 areas */
    const char **urls;
    char *bytes;
    double overall, skin_age;
    const char *resize_url, *zip_url;
    int have_overall, have_skin_age;
} builder;

static void builder_reset(builder *b, const char *secret)
{
    memset(b, 0, sizeof *b);
    b->secret = secret;
    b->overall = NAN;
    b->skin_age = NAN;
}

/* Reserve (and in pass 2 copy) a string; NULL stays NULL. */
static const char *b_str(builder *b, const char *s)
{
    size_t n;
    char *dst;
    if (!s) return NULL;
    n = (b->secret ? sa__scrub_len(s, b->secret) : strlen(s)) + 1;
    if (n > SIZE_MAX - b->n_bytes) {
        b->overflow = 1;
        return NULL;
    }
    dst = b->bytes ? b->bytes + b->n_bytes : NULL;
    if (dst && b->secret) sa__scrub(dst, s, b->secret);
    else if (dst) memcpy(dst, s, n);
    b->n_bytes += n;
    return dst;
}

static double item_number(const cJSON *obj, const char *key)
{
    double v;
    return sa__json_number(obj, key, &v) ? v : NAN;
}

/* Mask URLs: an array of strings (others skipped) or a single string. */
static size_t add_urls(builder *b, const cJSON *urls, const char ***first)
{
    const cJSON *u;
    size_t n = 0;
    *first = b->urls ? b->urls + b->n_urls : NULL;
    if (!urls) return 0;
    if (cJSON_IsString(urls)) {
        const char *s = b_str(b, urls->valuestring);
        if (b->urls) b->urls[b->n_urls] = s;
        b->n_urls++;
        return 1;
    }
    if (!cJSON_IsArray(urls)) return 0;
    cJSON_ArrayForEach(u, urls) {
        const char *s;
        if (!cJSON_IsString(u)) continue;
        s = b_str(b, u->valuestring);
        if (b->urls) b->urls[b->n_urls] = s;
        b->n_urls++;
        n++;
    }
    return n;
}

/* One scored entry from a JSON object `e` (output[] entry or score_info
 * leaf). */
static void add_score(builder *b, const char *concern, const char *region,
                      const cJSON *e)
{
    sa_score *s = b->scores ? &b->scores[b->n_scores] : NULL;
    const char **urls;
    const char *c = b_str(b, concern);
    const char *r = region ? b_str(b, region) : "whole";
    const char *st = b_str(b, sa__json_string(e, "skin_type"));
    const char *mn = b_str(b, sa__json_string(e, "output_mask_name"));
    size_t nu = add_urls(b, sa__json_get(e, "mask_urls"), &urls);

    if (s) {
        s->concern = c;
        s->region = r;
        s->raw_score = item_number(e, "raw_score");
        s->ui_score = item_number(e, "ui_score");
        s->skin_type = st;
        s->mask_name = mn;
        s->mask_urls = nu ? urls : NULL;
        s->n_mask_urls = nu;
    }
    b->n_scores++;
}

/* The first string of mask_urls (or a "url" string) of an entry. */
static const char *entry_first_url(const cJSON *e)
{
    const cJSON *urls = sa__json_get(e, "mask_urls"), *u;
    if (cJSON_IsString(urls)) return urls->valuestring;
    if (cJSON_IsArray(urls)) {
        cJSON_ArrayForEach(u, urls) {
            if (cJSON_IsString(u)) return u->valuestring;
        }
    }
    return sa__json_string(e, "url");
}

static void set_overall(builder *b, double v)
{
    if (b->have_overall) return;
    b->overall = v;
    b->have_overall = 1;
}

static void set_skin_age(builder *b, double v)
{
    if (b->have_skin_age) return;
    b->skin_age = v;
    b->have_skin_age = 1;
}

static void walk_output(builder *b, const cJSON *output)
{
    const cJSON *e;
    double v;
    cJSON_ArrayForEach(e, output) {
        const char *type = sa__json_string(e, "type");
        if (!type) continue;
        if (strcmp(type, "all") == 0) {
            if (sa__json_number(e, "score", &v)) set_overall(b, v);
        } else if (strcmp(type, "skin_age") == 0) {
            if (sa__json_number(e, "score", &v)) set_skin_age(b, v);
        } else if (strcmp(type, "resize_image") == 0) {
            if (!b->resize_url) b->resize_url = entry_first_url(e);
        } else {
            add_score(b, type, sa__json_string(e, "region"), e);
        }
    }
}

/* An object that carries a score (a score_info leaf). */
static int is_score_object(const cJSON *o)
{
    return cJSON_IsObject(o) &&
           (sa__json_get(o, "raw_score") || sa__json_get(o, "ui_score") ||
            sa__json_get(o, "output_mask_name") ||
            sa__json_get(o, "skin_type"));
}

/* A bare number or an object with "score". */
static int score_value(const cJSON *item, double *v)
{
    if (cJSON_IsObject(item)) return sa__json_number(item, "score", v);
    return sa__json_as_number(item, v);
}

static void walk_score_info(builder *b, const cJSON *root)
{
    const cJSON *item, *sub;
    double v;
    cJSON_ArrayForEach(item, root) {
        const char *key = item->string;
        if (!key || cJSON_IsNull(item)) continue;
        if (strcmp(key, "all") == 0) {
            if (score_value(item, &v)) set_overall(b, v);
        } else if (strcmp(key, "skin_age") == 0) {
            if (score_value(item, &v)) set_skin_age(b, v);
        } else if (is_score_object(item)) {
            add_score(b, key, NULL, item);
        } else if (cJSON_IsObject(item)) {
            cJSON_ArrayForEach(sub, item) {
                if (sub->string && is_score_object(sub))
                    add_score(b, key, sub->string, sub);
            }
        }
    }
}

/* Copy the scores of an existing result (sa__result_clone). */
static void walk_clone(builder *b, const sa_result *src)
{
    size_t i, j;
    for (i = 0; i < src->count; i++) {
        const sa_score *from = &src->scores[i];
        sa_score *s = b->scores ? &b->scores[b->n_scores] : NULL;
        const char **urls = b->urls ? b->urls + b->n_urls : NULL;
        const char *c = b_str(b, from->concern);
        const char *r = b_str(b, from->region);
        const char *st = b_str(b, from->skin_type);
        const char *mn = b_str(b, from->mask_name);
        for (j = 0; j < from->n_mask_urls; j++) {
            const char *u = b_str(b, from->mask_urls[j]);
            if (b->urls) b->urls[b->n_urls] = u;
            b->n_urls++;
        }
        if (s) {
            *s = *from;
            s->concern = c;
            s->region = r;
            s->skin_type = st;
            s->mask_name = mn;
            s->mask_urls = from->n_mask_urls ? urls : NULL;
        }
        b->n_scores++;
    }
    b->resize_url = src->resize_url;
    b->zip_url = src->zip_url;
    b->overall = src->overall;
    b->skin_age = src->skin_age;
}

enum walk_kind { WALK_OUTPUT, WALK_ZIP, WALK_SCORE_INFO, WALK_CLONE };

/* What a result is built from: a cJSON node, a bare ZIP URL or a result. */
typedef struct source {
    int kind;              /* walk_kind */
    const cJSON *node;     /* OUTPUT, SCORE_INFO */
    const char *zip;       /* ZIP */
    const sa_result *src;  /* CLONE */
} source;

static void walk(builder *b, const source *from)
{
    switch (from->kind) {
    case WALK_OUTPUT: walk_output(b, from->node); break;
    case WALK_SCORE_INFO: walk_score_info(b, from->node); break;
    case WALK_ZIP: b->zip_url = from->zip; break;
    default: walk_clone(b, from->src); break;
    }
}

static int result_format(const source *from)
{
    if (from->kind == WALK_CLONE) return from->src->format;
    return from->kind == WALK_OUTPUT ? SA_FORMAT_JSON : SA_FORMAT_ZIP;
}

/* Arena offsets of the score array, URL array and string bytes. */
typedef struct layout {
    size_t scores, urls, bytes, total;
} layout;

static int plan(const builder *b, layout *l)
{
    if (b->overflow || b->n_scores > (SIZE_MAX / 2) / sizeof(sa_score) ||
        b->n_urls > (SIZE_MAX / 2) / sizeof(char *))
        return SA_ERR_NOMEM;
    l->scores = align_up(sizeof(sa_result));
    l->urls = l->scores + align_up(b->n_scores * sizeof(sa_score));
    l->bytes = l->urls + align_up(b->n_urls * sizeof(char *));
    if (b->n_bytes > SIZE_MAX - l->bytes) return SA_ERR_NOMEM;
    l->total = l->bytes + b->n_bytes;
    return SA_OK;
}

/* Measure, allocate one arena, fill it (every string scrubbed of
 * secret when it is not NULL). */
static int build(const sa_mem *mem, const source *from, const char *task_id,
                 const char *secret, sa_result **out)
{
    builder b;
    layout l;
    char *base;
    sa_result *r;

    builder_reset(&b, secret);
    walk(&b, from);
    b_str(&b, b.resize_url);
    b_str(&b, b.zip_url);
    b_str(&b, task_id);
    if (plan(&b, &l) != SA_OK) return SA_ERR_NOMEM;
    base = sa__malloc(mem, l.total);
    if (!base) return SA_ERR_NOMEM;

    r = (sa_result *)(void *)base;
    memset(r, 0, sizeof *r);
    builder_reset(&b, secret);
    b.scores = (sa_score *)(void *)(base + l.scores);
    b.urls = (const char **)(void *)(base + l.urls);
    b.bytes = base + l.bytes;
    walk(&b, from);
    r->resize_url = b_str(&b, b.resize_url);
    r->zip_url = b_str(&b, b.zip_url);
    r->task_id = b_str(&b, task_id);

    if (mem) {
        r->mem = *mem;
        r->has_mem = 1;
    }
    r->format = result_format(from);
    r->count = b.n_scores;
    r->scores = b.n_scores ? b.scores : NULL;
    r->overall = b.overall;
    r->skin_age = b.skin_age;
    *out = r;
    return SA_OK;
}

/* Entries of an output list the walker reads: objects with a string
 * "type" (the rest is skipped). */
static size_t output_entries(const cJSON *output)
{
    const cJSON *e;
    size_t n = 0;
    cJSON_ArrayForEach(e, output) {
        if (sa__json_string(e, "type")) n++;
    }
    return n;
}

/* data.results without its raw text: the caller (sa__proto_parse_status)
 * adds it with sa__result_set_raw_json from the body it parsed.  One rule
 * for every shape: a success must carry a result, a ZIP URL or at least
 * one output entry; what the reader cannot use inside a list is skipped,
 * and data.results that yields neither (12345, [], [1,2,3], {}) is a
 * protocol error. */
int sa__result_from_results(const sa_mem *mem, const cJSON *results,
                           const char *task_id, sa_result **out, char *err,
                           size_t errlen)
{
    source from = {WALK_OUTPUT, NULL, NULL, NULL};

    *out = NULL;
    if (!results || cJSON_IsNull(results)) {
        sa__errf(err, errlen, "task succeeded but data.results is missing");
        return SA_ERR_PROTOCOL;
    }
    if (cJSON_IsString(results) && results->valuestring[0]) {
        from.kind = WALK_ZIP;
        from.zip = results->valuestring;
    } else if (cJSON_IsArray(results)) {
        from.node = results;
    } else if (cJSON_IsArray(sa__json_get(results, "output"))) {
        from.node = sa__json_get(results, "output");
    } else if (sa__json_string(results, "url") &&
               sa__json_string(results, "url")[0]) {
        from.kind = WALK_ZIP;
        from.zip = sa__json_string(results, "url");
    } else {
        sa__errf(err, errlen,
                 "data.results has neither an output[] list nor a url");
        return SA_ERR_PROTOCOL;
    }
    if (from.kind == WALK_OUTPUT && output_entries(from.node) == 0) {
        sa__errf(err, errlen, "data.results has no output entry (an object "
                 "with a type): no result");
        return SA_ERR_PROTOCOL;
    }
    return build(mem, &from, task_id, NULL, out);
}

int sa__result_from_score_info(const sa_mem *mem, const cJSON *root,
                              const char *task_id, sa_result **out, char *err,
                              size_t errlen)
{
    source from = {WALK_SCORE_INFO, NULL, NULL, NULL};

    *out = NULL;
    if (!cJSON_IsObject(root)) {
        sa__errf(err, errlen, "score_info.json is not a JSON object");
        return SA_ERR_PROTOCOL;
    }
    from.node = root;
    return build(mem, &from, task_id, NULL, out);
}

int sa__result_build_clone(const sa_mem *mem, const sa_result *src,
                           const char *secret, sa_result **out)
{
    source from = {WALK_CLONE, NULL, NULL, NULL};
    from.src = src;
    return build(mem, &from, src->task_id, secret, out);
}

/* Replace the raw JSON text by a copy of text[0..len). */
int sa__result_set_raw_json(sa_result *r, const char *text, size_t len)
{
    char *copy;
    if (!r || !text || len == SIZE_MAX) return SA_ERR_INVALID_ARGUMENT;
    copy = sa__malloc(sa__result_mem(r), len + 1);
    if (!copy) return SA_ERR_NOMEM;
    memcpy(copy, text, len);
    copy[len] = '\0';
    sa__free(sa__result_mem(r), r->json);
    r->json = copy;
    return SA_OK;
}

/* The fallback when the raw text cannot be located: cJSON's printing. */
int sa__result_set_json_item(sa_result *r, const cJSON *item)
{
    char *text;
    int rc;
    if (!r || !item) return SA_ERR_INVALID_ARGUMENT;
    text = cJSON_PrintUnformatted(item);
    if (!text) return SA_ERR_NOMEM;
    rc = sa__result_set_raw_json(r, text, strlen(text));
    cJSON_free(text);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Public API                                                          */
/* ------------------------------------------------------------------ */

#define PARSE_MAX_DEPTH 64

int sa_result_parse(const char *json, size_t len, int kind, sa_result **out)
{
    sa__status_info si;
    cJSON *root;
    char err[256];
    int rc;

    if (!out) return SA_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!json) return SA_ERR_INVALID_ARGUMENT;
    if (kind == SA_PARSE_SCORE_INFO) {
        rc = sa__json_parse(json, len, PARSE_MAX_DEPTH, &root);
        if (rc != SA_OK) return rc;
        rc = sa__result_from_score_info(NULL, root, NULL, out, err,
                                       sizeof err);
        cJSON_Delete(root);
        if (rc == SA_OK) rc = sa__result_set_raw_json(*out, json, len);
        if (rc != SA_OK) {
            sa_result_free(*out);
            *out = NULL;
        }
        return rc;
    }
    if (kind != SA_PARSE_STATUS_BODY) return SA_ERR_INVALID_ARGUMENT;
    rc = sa__proto_parse_status(NULL, json, len, PARSE_MAX_DEPTH, NULL, &si,
                               err, sizeof err);
    if (rc != SA_OK) return rc;
    if (si.task_status == SA__TASK_SUCCESS) {
        *out = si.result;
        si.result = NULL;
        rc = SA_OK;
    } else {
        rc = si.task_status == SA__TASK_ERROR ? SA_ERR_ENGINE
                                             : SA_ERR_NOT_DONE;
    }
    sa__status_info_free(NULL, &si);
    return rc;
}

void sa_result_free(sa_result *r)
{
    sa_mem mem;
    const sa_mem *m = NULL;
    size_t i;
    if (!r) return;
    if (r->has_mem) {
        mem = r->mem; /* r->mem goes away with the arena */
        m = &mem;
    }
    for (i = 0; i < r->n_files; i++) {
        sa__free(m, r->files[i].block);
        sa__free(m, r->files[i].names);
    }
    sa__free(m, r->files);
    sa__free(m, r->json);
    sa__free(m, r->zip_url_own);
    sa__free(m, r);
}

int sa__result_set_zip_url(sa_result *r, const char *url)
{
    char *copy;
    if (!r || !url) return SA_ERR_INVALID_ARGUMENT;
    copy = sa__strdup(r->has_mem ? &r->mem : NULL, url);
    if (!copy) return SA_ERR_NOMEM;
    sa__free(r->has_mem ? &r->mem : NULL, r->zip_url_own);
    r->zip_url_own = copy;
    r->zip_url = copy;
    return SA_OK;
}

SA__GETTER(int, sa_result_format, sa_result, format, SA_FORMAT_JSON)
SA__GETTER(size_t, sa_result_count, sa_result, count, 0)

const sa_score *sa_result_score(const sa_result *r, size_t i)
{
    return (r && i < r->count) ? &r->scores[i] : NULL;
}

static const sa_score *find_score(const sa_result *r, const char *concern,
                                  const char *region)
{
    size_t i;
    for (i = 0; i < r->count; i++) {
        const sa_score *s = &r->scores[i];
        if (strcmp(s->concern, concern) == 0 && strcmp(s->region, region) == 0)
            return s;
    }
    return NULL;
}

const sa_score *sa_result_get(const sa_result *r, const char *concern,
                              const char *region)
{
    const sa_score *s;
    const char *other;
    if (!r || !concern) return NULL;
    if (!region) region = "whole";
    s = find_score(r, concern, region);
    if (s) return s;
    other = sa_action_counterpart(concern); /* the bindings' rule too */
    return other ? find_score(r, other, region) : NULL;
}

SA__GETTER(double, sa_result_overall, sa_result, overall, NAN)
SA__GETTER(double, sa_result_skin_age, sa_result, skin_age, NAN)
SA__GETTER(const char *, sa_result_resize_image_url, sa_result, resize_url,
           NULL)
SA__GETTER(const char *, sa_result_zip_url, sa_result, zip_url, NULL)
SA__GETTER(const char *, sa_result_json, sa_result, json, NULL)

/* NULL when the result was parsed without a task id (sa_result_parse). */
SA__GETTER(const char *, sa_result_task_id, sa_result, task_id, NULL)
