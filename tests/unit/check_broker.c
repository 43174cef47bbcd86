/*
 * check_broker - the broker loop (broker/zq_broker.h) run in a thread on ipc:// endpoints
 * in a temporary directory, driven with raw DEALER / PULL / PUSH sockets speaking ZQP/1
 * (docs/protocol.md). Fake workers are a DEALER (HELLO, HEARTBEAT) + a PULL on their
 * dispatch channel + a PUSH upstream. Waits are bounded receives, never sleeps.
 */
#include "config.h"
#include "zq.h"
#include "zq_broker.h"
#include "zq_broker_int.h"
#include "zq_log.h"
#include "zq_proto.h"
#include "zq_time.h"
#include "zq_util.h"

#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#define WAIT_MS 5000 /* a reply that must come */
#define QUIET_MS 300 /* a message that must not come */

static char s_tmp[128], s_fe[192], s_data[192];
static zq_broker_t *s_b;
static pthread_t s_thr;
static void *s_ctx;
static void *s_cli; /* a client DEALER */

static void *s_run(void *arg)
{
    ck_assert_int_eq(zq_broker_run(arg), ZQ_OK);
    return NULL;
}

static double s_ack_hold = -1; /* >= 0: the next broker's ack_hold */

static void s_start_with(double heartbeat, long max_ready, double lookahead)
{
    zq_broker_config_t cfg;
    zq_broker_config_init(&cfg);
    if (s_ack_hold >= 0)
        cfg.ack_hold = s_ack_hold;
    cfg.frontend = s_fe;
    cfg.data_dir = s_data;
    cfg.sync = ZQ_STORE_SYNC_OFF;
    cfg.heartbeat = heartbeat;
    cfg.max_ready_in_memory = max_ready;
    cfg.lookahead = lookahead;
    int err = -1;
    s_b = zq_broker_new(&cfg, &err);
    ck_assert_msg(s_b != NULL, "zq_broker_new: %d", err);
    ck_assert_int_eq(err, ZQ_OK);
    ck_assert_int_eq(pthread_create(&s_thr, NULL, s_run, s_b), 0);
}

static void s_stop(void)
{
    zq_broker_stop(s_b);
    ck_assert_int_eq(pthread_join(s_thr, NULL), 0);
    zq_broker_destroy(&s_b);
    ck_assert_ptr_null(s_b);
}

static void *s_sock(int type, const char *ep)
{
    void *s = zmq_socket(s_ctx, type);
    ck_assert_ptr_nonnull(s);
    zq_socket_defaults(s);
    ck_assert_int_eq(zmq_connect(s, ep), 0);
    return s;
}

static void setup_with(double heartbeat, long max_ready, double lookahead)
{
    zq_log_set_level(getenv("ZQ_TEST_DEBUG") ? ZQ_LOG_DEBUG : ZQ_LOG_ERROR);
    snprintf(s_tmp, sizeof s_tmp, "/tmp/check_broker.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(s_tmp));
    snprintf(s_fe, sizeof s_fe, "ipc://%s/fe", s_tmp);
    snprintf(s_data, sizeof s_data, "%s/data", s_tmp);
    s_ctx = zmq_ctx_new();
    s_start_with(heartbeat, max_ready, lookahead);
    s_cli = s_sock(ZMQ_DEALER, s_fe);
}

static void setup(void)
{
    setup_with(2.0, 20000, 1.0);
}

static void setup_fast_heartbeat(void)
{
    setup_with(0.5, 20000, 1.0);
}

static void setup_small_memory(void)
{
    setup_with(2.0, 3, 1.0);
}

static void setup_long_ack_hold(void)
{
    s_ack_hold = 30;
    setup_with(2.0, 20000, 1.0);
    s_ack_hold = -1;
}

static void teardown(void)
{
    zmq_close(s_cli);
    if (s_b)
        s_stop();
    zmq_ctx_term(s_ctx);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_tmp);
    ck_assert_int_eq(system(cmd), 0);
}

/* ---- messaging helpers ---- */

static void s_send(void *sock, const char *cmd, const char *json)
{
    ck_assert_int_eq(zq_msg_send_raw(sock, NULL, 0, cmd, json, strlen(json), 0), ZQ_OK);
}

/* One message within ms, or NULL. *cmd (may be NULL) gets its command. Caller owns it. */
static cJSON *s_recv(void *sock, int ms, char *cmd)
{
    zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, ms) <= 0)
        return NULL;
    zq_msg_t m;
    char err[256];
    int rc = zq_msg_recv(sock, 0, &m, 0, err, sizeof err);
    ck_assert_msg(rc == ZQ_OK, "recv: %s", err);
    if (cmd)
        strcpy(cmd, m.cmd);
    cJSON *body = m.body;
    m.body = NULL;
    zq_msg_clear(&m);
    return body;
}

/* Send a request and return its REPLY body. */
static cJSON *s_call(void *sock, const char *cmd, const char *json)
{
    s_send(sock, cmd, json);
    char got[32];
    cJSON *r = s_recv(sock, WAIT_MS, got);
    ck_assert_msg(r != NULL, "no reply to %s", cmd);
    ck_assert_str_eq(got, "REPLY");
    return r;
}

static const char *s_errcode(const cJSON *r)
{
    return zq_json_str(cJSON_GetObjectItem(r, "error"), "code", NULL);
}

static const char *s_errmsg(const cJSON *r)
{
    return zq_json_str(cJSON_GetObjectItem(r, "error"), "message", "");
}

/* SUBMIT a task; returns its id (static buffer). */
static const char *s_submit(const char *json)
{
    static char id[128];
    cJSON *r = s_call(s_cli, "SUBMIT", json);
    ck_assert_msg(!s_errcode(r), "SUBMIT refused: %s", s_errmsg(r));
    snprintf(id, sizeof id, "%s", zq_json_str(r, "id", ""));
    cJSON_Delete(r);
    ck_assert(id[0]);
    return id;
}

static cJSON *s_query(const char *id)
{
    char json[256];
    snprintf(json, sizeof json, "{\"id\":\"%s\"}", id);
    return s_call(s_cli, "QUERY", json);
}

/* Wait until id is in state (upstream STATEs and frontend requests travel on different
 * sockets: a QUERY may overtake a STATE sent just before it). */
static void s_assert_state(const char *id, const char *state)
{
    double until = zq_mono() + WAIT_MS / 1000.0;
    char got[32] = "";
    while (zq_mono() < until) {
        cJSON *r = s_query(id);
        snprintf(got, sizeof got, "%s", zq_json_str(r, "state", "?"));
        cJSON_Delete(r);
        if (!strcmp(got, state))
            return;
        usleep(5000);
    }
    ck_abort_msg("%s: state %s, want %s", id, got, state);
}

/* ---- a fake worker ---- */

typedef struct {
    void *fe, *pull, *push;
    char name[64];
} fw_t;

/* HELLO with concurrency/prefetch (extra: more JSON members or ""); connects the channels.
 * Returns the HELLO reply (caller deletes). */
static cJSON *fw_hello(fw_t *w, const char *name, int conc, int prefetch, const char *extra)
{
    memset(w, 0, sizeof *w);
    snprintf(w->name, sizeof w->name, "%s", name);
    w->fe = s_sock(ZMQ_DEALER, s_fe);
    char json[1024];
    snprintf(json, sizeof json,
             "{\"req\":1,\"name\":\"%s\",\"hostname\":\"testhost\",\"pid\":%d,%s"
             "\"concurrency\":%d,\"prefetch\":%d,\"pool\":\"solo\"%s%s}",
             name, 1000 + (int)strlen(name),
             strstr(extra, "\"queues\"") ? "" : "\"queues\":[\"celery\"],", conc, prefetch,
             extra[0] ? "," : "", extra);
    cJSON *r = s_call(w->fe, "HELLO", json);
    const char *dispatch = zq_json_str(r, "dispatch", NULL);
    if (dispatch) {
        w->pull = s_sock(ZMQ_PULL, dispatch);
        w->push = s_sock(ZMQ_PUSH, zq_json_str(r, "upstream", ""));
    }
    return r;
}

/* Wait until the broker sees w's dispatch channel connected (WORKERS "connected"). */
static void fw_wait_connected(const fw_t *w)
{
    double until = zq_mono() + WAIT_MS / 1000.0;
    while (zq_mono() < until) {
        cJSON *r = s_call(s_cli, "WORKERS", "{}");
        const cJSON *e;
        int ok = 0;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(r, "workers"))
        {
            if (!strcmp(zq_json_str(e, "name", ""), w->name))
                ok = cJSON_IsTrue(cJSON_GetObjectItem(e, "connected"));
        }
        cJSON_Delete(r);
        if (ok)
            return;
        usleep(5000);
    }
    ck_abort_msg("worker %s never connected its dispatch channel", w->name);
}

static void fw_close(fw_t *w)
{
    if (w->fe)
        zmq_close(w->fe);
    if (w->pull)
        zmq_close(w->pull);
    if (w->push)
        zmq_close(w->push);
    memset(w, 0, sizeof *w);
}

/* The next TASK within ms (NULL if none). Caller deletes it. */
static cJSON *fw_task(fw_t *w, int ms)
{
    char cmd[32];
    for (;;) {
        cJSON *t = s_recv(w->pull, ms, cmd);
        if (!t || !strcmp(cmd, "TASK"))
            return t;
        cJSON_Delete(t); /* REVOKED broadcasts are not tasks */
    }
}

/* STATE for id; extra: more JSON members or "". */
static void fw_state(fw_t *w, const char *id, const char *state, const char *extra)
{
    char json[1024], ts[40];
    snprintf(json, sizeof json,
             "{\"id\":\"%s\",\"state\":\"%s\",\"worker\":\"%s\",\"timestamp\":\"%s\"%s%s}", id,
             state, w->name, zq_time_iso(zq_now(), ts, sizeof ts), extra[0] ? "," : "", extra);
    s_send(w->push, "STATE", json);
}

/* Run a task to SUCCESS with result. */
static void fw_succeed(fw_t *w, const char *id, const char *result)
{
    char extra[256];
    fw_state(w, id, "RECEIVED", "");
    fw_state(w, id, "STARTED", "\"pid\":42");
    snprintf(extra, sizeof extra, "\"result\":%s,\"runtime\":0.001", result);
    fw_state(w, id, "SUCCESS", extra);
}

/* A reply for a GET or other request, waiting up to ms. */
static cJSON *s_reply(void *sock, int ms)
{
    char cmd[32];
    cJSON *r = s_recv(sock, ms, cmd);
    if (r)
        ck_assert_str_eq(cmd, "REPLY");
    return r;
}

/* ---- requests ---- */

START_TEST(test_submit_reply)
{
    cJSON *r = s_call(s_cli, "SUBMIT", "{\"req\":11,\"task\":\"tasks.add\",\"args\":[2,2]}");
    ck_assert_int_eq(zq_json_num(r, "req", 0), 11);
    const char *id = zq_json_str(r, "id", NULL);
    ck_assert_msg(id && strlen(id) == 36, "minted id: %s", id ? id : "(none)");
    cJSON *rec = s_query(id);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(rec, "known")));
    ck_assert_str_eq(zq_json_str(rec, "state", ""), "PENDING");
    ck_assert_str_eq(zq_json_str(rec, "queue", ""), "celery");
    ck_assert_str_eq(zq_json_str(rec, "root_id", ""), id);
    cJSON_Delete(rec);
    cJSON_Delete(r);
    /* a given id, and its idempotent resend */
    ck_assert_str_eq(s_submit("{\"id\":\"abc\",\"task\":\"tasks.add\",\"args\":[1,1]}"), "abc");
    ck_assert_str_eq(s_submit("{\"id\":\"abc\",\"task\":\"tasks.other\"}"), "abc");
    rec = s_query("abc");
    ck_assert_str_eq(zq_json_str(rec, "task", ""), "tasks.add");
    cJSON_Delete(rec);
    zq_broker_stats_t st;
    r = s_call(s_cli, "INFO", "{\"req\":3}");
    cJSON *stats = cJSON_GetObjectItem(r, "stats");
    ck_assert_int_eq(zq_json_num(stats, "submitted", -1), 2);
    ck_assert_int_eq(zq_json_num(stats, "duplicates", -1), 1);
    ck_assert_str_eq(zq_json_str(r, "frontend", ""), s_fe);
    ck_assert_int_eq(zq_json_num(r, "req", 0), 3);
    cJSON_Delete(r);
    (void)st;
}
END_TEST

START_TEST(test_unknown_and_query_many)
{
    cJSON *r = s_call(s_cli, "GET", "{\"id\":\"never-sent\",\"timeout\":null}");
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(r, "known")));
    ck_assert_str_eq(zq_json_str(r, "state", ""), "PENDING");
    cJSON_Delete(r);
    s_submit("{\"id\":\"q1\",\"task\":\"tasks.add\"}");
    r = s_call(s_cli, "QUERY", "{\"ids\":[\"q1\",\"q2\"]}");
    cJSON *recs = cJSON_GetObjectItem(r, "records");
    ck_assert_int_eq(cJSON_GetArraySize(recs), 2);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetArrayItem(recs, 0), "known")));
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(cJSON_GetArrayItem(recs, 1), "known")));
    cJSON_Delete(r);
}
END_TEST

/* Raw frames, for messages zq_msg_send cannot produce. */
static void s_send_frames(void *sock, int n, const char *const *frames)
{
    for (int i = 0; i < n; i++)
        ck_assert_int_ge(zmq_send(sock, frames[i], strlen(frames[i]), i + 1 < n ? ZMQ_SNDMORE : 0),
                         0);
}

static void s_expect_error(const char *code, const char *needle)
{
    cJSON *r = s_reply(s_cli, WAIT_MS);
    ck_assert_msg(r != NULL, "no error reply (want %s)", code);
    ck_assert_msg(s_errcode(r) && !strcmp(s_errcode(r), code), "got %s, want %s",
                  s_errcode(r) ? s_errcode(r) : "success", code);
    ck_assert_msg(strstr(s_errmsg(r), needle) != NULL, "'%s' does not say '%s'", s_errmsg(r),
                  needle);
    cJSON_Delete(r);
}

