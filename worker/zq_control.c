/*
 * zq_control - the worker's control socket and the `inspect` handlers (see zq_control.h;
 * wire format: docs/protocol.md §8a, every method and field: docs/management.md).
 *
 * Replies have the shapes of Celery's (celery/worker/control.py): a task is shown as
 * Request.info() (id, name, args, kwargs, type, hostname, time_start, acknowledged,
 * delivery_info, worker_pid), scheduled tasks as {eta, priority, request}, query_task as
 * {id: [state, info]}, ping as {"ok": "pong"}. Replies are built as cJSON: this is not the
 * task path, and the caller (and the unit tests) want the tree.
 */
#include "config.h"
#include "zq_control.h"
#include "zq_log.h"
#include "zq_proto.h"
#include "zq_time.h"
#include "zq_util.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zmq.h>

#define S_EINTERNAL "EINTERNAL" /* docs/protocol.md §7: failed on its own (out of memory) */

/* A registered task and its index in loader order (the `total` counters). */
typedef struct {
    const zq_task_entry_t *entry;
    size_t idx;
} s_entry_t;

struct zq_control {
    zq_control_config_t cfg;
    void *sock;               /* ROUTER, NULL until bound */
    char endpoint[512];       /* bound endpoint ("" until bound) */
    s_entry_t *by_ptr;        /* registered tasks sorted by entry address */
    size_t ntasks;
    unsigned long *total;     /* runs started, by loader index */
    unsigned long succeeded, failed, retried, revoked;
    double last_bad;          /* zq_mono() of the last bad-message log */
    unsigned long bad;        /* malformed requests received */
    zq_auth_t *auth;          /* ZAP handler when CURVE is on */
};

const char *const zq_control_methods[] = {"active",  "active_queues", "conf",       "ping",
                                          "query_task", "registered", "reserved", "revoked",
                                          "scheduled", "stats",       NULL};

/* ---------------------------------------------------------------------------------------
 * Lifecycle
 */
static int s_ptr_cmp(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const s_entry_t *)a)->entry;
    uintptr_t y = (uintptr_t)((const s_entry_t *)b)->entry;
    return x < y ? -1 : x > y;
}

zq_control_t *zq_control_new(const zq_control_config_t *cfg)
{
    if (!cfg || !cfg->name) {
        ZQ_ERROR("control: no worker name given");
        return NULL;
    }
    zq_control_t *self = calloc(1, sizeof *self);
    if (!self)
        goto oom;
    self->cfg = *cfg;
    self->ntasks = cfg->loader ? zq_loader_task_count(cfg->loader) : 0;
    if (self->ntasks) {
        self->by_ptr = calloc(self->ntasks, sizeof *self->by_ptr);
        self->total = calloc(self->ntasks, sizeof *self->total);
        if (!self->by_ptr || !self->total)
            goto oom;
        for (size_t i = 0; i < self->ntasks; i++) {
            self->by_ptr[i].entry = zq_loader_task(cfg->loader, i);
            self->by_ptr[i].idx = i;
        }
        qsort(self->by_ptr, self->ntasks, sizeof *self->by_ptr, s_ptr_cmp);
    }
    return self;
oom:
    ZQ_ERROR("control: out of memory");
    zq_control_destroy(&self);
    return NULL;
}

void zq_control_destroy(zq_control_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zq_control_t *self = *self_p;
    if (self->sock)
        zmq_close(self->sock);
    zq_auth_destroy(&self->auth);
    free(self->by_ptr);
    free(self->total);
    free(self);
    *self_p = NULL;
}

