/*
 * test_account.c - the account endpoints (API.md 17.1): the account
 * machine against scripted answers and fake time (error shapes, retries,
 * paging and its loop guard, the key scrubbed, every allocation freed),
 * then sa_client_credit / sa_client_price_list / sa_client_delete against
 * the local emulator.
 */
#include "harness.h"
#include "sa_internal.h"
#include "support_emulator.h"
#include "support_fakeserver.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define BASE "https://api.example"
#define T0 1000000
#define N(a) (sizeof(a) / sizeof((a)[0]))
#define KEY "sk-account-Secret-77"

typedef struct at {
    fs_mem m;
    uint64_t rng;
    sa__job_config cfg;
    sa__jobsm *sm;
    fs_run run;
} at;

/* An account call's world with the N-th allocation failing (0: none), its
 * machine not made yet (NULL if out of memory). */
static at *at_alloc(long fail_at)
{
    at *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    fs_mem_init(&t->m, fail_at, 0);
    t->rng = 0x2545F4914F6CDD1DULL;
    fs_job_config(&t->cfg, &t->m, &t->rng, BASE, T0);
    t->cfg.api_version = SA_API_V2_0;
    t->cfg.max_retries = 3;
    t->cfg.backoff_initial_ms = 100;
    t->cfg.backoff_max_ms = 1000;
    fs_run_init(&t->run, T0);
    return t;
}

static at *at_new(int op, const char *task_id)
{
    at *t = at_alloc(0);
    if (!t) return NULL;
    if (sa__jobsm_new_account(&t->cfg, op, task_id, KEY, T0, &t->sm) != SA_OK) {
        free(t);
        return NULL;
    }
    return t;
}

static void at_end(at *t)
{
    sa__jobsm_free(t->sm);
    if (t->m.live != 0) HARNESS_FAIL("%ld allocations leaked", t->m.live);
    if (t->run.errors) HARNESS_FAIL("driver: %s", t->run.error);
    free(t);
}

#define A(http, body) { SA__STEP_ACCOUNT, http, body, NULL, 10, SA_OK, 0, NULL }

TEST(credit_parsed_with_raw_entries_and_key_scrubbed)
{
    static const fs_reply script[] = {
        A(200, "{\"status\":200,\"results\":["
               "{\"type\":\"ApiSubscription\",\"amount\":20,"
               "\"expired_date\":\"2027-01-01\",\"note\":\"" KEY "\"},"
               "{\"type\":\"ApiPayAsYouGo\",\"amount\":\"50\"},"
               "{\"type\":\"WebSubscription\",\"amount\":30},"
               "{\"type\":\"ApiSubscription\",\"amount\":5},"
               "{\"amount\":1}]}")
    };
    at *t = at_new(SA__ACCOUNT_CREDIT, NULL);
    const sa_credit *cr;

    REQUIRE(t);
    fs_drive(&t->run, t->sm, script, 1);
    CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_DONE);
    CHECK(strcmp(t->run.ev[0].url, BASE "/s2s/v1.0/client/credit") == 0);
    CHECK_EQ_INT(t->run.ev[0].method, SA__HTTP_GET);
    CHECK_EQ_INT(t->run.ev[0].api_host, 1);
    cr = sa__account_credit(sa__jobsm_account(t->sm));
    REQUIRE(cr);
    CHECK_NEAR(cr->available, 75, 1e-9);  /* 20 + 50 + 5: Api* only */
    CHECK_EQ_INT((int)cr->n_grants, 5);
    CHECK_STR(cr->grants[0].type, "ApiSubscription");
    CHECK(strstr(cr->grants[0].raw, "\"expired_date\":\"2027-01-01\""));
    CHECK(!strstr(cr->grants[0].raw, KEY));      /* scrubbed */
    CHECK_STR(cr->grants[4].type, "");
    CHECK_EQ_INT((int)cr->n_types, 4);
    CHECK_STR(cr->by_type[0].type, "ApiSubscription");
    CHECK_NEAR(cr->by_type[0].amount, 25, 1e-9);
    CHECK_STR(cr->by_type[2].type, "WebSubscription");
    CHECK(sa__account_prices(sa__jobsm_account(t->sm)) == NULL);
    at_end(t);
}

