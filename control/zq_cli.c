/*
 * zq_cli - zq-ctl's command table and argument parser (see zq_cli.h). Options are data:
 * each command lists option groups whose rows say the option's names, the kind of value,
 * the field it fills and its help line, so that parsing, validation messages and the
 * Celery-shaped help text all come from the same table.
 */
#include "config.h"
#include "zq_cli.h"
#include "zq.h"
#include "zq_time.h"
#include "zq_util.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define S_HELP_COL_MAX 30 /* click's widest option column before help moves to its own line */

typedef enum {
    O_FLAG,        /* int = 1 */
    O_STR,         /* const char * */
    O_TOKEN,       /* const char *, a valid name (zq_valid_token) */
    O_SECONDS,     /* double >= 0 */
    O_JSON_ARRAY,  /* cJSON * (owned) */
    O_JSON_OBJECT, /* cJSON * (owned) */
    O_ETA,         /* const char *, ISO 8601 */
    O_EXPIRES,     /* seconds -> expires_in, or ISO 8601 -> expires */
    O_QUEUES,      /* comma separated queue names -> cJSON array (owned) */
    O_NODES,       /* comma separated node names -> cJSON array (owned) */
    O_SIGNAL,      /* signal name -> signal + signum */
    O_COUNT        /* long > 0 */
} s_okind_t;

typedef struct {
    const char *lng; /* long name without "--" */
    char shrt;       /* short letter, or 0 */
    s_okind_t kind;
    size_t off;      /* field of zq_cli_t */
    const char *metavar;
    const char *help;
} s_opt_t;

typedef struct {
    const char *title;
    const s_opt_t *opts; /* ends with lng == NULL */
} s_group_t;

struct zq_cli_command {
    const char *name;
    zq_cli_cmd_t id;
    const char *args_usage;  /* after "[OPTIONS] " */
    const char *summary;     /* one line for the command list */
    const char *description; /* lines after the usage, "" separated paragraphs */
    const s_group_t *groups; /* ends with title == NULL */
    size_t min_pos, max_pos; /* positional arguments; SIZE_MAX = any number */
    const char *pos_name;    /* named in "missing argument" */
    int (*finish)(zq_cli_t *cli, char *err, size_t errlen);
};

#define F(field) offsetof(zq_cli_t, field)

static const s_opt_t s_global_opts[] = {
    {"broker", 'b', O_STR, F(broker), "URL", "Broker URL (default: $ZQ_BROKER, else " ZQ_DEFAULT_BROKER ")."},
    {"json", 'j', O_FLAG, F(json), NULL, "Use json as output format."},
    {"timeout", 0, O_SECONDS, F(timeout), "FLOAT", "Seconds to wait for the broker (default 10)."},
    {"curve-secret", 0, O_STR, F(curve_secret), "FILE",
     "CURVE: own secret key (default $ZQ_CURVE_SECRET)."},
    {"curve-server-key", 0, O_STR, F(curve_server_key), "FILE",
     "CURVE: broker's public key ($ZQ_CURVE_SERVER_KEY)."},
    {"version", 0, O_FLAG, F(version), NULL, "Show the version and exit."},
    {NULL, 0, 0, 0, NULL, NULL}};

static const s_opt_t s_call_opts[] = {
    {"args", 'a', O_JSON_ARRAY, F(args), "JSON ARRAY", "Positional arguments (instead of ARGs)."},
    {"kwargs", 'k', O_JSON_OBJECT, F(kwargs), "JSON OBJECT", "Keyword arguments."},
    {"eta", 0, O_ETA, F(eta), "ISO-8601", "scheduled time."},
    {"countdown", 0, O_SECONDS, F(countdown), "FLOAT", "eta in seconds from now."},
    {"expires", 0, O_EXPIRES, F(expires), "ISO-8601 OR FLOAT", "expiry time."},
    {"task-id", 0, O_TOKEN, F(task_id), "ID", "task id to use instead of a new uuid7."},
    {NULL, 0, 0, 0, NULL, NULL}};
static const s_opt_t s_call_routing[] = {
    {"queue", 'Q', O_TOKEN, F(queue), "TEXT", "custom queue name (default: " ZQ_DEFAULT_QUEUE ")."},
    {NULL, 0, 0, 0, NULL, NULL}};
static const s_opt_t s_call_result[] = {
    {"wait", 'w', O_FLAG, F(wait), NULL, "Wait for the task and print its result."},
    {"timeout", 0, O_SECONDS, F(timeout), "FLOAT", "Seconds to wait (default 10; with --wait: forever)."},
    {NULL, 0, 0, 0, NULL, NULL}};
