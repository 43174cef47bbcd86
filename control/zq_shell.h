/*
 * zq_shell - `zq-ctl shell`: an interactive shell with the registered task names known,
 * Celery's `celery shell` for zq (docs/management.md, "zq-ctl shell").
 *
 *   >>> tasks.add(2, 2)                          send a task; prints <AsyncResult: ID>
 *   >>> r = tasks.add.apply_async([2, 2], countdown=3)
 *   >>> r.get(timeout=10)                        4
 *   >>> .get()                                   the last result sent or asked for
 *   >>> get 6f1c... 5                            wait up to 5 s for any task id
 *   >>> r.state   r.id   r.result   r.ready()
 *   >>> inspect active                           every zq-ctl command
 *
 * Statements are parsed by pure functions (zq_shell_parse, zq_shell_literal, zq_shell_split)
 * that tests/unit/check_cli.c covers. Arguments are Python literals (numbers, 'strings',
 * "strings", True/False/None, [lists], (tuples), {dicts}) or JSON, turned into JSON.
 *
 * On a terminal the shell uses libedit (line editing, history in ~/.zq_history, tab
 * completion of task names, commands and inspect methods); otherwise it reads statements
 * from its input, one per line, without prompts, so it can be scripted and tested.
 */
#ifndef ZQ_SHELL_H
#define ZQ_SHELL_H

#include <stddef.h>
#include <stdio.h>
#include <cjson/cJSON.h>
#include "zq.h"
#include "zq_cli.h"

#define ZQ_SHELL_NAME_MAX 64 /* variable names */
#define ZQ_SHELL_VARS_MAX 256

typedef enum {
    ZQ_SHELL_EMPTY = 0, /* blank line or # comment */
    ZQ_SHELL_SEND,      /* [VAR =] NAME(...) | NAME.delay(...) | NAME.apply_async(...) [.get(...)] */
    ZQ_SHELL_GET,       /* [VAR].get([TIMEOUT]) | get ID [TIMEOUT] */
    ZQ_SHELL_ATTR,      /* VAR | VAR.state | VAR.status | VAR.id | VAR.result | VAR.ready() |
                         * NAME (a task: <@task: NAME of MODULE>) */
    ZQ_SHELL_COMMAND,   /* a zq-ctl command line */
    ZQ_SHELL_HELP,      /* help */
    ZQ_SHELL_EXIT       /* exit, quit, exit(), quit() */
} zq_shell_kind_t;

/* One parsed statement. Everything is owned and released by zq_shell_stmt_clear(). */
typedef struct {
    zq_shell_kind_t kind;
    char assign[ZQ_SHELL_NAME_MAX]; /* SEND, GET: "VAR = ..." sets VAR ("" = none) */
    char target[ZQ_SHELL_NAME_MAX]; /* GET, ATTR: the variable ("_" = the last result) */
    const char *attr;   /* ATTR: "show", "state", "id", "result", "ready", "task" (static) */
    char *task;         /* SEND: task name; ATTR "task": the name */
    cJSON *args;        /* SEND: JSON array, never NULL after a successful parse */
    cJSON *kwargs;      /* SEND: JSON object, never NULL after a successful parse */
    double countdown;   /* SEND (apply_async): seconds; 0 = none */
    char *eta;          /* SEND: ISO 8601 (validated) or NULL */
    char *expires;      /* SEND: ISO 8601 (validated) or NULL */
    double expires_in;  /* SEND: seconds after publish; 0 = none */
    char *queue;        /* SEND: or NULL (the default queue) */
    char *task_id;      /* SEND: or NULL (a new uuid7) */
    int priority;       /* SEND: 0-9 */
    int ignore_result;  /* SEND */
    int then_get;       /* SEND: followed by .get(...) */
    double timeout;     /* GET (and then_get): seconds; < 0 waits forever (Celery's get()) */
    char *id;           /* GET by id ("get ID"); NULL otherwise */
    char **argv;        /* COMMAND: argv[0] is "zq-ctl", then the words */
    int argc;
} zq_shell_stmt_t;

/* Parse one line. ZQ_OK, or ZQ_EINVAL with a message in err ("invalid syntax at column 9:
 * ..."); always call zq_shell_stmt_clear(). */
int zq_shell_parse(const char *line, zq_shell_stmt_t *st, char *err, size_t errlen);
void zq_shell_stmt_clear(zq_shell_stmt_t *st);

/* A Python or JSON literal as JSON: "[1, 'a', (2,), {'k': None}]" -> [1,"a",[2],{"k":null}].
 * Caller owns return value; NULL with the reason in err. */
cJSON *zq_shell_literal(const char *text, char *err, size_t errlen);

/* Split a command line into words as a POSIX shell would for plain words, '...', "..." and
 * backslashes (no expansions). *argv_p gets argv[0] = "zq-ctl" then the words, and a NULL.
 * Caller frees with zq_shell_free_argv. ZQ_OK or ZQ_EINVAL (unterminated quote). */
int zq_shell_split(const char *line, char ***argv_p, int *argc_p, char *err, size_t errlen);
void zq_shell_free_argv(char **argv);

/* Run the shell: statements from in (a terminal: interactive), output to out, errors to
 * err. c is the client to the broker (borrowed); cli the parsed `zq-ctl shell` line, whose
 * --broker, --json and --timeout the typed commands inherit. Returns the exit code: 0, or
 * that of the last statement that failed (non-interactive). */
int zq_shell_run(const zq_cli_t *cli, zq_client_t *c, FILE *in, FILE *out, FILE *err);

#endif
