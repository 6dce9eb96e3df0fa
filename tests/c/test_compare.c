/*
 * test_compare.c - sa_result_compare / sa_scores_compare: matching by
 * concern and region (SD against HD), entries on one side only, skin
 * types, the overall score and skin age, copies outliving the results,
 * bad arguments.
 */
#include "harness.h"
#include "sa_internal.h"

static sa_result *parse(const char *text)
{
    sa_result *r = NULL;
    if (sa_result_parse(text, strlen(text), SA_PARSE_SCORE_INFO, &r) != SA_OK)
        return NULL;
    return r;
}

static const sa_change *find(const sa_comparison *c, const char *concern,
                             const char *region)
{
    size_t i;
    for (i = 0; i < sa_comparison_count(c); i++) {
        const sa_change *ch = sa_comparison_change(c, i);
        if (strcmp(ch->concern, concern) == 0 && strcmp(ch->region, region) == 0)
            return ch;
    }
    return NULL;
}

static const char *BEFORE =
    "{\"wrinkle\":{\"raw_score\":40.5,\"ui_score\":60},"
    "\"pore\":{\"raw_score\":70.25,\"ui_score\":80},"
    "\"acne\":{\"raw_score\":50,\"ui_score\":55},"
    "\"skin_type\":{\"skin_type\":\"Oily\"},"
    "\"all\":{\"score\":65},\"skin_age\":31}";
static const char *AFTER =
    "{\"hd_wrinkle\":{\"whole\":{\"raw_score\":50.5,\"ui_score\":72}},"
    "\"pore\":{\"raw_score\":60.25,\"ui_score\":71},"
    "\"redness\":{\"raw_score\":30,\"ui_score\":44},"
    "\"skin_type\":{\"skin_type\":\"Normal\"},"
    "\"all\":{\"score\":68.5},\"skin_age\":29}";

TEST(compare_results)
{
    sa_result *b = parse(BEFORE), *a = parse(AFTER);
    sa_comparison *c = NULL;
    const sa_change *ch;

    REQUIRE(a && b);
    CHECK_EQ_INT(sa_result_compare(b, a, &c), SA_OK);
    REQUIRE(c != NULL);
    /* the results may go first: the comparison keeps copies */
    sa_result_free(a);
    sa_result_free(b);
    CHECK_EQ_INT(sa_comparison_count(c), 5);
    ch = find(c, "hd_wrinkle", "whole"); /* matched to SD "wrinkle" */
    REQUIRE(ch != NULL);
    CHECK(ch->in_before && ch->in_after);
    CHECK_NEAR(ch->ui_before, 60, 1e-9);
    CHECK_NEAR(ch->ui_after, 72, 1e-9);
    CHECK_NEAR(ch->ui_change, 12, 1e-9);
    CHECK_NEAR(ch->raw_change, 10, 1e-9);
    ch = find(c, "pore", "whole");
    REQUIRE(ch != NULL);
    CHECK_NEAR(ch->ui_change, -9, 1e-9);
    CHECK_NEAR(ch->raw_change, -10, 1e-9);
    ch = find(c, "redness", "whole"); /* only after */
    REQUIRE(ch != NULL);
    CHECK(!ch->in_before && ch->in_after);
    CHECK(isnan(ch->ui_before) && isnan(ch->ui_change));
    CHECK_NEAR(ch->ui_after, 44, 1e-9);
    ch = find(c, "acne", "whole"); /* only before: listed last */
    REQUIRE(ch != NULL);
    CHECK(ch == sa_comparison_change(c, 4));
    CHECK(ch->in_before && !ch->in_after);
    CHECK(isnan(ch->ui_change));
    ch = find(c, "skin_type", "whole");
    REQUIRE(ch != NULL);
    CHECK_STR(ch->skin_type_before, "Oily");
    CHECK_STR(ch->skin_type_after, "Normal");
    CHECK(isnan(ch->ui_change));
    ch = sa_comparison_overall(c);
    CHECK_STR(ch->concern, "all");
    CHECK_NEAR(ch->ui_change, 3.5, 1e-9);
    ch = sa_comparison_skin_age(c);
    CHECK_STR(ch->concern, "skin_age");
    CHECK_NEAR(ch->ui_before, 31, 1e-9);
    CHECK_NEAR(ch->ui_change, -2, 1e-9);
    CHECK(sa_comparison_change(c, 5) == NULL);
    sa_comparison_free(c);
}

/* Score lists: regions matched one to one, duplicates each used once,
 * absent overall is NaN. */
