/*
 * zq_worker - the main loop of zq-worker (see zq_worker.h; wire rules: docs/protocol.md).
 *
 * One thread owns every ZeroMQ socket: the frontend DEALER (HELLO / HEARTBEAT / BYE and
 * their REPLY), the dispatch PULL (TASK, REVOKED) and the upstream PUSH (STATE, RETURN,
 * SUBMIT). Pool events (a task ended, a task sent a sub-task, a child died) come back into
 * this loop, so STATE messages of one task always leave in order on one socket.
 *
 * A job (a TASK we hold) is in exactly one place: the ready FIFO (waiting for room in the
 * pool), the ETA heap (scheduled, waiting for its eta), the pool's queue (pooled: the next
 * free slot takes it; it can still be taken back) or a pool slot (active). All of them are
 * in the id table, which is what HELLO's `holding` and REVOKED look at.
 *
 * Reconnection is the lazy-pirate pattern: at most one HELLO is in flight; when it is not
 * answered in time the DEALER is closed (dropping the queued request) and a new one sends
 * the next HELLO, so a broker that comes back never sees a burst of stale HELLOs.
 */
#include "config.h"
#include "zq_worker.h"
#include "zq_worker_int.h"
#include "zq_control.h"
#include "zq_exec.h"
#include "zq_outbox.h"
#include "zq_log.h"
#include "zq_proto.h"
#include "zq_time.h"
#include "zq_util.h"
#include "zq_zpoll.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

/* Messages read from one socket per loop turn, so no socket starves the others. */
#define BATCH 512
/* Frames kept from one message; a valid one has 3 (zq_proto.h). */
#define MAX_FRAMES 8
/* Longest message body quoted in the "unregistered task" error (bytes). */
#define QUOTE_MAX 1024

enum { J_READY = 1, J_SCHEDULED, J_POOLED, J_ACTIVE };
enum { KILL_NONE = 0, KILL_HARD, KILL_TERMINATE };

typedef struct s_job {
    char *raw;                /* TASK body text as received (prefork only), owned */
    size_t rawlen;
    cJSON *body;              /* parsed TASK body, owned; the request points into it */
    char *strs;               /* owned: the request's strings when decoded from raw
                               * (zq_exec_decode_text; body then NULL until args are asked) */
    zq_request_t req;         /* decoded; hostname and limits filled in */
    const zq_task_entry_t *entry;
    int where;                /* J_READY, J_SCHEDULED, J_POOLED (queued in the pool),
                               * J_ACTIVE (running), or 0 (not placed yet) */
    int in_table;             /* 1: in the id table */
    double hard, soft;        /* effective limits, seconds; 0 = none */
    int slot;                 /* J_ACTIVE: pool slot */
    double started;           /* J_ACTIVE: zq_mono() at start */
    double soft_at, hard_at;  /* J_ACTIVE: zq_mono() deadlines; 0 = none */
    int soft_sent;            /* the soft limit was signalled */
    int killed;               /* KILL_*: why we signalled its child */
    int term_signal;          /* KILL_TERMINATE: the signal sent */
    int term_pending;         /* J_POOLED: terminate with this signal once it starts */
    struct s_job *prev, *next; /* J_READY: FIFO links */
    size_t heap_idx;          /* J_SCHEDULED: position in the ETA heap */
    struct s_job *hnext;      /* id table chain */
    /* RECEIVED / STARTED not told to the broker yet: held back ZQ_WORKER_STATE_HOLD so
     * that a short task's states become one (folded into its final STATE) */
    int pend;                 /* P_RECEIVED | P_STARTED not sent yet */
    double recv_wall, start_wall; /* zq_now() of receipt and start */
    long pid;                 /* process running it (STARTED) */
    double pend_since;        /* zq_mono() it joined the pending list */
    struct s_job *pprev, *pnext; /* pending list links */
    int plinked;
} s_job_t;

enum { P_RECEIVED = 1, P_STARTED = 2 };

typedef struct s_revoked {
    char *id;
    struct s_revoked *hnext;
} s_revoked_t;

struct zq_worker {
    /* configuration */
    char *broker_url;
    char *plugins_dir;
    char name[256];
    char **queues;
    size_t nqueues;
    int concurrency, prefetch;
    int prefetch_adaptive;    /* no --prefetch: the broker may widen the window (§8) */
    zq_pool_kind_t pool_kind;
    double heartbeat, time_limit, soft_time_limit;
    char *control;
    zq_curve_client_t curve;  /* CurveZMQ keys; curve.enabled = 0 when plain */
    char *curve_authorized;   /* who may query the control socket (CURVE only) */
    void *front_mon;          /* handshake outcomes of w->front (zq_curve_monitor) */
    int auth_logged;          /* a refused handshake was logged in this outage */
    double started;           /* zq_now() at creation */
    zq_loader_t *loader;
    zq_pool_t *pool;
    /* sockets; the upstream PUSH has a context of its own so that terminating it flushes
     * every queued STATE before BYE goes out on the frontend (another connection) */
    void *ctx, *front, *dispatch, *upstream;
    void *up_ctx;
    int front_settled, disp_settled; /* drained to EAGAIN since the last other use (zq_zpoll.h) */
    char upstream_ep[512];
    char dispatch_ep[512];    /* resolved endpoint the dispatch PULL is connected to */
    char broker_id[64];       /* broker incarnation of the current session */
    /* session with the broker */
    int registered;           /* the last HELLO was answered */
    int ever_registered;
    long seq;                 /* last `req` used */
    long hello_req;           /* req of the HELLO in flight, 0 when none */
    double hello_at;          /* zq_mono() it was sent */
    int waiting_logged;       /* "waiting for the broker" said once per outage */
    double hb_interval;
    double hb_next;           /* zq_mono() of the next HEARTBEAT */
    struct {
        long req;
        double at;
    } hb_sent[8];             /* recent HEARTBEATs: req and zq_mono() sent, by req % 8 */
    double heard_at;          /* zq_mono() of the last REPLY of any kind */
    /* zq_mono() when the last answered HELLO or HEARTBEAT left: the broker heard from us
     * then or later, so it cannot declare us dead (docs/protocol.md §10) before lease_from
     * + 3 intervals. Until then the tasks we hold are ours to start: our lease. */
    double lease_from;
    long bye_req;
    int bye_answered;
    double last_bad;          /* rate limit for bad-message logs */
    unsigned long bad_messages; /* malformed messages dropped (inspect stats) */
    /* upstream: batches kept until the broker confirms them (zq_outbox.h) */
    zq_outbox_t *outbox;
    s_job_t *pend_head, *pend_tail; /* jobs with states held back, oldest first */
    double outbox_warned;     /* zq_mono() of the last "waiting for confirmation" log */
    /* jobs */
    s_job_t **table;          /* id -> job, chained */
    size_t table_cap, njobs;
    s_job_t *ready_head, *ready_tail;
    /* last of the ETA jobs at the front of the ready FIFO (due, waiting for pool room): the
     * next due ones go after it, so late jobs start in eta order, not newest first */
    s_job_t *ready_due_tail;
    s_job_t **heap;           /* min-heap on eta */
    size_t nheap, heap_cap;
    s_job_t **active;         /* by slot */
    int nslots, nactive;
    int npooled;              /* jobs queued in the pool, not started yet */
    /* ETA wake-ups: a timerfd armed at the earliest eta (absolute, wall clock). poll()'s own
     * timeout is whole milliseconds with a slack of 0.1% of the wait (~1 ms for a task due in
     * 1 s); an hrtimer fires within tens of microseconds. -1: no timerfd, poll's timeout. */
    int eta_fd;
    double eta_armed;         /* eta it is armed for, 0 when disarmed */
    /* revoked ids: hash set + FIFO ring for eviction */
    s_revoked_t **rv;
    size_t rv_cap;
    s_revoked_t **rv_ring;
    size_t rv_head, rv_count;
    /* lifecycle */
    unsigned long processed;
    int draining;             /* warm shutdown under way */
    int exit_code;
    int stop;                 /* leave the loop */
    int threads_abandoned;    /* cold shutdown left busy threads running plugin code */
    zq_control_t *ctl;        /* the control socket (zq-ctl inspect), NULL until run */
};

/* Signals: counted in the handler, noticed by the loop through a self-pipe. */
static int s_sig_pipe[2] = {-1, -1};
static volatile sig_atomic_t s_sig_count;
/* 1 while a solo task runs inside the loop: a second signal then exits on the spot. */
static volatile sig_atomic_t s_inline_running;

static void s_on_signal(int sig)
{
    (void)sig;
    int saved = errno;
    if (s_sig_count < 100)
        s_sig_count++;
    if (s_sig_count >= 2 && s_inline_running) {
        static const char msg[] = "\nworker: Cold shutdown (MainProcess)\n";
        ssize_t w = write(STDOUT_FILENO, msg, sizeof msg - 1);
        (void)w;
        _exit(1);
    }
    if (s_sig_pipe[1] >= 0) {
        ssize_t w = write(s_sig_pipe[1], "s", 1);
        (void)w;
    }
    errno = saved;
}

void zq_worker_stop(void)
{
    s_on_signal(SIGTERM);
}

/* ---------------------------------------------------------------------------------------
 * Names
 */
int zq_worker_expand_name(const char *pattern, char *out, size_t outlen)
{
    if (!pattern || !*pattern || !out || outlen == 0)
        return ZQ_EINVAL;
    const char *host = zq_hostname();
    const char *dot = strchr(host, '.');
    char buf[512];
    size_t n = 0;
#define PUT(s_, l_)                                                                                \
    do {                                                                                           \
        size_t l__ = (l_);                                                                         \
        if (n + l__ >= sizeof buf)                                                                 \
            return ZQ_EINVAL;                                                                      \
        memcpy(buf + n, (s_), l__);                                                                \
        n += l__;                                                                                  \
    } while (0)
    for (const char *p = pattern; *p; p++) {
        if (*p != '%' || !p[1]) {
            PUT(p, 1);
            continue;
        }
        p++;
        switch (*p) {
        case 'h': PUT(host, strlen(host)); break;
        case 'n': PUT(host, dot ? (size_t)(dot - host) : strlen(host)); break;
        case 'd': PUT(dot ? dot + 1 : "", dot ? strlen(dot + 1) : 0); break;
        case '%': PUT("%", 1); break;
        default:
            PUT("%", 1);
            PUT(p, 1);
        }
    }
#undef PUT
    buf[n] = '\0';
    int len = strchr(buf, '@') ? snprintf(out, outlen, "%s", buf)
                               : snprintf(out, outlen, "zq@%s", buf);
    if (len < 0 || (size_t)len >= outlen || !zq_valid_token(out))
        return ZQ_EINVAL;
    return ZQ_OK;
}

/* ---------------------------------------------------------------------------------------
 * Job table, ready FIFO, ETA heap, revoked set
 */
static uint64_t s_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

static s_job_t *s_job_find(const zq_worker_t *w, const char *id)
{
    if (!w->table_cap)
        return NULL;
    for (s_job_t *j = w->table[s_hash(id) & (w->table_cap - 1)]; j; j = j->hnext)
        if (strcmp(j->req.id, id) == 0)
            return j;
    return NULL;
}

static int s_job_insert(zq_worker_t *w, s_job_t *job)
{
    if (w->njobs + 1 > w->table_cap) {
        size_t cap = w->table_cap ? w->table_cap * 2 : 256;
        s_job_t **t = calloc(cap, sizeof *t);
        if (!t)
            return ZQ_ENOMEM;
        for (size_t i = 0; i < w->table_cap; i++)
            for (s_job_t *j = w->table[i], *next; j; j = next) {
                next = j->hnext;
                size_t b = s_hash(j->req.id) & (cap - 1);
                j->hnext = t[b];
                t[b] = j;
            }
        free(w->table);
        w->table = t;
        w->table_cap = cap;
    }
    size_t b = s_hash(job->req.id) & (w->table_cap - 1);
    job->hnext = w->table[b];
    w->table[b] = job;
    job->in_table = 1;
    w->njobs++;
    return ZQ_OK;
}

