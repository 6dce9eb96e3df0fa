/*
 * test_composite.c - sa_composite_write: a JPEG and a PNG source with PNG
 * masks of other sizes (output size, pixels changed exactly where a mask
 * covers), a JPEG overlay identical to the source (no change), corrupt,
 * truncated and oversized images, bad arguments and an unwritable path.
 */
#include "harness.h"
#include "sa_internal.h"

#include <png.h>
#include <unistd.h>

typedef struct pixels {
    unsigned char *px; /* RGBA */
    unsigned w, h;
} pixels;

static char *fixture(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", SA_FIXTURES, name);
    return harness_slurp(path, len);
}

static void out_path(char *buf, size_t len, const char *tag)
{
    snprintf(buf, len, "/tmp/sa_test_composite_%ld_%s.png", (long)getpid(),
             tag);
}

static int read_png(const char *path, pixels *out)
{
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    out->px = NULL;
    if (!png_image_begin_read_from_file(&pi, path)) return 0;
    pi.format = PNG_FORMAT_RGBA;
    out->px = malloc(PNG_IMAGE_SIZE(pi));
    if (!out->px || !png_image_finish_read(&pi, NULL, out->px, 0, NULL)) {
        png_image_free(&pi);
        free(out->px);
        out->px = NULL;
        return 0;
    }
    out->w = pi.width;
    out->h = pi.height;
    return 1;
}

/* Mask k (0..2): an RGBA PNG of its own size, alpha 200 inside a box given
 * in fractions of the image, 0 outside. */
static const struct {
    unsigned w, h;
    double x0, y0, x1, y1;
} mask_spec[3] = {
    {50, 40, 0.10, 0.10, 0.40, 0.30},
    {33, 77, 0.55, 0.60, 0.90, 0.95},
    {120, 160, 0.30, 0.40, 0.60, 0.55},
};

static unsigned mask_alpha(int k, unsigned mx, unsigned my)
{
    double fx = (mx + 0.5) / mask_spec[k].w, fy = (my + 0.5) / mask_spec[k].h;
    return fx >= mask_spec[k].x0 && fx < mask_spec[k].x1 &&
                   fy >= mask_spec[k].y0 && fy < mask_spec[k].y1
               ? 200
               : 0;
}

static void *make_mask_alpha(int k, unsigned alpha, size_t *len)
{
    png_image pi;
    png_alloc_size_t n = 0;
    unsigned char *px, *out;
    unsigned x, y, w = mask_spec[k].w, h = mask_spec[k].h;

    px = calloc((size_t)w * h, 4);
    if (!px) return NULL;
    for (y = 0; y < h; y++) {
        for (x = 0; x < w; x++) {
            unsigned char *p = px + ((size_t)y * w + x) * 4;
            p[0] = 10;
            p[1] = 200;
            p[2] = 30;
            p[3] = (unsigned char)(mask_alpha(k, x, y) ? alpha : 0);
        }
    }
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    pi.width = w;
    pi.height = h;
    pi.format = PNG_FORMAT_RGBA;
    out = NULL;
    if (png_image_write_get_memory_size(pi, n, 0, px, 0, NULL))
        out = malloc(n);
    if (out && !png_image_write_to_memory(&pi, out, &n, 0, px, 0, NULL)) {
        free(out);
        out = NULL;
    }
    free(px);
    *len = n;
    return out;
}

static void *make_mask(int k, size_t *len)
{
    return make_mask_alpha(k, 200, len);
}

/* 1 when some mask covers source pixel (x, y) of a w x h source. */
static int covered(unsigned x, unsigned y, unsigned w, unsigned h)
{
    int k;
    for (k = 0; k < 3; k++) {
        unsigned mx = (unsigned)((unsigned long long)x * mask_spec[k].w / w);
        unsigned my = (unsigned)((unsigned long long)y * mask_spec[k].h / h);
        if (mask_alpha(k, mx, my)) return 1;
    }
    return 0;
}

