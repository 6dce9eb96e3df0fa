/*
 * test_fetch_memory.c - the memory a mask fetch takes, measured: ten masks
 * of 60 MiB each (the emulator's oversized_body fault on the result host)
 * fetched by a child process, whose peak resident size (getrusage
 * ru_maxrss) the parent reads after it exits.
 *   - into a folder the downloads stream to disk: under 100 MB, the files
 *     all there (before: every mask held in memory, 1.2-1.3 GB);
 *   - in memory the default max_files_bytes (256 MiB) bounds the files of
 *     the result: the masks past it fail SA_ERR_LIMIT, the peak stays near
 *     the bound, and the fetch keeps the files that fit.
 * Under valgrind or ASan (whose own memory hides the library's) the masks
 * are 4 MiB and the sizes are not checked.
 */
#include "harness.h"
#include "sa_internal.h"
#include "support_emulator.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define SA_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SA_TEST_ASAN 1
#endif
#endif

#define N_MASKS 10
#define MB(n) ((long)(n) * 1000 * 1000)

static emu g_emu;
static long g_mask_bytes = 60L << 20;
static int g_measure = 1;

/* What the child reports through its pipe. */
typedef struct report {
    int status;          /* sa_job_status of the fetch */
    long files;          /* files in its result */
    long on_disk;        /* of them written into the folder, full size */
    char msg[256];
} report;

static int under_valgrind(void)
{
    char line[512];
    int found = 0;
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return 0;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, "vgpreload") != NULL;
    fclose(f);
    return found;
}

/* Ten mask URLs on the emulator's result host, all faulted to 60 MiB. */
static const char *results_json(void)
{
    static char buf[2048];
    size_t n = 0;
    int i;

    n += (size_t)snprintf(buf + n, sizeof buf - n, "{\"output\":[{\"type\":"
                          "\"wrinkle\",\"ui_score\":50,\"raw_score\":50.5,"
                          "\"mask_urls\":[");
    for (i = 0; i < N_MASKS; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n,
                              "%s\"{base}/_results/big/mask%02d.png?sig=%d\"",
                              i ? "," : "", i + 1, i);
    snprintf(buf + n, sizeof buf - n, "]}]}");
    return buf;
}

/* In the child: a DONE job with ten big mask URLs, then its fetch. */
static void child_fetch(const char *folder, report *rep)
{
    static const char *const actions[] = {"wrinkle"};
    sa_client_options o;
    sa_client *c = NULL;
    sa_request r;
    sa_job *j = NULL, *f = NULL;
    char ctl[256], err[256], body[2304];
    size_t i;
    int k;

    rep->status = SA_ERR_INIT;
    if (sa_global_init() != SA_OK) return;
    sa_client_options_init(&o);
    o.api_key = EMU_KEY;
    o.base_url = g_emu.base_url;
    o.poll_interval_ms = 50;
    o.max_poll_interval_ms = 1000;
    if (sa_client_new(&c, &o, err, sizeof err) != SA_OK) {
        snprintf(rep->msg, sizeof rep->msg, "%s", err);
        return;
    }
    sa_request_init(&r);
    r.file_path = SA_FIXTURES "/portrait_sd.jpg";
    r.actions = actions;
    r.n_actions = 1;
    if (sa_client_submit(c, &r, &j) != SA_OK) goto out;
    for (k = 0; k < 500 && !sa_job_task_id(j); k++) sa_client_step(c, 10);
    if (!sa_job_task_id(j)) goto out;
    snprintf(body, sizeof body, "{\"results\":%s}", results_json());
    snprintf(ctl, sizeof ctl, "/_control/task/%s/results", sa_job_task_id(j));
    emu_post_json(&g_emu, ctl, body);
    snprintf(ctl, sizeof ctl, "/_control/task/%s/finish", sa_job_task_id(j));
    emu_post_json(&g_emu, ctl, "{}");
    sa_client_notify(c, sa_job_task_id(j));
    if (sa_job_wait(j, 30000) != SA_OK || sa_job_status(j) != SA_OK) goto out;
    if (sa_client_fetch_masks(c, j, folder, &f) != SA_OK) goto out;
    sa_job_wait(f, 240000);
    rep->status = sa_job_status(f);
    snprintf(rep->msg, sizeof rep->msg, "%s", sa_job_errmsg(f));
    if (sa_job_result(f)) {
        const sa_result *res = sa_job_result(f);
        rep->files = (long)sa_result_file_count(res);
        for (i = 0; i < sa_result_file_count(res); i++) {
            struct stat st;
            const char *path = sa_result_file_path(res, i);
            if (path && stat(path, &st) == 0 && st.st_size == g_mask_bytes)
                rep->on_disk++;
        }
    }
out:
    if (rep->status == SA_ERR_INIT)
        snprintf(rep->msg, sizeof rep->msg, "setup: %s%s",
                 j ? sa_job_errmsg(j) : sa_client_errmsg(c), "");
    sa_job_free(f);
    sa_job_free(j);
    sa_client_free(c);
    sa_global_cleanup();
}