static void s_job_unlink_table(zq_worker_t *w, s_job_t *job)
{
    if (!job->in_table)
        return;
    s_job_t **pp = &w->table[s_hash(job->req.id) & (w->table_cap - 1)];
    for (; *pp; pp = &(*pp)->hnext)
        if (*pp == job) {
            *pp = job->hnext;
            break;
        }
    job->in_table = 0;
    w->njobs--;
}

static void s_job_free(s_job_t *job)
{
    if (!job)
        return;
    free(job->raw);
    zq_request_clear(&job->req);
    cJSON_Delete(job->body);
    free(job->strs);
    free(job);
}

static void s_pend_unlink(zq_worker_t *w, s_job_t *job)
{
    if (!job->plinked)
        return;
    if (job->pprev)
        job->pprev->pnext = job->pnext;
    else
        w->pend_head = job->pnext;
    if (job->pnext)
        job->pnext->pprev = job->pprev;
    else
        w->pend_tail = job->pprev;
    job->pprev = job->pnext = NULL;
    job->plinked = 0;
}

/* Hold a state back (flag: P_RECEIVED, P_STARTED); it leaves with the next state of the job
 * or after ZQ_WORKER_STATE_HOLD (s_pend_flush). */
static void s_pend_add(zq_worker_t *w, s_job_t *job, int flag)
{
    job->pend |= flag;
    if (job->plinked)
        return;
    job->pend_since = zq_mono();
    job->pprev = w->pend_tail;
    job->pnext = NULL;
    if (w->pend_tail)
        w->pend_tail->pnext = job;
    else
        w->pend_head = job;
    w->pend_tail = job;
    job->plinked = 1;
}

/* Forget a job that is in no queue any more. */
static void s_job_drop(zq_worker_t *w, s_job_t *job)
{
    s_pend_unlink(w, job);
    s_job_unlink_table(w, job);
    s_job_free(job);
}

static void s_ready_push(zq_worker_t *w, s_job_t *job, s_job_t *after)
{
    job->where = J_READY;
    job->prev = after;
    job->next = after ? after->next : w->ready_head;
    if (job->next)
        job->next->prev = job;
    else
        w->ready_tail = job;
    if (after)
        after->next = job;
    else
        w->ready_head = job;
}

/* Back to the head of the ready FIFO (a job the pool refused or handed back). A due ETA
 * job there counts as due, so that the ones falling due later queue behind it. */
static void s_ready_push_front(zq_worker_t *w, s_job_t *job)
{
    s_ready_push(w, job, NULL);
    if (job->req.eta_t > 0 && !w->ready_due_tail)
        w->ready_due_tail = job;
}

static void s_ready_unlink(zq_worker_t *w, s_job_t *job)
{
    if (w->ready_due_tail == job)
        w->ready_due_tail = job->prev;
    if (job->prev)
        job->prev->next = job->next;
    else
        w->ready_head = job->next;
    if (job->next)
        job->next->prev = job->prev;
    else
        w->ready_tail = job->prev;
    job->prev = job->next = NULL;
    job->where = 0;
}

static void s_heap_set(zq_worker_t *w, size_t i, s_job_t *job)
{
    w->heap[i] = job;
    job->heap_idx = i;
}

static void s_heap_up(zq_worker_t *w, size_t i)
{
    s_job_t *job = w->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (w->heap[parent]->req.eta_t <= job->req.eta_t)
            break;
        s_heap_set(w, i, w->heap[parent]);
        i = parent;
    }
    s_heap_set(w, i, job);
}

static void s_heap_down(zq_worker_t *w, size_t i)
{
    s_job_t *job = w->heap[i];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        double best = job->req.eta_t;
        if (l < w->nheap && w->heap[l]->req.eta_t < best) {
            m = l;
            best = w->heap[l]->req.eta_t;
        }
        if (r < w->nheap && w->heap[r]->req.eta_t < best)
            m = r;
        if (m == i)
            break;
        s_heap_set(w, i, w->heap[m]);
        i = m;
    }
    s_heap_set(w, i, job);
}

static int s_heap_push(zq_worker_t *w, s_job_t *job)
{
    if (w->nheap == w->heap_cap) {
        size_t cap = w->heap_cap ? w->heap_cap * 2 : 64;
        s_job_t **h = realloc(w->heap, cap * sizeof *h);
        if (!h)
            return ZQ_ENOMEM;
        w->heap = h;
        w->heap_cap = cap;
    }
    job->where = J_SCHEDULED;
    w->heap[w->nheap] = job;
    job->heap_idx = w->nheap++;
    s_heap_up(w, job->heap_idx);
    return ZQ_OK;
}

static void s_heap_remove(zq_worker_t *w, s_job_t *job)
{
    size_t i = job->heap_idx;
    w->nheap--;
    if (i != w->nheap) {
        s_heap_set(w, i, w->heap[w->nheap]);
        s_heap_down(w, i);
        s_heap_up(w, w->heap[i]->heap_idx);
    }
    job->where = 0;
}

static int s_revoked_has(const zq_worker_t *w, const char *id)
{
    if (!w->rv_cap)
        return 0;
    for (s_revoked_t *r = w->rv[s_hash(id) & (w->rv_cap - 1)]; r; r = r->hnext)
        if (strcmp(r->id, id) == 0)
            return 1;
    return 0;
}

static void s_revoked_unlink(zq_worker_t *w, s_revoked_t *rv)
{
    s_revoked_t **pp = &w->rv[s_hash(rv->id) & (w->rv_cap - 1)];
    for (; *pp; pp = &(*pp)->hnext)
        if (*pp == rv) {
            *pp = rv->hnext;
            return;
        }
}

static void s_revoked_add(zq_worker_t *w, const char *id)
{
    if (s_revoked_has(w, id))
        return;
    if (!w->rv_cap) {
        w->rv_cap = 1024;
        w->rv = calloc(w->rv_cap, sizeof *w->rv);
        w->rv_ring = calloc(ZQ_WORKER_REVOKES_MAX, sizeof *w->rv_ring);
        if (!w->rv || !w->rv_ring) {
            free(w->rv);
            free(w->rv_ring);
            w->rv = NULL;
            w->rv_ring = NULL;
            w->rv_cap = 0;
            return;
        }
    }
    if (w->rv_count == ZQ_WORKER_REVOKES_MAX) {
        /* the oldest revocation goes, as in Celery's LimitedSet */
        s_revoked_t *old = w->rv_ring[w->rv_head];
        s_revoked_unlink(w, old);
        free(old->id);
        free(old);
        w->rv_head = (w->rv_head + 1) % ZQ_WORKER_REVOKES_MAX;
        w->rv_count--;
    }
    s_revoked_t *rv = calloc(1, sizeof *rv);
    if (!rv || !(rv->id = strdup(id))) {
        free(rv);
        return;
    }
    if (w->rv_count + 1 > w->rv_cap && w->rv_cap < ZQ_WORKER_REVOKES_MAX * 2) {
        size_t cap = w->rv_cap * 2;
        s_revoked_t **t = calloc(cap, sizeof *t);
        if (t) {
            for (size_t i = 0; i < w->rv_cap; i++)
                for (s_revoked_t *r = w->rv[i], *next; r; r = next) {
                    next = r->hnext;
                    size_t b = s_hash(r->id) & (cap - 1);
                    r->hnext = t[b];
                    t[b] = r;
                }
            free(w->rv);
            w->rv = t;
            w->rv_cap = cap;
        }
    }
    size_t b = s_hash(id) & (w->rv_cap - 1);
    rv->hnext = w->rv[b];
    w->rv[b] = rv;
    w->rv_ring[(w->rv_head + w->rv_count) % ZQ_WORKER_REVOKES_MAX] = rv;
    w->rv_count++;
}

/* ---------------------------------------------------------------------------------------
 * Sending
 */
/* Queue an upstream message (STATE, SUBMIT, RETURN) in the open batch; it leaves at the end
 * of the turn (s_up_flush) and is kept until the broker confirms it. task_id: the task a
 * final STATE ends, else NULL. */
static void s_up_send(zq_worker_t *w, const char *cmd, const char *json, size_t len,
                      const char *extra, const char *task_id)
{
    if (!json)
        return;
    if (zq_outbox_add(w->outbox, cmd, json, len, extra, task_id) != ZQ_OK)
        ZQ_ERROR("out of memory: an upstream %s message was dropped", cmd);
}

static int s_up_sendfn(void *arg, const char *json, size_t len)
{
    zq_worker_t *w = arg;
    if (!w->upstream)
        return ZQ_EIO;
    return zq_msg_send_raw(w->upstream, NULL, 0, ZQ_CMD_BATCH, json, len, ZMQ_DONTWAIT);
}

/* The members that fold the held-back states of job (those in mask) into a later STATE
 * (docs/protocol.md §8), written into buf; "" when none. */
static const char *s_folded(const s_job_t *job, int mask, char *buf, size_t size)
{
    char recv[40], start[40];
    int pend = job->pend & mask, n = 0;
    buf[0] = '\0';
    if (pend & P_RECEIVED)
        n = snprintf(buf, size, "\"received\":\"%s\"",
                     zq_time_iso(job->recv_wall, recv, sizeof recv));
    if ((pend & P_STARTED) && n >= 0 && (size_t)n < size)
        snprintf(buf + n, size - (size_t)n,
                 "%s\"started\":\"%s\",\"pid\":%ld,\"acks_late\":%s", n ? "," : "",
                 zq_time_iso(job->start_wall, start, sizeof start), job->pid,
                 job->entry && job->entry->acks_late ? "true" : "false");
    return buf;
}

/* The final STATE of a job (built by zq_exec or a pool child; not freed here), with the
 * RECEIVED / STARTED the job still held back folded in as it is queued (no copy). */
static void s_send_final(zq_worker_t *w, s_job_t *job, const char *json, size_t len)
{
    if (!json) {
        ZQ_ERROR("out of memory building a STATE message");
        return;
    }
    s_pend_unlink(w, job);
    char extra[192];
    s_folded(job, P_RECEIVED | P_STARTED, extra, sizeof extra);
    s_up_send(w, ZQ_CMD_STATE, json, len, extra, job->req.id);
    job->pend = 0;
}

/* Send the states held back longer than ZQ_WORKER_STATE_HOLD (all of them when force).
 * Returns the zq_mono() time the next one is due, 0 when none waits. */
static double s_pend_flush(zq_worker_t *w, double m, int force)
{
    while (w->pend_head) {
        s_job_t *job = w->pend_head;
        if (!force && m - job->pend_since < ZQ_WORKER_STATE_HOLD)
            return job->pend_since + ZQ_WORKER_STATE_HOLD;
        s_pend_unlink(w, job);
        size_t len = 0;
        char *json, extra[96] = "";
        if (job->pend & P_STARTED) {
            json = zq_exec_state_started(job->req.id, w->name, job->pid,
                                         job->entry && job->entry->acks_late, job->start_wall,
                                         &len);
            s_folded(job, P_RECEIVED, extra, sizeof extra); /* a RECEIVED still held */
        } else {
            json = zq_exec_state_received(job->req.id, w->name, job->recv_wall, &len);
        }
        job->pend = 0;
        if (!json)
            ZQ_ERROR("out of memory building a STATE message");
        s_up_send(w, ZQ_CMD_STATE, json, len, extra, NULL);
        free(json);
    }
    return 0;
}

