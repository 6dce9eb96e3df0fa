/* catalog.c - the API's data tables: actions, units, miniserver_args, errors.
 *
 * The data tables of the API (shared/API.md §4, §5, §8.3, §11):
 * dst_actions with their tiers, counterparts and result regions, the unit
 * table, the documented miniserver_args keys and the engine error codes.
 * Everything here is read-only data plus validation with messages that
 * say what to fix.
 */
#include "sa_internal.h"

#include <string.h>

#define N_ACTIONS 32
#define N_PER_TIER 16

static const char *const regions_whole[] = {"whole", NULL};
static const char *const regions_hd_wrinkle[] = {
    "forehead", "glabellar", "crowfeet", "periocular",
    "nasolabial", "marionette", "whole", NULL};
static const char *const regions_hd_pore[] = {"forehead", "nose", "cheek",
                                              "whole", NULL};
static const char *const regions_skin_type[] = {"whole", "t_zone", "u_zone",
                                                NULL};

typedef struct action_entry {
    const char *name;
    int tier;
    int counterpart;             /* index in the other tier */
    const char *const *regions;  /* result regions, NULL-terminated */
} action_entry;

/* The published enum order (API.md §4): 16 HD, then 16 SD.  Entry i and
 * i + 16 are the same concern. */
static const action_entry actions[N_ACTIONS] = {
    {"hd_wrinkle", SA_TIER_HD, 16, regions_hd_wrinkle},
    {"hd_pore", SA_TIER_HD, 17, regions_hd_pore},
    {"hd_texture", SA_TIER_HD, 18, regions_whole},
    {"hd_acne", SA_TIER_HD, 19, regions_whole},
    {"hd_oiliness", SA_TIER_HD, 20, regions_whole},
    {"hd_radiance", SA_TIER_HD, 21, regions_whole},
    {"hd_eye_bag", SA_TIER_HD, 22, regions_whole},
    {"hd_age_spot", SA_TIER_HD, 23, regions_whole},
    {"hd_dark_circle", SA_TIER_HD, 24, regions_whole},
    {"hd_droopy_upper_eyelid", SA_TIER_HD, 25, regions_whole},
    {"hd_droopy_lower_eyelid", SA_TIER_HD, 26, regions_whole},
    {"hd_firmness", SA_TIER_HD, 27, regions_whole},
    {"hd_moisture", SA_TIER_HD, 28, regions_whole},
    {"hd_redness", SA_TIER_HD, 29, regions_whole},
    {"hd_tear_trough", SA_TIER_HD, 30, regions_whole},
    {"hd_skin_type", SA_TIER_HD, 31, regions_skin_type},
    {"wrinkle", SA_TIER_SD, 0, regions_whole},
    {"pore", SA_TIER_SD, 1, regions_whole},
    {"texture", SA_TIER_SD, 2, regions_whole},
    {"acne", SA_TIER_SD, 3, regions_whole},
    {"oiliness", SA_TIER_SD, 4, regions_whole},
    {"radiance", SA_TIER_SD, 5, regions_whole},
    {"eye_bag", SA_TIER_SD, 6, regions_whole},
    {"age_spot", SA_TIER_SD, 7, regions_whole},
    {"dark_circle_v2", SA_TIER_SD, 8, regions_whole},
    {"droopy_upper_eyelid", SA_TIER_SD, 9, regions_whole},
    {"droopy_lower_eyelid", SA_TIER_SD, 10, regions_whole},
    {"firmness", SA_TIER_SD, 11, regions_whole},
    {"moisture", SA_TIER_SD, 12, regions_whole},
    {"redness", SA_TIER_SD, 13, regions_whole},
    {"tear_trough", SA_TIER_SD, 14, regions_whole},
    {"skin_type", SA_TIER_SD, 15, regions_skin_type},
};

/* Units by tier and by group of four concerns (API.md §11). */
static const int unit_table[2][4] = {
    {9, 12, 14, 16},  /* SD: 1-4, 5-8, 9-12, 13-16 */
    {12, 16, 20, 22}, /* HD */
};

