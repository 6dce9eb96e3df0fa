/* image.c - JPEG/PNG header sniffing: format, width and height, no decoder.
 *
 * JPEG/PNG header sniffing: format, width and height, from the
 * magic bytes and the first SOFn marker (JPEG) or IHDR chunk (PNG).  No
 * image library.  A file is read through a small window with pread(),
 * seeking over JPEG segments by their lengths, never as a whole.
 */
#include "sa_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define WINDOW_SIZE 4096

/* Bytes come from memory or from a file through a window. */
typedef struct source {
    const unsigned char *mem; /* memory source, or NULL for a file */
    size_t mem_len;
    int fd;
    unsigned char win[WINDOW_SIZE];
    uint64_t win_off; /* file offset of win[0] */
    size_t win_len;   /* valid bytes in win */
} source;

enum { SRC_OK = 0, SRC_EOF = 1, SRC_IO = 2 };

/* Fill the window with the file bytes starting at off. */
static int source_refill(source *s, uint64_t off)
{
    size_t got = 0;
    while (got < WINDOW_SIZE) {
        ssize_t n = pread(s->fd, s->win + got, WINDOW_SIZE - got,
                          (off_t)(off + got));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return SRC_IO;
        if (n == 0) break;
        got += (size_t)n;
    }
    s->win_off = off;
    s->win_len = got;
    return SRC_OK;
}

/* Copy n (<= 16) bytes at off into dst. */
static int source_read(source *s, uint64_t off, unsigned char *dst, size_t n)
{
    int rc;
    if (s->mem) {
        if (off > s->mem_len || n > s->mem_len - off) return SRC_EOF;
        memcpy(dst, s->mem + off, n);
        return SRC_OK;
    }
    if (off < s->win_off || off + n > s->win_off + s->win_len) {
        if (off > UINT64_MAX - WINDOW_SIZE) return SRC_EOF;
        rc = source_refill(s, off);
        if (rc != SRC_OK) return rc;
        if (n > s->win_len) return SRC_EOF;
    }
    memcpy(dst, s->win + (off - s->win_off), n);
    return SRC_OK;
}