/* End of a turn: held-back states that are due, then every batch not sent yet. */
static double s_up_flush(zq_worker_t *w, double m, int force)
{
    double next = s_pend_flush(w, m, force);
    zq_outbox_flush(w->outbox, s_up_sendfn, w, m);
    /* not confirmed for long (a batch lost with a broken connection): send them again */
    double oldest = zq_outbox_oldest_sent(w->outbox);
    double patience = ZQ_WORKER_HEARTBEAT_MISSES * (w->hb_interval > 0 ? w->hb_interval
                                                                        : w->heartbeat);
    if (w->registered && oldest > 0 && m - oldest > patience) {
        if (m - w->outbox_warned > 60) {
            ZQ_WARN("the broker has not confirmed %zu upstream batch(es) for %.0fs: sending "
                    "them again", zq_outbox_batches(w->outbox), m - oldest);
            w->outbox_warned = m;
        }
        zq_outbox_resend(w->outbox);
        zq_outbox_flush(w->outbox, s_up_sendfn, w, m);
    }
    return next;
}

/* A frontend request; adds "req". Takes ownership of body. Returns the req, 0 if not sent. */
static long s_request(zq_worker_t *w, const char *cmd, cJSON *body)
{
    long req = 0;
    if (body && w->front) {
        w->front_settled = 0; /* a send may take the fd's signal (zq_zpoll.h) */
        req = ++w->seq;
        if (!cJSON_AddNumberToObject(body, "req", (double)req) ||
            zq_msg_send(w->front, NULL, 0, cmd, body, ZMQ_DONTWAIT) != ZQ_OK) {
            ZQ_DEBUG("%s not sent: %s", cmd, zmq_strerror(errno));
            req = 0;
        }
    }
    cJSON_Delete(body);
    return req;
}

static void s_bad_message(zq_worker_t *w, const char *what, const char *err)
{
    w->bad_messages++;
    double m = zq_mono();
    if (m - w->last_bad < 1.0)
        return;
    w->last_bad = m;
    ZQ_WARN("dropping a malformed message on the %s channel: %s", what, err);
}

/* ---------------------------------------------------------------------------------------
 * Task outcomes decided here
 */
static const char *s_name(const s_job_t *job)
{
    return job->req.task ? job->req.task : "<no name>";
}

/* The job's args and kwargs, parsed now if it was decoded from its text (no tree yet: a
 * tree whose args were refused stays as it is); without memory for them they stay NULL,
 * which tracebacks and inspect replies show as none. */
static void s_job_args(s_job_t *job)
{
    if (!job->req.args && !job->body && job->raw &&
        zq_exec_decode_args(&job->req, job->raw, job->rawlen, &job->body) != ZQ_OK)
        ZQ_WARN("out of memory reading the arguments of %s[%s]", s_name(job), job->req.id);
}

/* FAILURE (or REVOKED) for a job, with a traceback; logs like Celery when log_it. */
static void s_finish_error(zq_worker_t *w, s_job_t *job, const char *state, const char *type,
                           const char *message, double runtime, const char *extra, int log_it)
{
    s_job_args(job);
    char *tb = zq_exec_traceback(job->entry, s_name(job), job->req.args, job->req.kwargs, NULL,
                                 type, message);
    if (log_it) {
        char *repr = zq_exec_exc_repr(type, message);
        ZQ_ERROR("Task %s[%s] raised unexpected: %s\n%s", s_name(job), job->req.id,
                 repr ? repr : type, tb ? tb : "");
        free(repr);
    }
    size_t len;
    char *json = zq_exec_state_error(job->req.id, w->name, state, type, message,
                                     strcmp(state, ZQ_STATE_FAILURE) == 0 ? tb : NULL, runtime,
                                     extra, &len);
    free(tb);
    s_send_final(w, job, json, len);
    free(json);
}

/* Not run: REVOKED revoked/expired. Drops the job. */
static void s_discard(zq_worker_t *w, s_job_t *job, int expired)
{
    ZQ_INFO("Discarding revoked task: %s[%s]", s_name(job), job->req.id);
    size_t len;
    char *json = zq_exec_state_error(job->req.id, w->name, ZQ_STATE_REVOKED, "TaskRevokedError",
                                     expired ? "expired" : "revoked", NULL, -1,
                                     expired ? "\"expired\":true,\"terminated\":false"
                                             : "\"expired\":false,\"terminated\":false",
                                     &len);
    s_send_final(w, job, json, len);
    free(json);
    s_job_drop(w, job);
}

/* "signal 11 (SIGSEGV)" / "exitcode 3" */
static void s_describe_status(int status, char *buf, size_t len)
{
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        const char *abbrev = sigabbrev_np(sig);
        snprintf(buf, len, "signal %d (SIG%s)", sig, abbrev ? abbrev : "?");
    } else if (WIFEXITED(status)) {
        snprintf(buf, len, "exitcode %d", WEXITSTATUS(status));
    } else {
        snprintf(buf, len, "status %d", status);
    }
}

/* ---------------------------------------------------------------------------------------
 * Pool events
 */
static void s_release_slot(zq_worker_t *w, s_job_t *job)
{
    if (job->where == J_ACTIVE) {
        if (w->active[job->slot] == job)
            w->active[job->slot] = NULL;
        w->nactive--;
    } else if (job->where == J_POOLED) {
        w->npooled--;
    }
    job->where = 0;
}

static void s_on_started(zq_worker_t *w, s_job_t *job, int slot, long pid, double when)
{
    w->npooled--;
    job->where = J_ACTIVE;
    job->slot = slot;
    w->active[slot] = job;
    w->nactive++;
    double m = zq_mono(), late = when > 0 ? zq_now() - when : 0;
    /* the pool may tell a few ms after the start: limits count from the start itself (a
     * wall-clock step makes `late` absurd: then from now) */
    if (late > 0 && late < 1)
        m -= late;
    job->started = m;
    job->soft_at = job->soft > 0 && w->pool_kind != ZQ_POOL_SOLO ? m + job->soft : 0;
    job->hard_at = job->hard > 0 && zq_pool_can_kill(w->pool) ? m + job->hard : 0;
    job->start_wall = when > 0 ? when : zq_now();
    job->pid = pid;
    s_pend_add(w, job, P_STARTED);
    zq_control_task_started(w->ctl, job->entry);
    if (job->term_pending) {
        /* revoked with terminate while it was being picked up */
        job->killed = KILL_TERMINATE;
        job->term_signal = job->term_pending;
        zq_pool_kill(w->pool, slot, job, job->term_pending);
    }
}

static void s_on_lost(zq_worker_t *w, const zq_pool_event_t *ev)
{
    char why[64];
    s_describe_status(ev->status, why, sizeof why);
    s_job_t *job = ev->ctx;
    if (!job || job->killed != KILL_TERMINATE)
        ZQ_ERROR("Process 'ForkPoolWorker-%d' pid:%ld exited with '%s'", ev->slot + 1, ev->pid,
                 why);
    if (!job)
        return;
    double runtime = job->where == J_ACTIVE ? zq_mono() - job->started : 0;
    s_release_slot(w, job);
    char msg[128];
    if (job->killed == KILL_HARD) {
        zq_sb_t sb;
        zq_sb_init(&sb);
        zq_sb_puts(&sb, "TimeLimitExceeded(");
        zq_sb_pyfloat(&sb, job->hard);
        zq_sb_putc(&sb, ')');
        snprintf(msg, sizeof msg, "%s", sb.buf ? sb.buf : "TimeLimitExceeded()");
        zq_sb_free(&sb);
        s_finish_error(w, job, ZQ_STATE_FAILURE, "TimeLimitExceeded", msg, runtime, NULL, 1);
    } else if (job->killed == KILL_TERMINATE) {
        ZQ_INFO("Task %s[%s] terminated: %s", s_name(job), job->req.id, why);
        char extra[96];
        snprintf(extra, sizeof extra, "\"expired\":false,\"terminated\":true,\"signum\":%d",
                 job->term_signal);
        s_finish_error(w, job, ZQ_STATE_REVOKED, "TaskRevokedError", "terminated", runtime, extra,
                       0);
    } else {
        snprintf(msg, sizeof msg, "Worker exited prematurely: %s.", why);
        s_finish_error(w, job, ZQ_STATE_FAILURE, "WorkerLostError", msg, runtime, NULL, 1);
    }
    zq_control_task_done(w->ctl,
                         job->killed == KILL_TERMINATE ? ZQ_OUT_REVOKED : ZQ_OUT_FAILURE);
    w->processed++;
    s_job_drop(w, job);
}

static void s_on_pool_event(void *arg, const zq_pool_event_t *ev)
{
    zq_worker_t *w = arg;
    s_job_t *job = ev->ctx;
    switch (ev->kind) {
    case ZQ_POOL_EV_STARTED:
        s_on_started(w, job, ev->slot, ev->pid, ev->time);
        break;
    case ZQ_POOL_EV_DONE: {
        double runtime = job->where == J_ACTIVE ? zq_mono() - job->started : 0;
        s_release_slot(w, job);
        if (ev->json)
            s_send_final(w, job, ev->json, ev->len);
        else
            s_finish_error(w, job, ZQ_STATE_FAILURE, "WorkerLostError",
                           "the pool could not run the task (out of memory?)", runtime, NULL, 1);
        zq_control_task_done(w->ctl, ev->json ? ev->state : ZQ_OUT_FAILURE);
        w->processed++;
        s_job_drop(w, job);
        break;
    }
    case ZQ_POOL_EV_EXPIRED:
        s_release_slot(w, job);
        s_discard(w, job, 1);
        break;
    case ZQ_POOL_EV_SUBMIT:
        s_up_send(w, ZQ_CMD_SUBMIT, ev->json, ev->len, NULL, NULL);
        break;
    case ZQ_POOL_EV_LOST:
        s_on_lost(w, ev);
        break;
    case ZQ_POOL_EV_RETURNED:
        /* never started: first in line again */
        s_release_slot(w, job);
        s_ready_push_front(w, job);
        break;
    }
}

/* ---------------------------------------------------------------------------------------
 * Running
 */
/* Our lease (see lease_from): while it runs, the broker cannot have handed the tasks we hold
 * to another worker. Past it, or while we join again, we start none of them. */
static int s_lease_ok(const zq_worker_t *w)
{
    return w->registered &&
           zq_mono() < w->lease_from + ZQ_WORKER_HEARTBEAT_MISSES * w->hb_interval;
}

/* The pool's children and threads check the lease themselves, so that it holds even
 * while this loop is stopped (SIGSTOP, a swapped-out machine). */
static void s_lease_update(zq_worker_t *w)
{
    zq_pool_set_lease(w->pool, w->registered ? w->lease_from + ZQ_WORKER_HEARTBEAT_MISSES *
                                                                   w->hb_interval
                                             : 0);
}

/* The broker did not give id back when we joined again (HELLO "released"): it ended, or
 * went to another worker while we were away. Never start it; one already running goes on,
 * and the broker ignores what it reports for a task that has ended. */
static void s_release_one(zq_worker_t *w, const char *id)
{
    s_job_t *job = s_job_find(w, id);
    if (!job)
        return;
    switch (job->where) {
    case J_READY: s_ready_unlink(w, job); break;
    case J_SCHEDULED: s_heap_remove(w, job); break;
    case J_POOLED:
        if (zq_pool_cancel(w->pool, job) != ZQ_OK)
            return; /* a slot is starting it: it runs, as a running one does */
        s_release_slot(w, job);
        break;
    default: return;
    }
    ZQ_INFO("Task %s[%s] ended or went to another worker while this one was away: not "
            "running it", s_name(job), id);
    s_job_drop(w, job);
}

