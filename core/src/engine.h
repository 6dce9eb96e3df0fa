/* engine.h - the engine's interface: what the client asks of libcurl.
 *
 * Part of sa_internal.h, which includes it where the engine's section
 * would be: include sa_internal.h, not this file.  The engine (engine.c,
 * engine_send.c, engine_loop.c) runs the requests jobs ask for; it is the
 * only I/O and the only clock read of the library.  Every symbol here is
 * hidden (not SA_API).
 */
#ifndef SA_ENGINE_H
#define SA_ENGINE_H

typedef struct sa__engine sa__engine;
typedef struct sa__xfer sa__xfer;   /* one request in flight */

/* What the engine tells its owner (the client).  Every function pointer
 * is required.  `done` is called from sa__engine_perform /
 * sa__engine_socket_action, never from inside a libcurl callback; `timer`
 * and `socket` are called from inside libcurl (event mode only) and must
 * not call back into the engine. */
typedef struct sa__engine_hooks {
    void *ctx;
    /* A transfer ended (resp and its strings are valid during the call). */
    void (*done)(void *ctx, void *owner, const sa__http_response *resp);
    /* Event mode: libcurl's own timer, absolute ms, or -1 for none. */
    void (*timer)(void *ctx, int64_t at_ms);
    /* Event mode: watch fd for SA_POLL_IN/OUT, or SA_POLL_REMOVE. */
    void (*socket)(void *ctx, int fd, int what);
    /* One log line, not yet redacted (the owner redacts). */
    void (*log)(void *ctx, int level, const char *line);
    int log_level;            /* lines below this level are not formatted */
} sa__engine_hooks;

typedef struct sa__engine_options {
    const sa_mem *mem;
    const char *api_key;      /* Bearer key for api_host requests only */
    const char *user_agent;
    const char *ca_bundle;    /* NULL: libcurl's default */
    const char *proxy;        /* NULL: libcurl's environment variables */
    long connect_timeout_ms;
    int max_connections;
    size_t max_body_bytes;
} sa__engine_options;

/* 1 while sa_global_init (in engine.c: the engine owns libcurl's global
 * init) has succeeded more often than sa_global_cleanup ran. */
int sa__engine_global_ready(void);
/* Monotonic milliseconds (CLOCK_MONOTONIC): the library's only clock. */
int64_t sa__engine_now(void);
/* The same clock in microseconds (time budgets of bounded steps). */
int64_t sa__engine_now_us(void);
/* Create an engine (a libcurl multi handle).  Strings in o are copied.
 * Returns SA_OK, SA_ERR_NOMEM or SA_ERR_INIT (message in err). */
int sa__engine_new(const sa__engine_options *o, const sa__engine_hooks *h,
                  sa__engine **out, char *err, size_t errlen);
/* Abort every transfer (no done calls) and free everything.  NULL is ok. */
void sa__engine_free(sa__engine *e);
/* Start req (its pointers must stay valid until the done call or
 * sa__engine_abort).  Returns SA_OK and *out, or SA_ERR_FILE (upload file
 * unreadable or changed), SA_ERR_NOMEM, SA_ERR_TRANSPORT (libcurl refused
 * the request); nothing was sent then, and sa__engine_errmsg says why. */
int sa__engine_send(sa__engine *e, const sa__http_request *req, void *owner,
                   sa__xfer **out);
/* Stop a transfer at once; its done hook is not called. */
void sa__engine_abort(sa__engine *e, sa__xfer *x);
/* The message of the last failed sa__engine_send. */
const char *sa__engine_errmsg(const sa__engine *e);
/* Wait up to timeout_ms for socket activity or sa__engine_wakeup. */
int sa__engine_wait(sa__engine *e, long timeout_ms);
/* Do what is ready (curl_multi_perform) and report finished transfers. */
int sa__engine_perform(sa__engine *e);
/* Event mode: fd is ready for what (SA_POLL_*), or fd == SA_SOCKET_TIMEOUT. */
int sa__engine_socket_action(sa__engine *e, int fd, int what);
/* libcurl's next timeout in ms (-1 none) when not in event mode. */
long sa__engine_timeout(sa__engine *e);
/* Thread-safe: make a sa__engine_wait return now. */
int sa__engine_wakeup(sa__engine *e);
/* Switch libcurl's socket/timer callbacks on (1) or off (0). */
int sa__engine_set_event_mode(sa__engine *e, int on);
/* Transfers in flight. */
int sa__engine_in_flight(const sa__engine *e);
/* Bound each sa__engine_perform / sa__engine_socket_action (max 0, the
 * default: no bound): at most max socket events and max finished
 * transfers reported, at most max / 4 (>= 1) new transfers handed to
 * libcurl, and, when budget_end_us > 0, no further event or report once
 * sa__engine_now_us() passes it (at least one of each).  What is left
 * waits for the next call (sa__engine_has_leftover). */
void sa__engine_set_batch(sa__engine *e, int max, int64_t budget_end_us);
/* 1 when finished transfers wait to be reported (see sa__engine_set_batch). */
int sa__engine_has_leftover(const sa__engine *e);
/* Totals since creation: transfers finished, new connections opened. */
void sa__engine_stats(const sa__engine *e, long *transfers, long *connects);

#endif /* SA_ENGINE_H */
