/* result_files.c - a result's files and URLs, and its copies (clone, scrub).
 *
 * The files arrive after the arena is built (result.c): one allocation per
 * file, name and bytes together (or name and path for a file written to
 * disk), in a growable array.  A copy (sa__result_clone, sa__result_scrub)
 * is a new arena from result.c plus copies of the raw JSON and the files;
 * sa__result_scrub_take hands the files over without copying their bytes.
 */
#include "result_internal.h"

#include <string.h>

#define RESULT_MAX_FILES 100000

int sa__result_sniff_format(const void *data, size_t len)
{
    const unsigned char *p = data;
    static const unsigned char png[8] = {0x89, 'P', 'N', 'G',
                                         '\r', '\n', 0x1a, '\n'};
    if (len >= 8 && memcmp(p, png, 8) == 0) return SA_IMAGE_PNG;
    if (len >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF)
        return SA_IMAGE_JPEG;
    return SA_IMAGE_UNKNOWN;
}

static int grow_files(sa_result *r)
{
    sa__result_file *files;
    size_t cap;
    if (r->n_files < r->cap_files) return SA_OK;
    if (r->n_files >= RESULT_MAX_FILES) return SA_ERR_LIMIT;
    cap = r->cap_files ? r->cap_files * 2 : 8;
    files = sa__realloc(sa__result_mem(r), r->files, cap * sizeof *files);
    if (!files) return SA_ERR_NOMEM;
    r->files = files;
    r->cap_files = cap;
    return SA_OK;
}

/* Append a file whose block holds the bytes (len) then the name. */
static void push_file(sa_result *r, unsigned char *block, size_t len)
{
    sa__result_file *f = &r->files[r->n_files++];
    f->block = block;
    f->data = block;
    f->len = len;
    f->name = (const char *)block + len;
    f->path = NULL;
    f->names = NULL;
    f->format = sa__result_sniff_format(block, len);
}

int sa__result_add_file(sa_result *r, const char *name, const void *data,
                       size_t len)
{
    unsigned char *block;
    size_t nlen;
    int rc;

    if (!r || !name || (!data && len)) return SA_ERR_INVALID_ARGUMENT;
    nlen = strlen(name);
    if (len > SIZE_MAX - nlen - 1) return SA_ERR_NOMEM;
    rc = grow_files(r);
    if (rc != SA_OK) return rc;
    block = sa__malloc(sa__result_mem(r), len + nlen + 1);
    if (!block) return SA_ERR_NOMEM;
    if (len) memcpy(block, data, len);
    memcpy(block + len, name, nlen + 1);
    push_file(r, block, len);
    return SA_OK;
}

int sa__result_add_file_owned(sa_result *r, const char *name, char *data,
                             size_t len)
{
    unsigned char *block;
    size_t nlen;
    int rc;

    if (!r || !name) {
        if (r) sa__free(sa__result_mem(r), data);
        return SA_ERR_INVALID_ARGUMENT;
    }
    nlen = strlen(name);
    rc = len > SIZE_MAX - nlen - 1 ? SA_ERR_NOMEM : grow_files(r);
    /* the name goes after the bytes: no copy of the bytes (realloc keeps
     * them where they are, or moves a block it can) */
    block = rc == SA_OK ? sa__realloc(sa__result_mem(r), data, len + nlen + 1)
                        : NULL;
    if (!block) {
        sa__free(sa__result_mem(r), data);
        return rc == SA_OK ? SA_ERR_NOMEM : rc;
    }
    memcpy(block + len, name, nlen + 1);
    push_file(r, block, len);
    return SA_OK;
}

/* name then path in one new block (names of f), or NULL on NOMEM. */
static char *name_path_block(const sa_mem *mem, const char *name,
                             const char *path)
{
    size_t nlen = strlen(name), plen = path ? strlen(path) : 0;
    char *block;

    if (plen > SIZE_MAX - nlen - 2) return NULL;
    block = sa__malloc(mem, nlen + plen + 2);
    if (!block) return NULL;
    memcpy(block, name, nlen + 1);
    if (path) memcpy(block + nlen + 1, path, plen + 1);
    else block[nlen + 1] = '\0';
    return block;
}

int sa__result_add_file_path(sa_result *r, const char *name, const char *path,
                            int format)
{
    sa__result_file *f;
    char *block;
    int rc;

    if (!r || !name || !path) return SA_ERR_INVALID_ARGUMENT;
    rc = grow_files(r);
    if (rc != SA_OK) return rc;
    block = name_path_block(sa__result_mem(r), name, path);
    if (!block) return SA_ERR_NOMEM;
    f = &r->files[r->n_files++];
    memset(f, 0, sizeof *f);
    f->block = block;
    f->data = NULL;
    f->len = 0;
    f->name = block;
    f->path = block + strlen(name) + 1;
    f->format = format;
    return SA_OK;
}