/* Feed the pool from the ready FIFO while it has room and our lease runs. */
static void s_dispatch_ready(zq_worker_t *w)
{
    if (w->draining)
        return;
    while (w->ready_head && zq_pool_room(w->pool) > 0 && s_lease_ok(w)) {
        s_job_t *job = w->ready_head;
        s_ready_unlink(w, job);
        /* revoked or expired while it waited: never starts */
        if (s_revoked_has(w, job->req.id)) {
            s_discard(w, job, 0);
            continue;
        }
        if (job->req.expires_t > 0 && job->req.expires_t <= zq_now()) {
            s_discard(w, job, 1);
            continue;
        }
        job->where = J_POOLED;
        w->npooled++;
        zq_pool_job_t pj = {job,       job->raw,  job->rawlen,         job->body,
                            job->hard, job->soft, job->req.expires_t, job->req.eta_t};
        s_inline_running = w->pool_kind == ZQ_POOL_SOLO;
        int rc = zq_pool_submit(w->pool, &pj);
        s_inline_running = 0;
        /* from here on `job` may be gone (solo reports DONE inside submit) */
        if (rc != ZQ_OK) {
            w->npooled--;
            s_ready_push_front(w, job);
            if (rc != ZQ_ESTATE)
                ZQ_ERROR("pool: cannot queue %s[%s]: %s", s_name(job), job->req.id,
                         rc == ZQ_ENOMEM ? "out of memory" : "refused");
            break;
        }
    }
    zq_pool_flush(w->pool);
}

/* Move due ETA jobs to the front of the ready FIFO (they are late already), behind the
 * due ones still waiting there. Returns the next eta (epoch seconds) or 0. */
static double s_promote_eta(zq_worker_t *w, double now)
{
    while (w->nheap && w->heap[0]->req.eta_t <= now) {
        s_job_t *job = w->heap[0];
        s_heap_remove(w, job);
        s_ready_push(w, job, w->ready_due_tail);
        w->ready_due_tail = job;
    }
    return w->nheap ? w->heap[0]->req.eta_t : 0;
}

/* Arm the ETA timerfd for eta (0: disarm), unless it already is. */
static void s_eta_arm(zq_worker_t *w, double eta)
{
    if (w->eta_fd < 0 || eta == w->eta_armed)
        return;
    struct itimerspec its = {{0, 0}, {0, 0}};
    if (eta > 0) {
        its.it_value = zq_time_timespec(eta);
        if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
            its.it_value.tv_nsec = 1; /* all zero would disarm it */
    }
    if (timerfd_settime(w->eta_fd, TFD_TIMER_ABSTIME, &its, NULL) != 0) {
        /* fall back to poll's timeout for good */
        ZQ_WARN("timerfd: %s; ETA tasks start up to ~2 ms late", strerror(errno));
        close(w->eta_fd);
        w->eta_fd = -1;
        w->eta_armed = 0;
        return;
    }
    w->eta_armed = eta;
}

/* Enforce soft and hard limits; returns the next deadline (zq_mono) or 0. */
static double s_check_limits(zq_worker_t *w, double m)
{
    double next = 0;
    for (int i = 0; i < w->nslots; i++) {
        s_job_t *job = w->active[i];
        if (!job)
            continue;
        if (job->soft_at > 0 && !job->soft_sent) {
            if (m >= job->soft_at) {
                ZQ_WARN("Soft time limit (%gs) exceeded for %s[%s]", job->soft, s_name(job),
                        job->req.id);
                job->soft_sent = 1;
                zq_pool_soft_limit(w->pool, i, job);
            } else if (!next || job->soft_at < next) {
                next = job->soft_at;
            }
        }
        if (job->hard_at > 0 && job->killed == KILL_NONE) {
            if (m >= job->hard_at) {
                ZQ_ERROR("Hard time limit (%gs) exceeded for %s[%s]", job->hard, s_name(job),
                         job->req.id);
                job->killed = KILL_HARD;
                zq_pool_kill(w->pool, i, job, SIGKILL);
            } else if (!next || job->hard_at < next) {
                next = job->hard_at;
            }
        }
    }
    return next;
}

/* ---------------------------------------------------------------------------------------
 * Incoming: TASK, REVOKED
 */
static void s_resolve_limits(zq_worker_t *w, s_job_t *job)
{
    /* the message wins, then the task's own option, then the worker's default (Celery) */
    job->hard = job->req.hard > 0                ? job->req.hard
                : job->entry->time_limit > 0     ? job->entry->time_limit
                                                 : w->time_limit;
    job->soft = job->req.soft > 0                ? job->req.soft
                : job->entry->soft_time_limit > 0 ? job->entry->soft_time_limit
                                                  : w->soft_time_limit;
    job->req.hard = job->hard;
    job->req.soft = job->soft;
}

/* A TASK body (owned), or, when body is NULL, its text alone: a prefork worker reads what it
 * needs from the text (zq_exec_decode_text; the child parses it to run it), and parses it
 * only when that reader declines. */
static void s_on_task(zq_worker_t *w, cJSON *body, const char *raw, size_t rawlen)
{
    s_job_t *job = calloc(1, sizeof *job);
    if (!job) {
        ZQ_ERROR("out of memory: a TASK message was dropped");
        cJSON_Delete(body);
        return;
    }
    char err[256];
    int rc = ZQ_EXEC_DECLINED;
    if (!body) {
        /* the text is kept for the child (and for the arguments, when asked for) */
        if ((job->raw = malloc(rawlen ? rawlen : 1))) {
            memcpy(job->raw, raw, rawlen);
            job->rawlen = rawlen;
            rc = zq_exec_decode_text(&job->req, raw, rawlen, &job->strs);
        }
        const char *end = NULL;
        if (rc == ZQ_EXEC_DECLINED && (!cJSON_IsObject(body = cJSON_ParseWithLengthOpts(
                                                            raw, rawlen, &end, 0)) ||
                                       end != raw + rawlen)) {
            cJSON_Delete(body);
            s_bad_message(w, "dispatch", "TASKS: an element is not a JSON object");
            s_job_free(job);
            return;
        }
        if (rc == ZQ_ENOMEM) {
            ZQ_ERROR("out of memory: a TASK message was dropped");
            s_job_free(job);
            return;
        }
    }
    job->body = body;
    if (rc == ZQ_EXEC_DECLINED)
        rc = zq_exec_decode(&job->req, body, err, sizeof err);
    if (rc == ZQ_EPROTO) {
        s_bad_message(w, "dispatch", err);
        s_job_free(job);
        return;
    }
    if (s_job_find(w, job->req.id)) {
        ZQ_DEBUG("Task %s[%s] is already held: duplicate delivery ignored", s_name(job),
                 job->req.id);
        s_job_free(job);
        return;
    }
    job->recv_wall = zq_now();
    job->pend = P_RECEIVED; /* told with the next state, or after ZQ_WORKER_STATE_HOLD */
    ZQ_INFO("Task %s[%s] received", s_name(job), job->req.id);
    if (rc != ZQ_OK) {
        ZQ_ERROR("Task %s[%s] cannot run: %s", s_name(job), job->req.id, err);
        s_finish_error(w, job, ZQ_STATE_FAILURE, "InvalidArguments", err, -1, NULL, 0);
        s_job_free(job);
        return;
    }
    job->entry = zq_loader_find(w->loader, job->req.task);
    if (!job->entry) {
        int n = rawlen > QUOTE_MAX ? QUOTE_MAX : (int)rawlen;
        ZQ_ERROR("Received unregistered task of type '%s'.\n"
                 "The message has been ignored and discarded.\n\n"
                 "Did you remember to load the plugin that declares this task "
                 "(zq-worker --plugins DIR)?\n\n"
                 "The full contents of the message body was:\n%.*s%s (%zub)",
                 job->req.task, n, raw, (size_t)n < rawlen ? "..." : "", rawlen);
        char msg[300];
        snprintf(msg, sizeof msg, "'%s'", job->req.task);
        s_finish_error(w, job, ZQ_STATE_FAILURE, "NotRegistered", msg, -1, NULL, 0);
        s_job_free(job);
        return;
    }
    job->req.hostname = w->name;
    s_resolve_limits(w, job);
    if (s_revoked_has(w, job->req.id)) {
        s_discard(w, job, 0);
        return;
    }
    double now = zq_now();
    if (job->req.expires_t > 0 && job->req.expires_t <= now) {
        s_discard(w, job, 1);
        return;
    }
    if (w->pool_kind == ZQ_POOL_PREFORK && !job->raw) {
        /* the child gets the bytes as they came: no print round trip */
        if (!(job->raw = malloc(rawlen ? rawlen : 1))) {
            s_finish_error(w, job, ZQ_STATE_FAILURE, "MemoryError", "out of memory", -1, NULL, 1);
            s_job_free(job);
            return;
        }
        memcpy(job->raw, raw, rawlen);
        job->rawlen = rawlen;
    }
    if (s_job_insert(w, job) != ZQ_OK ||
        (job->req.eta_t > now && s_heap_push(w, job) != ZQ_OK)) {
        s_finish_error(w, job, ZQ_STATE_FAILURE, "MemoryError", "out of memory", -1, NULL, 1);
        s_job_drop(w, job);
        return;
    }
    s_pend_add(w, job, P_RECEIVED);
    if (job->req.eta_t <= now)
        s_ready_push(w, job, w->ready_tail);
}

static int s_parse_signal(const cJSON *v)
{
    static const struct {
        const char *name;
        int sig;
    } map[] = {{"TERM", SIGTERM}, {"KILL", SIGKILL}, {"INT", SIGINT},   {"HUP", SIGHUP},
               {"QUIT", SIGQUIT}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"ABRT", SIGABRT}};
    if (cJSON_IsNumber(v) && v->valuedouble >= 1 && v->valuedouble < 65)
        return (int)v->valuedouble;
    if (!cJSON_IsString(v))
        return SIGTERM;
    const char *s = v->valuestring;
    if (!strncasecmp(s, "SIG", 3))
        s += 3;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcasecmp(s, map[i].name))
            return map[i].sig;
    char *end;
    long n = strtol(s, &end, 10);
    return (!*end && n >= 1 && n < 65) ? (int)n : SIGTERM;
}

/* Revoke one id: remember it, and end a held job that has not started. */
static void s_revoke_one(zq_worker_t *w, const char *id, int terminate, int sig)
{
    s_revoked_add(w, id);
    s_job_t *job = s_job_find(w, id);
    if (!job)
        return;
    switch (job->where) {
    case J_READY:
        s_ready_unlink(w, job);
        s_discard(w, job, 0);
        break;
    case J_SCHEDULED:
        s_heap_remove(w, job);
        s_discard(w, job, 0);
        break;
    case J_POOLED:
        if (zq_pool_cancel(w->pool, job) == ZQ_OK) {
            s_release_slot(w, job);
            s_discard(w, job, 0);
        } else if (terminate && zq_pool_can_kill(w->pool)) {
            job->term_pending = sig; /* a slot is picking it up right now */
        }
        break;
    case J_ACTIVE:
        if (!terminate)
            break; /* Celery: revoke without terminate does not stop a running task */
        if (!zq_pool_can_kill(w->pool)) {
            ZQ_WARN("cannot terminate %s[%s]: the %s pool cannot interrupt a running task",
                    s_name(job), id, zq_pool_kind_name(w->pool_kind));
            break;
        }
        if (job->killed == KILL_NONE) {
            const char *abbrev = sigabbrev_np(sig);
            ZQ_INFO("Terminating %s (SIG%s)", id, abbrev ? abbrev : "?");
            job->killed = KILL_TERMINATE;
            job->term_signal = sig;
            zq_pool_kill(w->pool, job->slot, job, sig);
        }
        break;
    }
}

static void s_on_revoked(zq_worker_t *w, const cJSON *body)
{
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(body, "ids");
    if (!cJSON_IsArray(ids)) {
        s_bad_message(w, "dispatch", "REVOKED without an ids array");
        return;
    }
    int terminate = zq_json_bool(body, "terminate", 0);
    int sig = s_parse_signal(cJSON_GetObjectItemCaseSensitive(body, "signal"));
    zq_sb_t list;
    zq_sb_init(&list);
    const cJSON *id;
    cJSON_ArrayForEach(id, ids)
    {
        if (!cJSON_IsString(id) || !zq_valid_token(id->valuestring))
            continue;
        if (list.len)
            zq_sb_puts(&list, ", ");
        zq_sb_puts(&list, id->valuestring);
    }
    if (list.len)
        ZQ_INFO("Tasks flagged as revoked: %s", list.buf);
    zq_sb_free(&list);
    cJSON_ArrayForEach(id, ids)
    {
        if (cJSON_IsString(id) && zq_valid_token(id->valuestring))
            s_revoke_one(w, id->valuestring, terminate, sig);
    }
}

