/*
 * fuzz_broker - see fuzz_broker.h. Making a broker costs milliseconds (an SQLite store with
 * its schema, a ZeroMQ context, three bound sockets) against microseconds for a message,
 * so one broker serves $ZQ_FUZZ_RESET inputs (default 200) before it is replaced by a
 * fresh one: inputs also meet the state earlier ones left, which is how a real broker
 * lives. tests/fuzz/replay.sh sets ZQ_FUZZ_RESET=1, so that each input is replayed on a
 * fresh broker; a crash that needs earlier inputs is reproduced by replaying them together
 * (tests/fuzz/README.md).
 */
#include "config.h"
#include "fuzz_broker.h"
#include "fuzz.h"
#include "zq.h"
#include "zq_broker.h"
#include "zq_broker_int.h"
#include "zq_proto.h"
#include "zq_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

static char *s_tmp;

static void s_cleanup(void)
{
    fz_rmtree(s_tmp);
    free(s_tmp);
    s_tmp = NULL;
}

/* Feed [identity][ZQP01][cmd][json] to the frontend. */
static void s_front(zq_broker_t *b, const char *identity, const char *cmd, const char *json)
{
    const void *f[4] = {identity, "ZQP01", cmd, json};
    size_t n[4] = {strlen(identity), 5, strlen(cmd), strlen(json)};
    zq_broker_feed(b, 0, f, n, 4);
}

static zq_broker_t *s_b;
static long s_uses, s_reset_every;
/* A client (DEALER, routing id "fz"), an event subscriber (SUB, every topic) and worker
 * w1@fuzz's dispatch channel (PULL): what the broker sends them must be well formed. */
static void *s_ctx, *s_dealer, *s_sub, *s_pull;

static void s_fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz: %s: %s\n", what, detail);
    abort();
}

/* One whole message off sock: its first 4 frames in f (the rest dropped); how many. */
static size_t s_recv_parts(void *sock, const char *what, zmq_msg_t f[4])
{
    size_t n = 0;
    for (int more = 1; more;) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, sock, 0) < 0)
            s_fail(what, zmq_strerror(zmq_errno()));
        more = zmq_msg_more(&part);
        if (n < 4)
            f[n++] = part;
        else
            zmq_msg_close(&part);
    }
    return n;
}

/* One event off the SUB: [topic][ZQP01][body], body a JSON object whose "type" is the
 * topic (docs/protocol.md §11). */
static void s_event(void *sub)
{
    zmq_msg_t f[4];
    size_t n = s_recv_parts(sub, "event", f);
    if (n != 3 || zmq_msg_size(&f[1]) != 5 || memcmp(zmq_msg_data(&f[1]), "ZQP01", 5))
        s_fail("event", "not [topic][ZQP01][body]");
    cJSON *body = cJSON_ParseWithLength(zmq_msg_data(&f[2]), zmq_msg_size(&f[2]));
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(body, "type"));
    if (!cJSON_IsObject(body) || !type || strlen(type) != zmq_msg_size(&f[0]) ||
        memcmp(type, zmq_msg_data(&f[0]), zmq_msg_size(&f[0])))
        s_fail("event body", cJSON_IsObject(body) ? "type is not the topic" : "not JSON");
    cJSON_Delete(body);
    for (size_t i = 0; i < n; i++)
        zmq_msg_close(&f[i]);
}

/* A task as TASK carries it: an object with an id and "redelivered". */
static void s_task_ok(const char *what, const cJSON *t)
{
    const cJSON *id = cJSON_GetObjectItem(t, "id");
    if (!cJSON_IsString(id) || !cJSON_IsBool(cJSON_GetObjectItem(t, "redelivered")))
        s_fail(what, "without an id or redelivered");
}

/* One message on the dispatch channel: [ZQP01][TASK|TASKS|REVOKED|ACK][body]
 * (docs/protocol.md §8): a TASK carrying a task id and "redelivered", a TASKS an array of
 * at least two such tasks. */
