/*
 * zq_client - the client half of the SDK (sdk/zq.h "Client side"): sends tasks to a broker
 * and waits for their results over one DEALER socket (docs/protocol.md §6, §7, §9).
 *
 * Every request carries a `req` number and is kept, as the text that went on the wire, in
 * an append-only arena until its REPLY arrives. That one table serves three purposes:
 *   - replies are matched by `req` in any order (a parked GET answers late);
 *   - apply_async never waits: acknowledgements are counted down whenever the socket is
 *     read, and a refused SUBMIT is remembered for flush()/get();
 *   - after a reconnection (the socket monitor reports CONNECTED again) every request
 *     still waiting, except PURGE, is sent again, so a broker restart loses nothing.
 * The hot path (apply_async) builds the SUBMIT text straight into the arena, with no
 * per-call malloc except the optional result handle.
 *
 * SUBMITs that follow each other closely leave together, as one SUBMITS (§7): a program
 * submitting in a loop sends one message per S_BATCH_MAX tasks or S_BATCH_HOLD seconds
 * instead of one per task (each message costs an allocation, a queue slot and a wakeup at
 * both ends). A SUBMIT after a quiet spell leaves at once; any other request, and every
 * wait, sends the batch first (a GET never overtakes its SUBMIT); and should the program
 * stop calling with a batch held, a flusher thread sends it S_BATCH_LATE after its first
 * task. The socket and the batch are used under the client's mutex for that thread's sake.
 */
#include "config.h"
#include "zq.h"
#include "zq_auth.h"
#include "zq_client_int.h"
#include "zq_jscan.h"
#include "zq_log.h"
#include "zq_proto.h"
#include "zq_time.h"
#include "zq_util.h"
#include "zq_zpoll.h"
#include "zq_uuid.h"

#include <errno.h>
#include <pthread.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#define S_GRACE 0.5          /* seconds a GET waits beyond its timeout for the broker's answer */
#define S_DESTROY_FLUSH 5.0  /* seconds destroy waits for outstanding acknowledgements */
#define S_WINDOW 16384       /* unacknowledged SUBMITs before apply_async waits (memory bound) */
#define S_MAX_REFUSED 64     /* refused SUBMITs remembered for zq_result_get() */
#define S_COMPACT_MIN 1024   /* finished entries before the request table is compacted */
#define S_DRAIN_EVERY 32     /* apply_async reads pending acknowledgements every N calls */
#define S_BATCH_MAX 64       /* SUBMITs in one SUBMITS */
#define S_BATCH_BYTES (256 * 1024) /* a SUBMITS body stays under this (a larger task goes alone) */
#define S_BATCH_HOLD 0.0005  /* seconds: a SUBMIT this soon after the last send waits for more */
#define S_BATCH_LATE 0.001   /* seconds: the flusher sends a batch this old */
#define S_FLUSHER_POLLS 20   /* empty looks before the flusher waits to be woken */

/* ---------------------------------------------------------------------------------------
 * Growable byte buffer. An allocation failure sets oom and turns later writes into no-ops,
 * so a builder checks once at the end.
 */
typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} s_buf_t;

static int s_buf_reserve(s_buf_t *b, size_t extra)
{
    if (b->oom)
        return -1;
    if (b->cap - b->len >= extra)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < extra)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

static void s_buf_put(s_buf_t *b, const char *s, size_t n)
{
    if (s_buf_reserve(b, n) == 0) {
        memcpy(b->p + b->len, s, n);
        b->len += n;
    }
}

static void s_buf_puts(s_buf_t *b, const char *s)
{
    s_buf_put(b, s, strlen(s));
}

static void s_buf_printf(s_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_buf_printf(s_buf_t *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0 && (size_t)n < sizeof tmp)
        s_buf_put(b, tmp, (size_t)n);
    else
        b->oom = 1; /* only used for numbers: cannot happen */
}

static void s_buf_u64(s_buf_t *b, uint64_t v)
{
    char tmp[20];
    size_t n;
    const char *d = zq_u64_digits(v, tmp, &n);
    s_buf_put(b, d, n);
}

/* A JSON string literal. Our strings are validated tokens or timestamps, but a token may
 * still contain '"' or '\\'. */
static void s_buf_json_str(s_buf_t *b, const char *s)
{
    s_buf_put(b, "\"", 1);
    const char *run = s;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch != '"' && ch != '\\' && ch >= 0x20)
            continue;
        s_buf_put(b, run, (size_t)(s - run));
        if (ch == '"' || ch == '\\') {
            char esc[2] = {'\\', (char)ch};
            s_buf_put(b, esc, 2);
        } else {
            s_buf_printf(b, "\\u%04x", ch);
        }
        run = s + 1;
    }
    s_buf_put(b, run, (size_t)(s - run));
    s_buf_put(b, "\"", 1);
}

/* The common values written by hand: null, booleans, strings, integers (exact below 2^53)
 * and arrays and objects of those, at most 32 deep. 0, or -1 for anything else (a
 * fraction, a raw value): the caller prints the value with cJSON instead. cJSON prints each
 * number with sprintf(), which was ~5 % of a client submitting add(i, i). */
static int s_buf_json_plain(s_buf_t *b, const cJSON *v, int depth, size_t stop)
{
    if (!v || depth > 32 || b->len > stop) /* stop: past the largest message */
        return -1;
    switch (v->type & 0xFF) {
    case cJSON_NULL:
        s_buf_put(b, "null", 4);
        return 0;
    case cJSON_True:
        s_buf_put(b, "true", 4);
        return 0;
    case cJSON_False:
        s_buf_put(b, "false", 5);
        return 0;
    case cJSON_String:
        if (!v->valuestring)
            return -1;
        s_buf_json_str(b, v->valuestring);
        return 0;
    case cJSON_Number: {
        double d = v->valuedouble;
        if (!(d > -9007199254740992.0 && d < 9007199254740992.0) || d != floor(d))
            return -1;
        if (d < 0) {
            s_buf_put(b, "-", 1);
            d = -d;
        }
        s_buf_u64(b, (uint64_t)d);
        return 0;
    }
    case cJSON_Array:
    case cJSON_Object: {
        int obj = (v->type & 0xFF) == cJSON_Object;
        s_buf_put(b, obj ? "{" : "[", 1);
        for (const cJSON *c = v->child; c; c = c->next) {
            if (c != v->child)
                s_buf_put(b, ",", 1);
            if (obj) {
                if (!c->string)
                    return -1;
                s_buf_json_str(b, c->string);
                s_buf_put(b, ":", 1);
            }
            if (s_buf_json_plain(b, c, depth + 1, stop) != 0)
                return -1;
        }
        s_buf_put(b, obj ? "}" : "]", 1);
        return 0;
    }
    default:
        return -1;
    }
}

/* A cJSON value printed in place: no intermediate string. */
static int s_buf_json(s_buf_t *b, const cJSON *v)
{
    size_t mark = b->len;
    if (s_buf_json_plain(b, v, 0, mark + ZQ_MAX_MSG_SIZE) == 0 && !b->oom)
        return b->len - mark > ZQ_MAX_MSG_SIZE ? -1 : 0;
    if (b->oom)
        return -1;
    b->len = mark;
    size_t want = 256;
    for (;;) {
        if (want > ZQ_MAX_MSG_SIZE + 64 || s_buf_reserve(b, want) < 0)
            return -1;
        size_t room = b->cap - b->len;
        if (room > ZQ_MAX_MSG_SIZE + 64)
            room = ZQ_MAX_MSG_SIZE + 64;
        /* cJSON asks for 5 spare bytes: its size estimate is not exact */
        if (cJSON_PrintPreallocated((cJSON *)v, b->p + b->len, (int)room - 5, 0)) {
            b->len += strlen(b->p + b->len);
            return 0;
        }
        want = room * 2;
    }
}

/* ---------------------------------------------------------------------------------------
 * The client
 */
typedef enum {
    S_SUBMIT,    /* acknowledgement counted, refusal remembered */
    S_GET_SYNC,  /* zq_result_get: the reply goes to sync_reply */
    S_GET_ASYNC, /* zq_client_get_async: the reply goes to the ready queue */
    S_SYNC,      /* any other request somebody waits for */
    S_PUSH       /* the record a SUBMIT subscribed to ("get"): kept in the push map */
} s_kind_t;

typedef struct {
    uint64_t req;
    double until;   /* GETs: monotonic time the broker's wait ends; < 0: forever */
    size_t off;     /* arena offset: command, then payload (GET: the task id; else JSON) */
    uint32_t len;   /* payload bytes */
    uint8_t cmdlen; /* command bytes */
    uint8_t kind;   /* s_kind_t */
    uint8_t done;   /* reply received or abandoned */
    uint8_t resend; /* safe to send again after a reconnection (all but PURGE...) */
    uint8_t push;   /* SUBMIT: req + 1 is its result subscription; GET kinds: the answer
                     * comes through the SUBMIT's subscription, no GET was sent */
    zq_async_result_t *h; /* S_PUSH: the handle its record is kept on; NULL: none */
} s_entry_t;

/* The newest handle subscribed to a task id, for zq_client_get_async(id): the record itself
 * is kept on the handle, which its S_PUSH entry points to (no lookup per record or get). */
typedef struct {
    uint64_t hash;        /* of the handle's id: ids made together share a long prefix */
    zq_async_result_t *h; /* NULL: empty; S_PM_TOMB: deleted (probes go on past it) */
} s_pslot_t;

typedef struct {
    uint64_t req;
    int code;
    char msg[300];
} s_refusal_t;

