/*
 * fuzz_util - input splitting, quiet logging, temporary directories and the fake peer
 * shared by the fuzz targets (fuzz.h).
 */
#include "config.h"
#include "fuzz.h"
#include "zq.h"
#include "zq_log.h"
#include "zq_proto.h"

#include <cjson/cJSON.h>
#include <ftw.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

/* ---------------------------------------------------------------------------------------
 * Input encoding
 */
size_t fz_split(const uint8_t *data, size_t size, fz_msg_t *msgs, size_t max)
{
    size_t nm = 0, pos = 0;
    if (!size || !max)
        return 0;
    memset(&msgs[0], 0, sizeof msgs[0]);
    nm = 1;
    while (pos + 2 <= size) {
        size_t len = ((size_t)data[pos] << 8) | data[pos + 1];
        pos += 2;
        if (len == 0xFFFF) {
            if (nm == max)
                break;
            memset(&msgs[nm], 0, sizeof msgs[nm]);
            nm++;
            continue;
        }
        if (len > size - pos)
            len = size - pos;
        fz_msg_t *m = &msgs[nm - 1];
        if (m->n < FZ_MAX_FRAMES) {
            /* exact size, so that ASan catches a read past the end; 0 bytes still get a
             * distinct (unreadable) allocation */
            unsigned char *f = malloc(len ? len : 1);
            if (!f)
                abort();
            memcpy(f, data + pos, len);
            m->frame[m->n] = f;
            m->size[m->n] = len;
            m->n++;
        }
        m->total++;
        pos += len;
    }
    return nm;
}

void fz_free(fz_msg_t *msgs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < msgs[i].n; k++)
            free(msgs[i].frame[k]);
        memset(&msgs[i], 0, sizeof msgs[i]);
    }
}

char *fz_str(const fz_msg_t *m, size_t i, const char *fallback)
{
    if (!m || i >= m->n)
        return strdup(fallback ? fallback : "");
    char *s = malloc(m->size[i] + 1);
    if (!s)
        abort();
    memcpy(s, m->frame[i], m->size[i]);
    s[m->size[i]] = '\0';
    return s;
}

/* ---------------------------------------------------------------------------------------
 * Environment
 */
void fz_quiet(void)
{
    static FILE *devnull;
    signal(SIGPIPE, SIG_IGN);
    const char *keep = getenv("ZQ_FUZZ_LOG");
    if (keep && *keep && strcmp(keep, "0")) {
        zq_log_set_level(ZQ_LOG_DEBUG);
        return;
    }
    if (!devnull)
        devnull = fopen("/dev/null", "w");
    if (devnull)
        zq_log_set_stream(devnull);
    zq_log_set_level(ZQ_LOG_ERROR);
}

void fz_loud(void)
{
    zq_log_set_stream(stderr);
    zq_log_set_level(ZQ_LOG_INFO);
}