START_TEST(test_malformed)
{
    const char *v[] = {"ZQP99", "SUBMIT", "{}"};
    s_send_frames(s_cli, 3, v);
    s_expect_error("EVERSION", "version");
    const char *two[] = {"ZQP01", "SUBMIT"};
    s_send_frames(s_cli, 2, two);
    s_expect_error("EPROTO", "frames");
    const char *notjson[] = {"ZQP01", "SUBMIT", "{\"task\":"};
    s_send_frames(s_cli, 3, notjson);
    s_expect_error("EPROTO", "JSON");
    const char *arr[] = {"ZQP01", "SUBMIT", "[1,2]"};
    s_send_frames(s_cli, 3, arr);
    s_expect_error("EPROTO", "object");
    const char *lower[] = {"ZQP01", "submit", "{}"};
    s_send_frames(s_cli, 3, lower);
    s_expect_error("EPROTO", "command");
    s_send(s_cli, "FROB", "{\"req\":5}");
    s_expect_error("EUNKNOWNCMD", "FROB");
    s_send(s_cli, "STATE", "{\"id\":\"x\",\"state\":\"SUCCESS\"}"); /* upstream only */
    s_expect_error("EUNKNOWNCMD", "STATE");
    struct {
        const char *json, *field;
    } bad[] = {
        {"{\"id\":\"b1\"}", "task"},
        {"{\"id\":\"b1\",\"task\":\"has space\"}", "task"},
        {"{\"id\":\"b1\",\"task\":\"t.a\",\"args\":{}}", "args"},
        {"{\"id\":\"b1\",\"task\":\"t.a\",\"kwargs\":[]}", "kwargs"},
        {"{\"id\":\"b1\",\"task\":\"t.a\",\"eta\":\"tomorrow\"}", "eta"},
        {"{\"id\":\"b1\",\"task\":\"t.a\",\"expires\":true}", "expires"},
        {"{\"id\":\"b1\",\"task\":\"t.a\",\"countdown\":\"3\"}", "countdown"},
        {"{\"id\":\"b1\",\"task\":\"t.a\",\"queue\":\"\"}", "queue"},
        {"{\"id\":\"b1\",\"task\":\"t.a\",\"priority\":12}", "priority"},
        {"{\"id\":\"b1\",\"task\":\"t.a\",\"retries\":-1}", "retries"},
        {"{\"id\":7,\"task\":\"t.a\"}", "id"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s_send(s_cli, "SUBMIT", bad[i].json);
        s_expect_error("EINVAL", bad[i].field);
    }
    s_send(s_cli, "GET", "{\"id\":\"b1\",\"timeout\":-1}");
    s_expect_error("EINVAL", "timeout");
    s_send(s_cli, "REVOKE", "{\"ids\":\"b1\"}");
    s_expect_error("EINVAL", "ids");
    s_send(s_cli, "HELLO", "{\"name\":\"w1\",\"concurrency\":0}");
    s_expect_error("EINVAL", "concurrency");
    /* nothing of it changed anything */
    cJSON *r = s_query("b1");
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(r, "known")));
    cJSON_Delete(r);
    r = s_call(s_cli, "INFO", "{}");
    cJSON *stats = cJSON_GetObjectItem(r, "stats");
    ck_assert_int_eq(zq_json_num(stats, "submitted", -1), 0);
    ck_assert_int_eq(zq_json_num(stats, "bad_messages", -1), 7 + 11 + 3);
    cJSON_Delete(r);
    r = s_call(s_cli, "WORKERS", "{}");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "workers")), 0);
    cJSON_Delete(r);
}
END_TEST

START_TEST(test_bad_upstream_dropped)
{
    fw_t w;
    cJSON_Delete(fw_hello(&w, "up@h", 1, 0, ""));
    const char *junk[] = {"ZQP01", "STATE", "not json"};
    s_send_frames(w.push, 3, junk);
    s_send(w.push, "STATE", "{\"id\":\"nope\",\"state\":\"BOGUS\"}");
    s_send(w.push, "WHAT", "{}");
    s_send(w.push, "SUBMIT", "{\"task\":\"bad name\"}");
    /* upstream is never answered; the broker counts and goes on */
    s_submit("{\"id\":\"after\",\"task\":\"t.a\"}");
    cJSON *t = fw_task(&w, WAIT_MS);
    ck_assert_ptr_nonnull(t);
    ck_assert_str_eq(zq_json_str(t, "id", ""), "after");
    cJSON_Delete(t);
    /* upstream and frontend are separate sockets: wait for the count */
    double until = zq_mono() + WAIT_MS / 1000.0;
    int bad = -1;
    while (bad != 4 && zq_mono() < until) {
        cJSON *r = s_call(s_cli, "INFO", "{}");
        bad = (int)zq_json_num(cJSON_GetObjectItem(r, "stats"), "bad_messages", -1);
        cJSON_Delete(r);
        if (bad != 4)
            usleep(5000);
    }
    ck_assert_int_eq(bad, 4);
    fw_close(&w);
}
END_TEST

/* ---- workers, dispatch, results ---- */

START_TEST(test_get_parked_then_answered)
{
    s_submit("{\"id\":\"g1\",\"task\":\"tasks.add\",\"args\":[2,2]}");
    s_send(s_cli, "GET", "{\"id\":\"g1\",\"timeout\":null,\"req\":7}");
    cJSON *early = s_reply(s_cli, QUIET_MS);
    ck_assert_msg(early == NULL, "GET answered before the task ended");
    fw_t w;
    cJSON *hello = fw_hello(&w, "w1@h", 1, 0, "");
    ck_assert_ptr_nonnull(cJSON_GetObjectItem(hello, "dispatch"));
    ck_assert_int_eq(zq_json_num(hello, "heartbeat", 0), 2);
    ck_assert(cJSON_IsArray(cJSON_GetObjectItem(hello, "revoked")));
    cJSON_Delete(hello);
    cJSON *t = fw_task(&w, WAIT_MS);
    ck_assert_ptr_nonnull(t);
    ck_assert_str_eq(zq_json_str(t, "id", ""), "g1");
    ck_assert_str_eq(zq_json_str(t, "task", ""), "tasks.add");
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(t, "redelivered")));
    ck_assert(cJSON_IsString(cJSON_GetObjectItem(t, "sent")));
    ck_assert_ptr_null(cJSON_GetObjectItem(t, "req"));
    cJSON_Delete(t);
    fw_succeed(&w, "g1", "4");
    cJSON *r = s_reply(s_cli, WAIT_MS);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(zq_json_num(r, "req", 0), 7);
    ck_assert_str_eq(zq_json_str(r, "state", ""), "SUCCESS");
    ck_assert_int_eq(zq_json_num(r, "result", 0), 4);
    ck_assert_str_eq(zq_json_str(r, "worker", ""), "w1@h");
    ck_assert_ptr_null(cJSON_GetObjectItem(r, "timeout"));
    cJSON_Delete(r);
    /* a GET after the end is answered at once */
    r = s_call(s_cli, "GET", "{\"id\":\"g1\"}");
    ck_assert_str_eq(zq_json_str(r, "state", ""), "SUCCESS");
    cJSON_Delete(r);
    fw_close(&w);
}
END_TEST

static int s_packed; /* the last REPLIES s_recv_replies took was in the packed form */

/* One REPLY or REPLIES (either form) within ms as an array of bodies (each checked to carry
 * the req of its REPLIES element); NULL if nothing came. *cmd gets the command. Caller owns
 * it. */
static cJSON *s_recv_replies(void *sock, int ms, char *cmd)
{
    zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, ms) <= 0)
        return NULL;
    cJSON *out = cJSON_CreateArray();
    char *frames[64];
    size_t n = 0;
    for (int more = 1; more;) {
        zmq_msg_t f;
        zmq_msg_init(&f);
        ck_assert_int_ge(zmq_msg_recv(&f, sock, 0), 0);
        more = zmq_msg_more(&f);
        ck_assert_int_lt(n, 64);
        frames[n] = strndup(zmq_msg_data(&f), zmq_msg_size(&f));
        n++;
        zmq_msg_close(&f);
    }
    ck_assert_int_ge(n, 3);
    ck_assert_str_eq(frames[0], "ZQP01");
    strcpy(cmd, frames[1]);
    if (!strcmp(cmd, "REPLY")) {
        ck_assert_int_eq(n, 3);
        cJSON_AddItemToArray(out, cJSON_Parse(frames[2]));
    } else if (n == 3) {
        /* packed: "req len\n" + body, back to back */
        ck_assert_str_eq(cmd, "REPLIES");
        s_packed = 1;
        const char *p = frames[2], *end = p + strlen(p);
        while (p < end) {
            char *sp, *nl;
            long req = strtol(p, &sp, 10);
            ck_assert_msg(sp > p && *sp == ' ', "packed element header: %.20s", p);
            unsigned long len = strtoul(sp + 1, &nl, 10);
            ck_assert_msg(*nl == '\n' && len <= (size_t)(end - nl - 1), "packed length");
            char *body = strndup(nl + 1, len);
            cJSON *b = cJSON_Parse(body);
            free(body);
            ck_assert_ptr_nonnull(b);
            ck_assert_int_eq(zq_json_num(b, "req", -1), req);
            cJSON_AddItemToArray(out, b);
            p = nl + 1 + len;
        }
    } else {
        ck_assert_str_eq(cmd, "REPLIES");
        s_packed = 0;
        ck_assert_msg(n >= 6 && n % 2 == 0, "REPLIES with %zu frames", n);
        for (size_t i = 2; i + 1 < n; i += 2) {
            cJSON *b = cJSON_Parse(frames[i + 1]);
            ck_assert_ptr_nonnull(b);
            ck_assert_int_eq(zq_json_num(b, "req", -1), atof(frames[i]));
            cJSON_AddItemToArray(out, b);
        }
    }
    for (size_t i = 0; i < n; i++)
        free(frames[i]);
    return out;
}

/* Replies until n answers came (or WAIT_MS passed); caller owns the array. */
static cJSON *s_answers(int n)
{
    cJSON *all = cJSON_CreateArray();
    double until = zq_mono() + WAIT_MS / 1000.0;
    while (cJSON_GetArraySize(all) < n && zq_mono() < until) {
        char cmd[32];
        cJSON *got = s_recv_replies(s_cli, 100, cmd);
        if (!got)
            continue;
        cJSON *b;
        while ((b = cJSON_DetachItemFromArray(got, 0)))
            cJSON_AddItemToArray(all, b);
        cJSON_Delete(got);
    }
    ck_assert_int_eq(cJSON_GetArraySize(all), n);
    return all;
}

/* The answer with this req in answers (req 0: the one without a req), or NULL. */
static const cJSON *s_answer(const cJSON *answers, double req)
{
    const cJSON *a;
    cJSON_ArrayForEach(a, answers)
    {
        if (zq_json_num(a, "req", 0) == req)
            return a;
    }
    return NULL;
}

/* SUBMITS: each element is taken as the body of a SUBMIT and answered by its own req; an
 * element that is not a task is refused alone; a body that is not an array is refused
 * after the elements before the fault were taken. */
START_TEST(test_submits)
{
    s_send(s_cli, "SUBMITS",
           "[{\"req\":1,\"id\":\"s1\",\"task\":\"tasks.add\",\"args\":[1,1],\"coalesce\":2},"
           " 5 ,{\"req\":3,\"id\":\"s3\",\"task\":\"tasks.add\",\"coalesce\":true},"
           "{\"req\":4,\"id\":\"s4\",\"task\":\"bad name\"},"
           "{\"req\":6,\"id\":\"s6\",\"task\":\"tasks.add\",\"get\":7,\"coalesce\":2}]");
    cJSON *all = s_answers(5);
    ck_assert_str_eq(zq_json_str(s_answer(all, 1), "id", ""), "s1");
    ck_assert_str_eq(zq_json_str(s_answer(all, 3), "id", ""), "s3");
    ck_assert_str_eq(zq_json_str(s_answer(all, 6), "id", ""), "s6");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(s_answer(all, 6), "get")));
    ck_assert_str_eq(s_errcode(s_answer(all, 4)), "EINVAL");
    ck_assert_str_eq(s_errcode(s_answer(all, 0)), "EPROTO");
    cJSON_Delete(all);
    s_assert_state("s1", "PENDING");
    s_assert_state("s3", "PENDING");
    s_assert_state("s6", "PENDING");
    cJSON *r = s_query("s4");
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(r, "known")));
    cJSON_Delete(r);

    /* not an array; then an array cut short: its first element is taken */
    s_send(s_cli, "SUBMITS", "{\"req\":9,\"task\":\"tasks.add\"}");
    s_expect_error("EPROTO", "SUBMITS");
    s_send(s_cli, "SUBMITS", "[{\"req\":10,\"id\":\"s10\",\"task\":\"tasks.add\"}, {\"req\":11,");
    all = s_answers(2);
    ck_assert_str_eq(zq_json_str(s_answer(all, 10), "id", ""), "s10");
    ck_assert_str_eq(s_errcode(s_answer(all, 0)), "EPROTO");
    cJSON_Delete(all);
    s_assert_state("s10", "PENDING");

    r = s_call(s_cli, "INFO", "{}");
    cJSON *stats = cJSON_GetObjectItem(r, "stats");
    ck_assert_int_eq(zq_json_num(stats, "submitted", -1), 4);
    ck_assert_int_eq(zq_json_num(stats, "bad_messages", -1), 4);
    cJSON_Delete(r);
}
END_TEST

/* SUBMIT "get": the record comes by itself when the task ends (no GET); "coalesce": the
 * replies of one flush travel in one REPLIES; a duplicate of an ended task is answered at
 * once; a bad "get" is refused and stores nothing. */
START_TEST(test_submit_get_pushes_record)
{
    s_send(s_cli, "SUBMIT", "{\"id\":\"p1\",\"task\":\"tasks.add\",\"args\":[2,2],\"req\":1,"
                           "\"get\":2,\"coalesce\":true}");
    s_send(s_cli, "SUBMIT", "{\"id\":\"p2\",\"task\":\"tasks.add\",\"args\":[3,3],\"req\":3,"
                           "\"get\":4,\"coalesce\":true}");
    /* both acknowledgements: one REPLIES (same flush) or two REPLYs (two turns) */
    int acks = 0, coalesced = 0;
    while (acks < 2) {
        char cmd[32];
        cJSON *r = s_recv_replies(s_cli, WAIT_MS, cmd);
        ck_assert_msg(r != NULL, "acknowledgements missing");
        coalesced |= !strcmp(cmd, "REPLIES");
        for (cJSON *it = r->child; it; it = it->next) {
            ck_assert_msg(!s_errcode(it), "refused: %s", s_errmsg(it));
            ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(it, "get")));
            int req = (int)zq_json_num(it, "req", 0);
            ck_assert(req == 1 || req == 3);
            acks++;
        }
        cJSON_Delete(r);
    }
    (void)coalesced; /* one REPLIES when both SUBMITs fell in one turn; not guaranteed */
    /* the stored task has no request-only fields */
    fw_t w;
    cJSON_Delete(fw_hello(&w, "w1@h", 2, 0, ""));
    for (int i = 0; i < 2; i++) {
        cJSON *t = fw_task(&w, WAIT_MS);
        ck_assert_ptr_nonnull(t);
        ck_assert_ptr_null(cJSON_GetObjectItem(t, "get"));
        ck_assert_ptr_null(cJSON_GetObjectItem(t, "coalesce"));
        ck_assert_ptr_null(cJSON_GetObjectItem(t, "req"));
        cJSON_Delete(t);
    }
    cJSON *none = s_reply(s_cli, QUIET_MS);
    ck_assert_msg(none == NULL, "a record came before its task ended");
    fw_succeed(&w, "p1", "4");
    cJSON *r = s_reply(s_cli, WAIT_MS);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(zq_json_num(r, "req", 0), 2);
    ck_assert_str_eq(zq_json_str(r, "id", ""), "p1");
    ck_assert_str_eq(zq_json_str(r, "state", ""), "SUCCESS");
    ck_assert_int_eq(zq_json_num(r, "result", 0), 4);
    cJSON_Delete(r);
    /* a duplicate SUBMIT of the ended task: acknowledged, record pushed at once */
    s_send(s_cli, "SUBMIT", "{\"id\":\"p1\",\"task\":\"tasks.add\",\"args\":[2,2],\"req\":5,"
                           "\"get\":6}");
    int got_ack = 0, got_rec = 0;
    while (!(got_ack && got_rec)) {
        cJSON *m = s_reply(s_cli, WAIT_MS);
        ck_assert_msg(m != NULL, "duplicate: ack %d record %d", got_ack, got_rec);
        if (zq_json_num(m, "req", 0) == 5) {
            ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(m, "get")));
            got_ack = 1;
        } else {
            ck_assert_int_eq(zq_json_num(m, "req", 0), 6);
            ck_assert_str_eq(zq_json_str(m, "state", ""), "SUCCESS");
            got_rec = 1;
        }
        cJSON_Delete(m);
    }
    /* a bad "get" is refused; the task is not stored */
    r = s_call(s_cli, "SUBMIT", "{\"id\":\"p3\",\"task\":\"tasks.add\",\"get\":\"x\"}");
    ck_assert_str_eq(s_errcode(r), "EINVAL");
    ck_assert_ptr_nonnull(strstr(s_errmsg(r), "get"));
    cJSON_Delete(r);
    r = s_query("p3");
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(r, "known")));
    cJSON_Delete(r);
    fw_close(&w);
}
END_TEST

