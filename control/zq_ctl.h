/*
 * zq_ctl - zq-ctl's subcommands (call, result, status, revoke, purge, events, queues),
 * run over the client API (sdk/zq.h). Each command is a function in a table keyed by
 * zq_cli_cmd_t; a new command (inspect, shell) is a row in zq_cli.c and one here.
 */
#ifndef ZQ_CTL_H
#define ZQ_CTL_H

#include <stdio.h>
#include <cjson/cJSON.h>
#include "zq_cli.h"

/* Run a parsed command line. Normal output goes to out, errors and task failures to err.
 * Returns the process exit code (zq_exit_t). */
int zq_ctl_run(const zq_cli_t *cli, FILE *out, FILE *err);

/* The whole program: parse argv, print help or a usage error, run. Returns the exit code. */
int zq_ctl_main(int argc, char *argv[]);

/* Default wait for workers' control replies (status, inspect), seconds, as Celery's. */
#define ZQ_CTL_CONTROL_TIMEOUT 1.0
/* The pseudo-node under which inspect scheduled / query_task list what the broker holds
 * (worker names always contain '@', so it cannot clash). */
#define ZQ_CTL_BROKER_NODE "broker"

/* Output helpers shared with the shell and tested by tests/unit/check_cli.c. */

/* One node of a status/inspect answer, shaped like Celery's:
 *   "->  zq@host: OK" then the reply indented: "        pong" for ping, "    * item" per
 *   list item (dicts as Python reprs) or "    - empty -", and dicts as JSON with sorted
 *   keys and 4-space indents followed by a "    " line.
 * With error != NULL: "->  zq@host: ERROR" and the error text indented by 8. reply and
 * error are borrowed. */
void zq_ctl_print_node(FILE *out, const char *node, const cJSON *reply, const char *error);
/* Python's json.dumps(v, sort_keys=True, indent=4). Caller owns return value and must
 * free() it (NULL on ENOMEM). */
char *zq_ctl_pretty_json(const cJSON *v);
/* "FAILURE: Type: message", then the traceback, for a task record (borrowed). */
void zq_ctl_print_failure(FILE *err, const cJSON *rec);
/* The broker's view of a task record (borrowed) for query_task: "queued", "scheduled"
 * (PENDING/RETRY with an eta after now, epoch seconds), "received", "started", "success",
 * "failure", "revoked", or "unknown" (never accepted). Static storage. */
const char *zq_ctl_broker_task_state(const cJSON *rec, double now);

#endif
