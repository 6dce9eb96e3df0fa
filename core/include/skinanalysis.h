/*
 * skinanalysis.h - client library for Perfect Corp's AI Skin Analysis API
 * (v2.0 and v2.1).
 *
 * One analysis ("job") = optional file slot + pre-signed upload, a billed
 * task, and polling until the task ends.  One client ("sa_client") drives
 * many jobs at once on one thread, over shared connections, under one rate
 * limiter.  Three ways to drive a client, one implementation underneath:
 *
 *   - blocking:     sa_job_wait(job, timeout_ms)
 *   - stepping:     sa_client_step(client, 0) from a frame loop; never blocks
 *   - event loops:  sa_client_set_event_hooks() + sa_client_socket_action()
 *
 * Conventions used by every function below:
 *   - "borrowed" pointers stay owned by the library; the text says until when.
 *   - Every *_free function accepts NULL and does nothing.
 *   - Strings are UTF-8 and NUL-terminated.  A string the library hands over
 *     to the caller (documented "free with sa_free") is freed with sa_free().
 *
 * Errors, one convention:
 *   - The status is the return value: every call that can fail returns
 *     int, SA_OK (0) or a negative sa_status (a few return a count >= 0
 *     instead of SA_OK, and say so).  No errno, no globals.  The status
 *     alone is enough to decide what to do (sa_strerror, sa_status_name,
 *     sa_status_is_retryable, sa_status_is_validation).
 *   - The message (for people and logs) lives with the handle the call was
 *     made on: sa_client_errmsg(client) after a call on a client,
 *     sa_job_errmsg(job) once a job has failed.
 *   - Calls that have no handle to keep it (sa_client_new, and the pure
 *     functions: sa_cost, ZIP, composite, folder and webhook functions) take
 *     an optional `char *errbuf, size_t errbuf_len` pair as their LAST two
 *     parameters (NULL: no message); the message is cut to fit and always
 *     NUL-terminated.  Pure functions whose statuses say everything (image
 *     probes, sa_result_parse, the catalogue) have no message.
 *   New functions follow these three rules.
 *
 * Structs that grow: every struct the caller allocates and the library
 * reads or fills (sa_client_options, sa_request, sa_resume_options,
 * sa_fetch_options, sa_account_options, sa_image_info) begins with
 * `size_t struct_size`, and
 * its init macro (sa_client_options_init(&o), ...) passes `sizeof` of the
 * struct the program was compiled with to the library's *_init_sized
 * function, which sets defaults and records that size.  Always call the
 * init macro first; a struct whose struct_size is not set
 * (0) is refused with SA_ERR_INVALID_ARGUMENT.  The library reads and writes
 * only struct_size bytes: a program built against an older header (a
 * smaller struct) gets the defaults for the fields it does not know, and a
 * program built against a newer header works with an older library as long
 * as the fields that library does not know keep their defaults (zero);
 * otherwise the call fails SA_ERR_INVALID_ARGUMENT.  New fields are only
 * ever appended at the end, with a default of zero or one set by the
 * init function.  Structs the library owns and the caller only reads
 * (sa_score) may grow at the end too.  sa_mem is fixed (three functions).
 *
 * Exports: libskinanalysis.so exports exactly the functions declared here
 * with SA_API, under the symbol version SKINANALYSIS_0; nothing else.
 *
 * Threads: a client (and its jobs) may move between threads but must be used
 * by one thread at a time.  Many clients in many threads are fine.  The only
 * calls that are not reentrant are sa_global_init() and sa_global_cleanup().
 * sa_client_wakeup() is the one call that may be made from another thread.
 *
 * Secrets: the API key is sent only to the API host (the base URL), never
 * to the pre-signed upload URL nor to result/mask URLs, and no string the
 * library hands out shows it: log lines, sa_client_errmsg and the error
 * buffers, every sa_job_* string and every string of a job's result are
 * scrubbed of it ("[REDACTED]"), even when a server echoes it back (an
 * error body, an x-request-id, an engine message, a result).  Scrubbing
 * also hides what a bounded copy left of the key where it cut one: a run
 * of 8 or more of its first bytes anywhere, 4 or more at the end of a
 * text.
 */
#ifndef SKINANALYSIS_H
#define SKINANALYSIS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SA_BUILDING_LIBRARY) && defined(__GNUC__)
#define SA_API __attribute__((visibility("default")))
#else
#define SA_API
#endif

/* ------------------------------------------------------------------ */
/* Versions                                                            */
/* ------------------------------------------------------------------ */

#define SA_VERSION_MAJOR 0
#define SA_VERSION_MINOR 2
#define SA_VERSION_PATCH 0
#define SA_VERSION "0.2.0"
/* 0xMMmmpp */
#define SA_VERSION_NUM \
    ((SA_VERSION_MAJOR << 16) | (SA_VERSION_MINOR << 8) | SA_VERSION_PATCH)

/* The version of the linked library: "0.2.0".  Bindings compare it with
 * SA_VERSION_NUM at load time. */
SA_API const char *sa_version(void);
SA_API int sa_version_num(void);

/* ------------------------------------------------------------------ */
/* Status codes                                                        */
/* ------------------------------------------------------------------ */

typedef enum sa_status {
    SA_OK = 0,

    /* Library use */
    SA_ERR_NOMEM = -1,            /* an allocation failed */
    SA_ERR_INVALID_ARGUMENT = -2, /* NULL handle, bad option value, misuse */
    SA_ERR_BUSY = -3,             /* not allowed now (e.g. inside a callback) */
    SA_ERR_NOT_DONE = -4,         /* the job has not ended yet */
    SA_ERR_INIT = -5,             /* sa_global_init failed or was not called */

    /* Validation: found before anything is sent; costs nothing */
    SA_ERR_UNKNOWN_ACTION = -10,  /* a dst_action name not in the catalogue */
    SA_ERR_MIXED_TIERS = -11,     /* SD and HD actions in one request */
    SA_ERR_ACTION_COUNT = -12,    /* no action, or more than 16 */
    SA_ERR_SOURCE = -13,          /* no source, or more than one */
    SA_ERR_FILE = -14,            /* image file missing or unreadable */
    SA_ERR_IMAGE_FORMAT = -15,    /* not a JPEG or PNG (by magic bytes) */
    SA_ERR_IMAGE_TOO_LARGE = -16, /* 10,000,000 bytes or more */
    SA_ERR_IMAGE_TOO_SMALL = -17, /* short side below 480 (SD) / 1080 (HD) */
    SA_ERR_BAD_OPTION = -18,      /* bad miniserver_args, pf_camera_kit on
                                     v2.0, bad format, ... */
    SA_ERR_INSECURE = -19,        /* http:// to a non-loopback host without
                                     allow_insecure_http */

    /* The API said no */
    SA_ERR_AUTH = -30,            /* 401: key missing, invalid, inactive... */
    SA_ERR_CREDITS = -31,         /* 400 CreditInsufficiency */
    SA_ERR_BAD_REQUEST = -32,     /* other 400 / 404 / 4xx from the API */
    SA_ERR_RATE_LIMITED = -33,    /* 429, still after the retry budget */
    SA_ERR_SERVER = -34,          /* 5xx, still after the retry budget */
    SA_ERR_PROTOCOL = -35,        /* a response we cannot understand */
    SA_ERR_UPLOAD = -36,          /* the storage host refused the upload */
    SA_ERR_ENGINE = -37,          /* task ended with task_status "error" */
    SA_ERR_TASK_EXPIRED = -38,    /* 400 "Invalid task ID": gone/expired */
    SA_ERR_TASK_TIMEOUT = -39,    /* 500 "Task execution timed out" */
    SA_ERR_AMBIGUOUS = -40,       /* task create failed after the request
                                     may have reached the server: a task
                                     may exist (and may be billed) */

    /* Transport and time */
    SA_ERR_TRANSPORT = -50,       /* DNS, connect, TLS, connection reset */
    SA_ERR_TIMEOUT = -51,         /* one HTTP request took too long */
    SA_ERR_DEADLINE = -52,        /* the job's total deadline passed */
    SA_ERR_LIMIT = -53,           /* a response exceeded a configured limit
                                     (body size, JSON depth, poll count) */

    /* Waiting and ending */
    SA_ERR_WAIT_TIMEOUT = -60,    /* sa_job_wait timed out; job still runs */
    SA_ERR_INTERRUPTED = -61,     /* the interrupt hook asked to return;
                                     the job still runs */
    SA_ERR_CANCELLED = -62,       /* the job was cancelled or abandoned */
    SA_ERR_CALLBACK = -63,        /* a callback returned non-zero */

    /* Results, downloads and webhooks */
    SA_ERR_ZIP = -70,             /* a result ZIP is corrupt, or has no
                                     skinanalysisResult/score_info.json */
    SA_ERR_URL_EXPIRED = -71,     /* a result/mask URL was refused as expired
                                     even after fetching fresh URLs */
    SA_ERR_DOWNLOAD = -72,        /* a result/mask download failed */
    SA_ERR_IMAGE_DECODE = -73,    /* an image could not be decoded (composite) */
    SA_ERR_WEBHOOK_SIGNATURE = -74, /* no valid webhook signature */
    SA_ERR_WEBHOOK_STALE = -75,   /* webhook timestamp outside the tolerance */

    SA_ERR__LAST = -76
} sa_status;

