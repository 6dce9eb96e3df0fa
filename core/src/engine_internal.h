/* engine_internal.h - the engine's private state, shared by engine*.c. */
#ifndef SA_ENGINE_INTERNAL_H
#define SA_ENGINE_INTERNAL_H

#include "sa_internal.h"

#include <curl/curl.h>

#include <stddef.h>
#include <stdint.h>

/* The blocking and non-blocking drive modes run libcurl's socket API on an
 * epoll set of their own where there is one (engine_loop.c). */
#if defined(__linux__) && !defined(SA_NO_EPOLL)
#define SA_HAVE_EPOLL 1
#include <sys/epoll.h>
#include <sys/eventfd.h>
/* Most socket events handled per sa__engine_perform. */
#define EPOLL_BATCH 64
#endif

#define ENGINE_ERRLEN 512
#define REQUEST_ID_MAX 128
#define SINK_MSG_LEN 256

struct sa__xfer {
    sa__engine *e;
    CURL *h;
    sa__xfer *prev, *next;          /* in e->busy */
    sa__xfer *add_next;             /* in e->to_add, while not added */
    int added;                     /* handed to the multi handle */
    void *owner;
    struct curl_slist *headers;
    sa__buf body;
    char errbuf[CURL_ERROR_SIZE];
    char request_id[REQUEST_ID_MAX];
    /* upload source: a file descriptor or a caller's buffer */
    int fd;
    const unsigned char *up_buf;
    uint64_t up_size;
    uint64_t up_pos;
    /* request facts kept for the log line and the error mapping */
    int method;
    int api_host;
    char *url;                     /* a copy, for log lines */
    int64_t started_ms;
    /* why a callback stopped the transfer */
    int body_overflow;
    int body_nomem;
    int read_error;
    int read_errno;
    /* the body sink of a 2xx answer (sa__http_request.sink) */
    int (*sink)(void *ud, const void *data, size_t len, int64_t announced,
                char *msg, size_t msglen);
    void *sink_ud;
    int sink_mode;                 /* 0 not known yet, 1 sink, 2 memory */
    uint64_t received;             /* bytes handed to the sink */
    int sink_error;                /* the sink's status, or SA_OK */
    char sink_msg[SINK_MSG_LEN];
};

struct sa__engine {
    const sa_mem *mem;
    CURLM *multi;
    sa__engine_hooks hooks;
    char *api_key;
    char *auth_header;             /* "Authorization: Bearer KEY" */
    char *user_agent;
    char *ca_bundle;
    char *proxy;
    long connect_timeout_ms;
    int max_connections;
    size_t max_body_bytes;
    sa__xfer *busy;                 /* transfers in flight */
    int n_busy;
    int event_mode;
    long transfers;
    long connects;
    int batch;                     /* bound of a round (sa__engine_set_batch) */
    int64_t budget_end;            /* its time budget ends (us); 0: none */
    int pending;                   /* finished transfers not reported yet */
    /* transfers sent but not yet handed to libcurl (see add_started):
     * a FIFO, head and tail */
    sa__xfer *to_add, *to_add_tail;
    int events_left;               /* a bounded round left socket events */
#ifdef SA_HAVE_EPOLL
    /* the internal loop (no event hooks): sockets libcurl asks to watch,
     * the eventfd of sa__engine_wakeup, events sa__engine_wait saw and
     * sa__engine_perform has not handled yet */
    int epfd;
    int wakefd;
    int n_ready;
    struct epoll_event ready[EPOLL_BATCH];
#endif
    char errmsg[ENGINE_ERRLEN];
};

/* engine.c: shared helpers, teardown of a transfer, completion */
void sa__eng_log(sa__engine *e, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The message of a failed send (it reaches the job's message): redacted,
 * so neither the key nor a signed query string can show. */
void sa__eng_err(sa__engine *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
const char *sa__eng_method(int m);
void sa__eng_push(sa__xfer **head, sa__xfer *x);
void sa__eng_unlink(sa__xfer **head, sa__xfer *x);
void sa__eng_release(sa__engine *e, sa__xfer *x);
/* Report one finished transfer to its owner (the done hook), free it. */
void sa__eng_finish(sa__engine *e, sa__xfer *x, CURLcode code);

/* engine_loop.c: the internal loop's epoll set, the round's time budget */
#ifdef SA_HAVE_EPOLL
int sa__eng_loop_open(sa__engine *e);
#endif
int sa__eng_over_budget(const sa__engine *e);

#endif
