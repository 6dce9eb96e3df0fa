/*
 * test_image.c - JPEG/PNG header sniffing from memory and from files
 * (tests/fixtures images, hand-built headers, truncations, a JPEG whose
 * frame header sits after 70 KB of EXIF so the file reader has to seek).
 */
#include "harness.h"
#include "sa_internal.h"

#include <sys/stat.h>
#include <unistd.h>

/* SOI, APP0 (JFIF), APP1 (small), a fill byte, SOFn 800x600, then the
 * start of scan data. */
static size_t make_jpeg(unsigned char *buf, unsigned char sof, unsigned h,
                        unsigned w)
{
    static const unsigned char head[] = {
        0xFF, 0xD8,                                     /* SOI */
        0xFF, 0xE0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0x00, 0x01, 0x01, 0x00,
        0x00, 0x01, 0x00, 0x01, 0x00, 0x00,             /* APP0 */
        0xFF, 0xE1, 0x00, 0x06, 'E', 'x', 'i', 'f',     /* APP1 */
        0xFF, 0xD0,                                     /* RST0 (stray) */
        0xFF, 0x01,                                     /* TEM */
        0xFF, 0xC4, 0x00, 0x04, 0x00, 0x00,             /* DHT (not SOF) */
        0xFF, 0xCC, 0x00, 0x04, 0x00, 0x00,             /* DAC (not SOF) */
        0xFF, 0xFF,                                     /* fill byte */
    };
    size_t n = sizeof head;
    memcpy(buf, head, n);
    buf[n++] = 0xFF;
    buf[n++] = sof;
    buf[n++] = 0x00;
    buf[n++] = 0x11; /* length 17 */
    buf[n++] = 0x08; /* precision */
    buf[n++] = (unsigned char)(h >> 8);
    buf[n++] = (unsigned char)h;
    buf[n++] = (unsigned char)(w >> 8);
    buf[n++] = (unsigned char)w;
    buf[n++] = 0x03;
    memset(buf + n, 0x11, 9); /* components */
    n += 9;
    buf[n++] = 0xFF;
    buf[n++] = 0xDA; /* SOS follows */
    return n;
}

static size_t make_png(unsigned char *buf, uint32_t w, uint32_t h)
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G',
                                         0x0D, 0x0A, 0x1A, 0x0A};
    size_t n = 0;
    memcpy(buf, sig, 8);
    n = 8;
    memcpy(buf + n, "\0\0\0\x0dIHDR", 8);
    n += 8;
    buf[n++] = (unsigned char)(w >> 24);
    buf[n++] = (unsigned char)(w >> 16);
    buf[n++] = (unsigned char)(w >> 8);
    buf[n++] = (unsigned char)w;
    buf[n++] = (unsigned char)(h >> 24);
    buf[n++] = (unsigned char)(h >> 16);
    buf[n++] = (unsigned char)(h >> 8);
    buf[n++] = (unsigned char)h;
    memcpy(buf + n, "\x08\x02\0\0\0", 5);
    n += 5;
    memset(buf + n, 0, 4); /* CRC (not checked) */
    return n + 4;
}

TEST(jpeg_baseline_and_progressive)
{
    unsigned char buf[128];
    sa_image_info info;
    size_t n = make_jpeg(buf, 0xC0, 800, 600);
    sa_image_info_init(&info);
    CHECK_EQ_INT(sa_image_probe_buffer(buf, n, &info), SA_OK);
    CHECK_EQ_INT(info.format, SA_IMAGE_JPEG);
    CHECK_EQ_INT(info.width, 600);
    CHECK_EQ_INT(info.height, 800);
    n = make_jpeg(buf, 0xC2, 1600, 1200);
    CHECK_EQ_INT(sa_image_probe_buffer(buf, n, &info), SA_OK);
    CHECK_EQ_INT(info.width, 1200);
    CHECK_EQ_INT(info.height, 1600);
    n = make_jpeg(buf, 0xCF, 65535, 65535); /* SOF15, the largest size */
    CHECK_EQ_INT(sa_image_probe_buffer(buf, n, &info), SA_OK);
    CHECK_EQ_INT(info.width, 65535);
}

/* The probe refuses the n bytes at b: no JPEG or PNG it can read. */
static void refused(const void *b, size_t n)
{
    sa_image_info info;
    sa_image_info_init(&info);
    CHECK_EQ_INT(sa_image_probe_buffer(b, n, &info), SA_ERR_IMAGE_FORMAT);
}

