/*
 * zq_control - the worker's control socket: a ZeroMQ ROUTER that zq-ctl (status, inspect,
 * shell) queries, and the handlers that answer those queries (docs/management.md).
 *
 *   zq-ctl DEALER  --[ZQP01][INSPECT][{"req", "method", "arguments"}]-->  worker ROUTER
 *                  <--[ZQP01][REPLY][{"req", "worker", "method", "reply"}]--
 *
 * The worker binds it next to its other sockets (`--control URL`, default
 * tcp://127.0.0.1:*, an ephemeral port) and announces the bound endpoint to the broker in
 * HELLO, so zq-ctl finds it through the broker's WORKERS list. Requests are answered from
 * the worker's main loop, between tasks: nothing here is on the task hot path except two
 * counters (zq_control_task_started / zq_control_task_done).
 *
 * The module does not see the worker's structures: it reads them through the callbacks of
 * zq_control_config_t (every held job, the revoked ids, a few live values), so the handlers
 * are tested without sockets or a worker (tests/unit/check_control.c).
 */
#ifndef ZQ_CONTROL_H
#define ZQ_CONTROL_H

#include <stddef.h>
#include <cjson/cJSON.h>
#include <zmq.h>
#include "zq_auth.h"
#include "zq_exec.h"
#include "zq_loader.h"
#include "zq_pool.h"
#include "zq_task_int.h"

typedef struct zq_control zq_control_t;

/* Default endpoint of the control socket: loopback, ephemeral port. */
#define ZQ_CONTROL_DEFAULT_ENDPOINT "tcp://127.0.0.1:*"
/* Requests answered per loop turn, so a flood of queries cannot starve the tasks. */
#define ZQ_CONTROL_BATCH 64
/* A reply stops growing here (its list is cut and "truncated": true is set), far below
 * ZQ_MAX_MSG_SIZE so that a worker holding many tasks never sends an oversized message. */
#define ZQ_CONTROL_MAX_REPLY (4 * 1024 * 1024)
/* query_task: most ids one request may ask about. */
#define ZQ_CONTROL_MAX_IDS 10000

/* Where a held task is, as `inspect` names it. */
typedef enum {
    ZQ_CONTROL_RESERVED = 1,  /* prefetched, waiting for a free slot (no future eta) */
    ZQ_CONTROL_SCHEDULED = 2, /* held until its eta */
    ZQ_CONTROL_ACTIVE = 3     /* running */
} zq_control_place_t;

/* One task the worker holds, as the worker describes it to the handlers. */
typedef struct {
    const zq_request_t *req;  /* borrowed: valid until the handler returns (the worker's
                               * loop does not run meanwhile) */
    zq_control_place_t place;
    double time_start;        /* ACTIVE: when it started, epoch seconds; else 0 */
    long pid;                 /* ACTIVE: the process running it; else 0 */
    int acks_late;            /* the task acknowledges after it ran (Celery's acknowledged) */
} zq_control_job_t;

typedef void(zq_control_job_fn)(void *arg, const zq_control_job_t *job);
typedef void(zq_control_id_fn)(void *arg, const char *id);

/* Values that change while the worker runs. */
typedef struct {
    int registered;        /* the broker answered our HELLO */
    double heartbeat;      /* heartbeat interval in use (the broker's), seconds */
    unsigned long processed; /* tasks that ended here (as in HEARTBEAT) */
    const char *broker_id; /* incarnation of the broker we talk to ("" when unknown) */
    const zq_pool_t *pool; /* for the pool's pids (stats); NULL: this process only */
    unsigned long bad_messages; /* malformed messages dropped on the broker channels */
} zq_control_live_t;

/* What the control module needs from its worker. Strings and pointers are borrowed and must
 * outlive the zq_control_t. */