static const s_group_t s_call_groups[] = {{"Calling Options", s_call_opts},
                                          {"Routing Options", s_call_routing},
                                          {"Result Options", s_call_result},
                                          {NULL, NULL}};

static const s_opt_t s_result_opts[] = {
    {"task", 't', O_TOKEN, F(task_name), "TEXT", "Name of task (checked against the record)."},
    {"traceback", 0, O_FLAG, F(traceback), NULL, "Show traceback instead."},
    {"timeout", 0, O_SECONDS, F(timeout), "FLOAT", "Seconds to wait for a pending task (default 10)."},
    {NULL, 0, 0, 0, NULL, NULL}};
static const s_group_t s_result_groups[] = {{"Result Options", s_result_opts}, {NULL, NULL}};

static const s_opt_t s_remote_opts[] = {
    {"timeout", 't', O_SECONDS, F(timeout), "FLOAT",
     "Timeout in seconds waiting for reply (default 1.0)."},
    {"destination", 'd', O_NODES, F(destination), "COMMA SEPARATED LIST",
     "Comma separated list of destination node names."},
    {"json", 'j', O_FLAG, F(json), NULL, "Use json as output format."},
    {NULL, 0, 0, 0, NULL, NULL}};
static const s_group_t s_status_groups[] = {{"Remote Control Options", s_remote_opts},
                                            {NULL, NULL}};

static const s_opt_t s_revoke_opts[] = {
    {"terminate", 0, O_FLAG, F(terminate), NULL, "Also kill the task if it is running."},
    {"signal", 's', O_SIGNAL, F(signal), "SIGNAL", "Signal for --terminate (default SIGTERM)."},
    {NULL, 0, 0, 0, NULL, NULL}};
static const s_group_t s_revoke_groups[] = {{"Revoke Options", s_revoke_opts}, {NULL, NULL}};

static const s_opt_t s_purge_opts[] = {
    {"force", 'f', O_FLAG, F(force), NULL, "Don't prompt for verification."},
    {"queues", 'Q', O_QUEUES, F(queues), "COMMA SEPARATED LIST",
     "Comma separated list of queue names to purge."},
    {NULL, 0, 0, 0, NULL, NULL}};
static const s_group_t s_purge_groups[] = {{"Purging Options", s_purge_opts}, {NULL, NULL}};

static const s_opt_t s_events_opts[] = {
    {"limit", 'n', O_COUNT, F(limit), "N", "Stop after N events (default: until Ctrl-C)."},
    {"json", 'j', O_FLAG, F(json), NULL, "One JSON object per line."},
    {NULL, 0, 0, 0, NULL, NULL}};
static const s_group_t s_events_groups[] = {{"Events Options", s_events_opts}, {NULL, NULL}};

static const s_opt_t s_keygen_opts[] = {
    {"dir", 'd', O_STR, F(key_dir), "DIR", "Where to write the files (default: .; made 0700)."},
    {"name", 'n', O_STR, F(key_name), "NAME",
     "Files NAME.key, NAME.key_secret (default " ZQ_CLI_KEY_NAME ")."},
    {NULL, 0, 0, 0, NULL, NULL}};
static const s_group_t s_keygen_groups[] = {{"Key Options", s_keygen_opts}, {NULL, NULL}};

static const s_group_t s_no_groups[] = {{NULL, NULL}};

static int s_finish_call(zq_cli_t *cli, char *err, size_t errlen);
static int s_finish_result(zq_cli_t *cli, char *err, size_t errlen);
static int s_finish_revoke(zq_cli_t *cli, char *err, size_t errlen);
static int s_finish_help(zq_cli_t *cli, char *err, size_t errlen);
static int s_finish_inspect(zq_cli_t *cli, char *err, size_t errlen);

const char *const zq_cli_inspect_methods[] = {"active",     "active_queues", "conf",
                                              "ping",       "query_task",    "registered",
                                              "reserved",   "revoked",       "scheduled",
                                              "stats",      NULL};

