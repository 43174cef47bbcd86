/*
 * zq_flower - the web monitor behind `zq-ctl flower` (see zq_flower.h, docs/monitor.md).
 *
 * Threads:
 *   - libmicrohttpd's listener plus one thread per connection. A handler borrows a broker
 *     client from a small pool (a zq_client_t is single-threaded), asks the broker and
 *     answers. The SSE stream's connection thread blocks on a condition variable until
 *     the events thread has something new for it.
 *   - the events thread: a SUB socket on the broker's events endpoint. It feeds the
 *     Prometheus metrics, the per-second success/failure history of the dashboard chart
 *     and the SSE ring (raw events, capped per second, plus a "tick" summary each second).
 *
 * Everything a page shows comes from the broker's store (TASKS, STATS) or live view
 * (WORKERS, QUEUES): nothing is reconstructed from events, so a monitor started late or
 * restarted shows the same numbers as before.
 */
#include "config.h"
#include "zq_flower.h"
#include "zq.h"
#include "zq_auth.h"
#include "zq_log.h"
#include "zq_proto.h"
#include "zq_sb.h"
#include "zq_time.h"
#include "zq_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <zmq.h>

#ifndef MHD_HTTP_CONTENT_TOO_LARGE
#define MHD_HTTP_CONTENT_TOO_LARGE 413
#endif
#if MHD_VERSION < 0x00097002
typedef int MHD_Result_t;
#else
typedef enum MHD_Result MHD_Result_t;
#endif

#define S_POOL_MAX 8             /* broker clients shared by the connection threads */
#define S_MAX_CONNS 256          /* HTTP connections at once */
#define S_CONN_TIMEOUT 120       /* s: an idle connection is closed */
#define S_BODY_MAX (1 << 20)     /* bytes of a POST body */
#define S_RING 4096              /* events kept for SSE clients */
#define S_SSE_RAW_PER_SEC 200    /* raw task events forwarded per second; the rest counted */
#define S_SSE_KEEPALIVE 15.0     /* s: comment line on an idle stream */
#define S_HISTORY 600            /* s of success/failure counts kept for the chart */
#define S_TASKMAP_MAX 200000     /* ids whose name/received time the metrics remember */
#define S_BATCH 1000             /* events drained from the SUB socket per round */
#define S_RESULT_WAIT_MAX 300.0  /* s: longest /api/task/result?timeout= */

/* Prometheus buckets of zq_task_runtime_seconds (the client library's defaults, as Flower) */
static const double s_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25,
                                   0.5,   0.75, 1.0,   2.5,  5.0,   7.5, 10.0};
#define S_NBUCKETS (sizeof s_buckets / sizeof s_buckets[0])

/* ---------------------------------------------------------------------------------------
 * Options
 */

/* "--name" or "--name=value" (Flower's underscore spelling too) */
static int s_optname(const char *arg, const char *name, const char **inline_val)
{
    if (arg[0] != '-' || arg[1] != '-')
        return 0;
    const char *a = arg + 2;
    size_t i = 0;
    for (; name[i]; i++) {
        char c = a[i] == '_' ? '-' : a[i];
        if (c != name[i])
            return 0;
    }
    if (a[i] == '\0') {
        *inline_val = NULL;
        return 1;
    }
    if (a[i] == '=') {
        *inline_val = a + i + 1;
        return 1;
    }
    return 0;
}

static int s_set_prefix(zq_flower_config_t *cfg, const char *v, char *err, size_t errlen)
{
    const char *p = v;
    while (*p == '/')
        p++;
    size_t n = strlen(p);
    while (n && p[n - 1] == '/')
        n--;
    if (n + 2 > sizeof cfg->prefix_buf) {
        zq_errf(err, errlen, "--url-prefix: too long");
        return ZQ_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == '~' || c == '/')) {
            zq_errf(err, errlen, "--url-prefix: '%s' may only contain letters, digits and -_.~/",
                  v);
            return ZQ_EINVAL;
        }
    }
    if (n == 0) {
        cfg->prefix_buf[0] = '\0';
    } else {
        cfg->prefix_buf[0] = '/';
        memcpy(cfg->prefix_buf + 1, p, n);
        cfg->prefix_buf[n + 1] = '\0';
    }
    cfg->url_prefix = cfg->prefix_buf;
    return ZQ_OK;
}

/* One --basic-auth value: "user:pass" or Flower's "u1:p1,u2:p2". */
static int s_add_auth(zq_flower_config_t *cfg, const char *v, char *err, size_t errlen)
{
    const char *p = v;
    for (;;) {
        const char *comma = strchr(p, ',');
        const char *colon = strchr(p, ':');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (!colon || colon == p || (size_t)(colon - p) + 1 >= n) {
            zq_errf(err, errlen, "--basic-auth: '%.*s' is not USER:PASSWORD (both non-empty)",
                  (int)n, p);
            return ZQ_EINVAL;
        }
        if (cfg->nauth == ZQ_FLOWER_MAX_AUTH) {
            zq_errf(err, errlen, "--basic-auth: at most %d users", ZQ_FLOWER_MAX_AUTH);
            return ZQ_EINVAL;
        }
        if (!comma) {
            cfg->auth[cfg->nauth++] = p;
            return ZQ_OK;
        }
        /* a list: the entries are borrowed from argv, so they keep the comma after them;
         * zq_flower_auth_ok compares up to it */
        cfg->auth[cfg->nauth++] = p;
        p = comma + 1;
    }
}

static int s_parse_port(const char *v, int *out)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (!*v || *end || errno || n < 0 || n > 65535)
        return ZQ_EINVAL;
    *out = (int)n;
    return ZQ_OK;
}

int zq_flower_parse_args(zq_flower_config_t *cfg, int argc, char *const argv[], char *err,
                         size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->address = ZQ_FLOWER_DEFAULT_ADDRESS;
    cfg->port = ZQ_FLOWER_DEFAULT_PORT;
    cfg->url_prefix = "";
    cfg->timeout = 5.0;
    if (err && errlen)
        err[0] = '\0';
    int seen_cmd = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            cfg->help = 1;
            continue;
        }
        if (!strcmp(a, "--version")) {
            cfg->version = 1;
            continue;
        }
        if (!strcmp(a, "--json") || !strcmp(a, "-j")) /* global; nothing to print as JSON */
            continue;
        if (!strcmp(a, "--read-only") || !strcmp(a, "--read_only")) {
            cfg->read_only = 1;
            continue;
        }
        static const char *const valued[] = {"broker",     "address", "port",
                                             "basic-auth", "url-prefix", "timeout",
                                             "curve-secret", "curve-server-key", NULL};
        int which = -1;
        if (!strcmp(a, "-b")) {
            which = 0;
        } else {
            for (int k = 0; valued[k] && which < 0; k++)
                if (s_optname(a, valued[k], &v))
                    which = k;
        }
        if (which < 0) {
            if (a[0] == '-' && a[1]) {
                zq_errf(err, errlen, "no such option: %s", a);
                return ZQ_EINVAL;
            }
            if (!seen_cmd && !strcmp(a, "flower")) {
                seen_cmd = 1;
                continue;
            }
            zq_errf(err, errlen, "unexpected extra argument: '%s'", a);
            return ZQ_EINVAL;
        }
        if (!v) {
            if (i + 1 >= argc) {
                zq_errf(err, errlen, "--%s requires a value", valued[which]);
                return ZQ_EINVAL;
            }
            v = argv[++i];
        }
        switch (which) {
        case 0:
            if (!*v) {
                zq_errf(err, errlen, "--broker: empty value");
                return ZQ_EINVAL;
            }
            cfg->broker = v;
            break;
        case 1: {
            struct in_addr in;
            if (!strcmp(v, "localhost"))
                v = "127.0.0.1";
            if (inet_pton(AF_INET, v, &in) != 1) {
                zq_errf(err, errlen, "--address: not an IPv4 address: '%s'", v);
                return ZQ_EINVAL;
            }
            cfg->address = v;
            break;
        }
        case 2:
            if (s_parse_port(v, &cfg->port) != ZQ_OK) {
                zq_errf(err, errlen, "--port: not a port number (0-65535): '%s'", v);
                return ZQ_EINVAL;
            }
            break;
        case 3:
            if (s_add_auth(cfg, v, err, errlen) != ZQ_OK)
                return ZQ_EINVAL;
            break;
        case 4:
            if (s_set_prefix(cfg, v, err, errlen) != ZQ_OK)
                return ZQ_EINVAL;
            break;
        case 5: {
            char *end;
            double t = strtod(v, &end);
            if (!*v || *end || !(t > 0) || !isfinite(t)) {
                zq_errf(err, errlen, "--timeout: not a number of seconds > 0: '%s'", v);
                return ZQ_EINVAL;
            }
            cfg->timeout = t;
            break;
        }
        case 6:
        case 7:
            if (!*v) {
                zq_errf(err, errlen, "--%s: empty value", valued[which]);
                return ZQ_EINVAL;
            }
            *(which == 6 ? &cfg->curve_secret : &cfg->curve_server_key) = v;
            break;
        }
    }
    return ZQ_OK;
}

static int s_is_loopback(const char *addr)
{
    struct in_addr in;
    return inet_pton(AF_INET, addr, &in) == 1 && (ntohl(in.s_addr) >> 24) == 127;
}

int zq_flower_check_config(const zq_flower_config_t *cfg, char *err, size_t errlen)
{
    if (!cfg->nauth && !s_is_loopback(cfg->address)) {
        zq_errf(err, errlen,
              "refusing to listen on %s without --basic-auth: anyone who can reach it could "
              "send and revoke tasks. Add --basic-auth USER:PASSWORD (and --read-only for a "
              "view-only monitor), or keep the default address 127.0.0.1",
              cfg->address);
        return ZQ_EINVAL;
    }
    return ZQ_OK;
}

long zq_flower_base64_decode(const char *in, char *out, size_t outlen)
{
    static const char *const tbl =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0, pad = 0;
    for (const char *p = in; *p; p++) {
        if (*p == '=') {
            pad++;
            continue;
        }
        const char *hit = pad ? NULL : strchr(tbl, *p);
        if (!hit || !*p)
            return -1;
        acc = (acc << 6) | (unsigned)(hit - tbl);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o + 1 >= outlen)
                return -1;
            out[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    if (pad > 2)
        return -1;
    out[o] = '\0';
    return (long)o;
}

/* Length of an --basic-auth entry (up to the comma of a Flower-style list). */
static size_t s_auth_len(const char *entry)
{
    const char *comma = strchr(entry, ',');
    return comma ? (size_t)(comma - entry) : strlen(entry);
}

int zq_flower_auth_ok(const zq_flower_config_t *cfg, const char *header)
{
    if (!header || strncasecmp(header, "Basic ", 6) != 0)
        return 0;
    const char *b64 = header + 6;
    while (*b64 == ' ')
        b64++;
    char got[1024];
    long n = zq_flower_base64_decode(b64, got, sizeof got);
    if (n < 0)
        return 0;
    /* compare with every entry, always all of their bytes: the time does not tell which
     * entry or how many leading bytes matched */
    int ok = 0;
    for (size_t i = 0; i < cfg->nauth; i++) {
        const char *want = cfg->auth[i];
        size_t wlen = s_auth_len(want);
        unsigned diff = (unsigned)(wlen != (size_t)n);
        for (size_t k = 0; k < wlen; k++)
            diff |= (unsigned char)want[k] ^ (unsigned char)(k < (size_t)n ? got[k] : 0);
        ok |= diff == 0;
    }
    return ok;
}

int zq_flower_wanted(int argc, char *const argv[])
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--"))
            return 0;
        if (a[0] == '-') {
            /* the global options that take a separate value */
            if (!strcmp(a, "-b") || !strcmp(a, "--broker") || !strcmp(a, "--timeout") ||
                !strcmp(a, "--curve-secret") || !strcmp(a, "--curve-server-key"))
                i++;
            continue;
        }
        return !strcmp(a, "flower");
    }
    return 0;
}

/* A Prometheus label value: backslash, quote and newline escaped. */
static void s_put_label(zq_sb_t *b, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '\\' || *s == '"')
            zq_sb_putn(b, "\\", 1);
        if (*s == '\n')
            zq_sb_putn(b, "\\n", 2);
        else
            zq_sb_putn(b, s, 1);
    }
}

/* ---------------------------------------------------------------------------------------
 * Shared state
 */
typedef struct {
    zq_client_t *c;
    int busy;
} s_slot_t;

/* One event kept for SSE clients. */
typedef struct {
    uint64_t seq;
    char *type; /* SSE "event:" name */
    char *data; /* JSON text */
} s_ring_t;

/* What the metrics remember about a task between its events. */
typedef struct s_tinfo {
    struct s_tinfo *hnext;        /* hash chain */
    struct s_tinfo *older, *newer; /* eviction order */
    char *name;
    double received; /* epoch, 0 = not seen */
    int has_eta;
    int prefetched;  /* counted in zq_worker_prefetched_tasks */
    char *worker;
    char id[];
} s_tinfo_t;

/* A labelled series of one metric family, found by hash. */
enum { M_EVENTS, M_RUNTIME, M_PREFETCH_TIME, M_PREFETCHED, M_COUNT };
#define S_SERIES_BUCKETS 4096

typedef struct s_series {
    struct s_series *next;  /* the family's list, for the exposition */
    struct s_series *hnext; /* hash chain */
    int family;
    char *worker, *task, *type; /* type: events_total only */
    double value;               /* counter / gauge value; histogram sum */
    unsigned long buckets[S_NBUCKETS];
    unsigned long count;        /* histogram count */
} s_series_t;

typedef struct {
    long sec;
    long succeeded, failed;
} s_rate_t;

