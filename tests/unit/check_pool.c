/*
 * check_pool - the pool (worker/zq_pool.c). The lease (zq_pool_set_lease): past it, a queued
 * job waits in the prefork child or pool thread that took it, until the lease is extended or
 * the job is taken back. Prefork: STARTED comes from shared memory (promptly, with the
 * child's start time, even for a task that runs long), time limits and kills hit the running
 * job, a SIGKILLed child reports LOST with its job, a child dying idle while jobs are queued
 * has the queue rebuilt (its job handed back), big bodies travel as files, an expired job is
 * not started. A job handed in before its eta waits for it where it runs (still cancellable).
 * Short jobs queued together go in packs; a child killed in its pack hands back the rest, and
 * the results it kept in shared memory are neither held back by a long job nor lost with it.
 * Uses the plugins/tasks.so example.
 */
#include "config.h"
#include "zq_loader.h"
#include "zq_log.h"
#include "zq_pool.h"
#include "zq_time.h"

#include <check.h>
#include <math.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

/* Plugins resolve zq_task_* against this binary (linked -export-dynamic). */
__attribute__((used)) static const char *(*const s_link_sdk)(const zq_task_t *) = zq_task_name;

static const char *s_built(const char *rel)
{
    static char path[4096];
    const char *d = getenv("ZQ_BUILDDIR");
    snprintf(path, sizeof path, "%s/%s", d && *d ? d : ZQ_BUILDDIR, rel);
    return path;
}

typedef struct {
    int started, done, lost, returned, expired;
    void *last;
    int slot;                    /* of the last STARTED */
    double start_time, seen_at;  /* the last STARTED: its time, and zq_now() when reported */
    double done_at;              /* zq_now() of the last DONE */
    int state;                   /* of the last DONE */
    int done_before_start;       /* a DONE or LOST whose job had no STARTED before */
    void *open_ctx[64];          /* jobs reported STARTED and not ended yet */
    int nopen;
    void *lost_ctx;
    int lost_status;
    char json[512];              /* the last DONE's body (cut) */
    void *watch;                 /* a job to follow: ... */
    int watch_slot;              /* ... the slot of its STARTED (-1: none yet) */
    void *returned_ctx[16];      /* jobs handed back (first 16) */
    int submits;                 /* SUBMITs (sub-tasks) ... */
    void *submit_ctx;            /* ... the job the last one came from (NULL: not known) */
    int submit_after_done;       /* a SUBMIT whose job had ended already */
    void *done_ctx[64];          /* jobs ended (first 64) */
    int ndone_ctx;
} s_seen_t;

/* 1 when ctx was reported STARTED (and not ended since): it ends now. */
static int s_was_started(s_seen_t *s, void *ctx)
{
    for (int i = 0; i < s->nopen; i++)
        if (s->open_ctx[i] == ctx) {
            s->open_ctx[i] = s->open_ctx[--s->nopen];
            return 1;
        }
    return 0;
}

static void s_on_event(void *arg, const zq_pool_event_t *ev)
{
    s_seen_t *s = arg;
    switch (ev->kind) {
    case ZQ_POOL_EV_STARTED:
        ck_assert_int_lt(s->nopen, 64);
        s->open_ctx[s->nopen++] = ev->ctx;
        s->started++;
        s->slot = ev->slot;
        if (s->watch && ev->ctx == s->watch)
            s->watch_slot = ev->slot;
        s->start_time = ev->time;
        s->seen_at = zq_now();
        break;
    case ZQ_POOL_EV_DONE:
        s->done_before_start += !s_was_started(s, ev->ctx);
        if (s->ndone_ctx < 64)
            s->done_ctx[s->ndone_ctx++] = ev->ctx;
        s->done++;
        s->done_at = zq_now();
        s->state = ev->state;
        snprintf(s->json, sizeof s->json, "%.*s", (int)ev->len, ev->json ? ev->json : "");
        break;
    case ZQ_POOL_EV_LOST:
        if (ev->ctx)
            s->done_before_start += !s_was_started(s, ev->ctx);
        s->lost++;
        s->lost_ctx = ev->ctx;
        s->lost_status = ev->status;
        break;
    case ZQ_POOL_EV_SUBMIT:
        s->submits++;
        s->submit_ctx = ev->ctx;
        for (int i = 0; i < s->ndone_ctx; i++)
            s->submit_after_done += ev->ctx == s->done_ctx[i];
        break;
    case ZQ_POOL_EV_RETURNED:
        if (s->returned < 16)
            s->returned_ctx[s->returned] = ev->ctx;
        s->returned++;
        break;
    case ZQ_POOL_EV_EXPIRED: s->expired++; break;
    default: break;
    }
    s->last = ev->ctx;
}