/* The command table, in the order of the global help (alphabetical, as click lists). */
static const zq_cli_command_t s_commands[] = {
    {"call", ZQ_CLI_CALL, "NAME [ARG]...", "Call a task by name.",
     "Call a task by name.\n\n"
     "Each ARG is JSON when it parses, else a string: `call tasks.add 2 2` sends\n"
     "[2, 2], `call tasks.fail boom` sends [\"boom\"]. Prints the task id once the\n"
     "broker has stored the task; with --wait, the result as JSON (exit 1 when the\n"
     "task fails, is revoked or does not finish within --timeout).",
     s_call_groups, 1, SIZE_MAX, "NAME", s_finish_call},
    {"events", ZQ_CLI_EVENTS, "", "Show the live event stream.",
     "Show the live event stream.\n\n"
     "One line per event (`task-succeeded uuid=... hostname=... result=4`), or one JSON\n"
     "object per line with --json, until interrupted (Ctrl-C) or --limit events.",
     s_events_groups, 0, 0, NULL, NULL},
    {"flower", ZQ_CLI_FLOWER, "", "Start the web monitor (dashboard, REST API, metrics).",
     "Start the web monitor: dashboard, tasks, workers and queues, updated live;\n"
     "Flower's REST API under /api; Prometheus metrics at /metrics (docs/monitor.md).\n\n"
     "Options (see `zq-ctl flower --help`): --address ADDR (default 127.0.0.1),\n"
     "--port N (default 5555), --basic-auth USER:PASS (repeatable), --read-only,\n"
     "--url-prefix /PATH, --timeout S.",
     s_no_groups, 0, 0, NULL, NULL},
    {"help", ZQ_CLI_HELP, "[COMMAND]", "Show help for zq-ctl or one command.",
     "Show help for zq-ctl or one command.", s_no_groups, 0, 1, NULL, s_finish_help},
    {"inspect", ZQ_CLI_INSPECT,
     "{active|active_queues|conf|ping|query_task|registered|reserved|revoked|scheduled|stats} "
     "[TASK_ID]...",
     "Inspect the worker at runtime.",
     "Inspect the worker at runtime.\n\n"
     "Asks every live worker (or those named with -d) through its control socket, and\n"
     "returns as soon as all have answered, or after --timeout seconds (default 1.0);\n"
     "a worker that did not answer is shown as an ERROR.\n\n"
     "  active         tasks running now\n"
     "  active_queues  queues each worker consumes\n"
     "  conf           each worker's effective settings\n"
     "  ping           a pong from each worker\n"
     "  query_task ID  where tasks are (active, reserved, scheduled); ids that no worker\n"
     "                 holds are answered by the broker (queued, scheduled, or done)\n"
     "  registered     the task names each worker can run\n"
     "  reserved       tasks prefetched, waiting for a free slot (not ETA ones)\n"
     "  revoked        the revoked task ids each worker knows\n"
     "  scheduled      ETA/countdown tasks held by workers, then those the broker holds\n"
     "  stats          task counts, pool, prefetch, broker, rusage, uptime",
     s_status_groups, 1, SIZE_MAX, "METHOD", s_finish_inspect},
    {"keygen", ZQ_CLI_KEYGEN, "", "Make a CurveZMQ key pair for a broker, worker or client.",
     "Make a CurveZMQ key pair for a broker, worker or client.\n\n"
     "Writes DIR/NAME.key (the public key: give it to the peers) and\n"
     "DIR/NAME.key_secret (both keys, mode 0600: keep it where its owner runs), and\n"
     "prints the public key. Existing files are never overwritten. The format and how\n"
     "to use the keys: docs/management.md, \"Security\".",
     s_keygen_groups, 0, 0, NULL, NULL},
    {"purge", ZQ_CLI_PURGE, "", "Erase all messages from all known task queues.",
     "Erase all messages from all known task queues.\n\n"
     "Warning:\n\n"
     "    There's no undo operation for this command.",
     s_purge_groups, 0, 0, NULL, NULL},
    {"queues", ZQ_CLI_QUEUES, "", "List the broker's queues and their depths.",
     "List the broker's queues: ready, scheduled (ETA) and reserved (held by\n"
     "workers) tasks, and the number of consuming workers.",
     s_no_groups, 0, 0, NULL, NULL},
    {"result", ZQ_CLI_RESULT, "TASK_ID", "Print the return value for a given task id.",
     "Print the return value for a given task id.\n\n"
     "For a task that failed or was revoked, prints its state, exception and traceback\n"
     "on stderr and exits 1. Waits up to --timeout (default 10) for a task that is\n"
     "still pending. With --json prints the task record as it is now (exit 0 only for\n"
     "SUCCESS); with --json and --timeout, waits first.",
     s_result_groups, 1, 1, "TASK_ID", s_finish_result},
    {"revoke", ZQ_CLI_REVOKE, "TASK_ID...", "Revoke tasks by id.",
     "Revoke tasks by id: a task that has not started never starts (it ends REVOKED);\n"
     "with --terminate a running one is killed too.",
     s_revoke_groups, 1, SIZE_MAX, "TASK_ID", s_finish_revoke},
    {"shell", ZQ_CLI_SHELL, "", "Start shell session with the registered tasks known.",
     "Start shell session with the registered tasks known.\n\n"
     "  tasks.add(2, 2)                  send a task (also tasks.add.delay(2, 2)) and\n"
     "                                   print its <AsyncResult: ID>\n"
     "  r = tasks.add.apply_async([2, 2], countdown=3)\n"
     "                                   options: kwargs, countdown, eta, expires,\n"
     "                                   queue, task_id, priority, ignore_result\n"
     "  r.get(timeout=10)  .get()        wait for a result (.get() is the last one)\n"
     "  get ID [TIMEOUT]                 wait for the result of any task id\n"
     "  r.state  r.id  r.result  r.ready()\n"
     "  status, inspect stats, purge -f  any zq-ctl command\n"
     "  help, exit (or Ctrl-D)\n\n"
     "On a terminal: line editing, history (~/.zq_history) and tab completion of\n"
     "task names and commands. Otherwise reads one statement per line from stdin and\n"
     "exits with the status of the last statement that failed (0 when none did).",
     s_no_groups, 0, 0, NULL, NULL},
    {"status", ZQ_CLI_STATUS, "", "Show list of workers that are online.",
     "Show list of workers that are online.\n\n"
     "Pings every worker the broker knows to be alive, through its control socket;\n"
     "exit 1 when none answers.",
     s_status_groups, 0, 0, NULL, NULL},
    {NULL, ZQ_CLI_NONE, NULL, NULL, NULL, NULL, 0, 0, NULL, NULL}};