TEST(credit_refused_answers)
{
    static const char *const bad[] = {
        "{\"status\":200}", "{\"results\":{}}", "{\"results\":[1]}", "[]",
        "{\"results\":[{\"type\":\"A\\u0000pi\"}]}", "not json"
    };
    size_t i;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fs_reply script[4];
        at *t = at_new(SA__ACCOUNT_CREDIT, NULL);
        size_t k;
        REQUIRE(t);
        for (k = 0; k < 4; k++) {
            fs_reply r = A(200, bad[i]);
            script[k] = r;
        }
        fs_drive(&t->run, t->sm, script, 4);
        CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_FAILED);
        CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_PROTOCOL);
        CHECK_EQ_INT((int)t->run.n_events, 4);  /* retried within the budget */
        CHECK(sa__jobsm_account(t->sm) == NULL);
        at_end(t);
    }
}

TEST(credit_errors_classified)
{
    static const fs_reply auth[] = {
        A(401, "{\"status\":401,\"error\":\"Unauthorized\",\"error_code\":"
               "\"InvalidAccessToken\"}")
    };
    static const fs_reply retried[] = {
        A(429, "{\"status\":429,\"error\":\"Too many requests\"}"),
        A(503, "<html><title>503 Service Unavailable</title></html>"),
        { SA__STEP_ACCOUNT, 0, NULL, NULL, 10, SA_ERR_TRANSPORT, 0, NULL },
        A(200, "{\"results\":[]}")
    };
    at *t = at_new(SA__ACCOUNT_CREDIT, NULL);

    REQUIRE(t);
    fs_drive(&t->run, t->sm, auth, 1);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_AUTH);
    CHECK_STR(sa__jobsm_api_error_code(t->sm), "InvalidAccessToken");
    at_end(t);

    t = at_new(SA__ACCOUNT_CREDIT, NULL);
    REQUIRE(t);
    fs_drive(&t->run, t->sm, retried, 4);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_OK);
    CHECK_EQ_INT((int)sa__account_credit(sa__jobsm_account(t->sm))->n_grants, 0);
    at_end(t);
}

TEST(price_list_follows_every_page)
{
    static const fs_reply script[] = {
        A(200, "{\"result\":{\"skus\":[{\"description\":\"SD 1-4\",\"amount\":9,"
               "\"unit\":\"unit\",\"proc_unit\":\"image\",\"run_task_url\":"
               "\"/s2s/v2.0/task/skin-analysis\",\"extra\":[1,2]}],"
               "\"next_token\":\"tok/1+=\"}}"),
        A(200, "{\"result\":{\"skus\":[{\"amount\":22,\"run_task_url\":"
               "\"https://x/s2s/v2.1/task/hair-color?q=1\"}],"
               "\"next_token\":\"tok2\"}}"),
        A(200, "{\"result\":{\"skus\":[],\"next_token\":\"\"}}")
    };
    at *t = at_new(SA__ACCOUNT_PRICES, NULL);
    const sa_price_list *pl;

    REQUIRE(t);
    fs_drive(&t->run, t->sm, script, 3);
    CHECK_EQ_INT(sa__jobsm_state(t->sm), SA_JOB_DONE);
    CHECK_EQ_INT((int)t->run.n_events, 3);
    CHECK_STR(t->run.ev[0].url, BASE "/s2s/v2.0/credit/feature-cost?page_size=20");
    CHECK_STR(t->run.ev[1].url, BASE "/s2s/v2.0/credit/feature-cost?page_size=20"
              "&starting_token=tok%2F1%2B%3D");
    CHECK_STR(t->run.ev[2].url, BASE "/s2s/v2.0/credit/feature-cost?page_size=20"
              "&starting_token=tok2");
    pl = sa__account_prices(sa__jobsm_account(t->sm));
    REQUIRE(pl);
    CHECK_EQ_INT(pl->pages, 3);
    CHECK_EQ_INT((int)pl->n_skus, 2);
    CHECK_STR(pl->skus[0].description, "SD 1-4");
    CHECK_STR(pl->skus[0].feature, "skin-analysis");
    CHECK_STR(pl->skus[0].proc_unit, "image");
    CHECK_NEAR(pl->skus[0].amount, 9, 1e-9);
    CHECK(strstr(pl->skus[0].raw, "\"extra\":[1,2]"));
    CHECK_STR(pl->skus[1].feature, "hair-color");
    CHECK_STR(pl->skus[1].description, "");
    at_end(t);
}

