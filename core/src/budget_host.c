/* budget_host.c - rate_limit_scope "host": the budget in shared memory. */

/*
 * One small file per (user, key, base URL, rate options) under /dev/shm
 * (else $XDG_RUNTIME_DIR), mapped by every client that uses them:
 *   name   skinanalysis-budget-<uid>-<32 hex digits of SHA-256 of the key,
 *          base URL and windows>: never the key itself; mode 0600.
 *   layout a process-shared robust pthread mutex, then sa__budget_state
 *          (budget.c): both windows, the 429 pause, the leases.
 * The mutex is held only while the state is read or updated (no I/O
 * inside it; the only system call is kill(pid, 0) for a lease not renewed
 * for a second: microseconds), so a step never waits on it for long.  A process that dies holding it leaves it EOWNERDEAD: the next
 * taker marks it consistent and sanitises the rings (budget.c).
 * Creation: the file is built under a temporary name (O_EXCL), its state
 * initialised, then link()ed to the real name, so nobody ever maps a
 * half-made one; who loses the race maps the winner's.  The last client
 * to close (no other live lease) unlinks the file under the lock; a client
 * that opens a file and then finds it unlinked (st_nlink 0) opens again.
 * No shared store (no writable directory, a file of another shape):
 * process scope, and one line saying why (sa__budget_open's note).
 */
#include "budget.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

typedef struct host_file {
    pthread_mutex_t mu;
    sa__budget_state st;
} host_file;

struct sa__budget_host {
    const sa_mem *mem;
    host_file *map;
    int32_t pid;
    uint32_t token;
    char path[512];
};

static int alive(void *ud, int32_t pid)
{
    (void)ud;
    if (pid <= 0) return 0;
    return !(kill((pid_t)pid, 0) != 0 && errno == ESRCH);
}

static void lock(sa__budget_host *h)
{
    int rc = pthread_mutex_lock(&h->map->mu);
    if (rc == EOWNERDEAD) (void)pthread_mutex_consistent(&h->map->mu);
}

static void unlock(sa__budget_host *h)
{
    (void)pthread_mutex_unlock(&h->map->mu);
}

/* The directory: /dev/shm, else $XDG_RUNTIME_DIR; NULL when neither is a
 * writable directory. */
static const char *shm_dir(void)
{
    const char *x;
    if (access("/dev/shm", W_OK | X_OK) == 0) return "/dev/shm";
    x = getenv("XDG_RUNTIME_DIR");
    if (x && *x == '/' && access(x, W_OK | X_OK) == 0) return x;
    return NULL;
}

/* The file name's hash: key, base URL and windows, never the key. */
static int name_hash(char hex[33], const char *key, const char *url,
                     const char *tag, int nr, int64_t rs, int nl, int64_t ls)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0, i;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    char params[128];
    int ok;

    if (!ctx) return 0;
    /* the layout's version is part of the name: a library with another
     * layout uses another file rather than none */
    snprintf(params, sizeof params, "\n%d/%lld/%d/%lld%s%.32s\nv%u", nr,
             (long long)rs, nl, (long long)ls, tag ? "\n" : "",
             tag ? tag : "", (unsigned)SA__BUDGET_VERSION);
    ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1
      && EVP_DigestUpdate(ctx, "skinanalysis-budget\n", 20) == 1
      && EVP_DigestUpdate(ctx, key, strlen(key)) == 1
      && EVP_DigestUpdate(ctx, "\n", 1) == 1
      && EVP_DigestUpdate(ctx, url, strlen(url)) == 1
      && EVP_DigestUpdate(ctx, params, strlen(params)) == 1
      && EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen >= 16;
    EVP_MD_CTX_free(ctx);
    OPENSSL_cleanse(md + 16, sizeof md - 16);
    if (!ok) return 0;
    for (i = 0; i < 16; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return 1;
}

