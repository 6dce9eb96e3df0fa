/* files.c - the names and the writes of files put into a caller's folder. */

/*
 * Names.  sa_file_name_clean makes a name that came from the network (the
 * last path segment of a mask URL, a ZIP entry's name) safe to create in a
 * folder.  It is the one place that does: the fetch jobs (fetch.c), the
 * folder writer below and the bindings (through the public function) all
 * call it.  A name set (sa__names) makes the names of one result unique,
 * in the order they are claimed: "mask.png", "mask-2.png", "mask-3.png".
 *
 * Writes.  A sa_folder is an open directory: every file is made relative to
 * its descriptor (openat, renameat2, linkat), so a file stays in that
 * directory even when its path is renamed or replaced meanwhile, and a name
 * never holds a '/'.  A file is written under a temporary name
 * (".sa-<hex>.part", created with O_CREAT | O_EXCL | O_NOFOLLOW: never an
 * existing file, never through a symbolic link), then given its name
 * without replacing anything (renameat2 with RENAME_NOREPLACE, or link +
 * unlink where the file system has no such rename).  When the name is
 * taken by a file this sa_folder did not write:
 *   - a regular file with the same bytes is kept as it is and the new copy
 *     dropped (saving the same result twice gives the same files);
 *   - anything else (other bytes, a link, a directory) is left alone, and
 *     the file takes the next free variant of its name ("mask-2.png").
 * So the library never writes over, truncates or follows a file it did
 * not write, and the name it reports is the name of the file it wrote.
 * A download retried after a partial answer starts its temporary file
 * again (sa__file_out_rewind): that file is the library's own.
 */
#include "sa_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CLEAN_MAX 112         /* bytes of a cleaned name (NUL excluded) */
#define CLEAN_WORK 1024       /* a longer segment is cut before cleaning */
#define EXT_MAX 16            /* an extension this short is kept when cut */
#define VARIANT_MAX 100000u   /* "-2" .. "-99999" */
#define TMP_TRIES 64
#define CMP_CHUNK 8192

/* ------------------------------------------------------------------ */
/* Names                                                               */
/* ------------------------------------------------------------------ */

