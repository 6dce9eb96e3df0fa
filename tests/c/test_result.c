/*
 * test_result.c - the result model: status bodies in both formats, the
 * score_info.json documents (HD regions, SD, bare skin_age), lookups with
 * SD/HD counterparts, tolerant parsing, the one-allocation arena, the raw
 * data.results text, clones, result files and URL helpers.
 */
#include "harness.h"
#include "sa_internal.h"
#include "support_fakeserver.h"
#include "unit_helpers.h"

static char *example(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", SA_EXAMPLES, name);
    return harness_slurp(path, len);
}

static sa_result *parse_example(const char *name, int kind, int *rc)
{
    size_t len = 0;
    char *text = example(name, &len);
    sa_result *r = NULL;
    *rc = text ? sa_result_parse(text, len, kind, &r) : -1000;
    free(text);
    return r;
}

/* s = a score (expr); the test stops where there is none. */
#define REQUIRE_SCORE(s, expr)                                           \
    do {                                                                 \
        (s) = (expr);                                                    \
        REQUIRE((s) != NULL);                                            \
    } while (0)

static sa_result *parse_text(const char *text, int kind, int *rc)
{
    sa_result *r = NULL;
    *rc = sa_result_parse(text, strlen(text), kind, &r);
    return r;
}

TEST(json_hd)
{
    int rc;
    sa_result *r = parse_example("task-status-success-json-hd.json",
                                 SA_PARSE_STATUS_BODY, &rc);
    const sa_score *s;
    cJSON *back = NULL;
    REQUIRE(rc == SA_OK && r != NULL);
    CHECK_EQ_INT(sa_result_format(r), SA_FORMAT_JSON);
    CHECK_EQ_INT(sa_result_count(r), 12);
    CHECK_NEAR(sa_result_overall(r), 28.5, 0);
    CHECK_NEAR(sa_result_skin_age(r), 29, 0);
    CHECK_STR(sa_result_resize_image_url(r),
              "https://s3-us-west-2.amazonaws.com/yce-us/results/"
              "resized_image.jpg");
    CHECK(sa_result_zip_url(r) == NULL);
    CHECK(sa_result_task_id(r) == NULL);

    REQUIRE_SCORE(s, sa_result_score(r, 0));
    CHECK_STR(s->concern, "hd_wrinkle");
    CHECK_STR(s->region, "whole");
    CHECK_NEAR(s->raw_score, 25.3, 0);
    CHECK_NEAR(s->ui_score, 25, 0);
    CHECK(s->skin_type == NULL && s->mask_name == NULL);
    REQUIRE(s->n_mask_urls == 1);
    CHECK_STR(s->mask_urls[0], "https://s3-us-west-2.amazonaws.com/yce-us/"
                               "results/hd_wrinkle_whole.jpg");
    CHECK(sa_result_score(r, 12) == NULL);

    REQUIRE_SCORE(s, sa_result_get(r, "hd_wrinkle", "forehead"));
    CHECK_NEAR(s->raw_score, 20.1, 0);
    CHECK(sa_result_get(r, "wrinkle", "forehead") == s); /* counterpart */
    CHECK(sa_result_get(r, "hd_wrinkle", NULL) == sa_result_score(r, 0));
    CHECK_NEAR(sa_result_get(r, "hd_pore", "nose")->ui_score, 46, 0);
    CHECK(sa_result_get(r, "hd_wrinkle", "nose") == NULL);
    CHECK(sa_result_get(r, "hd_redness", NULL) == NULL);
    CHECK(sa_result_get(r, NULL, NULL) == NULL);
    /* skin types: no scores */
    REQUIRE_SCORE(s, sa_result_get(r, "skin_type", "u_zone"));
    CHECK_STR(s->concern, "hd_skin_type");
    CHECK_STR(s->skin_type, "Dry & Redness");
    CHECK(isnan(s->raw_score) && isnan(s->ui_score));
    CHECK_STR(sa_result_get(r, "hd_skin_type", NULL)->skin_type,
              "Combination");

    /* the results JSON round-trips */
    REQUIRE(sa_result_json(r) != NULL);
    CHECK_EQ_INT(sa__json_parse(sa_result_json(r), strlen(sa_result_json(r)),
                               64, &back),
                 SA_OK);
    CHECK(cJSON_GetArraySize(sa__json_get(back, "output")) == 15);
    cJSON_Delete(back);
    sa_result_free(r);
}

TEST(json_sd)
{
    int rc;
    sa_result *r = parse_example("task-status-success-json-sd.json",
                                 SA_PARSE_STATUS_BODY, &rc);
    const sa_score *s;
    REQUIRE(rc == SA_OK && r != NULL);
    CHECK_EQ_INT(sa_result_count(r), 5);
    CHECK_NEAR(sa_result_overall(r), 75.75757575757575, 0);
    CHECK_NEAR(sa_result_skin_age(r), 37, 0);
    REQUIRE_SCORE(s, sa_result_get(r, "texture", NULL));
    CHECK_STR(s->region, "whole"); /* absent region */
    CHECK_NEAR(s->raw_score, 57.33, 0);
    CHECK_NEAR(s->ui_score, 68, 0);
    CHECK(sa_result_get(r, "hd_texture", "whole") == s);
    CHECK_NEAR(sa_result_get(r, "pore", NULL)->raw_score, 95.34, 0);
    CHECK_STR(sa_result_get(r, "skin_type", "t_zone")->skin_type, "Oily");
    sa_result_free(r);
}

