/* account.c - balance, price list and task delete (API.md 17.1): answers parsed, jobs started. */

/*
 * Two halves.  The pure half reads the answers of the account endpoints
 * into a sa__account (proto.c style: a validated parse through json.c,
 * ids and tokens checked with sa__proto_id_ok, every string handed out
 * scrubbed of the API key), and says which request comes next (the price
 * list is paged).  The machine that sends those requests and retries them
 * is an account machine (job_account.c, sa__jobsm_new_account).  The
 * client half (sa_client_credit, sa_client_price_list, sa_client_delete)
 * makes a job of it, driven like any other job of the client: through its
 * limiter.
 */
#include "sa_client.h"

#include <stdio.h>
#include <string.h>

#define PRICE_PAGE_SIZE 20
#define ACCOUNT_MAX_ENTRIES 100000

struct sa__account {
    sa_mem memv;
    const sa_mem *mem;
    int op;                     /* SA_ACCOUNT_* */
    char *secret;               /* the key, scrubbed from every string */

    sa_credit credit;
    sa_credit_grant *grants;
    sa_credit_type *types;
    size_t cap_grants, cap_types;

    sa_price_list prices;
    sa_sku *skus;
    size_t cap_skus;
    char *tokens[SA_PRICE_LIST_MAX_PAGES];  /* next_token of each page */
    int n_tokens;
};

/* ------------------------------------------------------------------ */
/* The pure half                                                       */
/* ------------------------------------------------------------------ */

int sa__account_new(const sa_mem *mem, int op, const char *secret,
                    sa__account **out)
{
    sa__account *a;

    *out = NULL;
    a = sa__calloc(mem, 1, sizeof *a);
    if (!a) return SA_ERR_NOMEM;
    if (mem) {
        a->memv = *mem;
        a->mem = &a->memv;
    }
    a->op = op;
    if (secret && !(a->secret = sa__strdup(a->mem, secret))) {
        sa__free(a->mem, a);
        return SA_ERR_NOMEM;
    }
    *out = a;
    return SA_OK;
}

void sa__account_free(sa__account *a)
{
    sa_mem memv;
    const sa_mem *mem;
    size_t i;
    int t;

    if (!a) return;
    memv = a->memv;
    mem = a->mem ? &memv : NULL;
    for (i = 0; i < a->credit.n_grants; i++) {
        sa__free(mem, (char *)a->grants[i].type);
        sa__free(mem, (char *)a->grants[i].raw);
    }
    for (i = 0; i < a->credit.n_types; i++)
        sa__free(mem, (char *)a->types[i].type);
    for (i = 0; i < a->prices.n_skus; i++) {
        sa_sku *k = &a->skus[i];
        sa__free(mem, (char *)k->description);
        sa__free(mem, (char *)k->unit);
        sa__free(mem, (char *)k->proc_unit);
        sa__free(mem, (char *)k->run_task_url);
        sa__free(mem, (char *)k->feature);
        sa__free(mem, (char *)k->raw);
    }
    for (t = 0; t < a->n_tokens; t++) sa__free(mem, a->tokens[t]);
    sa__free(mem, a->grants);
    sa__free(mem, a->types);
    sa__free(mem, a->skus);
    if (a->secret) {
        memset(a->secret, 0, strlen(a->secret));
        sa__free(mem, a->secret);
    }
    sa__free(mem, a);
}

int sa__account_op(const sa__account *a)
{
    return a ? a->op : 0;
}

/* A scrubbed copy of s ("" for NULL); NULL on NOMEM. */
static char *kept_str(sa__account *a, const char *s)
{
    return sa__scrub_dup(a->mem, s ? s : "", a->secret);
}

/* The entry as JSON text, scrubbed; NULL on NOMEM. */
static char *raw_text(sa__account *a, const cJSON *item)
{
    sa__buf b;
    char *s, *out;

    sa__buf_init(&b, a->mem, 0);
    if (sa__json_put_item(&b, item) != SA_OK) {
        sa__buf_free(&b);
        return NULL;
    }
    s = sa__buf_steal(&b);
    if (!s) return NULL;
    out = sa__scrub_dup(a->mem, s, a->secret);
    sa__free(a->mem, s);
    return out;
}

static int grow(sa__account *a, void **arr, size_t *cap, size_t n, size_t sz)
{
    void *p;
    size_t ncap;

    if (n < *cap) return SA_OK;
    ncap = *cap ? *cap * 2 : 8;
    p = sa__realloc(a->mem, *arr, ncap * sz);
    if (!p) return SA_ERR_NOMEM;
    *arr = p;
    *cap = ncap;
    return SA_OK;
}

