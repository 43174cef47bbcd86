/*
 * zq_pool - prefork, threads and solo pools behind one interface (see zq_pool.h).
 *
 * Prefork pipe records (native byte order: both ends are the same binary):
 *   parent -> child   [s_task_hdr_t: len, 'T', hard, soft][len bytes: TASK body as received]
 *   child -> parent   [s_rec_hdr_t: len, 'D' | 'U', state][len bytes: STATE | SUBMIT body]
 * The parent reads children's pipes non-blocking into a per-slot buffer, so a child writing
 * a big result never stalls the main loop; a child blocks writing until the parent reads,
 * which is fine: it has nothing else to do. A child is idle whenever the parent hands it a
 * job, so the parent's blocking write drains at once.
 */
#include "config.h"
#include "zq_pool.h"
#include "zq_log.h"
#include "zq_proto.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define REC_TASK 'T'
#define REC_DONE 'D'
#define REC_SUBMIT 'U'
/* Read chunk from a child's pipe (bytes); a pipe holds 64 KiB by default. */
#define READ_CHUNK 65536
/* A child's input buffer larger than this is shrunk back once empty (bytes). */
#define BUF_KEEP (1024 * 1024)

typedef struct {
    uint32_t len;   /* payload bytes */
    uint8_t type;   /* REC_DONE or REC_SUBMIT */
    uint8_t state;  /* REC_DONE: zq_outcome_state_t */
    uint8_t pad[2];
} s_rec_hdr_t;

typedef struct {
    uint32_t len;   /* payload bytes */
    uint8_t type;   /* REC_TASK */
    uint8_t pad[3];
    double hard;    /* effective limits, seconds; 0 = none */
    double soft;
} s_task_hdr_t;

/* A queued event (threads pool). */
typedef struct s_event {
    zq_pool_ev_kind_t kind;
    int slot;
    zq_outcome_state_t state;
    char *json; /* owned */
    size_t len;
    struct s_event *next;
} s_event_t;

typedef struct {
    struct zq_pool *pool;
    int index;
    int busy;                         /* main thread's view: a job was submitted, no end yet */
    /* prefork */
    pid_t pid;                        /* 0: no child (fork failed; retried by dispatch) */
    int to_child;                     /* write end of the child's job pipe, or -1 */
    int from_child;                   /* read end of the child's result pipe (O_NONBLOCK) */
    char *in;                         /* partial records read from the child */
    size_t in_len, in_cap;
    /* threads */
    pthread_t thread;
    int started;                      /* 1 once the thread runs */
    pthread_cond_t cv;                /* signalled when a job or stop arrives */
    int has_job;                      /* under pool->mu */
    const cJSON *body;                /* the job (under pool->mu) */
    double hard, soft;
    volatile sig_atomic_t soft_flag;  /* the task's soft-limit flag */
} s_slot_t;

struct zq_pool {
    zq_pool_config_t cfg;
    int n;
    s_slot_t *slots;
    int stopping;                     /* 1: do not replace children */
    /* threads */
    pthread_mutex_t mu;
    int stop;                         /* under mu */
    s_event_t *q_head, *q_tail;       /* events from threads, under mu */
    int wake[2];                      /* written when the queue becomes non-empty */
    int sync_init;                    /* 1: mu/cv initialised */
};

/* Soft-limit flag of a prefork child (one task at a time per process). */
static volatile sig_atomic_t s_child_soft;

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

/* 0 when len bytes were read, 1 on EOF before any byte, -1 on error or a short read. */
static int s_read_all(int fd, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, (char *)buf + got, len - got);
        if (n == 0)
            return got == 0 ? 1 : -1;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        got += (size_t)n;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Prefork: the child side
 */
static void s_on_usr1(int sig)
{
    (void)sig;
    s_child_soft = 1;
}

static int s_child_send(int fd, uint8_t type, uint8_t state, const char *json, size_t len)
{
    s_rec_hdr_t h;
    memset(&h, 0, sizeof h);
    h.len = (uint32_t)len;
    h.type = type;
    h.state = state;
    struct iovec iov[2] = {{&h, sizeof h}, {(void *)json, len}};
    return s_write_all(fd, iov, len ? 2 : 1);
}

