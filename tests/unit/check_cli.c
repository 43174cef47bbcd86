/*
 * check_cli - zq-ctl's argument parsing (control/zq_cli.c): every option of every command,
 * ARG JSON-or-string, the error texts, help, and exit codes as data.
 */
#include "config.h"
#include "zq.h"
#include "zq_cli.h"

#include <check.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXARGS 32

static zq_cli_t s_cli;
static char s_err[1024];

/* Parse a NULL-terminated word list (after the program name). */
static int s_parse(const char *first, ...)
{
    static char *argv[MAXARGS];
    int argc = 0;
    argv[argc++] = "zq-ctl";
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a && argc < MAXARGS - 1; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    zq_cli_clear(&s_cli);
    return zq_cli_parse(&s_cli, argc, argv, s_err, sizeof s_err);
}

static void s_setup(void)
{
    memset(&s_cli, 0, sizeof s_cli);
    s_err[0] = '\0';
}

static void s_teardown(void)
{
    zq_cli_clear(&s_cli);
}

static char *s_json(const cJSON *v)
{
    static char buf[512];
    char *t = cJSON_PrintUnformatted(v);
    snprintf(buf, sizeof buf, "%s", t ? t : "(null)");
    cJSON_free(t);
    return buf;
}

/* ---------------------------------------------------------------------------------------
 * Parse
 */
START_TEST(test_call_defaults)
{
    ck_assert_int_eq(s_parse("call", "tasks.add", NULL), ZQ_OK);
    ck_assert_int_eq(s_cli.cmd, ZQ_CLI_CALL);
    ck_assert_str_eq(zq_cli_command_name(s_cli.command), "call");
    ck_assert_str_eq(s_cli.task, "tasks.add");
    ck_assert_ptr_null(s_cli.args);
    ck_assert_ptr_null(s_cli.kwargs);
    ck_assert_ptr_null(s_cli.broker);
    ck_assert(s_cli.timeout < 0);
    ck_assert(!s_cli.json && !s_cli.wait && !s_cli.help);
    ck_assert(s_cli.countdown == 0 && s_cli.expires_in == 0);
    ck_assert_ptr_null(s_cli.eta);
    ck_assert_ptr_null(s_cli.expires);
    ck_assert_ptr_null(s_cli.queue);
    ck_assert_ptr_null(s_cli.task_id);
}
END_TEST

START_TEST(test_call_every_option)
{
    ck_assert_int_eq(s_parse("--broker", "tcp://127.0.0.1:9", "call", "tasks.add", "--args",
                             "[1, 2]", "--kwargs", "{\"z\": 1}", "--countdown", "3.5", "--eta",
                             "2030-01-01T00:00:00Z", "--expires", "60", "--queue", "hipri",
                             "--task-id", "abc-1", "--wait", "--timeout", "7", "--json", NULL),
                     ZQ_OK);
    ck_assert_str_eq(s_cli.broker, "tcp://127.0.0.1:9");
    ck_assert_str_eq(s_json(s_cli.args), "[1,2]");
    ck_assert_str_eq(s_json(s_cli.kwargs), "{\"z\":1}");
    ck_assert(s_cli.countdown == 3.5);
    ck_assert_str_eq(s_cli.eta, "2030-01-01T00:00:00Z");
    ck_assert(s_cli.expires_in == 60);
    ck_assert_ptr_null(s_cli.expires);
    ck_assert_str_eq(s_cli.queue, "hipri");
    ck_assert_str_eq(s_cli.task_id, "abc-1");
    ck_assert(s_cli.wait && s_cli.json);
    ck_assert(s_cli.timeout == 7);
}
END_TEST