/* Run child_fetch in a child process; its report and peak RSS (KiB). */
static int run_child(const char *folder, report *rep, long *maxrss_kib)
{
    int fds[2], wst = 0;
    struct rusage ru;
    pid_t pid;

    memset(rep, 0, sizeof *rep);
    if (pipe(fds) != 0) return -1;
    fflush(NULL);
    pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        report mine;
        memset(&mine, 0, sizeof mine);
        close(fds[0]);
        child_fetch(folder, &mine);
        if (write(fds[1], &mine, sizeof mine) != (ssize_t)sizeof mine)
            _exit(2);
        _exit(0);
    }
    close(fds[1]);
    if (read(fds[0], rep, sizeof *rep) != (ssize_t)sizeof *rep)
        rep->status = SA_ERR_INIT;
    close(fds[0]);
    if (wait4(pid, &wst, 0, &ru) != pid || !WIFEXITED(wst) ||
        WEXITSTATUS(wst) != 0)
        return -1;
    *maxrss_kib = ru.ru_maxrss;
    return 0;
}

static void rm_tree(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", dir);
}

TEST(ten_big_masks_into_a_folder)
{
    char folder[] = "/tmp/sa_fetch_mem_XXXXXX";
    report rep;
    long kib = 0;

    REQUIRE(mkdtemp(folder));
    REQUIRE(run_child(folder, &rep, &kib) == 0);
    fprintf(stderr, "  into a folder: %d masks of %ld MiB, peak RSS %.1f MB"
            " (%s)\n", N_MASKS, g_mask_bytes >> 20, kib * 1024.0 / 1e6,
            rep.status == SA_OK ? "ok" : rep.msg);
    CHECK_EQ_INT(rep.status, SA_OK);
    CHECK_EQ_INT(rep.files, N_MASKS);
    CHECK_EQ_INT(rep.on_disk, N_MASKS);
    if (g_measure) CHECK(kib * 1024 < MB(100));
    rm_tree(folder);
}

TEST(ten_big_masks_in_memory_are_bounded)
{
    report rep;
    long kib = 0, fit = (256L << 20) / g_mask_bytes;

    REQUIRE(run_child(NULL, &rep, &kib) == 0);
    fprintf(stderr, "  in memory: peak RSS %.1f MB, %ld of %d masks kept "
            "(%s)\n", kib * 1024.0 / 1e6, rep.files, N_MASKS, rep.msg);
    if (fit >= N_MASKS) {
        CHECK_EQ_INT(rep.status, SA_OK);
        CHECK_EQ_INT(rep.files, N_MASKS);
    } else {
        CHECK_EQ_INT(rep.status, SA_ERR_LIMIT);
        CHECK(strstr(rep.msg, "max_files_bytes") != NULL);
        CHECK_EQ_INT(rep.files, fit);
    }
    if (g_measure) CHECK(kib * 1024 < (256L << 20) + MB(64));
}

int main(void)
{
    char scenario[256];

#ifdef SA_TEST_ASAN
    g_measure = 0;
#endif
    if (under_valgrind()) g_measure = 0;
    if (!g_measure) g_mask_bytes = 4L << 20;
    if (emu_start(&g_emu, "--task-seconds 60 --rate-limit off --keys "
                  EMU_KEY) != 0)
        return 1;
    snprintf(scenario, sizeof scenario, "{\"faults\":[{\"endpoint\":"
             "\"result\",\"fault\":\"oversized_body\",\"size_bytes\":%ld}]}",
             g_mask_bytes);
    if (emu_scenario(&g_emu, scenario) != 0) {
        emu_stop(&g_emu);
        return 1;
    }
    (void)harness_slurp;
    RUN(ten_big_masks_into_a_folder);
    RUN(ten_big_masks_in_memory_are_bounded);
    emu_stop(&g_emu);
    return harness_report();
}