/* A SUBMIT in the client library's form (read without a tree, broker/zq_submit.c) stores
 * and forwards the same task as the general path: the same members once as they are and once
 * with "redelivered", which only the general path takes (and drops from the message). */
START_TEST(test_fast_submit_same_task)
{
    static const char *const common =
        "\"task\":\"tasks.add\",\"args\":[1,{\"a\":\"b\\n\"},-2.5e-3],"
        "\"kwargs\":{\"x\":[true,null]},\"countdown\":0.5,\"expires\":600,\"priority\":3,"
        "\"ignore_result\":false,\"origin\":\"gen1@h\",\"parent_id\":\"par-1\","
        "\"group\":\"grp-1\",\"retries\":1";
    char body[1024];
    snprintf(body, sizeof body, "{\"req\":1,\"id\":\"fast-1\",%s}", common);
    cJSON *r = s_call(s_cli, "SUBMIT", body);
    ck_assert_str_eq(zq_json_str(r, "id", ""), "fast-1");
    ck_assert_int_eq(zq_json_num(r, "req", 0), 1);
    cJSON_Delete(r);
    snprintf(body, sizeof body, "{\"req\":2,\"id\":\"slow-1\",%s,\"redelivered\":false}", common);
    r = s_call(s_cli, "SUBMIT", body);
    ck_assert_str_eq(zq_json_str(r, "id", ""), "slow-1");
    cJSON_Delete(r);
    fw_t w;
    cJSON_Delete(fw_hello(&w, "w1@h", 2, 0, ""));
    cJSON *t[2] = {fw_task(&w, WAIT_MS), fw_task(&w, WAIT_MS)};
    ck_assert(t[0] && t[1]);
    if (!strcmp(zq_json_str(t[0], "id", ""), "slow-1")) {
        cJSON *x = t[0];
        t[0] = t[1];
        t[1] = x;
    }
    for (int i = 0; i < 2; i++) {
        ck_assert_str_eq(zq_json_str(t[i], "id", ""), i ? "slow-1" : "fast-1");
        ck_assert_str_eq(zq_json_str(t[i], "root_id", ""), i ? "slow-1" : "fast-1");
        double sent, eta, expires;
        ck_assert_int_eq(zq_time_parse(zq_json_str(t[i], "sent", ""), &sent), ZQ_OK);
        ck_assert_int_eq(zq_time_parse(zq_json_str(t[i], "eta", ""), &eta), ZQ_OK);
        ck_assert_int_eq(zq_time_parse(zq_json_str(t[i], "expires", ""), &expires), ZQ_OK);
        ck_assert_msg(fabs(eta - sent - 0.5) < 0.01, "eta - sent = %f", eta - sent);
        ck_assert_msg(fabs(expires - sent - 600) < 0.01, "expires - sent = %f", expires - sent);
        static const char *const varying[] = {"id", "root_id", "sent", "eta", "expires"};
        for (int k = 0; k < 5; k++)
            cJSON_DeleteItemFromObject(t[i], varying[k]);
    }
    char *a = cJSON_PrintUnformatted(t[0]), *b = cJSON_PrintUnformatted(t[1]);
    ck_assert_msg(cJSON_Compare(t[0], t[1], 1), "fast %s\nslow %s", a, b);
    ck_assert_ptr_null(cJSON_GetObjectItem(t[0], "req"));
    ck_assert_ptr_null(cJSON_GetObjectItem(t[0], "countdown"));
    free(a);
    free(b);
    cJSON_Delete(t[0]);
    cJSON_Delete(t[1]);
    fw_close(&w);
}
END_TEST

/* Held acknowledgements (docs/protocol.md §7): the answer to a SUBMIT that subscribed and
 * allows coalescing waits (here up to 30 s) and leaves in the same REPLIES as the record,
 * ahead of it; SUBMITs without "get" or without "coalesce" are answered at once. */
START_TEST(test_held_ack_travels_with_record)
{
    s_send(s_cli, "SUBMIT", "{\"id\":\"h1\",\"task\":\"tasks.add\",\"args\":[1,2],\"req\":1,"
                           "\"get\":2,\"coalesce\":true}");
    cJSON *none = s_reply(s_cli, QUIET_MS);
    ck_assert_msg(none == NULL, "the acknowledgement was not held");
    /* not held: no subscription, or no coalescing */
    cJSON *r = s_call(s_cli, "SUBMIT", "{\"id\":\"h2\",\"task\":\"tasks.add\",\"coalesce\":true}");
    ck_assert_str_eq(zq_json_str(r, "id", ""), "h2");
    cJSON_Delete(r);
    r = s_call(s_cli, "SUBMIT", "{\"id\":\"h3\",\"task\":\"tasks.add\",\"get\":99}");
    ck_assert_str_eq(zq_json_str(r, "id", ""), "h3");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "get")));
    cJSON_Delete(r);
    fw_t w;
    cJSON_Delete(fw_hello(&w, "w1@h", 3, 0, ""));
    for (int i = 0; i < 3; i++)
        cJSON_Delete(fw_task(&w, WAIT_MS));
    fw_succeed(&w, "h1", "3");
    char cmd[32];
    cJSON *v = s_recv_replies(s_cli, WAIT_MS, cmd);
    ck_assert_ptr_nonnull(v);
    ck_assert_str_eq(cmd, "REPLIES");
    ck_assert_msg(!s_packed, "\"coalesce\": true got the packed form");
    ck_assert_int_eq(cJSON_GetArraySize(v), 2);
    cJSON *ack = cJSON_GetArrayItem(v, 0), *rec = cJSON_GetArrayItem(v, 1);
    ck_assert_int_eq(zq_json_num(ack, "req", 0), 1);
    ck_assert_str_eq(zq_json_str(ack, "id", ""), "h1");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(ack, "get")));
    ck_assert_int_eq(zq_json_num(rec, "req", 0), 2);
    ck_assert_str_eq(zq_json_str(rec, "state", ""), "SUCCESS");
    ck_assert_int_eq(zq_json_num(rec, "result", 0), 3);
    cJSON_Delete(v);
    fw_close(&w);
}
END_TEST

/* Packed REPLIES (docs/protocol.md §7): "coalesce": 2 gets its acknowledgement and record
 * in one element frame; a REPLIES that also carries an answer allowed only frame pairs
 * ("coalesce": true) goes as frame pairs. */
START_TEST(test_packed_replies)
{
    s_send(s_cli, "SUBMIT", "{\"id\":\"k1\",\"task\":\"tasks.add\",\"args\":[1,2],\"req\":1,"
                           "\"get\":2,\"coalesce\":2}");
    cJSON *none = s_reply(s_cli, QUIET_MS);
    ck_assert_msg(none == NULL, "the acknowledgement was not held");
    fw_t w;
    cJSON_Delete(fw_hello(&w, "w1@h", 3, 0, ""));
    cJSON_Delete(fw_task(&w, WAIT_MS));
    fw_succeed(&w, "k1", "3");
    char cmd[32];
    cJSON *v = s_recv_replies(s_cli, WAIT_MS, cmd);
    ck_assert_ptr_nonnull(v);
    ck_assert_str_eq(cmd, "REPLIES");
    ck_assert_msg(s_packed, "\"coalesce\": 2 got frame pairs");
    ck_assert_int_eq(cJSON_GetArraySize(v), 2);
    ck_assert_int_eq(zq_json_num(cJSON_GetArrayItem(v, 0), "req", 0), 1);
    ck_assert_str_eq(zq_json_str(cJSON_GetArrayItem(v, 0), "id", ""), "k1");
    ck_assert_int_eq(zq_json_num(cJSON_GetArrayItem(v, 1), "req", 0), 2);
    ck_assert_int_eq(zq_json_num(cJSON_GetArrayItem(v, 1), "result", 0), 3);
    cJSON_Delete(v);

    /* two held acknowledgements, one allowing only frame pairs, leave together when the
     * broker stops */
    s_send(s_cli, "SUBMIT", "{\"id\":\"m1\",\"task\":\"tasks.add\",\"req\":3,\"get\":4,"
                           "\"coalesce\":2}");
    s_send(s_cli, "SUBMIT", "{\"id\":\"m2\",\"task\":\"tasks.add\",\"req\":5,\"get\":6,"
                           "\"coalesce\":true}");
    none = s_reply(s_cli, QUIET_MS);
    ck_assert_msg(none == NULL, "the acknowledgements were not held");
    s_stop();
    v = s_recv_replies(s_cli, WAIT_MS, cmd);
    ck_assert_ptr_nonnull(v);
    ck_assert_str_eq(cmd, "REPLIES");
    ck_assert_msg(!s_packed, "a REPLIES with a \"coalesce\": true answer was packed");
    ck_assert_int_eq(cJSON_GetArraySize(v), 2);
    ck_assert_int_eq(zq_json_num(cJSON_GetArrayItem(v, 0), "req", 0), 3);
    ck_assert_int_eq(zq_json_num(cJSON_GetArrayItem(v, 1), "req", 0), 5);
    cJSON_Delete(v);
    fw_close(&w);
}
END_TEST

/* A record composed from the final STATE and the task message the broker still holds (the
 * row is not read back) equals the record QUERY reads afterwards: success with folded
 * dates, failure with an exception, ignore_result with expires and a parent, a REVOKED
 * without dates. */
START_TEST(test_pushed_record_matches_query)
{
    static const char *const subs[4] = {
        "{\"id\":\"c1\",\"task\":\"tasks.add\",\"args\":[2,3],\"kwargs\":{\"k\":\"v\"},"
        "\"req\":1,\"get\":2}",
        "{\"id\":\"c2\",\"task\":\"tasks.div\",\"args\":[1,0],\"req\":3,\"get\":4}",
        "{\"id\":\"c3\",\"task\":\"tasks.add\",\"args\":[3,4],\"ignore_result\":true,"
        "\"expires\":3600,\"parent_id\":\"par\",\"req\":5,\"get\":6}",
        "{\"id\":\"c4\",\"task\":\"tasks.add\",\"req\":7,\"get\":8}"};
    for (int i = 0; i < 4; i++) {
        cJSON *r = s_call(s_cli, "SUBMIT", subs[i]);
        ck_assert_msg(!s_errcode(r), "refused: %s", s_errmsg(r));
        ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "get")));
        cJSON_Delete(r);
    }
    fw_t w;
    cJSON_Delete(fw_hello(&w, "w1@h", 4, 0, ""));
    for (int i = 0; i < 4; i++)
        cJSON_Delete(fw_task(&w, WAIT_MS));
    char t0[40], t1[40], dates[120];
    zq_time_iso(zq_now() - 0.002, t0, sizeof t0);
    zq_time_iso(zq_now() - 0.001, t1, sizeof t1);
    snprintf(dates, sizeof dates, "\"received\":\"%s\",\"started\":\"%s\"", t0, t1);
    char extra[512];
    snprintf(extra, sizeof extra, "\"result\":5,\"runtime\":0.0005,%s", dates);
    fw_state(&w, "c1", "SUCCESS", extra);
    snprintf(extra, sizeof extra,
             "\"exception\":{\"type\":\"ZeroDivisionError\",\"message\":\"division by zero\"},"
             "\"traceback\":\"Traceback (most recent call last):\\n  x\",\"runtime\":0.25,%s",
             dates);
    fw_state(&w, "c2", "FAILURE", extra);
    snprintf(extra, sizeof extra, "\"result\":7,\"runtime\":0.001,%s", dates);
    fw_state(&w, "c3", "SUCCESS", extra);
    fw_state(&w, "c4", "REVOKED",
             "\"exception\":{\"type\":\"TaskRevokedError\",\"message\":\"revoked\"}");
    /* every record first (a QUERY's answer would be mixed with them), then compare */
    cJSON *recs = cJSON_CreateArray();
    while (cJSON_GetArraySize(recs) < 4) {
        char cmd[32];
        cJSON *batch = s_recv_replies(s_cli, WAIT_MS, cmd);
        ck_assert_msg(batch != NULL, "%d of 4 records came", cJSON_GetArraySize(recs));
        while (batch->child)
            cJSON_AddItemToArray(recs, cJSON_DetachItemViaPointer(batch, batch->child));
        cJSON_Delete(batch);
    }
    for (cJSON *rec = recs->child; rec; rec = rec->next) {
        cJSON_DeleteItemFromObject(rec, "req");
        cJSON *q = s_query(zq_json_str(rec, "id", ""));
        char *a = cJSON_PrintUnformatted(rec), *b = cJSON_PrintUnformatted(q);
        ck_assert_msg(cJSON_Compare(rec, q, 1), "pushed %s\n  query %s", a, b);
        cJSON_free(a);
        cJSON_free(b);
        cJSON_Delete(q);
    }
    cJSON_Delete(recs);
    fw_close(&w);
}
END_TEST

START_TEST(test_get_timeout)
{
    s_submit("{\"id\":\"slow\",\"task\":\"tasks.add\"}");
    double t0 = zq_mono();
    s_send(s_cli, "GET", "{\"id\":\"slow\",\"timeout\":0.3,\"req\":9}");
    cJSON *r = s_reply(s_cli, WAIT_MS);
    double waited = zq_mono() - t0;
    ck_assert_ptr_nonnull(r);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "timeout")));
    ck_assert_str_eq(zq_json_str(r, "state", ""), "PENDING");
    ck_assert_int_eq(zq_json_num(r, "req", 0), 9);
    ck_assert_msg(waited >= 0.29 && waited < 3.0, "waited %.3fs", waited);
    cJSON_Delete(r);
    r = s_call(s_cli, "GET", "{\"id\":\"slow\",\"timeout\":0}");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "timeout")));
    cJSON_Delete(r);
}
END_TEST

