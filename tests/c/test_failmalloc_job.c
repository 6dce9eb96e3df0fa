/*
 * test_failmalloc_job.c - the job state machine under allocation failure.
 *
 * Each scenario is run again and again with the N-th allocation through
 * sa_mem failing (N = 1, 2, ... until a run needs fewer allocations than
 * N), once with only that allocation failing and once with every
 * allocation from the N-th on failing.  Every run must end either in the
 * scenario's normal outcome (when no allocation failed) or FAILED with
 * SA_ERR_NOMEM -- never a crash, a hang or another code -- and must leave
 * no allocation behind.
 */
#include "harness.h"
#include "support_fakeserver.h"

#define T0 ((int64_t)5000000)
#define N(a) (sizeof(a) / sizeof((a)[0]))

static const char *const hd_actions[] = { "hd_wrinkle", "hd_pore",
                                          "hd_acne" };

#define RESUME 2  /* config(): resume an existing task (no source) */

static void config(sa__job_config *c, fs_mem *m, uint64_t *rng, int upload)
{
    fs_job_config(c, m, rng, "https://api.test", T0);
    if (upload == RESUME) {
        c->task_id = "SaGaqpDgKwFrVBgMpQMA3HY0LeqdT9_13W5TOD8_u_GPi6NqQ3dh";
    } else if (upload) {
        c->file_path = "/photos/me.png";
        c->file_size = 547541;
        c->content_type = "image/png";
        c->file_name = "me.png";
    } else {
        c->image_url = "https://img.example/face.jpg";
    }
    if (upload != RESUME) {
        c->task.actions = hd_actions;
        c->task.n_actions = N(hd_actions);
    }
    c->task.format = SA_FORMAT_JSON;
    c->task.pf_camera_kit = 1;
    c->task.mask_overlay = -1;
    c->max_polls = 100;
    c->max_retries = 4;
}

#define FILE_OK FS_FILE_OK("r1")
#define TASK_OK FS_TASK_OK(90, "r2")
#define RUNNING FS_RUNNING("r3")
#define SUCCESS FS_SUCCESS("task-status-success-json-hd.json", "r4")

static const fs_reply happy[] = { FILE_OK, FS_UPLOAD_OK, TASK_OK, RUNNING,
                                  SUCCESS };

static const fs_reply retries[] = {
    { .step = SA__STEP_FILE_CREATE, .http = 503, .latency_ms = 20,
      .body = "{\"status\":503,\"error\":\"Service Unavailable\"}" },
    FILE_OK,
    { .step = SA__STEP_UPLOAD, .transport = SA_ERR_TRANSPORT, .latency_ms = 5 },
    { .step = SA__STEP_UPLOAD, .http = 503, .latency_ms = 20,
      .body = "<Error><Code>SlowDown</Code><Message>Reduce your request "
              "rate.</Message></Error>" },
    FS_UPLOAD_OK,
    { .step = SA__STEP_TASK_CREATE, .http = 429, .latency_ms = 20,
      .example = "error-429.json", .request_id = "r429" },
    { .step = SA__STEP_TASK_CREATE, .transport = SA_ERR_TRANSPORT,
      .not_sent = 1, .latency_ms = 5 },
    TASK_OK,
    { .step = SA__STEP_POLL, .http = 502, .latency_ms = 20,
      .body = "<html><body>502 Bad Gateway</body></html>" },
    { .step = SA__STEP_POLL, .http = 200, .latency_ms = 20,
      .body = "{\"status\":200,\"data\":{\"task_status\":\"running\","
              "\"polling_interval\":700}}" },
    { .step = SA__STEP_POLL, .http = 200, .latency_ms = 20, .body = "junk" },
    RUNNING,
    SUCCESS };

static const fs_reply failures[] = {
    { .step = SA__STEP_TASK_CREATE, .http = 401, .latency_ms = 20,
      .example = "error-401-observed.json", .request_id = "r401" } };

#define STORM { .step = SA__STEP_POLL, .http = 503, .latency_ms = 20, \
                .body = "<html>503</html>" }
#define QUEUED { .step = SA__STEP_POLL, .http = 200, .latency_ms = 20, \
                 .body = "{\"status\":200,\"data\":{\"task_status\":" \
                         "\"queued\"}}" }

/* Past the retry budget (max_retries 4): polled on; an unknown status. */
static const fs_reply storm[] = {
    TASK_OK, STORM, STORM, STORM, STORM, STORM, STORM, STORM, QUEUED, QUEUED,
    STORM, RUNNING, SUCCESS };

static const fs_reply resumed[] = { RUNNING, QUEUED, STORM, SUCCESS };

static const fs_reply engine_error[] = {
    TASK_OK, RUNNING,
    { .step = SA__STEP_POLL, .http = 200, .latency_ms = 20,
      .example = "task-status-error-no-face.json" } };

typedef struct scenario {
    const char *name;
    int upload;
    const fs_reply *script;
    size_t n;
    int cancel_at;        /* cancel (keep polling) in this state, or -1 */
    int status;           /* the public outcome without failures */
} scenario;

