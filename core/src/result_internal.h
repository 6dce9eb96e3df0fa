/* result_internal.h - a sa_result's layout: result.c and result_files.c. */
#ifndef SA_RESULT_INTERNAL_H
#define SA_RESULT_INTERNAL_H

#include "sa_internal.h"

#include <stddef.h>

/* One file of a result, in one allocation (block): the bytes then the
 * NUL-terminated name, or, for a file written to disk, the name then the
 * path (no bytes).  A file taken over by a scrubbed copy
 * (sa__result_scrub_take) whose name or path showed the key keeps its
 * block and has its scrubbed name (then path) in `names`. */
typedef struct sa__result_file {
    unsigned char *data;   /* the bytes; NULL for a file on disk */
    size_t len;
    const char *name;
    const char *path;      /* a file on disk: where it is; else NULL */
    void *block;
    char *names;           /* own name (and path), or NULL */
    int format;
} sa__result_file;

struct sa_result {
    sa_mem mem; /* copy of the allocator (has_mem) */
    int has_mem;
    int format;
    size_t count;
    sa_score *scores;
    double overall;
    double skin_age;
    const char *resize_url;
    const char *zip_url;  /* in the arena, or zip_url_own */
    char *zip_url_own;   /* set by sa__result_set_zip_url, own allocation */
    char *json;          /* raw JSON text, own allocation, or NULL */
    const char *task_id;
    sa__result_file *files; /* n_files used of cap_files */
    size_t n_files, cap_files;
};

/* The allocator a result was built with (NULL: libc). */
static inline const sa_mem *sa__result_mem(const sa_result *r)
{
    return r->has_mem ? &r->mem : NULL;
}

/* result.c: a new arena with the scores, URLs and task id of src, every
 * string scrubbed of secret when it is not NULL; no raw JSON, no files. */
int sa__result_build_clone(const sa_mem *mem, const sa_result *src,
                           const char *secret, sa_result **out);

#endif