static void check_source(const char *name)
{
    size_t src_len = 0, lens[3] = {0, 0, 0};
    char *src = fixture(name, &src_len);
    void *masks[3];
    char base_path[256], path[256], err[256];
    pixels base = {NULL, 0, 0}, out = {NULL, 0, 0};
    sa_image_info info;
    unsigned long n_cov = 0, n_changed = 0, n_stray = 0;
    unsigned x, y;
    int k;

    sa_image_info_init(&info);
    for (k = 0; k < 3; k++) masks[k] = make_mask(k, &lens[k]);
    REQUIRE(src && masks[0] && masks[1] && masks[2]);
    REQUIRE(sa_image_probe_buffer(src, src_len, &info) == SA_OK);
    out_path(base_path, sizeof base_path, "base");
    out_path(path, sizeof path, "out");
    /* no masks: the decoded source, for comparison */
    CHECK_EQ_INT(sa_composite_write(src, src_len, NULL, NULL, 0, base_path,
                                    err, sizeof err),
                 SA_OK);
    CHECK_EQ_INT(sa_composite_write(src, src_len, (const void *const *)masks,
                                    lens, 3, path, err, sizeof err),
                 SA_OK);
    CHECK_STR(err, "");
    REQUIRE(read_png(base_path, &base) && read_png(path, &out));
    CHECK_EQ_INT(out.w, info.width);
    CHECK_EQ_INT(out.h, info.height);
    REQUIRE(base.w == out.w && base.h == out.h);
    for (y = 0; y < out.h; y++) {
        for (x = 0; x < out.w; x++) {
            size_t i = ((size_t)y * out.w + x) * 4;
            int same = memcmp(base.px + i, out.px + i, 4) == 0;
            if (covered(x, y, out.w, out.h)) {
                n_cov++;
                n_changed += !same;
            } else {
                n_stray += !same;
            }
        }
    }
    CHECK(n_cov > out.w * out.h / 10);
    CHECK(n_changed >= n_cov * 99 / 100);
    CHECK_EQ_INT(n_stray, 0);
    free(base.px);
    free(out.px);
    remove(base_path);
    remove(path);
    for (k = 0; k < 3; k++) free(masks[k]);
    free(src);
}

TEST(jpeg_source)
{
    check_source("portrait_sd.jpg");
}

TEST(png_source)
{
    check_source("portrait.png");
}

/* A JPEG overlay identical to the source covers nothing. */
TEST(jpeg_overlay_same_as_source)
{
    size_t len = 0;
    char *src = fixture("portrait_sd.jpg", &len);
    const void *masks[1];
    char base_path[256], path[256], err[256];
    pixels base = {NULL, 0, 0}, out = {NULL, 0, 0};

    REQUIRE(src != NULL);
    masks[0] = src;
    out_path(base_path, sizeof base_path, "obase");
    out_path(path, sizeof path, "oout");
    CHECK_EQ_INT(sa_composite_write(src, len, NULL, NULL, 0, base_path, err,
                                    sizeof err),
                 SA_OK);
    CHECK_EQ_INT(sa_composite_write(src, len, masks, &len, 1, path, err,
                                    sizeof err),
                 SA_OK);
    REQUIRE(read_png(base_path, &base) && read_png(path, &out));
    CHECK(base.w == out.w && base.h == out.h &&
          memcmp(base.px, out.px, (size_t)out.w * out.h * 4) == 0);
    free(base.px);
    free(out.px);
    remove(base_path);
    remove(path);
    free(src);
}