struct zq_flower {
    zq_flower_config_t cfg;
    char broker_url[512];
    struct MHD_Daemon *mhd;
    int port;
    pthread_mutex_t mu;
    pthread_cond_t pool_cv, ring_cv;
    volatile sig_atomic_t stop;
    int stop_pipe[2];
    /* broker clients */
    s_slot_t pool[S_POOL_MAX];
    int npool;
    /* events thread */
    pthread_t ev_thread;
    int ev_started;
    int events_connected;    /* the SUB socket is connected to the broker's endpoint */
    char events_ep[600];
    double last_event;       /* wall time of the last event */
    /* SSE ring */
    s_ring_t ring[S_RING];
    uint64_t seq;            /* last sequence number written */
    long sse_clients;
    /* metrics (under mu) */
    s_series_t *fam[M_COUNT];
    s_series_t *series_hash[S_SERIES_BUCKETS];
    unsigned long events_seen, events_dropped_sse, bad_events;
    /* chart history (under mu) */
    s_rate_t hist[S_HISTORY];
    /* task names seen (events thread only, except task_types under mu) */
    s_tinfo_t **tbuckets;
    size_t tcap, tn;
    s_tinfo_t *oldest, *newest;
    char **types;            /* task names seen in events, for /api/task/types */
    size_t ntypes;
};

/* ---------------------------------------------------------------------------------------
 * Broker clients: a pool shared by the connection threads
 */
static zq_client_t *s_client_get(zq_flower_t *self)
{
    pthread_mutex_lock(&self->mu);
    zq_client_t *c = NULL;
    while (!c && !self->stop) {
        for (int i = 0; i < self->npool && !c; i++) {
            if (!self->pool[i].busy) {
                self->pool[i].busy = 1;
                c = self->pool[i].c;
            }
        }
        if (c)
            break;
        if (self->npool < S_POOL_MAX) {
            zq_client_t *nc = zq_client_new(self->broker_url);
            if (!nc)
                break;
            zq_client_set_linger(nc, 0);
            zq_client_set_timeout(nc, self->cfg.timeout);
            self->pool[self->npool].c = nc;
            self->pool[self->npool].busy = 1;
            self->npool++;
            c = nc;
            break;
        }
        pthread_cond_wait(&self->pool_cv, &self->mu);
    }
    pthread_mutex_unlock(&self->mu);
    return c;
}

static void s_client_put(zq_flower_t *self, zq_client_t *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&self->mu);
    for (int i = 0; i < self->npool; i++)
        if (self->pool[i].c == c)
            self->pool[i].busy = 0;
    pthread_cond_signal(&self->pool_cv);
    pthread_mutex_unlock(&self->mu);
}

/* A broker request (docs/protocol.md §7) on a pooled client. ZQ_OK with *reply (caller
 * owns); otherwise the client's error text in errbuf. */
static int s_request(zq_flower_t *self, const char *cmd, const cJSON *body, double timeout,
                     cJSON **reply, char *errbuf, size_t errlen)
{
    *reply = NULL;
    zq_client_t *c = s_client_get(self);
    if (!c) {
        zq_errf(errbuf, errlen, "no broker client available (shutting down, or out of memory)");
        return ZQ_ENOMEM;
    }
    int rc = zq_client_request(c, cmd, body, timeout, reply);
    if (rc != ZQ_OK) {
        if (rc == ZQ_ETIMEOUT)
            zq_errf(errbuf, errlen, "the broker at %s did not answer %s within %gs",
                  self->broker_url, cmd, timeout);
        else
            zq_errf(errbuf, errlen, "%s", zq_client_errmsg(c));
    }
    s_client_put(self, c);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * SSE ring (under mu)
 */
static void s_ring_push(zq_flower_t *self, const char *type, const char *data, size_t len)
{
    char *t = strdup(type);
    char *d = malloc(len + 1);
    if (!t || !d) {
        free(t);
        free(d);
        return;
    }
    memcpy(d, data, len);
    d[len] = '\0';
    s_ring_t *r = &self->ring[(self->seq + 1) % S_RING];
    free(r->type);
    free(r->data);
    r->type = t;
    r->data = d;
    r->seq = ++self->seq;
    pthread_cond_broadcast(&self->ring_cv);
}

/* ---------------------------------------------------------------------------------------
 * Metrics (under mu)
 */
static uint64_t s_hash3(int family, const char *a, const char *b, const char *c)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)family;
    const char *parts[3] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        for (const char *p = parts[i]; *p; p++) {
            h ^= (unsigned char)*p;
            h *= 1099511628211ULL;
        }
        h ^= 0x1f;
        h *= 1099511628211ULL;
    }
    return h;
}

/* The series of family with these labels, created at 0. NULL on ENOMEM. */
static s_series_t *s_series(zq_flower_t *self, int family, const char *worker, const char *task,
                            const char *type)
{
    worker = worker ? worker : "";
    task = task ? task : "";
    type = type ? type : "";
    size_t b = s_hash3(family, worker, task, type) % S_SERIES_BUCKETS;
    for (s_series_t *s = self->series_hash[b]; s; s = s->hnext)
        if (s->family == family && !strcmp(s->worker, worker) && !strcmp(s->task, task) &&
            !strcmp(s->type, type))
            return s;
    s_series_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->family = family;
    s->worker = strdup(worker);
    s->task = strdup(task);
    s->type = strdup(type);
    if (!s->worker || !s->task || !s->type) {
        free(s->worker);
        free(s->task);
        free(s->type);
        free(s);
        return NULL;
    }
    s->hnext = self->series_hash[b];
    self->series_hash[b] = s;
    s->next = self->fam[family];
    self->fam[family] = s;
    return s;
}

static void s_series_free(zq_flower_t *self)
{
    for (int f = 0; f < M_COUNT; f++) {
        s_series_t *s = self->fam[f];
        while (s) {
            s_series_t *next = s->next;
            free(s->worker);
            free(s->task);
            free(s->type);
            free(s);
            s = next;
        }
        self->fam[f] = NULL;
    }
    memset(self->series_hash, 0, sizeof self->series_hash);
}

static void s_hist_add(zq_flower_t *self, int failed)
{
    long sec = (long)zq_now();
    s_rate_t *r = &self->hist[sec % S_HISTORY];
    if (r->sec != sec) {
        r->sec = sec;
        r->succeeded = r->failed = 0;
    }
    if (failed)
        r->failed++;
    else
        r->succeeded++;
}

static void s_type_seen(zq_flower_t *self, const char *name)
{
    for (size_t i = 0; i < self->ntypes; i++)
        if (!strcmp(self->types[i], name))
            return;
    if (self->ntypes >= 10000)
        return;
    char **nt = realloc(self->types, (self->ntypes + 1) * sizeof *nt);
    if (!nt)
        return;
    self->types = nt;
    if ((nt[self->ntypes] = strdup(name)))
        self->ntypes++;
}

/* ---------------------------------------------------------------------------------------
 * What the metrics remember per task id (events thread only): its name (events after
 * task-sent carry only the id) and when it was received. Bounded: the oldest entry goes.
 */
static uint64_t s_hash(const char *s)
{
    return s_hash3(0, s, "", "");
}

static s_tinfo_t *s_tinfo_find(zq_flower_t *self, const char *id)
{
    if (!self->tcap)
        return NULL;
    for (s_tinfo_t *t = self->tbuckets[s_hash(id) & (self->tcap - 1)]; t; t = t->hnext)
        if (!strcmp(t->id, id))
            return t;
    return NULL;
}

static void s_tinfo_unlink(zq_flower_t *self, s_tinfo_t *t)
{
    s_tinfo_t **pp = &self->tbuckets[s_hash(t->id) & (self->tcap - 1)];
    while (*pp && *pp != t)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = t->hnext;
    if (t->older)
        t->older->newer = t->newer;
    else
        self->oldest = t->newer;
    if (t->newer)
        t->newer->older = t->older;
    else
        self->newest = t->older;
    self->tn--;
    free(t->name);
    free(t->worker);
    free(t);
}

static s_tinfo_t *s_tinfo_add(zq_flower_t *self, const char *id, const char *name)
{
    if (!self->tcap) {
        self->tbuckets = calloc(65536, sizeof *self->tbuckets);
        if (!self->tbuckets)
            return NULL;
        self->tcap = 65536;
    }
    if (self->tn >= S_TASKMAP_MAX)
        s_tinfo_unlink(self, self->oldest);
    size_t n = strlen(id);
    s_tinfo_t *t = calloc(1, sizeof *t + n + 1);
    if (!t)
        return NULL;
    memcpy(t->id, id, n + 1);
    t->name = strdup(name ? name : "");
    if (!t->name) {
        free(t);
        return NULL;
    }
    size_t b = s_hash(id) & (self->tcap - 1);
    t->hnext = self->tbuckets[b];
    self->tbuckets[b] = t;
    t->older = self->newest;
    if (self->newest)
        self->newest->newer = t;
    else
        self->oldest = t;
    self->newest = t;
    self->tn++;
    return t;
}

static void s_tinfo_free_all(zq_flower_t *self)
{
    while (self->oldest)
        s_tinfo_unlink(self, self->oldest);
    free(self->tbuckets);
    self->tbuckets = NULL;
    self->tcap = 0;
}

/* ---------------------------------------------------------------------------------------
 * The events thread
 */

/* One event: [topic][ZQP01][JSON object] (docs/protocol.md §4). The body (caller owns), or
 * NULL for a malformed message, which is consumed whole. */
static cJSON *s_recv_event(void *sub)
{
    zmq_msg_t f[3];
    size_t n = 0;
    int more = 1;
    while (more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, sub, n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(&part);
            break;
        }
        more = zmq_msg_more(&part);
        if (n < 3)
            f[n] = part;
        else
            zmq_msg_close(&part);
        n++;
    }
    if (n == 0)
        return NULL;
    cJSON *body = NULL;
    if (n == 3 && zmq_msg_size(&f[1]) == strlen(ZQ_PROTO_VERSION) &&
        !memcmp(zmq_msg_data(&f[1]), ZQ_PROTO_VERSION, strlen(ZQ_PROTO_VERSION))) {
        body = cJSON_ParseWithLength(zmq_msg_data(&f[2]), zmq_msg_size(&f[2]));
        if (!cJSON_IsObject(body) || !zq_json_str(body, "type", NULL)) {
            cJSON_Delete(body);
            body = cJSON_CreateNull(); /* marks "malformed" (not "nothing to read") */
        }
    } else {
        body = cJSON_CreateNull();
    }
    for (size_t i = 0; i < n && i < 3; i++)
        zmq_msg_close(&f[i]);
    return body;
}

/* Names of the task ids in evs the map does not know, asked in one QUERY. */
static void s_resolve_names(zq_flower_t *self, zq_client_t *c, cJSON **evs, int n)
{
    cJSON *body = cJSON_CreateObject();
    cJSON *ids = body ? cJSON_AddArrayToObject(body, "ids") : NULL;
    int asked = 0;
    for (int i = 0; i < n && ids; i++) {
        const char *type = zq_json_str(evs[i], "type", "");
        const char *id = zq_json_str(evs[i], "uuid", NULL);
        if (strncmp(type, "task-", 5) || !strcmp(type, "task-sent") || !zq_valid_token(id) ||
            s_tinfo_find(self, id))
            continue;
        int dup = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, ids)
        {
            if (!strcmp(e->valuestring, id)) {
                dup = 1;
                break;
            }
        }
        if (!dup && cJSON_AddItemToArray(ids, cJSON_CreateString(id)))
            asked++;
    }
    cJSON *reply = NULL;
    if (asked && zq_client_request(c, ZQ_CMD_QUERY, body, 2.0, &reply) == ZQ_OK) {
        const cJSON *rec;
        cJSON_ArrayForEach(rec, cJSON_GetObjectItemCaseSensitive(reply, "records"))
        {
            const char *id = zq_json_str(rec, "id", NULL);
            if (!id || !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, "known")))
                continue;
            s_tinfo_t *t = s_tinfo_add(self, id, zq_json_str(rec, "task", ""));
            if (!t)
                continue;
            const char *eta = zq_json_str(rec, "eta", NULL);
            t->has_eta = eta != NULL;
            double when;
            const char *recv = zq_json_str(rec, "date_received", NULL);
            if (recv && zq_time_parse(recv, &when) == ZQ_OK)
                t->received = when;
        }
    }
    cJSON_Delete(reply);
    cJSON_Delete(body);
}

typedef struct {
    long sec;             /* the second being counted */
    long raw, dropped, events, succeeded, failed;
} s_tick_t;

