/*
 * test_files.c - files.c: name cleaning (sa_file_name_clean), unique names
 * within a result, and the folder writer (sa_folder_*): never over a file
 * it did not write, never through a link, always inside the folder, the
 * same file kept when saved twice, nothing left behind on failure, and a
 * failing allocator.
 */
#include "harness.h"
#include "sa_internal.h"
#include "support_fakeserver.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct {
    const char *in, *out;
} clean_cases[] = {
    {"hd_pore_output.png", "hd_pore_output.png"},
    {"https://s3.test/a/b/mask.png?X-Amz-Signature=abc#frag", "mask.png"},
    {"https://s3.test/a/b/x%20y.png?sig=1", "x_y.png"},
    {"http://h:8080/_results/tok/wrinkle_output.png?expires=1&sig=2",
     "wrinkle_output.png"},
    {"https://host-without-path", "file"},
    {"https://h/dir/", "file"},
    {"x y.png", "x_y.png"},
    {"x  \t y.png", "x_y.png"},
    {"../../etc/passwd", "passwd"},
    {"..%2F..%2Fetc%2Fpasswd", "etc_passwd"},
    {"a\\b\\c.png", "c.png"},
    {"%00x.png", "x.png"},
    {"x%zz.png", "x_zz.png"},
    {".hidden", "file.hidden"},
    {"_.png", "file.png"},
    {"\xe6\x97\xa5\xe6\x9c\xac.png", "file.png"},
    {"-rf", "rf"},
    {"--", "file"},
    {"..", "file"},
    {".", "file"},
    {"", "file"},
    {"name.", "name"},
    {"a.b.c.tar.gz", "a.b.c.tar.gz"},
    {"C:evil.png", "C_evil.png"},
    {"mask.png\r\nX: y", "mask.png_X_y"},
};

TEST(clean_names)
{
    char out[SA_FILE_NAME_MAX];
    size_t i;

    for (i = 0; i < sizeof clean_cases / sizeof clean_cases[0]; i++) {
        memset(out, 'Z', sizeof out);
        CHECK_EQ_INT(sa_file_name_clean(clean_cases[i].in, out, sizeof out),
                     SA_OK);
        if (strcmp(out, clean_cases[i].out) != 0)
            HARNESS_FAIL("clean(\"%s\") = \"%s\", expected \"%s\"",
                         clean_cases[i].in, out, clean_cases[i].out);
    }
    CHECK_EQ_INT(sa_file_name_clean(NULL, out, sizeof out), SA_OK);
    CHECK_STR(out, "file");
    CHECK_EQ_INT(sa_file_name_clean("a.png", out, SA_FILE_NAME_MAX - 1),
                 SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(sa_file_name_clean("a.png", NULL, 0),
                 SA_ERR_INVALID_ARGUMENT);
}

TEST(long_names_keep_their_extension)
{
    char in[4096], out[SA_FILE_NAME_MAX], unique[SA_FILE_NAME_MAX];
    sa__names set;
    int i;

    memset(in, 'a', 3000);
    memcpy(in + 3000, ".png", 5);
    REQUIRE(sa_file_name_clean(in, out, sizeof out) == SA_OK);
    CHECK_EQ_INT(strlen(out), 112);
    CHECK_STR(out + 108, ".png");
    memset(in, 'b', 3000);
    in[3000] = '\0';
    REQUIRE(sa_file_name_clean(in, out, sizeof out) == SA_OK);
    CHECK_EQ_INT(strlen(out), 112);
    /* a long name made unique still fits the buffer */
    sa__names_init(&set, NULL);
    for (i = 0; i < 12; i++) {
        CHECK_EQ_INT(sa__names_claim(&set, in, unique, sizeof unique), SA_OK);
        CHECK(strlen(unique) < SA_FILE_NAME_MAX);
    }
    CHECK(strstr(unique, "-12") != NULL);
    sa__names_free(&set);
}

TEST(names_are_unique_in_claim_order)
{
    static const char *const urls[] = {
        "https://r.test/a/mask.png?sig=1", "https://r.test/b/mask.png?sig=2",
        "https://r.test/c/mask.png?sig=3", "https://r.test/x%20y.png",
        "https://r.test/x_y.png", "https://r.test/README",
        "https://r.test/README", "https://r.test/mask-2.png"};
    static const char *const want[] = {
        "mask.png", "mask-2.png", "mask-3.png", "x_y.png", "x_y-2.png",
        "README", "README-2", "mask-2-2.png"};
    char out[SA_FILE_NAME_MAX];
    sa__names set;
    size_t i;

    sa__names_init(&set, NULL);
    for (i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        CHECK_EQ_INT(sa__names_claim(&set, urls[i], out, sizeof out), SA_OK);
        CHECK_STR(out, want[i]);
    }
    CHECK_EQ_INT(set.n, 8);
    CHECK(sa__names_has(&set, "mask-3.png"));
    CHECK(!sa__names_has(&set, "mask-4.png"));
    sa__names_free(&set);

    /* many of one name: the set grows, every name stays unique */
    sa__names_init(&set, NULL);
    for (i = 0; i < 300; i++)
        CHECK_EQ_INT(sa__names_claim(&set, "m.png", out, sizeof out), SA_OK);
    CHECK_STR(out, "m-300.png");
    CHECK_EQ_INT(set.n, 300);
    sa__names_free(&set);
}

/* ------------------------------------------------------------------ */
/* The folder writer                                                   */
/* ------------------------------------------------------------------ */

static char g_dir[64];

static void put(const char *name, const char *data)
{
    char path[256];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    f = fopen(path, "wb");
    if (!f) return;
    fputs(data, f);
    fclose(f);
}

/* The bytes of g_dir/name as a string ("" when missing). */
static const char *content(const char *name)
{
    static char buf[256];
    char path[256], *data;
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    data = harness_slurp(path, NULL);
    snprintf(buf, sizeof buf, "%s", data ? data : "");
    free(data);
    return buf;
}

/* Number of entries of dir (without . and ..), and of ".sa-" ones. */
static int count_entries(const char *dir, int *tmp)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    *tmp = 0;
    if (!d) return -1;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        n++;
        if (!strncmp(e->d_name, ".sa-", 4)) (*tmp)++;
    }
    closedir(d);
    return n;
}