static int name_char_ok(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int only_alnum(const char *s)
{
    for (; *s; s++)
        if (!name_char_ok((unsigned char)*s) || *s == '.' || *s == '_' ||
            *s == '-')
            return 0;
    return 1;
}

/* The part of `name` a file is named after: for a URL the last segment of
 * its path (no query, no fragment), else what follows the last '/' or
 * '\'. */
static void name_segment(const char *name, const char **start,
                         const char **end)
{
    const char *p = strstr(name, "://"), *seg;

    if (p && p - name < 16 && strcspn(name, ":/?#") == (size_t)(p - name)) {
        p += 3 + strcspn(p + 3, "/?#");   /* the authority ends here */
        if (*p != '/') {
            *start = *end = p;             /* no path */
            return;
        }
        *end = p + strcspn(p, "?#");
    } else {
        p = name;
        *end = name + strlen(name);
    }
    for (seg = *end; seg > p && seg[-1] != '/' && seg[-1] != '\\'; seg--) {
    }
    *start = seg;
}

/* Decode %XX and map the bytes of [s, end) into out: letters, digits, '.',
 * '_' and '-' stay, every run of other bytes becomes one '_'.  Returns the
 * length (at most max). */
static size_t map_chars(const char *s, const char *end, char *out, size_t max)
{
    size_t n = 0;
    int replaced = 0;

    while (s < end && n < max) {
        unsigned char c = (unsigned char)*s++;
        if (c == '%' && end - s >= 2 && hex_value(s[0]) >= 0 &&
            hex_value(s[1]) >= 0) {
            c = (unsigned char)(hex_value(s[0]) * 16 + hex_value(s[1]));
            s += 2;
        }
        if (name_char_ok(c)) {
            out[n++] = (char)c;
            replaced = 0;
        } else if (!replaced) {
            out[n++] = '_';
            replaced = 1;
        }
    }
    return n;
}

int sa_file_name_clean(const char *name, char *out, size_t out_len)
{
    char work[CLEAN_WORK];
    const char *seg, *end, *dot;
    size_t n, lead = 0, ext;

    if (!out || out_len < SA_FILE_NAME_MAX) return SA_ERR_INVALID_ARGUMENT;
    n = 0;
    if (name) {
        name_segment(name, &seg, &end);
        /* a segment too long for work keeps its extension */
        for (dot = end; dot > seg && *dot != '.'; dot--) {
        }
        if (*dot != '.' || end - dot > 3 * EXT_MAX) dot = end;
        n = map_chars(seg, dot, work, sizeof work - 1 - 3 * EXT_MAX);
        n += map_chars(dot, end, work + n, 3 * EXT_MAX);
    }
    work[n] = '\0';
    /* no hidden file, no "." or "..", nothing that reads as an option */
    while (lead < n && (work[lead] == '.' || work[lead] == '_' ||
                        work[lead] == '-'))
        lead++;
    dot = strrchr(work, '.');
    if (dot && dot + 1 == work + lead && lead < n && only_alnum(dot + 1)) {
        /* only an extension is left (".png", "_.png"): "file.png" */
        lead = (size_t)(dot - work);
        if (n - lead + 4 >= sizeof work) n = sizeof work - 5 + lead;
        memmove(work + 4, work + lead, n - lead);
        memcpy(work, "file", 4);
        n = n - lead + 4;
        work[n] = '\0';
        lead = 0;
    }
    memmove(work, work + lead, n - lead + 1);
    n -= lead;
    while (n > 0 && (work[n - 1] == '.' || work[n - 1] == '_'))
        work[--n] = '\0';
    if (n > CLEAN_MAX) {
        /* cut the stem, keep a short extension */
        dot = strrchr(work, '.');
        ext = dot ? (size_t)(work + n - dot) : 0;
        if (dot && dot > work && ext <= EXT_MAX) {
            memmove(work + CLEAN_MAX - ext, dot, ext + 1);
        } else {
            work[CLEAN_MAX] = '\0';
        }
        n = CLEAN_MAX;
    }
    if (n == 0) memcpy(work, "file", 5);
    snprintf(out, out_len, "%s", work);
    return SA_OK;
}

int sa__name_variant(const char *name, unsigned n, char *out, size_t outlen)
{
    const char *dot = strrchr(name, '.');
    int w;

    if (!dot || dot == name) dot = name + strlen(name);
    w = snprintf(out, outlen, "%.*s-%u%s", (int)(dot - name), name, n, dot);
    return (w < 0 || (size_t)w >= outlen) ? SA_ERR_LIMIT : SA_OK;
}

/* ------------------------------------------------------------------ */
/* Name sets: open addressing on FNV-1a                                */
/* ------------------------------------------------------------------ */

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

void sa__names_init(sa__names *s, const sa_mem *mem)
{
    memset(s, 0, sizeof *s);
    s->mem = mem;
}

void sa__names_free(sa__names *s)
{
    size_t i;
    for (i = 0; i < s->cap; i++) sa__free(s->mem, s->slot[i]);
    sa__free(s->mem, s->slot);
    s->slot = NULL;
    s->cap = s->n = 0;
}

static size_t names_find(const sa__names *s, const char *name)
{
    size_t i = (size_t)name_hash(name) & (s->cap - 1);
    while (s->slot[i] && strcmp(s->slot[i], name) != 0)
        i = (i + 1) & (s->cap - 1);
    return i;
}

int sa__names_has(const sa__names *s, const char *name)
{
    return s->cap > 0 && s->slot[names_find(s, name)] != NULL;
}

static int names_grow(sa__names *s)
{
    size_t cap = s->cap ? s->cap * 2 : 16, i;
    sa__names bigger = *s;

    if (s->n + 1 <= s->cap / 2) return SA_OK;
    bigger.cap = cap;
    bigger.slot = sa__calloc(s->mem, cap, sizeof *bigger.slot);
    if (!bigger.slot) return SA_ERR_NOMEM;
    for (i = 0; i < s->cap; i++)
        if (s->slot[i]) bigger.slot[names_find(&bigger, s->slot[i])] =
                            s->slot[i];
    sa__free(s->mem, s->slot);
    *s = bigger;
    return SA_OK;
}

int sa__names_add(sa__names *s, const char *name)
{
    size_t i;
    char *copy;

    if (sa__names_has(s, name)) return SA_OK;
    if (names_grow(s) != SA_OK) return SA_ERR_NOMEM;
    copy = sa__strdup(s->mem, name);
    if (!copy) return SA_ERR_NOMEM;
    i = names_find(s, name);
    s->slot[i] = copy;
    s->n++;
    return SA_OK;
}

int sa__names_unique(sa__names *s, const char *name, char *out, size_t outlen)
{
    unsigned n;
    int w = snprintf(out, outlen, "%s", name);

    if (w < 0 || (size_t)w >= outlen) return SA_ERR_LIMIT;
    for (n = 2; sa__names_has(s, out) || sa__has_secret(out, s->secret);
         n++) {
        if (n >= VARIANT_MAX || sa__name_variant(name, n, out, outlen) != SA_OK)
            return SA_ERR_LIMIT;
    }
    return sa__names_add(s, out);
}

/* sa_file_name_clean(raw) that never shows `secret`: a cleaned name that
 * still holds it (a mask URL that echoes the key, maybe %-encoded: the
 * cleaning decodes it) is scrubbed and cleaned again, so the name written
 * is the name a scrubbed result shows ("mask_REDACTED_.png"). */
static void clean_hidden(const char *raw, const char *secret, char *out,
                         size_t outlen)
{
    char work[4 * SA_FILE_NAME_MAX];
    int i;

    (void)sa_file_name_clean(raw, out, outlen);
    for (i = 0; i < 4 && sa__has_secret(out, secret); i++) {
        if (sa__scrub_len(out, secret) >= sizeof work) break;
        sa__scrub(work, out, secret);
        (void)sa_file_name_clean(work, out, outlen);
    }
    if (sa__has_secret(out, secret)) snprintf(out, outlen, "file");
}

int sa__names_claim(sa__names *s, const char *raw, char *out, size_t outlen)
{
    char clean[SA_FILE_NAME_MAX];

    clean_hidden(raw, s->secret, clean, sizeof clean);
    return sa__names_unique(s, clean, out, outlen);
}

/* ------------------------------------------------------------------ */
/* Folders                                                             */
/* ------------------------------------------------------------------ */

struct sa_folder {
    sa_mem memv;
    const sa_mem *mem;
    int fd;                  /* the directory */
    char *path;
    sa__names used;           /* names claimed or written through it */
    uint64_t rng;            /* temporary names */
};

int sa__folder_open(const sa_mem *mem, const char *path, sa_folder **out,
                    char *err, size_t errlen)
{
    sa_folder *f;
    char eb[128];
    int e;

    if (!out) return SA_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!path || !*path) {
        sa__errf(err, errlen, "no folder given");
        return SA_ERR_INVALID_ARGUMENT;
    }
    f = sa__calloc(mem, 1, sizeof *f);
    if (!f) {
        sa__errf(err, errlen, "out of memory");
        return SA_ERR_NOMEM;
    }
    if (mem) {
        f->memv = *mem;
        f->mem = &f->memv;
    }
    sa__names_init(&f->used, f->mem);
    f->path = sa__strdup(f->mem, path);
    f->fd = -1;
    if (!f->path) {
        sa__folder_free(f);
        sa__errf(err, errlen, "out of memory");
        return SA_ERR_NOMEM;
    }
    f->fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (f->fd < 0) {
        e = errno;
        sa__folder_free(f);
        if (e == ENOTDIR)
            sa__errf(err, errlen, "'%s' is not a folder", path);
        else
            sa__errf(err, errlen, "folder '%s': %s", path,
                     sa__strerror(e, eb, sizeof eb));
        return SA_ERR_FILE;
    }
    f->rng = ((uint64_t)(uintptr_t)f << 16) ^ (uint64_t)time(NULL) ^
             ((uint64_t)getpid() << 40) ^ (uint64_t)sa__engine_now_us();
    if (f->rng == 0) f->rng = 1;
    *out = f;
    return SA_OK;
}