/* Run the pool's events for ms, or until *until reaches want (until may be NULL). Like the
 * worker's loop, it sleeps until an item is ready or zq_pool_due(), nothing else. */
static void s_pump(zq_pool_t *p, int ms, const int *until, int want)
{
    double end = zq_mono() + ms / 1000.0;
    while (zq_mono() < end && !(until && *until >= want)) {
        zmq_pollitem_t items[8];
        int n = zq_pool_pollitems(p, items, 8);
        double m = zq_mono(), wake = end, due = zq_pool_due(p);
        if (due > 0 && due < wake)
            wake = due;
        zmq_poll(items, n, wake <= m ? 0 : (long)ceil((wake - m) * 1000));
        zq_pool_dispatch(p, items, n);
    }
}

static const zq_pool_kind_t s_kinds[] = {ZQ_POOL_PREFORK, ZQ_POOL_THREADS};

START_TEST(test_lease_holds_jobs)
{
    zq_log_set_level(ZQ_LOG_ERROR);
    zq_loader_t *l = zq_loader_new();
    ck_assert_int_eq(zq_loader_load_file(l, s_built("plugins/tasks.so")), ZQ_OK);
    s_seen_t seen;
    memset(&seen, 0, sizeof seen);
    zq_pool_config_t cfg = {s_kinds[_i], 1, l, "lease@test", s_on_event, &seen};
    zq_pool_t *p = zq_pool_new(&cfg);
    ck_assert_ptr_nonnull(p);

    static const char a_text[] = "{\"id\":\"a\",\"task\":\"tasks.add\",\"args\":[1,2],\"kwargs\":{}}";
    static const char b_text[] = "{\"id\":\"b\",\"task\":\"tasks.add\",\"args\":[3,4],\"kwargs\":{}}";
    cJSON *a_body = cJSON_Parse(a_text), *b_body = cJSON_Parse(b_text);
    int a_ctx = 0, b_ctx = 0;
    zq_pool_job_t a = {&a_ctx, a_text, strlen(a_text), a_body, 0, 0, 0, 0};
    zq_pool_job_t b = {&b_ctx, b_text, strlen(b_text), b_body, 0, 0, 0, 0};

    /* the lease has run out: a queued job does not start */
    zq_pool_set_lease(p, zq_mono() - 1);
    ck_assert_int_eq(zq_pool_submit(p, &a), ZQ_OK);
    s_pump(p, 400, NULL, 0);
    ck_assert_int_eq(seen.started, 0);
    /* extended: it starts and ends */
    zq_pool_set_lease(p, zq_mono() + 60);
    s_pump(p, 5000, &seen.done, 1);
    ck_assert_int_eq(seen.started, 1);
    ck_assert_int_eq(seen.done, 1);
    ck_assert_ptr_eq(seen.last, &a_ctx);

    /* held past the lease, then taken back: it never runs, even once the lease is back */
    zq_pool_set_lease(p, 0);
    ck_assert_int_eq(zq_pool_submit(p, &b), ZQ_OK);
    s_pump(p, 400, NULL, 0);
    ck_assert_int_eq(seen.started, 1);
    ck_assert_int_eq(zq_pool_cancel(p, &b_ctx), ZQ_OK);
    zq_pool_set_lease(p, INFINITY);
    s_pump(p, 400, NULL, 0);
    ck_assert_int_eq(seen.started, 1);
    ck_assert_int_eq(seen.done, 1);

    zq_pool_destroy(&p, 0);
    cJSON_Delete(a_body);
    cJSON_Delete(b_body);
    zq_loader_destroy(&l);
}
END_TEST

START_TEST(test_destroy_with_a_job_held)
{
    /* a prefork child waiting on the lease does not make a warm destroy hang */
    zq_log_set_level(ZQ_LOG_ERROR);
    zq_loader_t *l = zq_loader_new();
    ck_assert_int_eq(zq_loader_load_file(l, s_built("plugins/tasks.so")), ZQ_OK);
    s_seen_t seen;
    memset(&seen, 0, sizeof seen);
    zq_pool_config_t cfg = {s_kinds[_i], 1, l, "lease@test", s_on_event, &seen};
    zq_pool_t *p = zq_pool_new(&cfg);
    static const char text[] = "{\"id\":\"c\",\"task\":\"tasks.add\",\"args\":[1,1],\"kwargs\":{}}";
    cJSON *body = cJSON_Parse(text);
    int ctx = 0;
    zq_pool_job_t j = {&ctx, text, strlen(text), body, 0, 0, 0, 0};
    zq_pool_set_lease(p, 0);
    ck_assert_int_eq(zq_pool_submit(p, &j), ZQ_OK);
    s_pump(p, 200, NULL, 0);
    double t0 = zq_mono();
    zq_pool_destroy(&p, 0);
    ck_assert(zq_mono() - t0 < 5);
    cJSON_Delete(body);
    zq_loader_destroy(&l);
}
END_TEST