const zq_cli_command_t *zq_cli_find(const char *name)
{
    for (const zq_cli_command_t *c = s_commands; name && c->name; c++)
        if (!strcmp(c->name, name))
            return c;
    return NULL;
}

const char *zq_cli_command_name(const zq_cli_command_t *cmd)
{
    return cmd ? cmd->name : NULL;
}

zq_cli_cmd_t zq_cli_command_id(const zq_cli_command_t *cmd)
{
    return cmd ? cmd->id : ZQ_CLI_NONE;
}

/* ---------------------------------------------------------------------------------------
 * Values
 */
cJSON *zq_cli_arg_value(const char *text)
{
    cJSON *v = cJSON_ParseWithOpts(text, NULL, 1);
    return v ? v : cJSON_CreateString(text);
}

int zq_cli_parse_seconds(const char *s, double *out)
{
    if (!s || !*s)
        return ZQ_EINVAL;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end || errno || isnan(v) || isinf(v) || v < 0)
        return ZQ_EINVAL;
    *out = v;
    return ZQ_OK;
}

int zq_cli_parse_signal(const char *s, const char **name, int *signum)
{
    static const struct {
        const char *name;
        int num;
    } sigs[] = {{"SIGTERM", SIGTERM}, {"SIGKILL", SIGKILL}, {"SIGINT", SIGINT},
                {"SIGHUP", SIGHUP},   {"SIGQUIT", SIGQUIT}, {"SIGUSR1", SIGUSR1},
                {"SIGUSR2", SIGUSR2}, {"SIGABRT", SIGABRT}, {NULL, 0}};
    if (!s || !*s)
        return ZQ_EINVAL;
    char *end;
    long n = strtol(s, &end, 10);
    int numeric = *end == '\0';
    for (size_t i = 0; sigs[i].name; i++) {
        if ((numeric && n == sigs[i].num) || !strcasecmp(s, sigs[i].name) ||
            !strcasecmp(s, sigs[i].name + 3)) {
            *name = sigs[i].name;
            *signum = sigs[i].num;
            return ZQ_OK;
        }
    }
    return ZQ_EINVAL;
}

int zq_cli_check_url(const char *url, char *err, size_t errlen)
{
    const char *why = NULL;
    if (!url || !*url) {
        why = "empty URL";
    } else if (!strncmp(url, "ipc://", 6)) {
        if (!url[6])
            why = "ipc:// needs a path";
    } else if (!strncmp(url, "tcp://", 6)) {
        const char *colon = strrchr(url + 6, ':');
        char *end = NULL;
        long port = colon ? strtol(colon + 1, &end, 10) : 0;
        if (!colon || colon == url + 6 || !colon[1] || *end || port <= 0 || port > 65535)
            why = "tcp:// needs HOST:PORT";
    } else {
        why = "not a tcp://HOST:PORT or ipc://PATH URL";
    }
    if (!why && strlen(url) >= 500)
        why = "URL too long";
    if (why) {
        snprintf(err, errlen, "bad broker URL '%.200s': %s", url ? url : "", why);
        return ZQ_EINVAL;
    }
    return ZQ_OK;
}

zq_exit_t zq_cli_exit_code(int rc)
{
    if (rc == ZQ_OK)
        return ZQ_EXIT_OK;
    return rc == ZQ_EINVAL ? ZQ_EXIT_USAGE : ZQ_EXIT_FAIL;
}