/* CRC-32 as PNG chunks use it (bitwise; tests only). */
static unsigned long crc32_of(const unsigned char *p, size_t n)
{
    unsigned long c = 0xFFFFFFFFul;
    size_t i;
    int k;
    for (i = 0; i < n; i++) {
        c ^= p[i];
        for (k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0xEDB88320ul : c >> 1;
    }
    return c ^ 0xFFFFFFFFul;
}

/* Rewrite the IHDR size of a PNG (and its CRC). */
static void png_set_size(unsigned char *p, unsigned w, unsigned h)
{
    unsigned long crc;
    int i;
    for (i = 0; i < 4; i++) {
        p[16 + i] = (unsigned char)(w >> (24 - 8 * i));
        p[20 + i] = (unsigned char)(h >> (24 - 8 * i));
    }
    crc = crc32_of(p + 12, 17);
    for (i = 0; i < 4; i++) p[29 + i] = (unsigned char)(crc >> (24 - 8 * i));
}

/* Rewrite the SOF0 size of a JPEG. */
static int jpeg_set_size(unsigned char *p, size_t len, unsigned w, unsigned h)
{
    size_t i;
    for (i = 2; i + 9 < len; i++) {
        if (p[i] == 0xFF && p[i + 1] == 0xC0) {
            p[i + 5] = (unsigned char)(h >> 8);
            p[i + 6] = (unsigned char)h;
            p[i + 7] = (unsigned char)(w >> 8);
            p[i + 8] = (unsigned char)w;
            return 1;
        }
    }
    return 0;
}

static void check_decode_error(const void *src, size_t src_len,
                               const void *mask, size_t mask_len,
                               const char *msg_part)
{
    char path[256], err[256];
    const void *masks[1];
    FILE *f;
    masks[0] = mask;
    out_path(path, sizeof path, "bad");
    remove(path);
    CHECK_EQ_INT(sa_composite_write(src, src_len, masks, &mask_len,
                                    mask ? 1 : 0, path, err, sizeof err),
                 SA_ERR_IMAGE_DECODE);
    if (!strstr(err, msg_part))
        HARNESS_FAIL("message '%s' lacks '%s'", err, msg_part);
    f = fopen(path, "rb"); /* nothing written */
    CHECK(f == NULL);
    if (f) fclose(f);
}

TEST(corrupt_images)
{
    size_t jlen = 0, plen = 0, mlen = 0;
    char *jpg = fixture("portrait_sd.jpg", &jlen);
    char *png = fixture("portrait.png", &plen);
    unsigned char *mask = make_mask(0, &mlen), *big;
    static const char junk_jpeg[] = "\xff\xd8\xff\xe0\x00\x10JFIF garbage";

    REQUIRE(jpg && png && mask);
    check_decode_error(junk_jpeg, sizeof junk_jpeg - 1, NULL, 0, "source");
    check_decode_error(png, 100, NULL, 0, "source: bad PNG");
    check_decode_error("GIF89a....", 10, NULL, 0, "not a JPEG or PNG");
    check_decode_error(jpg, jlen, "plain text", 10, "mask 0");
    check_decode_error(jpg, jlen, mask, mlen / 2, "mask 0: bad PNG");
    check_decode_error(jpg, jlen, junk_jpeg, sizeof junk_jpeg - 1,
                       "mask 0: bad JPEG");
    /* a 10000 x 10000 PNG header: refused before any pixel buffer */
    big = malloc(mlen);
    REQUIRE(big != NULL);
    memcpy(big, mask, mlen);
    png_set_size(big, 10000, 10000);
    check_decode_error(jpg, jlen, big, mlen, "10000x10000 pixels");
    free(big);
    /* a 65000 x 65000 JPEG header */
    big = malloc(jlen);
    REQUIRE(big != NULL);
    memcpy(big, jpg, jlen);
    REQUIRE(jpeg_set_size(big, jlen, 65000, 65000));
    check_decode_error(big, jlen, NULL, 0, "65000x65000 pixels");
    free(big);
    free(mask);
    free(jpg);
    free(png);
}

TEST(arguments_and_files)
{
    size_t len = 0, mlen = 0;
    char *src = fixture("portrait.png", &len);
    void *mask = make_mask(1, &mlen);
    const void *masks[1];
    char err[256];

    REQUIRE(src && mask);
    masks[0] = mask;
    CHECK_EQ_INT(sa_composite_write(src, len, masks, &mlen, 1,
                                    "/nonexistent-dir/sa/x.png", err,
                                    sizeof err),
                 SA_ERR_FILE);
    CHECK(strstr(err, "cannot write") != NULL);
    CHECK_EQ_INT(sa_composite_write(NULL, 0, NULL, NULL, 0, "/tmp/x.png",
                                    err, sizeof err),
                 SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(sa_composite_write(src, len, NULL, &mlen, 1, "/tmp/x.png",
                                    err, sizeof err),
                 SA_ERR_INVALID_ARGUMENT);
    masks[0] = NULL;
    CHECK_EQ_INT(sa_composite_write(src, len, masks, &mlen, 1, "/tmp/x.png",
                                    NULL, 0),
                 SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(sa_composite_write(src, len, NULL, NULL, 0, NULL, NULL, 0),
                 SA_ERR_INVALID_ARGUMENT);
    free(mask);
    free(src);
}

/* The source, the two masks and the output file of concern_colours. */
typedef struct concerns_input {
    char *src;
    size_t src_len;
    void *masks[2];
    size_t lens[2];
    char path[256];
} concerns_input;

/* sa_composite_write_concerns of the first n masks (none: n 0) with the
 * names concerns (or none), at most max_side, succeeds; the PNG is read
 * into *out: 1, else 0. */
static int composite_read(const concerns_input *in,
                          const char *const *concerns, size_t n,
                          size_t max_side, pixels *out)
{
    char err[256];
    int rc = sa_composite_write_concerns(
        in->src, in->src_len, n ? (const void *const *)in->masks : NULL,
        n ? in->lens : NULL, concerns, n, max_side, in->path, err, sizeof err);
    CHECK_EQ_INT(rc, SA_OK);
    return rc == SA_OK && read_png(in->path, out);
}

/* The pixels of out under mask k's box: add how many to *hits, and how
 * many of them are not of the colour want to *wrong. */
static void count_covered(const pixels *out, int k, const unsigned char *want,
                          unsigned long *hits, unsigned long *wrong)
{
    unsigned x, y;
    for (y = 0; y < out->h; y++) {
        for (x = 0; x < out->w; x++) {
            unsigned mx = (unsigned)((unsigned long long)x * mask_spec[k].w /
                                     out->w);
            unsigned my = (unsigned)((unsigned long long)y * mask_spec[k].h /
                                     out->h);
            if (!mask_alpha(k, mx, my)) continue;
            (*hits)++;
            *wrong += memcmp(out->px + ((size_t)y * out->w + x) * 4, want,
                             3) != 0;
        }
    }
}

/* Opaque masks with concern names: every covered pixel is exactly the
 * concern's colour (the legend's), SD and HD names alike; without names
 * the colours are the palette's in mask order. */
TEST(concern_colours)
{
    concerns_input in;
    const char *concerns[2] = {"wrinkle", "hd_pore"};
    pixels out = {NULL, 0, 0};
    unsigned char want[2][3], got[3];
    unsigned long hits[2] = {0, 0}, wrong = 0;
    sa_image_info info;

    memset(&in, 0, sizeof in);
    in.src = fixture("portrait_sd.jpg", &in.src_len);
    in.masks[0] = make_mask_alpha(0, 255, &in.lens[0]);
    in.masks[1] = make_mask_alpha(1, 255, &in.lens[1]);
    out_path(in.path, sizeof in.path, "concerns");
    REQUIRE(in.src && in.masks[0] && in.masks[1]);
    sa_image_info_init(&info);
    REQUIRE(sa_image_probe_buffer(in.src, in.src_len, &info) == SA_OK);
    CHECK_EQ_INT(sa_concern_color("wrinkle", want[0]), 1);
    CHECK_EQ_INT(sa_concern_color("pore", want[1]), 1);
    CHECK_EQ_INT(sa_concern_color("hd_pore", got), 1);
    CHECK(memcmp(got, want[1], 3) == 0);
    CHECK(memcmp(want[0], want[1], 3) != 0);
    REQUIRE(composite_read(&in, concerns, 2, 0, &out));
    count_covered(&out, 0, want[0], &hits[0], &wrong);
    count_covered(&out, 1, want[1], &hits[1], &wrong);
    CHECK(hits[0] > 100 && hits[1] > 100);
    CHECK_EQ_INT(wrong, 0);
    free(out.px);
    /* no names: palette order */
    REQUIRE(composite_read(&in, NULL, 1, 0, &out));
    sa_palette_color(0, got);
    hits[0] = 0;
    count_covered(&out, 0, got, &hits[0], &wrong);
    CHECK(hits[0] > 100);
    CHECK_EQ_INT(wrong, 0);
    free(out.px);
    /* max_side: scaled down, aspect kept; a solid area keeps its colour */
    REQUIRE(composite_read(&in, concerns, 2, 100, &out));
    CHECK(out.w <= 100 && out.h <= 100);
    CHECK(out.w == 100 || out.h == 100);
    CHECK_NEAR((double)out.w / out.h, (double)info.width / info.height, 0.02);
    /* the centre of mask 0's box (fractions 0.25, 0.20) is wrinkle */
    CHECK(memcmp(out.px + ((size_t)(out.h * 0.20) * out.w +
                           (size_t)(out.w * 0.25)) * 4,
                 want[0], 3) == 0);
    free(out.px);
    /* a max_side above the size changes nothing */
    REQUIRE(composite_read(&in, NULL, 0, 100000, &out));
    CHECK_EQ_INT(out.w, info.width);
    free(out.px);
    remove(in.path);
    free(in.masks[0]);
    free(in.masks[1]);
    free(in.src);
}

/* The palette: every catalogue concern its own colour, SD = HD, unknown
 * names hashed (stable), NULL refused. */
TEST(palette)
{
    unsigned char c[16][3], a[3], b[3];
    size_t i, j, n = 0;
    for (i = 0; i < sa_action_count(); i++) {
        const char *name = sa_action_name(i);
        if (strncmp(name, "hd_", 3) != 0) continue;
        REQUIRE(n < 16);
        CHECK_EQ_INT(sa_concern_color(name, c[n]), 1);
        n++;
    }
    CHECK_EQ_INT(n, 16);
    for (i = 0; i < n; i++)
        for (j = i + 1; j < n; j++) CHECK(memcmp(c[i], c[j], 3) != 0);
    CHECK_EQ_INT(sa_concern_color("dark_circle_v2", a), 1);
    CHECK_EQ_INT(sa_concern_color("hd_dark_circle", b), 1);
    CHECK(memcmp(a, b, 3) == 0);
    CHECK_EQ_INT(sa_concern_color("sparkle", a), 0);
    CHECK_EQ_INT(sa_concern_color("sparkle", b), 0);
    CHECK(memcmp(a, b, 3) == 0);
    CHECK_EQ_INT(sa_concern_color(NULL, a), SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(sa_concern_color("pore", NULL), SA_ERR_INVALID_ARGUMENT);
    sa_palette_color(SA_PALETTE_SIZE + 1, a);
    sa_palette_color(1, b);
    CHECK(memcmp(a, b, 3) == 0);
}

int main(void)
{
    RUN(jpeg_source);
    RUN(png_source);
    RUN(jpeg_overlay_same_as_source);
    RUN(corrupt_images);
    RUN(arguments_and_files);
    RUN(concern_colours);
    RUN(palette);
    return harness_report();
}