/* Receive one message's frames without decoding; ZQ_ETIMEOUT when none is waiting. */
static int s_recv_frames(void *sock, zmq_msg_t *parts, size_t *n, size_t *total)
{
    *n = 0;
    *total = 0;
    int more = 1;
    while (more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, sock, *total == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            int e = errno;
            zmq_msg_close(&part);
            for (size_t k = 0; k < *n; k++)
                zmq_msg_close(&parts[k]);
            *n = 0;
            errno = e;
            return e == EAGAIN ? ZQ_ETIMEOUT : ZQ_EIO;
        }
        more = zmq_msg_more(&part);
        (*total)++;
        if (*n < MAX_FRAMES)
            parts[(*n)++] = part;
        else
            zmq_msg_close(&part);
    }
    return ZQ_OK;
}

/* ACK {"seqs": [...]}: the broker committed those upstream batches. */
static void s_on_ack(zq_worker_t *w, const cJSON *body)
{
    const cJSON *seqs = cJSON_GetObjectItemCaseSensitive(body, "seqs"), *e;
    if (!cJSON_IsArray(seqs)) {
        s_bad_message(w, "dispatch", "ACK: seqs: must be an array of batch numbers");
        return;
    }
    cJSON_ArrayForEach(e, seqs)
    {
        if (cJSON_IsNumber(e) && e->valuedouble >= 1 && e->valuedouble < 9007199254740992.0)
            zq_outbox_ack(w->outbox, (uint64_t)e->valuedouble);
    }
}

/* TASKS: each element of the array handled exactly as the body of a TASK (raw: its own
 * text); a malformed element is dropped and counted, the others are taken. */
static void s_on_tasks(zq_worker_t *w, const char *text, size_t len)
{
    zq_jarray_t it;
    const char *elem;
    size_t n;
    int rc = zq_jarray_begin(&it, text, len);
    while (rc == ZQ_OK && (rc = zq_jarray_next(&it, &elem, &n)) == 1) {
        const char *end = NULL;
        cJSON *body = NULL;
        if (w->pool_kind == ZQ_POOL_PREFORK) {
            s_on_task(w, NULL, elem, n); /* read from its text */
        } else if (!cJSON_IsObject(body = cJSON_ParseWithLengthOpts(elem, n, &end, 0)) ||
                   end != elem + n) {
            cJSON_Delete(body);
            s_bad_message(w, "dispatch", "TASKS: an element is not a JSON object");
        } else {
            s_on_task(w, body, elem, n);
        }
        rc = ZQ_OK;
    }
    if (rc != 0)
        s_bad_message(w, "dispatch", "TASKS: body is not a JSON array of task messages");
}

/* One message of the dispatch channel (n frames kept of total received). acks_only:
 * leaving, the pool is gone: a TASK is not taken (the broker requeues what we held when we
 * say BYE). */
static void s_on_dispatch(zq_worker_t *w, const void *const *frames, const size_t *sizes,
                          size_t n, size_t total, int acks_only)
{
    zq_msg_t msg;
    char err[256];
    if (total != n) {
        s_bad_message(w, "dispatch", "too many frames");
        return;
    }
    /* TASKS has an array body, which zq_msg_decode refuses: its elements are decoded one by
     * one instead */
    if (n == 3 && sizes[1] == strlen(ZQ_CMD_TASK_BATCH) &&
        !memcmp(frames[1], ZQ_CMD_TASK_BATCH, sizes[1])) {
        if (sizes[0] != strlen(ZQ_PROTO_VERSION) ||
            memcmp(frames[0], ZQ_PROTO_VERSION, sizes[0]) != 0)
            s_bad_message(w, "dispatch", "unsupported protocol version (want " ZQ_PROTO_VERSION ")");
        else if (acks_only)
            ZQ_DEBUG("leaving: %s not taken", ZQ_CMD_TASK_BATCH);
        else
            s_on_tasks(w, frames[2], sizes[2]);
        return;
    }
    if (zq_msg_decode(frames, sizes, n, 0, &msg, err, sizeof err) != ZQ_OK) {
        s_bad_message(w, "dispatch", err);
    } else if (acks_only && strcmp(msg.cmd, ZQ_CMD_ACK) != 0) {
        ZQ_DEBUG("leaving: %s not taken", msg.cmd);
    } else if (strcmp(msg.cmd, ZQ_CMD_TASK) == 0) {
        cJSON *body = msg.body;
        msg.body = NULL;
        s_on_task(w, body, frames[2], sizes[2]);
    } else if (strcmp(msg.cmd, ZQ_CMD_REVOKED) == 0) {
        s_on_revoked(w, msg.body);
    } else if (strcmp(msg.cmd, ZQ_CMD_ACK) == 0) {
        s_on_ack(w, msg.body);
    } else {
        snprintf(err, sizeof err, "unexpected command %s", msg.cmd);
        s_bad_message(w, "dispatch", err);
    }
    zq_msg_clear(&msg);
}

void zq_worker_feed_dispatch(zq_worker_t *w, const void *const *frames, const size_t *sizes,
                             size_t nframes)
{
    s_on_dispatch(w, frames, sizes, nframes > MAX_FRAMES ? MAX_FRAMES : nframes, nframes, 0);
}

int zq_worker_held(const zq_worker_t *w, const char *id, const char **raw, size_t *rawlen)
{
    const s_job_t *j = s_job_find(w, id);
    if (raw)
        *raw = j ? j->raw : NULL;
    if (rawlen)
        *rawlen = j ? j->rawlen : 0;
    return j != NULL;
}

unsigned long zq_worker_bad_messages(const zq_worker_t *w)
{
    return w->bad_messages;
}

static void s_read_dispatch(zq_worker_t *w, int acks_only)
{
    for (int i = 0; i < BATCH && w->dispatch; i++) {
        zmq_msg_t parts[MAX_FRAMES];
        size_t n, total;
        int rc = s_recv_frames(w->dispatch, parts, &n, &total);
        w->disp_settled = rc == ZQ_ETIMEOUT; /* drained: its fd tells of what comes */
        if (rc != ZQ_OK)
            return;
        const void *frames[MAX_FRAMES];
        size_t sizes[MAX_FRAMES];
        for (size_t k = 0; k < n; k++) {
            frames[k] = zmq_msg_data(&parts[k]);
            sizes[k] = zmq_msg_size(&parts[k]);
        }
        s_on_dispatch(w, frames, sizes, n, total, acks_only);
        for (size_t k = 0; k < n; k++)
            zmq_msg_close(&parts[k]);
    }
}

/* ---------------------------------------------------------------------------------------
 * Session: HELLO, HEARTBEAT, BYE
 */
static void s_close_socket(void **sock)
{
    if (*sock)
        zmq_close(*sock);
    *sock = NULL;
}

static int s_front_open(zq_worker_t *w)
{
    s_close_socket(&w->front);
    w->front_settled = 0;
    s_close_socket(&w->front_mon);
    w->front = zmq_socket(w->ctx, ZMQ_DEALER);
    if (!w->front) {
        ZQ_ERROR("cannot create a socket: %s", zmq_strerror(errno));
        return ZQ_EIO;
    }
    zq_socket_defaults(w->front);
    /* the monitor only tells why a HELLO goes unanswered (a refused key): best effort */
    if (zq_curve_client_apply(w->front, &w->curve, NULL) != ZQ_OK ||
        zq_curve_monitor(w->ctx, w->front, &w->front_mon) != ZQ_OK)
        ZQ_DEBUG("no handshake monitor on the broker connection");
    if (zmq_connect(w->front, w->broker_url) != 0) {
        ZQ_ERROR("cannot connect to the broker at %s: %s", w->broker_url, zmq_strerror(errno));
        s_close_socket(&w->front);
        w->front_settled = 0;
        return ZQ_EIO;
    }
    return ZQ_OK;
}

static void s_hold_id(void *arg, const char *id)
{
    cJSON_AddItemToArray(arg, cJSON_CreateString(id));
}

static cJSON *s_hello_body(zq_worker_t *w)
{
    char ts[40];
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "name", w->name);
    cJSON_AddStringToObject(o, "hostname", zq_hostname());
    cJSON_AddNumberToObject(o, "pid", (double)getpid());
    cJSON *q = cJSON_AddArrayToObject(o, "queues");
    for (size_t i = 0; q && i < w->nqueues; i++)
        cJSON_AddItemToArray(q, cJSON_CreateString(w->queues[i]));
    cJSON_AddNumberToObject(o, "concurrency", w->concurrency);
    cJSON_AddNumberToObject(o, "prefetch", w->prefetch);
    cJSON_AddBoolToObject(o, "prefetch_adaptive", w->prefetch_adaptive);
    cJSON_AddBoolToObject(o, "batch_tasks", 1); /* TASKS welcome (§8) */
    cJSON_AddStringToObject(o, "pool", zq_pool_kind_name(w->pool_kind));
    cJSON_AddStringToObject(o, "control", zq_control_endpoint(w->ctl));
    if (w->curve.enabled) /* the control socket's CURVE key, for zq-ctl (§13) */
        cJSON_AddStringToObject(o, "curve_key", w->curve.self.public_key);
    cJSON *t = cJSON_AddArrayToObject(o, "tasks");
    for (size_t i = 0; t && i < zq_loader_task_count(w->loader); i++)
        cJSON_AddItemToArray(t, cJSON_CreateString(zq_loader_task(w->loader, i)->name));
    cJSON_AddStringToObject(o, "sw_ver", PACKAGE_VERSION);
    cJSON_AddStringToObject(o, "started", zq_time_iso(w->started, ts, sizeof ts));
    cJSON_AddNumberToObject(o, "heartbeat", w->heartbeat);
    cJSON *h = cJSON_AddArrayToObject(o, "holding");
    for (size_t b = 0; h && b < w->table_cap; b++)
        for (s_job_t *j = w->table[b]; j; j = j->hnext)
            cJSON_AddItemToArray(h, cJSON_CreateString(j->req.id));
    /* ended here, but the broker has not confirmed it stored how */
    zq_outbox_each_id(w->outbox, s_hold_id, h);
    return o;
}

static void s_send_hello(zq_worker_t *w)
{
    w->hello_req = s_request(w, ZQ_CMD_HELLO, s_hello_body(w));
    w->hello_at = zq_mono();
}

/* Join again (the broker restarted, forgot us, or stopped answering). The dispatch PULL
 * stays until the reply says whether the session survived (see s_on_hello_reply). */
static void s_reregister(zq_worker_t *w)
{
    w->registered = 0;
    s_lease_update(w); /* start nothing until the HELLO reply says what is still ours */
    if (s_front_open(w) == ZQ_OK)
        s_send_hello(w);
}

