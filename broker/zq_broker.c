/*
 * zq_broker - the zq-broker event loop (zq_broker.h; every message is in docs/protocol.md).
 *
 * One thread owns every socket, the store and all memory state. One turn of the loop:
 *   1. zq_zpoll (zmq_poll with fewer syscalls) on frontend (ROUTER), upstream (PULL), events
 *      (XPUB: we read subscriptions so that no event text is built while nobody listens),
 *      the stop pipe, and the dispatch PUSH of any worker whose channel was not connected
 *      yet; timeout = the next timer.
 *   2. BEGIN; drain up to ZQ_BROKER_BATCH messages and run the due timers (dead workers,
 *      unclaimed tasks after a restart, tasks found expired by dispatch); COMMIT. One
 *      commit per turn, never one per task (group commit).
 *   3. Only after a good commit: send what the turn buffered in the outbox (replies,
 *      events, REVOKED broadcasts), answer parked GETs whose task ended, time out GETs,
 *      then dispatch. If the commit failed, replies that promised durability turn into
 *      ESTORE errors, events are dropped, the turn's upstream messages are kept to be
 *      applied again, and the in-memory queues are rebuilt from the store (the store is
 *      the truth; memory is a cache of it plus who-holds-what).
 *
 * Memory state:
 *   - per queue: a FIFO of ready tasks (rid order, capped at max_ready_in_memory; beyond
 *     that tasks stay on disk and are read back in order as the FIFO drains: ready_cursor
 *     is the last rid read) and a min-heap of ETA tasks by (eta, rid), capped the same way
 *     (sched cursor). Invariant: a waiting task with a key above the cursor is not in
 *     memory; with !spilled none is on disk only.
 *   - held: id -> (worker, task), every task a worker holds (dispatched, not yet ended).
 *     Credits are counted from it (docs/protocol.md §8).
 *   - orphans: tasks found RECEIVED/STARTED at startup, waiting for a worker to claim them
 *     in HELLO "holding"; unclaimed after the grace period they are handled as if their
 *     worker had died.
 *   - parked GETs: id -> waiters, plus a min-heap of their deadlines.
 */
#include "config.h"
#include "zq_broker.h"
#include "zq_broker_int.h"
#include "zq.h"
#include "zq_arena.h"
#include "zq_auth.h"
#include "zq_jscan.h"
#include "zq_log.h"
#include "zq_proto.h"
#include "zq_sb.h"
#include "zq_submit.h"
#include "zq_time.h"
#include "zq_upstate.h"
#include "zq_util.h"
#include "zq_zpoll.h"
#include "zq_uuid.h"

#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <zmq.h>

#define S_ENDPOINT_MAX 512
#define S_MAX_WAIT 1.0          /* seconds: longest poll, for housekeeping */
#define S_SNDHWM 1000000        /* messages: replies may burst (100k pipelined GETs) */
#define S_RCVHWM 100000         /* messages */
#define S_DISPATCH_HWM 100000   /* messages: credits bound what really waits there */
#define S_RETRY_KEEP 100000     /* upstream messages kept across failed commits */
#define S_LIST_MAX 10000        /* entries in one QUERY / SCHEDULED / REVOKE */
#define S_SCHED_MIN 64          /* ETA tasks per queue in memory, at least */
#define S_RATE_SLOTS 64         /* peers tracked for rate-limited logs */
#define S_REPLIES_MAX (1 << 20) /* bytes: a REPLIES is closed before it passes this */
#define S_HACK_MAX 100000       /* held acknowledgements at most; beyond, they go at once */
#define S_HACK_TOMB ((size_t)-1)
#define S_PUSH_MAX 100000       /* result subscriptions (SUBMIT "get") parked at most */
#define S_WINDOW_TIME 0.02      /* s of work an adaptive credit window holds */
#define S_WINDOW_FLOOR 0.00005  /* s: shorter runtimes count as this (per-task overhead) */
#define S_WINDOW_MAX 500        /* tasks: the widest adaptive window */
#define S_INTERNAL "EINTERNAL"  /* wire error: the broker failed on its own (docs §7) */
/* seconds a turn's writes may wait for the next commit when nothing depends on them yet
 * (state changes nobody waits for: no reply, no parked GET, nothing to dispatch): fewer
 * commits per task; a crash in that window loses only what the worker's last STATEs
 * said, as a crash with them still in the socket would */
#define S_COMMIT_DELAY 0.02

/* seconds a BYE waits for the worker's last upstream batches (s_bye_drain) */
#define S_BYE_WAIT 0.5


/* A JSON number: integers without a fraction (exact up to 2^53), others as %.17g. Not
 * zq_sb_json_num (1e15 limit, shortest form): kept so the broker's bytes do not change. */
static void s_jnum(zq_sb_t *b, double v)
{
    if (!isfinite(v))
        zq_sb_putn(b, "null", 4);
    else if (v == floor(v) && v >= 0 && v < 9007199254740992.0)
        zq_sb_put_u64(b, (uint64_t)v);
    else if (v == floor(v) && fabs(v) < 9007199254740992.0)
        zq_sb_printf(b, "%.0f", v);
    else
        zq_sb_printf(b, "%.17g", v);
}

/* ---------------------------------------------------------------------------------------
 * Intrusive string-keyed hash map (chaining). Nodes are embedded in their owners; the key
 * is borrowed from the owner.
 */
typedef struct s_hnode {
    struct s_hnode *next;
    uint64_t hash;
    const char *key;
} s_hnode_t;

typedef struct {
    s_hnode_t **b;
    size_t nb, n;
} s_map_t;

static s_hnode_t *s_map_get(const s_map_t *m, const char *key)
{
    if (!m->n)
        return NULL;
    uint64_t h = zq_hash_str(key);
    for (s_hnode_t *e = m->b[h & (m->nb - 1)]; e; e = e->next)
        if (e->hash == h && !strcmp(e->key, key))
            return e;
    return NULL;
}

/* Insert node (key already set). The caller checked that the key is absent. */
static int s_map_put(s_map_t *m, s_hnode_t *node)
{
    if (2 * (m->n + 1) > m->nb) { /* load <= 0.5: short chains, each hop a cache miss */
        size_t nb = m->nb ? m->nb * 2 : 64;
        s_hnode_t **b = calloc(nb, sizeof *b);
        if (!b)
            return ZQ_ENOMEM;
        for (size_t i = 0; i < m->nb; i++)
            for (s_hnode_t *e = m->b[i], *next; e; e = next) {
                next = e->next;
                e->next = b[e->hash & (nb - 1)];
                b[e->hash & (nb - 1)] = e;
            }
        free(m->b);
        m->b = b;
        m->nb = nb;
    }
    node->hash = zq_hash_str(node->key);
    s_hnode_t **slot = &m->b[node->hash & (m->nb - 1)];
    node->next = *slot;
    *slot = node;
    m->n++;
    return ZQ_OK;
}

static void s_map_del(s_map_t *m, s_hnode_t *node)
{
    if (!m->nb)
        return;
    for (s_hnode_t **pp = &m->b[node->hash & (m->nb - 1)]; *pp; pp = &(*pp)->next)
        if (*pp == node) {
            *pp = node->next;
            m->n--;
            return;
        }
}

/* Call fn on every node; fn may delete the node it is given. */
static void s_map_each(s_map_t *m, void (*fn)(void *arg, s_hnode_t *node), void *arg)
{
    for (size_t i = 0; i < m->nb; i++)
        for (s_hnode_t *e = m->b[i], *next; e; e = next) {
            next = e->next;
            fn(arg, e);
        }
}

/* ---------------------------------------------------------------------------------------
 * Tasks in memory: one allocation holds the struct, the id and the message text.
 */
typedef struct s_queue s_queue_t;
typedef struct s_worker s_worker_t;

typedef struct {
    int64_t rid;
    double eta;      /* 0 = none */
    double expires;  /* 0 = none */
    int redelivered; /* handed out before: TASK says so */
    s_queue_t *q;
    char *id;
    char *msg; /* the task message as stored (JSON object text) */
    size_t msglen;
    char data[];
} s_task_t;

static s_task_t *s_task_new(const zq_store_row_t *row, s_queue_t *q)
{
    size_t idlen = strlen(row->id);
    s_task_t *t = malloc(sizeof *t + idlen + 1 + row->msglen + 1);
    if (!t)
        return NULL;
    t->rid = row->rid;
    t->eta = row->eta;
    t->expires = row->expires;
    t->redelivered = 0;
    t->q = q;
    t->id = t->data;
    memcpy(t->id, row->id, idlen + 1);
    t->msg = t->data + idlen + 1;
    memcpy(t->msg, row->msg, row->msglen);
    t->msg[row->msglen] = '\0';
    t->msglen = row->msglen;
    return t;
}

/* (eta, rid) order of the ETA heaps and of the store's scheduled index. */
static int s_key_lt(double eta_a, int64_t rid_a, double eta_b, int64_t rid_b)
{
    return eta_a < eta_b || (eta_a == eta_b && rid_a < rid_b);
}

/* Ring deque of tasks (a ready FIFO; returned tasks go back to its head). */
typedef struct {
    s_task_t **v;
    size_t cap, head, n;
} s_deque_t;

static int s_deque_grow(s_deque_t *d)
{
    size_t nc = d->cap ? d->cap * 2 : 64;
    s_task_t **v = malloc(nc * sizeof *v);
    if (!v)
        return ZQ_ENOMEM;
    for (size_t i = 0; i < d->n; i++)
        v[i] = d->v[(d->head + i) % d->cap];
    free(d->v);
    d->v = v;
    d->cap = nc;
    d->head = 0;
    return ZQ_OK;
}

static int s_deque_push_tail(s_deque_t *d, s_task_t *t)
{
    if (d->n == d->cap && s_deque_grow(d) != ZQ_OK)
        return ZQ_ENOMEM;
    d->v[(d->head + d->n) % d->cap] = t;
    d->n++;
    return ZQ_OK;
}

static int s_deque_push_head(s_deque_t *d, s_task_t *t)
{
    if (d->n == d->cap && s_deque_grow(d) != ZQ_OK)
        return ZQ_ENOMEM;
    d->head = (d->head + d->cap - 1) % d->cap;
    d->v[d->head] = t;
    d->n++;
    return ZQ_OK;
}

static s_task_t *s_deque_at(const s_deque_t *d, size_t i)
{
    return d->v[(d->head + i) % d->cap];
}

static s_task_t *s_deque_pop(s_deque_t *d)
{
    if (!d->n)
        return NULL;
    s_task_t *t = d->v[d->head];
    d->head = (d->head + 1) % d->cap;
    d->n--;
    return t;
}

/* Remove entry i (rare: revoke, claim); keeps the order. */
static s_task_t *s_deque_remove(s_deque_t *d, size_t i)
{
    s_task_t *t = s_deque_at(d, i);
    for (size_t k = i; k + 1 < d->n; k++)
        d->v[(d->head + k) % d->cap] = d->v[(d->head + k + 1) % d->cap];
    d->n--;
    return t;
}

static void s_deque_clear(s_deque_t *d)
{
    while (d->n)
        free(s_deque_pop(d));
}

/* Binary min-heap of tasks by (eta, rid). */
typedef struct {
    s_task_t **v;
    size_t n, cap;
} s_heap_t;

static int s_heap_lt(const s_task_t *a, const s_task_t *b)
{
    return s_key_lt(a->eta, a->rid, b->eta, b->rid);
}

static void s_heap_up(s_heap_t *h, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!s_heap_lt(h->v[i], h->v[p]))
            break;
        s_task_t *tmp = h->v[i];
        h->v[i] = h->v[p];
        h->v[p] = tmp;
        i = p;
    }
}

static void s_heap_down(s_heap_t *h, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n && s_heap_lt(h->v[l], h->v[m]))
            m = l;
        if (r < h->n && s_heap_lt(h->v[r], h->v[m]))
            m = r;
        if (m == i)
            break;
        s_task_t *tmp = h->v[i];
        h->v[i] = h->v[m];
        h->v[m] = tmp;
        i = m;
    }
}

static int s_heap_push(s_heap_t *h, s_task_t *t)
{
    if (h->n == h->cap) {
        size_t nc = h->cap ? h->cap * 2 : 64;
        s_task_t **v = realloc(h->v, nc * sizeof *v);
        if (!v)
            return ZQ_ENOMEM;
        h->v = v;
        h->cap = nc;
    }
    h->v[h->n++] = t;
    s_heap_up(h, h->n - 1);
    return ZQ_OK;
}

static s_task_t *s_heap_remove(s_heap_t *h, size_t i)
{
    s_task_t *t = h->v[i];
    h->v[i] = h->v[--h->n];
    if (i < h->n) {
        s_heap_down(h, i);
        s_heap_up(h, i);
    }
    return t;
}

static void s_heap_clear(s_heap_t *h)
{
    for (size_t i = 0; i < h->n; i++)
        free(h->v[i]);
    h->n = 0;
}

static int s_task_cmp(const void *a, const void *b)
{
    const s_task_t *x = *(s_task_t *const *)a, *y = *(s_task_t *const *)b;
    return s_heap_lt(x, y) ? -1 : s_heap_lt(y, x) ? 1 : 0;
}

/* ---------------------------------------------------------------------------------------
 * Broker state
 */
struct s_queue {
    s_hnode_t node; /* key = name */
    char *name;
    s_deque_t ready;
    int64_t ready_cursor; /* last rid placed in memory; later ready ones may be on disk */
    int ready_spilled;    /* 1: ready tasks with rid > ready_cursor may be on disk only */
    s_heap_t sched;
    double sched_eta; /* cursor: (eta, rid) of the last ETA task read from disk */
    int64_t sched_rid;
    int sched_spilled;    /* 1: ETA tasks with a key above the cursor may be on disk only */
    long n_ready, n_sched; /* waiting, in memory or on disk, not held by a worker */
    long n_reserved;       /* held by workers */
    int consumers;         /* live workers consuming it */
};

/* A task a worker holds. */
typedef struct s_held {
    s_hnode_t node; /* key = id */
    s_worker_t *w;
    struct s_held *prev, *next; /* the worker's list */
    s_task_t *task; /* NULL when claimed from HELLO "holding" (read back from the store) */
    s_queue_t *q;
    int is_eta;    /* counted against the ETA cap, not the credits */
    int received;  /* RECEIVED or STARTED seen: the store no longer says PENDING */
    int started;
    int acks_late;
    char id[];
} s_held_t;

struct s_worker {
    s_worker_t *next;
    char *name;
    uint64_t seq_max; /* the highest upstream BATCH seq of it applied (BYE "last_seq") */
    cJSON *info; /* the HELLO body (worker object, docs §10) */
    long pid;
    char *hostname;
    s_queue_t **queues;
    int nqueues;
    int concurrency, prefetch;
    int prefetch_adaptive; /* widen the window for short tasks (docs §8 Credits) */
    int batch_tasks;       /* it takes TASKS: the tasks of a dispatch pass in one message */
    zq_sb_t batch;         /* the TASKS body being collected: "[task,task" (no ']' yet) */
    int nbatch;            /* tasks in it: the first nbatch of hl */
    double runtime_avg;    /* moving average of its tasks' runtimes (s); < 0: none yet */
    uint64_t *acks;        /* upstream batches applied this turn: ACKed after the commit */
    size_t nacks, acks_cap;
    void *push;
    char endpoint[S_ENDPOINT_MAX];
    int blocked;         /* the last send found no connected peer: poll for POLLOUT */
    int retiring;        /* it sent RETURN (it shuts down): hand it nothing more */
    int held, held_eta;  /* counts of the held list, non-ETA and ETA */
    s_held_t *hl;
    double last_seen;    /* monotonic */
    double hb_wall;      /* wall time of the last HEARTBEAT (or HELLO) */
    long processed, active;
};

/* A parked GET. */
typedef struct s_waiter {
    struct s_waiter *next;
    struct s_waitlist *list;
    double deadline; /* monotonic; INFINITY = none */
    size_t hidx;     /* index in the deadline heap; SIZE_MAX if none */
    int has_req;
    double req;
    int coalesce;    /* the request allowed its answer inside a REPLIES */
    size_t idlen;
    unsigned char identity[];
} s_waiter_t;

typedef struct s_waitlist {
    s_hnode_t node; /* key = id */
    s_waiter_t *first;
    char id[];
} s_waitlist_t;

/* A task found in flight at startup, waiting for its worker to claim it. */
typedef struct {
    s_hnode_t node; /* key = task->id */
    s_task_t *task;
    int started, acks_late;
    double deadline; /* monotonic */
} s_orphan_t;

/* The STATEs of one task received during a turn (bodies borrowed from the turn's upkeep). */
typedef struct s_pend {
    s_hnode_t node; /* key = id */
    struct s_pend *next;
    const zq_upstate_t *received, *started; /* RECEIVED / STARTED, if any (turn arena) */
    const zq_upstate_t *final;              /* the furthest state: what the store gets */
    int unheld;                      /* final came for a task no worker held */
    int64_t rid;                     /* its row, when the holder knew it (0: look it up) */
    s_task_t *task;                  /* owned: somebody waits for this end and nothing was
                                      * applied before it: the record is composed from the
                                      * task's message (zq_store_record_compose) */
    char id[];
} s_pend_t;

/* A task that ended this turn while GETs wait for it, with its record when it could be
 * composed without reading the row (else it is read after the commit). */
typedef struct {
    char *id;
    char *rec;
    size_t len;
} s_note_t;

/* A message of a BATCH read as text: spans of the batch; a STATE already read. */
typedef struct {
    const char *cmd, *body;
    size_t cmdlen, bodylen;
    zq_upstate_t *state; /* in the turn's arena; NULL: not a STATE, or left to cJSON */
    int oom;             /* a STATE that could not be read for lack of memory */
} s_upmsg_t;

/* A result subscription (SUBMIT "get") waiting for the commit of its task. */
typedef struct {
    s_waiter_t *w;
    char *id;
    int check; /* the task may have ended already (a duplicate SUBMIT) */
} s_push_t;

/* Buffered outgoing message (sent after the commit). Offsets into the outbox arena. */
enum { OB_REPLY, OB_EVENT, OB_BROADCAST, OB_SENT };
typedef struct {
    int kind;
    int durable; /* REPLY promising a commit: becomes ESTORE when the commit fails */
    int has_req;
    double req;
    int coalesce;           /* REPLY that may travel inside a REPLIES */
    int hold;               /* acknowledgement of a SUBMIT that subscribed: may wait for the
                             * task's record (s_hold_ack) */
    size_t id_off, idlen;   /* identity (REPLY) or topic (EVENT) */
    size_t text_off, len;   /* JSON body */
} s_out_t;

/* Event types, for the subscription mask. */
enum {
    EV_TASK_SENT,
    EV_TASK_RECEIVED,
    EV_TASK_STARTED,
    EV_TASK_SUCCEEDED,
    EV_TASK_FAILED,
    EV_TASK_RETRIED,
    EV_TASK_REVOKED,
    EV_WORKER_ONLINE,
    EV_WORKER_HEARTBEAT,
    EV_WORKER_OFFLINE,
    EV_COUNT
};
static const char *const s_ev_names[EV_COUNT] = {
    "task-sent",      "task-received", "task-started",    "task-succeeded",   "task-failed",
    "task-retried",   "task-revoked",  "worker-online",   "worker-heartbeat", "worker-offline"};

typedef struct {
    uint64_t hash;
    double last;
} s_rate_t;

/* The replies to one peer collected while the outbox and parked GETs are answered, sent as
 * one REPLIES (docs/protocol.md §7 "Coalesced replies"). */
typedef struct {
    double req;
    size_t off, len; /* body in the group's text */
} s_ritem_t;

typedef struct {
    unsigned char identity[256];
    size_t idlen;
    zq_sb_t text;     /* the elements back to back, each "req len\n" then its body */
    s_ritem_t *items;
    size_t n, cap;
    int level;        /* the lowest "coalesce" of its elements: 2 = packed form allowed */
} s_rgroup_t;

/* An acknowledgement held after its commit (docs/protocol.md §7 "Held acknowledgements"):
 * it leaves with its task's record (req + 1 to the same peer) or at its deadline. */
typedef struct {
    double deadline;  /* s_mono() */
    double req;
    int gone;         /* sent with its record */
    int coalesce;     /* the SUBMIT's "coalesce" level */
    size_t idlen, len;
    char *buf;        /* identity, then the body */
} s_hack_t;

struct zq_broker {
    /* configuration */
    char *frontend_ep, *upstream_ep, *events_ep, *data_dir;
    zq_store_sync_t sync;
    double lookahead, heartbeat;
    long max_ready;
    long max_sched; /* ETA tasks per queue in memory */
    char broker_id[40];
    char started_iso[40];
    /* sockets */
    void *ctx;
    void *frontend, *upstream, *events;
    int stop_pipe[2];
    volatile sig_atomic_t stop;
    unsigned dispatch_seq; /* ipc dispatch endpoints: <frontend>.d<N> */
    /* CurveZMQ (docs/protocol.md §13): curve.secret_key[0] == 0 when off */
    zq_curve_pair_t curve;
    zq_auth_t *auth;       /* the ZAP handler thread, NULL when CURVE is off */
    /* store */
    zq_store_t *store;
    long n_revoked; /* size of the durable revoked set (skip lookups while 0) */
    /* memory state */
    s_map_t queues;
    s_map_t held;
    s_map_t waits;
    s_map_t orphans;
    s_worker_t *workers;
    int nworkers;
    s_waiter_t **wheap; /* GET deadlines */
    size_t wheap_n, wheap_cap;
    size_t nwaiters; /* parked GETs */
    s_task_t **expired; /* found expired by dispatch, to end REVOKED in the next turn */
    size_t nexpired, expired_cap;
    double orphan_deadline; /* monotonic: the earliest orphan grace end */
    double dispatch_from;   /* monotonic: after a restart, nothing is handed out before */
    double retry_after;     /* monotonic: when to apply the kept upstream messages again */
    /* the current turn */
    int in_batch;
    int batch_failed;          /* a write failed and SQLite dropped the transaction */
    int up_settled;            /* the upstream PULL was drained to EAGAIN (zq_zpoll.h) */
    int need_commit;           /* the turn promised durability or revealed a state change */
    int force_commit;          /* commit even if nothing needs it (shutdown) */
    double tx_since;           /* monotonic: the open transaction was left open since then */
    long batch_submitted;
    zq_msg_t *upkeep;          /* upstream messages of this turn (kept until the commit) */
    size_t nupkeep, upkeep_cap;
    zq_msg_t *retry;           /* upstream messages of a failed turn, applied again */
    size_t nretry, retry_cap;
    s_map_t pend;              /* id -> STATEs of the turn, written at the end of the drain */
    s_pend_t *pend_first, *pend_last;
    zq_arena_t turn_arena;     /* the STATEs read this turn (zq_upstate), until written */
    s_upmsg_t *upmsgs;         /* the messages of the BATCH being read as text */
    size_t nupmsgs, upmsgs_cap;
    int up_unapplied;          /* a message of the BATCH being applied was not, for lack of
                                * memory: the batch is left unconfirmed, to come again */
    s_note_t *notify;          /* tasks that ended this turn and have parked GETs */
    size_t nnotify, notify_cap;
    int recheck_waits;         /* a purge ended tasks we cannot name: look at every GET */
    s_out_t *out;
    size_t nout, out_cap;
    s_rgroup_t *rg;            /* coalesced replies being collected, one group per peer */
    size_t nrg, rg_cap;
    size_t *rg_hash;           /* open addressing over rg: index + 1, 0 = empty */
    size_t rg_hcap;
    double ack_hold;           /* seconds an acknowledgement may wait for its record */
    s_hack_t *hacks;           /* held acknowledgements, a ring in deadline order */
    size_t hack_head, nhack, hack_cap;
    size_t *hack_hash;         /* (peer, req) -> ring position + 1; S_HACK_TOMB: deleted */
    size_t hack_hcap, hack_used; /* slots used, tombstones included */
    s_push_t *pushes;          /* result subscriptions of SUBMITs of this turn, parked after
                                * the commit */
    size_t npush, push_cap;
    zq_sb_t arena;             /* bytes of the outbox */
    zq_sb_t scratch;           /* TASK messages, records */
    zq_sb_t submit_text;       /* the task message of a SUBMIT read without a tree */
    int fail_dispatch;         /* test seam: dispatch sends left to fail as if full */
    int fail_commits;          /* test seam: turn commits left to fail */
    /* events */
    char **subs;               /* XPUB subscriptions (topic prefixes) */
    size_t *sublens;
    size_t nsubs;
    unsigned ev_mask;          /* bit per event type somebody subscribed to */
    /* logging and stats */
    s_rate_t rate[S_RATE_SLOTS];
    double last_store_error;
    zq_broker_stats_t stats;
    zq_broker_stats_t committed; /* stats as of the last commit: a failed one goes back */
};

static double s_mono(void)
{
    return zq_mono();
}

/* 1 when a log about this peer (or source) may be written now: at most once a second. */
static int s_rate_ok(zq_broker_t *self, const void *peer, size_t len)
{
    uint64_t h = zq_hash(peer, len);
    s_rate_t *r = &self->rate[h % S_RATE_SLOTS];
    double now = s_mono();
    if (r->hash == h && now - r->last < 1.0)
        return 0;
    r->hash = h;
    r->last = now;
    return 1;
}

/* A printable name for a ROUTER identity (hex), for logs. */
static const char *s_peer_name(const zq_msg_t *m, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < m->identity_len && n + 3 < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%02x", m->identity[i]);
    if (!n)
        snprintf(buf, len, "?");
    return buf;
}

/* ---------------------------------------------------------------------------------------
 * Queues
 */
static s_queue_t *s_queue_find(zq_broker_t *self, const char *name)
{
    s_hnode_t *n = s_map_get(&self->queues, name);
    return n ? (s_queue_t *)n : NULL;
}

static s_queue_t *s_queue_get(zq_broker_t *self, const char *name)
{
    s_queue_t *q = s_queue_find(self, name);
    if (q)
        return q;
    q = calloc(1, sizeof *q);
    if (!q || !(q->name = strdup(name))) {
        free(q);
        return NULL;
    }
    q->node.key = q->name;
    /* unknown until read: the first refill finds out whether the store has some */
    q->ready_spilled = 1;
    q->sched_spilled = 1;
    q->sched_eta = -INFINITY;
    if (s_map_put(&self->queues, &q->node) != ZQ_OK) {
        free(q->name);
        free(q);
        return NULL;
    }
    return q;
}

static void s_queue_free(s_queue_t *q)
{
    s_deque_clear(&q->ready);
    free(q->ready.v);
    s_heap_clear(&q->sched);
    free(q->sched.v);
    free(q->name);
    free(q);
}

/* Forget every waiting task held in memory (the store keeps them). */
static void s_queue_forget(s_queue_t *q)
{
    s_deque_clear(&q->ready);
    s_heap_clear(&q->sched);
    q->ready_cursor = 0;
    q->ready_spilled = 1;
    q->sched_eta = -INFINITY;
    q->sched_rid = 0;
    q->sched_spilled = 1;
}

