/*
 * test_zip.c - result ZIPs (tests/fixtures/zips, made by make_zips.py):
 * the emulator's layout in HD and SD, score_info.json at the root or under
 * one other folder, corrupt, truncated and empty archives, no
 * score_info.json, bad JSON, entry size limits, zip-slip names, and a
 * failing allocator.
 */
#include "harness.h"
#include "sa_internal.h"
#include "support_fakeserver.h"

static char *zip_fixture(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/zips/%s", SA_FIXTURES, name);
    return harness_slurp(path, len);
}

/* Parse a fixture; *rc gets the status, errbuf the message. */
static sa_result *parse_fixture(const char *name, size_t max_entry, int *rc,
                                char *errbuf, size_t errlen)
{
    size_t len = 0;
    char *data = zip_fixture(name, &len);
    sa_result *r = NULL;
    *rc = data ? sa_result_parse_zip(data, len, max_entry, &r, errbuf, errlen)
               : -1000;
    free(data);
    return r;
}

static const void *file_named(const sa_result *r, const char *name,
                              size_t *len, int *format)
{
    size_t i;
    for (i = 0; i < sa_result_file_count(r); i++) {
        if (strcmp(sa_result_file_name(r, i), name) == 0) {
            *format = sa_result_file_format(r, i);
            return sa_result_file_data(r, i, len);
        }
    }
    return NULL;
}

/* Every score's mask_name has a PNG file of that name. */
static int masks_present(const sa_result *r)
{
    size_t i, len;
    int format;
    for (i = 0; i < sa_result_count(r); i++) {
        const sa_score *s = sa_result_score(r, i);
        if (!s->mask_name) return 0;
        if (!file_named(r, s->mask_name, &len, &format)) return 0;
        if (format != SA_IMAGE_PNG || len < 8) return 0;
    }
    return 1;
}

TEST(hd_emulator_layout)
{
    char err[256];
    int rc;
    sa_result *r = parse_fixture("result_hd.zip", 0, &rc, err, sizeof err);
    const sa_score *s;
    sa_image_info info;
    const void *data;
    size_t len;
    int format;

    sa_image_info_init(&info);
    REQUIRE(rc == SA_OK && r != NULL);
    CHECK_STR(err, "");
    CHECK_EQ_INT(sa_result_format(r), SA_FORMAT_ZIP);
    CHECK_EQ_INT(sa_result_count(r), 23);
    CHECK_NEAR(sa_result_overall(r), 75.75757575757575, 0);
    CHECK_NEAR(sa_result_skin_age(r), 37, 0);
    s = sa_result_get(r, "hd_pore", "nose");
    REQUIRE(s != NULL);
    CHECK_NEAR(s->ui_score, 58, 0);
    CHECK_STR(s->mask_name, "hd_pore_output_nose.png");
    CHECK_EQ_INT(sa_result_file_count(r), 23);
    CHECK(masks_present(r));
    data = file_named(r, "hd_pore_output_nose.png", &len, &format);
    REQUIRE(data != NULL);
    CHECK_EQ_INT(sa_image_probe_buffer(data, len, &info), SA_OK);
    CHECK(info.width >= 8 && info.width <= 10 && info.height >= 6);
    /* the raw score_info.json text */
    REQUIRE(sa_result_json(r) != NULL);
    CHECK(strstr(sa_result_json(r), "\"hd_pore_output_nose.png\"") != NULL);
    CHECK(sa_result_file_name(r, 23) == NULL);
    CHECK(sa_result_file_data(r, 23, &len) == NULL && len == 0);
    CHECK_EQ_INT(sa_result_file_format(r, 23), SA_IMAGE_UNKNOWN);
    sa_result_free(r);
}

