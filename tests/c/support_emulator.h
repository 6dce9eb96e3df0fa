/*
 * support_emulator.h - start and stop the local API emulator
 * (scripts/emulator) as a subprocess for the C tests, and talk to its
 * control endpoint.  Linked into every C test; no main().
 */
#ifndef SA_SUPPORT_EMULATOR_H
#define SA_SUPPORT_EMULATOR_H

#include <stddef.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "skinanalysis.h"

#define EMU_KEY "emulator-key"

typedef struct emu {
    pid_t pid;
    int out_fd;              /* the emulator's stdout (kept open) */
    char base_url[128];      /* "http://127.0.0.1:PORT" */
} emu;

/* Start `<SA_SOURCE_DIR>/scripts/emulator --port 0 FLAGS` (FLAGS split on
 * spaces, may be NULL) and wait for "listening on http://...".  Returns 0,
 * or -1 with a message on stderr. */
int emu_start(emu *e, const char *flags);
/* SIGTERM, wait (SIGKILL after 5 s).  Safe on a stopped emulator. */
void emu_stop(emu *e);

/* One blocking HTTP request to the emulator (control endpoint, /_public).
 * Returns the HTTP status (or -1); *body (malloc'd, NUL-terminated) when
 * body is not NULL. */
long emu_http(const emu *e, const char *method, const char *path,
              const char *data, size_t len, const char *content_type,
              char **body);
/* GET path as JSON (cJSON_Delete it), or NULL. */
cJSON *emu_get_json(const emu *e, const char *path);
/* POST a JSON text; returns the HTTP status. */
long emu_post_json(const emu *e, const char *path, const char *json);

/* A top-level integer of /_control/counters, or -1. */
long emu_counter(const emu *e, const char *name);
/* counters[name][key] (e.g. "requests", "task_create"), or 0. */
long emu_counter2(const emu *e, const char *name, const char *key);
/* Host a file under /_public/<name>; writes its URL to url. */
int emu_host_public(const emu *e, const char *name, const char *path,
                    char *url, size_t urllen);
/* Install a fault scenario (JSON text) / clear it. */
int emu_scenario(const emu *e, const char *json);
/* Forget tasks, files, log, counters, balances. */
int emu_reset(const emu *e);

/* The invariants every scenario must keep, from the emulator's log and
 * counters: no request to the upload or result host carried an
 * Authorization header; at most max_tasks tasks were created; no task was
 * left unpolled longer than max_gap_s while running; and, with
 * require_idle, no task still runs.  Returns 0 or -1 with the reason in
 * why. */
int emu_check_invariants(const emu *e, long max_tasks, double max_gap_s,
                         int require_idle, char *why, size_t whylen);

/* Options for a test client of a local server at base_url: the key and a
 * quick pace: polls every poll_ms (at most 1 s apart; 10 s when poll_ms is
 * over 1 s), backoffs of 20 to 100 ms, 2 s to connect, and request and
 * upload timeouts of timeout_ms (0: the defaults); the rest the defaults. */
void quick_options(sa_client_options *o, const char *key,
                   const char *base_url, long poll_ms, long timeout_ms);
/* quick_options for the emulator e. */
void emu_options(const emu *e, sa_client_options *o, const char *key,
                 long poll_ms, long timeout_ms);
/* sa_client_new with o: the client, or NULL (the reason on stderr). */
sa_client *emu_client(const sa_client_options *o);

#endif