/* HD concerns that take the dark-background triplet (API.md §5). */
static const char *const dark_bg_concerns[] = {
    "hd_pore", "hd_wrinkle", "hd_acne", "hd_texture",
    "hd_oiliness", "hd_age_spot", "hd_redness", "hd_firmness"};
#define N_DARK_BG (sizeof dark_bg_concerns / sizeof dark_bg_concerns[0])

typedef struct engine_error {
    const char *code;
    const char *hint;
} engine_error;

/* EngineErrorCode enum, the skin image-quality codes and the platform
 * codes listed in API.md §8.3. */
static const engine_error engine_errors[] = {
    {"error_exceed_max_image_size",
     "the image resolution is too large; keep the long side at most 4096 px"},
    {"exceed_max_filesize", "the image file is too big; keep it under 10 MB"},
    {"invalid_parameter", "the engine refused a request parameter"},
    {"error_download_image",
     "the server could not download the source image; check the image URL "
     "or upload the file again"},
    {"error_download_mask", "the server could not download a mask"},
    {"error_decode_image",
     "the server could not decode the image; send a valid JPEG or PNG"},
    {"error_decode_mask", "the server could not decode a mask"},
    {"error_nsfw_content_detected",
     "the image was flagged as inappropriate content"},
    {"error_no_face",
     "no face was found; use a photo with one front-facing face"},
    {"error_pose",
     "pose detection failed; face the camera with a neutral pose"},
    {"error_face_parsing",
     "face segmentation failed; use an evenly lit, unobstructed face"},
    {"error_inference", "the analysis pipeline failed; try again"},
    {"exceed_nsfw_retry_limits",
     "too many images were flagged as inappropriate content"},
    {"error_upload", "the server could not store the results; try again"},
    {"unknown_internal_error",
     "internal server error (also reported when the image upload was "
     "skipped); upload the image again and retry"},
    {"error_below_min_image_size",
     "the image is too small: the short side must be at least 480 px (SD) "
     "or 1080 px (HD)"},
    {"error_src_face_too_small",
     "the face is too small: it must be wider than 60% of the image width"},
    {"error_src_face_out_of_bound", "the face is partly outside the image"},
    {"error_lighting_dark",
     "the photo is too dark; use even, bright lighting"},
    {"error_multiple_people",
     "more than one person is in the photo; use a photo of one person"},
    {"error_large_face_angle",
     "the face is turned too far; face the camera directly"},
    {"error_unsupport_ratio",
     "the image aspect ratio is not supported; use a portrait photo"},
};

/* ------------------------------------------------------------------ */
/* Actions                                                             */
/* ------------------------------------------------------------------ */

int sa__catalog_find(const char *name)
{
    int i;
    if (!name) return -1;
    for (i = 0; i < N_ACTIONS; i++)
        if (strcmp(actions[i].name, name) == 0) return i;
    return -1;
}

int sa__catalog_tier(int i)
{
    if (i < 0 || i >= N_ACTIONS) return SA_ERR_UNKNOWN_ACTION;
    return actions[i].tier;
}

int sa__catalog_counterpart(int i)
{
    if (i < 0 || i >= N_ACTIONS) return -1;
    return actions[i].counterpart;
}

const char *const *sa__catalog_regions(int i)
{
    if (i < 0 || i >= N_ACTIONS) return NULL;
    return actions[i].regions;
}

int sa__catalog_units(int tier, size_t n)
{
    if ((tier != SA_TIER_SD && tier != SA_TIER_HD) || n < 1 ||
        n > SA_MAX_ACTIONS)
        return -1;
    return unit_table[tier][(n - 1) / 4];
}

size_t sa_action_count(void)
{
    return N_ACTIONS;
}

const char *sa_action_name(size_t i)
{
    return i < N_ACTIONS ? actions[i].name : NULL;
}