TEST(jpeg_bad)
{
    unsigned char buf[128];
    sa_image_info info;
    size_t n = make_jpeg(buf, 0xC0, 800, 600), cut;
    sa_image_info_init(&info);
    /* every truncation before the frame size is complete */
    for (cut = 0; cut < n - 11; cut++) {
        int rc = sa_image_probe_buffer(buf, cut, &info);
        if (rc != SA_ERR_IMAGE_FORMAT) HARNESS_FAIL("cut %zu: %d", cut, rc);
        CHECK_EQ_INT(info.format, SA_IMAGE_UNKNOWN);
        CHECK_EQ_INT(info.width, 0);
    }
    refused(buf, make_jpeg(buf, 0xC0, 0, 600)); /* height 0 (DNL) */
    refused(buf, make_jpeg(buf, 0xC0, 800, 0));
    /* SOS, EOI or garbage before any SOF */
    {
        unsigned char sos[] = {0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x08, 1, 2, 3,
                               4, 5, 6};
        unsigned char eoi[] = {0xFF, 0xD8, 0xFF, 0xD9};
        unsigned char junk[] = {0xFF, 0xD8, 0x12, 0x34, 0x56};
        unsigned char shortlen[] = {0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x01};
        unsigned char shortsof[] = {0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x05,
                                    8, 1, 0, 1, 0, 3};
        unsigned char stuffed[] = {0xFF, 0xD8, 0xFF, 0x00};
        refused(sos, sizeof sos);
        refused(eoi, sizeof eoi);
        refused(junk, sizeof junk);
        refused(shortlen, sizeof shortlen);
        refused(shortsof, sizeof shortsof);
        refused(stuffed, sizeof stuffed);
    }
    /* a segment length pointing past the end */
    {
        unsigned char far[] = {0xFF, 0xD8, 0xFF, 0xE1, 0xFF, 0xFF, 0, 0};
        refused(far, sizeof far);
    }
}

TEST(png_header)
{
    unsigned char buf[64];
    sa_image_info info;
    size_t n = make_png(buf, 600, 800), cut;
    sa_image_info_init(&info);
    CHECK_EQ_INT(sa_image_probe_buffer(buf, n, &info), SA_OK);
    CHECK_EQ_INT(info.format, SA_IMAGE_PNG);
    CHECK_EQ_INT(info.width, 600);
    CHECK_EQ_INT(info.height, 800);
    CHECK_EQ_INT(sa_image_probe_buffer(buf, 24, &info), SA_OK);
    for (cut = 0; cut < 24; cut++) refused(buf, cut);
    refused(buf, make_png(buf, 0, 800));
    refused(buf, make_png(buf, 600, 0x80000000u));
    n = make_png(buf, 600, 800);
    buf[11] = 14; /* IHDR length must be 13 */
    refused(buf, n);
    n = make_png(buf, 600, 800);
    buf[12] = 'i'; /* not IHDR */
    refused(buf, n);
    n = make_png(buf, 600, 800);
    buf[1] = 'p'; /* bad signature */
    refused(buf, n);
}