/* Is this id held by a worker or waiting to be claimed? Then disk reads skip it. */
static int s_is_out(zq_broker_t *self, const char *id)
{
    return s_map_get(&self->held, id) || s_map_get(&self->orphans, id);
}

typedef struct {
    zq_broker_t *self;
    s_queue_t *q;
    int sched;
    int oom;
} s_load_t;

static int s_load_row(void *arg, const zq_store_row_t *row)
{
    s_load_t *l = arg;
    if (l->sched) {
        l->q->sched_eta = row->eta;
        l->q->sched_rid = row->rid;
    } else {
        l->q->ready_cursor = row->rid;
    }
    if (s_is_out(l->self, row->id))
        return 0;
    s_task_t *t = s_task_new(row, l->q);
    int rc = t ? (l->sched ? s_heap_push(&l->q->sched, t) : s_deque_push_tail(&l->q->ready, t))
               : ZQ_ENOMEM;
    if (rc != ZQ_OK) {
        free(t);
        l->oom = 1;
        return 1;
    }
    return 0;
}

/* Read ready tasks back from disk once the FIFO has drained to half. */
static void s_refill_ready(zq_broker_t *self, s_queue_t *q)
{
    if (!q->ready_spilled || q->ready.n >= (size_t)(self->max_ready + 1) / 2)
        return;
    int want = (int)(self->max_ready - (long)q->ready.n);
    s_load_t l = {self, q, 0, 0};
    int n = zq_store_load_ready(self->store, q->name, q->ready_cursor, want, s_load_row, &l);
    if (n < 0) {
        ZQ_ERROR("broker: cannot read queue %s from the store: %s", q->name,
                 zq_store_errmsg(self->store));
        return;
    }
    if (!l.oom && n < want)
        q->ready_spilled = 0;
}

/* Same for the ETA heap. */
static void s_refill_sched(zq_broker_t *self, s_queue_t *q)
{
    if (!q->sched_spilled || q->sched.n >= (size_t)(self->max_sched + 1) / 2)
        return;
    int want = (int)(self->max_sched - (long)q->sched.n);
    s_load_t l = {self, q, 1, 0};
    int n = zq_store_load_scheduled(self->store, q->name, q->sched_eta, q->sched_rid, INFINITY,
                                    want, s_load_row, &l);
    if (n < 0) {
        ZQ_ERROR("broker: cannot read ETA tasks of %s from the store: %s", q->name,
                 zq_store_errmsg(self->store));
        return;
    }
    if (!l.oom && n < want)
        q->sched_spilled = 0;
}

/* The heap grew past twice its cap: keep the earliest max_sched, the rest stays on disk. */
static void s_trim_sched(zq_broker_t *self, s_queue_t *q)
{
    if (q->sched.n <= (size_t)self->max_sched * 2)
        return;
    qsort(q->sched.v, q->sched.n, sizeof *q->sched.v, s_task_cmp); /* sorted = a heap */
    size_t keep = (size_t)self->max_sched;
    for (size_t i = keep; i < q->sched.n; i++)
        free(q->sched.v[i]);
    q->sched.n = keep;
    q->sched_eta = q->sched.v[keep - 1]->eta;
    q->sched_rid = q->sched.v[keep - 1]->rid;
    q->sched_spilled = 1;
}

/* Place a waiting task in memory, or leave it on disk when it is beyond a cursor.
 * at_head: a task that was handed out and came back goes first. Takes ownership of t. */
static void s_place(zq_broker_t *self, s_task_t *t, int at_head)
{
    s_queue_t *q = t->q;
    int rc = ZQ_OK;
    if (t->eta > 0) {
        if (q->sched_spilled && s_key_lt(q->sched_eta, q->sched_rid, t->eta, t->rid)) {
            free(t); /* on disk; read back in order */
            return;
        }
        rc = s_heap_push(&q->sched, t);
        if (rc == ZQ_OK)
            s_trim_sched(self, q);
    } else if (at_head) {
        if (q->ready_spilled && t->rid > q->ready_cursor) {
            free(t);
            return;
        }
        rc = s_deque_push_head(&q->ready, t);
    } else {
        if (q->ready_spilled || q->ready.n >= (size_t)self->max_ready) {
            q->ready_spilled = 1;
            free(t);
            return;
        }
        rc = s_deque_push_tail(&q->ready, t);
        if (rc == ZQ_OK)
            q->ready_cursor = t->rid;
    }
    if (rc != ZQ_OK) {
        /* out of memory: the store has it; the next restart reads it back */
        ZQ_ERROR("broker: out of memory queueing task %s", t->id);
        if (t->eta > 0)
            q->sched_spilled = 1;
        else
            q->ready_spilled = 1;
        free(t);
    }
}

/* Take a queued task out of memory by rid (revoke, claim). Caller owns the result. */
static s_task_t *s_unplace(s_queue_t *q, int64_t rid, double eta)
{
    if (eta > 0) {
        for (size_t i = 0; i < q->sched.n; i++)
            if (q->sched.v[i]->rid == rid)
                return s_heap_remove(&q->sched, i);
    } else {
        for (size_t i = 0; i < q->ready.n; i++)
            if (s_deque_at(&q->ready, i)->rid == rid)
                return s_deque_remove(&q->ready, i);
    }
    return NULL;
}

/* ---------------------------------------------------------------------------------------
 * Outbox: replies, events and broadcasts of the turn, sent after the commit.
 */
static s_out_t *s_out_new(zq_broker_t *self, int kind)
{
    if (self->nout == self->out_cap) {
        size_t nc = self->out_cap ? self->out_cap * 2 : 256;
        s_out_t *v = realloc(self->out, nc * sizeof *v);
        if (!v)
            return NULL;
        self->out = v;
        self->out_cap = nc;
    }
    s_out_t *o = &self->out[self->nout++];
    memset(o, 0, sizeof *o);
    o->kind = kind;
    return o;
}

/* How the request m allows its answer to travel (docs/protocol.md §7 "Coalesced replies"):
 * 0 alone in a REPLY, 1 inside a REPLIES of frame pairs ("coalesce": true), 2 also inside a
 * packed REPLIES ("coalesce": 2, or any larger integer: the forms a later peer may add). */
static int s_coalesce(const zq_msg_t *m)
{
    const cJSON *v = m->body ? cJSON_GetObjectItemCaseSensitive(m->body, "coalesce") : NULL;
    if (cJSON_IsTrue(v))
        return 1;
    return cJSON_IsNumber(v) && v->valuedouble >= 2 && v->valuedouble < 1e9 &&
                   v->valuedouble == floor(v->valuedouble)
               ? 2
               : 0;
}

/* ---------------------------------------------------------------------------------------
 * Coalesced replies: every REPLY of one flush to a peer that allows it travels in one
 * REPLIES message (one send here, one receive there, instead of one per task).
 */
static void s_send_reply_now(zq_broker_t *self, const void *ident, size_t idlen, const char *cmd,
                             const char *text, size_t len)
{
    if (zq_msg_send_raw(self->frontend, ident, idlen, cmd, text, len, ZMQ_DONTWAIT) != ZQ_OK) {
        int e = zmq_errno();
        if (e != EHOSTUNREACH) /* else the peer left: nobody to answer */
            ZQ_WARN("broker: reply not sent: %s", zmq_strerror(e));
    }
}