/* Apply one event to the metrics, the chart history and the SSE ring. Under mu. */
static void s_on_event(zq_flower_t *self, cJSON *ev, s_tick_t *tick)
{
    const char *type = zq_json_str(ev, "type", "");
    const char *worker = zq_json_str(ev, "hostname", "");
    double ts;
    if (zq_time_parse(zq_json_str(ev, "timestamp", ""), &ts) != ZQ_OK)
        ts = zq_now();
    self->events_seen++;
    self->last_event = zq_now();
    tick->events++;
    int is_task = !strncmp(type, "task-", 5);
    const char *id = zq_json_str(ev, "uuid", NULL);
    s_tinfo_t *t = NULL;
    const char *name = "";
    if (is_task && id) {
        t = s_tinfo_find(self, id);
        if (!strcmp(type, "task-sent")) {
            if (!t)
                t = s_tinfo_add(self, id, zq_json_str(ev, "name", ""));
            if (t)
                t->has_eta = zq_json_str(ev, "eta", NULL) != NULL;
        }
        if (t)
            name = t->name;
    }
    s_series_t *s = s_series(self, M_EVENTS, worker, name, type);
    if (s)
        s->value++;
    if (is_task && *name) {
        s_type_seen(self, name);
        if (!cJSON_GetObjectItemCaseSensitive(ev, "name"))
            cJSON_AddStringToObject(ev, "name", name); /* for the browser */
    }
    int succeeded = !strcmp(type, "task-succeeded"), failed = !strcmp(type, "task-failed");
    if (succeeded) {
        const cJSON *rt = cJSON_GetObjectItemCaseSensitive(ev, "runtime");
        if (cJSON_IsNumber(rt) && rt->valuedouble >= 0 &&
            (s = s_series(self, M_RUNTIME, worker, name, NULL))) {
            s->value += rt->valuedouble;
            s->count++;
            for (size_t i = 0; i < S_NBUCKETS; i++)
                if (rt->valuedouble <= s_buckets[i])
                    s->buckets[i]++;
        }
    }
    if (succeeded || failed) {
        s_hist_add(self, failed);
        if (failed)
            tick->failed++;
        else
            tick->succeeded++;
    }
    /* prefetch metrics (Flower's semantics), for tasks without an eta */
    if (t && !t->has_eta) {
        if (!strcmp(type, "task-received")) {
            t->received = ts;
            if (!t->prefetched && (s = s_series(self, M_PREFETCHED, worker, name, NULL))) {
                s->value++;
                t->prefetched = 1;
                free(t->worker);
                t->worker = strdup(worker);
            }
        } else if (!strcmp(type, "task-started")) {
            if (t->received > 0 && (s = s_series(self, M_PREFETCH_TIME, worker, name, NULL)))
                s->value = ts - t->received > 0 ? ts - t->received : 0;
        } else if ((succeeded || failed) &&
                   (s = s_series(self, M_PREFETCH_TIME, worker, name, NULL))) {
            s->value = 0;
        }
        if (t->prefetched && strcmp(type, "task-received") &&
            (s = s_series(self, M_PREFETCHED, t->worker ? t->worker : worker, name, NULL))) {
            if (s->value > 0)
                s->value--;
            t->prefetched = 0;
        }
    }
    if (t && (succeeded || failed || !strcmp(type, "task-revoked")))
        s_tinfo_unlink(self, t);
    /* SSE: worker events always, task events up to a rate */
    if (is_task && tick->raw >= S_SSE_RAW_PER_SEC) {
        tick->dropped++;
        self->events_dropped_sse++;
        return;
    }
    if (is_task)
        tick->raw++;
    if (self->sse_clients > 0) {
        char *txt = cJSON_PrintUnformatted(ev);
        if (txt)
            s_ring_push(self, type, txt, strlen(txt));
        cJSON_free(txt);
    }
}

/* Every second: a "tick" for the browsers (counts of the second that ended). */
static void s_tick(zq_flower_t *self, s_tick_t *tick)
{
    long now = (long)zq_now();
    if (now == tick->sec)
        return;
    if (tick->sec && self->sse_clients > 0) {
        char txt[256];
        int n = snprintf(txt, sizeof txt,
                         "{\"t\":%ld,\"succeeded\":%ld,\"failed\":%ld,\"events\":%ld,"
                         "\"dropped\":%ld,\"connected\":%s}",
                         tick->sec, tick->succeeded, tick->failed, tick->events, tick->dropped,
                         self->events_connected ? "true" : "false");
        s_ring_push(self, "tick", txt, (size_t)n);
    }
    memset(tick, 0, sizeof *tick);
    tick->sec = now;
}

static void *s_events_main(void *arg)
{
    zq_flower_t *self = arg;
    zq_log_set_process_name("EventsThread");
    zq_client_t *c = zq_client_new(self->broker_url);
    void *ctx = zmq_ctx_new();
    void *sub = NULL;
    cJSON **evs = calloc(S_BATCH, sizeof *evs);
    s_tick_t tick = {0};
    double next_try = 0;
    long bad_logged = 0;
    if (!c || !ctx || !evs) {
        ZQ_ERROR("flower: events: out of memory; live updates are off");
        goto out;
    }
    zq_client_set_linger(c, 0);
    while (!self->stop) {
        if (!sub && zq_mono() >= next_try) {
            cJSON *info = NULL;
            if (zq_client_request(c, ZQ_CMD_INFO, NULL, 1.0, &info) == ZQ_OK) {
                const char *ann = zq_json_str(info, "events", NULL);
                char ep[600];
                if (ann && zq_endpoint_resolve(ann, self->broker_url, ep, sizeof ep) == ZQ_OK &&
                    (sub = zmq_socket(ctx, ZMQ_SUB))) {
                    zq_socket_defaults(sub);
                    int hwm = 200000;
                    zmq_setsockopt(sub, ZMQ_RCVHWM, &hwm, sizeof hwm);
                    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "", 0);
                    zq_curve_client_t curve; /* the broker's server key, as the client's */
                    if (zq_curve_client_load(&curve, NULL, NULL, NULL, 0) == ZQ_OK)
                        zq_curve_client_apply(sub, &curve, NULL);
                    memset(&curve, 0, sizeof curve);
                    if (zmq_connect(sub, ep) == 0) {
                        pthread_mutex_lock(&self->mu);
                        snprintf(self->events_ep, sizeof self->events_ep, "%s", ep);
                        self->events_connected = 1;
                        pthread_mutex_unlock(&self->mu);
                        ZQ_INFO("flower: listening to events on %s", ep);
                    } else {
                        ZQ_WARN("flower: cannot connect to events endpoint %s: %s", ep,
                                zmq_strerror(errno));
                        zmq_close(sub);
                        sub = NULL;
                    }
                }
            } else if (!next_try) {
                ZQ_WARN("flower: broker %s not answering yet; retrying every second",
                        self->broker_url);
            }
            cJSON_Delete(info);
            next_try = zq_mono() + 1.0;
        }
        if (!sub) {
            pthread_mutex_lock(&self->mu);
            s_tick(self, &tick);
            pthread_mutex_unlock(&self->mu);
            usleep(100000);
            continue;
        }
        zmq_pollitem_t it = {sub, 0, ZMQ_POLLIN, 0};
        int n = 0;
        if (zmq_poll(&it, 1, 100) > 0) {
            while (n < S_BATCH) {
                cJSON *ev = s_recv_event(sub);
                if (!ev)
                    break;
                if (cJSON_IsNull(ev)) {
                    cJSON_Delete(ev);
                    if (!bad_logged++)
                        ZQ_WARN("flower: dropped a malformed event (logged once)");
                    pthread_mutex_lock(&self->mu);
                    self->bad_events++;
                    pthread_mutex_unlock(&self->mu);
                    continue;
                }
                evs[n++] = ev;
            }
        }
        if (n)
            s_resolve_names(self, c, evs, n);
        pthread_mutex_lock(&self->mu);
        for (int i = 0; i < n; i++) {
            s_tick(self, &tick);
            s_on_event(self, evs[i], &tick);
        }
        s_tick(self, &tick);
        pthread_mutex_unlock(&self->mu);
        for (int i = 0; i < n; i++)
            cJSON_Delete(evs[i]);
    }
out:
    if (sub)
        zmq_close(sub);
    if (ctx)
        zmq_ctx_term(ctx);
    zq_client_destroy(&c);
    free(evs);
    return NULL;
}

/* ---------------------------------------------------------------------------------------
 * HTTP: responses
 */
typedef struct {
    zq_sb_t body;   /* POST body */
    int too_large;  /* the body passed S_BODY_MAX */
    double t0;      /* monotonic, for the access log */
} s_req_t;

/* Headers every response gets; HTML adds a content security policy (everything from
 * 'self': the pages load nothing from elsewhere). */
static void s_common_headers(struct MHD_Response *r, const char *type, int html)
{
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    if (html) {
        MHD_add_response_header(r, "Content-Security-Policy",
                                "default-src 'self'; img-src 'self' data:; "
                                "frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
        MHD_add_response_header(r, "X-Frame-Options", "DENY");
    }
}

static MHD_Result_t s_send(struct MHD_Connection *conn, unsigned status, const char *type,
                           const char *body, size_t len, int cache)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    s_common_headers(r, type, !strncmp(type, "text/html", 9));
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL,
                            cache ? "public, max-age=300" : "no-store");
    MHD_Result_t ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* Print v (borrowed) as the JSON body. */
static MHD_Result_t s_json(struct MHD_Connection *conn, unsigned status, const cJSON *v)
{
    char *txt = v ? cJSON_PrintUnformatted(v) : NULL;
    if (!txt) {
        static const char oom[] = "{\"error\":\"out of memory\"}";
        return s_send(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "application/json", oom,
                      sizeof oom - 1, 0);
    }
    MHD_Result_t ret = s_send(conn, status, "application/json", txt, strlen(txt), 0);
    cJSON_free(txt);
    return ret;
}

/* {"error": "message"} with status. */
static MHD_Result_t s_error(struct MHD_Connection *conn, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static MHD_Result_t s_error(struct MHD_Connection *conn, unsigned status, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *o = cJSON_CreateObject();
    if (o)
        cJSON_AddStringToObject(o, "error", msg);
    MHD_Result_t ret = s_json(conn, status, o);
    cJSON_Delete(o);
    return ret;
}

/* The status for a failed broker request. */
static unsigned s_broker_status(int rc)
{
    return rc == ZQ_EINVAL ? MHD_HTTP_BAD_REQUEST
           : rc == ZQ_ENOTFOUND ? MHD_HTTP_NOT_FOUND
           : rc == ZQ_ETIMEOUT || rc == ZQ_EIO ? MHD_HTTP_SERVICE_UNAVAILABLE
                                               : MHD_HTTP_BAD_GATEWAY;
}

static const char *s_arg(struct MHD_Connection *conn, const char *key)
{
    const char *v = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, key);
    return v && *v ? v : NULL;
}

/* An argument that Flower's pages send as "All" for "no filter". */
static const char *s_filter_arg(struct MHD_Connection *conn, const char *key)
{
    const char *v = s_arg(conn, key);
    return v && strcasecmp(v, "all") ? v : NULL;
}

static int s_parse_long(const char *v, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (*end || errno || n < lo || n > hi)
        return ZQ_EINVAL;
    *out = n;
    return ZQ_OK;
}

/* "true/false/1/0/yes/no" (any case). -1 when none of those. */
static int s_parse_bool(const char *v)
{
    if (!v)
        return 0;
    if (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes"))
        return 1;
    if (!strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "no"))
        return 0;
    return -1;
}

/* Epoch seconds of an ISO timestamp member, or 0. */
static double s_epoch(const cJSON *obj, const char *key)
{
    double t;
    const char *s = zq_json_str(obj, key, NULL);
    return s && zq_time_parse(s, &t) == ZQ_OK ? t : 0;
}

static void s_add_epoch(cJSON *o, const char *key, double t)
{
    if (t > 0)
        cJSON_AddNumberToObject(o, key, t);
    else
        cJSON_AddNullToObject(o, key);
}

/* Add Flower's field names to a task record (docs/protocol.md §9) in place: uuid, name,
 * sent, received, started, succeeded / failed / revoked / retried and timestamp as epoch
 * seconds, routing_key. */
static void s_flowerize(cJSON *rec)
{
    const char *state = zq_json_str(rec, "state", "");
    cJSON_AddItemToObject(rec, "uuid", cJSON_CreateString(zq_json_str(rec, "id", "")));
    const char *task = zq_json_str(rec, "task", NULL);
    cJSON_AddItemToObject(rec, "name", task ? cJSON_CreateString(task) : cJSON_CreateNull());
    const char *queue = zq_json_str(rec, "queue", NULL);
    cJSON_AddItemToObject(rec, "routing_key",
                          queue ? cJSON_CreateString(queue) : cJSON_CreateNull());
    double sent = s_epoch(rec, "date_sent"), received = s_epoch(rec, "date_received");
    double started = s_epoch(rec, "date_started"), done = s_epoch(rec, "date_done");
    s_add_epoch(rec, "sent", sent);
    s_add_epoch(rec, "received", received);
    s_add_epoch(rec, "started", started);
    s_add_epoch(rec, "succeeded", !strcmp(state, "SUCCESS") ? done : 0);
    s_add_epoch(rec, "failed", !strcmp(state, "FAILURE") ? done : 0);
    s_add_epoch(rec, "revoked", !strcmp(state, "REVOKED") ? done : 0);
    double ts = done > 0 ? done : started > 0 ? started : received > 0 ? received : sent;
    s_add_epoch(rec, "timestamp", ts);
}

/* ---------------------------------------------------------------------------------------
 * HTTP: access control
 */

/* 1 when the request may go on; otherwise a 401 has been queued. */
static int s_authorized(zq_flower_t *self, struct MHD_Connection *conn, MHD_Result_t *ret)
{
    if (!self->cfg.nauth)
        return 1;
    const char *h =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (zq_flower_auth_ok(&self->cfg, h))
        return 1;
    static const char body[] = "{\"error\":\"authentication required\"}";
    struct MHD_Response *r = MHD_create_response_from_buffer(sizeof body - 1, (void *)body,
                                                             MHD_RESPMEM_PERSISTENT);
    if (!r) {
        *ret = MHD_NO;
        return 0;
    }
    s_common_headers(r, "application/json", 0);
    MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                            "Basic realm=\"zq flower\", charset=\"UTF-8\"");
    *ret = MHD_queue_response(conn, MHD_HTTP_UNAUTHORIZED, r);
    MHD_destroy_response(r);
    return 0;
}

/* A POST from another site (a page elsewhere making the user's browser post here) is
 * refused: browsers send Origin on cross-origin POSTs, and Sec-Fetch-Site. Clients that
 * send neither (curl, scripts) are not browsers being tricked. NULL when allowed, else
 * why not. */
static const char *s_cross_site(struct MHD_Connection *conn)
{
    const char *site = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Sec-Fetch-Site");
    if (site && strcmp(site, "same-origin") && strcmp(site, "none"))
        return "cross-site request refused (Sec-Fetch-Site)";
    const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
    if (!origin)
        return NULL;
    const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    const char *o = origin;
    if (!strncmp(o, "http://", 7))
        o += 7;
    else if (!strncmp(o, "https://", 8))
        o += 8;
    else
        return "cross-site request refused (Origin)";
    if (!host || strcasecmp(o, host))
        return "cross-site request refused (Origin does not match Host)";
    return NULL;
}