static host_file *map_fd(int fd)
{
    void *p = mmap(NULL, sizeof(host_file), PROT_READ | PROT_WRITE,
                   MAP_SHARED, fd, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* Make the file under a temporary name and link it to `path`.  Returns 1
 * when it is in place (ours or another's: EEXIST), 0 on failure. */
static int create_file(const char *path, int nr, int64_t rs, int nl,
                       int64_t ls, char *note, size_t notelen)
{
    char tmp[600];
    pthread_mutexattr_t at;
    host_file *f;
    int fd, ok = 0;

    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    (void)unlink(tmp);
    fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        sa__errf(note, notelen, "cannot create the shared rate budget (%s)",
                 strerror(errno));
        return 0;
    }
    if (ftruncate(fd, (off_t)sizeof(host_file)) == 0 && (f = map_fd(fd))) {
        if (pthread_mutexattr_init(&at) == 0) {
            if (pthread_mutexattr_setpshared(&at, PTHREAD_PROCESS_SHARED) == 0
                && pthread_mutexattr_setrobust(&at, PTHREAD_MUTEX_ROBUST) == 0
                && pthread_mutex_init(&f->mu, &at) == 0) {
                sa__budget_state_init(&f->st, nr, rs, nl, ls);
                ok = 1;
            }
            pthread_mutexattr_destroy(&at);
        }
        munmap(f, sizeof(host_file));
    }
    close(fd);
    if (ok && link(tmp, path) != 0 && errno != EEXIST) {
        sa__errf(note, notelen, "cannot create the shared rate budget (%s)",
                 strerror(errno));
        ok = 0;
    }
    (void)unlink(tmp);
    if (!ok && note && !*note)
        sa__errf(note, notelen, "cannot set up the shared rate budget");
    return ok;
}

int sa__budget_host_open(sa__budget_host **out, const sa_mem *mem,
                        const sa_client_options *o, const char *api_key,
                        const char *base_url, const char *tag, char *note,
                        size_t notelen)
{
    static const char *const fallback = "; this client keeps its own limit "
                                        "(rate_limit_scope \"process\")";
    sa__budget_host *h;
    const char *dir;
    char hex[33];
    int nr, nl, attempt;
    int64_t rs, ls;
    char why[256] = "";

    *out = NULL;
    if (!sa__budget_plan(o, &nr, &rs, &nl, &ls)) {
        sa__errf(note, notelen, "the rate options are too large for a shared "
                 "budget%s", fallback);
        return SA_ERR_INVALID_ARGUMENT;
    }
    dir = shm_dir();
    if (!dir) {
        sa__errf(note, notelen, "no shared memory directory (/dev/shm or "
                 "$XDG_RUNTIME_DIR) for the host rate budget%s", fallback);
        return SA_ERR_FILE;
    }
    if (!name_hash(hex, api_key, base_url, tag, nr, rs, nl, ls)) {
        sa__errf(note, notelen, "cannot name the host rate budget%s",
                 fallback);
        return SA_ERR_FILE;
    }
    h = sa__calloc(mem, 1, sizeof *h);
    if (!h) return SA_ERR_NOMEM;
    h->mem = mem;
    h->pid = (int32_t)getpid();
    /* tells this process's clients apart: their addresses differ */
    h->token = (uint32_t)((uint64_t)(uintptr_t)h >> 4)
             ^ (uint32_t)((uint64_t)(uintptr_t)h >> 36);
    if (snprintf(h->path, sizeof h->path, "%s/skinanalysis-budget-%lu-%s",
                 dir, (unsigned long)getuid(), hex) >= (int)sizeof h->path) {
        sa__free(mem, h);
        sa__errf(note, notelen, "the shared memory directory's path is too "
                 "long%s", fallback);
        return SA_ERR_FILE;
    }
    for (attempt = 0; attempt < 8; attempt++) {
        struct stat sb;
        int fd = open(h->path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT) {
            if (!create_file(h->path, nr, rs, nl, ls, why, sizeof why)) break;
            continue;
        }
        if (fd < 0) {
            sa__errf(why, sizeof why, "cannot open the shared rate budget "
                     "(%s)", strerror(errno));
            break;
        }
        if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)
            || sb.st_uid != getuid() || (sb.st_mode & 077)
            || sb.st_size != (off_t)sizeof(host_file)) {
            close(fd);
            sa__errf(why, sizeof why, "the shared rate budget file is not "
                     "this library's (owner, mode or size)");
            break;
        }
        h->map = map_fd(fd);
        close(fd);
        if (!h->map) {
            sa__errf(why, sizeof why, "cannot map the shared rate budget");
            break;
        }
        if (!sa__budget_state_matches(&h->map->st, nr, rs, nl, ls)) {
            munmap(h->map, sizeof(host_file));
            h->map = NULL;
            sa__errf(why, sizeof why, "the shared rate budget file has "
                     "another layout");
            break;
        }
        lock(h);
        /* the last user unlinked it between our open and our lock */
        if (stat(h->path, &sb) != 0) {
            unlock(h);
            munmap(h->map, sizeof(host_file));
            h->map = NULL;
            continue;
        }
        if (sa__budget_state_lease(&h->map->st, sa__engine_now(), h->pid,
                                  h->token, 0, alive, NULL) < 0) {
            unlock(h);
            munmap(h->map, sizeof(host_file));
            h->map = NULL;
            sa__errf(why, sizeof why, "the shared rate budget has no free "
                     "lease (%d clients)", SA__BUDGET_LEASES);
            break;
        }
        unlock(h);
        *out = h;
        return SA_OK;
    }
    sa__free(mem, h);
    sa__errf(note, notelen, "%s%s", *why ? why : "cannot open the shared "
             "rate budget", fallback);
    return SA_ERR_FILE;
}