START_TEST(test_short_and_inline_forms)
{
    ck_assert_int_eq(s_parse("-j", "call", "-a", "[3]", "-k={\"a\":true}", "--queue=q1",
                             "--expires=2030-02-03T04:05:06Z", "-b", "ipc:///tmp/x", "-w",
                             "tasks.x", NULL),
                     ZQ_OK);
    ck_assert(s_cli.json && s_cli.wait);
    ck_assert_str_eq(s_json(s_cli.args), "[3]");
    ck_assert_str_eq(s_json(s_cli.kwargs), "{\"a\":true}");
    ck_assert_str_eq(s_cli.queue, "q1");
    ck_assert_str_eq(s_cli.expires, "2030-02-03T04:05:06Z");
    ck_assert(s_cli.expires_in == 0);
    ck_assert_str_eq(s_cli.broker, "ipc:///tmp/x");
    ck_assert_str_eq(s_cli.task, "tasks.x");
    /* -kVALUE without '=' too */
    ck_assert_int_eq(s_parse("call", "t.x", "-k{}", NULL), ZQ_OK);
    ck_assert_str_eq(s_json(s_cli.kwargs), "{}");
}
END_TEST

START_TEST(test_globals_after_command)
{
    ck_assert_int_eq(s_parse("result", "abc", "--json", "--broker", "tcp://h:1", "--timeout",
                             "0.5", NULL),
                     ZQ_OK);
    ck_assert_int_eq(s_cli.cmd, ZQ_CLI_RESULT);
    ck_assert_str_eq(s_cli.id, "abc");
    ck_assert(s_cli.json);
    ck_assert_str_eq(s_cli.broker, "tcp://h:1");
    ck_assert(s_cli.timeout == 0.5);
    /* the last of a repeated option wins */
    ck_assert_int_eq(s_parse("--timeout", "1", "status", "--timeout", "2", NULL), ZQ_OK);
    ck_assert(s_cli.timeout == 2);
}
END_TEST

START_TEST(test_result_options)
{
    ck_assert_int_eq(s_parse("result", "-t", "tasks.add", "--traceback", "id-1", NULL), ZQ_OK);
    ck_assert_str_eq(s_cli.task_name, "tasks.add");
    ck_assert(s_cli.traceback);
    ck_assert_str_eq(s_cli.id, "id-1");
    /* status: -t is the timeout, as in Celery */
    ck_assert_int_eq(s_parse("status", "-t", "1.5", "-j", NULL), ZQ_OK);
    ck_assert_int_eq(s_cli.cmd, ZQ_CLI_STATUS);
    ck_assert(s_cli.timeout == 1.5 && s_cli.json);
}
END_TEST

START_TEST(test_revoke_purge_events_queues)
{
    ck_assert_int_eq(s_parse("revoke", "a", "b", "c", NULL), ZQ_OK);
    ck_assert_int_eq(s_cli.cmd, ZQ_CLI_REVOKE);
    ck_assert_uint_eq(s_cli.npos, 3);
    ck_assert_str_eq(s_cli.pos[2], "c");
    ck_assert(!s_cli.terminate);
    ck_assert_str_eq(s_cli.signal, "SIGTERM");
    ck_assert_int_eq(s_cli.signum, SIGTERM);
    ck_assert_int_eq(s_parse("revoke", "a", "--terminate", "--signal", "kill", NULL), ZQ_OK);
    ck_assert(s_cli.terminate);
    ck_assert_str_eq(s_cli.signal, "SIGKILL");
    ck_assert_int_eq(s_cli.signum, SIGKILL);

    ck_assert_int_eq(s_parse("purge", NULL), ZQ_OK);
    ck_assert_int_eq(s_cli.cmd, ZQ_CLI_PURGE);
    ck_assert(!s_cli.force);
    ck_assert_ptr_null(s_cli.queues);
    ck_assert_int_eq(s_parse("purge", "-f", "-Q", "celery,hipri", NULL), ZQ_OK);
    ck_assert(s_cli.force);
    ck_assert_str_eq(s_json(s_cli.queues), "[\"celery\",\"hipri\"]");

    ck_assert_int_eq(s_parse("events", "--limit", "3", NULL), ZQ_OK);
    ck_assert_int_eq(s_cli.cmd, ZQ_CLI_EVENTS);
    ck_assert_int_eq(s_cli.limit, 3);
    ck_assert_int_eq(s_parse("events", NULL), ZQ_OK);
    ck_assert_int_eq(s_cli.limit, 0);

    ck_assert_int_eq(s_parse("queues", "--json", NULL), ZQ_OK);
    ck_assert_int_eq(s_cli.cmd, ZQ_CLI_QUEUES);
    ck_assert(s_cli.json);
}
END_TEST