static zq_loader_t *s_loader(void)
{
    zq_log_set_level(ZQ_LOG_ERROR);
    zq_loader_t *l = zq_loader_new();
    ck_assert_int_eq(zq_loader_load_file(l, s_built("plugins/tasks.so")), ZQ_OK);
    return l;
}

/* A job whose body text lives in a static buffer. */
typedef struct {
    char text[256];
    cJSON *body;
    zq_pool_job_t job;
} s_job_t;

static void s_job(s_job_t *j, const char *id, const char *task, const char *args)
{
    snprintf(j->text, sizeof j->text, "{\"id\":\"%s\",\"task\":\"%s\",\"args\":%s,\"kwargs\":{}}", id,
             task, args);
    j->body = cJSON_Parse(j->text);
    ck_assert_ptr_nonnull(j->body);
    zq_pool_job_t pj = {j, j->text, strlen(j->text), j->body, 0, 0, 0, 0};
    j->job = pj;
}

START_TEST(test_started_long_task)
{
    /* a task still running is reported STARTED within a few ms (no message from the child:
     * the pool looks at shared memory when zq_pool_due says), with the child's start time;
     * a short one gets STARTED (folded into its DONE record) before DONE */
    zq_loader_t *l = s_loader();
    s_seen_t seen;
    memset(&seen, 0, sizeof seen);
    zq_pool_config_t cfg = {ZQ_POOL_PREFORK, 2, l, "started@test", s_on_event, &seen};
    zq_pool_t *p = zq_pool_new(&cfg);
    ck_assert_ptr_nonnull(p);
    s_job_t a, b;
    s_job(&a, "a", "tasks.sleep", "[0.8]");
    s_job(&b, "b", "tasks.add", "[1,2]");
    double t0 = zq_now();
    ck_assert_int_eq(zq_pool_submit(p, &a.job), ZQ_OK);
    s_pump(p, 3000, &seen.started, 1);
    ck_assert_int_eq(seen.started, 1);
    ck_assert_int_eq(seen.done, 0);
    ck_assert_ptr_eq(seen.last, &a);
    ck_assert(seen.start_time >= t0 - 0.001);
    ck_assert_msg(seen.seen_at - seen.start_time < 0.25, "STARTED reported %.3fs late",
                  seen.seen_at - seen.start_time);
    ck_assert_int_eq(zq_pool_pid(p, seen.slot) > 0, 1);
    double a_start = seen.start_time;
    /* the other child runs a short one meanwhile */
    ck_assert_int_eq(zq_pool_submit(p, &b.job), ZQ_OK);
    s_pump(p, 3000, &seen.done, 1);
    ck_assert_int_eq(seen.done, 1);
    ck_assert_ptr_eq(seen.last, &b);
    ck_assert_int_eq(seen.state, ZQ_OUT_SUCCESS);
    ck_assert_int_eq(seen.started, 2);
    s_pump(p, 5000, &seen.done, 2);
    ck_assert_int_eq(seen.done, 2);
    ck_assert_ptr_eq(seen.last, &a);
    ck_assert(seen.done_at - a_start >= 0.79);
    ck_assert_int_eq(seen.done_before_start, 0);
    zq_pool_destroy(&p, 0);
    cJSON_Delete(a.body);
    cJSON_Delete(b.body);
    zq_loader_destroy(&l);
}
END_TEST