char *fz_tmpdir(const char *name)
{
    /* tmpfs when there is one: a broker's store fsyncs while it creates its schema */
    const char *base = getenv("TMPDIR");
    if (!base || !*base)
        base = access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : "/tmp";
    char *path = NULL;
    if (asprintf(&path, "%s/zq-fuzz-%s.XXXXXX", base, name) < 0)
        return NULL;
    if (!mkdtemp(path)) {
        free(path);
        return NULL;
    }
    return path;
}

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void fz_rmtree(const char *dir)
{
    if (dir && *dir)
        nftw(dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---------------------------------------------------------------------------------------
 * The fake peer
 */
struct fz_peer {
    pthread_t thr;
    pthread_mutex_t mu;
    int stop_pipe[2];
    void *ctx, *broker, *control;
    char broker_ep[600], control_ep[600];
    int rewrite_control;
    const fz_msg_t *script; /* under mu */
    size_t nscript, next;
    unsigned long requests;
};

/* Set every "control" member of v (recursively) to ep. */
static void s_rewrite(cJSON *v, const char *ep)
{
    for (cJSON *c = v ? v->child : NULL; c; c = c->next) {
        if (c->string && !strcmp(c->string, "control") && cJSON_IsString(c))
            cJSON_SetValuestring(c, ep);
        else
            s_rewrite(c, ep);
    }
}

/* The frame to send for a scripted one: "$REQ" replaced, then (rewrite_control) the
 * "control" members rewritten when the result is JSON. Caller frees *out. */
static void s_prepare(const fz_peer_t *p, const unsigned char *f, size_t len, const char *req,
                      char **out, size_t *outlen)
{
    size_t rl = strlen(req), cap = len + 1, n = 0;
    for (size_t i = 0; i + 4 <= len; i++)
        if (!memcmp(f + i, "$REQ", 4))
            cap += rl;
    char *o = malloc(cap);
    if (!o)
        abort();
    for (size_t i = 0; i < len;) {
        if (i + 4 <= len && !memcmp(f + i, "$REQ", 4)) {
            memcpy(o + n, req, rl);
            n += rl;
            i += 4;
        } else {
            o[n++] = (char)f[i++];
        }
    }
    if (p->rewrite_control && n) {
        const char *end = NULL;
        cJSON *v = cJSON_ParseWithLengthOpts(o, n, &end, 0);
        char *json = NULL;
        while (end && end < o + n && (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
            end++;
        if (v && end == o + n && (cJSON_IsObject(v) || cJSON_IsArray(v))) {
            s_rewrite(v, p->control_ep);
            json = cJSON_PrintUnformatted(v);
        }
        cJSON_Delete(v);
        if (json) {
            free(o);
            o = json;
            n = strlen(json);
        }
    }
    *out = o;
    *outlen = n;
}

static void s_answer(fz_peer_t *p, void *sock)
{
    zq_msg_t m;
    char err[256];
    int rc = zq_msg_recv(sock, 1, &m, ZMQ_DONTWAIT, err, sizeof err);
    if (rc != ZQ_OK) {
        zq_msg_clear(&m);
        return;
    }
    char req[32] = "0";
    const cJSON *rv = cJSON_GetObjectItemCaseSensitive(m.body, "req");
    if (cJSON_IsNumber(rv) && rv->valuedouble >= 0 && rv->valuedouble < 1e15)
        snprintf(req, sizeof req, "%" PRIu64, (uint64_t)rv->valuedouble);
    /* INFO comes from the monitor's events thread at its own pace: never scripted */
    const fz_msg_t *s = NULL;
    pthread_mutex_lock(&p->mu);
    p->requests++;
    if (strcmp(m.cmd, ZQ_CMD_INFO) && p->next < p->nscript)
        s = &p->script[p->next++];
    for (size_t i = 0; s && i < s->n; i++) {
        char *f;
        size_t len;
        s_prepare(p, s->frame[i], s->size[i], req, &f, &len);
        if (i == 0)
            zmq_send(sock, m.identity, m.identity_len, ZMQ_SNDMORE);
        zmq_send(sock, f, len, i + 1 < s->n ? ZMQ_SNDMORE : 0);
        free(f);
    }
    pthread_mutex_unlock(&p->mu);
    char body[256];
    if (!strcmp(m.cmd, ZQ_CMD_INFO))
        snprintf(body, sizeof body, "{\"req\":%s,\"broker_id\":\"fuzz\"}", req);
    else
        snprintf(body, sizeof body,
                 "{\"req\":%s,\"error\":{\"code\":\"EFUZZ\",\"message\":\"no scripted reply\"}}",
                 req);
    zq_msg_send_raw(sock, m.identity, m.identity_len, ZQ_CMD_REPLY, body, strlen(body), 0);
    zq_msg_clear(&m);
}

static void *s_peer_main(void *arg)
{
    fz_peer_t *p = arg;
    for (;;) {
        zmq_pollitem_t it[3] = {{p->broker, 0, ZMQ_POLLIN, 0},
                                {p->control, 0, ZMQ_POLLIN, 0},
                                {NULL, p->stop_pipe[0], ZMQ_POLLIN, 0}};
        if (zmq_poll(it, 3, -1) < 0)
            continue;
        if (it[2].revents & ZMQ_POLLIN)
            break;
        if (it[0].revents & ZMQ_POLLIN)
            s_answer(p, p->broker);
        if (it[1].revents & ZMQ_POLLIN)
            s_answer(p, p->control);
    }
    return NULL;
}

static void *s_bind(void *ctx, const char *ep)
{
    void *s = zmq_socket(ctx, ZMQ_ROUTER);
    if (!s)
        return NULL;
    zq_socket_defaults(s);
    if (zmq_bind(s, ep) != 0) {
        zmq_close(s);
        return NULL;
    }
    return s;
}

fz_peer_t *fz_peer_start(const char *dir, int rewrite_control)
{
    fz_peer_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    pthread_mutex_init(&p->mu, NULL);
    p->rewrite_control = rewrite_control;
    snprintf(p->broker_ep, sizeof p->broker_ep, "ipc://%s/broker", dir);
    snprintf(p->control_ep, sizeof p->control_ep, "ipc://%s/control", dir);
    if (pipe(p->stop_pipe) != 0 || !(p->ctx = zmq_ctx_new()) ||
        !(p->broker = s_bind(p->ctx, p->broker_ep)) ||
        !(p->control = s_bind(p->ctx, p->control_ep)) ||
        pthread_create(&p->thr, NULL, s_peer_main, p) != 0) {
        fprintf(stderr, "fuzz: cannot start the fake peer in %s\n", dir);
        abort();
    }
    return p;
}

const char *fz_peer_broker(const fz_peer_t *p)
{
    return p->broker_ep;
}

const char *fz_peer_control(const fz_peer_t *p)
{
    return p->control_ep;
}

void fz_peer_script(fz_peer_t *p, const fz_msg_t *msgs, size_t n)
{
    pthread_mutex_lock(&p->mu);
    p->script = msgs;
    p->nscript = msgs ? n : 0;
    p->next = 0;
    pthread_mutex_unlock(&p->mu);
}

unsigned long fz_peer_requests(fz_peer_t *p)
{
    pthread_mutex_lock(&p->mu);
    unsigned long n = p->requests;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void fz_peer_stop(fz_peer_t **pp)
{
    fz_peer_t *p = pp ? *pp : NULL;
    if (!p)
        return;
    if (write(p->stop_pipe[1], "x", 1) == 1)
        pthread_join(p->thr, NULL);
    zmq_close(p->broker);
    zmq_close(p->control);
    zmq_ctx_term(p->ctx);
    close(p->stop_pipe[0]);
    close(p->stop_pipe[1]);
    pthread_mutex_destroy(&p->mu);
    free(p);
    *pp = NULL;
}