static void s_rgroup_send(zq_broker_t *self, s_rgroup_t *g)
{
    if (g->n == 0)
        return;
    zq_sb_t *b = &g->text;
    if (b->oom) {
        ZQ_ERROR("broker: out of memory building replies; %zu were not sent", g->n);
    } else if (g->n == 1) {
        s_send_reply_now(self, g->identity, g->idlen, ZQ_CMD_REPLY, b->buf + g->items[0].off,
                         g->items[0].len);
    } else if (zmq_send(self->frontend, g->identity, g->idlen, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0) {
        zmq_send(self->frontend, ZQ_PROTO_VERSION, strlen(ZQ_PROTO_VERSION),
                 ZMQ_SNDMORE | ZMQ_DONTWAIT);
        zmq_send(self->frontend, ZQ_CMD_REPLIES, strlen(ZQ_CMD_REPLIES),
                 ZMQ_SNDMORE | ZMQ_DONTWAIT);
        /* packed: the text as it is, one frame (a frame costs an allocation and a queue
         * slot on both sides); else [req][body] per reply. Either way the peer finds each
         * req without parsing the body, and can keep a record as text until it is wanted */
        if (g->level >= 2)
            zmq_send(self->frontend, b->buf, b->len, ZMQ_DONTWAIT);
        for (size_t i = 0; g->level < 2 && i < g->n; i++) {
            char req[32];
            int rl = snprintf(req, sizeof req, "%.0f", g->items[i].req);
            zmq_send(self->frontend, req, (size_t)rl, ZMQ_SNDMORE | ZMQ_DONTWAIT);
            zmq_send(self->frontend, b->buf + g->items[i].off, g->items[i].len,
                     (i + 1 < g->n ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT);
        }
    } else if (zmq_errno() != EHOSTUNREACH) {
        ZQ_WARN("broker: replies not sent: %s", zmq_strerror(zmq_errno()));
    }
    b->len = 0;
    b->oom = 0;
    g->n = 0;
}

static s_rgroup_t *s_rgroup_find(zq_broker_t *self, const void *ident, size_t idlen)
{
    if (idlen > sizeof self->rg[0].identity)
        return NULL;
    if (2 * (self->nrg + 1) > self->rg_hcap) {
        size_t nc = self->rg_hcap ? self->rg_hcap * 2 : 64;
        size_t *h = calloc(nc, sizeof *h);
        if (!h)
            return NULL;
        for (size_t i = 0; i < self->nrg; i++) {
            size_t k = (size_t)zq_hash(self->rg[i].identity, self->rg[i].idlen) & (nc - 1);
            while (h[k])
                k = (k + 1) & (nc - 1);
            h[k] = i + 1;
        }
        free(self->rg_hash);
        self->rg_hash = h;
        self->rg_hcap = nc;
    }
    size_t k = (size_t)zq_hash(ident, idlen) & (self->rg_hcap - 1);
    for (; self->rg_hash[k]; k = (k + 1) & (self->rg_hcap - 1)) {
        s_rgroup_t *g = &self->rg[self->rg_hash[k] - 1];
        if (g->idlen == idlen && memcmp(g->identity, ident, idlen) == 0)
            return g;
    }
    if (self->nrg == self->rg_cap) {
        size_t nc = self->rg_cap ? self->rg_cap * 2 : 16;
        s_rgroup_t *v = realloc(self->rg, nc * sizeof *v);
        if (!v)
            return NULL;
        memset(v + self->rg_cap, 0, (nc - self->rg_cap) * sizeof *v);
        self->rg = v;
        self->rg_cap = nc;
    }
    s_rgroup_t *g = &self->rg[self->nrg];
    memcpy(g->identity, ident, idlen);
    g->idlen = idlen;
    g->n = 0;
    g->text.len = 0;
    g->text.oom = 0;
    self->rg_hash[k] = ++self->nrg;
    return g;
}

/* ---------------------------------------------------------------------------------------
 * Held acknowledgements: the answer to a SUBMIT that subscribed to its record waits up to
 * ack_hold after the commit, so that a short task's acknowledgement and record reach the
 * client in one REPLIES (one message and one wake-up less per task for both sides).
 */
static size_t s_hack_key(const void *ident, size_t idlen, double req)
{
    /* the bytes of req, hashed: a req may be any number, -1 or 1e300 too (converting those
     * to an integer is undefined; found by the fuzzer), and a small integer's low bits are
     * all zero in a double while the table index is the low bits */
    return (size_t)(zq_hash(ident, idlen) ^ zq_hash(&req, sizeof req));
}

static s_hack_t *s_hack_at(zq_broker_t *self, size_t pos)
{
    return &self->hacks[pos % self->hack_cap];
}

/* Rebuild the hash over the live entries (after growth, or too many tombstones). */
static int s_hack_rehash(zq_broker_t *self, size_t hcap)
{
    size_t *h = calloc(hcap, sizeof *h);
    if (!h)
        return ZQ_ENOMEM;
    size_t used = 0;
    for (size_t i = 0; i < self->nhack; i++) {
        size_t pos = self->hack_head + i;
        s_hack_t *a = s_hack_at(self, pos);
        if (a->gone)
            continue;
        size_t k = s_hack_key(a->buf, a->idlen, a->req) & (hcap - 1);
        while (h[k])
            k = (k + 1) & (hcap - 1);
        h[k] = pos + 1;
        used++;
    }
    free(self->hack_hash);
    self->hack_hash = h;
    self->hack_hcap = hcap;
    self->hack_used = used;
    return ZQ_OK;
}

/* The hash slot of the live entry for (ident, req), or NULL. */
static size_t *s_hack_find(zq_broker_t *self, const void *ident, size_t idlen, double req)
{
    if (!self->hack_hcap)
        return NULL;
    size_t k = s_hack_key(ident, idlen, req) & (self->hack_hcap - 1);
    for (; self->hack_hash[k]; k = (k + 1) & (self->hack_hcap - 1)) {
        if (self->hack_hash[k] == S_HACK_TOMB)
            continue;
        s_hack_t *a = s_hack_at(self, self->hack_hash[k] - 1);
        if (a->req == req && a->idlen == idlen && memcmp(a->buf, ident, idlen) == 0)
            return &self->hack_hash[k];
    }
    return NULL;
}

/* Hold an acknowledgement; 0 when it cannot be held (the caller sends it now). */
static int s_hold_ack(zq_broker_t *self, const void *ident, size_t idlen, const char *text,
                      size_t len, double req, int coalesce)
{
    if (self->ack_hold <= 0 || self->nhack >= S_HACK_MAX)
        return 0;
    if (self->nhack == self->hack_cap) {
        size_t nc = self->hack_cap ? self->hack_cap * 2 : 64;
        s_hack_t *v = malloc(nc * sizeof *v);
        if (!v)
            return 0;
        /* unroll the ring; positions restart at 0 */
        for (size_t i = 0; i < self->nhack; i++)
            v[i] = *s_hack_at(self, self->hack_head + i);
        free(self->hacks);
        self->hacks = v;
        self->hack_cap = nc;
        self->hack_head = 0;
        if (s_hack_rehash(self, 2 * nc) != ZQ_OK) {
            /* the old hash names old positions: forget it (those acknowledgements then
             * leave at their deadline) and hold nothing more until a rehash succeeds */
            if (self->hack_hcap)
                memset(self->hack_hash, 0, self->hack_hcap * sizeof *self->hack_hash);
            self->hack_used = 0;
            return 0;
        }
    }
    if (2 * (self->hack_used + 1) > self->hack_hcap &&
        s_hack_rehash(self, self->hack_hcap ? self->hack_hcap : 128) != ZQ_OK)
        return 0;
    char *buf = malloc(idlen + len);
    if (!buf)
        return 0;
    memcpy(buf, ident, idlen);
    memcpy(buf + idlen, text, len);
    size_t pos = self->hack_head + self->nhack;
    s_hack_t *a = s_hack_at(self, pos);
    *a = (s_hack_t){s_mono() + self->ack_hold, req, 0, coalesce, idlen, len, buf};
    self->nhack++;
    size_t k = s_hack_key(ident, idlen, req) & (self->hack_hcap - 1);
    while (self->hack_hash[k] && self->hack_hash[k] != S_HACK_TOMB)
        k = (k + 1) & (self->hack_hcap - 1);
    if (!self->hack_hash[k])
        self->hack_used++;
    self->hack_hash[k] = pos + 1;
    return 1;
}

static void s_add_reply(zq_broker_t *self, const void *ident, size_t idlen, const char *text,
                        size_t len, int coalesce, int has_req, double req);
static void s_replies_flush(zq_broker_t *self);

/* Send the held acknowledgements whose deadline passed (all of them when force), oldest
 * first, and drop the ones that left with their records. */
static void s_release_acks(zq_broker_t *self, int force)
{
    double now = s_mono();
    int sent = 0;
    while (self->nhack) {
        s_hack_t *a = s_hack_at(self, self->hack_head);
        if (!a->gone && !force && a->deadline > now)
            break;
        if (!a->gone) {
            size_t *slot = s_hack_find(self, a->buf, a->idlen, a->req);
            if (slot)
                *slot = S_HACK_TOMB;
            s_add_reply(self, a->buf, a->idlen, a->buf + a->idlen, a->len, a->coalesce, 1,
                        a->req);
            sent = 1;
        }
        free(a->buf);
        self->hack_head++;
        self->nhack--;
    }
    if (!self->nhack) {
        self->hack_head = 0;
        if (self->hack_hcap && self->hack_used) {
            memset(self->hack_hash, 0, self->hack_hcap * sizeof *self->hack_hash);
            self->hack_used = 0;
        }
    }
    if (sent)
        s_replies_flush(self);
}

/* Seconds until the oldest held acknowledgement is due; INFINITY when none is held. */
static double s_hack_wait(zq_broker_t *self)
{
    for (size_t i = 0; i < self->nhack; i++) {
        s_hack_t *a = s_hack_at(self, self->hack_head + i);
        if (!a->gone)
            return a->deadline - s_mono();
    }
    return self->nhack ? 0 : INFINITY;
}

/* Send a REPLY body now, or (coalesce, and it answers req) add it to its peer's REPLIES of
 * this flush; a record for a subscription (req) takes its held acknowledgement (req - 1)
 * along, ahead of it. */
static void s_send_reply(zq_broker_t *self, const void *ident, size_t idlen, const char *text,
                         size_t len, int coalesce, int has_req, double req)
{
    if (self->nhack && coalesce && has_req) {
        size_t *slot = s_hack_find(self, ident, idlen, req - 1);
        if (slot) {
            s_hack_t *a = s_hack_at(self, *slot - 1);
            *slot = S_HACK_TOMB;
            a->gone = 1;
            s_add_reply(self, ident, idlen, a->buf + a->idlen, a->len, a->coalesce, 1, a->req);
        }
    }
    s_add_reply(self, ident, idlen, text, len, coalesce, has_req, req);
}

static void s_add_reply(zq_broker_t *self, const void *ident, size_t idlen, const char *text,
                        size_t len, int coalesce, int has_req, double req)
{
    s_rgroup_t *g = coalesce && has_req ? s_rgroup_find(self, ident, idlen) : NULL;
    if (g && g->n == g->cap) {
        size_t nc = g->cap ? g->cap * 2 : 64;
        s_ritem_t *v = realloc(g->items, nc * sizeof *v);
        if (v) {
            g->items = v;
            g->cap = nc;
        } else {
            g = NULL;
        }
    }
    if (!g) {
        s_send_reply_now(self, ident, idlen, ZQ_CMD_REPLY, text, len);
        return;
    }
    if (g->n && g->text.len + len > S_REPLIES_MAX) {
        s_rgroup_send(self, g);
    }
    g->level = g->n == 0 || coalesce < g->level ? coalesce : g->level;
    s_ritem_t *it = &g->items[g->n++];
    it->req = req;
    /* the decimal req as in the frame-pair form (a req that is no whole number, which
     * zq's clients never send, is rounded there too; out of range: 0, matching nothing) */
    zq_sb_put_u64(&g->text, req >= 0 && req < 9007199254740992.0 ? (uint64_t)llround(req) : 0);
    zq_sb_putc(&g->text, ' ');
    zq_sb_put_u64(&g->text, len);
    zq_sb_putc(&g->text, '\n');
    it->off = g->text.len;
    it->len = len;
    zq_sb_putn(&g->text, text, len);
}

/* Send every group collected since the last call. */
static void s_replies_flush(zq_broker_t *self)
{
    if (self->nrg == 0)
        return;
    for (size_t i = 0; i < self->nrg; i++)
        s_rgroup_send(self, &self->rg[i]);
    self->nrg = 0;
    if (self->rg_hash)
        memset(self->rg_hash, 0, self->rg_hcap * sizeof *self->rg_hash);
}

/* Who asked, and how the answer may travel: what a REPLY needs of its request. */
typedef struct {
    const unsigned char *ident;
    size_t idlen;
    int has_req;
    double req;
    int coalesce; /* s_coalesce */
} s_asker_t;

static s_asker_t s_asker(const zq_msg_t *m)
{
    s_asker_t a = {m->identity, m->identity_len, 0, 0, s_coalesce(m)};
    const cJSON *req = m->body ? cJSON_GetObjectItemCaseSensitive(m->body, "req") : NULL;
    if (cJSON_IsNumber(req)) {
        a.has_req = 1;
        a.req = req->valuedouble;
    }
    return a;
}

/* Start a REPLY to a: "{" is written; add members with s_member(), end with s_reply_end. */
static s_out_t *s_reply_begin_to(zq_broker_t *self, const s_asker_t *a, int durable)
{
    s_out_t *o = s_out_new(self, OB_REPLY);
    if (!o)
        return NULL;
    o->durable = durable;
    if (durable)
        self->need_commit = 1;
    o->has_req = a->has_req;
    o->req = a->req;
    o->coalesce = a->coalesce;
    o->id_off = self->arena.len;
    o->idlen = a->idlen;
    zq_sb_putn(&self->arena, (const char *)a->ident, a->idlen);
    o->text_off = self->arena.len;
    zq_sb_putn(&self->arena, "{", 1);
    return o;
}

/* The same for the request m. */
static s_out_t *s_reply_begin(zq_broker_t *self, const zq_msg_t *m, int durable)
{
    s_asker_t a = s_asker(m);
    return s_reply_begin_to(self, &a, durable);
}

/* Separator before the next member of the object being written. */
static void s_member(zq_sb_t *b, const char *key)
{
    if (b->len && b->buf[b->len - 1] != '{')
        zq_sb_putn(b, ",", 1);
    zq_sb_json_str(b, key);
    zq_sb_putn(b, ":", 1);
}

static void s_reply_end(zq_broker_t *self, s_out_t *o)
{
    zq_sb_t *b = &self->arena;
    if (o->has_req) {
        s_member(b, "req");
        s_jnum(b, o->req);
    }
    zq_sb_putn(b, "}", 1);
    o->len = b->len - o->text_off;
}

/* A REPLY whose body is a whole JSON object text (a record): req is spliced in. */
static void s_reply_object(zq_broker_t *self, const zq_msg_t *m, int durable, const char *text,
                           size_t len, int timed_out)
{
    s_out_t *o = s_reply_begin(self, m, durable);
    if (!o)
        return;
    /* text is "{...}": copy the members */
    if (len >= 2) {
        zq_sb_putn(&self->arena, text + 1, len - 2);
    }
    if (timed_out) {
        s_member(&self->arena, "timeout");
        zq_sb_puts(&self->arena, "true");
    }
    s_reply_end(self, o);
}

/* An error REPLY {"error": {"code", "message"}} to a. */
static void s_reply_error_msg(zq_broker_t *self, const s_asker_t *a, const char *code,
                              const char *msg)
{
    s_out_t *o = s_reply_begin_to(self, a, 0);
    if (!o)
        return;
    zq_sb_t *b = &self->arena;
    zq_sb_puts(b, "\"error\":{\"code\":");
    zq_sb_json_str(b, code);
    zq_sb_puts(b, ",\"message\":");
    zq_sb_json_str(b, msg);
    zq_sb_puts(b, "}");
    s_reply_end(self, o);
}

static void s_reply_error_v(zq_broker_t *self, const s_asker_t *a, const char *code,
                            const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));
static void s_reply_error_v(zq_broker_t *self, const s_asker_t *a, const char *code,
                            const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    s_reply_error_msg(self, a, code, msg);
}

static void s_reply_error_to(zq_broker_t *self, const s_asker_t *a, const char *code,
                             const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void s_reply_error_to(zq_broker_t *self, const s_asker_t *a, const char *code,
                             const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s_reply_error_v(self, a, code, fmt, ap);
    va_end(ap);
}

static void s_reply_error(zq_broker_t *self, const zq_msg_t *m, const char *code, const char *fmt,
                          ...) __attribute__((format(printf, 4, 5)));
static void s_reply_error(zq_broker_t *self, const zq_msg_t *m, const char *code, const char *fmt,
                          ...)
{
    s_asker_t a = s_asker(m);
    va_list ap;
    va_start(ap, fmt);
    s_reply_error_v(self, &a, code, fmt, ap);
    va_end(ap);
}

/* 1 when somebody subscribed to events of this type. */
static int s_wants(const zq_broker_t *self, int ev)
{
    return (self->ev_mask >> ev) & 1u;
}

/* Start an event: {"type","timestamp" written; add members, end with s_event_end. */
static s_out_t *s_event_begin(zq_broker_t *self, int ev)
{
    s_out_t *o = s_out_new(self, OB_EVENT);
    if (!o)
        return NULL;
    zq_sb_t *b = &self->arena;
    o->id_off = b->len;
    o->idlen = strlen(s_ev_names[ev]);
    zq_sb_puts(b, s_ev_names[ev]);
    o->text_off = b->len;
    zq_sb_puts(b, "{\"type\":");
    zq_sb_json_str(b, s_ev_names[ev]);
    zq_sb_puts(b, ",\"timestamp\":");
    zq_sb_json_time(b, zq_now());
    return o;
}

static void s_event_end(zq_broker_t *self, s_out_t *o)
{
    zq_sb_putn(&self->arena, "}", 1);
    o->len = self->arena.len - o->text_off;
    self->stats.events++;
}

/* task-revoked for a task that ended at the broker. */
static void s_event_revoked(zq_broker_t *self, const char *id, int expired)
{
    if (!s_wants(self, EV_TASK_REVOKED))
        return;
    s_out_t *o = s_event_begin(self, EV_TASK_REVOKED);
    if (!o)
        return;
    zq_sb_t *b = &self->arena;
    s_member(b, "uuid");
    zq_sb_json_str(b, id);
    zq_sb_puts(b, ",\"terminated\":false,\"signum\":null,\"expired\":");
    zq_sb_puts(b, expired ? "true" : "false");
    s_event_end(self, o);
}

static void s_event_worker(zq_broker_t *self, int ev, const s_worker_t *w)
{
    if (!s_wants(self, ev))
        return;
    s_out_t *o = s_event_begin(self, ev);
    if (!o)
        return;
    zq_sb_t *b = &self->arena;
    s_member(b, "hostname");
    zq_sb_json_str(b, w->name);
    zq_sb_printf(b, ",\"active\":%ld,\"processed\":%ld,\"pid\":%ld,\"freq\":", w->active,
                 w->processed, w->pid);
    s_jnum(b, self->heartbeat);
    zq_sb_puts(b, ",\"held\":");
    s_jnum(b, w->held + w->held_eta);
    s_event_end(self, o);
}

/* Send the outbox. ok = 0: the commit failed (see the top of this file); ok = -1: no
 * commit yet (it was deferred): only the replies that promise nothing go now. */
static void s_flush(zq_broker_t *self, int ok)
{
    const char *base = self->arena.buf;
    zq_sb_t *err = &self->scratch;
    for (size_t i = 0; i < self->nout && base; i++) {
        s_out_t *o = &self->out[i];
        const char *text = base + o->text_off;
        size_t len = o->len;
        if (o->kind == OB_SENT)
            continue;
        if (ok < 0) {
            if (o->kind != OB_REPLY || o->durable)
                continue;
            o->kind = OB_SENT;
        }
        if (o->kind == OB_EVENT) {
            if (!ok)
                continue;
            if (zmq_send(self->events, base + o->id_off, o->idlen, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
                continue;
            zmq_send(self->events, ZQ_PROTO_VERSION, strlen(ZQ_PROTO_VERSION),
                     ZMQ_SNDMORE | ZMQ_DONTWAIT);
            zmq_send(self->events, text, len, ZMQ_DONTWAIT);
            continue;
        }
        if (o->kind == OB_BROADCAST) {
            if (!ok)
                continue;
            for (s_worker_t *w = self->workers; w; w = w->next)
                if (zq_msg_send_raw(w->push, NULL, 0, ZQ_CMD_REVOKED, text, len, ZMQ_DONTWAIT) !=
                    ZQ_OK)
                    ZQ_DEBUG("broker: REVOKED not sent to %s (not connected): it learns the "
                             "ids in its next HELLO", w->name);
            continue;
        }
        if (!ok && o->durable) {
            err->len = 0;
            zq_sb_puts(err, "{\"error\":{\"code\":\"" ZQ_WERR_STORE "\",\"message\":");
            char msg[600];
            snprintf(msg, sizeof msg, "the store could not commit: %s",
                     zq_store_errmsg(self->store));
            zq_sb_json_str(err, msg);
            zq_sb_puts(err, "}");
            if (o->has_req) {
                zq_sb_puts(err, ",\"req\":");
                s_jnum(err, o->req);
            }
            zq_sb_puts(err, "}");
            if (err->oom)
                continue;
            text = err->buf;
            len = err->len;
        }
        if (ok > 0 && o->hold && o->has_req &&
            s_hold_ack(self, base + o->id_off, o->idlen, text, len, o->req, o->coalesce))
            continue;
        s_send_reply(self, base + o->id_off, o->idlen, text, len, o->coalesce, o->has_req,
                     o->req);
    }
    s_replies_flush(self);
    if (ok < 0)
        return; /* the rest waits for the commit */
    if (self->arena.oom)
        ZQ_ERROR("broker: out of memory building replies; some were not sent");
    self->nout = 0;
    self->arena.len = 0;
    self->arena.oom = 0;
}

/* ---------------------------------------------------------------------------------------
 * Parked GETs
 */
static void s_wheap_swap(zq_broker_t *self, size_t i, size_t j)
{
    s_waiter_t *t = self->wheap[i];
    self->wheap[i] = self->wheap[j];
    self->wheap[j] = t;
    self->wheap[i]->hidx = i;
    self->wheap[j]->hidx = j;
}

static void s_wheap_up(zq_broker_t *self, size_t i)
{
    while (i > 0 && self->wheap[i]->deadline < self->wheap[(i - 1) / 2]->deadline) {
        s_wheap_swap(self, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void s_wheap_down(zq_broker_t *self, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < self->wheap_n && self->wheap[l]->deadline < self->wheap[m]->deadline)
            m = l;
        if (r < self->wheap_n && self->wheap[r]->deadline < self->wheap[m]->deadline)
            m = r;
        if (m == i)
            return;
        s_wheap_swap(self, i, m);
        i = m;
    }
}

static void s_wheap_remove(zq_broker_t *self, s_waiter_t *w)
{
    size_t i = w->hidx;
    if (i == SIZE_MAX)
        return;
    w->hidx = SIZE_MAX;
    self->wheap_n--;
    if (i == self->wheap_n)
        return;
    self->wheap[i] = self->wheap[self->wheap_n];
    self->wheap[i]->hidx = i;
    s_wheap_down(self, i);
    s_wheap_up(self, i);
}

/* A waiter for a REPLY to identity, req (has_req 0: none); not yet parked. */
static s_waiter_t *s_waiter_new(const void *identity, size_t idlen, int has_req, double req,
                                double timeout, int coalesce)
{
    s_waiter_t *w = calloc(1, sizeof *w + idlen);
    if (!w)
        return NULL;
    memcpy(w->identity, identity, idlen);
    w->idlen = idlen;
    w->has_req = has_req;
    w->req = req;
    w->coalesce = coalesce;
    w->deadline = isfinite(timeout) ? s_mono() + timeout : INFINITY;
    w->hidx = SIZE_MAX;
    return w;
}

/* Park w on id: it belongs to the waiting list then (on failure, still to the caller). */
static int s_park_waiter(zq_broker_t *self, s_waiter_t *w, const char *id)
{
    s_waitlist_t *wl = (s_waitlist_t *)s_map_get(&self->waits, id);
    if (!wl) {
        size_t n = strlen(id);
        wl = calloc(1, sizeof *wl + n + 1);
        if (!wl)
            return ZQ_ENOMEM;
        memcpy(wl->id, id, n + 1);
        wl->node.key = wl->id;
        if (s_map_put(&self->waits, &wl->node) != ZQ_OK) {
            free(wl);
            return ZQ_ENOMEM;
        }
    }
    if (isfinite(w->deadline)) {
        if (self->wheap_n == self->wheap_cap) {
            size_t nc = self->wheap_cap ? self->wheap_cap * 2 : 256;
            s_waiter_t **v = realloc(self->wheap, nc * sizeof *v);
            if (!v)
                goto oom;
            self->wheap = v;
            self->wheap_cap = nc;
        }
        w->hidx = self->wheap_n;
        self->wheap[self->wheap_n++] = w;
        s_wheap_up(self, w->hidx);
    }
    w->list = wl;
    w->next = wl->first;
    wl->first = w;
    self->nwaiters++;
    return ZQ_OK;
oom:
    if (!wl->first) {
        s_map_del(&self->waits, &wl->node);
        free(wl);
    }
    return ZQ_ENOMEM;
}

static int s_park(zq_broker_t *self, const zq_msg_t *m, const char *id, double timeout)
{
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(m->body, "req");
    s_waiter_t *w = s_waiter_new(m->identity, m->identity_len, cJSON_IsNumber(req),
                                 cJSON_IsNumber(req) ? req->valuedouble : 0, timeout,
                                 s_coalesce(m));
    if (!w)
        return ZQ_ENOMEM;
    int rc = s_park_waiter(self, w, id);
    if (rc != ZQ_OK)
        free(w);
    return rc;
}

/* Answer one waiter with a record (text "{...}") and free it. */
static void s_answer_waiter(zq_broker_t *self, s_waiter_t *w, const char *rec, size_t len,
                            int timed_out)
{
    zq_sb_t *b = &self->scratch;
    b->len = 0;
    zq_sb_putn(b, rec, len - 1);
    if (timed_out)
        zq_sb_puts(b, ",\"timeout\":true");
    if (w->has_req) {
        zq_sb_puts(b, ",\"req\":");
        s_jnum(b, w->req);
    }
    zq_sb_puts(b, "}");
    if (!b->oom)
        s_send_reply(self, w->identity, w->idlen, b->buf, b->len, w->coalesce, w->has_req,
                     w->req);
    s_wheap_remove(self, w);
    self->nwaiters--;
    free(w);
}

/* The task ended (committed): answer everyone waiting for it. rec (taken; NULL: read it
 * from the store) is its record. */
static void s_answer_waits_rec(zq_broker_t *self, const char *id, char *rec, size_t len)
{
    s_waitlist_t *wl = (s_waitlist_t *)s_map_get(&self->waits, id);
    if (!wl) {
        free(rec);
        return;
    }
    if (!rec && zq_store_record_text(self->store, id, &rec, &len) != ZQ_OK) {
        ZQ_ERROR("broker: cannot read task %s for a GET: %s", id, zq_store_errmsg(self->store));
        return; /* they wait on; their deadline still applies */
    }
    s_map_del(&self->waits, &wl->node);
    for (s_waiter_t *w = wl->first, *next; w; w = next) {
        next = w->next;
        s_answer_waiter(self, w, rec, len, 0);
    }
    free(wl);
    free(rec);
}

static void s_answer_waits(zq_broker_t *self, const char *id)
{
    s_answer_waits_rec(self, id, NULL, 0);
}

/* Remember, during the turn, that id ended (answered after the commit); rec (taken, may be
 * NULL) is its record. */
static void s_notify_rec(zq_broker_t *self, const char *id, char *rec, size_t len)
{
    if (!s_map_get(&self->waits, id)) {
        free(rec);
        return;
    }
    self->need_commit = 1; /* somebody waits for this end: commit and answer now */
    if (self->nnotify == self->notify_cap) {
        size_t nc = self->notify_cap ? self->notify_cap * 2 : 64;
        s_note_t *v = realloc(self->notify, nc * sizeof *v);
        if (!v)
            goto lost;
        self->notify = v;
        self->notify_cap = nc;
    }
    s_note_t *n = &self->notify[self->nnotify];
    if (!(n->id = strdup(id)))
        goto lost;
    n->rec = rec;
    n->len = len;
    self->nnotify++;
    return;
lost:
    free(rec);
    self->recheck_waits = 1; /* out of memory: look at every parked GET instead */
}

static void s_notify(zq_broker_t *self, const char *id)
{
    s_notify_rec(self, id, NULL, 0);
}

static void s_notes_clear(zq_broker_t *self)
{
    for (size_t i = 0; i < self->nnotify; i++) {
        free(self->notify[i].id);
        free(self->notify[i].rec);
    }
    self->nnotify = 0;
}

static void s_recheck_one(void *arg, s_hnode_t *node)
{
    zq_broker_t *self = arg;
    s_waitlist_t *wl = (s_waitlist_t *)node;
    if (zq_state_is_terminal(zq_store_get_state(self->store, wl->id)))
        s_answer_waits(self, wl->id);
}

/* After a commit: answer GETs of tasks that ended, then those whose wait ran out. */
static void s_serve_waits(zq_broker_t *self)
{
    for (size_t i = 0; i < self->nnotify; i++) {
        s_note_t *n = &self->notify[i];
        s_answer_waits_rec(self, n->id, n->rec, n->len);
        free(n->id);
    }
    self->nnotify = 0;
    if (self->recheck_waits) {
        self->recheck_waits = 0;
        s_map_each(&self->waits, s_recheck_one, self);
    }
    double now = s_mono();
    while (self->wheap_n && self->wheap[0]->deadline <= now) {
        s_waiter_t *w = self->wheap[0];
        s_waitlist_t *wl = w->list;
        char *rec;
        size_t len;
        if (zq_store_record_text(self->store, wl->id, &rec, &len) != ZQ_OK) {
            ZQ_ERROR("broker: cannot read task %s for a GET: %s", wl->id,
                     zq_store_errmsg(self->store));
            rec = NULL;
        }
        /* unlink from its list */
        for (s_waiter_t **pp = &wl->first; *pp; pp = &(*pp)->next)
            if (*pp == w) {
                *pp = w->next;
                break;
            }
        if (rec) {
            s_answer_waiter(self, w, rec, len, 1);
            free(rec);
        } else {
            s_wheap_remove(self, w);
            self->nwaiters--;
            free(w);
        }
        if (!wl->first) {
            s_map_del(&self->waits, &wl->node);
            free(wl);
        }
    }
    s_replies_flush(self);
}

/* ---------------------------------------------------------------------------------------
 * Store failures inside a turn
 */

/* A write failed. When SQLite dropped the whole transaction with it, the turn is lost:
 * stop writing (later writes would each commit on their own) and take the failure path. */
static void s_store_failed(zq_broker_t *self, const char *what, const char *id)
{
    if (self->in_batch && !zq_store_in_tx(self->store))
        self->batch_failed = 1;
    double now = s_mono();
    if (now - self->last_store_error >= 1.0) {
        self->last_store_error = now;
        ZQ_ERROR("broker: store: %s%s%s: %s", what, id ? " " : "", id ? id : "",
                 zq_store_errmsg(self->store));
    }
}

/* ---------------------------------------------------------------------------------------
 * Held tasks and credits
 */
static s_held_t *s_held_find(zq_broker_t *self, const char *id)
{
    return (s_held_t *)s_map_get(&self->held, id);
}

/* w now holds the task (t may be NULL for a claim). Takes ownership of t. */
static s_held_t *s_held_add(zq_broker_t *self, s_worker_t *w, s_task_t *t, const char *id,
                            s_queue_t *q, int is_eta)
{
    size_t n = strlen(id);
    s_held_t *h = calloc(1, sizeof *h + n + 1);
    if (!h)
        return NULL;
    memcpy(h->id, id, n + 1);
    h->node.key = h->id;
    if (s_map_put(&self->held, &h->node) != ZQ_OK) {
        free(h);
        return NULL;
    }
    h->w = w;
    h->task = t;
    h->q = q;
    h->is_eta = is_eta;
    h->next = w->hl;
    if (w->hl)
        w->hl->prev = h;
    w->hl = h;
    if (is_eta)
        w->held_eta++;
    else
        w->held++;
    if (q)
        q->n_reserved++;
    return h;
}

/* The worker no longer holds it. Returns the task when keep, else frees it. */
static s_task_t *s_held_release(zq_broker_t *self, s_held_t *h, int keep)
{
    s_worker_t *w = h->w;
    s_map_del(&self->held, &h->node);
    if (h->prev)
        h->prev->next = h->next;
    else
        w->hl = h->next;
    if (h->next)
        h->next->prev = h->prev;
    if (h->is_eta)
        w->held_eta--;
    else
        w->held--;
    if (h->q)
        h->q->n_reserved--;
    s_task_t *t = h->task;
    free(h);
    if (!keep) {
        free(t);
        t = NULL;
    }
    return t;
}

typedef struct {
    zq_broker_t *self;
    s_task_t *t;
    const char *state;
    int acks_late;
} s_found_t;

static int s_find_row(void *arg, const zq_store_row_t *row)
{
    s_found_t *f = arg;
    s_queue_t *q = s_queue_get(f->self, row->queue);
    f->t = q ? s_task_new(row, q) : NULL;
    f->state = row->state;
    f->acks_late = row->acks_late;
    return 1;
}

/* A task read by id from the store (NULL if unknown); f->state tells its state. Caller
 * owns the result. */
static s_task_t *s_task_find(zq_broker_t *self, const char *id, s_found_t *f)
{
    memset(f, 0, sizeof *f);
    f->self = self;
    int rc = zq_store_find(self->store, id, s_find_row, f);
    if (rc == ZQ_ESTORE)
        s_store_failed(self, "read task", id);
    return rc == ZQ_OK ? f->t : NULL;
}

static s_task_t *s_task_load(zq_broker_t *self, const char *id)
{
    s_found_t f;
    return s_task_find(self, id, &f);
}

/* A held task goes back to waiting (worker lost, RETURN): first in line, redelivered. */
static void s_requeue_held(zq_broker_t *self, s_held_t *h)
{
    self->need_commit = 1; /* it may be handed out again right after the turn */
    int rc = zq_store_requeue(self->store, h->id);
    if (rc != ZQ_OK) {
        if (rc == ZQ_ESTORE)
            s_store_failed(self, "requeue", h->id);
        s_held_release(self, h, 0); /* ended meanwhile, or the turn is lost anyway */
        return;
    }
    char id[256];
    snprintf(id, sizeof id, "%s", h->id);
    s_task_t *t = s_held_release(self, h, 1);
    if (!t)
        t = s_task_load(self, id);
    if (!t)
        return; /* the store keeps it; read back on the next restart */
    t->redelivered = 1;
    if (t->eta > 0)
        t->q->n_sched++;
    else
        t->q->n_ready++;
    s_place(self, t, 1);
}

/* End a task lost with its worker as FAILURE WorkerLostError. */
static void s_fail_lost(zq_broker_t *self, const char *id, const char *worker, const char *why)
{
    char msg[128];
    snprintf(msg, sizeof msg, "Worker exited prematurely (%s)", why);
    zq_store_state_t st = {.id = id,
                           .state = ZQ_STATE_FAILURE,
                           .worker = worker,
                           .exc_type = "WorkerLostError",
                           .exc_message = msg,
                           .runtime = -1};
    int rc = zq_store_set_state(self->store, &st, NULL);
    self->need_commit = 1;
    if (rc == ZQ_ESTORE) {
        s_store_failed(self, "fail lost task", id);
        return;
    }
    if (rc != ZQ_OK)
        return;
    self->stats.failed++;
    ZQ_WARN("broker: task %s lost with worker %s: FAILURE WorkerLostError", id,
            worker ? worker : "?");
    s_notify(self, id);
    if (s_wants(self, EV_TASK_FAILED)) {
        s_out_t *o = s_event_begin(self, EV_TASK_FAILED);
        if (o) {
            zq_sb_t *b = &self->arena;
            s_member(b, "uuid");
            zq_sb_json_str(b, id);
            s_member(b, "hostname");
            zq_sb_json_str(b, worker);
            zq_sb_puts(b, ",\"exception\":{\"type\":\"WorkerLostError\",\"message\":");
            zq_sb_json_str(b, msg);
            zq_sb_puts(b, "},\"traceback\":null");
            s_event_end(self, o);
        }
    }
}

/* ---------------------------------------------------------------------------------------
 * Workers
 */
static s_worker_t *s_worker_find(zq_broker_t *self, const char *name)
{
    for (s_worker_t *w = self->workers; w; w = w->next)
        if (!strcmp(w->name, name))
            return w;
    return NULL;
}

static int s_worker_consumes(const s_worker_t *w, const s_queue_t *q)
{
    for (int i = 0; i < w->nqueues; i++)
        if (w->queues[i] == q)
            return 1;
    return 0;
}

/* Tasks w may hold beyond the running ones. With an adaptive prefetch and short tasks the
 * window holds about S_WINDOW_TIME of work, so that one round trip between broker and worker
 * carries many tasks (docs/protocol.md §8 Credits); long tasks keep the worker's own. */
static long s_window(const s_worker_t *w)
{
    long window = (long)w->concurrency + w->prefetch;
    if (w->prefetch_adaptive && w->runtime_avg >= 0) {
        double per = w->runtime_avg > S_WINDOW_FLOOR ? w->runtime_avg : S_WINDOW_FLOOR;
        double wide = w->concurrency * S_WINDOW_TIME / per;
        if (wide > S_WINDOW_MAX)
            wide = S_WINDOW_MAX;
        if (wide > window)
            window = (long)wide;
    }
    return window;
}

/* The worker to give a task of q: most free slots (docs/protocol.md §8). */
static s_worker_t *s_best_worker(zq_broker_t *self, const s_queue_t *q, int eta)
{
    s_worker_t *best = NULL;
    long best_free = 0;
    for (s_worker_t *w = self->workers; w; w = w->next) {
        if (w->blocked || w->retiring || !s_worker_consumes(w, q))
            continue;
        if (eta ? w->held_eta >= ZQ_BROKER_ETA_CAP : w->held >= s_window(w))
            continue;
        long free_slots = (long)w->concurrency - w->held;
        if (eta)
            free_slots = free_slots * ZQ_BROKER_ETA_CAP - w->held_eta;
        if (!best || free_slots > best_free) {
            best = w;
            best_free = free_slots;
        }
    }
    return best;
}

static void s_worker_free(s_worker_t *w)
{
    if (!w)
        return;
    if (w->push)
        zmq_close(w->push);
    cJSON_Delete(w->info);
    zq_sb_free(&w->batch);
    free(w->acks);
    free(w->queues);
    free(w->hostname);
    free(w->name);
    free(w);
}

/* The worker is gone (BYE, or lost): requeue what it held that had not started; started
 * tasks end FAILURE WorkerLostError unless acks_late (then they run again). */
static void s_worker_remove(zq_broker_t *self, s_worker_t *w, const char *why)
{
    long requeued = 0, failed = 0;
    while (w->hl) {
        s_held_t *h = w->hl;
        if (h->started && !h->acks_late) {
            char id[256];
            snprintf(id, sizeof id, "%s", h->id);
            s_held_release(self, h, 0);
            s_fail_lost(self, id, w->name, why);
            failed++;
        } else {
            s_requeue_held(self, h);
            requeued++;
        }
    }
    for (int i = 0; i < w->nqueues; i++)
        w->queues[i]->consumers--;
    s_event_worker(self, EV_WORKER_OFFLINE, w);
    for (s_worker_t **pp = &self->workers; *pp; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    self->nworkers--;
    ZQ_INFO("broker: worker %s offline (%s): %ld tasks requeued, %ld lost", w->name, why,
            requeued, failed);
    s_worker_free(w);
}

/* ---------------------------------------------------------------------------------------
 * Dispatch (after the commit)
 */

/* Put t aside to end REVOKED "expired" in the next turn. Takes ownership of t. */
static void s_expire_later(zq_broker_t *self, s_task_t *t)
{
    if (self->nexpired == self->expired_cap) {
        size_t nc = self->expired_cap ? self->expired_cap * 2 : 64;
        s_task_t **v = realloc(self->expired, nc * sizeof *v);
        if (!v) {
            free(t); /* still PENDING in the store: found again after a restart */
            return;
        }
        self->expired = v;
        self->expired_cap = nc;
    }
    self->expired[self->nexpired++] = t;
}

/* [ZQP01][cmd][text] on w's dispatch channel, without waiting. */
static int s_push(zq_broker_t *self, s_worker_t *w, const char *cmd, const char *text, size_t len)
{
    if (self->fail_dispatch > 0) {
        self->fail_dispatch--;
        errno = EAGAIN;
        return ZQ_EIO;
    }
    return zq_msg_send_raw(w->push, NULL, 0, cmd, text, len, ZMQ_DONTWAIT);
}

static void s_push_failed(s_worker_t *w)
{
    int e = zmq_errno();
    if (e != EAGAIN)
        ZQ_WARN("broker: cannot send to worker %s: %s", w->name, zmq_strerror(e));
    w->blocked = 1;
}

/* t, just taken off the head of its queue, goes back there. */
static void s_unsend(zq_broker_t *self, s_task_t *t, int is_eta)
{
    if (is_eta || s_deque_push_head(&t->q->ready, t) != ZQ_OK)
        s_place(self, t, 1); /* ETA heap; or out of memory: s_place copes */
}

/* The collected TASKS of w were not sent: its tasks go back to the head of their queues,
 * in order, as if never handed out. */
static void s_batch_undo(zq_broker_t *self, s_worker_t *w)
{
    for (; w->nbatch > 0; w->nbatch--) { /* hl starts with the batch, newest first */
        int is_eta = w->hl->is_eta;
        s_task_t *t = s_held_release(self, w->hl, 1);
        if (is_eta)
            t->q->n_sched++;
        else
            t->q->n_ready++;
        self->stats.dispatched--;
        s_unsend(self, t, is_eta);
    }
    w->batch.len = 0;
    w->batch.oom = 0;
}

#define S_BATCH_KEEP (256 * 1024) /* bytes of a worker's TASKS buffer kept between passes */

/* Send the collected tasks of w: one alone as TASK, more as TASKS. 0 when the message was
 * not accepted (w->blocked is set; the caller undoes the batch). */
static int s_batch_send(zq_broker_t *self, s_worker_t *w)
{
    zq_sb_t *b = &w->batch;
    if (!w->nbatch)
        return 1;
    int rc;
    if (w->nbatch == 1) {
        rc = s_push(self, w, ZQ_CMD_TASK, b->buf + 1, b->len - 1);
    } else {
        zq_sb_putc(b, ']');
        rc = b->oom ? ZQ_ENOMEM : s_push(self, w, ZQ_CMD_TASK_BATCH, b->buf, b->len);
    }
    if (rc != ZQ_OK) {
        if (rc == ZQ_ENOMEM)
            w->blocked = 1;
        else
            s_push_failed(w);
        return 0;
    }
    w->nbatch = 0;
    b->len = 0;
    if (b->cap > S_BATCH_KEEP)
        zq_sb_free(b); /* a pass of large tasks: do not keep a MiB per worker */
    return 1;
}

/* Give t to w. 1: taken (w holds it now); 0: not taken (w's channel is not connected or
 * full: w->blocked set), t is back at the head of its queue; -1: t is already out (a
 * duplicate): the caller frees it.
 * A worker with batch_tasks collects the tasks of the dispatch pass in w->batch, sent by
 * s_dispatch at its end (or here, when the next task would pass ZQ_TASK_BATCH_MAX). They
 * count as held from the start, so that credits and s_is_out see them; s_batch_undo takes
 * them back if the message is not accepted, before anything else looks. */
static int s_send_task(zq_broker_t *self, s_worker_t *w, s_task_t *t, int is_eta)
{
    if (s_is_out(self, t->id))
        return -1;
    const char *tail = t->redelivered ? ",\"redelivered\":true}" : ",\"redelivered\":false}";
    zq_sb_t *b = w->batch_tasks ? &w->batch : &self->scratch;
    size_t tl = strlen(tail), old = 0;
    if (!w->batch_tasks) {
        b->len = 0;
    } else {
        if (w->nbatch && b->len + 1 + (t->msglen - 1) + tl + 1 > ZQ_TASK_BATCH_MAX &&
            !s_batch_send(self, w)) {
            s_unsend(self, t, is_eta); /* first: the batch goes back ahead of it */
            s_batch_undo(self, w);
            return 0;
        }
        old = b->len;
        zq_sb_putc(b, w->nbatch ? ',' : '[');
    }
    zq_sb_putn(b, t->msg, t->msglen - 1); /* the stored object without its closing brace */
    zq_sb_putn(b, tail, tl);
    if (b->oom) {
        b->len = old;
        b->oom = 0;
        w->blocked = 1; /* until the next turn */
        s_unsend(self, t, is_eta);
        return 0;
    }
    if (!w->batch_tasks && s_push(self, w, ZQ_CMD_TASK, b->buf, b->len) != ZQ_OK) {
        s_push_failed(w);
        s_unsend(self, t, is_eta);
        return 0;
    }
    s_queue_t *q = t->q;
    if (!s_held_add(self, w, t, t->id, q, is_eta)) {
        if (w->batch_tasks) { /* not sent yet: it stays queued */
            b->len = old;
            w->blocked = 1;
            s_unsend(self, t, is_eta);
            return 0;
        }
        ZQ_ERROR("broker: out of memory: task %s sent to %s is not tracked", t->id, w->name);
        free(t);
    }
    if (is_eta)
        q->n_sched--;
    else
        q->n_ready--;
    self->stats.dispatched++;
    if (w->batch_tasks)
        w->nbatch++;
    return 1;
}

#define S_DISPATCH_ROUND 64 /* tasks of one queue before the next queue's turn */

/* Dispatch up to S_DISPATCH_ROUND tasks of q. Returns how many left the queue. */
static int s_dispatch_queue(zq_broker_t *self, s_queue_t *q, double now)
{
    int moved = 0;
    /* ETA tasks due within the look-ahead: the worker holds them until their eta */
    while (moved < S_DISPATCH_ROUND) {
        s_refill_sched(self, q);
        if (!q->sched.n)
            break;
        s_task_t *t = q->sched.v[0];
        if (t->eta - now > self->lookahead)
            break;
        if (t->expires > 0 && t->expires <= now) {
            s_expire_later(self, s_heap_remove(&q->sched, 0));
            moved++;
            continue;
        }
        s_worker_t *w = s_best_worker(self, q, 1);
        if (!w)
            break;
        s_heap_remove(&q->sched, 0);
        int rc = s_send_task(self, w, t, 1);
        if (rc < 0)
            free(t);
        else
            moved++;
    }
    while (moved < S_DISPATCH_ROUND) {
        s_refill_ready(self, q);
        if (!q->ready.n)
            break;
        s_task_t *t = s_deque_at(&q->ready, 0);
        if (t->expires > 0 && t->expires <= now) {
            s_expire_later(self, s_deque_pop(&q->ready));
            moved++;
            continue;
        }
        s_worker_t *w = s_best_worker(self, q, 0);
        if (!w)
            break;
        s_deque_pop(&q->ready);
        int rc = s_send_task(self, w, t, 0);
        if (rc < 0)
            free(t);
        else
            moved++;
    }
    return moved;
}

typedef struct {
    s_queue_t **v;
    size_t n, cap;
} s_qlist_t;

static void s_collect_queue(void *arg, s_hnode_t *node)
{
    s_qlist_t *l = arg;
    s_queue_t *q = (s_queue_t *)node;
    if (!q->consumers || (!q->ready.n && !q->ready_spilled && !q->sched.n && !q->sched_spilled))
        return;
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 16;
        s_queue_t **v = realloc(l->v, nc * sizeof *v);
        if (!v)
            return;
        l->v = v;
        l->cap = nc;
    }
    l->v[l->n++] = q;
}

/* Hand tasks to workers with credit, queue by queue in rounds so that one busy queue
 * does not starve another sharing the same workers. */
static void s_dispatch(zq_broker_t *self)
{
    if (!self->workers || s_mono() < self->dispatch_from)
        return;
    s_qlist_t l = {0};
    s_map_each(&self->queues, s_collect_queue, &l);
    double now = zq_now();
    int moved, undone;
    do {
        do {
            moved = 0;
            for (size_t i = 0; i < l.n; i++)
                moved += s_dispatch_queue(self, l.v[i], now);
        } while (moved);
        /* the TASKS of the pass; tasks of one that is not accepted may go to another worker
         * (its own is blocked now) */
        undone = 0;
        for (s_worker_t *w = self->workers; w; w = w->next)
            if (w->nbatch && !s_batch_send(self, w)) {
                s_batch_undo(self, w);
                undone = 1;
            }
    } while (undone);
    free(l.v);
}

/* ---------------------------------------------------------------------------------------
 * SUBMIT (frontend and upstream)
 */
typedef struct {
    const char *id, *task, *queue, *parent_id, *root_id;
    double eta, expires;
    int retries, ignore_result;
} s_sub_t;

/* Replace (or add) body[key] with item. Takes ownership of item. */
static int s_set(cJSON *body, const char *key, cJSON *item)
{
    if (!item)
        return ZQ_ENOMEM;
    if (cJSON_GetObjectItemCaseSensitive(body, key))
        return cJSON_ReplaceItemInObjectCaseSensitive(body, key, item) ? ZQ_OK : ZQ_ENOMEM;
    return cJSON_AddItemToObject(body, key, item) ? ZQ_OK : ZQ_ENOMEM;
}

static cJSON *s_time_item(double t)
{
    if (t <= 0)
        return cJSON_CreateNull();
    char iso[40];
    return cJSON_CreateString(zq_time_iso(t, iso, sizeof iso));
}

static int s_is_int(const cJSON *v, double lo, double hi)
{
    return cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) && v->valuedouble >= lo &&
           v->valuedouble <= hi;
}

#define S_ABSENT(v) (!(v) || cJSON_IsNull(v))

/* The SUBMIT members s_submit_prepare reads, in its keys[] order. */
enum { SF_TASK, SF_ID, SF_ARGS, SF_KWARGS, SF_QUEUE, SF_ETA, SF_COUNTDOWN, SF_EXPIRES, SF_RETRIES,
       SF_PRIORITY, SF_IGNORE, SF_TIMELIMIT, SF_ROOT, SF_PARENT, SF_GROUP, SF_ORIGIN,
       S_SUB_NKEYS };

/* Validate a SUBMIT body and complete it in place into the task message of docs §6 (the
 * broker fills in what the client left out). ZQ_EINVAL with err naming the field. */
static int s_submit_prepare(cJSON *body, double now, s_sub_t *out, char *err, size_t errlen)
{
    /* the members read, found in one pass (every SUBMIT); the ones added below when absent
     * do not move these */
    static const char *const keys[S_SUB_NKEYS] = {
        "task",    "id",       "args",      "kwargs",  "queue",     "eta",
        "countdown", "expires", "retries", "priority", "ignore_result", "timelimit",
        "root_id", "parent_id", "group",    "origin"};
    const cJSON *f[S_SUB_NKEYS];
    zq_json_members(body, keys, S_SUB_NKEYS, f);
    memset(out, 0, sizeof *out);
    const cJSON *v = f[SF_TASK];
    if (!cJSON_IsString(v) || !zq_valid_token(v->valuestring)) {
        snprintf(err, errlen, "task: must be a task name (1-255 printable characters, no spaces)");
        return ZQ_EINVAL;
    }
    v = f[SF_ID];
    if (S_ABSENT(v)) {
        char id[37];
        zq_uuid7(id);
        if (s_set(body, "id", cJSON_CreateString(id)) != ZQ_OK)
            return ZQ_ENOMEM;
    } else if (!cJSON_IsString(v) || !zq_valid_token(v->valuestring)) {
        snprintf(err, errlen, "id: must be a task id (1-255 printable characters, no spaces)");
        return ZQ_EINVAL;
    }
    v = f[SF_ARGS];
    if (S_ABSENT(v)) {
        if (s_set(body, "args", cJSON_CreateArray()) != ZQ_OK)
            return ZQ_ENOMEM;
    } else if (!cJSON_IsArray(v)) {
        snprintf(err, errlen, "args: must be a JSON array");
        return ZQ_EINVAL;
    }
    v = f[SF_KWARGS];
    if (S_ABSENT(v)) {
        if (s_set(body, "kwargs", cJSON_CreateObject()) != ZQ_OK)
            return ZQ_ENOMEM;
    } else if (!cJSON_IsObject(v)) {
        snprintf(err, errlen, "kwargs: must be a JSON object");
        return ZQ_EINVAL;
    }
    v = f[SF_QUEUE];
    if (S_ABSENT(v)) {
        if (s_set(body, "queue", cJSON_CreateString(ZQ_DEFAULT_QUEUE)) != ZQ_OK)
            return ZQ_ENOMEM;
    } else if (!cJSON_IsString(v) || !zq_valid_token(v->valuestring)) {
        snprintf(err, errlen, "queue: must be a queue name (1-255 printable characters, no spaces)");
        return ZQ_EINVAL;
    }
    /* countdown wins over eta when both are given, as in Celery's apply_async */
    double eta = 0;
    v = f[SF_ETA];
    if (!S_ABSENT(v) && (!cJSON_IsString(v) || zq_time_parse(v->valuestring, &eta) != ZQ_OK)) {
        snprintf(err, errlen, "eta: must be an ISO 8601 timestamp or null");
        return ZQ_EINVAL;
    }
    v = f[SF_COUNTDOWN];
    if (!S_ABSENT(v)) {
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || fabs(v->valuedouble) > 1e10) {
            snprintf(err, errlen, "countdown: must be a number of seconds");
            return ZQ_EINVAL;
        }
        eta = now + v->valuedouble;
    }
    double expires = 0;
    v = f[SF_EXPIRES];
    if (cJSON_IsNumber(v) && isfinite(v->valuedouble) && fabs(v->valuedouble) <= 1e10) {
        expires = now + v->valuedouble;
        if (expires <= 0)
            expires = 1e-6; /* long past, but still "has an expiry" */
    } else if (!S_ABSENT(v) &&
               (!cJSON_IsString(v) || zq_time_parse(v->valuestring, &expires) != ZQ_OK)) {
        snprintf(err, errlen, "expires: must be seconds from now or an ISO 8601 timestamp");
        return ZQ_EINVAL;
    }
    v = f[SF_RETRIES];
    if (!S_ABSENT(v) && !s_is_int(v, 0, 1e9)) {
        snprintf(err, errlen, "retries: must be an integer >= 0");
        return ZQ_EINVAL;
    }
    out->retries = S_ABSENT(v) ? 0 : (int)v->valuedouble;
    v = f[SF_PRIORITY];
    if (!S_ABSENT(v) && !s_is_int(v, 0, 9)) {
        snprintf(err, errlen, "priority: must be an integer 0-9");
        return ZQ_EINVAL;
    }
    v = f[SF_IGNORE];
    if (!S_ABSENT(v) && !cJSON_IsBool(v)) {
        snprintf(err, errlen, "ignore_result: must be true or false");
        return ZQ_EINVAL;
    }
    out->ignore_result = cJSON_IsTrue(v);
    v = f[SF_TIMELIMIT];
    if (!S_ABSENT(v)) {
        int ok = cJSON_IsArray(v) && cJSON_GetArraySize(v) == 2;
        for (const cJSON *e = ok ? v->child : NULL; e; e = e->next)
            if (!cJSON_IsNull(e) && !(cJSON_IsNumber(e) && e->valuedouble >= 0))
                ok = 0;
        if (!ok) {
            snprintf(err, errlen, "timelimit: must be [hard, soft] seconds (numbers or null)");
            return ZQ_EINVAL;
        }
    }
    static const char *const ids[] = {"parent_id", "group", "origin"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        v = f[SF_PARENT + i];
        if (!S_ABSENT(v) && (!cJSON_IsString(v) || !zq_valid_token(v->valuestring))) {
            snprintf(err, errlen, "%s: must be a string (1-255 printable characters, no spaces)",
                     ids[i]);
            return ZQ_EINVAL;
        }
    }
    v = f[SF_ROOT];
    if (S_ABSENT(v)) {
        const char *own = zq_json_str(body, "id", NULL);
        if (s_set(body, "root_id", cJSON_CreateString(own)) != ZQ_OK)
            return ZQ_ENOMEM;
    } else if (!cJSON_IsString(v) || !zq_valid_token(v->valuestring)) {
        snprintf(err, errlen, "root_id: must be a task id");
        return ZQ_EINVAL;
    }
    /* the stored message: canonical times, no request-only fields */
    cJSON_DeleteItemFromObjectCaseSensitive(body, "countdown");
    cJSON_DeleteItemFromObjectCaseSensitive(body, "redelivered");
    if (s_set(body, "eta", s_time_item(eta)) != ZQ_OK ||
        s_set(body, "expires", s_time_item(expires)) != ZQ_OK ||
        s_set(body, "sent", s_time_item(now)) != ZQ_OK ||
        s_set(body, "retries", cJSON_CreateNumber(out->retries)) != ZQ_OK)
        return ZQ_ENOMEM;
    out->id = zq_json_str(body, "id", NULL);
    out->task = zq_json_str(body, "task", NULL);
    out->queue = zq_json_str(body, "queue", NULL);
    out->parent_id = zq_json_str(body, "parent_id", NULL);
    out->root_id = zq_json_str(body, "root_id", NULL);
    out->eta = eta;
    out->expires = expires;
    return ZQ_OK;
}

/* A SUBMIT read by either reader (s_submit_prepare or zq_submit_read): the task, the message
 * to store, and its arguments for the task-sent event (the tree, or their text). */
typedef struct {
    s_sub_t s;
    const char *msg;
    size_t msglen;
    double get_req;  /* "get"; 0 when absent */
    double now;      /* when it was received: its "sent" */
    const cJSON *body;
    const char *args, *kwargs;
    size_t args_len, kwargs_len;
} s_subm_t;

static void s_event_sent(zq_broker_t *self, const s_subm_t *x)
{
    const s_sub_t *s = &x->s;
    s_out_t *o = s_event_begin(self, EV_TASK_SENT);
    if (!o)
        return;
    zq_sb_t *b = &self->arena;
    s_member(b, "uuid");
    zq_sb_json_str(b, s->id);
    s_member(b, "name");
    zq_sb_json_str(b, s->task);
    s_member(b, "args");
    if (x->body)
        zq_sb_json(b, cJSON_GetObjectItemCaseSensitive(x->body, "args"));
    else
        zq_sb_putn(b, x->args, x->args_len);
    s_member(b, "kwargs");
    if (x->body)
        zq_sb_json(b, cJSON_GetObjectItemCaseSensitive(x->body, "kwargs"));
    else
        zq_sb_putn(b, x->kwargs, x->kwargs_len);
    s_member(b, "queue");
    zq_sb_json_str(b, s->queue);
    s_member(b, "eta");
    zq_sb_json_time(b, s->eta);
    s_member(b, "expires");
    zq_sb_json_time(b, s->expires);
    zq_sb_printf(b, ",\"retries\":%d", s->retries);
    s_member(b, "root_id");
    zq_sb_json_str(b, s->root_id);
    s_member(b, "parent_id");
    zq_sb_json_str(b, s->parent_id);
    s_event_end(self, o);
}

/* Remember a result subscription (SUBMIT "get") until the commit: parked by s_link_pushes. */
static int s_push_later(zq_broker_t *self, const s_asker_t *a, double req, const char *id,
                        int check)
{
    if (self->nwaiters + self->npush >= S_PUSH_MAX)
        return 0;
    if (self->npush == self->push_cap) {
        size_t nc = self->push_cap ? self->push_cap * 2 : 256;
        s_push_t *v = realloc(self->pushes, nc * sizeof *v);
        if (!v)
            return 0;
        self->pushes = v;
        self->push_cap = nc;
    }
    s_waiter_t *w = s_waiter_new(a->ident, a->idlen, 1, req, INFINITY, a->coalesce);
    char *copy = w ? strdup(id) : NULL;
    if (!copy) {
        free(w);
        return 0;
    }
    self->pushes[self->npush++] = (s_push_t){w, copy, check};
    return 1;
}

/* After the commit that stored their tasks: park the turn's result subscriptions. */
static void s_link_pushes(zq_broker_t *self)
{
    for (size_t i = 0; i < self->npush; i++) {
        s_push_t *p = &self->pushes[i];
        if (s_park_waiter(self, p->w, p->id) != ZQ_OK) {
            /* the client was promised the record: tell it to ask with GET instead */
            ZQ_ERROR("broker: out of memory: the result subscription of task %s is answered "
                     "with EINTERNAL (the client asks with GET)", p->id);
            zq_sb_t *b = &self->scratch;
            b->len = 0;
            zq_sb_puts(b, "{\"error\":{\"code\":\"" S_INTERNAL "\",\"message\":\"out of memory: "
                          "send GET\"},\"req\":");
            s_jnum(b, p->w->req);
            zq_sb_puts(b, "}");
            if (!b->oom)
                s_send_reply(self, p->w->identity, p->w->idlen, b->buf, b->len, p->w->coalesce,
                             1, p->w->req);
            free(p->w);
        } else if (p->check && zq_state_is_terminal(zq_store_get_state(self->store, p->id))) {
            s_answer_waits(self, p->id); /* a duplicate of a task that has ended */
        }
        free(p->id);
    }
    self->npush = 0;
}

/* The commit failed: the SUBMITs are refused, so are their subscriptions. */
static void s_drop_pushes(zq_broker_t *self)
{
    for (size_t i = 0; i < self->npush; i++) {
        free(self->pushes[i].w);
        free(self->pushes[i].id);
    }
    self->npush = 0;
}

/* Store a task and queue it; a (the frontend's asker) is answered, NULL: an upstream
 * sub-task, nobody to answer. */
static void s_submit_take(zq_broker_t *self, const s_asker_t *a, const s_subm_t *x)
{
    const s_sub_t *sp = &x->s;
    double now = x->now;
    zq_store_task_t st = {.id = sp->id,
                          .task = sp->task,
                          .queue = sp->queue,
                          .msg = x->msg,
                          .msglen = x->msglen,
                          .eta = sp->eta,
                          .expires = sp->expires,
                          .sent = now,
                          .retries = sp->retries,
                          .ignore_result = sp->ignore_result,
                          .parent_id = sp->parent_id,
                          .root_id = sp->root_id};
    int64_t rid = 0;
    self->need_commit = 1; /* acknowledged (or dispatched, for a sub-task) after a commit */
    int rc = zq_store_enqueue(self->store, &st, &rid);
    int pushed = 0;
    if (rc == ZQ_EDUPLICATE) {
        self->stats.duplicates++;
        if (a && x->get_req > 0)
            pushed = s_push_later(self, a, x->get_req, sp->id, 1);
    } else if (rc != ZQ_OK) {
        s_store_failed(self, "enqueue", sp->id);
        if (a)
            s_reply_error_to(self, a, ZQ_WERR_STORE, "SUBMIT: the task could not be stored: %s",
                             zq_store_errmsg(self->store));
        return;
    } else {
        self->stats.submitted++;
        self->batch_submitted++;
        if (s_wants(self, EV_TASK_SENT))
            s_event_sent(self, x);
        int revoked = self->n_revoked > 0 ? zq_store_is_revoked(self->store, sp->id) : 0;
        if (a && x->get_req > 0)
            pushed = s_push_later(self, a, x->get_req, sp->id, revoked == 1);
        s_queue_t *q = s_queue_get(self, sp->queue);
        if (revoked == 1) {
            /* revoked before it was sent: it never runs */
            if (zq_store_revoke_queued(self->store, sp->id, 0, "revoked", now, NULL) == ZQ_OK) {
                self->stats.revoked++;
                s_event_revoked(self, sp->id, 0);
                s_notify(self, sp->id);
            }
        } else if (q) {
            zq_store_row_t row = {.rid = rid,
                                  .id = sp->id,
                                  .task = sp->task,
                                  .queue = sp->queue,
                                  .msg = x->msg,
                                  .msglen = x->msglen,
                                  .eta = sp->eta,
                                  .expires = sp->expires};
            if (sp->eta > 0)
                q->n_sched++;
            else
                q->n_ready++;
            s_task_t *t = s_task_new(&row, q);
            if (t)
                s_place(self, t, 0);
            else if (sp->eta > 0)
                q->sched_spilled = 1;
            else
                q->ready_spilled = 1;
        }
    }
    if (a) {
        s_out_t *o = s_reply_begin_to(self, a, 1);
        if (o) {
            s_member(&self->arena, "id");
            zq_sb_json_str(&self->arena, sp->id);
            if (pushed)
                zq_sb_puts(&self->arena, ",\"get\":true");
            o->hold = pushed && o->coalesce;
            s_reply_end(self, o);
        }
    }
}

/* An upstream message that could not be applied for lack of memory: not a bad message, and
 * not lost either: its BATCH is left unconfirmed (s_on_batch*), so that the worker sends it
 * again, and applying what was applied is idempotent. */
static void s_up_unapplied(zq_broker_t *self, const char *what, const char *id)
{
    self->up_unapplied = 1;
    if (s_rate_ok(self, "upstream-oom", 8))
        ZQ_ERROR("broker: out of memory applying %s%s%s: its batch is left unconfirmed, the "
                 "worker sends it again",
                 what, id ? " " : "", id ? id : "");
}

/* A SUBMIT through the general path (a cJSON tree). reply: answer on the frontend (else an
 * upstream sub-task). */
static void s_submit(zq_broker_t *self, zq_msg_t *m, int reply)
{
    char err[256];
    s_subm_t x = {0};
    double now = zq_now();
    /* "get": the request number under which the client wants the task's record when it
     * ends (docs/protocol.md §7): a GET that travels with the SUBMIT */
    const cJSON *getv = cJSON_GetObjectItemCaseSensitive(m->body, "get");
    if (reply && !S_ABSENT(getv) &&
        (!cJSON_IsNumber(getv) || !(getv->valuedouble >= 1) ||
         getv->valuedouble >= 9007199254740992.0 || getv->valuedouble != floor(getv->valuedouble))) {
        self->stats.bad_messages++;
        s_reply_error(self, m, ZQ_WERR_INVAL, "SUBMIT: get: must be a request number");
        return;
    }
    x.get_req = reply && cJSON_IsNumber(getv) ? getv->valuedouble : 0;
    int rc = s_submit_prepare(m->body, now, &x.s, err, sizeof err);
    if (rc == ZQ_ENOMEM && !reply) {
        s_up_unapplied(self, "the sub-task SUBMIT", zq_json_str(m->body, "id", NULL));
        return;
    }
    if (rc != ZQ_OK) {
        self->stats.bad_messages++;
        if (rc == ZQ_ENOMEM)
            snprintf(err, sizeof err, "out of memory");
        if (reply)
            s_reply_error(self, m, rc == ZQ_ENOMEM ? S_INTERNAL : ZQ_WERR_INVAL, "SUBMIT: %s",
                          err);
        else if (s_rate_ok(self, "upstream", 8))
            ZQ_WARN("broker: sub-task dropped: SUBMIT: %s", err);
        return;
    }
    /* "req", "get" and "coalesce" belong to the request, not to the task: out of the
     * stored text */
    static const char *const reqonly[] = {"req", "get", "coalesce"};
    cJSON *kept[3];
    for (int i = 0; i < 3; i++)
        kept[i] = cJSON_DetachItemFromObjectCaseSensitive(m->body, reqonly[i]);
    char *msg = cJSON_PrintUnformatted(m->body);
    for (int i = 0; i < 3; i++)
        if (kept[i])
            cJSON_AddItemToObject(m->body, reqonly[i], kept[i]);
    if (!msg) {
        if (reply)
            s_reply_error(self, m, S_INTERNAL, "SUBMIT: out of memory");
        else
            s_up_unapplied(self, "the sub-task SUBMIT", x.s.id);
        return;
    }
    x.msg = msg;
    x.msglen = strlen(msg);
    x.now = now;
    x.body = m->body;
    s_asker_t a = s_asker(m);
    s_submit_take(self, reply ? &a : NULL, &x);
    cJSON_free(msg);
}

/* A SUBMIT from the frontend read without a tree (zq_submit.h); 0 when its reader declined
 * (the caller decodes it and takes the general path). */
static int s_submit_fast(zq_broker_t *self, const zq_frames_t *f)
{
    zq_submit_t r;
    zq_sb_t *b = &self->submit_text;
    b->len = 0;
    b->oom = 0;
    double now = zq_now();
    if (zq_submit_read(f->data[3], f->size[3], now, &r, b) != ZQ_OK)
        return 0;
    s_subm_t x = {0};
    x.now = now;
    x.s.id = r.id;
    x.s.task = r.task;
    x.s.queue = r.queue;
    x.s.root_id = r.root_id;
    x.s.parent_id = r.parent_id[0] ? r.parent_id : NULL;
    x.s.eta = r.eta;
    x.s.expires = r.expires;
    x.s.retries = r.retries;
    x.s.ignore_result = r.ignore_result;
    x.msg = b->buf;
    x.msglen = b->len;
    x.get_req = r.get;
    x.args = r.args;
    x.args_len = r.args_len;
    x.kwargs = r.kwargs;
    x.kwargs_len = r.kwargs_len;
    s_asker_t a = {f->data[0], f->size[0], r.has_req, r.req, r.coalesce};
    s_submit_take(self, &a, &x);
    return 1;
}

/* ---------------------------------------------------------------------------------------
 * Upstream: STATE, RETURN, SUBMIT
 */
static void s_bad_upstream(zq_broker_t *self, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void s_bad_upstream(zq_broker_t *self, const char *fmt, ...)
{
    self->stats.bad_messages++;
    if (!s_rate_ok(self, "upstream", 8))
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ZQ_WARN("broker: upstream message dropped: %s", msg);
}

/* The exception object of a STATE as {"type","message"} text. */
static void s_exc_json(zq_sb_t *b, const char *type, const char *message)
{
    zq_sb_puts(b, "{\"type\":");
    zq_sb_json_str(b, type);
    zq_sb_puts(b, ",\"message\":");
    zq_sb_json_str(b, message ? message : "");
    zq_sb_puts(b, "}");
}

static void s_state_event(zq_broker_t *self, const zq_upstate_t *body,
                          const zq_store_state_t *st, const char *result)
{
    const char *state = st->state;
    int ev = !strcmp(state, ZQ_STATE_RECEIVED)                              ? EV_TASK_RECEIVED
             : !strcmp(state, ZQ_STATE_STARTED)                             ? EV_TASK_STARTED
             : !strcmp(state, ZQ_STATE_SUCCESS)                             ? EV_TASK_SUCCEEDED
             : !strcmp(state, ZQ_STATE_FAILURE)                             ? EV_TASK_FAILED
             : !strcmp(state, ZQ_STATE_RETRY)                               ? EV_TASK_RETRIED
                                                                            : EV_TASK_REVOKED;
    if (!s_wants(self, ev))
        return;
    s_out_t *o = s_event_begin(self, ev);
    if (!o)
        return;
    zq_sb_t *b = &self->arena;
    s_member(b, "uuid");
    zq_sb_json_str(b, st->id);
    s_member(b, "hostname");
    zq_sb_json_str(b, st->worker);
    switch (ev) {
    case EV_TASK_STARTED:
        s_member(b, "pid");
        s_jnum(b, body->has_pid ? body->pid : 0);
        break;
    case EV_TASK_SUCCEEDED:
        s_member(b, "result");
        zq_sb_puts(b, result ? result : "null");
        s_member(b, "runtime");
        s_jnum(b, st->runtime >= 0 ? st->runtime : 0);
        break;
    case EV_TASK_FAILED:
        s_member(b, "exception");
        s_exc_json(b, st->exc_type, st->exc_message);
        s_member(b, "traceback");
        zq_sb_json_str(b, st->traceback);
        break;
    case EV_TASK_RETRIED:
        s_member(b, "exception");
        s_exc_json(b, st->exc_type, st->exc_message);
        s_member(b, "eta");
        zq_sb_json_time(b, st->eta);
        break;
    case EV_TASK_REVOKED: {
        const char *why = st->exc_message ? st->exc_message : "";
        zq_sb_printf(b, ",\"terminated\":%s,\"signum\":",
                     !strcmp(why, "terminated") ? "true" : "false");
        zq_sb_puts(b, body->signum ? body->signum : "null");
        zq_sb_printf(b, ",\"expired\":%s", !strcmp(why, "expired") ? "true" : "false");
        break;
    }
    default:
        break;
    }
    s_event_end(self, o);
}

/* The store write of a STATE (validated by s_on_state); st's strings are u's. */
static void s_state_fields(const zq_upstate_t *u, zq_store_state_t *st)
{
    memset(st, 0, sizeof *st);
    st->id = u->id;
    st->state = zq_state_canonical(u->state);
    st->worker = u->worker && zq_valid_token(u->worker) ? u->worker : NULL;
    if (!u->timestamp || zq_time_parse(u->timestamp, &st->timestamp) != ZQ_OK)
        st->timestamp = zq_now();
    st->runtime = u->has_runtime && u->runtime >= 0 && isfinite(u->runtime) ? u->runtime : -1;
    if (u->has_exc) {
        st->exc_type = u->exc_type ? u->exc_type : "Exception";
        st->exc_message = u->exc_message ? u->exc_message : "";
    }
    st->traceback = u->traceback;
    const char *state = st->state;
    int is_retry = !strcmp(state, ZQ_STATE_RETRY);
    if (!strcmp(state, ZQ_STATE_SUCCESS)) {
        st->result = u->result;
    } else if ((zq_state_is_terminal(state) || is_retry) && !st->exc_type) {
        st->exc_type = is_retry ? "Retry" : !strcmp(state, ZQ_STATE_REVOKED) ? "TaskRevokedError"
                                                                             : "Exception";
    }
    if (is_retry) {
        double eta = 0;
        if (!u->eta || zq_time_parse(u->eta, &eta) != ZQ_OK)
            eta = u->has_countdown && isfinite(u->countdown) ? st->timestamp + u->countdown
                                                             : st->timestamp;
        st->eta = eta > 0 ? eta : st->timestamp;
    }
    st->acks_late = !strcmp(state, ZQ_STATE_STARTED) && u->acks_late;
    /* RECEIVED / STARTED the worker folded into this state (docs §8) */
    if (u->received && zq_time_parse(u->received, &st->received_at) != ZQ_OK)
        st->received_at = 0;
    if (u->started && zq_time_parse(u->started, &st->started_at) != ZQ_OK)
        st->started_at = 0;
}

/* How far a state is in one run: RECEIVED 1, STARTED 2, RETRY and the terminal ones 3. */
static int s_state_rank(const char *state)
{
    return !strcmp(state, ZQ_STATE_RECEIVED) ? 1 : !strcmp(state, ZQ_STATE_STARTED) ? 2 : 3;
}

/* Take a task out of its queue in memory, if it is there: it got a state while queued.
 * After a restart, that is a worker's result (or start) for a task whose earlier states
 * died with the old broker: it ran, and must not be handed out again. */
static void s_unqueue(zq_broker_t *self, s_task_t *t)
{
    s_task_t *mem = s_unplace(t->q, t->rid, t->eta);
    if (!mem)
        return;
    if (mem->eta > 0)
        mem->q->n_sched--;
    else
        mem->q->n_ready--;
    free(mem);
}

/* Apply the STATEs of one task gathered during the turn as one store write, then publish
 * their events and act on the outcome. */
static void s_apply_pending(zq_broker_t *self, s_pend_t *p)
{
    zq_store_state_t st;
    s_state_fields(p->final, &st);
    const char *result = st.result;
    double when;
    if (p->received && p->received != p->final)
        st.received_at = zq_time_parse(p->received->timestamp ? p->received->timestamp : "",
                                       &when) == ZQ_OK
                             ? when
                             : st.timestamp;
    if (p->started && p->started != p->final)
        st.started_at = zq_time_parse(p->started->timestamp ? p->started->timestamp : "",
                                      &when) == ZQ_OK
                            ? when
                            : st.timestamp;
    st.rid = p->rid;
    zq_store_where_t where;
    int rc = zq_store_set_state(self->store, &st, &where);
    /* a RETRY is queued again at once: commit before it can be handed out. Other states
     * may wait S_COMMIT_DELAY for the next commit unless a GET waits for them (s_notify) */
    if (!strcmp(st.state, ZQ_STATE_RETRY))
        self->need_commit = 1;
    if (rc == ZQ_ESTORE) {
        s_store_failed(self, "state", p->id);
    } else if (rc == ZQ_OK) {
        /* the events of the folded states too, in order */
        const zq_upstate_t *earlier[2] = {p->received, p->started};
        for (int i = 0; i < 2; i++) {
            zq_store_state_t ev;
            if (earlier[i] && earlier[i] != p->final) {
                s_state_fields(earlier[i], &ev);
                s_state_event(self, earlier[i], &ev, NULL); /* they carry no result */
            }
        }
        /* and of the states the worker folded into this one */
        static const char *const folded[2] = {ZQ_STATE_RECEIVED, ZQ_STATE_STARTED};
        double at[2] = {st.received_at, st.started_at};
        for (int i = 0; i < 2; i++) {
            if (earlier[i] || at[i] <= 0 || !strcmp(st.state, folded[i]))
                continue;
            zq_store_state_t ev = st;
            ev.state = folded[i];
            s_state_event(self, p->final, &ev, NULL);
        }
        s_state_event(self, p->final, &st, result);
        const char *state = st.state;
        if (!strcmp(state, ZQ_STATE_RETRY)) {
            self->stats.retried++;
            s_queue_t *q = s_queue_get(self, where.queue);
            if (q) {
                q->n_sched++;
                if (!q->sched_spilled ||
                    !s_key_lt(q->sched_eta, q->sched_rid, where.eta, where.rid)) {
                    s_task_t *t = s_task_load(self, p->id); /* the message says retries+1 */
                    if (t)
                        s_place(self, t, 0);
                    else
                        q->sched_spilled = 1;
                }
            }
        } else if (zq_state_is_terminal(state)) {
            if (p->unheld && !s_map_get(&self->orphans, p->id)) {
                s_task_t *t = s_task_load(self, p->id);
                if (t)
                    s_unqueue(self, t);
                free(t);
            }
            if (!strcmp(state, ZQ_STATE_SUCCESS))
                self->stats.succeeded++;
            else if (!strcmp(state, ZQ_STATE_FAILURE))
                self->stats.failed++;
            else
                self->stats.revoked++;
            /* compose the record for whoever waits instead of reading the row back */
            char *rec = NULL;
            size_t reclen = 0;
            s_task_t *t = p->task;
            if (t && zq_store_record_compose(&st, t->msg, t->msglen, t->eta, t->expires, &rec,
                                             &reclen) != ZQ_OK)
                rec = NULL;
            s_notify_rec(self, p->id, rec, reclen);
        }
    } else if (rc == ZQ_ESTATE) {
        ZQ_DEBUG("broker: %s for task %s ignored: it is already %s", st.state, p->id,
                 zq_store_get_state(self->store, p->id));
    } else if (rc == ZQ_ENOTFOUND) {
        s_bad_upstream(self, "STATE %s for unknown task %s", st.state, p->id);
    }
}

/* Write every gathered STATE (end of the drain, before anything else reads the store). */
static void s_flush_states(zq_broker_t *self)
{
    s_pend_t *p = self->pend_first;
    self->pend_first = self->pend_last = NULL;
    while (p) {
        s_pend_t *next = p->next;
        s_map_del(&self->pend, &p->node);
        if (!self->batch_failed)
            s_apply_pending(self, p);
        free(p->task);
        free(p);
        p = next;
    }
    zq_arena_reset(&self->turn_arena);
}

/* STATE {"id","state","worker","timestamp",...} (docs §8). Credits come back at once; the
 * store write waits for the end of the drain, where the STATEs of one task that arrived
 * together (RECEIVED, STARTED, SUCCESS of a short task) become one write. body lives in
 * the turn's arena until then. */
static void s_on_state(zq_broker_t *self, const zq_upstate_t *body)
{
    const char *id = body->id;
    if (!zq_valid_token(id)) {
        s_bad_upstream(self, "STATE: id: missing or not a task id");
        return;
    }
    const char *state = zq_state_canonical(body->state);
    if (!state || !strcmp(state, ZQ_STATE_PENDING)) {
        s_bad_upstream(self, "STATE %s: state: not one of RECEIVED, STARTED, RETRY, SUCCESS, "
                             "FAILURE, REVOKED", id);
        return;
    }
    const char *worker = body->worker;
    int rank = s_state_rank(state);
    s_held_t *h = s_held_find(self, id);
    /* the first and final state of a task somebody waits for: keep the task, its record is
     * composed from the message instead of read back from the row */
    int compose = h && rank == 3 && !h->received && !h->started && s_map_get(&self->waits, id);
    s_task_t *kept = NULL;
    /* its row (the broker's copy of the task still knows it): spares the store a lookup */
    int64_t rid = h && h->task ? h->task->rid : 0;
    if (h) {
        h->received = 1;
        if (rank == 2) {
            h->started = 1;
            h->acks_late = body->acks_late;
        }
        /* a credit comes back; not to a worker that lost the task to another one */
        if (rank == 3 && (!worker || !strcmp(worker, h->w->name))) {
            double rt = body->runtime;
            if (body->has_runtime && rt >= 0 && isfinite(rt)) {
                s_worker_t *w = h->w;
                w->runtime_avg = w->runtime_avg < 0 ? rt : 0.9 * w->runtime_avg + 0.1 * rt;
            }
            kept = s_held_release(self, h, compose);
        }
    }
    s_pend_t *p = (s_pend_t *)s_map_get(&self->pend, id);
    if (!p) {
        size_t n = strlen(id);
        p = calloc(1, sizeof *p + n + 1);
        if (!p) {
            free(kept);
            s_up_unapplied(self, "the STATE of", id);
            return;
        }
        memcpy(p->id, id, n + 1);
        p->node.key = p->id;
        if (s_map_put(&self->pend, &p->node) != ZQ_OK) {
            free(p);
            free(kept);
            s_up_unapplied(self, "the STATE of", id);
            return;
        }
        if (self->pend_last)
            self->pend_last->next = p;
        else
            self->pend_first = p;
        self->pend_last = p;
    } else if (s_state_rank(p->final->state) == 3) {
        free(kept);
        return; /* the first end of a run wins, as in the store */
    }
    if (rank == 1 && !p->received)
        p->received = body;
    if (rank == 2 && !p->started)
        p->started = body;
    if (!p->final || rank >= s_state_rank(p->final->state)) {
        p->final = body;
        p->unheld = h == NULL;
    }
    if (rid > 0)
        p->rid = rid;
    if (kept && !p->task && !p->received && !p->started && p->final == body) {
        p->task = kept;
        kept = NULL;
    }
    free(kept);
}

/* RETURN {"worker","ids"}: tasks a worker will not run go back to the head of their queue. */
static void s_on_return(zq_broker_t *self, const cJSON *body)
{
    const char *worker = zq_json_str(body, "worker", NULL);
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(body, "ids");
    if (!cJSON_IsArray(ids)) {
        s_bad_upstream(self, "RETURN: ids: must be an array of task ids");
        return;
    }
    long n = 0;
    /* only a worker that shuts down returns tasks: what it returns must go elsewhere */
    s_worker_t *from = worker ? s_worker_find(self, worker) : NULL;
    if (from)
        from->retiring = 1;
    /* last first: each goes to the head, so the queue ends in the original order */
    for (int i = cJSON_GetArraySize(ids) - 1; i >= 0; i--) {
        const cJSON *e = cJSON_GetArrayItem(ids, i);
        if (!cJSON_IsString(e))
            continue;
        s_held_t *h = s_held_find(self, e->valuestring);
        if (!h || (worker && strcmp(worker, h->w->name) != 0))
            continue;
        s_requeue_held(self, h);
        n++;
    }
    if (n)
        ZQ_INFO("broker: %s returned %ld task%s", worker ? worker : "a worker", n,
                n == 1 ? "" : "s");
}

static void s_on_upstream(zq_broker_t *self, zq_msg_t *m);

/* Confirm batch seq of w once this turn is committed (s_send_acks). */
static void s_ack_later(s_worker_t *w, uint64_t seq)
{
    if (seq > w->seq_max)
        w->seq_max = seq;
    if (w->nacks == w->acks_cap) {
        size_t nc = w->acks_cap ? w->acks_cap * 2 : 16;
        uint64_t *v = realloc(w->acks, nc * sizeof *v);
        if (!v)
            return; /* not confirmed: the worker sends it again later */
        w->acks = v;
        w->acks_cap = nc;
    }
    w->acks[w->nacks++] = seq;
}

/* After a commit: ACK {"seqs": [...]} to every worker whose batches it holds. A lost ACK
 * only makes the worker send the batch again, which is applied idempotently. */
static void s_send_acks(zq_broker_t *self)
{
    zq_sb_t *b = &self->scratch;
    for (s_worker_t *w = self->workers; w; w = w->next) {
        if (!w->nacks)
            continue;
        b->len = 0;
        zq_sb_puts(b, "{\"seqs\":[");
        for (size_t i = 0; i < w->nacks; i++)
            zq_sb_printf(b, i ? ",%llu" : "%llu", (unsigned long long)w->acks[i]);
        zq_sb_puts(b, "]}");
        w->nacks = 0;
        if (b->oom) {
            b->oom = 0;
            continue;
        }
        if (zq_msg_send_raw(w->push, NULL, 0, ZQ_CMD_ACK, b->buf, b->len, ZMQ_DONTWAIT) != ZQ_OK)
            ZQ_DEBUG("broker: ACK not sent to %s: %s", w->name, zmq_strerror(zmq_errno()));
    }
}

/* The turn's commit failed: its upstream messages are applied again later, and
 * confirmed then. */
static void s_drop_acks(zq_broker_t *self)
{
    for (s_worker_t *w = self->workers; w; w = w->next)
        w->nacks = 0;
}

/* BATCH {"worker","seq","messages":[[command, body], ...]} (docs §8): each message is applied
 * as if it had come alone; seq is confirmed with ACK after the commit. */
static void s_on_batch(zq_broker_t *self, zq_msg_t *m)
{
    const char *worker = zq_json_str(m->body, "worker", NULL);
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(m->body, "seq");
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(m->body, "messages");
    if (!zq_valid_token(worker) || !cJSON_IsNumber(seq) || seq->valuedouble < 1 ||
        seq->valuedouble >= 9007199254740992.0 || seq->valuedouble != floor(seq->valuedouble) ||
        !cJSON_IsArray(msgs)) {
        s_bad_upstream(self, "BATCH: needs worker (a worker name), seq (an integer >= 1) and "
                             "messages (an array)");
        return;
    }
    const cJSON *e;
    self->up_unapplied = 0;
    cJSON_ArrayForEach(e, msgs)
    {
        const cJSON *cmd = cJSON_GetArrayItem(e, 0), *body = cJSON_GetArrayItem(e, 1);
        if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) != 2 || !cJSON_IsString(cmd) ||
            !cJSON_IsObject(body) || strlen(cmd->valuestring) > ZQ_MAX_CMD ||
            !strcmp(cmd->valuestring, ZQ_CMD_BATCH)) {
            s_bad_upstream(self, "BATCH %s/%.0f: each message must be [command, object]",
                           worker, seq->valuedouble);
            continue;
        }
        zq_msg_t one;
        memset(&one, 0, sizeof one);
        snprintf(one.cmd, sizeof one.cmd, "%s", cmd->valuestring);
        one.body = (cJSON *)body; /* borrowed: the batch stays in the turn's upkeep */
        s_on_upstream(self, &one);
    }
    s_worker_t *w = s_worker_find(self, worker);
    if (w && !self->up_unapplied)
        s_ack_later(w, (uint64_t)seq->valuedouble);
}

/* A STATE body given as a tree (borrowed). */
static void s_on_state_json(zq_broker_t *self, const cJSON *body)
{
    zq_upstate_t *u;
    if (zq_upstate_from_json(body, &self->turn_arena, &u) != ZQ_OK) {
        s_up_unapplied(self, "a STATE", zq_json_str(body, "id", NULL));
        return;
    }
    s_on_state(self, u);
}


/* BATCH as text (docs §8), in the form zq-worker sends, without a tree for the batch nor for
 * its STATEs. ZQ_OK: applied as s_on_batch would; ZQ_JSCAN_DECLINE: not in that form (a
 * malformed batch, a bad worker, seq or message, an escape in a key or a command, \u, deep
 * nesting) and nothing was applied: s_on_batch reads it from a tree and words any error. */
static int s_on_batch_text(zq_broker_t *self, const char *text, size_t len)
{
    zq_jscan_t r;
    zq_jscan_init(&r, text, len);
    char worker[256] = "";
    double seq = 0;
    int seen = 0, first = 1, more;
    const char *k, *v;
    size_t kn, vn;
    self->nupmsgs = 0;
    if (zq_jscan_object(&r) != 0)
        return ZQ_JSCAN_DECLINE;
    while ((more = zq_jscan_member(&r, &first, &k, &kn)) == 1) {
        int key = kn == 6 && !memcmp(k, "worker", 6) ? 1 : kn == 3 && !memcmp(k, "seq", 3) ? 2
                  : kn == 8 && !memcmp(k, "messages", 8)                               ? 4
                                                                                          : 0;
        if (!key || (seen & key))
            return ZQ_JSCAN_DECLINE;
        seen |= key;
        if (key == 1) {
            if (zq_jscan_string(&r, 0, &v, &vn) != 0 || vn >= sizeof worker)
                return ZQ_JSCAN_DECLINE;
            memcpy(worker, v, vn);
            worker[vn] = '\0';
        } else if (key == 2) {
            if (zq_jscan_number(&r, &seq) != 0)
                return ZQ_JSCAN_DECLINE;
        } else {
            int efirst = 1, emore;
            if (zq_jscan_array(&r) != 0)
                return ZQ_JSCAN_DECLINE;
            while ((emore = zq_jscan_element(&r, &efirst)) == 1) {
                s_upmsg_t m = {0};
                if (zq_jscan_array(&r) != 0 || zq_jscan_string(&r, 0, &m.cmd, &m.cmdlen) != 0 ||
                    m.cmdlen == 0 || m.cmdlen > ZQ_MAX_CMD || zq_jscan_char(&r, ',') != 0 ||
                    !zq_jscan_peek(&r, '{'))
                    return ZQ_JSCAN_DECLINE;
                if (m.cmdlen == strlen(ZQ_CMD_BATCH) && !memcmp(m.cmd, ZQ_CMD_BATCH, m.cmdlen))
                    return ZQ_JSCAN_DECLINE;
                m.body = r.p;
                if (m.cmdlen == strlen(ZQ_CMD_STATE) && !memcmp(m.cmd, ZQ_CMD_STATE, m.cmdlen)) {
                    /* read once: validated and taken in the same pass */
                    zq_jscan_t at = r;
                    int rc = zq_upstate_scan(&at, &self->turn_arena, &m.state);
                    if (rc == ZQ_OK)
                        r = at;
                    m.oom = rc == ZQ_ENOMEM;
                }
                if (!m.state && zq_jscan_value(&r, 0, NULL, NULL) != 0)
                    return ZQ_JSCAN_DECLINE;
                m.bodylen = (size_t)(r.p - m.body);
                if (zq_jscan_char(&r, ']') != 0)
                    return ZQ_JSCAN_DECLINE;
                if (self->nupmsgs == self->upmsgs_cap) {
                    size_t nc = self->upmsgs_cap ? 2 * self->upmsgs_cap : 256;
                    s_upmsg_t *nv = realloc(self->upmsgs, nc * sizeof *nv);
                    if (!nv)
                        return ZQ_JSCAN_DECLINE;
                    self->upmsgs = nv;
                    self->upmsgs_cap = nc;
                }
                self->upmsgs[self->nupmsgs++] = m;
            }
            if (emore != 0)
                return ZQ_JSCAN_DECLINE;
        }
    }
    if (more != 0 || zq_jscan_end(&r) != 0 || seen != 7 || !zq_valid_token(worker) ||
        !(seq >= 1 && seq < 9007199254740992.0 && seq == floor(seq)))
        return ZQ_JSCAN_DECLINE;
    self->up_unapplied = 0;
    for (size_t i = 0; i < self->nupmsgs; i++) {
        const s_upmsg_t *m = &self->upmsgs[i];
        if (m->state) {
            s_on_state(self, m->state);
            continue;
        }
        zq_msg_t one;
        memset(&one, 0, sizeof one);
        memcpy(one.cmd, m->cmd, m->cmdlen);
        /* anything else, and a STATE its reader declined, from a tree of its own */
        if (m->oom || !(one.body = cJSON_ParseWithLength(m->body, m->bodylen))) {
            s_up_unapplied(self, one.cmd, NULL); /* validated text: only memory can fail */
            continue;
        }
        s_on_upstream(self, &one);
        zq_msg_clear(&one);
    }
    self->nupmsgs = 0;
    s_worker_t *w = s_worker_find(self, worker);
    if (w && !self->up_unapplied)
        s_ack_later(w, (uint64_t)seq);
    return ZQ_OK;
}

static void s_on_upstream(zq_broker_t *self, zq_msg_t *m)
{
    if (!strcmp(m->cmd, ZQ_CMD_BATCH) && m->raw && !m->body) {
        if (s_on_batch_text(self, m->raw, m->raw_len) == ZQ_OK)
            return;
        /* declined: the tree decides, and words what is wrong */
        const void *fr[3] = {ZQ_PROTO_VERSION, ZQ_CMD_BATCH, m->raw};
        size_t sz[3] = {strlen(ZQ_PROTO_VERSION), strlen(ZQ_CMD_BATCH), m->raw_len};
        char err[256];
        zq_msg_t t;
        if (zq_msg_decode(fr, sz, 3, 0, &t, err, sizeof err) != ZQ_OK) {
            s_bad_upstream(self, "%s", err);
            return;
        }
        free(m->raw);
        m->raw = NULL;
        m->raw_len = 0;
        m->body = t.body; /* a failed commit applies it again from the tree */
    }
    if (!strcmp(m->cmd, ZQ_CMD_BATCH))
        s_on_batch(self, m);
    else if (!strcmp(m->cmd, ZQ_CMD_STATE))
        s_on_state_json(self, m->body);
    else if (!strcmp(m->cmd, ZQ_CMD_SUBMIT))
        s_submit(self, m, 0);
    else if (!strcmp(m->cmd, ZQ_CMD_RETURN))
        s_on_return(self, m->body);
    else
        s_bad_upstream(self, "unknown command %s", m->cmd);
}

/* ---------------------------------------------------------------------------------------
 * Frontend requests (docs §7)
 */

/* A request field error: EINVAL naming the field. */
#define S_INVAL(self, m, ...)                                                                  \
    do {                                                                                       \
        (self)->stats.bad_messages++;                                                          \
        s_reply_error((self), (m), ZQ_WERR_INVAL, __VA_ARGS__);                                \
    } while (0)

/* The timeout of a GET: absent or null = forever. ZQ_EINVAL when not a number >= 0. */
static int s_get_timeout(const cJSON *body, double *out)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(body, "timeout");
    *out = INFINITY;
    if (S_ABSENT(t))
        return ZQ_OK;
    if (!cJSON_IsNumber(t) || !(t->valuedouble >= 0) || isnan(t->valuedouble))
        return ZQ_EINVAL;
    if (isfinite(t->valuedouble) && t->valuedouble < 1e9)
        *out = t->valuedouble;
    return ZQ_OK;
}

static void s_on_get(zq_broker_t *self, zq_msg_t *m)
{
    const char *id = zq_json_str(m->body, "id", NULL);
    if (!zq_valid_token(id)) {
        S_INVAL(self, m, "GET: id: must be a task id");
        return;
    }
    double timeout;
    if (s_get_timeout(m->body, &timeout) != ZQ_OK) {
        S_INVAL(self, m, "GET: timeout: must be a number of seconds >= 0, or null");
        return;
    }
    const char *state = zq_store_get_state(self->store, id);
    if (state && !zq_state_is_terminal(state) && timeout > 0) {
        if (s_park(self, m, id, timeout) == ZQ_OK)
            return;
        s_reply_error(self, m, S_INTERNAL, "GET: out of memory");
        return;
    }
    /* ended, never accepted (known:false, state PENDING), or timeout 0 */
    char *rec;
    size_t len;
    int rc = zq_store_record_text(self->store, id, &rec, &len);
    if (rc != ZQ_OK) {
        s_reply_error(self, m, rc == ZQ_ESTORE ? ZQ_WERR_STORE : S_INTERNAL, "GET: %s",
                      rc == ZQ_ESTORE ? zq_store_errmsg(self->store) : "out of memory");
        return;
    }
    s_reply_object(self, m, 1, rec, len, state && !zq_state_is_terminal(state));
    free(rec);
}

static void s_on_query(zq_broker_t *self, zq_msg_t *m)
{
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(m->body, "ids");
    const char *id = zq_json_str(m->body, "id", NULL);
    char *rec;
    size_t len;
    if (!ids) {
        if (!zq_valid_token(id)) {
            S_INVAL(self, m, "QUERY: give \"id\" (a task id) or \"ids\" (an array of them)");
            return;
        }
        int rc = zq_store_record_text(self->store, id, &rec, &len);
        if (rc != ZQ_OK) {
            s_reply_error(self, m, ZQ_WERR_STORE, "QUERY: %s", zq_store_errmsg(self->store));
            return;
        }
        s_reply_object(self, m, 1, rec, len, 0);
        free(rec);
        return;
    }
    if (!cJSON_IsArray(ids) || cJSON_GetArraySize(ids) > S_LIST_MAX) {
        S_INVAL(self, m, "QUERY: ids: must be an array of at most %d task ids", S_LIST_MAX);
        return;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, ids)
    {
        if (!cJSON_IsString(e) || !zq_valid_token(e->valuestring)) {
            S_INVAL(self, m, "QUERY: ids: every entry must be a task id");
            return;
        }
    }
    s_out_t *o = s_reply_begin(self, m, 1);
    if (!o)
        return;
    zq_sb_t *b = &self->arena;
    zq_sb_puts(b, "\"records\":[");
    int first = 1;
    cJSON_ArrayForEach(e, ids)
    {
        if (zq_store_record_text(self->store, e->valuestring, &rec, &len) != ZQ_OK)
            continue;
        if (!first)
            zq_sb_putn(b, ",", 1);
        first = 0;
        zq_sb_putn(b, rec, len);
        free(rec);
    }
    zq_sb_puts(b, "]");
    s_reply_end(self, o);
}

static void s_on_info(zq_broker_t *self, zq_msg_t *m)
{
    s_out_t *o = s_reply_begin(self, m, 0);
    if (!o)
        return;
    zq_sb_t *b = &self->arena;
    s_member(b, "broker_id");
    zq_sb_json_str(b, self->broker_id);
    s_member(b, "version");
    zq_sb_json_str(b, PACKAGE_VERSION);
    s_member(b, "frontend");
    zq_sb_json_str(b, self->frontend_ep);
    s_member(b, "upstream");
    zq_sb_json_str(b, self->upstream_ep);
    s_member(b, "events");
    zq_sb_json_str(b, self->events_ep);
    s_member(b, "started");
    zq_sb_json_str(b, self->started_iso);
    s_member(b, "data_dir");
    zq_sb_json_str(b, self->data_dir);
    s_member(b, "sync");
    zq_sb_json_str(b, zq_store_sync_name(self->sync));
    s_member(b, "heartbeat");
    s_jnum(b, self->heartbeat);
    s_member(b, "lookahead");
    s_jnum(b, self->lookahead);
    s_member(b, "curve_key"); /* docs/protocol.md §13: null without CURVE */
    if (self->auth)
        zq_sb_json_str(b, self->curve.public_key);
    else
        zq_sb_puts(b, "null");
    const zq_broker_stats_t *s = &self->stats;
    zq_sb_printf(b,
                 ",\"stats\":{\"submitted\":%ld,\"duplicates\":%ld,\"dispatched\":%ld,"
                 "\"succeeded\":%ld,\"failed\":%ld,\"revoked\":%ld,\"retried\":%ld,"
                 "\"bad_messages\":%ld,\"commits\":%ld,\"commit_failures\":%ld,\"recovered\":%ld,"
                 "\"workers\":%d,\"held\":%zu,\"parked_gets\":%zu,\"events\":%ld,"
                 "\"auth_rejected\":%ld}",
                 s->submitted, s->duplicates, s->dispatched, s->succeeded, s->failed, s->revoked,
                 s->retried, s->bad_messages, s->commits, s->commit_failures, s->recovered,
                 self->nworkers, self->held.n, self->nwaiters, s->events,
                 zq_auth_rejected(self->auth));
    s_reply_end(self, o);
}

static void s_on_workers(zq_broker_t *self, zq_msg_t *m)
{
    s_out_t *o = s_reply_begin(self, m, 0);
    if (!o)
        return;
    zq_sb_t *b = &self->arena;
    zq_sb_puts(b, "\"workers\":[");
    for (s_worker_t *w = self->workers; w; w = w->next) {
        char *info = cJSON_PrintUnformatted(w->info);
        if (!info)
            continue;
        size_t n = strlen(info);
        zq_sb_putn(b, info, n - 1); /* without "}" */
        cJSON_free(info);
        s_member(b, "last_heartbeat");
        zq_sb_json_time(b, w->hb_wall);
        zq_sb_printf(b,
                     ",\"held\":%d,\"held_eta\":%d,\"processed\":%ld,\"active\":%ld,"
                     "\"connected\":%s,\"dispatch\":",
                     w->held, w->held_eta, w->processed, w->active, w->blocked ? "false" : "true");
        zq_sb_json_str(b, w->endpoint);
        zq_sb_puts(b, w->next ? "}," : "}");
    }
    zq_sb_puts(b, "]");
    s_reply_end(self, o);
}

/* A worker says (HELLO "holding") that it holds id: it is its task now, unless the id
 * ended, is another worker's, or is unknown. Returns 1 when w holds it, 0 when not (the
 * HELLO reply lists it in "released": w must not start it). */
static int s_claim(zq_broker_t *self, s_worker_t *w, const char *id)
{
    if (!zq_valid_token(id))
        return 0;
    s_held_t *held = s_held_find(self, id);
    if (held)
        return held->w == w;
    s_orphan_t *o = (s_orphan_t *)s_map_get(&self->orphans, id);
    if (o) {
        s_task_t *t = o->task;
        s_map_del(&self->orphans, &o->node);
        int started = o->started, acks_late = o->acks_late;
        free(o);
        s_held_t *h = s_held_add(self, w, t, t->id, t->q, t->eta > 0);
        if (!h) {
            free(t);
            return 0;
        }
        h->received = 1;
        h->started = started;
        h->acks_late = acks_late;
        return 1;
    }
    s_found_t f;
    s_task_t *t = s_task_find(self, id, &f);
    if (!t)
        return 0;
    if (zq_state_is_terminal(f.state)) {
        free(t);
        return 0;
    }
    int waiting = !strcmp(f.state, ZQ_STATE_PENDING) || !strcmp(f.state, ZQ_STATE_RETRY);
    if (!waiting)
        s_unqueue(self, t); /* started while queued (its RECEIVED came before our HELLO) */
    if (waiting) {
        /* handed out before a restart, its RECEIVED never stored: take it off the queue */
        s_task_t *mem = s_unplace(t->q, t->rid, t->eta);
        if (mem) {
            free(t);
            t = mem;
        }
        if (t->eta > 0)
            t->q->n_sched--;
        else
            t->q->n_ready--;
    }
    s_held_t *h = s_held_add(self, w, t, t->id, t->q, t->eta > 0);
    if (!h) {
        free(t);
        return 0;
    }
    h->received = !waiting;
    h->started = !strcmp(f.state, ZQ_STATE_STARTED);
    h->acks_late = f.acks_late;
    return 1;
}

static int s_revoked_row(void *arg, const char *id)
{
    zq_sb_t *b = arg;
    if (b->len && b->buf[b->len - 1] != '[')
        zq_sb_putn(b, ",", 1);
    zq_sb_json_str(b, id);
    return 0;
}

/* Validate a HELLO worker object. ZQ_EINVAL with err naming the field. */
static int s_hello_check(const cJSON *body, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, "name");
    if (!cJSON_IsString(v) || !zq_valid_token(v->valuestring)) {
        snprintf(err, errlen, "name: must be a worker name (1-255 printable characters, no spaces)");
        return ZQ_EINVAL;
    }
    v = cJSON_GetObjectItemCaseSensitive(body, "concurrency");
    if (!S_ABSENT(v) && !s_is_int(v, 1, 100000)) {
        snprintf(err, errlen, "concurrency: must be an integer 1-100000");
        return ZQ_EINVAL;
    }
    v = cJSON_GetObjectItemCaseSensitive(body, "prefetch");
    if (!S_ABSENT(v) && !s_is_int(v, 0, 1000000)) {
        snprintf(err, errlen, "prefetch: must be an integer 0-1000000");
        return ZQ_EINVAL;
    }
    v = cJSON_GetObjectItemCaseSensitive(body, "queues");
    if (!S_ABSENT(v)) {
        int ok = cJSON_IsArray(v) && cJSON_GetArraySize(v) > 0 && cJSON_GetArraySize(v) <= 1000;
        const cJSON *e;
        cJSON_ArrayForEach(e, v) if (!cJSON_IsString(e) || !zq_valid_token(e->valuestring)) ok = 0;
        if (!ok) {
            snprintf(err, errlen, "queues: must be a non-empty array of queue names");
            return ZQ_EINVAL;
        }
    }
    v = cJSON_GetObjectItemCaseSensitive(body, "holding");
    if (!S_ABSENT(v) && !cJSON_IsArray(v)) {
        snprintf(err, errlen, "holding: must be an array of task ids");
        return ZQ_EINVAL;
    }
    v = cJSON_GetObjectItemCaseSensitive(body, "pid");
    if (!S_ABSENT(v) && !s_is_int(v, 0, 1e12)) {
        snprintf(err, errlen, "pid: must be an integer");
        return ZQ_EINVAL;
    }
    return ZQ_OK;
}