/* A static English description of a status; never NULL. */
SA_API const char *sa_strerror(int status);
/* A stable lower-case name ("unknown_action", "engine", ...); never NULL.
 * Bindings use it as the error code name (Lua returns it as 3rd value). */
SA_API const char *sa_status_name(int status);
/* 1 when the same operation may succeed if tried again later (transport,
 * timeouts, 429, 5xx), else 0. */
SA_API int sa_status_is_retryable(int status);
/* 1 for the validation codes (-10..-19): the caller's input is wrong and
 * nothing was sent. */
SA_API int sa_status_is_validation(int status);

/* ------------------------------------------------------------------ */
/* Process-wide setup                                                  */
/* ------------------------------------------------------------------ */

/* Initialise libcurl's global state.  Call once per process before any
 * client is created, while no other thread uses libcurl.  Not reentrant.
 * Calls nest: each successful call must be paired with sa_global_cleanup(). */
SA_API int sa_global_init(void);
SA_API void sa_global_cleanup(void);

/* ------------------------------------------------------------------ */
/* Catalogue: actions and unit costs (pure, no client needed)          */
/* ------------------------------------------------------------------ */

#define SA_MAX_ACTIONS 16
#define SA_MAX_FILE_SIZE 10000000 /* bytes; files must be smaller */
#define SA_MIN_SIDE_SD 480
#define SA_MIN_SIDE_HD 1080

typedef enum sa_tier { SA_TIER_SD = 0, SA_TIER_HD = 1 } sa_tier;

/* Number of documented dst_actions (32) and the i-th name (in the published
 * order: 16 HD then 16 SD), or NULL past the end. */
SA_API size_t sa_action_count(void);
SA_API const char *sa_action_name(size_t i);
/* The tier of an action name: SA_TIER_SD, SA_TIER_HD, or
 * SA_ERR_UNKNOWN_ACTION. */
SA_API int sa_action_tier(const char *name);
/* The same concern in the other tier ("wrinkle" <-> "hd_wrinkle",
 * "dark_circle_v2" <-> "hd_dark_circle"): the rule sa_result_get and
 * every binding's result lookup use.  NULL for an unknown name or a
 * concern with no counterpart.  Borrowed (static). */
SA_API const char *sa_action_counterpart(const char *name);
/* The default request of a tier: what a binding asks for when no actions
 * are given (SA_TIER_SD: the 16 SD concerns, 16 units; SA_TIER_HD: the
 * 16 HD concerns), in the published order.  Writes at most out_len
 * borrowed (static) names to out (SA_MAX_ACTIONS is always enough) and
 * returns how many the set has (0 for an unknown tier). */
SA_API size_t sa_default_actions(int tier, const char **out, size_t out_len);

/* Units a request with these actions costs when it succeeds (API.md §11).
 * Validates the list exactly as sa_client_submit does (unknown, mixed,
 * count; duplicates count once).  Returns the units (> 0) or a negative
 * sa_status.  If errbuf is not NULL a message naming the problem is written
 * to it (truncated to errbuf_len). */
SA_API int sa_cost(const char *const *actions, size_t n_actions,
                   char *errbuf, size_t errbuf_len);

/* ------------------------------------------------------------------ */
/* Image sniffing (pure)                                               */
/* ------------------------------------------------------------------ */

typedef enum sa_image_format {
    SA_IMAGE_UNKNOWN = 0,
    SA_IMAGE_JPEG = 1,
    SA_IMAGE_PNG = 2
} sa_image_format;

/* Extendable (see "Structs that grow" at the top): sa_image_info_init()
 * before a probe. */
typedef struct sa_image_info {
    size_t struct_size; /* set by sa_image_info_init */
    int format;        /* sa_image_format */
    uint32_t width;
    uint32_t height;
} sa_image_info;

SA_API void sa_image_info_init_sized(sa_image_info *info, size_t struct_size);
#define sa_image_info_init(info) \
    sa_image_info_init_sized((info), sizeof *(info))

/* Read format and pixel size from the headers of an image in memory (JPEG:
 * the first SOFn marker; PNG: IHDR).  Returns SA_OK, SA_ERR_IMAGE_FORMAT
 * (not JPEG/PNG, or no size found in the bytes given) or
 * SA_ERR_INVALID_ARGUMENT (NULL, or `out` not set up by
 * sa_image_info_init). */
SA_API int sa_image_probe_buffer(const void *data, size_t len,
                                 sa_image_info *out);
/* The same for a file; reads only the headers (never the whole file).
 * Returns SA_OK, SA_ERR_FILE or SA_ERR_IMAGE_FORMAT. */
SA_API int sa_image_probe_file(const char *path, sa_image_info *out);

/* ------------------------------------------------------------------ */
/* Handles                                                             */
/* ------------------------------------------------------------------ */

typedef struct sa_client sa_client;
typedef struct sa_job sa_job;
typedef struct sa_result sa_result;

/* ------------------------------------------------------------------ */
/* Client                                                              */
/* ------------------------------------------------------------------ */

typedef enum sa_api_version {
    SA_API_DEFAULT = 0, /* in a request: the client's version */
    SA_API_V2_0 = 20,
    SA_API_V2_1 = 21
} sa_api_version;

typedef enum sa_upload_path {
    SA_UPLOAD_SKIN_ANALYSIS = 0, /* POST /s2s/v2.x/file/skin-analysis */
    SA_UPLOAD_GENERIC = 1        /* POST /s2s/v2.0/file */
} sa_upload_path;

/* How a client places the polls of a running task (poll_strategy). */
typedef enum sa_poll_strategy {
    SA_POLL_LEARNED = 0, /* "learned": from the task durations it saw */
    SA_POLL_FIXED = 1    /* "fixed": every poll_interval_ms */
} sa_poll_strategy;

typedef enum sa_log_level {
    SA_LOG_DEBUG = 10,
    SA_LOG_INFO = 20,
    SA_LOG_WARNING = 30,
    SA_LOG_ERROR = 40
} sa_log_level;

/* Receives one line of text, already redacted (no API key, no query string
 * of pre-signed URLs).  Borrowed for the duration of the call. */
typedef void (*sa_log_fn)(void *user_data, int level, const char *message);

/* Called now and then (about every 50 ms) during a blocking wait
 * (sa_job_wait, sa_client_run).  Return non-zero to make the wait return
 * SA_ERR_INTERRUPTED at once; jobs keep running and can be waited on again.
 * Python uses it for Ctrl-C. */
typedef int (*sa_interrupt_fn)(void *user_data);

/* Optional allocator for the library's own memory (not libcurl's or
 * cJSON's, which use their process-wide allocators).  All three or none. */
typedef struct sa_mem {
    void *user_data;
    void *(*malloc)(size_t size, void *user_data);
    void *(*realloc)(void *ptr, size_t size, void *user_data);
    void (*free)(void *ptr, void *user_data);
} sa_mem;

/* Client options.  Always call sa_client_options_init() first, then set the
 * fields you need.  sa_client_new() copies everything (strings included):
 * the struct and its strings may be freed right after. */
