/*
 * test_structs.c - structs.c: the public structs that grow (struct_size,
 * defaults past the caller's size, unknown fields of a newer program).
 * tests/abi checks the same across real builds; this is the unit level.
 */
#include "harness.h"
#include "sa_client.h"

#include <stddef.h>

#define CANARY 0xA5

/* The caller's size as a program built when the struct ended before
 * `field` would pass it. */
#define SIZE_BEFORE(type, field) offsetof(type, field)

TEST(init_writes_only_the_callers_size)
{
    unsigned char raw[sizeof(sa_client_options) + 32];
    sa_client_options *o = (sa_client_options *)(void *)raw;
    size_t cut = SIZE_BEFORE(sa_client_options, max_uploads), i;

    memset(raw, CANARY, sizeof raw);
    sa_client_options_init_sized(o, cut);
    CHECK_EQ_INT(o->struct_size, cut);
    CHECK_EQ_INT(o->api_version, SA_API_V2_1);
    CHECK_EQ_INT(o->max_retries, 6);
    for (i = cut; i < sizeof raw; i++)
        if (raw[i] != CANARY) HARNESS_FAIL("byte %zu written", i);

    /* a size past the library's struct: the tail is zeroed */
    memset(raw, CANARY, sizeof raw);
    sa_client_options_init_sized(o, sizeof raw);
    CHECK_EQ_INT(o->struct_size, sizeof raw);
    for (i = sizeof(sa_client_options); i < sizeof raw; i++)
        if (raw[i] != 0) HARNESS_FAIL("tail byte %zu not zero", i);

    /* sizes that cannot be a struct: nothing written */
    memset(raw, CANARY, sizeof raw);
    sa_client_options_init_sized(o, 0);
    sa_client_options_init_sized(o, 3);
    sa_client_options_init_sized(NULL, sizeof *o);
    for (i = 0; i < sizeof raw; i++)
        if (raw[i] != CANARY) HARNESS_FAIL("byte %zu written", i);
}

TEST(struct_in_defaults_past_the_callers_size)
{
    sa_request full, user;
    char err[256] = "";

    /* an older program: its struct ends before deadline_ms; the bytes
     * after it (garbage here) are never read */
    memset(&user, CANARY, sizeof user);
    sa_request_init_sized(&user, SIZE_BEFORE(sa_request, deadline_ms));
    user.file_path = "x.jpg";
    sa_request_init(&full);
    CHECK_EQ_INT(sa__struct_in(&full, sizeof full, &user, err, sizeof err),
                 SA_OK);
    CHECK_EQ_INT(full.struct_size, sizeof full);
    CHECK_STR(full.file_path, "x.jpg");
    CHECK_EQ_INT(full.pf_camera_kit, -1);
    CHECK_EQ_INT(full.deadline_ms, 0);
    CHECK(full.callback == NULL && full.user_data == NULL);
}

TEST(struct_in_newer_program)
{
    struct {
        sa_fetch_options o;
        int future;   /* a field this library does not know */
    } big;
    sa_fetch_options full;
    char err[256] = "";

    sa_fetch_options_init_sized(&big.o, sizeof big);
    CHECK_EQ_INT(big.future, 0);
    big.o.folder = "/tmp";
    sa_fetch_options_init(&full);
    CHECK_EQ_INT(sa__struct_in(&full, sizeof full, &big, err, sizeof err),
                 SA_OK);
    CHECK_STR(full.folder, "/tmp");
    big.future = 7;
    CHECK_EQ_INT(sa__struct_in(&full, sizeof full, &big, err, sizeof err),
                 SA_ERR_INVALID_ARGUMENT);
    CHECK(strstr(err, "newer skinanalysis.h") != NULL);
}

TEST(struct_in_never_initialised)
{
    sa_client_options full, user;
    char err[256] = "";
    size_t sizes[] = {0, 1, sizeof(size_t), 65537, (size_t)-1};
    size_t i;

    for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        memset(&user, 0, sizeof user);
        user.struct_size = sizes[i];
        sa_client_options_init(&full);
        CHECK_EQ_INT(sa__struct_in(&full, sizeof full, &user, err,
                                   sizeof err), SA_ERR_INVALID_ARGUMENT);
        CHECK(strstr(err, "init macro") != NULL);
    }
}