TEST(price_list_loop_and_bad_tokens)
{
    static const fs_reply loop[] = {
        A(200, "{\"result\":{\"skus\":[],\"next_token\":\"a\"}}"),
        A(200, "{\"result\":{\"skus\":[],\"next_token\":\"b\"}}"),
        A(200, "{\"result\":{\"skus\":[],\"next_token\":\"a\"}}"),
        A(200, "{\"result\":{\"skus\":[],\"next_token\":null}}")
    };
    static const fs_reply badtok[] = {
        A(200, "{\"result\":{\"skus\":[],\"next_token\":\"a&b\"}}"),
        A(200, "{\"result\":{\"skus\":[],\"next_token\":\"a&b\"}}"),
        A(200, "{\"result\":{\"skus\":[],\"next_token\":\"a&b\"}}"),
        A(200, "{\"result\":{\"skus\":[],\"next_token\":\"a&b\"}}")
    };
    static const fs_reply badsize[] = {
        A(400, "{\"status\":400,\"error\":\"Invalid parameter value\","
               "\"error_code\":\"InvalidParameters\"}")
    };
    at *t = at_new(SA__ACCOUNT_PRICES, NULL);

    REQUIRE(t);
    fs_drive(&t->run, t->sm, loop, 4);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_PROTOCOL);
    CHECK_EQ_INT((int)t->run.n_events, 3);   /* stopped at the loop */
    CHECK(strstr(sa__jobsm_errmsg(t->sm), "loop"));
    at_end(t);

    t = at_new(SA__ACCOUNT_PRICES, NULL);
    REQUIRE(t);
    fs_drive(&t->run, t->sm, badtok, 4);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_PROTOCOL);
    at_end(t);

    t = at_new(SA__ACCOUNT_PRICES, NULL);
    REQUIRE(t);
    fs_drive(&t->run, t->sm, badsize, 1);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_BAD_REQUEST);
    CHECK_STR(sa__jobsm_api_error_code(t->sm), "InvalidParameters");
    at_end(t);
}

TEST(price_list_page_bound)
{
    static fs_reply script[SA_PRICE_LIST_MAX_PAGES + 2];
    static char bodies[SA_PRICE_LIST_MAX_PAGES + 2][96];
    at *t = at_new(SA__ACCOUNT_PRICES, NULL);
    int i;

    REQUIRE(t);
    for (i = 0; i < SA_PRICE_LIST_MAX_PAGES + 2; i++) {
        fs_reply r = A(200, NULL);
        snprintf(bodies[i], sizeof bodies[i],
                 "{\"result\":{\"skus\":[],\"next_token\":\"p%d\"}}", i);
        r.body = bodies[i];
        script[i] = r;
    }
    fs_drive(&t->run, t->sm, script, SA_PRICE_LIST_MAX_PAGES + 2);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_ERR_LIMIT);
    CHECK_EQ_INT((int)t->run.n_events, SA_PRICE_LIST_MAX_PAGES);
    at_end(t);
}

TEST(delete_errors)
{
#define GONE A(400, "{\"status\":400,\"error\":\"Invalid task ID\"," \
                    "\"error_code\":\"InvalidTaskId\"}")
    /* the answers to a delete of "T1", the status and API error code */
    static const struct {
        fs_reply script[2];
        size_t n;
        int status;
        const char *code;
    } cases[] = {
        { { A(400, "{\"status\":400,\"error\":\"Task is not finished yet\","
                   "\"error_code\":\"OperationInvalid\"}") },
          1, SA_ERR_BAD_REQUEST, "OperationInvalid" },
        { { GONE }, 1, SA_ERR_TASK_EXPIRED, "InvalidTaskId" },
        /* a 502 may have come after the delete was done: "gone" is success */
        { { A(502, "<html><title>502 Bad Gateway</title></html>"), GONE },
          2, SA_OK, NULL },
    };