zq_exit_t zq_cli_state_exit_code(const char *state)
{
    return state && !strcmp(state, ZQ_STATE_SUCCESS) ? ZQ_EXIT_OK : ZQ_EXIT_FAIL;
}

/* A whole-string number (so that `call tasks.add -1 2` reads -1 as an ARG). */
static int s_is_number(const char *s)
{
    char *end;
    strtod(s, &end);
    return end != s && *end == '\0';
}

/* ---------------------------------------------------------------------------------------
 * Parsing
 */
static const s_opt_t *s_lookup(const s_opt_t *opts, const char *lng, size_t lnglen, char shrt)
{
    for (; opts && opts->lng; opts++) {
        if (lng && strlen(opts->lng) == lnglen && !strncmp(opts->lng, lng, lnglen))
            return opts;
        if (!lng && shrt && opts->shrt == shrt)
            return opts;
    }
    return NULL;
}

/* Command options first (so `result -t` is the task name, `status -t` the timeout). */
static const s_opt_t *s_find_opt(const zq_cli_command_t *cmd, const char *lng, size_t lnglen,
                                 char shrt)
{
    const s_opt_t *o = NULL;
    for (const s_group_t *g = cmd ? cmd->groups : NULL; !o && g && g->title; g++)
        o = s_lookup(g->opts, lng, lnglen, shrt);
    return o ? o : s_lookup(s_global_opts, lng, lnglen, shrt);
}

static void s_optname(const s_opt_t *o, char *buf, size_t len)
{
    snprintf(buf, len, "--%s", o->lng);
}

static int s_apply(zq_cli_t *cli, const s_opt_t *o, const char *v, char *err, size_t errlen)
{
    char name[48];
    s_optname(o, name, sizeof name);
    char *field = (char *)cli + o->off;
    double d;
    switch (o->kind) {
    case O_FLAG:
        *(int *)field = 1;
        return ZQ_OK;
    case O_STR:
        if (!*v) {
            snprintf(err, errlen, "%s: empty value", name);
            return ZQ_EINVAL;
        }
        *(const char **)field = v;
        return ZQ_OK;
    case O_TOKEN:
        if (!zq_valid_token(v)) {
            snprintf(err, errlen, "%s: not a valid name: '%s' (1-255 printable characters, no spaces)",
                     name, v);
            return ZQ_EINVAL;
        }
        *(const char **)field = v;
        return ZQ_OK;
    case O_SECONDS:
        if (zq_cli_parse_seconds(v, &d) != ZQ_OK) {
            snprintf(err, errlen, "%s: not a number of seconds >= 0: '%s'", name, v);
            return ZQ_EINVAL;
        }
        *(double *)field = d;
        return ZQ_OK;
    case O_JSON_ARRAY:
    case O_JSON_OBJECT: {
        cJSON *j = cJSON_ParseWithOpts(v, NULL, 1);
        int ok = o->kind == O_JSON_ARRAY ? cJSON_IsArray(j) : cJSON_IsObject(j);
        if (!ok) {
            cJSON_Delete(j);
            snprintf(err, errlen, "%s: not a JSON %s: %s", name,
                     o->kind == O_JSON_ARRAY ? "array" : "object", v);
            return ZQ_EINVAL;
        }
        cJSON_Delete(*(cJSON **)field);
        *(cJSON **)field = j;
        return ZQ_OK;
    }
    case O_ETA:
        if (zq_time_parse(v, &d) != ZQ_OK) {
            snprintf(err, errlen, "%s: not an ISO 8601 date/time: '%s'", name, v);
            return ZQ_EINVAL;
        }
        *(const char **)field = v;
        return ZQ_OK;
    case O_EXPIRES:
        if (zq_cli_parse_seconds(v, &d) == ZQ_OK) {
            if (d <= 0) {
                snprintf(err, errlen, "%s: seconds must be > 0: '%s'", name, v);
                return ZQ_EINVAL;
            }
            cli->expires_in = d;
            cli->expires = NULL;
        } else if (zq_time_parse(v, &d) == ZQ_OK) {
            cli->expires = v;
            cli->expires_in = 0;
        } else {
            snprintf(err, errlen, "%s: neither seconds nor an ISO 8601 date/time: '%s'", name, v);
            return ZQ_EINVAL;
        }
        return ZQ_OK;
    case O_QUEUES:
    case O_NODES: {
        const char *what = o->kind == O_QUEUES ? "queue" : "node";
        cJSON *arr = cJSON_CreateArray();
        const char *p = v;
        while (arr) {
            const char *comma = strchr(p, ',');
            size_t n = comma ? (size_t)(comma - p) : strlen(p);
            char q[256];
            if (n == 0 || n >= sizeof q) {
                snprintf(err, errlen, "%s: %s %s name in '%s'", name, n ? "too long a" : "empty",
                         what, v);
                cJSON_Delete(arr);
                return ZQ_EINVAL;
            }
            memcpy(q, p, n);
            q[n] = '\0';
            if (!zq_valid_token(q)) {
                snprintf(err, errlen, "%s: not a valid %s name: '%s'", name, what, q);
                cJSON_Delete(arr);
                return ZQ_EINVAL;
            }
            cJSON *s = cJSON_CreateString(q);
            if (!s || !cJSON_AddItemToArray(arr, s)) {
                cJSON_Delete(s);
                break;
            }
            if (!comma)
                break;
            p = comma + 1;
        }
        if (!arr || cJSON_GetArraySize(arr) == 0) {
            cJSON_Delete(arr);
            snprintf(err, errlen, "out of memory");
            return ZQ_ENOMEM;
        }
        cJSON_Delete(*(cJSON **)field);
        *(cJSON **)field = arr;
        return ZQ_OK;
    }
    case O_SIGNAL:
        if (zq_cli_parse_signal(v, &cli->signal, &cli->signum) != ZQ_OK) {
            snprintf(err, errlen, "%s: unknown signal '%s' (e.g. SIGTERM, SIGKILL, SIGINT)", name, v);
            return ZQ_EINVAL;
        }
        return ZQ_OK;
    case O_COUNT: {
        char *end;
        errno = 0;
        long n = strtol(v, &end, 10);
        if (!*v || *end || errno || n <= 0) {
            snprintf(err, errlen, "%s: not a positive integer: '%s'", name, v);
            return ZQ_EINVAL;
        }
        *(long *)field = n;
        return ZQ_OK;
    }
    }
    return ZQ_EINVAL;
}