static void s_dispatched(void *pull)
{
    zmq_msg_t f[4];
    size_t n = s_recv_parts(pull, "dispatch channel", f);
    if (n == 3 && zmq_msg_size(&f[1]) == 5 && !memcmp(zmq_msg_data(&f[1]), "TASKS", 5)) {
        if (zmq_msg_size(&f[0]) != 5 || memcmp(zmq_msg_data(&f[0]), "ZQP01", 5))
            s_fail("TASKS", "not [ZQP01][TASKS][body]");
        cJSON *body = cJSON_ParseWithLength(zmq_msg_data(&f[2]), zmq_msg_size(&f[2]));
        if (!cJSON_IsArray(body) || cJSON_GetArraySize(body) < 2)
            s_fail("TASKS", "body is not an array of several tasks");
        const cJSON *t;
        cJSON_ArrayForEach(t, body) s_task_ok("TASKS", t);
        cJSON_Delete(body);
        for (size_t i = 0; i < n; i++)
            zmq_msg_close(&f[i]);
        return;
    }
    const void *fr[4];
    size_t sz[4];
    for (size_t i = 0; i < n; i++) {
        fr[i] = zmq_msg_data(&f[i]);
        sz[i] = zmq_msg_size(&f[i]);
    }
    zq_msg_t m;
    char err[256];
    if (zq_msg_decode(fr, sz, n, 0, &m, err, sizeof err) != ZQ_OK)
        s_fail("malformed dispatch message", err);
    for (size_t i = 0; i < n; i++)
        zmq_msg_close(&f[i]);
    if (!strcmp(m.cmd, "TASK")) {
        s_task_ok("TASK", m.body);
    } else if (!strcmp(m.cmd, "ACK")) {
        if (!cJSON_IsArray(cJSON_GetObjectItem(m.body, "seqs")))
            s_fail("ACK", "without seqs");
    } else if (strcmp(m.cmd, "REVOKED") || !cJSON_IsArray(cJSON_GetObjectItem(m.body, "ids"))) {
        s_fail("dispatch channel", m.cmd);
    }
    zq_msg_clear(&m);
}

/* One REPLY body inside a REPLIES: a JSON object with a "req", the element's when it is a
 * whole number (another req is rounded in the element's header). */
static void s_element(const char *req, size_t reqlen, const char *body, size_t len)
{
    cJSON *b = cJSON_ParseWithLength(body, len);
    char want[32];
    snprintf(want, sizeof want, "%.*s", (int)(reqlen < 31 ? reqlen : 31), req);
    double r = zq_json_num(b, "req", -1);
    if (!cJSON_IsObject(b) || !cJSON_IsNumber(cJSON_GetObjectItem(b, "req")) ||
        (r >= 0 && r < 1e15 && r == (double)(long long)r && r != atof(want)))
        s_fail("REPLIES", "an element that is not a REPLY body with its req");
    cJSON_Delete(b);
}

/* A REPLIES (docs/protocol.md §7): frame pairs, or one frame of "req len\n" + body. */
static void s_replies(zmq_msg_t *fr, size_t n)
{
    if (zmq_msg_size(&fr[0]) != 5 || memcmp(zmq_msg_data(&fr[0]), "ZQP01", 5))
        s_fail("REPLIES", "not ZQP01");
    if (n == 3) {
        const char *p = zmq_msg_data(&fr[2]), *end = p + zmq_msg_size(&fr[2]);
        if (p == end)
            s_fail("REPLIES", "a packed REPLIES without an element");
        while (p < end) {
            const char *sp = memchr(p, ' ', (size_t)(end - p));
            const char *nl = sp ? memchr(sp, '\n', (size_t)(end - sp)) : NULL;
            size_t len = nl ? strtoul(sp + 1, NULL, 10) : 0;
            if (!nl || sp == p || len > (size_t)(end - nl - 1))
                s_fail("REPLIES", "a packed element whose header does not parse");
            s_element(p, (size_t)(sp - p), nl + 1, len);
            p = nl + 1 + len;
        }
        return;
    }
    if (n < 6 || n % 2)
        s_fail("REPLIES", "not [ZQP01][REPLIES] and frame pairs");
    for (size_t i = 2; i + 1 < n; i += 2)
        s_element(zmq_msg_data(&fr[i]), zmq_msg_size(&fr[i]), zmq_msg_data(&fr[i + 1]),
                  zmq_msg_size(&fr[i + 1]));
}

/* Read what waits on sock within ms: REPLYs with a JSON object body on the DEALER, events
 * on the SUB, TASK / REVOKED / ACK on the PULL. Returns how many came. */
