/*
 * zq_worker - the worker's main loop (zq-worker): joins the broker (HELLO), pulls TASK and
 * REVOKED from its dispatch channel, runs tasks in a pool, pushes STATE / RETURN / SUBMIT
 * upstream, heartbeats, and shuts down gracefully (docs/protocol.md §7, §8, §10).
 *
 * Per task: STATE RECEIVED on arrival; unknown names end FAILURE NotRegistered, bad args /
 * kwargs FAILURE InvalidArguments, revoked or expired ids REVOKED (TaskRevokedError); a
 * future eta is held in a timer; then STARTED (pid, acks_late) when a pool slot takes it,
 * and the pool's outcome (SUCCESS / FAILURE / RETRY) as the task ends. Hard and soft time
 * limits are enforced here (through the pool). The broker limits how many tasks a worker
 * holds (credits), so the worker itself never refuses one.
 *
 * Exit codes of zq_worker_run: 0 after a warm shutdown; 1 on a fatal error (a worker with
 * the same name is connected, the broker refused us, sockets failed) or a cold shutdown.
 */
#ifndef ZQ_WORKER_H
#define ZQ_WORKER_H

#include <stdio.h>
#include "zq_pool.h"

typedef struct zq_worker zq_worker_t;

/* Tunables. */
#define ZQ_WORKER_HEARTBEAT 2.0        /* seconds between HEARTBEATs (protocol default) */
#define ZQ_WORKER_HELLO_RETRY 1.0      /* seconds between HELLO attempts */
#define ZQ_WORKER_HEARTBEAT_MISSES 3   /* unanswered intervals before re-registering */
#define ZQ_WORKER_REVOKES_MAX 50000    /* revoked ids remembered (Celery's REVOKES_MAX) */
#define ZQ_WORKER_BYE_WAIT 2.0         /* seconds to wait for the BYE reply */
#define ZQ_WORKER_UPSTREAM_LINGER 5000 /* ms: results still queued are flushed this long */
#define ZQ_WORKER_UPSTREAM_HWM 1000000 /* messages queued while the broker is away */
#define ZQ_WORKER_STATE_HOLD 0.01      /* s a RECEIVED/STARTED waits to be folded (§8) */

typedef struct {
    const char *plugins_dir;    /* required: every *.so in it is loaded */
    const char *broker_url;     /* NULL: zq_broker_url(NULL) ($ZQ_BROKER or the default) */
    const char *nodename;       /* -n; NULL: "zq@%h"; %h %n %d %% are expanded */
    const char *queues;         /* -Q, comma-separated; NULL: "celery" */
    int concurrency;            /* -c; <= 0: number of CPUs */
    int prefetch;               /* < 0: = concurrency */
    zq_pool_kind_t pool;        /* -P */
    double heartbeat;           /* seconds; <= 0: ZQ_WORKER_HEARTBEAT */
    double time_limit;          /* worker default hard limit, seconds; 0 = none */
    double soft_time_limit;     /* worker default soft limit, seconds; 0 = none */
    const char *control;        /* --control: endpoint of the control socket that zq-ctl
                                 * inspect queries; NULL: tcp://127.0.0.1:* (zq_control.h) */
    int allow_insecure_plugins; /* load world-writable plugins (logged) */
    /* CurveZMQ (docs/protocol.md §13): all three or none. The worker connects to the broker
     * as a CURVE client with its key pair and the broker's public key; its control socket
     * is a CURVE server with the same key pair (announced in HELLO as "curve_key") that
     * lets in only the public keys of curve_authorized. */
    const char *curve_secret;     /* this worker's NAME.key_secret */
    const char *curve_server_key; /* the broker's NAME.key */
    const char *curve_authorized; /* directory of the keys that may query the control socket */
} zq_worker_config_t;

/* Expand a -n pattern: %h host name, %n its first label, %d its domain, %% a percent sign;
 * a name without '@' gets "zq@" in front (as Celery does with "celery@"). ZQ_EINVAL when
 * the result is not a valid name (1-255 printable characters, no spaces) or does not fit. */
int zq_worker_expand_name(const char *pattern, char *out, size_t outlen);

/* Load the plugins and prepare; nothing is connected or forked yet. Caller owns return
 * value and must destroy it. NULL on error (logged). */
zq_worker_t *zq_worker_new(const zq_worker_config_t *cfg);
/* NULL-safe; clears *self_p. */
void zq_worker_destroy(zq_worker_t **self_p);

/* The node name ("zq@host"). */
const char *zq_worker_name(const zq_worker_t *self);
/* Number of registered tasks. */
size_t zq_worker_task_count(const zq_worker_t *self);

/* Print the Celery-shaped startup banner (config, [queues], [tasks]) to fp. */
void zq_worker_banner(const zq_worker_t *self, FILE *fp);

/* Start the pool, connect, and serve until shutdown. Installs SIGTERM/SIGINT handlers:
 * the first asks for a warm shutdown, the second for a cold one. Returns the exit code. */
int zq_worker_run(zq_worker_t *self);

/* Ask the running worker to stop, as a signal would (async-signal-safe): the first call
 * is a warm shutdown, the next a cold one. */
void zq_worker_stop(void);

#endif
