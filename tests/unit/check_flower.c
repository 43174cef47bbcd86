/*
 * check_flower - the pure parts of the web monitor (control/zq_flower.h): option parsing,
 * the configuration check, base64 and basic-auth matching, command detection, and the
 * compiled-in assets. The HTTP API itself is tested against real processes by
 * tests/e2e/flower.sh.
 */
#include "config.h"
#include "zq.h"
#include "zq_flower.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

#define ARGV(...) ((char *const[]){"zq-ctl", __VA_ARGS__, NULL})
#define ARGC(...) ((int)(sizeof((const char *[]){"zq-ctl", __VA_ARGS__}) / sizeof(char *)))
#define PARSE(cfg, err, ...) \
    zq_flower_parse_args(&(cfg), ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), err, sizeof err)

/* ---- options ---- */

START_TEST(test_defaults)
{
    zq_flower_config_t c;
    char err[256];
    ck_assert_int_eq(PARSE(c, err, "flower"), ZQ_OK);
    ck_assert_int_eq(c.port, ZQ_FLOWER_DEFAULT_PORT);
    ck_assert_str_eq(c.address, "127.0.0.1");
    ck_assert_ptr_null(c.broker);
    ck_assert_str_eq(c.url_prefix, "");
    ck_assert_int_eq(c.nauth, 0);
    ck_assert_int_eq(c.read_only, 0);
    ck_assert(c.timeout > 0);
}
END_TEST

START_TEST(test_every_option)
{
    zq_flower_config_t c;
    char err[256];
    ck_assert_int_eq(PARSE(c, err, "--broker", "tcp://127.0.0.1:9", "flower", "--port=0",
                           "--address", "localhost", "--basic-auth", "a:b", "--basic_auth=c:d",
                           "--read-only", "--url-prefix", "//mon/itor//", "--timeout", "2.5",
                           "--json"),
                     ZQ_OK);
    ck_assert_str_eq(c.broker, "tcp://127.0.0.1:9");
    ck_assert_int_eq(c.port, 0);
    ck_assert_str_eq(c.address, "127.0.0.1");
    ck_assert_int_eq(c.nauth, 2);
    ck_assert_int_eq(c.read_only, 1);
    ck_assert_str_eq(c.url_prefix, "/mon/itor");
    ck_assert_double_eq(c.timeout, 2.5);
    ck_assert_int_eq(PARSE(c, err, "flower", "-b", "ipc:///tmp/x", "--help"), ZQ_OK);
    ck_assert_int_eq(c.help, 1);
    ck_assert_str_eq(c.broker, "ipc:///tmp/x");
    ck_assert_int_eq(PARSE(c, err, "flower", "--url-prefix", "/"), ZQ_OK);
    ck_assert_str_eq(c.url_prefix, "");
}
END_TEST

