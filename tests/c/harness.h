/*
 * harness.h - a tiny test harness for the C suites (header only).
 *
 *   TEST(name) { CHECK(x); CHECK_EQ_INT(a, b); CHECK_STR(a, b); }
 *   int main(void) { RUN(name); ...; return harness_report(); }
 *
 * A failed check prints file:line and the values, marks the test failed and
 * continues.  harness_report() prints "N passed, M failed" and returns the
 * process exit code.  Helpers that are not macros (harness_slurp,
 * harness_now_ms) are declared in support_harness.h.
 */
#ifndef SA_TEST_HARNESS_H
#define SA_TEST_HARNESS_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support_harness.h"   /* harness_slurp, harness_now_ms */

static int harness_passed, harness_failed, harness_cur_failed;
static const char *harness_cur_name;

#define TEST(name) static void name(void)

#define RUN(name)                                                        \
    do {                                                                 \
        harness_cur_name = #name;                                        \
        harness_cur_failed = 0;                                          \
        name();                                                          \
        HARNESS_TALLY();                                                 \
    } while (0)

/* Count the current test passed or failed and say so (RUN does this; a
 * test run another way, e.g. in its own thread, sets harness_cur_name and
 * harness_cur_failed itself and ends with this). */
#define HARNESS_TALLY()                                                  \
    do {                                                                 \
        if (harness_cur_failed) {                                        \
            harness_failed++;                                            \
            fprintf(stderr, "FAIL %s\n", harness_cur_name);              \
        } else {                                                         \
            harness_passed++;                                            \
            fprintf(stderr, "ok   %s\n", harness_cur_name);              \
        }                                                                \
    } while (0)

#define HARNESS_FAIL(...)                                                \
    do {                                                                 \
        fprintf(stderr, "  %s:%d: %s: ", __FILE__, __LINE__,             \
                harness_cur_name);                                       \
        fprintf(stderr, __VA_ARGS__);                                    \
        fputc('\n', stderr);                                             \
        harness_cur_failed = 1;                                          \
    } while (0)

#define CHECK(cond)                                                      \
    do {                                                                 \
        if (!(cond)) HARNESS_FAIL("check failed: %s", #cond);            \
    } while (0)

#define CHECK_EQ_INT(a, b)                                               \
    do {                                                                 \
        long long ha_ = (long long)(a), hb_ = (long long)(b);            \
        if (ha_ != hb_)                                                  \
            HARNESS_FAIL("%s == %s: %lld != %lld", #a, #b, ha_, hb_);    \
    } while (0)

#define CHECK_STR(a, b)                                                  \
    do {                                                                 \
        const char *ha_ = (a), *hb_ = (b);                               \
        if (!ha_ || !hb_ || strcmp(ha_, hb_) != 0)                       \
            HARNESS_FAIL("%s == %s: \"%s\" != \"%s\"", #a, #b,           \
                         ha_ ? ha_ : "(null)", hb_ ? hb_ : "(null)");    \
    } while (0)

#define CHECK_NEAR(a, b, eps)                                            \
    do {                                                                 \
        double ha_ = (double)(a), hb_ = (double)(b);                     \
        if (!(fabs(ha_ - hb_) <= (eps)))                                 \
            HARNESS_FAIL("%s ~= %s: %g != %g", #a, #b, ha_, hb_);        \
    } while (0)

/* Stop the current test (after a failed precondition). */
#define REQUIRE(cond)                                                    \
    do {                                                                 \
        if (!(cond)) {                                                   \
            HARNESS_FAIL("required: %s", #cond);                         \
            return;                                                      \
        }                                                                \
    } while (0)

static int harness_report(void)
{
    printf("%d passed, %d failed\n", harness_passed, harness_failed);
    return harness_failed ? 1 : 0;
}

#endif