START_TEST(test_limits_and_kill)
{
    zq_loader_t *l = s_loader();
    s_seen_t seen;
    memset(&seen, 0, sizeof seen);
    zq_pool_config_t cfg = {ZQ_POOL_PREFORK, 1, l, "limits@test", s_on_event, &seen};
    zq_pool_t *p = zq_pool_new(&cfg);
    ck_assert_ptr_nonnull(p);
    s_job_t a, b, c, d;
    s_job(&a, "a", "tasks.sleep", "[30]");
    s_job(&b, "b", "tasks.sleep", "[30]");
    s_job(&c, "c", "tasks.add", "[2,3]");
    s_job(&d, "d", "tasks.sleep", "[30]");

    /* soft limit: the running task gives up (SoftTimeLimitExceeded) */
    ck_assert_int_eq(zq_pool_submit(p, &a.job), ZQ_OK);
    s_pump(p, 3000, &seen.started, 1);
    ck_assert_int_eq(seen.started, 1);
    ck_assert_int_eq(zq_pool_soft_limit(p, seen.slot, &b), ZQ_ESTATE); /* not its job */
    ck_assert_int_eq(zq_pool_soft_limit(p, seen.slot, &a), ZQ_OK);
    s_pump(p, 5000, &seen.done, 1);
    ck_assert_int_eq(seen.done, 1);
    ck_assert_int_eq(seen.state, ZQ_OUT_FAILURE);
    ck_assert_ptr_nonnull(strstr(seen.json, "SoftTimeLimitExceeded"));

    /* hard limit / terminate: the child dies, LOST carries the job */
    ck_assert_int_eq(zq_pool_submit(p, &b.job), ZQ_OK);
    s_pump(p, 3000, &seen.started, 2);
    ck_assert_int_eq(seen.started, 2);
    ck_assert_int_eq(zq_pool_kill(p, seen.slot, &a, SIGKILL), ZQ_ESTATE);
    ck_assert_int_eq(zq_pool_kill(p, seen.slot, &b, SIGKILL), ZQ_OK);
    s_pump(p, 5000, &seen.lost, 1);
    ck_assert_int_eq(seen.lost, 1);
    ck_assert_ptr_eq(seen.lost_ctx, &b);
    ck_assert(WIFSIGNALED(seen.lost_status) && WTERMSIG(seen.lost_status) == SIGKILL);

    /* killed from outside while a job waits behind it: LOST with its job, and the queued
     * one runs on the replacement (nothing handed back) */
    ck_assert_int_eq(zq_pool_submit(p, &d.job), ZQ_OK);
    s_pump(p, 3000, &seen.started, 3);
    ck_assert_int_eq(seen.started, 3);
    ck_assert_int_eq(zq_pool_submit(p, &c.job), ZQ_OK);
    s_pump(p, 100, NULL, 0);
    ck_assert_int_eq(kill((pid_t)zq_pool_pid(p, 0), SIGKILL), 0);
    s_pump(p, 5000, &seen.done, 2);
    ck_assert_int_eq(seen.lost, 2);
    ck_assert_ptr_eq(seen.lost_ctx, &d);
    ck_assert_int_eq(seen.done, 2);
    ck_assert_ptr_eq(seen.last, &c);
    ck_assert_int_eq(seen.state, ZQ_OUT_SUCCESS);
    ck_assert_int_eq(seen.returned, 0);
    ck_assert_int_eq(seen.done_before_start, 0);

    zq_pool_destroy(&p, 0);
    cJSON_Delete(a.body);
    cJSON_Delete(b.body);
    cJSON_Delete(c.body);
    cJSON_Delete(d.body);
    zq_loader_destroy(&l);
}
END_TEST

