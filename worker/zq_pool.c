/*
 * zq_pool - prefork, threads and solo pools behind one interface (see zq_pool.h).
 *
 * Prefork, the shared job queue: one AF_UNIX SOCK_SEQPACKET socket pair. The parent sends
 * one message per job; idle children all wait in recvmsg() on the other end, without a lock,
 * and the kernel gives each message, whole, to exactly one of them (wakes one waiter), so
 * jobs are served in order by whichever child is free and a job never waits behind a busy
 * child while another is idle. While jobs are short (average run under PACK_RUN) and several
 * are queued, one message is a pack of consecutive inline jobs without an eta (at most
 * PACK_MAX, and the queued ones shared out among the children) that one child runs in turn:
 * a syscall and a wake-up per pack, not per job; a short job may wait behind at most a pack
 * of others. A body too big for one message (inline_max) travels as a file (memfd) passed
 * with it (SCM_RIGHTS). Each job also has a state word in shared memory,
 * (seq << 2) | QUEUED / STARTED / CANCELLED, that the child and the parent compare-and-swap:
 * a job taken back by the parent (revoke, shutdown) is skipped by the child that reads it,
 * and one a child has started cannot be taken back.
 *
 * Shared memory also says, per child, which job it took (`running`: the job LOST with it;
 * `last`: the end of its pack, the jobs after `running` handed back when it dies),
 * which it runs (`started`, with the start time in start_t[]) and how many DONE / EXPIRED
 * records it has written (`nrec`). A child sends nothing when it starts a job: the parent
 * reports STARTED from the DONE record (which carries the start time) or, for a job still
 * running, from shared memory, which it reads after handling the children's pipes each turn
 * and, while a child not known busy could pick up a queued job or a child is in the middle
 * of a pack, at least every SCAN_EVERY (zq_pool_due). Signals for soft and hard limits only
 * hit the job they are meant for.
 *
 * DONE and EXPIRED records go in the child's ring in shared memory (no syscall), and the
 * child rings the parent (a BELL record on its pipe) when the message's last job has ended
 * or before it waits (eta, lease): one write per pack instead of one per job. In the middle
 * of a pack the parent takes them on its own every SCAN_EVERY, so a long job does not hold
 * back the results of the short ones before it; and what a child put there before dying is
 * read after its pipe's EOF, before its jobs are reported LOST or handed back.
 *
 * Messages are atomic, so a dying child cannot leave the queue misaligned; but one killed
 * between taking a message and publishing `running` would lose that job. So when a child of
 * the current queue dies holding no job of ours while jobs are queued, the parent rebuilds
 * the queue: every queued job is handed back (RETURNED), a new socket pair is made, children
 * of the old one read EOF and are replaced.
 *
 * Records (native byte order: both ends are the same binary):
 *   parent -> children  one message: [s_task_hdr_t: magic, len, seq, hard, soft, eta, 'T',
 *                       big] [len bytes: TASK body, unless big]; a child waits for eta
 *                       before starting the job (handed in up to ZQ_POOL_ETA_AHEAD early).
 *                       A pack is several such records, back to back, with consecutive
 *                       seqs; a big job and an ETA job travel alone
 *   child -> parent     [s_rec_hdr_t: magic, len, seq, time, type, state, run][len bytes],
 *                       in its ring: 'E' expired (not run), 'D' done (STATE body; time:
 *                       when it started; run: seconds it ran); on its pipe: 'U' sub-task
 *                       (SUBMIT body), 'B' a malformed job message, 'R' look at the ring,
 *                       and an 'E' or 'D' that does not fit in the ring
 * The parent queues the jobs of a dispatch pass in a buffer and sends them non-blocking with
 * one sendmmsg() (what does not fit waits there, whole, for the next flush) and
 * reads children's pipes non-blocking, so no child can stall the main loop.
 */
#include "config.h"
#include "zq_pool.h"
#include "zq_log.h"
#include "zq_proto.h"
#include "zq_time.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAGIC 0x31305a51u    /* "QZ01" */
#define REC_TASK 'T'
#define REC_STARTED 'S'
#define REC_EXPIRED 'E'
#define REC_DONE 'D'
#define REC_SUBMIT 'U'
#define REC_BROKEN 'B'
#define REC_BELL 'R'         /* no payload: records wait in the child's ring */
#define RING 16384           /* job state words; more than jobs ever held by the pool */
#define QUEUE_MIN 64         /* queued jobs the pool takes at least (beyond running ones) */
#define READ_CHUNK 65536     /* bytes read from a child's pipe at a time */
#define BUF_KEEP (1 << 20)   /* a buffer larger than this is freed once empty (bytes) */
#define JOB_PIPE_SIZE (1 << 20) /* requested job queue send buffer (bytes; best effort) */
#define INLINE_MAX 65536     /* bodies up to this many bytes go inside the job message */
#define SCAN_EVERY 0.005     /* s between looks at shared memory for jobs started unseen */
#define PPID_EVERY 0.1       /* s between a child's checks that its parent still lives */
#define PACK_MAX 16          /* jobs per job message at most (a pack) */
#define PACK_RUN 0.0005      /* s: jobs are packed while the average run is below this */
#define RING_BYTES 65536     /* a child's ring of DONE / EXPIRED records (power of 2) */

enum { J_QUEUED = 0, J_STARTED = 1, J_CANCELLED = 2 };
#define JW(seq_, st_) (((uint64_t)(seq_) << 2) | (uint64_t)(st_))

typedef struct {
    uint32_t magic;
    uint32_t len;   /* payload bytes */
    uint64_t seq;
    double time;    /* REC_DONE: when the child started it (zq_now) */
    uint8_t type;
    uint8_t state;  /* REC_DONE: zq_outcome_state_t */
    uint8_t pad[2];
    float run;      /* REC_DONE: seconds the task ran (the pool's average decides packing) */
} s_rec_hdr_t;

typedef struct {
    uint32_t magic;
    uint32_t len;   /* payload bytes */
    uint64_t seq;
    double hard;    /* effective limits, seconds; 0 = none */
    double soft;
    double eta;     /* epoch seconds, 0 = none: the child waits for it (ZQ_POOL_ETA_AHEAD) */
    uint8_t type;   /* REC_TASK */
    uint8_t big;    /* 1: the body is in a file that comes with the message (SCM_RIGHTS) */
    uint8_t pad[2];
    int32_t fd;     /* big: that file, while the record waits in the parent's buffer */
} s_task_hdr_t;

/* Shared between the parent and every child (MAP_SHARED, created before the first fork). */
typedef struct {
    double lease;                 /* zq_pool_set_lease(); read and written with __atomic */
    uint64_t ring[RING];          /* job state words, index seq % RING */
    double start_t[RING];         /* zq_now() a job started, written before child[].started */
    struct {
        uint64_t running;         /* seq the child took (0: none) */
        uint64_t last;            /* the last seq of the pack it took (0: none); the jobs
                                   * after `running` up to it are still to come */
        uint64_t started;         /* seq it runs (past the lease and expiry checks; 0: none) */
        uint64_t nrec;            /* DONE / EXPIRED records it has written */
        uint64_t soft;            /* seq whose soft limit passed */
        uint64_t term;            /* seq the parent asked to terminate */
        /* DONE / EXPIRED records, written by the child (head: bytes put, release) and
         * taken by the parent (tail: bytes taken, release): no syscall per record, and
         * what a child wrote before dying is still there to read */
        uint64_t head, tail;
        char ring[RING_BYTES];
    } child[];                    /* per slot */
} s_shm_t;

/* A job the prefork parent handed out, index seq % RING. */
typedef struct {
    uint64_t seq;
    void *ctx;                    /* NULL: free entry */
    int started;                  /* 'S' seen */
} s_pjob_t;

/* A job waiting in the threads pool's queue. */
typedef struct s_tjob {
    void *ctx;
    const cJSON *body;
    double hard, soft, expires, eta;
    struct s_tjob *next;
} s_tjob_t;

/* An event queued by a pool thread for the main loop. */
typedef struct s_event {
    zq_pool_ev_kind_t kind;
    int slot;
    void *ctx;
    double time;
    zq_outcome_state_t state;
    char *json; /* owned */
    size_t len;
    struct s_event *next;
} s_event_t;

typedef struct {
    struct zq_pool *pool;
    int index;
    /* prefork */
    pid_t pid;                        /* 0: no child (fork failed; dispatch retries) */
    int from_child;                   /* read end of its result pipe (O_NONBLOCK), or -1 */
    char *in;                         /* partial records read from it */
    size_t in_len, in_cap;
    uint64_t running;                 /* seq reported STARTED and not ended, 0 when idle */
    uint64_t nrec;                    /* DONE / EXPIRED records read from it */
    unsigned gen;                     /* the job queue it reads (zq_pool.gen) */
    /* threads */
    pthread_t thread;
    int started;                      /* 1 once the thread runs */
    void *running_ctx;                /* under pool->mu */
    volatile sig_atomic_t soft_flag;  /* the running task's soft-limit flag */
} s_slot_t;