typedef struct sa_client_options {
    size_t struct_size;      /* set by sa_client_options_init */
    const char *api_key;     /* required */
    const char *base_url;    /* default "https://yce-api-01.makeupar.com" */
    int api_version;         /* SA_API_V2_0 or SA_API_V2_1 (default) */
    int upload_path;         /* sa_upload_path, default SKIN_ANALYSIS */
    int allow_insecure_http; /* allow http:// to non-loopback hosts; 0 */

    /* Transport */
    const char *ca_bundle;    /* CA file; NULL = libcurl's default */
    const char *proxy;        /* NULL = libcurl's env vars (https_proxy..) */
    long connect_timeout_ms;  /* 10000 */
    long request_timeout_ms;  /* per API request, 30000 */
    long upload_timeout_ms;   /* per upload, 120000 */
    const char *user_agent;   /* default "skinanalysis/VERSION" */
    int max_connections;      /* total open connections, default 16 */
    int max_jobs;             /* jobs past this wait in a queue; 0 = no cap */

    /* Polling */
    long poll_interval_ms;     /* when no polling_interval is given: 2000 */
    long max_poll_interval_ms; /* never wait longer between polls: 10000 */
    long job_deadline_ms;      /* whole job, default 600000 (10 min);
                                  counted from when the job leaves the
                                  max_jobs queue.  When it passes, the job
                                  fails (SA_ERR_DEADLINE) but a task that
                                  exists is still polled to its end in the
                                  background while the client lives */
    /* Status polls per job: 0 (default) = no bound.  Set, it is a hard
     * bound: the job ends SA_ERR_LIMIT and its task is polled no more (an
     * unpolled task may expire AND STILL BE BILLED). */
    int max_polls;

    /* Retries of file create, upload and status polls (transport errors,
     * 429, 5xx); task create only when nothing reached the server.  The
     * status polls of a task that exists have no budget: a task is polled
     * until a final answer (success, engine error, expired, timed out, a
     * 401 or other 4xx refusal), whatever else the polls meet (failed
     * polls past max_retries in a row are retried no sooner than
     * poll_interval_ms, never later than max_poll_interval_ms).  A
     * task_status the API does not document is "not finished yet" (logged
     * once per job).  One kind of answer keeps this budget: a whole status
     * answer the client refuses (a success without a usable result, a NUL
     * in a string) ends the job SA_ERR_PROTOCOL once max_retries retries
     * in a row met one (after a NUL the task is still polled in the
     * background). */
    int max_retries;           /* per step, default 6 */
    long backoff_initial_ms;   /* 500 */
    long backoff_max_ms;       /* 16000 */

    /* Client-side limiter, shared by every job of the client. */
    int rate_limit;            /* 1 = on (default), 0 = off */
    /* Requests allowed in any 1000 ms (sliding, as the API counts them):
     * 5.0.  A fractional rate counts its whole part (2.5 -> 2 per 1000 ms);
     * below 1 it means one request per 1000 / rate ms (0.5 -> 1 per 2 s). */
    double rate_per_second;
    /* Most of those sent back to back: 5.  Below the rate's whole part,
     * at most rate_burst requests in any rate_burst * 1000 / rate ms
     * (1 spaces requests evenly).  At or above it: no extra limit. */
    int rate_burst;
    /* And at most rate_window_max requests (250) in any rate_window_ms
     * (300000), sliding; either 0: no such window.  Both server windows
     * are measured longer than the server does, for the varying delay from
     * send to arrival: 20 ms by the client's own limiter (5 per 1020 ms),
     * 50 ms by a shared budget (rate_limit_scope "host", the default, and
     * "redis://"), whose processes' delays vary independently. */
    int rate_window_max;
    long rate_window_ms;

    /* Limits on what the network feeds */
    size_t max_body_bytes;     /* 8 MiB per API response */
    int max_json_depth;        /* 64 */

    /* Hooks */
    sa_log_fn log;             /* NULL = no logging */
    void *log_user_data;
    int log_level;             /* minimum level passed to log; SA_LOG_INFO */
    sa_interrupt_fn interrupt;
    void *interrupt_user_data;
    const sa_mem *mem;         /* NULL = libc; copied */
    uint64_t jitter_seed;      /* 0 = seeded from time and address */

    /* Image uploads (PUTs to the storage URL) in flight at once: 8.  More
     * wait in a FIFO queue (their upload timeout starts when they are
     * sent) while every other request goes on.  Each upload holds a
     * libcurl handle and a 64 KiB buffer.  0 = no cap. */
    int max_uploads;

    /* Time budget of a non-blocking call (sa_client_step with timeout 0,
     * sa_client_socket_action), in microseconds: 500.  0 = no time budget
     * (the count bounds still apply).  What it bounds and why:
     * docs/architecture.md, "Bounded steps". */
    long step_budget_us;

    /* Result files (masks, the resized image, a ZIP result's images) held
     * in memory: at most this many bytes for all the files of one result,
     * 256 MiB.  A mask download kept in memory (sa_client_fetch without a
     * folder) that would pass it fails SA_ERR_LIMIT, before its bytes are
     * read when the server says its size; so does a ZIP result whose
     * images add up to more.  Downloads into a folder are streamed to
     * disk and do not count.  Each file is also at most 64 MiB. */
    size_t max_files_bytes;
    /* Low-speed cut-off of result downloads (ZIP, masks, resized image): a
     * download slower than low_speed_limit bytes per second (1024) for
     * low_speed_time_ms (30000) fails SA_ERR_TIMEOUT, retried like a
     * transport error (max_retries).  Either 0: no cut-off (the download
     * is still bounded by upload_timeout_ms and the deadline). */
    long low_speed_limit;
    long low_speed_time_ms;

    /* Who shares the rate budget above (the API counts its limits per
     * key, not per client):
     *   "host" (default, NULL): every client on this machine with the same
     *          api_key, base_url and rate options, in every process, takes
     *          its slots from one budget in shared memory (a 0600 file
     *          under /dev/shm or $XDG_RUNTIME_DIR named by a hash, never
     *          holding the key).  Without shared memory the client falls
     *          back to "process" and logs one line saying so.
     *   "process": this client's own limiter only.
     *   "redis://HOST:PORT[/DB]": every client of a fleet of machines with
     *          the same key, base URL and rate options, through one atomic
     *          script in that Redis (keys named by a hash, never the key).
     *          Never blocks a step: the client speaks RESP on its own
     *          non-blocking socket, looked at with every step (and every 2
     *          ms while an answer is awaited, through the timer).  When
     *          Redis is away the client keeps to its share of the rate
     *          (rate / rate_limit_fleet_size), paced with the other clients
     *          of its machine (shared memory) so their shares never bunch
     *          (those already back on Redis too, while any is away),
     *          logs it once, and uses Redis again when it answers.  A HOST that does not resolve
     *          at sa_client_new: SA_ERR_INVALID_ARGUMENT.
     * Anything else: SA_ERR_INVALID_ARGUMENT from sa_client_new. */
    const char *rate_limit_scope;
    /* Redis scope: clients expected to share the key when Redis is away;
     * each keeps to 1/rate_limit_fleet_size of the rate and long window
     * meanwhile.  Default 4; 1..10000. */
    int rate_limit_fleet_size;
    /* Poll placement: SA_POLL_LEARNED (default) or SA_POLL_FIXED (the
     * first poll poll_interval_ms after the task create, then every
     * polling_interval the API gives, else poll_interval_ms).  Learned:
     * the client keeps the durations of the tasks it saw end (per tier
     * and action count), corrected by the poll round trip, and places
     * each task's polls where they pay: more of them near the likely end
     * while the rate budget has room, fewer (about one) when it binds;
     * fixed until it has seen 4 tasks end.  Both never leave a running
     * task unpolled longer than max_poll_interval_ms and never poll
     * sooner than a polling_interval the API gives. */
    int poll_strategy;
    /* 1: webhook deliveries arrive and the handler calls
     * sa_client_notify(task_id): a running task is then polled at once
     * after its delivery, and otherwise only about every
     * max_poll_interval_ms (insurance against a lost delivery).  0. */
    int webhooks;
} sa_client_options;

SA_API void sa_client_options_init_sized(sa_client_options *opts,
                                        size_t struct_size);
#define sa_client_options_init(opts) \
    sa_client_options_init_sized((opts), sizeof *(opts))

/* Create a client.  Returns SA_OK and sets *out, or SA_ERR_INVALID_ARGUMENT
 * (no key, bad option), SA_ERR_INSECURE, SA_ERR_NOMEM, SA_ERR_INIT.  When
 * errbuf is not NULL a message saying what to fix is written there. */
SA_API int sa_client_new(sa_client **out, const sa_client_options *opts,
                         char *errbuf, size_t errbuf_len);

/* Free the client.  Jobs still running are abandoned (their task ids are
 * logged at SA_LOG_WARNING: they may still be billed) -- call
 * sa_client_run() first to let them end.  Job handles the caller still
 * holds become detached: only sa_job_free() may be called on them.
 * From inside a callback the free is deferred until the callback returns. */
SA_API void sa_client_free(sa_client *client);

/* The last detailed message of the client (a failed submit, a failed
 * step); "" when none.  Borrowed until the next call on the client. */
SA_API const char *sa_client_errmsg(const sa_client *client);