START_TEST(test_many_parked_gets)
{
    char json[128];
    for (int i = 0; i < 50; i++) {
        snprintf(json, sizeof json, "{\"id\":\"m%d\",\"task\":\"t.a\"}", i);
        s_submit(json);
        snprintf(json, sizeof json, "{\"id\":\"m%d\",\"timeout\":30,\"req\":%d}", i, 100 + i);
        s_send(s_cli, "GET", json);
    }
    fw_t w;
    cJSON_Delete(fw_hello(&w, "many@h", 4, 4, ""));
    int got[50] = {0};
    for (int n = 0; n < 50; n++) {
        cJSON *t = fw_task(&w, WAIT_MS);
        ck_assert_ptr_nonnull(t);
        fw_succeed(&w, zq_json_str(t, "id", ""), "1");
        cJSON_Delete(t);
    }
    for (int n = 0; n < 50; n++) {
        cJSON *r = s_reply(s_cli, WAIT_MS);
        ck_assert_ptr_nonnull(r);
        int req = (int)zq_json_num(r, "req", 0) - 100;
        ck_assert(req >= 0 && req < 50);
        got[req]++;
        ck_assert_str_eq(zq_json_str(r, "state", ""), "SUCCESS");
        cJSON_Delete(r);
    }
    for (int i = 0; i < 50; i++)
        ck_assert_int_eq(got[i], 1);
    fw_close(&w);
}
END_TEST

START_TEST(test_credit_limit)
{
    char json[128];
    for (int i = 0; i < 3; i++) {
        snprintf(json, sizeof json, "{\"id\":\"c%d\",\"task\":\"t.a\"}", i);
        s_submit(json);
    }
    fw_t w;
    cJSON_Delete(fw_hello(&w, "one@h", 1, 0, ""));
    for (int i = 0; i < 3; i++) {
        cJSON *t = fw_task(&w, WAIT_MS);
        ck_assert_ptr_nonnull(t);
        snprintf(json, sizeof json, "c%d", i);
        ck_assert_str_eq(zq_json_str(t, "id", ""), json); /* FIFO */
        /* concurrency 1 + prefetch 0: never a second one while this one runs */
        fw_state(&w, json, "RECEIVED", "");
        fw_state(&w, json, "STARTED", "");
        cJSON *extra = fw_task(&w, QUIET_MS);
        ck_assert_msg(extra == NULL, "worker got %s while holding %s",
                      zq_json_str(extra, "id", "?"), json);
        fw_state(&w, json, "SUCCESS", "\"result\":null");
        cJSON_Delete(t);
    }
    cJSON *r = s_call(s_cli, "WORKERS", "{}");
    cJSON *w0 = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "workers"), 0);
    ck_assert_str_eq(zq_json_str(w0, "name", ""), "one@h");
    ck_assert_int_eq(zq_json_num(w0, "concurrency", 0), 1);
    ck_assert(cJSON_IsString(cJSON_GetObjectItem(w0, "last_heartbeat")));
    cJSON_Delete(r);
    fw_close(&w);
}
END_TEST

START_TEST(test_most_free_slots)
{
    /* a busy worker does not get short tasks while another one is idle */
    fw_t busy, idle;
    cJSON_Delete(fw_hello(&busy, "busy@h", 2, 0, ""));
    s_submit("{\"id\":\"long\",\"task\":\"t.sleep\"}");
    cJSON *t = fw_task(&busy, WAIT_MS);
    ck_assert_ptr_nonnull(t);
    cJSON_Delete(t);
    fw_state(&busy, "long", "STARTED", "");
    cJSON_Delete(fw_hello(&idle, "idle@h", 2, 0, ""));
    fw_wait_connected(&idle);
    s_submit("{\"id\":\"s1\",\"task\":\"t.a\"}");
    s_submit("{\"id\":\"s2\",\"task\":\"t.a\"}");
    /* idle has 2 free slots, busy 1: s1 goes to idle; then 1 and 1: either */
    t = fw_task(&idle, WAIT_MS);
    ck_assert_ptr_nonnull(t);
    ck_assert_str_eq(zq_json_str(t, "id", ""), "s1");
    cJSON_Delete(t);
    fw_close(&busy);
    fw_close(&idle);
}
END_TEST

START_TEST(test_queues_routing)
{
    fw_t w;
    cJSON_Delete(fw_hello(&w, "q@h", 2, 0, "\"queues\":[\"video\"]"));
    s_submit("{\"id\":\"c1\",\"task\":\"t.a\"}"); /* celery: nobody consumes it */
    s_submit("{\"id\":\"v1\",\"task\":\"t.a\",\"queue\":\"video\"}");
    cJSON *t = fw_task(&w, WAIT_MS);
    ck_assert_ptr_nonnull(t);
    ck_assert_str_eq(zq_json_str(t, "id", ""), "v1");
    cJSON_Delete(t);
    ck_assert_ptr_null(fw_task(&w, QUIET_MS));
    cJSON *r = s_call(s_cli, "QUEUES", "{}");
    cJSON *qs = cJSON_GetObjectItem(r, "queues");
    ck_assert_int_eq(cJSON_GetArraySize(qs), 2);
    cJSON *celery = cJSON_GetArrayItem(qs, 0), *video = cJSON_GetArrayItem(qs, 1);
    ck_assert_str_eq(zq_json_str(celery, "name", ""), "celery");
    ck_assert_int_eq(zq_json_num(celery, "ready", -1), 1);
    ck_assert_int_eq(zq_json_num(celery, "consumers", -1), 0);
    ck_assert_int_eq(zq_json_num(video, "ready", -1), 0);
    ck_assert_int_eq(zq_json_num(video, "reserved", -1), 1);
    ck_assert_int_eq(zq_json_num(video, "consumers", -1), 1);
    cJSON_Delete(r);
    fw_close(&w);
}
END_TEST

/* The next TASK within ms, sending a HEARTBEAT every 100 ms meanwhile (short heartbeats). */
static cJSON *fw_task_alive(fw_t *w, int ms)
{
    double until = zq_mono() + ms / 1000.0;
    char json[128];
    snprintf(json, sizeof json, "{\"name\":\"%s\",\"active\":0,\"processed\":0}", w->name);
    while (zq_mono() < until) {
        s_send(w->fe, "HEARTBEAT", json);
        cJSON *t = fw_task(w, 100);
        cJSON *r;
        while ((r = s_recv(w->fe, 0, NULL))) /* heartbeat replies */
            cJSON_Delete(r);
        if (t)
            return t;
    }
    return NULL;
}

START_TEST(test_restart_loses_none)
{
    char json[128];
    for (int i = 0; i < 5; i++) {
        snprintf(json, sizeof json, "{\"id\":\"k%d\",\"task\":\"t.a\",\"args\":[%d]}", i, i);
        s_submit(json);
    }
    s_submit("{\"id\":\"later\",\"task\":\"t.a\",\"countdown\":3600}");
    s_stop();
    s_start_with(2.0, 20000, 1.0);
    cJSON *r = s_call(s_cli, "INFO", "{}");
    ck_assert_int_eq(zq_json_num(cJSON_GetObjectItem(r, "stats"), "recovered", -1), 6);
    cJSON_Delete(r);
    r = s_call(s_cli, "QUEUES", "{}");
    cJSON *q = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "queues"), 0);
    ck_assert_int_eq(zq_json_num(q, "ready", -1), 5);
    ck_assert_int_eq(zq_json_num(q, "scheduled", -1), 1);
    cJSON_Delete(r);
    r = s_call(s_cli, "SCHEDULED", "{}");
    cJSON *sch = cJSON_GetObjectItem(r, "scheduled");
    ck_assert_int_eq(cJSON_GetArraySize(sch), 1);
    ck_assert_str_eq(zq_json_str(cJSON_GetArrayItem(sch, 0), "id", ""), "later");
    cJSON_Delete(r);
    fw_t w;
    cJSON_Delete(fw_hello(&w, "after@h", 10, 0, ""));
    for (int i = 0; i < 5; i++) {
        cJSON *t = fw_task(&w, WAIT_MS);
        ck_assert_ptr_nonnull(t);
        snprintf(json, sizeof json, "k%d", i);
        ck_assert_str_eq(zq_json_str(t, "id", ""), json);
        ck_assert_int_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(t, "args"), 0)->valueint, i);
        cJSON_Delete(t);
    }
    ck_assert_ptr_null(fw_task(&w, QUIET_MS));
    fw_close(&w);
}
END_TEST

START_TEST(test_restart_with_tasks_in_flight)
{
    fw_t w;
    cJSON_Delete(fw_hello(&w, "fl@h", 3, 0, ""));
    s_submit("{\"id\":\"A\",\"task\":\"t.a\"}");
    s_submit("{\"id\":\"B\",\"task\":\"t.a\"}");
    s_submit("{\"id\":\"C\",\"task\":\"t.a\"}");
    for (int i = 0; i < 3; i++) {
        cJSON *t = fw_task(&w, WAIT_MS);
        ck_assert_ptr_nonnull(t);
        cJSON_Delete(t);
    }
    fw_state(&w, "A", "RECEIVED", "");
    fw_state(&w, "B", "STARTED", "\"acks_late\":false");
    fw_state(&w, "C", "STARTED", "\"acks_late\":true");
    s_assert_state("C", "STARTED"); /* the states are stored */
    s_stop();
    s_start_with(0.5, 20000, 1.0); /* grace: 3 x 0.5 s */
    /* the worker comes back still holding B only */
    fw_t w2;
    cJSON_Delete(fw_hello(&w2, "fl@h", 3, 0, "\"holding\":[\"B\"]"));
    fw_close(&w);
    /* A (received, not started) and C (acks_late) come back; B stays claimed */
    int seen_a = 0, seen_c = 0;
    for (int i = 0; i < 2; i++) {
        cJSON *t = fw_task_alive(&w2, WAIT_MS);
        ck_assert_ptr_nonnull(t);
        const char *id = zq_json_str(t, "id", "");
        seen_a += !strcmp(id, "A");
        seen_c += !strcmp(id, "C");
        ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(t, "redelivered")));
        cJSON_Delete(t);
    }
    ck_assert_int_eq(seen_a, 1);
    ck_assert_int_eq(seen_c, 1);
    s_assert_state("B", "STARTED");
    fw_state(&w2, "B", "SUCCESS", "\"result\":1");
    cJSON *r = s_call(s_cli, "GET", "{\"id\":\"B\",\"timeout\":5}");
    ck_assert_str_eq(zq_json_str(r, "state", ""), "SUCCESS");
    cJSON_Delete(r);
    fw_close(&w2);
}
END_TEST

START_TEST(test_restart_hold_and_late_result)
{
    /* queued before the restart; Q1 was in fact handed out and run, its states lost with
     * the old broker: its worker sends the result again after the restart */
    s_submit("{\"id\":\"Q1\",\"task\":\"t.a\"}");
    s_submit("{\"id\":\"Q2\",\"task\":\"t.a\"}");
    s_stop();
    s_start_with(2.0, 20000, 1.0); /* hold: 1.5 x 2 s */
    fw_t w;
    cJSON_Delete(fw_hello(&w, "late@h", 2, 0, ""));
    /* nothing is handed out at once: other workers may still claim what they held */
    ck_assert_ptr_null(fw_task(&w, QUIET_MS));
    fw_state(&w, "Q1", "SUCCESS", "\"result\":1,\"runtime\":0.001");
    s_assert_state("Q1", "SUCCESS");
    /* after the hold: Q2 only; Q1 ended, so it left the queue */
    cJSON *t = fw_task(&w, WAIT_MS);
    ck_assert_ptr_nonnull(t);
    ck_assert_str_eq(zq_json_str(t, "id", ""), "Q2");
    cJSON_Delete(t);
    ck_assert_ptr_null(fw_task(&w, QUIET_MS));
    cJSON *r = s_call(s_cli, "QUEUES", "{}");
    ck_assert_int_eq(
        zq_json_num(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "queues"), 0), "ready", -1), 0);
    cJSON_Delete(r);
    fw_close(&w);
}
END_TEST

START_TEST(test_dead_worker)
{
    fw_t w1, w2;
    cJSON_Delete(fw_hello(&w1, "dies@h", 2, 0, ""));
    s_submit("{\"id\":\"A\",\"task\":\"t.a\"}");
    s_submit("{\"id\":\"B\",\"task\":\"t.a\"}");
    s_submit("{\"id\":\"E\",\"task\":\"t.a\",\"countdown\":0.5}");
    for (int i = 0; i < 3; i++) {
        cJSON *t = fw_task(&w1, WAIT_MS);
        ck_assert_ptr_nonnull(t);
        cJSON_Delete(t);
    }
    fw_state(&w1, "A", "RECEIVED", "");
    fw_state(&w1, "B", "STARTED", "");
    s_assert_state("B", "STARTED");
    s_send(s_cli, "GET", "{\"id\":\"B\",\"timeout\":30,\"req\":2}");
    cJSON_Delete(fw_hello(&w2, "lives@h", 2, 0, ""));
    /* w1 goes silent: dead after 3 x 0.5 s; A and the ETA task E go to w2 */
    int seen = 0;
    for (int i = 0; i < 2; i++) {
        cJSON *t = fw_task_alive(&w2, WAIT_MS);
        ck_assert_msg(t != NULL, "no task requeued from the dead worker");
        const char *id = zq_json_str(t, "id", "");
        ck_assert(!strcmp(id, "A") || !strcmp(id, "E"));
        seen += !strcmp(id, "A") ? 1 : 2;
        ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(t, "redelivered")));
        cJSON_Delete(t);
    }
    ck_assert_int_eq(seen, 3);
    cJSON *r = s_reply(s_cli, WAIT_MS);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(zq_json_str(r, "state", ""), "FAILURE");
    cJSON *exc = cJSON_GetObjectItem(r, "exception");
    ck_assert_str_eq(zq_json_str(exc, "type", ""), "WorkerLostError");
    ck_assert(strstr(zq_json_str(exc, "message", ""), "heartbeat lost") != NULL);
    cJSON_Delete(r);
    r = s_call(w1.fe, "HEARTBEAT", "{\"name\":\"dies@h\"}");
    ck_assert_str_eq(s_errcode(r), "EUNKNOWNWORKER");
    cJSON_Delete(r);
    r = s_call(s_cli, "WORKERS", "{}");
    cJSON *ws = cJSON_GetObjectItem(r, "workers");
    ck_assert_int_eq(cJSON_GetArraySize(ws), 1);
    ck_assert_str_eq(zq_json_str(cJSON_GetArrayItem(ws, 0), "name", ""), "lives@h");
    cJSON_Delete(r);
    fw_close(&w1);
    fw_close(&w2);
}
END_TEST

