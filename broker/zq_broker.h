/*
 * zq_broker - the zq-broker event loop: ZQP/1 sockets (docs/protocol.md), in-memory ready
 * queues over the durable store (zq_store.h), credit-based dispatch, ETA scheduling,
 * parked GETs, worker liveness, events.
 *
 * Single-threaded: zq_broker_run() owns every socket and the store. zq_broker_stop() is
 * the only call that may come from another thread or a signal handler.
 *
 * Durability: a SUBMIT is acknowledged only after the transaction holding it committed
 * (group commit: one per loop turn). State changes nobody waits for yet (no reply, no
 * parked GET, nothing to hand out) may wait up to 20 ms for the next commit.
 */
#ifndef ZQ_BROKER_H
#define ZQ_BROKER_H

#include "zq_store.h"

#define ZQ_BROKER_DEFAULT_DATA_DIR "./zq-data"
#define ZQ_BROKER_DEFAULT_LOOKAHEAD 1.0     /* seconds: ETA tasks go to a worker this early */
#define ZQ_BROKER_ACK_HOLD 0.002           /* s: default ack_hold */
#define ZQ_BROKER_DEFAULT_HEARTBEAT 2.0     /* seconds between worker heartbeats */
#define ZQ_BROKER_DEFAULT_MAX_READY 20000   /* ready tasks per queue kept in memory */
#define ZQ_BROKER_DEAD_AFTER 3              /* missed heartbeat intervals -> worker is dead */
#define ZQ_BROKER_RESTART_HOLD 1.5          /* heartbeat intervals without dispatch after a
                                               restart with unfinished tasks */
#define ZQ_BROKER_ETA_CAP 1000              /* ETA tasks one worker may hold */
#define ZQ_BROKER_BATCH 2000                /* messages per poll iteration (one commit) */
#define ZQ_BROKER_REVOKED_IN_HELLO 10000    /* most recent revoked ids sent to a worker */

typedef struct zq_broker zq_broker_t;

typedef struct {
    const char *frontend;      /* NULL: zq_broker_url(NULL) */
    const char *upstream;      /* NULL: derived from frontend (port + 1 / ".up") */
    const char *events;        /* NULL: derived from frontend (port + 2 / ".ev") */
    const char *data_dir;      /* NULL: ZQ_BROKER_DEFAULT_DATA_DIR */
    zq_store_sync_t sync;      /* default ZQ_STORE_SYNC_NORMAL */
    double lookahead;          /* seconds, >= 0 */
    double heartbeat;          /* seconds, > 0 */
    long max_ready_in_memory;  /* >= 1 */
    /* seconds the acknowledgement of a SUBMIT that subscribed to its record may wait for
     * that record, to travel with it (docs/protocol.md §7); >= 0, 0: never held */
    double ack_hold;
    /* CurveZMQ (docs/protocol.md §13): both or neither. With them every socket is a CURVE
     * server with this key pair and lets in only the keys of curve_authorized. */
    const char *curve_secret;     /* the broker's secret key file (NAME.key_secret) */
    const char *curve_authorized; /* directory of the public keys (NAME.key) let in */
} zq_broker_config_t;

/* Fill in the defaults. */
void zq_broker_config_init(zq_broker_config_t *cfg);

/* Open the store, bind every socket, recover waiting tasks. Logs the reason of a failure
 * and returns NULL with *err (may be NULL) set to ZQ_EINVAL (bad configuration or
 * endpoint), ZQ_ESTORE (the store cannot be opened) or ZQ_EIO (cannot bind).
 * The strings in cfg are copied. Caller owns return value and must destroy it. */
zq_broker_t *zq_broker_new(const zq_broker_config_t *cfg, int *err);

/* Serve until zq_broker_stop(). ZQ_OK, or ZQ_EIO after a fatal socket error. */
int zq_broker_run(zq_broker_t *self);

/* Ask zq_broker_run() to return after its current iteration. Async-signal-safe and
 * thread-safe. */
void zq_broker_stop(zq_broker_t *self);

/* Commit what is pending, close sockets and store, free. NULL-safe; clears *self_p. */
void zq_broker_destroy(zq_broker_t **self_p);

/* The endpoints actually bound (borrowed, valid until destroy). */
const char *zq_broker_frontend(const zq_broker_t *self);
const char *zq_broker_upstream(const zq_broker_t *self);
const char *zq_broker_events(const zq_broker_t *self);

/* Counters, also reported by INFO ("stats"). Read them only from the broker's thread, or
 * after zq_broker_run() returned. */
typedef struct {
    long submitted;    /* tasks accepted (committed) */
    long duplicates;   /* SUBMITs of an id that already existed */
    long dispatched;   /* tasks handed to workers (TASK, or in a TASKS) */
    long succeeded, failed, revoked, retried;
    long bad_messages; /* rejected frontend and upstream messages */
    long commits, commit_failures;
    long recovered;    /* unfinished tasks found at startup */
    long events;       /* events published (only while somebody subscribes) */
    long auth_rejected; /* connections refused by CURVE/ZAP (zq_auth.h) */
} zq_broker_stats_t;
void zq_broker_stats(const zq_broker_t *self, zq_broker_stats_t *out);

#endif
