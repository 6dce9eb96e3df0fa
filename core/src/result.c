/*
 * result.c - the result model behind sa_result / sa_score.
 *
 * A result is one allocation (an arena): the sa_result header, the score
 * array, the mask URL pointer arrays and every string, laid out in that
 * order.  It is built in two passes over the parsed JSON by the same walker:
 * the first pass only measures, the second copies.  The allocator is copied
 * into the result so that it can be freed after its client is gone.
 *
 * Shapes accepted (shared/API.md §6):
 *   - format json: results.output[] entries {type, region?, raw_score?,
 *     ui_score?, score?, skin_type?, mask_urls?}; "all" gives the overall
 *     score, "skin_age" the skin age, "resize_image" the resized image URL;
 *     every other type (known or not) is kept as a score, a missing region
 *     is "whole".  A bare array is taken as the output list.
 *   - format zip: results {"url": ...} or a bare string: the ZIP URL.
 *   - score_info.json: one key per concern, {raw_score, ui_score,
 *     output_mask_name} or a map region -> that object; "all": {score} (or a
 *     number); "skin_age": a number (or {score}).  Other shapes are skipped.
 * Numbers may arrive as numeric strings and nulls are ignored everywhere.
 */
#include "sa_internal.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

struct sa_result {
    sa_mem mem; /* copy of the allocator (has_mem) */
    int has_mem;
    int format;
    size_t count;
    sa_score *scores;
    double overall;
    double skin_age;
    const char *resize_url;
    const char *zip_url;
    const char *json;
    const char *task_id;
};

#define ARENA_ALIGN (_Alignof(max_align_t))

static size_t align_up(size_t n)
{
    return (n + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
}

/* The walker's state: counters that advance the same way in both passes,
 * and the arena areas (NULL while measuring). */
typedef struct builder {
    size_t n_scores, n_urls, n_bytes;
    int overflow;        /* sizes too large to represent */
    sa_score *scores;    /* pass 2 areas */
    const char **urls;
    char *bytes;
    double overall, skin_age;
    const char *resize_url, *zip_url;
    int have_overall, have_skin_age;
} builder;

static void builder_reset(builder *b)
{
    memset(b, 0, sizeof *b);
    b->overall = NAN;
    b->skin_age = NAN;
}

/* Reserve (and in pass 2 copy) a string; NULL stays NULL. */
static const char *b_str(builder *b, const char *s)
{
    size_t n;
    char *dst;
    if (!s) return NULL;
    n = strlen(s) + 1;
    if (n > SIZE_MAX - b->n_bytes) {
        b->overflow = 1;
        return NULL;
    }
    dst = b->bytes ? b->bytes + b->n_bytes : NULL;
    if (dst) memcpy(dst, s, n);
    b->n_bytes += n;
    return dst;
}

static double item_number(const cJSON *obj, const char *key)
{
    double v;
    return sa_json_number(obj, key, &v) ? v : NAN;
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
    const char *st = b_str(b, sa_json_string(e, "skin_type"));
    const char *mn = b_str(b, sa_json_string(e, "output_mask_name"));
    size_t nu = add_urls(b, sa_json_get(e, "mask_urls"), &urls);

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
    const cJSON *urls = sa_json_get(e, "mask_urls"), *u;
    if (cJSON_IsString(urls)) return urls->valuestring;
    if (cJSON_IsArray(urls)) {
        cJSON_ArrayForEach(u, urls) {
            if (cJSON_IsString(u)) return u->valuestring;
        }
    }
    return sa_json_string(e, "url");
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
        const char *type = sa_json_string(e, "type");
        if (!type) continue;
        if (strcmp(type, "all") == 0) {
            if (sa_json_number(e, "score", &v)) set_overall(b, v);
        } else if (strcmp(type, "skin_age") == 0) {
            if (sa_json_number(e, "score", &v)) set_skin_age(b, v);
        } else if (strcmp(type, "resize_image") == 0) {
            if (!b->resize_url) b->resize_url = entry_first_url(e);
        } else {
            add_score(b, type, sa_json_string(e, "region"), e);
        }
    }
}