/* 1 when pid sits in recvmsg (an idle prefork child), 0 if not, -1 if we cannot tell. */
static int s_in_recvmsg(long pid)
{
    char path[64], buf[64];
    snprintf(path, sizeof path, "/proc/%ld/syscall", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int ok = fgets(buf, sizeof buf, f) != NULL;
    fclose(f);
    if (!ok || buf[0] < '0' || buf[0] > '9')
        return -1;
    return atol(buf) == SYS_recvmsg;
}

START_TEST(test_idle_death_rebuilds_queue)
{
    /* a child killed while idle may have taken a job off the queue just before: with jobs
     * queued, the pool rebuilds the queue and hands them back */
    zq_loader_t *l = s_loader();
    s_seen_t seen;
    memset(&seen, 0, sizeof seen);
    zq_pool_config_t cfg = {ZQ_POOL_PREFORK, 2, l, "rebuild@test", s_on_event, &seen};
    zq_pool_t *p = zq_pool_new(&cfg);
    ck_assert_ptr_nonnull(p);
    s_job_t a;
    s_job(&a, "a", "tasks.add", "[4,5]");
    zq_pool_set_lease(p, 0); /* the child that takes it holds it */
    ck_assert_int_eq(zq_pool_submit(p, &a.job), ZQ_OK);
    long idle = 0;
    for (int tries = 0; tries < 100 && !idle; tries++) {
        s_pump(p, 30, NULL, 0);
        int i0 = s_in_recvmsg(zq_pool_pid(p, 0)), i1 = s_in_recvmsg(zq_pool_pid(p, 1));
        if (i0 < 0 || i1 < 0)
            break;
        if (i0 != i1)
            idle = zq_pool_pid(p, i0 ? 0 : 1);
    }
    if (!idle) {
        fprintf(stderr, "check_pool: cannot tell an idle child (/proc/PID/syscall): skipped\n");
    } else {
        ck_assert_int_eq(kill((pid_t)idle, SIGKILL), 0);
        s_pump(p, 5000, &seen.returned, 1);
        ck_assert_int_eq(seen.returned, 1);
        ck_assert_ptr_eq(seen.last, &a);
        ck_assert_int_eq(seen.started, 0);
        /* handed back, queued again: it runs on the new queue */
        zq_pool_set_lease(p, INFINITY);
        ck_assert_int_eq(zq_pool_submit(p, &a.job), ZQ_OK);
        s_pump(p, 5000, &seen.done, 1);
        ck_assert_int_eq(seen.done, 1);
        ck_assert_ptr_eq(seen.last, &a);
        ck_assert_int_eq(seen.state, ZQ_OUT_SUCCESS);
        long pids[4];
        s_pump(p, 200, NULL, 0);
        ck_assert_int_eq(zq_pool_pids(p, pids, 4), 2);
    }
    zq_pool_destroy(&p, 0);
    cJSON_Delete(a.body);
    zq_loader_destroy(&l);
}
END_TEST

START_TEST(test_big_body_and_expired)
{
    zq_loader_t *l = s_loader();
    s_seen_t seen;
    memset(&seen, 0, sizeof seen);
    zq_pool_config_t cfg = {ZQ_POOL_PREFORK, 1, l, "big@test", s_on_event, &seen};
    zq_pool_t *p = zq_pool_new(&cfg);
    ck_assert_ptr_nonnull(p);
    /* a body larger than fits one message goes as a file */
    size_t pad = 300 * 1024;
    char *text = malloc(pad + 200);
    ck_assert_ptr_nonnull(text);
    int k = snprintf(text, 200, "{\"id\":\"big\",\"task\":\"tasks.add\",\"args\":[20,22],"
                     "\"kwargs\":{},\"pad\":\"");
    memset(text + k, 'x', pad);
    strcpy(text + k + pad, "\"}");
    cJSON *body = cJSON_Parse(text);
    ck_assert_ptr_nonnull(body);
    int ctx = 0;
    zq_pool_job_t big = {&ctx, text, strlen(text), body, 0, 0, 0, 0};
    ck_assert_int_eq(zq_pool_submit(p, &big), ZQ_OK);
    s_pump(p, 5000, &seen.done, 1);
    ck_assert_int_eq(seen.done, 1);
    ck_assert_int_eq(seen.state, ZQ_OUT_SUCCESS);
    ck_assert_ptr_nonnull(strstr(seen.json, "42"));
    /* expired by the time it starts: EXPIRED, never STARTED */
    static const char old[] = "{\"id\":\"old\",\"task\":\"tasks.add\",\"args\":[1,1],"
                              "\"kwargs\":{},\"expires\":\"2001-01-01T00:00:00+00:00\"}";
    cJSON *obody = cJSON_Parse(old);
    zq_pool_job_t o = {&ctx, old, strlen(old), obody, 0, 0, 0, 0};
    ck_assert_int_eq(zq_pool_submit(p, &o), ZQ_OK);
    s_pump(p, 5000, &seen.expired, 1);
    ck_assert_int_eq(seen.expired, 1);
    ck_assert_int_eq(seen.started, 1);
    zq_pool_destroy(&p, 0);
    cJSON_Delete(body);
    cJSON_Delete(obody);
    free(text);
    zq_loader_destroy(&l);
}
END_TEST

START_TEST(test_eta_waits_in_the_pool)
{
    /* a job handed in before its eta (the worker does, up to ZQ_POOL_ETA_AHEAD early) starts
     * at its eta, never before, and can be taken back until then */
    zq_loader_t *l = s_loader();
    s_seen_t seen;
    memset(&seen, 0, sizeof seen);
    zq_pool_config_t cfg = {s_kinds[_i], 1, l, "eta@test", s_on_event, &seen};
    zq_pool_t *p = zq_pool_new(&cfg);
    ck_assert_ptr_nonnull(p);
    s_job_t a, b;
    s_job(&a, "a", "tasks.add", "[1, 2]");
    s_job(&b, "b", "tasks.add", "[3, 4]");
    a.job.eta = zq_now() + 0.25; /* longer than one capped wait (0.1 s) */
    ck_assert_int_eq(zq_pool_submit(p, &a.job), ZQ_OK);
    zq_pool_flush(p);
    s_pump(p, 5000, &seen.done, 1);
    ck_assert_int_eq(seen.started, 1);
    ck_assert_int_eq(seen.done, 1);
    ck_assert_msg(seen.start_time >= a.job.eta, "started %.6f s before its eta",
                  a.job.eta - seen.start_time);

    b.job.eta = zq_now() + 0.3;
    ck_assert_int_eq(zq_pool_submit(p, &b.job), ZQ_OK);
    zq_pool_flush(p);
    s_pump(p, 100, NULL, 0);
    ck_assert_int_eq(seen.started, 1);
    ck_assert_int_eq(zq_pool_cancel(p, &b), ZQ_OK);
    s_pump(p, 400, NULL, 0);
    ck_assert_int_eq(seen.started, 1);
    ck_assert_int_eq(seen.done, 1);

    zq_pool_destroy(&p, 0);
    cJSON_Delete(a.body);
    cJSON_Delete(b.body);
    zq_loader_destroy(&l);
}
END_TEST

/* Run n short jobs one at a time: the pool learns that runs are short (packs from then on). */
static void s_warm_up(zq_pool_t *p, s_seen_t *seen, s_job_t *w, int n)
{
    int done0 = seen->done;
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(zq_pool_submit(p, &w[i].job), ZQ_OK);
        zq_pool_flush(p);
        s_pump(p, 5000, &seen->done, done0 + i + 1);
        ck_assert_int_eq(seen->done, done0 + i + 1);
    }
}

