/*
 * support_harness.h - the out-of-line helpers of harness.h (defined in
 * support_harness.c, linked into every test program), for the suites and
 * the support files alike.
 */
#ifndef SA_TEST_SUPPORT_HARNESS_H
#define SA_TEST_SUPPORT_HARNESS_H

#include <stddef.h>
#include <stdint.h>

/* Read a whole file into a malloc'd NUL-terminated buffer (tests only):
 * NULL if it cannot be opened or read; its size in *len (may be NULL). */
char *harness_slurp(const char *path, size_t *len);

/* CLOCK_MONOTONIC in milliseconds. */
int64_t harness_now_ms(void);

#endif
