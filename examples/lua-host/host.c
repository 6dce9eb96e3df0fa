/*
 * host.c - a minimal "game engine" that embeds Lua 5.4 and runs a script's
 * update(dt, frame) at a fixed frame rate.  It is the proof that
 * require "skinanalysis" fits a frame loop: the script submits analyses
 * and steps the client every frame, and this host measures how long the
 * script ran in each frame (CLOCK_MONOTONIC) and reports the
 * distribution.
 *
 *   lua_host [--hz 60] [--frames N] [--budget-ms X] [--states K]
 *            script.lua [script args...]
 *
 * Each of the K Lua states (default 1) is independent: its own
 * lua_State, its own copy of the module, its own clients.  Every frame the
 * host calls update in each state, one after the other.  A state that has
 * finished gets its finish() call and is closed (lua_close) at once, while
 * the others go on -- like a level being unloaded.
 *
 * The script
 *   - defines update(dt, frame): dt in seconds since the previous frame;
 *     returns true once it has finished;
 *   - may define finish(): called once after the loop; returns false when
 *     the run failed (printed as a failure, exit code 4).
 * The global HOST = {state = i, states = K, hz = hz} tells a state who it
 * is; arg holds the script arguments.
 *
 * Output: the script's own prints, then one line
 *   frame-time: samples=N median=… p90=… p99=… max=… ms max_frame=F
 *   over_budget=M budget=… ms cpu_p99=… cpu_max=… ms over_budget_cpu=C
 *   over_budget_blocked=B late_frames=L
 * (script wall time per state and frame, CLOCK_MONOTONIC; the CPU time of
 * the host thread in the same intervals, CLOCK_THREAD_CPUTIME_ID; B counts
 * the overruns during which the thread blocked in a syscall).
 * Exit: 0 ok; 1 a script raised; 2 usage; 3 a frame exceeded the budget;
 * 4 finish() returned false; 5 the frame limit was reached first.
 *
 * By default package.cpath and package.path start with the build tree
 * (LUA_HOST_CPATH, LUA_HOST_PATH, set by CMake), so the module is loaded
 * from there and not from an installed copy.
 */
#define _GNU_SOURCE /* RUSAGE_THREAD */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#ifndef LUA_HOST_CPATH
#define LUA_HOST_CPATH ""
#endif
#ifndef LUA_HOST_PATH
#define LUA_HOST_PATH ""
#endif

#define HOST_MAX_STATES 8

enum { EXIT_SCRIPT = 1, EXIT_USAGE = 2, EXIT_BUDGET = 3, EXIT_FAILED = 4,
       EXIT_FRAMES = 5 };

typedef struct host_options {
    int hz;
    long max_frames;
    double budget_ms;     /* <= 0: no budget */
    int states;
    const char *script;
    int argc;             /* script arguments */
    char **argv;
} host_options;

typedef struct host_state {
    lua_State *L;
    int finished;
    int failed;
    int finish_failed;  /* finish() returned false or raised */
} host_state;

static int64_t clock_ns(clockid_t id)
{
    struct timespec ts;

    if (clock_gettime(id, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t now_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

static void sleep_until(int64_t t_ns)
{
    struct timespec ts;
    int tries;

    ts.tv_sec = (time_t)(t_ns / 1000000000);
    ts.tv_nsec = (long)(t_ns % 1000000000);
    for (tries = 0; tries < 100; tries++) {
        if (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != EINTR)
            return;
    }
}

static int usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s [--hz N] [--frames N] [--budget-ms X] [--states K] "
            "script.lua [args...]\n",
            prog);
    return EXIT_USAGE;
}

static int parse_options(int argc, char **argv, host_options *o)
{
    int i;

    o->hz = 60;
    o->max_frames = 60L * 600;
    o->budget_ms = 0;
    o->states = 1;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] != '-')
            break;
        if (i + 1 >= argc)
            return -1;
        if (strcmp(a, "--hz") == 0)
            o->hz = atoi(argv[++i]);
        else if (strcmp(a, "--frames") == 0)
            o->max_frames = atol(argv[++i]);
        else if (strcmp(a, "--budget-ms") == 0)
            o->budget_ms = atof(argv[++i]);
        else if (strcmp(a, "--states") == 0)
            o->states = atoi(argv[++i]);
        else
            return -1;
    }
    if (i >= argc || o->hz < 1 || o->hz > 1000 || o->max_frames < 1 ||
        o->max_frames > 10000000L ||
        o->states < 1 || o->states > HOST_MAX_STATES)
        return -1;
    o->script = argv[i];
    o->argc = argc - i - 1;
    o->argv = argv + i + 1;
    return 0;
}