struct zq_client {
    void *ctx;
    void *sock;              /* DEALER to the frontend */
    void *mon;               /* PAIR receiving the DEALER's connect/disconnect events */
    int sock_settled, mon_settled; /* drained to EAGAIN since their last other use (zq_zpoll.h) */
    zq_curve_client_t curve; /* CurveZMQ keys; curve.enabled = 0 when plain */
    int auth_failed;         /* the last handshake failed (errmsg-ready text in auth_msg) */
    char auth_msg[600];
    char url[512];
    char origin[300];        /* "gen<pid>@<hostname>" */
    char errmsg[1024];
    double timeout;          /* default wait of state/known/revoke; < 0 forever */
    double linger;           /* destroy's wait for acknowledgements, seconds */
    uint64_t next_req;
    uint64_t nsent;          /* apply_async calls, for S_DRAIN_EVERY */
    unsigned long empty_looks; /* receives that found nothing (zq_client_int.h) */
    unsigned long id_lookups;  /* probes of pm (zq_client_int.h) */
    s_entry_t *ents;         /* outstanding requests, ascending req; [head, nents) live */
    size_t nents, cap_ents, head, ndone;
    s_buf_t arena;           /* request texts of ents */
    s_buf_t scratch;         /* GET bodies, request bodies being spliced */
    size_t unacked;          /* SUBMITs without REPLY */
    size_t async_out;        /* async GETs without REPLY */
    double next_async_deadline; /* earliest give-up time of an async GET; INFINITY if none */
    cJSON *ready;            /* array: completed async GET records, oldest first */
    uint64_t sync_req;       /* the request a sync call waits for */
    cJSON *sync_reply;       /* its REPLY body (owned) once received */
    int refusal_code;        /* first refusal since the last flush; 0 = none */
    char refusal_msg[600];
    s_refusal_t refused[S_MAX_REFUSED]; /* ring of recent refusals, for zq_result_get */
    size_t nrefused;
    int connected_once;      /* a CONNECTED event was seen: the next one is a reconnection */
    int warned_bad;          /* malformed replies are logged once */
    s_pslot_t *pm;           /* subscribed handles by task id (open addressing) */
    size_t pm_cap, pm_used, pm_live;
    zq_async_result_t *handles; /* live result handles, detached when the client goes */
    zmq_msg_t *parts;        /* frames of the message being received */
    size_t parts_cap;
    /* SUBMITs held to leave together (top of this file); under mu with the socket */
    pthread_mutex_t mu;
    pthread_cond_t cv;       /* wakes the flusher: a batch began, or stop */
    s_buf_t batch;           /* "[body,body,...": the SUBMITS body without its ']' */
    size_t batch_n;
    uint64_t batch_reqs[S_BATCH_MAX]; /* their reqs (refused should the send fail) */
    double batch_t0;         /* zq_mono() when the batch began */
    double last_sent;        /* zq_mono() of the last SUBMIT(S) sent */
    double batch_hold;       /* S_BATCH_HOLD; tests change it (zq_client_int.h) */
    double batch_late;       /* S_BATCH_LATE; likewise */
    pthread_t flusher;
    int flusher_on, flusher_idle, flusher_stop;
    int fail_sends;          /* tests: the next N sends fail (zq_client_int.h) */
};

struct zq_async_result {
    zq_client_t *client;
    uint64_t submit_req; /* req of its SUBMIT when sent by this client, else 0 */
    uint64_t push_req;   /* req of its result subscription, 0 if none */
    cJSON *record;       /* last record fetched (owned), or NULL while it is kept as text: */
    char *record_text;   /* owned; parsed into record when zq_result_record asks */
    size_t record_len;
    cJSON *push_rec;     /* the subscription's record if it came in a REPLY (owned, no "req") */
    char *push_text;     /* or as it came in a REPLIES: its text (owned), parsed when wanted */
    size_t push_len;
    zq_async_result_t *prev, *next; /* in client->handles */
    char id[];           /* as long as it is: one handle per task is kept, often thousands */
};

/* A handle for task id (at most 255 bytes of it), zeroed; NULL on ENOMEM. */
static zq_async_result_t *s_handle_new(zq_client_t *c, const char *id)
{
    size_t n = strnlen(id, 255);
    zq_async_result_t *r = calloc(1, sizeof *r + n + 1);
    if (r) {
        r->client = c;
        memcpy(r->id, id, n);
    }
    return r;
}

static void s_err(zq_client_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_err(zq_client_t *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errmsg, sizeof c->errmsg, fmt, ap);
    va_end(ap);
}

const char *zq_strerror(int rc)
{
    switch (rc) {
    case ZQ_OK: return "success";
    case ZQ_EINVAL: return "invalid argument";
    case ZQ_ENOMEM: return "out of memory";
    case ZQ_EPROTO: return "protocol error";
    case ZQ_EIO: return "input/output error";
    case ZQ_ETIMEOUT: return "timed out";
    case ZQ_EABI: return "plugin ABI mismatch";
    case ZQ_EPLUGIN: return "plugin could not be loaded";
    case ZQ_ENOTFOUND: return "not found";
    case ZQ_EREMOTE: return "remote error";
    case ZQ_ESTORE: return "the broker could not store the task";
    case ZQ_ESTATE: return "operation not allowed in this state";
    case ZQ_EDUPLICATE: return "name already in use";
    case ZQ_EAUTH: return "authentication failed (CurveZMQ)";
    default: return "unknown error";
    }
}

/* A broker error code (docs/protocol.md §7) as a zq_err_t. */
static int s_map_code(const char *code)
{
    if (!code)
        return ZQ_EREMOTE;
    if (!strcmp(code, ZQ_WERR_INVAL))
        return ZQ_EINVAL;
    if (!strcmp(code, ZQ_WERR_NOTFOUND))
        return ZQ_ENOTFOUND;
    if (!strcmp(code, ZQ_WERR_STORE))
        return ZQ_ESTORE;
    if (!strcmp(code, ZQ_WERR_DUPLICATE))
        return ZQ_EDUPLICATE;
    if (!strcmp(code, ZQ_WERR_PROTO) || !strcmp(code, ZQ_WERR_VERSION) ||
        !strcmp(code, ZQ_WERR_UNKNOWN_CMD))
        return ZQ_EPROTO;
    return ZQ_EREMOTE;
}

static void s_fmt_secs(char *buf, size_t len, double secs)
{
    snprintf(buf, len, "%gs", secs);
}

/* ---------------------------------------------------------------------------------------
 * Result subscriptions by task id (apply_async asks the broker to send the record when the
 * task ends: docs/protocol.md §7, SUBMIT "get"), so that get() usually sends nothing.
 */
static char s_pm_tomb_mark;
#define S_PM_TOMB ((zq_async_result_t *)(void *)&s_pm_tomb_mark)

static s_pslot_t *s_pm_slot(zq_client_t *c, const char *id)
{
    c->id_lookups++;
    if (!c->pm_live)
        return NULL;
    size_t mask = c->pm_cap - 1;
    uint64_t h = zq_hash_str(id);
    for (size_t k = (size_t)h & mask;; k = (k + 1) & mask) {
        s_pslot_t *p = &c->pm[k];
        if (!p->h)
            return NULL;
        if (p->h != S_PM_TOMB && p->hash == h && strcmp(p->h->id, id) == 0)
            return p;
    }
}

/* The newest live handle subscribed to id, or NULL. */
static zq_async_result_t *s_pm_find(zq_client_t *c, const char *id)
{
    s_pslot_t *p = s_pm_slot(c, id);
    return p ? p->h : NULL;
}

/* r is going: no slot may point to it. */
static void s_pm_forget(zq_client_t *c, zq_async_result_t *r)
{
    s_pslot_t *p = s_pm_slot(c, r->id);
    if (p && p->h == r) {
        p->h = S_PM_TOMB;
        c->pm_live--;
    }
}

static int s_pm_grow(zq_client_t *c)
{
    size_t nc = c->pm_cap ? c->pm_cap : 1024;
    while (nc < 4 * (c->pm_live + 1))
        nc *= 2;
    s_pslot_t *v = calloc(nc, sizeof *v);
    if (!v)
        return ZQ_ENOMEM;
    for (size_t i = 0; i < c->pm_cap; i++) {
        if (!c->pm[i].h || c->pm[i].h == S_PM_TOMB)
            continue;
        size_t k = (size_t)c->pm[i].hash & (nc - 1);
        while (v[k].h)
            k = (k + 1) & (nc - 1);
        v[k] = c->pm[i];
    }
    free(c->pm);
    c->pm = v;
    c->pm_cap = nc;
    c->pm_used = c->pm_live;
    return ZQ_OK;
}

/* r (subscribed) becomes the handle get_async(r->id) takes the record from; an earlier
 * handle of the same id keeps its own subscription. */
static int s_pm_put(zq_client_t *c, zq_async_result_t *r)
{
    s_pslot_t *old = s_pm_slot(c, r->id);
    if (old) {
        old->h = r;
        return ZQ_OK;
    }
    if (2 * (c->pm_used + 1) > c->pm_cap && s_pm_grow(c) != ZQ_OK)
        return ZQ_ENOMEM;
    uint64_t h = zq_hash_str(r->id);
    size_t mask = c->pm_cap - 1, k = (size_t)h & mask;
    while (c->pm[k].h && c->pm[k].h != S_PM_TOMB)
        k = (k + 1) & mask;
    if (!c->pm[k].h)
        c->pm_used++; /* a fresh slot, not a reused deleted one */
    c->pm[k].hash = h;
    c->pm[k].h = r;
    c->pm_live++;
    return ZQ_OK;
}

/* Drop the subscription's record r holds, if any. */
static void s_push_drop(zq_async_result_t *r)
{
    cJSON_Delete(r->push_rec);
    r->push_rec = NULL;
    free(r->push_text);
    r->push_text = NULL;
    r->push_len = 0;
}

/* A record as text, parsed (caller owns it; "req" dropped); NULL when it is no object. */
static cJSON *s_parse_record(const char *text, size_t len)
{
    cJSON *rec = cJSON_ParseWithLength(text, len);
    if (rec && !cJSON_IsObject(rec)) {
        cJSON_Delete(rec);
        return NULL;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(rec, "req");
    return rec;
}

/* The subscription's record r holds, parsed (caller owns it); NULL when none arrived or its
 * text is not a JSON object (then the caller asks with GET). */
static cJSON *s_push_record(zq_async_result_t *r)
{
    cJSON *rec = r->push_rec;
    r->push_rec = NULL;
    if (!rec && r->push_text)
        rec = s_parse_record(r->push_text, r->push_len);
    s_push_drop(r);
    return rec;
}

/* ---------------------------------------------------------------------------------------
 * Request table
 */
static s_entry_t *s_find(zq_client_t *c, uint64_t req)
{
    size_t lo = c->head, hi = c->nents;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->ents[mid].req < req)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < c->nents && c->ents[lo].req == req ? &c->ents[lo] : NULL;
}

/* Append an entry whose text is the last cmdlen + len bytes of the arena. */
static s_entry_t *s_add(zq_client_t *c, s_kind_t kind, uint64_t req, size_t off, size_t cmdlen,
                        size_t len)
{
    if (c->nents == c->cap_ents) {
        size_t cap = c->cap_ents ? c->cap_ents * 2 : 1024;
        s_entry_t *e = realloc(c->ents, cap * sizeof *e);
        if (!e)
            return NULL;
        c->ents = e;
        c->cap_ents = cap;
    }
    s_entry_t *e = &c->ents[c->nents++];
    e->req = req;
    e->until = -1;
    e->off = off;
    e->len = (uint32_t)len;
    e->cmdlen = (uint8_t)cmdlen;
    e->kind = (uint8_t)kind;
    e->done = 0;
    e->resend = 1;
    e->push = 0;
    e->h = NULL;
    return e;
}

static void s_finish(zq_client_t *c, s_entry_t *e)
{
    if (e->done)
        return;
    e->done = 1;
    e->h = NULL; /* its handle may go now */
    c->ndone++;
    if (e->kind == S_SUBMIT)
        c->unacked--;
    else if (e->kind == S_GET_ASYNC)
        c->async_out--;
}

/* Drop finished entries: cheap at the head; a full compaction once finished entries
 * outnumber live ones (a long-parked GET must not pin every later SUBMIT). */