struct zq_pool {
    zq_pool_config_t cfg;
    int n;
    s_slot_t *slots;
    int stopping;                     /* 1: do not replace children, take no jobs */
    int qmax;                         /* queued jobs taken at most */
    int nqueued;                      /* handed in, not started / ended / taken back */
    double lease;                     /* threads: zq_pool_set_lease(), under mu */
    /* prefork */
    s_shm_t *shm;
    size_t shm_size;
    int jobq[2];                      /* job queue (SOCK_SEQPACKET pair): [0] the children's end,
                                       * [1] ours (O_NONBLOCK) */
    size_t inline_max;                /* bodies up to this go inside the message */
    unsigned gen;                     /* job queues made so far (s_rebuild makes a new one) */
    char *out;                        /* job records not yet in the queue, whole */
    size_t out_off, out_len, out_cap;
    uint64_t seq;                     /* last job sequence number */
    s_pjob_t *jobs;                   /* RING entries */
    int broken;                       /* the job queue may have lost a job: rebuild it */
    double scanned;                   /* zq_mono() of the last s_scan */
    double avg_run;                   /* moving average of the children's run times (s) */
    uint64_t sent_jobs, sent_msgs;    /* jobs and job messages written to the queue */
    char *ringbuf;                    /* a child's ring records, copied out to be handled */
    /* threads */
    pthread_mutex_t mu;
    pthread_cond_t work_cv;           /* a job arrived, or stop */
    int stop;                         /* under mu */
    s_tjob_t *t_head, *t_tail;        /* queued jobs, under mu */
    s_event_t *q_head, *q_tail;       /* events from threads, under mu */
    int wake[2];                      /* written when the event queue becomes non-empty */
    int sync_init;                    /* 1: mu/cv initialised */
};

/* The child's view (one task at a time per process). */
static volatile sig_atomic_t s_child_soft;
static s_shm_t *s_child_shm;
static int s_child_slot;
static uint64_t s_child_seq;

const char *zq_pool_kind_name(zq_pool_kind_t kind)
{
    switch (kind) {
    case ZQ_POOL_PREFORK: return "prefork";
    case ZQ_POOL_THREADS: return "threads";
    case ZQ_POOL_SOLO: return "solo";
    }
    return "?";
}

int zq_pool_kind_parse(const char *s, zq_pool_kind_t *out)
{
    if (!s || !out)
        return ZQ_EINVAL;
    if (!strcasecmp(s, "prefork") || !strcasecmp(s, "processes"))
        *out = ZQ_POOL_PREFORK;
    else if (!strcasecmp(s, "threads"))
        *out = ZQ_POOL_THREADS;
    else if (!strcasecmp(s, "solo"))
        *out = ZQ_POOL_SOLO;
    else
        return ZQ_EINVAL;
    return ZQ_OK;
}

static int s_write_all(int fd, const struct iovec *iov_in, int iovcnt)
{
    struct iovec iov[4];
    memcpy(iov, iov_in, (size_t)iovcnt * sizeof *iov);
    int i = 0;
    while (i < iovcnt) {
        ssize_t n = writev(fd, &iov[i], iovcnt - i);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        while (i < iovcnt && (size_t)n >= iov[i].iov_len) {
            n -= (ssize_t)iov[i].iov_len;
            i++;
        }
        if (i < iovcnt) {
            iov[i].iov_base = (char *)iov[i].iov_base + n;
            iov[i].iov_len -= (size_t)n;
        }
    }
    return 0;
}

static void s_close(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static int s_cas(uint64_t *word, uint64_t from, uint64_t to)
{
    return __atomic_compare_exchange_n(word, &from, to, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

static void s_emit_at(zq_pool_t *p, zq_pool_ev_kind_t kind, int slot, void *ctx, int state,
                      const char *json, size_t len, long pid, int status, double time)
{
    zq_pool_event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.time = time;
    ev.kind = kind;
    ev.slot = slot;
    ev.ctx = ctx;
    ev.state = (zq_outcome_state_t)state;
    ev.json = json;
    ev.len = len;
    ev.pid = pid;
    ev.status = status;
    p->cfg.on_event(p->cfg.arg, &ev);
}

static void s_emit(zq_pool_t *p, zq_pool_ev_kind_t kind, int slot, void *ctx, int state,
                   const char *json, size_t len, long pid, int status)
{
    s_emit_at(p, kind, slot, ctx, state, json, len, pid, status, 0);
}

/* ---------------------------------------------------------------------------------------
 * Prefork: the child side
 */
/* SIGTERM, SIGINT, SIGHUP: a signal sent to the whole process group (Ctrl-C, `timeout`,
 * systemd) is the parent's to handle: warm shutdown lets the running task finish. The child
 * only dies of it when the parent asked to terminate the job it runs. */
static void s_on_term(int sig)
{
    if (s_child_shm && s_child_seq &&
        __atomic_load_n(&s_child_shm->child[s_child_slot].term, __ATOMIC_SEQ_CST) == s_child_seq) {
        signal(sig, SIG_DFL);
        raise(sig); /* delivered when this handler returns: we die of sig */
    }
}

static void s_on_usr1(int sig)
{
    (void)sig;
    /* only for the task it was meant for: the child may have moved on already */
    if (s_child_shm && s_child_seq &&
        __atomic_load_n(&s_child_shm->child[s_child_slot].soft, __ATOMIC_SEQ_CST) == s_child_seq)
        s_child_soft = 1;
}

/* The header of a child's record of len payload bytes. */
static s_rec_hdr_t s_rec_hdr(uint8_t type, uint64_t seq, uint8_t state, double time, float run,
                             size_t len)
{
    s_rec_hdr_t h;
    memset(&h, 0, sizeof h);
    h.magic = MAGIC;
    h.time = time;
    h.len = (uint32_t)len;
    h.seq = seq;
    h.type = type;
    h.state = state;
    h.run = run;
    return h;
}

static int s_child_send(int fd, uint8_t type, uint64_t seq, uint8_t state, double time,
                        float run, const char *json, size_t len)
{
    s_rec_hdr_t h = s_rec_hdr(type, seq, state, time, run, len);
    struct iovec iov[2] = {{&h, sizeof h}, {(void *)json, len}};
    return s_write_all(fd, iov, len ? 2 : 1);
}

static void s_child_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGQUIT, &sa, NULL);
    sigaction(SIGCHLD, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL); /* a dead parent shows up as EPIPE */
    sa.sa_flags = SA_RESTART;
    sa.sa_handler = s_on_term;     /* the parent decides (cold shutdown is SIGKILL) */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = s_on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, NULL);
}

/* Say the queue is broken and leave (the parent rebuilds it). */
__attribute__((noreturn)) static void s_child_broken(int out_fd)
{
    s_child_send(out_fd, REC_BROKEN, 0, 0, 0, 0, NULL, 0);
    _exit(3);
}

/* The absolute wall-clock time of eta, capped at S_ETA_WAIT_MAX from now: a clock set
 * back must not hold a job (and its slot) for long. 0 when eta is not in the future. */
#define S_ETA_WAIT_MAX 0.1
static int s_eta_deadline(double eta, struct timespec *ts)
{
    double now = zq_now();
    if (!(eta > now))
        return 0;
    if (eta - now > S_ETA_WAIT_MAX)
        eta = now + S_ETA_WAIT_MAX;
    *ts = zq_time_timespec(eta);
    return 1;
}

/* What a child keeps between jobs. */
typedef struct {
    zq_pool_t *p;
    int slot, out_fd;
    s_shm_t *shm;
    zq_exec_env_t env;
    pid_t parent;
    double ppid_at;
    int bell;   /* records put in the ring since the parent was last rung */
    int direct; /* the running job sent a sub-task on the pipe: its end goes there too */
} s_child_t;

static int s_child_emit(void *arg, const char *cmd, const char *json, size_t len)
{
    s_child_t *c = arg;
    if (strcmp(cmd, ZQ_CMD_SUBMIT) != 0 || len > ZQ_MAX_MSG_SIZE)
        return ZQ_EINVAL;
    c->direct = 1;
    return s_child_send(c->out_fd, REC_SUBMIT, s_child_seq, 0, 0, 0, json, len) == 0 ? ZQ_OK
                                                                                   : ZQ_EIO;
}

/* Copy n bytes into a ring at byte position at (wrapping). */
static void s_ring_copy(char *ring, uint64_t at, const void *src, size_t n)
{
    if (n == 0)
        return; /* src may be NULL */
    size_t off = (size_t)(at & (RING_BYTES - 1)), first = RING_BYTES - off;
    if (first > n)
        first = n;
    memcpy(ring + off, src, first);
    memcpy(ring, (const char *)src + first, n - first);
}

/* Tell the parent that records wait in the ring (one message for all put since the last
 * time). 0, or -1 when the parent is gone. */
static int s_child_bell(s_child_t *c)
{
    if (!c->bell)
        return 0;
    c->bell = 0;
    return s_child_send(c->out_fd, REC_BELL, 0, 0, 0, 0, NULL, 0);
}

/* A DONE / EXPIRED record: into the ring, where the parent takes it without a syscall on
 * either side (when rung: after the message's last job, before any wait; or on its own
 * every SCAN_EVERY while the ring holds records), or through the pipe when it does not fit.
 * 0, or -1 when the parent is gone. */
static int s_child_put(s_child_t *c, uint8_t type, uint64_t seq, uint8_t state, double time,
                       float run, const char *json, size_t len)
{
    __typeof__(c->shm->child[0]) *me = &c->shm->child[c->slot];
    s_rec_hdr_t h = s_rec_hdr(type, seq, state, time, run, len);
    uint64_t head = me->head; /* ours alone to write */
    uint64_t tail = __atomic_load_n(&me->tail, __ATOMIC_ACQUIRE);
    /* on the pipe when it does not fit, or after a sub-task of this job went there: the
     * parent reads a child's pipe before its ring, and a task's sub-tasks go up before its
     * end */
    if (c->direct || sizeof h + len > RING_BYTES - (head - tail))
        return s_child_bell(c) == 0 ? s_child_send(c->out_fd, type, seq, state, time, run, json,
                                                   len)
                                    : -1;
    s_ring_copy(me->ring, head, &h, sizeof h);
    s_ring_copy(me->ring, head + sizeof h, json, len);
    __atomic_store_n(&me->head, head + sizeof h + len, __ATOMIC_RELEASE);
    c->bell = 1;
    return 0;
}

/* Run one job of the message just taken (h: its header; text: its inline body, or NULL
 * when the body comes as file fd, which this closes). */