START_TEST(test_released_after_dead)
{
    /* a worker declared dead comes back with HELLO "holding": the reply releases what ended
     * or went to another worker meanwhile, and what the broker never knew; it keeps what is
     * still queued */
    fw_t w1, w2;
    cJSON_Delete(fw_hello(&w1, "away@h", 1, 2, ""));
    s_submit("{\"id\":\"A\",\"task\":\"t.a\"}");
    s_submit("{\"id\":\"B\",\"task\":\"t.a\"}");
    s_submit("{\"id\":\"C\",\"task\":\"t.a\"}");
    for (int i = 0; i < 3; i++) {
        cJSON *t = fw_task(&w1, WAIT_MS);
        ck_assert_ptr_nonnull(t);
        cJSON_Delete(t);
    }
    fw_state(&w1, "A", "STARTED", "");
    fw_state(&w1, "B", "RECEIVED", "");
    fw_state(&w1, "C", "RECEIVED", "");
    s_assert_state("C", "RECEIVED");
    cJSON *r = fw_hello(&w2, "here@h", 1, 0, "");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "released")), 0);
    cJSON_Delete(r);
    /* w1 goes silent: A ends FAILURE WorkerLostError, B goes to w2, C waits (no credit) */
    cJSON *t = fw_task_alive(&w2, WAIT_MS);
    ck_assert_ptr_nonnull(t);
    ck_assert_str_eq(zq_json_str(t, "id", ""), "B");
    cJSON_Delete(t);
    s_assert_state("A", "FAILURE");
    fw_close(&w1);
    r = fw_hello(&w1, "away@h", 1, 2, "\"holding\":[\"A\",\"B\",\"C\",\"nope\"]");
    const cJSON *rel = cJSON_GetObjectItem(r, "released");
    ck_assert(cJSON_IsArray(rel));
    ck_assert_int_eq(cJSON_GetArraySize(rel), 3);
    ck_assert_str_eq(cJSON_GetArrayItem(rel, 0)->valuestring, "A"); /* ended */
    ck_assert_str_eq(cJSON_GetArrayItem(rel, 1)->valuestring, "B"); /* w2's now */
    ck_assert_str_eq(cJSON_GetArrayItem(rel, 2)->valuestring, "nope");
    cJSON_Delete(r);
    /* C is w1's again: w2 does not get it once B is done, and w1's late word on A is
     * ignored */
    fw_succeed(&w2, "B", "1");
    cJSON_Delete(s_call(w1.fe, "HEARTBEAT", "{\"name\":\"away@h\"}"));
    ck_assert_ptr_null(fw_task_alive(&w2, QUIET_MS));
    fw_state(&w1, "A", "SUCCESS", "\"result\":1");
    fw_succeed(&w1, "C", "3");
    r = s_call(s_cli, "GET", "{\"id\":\"C\",\"timeout\":5}");
    ck_assert_str_eq(zq_json_str(r, "state", ""), "SUCCESS");
    cJSON_Delete(r);
    s_assert_state("A", "FAILURE");
    fw_close(&w1);
    fw_close(&w2);
}
END_TEST

START_TEST(test_spill_order)
{
    /* 3 in memory, the rest on disk, read back in order */
    char json[128];
    for (int i = 0; i < 10; i++) {
        snprintf(json, sizeof json, "{\"id\":\"o%d\",\"task\":\"t.a\"}", i);
        s_submit(json);
    }
    cJSON *r = s_call(s_cli, "QUEUES", "{}");
    ck_assert_int_eq(
        zq_json_num(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "queues"), 0), "ready", -1), 10);
    cJSON_Delete(r);
    fw_t w;
    cJSON_Delete(fw_hello(&w, "sp@h", 1, 1, ""));
    for (int i = 0; i < 10; i++) {
        cJSON *t = fw_task(&w, WAIT_MS);
        ck_assert_ptr_nonnull(t);
        snprintf(json, sizeof json, "o%d", i);
        ck_assert_str_eq(zq_json_str(t, "id", ""), json);
        fw_succeed(&w, json, "0");
        cJSON_Delete(t);
    }
    fw_close(&w);
}
END_TEST

START_TEST(test_return_to_head)
{
    for (int i = 0; i < 4; i++) {
        char json[64];
        snprintf(json, sizeof json, "{\"id\":\"t%d\",\"task\":\"t.a\"}", i);
        s_submit(json);
    }
    fw_t w;
    cJSON_Delete(fw_hello(&w, "ret@h", 1, 1, ""));
    for (int i = 0; i < 2; i++) {
        cJSON *t = fw_task(&w, WAIT_MS);
        ck_assert_ptr_nonnull(t);
        cJSON_Delete(t);
    }
    fw_state(&w, "t0", "RECEIVED", "");
    s_send(w.push, "RETURN", "{\"worker\":\"ret@h\",\"ids\":[\"t0\",\"t1\"]}");
    /* a worker that returns tasks is shutting down: it gets none back, credits or not */
    ck_assert_ptr_null(fw_task(&w, QUIET_MS));
    cJSON *r = s_call(w.fe, "BYE", "{\"name\":\"ret@h\"}");
    ck_assert_ptr_null(s_errcode(r));
    cJSON_Delete(r);
    fw_close(&w);
    fw_t w2;
    cJSON_Delete(fw_hello(&w2, "next@h", 1, 0, ""));
    const char *order[] = {"t0", "t1", "t2", "t3"};
    for (int i = 0; i < 4; i++) {
        cJSON *t = fw_task(&w2, WAIT_MS);
        ck_assert_ptr_nonnull(t);
        ck_assert_str_eq(zq_json_str(t, "id", ""), order[i]);
        ck_assert_int_eq(cJSON_IsTrue(cJSON_GetObjectItem(t, "redelivered")), i < 2);
        fw_succeed(&w2, order[i], "0");
        cJSON_Delete(t);
    }
    fw_close(&w2);
}
END_TEST

/* ---- time ---- */

START_TEST(test_eta_lookahead)
{
    fw_t w;
    cJSON_Delete(fw_hello(&w, "eta@h", 1, 0, ""));
    fw_wait_connected(&w);
    double t0 = zq_now();
    s_submit("{\"id\":\"cd\",\"task\":\"t.a\",\"countdown\":2.5}");
    /* look-ahead 1 s: not handed out before eta - 1 s */
    cJSON *early = fw_task(&w, 1200);
    ck_assert_msg(early == NULL, "ETA task dispatched %.3fs after submit", zq_now() - t0);
    cJSON *t = fw_task(&w, WAIT_MS);
    double got = zq_now();
    ck_assert_ptr_nonnull(t);
    ck_assert_msg(got - t0 >= 1.45, "dispatched %.3fs after submit", got - t0);
    double eta = 0;
    ck_assert_int_eq(zq_time_parse(zq_json_str(t, "eta", ""), &eta), ZQ_OK);
    ck_assert_msg(fabs(eta - (t0 + 2.5)) < 0.5, "eta %.3f, want %.3f", eta, t0 + 2.5);
    cJSON_Delete(t);
    /* ETA tasks do not use credits: a second one goes out while the first is held */
    s_submit("{\"id\":\"cd2\",\"task\":\"t.a\",\"countdown\":0.1}");
    t = fw_task(&w, WAIT_MS);
    ck_assert_ptr_nonnull(t);
    ck_assert_str_eq(zq_json_str(t, "id", ""), "cd2");
    cJSON_Delete(t);
    fw_close(&w);
}
END_TEST

START_TEST(test_expires)
{
    fw_t w;
    cJSON_Delete(fw_hello(&w, "exp@h", 1, 0, ""));
    s_submit("{\"id\":\"x1\",\"task\":\"t.a\",\"expires\":-1}");
    /* due for hand-out (eta - look-ahead) after it expired: the broker ends it */
    s_submit("{\"id\":\"x2\",\"task\":\"t.a\",\"countdown\":1.5,\"expires\":0.2}");
    s_submit("{\"id\":\"ok\",\"task\":\"t.a\",\"expires\":3600}");
    const char *ids[] = {"x1", "x2"};
    for (int i = 0; i < 2; i++) {
        char json[128];
        snprintf(json, sizeof json, "{\"id\":\"%s\",\"timeout\":10}", ids[i]);
        cJSON *r = s_call(s_cli, "GET", json);
        ck_assert_str_eq(zq_json_str(r, "state", ""), "REVOKED");
        cJSON *exc = cJSON_GetObjectItem(r, "exception");
        ck_assert_str_eq(zq_json_str(exc, "type", ""), "TaskRevokedError");
        ck_assert_str_eq(zq_json_str(exc, "message", ""), "expired");
        cJSON_Delete(r);
    }
    cJSON *t = fw_task(&w, WAIT_MS);
    ck_assert_ptr_nonnull(t);
    ck_assert_str_eq(zq_json_str(t, "id", ""), "ok"); /* the expired ones never reach a worker */
    ck_assert(cJSON_IsString(cJSON_GetObjectItem(t, "expires")));
    cJSON_Delete(t);
    fw_close(&w);
}
END_TEST

START_TEST(test_retry_requeues)
{
    fw_t w;
    cJSON_Delete(fw_hello(&w, "rt@h", 1, 0, ""));
    s_submit("{\"id\":\"div\",\"task\":\"tasks.div\",\"args\":[4,0]}");
    cJSON *t = fw_task(&w, WAIT_MS);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(zq_json_num(t, "retries", -1), 0);
    cJSON_Delete(t);
    fw_state(&w, "div", "STARTED", "");
    fw_state(&w, "div", "RETRY",
             "\"exception\":{\"type\":\"ZeroDivisionError\",\"message\":\"division by zero\"},"
             "\"countdown\":0.2");
    t = fw_task(&w, WAIT_MS);
    ck_assert_ptr_nonnull(t);
    ck_assert_str_eq(zq_json_str(t, "id", ""), "div"); /* same id, same queue */
    ck_assert_int_eq(zq_json_num(t, "retries", -1), 1);
    ck_assert(cJSON_IsString(cJSON_GetObjectItem(t, "eta")));
    cJSON_Delete(t);
    cJSON *r = s_query("div");
    ck_assert_str_eq(zq_json_str(r, "state", ""), "RETRY");
    ck_assert_int_eq(zq_json_num(r, "retries", -1), 1);
    ck_assert_str_eq(zq_json_str(cJSON_GetObjectItem(r, "exception"), "type", ""),
                     "ZeroDivisionError");
    cJSON_Delete(r);
    fw_succeed(&w, "div", "2");
    r = s_call(s_cli, "GET", "{\"id\":\"div\",\"timeout\":5}");
    ck_assert_str_eq(zq_json_str(r, "state", ""), "SUCCESS");
    ck_assert_int_eq(zq_json_num(r, "retries", -1), 1);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(r, "exception")));
    cJSON_Delete(r);
    fw_close(&w);
}
END_TEST

/* ---- revoke, purge ---- */

START_TEST(test_revoke)
{
    fw_t w;
    cJSON_Delete(fw_hello(&w, "rv@h", 1, 0, ""));
    s_submit("{\"id\":\"run\",\"task\":\"t.sleep\"}");
    cJSON *t = fw_task(&w, WAIT_MS);
    ck_assert_ptr_nonnull(t);
    cJSON_Delete(t);
    fw_state(&w, "run", "STARTED", "");
    s_submit("{\"id\":\"queued\",\"task\":\"t.a\"}");
    s_send(s_cli, "GET", "{\"id\":\"queued\",\"req\":4}");
    cJSON *r = s_call(s_cli, "REVOKE",
                      "{\"ids\":[\"queued\",\"run\",\"future\"],\"terminate\":true,"
                      "\"signal\":\"SIGKILL\"}");
    /* the parked GET and the REVOKE reply come in either order */
    cJSON *get = NULL;
    if (cJSON_GetObjectItem(r, "state")) {
        get = r;
        r = s_reply(s_cli, WAIT_MS);
    }
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "revoked")), 3);
    cJSON_Delete(r);
    if (!get)
        get = s_reply(s_cli, WAIT_MS);
    ck_assert_ptr_nonnull(get);
    ck_assert_int_eq(zq_json_num(get, "req", 0), 4);
    ck_assert_str_eq(zq_json_str(get, "state", ""), "REVOKED");
    cJSON_Delete(get);
    /* the worker holding "run" is told, with terminate and the signal */
    char cmd[32];
    cJSON *b = s_recv(w.pull, WAIT_MS, cmd);
    ck_assert_ptr_nonnull(b);
    ck_assert_str_eq(cmd, "REVOKED");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(b, "ids")), 3);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(b, "terminate")));
    ck_assert_str_eq(zq_json_str(b, "signal", ""), "SIGKILL");
    cJSON_Delete(b);
    s_assert_state("run", "STARTED"); /* the worker ends it */
    cJSON *rec = s_query("queued");
    ck_assert_str_eq(zq_json_str(cJSON_GetObjectItem(rec, "exception"), "message", ""),
                     "revoked");
    cJSON_Delete(rec);
    /* an id revoked before it was sent never runs */
    s_submit("{\"id\":\"future\",\"task\":\"t.a\"}");
    s_assert_state("future", "REVOKED");
    fw_state(&w, "run", "REVOKED",
             "\"exception\":{\"type\":\"TaskRevokedError\",\"message\":\"terminated\"}");
    ck_assert_ptr_null(fw_task(&w, QUIET_MS));
    /* workers joining later learn the set */
    fw_t w2;
    r = fw_hello(&w2, "late@h", 1, 0, "");
    cJSON *ids = cJSON_GetObjectItem(r, "revoked");
    ck_assert_int_eq(cJSON_GetArraySize(ids), 3);
    cJSON_Delete(r);
    fw_close(&w2);
    fw_close(&w);
}
END_TEST

START_TEST(test_purge)
{
    char json[128];
    for (int i = 0; i < 4; i++) {
        snprintf(json, sizeof json, "{\"id\":\"p%d\",\"task\":\"t.a\"}", i);
        s_submit(json);
    }
    s_submit("{\"id\":\"pe\",\"task\":\"t.a\",\"countdown\":600}");
    s_submit("{\"id\":\"po\",\"task\":\"t.a\",\"queue\":\"other\"}");
    s_send(s_cli, "GET", "{\"id\":\"po\",\"timeout\":30,\"req\":77}");
    cJSON *r = s_call(s_cli, "PURGE", "{\"queues\":[\"celery\"]}");
    ck_assert_int_eq(zq_json_num(r, "purged", -1), 5);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "queues")), 1);
    cJSON_Delete(r);
    cJSON *rec = s_query("p2");
    ck_assert_str_eq(zq_json_str(rec, "state", ""), "REVOKED");
    ck_assert_str_eq(zq_json_str(cJSON_GetObjectItem(rec, "exception"), "message", ""), "purged");
    cJSON_Delete(rec);
    s_assert_state("po", "PENDING");
    r = s_call(s_cli, "PURGE", "{}");
    cJSON *get = NULL;
    if (zq_json_num(r, "req", 0) == 77) { /* the parked GET answered first */
        get = r;
        r = s_reply(s_cli, WAIT_MS);
    }
    ck_assert_int_eq(zq_json_num(r, "purged", -1), 1);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "queues")), 2);
    cJSON_Delete(r);
    if (!get)
        get = s_reply(s_cli, WAIT_MS);
    ck_assert_ptr_nonnull(get);
    ck_assert_str_eq(zq_json_str(get, "state", ""), "REVOKED");
    cJSON_Delete(get);
    /* nothing reaches a worker afterwards */
    fw_t w;
    cJSON_Delete(fw_hello(&w, "pg@h", 4, 0, "\"queues\":[\"celery\",\"other\"]"));
    ck_assert_ptr_null(fw_task(&w, QUIET_MS));
    fw_close(&w);
}
END_TEST

/* ---- workers ---- */