static const scenario scenarios[] = {
    { "happy", 1, happy, N(happy), -1, SA_OK },
    { "retries", 1, retries, N(retries), -1, SA_OK },
    { "auth", 0, failures, N(failures), -1, SA_ERR_AUTH },
    { "engine error", 0, engine_error, N(engine_error), -1, SA_ERR_ENGINE },
    { "cancel then poll", 1, happy, N(happy), SA_JOB_POLL_WAIT,
      SA_ERR_CANCELLED },
    { "poll storm", 0, storm, N(storm), -1, SA_OK },
    { "resume", RESUME, resumed, N(resumed), -1, SA_OK },
};

/* One run with the fail_at-th allocation failing.  Returns 1 when no
 * allocation failed (the loop is over), 0 otherwise. */
static int run_once(const scenario *sc, long fail_at, int fail_after)
{
    fs_mem m;
    uint64_t rng = 88172645463325252ULL;
    sa__job_config cfg;
    sa__jobsm *sm = NULL;
    fs_run *run = malloc(sizeof *run);
    size_t used;
    int rc, st, done;

    if (!run) {
        HARNESS_FAIL("test out of memory");
        return 1;
    }
    fs_mem_init(&m, fail_at, fail_after);
    config(&cfg, &m, &rng, sc->upload);
    fs_run_init(run, T0);
    rc = sa__jobsm_new(&cfg, T0, &sm);
    if (rc != SA_OK) {
        if (rc != SA_ERR_NOMEM || sm != NULL)
            HARNESS_FAIL("%s N=%ld: new returned %d", sc->name, fail_at, rc);
        goto out;
    }
    run->stop_state = sc->cancel_at;
    used = fs_drive(run, sm, sc->script, sc->n);
    if (sc->cancel_at >= 0 && !run->ended) {
        sa__jobsm_cancel(sm, run->now, 0);
        run->stop_state = -1;
        fs_drive(run, sm, sc->script + used, sc->n - used);
    }
    if (!run->ended)
        HARNESS_FAIL("%s N=%ld: did not end", sc->name, fail_at);
    if (run->errors)
        HARNESS_FAIL("%s N=%ld: driver: %s", sc->name, fail_at, run->error);
    st = sa__jobsm_status(sm);
    if (m.failed == 0) {
        if (st != sc->status)
            HARNESS_FAIL("%s: status %d, expected %d", sc->name, st,
                         sc->status);
    } else if (st == SA_ERR_CANCELLED && sc->cancel_at >= 0) {
        /* the failure hit the background polling */
        if (sa__jobsm_task_outcome(sm, NULL) != SA_ERR_NOMEM
            && sa__jobsm_task_outcome(sm, NULL) != SA_OK)
            HARNESS_FAIL("%s N=%ld: background outcome %d", sc->name,
                         fail_at, sa__jobsm_task_outcome(sm, NULL));
    } else if (st != SA_ERR_NOMEM) {
        HARNESS_FAIL("%s N=%ld%s: status %d (%s), expected NOMEM", sc->name,
                     fail_at, fail_after ? "+" : "", st, sa__jobsm_errmsg(sm));
    } else if (run->last_rc != SA_ERR_NOMEM) {
        HARNESS_FAIL("%s N=%ld: no call returned SA_ERR_NOMEM", sc->name,
                     fail_at);
    }
    sa__jobsm_free(sm);
out:
    if (m.live != 0)
        HARNESS_FAIL("%s N=%ld%s: %ld allocations leaked", sc->name, fail_at,
                     fail_after ? "+" : "", m.live);
    done = m.failed == 0;
    free(run);
    return done;
}

static void run_scenario(const scenario *sc)
{
    int mode;
    for (mode = 0; mode < 2; mode++) {
        long n;
        int finished = 0;
        for (n = 1; n < 100000 && !finished && !harness_cur_failed; n++)
            finished = run_once(sc, n, mode);
        CHECK(finished);
        if (mode == 0) fprintf(stderr, "  %s: %ld allocations\n", sc->name,
                               n - 2);
    }
}

TEST(failmalloc_happy_path) { run_scenario(&scenarios[0]); }
TEST(failmalloc_retries) { run_scenario(&scenarios[1]); }
TEST(failmalloc_auth_error) { run_scenario(&scenarios[2]); }
TEST(failmalloc_engine_error) { run_scenario(&scenarios[3]); }
TEST(failmalloc_background_polling) { run_scenario(&scenarios[4]); }
TEST(failmalloc_poll_storm) { run_scenario(&scenarios[5]); }
TEST(failmalloc_resume) { run_scenario(&scenarios[6]); }

int main(void)
{
    RUN(failmalloc_happy_path);
    RUN(failmalloc_retries);
    RUN(failmalloc_auth_error);
    RUN(failmalloc_engine_error);
    RUN(failmalloc_background_polling);
    RUN(failmalloc_poll_storm);
    RUN(failmalloc_resume);
    (void)harness_slurp;
    return harness_report();
}
