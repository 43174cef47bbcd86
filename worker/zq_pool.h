/*
 * zq_pool - where tasks run. One interface, three implementations (Celery's -P):
 *
 *   prefork (default)  -c forked children. Jobs go into one shared job queue (a datagram
 *                      socket pair that idle children all wait on; each job is one message,
 *                      taken by exactly one of them), so a job never waits behind a busy
 *                      child while another is idle (except behind the others of its pack:
 *                      short jobs queued together go in packs, see zq_pool_counts), and
 *                      under load nobody sleeps between tasks. Children do not announce a start: the pool reports STARTED
 *                      from shared memory (zq_pool_due) or with the job's DONE. A task that crashes kills only its child: the
 *                      pool reports it LOST and forks a replacement. Hard time limits and
 *                      terminate are signals to the child. Children never touch ZeroMQ and
 *                      leave with _exit().
 *   threads            -c threads in the worker process, fed from a shared in-memory queue.
 *                      Cheaper, but a crashing task takes the whole worker down, and there is
 *                      no hard time limit or terminate (a thread cannot be killed safely); the
 *                      soft limit is a flag the task polls.
 *   solo               runs the task inline, in the main loop, when it is submitted: no time
 *                      limits at all, and heartbeats wait until the task returns (a long task
 *                      makes the broker think the worker is dead after 3 intervals).
 *
 * A job handed to the pool is queued (it may still be taken back with zq_pool_cancel), then
 * STARTED by some slot, then DONE; or it is EXPIRED (its expiry passed before it could
 * start); or LOST with its process. The pool does not know about the broker: it reports
 * through one callback, always from the thread that calls zq_pool_submit() /
 * zq_pool_dispatch() (the worker's main loop). The callback must not call zq_pool_submit,
 * zq_pool_cancel or zq_pool_dispatch.
 */
#ifndef ZQ_POOL_H
#define ZQ_POOL_H

#include <stddef.h>
#include <stdint.h>
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
    ZQ_POOL_EV_STARTED = 1,  /* ctx began running in `slot` (process `pid`) at `time`;
                              * always before its DONE or LOST. Prefork reports it within
                              * a few ms (zq_pool_due), or together with the DONE of a job
                              * that ended sooner */
    ZQ_POOL_EV_DONE = 2,     /* ctx ended; json is its STATE body (NULL: it could not be run) */
    ZQ_POOL_EV_EXPIRED = 3,  /* ctx's expiry passed before it could start: it did not run */
    ZQ_POOL_EV_SUBMIT = 4,   /* a running task sent a sub-task; json is the SUBMIT body */
    ZQ_POOL_EV_LOST = 5,     /* the process of `slot` died (prefork): ctx is the job it was
                              * running (NULL when idle); a replacement is on its way */
    ZQ_POOL_EV_RETURNED = 6  /* ctx was taken back without running (the job queue had to be
                              * rebuilt: a child died idle or while taking a job, so it may
                              * have lost one): queue it again */
} zq_pool_ev_kind_t;