TEST(sd_root_and_other_folder)
{
    static const char *const names[] = {"result_sd_root.zip",
                                        "other_folder.zip"};
    size_t i;
    for (i = 0; i < 2; i++) {
        char err[256];
        int rc;
        sa_result *r = parse_fixture(names[i], 0, &rc, err, sizeof err);
        REQUIRE(rc == SA_OK && r != NULL);
        CHECK_EQ_INT(sa_result_count(r), 14);
        CHECK_NEAR(sa_result_skin_age(r), 37, 0);
        CHECK_STR(sa_result_get(r, "acne", NULL)->mask_name,
                  "acne_output.png");
        CHECK_EQ_INT(sa_result_file_count(r), 14);
        CHECK(masks_present(r));
        sa_result_free(r);
    }
}

static void check_refused(const char *name, size_t max_entry, int want,
                          const char *msg_part)
{
    char err[256];
    int rc;
    sa_result *r = parse_fixture(name, max_entry, &rc, err, sizeof err);
    CHECK_EQ_INT(rc, want);
    CHECK(r == NULL);
    if (!strstr(err, msg_part))
        HARNESS_FAIL("%s: message '%s' lacks '%s'", name, err, msg_part);
}

TEST(refused_archives)
{
    check_refused("no_score_info.zip", 0, SA_ERR_ZIP, "score_info.json");
    check_refused("too_deep.zip", 0, SA_ERR_ZIP, "score_info.json");
    check_refused("bad_json.zip", 0, SA_ERR_ZIP, "not valid JSON");
    /* score_info.json of the HD example is about 3 KB */
    check_refused("result_hd.zip", 1000, SA_ERR_LIMIT, "over the limit");
    /* a small score_info.json, then a 200,000-byte mask deflated to a few
     * hundred bytes: refused on its declared size */
    check_refused("big_mask.zip", 100000, SA_ERR_LIMIT, "over the limit");
}