/* Message handler: the error with a traceback. */
static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);

    if (msg == NULL)
        msg = lua_pushfstring(L, "(error object is a %s value)",
                              luaL_typename(L, 1));
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* Call the function below nargs arguments with a traceback handler;
 * prints the error.  Returns 0 or -1. */
static int call(lua_State *L, int nargs, int nresults, int index)
{
    int base = lua_gettop(L) - nargs;
    int rc;

    lua_pushcfunction(L, traceback);
    lua_insert(L, base);
    rc = lua_pcall(L, nargs, nresults, base);
    lua_remove(L, base);
    if (rc != LUA_OK) {
        fprintf(stderr, "lua_host: state %d: %s\n", index,
                lua_tostring(L, -1));
        lua_pop(L, 1);
        return -1;
    }
    return 0;
}

/* package.<field> = prefix .. ";" .. package.<field> */
static void prepend_path(lua_State *L, const char *field, const char *prefix)
{
    if (prefix[0] == '\0')
        return;
    lua_getglobal(L, "package");
    lua_getfield(L, -1, field);
    lua_pushfstring(L, "%s;%s", prefix, lua_tostring(L, -1));
    lua_setfield(L, -3, field);
    lua_pop(L, 2);
}

static int open_state(host_state *hs, const host_options *o, int index)
{
    lua_State *L = luaL_newstate();
    int i;

    hs->L = L;
    if (L == NULL) {
        fprintf(stderr, "lua_host: cannot create a Lua state\n");
        return -1;
    }
    luaL_openlibs(L);
    prepend_path(L, "cpath", LUA_HOST_CPATH);
    prepend_path(L, "path", LUA_HOST_PATH);
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, index);
    lua_setfield(L, -2, "state");
    lua_pushinteger(L, o->states);
    lua_setfield(L, -2, "states");
    lua_pushinteger(L, o->hz);
    lua_setfield(L, -2, "hz");
    lua_setglobal(L, "HOST");
    lua_createtable(L, o->argc, 1);
    lua_pushstring(L, o->script);
    lua_rawseti(L, -2, 0);
    for (i = 0; i < o->argc; i++) {
        lua_pushstring(L, o->argv[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setglobal(L, "arg");
    if (luaL_loadfile(L, o->script) != LUA_OK) {
        fprintf(stderr, "lua_host: %s\n", lua_tostring(L, -1));
        return -1;
    }
    if (call(L, 0, 0, index) != 0)
        return -1;
    if (lua_getglobal(L, "update") != LUA_TFUNCTION) {
        fprintf(stderr, "lua_host: %s defines no update(dt, frame)\n",
                o->script);
        return -1;
    }
    lua_pop(L, 1);
    return 0;
}

/* Voluntary context switches of this thread so far (the thread blocked:
 * a syscall waited), or 0 where RUSAGE_THREAD does not exist. */
static int64_t voluntary_switches(void)
{
#ifdef RUSAGE_THREAD
    struct rusage ru;

    if (getrusage(RUSAGE_THREAD, &ru) == 0)
        return (int64_t)ru.ru_nvcsw;
#endif
    return 0;
}

/* One frame of one state: update(dt, frame).  Writes the script time
 * (CLOCK_MONOTONIC), the CPU time this thread spent in it
 * (CLOCK_THREAD_CPUTIME_ID), both in ns, and the number of times the
 * thread blocked meanwhile. */
static void run_update(host_state *hs, double dt, long frame, int index,
                       int64_t *wall, int64_t *cpu, int64_t *blocked)
{
    lua_State *L = hs->L;
    int64_t v0 = voluntary_switches();
    int64_t t0 = now_ns(), c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);

    lua_getglobal(L, "update");
    lua_pushnumber(L, dt);
    lua_pushinteger(L, frame);
    if (call(L, 2, 1, index) != 0) {
        hs->failed = 1;
    } else {
        hs->finished = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    *cpu = clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0;
    *wall = now_ns() - t0;
    *blocked = voluntary_switches() - v0;
}

/* finish() if defined: 0 ok, -1 failed. */
static int run_finish(host_state *hs, int index)
{
    lua_State *L = hs->L;
    int ok = 1;

    if (lua_getglobal(L, "finish") != LUA_TFUNCTION) {
        lua_pop(L, 1);
        return 0;
    }
    if (call(L, 0, 1, index) != 0)
        return -1;
    if (!lua_isnil(L, -1))
        ok = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return ok ? 0 : -1;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

static double quantile_ms(const int64_t *sorted, size_t n, double q)
{
    size_t i;

    if (n == 0)
        return 0;
    i = (size_t)(q * (double)(n - 1) + 0.5);
    return (double)sorted[i] / 1e6;
}

static size_t count_over(const int64_t *v, size_t n, double budget_ms)
{
    size_t i, over = 0;

    for (i = 0; i < n && budget_ms > 0; i++) {
        if ((double)v[i] / 1e6 > budget_ms)
            over++;
    }
    return over;
}

/* Samples over the budget in wall time during which the thread blocked
 * (rather than being preempted). */
static size_t count_over_blocked(const int64_t *wall, const int64_t *blocked,
                                 size_t n, double budget_ms)
{
    size_t i, over = 0;

    for (i = 0; i < n && budget_ms > 0; i++) {
        if ((double)wall[i] / 1e6 > budget_ms && blocked[i] > 0)
            over++;
    }
    return over;
}

/* Print the distribution of script times (wall) with the CPU-time maximum
 * and overruns.  A wall overrun with neither a CPU overrun nor a blocking
 * syscall means the host was preempted by another process, not slowed by
 * the script.  Returns the number of samples over the budget (wall). */
static size_t report(int64_t *wall, int64_t *cpu, const int64_t *blocked,
                     size_t n, const host_options *o, long late,
                     long worst_frame)
{
    size_t over = count_over(wall, n, o->budget_ms);
    size_t over_cpu = count_over(cpu, n, o->budget_ms);
    size_t over_blocked = count_over_blocked(wall, blocked, n, o->budget_ms);

    qsort(wall, n, sizeof(*wall), cmp_i64);
    qsort(cpu, n, sizeof(*cpu), cmp_i64);
    printf("frame-time: samples=%zu median=%.3f p90=%.3f p99=%.3f max=%.3f ms "
           "max_frame=%ld over_budget=%zu budget=%.3f ms cpu_p99=%.3f "
           "cpu_max=%.3f ms over_budget_cpu=%zu over_budget_blocked=%zu "
           "late_frames=%ld\n",
           n, quantile_ms(wall, n, 0.5), quantile_ms(wall, n, 0.9),
           quantile_ms(wall, n, 0.99), n ? (double)wall[n - 1] / 1e6 : 0.0,
           worst_frame, over, o->budget_ms, quantile_ms(cpu, n, 0.99),
           n ? (double)cpu[n - 1] / 1e6 : 0.0, over_cpu, over_blocked, late);
    return over;
}

/* A state has finished: call finish() and close it now. */
static void retire_state(host_state *hs, int index, long frame)
{
    hs->finish_failed = run_finish(hs, index) != 0;
    lua_close(hs->L);
    hs->L = NULL;
    printf("lua_host: state %d finished at frame %ld and was closed\n", index,
           frame);
}

/* The frame loop.  Returns the number of samples written; *worst_frame
 * is the frame of the longest sample. */
static size_t frame_loop(host_state *hs, const host_options *o,
                         int64_t *wall, int64_t *cpu, int64_t *blocked,
                         long *late,
                         long *frames_run, long *worst_frame)
{
    int64_t worst = -1;
    const int64_t period = 1000000000 / o->hz;
    int64_t next = now_ns(), prev = next;
    size_t n = 0;
    long frame;

    *late = 0;
    for (frame = 0; frame < o->max_frames; frame++) {
        int64_t start = now_ns();
        double dt = (double)(start - prev) / 1e9;
        int s, alive = 0;

        prev = start;
        for (s = 0; s < o->states; s++) {
            if (hs[s].finished || hs[s].failed)
                continue;
            run_update(&hs[s], dt, frame, s + 1, &wall[n], &cpu[n],
                       &blocked[n]);
            if (wall[n] > worst) {
                worst = wall[n];
                *worst_frame = frame;
            }
            n++;
            if (hs[s].finished)
                retire_state(&hs[s], s + 1, frame);
            alive += !hs[s].finished && !hs[s].failed;
        }
        if (alive == 0) {
            *frames_run = frame + 1;
            return n;
        }
        next += period;
        if (now_ns() > next) {  /* late: do not try to catch up */
            (*late)++;
            next = now_ns();
        } else {
            sleep_until(next);
        }
    }
    *frames_run = frame;
    return n;
}

int main(int argc, char **argv)
{
    host_state hs[HOST_MAX_STATES];
    host_options o;
    int64_t *wall, *cpu, *blocked;
    size_t n, total, over = 0;
    long late = 0, frames = 0, worst_frame = -1;
    int s, rc = 0, all_finished = 1;

    if (parse_options(argc, argv, &o) != 0)
        return usage(argv[0]);
    total = (size_t)o.max_frames * (size_t)o.states;
    wall = calloc(total, sizeof(*wall));
    cpu = calloc(total, sizeof(*cpu));
    blocked = calloc(total, sizeof(*blocked));
    if (wall == NULL || cpu == NULL || blocked == NULL) {
        fprintf(stderr, "lua_host: out of memory\n");
        free(wall);
        free(cpu);
        free(blocked);
        return EXIT_SCRIPT;
    }
    memset(hs, 0, sizeof hs);
    for (s = 0; s < o.states && rc == 0; s++) {
        if (open_state(&hs[s], &o, s + 1) != 0)
            rc = EXIT_SCRIPT;
    }
    if (rc == 0) {
        n = frame_loop(hs, &o, wall, cpu, blocked, &late, &frames,
                       &worst_frame);
        for (s = 0; s < o.states; s++) {
            all_finished &= hs[s].finished;
            if (hs[s].failed)
                rc = EXIT_SCRIPT;
            else if (!hs[s].finished) /* the frame limit came first */
                hs[s].finish_failed = run_finish(&hs[s], s + 1) != 0;
            if (hs[s].finish_failed && rc == 0)
                rc = EXIT_FAILED;
        }
        over = report(wall, cpu, blocked, n, &o, late, worst_frame);
        if (rc == 0 && over > 0)
            rc = EXIT_BUDGET;
        if (rc == 0 && !all_finished)
            rc = EXIT_FRAMES;
        printf("lua_host: %ld frames at %d Hz, %d state(s), exit %d\n", frames,
               o.hz, o.states, rc);
        fflush(stdout);
    }
    for (s = 0; s < HOST_MAX_STATES; s++) {
        if (hs[s].L != NULL)
            lua_close(hs[s].L);
    }
    free(wall);
    free(cpu);
    free(blocked);
    return rc;
}