/* A new worker: its dispatch channel is bound here. NULL on failure (reason in err). */
static s_worker_t *s_worker_new(zq_broker_t *self, const cJSON *body, char *err, size_t errlen)
{
    s_worker_t *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    w->name = strdup(zq_json_str(body, "name", ""));
    w->hostname = strdup(zq_json_str(body, "hostname", ""));
    w->pid = (long)zq_json_num(body, "pid", 0);
    w->concurrency = (int)zq_json_num(body, "concurrency", 1);
    w->prefetch = (int)zq_json_num(body, "prefetch", 0);
    w->prefetch_adaptive = zq_json_bool(body, "prefetch_adaptive", 0);
    w->batch_tasks = zq_json_bool(body, "batch_tasks", 0);
    w->runtime_avg = -1;
    const cJSON *qs = cJSON_GetObjectItemCaseSensitive(body, "queues");
    int nq = cJSON_IsArray(qs) ? cJSON_GetArraySize(qs) : 1;
    w->queues = calloc((size_t)nq, sizeof *w->queues);
    if (!w->name || !w->hostname || !w->queues) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (cJSON_IsArray(qs)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, qs)
        {
            s_queue_t *q = s_queue_get(self, e->valuestring);
            if (!q) {
                snprintf(err, errlen, "out of memory");
                goto fail;
            }
            if (!s_worker_consumes(w, q))
                w->queues[w->nqueues++] = q;
        }
    } else if (!(w->queues[w->nqueues++] = s_queue_get(self, ZQ_DEFAULT_QUEUE))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    char ep[S_ENDPOINT_MAX], suffix[32];
    snprintf(suffix, sizeof suffix, ".d%u", ++self->dispatch_seq);
    if (zq_endpoint_ephemeral(self->frontend_ep, suffix, ep, sizeof ep) != ZQ_OK) {
        snprintf(err, errlen, "cannot derive a dispatch endpoint from %s", self->frontend_ep);
        goto fail;
    }
    w->push = zmq_socket(self->ctx, ZMQ_PUSH);
    if (!w->push) {
        snprintf(err, errlen, "cannot create a socket: %s", zmq_strerror(zmq_errno()));
        goto fail;
    }
    zq_socket_defaults(w->push);
    if (self->auth && zq_curve_server_apply(w->push, &self->curve) != ZQ_OK) {
        snprintf(err, errlen, "cannot make the dispatch channel a CURVE server");
        goto fail;
    }
    int hwm = S_DISPATCH_HWM;
    zmq_setsockopt(w->push, ZMQ_SNDHWM, &hwm, sizeof hwm);
    size_t eplen = sizeof w->endpoint;
    if (zmq_bind(w->push, ep) != 0 ||
        zmq_getsockopt(w->push, ZMQ_LAST_ENDPOINT, w->endpoint, &eplen) != 0) {
        snprintf(err, errlen, "cannot bind a dispatch channel on %s: %s", ep,
                 zmq_strerror(zmq_errno()));
        goto fail;
    }
    w->blocked = 1; /* until its PULL connects */
    return w;
fail:
    s_worker_free(w);
    return NULL;
}