static int s_child_emit(void *arg, const char *cmd, const char *json, size_t len)
{
    if (strcmp(cmd, ZQ_CMD_SUBMIT) != 0)
        return ZQ_EINVAL;
    if (len > ZQ_MAX_MSG_SIZE)
        return ZQ_EINVAL;
    return s_child_send(*(int *)arg, REC_SUBMIT, 0, json, len) == 0 ? ZQ_OK : ZQ_EIO;
}

static void s_child_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGTERM, &sa, NULL); /* terminate / cold shutdown kill us */
    sigaction(SIGQUIT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGCHLD, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGINT, &sa, NULL);  /* Ctrl-C hits the whole group: the parent decides */
    sigaction(SIGPIPE, &sa, NULL); /* a dead parent shows up as EPIPE */
    sa.sa_handler = s_on_usr1;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, NULL);
}

__attribute__((noreturn)) static void s_child_main(zq_pool_t *p, int slot, int in_fd, int out_fd)
{
    char name[48];
    snprintf(name, sizeof name, "ForkPoolWorker-%d", slot + 1);
    zq_log_set_process_name(name);
    s_child_signals();
    zq_exec_env_t env = {p->cfg.worker, s_child_emit, &out_fd, &s_child_soft};
    for (;;) {
        s_task_hdr_t h;
        int rc = s_read_all(in_fd, &h, sizeof h);
        if (rc != 0)
            _exit(0); /* the parent closed our pipe: shutdown */
        if (h.type != REC_TASK || h.len > ZQ_MAX_MSG_SIZE)
            _exit(3); /* cannot happen with our own parent; the parent reports us lost */
        char *buf = malloc((size_t)h.len + 1);
        if (!buf || s_read_all(in_fd, buf, h.len) != 0)
            _exit(4);
        cJSON *body = cJSON_ParseWithLength(buf, h.len);
        free(buf);
        zq_request_t r;
        zq_outcome_t out;
        memset(&out, 0, sizeof out);
        char err[256];
        const zq_task_entry_t *t = NULL;
        memset(&r, 0, sizeof r);
        if (body && zq_exec_decode(&r, body, err, sizeof err) == ZQ_OK)
            t = zq_loader_find(p->cfg.loader, r.task);
        if (t) {
            r.hostname = p->cfg.worker;
            r.hard = h.hard;
            r.soft = h.soft;
            s_child_soft = 0;
            zq_exec_run(t, &r, &env, &out);
        }
        /* an empty DONE tells the parent that it must report the failure itself */
        if (s_child_send(out_fd, REC_DONE, (uint8_t)out.state, out.json, out.json ? out.len : 0))
            _exit(0); /* the parent is gone */
        zq_outcome_clear(&out);
        zq_request_clear(&r);
        cJSON_Delete(body);
    }
}

/* ---------------------------------------------------------------------------------------
 * Prefork: the parent side
 */
static void s_close(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static int s_spawn(zq_pool_t *p, s_slot_t *s)
{
    int down[2], up[2];
    if (pipe2(down, O_CLOEXEC) != 0) {
        ZQ_ERROR("pool: cannot create a pipe for ForkPoolWorker-%d: %s", s->index + 1,
                 strerror(errno));
        return ZQ_EIO;
    }
    if (pipe2(up, O_CLOEXEC) != 0) {
        ZQ_ERROR("pool: cannot create a pipe for ForkPoolWorker-%d: %s", s->index + 1,
                 strerror(errno));
        close(down[0]);
        close(down[1]);
        return ZQ_EIO;
    }
    /* no signal handler may run in the child before it resets them */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        close(down[1]);
        close(up[0]);
        /* siblings' pipes: holding them would hide their deaths (no EOF) */
        for (int i = 0; i < p->n; i++) {
            if (&p->slots[i] == s)
                continue;
            if (p->slots[i].to_child >= 0)
                close(p->slots[i].to_child);
            if (p->slots[i].from_child >= 0)
                close(p->slots[i].from_child);
        }
        s_child_main(p, s->index, down[0], up[1]);
    }
    int e = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(down[0]);
    close(up[1]);
    if (pid < 0) {
        ZQ_ERROR("pool: cannot fork ForkPoolWorker-%d: %s", s->index + 1, strerror(e));
        close(down[1]);
        close(up[0]);
        return ZQ_EIO;
    }
    fcntl(up[0], F_SETFL, fcntl(up[0], F_GETFL) | O_NONBLOCK);
    s->pid = pid;
    s->to_child = down[1];
    s->from_child = up[0];
    s->busy = 0;
    s->in_len = 0;
    ZQ_DEBUG("pool: started ForkPoolWorker-%d (pid %ld)", s->index + 1, (long)pid);
    return ZQ_OK;
}