int sa_action_tier(const char *name)
{
    int i = sa__catalog_find(name);
    return i < 0 ? SA_ERR_UNKNOWN_ACTION : actions[i].tier;
}

const char *sa_action_counterpart(const char *name)
{
    int k = sa__catalog_counterpart(sa__catalog_find(name));
    return k >= 0 ? actions[k].name : NULL;
}

size_t sa_default_actions(int tier, const char **out, size_t out_len)
{
    size_t n = 0;
    int i;

    if (tier != SA_TIER_SD && tier != SA_TIER_HD) return 0;
    for (i = 0; i < N_ACTIONS; i++) {
        if (actions[i].tier != tier) continue;
        if (out && n < out_len) out[n] = actions[i].name;
        n++;
    }
    return n;
}

/* ------------------------------------------------------------------ */
/* Suggestions                                                         */
/* ------------------------------------------------------------------ */

#define EDIT_MAX_LEN 64

static char lower_ascii(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* Levenshtein distance, ASCII case-insensitive; strings longer than
 * EDIT_MAX_LEN are "far" (EDIT_MAX_LEN + 1). */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), i, j;
    size_t prev[EDIT_MAX_LEN + 1], cur[EDIT_MAX_LEN + 1];

    if (la > EDIT_MAX_LEN || lb > EDIT_MAX_LEN) return EDIT_MAX_LEN + 1;
    for (j = 0; j <= lb; j++) prev[j] = j;
    for (i = 1; i <= la; i++) {
        cur[0] = i;
        for (j = 1; j <= lb; j++) {
            size_t cost = lower_ascii(a[i - 1]) != lower_ascii(b[j - 1]);
            size_t best = prev[j - 1] + cost;
            if (prev[j] + 1 < best) best = prev[j] + 1;
            if (cur[j - 1] + 1 < best) best = cur[j - 1] + 1;
            cur[j] = best;
        }
        memcpy(prev, cur, (lb + 1) * sizeof prev[0]);
    }
    return prev[lb];
}

/* Largest distance still worth a "did you mean". */
static size_t suggest_limit(const char *name)
{
    size_t lim = strlen(name) / 3;
    if (lim < 1) lim = 1;
    if (lim > 3) lim = 3;
    return lim;
}

/* The nearest action name, preferring `tier` on ties; NULL if none is
 * close enough. */
static const char *nearest_action(const char *name, int tier)
{
    const char *best = NULL;
    size_t best_d = suggest_limit(name) + 1;
    int i;
    for (i = 0; i < N_ACTIONS; i++) {
        size_t d = edit_distance(name, actions[i].name);
        if (d < best_d || (d == best_d && best &&
                           actions[i].tier == tier &&
                           sa_action_tier(best) != tier)) {
            best = actions[i].name;
            best_d = d;
        }
    }
    return best;
}

/* ------------------------------------------------------------------ */
/* Validation of dst_actions                                           */
/* ------------------------------------------------------------------ */

static int report_unknown(const char *name, int tier_hint, char *err,
                          size_t errlen)
{
    const char *near;
    if (tier_hint < 0)
        tier_hint = strncmp(name, "hd_", 3) == 0 ? SA_TIER_HD : SA_TIER_SD;
    near = nearest_action(name, tier_hint);
    if (near)
        sa__errf(err, errlen, "unknown action '%.64s' (did you mean '%s'?)",
                 name, near);
    else
        sa__errf(err, errlen,
                 "unknown action '%.64s' (not one of the 32 documented "
                 "dst_actions: wrinkle, pore, ... or hd_wrinkle, ...)",
                 name);
    return SA_ERR_UNKNOWN_ACTION;
}

/* Validates as documented in sa_internal.h, in this order: unknown names,
 * count, mixed tiers.  A NULL list with n > 0 or a
 * NULL name is a programmer error: SA_ERR_INVALID_ARGUMENT.  tier, unique
 * and n_unique may be NULL. */
