/* zipresult.c - result ZIPs (format "zip") parsed from memory with libzip.
 *
 * The archive holds skinanalysisResult/score_info.json and one image per
 * mask.  score_info.json is accepted under that folder, at the root, or
 * under any single top folder (the name itself is case-sensitive); the
 * documented folder wins when several are present.  Every other entry whose
 * name ends in .png, .jpg or .jpeg (any case) becomes a result file under
 * its base name only: the part after the last '/' or '\', never a path,
 * never "." or "..", never a name with control bytes (zip-slip safe).  When
 * two entries share a base name both are kept, the second under the next
 * free variant of the name ("mask-2.png", see files.c).
 *
 * Nothing in the archive is trusted: at most ZIP_MAX_ENTRIES entries, each
 * entry's declared size is checked against max_entry_bytes before it is
 * read, the bytes actually inflated are counted while reading (more or
 * fewer than declared is SA_ERR_ZIP), and the files kept add up to at most
 * max_total (the client's max_files_bytes), by default ZIP_TOTAL_FACTOR *
 * max_entry_bytes.
 *
 * Memory: libzip allocates its archive state with malloc, outside sa_mem;
 * it is freed before these functions return.  The result and its files go
 * through mem.
 */
#include "sa_internal.h"

#include <string.h>
#include <zip.h>

#define ZIP_DEFAULT_MAX_ENTRY ((size_t)32 * 1024 * 1024)
#define ZIP_MAX_ENTRIES 4096
#define ZIP_TOTAL_FACTOR 8
#define ZIP_JSON_DEPTH 64
#define ZIP_READ_CHUNK 65536
#define ZIP_NAME_MAX 255

typedef struct zip_ctx {
    const sa_mem *mem;
    zip_t *za;
    zip_int64_t n_entries;
    size_t max_entry;
    size_t total, max_total;
    char *err;
    size_t errlen;
} zip_ctx;

/* 1 when name is score_info.json at the root or under one top folder;
 * 2 for the documented skinanalysisResult/score_info.json. */
static int score_info_rank(const char *name)
{
    static const char file[] = "score_info.json";
    const char *slash = strchr(name, '/');
    if (strcmp(name, "skinanalysisResult/score_info.json") == 0) return 2;
    if (!slash) return strcmp(name, file) == 0;
    if (slash == name) return 0;
    return strcmp(slash + 1, file) == 0;
}

static int find_score_info(const zip_ctx *z, zip_uint64_t *index)
{
    zip_int64_t i;
    int best = 0;
    for (i = 0; i < z->n_entries; i++) {
        const char *name = zip_get_name(z->za, (zip_uint64_t)i, ZIP_FL_ENC_RAW);
        int rank = name ? score_info_rank(name) : 0;
        if (rank > best) {
            best = rank;
            *index = (zip_uint64_t)i;
        }
    }
    return best > 0;
}

/* Read the declared size, then every inflated byte, counting them. */
static int read_checked(zip_ctx *z, zip_uint64_t index, zip_file_t *f,
                        char *buf, size_t size)
{
    size_t got = 0;
    char extra;
    while (got < size) {
        size_t want = size - got < ZIP_READ_CHUNK ? size - got : ZIP_READ_CHUNK;
        zip_int64_t n = zip_fread(f, buf + got, want);
        if (n < 0) {
            sa__errf(z->err, z->errlen, "zip entry %llu: %s",
                     (unsigned long long)index, zip_file_strerror(f));
            return SA_ERR_ZIP;
        }
        if (n == 0) break;
        got += (size_t)n;
    }
    if (got != size || zip_fread(f, &extra, 1) != 0) {
        sa__errf(z->err, z->errlen,
                 "zip entry %llu: size differs from the declared %zu bytes",
                 (unsigned long long)index, size);
        return SA_ERR_ZIP;
    }
    return SA_OK;
}