/* ------------------------------------------------------------------ */
/* Requests and jobs                                                   */
/* ------------------------------------------------------------------ */

typedef enum sa_format {
    SA_FORMAT_JSON = 0,   /* scores in the status response (default) */
    SA_FORMAT_ZIP = 1     /* a ZIP with score_info.json + masks: the job
                             downloads it (state FETCHING, without the API
                             key) and parses it before DONE: scores plus
                             the masks as result files (sa_result_file_*).
                             Fails SA_ERR_ZIP / SA_ERR_URL_EXPIRED /
                             SA_ERR_DOWNLOAD after the task was billed;
                             the message and task id say so */
} sa_format;

/* Job states (an enum tag only: sa_job_state() is the accessor). */
enum sa_job_state {
    SA_JOB_VALIDATE = 0,
    SA_JOB_QUEUED,        /* waiting for a slot under max_jobs */
    SA_JOB_FILE_CREATE,
    SA_JOB_UPLOAD,
    SA_JOB_TASK_CREATE,
    SA_JOB_POLL_WAIT,
    SA_JOB_POLLING,
    SA_JOB_BACKOFF,
    SA_JOB_FETCHING,      /* downloading a ZIP result, or masks */
    SA_JOB_DONE,          /* terminal: result available */
    SA_JOB_FAILED,        /* terminal: sa_job_status() says why */
    SA_JOB_CANCELLED,     /* terminal */
    SA_JOB_STATE__LAST
};

/* The name every binding shows for a state: "validate", "queued",
 * "file_create", "upload", "task_create", "poll_wait", "polling",
 * "backoff", "fetching", "done", "failed", "cancelled"; "?" when out of
 * range.  (0.1.0 gave them in upper case: "POLL_WAIT".) */
SA_API const char *sa_job_state_name(int state);

/* Called when the job enters a state (progress), and exactly once when it
 * ends (state DONE, FAILED or CANCELLED).  Returning non-zero from a
 * non-terminal call cancels the job with SA_ERR_CALLBACK; the return value
 * of the terminal call is ignored.  The callback may call any function of
 * the library, including sa_job_free() and sa_client_free() (deferred). */
typedef int (*sa_job_cb)(sa_job *job, int state, void *user_data);

/* One analysis request.  Always call sa_request_init() first.  Exactly one
 * source must be set: file_path, buffer, image_url or file_id.
 * sa_client_submit() copies everything except `buffer`, which is borrowed
 * until the job ends (terminal state) or is freed. */
typedef struct sa_request {
    size_t struct_size;          /* set by sa_request_init */
    const char *file_path;       /* streamed from disk at upload time */
    const void *buffer;          /* caller's bytes ... */
    size_t buffer_len;           /* ... and their length */
    const char *image_url;       /* public URL -> src_file_url */
    const char *file_id;         /* an uploaded file -> src_file_id */
    const char *file_name;       /* name sent in the file slot request;
                                    default: basename of file_path, or
                                    "image.jpg"/"image.png" */

    const char *const *actions;  /* dst_actions, 1..16, all SD or all HD */
    size_t n_actions;

    int format;                  /* sa_format, default SA_FORMAT_JSON */
    int api_version;             /* SA_API_DEFAULT = the client's */
    int pf_camera_kit;           /* -1 = not sent (default), 0, 1; v2.1 */
    int mask_overlay;            /* -1 = not sent (default), 0, 1:
                                    miniserver_args.enable_mask_overlay */
    const char *miniserver_args_json; /* a JSON object with more documented
                                    miniserver_args keys (API.md §5);
                                    unknown keys or wrong types are
                                    SA_ERR_BAD_OPTION */
    long deadline_ms;            /* 0 = the client's job_deadline_ms */

    sa_job_cb callback;          /* optional */
    void *user_data;             /* passed to callback; see sa_job_user_data */

    int delete_after;            /* 1: once the result is in hand (a ZIP
                                    result with its masks), delete the task
                                    with its image and outputs from the
                                    vendor (sa_client_delete) before the job
                                    ends DONE (it shows FETCHING meanwhile);
                                    sa_job_delete_status says how it went.
                                    A JSON result's mask URLs then answer
                                    404: ask sa_client_fetch (with its own
                                    delete_after) instead for masks */
} sa_request;

SA_API void sa_request_init_sized(sa_request *req, size_t struct_size);
#define sa_request_init(req) sa_request_init_sized((req), sizeof *(req))

/* One member of miniserver_args in a binding-neutral form, so that no
 * binding writes JSON: the binding says what type its value has and
 * sa_miniserver_args_json encodes the object for
 * sa_request.miniserver_args_json. */
typedef enum sa_arg_type {
    SA_ARG_BOOL = 0,      /* boolean */
    SA_ARG_NUMBER = 1,    /* number (finite) */
    SA_ARG_STRING = 2,    /* string/string_len (UTF-8, no NUL) */
    SA_ARG_OTHER = 3      /* a value JSON scalars cannot say (a table, a
                             list, nil): refused, naming type_name */
} sa_arg_type;

typedef struct sa_arg {
    const char *key;        /* NULL: the binding's key was not a string */
    size_t key_len;         /* the key's length in bytes */
    int type;               /* sa_arg_type */
    int boolean;            /* SA_ARG_BOOL */
    double number;          /* SA_ARG_NUMBER */
    const char *string;     /* SA_ARG_STRING ... */
    size_t string_len;      /* ... and its length in bytes */
    const char *type_name;  /* SA_ARG_OTHER: the binding's name for the
                               value's type, for the message; may be NULL */
} sa_arg;

/* Encode n members as the JSON object text of sa_request's
 * miniserver_args_json ({"enable_mask_overlay":true,...}), in the given
 * order; numbers that are whole are written as integers.  Only the JSON
 * is checked here (the documented keys and ranges are checked by
 * sa_client_submit).  On SA_OK *json is a new string to free with
 * sa_free().  Returns SA_OK, SA_ERR_BAD_OPTION (a NULL key, a key or
 * string holding a NUL, a number that is not finite, SA_ARG_OTHER or an
 * unknown type: message in errbuf), SA_ERR_INVALID_ARGUMENT (json NULL,
 * or args NULL with n > 0) or SA_ERR_NOMEM; *json is NULL unless SA_OK. */
SA_API int sa_miniserver_args_json(const sa_arg *args, size_t n, char **json,
                                   char *errbuf, size_t errbuf_len);

/* Validate the request and start a job.  Validation reads the image
 * headers only; nothing is sent before it passes.  Never blocks on the
 * network: the job advances in sa_job_wait / sa_client_step /
 * sa_client_socket_action.  Returns SA_OK and *out (owned by the caller,
 * free with sa_job_free), or a validation code / SA_ERR_NOMEM /
 * SA_ERR_INVALID_ARGUMENT with the reason in sa_client_errmsg(). */
SA_API int sa_client_submit(sa_client *client, const sa_request *req,
                            sa_job **out);

/* Options of sa_client_resume.  Always call sa_resume_options_init()
 * first (it sets every field below to its default). */
typedef struct sa_resume_options {
    size_t struct_size;          /* set by sa_resume_options_init */
    int api_version;             /* whose status path is polled:
                                    SA_API_DEFAULT (the client's),
                                    SA_API_V2_0 or SA_API_V2_1 */
    long deadline_ms;            /* 0 = the client's job_deadline_ms */
    sa_job_cb callback;          /* optional, as in sa_request */
    void *user_data;             /* passed to callback */
} sa_resume_options;

SA_API void sa_resume_options_init_sized(sa_resume_options *opts,
                                        size_t struct_size);
#define sa_resume_options_init(opts) \
    sa_resume_options_init_sized((opts), sizeof *(opts))

/* Resume an existing task from its id (sa_job_task_id of an earlier job,
 * from another process or before a crash): start a job that polls that
 * task to its end and yields its result, exactly as a submitted job does
 * from its first poll on.  Nothing is created: no file slot, no upload,
 * no task create (nothing new is billed).  The first poll goes out at
 * once (through the limiter); a ZIP result is downloaded before DONE; an
 * expired or unknown id ends FAILED SA_ERR_TASK_EXPIRED, a task the engine
 * failed SA_ERR_ENGINE.  The job counts toward max_jobs like a submitted
 * one (cancelled or freed while still QUEUED, it is withdrawn: its task is
 * left as it was); once it runs, cancel and free keep polling the task in
 * the background, abandon stops.  sa_job_units is 0 and sa_job_file_id
 * NULL (the request is not known); sa_job_task_id is task_id at once.
 * opts may be NULL (the defaults); it and task_id are copied.
 *
 * task_id is checked before anything is sent, by the rule every id in
 * the API's answers meets: 1..4096 characters of A-Z a-z 0-9 + / = - _ .
 * ~ (task ids are base64, e.g. "SaGa.../u/FfjK3x...=="), not only dots.
 * It is percent-encoded into the status path, so '/' '+' '=' are safe.
 *
 * Returns SA_OK and *out (owned by the caller, free with sa_job_free), or
 * SA_ERR_SOURCE (a task_id refused as above), SA_ERR_BAD_OPTION (opts),
 * SA_ERR_INVALID_ARGUMENT (NULL client or out), SA_ERR_BUSY (the client
 * is being freed), SA_ERR_NOMEM, with the reason in sa_client_errmsg(). */
