/* sa_internal.h - interfaces between the modules of libskinanalysis.
 * Not installed.  Every symbol here is hidden (not SA_API).
 *
 * Modules (see docs/architecture.md):
 *   util     allocation through sa_mem, growable buffers, small strings
 *   structs  the public structs that grow (struct_size, defaults beyond)
 *   json     the one place that calls cJSON's parser (reentrancy, depth)
 *   status   sa_strerror, sa_status_name, classification
 *   catalog  dst_actions, tiers, unit table, miniserver_args, engine codes
 *   image    JPEG/PNG header sniffing
 *   proto    request bodies and response parsing/classification (sans-IO)
 *   result   the result model (sa_result, sa_score): result.c, and
 *            result_files.c (files, URLs, copies); result_internal.h
 *   files    names of files from the network, writes into a folder
 *   limiter  sliding windows: N per second, M per window (time is an input)
 *   sched    which waiting request goes next: limiter queue, admission,
 *            reserve, upload queue (time is an input); the limiter's and
 *            its interface are in sa_sched.h
 *   job      one analysis as a state machine (sans-IO, time is an input):
 *            job.c, job_answers.c, job_fetch.c (downloads and fetches),
 *            which share job_internal.h
 *   engine   libcurl multi: runs the requests jobs ask for: engine.c,
 *            engine_send.c, engine_loop.c; engine_internal.h
 *   client   the public sa_client / sa_job API on top of job, sched and
 *            engine: client.c, options.c, request.c, drive.c, publish.c
 *            and fetch.c, which share sa_client.h
 */
#ifndef SA_INTERNAL_H
#define SA_INTERNAL_H

#include "skinanalysis.h"

#include <stdarg.h>
#include <stdint.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#define SA__HIDDEN __attribute__((visibility("hidden")))

/* ================================================================== */
/* structs.c: the public structs that begin with size_t struct_size    */
/* ================================================================== */

/* Fill the caller's struct (user_size bytes) from a full-size struct of
 * defaults, zero past it, and record user_size.  Does nothing for a NULL
 * or impossible size. */
void sa__struct_init(void *user, size_t user_size, const void *defaults,
                     size_t full_size);
/* Copy the caller's struct into `full` (which holds the defaults): only
 * its struct_size bytes; SA_ERR_INVALID_ARGUMENT with a message in err
 * when struct_size was never set, or when it sets bytes this library does
 * not know.  full's struct_size becomes full_size. */
int sa__struct_in(void *full, size_t full_size, const void *user,
                  char *err, size_t errlen);
/* Copy a full-size output struct into the caller's, only its struct_size
 * bytes (zero past full_size), keeping its struct_size. */
int sa__struct_out(void *user, const void *full, size_t full_size);

/* ================================================================== */
/* util.c                                                              */
/* ================================================================== */

/* Defines the NULL-safe getter `type fn(const arg *p)`: p->field, or dflt
 * for a NULL p (write it without a semicolon after). */
#define SA__GETTER(type, fn, arg, field, dflt) \
    type fn(const arg *p) { return p ? p->field : dflt; }

/* All library memory goes through these; mem may be NULL (libc).
 * sa__calloc checks n*size for overflow. */
void *sa__malloc(const sa_mem *mem, size_t size);
void *sa__calloc(const sa_mem *mem, size_t n, size_t size);
void *sa__realloc(const sa_mem *mem, void *ptr, size_t size);
void sa__free(const sa_mem *mem, void *ptr);
char *sa__strdup(const sa_mem *mem, const char *s);       /* NULL -> NULL */
char *sa__strndup(const sa_mem *mem, const char *s, size_t n);

/* Growable byte buffer, always NUL-terminated when data != NULL.
 * `limit` (0 = none) bounds len: appending past it returns SA_ERR_LIMIT. */
typedef struct sa__buf {
    char *data;
    size_t len;
    size_t cap;
    size_t limit;
    const sa_mem *mem;
} sa__buf;