int sa__catalog_check_actions(const char *const *list, size_t n, int *tier,
                             const char **unique, size_t *n_unique,
                             char *err, size_t errlen)
{
    int first_sd = -1, first_hd = -1, known_tier = -1;
    uint32_t seen = 0;
    size_t i, count = 0;

    if (n > 0 && !list) {
        sa__errf(err, errlen, "actions is NULL but n_actions is %zu", n);
        return SA_ERR_INVALID_ARGUMENT;
    }
    for (i = 0; i < n; i++) {
        int k;
        if (!list[i]) {
            sa__errf(err, errlen, "action #%zu is NULL", i + 1);
            return SA_ERR_INVALID_ARGUMENT;
        }
        k = sa__catalog_find(list[i]);
        if (k >= 0 && known_tier < 0) known_tier = actions[k].tier;
    }
    for (i = 0; i < n; i++) {
        int k = sa__catalog_find(list[i]);
        if (k < 0) return report_unknown(list[i], known_tier, err, errlen);
        if (actions[k].tier == SA_TIER_SD && first_sd < 0) first_sd = k;
        if (actions[k].tier == SA_TIER_HD && first_hd < 0) first_hd = k;
        if (seen & (UINT32_C(1) << k)) continue;
        seen |= UINT32_C(1) << k;
        if (unique && count < SA_MAX_ACTIONS) unique[count] = actions[k].name;
        count++;
    }
    if (count == 0) {
        sa__errf(err, errlen, "no actions given");
        return SA_ERR_ACTION_COUNT;
    }
    /* More than 16 unique names always mixes tiers (16 per tier): the
     * count is the first thing to fix. */
    if (count > SA_MAX_ACTIONS) {
        sa__errf(err, errlen, "%zu unique actions given; at most %d", count,
                 SA_MAX_ACTIONS);
        return SA_ERR_ACTION_COUNT;
    }
    if (first_sd >= 0 && first_hd >= 0) {
        sa__errf(err, errlen, "cannot mix SD action '%s' with HD action '%s'",
                 actions[first_sd].name, actions[first_hd].name);
        return SA_ERR_MIXED_TIERS;
    }
    if (tier) *tier = first_hd >= 0 ? SA_TIER_HD : SA_TIER_SD;
    if (n_unique) *n_unique = count;
    return SA_OK;
}

int sa_cost(const char *const *list, size_t n, char *errbuf,
            size_t errbuf_len)
{
    int tier = SA_TIER_SD, rc;
    size_t count = 0;
    rc = sa__catalog_check_actions(list, n, &tier, NULL, &count, errbuf,
                                  errbuf_len);
    if (rc != SA_OK) return rc;
    if (errbuf && errbuf_len) errbuf[0] = '\0';
    return sa__catalog_units(tier, count);
}

/* ------------------------------------------------------------------ */
/* miniserver_args                                                     */
/* ------------------------------------------------------------------ */

enum ms_kind { MS_UNKNOWN, MS_BOOL, MS_COLOR, MS_OPACITY };

static const char *const dark_bg_prefix[] = {
    "enable_dark_background_", "color_dark_background_",
    "opacity_dark_background_"};
static const int dark_bg_kind[] = {MS_BOOL, MS_COLOR, MS_OPACITY};

static int ms_key_kind(const char *key)
{
    size_t p, c;
    if (strcmp(key, "enable_mask_overlay") == 0) return MS_BOOL;
    for (p = 0; p < 3; p++) {
        size_t len = strlen(dark_bg_prefix[p]);
        if (strncmp(key, dark_bg_prefix[p], len) != 0) continue;
        for (c = 0; c < N_DARK_BG; c++)
            if (strcmp(key + len, dark_bg_concerns[c]) == 0)
                return dark_bg_kind[p];
    }
    return MS_UNKNOWN;
}

/* The nearest documented key to `key` copied into out, or "" if none is
 * close. */