/* An object that carries a score (a score_info leaf). */
static int is_score_object(const cJSON *o)
{
    return cJSON_IsObject(o) &&
           (sa_json_get(o, "raw_score") || sa_json_get(o, "ui_score") ||
            sa_json_get(o, "output_mask_name") ||
            sa_json_get(o, "skin_type"));
}

/* A bare number or an object with "score". */
static int score_value(const cJSON *item, double *v)
{
    if (cJSON_IsObject(item)) return sa_json_number(item, "score", v);
    return sa_json_as_number(item, v);
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

enum walk_kind { WALK_OUTPUT, WALK_ZIP, WALK_SCORE_INFO };

static void walk(builder *b, int kind, const cJSON *node, const char *zip)
{
    if (kind == WALK_OUTPUT) walk_output(b, node);
    if (kind == WALK_SCORE_INFO) walk_score_info(b, node);
    if (kind == WALK_ZIP) b->zip_url = zip;
}

/* Measure, allocate one arena, fill it. */
static int build(const sa_mem *mem, int kind, const cJSON *node,
                 const char *zip, const cJSON *json_node, const char *task_id,
                 sa_result **out)
{
    builder b;
    char *json_text, *base;
    size_t off_scores, off_urls, off_bytes, total, n_scores, n_urls;
    sa_result *r;

    json_text = cJSON_PrintUnformatted(json_node);
    if (!json_text) return SA_ERR_NOMEM;

    builder_reset(&b);
    walk(&b, kind, node, zip);
    b_str(&b, b.resize_url);
    b_str(&b, b.zip_url);
    b_str(&b, json_text);
    b_str(&b, task_id);
    n_scores = b.n_scores;
    n_urls = b.n_urls;
    off_scores = align_up(sizeof(sa_result));
    if (b.overflow || n_scores > (SIZE_MAX / 2) / sizeof(sa_score) ||
        n_urls > (SIZE_MAX / 2) / sizeof(char *)) {
        cJSON_free(json_text);
        return SA_ERR_NOMEM;
    }
    off_urls = off_scores + align_up(n_scores * sizeof(sa_score));
    off_bytes = off_urls + align_up(n_urls * sizeof(char *));
    if (b.n_bytes > SIZE_MAX - off_bytes) {
        cJSON_free(json_text);
        return SA_ERR_NOMEM;
    }
    total = off_bytes + b.n_bytes;
    base = sa__malloc(mem, total);
    if (!base) {
        cJSON_free(json_text);
        return SA_ERR_NOMEM;
    }

    r = (sa_result *)(void *)base;
    memset(r, 0, sizeof *r);
    builder_reset(&b);
    b.scores = (sa_score *)(void *)(base + off_scores);
    b.urls = (const char **)(void *)(base + off_urls);
    b.bytes = base + off_bytes;
    walk(&b, kind, node, zip);
    r->resize_url = b_str(&b, b.resize_url);
    r->zip_url = b_str(&b, b.zip_url);
    r->json = b_str(&b, json_text);
    r->task_id = b_str(&b, task_id);
    cJSON_free(json_text);

    if (mem) {
        r->mem = *mem;
        r->has_mem = 1;
    }
    r->format = kind == WALK_OUTPUT ? SA_FORMAT_JSON : SA_FORMAT_ZIP;
    r->count = b.n_scores;
    r->scores = n_scores ? b.scores : NULL;
    r->overall = b.overall;
    r->skin_age = b.skin_age;
    *out = r;
    return SA_OK;
}

int sa_result_from_results(const sa_mem *mem, const cJSON *results,
                           const char *task_id, sa_result **out, char *err,
                           size_t errlen)
{
    const cJSON *output;
    const char *url;

    *out = NULL;
    if (!results || cJSON_IsNull(results)) {
        sa__errf(err, errlen, "task succeeded but data.results is missing");
        return SA_ERR_PROTOCOL;
    }
    if (cJSON_IsString(results) && results->valuestring[0])
        return build(mem, WALK_ZIP, NULL, results->valuestring, results,
                     task_id, out);
    if (cJSON_IsArray(results))
        return build(mem, WALK_OUTPUT, results, NULL, results, task_id, out);
    output = sa_json_get(results, "output");
    if (cJSON_IsArray(output))
        return build(mem, WALK_OUTPUT, output, NULL, results, task_id, out);
    url = sa_json_string(results, "url");
    if (url && url[0])
        return build(mem, WALK_ZIP, NULL, url, results, task_id, out);
    sa__errf(err, errlen,
             "data.results has neither an output[] list nor a url");
    return SA_ERR_PROTOCOL;
}

int sa_result_from_score_info(const sa_mem *mem, const cJSON *root,
                              const char *task_id, sa_result **out, char *err,
                              size_t errlen)
{
    *out = NULL;
    if (!cJSON_IsObject(root)) {
        sa__errf(err, errlen, "score_info.json is not a JSON object");
        return SA_ERR_PROTOCOL;
    }
    return build(mem, WALK_SCORE_INFO, root, NULL, root, task_id, out);
}

/* ------------------------------------------------------------------ */
/* Public API                                                          */
/* ------------------------------------------------------------------ */

#define PARSE_MAX_DEPTH 64

int sa_result_parse(const char *json, size_t len, int kind, sa_result **out)
{
    sa_status_info si;
    cJSON *root;
    char err[256];
    int rc;

    if (!out) return SA_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!json) return SA_ERR_INVALID_ARGUMENT;
    if (kind == SA_PARSE_SCORE_INFO) {
        rc = sa_json_parse(json, len, PARSE_MAX_DEPTH, &root);
        if (rc != SA_OK) return rc;
        rc = sa_result_from_score_info(NULL, root, NULL, out, err,
                                       sizeof err);
        cJSON_Delete(root);
        return rc;
    }
    if (kind != SA_PARSE_STATUS_BODY) return SA_ERR_INVALID_ARGUMENT;
    rc = sa_proto_parse_status(NULL, json, len, PARSE_MAX_DEPTH, NULL, &si,
                               err, sizeof err);
    if (rc != SA_OK) return rc;
    if (si.task_status == SA_TASK_SUCCESS) {
        *out = si.result;
        si.result = NULL;
        rc = SA_OK;
    } else {
        rc = si.task_status == SA_TASK_ERROR ? SA_ERR_ENGINE
                                             : SA_ERR_NOT_DONE;
    }
    sa_status_info_free(NULL, &si);
    return rc;
}