/* ---------------------------------------------------------------------------------------
 * HTTP: API handlers (docs/monitor.md lists each route)
 */
#define S_ERRLEN 600

/* GET /api/tasks */
static MHD_Result_t s_api_tasks(zq_flower_t *self, struct MHD_Connection *conn)
{
    cJSON *body = cJSON_CreateObject();
    if (!body)
        return s_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    const char *v;
    long n;
    MHD_Result_t ret;
    if ((v = s_arg(conn, "limit"))) {
        if (s_parse_long(v, 1, 1000, &n) != ZQ_OK) {
            ret = s_error(conn, MHD_HTTP_BAD_REQUEST,
                          "limit: must be an integer from 1 to 1000, got '%.40s'", v);
            goto out;
        }
        cJSON_AddNumberToObject(body, "limit", (double)n);
    }
    if ((v = s_arg(conn, "offset"))) {
        if (s_parse_long(v, 0, 1000000000000L, &n) != ZQ_OK) {
            ret = s_error(conn, MHD_HTTP_BAD_REQUEST,
                          "offset: must be an integer >= 0, got '%.40s'", v);
            goto out;
        }
        cJSON_AddNumberToObject(body, "offset", (double)n);
    }
    static const char *const pass[][2] = {{"sort_by", "sort_by"},     {"state", "state"},
                                          {"taskname", "taskname"},   {"workername", "workername"},
                                          {"parent_id", "parent_id"}, {"root_id", "root_id"},
                                          {"search", "search"}};
    for (size_t i = 0; i < sizeof pass / sizeof pass[0]; i++) {
        v = i == 0 || i == 6 ? s_arg(conn, pass[i][0]) : s_filter_arg(conn, pass[i][0]);
        if (!v)
            continue;
        if (i == 1) { /* Flower pages send lower case */
            char up[128];
            size_t k = 0;
            for (; v[k] && k + 1 < sizeof up; k++)
                up[k] = (v[k] >= 'a' && v[k] <= 'z') ? (char)(v[k] - 32) : v[k];
            up[k] = '\0';
            cJSON_AddStringToObject(body, pass[i][1], up);
        } else {
            cJSON_AddStringToObject(body, pass[i][1], v);
        }
    }
    static const char *const times[] = {"received_start", "received_end"};
    for (int i = 0; i < 2; i++) {
        double t;
        char iso[40];
        if (!(v = s_arg(conn, times[i])))
            continue;
        if (zq_time_parse(v, &t) != ZQ_OK) {
            ret = s_error(conn, MHD_HTTP_BAD_REQUEST,
                          "%s: not a date/time (YYYY-MM-DD HH:MM, or ISO 8601): '%.60s'", times[i],
                          v);
            goto out;
        }
        cJSON_AddStringToObject(body, times[i], zq_time_iso(t, iso, sizeof iso));
    }
    int as_list = (v = s_arg(conn, "format")) && !strcmp(v, "list");
    cJSON *reply = NULL;
    char err[S_ERRLEN];
    int rc = s_request(self, ZQ_CMD_TASKS, body, self->cfg.timeout, &reply, err, sizeof err);
    if (rc != ZQ_OK) {
        ret = s_error(conn, s_broker_status(rc), "%s", err);
        goto out;
    }
    cJSON *tasks = cJSON_GetObjectItemCaseSensitive(reply, "tasks");
    cJSON *rec;
    cJSON_ArrayForEach(rec, tasks)
    {
        s_flowerize(rec);
    }
    if (as_list) {
        ret = s_json(conn, MHD_HTTP_OK, reply);
    } else {
        /* Flower's shape: an object keyed by task id, in order */
        cJSON *o = cJSON_CreateObject();
        while (o && tasks && tasks->child) {
            cJSON *r = cJSON_DetachItemFromArray(tasks, 0);
            cJSON_AddItemToObject(o, zq_json_str(r, "id", "?"), r);
        }
        char *txt = o ? cJSON_PrintUnformatted(o) : NULL;
        if (!txt) {
            ret = s_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        } else {
            struct MHD_Response *r =
                MHD_create_response_from_buffer(strlen(txt), txt, MHD_RESPMEM_MUST_COPY);
            if (r) {
                char total[32];
                snprintf(total, sizeof total, "%.0f", zq_json_num(reply, "total", 0));
                s_common_headers(r, "application/json", 0);
                MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
                MHD_add_response_header(r, "X-Total-Count", total);
                ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
                MHD_destroy_response(r);
            } else {
                ret = MHD_NO;
            }
        }
        cJSON_free(txt);
        cJSON_Delete(o);
    }
    cJSON_Delete(reply);
out:
    cJSON_Delete(body);
    return ret;
}

/* The record of id: ZQ_OK with *rec (caller owns), ZQ_ENOTFOUND when the broker never
 * accepted it, or a broker error (err). */
static int s_record(zq_flower_t *self, const char *id, cJSON **rec, char *err, size_t errlen)
{
    cJSON *body = cJSON_CreateObject();
    if (!body || !cJSON_AddStringToObject(body, "id", id)) {
        cJSON_Delete(body);
        zq_errf(err, errlen, "out of memory");
        return ZQ_ENOMEM;
    }
    int rc = s_request(self, ZQ_CMD_QUERY, body, self->cfg.timeout, rec, err, errlen);
    cJSON_Delete(body);
    if (rc == ZQ_OK && !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(*rec, "known"))) {
        zq_errf(err, errlen, "Unknown task '%s'", id);
        return ZQ_ENOTFOUND; /* *rec stays: the caller may show it */
    }
    return rc;
}

/* GET /api/task/info/<id>: the record with Flower's names, and its children. */
static MHD_Result_t s_api_task_info(zq_flower_t *self, struct MHD_Connection *conn,
                                    const char *id)
{
    if (!zq_valid_token(id))
        return s_error(conn, MHD_HTTP_BAD_REQUEST,
                       "not a task id: ids are 1-255 printable characters without spaces");
    cJSON *rec = NULL;
    char err[S_ERRLEN];
    int rc = s_record(self, id, &rec, err, sizeof err);
    if (rc != ZQ_OK) {
        cJSON_Delete(rec);
        return s_error(conn, s_broker_status(rc), "%s", err);
    }
    s_flowerize(rec);
    cJSON *body = cJSON_CreateObject();
    cJSON *children = cJSON_AddArrayToObject(rec, "children");
    if (body && children) {
        cJSON_AddStringToObject(body, "parent_id", id);
        cJSON_AddNumberToObject(body, "limit", 1000);
        cJSON_AddStringToObject(body, "sort_by", "sent");
        cJSON *reply = NULL;
        if (s_request(self, ZQ_CMD_TASKS, body, self->cfg.timeout, &reply, err, sizeof err) ==
            ZQ_OK) {
            const cJSON *c;
            cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(reply, "tasks"))
            {
                cJSON *one = cJSON_CreateObject();
                if (!one)
                    break;
                cJSON_AddStringToObject(one, "id", zq_json_str(c, "id", ""));
                cJSON_AddStringToObject(one, "name", zq_json_str(c, "task", ""));
                cJSON_AddStringToObject(one, "state", zq_json_str(c, "state", ""));
                cJSON_AddItemToArray(children, one);
            }
        }
        cJSON_Delete(reply);
    }
    cJSON_Delete(body);
    MHD_Result_t ret = s_json(conn, MHD_HTTP_OK, rec);
    cJSON_Delete(rec);
    return ret;
}

static int s_is_terminal(const char *state)
{
    return !strcmp(state, ZQ_STATE_SUCCESS) || !strcmp(state, ZQ_STATE_FAILURE) ||
           !strcmp(state, ZQ_STATE_REVOKED);
}

/* {"task-id", "state", "result"...} of id, after waiting (a parked GET, in 1 s slices so
 * that a shutdown is not held up) at most timeout seconds for the task to end. */
static MHD_Result_t s_result_reply(zq_flower_t *self, struct MHD_Connection *conn,
                                   const char *id, double timeout)
{
    char err[S_ERRLEN];
    cJSON *rec = NULL;
    int rc = s_record(self, id, &rec, err, sizeof err);
    double deadline = zq_mono() + timeout;
    while (rc == ZQ_OK && !self->stop &&
           !s_is_terminal(zq_json_str(rec, "state", "")) && zq_mono() < deadline) {
        double slice = deadline - zq_mono();
        if (slice > 1.0)
            slice = 1.0;
        cJSON *body = cJSON_CreateObject();
        cJSON_AddStringToObject(body, "id", id);
        cJSON_AddNumberToObject(body, "timeout", slice > 0 ? slice : 0);
        cJSON *next = NULL;
        rc = s_request(self, ZQ_CMD_GET, body, slice + self->cfg.timeout, &next, err,
                       sizeof err);
        cJSON_Delete(body);
        if (rc == ZQ_OK) {
            cJSON_Delete(rec);
            rec = next;
        }
    }
    if (rc != ZQ_OK) {
        MHD_Result_t ret;
        if (rc == ZQ_ENOTFOUND) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "error", err);
            cJSON_AddStringToObject(o, "task-id", id);
            cJSON_AddStringToObject(o, "state", "PENDING");
            cJSON_AddBoolToObject(o, "known", 0);
            ret = s_json(conn, MHD_HTTP_NOT_FOUND, o);
            cJSON_Delete(o);
        } else {
            ret = s_error(conn, s_broker_status(rc), "%s", err);
        }
        cJSON_Delete(rec);
        return ret;
    }
    const char *state = zq_json_str(rec, "state", "PENDING");
    cJSON *o = cJSON_CreateObject();
    if (o) {
        cJSON_AddStringToObject(o, "task-id", id);
        cJSON_AddStringToObject(o, "state", state);
        if (s_is_terminal(state)) {
            cJSON *res = cJSON_DetachItemFromObjectCaseSensitive(rec, "result");
            cJSON_AddItemToObject(o, "result", res ? res : cJSON_CreateNull());
        }
        if (strcmp(state, "SUCCESS") && s_is_terminal(state)) {
            cJSON_AddItemToObject(o, "exception",
                                  cJSON_DetachItemFromObjectCaseSensitive(rec, "exception"));
            const char *tb = zq_json_str(rec, "traceback", NULL);
            cJSON_AddItemToObject(o, "traceback", tb ? cJSON_CreateString(tb) : cJSON_CreateNull());
        }
        if (timeout > 0 && !s_is_terminal(state))
            cJSON_AddBoolToObject(o, "timeout", 1);
    }
    MHD_Result_t ret = o ? s_json(conn, MHD_HTTP_OK, o)
                         : s_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    cJSON_Delete(o);
    cJSON_Delete(rec);
    return ret;
}

/* GET /api/task/result/<id>?timeout=S */
static MHD_Result_t s_api_task_result(zq_flower_t *self, struct MHD_Connection *conn,
                                      const char *id)
{
    if (!zq_valid_token(id))
        return s_error(conn, MHD_HTTP_BAD_REQUEST,
                       "not a task id: ids are 1-255 printable characters without spaces");
    double timeout = 0;
    const char *v = s_arg(conn, "timeout");
    if (v) {
        char *end;
        timeout = strtod(v, &end);
        if (*end || !(timeout >= 0) || timeout > S_RESULT_WAIT_MAX)
            return s_error(conn, MHD_HTTP_BAD_REQUEST,
                           "timeout: must be a number of seconds from 0 to %g, got '%.40s'",
                           S_RESULT_WAIT_MAX, v);
    }
    return s_result_reply(self, conn, id, timeout);
}

/* Names: live workers' registered tasks plus those seen in events. Caller owns. */
static cJSON *s_task_types(zq_flower_t *self, const cJSON *workers)
{
    cJSON *arr = cJSON_CreateArray();
    if (!arr)
        return NULL;
    const cJSON *w, *t;
    cJSON_ArrayForEach(w, workers)
    {
        cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(w, "tasks"))
        {
            if (cJSON_IsString(t))
                cJSON_AddItemToArray(arr, cJSON_CreateString(t->valuestring));
        }
    }
    pthread_mutex_lock(&self->mu);
    for (size_t i = 0; i < self->ntypes; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(self->types[i]));
    pthread_mutex_unlock(&self->mu);
    /* sort and drop duplicates (a few hundred names at most) */
    int n = cJSON_GetArraySize(arr);
    const char **names = calloc((size_t)n + 1, sizeof *names);
    cJSON *out = cJSON_CreateArray();
    if (names && out) {
        int k = 0;
        cJSON_ArrayForEach(t, arr) names[k++] = t->valuestring;
        for (int i = 1; i < n; i++)
            for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
                const char *x = names[j];
                names[j] = names[j - 1];
                names[j - 1] = x;
            }
        for (int i = 0; i < n; i++)
            if (i == 0 || strcmp(names[i], names[i - 1]))
                cJSON_AddItemToArray(out, cJSON_CreateString(names[i]));
    }
    free(names);
    cJSON_Delete(arr);
    return out;
}

/* GET /api/task/types */
static MHD_Result_t s_api_task_types(zq_flower_t *self, struct MHD_Connection *conn)
{
    cJSON *reply = NULL;
    char err[S_ERRLEN];
    int rc = s_request(self, ZQ_CMD_WORKERS, NULL, self->cfg.timeout, &reply, err, sizeof err);
    if (rc != ZQ_OK)
        return s_error(conn, s_broker_status(rc), "%s", err);
    cJSON *o = cJSON_CreateObject();
    cJSON *types = s_task_types(self, cJSON_GetObjectItemCaseSensitive(reply, "workers"));
    if (o && types)
        cJSON_AddItemToObject(o, "task-types", types);
    else
        cJSON_Delete(types);
    MHD_Result_t ret = s_json(conn, MHD_HTTP_OK, o);
    cJSON_Delete(o);
    cJSON_Delete(reply);
    return ret;
}