SA_API int sa_client_resume(sa_client *client, const char *task_id,
                            const sa_resume_options *opts, sa_job **out);

/* Release the caller's handle.  A job whose task is running keeps being
 * polled by its client until the task ends (nothing is left unpolled);
 * a job that has not created a task yet is cancelled.  Once freed, the
 * job's callback is never called again.  Deferred when called from a
 * callback. */
SA_API void sa_job_free(sa_job *job);

/* Stop waiting for the job: it ends now as CANCELLED (one terminal
 * callback).  If a task was (or may have been) created, the client keeps
 * polling it in the background until it ends -- the task may still be
 * billed when it succeeds -- and logs its outcome.  No effect on a job
 * that has ended.  Returns SA_OK or SA_ERR_INVALID_ARGUMENT. */
SA_API int sa_job_cancel(sa_job *job);

/* Like sa_job_cancel, but also stops polling the task.  An unpolled task
 * expires on the server AND MAY STILL BE BILLED: use only when the client
 * is going away anyway. */
SA_API int sa_job_abandon(sa_job *job);

/* The job's state (sa_job_state). */
SA_API int sa_job_state(const sa_job *job);
/* 1 once the job is DONE, FAILED or CANCELLED. */
SA_API int sa_job_done(const sa_job *job);
/* SA_OK when DONE; the failure code when FAILED; SA_ERR_CANCELLED (or
 * SA_ERR_CALLBACK) when CANCELLED; SA_ERR_NOT_DONE while it runs. */
SA_API int sa_job_status(const sa_job *job);
/* A message saying what happened (HTTP status, API error code, server
 * message, engine code); "" while running without error.  Borrowed until
 * the job changes state or is freed. */
SA_API const char *sa_job_errmsg(const sa_job *job);
/* Details of the answers; NULL/0 when unknown.  sa_job_http_status and
 * sa_job_request_id describe the answer to the last request the job sent:
 * 0 and NULL when it got none (a timeout, a reset: never the status of an
 * earlier step) or the answer had no x-request-id.  sa_job_api_error_code
 * is the error_code of the last error answer, sa_job_engine_error the
 * engine's code of a task that ended in error.  Like every string of a job
 * (and its result) they never show the API key, whatever the server
 * echoed: see "Secrets" at the top.  Borrowed until sa_job_free. */
SA_API int sa_job_http_status(const sa_job *job);
SA_API const char *sa_job_api_error_code(const sa_job *job); /* "InvalidParameters" */
SA_API const char *sa_job_engine_error(const sa_job *job);   /* "error_no_face" */
SA_API const char *sa_job_task_id(const sa_job *job);
SA_API const char *sa_job_file_id(const sa_job *job);
SA_API const char *sa_job_request_id(const sa_job *job);     /* x-request-id */
SA_API void *sa_job_user_data(const sa_job *job);
/* Units this job's request costs on success (from the unit table); 0 for
 * a resumed job (sa_client_resume: its actions are not known). */
SA_API int sa_job_units(const sa_job *job);
/* Number of status polls sent so far. */
SA_API int sa_job_polls(const sa_job *job);

/* The result of a DONE job, or NULL.  For a fetch job (sa_client_fetch)
 * that ended FAILED, the result with the files that did arrive.  Borrowed
 * until sa_job_free. */
SA_API const sa_result *sa_job_result(const sa_job *job);

/* ------------------------------------------------------------------ */
/* Driving the client                                                  */
/* ------------------------------------------------------------------ */

/* Run the client until `job` ends or timeout_ms passes (-1 = no limit).
 * Other jobs of the client advance too.  Returns SA_OK when the job has
 * ended (see sa_job_status for how), SA_ERR_WAIT_TIMEOUT,
 * SA_ERR_INTERRUPTED, or SA_ERR_BUSY when called from a callback. */
SA_API int sa_job_wait(sa_job *job, long timeout_ms);

/* Do whatever is ready, waiting at most timeout_ms for something to become
 * ready (0 = return at once; never blocks on DNS, connect or TLS).  With
 * timeout 0 the call is bounded (a few items of each kind, within
 * step_budget_us: docs/architecture.md, "Bounded steps"), so a frame's
 * work stays small; what is left makes sa_client_timeout_ms return 0 (call
 * again next frame).  Returns the number of jobs still running (>= 0), or
 * a negative sa_status:
 * SA_ERR_BUSY from a callback or while event hooks are installed (as for
 * sa_job_wait and sa_client_run). */
SA_API int sa_client_step(sa_client *client, long timeout_ms);

/* Run until every job (including background polls of cancelled or freed
 * jobs) has ended, or timeout_ms (-1 = no limit).  Returns SA_OK,
 * SA_ERR_WAIT_TIMEOUT or SA_ERR_INTERRUPTED. */
SA_API int sa_client_run(sa_client *client, long timeout_ms);

/* Number of jobs the client is driving (including background polls). */
SA_API int sa_client_active(const sa_client *client);

/* Milliseconds until the client next needs sa_client_step or
 * sa_client_socket_action(SA_SOCKET_TIMEOUT): 0 = now, -1 = nothing
 * pending. */
SA_API long sa_client_timeout_ms(sa_client *client);

/* Make a blocking wait of this client return early: its next check of the
 * interrupt hook happens at once; without an interrupt hook the wait
 * returns SA_ERR_INTERRUPTED.  Safe to call from any thread or a
 * signal handler's thread. */
SA_API int sa_client_wakeup(sa_client *client);

/* Poll the task `task_id` at once (a webhook said it ended): every job of
 * this client waiting to poll that task polls it now; one whose poll is
 * already on its way (maybe sent before the task ended) polls again at
 * the least gap (200 ms, or the API's polling_interval) if that poll
 * answers "running".  Returns the number of jobs notified (0 when none
 * has that task), or SA_ERR_INVALID_ARGUMENT. */
SA_API int sa_client_notify(sa_client *client, const char *task_id);

/* How sa_client_fetch downloads.  Always call sa_fetch_options_init()
 * first (all fields zero/NULL). */
typedef struct sa_fetch_options {
    size_t struct_size;          /* set by sa_fetch_options_init */
    /* Write the files into this existing folder, streamed to disk (never
     * held in memory): the result lists them with sa_result_file_path.
     * NULL: keep them in memory in the result, at most max_files_bytes
     * for all of them. */
    const char *folder;
    /* The fetch job's own callback and user data (see sa_job_cb), or
     * NULL: nothing of done_job's is used, so done_job may be freed while
     * the fetch runs. */
    sa_job_cb callback;
    void *user_data;
    /* 1: once every file is in (the job would end DONE), delete the task
     * from the vendor, as sa_request.delete_after does. */
    int delete_after;
} sa_fetch_options;

SA_API void sa_fetch_options_init_sized(sa_fetch_options *opts,
                                       size_t struct_size);
#define sa_fetch_options_init(opts) \
    sa_fetch_options_init_sized((opts), sizeof *(opts))