typedef struct {
    const char *name;            /* node name, "zq@host" */
    const char *broker_url;
    const char *plugins_dir;
    const char *const *queues;   /* consumed queues */
    size_t nqueues;
    zq_pool_kind_t pool_kind;
    int concurrency;
    int prefetch;                /* held beyond the running ones */
    double heartbeat;            /* configured interval, seconds */
    double time_limit;           /* worker default hard limit, seconds; 0 = none */
    double soft_time_limit;      /* worker default soft limit, seconds; 0 = none */
    const char *endpoint;        /* --control URL; NULL or "" = ZQ_CONTROL_DEFAULT_ENDPOINT */
    double started;              /* worker start, epoch seconds */
    const zq_loader_t *loader;   /* registered tasks */
    int revokes_max;             /* revoked ids remembered */
    /* CurveZMQ (docs/protocol.md §13): with a key pair, the ROUTER is a CURVE server with it
     * (its public key is announced in HELLO as "curve_key") and lets in only the keys of
     * curve_authorized, through a ZAP handler served by the worker's loop. NULL: plain. */
    const zq_curve_pair_t *curve;
    const char *curve_authorized;
    /* callbacks into the worker; src is given back to each. Any may be NULL (nothing held,
     * nothing revoked, defaults). */
    void (*each_job)(void *src, zq_control_job_fn *fn, void *arg); /* active, reserved in
                                                                     * run order, scheduled */
    int (*find_job)(void *src, const char *id, zq_control_job_t *out); /* 1 found, 0 not */
    void (*each_revoked)(void *src, zq_control_id_fn *fn, void *arg); /* oldest first */
    void (*live)(void *src, zq_control_live_t *out);
    void *src;
} zq_control_config_t;

/* A control module without a socket yet. cfg is copied (its strings are borrowed). Caller
 * owns return value and must destroy it. NULL on ENOMEM (logged). */
zq_control_t *zq_control_new(const zq_control_config_t *cfg);
/* Close the socket (if bound) and free. NULL-safe; clears *self_p. */
void zq_control_destroy(zq_control_t **self_p);

/* Create the ROUTER in zmq_ctx and bind it to the configured endpoint. ZQ_OK; ZQ_EINVAL for
 * an endpoint ZeroMQ refuses, ZQ_EIO when it cannot be bound (logged, with the endpoint). */
int zq_control_bind(zq_control_t *self, void *zmq_ctx);
/* The endpoint actually bound ("tcp://127.0.0.1:40123"), "" before zq_control_bind. This is
 * what HELLO announces. */
const char *zq_control_endpoint(const zq_control_t *self);
/* The ROUTER, for the caller's zmq_poll (NULL before bind). */
void *zq_control_socket(const zq_control_t *self);
/* Answer the requests waiting on the socket (at most ZQ_CONTROL_BATCH). Never blocks. */
void zq_control_serve(zq_control_t *self);
/* Everything the worker's zmq_poll must watch for this module: the ROUTER and, with CURVE,
 * the ZAP handler's sockets (at most ZQ_CONTROL_POLLITEMS). Returns how many were filled;
 * after zmq_poll, zq_control_dispatch(items, n) serves those that are ready. */
#define ZQ_CONTROL_POLLITEMS 4
int zq_control_pollitems(const zq_control_t *self, zmq_pollitem_t *items, int max);
void zq_control_dispatch(zq_control_t *self, const zmq_pollitem_t *items, int n);
/* Connections the control socket refused (CURVE), 0 without CURVE. */
long zq_control_auth_rejected(const zq_control_t *self);

/* Answer one request without a socket: cmd and body as received (body borrowed, may be
 * NULL). Returns the REPLY body, with "req" echoed: {"req", "worker", "method", "reply"} or
 * {"req", "error": {"code", "message"}}. Caller owns return value (NULL on ENOMEM). */
cJSON *zq_control_handle(zq_control_t *self, const char *cmd, const cJSON *body);

/* The methods zq_control_handle answers, NULL-terminated (static storage). */
extern const char *const zq_control_methods[];

/* Counters for `inspect stats`. NULL-safe, cheap (no allocation). */
/* A task began running (Celery's "total" counts these, by name). */
void zq_control_task_started(zq_control_t *self, const zq_task_entry_t *entry);
/* A run ended: SUCCESS, FAILURE, RETRY or REVOKED (terminated). */
void zq_control_task_done(zq_control_t *self, zq_outcome_state_t state);

#endif