static void s_child_job(s_child_t *c, const s_task_hdr_t *hp, const char *text, int fd)
{
    s_task_hdr_t h = *hp;
    s_shm_t *shm = c->shm;
    uint64_t *running = &shm->child[c->slot].running;
    uint64_t *started = &shm->child[c->slot].started;
    uint64_t *nrec = &shm->child[c->slot].nrec;
    /* from here on the parent can tell which job died with us */
    __atomic_store_n(running, h.seq, __ATOMIC_SEQ_CST);
    char *big = NULL;
    if (h.big) {
        /* a failed read runs nothing: the empty DONE makes the parent report it */
        big = malloc((size_t)h.len + 1);
        size_t got = 0;
        while (big && got < h.len) {
            ssize_t r = pread(fd, big + got, h.len - got, (off_t)got);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        close(fd);
        if (got < h.len) {
            free(big);
            big = NULL;
        }
        text = big;
    }
    /* handed in ahead of its eta: start it on time, never early (a signal or a capped
     * wait just looks again) */
    struct timespec due;
    c->direct = 0;
    if (s_eta_deadline(h.eta, &due) && s_child_bell(c) != 0)
        _exit(0); /* the parent is gone */
    while (s_eta_deadline(h.eta, &due))
        clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &due, NULL);
    /* past the worker's lease the broker may have given this job to another worker:
     * wait until the worker knows it is still ours (lease extended) or takes it back */
    for (int waited = 0;; waited = 1) {
        /* the worker died: what it held is the broker's to hand out again. Checked when
         * waiting and now and then, not per job (a syscall); a child that took a job
         * from a dead worker within its lease at worst runs that one, whose DONE then
         * fails (EPIPE) */
        double m = zq_mono();
        if (waited || m - c->ppid_at >= PPID_EVERY) {
            if (getppid() != c->parent)
                _exit(0);
            c->ppid_at = m;
        }
        double lease;
        __atomic_load(&shm->lease, &lease, __ATOMIC_SEQ_CST);
        if (m < lease ||
            __atomic_load_n(&shm->ring[h.seq % RING], __ATOMIC_SEQ_CST) != JW(h.seq, J_QUEUED))
            break;
        if (s_child_bell(c) != 0)
            _exit(0);
        struct timespec nap = {0, 20 * 1000 * 1000};
        nanosleep(&nap, NULL);
    }
    if (!s_cas(&shm->ring[h.seq % RING], JW(h.seq, J_QUEUED), JW(h.seq, J_STARTED))) {
        /* taken back by the parent (revoked, returned): not ours to run */
        free(big);
        return;
    }
    cJSON *body = text ? cJSON_ParseWithLength(text, h.len) : NULL;
    free(big);
    zq_request_t r;
    memset(&r, 0, sizeof r);
    char err[256];
    const zq_task_entry_t *t = NULL;
    if (body && zq_exec_decode(&r, body, err, sizeof err) == ZQ_OK)
        t = zq_loader_find(c->p->cfg.loader, r.task);
    double now = zq_now();
    if (r.expires_t > 0 && r.expires_t <= now) {
        if (s_child_put(c, REC_EXPIRED, h.seq, 0, 0, 0, NULL, 0) != 0)
            _exit(0);
        __atomic_add_fetch(nrec, 1, __ATOMIC_SEQ_CST);
    } else {
        s_child_seq = h.seq;
        s_child_soft = 0;
        zq_outcome_t out;
        memset(&out, 0, sizeof out);
        /* STARTED without a message: the parent looks here (s_scan_slot) or learns it
         * from the DONE record, which carries the start time */
        __atomic_store(&shm->start_t[h.seq % RING], &now, __ATOMIC_SEQ_CST);
        __atomic_store_n(started, h.seq, __ATOMIC_SEQ_CST);
        double m0 = zq_mono();
        if (t) {
            r.hostname = c->p->cfg.worker;
            r.hard = h.hard;
            r.soft = h.soft;
            zq_exec_run(t, &r, &c->env, &out);
        }
        /* an empty DONE tells the parent to report the failure itself */
        if (s_child_put(c, REC_DONE, h.seq, (uint8_t)out.state, now, (float)(zq_mono() - m0),
                        out.json, out.json ? out.len : 0) != 0)
            _exit(0); /* the parent is gone */
        zq_outcome_clear(&out);
        __atomic_add_fetch(nrec, 1, __ATOMIC_SEQ_CST);
        __atomic_store_n(started, 0, __ATOMIC_SEQ_CST);
        s_child_seq = 0;
    }
    zq_request_clear(&r);
    cJSON_Delete(body);
}

/* The jobs in a message of n bytes: 1 (a big one with its file, or an inline one) or a
 * pack of inline ones with consecutive sequence numbers; 0 when it is malformed. */
static int s_child_count(const char *buf, size_t n, int fd, uint64_t *first, uint64_t *last)
{
    size_t off = 0;
    int k = 0;
    while (off < n) {
        s_task_hdr_t h;
        if (n - off < sizeof h)
            return 0;
        memcpy(&h, buf + off, sizeof h);
        if (h.magic != MAGIC || h.type != REC_TASK || h.len > ZQ_MAX_MSG_SIZE ||
            (k && h.seq != *last + 1))
            return 0;
        if (h.big) {
            if (off != 0 || fd < 0 || n != sizeof h)
                return 0;
            off = n;
        } else {
            if (n - off - sizeof h < h.len)
                return 0;
            off += sizeof h + h.len;
        }
        if (!k)
            *first = h.seq;
        *last = h.seq;
        k++;
    }
    return k;
}