/* GET /api/queues/length: Flower's active_queues ("messages" = ready), plus zq's
 * scheduled, reserved and consumers. */
static MHD_Result_t s_api_queues(zq_flower_t *self, struct MHD_Connection *conn)
{
    cJSON *reply = NULL;
    char err[S_ERRLEN];
    int rc = s_request(self, ZQ_CMD_QUEUES, NULL, self->cfg.timeout, &reply, err, sizeof err);
    if (rc != ZQ_OK)
        return s_error(conn, s_broker_status(rc), "%s", err);
    cJSON *qs = cJSON_DetachItemFromObjectCaseSensitive(reply, "queues");
    cJSON *q;
    cJSON_ArrayForEach(q, qs)
    {
        cJSON_AddNumberToObject(q, "messages", zq_json_num(q, "ready", 0));
    }
    cJSON *o = cJSON_CreateObject();
    if (o)
        cJSON_AddItemToObject(o, "active_queues", qs ? qs : cJSON_CreateArray());
    else
        cJSON_Delete(qs);
    MHD_Result_t ret = s_json(conn, MHD_HTTP_OK, o);
    cJSON_Delete(o);
    cJSON_Delete(reply);
    return ret;
}

/* A worker's control socket (docs/management.md): a DEALER connected to it. */
typedef struct {
    void *ctx, *sock;
    int req;
} s_ctl_t;

/* curve_key: the worker's announced control key (WORKERS "curve_key"), NULL without CURVE. */
static int s_ctl_open(zq_flower_t *self, s_ctl_t *c, const char *endpoint, const char *curve_key)
{
    memset(c, 0, sizeof *c);
    char ep[600];
    if (!endpoint || !*endpoint ||
        zq_endpoint_resolve(endpoint, self->broker_url, ep, sizeof ep) != ZQ_OK)
        return ZQ_EINVAL;
    zq_curve_client_t curve;
    if (curve_key && (zq_curve_client_load(&curve, NULL, NULL, NULL, 0) != ZQ_OK ||
                      !curve.enabled))
        return ZQ_EINVAL; /* a CURVE worker, and we have no keys */
    c->ctx = zmq_ctx_new();
    c->sock = c->ctx ? zmq_socket(c->ctx, ZMQ_DEALER) : NULL;
    int rc = c->sock ? ZQ_OK : ZQ_EIO;
    if (rc == ZQ_OK) {
        zq_socket_defaults(c->sock);
        if (curve_key && zq_curve_client_apply(c->sock, &curve, curve_key) != ZQ_OK)
            rc = ZQ_EINVAL;
        else if (zmq_connect(c->sock, ep) != 0)
            rc = ZQ_EIO;
    }
    if (curve_key)
        memset(&curve, 0, sizeof curve);
    return rc;
}

static void s_ctl_close(s_ctl_t *c)
{
    if (c->sock)
        zmq_close(c->sock);
    if (c->ctx)
        zmq_ctx_term(c->ctx);
    memset(c, 0, sizeof *c);
}

/* INSPECT {"req", "method", "arguments"} and its REPLY within timeout seconds. ZQ_OK with
 * *reply (caller owns: {"worker", "method", "reply"} or {"error": {"code", "message"}}),
 * ZQ_ETIMEOUT, ZQ_EIO. */
static int s_ctl_call(s_ctl_t *c, const char *method, const char *arguments, double timeout,
                      cJSON **reply)
{
    *reply = NULL;
    char body[512];
    int req = ++c->req;
    int n = snprintf(body, sizeof body, "{\"req\":%d,\"method\":\"%s\",\"arguments\":%s}", req,
                     method, arguments ? arguments : "{}");
    if (n < 0 || (size_t)n >= sizeof body ||
        zq_msg_send_raw(c->sock, NULL, 0, ZQ_CMD_INSPECT, body, (size_t)n, 0) != ZQ_OK)
        return ZQ_EIO;
    double until = zq_mono() + timeout;
    while (zq_mono() < until) {
        zmq_pollitem_t it = {c->sock, 0, ZMQ_POLLIN, 0};
        long ms = (long)((until - zq_mono()) * 1000) + 1;
        if (zmq_poll(&it, 1, ms) <= 0)
            continue;
        zq_msg_t m;
        char err[128];
        if (zq_msg_recv(c->sock, 0, &m, ZMQ_DONTWAIT, err, sizeof err) != ZQ_OK)
            continue;
        /* compared as numbers: a worker's "req": 1e300 must not be converted to int */
        if (zq_json_num(m.body, "req", -1) != (double)req) { /* a late answer to an earlier one */
            zq_msg_clear(&m);
            continue;
        }
        *reply = m.body;
        m.body = NULL;
        zq_msg_clear(&m);
        return ZQ_OK;
    }
    return ZQ_ETIMEOUT;
}

/* The worker objects of WORKERS merged with the per-worker counts of STATS, keyed by
 * name. Caller owns. */
static cJSON *s_workers_view(const cJSON *workers_reply, const cJSON *stats_reply)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    const cJSON *w;
    cJSON_ArrayForEach(w, cJSON_GetObjectItemCaseSensitive(workers_reply, "workers"))
    {
        const char *name = zq_json_str(w, "name", NULL);
        if (!name || cJSON_GetObjectItemCaseSensitive(o, name))
            continue;
        cJSON *e = cJSON_Duplicate(w, 1);
        if (!e)
            continue;
        cJSON_AddBoolToObject(e, "online", 1);
        cJSON_AddStringToObject(e, "status", "online");
        cJSON_AddItemToObject(o, name, e);
    }
    cJSON_ArrayForEach(w, cJSON_GetObjectItemCaseSensitive(stats_reply, "workers"))
    {
        const char *name = zq_json_str(w, "name", NULL);
        if (!name)
            continue;
        cJSON *e = cJSON_GetObjectItemCaseSensitive(o, name);
        if (!e) { /* known from the store only: offline */
            e = cJSON_CreateObject();
            if (!e)
                continue;
            cJSON_AddStringToObject(e, "name", name);
            cJSON_AddBoolToObject(e, "online", 0);
            cJSON_AddStringToObject(e, "status", "offline");
            const char *hb = zq_json_str(w, "last_heartbeat", NULL);
            cJSON_AddItemToObject(e, "last_heartbeat",
                                  hb ? cJSON_CreateString(hb) : cJSON_CreateNull());
            cJSON_AddItemToObject(o, name, e);
        }
        cJSON *st = cJSON_AddObjectToObject(e, "stats");
        static const char *const keys[] = {"processed", "succeeded", "failed", "retried"};
        for (int i = 0; st && i < 4; i++)
            cJSON_AddNumberToObject(st, keys[i], zq_json_num(w, keys[i], 0));
    }
    cJSON *e;
    cJSON_ArrayForEach(e, o)
    {
        if (!cJSON_GetObjectItemCaseSensitive(e, "stats")) {
            cJSON *st = cJSON_AddObjectToObject(e, "stats");
            static const char *const keys[] = {"processed", "succeeded", "failed", "retried"};
            for (int i = 0; st && i < 4; i++)
                cJSON_AddNumberToObject(st, keys[i], 0);
        }
    }
    return o;
}

/* The INSPECT methods the worker page shows, asked of a live worker's control socket. */
static const char *const s_inspect_methods[] = {"active", "reserved", "scheduled", "revoked",
                                                "active_queues", "stats", "conf", NULL};

/* GET /api/workers[?workername=N][&status=1][&refresh=1] */
static MHD_Result_t s_api_workers(zq_flower_t *self, struct MHD_Connection *conn)
{
    cJSON *wr = NULL, *sr = NULL;
    char err[S_ERRLEN];
    int rc = s_request(self, ZQ_CMD_WORKERS, NULL, self->cfg.timeout, &wr, err, sizeof err);
    if (rc == ZQ_OK)
        rc = s_request(self, ZQ_CMD_STATS, NULL, self->cfg.timeout, &sr, err, sizeof err);
    if (rc != ZQ_OK) {
        cJSON_Delete(wr);
        return s_error(conn, s_broker_status(rc), "%s", err);
    }
    cJSON *view = s_workers_view(wr, sr);
    cJSON_Delete(wr);
    cJSON_Delete(sr);
    if (!view)
        return s_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    const char *only = s_arg(conn, "workername");
    if (only) {
        cJSON *e = cJSON_DetachItemFromObjectCaseSensitive(view, only);
        cJSON_Delete(view);
        if (!e)
            return s_error(conn, MHD_HTTP_NOT_FOUND, "Unknown worker '%.255s'", only);
        view = cJSON_CreateObject();
        if (!view) {
            cJSON_Delete(e);
            return s_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        }
        const char *ep = zq_json_str(e, "control", NULL);
        s_ctl_t ctl = {0};
        if (s_parse_bool(s_arg(conn, "refresh")) == 1 && ep && *ep &&
            cJSON_IsTrue(cJSON_GetObjectItem(e, "online")) &&
            s_ctl_open(self, &ctl, ep, zq_json_str(e, "curve_key", NULL)) == ZQ_OK) {
            cJSON *insp = cJSON_AddObjectToObject(e, "inspect");
            for (int i = 0; insp && s_inspect_methods[i]; i++) {
                cJSON *r = NULL;
                int crc = s_ctl_call(&ctl, s_inspect_methods[i], NULL, 1.0, &r);
                cJSON *val = r ? cJSON_DetachItemFromObjectCaseSensitive(r, "reply") : NULL;
                cJSON_AddItemToObject(insp, s_inspect_methods[i], val ? val : cJSON_CreateNull());
                cJSON_Delete(r);
                if (crc == ZQ_ETIMEOUT) /* nobody home: do not wait for each query */
                    break;
            }
        }
        s_ctl_close(&ctl);
        cJSON_AddItemToObject(view, only, e);
    }
    if (s_parse_bool(s_arg(conn, "status")) == 1) {
        cJSON *st = cJSON_CreateObject();
        const cJSON *e;
        cJSON_ArrayForEach(e, view)
        {
            cJSON_AddBoolToObject(st, e->string, cJSON_IsTrue(cJSON_GetObjectItem(e, "online")));
        }
        cJSON_Delete(view);
        view = st;
    }
    MHD_Result_t ret = s_json(conn, MHD_HTTP_OK, view);
    cJSON_Delete(view);
    return ret;
}

/* GET /api/stats (zq): everything the dashboard shows at once: STATS, QUEUES, the workers
 * view, the success/failure history of the last minutes and the monitor's own state. */
static MHD_Result_t s_api_stats(zq_flower_t *self, struct MHD_Connection *conn)
{
    cJSON *sr = NULL, *qr = NULL, *wr = NULL;
    char err[S_ERRLEN];
    int rc = s_request(self, ZQ_CMD_STATS, NULL, self->cfg.timeout, &sr, err, sizeof err);
    if (rc == ZQ_OK)
        rc = s_request(self, ZQ_CMD_QUEUES, NULL, self->cfg.timeout, &qr, err, sizeof err);
    if (rc == ZQ_OK)
        rc = s_request(self, ZQ_CMD_WORKERS, NULL, self->cfg.timeout, &wr, err, sizeof err);
    if (rc != ZQ_OK) {
        cJSON_Delete(sr);
        cJSON_Delete(qr);
        return s_error(conn, s_broker_status(rc), "%s", err);
    }
    cJSON *o = cJSON_CreateObject();
    if (o) {
        cJSON_AddItemToObject(o, "workers", s_workers_view(wr, sr));
        cJSON_AddItemToObject(o, "tasks", cJSON_DetachItemFromObjectCaseSensitive(sr, "tasks"));
        cJSON_AddNumberToObject(o, "retried", zq_json_num(sr, "retried", 0));
        cJSON_AddNumberToObject(o, "broker_events", zq_json_num(sr, "events", 0));
        const char *started = zq_json_str(sr, "started", NULL);
        cJSON_AddItemToObject(o, "broker_started",
                              started ? cJSON_CreateString(started) : cJSON_CreateNull());
        cJSON_AddItemToObject(o, "queues", cJSON_DetachItemFromObjectCaseSensitive(qr, "queues"));
        cJSON_AddItemToObject(o, "task_types",
                              s_task_types(self, cJSON_GetObjectItemCaseSensitive(wr, "workers")));
        cJSON *hist = cJSON_AddArrayToObject(o, "history");
        long now = (long)zq_now();
        pthread_mutex_lock(&self->mu);
        for (long t = now - 300; hist && t < now; t++) {
            const s_rate_t *r = &self->hist[t % S_HISTORY];
            if (r->sec != t || (!r->succeeded && !r->failed))
                continue;
            cJSON *p = cJSON_CreateArray();
            cJSON_AddItemToArray(p, cJSON_CreateNumber((double)t));
            cJSON_AddItemToArray(p, cJSON_CreateNumber((double)r->succeeded));
            cJSON_AddItemToArray(p, cJSON_CreateNumber((double)r->failed));
            cJSON_AddItemToArray(hist, p);
        }
        cJSON *mon = cJSON_AddObjectToObject(o, "monitor");
        if (mon) {
            cJSON_AddBoolToObject(mon, "events_connected", self->events_connected);
            cJSON_AddNumberToObject(mon, "events_seen", (double)self->events_seen);
            cJSON_AddNumberToObject(mon, "sse_clients", (double)self->sse_clients);
            cJSON_AddBoolToObject(mon, "read_only", self->cfg.read_only);
            cJSON_AddStringToObject(mon, "broker", self->broker_url);
            cJSON_AddStringToObject(mon, "version", PACKAGE_VERSION);
        }
        pthread_mutex_unlock(&self->mu);
    }
    MHD_Result_t ret = o ? s_json(conn, MHD_HTTP_OK, o)
                         : s_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    cJSON_Delete(o);
    cJSON_Delete(sr);
    cJSON_Delete(qr);
    cJSON_Delete(wr);
    return ret;
}