TEST(corrupt_and_truncated)
{
    char err[256];
    size_t len = 0, cut;
    char *data = zip_fixture("result_hd.zip", &len);
    sa_result *r = NULL;

    REQUIRE(data != NULL && len > 100);
    /* truncated at several points: no central directory, or a cut one */
    for (cut = 1; cut < len; cut += len / 7) {
        CHECK_EQ_INT(sa_result_parse_zip(data, cut, 0, &r, err, sizeof err),
                     SA_ERR_ZIP);
        CHECK(r == NULL);
    }
    CHECK_EQ_INT(sa_result_parse_zip(data, len - 1, 0, &r, err, sizeof err),
                 SA_ERR_ZIP);
    CHECK(strstr(err, "not a valid zip") != NULL);
    /* a flipped byte inside the deflated score_info.json: CRC or inflate */
    data[60] = (char)(data[60] ^ 0x55);
    CHECK_EQ_INT(sa_result_parse_zip(data, len, 0, &r, err, sizeof err),
                 SA_ERR_ZIP);
    CHECK(r == NULL);
    free(data);

    CHECK_EQ_INT(sa_result_parse_zip("PK\003\004garbage", 11, 0, &r, err,
                                     sizeof err),
                 SA_ERR_ZIP);
    CHECK_EQ_INT(sa_result_parse_zip("x", 0, 0, &r, err, sizeof err),
                 SA_ERR_ZIP);
    CHECK_EQ_INT(sa_result_parse_zip(NULL, 5, 0, &r, err, sizeof err),
                 SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(sa_result_parse_zip("x", 1, 0, NULL, NULL, 0),
                 SA_ERR_INVALID_ARGUMENT);
}

TEST(big_entry_within_limit)
{
    char err[256];
    int rc;
    size_t len = 0;
    sa_result *r = parse_fixture("big_mask.zip", 200008, &rc, err,
                                 sizeof err);
    REQUIRE(rc == SA_OK && r != NULL);
    CHECK_EQ_INT(sa_result_count(r), 0);
    CHECK_NEAR(sa_result_overall(r), 50, 0);
    REQUIRE(sa_result_file_count(r) == 1);
    CHECK(sa_result_file_data(r, 0, &len) != NULL);
    CHECK_EQ_INT(len, 200008);
    CHECK_EQ_INT(sa_result_file_format(r, 0), SA_IMAGE_PNG);
    sa_result_free(r);
    check_refused("big_mask.zip", 200007, SA_ERR_LIMIT, "over the limit");
}

TEST(zip_slip_names)
{
    char err[256];
    int rc, format;
    size_t i, len;
    const unsigned char *px;
    sa_result *r = parse_fixture("zip_slip.zip", 0, &rc, err, sizeof err);

    REQUIRE(rc == SA_OK && r != NULL);
    CHECK_EQ_INT(sa_result_count(r), 1);
    /* evil.png (from "../evil.png"), evil-2.png ("other/evil.png": the
     * same base name is kept under a unique one, not dropped), x.PNG,
     * y.jpeg; not the directory, the .txt or ".." */
    CHECK_EQ_INT(sa_result_file_count(r), 4);
    for (i = 0; i < sa_result_file_count(r); i++) {
        const char *name = sa_result_file_name(r, i);
        CHECK(strchr(name, '/') == NULL && strstr(name, "..") == NULL);
    }
    px = file_named(r, "evil.png", &len, &format);
    REQUIRE(px != NULL);
    CHECK_EQ_INT(format, SA_IMAGE_PNG);
    CHECK(file_named(r, "evil-2.png", &len, &format) != NULL);
    CHECK(file_named(r, "x.PNG", &len, &format) != NULL);
    CHECK(file_named(r, "y.jpeg", &len, &format) != NULL);
    CHECK_EQ_INT(format, SA_IMAGE_JPEG);
    CHECK_STR(sa_result_get(r, "acne", NULL)->mask_name, "evil.png");
    sa_result_free(r);
}

/* The images of a result ZIP add up to at most the total given (the
 * client's max_files_bytes). */
TEST(total_bound)
{
    size_t len = 0, total = 0, i, flen;
    char *data = zip_fixture("result_sd_root.zip", &len);
    char err[256];
    sa_result *r = NULL;

    REQUIRE(data != NULL);
    REQUIRE(sa__result_from_zip(NULL, data, len, 0, 0, NULL, &r, err,
                               sizeof err) == SA_OK);
    for (i = 0; i < sa_result_file_count(r); i++) {
        sa_result_file_data(r, i, &flen);
        total += flen;
    }
    sa_result_free(r);
    r = NULL;
    CHECK_EQ_INT(sa__result_from_zip(NULL, data, len, 0, total, NULL, &r, err,
                                    sizeof err), SA_OK);
    sa_result_free(r);
    r = NULL;
    CHECK_EQ_INT(sa__result_from_zip(NULL, data, len, 0, total - 1, NULL, &r,
                                    err, sizeof err), SA_ERR_LIMIT);
    CHECK(r == NULL);
    CHECK(strstr(err, "add up to more than") != NULL);
    free(data);
}

TEST(failing_allocator)
{
    size_t len = 0;
    char *data = zip_fixture("result_sd_root.zip", &len);
    char err[128];
    long n;
    int ok = 0;

    REQUIRE(data != NULL);
    for (n = 0; n < 200 && !ok; n++) {
        fs_mem f;
        sa_result *r = NULL;
        int rc;
        fs_mem_init(&f, n + 1, 1);  /* n allocations, then none */
        rc = sa__result_from_zip(&f.mem, data, len, 0, 0, "T9", &r, err,
                                sizeof err);
        if (rc == SA_OK) {
            ok = 1;
            CHECK_STR(sa_result_task_id(r), "T9");
            CHECK_EQ_INT(sa_result_file_count(r), 14);
        } else {
            CHECK_EQ_INT(rc, SA_ERR_NOMEM);
            CHECK(r == NULL);
        }
        sa_result_free(r);
        CHECK_EQ_INT(f.live, 0);
    }
    CHECK(ok);
    free(data);
}

int main(void)
{
    RUN(hd_emulator_layout);
    RUN(sd_root_and_other_folder);
    RUN(refused_archives);
    RUN(corrupt_and_truncated);
    RUN(big_entry_within_limit);
    RUN(zip_slip_names);
    RUN(total_bound);
    RUN(failing_allocator);
    return harness_report();
}