/* Download every mask URL and the resized image of a DONE job's result,
 * concurrently (at most 8 at a time) through the client's engine: never
 * with the API key, never counted by the rate limiter.  Returns a new job
 * (free with sa_job_free) in state FETCHING whose result has the scores
 * of done_job's result and one result file per URL (sa_result_file_*).
 *
 * Names: each file is named after its URL's last path segment, cleaned
 * (sa_file_name_clean) and made unique within the result ("mask.png",
 * "mask-2.png", ...), in URL order.  Into a folder, files are written as
 * sa_folder_write does: never over a file the library did not write, never
 * through a link, always inside the folder; the result file's name is the
 * name written.  No name shows the API key (see "Secrets" at the top): a
 * URL that echoes it (even %-encoded, which the cleaning decodes) gives a
 * name with the key scrubbed ("REDACTED_.png"), and that is the name of
 * the file on disk.  A URL holding the key in clear is scrubbed in the
 * DONE job's result already, so it is never requested (it fails alone).
 *
 * Memory: into a folder, a download holds only libcurl's buffers (16 KiB);
 * in memory, the files of the result take at most max_files_bytes.
 *
 * Each URL is downloaded on its own: a URL that is not http(s), a failed
 * or too large download, a file that cannot be written fail that file only
 * (SA_ERR_DOWNLOAD, SA_ERR_URL_EXPIRED, SA_ERR_LIMIT, SA_ERR_TIMEOUT);
 * the others go on.  The job ends DONE when every file is in, else FAILED
 * with the status of the first failed file in URL order and a message
 * that names it and counts the others; sa_job_result of that FAILED job
 * still gives the files that did arrive.  A download refused as expired
 * makes the job fetch the task's status again for fresh URLs and retry
 * once (SA_ERR_URL_EXPIRED after that).  A download slower than the
 * client's low-speed cut-off is retried, then SA_ERR_TIMEOUT.
 *
 * For ZIP results the files are already in done_job's result: the new job
 * ends DONE on the next step (writing them to the folder, or holding a
 * copy).  Returns SA_OK, SA_ERR_NOT_DONE, SA_ERR_INVALID_ARGUMENT,
 * SA_ERR_FILE (the folder does not exist or cannot be opened: nothing was
 * started), SA_ERR_NOMEM. */
SA_API int sa_client_fetch(sa_client *client, sa_job *done_job,
                           const sa_fetch_options *opts, sa_job **out);

/* sa_client_fetch with only a folder (NULL: in memory).  The fetch job has
 * no callback.  (It used to get done_job's callback and user data: a
 * binding whose user data went away with done_job then read freed
 * memory.) */
SA_API int sa_client_fetch_masks(sa_client *client, sa_job *done_job,
                                 const char *folder, sa_job **out);

/* -- Event-loop integration (asyncio, libuv, an engine's loop) -- */

#define SA_POLL_NONE 0
#define SA_POLL_IN 1
#define SA_POLL_OUT 2
#define SA_POLL_REMOVE 4
#define SA_SOCKET_TIMEOUT (-1)

/* Watch `fd` for `what` (SA_POLL_IN|SA_POLL_OUT), or stop watching it
 * (SA_POLL_REMOVE).  Return 0. */
typedef int (*sa_socket_fn)(void *user_data, int fd, int what);
/* Call sa_client_socket_action(client, SA_SOCKET_TIMEOUT, 0) after
 * timeout_ms (0 = as soon as possible, from the loop, not from inside
 * this callback); -1 = cancel the timer.  Replaces any earlier timer.
 * Return 0. */
typedef int (*sa_timer_fn)(void *user_data, long timeout_ms);

/* Install the hooks.  From then on the loop owns waiting: it calls
 * sa_client_socket_action when a watched socket is ready or the timer
 * fires.  Pass NULLs to go back to sa_client_step/sa_job_wait.  Returns
 * SA_OK, or SA_ERR_BUSY while requests are in flight.  sa_client_free may
 * call the socket hook with SA_POLL_REMOVE for the sockets it closes. */
SA_API int sa_client_set_event_hooks(sa_client *client, sa_socket_fn sock,
                                     sa_timer_fn timer, void *user_data);
/* Tell the client that fd is ready for `what` (or fd = SA_SOCKET_TIMEOUT
 * for the timer).  Does what is ready and returns at once.  Returns the
 * number of jobs still running or a negative sa_status. */
SA_API int sa_client_socket_action(sa_client *client, int fd, int what);

/* ------------------------------------------------------------------ */
/* Results                                                             */
/* ------------------------------------------------------------------ */

/* One scored concern (or region of a concern).  A read-only view owned by
 * the result; fields may be appended in later versions. */
typedef struct sa_score {
    const char *concern;    /* the action name: "hd_wrinkle", "pore",
                               "skin_type", ... (raw string from the API) */
    const char *region;     /* "whole" when the API gave none */
    double raw_score;       /* NaN when absent */
    double ui_score;        /* NaN when absent (an integer when present) */
    const char *skin_type;  /* "Oily", ... for skin_type entries, else NULL */
    const char *mask_name;  /* zip results: output_mask_name, else NULL */
    const char *const *mask_urls; /* n_mask_urls entries */
    size_t n_mask_urls;
} sa_score;

SA_API int sa_result_format(const sa_result *r);          /* sa_format */
/* Scored entries (concerns, regions, skin types), in API order. */
SA_API size_t sa_result_count(const sa_result *r);
SA_API const sa_score *sa_result_score(const sa_result *r, size_t i);
/* Look up by concern and region (NULL region = "whole").  For a concern
 * given by its SD or HD name either name matches ("wrinkle" finds
 * "hd_wrinkle" in an HD result).  NULL when absent. */
SA_API const sa_score *sa_result_get(const sa_result *r, const char *concern,
                                     const char *region);
SA_API double sa_result_overall(const sa_result *r);   /* "all"; NaN absent */
SA_API double sa_result_skin_age(const sa_result *r);  /* NaN when absent */
/* The resized input image URL, or NULL. */
SA_API const char *sa_result_resize_image_url(const sa_result *r);
/* For SA_FORMAT_ZIP: the ZIP's URL (object or bare-string form); else NULL. */
SA_API const char *sa_result_zip_url(const sa_result *r);
/* The raw JSON text behind the result, byte for byte as received:
 * data.results of the status answer, or score_info.json for results read
 * from a ZIP (sa_result_parse with SA_PARSE_SCORE_INFO, or ZIP results).
 * NULL when none is known.  In the result of a job, this text (like every
 * string of the result) has the API key scrubbed from it if the server
 * echoed it: see "Secrets" at the top. */
SA_API const char *sa_result_json(const sa_result *r);
SA_API const char *sa_result_task_id(const sa_result *r);

/* Parse a status response body or a score_info.json document into a new
 * result, without a client (for cached responses and tests).  `kind` is
 * 0 for a full task status body ({"status":200,"data":{...}}) and 1 for
 * score_info.json.  Returns SA_OK and *out (free with sa_result_free), or
 * SA_ERR_PROTOCOL / SA_ERR_LIMIT / SA_ERR_NOMEM / SA_ERR_ENGINE, or
 * SA_ERR_NOT_DONE for a task still running (or with a task_status the API
 * does not document: not finished yet).  A success carries a result: a
 * ZIP URL, or an output list with at least one entry (an object with a
 * "type"); entries the reader cannot use are skipped, and data.results
 * that yields neither ([], [1,2,3], 12345, {}) is SA_ERR_PROTOCOL, for a
 * job's status polls as here. */
#define SA_PARSE_STATUS_BODY 0
#define SA_PARSE_SCORE_INFO 1
SA_API int sa_result_parse(const char *json, size_t len, int kind,
                           sa_result **out);
SA_API void sa_result_free(sa_result *r);

/* ------------------------------------------------------------------ */
/* ZIP results and composites (pure: no client needed)                 */
/* ------------------------------------------------------------------ */

/* Parse a result ZIP (format "zip": skinanalysisResult/score_info.json plus
 * one PNG per mask) from memory into a new result: the scores as for JSON
 * results (regions, "all", the bare-number skin_age, output_mask_name in
 * sa_score.mask_name), and the mask files kept in the result (see
 * sa_result_file_*).  Lenient with unknown shapes.  Entries larger than
 * max_entry_bytes (0 = 32 MiB) are refused.  Returns SA_OK and *out (free
 * with sa_result_free), SA_ERR_ZIP (corrupt, or no score_info.json, with a
 * message in errbuf), SA_ERR_LIMIT or SA_ERR_NOMEM. */
SA_API int sa_result_parse_zip(const void *zip, size_t len,
                               size_t max_entry_bytes, sa_result **out,
                               char *errbuf, size_t errbuf_len);

/* Files of a result (the masks of a ZIP result once parsed, or the masks
 * downloaded by sa_client_fetch): count, and the i-th file's name
 * ("hd_pore_output_all.png", unique within the result), bytes and sniffed
 * format (sa_image_format).  A file written into a folder by
 * sa_client_fetch is not held in memory: its data is NULL (*len 0) and
 * sa_result_file_path gives where it is ("FOLDER/NAME"; NULL for a file
 * held in memory).  Borrowed until the result is freed.
 *
 * Memory a result takes: its scores and URLs (a few KB), plus the bytes of
 * the files it holds in memory, which the client bounds by
 * max_files_bytes (256 MiB) for all the files of one result, each file
 * at most 64 MiB.  Files written into a folder take nothing.  A job's
 * result scrubbed of the key keeps these bounds: the scrubbed copy takes
 * the files over, their bytes are never held twice; names and paths are
 * scrubbed too (a path only shows the key when the folder's own path
 * does: it is then shown scrubbed). */