/* ---------------------------------------------------------------------------------------
 * ARG: JSON when it parses, else a string
 */
START_TEST(test_arg_json_or_string)
{
    ck_assert_int_eq(s_parse("call", "tasks.add", "2", "2", NULL), ZQ_OK);
    ck_assert_str_eq(s_json(s_cli.args), "[2,2]");
    ck_assert_int_eq(s_parse("call", "tasks.fail", "boom", NULL), ZQ_OK);
    ck_assert_str_eq(s_json(s_cli.args), "[\"boom\"]");
    ck_assert_int_eq(s_parse("call", "t.x", "true", "null", "[1,[2]]", "{\"a\":1}", "\"q\"",
                             "2.5", "hello world", "{bad", NULL),
                     ZQ_OK);
    ck_assert_str_eq(s_json(s_cli.args),
                     "[true,null,[1,[2]],{\"a\":1},\"q\",2.5,\"hello world\",\"{bad\"]");
    /* a negative number is an ARG, not an option */
    ck_assert_int_eq(s_parse("call", "tasks.add", "-1", "-2.5", NULL), ZQ_OK);
    ck_assert_str_eq(s_json(s_cli.args), "[-1,-2.5]");
    /* after "--" everything is an ARG */
    ck_assert_int_eq(s_parse("call", "t.x", "--", "--wait", "-x", NULL), ZQ_OK);
    ck_assert(!s_cli.wait);
    ck_assert_str_eq(s_json(s_cli.args), "[\"--wait\",\"-x\"]");

    cJSON *v = zq_cli_arg_value("4");
    ck_assert(cJSON_IsNumber(v) && v->valuedouble == 4);
    cJSON_Delete(v);
    v = zq_cli_arg_value("4 trailing");
    ck_assert(cJSON_IsString(v));
    ck_assert_str_eq(v->valuestring, "4 trailing");
    cJSON_Delete(v);
    v = zq_cli_arg_value("");
    ck_assert(cJSON_IsString(v));
    cJSON_Delete(v);
}
END_TEST

/* ---------------------------------------------------------------------------------------
 * Errors: exact texts
 */
#define EXPECT_ERR(text, ...)                                                                   \
    do {                                                                                        \
        ck_assert_int_eq(s_parse(__VA_ARGS__, NULL), ZQ_EINVAL);                                \
        ck_assert_str_eq(s_err, text);                                                          \
    } while (0)