#undef GONE
    size_t i;
    static const fs_reply ok[] = { A(200, "{\"status\":200,\"data\":{}}") };
    at *t = at_new(SA__ACCOUNT_DELETE, "T/ask+1=");

    REQUIRE(t);
    fs_drive(&t->run, t->sm, ok, 1);
    CHECK_EQ_INT(sa__jobsm_status(t->sm), SA_OK);
    CHECK_STR(t->run.ev[0].url, BASE "/s2s/v2.0/task/delete");
    CHECK_EQ_INT(t->run.ev[0].method, SA__HTTP_POST);
    CHECK_STR(t->run.ev[0].body, "{\"task_id\":\"T/ask+1=\"}");
    CHECK_STR(sa__jobsm_task_id(t->sm), "T/ask+1=");
    at_end(t);

    for (i = 0; i < N(cases); i++) {
        t = at_new(SA__ACCOUNT_DELETE, "T1");
        REQUIRE(t);
        fs_drive(&t->run, t->sm, cases[i].script, cases[i].n);
        CHECK_EQ_INT(sa__jobsm_status(t->sm), cases[i].status);
        if (cases[i].code)
            CHECK_STR(sa__jobsm_api_error_code(t->sm), cases[i].code);
        if (harness_cur_failed) fprintf(stderr, "  (case %zu)\n", i);
        at_end(t);
    }

    /* wrong arguments */
    {
        sa__jobsm *sm = NULL;
        at *u = at_new(SA__ACCOUNT_CREDIT, NULL);
        REQUIRE(u);
        CHECK_EQ_INT(sa__jobsm_new_account(&u->cfg, SA__ACCOUNT_DELETE, NULL,
                                          NULL, T0, &sm), SA_ERR_INVALID_ARGUMENT);
        CHECK_EQ_INT(sa__jobsm_new_account(&u->cfg, 9, NULL, NULL, T0, &sm),
                     SA_ERR_INVALID_ARGUMENT);
        CHECK(sm == NULL);
        at_end(u);
    }
}

TEST(account_out_of_memory_everywhere)
{
    static const fs_reply script[] = {
        A(200, "{\"result\":{\"skus\":[{\"description\":\"d\",\"amount\":1,"
               "\"run_task_url\":\"/s2s/v2.0/task/x\"}],\"next_token\":\"n\"}}"),
        A(200, "{\"result\":{\"skus\":[{\"amount\":2}],\"next_token\":null}}")
    };
    long n;

    for (n = 1; n < 400; n++) {
        at *t = at_alloc(n);
        REQUIRE(t);
        t->cfg.max_retries = 0;
        if (sa__jobsm_new_account(&t->cfg, SA__ACCOUNT_PRICES, NULL, KEY, T0,
                                 &t->sm) != SA_OK) {
            CHECK(t->sm == NULL);
            CHECK_EQ_INT((int)t->m.live, 0);
            free(t);
            continue;
        }
        fs_drive(&t->run, t->sm, script, 2);
        CHECK(sa__jobsm_state(t->sm) == SA_JOB_DONE
              || sa__jobsm_status(t->sm) == SA_ERR_NOMEM);
        t->run.errors = 0;  /* an abandoned request after NOMEM is fine */
        at_end(t);
    }
}

/* Every truncation and many byte changes of valid answers: the reading
 * ends SA_OK or refused, never crashes, frees everything. */
TEST(account_answers_cut_and_mangled)
{
    static const char *const bodies[] = {
        "{\"status\":200,\"results\":[{\"type\":\"ApiSubscription\",\"amount\":"
        "20,\"expired_date\":\"2027-01-01\"},{\"type\":\"Web\",\"amount\":\"5\"}]}",
        "{\"result\":{\"skus\":[{\"description\":\"d\",\"amount\":9,\"unit\":"
        "\"u\",\"proc_unit\":\"p\",\"run_task_url\":\"/s2s/v2.0/task/x\"}],"
        "\"next_token\":\"abc\"}}"
    };
    static const char subst[] = "\"{}[],:0\\a\x01\xff";
    int op;

    for (op = 0; op < 2; op++) {
        const char *b = bodies[op];
        size_t n = strlen(b), cut, i, k;
        char buf[512];

        for (cut = 0; cut <= n; cut++) {
            for (k = 0; k < sizeof subst; k++) {
                fs_mem m;
                sa__account *a = NULL;
                char why[256];
                int more, rc;

                if (cut == n && k > 0) break;
                memcpy(buf, b, n);
                i = cut;
                if (cut < n) buf[i] = subst[k]; /* a changed byte at cut */
                fs_mem_init(&m, 0, 0);
                REQUIRE(sa__account_new(&m.mem, op == 0 ? SA__ACCOUNT_CREDIT
                                        : SA__ACCOUNT_PRICES, KEY, &a) == SA_OK);
                rc = sa__account_feed(a, buf, k == 0 ? cut : n, 64, &more, why,
                                      sizeof why);
                CHECK(rc == SA_OK || rc == SA_ERR_PROTOCOL || rc == SA_ERR_LIMIT);
                sa__account_free(a);
                if (m.live != 0) HARNESS_FAIL("leak at cut %zu", cut);
            }
        }
    }
}