void sa__folder_free(sa_folder *f)
{
    sa_mem memv;
    const sa_mem *mem;

    if (!f) return;
    memv = f->memv;
    mem = f->mem ? &memv : NULL;
    if (f->fd >= 0) close(f->fd);
    sa__names_free(&f->used);
    sa__free(mem, f->path);
    sa__free(mem, f);
}

const char *sa__folder_path(const sa_folder *f)
{
    return f ? f->path : "";
}

int sa__folder_claim(sa_folder *f, const char *raw, char *out, size_t outlen)
{
    return sa__names_claim(&f->used, raw, out, outlen);
}

void sa__folder_set_secret(sa_folder *f, const char *secret)
{
    if (f) f->used.secret = secret;
}

/* ------------------------------------------------------------------ */
/* Writing one file                                                    */
/* ------------------------------------------------------------------ */

void sa__file_out_init(sa__file_out *o, sa_folder *dir)
{
    memset(o, 0, sizeof *o);
    o->dir = dir;
    o->fd = -1;
}

static int file_fail(sa__file_out *o, const char *what, int e, char *err,
                     size_t errlen)
{
    char eb[128];
    sa__errf(err, errlen, "%s in '%s': %s", what, o->dir->path,
             sa__strerror(e, eb, sizeof eb));
    return SA_ERR_FILE;
}