TEST(compare_scores)
{
    sa_score b[3], a[2];
    sa_scores sb, sa;
    sa_comparison *c = NULL;
    const sa_change *ch;

    memset(b, 0, sizeof b);
    memset(a, 0, sizeof a);
    b[0].concern = "hd_pore"; b[0].region = "nose";
    b[0].ui_score = 50; b[0].raw_score = NAN;
    b[1].concern = "hd_pore"; b[1].region = "cheek";
    b[1].ui_score = 40; b[1].raw_score = 20;
    b[2].concern = "hd_pore"; b[2].region = "cheek";
    b[2].ui_score = 41; b[2].raw_score = 21;
    a[0].concern = "hd_pore"; a[0].region = "cheek";
    a[0].ui_score = 45; a[0].raw_score = 25;
    a[1].concern = "hd_pore"; a[1].region = "nose";
    a[1].ui_score = 52; a[1].raw_score = 30;
    sb.scores = b; sb.count = 3; sb.overall = NAN; sb.skin_age = 30;
    sa.scores = a; sa.count = 2; sa.overall = 70; sa.skin_age = NAN;
    CHECK_EQ_INT(sa_scores_compare(&sb, &sa, &c), SA_OK);
    REQUIRE(c != NULL);
    CHECK_EQ_INT(sa_comparison_count(c), 3);
    ch = sa_comparison_change(c, 0);
    CHECK_STR(ch->region, "cheek");
    CHECK_NEAR(ch->ui_change, 5, 1e-9);
    CHECK_NEAR(ch->raw_change, 5, 1e-9);
    ch = sa_comparison_change(c, 1);
    CHECK_STR(ch->region, "nose");
    CHECK_NEAR(ch->ui_change, 2, 1e-9);
    CHECK(isnan(ch->raw_change)); /* no raw before */
    ch = sa_comparison_change(c, 2); /* the second cheek, before only */
    CHECK_NEAR(ch->ui_before, 41, 1e-9);
    CHECK(!ch->in_after);
    CHECK(isnan(sa_comparison_overall(c)->ui_change));
    CHECK(!sa_comparison_overall(c)->in_before);
    CHECK(sa_comparison_overall(c)->in_after);
    CHECK(isnan(sa_comparison_skin_age(c)->ui_change));
    sa_comparison_free(c);

    /* empty lists */
    sb.count = 0; sa.count = 0;
    CHECK_EQ_INT(sa_scores_compare(&sb, &sa, &c), SA_OK);
    CHECK_EQ_INT(sa_comparison_count(c), 0);
    sa_comparison_free(c);
}

/* A result against itself: every change 0, nothing one-sided. */
TEST(compare_same)
{
    char path[512];
    size_t len = 0, i;
    char *text;
    sa_result *r = NULL;
    sa_comparison *c = NULL;

    snprintf(path, sizeof path, "%s/score-info-hd.json", SA_EXAMPLES);
    text = harness_slurp(path, &len);
    REQUIRE(text != NULL);
    REQUIRE(sa_result_parse(text, len, SA_PARSE_SCORE_INFO, &r) == SA_OK);
    free(text);
    CHECK_EQ_INT(sa_result_compare(r, r, &c), SA_OK);
    REQUIRE(c != NULL);
    CHECK_EQ_INT(sa_comparison_count(c), sa_result_count(r));
    for (i = 0; i < sa_comparison_count(c); i++) {
        const sa_change *ch = sa_comparison_change(c, i);
        CHECK(ch->in_before && ch->in_after);
        CHECK_STR(ch->region, sa_result_score(r, i)->region);
        if (!isnan(ch->ui_after)) CHECK_NEAR(ch->ui_change, 0, 0);
    }
    sa_comparison_free(c);
    sa_result_free(r);
}

TEST(bad_arguments)
{
    sa_result *r = parse(BEFORE);
    sa_comparison *c = (sa_comparison *)1;
    sa_score s;
    sa_scores ok, bad;

    REQUIRE(r != NULL);
    CHECK_EQ_INT(sa_result_compare(NULL, r, &c), SA_ERR_INVALID_ARGUMENT);
    CHECK(c == NULL);
    CHECK_EQ_INT(sa_result_compare(r, NULL, &c), SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(sa_result_compare(r, r, NULL), SA_ERR_INVALID_ARGUMENT);
    memset(&s, 0, sizeof s);
    s.concern = "pore"; /* no region */
    ok.scores = NULL; ok.count = 0; ok.overall = ok.skin_age = NAN;
    bad = ok;
    bad.scores = &s;
    bad.count = 1;
    CHECK_EQ_INT(sa_scores_compare(&ok, &bad, &c), SA_ERR_INVALID_ARGUMENT);
    bad.scores = NULL;
    CHECK_EQ_INT(sa_scores_compare(&bad, &ok, &c), SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(sa_comparison_count(NULL), 0);
    CHECK(sa_comparison_change(NULL, 0) == NULL);
    CHECK(sa_comparison_overall(NULL) == NULL);
    sa_comparison_free(NULL);
    sa_result_free(r);
}

int main(void)
{
    RUN(compare_results);
    RUN(compare_scores);
    RUN(compare_same);
    RUN(bad_arguments);
    return harness_report();
}