START_TEST(test_short_jobs_go_in_packs)
{
    /* once runs are short, jobs queued together go to the children in packs (fewer job
     * messages than jobs), each reported STARTED before DONE; a child killed in the middle
     * of its pack loses only the job it ran: the rest of the pack is handed back */
    zq_loader_t *l = s_loader();
    s_seen_t seen;
    memset(&seen, 0, sizeof seen);
    seen.watch_slot = -1;
    zq_pool_config_t cfg = {ZQ_POOL_PREFORK, 2, l, "packs@test", s_on_event, &seen};
    zq_pool_t *p = zq_pool_new(&cfg);
    ck_assert_ptr_nonnull(p);
    enum { WARM = 24, REST = 15 };
    static s_job_t w[WARM], r[REST], sl;
    char id[16];
    for (int i = 0; i < WARM; i++) {
        snprintf(id, sizeof id, "w%d", i);
        s_job(&w[i], id, "tasks.add", "[1,2]");
    }
    /* one at a time: nothing to pack, and the pool learns that runs are short */
    s_warm_up(p, &seen, w, WARM);
    uint64_t jobs, msgs;
    zq_pool_counts(p, &jobs, &msgs);
    ck_assert_uint_eq(jobs, WARM);
    ck_assert_uint_eq(msgs, WARM);

    /* queued together: two packs, one per child */
    for (int i = 0; i < WARM; i++)
        ck_assert_int_eq(zq_pool_submit(p, &w[i].job), ZQ_OK);
    zq_pool_flush(p);
    s_pump(p, 5000, &seen.done, 2 * WARM);
    ck_assert_int_eq(seen.done, 2 * WARM);
    ck_assert_int_eq(seen.started, 2 * WARM);
    ck_assert_int_eq(seen.done_before_start, 0);
    ck_assert_int_eq(seen.state, ZQ_OUT_SUCCESS);
    zq_pool_counts(p, &jobs, &msgs);
    ck_assert_uint_eq(jobs, 2 * WARM);
    ck_assert_msg(msgs - WARM <= 4, "%d jobs queued together took %d messages", WARM,
                  (int)(msgs - WARM));

    /* ETA jobs are never packed: each waits for its eta, and they must start in eta order
     * whichever child gets through its work first */
    for (int i = 0; i < 8; i++) {
        w[i].job.eta = zq_now() + 0.01 * i;
        ck_assert_int_eq(zq_pool_submit(p, &w[i].job), ZQ_OK);
    }
    zq_pool_flush(p);
    s_pump(p, 5000, &seen.done, 2 * WARM + 8);
    ck_assert_int_eq(seen.done, 2 * WARM + 8);
    uint64_t jobs1 = jobs, msgs1 = msgs;
    zq_pool_counts(p, &jobs, &msgs);
    ck_assert_uint_eq(jobs - jobs1, 8);
    ck_assert_uint_eq(msgs - msgs1, 8);
    for (int i = 0; i < 8; i++)
        w[i].job.eta = 0;

    /* a pack that starts with a long job, whose child is killed running it */
    s_job(&sl, "sl", "tasks.sleep", "[30]");
    for (int i = 0; i < REST; i++) {
        snprintf(id, sizeof id, "r%d", i);
        s_job(&r[i], id, "tasks.add", "[3,4]");
    }
    seen.watch = &sl;
    ck_assert_int_eq(zq_pool_submit(p, &sl.job), ZQ_OK);
    for (int i = 0; i < REST; i++)
        ck_assert_int_eq(zq_pool_submit(p, &r[i].job), ZQ_OK);
    zq_pool_flush(p);
    /* 16 jobs, 2 children: [sl r0..r6] and [r7..r14] */
    int want = 2 * WARM + 16;
    s_pump(p, 5000, &seen.done, want);
    ck_assert_int_eq(seen.done, want);
    for (int tries = 0; tries < 100 && seen.watch_slot < 0; tries++)
        s_pump(p, 20, NULL, 0);
    ck_assert_int_ge(seen.watch_slot, 0);
    ck_assert_int_eq(kill((pid_t)zq_pool_pid(p, seen.watch_slot), SIGKILL), 0);
    s_pump(p, 5000, &seen.returned, 7);
    s_pump(p, 200, NULL, 0);
    ck_assert_int_eq(seen.lost, 1);
    ck_assert_ptr_eq(seen.lost_ctx, &sl);
    ck_assert_int_eq(seen.returned, 7);
    ck_assert_int_eq(seen.done, want);
    /* nothing is lost: the jobs handed back run when queued again */
    for (int i = 0; i < 7; i++) {
        s_job_t *j = seen.returned_ctx[i];
        ck_assert(j >= &r[0] && j < &r[REST]);
        ck_assert_int_eq(zq_pool_submit(p, &j->job), ZQ_OK);
    }
    zq_pool_flush(p);
    s_pump(p, 5000, &seen.done, want + 7);
    ck_assert_int_eq(seen.done, want + 7);
    ck_assert_int_eq(seen.done_before_start, 0);

    zq_pool_destroy(&p, 0);
    for (int i = 0; i < WARM; i++)
        cJSON_Delete(w[i].body);
    for (int i = 0; i < REST; i++)
        cJSON_Delete(r[i].body);
    cJSON_Delete(sl.body);
    zq_loader_destroy(&l);
}
END_TEST