START_TEST(test_bad_options)
{
    zq_flower_config_t c;
    char err[256];
    static const struct {
        const char *a, *b, *want;
    } bad[] = {
        {"--port", "65536", "--port"},       {"--port", "-1", "--port"},
        {"--port", "x", "--port"},           {"--address", "example.org", "--address"},
        {"--basic-auth", "nocolon", "USER:PASSWORD"}, {"--basic-auth", ":p", "USER:PASSWORD"},
        {"--basic-auth", "u:", "USER:PASSWORD"}, {"--basic-auth", "a:b,c", "USER:PASSWORD"},
        {"--url-prefix", "/a b", "--url-prefix"}, {"--url-prefix", "/<x>", "--url-prefix"},
        {"--timeout", "0", "--timeout"},     {"--broker", "", "--broker"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *const argv[] = {"zq-ctl", "flower", (char *)bad[i].a, (char *)bad[i].b, NULL};
        ck_assert_int_eq(zq_flower_parse_args(&c, 4, argv, err, sizeof err), ZQ_EINVAL);
        ck_assert_msg(strstr(err, bad[i].want) != NULL, "%s %s: %s", bad[i].a, bad[i].b, err);
    }
    ck_assert_int_eq(PARSE(c, err, "flower", "--port"), ZQ_EINVAL);
    ck_assert_msg(strstr(err, "requires a value") != NULL, "%s", err);
    ck_assert_int_eq(PARSE(c, err, "flower", "--nope"), ZQ_EINVAL);
    ck_assert_msg(strstr(err, "no such option: --nope") != NULL, "%s", err);
    ck_assert_int_eq(PARSE(c, err, "flower", "extra"), ZQ_EINVAL);
    ck_assert_msg(strstr(err, "extra") != NULL, "%s", err);
    /* more --basic-auth users than the table holds */
    char *argv[2 + 2 * (ZQ_FLOWER_MAX_AUTH + 1) + 1];
    int n = 0;
    argv[n++] = "zq-ctl";
    argv[n++] = "flower";
    for (int i = 0; i <= ZQ_FLOWER_MAX_AUTH; i++) {
        argv[n++] = "--basic-auth";
        argv[n++] = "u:p";
    }
    argv[n] = NULL;
    ck_assert_int_eq(zq_flower_parse_args(&c, n, argv, err, sizeof err), ZQ_EINVAL);
    ck_assert_msg(strstr(err, "at most") != NULL, "%s", err);
}
END_TEST

START_TEST(test_curve_options)
{
    zq_flower_config_t c;
    char err[512];
    ck_assert_int_eq(PARSE(c, err, "--curve-secret", "a.key_secret", "flower",
                           "--curve-server-key=b.key"),
                     ZQ_OK);
    ck_assert_str_eq(c.curve_secret, "a.key_secret");
    ck_assert_str_eq(c.curve_server_key, "b.key");
    ck_assert_int_eq(PARSE(c, err, "flower", "--curve-secret"), ZQ_EINVAL);
    ck_assert_int_eq(PARSE(c, err, "flower", "--curve-secret="), ZQ_EINVAL);
    ck_assert_msg(strstr(err, "--curve-secret: empty value"), "%s", err);
}
END_TEST

START_TEST(test_public_address_needs_auth)
{
    zq_flower_config_t c;
    char err[512];
    ck_assert_int_eq(PARSE(c, err, "flower", "--address", "0.0.0.0"), ZQ_OK);
    ck_assert_int_eq(zq_flower_check_config(&c, err, sizeof err), ZQ_EINVAL);
    ck_assert_msg(strstr(err, "--basic-auth") != NULL, "%s", err);
    ck_assert_int_eq(PARSE(c, err, "flower", "--address", "0.0.0.0", "--basic-auth", "u:p"),
                     ZQ_OK);
    ck_assert_int_eq(zq_flower_check_config(&c, err, sizeof err), ZQ_OK);
    ck_assert_int_eq(PARSE(c, err, "flower", "--address", "127.0.0.2"), ZQ_OK);
    ck_assert_int_eq(zq_flower_check_config(&c, err, sizeof err), ZQ_OK);
}
END_TEST

START_TEST(test_wanted)
{
    ck_assert(zq_flower_wanted(ARGC("flower"), ARGV("flower")));
    ck_assert(zq_flower_wanted(ARGC("--broker", "flower", "flower"), ARGV("--broker", "flower", "flower")));
    ck_assert(zq_flower_wanted(ARGC("-b", "tcp://h:1", "--json", "flower", "--port", "1"),
                               ARGV("-b", "tcp://h:1", "--json", "flower", "--port", "1")));
    ck_assert(!zq_flower_wanted(ARGC("call", "flower"), ARGV("call", "flower")));
    ck_assert(!zq_flower_wanted(ARGC("--", "flower"), ARGV("--", "flower")));
    ck_assert(!zq_flower_wanted(1, (char *const[]){"zq-ctl", NULL}));
    /* the CURVE options take a value that is never the command */
    ck_assert(zq_flower_wanted(ARGC("--curve-secret", "flower", "flower"),
                               ARGV("--curve-secret", "flower", "flower")));
    ck_assert(!zq_flower_wanted(ARGC("--curve-server-key", "flower", "call"),
                                ARGV("--curve-server-key", "flower", "call")));
}
END_TEST

/* ---- authentication ---- */

START_TEST(test_base64)
{
    char out[64];
    ck_assert_int_eq(zq_flower_base64_decode("dXNlcjpwYXNz", out, sizeof out), 9);
    ck_assert_str_eq(out, "user:pass");
    ck_assert_int_eq(zq_flower_base64_decode("YQ==", out, sizeof out), 1);
    ck_assert_str_eq(out, "a");
    ck_assert_int_eq(zq_flower_base64_decode("YWI", out, sizeof out), 2); /* no padding */
    ck_assert_str_eq(out, "ab");
    ck_assert_int_eq(zq_flower_base64_decode("", out, sizeof out), 0);
    ck_assert_int_eq(zq_flower_base64_decode("a b", out, sizeof out), -1);
    ck_assert_int_eq(zq_flower_base64_decode("YQ==YQ", out, sizeof out), -1);
    ck_assert_int_eq(zq_flower_base64_decode("YQ===", out, sizeof out), -1);
    ck_assert_int_eq(zq_flower_base64_decode("dXNlcjpwYXNz", out, 4), -1); /* too small */
}
END_TEST

START_TEST(test_auth_ok)
{
    zq_flower_config_t c;
    char err[256];
    ck_assert_int_eq(PARSE(c, err, "flower", "--basic-auth", "user:pass", "--basic-auth",
                           "al:x,bo:y"),
                     ZQ_OK);
    ck_assert_int_eq(c.nauth, 3);
    ck_assert(zq_flower_auth_ok(&c, "Basic dXNlcjpwYXNz"));   /* user:pass */
    ck_assert(zq_flower_auth_ok(&c, "basic   dXNlcjpwYXNz")); /* scheme in any case */
    ck_assert(zq_flower_auth_ok(&c, "Basic YWw6eA=="));       /* al:x (Flower's list) */
    ck_assert(zq_flower_auth_ok(&c, "Basic Ym86eQ=="));       /* bo:y */
    ck_assert(!zq_flower_auth_ok(&c, "Basic dXNlcjpwYXNzeA==")); /* user:passx */
    ck_assert(!zq_flower_auth_ok(&c, "Basic dXNlcjpwYXM="));     /* user:pas */
    ck_assert(!zq_flower_auth_ok(&c, "Basic YWw6eCxibzp5"));     /* "al:x,bo:y" whole */
    ck_assert(!zq_flower_auth_ok(&c, "Bearer dXNlcjpwYXNz"));
    ck_assert(!zq_flower_auth_ok(&c, "Basic !!!"));
    ck_assert(!zq_flower_auth_ok(&c, NULL));
    zq_flower_config_t none;
    ck_assert_int_eq(PARSE(none, err, "flower"), ZQ_OK);
    ck_assert(!zq_flower_auth_ok(&none, "Basic dXNlcjpwYXNz"));
}
END_TEST

/* ---- assets ---- */

START_TEST(test_assets)
{
    static const char *const want[][2] = {{"index.html", "text/html"},
                                          {"app.js", "text/javascript"},
                                          {"app.css", "text/css"},
                                          {"favicon.svg", "image/svg+xml"}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const zq_flower_asset_t *a = zq_flower_assets;
        while (a->path && strcmp(a->path, want[i][0]))
            a++;
        ck_assert_msg(a->path != NULL, "%s is not compiled in", want[i][0]);
        ck_assert_msg(!strncmp(a->type, want[i][1], strlen(want[i][1])), "%s: %s", a->path,
                      a->type);
        ck_assert_uint_gt(a->len, 100);
        ck_assert_uint_eq(a->data[a->len], 0); /* the generator adds a NUL */
    }
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("flower");
    TCase *tc = tcase_create("options");
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_every_option);
    tcase_add_test(tc, test_bad_options);
    tcase_add_test(tc, test_public_address_needs_auth);
    tcase_add_test(tc, test_wanted);
    tcase_add_test(tc, test_curve_options);
    suite_add_tcase(s, tc);
    tc = tcase_create("auth");
    tcase_add_test(tc, test_base64);
    tcase_add_test(tc, test_auth_ok);
    suite_add_tcase(s, tc);
    tc = tcase_create("assets");
    tcase_add_test(tc, test_assets);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(s_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