static void rm_tree(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", dir);
}

static int write_str(sa_folder *f, const char *name, const char *data,
                     char *written)
{
    char err[256];
    int rc = sa_folder_write(f, name, data, strlen(data), written,
                             SA_FILE_NAME_MAX, err, sizeof err);
    if (rc != SA_OK) fprintf(stderr, "  sa_folder_write(%s): %s\n", name, err);
    return rc;
}

/* Writing data under name succeeds, as the file want, which holds data. */
static void saved_as(sa_folder *f, const char *name, const char *data,
                     const char *want)
{
    char written[SA_FILE_NAME_MAX];
    CHECK_EQ_INT(write_str(f, name, data, written), 0);
    CHECK_STR(written, want);
    CHECK_STR(content(written), data);
}

/* A new empty folder in /tmp as g_dir: 1, or 0 when it cannot be made. */
static int new_dir(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/sa_files_XXXXXX");
    return mkdtemp(g_dir) != NULL;
}

/* new_dir, opened as *f: SA_OK, or what failed. */
static int new_folder(sa_folder **f)
{
    char err[256];
    if (!new_dir()) return SA_ERR_FILE;
    return sa_folder_open(g_dir, f, err, sizeof err);
}

TEST(folder_writes_unique_files)
{
    sa_folder *f = NULL;
    int tmp;

    REQUIRE(new_folder(&f) == SA_OK);
    CHECK_STR(sa_folder_path(f), g_dir);
    /* /a/mask.png, /b/mask.png, /c/mask.png: three files, not one */
    saved_as(f, "https://r/a/mask.png?s=1", "A", "mask.png");
    saved_as(f, "https://r/b/mask.png?s=2", "B", "mask-2.png");
    saved_as(f, "https://r/c/mask.png?s=3", "C", "mask-3.png");
    CHECK_STR(content("mask.png"), "A");
    CHECK_STR(content("mask-2.png"), "B");
    /* "x y.png" and "x_y.png" do not collide */
    saved_as(f, "x y.png", "space", "x_y.png");
    saved_as(f, "x_y.png", "underscore", "x_y-2.png");
    CHECK_STR(content("x_y.png"), "space");
    /* an empty file */
    saved_as(f, "empty.png", "", "empty.png");
    CHECK_EQ_INT(count_entries(g_dir, &tmp), 6);
    CHECK_EQ_INT(tmp, 0);
    sa_folder_free(f);
    rm_tree(g_dir);
}