/* The JSON object of a POST body ("" = {}); NULL with a 400 queued when it is not one. */
static cJSON *s_body_object(struct MHD_Connection *conn, const s_req_t *rq, MHD_Result_t *ret)
{
    if (!rq->body.len)
        return cJSON_CreateObject();
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithLengthOpts(rq->body.buf, rq->body.len, &end, 0);
    if (!o) {
        size_t at = end && end >= rq->body.buf ? (size_t)(end - rq->body.buf) : 0;
        *ret = s_error(conn, MHD_HTTP_BAD_REQUEST, "body: not valid JSON (near byte %zu)", at);
        return NULL;
    }
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        *ret = s_error(conn, MHD_HTTP_BAD_REQUEST, "body: must be a JSON object");
        return NULL;
    }
    return o;
}

/* How a task is sent: Flower's three routes. */
typedef enum {
    S_ASYNC_APPLY, /* async-apply: a registered name; answers at once */
    S_SEND_TASK,   /* send-task: any name (no registry check); answers at once */
    S_APPLY        /* apply: a registered name; answers with the result */
} s_send_kind_t;

/* POST /api/task/{async-apply,send-task,apply}/<name>: {args, kwargs, countdown, eta,
 * expires, queue, task_id, priority}, all optional. */
static MHD_Result_t s_api_apply(zq_flower_t *self, struct MHD_Connection *conn, const s_req_t *rq,
                                const char *name, s_send_kind_t kind)
{
    if (!zq_valid_token(name))
        return s_error(conn, MHD_HTTP_BAD_REQUEST,
                       "not a task name: 1-255 printable characters without spaces");
    MHD_Result_t ret = MHD_NO;
    cJSON *b = s_body_object(conn, rq, &ret);
    if (!b)
        return ret;
    zq_send_opts_t o = {0};
    const cJSON *args = NULL, *kwargs = NULL;
    const char *bad = NULL;
    const cJSON *f;
    cJSON_ArrayForEach(f, b)
    {
        const char *k = f->string;
        if (!strcmp(k, "args")) {
            if (!cJSON_IsArray(f) && !cJSON_IsNull(f))
                bad = "args: must be a JSON array";
            args = cJSON_IsArray(f) ? f : NULL;
        } else if (!strcmp(k, "kwargs")) {
            if (!cJSON_IsObject(f) && !cJSON_IsNull(f))
                bad = "kwargs: must be a JSON object";
            kwargs = cJSON_IsObject(f) ? f : NULL;
        } else if (!strcmp(k, "countdown")) {
            if (!cJSON_IsNumber(f) || !(f->valuedouble >= 0) || !isfinite(f->valuedouble))
                bad = "countdown: must be a number of seconds >= 0";
            else
                o.countdown = f->valuedouble;
        } else if (!strcmp(k, "eta")) {
            double t;
            if (!cJSON_IsString(f) || zq_time_parse(f->valuestring, &t) != ZQ_OK)
                bad = "eta: must be an ISO 8601 date/time";
            else
                o.eta = f->valuestring;
        } else if (!strcmp(k, "expires")) {
            double t;
            if (cJSON_IsNumber(f) && f->valuedouble > 0 && isfinite(f->valuedouble))
                o.expires_in = f->valuedouble;
            else if (cJSON_IsString(f) && zq_time_parse(f->valuestring, &t) == ZQ_OK)
                o.expires = f->valuestring;
            else
                bad = "expires: must be seconds > 0 or an ISO 8601 date/time";
        } else if (!strcmp(k, "queue")) {
            if (!cJSON_IsString(f) || !zq_valid_token(f->valuestring))
                bad = "queue: must be a queue name";
            else
                o.queue = f->valuestring;
        } else if (!strcmp(k, "task_id")) {
            if (!cJSON_IsString(f) || !zq_valid_token(f->valuestring))
                bad = "task_id: must be a task id (1-255 printable characters, no spaces)";
            else
                o.task_id = f->valuestring;
        } else if (!strcmp(k, "priority")) {
            if (!cJSON_IsNumber(f) || f->valuedouble < 0 || f->valuedouble > 9 ||
                f->valuedouble != (int)f->valuedouble)
                bad = "priority: must be an integer from 0 to 9";
            else
                o.priority = (int)f->valuedouble;
        } else {
            bad = "unknown field (known: args, kwargs, countdown, eta, expires, queue, "
                  "task_id, priority)";
        }
        if (bad)
            break;
    }
    if (bad) {
        ret = f && f->string && !strncmp(bad, "unknown", 7)
                  ? s_error(conn, MHD_HTTP_BAD_REQUEST, "%.64s: %s", f->string, bad)
                  : s_error(conn, MHD_HTTP_BAD_REQUEST, "%s", bad);
        cJSON_Delete(b);
        return ret;
    }
    /* Flower answers 404 for a task it does not know; zq knows what live workers have
     * registered (with no worker online, any name is accepted: one may come later) */
    cJSON *wr = NULL;
    char err[S_ERRLEN];
    int rc = kind == S_SEND_TASK ? ZQ_OK
                                 : s_request(self, ZQ_CMD_WORKERS, NULL, self->cfg.timeout, &wr,
                                             err, sizeof err);
    if (rc != ZQ_OK) {
        cJSON_Delete(b);
        return s_error(conn, s_broker_status(rc), "%s", err);
    }
    const cJSON *ws = cJSON_GetObjectItemCaseSensitive(wr, "workers");
    int known = kind == S_SEND_TASK || cJSON_GetArraySize(ws) == 0;
    const cJSON *w, *t;
    cJSON_ArrayForEach(w, ws)
    {
        cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(w, "tasks"))
        {
            if (cJSON_IsString(t) && !strcmp(t->valuestring, name))
                known = 1;
        }
    }
    cJSON_Delete(wr);
    if (!known) {
        cJSON_Delete(b);
        return s_error(conn, MHD_HTTP_NOT_FOUND,
                       "Unknown task '%s': no online worker has registered it", name);
    }
    zq_client_t *c = s_client_get(self);
    if (!c) {
        cJSON_Delete(b);
        return s_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "no broker client available");
    }
    zq_async_result_t *r = NULL;
    rc = zq_client_apply_async(c, name, args, kwargs, &o, &r);
    if (rc == ZQ_OK)
        rc = zq_client_flush(c, self->cfg.timeout); /* answer once it is stored */
    if (rc != ZQ_OK) {
        ret = s_error(conn, rc == ZQ_EINVAL ? MHD_HTTP_BAD_REQUEST : s_broker_status(rc), "%s",
                      rc == ZQ_ETIMEOUT ? "the broker did not acknowledge the task in time"
                                        : zq_client_errmsg(c));
        zq_result_destroy(&r);
        s_client_put(self, c);
        cJSON_Delete(b);
        return ret;
    }
    char id[300];
    snprintf(id, sizeof id, "%s", zq_result_id(r));
    zq_result_destroy(&r);
    s_client_put(self, c); /* before waiting: the wait borrows a client of its own */
    cJSON_Delete(b);
    ZQ_INFO("flower: sent task %s[%s]", name, id);
    if (kind == S_APPLY)
        return s_result_reply(self, conn, id, S_RESULT_WAIT_MAX);
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "task-id", id);
    cJSON_AddStringToObject(out, "state", "PENDING");
    ret = s_json(conn, MHD_HTTP_OK, out);
    cJSON_Delete(out);
    return ret;
}

/* POST /api/task/revoke/<id>?terminate=true&signal=SIGKILL */
static MHD_Result_t s_api_revoke(zq_flower_t *self, struct MHD_Connection *conn, const char *id)
{
    if (!zq_valid_token(id))
        return s_error(conn, MHD_HTTP_BAD_REQUEST,
                       "not a task id: ids are 1-255 printable characters without spaces");
    int terminate = s_parse_bool(s_arg(conn, "terminate"));
    if (terminate < 0)
        return s_error(conn, MHD_HTTP_BAD_REQUEST, "terminate: must be true or false");
    const char *sig = s_arg(conn, "signal");
    static const char *const sigs[] = {"SIGTERM", "SIGKILL", "SIGINT", "SIGHUP", "SIGQUIT",
                                       "SIGUSR1", "SIGUSR2", NULL};
    const char *signame = "SIGTERM";
    if (sig) {
        signame = NULL;
        for (int i = 0; sigs[i] && !signame; i++)
            if (!strcasecmp(sig, sigs[i]) || !strcasecmp(sig, sigs[i] + 3))
                signame = sigs[i];
        if (!signame)
            return s_error(conn, MHD_HTTP_BAD_REQUEST,
                           "signal: one of SIGTERM, SIGKILL, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, "
                           "SIGUSR2");
    }
    /* an id the broker never accepted: 404, and nothing is recorded */
    char err[S_ERRLEN];
    cJSON *rec = NULL;
    int rc = s_record(self, id, &rec, err, sizeof err);
    cJSON_Delete(rec);
    if (rc != ZQ_OK)
        return s_error(conn, s_broker_status(rc), "%s", err);
    cJSON *body = cJSON_CreateObject();
    cJSON *ids = cJSON_AddArrayToObject(body, "ids");
    cJSON_AddItemToArray(ids, cJSON_CreateString(id));
    cJSON_AddBoolToObject(body, "terminate", terminate);
    cJSON_AddStringToObject(body, "signal", signame);
    cJSON *reply = NULL;
    rc = s_request(self, ZQ_CMD_REVOKE, body, self->cfg.timeout, &reply, err, sizeof err);
    cJSON_Delete(body);
    cJSON_Delete(reply);
    if (rc != ZQ_OK)
        return s_error(conn, s_broker_status(rc), "%s", err);
    ZQ_INFO("flower: revoked %s%s", id, terminate ? " (terminate)" : "");
    cJSON *o = cJSON_CreateObject();
    char msg[320];
    snprintf(msg, sizeof msg, "Revoked '%s'%s", id, terminate ? " (terminated if running)" : "");
    cJSON_AddStringToObject(o, "message", msg);
    MHD_Result_t ret = s_json(conn, MHD_HTTP_OK, o);
    cJSON_Delete(o);
    return ret;
}

/* POST /api/worker/shutdown/<name>, /api/worker/pool/grow/<name>?n=,
 * /api/worker/pool/shrink/<name>?n=: forwarded to the worker's control socket as INSPECT
 * methods shutdown / pool_grow / pool_shrink {"n"}. A worker that does not offer them
 * (zq's workers do not yet: docs/management.md) makes it 501. */
static MHD_Result_t s_api_worker_control(zq_flower_t *self, struct MHD_Connection *conn,
                                         const char *cmd, const char *name)
{
    long n = 1;
    const char *v = s_arg(conn, "n");
    if (v && s_parse_long(v, 1, 1000, &n) != ZQ_OK)
        return s_error(conn, MHD_HTTP_BAD_REQUEST, "n: must be an integer from 1 to 1000");
    cJSON *wr = NULL;
    char err[S_ERRLEN];
    int rc = s_request(self, ZQ_CMD_WORKERS, NULL, self->cfg.timeout, &wr, err, sizeof err);
    if (rc != ZQ_OK)
        return s_error(conn, s_broker_status(rc), "%s", err);
    char ep[600] = "", key[ZQ_CURVE_KEYLEN + 1] = "";
    const cJSON *w;
    cJSON_ArrayForEach(w, cJSON_GetObjectItemCaseSensitive(wr, "workers"))
    {
        if (!strcmp(zq_json_str(w, "name", ""), name)) {
            snprintf(ep, sizeof ep, "%s", zq_json_str(w, "control", ""));
            snprintf(key, sizeof key, "%s", zq_json_str(w, "curve_key", ""));
        }
    }
    cJSON_Delete(wr);
    if (!*ep)
        return s_error(conn, MHD_HTTP_NOT_FOUND, "Unknown worker '%.255s' (not online, or it has "
                                                 "no control socket)", name);
    char args[64];
    snprintf(args, sizeof args, "{\"n\":%ld}", n);
    cJSON *reply = NULL;
    s_ctl_t ctl;
    rc = s_ctl_open(self, &ctl, ep, key[0] ? key : NULL);
    if (rc == ZQ_OK)
        rc = s_ctl_call(&ctl, cmd, args, self->cfg.timeout, &reply);
    s_ctl_close(&ctl);
    if (rc != ZQ_OK) {
        cJSON_Delete(reply);
        return s_error(conn, MHD_HTTP_GATEWAY_TIMEOUT, "worker '%.255s' did not answer %s", name,
                       cmd);
    }
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(reply, "error");
    MHD_Result_t ret;
    if (e) {
        const char *msg = zq_json_str(e, "message", zq_json_str(e, "code", "error"));
        int unsupported = strstr(msg, "unknown method") || strstr(msg, "unknown command");
        ret = s_error(conn, unsupported ? MHD_HTTP_NOT_IMPLEMENTED : MHD_HTTP_BAD_GATEWAY,
                      "worker '%.255s': %s", name, msg);
    } else {
        cJSON_DeleteItemFromObjectCaseSensitive(reply, "req");
        cJSON *o = cJSON_CreateObject();
        char msg[400];
        snprintf(msg, sizeof msg, "%s sent to '%s'", cmd, name);
        cJSON_AddStringToObject(o, "message", msg);
        cJSON_AddItemToObject(o, "reply", reply);
        reply = NULL;
        ret = s_json(conn, MHD_HTTP_OK, o);
        cJSON_Delete(o);
        ZQ_INFO("flower: %s sent to worker %s", cmd, name);
    }
    cJSON_Delete(reply);
    return ret;
}

/* ---------------------------------------------------------------------------------------
 * GET /metrics: Prometheus text format. Flower's metric names with zq's prefix (from the
 * events this monitor received), plus gauges read from the broker at each scrape.
 */
