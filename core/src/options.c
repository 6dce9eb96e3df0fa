/* options.c - sa_client_options: defaults, and sa_client_new's checks. */
#include "sa_client.h"
#include "budget.h"

#include <math.h>
#include <string.h>

/* The defaults, in the library's full-size struct. */
static void options_defaults(sa_client_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->struct_size = sizeof *opts;
    opts->base_url = "https://yce-api-01.makeupar.com";
    opts->api_version = SA_API_V2_1;
    opts->upload_path = SA_UPLOAD_SKIN_ANALYSIS;
    opts->connect_timeout_ms = 10000;
    opts->request_timeout_ms = 30000;
    opts->upload_timeout_ms = 120000;
    opts->max_connections = 16;
    opts->max_jobs = 0;
    opts->max_uploads = 8;
    opts->step_budget_us = 500;
    opts->poll_interval_ms = 2000;
    opts->max_poll_interval_ms = 10000;
    opts->job_deadline_ms = 600000;
    opts->max_polls = 0;            /* no bound: see job.c "Polling" */
    opts->max_retries = 6;
    opts->backoff_initial_ms = 500;
    opts->backoff_max_ms = 16000;
    opts->rate_limit = 1;
    opts->rate_per_second = 5.0;
    opts->rate_burst = 5;
    opts->rate_window_max = 250;
    opts->rate_window_ms = 300000;
    opts->max_body_bytes = (size_t)8 << 20;
    opts->max_json_depth = 64;
    opts->log_level = SA_LOG_INFO;
    opts->max_files_bytes = (size_t)256 << 20;
    opts->low_speed_limit = 1024;
    opts->low_speed_time_ms = 30000;
    opts->rate_limit_fleet_size = 4;
    opts->poll_strategy = SA_POLL_LEARNED;
    opts->webhooks = 0;
}

void sa_client_options_init_sized(sa_client_options *opts, size_t struct_size)
{
    sa_client_options d;

    options_defaults(&d);
    sa__struct_init(opts, struct_size, &d, sizeof d);
}

int sa__options_in(sa_client_options *full, const sa_client_options *user,
                   char *err, size_t errlen)
{
    options_defaults(full);
    return sa__struct_in(full, sizeof *full, user, err, errlen);
}

#define OPT_FAIL(code, ...)                                               \
    do {                                                                  \
        sa__errf(err, errlen, __VA_ARGS__);                               \
        return code;                                                      \
    } while (0)

static int check_key_and_url(const sa_client_options *o, char *err,
                             size_t errlen)
{
    int scheme;
    if (!o->api_key || !*o->api_key)
        OPT_FAIL(SA_ERR_INVALID_ARGUMENT, "api_key is required: the key from "
                 "the API console (for example from YOUCAM_API_KEY)");
    if (strlen(o->api_key) > 4096 || sa__has_space_or_ctl(o->api_key))
        OPT_FAIL(SA_ERR_INVALID_ARGUMENT, "api_key contains a space, line "
                 "break or control character (or is over 4096 bytes): copy "
                 "the key without surrounding whitespace");
    if (!o->base_url || strlen(o->base_url) > 2048 ||
        sa__has_space_or_ctl(o->base_url))
        OPT_FAIL(SA_ERR_INVALID_ARGUMENT, "base_url must be a URL without "
                 "spaces, like https://yce-api-01.makeupar.com");
    scheme = sa__url_scheme(o->base_url);
    if (!scheme)
        OPT_FAIL(SA_ERR_INVALID_ARGUMENT, "base_url must start with "
                 "https:// (or http:// for a local emulator)");
    if (scheme == 1 && !o->allow_insecure_http &&
        !sa__url_is_loopback(o->base_url))
        OPT_FAIL(SA_ERR_INSECURE, "base_url uses plain http:// to a host that "
                 "is not loopback: the API key would cross the network "
                 "unencrypted; use https://, or set allow_insecure_http");
    return SA_OK;
}