/* With the API key set, no name given shows it (whole, %-encoded, or a
 * run of its first bytes), in a name set or a folder: the file on disk has
 * the name a scrubbed result shows. */
TEST(names_never_show_the_secret)
{
    static const char key[] = "sk-ECHOED-0123456789";
    static const struct {
        const char *url, *name;
    } cases[] = {
        {"https://r/m/sk-ECHOED-0123456789.png?x=1", "REDACTED_.png"},
        {"https://r/e/%73%6b%2d%45CHOED-0123456789.png", "REDACTED_-2.png"},
        {"https://r/mask_sk-ECHOED.png", "mask__REDACTED_.png"},
        {"https://r/x/wrinkle_sk-E", "wrinkle__REDACTED"},
        {"https://r/x/pore.png", "pore.png"},
    };
    char out[SA_FILE_NAME_MAX];
    sa__names set;
    sa_folder *f = NULL;
    size_t i;
    int tmp;
    DIR *d;
    struct dirent *e;

    sa__names_init(&set, NULL);
    set.secret = key;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK_EQ_INT(sa__names_claim(&set, cases[i].url, out, sizeof out),
                     SA_OK);
        CHECK_STR(out, cases[i].name);
        CHECK(!sa__has_secret(out, key));
    }
    sa__names_free(&set);
    /* without the key: the names as cleaned */
    sa__names_init(&set, NULL);
    CHECK_EQ_INT(sa__names_claim(&set, cases[0].url, out, sizeof out), SA_OK);
    CHECK_STR(out, "sk-ECHOED-0123456789.png");
    sa__names_free(&set);

    REQUIRE(new_folder(&f) == SA_OK);
    sa__folder_set_secret(f, key);
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++)
        saved_as(f, cases[i].url, "M", cases[i].name);
    CHECK_EQ_INT(count_entries(g_dir, &tmp), 5);
    CHECK_EQ_INT(tmp, 0);
    d = opendir(g_dir);
    REQUIRE(d);
    while ((e = readdir(d)) != NULL)
        if (sa__has_secret(e->d_name, key))
            HARNESS_FAIL("%s/%s shows the key", g_dir, e->d_name);
    closedir(d);
    sa_folder_free(f);
    rm_tree(g_dir);
}