static void s_gc(zq_client_t *c)
{
    while (c->head < c->nents && c->ents[c->head].done) {
        c->head++;
        c->ndone--;
    }
    if (c->head == c->nents) {
        c->head = c->nents = 0;
        c->arena.len = 0;
        c->ndone = 0;
        return;
    }
    size_t live = c->nents - c->head - c->ndone;
    if (c->head + c->ndone < S_COMPACT_MIN || c->head + c->ndone < live)
        return;
    size_t n = 0, alen = 0;
    for (size_t i = c->head; i < c->nents; i++) {
        s_entry_t e = c->ents[i];
        if (e.done)
            continue;
        size_t sz = (size_t)e.cmdlen + e.len;
        memmove(c->arena.p + alen, c->arena.p + e.off, sz);
        e.off = alen;
        alen += sz;
        c->ents[n++] = e;
    }
    c->nents = n;
    c->head = 0;
    c->ndone = 0;
    c->arena.len = alen;
}

/* Store cmd + payload in the arena and register the request. */
static s_entry_t *s_register(zq_client_t *c, s_kind_t kind, uint64_t req, const char *cmd,
                             const char *payload, size_t len)
{
    size_t off = c->arena.len, cmdlen = strlen(cmd);
    s_buf_put(&c->arena, cmd, cmdlen);
    s_buf_put(&c->arena, payload, len);
    s_entry_t *e = c->arena.oom ? NULL : s_add(c, kind, req, off, cmdlen, len);
    if (!e) {
        c->arena.oom = 0;
        c->arena.len = off;
    }
    return e;
}

/* GET body for an entry: the remaining part of its timeout. */
static const char *s_get_body(zq_client_t *c, const s_entry_t *e, size_t *len)
{
    s_buf_t *b = &c->scratch;
    b->len = 0;
    s_buf_printf(b, "{\"req\":%" PRIu64 ",\"id\":", e->req);
    char id[256];
    size_t idlen = e->len < sizeof id ? e->len : sizeof id - 1;
    memcpy(id, c->arena.p + e->off + e->cmdlen, idlen);
    id[idlen] = '\0';
    s_buf_json_str(b, id);
    if (e->until < 0) {
        s_buf_puts(b, ",\"timeout\":null}");
    } else {
        double left = e->until - zq_mono();
        s_buf_printf(b, ",\"timeout\":%.6f}", left > 0 ? left : 0.0);
    }
    *len = b->len;
    return b->oom ? NULL : b->p;
}

static int s_send_entry(zq_client_t *c, const s_entry_t *e);
static void s_remember_refusal(zq_client_t *c, s_entry_t *e, int code, const char *msg);
static void s_submit_acked(zq_client_t *c, s_entry_t *e, int taken);

/* One request on the socket, non-blocking. Under mu. */
static int s_sock_send(zq_client_t *c, const char *cmd, const char *body, size_t len)
{
    c->sock_settled = 0; /* a send may take the fd's signal (zq_zpoll.h) */
    if (c->fail_sends > 0) {
        c->fail_sends--;
        errno = ENOBUFS;
        return ZQ_EIO;
    }
    return zq_msg_send_raw(c->sock, NULL, 0, cmd, body, len, ZMQ_DONTWAIT);
}

/* Send the held batch: one task as a SUBMIT, more as a SUBMITS. Under mu. On failure the
 * batch is kept. */
static int s_batch_send(zq_client_t *c)
{
    if (!c->batch_n)
        return ZQ_OK;
    int rc;
    if (c->batch_n == 1) {
        rc = s_sock_send(c, ZQ_CMD_SUBMIT, c->batch.p + 1, c->batch.len - 1);
    } else {
        c->batch.p[c->batch.len] = ']'; /* s_batch_add kept room for it */
        rc = s_sock_send(c, ZQ_CMD_SUBMITS, c->batch.p, c->batch.len + 1);
    }
    if (rc != ZQ_OK)
        return rc;
    c->batch.len = 0;
    c->batch_n = 0;
    c->last_sent = zq_mono();
    return ZQ_OK;
}

/* A SUBMIT could not be sent: refused, so that flush() and get() say so. */
static void s_submit_unsent(zq_client_t *c, s_entry_t *e, const char *why)
{
    s_remember_refusal(c, e, ZQ_EIO, why);
    if (e->push)
        s_submit_acked(c, e, 0);
    else
        s_finish(c, e);
}

/* Send the held batch now (before another request, or a wait). Caller thread, not under
 * mu. A batch that cannot be sent is refused, task by task. */
static int s_batch_flush(zq_client_t *c)
{
    uint64_t reqs[S_BATCH_MAX];
    size_t n = 0;
    pthread_mutex_lock(&c->mu);
    int rc = s_batch_send(c), err = errno;
    if (rc != ZQ_OK) {
        n = c->batch_n;
        memcpy(reqs, c->batch_reqs, n * sizeof *reqs);
        c->batch.len = 0;
        c->batch_n = 0;
    }
    pthread_mutex_unlock(&c->mu);
    if (rc == ZQ_OK)
        return ZQ_OK;
    char why[700];
    snprintf(why, sizeof why, "cannot send it to %s: %s", c->url, zmq_strerror(err));
    s_err(c, "cannot send %zu task(s) to %s: %s", n, c->url, zmq_strerror(err));
    for (size_t i = 0; i < n; i++) {
        s_entry_t *e = s_find(c, reqs[i]);
        if (e && !e->done)
            s_submit_unsent(c, e, why);
    }
    return ZQ_EIO; /* no s_gc here: callers hold entry pointers */
}

static void s_timed_wait(zq_client_t *c, double until)
{
    struct timespec ts;
    ts.tv_sec = (time_t)until;
    ts.tv_nsec = (long)((until - (double)ts.tv_sec) * 1e9);
    pthread_cond_timedwait(&c->cv, &c->mu, &ts);
}

/* The flusher: sends a batch that is S_BATCH_LATE old (the program stopped calling). While
 * the program submits, it looks every S_BATCH_LATE by itself, so that apply_async need not
 * wake it for every batch; after S_FLUSHER_POLLS looks at nothing it sleeps until woken. */