/* Create the temporary file: a fresh name, never an existing file. */
static int tmp_open(sa__file_out *o, char *err, size_t errlen)
{
    int i;

    for (i = 0; i < TMP_TRIES; i++) {
        snprintf(o->tmp, sizeof o->tmp, ".sa-%016llx.part",
                 (unsigned long long)sa__rand(&o->dir->rng));
        o->fd = openat(o->dir->fd, o->tmp, O_WRONLY | O_CREAT | O_EXCL |
                       O_NOFOLLOW | O_CLOEXEC, 0644);
        if (o->fd >= 0) return SA_OK;
        if (errno != EEXIST) break;
    }
    o->tmp[0] = '\0';
    return file_fail(o, "cannot create a file", errno, err, errlen);
}

int sa__file_out_write(sa__file_out *o, const void *data, size_t len,
                      char *err, size_t errlen)
{
    const char *p = data;

    if (o->fd < 0 && tmp_open(o, err, errlen) != SA_OK) return SA_ERR_FILE;
    while (len > 0) {
        ssize_t w = write(o->fd, p, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0)
            return file_fail(o, "cannot write", w < 0 ? errno : EIO, err,
                             errlen);
        p += w;
        len -= (size_t)w;
        o->size += (uint64_t)w;
    }
    return SA_OK;
}

int sa__file_out_rewind(sa__file_out *o, char *err, size_t errlen)
{
    if (o->fd < 0 || o->size == 0) return SA_OK;
    if (ftruncate(o->fd, 0) != 0 || lseek(o->fd, 0, SEEK_SET) != 0)
        return file_fail(o, "cannot start a file again", errno, err, errlen);
    o->size = 0;
    return SA_OK;
}

void sa__file_out_discard(sa__file_out *o)
{
    if (o->fd >= 0) close(o->fd);
    o->fd = -1;
    if (o->tmp[0]) (void)unlinkat(o->dir->fd, o->tmp, 0);
    o->tmp[0] = '\0';
    o->size = 0;
}

/* 1 when the entry `name` of the folder is a regular file (not followed
 * through a link) with exactly the bytes of our temporary file. */
static int same_file(sa__file_out *o, const char *name)
{
    char a[CMP_CHUNK], b[CMP_CHUNK];
    struct stat sa_, sb;
    int fa, fb, same = 0;
    off_t off = 0;

    fa = openat(o->dir->fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
                O_CLOEXEC);
    if (fa < 0) return 0;
    fb = openat(o->dir->fd, o->tmp, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fb < 0) {
        close(fa);
        return 0;
    }
    if (fstat(fa, &sa_) == 0 && fstat(fb, &sb) == 0 && S_ISREG(sa_.st_mode)
        && sa_.st_size == sb.st_size && sa_.st_size == (off_t)o->size) {
        same = 1;
        while (same && off < sb.st_size) {
            size_t want = (size_t)(sb.st_size - off) < sizeof a
                              ? (size_t)(sb.st_size - off) : sizeof a;
            ssize_t ra = pread(fa, a, want, off), rb = pread(fb, b, want, off);
            if (ra != (ssize_t)want || rb != (ssize_t)want ||
                memcmp(a, b, want) != 0)
                same = 0;
            off += (off_t)want;
        }
    }
    close(fa);
    close(fb);
    return same;
}

/* Give the temporary file the name `name`, replacing nothing: 0, or the
 * errno (EEXIST: the name is taken). */
