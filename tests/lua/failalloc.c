/*
 * failalloc.c - out-of-memory test of the Lua binding (the failmalloc idea
 * of nghttp2's tests, applied to Lua's allocator).
 *
 *   failalloc CPATH SCRIPT [STRIDE]
 *
 * Runs SCRIPT once in a fresh lua_State to count the Lua allocations it
 * makes, then again for every n in 1, 1 + STRIDE, ... with the n-th
 * allocation and every later one failing until the script's lua_pcall
 * returns (failing only one would mostly be absorbed by Lua's emergency
 * collection and retry).  Each run must end either normally or with a Lua
 * error (a "not enough memory" raised somewhere in the binding or in the
 * script), and lua_close must finalize everything.  Under valgrind or ASan
 * this proves that a Lua memory error raised inside skinanalysis.core
 * neither crashes nor leaks.  Prints a summary; exits non-zero when the
 * first, unfailing run fails or a run ends in a way it should not.
 *
 * Built and run by tests/lua/run.sh (not by CMake: it is a test tool).
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

typedef struct counting_alloc {
    long count;     /* allocations (and growths) so far */
    long fail_at;   /* this one and the later ones fail; 0 = none */
    int armed;      /* count only while the script runs */
    long failed;    /* how many were refused */
} counting_alloc;

static void *test_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    counting_alloc *a = ud;

    (void)osize;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    if (a->armed && (ptr == NULL || nsize > osize)) {
        a->count++;
        if (a->fail_at > 0 && a->count >= a->fail_at) {
            a->failed++;
            return NULL;
        }
    }
    return realloc(ptr, nsize);
}

/* Run the script in a new state.  Returns 0 when it ended normally, 1 when
 * it raised (its message in msg), -1 when the state could not be set up. */
static int run_once(const char *cpath, const char *script, counting_alloc *a,
                    char *msg, size_t msglen)
{
    lua_State *L = lua_newstate(test_alloc, a);
    int rc;

    msg[0] = '\0';
    if (L == NULL)
        return -1;
    luaL_openlibs(L);
    lua_getglobal(L, "package");
    lua_pushstring(L, cpath);
    lua_setfield(L, -2, "cpath");
    lua_pop(L, 1);
    if (luaL_loadfile(L, script) != LUA_OK) {
        snprintf(msg, msglen, "%s", lua_tostring(L, -1));
        lua_close(L);
        return -1;
    }
    a->armed = 1;
    rc = lua_pcall(L, 0, 0, 0);
    a->armed = 0;
    if (rc != LUA_OK) {
        const char *m = lua_tostring(L, -1);
        snprintf(msg, msglen, "%s", m != NULL ? m : "(non-string error)");
    }
    lua_close(L);
    return rc == LUA_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
    counting_alloc a;
    char msg[512];
    long total, n, stride = 1, runs = 0, raised = 0, completed = 0;

    if (argc < 3) {
        fprintf(stderr, "usage: %s CPATH SCRIPT [STRIDE]\n", argv[0]);
        return 2;
    }
    if (argc > 3)
        stride = atol(argv[3]);
    if (stride < 1)
        stride = 1;

    memset(&a, 0, sizeof a);
    if (run_once(argv[1], argv[2], &a, msg, sizeof msg) != 0) {
        fprintf(stderr, "failalloc: the script fails without failures: %s\n",
                msg);
        return 1;
    }
    total = a.count;
    for (n = 1; n <= total; n += stride) {
        int rc;

        memset(&a, 0, sizeof a);
        a.fail_at = n;
        rc = run_once(argv[1], argv[2], &a, msg, sizeof msg);
        if (rc < 0) {
            fprintf(stderr, "failalloc: run %ld: %s\n", n, msg);
            return 1;
        }
        runs++;
        if (rc == 0)
            completed++;
        else
            raised++;
    }
    printf("failalloc: %ld allocations, %ld runs (stride %ld): %ld raised, "
           "%ld completed\n", total, runs, stride, raised, completed);
    return 0;
}
