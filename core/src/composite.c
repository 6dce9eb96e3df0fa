/* composite.c - one overview image: the source with every mask blended over.
 *
 * One overview image: the source with every mask tinted and
 * blended over it (sa_composite_write).
 *
 * Decoding: JPEG with libjpeg, whose default error handler calls exit():
 * it is replaced by one that longjmps back here (and one that prints
 * nothing); PNG with libpng's simplified API (png_image), which catches
 * its own errors.  Every image is decoded to 8-bit RGBA.  Images over
 * COMPOSITE_MAX_PIXELS are refused after reading their header, before any
 * pixel buffer is allocated, so a hostile mask cannot exhaust memory.
 *
 * Coverage of a mask at a pixel: a mask with an alpha channel (the PNG
 * masks of enable_mask_overlay=false) covers by its alpha.  A mask without
 * one (the JPEG overlays of enable_mask_overlay=true: the mask already
 * blended onto the photo, or an RGB PNG) covers where it differs from the
 * source: the largest channel difference d gives (d - 12) * 4, clamped to
 * 0..255, so JPEG noise (d <= 12) leaves the pixel alone.
 *
 * Each mask is scaled to the source size (nearest neighbour) and blended
 * as tint * coverage over the pixel, the tint being its concern's colour
 * (sa_concern_color, palette.c: the colours legends show) or, without a
 * concern, sa_palette_color(i); the source's own alpha is kept.  The
 * output is an RGB PNG, or RGBA when the source has alpha.
 *
 * Memory: pixel buffers through libc (the call has no client and no
 * sa_mem); libjpeg and libpng allocate their own state with malloc and
 * free it before returning.
 */
#include "sa_internal.h"

#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>

#define COMPOSITE_MAX_PIXELS 40000000u
#define NOISE_FLOOR 12
#define NOISE_GAIN 4

typedef struct image {
    unsigned char *px; /* w * h * 4 bytes, RGBA */
    uint32_t w, h;
    int has_alpha;
} image;

