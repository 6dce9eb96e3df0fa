/*
 * fuzz_zip.c - libFuzzer target over result ZIPs (sa_result_parse_zip).
 * Every accepted archive must give file names without a path, readable
 * scores and files, and a clone equal to it.  Seeds: tests/fixtures/zips.
 */
#include "sa_internal.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(int cond)
{
    if (!cond) abort();
}

static void check_result(const sa_result *r)
{
    size_t i, len;
    sa_result *c = NULL;
    for (i = 0; i < sa_result_count(r); i++)
        require(sa_result_score(r, i)->concern != NULL);
    for (i = 0; i < sa_result_file_count(r); i++) {
        const char *name = sa_result_file_name(r, i);
        require(name && name[0] && !strchr(name, '/') &&
                !strchr(name, '\\') && strcmp(name, "..") != 0);
        require(sa_result_file_data(r, i, &len) != NULL);
    }
    require(sa_result_json(r) != NULL);
    if (sa__result_clone(NULL, r, &c) != SA_OK) return;
    require(sa_result_count(c) == sa_result_count(r));
    require(sa_result_file_count(c) == sa_result_file_count(r));
    require(strcmp(sa_result_json(c), sa_result_json(r)) == 0);
    /* the scrubbed copy a job publishes: the files change hands (never
     * copied), no string of the copy shows the secret */
    {
        static const char secret[] = "wrinkle_output";
        size_t n = sa_result_file_count(c);
        const void *first = n ? sa_result_file_data(c, 0, &len) : NULL;
        sa_result *t = NULL;
        if (sa__result_scrub_take(NULL, c, secret, &t) == SA_OK && t) {
            require(sa_result_file_count(c) == 0);
            require(sa_result_file_count(t) == n);
            require(!n || sa_result_file_data(t, 0, &len) == first);
            for (i = 0; i < n; i++)
                require(!sa__has_secret(sa_result_file_name(t, i), secret));
            require(!sa__has_secret(sa_result_json(t), secret));
            sa_result_free(t);
        }
    }
    sa_result_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sa_result *r = NULL;
    char err[256];
    int rc = sa_result_parse_zip(data, size, 1 << 20, &r, err, sizeof err);
    if (rc == SA_OK) {
        check_result(r);
    } else {
        require(r == NULL);
        require(rc == SA_ERR_ZIP || rc == SA_ERR_LIMIT ||
                rc == SA_ERR_NOMEM || rc == SA_ERR_INVALID_ARGUMENT);
    }
    sa_result_free(r);
    return 0;
}