/* ------------------------------------------------------------------ */
/* Against the emulator                                                */
/* ------------------------------------------------------------------ */

static emu g_emu;

static sa_client *client_new(void)
{
    sa_client_options o;

    emu_options(&g_emu, &o, KEY, 50, 3000);
    return emu_client(&o);
}

/* client_new with the emulator reset (its counters at zero). */
static sa_client *client_reset(void)
{
    sa_client *c = client_new();
    if (c) emu_reset(&g_emu);
    return c;
}

static int wait_done(sa_job *j)
{
    return sa_job_wait(j, 10000) == SA_OK ? sa_job_status(j) : SA_ERR_WAIT_TIMEOUT;
}

TEST(emulator_credit_and_price_list)
{
    sa_client *c = client_new();
    sa_job *j = NULL;
    const sa_credit *cr;
    const sa_price_list *pl;
    size_t i;
    int sd9 = 0;

    REQUIRE(c);
    REQUIRE(sa_client_credit(c, NULL, &j) == SA_OK);
    CHECK_EQ_INT(wait_done(j), SA_OK);
    cr = sa_job_credit(j);
    REQUIRE(cr);
    CHECK_NEAR(cr->available, 120, 1e-9);   /* --units 100 + ApiPayAsYouGo:20 */
    CHECK_EQ_INT((int)cr->n_grants, 3);
    CHECK_EQ_INT((int)cr->n_types, 3);
    CHECK_STR(cr->by_type[2].type, "Console");
    CHECK_NEAR(cr->by_type[2].amount, 7, 1e-9);
    CHECK(strstr(cr->grants[0].raw, "expired_date"));
    CHECK(sa_job_price_list(j) == NULL);
    sa_job_free(j);

    REQUIRE(sa_client_price_list(c, NULL, &j) == SA_OK);
    CHECK_EQ_INT(wait_done(j), SA_OK);
    pl = sa_job_price_list(j);
    REQUIRE(pl);
    CHECK_EQ_INT(pl->pages, 2);
    CHECK_EQ_INT((int)pl->n_skus, 22);
    for (i = 0; i < pl->n_skus; i++)
        if (strcmp(pl->skus[i].feature, "skin-analysis") == 0
            && pl->skus[i].amount == 9)
            sd9++;
    CHECK_EQ_INT(sd9, 2);   /* SD 1-4 concerns, v2.0 and v2.1 */
    CHECK(sa_job_credit(j) == NULL);
    sa_job_free(j);
    CHECK_EQ_INT((int)emu_counter2(&g_emu, "requests", "feature_cost"), 2);
    sa_client_free(c);
}

TEST(account_options_struct_size)
{
    unsigned char raw[sizeof(sa_account_options) + 16];
    sa_account_options *o = (sa_account_options *)(void *)raw;
    sa_account_options opts;
    sa_client *c = client_new();
    sa_job *j = NULL;
    size_t cut = offsetof(sa_account_options, callback), i;

    REQUIRE(c);
    /* the init writes only the caller's size */
    memset(raw, 0xA5, sizeof raw);
    sa_account_options_init_sized(o, cut);
    CHECK_EQ_INT((int)o->struct_size, (int)cut);
    CHECK_EQ_INT((int)o->deadline_ms, 0);
    for (i = cut; i < sizeof raw; i++)
        if (raw[i] != 0xA5) HARNESS_FAIL("byte %zu written", i);
    /* an older program's smaller struct: the rest takes the defaults */
    REQUIRE(sa_client_credit(c, o, &j) == SA_OK);
    CHECK_EQ_INT(wait_done(j), SA_OK);
    CHECK(sa_job_credit(j) != NULL);
    sa_job_free(j);
    j = NULL;

    /* never initialised: refused before anything is sent */
    memset(&opts, 0, sizeof opts);
    CHECK_EQ_INT(sa_client_credit(c, &opts, &j), SA_ERR_INVALID_ARGUMENT);
    CHECK(strstr(sa_client_errmsg(c), "init"));
    CHECK(j == NULL);
    /* a newer program's field this library does not know, set */
    memset(raw, 0, sizeof raw);
    sa_account_options_init_sized(o, sizeof raw);
    raw[sizeof raw - 1] = 1;
    CHECK_EQ_INT(sa_client_price_list(c, o, &j), SA_ERR_INVALID_ARGUMENT);
    CHECK(j == NULL);
    /* left zero, it is accepted; a bad value is a bad option */
    raw[sizeof raw - 1] = 0;
    o->deadline_ms = -1;
    CHECK_EQ_INT(sa_client_price_list(c, o, &j), SA_ERR_BAD_OPTION);
    CHECK(j == NULL);
    sa_account_options_init(&opts);
    CHECK_EQ_INT((int)opts.struct_size, (int)sizeof opts);
    opts.deadline_ms = -1;
    CHECK_EQ_INT(sa_client_delete(c, "t1", &opts, &j), SA_ERR_BAD_OPTION);
    CHECK(j == NULL);
    sa_client_free(c);
}