static int s_drain(void *sock, int ms)
{
    int n = 0;
    for (;;) {
        zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
        if (!sock || zmq_poll(&it, 1, n ? 0 : ms) <= 0)
            return n;
        n++;
        if (sock == s_sub) {
            s_event(sock);
            continue;
        }
        if (sock == s_pull) {
            s_dispatched(sock);
            continue;
        }
        /* every frame: a REPLIES of frame pairs has two per answer */
        size_t nf = 0, cap = 0;
        zmq_msg_t *fr = NULL;
        for (int more = 1; more;) {
            if (nf == cap) {
                cap = cap ? 2 * cap : 16;
                if (!(fr = realloc(fr, cap * sizeof *fr)))
                    abort();
            }
            zmq_msg_init(&fr[nf]);
            if (zmq_msg_recv(&fr[nf], sock, nf ? 0 : ZMQ_DONTWAIT) < 0)
                s_fail("frontend", zmq_strerror(zmq_errno()));
            more = zmq_msg_more(&fr[nf++]);
        }
        const void *data[3] = {NULL, NULL, NULL};
        size_t size[3] = {0, 0, 0};
        for (size_t i = 0; i < nf && i < 3; i++) {
            data[i] = zmq_msg_data(&fr[i]);
            size[i] = zmq_msg_size(&fr[i]);
        }
        if (nf >= 3 && size[1] == 7 && !memcmp(data[1], "REPLIES", 7)) {
            s_replies(fr, nf);
        } else {
            zq_msg_t m;
            char err[256];
            if (zq_msg_decode(data, size, nf, 0, &m, err, sizeof err) != ZQ_OK)
                s_fail("malformed REPLY", err);
            if (strcmp(m.cmd, "REPLY"))
                s_fail("the frontend sent", m.cmd);
            zq_msg_clear(&m);
        }
        for (size_t i = 0; i < nf; i++)
            zmq_msg_close(&fr[i]);
        free(fr);
    }
}

/* Feed `identity cmd json` until something arrives on sock (connections are made
 * asynchronously). */
static void s_until(zq_broker_t *b, void *sock, const char *cmd, const char *json)
{
    for (int i = 0; i < 400; i++) {
        s_front(b, "fz", cmd, json);
        if (s_drain(sock, 5) > 0)
            return;
    }
    s_fail("set-up", sock == s_sub   ? "no event reached the subscriber"
                     : sock == s_pull ? "no TASK reached the worker"
                                      : "no REPLY reached the client");
}

/* What every input starts from: queued, scheduled and held tasks, one live worker, a
 * connected client, event subscriber and dispatch channel. */
static void s_setup(zq_broker_t *b)
{
    if (!s_ctx && !(s_ctx = zmq_ctx_new()))
        s_fail("set-up", "zmq_ctx_new");
    s_dealer = zmq_socket(s_ctx, ZMQ_DEALER);
    s_sub = zmq_socket(s_ctx, ZMQ_SUB);
    s_pull = zmq_socket(s_ctx, ZMQ_PULL);
    if (!s_dealer || !s_sub || !s_pull)
        s_fail("set-up", "zmq_socket");
    zq_socket_defaults(s_dealer);
    zq_socket_defaults(s_sub);
    zq_socket_defaults(s_pull);
    zmq_setsockopt(s_dealer, ZMQ_ROUTING_ID, "fz", 2);
    zmq_setsockopt(s_sub, ZMQ_SUBSCRIBE, "", 0);
    if (zmq_connect(s_dealer, zq_broker_frontend(b)) || zmq_connect(s_sub, zq_broker_events(b)))
        s_fail("set-up", "zmq_connect");
    s_until(b, s_dealer, "INFO", "{}");
    s_front(b, "fz", "SUBMIT", "{\"req\":1,\"id\":\"t1\",\"task\":\"tasks.add\",\"args\":[2,2]}");
    s_front(b, "fz", "SUBMIT",
            "{\"req\":2,\"id\":\"t2\",\"task\":\"tasks.add\",\"args\":[1,1],\"countdown\":60}");
    s_front(b, "fz", "SUBMIT",
            "{\"req\":3,\"id\":\"t3\",\"task\":\"tasks.mul\",\"queue\":\"q2\",\"expires\":3600}");
    s_front(b, "fz", "SUBMIT", "{\"req\":4,\"id\":\"t4\",\"task\":\"tasks.add\"}");
    s_front(b, "fz", "SUBMIT", "{\"req\":5,\"id\":\"t5\",\"task\":\"tasks.add\",\"queue\":\"q3\"}");
    s_front(b, "fz", "GET", "{\"req\":6,\"id\":\"t5\",\"timeout\":null}");
    s_drain(s_dealer, 0);
    s_front(b, "fz", "HELLO",
            "{\"req\":7,\"name\":\"w1@fuzz\",\"hostname\":\"fuzz\",\"pid\":4242,"
            "\"queues\":[\"celery\",\"q2\"],\"concurrency\":2,\"prefetch\":1,"
            "\"pool\":\"prefork\",\"control\":\"\",\"tasks\":[\"tasks.add\",\"tasks.mul\"],"
            "\"sw_ver\":\"0.1.0\",\"batch_tasks\":true,\"holding\":[\"t1\",\"t3\"]}");
    /* its dispatch channel, from the HELLO reply (after late INFO / SUBMIT replies): t4 is
     * handed out on it */
    for (int connected = 0; !connected;) {
        zmq_pollitem_t it = {s_dealer, 0, ZMQ_POLLIN, 0};
        zq_msg_t m;
        char err[256];
        if (zmq_poll(&it, 1, 2000) != 1 ||
            zq_msg_recv(s_dealer, 0, &m, ZMQ_DONTWAIT, err, sizeof err) != ZQ_OK)
            s_fail("set-up", "no HELLO reply");
        const cJSON *ep = cJSON_GetObjectItem(m.body, "dispatch");
        if (cJSON_IsString(ep)) {
            if (zmq_connect(s_pull, ep->valuestring))
                s_fail("set-up", "cannot connect to the dispatch channel");
            connected = 1;
        }
        zq_msg_clear(&m);
    }
    s_until(b, s_pull, "HEARTBEAT", "{\"name\":\"w1@fuzz\",\"active\":1,\"processed\":0}");
    s_until(b, s_sub, "HEARTBEAT", "{\"name\":\"w1@fuzz\",\"active\":1,\"processed\":0}");
    s_drain(s_dealer, 0);
}