static int s_connect_channel(zq_worker_t *w, void **sock, int type, const char *announced,
                             char *current, size_t curlen)
{
    char ep[512];
    if (!announced || zq_endpoint_resolve(announced, w->broker_url, ep, sizeof ep) != ZQ_OK) {
        ZQ_ERROR("the broker announced an unusable endpoint: %s", announced ? announced : "none");
        return ZQ_EPROTO;
    }
    if (*sock && current && strcmp(current, ep) == 0)
        return ZQ_OK;
    if (!*sock) {
        *sock = zmq_socket(type == ZMQ_PUSH ? w->up_ctx : w->ctx, type);
        if (!*sock)
            return ZQ_EIO;
        zq_socket_defaults(*sock);
        if (zq_curve_client_apply(*sock, &w->curve, NULL) != ZQ_OK)
            return ZQ_EINVAL;
        if (type == ZMQ_PUSH) {
            int linger = ZQ_WORKER_UPSTREAM_LINGER, hwm = ZQ_WORKER_UPSTREAM_HWM;
            zmq_setsockopt(*sock, ZMQ_LINGER, &linger, sizeof linger);
            zmq_setsockopt(*sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
        }
    } else if (current && *current) {
        zmq_disconnect(*sock, current);
    }
    if (zmq_connect(*sock, ep) != 0) {
        ZQ_ERROR("cannot connect to %s: %s", ep, zmq_strerror(errno));
        return ZQ_EIO;
    }
    if (current)
        snprintf(current, curlen, "%s", ep);
    return ZQ_OK;
}

static void s_on_hello_reply(zq_worker_t *w, const cJSON *body)
{
    w->hello_req = 0;
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(body, "error");
    if (err) {
        const char *code = zq_json_str(err, "code", "?");
        if (strcmp(code, ZQ_WERR_DUPLICATE) == 0)
            ZQ_ERROR("a worker named %s is already connected to %s; give this one another name "
                     "with -n", w->name, w->broker_url);
        else
            ZQ_ERROR("the broker at %s refused this worker: %s: %s", w->broker_url, code,
                     zq_json_str(err, "message", ""));
        w->exit_code = 1;
        w->stop = 1;
        return;
    }
    /* Same broker, same channel: what waits in our PULL was sent to us and the broker
     * counts it as ours, so keep it. A new broker (or a new channel after it declared us
     * dead): the old queue is stale (the broker requeues what `holding` did not list). */
    const char *broker_id = zq_json_str(body, "broker_id", "");
    const char *disp = zq_json_str(body, "dispatch", NULL);
    char ep[512];
    if (!disp || zq_endpoint_resolve(disp, w->broker_url, ep, sizeof ep) != ZQ_OK)
        ep[0] = '\0';
    if (w->dispatch && (w->draining || strcmp(broker_id, w->broker_id) != 0 ||
                        strcmp(ep, w->dispatch_ep) != 0)) {
        s_close_socket(&w->dispatch);
        w->disp_settled = 0;
        w->dispatch_ep[0] = '\0';
    }
    /* a broker that restarted may have lost what it had not committed: send again every
     * batch it has not confirmed (it applies them idempotently) */
    if (strcmp(broker_id, w->broker_id) != 0)
        zq_outbox_resend(w->outbox);
    snprintf(w->broker_id, sizeof w->broker_id, "%s", broker_id);
    /* while draining, no dispatch channel: we take no new tasks */
    if (s_connect_channel(w, &w->upstream, ZMQ_PUSH, zq_json_str(body, "upstream", NULL),
                          w->upstream_ep, sizeof w->upstream_ep) != ZQ_OK ||
        (!w->draining && !w->dispatch &&
         s_connect_channel(w, &w->dispatch, ZMQ_PULL, disp, w->dispatch_ep,
                           sizeof w->dispatch_ep) != ZQ_OK)) {
        /* a broker we cannot follow: try again later rather than spin */
        s_close_socket(&w->dispatch);
        w->disp_settled = 0;
        w->dispatch_ep[0] = '\0';
        return;
    }
    double hb = zq_json_num(body, "heartbeat", 0);
    w->hb_interval = hb > 0 && hb < 3600 ? hb : w->heartbeat;
    double m = zq_mono();
    w->registered = 1;
    w->hb_next = m + w->hb_interval;
    w->heard_at = m;
    w->lease_from = w->hello_at;
    /* what we listed in "holding" and the broker did not give back to us must not start;
     * only then may the rest start again */
    const cJSON *released = cJSON_GetObjectItemCaseSensitive(body, "released");
    const cJSON *rid;
    cJSON_ArrayForEach(rid, released)
    {
        if (cJSON_IsString(rid))
            s_release_one(w, rid->valuestring);
    }
    s_lease_update(w);
    w->waiting_logged = 0;
    w->auth_logged = 0;
    const cJSON *revoked = cJSON_GetObjectItemCaseSensitive(body, "revoked");
    const cJSON *id;
    cJSON_ArrayForEach(id, revoked)
    {
        if (cJSON_IsString(id) && zq_valid_token(id->valuestring))
            s_revoke_one(w, id->valuestring, 0, SIGTERM);
    }
    if (!w->ever_registered) {
        ZQ_INFO("Connected to %s", w->broker_url);
        ZQ_INFO("%s ready.", w->name);
    } else {
        ZQ_INFO("Connected to %s again (broker %s); holding %zu task(s)", w->broker_url,
                zq_json_str(body, "broker_id", "?"), w->njobs);
    }
    w->ever_registered = 1;
}

static void s_read_front(zq_worker_t *w)
{
    for (int i = 0; i < BATCH && w->front; i++) {
        zq_msg_t msg;
        char err[256];
        int rc = zq_msg_recv(w->front, 0, &msg, ZMQ_DONTWAIT, err, sizeof err);
        w->front_settled = rc == ZQ_ETIMEOUT;
        if (rc == ZQ_ETIMEOUT || rc == ZQ_EIO)
            return;
        if (rc != ZQ_OK) {
            s_bad_message(w, "frontend", err);
            continue;
        }
        if (strcmp(msg.cmd, ZQ_CMD_REPLY) != 0) {
            s_bad_message(w, "frontend", "not a REPLY");
            zq_msg_clear(&msg);
            continue;
        }
        /* our reqs are small positive integers; any other number (1e300: converting it
         * would be undefined behaviour) matches none */
        double rv = zq_json_num(msg.body, "req", -1);
        long req = rv >= 0 && rv < 9007199254740992.0 ? (long)rv : -1;
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(msg.body, "error");
        w->heard_at = zq_mono();
        int hb = (int)(req & 7);
        /* an answered HEARTBEAT extends the lease; EUNKNOWNWORKER does not */
        if (!e && req > 0 && w->hb_sent[hb].req == req && w->hb_sent[hb].at > w->lease_from) {
            w->lease_from = w->hb_sent[hb].at;
            s_lease_update(w);
        }
        if (w->hello_req && req == w->hello_req) {
            s_on_hello_reply(w, msg.body);
        } else if (w->bye_req && req == w->bye_req) {
            w->bye_answered = 1;
        } else if (e) {
            const char *code = zq_json_str(e, "code", "?");
            if (strcmp(code, ZQ_WERR_UNKNOWN_WORKER) == 0 && w->registered) {
                ZQ_WARN("the broker at %s does not know this worker (it restarted?): joining "
                        "again", w->broker_url);
                s_reregister(w);
            } else if (strcmp(code, ZQ_WERR_UNKNOWN_WORKER) != 0) {
                ZQ_WARN("the broker answered request %ld with %s: %s", req, code,
                        zq_json_str(e, "message", ""));
            }
        }
        zq_msg_clear(&msg);
    }
}

static void s_session_tick(zq_worker_t *w, double m)
{
    if (!w->registered) {
        if (!w->front)
            return;
        if (!w->hello_req || m - w->hello_at >= ZQ_WORKER_HELLO_RETRY) {
            if (w->hello_req && !w->waiting_logged) {
                ZQ_WARN("waiting for the broker at %s to answer (retrying every %gs)",
                        w->broker_url, ZQ_WORKER_HELLO_RETRY);
                w->waiting_logged = 1;
            }
            char why[600], peer[600];
            snprintf(peer, sizeof peer, "the broker at %s", w->broker_url);
            if (w->hello_req && zq_curve_monitor_check(w->front_mon, w->curve.enabled, peer, why,
                                                       sizeof why) &&
                !w->auth_logged) {
                ZQ_ERROR("cannot join: %s", why);
                w->auth_logged = 1;
            }
            /* lazy pirate: a fresh socket drops the unanswered HELLO */
            if (w->hello_req && s_front_open(w) != ZQ_OK)
                return;
            s_send_hello(w);
        }
        return;
    }
    if (m - w->heard_at > ZQ_WORKER_HEARTBEAT_MISSES * w->hb_interval) {
        ZQ_WARN("no answer from the broker at %s for %.0fs: connecting again", w->broker_url,
                m - w->heard_at);
        s_reregister(w);
        return;
    }
    if (m >= w->hb_next) {
        cJSON *hb = cJSON_CreateObject();
        if (hb) {
            cJSON_AddStringToObject(hb, "name", w->name);
            cJSON_AddNumberToObject(hb, "active", w->nactive);
            cJSON_AddNumberToObject(hb, "processed", (double)w->processed);
        }
        long req = s_request(w, ZQ_CMD_HEARTBEAT, hb);
        w->hb_sent[req & 7].req = req;
        w->hb_sent[req & 7].at = m;
        w->hb_next = m + w->hb_interval;
    }
}

/* BYE, waiting a little for the answer so the broker requeues our leftovers at once. */
static void s_bye(zq_worker_t *w)
{
    if (!w->front || !w->registered)
        return;
    cJSON *b = cJSON_CreateObject();
    if (b)
        cJSON_AddStringToObject(b, "name", w->name);
    /* batches not confirmed yet travel on the upstream connection and may reach the broker
     * after this BYE: it takes them first (docs/protocol.md §7 BYE) */
    if (b && w->outbox && zq_outbox_batches(w->outbox) > 0)
        cJSON_AddNumberToObject(b, "last_seq", (double)zq_outbox_last_seq(w->outbox));
    w->bye_req = s_request(w, ZQ_CMD_BYE, b);
    double deadline = zq_mono() + ZQ_WORKER_BYE_WAIT;
    while (w->bye_req && !w->bye_answered) {
        double left = deadline - zq_mono();
        if (left <= 0)
            break;
        zmq_pollitem_t it = {w->front, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, (long)(left * 1000) + 1) > 0)
            s_read_front(w);
    }
}

/* ---------------------------------------------------------------------------------------
 * Shutdown
 */
/* The jobs in place `where` (J_POOLED, J_ACTIVE); caller frees the array. */
static s_job_t **s_collect(zq_worker_t *w, int where, size_t *n)
{
    *n = 0;
    s_job_t **v = malloc((w->njobs ? w->njobs : 1) * sizeof *v);
    if (!v)
        return NULL;
    for (size_t b = 0; b < w->table_cap; b++)
        for (s_job_t *j = w->table[b]; j; j = j->hnext)
            if (j->where == where)
                v[(*n)++] = j;
    return v;
}

static void s_send_return(zq_worker_t *w, zq_sb_t *ids, size_t n)
{
    if (!n)
        return;
    zq_sb_t sb;
    zq_sb_init(&sb);
    zq_sb_puts(&sb, "{\"worker\":");
    zq_sb_json_str(&sb, w->name);
    zq_sb_printf(&sb, ",\"ids\":[%s]}", ids->buf ? ids->buf : "");
    size_t len;
    char *json = zq_sb_steal(&sb, &len);
    s_up_send(w, ZQ_CMD_RETURN, json, len, NULL, NULL);
    free(json);
}

static void s_add_id(zq_sb_t *ids, size_t *n, const s_job_t *job)
{
    zq_sb_puts(ids, (*n)++ ? "," : "");
    zq_sb_json_str(ids, job->req.id);
}

/* RETURN every held job that has not started (ready, scheduled, and those the pool gives
 * back), and forget them. Pooled ones a slot is picking up right now will run. */
static void s_return_unstarted(zq_worker_t *w)
{
    zq_sb_t ids;
    zq_sb_init(&ids);
    size_t n = 0;
    while (w->ready_head) {
        s_job_t *job = w->ready_head;
        s_ready_unlink(w, job);
        s_add_id(&ids, &n, job);
        s_job_drop(w, job);
    }
    while (w->nheap) {
        s_job_t *job = w->heap[0];
        s_heap_remove(w, job);
        s_add_id(&ids, &n, job);
        s_job_drop(w, job);
    }
    size_t np;
    s_job_t **pooled = s_collect(w, J_POOLED, &np);
    for (size_t i = 0; pooled && i < np; i++)
        if (zq_pool_cancel(w->pool, pooled[i]) == ZQ_OK) {
            s_release_slot(w, pooled[i]);
            s_add_id(&ids, &n, pooled[i]);
            s_job_drop(w, pooled[i]);
        }
    free(pooled);
    if (n)
        ZQ_INFO("Returning %zu unstarted task(s) to the broker", n);
    s_send_return(w, &ids, n);
    zq_sb_free(&ids);
}