static void *s_flusher_main(void *arg)
{
    zq_client_t *c = arg;
    int empty = 0;
    pthread_mutex_lock(&c->mu);
    while (!c->flusher_stop) {
        double now = zq_mono();
        if (c->batch_n) {
            empty = 0;
            double due = c->batch_t0 + c->batch_late;
            if (now < due)
                s_timed_wait(c, due);
            else if (s_batch_send(c) != ZQ_OK) {
                /* again later; the program's next call refuses the batch, saying why */
                ZQ_WARN("zq client: cannot send %zu held task(s) to %s: %s (trying again)",
                        c->batch_n, c->url, zmq_strerror(errno));
                c->batch_t0 = now;
            }
        } else if (empty < S_FLUSHER_POLLS) {
            empty++;
            s_timed_wait(c, now + c->batch_late);
        } else {
            c->flusher_idle = 1;
            pthread_cond_wait(&c->cv, &c->mu);
            c->flusher_idle = 0;
            empty = 0;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* Hold a new SUBMIT (its text is in the arena) for the batch, or send it with the batch
 * now. A batch that cannot be sent is refused, task by task (flush() and get() say so). */
static void s_batch_add(zq_client_t *c, s_entry_t *e)
{
    const char *body = c->arena.p + e->off + e->cmdlen;
    double now = zq_mono();
    pthread_mutex_lock(&c->mu);
    /* room for ',' or '[', the body, and the closing ']' */
    if (c->batch_n && c->batch.len + e->len + 2 > S_BATCH_BYTES) {
        pthread_mutex_unlock(&c->mu);
        s_batch_flush(c);
        pthread_mutex_lock(&c->mu);
    }
    /* a task as large as a batch, or no memory for the batch: alone, after the batch (no
     * copy, and the batch's buffer does not keep the size of the largest task) */
    if (e->len + 2 > S_BATCH_BYTES || s_buf_reserve(&c->batch, e->len + 2) != 0) {
        c->batch.oom = 0;
        pthread_mutex_unlock(&c->mu);
        if (s_send_entry(c, e) != ZQ_OK) /* sends the batch first */
            s_submit_unsent(c, e, c->errmsg);
        return;
    }
    if (!c->batch_n)
        c->batch_t0 = now;
    s_buf_put(&c->batch, c->batch_n ? "," : "[", 1);
    s_buf_put(&c->batch, body, e->len);
    c->batch_reqs[c->batch_n++] = e->req;
    /* (never past S_BATCH_BYTES: a task that would not fit sent the batch above) */
    int send = c->batch_n == S_BATCH_MAX || now - c->batch_t0 >= c->batch_hold ||
               (c->batch_n == 1 && now - c->last_sent >= c->batch_hold);
    if (!send && !c->flusher_on) {
        /* with every signal blocked, as libzmq's threads: the program's signals stay with
         * its own threads (a SIGINT must still interrupt its waits) */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        c->flusher_stop = 0;
        if (pthread_create(&c->flusher, NULL, s_flusher_main, c) == 0)
            c->flusher_on = 1;
        else
            send = 1; /* no thread: nothing may be held */
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    } else if (!send && c->flusher_idle && c->batch_n == 1) {
        pthread_cond_signal(&c->cv);
    }
    int rc = send ? s_batch_send(c) : ZQ_OK;
    pthread_mutex_unlock(&c->mu);
    if (rc != ZQ_OK)
        s_batch_flush(c); /* tries once more, else refuses */
}

static int s_send_entry(zq_client_t *c, const s_entry_t *e)
{
    char cmd[ZQ_MAX_CMD + 1];
    memcpy(cmd, c->arena.p + e->off, e->cmdlen);
    cmd[e->cmdlen] = '\0';
    const char *body = c->arena.p + e->off + e->cmdlen;
    size_t len = e->len;
    if (e->kind == S_GET_SYNC || e->kind == S_GET_ASYNC || e->kind == S_PUSH) {
        body = s_get_body(c, e, &len);
        if (!body)
            return ZQ_ENOMEM;
    }
    /* a held batch goes first: nothing overtakes a SUBMIT (a GET of its id would be
     * answered "unknown") */
    s_batch_flush(c);
    /* the socket has no send limit (S_WINDOW bounds memory instead): never blocks */
    pthread_mutex_lock(&c->mu);
    int rc = s_sock_send(c, cmd, body, len);
    if (rc == ZQ_OK && e->kind == S_SUBMIT)
        c->last_sent = zq_mono();
    pthread_mutex_unlock(&c->mu);
    if (rc != ZQ_OK) {
        s_err(c, "cannot send %s to %s: %s", cmd, c->url, zmq_strerror(errno));
        return ZQ_EIO;
    }
    return ZQ_OK;
}

/* The task id an entry's payload holds (GET kinds). */
static void s_entry_id(const zq_client_t *c, const s_entry_t *e, char *id, size_t idsize)
{
    size_t n = e->len < idsize ? e->len : idsize - 1;
    memcpy(id, c->arena.p + e->off + e->cmdlen, n);
    id[n] = '\0';
}

/* A GET that was to be answered through its SUBMIT's subscription, which the broker did
 * not take (an older broker, its cap reached, the SUBMIT refused): ask with GET now. */
static void s_push_declined(zq_client_t *c, s_entry_t *p)
{
    if (p->kind == S_PUSH) { /* nobody waits yet: forget it (get() asks with GET) */
        if (p->h && p->h->push_req == p->req) {
            s_push_drop(p->h);
            p->h->push_req = 0;
        }
        p->h = NULL;
        s_finish(c, p);
        return;
    }
    p->push = 0;
    p->resend = 1;
    s_send_entry(c, p);
}

static void s_resend_all(zq_client_t *c)
{
    /* the held batch is among what is sent again, one by one */
    pthread_mutex_lock(&c->mu);
    c->batch.len = 0;
    c->batch_n = 0;
    pthread_mutex_unlock(&c->mu);
    size_t n = 0;
    for (size_t i = c->head; i < c->nents; i++) {
        s_entry_t *e = &c->ents[i];
        if (!e->done && e->resend && s_send_entry(c, e) == ZQ_OK) {
            e->push = 0; /* a GET now: a restarted broker forgot the subscription */
            n++;
        }
    }
    if (n)
        ZQ_INFO("zq client: reconnected to %s, sent %zu pending request(s) again", c->url, n);
}

/* ---------------------------------------------------------------------------------------
 * Receiving
 */
static void s_remember_refusal(zq_client_t *c, s_entry_t *e, int code, const char *msg)
{
    char id[256] = "?";
    cJSON *sent = cJSON_ParseWithLength(c->arena.p + e->off + e->cmdlen, e->len);
    snprintf(id, sizeof id, "%s", zq_json_str(sent, "id", "?"));
    cJSON_Delete(sent);
    if (!c->refusal_code) {
        c->refusal_code = code;
        snprintf(c->refusal_msg, sizeof c->refusal_msg, "the broker refused task %s: %s", id, msg);
    }
    s_refusal_t *r = &c->refused[c->nrefused++ % S_MAX_REFUSED];
    r->req = e->req;
    r->code = code;
    snprintf(r->msg, sizeof r->msg, "%s", msg);
}

/* Handle one REPLY body (owned). */
/* A SUBMIT that subscribed (e->push) was answered; taken: the broker parked the
 * subscription ("get": true), else the record must be asked for. */
static void s_submit_acked(zq_client_t *c, s_entry_t *e, int taken)
{
    uint64_t req = e->req;
    s_finish(c, e);
    s_entry_t *p = s_find(c, req + 1); /* e may move: look it up by req */
    if (p && !p->done && p->push) {
        if (taken)
            p->resend = 1; /* armed: after a reconnection it becomes a GET */
        else
            s_push_declined(c, p);
    }
}

static void s_handle_reply(zq_client_t *c, cJSON *body)
{
    const cJSON *reqv = cJSON_GetObjectItemCaseSensitive(body, "req");
    s_entry_t *e = NULL;
    /* a req this client never sent (>= 2^53) is not converted: a number beyond uint64_t
     * would be undefined behaviour (found by review after tests/fuzz) */
    if (!cJSON_IsNumber(reqv) || reqv->valuedouble < 1 ||
        reqv->valuedouble >= 9007199254740992.0) {
        if (!c->warned_bad++)
            ZQ_WARN("zq client: ignoring a reply without a valid req from %s", c->url);
        goto out;
    }
    e = s_find(c, (uint64_t)reqv->valuedouble);
    if (!e || e->done) /* a late or duplicate answer (resent request, abandoned wait) */
        goto out;
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(body, "error");
    int code = ZQ_OK;
    const char *msg = NULL;
    if (err) {
        code = s_map_code(zq_json_str(err, "code", NULL));
        msg = zq_json_str(err, "message", "(no message)");
    }
    switch ((s_kind_t)e->kind) {
    case S_SUBMIT:
        if (err)
            s_remember_refusal(c, e, code, msg);
        if (e->push) {
            s_submit_acked(c, e, !err && zq_json_bool(body, "get", 0));
            e = NULL;
        }
        break;
    case S_GET_SYNC:
    case S_SYNC:
        if (e->kind == S_GET_SYNC && e->push && err) { /* the subscription failed: GET */
            s_push_declined(c, e);
            e = NULL;
            break;
        }
        cJSON_Delete(c->sync_reply);
        c->sync_reply = body;
        body = NULL;
        break;
    case S_GET_ASYNC: {
        if (e->push && err) {
            s_push_declined(c, e);
            e = NULL;
            break;
        }
        cJSON *rec = body;
        body = NULL;
        cJSON_DeleteItemFromObjectCaseSensitive(rec, "req");
        if (err && !cJSON_GetObjectItemCaseSensitive(rec, "id")) {
            char id[256];
            s_entry_id(c, e, id, sizeof id);
            cJSON_AddStringToObject(rec, "id", id);
        }
        cJSON_AddItemToArray(c->ready, rec);
        break;
    }
    case S_PUSH: {
        zq_async_result_t *h = e->h;
        if (err) {
            s_push_declined(c, e);
            e = NULL;
        } else if (h && h->push_req == e->req) {
            cJSON_DeleteItemFromObjectCaseSensitive(body, "req");
            s_push_drop(h);
            h->push_rec = body;
            body = NULL;
        }
        break;
    }
    }
    if (e)
        s_finish(c, e);
out:
    cJSON_Delete(body);
}

/* A REPLIES element [req][body] (docs/protocol.md §7 "Coalesced replies"). A record for
 * a subscription is kept as text (parsed when somebody wants it: thousands of records
 * waiting as cJSON trees would make every malloc slow); anything else is handled as a
 * REPLY. */
static void s_handle_element(zq_client_t *c, const char *reqf, size_t reqlen, const char *body,
                             size_t len)
{
    uint64_t req = 0;
    int ok = reqlen > 0 && reqlen <= 15;
    for (size_t i = 0; ok && i < reqlen; i++) {
        if (reqf[i] < '0' || reqf[i] > '9')
            ok = 0;
        else
            req = req * 10 + (uint64_t)(reqf[i] - '0');
    }
    s_entry_t *e = ok && req ? s_find(c, req) : NULL;
    /* an error answer (the subscription failed) goes the REPLY way */
    if (e && !e->done && e->kind == S_PUSH && len > 8 && body[0] == '{' &&
        memcmp(body, "{\"error\"", 8) != 0) {
        zq_async_result_t *h = e->h;
        if (h && h->push_req == req) {
            char *copy = malloc(len);
            if (copy) {
                memcpy(copy, body, len);
                s_push_drop(h);
                h->push_text = copy;
                h->push_len = len;
                s_finish(c, e);
                return;
            }
        }
    }
    /* the usual answer to a SUBMIT, {"id":"...","get":true} or without "get", needs no tree:
     * one per task. Keys are found as text: the broker prints compact JSON, and a quote
     * inside a string is escaped, so "error" or "get":true cannot come from a value */
    if (e && !e->done && e->kind == S_SUBMIT && len >= 2 && len < 1024 && body[0] == '{' &&
        body[len - 1] == '}' && !memmem(body, len, "\"error\"", 7)) {
        int taken = memmem(body, len, "\"get\":true", 10) != NULL;
        if (e->push)
            s_submit_acked(c, e, taken);
        else
            s_finish(c, e);
        return;
    }
    cJSON *item = cJSON_ParseWithLength(body, len);
    if (!cJSON_IsObject(item)) {
        cJSON_Delete(item);
        if (!c->warned_bad++)
            ZQ_WARN("zq client: ignoring a REPLIES element that is not a JSON object from %s",
                    c->url);
        return;
    }
    s_handle_reply(c, item);
}

/* A packed REPLIES frame (docs/protocol.md §7): elements "req len\n" + body, back to
 * back. A malformed element ends the frame (the ones before it are handled). */
static void s_handle_packed(zq_client_t *c, const char *p, size_t n)
{
    size_t at = 0;
    if (n == 0 && !c->warned_bad++)
        ZQ_WARN("zq client: a REPLIES without an element from %s", c->url);
    while (at < n) {
        size_t rq = at, rqlen = 0, len = 0, digits = 0;
        while (at < n && p[at] >= '0' && p[at] <= '9' && rqlen < 16) {
            at++;
            rqlen++;
        }
        int ok = rqlen > 0 && at < n && p[at++] == ' ';
        while (ok && at < n && p[at] >= '0' && p[at] <= '9' && digits < 10) {
            len = len * 10 + (size_t)(p[at++] - '0');
            digits++;
        }
        ok = ok && digits > 0 && at < n && p[at++] == '\n' && len <= n - at;
        if (!ok) {
            if (!c->warned_bad++)
                ZQ_WARN("zq client: malformed REPLIES element from %s at byte %zu", c->url, at);
            return;
        }
        s_handle_element(c, p + rq, rqlen, p + at, len);
        at += len;
    }
}

/* Handle the n frames of one message in c->parts: a REPLY, or a REPLIES carrying several. */
static void s_handle_frames(zq_client_t *c, size_t n)
{
    const char *f[3] = {"", "", ""};
    size_t sz[3] = {0, 0, 0};
    for (size_t i = 0; i < 3 && i < n; i++) {
        f[i] = zmq_msg_data(&c->parts[i]);
        sz[i] = zmq_msg_size(&c->parts[i]);
    }
    size_t vlen = strlen(ZQ_PROTO_VERSION), clen = strlen(ZQ_CMD_REPLIES);
    int replies = n >= 3 && sz[0] == vlen && !memcmp(f[0], ZQ_PROTO_VERSION, vlen) &&
                  sz[1] == clen && !memcmp(f[1], ZQ_CMD_REPLIES, clen);
    if (replies && n == 3) {
        s_handle_packed(c, f[2], sz[2]);
        return;
    }
    if (replies && n % 2 == 0) {
        for (size_t i = 2; i + 1 < n; i += 2)
            s_handle_element(c, zmq_msg_data(&c->parts[i]), zmq_msg_size(&c->parts[i]),
                             zmq_msg_data(&c->parts[i + 1]), zmq_msg_size(&c->parts[i + 1]));
        return;
    }
    zq_msg_t m;
    char why[160];
    const void *frames[3] = {f[0], f[1], f[2]};
    if (n != 3 || zq_msg_decode(frames, sz, 3, 0, &m, why, sizeof why) != ZQ_OK) {
        if (n != 3)
            snprintf(why, sizeof why, "%zu frames", n);
        if (!c->warned_bad++)
            ZQ_WARN("zq client: malformed message from %s: %s", c->url, why);
        return;
    }
    if (!strcmp(m.cmd, ZQ_CMD_REPLY)) {
        cJSON *body = m.body;
        m.body = NULL;
        s_handle_reply(c, body);
    } else if (!c->warned_bad++) {
        ZQ_WARN("zq client: ignoring %s from %s", m.cmd, c->url);
    }
    zq_msg_clear(&m);
}

/* Receive one whole message into c->parts without blocking. Returns its frame count; 0
 * when nothing is waiting or the socket failed. Frames past the limit are dropped (the
 * message is then malformed: an odd count or too few). */
#define S_MAX_FRAMES (2 + 2 * 100000)
static size_t s_recv_frames(zq_client_t *c)
{
    size_t n = 0;
    pthread_mutex_lock(&c->mu); /* the flusher may send meanwhile */
    for (int more = 1; more;) {
        if (n == c->parts_cap) {
            size_t nc = c->parts_cap ? c->parts_cap * 2 : 64;
            zmq_msg_t *v = n < S_MAX_FRAMES ? realloc(c->parts, nc * sizeof *v) : NULL;
            if (v) {
                c->parts = v;
                c->parts_cap = nc;
            }
        }
        zmq_msg_t tmp, *part = n < c->parts_cap ? &c->parts[n] : &tmp;
        zmq_msg_init(part);
        if (zmq_msg_recv(part, c->sock, n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            c->sock_settled = n == 0 && errno == EAGAIN;
            c->empty_looks += c->sock_settled;
            zmq_msg_close(part);
            break;
        }
        c->sock_settled = 0;
        more = zmq_msg_more(part);
        if (part == &tmp)
            zmq_msg_close(part); /* over the limit (or no memory): dropped */
        else
            n++;
    }
    pthread_mutex_unlock(&c->mu);
    return n;
}

/* Read everything waiting on the DEALER without blocking. */
static void s_drain(zq_client_t *c)
{
    for (;;) {
        size_t n = s_recv_frames(c);
        if (n == 0)
            break;
        s_handle_frames(c, n);
        for (size_t i = 0; i < n; i++)
            zmq_msg_close(&c->parts[i]);
    }
    s_gc(c);
}

/* Connection events: a CONNECTED after the first means the broker came back. */
static void s_drain_monitor(zq_client_t *c)
{
    for (;;) {
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, c->mon, ZMQ_DONTWAIT) < 0) {
            c->mon_settled = errno == EAGAIN;
            zmq_msg_close(&ev);
            return;
        }
        c->mon_settled = 0;
        uint16_t event = 0;
        uint32_t value = 0;
        if (zmq_msg_size(&ev) >= 6) {
            memcpy(&event, zmq_msg_data(&ev), 2);
            memcpy(&value, (const char *)zmq_msg_data(&ev) + 2, 4);
        }
        int more = zmq_msg_more(&ev);
        zmq_msg_close(&ev);
        if (more) {
            zmq_msg_init(&addr);
            zmq_msg_recv(&addr, c->mon, 0);
            zmq_msg_close(&addr);
        }
        if (event == ZMQ_EVENT_CONNECTED) {
            if (c->connected_once)
                s_resend_all(c);
            c->connected_once = 1;
        } else if (event == ZMQ_EVENT_DISCONNECTED) {
            ZQ_DEBUG("zq client: lost the connection to %s", c->url);
        } else {
            char peer[600];
            snprintf(peer, sizeof peer, "the broker at %s", c->url);
            int r = zq_curve_describe_event(event, value, c->curve.enabled, peer, c->auth_msg,
                                            sizeof c->auth_msg);
            if (r > 0 && !c->auth_failed)
                ZQ_DEBUG("zq client: %s", c->auth_msg);
            if (r != 0)
                c->auth_failed = r > 0;
        }
    }
}

/* Wait up to `wait` seconds for traffic, then handle all of it. */
static void s_pump(zq_client_t *c, double wait)
{
    zmq_pollitem_t items[2] = {{c->sock, 0, ZMQ_POLLIN, 0}, {c->mon, 0, ZMQ_POLLIN, 0}};
    long ms = wait <= 0 ? 0 : (long)ceil(wait * 1000.0);
    if (ms > 1000000)
        ms = 1000000;
    /* no batch is held while we wait (s_wait sent it): the flusher has nothing to send */
    pthread_mutex_lock(&c->mu);
    unsigned char settled[2] = {(unsigned char)c->sock_settled, (unsigned char)c->mon_settled};
    int prc = zq_zpoll(items, settled, 2, ms);
    pthread_mutex_unlock(&c->mu);
    if (prc <= 0)
        return; /* timeout, or EINTR: the caller re-checks its condition and deadline */
    if (items[1].revents & ZMQ_POLLIN)
        s_drain_monitor(c);
    if (items[0].revents & ZMQ_POLLIN)
        s_drain(c);
}

/* Give up on async GETs whose broker never answered: each becomes {"id", "timeout":true}. */
static void s_expire_async(zq_client_t *c)
{
    double now = zq_mono();
    if (now < c->next_async_deadline)
        return;
    double next = INFINITY;
    for (size_t i = c->head; i < c->nents; i++) {
        s_entry_t *e = &c->ents[i];
        if (e->done || e->kind != S_GET_ASYNC || e->until < 0)
            continue;
        if (e->push && now >= e->until) {
            /* the subscription never expires: ask now, the broker answers at once with
             * the current record and "timeout": true */
            e->push = 0;
            if (s_send_entry(c, e) != ZQ_OK)
                e->until = now - S_GRACE; /* cannot ask: give up below */
        }
        if (e->push) {
            if (e->until < next)
                next = e->until;
        } else if (now >= e->until + S_GRACE) {
            char id[256];
            size_t n = e->len < sizeof id ? e->len : sizeof id - 1;
            memcpy(id, c->arena.p + e->off + e->cmdlen, n);
            id[n] = '\0';
            cJSON *rec = cJSON_CreateObject();
            if (!rec) {
                next = now + 0.1; /* retry soon */
                continue;
            }
            cJSON_AddStringToObject(rec, "id", id);
            cJSON_AddBoolToObject(rec, "timeout", 1);
            cJSON_AddItemToArray(c->ready, rec);
            s_finish(c, e);
        } else if (e->until + S_GRACE < next) {
            next = e->until + S_GRACE;
        }
    }
    c->next_async_deadline = next;
    s_gc(c);
}

typedef int (*s_cond_fn)(zq_client_t *c, const void *arg);

/* Pump until cond holds (ZQ_OK) or the monotonic deadline passes (ZQ_ETIMEOUT; < 0 never). */
static int s_wait(zq_client_t *c, double deadline, s_cond_fn cond, const void *arg)
{
    s_batch_flush(c);
    s_drain_monitor(c);
    s_drain(c);
    for (;;) {
        if (c->async_out)
            s_expire_async(c);
        if (cond(c, arg))
            return ZQ_OK;
        if (c->auth_failed) { /* fail now: waiting would only time out */
            s_err(c, "%s", c->auth_msg);
            return ZQ_EAUTH;
        }
        double now = zq_mono();
        if (deadline >= 0 && now >= deadline)
            return ZQ_ETIMEOUT;
        double until = deadline < 0 ? now + 3600 : deadline;
        if (c->async_out && c->next_async_deadline < until)
            until = c->next_async_deadline;
        s_pump(c, until - now);
    }
}

static double s_deadline(double timeout)
{
    return timeout < 0 ? -1 : zq_mono() + timeout;
}

/* ---------------------------------------------------------------------------------------
 * Life cycle
 */
zq_client_t *zq_client_new(const char *broker_url)
{
    zq_client_opts_t opts = {broker_url, NULL, NULL};
    return zq_client_new_opts(&opts);
}

int zq_client_is_curve(const zq_client_t *self)
{
    return self && self->curve.enabled;
}

zq_client_t *zq_client_new_opts(const zq_client_opts_t *opts)
{
    static const zq_client_opts_t none;
    if (!opts)
        opts = &none;
    const char *url = zq_broker_url(opts->broker_url);
    if (strlen(url) >= 512 || (strncmp(url, "tcp://", 6) && strncmp(url, "ipc://", 6) &&
                               strncmp(url, "inproc://", 9))) {
        ZQ_ERROR("zq client: bad broker URL '%s' (want tcp://HOST:PORT or ipc://PATH)", url);
        return NULL;
    }
    zq_client_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    char why[600];
    if (zq_curve_client_load(&c->curve, opts->curve_secret_file, opts->curve_server_key_file,
                             why, sizeof why) != ZQ_OK) {
        ZQ_ERROR("zq client: %s", why);
        free(c);
        return NULL;
    }
    snprintf(c->url, sizeof c->url, "%s", url);
    snprintf(c->origin, sizeof c->origin, "gen%ld@%s", (long)getpid(), zq_hostname());
    c->timeout = ZQ_CLIENT_TIMEOUT;
    c->linger = S_DESTROY_FLUSH;
    c->next_req = 1;
    c->next_async_deadline = INFINITY;
    c->batch_hold = S_BATCH_HOLD;
    c->batch_late = S_BATCH_LATE;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* the flusher's deadlines are zq_mono() */
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    c->ready = cJSON_CreateArray();
    c->ctx = zmq_ctx_new();
    if (c->ctx)
        c->sock = zmq_socket(c->ctx, ZMQ_DEALER);
    if (!c->ready || !c->sock)
        goto fail;
    zq_socket_defaults(c->sock);
    /* Replies never outnumber requests, so an unbounded receive queue is bounded by what
     * we sent; no send limit either: S_WINDOW bounds what is in flight. */
    int zero = 0;
    zmq_setsockopt(c->sock, ZMQ_RCVHWM, &zero, sizeof zero);
    zmq_setsockopt(c->sock, ZMQ_SNDHWM, &zero, sizeof zero);
    if (zq_curve_client_apply(c->sock, &c->curve, NULL) != ZQ_OK)
        goto fail;
    char monep[64];
    snprintf(monep, sizeof monep, "inproc://zq-client-monitor-%p", (void *)c);
    /* attach the monitor before connecting so that the first CONNECTED is seen */
    int events = ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                 ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                 ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL;
    if (zmq_socket_monitor(c->sock, monep, events) != 0)
        goto fail;
    c->mon = zmq_socket(c->ctx, ZMQ_PAIR);
    if (!c->mon || zmq_connect(c->mon, monep) != 0)
        goto fail;
    if (zmq_connect(c->sock, url) != 0) {
        ZQ_ERROR("zq client: cannot connect to '%s': %s", url, zmq_strerror(errno));
        goto fail;
    }
    return c;
fail:
    if (c->sock && c->mon) {
        zmq_socket_monitor(c->sock, NULL, 0);
    }
    if (c->mon)
        zmq_close(c->mon);
    if (c->sock)
        zmq_close(c->sock);
    if (c->ctx)
        zmq_ctx_term(c->ctx);
    cJSON_Delete(c->ready);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    memset(&c->curve, 0, sizeof c->curve);
    free(c);
    return NULL;
}

void zq_client_destroy(zq_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zq_client_t *c = *self_p;
    if (c->flusher_on) {
        pthread_mutex_lock(&c->mu);
        c->flusher_stop = 1;
        pthread_cond_signal(&c->cv);
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->flusher, NULL);
        c->flusher_on = 0;
    }
    s_batch_flush(c); /* even without linger: what apply_async took is handed to ZeroMQ */
    int frc = c->unacked && c->linger > 0 ? zq_client_flush(c, c->linger) : ZQ_OK;
    if (frc == ZQ_ETIMEOUT)
        ZQ_WARN("zq client: %zu task(s) not acknowledged by the broker at %s within %gs: "
                "they may be lost",
                c->unacked, c->url, c->linger);
    else if (frc == ZQ_EAUTH)
        ZQ_WARN("zq client: %zu task(s) not sent: %s", c->unacked, c->errmsg);
    zmq_socket_monitor(c->sock, NULL, 0);
    zmq_close(c->mon);
    zmq_close(c->sock);
    zmq_ctx_term(c->ctx);
    cJSON_Delete(c->ready);
    cJSON_Delete(c->sync_reply);
    for (zq_async_result_t *r = c->handles; r; r = r->next)
        r->client = NULL; /* they may be destroyed later, not used */
    free(c->pm); /* the handles own their records */
    free(c->parts);
    free(c->ents);
    free(c->arena.p);
    free(c->scratch.p);
    free(c->batch.p);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    memset(&c->curve, 0, sizeof c->curve);
    free(c);
    *self_p = NULL;
}

const char *zq_client_errmsg(const zq_client_t *self)
{
    return self ? self->errmsg : "no client";
}

const char *zq_client_url(const zq_client_t *self)
{
    return self ? self->url : "";
}

void zq_client_set_linger(zq_client_t *self, double seconds)
{
    if (self)
        self->linger = seconds;
}

void zq_client_set_timeout(zq_client_t *self, double seconds)
{
    if (self)
        self->timeout = seconds;
}

size_t zq_client_unacked(const zq_client_t *self)
{
    return self ? self->unacked : 0;
}

/* ---------------------------------------------------------------------------------------
 * Sending tasks
 */
static int s_cond_window(zq_client_t *c, const void *arg)
{
    return c->unacked < S_WINDOW;
}

static int s_cond_acked(zq_client_t *c, const void *arg)
{
    return c->unacked == 0;
}

static int s_bad_number(double v)
{
    return isnan(v) || isinf(v);
}

int zq_client_apply_async(zq_client_t *self, const char *name, const cJSON *args,
                          const cJSON *kwargs, const zq_send_opts_t *opts,
                          zq_async_result_t **result_p)
{
    if (result_p)
        *result_p = NULL;
    if (!self)
        return ZQ_EINVAL;
    zq_client_t *c = self;
    static const zq_send_opts_t none;
    const zq_send_opts_t *o = opts ? opts : &none;
    char eta[40] = "", expires[40] = "";
    double t;

    if (!zq_valid_token(name)) {
        s_err(c, "bad task name '%s': want 1-255 printable characters without spaces",
              name ? name : "(null)");
        return ZQ_EINVAL;
    }
    if (args && !cJSON_IsArray(args)) {
        s_err(c, "%s: args must be a JSON array", name);
        return ZQ_EINVAL;
    }
    if (kwargs && !cJSON_IsObject(kwargs)) {
        s_err(c, "%s: kwargs must be a JSON object", name);
        return ZQ_EINVAL;
    }
    if (o->queue && !zq_valid_token(o->queue)) {
        s_err(c, "%s: bad queue name '%s'", name, o->queue);
        return ZQ_EINVAL;
    }
    if (o->task_id && !zq_valid_token(o->task_id)) {
        s_err(c, "%s: bad task id '%s': want 1-255 printable characters without spaces", name,
              o->task_id);
        return ZQ_EINVAL;
    }
    if (s_bad_number(o->countdown)) {
        s_err(c, "%s: countdown must be a finite number of seconds", name);
        return ZQ_EINVAL;
    }
    if (o->eta) {
        if (zq_time_parse(o->eta, &t) != ZQ_OK) {
            s_err(c, "%s: eta '%s' is not an ISO 8601 date/time", name, o->eta);
            return ZQ_EINVAL;
        }
        zq_time_iso(t, eta, sizeof eta);
    }
    if (o->expires) {
        if (zq_time_parse(o->expires, &t) != ZQ_OK) {
            s_err(c, "%s: expires '%s' is not an ISO 8601 date/time", name, o->expires);
            return ZQ_EINVAL;
        }
        zq_time_iso(t, expires, sizeof expires);
    } else if (s_bad_number(o->expires_in) || o->expires_in < 0) {
        s_err(c, "%s: expires_in must be a number of seconds >= 0", name);
        return ZQ_EINVAL;
    }
    if (o->priority < 0 || o->priority > 9) {
        s_err(c, "%s: priority must be 0-9, not %d", name, o->priority);
        return ZQ_EINVAL;
    }
    if (c->unacked >= S_WINDOW) {
        int wrc = s_wait(c, s_deadline(c->timeout), s_cond_window, NULL);
        if (wrc == ZQ_EAUTH)
            return wrc; /* errmsg says why */
        if (wrc != ZQ_OK) {
            s_err(c, "the broker at %s acknowledged nothing for %gs (%zu tasks in flight)",
                  c->url, c->timeout, c->unacked);
            return ZQ_ETIMEOUT;
        }
    }

    char idbuf[37];
    const char *id = o->task_id;
    if (!id) {
        zq_uuid7(idbuf);
        id = idbuf;
    }
    uint64_t req = c->next_req++;
    zq_async_result_t *r = NULL;
    uint64_t push_req = 0;
    if (result_p) {
        r = s_handle_new(c, id);
        if (!r) {
            s_err(c, "out of memory");
            return ZQ_ENOMEM;
        }
        r->submit_req = req;
        /* subscribe to the record: the broker sends it when the task ends, and get()
         * then has nothing to send (without memory for it, get() sends a GET). Not for
         * ignore_result: such a record carries no value, and is seldom waited for */
        if (!o->ignore_result && s_pm_put(c, r) == ZQ_OK)
            push_req = c->next_req++;
    }

    /* The SUBMIT text, built in place at the end of the arena (docs/protocol.md §6). */
    s_buf_t *b = &c->arena;
    size_t off = b->len;
    s_buf_put(b, ZQ_CMD_SUBMIT, strlen(ZQ_CMD_SUBMIT));
    size_t body = b->len;
    s_buf_puts(b, "{\"req\":");
    s_buf_u64(b, req);
    s_buf_puts(b, ",\"id\":");
    s_buf_json_str(b, id);
    s_buf_puts(b, ",\"task\":");
    s_buf_json_str(b, name);
    s_buf_puts(b, ",\"args\":");
    int big = 0;
    if (args)
        big |= s_buf_json(b, args);
    else
        s_buf_puts(b, "[]");
    s_buf_puts(b, ",\"kwargs\":");
    if (kwargs)
        big |= s_buf_json(b, kwargs);
    else
        s_buf_puts(b, "{}");
    s_buf_puts(b, ",\"queue\":");
    s_buf_json_str(b, o->queue ? o->queue : ZQ_DEFAULT_QUEUE);
    if (o->countdown != 0)
        s_buf_printf(b, ",\"countdown\":%.15g", o->countdown);
    if (eta[0]) {
        s_buf_puts(b, ",\"eta\":");
        s_buf_json_str(b, eta);
    }
    if (expires[0]) {
        s_buf_puts(b, ",\"expires\":");
        s_buf_json_str(b, expires);
    } else if (o->expires_in > 0) {
        s_buf_printf(b, ",\"expires\":%.15g", o->expires_in);
    }
    s_buf_puts(b, o->ignore_result ? ",\"ignore_result\":true,\"priority\":"
                                   : ",\"ignore_result\":false,\"priority\":");
    s_buf_u64(b, (uint64_t)o->priority); /* 0-9: checked above */
    s_buf_puts(b, ",\"origin\":");
    s_buf_json_str(b, c->origin);
    s_buf_puts(b, ",\"root_id\":");
    s_buf_json_str(b, id);
    if (push_req) {
        s_buf_puts(b, ",\"get\":");
        s_buf_u64(b, push_req);
    }
    s_buf_puts(b, ",\"coalesce\":2}");

    int rc = ZQ_OK;
    s_entry_t *e = NULL;
    if (b->oom || big) {
        rc = big && !b->oom ? ZQ_EINVAL : ZQ_ENOMEM;
        s_err(c, big && !b->oom ? "%s: arguments larger than %d bytes" : "%s: out of memory", name,
              ZQ_MAX_MSG_SIZE);
    } else if (b->len - body > ZQ_MAX_MSG_SIZE) {
        rc = ZQ_EINVAL;
        s_err(c, "%s: task message larger than %d bytes", name, ZQ_MAX_MSG_SIZE);
    } else if (!(e = s_add(c, S_SUBMIT, req, off, body - off, b->len - body))) {
        rc = ZQ_ENOMEM;
        s_err(c, "out of memory");
    }
    if (rc == ZQ_OK && push_req) {
        size_t idx = (size_t)(e - c->ents);
        s_entry_t *p = s_register(c, S_PUSH, push_req, ZQ_CMD_GET, id, strlen(id));
        e = &c->ents[idx]; /* the table may have moved */
        if (p) {
            p->resend = 0; /* the SUBMIT carries it until the broker takes it */
            p->push = 1;
            p->h = r;
            e->push = 1;
            r->push_req = push_req;
        }
        /* else: the broker sends a record nobody waits for; get() sends a GET */
    }
    if (rc != ZQ_OK) {
        b->oom = 0;
        b->len = off;
        if (push_req)
            s_pm_forget(c, r);
        free(r);
        return rc;
    }
    c->unacked++;
    s_batch_add(c, e); /* from here on, a failure to send is this task's refusal */
    /* opportunistic: consume the acknowledgements already here so that they never pile
     * up; every S_DRAIN_EVERY calls, as each look at the socket costs a syscall */
    if (++c->nsent % S_DRAIN_EVERY == 0)
        s_drain(c);
    if (result_p) {
        r->next = c->handles;
        if (c->handles)
            c->handles->prev = r;
        c->handles = r;
        *result_p = r;
    }
    return ZQ_OK;
}

int zq_client_delay(zq_client_t *self, const char *name, cJSON *args, zq_async_result_t **result_p)
{
    int rc = zq_client_apply_async(self, name, args, NULL, NULL, result_p);
    cJSON_Delete(args);
    return rc;
}

int zq_client_flush(zq_client_t *self, double timeout)
{
    if (!self)
        return ZQ_EINVAL;
    zq_client_t *c = self;
    int wrc = s_wait(c, s_deadline(timeout), s_cond_acked, NULL);
    if (wrc == ZQ_EAUTH)
        return wrc;
    if (wrc != ZQ_OK) {
        char secs[32];
        s_fmt_secs(secs, sizeof secs, timeout);
        s_err(c, "no answer from the broker at %s within %s (%zu task(s) not acknowledged)",
              c->url, secs, c->unacked);
        return ZQ_ETIMEOUT;
    }
    if (c->refusal_code) {
        int code = c->refusal_code;
        s_err(c, "%s", c->refusal_msg);
        c->refusal_code = 0;
        return code == ZQ_ESTORE || code == ZQ_EINVAL || code == ZQ_EIO ? code : ZQ_EREMOTE;
    }
    return ZQ_OK;
}

/* ---------------------------------------------------------------------------------------
 * Synchronous requests
 */
static int s_cond_sync(zq_client_t *c, const void *arg)
{
    if (c->sync_reply)
        return 1;
    const zq_async_result_t *r = arg;
    if (r && r->submit_req) { /* a get() on a task whose SUBMIT was refused would hang */
        for (size_t i = 0; i < S_MAX_REFUSED && i < c->nrefused; i++)
            if (c->refused[i].req == r->submit_req)
                return 1;
    }
    return 0;
}

static const s_refusal_t *s_refusal_of(const zq_client_t *c, const zq_async_result_t *r)
{
    if (!r || !r->submit_req)
        return NULL;
    for (size_t i = 0; i < S_MAX_REFUSED && i < c->nrefused; i++)
        if (c->refused[i].req == r->submit_req)
            return &c->refused[i];
    return NULL;
}

/* Send a registered request and wait for its REPLY. On ZQ_OK *reply_p is the body (owned,
 * "req" removed); on a broker error the mapped code and errmsg. */
static int s_roundtrip(zq_client_t *c, s_entry_t *e, int send, double deadline,
                       const zq_async_result_t *r, const char *what, double timeout,
                       cJSON **reply_p)
{
    *reply_p = NULL;
    uint64_t req = e->req;
    cJSON_Delete(c->sync_reply);
    c->sync_reply = NULL;
    c->sync_req = req;
    int rc = send ? s_send_entry(c, e) : ZQ_OK;
    if (rc == ZQ_OK)
        rc = s_wait(c, deadline, s_cond_sync, r);
    c->sync_req = 0;
    if (!c->sync_reply) {
        s_entry_t *mine = s_find(c, req); /* e may have moved */
        if (mine)
            s_finish(c, mine); /* a late answer is dropped */
        s_gc(c);
        const s_refusal_t *ref = s_refusal_of(c, r);
        if (ref) {
            s_err(c, "the broker refused task %s: %s", r->id, ref->msg);
            return ref->code;
        }
        if (rc == ZQ_ETIMEOUT) {
            char secs[32];
            s_fmt_secs(secs, sizeof secs, timeout);
            s_err(c, "no answer from the broker at %s within %s%s%s%s", c->url, secs,
                  what ? " (" : "", what ? what : "", what ? ")" : "");
        }
        return rc;
    }
    cJSON *reply = c->sync_reply;
    c->sync_reply = NULL;
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(reply, "error");
    if (err) {
        rc = s_map_code(zq_json_str(err, "code", NULL));
        s_err(c, "%s", zq_json_str(err, "message", "the broker refused the request"));
        cJSON_Delete(reply);
        return rc;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(reply, "req");
    *reply_p = reply;
    return ZQ_OK;
}

int zq_client_request(zq_client_t *self, const char *cmd, const cJSON *body, double timeout,
                      cJSON **reply_p)
{
    if (reply_p)
        *reply_p = NULL;
    if (!self || !cmd || !*cmd || strlen(cmd) > ZQ_MAX_CMD || (body && !cJSON_IsObject(body)))
        return ZQ_EINVAL;
    zq_client_t *c = self;
    for (const char *p = cmd; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || *p == '_'))
            return ZQ_EINVAL;
    uint64_t req = c->next_req++;
    /* splice "req" into the caller's object without changing it */
    s_buf_t *b = &c->scratch;
    b->len = 0;
    s_buf_printf(b, "{\"req\":%" PRIu64, req);
    size_t mark = b->len;
    if (body && s_buf_json(b, body) == 0 && b->len - mark > 2) {
        b->p[mark] = ','; /* "{...}" -> ",...}" */
    } else {
        b->len = mark;
        s_buf_put(b, "}", 1);
    }
    if (b->oom) {
        b->oom = 0;
        s_err(c, "out of memory");
        return ZQ_ENOMEM;
    }
    s_entry_t *e = s_register(c, S_SYNC, req, cmd, b->p, b->len);
    if (!e) {
        s_err(c, "out of memory");
        return ZQ_ENOMEM;
    }
    /* a second PURGE could drop tasks sent in between: only idempotent requests repeat */
    static const char *const safe[] = {ZQ_CMD_QUERY,  ZQ_CMD_INFO,   ZQ_CMD_WORKERS,
                                       ZQ_CMD_QUEUES, ZQ_CMD_REVOKE, ZQ_CMD_SCHEDULED,
                                       ZQ_CMD_TASKS,  ZQ_CMD_STATS,  NULL};
    e->resend = 0;
    for (size_t i = 0; safe[i]; i++)
        if (!strcmp(cmd, safe[i]))
            e->resend = 1;
    cJSON *reply = NULL;
    int rc = s_roundtrip(c, e, 1, s_deadline(timeout), NULL, NULL, timeout, &reply);
    if (reply_p)
        *reply_p = reply;
    else
        cJSON_Delete(reply);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * Results
 */
zq_async_result_t *zq_client_result(zq_client_t *self, const char *task_id)
{
    if (!self || !zq_valid_token(task_id))
        return NULL;
    zq_async_result_t *r = s_handle_new(self, task_id);
    if (!r)
        return NULL;
    r->next = self->handles;
    if (self->handles)
        self->handles->prev = r;
    self->handles = r;
    return r;
}

const char *zq_result_id(const zq_async_result_t *r)
{
    return r ? r->id : NULL;
}

const cJSON *zq_result_record(const zq_async_result_t *r)
{
    if (!r)
        return NULL;
    if (r->record_text) {
        /* kept as text by zq_result_get: the tree is built the first time it is asked for
         * (a cache; the handle is the caller's, so its const is only the interface's) */
        zq_async_result_t *w = (zq_async_result_t *)r;
        w->record = s_parse_record(w->record_text, w->record_len);
        free(w->record_text);
        w->record_text = NULL;
    }
    return r->record;
}

/* Take r's subscription: its record if it came (caller owns it); else *live_p is its entry
 * when the record may still come (it no longer goes to r). r's subscription is over
 * either way. */
static cJSON *s_push_claim(zq_client_t *c, zq_async_result_t *r, s_entry_t **live_p)
{
    *live_p = NULL;
    if (!r->push_req)
        return NULL;
    cJSON *rec = s_push_record(r);
    s_entry_t *e = rec ? NULL : s_find(c, r->push_req);
    if (e && !e->done && e->kind == S_PUSH && e->h == r) {
        e->h = NULL;
        *live_p = e;
    }
    r->push_req = 0;
    return rec;
}

void zq_result_destroy(zq_async_result_t **r_p)
{
    if (!r_p || !*r_p)
        return;
    zq_async_result_t *r = *r_p;
    zq_client_t *c = r->client;
    if (c) {
        s_entry_t *live = NULL;
        cJSON_Delete(s_push_claim(c, r, &live));
        if (live)
            s_finish(c, live); /* nobody will ask: the record is dropped when it comes */
        s_pm_forget(c, r);
        if (r->prev)
            r->prev->next = r->next;
        else
            c->handles = r->next;
        if (r->next)
            r->next->prev = r->prev;
    }
    cJSON_Delete(r->record);
    free(r->record_text);
    s_push_drop(r);
    free(r);
    *r_p = NULL;
}

static const char *s_static_state(const char *s)
{
    static const char *const states[] = {ZQ_STATE_PENDING, ZQ_STATE_RECEIVED, ZQ_STATE_STARTED,
                                         ZQ_STATE_RETRY,   ZQ_STATE_SUCCESS,  ZQ_STATE_FAILURE,
                                         ZQ_STATE_REVOKED, NULL};
    for (size_t i = 0; s && states[i]; i++)
        if (!strcmp(s, states[i]))
            return states[i];
    return NULL;
}

static void s_keep_record(zq_async_result_t *r, cJSON *rec)
{
    cJSON_Delete(r->record);
    free(r->record_text);
    r->record_text = NULL;
    r->record = rec;
}

#define S_NOT_LEAN 1

/* zq_result_get on a record that came as text (owned: kept on r, or freed), in the usual
 * case, a SUCCESS, without the record's tree: only the value is parsed (the tree of a whole
 * record was ~25 % of a client's CPU per task). S_NOT_LEAN, text untouched, for any
 * other record and any form the reader does not take: the caller parses it. */
static int s_get_lean(zq_client_t *c, zq_async_result_t *r, char *text, size_t len,
                      cJSON **value_p)
{
    zq_jscan_t j;
    zq_jscan_init(&j, text, len);
    const char *k, *state = NULL, *value = NULL;
    size_t kn, state_n = 0, value_n = 0;
    int first = 1, more, flag;
    if (zq_jscan_object(&j) != 0)
        return S_NOT_LEAN;
    /* a second "state" or "result" is skipped: the first counts, as in the tree */
    while ((more = zq_jscan_member(&j, &first, &k, &kn)) == 1) {
        if (kn == 5 && !memcmp(k, "state", 5) && !state) {
            if (zq_jscan_string(&j, 0, &state, &state_n) != 0)
                return S_NOT_LEAN;
        } else if (kn == 6 && !memcmp(k, "result", 6) && !value) {
            if (zq_jscan_value(&j, 1, &value, &value_n) != 0)
                return S_NOT_LEAN;
        } else if ((kn == 7 && !memcmp(k, "timeout", 7)) || (kn == 5 && !memcmp(k, "known", 5))) {
            /* {"timeout": true} and {"known": false} are the tree's to word */
            if (zq_jscan_bool(&j, &flag) != 0 || flag == (kn == 7))
                return S_NOT_LEAN;
        } else if (zq_jscan_value(&j, 1, NULL, NULL) != 0) {
            return S_NOT_LEAN;
        }
    }
    if (more != 0 || zq_jscan_end(&j) != 0 || !state || state_n != strlen(ZQ_STATE_SUCCESS) ||
        memcmp(state, ZQ_STATE_SUCCESS, state_n) != 0)
        return S_NOT_LEAN;
    if (value_p) {
        *value_p = value ? cJSON_ParseWithLength(value, value_n) : cJSON_CreateNull();
        if (!*value_p) {
            s_err(c, "out of memory");
            free(text);
            return ZQ_ENOMEM;
        }
    }
    s_keep_record(r, NULL);
    r->record_text = text;
    r->record_len = len;
    return ZQ_OK;
}

static s_entry_t *s_register_get(zq_client_t *c, s_kind_t kind, const char *id, double timeout)
{
    uint64_t req = c->next_req++;
    s_entry_t *e = s_register(c, kind, req, ZQ_CMD_GET, id, strlen(id));
    if (e)
        e->until = timeout < 0 ? -1 : zq_mono() + timeout;
    else
        s_err(c, "out of memory");
    return e;
}

int zq_result_get(zq_async_result_t *r, double timeout, cJSON **value_p)
{
    if (value_p)
        *value_p = NULL;
    if (!r || !r->client)
        return ZQ_EINVAL;
    zq_client_t *c = r->client;
    int here = r->push_req && r->push_text && !r->push_rec;
    if (!here) {
        /* take in what has come; not when the record is here already (final: the broker
         * sends it when the task ends), as each look at the socket costs two syscalls */
        s_drain(c);
        here = r->push_req && r->push_text && !r->push_rec;
    }
    const s_refusal_t *ref = here ? NULL : s_refusal_of(c, r);
    if (ref) {
        s_err(c, "the broker refused task %s: %s", r->id, ref->msg);
        return ref->code;
    }
    char what[300];
    snprintf(what, sizeof what, "waiting for task %s", r->id);
    s_entry_t *live = NULL;
    cJSON *rec = NULL;
    if (here) {
        /* the record came already, as text */
        char *text = r->push_text;
        size_t len = r->push_len;
        r->push_text = NULL;
        r->push_len = 0;
        r->push_req = 0;
        int rc = s_get_lean(c, r, text, len, value_p);
        if (rc != S_NOT_LEAN)
            return rc;
        rec = s_parse_record(text, len); /* none: not an object, asked for with GET */
        free(text);
    } else if (r->push_req) {
        rec = s_push_claim(c, r, &live);
    }
    r->push_req = 0;
    double get_timeout = timeout;
    if (live) {
        /* the subscription becomes this wait: nothing to send */
        live->kind = S_GET_SYNC;
        live->until = timeout < 0 ? -1 : zq_mono() + timeout;
        int rc = s_roundtrip(c, live, 0, live->until, r, what, timeout, &rec);
        if (rc == ZQ_ETIMEOUT && timeout >= 0)
            get_timeout = 0; /* ask for the current record: "timed out ... (state X)" */
        else if (rc != ZQ_OK)
            return rc;
    }
    if (!rec) {
        s_entry_t *e = s_register_get(c, S_GET_SYNC, r->id, get_timeout);
        if (!e)
            return ZQ_ENOMEM;
        double deadline = get_timeout < 0 ? -1 : e->until + S_GRACE;
        int rc = s_roundtrip(c, e, 1, deadline, r, what, timeout, &rec);
        if (rc != ZQ_OK)
            return rc;
    }
    s_keep_record(r, rec);
    const char *state = zq_json_str(rec, "state", "");
    char secs[32];
    s_fmt_secs(secs, sizeof secs, timeout);
    if (zq_json_bool(rec, "timeout", 0)) {
        s_err(c, "timed out after %s waiting for task %s (state %s)", secs, r->id, state);
        return ZQ_ETIMEOUT;
    }
    if (!zq_json_bool(rec, "known", 1)) {
        s_err(c, "unknown task id %s (the broker never accepted it)", r->id);
        return ZQ_ENOTFOUND;
    }
    if (!strcmp(state, ZQ_STATE_SUCCESS)) {
        if (value_p) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, "result");
            *value_p = v ? cJSON_Duplicate(v, 1) : cJSON_CreateNull();
            if (!*value_p) {
                s_err(c, "out of memory");
                return ZQ_ENOMEM;
            }
        }
        return ZQ_OK;
    }
    if (!strcmp(state, ZQ_STATE_FAILURE) || !strcmp(state, ZQ_STATE_REVOKED)) {
        const cJSON *exc = cJSON_GetObjectItemCaseSensitive(rec, "exception");
        if (cJSON_IsObject(exc))
            s_err(c, "%s: %s", zq_json_str(exc, "type", state), zq_json_str(exc, "message", ""));
        else
            s_err(c, "task %s ended %s", r->id, state);
        return ZQ_EREMOTE;
    }
    s_err(c, "the broker answered GET for %s with state '%s' before it ended", r->id, state);
    return ZQ_EPROTO;
}