TEST(buffer_arguments)
{
    sa_image_info info;
    sa_image_info_init(&info);
    CHECK_EQ_INT(sa_image_probe_buffer(NULL, 0, &info), SA_ERR_IMAGE_FORMAT);
    CHECK_EQ_INT(sa_image_probe_buffer(NULL, 5, &info),
                 SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(sa_image_probe_buffer("x", 1, NULL), SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(sa_image_probe_buffer("GIF89a", 6, &info),
                 SA_ERR_IMAGE_FORMAT);
    CHECK_EQ_INT(sa_image_probe_file(NULL, &info), SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(sa_image_probe_file("x", NULL), SA_ERR_INVALID_ARGUMENT);
}

/* Fixture images: the file and the buffer reader agree. */
TEST(fixtures)
{
    static const struct {
        const char *name;
        int rc, format;
        unsigned w, h;
    } rows[] = {
        {"portrait_sd.jpg", SA_OK, SA_IMAGE_JPEG, 600, 800},
        {"portrait_hd.jpg", SA_OK, SA_IMAGE_JPEG, 1200, 1600},
        {"portrait.png", SA_OK, SA_IMAGE_PNG, 600, 800},
        {"small.jpg", SA_OK, SA_IMAGE_JPEG, 300, 400},
        {"not_an_image.jpg", SA_ERR_IMAGE_FORMAT, SA_IMAGE_UNKNOWN, 0, 0},
    };
    size_t i;
    for (i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char path[512];
        sa_image_info a, b;
        size_t len = 0;
        char *data;
        sa_image_info_init(&a);
        sa_image_info_init(&b);
        snprintf(path, sizeof path, "%s/%s", SA_FIXTURES, rows[i].name);
        data = harness_slurp(path, &len);
        if (!data) {
            fprintf(stderr, "  (skipped %s: not present)\n", path);
            continue;
        }
        CHECK_EQ_INT(sa_image_probe_file(path, &a), rows[i].rc);
        CHECK_EQ_INT(sa_image_probe_buffer(data, len, &b), rows[i].rc);
        CHECK_EQ_INT(a.format, rows[i].format);
        CHECK_EQ_INT(a.width, rows[i].w);
        CHECK_EQ_INT(a.height, rows[i].h);
        CHECK(a.format == b.format && a.width == b.width &&
              a.height == b.height);
        free(data);
    }
}

static int write_file(const char *path, const unsigned char *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    size_t w;
    if (!f) return -1;
    w = fwrite(data, 1, n, f);
    return (fclose(f) == 0 && w == n) ? 0 : -1;
}

/* SOI, two APP1 segments of 65533 + 5000 payload bytes (about 70 KB of
 * EXIF, more than the reader's window and than one segment), then SOF2. */
static unsigned char *big_exif_jpeg(size_t *len)
{
    size_t cap = 2 + 4 + 65533 + 4 + 5000 + 128, n = 0;
    unsigned char *b = malloc(cap), tail[128];
    size_t tn;
    if (!b) return NULL;
    b[n++] = 0xFF;
    b[n++] = 0xD8;
    b[n++] = 0xFF;
    b[n++] = 0xE1;
    b[n++] = 0xFF;
    b[n++] = 0xFF; /* length 65535 */
    memset(b + n, 0xFF, 65533); /* payload full of marker-like bytes */
    n += 65533;
    b[n++] = 0xFF;
    b[n++] = 0xE1;
    b[n++] = (unsigned char)((5000 + 2) >> 8);
    b[n++] = (unsigned char)(5000 + 2);
    memset(b + n, 0xC0, 5000);
    n += 5000;
    tn = make_jpeg(tail, 0xC2, 1920, 1080);
    memcpy(b + n, tail + 2, tn - 2); /* without its SOI */
    n += tn - 2;
    *len = n;
    return b;
}

TEST(file_incremental_big_exif)
{
    char path[] = "/tmp/sa_test_image_XXXXXX";
    size_t len = 0, cut;
    unsigned char *img = big_exif_jpeg(&len);
    sa_image_info info;
    int fd;
    sa_image_info_init(&info);
    REQUIRE(img != NULL);
    fd = mkstemp(path);
    REQUIRE(fd >= 0);
    close(fd);
    REQUIRE(write_file(path, img, len) == 0);
    CHECK_EQ_INT(sa_image_probe_file(path, &info), SA_OK);
    CHECK_EQ_INT(info.format, SA_IMAGE_JPEG);
    CHECK_EQ_INT(info.width, 1080);
    CHECK_EQ_INT(info.height, 1920);
    CHECK_EQ_INT(sa_image_probe_buffer(img, len, &info), SA_OK);
    CHECK_EQ_INT(info.width, 1080);
    /* truncated files at several places, across the window boundary */
    for (cut = 1; cut < len; cut += 4093) {
        REQUIRE(write_file(path, img, cut) == 0);
        CHECK_EQ_INT(sa_image_probe_file(path, &info), SA_ERR_IMAGE_FORMAT);
    }
    REQUIRE(write_file(path, img, len - 20) == 0); /* inside the SOF */
    CHECK_EQ_INT(sa_image_probe_file(path, &info), SA_ERR_IMAGE_FORMAT);
    REQUIRE(write_file(path, img, 0) == 0); /* empty */
    CHECK_EQ_INT(sa_image_probe_file(path, &info), SA_ERR_IMAGE_FORMAT);
    unlink(path);
    free(img);
}

TEST(file_errors)
{
    char dir[] = "/tmp/sa_test_dir_XXXXXX";
    char fifo[600];
    sa_image_info info;
    sa_image_info_init(&info);
    CHECK_EQ_INT(sa_image_probe_file("/nonexistent/x.jpg", &info),
                 SA_ERR_FILE);
    REQUIRE(mkdtemp(dir) != NULL);
    CHECK_EQ_INT(sa_image_probe_file(dir, &info), SA_ERR_FILE);
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    if (mkfifo(fifo, 0600) == 0) {
        /* must neither block nor read it */
        CHECK_EQ_INT(sa_image_probe_file(fifo, &info), SA_ERR_FILE);
        unlink(fifo);
    }
    rmdir(dir);
    CHECK_EQ_INT(sa_image_probe_file("/dev/null", &info), SA_ERR_FILE);
}

int main(void)
{
    RUN(jpeg_baseline_and_progressive);
    RUN(jpeg_bad);
    RUN(png_header);
    RUN(buffer_arguments);
    RUN(fixtures);
    RUN(file_incremental_big_exif);
    RUN(file_errors);
    return harness_report();
}