static void s_help(zq_sb_t *b, const char *name, const char *type, const char *help)
{
    zq_sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void s_labels(zq_sb_t *b, const s_series_t *s, int with_type, const char *le)
{
    zq_sb_puts(b, "{worker=\"");
    s_put_label(b, s->worker);
    if (with_type) {
        zq_sb_puts(b, "\",type=\"");
        s_put_label(b, s->type);
    }
    zq_sb_puts(b, "\",task=\"");
    s_put_label(b, s->task);
    if (le) {
        zq_sb_puts(b, "\",le=\"");
        zq_sb_puts(b, le);
    }
    zq_sb_puts(b, "\"}");
}

static MHD_Result_t s_metrics(zq_flower_t *self, struct MHD_Connection *conn)
{
    zq_sb_t b = {0};
    pthread_mutex_lock(&self->mu);
    s_help(&b, "zq_events_total", "counter", "Number of events");
    for (const s_series_t *s = self->fam[M_EVENTS]; s; s = s->next) {
        zq_sb_puts(&b, "zq_events_total");
        s_labels(&b, s, 1, NULL);
        zq_sb_printf(&b, " %.0f\n", s->value);
    }
    s_help(&b, "zq_task_runtime_seconds", "histogram", "Task runtime");
    for (const s_series_t *s = self->fam[M_RUNTIME]; s; s = s->next) {
        for (size_t i = 0; i < S_NBUCKETS; i++) {
            char le[32];
            snprintf(le, sizeof le, "%g", s_buckets[i]);
            zq_sb_puts(&b, "zq_task_runtime_seconds_bucket");
            s_labels(&b, s, 0, le);
            zq_sb_printf(&b, " %lu\n", s->buckets[i]);
        }
        zq_sb_puts(&b, "zq_task_runtime_seconds_bucket");
        s_labels(&b, s, 0, "+Inf");
        zq_sb_printf(&b, " %lu\nzq_task_runtime_seconds_sum", s->count);
        s_labels(&b, s, 0, NULL);
        zq_sb_printf(&b, " %.6f\nzq_task_runtime_seconds_count", s->value);
        s_labels(&b, s, 0, NULL);
        zq_sb_printf(&b, " %lu\n", s->count);
    }
    s_help(&b, "zq_task_prefetch_time_seconds", "gauge",
           "The time the task spent waiting at the worker to be executed.");
    for (const s_series_t *s = self->fam[M_PREFETCH_TIME]; s; s = s->next) {
        zq_sb_puts(&b, "zq_task_prefetch_time_seconds");
        s_labels(&b, s, 0, NULL);
        zq_sb_printf(&b, " %.6f\n", s->value);
    }
    s_help(&b, "zq_worker_prefetched_tasks", "gauge",
           "Number of tasks of given type prefetched at a worker");
    for (const s_series_t *s = self->fam[M_PREFETCHED]; s; s = s->next) {
        zq_sb_puts(&b, "zq_worker_prefetched_tasks");
        s_labels(&b, s, 0, NULL);
        zq_sb_printf(&b, " %.0f\n", s->value);
    }
    s_help(&b, "zq_monitor_events_connected", "gauge",
           "1 when the monitor is subscribed to the broker's events");
    zq_sb_printf(&b, "zq_monitor_events_connected %d\n", self->events_connected);
    s_help(&b, "zq_monitor_events_dropped_total", "counter",
           "Task events not forwarded to browsers (over the per-second cap)");
    zq_sb_printf(&b, "zq_monitor_events_dropped_total %lu\n", self->events_dropped_sse);
    pthread_mutex_unlock(&self->mu);

    /* the broker's authoritative view */
    cJSON *wr = NULL, *sr = NULL, *qr = NULL;
    char err[S_ERRLEN];
    int up = s_request(self, ZQ_CMD_WORKERS, NULL, self->cfg.timeout, &wr, err, sizeof err) ==
                 ZQ_OK &&
             s_request(self, ZQ_CMD_STATS, NULL, self->cfg.timeout, &sr, err, sizeof err) ==
                 ZQ_OK &&
             s_request(self, ZQ_CMD_QUEUES, NULL, self->cfg.timeout, &qr, err, sizeof err) ==
                 ZQ_OK;
    s_help(&b, "zq_broker_up", "gauge", "1 when the broker answered this scrape");
    zq_sb_printf(&b, "zq_broker_up %d\n", up);
    if (up) {
        cJSON *view = s_workers_view(wr, sr);
        const cJSON *e;
        s_help(&b, "zq_worker_online", "gauge", "Worker online status");
        cJSON_ArrayForEach(e, view)
        {
            zq_sb_puts(&b, "zq_worker_online{worker=\"");
            s_put_label(&b, e->string);
            zq_sb_printf(&b, "\"} %d\n", cJSON_IsTrue(cJSON_GetObjectItem(e, "online")));
        }
        s_help(&b, "zq_worker_number_of_currently_executing_tasks", "gauge",
               "Number of tasks currently executing at a worker");
        cJSON_ArrayForEach(e, view)
        {
            zq_sb_puts(&b, "zq_worker_number_of_currently_executing_tasks{worker=\"");
            s_put_label(&b, e->string);
            zq_sb_printf(&b, "\"} %.0f\n", zq_json_num(e, "active", 0));
        }
        cJSON_Delete(view);
        static const char *const qkeys[][2] = {
            {"ready", "zq_queue_length"},
            {"scheduled", "zq_queue_scheduled"},
            {"reserved", "zq_queue_reserved"},
            {"consumers", "zq_queue_consumers"}};
        static const char *const qhelp[] = {
            "Tasks ready to be handed to a worker, per queue",
            "Tasks waiting for their eta at the broker, per queue",
            "Tasks held by workers (not yet acknowledged), per queue",
            "Workers consuming the queue"};
        for (int k = 0; k < 4; k++) {
            s_help(&b, qkeys[k][1], "gauge", qhelp[k]);
            cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(qr, "queues"))
            {
                zq_sb_printf(&b, "%s{queue=\"", qkeys[k][1]);
                s_put_label(&b, zq_json_str(e, "name", ""));
                zq_sb_printf(&b, "\"} %.0f\n", zq_json_num(e, qkeys[k][0], 0));
            }
        }
        s_help(&b, "zq_tasks", "gauge", "Tasks in the broker's store, by state");
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(sr, "tasks"))
        {
            if (strcmp(e->string, "total"))
                zq_sb_printf(&b, "zq_tasks{state=\"%s\"} %.0f\n", e->string, e->valuedouble);
        }
    }
    cJSON_Delete(wr);
    cJSON_Delete(sr);
    cJSON_Delete(qr);
    MHD_Result_t ret = b.oom ? s_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory")
                             : s_send(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
                                      b.buf, b.len, 0);
    free(b.buf);
    return ret;
}

/* ---------------------------------------------------------------------------------------
 * GET /api/events: Server-Sent Events. Each event of the ring as
 * "id: SEQ\nevent: TYPE\ndata: JSON\n\n"; a comment line when idle. The connection's
 * thread blocks here until there is something to send (thread-per-connection mode).
 */
typedef struct {
    zq_flower_t *self;
    uint64_t last; /* last sequence number sent */
    zq_sb_t out;   /* formatted, not yet handed to MHD */
    size_t pos;
    int hello;
} s_sse_t;

static ssize_t s_sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    s_sse_t *c = cls;
    zq_flower_t *self = c->self;
    if (c->pos == c->out.len) {
        c->out.len = c->pos = 0;
        if (c->out.buf)
            c->out.buf[0] = '\0';
        if (!c->hello) {
            c->hello = 1;
            zq_sb_printf(&c->out, "retry: 2000\nevent: hello\ndata: {\"seq\":%llu}\n\n",
                         (unsigned long long)c->last);
        } else {
            pthread_mutex_lock(&self->mu);
            if (self->seq == c->last && !self->stop) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_sec += (time_t)S_SSE_KEEPALIVE;
                pthread_cond_timedwait(&self->ring_cv, &self->mu, &ts);
            }
            if (self->stop) {
                pthread_mutex_unlock(&self->mu);
                return MHD_CONTENT_READER_END_OF_STREAM;
            }
            if (self->seq == c->last) {
                zq_sb_puts(&c->out, ": keepalive\n\n");
            } else {
                uint64_t from = c->last + 1;
                if (self->seq - from >= S_RING) /* this client fell behind: skip ahead */
                    from = self->seq - S_RING + 1;
                for (uint64_t q = from; q <= self->seq; q++) {
                    const s_ring_t *r = &self->ring[q % S_RING];
                    if (r->seq != q || !r->data)
                        continue;
                    zq_sb_printf(&c->out, "id: %llu\nevent: %s\ndata: %s\n\n",
                                 (unsigned long long)q, r->type, r->data);
                }
                c->last = self->seq;
            }
            pthread_mutex_unlock(&self->mu);
        }
        if (c->out.oom)
            return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = c->out.len - c->pos;
    if (n > max)
        n = max;
    memcpy(buf, c->out.buf + c->pos, n);
    c->pos += n;
    return (ssize_t)n;
}

static void s_sse_free(void *cls)
{
    s_sse_t *c = cls;
    pthread_mutex_lock(&c->self->mu);
    c->self->sse_clients--;
    pthread_mutex_unlock(&c->self->mu);
    free(c->out.buf);
    free(c);
}

static MHD_Result_t s_api_events(zq_flower_t *self, struct MHD_Connection *conn)
{
    s_sse_t *c = calloc(1, sizeof *c);
    if (!c)
        return s_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    c->self = self;
    pthread_mutex_lock(&self->mu);
    c->last = self->seq;
    /* a reconnecting browser resumes where it stopped, if the ring still has it */
    const char *lei = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Last-Event-ID");
    if (lei) {
        char *end;
        unsigned long long v = strtoull(lei, &end, 10);
        if (!*end && v <= self->seq && self->seq - v < S_RING)
            c->last = v;
    }
    self->sse_clients++;
    pthread_mutex_unlock(&self->mu);
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, s_sse_read, c, s_sse_free);
    if (!r) {
        s_sse_free(c);
        return MHD_NO;
    }
    s_common_headers(r, "text/event-stream; charset=utf-8", 0);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(r, "X-Accel-Buffering", "no"); /* nginx: do not buffer */
    MHD_Result_t ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---------------------------------------------------------------------------------------
 * Pages and assets
 */
static const zq_flower_asset_t *s_asset(const char *path)
{
    for (const zq_flower_asset_t *a = zq_flower_assets; a->path; a++)
        if (!strcmp(a->path, path))
            return a;
    return NULL;
}

/* index.html with {{prefix}}, {{readonly}} and {{version}} filled in. */
static MHD_Result_t s_page(zq_flower_t *self, struct MHD_Connection *conn)
{
    const zq_flower_asset_t *a = s_asset("index.html");
    if (!a)
        return s_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "index.html is not built in");
    zq_sb_t b = {0};
    const char *p = (const char *)a->data, *end = p + a->len;
    while (p < end) {
        const char *open = memmem(p, (size_t)(end - p), "{{", 2);
        if (!open) {
            zq_sb_putn(&b, p, (size_t)(end - p));
            break;
        }
        zq_sb_putn(&b, p, (size_t)(open - p));
        const char *close = memmem(open, (size_t)(end - open), "}}", 2);
        if (!close) {
            zq_sb_putn(&b, open, (size_t)(end - open));
            break;
        }
        size_t n = (size_t)(close - open - 2);
        if (n == 6 && !memcmp(open + 2, "prefix", 6))
            zq_sb_puts(&b, self->cfg.url_prefix); /* letters, digits and -_.~/ only */
        else if (n == 8 && !memcmp(open + 2, "readonly", 8))
            zq_sb_puts(&b, self->cfg.read_only ? "true" : "false");
        else if (n == 7 && !memcmp(open + 2, "version", 7))
            zq_sb_puts(&b, PACKAGE_VERSION);
        else
            zq_sb_putn(&b, open, (size_t)(close + 2 - open));
        p = close + 2;
    }
    MHD_Result_t ret = b.oom ? s_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory")
                             : s_send(conn, MHD_HTTP_OK, a->type, b.buf, b.len, 0);
    free(b.buf);
    return ret;
}