typedef struct {
    zq_pool_ev_kind_t kind;
    int slot;                 /* STARTED, DONE, LOST: 0 .. size-1; else -1 */
    void *ctx;                /* the job's zq_pool_job_t.ctx (LOST: may be NULL) */
    zq_outcome_state_t state; /* DONE: how the run ended */
    const char *json;         /* DONE, SUBMIT: borrowed for the duration of the callback */
    size_t len;
    long pid;                 /* STARTED, LOST: the process */
    double time;              /* STARTED: when it started (zq_now(), taken where it runs) */
    int status;               /* LOST: its wait status (WIFSIGNALED / WEXITSTATUS) */
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

/* A job. */
typedef struct {
    void *ctx;          /* the caller's handle, given back in every event about this job */
    const char *raw;    /* TASK body text as received (prefork ships it as is); copied */
    size_t rawlen;
    const cJSON *body;  /* the same, parsed (threads/solo run from it); must stay valid and
                         * unchanged until the job's DONE, EXPIRED, LOST or RETURNED event,
                         * or a successful zq_pool_cancel */
    double hard, soft;  /* effective limits for request.timelimit; 0 = none */
    double expires;     /* epoch seconds, 0 = none: checked again when it starts */
    double eta;         /* epoch seconds, 0 = none: not started before it. Prefork and
                         * threads take a job up to ZQ_POOL_ETA_AHEAD early and wait for its
                         * eta where it runs, so that a busy main loop does not make it late;
                         * solo runs what it is given at once */
} zq_pool_job_t;

/* How early (s) the worker may hand an ETA job to a prefork or threads pool. A slot waiting
 * for such a job's eta is busy, so this stays short. */
#define ZQ_POOL_ETA_AHEAD 0.005

/* Start the pool: fork the children / start the threads. Caller owns return value and must
 * destroy it. NULL on error (logged). */
zq_pool_t *zq_pool_new(const zq_pool_config_t *cfg);
/* Stop and free. Warm (cold == 0): running jobs finish (their events are no longer
 * reported), then children are reaped / threads joined. Cold: children are SIGKILLed; busy
 * threads are abandoned (the process is about to exit). NULL-safe; clears *self_p. */
void zq_pool_destroy(zq_pool_t **self_p, int cold);

zq_pool_kind_t zq_pool_kind(const zq_pool_t *self);
/* Number of slots. */
int zq_pool_size(const zq_pool_t *self);
/* How many more jobs zq_pool_submit() takes now (queued jobs are capped so that revoking
 * or returning them stays cheap). */
int zq_pool_room(const zq_pool_t *self);
/* Queue a job (copies what it needs). Solo runs it here and reports STARTED and DONE (or
 * EXPIRED) before returning. ZQ_OK; ZQ_ESTATE when there is no room; ZQ_ENOMEM. */
int zq_pool_submit(zq_pool_t *self, const zq_pool_job_t *job);
/* Send what was submitted since the last flush (prefork: one sendmmsg() for a run of jobs).
 * Call it after a dispatch pass; zq_pool_dispatch() also does, so nothing waits longer
 * than one turn of the caller's loop. No-op for threads and solo. */
void zq_pool_flush(zq_pool_t *self);
/* Take back a queued job: ZQ_OK when it will not run (no event about it follows);
 * ZQ_ESTATE when it is starting or started (STARTED, then DONE or LOST, will tell). */
int zq_pool_cancel(zq_pool_t *self, void *ctx);
/* Start queued jobs only before `until` (zq_mono() seconds): the worker's lease, past which
 * the broker may have declared it dead and handed its jobs to another worker. A queued job
 * then waits (prefork children and pool threads check just before starting one, so this
 * holds even while the worker's main loop is stopped) until the lease is extended or the
 * job is taken back with zq_pool_cancel. INFINITY, the default, means no limit. Solo runs
 * a job inside zq_pool_submit: its caller checks. */
void zq_pool_set_lease(zq_pool_t *self, double until);
/* The pid running slot (threads and solo: the worker's own pid); 0 if none. */
long zq_pool_pid(const zq_pool_t *self, int slot);
/* The pids of all children (prefork) or the worker's pid; returns how many were written. */
int zq_pool_pids(const zq_pool_t *self, long *pids, int max);

/* Tell the task ctx, running in slot, that its soft limit passed (prefork: the child's flag,
 * plus SIGUSR1 to cut its sleeps short; threads: the flag). Nothing happens when slot runs
 * something else by now. ZQ_ESTATE for solo. */
int zq_pool_soft_limit(zq_pool_t *self, int slot, void *ctx);
/* Send signum to the child of slot if it still runs ctx (hard limit, terminate). Prefork
 * only (ZQ_ESTATE otherwise); the death is reported as a LOST event. */
int zq_pool_kill(zq_pool_t *self, int slot, void *ctx, int signum);
/* 1 when the pool can enforce hard limits and terminate tasks (prefork). */
int zq_pool_can_kill(const zq_pool_t *self);

/* Prefork: the jobs and the job messages written to the children's queue so far. While
 * jobs are short (their average run under 0.5 ms) and several wait, one message carries a
 * pack of them (up to 16) that one child runs in turn; jobs / messages is the average pack.
 * Both 0 for the other pools. */
void zq_pool_counts(const zq_pool_t *self, uint64_t *jobs, uint64_t *messages);

/* Poll items (raw fds) the main loop must add to its zmq_poll; returns how many were
 * written (at most max; zq_pool_size() + 2 is always enough). */
int zq_pool_pollitems(const zq_pool_t *self, zmq_pollitem_t *items, int max);
/* The zq_mono() time by which zq_pool_dispatch() must run even if none of the pool's items
 * is ready (prefork: a child may have started a job, which it does not announce); 0: no
 * such time. */
double zq_pool_due(const zq_pool_t *self);
/* After zmq_poll: handle the pool's items (the n written by zq_pool_pollitems, with their
 * revents) and report events through the callback. Also restarts children that could not
 * be forked earlier. */
void zq_pool_dispatch(zq_pool_t *self, const zmq_pollitem_t *items, int n);

#endif