TEST(emulator_delete)
{
    static const char *const acts[] = {"wrinkle", "pore"};
    sa_client *c = client_new();
    sa_request req;
    sa_job *j = NULL, *d = NULL, *r = NULL;
    char task[256];

    REQUIRE(c);
    /* refused before anything is sent */
    CHECK_EQ_INT(sa_client_delete(c, "bad id!", NULL, &d), SA_ERR_SOURCE);
    CHECK_EQ_INT(sa_client_delete(c, "", NULL, &d), SA_ERR_SOURCE);
    CHECK_EQ_INT(sa_client_delete(c, "..", NULL, &d), SA_ERR_SOURCE);
    CHECK(d == NULL);
    CHECK_EQ_INT((int)emu_counter2(&g_emu, "requests", "task_delete"), 0);

    sa_request_init(&req);
    req.file_path = SA_FIXTURES "/portrait_sd.jpg";
    req.actions = acts;
    req.n_actions = 2;
    REQUIRE(sa_client_submit(c, &req, &j) == SA_OK);
    CHECK_EQ_INT(wait_done(j), SA_OK);
    snprintf(task, sizeof task, "%s", sa_job_task_id(j));
    sa_job_free(j);

    REQUIRE(sa_client_delete(c, task, NULL, &d) == SA_OK);
    CHECK_EQ_INT(wait_done(d), SA_OK);
    CHECK_STR(sa_job_task_id(d), task);
    sa_job_free(d);
    CHECK_EQ_INT((int)emu_counter(&g_emu, "tasks_deleted"), 1);

    /* gone: a resume and a second delete say so */
    REQUIRE(sa_client_resume(c, task, NULL, &r) == SA_OK);
    CHECK_EQ_INT(wait_done(r), SA_ERR_TASK_EXPIRED);
    sa_job_free(r);
    REQUIRE(sa_client_delete(c, task, NULL, &d) == SA_OK);
    CHECK_EQ_INT(wait_done(d), SA_ERR_TASK_EXPIRED);
    CHECK_STR(sa_job_api_error_code(d), "InvalidTaskId");
    CHECK(!strstr(sa_job_errmsg(d), KEY));
    sa_job_free(d);
    sa_client_free(c);
}

TEST(emulator_bad_key)
{
    sa_client_options o;
    sa_client *c = NULL;
    sa_job *j = NULL;
    char err[256];

    sa_client_options_init(&o);
    o.api_key = "wrong-key";
    o.base_url = g_emu.base_url;
    REQUIRE(sa_client_new(&c, &o, err, sizeof err) == SA_OK);
    REQUIRE(sa_client_credit(c, NULL, &j) == SA_OK);
    CHECK_EQ_INT(wait_done(j), SA_ERR_AUTH);
    CHECK(sa_job_credit(j) == NULL);
    sa_job_free(j);
    sa_client_free(c);
}

/* ------------------------------------------------------------------ */
/* delete_after                                                        */
/* ------------------------------------------------------------------ */

static const char *const acts2[] = {"wrinkle", "pore"};

static sa_job *submit(sa_client *c, int format, int delete_after)
{
    sa_request req;
    sa_job *j = NULL;

    sa_request_init(&req);
    req.file_path = SA_FIXTURES "/portrait_sd.jpg";
    req.actions = acts2;
    req.n_actions = 2;
    req.format = format;
    req.delete_after = delete_after;
    if (sa_client_submit(c, &req, &j) != SA_OK) return NULL;
    return j;
}