void sa__budget_host_close(sa__budget_host *h)
{
    if (!h) return;
    if (h->map) {
        lock(h);
        if (sa__budget_state_release(&h->map->st, h->pid, h->token, alive,
                                    NULL) == 0)
            (void)unlink(h->path);
        unlock(h);
        munmap(h->map, sizeof(host_file));
    }
    sa__free(h->mem, h);
}

int sa__budget_host_acquire(sa__budget_host *h, int64_t now, int64_t *ready_at,
                           int record)
{
    int ok;
    lock(h);
    ok = record ? sa__budget_state_acquire(&h->map->st, now, ready_at)
                : sa__budget_state_check(&h->map->st, now, ready_at);
    unlock(h);
    return ok;
}

void sa__budget_host_penalize(sa__budget_host *h, int64_t now, int64_t pause)
{
    lock(h);
    sa__budget_state_penalize(&h->map->st, now, pause);
    unlock(h);
}

int sa__budget_host_room(sa__budget_host *h, int64_t now, int64_t *next_free)
{
    int r;
    lock(h);
    r = sa__budget_state_room(&h->map->st, now, next_free);
    unlock(h);
    return r;
}

int sa__budget_host_admitted(sa__budget_host *h, int64_t now, int mine)
{
    int n;
    lock(h);
    n = sa__budget_state_lease(&h->map->st, now, h->pid, h->token, mine, alive,
                              NULL);
    unlock(h);
    return n < 0 ? mine : n;
}

/* Renew the lease and give the pacer's gap of the moment (locked). */
static int64_t pace_gap(sa__budget_host *h, int64_t now, int64_t client_gap_ms,
                        int64_t min_gap_ms, int mine)
{
    int n;
    int64_t gap;
    (void)sa__budget_state_lease(&h->map->st, now, h->pid, h->token, mine,
                                alive, NULL);
    n = sa__budget_state_clients(&h->map->st, now);
    gap = client_gap_ms / n;
    return gap > min_gap_ms ? gap : min_gap_ms;
}

int sa__budget_host_pace(sa__budget_host *h, int64_t now, int64_t client_gap_ms,
                        int64_t min_gap_ms, int64_t away_ms, int mine,
                        int record, int64_t *ready_at)
{
    int ok;
    int64_t gap;
    lock(h);
    /* the flag first: the lease's renewal makes it count again */
    sa__budget_state_away(&h->map->st, now, h->pid, h->token,
                         away_ms > 0 ? away_ms : 1);
    gap = pace_gap(h, now, client_gap_ms, min_gap_ms, mine);
    ok = sa__budget_state_pace_fallback(&h->map->st, now, gap, record,
                                       ready_at);
    unlock(h);
    return ok;
}

int sa__budget_host_pace_redis(sa__budget_host *h, int64_t now,
                              int64_t client_gap_ms, int64_t min_gap_ms,
                              int mine, int record, int64_t *taken,
                              int64_t *prev, int64_t *ready_at)
{
    int ok;
    lock(h);
    ok = sa__budget_state_pace_redis(&h->map->st, now,
                                    pace_gap(h, now, client_gap_ms,
                                             min_gap_ms, mine),
                                    record, taken, prev, ready_at);
    unlock(h);
    return ok;
}

void sa__budget_host_unpace(sa__budget_host *h, int64_t taken, int64_t prev)
{
    lock(h);
    sa__budget_state_unpace(&h->map->st, taken, prev);
    unlock(h);
}

void sa__budget_host_away(sa__budget_host *h, int64_t now, int64_t away_ms,
                         int mine)
{
    lock(h);
    sa__budget_state_away(&h->map->st, now, h->pid, h->token, away_ms);
    (void)sa__budget_state_lease(&h->map->st, now, h->pid, h->token, mine,
                                alive, NULL);
    unlock(h);
}

const char *sa__budget_host_path(const sa__budget_host *h)
{
    return h ? h->path : NULL;
}