TEST(folder_never_replaces_or_follows)
{
    char written[SA_FILE_NAME_MAX], err[256], outside[64], path[256];
    sa_folder *f = NULL;
    struct stat st;
    int tmp;

    snprintf(outside, sizeof outside, "/tmp/sa_outside_XXXXXX");
    REQUIRE(new_dir() && mkdtemp(outside));
    put("user.png", "the user's own file");
    put("same.png", "S");
    snprintf(path, sizeof path, "%s/target.png", outside);
    {
        FILE *t = fopen(path, "wb");
        REQUIRE(t);
        fputs("outside", t);
        fclose(t);
    }
    snprintf(written, sizeof written, "%s/link.png", g_dir);
    REQUIRE(symlink(path, written) == 0);
    snprintf(path, sizeof path, "%s/nothing.png", outside);
    snprintf(written, sizeof written, "%s/dangling.png", g_dir);
    REQUIRE(symlink(path, written) == 0);
    snprintf(written, sizeof written, "%s/dir.png", g_dir);
    REQUIRE(mkdir(written, 0755) == 0);

    REQUIRE(sa_folder_open(g_dir, &f, err, sizeof err) == SA_OK);
    /* a file the library did not write stays as it is */
    saved_as(f, "user.png", "mask bytes", "user-2.png");
    CHECK_STR(content("user.png"), "the user's own file");
    /* the same bytes: the existing file is the saved file */
    saved_as(f, "same.png", "S", "same.png");
    /* never through a link, dangling or not, never onto a folder */
    saved_as(f, "link.png", "outside", "link-2.png");
    snprintf(path, sizeof path, "%s/target.png", outside);
    REQUIRE(lstat(path, &st) == 0);
    CHECK_EQ_INT(st.st_size, 7);
    saved_as(f, "dangling.png", "x", "dangling-2.png");
    snprintf(path, sizeof path, "%s/nothing.png", outside);
    CHECK(lstat(path, &st) != 0 && errno == ENOENT);
    saved_as(f, "dir.png", "x", "dir-2.png");
    /* a name that climbs out stays inside */
    saved_as(f, "../../escape.png", "in", "escape.png");
    snprintf(path, sizeof path, "%s/../escape.png", g_dir);
    CHECK(lstat(path, &st) != 0);
    CHECK_EQ_INT(count_entries(outside, &tmp), 1);
    CHECK_EQ_INT(count_entries(g_dir, &tmp), 10);
    CHECK_EQ_INT(tmp, 0);
    sa_folder_free(f);

    /* a second save of the same files gives the same names */
    REQUIRE(sa_folder_open(g_dir, &f, err, sizeof err) == SA_OK);
    saved_as(f, "user.png", "mask bytes", "user-2.png");
    saved_as(f, "escape.png", "in", "escape.png");
    CHECK_EQ_INT(count_entries(g_dir, &tmp), 10);
    sa_folder_free(f);
    rm_tree(g_dir);
    rm_tree(outside);
}

TEST(folder_stays_the_same_directory)
{
    char written[SA_FILE_NAME_MAX], moved[96], path[160];
    sa_folder *f = NULL;
    struct stat st;

    REQUIRE(new_folder(&f) == SA_OK);
    snprintf(moved, sizeof moved, "%s.moved", g_dir);
    REQUIRE(rename(g_dir, moved) == 0);
    REQUIRE(symlink("/tmp", g_dir) == 0);  /* its old path points away */
    CHECK_EQ_INT(write_str(f, "a.png", "A", written), 0);
    snprintf(path, sizeof path, "%s/a.png", moved);
    CHECK(stat(path, &st) == 0);
    CHECK(lstat("/tmp/a.png", &st) != 0 || st.st_size != 1);
    sa_folder_free(f);
    unlink(g_dir);
    rm_tree(moved);
}

TEST(folder_errors)
{
    char err[256], written[SA_FILE_NAME_MAX], path[128];
    sa_folder *f = (sa_folder *)&err;
    int tmp;

    CHECK_EQ_INT(sa_folder_open("/nonexistent/sa", &f, err, sizeof err),
                 SA_ERR_FILE);
    CHECK(f == NULL);
    CHECK(strstr(err, "/nonexistent/sa") != NULL);
    CHECK_EQ_INT(sa_folder_open(SA_FIXTURES "/small.jpg", &f, err,
                                sizeof err), SA_ERR_FILE);
    CHECK(strstr(err, "not a folder") != NULL);
    CHECK_EQ_INT(sa_folder_open(NULL, &f, err, sizeof err),
                 SA_ERR_INVALID_ARGUMENT);
    CHECK_EQ_INT(sa_folder_write(NULL, "a", "x", 1, NULL, 0, err, sizeof err),
                 SA_ERR_INVALID_ARGUMENT);
    sa_folder_free(NULL);

    /* a folder that cannot be written: an error, nothing left behind */
    REQUIRE(new_folder(&f) == SA_OK);
    CHECK_EQ_INT(sa_folder_write(f, "a.png", "x", 1, written, 4, err,
                                 sizeof err), SA_ERR_INVALID_ARGUMENT);
    if (geteuid() != 0) {
        REQUIRE(chmod(g_dir, 0555) == 0);
        CHECK_EQ_INT(sa_folder_write(f, "a.png", "x", 1, written,
                                     sizeof written, err, sizeof err),
                     SA_ERR_FILE);
        CHECK(strstr(err, "Permission denied") != NULL);
        chmod(g_dir, 0755);
    }
    CHECK_EQ_INT(count_entries(g_dir, &tmp), 0);
    snprintf(path, sizeof path, "%s", g_dir);
    sa_folder_free(f);
    rm_tree(path);
}