static int too_many_pixels(uint32_t w, uint32_t h, char *err, size_t errlen,
                           const char *what)
{
    if (w == 0 || h == 0 ||
        (uint64_t)w * h > (uint64_t)COMPOSITE_MAX_PIXELS) {
        sa__errf(err, errlen, "%s: %ux%u pixels (at most %u allowed)", what,
                 (unsigned)w, (unsigned)h, COMPOSITE_MAX_PIXELS);
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* JPEG                                                                */
/* ------------------------------------------------------------------ */

typedef struct jpeg_err {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
} jpeg_err;

static void jpeg_err_exit(j_common_ptr cinfo)
{
    jpeg_err *e = (jpeg_err *)(void *)cinfo->err;
    longjmp(e->jump, 1);
}

static void jpeg_err_silent(j_common_ptr cinfo)
{
    (void)cinfo;
}

/* RGB rows (3 bytes a pixel, packed at the start of each 4w-byte row) to
 * RGBA, in place, from the end. */
static void rgb_rows_to_rgba(image *img)
{
    size_t y, x;
    for (y = 0; y < img->h; y++) {
        unsigned char *row = img->px + y * (size_t)img->w * 4;
        for (x = img->w; x-- > 0;) {
            row[x * 4 + 3] = 255;
            row[x * 4 + 2] = row[x * 3 + 2];
            row[x * 4 + 1] = row[x * 3 + 1];
            row[x * 4 + 0] = row[x * 3 + 0];
        }
    }
}

/* Decode after jpeg_read_header; longjmps out on a libjpeg error. */
static int jpeg_pixels(struct jpeg_decompress_struct *cinfo, image *img,
                       unsigned char *volatile *px, const char *what,
                       char *err, size_t errlen)
{
    if (too_many_pixels(cinfo->image_width, cinfo->image_height, err, errlen,
                        what))
        return SA_ERR_IMAGE_DECODE;
    cinfo->out_color_space = JCS_RGB;
    jpeg_start_decompress(cinfo);
    if (cinfo->output_components != 3) {
        sa__errf(err, errlen, "%s: JPEG colour space not supported", what);
        return SA_ERR_IMAGE_DECODE;
    }
    img->w = cinfo->output_width;
    img->h = cinfo->output_height;
    *px = sa__malloc(NULL, (size_t)img->w * img->h * 4);
    if (!*px) return SA_ERR_NOMEM;
    while (cinfo->output_scanline < cinfo->output_height) {
        JSAMPROW row = *px + (size_t)cinfo->output_scanline * img->w * 4;
        if (jpeg_read_scanlines(cinfo, &row, 1) != 1) {
            sa__errf(err, errlen, "%s: JPEG data ends early", what);
            return SA_ERR_IMAGE_DECODE;
        }
    }
    jpeg_finish_decompress(cinfo);
    return SA_OK;
}

static int decode_jpeg(const unsigned char *data, size_t len, image *img,
                       const char *what, char *err, size_t errlen)
{
    struct jpeg_decompress_struct cinfo;
    jpeg_err e;
    unsigned char *volatile px = NULL;
    int rc;

    if (len > ULONG_MAX) return SA_ERR_IMAGE_DECODE;
    cinfo.err = jpeg_std_error(&e.pub);
    e.pub.error_exit = jpeg_err_exit;
    e.pub.output_message = jpeg_err_silent;
    if (setjmp(e.jump)) {
        char msg[JMSG_LENGTH_MAX];
        e.pub.format_message((j_common_ptr)&cinfo, msg);
        sa__errf(err, errlen, "%s: bad JPEG: %s", what, msg);
        jpeg_destroy_decompress(&cinfo);
        sa__free(NULL, px);
        return SA_ERR_IMAGE_DECODE;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);
    rc = jpeg_pixels(&cinfo, img, &px, what, err, errlen);
    jpeg_destroy_decompress(&cinfo);
    if (rc != SA_OK) {
        sa__free(NULL, px);
        return rc;
    }
    img->px = px;
    img->has_alpha = 0;
    rgb_rows_to_rgba(img);
    return SA_OK;
}

/* ------------------------------------------------------------------ */
/* PNG                                                                 */
/* ------------------------------------------------------------------ */

static int decode_png(const unsigned char *data, size_t len, image *img,
                      const char *what, char *err, size_t errlen)
{
    png_image pi;
    unsigned char *px;

    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&pi, data, len)) {
        sa__errf(err, errlen, "%s: bad PNG: %s", what, pi.message);
        png_image_free(&pi);
        return SA_ERR_IMAGE_DECODE;
    }
    if (too_many_pixels(pi.width, pi.height, err, errlen, what)) {
        png_image_free(&pi);
        return SA_ERR_IMAGE_DECODE;
    }
    img->has_alpha = (pi.format & PNG_FORMAT_FLAG_ALPHA) != 0;
    pi.format = PNG_FORMAT_RGBA;
    px = sa__malloc(NULL, (size_t)pi.width * pi.height * 4);
    if (!px) {
        png_image_free(&pi);
        return SA_ERR_NOMEM;
    }
    if (!png_image_finish_read(&pi, NULL, px, 0, NULL)) {
        sa__errf(err, errlen, "%s: bad PNG: %s", what, pi.message);
        png_image_free(&pi);
        sa__free(NULL, px);
        return SA_ERR_IMAGE_DECODE;
    }
    img->px = px;
    img->w = pi.width;
    img->h = pi.height;
    return SA_OK;
}

static int decode(const void *data, size_t len, image *img, const char *what,
                  char *err, size_t errlen)
{
    const unsigned char *p = data;
    memset(img, 0, sizeof *img);
    if (len >= 8 && png_sig_cmp(p, 0, 8) == 0)
        return decode_png(p, len, img, what, err, errlen);
    if (len >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF)
        return decode_jpeg(p, len, img, what, err, errlen);
    sa__errf(err, errlen, "%s: not a JPEG or PNG", what);
    return SA_ERR_IMAGE_DECODE;
}