/* QUERY one id; keeps the record on r. */
static int s_query(zq_async_result_t *r)
{
    zq_client_t *c = r->client;
    cJSON *body = cJSON_CreateObject();
    if (!body || !cJSON_AddStringToObject(body, "id", r->id)) {
        cJSON_Delete(body);
        s_err(c, "out of memory");
        return ZQ_ENOMEM;
    }
    cJSON *rec = NULL;
    int rc = zq_client_request(c, ZQ_CMD_QUERY, body, c->timeout, &rec);
    cJSON_Delete(body);
    if (rc == ZQ_OK)
        s_keep_record(r, rec);
    return rc;
}

const char *zq_result_state(zq_async_result_t *r)
{
    if (!r || !r->client || s_query(r) != ZQ_OK)
        return NULL;
    const char *st = s_static_state(zq_json_str(r->record, "state", NULL));
    if (!st)
        s_err(r->client, "the broker sent a record for %s without a valid state", r->id);
    return st;
}

int zq_result_known(zq_async_result_t *r)
{
    if (!r || !r->client)
        return ZQ_EINVAL;
    int rc = s_query(r);
    if (rc != ZQ_OK)
        return rc;
    return zq_json_bool(r->record, "known", 1) ? 1 : 0;
}

/* ---------------------------------------------------------------------------------------
 * Pipelined results
 */