static void s_close_broker(void)
{
    zmq_close(s_dealer);
    zmq_close(s_sub);
    zmq_close(s_pull);
    s_dealer = s_sub = s_pull = NULL;
    zq_broker_destroy(&s_b);
}

static void s_close(void)
{
    s_close_broker();
    if (s_ctx)
        zmq_ctx_term(s_ctx);
    s_cleanup();
}

void fz_broker_one(const uint8_t *data, size_t size, int upstream)
{
    if (!s_tmp) {
        fz_quiet();
        if (!(s_tmp = fz_tmpdir(upstream ? "upstream" : "frontend")))
            abort();
        const char *e = getenv("ZQ_FUZZ_RESET");
        s_reset_every = e && atol(e) > 0 ? atol(e) : 200;
        atexit(s_close);
    }
    if (s_b && s_uses >= s_reset_every)
        s_close_broker();
    if (!s_b) {
        char fe[600], dd[600];
        snprintf(fe, sizeof fe, "ipc://%s/fe", s_tmp);
        snprintf(dd, sizeof dd, "%s/data", s_tmp);
        fz_rmtree(dd);
        zq_broker_config_t cfg;
        zq_broker_config_init(&cfg);
        cfg.frontend = fe;
        cfg.data_dir = dd;
        cfg.sync = ZQ_STORE_SYNC_OFF;
        int err;
        if (!(s_b = zq_broker_new(&cfg, &err))) {
            /* seen once in a 4-minute run on a loaded machine (EIO), not reproduced: try
             * again, saying why, before calling it a crash */
            fz_loud();
            fprintf(stderr, "fuzz: zq_broker_new: %d; once more, with the log\n", err);
            if (!(s_b = zq_broker_new(&cfg, &err))) {
                fprintf(stderr, "fuzz: zq_broker_new: %d\n", err);
                abort();
            }
            fz_quiet();
        }
        s_setup(s_b);
        s_uses = 0;
    }
    s_uses++;
    fz_msg_t msgs[FZ_MAX_MSGS];
    size_t n = fz_split(data, size, msgs, FZ_MAX_MSGS);
    for (size_t i = 0; i < n; i++) {
        zq_broker_feed(s_b, upstream, (const void *const *)msgs[i].frame, msgs[i].size,
                       msgs[i].n);
        s_drain(s_dealer, 0);
        s_drain(s_sub, 0);
        s_drain(s_pull, 0);
    }
    fz_free(msgs, n);
}