static void s_warm_shutdown(zq_worker_t *w)
{
    printf("\nworker: Warm shutdown (MainProcess)\n");
    fflush(stdout);
    w->draining = 1;
    s_close_socket(&w->dispatch); /* take no more tasks */
    w->disp_settled = 0;
    w->dispatch_ep[0] = '\0';
    s_return_unstarted(w);
    if (w->nactive + w->npooled)
        ZQ_INFO("Waiting for %d running task(s) to finish (send the signal again for a cold "
                "shutdown)", w->nactive + w->npooled);
}

static void s_cold_shutdown(zq_worker_t *w)
{
    printf("\nworker: Cold shutdown (MainProcess)\n");
    fflush(stdout);
    if (!w->draining) {
        w->draining = 1;
        s_close_socket(&w->dispatch);
        w->disp_settled = 0;
        w->dispatch_ep[0] = '\0';
        s_return_unstarted(w);
    }
    int prefork = w->pool_kind == ZQ_POOL_PREFORK;
    if ((w->nactive || w->npooled) && !prefork)
        w->threads_abandoned = 1;
    zq_pool_destroy(&w->pool, 1); /* kills the children */
    zq_sb_t ids;
    zq_sb_init(&ids);
    size_t nret = 0;
    /* running, or being picked up (a slot claimed it): lost with the pool */
    static const int places[] = {J_ACTIVE, J_POOLED};
    for (size_t k = 0; k < 2; k++) {
        size_t n;
        s_job_t **lost = s_collect(w, places[k], &n);
        for (size_t i = 0; lost && i < n; i++) {
            s_job_t *job = lost[i];
            double runtime = job->where == J_ACTIVE ? zq_mono() - job->started : 0;
            s_release_slot(w, job);
            if (job->entry->acks_late) {
                /* acks_late: it must run again somewhere, not fail */
                s_add_id(&ids, &nret, job);
            } else {
                s_finish_error(w, job, ZQ_STATE_FAILURE, "WorkerLostError",
                               prefork ? "Worker exited prematurely: signal 9 (SIGKILL)."
                                       : "Worker exited prematurely: cold shutdown.",
                               runtime, NULL, 1);
            }
            if (!w->threads_abandoned)
                s_job_drop(w, job);
        }
        free(lost);
    }
    s_send_return(w, &ids, nret);
    zq_sb_free(&ids);
    w->exit_code = 1;
    w->stop = 1;
}

/* ---------------------------------------------------------------------------------------
 * Lifecycle
 */
static int s_parse_queues(zq_worker_t *w, const char *spec)
{
    char *copy = strdup(spec ? spec : ZQ_DEFAULT_QUEUE);
    if (!copy)
        return ZQ_ENOMEM;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        char *end = tok + strlen(tok);
        while (end > tok && end[-1] == ' ')
            *--end = '\0';
        if (!*tok)
            continue;
        if (!zq_valid_token(tok)) {
            ZQ_ERROR("invalid queue name '%s' (1-255 printable characters, no spaces)", tok);
            free(copy);
            return ZQ_EINVAL;
        }
        char **q = realloc(w->queues, (w->nqueues + 1) * sizeof *q);
        if (!q || !(q[w->nqueues] = strdup(tok))) {
            if (q)
                w->queues = q;
            free(copy);
            return ZQ_ENOMEM;
        }
        w->queues = q;
        w->nqueues++;
    }
    free(copy);
    if (!w->nqueues) {
        ZQ_ERROR("no queue to consume from (-Q is empty)");
        return ZQ_EINVAL;
    }
    return ZQ_OK;
}

zq_worker_t *zq_worker_new(const zq_worker_config_t *cfg)
{
    if (!cfg || !cfg->plugins_dir) {
        ZQ_ERROR("no plugin directory given (--plugins DIR)");
        return NULL;
    }
    zq_worker_t *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->started = zq_now();
    w->eta_fd = -1;
    w->broker_url = strdup(zq_broker_url(cfg->broker_url));
    w->plugins_dir = strdup(cfg->plugins_dir);
    w->control = strdup(cfg->control ? cfg->control : "");
    if (!w->broker_url || !w->plugins_dir || !w->control)
        goto fail;
    if (strncmp(w->broker_url, "tcp://", 6) != 0 && strncmp(w->broker_url, "ipc://", 6) != 0) {
        ZQ_ERROR("invalid broker URL '%s' (expected tcp://HOST:PORT or ipc://PATH)", w->broker_url);
        goto fail;
    }
    if (zq_worker_expand_name(cfg->nodename ? cfg->nodename : "zq@%h", w->name, sizeof w->name) !=
        ZQ_OK) {
        ZQ_ERROR("invalid worker name '%s' (after expanding %%h, %%n, %%d: 1-255 printable "
                 "characters, no spaces)", cfg->nodename ? cfg->nodename : "zq@%h");
        goto fail;
    }
    if (s_parse_queues(w, cfg->queues) != ZQ_OK || !(w->outbox = zq_outbox_new(w->name)))
        goto fail;
    if (cfg->curve_secret || cfg->curve_server_key || cfg->curve_authorized) {
        char why[600];
        if (!cfg->curve_secret || !cfg->curve_server_key || !cfg->curve_authorized) {
            ZQ_ERROR("CURVE needs --curve-secret FILE, --curve-server-key FILE and "
                     "--curve-authorized DIR (who may query the control socket)");
            goto fail;
        }
        if (zq_curve_client_load(&w->curve, cfg->curve_secret, cfg->curve_server_key, why,
                                 sizeof why) != ZQ_OK) {
            ZQ_ERROR("%s", why);
            goto fail;
        }
        if (!(w->curve_authorized = strdup(cfg->curve_authorized)))
            goto fail;
    }
    w->pool_kind = cfg->pool;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    w->concurrency = cfg->concurrency > 0 ? cfg->concurrency : (ncpu > 0 ? (int)ncpu : 1);
    if (w->pool_kind == ZQ_POOL_SOLO)
        w->concurrency = 1; /* as Celery, solo ignores -c */
    w->prefetch = cfg->prefetch >= 0 ? cfg->prefetch : w->concurrency;
    w->prefetch_adaptive = cfg->prefetch < 0;
    w->heartbeat = cfg->heartbeat > 0 ? cfg->heartbeat : ZQ_WORKER_HEARTBEAT;
    w->hb_interval = w->heartbeat;
    w->time_limit = cfg->time_limit > 0 ? cfg->time_limit : 0;
    w->soft_time_limit = cfg->soft_time_limit > 0 ? cfg->soft_time_limit : 0;
    if (w->pool_kind != ZQ_POOL_PREFORK && w->time_limit > 0)
        ZQ_WARN("--time-limit is not enforced by the %s pool: only prefork can stop a running "
                "task", zq_pool_kind_name(w->pool_kind));
    if (w->pool_kind == ZQ_POOL_SOLO && w->soft_time_limit > 0)
        ZQ_WARN("--soft-time-limit is not enforced by the solo pool");

    w->loader = zq_loader_new();
    if (!w->loader)
        goto fail;
    zq_loader_set_allow_insecure(w->loader, cfg->allow_insecure_plugins);
    int n = zq_loader_load_dir(w->loader, w->plugins_dir);
    if (n == ZQ_EIO || n == ZQ_ENOMEM)
        goto fail;
    if (zq_loader_plugin_count(w->loader) == 0)
        ZQ_WARN("no plugin loaded from %s: this worker has no tasks to run", w->plugins_dir);
    else if (zq_loader_task_count(w->loader) == 0)
        ZQ_WARN("the plugins in %s declare no tasks: this worker has nothing to run",
                w->plugins_dir);
    return w;
fail:
    zq_worker_destroy(&w);
    return NULL;
}

void zq_worker_destroy(zq_worker_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zq_worker_t *w = *self_p;
    zq_pool_destroy(&w->pool, 1);
    if (!w->threads_abandoned) {
        /* threads still running plugin code borrow jobs and plugins: leave those to exit */
        for (size_t b = 0; b < w->table_cap; b++)
            for (s_job_t *j = w->table[b], *next; j; j = next) {
                next = j->hnext;
                s_job_free(j);
            }
        zq_loader_destroy(&w->loader);
    }
    free(w->table);
    free(w->heap);
    free(w->active);
    for (size_t i = 0; i < w->rv_count; i++) {
        s_revoked_t *rv = w->rv_ring[(w->rv_head + i) % ZQ_WORKER_REVOKES_MAX];
        free(rv->id);
        free(rv);
    }
    free(w->rv);
    free(w->rv_ring);
    for (size_t i = 0; i < w->nqueues; i++)
        free(w->queues[i]);
    free(w->queues);
    free(w->broker_url);
    free(w->plugins_dir);
    free(w->control);
    zq_outbox_destroy(&w->outbox);
    free(w->curve_authorized);
    memset(&w->curve, 0, sizeof w->curve);
    free(w);
    *self_p = NULL;
}

const char *zq_worker_name(const zq_worker_t *self)
{
    return self ? self->name : NULL;
}

size_t zq_worker_task_count(const zq_worker_t *self)
{
    return self ? zq_loader_task_count(self->loader) : 0;
}

void zq_worker_banner(const zq_worker_t *w, FILE *fp)
{
    struct utsname u;
    char platform[200] = "unknown";
    if (uname(&u) == 0)
        snprintf(platform, sizeof platform, "%s-%s-%s", u.sysname, u.release, u.machine);
    char when[32];
    time_t t = (time_t)w->started;
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
    char conc[64];
    snprintf(conc, sizeof conc, "%d (%s)", w->concurrency, zq_pool_kind_name(w->pool_kind));
    fprintf(fp, " \n");
    fprintf(fp, " -------------- %s v%s\n", w->name, PACKAGE_VERSION);
    fprintf(fp, "--- ***** ----- \n");
    fprintf(fp, "-- ******* ---- %s %s\n", platform, when);
    fprintf(fp, "- *** --- * --- \n");
    fprintf(fp, "- ** ---------- [config]\n");
    fprintf(fp, "- ** ---------- .> app:         %s (%zu plugin%s)\n", w->plugins_dir,
            zq_loader_plugin_count(w->loader), zq_loader_plugin_count(w->loader) == 1 ? "" : "s");
    fprintf(fp, "- ** ---------- .> transport:   %s\n", w->broker_url);
    fprintf(fp, "- ** ---------- .> results:     %s (stored by the broker)\n", w->broker_url);
    fprintf(fp, "- *** --- * --- .> concurrency: %s\n", conc);
    fprintf(fp, "-- ******* ---- .> task events: ON (published by the broker)\n");
    fprintf(fp, "--- ***** ----- \n");
    fprintf(fp, " -------------- [queues]\n");
    for (size_t i = 0; i < w->nqueues; i++)
        fprintf(fp, "                .> %-16s exchange=%s(direct) key=%s\n", w->queues[i],
                w->queues[i], w->queues[i]);
    fprintf(fp, "                \n\n[tasks]\n");
    for (size_t i = 0; i < zq_loader_task_count(w->loader); i++)
        fprintf(fp, "  . %s\n", zq_loader_task(w->loader, i)->name);
    fprintf(fp, "\n");
    fflush(fp);
}

/* ---------------------------------------------------------------------------------------
 * What the control socket sees (worker/zq_control.h): held jobs, revoked ids, live values
 */