int zq_client_get_async(zq_client_t *self, const char *task_id, double timeout)
{
    if (!self)
        return ZQ_EINVAL;
    zq_client_t *c = self;
    if (!zq_valid_token(task_id)) {
        s_err(c, "bad task id '%s'", task_id ? task_id : "(null)");
        return ZQ_EINVAL;
    }
    s_entry_t *p = NULL;
    zq_async_result_t *sub = s_pm_find(c, task_id);
    cJSON *rec = sub ? s_push_claim(c, sub, &p) : NULL;
    if (rec) { /* it came already */
        cJSON_AddItemToArray(c->ready, rec);
        return ZQ_OK;
    }
    if (p) { /* it comes through the subscription */
        p->kind = S_GET_ASYNC;
        p->until = timeout < 0 ? -1 : zq_mono() + timeout;
        c->async_out++;
        if (p->until >= 0 && p->until < c->next_async_deadline)
            c->next_async_deadline = p->until;
        return ZQ_OK;
    }
    s_entry_t *e = s_register_get(c, S_GET_ASYNC, task_id, timeout);
    if (!e)
        return ZQ_ENOMEM;
    c->async_out++;
    if (e->until >= 0 && e->until + S_GRACE < c->next_async_deadline)
        c->next_async_deadline = e->until + S_GRACE;
    int rc = s_send_entry(c, e);
    if (rc != ZQ_OK) {
        s_finish(c, e);
        s_gc(c);
        return rc;
    }
    s_drain(c);
    return ZQ_OK;
}