int zq_control_bind(zq_control_t *self, void *zmq_ctx)
{
    if (!self || !zmq_ctx)
        return ZQ_EINVAL;
    const char *ep = self->cfg.endpoint && *self->cfg.endpoint ? self->cfg.endpoint
                                                               : ZQ_CONTROL_DEFAULT_ENDPOINT;
    if (self->sock)
        return ZQ_OK;
    const zq_curve_pair_t *curve =
        self->cfg.curve && self->cfg.curve->secret_key[0] ? self->cfg.curve : NULL;
    if (curve && !self->cfg.curve_authorized) {
        ZQ_ERROR("control: CURVE needs the directory of the keys it lets in "
                 "(--curve-authorized DIR)");
        return ZQ_EINVAL;
    }
    /* the ZAP handler first: a CURVE server bound without one lets every key in */
    if (curve && !self->auth &&
        !(self->auth = zq_auth_new(zmq_ctx, self->cfg.curve_authorized, "control")))
        return ZQ_EINVAL;
    self->sock = zmq_socket(zmq_ctx, ZMQ_ROUTER);
    if (!self->sock) {
        ZQ_ERROR("control: cannot create a socket: %s", zmq_strerror(errno));
        return ZQ_EIO;
    }
    zq_socket_defaults(self->sock);
    if (curve && (zq_curve_server_apply(self->sock, curve) != ZQ_OK ||
                  zq_auth_watch(self->auth, self->sock, "the control socket") != ZQ_OK)) {
        ZQ_ERROR("control: cannot make the control socket a CURVE server");
        zmq_close(self->sock);
        self->sock = NULL;
        return ZQ_EIO;
    }
    /* said before binding, so that the warning stands even when the bind then fails */
    if (zq_endpoint_is_public(ep) && !curve)
        ZQ_WARN("the control socket %s is reachable from other hosts and has no "
                "authentication: anyone who can connect can read this worker's tasks (their "
                "arguments included); configure CURVE keys (--curve-secret, "
                "--curve-server-key, --curve-authorized)", ep);
    if (zmq_bind(self->sock, ep) != 0) {
        int e = errno;
        ZQ_ERROR("cannot bind the control socket to %s: %s (choose another with --control URL)",
                 ep, zmq_strerror(e));
        zmq_close(self->sock);
        self->sock = NULL;
        return e == EINVAL || e == EPROTONOSUPPORT || e == ENOCOMPATPROTO ? ZQ_EINVAL : ZQ_EIO;
    }
    size_t len = sizeof self->endpoint;
    if (zmq_getsockopt(self->sock, ZMQ_LAST_ENDPOINT, self->endpoint, &len) != 0)
        snprintf(self->endpoint, sizeof self->endpoint, "%s", ep);
    ZQ_INFO("control socket at %s%s", self->endpoint, curve ? " (CURVE)" : "");
    return ZQ_OK;
}

int zq_control_pollitems(const zq_control_t *self, zmq_pollitem_t *items, int max)
{
    if (!self || !self->sock || max <= 0)
        return 0;
    items[0] = (zmq_pollitem_t){self->sock, 0, ZMQ_POLLIN, 0};
    return 1 + zq_auth_pollitems(self->auth, items + 1, max - 1);
}

void zq_control_dispatch(zq_control_t *self, const zmq_pollitem_t *items, int n)
{
    if (!self || n <= 0)
        return;
    int auth_ready = 0;
    for (int i = 1; i < n; i++)
        auth_ready |= (items[i].revents & ZMQ_POLLIN) != 0;
    if (auth_ready) /* handshakes first: a client waits on them */
        zq_auth_serve(self->auth);
    if (items[0].revents & ZMQ_POLLIN)
        zq_control_serve(self);
}

long zq_control_auth_rejected(const zq_control_t *self)
{
    return self ? zq_auth_rejected(self->auth) : 0;
}

const char *zq_control_endpoint(const zq_control_t *self)
{
    return self ? self->endpoint : "";
}

void *zq_control_socket(const zq_control_t *self)
{
    return self ? self->sock : NULL;
}

/* ---------------------------------------------------------------------------------------
 * Counters
 */
void zq_control_task_started(zq_control_t *self, const zq_task_entry_t *entry)
{
    if (!self || !entry || !self->ntasks)
        return;
    s_entry_t key = {entry, 0};
    const s_entry_t *e = bsearch(&key, self->by_ptr, self->ntasks, sizeof key, s_ptr_cmp);
    if (e)
        self->total[e->idx]++;
}

void zq_control_task_done(zq_control_t *self, zq_outcome_state_t state)
{
    if (!self)
        return;
    switch (state) {
    case ZQ_OUT_SUCCESS: self->succeeded++; break;
    case ZQ_OUT_FAILURE: self->failed++; break;
    case ZQ_OUT_RETRY: self->retried++; break;
    case ZQ_OUT_REVOKED: self->revoked++; break;
    }
}

/* ---------------------------------------------------------------------------------------
 * Reading the worker
 */
typedef struct {
    zq_control_job_t *v;
    size_t n, cap;
    int want;  /* a zq_control_place_t, or 0 for all */
    int oom;
} s_jobs_t;

