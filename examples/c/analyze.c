/*
 * analyze.c - the C quick-start: analyse one photo and print its scores.
 *
 *   export YOUCAM_API_KEY=...                  (the key from the API console)
 *   analyze [--base-url URL] [--hd] [--zip] IMAGE [ACTION ...]
 *
 * The base URL comes from --base-url, else SKINANALYSIS_BASE_URL, else the
 * real API.  Against the local emulator:
 *
 *   scripts/emulator --port 8765 &
 *   YOUCAM_API_KEY=emulator-key analyze --base-url http://127.0.0.1:8765 \
 *       examples/portrait.jpg
 *
 * Build: cc analyze.c $(pkg-config --cflags --libs skinanalysis)
 */
#include <skinanalysis.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const sd_default[] = {"wrinkle", "pore", "texture",
                                         "acne", "redness", "skin_type"};
static const char *const hd_default[] = {"hd_wrinkle", "hd_pore",
                                         "hd_texture", "hd_acne",
                                         "hd_redness", "hd_skin_type"};

static void print_log(void *user_data, int level, const char *message)
{
    (void)user_data;
    if (level >= SA_LOG_WARNING) fprintf(stderr, "skinanalysis: %s\n", message);
}

static void print_scores(const sa_result *r)
{
    size_t i;

    for (i = 0; i < sa_result_count(r); i++) {
        const sa_score *s = sa_result_score(r, i);
        if (s->skin_type)
            printf("  %-24s %-10s %s\n", s->concern, s->region, s->skin_type);
        else if (!isnan(s->ui_score))
            printf("  %-24s %-10s %3.0f  (raw %.1f)\n", s->concern, s->region,
                   s->ui_score, s->raw_score);
    }
    if (!isnan(sa_result_overall(r)))
        printf("  overall %.1f\n", sa_result_overall(r));
    if (!isnan(sa_result_skin_age(r)))
        printf("  skin age %.0f\n", sa_result_skin_age(r));
    if (sa_result_zip_url(r))
        printf("  results zip: %s\n", sa_result_zip_url(r));
}

static int usage(void)
{
    fprintf(stderr, "usage: analyze [--base-url URL] [--hd] [--zip] IMAGE "
                    "[ACTION ...]\n");
    return 2;
}

int main(int argc, char **argv)
{
    sa_client_options opts;
    sa_request req;
    sa_client *client = NULL;
    sa_job *job = NULL;
    const char *base_url = getenv("SKINANALYSIS_BASE_URL");
    const char *image = NULL;
    char err[512];
    int hd = 0, zip = 0, i, rc, status = 1;

    for (i = 1; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--base-url") == 0 && i + 1 < argc)
            base_url = argv[++i];
        else if (strcmp(argv[i], "--hd") == 0) hd = 1;
        else if (strcmp(argv[i], "--zip") == 0) zip = 1;
        else return usage();
    }
    if (i >= argc) return usage();
    image = argv[i++];

    if (sa_global_init() != SA_OK) {
        fprintf(stderr, "analyze: libcurl could not be initialised\n");
        return 1;
    }
    sa_client_options_init(&opts);
    opts.api_key = getenv("YOUCAM_API_KEY");
    if (base_url && *base_url) opts.base_url = base_url;
    opts.log = print_log;
    rc = sa_client_new(&client, &opts, err, sizeof err);
    if (rc != SA_OK) {
        fprintf(stderr, "analyze: %s: %s\n", sa_strerror(rc), err);
        goto out;
    }

    sa_request_init(&req);
    req.file_path = image;
    if (i < argc) {  /* actions from the command line */
        req.actions = (const char *const *)&argv[i];
        req.n_actions = (size_t)(argc - i);
    } else {
        req.actions = hd ? hd_default : sd_default;
        req.n_actions = 6;
    }
    req.format = zip ? SA_FORMAT_ZIP : SA_FORMAT_JSON;
    rc = sa_client_submit(client, &req, &job);
    if (rc != SA_OK) {  /* validation: nothing was sent */
        fprintf(stderr, "analyze: %s: %s\n", sa_strerror(rc),
                sa_client_errmsg(client));
        goto out;
    }
    printf("analysing %s (%d units on success) ...\n", image,
           sa_job_units(job));
    rc = sa_job_wait(job, -1);
    if (rc == SA_OK && sa_job_status(job) == SA_OK) {
        printf("task %s\n", sa_job_task_id(job));
        print_scores(sa_job_result(job));
        status = 0;
    } else {
        fprintf(stderr, "analyze: %s: %s\n",
                sa_strerror(rc != SA_OK ? rc : sa_job_status(job)),
                sa_job_errmsg(job));
    }
out:
    sa_job_free(job);
    sa_client_free(client);
    sa_global_cleanup();
    return status;
}