SA_API size_t sa_result_file_count(const sa_result *r);
SA_API const char *sa_result_file_name(const sa_result *r, size_t i);
SA_API const void *sa_result_file_data(const sa_result *r, size_t i,
                                       size_t *len);
SA_API int sa_result_file_format(const sa_result *r, size_t i);
SA_API const char *sa_result_file_path(const sa_result *r, size_t i);
/* 1 when a result file is a mask image: its bytes are PNG or JPEG
 * (sniffed) and its name is not the resized input image's (the name
 * sa_file_name_clean gives resize_image_url; NULL when there is none);
 * else 0.  The one rule behind every binding's "mask files" (composites,
 * notebook views): data NULL (a file written to a folder) is no mask. */
SA_API int sa_file_is_mask(const char *name, const void *data, size_t len,
                           const char *resize_image_url);

/* Write one overview image: the source image (JPEG or PNG) with every mask
 * (PNG with alpha, or JPEG overlays) blended over it, mask i tinted with
 * sa_palette_color(i) (sa_composite_write_concerns tints each with its
 * concern's colour instead), masks scaled to the source size.  Written as PNG
 * to out_path.  masks/mask_lens: n_masks encoded images.  Returns SA_OK,
 * SA_ERR_IMAGE_DECODE, SA_ERR_FILE (cannot write), SA_ERR_NOMEM,
 * SA_ERR_INVALID_ARGUMENT, with a message in errbuf. */
SA_API int sa_composite_write(const void *source, size_t source_len,
                              const void *const *masks,
                              const size_t *mask_lens, size_t n_masks,
                              const char *out_path,
                              char *errbuf, size_t errbuf_len);

/* The same overview, each mask tinted with the colour of its concern
 * (sa_concern_color): concerns[i] names the concern of masks[i] ("hd_pore",
 * "wrinkle", ...), so the composite matches a legend drawn with
 * sa_concern_color exactly.  A NULL concerns (or a NULL entry) tints by
 * the mask's position, as sa_composite_write does (sa_palette_color(i)).
 * max_side > 0 scales the written image down (area average, after the
 * blend) so that neither side exceeds it: thumbnails and notebook views
 * of large photos; 0 keeps the source size.  Same returns as
 * sa_composite_write. */
SA_API int sa_composite_write_concerns(const void *source, size_t source_len,
                                       const void *const *masks,
                                       const size_t *mask_lens,
                                       const char *const *concerns,
                                       size_t n_masks, size_t max_side,
                                       const char *out_path, char *errbuf,
                                       size_t errbuf_len);

/* ------------------------------------------------------------------ */
/* Concern colours and before/after comparison (pure)                  */
/* ------------------------------------------------------------------ */

/* The one palette composites and legends use (sa_concern_color picks from
 * it): SA_PALETTE_SIZE distinct colours that read on light and dark
 * backgrounds.  sa_palette_color writes colour i % SA_PALETTE_SIZE. */
#define SA_PALETTE_SIZE 20
SA_API void sa_palette_color(size_t i, unsigned char rgb[3]);

/* The colour of a concern in composites and legends.  The 16 concerns of
 * the catalogue have a colour each, shared by the SD and HD name
 * ("wrinkle" and "hd_wrinkle", "dark_circle_v2" and "hd_dark_circle");
 * any other name gets a palette colour picked by a hash of its bytes (the
 * same on every run and platform).  Returns 1 for a catalogue concern, 0
 * for a hashed one, SA_ERR_INVALID_ARGUMENT for NULL arguments. */
SA_API int sa_concern_color(const char *concern, unsigned char rgb[3]);

/* One concern (and region) before and after: the scores on each side and
 * the change (after - before).  A side where the entry is missing, or
 * has no such score, is NaN and so is the change.  Skin-type entries carry
 * their words instead (NULL on a side without).  `concern` is the name in
 * `after` (in `before` for an entry only there); SD and HD names of one
 * concern are matched with each other. */
typedef struct sa_change {
    const char *concern;
    const char *region;             /* "whole" when the API gave none */
    double ui_before, ui_after, ui_change;
    double raw_before, raw_after, raw_change;
    const char *skin_type_before;
    const char *skin_type_after;
    int in_before, in_after;        /* 1 when the entry is on that side */
} sa_change;

typedef struct sa_comparison sa_comparison;

/* What sa_scores_compare compares: a list of scores (as sa_result_score
 * gives them) with the overall score and skin age (NaN when absent). */
typedef struct sa_scores {
    const sa_score *scores;
    size_t count;
    double overall;
    double skin_age;
} sa_scores;

/* Compare two results (an earlier and a later analysis of one face).
 * Entries come in `after`'s order, then those only in `before`.  The
 * comparison owns copies of every string (the results may be freed).
 * Returns SA_OK and *out (free with sa_comparison_free),
 * SA_ERR_INVALID_ARGUMENT or SA_ERR_NOMEM.  sa_scores_compare does the
 * same from score lists (for bindings that keep no sa_result). */
SA_API int sa_result_compare(const sa_result *before, const sa_result *after,
                             sa_comparison **out);
SA_API int sa_scores_compare(const sa_scores *before, const sa_scores *after,
                             sa_comparison **out);
SA_API size_t sa_comparison_count(const sa_comparison *c);
SA_API const sa_change *sa_comparison_change(const sa_comparison *c,
                                             size_t i);
/* The overall score ("all") and the skin age as changes (their ui_* is
 * the value, raw_* NaN; concern "all" / "skin_age"); never NULL for a
 * comparison. */
SA_API const sa_change *sa_comparison_overall(const sa_comparison *c);
SA_API const sa_change *sa_comparison_skin_age(const sa_comparison *c);
SA_API void sa_comparison_free(sa_comparison *c);

/* ------------------------------------------------------------------ */
/* Files written into a folder (pure: no client needed)                */
/* ------------------------------------------------------------------ */

/* The size of a buffer that always holds a cleaned name (NUL included),
 * also once made unique ("name-2.png"). */
#define SA_FILE_NAME_MAX 128

/* Clean a file name that came from the network for use in a folder: for a
 * URL its last path segment (no query), else what follows the last '/' or
 * '\'; %XX decoded; every run of bytes other than ASCII letters, digits,
 * '.', '_' and '-' replaced by one '_'; leading '.', '_', '-' and trailing
 * '.', '_' removed (no hidden file, no "..", no option-like name); cut to
 * 112 bytes, keeping a short extension; "file" when nothing is left.
 * The same cleaning sa_client_fetch and sa_folder_write apply.  out_len
 * must be at least SA_FILE_NAME_MAX.  Returns SA_OK or
 * SA_ERR_INVALID_ARGUMENT. */
SA_API int sa_file_name_clean(const char *name, char *out, size_t out_len);

/* A folder opened for writing files the way sa_client_fetch does: every
 * file created relative to the open directory (it stays inside it), under
 * a temporary name first (O_CREAT|O_EXCL|O_NOFOLLOW), then renamed
 * without replacing anything.  Names are cleaned and unique among the
 * files written through this handle ("mask.png", "mask-2.png"); a name
 * taken by a file the handle did not write is kept when that file has the
 * same bytes (saving twice gives the same files), else the next free
 * variant is used.  Not thread-safe; one handle per save. */
typedef struct sa_folder sa_folder;

/* Open an existing folder.  Returns SA_OK and *out (free with
 * sa_folder_free), SA_ERR_FILE (missing, not a folder, no access) or
 * SA_ERR_NOMEM, with a message in errbuf. */
SA_API int sa_folder_open(const char *path, sa_folder **out, char *errbuf,
                          size_t errbuf_len);
/* Write len bytes as a new file named after `name` (cleaned, made
 * unique); the name written goes to `written` (at least SA_FILE_NAME_MAX
 * bytes; may be NULL).  Returns SA_OK, SA_ERR_FILE (with the system's
 * reason in errbuf; nothing is left behind), SA_ERR_NOMEM or
 * SA_ERR_INVALID_ARGUMENT. */
SA_API int sa_folder_write(sa_folder *folder, const char *name,
                           const void *data, size_t len, char *written,
                           size_t written_len, char *errbuf,
                           size_t errbuf_len);