static MHD_Result_t s_static(struct MHD_Connection *conn, const char *path)
{
    const zq_flower_asset_t *a = s_asset(path);
    if (!a || !strcmp(path, "index.html"))
        return s_error(conn, MHD_HTTP_NOT_FOUND, "no such file");
    struct MHD_Response *r =
        MHD_create_response_from_buffer(a->len, (void *)a->data, MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    s_common_headers(r, a->type, 0);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_Result_t ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---------------------------------------------------------------------------------------
 * Routing
 */

/* rest = what follows prefix in path, when path starts with it. */
static int s_route(const char *path, const char *prefix, const char **rest)
{
    size_t n = strlen(prefix);
    if (strncmp(path, prefix, n))
        return 0;
    *rest = path + n;
    return 1;
}

static MHD_Result_t s_method_not_allowed(struct MHD_Connection *conn, const char *allow)
{
    char body[128];
    int n = snprintf(body, sizeof body, "{\"error\":\"method not allowed: use %s\"}", allow);
    struct MHD_Response *r =
        MHD_create_response_from_buffer((size_t)n, body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    s_common_headers(r, "application/json", 0);
    MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    MHD_Result_t ret = MHD_queue_response(conn, MHD_HTTP_METHOD_NOT_ALLOWED, r);
    MHD_destroy_response(r);
    return ret;
}

static MHD_Result_t s_dispatch(zq_flower_t *self, struct MHD_Connection *conn, const char *url,
                               const char *method, const s_req_t *rq)
{
    int get = !strcmp(method, MHD_HTTP_METHOD_GET) || !strcmp(method, MHD_HTTP_METHOD_HEAD);
    int post = !strcmp(method, MHD_HTTP_METHOD_POST);
    const char *path, *rest;
    if (!s_route(url, self->cfg.url_prefix, &path) || (*path && *path != '/'))
        return s_error(conn, MHD_HTTP_NOT_FOUND, "not found (the monitor lives under %s/)",
                       self->cfg.url_prefix);
    if (!*path)
        path = "/";
    MHD_Result_t ret;
    if (!strcmp(path, "/healthcheck")) /* for load balancers: no authentication */
        return get ? s_send(conn, MHD_HTTP_OK, "text/plain; charset=utf-8", "OK", 2, 0)
                   : s_method_not_allowed(conn, "GET");
    if (!s_authorized(self, conn, &ret))
        return ret;

    /* mutating routes: POST only, same-site only, not in read-only mode */
    static const struct {
        const char *prefix;
        int kind;
    } posts[] = {{"/api/task/async-apply/", 1},  {"/api/task/apply/", 6},
                 {"/api/task/send-task/", 7},    {"/api/task/revoke/", 2},
                 {"/api/worker/shutdown/", 3},   {"/api/worker/pool/grow/", 4},
                 {"/api/worker/pool/shrink/", 5}, {NULL, 0}};
    for (int i = 0; posts[i].prefix; i++) {
        if (!s_route(path, posts[i].prefix, &rest))
            continue;
        if (!post)
            return s_method_not_allowed(conn, "POST");
        if (self->cfg.read_only)
            return s_error(conn, MHD_HTTP_FORBIDDEN, "read-only mode: %s is disabled", path);
        const char *why = s_cross_site(conn);
        if (why)
            return s_error(conn, MHD_HTTP_FORBIDDEN, "%s", why);
        if (rq->too_large)
            return s_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, "body: larger than %d bytes",
                           S_BODY_MAX);
        if (!*rest)
            return s_error(conn, MHD_HTTP_BAD_REQUEST, "%s needs a name or id after it",
                           posts[i].prefix);
        switch (posts[i].kind) {
        case 1:
            return s_api_apply(self, conn, rq, rest, S_ASYNC_APPLY);
        case 6:
            return s_api_apply(self, conn, rq, rest, S_APPLY);
        case 7:
            return s_api_apply(self, conn, rq, rest, S_SEND_TASK);
        case 2:
            return s_api_revoke(self, conn, rest);
        case 3:
            return s_api_worker_control(self, conn, "shutdown", rest);
        case 4:
            return s_api_worker_control(self, conn, "pool_grow", rest);
        default:
            return s_api_worker_control(self, conn, "pool_shrink", rest);
        }
    }
    if (!get)
        return s_method_not_allowed(conn, "GET");
    if (!strcmp(path, "/api/workers"))
        return s_api_workers(self, conn);
    if (!strcmp(path, "/api/tasks"))
        return s_api_tasks(self, conn);
    if (!strcmp(path, "/api/task/types"))
        return s_api_task_types(self, conn);
    if (!strcmp(path, "/api/queues/length"))
        return s_api_queues(self, conn);
    if (!strcmp(path, "/api/stats"))
        return s_api_stats(self, conn);
    if (!strcmp(path, "/api/events"))
        return s_api_events(self, conn);
    if (!strcmp(path, "/metrics"))
        return s_metrics(self, conn);
    if (s_route(path, "/api/task/info/", &rest))
        return s_api_task_info(self, conn, rest);
    if (s_route(path, "/api/task/result/", &rest))
        return s_api_task_result(self, conn, rest);
    if (s_route(path, "/static/", &rest))
        return s_static(conn, rest);
    if (!strcmp(path, "/favicon.ico"))
        return s_static(conn, "favicon.svg");
    static const char *const pages[] = {"/", "/dashboard", "/tasks", "/workers", "/broker", NULL};
    for (int i = 0; pages[i]; i++)
        if (!strcmp(path, pages[i]))
            return s_page(self, conn);
    if ((s_route(path, "/task/", &rest) || s_route(path, "/worker/", &rest)) && *rest &&
        !strchr(rest, '/'))
        return s_page(self, conn);
    return s_error(conn, MHD_HTTP_NOT_FOUND, "no such page or API route: %.200s", path);
}

static MHD_Result_t s_access(void *cls, struct MHD_Connection *conn, const char *url,
                             const char *method, const char *version, const char *upload,
                             size_t *upload_size, void **con_cls)
{
    (void)version;
    zq_flower_t *self = cls;
    s_req_t *rq = *con_cls;
    if (!rq) { /* first call: headers only */
        rq = calloc(1, sizeof *rq);
        if (!rq)
            return MHD_NO;
        rq->t0 = zq_mono();
        *con_cls = rq;
        return MHD_YES;
    }
    if (*upload_size) {
        if (rq->body.len + *upload_size > S_BODY_MAX)
            rq->too_large = 1; /* read and drop the rest; answer 413 at the end */
        else
            zq_sb_putn(&rq->body, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (rq->body.oom)
        return s_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    MHD_Result_t ret = s_dispatch(self, conn, url, method, rq);
    ZQ_DEBUG("flower: %s %s (%.1f ms)", method, url, (zq_mono() - rq->t0) * 1000);
    return ret;
}

static void s_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                        enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    s_req_t *rq = *con_cls;
    if (rq) {
        free(rq->body.buf);
        free(rq);
        *con_cls = NULL;
    }
}

static void s_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n')
        msg[--n] = '\0';
    ZQ_DEBUG("flower: http: %s", msg);
}

/* ---------------------------------------------------------------------------------------
 * Lifecycle
 */
zq_flower_t *zq_flower_new(const zq_flower_config_t *cfg, char *err, size_t errlen)
{
    if (zq_flower_check_config(cfg, err, errlen) != ZQ_OK)
        return NULL;
    zq_flower_t *self = calloc(1, sizeof *self);
    if (!self) {
        zq_errf(err, errlen, "out of memory");
        return NULL;
    }
    self->cfg = *cfg;
    if (cfg->url_prefix == cfg->prefix_buf) /* it pointed into the caller's copy */
        self->cfg.url_prefix = self->cfg.prefix_buf;
    if (!self->cfg.url_prefix)
        self->cfg.url_prefix = "";
    if (self->cfg.timeout <= 0)
        self->cfg.timeout = 5.0;
    snprintf(self->broker_url, sizeof self->broker_url, "%s", zq_broker_url(cfg->broker));
    self->stop_pipe[0] = self->stop_pipe[1] = -1;
    pthread_mutex_init(&self->mu, NULL);
    pthread_cond_init(&self->pool_cv, NULL);
    pthread_cond_init(&self->ring_cv, NULL);
    if (pipe(self->stop_pipe) != 0) {
        zq_errf(err, errlen, "pipe: %s", strerror(errno));
        goto fail;
    }
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)cfg->port);
    inet_pton(AF_INET, cfg->address, &sa.sin_addr);
    self->mhd = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
            MHD_USE_ERROR_LOG,
        (uint16_t)cfg->port, NULL, NULL, s_access, self, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&sa, MHD_OPTION_NOTIFY_COMPLETED, s_completed, self,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)S_MAX_CONNS, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)S_CONN_TIMEOUT, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)65536,
        MHD_OPTION_EXTERNAL_LOGGER, s_mhd_log, self, MHD_OPTION_END);
    if (!self->mhd) {
        zq_errf(err, errlen, "cannot listen on %s:%d: %s", cfg->address, cfg->port,
              errno ? strerror(errno) : "address in use or not available");
        goto fail;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(self->mhd, MHD_DAEMON_INFO_BIND_PORT);
    self->port = info ? info->port : cfg->port;
    if (pthread_create(&self->ev_thread, NULL, s_events_main, self) != 0) {
        zq_errf(err, errlen, "cannot start the events thread");
        goto fail;
    }
    self->ev_started = 1;
    return self;
fail:
    zq_flower_destroy(&self);
    return NULL;
}

int zq_flower_port(const zq_flower_t *self)
{
    return self->port;
}

int zq_flower_run(zq_flower_t *self)
{
    char c;
    while (!self->stop) {
        ssize_t n = read(self->stop_pipe[0], &c, 1);
        if (n < 0 && errno == EINTR)
            continue;
        break;
    }
    return ZQ_OK;
}

void zq_flower_stop(zq_flower_t *self)
{
    self->stop = 1;
    if (self->stop_pipe[1] >= 0) {
        ssize_t n = write(self->stop_pipe[1], "x", 1);
        (void)n;
    }
}

void zq_flower_destroy(zq_flower_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zq_flower_t *self = *self_p;
    self->stop = 1;
    /* wake the SSE streams and pool waiters so that their threads can end */
    pthread_mutex_lock(&self->mu);
    pthread_cond_broadcast(&self->ring_cv);
    pthread_cond_broadcast(&self->pool_cv);
    pthread_mutex_unlock(&self->mu);
    if (self->mhd)
        MHD_stop_daemon(self->mhd);
    if (self->ev_started)
        pthread_join(self->ev_thread, NULL);
    for (int i = 0; i < self->npool; i++)
        zq_client_destroy(&self->pool[i].c);
    for (int i = 0; i < S_RING; i++) {
        free(self->ring[i].type);
        free(self->ring[i].data);
    }
    s_series_free(self);
    s_tinfo_free_all(self);
    for (size_t i = 0; i < self->ntypes; i++)
        free(self->types[i]);
    free(self->types);
    for (int i = 0; i < 2; i++)
        if (self->stop_pipe[i] >= 0)
            close(self->stop_pipe[i]);
    pthread_cond_destroy(&self->ring_cv);
    pthread_cond_destroy(&self->pool_cv);
    pthread_mutex_destroy(&self->mu);
    free(self);
    *self_p = NULL;
}

/* ---------------------------------------------------------------------------------------
 * zq-ctl flower
 */
static zq_flower_t *s_running;

static void s_on_signal(int sig)
{
    (void)sig;
    if (s_running)
        zq_flower_stop(s_running);
}

static const char s_usage[] =
    "Usage: zq-ctl flower [OPTIONS]\n"
    "\n"
    "  Start the web monitor: dashboard, tasks, workers and queues, live; Flower's\n"
    "  REST API under /api; Prometheus metrics at /metrics (docs/monitor.md).\n"
    "\n"
    "Options:\n"
    "  -b, --broker URL          Broker URL (default: $ZQ_BROKER, else " ZQ_DEFAULT_BROKER ").\n"
    "  --address ADDR            IPv4 address to listen on (default 127.0.0.1). Any\n"
    "                            other than loopback needs --basic-auth.\n"
    "  --port N                  Port to listen on (default 5555; 0: any free port).\n"
    "  --basic-auth USER:PASS    Require HTTP basic authentication; repeat for more\n"
    "                            users (Flower's USER1:PASS1,USER2:PASS2 works too).\n"
    "  --read-only               Refuse every change (send, revoke, shutdown): 403.\n"
    "  --url-prefix /PATH        Serve under /PATH (behind a reverse proxy).\n"
    "  --timeout FLOAT           Seconds to wait for the broker per request (default 5).\n"
    "  --help                    Show this message and exit.\n";

int zq_flower_main(int argc, char *argv[])
{
    zq_flower_config_t cfg;
    char err[1024];
    if (zq_flower_parse_args(&cfg, argc, argv, err, sizeof err) != ZQ_OK) {
        fprintf(stderr, "Usage: zq-ctl flower [OPTIONS]\nTry 'zq-ctl flower --help' for help.\n"
                        "\nError: %s\n",
                err);
        return 2;
    }
    if (cfg.help) {
        fputs(s_usage, stdout);
        return 0;
    }
    if (cfg.version) {
        printf("zq-ctl %s\n", PACKAGE_VERSION);
        return 0;
    }
    if (zq_flower_check_config(&cfg, err, sizeof err) != ZQ_OK) {
        fprintf(stderr, "Error: %s\n", err);
        return 2;
    }
    /* passed on through the environment, as zq-ctl does (zq_ctl.c, s_curve_setup) */
    if (cfg.curve_secret)
        setenv(ZQ_CURVE_ENV_SECRET, cfg.curve_secret, 1);
    if (cfg.curve_server_key)
        setenv(ZQ_CURVE_ENV_SERVER, cfg.curve_server_key, 1);
    zq_curve_client_t curve;
    int crc = zq_curve_client_load(&curve, NULL, NULL, err, sizeof err);
    memset(&curve, 0, sizeof curve);
    if (crc != ZQ_OK) {
        fprintf(stderr, "Error: %s\n", err);
        return 2;
    }
    zq_log_set_level(ZQ_LOG_INFO);
    const char *lvl = getenv("ZQ_LOGLEVEL");
    zq_log_level_t level;
    if (lvl && zq_log_parse_level(lvl, &level) == ZQ_OK)
        zq_log_set_level(level);
    signal(SIGPIPE, SIG_IGN); /* a browser that goes away mid-response */
    zq_flower_t *f = zq_flower_new(&cfg, err, sizeof err);
    if (!f) {
        ZQ_ERROR("flower: %s", err);
        return 1;
    }
    const char *host = f->cfg.address;
    ZQ_INFO("Visit me at http://%s:%d%s/", host, zq_flower_port(f), f->cfg.url_prefix);
    ZQ_INFO("Broker: %s", f->broker_url);
    if (cfg.nauth)
        ZQ_INFO("Authentication: HTTP basic, %zu user%s%s", cfg.nauth, cfg.nauth == 1 ? "" : "s",
                cfg.read_only ? "; read-only" : "");
    else
        ZQ_INFO("No authentication: listening on %s only%s", host,
                cfg.read_only ? "; read-only" : "");
    s_running = f;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    zq_flower_run(f);
    ZQ_INFO("flower: shutting down");
    s_running = NULL;
    zq_flower_destroy(&f);
    return 0;
}