static void ms_nearest(const char *key, char *out, size_t outlen)
{
    char cand[64];
    size_t best = suggest_limit(key) + 1, d, p, c;

    out[0] = '\0';
    d = edit_distance(key, "enable_mask_overlay");
    if (d < best) {
        best = d;
        sa__errf(out, outlen, "%s", "enable_mask_overlay");
    }
    for (p = 0; p < 3; p++) {
        for (c = 0; c < N_DARK_BG; c++) {
            sa__errf(cand, sizeof cand, "%s%s", dark_bg_prefix[p],
                     dark_bg_concerns[c]);
            d = edit_distance(key, cand);
            if (d < best) {
                best = d;
                sa__errf(out, outlen, "%s", cand);
            }
        }
    }
}

static int is_hex6(const char *s)
{
    size_t i;
    for (i = 0; i < 6; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
              (c >= 'A' && c <= 'F')))
            return 0;
    }
    return s[6] == '\0';
}

/* Check one member; SA_OK or SA_ERR_BAD_OPTION with a message. */
static int ms_check_member(const cJSON *item, char *err, size_t errlen)
{
    const char *key = item->string ? item->string : "";
    char near[64];
    double v;

    switch (ms_key_kind(key)) {
    case MS_BOOL:
        if (cJSON_IsBool(item)) return SA_OK;
        sa__errf(err, errlen, "miniserver_args.%s must be true or false", key);
        return SA_ERR_BAD_OPTION;
    case MS_COLOR:
        if (cJSON_IsString(item) && item->valuestring &&
            is_hex6(item->valuestring))
            return SA_OK;
        sa__errf(err, errlen,
                 "miniserver_args.%s must be 6 hex digits without '#', "
                 "e.g. \"3D3D3D\"",
                 key);
        return SA_ERR_BAD_OPTION;
    case MS_OPACITY:
        if (cJSON_IsNumber(item) && (v = item->valuedouble) >= 0.0 &&
            v <= 1.0)
            return SA_OK;
        sa__errf(err, errlen,
                 "miniserver_args.%s must be a number from 0 to 1", key);
        return SA_ERR_BAD_OPTION;
    default:
        ms_nearest(key, near, sizeof near);
        if (near[0])
            sa__errf(err, errlen,
                     "unknown miniserver_args key '%.64s' (did you mean "
                     "'%s'?)",
                     key, near);
        else
            sa__errf(err, errlen,
                     "unknown miniserver_args key '%.64s' (documented: "
                     "enable_mask_overlay, and enable_/color_/opacity_"
                     "dark_background_ followed by hd_pore, hd_wrinkle, "
                     "hd_acne, hd_texture, hd_oiliness, hd_age_spot, "
                     "hd_redness or hd_firmness)",
                     key);
        return SA_ERR_BAD_OPTION;
    }
}

/* NULL means "no extra arguments" and is valid. */
int sa__catalog_check_miniserver_args(const cJSON *obj, char *err,
                                     size_t errlen)
{
    const cJSON *item;
    if (!obj) return SA_OK;
    if (!cJSON_IsObject(obj)) {
        sa__errf(err, errlen, "miniserver_args must be a JSON object");
        return SA_ERR_BAD_OPTION;
    }
    cJSON_ArrayForEach(item, obj) {
        int rc = ms_check_member(item, err, errlen);
        if (rc != SA_OK) return rc;
    }
    return SA_OK;
}

/* ------------------------------------------------------------------ */
/* Engine error codes                                                  */
/* ------------------------------------------------------------------ */

static const engine_error *engine_find(const char *code)
{
    size_t i;
    if (!code) return NULL;
    for (i = 0; i < sizeof engine_errors / sizeof engine_errors[0]; i++)
        if (strcmp(engine_errors[i].code, code) == 0) return &engine_errors[i];
    return NULL;
}

int sa__catalog_engine_error_known(const char *code)
{
    return engine_find(code) != NULL;
}

const char *sa__catalog_engine_error_hint(const char *code)
{
    const engine_error *e = engine_find(code);
    return e ? e->hint : NULL;
}