static uint32_t be16(const unsigned char *p)
{
    return (uint32_t)p[0] << 8 | p[1];
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

/* Map a read failure to the answer: truncation is a format error. */
static int read_status(int rc)
{
    return rc == SRC_IO ? SA_ERR_FILE : SA_ERR_IMAGE_FORMAT;
}

/* PNG: signature, then an IHDR chunk of length 13 with non-zero sizes. */
static int probe_png(source *s, sa_image_info *out)
{
    unsigned char h[24];
    uint32_t w, ht;
    int rc = source_read(s, 0, h, sizeof h);
    if (rc != SRC_OK) return read_status(rc);
    if (be32(h + 8) != 13 || memcmp(h + 12, "IHDR", 4) != 0)
        return SA_ERR_IMAGE_FORMAT;
    w = be32(h + 16);
    ht = be32(h + 20);
    /* PNG limits both to 2^31 - 1. */
    if (w == 0 || ht == 0 || w > 0x7FFFFFFFu || ht > 0x7FFFFFFFu)
        return SA_ERR_IMAGE_FORMAT;
    out->format = SA_IMAGE_PNG;
    out->width = w;
    out->height = ht;
    return SA_OK;
}

/* SOF0..SOF15 carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share
 * the range but are not frames. */
static int is_sof(unsigned char m)
{
    return m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
}

/* Markers without a length field: TEM and RST0..7. */
static int is_standalone(unsigned char m)
{
    return m == 0x01 || (m >= 0xD0 && m <= 0xD7);
}

/* JPEG: SOI, then markers until the first SOFn.  Every step moves off
 * forward, so the walk ends at the end of the data. */
static int probe_jpeg(source *s, sa_image_info *out)
{
    uint64_t off = 2; /* after SOI */
    unsigned char b[8];
    int rc;

    for (;;) {
        unsigned char m;
        uint32_t seglen;
        rc = source_read(s, off, b, 2);
        if (rc != SRC_OK) return read_status(rc);
        if (b[0] != 0xFF) return SA_ERR_IMAGE_FORMAT;
        m = b[1];
        if (m == 0xFF) { /* fill byte */
            off++;
            continue;
        }
        off += 2;
        if (is_standalone(m)) continue;
        /* SOS (entropy data), EOI, a second SOI or a stuffed 00 before any
         * frame header: no size to be found. */
        if (m == 0xDA || m == 0xD9 || m == 0xD8 || m == 0x00)
            return SA_ERR_IMAGE_FORMAT;
        rc = source_read(s, off, b, 2);
        if (rc != SRC_OK) return read_status(rc);
        seglen = be16(b);
        if (seglen < 2) return SA_ERR_IMAGE_FORMAT;
        if (is_sof(m)) {
            /* length(2) precision(1) height(2) width(2) components(1) */
            if (seglen < 8) return SA_ERR_IMAGE_FORMAT;
            rc = source_read(s, off, b, 8);
            if (rc != SRC_OK) return read_status(rc);
            out->height = be16(b + 3);
            out->width = be16(b + 5);
            if (out->width == 0 || out->height == 0) {
                out->width = out->height = 0;
                return SA_ERR_IMAGE_FORMAT;
            }
            out->format = SA_IMAGE_JPEG;
            return SA_OK;
        }
        off += seglen;
    }
}

static const unsigned char png_magic[8] = {0x89, 'P', 'N', 'G',
                                           0x0D, 0x0A, 0x1A, 0x0A};

static int probe(source *s, sa_image_info *out)
{
    unsigned char h[8];
    int rc;

    out->format = SA_IMAGE_UNKNOWN;
    out->width = out->height = 0;
    rc = source_read(s, 0, h, 2);
    if (rc != SRC_OK) return read_status(rc);
    if (h[0] == 0xFF && h[1] == 0xD8)
        rc = probe_jpeg(s, out);
    else if (source_read(s, 0, h, 8) == SRC_OK &&
             memcmp(h, png_magic, 8) == 0)
        rc = probe_png(s, out);
    else
        rc = SA_ERR_IMAGE_FORMAT;
    if (rc != SA_OK) {
        out->format = SA_IMAGE_UNKNOWN;
        out->width = out->height = 0;
    }
    return rc;
}

static int probe_buffer(const void *data, size_t len, sa_image_info *out)
{
    source s;
    if (!out) return SA_ERR_INVALID_ARGUMENT;
    out->format = SA_IMAGE_UNKNOWN;
    out->width = out->height = 0;
    if (!data && len > 0) return SA_ERR_INVALID_ARGUMENT;
    if (!data) return SA_ERR_IMAGE_FORMAT;
    s.mem = data;
    s.mem_len = len;
    s.fd = -1;
    s.win_off = 0;
    s.win_len = 0;
    return probe(&s, out);
}

/* Probe an open descriptor of a regular file (the caller checked it). */
int sa__image_probe_fd(int fd, sa_image_info *out)
{
    source s;

    if (!out || fd < 0) return SA_ERR_INVALID_ARGUMENT;
    out->format = SA_IMAGE_UNKNOWN;
    out->width = out->height = 0;
    s.mem = NULL;
    s.mem_len = 0;
    s.fd = fd;
    s.win_off = 0;
    s.win_len = 0;
    return probe(&s, out);
}

/* Only regular files: a FIFO or a device would block or never end.
 * O_NONBLOCK keeps open() itself from blocking on a FIFO. */
static int probe_file(const char *path, sa_image_info *out)
{
    struct stat st;
    int fd, rc;

    if (!out) return SA_ERR_INVALID_ARGUMENT;
    out->format = SA_IMAGE_UNKNOWN;
    out->width = out->height = 0;
    if (!path) return SA_ERR_INVALID_ARGUMENT;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return SA_ERR_FILE;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return SA_ERR_FILE;
    }
    rc = sa__image_probe_fd(fd, out);
    close(fd);
    return rc;
}

/* ------------------------------------------------------------------ */
/* The public probes: the caller's sa_image_info is extendable          */
/* ------------------------------------------------------------------ */

void sa_image_info_init_sized(sa_image_info *info, size_t struct_size)
{
    sa_image_info d;

    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.format = SA_IMAGE_UNKNOWN;
    sa__struct_init(info, struct_size, &d, sizeof d);
}

/* The probe fills the library's full struct; the caller gets its
 * struct_size bytes of it (an out struct never initialised: refused
 * before anything is read). */
/* The probe of a buffer or (is_file) of the file at path, into the
 * caller's out. */
static int probe_out(const void *data, size_t len, int is_file,
                     const char *path, sa_image_info *out)
{
    sa_image_info full;
    int rc;

    if (!out) return SA_ERR_INVALID_ARGUMENT;
    sa_image_info_init(&full);
    if (sa__struct_out(out, &full, sizeof full) != SA_OK)
        return SA_ERR_INVALID_ARGUMENT;
    rc = is_file ? probe_file(path, &full) : probe_buffer(data, len, &full);
    sa__struct_out(out, &full, sizeof full);
    return rc;
}

int sa_image_probe_buffer(const void *data, size_t len, sa_image_info *out)
{
    return probe_out(data, len, 0, NULL, out);
}

int sa_image_probe_file(const char *path, sa_image_info *out)
{
    return probe_out(NULL, 0, 1, path, out);
}