static int check_numbers(const sa_client_options *o, char *err, size_t errlen)
{
    if (o->api_version != SA_API_DEFAULT && o->api_version != SA_API_V2_0 &&
        o->api_version != SA_API_V2_1)
        OPT_FAIL(SA_ERR_INVALID_ARGUMENT, "api_version must be SA_API_V2_0 "
                 "(20) or SA_API_V2_1 (21)");
    if (o->upload_path != SA_UPLOAD_SKIN_ANALYSIS &&
        o->upload_path != SA_UPLOAD_GENERIC)
        OPT_FAIL(SA_ERR_INVALID_ARGUMENT, "upload_path must be "
                 "SA_UPLOAD_SKIN_ANALYSIS or SA_UPLOAD_GENERIC");
    if (o->connect_timeout_ms <= 0 || o->request_timeout_ms <= 0 ||
        o->upload_timeout_ms <= 0)
        OPT_FAIL(SA_ERR_INVALID_ARGUMENT, "connect_timeout_ms, "
                 "request_timeout_ms and upload_timeout_ms must be > 0");
    if (o->max_connections < 1 || o->max_jobs < 0 || o->max_uploads < 0)
        OPT_FAIL(SA_ERR_INVALID_ARGUMENT, "max_connections must be >= 1, "
                 "max_jobs and max_uploads >= 0 (0 = no cap)");
    if (o->step_budget_us < 0 || o->step_budget_us > 10000000L)
        OPT_FAIL(SA_ERR_INVALID_ARGUMENT, "step_budget_us (the time budget "
                 "of a non-blocking step) must be between 0 (none) and "
                 "10000000 us (10 s)");
    if (o->poll_interval_ms <= 0 || o->max_poll_interval_ms < 200 ||
        o->job_deadline_ms <= 0 || o->max_polls < 0)
        OPT_FAIL(SA_ERR_INVALID_ARGUMENT, "poll_interval_ms and "
                 "job_deadline_ms must be > 0, max_poll_interval_ms >= 200 "
                 "and max_polls >= 0 (0 = no bound)");
    if (o->max_retries < 0 || o->max_retries > 1000 ||
        o->backoff_initial_ms < 0 || o->backoff_max_ms < o->backoff_initial_ms)
        OPT_FAIL(SA_ERR_INVALID_ARGUMENT, "max_retries must be 0..1000, "
                 "backoff_initial_ms >= 0 and backoff_max_ms >= "
                 "backoff_initial_ms");
    if (o->rate_limit &&
        (!(o->rate_per_second > 0.0) || !isfinite(o->rate_per_second) ||
         o->rate_burst < 1 || o->rate_window_max < 0 || o->rate_window_ms < 0))
        OPT_FAIL(SA_ERR_INVALID_ARGUMENT, "rate_per_second must be > 0, "
                 "rate_burst >= 1, rate_window_max and rate_window_ms >= 0 "
                 "(or set rate_limit = 0)");
    if (o->max_body_bytes < 1024 || o->max_json_depth < 1 ||
        o->max_json_depth > 10000)
        OPT_FAIL(SA_ERR_INVALID_ARGUMENT, "max_body_bytes must be >= 1024 and "
                 "max_json_depth 1..10000");
    if (o->max_files_bytes < 1)
        OPT_FAIL(SA_ERR_INVALID_ARGUMENT, "max_files_bytes (the result files "
                 "held in memory) must be > 0");
    if (o->poll_strategy != SA_POLL_LEARNED
        && o->poll_strategy != SA_POLL_FIXED)
        OPT_FAIL(SA_ERR_INVALID_ARGUMENT, "poll_strategy must be "
                 "SA_POLL_LEARNED or SA_POLL_FIXED");
    if (o->webhooks != 0 && o->webhooks != 1)
        OPT_FAIL(SA_ERR_INVALID_ARGUMENT, "webhooks must be 0 or 1");
    if (o->low_speed_limit < 0 || o->low_speed_time_ms < 0)
        OPT_FAIL(SA_ERR_INVALID_ARGUMENT, "low_speed_limit and "
                 "low_speed_time_ms must be >= 0 (0 = no low-speed cut-off)");
    return SA_OK;
}

int sa__options_check(const sa_client_options *o, char *err, size_t errlen)
{
    int rc = check_key_and_url(o, err, errlen);
    if (rc == SA_OK) rc = check_numbers(o, err, errlen);
    if (rc != SA_OK) return rc;
    if (o->user_agent &&
        (strlen(o->user_agent) > 256 || sa__has_ctl(o->user_agent)))
        OPT_FAIL(SA_ERR_INVALID_ARGUMENT, "user_agent must be up to 256 "
                 "printable characters");
    if ((o->ca_bundle && sa__has_ctl(o->ca_bundle)) ||
        (o->proxy && sa__has_ctl(o->proxy)))
        OPT_FAIL(SA_ERR_INVALID_ARGUMENT, "ca_bundle and proxy must not "
                 "contain control characters");
    if (o->rate_limit_scope
        && (strlen(o->rate_limit_scope) > 512
            || sa__budget_parse_scope(o->rate_limit_scope, err, errlen) < 0))
        OPT_FAIL(SA_ERR_INVALID_ARGUMENT, "rate_limit_scope must be "
                 "\"process\", \"host\" (default) or "
                 "\"redis://HOST:PORT[/DB]\"");
    if (o->rate_limit_fleet_size < 1 || o->rate_limit_fleet_size > 10000)
        OPT_FAIL(SA_ERR_INVALID_ARGUMENT, "rate_limit_fleet_size (clients "
                 "sharing the key when Redis is away) must be 1..10000");
    if (o->mem && (!o->mem->malloc || !o->mem->realloc || !o->mem->free))
        OPT_FAIL(SA_ERR_INVALID_ARGUMENT, "mem needs all three of malloc, "
                 "realloc and free");
    return SA_OK;
}

#undef OPT_FAIL