/* ------------------------------------------------------------------ */
/* Blending and writing                                                */
/* ------------------------------------------------------------------ */

static unsigned coverage(const unsigned char *m, const unsigned char *s,
                         int mask_alpha)
{
    int d = 0, k, v;
    if (mask_alpha) return m[3];
    for (k = 0; k < 3; k++) {
        v = m[k] > s[k] ? m[k] - s[k] : s[k] - m[k];
        if (v > d) d = v;
    }
    if (d <= NOISE_FLOOR) return 0;
    v = (d - NOISE_FLOOR) * NOISE_GAIN;
    return v > 255 ? 255u : (unsigned)v;
}

static void blend_mask(image *src, const image *mask,
                       const unsigned char tint[3])
{
    size_t x, y;
    int k;
    for (y = 0; y < src->h; y++) {
        size_t my = (size_t)((uint64_t)y * mask->h / src->h);
        const unsigned char *mrow = mask->px + my * (size_t)mask->w * 4;
        unsigned char *srow = src->px + y * (size_t)src->w * 4;
        for (x = 0; x < src->w; x++) {
            size_t mx = (size_t)((uint64_t)x * mask->w / src->w);
            unsigned char *s = srow + x * 4;
            unsigned a = coverage(mrow + mx * 4, s, mask->has_alpha);
            if (a == 0) continue;
            for (k = 0; k < 3; k++)
                s[k] = (unsigned char)((s[k] * (255 - a) + tint[k] * a +
                                        127) / 255);
        }
    }
}

/* RGBA to packed RGB, in place, from the start. */
static void rgba_to_rgb(image *img)
{
    size_t i, n = (size_t)img->w * img->h;
    for (i = 0; i < n; i++) {
        img->px[i * 3 + 0] = img->px[i * 4 + 0];
        img->px[i * 3 + 1] = img->px[i * 4 + 1];
        img->px[i * 3 + 2] = img->px[i * 4 + 2];
    }
}

static int write_png(image *img, const char *path, char *err, size_t errlen)
{
    png_image pi;
    FILE *f;
    int ok;

    f = fopen(path, "wb");
    if (!f) {
        sa__errf(err, errlen, "cannot write '%s': %s", path,
                 strerror(errno));
        return SA_ERR_FILE;
    }
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    pi.width = img->w;
    pi.height = img->h;
    pi.format = img->has_alpha ? PNG_FORMAT_RGBA : PNG_FORMAT_RGB;
    if (!img->has_alpha) rgba_to_rgb(img);
    ok = png_image_write_to_stdio(&pi, f, 0, img->px, 0, NULL);
    if (!ok) sa__errf(err, errlen, "cannot write '%s': %s", path, pi.message);
    png_image_free(&pi);
    if (fclose(f) != 0 && ok) {
        sa__errf(err, errlen, "cannot write '%s': %s", path,
                 strerror(errno));
        ok = 0;
    }
    if (!ok) {
        remove(path);
        return SA_ERR_FILE;
    }
    return SA_OK;
}

static int check_args(const void *source, size_t source_len,
                      const void *const *masks, const size_t *mask_lens,
                      size_t n_masks, const char *out_path)
{
    size_t i;
    if (!source || source_len == 0 || !out_path || !out_path[0])
        return SA_ERR_INVALID_ARGUMENT;
    if (n_masks && (!masks || !mask_lens)) return SA_ERR_INVALID_ARGUMENT;
    for (i = 0; i < n_masks; i++) {
        if (!masks[i]) return SA_ERR_INVALID_ARGUMENT;
    }
    return SA_OK;
}

int sa_composite_write(const void *source, size_t source_len,
                       const void *const *masks, const size_t *mask_lens,
                       size_t n_masks, const char *out_path, char *errbuf,
                       size_t errbuf_len)
{
    return sa_composite_write_concerns(source, source_len, masks, mask_lens,
                                       NULL, n_masks, 0, out_path, errbuf,
                                       errbuf_len);
}