static void s_collect_one(void *arg, const zq_control_job_t *job)
{
    s_jobs_t *l = arg;
    if (l->oom || !job || !job->req || !job->req->id || (l->want && (int)job->place != l->want))
        return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        zq_control_job_t *v = realloc(l->v, cap * sizeof *v);
        if (!v) {
            l->oom = 1;
            return;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = *job;
}

/* The jobs in place `want` (0: all), in the worker's order. ZQ_OK or ZQ_ENOMEM; free l->v. */
static int s_collect(zq_control_t *self, int want, s_jobs_t *l)
{
    memset(l, 0, sizeof *l);
    l->want = want;
    if (self->cfg.each_job)
        self->cfg.each_job(self->cfg.src, s_collect_one, l);
    return l->oom ? ZQ_ENOMEM : ZQ_OK;
}

static void s_live(zq_control_t *self, zq_control_live_t *out)
{
    memset(out, 0, sizeof *out);
    out->heartbeat = self->cfg.heartbeat;
    out->broker_id = "";
    if (self->cfg.live)
        self->cfg.live(self->cfg.src, out);
    if (!out->broker_id)
        out->broker_id = "";
}

/* ---------------------------------------------------------------------------------------
 * Building replies. Every builder returns NULL on ENOMEM; `s_ok` collects the results of
 * cJSON_Add* calls so a builder checks once.
 */
static int s_ok(int *ok, const void *added)
{
    if (!added)
        *ok = 0;
    return *ok;
}

static cJSON *s_num_or_null(double v, int present)
{
    return present ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

static int s_add(cJSON *o, const char *key, cJSON *item)
{
    if (!item)
        return 0;
    if (!cJSON_AddItemToObject(o, key, item)) {
        cJSON_Delete(item);
        return 0;
    }
    return 1;
}

/* Celery's Request.info(). */
static cJSON *s_info(const zq_control_t *self, const zq_control_job_t *j)
{
    const zq_request_t *r = j->req;
    int active = j->place == ZQ_CONTROL_ACTIVE, ok = 1;
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    s_ok(&ok, cJSON_AddStringToObject(o, "id", r->id));
    s_ok(&ok, cJSON_AddStringToObject(o, "name", r->task ? r->task : ""));
    ok = ok && s_add(o, "args", r->args ? cJSON_Duplicate(r->args, 1) : cJSON_CreateArray());
    ok = ok && s_add(o, "kwargs",
                     r->kwargs ? cJSON_Duplicate(r->kwargs, 1) : cJSON_CreateObject());
    s_ok(&ok, cJSON_AddStringToObject(o, "type", r->task ? r->task : ""));
    s_ok(&ok, cJSON_AddStringToObject(o, "hostname", self->cfg.name));
    ok = ok && s_add(o, "time_start", s_num_or_null(j->time_start, active && j->time_start > 0));
    /* prefork acknowledges when a task starts; acks_late ones only when they end */
    s_ok(&ok, cJSON_AddBoolToObject(o, "acknowledged", active && !j->acks_late));
    cJSON *di = cJSON_AddObjectToObject(o, "delivery_info");
    if (s_ok(&ok, di)) {
        const char *q = r->queue ? r->queue : ZQ_DEFAULT_QUEUE;
        s_ok(&ok, cJSON_AddStringToObject(di, "exchange", ""));
        s_ok(&ok, cJSON_AddStringToObject(di, "routing_key", q));
        s_ok(&ok, cJSON_AddNumberToObject(di, "priority", r->priority));
        s_ok(&ok, cJSON_AddBoolToObject(di, "redelivered", r->redelivered));
    }
    ok = ok && s_add(o, "worker_pid", s_num_or_null((double)j->pid, active && j->pid > 0));
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* A list reply that stops before ZQ_CONTROL_MAX_REPLY bytes. */
typedef struct {
    cJSON *arr;
    size_t bytes;
    int truncated;
} s_list_t;

/* Append item (taken over) unless the reply would grow too large. 0 on ENOMEM. */
static int s_list_add(s_list_t *l, cJSON *item)
{
    if (!item)
        return 0;
    if (l->truncated) {
        cJSON_Delete(item);
        return 1;
    }
    char *txt = cJSON_PrintUnformatted(item);
    if (!txt) {
        cJSON_Delete(item);
        return 0;
    }
    size_t n = strlen(txt) + 1;
    cJSON_free(txt);
    if (l->bytes + n > ZQ_CONTROL_MAX_REPLY) {
        l->truncated = 1;
        cJSON_Delete(item);
        return 1;
    }
    l->bytes += n;
    if (!cJSON_AddItemToArray(l->arr, item)) {
        cJSON_Delete(item);
        return 0;
    }
    return 1;
}

static int s_eta_cmp(const void *a, const void *b)
{
    double x = ((const zq_control_job_t *)a)->req->eta_t;
    double y = ((const zq_control_job_t *)b)->req->eta_t;
    return x < y ? -1 : x > y;
}

/* active, reserved, scheduled */
static int s_jobs_reply(zq_control_t *self, zq_control_place_t place, cJSON **reply,
                        int *truncated)
{
    s_jobs_t jobs;
    if (s_collect(self, place, &jobs) != ZQ_OK) {
        free(jobs.v);
        return ZQ_ENOMEM;
    }
    if (place == ZQ_CONTROL_SCHEDULED && jobs.n > 1)
        qsort(jobs.v, jobs.n, sizeof *jobs.v, s_eta_cmp);
    s_list_t l = {cJSON_CreateArray(), 0, 0};
    int ok = l.arr != NULL;
    for (size_t i = 0; ok && i < jobs.n && !l.truncated; i++) {
        cJSON *info = s_info(self, &jobs.v[i]);
        if (place != ZQ_CONTROL_SCHEDULED) {
            ok = s_list_add(&l, info);
            continue;
        }
        /* Celery: {"eta", "priority", "request"} */
        char ts[40];
        const zq_request_t *r = jobs.v[i].req;
        const char *eta = r->eta ? r->eta : zq_time_iso(r->eta_t, ts, sizeof ts);
        cJSON *s = info ? cJSON_CreateObject() : NULL;
        if (!s || !cJSON_AddStringToObject(s, "eta", eta) ||
            !cJSON_AddNumberToObject(s, "priority", r->priority)) {
            cJSON_Delete(s);
            cJSON_Delete(info);
            ok = 0;
            break;
        }
        ok = s_add(s, "request", info) ? s_list_add(&l, s) : (cJSON_Delete(s), 0);
    }
    free(jobs.v);
    if (!ok) {
        cJSON_Delete(l.arr);
        return ZQ_ENOMEM;
    }
    *reply = l.arr;
    *truncated = l.truncated;
    return ZQ_OK;
}

static void s_revoked_one(void *arg, const char *id)
{
    s_list_t *l = arg;
    if (id && !s_list_add(l, cJSON_CreateString(id)))
        l->truncated = -1; /* out of memory: noticed by the caller */
}

static int s_revoked_reply(zq_control_t *self, cJSON **reply, int *truncated)
{
    s_list_t l = {cJSON_CreateArray(), 0, 0};
    if (!l.arr)
        return ZQ_ENOMEM;
    if (self->cfg.each_revoked)
        self->cfg.each_revoked(self->cfg.src, s_revoked_one, &l);
    if (l.truncated < 0) {
        cJSON_Delete(l.arr);
        return ZQ_ENOMEM;
    }
    *reply = l.arr;
    *truncated = l.truncated;
    return ZQ_OK;
}

static int s_registered_reply(zq_control_t *self, cJSON **reply)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < self->ntasks; i++) {
        cJSON *s = cJSON_CreateString(zq_loader_task(self->cfg.loader, i)->name);
        if (!s || !cJSON_AddItemToArray(a, s)) {
            cJSON_Delete(s);
            cJSON_Delete(a);
            return ZQ_ENOMEM;
        }
    }
    if (!a)
        return ZQ_ENOMEM;
    *reply = a;
    return ZQ_OK;
}

static int s_queues_reply(zq_control_t *self, cJSON **reply)
{
    cJSON *a = cJSON_CreateArray();
    int ok = a != NULL;
    for (size_t i = 0; ok && i < self->cfg.nqueues; i++) {
        const char *q = self->cfg.queues[i];
        cJSON *o = cJSON_CreateObject();
        cJSON *ex = o && cJSON_AddStringToObject(o, "name", q)
                        ? cJSON_AddObjectToObject(o, "exchange")
                        : NULL;
        ok = ex && cJSON_AddStringToObject(ex, "name", q) &&
             cJSON_AddStringToObject(ex, "type", "direct") &&
             cJSON_AddStringToObject(o, "routing_key", q) && cJSON_AddItemToArray(a, o);
        if (!ok)
            cJSON_Delete(o);
    }
    if (!ok) {
        cJSON_Delete(a);
        return ZQ_ENOMEM;
    }
    *reply = a;
    return ZQ_OK;
}

/* {"url", "transport", "hostname", "port" | "path", "heartbeat", "connected", "broker_id"} */
static cJSON *s_broker_info(const zq_control_t *self, const zq_control_live_t *live)
{
    const char *url = self->cfg.broker_url ? self->cfg.broker_url : "";
    cJSON *o = cJSON_CreateObject();
    int ok = o != NULL;
    s_ok(&ok, cJSON_AddStringToObject(o, "url", url));
    if (!strncmp(url, "tcp://", 6)) {
        const char *host = url + 6, *colon = strrchr(host, ':');
        char h[256];
        size_t n = colon ? (size_t)(colon - host) : strlen(host);
        snprintf(h, sizeof h, "%.*s", (int)(n < sizeof h ? n : sizeof h - 1), host);
        s_ok(&ok, cJSON_AddStringToObject(o, "transport", "tcp"));
        s_ok(&ok, cJSON_AddStringToObject(o, "hostname", h));
        s_ok(&ok, cJSON_AddNumberToObject(o, "port", colon ? atoi(colon + 1) : 0));
    } else if (!strncmp(url, "ipc://", 6)) {
        s_ok(&ok, cJSON_AddStringToObject(o, "transport", "ipc"));
        s_ok(&ok, cJSON_AddStringToObject(o, "path", url + 6));
    }
    s_ok(&ok, cJSON_AddNumberToObject(o, "heartbeat", live->heartbeat));
    s_ok(&ok, cJSON_AddBoolToObject(o, "connected", live->registered));
    s_ok(&ok, cJSON_AddStringToObject(o, "broker_id", live->broker_id));
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static double s_tv(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* getrusage(RUSAGE_SELF) of the worker's main process, with Celery's keys. */
static cJSON *s_rusage(void)
{
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    getrusage(RUSAGE_SELF, &ru);
    const struct {
        const char *key;
        double v;
    } f[] = {{"utime", s_tv(ru.ru_utime)},  {"stime", s_tv(ru.ru_stime)},
             {"maxrss", (double)ru.ru_maxrss}, {"ixrss", (double)ru.ru_ixrss},
             {"idrss", (double)ru.ru_idrss},   {"isrss", (double)ru.ru_isrss},
             {"minflt", (double)ru.ru_minflt}, {"majflt", (double)ru.ru_majflt},
             {"nswap", (double)ru.ru_nswap},   {"inblock", (double)ru.ru_inblock},
             {"oublock", (double)ru.ru_oublock}, {"msgsnd", (double)ru.ru_msgsnd},
             {"msgrcv", (double)ru.ru_msgrcv}, {"nsignals", (double)ru.ru_nsignals},
             {"nvcsw", (double)ru.ru_nvcsw},   {"nivcsw", (double)ru.ru_nivcsw}};
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; o && i < sizeof f / sizeof f[0]; i++)
        if (!cJSON_AddNumberToObject(o, f[i].key, f[i].v)) {
            cJSON_Delete(o);
            return NULL;
        }
    return o;
}

static cJSON *s_pool_info(const zq_control_t *self, const zq_control_live_t *live)
{
    cJSON *o = cJSON_CreateObject();
    int ok = o != NULL;
    s_ok(&ok, cJSON_AddStringToObject(o, "implementation", zq_pool_kind_name(self->cfg.pool_kind)));
    s_ok(&ok, cJSON_AddNumberToObject(o, "max-concurrency", self->cfg.concurrency));
    cJSON *procs = cJSON_AddArrayToObject(o, "processes");
    if (s_ok(&ok, procs)) {
        int max = self->cfg.concurrency > 0 ? self->cfg.concurrency : 1;
        long *pids = calloc((size_t)max, sizeof *pids);
        int n = 0;
        if (!pids)
            ok = 0;
        else if (live->pool)
            n = zq_pool_pids(live->pool, pids, max);
        else
            pids[n++] = (long)getpid();
        for (int i = 0; ok && i < n; i++) {
            cJSON *p = cJSON_CreateNumber((double)pids[i]);
            if (!p || !cJSON_AddItemToArray(procs, p)) {
                cJSON_Delete(p);
                ok = 0;
            }
        }
        free(pids);
    }
    /* Celery: [soft, hard], 0 when none */
    const double lim[2] = {self->cfg.soft_time_limit, self->cfg.time_limit};
    ok = ok && s_add(o, "timeouts", cJSON_CreateDoubleArray(lim, 2));
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static int s_stats_reply(zq_control_t *self, cJSON **reply)
{
    zq_control_live_t live;
    s_live(self, &live);
    cJSON *o = cJSON_CreateObject();
    int ok = o != NULL;
    cJSON *total = cJSON_AddObjectToObject(o, "total");
    for (size_t i = 0; s_ok(&ok, total) && i < self->ntasks; i++)
        if (self->total[i])
            s_ok(&ok, cJSON_AddNumberToObject(total, zq_loader_task(self->cfg.loader, i)->name,
                                              (double)self->total[i]));
    s_ok(&ok, cJSON_AddNumberToObject(o, "pid", (double)getpid()));
    double up = zq_now() - self->cfg.started;
    s_ok(&ok, cJSON_AddNumberToObject(o, "uptime", up > 0 ? floor(up) : 0));
    ok = ok && s_add(o, "pool", s_pool_info(self, &live));
    s_ok(&ok, cJSON_AddNumberToObject(o, "prefetch_count",
                                      self->cfg.concurrency + self->cfg.prefetch));
    ok = ok && s_add(o, "broker", s_broker_info(self, &live));
    ok = ok && s_add(o, "rusage", s_rusage());
    s_ok(&ok, cJSON_AddNumberToObject(o, "processed", (double)live.processed));
    s_ok(&ok, cJSON_AddNumberToObject(o, "succeeded", (double)self->succeeded));
    s_ok(&ok, cJSON_AddNumberToObject(o, "failed", (double)self->failed));
    s_ok(&ok, cJSON_AddNumberToObject(o, "retried", (double)self->retried));
    s_ok(&ok, cJSON_AddNumberToObject(o, "revoked", (double)self->revoked));
    s_ok(&ok, cJSON_AddNumberToObject(o, "bad_messages", (double)(live.bad_messages + self->bad)));
    s_ok(&ok, cJSON_AddStringToObject(o, "sw_ver", PACKAGE_VERSION));
    if (!ok) {
        cJSON_Delete(o);
        return ZQ_ENOMEM;
    }
    *reply = o;
    return ZQ_OK;
}

static cJSON *s_limit(double v)
{
    return v > 0 ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

/* The worker's effective settings, named like Celery's where one exists. */
static int s_conf_reply(zq_control_t *self, cJSON **reply)
{
    zq_control_live_t live;
    s_live(self, &live);
    const zq_control_config_t *c = &self->cfg;
    cJSON *o = cJSON_CreateObject();
    int ok = o != NULL;
    s_ok(&ok, cJSON_AddStringToObject(o, "broker_url", c->broker_url ? c->broker_url : ""));
    s_ok(&ok, cJSON_AddNumberToObject(o, "broker_heartbeat", live.heartbeat));
    s_ok(&ok, cJSON_AddStringToObject(o, "worker_name", c->name));
    s_ok(&ok, cJSON_AddStringToObject(o, "worker_hostname", zq_hostname()));
    s_ok(&ok, cJSON_AddStringToObject(o, "worker_plugins", c->plugins_dir ? c->plugins_dir : ""));
    cJSON *qs = cJSON_AddArrayToObject(o, "worker_queues");
    for (size_t i = 0; s_ok(&ok, qs) && i < c->nqueues; i++) {
        cJSON *s = cJSON_CreateString(c->queues[i]);
        if (!s || !cJSON_AddItemToArray(qs, s)) {
            cJSON_Delete(s);
            ok = 0;
        }
    }
    s_ok(&ok, cJSON_AddStringToObject(o, "worker_pool", zq_pool_kind_name(c->pool_kind)));
    s_ok(&ok, cJSON_AddNumberToObject(o, "worker_concurrency", c->concurrency));
    s_ok(&ok, cJSON_AddNumberToObject(o, "worker_prefetch", c->prefetch));
    s_ok(&ok, cJSON_AddNumberToObject(o, "worker_heartbeat", c->heartbeat));
    s_ok(&ok, cJSON_AddStringToObject(o, "worker_control", self->endpoint));
    s_ok(&ok, cJSON_AddNumberToObject(o, "worker_revokes_max", c->revokes_max));
    const char *lvl = "INFO";
    switch (zq_log_get_level()) {
    case ZQ_LOG_DEBUG: lvl = "DEBUG"; break;
    case ZQ_LOG_INFO: lvl = "INFO"; break;
    case ZQ_LOG_WARNING: lvl = "WARNING"; break;
    case ZQ_LOG_ERROR: lvl = "ERROR"; break;
    default: lvl = "CRITICAL";
    }
    s_ok(&ok, cJSON_AddStringToObject(o, "worker_log_level", lvl));
    ok = ok && s_add(o, "task_time_limit", s_limit(c->time_limit));
    ok = ok && s_add(o, "task_soft_time_limit", s_limit(c->soft_time_limit));
    s_ok(&ok, cJSON_AddStringToObject(o, "sw_ver", PACKAGE_VERSION));
    if (!ok) {
        cJSON_Delete(o);
        return ZQ_ENOMEM;
    }
    *reply = o;
    return ZQ_OK;
}

static const char *s_place_name(zq_control_place_t p)
{
    return p == ZQ_CONTROL_ACTIVE ? "active" : p == ZQ_CONTROL_SCHEDULED ? "scheduled" : "reserved";
}

/* {"id": ["active" | "reserved" | "scheduled", info]} for the ids held here. */
static int s_query_reply(zq_control_t *self, const cJSON *arguments, cJSON **reply,
                         int *truncated, char *err, size_t errlen)
{
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(arguments, "ids");
    int n = cJSON_IsArray(ids) ? cJSON_GetArraySize(ids) : -1;
    if (n < 1 || n > ZQ_CONTROL_MAX_IDS) {
        snprintf(err, errlen, "query_task: arguments.ids: must be an array of 1-%d task ids",
                 ZQ_CONTROL_MAX_IDS);
        return ZQ_EINVAL;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, ids)
    {
        if (!cJSON_IsString(e) || !zq_valid_token(e->valuestring)) {
            snprintf(err, errlen, "query_task: arguments.ids: every entry must be a task id");
            return ZQ_EINVAL;
        }
    }
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return ZQ_ENOMEM;
    size_t bytes = 0;
    cJSON_ArrayForEach(e, ids)
    {
        zq_control_job_t job;
        memset(&job, 0, sizeof job);
        if (!self->cfg.find_job || !self->cfg.find_job(self->cfg.src, e->valuestring, &job) ||
            !job.req || cJSON_GetObjectItemCaseSensitive(o, e->valuestring))
            continue;
        cJSON *pair = cJSON_CreateArray();
        cJSON *st = cJSON_CreateString(s_place_name(job.place));
        cJSON *info = s_info(self, &job);
        if (!pair || !st || !info || !cJSON_AddItemToArray(pair, st)) {
            cJSON_Delete(pair);
            cJSON_Delete(st);
            cJSON_Delete(info);
            cJSON_Delete(o);
            return ZQ_ENOMEM;
        }
        if (!cJSON_AddItemToArray(pair, info)) {
            cJSON_Delete(info);
            cJSON_Delete(pair);
            cJSON_Delete(o);
            return ZQ_ENOMEM;
        }
        char *txt = cJSON_PrintUnformatted(pair);
        bytes += txt ? strlen(txt) : 0;
        cJSON_free(txt);
        if (bytes > ZQ_CONTROL_MAX_REPLY) {
            cJSON_Delete(pair);
            *truncated = 1;
            break;
        }
        if (!cJSON_AddItemToObject(o, e->valuestring, pair)) {
            cJSON_Delete(pair);
            cJSON_Delete(o);
            return ZQ_ENOMEM;
        }
    }
    *reply = o;
    return ZQ_OK;
}

/* ---------------------------------------------------------------------------------------
 * Requests
 */
static void s_method_list(char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    for (const char *const *m = zq_control_methods; *m; m++) {
        int w = snprintf(buf + n, len - n, "%s%s", n ? ", " : "", *m);
        if (w < 0 || (size_t)w >= len - n)
            break;
        n += (size_t)w;
    }
}

cJSON *zq_control_handle(zq_control_t *self, const char *cmd, const cJSON *body)
{
    char err[512], methods[256];
    s_method_list(methods, sizeof methods);
    if (!self)
        return NULL;
    if (!cmd || strcmp(cmd, ZQ_CMD_INSPECT) != 0)
        return zq_reply_error(body, ZQ_WERR_UNKNOWN_CMD,
                              "unknown command %s (a worker's control socket answers %s)",
                              cmd ? cmd : "(none)", ZQ_CMD_INSPECT);
    const cJSON *mv = cJSON_GetObjectItemCaseSensitive(body, "method");
    if (!cJSON_IsString(mv))
        return zq_reply_error(body, ZQ_WERR_INVAL, "INSPECT: method: missing (one of %s)",
                              methods);
    const cJSON *arguments = cJSON_GetObjectItemCaseSensitive(body, "arguments");
    if (arguments && !cJSON_IsNull(arguments) && !cJSON_IsObject(arguments))
        return zq_reply_error(body, ZQ_WERR_INVAL, "INSPECT: arguments: must be an object");
    const char *m = mv->valuestring;
    cJSON *reply = NULL;
    int truncated = 0, rc;
    err[0] = '\0';
    if (!strcmp(m, "ping"))
        rc = (reply = cJSON_CreateObject()) && cJSON_AddStringToObject(reply, "ok", "pong")
                 ? ZQ_OK
                 : ZQ_ENOMEM;
    else if (!strcmp(m, "active"))
        rc = s_jobs_reply(self, ZQ_CONTROL_ACTIVE, &reply, &truncated);
    else if (!strcmp(m, "reserved"))
        rc = s_jobs_reply(self, ZQ_CONTROL_RESERVED, &reply, &truncated);
    else if (!strcmp(m, "scheduled"))
        rc = s_jobs_reply(self, ZQ_CONTROL_SCHEDULED, &reply, &truncated);
    else if (!strcmp(m, "revoked"))
        rc = s_revoked_reply(self, &reply, &truncated);
    else if (!strcmp(m, "registered"))
        rc = s_registered_reply(self, &reply);
    else if (!strcmp(m, "active_queues"))
        rc = s_queues_reply(self, &reply);
    else if (!strcmp(m, "stats"))
        rc = s_stats_reply(self, &reply);
    else if (!strcmp(m, "conf"))
        rc = s_conf_reply(self, &reply);
    else if (!strcmp(m, "query_task"))
        rc = s_query_reply(self, arguments, &reply, &truncated, err, sizeof err);
    else
        return zq_reply_error(body, ZQ_WERR_INVAL, "INSPECT: unknown method '%.100s' (one of %s)",
                              m, methods);
    if (rc == ZQ_EINVAL) {
        cJSON_Delete(reply);
        return zq_reply_error(body, ZQ_WERR_INVAL, "INSPECT: %s", err);
    }
    if (rc != ZQ_OK) {
        cJSON_Delete(reply);
        return zq_reply_error(body, S_EINTERNAL, "INSPECT %s: out of memory", m);
    }
    cJSON *out = cJSON_CreateObject();
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(body, "req");
    int ok = out != NULL;
    if (cJSON_IsNumber(req))
        s_ok(&ok, cJSON_AddNumberToObject(out, "req", req->valuedouble));
    s_ok(&ok, cJSON_AddStringToObject(out, "worker", self->cfg.name));
    s_ok(&ok, cJSON_AddStringToObject(out, "method", m));
    if (ok)
        ok = s_add(out, "reply", reply); /* takes reply over, even when it fails */
    else
        cJSON_Delete(reply);
    if (truncated)
        s_ok(&ok, cJSON_AddTrueToObject(out, "truncated"));
    if (!ok) {
        cJSON_Delete(out);
        return zq_reply_error(body, S_EINTERNAL, "INSPECT %s: out of memory", m);
    }
    return out;
}

static void s_bad(zq_control_t *self, const char *why)
{
    double m = zq_mono();
    self->bad++;
    if (m - self->last_bad < 1.0)
        return;
    self->last_bad = m;
    ZQ_WARN("control: dropping a malformed request: %s", why);
}

static void s_send(zq_control_t *self, const zq_msg_t *m, const cJSON *reply)
{
    char *txt = reply ? cJSON_PrintUnformatted(reply) : NULL;
    if (!txt) {
        ZQ_ERROR("control: out of memory answering %s", m->cmd[0] ? m->cmd : "a request");
        return;
    }
    size_t len = strlen(txt);
    if (len >= ZQ_MAX_MSG_SIZE) {
        cJSON_free(txt);
        cJSON *e = zq_reply_error(reply, S_EINTERNAL, "the reply is too large (%zu bytes)", len);
        txt = e ? cJSON_PrintUnformatted(e) : NULL;
        cJSON_Delete(e);
        if (!txt)
            return;
        len = strlen(txt);
    }
    /* a peer that went away, or whose queue is full, is dropped by the ROUTER: never blocks */
    zq_msg_send_raw(self->sock, m->identity, m->identity_len, ZQ_CMD_REPLY, txt, len,
                    ZMQ_DONTWAIT);
    cJSON_free(txt);
}

void zq_control_serve(zq_control_t *self)
{
    for (int i = 0; self && self->sock && i < ZQ_CONTROL_BATCH; i++) {
        zq_msg_t m;
        char err[256];
        int rc = zq_msg_recv(self->sock, 1, &m, ZMQ_DONTWAIT, err, sizeof err);
        if (rc == ZQ_ETIMEOUT)
            return;
        if (rc == ZQ_EIO) {
            ZQ_ERROR("control: %s", err);
            return;
        }
        cJSON *reply;
        if (rc != ZQ_OK) {
            s_bad(self, err);
            if (!m.identity_len)
                continue;
            int version = !strncmp(err, "unsupported protocol version", 28);
            reply = zq_reply_error(NULL, version ? ZQ_WERR_VERSION : ZQ_WERR_PROTO, "%s", err);
        } else {
            reply = zq_control_handle(self, m.cmd, m.body);
        }
        s_send(self, &m, reply);
        cJSON_Delete(reply);
        zq_msg_clear(&m);
    }
}
