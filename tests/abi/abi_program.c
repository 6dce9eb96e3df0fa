/* abi_program.c - a program built against a released skinanalysis.h, run against the library of today. */
/*
 * Built three ways by tests/abi/CMakeLists.txt:
 *   - against the release snapshot (skinanalysis-0.2.0.h), run against
 *     the library built now: an old program on a newer library;
 *   - the same binary run against a library whose structs have grown
 *     (fields appended, as every merge that adds an option does);
 *   - against the grown header (SA_ABI_GROWN), run against today's
 *     library: a newer program on an older library.
 * Usage: abi_program BASE_URL IMAGE [LIBRARY_PATH_PART]
 * BASE_URL "-" skips the analysis (no emulator).  LIBRARY_PATH_PART: the
 * path of the library actually loaded must contain it.
 */
#define _GNU_SOURCE
#include "skinanalysis.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define CHECK(cond)                                                      \
    do {                                                                 \
        if (!(cond)) {                                                   \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,       \
                    __LINE__, #cond);                                    \
            failures++;                                                  \
        }                                                                \
    } while (0)

#define CANARY 0xA5

/* Each struct with 64 bytes after it that the library must not touch. */
#define GUARDED(type) struct { type s; unsigned char canary[64]; }

static int canary_ok(const unsigned char *p)
{
    size_t i;
    for (i = 0; i < 64; i++)
        if (p[i] != CANARY) return 0;
    return 1;
}

static void check_inits(void)
{
    GUARDED(sa_client_options) o;
    GUARDED(sa_request) r;
    GUARDED(sa_resume_options) ro;
    GUARDED(sa_fetch_options) fo;
    GUARDED(sa_image_info) ii;

    memset(&o, CANARY, sizeof o);
    memset(&r, CANARY, sizeof r);
    memset(&ro, CANARY, sizeof ro);
    memset(&fo, CANARY, sizeof fo);
    memset(&ii, CANARY, sizeof ii);
    sa_client_options_init(&o.s);
    sa_request_init(&r.s);
    sa_resume_options_init(&ro.s);
    sa_fetch_options_init(&fo.s);
    sa_image_info_init(&ii.s);
    CHECK(o.s.struct_size == sizeof o.s && canary_ok(o.canary));
    CHECK(r.s.struct_size == sizeof r.s && canary_ok(r.canary));
    CHECK(ro.s.struct_size == sizeof ro.s && canary_ok(ro.canary));
    CHECK(fo.s.struct_size == sizeof fo.s && canary_ok(fo.canary));
    CHECK(ii.s.struct_size == sizeof ii.s && canary_ok(ii.canary));
    /* the defaults of the fields this header knows */
    CHECK(o.s.api_version == SA_API_V2_1);
    CHECK(o.s.max_retries == 6);
    CHECK(o.s.rate_limit == 1);
    CHECK(o.s.low_speed_time_ms == 30000);
    CHECK(o.s.api_key == NULL && o.s.log == NULL);
    CHECK(r.s.pf_camera_kit == -1 && r.s.mask_overlay == -1);
    CHECK(r.s.file_path == NULL && r.s.callback == NULL);
    CHECK(fo.s.folder == NULL);
#ifdef SA_ABI_GROWN
    CHECK(o.s.abi_future_flag == 0 && o.s.abi_future_limit == 0.0);
    CHECK(r.s.abi_future_flag == 0);
    CHECK(ii.s.abi_future_flag == 0);
#endif
}

static void check_probe(const char *image)
{
    GUARDED(sa_image_info) ii;
    sa_image_info never;

    memset(&ii, CANARY, sizeof ii);
    sa_image_info_init(&ii.s);
    CHECK(sa_image_probe_file(image, &ii.s) == SA_OK);
    CHECK(ii.s.format == SA_IMAGE_JPEG || ii.s.format == SA_IMAGE_PNG);
    CHECK(ii.s.width > 0 && ii.s.height > 0);
    CHECK(ii.s.struct_size == sizeof ii.s);
    CHECK(canary_ok(ii.canary));
    /* an out struct never set up is refused, untouched */
    memset(&never, 0, sizeof never);
    CHECK(sa_image_probe_file(image, &never) == SA_ERR_INVALID_ARGUMENT);
    CHECK(never.width == 0);
}