START_TEST(test_hello_heartbeat_bye)
{
    fw_t w;
    cJSON *r = fw_hello(&w, "dup@h", 2, 2, "");
    char dispatch[256];
    snprintf(dispatch, sizeof dispatch, "%s", zq_json_str(r, "dispatch", ""));
    ck_assert_msg(strstr(dispatch, ".d") != NULL, "ipc dispatch endpoint: %s", dispatch);
    cJSON_Delete(r);
    /* another process with the same name */
    r = s_call(s_cli, "HELLO", "{\"name\":\"dup@h\",\"hostname\":\"testhost\",\"pid\":1,"
                               "\"concurrency\":1}");
    ck_assert_str_eq(s_errcode(r), "EDUPLICATE");
    cJSON_Delete(r);
    /* the same process again (its reply was lost): same channel */
    r = s_call(s_cli, "HELLO", "{\"name\":\"dup@h\",\"hostname\":\"testhost\",\"pid\":1005,"
                               "\"concurrency\":2,\"prefetch\":2,\"pool\":\"solo\"}");
    ck_assert_ptr_null(s_errcode(r));
    ck_assert_str_eq(zq_json_str(r, "dispatch", ""), dispatch);
    cJSON_Delete(r);
    r = s_call(w.fe, "HEARTBEAT", "{\"name\":\"ghost\"}");
    ck_assert_str_eq(s_errcode(r), "EUNKNOWNWORKER");
    cJSON_Delete(r);
    r = s_call(w.fe, "HEARTBEAT", "{\"name\":\"dup@h\",\"active\":1,\"processed\":5,\"req\":3}");
    ck_assert_ptr_null(s_errcode(r));
    ck_assert_ptr_nonnull(cJSON_GetObjectItem(r, "broker_id"));
    ck_assert_int_eq(zq_json_num(r, "req", 0), 3);
    cJSON_Delete(r);
    r = s_call(s_cli, "WORKERS", "{}");
    cJSON *w0 = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "workers"), 0);
    ck_assert_int_eq(zq_json_num(w0, "processed", -1), 5);
    ck_assert_str_eq(zq_json_str(w0, "pool", ""), "solo");
    ck_assert_ptr_null(cJSON_GetObjectItem(w0, "req"));
    cJSON_Delete(r);
    r = s_call(w.fe, "BYE", "{\"name\":\"dup@h\"}");
    ck_assert_ptr_null(s_errcode(r));
    cJSON_Delete(r);
    r = s_call(s_cli, "WORKERS", "{}");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "workers")), 0);
    cJSON_Delete(r);
    fw_close(&w);
}
END_TEST

START_TEST(test_subtask_upstream)
{
    fw_t w;
    cJSON_Delete(fw_hello(&w, "sub@h", 1, 0, ""));
    s_send(w.push, "SUBMIT",
           "{\"id\":\"child\",\"task\":\"t.a\",\"parent_id\":\"par\",\"root_id\":\"root\"}");
    cJSON *t = fw_task(&w, WAIT_MS);
    ck_assert_ptr_nonnull(t);
    ck_assert_str_eq(zq_json_str(t, "id", ""), "child");
    cJSON_Delete(t);
    cJSON *r = s_query("child");
    ck_assert_str_eq(zq_json_str(r, "parent_id", ""), "par");
    ck_assert_str_eq(zq_json_str(r, "root_id", ""), "root");
    cJSON_Delete(r);
    fw_close(&w);
}
END_TEST

/* One event [topic][ZQP01][body]; topic into topic[64]. Caller deletes the body. */
static cJSON *s_event(void *sub, char *topic)
{
    char frames[3][4096];
    int sizes[3], more = 1, n = 0;
    while (more) {
        ck_assert_int_lt(n, 3);
        sizes[n] = zmq_recv(sub, frames[n], sizeof frames[n] - 1, 0);
        ck_assert_int_ge(sizes[n], 0);
        frames[n][sizes[n]] = '\0';
        int rcvmore;
        size_t len = sizeof rcvmore;
        zmq_getsockopt(sub, ZMQ_RCVMORE, &rcvmore, &len);
        more = rcvmore;
        n++;
    }
    ck_assert_int_eq(n, 3);
    ck_assert_str_eq(frames[1], "ZQP01");
    ck_assert_int_lt(sizes[0], 64);
    memcpy(topic, frames[0], (size_t)sizes[0] + 1);
    cJSON *body = cJSON_Parse(frames[2]);
    ck_assert_ptr_nonnull(body);
    return body;
}

START_TEST(test_events)
{
    cJSON *info = s_call(s_cli, "INFO", "{}");
    void *sub = s_sock(ZMQ_SUB, zq_json_str(info, "events", ""));
    cJSON_Delete(info);
    ck_assert_int_eq(zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "task-", 5), 0);
    /* subscriptions travel asynchronously: send probes until one is seen */
    int seen = 0;
    for (int i = 0; i < 50 && !seen; i++) {
        char json[64];
        snprintf(json, sizeof json, "{\"id\":\"ev%d\",\"task\":\"t.a\",\"args\":[1]}", i);
        s_submit(json);
        zmq_pollitem_t it = {sub, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 100) > 0)
            seen = 1;
    }
    ck_assert_msg(seen, "no task-sent event");
    char topic[64];
    cJSON *ev = s_event(sub, topic);
    ck_assert_str_eq(topic, "task-sent");
    ck_assert_str_eq(zq_json_str(ev, "type", ""), "task-sent");
    ck_assert_str_eq(zq_json_str(ev, "name", ""), "t.a");
    ck_assert(cJSON_IsArray(cJSON_GetObjectItem(ev, "args")));
    ck_assert(cJSON_IsString(cJSON_GetObjectItem(ev, "timestamp")));
    cJSON_Delete(ev);
    /* worker events are not subscribed: never sent */
    fw_t w;
    cJSON_Delete(fw_hello(&w, "ev@h", 1, 0, ""));
    cJSON *t = fw_task(&w, WAIT_MS);
    ck_assert_ptr_nonnull(t);
    const char *id = zq_json_str(t, "id", "");
    char want[64];
    snprintf(want, sizeof want, "%s", id);
    cJSON_Delete(t);
    fw_succeed(&w, want, "42");
    int succeeded = 0;
    for (int i = 0; i < 100 && !succeeded; i++) {
        zmq_pollitem_t it = {sub, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, WAIT_MS) <= 0)
            break;
        ev = s_event(sub, topic);
        ck_assert(strncmp(topic, "worker-", 7) != 0);
        ck_assert_str_eq(zq_json_str(ev, "type", ""), topic);
        if (!strcmp(topic, "task-succeeded")) {
            ck_assert_str_eq(zq_json_str(ev, "uuid", ""), want);
            ck_assert_str_eq(zq_json_str(ev, "hostname", ""), "ev@h");
            ck_assert_int_eq(zq_json_num(ev, "result", 0), 42);
            succeeded = 1;
        }
        cJSON_Delete(ev);
    }
    ck_assert(succeeded);
    zmq_close(sub);
    fw_close(&w);
}
END_TEST

/* A full disk (the store capped at a few pages): SUBMITs that cannot be stored are
 * answered ESTORE, never acknowledged, never dispatched; the rest goes on. */
START_TEST(test_store_full)
{
    s_stop();
    setenv("ZQ_STORE_MAX_PAGES", "60", 1);
    s_start_with(2.0, 20000, 1.0);
    unsetenv("ZQ_STORE_MAX_PAGES");
    char pad[2001];
    memset(pad, 'x', sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    static char acked[400][16];
    int nacked = 0, refused = 0;
    char refused_id[16] = "";
    for (int round = 0; round < 20 && !refused; round++) {
        char json[2200];
        for (int i = 0; i < 20; i++) { /* pipelined: one batch, one commit */
            snprintf(json, sizeof json,
                     "{\"req\":%d,\"id\":\"f%d\",\"task\":\"t.a\",\"args\":[\"%s\"]}", i,
                     round * 20 + i, pad);
            s_send(s_cli, "SUBMIT", json);
        }
        for (int i = 0; i < 20; i++) {
            cJSON *r = s_reply(s_cli, WAIT_MS);
            ck_assert_ptr_nonnull(r);
            if (s_errcode(r)) {
                ck_assert_str_eq(s_errcode(r), "ESTORE");
                ck_assert_msg(strstr(s_errmsg(r), "full") != NULL, "%s", s_errmsg(r));
                if (!refused++)
                    snprintf(refused_id, sizeof refused_id, "f%d",
                             round * 20 + (int)zq_json_num(r, "req", 0));
            } else {
                ck_assert_int_lt(nacked, 400);
                snprintf(acked[nacked++], sizeof acked[0], "%s", zq_json_str(r, "id", ""));
            }
            cJSON_Delete(r);
        }
    }
    ck_assert_msg(refused > 0, "the capped store never filled up");
    ck_assert_int_gt(nacked, 0);
    cJSON *rec = s_query(refused_id);
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(rec, "known")));
    cJSON_Delete(rec);
    /* a worker gets exactly the acknowledged tasks */
    fw_t w;
    cJSON_Delete(fw_hello(&w, "full@h", 1000, 0, ""));
    for (int n = 0; n < nacked; n++) {
        cJSON *t = fw_task(&w, WAIT_MS);
        ck_assert_msg(t != NULL, "only %d of %d acknowledged tasks dispatched", n, nacked);
        const char *id = zq_json_str(t, "id", "");
        int found = 0;
        for (int k = 0; k < nacked && !found; k++)
            found = !strcmp(acked[k], id);
        ck_assert_msg(found, "%s was dispatched but never acknowledged", id);
        cJSON_Delete(t);
    }
    ck_assert_ptr_null(fw_task(&w, QUIET_MS));
    fw_close(&w);
}
END_TEST

/* ---- monitor requests ---- */

START_TEST(test_tasks_and_stats)
{
    fw_t w;
    cJSON_Delete(fw_hello(&w, "mon@h", 4, 0, ""));
    fw_wait_connected(&w);
    s_submit("{\"id\":\"m1\",\"task\":\"tasks.add\",\"args\":[1,1]}");
    s_submit("{\"id\":\"m2\",\"task\":\"tasks.mul\",\"args\":[2,3],\"kwargs\":{\"tag\":\"Blue\"}}");
    s_submit("{\"id\":\"m3\",\"task\":\"tasks.add\",\"args\":[5,5],\"countdown\":3600}");
    for (int i = 0; i < 2; i++) {
        cJSON *t = fw_task(&w, WAIT_MS);
        ck_assert_ptr_nonnull(t);
        const char *id = zq_json_str(t, "id", "");
        if (!strcmp(id, "m1"))
            fw_succeed(&w, id, "2");
        else
            fw_state(&w, id, "FAILURE", "\"exception\":{\"type\":\"E\",\"message\":\"boom\"}");
        cJSON_Delete(t);
    }
    s_assert_state("m1", "SUCCESS");
    s_assert_state("m2", "FAILURE");

    /* TASKS: newest first, filters, total */
    cJSON *r = s_call(s_cli, "TASKS", "{\"req\":5}");
    ck_assert_msg(!s_errcode(r), "%s", s_errmsg(r));
    ck_assert_int_eq(zq_json_num(r, "req", 0), 5);
    ck_assert_int_eq(zq_json_num(r, "total", -1), 3);
    cJSON *tasks = cJSON_GetObjectItem(r, "tasks");
    ck_assert_int_eq(cJSON_GetArraySize(tasks), 3);
    ck_assert_str_eq(zq_json_str(cJSON_GetArrayItem(tasks, 0), "id", ""), "m3");
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(r, "truncated")));
    cJSON_Delete(r);
    r = s_call(s_cli, "TASKS", "{\"taskname\":\"tasks.add\",\"sort_by\":\"id\",\"limit\":1}");
    ck_assert_int_eq(zq_json_num(r, "total", -1), 2);
    tasks = cJSON_GetObjectItem(r, "tasks");
    ck_assert_int_eq(cJSON_GetArraySize(tasks), 1);
    ck_assert_str_eq(zq_json_str(cJSON_GetArrayItem(tasks, 0), "id", ""), "m1");
    ck_assert_str_eq(zq_json_str(cJSON_GetArrayItem(tasks, 0), "worker", ""), "mon@h");
    cJSON_Delete(r);
    r = s_call(s_cli, "TASKS", "{\"search\":\"blue\",\"workername\":\"mon@h\"}");
    ck_assert_int_eq(zq_json_num(r, "total", -1), 1);
    cJSON_Delete(r);
    r = s_call(s_cli, "TASKS", "{\"state\":\"SUCCESS,FAILURE\"}");
    ck_assert_int_eq(zq_json_num(r, "total", -1), 2);
    cJSON_Delete(r);
    /* bad fields: EINVAL naming the field */
    static const char *const bad[][2] = {
        {"{\"limit\":0}", "limit"},          {"{\"limit\":5000}", "limit"},
        {"{\"offset\":-1}", "offset"},       {"{\"sort_by\":\"rid\"}", "sort_by"},
        {"{\"state\":\"DONE\"}", "state"},   {"{\"taskname\":\"a b\"}", "taskname"},
        {"{\"search\":7}", "search"},        {"{\"received_start\":\"yesterday\"}", "received"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = s_call(s_cli, "TASKS", bad[i][0]);
        ck_assert_msg(s_errcode(r) && !strcmp(s_errcode(r), "EINVAL"), "%s accepted", bad[i][0]);
        ck_assert_msg(strstr(s_errmsg(r), bad[i][1]) != NULL, "%s: %s", bad[i][0], s_errmsg(r));
        cJSON_Delete(r);
    }

    /* STATS: by state, per worker (store counts + live fields) */
    r = s_call(s_cli, "STATS", "{}");
    ck_assert_msg(!s_errcode(r), "%s", s_errmsg(r));
    cJSON *by = cJSON_GetObjectItem(r, "tasks");
    ck_assert_int_eq(zq_json_num(by, "SUCCESS", -1), 1);
    ck_assert_int_eq(zq_json_num(by, "FAILURE", -1), 1);
    ck_assert_int_eq(zq_json_num(by, "PENDING", -1), 1);
    ck_assert_int_eq(zq_json_num(by, "total", -1), 3);
    cJSON *ws = cJSON_GetObjectItem(r, "workers");
    ck_assert_int_eq(cJSON_GetArraySize(ws), 1);
    cJSON *w0 = cJSON_GetArrayItem(ws, 0);
    ck_assert_str_eq(zq_json_str(w0, "name", ""), "mon@h");
    ck_assert_int_eq(zq_json_num(w0, "succeeded", -1), 1);
    ck_assert_int_eq(zq_json_num(w0, "failed", -1), 1);
    ck_assert_int_eq(zq_json_num(w0, "processed", -1), 2);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(w0, "online")));
    ck_assert_int_eq(zq_json_num(w0, "concurrency", -1), 4);
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(r, "events")));
    cJSON_Delete(r);
    fw_close(&w);

    /* after a restart the counts are the same (they come from the store) */
    s_stop();
    s_start_with(2.0, 20000, 1.0);
    r = s_call(s_cli, "STATS", "{}");
    by = cJSON_GetObjectItem(r, "tasks");
    ck_assert_int_eq(zq_json_num(by, "SUCCESS", -1), 1);
    ck_assert_int_eq(zq_json_num(by, "FAILURE", -1), 1);
    ck_assert_int_eq(zq_json_num(by, "total", -1), 3);
    w0 = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "workers"), 0);
    ck_assert_str_eq(zq_json_str(w0, "name", ""), "mon@h");
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(w0, "online")));
    cJSON_Delete(r);
}
END_TEST