TEST(delete_after_json_and_zip)
{
    sa_client *c = client_reset();
    sa_job *j, *r = NULL;
    char task[256];

    REQUIRE(c);
    j = submit(c, SA_FORMAT_JSON, 1);
    REQUIRE(j);
    CHECK_EQ_INT(sa_job_delete_status(j), SA_ERR_NOT_DONE);
    CHECK_EQ_INT(wait_done(j), SA_OK);
    REQUIRE(sa_job_result(j));
    CHECK_EQ_INT(sa_job_delete_status(j), SA_OK);
    CHECK_STR(sa_job_delete_errmsg(j), "");
    CHECK_EQ_INT((int)emu_counter(&g_emu, "tasks_deleted"), 1);
    snprintf(task, sizeof task, "%s", sa_job_task_id(j));
    sa_job_free(j);
    REQUIRE(sa_client_resume(c, task, NULL, &r) == SA_OK);
    CHECK_EQ_INT(wait_done(r), SA_ERR_TASK_EXPIRED);
    sa_job_free(r);

    j = submit(c, SA_FORMAT_ZIP, 1);
    REQUIRE(j);
    CHECK_EQ_INT(wait_done(j), SA_OK);
    CHECK(sa_result_file_count(sa_job_result(j)) > 0);  /* masks in hand */
    CHECK_EQ_INT(sa_job_delete_status(j), SA_OK);
    CHECK_EQ_INT((int)emu_counter(&g_emu, "tasks_deleted"), 2);
    sa_job_free(j);

    /* not asked: nothing deleted */
    j = submit(c, SA_FORMAT_JSON, 0);
    REQUIRE(j);
    CHECK_EQ_INT(wait_done(j), SA_OK);
    CHECK_EQ_INT(sa_job_delete_status(j), SA_ERR_NOT_DONE);
    sa_job_free(j);
    CHECK_EQ_INT((int)emu_counter(&g_emu, "tasks_deleted"), 2);
    sa_client_free(c);
}

TEST(delete_after_failure_is_reported_on_a_done_job)
{
    sa_client *c = client_reset();
    sa_job *j;

    REQUIRE(c);
    REQUIRE(emu_scenario(&g_emu, "[{\"endpoint\":\"task_delete\",\"fault\":"
                         "\"respond\",\"status\":400,\"body\":{\"status\":400,"
                         "\"error\":\"no\",\"error_code\":\"OperationNotSupport\"}}]")
            == 0);
    j = submit(c, SA_FORMAT_JSON, 1);
    REQUIRE(j);
    CHECK_EQ_INT(wait_done(j), SA_OK);     /* the analysis stands */
    CHECK(sa_job_result(j) != NULL);
    CHECK_EQ_INT(sa_job_delete_status(j), SA_ERR_BAD_REQUEST);
    CHECK(strstr(sa_job_delete_errmsg(j), "task delete: HTTP 400") != NULL);
    CHECK_STR(sa_job_delete_api_error_code(j), "OperationNotSupport");
    CHECK(sa_job_api_error_code(j) == NULL);  /* the job's own details */
    sa_job_free(j);
    emu_scenario(&g_emu, NULL);
    sa_client_free(c);
}

TEST(delete_after_not_tried_for_a_failed_analysis)
{
    sa_client *c = client_reset();
    sa_job *j;

    REQUIRE(c);
    REQUIRE(emu_post_json(&g_emu, "/_control/engine_error/next",
                          "{\"code\":\"error_no_face\"}") == 200);
    j = submit(c, SA_FORMAT_JSON, 1);
    REQUIRE(j);
    CHECK_EQ_INT(wait_done(j), SA_ERR_ENGINE);
    CHECK_EQ_INT(sa_job_delete_status(j), SA_ERR_NOT_DONE);
    CHECK_EQ_INT((int)emu_counter2(&g_emu, "requests", "task_delete"), 0);
    sa_job_free(j);
    sa_client_free(c);
}