static int s_cond_ready(zq_client_t *c, const void *arg)
{
    return cJSON_GetArraySize(c->ready) > 0 || c->async_out == 0;
}

int zq_client_poll_result(zq_client_t *self, double timeout, cJSON **record_p)
{
    if (!record_p)
        return ZQ_EINVAL;
    *record_p = NULL;
    if (!self)
        return ZQ_EINVAL;
    zq_client_t *c = self;
    if (!c->ready->child) {
        if (c->async_out == 0) {
            s_err(c, "no GET outstanding");
            return ZQ_ESTATE;
        }
        int wrc = s_wait(c, s_deadline(timeout), s_cond_ready, NULL);
        if (wrc == ZQ_EAUTH)
            return wrc;
        if (wrc != ZQ_OK || !c->ready->child) {
            char secs[32];
            s_fmt_secs(secs, sizeof secs, timeout);
            s_err(c, "no result within %s (%zu outstanding)", secs, c->async_out);
            return ZQ_ETIMEOUT;
        }
    }
    cJSON *rec = cJSON_DetachItemFromArray(c->ready, 0);
    *record_p = rec;
    /* one pass over the record's ~20 members (a lookup of the absent "error" is a full walk) */
    static const char *const keys[3] = {"error", "state", "timeout"};
    const cJSON *f[3];
    zq_json_members(rec, keys, 3, f);
    const cJSON *err = f[0];
    if (err) {
        s_err(c, "%s", zq_json_str(err, "message", "the broker refused the request"));
        return s_map_code(zq_json_str(err, "code", NULL));
    }
    if (!f[1] && cJSON_IsTrue(f[2])) {
        s_err(c, "no answer from the broker at %s for task %s", c->url,
              zq_json_str(rec, "id", "?"));
        return ZQ_ETIMEOUT;
    }
    return ZQ_OK;
}