/* ---- upstream batches, confirmation, folded states, adaptive window ---- */

/* The next message of command cmd on w's dispatch channel within ms (NULL if none). */
static cJSON *fw_expect(fw_t *w, const char *want, int ms)
{
    char cmd[32];
    double until = zq_mono() + ms / 1000.0;
    while (zq_mono() < until) {
        int left = (int)((until - zq_mono()) * 1000) + 1;
        cJSON *m = s_recv(w->pull, left, cmd);
        if (!m)
            return NULL;
        if (!strcmp(cmd, want))
            return m;
        cJSON_Delete(m);
    }
    return NULL;
}

/* A worker's last results may reach the broker after its BYE (another connection): with
 * "last_seq" the broker applies them first, and the task ends SUCCESS instead of being
 * failed as lost with its worker. */
START_TEST(test_bye_waits_for_last_batch)
{
    fw_t w;
    cJSON_Delete(fw_hello(&w, "bye@h", 1, 0, ""));
    fw_wait_connected(&w);
    s_submit("{\"id\":\"bye1\",\"task\":\"t.a\"}");
    cJSON *t = fw_task(&w, WAIT_MS);
    ck_assert_ptr_nonnull(t);
    cJSON_Delete(t);
    char json[1024], ts[40];
    zq_time_iso(zq_now(), ts, sizeof ts);
    snprintf(json, sizeof json,
             "{\"worker\":\"bye@h\",\"seq\":1,\"messages\":[[\"STATE\",{\"id\":\"bye1\","
             "\"state\":\"STARTED\",\"worker\":\"bye@h\",\"timestamp\":\"%s\",\"pid\":7}]]}",
             ts);
    s_send(w.push, "BATCH", json);
    s_assert_state("bye1", "STARTED");
    /* the BYE first, its last batch later */
    s_send(s_cli, "BYE", "{\"req\":41,\"name\":\"bye@h\",\"last_seq\":2}");
    usleep(100 * 1000);
    snprintf(json, sizeof json,
             "{\"worker\":\"bye@h\",\"seq\":2,\"messages\":[[\"STATE\",{\"id\":\"bye1\","
             "\"state\":\"SUCCESS\",\"worker\":\"bye@h\",\"timestamp\":\"%s\",\"result\":5,"
             "\"runtime\":0.001}]]}",
             ts);
    s_send(w.push, "BATCH", json);
    cJSON *r = s_reply(s_cli, WAIT_MS);
    ck_assert_ptr_nonnull(r);
    ck_assert_msg(!s_errcode(r), "BYE refused: %s", s_errmsg(r));
    ck_assert_int_eq((int)zq_json_num(r, "req", 0), 41);
    cJSON_Delete(r);
    s_assert_state("bye1", "SUCCESS");
    r = s_query("bye1");
    ck_assert_int_eq((int)zq_json_num(r, "result", 0), 5);
    cJSON_Delete(r);
    r = s_call(s_cli, "WORKERS", "{}");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "workers")), 0);
    cJSON_Delete(r);
    /* last_seq must be a batch number */
    s_send(s_cli, "BYE", "{\"req\":42,\"name\":\"bye@h\",\"last_seq\":-1}");
    s_expect_error("EINVAL", "last_seq");
    fw_close(&w);
}
END_TEST

START_TEST(test_batch_acked_after_commit)
{
    fw_t w;
    cJSON_Delete(fw_hello(&w, "batch@h", 2, 0, ""));
    fw_wait_connected(&w);
    s_submit("{\"id\":\"b1\",\"task\":\"t.a\"}");
    s_submit("{\"id\":\"b2\",\"task\":\"t.a\"}");
    cJSON *t1 = fw_task(&w, WAIT_MS), *t2 = fw_task(&w, WAIT_MS);
    ck_assert_ptr_nonnull(t1);
    ck_assert_ptr_nonnull(t2);
    cJSON_Delete(t1);
    cJSON_Delete(t2);
    /* b1 with its RECEIVED and STARTED folded in, b2 plain, plus a sub-task: one batch */
    char json[2048], ts[40];
    zq_time_iso(zq_now(), ts, sizeof ts);
    snprintf(json, sizeof json,
             "{\"worker\":\"batch@h\",\"seq\":7,\"messages\":["
             "[\"STATE\",{\"id\":\"b1\",\"state\":\"SUCCESS\",\"worker\":\"batch@h\","
             "\"timestamp\":\"%s\",\"result\":3,\"runtime\":0.0001,"
             "\"received\":\"2026-11-26T12:00:00.000001Z\",\"started\":\"2026-11-26T12:00:00.5Z\","
             "\"pid\":77,\"acks_late\":false}],"
             "[\"STATE\",{\"id\":\"b2\",\"state\":\"FAILURE\",\"worker\":\"batch@h\","
             "\"timestamp\":\"%s\",\"exception\":{\"type\":\"E\",\"message\":\"m\"}}],"
             "[\"SUBMIT\",{\"id\":\"b3\",\"task\":\"t.a\",\"parent_id\":\"b1\"}]]}",
             ts, ts);
    s_send(w.push, "BATCH", json);
    cJSON *ack = fw_expect(&w, "ACK", WAIT_MS);
    ck_assert_msg(ack != NULL, "no ACK for batch 7");
    const cJSON *seqs = cJSON_GetObjectItem(ack, "seqs");
    ck_assert_int_eq(cJSON_GetArraySize(seqs), 1);
    ck_assert_int_eq((int)cJSON_GetArrayItem(seqs, 0)->valuedouble, 7);
    cJSON_Delete(ack);
    /* confirmed means stored: the records are there, the folded times too */
    cJSON *r = s_query("b1");
    ck_assert_str_eq(zq_json_str(r, "state", ""), "SUCCESS");
    ck_assert_str_eq(zq_json_str(r, "date_received", ""), "2026-11-26T12:00:00.000001Z");
    ck_assert_str_eq(zq_json_str(r, "date_started", ""), "2026-11-26T12:00:00.500000Z");
    ck_assert_int_eq((int)zq_json_num(r, "result", 0), 3);
    cJSON_Delete(r);
    r = s_query("b2");
    ck_assert_str_eq(zq_json_str(r, "state", ""), "FAILURE");
    cJSON_Delete(r);
    r = s_query("b3");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "known")));
    ck_assert_str_eq(zq_json_str(r, "parent_id", ""), "b1");
    cJSON_Delete(r);
    /* the same batch again (the worker did not see the ACK): applied idempotently, ACKed */
    s_send(w.push, "BATCH", json);
    ack = fw_expect(&w, "ACK", WAIT_MS);
    ck_assert_ptr_nonnull(ack);
    cJSON_Delete(ack);
    r = s_call(s_cli, "INFO", "{}");
    const cJSON *st = cJSON_GetObjectItem(r, "stats");
    ck_assert_int_eq((int)zq_json_num(st, "succeeded", -1), 1);
    ck_assert_int_eq((int)zq_json_num(st, "failed", -1), 1);
    ck_assert_int_eq((int)zq_json_num(st, "duplicates", -1), 1);
    long bad = (long)zq_json_num(st, "bad_messages", -1);
    cJSON_Delete(r);
    /* a batch without a usable seq is dropped unconfirmed; one with bad messages is
     * confirmed (sending it again would not make them better), the bad ones counted */
    s_send(w.push, "BATCH", "{\"worker\":\"batch@h\",\"seq\":\"x\",\"messages\":[]}");
    s_send(w.push, "BATCH", "{\"worker\":\"batch@h\",\"seq\":9,\"messages\":[[\"STATE\"],5,"
                            "[\"BATCH\",{}]]}");
    ack = fw_expect(&w, "ACK", WAIT_MS);
    ck_assert_ptr_nonnull(ack);
    seqs = cJSON_GetObjectItem(ack, "seqs");
    ck_assert_int_eq(cJSON_GetArraySize(seqs), 1);
    ck_assert_int_eq((int)cJSON_GetArrayItem(seqs, 0)->valuedouble, 9);
    cJSON_Delete(ack);
    r = s_call(s_cli, "INFO", "{}");
    ck_assert_int_ge((long)zq_json_num(cJSON_GetObjectItem(r, "stats"), "bad_messages", -1),
                     bad + 4);
    cJSON_Delete(r);
    fw_close(&w);
}
END_TEST

START_TEST(test_adaptive_window)
{
    /* concurrency 1, prefetch 0: a window of 1 task until the broker sees that tasks are
     * short; then (adaptive) it sends many at once */
    for (int i = 0; i < 40; i++) {
        char json[128];
        snprintf(json, sizeof json, "{\"id\":\"aw%d\",\"task\":\"t.a\"}", i);
        s_submit(json);
    }
    fw_t w;
    cJSON_Delete(fw_hello(&w, "adapt@h", 1, 0, "\"prefetch_adaptive\":true"));
    cJSON *t = fw_task(&w, WAIT_MS);
    ck_assert_ptr_nonnull(t);
    ck_assert_ptr_null(fw_task(&w, QUIET_MS)); /* no runtime known yet: the window is 1 */
    fw_state(&w, zq_json_str(t, "id", ""), "SUCCESS", "\"result\":1,\"runtime\":0.0001");
    cJSON_Delete(t);
    int got = 0;
    while ((t = fw_task(&w, QUIET_MS * 2))) {
        got++;
        cJSON_Delete(t);
    }
    /* 20 ms of 0.1 ms tasks is 200: all 39 that are left */
    ck_assert_int_eq(got, 39);
    fw_close(&w);

    /* without prefetch_adaptive the window stays concurrency + prefetch */
    for (int i = 0; i < 5; i++) {
        char json[128];
        snprintf(json, sizeof json, "{\"id\":\"fx%d\",\"task\":\"t.a\",\"queue\":\"fq\"}", i);
        s_submit(json);
    }
    fw_t f;
    cJSON_Delete(fw_hello(&f, "fixed@h", 1, 0, "\"queues\":[\"fq\"]"));
    t = fw_task(&f, WAIT_MS);
    ck_assert_ptr_nonnull(t);
    fw_state(&f, zq_json_str(t, "id", ""), "SUCCESS", "\"result\":1,\"runtime\":0.0001");
    cJSON_Delete(t);
    t = fw_task(&f, WAIT_MS);
    ck_assert_ptr_nonnull(t);
    ck_assert_ptr_null(fw_task(&f, QUIET_MS));
    cJSON_Delete(t);
    fw_close(&f);
}
END_TEST

/* ---- batched dispatch (TASKS, docs/protocol.md §8) ---- */

/* The next dispatch message within ms, body parsed whatever it is (a TASKS body is an
 * array, which zq_msg_recv refuses). NULL if none came. Caller deletes it. */
static cJSON *fw_recv_any(void *pull, int ms, char *cmd, size_t cmdlen)
{
    zmq_pollitem_t it = {pull, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, ms) <= 0)
        return NULL;
    zmq_msg_t f[3];
    size_t n = 0;
    int more = 1;
    while (more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        ck_assert_int_ge(zmq_msg_recv(&part, pull, 0), 0);
        more = zmq_msg_more(&part);
        ck_assert_uint_lt(n, 3);
        f[n++] = part;
    }
    ck_assert_uint_eq(n, 3);
    ck_assert_uint_eq(zmq_msg_size(&f[0]), 5);
    ck_assert(!memcmp(zmq_msg_data(&f[0]), "ZQP01", 5));
    snprintf(cmd, cmdlen, "%.*s", (int)zmq_msg_size(&f[1]), (const char *)zmq_msg_data(&f[1]));
    cJSON *body = cJSON_ParseWithLength(zmq_msg_data(&f[2]), zmq_msg_size(&f[2]));
    ck_assert_msg(body != NULL, "%s: body is not JSON", cmd);
    for (size_t i = 0; i < n; i++)
        zmq_msg_close(&f[i]);
    return body;
}

/* The next dispatch message must be cmd with the tasks ids (TASK: one, TASKS: an array of
 * them in that order), all with redelivered false. */
static void fw_expect_batch(void *pull, const char *cmd, const char *const *ids, int n)
{
    char got[32];
    cJSON *b = fw_recv_any(pull, WAIT_MS, got, sizeof got);
    ck_assert_msg(b != NULL, "no %s", cmd);
    ck_assert_str_eq(got, cmd);
    if (!strcmp(cmd, "TASK")) {
        ck_assert_int_eq(n, 1);
        ck_assert_str_eq(zq_json_str(b, "id", ""), ids[0]);
        ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(b, "redelivered")));
    } else {
        ck_assert(cJSON_IsArray(b));
        ck_assert_int_eq(cJSON_GetArraySize(b), n);
        for (int i = 0; i < n; i++) {
            const cJSON *t = cJSON_GetArrayItem(b, i);
            ck_assert_str_eq(zq_json_str(t, "id", ""), ids[i]);
            ck_assert_str_eq(zq_json_str(t, "task", ""), "t.a");
            ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(t, "redelivered")));
        }
    }
    cJSON_Delete(b);
}

START_TEST(test_tasks_batch)
{
    /* tasks waiting when a batch_tasks worker with room for them connects: one pass, one
     * TASKS with all of them in queue order */
    static const char *const ids[] = {"b0", "b1", "b2", "b3", "b4", "b5", "b6"};
    for (int i = 0; i < 7; i++) {
        char json[128];
        snprintf(json, sizeof json, "{\"id\":\"%s\",\"task\":\"t.a\",\"args\":[%d]}", ids[i], i);
        s_submit(json);
    }
    fw_t w;
    cJSON_Delete(fw_hello(&w, "batch@h", 7, 0, "\"batch_tasks\":true"));
    fw_expect_batch(w.pull, "TASKS", ids, 7);
    char cmd[32];
    ck_assert_ptr_null(fw_recv_any(w.pull, QUIET_MS, cmd, sizeof cmd));
    /* one freed credit: one task, sent as TASK */
    s_submit("{\"id\":\"b7\",\"task\":\"t.a\"}");
    s_submit("{\"id\":\"b8\",\"task\":\"t.a\"}");
    fw_state(&w, "b0", "SUCCESS", "\"result\":null");
    static const char *const b7[] = {"b7"};
    fw_expect_batch(w.pull, "TASK", b7, 1);
    ck_assert_ptr_null(fw_recv_any(w.pull, QUIET_MS, cmd, sizeof cmd));
    fw_close(&w);
}
END_TEST

/* A broker driven by zq_broker_feed from the test's thread (no zq_broker_run), so that
 * zq_broker_fail_dispatch can be used. The client DEALER is "fz". */