TEST(delete_after_fetch_masks_then_delete)
{
    sa_client *c = client_reset();
    sa_fetch_options fo;
    sa_job *j, *f = NULL;

    REQUIRE(c);
    j = submit(c, SA_FORMAT_JSON, 0);
    REQUIRE(j);
    CHECK_EQ_INT(wait_done(j), SA_OK);
    sa_fetch_options_init(&fo);
    fo.delete_after = 1;
    REQUIRE(sa_client_fetch(c, j, &fo, &f) == SA_OK);
    CHECK_EQ_INT(wait_done(f), SA_OK);
    CHECK(sa_result_file_count(sa_job_result(f)) > 0);
    CHECK_EQ_INT(sa_job_delete_status(f), SA_OK);
    CHECK_EQ_INT((int)emu_counter(&g_emu, "tasks_deleted"), 1);
    sa_job_free(f);
    sa_job_free(j);
    sa_client_free(c);
}

/* Step until the emulator has seen a delete request (it answers late). */
static int until_delete_sent(sa_client *c)
{
    int i;
    for (i = 0; i < 400; i++) {
        if (emu_counter2(&g_emu, "requests", "task_delete") > 0) return 1;
        sa_client_step(c, 20);
    }
    return 0;
}

TEST(delete_after_cancel_and_free_while_deleting)
{
    sa_client *c = client_reset();
    sa_job *j;

    REQUIRE(c);
    REQUIRE(emu_scenario(&g_emu, "[{\"endpoint\":\"task_delete\",\"fault\":"
                         "\"delay\",\"delay_ms\":400}]") == 0);
    /* cancel: the result stands, the delete is reported cancelled */
    j = submit(c, SA_FORMAT_JSON, 1);
    REQUIRE(j);
    REQUIRE(until_delete_sent(c));
    CHECK_EQ_INT(sa_job_state(j), SA_JOB_FETCHING);
    CHECK(sa_job_polls(j) >= 1);            /* the analysis's own details */
    CHECK(sa_job_task_id(j) != NULL);
    CHECK_STR(sa_job_errmsg(j), "");
    CHECK_EQ_INT(sa_job_cancel(j), SA_OK);
    CHECK_EQ_INT(sa_job_status(j), SA_OK);
    CHECK_EQ_INT(sa_job_state(j), SA_JOB_DONE);
    CHECK(sa_job_result(j) != NULL);
    CHECK_EQ_INT(sa_job_delete_status(j), SA_ERR_CANCELLED);
    sa_job_free(j);
    CHECK_EQ_INT(sa_client_run(c, 5000), SA_OK);

    /* free: the delete goes on to its end */
    emu_reset(&g_emu);
    REQUIRE(emu_scenario(&g_emu, "[{\"endpoint\":\"task_delete\",\"fault\":"
                         "\"delay\",\"delay_ms\":300}]") == 0);
    j = submit(c, SA_FORMAT_JSON, 1);
    REQUIRE(j);
    REQUIRE(until_delete_sent(c));
    sa_job_free(j);
    CHECK_EQ_INT(sa_client_run(c, 5000), SA_OK);
    CHECK_EQ_INT((int)emu_counter(&g_emu, "tasks_deleted"), 1);
    emu_scenario(&g_emu, NULL);
    sa_client_free(c);
}

int main(void)
{
    (void)harness_slurp;
    RUN(credit_parsed_with_raw_entries_and_key_scrubbed);
    RUN(credit_refused_answers);
    RUN(credit_errors_classified);
    RUN(price_list_follows_every_page);
    RUN(price_list_loop_and_bad_tokens);
    RUN(price_list_page_bound);
    RUN(delete_errors);
    RUN(account_out_of_memory_everywhere);
    RUN(account_answers_cut_and_mangled);

    if (sa_global_init() != SA_OK) return 1;
    if (emu_start(&g_emu, "--task-seconds 0.1 --rate-limit off --keys " KEY
                  " --units 100 --grants ApiPayAsYouGo:20,Console:7") != 0)
        return 1;
    RUN(emulator_credit_and_price_list);
    RUN(account_options_struct_size);
    RUN(emulator_delete);
    RUN(emulator_bad_key);
    RUN(delete_after_json_and_zip);
    RUN(delete_after_failure_is_reported_on_a_done_job);
    RUN(delete_after_not_tried_for_a_failed_analysis);
    RUN(delete_after_fetch_masks_then_delete);
    RUN(delete_after_cancel_and_free_while_deleting);
    emu_stop(&g_emu);
    sa_global_cleanup();
    return harness_report();
}