START_TEST(test_pack_results_not_held)
{
    /* in a pack, a child keeps the records of the jobs it ended in shared memory until the
     * pack is over: a long job after them must not hold them back (the pool looks every
     * few ms), and a child that dies must not take them with it */
    zq_loader_t *l = s_loader();
    s_seen_t seen;
    memset(&seen, 0, sizeof seen);
    seen.watch_slot = -1;
    zq_pool_config_t cfg = {ZQ_POOL_PREFORK, 1, l, "ring@test", s_on_event, &seen};
    zq_pool_t *p = zq_pool_new(&cfg);
    ck_assert_ptr_nonnull(p);
    enum { WARM = 24 };
    static s_job_t w[WARM], a[3], b[3], s0, sl, cr;
    char id[16];
    for (int i = 0; i < WARM; i++) {
        snprintf(id, sizeof id, "w%d", i);
        s_job(&w[i], id, "tasks.add", "[1,2]");
    }
    for (int i = 0; i < 3; i++) {
        snprintf(id, sizeof id, "a%d", i);
        s_job(&a[i], id, "tasks.add", "[5,6]");
        snprintf(id, sizeof id, "b%d", i);
        s_job(&b[i], id, "tasks.add", "[7,8]");
    }
    s_job(&s0, "s0", "tasks.sleep", "[0.2]");
    s_job(&sl, "sl", "tasks.sleep", "[30]");
    s_job(&cr, "cr", "tasks.crash", "[]");
    s_warm_up(p, &seen, w, WARM);

    /* one pack (one child): a job seen running (0.2 s), three short ones, then one that
     * runs for 30 s; the child is known busy all along, and rings only when the pack ends */
    uint64_t jobs0, msgs0, jobs, msgs;
    zq_pool_counts(p, &jobs0, &msgs0);
    ck_assert_int_eq(zq_pool_submit(p, &s0.job), ZQ_OK);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(zq_pool_submit(p, &a[i].job), ZQ_OK);
    ck_assert_int_eq(zq_pool_submit(p, &sl.job), ZQ_OK);
    zq_pool_flush(p);
    zq_pool_counts(p, &jobs, &msgs);
    ck_assert_uint_eq(jobs - jobs0, 5);
    ck_assert_uint_eq(msgs - msgs0, 1);
    seen.watch = &sl;
    double t0 = zq_mono();
    s_pump(p, 3000, &seen.done, WARM + 4);
    ck_assert_int_eq(seen.done, WARM + 4);
    ck_assert_msg(zq_mono() - t0 < 1.5, "the short jobs' results waited %.3fs",
                  zq_mono() - t0);
    for (int tries = 0; tries < 100 && seen.watch_slot < 0; tries++)
        s_pump(p, 20, NULL, 0);
    ck_assert_int_eq(seen.watch_slot, 0); /* the long one is running, and known to be */
    ck_assert_int_eq(zq_pool_kill(p, 0, &sl, SIGKILL), ZQ_OK);
    s_pump(p, 5000, &seen.lost, 1);
    ck_assert_int_eq(seen.lost, 1);
    ck_assert_ptr_eq(seen.lost_ctx, &sl);

    /* a pack whose last job kills its child right after the others ended: their results
     * are still in shared memory, and are reported; only the crashed job is lost */
    s_warm_up(p, &seen, w, 8);
    int done0 = seen.done;
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(zq_pool_submit(p, &b[i].job), ZQ_OK);
    ck_assert_int_eq(zq_pool_submit(p, &cr.job), ZQ_OK);
    zq_pool_flush(p);
    s_pump(p, 5000, &seen.lost, 2);
    s_pump(p, 200, NULL, 0);
    ck_assert_int_eq(seen.lost, 2);
    ck_assert_ptr_eq(seen.lost_ctx, &cr);
    ck_assert_int_eq(seen.done, done0 + 3);
    ck_assert_int_eq(seen.done_before_start, 0);
    ck_assert_int_eq(seen.returned, 0);

    zq_pool_destroy(&p, 0);
    for (int i = 0; i < WARM; i++)
        cJSON_Delete(w[i].body);
    for (int i = 0; i < 3; i++) {
        cJSON_Delete(a[i].body);
        cJSON_Delete(b[i].body);
    }
    cJSON_Delete(s0.body);
    cJSON_Delete(sl.body);
    cJSON_Delete(cr.body);
    zq_loader_destroy(&l);
}
END_TEST