static void check_refusals(const char *base_url)
{
    sa_client_options o;
    sa_client *c = NULL;
    char err[256] = "";

    /* not set up: struct_size 0 */
    memset(&o, 0, sizeof o);
    o.api_key = "emulator-key";
    o.base_url = base_url;
    CHECK(sa_client_new(&c, &o, err, sizeof err) == SA_ERR_INVALID_ARGUMENT);
    CHECK(c == NULL && strstr(err, "struct_size") != NULL);
#ifdef SA_ABI_GROWN
    /* a newer program on an older library: a field that library does
     * not know, set, is refused with a message; left at its default
     * (zero), it is fine (checked by the analysis below) */
    sa_client_options_init(&o);
    o.api_key = "emulator-key";
    o.base_url = base_url;
    o.abi_future_flag = 1;
    err[0] = '\0';
    CHECK(sa_client_new(&c, &o, err, sizeof err) == SA_ERR_INVALID_ARGUMENT);
    CHECK(c == NULL && strstr(err, "newer skinanalysis.h") != NULL);
    if (err[0]) printf("refused as expected: %s\n", err);
#endif
}

static int job_cb(sa_job *job, int state, void *user_data)
{
    (void)job;
    (void)state;
    ++*(int *)user_data;
    return 0;
}

static void check_analysis(const char *base_url, const char *image)
{
    static const char *const actions[] = {"wrinkle", "pore"};
    sa_client_options o;
    sa_request r;
    sa_resume_options ro;
    sa_client *c = NULL;
    sa_job *j = NULL, *j2 = NULL;
    const sa_result *res;
    char err[256] = "";
    int calls = 0;

    sa_client_options_init(&o);
    o.api_key = "emulator-key";
    o.base_url = base_url;
    o.rate_limit = 0;
    if (sa_client_new(&c, &o, err, sizeof err) != SA_OK) {
        fprintf(stderr, "sa_client_new: %s\n", err);
        failures++;
        return;
    }
    sa_request_init(&r);
    r.file_path = image;
    r.actions = actions;
    r.n_actions = 2;
    r.callback = job_cb;
    r.user_data = &calls;
#ifdef SA_ABI_GROWN
    r.abi_future_flag = 1;  /* unknown to the library: refused */
    CHECK(sa_client_submit(c, &r, &j) == SA_ERR_INVALID_ARGUMENT);
    CHECK(strstr(sa_client_errmsg(c), "newer skinanalysis.h") != NULL);
    r.abi_future_flag = 0;
#endif
    CHECK(sa_client_submit(c, &r, &j) == SA_OK);
    if (j) {
        CHECK(sa_job_wait(j, 60000) == SA_OK);
        CHECK(sa_job_status(j) == SA_OK);
        res = sa_job_result(j);
        CHECK(res != NULL && sa_result_count(res) >= 2);
        CHECK(calls >= 2);
        printf("analysis: %s, %zu scores, task %s\n",
               sa_job_state_name(sa_job_state(j)),
               res ? sa_result_count(res) : 0, sa_job_task_id(j));
        /* the same task again, through sa_resume_options */
        sa_resume_options_init(&ro);
        CHECK(sa_client_resume(c, sa_job_task_id(j), &ro, &j2) == SA_OK);
        if (j2) {
            CHECK(sa_job_wait(j2, 60000) == SA_OK);
            CHECK(sa_job_status(j2) == SA_OK);
        }
    }
    sa_job_free(j2);
    sa_job_free(j);
    sa_client_free(c);
}

int main(int argc, char **argv)
{
    Dl_info info;
    const char *(*fn)(void) = sa_version;
    void *addr;

    if (argc < 3) {
        fprintf(stderr, "usage: %s BASE_URL|- IMAGE [LIBRARY_PATH_PART]\n",
                argv[0]);
        return 2;
    }
    memcpy(&addr, &fn, sizeof addr);  /* POSIX: function pointers fit */
    if (!dladdr(addr, &info) || !info.dli_fname) {
        fprintf(stderr, "dladdr failed\n");
        return 1;
    }
    printf("header %s, library %s at %s\n", SA_VERSION, sa_version(),
           info.dli_fname);
    if (argc > 3 && !strstr(info.dli_fname, argv[3])) {
        fprintf(stderr, "loaded %s, expected a path with %s\n",
                info.dli_fname, argv[3]);
        return 1;
    }
    if (sa_global_init() != SA_OK) return 1;
    check_inits();
    check_probe(argv[2]);
    check_refusals(strcmp(argv[1], "-") ? argv[1] : "http://127.0.0.1:9");
    if (strcmp(argv[1], "-") != 0) check_analysis(argv[1], argv[2]);
    sa_global_cleanup();
    if (failures) fprintf(stderr, "%d check(s) failed\n", failures);
    else printf("ok\n");
    return failures ? 1 : 0;
}