__attribute__((noreturn)) static void s_child_main(zq_pool_t *p, int slot, int in_fd, int out_fd)
{
    char name[48];
    snprintf(name, sizeof name, "ForkPoolWorker-%d", slot + 1);
    zq_log_set_process_name(name);
    s_child_t c = {p, slot, out_fd, p->shm, {p->cfg.worker, s_child_emit, NULL, &s_child_soft},
                   getppid(), zq_mono(), 0, 0};
    c.env.emit_arg = &c;
    s_child_shm = p->shm;
    s_child_slot = slot;
    s_child_signals();
    uint64_t *running = &c.shm->child[slot].running;
    uint64_t *last = &c.shm->child[slot].last;
    /* one message is one job or a pack of short ones; a body too big to come inline comes
     * as a file (h.big) */
    size_t cap = sizeof(s_task_hdr_t) + p->inline_max;
    char *msgbuf = malloc(cap);
    if (!msgbuf)
        _exit(4);
    for (;;) {
        struct iovec iov = {msgbuf, cap};
        union {
            char buf[CMSG_SPACE(sizeof(int))];
            struct cmsghdr align;
        } cm;
        struct msghdr msg;
        memset(&msg, 0, sizeof msg);
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cm.buf;
        msg.msg_controllen = sizeof cm.buf;
        /* no lock: idle children wait in recvmsg together and the kernel hands each
         * message to exactly one of them, whole */
        ssize_t n = recvmsg(in_fd, &msg, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            _exit(0); /* the parent closed the queue: shutdown or rebuild */
        int fd = -1;
        for (struct cmsghdr *cmh = CMSG_FIRSTHDR(&msg); cmh; cmh = CMSG_NXTHDR(&msg, cmh))
            if (cmh->cmsg_level == SOL_SOCKET && cmh->cmsg_type == SCM_RIGHTS &&
                cmh->cmsg_len == CMSG_LEN(sizeof(int)) && fd < 0)
                memcpy(&fd, CMSG_DATA(cmh), sizeof fd);
        uint64_t first = 0, lastseq = 0;
        int k = (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
                    ? 0
                    : s_child_count(msgbuf, (size_t)n, fd, &first, &lastseq);
        if (k == 0) {
            if (fd >= 0)
                close(fd);
            s_child_broken(out_fd);
        }
        s_task_hdr_t h;
        memcpy(&h, msgbuf, sizeof h);
        if (!h.big && fd >= 0) {
            close(fd);
            fd = -1;
        }
        /* the pack's end first, then its start: the parent takes back what is between
         * (s_child_lost) */
        __atomic_store_n(last, k > 1 ? lastseq : 0, __ATOMIC_SEQ_CST);
        __atomic_store_n(running, first, __ATOMIC_SEQ_CST);
        size_t off = 0;
        for (int i = 0; i < k; i++) {
            memcpy(&h, msgbuf + off, sizeof h);
            s_child_job(&c, &h, h.big ? NULL : msgbuf + off + sizeof h, fd);
            off += sizeof h + (h.big ? 0 : h.len);
        }
        __atomic_store_n(running, 0, __ATOMIC_SEQ_CST);
        __atomic_store_n(last, 0, __ATOMIC_SEQ_CST);
        if (s_child_bell(&c) != 0)
            _exit(0); /* the parent is gone */
    }
}

/* ---------------------------------------------------------------------------------------
 * Prefork: the parent side
 */
static s_pjob_t *s_pjob(zq_pool_t *p, uint64_t seq)
{
    s_pjob_t *j = &p->jobs[seq % RING];
    return seq && j->ctx && j->seq == seq ? j : NULL;
}

static s_pjob_t *s_pjob_by_ctx(zq_pool_t *p, void *ctx)
{
    /* live jobs have the newest sequence numbers; revokes are rare enough for a scan */
    for (uint64_t k = 0; k < RING && k < p->seq; k++) {
        s_pjob_t *j = s_pjob(p, p->seq - k);
        if (j && j->ctx == ctx)
            return j;
    }
    return NULL;
}

static void s_pjob_forget(zq_pool_t *p, s_pjob_t *j)
{
    if (!j->started)
        p->nqueued--;
    j->ctx = NULL;
    j->seq = 0;
    j->started = 0;
}

static int s_job_pipe_open(zq_pool_t *p)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        ZQ_ERROR("pool: cannot create the job queue: %s", strerror(errno));
        p->jobq[0] = p->jobq[1] = -1;
        return ZQ_EIO;
    }
    p->jobq[0] = sv[1];
    p->jobq[1] = sv[0];
    /* room for more queued jobs before we buffer them; fine if refused */
    int sz = JOB_PIPE_SIZE;
    setsockopt(p->jobq[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    socklen_t szl = sizeof sz;
    if (getsockopt(p->jobq[1], SOL_SOCKET, SO_SNDBUF, &sz, &szl) != 0 || sz < 16384)
        sz = 16384;
    /* a message must fit the send buffer whole: keep inline ones well below it */
    size_t lim = (size_t)sz / 4 - sizeof(s_task_hdr_t);
    if (p->gen == 0)
        p->inline_max = lim < INLINE_MAX ? lim : INLINE_MAX; /* children know it from the fork */
    fcntl(p->jobq[1], F_SETFL, fcntl(p->jobq[1], F_GETFL) | O_NONBLOCK);
    p->out_off = p->out_len = 0;
    p->gen++;
    return ZQ_OK;
}

/* Send one job record (h, then body unless h->big, whose file goes along): 0 when sent, 1
 * when the queue is full, -1 on error. */
static int s_send_job(zq_pool_t *p, const s_task_hdr_t *h, const char *body)
{
    struct iovec iov[2] = {{(void *)h, sizeof *h}, {(void *)body, h->big ? 0 : h->len}};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } cm;
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = iov;
    msg.msg_iovlen = h->big || !h->len ? 1 : 2;
    if (h->big) {
        memset(&cm, 0, sizeof cm);
        msg.msg_control = cm.buf;
        msg.msg_controllen = sizeof cm.buf;
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        int fd = h->fd;
        memcpy(CMSG_DATA(c), &fd, sizeof fd);
    }
    ssize_t n;
    do
        n = sendmsg(p->jobq[1], &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n >= 0) {
        if (h->big)
            close(h->fd); /* the message holds it now */
        return 0;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return 1;
    ZQ_ERROR("pool: cannot write to the job queue: %s", strerror(errno));
    return -1;
}

/* A file holding a body too big to go inline; -1 on error (logged). */
static int s_body_file(const char *body, size_t len)
{
    int fd = memfd_create("zq-task", MFD_CLOEXEC);
    if (fd < 0)
        fd = open(P_tmpdir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        ZQ_ERROR("pool: cannot create a file for a task body: %s", strerror(errno));
        return -1;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, body + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            ZQ_ERROR("pool: cannot write a task body to a file: %s", strerror(errno));
            close(fd);
            return -1;
        }
        off += (size_t)n;
    }
    return fd;
}

/* Drop the records waiting in p->out (their jobs are handed back by the caller). */
static void s_out_discard(zq_pool_t *p)
{
    while (p->out_len - p->out_off >= sizeof(s_task_hdr_t)) {
        s_task_hdr_t h;
        memcpy(&h, p->out + p->out_off, sizeof h);
        if (h.big)
            close(h.fd);
        p->out_off += sizeof h + (h.big ? 0 : h.len);
    }
    p->out_off = p->out_len = 0;
}

static int s_spawn(zq_pool_t *p, s_slot_t *s)
{
    int up[2];
    if (p->jobq[0] < 0 || pipe2(up, O_CLOEXEC) != 0) {
        ZQ_ERROR("pool: cannot create a pipe for ForkPoolWorker-%d: %s", s->index + 1,
                 strerror(errno));
        return ZQ_EIO;
    }
    /* a fresh child: nothing taken, started or written yet */
    __atomic_store_n(&p->shm->child[s->index].running, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&p->shm->child[s->index].started, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&p->shm->child[s->index].nrec, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&p->shm->child[s->index].head, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&p->shm->child[s->index].tail, 0, __ATOMIC_SEQ_CST);
    s->nrec = 0;
    /* no signal handler may run in the child before it resets them */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        close(up[0]);
        close(p->jobq[1]);
        /* siblings' pipes: holding them would hide their deaths (no EOF) */
        for (int i = 0; i < p->n; i++)
            if (p->slots[i].from_child >= 0)
                close(p->slots[i].from_child);
        s_out_discard(p); /* the body files of jobs not sent yet are not ours either */
        s_child_main(p, s->index, p->jobq[0], up[1]);
    }
    int e = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(up[1]);
    if (pid < 0) {
        ZQ_ERROR("pool: cannot fork ForkPoolWorker-%d: %s", s->index + 1, strerror(e));
        close(up[0]);
        return ZQ_EIO;
    }
    fcntl(up[0], F_SETFL, fcntl(up[0], F_GETFL) | O_NONBLOCK);
    s->pid = pid;
    s->gen = p->gen;
    s->from_child = up[0];
    s->in_len = 0;
    s->running = 0;
    ZQ_DEBUG("pool: started ForkPoolWorker-%d (pid %ld)", s->index + 1, (long)pid);
    return ZQ_OK;
}

#define MMSG_MAX 64 /* job messages per sendmmsg() */

/* Jobs per message for `waiting` inline jobs queued: while jobs are short (PACK_RUN) they
 * are shared out among the children in packs (one recvmsg() for several jobs), at most
 * PACK_MAX each so that no child sits on work another could take; else one per message. */
static unsigned s_pack_size(const zq_pool_t *p, unsigned waiting)
{
    if (waiting < 2 || !(p->avg_run < PACK_RUN))
        return 1;
    unsigned k = (waiting + (unsigned)p->n - 1) / (unsigned)p->n;
    return k > PACK_MAX ? PACK_MAX : k;
}

/* Send the inline jobs at the head of p->out with one sendmmsg(), one or a pack of them per
 * message: how many messages went out, 0 when the first job is big (s_send_job's), -1 when
 * the queue is full, -2 on error. */
static int s_send_inline_run(zq_pool_t *p)
{
    struct mmsghdr mv[MMSG_MAX];
    struct iovec iov[MMSG_MAX];
    unsigned jobs[MMSG_MAX];
    /* records are contiguous in p->out: a pack is one span of it */
    unsigned waiting = 0;
    for (size_t off = p->out_off;
         waiting < MMSG_MAX * PACK_MAX && p->out_len - off >= sizeof(s_task_hdr_t);
         waiting++) {
        s_task_hdr_t h;
        memcpy(&h, p->out + off, sizeof h);
        if (h.big)
            break;
        off += sizeof h + h.len;
    }
    unsigned pack = s_pack_size(p, waiting);
    size_t room = sizeof(s_task_hdr_t) + p->inline_max; /* a child's message buffer */
    unsigned k = 0;
    size_t off = p->out_off;
    while (k < MMSG_MAX && p->out_len - off >= sizeof(s_task_hdr_t)) {
        s_task_hdr_t h;
        memcpy(&h, p->out + off, sizeof h);
        if (h.big)
            break;
        size_t start = off, size = sizeof h + h.len;
        unsigned nj = 1;
        off += size;
        /* an ETA job travels alone: in a pack it would wait for the jobs before it, and a
         * burst falling due would start in the order the children get through their packs
         * rather than in eta order */
        while (h.eta <= 0 && nj < pack && p->out_len - off >= sizeof(s_task_hdr_t)) {
            memcpy(&h, p->out + off, sizeof h);
            if (h.big || h.eta > 0 || size + sizeof h + h.len > room)
                break;
            size += sizeof h + h.len;
            off += sizeof h + h.len;
            nj++;
        }
        iov[k] = (struct iovec){p->out + start, size};
        memset(&mv[k], 0, sizeof mv[k]);
        mv[k].msg_hdr.msg_iov = &iov[k];
        mv[k].msg_hdr.msg_iovlen = 1;
        jobs[k] = nj;
        k++;
    }
    if (k == 0)
        return 0;
    int n;
    do
        n = sendmmsg(p->jobq[1], mv, k, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return -1;
        ZQ_ERROR("pool: cannot write to the job queue: %s", strerror(errno));
        return -2;
    }
    for (int i = 0; i < n; i++) {
        p->out_off += iov[i].iov_len;
        p->sent_jobs += jobs[i];
    }
    p->sent_msgs += (uint64_t)n;
    return n;
}

/* Send what waits in p->out; 0 when all is out, 1 when some remains, -1 on error. One
 * syscall per run of inline jobs, not one per job: a dispatch pass queues them all first. */
static int s_flush_out(zq_pool_t *p)
{
    while (p->out_len - p->out_off >= sizeof(s_task_hdr_t)) {
        int sent = s_send_inline_run(p);
        if (sent == -1)
            return 1;
        if (sent < -1)
            return -1;
        if (sent > 0)
            continue;
        s_task_hdr_t h;
        memcpy(&h, p->out + p->out_off, sizeof h);
        int rc = s_send_job(p, &h, p->out + p->out_off + sizeof h);
        if (rc != 0)
            return rc;
        p->out_off += sizeof h + (h.big ? 0 : h.len);
        p->sent_jobs++;
        p->sent_msgs++;
    }
    p->out_off = p->out_len = 0;
    if (p->out_cap > BUF_KEEP) {
        free(p->out);
        p->out = NULL;
        p->out_cap = 0;
    }
    return 0;
}

static int s_out_append(zq_pool_t *p, const void *a, size_t alen, const void *b, size_t blen)
{
    if (p->out_off > 0 && p->out_off == p->out_len)
        p->out_off = p->out_len = 0;
    size_t need = p->out_len + alen + blen;
    if (need > p->out_cap) {
        size_t cap = p->out_cap ? p->out_cap : 65536;
        while (cap < need)
            cap *= 2;
        char *nb = realloc(p->out, cap);
        if (!nb)
            return ZQ_ENOMEM;
        p->out = nb;
        p->out_cap = cap;
    }
    memcpy(p->out + p->out_len, a, alen);
    memcpy(p->out + p->out_len + alen, b, blen);
    p->out_len += alen + blen;
    return ZQ_OK;
}