void sa__buf_init(sa__buf *b, const sa_mem *mem, size_t limit);
int sa__buf_append(sa__buf *b, const void *data, size_t len); /* OK/NOMEM/LIMIT */
int sa__buf_appendf(sa__buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void sa__buf_reset(sa__buf *b);  /* len = 0, keeps memory */
void sa__buf_free(sa__buf *b);
/* Give the data away (caller frees with sa__free(mem, p)); buffer is reset. */
char *sa__buf_steal(sa__buf *b);

/* snprintf into a fixed buffer, never overflowing, NULL/0 tolerated. */
void sa__errf(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Hiding the API key (`secret`; NULL or "" hides nothing).  What is
 * hidden: every occurrence of the whole secret (so "Bearer <key>" becomes
 * "Bearer [REDACTED]"), and what is left of the key where a bounded copy
 * of a server text (an error message, a job message) cut it: every run of
 * at least SA__SECRET_MIN_PART of its first bytes, and a run of at least
 * SA__SECRET_MIN_TAIL of them that ends the text.  Each is replaced by
 * "[REDACTED]".  (Server texts are also cut at a space where they have
 * one, so a cut rarely falls inside the key: see proto.c.) */
#define SA__SECRET_MIN_PART 8
#define SA__SECRET_MIN_TAIL 4

/* 1 when s (may be NULL) holds something sa__scrub would hide. */
int sa__has_secret(const char *s, const char *secret);
/* The length of s once scrubbed, and the scrubbed copy written to dst
 * (sa__scrub_len(s) + 1 bytes).  Only the secret changes: URLs and their
 * query strings stay whole (ids, result URLs). */
size_t sa__scrub_len(const char *s, const char *secret);
void sa__scrub(char *dst, const char *s, const char *secret);
/* A scrubbed copy of s (NULL for NULL or on NOMEM). */
char *sa__scrub_dup(const sa_mem *mem, const char *s, const char *secret);

/* Copy src into the fixed buffer dst, hiding the secret as sa__scrub
 * does and cutting the query string of http(s) URLs ("?..." ->
 * "?[...]").  Used for every log line and client message that may
 * contain server text. */
void sa__redact(char *dst, size_t dstlen, const char *src, const char *secret);
/* sa__redact of the text fmt and ap make, cut first to dstlen bytes (at
 * most 1024) as a copy of that size would be: the client's and the
 * engine's messages and log lines. */
void sa__vredact(char *dst, size_t dstlen, const char *secret,
                 const char *fmt, va_list ap);

/* The text of errno value err, whichever strerror_r the C library
 * declares (XSI or GNU): buf (len bytes) or a static string, never
 * NULL. */
const char *sa__strerror(int err, char *buf, size_t len);

/* 1 when the URL's host is loopback (localhost, 127.0.0.0/8, ::1). */
int sa__url_is_loopback(const char *url);
/* 1 for "http://", 2 for "https://", 0 otherwise (case-insensitive). */
int sa__url_scheme(const char *url);

/* Percent-encode everything but unreserved characters (RFC 3986).
 * Returns a new string or NULL on NOMEM. */
char *sa__urlencode(const sa_mem *mem, const char *s);

/* xorshift64* PRNG; *state must be non-zero. */
uint64_t sa__rand(uint64_t *state);

/* *at = the earlier of *at and t, where -1 and INT64_MAX mean "none"
 * (for "the next time anything is due"). */
void sa__min_at(int64_t *at, int64_t t);

/* 1 when s has a byte below 0x21 (space, tab, CR, LF, ...) or DEL. */
int sa__has_space_or_ctl(const char *s);
/* 1 when s has a control character (below 0x20) or DEL. */
int sa__has_ctl(const char *s);

/* Intrusive doubly linked lists: circular, with a head node.  A node not
 * in any list links to itself, so "is it linked?" needs no flag. */
typedef struct sa__link {
    struct sa__link *prev, *next;
} sa__link;

/* The struct of `type` that holds the node l as its member `field`. */
#define SA__CONTAINER_OF(l, type, field) \
    ((type *)(void *)((char *)(l) - offsetof(type, field)))

static inline void sa_link_init(sa__link *l)
{
    l->prev = l->next = l;
}

static inline int sa_link_empty(const sa__link *head)
{
    return head->next == head;
}

static inline int sa_link_linked(const sa__link *l)
{
    return l->next != l;
}

static inline void sa_link_append(sa__link *head, sa__link *l)
{
    l->prev = head->prev;
    l->next = head;
    head->prev->next = l;
    head->prev = l;
}

static inline void sa_link_remove(sa__link *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
    sa_link_init(l);
}

/* ================================================================== */
/* json.c                                                              */
/* ================================================================== */

/* Parse JSON text reentrantly.  cJSON writes a process-wide error pointer on
 * every parse; this function is the only caller of cJSON's parser in the
 * library and serialises those calls with a process-wide mutex (see
 * docs/architecture.md "Reentrancy").  Before parsing it scans the text and
 * refuses nesting deeper than max_depth (SA_ERR_LIMIT), and a NUL in any
 * string (a raw one or \u0000: cJSON would cut the string there).  Returns
 * SA_OK and a tree to free with cJSON_Delete, SA_ERR_PROTOCOL (not JSON, or
 * a NUL in a string), SA_ERR_LIMIT or SA_ERR_NOMEM. */
int sa__json_parse(const char *text, size_t len, int max_depth, cJSON **out);
/* 1 when sa__json_parse refuses text only for a NUL in a string: a whole
 * JSON text (grammar, depth) that holds one, not a cut or garbled one. */
int sa__json_nul_only(const char *text, size_t len, int max_depth);

/* Accessors tolerant of nulls and of numbers where strings are expected.
 * Return NULL/0 when absent or of another type. */
const cJSON *sa__json_get(const cJSON *obj, const char *key);
const char *sa__json_string(const cJSON *obj, const char *key);
/* Writes the value (number or numeric string) to *out; 1 if found. */
int sa__json_number(const cJSON *obj, const char *key, double *out);
/* A string, or a number rendered as an integer string, as a new string
 * (for upload headers and ids).  NULL when absent; *nomem set on NOMEM. */
char *sa__json_dup_scalar(const sa_mem *mem, const cJSON *item, int *nomem);
/* sa__json_number for an item itself (array elements, bare values). */
int sa__json_as_number(const cJSON *item, double *out);

/* The raw text of the value at `path` in a JSON text that sa__json_parse
 * accepted: path elements are object keys (compared with the raw key
 * bytes, first match as in cJSON) or "[0]" for the first element of an
 * array.  Used for numeric ids that must not go through a double.  Returns
 * 1 and sets *start / *n, or 0 when not found. */
int sa__json_raw_at(const char *text, size_t len, const char *const *path,
                   size_t npath, const char **start, size_t *n);

/* Append s as a JSON string literal (escaped; NULL -> null). */
int sa__json_put_string(sa__buf *b, const char *s);
/* Append any cJSON item (printed by cJSON, unformatted). */
int sa__json_put_item(sa__buf *b, const cJSON *item);

/* ================================================================== */
/* files.c (names of files and writes into a folder)                   */
/* ================================================================== */

/* "stem-n.ext" for name "stem.ext" (n >= 2) into out.  SA_OK or
 * SA_ERR_LIMIT (out too small). */
int sa__name_variant(const char *name, unsigned n, char *out, size_t outlen);

/* A set of names (hash set of copies, through mem). */
typedef struct sa__names {
    const sa_mem *mem;
    char **slot;
    size_t cap, n;
    const char *secret;  /* borrowed, or NULL: no name given shows it */
} sa__names;
void sa__names_init(sa__names *s, const sa_mem *mem);
void sa__names_free(sa__names *s);
int sa__names_has(const sa__names *s, const char *name);
int sa__names_add(sa__names *s, const char *name);      /* SA_OK / NOMEM */
/* `name` itself, or its first variant not in s, into out; added to s.
 * SA_OK, SA_ERR_NOMEM, SA_ERR_LIMIT. */
int sa__names_unique(sa__names *s, const char *name, char *out, size_t outlen);
/* The same for sa_file_name_clean(raw).  With s->secret set (the API
 * key), no name given holds it (see sa__has_secret): a cleaned name that
 * does is scrubbed and cleaned again, and variants that do are skipped. */
int sa__names_claim(sa__names *s, const char *raw, char *out, size_t outlen);

/* sa_folder_open with an allocator. */
int sa__folder_open(const sa_mem *mem, const char *path, sa_folder **out,
                    char *err, size_t errlen);
void sa__folder_free(sa_folder *f);
const char *sa__folder_path(const sa_folder *f);
/* Claim a unique cleaned name for a file to be written (see
 * sa__names_claim): files are committed under claimed names. */
int sa__folder_claim(sa_folder *f, const char *raw, char *out, size_t outlen);
/* Names claimed or committed in f never show secret (borrowed: it must
 * outlive every claim and commit; NULL: no check). */
void sa__folder_set_secret(sa_folder *f, const char *secret);

/* One file being written into a folder, streamed: a temporary file made
 * on the first write, then committed under its name (see files.c). */
typedef struct sa__file_out {
    sa_folder *dir;
    int fd;                  /* -1 until the first write */
    char tmp[40];            /* the temporary name, "" when none */
    uint64_t size;           /* bytes written */
} sa__file_out;
void sa__file_out_init(sa__file_out *o, sa_folder *dir);
/* SA_OK or SA_ERR_FILE (message in err). */
int sa__file_out_write(sa__file_out *o, const void *data, size_t len,
                      char *err, size_t errlen);
/* Empty the file again (a download that starts over). */
int sa__file_out_rewind(sa__file_out *o, char *err, size_t errlen);
/* Give the file the claimed name `name` or, when a file the folder did
 * not write has it (other bytes), its next free variant; the name used to
 * final.  On failure nothing is left.  SA_OK, SA_ERR_FILE, SA_ERR_NOMEM. */
int sa__file_out_commit(sa__file_out *o, const char *name, char *final,
                       size_t finallen, char *err, size_t errlen);
/* Remove the temporary file (nothing when committed). */
void sa__file_out_discard(sa__file_out *o);

/* ================================================================== */
/* image.c                                                             */
/* ================================================================== */

/* sa_image_probe_file on a descriptor the caller opened (and closes) and
 * checked to be a regular file: reads through pread(), offset untouched. */
int sa__image_probe_fd(int fd, sa_image_info *out);

/* ================================================================== */
/* catalog.c                                                           */
/* ================================================================== */

/* Index of an action name (0..31) in the published order, or -1. */
int sa__catalog_find(const char *name);
/* The tier of index i (SA_TIER_SD / SA_TIER_HD). */
int sa__catalog_tier(int i);
/* The same concern in the other tier ("wrinkle" <-> "hd_wrinkle",
 * "dark_circle_v2" <-> "hd_dark_circle"), or -1. */
int sa__catalog_counterpart(int i);
/* Units for n (1..16) unique actions of a tier, or -1. */
int sa__catalog_units(int tier, size_t n);

/* Validate a dst_actions list: every name known, one tier, 1..16 unique
 * names after removing duplicates.  On success writes the tier and the
 * unique names (borrowed from the catalogue, in first-seen order) to
 * unique[] (SA_MAX_ACTIONS entries) and their count.  Returns SA_OK or
 * SA_ERR_UNKNOWN_ACTION / SA_ERR_MIXED_TIERS / SA_ERR_ACTION_COUNT with a
 * message in err ("unknown action 'wrinkles' (did you mean 'wrinkle'?)"). */
int sa__catalog_check_actions(const char *const *actions, size_t n,
                             int *tier, const char **unique, size_t *n_unique,
                             char *err, size_t errlen);

/* Validate a miniserver_args JSON object text against the documented keys
 * (enable_mask_overlay; enable_/color_/opacity_dark_background_<hd concern>)
 * and their types (bool / 6-hex-digit string / number 0..1).  Returns
 * SA_OK or SA_ERR_BAD_OPTION with a message. */
int sa__catalog_check_miniserver_args(const cJSON *obj, char *err,
                                     size_t errlen);

/* 1 when `code` is a documented engine error code (API.md §8.3). */
int sa__catalog_engine_error_known(const char *code);
/* What a known engine error code means and what to do ("no face was
 * found; use a photo with one front-facing face"), or NULL. */
const char *sa__catalog_engine_error_hint(const char *code);
/* The result regions of action i, NULL-terminated ("whole" for concerns
 * without documented sub-regions), or NULL when i is out of range. */
const char *const *sa__catalog_regions(int i);

/* ================================================================== */
/* proto.c (sans-IO: builds bodies, parses and classifies answers)     */
/* ================================================================== */

typedef enum sa__step {
    SA__STEP_FILE_CREATE = 0,
    SA__STEP_UPLOAD,
    SA__STEP_TASK_CREATE,
    SA__STEP_POLL,
    SA__STEP__LAST
} sa__step;

/* Longest id (file_id, task_id) sa__proto_id_ok accepts. */
#define SA__MAX_ID_LEN 4096
/* 1 when s[0..n) can be an id (file_id, task_id): 1..SA__MAX_ID_LEN of
 * A-Z a-z 0-9 + / = - _ . ~ (base64, standard and URL-safe, and the
 * unreserved characters of a URL), not only dots.  The one id rule of the
 * core: ids in the server's answers and webhook payloads, and the task id
 * given to sa_client_resume.  An id goes into a URL only through
 * sa__urlencode (+ / = are percent-encoded). */
int sa__proto_id_ok(const char *s, size_t n);
/* The task id a caller gives (sa_client_resume, sa_client_delete): SA_OK,
 * or SA_ERR_SOURCE with why (the first rule it breaks) in why[0..why_len)
 * (util.c). */
int sa__task_id_check(const char *task_id, char *why, size_t why_len);
/* The start of a client call that makes a job into *out (request.c):
 * *out = NULL; SA_ERR_INVALID_ARGUMENT for no client or !args_ok (then
 * bad_args is the client's message), SA_ERR_BUSY while the client is
 * freed; else SA_OK with the client's message cleared. */
int sa__job_call_begin(sa_client *c, sa_job **out, int args_ok,
                       const char *bad_args);

/* Path of each endpoint, e.g. "/s2s/v2.1/task/skin-analysis". */
const char *sa__proto_file_path(int api_version, int upload_path);
const char *sa__proto_task_path(int api_version);

/* {"files":[{"content_type":..,"file_name":..,"file_size":..}]} */
char *sa__proto_file_create_body(const sa_mem *mem, const char *content_type,
                                const char *file_name, uint64_t file_size);

typedef struct sa__upload_spec {
    char *method;        /* "PUT" */
    char *url;           /* pre-signed URL */
    char **headers;      /* "Name: value" lines, verbatim values: only those
                            of sa__proto_upload_header_allowed */
    size_t n_headers;
    char unusable[160];  /* why the slot cannot be used ("" when it can);
                            method, url and headers are then NULL */
} sa__upload_spec;
void sa__upload_spec_free(const sa_mem *mem, sa__upload_spec *u);

/* 1 when an upload header the file-create answer lists is one a pre-signed
 * PUT may need, and so is sent: Content-Type, Content-MD5,
 * Content-Encoding, Content-Language, Content-Disposition, Cache-Control,
 * Expires, and the storage services' own x-amz-*, x-goog-*, x-ms-*
 * (case-insensitive).  Content-Length is kept too, to be checked against
 * the image size (libcurl sends the size itself).  Anything else (Host,
 * Cookie, Authorization, Transfer-Encoding, Connection, ...) is dropped. */
int sa__proto_upload_header_allowed(const char *name);

/* Parse a 200 file-create body: data.files[0].file_id and requests[0].
 * Header values may be strings or numbers.  Returns SA_OK,
 * SA_ERR_PROTOCOL (with message), SA_ERR_LIMIT, SA_ERR_NOMEM.  An answer
 * that is readable but whose slot cannot be used (a URL that is not
 * http(s) or not one printable line, a method that is no token, an
 * allowed header whose value cannot be sent) gives SA_OK, the file id and
 * upload->unusable: asking again would not get a better slot. */
int sa__proto_parse_file_create(const sa_mem *mem, const char *body,
                               size_t len, int max_depth, char **file_id,
                               sa__upload_spec *upload, char *err,
                               size_t errlen);

typedef struct sa__task_params {
    const char *src_file_id;     /* exactly one of these two */
    const char *src_file_url;
    const char *const *actions;  /* unique, validated */
    size_t n_actions;
    int format;                  /* sa_format */
    int api_version;             /* SA_API_V2_0 / SA_API_V2_1 */
    int pf_camera_kit;           /* -1 = omit */
    int mask_overlay;            /* -1 = omit */
    const cJSON *miniserver_args;/* validated extra keys, or NULL */
} sa__task_params;

/* The task-create JSON body, or NULL on NOMEM. */
char *sa__proto_task_body(const sa_mem *mem, const sa__task_params *p);

/* Parse a 200 task-create body: data.task_id (string; a number is kept as
 * its integer text). */
int sa__proto_parse_task_create(const sa_mem *mem, const char *body,
                               size_t len, int max_depth, char **task_id,
                               char *err, size_t errlen);

typedef enum sa__task_status {
    SA__TASK_RUNNING = 0,
    SA__TASK_SUCCESS = 1,
    SA__TASK_ERROR = 2,
    SA__TASK_UNKNOWN = 3       /* a task_status string the API does not
                                 document ("queued"): not finished yet */
} sa__task_status;

typedef struct sa__status_info {
    int task_status;          /* sa__task_status */
    long polling_interval_ms; /* data.polling_interval, -1 when absent */
    char *engine_error;       /* data.error on task error (open string) */
    char *engine_message;     /* data.error_message */
    sa_result *result;        /* on success; owned by the caller */
    char unknown_status[64];  /* SA__TASK_UNKNOWN: the string, redacted and
                                 cut to fit (for a log line); else "" */
} sa__status_info;
void sa__status_info_free(const sa_mem *mem, sa__status_info *s);

/* Parse a 200 status body.  Returns SA_OK (any task_status string: one the
 * API does not document is SA__TASK_UNKNOWN), SA_ERR_PROTOCOL (not JSON, no
 * data object, no task_status string, a success without usable results),
 * SA_ERR_LIMIT, SA_ERR_NOMEM. */
int sa__proto_parse_status(const sa_mem *mem, const char *body, size_t len,
                          int max_depth, const char *task_id,
                          sa__status_info *out, char *err, size_t errlen);

typedef struct sa__api_error {
    int status;          /* the sa_status this answer means */
    long http_status;
    char *error_code;    /* body error_code, or NULL */
    char *message;       /* body error / S3 <Message>, or NULL */
} sa__api_error;
void sa__api_error_free(const sa_mem *mem, sa__api_error *e);

/* Classify a non-2xx answer of `step` (sa__step): 401 -> AUTH; 429 ->
 * RATE_LIMITED; 400 CreditInsufficiency -> CREDITS; POLL 400 "Invalid task
 * ID" / InvalidTaskId / 404 -> TASK_EXPIRED; POLL 500 "Task execution timed
 * out" -> TASK_TIMEOUT; other 5xx -> SERVER; UPLOAD 4xx -> UPLOAD; other
 * 4xx -> BAD_REQUEST.  Works for non-JSON bodies (HTML gateways, S3 XML).
 * Fills *out (free with sa__api_error_free) and returns out->status. */
int sa__proto_classify(const sa_mem *mem, int step, long http_status,
                      const char *body, size_t len, int max_depth,
                      sa__api_error *out);

/* ================================================================== */
/* result.c, result_files.c                                            */
/* ================================================================== */

/* Build a result from data.results of a success status (object with
 * output[] or url, or a bare string URL).  The result has no JSON text
 * yet (sa_result_json gives NULL): the caller that holds the body adds the
 * raw text of data.results with sa__result_set_raw_json (nothing is
 * re-printed). */
int sa__result_from_results(const sa_mem *mem, const cJSON *results,
                           const char *task_id, sa_result **out,
                           char *err, size_t errlen);
/* Build a result from a parsed score_info.json object. */
int sa__result_from_score_info(const sa_mem *mem, const cJSON *root,
                              const char *task_id, sa_result **out,
                              char *err, size_t errlen);

/* Set the text sa_result_json returns to a copy of text[0..len) (the raw
 * bytes of data.results in a status body, or a score_info.json document),
 * replacing any earlier one.  SA_OK, SA_ERR_NOMEM, SA_ERR_INVALID_ARGUMENT. */
int sa__result_set_raw_json(sa_result *r, const char *text, size_t len);
/* Record the URL a ZIP result was downloaded from (sa_result_zip_url),
 * for results parsed from the ZIP's bytes.  SA_OK, SA_ERR_NOMEM or
 * SA_ERR_INVALID_ARGUMENT. */
int sa__result_set_zip_url(sa_result *r, const char *url);
/* The same with cJSON's unformatted printing of item: only a fallback for
 * when the raw bytes of the item cannot be located. */
int sa__result_set_json_item(sa_result *r, const cJSON *item);

/* A deep copy of a result (scores, URLs, files), allocated through mem. */
int sa__result_clone(const sa_mem *mem, const sa_result *src,
                    sa_result **out);
/* The same without the files (the scores, URLs and JSON text only). */
int sa__result_clone_scores(const sa_mem *mem, const sa_result *src,
                           sa_result **out);
/* When a string of src (a concern, region or skin type, a mask name or
 * URL, the task id, the raw JSON, a file name or path) holds the secret
 * (see sa__scrub), *out is a deep copy with every string scrubbed (file
 * bytes unchanged, a file on disk still a name and a path); otherwise
 * *out is NULL.  SA_OK or SA_ERR_NOMEM. */
int sa__result_scrub(const sa_mem *mem, const sa_result *src,
                    const char *secret, sa_result **out);
/* The same, except that the copy takes src's files over instead of
 * copying them: their bytes are never copied (what a result's files take
 * in memory stays within max_files_bytes), and src is left with no file.
 * mem must be the allocator of src.  On failure src is unchanged. */
int sa__result_scrub_take(const sa_mem *mem, sa_result *src,
                         const char *secret, sa_result **out);
/* Add a file (a mask, the resized image) to a result: copies name and
 * bytes; the format is sniffed from the bytes.  SA_OK or SA_ERR_NOMEM. */
int sa__result_add_file(sa_result *r, const char *name, const void *data,
                       size_t len);
/* The same, taking `data` (len bytes, allocated through the result's
 * allocator) instead of copying it: it is freed on failure too. */
int sa__result_add_file_owned(sa_result *r, const char *name, char *data,
                             size_t len);
/* Add a file written to disk: its name, its path, its sniffed format; no
 * bytes.  SA_OK or SA_ERR_NOMEM. */
int sa__result_add_file_path(sa_result *r, const char *name, const char *path,
                            int format);
/* The sa_image_format of bytes. */
int sa__result_sniff_format(const void *data, size_t len);
/* The i-th URL of sa__result_urls, or NULL. */
const char *sa__result_url_at(const sa_result *r, size_t i);
/* Every downloadable URL of a result, in a stable order: each score's
 * mask_urls, then the resized image.  Returns the count; *urls (borrowed)
 * may be NULL to count only. */
size_t sa__result_urls(const sa_result *r, const char **urls, size_t max);
/* The URL in r whose file name (last path segment, query removed) equals
 * `file_name`, or NULL: used to refresh an expired URL from a newer
 * status answer. */
const char *sa__result_find_url(const sa_result *r, const char *file_name);
/* The file name of a URL (last path segment, query removed, %-decoding
 * not applied, "/" and ".." never returned) into buf; "" if none. */
void sa__url_file_name(const char *url, char *buf, size_t len);

/* ================================================================== */
/* zipresult.c                                                         */
/* ================================================================== */

/* Parse a result ZIP (see sa_result_parse_zip) with the allocator mem;
 * the images kept add up to at most max_total bytes (0: 8 times the entry
 * bound). */
int sa__result_from_zip(const sa_mem *mem, const void *zip, size_t len,
                       size_t max_entry_bytes, size_t max_total,
                       const char *task_id, sa_result **out, char *err,
                       size_t errlen);

/* limiter.c and sched.c: the rate limiter and which waiting request goes
 * next (their interface) */
#include "sa_sched.h"

/* ================================================================== */
/* job.c (sans-IO state machine of one analysis)                       */
/* ================================================================== */

typedef enum sa__http_method {
    SA__HTTP_GET = 0,
    SA__HTTP_POST,
    SA__HTTP_PUT
} sa__http_method;

/* A request the job wants sent.  All pointers are owned by the job and
 * stay valid until the next sa__jobsm_on_response / sa__jobsm_free. */
typedef struct sa__http_request {
    int step;                  /* sa__step */
    int method;                /* sa__http_method */
    const char *url;           /* absolute */
    int api_host;              /* 1: API host: add Authorization: Bearer,
                                  counts against the limiter.  0: upload /
                                  result host: NEVER add Authorization */
    const char *const *headers;/* extra "Name: value" lines */
    size_t n_headers;
    const char *body;          /* POST body (JSON), or NULL */
    size_t body_len;
    const char *upload_file;   /* PUT: stream this file ... */
    const void *upload_buf;    /* ... or these bytes */
    uint64_t upload_size;      /* exact Content-Length */
    long timeout_ms;           /* whole request */
    size_t max_body;           /* 0: the client's max_body_bytes; else the
                                  answer's size limit for this request
                                  (result downloads: SA__FETCH_MAX_BODY) */
    int fresh_connection;      /* 1: send on a new connection, never on a
                                  reused one (libcurl may silently resend a
                                  request whose reused connection died; the
                                  client sets it for task create; the
                                  engine never looks at `step`) */
    long low_speed_limit;      /* fail SA_ERR_TIMEOUT below this many
                                  bytes/s ... */
    long low_speed_time_ms;    /* ... for this long; either 0: never */
    /* Where the body of a 2xx answer goes instead of memory (result
     * downloads, set by the client): called with each chunk, and the size
     * the server announced (-1 when unknown), from inside libcurl's write
     * callback (it must not call the engine).  Returns SA_OK or a status
     * that ends the transfer with that status as resp->transport and msg
     * as its message.  The body of any other answer is kept in memory as
     * usual, at most 64 KiB of it.  max_body bounds what the sink gets. */
    int (*sink)(void *ud, const void *data, size_t len, int64_t announced,
                char *msg, size_t msglen);
    void *sink_ud;
} sa__http_request;

/* The job's own step beyond proto's four: a GET of a result URL (result
 * ZIP, mask, resized image) from the result host, never with the key. */
#define SA__STEP_FETCH ((int)SA__STEP__LAST)
/* An account request (balance, price list page, task delete: account.c),
 * to the API host, with the key, through the limiter. */
#define SA__STEP_ACCOUNT ((int)SA__STEP__LAST + 1)
/* Size limit of one result download (a ZIP with every HD mask). */
#define SA__FETCH_MAX_BODY ((size_t)64 << 20)

/* What happened to a request. */
typedef struct sa__http_response {
    int transport;           /* SA_OK when an HTTP answer arrived, else
                                SA_ERR_TRANSPORT / SA_ERR_TIMEOUT /
                                SA_ERR_LIMIT (body too big) / SA_ERR_FILE
                                (upload file unreadable) / SA_ERR_NOMEM */
    int not_sent;            /* 1 when certainly no byte of the request
                                reached the server (DNS or connect failed,
                                or the limiter/engine never sent it) */
    const char *transport_msg; /* libcurl's message, or NULL */
    long http_status;
    const char *body;        /* may be NULL when body_len == 0 */
    size_t body_len;
    const char *request_id;  /* x-request-id header, or NULL */
} sa__http_response;

typedef enum sa__next_kind {
    SA__NEXT_SEND = 0,        /* send *req, then call sa__jobsm_on_response */
    SA__NEXT_WAIT,            /* nothing to do before wake_at_ms */
    SA__NEXT_END              /* terminal: see sa__jobsm_state/status */
} sa__next_kind;

typedef struct sa__next {
    int kind;                    /* sa__next_kind */
    const sa__http_request *req;  /* SEND */
    int64_t wake_at_ms;          /* WAIT */
} sa__next;

/* Everything the state machine needs, resolved and validated by the
 * client (which did the file I/O of validation). */
typedef struct sa__job_config {
    const sa_mem *mem;
    const char *base_url;        /* no trailing slash */
    int api_version;             /* SA_API_V2_0 / V2_1 */
    int upload_path;             /* sa_upload_path */

    /* source: exactly one */
    const char *file_path;       /* upload from disk */
    const void *buffer;          /* upload from memory (borrowed) */
    uint64_t file_size;          /* for file_path / buffer */
    const char *content_type;    /* "image/jpeg" / "image/png" */
    const char *file_name;
    const char *image_url;       /* src_file_url */
    const char *file_id;         /* src_file_id */
    const char *task_id;         /* resume: poll this existing task (no
                                    source, no actions: nothing is
                                    created) */

    sa__task_params task;         /* actions etc. (src fields filled by job) */

    long request_timeout_ms;
    long upload_timeout_ms;
    long poll_interval_ms;
    long max_poll_interval_ms;
    int64_t deadline_at_ms;      /* absolute */
    int max_polls;               /* 0: no bound */
    int max_retries;
    long backoff_initial_ms;
    long backoff_max_ms;
    int max_json_depth;
    uint64_t *rng;               /* jitter source, owned by the client */
    size_t max_files_bytes;      /* a ZIP result's images (0: 256 MiB) */
    long low_speed_limit;        /* result downloads (see sa__http_request) */
    long low_speed_time_ms;
    struct sa__pollplan *plan;    /* the client's poll planner (pollplan.c),
                                    updated by the machine; NULL: fixed */
} sa__job_config;

typedef struct sa__jobsm sa__jobsm;

/* Create a state machine in FILE_CREATE (or TASK_CREATE when the source is
 * image_url / file_id; or POLLING, its first poll due at once, when cfg
 * resumes an existing task: task_id).  Copies everything in cfg (not
 * buffer).  Returns SA_OK or SA_ERR_NOMEM. */
int sa__jobsm_new(const sa__job_config *cfg, int64_t now_ms, sa__jobsm **out);
void sa__jobsm_free(sa__jobsm *sm);

/* What to do next at now_ms.  While a request is out (after SEND and before
 * on_response) it answers WAIT with wake_at_ms = INT64_MAX... unless the
 * deadline passes.  Returns SA_OK or SA_ERR_NOMEM. */
int sa__jobsm_next(sa__jobsm *sm, int64_t now_ms, sa__next *out);
/* Feed the outcome of the request last asked for. */
int sa__jobsm_on_response(sa__jobsm *sm, int64_t now_ms,
                         const sa__http_response *resp);
/* Cancel: when no task exists and none may exist, the machine ends
 * CANCELLED (returns 0).  When a task exists or may exist and abandon is 0,
 * it keeps polling that task to its end (returns 1: keep driving it).  With
 * abandon != 0 it ends CANCELLED at once (returns 0). */
int sa__jobsm_cancel(sa__jobsm *sm, int64_t now_ms, int abandon);

int sa__jobsm_state(const sa__jobsm *sm);        /* sa_job_state */
int sa__jobsm_status(const sa__jobsm *sm);       /* as sa_job_status */
const char *sa__jobsm_errmsg(const sa__jobsm *sm);
int sa__jobsm_http_status(const sa__jobsm *sm);
const char *sa__jobsm_api_error_code(const sa__jobsm *sm);
const char *sa__jobsm_engine_error(const sa__jobsm *sm);
const char *sa__jobsm_task_id(const sa__jobsm *sm);
const char *sa__jobsm_file_id(const sa__jobsm *sm);
const char *sa__jobsm_request_id(const sa__jobsm *sm);
int sa__jobsm_polls(const sa__jobsm *sm);
/* 1 when a task exists or may exist (task create sent, not refused). */
int sa__jobsm_task_maybe_created(const sa__jobsm *sm);
/* The result once DONE (owned by the machine), else NULL. */
const sa_result *sa__jobsm_result(const sa__jobsm *sm);
/* The same result, for the job's publishing only (sa__result_scrub_take
 * may take its files over). */
sa_result *sa__jobsm_result_own(sa__jobsm *sm);

/* "FILE_CREATE", ... for a sa_job_state; "?" when out of range (the table
 * behind the public sa_job_state_name). */
const char *sa__jobsm_state_name(int state);
/* 1 while the public outcome is already fixed (sa__jobsm_state terminal:
 * deadline or cancel) but the machine still polls a task that exists or may
 * exist: keep calling sa__jobsm_next until it answers END. */
int sa__jobsm_background(const sa__jobsm *sm);
/* What the machine's own work came to.  Equals sa__jobsm_status (and *msg
 * sa__jobsm_errmsg) unless the outcome was fixed early; then it is what the
 * background polling found: SA_ERR_NOT_DONE while it runs, SA_OK when the
 * task succeeded (it may be billed), else the failure, with a message for
 * the log in *msg (borrowed, never NULL). */
int sa__jobsm_task_outcome(const sa__jobsm *sm, const char **msg);

/* A line for the client's log that the machine has to say once (an
 * unknown task_status): written to buf (cut to len), returns 1; else 0. */
int sa__jobsm_take_notice(sa__jobsm *sm, char *buf, size_t len);
/* 1 when the machine resumed an existing task (cfg task_id). */
int sa__jobsm_resumed(const sa__jobsm *sm);

/* Webhook help: a machine waiting to poll its task (POLL_WAIT, or BACKOFF
 * after a failed poll) polls at now_ms instead.  Returns 1 when it was
 * waiting to poll, else 0 (nothing changes).  A poll already queued or
 * on its way: noted (returns 1); if it answers running, the next poll
 * goes at the least gap instead of the planned one. */
int sa__jobsm_poll_now(sa__jobsm *sm, int64_t now_ms);
/* The poll the machine handed out was sent at now_ms (it may have waited
 * in the limiter queue): the planner times its durations from then. */
void sa__jobsm_note_sent(sa__jobsm *sm, int64_t now_ms);

/* -- Result downloads (sa_client_fetch) --
 * A download machine GETs one result URL (api_host 0, SA__STEP_FETCH, with
 * the low-speed cut-off of cfg), retrying transport errors (a low-speed
 * cut-off included), 429 and 5xx like a poll.  A 403 (an expired
 * pre-signed URL) makes it poll task_id once (api_host 1, SA__STEP_POLL,
 * state FETCHING) for a fresh URL of the same file and try again;
 * refused again: FAILED SA_ERR_URL_EXPIRED.  Other non-2xx: FAILED
 * SA_ERR_DOWNLOAD.  DONE: the bytes are in sa__jobsm_download_data (none
 * when the client gave the request a sink).  It uses base_url,
 * api_version, upload_timeout_ms (per download), request_timeout_ms,
 * max_poll_interval_ms, deadline_at_ms, max_polls, max_retries,
 * backoff_*, max_json_depth, low_speed_* and rng of cfg; cancel ends it
 * at once.  Returns SA_OK, SA_ERR_INVALID_ARGUMENT or SA_ERR_NOMEM. */
int sa__jobsm_new_download(const sa__job_config *cfg, const char *url,
                          const char *task_id, int64_t now_ms,
                          sa__jobsm **out);
/* The download's URL is the index-th of its result (sa__result_urls
 * order): a fresh URL is then the one at the same place in the fresh
 * answer, when it has the same file name (several URLs may end in the
 * same name).  Without it, the first URL with that file name. */
void sa__jobsm_download_set_index(sa__jobsm *sm, size_t index);
/* A DONE download's bytes (owned by the machine), else NULL / 0. */
const void *sa__jobsm_download_data(const sa__jobsm *sm, size_t *len);
/* The file name of the download's URL (sa__url_file_name); never NULL. */
const char *sa__jobsm_download_name(const sa__jobsm *sm);

/* A fetch machine is the public side of sa_client_fetch: it sends nothing
 * itself.  Its result is a clone of src (with src's files when with_files,
 * else the scores only); the URLs to download are src's (sa__result_urls),
 * none when src already holds files (a ZIP result).  It stays FETCHING
 * while the client runs downloads and reports them, each on its own: a
 * failure does not stop the others.  Once every URL was handed out and
 * reported it ends DONE when none failed, else FAILED with the status and
 * message of the first failure in URL order (counting the others); at
 * its deadline it ends FAILED SA_ERR_DEADLINE.  Its result stays readable
 * (sa__jobsm_result) when it ends FAILED: the files that did arrive. */
int sa__jobsm_new_fetch(const sa__job_config *cfg, const sa_result *src,
                       int with_files, int64_t now_ms, sa__jobsm **out);
/* The next URL to download (borrowed until sa__jobsm_free) and its index
 * among the result's URLs, counted as started; NULL when none is left. */
const char *sa__jobsm_fetch_next(sa__jobsm *sm, size_t *index);
/* The download of URL `index` ended: SA_OK (its file was added to
 * sa__jobsm_fetch_result by the client), or a failure (status, msg). */
void sa__jobsm_fetch_done(sa__jobsm *sm, size_t index, int status,
                         const char *msg);
/* Record a failure that is not a download (writing a ZIP result's file):
 * it counts after every URL. */
void sa__jobsm_fetch_fail(sa__jobsm *sm, int status, const char *msg);
/* The result a fetch builds, for the client to add files to; NULL for
 * another kind of machine. */
sa_result *sa__jobsm_fetch_result(sa__jobsm *sm);

/* ================================================================== */
/* engine*.c (libcurl multi: runs the requests jobs ask for; the only  */
/* I/O and the only clock read of the library)                         */
/* ================================================================== */

#include "engine.h"

/* ================================================================== */
/* client.c (the public sa_client / sa_job API on top of job + engine) */
/* ================================================================== */

/* For tests: the client's engine totals (see sa__engine_stats). */
void sa__client_stats(const sa_client *c, long *transfers, long *connects);
/* For tests: the most uploads that were in flight at once, and the most
 * finished transfers one non-blocking call reported (see "Bounded steps"
 * in docs/architecture.md). */
void sa__client_peaks(const sa_client *c, int *uploads, int *done_per_step);

/* ================================================================== */
/* account.c (the answers of the account endpoints, API.md 17.1)      */
/* ================================================================== */

enum { SA__ACCOUNT_CREDIT = 1, SA__ACCOUNT_PRICES, SA__ACCOUNT_DELETE };
typedef struct sa__account sa__account;

/* An empty account reading for op (SA_ACCOUNT_*); its strings will be
 * scrubbed of secret (copied; may be NULL).  SA_OK or SA_ERR_NOMEM. */
int sa__account_new(const sa_mem *mem, int op, const char *secret,
                    sa__account **out);
void sa__account_free(sa__account *a);
int sa__account_op(const sa__account *a);
/* Read one 2xx answer: SA_OK (*more: another price list page is to be
 * read), SA_ERR_PROTOCOL / SA_ERR_LIMIT with the reason in why, or
 * SA_ERR_NOMEM.  A delete's 2xx is SA_OK whatever its body. */
int sa__account_feed(sa__account *a, const char *body, size_t len,
                     int max_depth, int *more, char *why, size_t whylen);
/* Path and query of the next GET (credit, or the next price list page). */
char *sa__account_path(const sa__account *a);
char *sa__account_delete_body(const sa_mem *mem, const char *task_id);
const sa_credit *sa__account_credit(const sa__account *a);
const sa_price_list *sa__account_prices(const sa__account *a);

/* An account machine (job_account.c): state FETCHING, step
 * SA__STEP_ACCOUNT; GETs the balance or every price list page, or POSTs
 * the delete of task_id.
 * Transport errors, 429, 5xx and unreadable 2xx are retried within
 * max_retries (backoff_*); other answers end it (classified as proto.c
 * does; a delete's InvalidTaskId is SA_ERR_TASK_EXPIRED, or DONE after an
 * attempt that may have deleted it).  Uses the settings of cfg that a
 * download uses.  SA_OK, SA_ERR_INVALID_ARGUMENT or SA_ERR_NOMEM. */
int sa__jobsm_new_account(const sa__job_config *cfg, int op,
                         const char *task_id, const char *secret,
                         int64_t now_ms, sa__jobsm **out);
/* The reading of a DONE account machine, else NULL. */
const sa__account *sa__jobsm_account(const sa__jobsm *sm);

/* pollplan.c: when a running task is polled (its interface) */
#include "pollplan.h"

#endif /* SA_INTERNAL_H */