/* The bytes of entry index (NUL-terminated, allocated through mem). */
static int read_entry(zip_ctx *z, zip_uint64_t index, char **out,
                      size_t *len)
{
    zip_stat_t st;
    zip_file_t *f;
    char *buf;
    int rc;

    *out = NULL;
    zip_stat_init(&st);
    if (zip_stat_index(z->za, index, 0, &st) != 0 ||
        !(st.valid & ZIP_STAT_SIZE)) {
        sa__errf(z->err, z->errlen, "zip entry %llu: no size",
                 (unsigned long long)index);
        return SA_ERR_ZIP;
    }
    if (st.size > z->max_entry) {
        sa__errf(z->err, z->errlen,
                 "zip entry %llu is %llu bytes, over the limit of %zu",
                 (unsigned long long)index, (unsigned long long)st.size,
                 z->max_entry);
        return SA_ERR_LIMIT;
    }
    buf = sa__malloc(z->mem, (size_t)st.size + 1);
    if (!buf) return SA_ERR_NOMEM;
    f = zip_fopen_index(z->za, index, 0);
    if (!f) {
        sa__errf(z->err, z->errlen, "zip entry %llu: %s",
                 (unsigned long long)index, zip_strerror(z->za));
        sa__free(z->mem, buf);
        return SA_ERR_ZIP;
    }
    rc = read_checked(z, index, f, buf, (size_t)st.size);
    zip_fclose(f);
    if (rc != SA_OK) {
        sa__free(z->mem, buf);
        return rc;
    }
    buf[st.size] = '\0';
    *out = buf;
    *len = (size_t)st.size;
    return SA_OK;
}

static int load_scores(zip_ctx *z, const char *task_id, sa_result **out)
{
    zip_uint64_t index = 0;
    cJSON *root = NULL;
    char *text;
    size_t len;
    int rc;

    if (!find_score_info(z, &index)) {
        sa__errf(z->err, z->errlen,
                 "zip has no skinanalysisResult/score_info.json");
        return SA_ERR_ZIP;
    }
    rc = read_entry(z, index, &text, &len);
    if (rc != SA_OK) return rc;
    rc = sa__json_parse(text, len, ZIP_JSON_DEPTH, &root);
    if (rc == SA_OK) {
        rc = sa__result_from_score_info(z->mem, root, task_id, out, z->err,
                                       z->errlen);
        cJSON_Delete(root);
        if (rc == SA_ERR_PROTOCOL) rc = SA_ERR_ZIP;
    } else if (rc == SA_ERR_PROTOCOL) {
        sa__errf(z->err, z->errlen, "score_info.json is not valid JSON");
        rc = SA_ERR_ZIP;
    } else if (rc == SA_ERR_LIMIT) {
        sa__errf(z->err, z->errlen, "score_info.json nests too deeply");
    }
    if (rc == SA_OK) rc = sa__result_set_raw_json(*out, text, len);
    sa__free(z->mem, text);
    return rc;
}

static int has_image_suffix(const char *name, size_t n)
{
    static const char *const ext[] = {".png", ".jpg", ".jpeg"};
    size_t i, k, e;
    for (i = 0; i < sizeof ext / sizeof ext[0]; i++) {
        e = strlen(ext[i]);
        if (n < e) continue;
        for (k = 0; k < e; k++) {
            char c = name[n - e + k];
            if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
            if (c != ext[i][k]) break;
        }
        if (k == e) return 1;
    }
    return 0;
}

/* The safe base name of an entry into buf, or 0 when it has none. */
static int base_name(const char *name, char *buf, size_t len)
{
    const char *p, *base = name;
    size_t n;
    for (p = name; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '/' || c == '\\') base = p + 1;
        else if (c < 0x20 || c == 0x7f) return 0;
    }
    n = strlen(base);
    if (n == 0 || n >= len || strcmp(base, ".") == 0 ||
        strcmp(base, "..") == 0 || !has_image_suffix(base, n))
        return 0;
    memcpy(buf, base, n + 1);
    return 1;
}

static int add_image(zip_ctx *z, zip_uint64_t index, const char *name,
                     sa_result *r)
{
    char *data;
    size_t len;
    int rc = read_entry(z, index, &data, &len);
    if (rc != SA_OK) return rc;
    if (len > z->max_total - z->total) {
        sa__errf(z->err, z->errlen,
                 "zip images add up to more than %zu bytes", z->max_total);
        sa__free(z->mem, data);
        return SA_ERR_LIMIT;
    }
    z->total += len;
    return sa__result_add_file_owned(r, name, data, len);  /* takes data */
}

