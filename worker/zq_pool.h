/*
 * zq_pool - where tasks run. One interface, three implementations (Celery's -P):
 *
 *   prefork (default)  -c forked children, each running one task at a time; the parent
 *                      talks to each over two pipes (length-prefixed records). A task that
 *                      crashes kills only its child: the pool reports the slot LOST and forks
 *                      a replacement. Hard time limits and terminate are signals to the child.
 *                      Children never touch ZeroMQ and leave with _exit().
 *   threads            -c threads in the worker process. Cheaper, but a crashing task takes
 *                      the whole worker down, and there is no hard time limit or terminate
 *                      (a thread cannot be killed safely); the soft limit is a flag.
 *   solo               runs the task inline, in the main loop, when it is submitted: no time
 *                      limits at all, and heartbeats wait until the task returns (a long
 *                      task makes the broker think the worker is dead after 3 intervals).
 *
 * The pool does not know about the broker: it reports what happened through one callback
 * (a job ended, a task sent a sub-task, a child died), always from the thread that calls
 * zq_pool_dispatch() / zq_pool_submit() (the worker's main loop).
 */
#ifndef ZQ_POOL_H
#define ZQ_POOL_H

#include <stddef.h>
#include <zmq.h>
#include "zq_exec.h"
#include "zq_loader.h"

typedef struct zq_pool zq_pool_t;

typedef enum { ZQ_POOL_PREFORK = 0, ZQ_POOL_THREADS = 1, ZQ_POOL_SOLO = 2 } zq_pool_kind_t;

/* "prefork", "threads", "solo". */
const char *zq_pool_kind_name(zq_pool_kind_t kind);
/* Parse a -P value (also Celery's alias "processes" for prefork). ZQ_EINVAL if unknown. */
int zq_pool_kind_parse(const char *s, zq_pool_kind_t *out);

/* What the pool reports. */
typedef enum {
    ZQ_POOL_EV_DONE = 1,   /* the job of `slot` ended; json is its STATE body; slot is free */
    ZQ_POOL_EV_SUBMIT = 2, /* a running task sent a sub-task; json is the SUBMIT body */
    ZQ_POOL_EV_LOST = 3    /* the child of `slot` died (prefork); a replacement is on its way */
} zq_pool_ev_kind_t;

typedef struct {
    zq_pool_ev_kind_t kind;
    int slot;                 /* 0 .. size-1 */
    zq_outcome_state_t state; /* DONE: how the run ended */
    const char *json;         /* DONE, SUBMIT: borrowed for the duration of the callback */
    size_t len;
    long pid;                 /* LOST: the process that died */
    int status;               /* LOST: its wait status (WIFSIGNALED / WEXITSTATUS) */
    int busy;                 /* LOST: 1 when it died running a job (that job is over) */
} zq_pool_event_t;

typedef void(zq_pool_event_fn)(void *arg, const zq_pool_event_t *ev);

typedef struct {
    zq_pool_kind_t kind;
    int concurrency;            /* slots; solo always has 1 */
    const zq_loader_t *loader;  /* borrowed; must outlive the pool */
    const char *worker;         /* node name ("zq@host"); borrowed */
    zq_pool_event_fn *on_event; /* required */
    void *arg;
} zq_pool_config_t;

/* A job handed to a slot. */
typedef struct {
    const char *raw;    /* TASK body text as received (prefork ships it to the child as is) */
    size_t rawlen;
    const cJSON *body;  /* the same, parsed (threads/solo run from it); must stay valid and
                         * unchanged until the job's DONE or LOST event */
    double hard, soft;  /* effective limits for request.timelimit; 0 = none */
} zq_pool_job_t;

/* Start the pool: fork the children / start the threads. Caller owns return value and must
 * destroy it. NULL on error (logged). */
zq_pool_t *zq_pool_new(const zq_pool_config_t *cfg);
/* Stop and free. Warm (cold == 0): lets running jobs finish (their events are no longer
 * reported), then reaps children / joins threads. Cold: SIGKILLs children; busy threads are
 * abandoned (the process is about to exit). NULL-safe; clears *self_p. */
void zq_pool_destroy(zq_pool_t **self_p, int cold);

zq_pool_kind_t zq_pool_kind(const zq_pool_t *self);
/* Number of slots. */
int zq_pool_size(const zq_pool_t *self);
/* An idle slot, or -1 when all are busy (or being replaced). */
int zq_pool_free_slot(const zq_pool_t *self);
/* Run job in slot (which must be idle). Solo runs it right here and reports DONE before
 * returning. ZQ_OK, or ZQ_EIO when the child could not be reached (it is dying: its LOST
 * event follows and ends the job), ZQ_ESTATE for a busy slot. */
int zq_pool_submit(zq_pool_t *self, int slot, const zq_pool_job_t *job);
/* The pid running slot (threads and solo: the worker's own pid); 0 if none. */
long zq_pool_pid(const zq_pool_t *self, int slot);
/* The pids of all children (prefork) or the worker's pid; returns how many were written. */
int zq_pool_pids(const zq_pool_t *self, long *pids, int max);

/* Tell the task in slot that its soft limit passed (prefork: SIGUSR1 to the child, which
 * sets the flag; threads: the flag). ZQ_ESTATE for solo. */
int zq_pool_soft_limit(zq_pool_t *self, int slot);
/* Send signum to the child running slot (hard limit, terminate). Prefork only: ZQ_ESTATE
 * otherwise. The death is reported as a LOST event. */
int zq_pool_kill(zq_pool_t *self, int slot, int signum);
/* 1 when the pool can enforce hard limits and terminate tasks (prefork). */
int zq_pool_can_kill(const zq_pool_t *self);

/* Poll items (raw fds) the main loop must add to its zmq_poll; returns how many were
 * written (at most max). */
int zq_pool_pollitems(const zq_pool_t *self, zmq_pollitem_t *items, int max);
/* After zmq_poll: handle the pool's items (the n written by zq_pool_pollitems, with their
 * revents) and report events through the callback. Also restarts children that could not
 * be forked earlier. */
void zq_pool_dispatch(zq_pool_t *self, const zmq_pollitem_t *items, int n);

#endif