/* Every allocation of open, claim and write fails once in turn: out of
 * memory, never a leak or a file left behind. */
TEST(folder_failing_allocator)
{
    char err[256], written[SA_FILE_NAME_MAX], claimed[SA_FILE_NAME_MAX];
    long n;
    int ok = 0, tmp;

    REQUIRE(new_dir());
    for (n = 1; n < 100 && !ok; n++) {
        fs_mem m;
        sa_folder *f = NULL;
        sa__file_out o;
        int rc;

        fs_mem_init(&m, n, 0);
        rc = sa__folder_open(&m.mem, g_dir, &f, err, sizeof err);
        if (rc == SA_OK)
            rc = sa__folder_claim(f, "https://r/a/m.png", claimed,
                                  sizeof claimed);
        if (rc == SA_OK) {
            sa__file_out_init(&o, f);
            rc = sa__file_out_write(&o, "abc", 3, err, sizeof err);
            if (rc == SA_OK)
                rc = sa__file_out_commit(&o, claimed, written, sizeof written,
                                        err, sizeof err);
            if (rc != SA_OK) sa__file_out_discard(&o);
        }
        if (rc == SA_OK) {
            ok = 1;
            CHECK_STR(written, "m.png");
        } else {
            CHECK_EQ_INT(rc, SA_ERR_NOMEM);
        }
        sa__folder_free(f);
        CHECK_EQ_INT(m.live, 0);
        CHECK_EQ_INT(count_entries(g_dir, &tmp), ok ? 1 : 0);
        CHECK_EQ_INT(tmp, 0);
    }
    CHECK(ok);
    rm_tree(g_dir);
}

/* A stream written in parts, started again, then committed. */
TEST(file_out_rewind)
{
    char err[256], written[SA_FILE_NAME_MAX];
    sa_folder *f = NULL;
    sa__file_out o;
    int tmp;

    REQUIRE(new_folder(&f) == SA_OK);
    sa__file_out_init(&o, f);
    CHECK_EQ_INT(sa__file_out_write(&o, "partial ", 8, err, sizeof err), 0);
    CHECK_EQ_INT(count_entries(g_dir, &tmp), 1);
    CHECK_EQ_INT(tmp, 1);
    CHECK_EQ_INT(sa__file_out_rewind(&o, err, sizeof err), 0);
    CHECK_EQ_INT(sa__file_out_write(&o, "whole", 5, err, sizeof err), 0);
    CHECK_EQ_INT(sa__file_out_commit(&o, "w.png", written, sizeof written, err,
                                    sizeof err), 0);
    CHECK_STR(content("w.png"), "whole");
    sa__file_out_discard(&o);   /* after a commit: nothing */
    CHECK_STR(content("w.png"), "whole");
    /* discarded before the commit: nothing left */
    sa__file_out_init(&o, f);
    CHECK_EQ_INT(sa__file_out_write(&o, "x", 1, err, sizeof err), 0);
    sa__file_out_discard(&o);
    CHECK_EQ_INT(count_entries(g_dir, &tmp), 1);
    CHECK_EQ_INT(tmp, 0);
    sa_folder_free(f);
    rm_tree(g_dir);
}

int main(void)
{
    RUN(clean_names);
    RUN(long_names_keep_their_extension);
    RUN(names_are_unique_in_claim_order);
    RUN(folder_writes_unique_files);
    RUN(names_never_show_the_secret);
    RUN(folder_never_replaces_or_follows);
    RUN(folder_stays_the_same_directory);
    RUN(folder_errors);
    RUN(folder_failing_allocator);
    RUN(file_out_rewind);
    return harness_report();
}