/* ---------------------------------------------------------------------------------------
 * Revoke
 */
static const char *s_signame(int signum)
{
    static const struct {
        int num;
        const char *name;
    } sigs[] = {{SIGTERM, "SIGTERM"}, {SIGKILL, "SIGKILL"}, {SIGINT, "SIGINT"},
                {SIGHUP, "SIGHUP"},   {SIGQUIT, "SIGQUIT"}, {SIGUSR1, "SIGUSR1"},
                {SIGUSR2, "SIGUSR2"}, {SIGABRT, "SIGABRT"}, {0, NULL}};
    if (signum == 0)
        return "SIGTERM";
    for (size_t i = 0; sigs[i].name; i++)
        if (sigs[i].num == signum)
            return sigs[i].name;
    return NULL;
}

int zq_client_revoke(zq_client_t *self, const char *const *ids, size_t n, int terminate,
                     int signum)
{
    if (!self)
        return ZQ_EINVAL;
    zq_client_t *c = self;
    const char *sig = s_signame(signum);
    if (!ids || n == 0 || !sig) {
        s_err(c, !sig ? "revoke: unsupported signal %d" : "revoke: no task ids", signum);
        return ZQ_EINVAL;
    }
    cJSON *body = cJSON_CreateObject();
    cJSON *arr = body ? cJSON_AddArrayToObject(body, "ids") : NULL;
    int ok = arr != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        if (!zq_valid_token(ids[i])) {
            s_err(c, "revoke: bad task id '%s'", ids[i] ? ids[i] : "(null)");
            cJSON_Delete(body);
            return ZQ_EINVAL;
        }
        cJSON *s = cJSON_CreateString(ids[i]);
        ok = s && cJSON_AddItemToArray(arr, s);
        if (!ok)
            cJSON_Delete(s);
    }
    ok = ok && cJSON_AddBoolToObject(body, "terminate", terminate != 0) &&
         cJSON_AddStringToObject(body, "signal", sig);
    if (!ok) {
        cJSON_Delete(body);
        s_err(c, "out of memory");
        return ZQ_ENOMEM;
    }
    int rc = zq_client_request(c, ZQ_CMD_REVOKE, body, c->timeout, NULL);
    cJSON_Delete(body);
    return rc;
}

cJSON *zq_args(const char *json)
{
    return json ? cJSON_Parse(json) : NULL;
}

unsigned long zq_client_empty_looks(const zq_client_t *self)
{
    return self ? self->empty_looks : 0;
}

void zq_client_fail_sends(zq_client_t *self, int n)
{
    if (self) {
        pthread_mutex_lock(&self->mu);
        self->fail_sends = n;
        pthread_mutex_unlock(&self->mu);
    }
}

void zq_client_set_batching(zq_client_t *self, double hold, double late)
{
    if (self) {
        self->batch_hold = hold;
        self->batch_late = late;
    }
}

unsigned long zq_client_id_lookups(const zq_client_t *self)
{
    return self ? self->id_lookups : 0;
}