static int place(sa__file_out *o, const char *name)
{
    int dfd = o->dir->fd;

#ifdef RENAME_NOREPLACE
    if (renameat2(dfd, o->tmp, dfd, name, RENAME_NOREPLACE) == 0) return 0;
    if (errno == EEXIST) return EEXIST;
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP &&
        errno != EOPNOTSUPP)
        return errno;
#endif
    if (linkat(dfd, o->tmp, dfd, name, 0) != 0) return errno;
    (void)unlinkat(dfd, o->tmp, 0);
    return 0;
}

int sa__file_out_commit(sa__file_out *o, const char *name, char *final,
                       size_t finallen, char *err, size_t errlen)
{
    char cand[SA_FILE_NAME_MAX + 16];
    unsigned n;
    int e;

    if (o->fd < 0 && tmp_open(o, err, errlen) != SA_OK) return SA_ERR_FILE;
    e = close(o->fd) == 0 ? 0 : errno;
    o->fd = -1;
    if (e) {
        sa__file_out_discard(o);
        return file_fail(o, "cannot write", e, err, errlen);
    }
    for (n = 1; n < VARIANT_MAX; n++) {
        if (n == 1) {
            snprintf(cand, sizeof cand, "%s", name);
        } else if (sa__name_variant(name, n, cand, sizeof cand) != SA_OK) {
            break;
        } else if (sa__names_has(&o->dir->used, cand) ||
                   sa__has_secret(cand, o->dir->used.secret)) {
            continue;  /* another file of this folder has it */
        }
        e = place(o, cand);
        if (e == EEXIST && same_file(o, cand)) {
            (void)unlinkat(o->dir->fd, o->tmp, 0);
            e = 0;
        }
        if (e == EEXIST) continue;
        if (e) {
            sa__file_out_discard(o);
            return file_fail(o, "cannot name a file", e, err, errlen);
        }
        o->tmp[0] = '\0';
        if (sa__names_add(&o->dir->used, cand) != SA_OK) {
            sa__errf(err, errlen, "out of memory");
            return SA_ERR_NOMEM;
        }
        if (final) snprintf(final, finallen, "%s", cand);
        return SA_OK;
    }
    sa__file_out_discard(o);
    sa__errf(err, errlen, "no free name for '%s' in '%s'", name,
             o->dir->path);
    return SA_ERR_FILE;
}

/* ------------------------------------------------------------------ */
/* Public: a folder to write files into                                */
/* ------------------------------------------------------------------ */

int sa_folder_open(const char *path, sa_folder **out, char *errbuf,
                   size_t errbuf_len)
{
    if (errbuf && errbuf_len) errbuf[0] = '\0';
    return sa__folder_open(NULL, path, out, errbuf, errbuf_len);
}

int sa_folder_write(sa_folder *folder, const char *name, const void *data,
                    size_t len, char *written, size_t written_len,
                    char *errbuf, size_t errbuf_len)
{
    char claimed[SA_FILE_NAME_MAX];
    sa__file_out o;
    int rc;

    if (errbuf && errbuf_len) errbuf[0] = '\0';
    if (written && written_len) written[0] = '\0';
    if (!folder || (!data && len) || (written && written_len <
                                      SA_FILE_NAME_MAX)) {
        sa__errf(errbuf, errbuf_len, "invalid argument");
        return SA_ERR_INVALID_ARGUMENT;
    }
    rc = sa__folder_claim(folder, name, claimed, sizeof claimed);
    if (rc != SA_OK) {
        if (rc == SA_ERR_NOMEM) sa__errf(errbuf, errbuf_len, "out of memory");
        else sa__errf(errbuf, errbuf_len, "no free name for '%s'",
                      name ? name : "");
        return rc == SA_ERR_NOMEM ? rc : SA_ERR_FILE;
    }
    sa__file_out_init(&o, folder);
    rc = sa__file_out_write(&o, data ? data : "", len, errbuf, errbuf_len);
    if (rc == SA_OK)
        rc = sa__file_out_commit(&o, claimed, written, written_len, errbuf,
                                errbuf_len);
    if (rc != SA_OK) sa__file_out_discard(&o);
    return rc;
}

const char *sa_folder_path(const sa_folder *folder)
{
    return sa__folder_path(folder);
}

void sa_folder_free(sa_folder *folder)
{
    sa__folder_free(folder);
}