/* The raw JSON (scrubbed of secret when not NULL). */
static int copy_json(sa_result *dst, const sa_result *src, const char *secret)
{
    const sa_mem *mem = sa__result_mem(dst);
    char *tmp;
    int rc;

    if (!src->json) return SA_OK;
    tmp = secret ? sa__scrub_dup(mem, src->json, secret) : NULL;
    if (secret && !tmp) return SA_ERR_NOMEM;
    rc = sa__result_set_raw_json(dst, tmp ? tmp : src->json,
                                strlen(tmp ? tmp : src->json));
    sa__free(mem, tmp);
    return rc;
}

/* The files of src, copied into dst (names, and the paths of files on
 * disk, scrubbed of secret when not NULL; the bytes of a file held in
 * memory are copied as they are; a file on disk stays a name and a
 * path). */
static int copy_files(sa_result *dst, const sa_result *src,
                      const char *secret)
{
    const sa_mem *mem = sa__result_mem(dst);
    char *name, *path;
    size_t i;
    int rc = SA_OK;

    for (i = 0; rc == SA_OK && i < src->n_files; i++) {
        const sa__result_file *f = &src->files[i];
        name = secret ? sa__scrub_dup(mem, f->name, secret) : NULL;
        path = secret && f->path ? sa__scrub_dup(mem, f->path, secret)
                                 : NULL;
        if (secret && (!name || (f->path && !path))) {
            sa__free(mem, name);
            sa__free(mem, path);
            return SA_ERR_NOMEM;
        }
        rc = f->path ? sa__result_add_file_path(dst, name ? name : f->name,
                                               path ? path : f->path,
                                               f->format)
                     : sa__result_add_file(dst, name ? name : f->name,
                                          f->data, f->len);
        sa__free(mem, name);
        sa__free(mem, path);
    }
    return rc;
}

/* The scores, URLs and JSON of src (scrubbed of secret when not NULL),
 * and its files when with_files. */
static int clone_with(const sa_mem *mem, const sa_result *src,
                      const char *secret, int with_files, sa_result **out)
{
    int rc = sa__result_build_clone(mem, src, secret, out);
    if (rc != SA_OK) return rc;
    rc = copy_json(*out, src, secret);
    if (rc == SA_OK && with_files) rc = copy_files(*out, src, secret);
    if (rc != SA_OK) {
        sa_result_free(*out);
        *out = NULL;
    }
    return rc;
}

static int clone_result(const sa_mem *mem, const sa_result *src,
                        int with_files, sa_result **out)
{
    if (!out) return SA_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!src) return SA_ERR_INVALID_ARGUMENT;
    return clone_with(mem, src, NULL, with_files, out);
}

/* 1 when a string of r (scores, URLs, task id, raw JSON, file names and
 * paths) holds something sa__scrub hides. */
static int result_has_secret(const sa_result *r, const char *secret)
{
    size_t i, j;
    for (i = 0; i < r->count; i++) {
        const sa_score *s = &r->scores[i];
        if (sa__has_secret(s->concern, secret)
            || sa__has_secret(s->region, secret)
            || sa__has_secret(s->skin_type, secret)
            || sa__has_secret(s->mask_name, secret))
            return 1;
        for (j = 0; j < s->n_mask_urls; j++)
            if (sa__has_secret(s->mask_urls[j], secret)) return 1;
    }
    for (i = 0; i < r->n_files; i++)
        if (sa__has_secret(r->files[i].name, secret)
            || sa__has_secret(r->files[i].path, secret))
            return 1;
    return sa__has_secret(r->resize_url, secret)
        || sa__has_secret(r->zip_url, secret)
        || sa__has_secret(r->task_id, secret)
        || sa__has_secret(r->json, secret);
}

int sa__result_scrub(const sa_mem *mem, const sa_result *src,
                    const char *secret, sa_result **out)
{
    if (!out) return SA_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!src || !secret || !*secret || !result_has_secret(src, secret))
        return SA_OK;
    return clone_with(mem, src, secret, 1, out);
}

int sa__result_scrub_take(const sa_mem *mem, sa_result *src,
                         const char *secret, sa_result **out)
{
    sa_result *copy = NULL;
    char **names = NULL;
    size_t i, n;
    int rc;

    if (!out) return SA_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!src || !secret || !*secret || !result_has_secret(src, secret))
        return SA_OK;
    rc = clone_with(mem, src, secret, 0, &copy);
    if (rc != SA_OK) return rc;
    n = src->n_files;
    /* the new names first: on NOMEM src keeps its files */
    if (n > 0) {
        names = sa__calloc(mem, n, sizeof *names);
        if (!names) rc = SA_ERR_NOMEM;
    }
    for (i = 0; rc == SA_OK && i < n; i++) {
        const sa__result_file *f = &src->files[i];
        char *name, *path = NULL;
        if (!sa__has_secret(f->name, secret) &&
            !sa__has_secret(f->path, secret))
            continue;
        name = sa__scrub_dup(mem, f->name, secret);
        if (name && f->path) path = sa__scrub_dup(mem, f->path, secret);
        if (name && (path || !f->path))
            names[i] = name_path_block(mem, name, path);
        if (!names[i]) rc = SA_ERR_NOMEM;
        sa__free(mem, name);
        sa__free(mem, path);
    }
    if (rc != SA_OK) {
        for (i = 0; names && i < n; i++) sa__free(mem, names[i]);
        sa__free(mem, names);
        sa_result_free(copy);
        return rc;
    }
    /* the files change hands: their bytes are never copied */
    copy->files = src->files;
    copy->n_files = src->n_files;
    copy->cap_files = src->cap_files;
    src->files = NULL;
    src->n_files = src->cap_files = 0;
    for (i = 0; i < n; i++) {
        sa__result_file *f = &copy->files[i];
        if (!names[i]) continue;
        f->names = names[i];
        f->name = names[i];
        if (f->path) f->path = names[i] + strlen(names[i]) + 1;
    }
    sa__free(mem, names);
    *out = copy;
    return SA_OK;
}

