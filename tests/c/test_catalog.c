/*
 * test_catalog.c - dst_actions, tiers, counterparts, regions, the unit
 * table at every boundary, validation messages, miniserver_args and engine
 * error codes (shared/API.md §4, §5, §8.3, §11).
 */
#include "harness.h"
#include "sa_internal.h"

static const char *const published[32] = {
    "hd_wrinkle", "hd_pore", "hd_texture", "hd_acne", "hd_oiliness",
    "hd_radiance", "hd_eye_bag", "hd_age_spot", "hd_dark_circle",
    "hd_droopy_upper_eyelid", "hd_droopy_lower_eyelid", "hd_firmness",
    "hd_moisture", "hd_redness", "hd_tear_trough", "hd_skin_type",
    "wrinkle", "pore", "texture", "acne", "oiliness", "radiance", "eye_bag",
    "age_spot", "dark_circle_v2", "droopy_upper_eyelid",
    "droopy_lower_eyelid", "firmness", "moisture", "redness", "tear_trough",
    "skin_type"};

TEST(all_names_in_order)
{
    size_t i;
    CHECK_EQ_INT(sa_action_count(), 32);
    for (i = 0; i < 32; i++) {
        CHECK_STR(sa_action_name(i), published[i]);
        CHECK_EQ_INT(sa__catalog_find(published[i]), (int)i);
        CHECK_EQ_INT(sa_action_tier(published[i]),
                     i < 16 ? SA_TIER_HD : SA_TIER_SD);
        CHECK_EQ_INT(sa__catalog_tier((int)i), i < 16 ? SA_TIER_HD : SA_TIER_SD);
    }
    CHECK(sa_action_name(32) == NULL);
    CHECK(sa_action_name((size_t)-1) == NULL);
    CHECK_EQ_INT(sa_action_tier("dark_circle"), SA_ERR_UNKNOWN_ACTION);
    CHECK_EQ_INT(sa_action_tier("HD_WRINKLE"), SA_ERR_UNKNOWN_ACTION);
    CHECK_EQ_INT(sa_action_tier(NULL), SA_ERR_UNKNOWN_ACTION);
    CHECK_EQ_INT(sa__catalog_find(""), -1);
}

TEST(counterparts)
{
    int i;
    for (i = 0; i < 32; i++) {
        int c = sa__catalog_counterpart(i);
        REQUIRE(c >= 0 && c < 32);
        CHECK(sa__catalog_tier(c) != sa__catalog_tier(i));
        CHECK_EQ_INT(sa__catalog_counterpart(c), i);
    }
    CHECK_STR(sa_action_name((size_t)sa__catalog_counterpart(
                  sa__catalog_find("dark_circle_v2"))),
              "hd_dark_circle");
    CHECK_STR(sa_action_name((size_t)sa__catalog_counterpart(
                  sa__catalog_find("hd_wrinkle"))),
              "wrinkle");
    CHECK_EQ_INT(sa__catalog_counterpart(-1), -1);
    CHECK_EQ_INT(sa__catalog_counterpart(32), -1);
}

static int ms_rc(const char *json, char *err, size_t errlen);