/* One option word at argv[*i]; may consume the next word as its value. */
static int s_option(zq_cli_t *cli, int argc, char *const argv[], int *i, char *err, size_t errlen)
{
    const char *a = argv[*i];
    const char *inline_val = NULL;
    const s_opt_t *o;
    if (a[1] == '-') {
        const char *lng = a + 2;
        const char *eq = strchr(lng, '=');
        size_t n = eq ? (size_t)(eq - lng) : strlen(lng);
        if (eq)
            inline_val = eq + 1;
        if (n == 4 && !strncmp(lng, "help", 4)) {
            cli->help = 1;
            return ZQ_OK;
        }
        o = s_find_opt(cli->command, lng, n, 0);
    } else {
        if (a[1] == 'h' && !a[2]) {
            cli->help = 1;
            return ZQ_OK;
        }
        o = s_find_opt(cli->command, NULL, 0, a[1]);
        if (o && a[2])
            inline_val = a[2] == '=' ? a + 3 : a + 2;
    }
    if (!o) {
        snprintf(err, errlen, "no such option: %s", a);
        return ZQ_EINVAL;
    }
    char name[48];
    s_optname(o, name, sizeof name);
    if (o->kind == O_FLAG) {
        if (inline_val) {
            snprintf(err, errlen, "%s takes no value (got '%s')", a[1] == '-' ? name : a,
                     inline_val);
            return ZQ_EINVAL;
        }
        return s_apply(cli, o, NULL, err, errlen);
    }
    if (!inline_val) {
        if (*i + 1 >= argc) {
            snprintf(err, errlen, "%s requires a value (%s)", name, o->metavar);
            return ZQ_EINVAL;
        }
        inline_val = argv[++*i];
    }
    return s_apply(cli, o, inline_val, err, errlen);
}

static int s_finish_call(zq_cli_t *cli, char *err, size_t errlen)
{
    cli->task = cli->pos[0];
    if (!zq_valid_token(cli->task)) {
        snprintf(err, errlen, "not a valid task name: '%s' (1-255 printable characters, no spaces)",
                 cli->task);
        return ZQ_EINVAL;
    }
    if (cli->npos > 1 && cli->args) {
        snprintf(err, errlen, "give the arguments either as ARG... or with --args, not both");
        return ZQ_EINVAL;
    }
    if (cli->npos > 1) {
        cli->args = cJSON_CreateArray();
        for (size_t i = 1; cli->args && i < cli->npos; i++) {
            cJSON *v = zq_cli_arg_value(cli->pos[i]);
            if (!v || !cJSON_AddItemToArray(cli->args, v)) {
                cJSON_Delete(v);
                snprintf(err, errlen, "out of memory");
                return ZQ_ENOMEM;
            }
        }
        if (!cli->args) {
            snprintf(err, errlen, "out of memory");
            return ZQ_ENOMEM;
        }
    }
    return ZQ_OK;
}