static void setup_fed(void)
{
    zq_log_set_level(getenv("ZQ_TEST_DEBUG") ? ZQ_LOG_DEBUG : ZQ_LOG_ERROR);
    snprintf(s_tmp, sizeof s_tmp, "/tmp/check_broker.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(s_tmp));
    snprintf(s_fe, sizeof s_fe, "ipc://%s/fe", s_tmp);
    snprintf(s_data, sizeof s_data, "%s/data", s_tmp);
    s_ctx = zmq_ctx_new();
    zq_broker_config_t cfg;
    zq_broker_config_init(&cfg);
    cfg.frontend = s_fe;
    cfg.data_dir = s_data;
    cfg.sync = ZQ_STORE_SYNC_OFF;
    int err = -1;
    s_b = zq_broker_new(&cfg, &err);
    ck_assert_ptr_nonnull(s_b);
    s_cli = zmq_socket(s_ctx, ZMQ_DEALER);
    zq_socket_defaults(s_cli);
    zmq_setsockopt(s_cli, ZMQ_ROUTING_ID, "fz", 2);
    ck_assert_int_eq(zmq_connect(s_cli, s_fe), 0);
}

static void teardown_fed(void)
{
    zq_broker_destroy(&s_b);
    teardown();
}

/* Feed a frontend request; its REPLY (NULL if none came within ms). */
static cJSON *s_fed(const char *cmd, const char *json, int ms)
{
    const void *f[4] = {"fz", "ZQP01", cmd, json};
    size_t n[4] = {2, 5, strlen(cmd), strlen(json)};
    zq_broker_feed(s_b, 0, f, n, 4);
    return s_reply(s_cli, ms);
}

/* Fed broker: tasks s_submitted (ids[0..n-1], args of pad bytes), a batch_tasks worker
 * with room for all, the next dispatch send failing; returns once that send failed,
 * having checked that the tasks are all still queued. */
static void s_fed_fail_first(fw_t *w, const char *const *ids, int n, size_t pad)
{
    cJSON *r = NULL;
    for (int i = 0; i < 400 && !r; i++) /* the DEALER connects asynchronously */
        r = s_fed("INFO", "{}", 5);
    ck_assert_ptr_nonnull(r);
    cJSON_Delete(r);
    char *json = malloc(pad + 128), *fill = malloc(pad + 1);
    memset(fill, 'x', pad);
    fill[pad] = '\0';
    for (int i = 0; i < n; i++) {
        snprintf(json, pad + 128, "{\"id\":\"%s\",\"task\":\"t.a\",\"args\":[\"%s\"]}", ids[i],
                 fill);
        r = s_fed("SUBMIT", json, WAIT_MS);
        ck_assert_ptr_nonnull(r);
        ck_assert_ptr_null(s_errcode(r));
        cJSON_Delete(r);
    }
    free(json);
    free(fill);
    ck_assert_int_eq(zq_broker_fail_dispatch(s_b, 1), 0);
    memset(w, 0, sizeof *w);
    snprintf(w->name, sizeof w->name, "fed@h");
    char hello[256];
    snprintf(hello, sizeof hello,
             "{\"req\":1,\"name\":\"fed@h\",\"hostname\":\"h\",\"pid\":1,\"concurrency\":%d,"
             "\"prefetch\":0,\"batch_tasks\":true}",
             n);
    r = s_fed("HELLO", hello, WAIT_MS);
    ck_assert_ptr_nonnull(r);
    w->pull = s_sock(ZMQ_PULL, zq_json_str(r, "dispatch", ""));
    cJSON_Delete(r);
    /* each turn ends with a dispatch pass, tried once the channel is connected */
    for (int i = 0; i < 400 && zq_broker_fail_dispatch(s_b, -1); i++) {
        cJSON_Delete(s_fed("QUEUES", "{}", WAIT_MS));
        usleep(5000);
    }
    ck_assert_int_eq(zq_broker_fail_dispatch(s_b, -1), 0);
    zq_broker_stats_t st;
    zq_broker_stats(s_b, &st);
    ck_assert_int_eq(st.dispatched, 0);
    /* the reply is built before this turn's pass: what the failed one left */
    r = s_fed("QUEUES", "{}", WAIT_MS);
    const cJSON *q = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "queues"), 0);
    ck_assert_str_eq(zq_json_str(q, "name", ""), "celery");
    ck_assert_int_eq(zq_json_num(q, "ready", -1), n);
    ck_assert_int_eq(zq_json_num(q, "reserved", -1), 0);
    cJSON_Delete(r);
}

START_TEST(test_tasks_batch_eagain)
{
    /* a TASKS the channel does not take (EAGAIN): its tasks stay queued, in order, and go
     * in the next pass */
    static const char *const ids[] = {"e0", "e1", "e2", "e3", "e4"};
    fw_t w;
    s_fed_fail_first(&w, ids, 5, 1);
    fw_expect_batch(w.pull, "TASKS", ids, 5);
    zq_broker_stats_t st;
    zq_broker_stats(s_b, &st);
    ck_assert_int_eq(st.dispatched, 5);
    fw_close(&w);
}
END_TEST

START_TEST(test_tasks_batch_cap)
{
    /* 400 kB tasks: a TASKS is closed before it passes 1 MiB (two of them); the send that
     * closes the first fails: everything stays queued, in order */
    static const char *const ids[] = {"c0", "c1", "c2", "c3", "c4"};
    fw_t w;
    s_fed_fail_first(&w, ids, 5, 400000);
    fw_expect_batch(w.pull, "TASKS", ids, 2);
    fw_expect_batch(w.pull, "TASKS", ids + 2, 2);
    fw_expect_batch(w.pull, "TASK", ids + 4, 1);
    fw_close(&w);
}
END_TEST


/* Feed an upstream message [ZQP01][cmd][json]. */
static void s_fed_up(const char *cmd, const char *json)
{
    const void *f[3] = {"ZQP01", cmd, json};
    size_t n[3] = {5, strlen(cmd), strlen(json)};
    zq_broker_feed(s_b, 1, f, n, 3);
}

/* A worker BATCH, read as text (the worker's form) or from a tree (a \u escape), whose
 * commit fails: nothing of it is stored nor confirmed; it is applied again from what the
 * broker kept, then confirmed, and both forms store the same record. */
START_TEST(test_batch_text_retry)
{
    static const char *const ids[] = {"r0", "r1"};
    fw_t w;
    s_fed_fail_first(&w, ids, 2, 1);
    fw_expect_batch(w.pull, "TASKS", ids, 2);
#define S_BATCH(result)                                                                        \
    "{\"worker\":\"fed@h\",\"seq\":%d,\"messages\":[[\"STATE\",{\"id\":\"%s\","                     \
    "\"state\":\"SUCCESS\",\"worker\":\"fed@h\",\"timestamp\":\"2026-11-26T12:00:01Z\","              \
    "\"result\":[\"" result "\"],\"runtime\":0.5,\"received\":\"2026-11-26T12:00:00Z\","               \
    "\"started\":\"2026-11-26T12:00:00.5Z\",\"pid\":9}]]}"
    char *rec[2];
    for (int i = 0; i < 2; i++) {
        char json[1024];
        if (i == 0) /* "A" as text, then as "\u0041" */
            snprintf(json, sizeof json, S_BATCH("A"), i + 1, ids[i]);
        else
            snprintf(json, sizeof json, S_BATCH("\\u0041"), i + 1, ids[i]);
        ck_assert_int_eq(zq_broker_fail_commits(s_b, 1), 0);
        s_fed_up("BATCH", json);
        /* states alone may wait up to 20 ms for their commit */
        for (int k = 0; k < 400 && zq_broker_fail_commits(s_b, -1); k++) {
            usleep(5000);
            cJSON_Delete(s_fed("INFO", "{}", WAIT_MS));
        }
        ck_assert_int_eq(zq_broker_fail_commits(s_b, -1), 0);
        char cmd[32];
        cJSON *m;
        while ((m = fw_recv_any(w.pull, QUIET_MS, cmd, sizeof cmd))) { /* a resync may resend */
            ck_assert_str_ne(cmd, "ACK");
            cJSON_Delete(m);
        }
        char q[64];
        snprintf(q, sizeof q, "{\"id\":\"%s\"}", ids[i]);
        cJSON *r = s_fed("QUERY", q, WAIT_MS);
        ck_assert_str_ne(zq_json_str(r, "state", ""), "SUCCESS");
        cJSON_Delete(r);
        /* the kept batch is applied again 0.5 s later, on a later turn */
        cJSON *ack = NULL;
        for (int k = 0; k < 400 && !ack; k++) {
            cJSON_Delete(s_fed("INFO", "{}", WAIT_MS));
            ack = fw_recv_any(w.pull, 10, cmd, sizeof cmd);
            if (ack && strcmp(cmd, "ACK") != 0) {
                cJSON_Delete(ack);
                ack = NULL;
            }
        }
        ck_assert_msg(ack != NULL, "batch %d never confirmed", i + 1);
        ck_assert_str_eq(cmd, "ACK");
        ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(ack, "seqs")), 1);
        ck_assert_int_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(ack, "seqs"), 0)->valuedouble,
                         i + 1);
        cJSON_Delete(ack);
        r = s_fed("QUERY", q, WAIT_MS);
        ck_assert_str_eq(zq_json_str(r, "state", ""), "SUCCESS");
        ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "result"),
                                                                 0)),
                         "A");
        static const char *const differ[] = {"id", "req", "root_id", "date_sent"};
        for (size_t k = 0; k < sizeof differ / sizeof differ[0]; k++)
            cJSON_DeleteItemFromObject(r, differ[k]);
        rec[i] = cJSON_PrintUnformatted(r);
        cJSON_Delete(r);
    }
    ck_assert_str_eq(rec[0], rec[1]);
    cJSON_free(rec[0]);
    cJSON_free(rec[1]);
    zq_broker_stats_t st;
    zq_broker_stats(s_b, &st);
    ck_assert_int_eq(st.succeeded, 2);
    ck_assert_int_eq(st.commit_failures, 2);
    ck_assert_int_eq(st.bad_messages, 0);
    fw_close(&w);
}
END_TEST

/* A STATE of a BATCH that cannot be applied for lack of memory: nothing of it stored, the
 * batch left unconfirmed (not counted as a bad message); the worker's resend then applies
 * and confirms it. Nothing is lost. */
START_TEST(test_batch_unapplied_not_confirmed)
{
    static const char *const ids[] = {"m0"};
    fw_t w;
    s_fed_fail_first(&w, ids, 1, 1);
    fw_expect_batch(w.pull, "TASK", ids, 1);
    const char *json = "{\"worker\":\"fed@h\",\"seq\":1,\"messages\":[[\"STATE\",{\"id\":\"m0\","
                       "\"state\":\"SUCCESS\",\"worker\":\"fed@h\",\"result\":7}]]}";
    zq_broker_fail_state_memory(s_b, 1);
    s_fed_up("BATCH", json);
    char cmd[32];
    cJSON *m;
    for (int k = 0; k < 10; k++) { /* turns pass: no ACK comes */
        cJSON_Delete(s_fed("INFO", "{}", WAIT_MS));
        while ((m = fw_recv_any(w.pull, 10, cmd, sizeof cmd))) {
            ck_assert_str_ne(cmd, "ACK");
            cJSON_Delete(m);
        }
    }
    cJSON *r = s_fed("QUERY", "{\"id\":\"m0\"}", WAIT_MS);
    ck_assert_str_ne(zq_json_str(r, "state", ""), "SUCCESS");
    cJSON_Delete(r);
    zq_broker_stats_t st;
    zq_broker_stats(s_b, &st);
    ck_assert_int_eq(st.bad_messages, 0);
    /* the worker sends it again */
    s_fed_up("BATCH", json);
    cJSON *ack = NULL;
    for (int k = 0; k < 400 && !ack; k++) {
        cJSON_Delete(s_fed("INFO", "{}", WAIT_MS));
        ack = fw_recv_any(w.pull, 10, cmd, sizeof cmd);
        if (ack && strcmp(cmd, "ACK") != 0) {
            cJSON_Delete(ack);
            ack = NULL;
        }
    }
    ck_assert_msg(ack != NULL, "the batch sent again was never confirmed");
    cJSON_Delete(ack);
    r = s_fed("QUERY", "{\"id\":\"m0\"}", WAIT_MS);
    ck_assert_str_eq(zq_json_str(r, "state", ""), "SUCCESS");
    ck_assert_int_eq(zq_json_num(r, "result", 0), 7);
    cJSON_Delete(r);
    fw_close(&w);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("broker");
    TCase *tc = tcase_create("requests");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_submit_reply);
    tcase_add_test(tc, test_unknown_and_query_many);
    tcase_add_test(tc, test_malformed);
    tcase_add_test(tc, test_submits);
    tcase_add_test(tc, test_bad_upstream_dropped);
    tcase_add_test(tc, test_events);
    tcase_add_test(tc, test_tasks_and_stats);
    suite_add_tcase(s, tc);
    tc = tcase_create("dispatch");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_get_parked_then_answered);
    tcase_add_test(tc, test_submit_get_pushes_record);
    tcase_add_test(tc, test_fast_submit_same_task);
    tcase_add_test(tc, test_pushed_record_matches_query);
    tcase_add_test(tc, test_get_timeout);
    tcase_add_test(tc, test_many_parked_gets);
    tcase_add_test(tc, test_credit_limit);
    tcase_add_test(tc, test_most_free_slots);
    tcase_add_test(tc, test_queues_routing);
    tcase_add_test(tc, test_return_to_head);
    tcase_add_test(tc, test_subtask_upstream);
    tcase_add_test(tc, test_batch_acked_after_commit);
    tcase_add_test(tc, test_bye_waits_for_last_batch);
    tcase_add_test(tc, test_adaptive_window);
    tcase_add_test(tc, test_tasks_batch);
    suite_add_tcase(s, tc);
    tc = tcase_create("held acknowledgements");
    tcase_add_checked_fixture(tc, setup_long_ack_hold, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_held_ack_travels_with_record);
    tcase_add_test(tc, test_packed_replies);
    suite_add_tcase(s, tc);

    tc = tcase_create("fed");
    tcase_add_checked_fixture(tc, setup_fed, teardown_fed);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_tasks_batch_eagain);
    tcase_add_test(tc, test_tasks_batch_cap);
    tcase_add_test(tc, test_batch_text_retry);
    tcase_add_test(tc, test_batch_unapplied_not_confirmed);
    suite_add_tcase(s, tc);
    tc = tcase_create("memory");
    tcase_add_checked_fixture(tc, setup_small_memory, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_spill_order);
    suite_add_tcase(s, tc);
    tc = tcase_create("time");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_eta_lookahead);
    tcase_add_test(tc, test_expires);
    tcase_add_test(tc, test_retry_requeues);
    suite_add_tcase(s, tc);
    tc = tcase_create("control");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_revoke);
    tcase_add_test(tc, test_purge);
    tcase_add_test(tc, test_hello_heartbeat_bye);
    suite_add_tcase(s, tc);
    tc = tcase_create("recovery");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_restart_loses_none);
    tcase_add_test(tc, test_restart_with_tasks_in_flight);
    tcase_add_test(tc, test_restart_hold_and_late_result);
    tcase_add_test(tc, test_store_full);
    suite_add_tcase(s, tc);
    tc = tcase_create("liveness");
    tcase_add_checked_fixture(tc, setup_fast_heartbeat, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_dead_worker);
    tcase_add_test(tc, test_released_after_dead);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(s_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
