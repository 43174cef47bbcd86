/*
 * zq_ctl - zq-ctl's subcommands (call, result, status, revoke, purge, events, queues),
 * run over the client API (sdk/zq.h). Each command is a function in a table keyed by
 * zq_cli_cmd_t; a new command (inspect, shell) is a row in zq_cli.c and one here.
 */
#ifndef ZQ_CTL_H
#define ZQ_CTL_H

#include <stdio.h>
#include "zq_cli.h"

/* Run a parsed command line. Normal output goes to out, errors and task failures to err.
 * Returns the process exit code (zq_exit_t). */
int zq_ctl_run(const zq_cli_t *cli, FILE *out, FILE *err);

/* The whole program: parse argv, print help or a usage error, run. Returns the exit code. */
int zq_ctl_main(int argc, char *argv[]);

#endif
