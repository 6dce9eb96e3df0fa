/* fuzz_clock.c - the engine's clock for the fuzz targets, which link the pure modules without the engine. */

/*
 * files.c seeds its temporary-name generator with sa__engine_now_us(); the
 * engine (libcurl) is not part of the fuzz builds, so this stands in for it.
 */
#include <stdint.h>
#include <time.h>

int64_t sa__engine_now_us(void);

int64_t sa__engine_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