static void s_on_hello(zq_broker_t *self, zq_msg_t *m)
{
    char err[1024];
    if (s_hello_check(m->body, err, sizeof err) != ZQ_OK) {
        S_INVAL(self, m, "HELLO: %s", err);
        return;
    }
    const char *name = zq_json_str(m->body, "name", NULL);
    long pid = (long)zq_json_num(m->body, "pid", 0);
    const char *host = zq_json_str(m->body, "hostname", "");
    s_worker_t *w = s_worker_find(self, name);
    if (w && !(pid && w->pid == pid && !strcmp(w->hostname, host))) {
        s_reply_error(self, m, ZQ_WERR_DUPLICATE,
                      "HELLO: a worker named %s is already connected (pid %ld on %s)", name,
                      w->pid, w->hostname[0] ? w->hostname : "?");
        return;
    }
    if (!w) {
        w = s_worker_new(self, m->body, err, sizeof err);
        if (!w) {
            ZQ_ERROR("broker: worker %s refused: %s", name, err);
            s_reply_error(self, m, S_INTERNAL, "HELLO: %s", err);
            return;
        }
        for (int i = 0; i < w->nqueues; i++)
            w->queues[i]->consumers++;
        w->next = self->workers;
        self->workers = w;
        self->nworkers++;
        ZQ_INFO("broker: worker %s online (pid %ld, concurrency %d, prefetch %d, %d queue%s)",
                w->name, w->pid, w->concurrency, w->prefetch, w->nqueues,
                w->nqueues == 1 ? "" : "s");
    } else {
        ZQ_INFO("broker: worker %s said HELLO again", w->name); /* its reply was lost */
    }
    w->last_seen = s_mono();
    w->hb_wall = zq_now();
    const cJSON *holding = cJSON_GetObjectItemCaseSensitive(m->body, "holding");
    const cJSON *e;
    long claimed = 0, released = 0;
    /* what it may not run (ended, or handed to another worker while it was away) */
    zq_sb_t rel;
    zq_sb_init(&rel);
    cJSON_ArrayForEach(e, holding)
    {
        if (!cJSON_IsString(e))
            continue;
        if (s_claim(self, w, e->valuestring)) {
            claimed++;
        } else {
            zq_sb_puts(&rel, released++ ? "," : "");
            zq_sb_json_str(&rel, e->valuestring);
        }
    }
    if (claimed)
        ZQ_INFO("broker: worker %s still holds %ld task%s", w->name, claimed,
                claimed == 1 ? "" : "s");
    if (released)
        ZQ_INFO("broker: worker %s holds %ld task%s that ended or went to another worker "
                "meanwhile: released", w->name, released, released == 1 ? "" : "s");
    s_out_t *o = s_reply_begin(self, m, 0);
    if (o) {
        zq_sb_t *b = &self->arena;
        s_member(b, "released");
        zq_sb_putn(b, "[", 1);
        if (rel.len)
            zq_sb_putn(b, rel.buf, rel.len);
        zq_sb_puts(b, "]");
        s_member(b, "broker_id");
        zq_sb_json_str(b, self->broker_id);
        s_member(b, "dispatch");
        zq_sb_json_str(b, w->endpoint);
        s_member(b, "upstream");
        zq_sb_json_str(b, self->upstream_ep);
        s_member(b, "events");
        zq_sb_json_str(b, self->events_ep);
        s_member(b, "heartbeat");
        s_jnum(b, self->heartbeat);
        zq_sb_puts(b, ",\"revoked\":[");
        if (zq_store_revoked_list(self->store, ZQ_BROKER_REVOKED_IN_HELLO, s_revoked_row, b) < 0)
            s_store_failed(self, "revoked list", NULL);
        zq_sb_puts(b, "]");
        s_reply_end(self, o);
    }
    zq_sb_free(&rel);
    /* keep the worker object for WORKERS (without request-only fields) */
    cJSON *info = m->body;
    m->body = NULL;
    cJSON_DeleteItemFromObjectCaseSensitive(info, "req");
    cJSON_DeleteItemFromObjectCaseSensitive(info, "holding");
    cJSON_Delete(w->info);
    w->info = info;
    s_event_worker(self, EV_WORKER_ONLINE, w);
}