static void s_emit_event(zq_pool_t *p, zq_pool_ev_kind_t kind, int slot, int state,
                         const char *json, size_t len)
{
    zq_pool_event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = kind;
    ev.slot = slot;
    ev.state = (zq_outcome_state_t)state;
    ev.json = json;
    ev.len = len;
    p->cfg.on_event(p->cfg.arg, &ev);
}

static void s_child_lost(zq_pool_t *p, s_slot_t *s)
{
    pid_t pid = s->pid;
    int status = 0;
    s_close(&s->to_child);
    s_close(&s->from_child);
    /* EOF means it is exiting, or it broke its pipe: either way it is done for */
    kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    int busy = s->busy;
    s->busy = 0;
    s->pid = 0;
    s->in_len = 0;
    zq_pool_event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = ZQ_POOL_EV_LOST;
    ev.slot = s->index;
    ev.pid = (long)pid;
    ev.status = status;
    ev.busy = busy;
    p->cfg.on_event(p->cfg.arg, &ev);
    if (!p->stopping)
        s_spawn(p, s); /* on failure dispatch retries */
}

/* Handle the complete records in s->in. Returns -1 when the child broke the protocol. */
static int s_parse_records(zq_pool_t *p, s_slot_t *s)
{
    size_t off = 0;
    int rc = 0;
    while (s->in_len - off >= sizeof(s_rec_hdr_t)) {
        s_rec_hdr_t h;
        memcpy(&h, s->in + off, sizeof h);
        if ((h.type != REC_DONE && h.type != REC_SUBMIT) || h.len > ZQ_MAX_MSG_SIZE) {
            rc = -1;
            break;
        }
        if (s->in_len - off - sizeof h < h.len)
            break;
        char *json = s->in + off + sizeof h;
        /* NUL-terminate in place for the callback; the byte is restored after */
        char saved = json[h.len];
        json[h.len] = '\0';
        if (h.type == REC_DONE) {
            s->busy = 0;
            s_emit_event(p, ZQ_POOL_EV_DONE, s->index, h.state, h.len ? json : NULL, h.len);
        } else {
            s_emit_event(p, ZQ_POOL_EV_SUBMIT, s->index, 0, json, h.len);
        }
        json[h.len] = saved;
        off += sizeof h + h.len;
    }
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

static void s_read_child(zq_pool_t *p, s_slot_t *s)
{
    int eof = 0;
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
    if (s_parse_records(p, s) != 0) {
        ZQ_ERROR("pool: ForkPoolWorker-%d (pid %ld) sent a malformed record; replacing it",
                 s->index + 1, (long)s->pid);
        eof = 1;
    }
    if (eof)
        s_child_lost(p, s);
}

/* ---------------------------------------------------------------------------------------
 * Threads: event queue
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

static s_event_t *s_event_new(zq_pool_ev_kind_t kind, int slot, int state, char *json, size_t len)
{
    s_event_t *ev = calloc(1, sizeof *ev);
    if (!ev)
        return NULL;
    ev->kind = kind;
    ev->slot = slot;
    ev->state = (zq_outcome_state_t)state;
    ev->json = json;
    ev->len = len;
    return ev;
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
    s_event_t *ev = s_event_new(ZQ_POOL_EV_SUBMIT, s->index, 0, copy, len);
    if (!ev) {
        free(copy);
        return ZQ_ENOMEM;
    }
    s_queue_push(s->pool, ev);
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
            __atomic_store_n(&s->soft_flag, 0, __ATOMIC_SEQ_CST);
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
        while (!p->stop && !s->has_job)
            pthread_cond_wait(&s->cv, &p->mu);
        if (!s->has_job)
            break;
        const cJSON *body = s->body;
        double hard = s->hard, soft = s->soft;
        pthread_mutex_unlock(&p->mu);
        zq_outcome_t out;
        s_run_body(p, s, body, hard, soft, s_thread_emit, s, &out);
        s_event_t *ev = s_event_new(ZQ_POOL_EV_DONE, s->index, out.state, out.json, out.len);
        if (ev) {
            s_queue_push(p, ev);
        } else {
            /* cannot even say it ended: the slot stays busy; say why in the log */
            ZQ_ERROR("pool: out of memory reporting the end of a task on %s", name);
            free(out.json);
        }
        pthread_mutex_lock(&p->mu);
        s->has_job = 0;
        s->body = NULL;
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* ---------------------------------------------------------------------------------------
 * Solo
 */