/* The public rules the bindings use (no second copy in Python or Lua). */
TEST(public_counterpart_and_defaults)
{
    const char *names[SA_MAX_ACTIONS + 4];
    size_t i, n;

    for (i = 0; i < 32; i++) {
        const char *other = sa_action_counterpart(published[i]);
        REQUIRE(other != NULL);
        CHECK_STR(other, published[i < 16 ? i + 16 : i - 16]);
        CHECK_STR(sa_action_counterpart(other), published[i]);
    }
    CHECK_STR(sa_action_counterpart("dark_circle_v2"), "hd_dark_circle");
    CHECK(sa_action_counterpart("dark_circle") == NULL);
    CHECK(sa_action_counterpart("") == NULL);
    CHECK(sa_action_counterpart(NULL) == NULL);

    n = sa_default_actions(SA_TIER_SD, names, SA_MAX_ACTIONS + 4);
    CHECK_EQ_INT(n, 16);
    for (i = 0; i < n; i++) CHECK_STR(names[i], published[16 + i]);
    CHECK_EQ_INT(sa_cost(names, n, NULL, 0), 16);
    n = sa_default_actions(SA_TIER_HD, names, SA_MAX_ACTIONS);
    CHECK_EQ_INT(n, 16);
    for (i = 0; i < n; i++) CHECK_STR(names[i], published[i]);
    /* a short array gets what fits; the count is still the set's */
    names[2] = "untouched";
    CHECK_EQ_INT(sa_default_actions(SA_TIER_SD, names, 2), 16);
    CHECK_STR(names[0], "wrinkle");
    CHECK_STR(names[1], "pore");
    CHECK_STR(names[2], "untouched");
    CHECK_EQ_INT(sa_default_actions(SA_TIER_SD, NULL, 0), 16);
    CHECK_EQ_INT(sa_default_actions(7, names, SA_MAX_ACTIONS), 0);
    CHECK_EQ_INT(sa_default_actions(-1, names, SA_MAX_ACTIONS), 0);
}

static sa_arg arg_bool(const char *key, int v)
{
    sa_arg a;
    memset(&a, 0, sizeof a);
    a.key = key;
    a.key_len = key ? strlen(key) : 0;
    a.type = SA_ARG_BOOL;
    a.boolean = v;
    return a;
}

static sa_arg arg_number(const char *key, double v)
{
    sa_arg a = arg_bool(key, 0);
    a.type = SA_ARG_NUMBER;
    a.number = v;
    return a;
}

static sa_arg arg_string(const char *key, const char *s, size_t len)
{
    sa_arg a = arg_bool(key, 0);
    a.type = SA_ARG_STRING;
    a.string = s;
    a.string_len = len;
    return a;
}