TEST(zip_forms)
{
    int rc;
    sa_result *r = parse_example("task-status-success-zip.json",
                                 SA_PARSE_STATUS_BODY, &rc);
    REQUIRE(rc == SA_OK && r != NULL);
    CHECK_EQ_INT(sa_result_format(r), SA_FORMAT_ZIP);
    CHECK_STR(sa_result_zip_url(r), "https://example.com/sample-result-url");
    CHECK_EQ_INT(sa_result_count(r), 0);
    CHECK(isnan(sa_result_overall(r)) && isnan(sa_result_skin_age(r)));
    /* the raw bytes of data.results, as the body has them */
    CHECK_STR(sa_result_json(r),
              "{\n      \"url\": \"https://example.com/sample-result-url\"\n"
              "    }");
    sa_result_free(r);

    r = parse_text("{\"status\":200,\"data\":{\"task_status\":\"success\","
                   "\"results\":\"https://example.com/sample-result-url\"}}",
                   SA_PARSE_STATUS_BODY, &rc);
    REQUIRE(rc == SA_OK && r != NULL);
    CHECK_EQ_INT(sa_result_format(r), SA_FORMAT_ZIP);
    CHECK_STR(sa_result_zip_url(r), "https://example.com/sample-result-url");
    CHECK_STR(sa_result_json(r), "\"https://example.com/sample-result-url\"");
    sa_result_free(r);
}