START_TEST(test_errors)
{
    EXPECT_ERR("--args: not a JSON array: {\"a\":1}", "call", "t.x", "--args", "{\"a\":1}");
    EXPECT_ERR("--args: not a JSON array: [1,", "call", "t.x", "--args", "[1,");
    EXPECT_ERR("--kwargs: not a JSON object: [1]", "call", "t.x", "--kwargs", "[1]");
    EXPECT_ERR("no such command 'bogus'", "bogus");
    EXPECT_ERR("missing command", "--json");
    EXPECT_ERR("no such option: --bogus", "call", "t.x", "--bogus");
    EXPECT_ERR("no such option: -z", "call", "t.x", "-z");
    EXPECT_ERR("missing argument TASK_ID", "result");
    EXPECT_ERR("missing argument NAME", "call");
    EXPECT_ERR("missing argument TASK_ID", "revoke", "--terminate");
    EXPECT_ERR("unexpected extra argument: 'b'", "result", "a", "b");
    EXPECT_ERR("unexpected extra argument: 'x'", "status", "x");
    EXPECT_ERR("--countdown: not a number of seconds >= 0: 'soon'", "call", "t.x", "--countdown",
               "soon");
    EXPECT_ERR("--countdown: not a number of seconds >= 0: '-1'", "call", "t.x", "--countdown=-1");
    EXPECT_ERR("--timeout: not a number of seconds >= 0: 'nan'", "call", "t.x", "--timeout", "nan");
    EXPECT_ERR("--eta: not an ISO 8601 date/time: '2030-13-01'", "call", "t.x", "--eta",
               "2030-13-01");
    EXPECT_ERR("--expires: neither seconds nor an ISO 8601 date/time: 'later'", "call", "t.x",
               "--expires", "later");
    EXPECT_ERR("--expires: seconds must be > 0: '0'", "call", "t.x", "--expires", "0");
    EXPECT_ERR("--queue: not a valid name: 'a b' (1-255 printable characters, no spaces)", "call",
               "t.x", "--queue", "a b");
    EXPECT_ERR("not a valid task name: 'a b' (1-255 printable characters, no spaces)", "call",
               "a b");
    EXPECT_ERR("give the arguments either as ARG... or with --args, not both", "call", "t.x", "1",
               "--args", "[2]");
    EXPECT_ERR("--args requires a value (JSON ARRAY)", "call", "t.x", "--args");
    EXPECT_ERR("--wait takes no value (got 'yes')", "call", "t.x", "--wait=yes");
    EXPECT_ERR("--limit: not a positive integer: '0'", "events", "--limit", "0");
    EXPECT_ERR("--limit: not a positive integer: '2x'", "events", "--limit", "2x");
    EXPECT_ERR("--signal: unknown signal 'SIGFOO' (e.g. SIGTERM, SIGKILL, SIGINT)", "revoke", "a",
               "--signal", "SIGFOO");
    EXPECT_ERR("--queues: empty queue name in 'a,,b'", "purge", "-Q", "a,,b");
    EXPECT_ERR("--queues: not a valid queue name: 'a b'", "purge", "-Q", "x,a b");
    EXPECT_ERR("not a valid task id: 'a b'", "result", "a b");
    EXPECT_ERR("not a valid task id: ''", "revoke", "x", "");
    EXPECT_ERR("--broker: empty value", "--broker", "", "status");
    EXPECT_ERR("no such command 'nope'", "help", "nope");
    /* the command is known even when its arguments are wrong (for the usage line) */
    ck_assert_int_eq(s_parse("call", "t.x", "--args", "x", NULL), ZQ_EINVAL);
    ck_assert_int_eq(zq_cli_command_id(s_cli.command), ZQ_CLI_CALL);
}
END_TEST

START_TEST(test_values)
{
    double d = -1;
    ck_assert_int_eq(zq_cli_parse_seconds("0", &d), ZQ_OK);
    ck_assert(d == 0);
    ck_assert_int_eq(zq_cli_parse_seconds("1e3", &d), ZQ_OK);
    ck_assert(d == 1000);
    ck_assert_int_eq(zq_cli_parse_seconds("inf", &d), ZQ_EINVAL);
    ck_assert_int_eq(zq_cli_parse_seconds("", &d), ZQ_EINVAL);
    ck_assert_int_eq(zq_cli_parse_seconds(NULL, &d), ZQ_EINVAL);
    const char *name = NULL;
    int num = 0;
    ck_assert_int_eq(zq_cli_parse_signal("15", &name, &num), ZQ_OK);
    ck_assert_str_eq(name, "SIGTERM");
    ck_assert_int_eq(zq_cli_parse_signal("SIGINT", &name, &num), ZQ_OK);
    ck_assert_int_eq(num, SIGINT);
    ck_assert_int_eq(zq_cli_parse_signal("usr1", &name, &num), ZQ_OK);
    ck_assert_str_eq(name, "SIGUSR1");
    ck_assert_int_eq(zq_cli_parse_signal("99", &name, &num), ZQ_EINVAL);
    ck_assert_int_eq(zq_cli_parse_signal("", &name, &num), ZQ_EINVAL);

    char err[256];
    ck_assert_int_eq(zq_cli_check_url("tcp://127.0.0.1:7460", err, sizeof err), ZQ_OK);
    ck_assert_int_eq(zq_cli_check_url("ipc:///tmp/zq.sock", err, sizeof err), ZQ_OK);
    ck_assert_int_eq(zq_cli_check_url("tcp://host", err, sizeof err), ZQ_EINVAL);
    ck_assert_str_eq(err, "bad broker URL 'tcp://host': tcp:// needs HOST:PORT");
    ck_assert_int_eq(zq_cli_check_url("tcp://:1", err, sizeof err), ZQ_EINVAL);
    ck_assert_int_eq(zq_cli_check_url("tcp://h:70000", err, sizeof err), ZQ_EINVAL);
    ck_assert_int_eq(zq_cli_check_url("ipc://", err, sizeof err), ZQ_EINVAL);
    ck_assert_int_eq(zq_cli_check_url("redis://h:1", err, sizeof err), ZQ_EINVAL);
    ck_assert_str_eq(err, "bad broker URL 'redis://h:1': not a tcp://HOST:PORT or ipc://PATH URL");
    ck_assert_int_eq(zq_cli_check_url("", err, sizeof err), ZQ_EINVAL);
}
END_TEST