TEST(miniserver_args_json)
{
    sa_arg args[6];
    char err[256], *json = (char *)1;
    cJSON *o = NULL;

    CHECK_EQ_INT(sa_miniserver_args_json(NULL, 0, &json, err, sizeof err),
                 SA_OK);
    REQUIRE(json != NULL);
    CHECK_STR(json, "{}");
    sa_free(json);

    args[0] = arg_bool("enable_mask_overlay", 1);
    args[1] = arg_number("opacity_dark_background_hd_acne", 0.4);
    args[2] = arg_string("color_dark_background_hd_acne", "3D3D3D", 6);
    args[3] = arg_number("whole", 3.0);
    args[4] = arg_string("esc", "a\"b\\c\n\x01", 7);
    args[5] = arg_bool("off", 0);
    CHECK_EQ_INT(sa_miniserver_args_json(args, 6, &json, err, sizeof err),
                 SA_OK);
    REQUIRE(json != NULL);
    CHECK_STR(json, "{\"enable_mask_overlay\":true,"
                    "\"opacity_dark_background_hd_acne\":0.4,"
                    "\"color_dark_background_hd_acne\":\"3D3D3D\","
                    "\"whole\":3,\"esc\":\"a\\\"b\\\\c\\n\\u0001\","
                    "\"off\":false}");
    /* what it writes, the core's parser reads back, and the first three
     * members pass the catalogue's check (as sa_client_submit runs it) */
    REQUIRE(sa__json_parse(json, strlen(json), 8, &o) == SA_OK);
    CHECK(cJSON_IsTrue(sa__json_get(o, "enable_mask_overlay")));
    CHECK_STR(sa__json_string(o, "esc"), "a\"b\\c\n\x01");
    cJSON_Delete(o);
    sa_free(json);
    CHECK_EQ_INT(sa_miniserver_args_json(args, 3, &json, err, sizeof err),
                 SA_OK);
    CHECK_EQ_INT(ms_rc(json, err, sizeof err), SA_OK);
    sa_free(json);
    args[0] = arg_number("third", 1.0 / 3.0);
    args[1] = arg_number("neg", -2.5e-300);
    CHECK_EQ_INT(sa_miniserver_args_json(args, 2, &json, err, sizeof err),
                 SA_OK);
    REQUIRE(sa__json_parse(json, strlen(json), 8, &o) == SA_OK);
    CHECK(sa__json_get(o, "third")->valuedouble == 1.0 / 3.0);
    CHECK(sa__json_get(o, "neg")->valuedouble == -2.5e-300);
    cJSON_Delete(o);
    sa_free(json);

    /* the one contract for what a binding cannot encode */
    json = (char *)1;
    args[1] = arg_number("opacity", NAN);
    CHECK_EQ_INT(sa_miniserver_args_json(args, 2, &json, err, sizeof err),
                 SA_ERR_BAD_OPTION);
    CHECK(json == NULL);
    CHECK_STR(err, "miniserver_args.opacity: not a finite number");
    args[1] = arg_number("big", INFINITY);
    CHECK_EQ_INT(sa_miniserver_args_json(args, 2, &json, err, sizeof err),
                 SA_ERR_BAD_OPTION);
    args[1] = arg_bool(NULL, 1);
    CHECK_EQ_INT(sa_miniserver_args_json(args, 2, &json, err, sizeof err),
                 SA_ERR_BAD_OPTION);
    CHECK_STR(err, "miniserver_args: keys must be strings");
    args[1] = arg_bool("nul\0key", 1);
    args[1].key_len = 7;
    CHECK_EQ_INT(sa_miniserver_args_json(args, 2, &json, err, sizeof err),
                 SA_ERR_BAD_OPTION);
    CHECK_STR(err, "miniserver_args: a key holds a NUL");
    args[1] = arg_string("s", "a\0b", 3);
    CHECK_EQ_INT(sa_miniserver_args_json(args, 2, &json, err, sizeof err),
                 SA_ERR_BAD_OPTION);
    CHECK_STR(err, "miniserver_args.s: the string holds a NUL");
    args[1] = arg_bool("nested", 0);
    args[1].type = SA_ARG_OTHER;
    args[1].type_name = "table";
    CHECK_EQ_INT(sa_miniserver_args_json(args, 2, &json, err, sizeof err),
                 SA_ERR_BAD_OPTION);
    CHECK_STR(err, "miniserver_args.nested: boolean, number or string "
                   "expected, got table");
    args[1].type = 99;
    args[1].type_name = NULL;
    CHECK_EQ_INT(sa_miniserver_args_json(args, 2, &json, err, sizeof err),
                 SA_ERR_BAD_OPTION);
    CHECK_STR(err, "miniserver_args.nested: boolean, number or string "
                   "expected, got another type");
    CHECK(json == NULL);
    CHECK_EQ_INT(sa_miniserver_args_json(args, 1, NULL, err, sizeof err),
                 SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(sa_miniserver_args_json(NULL, 1, &json, NULL, 0),
                 SA_ERR_INVALID_ARGUMENT);
}

static size_t count_regions(const char *name)
{
    const char *const *r = sa__catalog_regions(sa__catalog_find(name));
    size_t n = 0;
    while (r && r[n]) n++;
    return n;
}

TEST(regions)
{
    const char *const *r = sa__catalog_regions(sa__catalog_find("hd_pore"));
    CHECK_EQ_INT(count_regions("hd_wrinkle"), 7);
    CHECK_EQ_INT(count_regions("hd_pore"), 4);
    CHECK_EQ_INT(count_regions("hd_texture"), 1);
    CHECK_EQ_INT(count_regions("skin_type"), 3);
    CHECK_EQ_INT(count_regions("hd_skin_type"), 3);
    CHECK_EQ_INT(count_regions("wrinkle"), 1);
    REQUIRE(r != NULL);
    CHECK_STR(r[0], "forehead");
    CHECK_STR(r[3], "whole");
    CHECK(sa__catalog_regions(-1) == NULL);
}

TEST(units_every_boundary)
{
    static const struct { size_t n; int sd, hd; } rows[] = {
        {1, 9, 12},   {4, 9, 12},   {5, 12, 16},  {8, 12, 16},
        {9, 14, 20},  {12, 14, 20}, {13, 16, 22}, {16, 16, 22}};
    size_t i;
    for (i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const char *sd[16], *hd[16];
        size_t k;
        CHECK_EQ_INT(sa__catalog_units(SA_TIER_SD, rows[i].n), rows[i].sd);
        CHECK_EQ_INT(sa__catalog_units(SA_TIER_HD, rows[i].n), rows[i].hd);
        for (k = 0; k < rows[i].n; k++) {
            hd[k] = published[k];
            sd[k] = published[16 + k];
        }
        CHECK_EQ_INT(sa_cost(sd, rows[i].n, NULL, 0), rows[i].sd);
        CHECK_EQ_INT(sa_cost(hd, rows[i].n, NULL, 0), rows[i].hd);
    }
    CHECK_EQ_INT(sa__catalog_units(SA_TIER_SD, 0), -1);
    CHECK_EQ_INT(sa__catalog_units(SA_TIER_HD, 17), -1);
    CHECK_EQ_INT(sa__catalog_units(7, 1), -1);
}

/* sa_cost of the n actions a returns rc with the message msg (NULL: not
 * checked). */
static void cost_is(const char *const *a, size_t n, int rc, const char *msg)
{
    char err[256] = "";
    CHECK_EQ_INT(sa_cost(a, n, err, sizeof err), rc);
    if (msg) CHECK_STR(err, msg);
}

TEST(validation_messages)
{
    char err[256];
    const char *unique[SA_MAX_ACTIONS];
    size_t n = 0;
    int tier = -1;
    const char *a1[] = {"wrinkles"};
    const char *a2[] = {"pore", "hd_wrinkle", "wrinkle"};
    const char *a3[] = {"hd_wrinkle", "pore"};
    const char *a4[] = {"dark_circle"};
    const char *a5[] = {"hd_dark_circle", "dark_circle"};
    const char *a6[] = {"abc123"};
    const char *a7[] = {"Wrinkle"};
    const char *a8[] = {"pore", NULL};

    cost_is(a1, 1, SA_ERR_UNKNOWN_ACTION,
            "unknown action 'wrinkles' (did you mean 'wrinkle'?)");
    cost_is(a2, 3, SA_ERR_MIXED_TIERS,
            "cannot mix SD action 'pore' with HD action 'hd_wrinkle'");
    cost_is(a3, 2, SA_ERR_MIXED_TIERS,
            "cannot mix SD action 'pore' with HD action 'hd_wrinkle'");
    /* ties between tiers: the SD spelling for a name without hd_, the
     * tier of the other actions when there are some */
    cost_is(a4, 1, SA_ERR_UNKNOWN_ACTION,
            "unknown action 'dark_circle' (did you mean 'dark_circle_v2'?)");
    cost_is(a5, 2, SA_ERR_UNKNOWN_ACTION,
            "unknown action 'dark_circle' (did you mean 'hd_dark_circle'?)");
    CHECK_EQ_INT(sa_cost(a6, 1, err, sizeof err), SA_ERR_UNKNOWN_ACTION);
    CHECK(strncmp(err, "unknown action 'abc123' (not one of", 35) == 0);
    cost_is(a7, 1, SA_ERR_UNKNOWN_ACTION,
            "unknown action 'Wrinkle' (did you mean 'wrinkle'?)");
    cost_is(NULL, 0, SA_ERR_ACTION_COUNT, "no actions given");
    cost_is(a1, 0, SA_ERR_ACTION_COUNT, "no actions given");
    cost_is(NULL, 2, SA_ERR_INVALID_ARGUMENT, NULL);
    cost_is(a8, 2, SA_ERR_INVALID_ARGUMENT, "action #2 is NULL");

    /* 16 SD names given 2.5 times: 16 unique, first-seen order */
    {
        const char *many[40];
        size_t k;
        for (k = 0; k < 40; k++) many[k] = published[16 + (k % 16)];
        CHECK_EQ_INT(sa__catalog_check_actions(many, 40, &tier, unique, &n,
                                              err, sizeof err),
                     SA_OK);
        CHECK_EQ_INT(n, 16);
        CHECK_EQ_INT(tier, SA_TIER_SD);
        CHECK_STR(unique[0], "wrinkle");
        CHECK_STR(unique[15], "skin_type");
        CHECK_EQ_INT(sa_cost(many, 40, err, sizeof err), 16);
        CHECK_STR(err, ""); /* cleared on success */
    }
}

/* Duplicates count once; more than 16 unique names is reported before
 * the tiers (17 unique names always mix them). */
TEST(count_and_duplicates)
{
    char err[256];
    const char *unique[SA_MAX_ACTIONS];
    size_t n = 0;
    int tier = -1;
    const char *dups[] = {"pore", "wrinkle", "pore", "acne", "wrinkle"};
    const char *all32[32];
    size_t k;

    CHECK_EQ_INT(sa__catalog_check_actions(dups, 5, &tier, unique, &n, err,
                                          sizeof err),
                 SA_OK);
    CHECK_EQ_INT(n, 3);
    CHECK_STR(unique[0], "pore");
    CHECK_STR(unique[1], "wrinkle");
    CHECK_STR(unique[2], "acne");
    CHECK_EQ_INT(sa_cost(dups, 5, NULL, 0), 9); /* 3 unique: 9 units */

    for (k = 0; k < 32; k++) all32[k] = published[k];
    CHECK_EQ_INT(sa__catalog_check_actions(all32, 32, &tier, unique, &n, err,
                                          sizeof err),
                 SA_ERR_ACTION_COUNT);
    CHECK_STR(err, "32 unique actions given; at most 16");
    CHECK_EQ_INT(sa_cost(all32, 17, err, sizeof err), SA_ERR_ACTION_COUNT);
    CHECK_STR(err, "17 unique actions given; at most 16");
    CHECK_EQ_INT(sa_cost(all32 + 1, 16, err, sizeof err), SA_ERR_MIXED_TIERS);
    CHECK_STR(err, "cannot mix SD action 'wrinkle' with HD action "
                   "'hd_pore'");
    /* NULL outputs are allowed */
    CHECK_EQ_INT(sa__catalog_check_actions(dups, 5, NULL, NULL, NULL, NULL, 0),
                 SA_OK);
}

static int ms_rc(const char *json, char *err, size_t errlen)
{
    cJSON *o = NULL;
    int rc;
    if (sa__json_parse(json, strlen(json), 8, &o) != SA_OK) return 999;
    rc = sa__catalog_check_miniserver_args(o, err, errlen);
    cJSON_Delete(o);
    return rc;
}

/* The miniserver_args text json checks as rc, with the message msg (NULL:
 * not checked). */
static void ms_is(const char *json, int rc, const char *msg)
{
    char err[256] = "";
    CHECK_EQ_INT(ms_rc(json, err, sizeof err), rc);
    if (msg) CHECK_STR(err, msg);
}

TEST(miniserver_args)
{
    static const char *const concerns[] = {
        "hd_pore", "hd_wrinkle", "hd_acne", "hd_texture",
        "hd_oiliness", "hd_age_spot", "hd_redness", "hd_firmness"};
    char err[256], json[512];
    size_t i;

    CHECK_EQ_INT(ms_rc("{}", err, sizeof err), SA_OK);
    CHECK_EQ_INT(ms_rc("{\"enable_mask_overlay\":true}", err, sizeof err),
                 SA_OK);
    for (i = 0; i < 8; i++) {
        snprintf(json, sizeof json,
                 "{\"enable_dark_background_%s\":false,"
                 "\"color_dark_background_%s\":\"3d3D3D\","
                 "\"opacity_dark_background_%s\":0.4}",
                 concerns[i], concerns[i], concerns[i]);
        CHECK_EQ_INT(ms_rc(json, err, sizeof err), SA_OK);
    }
    CHECK_EQ_INT(sa__catalog_check_miniserver_args(NULL, err, sizeof err),
                 SA_OK);
    ms_is("[]", SA_ERR_BAD_OPTION, "miniserver_args must be a JSON object");
    ms_is("{\"enable_mask_overlay\":1}", SA_ERR_BAD_OPTION,
          "miniserver_args.enable_mask_overlay must be true or false");
    ms_is("{\"color_dark_background_hd_pore\":\"#3D3D3D\"}", SA_ERR_BAD_OPTION,
          "miniserver_args.color_dark_background_hd_pore must be 6 hex digits "
          "without '#', e.g. \"3D3D3D\"");
    ms_is("{\"color_dark_background_hd_pore\":\"3D3D3G\"}", SA_ERR_BAD_OPTION,
          NULL);
    ms_is("{\"color_dark_background_hd_pore\":\"3D3D3D0\"}", SA_ERR_BAD_OPTION,
          NULL);
    ms_is("{\"opacity_dark_background_hd_acne\":1.5}", SA_ERR_BAD_OPTION,
          "miniserver_args.opacity_dark_background_hd_acne must be a number "
          "from 0 to 1");
    ms_is("{\"opacity_dark_background_hd_acne\":\"0.4\"}", SA_ERR_BAD_OPTION,
          NULL);
    ms_is("{\"opacity_dark_background_hd_acne\":0}", SA_OK, NULL);
    ms_is("{\"opacity_dark_background_hd_acne\":1}", SA_OK, NULL);
    ms_is("{\"enable_mask_overlays\":true}", SA_ERR_BAD_OPTION,
          "unknown miniserver_args key 'enable_mask_overlays' (did you mean "
          "'enable_mask_overlay'?)");
    ms_is("{\"enable_dark_background_pore\":true}", SA_ERR_BAD_OPTION,
          "unknown miniserver_args key 'enable_dark_background_pore' (did you "
          "mean 'enable_dark_background_hd_pore'?)");
    ms_is("{\"enable_dark_background_hd_eye_bag\":true}", SA_ERR_BAD_OPTION,
          NULL);
    CHECK_EQ_INT(ms_rc("{\"foo\":1}", err, sizeof err), SA_ERR_BAD_OPTION);
    CHECK(strncmp(err, "unknown miniserver_args key 'foo' (documented:", 46) ==
          0);
}

TEST(engine_errors)
{
    static const char *const known[] = {
        "error_exceed_max_image_size", "exceed_max_filesize",
        "invalid_parameter", "error_download_image", "error_download_mask",
        "error_decode_image", "error_decode_mask",
        "error_nsfw_content_detected", "error_no_face", "error_pose",
        "error_face_parsing", "error_inference", "exceed_nsfw_retry_limits",
        "error_upload", "unknown_internal_error",
        "error_below_min_image_size", "error_src_face_too_small",
        "error_src_face_out_of_bound", "error_lighting_dark",
        "error_multiple_people", "error_large_face_angle",
        "error_unsupport_ratio"};
    size_t i;
    for (i = 0; i < sizeof known / sizeof known[0]; i++) {
        CHECK_EQ_INT(sa__catalog_engine_error_known(known[i]), 1);
        CHECK(sa__catalog_engine_error_hint(known[i]) != NULL);
    }
    CHECK_EQ_INT(sa__catalog_engine_error_known("error_something_new"), 0);
    CHECK_EQ_INT(sa__catalog_engine_error_known(NULL), 0);
    CHECK(sa__catalog_engine_error_hint("nope") == NULL);
    CHECK(strstr(sa__catalog_engine_error_hint("error_no_face"), "face") !=
          NULL);
}

int main(void)
{
    (void)harness_slurp;
    RUN(all_names_in_order);
    RUN(counterparts);
    RUN(public_counterpart_and_defaults);
    RUN(miniserver_args_json);
    RUN(regions);
    RUN(units_every_boundary);
    RUN(validation_messages);
    RUN(count_and_duplicates);
    RUN(miniserver_args);
    RUN(engine_errors);
    return harness_report();
}