static int s_prefork_submit(zq_pool_t *p, const zq_pool_job_t *job)
{
    if (!job->raw || job->rawlen > ZQ_MAX_MSG_SIZE)
        return ZQ_EINVAL;
    uint64_t seq = p->seq + 1;
    s_pjob_t *j = &p->jobs[seq % RING];
    if (j->ctx)
        return ZQ_ESTATE; /* cannot happen: fewer than RING jobs are ever held */
    /* published before the bytes: a child may read them the moment they are written */
    p->seq = seq;
    j->seq = seq;
    j->ctx = job->ctx;
    j->started = 0;
    p->nqueued++;
    __atomic_store_n(&p->shm->ring[seq % RING], JW(seq, J_QUEUED), __ATOMIC_SEQ_CST);
    s_task_hdr_t h;
    memset(&h, 0, sizeof h);
    h.magic = MAGIC;
    h.len = (uint32_t)job->rawlen;
    h.seq = seq;
    h.hard = job->hard;
    h.soft = job->soft;
    h.eta = job->eta;
    h.type = REC_TASK;
    h.fd = -1;
    if (job->rawlen > p->inline_max) {
        h.big = 1;
        h.fd = s_body_file(job->raw, job->rawlen);
    }
    /* queued here; zq_pool_flush() (or the next zq_pool_dispatch()) sends them */
    int rc = h.big && h.fd < 0 ? -2 : 1;
    if (rc == -2 || s_out_append(p, &h, sizeof h, job->raw, h.big ? 0 : job->rawlen) != ZQ_OK) {
        if (h.fd >= 0)
            close(h.fd);
        __atomic_store_n(&p->shm->ring[seq % RING], JW(seq, J_CANCELLED), __ATOMIC_SEQ_CST);
        s_pjob_forget(p, j);
        return rc == -2 ? ZQ_EIO : ZQ_ENOMEM;
    }
    return ZQ_OK;
}

/* The job queue may have lost a job: hand every queued job back and start a new queue.
 * Children on the old one read EOF and exit; they are replaced with the new one. */
static void s_rebuild(zq_pool_t *p)
{
    ZQ_WARN("pool: a child died idle or while taking a job, or the job queue failed: "
            "rebuilding it (queued tasks are queued again)");
    p->broken = 0;
    s_close(&p->jobq[1]);
    s_close(&p->jobq[0]);
    s_out_discard(p);
    for (uint64_t k = 0; k < RING && k < p->seq; k++) {
        uint64_t seq = p->seq - k;
        s_pjob_t *j = s_pjob(p, seq);
        if (!j || j->started)
            continue;
        if (s_cas(&p->shm->ring[seq % RING], JW(seq, J_QUEUED), JW(seq, J_CANCELLED))) {
            void *ctx = j->ctx;
            s_pjob_forget(p, j);
            s_emit(p, ZQ_POOL_EV_RETURNED, -1, ctx, 0, NULL, 0, 0, 0);
        }
    }
    if (s_job_pipe_open(p) != ZQ_OK)
        p->stopping = 1; /* nothing can run any more; the worker reports the rest lost */
}

/* Report that j began at t (zq_now) in slot s, process pid; running: it is the slot's job now
 * (0: its DONE is what reports it, and the slot may run a later one). */
static void s_started(zq_pool_t *p, s_slot_t *s, s_pjob_t *j, double t, pid_t pid, int running)
{
    j->started = 1;
    p->nqueued--;
    if (running)
        s->running = j->seq;
    s_emit_at(p, ZQ_POOL_EV_STARTED, s->index, j->ctx, 0, NULL, 0, (long)pid, 0, t);
}

/* The job slot's child has started, per shared memory, if not reported yet. */
static s_pjob_t *s_started_unseen(zq_pool_t *p, s_slot_t *s, double *t)
{
    uint64_t seq = __atomic_load_n(&p->shm->child[s->index].started, __ATOMIC_SEQ_CST);
    if (!seq || seq == s->running)
        return NULL;
    s_pjob_t *j = s_pjob(p, seq);
    if (!j || j->started)
        return NULL;
    /* written before `started`; the entry is seq's until the job is forgotten */
    __atomic_load(&p->shm->start_t[seq % RING], t, __ATOMIC_SEQ_CST);
    return j;
}

