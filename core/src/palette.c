/* palette.c - the colours concerns are drawn in: one palette for all.
 *
 * The colours concerns are drawn in: one palette that
 * composites (composite.c) and every legend (the bindings' views) use, so
 * a legend matches the blend exactly.
 *
 * The first 16 colours belong to the 16 concerns of the catalogue, in its
 * published HD order (an SD name takes its HD counterpart's colour); the
 * other 4 only serve names the catalogue does not know, picked by an
 * FNV-1a hash of the name.  The colours are a set of 20 chosen to be told
 * apart (after Sasha Trubetskoy's list), none near black or white, so
 * each reads on a light and a dark page.
 */
#include "sa_internal.h"

#include <string.h>

static const unsigned char palette[SA_PALETTE_SIZE][3] = {
    {230, 25, 75},   /* wrinkle: red */
    {0, 130, 200},   /* pore: blue */
    {255, 225, 25},  /* texture: yellow */
    {60, 180, 75},   /* acne: green */
    {245, 130, 48},  /* oiliness: orange */
    {145, 30, 180},  /* radiance: purple */
    {70, 240, 240},  /* eye_bag: cyan */
    {240, 50, 230},  /* age_spot: magenta */
    {210, 245, 60},  /* dark_circle: lime */
    {250, 190, 212}, /* droopy_upper_eyelid: pink */
    {0, 128, 128},   /* droopy_lower_eyelid: teal */
    {220, 190, 255}, /* firmness: lavender */
    {170, 110, 40},  /* moisture: brown */
    {128, 0, 0},     /* redness: maroon */
    {170, 255, 195}, /* tear_trough: mint */
    {128, 128, 0},   /* skin_type: olive */
    {255, 215, 180}, /* unknown names: apricot */
    {0, 0, 128},     /* navy */
    {128, 128, 128}, /* grey */
    {255, 250, 200}, /* beige */
};

void sa_palette_color(size_t i, unsigned char rgb[3])
{
    if (!rgb) return;
    memcpy(rgb, palette[i % SA_PALETTE_SIZE], 3);
}

int sa_concern_color(const char *concern, unsigned char rgb[3])
{
    int k;
    uint32_t h = 2166136261u;
    const unsigned char *p;

    if (!concern || !rgb) return SA_ERR_INVALID_ARGUMENT;
    k = sa__catalog_find(concern);
    if (k >= 0) {
        if (sa__catalog_tier(k) == SA_TIER_SD) k = sa__catalog_counterpart(k);
        if (k >= 0 && k < 16) {
            memcpy(rgb, palette[k], 3);
            return 1;
        }
    }
    for (p = (const unsigned char *)concern; *p; p++) {
        h ^= *p;
        h *= 16777619u;
    }
    memcpy(rgb, palette[h % SA_PALETTE_SIZE], 3);
    return 0;
}