TEST(client_takes_defaults_past_the_callers_size)
{
    unsigned char raw[sizeof(sa_client_options)];
    sa_client_options *o = (sa_client_options *)(void *)raw;
    sa_client *c = NULL;
    char err[256] = "";

    /* an older program whose options ended before max_uploads: every
     * later field (max_uploads, step_budget_us, max_files_bytes, the
     * low-speed cut-off) takes its default, whatever those bytes hold */
    memset(raw, 0xFF, sizeof raw);
    sa_client_options_init_sized(o, SIZE_BEFORE(sa_client_options,
                                                max_uploads));
    o->api_key = "k";
    o->base_url = "http://127.0.0.1:9";
    REQUIRE(sa_client_new(&c, o, err, sizeof err) == SA_OK);
    CHECK_EQ_INT(c->opt.max_uploads, 8);
    CHECK_EQ_INT(c->opt.step_budget_us, 500);
    CHECK(c->opt.max_files_bytes == (size_t)256 << 20);
    CHECK_EQ_INT(c->opt.low_speed_limit, 1024);
    CHECK_EQ_INT(c->opt.low_speed_time_ms, 30000);
    sa_client_free(c);

    /* not set up at all */
    memset(raw, 0, sizeof raw);
    o->api_key = "k";
    c = NULL;
    CHECK_EQ_INT(sa_client_new(&c, o, err, sizeof err),
                 SA_ERR_INVALID_ARGUMENT);
    CHECK(c == NULL && strstr(err, "struct_size") != NULL);
}

TEST(probe_writes_only_the_callers_size)
{
    static const unsigned char png[] = {
        0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13,
        'I', 'H', 'D', 'R', 0, 0, 2, 0x58, 0, 0, 3, 0x20, 8, 6, 0, 0, 0};
    unsigned char raw[sizeof(sa_image_info) + 16];
    sa_image_info *info = (sa_image_info *)(void *)raw;
    size_t cut = SIZE_BEFORE(sa_image_info, width), i;

    memset(raw, CANARY, sizeof raw);
    sa_image_info_init_sized(info, cut);
    CHECK_EQ_INT(sa_image_probe_buffer(png, sizeof png, info), SA_OK);
    CHECK_EQ_INT(info->format, SA_IMAGE_PNG);
    CHECK_EQ_INT(info->struct_size, cut);
    for (i = cut; i < sizeof raw; i++)
        if (raw[i] != CANARY) HARNESS_FAIL("byte %zu written", i);

    sa_image_info_init(info);
    CHECK_EQ_INT(sa_image_probe_buffer(png, sizeof png, info), SA_OK);
    CHECK_EQ_INT(info->width, 600);
    CHECK_EQ_INT(info->height, 800);
}

TEST(probe_a_fixture)
{
    sa_image_info info;
    size_t len = 0;
    char *data = harness_slurp(SA_FIXTURES "/portrait_sd.jpg", &len);

    REQUIRE(data != NULL);
    sa_image_info_init(&info);
    CHECK_EQ_INT(sa_image_probe_buffer(data, len, &info), SA_OK);
    CHECK_EQ_INT(info.format, SA_IMAGE_JPEG);
    CHECK(info.width >= SA_MIN_SIDE_SD && info.height >= SA_MIN_SIDE_SD);
    free(data);
}

int main(void)
{
    if (sa_global_init() != SA_OK) return 1;
    RUN(init_writes_only_the_callers_size);
    RUN(struct_in_defaults_past_the_callers_size);
    RUN(struct_in_newer_program);
    RUN(struct_in_never_initialised);
    RUN(client_takes_defaults_past_the_callers_size);
    RUN(probe_writes_only_the_callers_size);
    RUN(probe_a_fixture);
    sa_global_cleanup();
    return harness_report();
}
