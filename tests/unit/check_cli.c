/*
 * check_cli - zq-ctl's argument parsing (control/zq_cli.c): every option of every command,
 * ARG JSON-or-string, the error texts, help, and exit codes as data.
 */
#include "config.h"
#include "zq.h"
#include "zq_cli.h"
#include "zq_ctl.h"
#include "zq_shell.h"

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

START_TEST(test_curve_and_keygen)
{
    ck_assert_int_eq(s_parse("--curve-secret", "c.key_secret", "status", "--curve-server-key=b.key",
                             NULL),
                     ZQ_OK);
    ck_assert_str_eq(s_cli.curve_secret, "c.key_secret");
    ck_assert_str_eq(s_cli.curve_server_key, "b.key");
    ck_assert_int_eq(s_parse("call", "t.x", "--curve-secret", NULL), ZQ_EINVAL);
    ck_assert_int_eq(s_parse("call", "t.x", "--curve-secret=", NULL), ZQ_EINVAL);
    ck_assert_int_eq(s_parse("keygen", NULL), ZQ_OK);
    ck_assert_int_eq(s_cli.cmd, ZQ_CLI_KEYGEN);
    ck_assert_ptr_null(s_cli.key_dir);
    ck_assert_ptr_null(s_cli.key_name);
    ck_assert_int_eq(s_parse("keygen", "--dir", "/tmp/k", "-n", "w1", "--json", NULL), ZQ_OK);
    ck_assert_str_eq(s_cli.key_dir, "/tmp/k");
    ck_assert_str_eq(s_cli.key_name, "w1");
    ck_assert(s_cli.json);
    ck_assert_int_eq(s_parse("keygen", "extra", NULL), ZQ_EINVAL);
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
    ck_assert_ptr_nonnull(strstr(h, "  --help                   Show this message and exit.\n"));
    ck_assert_ptr_nonnull(strstr(h, "  --curve-secret FILE      CURVE: own secret key"));
    ck_assert_ptr_nonnull(strstr(h, "\nCommands:\n"));
    const char *cmds[] = {"call",   "events", "inspect", "keygen", "purge",
                          "queues", "result", "revoke",  "shell",  "status"};
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
 * inspect, status -d, shell: the command lines
 */
START_TEST(test_inspect_parse)
{
    for (const char *const *m = zq_cli_inspect_methods; *m; m++) {
        if (!strcmp(*m, "query_task"))
            continue;
        ck_assert_int_eq(s_parse("inspect", *m, NULL), ZQ_OK);
        ck_assert_int_eq(s_cli.cmd, ZQ_CLI_INSPECT);
        ck_assert_str_eq(s_cli.method, *m);
        ck_assert_ptr_null(s_cli.destination);
    }
    ck_assert_int_eq(s_parse("inspect", "stats", "-t", "0.5", "-d", "w1@h,w2@h", "-j", NULL),
                     ZQ_OK);
    ck_assert(s_cli.timeout == 0.5 && s_cli.json);
    ck_assert_str_eq(s_json(s_cli.destination), "[\"w1@h\",\"w2@h\"]");
    ck_assert_int_eq(s_parse("inspect", "query_task", "id-1", "id-2", NULL), ZQ_OK);
    ck_assert_str_eq(s_cli.method, "query_task");
    ck_assert_uint_eq(s_cli.npos, 3);
    ck_assert_str_eq(s_cli.pos[2], "id-2");
    ck_assert_int_eq(s_parse("status", "--destination=zq@a", NULL), ZQ_OK);
    ck_assert_str_eq(s_json(s_cli.destination), "[\"zq@a\"]");
    ck_assert_int_eq(s_parse("shell", NULL), ZQ_OK);
    ck_assert_int_eq(s_cli.cmd, ZQ_CLI_SHELL);
    ck_assert_int_eq(s_parse("--broker", "tcp://h:1", "shell", "--json", NULL), ZQ_OK);
    ck_assert(s_cli.json);

    EXPECT_ERR("missing argument METHOD", "inspect");
    EXPECT_ERR("no such inspect method 'bogus' (one of active, active_queues, conf, ping, "
               "query_task, registered, reserved, revoked, scheduled, stats)",
               "inspect", "bogus");
    EXPECT_ERR("query_task: missing argument TASK_ID", "inspect", "query_task");
    EXPECT_ERR("unexpected extra argument: 'x'", "inspect", "stats", "x");
    EXPECT_ERR("not a valid task id: 'a b'", "inspect", "query_task", "ok", "a b");
    EXPECT_ERR("--destination: empty node name in 'a,'", "status", "-d", "a,");
    EXPECT_ERR("--destination: not a valid node name: 'a b'", "inspect", "ping", "-d", "a b");
    EXPECT_ERR("unexpected extra argument: 'x'", "shell", "x");

    char *h = s_capture(zq_cli_help, zq_cli_find("inspect"));
    ck_assert_ptr_nonnull(strstr(h, "Usage: zq-ctl inspect [OPTIONS] {active|active_queues|conf|"
                                    "ping|query_task|registered|reserved|revoked|scheduled|stats}"));
    ck_assert_ptr_nonnull(strstr(h, "Remote Control Options:\n  -t, --timeout FLOAT"));
    ck_assert_ptr_nonnull(strstr(h, "  -d, --destination COMMA SEPARATED LIST\n"));
    h = s_capture(zq_cli_help, zq_cli_find("shell"));
    ck_assert_ptr_nonnull(strstr(h, "Usage: zq-ctl shell [OPTIONS]\n"));
    ck_assert_ptr_nonnull(strstr(h, "tasks.add(2, 2)"));
}
END_TEST

/* ---------------------------------------------------------------------------------------
 * Shell: literals, words, statements
 */
static char *s_lit(const char *text)
{
    static char buf[1024];
    char err[256] = "";
    cJSON *v = zq_shell_literal(text, err, sizeof err);
    if (!v) {
        snprintf(buf, sizeof buf, "ERR %s", err);
        return buf;
    }
    snprintf(buf, sizeof buf, "%s", s_json(v));
    cJSON_Delete(v);
    return buf;
}

START_TEST(test_shell_literals)
{
    ck_assert_str_eq(s_lit("4"), "4");
    ck_assert_str_eq(s_lit("-2.5"), "-2.5");
    ck_assert_str_eq(s_lit("+1e3"), "1000");
    ck_assert_str_eq(s_lit(".5"), "0.5");
    ck_assert_str_eq(s_lit("'it''s'"), "ERR invalid syntax at column 5: unexpected string");
    ck_assert_str_eq(s_lit("'a\\'b\\n\\t\\\\'"), "\"a'b\\n\\t\\\\\"");
    ck_assert_str_eq(s_lit("\"\\u00e9\\x41\""), "\"\xc3\xa9" "A\"");
    ck_assert_str_eq(s_lit("'\\q'"), "\"\\\\q\""); /* unknown escapes stay */
    ck_assert_str_eq(s_lit("True"), "true");
    ck_assert_str_eq(s_lit("false"), "false");
    ck_assert_str_eq(s_lit("None"), "null");
    ck_assert_str_eq(s_lit("[1, 'a', None, [2]]"), "[1,\"a\",null,[2]]");
    ck_assert_str_eq(s_lit("[1, 2,]"), "[1,2]");
    ck_assert_str_eq(s_lit("()"), "[]");
    ck_assert_str_eq(s_lit("(4)"), "4");
    ck_assert_str_eq(s_lit("(4,)"), "[4]");
    ck_assert_str_eq(s_lit("(4, 0)"), "[4,0]");
    ck_assert_str_eq(s_lit("{'k': (1, 2), \"j\": {}}"), "{\"k\":[1,2],\"j\":{}}");
    ck_assert_str_eq(s_lit("{\"a\": 1, \"a\": 2}"), "{\"a\":2}");
    ck_assert_str_eq(s_lit("{1: 2}"),
                     "ERR invalid syntax at column 2: dict keys must be strings (JSON objects)");
    ck_assert_str_eq(s_lit("[1 2]"),
                     "ERR invalid syntax at column 4: unexpected number, expected ',' or ']'");
    ck_assert_str_eq(s_lit("'open"), "ERR invalid syntax at column 1: unterminated string");
    ck_assert_str_eq(s_lit("x"), "ERR invalid syntax at column 1: 'x' is not a value (give "
                                 "numbers, 'strings', True, False, None, lists or dicts)");
    ck_assert_str_eq(s_lit("[1,"), "ERR invalid syntax at column 4: unexpected end of line, "
                                   "expected a value");
    ck_assert_str_eq(s_lit("1 2"), "ERR invalid syntax at column 3: unexpected number");
    ck_assert_str_eq(s_lit("@"), "ERR invalid syntax at column 1: unexpected character '@'");
    ck_assert_str_eq(s_lit("12abc"), "ERR invalid syntax at column 1: bad number");
    ck_assert_str_eq(s_lit("'\\x4'"), "ERR invalid syntax at column 5: bad \\x escape");
    ck_assert_str_eq(s_lit(""), "ERR invalid syntax at column 1: unexpected end of line, "
                                "expected a value");
    char deep[300];
    memset(deep, '[', 200);
    deep[200] = '\0';
    ck_assert_str_eq(s_lit(deep), "ERR too deeply nested (more than 64 levels)");
    ck_assert_ptr_null(zq_shell_literal(NULL, NULL, 0));
}
END_TEST

START_TEST(test_shell_split)
{
    char **argv = NULL;
    int argc = 0;
    char err[128];
    ck_assert_int_eq(zq_shell_split("  call tasks.fail 'a b' \"c\\\"d\" e\\ f  ", &argv, &argc,
                                    err, sizeof err),
                     ZQ_OK);
    ck_assert_int_eq(argc, 6);
    ck_assert_str_eq(argv[0], "zq-ctl");
    ck_assert_str_eq(argv[1], "call");
    ck_assert_str_eq(argv[3], "a b");
    ck_assert_str_eq(argv[4], "c\"d");
    ck_assert_str_eq(argv[5], "e f");
    ck_assert_ptr_null(argv[6]);
    zq_shell_free_argv(argv);
    ck_assert_int_eq(zq_shell_split("x ''", &argv, &argc, err, sizeof err), ZQ_OK);
    ck_assert_int_eq(argc, 3);
    ck_assert_str_eq(argv[2], "");
    zq_shell_free_argv(argv);
    ck_assert_int_eq(zq_shell_split("call 'open", &argv, &argc, err, sizeof err), ZQ_EINVAL);
    ck_assert_str_eq(err, "unterminated ' quote starting near column 6");
    ck_assert_ptr_null(argv);
    zq_shell_free_argv(NULL);
}
END_TEST

static zq_shell_stmt_t s_st;

static int s_sh(const char *line)
{
    zq_shell_stmt_clear(&s_st);
    return zq_shell_parse(line, &s_st, s_err, sizeof s_err);
}

static void s_sh_teardown(void)
{
    zq_shell_stmt_clear(&s_st);
}

START_TEST(test_shell_statements)
{
    ck_assert_int_eq(s_sh("   "), ZQ_OK);
    ck_assert_int_eq(s_st.kind, ZQ_SHELL_EMPTY);
    ck_assert_int_eq(s_sh("# note"), ZQ_OK);
    ck_assert_int_eq(s_st.kind, ZQ_SHELL_EMPTY);
    ck_assert_int_eq(s_sh("exit"), ZQ_OK);
    ck_assert_int_eq(s_st.kind, ZQ_SHELL_EXIT);
    ck_assert_int_eq(s_sh(" quit() "), ZQ_OK);
    ck_assert_int_eq(s_st.kind, ZQ_SHELL_EXIT);
    ck_assert_int_eq(s_sh("help"), ZQ_OK);
    ck_assert_int_eq(s_st.kind, ZQ_SHELL_HELP);

    /* sending */
    ck_assert_int_eq(s_sh("tasks.add(2, 2)"), ZQ_OK);
    ck_assert_int_eq(s_st.kind, ZQ_SHELL_SEND);
    ck_assert_str_eq(s_st.task, "tasks.add");
    ck_assert_str_eq(s_json(s_st.args), "[2,2]");
    ck_assert_str_eq(s_json(s_st.kwargs), "{}");
    ck_assert(!s_st.then_get && !s_st.assign[0]);
    ck_assert_int_eq(s_sh("r = tasks.add.delay(1, y=2)"), ZQ_OK);
    ck_assert_str_eq(s_st.assign, "r");
    ck_assert_str_eq(s_st.task, "tasks.add");
    ck_assert_str_eq(s_json(s_st.args), "[1]");
    ck_assert_str_eq(s_json(s_st.kwargs), "{\"y\":2}");
    ck_assert_int_eq(s_sh("tasks.add.apply_async([2, 2], countdown=3)"), ZQ_OK);
    ck_assert_str_eq(s_json(s_st.args), "[2,2]");
    ck_assert(s_st.countdown == 3);
    ck_assert_int_eq(s_sh("tasks.add.apply_async((1, 2), {'z': 1}, eta='2030-01-01T00:00:00Z', "
                          "expires=60, queue='hipri', task_id='my-id', priority=5, "
                          "ignore_result=True)"),
                     ZQ_OK);
    ck_assert_str_eq(s_json(s_st.args), "[1,2]");
    ck_assert_str_eq(s_json(s_st.kwargs), "{\"z\":1}");
    ck_assert_str_eq(s_st.eta, "2030-01-01T00:00:00Z");
    ck_assert(s_st.expires_in == 60 && !s_st.expires);
    ck_assert_str_eq(s_st.queue, "hipri");
    ck_assert_str_eq(s_st.task_id, "my-id");
    ck_assert(s_st.priority == 5 && s_st.ignore_result);
    ck_assert_int_eq(s_sh("tasks.add.apply_async(args=[1], kwargs={'y': 2}, "
                          "expires='2030-01-01')"),
                     ZQ_OK);
    ck_assert_str_eq(s_json(s_st.args), "[1]");
    ck_assert_str_eq(s_st.expires, "2030-01-01");
    ck_assert_int_eq(s_sh("tasks.add.apply_async()"), ZQ_OK);
    ck_assert_str_eq(s_json(s_st.args), "[]");
    ck_assert_int_eq(s_sh("tasks.add(2, 2).get(timeout=5)"), ZQ_OK);
    ck_assert(s_st.then_get && s_st.timeout == 5);
    ck_assert_int_eq(s_sh("tasks.add(1, 1).get()"), ZQ_OK);
    ck_assert(s_st.then_get && s_st.timeout < 0);
    ck_assert_int_eq(s_sh("my_mod.sub.task()"), ZQ_OK);
    ck_assert_str_eq(s_st.task, "my_mod.sub.task");

    /* results */
    ck_assert_int_eq(s_sh("r.get()"), ZQ_OK);
    ck_assert_int_eq(s_st.kind, ZQ_SHELL_GET);
    ck_assert_str_eq(s_st.target, "r");
    ck_assert(s_st.timeout < 0);
    ck_assert_int_eq(s_sh(".get(2.5)"), ZQ_OK);
    ck_assert_str_eq(s_st.target, "_");
    ck_assert(s_st.timeout == 2.5);
    ck_assert_int_eq(s_sh("_.get(timeout=None)"), ZQ_OK);
    ck_assert_str_eq(s_st.target, "_");
    ck_assert(s_st.timeout < 0);
    ck_assert_int_eq(s_sh("get 6f1c-77 5"), ZQ_OK);
    ck_assert_int_eq(s_st.kind, ZQ_SHELL_GET);
    ck_assert_str_eq(s_st.id, "6f1c-77");
    ck_assert(s_st.timeout == 5);
    ck_assert_int_eq(s_sh("get 6f1c-77"), ZQ_OK);
    ck_assert(s_st.timeout < 0);
    const char *attrs[][2] = {{"r.state", "state"}, {"r.status", "state"}, {"r.id", "id"},
                              {"r.task_id", "id"},  {"r.result", "result"},
                              {"r.ready()", "ready"}, {"r", "show"}, {".state", "state"}};
    for (size_t i = 0; i < sizeof attrs / sizeof *attrs; i++) {
        ck_assert_msg(s_sh(attrs[i][0]) == ZQ_OK, "%s: %s", attrs[i][0], s_err);
        ck_assert_int_eq(s_st.kind, ZQ_SHELL_ATTR);
        ck_assert_str_eq(s_st.attr, attrs[i][1]);
    }
    ck_assert_int_eq(s_sh("tasks.add"), ZQ_OK);
    ck_assert_int_eq(s_st.kind, ZQ_SHELL_ATTR);
    ck_assert_str_eq(s_st.attr, "task");
    ck_assert_str_eq(s_st.task, "tasks.add");

    /* zq-ctl commands */
    ck_assert_int_eq(s_sh("inspect stats -d 'w1@h'"), ZQ_OK);
    ck_assert_int_eq(s_st.kind, ZQ_SHELL_COMMAND);
    ck_assert_int_eq(s_st.argc, 5);
    ck_assert_str_eq(s_st.argv[0], "zq-ctl");
    ck_assert_str_eq(s_st.argv[4], "w1@h");
    ck_assert_int_eq(s_sh("status"), ZQ_OK);
    ck_assert_int_eq(s_st.kind, ZQ_SHELL_COMMAND);
    ck_assert_int_eq(s_sh("--json status"), ZQ_OK);
    ck_assert_int_eq(s_st.kind, ZQ_SHELL_COMMAND);
    ck_assert_int_eq(s_sh("help call"), ZQ_OK);
    ck_assert_int_eq(s_st.kind, ZQ_SHELL_COMMAND);
    /* a command name used as a variable is Python again */
    ck_assert_int_eq(s_sh("status = tasks.add(1, 1)"), ZQ_OK);
    ck_assert_int_eq(s_st.kind, ZQ_SHELL_SEND);
    ck_assert_str_eq(s_st.assign, "status");
}
END_TEST

#define EXPECT_SH(text, line)                                                                 \
    do {                                                                                      \
        ck_assert_int_eq(s_sh(line), ZQ_EINVAL);                                              \
        ck_assert_str_eq(s_err, text);                                                        \
    } while (0)

START_TEST(test_shell_errors)
{
    EXPECT_SH("invalid syntax at column 13: unexpected end of line, expected a value",
              "tasks.add(1,");
    EXPECT_SH("invalid syntax at column 11: unexpected end of line, expected a name",
              "tasks.add.");
    EXPECT_SH("unknown function 'frob' (task names are MODULE.NAME, e.g. tasks.add(2, 2); type "
              "help)",
              "frob(1)");
    EXPECT_SH("invalid syntax at column 16: positional argument follows keyword argument",
              "tasks.add(x=1, 2)");
    EXPECT_SH("tasks.add() got multiple values for keyword argument 'x'", "tasks.add(x=1, x=2)");
    EXPECT_SH("apply_async() got an unexpected keyword argument 'bogus' (args, kwargs, countdown, "
              "eta, expires, queue, task_id, priority, ignore_result)",
              "tasks.add.apply_async([1], bogus=1)");
    EXPECT_SH("apply_async() takes at most 2 positional arguments (args, kwargs)",
              "tasks.add.apply_async([1], {}, 3)");
    EXPECT_SH("apply_async() got multiple values for argument 'args'",
              "tasks.add.apply_async([1], args=[2])");
    EXPECT_SH("apply_async(): args must be a list or a tuple", "tasks.add.apply_async(5)");
    EXPECT_SH("apply_async(): kwargs must be a dict", "tasks.add.apply_async([], [])");
    EXPECT_SH("apply_async(): countdown must be a number of seconds >= 0",
              "tasks.add.apply_async(countdown=-1)");
    EXPECT_SH("apply_async(): eta must be an ISO 8601 date/time string",
              "tasks.add.apply_async(eta='soon')");
    EXPECT_SH("apply_async(): expires must be seconds > 0 or an ISO 8601 date/time string",
              "tasks.add.apply_async(expires=0)");
    EXPECT_SH("apply_async(): priority must be an integer 0-9",
              "tasks.add.apply_async(priority=10)");
    EXPECT_SH("apply_async(): queue must be a name (1-255 printable characters, no spaces)",
              "tasks.add.apply_async(queue='a b')");
    EXPECT_SH("apply_async(): ignore_result must be True or False",
              "tasks.add.apply_async(ignore_result=1)");
    EXPECT_SH("get(): timeout must be a number of seconds >= 0 or None", "r.get(-1)");
    EXPECT_SH("get() got an unexpected keyword argument 'propagate'", "r.get(propagate=False)");
    EXPECT_SH("get() takes at most 1 positional argument (timeout)", "r.get(1, 2)");
    EXPECT_SH("get() got multiple values for argument 'timeout'", "r.get(1, timeout=2)");
    EXPECT_SH("ready() takes no arguments", "r.ready(1)");
    EXPECT_SH("only a task call can be assigned (r = tasks.add(2, 2))", "x = r.state");
    EXPECT_SH("only a task call can be assigned (r = tasks.add(2, 2))", "x = y");
    EXPECT_SH("x = ....get() would keep the value, not the result: write x = tasks.add(...) then "
              "x.get()",
              "x = tasks.add(1, 1).get()");
    EXPECT_SH("usage: get TASK_ID [TIMEOUT]", "get a b c");
    EXPECT_SH("get: not a number of seconds >= 0: 'soon'", "get abc soon");
    EXPECT_SH("invalid syntax at column 17: unexpected 'x'", "tasks.add(1, 2) x");
    EXPECT_SH("invalid syntax at column 1: unexpected character '$'", "$x");
    EXPECT_SH("unterminated \" quote starting near column 6", "call \"tasks.add");
}
END_TEST

/* ---------------------------------------------------------------------------------------
 * Celery-shaped output
 */
static char *s_node(const char *node, const char *reply_json, const char *error)
{
    static char buf[8192];
    cJSON *reply = reply_json ? cJSON_Parse(reply_json) : NULL;
    FILE *fp = fmemopen(buf, sizeof buf, "w");
    ck_assert_ptr_nonnull(fp);
    zq_ctl_print_node(fp, node, reply, error);
    fclose(fp);
    cJSON_Delete(reply);
    return buf;
}

START_TEST(test_format_nodes)
{
    ck_assert_str_eq(s_node("zq@vm", "{\"ok\": \"pong\"}", NULL), "->  zq@vm: OK\n        pong\n");
    ck_assert_str_eq(s_node("zq@vm", "[]", NULL), "->  zq@vm: OK\n    - empty -\n");
    ck_assert_str_eq(s_node("zq@vm", "[\"tasks.add\", \"tasks.div\"]", NULL),
                     "->  zq@vm: OK\n    * tasks.add\n    * tasks.div\n");
    ck_assert_str_eq(s_node("zq@vm", "[{\"id\": \"x\", \"args\": [25], \"time_start\": null, "
                                     "\"acknowledged\": true, \"t\": 1795697322.366436}]",
                            NULL),
                     "->  zq@vm: OK\n    * {'id': 'x', 'args': [25], 'time_start': None, "
                     "'acknowledged': True, 't': 1795697322.366436}\n");
    ck_assert_str_eq(s_node("zq@vm", "{}", NULL), "->  zq@vm: OK\n    {}\n    \n");
    ck_assert_str_eq(s_node("zq@vm", "{\"z\": 1, \"a\": {\"b\": [1, 2], \"c\": {}}}", NULL),
                     "->  zq@vm: OK\n"
                     "    {\n"
                     "        \"a\": {\n"
                     "            \"b\": [\n"
                     "                1,\n"
                     "                2\n"
                     "            ],\n"
                     "            \"c\": {}\n"
                     "        },\n"
                     "        \"z\": 1\n"
                     "    }\n"
                     "    \n");
    ck_assert_str_eq(s_node("zq@gone", NULL, "no reply within 1s"),
                     "->  zq@gone: ERROR\n        no reply within 1s\n");
    ck_assert_str_eq(s_node("zq@x", NULL, NULL), "->  zq@x: ERROR\n        no reply\n");

    cJSON *v = cJSON_Parse("{\"b\": \"x\\\"y\", \"a\": [true, null, 2.5]}");
    char *txt = zq_ctl_pretty_json(v);
    ck_assert_str_eq(txt, "{\n    \"a\": [\n        true,\n        null,\n        2.5\n    ],\n"
                          "    \"b\": \"x\\\"y\"\n}");
    free(txt);
    cJSON_Delete(v);
}
END_TEST

START_TEST(test_broker_task_state)
{
    const struct {
        const char *rec, *want;
    } cases[] = {
        {"{\"known\": false, \"state\": \"PENDING\"}", "unknown"},
        {"{\"known\": true, \"state\": \"PENDING\", \"eta\": null}", "queued"},
        {"{\"known\": true, \"state\": \"PENDING\", \"eta\": \"2000-01-01T00:00:00Z\"}", "queued"},
        {"{\"known\": true, \"state\": \"PENDING\", \"eta\": \"2100-01-01T00:00:00Z\"}",
         "scheduled"},
        {"{\"known\": true, \"state\": \"RETRY\", \"eta\": \"2100-01-01T00:00:00Z\"}", "scheduled"},
        {"{\"known\": true, \"state\": \"RECEIVED\"}", "received"},
        {"{\"known\": true, \"state\": \"STARTED\"}", "started"},
        {"{\"known\": true, \"state\": \"SUCCESS\"}", "success"},
        {"{\"known\": true, \"state\": \"FAILURE\"}", "failure"},
        {"{\"known\": true, \"state\": \"REVOKED\"}", "revoked"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cJSON *r = cJSON_Parse(cases[i].rec);
        ck_assert_str_eq(zq_ctl_broker_task_state(r, 1.8e9), cases[i].want);
        cJSON_Delete(r);
    }
    ck_assert_str_eq(zq_ctl_broker_task_state(NULL, 0), "unknown");
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

    tc = tcase_create("Inspect");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_add_test(tc, test_inspect_parse);
    tcase_add_test(tc, test_curve_and_keygen);
    suite_add_tcase(s, tc);

    tc = tcase_create("Shell");
    tcase_add_checked_fixture(tc, s_setup, s_sh_teardown);
    tcase_add_test(tc, test_shell_literals);
    tcase_add_test(tc, test_shell_split);
    tcase_add_test(tc, test_shell_statements);
    tcase_add_test(tc, test_shell_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("Format");
    tcase_add_test(tc, test_format_nodes);
    tcase_add_test(tc, test_broker_task_state);
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