static void s_child_lost(zq_pool_t *p, s_slot_t *s)
{
    pid_t pid = s->pid;
    int status = 0;
    s_close(&s->from_child);
    /* EOF means it is exiting, or it broke its pipe: either way it is done for */
    kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    /* it died running a job not reported yet: STARTED first, as always (with pid 0 in the
     * slot, so that nothing the callback does signals a pid that may be reused by now) */
    double t;
    s_pjob_t *js = s_started_unseen(p, s, &t);
    s->pid = 0;
    if (js)
        s_started(p, s, js, t, pid, 1);
    uint64_t seq = __atomic_exchange_n(&p->shm->child[s->index].running, 0, __ATOMIC_SEQ_CST);
    uint64_t last = __atomic_exchange_n(&p->shm->child[s->index].last, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&p->shm->child[s->index].soft, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&p->shm->child[s->index].term, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&p->shm->child[s->index].started, 0, __ATOMIC_SEQ_CST);
    s->pid = 0;
    s->in_len = 0;
    s->running = 0;
    void *ctx = NULL;
    s_pjob_t *j = s_pjob(p, seq);
    if (j) {
        ctx = j->ctx;
        if (s_cas(&p->shm->ring[seq % RING], JW(seq, J_QUEUED), JW(seq, J_CANCELLED))) {
            /* it died after taking the job and before starting it: nobody else will */
            s_pjob_forget(p, j);
            s_emit(p, ZQ_POOL_EV_RETURNED, -1, ctx, 0, NULL, 0, 0, 0);
            ctx = NULL;
        } else {
            s_pjob_forget(p, j);
        }
    }
    /* the rest of its pack, which it had not reached: nobody else will run them */
    for (uint64_t q = seq + 1; seq && q <= last && q - seq < PACK_MAX; q++) {
        s_pjob_t *jq = s_pjob(p, q);
        if (!jq)
            continue;
        void *cq = jq->ctx;
        if (s_cas(&p->shm->ring[q % RING], JW(q, J_QUEUED), JW(q, J_CANCELLED))) {
            s_pjob_forget(p, jq);
            s_emit(p, ZQ_POOL_EV_RETURNED, -1, cq, 0, NULL, 0, 0, 0);
        } else {
            /* started, which cannot be (one job at a time, in order): lost with it */
            if (!jq->started)
                s_started(p, s, jq, zq_now(), pid, 1);
            s_pjob_forget(p, jq);
            s_emit(p, ZQ_POOL_EV_LOST, s->index, cq, 0, NULL, 0, (long)pid, status);
        }
    }
    /* dead with no job of ours: it may have died between taking a message off the queue
     * and saying so (`running`), and that job would never run. A child of an older queue
     * cannot have taken one of the current queue's */
    if (!j && !p->stopping && s->gen == p->gen && p->nqueued > 0)
        p->broken = 1;
    /* an idle child leaving cleanly (shutdown, queue rebuilt) is no news */
    if (ctx || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        s_emit(p, ZQ_POOL_EV_LOST, s->index, ctx, 0, NULL, 0, (long)pid, status);
    if (!p->stopping && !p->broken)
        s_spawn(p, s); /* on failure (or after a rebuild) dispatch starts it */
}

/* Handle the complete records in s->in. Returns -1 when the child broke the protocol. */
/* Handle the complete records at the start of buf (len bytes, and room for one more: the
 * payloads are NUL-terminated in place for the callbacks); *used: the bytes they took.
 * Returns -1 when the child broke the protocol. */
static int s_parse_buf(zq_pool_t *p, s_slot_t *s, char *buf, size_t len, size_t *used)
{
    size_t off = 0;
    int rc = 0;
    while (len - off >= sizeof(s_rec_hdr_t)) {
        s_rec_hdr_t h;
        memcpy(&h, buf + off, sizeof h);
        if (h.magic != MAGIC || h.len > ZQ_MAX_MSG_SIZE) {
            rc = -1;
            break;
        }
        if (len - off - sizeof h < h.len)
            break;
        char *json = buf + off + sizeof h;
        /* NUL-terminate in place for the callback; the byte is restored after */
        char saved = json[h.len];
        json[h.len] = '\0';
        s_pjob_t *j = s_pjob(p, h.seq);
        switch (h.type) {
        case REC_EXPIRED:
            s->nrec++;
            if (j) {
                void *ctx = j->ctx;
                s_pjob_forget(p, j);
                s_emit(p, ZQ_POOL_EV_EXPIRED, -1, ctx, 0, NULL, 0, 0, 0);
            }
            break;
        case REC_DONE:
            s->nrec++;
            p->avg_run += (h.run - p->avg_run) / 8;
            /* a short job: nobody saw it start; its record says when. It is over, and the
             * slot may run a later job already (its record waited in the ring), seen first */
            if (j && !j->started)
                s_started(p, s, j, h.time, s->pid, 0);
            if (s->running == h.seq)
                s->running = 0;
            if (j) {
                void *ctx = j->ctx;
                s_pjob_forget(p, j);
                s_emit(p, ZQ_POOL_EV_DONE, s->index, ctx, h.state, h.len ? json : NULL, h.len,
                       (long)s->pid, 0);
            }
            break;
        case REC_SUBMIT:
            s_emit(p, ZQ_POOL_EV_SUBMIT, s->index, j ? j->ctx : NULL, 0, json, h.len,
                   (long)s->pid, 0);
            break;
        case REC_BROKEN:
            p->broken = 1;
            break;
        case REC_BELL: /* the caller reads the ring */
            break;
        default:
            rc = -1;
        }
        json[h.len] = saved;
        if (rc)
            break;
        off += sizeof h + h.len;
    }
    *used = off;
    return rc;
}

/* Handle the complete records in s->in. Returns -1 when the child broke the protocol. */
static int s_parse_records(zq_pool_t *p, s_slot_t *s)
{
    size_t off = 0;
    int rc = s_parse_buf(p, s, s->in, s->in_len, &off);
    if (off > 0) {
        memmove(s->in, s->in + off, s->in_len - off);
        s->in_len -= off;
    }
    if (s->in_len == 0 && s->in_cap > BUF_KEEP) {
        free(s->in);
        s->in = NULL;
        s->in_cap = 0;
    }
    return rc;
}

/* Handle the records in s's ring up to head (read before the pipe: a sub-task's SUBMIT,
 * sent on the pipe before its job's DONE went in the ring, is handled first). Returns -1
 * when they are malformed. */
static int s_read_ring(zq_pool_t *p, s_slot_t *s, uint64_t head)
{
    __typeof__(p->shm->child[0]) *c = &p->shm->child[s->index];
    uint64_t tail = c->tail; /* ours alone to write */
    if (head == tail)
        return 0;
    size_t n = (size_t)(head - tail);
    if (n > RING_BYTES)
        return -1;
    /* +1: room for the NUL that s_parse_buf writes after a payload */
    if (!p->ringbuf && !(p->ringbuf = malloc(RING_BYTES + 1))) {
        ZQ_ERROR("pool: out of memory reading from ForkPoolWorker-%d", s->index + 1);
        return 0; /* the records stay there for the next look */
    }
    size_t off = (size_t)(tail & (RING_BYTES - 1)), first = RING_BYTES - off;
    if (first > n)
        first = n;
    memcpy(p->ringbuf, c->ring + off, first);
    memcpy(p->ringbuf + first, c->ring, n - first);
    __atomic_store_n(&c->tail, head, __ATOMIC_RELEASE);
    size_t used = 0;
    int rc = s_parse_buf(p, s, p->ringbuf, n, &used);
    return rc || used != n ? -1 : 0;
}

static void s_read_child(zq_pool_t *p, s_slot_t *s)
{
    int eof = 0;
    uint64_t head = __atomic_load_n(&p->shm->child[s->index].head, __ATOMIC_ACQUIRE);
    for (;;) {
        /* +1: room for the NUL that s_parse_records writes after a payload */
        if (s->in_cap - s->in_len < READ_CHUNK + 1) {
            size_t cap = s->in_cap ? s->in_cap * 2 : READ_CHUNK * 2;
            while (cap - s->in_len < READ_CHUNK + 1)
                cap *= 2;
            char *nb = realloc(s->in, cap);
            if (!nb) {
                ZQ_ERROR("pool: out of memory reading from ForkPoolWorker-%d", s->index + 1);
                break;
            }
            s->in = nb;
            s->in_cap = cap;
        }
        ssize_t n = read(s->from_child, s->in + s->in_len, s->in_cap - s->in_len - 1);
        if (n > 0) {
            s->in_len += (size_t)n;
            if ((size_t)n < READ_CHUNK)
                break; /* drained for now: poll tells us about the rest */
            continue;
        }
        if (n == 0) {
            eof = 1;
            break;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            eof = 1;
        break;
    }
    if (s_parse_records(p, s) != 0 || s_read_ring(p, s, head) != 0) {
        ZQ_ERROR("pool: ForkPoolWorker-%d (pid %ld) sent a malformed record; replacing it",
                 s->index + 1, (long)s->pid);
        eof = 1;
    }
    /* it may have put more in the ring since, and it is gone: take them too */
    if (eof && s_read_ring(p, s, __atomic_load_n(&p->shm->child[s->index].head,
                                                 __ATOMIC_ACQUIRE)) != 0)
        ZQ_ERROR("pool: ForkPoolWorker-%d (pid %ld) left malformed records", s->index + 1,
                 (long)s->pid);
    if (eof)
        s_child_lost(p, s);
}

/* Children do not say when they start a job (a message per job costs both sides a
 * syscall and the parent a wakeup): report what shared memory shows started, after taking
 * the records waiting in the rings. Outside a pack a child ends one job (DONE in its ring,
 * and a bell) before it starts the next, so with every live child known busy and none in a
 * pack nothing can start unseen; zq_pool_due() tells the main loop when to look again. */
static void s_scan(zq_pool_t *p)
{
    for (int i = 0; i < p->n; i++) {
        s_slot_t *s = &p->slots[i];
        if (s->pid <= 0)
            continue;
        /* records put in the ring without a bell (the child is in the middle of a pack) */
        if (s_read_ring(p, s, __atomic_load_n(&p->shm->child[i].head, __ATOMIC_ACQUIRE)) != 0) {
            ZQ_ERROR("pool: ForkPoolWorker-%d (pid %ld) sent a malformed record; replacing it",
                     i + 1, (long)s->pid);
            kill(s->pid, SIGKILL); /* its pipe's EOF follows: s_child_lost */
            continue;
        }
        double t;
        s_pjob_t *j = s_started_unseen(p, s, &t);
        if (!j)
            continue;
        if (__atomic_load_n(&p->shm->child[i].nrec, __ATOMIC_SEQ_CST) != s->nrec) {
            /* it ended something since: that DONE comes first (a slot runs one job) */
            pid_t pid = s->pid;
            s_read_child(p, s);
            if (s->pid != pid || !(j = s_started_unseen(p, s, &t)))
                continue;
        }
        s_started(p, s, j, t, s->pid, 1);
    }
    p->scanned = zq_mono();
}

static int s_prefork_init(zq_pool_t *p)
{
    p->jobq[0] = p->jobq[1] = -1;
    p->jobs = calloc(RING, sizeof *p->jobs);
    p->shm_size = sizeof(s_shm_t) + (size_t)p->n * sizeof p->shm->child[0];
    void *m = mmap(NULL, p->shm_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (!p->jobs || m == MAP_FAILED) {
        ZQ_ERROR("pool: cannot set up shared memory: %s", strerror(errno));
        return ZQ_ENOMEM;
    }
    p->shm = m; /* zero-filled */
    p->avg_run = 2 * PACK_RUN; /* no packs until a few short runs are seen */
    double none = INFINITY;
    __atomic_store(&p->shm->lease, &none, __ATOMIC_SEQ_CST);
    if (s_job_pipe_open(p) != ZQ_OK)
        return ZQ_EIO;
    for (int i = 0; i < p->n; i++)
        if (s_spawn(p, &p->slots[i]) != ZQ_OK)
            return ZQ_EIO;
    return ZQ_OK;
}

/* ---------------------------------------------------------------------------------------
 * Threads
 */
static void s_queue_push(zq_pool_t *p, s_event_t *ev)
{
    pthread_mutex_lock(&p->mu);
    int was_empty = p->q_head == NULL;
    if (p->q_tail)
        p->q_tail->next = ev;
    else
        p->q_head = ev;
    p->q_tail = ev;
    pthread_mutex_unlock(&p->mu);
    if (was_empty) {
        ssize_t w;
        do
            w = write(p->wake[1], "x", 1);
        while (w < 0 && errno == EINTR);
        /* EAGAIN: the pipe is full of wake-ups already, which is just as good */
    }
}

/* Queue an event from a pool thread; takes ownership of json. */
static void s_thread_event(zq_pool_t *p, zq_pool_ev_kind_t kind, int slot, void *ctx, int state,
                           char *json, size_t len)
{
    s_event_t *ev = calloc(1, sizeof *ev);
    if (ev)
        ev->time = kind == ZQ_POOL_EV_STARTED ? zq_now() : 0;
    if (!ev) {
        /* the worker never learns of it: say so where someone will see it */
        ZQ_ERROR("pool: out of memory: an event about a task was lost");
        free(json);
        return;
    }
    ev->kind = kind;
    ev->slot = slot;
    ev->ctx = ctx;
    ev->state = (zq_outcome_state_t)state;
    ev->json = json;
    ev->len = len;
    s_queue_push(p, ev);
}

static int s_thread_emit(void *arg, const char *cmd, const char *json, size_t len)
{
    s_slot_t *s = arg;
    if (strcmp(cmd, ZQ_CMD_SUBMIT) != 0)
        return ZQ_EINVAL;
    char *copy = malloc(len + 1);
    if (!copy)
        return ZQ_ENOMEM;
    memcpy(copy, json, len);
    copy[len] = '\0';
    s_thread_event(s->pool, ZQ_POOL_EV_SUBMIT, s->index, NULL, 0, copy, len);
    return ZQ_OK;
}

/* Decode and run a job from its parsed body; out is empty when it could not run (the main
 * loop checked the message, so only ENOMEM gets there). */
static void s_run_body(zq_pool_t *p, s_slot_t *s, const cJSON *body, double hard, double soft,
                       zq_emit_fn *emit, void *emit_arg, zq_outcome_t *out)
{
    zq_request_t r;
    char err[256];
    memset(out, 0, sizeof *out);
    if (zq_exec_decode(&r, body, err, sizeof err) == ZQ_OK) {
        const zq_task_entry_t *t = zq_loader_find(p->cfg.loader, r.task);
        if (t) {
            r.hostname = p->cfg.worker;
            r.hard = hard;
            r.soft = soft;
            zq_exec_env_t env = {p->cfg.worker, emit, emit_arg, &s->soft_flag};
            zq_exec_run(t, &r, &env, out);
        }
    }
    zq_request_clear(&r);
}

static void *s_thread_main(void *arg)
{
    s_slot_t *s = arg;
    zq_pool_t *p = s->pool;
    char name[48];
    snprintf(name, sizeof name, "ThreadPoolWorker-%d", s->index + 1);
    zq_log_set_process_name(name);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        /* past the lease a queued job waits: see zq_pool_set_lease() */
        while (!p->stop && (!p->t_head || zq_mono() >= p->lease))
            pthread_cond_wait(&p->work_cv, &p->mu);
        if (p->stop)
            break;
        /* handed in ahead of its eta: wait for it here, the job still in the queue (so that
         * it can be taken back); a new job or a cancel wakes us to look again */
        struct timespec due;
        if (s_eta_deadline(p->t_head->eta, &due)) {
            pthread_cond_timedwait(&p->work_cv, &p->mu, &due);
            continue;
        }
        s_tjob_t *job = p->t_head;
        p->t_head = job->next;
        if (!p->t_head)
            p->t_tail = NULL;
        __atomic_fetch_sub(&p->nqueued, 1, __ATOMIC_RELAXED);
        s->running_ctx = job->ctx;
        __atomic_store_n(&s->soft_flag, 0, __ATOMIC_SEQ_CST);
        pthread_mutex_unlock(&p->mu);
        if (job->expires > 0 && job->expires <= zq_now()) {
            s_thread_event(p, ZQ_POOL_EV_EXPIRED, -1, job->ctx, 0, NULL, 0);
        } else {
            s_thread_event(p, ZQ_POOL_EV_STARTED, s->index, job->ctx, 0, NULL, 0);
            zq_outcome_t out;
            s_run_body(p, s, job->body, job->hard, job->soft, s_thread_emit, s, &out);
            pthread_mutex_lock(&p->mu);
            s->running_ctx = NULL;
            pthread_mutex_unlock(&p->mu);
            s_thread_event(p, ZQ_POOL_EV_DONE, s->index, job->ctx, out.state, out.json, out.len);
        }
        free(job);
        pthread_mutex_lock(&p->mu);
        s->running_ctx = NULL;
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static int s_threads_init(zq_pool_t *p)
{
    if (pipe2(p->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        ZQ_ERROR("pool: cannot create the wake-up pipe: %s", strerror(errno));
        return ZQ_EIO;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    p->sync_init = 1;
    /* signals belong to the main loop: pool threads block them all */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = 0;
    for (int i = 0; i < p->n && rc == 0; i++) {
        rc = pthread_create(&p->slots[i].thread, NULL, s_thread_main, &p->slots[i]);
        if (rc == 0)
            p->slots[i].started = 1;
        else
            ZQ_ERROR("pool: cannot start ThreadPoolWorker-%d: %s", i + 1, strerror(rc));
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc == 0 ? ZQ_OK : ZQ_EIO;
}

/* ---------------------------------------------------------------------------------------
 * Solo
 */
static int s_solo_emit(void *arg, const char *cmd, const char *json, size_t len)
{
    s_slot_t *s = arg;
    if (strcmp(cmd, ZQ_CMD_SUBMIT) != 0)
        return ZQ_EINVAL;
    s_emit(s->pool, ZQ_POOL_EV_SUBMIT, s->index, NULL, 0, json, len, (long)getpid(), 0);
    return ZQ_OK;
}

static int s_solo_submit(zq_pool_t *p, const zq_pool_job_t *job)
{
    if (!job->body)
        return ZQ_EINVAL;
    long pid = (long)getpid();
    if (job->expires > 0 && job->expires <= zq_now()) {
        s_emit(p, ZQ_POOL_EV_EXPIRED, -1, job->ctx, 0, NULL, 0, 0, 0);
        return ZQ_OK;
    }
    s_slot_t *s = &p->slots[0];
    s_emit_at(p, ZQ_POOL_EV_STARTED, 0, job->ctx, 0, NULL, 0, pid, 0, zq_now());
    zq_outcome_t out;
    s_run_body(p, s, job->body, job->hard, job->soft, s_solo_emit, s, &out);
    s_emit(p, ZQ_POOL_EV_DONE, 0, job->ctx, out.state, out.json, out.len, pid, 0);
    zq_outcome_clear(&out);
    return ZQ_OK;
}

/* ---------------------------------------------------------------------------------------
 * Interface
 */
zq_pool_t *zq_pool_new(const zq_pool_config_t *cfg)
{
    if (!cfg || !cfg->loader || !cfg->on_event || cfg->concurrency < 1)
        return NULL;
    zq_pool_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->cfg = *cfg;
    p->n = cfg->kind == ZQ_POOL_SOLO ? 1 : cfg->concurrency;
    p->qmax = p->n * 4 > QUEUE_MIN ? p->n * 4 : QUEUE_MIN;
    if (p->qmax > RING / 4)
        p->qmax = RING / 4;
    p->wake[0] = p->wake[1] = -1;
    p->jobq[0] = p->jobq[1] = -1;
    p->lease = INFINITY;
    p->slots = calloc((size_t)p->n, sizeof *p->slots);
    if (!p->slots) {
        free(p);
        return NULL;
    }
    for (int i = 0; i < p->n; i++) {
        p->slots[i].pool = p;
        p->slots[i].index = i;
        p->slots[i].from_child = -1;
    }
    int rc = ZQ_OK;
    if (cfg->kind == ZQ_POOL_PREFORK)
        rc = s_prefork_init(p);
    else if (cfg->kind == ZQ_POOL_THREADS)
        rc = s_threads_init(p);
    if (rc != ZQ_OK) {
        zq_pool_destroy(&p, 1);
        return NULL;
    }
    return p;
}

void zq_pool_destroy(zq_pool_t **self_p, int cold)
{
    if (!self_p || !*self_p)
        return;
    zq_pool_t *p = *self_p;
    p->stopping = 1;
    if (p->cfg.kind == ZQ_POOL_PREFORK) {
        /* no child may wait on the lease for ever (what is queued runs, as before leases) */
        zq_pool_set_lease(p, INFINITY);
        /* EOF on the job pipe makes idle children exit */
        s_close(&p->jobq[1]);
        s_close(&p->jobq[0]);
        s_out_discard(p);
        for (int i = 0; i < p->n; i++) {
            s_slot_t *s = &p->slots[i];
            if (cold && s->pid > 0)
                kill(s->pid, SIGKILL);
            /* close first: a child still writing a result gets EPIPE instead of blocking */
            s_close(&s->from_child);
        }
        for (int i = 0; i < p->n; i++) {
            s_slot_t *s = &p->slots[i];
            if (s->pid > 0) {
                int status;
                while (waitpid(s->pid, &status, 0) < 0 && errno == EINTR)
                    ;
            }
            free(s->in);
        }
        if (p->shm)
            munmap(p->shm, p->shm_size);
        free(p->jobs);
        free(p->ringbuf);
        free(p->out);
    } else if (p->cfg.kind == ZQ_POOL_THREADS && p->sync_init) {
        pthread_mutex_lock(&p->mu);
        p->stop = 1;
        int busy = 0;
        for (int i = 0; i < p->n; i++)
            busy |= p->slots[i].running_ctx != NULL;
        pthread_cond_broadcast(&p->work_cv);
        pthread_mutex_unlock(&p->mu);
        if (cold && busy) {
            /* a running task cannot be stopped: leave the threads to the process exit */
            *self_p = NULL;
            return;
        }
        for (int i = 0; i < p->n; i++)
            if (p->slots[i].started)
                pthread_join(p->slots[i].thread, NULL);
        for (s_tjob_t *j = p->t_head, *next; j; j = next) {
            next = j->next;
            free(j);
        }
        for (s_event_t *ev = p->q_head, *next; ev; ev = next) {
            next = ev->next;
            free(ev->json);
            free(ev);
        }
        pthread_cond_destroy(&p->work_cv);
        pthread_mutex_destroy(&p->mu);
    }
    s_close(&p->wake[0]);
    s_close(&p->wake[1]);
    free(p->slots);
    free(p);
    *self_p = NULL;
}

zq_pool_kind_t zq_pool_kind(const zq_pool_t *self)
{
    return self->cfg.kind;
}

int zq_pool_size(const zq_pool_t *self)
{
    return self ? self->n : 0;
}

int zq_pool_room(const zq_pool_t *self)
{
    if (!self || self->stopping || self->broken)
        return 0;
    if (self->cfg.kind == ZQ_POOL_SOLO)
        return 1;
    /* pool threads decrement it under the lock; a stale read only delays a submit */
    int room = self->qmax - __atomic_load_n(&self->nqueued, __ATOMIC_RELAXED);
    return room > 0 ? room : 0;
}

int zq_pool_submit(zq_pool_t *self, const zq_pool_job_t *job)
{
    if (!self || !job)
        return ZQ_EINVAL;
    if (zq_pool_room(self) <= 0)
        return ZQ_ESTATE;
    switch (self->cfg.kind) {
    case ZQ_POOL_PREFORK:
        return s_prefork_submit(self, job);
    case ZQ_POOL_THREADS: {
        if (!job->body)
            return ZQ_EINVAL;
        s_tjob_t *t = calloc(1, sizeof *t);
        if (!t)
            return ZQ_ENOMEM;
        t->ctx = job->ctx;
        t->body = job->body;
        t->hard = job->hard;
        t->soft = job->soft;
        t->expires = job->expires;
        t->eta = job->eta;
        pthread_mutex_lock(&self->mu);
        if (self->t_tail)
            self->t_tail->next = t;
        else
            self->t_head = t;
        self->t_tail = t;
        __atomic_fetch_add(&self->nqueued, 1, __ATOMIC_RELAXED);
        pthread_cond_signal(&self->work_cv);
        pthread_mutex_unlock(&self->mu);
        return ZQ_OK;
    }
    case ZQ_POOL_SOLO:
        return s_solo_submit(self, job);
    }
    return ZQ_EINVAL;
}

void zq_pool_set_lease(zq_pool_t *self, double until)
{
    if (!self)
        return;
    if (self->cfg.kind == ZQ_POOL_PREFORK && self->shm) {
        __atomic_store(&self->shm->lease, &until, __ATOMIC_SEQ_CST);
    } else if (self->cfg.kind == ZQ_POOL_THREADS && self->sync_init) {
        pthread_mutex_lock(&self->mu);
        self->lease = until;
        pthread_cond_broadcast(&self->work_cv);
        pthread_mutex_unlock(&self->mu);
    }
}

int zq_pool_cancel(zq_pool_t *self, void *ctx)
{
    if (!self)
        return ZQ_EINVAL;
    if (self->cfg.kind == ZQ_POOL_PREFORK) {
        s_pjob_t *j = s_pjob_by_ctx(self, ctx);
        if (!j || j->started ||
            !s_cas(&self->shm->ring[j->seq % RING], JW(j->seq, J_QUEUED), JW(j->seq, J_CANCELLED)))
            return ZQ_ESTATE;
        s_pjob_forget(self, j); /* its bytes stay in the pipe; the child that reads them skips */
        return ZQ_OK;
    }
    if (self->cfg.kind == ZQ_POOL_THREADS) {
        int rc = ZQ_ESTATE;
        pthread_mutex_lock(&self->mu);
        for (s_tjob_t **pp = &self->t_head, *prev = NULL; *pp; prev = *pp, pp = &(*pp)->next)
            if ((*pp)->ctx == ctx) {
                s_tjob_t *t = *pp;
                *pp = t->next;
                if (self->t_tail == t)
                    self->t_tail = prev;
                __atomic_fetch_sub(&self->nqueued, 1, __ATOMIC_RELAXED);
                free(t);
                rc = ZQ_OK;
                break;
            }
        pthread_mutex_unlock(&self->mu);
        return rc;
    }
    return ZQ_ESTATE; /* solo never holds a job */
}

long zq_pool_pid(const zq_pool_t *self, int slot)
{
    if (!self || slot < 0 || slot >= self->n)
        return 0;
    if (self->cfg.kind == ZQ_POOL_PREFORK)
        return (long)self->slots[slot].pid;
    return (long)getpid();
}

int zq_pool_pids(const zq_pool_t *self, long *pids, int max)
{
    if (!self || max <= 0)
        return 0;
    if (self->cfg.kind != ZQ_POOL_PREFORK) {
        pids[0] = (long)getpid();
        return 1;
    }
    int n = 0;
    for (int i = 0; i < self->n && n < max; i++)
        if (self->slots[i].pid > 0)
            pids[n++] = (long)self->slots[i].pid;
    return n;
}

/* The seq slot runs, if it is ctx's (prefork). */
static uint64_t s_running_seq(zq_pool_t *p, int slot, void *ctx)
{
    s_slot_t *s = &p->slots[slot];
    s_pjob_t *j = s_pjob(p, s->running);
    if (s->pid <= 0 || !j || j->ctx != ctx ||
        __atomic_load_n(&p->shm->child[slot].running, __ATOMIC_SEQ_CST) != s->running)
        return 0;
    return s->running;
}

int zq_pool_soft_limit(zq_pool_t *self, int slot, void *ctx)
{
    if (!self || slot < 0 || slot >= self->n)
        return ZQ_EINVAL;
    s_slot_t *s = &self->slots[slot];
    switch (self->cfg.kind) {
    case ZQ_POOL_PREFORK: {
        uint64_t seq = s_running_seq(self, slot, ctx);
        if (!seq)
            return ZQ_ESTATE;
        __atomic_store_n(&self->shm->child[slot].soft, seq, __ATOMIC_SEQ_CST);
        return kill(s->pid, SIGUSR1) == 0 ? ZQ_OK : ZQ_ESTATE;
    }
    case ZQ_POOL_THREADS: {
        int rc = ZQ_ESTATE;
        pthread_mutex_lock(&self->mu);
        if (s->running_ctx == ctx) {
            __atomic_store_n(&s->soft_flag, 1, __ATOMIC_SEQ_CST);
            rc = ZQ_OK;
        }
        pthread_mutex_unlock(&self->mu);
        return rc;
    }
    case ZQ_POOL_SOLO:
        break;
    }
    return ZQ_ESTATE;
}

void zq_pool_flush(zq_pool_t *self)
{
    if (!self || self->cfg.kind != ZQ_POOL_PREFORK || self->broken)
        return;
    /* a failed queue is rebuilt, and what it held handed back, in zq_pool_dispatch() */
    if (self->out_off < self->out_len && s_flush_out(self) < 0)
        self->broken = 1;
}

int zq_pool_kill(zq_pool_t *self, int slot, void *ctx, int signum)
{
    if (!self || slot < 0 || slot >= self->n)
        return ZQ_EINVAL;
    uint64_t seq = self->cfg.kind == ZQ_POOL_PREFORK ? s_running_seq(self, slot, ctx) : 0;
    if (!seq)
        return ZQ_ESTATE;
    /* children ignore catchable termination signals unless they are meant for their job */
    __atomic_store_n(&self->shm->child[slot].term, seq, __ATOMIC_SEQ_CST);
    return kill(self->slots[slot].pid, signum) == 0 ? ZQ_OK : ZQ_EIO;
}

void zq_pool_counts(const zq_pool_t *self, uint64_t *jobs, uint64_t *messages)
{
    *jobs = self ? self->sent_jobs : 0;
    *messages = self ? self->sent_msgs : 0;
}

int zq_pool_can_kill(const zq_pool_t *self)
{
    return self && self->cfg.kind == ZQ_POOL_PREFORK;
}

int zq_pool_pollitems(const zq_pool_t *self, zmq_pollitem_t *items, int max)
{
    int n = 0;
    if (!self)
        return 0;
    if (self->cfg.kind == ZQ_POOL_PREFORK) {
        if (self->out_off < self->out_len && self->jobq[1] >= 0 && n < max) {
            memset(&items[n], 0, sizeof items[n]);
            items[n].fd = self->jobq[1];
            items[n].events = ZMQ_POLLOUT;
            n++;
        }
        for (int i = 0; i < self->n && n < max; i++)
            if (self->slots[i].from_child >= 0) {
                memset(&items[n], 0, sizeof items[n]);
                items[n].fd = self->slots[i].from_child;
                items[n].events = ZMQ_POLLIN;
                n++;
            }
    } else if (self->cfg.kind == ZQ_POOL_THREADS && max > 0) {
        memset(&items[0], 0, sizeof items[0]);
        items[0].fd = self->wake[0];
        items[0].events = ZMQ_POLLIN;
        n = 1;
    }
    return n;
}

double zq_pool_due(const zq_pool_t *self)
{
    if (!self || self->cfg.kind != ZQ_POOL_PREFORK || !self->shm)
        return 0;
    /* a child in the middle of a pack rings only at its end: the records of the jobs it
     * ended wait in its ring, and it may have started the next job unseen */
    for (int i = 0; i < self->n; i++)
        if (self->slots[i].pid > 0 &&
            (__atomic_load_n(&self->shm->child[i].last, __ATOMIC_ACQUIRE) ||
             __atomic_load_n(&self->shm->child[i].head, __ATOMIC_ACQUIRE) !=
                 self->shm->child[i].tail))
            return self->scanned + SCAN_EVERY;
    if (self->nqueued <= 0)
        return 0;
    /* past the lease no child starts anything until zq_pool_set_lease */
    double lease;
    __atomic_load(&self->shm->lease, &lease, __ATOMIC_SEQ_CST);
    if (zq_mono() >= lease)
        return 0;
    /* a child we do not know busy may start a queued job any moment */
    for (int i = 0; i < self->n; i++)
        if (self->slots[i].pid > 0 && !self->slots[i].running)
            return self->scanned + SCAN_EVERY;
    return 0;
}

void zq_pool_dispatch(zq_pool_t *self, const zmq_pollitem_t *items, int n)
{
    if (!self)
        return;
    if (self->cfg.kind == ZQ_POOL_PREFORK) {
        for (int k = 0; k < n; k++) {
            if (!items[k].revents)
                continue;
            if (items[k].fd == self->jobq[1]) {
                if (s_flush_out(self) < 0)
                    self->broken = 1;
                continue;
            }
            for (int i = 0; i < self->n; i++)
                if (self->slots[i].from_child == items[k].fd) {
                    s_read_child(self, &self->slots[i]);
                    break;
                }
        }
        s_scan(self);
        /* jobs appended while the pipe was full go out as soon as it drains */
        if (self->out_off < self->out_len && !self->broken && s_flush_out(self) < 0)
            self->broken = 1;
        if (self->broken && !self->stopping)
            s_rebuild(self);
        if (!self->stopping)
            for (int i = 0; i < self->n; i++)
                if (self->slots[i].pid <= 0)
                    s_spawn(self, &self->slots[i]);
    } else if (self->cfg.kind == ZQ_POOL_THREADS) {
        char buf[256];
        while (read(self->wake[0], buf, sizeof buf) > 0)
            ;
        pthread_mutex_lock(&self->mu);
        s_event_t *ev = self->q_head;
        self->q_head = self->q_tail = NULL;
        pthread_mutex_unlock(&self->mu);
        long pid = (long)getpid();
        while (ev) {
            s_event_t *next = ev->next;
            s_emit_at(self, ev->kind, ev->slot, ev->ctx, ev->state, ev->json, ev->len, pid, 0,
                      ev->time);
            free(ev->json);
            free(ev);
            ev = next;
        }
    }
}