/* Scale img down so that neither side exceeds max_side: each output pixel
 * the average of the source pixels its box covers (every channel, alpha
 * included).  In place: the new pixels go to a new buffer. */
static int shrink(image *img, size_t max_side)
{
    uint32_t w = img->w, h = img->h, nw, nh, x, y;
    unsigned char *out;

    if (max_side == 0 || (w <= max_side && h <= max_side)) return SA_OK;
    if (w >= h) {
        nw = (uint32_t)max_side;
        nh = (uint32_t)(((uint64_t)h * max_side + w / 2) / w);
    } else {
        nh = (uint32_t)max_side;
        nw = (uint32_t)(((uint64_t)w * max_side + h / 2) / h);
    }
    if (nw == 0) nw = 1;
    if (nh == 0) nh = 1;
    out = sa__malloc(NULL, (size_t)nw * nh * 4);
    if (!out) return SA_ERR_NOMEM;
    for (y = 0; y < nh; y++) {
        uint32_t y0 = (uint32_t)((uint64_t)y * h / nh);
        uint32_t y1 = (uint32_t)((uint64_t)(y + 1) * h / nh);
        if (y1 <= y0) y1 = y0 + 1;
        for (x = 0; x < nw; x++) {
            uint32_t x0 = (uint32_t)((uint64_t)x * w / nw);
            uint32_t x1 = (uint32_t)((uint64_t)(x + 1) * w / nw);
            uint64_t sum[4] = {0, 0, 0, 0}, n;
            uint32_t sx, sy;
            int k;
            if (x1 <= x0) x1 = x0 + 1;
            for (sy = y0; sy < y1; sy++) {
                const unsigned char *p = img->px + ((size_t)sy * w + x0) * 4;
                for (sx = x0; sx < x1; sx++, p += 4)
                    for (k = 0; k < 4; k++) sum[k] += p[k];
            }
            n = (uint64_t)(x1 - x0) * (y1 - y0);
            for (k = 0; k < 4; k++)
                out[((size_t)y * nw + x) * 4 + k] =
                    (unsigned char)((sum[k] + n / 2) / n);
        }
    }
    sa__free(NULL, img->px);
    img->px = out;
    img->w = nw;
    img->h = nh;
    return SA_OK;
}

int sa_composite_write_concerns(const void *source, size_t source_len,
                                const void *const *masks,
                                const size_t *mask_lens,
                                const char *const *concerns, size_t n_masks,
                                size_t max_side, const char *out_path,
                                char *errbuf, size_t errbuf_len)
{
    unsigned char tint[3];
    image src, mask;
    char what[48];
    size_t i;
    int rc;

    if (errbuf && errbuf_len) errbuf[0] = '\0';
    rc = check_args(source, source_len, masks, mask_lens, n_masks, out_path);
    if (rc != SA_OK) {
        sa__errf(errbuf, errbuf_len, "missing source, mask or output path");
        return rc;
    }
    rc = decode(source, source_len, &src, "source", errbuf, errbuf_len);
    for (i = 0; rc == SA_OK && i < n_masks; i++) {
        snprintf(what, sizeof what, "mask %zu", i);
        rc = decode(masks[i], mask_lens[i], &mask, what, errbuf, errbuf_len);
        if (rc != SA_OK) break;
        if (concerns && concerns[i])
            sa_concern_color(concerns[i], tint);
        else
            sa_palette_color(i, tint);
        blend_mask(&src, &mask, tint);
        sa__free(NULL, mask.px);
    }
    if (rc == SA_OK) rc = shrink(&src, max_side);
    if (rc == SA_OK) rc = write_png(&src, out_path, errbuf, errbuf_len);
    if (rc == SA_ERR_NOMEM) sa__errf(errbuf, errbuf_len, "out of memory");
    sa__free(NULL, src.px);
    return rc;
}