/* ---------------------------------------------------------------------------------------
 * Help
 */
static char *s_capture(void (*fn)(FILE *, const zq_cli_command_t *), const zq_cli_command_t *c)
{
    static char buf[16384];
    FILE *fp = fmemopen(buf, sizeof buf, "w");
    ck_assert_ptr_nonnull(fp);
    fn(fp, c);
    fclose(fp);
    return buf;
}

START_TEST(test_help_flag_anywhere)
{
    /* --help wins, even over errors, and names the command it was given with */
    ck_assert_int_eq(s_parse("--help", NULL), ZQ_OK);
    ck_assert(s_cli.help);
    ck_assert_ptr_null(s_cli.command);
    ck_assert_int_eq(s_parse("call", "--help", NULL), ZQ_OK);
    ck_assert(s_cli.help);
    ck_assert_int_eq(s_cli.cmd, ZQ_CLI_CALL);
    ck_assert_int_eq(s_parse("call", "t.x", "--args", "bad", "-h", NULL), ZQ_OK);
    ck_assert(s_cli.help);
    ck_assert_str_eq(s_err, "");
    ck_assert_int_eq(s_parse("result", "--help", NULL), ZQ_OK);
    ck_assert_int_eq(s_cli.cmd, ZQ_CLI_RESULT);
    /* but not after "--" */
    ck_assert_int_eq(s_parse("call", "t.x", "--", "--help", NULL), ZQ_OK);
    ck_assert(!s_cli.help);
    ck_assert_str_eq(s_json(s_cli.args), "[\"--help\"]");
    ck_assert_int_eq(s_parse("--version", NULL), ZQ_OK);
    ck_assert(s_cli.version);
    ck_assert_int_eq(s_parse("help", "purge", NULL), ZQ_OK);
    ck_assert_int_eq(s_cli.cmd, ZQ_CLI_HELP);
    ck_assert_str_eq(zq_cli_command_name(s_cli.help_for), "purge");
}
END_TEST