TEST(not_success)
{
    int rc;
    sa_result *r = parse_example("task-status-error-no-face.json",
                                 SA_PARSE_STATUS_BODY, &rc);
    CHECK_EQ_INT(rc, SA_ERR_ENGINE);
    CHECK(r == NULL);
    r = parse_example("task-status-running.json", SA_PARSE_STATUS_BODY, &rc);
    CHECK_EQ_INT(rc, SA_ERR_NOT_DONE);
    CHECK(r == NULL);
    /* an undocumented task_status is "not finished yet" too */
    r = parse_text("{\"data\":{\"task_status\":\"queued\"}}",
                   SA_PARSE_STATUS_BODY, &rc);
    CHECK_EQ_INT(rc, SA_ERR_NOT_DONE);
    CHECK(r == NULL);
    r = parse_text("{\"data\":", SA_PARSE_STATUS_BODY, &rc);
    CHECK_EQ_INT(rc, SA_ERR_PROTOCOL);
    r = parse_text("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
                   "[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
                   "]]]]]]]]]]]]]]]]]]]]]",
                   SA_PARSE_SCORE_INFO, &rc);
    CHECK_EQ_INT(rc, SA_ERR_LIMIT);
    CHECK(r == NULL);
    CHECK_EQ_INT(sa_result_parse("{}", 2, 7, &r), SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(sa_result_parse("{}", 2, 0, NULL), SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(sa_result_parse(NULL, 0, 0, &r), SA_ERR_INVALID_ARGUMENT);
    r = parse_text("[1,2]", SA_PARSE_SCORE_INFO, &rc);
    CHECK_EQ_INT(rc, SA_ERR_PROTOCOL);
}

TEST(score_info_hd)
{
    int rc;
    sa_result *r = parse_example("score-info-hd.json", SA_PARSE_SCORE_INFO,
                                 &rc);
    const sa_score *s;
    REQUIRE(rc == SA_OK && r != NULL);
    CHECK_EQ_INT(sa_result_format(r), SA_FORMAT_ZIP);
    CHECK_EQ_INT(sa_result_count(r), 23);
    CHECK_NEAR(sa_result_overall(r), 75.75757575757575, 0);
    CHECK_NEAR(sa_result_skin_age(r), 37, 0);
    CHECK(sa_result_zip_url(r) == NULL);
    s = sa_result_score(r, 0);
    CHECK_STR(s->concern, "hd_redness");
    CHECK_STR(s->region, "whole");
    CHECK_NEAR(s->raw_score, 72.011962890625, 0);
    CHECK_STR(s->mask_name, "hd_redness_output.png");
    CHECK_EQ_INT(s->n_mask_urls, 0);
    CHECK(s->mask_urls == NULL);
    REQUIRE_SCORE(s, sa_result_get(r, "hd_pore", "nose"));
    CHECK_NEAR(s->raw_score, 29.139814376831055, 0);
    CHECK_NEAR(s->ui_score, 58, 0);
    CHECK_STR(s->mask_name, "hd_pore_output_nose.png");
    REQUIRE_SCORE(s, sa_result_get(r, "wrinkle", NULL)); /* SD name, HD result */
    CHECK_STR(s->mask_name, "hd_wrinkle_output_all.png");
    CHECK_STR(sa_result_get(r, "hd_texture", NULL)->mask_name,
              "hd_texture_output.png");
    CHECK_STR(sa_result_get(r, "hd_wrinkle", "marionette")->mask_name,
              "hd_wrinkle_output_marionette.png");
    sa_result_free(r);
}

TEST(score_info_sd)
{
    int rc;
    sa_result *r = parse_example("score-info-sd.json", SA_PARSE_SCORE_INFO,
                                 &rc);
    REQUIRE(rc == SA_OK && r != NULL);
    CHECK_EQ_INT(sa_result_count(r), 14);
    CHECK_NEAR(sa_result_skin_age(r), 37, 0);
    CHECK_NEAR(sa_result_get(r, "hd_dark_circle", NULL)->raw_score,
               80.1993191242218, 0);
    CHECK_STR(sa_result_get(r, "acne", "whole")->mask_name,
              "acne_output.png");
    sa_result_free(r);
}

TEST(score_info_tolerant)
{
    int rc;
    const sa_score *s;
    sa_result *r = parse_text(
        "{\"all\":88.5,\"skin_age\":{\"score\":\"41\"},"
        "\"hd_skin_type\":{\"whole\":{\"skin_type\":\"Oily\","
        "\"output_mask_name\":\"hd_skin_type.png\"},\"t_zone\":null},"
        "\"hd_tear_trough\":{\"raw_score\":\"50.5\",\"ui_score\":null},"
        "\"weird\":[1,2],\"odd\":\"text\",\"empty\":{},\"n\":null,"
        "\"hd_pore\":{\"nose\":{\"raw_score\":1},\"junk\":5}}",
        SA_PARSE_SCORE_INFO, &rc);
    REQUIRE(rc == SA_OK && r != NULL);
    CHECK_NEAR(sa_result_overall(r), 88.5, 0);
    CHECK_NEAR(sa_result_skin_age(r), 41, 0);
    CHECK_EQ_INT(sa_result_count(r), 3);
    REQUIRE_SCORE(s, sa_result_get(r, "skin_type", NULL));
    CHECK_STR(s->skin_type, "Oily");
    REQUIRE_SCORE(s, sa_result_get(r, "hd_tear_trough", NULL));
    CHECK_NEAR(s->raw_score, 50.5, 0);
    CHECK(isnan(s->ui_score));
    CHECK(sa_result_get(r, "hd_pore", "nose") != NULL);
    sa_result_free(r);
}

TEST(output_tolerant)
{
    int rc;
    const sa_score *s;
    sa_result *r = parse_text(
        "{\"status\":200,\"data\":{\"task_status\":\"success\",\"error\":null,"
        "\"dst_id\":\"ignored\",\"results\":{\"url\":null,\"output\":["
        "null, 7, \"x\", {\"no_type\":1}, {\"type\":null},"
        "{\"type\":\"pore\",\"region\":null,\"raw_score\":\"95.34\","
        "\"ui_score\":\"92\",\"url\":null,\"mask_urls\":\"https://m/p.jpg\"},"
        "{\"type\":\"eye_age\",\"score\":31,\"mask_urls\":[null,1,"
        "\"https://m/e.jpg\"]},"
        "{\"type\":\"all\",\"score\":\"70\"},{\"type\":\"all\",\"score\":1},"
        "{\"type\":\"skin_age\",\"score\":null},"
        "{\"type\":\"resize_image\",\"mask_urls\":[]},"
        "{\"type\":\"resize_image\",\"url\":\"https://m/r.jpg\"}"
        "]}}}",
        SA_PARSE_STATUS_BODY, &rc);
    REQUIRE(rc == SA_OK && r != NULL);
    CHECK_EQ_INT(sa_result_format(r), SA_FORMAT_JSON);
    CHECK_EQ_INT(sa_result_count(r), 2);
    REQUIRE_SCORE(s, sa_result_get(r, "pore", NULL));
    CHECK_NEAR(s->raw_score, 95.34, 0);
    CHECK_NEAR(s->ui_score, 92, 0);
    REQUIRE(s->n_mask_urls == 1);
    CHECK_STR(s->mask_urls[0], "https://m/p.jpg");
    REQUIRE_SCORE(s, sa_result_get(r, "eye_age", NULL)); /* unknown types are kept */
    REQUIRE(s->n_mask_urls == 1);
    CHECK_STR(s->mask_urls[0], "https://m/e.jpg");
    CHECK_NEAR(sa_result_overall(r), 70, 0); /* first "all" wins */
    CHECK(isnan(sa_result_skin_age(r)));
    CHECK_STR(sa_result_resize_image_url(r), "https://m/r.jpg");
    sa_result_free(r);

    /* a bare array is taken as the output list */
    r = parse_text("{\"data\":{\"task_status\":\"success\",\"results\":["
                   "{\"type\":\"acne\",\"raw_score\":3}]}}",
                   SA_PARSE_STATUS_BODY, &rc);
    REQUIRE(rc == SA_OK && r != NULL);
    CHECK_EQ_INT(sa_result_count(r), 1);
    sa_result_free(r);
}

TEST(null_result_accessors)
{
    CHECK_EQ_INT(sa_result_count(NULL), 0);
    CHECK(sa_result_score(NULL, 0) == NULL);
    CHECK(sa_result_get(NULL, "pore", NULL) == NULL);
    CHECK(isnan(sa_result_overall(NULL)));
    CHECK(isnan(sa_result_skin_age(NULL)));
    CHECK(sa_result_json(NULL) == NULL);
    CHECK(sa_result_zip_url(NULL) == NULL);
    CHECK(sa_result_resize_image_url(NULL) == NULL);
    CHECK(sa_result_task_id(NULL) == NULL);
    sa_result_free(NULL);
}

/* Built with an allocator that lives on this function's stack: the result
 * keeps a copy and is freed after the sa_mem struct is gone. */
static sa_result *build_with_local_mem(counting *c)
{
    sa_mem mem = counting_mem(c);
    size_t len = 0;
    char *text = example("task-status-success-json-hd.json", &len);
    cJSON *root = NULL;
    sa_result *r = NULL;
    char err[128];
    if (!text) return NULL;
    if (sa__json_parse(text, len, 64, &root) == SA_OK)
        sa__result_from_results(
            &mem, sa__json_get(sa__json_get(root, "data"), "results"), "T1", &r,
            err, sizeof err);
    cJSON_Delete(root);
    free(text);
    return r;
}

TEST(one_allocation)
{
    counting c = {0, 0};
    sa_result *r = build_with_local_mem(&c);
    REQUIRE(r != NULL);
    CHECK_EQ_INT(c.allocs, 1);
    CHECK_STR(sa_result_task_id(r), "T1");
    CHECK_EQ_INT(sa_result_count(r), 12);
    sa_result_free(r);
    CHECK_EQ_INT(c.frees, 1);
}

TEST(raw_json_text)
{
    static const char body[] =
        "{\"status\":200, \"data\" : {\"results\":\"first\",\"task_status\""
        ":\"success\",\"results\" :  {\"output\":[ {\"type\":\"acne\","
        "\"raw_score\":1.50}, {\"type\":\"pore\",\"ui_score\":7} ] } }}";
    int rc;
    size_t len = 0;
    char *text = example("task-status-success-json-sd.json", &len);
    sa_result *r = parse_text(body, SA_PARSE_STATUS_BODY, &rc);
    /* cJSON takes the first of two equal keys; so does the raw text */
    REQUIRE(rc == SA_OK && r != NULL);
    CHECK_EQ_INT(sa_result_format(r), SA_FORMAT_ZIP);
    CHECK_STR(sa_result_json(r), "\"first\"");
    sa_result_free(r);

    /* exactly the bytes between "results": and the closing brace */
    REQUIRE(text != NULL);
    r = parse_text(text, SA_PARSE_STATUS_BODY, &rc);
    REQUIRE(rc == SA_OK && r != NULL);
    {
        /* from the '{' after "results": to the '}' after output's ']' */
        const char *start = strstr(text, "\"results\": ") + 11;
        const char *end = strchr(strrchr(start, ']'), '}') + 1;
        CHECK_EQ_INT(strlen(sa_result_json(r)), end - start);
        CHECK(strncmp(sa_result_json(r), start, (size_t)(end - start)) == 0);
    }
    sa_result_free(r);
    free(text);

    /* score_info.json: the document itself */
    r = parse_text(" {\"all\": 5} ", SA_PARSE_SCORE_INFO, &rc);
    REQUIRE(rc == SA_OK && r != NULL);
    CHECK_STR(sa_result_json(r), " {\"all\": 5} ");
    sa_result_free(r);
}

static const unsigned char png_magic[] = {0x89, 'P', 'N', 'G', '\r', '\n',
                                          0x1a, '\n', 0, 0};

TEST(files_and_clone)
{
    int rc, i;
    size_t len;
    sa_result *r = parse_example("task-status-success-json-hd.json",
                                 SA_PARSE_STATUS_BODY, &rc);
    sa_result *c = NULL;
    const sa_score *s;
    char *json_copy;
    REQUIRE(rc == SA_OK && r != NULL);
    CHECK_EQ_INT(sa_result_file_count(r), 0);
    CHECK_EQ_INT(sa__result_add_file(r, "a.png", png_magic, sizeof png_magic),
                 SA_OK);
    CHECK_EQ_INT(sa__result_add_file(r, "b.jpg", "\xff\xd8\xff\xe0", 4),
                 SA_OK);
    CHECK_EQ_INT(sa__result_add_file(r, "c.bin", "GIF89a", 6), SA_OK);
    CHECK_EQ_INT(sa__result_add_file(r, "empty", NULL, 0), SA_OK);
    CHECK_EQ_INT(sa__result_add_file(r, NULL, "x", 1),
                 SA_ERR_INVALID_ARGUMENT);
    for (i = 0; i < 20; i++) /* grows the file array */
        CHECK_EQ_INT(sa__result_add_file(r, "more.png", png_magic, 8), SA_OK);
    CHECK_EQ_INT(sa_result_file_count(r), 24);
    CHECK_EQ_INT(sa_result_file_format(r, 0), SA_IMAGE_PNG);
    CHECK_EQ_INT(sa_result_file_format(r, 1), SA_IMAGE_JPEG);
    CHECK_EQ_INT(sa_result_file_format(r, 2), SA_IMAGE_UNKNOWN);
    CHECK_EQ_INT(sa_result_file_format(r, 3), SA_IMAGE_UNKNOWN);
    CHECK_STR(sa_result_file_name(r, 1), "b.jpg");
    CHECK(memcmp(sa_result_file_data(r, 0, &len), png_magic, 10) == 0);
    CHECK_EQ_INT(len, 10);
    CHECK(sa_result_file_data(r, 0, NULL) != NULL);

    CHECK_EQ_INT(sa__result_clone(NULL, r, &c), SA_OK);
    REQUIRE(c != NULL);
    json_copy = strdup(sa_result_json(r));
    sa_result_free(r); /* the clone owns everything it points to */
    CHECK_EQ_INT(sa_result_count(c), 12);
    CHECK_EQ_INT(sa_result_format(c), SA_FORMAT_JSON);
    CHECK_NEAR(sa_result_overall(c), 28.5, 0);
    CHECK_NEAR(sa_result_skin_age(c), 29, 0);
    REQUIRE_SCORE(s, sa_result_get(c, "hd_wrinkle", "forehead"));
    CHECK_NEAR(s->raw_score, 20.1, 0);
    REQUIRE(sa_result_score(c, 0)->n_mask_urls == 1);
    CHECK_STR(sa_result_score(c, 0)->mask_urls[0],
              "https://s3-us-west-2.amazonaws.com/yce-us/results/"
              "hd_wrinkle_whole.jpg");
    CHECK_STR(sa_result_get(c, "skin_type", "u_zone")->skin_type,
              "Dry & Redness");
    CHECK_STR(sa_result_resize_image_url(c),
              "https://s3-us-west-2.amazonaws.com/yce-us/results/"
              "resized_image.jpg");
    CHECK_STR(sa_result_json(c), json_copy);
    CHECK_EQ_INT(sa_result_file_count(c), 24);
    CHECK_STR(sa_result_file_name(c, 1), "b.jpg");
    CHECK_EQ_INT(sa_result_file_format(c, 0), SA_IMAGE_PNG);
    CHECK(memcmp(sa_result_file_data(c, 0, &len), png_magic, 10) == 0);
    sa_result_free(c);
    CHECK_EQ_INT(sa__result_clone(NULL, NULL, &c), SA_ERR_INVALID_ARGUMENT);
    CHECK(c == NULL);
    free(json_copy);
}

TEST(clone_zip_result)
{
    int rc;
    sa_result *r = parse_example("score-info-hd.json", SA_PARSE_SCORE_INFO,
                                 &rc);
    sa_result *c = NULL;
    REQUIRE(rc == SA_OK && r != NULL);
    CHECK_EQ_INT(sa__result_clone(NULL, r, &c), SA_OK);
    sa_result_free(r);
    REQUIRE(c != NULL);
    CHECK_EQ_INT(sa_result_format(c), SA_FORMAT_ZIP);
    CHECK_EQ_INT(sa_result_count(c), 23);
    CHECK_STR(sa_result_get(c, "hd_pore", "nose")->mask_name,
              "hd_pore_output_nose.png");
    CHECK(sa_result_score(c, 0)->mask_urls == NULL);
    CHECK(sa_result_task_id(c) == NULL);
    sa_result_free(c);
}

/* A result whose strings echo the API key: the caller's copy hides it in
 * every string, the numbers and file bytes stay. */
TEST(scrub_hides_the_key_everywhere)
{
    static const char key[] = "sk-ECHOED-0123456789";
    static const char body[] =
        "{\"status\":200,\"data\":{\"task_status\":\"success\","
        "\"results\":{\"output\":["
        "{\"type\":\"wrinkle sk-ECHOED-0123456789\",\"region\":"
        "\"Bearer sk-ECHOED-0123456789\",\"ui_score\":71,"
        "\"skin_type\":\"sk-ECHOED-0123\",\"mask_urls\":"
        "[\"https://r/m.png?k=sk-ECHOED-0123456789\"]},"
        "{\"type\":\"pore\",\"ui_score\":50},"
        "{\"type\":\"resize_image\",\"mask_urls\":"
        "[\"https://r/sk-ECHOED-0123456789.jpg\"]}]}}}";
    sa_result *r = NULL, *copy = NULL, *plain = NULL;
    const sa_score *s;
    const char *json;
    int rc;

    r = parse_text(body, SA_PARSE_STATUS_BODY, &rc);
    REQUIRE(rc == SA_OK && r != NULL);
    REQUIRE(sa__result_add_file(r, "sk-ECHOED-0123456789.png",
                               "\x89PNG\r\n\x1a\n", 8) == SA_OK);
    CHECK_EQ_INT(sa__result_scrub(NULL, r, key, &copy), SA_OK);
    REQUIRE(copy != NULL);
    CHECK_EQ_INT(sa_result_count(copy), 2);
    REQUIRE_SCORE(s, sa_result_score(copy, 0));
    CHECK_STR(s->concern, "wrinkle [REDACTED]");
    CHECK_STR(s->region, "Bearer [REDACTED]");
    CHECK_STR(s->skin_type, "[REDACTED]");
    CHECK_NEAR(s->ui_score, 71, 0);
    REQUIRE(s->n_mask_urls == 1);
    CHECK_STR(s->mask_urls[0], "https://r/m.png?k=[REDACTED]");
    CHECK_STR(sa_result_score(copy, 1)->concern, "pore");
    CHECK_STR(sa_result_resize_image_url(copy), "https://r/[REDACTED].jpg");
    json = sa_result_json(copy);
    REQUIRE(json != NULL);
    CHECK(strstr(json, "sk-ECHOED-0123") == NULL);
    CHECK(strstr(json, "[REDACTED]") != NULL);
    REQUIRE(sa_result_file_count(copy) == 1);
    CHECK_STR(sa_result_file_name(copy, 0), "[REDACTED].png");
    CHECK_EQ_INT(sa_result_file_format(copy, 0), SA_IMAGE_PNG);
    /* the original is untouched */
    CHECK_STR(sa_result_score(r, 0)->concern, "wrinkle sk-ECHOED-0123456789");
    sa_result_free(copy);
    copy = NULL;
    /* nothing to hide: no copy */
    plain = parse_text("{\"status\":200,\"data\":{\"task_status\":"
                       "\"success\",\"results\":[{\"type\":\"pore\"}]}}",
                       SA_PARSE_STATUS_BODY, &rc);
    REQUIRE(rc == SA_OK && plain != NULL);
    CHECK_EQ_INT(sa__result_scrub(NULL, plain, key, &copy), SA_OK);
    CHECK(copy == NULL);
    CHECK_EQ_INT(sa__result_scrub(NULL, r, NULL, &copy), SA_OK);
    CHECK(copy == NULL);
    CHECK_EQ_INT(sa__result_scrub(NULL, NULL, key, &copy), SA_OK);
    CHECK(copy == NULL);
    CHECK_EQ_INT(sa__result_scrub(NULL, r, key, NULL),
                 SA_ERR_INVALID_ARGUMENT);
    /* every allocation of the copy may fail: NOMEM, nothing leaked */
    {
        long n;
        int ok = 0;
        for (n = 1; n < 64 && !ok; n++) {
            fs_mem m;
            fs_mem_init(&m, n, 0);
            rc = sa__result_scrub(&m.mem, r, key, &copy);
            if (rc == SA_OK) {
                ok = copy != NULL;
                sa_result_free(copy);
            } else {
                CHECK_EQ_INT(rc, SA_ERR_NOMEM);
                CHECK(copy == NULL);
            }
            copy = NULL;
            if (m.live != 0)
                HARNESS_FAIL("fail at %ld: %ld leaked", n, m.live);
        }
        CHECK(ok);
    }
    sa_result_free(plain);
    sa_result_free(r);
}

/* Files of a fetch into a folder are a name and a path: the scrubbed
 * copy keeps them so (no empty file in memory instead), with the key
 * hidden in names and paths; sa__result_scrub_take hands the files over
 * without copying their bytes, and leaves src as it was when it fails. */
TEST(scrub_keeps_files_on_disk_and_take_moves_the_bytes)
{
    static const char key[] = "sk-ECHOED-0123456789";
    static const char png[] = "\x89PNG\r\n\x1a\nbytes";
    sa_result *r = NULL, *copy = NULL;
    const void *held;
    size_t len = 0;
    int rc;

    r = parse_text("{\"status\":200,\"data\":{\"task_status\":\"success\","
                   "\"results\":[{\"type\":\"pore\",\"ui_score\":5}]}}",
                   SA_PARSE_STATUS_BODY, &rc);
    REQUIRE(rc == SA_OK && r != NULL);
    REQUIRE(sa__result_add_file(r, "held.png", png, sizeof png - 1) == SA_OK);
    REQUIRE(sa__result_add_file_path(r, "a.png", "/tmp/x/a.png",
                                    SA_IMAGE_PNG) == SA_OK);
    REQUIRE(sa__result_add_file_path(r, "sk-ECHOED-0123456789.png",
                                    "/tmp/sk-ECHOED-0123456789/b.png",
                                    SA_IMAGE_JPEG) == SA_OK);
    held = sa_result_file_data(r, 0, &len);

    CHECK_EQ_INT(sa__result_scrub(NULL, r, key, &copy), SA_OK);
    REQUIRE(copy != NULL && sa_result_file_count(copy) == 3);
    CHECK(sa_result_file_data(copy, 0, &len) != held);  /* a copy */
    CHECK(len == sizeof png - 1);
    CHECK(sa_result_file_path(copy, 0) == NULL);
    CHECK_STR(sa_result_file_name(copy, 1), "a.png");
    CHECK_STR(sa_result_file_path(copy, 1), "/tmp/x/a.png");
    CHECK(sa_result_file_data(copy, 1, &len) == NULL && len == 0);
    CHECK_STR(sa_result_file_name(copy, 2), "[REDACTED].png");
    CHECK_STR(sa_result_file_path(copy, 2), "/tmp/[REDACTED]/b.png");
    CHECK_EQ_INT(sa_result_file_format(copy, 2), SA_IMAGE_JPEG);
    sa_result_free(copy);
    copy = NULL;

    CHECK_EQ_INT(sa__result_scrub_take(NULL, r, key, &copy), SA_OK);
    REQUIRE(copy != NULL && sa_result_file_count(copy) == 3);
    CHECK_EQ_INT(sa_result_file_count(r), 0);         /* handed over */
    CHECK(sa_result_file_data(copy, 0, &len) == held);  /* not copied */
    CHECK(len == sizeof png - 1);
    CHECK_STR(sa_result_file_name(copy, 0), "held.png");
    CHECK_EQ_INT(sa_result_file_format(copy, 0), SA_IMAGE_PNG);
    CHECK_STR(sa_result_file_path(copy, 1), "/tmp/x/a.png");
    CHECK_STR(sa_result_file_name(copy, 2), "[REDACTED].png");
    CHECK_STR(sa_result_file_path(copy, 2), "/tmp/[REDACTED]/b.png");
    CHECK_STR(sa_result_score(copy, 0)->concern, "pore");
    sa_result_free(copy);
    copy = NULL;
    /* nothing to hide: no copy, src keeps its files */
    REQUIRE(sa__result_add_file(r, "plain.png", png, 8) == SA_OK);
    CHECK_EQ_INT(sa__result_scrub_take(NULL, r, key, &copy), SA_OK);
    CHECK(copy == NULL && sa_result_file_count(r) == 1);
    CHECK_EQ_INT(sa__result_scrub_take(NULL, r, key, NULL),
                 SA_ERR_INVALID_ARGUMENT);
    sa_result_free(r);

    /* every allocation may fail: NOMEM, src unchanged, nothing leaked */
    {
        long n;
        int ok = 0;
        for (n = 1; n < 64 && !ok; n++) {
            fs_mem m;
            sa_result *src = NULL, *base;
            fs_mem_init(&m, 0, 0);
            base = parse_text("{\"status\":200,\"data\":{\"task_status\":"
                              "\"success\",\"results\":[{\"type\":"
                              "\"pore sk-ECHOED-0123456789\"}]}}",
                              SA_PARSE_STATUS_BODY, &rc);
            REQUIRE(base != NULL);
            REQUIRE(sa__result_clone(&m.mem, base, &src) == SA_OK);
            sa_result_free(base);
            REQUIRE(sa__result_add_file(src, "sk-ECHOED-0123456789.png", png,
                                       8) == SA_OK);
            REQUIRE(sa__result_add_file_path(src, "a.png", "/tmp/x/a.png",
                                            SA_IMAGE_PNG) == SA_OK);
            held = sa_result_file_data(src, 0, &len);
            m.fail_at = m.calls + n;
            rc = sa__result_scrub_take(&m.mem, src, key, &copy);
            if (rc == SA_OK) {
                ok = copy != NULL && sa_result_file_count(src) == 0 &&
                     sa_result_file_data(copy, 0, &len) == held;
                CHECK(ok);
                sa_result_free(copy);
            } else {
                CHECK_EQ_INT(rc, SA_ERR_NOMEM);
                CHECK(copy == NULL);
                CHECK_EQ_INT(sa_result_file_count(src), 2);
                CHECK_STR(sa_result_file_name(src, 0),
                          "sk-ECHOED-0123456789.png");
                CHECK(sa_result_file_data(src, 0, &len) == held);
                CHECK_STR(sa_result_file_path(src, 1), "/tmp/x/a.png");
            }
            copy = NULL;
            sa_result_free(src);
            if (m.live != 0)
                HARNESS_FAIL("fail at %ld: %ld leaked", n, m.live);
        }
        CHECK(ok);
    }
}

TEST(urls)
{
    int rc;
    sa_result *r = parse_text(
        "{\"data\":{\"task_status\":\"success\",\"results\":{\"output\":["
        "{\"type\":\"pore\",\"mask_urls\":[\"https://h/x/pore.png?X-Sig=1&a=b\","
        "\"https://h/x/pore_nose.png#frag\"]},"
        "{\"type\":\"acne\",\"mask_urls\":\"https://h/acne.png\"},"
        "{\"type\":\"resize_image\",\"url\":\"https://h/r/resized.jpg?s=2\"}"
        "]}}}",
        SA_PARSE_STATUS_BODY, &rc);
    const char *urls[8];
    REQUIRE(rc == SA_OK && r != NULL);
    CHECK_EQ_INT(sa__result_urls(r, NULL, 0), 4);
    CHECK_EQ_INT(sa__result_urls(r, urls, 2), 4); /* counts past max */
    CHECK_STR(urls[1], "https://h/x/pore_nose.png#frag");
    CHECK_EQ_INT(sa__result_urls(r, urls, 8), 4);
    CHECK_STR(urls[0], "https://h/x/pore.png?X-Sig=1&a=b");
    CHECK_STR(urls[2], "https://h/acne.png");
    CHECK_STR(urls[3], "https://h/r/resized.jpg?s=2");
    CHECK_EQ_INT(sa__result_urls(NULL, urls, 8), 0);
    CHECK_STR(sa__result_find_url(r, "pore.png"),
              "https://h/x/pore.png?X-Sig=1&a=b");
    CHECK_STR(sa__result_find_url(r, "pore_nose.png"),
              "https://h/x/pore_nose.png#frag");
    CHECK_STR(sa__result_find_url(r, "resized.jpg"),
              "https://h/r/resized.jpg?s=2");
    CHECK(sa__result_find_url(r, "nothing.png") == NULL);
    CHECK(sa__result_find_url(r, "") == NULL);
    CHECK(sa__result_find_url(r, NULL) == NULL);
    CHECK(sa__result_find_url(NULL, "pore.png") == NULL);
    sa_result_free(r);
}

static void check_name(const char *url, size_t buflen, const char *want)
{
    char buf[64];
    memset(buf, 'Z', sizeof buf);
    sa__url_file_name(url, buf, buflen);
    if (strcmp(buf, want) != 0)
        HARNESS_FAIL("sa__url_file_name(%s) = '%s', want '%s'",
                     url ? url : "(null)", buf, want);
}

TEST(url_file_names)
{
    check_name("https://h/a/b/mask.png?X-Amz-Signature=abc/def", 64,
               "mask.png");
    check_name("https://h/mask.jpg#x/y", 64, "mask.jpg");
    check_name("https://h/a/", 64, "");
    check_name("https://h", 64, "");
    check_name("https://h?q=/evil.png", 64, "");
    check_name("https://h/a/..", 64, "");
    check_name("https://h/a/.?x", 64, "");
    check_name("https://h/a/..%2Fetc.png", 64, "..%2Fetc.png"); /* no decode */
    check_name("https://h/a\\b.png", 64, "");
    check_name("https://h/a/b\tc.png", 64, "");
    check_name("mask.png", 64, "mask.png");
    check_name("/x/y.png", 64, "y.png");
    check_name("https://h/abcdefgh.png", 8, ""); /* does not fit: none */
    check_name("https://h/abcdef.png", 11, "abcdef.png");
    check_name(NULL, 64, "");
    sa__url_file_name("https://h/a.png", NULL, 10); /* no crash */
}

/* Which result files are masks: the one rule composites and the
 * bindings' mask lists use. */
TEST(file_is_mask)
{
    static const unsigned char png[] = {0x89, 'P', 'N', 'G', '\r', '\n',
                                        0x1a, '\n', 0, 0};
    static const unsigned char jpeg[] = {0xFF, 0xD8, 0xFF, 0xE0};
    static const char *const rz =
        "https://cdn.example/x/resized%20image.jpg?X-Amz-Signature=abc";
    char rz_name[SA_FILE_NAME_MAX];

    REQUIRE(sa_file_name_clean(rz, rz_name, sizeof rz_name) == SA_OK);
    CHECK_STR(rz_name, "resized_image.jpg");
    CHECK_EQ_INT(sa_file_is_mask("hd_pore_output.png", png, sizeof png, rz),
                 1);
    CHECK_EQ_INT(sa_file_is_mask("mask.jpg", jpeg, sizeof jpeg, NULL), 1);
    /* the resized input image is no mask, under the name the core gives it */
    CHECK_EQ_INT(sa_file_is_mask(rz_name, jpeg, sizeof jpeg, rz), 0);
    CHECK_EQ_INT(sa_file_is_mask(rz_name, jpeg, sizeof jpeg, NULL), 1);
    /* not an image: score_info.json, a short or empty file, no bytes */
    CHECK_EQ_INT(sa_file_is_mask("score_info.json", "{}", 2, NULL), 0);
    CHECK_EQ_INT(sa_file_is_mask("cut.png", png, 7, NULL), 0);
    CHECK_EQ_INT(sa_file_is_mask("cut.jpg", jpeg, 2, NULL), 0);
    CHECK_EQ_INT(sa_file_is_mask("empty.png", png, 0, NULL), 0);
    CHECK_EQ_INT(sa_file_is_mask("on_disk.png", NULL, 0, NULL), 0);
    CHECK_EQ_INT(sa_file_is_mask(NULL, png, sizeof png, NULL), 0);
}

int main(void)
{
    RUN(json_hd);
    RUN(json_sd);
    RUN(zip_forms);
    RUN(not_success);
    RUN(score_info_hd);
    RUN(score_info_sd);
    RUN(score_info_tolerant);
    RUN(output_tolerant);
    RUN(null_result_accessors);
    RUN(one_allocation);
    RUN(raw_json_text);
    RUN(files_and_clone);
    RUN(clone_zip_result);
    RUN(scrub_hides_the_key_everywhere);
    RUN(scrub_keeps_files_on_disk_and_take_moves_the_bytes);
    RUN(urls);
    RUN(url_file_names);
    RUN(file_is_mask);
    return harness_report();
}