static void s_on_heartbeat(zq_broker_t *self, zq_msg_t *m)
{
    const char *name = zq_json_str(m->body, "name", NULL);
    if (!zq_valid_token(name)) {
        S_INVAL(self, m, "HEARTBEAT: name: must be a worker name");
        return;
    }
    s_worker_t *w = s_worker_find(self, name);
    if (!w) {
        s_reply_error(self, m, ZQ_WERR_UNKNOWN_WORKER,
                      "HEARTBEAT: unknown worker %s (the broker restarted or declared it dead): "
                      "send HELLO again", name);
        return;
    }
    w->last_seen = s_mono();
    w->hb_wall = zq_now();
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m->body, "active");
    if (s_is_int(v, 0, 1e12))
        w->active = (long)v->valuedouble;
    v = cJSON_GetObjectItemCaseSensitive(m->body, "processed");
    if (s_is_int(v, 0, 1e15))
        w->processed = (long)v->valuedouble;
    s_event_worker(self, EV_WORKER_HEARTBEAT, w);
    s_out_t *o = s_reply_begin(self, m, 0);
    if (o) {
        s_member(&self->arena, "broker_id");
        zq_sb_json_str(&self->arena, self->broker_id);
        s_reply_end(self, o);
    }
}

/* s_upstream_take: one message off the upstream socket, applied: S_UP_TAKEN, S_UP_NONE
 * (drained: its fd tells of what comes), S_UP_FULL (the turn's upkeep holds all it can),
 * or -1 (a socket error, logged). */
enum { S_UP_NONE = 0, S_UP_TAKEN = 1, S_UP_FULL = 2 };
static int s_upstream_take(zq_broker_t *self);

/* A worker's last upstream batches travel on another connection than its BYE and may come
 * after it: take them off the upstream socket first (up to S_BYE_WAIT), so that the results
 * of its last tasks are applied before its leftovers are released ("lost" otherwise). */
static void s_bye_drain(zq_broker_t *self, const char *name, uint64_t last_seq)
{
    double until = s_mono() + S_BYE_WAIT;
    s_worker_t *w;
    while ((w = s_worker_find(self, name)) && w->seq_max < last_seq) {
        long ms = (long)ceil((until - s_mono()) * 1000);
        if (ms <= 0) {
            ZQ_WARN("broker: worker %s said BYE after batch %" PRIu64 " but the broker has "
                    "only up to %" PRIu64 ": its remaining results are not waited for",
                    name, last_seq, w->seq_max);
            return;
        }
        zmq_pollitem_t it = {self->upstream, 0, ZMQ_POLLIN, 0};
        /* looked at here, outside the turn's drain: the next turn must not trust its fd */
        self->up_settled = 0;
        if (zmq_poll(&it, 1, ms) <= 0)
            continue;
        int rc = s_upstream_take(self);
        if (rc < 0 || rc == S_UP_FULL)
            return; /* said why, or the turn holds all it can: the BYE goes on */
    }
}

static void s_on_bye(zq_broker_t *self, zq_msg_t *m)
{
    const char *name = zq_json_str(m->body, "name", NULL);
    if (!zq_valid_token(name)) {
        S_INVAL(self, m, "BYE: name: must be a worker name");
        return;
    }
    const cJSON *ls = cJSON_GetObjectItemCaseSensitive(m->body, "last_seq");
    if (!S_ABSENT(ls) && (!cJSON_IsNumber(ls) || !(ls->valuedouble >= 0) ||
                          ls->valuedouble >= 9007199254740992.0 ||
                          ls->valuedouble != floor(ls->valuedouble))) {
        S_INVAL(self, m, "BYE: last_seq: must be a batch number");
        return;
    }
    if (cJSON_IsNumber(ls) && ls->valuedouble >= 1)
        s_bye_drain(self, name, (uint64_t)ls->valuedouble);
    s_worker_t *w = s_worker_find(self, name);
    if (w)
        s_worker_remove(self, w, "shutdown");
    s_out_t *o = s_reply_begin(self, m, 1);
    if (o)
        s_reply_end(self, o);
}

/* End every waiting task of q as REVOKED "purged". Returns the count or ZQ_ESTORE. */
static long s_purge_queue(zq_broker_t *self, s_queue_t *q, double now)
{
    long n = 0;
    for (size_t i = 0; i < q->ready.n; i++) {
        int rc = zq_store_revoke_queued(self->store, NULL, s_deque_at(&q->ready, i)->rid,
                                        "purged", now, NULL);
        if (rc == ZQ_ESTORE)
            return ZQ_ESTORE;
        n += rc == ZQ_OK;
    }
    for (size_t i = 0; i < q->sched.n; i++) {
        int rc = zq_store_revoke_queued(self->store, NULL, q->sched.v[i]->rid, "purged", now,
                                        NULL);
        if (rc == ZQ_ESTORE)
            return ZQ_ESTORE;
        n += rc == ZQ_OK;
    }
    long disk = 0;
    if (zq_store_purge_disk(self->store, q->name, q->ready_spilled ? q->ready_cursor : INT64_MAX,
                            q->sched_spilled ? q->sched_eta : INFINITY, q->sched_rid, now,
                            &disk) != ZQ_OK)
        return ZQ_ESTORE;
    s_deque_clear(&q->ready);
    s_heap_clear(&q->sched);
    q->ready_spilled = 0;
    q->sched_spilled = 0;
    q->sched_eta = -INFINITY;
    q->sched_rid = 0;
    q->n_ready = q->n_sched = 0;
    return n + disk;
}

typedef struct {
    zq_broker_t *self;
    s_queue_t **v;
    size_t n;
} s_qarr_t;

static void s_qarr_add(void *arg, s_hnode_t *node)
{
    s_qarr_t *a = arg;
    a->v[a->n++] = (s_queue_t *)node;
}

static int s_qname_cmp(const void *a, const void *b)
{
    return strcmp((*(s_queue_t *const *)a)->name, (*(s_queue_t *const *)b)->name);
}

/* Every known queue, sorted by name. Caller frees the array. */
static s_queue_t **s_all_queues(zq_broker_t *self, size_t *n)
{
    s_qarr_t a = {self, calloc(self->queues.n + 1, sizeof(s_queue_t *)), 0};
    if (!a.v) {
        *n = 0;
        return NULL;
    }
    s_map_each(&self->queues, s_qarr_add, &a);
    qsort(a.v, a.n, sizeof *a.v, s_qname_cmp);
    *n = a.n;
    return a.v;
}

static void s_on_purge(zq_broker_t *self, zq_msg_t *m)
{
    const cJSON *qs = cJSON_GetObjectItemCaseSensitive(m->body, "queues");
    if (!S_ABSENT(qs)) {
        int ok = cJSON_IsArray(qs);
        const cJSON *e;
        cJSON_ArrayForEach(e, qs) if (!cJSON_IsString(e) || !zq_valid_token(e->valuestring)) ok = 0;
        if (!ok) {
            S_INVAL(self, m, "PURGE: queues: must be an array of queue names, or absent for all");
            return;
        }
    }
    double now = zq_now();
    long total = 0;
    s_out_t *o = s_reply_begin(self, m, 1);
    if (!o)
        return;
    zq_sb_t *b = &self->arena;
    zq_sb_puts(b, "\"queues\":[");
    int first = 1;
    size_t n = 0;
    s_queue_t **all = NULL;
    if (S_ABSENT(qs))
        all = s_all_queues(self, &n);
    else
        n = (size_t)cJSON_GetArraySize(qs);
    const cJSON *e = S_ABSENT(qs) ? NULL : qs->child;
    for (size_t i = 0; i < n; i++) {
        s_queue_t *q = all ? all[i] : s_queue_find(self, e->valuestring);
        const char *name = all ? all[i]->name : e->valuestring;
        if (e)
            e = e->next;
        long k = q ? s_purge_queue(self, q, now) : 0;
        if (k < 0) {
            s_store_failed(self, "purge", name);
            break;
        }
        total += k;
        if (!first)
            zq_sb_putn(b, ",", 1);
        first = 0;
        zq_sb_json_str(b, name);
    }
    free(all);
    zq_sb_printf(b, "],\"purged\":%ld", total);
    s_reply_end(self, o);
    self->stats.revoked += total;
    if (self->waits.n)
        self->recheck_waits = 1; /* purged on disk by queue, not by id */
    ZQ_INFO("broker: purged %ld task%s from %zu queue%s", total, total == 1 ? "" : "s", n,
            n == 1 ? "" : "s");
}

static void s_on_revoke(zq_broker_t *self, zq_msg_t *m)
{
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(m->body, "ids");
    int ok = cJSON_IsArray(ids) && cJSON_GetArraySize(ids) > 0 &&
             cJSON_GetArraySize(ids) <= S_LIST_MAX;
    const cJSON *e;
    const cJSON *list = ok ? ids : NULL;
    cJSON_ArrayForEach(e, list)
    {
        if (!cJSON_IsString(e) || !zq_valid_token(e->valuestring))
            ok = 0;
    }
    if (!ok) {
        S_INVAL(self, m, "REVOKE: ids: must be a non-empty array of at most %d task ids",
                S_LIST_MAX);
        return;
    }
    const cJSON *term = cJSON_GetObjectItemCaseSensitive(m->body, "terminate");
    if (!S_ABSENT(term) && !cJSON_IsBool(term)) {
        S_INVAL(self, m, "REVOKE: terminate: must be true or false");
        return;
    }
    const cJSON *sig = cJSON_GetObjectItemCaseSensitive(m->body, "signal");
    if (!S_ABSENT(sig) && !(cJSON_IsString(sig) && zq_valid_token(sig->valuestring) &&
                            strlen(sig->valuestring) < 16)) {
        S_INVAL(self, m, "REVOKE: signal: must be a signal name such as \"SIGTERM\"");
        return;
    }
    const char *signame = cJSON_IsString(sig) ? sig->valuestring : "SIGTERM";
    double now = zq_now();
    cJSON_ArrayForEach(e, ids)
    {
        const char *id = e->valuestring;
        if (zq_store_revoke_add(self->store, id, now) != ZQ_OK) {
            s_store_failed(self, "revoke", id);
            s_reply_error(self, m, ZQ_WERR_STORE, "REVOKE: %s", zq_store_errmsg(self->store));
            return;
        }
        self->n_revoked++;
        if (s_is_out(self, id))
            continue; /* a worker holds it: the broadcast reaches it */
        zq_store_where_t where;
        int rc = zq_store_revoke_queued(self->store, id, 0, "revoked", now, &where);
        if (rc == ZQ_ESTORE) {
            s_store_failed(self, "revoke", id);
            s_reply_error(self, m, ZQ_WERR_STORE, "REVOKE: %s", zq_store_errmsg(self->store));
            return;
        }
        if (rc != ZQ_OK)
            continue; /* running, ended, or not sent yet (then it never runs) */
        s_queue_t *q = s_queue_find(self, where.queue);
        if (q) {
            free(s_unplace(q, where.rid, where.eta));
            if (where.eta > 0)
                q->n_sched--;
            else
                q->n_ready--;
        }
        self->stats.revoked++;
        s_event_revoked(self, id, 0);
        s_notify(self, id);
    }
    /* every live worker learns the ids (those holding one stop or kill it) */
    char *ids_txt = cJSON_PrintUnformatted(ids);
    s_out_t *bc = ids_txt ? s_out_new(self, OB_BROADCAST) : NULL;
    if (bc) {
        zq_sb_t *b = &self->arena;
        bc->text_off = b->len;
        zq_sb_puts(b, "{\"ids\":");
        zq_sb_puts(b, ids_txt);
        zq_sb_printf(b, ",\"terminate\":%s,\"signal\":", cJSON_IsTrue(term) ? "true" : "false");
        zq_sb_json_str(b, signame);
        zq_sb_puts(b, "}");
        bc->len = b->len - bc->text_off;
    }
    s_out_t *o = s_reply_begin(self, m, 1);
    if (o) {
        s_member(&self->arena, "revoked");
        zq_sb_puts(&self->arena, ids_txt ? ids_txt : "[]");
        s_reply_end(self, o);
    }
    cJSON_free(ids_txt);
    ZQ_INFO("broker: revoked %d task%s%s", cJSON_GetArraySize(ids),
            cJSON_GetArraySize(ids) == 1 ? "" : "s", cJSON_IsTrue(term) ? " (terminate)" : "");
}

static void s_on_queues(zq_broker_t *self, zq_msg_t *m)
{
    size_t n;
    s_queue_t **all = s_all_queues(self, &n);
    s_out_t *o = s_reply_begin(self, m, 0);
    if (!o) {
        free(all);
        return;
    }
    zq_sb_t *b = &self->arena;
    zq_sb_puts(b, "\"queues\":[");
    for (size_t i = 0; i < n; i++) {
        s_queue_t *q = all[i];
        zq_sb_puts(b, i ? ",{\"name\":" : "{\"name\":");
        zq_sb_json_str(b, q->name);
        zq_sb_printf(b, ",\"ready\":%ld,\"scheduled\":%ld,\"reserved\":%ld,\"consumers\":%d}",
                     q->n_ready > 0 ? q->n_ready : 0, q->n_sched > 0 ? q->n_sched : 0,
                     q->n_reserved, q->consumers);
    }
    zq_sb_puts(b, "]");
    s_reply_end(self, o);
    free(all);
}

typedef struct {
    zq_broker_t *self;
    zq_sb_t *b;
    int first;
} s_sched_list_t;