START_TEST(test_help_text)
{
    char *h = s_capture(zq_cli_help, NULL);
    ck_assert_ptr_nonnull(strstr(h, "Usage: zq-ctl [OPTIONS] COMMAND [ARGS]...\n"));
    ck_assert_ptr_nonnull(strstr(h, "\nOptions:\n"));
    ck_assert_ptr_nonnull(strstr(h, "  -b, --broker URL"));
    ck_assert_ptr_nonnull(strstr(h, "  --help            Show this message and exit.\n"));
    ck_assert_ptr_nonnull(strstr(h, "\nCommands:\n"));
    const char *cmds[] = {"call", "events", "purge", "queues", "result", "revoke", "status"};
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
        char line[64];
        snprintf(line, sizeof line, "\n  %s ", cmds[i]);
        ck_assert_msg(strstr(h, line), "command %s listed", cmds[i]);
        ck_assert_ptr_nonnull(zq_cli_find(cmds[i]));
    }
    ck_assert_ptr_null(zq_cli_find("nope"));
    ck_assert_ptr_null(zq_cli_find(NULL));

    h = s_capture(zq_cli_help, zq_cli_find("call"));
    ck_assert_ptr_nonnull(strstr(h, "Usage: zq-ctl call [OPTIONS] NAME [ARG]...\n\n  Call a task"));
    ck_assert_ptr_nonnull(strstr(h, "Calling Options:\n  -a, --args JSON ARRAY "));
    ck_assert_ptr_nonnull(strstr(h, "  --expires ISO-8601 OR FLOAT  expiry time.\n"));
    ck_assert_ptr_nonnull(strstr(h, "Routing Options:\n"));
    ck_assert_ptr_nonnull(strstr(h, "Options:\n  --help  Show this message and exit.\n"));

    h = s_capture(zq_cli_help, zq_cli_find("result"));
    ck_assert_ptr_nonnull(strstr(h, "Usage: zq-ctl result [OPTIONS] TASK_ID\n"));
    ck_assert_ptr_nonnull(strstr(h, "Result Options:\n  -t, --task TEXT "));
    ck_assert_ptr_nonnull(strstr(h, "  --traceback "));

    h = s_capture(zq_cli_help, zq_cli_find("purge"));
    ck_assert_ptr_nonnull(strstr(h, "Usage: zq-ctl purge [OPTIONS]\n"));
    ck_assert_ptr_nonnull(strstr(h, "  -f, --force  "));
    ck_assert_ptr_nonnull(strstr(h, "There's no undo operation for this command."));

    h = s_capture(zq_cli_usage, zq_cli_find("status"));
    ck_assert_str_eq(h, "Usage: zq-ctl status [OPTIONS]\n");

    static char buf[1024];
    FILE *fp = fmemopen(buf, sizeof buf, "w");
    zq_cli_print_error(fp, zq_cli_find("call"), "--args: not a JSON array: x");
    fclose(fp);
    ck_assert_str_eq(buf, "Usage: zq-ctl call [OPTIONS] NAME [ARG]...\n"
                          "Try 'zq-ctl call --help' for help.\n\n"
                          "Error: --args: not a JSON array: x\n");
}
END_TEST

/* ---------------------------------------------------------------------------------------
 * Exit codes as data
 */
START_TEST(test_exit_codes)
{
    ck_assert_int_eq(ZQ_EXIT_OK, 0);
    ck_assert_int_eq(ZQ_EXIT_FAIL, 1);
    ck_assert_int_eq(ZQ_EXIT_USAGE, 2);
    ck_assert_int_eq(zq_cli_exit_code(ZQ_OK), 0);
    ck_assert_int_eq(zq_cli_exit_code(ZQ_EINVAL), 2);
    const int fail[] = {ZQ_ETIMEOUT, ZQ_EREMOTE, ZQ_EIO, ZQ_ENOTFOUND, ZQ_ESTORE, ZQ_EPROTO};
    for (size_t i = 0; i < sizeof fail / sizeof *fail; i++)
        ck_assert_int_eq(zq_cli_exit_code(fail[i]), 1);
    ck_assert_int_eq(zq_cli_state_exit_code(ZQ_STATE_SUCCESS), 0);
    ck_assert_int_eq(zq_cli_state_exit_code(ZQ_STATE_FAILURE), 1);
    ck_assert_int_eq(zq_cli_state_exit_code(ZQ_STATE_REVOKED), 1);
    ck_assert_int_eq(zq_cli_state_exit_code(ZQ_STATE_PENDING), 1);
    ck_assert_int_eq(zq_cli_state_exit_code(NULL), 1);
}
END_TEST

static Suite *zq_cli_suite(void)
{
    Suite *s = suite_create("zq_cli");
    TCase *tc = tcase_create("Parse");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_add_test(tc, test_call_defaults);
    tcase_add_test(tc, test_call_every_option);
    tcase_add_test(tc, test_short_and_inline_forms);
    tcase_add_test(tc, test_globals_after_command);
    tcase_add_test(tc, test_result_options);
    tcase_add_test(tc, test_revoke_purge_events_queues);
    suite_add_tcase(s, tc);

    tc = tcase_create("Args");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_add_test(tc, test_arg_json_or_string);
    suite_add_tcase(s, tc);

    tc = tcase_create("Errors");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_values);
    suite_add_tcase(s, tc);

    tc = tcase_create("Help");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_add_test(tc, test_help_flag_anywhere);
    tcase_add_test(tc, test_help_text);
    suite_add_tcase(s, tc);

    tc = tcase_create("ExitCodes");
    tcase_add_test(tc, test_exit_codes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(zq_cli_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
