/*
 * xsi_strerror.c - the core built without _GNU_SOURCE (tests/c/CMakeLists.txt:
 * sa_objects_xsi), where strerror_r is the XSI one that returns an int:
 * errno texts still reach the messages.  Before sa__strerror the core
 * passed that int to a "%s" (a warning, then garbage or a crash).
 */
#include "harness.h"
#include "sa_internal.h"

#include <errno.h>
#include <string.h>

TEST(strerror_gives_the_text)
{
    char buf[128];
    const char *s = sa__strerror(ENOENT, buf, sizeof buf);
    CHECK(s != NULL);
    CHECK(strstr(s, "No such file") != NULL);
    s = sa__strerror(-12345, buf, sizeof buf);   /* unknown: still text */
    CHECK(s != NULL && s[0] != '\0');
    CHECK_STR(sa__strerror(ENOENT, buf, 0), "");
}

TEST(file_errors_name_the_cause)
{
    static const char *const actions[] = {"wrinkle"};
    sa_client_options o;
    sa_request req;
    sa_client *c = NULL;
    sa_job *job = NULL;
    char err[256];

    REQUIRE(sa_global_init() == SA_OK);
    sa_client_options_init(&o);
    o.api_key = "xsi-test-key";
    o.base_url = "http://127.0.0.1:9";
    REQUIRE(sa_client_new(&c, &o, err, sizeof err) == SA_OK);
    sa_request_init(&req);
    req.file_path = "/nonexistent/xsi/portrait.jpg";
    req.actions = actions;
    req.n_actions = 1;
    CHECK_EQ_INT(sa_client_submit(c, &req, &job), SA_ERR_FILE);
    CHECK(strstr(sa_client_errmsg(c), "No such file or directory") != NULL);
    sa_client_free(c);
    sa_global_cleanup();
}

int main(void)
{
    (void)harness_slurp;  /* a helper of harness.h this suite needs not */
    RUN(strerror_gives_the_text);
    RUN(file_errors_name_the_cause);
    return harness_report();
}