static int s_sched_row(void *arg, const zq_store_row_t *row)
{
    s_sched_list_t *l = arg;
    if (s_is_out(l->self, row->id))
        return 0; /* a worker holds it: the worker lists it */
    zq_sb_t *b = l->b;
    cJSON *msg = cJSON_ParseWithLength(row->msg, row->msglen);
    zq_sb_puts(b, l->first ? "{\"id\":" : ",{\"id\":");
    l->first = 0;
    zq_sb_json_str(b, row->id);
    s_member(b, "task");
    zq_sb_json_str(b, row->task);
    s_member(b, "eta");
    zq_sb_json_time(b, row->eta);
    s_member(b, "queue");
    zq_sb_json_str(b, row->queue);
    s_member(b, "args");
    zq_sb_json(b, cJSON_GetObjectItemCaseSensitive(msg, "args"));
    s_member(b, "kwargs");
    zq_sb_json(b, cJSON_GetObjectItemCaseSensitive(msg, "kwargs"));
    s_member(b, "priority");
    s_jnum(b, zq_json_num(msg, "priority", 0));
    s_member(b, "retries");
    s_jnum(b, row->retries);
    zq_sb_putn(b, "}", 1);
    cJSON_Delete(msg);
    return 0;
}

static void s_on_scheduled(zq_broker_t *self, zq_msg_t *m)
{
    s_out_t *o = s_reply_begin(self, m, 0);
    if (!o)
        return;
    zq_sb_t *b = &self->arena;
    zq_sb_puts(b, "\"scheduled\":[");
    s_sched_list_t l = {self, b, 1};
    int n = zq_store_load_scheduled(self->store, NULL, -INFINITY, 0, INFINITY, S_LIST_MAX,
                                    s_sched_row, &l);
    zq_sb_puts(b, "]");
    if (n < 0)
        s_store_failed(self, "scheduled list", NULL);
    else if (n == S_LIST_MAX)
        zq_sb_puts(b, ",\"truncated\":true");
    s_reply_end(self, o);
}

/* ---------------------------------------------------------------------------------------
 * Monitor requests: TASKS (a filtered, paged listing of the store) and STATS (counts by
 * state and per worker). Both read the store's authoritative state, so a monitor is right
 * from its first request (docs/monitor.md).
 */
#define S_TASKS_MAX_BYTES (ZQ_MAX_MSG_SIZE / 2) /* a page stops growing here: "truncated" */
#define S_SEARCH_MAX 256                        /* bytes of a TASKS "search" */

/* An optional string member: absent/null -> *out NULL; ZQ_EINVAL when not a string that
 * passes check (NULL: any non-empty string up to S_SEARCH_MAX bytes). */
static int s_opt_str(const cJSON *body, const char *key, int (*check)(const char *),
                     const char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, key);
    *out = NULL;
    if (S_ABSENT(v))
        return ZQ_OK;
    if (!cJSON_IsString(v) || !*v->valuestring)
        return ZQ_EINVAL;
    if (check ? !check(v->valuestring) : strlen(v->valuestring) > S_SEARCH_MAX)
        return ZQ_EINVAL;
    *out = v->valuestring;
    return ZQ_OK;
}

static int s_opt_long(const cJSON *body, const char *key, double lo, double hi, long *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, key);
    if (S_ABSENT(v))
        return ZQ_OK;
    if (!s_is_int(v, lo, hi))
        return ZQ_EINVAL;
    *out = (long)v->valuedouble;
    return ZQ_OK;
}

static int s_opt_time(const cJSON *body, const char *key, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, key);
    *out = 0;
    if (S_ABSENT(v))
        return ZQ_OK;
    if (!cJSON_IsString(v) || zq_time_parse(v->valuestring, out) != ZQ_OK)
        return ZQ_EINVAL;
    return ZQ_OK;
}

static void s_on_tasks(zq_broker_t *self, zq_msg_t *m)
{
    zq_store_query_t q = {0};
    q.limit = 100;
    const cJSON *b = m->body;
    if (s_opt_long(b, "limit", 1, ZQ_STORE_LIST_MAX, &q.limit) != ZQ_OK) {
        S_INVAL(self, m, "TASKS: limit: must be an integer from 1 to %d", ZQ_STORE_LIST_MAX);
        return;
    }
    if (s_opt_long(b, "offset", 0, 1e12, &q.offset) != ZQ_OK) {
        S_INVAL(self, m, "TASKS: offset: must be an integer >= 0");
        return;
    }
    if (s_opt_str(b, "sort_by", zq_store_sort_valid, &q.sort_by) != ZQ_OK) {
        S_INVAL(self, m, "TASKS: sort_by: must be one of name, id, state, queue, sent, received, "
                         "started, done, runtime, worker, retries, eta, expires (\"-\" first for "
                         "descending)");
        return;
    }
    if (s_opt_str(b, "state", zq_store_states_valid, &q.state) != ZQ_OK) {
        S_INVAL(self, m, "TASKS: state: must be a state name (PENDING, RECEIVED, STARTED, RETRY, "
                         "SUCCESS, FAILURE, REVOKED) or a comma-separated list of them");
        return;
    }
    static const char *const names[] = {"taskname", "workername", "parent_id", "root_id"};
    const char **dst[] = {&q.task, &q.worker, &q.parent_id, &q.root_id};
    for (int i = 0; i < 4; i++) {
        if (s_opt_str(b, names[i], zq_valid_token, dst[i]) != ZQ_OK) {
            S_INVAL(self, m, "TASKS: %s: must be a name (1-255 printable characters, no spaces)",
                    names[i]);
            return;
        }
    }
    if (s_opt_str(b, "search", NULL, &q.search) != ZQ_OK) {
        S_INVAL(self, m, "TASKS: search: must be a string of 1 to %d bytes", S_SEARCH_MAX);
        return;
    }
    if (s_opt_time(b, "received_start", &q.received_start) != ZQ_OK ||
        s_opt_time(b, "received_end", &q.received_end) != ZQ_OK) {
        S_INVAL(self, m, "TASKS: received_start, received_end: must be ISO 8601 date/times");
        return;
    }
    q.max_bytes = S_TASKS_MAX_BYTES;
    char *text = NULL;
    size_t len = 0;
    long total = 0;
    int truncated = 0;
    int rc = zq_store_list_tasks(self->store, &q, &text, &len, &total, &truncated);
    if (rc != ZQ_OK) {
        if (rc == ZQ_EINVAL)
            S_INVAL(self, m, "TASKS: %s", zq_store_errmsg(self->store));
        else if (rc == ZQ_ESTORE)
            s_store_failed(self, "task list", NULL);
        if (rc != ZQ_EINVAL)
            s_reply_error(self, m, rc == ZQ_ESTORE ? ZQ_WERR_STORE : S_INTERNAL, "TASKS: %s",
                          rc == ZQ_ESTORE ? zq_store_errmsg(self->store) : "out of memory");
        return;
    }
    s_out_t *o = s_reply_begin(self, m, 0);
    if (o) {
        zq_sb_t *a = &self->arena;
        s_member(a, "tasks");
        zq_sb_putn(a, text, len);
        zq_sb_printf(a, ",\"total\":%ld,\"limit\":%ld,\"offset\":%ld,\"truncated\":%s", total,
                     q.limit, q.offset, truncated ? "true" : "false");
        s_reply_end(self, o);
    }
    free(text);
}

typedef struct {
    zq_broker_t *self;
    zq_sb_t *b;
    int first;
    const s_worker_t **seen; /* live workers already listed (from the store's counts) */
    int nseen, cap;
} s_wstats_t;

static void s_wstats_live(zq_sb_t *b, const s_worker_t *w)
{
    zq_sb_printf(b, ",\"online\":%s,\"active\":%ld,\"held\":%d,\"concurrency\":%d",
                 w ? "true" : "false", w ? w->active : 0, w ? w->held + w->held_eta : 0,
                 w ? w->concurrency : 0);
    s_member(b, "last_heartbeat");
    zq_sb_json_time(b, w ? w->hb_wall : 0);
}

static int s_wstats_row(void *arg, const char *worker, long succeeded, long failed, long retried)
{
    s_wstats_t *l = arg;
    zq_sb_t *b = l->b;
    zq_sb_puts(b, l->first ? "{\"name\":" : ",{\"name\":");
    l->first = 0;
    zq_sb_json_str(b, worker);
    zq_sb_printf(b, ",\"processed\":%ld,\"succeeded\":%ld,\"failed\":%ld,\"retried\":%ld",
                 succeeded + failed + retried, succeeded, failed, retried);
    s_worker_t *w = s_worker_find(l->self, worker);
    s_wstats_live(b, w);
    zq_sb_putn(b, "}", 1);
    if (w && l->nseen < l->cap)
        l->seen[l->nseen++] = w;
    return 0;
}

static void s_on_stats(zq_broker_t *self, zq_msg_t *m)
{
    zq_store_counts_t c;
    if (zq_store_counts(self->store, &c) != ZQ_OK) {
        s_store_failed(self, "stats", NULL);
        s_reply_error(self, m, ZQ_WERR_STORE, "STATS: %s", zq_store_errmsg(self->store));
        return;
    }
    s_out_t *o = s_reply_begin(self, m, 0);
    if (!o)
        return;
    zq_sb_t *b = &self->arena;
    zq_sb_printf(b,
                 "\"tasks\":{\"PENDING\":%ld,\"RECEIVED\":%ld,\"STARTED\":%ld,\"RETRY\":%ld,"
                 "\"SUCCESS\":%ld,\"FAILURE\":%ld,\"REVOKED\":%ld,\"total\":%ld},\"retried\":%ld",
                 c.pending, c.received, c.started, c.retry, c.success, c.failure, c.revoked,
                 c.total, c.retried);
    zq_sb_puts(b, ",\"workers\":[");
    s_wstats_t l = {self, b, 1, NULL, 0, self->nworkers};
    l.seen = calloc((size_t)self->nworkers + 1, sizeof *l.seen);
    if (!l.seen)
        l.cap = 0;
    if (zq_store_worker_counts(self->store, s_wstats_row, &l) != ZQ_OK)
        s_store_failed(self, "stats", NULL);
    /* live workers that never ended a task are not in the store's counts */
    for (s_worker_t *w = self->workers; w; w = w->next) {
        int listed = 0;
        for (int i = 0; i < l.nseen && !listed; i++)
            listed = l.seen[i] == w;
        if (listed)
            continue;
        zq_sb_puts(b, l.first ? "{\"name\":" : ",{\"name\":");
        l.first = 0;
        zq_sb_json_str(b, w->name);
        zq_sb_puts(b, ",\"processed\":0,\"succeeded\":0,\"failed\":0,\"retried\":0");
        s_wstats_live(b, w);
        zq_sb_putn(b, "}", 1);
    }
    free(l.seen);
    zq_sb_puts(b, "]");
    zq_sb_printf(b, ",\"events\":%ld,\"workers_online\":%d", self->stats.events, self->nworkers);
    s_member(b, "started");
    zq_sb_json_str(b, self->started_iso);
    s_reply_end(self, o);
}

static void s_on_frontend(zq_broker_t *self, zq_msg_t *m)
{
    const char *c = m->cmd;
    if (!strcmp(c, ZQ_CMD_SUBMIT))
        s_submit(self, m, 1);
    else if (!strcmp(c, ZQ_CMD_GET))
        s_on_get(self, m);
    else if (!strcmp(c, ZQ_CMD_HEARTBEAT))
        s_on_heartbeat(self, m);
    else if (!strcmp(c, ZQ_CMD_QUERY))
        s_on_query(self, m);
    else if (!strcmp(c, ZQ_CMD_HELLO))
        s_on_hello(self, m);
    else if (!strcmp(c, ZQ_CMD_BYE))
        s_on_bye(self, m);
    else if (!strcmp(c, ZQ_CMD_INFO))
        s_on_info(self, m);
    else if (!strcmp(c, ZQ_CMD_WORKERS))
        s_on_workers(self, m);
    else if (!strcmp(c, ZQ_CMD_QUEUES))
        s_on_queues(self, m);
    else if (!strcmp(c, ZQ_CMD_SCHEDULED))
        s_on_scheduled(self, m);
    else if (!strcmp(c, ZQ_CMD_TASKS))
        s_on_tasks(self, m);
    else if (!strcmp(c, ZQ_CMD_STATS))
        s_on_stats(self, m);
    else if (!strcmp(c, ZQ_CMD_PURGE))
        s_on_purge(self, m);
    else if (!strcmp(c, ZQ_CMD_REVOKE))
        s_on_revoke(self, m);
    else {
        self->stats.bad_messages++;
        s_reply_error(self, m, ZQ_WERR_UNKNOWN_CMD, "unknown command %s", c);
    }
}

/* ---------------------------------------------------------------------------------------
 * Timers inside a turn: lost workers, unclaimed orphans, expired tasks
 */

/* An orphan nobody claimed: handled as a task of a dead worker. */
static void s_orphan_expire(zq_broker_t *self, s_orphan_t *o)
{
    self->need_commit = 1;
    s_map_del(&self->orphans, &o->node);
    s_task_t *t = o->task;
    if (o->started && !o->acks_late) {
        s_fail_lost(self, t->id, NULL, "not reclaimed after a broker restart");
        free(t);
    } else {
        int rc = zq_store_requeue(self->store, t->id);
        if (rc == ZQ_OK) {
            t->redelivered = 1;
            if (t->eta > 0)
                t->q->n_sched++;
            else
                t->q->n_ready++;
            s_place(self, t, 1);
        } else {
            if (rc == ZQ_ESTORE)
                s_store_failed(self, "requeue", t->id);
            free(t);
        }
    }
    free(o);
}

typedef struct {
    zq_broker_t *self;
    double now, next;
} s_orphan_scan_t;

static void s_orphan_check(void *arg, s_hnode_t *node)
{
    s_orphan_scan_t *s = arg;
    s_orphan_t *o = (s_orphan_t *)node;
    if (o->deadline <= s->now && !s->self->batch_failed)
        s_orphan_expire(s->self, o);
    else if (o->deadline < s->next)
        s->next = o->deadline;
}

static void s_timers(zq_broker_t *self)
{
    double mono = s_mono();
    double dead_after = ZQ_BROKER_DEAD_AFTER * self->heartbeat;
    for (s_worker_t *w = self->workers, *next; w && !self->batch_failed; w = next) {
        next = w->next;
        if (mono - w->last_seen > dead_after) {
            ZQ_WARN("broker: worker %s missed %d heartbeats (%.1fs): declared dead", w->name,
                    ZQ_BROKER_DEAD_AFTER, mono - w->last_seen);
            s_worker_remove(self, w, "heartbeat lost");
        }
    }
    if (self->orphans.n && mono >= self->orphan_deadline && !self->batch_failed) {
        long n = (long)self->orphans.n;
        s_orphan_scan_t scan = {self, mono, INFINITY};
        s_map_each(&self->orphans, s_orphan_check, &scan);
        self->orphan_deadline = scan.next;
        ZQ_INFO("broker: %ld task%s in flight before the restart not reclaimed by a worker: "
                "requeued or failed", n - (long)self->orphans.n, n == 1 ? "" : "s");
    }
    double now = zq_now();
    size_t i = 0;
    for (; i < self->nexpired && !self->batch_failed; i++) {
        s_task_t *t = self->expired[i];
        self->need_commit = 1;
        int rc = zq_store_revoke_queued(self->store, t->id, 0, "expired", now, NULL);
        if (rc == ZQ_OK) {
            if (t->eta > 0)
                t->q->n_sched--;
            else
                t->q->n_ready--;
            self->stats.revoked++;
            ZQ_INFO("broker: task %s expired before it could run: REVOKED", t->id);
            s_event_revoked(self, t->id, 1);
            s_notify(self, t->id);
        } else if (rc == ZQ_ESTORE) {
            s_store_failed(self, "expire", t->id);
        }
        free(t);
    }
    /* the rest (after a lost turn) is read back by the resync */
    for (; i < self->nexpired; i++)
        free(self->expired[i]);
    self->nexpired = 0;
}

/* ---------------------------------------------------------------------------------------
 * Rebuilding memory from the store: at startup, and after a failed commit
 */
static void s_forget_queue(void *arg, s_hnode_t *node)
{
    (void)arg;
    s_queue_t *q = (s_queue_t *)node;
    s_queue_forget(q);
    q->n_ready = q->n_sched = 0;
}

static int s_count_cb(void *arg, const char *queue, long ready, long scheduled)
{
    s_queue_t *q = s_queue_get(arg, queue);
    if (q) {
        q->n_ready = ready;
        q->n_sched = scheduled;
    }
    return 0;
}

static void s_uncount_held(void *arg, s_hnode_t *node)
{
    (void)arg;
    s_held_t *h = (s_held_t *)node;
    if (h->received || !h->q)
        return; /* the store counts a handed-out task as waiting until RECEIVED */
    if (h->is_eta)
        h->q->n_sched--;
    else
        h->q->n_ready--;
}

static void s_refill_queue(void *arg, s_hnode_t *node)
{
    s_refill_ready(arg, (s_queue_t *)node);
    s_refill_sched(arg, (s_queue_t *)node);
}

static int s_orphan_row(void *arg, const zq_store_row_t *row)
{
    zq_broker_t *self = arg;
    if (s_is_out(self, row->id))
        return 0;
    s_queue_t *q = s_queue_get(self, row->queue);
    s_orphan_t *o = calloc(1, sizeof *o);
    s_task_t *t = q && o ? s_task_new(row, q) : NULL;
    if (!t) {
        free(o);
        return 0; /* stays in flight in the store; the next restart tries again */
    }
    o->task = t;
    o->node.key = t->id;
    o->started = !strcmp(row->state, ZQ_STATE_STARTED);
    o->acks_late = row->acks_late;
    o->deadline = s_mono() + ZQ_BROKER_DEAD_AFTER * self->heartbeat;
    if (s_map_put(&self->orphans, &o->node) != ZQ_OK) {
        free(t);
        free(o);
        return 0;
    }
    if (o->deadline < self->orphan_deadline || self->orphans.n == 1)
        self->orphan_deadline = o->deadline;
    return 0;
}

/* Rebuild the queues from the store, keeping who holds what. */
static int s_resync(zq_broker_t *self)
{
    for (size_t i = 0; i < self->nexpired; i++)
        free(self->expired[i]);
    self->nexpired = 0;
    s_map_each(&self->queues, s_forget_queue, self);
    if (zq_store_queue_counts(self->store, s_count_cb, self) != ZQ_OK)
        goto fail;
    s_map_each(&self->held, s_uncount_held, self);
    s_map_each(&self->queues, s_refill_queue, self);
    if (zq_store_load_inflight(self->store, s_orphan_row, self) < 0)
        goto fail;
    return ZQ_OK;
fail:
    ZQ_ERROR("broker: cannot read the store: %s", zq_store_errmsg(self->store));
    return ZQ_ESTORE;
}

/* ---------------------------------------------------------------------------------------
 * Events socket: subscriptions tell which events are worth building
 */
static void s_read_subs(zq_broker_t *self)
{
    int changed = 0;
    for (;;) {
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, self->events, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&msg);
            break;
        }
        const char *d = zmq_msg_data(&msg);
        size_t n = zmq_msg_size(&msg);
        if (n >= 1 && (d[0] == 0 || d[0] == 1)) {
            const char *topic = d + 1;
            size_t tl = n - 1;
            size_t i;
            for (i = 0; i < self->nsubs; i++)
                if (self->sublens[i] == tl && !memcmp(self->subs[i], topic, tl))
                    break;
            if (d[0] == 1 && i == self->nsubs) {
                char **v = realloc(self->subs, (self->nsubs + 1) * sizeof *v);
                if (v)
                    self->subs = v;
                size_t *l = realloc(self->sublens, (self->nsubs + 1) * sizeof *l);
                if (l)
                    self->sublens = l;
                char *copy = malloc(tl + 1);
                if (v && l && copy) {
                    memcpy(copy, topic, tl);
                    copy[tl] = '\0';
                    self->subs[self->nsubs] = copy;
                    self->sublens[self->nsubs++] = tl;
                    changed = 1;
                } else {
                    free(copy);
                }
            } else if (d[0] == 0 && i < self->nsubs) {
                free(self->subs[i]);
                self->subs[i] = self->subs[self->nsubs - 1];
                self->sublens[i] = self->sublens[self->nsubs - 1];
                self->nsubs--;
                changed = 1;
            }
        }
        zmq_msg_close(&msg);
    }
    if (!changed)
        return;
    self->ev_mask = 0;
    for (int ev = 0; ev < EV_COUNT; ev++)
        for (size_t i = 0; i < self->nsubs; i++)
            if (self->sublens[i] <= strlen(s_ev_names[ev]) &&
                !memcmp(s_ev_names[ev], self->subs[i], self->sublens[i]))
                self->ev_mask |= 1u << ev;
    ZQ_DEBUG("broker: event subscriptions changed (%zu topics)", self->nsubs);
}

/* ---------------------------------------------------------------------------------------
 * The turn
 */
static zq_msg_t *s_upkeep_slot(zq_broker_t *self)
{
    if (self->nupkeep == self->upkeep_cap) {
        size_t nc = self->upkeep_cap ? self->upkeep_cap * 2 : 256;
        zq_msg_t *v = realloc(self->upkeep, nc * sizeof *v);
        if (!v)
            return NULL;
        self->upkeep = v;
        self->upkeep_cap = nc;
    }
    return &self->upkeep[self->nupkeep];
}

/* A malformed frontend message: answer EPROTO / EVERSION if we know who sent it. */
static void s_bad_frontend(zq_broker_t *self, zq_msg_t *m, const char *why)
{
    self->stats.bad_messages++;
    char peer[2 * ZQ_MAX_IDENTITY + 1];
    if (s_rate_ok(self, m->identity, m->identity_len))
        ZQ_WARN("broker: bad message from peer %s: %s", s_peer_name(m, peer, sizeof peer), why);
    if (!m->identity_len)
        return;
    int version = !strncmp(why, "unsupported protocol version", 28);
    s_reply_error(self, m, version ? ZQ_WERR_VERSION : ZQ_WERR_PROTO, "%s", why);
}

static void s_eta_timer(void *arg, s_hnode_t *node)
{
    double *next = arg; /* [0] = wall now + lookahead, [1] = earliest wait */
    s_queue_t *q = (s_queue_t *)node;
    if (!q->consumers || !q->sched.n)
        return;
    double wait = q->sched.v[0]->eta - next[0];
    if (wait > 0 && wait < next[1])
        next[1] = wait;
}

/* Milliseconds until the next timer (0: work is waiting). Held acknowledgements count only
 * with acks: they need a turn, not a transaction. */
static long s_next_timeout(zq_broker_t *self, int acks)
{
    double mono = s_mono(), t = S_MAX_WAIT;
    if (self->nexpired)
        return 0;
    if (self->nretry)
        t = fmin(t, self->retry_after - mono);
    double dead_after = ZQ_BROKER_DEAD_AFTER * self->heartbeat;
    for (const s_worker_t *w = self->workers; w; w = w->next)
        t = fmin(t, w->last_seen + dead_after - mono + 0.001);
    if (self->orphans.n)
        t = fmin(t, self->orphan_deadline - mono);
    if (self->dispatch_from > mono)
        t = fmin(t, self->dispatch_from - mono);
    if (self->wheap_n)
        t = fmin(t, self->wheap[0]->deadline - mono);
    if (self->tx_since)
        t = fmin(t, self->tx_since + S_COMMIT_DELAY - mono);
    if (acks && self->nhack)
        t = fmin(t, s_hack_wait(self));
    if (self->workers) {
        double eta[2] = {zq_now() + self->lookahead, INFINITY};
        s_map_each(&self->queues, s_eta_timer, eta);
        t = fmin(t, eta[1]);
    }
    if (!(t > 0))
        return 0;
    return (long)ceil(t * 1000.0);
}

/* Open the turn's transaction and apply again the upstream messages of a failed turn.
 * ZQ_OK, or ZQ_ESTORE when no transaction could begin. */
static int s_batch_begin(zq_broker_t *self)
{
    if (zq_store_begin(self->store) != ZQ_OK) {
        ZQ_ERROR("broker: store: cannot begin a transaction: %s", zq_store_errmsg(self->store));
        usleep(100 * 1000);
        return ZQ_ESTORE;
    }
    self->in_batch = 1;
    self->batch_failed = 0;
    self->batch_submitted = 0;
    /* upstream messages of a failed turn first, in their order */
    if (self->nretry && s_mono() >= self->retry_after) {
        zq_msg_t *kept = self->retry;
        size_t nkept = self->nretry, cap = self->retry_cap;
        self->retry = NULL;
        self->nretry = self->retry_cap = 0;
        for (size_t i = 0; i < nkept; i++) {
            zq_msg_t *slot = self->batch_failed ? NULL : s_upkeep_slot(self);
            if (!slot) {
                zq_msg_clear(&kept[i]);
                continue;
            }
            *slot = kept[i];
            self->nupkeep++;
            s_on_upstream(self, slot);
        }
        free(kept);
        (void)cap;
    }
    return ZQ_OK;
}

static void s_batch_end(zq_broker_t *self);

/* [identity][ZQP01][SUBMIT][body]: a SUBMIT whose body zq_submit_read may take. */
static int s_is_plain_submit(const zq_frames_t *f)
{
    return f->total == 4 && f->size[0] > 0 && f->size[0] <= ZQ_MAX_IDENTITY &&
           f->size[1] == strlen(ZQ_PROTO_VERSION) &&
           !memcmp(f->data[1], ZQ_PROTO_VERSION, f->size[1]) &&
           f->size[2] == strlen(ZQ_CMD_SUBMIT) && !memcmp(f->data[2], ZQ_CMD_SUBMIT, f->size[2]);
}

static size_t s_submits(zq_broker_t *self, const zq_frames_t *f);

/* One frontend message: a SUBMIT in the client library's form without a tree, anything else
 * (and a SUBMIT that reader declines) decoded and handled by command. Returns how many
 * requests it held (a SUBMITS holds one per element). */
static size_t s_frontend_message(zq_broker_t *self, const zq_frames_t *f)
{
    if (s_is_plain_submit(f) && s_submit_fast(self, f))
        return 1;
    if (f->total == 4 && f->size[2] == strlen(ZQ_CMD_SUBMITS) &&
        !memcmp(f->data[2], ZQ_CMD_SUBMITS, f->size[2]) && f->size[1] == strlen(ZQ_PROTO_VERSION) &&
        !memcmp(f->data[1], ZQ_PROTO_VERSION, f->size[1]))
        return s_submits(self, f);
    char err[256];
    zq_msg_t m;
    if (zq_frames_decode(f, 1, &m, err, sizeof err) == ZQ_OK)
        s_on_frontend(self, &m);
    else
        s_bad_frontend(self, &m, err);
    zq_msg_clear(&m);
    return 1;
}

/* [identity][ZQP01][SUBMITS][array]: each element handled exactly as the body of a SUBMIT
 * from the same peer (docs/protocol.md §7): answered on its own, by its own req. A body
 * that is not an array of elements is answered once with EPROTO after the elements before
 * the fault were taken. */