/* The path the folder was opened with (borrowed until sa_folder_free). */
SA_API const char *sa_folder_path(const sa_folder *folder);
SA_API void sa_folder_free(sa_folder *folder);

/* ------------------------------------------------------------------ */
/* Webhooks (Standard Webhooks, HMAC-SHA256)                           */
/* ------------------------------------------------------------------ */

/* Verify a webhook delivery: secret "whsec_<base64>", the webhook-id,
 * webhook-timestamp and webhook-signature header values, and the raw body
 * bytes as received.  The signature header may carry several
 * space-separated "v1,<base64>" signatures; any valid one passes.  The
 * comparison is constant-time.  tolerance_s (0 = 300) bounds the age of the
 * timestamp both ways around now_s (0 = the current time).  Returns SA_OK,
 * SA_ERR_WEBHOOK_SIGNATURE, SA_ERR_WEBHOOK_STALE or SA_ERR_INVALID_ARGUMENT
 * (malformed secret or headers), with a message in errbuf. */
SA_API int sa_webhook_verify(const char *secret, const char *msg_id,
                             const char *msg_timestamp,
                             const char *msg_signature, const void *body,
                             size_t body_len, long tolerance_s,
                             int64_t now_s, char *errbuf, size_t errbuf_len);

/* The largest body sa_webhook_parse reads (a notification is a few
 * hundred bytes). */
#define SA_WEBHOOK_BODY_MAX 65536

/* Read the task notification out of a webhook body that sa_webhook_verify
 * accepted (the same raw bytes): {"data": {"task_id": "...",
 * "task_status": "success"}, "created_at": 1761112848}.  The contract of
 * every binding: a verified delivery is a task notification, or it is
 * refused.  The body must be UTF-8 JSON of at most SA_WEBHOOK_BODY_MAX
 * bytes, nested at most 32 deep, with no NUL in a string, and an object
 * whose data.task_id is a string of id characters (1..4096 of A-Z a-z 0-9
 * + / = - _ . ~, not only dots: what client notify() may be given).  On
 * SA_OK *task_id (never NULL) and *task_status (NULL when absent or not a
 * string) are new strings to free with sa_free(), and *created_at is the
 * top-level created_at when it is a whole number, else INT64_MIN.  Returns
 * SA_OK, SA_ERR_PROTOCOL (not a task notification: message in errbuf),
 * SA_ERR_LIMIT (over SA_WEBHOOK_BODY_MAX), SA_ERR_INVALID_ARGUMENT (NULL
 * pointers) or SA_ERR_NOMEM; the three out values are NULL / NULL /
 * INT64_MIN unless SA_OK. */
SA_API int sa_webhook_parse(const void *body, size_t body_len,
                            char **task_id, char **task_status,
                            int64_t *created_at, char *errbuf,
                            size_t errbuf_len);

/* ------------------------------------------------------------------ */
/* Account: balance, price list, delete (API.md section 17.1)          */
/* ------------------------------------------------------------------ */

/* Options of the account calls.  Always call sa_account_options_init()
 * first (all fields zero/NULL).  NULL options: the defaults. */
typedef struct sa_account_options {
    size_t struct_size;          /* set by sa_account_options_init */
    long deadline_ms;            /* 0 = the client's job_deadline_ms */
    sa_job_cb callback;          /* optional, as in sa_request */
    void *user_data;             /* passed to callback */
} sa_account_options;

SA_API void sa_account_options_init_sized(sa_account_options *opts,
                                          size_t struct_size);
#define sa_account_options_init(opts) \
    sa_account_options_init_sized((opts), sizeof *(opts))

/* One credit grant (an entry of GET /s2s/v1.0/client/credit). */
typedef struct sa_credit_grant {
    const char *type;      /* "ApiSubscription", "ApiPayAsYouGo", ... ("" when
                              absent or not a string) */
    double amount;         /* units left in the grant (0 when absent) */
    const char *raw;       /* the whole entry as JSON text (cJSON-printed):
                              its other, undocumented fields (expiry...) */
} sa_credit_grant;

/* The sum of the grants of one type, in order of first appearance. */
typedef struct sa_credit_type {
    const char *type;
    double amount;
} sa_credit_type;

typedef struct sa_credit {
    double available;      /* units the API can spend: the sum of the
                              amounts whose type starts with "Api" (as the
                              vendor's own client counts) */
    size_t n_grants;
    const sa_credit_grant *grants;
    size_t n_types;
    const sa_credit_type *by_type;
} sa_credit;

/* One price list entry (GET /s2s/v2.0/credit/feature-cost). */
typedef struct sa_sku {
    const char *description, *unit, *proc_unit, *run_task_url;  /* "" when
                              absent or not a string */
    const char *feature;   /* the part of run_task_url after "/task/"
                              ("skin-analysis"), "" when none */
    double amount;         /* units per proc_unit */
    const char *raw;       /* the whole entry as JSON text */
} sa_sku;

typedef struct sa_price_list {
    size_t n_skus;
    const sa_sku *skus;
    int pages;             /* pages read */
} sa_price_list;

/* Most pages sa_client_price_list follows (SA_ERR_LIMIT beyond). */
#define SA_PRICE_LIST_MAX_PAGES 100

/* Start a job that reads the key's balance (GET /s2s/v1.0/client/credit).
 * Like every API-host request it goes through the client's rate limiter;
 * transport errors, 429 and 5xx are retried within max_retries.  DONE:
 * sa_job_credit gives the grants.  An answer without a "results" array,
 * or with an entry that is not an object, ends FAILED SA_ERR_PROTOCOL; a
 * bad key SA_ERR_AUTH.  Returns SA_OK and *out (free with sa_job_free),
 * SA_ERR_BAD_OPTION (opts), SA_ERR_INVALID_ARGUMENT, SA_ERR_BUSY or
 * SA_ERR_NOMEM, with the reason in sa_client_errmsg(). */
SA_API int sa_client_credit(sa_client *client, const sa_account_options *opts,
                            sa_job **out);

/* Start a job that reads the whole price list: GET
 * /s2s/v2.0/credit/feature-cost?page_size=20, then each next_token until
 * it is null or empty, at most SA_PRICE_LIST_MAX_PAGES pages
 * (SA_ERR_LIMIT).  A next_token seen before (a loop) or one a task id
 * would refuse ends FAILED SA_ERR_PROTOCOL.  DONE: sa_job_price_list. */
SA_API int sa_client_price_list(sa_client *client,
                                const sa_account_options *opts, sa_job **out);

/* Start a job that deletes a finished task with its input and outputs
 * (POST /s2s/v2.0/task/delete): its status and mask URLs then fail.  The
 * task id is checked first as sa_client_resume checks it (SA_ERR_SOURCE).
 * A task still running ends FAILED SA_ERR_BAD_REQUEST with api error code
 * "OperationInvalid"; an unknown, expired or deleted one
 * SA_ERR_TASK_EXPIRED ("InvalidTaskId").  A delete retried after a first
 * attempt that may have reached the server, and then answered
 * "InvalidTaskId", is taken as done.  DONE: the task is gone. */
SA_API int sa_client_delete(sa_client *client, const char *task_id,
                            const sa_account_options *opts, sa_job **out);

/* delete_after (sa_request, sa_fetch_options): SA_OK when the task was
 * deleted; the failure of the delete (SA_ERR_BAD_REQUEST, SA_ERR_AUTH,
 * SA_ERR_TASK_EXPIRED, SA_ERR_CANCELLED...: the job itself still ended
 * DONE with its result) with a message in sa_job_delete_errmsg; or
 * SA_ERR_NOT_DONE when no delete was asked for or tried (the job did not
 * end DONE).  The message is "" unless the delete failed. */
SA_API int sa_job_delete_status(const sa_job *job);
SA_API const char *sa_job_delete_errmsg(const sa_job *job);
/* The API error_code of a failed delete ("OperationNotSupport"), or NULL. */
SA_API const char *sa_job_delete_api_error_code(const sa_job *job);

/* The balance read by a DONE sa_client_credit job, else NULL.  The price
 * list of a DONE sa_client_price_list job, else NULL.  Every string is
 * scrubbed of the API key.  Borrowed until sa_job_free. */
SA_API const sa_credit *sa_job_credit(const sa_job *job);
SA_API const sa_price_list *sa_job_price_list(const sa_job *job);

/* ------------------------------------------------------------------ */
/* Memory returned to the caller                                       */
/* ------------------------------------------------------------------ */

/* Free a string the library documents as caller-owned. */
SA_API void sa_free(void *ptr);

#ifdef __cplusplus
}
#endif

#endif /* SKINANALYSIS_H */