static int add_to_type(sa__account *a, const char *type, double amount)
{
    size_t i;
    char *t;

    for (i = 0; i < a->credit.n_types; i++)
        if (strcmp(a->types[i].type, type) == 0) {
            a->types[i].amount += amount;
            return SA_OK;
        }
    if (grow(a, (void **)&a->types, &a->cap_types, a->credit.n_types,
             sizeof *a->types) != SA_OK)
        return SA_ERR_NOMEM;
    t = sa__strdup(a->mem, type);
    if (!t) return SA_ERR_NOMEM;
    a->types[a->credit.n_types].type = t;
    a->types[a->credit.n_types].amount = amount;
    a->credit.n_types++;
    a->credit.by_type = a->types;
    return SA_OK;
}

/* {"results": [{"type": "...", "amount": N, ...}, ...]} */
static int feed_credit(sa__account *a, const cJSON *root, char *why,
                       size_t whylen)
{
    const cJSON *results = sa__json_get(root, "results"), *e;
    size_t n = 0;

    if (!cJSON_IsArray(results)) {
        snprintf(why, whylen, "the balance answer has no \"results\" array");
        return SA_ERR_PROTOCOL;
    }
    cJSON_ArrayForEach(e, results) {
        sa_credit_grant *g;
        const char *type;
        double amount = 0;

        if (!cJSON_IsObject(e)) {
            snprintf(why, whylen, "balance entry %zu is not an object", n);
            return SA_ERR_PROTOCOL;
        }
        if (++n > ACCOUNT_MAX_ENTRIES) {
            snprintf(why, whylen, "more than %d balance entries",
                     ACCOUNT_MAX_ENTRIES);
            return SA_ERR_LIMIT;
        }
        type = sa__json_string(e, "type");
        (void)sa__json_number(e, "amount", &amount);
        if (grow(a, (void **)&a->grants, &a->cap_grants, a->credit.n_grants,
                 sizeof *a->grants) != SA_OK)
            return SA_ERR_NOMEM;
        g = &a->grants[a->credit.n_grants];
        memset(g, 0, sizeof *g);
        g->amount = amount;
        g->type = kept_str(a, type);
        g->raw = raw_text(a, e);
        a->credit.n_grants++;
        a->credit.grants = a->grants;
        if (!g->type || !g->raw) return SA_ERR_NOMEM;
        if (strncmp(g->type, "Api", 3) == 0) a->credit.available += amount;
        if (add_to_type(a, g->type, amount) != SA_OK) return SA_ERR_NOMEM;
    }
    return SA_OK;
}

/* The feature of a SKU: what follows "/task/" in its run_task_url, up to
 * a '/', '?' or '#'. */
static char *feature_of(sa__account *a, const char *url)
{
    const char *p = url ? strstr(url, "/task/") : NULL;
    size_t n;

    if (!p) return kept_str(a, "");
    p += 6;
    n = strcspn(p, "/?#");
    {
        char *s = sa__strndup(a->mem, p, n), *out;
        if (!s) return NULL;
        out = kept_str(a, s);
        sa__free(a->mem, s);
        return out;
    }
}

/* {"result": {"skus": [...], "next_token": T|null}}; *more is 1 when
 * another page is to be read (its token is the last in a->tokens). */