static size_t s_submits(zq_broker_t *self, const zq_frames_t *f)
{
    zq_frames_t g = *f; /* the same frames, the element as the body; closed by the caller */
    g.data[2] = ZQ_CMD_SUBMIT;
    g.size[2] = strlen(ZQ_CMD_SUBMIT);
    zq_jarray_t it;
    const char *elem;
    size_t n, count = 0;
    int rc = zq_jarray_begin(&it, f->data[3], f->size[3]);
    while (rc == ZQ_OK && (rc = zq_jarray_next(&it, &elem, &n)) == 1) {
        g.data[3] = elem;
        g.size[3] = n;
        count += s_frontend_message(self, &g);
        rc = ZQ_OK;
    }
    if (rc != 0) {
        zq_msg_t m;
        memset(&m, 0, sizeof m);
        memcpy(m.identity, f->data[0], f->size[0] <= ZQ_MAX_IDENTITY ? f->size[0] : 0);
        m.identity_len = f->size[0] <= ZQ_MAX_IDENTITY ? f->size[0] : 0;
        s_bad_frontend(self, &m, "SUBMITS: body is not a JSON array of SUBMIT bodies");
        count++;
    }
    return count ? count : 1;
}

/* [ZQP01][BATCH][body]: kept as text and read without a tree (s_on_batch_text). */
static int s_is_plain_batch(const zq_frames_t *f)
{
    return f->total == 3 && f->size[0] == strlen(ZQ_PROTO_VERSION) &&
           !memcmp(f->data[0], ZQ_PROTO_VERSION, f->size[0]) &&
           f->size[1] == strlen(ZQ_CMD_BATCH) && !memcmp(f->data[1], ZQ_CMD_BATCH, f->size[1]);
}

/* One upstream message, into slot (the turn's upkeep: a failed commit applies it again),
 * then applied. */
static void s_upstream_message(zq_broker_t *self, const zq_frames_t *f, zq_msg_t *slot)
{
    char err[256];
    memset(slot, 0, sizeof *slot);
    if (s_is_plain_batch(f) && (slot->raw = malloc(f->size[2] + 1))) {
        memcpy(slot->raw, f->data[2], f->size[2]);
        slot->raw[f->size[2]] = '\0';
        slot->raw_len = f->size[2];
        memcpy(slot->cmd, ZQ_CMD_BATCH, strlen(ZQ_CMD_BATCH) + 1);
        self->nupkeep++;
        s_on_upstream(self, slot);
        return;
    }
    if (zq_frames_decode(f, 0, slot, err, sizeof err) == ZQ_OK) {
        self->nupkeep++;
        s_on_upstream(self, slot);
    } else {
        zq_msg_clear(slot);
        s_bad_upstream(self, "%s", err);
    }
}

/* One message off the upstream socket, applied (see S_UP_TAKEN above). */
static int s_upstream_take(zq_broker_t *self)
{
    zq_msg_t *slot = s_upkeep_slot(self);
    if (!slot)
        return S_UP_FULL;
    char err[256];
    zq_frames_t f;
    int rc = zq_frames_recv(self->upstream, &f, ZMQ_DONTWAIT, err, sizeof err);
    self->up_settled = rc == ZQ_ETIMEOUT;
    if (rc == ZQ_ETIMEOUT)
        return S_UP_NONE;
    if (rc != ZQ_OK) {
        ZQ_ERROR("broker: upstream: %s", err);
        return -1;
    }
    s_upstream_message(self, &f, slot);
    zq_frames_close(&f);
    return S_UP_TAKEN;
}

/* Drain, apply, commit, then send (see the top of this file). */
static void s_batch(zq_broker_t *self, int frontend_ready, int upstream_ready)
{
    if (s_batch_begin(self) != ZQ_OK)
        return;
    char err[256];
    size_t n = 0;
    int more_f = frontend_ready, more_u = upstream_ready;
    while (n < ZQ_BROKER_BATCH && (more_f || more_u) && !self->batch_failed) {
        if (more_f) {
            zq_frames_t f;
            int rc = zq_frames_recv(self->frontend, &f, ZMQ_DONTWAIT, err, sizeof err);
            if (rc == ZQ_OK) {
                n += s_frontend_message(self, &f);
                zq_frames_close(&f);
            } else {
                if (rc == ZQ_EIO)
                    ZQ_ERROR("broker: frontend: %s", err);
                more_f = 0;
            }
        }
        if (more_u && !self->batch_failed) {
            int rc = s_upstream_take(self);
            if (rc == S_UP_TAKEN)
                n++;
            else
                more_u = 0;
        }
    }
    s_batch_end(self);
}

/* End of a turn's drain: write the STATEs, run the timers, commit (or leave the writes for
 * the next commit) and send. */
static void s_batch_end(zq_broker_t *self)
{
    s_flush_states(self);
    if (!self->batch_failed)
        s_timers(self);
    self->in_batch = 0;
    if (!self->batch_failed && !self->need_commit && !self->force_commit &&
        (!self->tx_since || s_mono() - self->tx_since < S_COMMIT_DELAY)) {
        /* nothing waits for these writes: leave them for the next commit */
        if (!self->tx_since)
            self->tx_since = s_mono();
        s_flush(self, -1);
        return;
    }
    self->need_commit = 0;
    self->tx_since = 0;
    int ok = !self->batch_failed && !(self->fail_commits > 0 && self->fail_commits--) &&
             zq_store_commit(self->store) == ZQ_OK;
    if (!ok) {
        zq_store_rollback(self->store);
        self->need_commit = 0;
        self->tx_since = 0;
        self->stats.commit_failures++;
        self->stats.submitted -= self->batch_submitted;
        /* the outcomes are counted again when the kept messages are applied again */
        self->stats.succeeded = self->committed.succeeded;
        self->stats.failed = self->committed.failed;
        self->stats.revoked = self->committed.revoked;
        self->stats.retried = self->committed.retried;
        if (s_rate_ok(self, "commit", 6))
            ZQ_ERROR("broker: store: commit failed: %s: %ld task%s refused, %zu upstream "
                     "message%s kept to apply again",
                     zq_store_errmsg(self->store), self->batch_submitted,
                     self->batch_submitted == 1 ? "" : "s", self->nupkeep,
                     self->nupkeep == 1 ? "" : "s");
        s_flush(self, 0);
        /* keep the upstream messages: the results they carry exist nowhere else */
        for (size_t i = 0; i < self->nupkeep; i++) {
            if (self->nretry == self->retry_cap && self->nretry < S_RETRY_KEEP) {
                size_t nc = self->retry_cap ? self->retry_cap * 2 : 256;
                zq_msg_t *v = realloc(self->retry, nc * sizeof *v);
                if (v) {
                    self->retry = v;
                    self->retry_cap = nc;
                }
            }
            if (self->nretry < self->retry_cap) {
                self->retry[self->nretry++] = self->upkeep[i];
            } else {
                ZQ_ERROR("broker: upstream message %s dropped: too many kept", self->upkeep[i].cmd);
                zq_msg_clear(&self->upkeep[i]);
            }
        }
        self->nupkeep = 0;
        s_drop_acks(self);
        s_drop_pushes(self);
        self->retry_after = s_mono() + 0.5;
        s_notes_clear(self);
        self->recheck_waits = 0;
        s_resync(self);
        return;
    }
    self->stats.commits++;
    self->committed = self->stats;
    for (size_t i = 0; i < self->nupkeep; i++)
        zq_msg_clear(&self->upkeep[i]);
    self->nupkeep = 0;
    s_flush(self, 1);
    s_link_pushes(self);
    s_send_acks(self);
}

/* One turn of the loop. ZQ_OK, or ZQ_EIO on a fatal socket error. */
static int s_turn(zq_broker_t *self)
{
    size_t nw = (size_t)self->nworkers;
    zmq_pollitem_t fixed[4 + 16], *items = fixed;
    s_worker_t *wfixed[16], **wv = wfixed;
    if (nw > 16) {
        items = malloc((4 + nw) * sizeof *items);
        wv = malloc(nw * sizeof *wv);
        if (!items || !wv) {
            free(items == fixed ? NULL : items);
            free(wv == wfixed ? NULL : wv);
            items = fixed;
            wv = wfixed;
            nw = 0;
        }
    }
    memset(items, 0, 4 * sizeof *items);
    items[0].socket = self->frontend;
    items[0].events = ZMQ_POLLIN;
    items[1].socket = self->upstream;
    items[1].events = ZMQ_POLLIN;
    items[2].socket = self->events;
    items[2].events = ZMQ_POLLIN;
    items[3].fd = self->stop_pipe[0];
    items[3].events = ZMQ_POLLIN;
    int n = 4, nb = 0;
    s_worker_t *w = self->workers;
    for (size_t i = 0; i < nw && w; w = w->next) {
        if (!w->blocked)
            continue;
        memset(&items[n], 0, sizeof items[n]);
        items[n].socket = w->push;
        items[n].events = ZMQ_POLLOUT;
        wv[nb++] = w;
        n++;
        i++;
    }
    long timeout = s_next_timeout(self, 1);
    /* the frontend and the events socket are sent on every turn: never settled */
    unsigned char sfixed[4 + 16] = {0}, *settled = sfixed;
    if (n > 4 + 16 && !(settled = calloc((size_t)n, 1)))
        settled = NULL;
    if (settled)
        settled[1] = (unsigned char)self->up_settled;
    int rc = zq_zpoll(items, settled, n, timeout);
    if (settled != sfixed)
        free(settled);
    int fatal = 0;
    if (rc < 0) {
        if (zmq_errno() != EINTR) {
            ZQ_ERROR("broker: poll: %s", zmq_strerror(zmq_errno()));
            fatal = 1;
        }
        goto out;
    }
    if (items[3].revents & ZMQ_POLLIN) {
        char buf[64];
        while (read(self->stop_pipe[0], buf, sizeof buf) > 0) {
        }
    }
    if (items[2].revents & ZMQ_POLLIN)
        s_read_subs(self);
    for (int i = 0; i < nb; i++)
        if (items[4 + i].revents & ZMQ_POLLOUT)
            wv[i]->blocked = 0;
    int fr = (items[0].revents & ZMQ_POLLIN) != 0, ur = (items[1].revents & ZMQ_POLLIN) != 0;
    if (fr || ur || self->nexpired || (self->nretry && s_mono() >= self->retry_after) ||
        (self->tx_since && s_mono() - self->tx_since >= S_COMMIT_DELAY) ||
        s_next_timeout(self, 0) == 0)
        s_batch(self, fr, ur);
    s_serve_waits(self);
    s_dispatch(self);
    if (self->nhack)
        s_release_acks(self, 0);
out:
    if (items != fixed)
        free(items);
    if (wv != wfixed)
        free(wv);
    return fatal ? ZQ_EIO : ZQ_OK;
}

/* ---------------------------------------------------------------------------------------
 * Life cycle
 */
void zq_broker_config_init(zq_broker_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->sync = ZQ_STORE_SYNC_NORMAL;
    cfg->lookahead = ZQ_BROKER_DEFAULT_LOOKAHEAD;
    cfg->ack_hold = ZQ_BROKER_ACK_HOLD;
    cfg->heartbeat = ZQ_BROKER_DEFAULT_HEARTBEAT;
    cfg->max_ready_in_memory = ZQ_BROKER_DEFAULT_MAX_READY;
}

/* 1 when a live process already listens on this ipc:// path (libzmq would silently take
 * the path over: two brokers on one endpoint). */
static int s_ipc_in_use(const char *ep)
{
    if (strncmp(ep, "ipc://", 6) != 0 || ep[6] == '@')
        return 0;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(ep + 6) >= sizeof sa.sun_path)
        return 0;
    strcpy(sa.sun_path, ep + 6);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int used = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return used;
}

/* Create, configure and bind one socket; *actual receives the bound endpoint. */
static void *s_bind(zq_broker_t *self, int type, const char *what, const char *ep, char **actual)
{
    void *s = zmq_socket(self->ctx, type);
    if (!s) {
        ZQ_ERROR("zq-broker: cannot create the %s socket: %s", what, zmq_strerror(zmq_errno()));
        return NULL;
    }
    zq_socket_defaults(s);
    /* events to a slow monitor are dropped past S_RCVHWM, not kept */
    int sndhwm = type == ZMQ_XPUB ? S_RCVHWM : S_SNDHWM, rcvhwm = S_RCVHWM, one = 1;
    zmq_setsockopt(s, ZMQ_SNDHWM, &sndhwm, sizeof sndhwm);
    zmq_setsockopt(s, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm);
    if (type == ZMQ_ROUTER)
        zmq_setsockopt(s, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    if (self->auth && (zq_curve_server_apply(s, &self->curve) != ZQ_OK ||
                       zq_auth_watch(self->auth, s, what) != ZQ_OK)) {
        ZQ_ERROR("zq-broker: cannot make the %s socket a CURVE server", what);
        zmq_close(s);
        return NULL;
    }
    /* said before binding, so that the warning stands even when the bind then fails */
    if (zq_endpoint_is_public(ep) && !self->auth)
        ZQ_WARN("zq-broker: the %s endpoint %s is reachable from other hosts and has no "
                "authentication: anyone who can connect can submit, read and revoke tasks "
                "(configure CURVE keys: --curve-secret and --curve-authorized)", what, ep);
    if (s_ipc_in_use(ep)) {
        ZQ_ERROR("zq-broker: cannot bind %s %s: another process is listening there", what, ep);
        zmq_close(s);
        return NULL;
    }
    char buf[S_ENDPOINT_MAX];
    size_t len = sizeof buf;
    if (zmq_bind(s, ep) != 0 || zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, buf, &len) != 0) {
        ZQ_ERROR("zq-broker: cannot bind %s %s: %s", what, ep, zmq_strerror(zmq_errno()));
        zmq_close(s);
        return NULL;
    }
    if (!(*actual = strdup(buf))) {
        zmq_close(s);
        return NULL;
    }
    return s;
}

/* The endpoint of a sibling socket: given, or derived from the frontend. */
static int s_sibling(const char *given, const char *frontend, int offset, const char *suffix,
                     char *out, size_t len)
{
    if (given && *given) {
        snprintf(out, len, "%s", given);
        return ZQ_OK;
    }
    size_t n = strlen(frontend);
    /* an ephemeral frontend port: siblings are ephemeral too */
    if (!strncmp(frontend, "tcp://", 6) && n > 2 &&
        (!strcmp(frontend + n - 2, ":*") || !strcmp(frontend + n - 2, ":0")))
        return zq_endpoint_ephemeral(frontend, suffix, out, len);
    return zq_endpoint_derive(frontend, offset, suffix, out, len);
}

zq_broker_t *zq_broker_new(const zq_broker_config_t *cfg, int *err)
{
    zq_broker_config_t defaults;
    if (!cfg) {
        zq_broker_config_init(&defaults);
        cfg = &defaults;
    }
    int dummy;
    if (!err)
        err = &dummy;
    *err = ZQ_EINVAL;
    if (!(cfg->lookahead >= 0) || !isfinite(cfg->lookahead) || !(cfg->heartbeat > 0) ||
        !isfinite(cfg->heartbeat) || cfg->max_ready_in_memory < 1 || !(cfg->ack_hold >= 0) ||
        !isfinite(cfg->ack_hold)) {
        ZQ_ERROR("zq-broker: bad configuration: lookahead and ack hold must be >= 0, "
                 "heartbeat > 0 and max-ready-in-memory >= 1");
        return NULL;
    }
    const char *frontend = zq_broker_url(cfg->frontend);
    char up[S_ENDPOINT_MAX], ev[S_ENDPOINT_MAX];
    if (s_sibling(cfg->upstream, frontend, 1, ".up", up, sizeof up) != ZQ_OK ||
        s_sibling(cfg->events, frontend, 2, ".ev", ev, sizeof ev) != ZQ_OK) {
        ZQ_ERROR("zq-broker: cannot derive the upstream and events endpoints from %s "
                 "(tcp://HOST:PORT or ipc://PATH; or give --upstream and --events)",
                 frontend);
        return NULL;
    }
    zq_broker_t *self = calloc(1, sizeof *self);
    if (!self) {
        *err = ZQ_ENOMEM;
        return NULL;
    }
    self->stop_pipe[0] = self->stop_pipe[1] = -1;
    self->sync = cfg->sync;
    self->lookahead = cfg->lookahead;
    self->ack_hold = cfg->ack_hold;
    self->heartbeat = cfg->heartbeat;
    self->max_ready = cfg->max_ready_in_memory;
    self->max_sched = self->max_ready / 4 > S_SCHED_MIN ? self->max_ready / 4 : S_SCHED_MIN;
    self->orphan_deadline = INFINITY;
    zq_uuid4(self->broker_id);
    zq_time_iso(zq_now(), self->started_iso, sizeof self->started_iso);
    self->data_dir = strdup(cfg->data_dir ? cfg->data_dir : ZQ_BROKER_DEFAULT_DATA_DIR);
    if (!self->data_dir || pipe2(self->stop_pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
        *err = ZQ_ENOMEM;
        goto fail;
    }
    char why[512];
    self->store = zq_store_open(self->data_dir, self->sync, why, sizeof why);
    if (!self->store) {
        ZQ_ERROR("zq-broker: cannot open the store: %s", why);
        *err = ZQ_ESTORE;
        goto fail;
    }
    *err = ZQ_EIO;
    self->ctx = zmq_ctx_new();
    if (!self->ctx)
        goto fail;
    if (cfg->curve_secret || cfg->curve_authorized) {
        /* the ZAP handler first: a CURVE server bound without one lets every key in */
        *err = ZQ_EINVAL;
        if (!cfg->curve_secret || !cfg->curve_authorized) {
            ZQ_ERROR("zq-broker: CURVE needs both --curve-secret FILE and --curve-authorized "
                     "DIR");
            goto fail;
        }
        if (zq_curve_read_secret(cfg->curve_secret, &self->curve, why, sizeof why) != ZQ_OK) {
            ZQ_ERROR("zq-broker: --curve-secret: %s", why);
            goto fail;
        }
        if (!(self->auth = zq_auth_new(self->ctx, cfg->curve_authorized, "zq-broker")))
            goto fail;
        *err = ZQ_EIO;
    }
    if (!(self->frontend = s_bind(self, ZMQ_ROUTER, "frontend", frontend, &self->frontend_ep)) ||
        !(self->upstream = s_bind(self, ZMQ_PULL, "upstream", up, &self->upstream_ep)) ||
        !(self->events = s_bind(self, ZMQ_XPUB, "events", ev, &self->events_ep)))
        goto fail;
    if (self->auth && zq_auth_start(self->auth) != ZQ_OK)
        goto fail;
    /* the revoked set only matters to SUBMIT when it is not empty */
    zq_sb_t probe = {0};
    int nrev = zq_store_revoked_list(self->store, 1, s_revoked_row, &probe);
    free(probe.buf);
    self->n_revoked = nrev > 0 ? nrev : 0;
    if (s_resync(self) != ZQ_OK) {
        *err = ZQ_ESTORE;
        goto fail;
    }
    long unfinished = zq_store_count_unfinished(self->store);
    self->stats.recovered = unfinished > 0 ? unfinished : 0;
    *err = ZQ_OK;
    if (self->auth)
        ZQ_INFO("zq-broker: CURVE on, public key %s", self->curve.public_key);
    ZQ_INFO("zq-broker %s ready: frontend %s, upstream %s, events %s, data %s (sync=%s), %ld "
            "task%s recovered",
            PACKAGE_VERSION, self->frontend_ep, self->upstream_ep, self->events_ep,
            self->data_dir, zq_store_sync_name(self->sync), self->stats.recovered,
            self->stats.recovered == 1 ? "" : "s");
    if (self->orphans.n)
        ZQ_INFO("broker: %zu task%s were with workers: waiting %.0fs for them to reconnect",
                self->orphans.n, self->orphans.n == 1 ? "" : "s",
                ZQ_BROKER_DEAD_AFTER * self->heartbeat);
    /* A queued (PENDING) task may have been handed out just before the restart, its
     * RECEIVED lost with the last turn, and even run (its result waiting in the worker's
     * outbox). Its worker claims it with HELLO `holding` as soon as its next heartbeat
     * meets EUNKNOWNWORKER: hand nothing out before every live worker had that chance. */
    if (self->stats.recovered > 0)
        self->dispatch_from = s_mono() + ZQ_BROKER_RESTART_HOLD * self->heartbeat;
    return self;
fail:
    zq_broker_destroy(&self);
    return NULL;
}

static void s_free_queue(void *arg, s_hnode_t *node)
{
    (void)arg;
    s_queue_free((s_queue_t *)node);
}

static void s_free_orphan(void *arg, s_hnode_t *node)
{
    (void)arg;
    s_orphan_t *o = (s_orphan_t *)node;
    free(o->task);
    free(o);
}

static void s_free_waitlist(void *arg, s_hnode_t *node)
{
    (void)arg;
    s_waitlist_t *wl = (s_waitlist_t *)node;
    for (s_waiter_t *w = wl->first, *next; w; w = next) {
        next = w->next;
        free(w);
    }
    free(wl);
}

void zq_broker_destroy(zq_broker_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zq_broker_t *self = *self_p;
    while (self->workers) {
        s_worker_t *w = self->workers;
        self->workers = w->next;
        while (w->hl)
            s_held_release(self, w->hl, 0); /* memory only: the store keeps the states */
        s_worker_free(w);
    }
    s_map_each(&self->orphans, s_free_orphan, NULL);
    s_map_each(&self->waits, s_free_waitlist, NULL);
    s_map_each(&self->queues, s_free_queue, NULL);
    free(self->orphans.b);
    free(self->waits.b);
    free(self->queues.b);
    free(self->held.b);
    free(self->pend.b);
    free(self->wheap);
    for (size_t i = 0; i < self->nexpired; i++)
        free(self->expired[i]);
    free(self->expired);
    for (size_t i = 0; i < self->nupkeep; i++)
        zq_msg_clear(&self->upkeep[i]);
    free(self->upkeep);
    free(self->upmsgs);
    zq_arena_free(&self->turn_arena);
    for (size_t i = 0; i < self->nretry; i++)
        zq_msg_clear(&self->retry[i]);
    if (self->nretry)
        ZQ_ERROR("zq-broker: %zu upstream messages could not be stored", self->nretry);
    free(self->retry);
    s_notes_clear(self);
    free(self->notify);
    s_drop_pushes(self);
    free(self->pushes);
    for (size_t i = 0; i < self->rg_cap; i++) {
        free(self->rg[i].text.buf);
        free(self->rg[i].items);
    }
    free(self->rg);
    free(self->rg_hash);
    for (size_t i = 0; i < self->nhack; i++)
        free(s_hack_at(self, self->hack_head + i)->buf);
    free(self->hacks);
    free(self->hack_hash);
    free(self->out);
    free(self->arena.buf);
    free(self->scratch.buf);
    free(self->submit_text.buf);
    for (size_t i = 0; i < self->nsubs; i++)
        free(self->subs[i]);
    free(self->subs);
    free(self->sublens);
    zq_store_destroy(&self->store); /* commits what is pending */
    if (self->frontend)
        zmq_close(self->frontend);
    if (self->upstream)
        zmq_close(self->upstream);
    if (self->events)
        zmq_close(self->events);
    zq_auth_destroy(&self->auth); /* after the sockets it guards, before their context */
    memset(&self->curve, 0, sizeof self->curve);
    if (self->ctx)
        zmq_ctx_term(self->ctx);
    if (self->stop_pipe[0] >= 0)
        close(self->stop_pipe[0]);
    if (self->stop_pipe[1] >= 0)
        close(self->stop_pipe[1]);
    free(self->frontend_ep);
    free(self->upstream_ep);
    free(self->events_ep);
    free(self->data_dir);
    free(self);
    *self_p = NULL;
}

int zq_broker_run(zq_broker_t *self)
{
    while (!self->stop) {
        if (s_turn(self) != ZQ_OK)
            return ZQ_EIO;
    }
    if (self->tx_since) { /* writes left for a later commit: commit them now */
        self->force_commit = 1;
        s_batch(self, 0, 0);
        self->force_commit = 0;
    }
    s_release_acks(self, 1); /* their tasks are on disk: say so before leaving */
    long waiting = zq_store_count_unfinished(self->store);
    ZQ_INFO("zq-broker: shutting down: %ld unfinished task%s kept in %s", waiting > 0 ? waiting : 0,
            waiting == 1 ? "" : "s", self->data_dir);
    return ZQ_OK;
}

void zq_broker_stop(zq_broker_t *self)
{
    if (!self)
        return;
    self->stop = 1;
    if (self->stop_pipe[1] >= 0) {
        char c = 1;
        ssize_t r = write(self->stop_pipe[1], &c, 1); /* wakes zmq_poll */
        (void)r;
    }
}

const char *zq_broker_frontend(const zq_broker_t *self)
{
    return self->frontend_ep;
}

const char *zq_broker_upstream(const zq_broker_t *self)
{
    return self->upstream_ep;
}

const char *zq_broker_events(const zq_broker_t *self)
{
    return self->events_ep;
}

void zq_broker_stats(const zq_broker_t *self, zq_broker_stats_t *out)
{
    *out = self->stats;
    out->auth_rejected = zq_auth_rejected(self->auth);
}

/* ---------------------------------------------------------------------------------------
 * Test seam (zq_broker_int.h): one message through the same handlers as s_batch's loop
 */
void zq_broker_feed(zq_broker_t *self, int upstream, const void *const *frames,
                    const size_t *sizes, size_t nframes)
{
    s_read_subs(self);
    if (s_batch_begin(self) != ZQ_OK)
        return;
    zq_frames_t f; /* the data without libzmq's messages: nothing to close */
    f.total = nframes;
    f.n = nframes < ZQ_FRAMES_MAX ? nframes : ZQ_FRAMES_MAX;
    for (size_t i = 0; i < f.n; i++) {
        f.data[i] = frames[i];
        f.size[i] = sizes[i];
    }
    if (!upstream) {
        s_frontend_message(self, &f);
    } else {
        zq_msg_t *slot = s_upkeep_slot(self); /* kept until the commit, as in s_batch */
        if (slot)
            s_upstream_message(self, &f, slot);
    }
    s_batch_end(self);
    s_serve_waits(self);
    /* as s_turn does: a worker whose channel had no peer or was full takes tasks again */
    for (s_worker_t *w = self->workers; w; w = w->next) {
        zmq_pollitem_t it = {w->push, 0, ZMQ_POLLOUT, 0};
        if (w->blocked && zmq_poll(&it, 1, 0) == 1 && (it.revents & ZMQ_POLLOUT))
            w->blocked = 0;
    }
    s_dispatch(self);
}

void zq_broker_fail_state_memory(zq_broker_t *self, int n)
{
    self->turn_arena.fail = n;
}

int zq_broker_fail_commits(zq_broker_t *self, int n)
{
    int left = self->fail_commits;
    if (n >= 0)
        self->fail_commits = n;
    return left;
}

int zq_broker_fail_dispatch(zq_broker_t *self, int n)
{
    int left = self->fail_dispatch;
    if (n >= 0)
        self->fail_dispatch = n;
    return left;
}