static int load_images(zip_ctx *z, sa_result *r)
{
    zip_int64_t i;
    char name[ZIP_NAME_MAX + 1], unique[ZIP_NAME_MAX + 16];
    sa__names taken;
    int rc = SA_OK;

    sa__names_init(&taken, z->mem);
    for (i = 0; rc == SA_OK && i < z->n_entries; i++) {
        const char *raw = zip_get_name(z->za, (zip_uint64_t)i, ZIP_FL_ENC_RAW);
        if (!raw || !base_name(raw, name, sizeof name)) continue;
        rc = sa__names_unique(&taken, name, unique, sizeof unique);
        if (rc == SA_ERR_LIMIT) {
            rc = SA_OK;  /* no free variant of that name: skipped */
            continue;
        }
        if (rc == SA_OK) rc = add_image(z, (zip_uint64_t)i, unique, r);
    }
    sa__names_free(&taken);
    return rc;
}

static int open_archive(zip_ctx *z, const void *zip, size_t len)
{
    zip_error_t ze;
    zip_source_t *src;

    zip_error_init(&ze);
    src = zip_source_buffer_create(zip, len, 0, &ze);
    if (!src) {
        zip_error_fini(&ze);
        return SA_ERR_NOMEM;
    }
    z->za = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze);
    if (!z->za) {
        int nomem = zip_error_code_zip(&ze) == ZIP_ER_MEMORY;
        sa__errf(z->err, z->errlen, "not a valid zip: %s",
                 zip_error_strerror(&ze));
        zip_source_free(src);
        zip_error_fini(&ze);
        return nomem ? SA_ERR_NOMEM : SA_ERR_ZIP;
    }
    zip_error_fini(&ze);
    z->n_entries = zip_get_num_entries(z->za, 0);
    if (z->n_entries < 0 || z->n_entries > ZIP_MAX_ENTRIES) {
        sa__errf(z->err, z->errlen, "zip has more than %d entries",
                 ZIP_MAX_ENTRIES);
        return z->n_entries < 0 ? SA_ERR_ZIP : SA_ERR_LIMIT;
    }
    return SA_OK;
}

int sa__result_from_zip(const sa_mem *mem, const void *zip, size_t len,
                       size_t max_entry_bytes, size_t max_total,
                       const char *task_id, sa_result **out, char *err,
                       size_t errlen)
{
    zip_ctx z;
    int rc;

    if (!out) return SA_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!zip || len == 0) {
        sa__errf(err, errlen, "empty zip");
        return zip ? SA_ERR_ZIP : SA_ERR_INVALID_ARGUMENT;
    }
    memset(&z, 0, sizeof z);
    z.mem = mem;
    z.max_entry = max_entry_bytes ? max_entry_bytes : ZIP_DEFAULT_MAX_ENTRY;
    z.max_total = z.max_entry <= SIZE_MAX / ZIP_TOTAL_FACTOR
                      ? z.max_entry * ZIP_TOTAL_FACTOR
                      : SIZE_MAX;
    if (max_total) z.max_total = max_total;
    z.err = err;
    z.errlen = errlen;
    rc = open_archive(&z, zip, len);
    if (rc == SA_OK) rc = load_scores(&z, task_id, out);
    if (rc == SA_OK) rc = load_images(&z, *out);
    if (z.za) zip_discard(z.za);
    if (rc != SA_OK) {
        if (rc == SA_ERR_NOMEM) sa__errf(err, errlen, "out of memory");
        sa_result_free(*out);
        *out = NULL;
    }
    return rc;
}

int sa_result_parse_zip(const void *zip, size_t len, size_t max_entry_bytes,
                        sa_result **out, char *errbuf, size_t errbuf_len)
{
    if (errbuf && errbuf_len) errbuf[0] = '\0';
    return sa__result_from_zip(NULL, zip, len, max_entry_bytes, 0, NULL, out,
                              errbuf, errbuf_len);
}