static void s_ctl_describe(const zq_worker_t *w, s_job_t *j, zq_control_job_t *out)
{
    s_job_args(j); /* inspect shows them */
    out->req = &j->req;
    out->acks_late = j->entry ? j->entry->acks_late : 0;
    out->place = j->where == J_ACTIVE      ? ZQ_CONTROL_ACTIVE
                 : j->where == J_SCHEDULED ? ZQ_CONTROL_SCHEDULED
                                           : ZQ_CONTROL_RESERVED;
    out->time_start = j->where == J_ACTIVE ? zq_now() - (zq_mono() - j->started) : 0;
    out->pid = j->where == J_ACTIVE ? zq_pool_pid(w->pool, j->slot) : 0;
}

/* Active by slot, then reserved in the order they will run (the pool's queue, then the
 * ready FIFO), then scheduled. */
static void s_ctl_each_job(void *src, zq_control_job_fn *fn, void *arg)
{
    zq_worker_t *w = src;
    zq_control_job_t cj;
    for (int i = 0; i < w->nslots; i++)
        if (w->active[i] && w->active[i]->where == J_ACTIVE) {
            s_ctl_describe(w, w->active[i], &cj);
            fn(arg, &cj);
        }
    for (size_t b = 0; b < w->table_cap; b++)
        for (s_job_t *j = w->table[b]; j; j = j->hnext)
            if (j->where == J_POOLED) {
                s_ctl_describe(w, j, &cj);
                fn(arg, &cj);
            }
    for (s_job_t *j = w->ready_head; j; j = j->next) {
        s_ctl_describe(w, j, &cj);
        fn(arg, &cj);
    }
    for (size_t i = 0; i < w->nheap; i++) {
        s_ctl_describe(w, w->heap[i], &cj);
        fn(arg, &cj);
    }
}

static int s_ctl_find_job(void *src, const char *id, zq_control_job_t *out)
{
    zq_worker_t *w = src;
    s_job_t *j = s_job_find(w, id);
    if (!j || !j->where)
        return 0;
    s_ctl_describe(w, j, out);
    return 1;
}

static void s_ctl_each_revoked(void *src, zq_control_id_fn *fn, void *arg)
{
    zq_worker_t *w = src;
    for (size_t i = 0; i < w->rv_count; i++)
        fn(arg, w->rv_ring[(w->rv_head + i) % ZQ_WORKER_REVOKES_MAX]->id);
}

static void s_ctl_live(void *src, zq_control_live_t *out)
{
    zq_worker_t *w = src;
    out->registered = w->registered;
    out->heartbeat = w->hb_interval;
    out->processed = w->processed;
    out->broker_id = w->broker_id;
    out->pool = w->pool;
    out->bad_messages = w->bad_messages;
}

/* Bind the control socket (before HELLO, which announces it). */
static int s_control_open(zq_worker_t *w)
{
    zq_control_config_t cc = {
        .name = w->name,
        .broker_url = w->broker_url,
        .plugins_dir = w->plugins_dir,
        .queues = (const char *const *)w->queues,
        .nqueues = w->nqueues,
        .pool_kind = w->pool_kind,
        .concurrency = w->concurrency,
        .prefetch = w->prefetch,
        .heartbeat = w->heartbeat,
        .time_limit = w->time_limit,
        .soft_time_limit = w->soft_time_limit,
        .endpoint = w->control,
        .started = w->started,
        .loader = w->loader,
        .revokes_max = ZQ_WORKER_REVOKES_MAX,
        .curve = w->curve.enabled ? &w->curve.self : NULL,
        .curve_authorized = w->curve_authorized,
        .each_job = s_ctl_each_job,
        .find_job = s_ctl_find_job,
        .each_revoked = s_ctl_each_revoked,
        .live = s_ctl_live,
        .src = w,
    };
    w->ctl = zq_control_new(&cc);
    if (!w->ctl)
        return ZQ_ENOMEM;
    return zq_control_bind(w->ctl, w->ctx);
}

static int s_install_signals(void)
{
    if (s_sig_pipe[0] < 0 && pipe2(s_sig_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        ZQ_ERROR("cannot create the signal pipe: %s", strerror(errno));
        return ZQ_EIO;
    }
    s_sig_count = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = s_on_signal;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sa.sa_flags = 0;
    sigaction(SIGPIPE, &sa, NULL); /* a dead child's pipe shows up as EPIPE */
    return ZQ_OK;
}

static int s_handle_signals(zq_worker_t *w)
{
    char buf[64];
    while (read(s_sig_pipe[0], buf, sizeof buf) > 0)
        ;
    int count = s_sig_count;
    if (count >= 1 && !w->draining)
        s_warm_shutdown(w);
    if (count >= 2) {
        s_cold_shutdown(w);
        return 1;
    }
    return 0;
}

/* Leaving: wait (up to the upstream linger) for the broker to confirm what we sent, so that
 * no result is lost with a broker that dies at the same moment. Needs the dispatch channel,
 * which a warm shutdown closes; then the socket linger is all there is. */
static void s_await_acks(zq_worker_t *w)
{
    double deadline = zq_mono() + ZQ_WORKER_UPSTREAM_LINGER / 1000.0;
    while (w->dispatch && w->registered && zq_outbox_batches(w->outbox) > 0) {
        double left = deadline - zq_mono();
        if (left <= 0) {
            ZQ_WARN("leaving with %zu upstream message(s) the broker has not confirmed",
                    zq_outbox_messages(w->outbox));
            break;
        }
        zmq_pollitem_t it = {w->dispatch, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, (long)(left * 1000) + 1) > 0)
            s_read_dispatch(w, 1);
        zq_outbox_flush(w->outbox, s_up_sendfn, w, zq_mono());
    }
}

int zq_worker_run(zq_worker_t *w)
{
    if (!w)
        return 1;
    if (s_install_signals() != ZQ_OK)
        return 1;
    /* children first, so that they do not inherit any ZeroMQ state */
    zq_pool_config_t pc = {w->pool_kind, w->concurrency, w->loader, w->name, s_on_pool_event, w};
    w->pool = zq_pool_new(&pc);
    if (!w->pool)
        return 1;
    w->nslots = zq_pool_size(w->pool);
    w->active = calloc((size_t)w->nslots, sizeof *w->active);
    w->eta_fd = timerfd_create(CLOCK_REALTIME, TFD_CLOEXEC | TFD_NONBLOCK);
    w->eta_armed = 0;
    if (w->eta_fd < 0)
        ZQ_WARN("timerfd: %s; ETA tasks start up to ~2 ms late", strerror(errno));
    w->ctx = zmq_ctx_new();
    w->up_ctx = zmq_ctx_new();
    if (!w->active || !w->ctx || !w->up_ctx || s_control_open(w) != ZQ_OK ||
        s_front_open(w) != ZQ_OK) {
        w->exit_code = 1;
        w->stop = 1;
    } else {
        s_send_hello(w);
    }
    int npool_max = w->nslots + 2;
    zmq_pollitem_t *items = calloc((size_t)npool_max + 4 + ZQ_CONTROL_POLLITEMS, sizeof *items);
    if (!items) {
        w->exit_code = 1;
        w->stop = 1;
    }
    while (!w->stop) {
        if (s_sig_count && s_handle_signals(w))
            break;
        if (w->draining && w->nactive == 0 && w->npooled == 0)
            break;
        double m = zq_mono(), now = zq_now();
        s_session_tick(w, m);
        if (w->stop)
            break;
        /* a pool that waits for an eta itself gets its ETA jobs a little early */
        double ahead = w->pool_kind == ZQ_POOL_SOLO ? 0 : ZQ_POOL_ETA_AHEAD;
        double next_eta = s_promote_eta(w, now + ahead);
        s_eta_arm(w, next_eta > 0 ? next_eta - ahead : 0);
        s_dispatch_ready(w);
        double next_limit = s_check_limits(w, zq_mono());
        double next_state = s_up_flush(w, zq_mono(), 0);

        /* sleep until the earliest thing due; ETA lateness is a few ms */
        m = zq_mono();
        double wait = ZQ_WORKER_HELLO_RETRY;
        if (w->registered && w->hb_next - m < wait)
            wait = w->hb_next - m;
        else if (!w->registered && w->hello_req && w->hello_at + ZQ_WORKER_HELLO_RETRY - m < wait)
            wait = w->hello_at + ZQ_WORKER_HELLO_RETRY - m;
        if (next_eta > 0 && w->eta_fd < 0 && next_eta - ahead - zq_now() < wait)
            wait = next_eta - ahead - zq_now();
        if (next_limit > 0 && next_limit - m < wait)
            wait = next_limit - m;
        if (next_state > 0 && next_state - m < wait)
            wait = next_state - m;
        double next_pool = zq_pool_due(w->pool);
        if (next_pool > 0 && next_pool - m < wait)
            wait = next_pool - m;
        long timeout = wait <= 0 ? 0 : (long)ceil(wait * 1000);

        int n = 0;
        items[n++] = (zmq_pollitem_t){NULL, s_sig_pipe[0], ZMQ_POLLIN, 0};
        int i_eta = -1;
        if (w->eta_armed > 0) {
            i_eta = n;
            items[n++] = (zmq_pollitem_t){NULL, w->eta_fd, ZMQ_POLLIN, 0};
        }
        int i_front = -1, i_disp = -1, i_ctl = n;
        n += zq_control_pollitems(w->ctl, items + n, ZQ_CONTROL_POLLITEMS);
        int n_ctl = n - i_ctl;
        if (w->front) {
            i_front = n;
            items[n++] = (zmq_pollitem_t){w->front, 0, ZMQ_POLLIN, 0};
        }
        if (w->dispatch && w->registered && !w->draining) {
            i_disp = n;
            items[n++] = (zmq_pollitem_t){w->dispatch, 0, ZMQ_POLLIN, 0};
        }
        int i_pool = n;
        n += zq_pool_pollitems(w->pool, items + n, npool_max);
        unsigned char settled[64];
        memset(settled, 0, sizeof settled);
        if (i_front >= 0 && i_front < 64)
            settled[i_front] = (unsigned char)w->front_settled;
        if (i_disp >= 0 && i_disp < 64)
            settled[i_disp] = (unsigned char)w->disp_settled;
        int rc = zq_zpoll(items, n <= 64 ? settled : NULL, n, timeout);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            ZQ_ERROR("poll failed: %s", zmq_strerror(errno));
            w->exit_code = 1;
            break;
        }
        if (i_eta >= 0 && (items[i_eta].revents & ZMQ_POLLIN)) {
            uint64_t expirations;
            if (read(w->eta_fd, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
                ZQ_WARN("timerfd: %s", strerror(errno));
            w->eta_armed = 0; /* fired: the next turn arms it for the new earliest eta */
        }
        if (i_front >= 0 && (items[i_front].revents & ZMQ_POLLIN))
            s_read_front(w);
        if (i_disp >= 0 && (items[i_disp].revents & ZMQ_POLLIN))
            s_read_dispatch(w, 0);
        zq_pool_dispatch(w->pool, items + i_pool, n - i_pool);
        zq_control_dispatch(w->ctl, items + i_ctl, n_ctl);
    }
    free(items);
    if (w->eta_fd >= 0)
        close(w->eta_fd);
    w->eta_fd = -1;
    zq_pool_destroy(&w->pool, 0);
    s_up_flush(w, zq_mono(), 1);
    s_await_acks(w);
    s_close_socket(&w->dispatch);
    w->disp_settled = 0;
    /* results first (up to the linger time), then BYE: the broker must not requeue a task
     * whose SUCCESS is still on its way */
    s_close_socket(&w->upstream);
    if (w->up_ctx)
        zmq_ctx_term(w->up_ctx);
    w->up_ctx = NULL;
    s_bye(w);
    s_close_socket(&w->front);
    w->front_settled = 0;
    s_close_socket(&w->front_mon);
    zq_control_destroy(&w->ctl);
    if (w->ctx)
        zmq_ctx_term(w->ctx);
    w->ctx = NULL;
    return w->exit_code;
}