static int s_solo_emit(void *arg, const char *cmd, const char *json, size_t len)
{
    s_slot_t *s = arg;
    if (strcmp(cmd, ZQ_CMD_SUBMIT) != 0)
        return ZQ_EINVAL;
    s_emit_event(s->pool, ZQ_POOL_EV_SUBMIT, s->index, 0, json, len);
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
    p->wake[0] = p->wake[1] = -1;
    p->slots = calloc((size_t)p->n, sizeof *p->slots);
    if (!p->slots) {
        free(p);
        return NULL;
    }
    for (int i = 0; i < p->n; i++) {
        p->slots[i].pool = p;
        p->slots[i].index = i;
        p->slots[i].to_child = p->slots[i].from_child = -1;
    }
    if (cfg->kind == ZQ_POOL_PREFORK) {
        for (int i = 0; i < p->n; i++)
            if (s_spawn(p, &p->slots[i]) != ZQ_OK) {
                zq_pool_destroy(&p, 1);
                return NULL;
            }
    } else if (cfg->kind == ZQ_POOL_THREADS) {
        if (pipe2(p->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
            ZQ_ERROR("pool: cannot create the wake-up pipe: %s", strerror(errno));
            zq_pool_destroy(&p, 1);
            return NULL;
        }
        pthread_mutex_init(&p->mu, NULL);
        for (int i = 0; i < p->n; i++)
            pthread_cond_init(&p->slots[i].cv, NULL);
        p->sync_init = 1;
        /* signals belong to the main loop: pool threads block them all */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        for (int i = 0; i < p->n; i++) {
            int rc = pthread_create(&p->slots[i].thread, NULL, s_thread_main, &p->slots[i]);
            if (rc != 0) {
                pthread_sigmask(SIG_SETMASK, &old, NULL);
                ZQ_ERROR("pool: cannot start ThreadPoolWorker-%d: %s", i + 1, strerror(rc));
                zq_pool_destroy(&p, 0);
                return NULL;
            }
            p->slots[i].started = 1;
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
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
        /* EOF on its job pipe makes an idle child exit */
        for (int i = 0; i < p->n; i++) {
            s_close(&p->slots[i].to_child);
            if (cold && p->slots[i].pid > 0)
                kill(p->slots[i].pid, SIGKILL);
        }
        for (int i = 0; i < p->n; i++) {
            s_slot_t *s = &p->slots[i];
            /* close first: a child still writing a result gets EPIPE instead of blocking */
            s_close(&s->from_child);
            if (s->pid > 0) {
                int status;
                while (waitpid(s->pid, &status, 0) < 0 && errno == EINTR)
                    ;
            }
            free(s->in);
        }
    } else if (p->cfg.kind == ZQ_POOL_THREADS && p->sync_init) {
        pthread_mutex_lock(&p->mu);
        p->stop = 1;
        int busy = 0;
        for (int i = 0; i < p->n; i++) {
            busy |= p->slots[i].has_job;
            pthread_cond_signal(&p->slots[i].cv);
        }
        pthread_mutex_unlock(&p->mu);
        if (cold && busy) {
            /* a running task cannot be stopped: leave the threads to the process exit */
            *self_p = NULL;
            return;
        }
        for (int i = 0; i < p->n; i++)
            if (p->slots[i].started)
                pthread_join(p->slots[i].thread, NULL);
        for (s_event_t *ev = p->q_head, *next; ev; ev = next) {
            next = ev->next;
            free(ev->json);
            free(ev);
        }
        for (int i = 0; i < p->n; i++)
            pthread_cond_destroy(&p->slots[i].cv);
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

int zq_pool_free_slot(const zq_pool_t *self)
{
    if (!self || self->stopping)
        return -1;
    for (int i = 0; i < self->n; i++) {
        const s_slot_t *s = &self->slots[i];
        if (!s->busy && (self->cfg.kind != ZQ_POOL_PREFORK || s->pid > 0))
            return i;
    }
    return -1;
}

int zq_pool_submit(zq_pool_t *self, int slot, const zq_pool_job_t *job)
{
    if (!self || !job || slot < 0 || slot >= self->n)
        return ZQ_EINVAL;
    s_slot_t *s = &self->slots[slot];
    if (s->busy)
        return ZQ_ESTATE;
    switch (self->cfg.kind) {
    case ZQ_POOL_PREFORK: {
        if (s->pid <= 0 || !job->raw || job->rawlen > ZQ_MAX_MSG_SIZE)
            return ZQ_ESTATE;
        s_task_hdr_t h;
        memset(&h, 0, sizeof h);
        h.len = (uint32_t)job->rawlen;
        h.type = REC_TASK;
        h.hard = job->hard;
        h.soft = job->soft;
        struct iovec iov[2] = {{&h, sizeof h}, {(void *)job->raw, job->rawlen}};
        s->busy = 1;
        if (s_write_all(s->to_child, iov, 2) != 0) {
            /* the child is dying: its EOF reports the job lost */
            ZQ_WARN("pool: cannot hand a task to ForkPoolWorker-%d (pid %ld): %s", slot + 1,
                    (long)s->pid, strerror(errno));
            return ZQ_EIO;
        }
        return ZQ_OK;
    }
    case ZQ_POOL_THREADS:
        if (!job->body)
            return ZQ_EINVAL;
        s->busy = 1;
        pthread_mutex_lock(&self->mu);
        s->body = job->body;
        s->hard = job->hard;
        s->soft = job->soft;
        s->has_job = 1;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&self->mu);
        return ZQ_OK;
    case ZQ_POOL_SOLO: {
        if (!job->body)
            return ZQ_EINVAL;
        s->busy = 1;
        zq_outcome_t out;
        s_run_body(self, s, job->body, job->hard, job->soft, s_solo_emit, s, &out);
        s->busy = 0;
        s_emit_event(self, ZQ_POOL_EV_DONE, slot, out.state, out.json, out.len);
        zq_outcome_clear(&out);
        return ZQ_OK;
    }
    }
    return ZQ_EINVAL;
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

int zq_pool_soft_limit(zq_pool_t *self, int slot)
{
    if (!self || slot < 0 || slot >= self->n)
        return ZQ_EINVAL;
    s_slot_t *s = &self->slots[slot];
    switch (self->cfg.kind) {
    case ZQ_POOL_PREFORK:
        return s->pid > 0 && kill(s->pid, SIGUSR1) == 0 ? ZQ_OK : ZQ_ESTATE;
    case ZQ_POOL_THREADS:
        __atomic_store_n(&s->soft_flag, 1, __ATOMIC_SEQ_CST);
        return ZQ_OK;
    case ZQ_POOL_SOLO:
        break;
    }
    return ZQ_ESTATE;
}

int zq_pool_kill(zq_pool_t *self, int slot, int signum)
{
    if (!self || slot < 0 || slot >= self->n)
        return ZQ_EINVAL;
    if (self->cfg.kind != ZQ_POOL_PREFORK || self->slots[slot].pid <= 0)
        return ZQ_ESTATE;
    return kill(self->slots[slot].pid, signum) == 0 ? ZQ_OK : ZQ_EIO;
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

void zq_pool_dispatch(zq_pool_t *self, const zmq_pollitem_t *items, int n)
{
    if (!self)
        return;
    if (self->cfg.kind == ZQ_POOL_PREFORK) {
        for (int k = 0; k < n; k++) {
            if (!(items[k].revents & (ZMQ_POLLIN | ZMQ_POLLERR)))
                continue;
            for (int i = 0; i < self->n; i++)
                if (self->slots[i].from_child == items[k].fd) {
                    s_read_child(self, &self->slots[i]);
                    break;
                }
        }
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
        while (ev) {
            s_event_t *next = ev->next;
            if (ev->kind == ZQ_POOL_EV_DONE)
                self->slots[ev->slot].busy = 0;
            s_emit_event(self, ev->kind, ev->slot, ev->state, ev->json, ev->len);
            free(ev->json);
            free(ev);
            ev = next;
        }
    }
}
