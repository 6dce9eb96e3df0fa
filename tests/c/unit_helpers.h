/*
 * unit_helpers.h - small helpers shared by the C unit tests (header only;
 * include it after harness.h).
 *
 *   counting c = {0, 0};
 *   sa_mem mem = counting_mem(&c);     c.allocs, c.frees after use
 */
#ifndef SA_TEST_UNIT_HELPERS_H
#define SA_TEST_UNIT_HELPERS_H

#include <stdlib.h>

#include "skinanalysis.h"

/* An allocator that counts: allocations (malloc, realloc of NULL) and
 * every call of free, NULL included. */
typedef struct counting {
    long allocs, frees;
} counting;

static void *counting_malloc(size_t n, void *ud)
{
    ((counting *)ud)->allocs++;
    return malloc(n);
}

static void *counting_realloc(void *p, size_t n, void *ud)
{
    if (!p) ((counting *)ud)->allocs++;
    return realloc(p, n);
}

static void counting_free(void *p, void *ud)
{
    ((counting *)ud)->frees++;
    free(p);
}

static sa_mem counting_mem(counting *c)
{
    sa_mem mem = {c, counting_malloc, counting_realloc, counting_free};
    return mem;
}

#endif