static int feed_prices(sa__account *a, const cJSON *root, int *more,
                       char *why, size_t whylen)
{
    const cJSON *result = sa__json_get(root, "result"), *skus, *e, *tok;
    const char *token = NULL;
    int t;

    if (!cJSON_IsObject(result)) {
        snprintf(why, whylen, "the price list answer has no \"result\" "
                 "object");
        return SA_ERR_PROTOCOL;
    }
    skus = sa__json_get(result, "skus");
    if (!cJSON_IsArray(skus)) {
        snprintf(why, whylen, "the price list page has no \"skus\" array");
        return SA_ERR_PROTOCOL;
    }
    tok = sa__json_get(result, "next_token");
    if (tok && !cJSON_IsNull(tok)) {
        if (!cJSON_IsString(tok)) {
            snprintf(why, whylen, "next_token is not a string");
            return SA_ERR_PROTOCOL;
        }
        token = tok->valuestring;
        if (token[0] == '\0') token = NULL;
        else if (!sa__proto_id_ok(token, strlen(token))) {
            snprintf(why, whylen, "next_token holds characters a token "
                     "never does");
            return SA_ERR_PROTOCOL;
        }
    }
    cJSON_ArrayForEach(e, skus) {
        sa_sku *k;
        double amount = 0;

        if (!cJSON_IsObject(e)) {
            snprintf(why, whylen, "price list entry %zu is not an object",
                     a->prices.n_skus);
            return SA_ERR_PROTOCOL;
        }
        if (a->prices.n_skus >= ACCOUNT_MAX_ENTRIES) {
            snprintf(why, whylen, "more than %d price list entries",
                     ACCOUNT_MAX_ENTRIES);
            return SA_ERR_LIMIT;
        }
        if (grow(a, (void **)&a->skus, &a->cap_skus, a->prices.n_skus,
                 sizeof *a->skus) != SA_OK)
            return SA_ERR_NOMEM;
        k = &a->skus[a->prices.n_skus];
        memset(k, 0, sizeof *k);
        a->prices.n_skus++;
        a->prices.skus = a->skus;
        (void)sa__json_number(e, "amount", &amount);
        k->amount = amount;
        k->description = kept_str(a, sa__json_string(e, "description"));
        k->unit = kept_str(a, sa__json_string(e, "unit"));
        k->proc_unit = kept_str(a, sa__json_string(e, "proc_unit"));
        k->run_task_url = kept_str(a, sa__json_string(e, "run_task_url"));
        k->feature = feature_of(a, sa__json_string(e, "run_task_url"));
        k->raw = raw_text(a, e);
        if (!k->description || !k->unit || !k->proc_unit || !k->run_task_url
            || !k->feature || !k->raw)
            return SA_ERR_NOMEM;
    }
    a->prices.pages++;
    *more = 0;
    if (!token) return SA_OK;
    for (t = 0; t < a->n_tokens; t++)
        if (strcmp(a->tokens[t], token) == 0) {
            snprintf(why, whylen, "next_token of page %d was handed out "
                     "before (page %d): the pages loop", a->prices.pages,
                     t + 1);
            return SA_ERR_PROTOCOL;
        }
    if (a->n_tokens >= SA_PRICE_LIST_MAX_PAGES - 1) {
        snprintf(why, whylen, "the price list has more than %d pages",
                 SA_PRICE_LIST_MAX_PAGES);
        return SA_ERR_LIMIT;
    }
    a->tokens[a->n_tokens] = sa__strdup(a->mem, token);
    if (!a->tokens[a->n_tokens]) return SA_ERR_NOMEM;
    a->n_tokens++;
    *more = 1;
    return SA_OK;
}

int sa__account_feed(sa__account *a, const char *body, size_t len,
                     int max_depth, int *more, char *why, size_t whylen)
{
    cJSON *root = NULL;
    int rc;

    *more = 0;
    why[0] = '\0';
    if (a->op == SA__ACCOUNT_DELETE) return SA_OK;  /* 2xx: deleted */
    rc = sa__json_parse(body, len, max_depth, &root);
    if (rc != SA_OK) {
        if (rc != SA_ERR_NOMEM)
            snprintf(why, whylen, "%s", rc == SA_ERR_LIMIT
                     ? "JSON nested too deep"
                     : "not JSON, or a NUL in a string");
        return rc;
    }
    if (!cJSON_IsObject(root)) {
        snprintf(why, whylen, "the answer is not a JSON object");
        rc = SA_ERR_PROTOCOL;
    } else if (a->op == SA__ACCOUNT_CREDIT) {
        rc = feed_credit(a, root, why, whylen);
    } else {
        rc = feed_prices(a, root, more, why, whylen);
    }
    cJSON_Delete(root);
    return rc;
}

/* The path (and query) of the next GET: a new string, NULL on NOMEM. */
char *sa__account_path(const sa__account *a)
{
    sa__buf b;
    char *enc;

    if (a->op == SA__ACCOUNT_CREDIT)
        return sa__strdup(a->mem, "/s2s/v1.0/client/credit");
    sa__buf_init(&b, a->mem, 0);
    if (sa__buf_appendf(&b, "/s2s/v2.0/credit/feature-cost?page_size=%d",
                       PRICE_PAGE_SIZE) != SA_OK) {
        sa__buf_free(&b);
        return NULL;
    }
    if (a->n_tokens > 0) {
        enc = sa__urlencode(a->mem, a->tokens[a->n_tokens - 1]);
        if (!enc || sa__buf_appendf(&b, "&starting_token=%s", enc) != SA_OK) {
            sa__free(a->mem, enc);
            sa__buf_free(&b);
            return NULL;
        }
        sa__free(a->mem, enc);
    }
    return sa__buf_steal(&b);
}