void sa_result_free(sa_result *r)
{
    sa_mem mem;
    if (!r) return;
    if (!r->has_mem) {
        sa__free(NULL, r);
        return;
    }
    mem = r->mem;
    sa__free(&mem, r);
}

int sa_result_format(const sa_result *r)
{
    return r ? r->format : SA_FORMAT_JSON;
}

size_t sa_result_count(const sa_result *r)
{
    return r ? r->count : 0;
}

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
    int k;
    if (!r || !concern) return NULL;
    if (!region) region = "whole";
    s = find_score(r, concern, region);
    if (s) return s;
    k = sa_catalog_counterpart(sa_catalog_find(concern));
    return k >= 0 ? find_score(r, sa_action_name((size_t)k), region) : NULL;
}

double sa_result_overall(const sa_result *r)
{
    return r ? r->overall : NAN;
}

double sa_result_skin_age(const sa_result *r)
{
    return r ? r->skin_age : NAN;
}

const char *sa_result_resize_image_url(const sa_result *r)
{
    return r ? r->resize_url : NULL;
}

const char *sa_result_zip_url(const sa_result *r)
{
    return r ? r->zip_url : NULL;
}

const char *sa_result_json(const sa_result *r)
{
    return r ? r->json : NULL;
}

/* NULL when the result was parsed without a task id (sa_result_parse). */
const char *sa_result_task_id(const sa_result *r)
{
    return r ? r->task_id : NULL;
}