static int s_finish_result(zq_cli_t *cli, char *err, size_t errlen)
{
    cli->id = cli->pos[0];
    if (!zq_valid_token(cli->id)) {
        snprintf(err, errlen, "not a valid task id: '%s'", cli->id);
        return ZQ_EINVAL;
    }
    return ZQ_OK;
}

static int s_finish_revoke(zq_cli_t *cli, char *err, size_t errlen)
{
    for (size_t i = 0; i < cli->npos; i++) {
        if (!zq_valid_token(cli->pos[i])) {
            snprintf(err, errlen, "not a valid task id: '%s'", cli->pos[i]);
            return ZQ_EINVAL;
        }
    }
    return ZQ_OK;
}

static int s_finish_inspect(zq_cli_t *cli, char *err, size_t errlen)
{
    cli->method = NULL;
    for (const char *const *m = zq_cli_inspect_methods; *m; m++)
        if (!strcmp(*m, cli->pos[0]))
            cli->method = *m;
    if (!cli->method) {
        size_t n = (size_t)snprintf(err, errlen, "no such inspect method '%s' (one of",
                                    cli->pos[0]);
        for (const char *const *m = zq_cli_inspect_methods; *m && n < errlen; m++)
            n += (size_t)snprintf(err + n, errlen - n, "%s %s", m == zq_cli_inspect_methods ? "" : ",",
                                  *m);
        if (n < errlen)
            snprintf(err + n, errlen - n, ")");
        return ZQ_EINVAL;
    }
    if (strcmp(cli->method, "query_task") != 0) {
        if (cli->npos > 1) {
            snprintf(err, errlen, "unexpected extra argument: '%s'", cli->pos[1]);
            return ZQ_EINVAL;
        }
        return ZQ_OK;
    }
    if (cli->npos < 2) {
        snprintf(err, errlen, "query_task: missing argument TASK_ID");
        return ZQ_EINVAL;
    }
    for (size_t i = 1; i < cli->npos; i++) {
        if (!zq_valid_token(cli->pos[i])) {
            snprintf(err, errlen, "not a valid task id: '%s'", cli->pos[i]);
            return ZQ_EINVAL;
        }
    }
    return ZQ_OK;
}

static int s_finish_help(zq_cli_t *cli, char *err, size_t errlen)
{
    if (cli->npos == 1) {
        cli->help_for = zq_cli_find(cli->pos[0]);
        if (!cli->help_for) {
            snprintf(err, errlen, "no such command '%s'", cli->pos[0]);
            return ZQ_EINVAL;
        }
    }
    return ZQ_OK;
}

static int s_parse(zq_cli_t *cli, int argc, char *const argv[], char *err, size_t errlen)
{
    int dashdash = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!dashdash && !strcmp(a, "--")) {
            dashdash = 1;
            continue;
        }
        if (!dashdash && a[0] == '-' && a[1] && !s_is_number(a)) {
            int rc = s_option(cli, argc, argv, &i, err, errlen);
            if (rc != ZQ_OK)
                return rc;
            continue;
        }
        if (!cli->command) {
            cli->command = zq_cli_find(a);
            if (!cli->command) {
                snprintf(err, errlen, "no such command '%s'", a);
                return ZQ_EINVAL;
            }
            cli->cmd = cli->command->id;
            continue;
        }
        const char **pos = realloc(cli->pos, (cli->npos + 1) * sizeof *pos);
        if (!pos) {
            snprintf(err, errlen, "out of memory");
            return ZQ_ENOMEM;
        }
        cli->pos = pos;
        cli->pos[cli->npos++] = a;
    }
    if (cli->help || cli->version)
        return ZQ_OK;
    const zq_cli_command_t *c = cli->command;
    if (!c) {
        snprintf(err, errlen, "missing command");
        return ZQ_EINVAL;
    }
    if (cli->npos < c->min_pos) {
        snprintf(err, errlen, "missing argument %s", c->pos_name);
        return ZQ_EINVAL;
    }
    if (cli->npos > c->max_pos) {
        snprintf(err, errlen, "unexpected extra argument: '%s'", cli->pos[c->max_pos]);
        return ZQ_EINVAL;
    }
    return c->finish ? c->finish(cli, err, errlen) : ZQ_OK;
}

static int s_has_help(int argc, char *const argv[])
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--"))
            return 0;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return 1;
    }
    return 0;
}