START_TEST(test_pack_subtask_before_end)
{
    /* a task of a pack that sends a sub-task: the SUBMIT reaches the worker before the
     * task's end, with the task it came from (its DONE follows it on the pipe) */
    zq_loader_t *l = s_loader();
    ck_assert_int_eq(zq_loader_load_file(l, s_built("tests/plugins/testtasks.so")), ZQ_OK);
    s_seen_t seen;
    memset(&seen, 0, sizeof seen);
    zq_pool_config_t cfg = {ZQ_POOL_PREFORK, 1, l, "subtask@test", s_on_event, &seen};
    zq_pool_t *p = zq_pool_new(&cfg);
    ck_assert_ptr_nonnull(p);
    enum { WARM = 16 };
    static s_job_t w[WARM], sub;
    char id[16];
    for (int i = 0; i < WARM; i++) {
        snprintf(id, sizeof id, "w%d", i);
        s_job(&w[i], id, "tasks.add", "[1,2]");
    }
    s_job(&sub, "sub", "testtasks.send_sub", "[\"tasks.add\", [1, 2]]");
    s_warm_up(p, &seen, w, WARM);
    uint64_t jobs0, msgs0, jobs, msgs;
    zq_pool_counts(p, &jobs0, &msgs0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(zq_pool_submit(p, &w[i].job), ZQ_OK);
    ck_assert_int_eq(zq_pool_submit(p, &sub.job), ZQ_OK);
    for (int i = 3; i < 6; i++)
        ck_assert_int_eq(zq_pool_submit(p, &w[i].job), ZQ_OK);
    zq_pool_flush(p);
    s_pump(p, 5000, &seen.done, WARM + 7);
    ck_assert_int_eq(seen.done, WARM + 7);
    zq_pool_counts(p, &jobs, &msgs);
    ck_assert_uint_eq(msgs - msgs0, 1); /* one pack */
    ck_assert_int_eq(seen.submits, 1);
    ck_assert_ptr_eq(seen.submit_ctx, &sub);
    ck_assert_int_eq(seen.submit_after_done, 0);
    ck_assert_int_eq(seen.done_before_start, 0);
    zq_pool_destroy(&p, 0);
    for (int i = 0; i < WARM; i++)
        cJSON_Delete(w[i].body);
    cJSON_Delete(sub.body);
    zq_loader_destroy(&l);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pool");
    TCase *tc = tcase_create("lease");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_lease_holds_jobs, 0, 2);
    tcase_add_loop_test(tc, test_destroy_with_a_job_held, 0, 2);
    tcase_add_loop_test(tc, test_eta_waits_in_the_pool, 0, 2);
    suite_add_tcase(s, tc);
    TCase *pf = tcase_create("prefork");
    tcase_set_timeout(pf, 60);
    tcase_add_test(pf, test_started_long_task);
    tcase_add_test(pf, test_limits_and_kill);
    tcase_add_test(pf, test_idle_death_rebuilds_queue);
    tcase_add_test(pf, test_big_body_and_expired);
    tcase_add_test(pf, test_short_jobs_go_in_packs);
    tcase_add_test(pf, test_pack_results_not_held);
    tcase_add_test(pf, test_pack_subtask_before_end);
    suite_add_tcase(s, pf);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
