/*
 * zq_cli - zq-ctl's command line: the command table, option parsing and help text.
 * Pure functions (no sockets), so that every rule is unit tested (tests/unit/check_cli.c).
 *
 *   zq-ctl [--broker URL] [--json] [--timeout S] [--curve-secret FILE
 *          --curve-server-key FILE] COMMAND [ARGS]
 *
 * Global options may also come after the command. A command is one row of a table
 * (name, usage, help, option groups, positional arguments); adding one (inspect, shell)
 * is a row here plus a function in zq_ctl.c.
 */
#ifndef ZQ_CLI_H
#define ZQ_CLI_H

#include <stddef.h>
#include <stdio.h>
#include <cjson/cJSON.h>

/* zq-ctl exit codes. */
typedef enum {
    ZQ_EXIT_OK = 0,   /* success */
    ZQ_EXIT_FAIL = 1, /* the task failed / was revoked / timed out, or the broker is unreachable */
    ZQ_EXIT_USAGE = 2 /* usage or input error (message on stderr) */
} zq_exit_t;

typedef enum {
    ZQ_CLI_NONE = 0,
    ZQ_CLI_HELP,
    ZQ_CLI_CALL,
    ZQ_CLI_RESULT,
    ZQ_CLI_STATUS,
    ZQ_CLI_REVOKE,
    ZQ_CLI_PURGE,
    ZQ_CLI_EVENTS,
    ZQ_CLI_QUEUES,
    ZQ_CLI_FLOWER, /* web monitor: its options are parsed by zq_flower.c */
    ZQ_CLI_INSPECT,
    ZQ_CLI_SHELL,
    ZQ_CLI_KEYGEN  /* make a CURVE key pair: no broker involved */
} zq_cli_cmd_t;

/* One row of the command table (static storage). */
typedef struct zq_cli_command zq_cli_command_t;

/* A parsed command line. Strings are borrowed from argv (which must outlive it); the
 * cJSON members and pos are owned and released by zq_cli_clear(). */
typedef struct {
    zq_cli_cmd_t cmd;                 /* ZQ_CLI_NONE: no command given */
    const zq_cli_command_t *command;  /* its table row, or NULL */
    int help;                         /* --help/-h: print help for command (or global) */
    int version;                      /* --version */

    /* global */
    const char *broker; /* --broker/-b; NULL = $ZQ_BROKER or the default */
    int json;           /* --json/-j */
    double timeout;     /* --timeout seconds; < 0 when not given */
    /* CurveZMQ key files (docs/management.md "Security"); NULL = $ZQ_CURVE_SECRET /
     * $ZQ_CURVE_SERVER_KEY */
    const char *curve_secret;     /* --curve-secret: zq-ctl's NAME.key_secret */
    const char *curve_server_key; /* --curve-server-key: the broker's NAME.key */

    /* positional arguments after the command (borrowed pointers; the array is owned) */
    const char **pos;
    size_t npos;

    /* call */
    const char *task;    /* NAME */
    cJSON *args;         /* the JSON array sent: from --args or the ARGs; NULL = none */
    cJSON *kwargs;       /* --kwargs object; NULL = none */
    double countdown;    /* --countdown seconds; 0 = none */
    const char *eta;     /* --eta, validated ISO 8601 */
    const char *expires; /* --expires as ISO 8601 (validated), or NULL */
    double expires_in;   /* --expires as seconds; 0 = none */
    const char *queue;   /* --queue */
    const char *task_id; /* --task-id */
    int wait;            /* --wait */

    /* result */
    const char *id;        /* TASK_ID */
    const char *task_name; /* -t/--task: expected task name */
    int traceback;         /* --traceback */

    /* revoke: ids are pos[0..npos) */
    int terminate;      /* --terminate */
    const char *signal; /* --signal, canonical name ("SIGTERM") */
    int signum;         /* its number */

    /* purge */
    int force;      /* -f/--force */
    cJSON *queues;  /* -Q/--queues: array of names; NULL = all */

    /* events */
    long limit; /* --limit N; 0 = until interrupted */

    /* status, inspect: -d/--destination, an array of node names (owned); NULL = all */
    cJSON *destination;
    /* inspect: METHOD (one of zq_cli_inspect_methods); query_task's ids are pos[1..npos) */
    const char *method;

    /* keygen */
    const char *key_dir;  /* --dir; NULL = "." */
    const char *key_name; /* --name; NULL = ZQ_CLI_KEY_NAME */

    /* help */
    const zq_cli_command_t *help_for; /* `zq-ctl help CMD` */
} zq_cli_t;

/* Default NAME of `zq-ctl keygen` (NAME.key, NAME.key_secret). */
#define ZQ_CLI_KEY_NAME "zq"

/* The methods of `zq-ctl inspect`, NULL-terminated (docs/management.md). */
extern const char *const zq_cli_inspect_methods[];

/* Parse argv[1..argc) (argv[0] is the program). On error returns ZQ_EINVAL with a
 * message in err that says exactly what is wrong (cli->command is set when the command
 * was recognised, for the usage line). When --help is given anywhere (before "--"),
 * returns ZQ_OK with help set, without validating the rest. Always call zq_cli_clear(). */
int zq_cli_parse(zq_cli_t *cli, int argc, char *const argv[], char *err, size_t errlen);
void zq_cli_clear(zq_cli_t *cli);

/* A positional ARG of `call`: JSON when it parses, else the text as a JSON string.
 * Caller owns return value (NULL on ENOMEM). */
cJSON *zq_cli_arg_value(const char *text);

/* Seconds: a finite number >= 0. ZQ_OK or ZQ_EINVAL. */
int zq_cli_parse_seconds(const char *s, double *out);
/* "SIGTERM", "TERM", "term" or "15" -> canonical name and number. ZQ_OK or ZQ_EINVAL. */
int zq_cli_parse_signal(const char *s, const char **name, int *signum);

/* A usable broker URL: tcp://HOST:PORT or ipc://PATH. ZQ_OK, or ZQ_EINVAL with why in err. */
int zq_cli_check_url(const char *url, char *err, size_t errlen);

/* The exit code for a zq_err_t from the client library: ZQ_OK -> 0, ZQ_EINVAL -> 2,
 * anything else -> 1. */
zq_exit_t zq_cli_exit_code(int rc);
/* The exit code for a task's final state: SUCCESS -> 0, else 1. */
zq_exit_t zq_cli_state_exit_code(const char *state);

const zq_cli_command_t *zq_cli_find(const char *name);
const char *zq_cli_command_name(const zq_cli_command_t *cmd);
zq_cli_cmd_t zq_cli_command_id(const zq_cli_command_t *cmd);

/* "Usage: zq-ctl call [OPTIONS] NAME [ARG]..." (cmd NULL: the global one), one line. */
void zq_cli_usage(FILE *fp, const zq_cli_command_t *cmd);
/* Full help, shaped like Celery's (click) help. cmd NULL: the global help. */
void zq_cli_help(FILE *fp, const zq_cli_command_t *cmd);
/* What main prints for a parse error: usage, "Try ...", "Error: <err>". */
void zq_cli_print_error(FILE *fp, const zq_cli_command_t *cmd, const char *err);

#endif