/* {"task_id": "..."}: a new string, NULL on NOMEM. */
char *sa__account_delete_body(const sa_mem *mem, const char *task_id)
{
    sa__buf b;

    sa__buf_init(&b, mem, 0);
    if (sa__buf_append(&b, "{\"task_id\":", 11) != SA_OK
        || sa__json_put_string(&b, task_id) != SA_OK
        || sa__buf_append(&b, "}", 1) != SA_OK) {
        sa__buf_free(&b);
        return NULL;
    }
    return sa__buf_steal(&b);
}

const sa_credit *sa__account_credit(const sa__account *a)
{
    return a && a->op == SA__ACCOUNT_CREDIT ? &a->credit : NULL;
}

const sa_price_list *sa__account_prices(const sa__account *a)
{
    return a && a->op == SA__ACCOUNT_PRICES ? &a->prices : NULL;
}

/* ------------------------------------------------------------------ */
/* The client half                                                     */
/* ------------------------------------------------------------------ */

void sa_account_options_init_sized(sa_account_options *opts,
                                   size_t struct_size)
{
    sa_account_options d;

    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    sa__struct_init(opts, struct_size, &d, sizeof d);
}

static const char *const op_names[] = {
    "", "reads the balance", "reads the price list", "deletes task"
};

/* The settings of an account machine (an account call, or the delete of
 * delete_after), from the client's options. */
static void account_config(const sa_client *c, sa_job *j,
                           int64_t deadline_at, sa__job_config *cfg)
{
    sa__fetch_config(c, j, SA_API_V2_0, deadline_at, cfg);
    /* no result download: no file budget, no low-speed cut-off */
    cfg->max_files_bytes = 0;
    cfg->low_speed_limit = 0;
    cfg->low_speed_time_ms = 0;
}

static int account_job(sa_client *c, int op, const char *task_id,
                       const sa_account_options *user, sa_job **out)
{
    sa_account_options full;  /* the caller's fields, defaults beyond */
    const sa_account_options *opts = &full;
    char err[256];
    sa__job_config cfg;
    sa_request req;
    sa_job *j;
    int64_t now;
    long dl;
    int rc;

    rc = sa__job_call_begin(c, out, out != NULL, "out is NULL");
    if (rc != SA_OK) return rc;
    sa_account_options_init(&full);
    if (user) {
        rc = sa__struct_in(&full, sizeof full, user, err, sizeof err);
        if (rc != SA_OK)
            return sa__cfail(c, rc, "account options: %s", err);
    }
    if (opts->deadline_ms < 0)
        return sa__cfail(c, SA_ERR_BAD_OPTION, "deadline_ms must be >= 0 "
                         "(0: the client's job_deadline_ms)");
    if (op == SA__ACCOUNT_DELETE) {
        rc = sa__task_id_check(task_id, err, sizeof err);
        if (rc != SA_OK) return sa__cfail(c, rc, "%s", err);
    }
    sa_request_init(&req);
    req.callback = opts->callback;
    req.user_data = opts->user_data;
    j = sa__job_alloc(c, &req);
    if (!j) return sa__cfail(c, SA_ERR_NOMEM, "out of memory");
    j->kind = KIND_ACCOUNT;
    sa__enter(c);
    now = sa__engine_now();
    dl = opts->deadline_ms > 0 ? opts->deadline_ms : c->opt.job_deadline_ms;
    account_config(c, j, now + dl, &cfg);
    j->deadline_at = cfg.deadline_at_ms;
    rc = sa__jobsm_new_account(&cfg, op, task_id, c->api_key, now, &j->sm);
    if (rc != SA_OK) {
        sa__job_destroy(j);
        sa__leave(c);
        return sa__cfail(c, rc, rc == SA_ERR_NOMEM ? "out of memory"
                         : "the account request could not be made a job");
    }
    j->wake_at = now;
    j->last_state = sa__jobsm_state(j->sm);
    sa__set_where(c, j, J_ACTIVE);
    *out = j;
    sa__jlog(c, SA_LOG_DEBUG, "job #%lu %s%s%s", j->seq, op_names[op],
             task_id ? " " : "", task_id ? task_id : "");
    sa__leave(c);
    return SA_OK;
}

int sa_client_credit(sa_client *client, const sa_account_options *opts,
                     sa_job **out)
{
    return account_job(client, SA__ACCOUNT_CREDIT, NULL, opts, out);
}

int sa_client_price_list(sa_client *client, const sa_account_options *opts,
                         sa_job **out)
{
    return account_job(client, SA__ACCOUNT_PRICES, NULL, opts, out);
}

int sa_client_delete(sa_client *client, const char *task_id,
                     const sa_account_options *opts, sa_job **out)
{
    return account_job(client, SA__ACCOUNT_DELETE, task_id, opts, out);
}

