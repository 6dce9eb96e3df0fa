/* status.c - names, messages and classification of sa_status codes. */
#include "sa_internal.h"

#include <stddef.h>

typedef struct status_entry {
    int code;
    const char *name;    /* the enum name without SA_ERR_, lower case */
    const char *message; /* what happened and what to do */
} status_entry;

static const status_entry status_table[] = {
    {SA_OK, "ok", "success"},
    {SA_ERR_NOMEM, "nomem", "out of memory"},
    {SA_ERR_INVALID_ARGUMENT, "invalid_argument",
     "invalid argument: a NULL handle, a bad option value or a misuse of "
     "the API; see the function's documentation"},
    {SA_ERR_BUSY, "busy",
     "not allowed now (for example from inside a callback); call it after "
     "the callback returns"},
    {SA_ERR_NOT_DONE, "not_done",
     "the job has not ended yet; wait for it or step the client"},
    {SA_ERR_INIT, "init",
     "library initialisation failed or sa_global_init() was not called"},
    {SA_ERR_UNKNOWN_ACTION, "unknown_action",
     "unknown dst_action name; use one of the 32 documented actions"},
    {SA_ERR_MIXED_TIERS, "mixed_tiers",
     "SD and HD actions in one request; use only SD names or only HD "
     "(hd_*) names"},
    {SA_ERR_ACTION_COUNT, "action_count",
     "give between 1 and 16 unique actions"},
    {SA_ERR_SOURCE, "source",
     "set exactly one image source: a file path, a buffer, an image URL or "
     "a file id"},
    {SA_ERR_FILE, "file", "the image file is missing or cannot be read"},
    {SA_ERR_IMAGE_FORMAT, "image_format",
     "the image is not a JPEG or PNG (by its content) or its header is "
     "damaged; convert it to JPEG or PNG"},
    {SA_ERR_IMAGE_TOO_LARGE, "image_too_large",
     "the image file has 10,000,000 bytes or more; shrink or recompress it"},
    {SA_ERR_IMAGE_TOO_SMALL, "image_too_small",
     "the image's short side is below 480 px (SD) or 1080 px (HD); use a "
     "larger photo or SD actions"},
    {SA_ERR_BAD_OPTION, "bad_option",
     "an invalid request option (miniserver_args, format, pf_camera_kit on "
     "v2.0, ...); see the message for the field"},
    {SA_ERR_INSECURE, "insecure",
     "plain http:// to a host that is not loopback; use https:// or set "
     "allow_insecure_http"},
    {SA_ERR_AUTH, "auth",
     "the API key was refused (401); check the key in the API console"},
    {SA_ERR_CREDITS, "credits",
     "not enough units for this task (CreditInsufficiency); top up the "
     "account"},
    {SA_ERR_BAD_REQUEST, "bad_request",
     "the API refused the request (4xx); see the message for the reason"},
    {SA_ERR_RATE_LIMITED, "rate_limited",
     "the API kept answering 429 Too many requests after every retry; "
     "slow down and try later"},
    {SA_ERR_SERVER, "server",
     "the API kept failing with 5xx after every retry; try again later"},
    {SA_ERR_PROTOCOL, "protocol",
     "the API sent a response this client cannot understand"},
    {SA_ERR_UPLOAD, "upload",
     "the storage host refused the image upload; create a new file slot "
     "and upload again"},
    {SA_ERR_ENGINE, "engine",
     "the analysis ended with an engine error (see the engine error code, "
     "e.g. error_no_face); fix the photo and submit again"},
    {SA_ERR_TASK_EXPIRED, "task_expired",
     "the task id is unknown or expired (400 Invalid task ID); submit a new "
     "task"},
    {SA_ERR_TASK_TIMEOUT, "task_timeout",
     "the server gave up on the task (Task execution timed out); submit it "
     "again"},
    {SA_ERR_AMBIGUOUS, "ambiguous",
     "task create failed after the request may have reached the server: a "
     "task may exist and may be billed; check before resubmitting"},
    {SA_ERR_TRANSPORT, "transport",
     "network failure (DNS, connect, TLS or a reset connection); check "
     "connectivity and try again"},
    {SA_ERR_TIMEOUT, "timeout",
     "an HTTP request took too long; try again or raise the timeout"},
    {SA_ERR_DEADLINE, "deadline",
     "the job's total deadline passed before the task ended"},
    {SA_ERR_LIMIT, "limit",
     "a response exceeded a configured limit (body size, JSON depth or "
     "poll count)"},
    {SA_ERR_WAIT_TIMEOUT, "wait_timeout",
     "the wait timed out; the job is still running and can be waited on "
     "again"},
    {SA_ERR_INTERRUPTED, "interrupted",
     "the wait was interrupted; the job is still running and can be waited "
     "on again"},
    {SA_ERR_CANCELLED, "cancelled", "the job was cancelled or abandoned"},
    {SA_ERR_CALLBACK, "callback",
     "a callback returned non-zero and the job was cancelled"},
    {SA_ERR_ZIP, "zip",
     "the result ZIP is corrupt or has no skinanalysisResult/score_info.json; "
     "download it again or poll the task for a fresh URL"},
    {SA_ERR_URL_EXPIRED, "url_expired",
     "a result or mask URL was refused as expired even after fetching fresh "
     "URLs; the task may be past its retention, submit it again"},
    {SA_ERR_DOWNLOAD, "download",
     "a result or mask download failed (network or storage host error); "
     "try again"},
    {SA_ERR_IMAGE_DECODE, "image_decode",
     "an image could not be decoded (corrupt or unsupported JPEG/PNG); "
     "check the source photo and the masks"},
    {SA_ERR_WEBHOOK_SIGNATURE, "webhook_signature",
     "no valid webhook signature: check the webhook secret and pass the raw "
     "body bytes exactly as received"},
    {SA_ERR_WEBHOOK_STALE, "webhook_stale",
     "the webhook timestamp is outside the tolerance (a replay or a wrong "
     "clock); reject the delivery"},
};

static const status_entry *status_find(int status)
{
    size_t i;
    for (i = 0; i < sizeof status_table / sizeof status_table[0]; i++)
        if (status_table[i].code == status) return &status_table[i];
    return NULL;
}

const char *sa_strerror(int status)
{
    const status_entry *e = status_find(status);
    return e ? e->message : "unknown status code";
}

const char *sa_status_name(int status)
{
    const status_entry *e = status_find(status);
    return e ? e->name : "unknown";
}

/* Transient conditions only.  TASK_TIMEOUT is final for the job (the
 * server gave up: resubmitting is a new, billed task), AMBIGUOUS must not
 * be retried blindly, DEADLINE/LIMIT would fail the same way again.
 * DOWNLOAD is a failed result/mask fetch: trying again may work (an
 * expired URL is URL_EXPIRED, which is final). */
int sa_status_is_retryable(int status)
{
    switch (status) {
    case SA_ERR_TRANSPORT:
    case SA_ERR_TIMEOUT:
    case SA_ERR_RATE_LIMITED:
    case SA_ERR_SERVER:
    case SA_ERR_DOWNLOAD:
        return 1;
    default:
        return 0;
    }
}

int sa_status_is_validation(int status)
{
    return status <= SA_ERR_UNKNOWN_ACTION && status >= SA_ERR_INSECURE;
}