int zq_cli_parse(zq_cli_t *cli, int argc, char *const argv[], char *err, size_t errlen)
{
    memset(cli, 0, sizeof *cli);
    cli->timeout = -1;
    cli->signal = "SIGTERM";
    cli->signum = SIGTERM;
    if (err && errlen)
        err[0] = '\0';
    char dummy[8];
    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof dummy;
    }
    int rc = s_parse(cli, argc, argv, err, errlen);
    if (rc != ZQ_OK && s_has_help(argc, argv)) {
        /* --help wins over everything else, as with click */
        cli->help = 1;
        err[0] = '\0';
        return ZQ_OK;
    }
    return rc == ZQ_ENOMEM ? ZQ_EINVAL : rc;
}

void zq_cli_clear(zq_cli_t *cli)
{
    if (!cli)
        return;
    cJSON_Delete(cli->args);
    cJSON_Delete(cli->kwargs);
    cJSON_Delete(cli->queues);
    cJSON_Delete(cli->destination);
    free(cli->pos);
    memset(cli, 0, sizeof *cli);
    cli->timeout = -1;
}

/* ---------------------------------------------------------------------------------------
 * Help
 */
void zq_cli_usage(FILE *fp, const zq_cli_command_t *cmd)
{
    if (!cmd)
        fprintf(fp, "Usage: zq-ctl [OPTIONS] COMMAND [ARGS]...\n");
    else
        fprintf(fp, "Usage: zq-ctl %s [OPTIONS]%s%s\n", cmd->name, *cmd->args_usage ? " " : "",
                cmd->args_usage);
}

static void s_opt_label(const s_opt_t *o, char *buf, size_t len)
{
    if (o->shrt)
        snprintf(buf, len, "-%c, --%s%s%s", o->shrt, o->lng, o->metavar ? " " : "",
                 o->metavar ? o->metavar : "");
    else
        snprintf(buf, len, "--%s%s%s", o->lng, o->metavar ? " " : "", o->metavar ? o->metavar : "");
}

static void s_group_help(FILE *fp, const char *title, const s_opt_t *opts, int with_help)
{
    char label[128];
    size_t width = with_help ? 6 : 0;
    for (const s_opt_t *o = opts; o && o->lng; o++) {
        s_opt_label(o, label, sizeof label);
        if (strlen(label) > width && strlen(label) <= S_HELP_COL_MAX)
            width = strlen(label);
    }
    fprintf(fp, "%s:\n", title);
    for (const s_opt_t *o = opts; o && o->lng; o++) {
        s_opt_label(o, label, sizeof label);
        if (strlen(label) > S_HELP_COL_MAX)
            fprintf(fp, "  %s\n  %*s  %s\n", label, (int)width, "", o->help);
        else
            fprintf(fp, "  %-*s  %s\n", (int)width, label, o->help);
    }
    if (with_help)
        fprintf(fp, "  %-*s  %s\n", (int)width, "--help", "Show this message and exit.");
}

static void s_paragraphs(FILE *fp, const char *text)
{
    const char *p = text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (n)
            fprintf(fp, "  %.*s\n", (int)n, p);
        else
            fputc('\n', fp);
        if (!nl)
            break;
        p = nl + 1;
    }
}

void zq_cli_help(FILE *fp, const zq_cli_command_t *cmd)
{
    zq_cli_usage(fp, cmd);
    fputc('\n', fp);
    if (!cmd) {
        s_paragraphs(fp, "zq command-line control: send tasks, read results, manage the broker.\n\n"
                         "Global options may also come after COMMAND. Exit codes: 0 success,\n"
                         "1 task failed, revoked or timed out, or broker unreachable, 2 usage or\n"
                         "input error.");
        fputc('\n', fp);
        s_group_help(fp, "Options", s_global_opts, 1);
        fprintf(fp, "\nCommands:\n");
        size_t w = 0;
        for (const zq_cli_command_t *c = s_commands; c->name; c++)
            if (strlen(c->name) > w)
                w = strlen(c->name);
        for (const zq_cli_command_t *c = s_commands; c->name; c++)
            fprintf(fp, "  %-*s  %s\n", (int)w, c->name, c->summary);
        return;
    }
    s_paragraphs(fp, cmd->description);
    for (const s_group_t *g = cmd->groups; g->title; g++) {
        fputc('\n', fp);
        s_group_help(fp, g->title, g->opts, 0);
    }
    fputc('\n', fp);
    s_group_help(fp, "Global Options", s_global_opts, 0);
    fprintf(fp, "\nOptions:\n  --help  Show this message and exit.\n");
}

void zq_cli_print_error(FILE *fp, const zq_cli_command_t *cmd, const char *err)
{
    zq_cli_usage(fp, cmd);
    if (cmd)
        fprintf(fp, "Try 'zq-ctl %s --help' for help.\n", cmd->name);
    else
        fprintf(fp, "Try 'zq-ctl --help' for help.\n");
    fprintf(fp, "\nError: %s\n", err);
}