int sa__result_clone(const sa_mem *mem, const sa_result *src,
                    sa_result **out)
{
    return clone_result(mem, src, 1, out);
}

int sa__result_clone_scores(const sa_mem *mem, const sa_result *src,
                           sa_result **out)
{
    return clone_result(mem, src, 0, out);
}

const char *sa__result_url_at(const sa_result *r, size_t index)
{
    size_t i, n = 0;
    if (!r) return NULL;
    for (i = 0; i < r->count; i++) {
        if (index < n + r->scores[i].n_mask_urls)
            return r->scores[i].mask_urls[index - n];
        n += r->scores[i].n_mask_urls;
    }
    return index == n ? r->resize_url : NULL;
}

size_t sa__result_urls(const sa_result *r, const char **urls, size_t max)
{
    size_t i, j, n = 0;
    if (!r) return 0;
    for (i = 0; i < r->count; i++) {
        for (j = 0; j < r->scores[i].n_mask_urls; j++, n++) {
            if (urls && n < max) urls[n] = r->scores[i].mask_urls[j];
        }
    }
    if (r->resize_url) {
        if (urls && n < max) urls[n] = r->resize_url;
        n++;
    }
    return n;
}

/* The last segment of the URL's path: after "scheme://authority", cut at
 * '?' or '#'.  Sets *start / *n (n = 0 when the URL has no path). */
static void url_last_segment(const char *url, const char **start, size_t *n)
{
    const char *p = strstr(url, "://"), *end, *seg;
    if (p) {
        p += 3 + strcspn(p + 3, "/?#"); /* the authority ends here */
        if (*p != '/') p += strlen(p);  /* no path at all */
    } else {
        p = url;
    }
    end = p + strcspn(p, "?#");
    seg = end;
    while (seg > p && seg[-1] != '/') seg--;
    *start = seg;
    *n = (size_t)(end - seg);
}

void sa__url_file_name(const char *url, char *buf, size_t len)
{
    const char *seg;
    size_t n, i;

    if (!buf || len == 0) return;
    buf[0] = '\0';
    if (!url) return;
    url_last_segment(url, &seg, &n);
    if (n == 0 || n >= len) return;
    if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' &&
                                      seg[1] == '.'))
        return;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)seg[i];
        if (c < 0x20 || c == 0x7f || c == '\\') return;
    }
    memcpy(buf, seg, n);
    buf[n] = '\0';
}

const char *sa__result_find_url(const sa_result *r, const char *file_name)
{
    size_t i, j;
    char name[256];

    if (!r || !file_name || !file_name[0]) return NULL;
    for (i = 0; i < r->count; i++) {
        for (j = 0; j < r->scores[i].n_mask_urls; j++) {
            sa__url_file_name(r->scores[i].mask_urls[j], name, sizeof name);
            if (strcmp(name, file_name) == 0) return r->scores[i].mask_urls[j];
        }
    }
    if (r->resize_url) {
        sa__url_file_name(r->resize_url, name, sizeof name);
        if (strcmp(name, file_name) == 0) return r->resize_url;
    }
    return NULL;
}

size_t sa_result_file_count(const sa_result *r)
{
    return r ? r->n_files : 0;
}

const char *sa_result_file_name(const sa_result *r, size_t i)
{
    return (r && i < r->n_files) ? r->files[i].name : NULL;
}

const void *sa_result_file_data(const sa_result *r, size_t i, size_t *len)
{
    if (!r || i >= r->n_files) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = r->files[i].len;
    return r->files[i].data;
}

int sa_result_file_format(const sa_result *r, size_t i)
{
    return (r && i < r->n_files) ? r->files[i].format : SA_IMAGE_UNKNOWN;
}

const char *sa_result_file_path(const sa_result *r, size_t i)
{
    return (r && i < r->n_files) ? r->files[i].path : NULL;
}

int sa_file_is_mask(const char *name, const void *data, size_t len,
                    const char *resize_image_url)
{
    char rz[SA_FILE_NAME_MAX];

    if (!name || !data || sa__result_sniff_format(data, len) ==
                              SA_IMAGE_UNKNOWN)
        return 0;
    if (resize_image_url &&
        sa_file_name_clean(resize_image_url, rz, sizeof rz) == SA_OK &&
        strcmp(name, rz) == 0)
        return 0;
    return 1;
}