static const sa__account *done_account(const sa_job *job)
{
    if (!job || job->kind != KIND_ACCOUNT || !job->published
        || job->pub_state != SA_JOB_DONE)
        return NULL;
    return sa__jobsm_account(job->sm);
}

const sa_credit *sa_job_credit(const sa_job *job)
{
    return sa__account_credit(done_account(job));
}

const sa_price_list *sa_job_price_list(const sa_job *job)
{
    return sa__account_prices(done_account(job));
}

/* ------------------------------------------------------------------ */
/* delete_after (sa_request, sa_fetch_options)                         */
/* ------------------------------------------------------------------ */

/* The delete machine ended or was given up: keep its outcome, give the
 * job its own machine back (the delete machine stays in del_other until
 * the job is freed: a transfer being dropped may still point into it). */
static void delete_after_end(sa_client *c, sa_job *j, int status,
                             const char *msg)
{
    sa__jobsm *del = j->sm;

    j->sm = j->del_other;
    j->del_other = del;
    j->del_state = 2;
    j->del_status = status;
    j->del_code[0] = '\0';
    if (del && sa__jobsm_api_error_code(del))
        sa__redact(j->del_code, sizeof j->del_code,
                   sa__jobsm_api_error_code(del), c ? c->api_key : NULL);
    if (status == SA_OK) {
        j->del_msg[0] = '\0';
    } else {
        sa__redact(j->del_msg, sizeof j->del_msg, msg ? msg : "",
                   c ? c->api_key : NULL);
        sa__jlog(c, SA_LOG_WARNING, "task %s was not deleted (delete_after): "
                 "%s: %s", sa__jobsm_task_id(j->sm) ? sa__jobsm_task_id(j->sm)
                 : "?", sa_status_name(status), j->del_msg);
    }
    j->last_state = sa__jobsm_state(j->sm);
}

int sa__delete_after_step(sa_client *c, sa_job *j)
{
    sa__job_config cfg;
    const char *task_id;
    sa__jobsm *del = NULL;
    int64_t now;
    int rc;

    if (!j->delete_after || !j->sm) return 0;
    if (j->del_state == 1) {
        int st = sa__jobsm_state(j->sm);
        if (!sa__is_terminal(st)) return 1;
        delete_after_end(c, j, st == SA_JOB_DONE ? SA_OK
                         : sa__jobsm_status(j->sm), sa__jobsm_errmsg(j->sm));
        return 0;
    }
    if (j->del_state != 0 || sa__jobsm_state(j->sm) != SA_JOB_DONE
        || sa__jobsm_background(j->sm)
        || (j->kind != KIND_ANALYSIS && j->kind != KIND_FETCH))
        return 0;
    task_id = sa__jobsm_task_id(j->sm);
    j->del_state = 2;
    if (!task_id || !sa__proto_id_ok(task_id, strlen(task_id))) {
        j->del_status = SA_ERR_PROTOCOL;
        snprintf(j->del_msg, sizeof j->del_msg, "no task id to delete");
        return 0;
    }
    now = sa__engine_now();
    account_config(c, j, now + c->opt.job_deadline_ms, &cfg);
    rc = sa__jobsm_new_account(&cfg, SA__ACCOUNT_DELETE, task_id, c->api_key,
                              now, &del);
    if (rc != SA_OK) {
        j->del_status = rc;
        snprintf(j->del_msg, sizeof j->del_msg, "%s", rc == SA_ERR_NOMEM
                 ? "out of memory starting the delete"
                 : "the delete could not be started");
        return 0;
    }
    j->del_state = 1;
    j->del_other = j->sm;
    j->sm = del;
    j->wake_at = now;
    sa__jlog(c, SA_LOG_DEBUG, "job #%lu deletes task %s (delete_after)",
             j->seq, task_id);
    return 1;
}

int sa__delete_after_abort(sa_client *c, sa_job *j, int status,
                           const char *why)
{
    if (j->del_state != 1) return 0;
    delete_after_end(c, j, status, why);
    return 1;
}

int sa_job_delete_status(const sa_job *job)
{
    if (!job || !job->published || job->del_state != 2)
        return SA_ERR_NOT_DONE;
    return job->del_status;
}

const char *sa_job_delete_errmsg(const sa_job *job)
{
    if (!job || !job->published || job->del_state != 2) return "";
    return job->del_msg;
}

const char *sa_job_delete_api_error_code(const sa_job *job)
{
    if (!job || !job->published || job->del_state != 2 || !job->del_code[0])
        return NULL;
    return job->del_code;
}
