/*
 * check_control - the worker's control handlers (worker/zq_control.c) against a fake worker:
 * every inspect method's reply shape, the counters behind stats, errors, the size cap, and
 * one round trip over a real (inproc) ROUTER.
 *
 * Fixture plugin: $ZQ_BUILDDIR/plugins/tasks.so (or the build directory compiled in).
 */
#include "config.h"
#include "zq.h"
#include "zq_control.h"
#include "zq_log.h"
#include "zq_proto.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#define NJOBS_MAX 256

/* The fake worker the handlers read through the callbacks. */
typedef struct {
    zq_control_job_t jobs[NJOBS_MAX];
    zq_request_t reqs[NJOBS_MAX];
    size_t n;
    const char *revoked[8];
    size_t nrev;
    zq_control_live_t live;
    int live_calls;
} s_src_t;

static s_src_t s_src;
static zq_loader_t *s_loader;
static zq_control_t *s_ctl;
static cJSON *s_owned[NJOBS_MAX * 2]; /* args/kwargs of the fake requests */
static size_t s_nowned;
static const char *const s_queues[] = {"celery", "hipri"};

/* The fake request behind a job, writable (the tests own it). */
#define REQ(j) ((zq_request_t *)(j)->req)

static const char *s_built(const char *rel)
{
    static char buf[4096];
    const char *d = getenv("ZQ_BUILDDIR");
    snprintf(buf, sizeof buf, "%s/%s", d && *d ? d : ZQ_BUILDDIR, rel);
    return buf;
}

static cJSON *s_keep(cJSON *v)
{
    ck_assert_ptr_nonnull(v);
    s_owned[s_nowned++] = v;
    return v;
}

/* Add a held job. */
static zq_control_job_t *s_job(const char *id, const char *task, const char *args,
                               zq_control_place_t place)
{
    ck_assert_uint_lt(s_src.n, NJOBS_MAX);
    zq_request_t *r = &s_src.reqs[s_src.n];
    memset(r, 0, sizeof *r);
    r->id = id;
    r->task = task;
    r->args = s_keep(cJSON_Parse(args));
    r->kwargs = s_keep(cJSON_CreateObject());
    r->queue = "celery";
    zq_control_job_t *j = &s_src.jobs[s_src.n++];
    memset(j, 0, sizeof *j);
    j->req = r;
    j->place = place;
    if (place == ZQ_CONTROL_ACTIVE) {
        j->time_start = 1795697322.5;
        j->pid = 4242;
    }
    return j;
}

static void s_each_job(void *src, zq_control_job_fn *fn, void *arg)
{
    s_src_t *s = src;
    for (size_t i = 0; i < s->n; i++)
        fn(arg, &s->jobs[i]);
}

static int s_find_job(void *src, const char *id, zq_control_job_t *out)
{
    s_src_t *s = src;
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->jobs[i].req->id, id)) {
            *out = s->jobs[i];
            return 1;
        }
    return 0;
}

static void s_each_revoked(void *src, zq_control_id_fn *fn, void *arg)
{
    s_src_t *s = src;
    for (size_t i = 0; i < s->nrev; i++)
        fn(arg, s->revoked[i]);
}

static void s_live(void *src, zq_control_live_t *out)
{
    s_src_t *s = src;
    s->live_calls++;
    *out = s->live;
}

static void s_setup(void)
{
    zq_log_set_level(ZQ_LOG_ERROR);
    memset(&s_src, 0, sizeof s_src);
    s_src.live.registered = 1;
    s_src.live.heartbeat = 0.5;
    s_src.live.processed = 7;
    s_src.live.broker_id = "b-1";
    s_loader = zq_loader_new();
    ck_assert_ptr_nonnull(s_loader);
    ck_assert_int_eq(zq_loader_load_file(s_loader, s_built("plugins/tasks.so")), ZQ_OK);
    zq_control_config_t cc = {
        .name = "w1@test",
        .broker_url = "tcp://127.0.0.1:7460",
        .plugins_dir = "./plugins",
        .queues = s_queues,
        .nqueues = 2,
        .pool_kind = ZQ_POOL_THREADS,
        .concurrency = 2,
        .prefetch = 3,
        .heartbeat = 2,
        .time_limit = 30,
        .soft_time_limit = 0,
        .endpoint = "inproc://check-control",
        .started = 1000,
        .loader = s_loader,
        .revokes_max = 50000,
        .each_job = s_each_job,
        .find_job = s_find_job,
        .each_revoked = s_each_revoked,
        .live = s_live,
        .src = &s_src,
    };
    s_ctl = zq_control_new(&cc);
    ck_assert_ptr_nonnull(s_ctl);
}

static void s_teardown(void)
{
    zq_control_destroy(&s_ctl);
    ck_assert_ptr_null(s_ctl);
    zq_loader_destroy(&s_loader);
    for (size_t i = 0; i < s_nowned; i++)
        cJSON_Delete(s_owned[i]);
    s_nowned = 0;
}

/* INSPECT method (with arguments as JSON text or NULL): the whole REPLY body. */
static cJSON *s_ask(const char *method, const char *arguments)
{
    char body[1024];
    snprintf(body, sizeof body, "{\"req\": 9, \"method\": \"%s\"%s%s}", method,
             arguments ? ", \"arguments\": " : "", arguments ? arguments : "");
    cJSON *b = cJSON_Parse(body);
    ck_assert_ptr_nonnull(b);
    cJSON *r = zq_control_handle(s_ctl, ZQ_CMD_INSPECT, b);
    cJSON_Delete(b);
    ck_assert_ptr_nonnull(r);
    return r;
}

/* The "reply" of a successful answer, checking the envelope. */
static const cJSON *s_reply(const cJSON *r, const char *method)
{
    ck_assert_ptr_null(cJSON_GetObjectItem(r, "error"));
    ck_assert_int_eq((int)cJSON_GetObjectItem(r, "req")->valuedouble, 9);
    ck_assert_str_eq(cJSON_GetObjectItem(r, "worker")->valuestring, "w1@test");
    ck_assert_str_eq(cJSON_GetObjectItem(r, "method")->valuestring, method);
    const cJSON *v = cJSON_GetObjectItem(r, "reply");
    ck_assert_ptr_nonnull(v);
    return v;
}

static char *s_text(const cJSON *v)
{
    static char buf[8192];
    char *t = cJSON_PrintUnformatted(v);
    snprintf(buf, sizeof buf, "%s", t ? t : "(null)");
    cJSON_free(t);
    return buf;
}

static const char *s_err_code(const cJSON *r)
{
    const cJSON *e = cJSON_GetObjectItem(r, "error");
    ck_assert_ptr_nonnull(e);
    return cJSON_GetObjectItem(e, "code")->valuestring;
}

static const char *s_err_msg(const cJSON *r)
{
    return cJSON_GetObjectItem(cJSON_GetObjectItem(r, "error"), "message")->valuestring;
}

/* ---------------------------------------------------------------------------------------
 * Methods
 */
START_TEST(test_ping_registered_queues)
{
    cJSON *r = s_ask("ping", NULL);
    ck_assert_str_eq(s_text(s_reply(r, "ping")), "{\"ok\":\"pong\"}");
    cJSON_Delete(r);
    r = s_ask("registered", NULL);
    const cJSON *v = s_reply(r, "registered");
    ck_assert(cJSON_IsArray(v));
    ck_assert_int_eq(cJSON_GetArraySize(v), (int)zq_loader_task_count(s_loader));
    ck_assert_str_eq(cJSON_GetArrayItem(v, 0)->valuestring, "tasks.add");
    cJSON_Delete(r);
    r = s_ask("active_queues", NULL);
    ck_assert_str_eq(s_text(s_reply(r, "active_queues")),
                     "[{\"name\":\"celery\",\"exchange\":{\"name\":\"celery\",\"type\":\"direct\"},"
                     "\"routing_key\":\"celery\"},{\"name\":\"hipri\",\"exchange\":{\"name\":"
                     "\"hipri\",\"type\":\"direct\"},\"routing_key\":\"hipri\"}]");
    cJSON_Delete(r);
}
END_TEST

START_TEST(test_active_reserved_shapes)
{
    s_job("a1", "tasks.sleep", "[25]", ZQ_CONTROL_ACTIVE);
    zq_control_job_t *late = s_job("a2", "tasks.sleep", "[5]", ZQ_CONTROL_ACTIVE);
    late->acks_late = 1;
    REQ(s_job("r1", "tasks.add", "[1, 1]", ZQ_CONTROL_RESERVED))->redelivered = 1;
    s_job("r2", "tasks.add", "[2, 2]", ZQ_CONTROL_RESERVED);
    s_job("s1", "tasks.add", "[3, 3]", ZQ_CONTROL_SCHEDULED);

    cJSON *r = s_ask("active", NULL);
    const cJSON *v = s_reply(r, "active");
    ck_assert_int_eq(cJSON_GetArraySize(v), 2);
    /* Celery's Request.info(), key for key */
    ck_assert_str_eq(s_text(cJSON_GetArrayItem(v, 0)),
                     "{\"id\":\"a1\",\"name\":\"tasks.sleep\",\"args\":[25],\"kwargs\":{},"
                     "\"type\":\"tasks.sleep\",\"hostname\":\"w1@test\",\"time_start\":"
                     "1795697322.5,\"acknowledged\":true,\"delivery_info\":{\"exchange\":\"\","
                     "\"routing_key\":\"celery\",\"priority\":0,\"redelivered\":false},"
                     "\"worker_pid\":4242}");
    /* acks_late: not acknowledged while it runs */
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(cJSON_GetArrayItem(v, 1), "acknowledged")));
    cJSON_Delete(r);

    r = s_ask("reserved", NULL);
    v = s_reply(r, "reserved");
    ck_assert_int_eq(cJSON_GetArraySize(v), 2);
    const cJSON *first = cJSON_GetArrayItem(v, 0);
    ck_assert_str_eq(cJSON_GetObjectItem(first, "id")->valuestring, "r1");
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(first, "time_start")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(first, "worker_pid")));
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(first, "acknowledged")));
    ck_assert(cJSON_IsTrue(
        cJSON_GetObjectItem(cJSON_GetObjectItem(first, "delivery_info"), "redelivered")));
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(v, 1), "id")->valuestring, "r2");
    cJSON_Delete(r);
}
END_TEST

START_TEST(test_scheduled_sorted_by_eta)
{
    zq_control_job_t *late = s_job("late", "tasks.add", "[1, 2]", ZQ_CONTROL_SCHEDULED);
    REQ(late)->eta = "2030-01-01T00:00:10.000000Z";
    REQ(late)->eta_t = 1893456010;
    REQ(late)->priority = 6;
    zq_control_job_t *soon = s_job("soon", "tasks.add", "[3, 4]", ZQ_CONTROL_SCHEDULED);
    REQ(soon)->eta = NULL; /* no text: formatted from eta_t */
    REQ(soon)->eta_t = 1893456000;
    s_job("busy", "tasks.sleep", "[1]", ZQ_CONTROL_ACTIVE);

    cJSON *r = s_ask("scheduled", NULL);
    const cJSON *v = s_reply(r, "scheduled");
    ck_assert_int_eq(cJSON_GetArraySize(v), 2);
    const cJSON *a = cJSON_GetArrayItem(v, 0), *b = cJSON_GetArrayItem(v, 1);
    ck_assert_str_eq(cJSON_GetObjectItem(a, "eta")->valuestring, "2030-01-01T00:00:00.000000Z");
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(a, "request"), "id")->valuestring,
                     "soon");
    ck_assert_str_eq(cJSON_GetObjectItem(b, "eta")->valuestring, "2030-01-01T00:00:10.000000Z");
    ck_assert_int_eq((int)cJSON_GetObjectItem(b, "priority")->valuedouble, 6);
    /* {"eta", "priority", "request"} in that order, as Celery prints it */
    ck_assert_str_eq(a->child->string, "eta");
    ck_assert_str_eq(a->child->next->string, "priority");
    ck_assert_str_eq(a->child->next->next->string, "request");
    cJSON_Delete(r);
}
END_TEST

START_TEST(test_revoked_and_query_task)
{
    s_src.revoked[s_src.nrev++] = "x1";
    s_src.revoked[s_src.nrev++] = "x2";
    cJSON *r = s_ask("revoked", NULL);
    ck_assert_str_eq(s_text(s_reply(r, "revoked")), "[\"x1\",\"x2\"]");
    cJSON_Delete(r);

    s_job("a1", "tasks.sleep", "[25]", ZQ_CONTROL_ACTIVE);
    s_job("r1", "tasks.add", "[0, 0]", ZQ_CONTROL_RESERVED);
    REQ(s_job("s1", "tasks.add", "[2, 2]", ZQ_CONTROL_SCHEDULED))->eta_t = 2e9;
    r = s_ask("query_task", "{\"ids\": [\"a1\", \"r1\", \"s1\", \"gone\", \"a1\"]}");
    const cJSON *v = s_reply(r, "query_task");
    ck_assert_int_eq(cJSON_GetArraySize(v), 3);
    const cJSON *a = cJSON_GetObjectItem(v, "a1");
    ck_assert_str_eq(cJSON_GetArrayItem(a, 0)->valuestring, "active");
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(a, 1), "name")->valuestring,
                     "tasks.sleep");
    ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(v, "r1"), 0)->valuestring, "reserved");
    ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(v, "s1"), 0)->valuestring,
                     "scheduled");
    ck_assert_ptr_null(cJSON_GetObjectItem(v, "gone")); /* Celery: not held, not listed */
    cJSON_Delete(r);
    r = s_ask("query_task", "{\"ids\": [\"nothing\"]}");
    ck_assert_str_eq(s_text(s_reply(r, "query_task")), "{}");
    cJSON_Delete(r);
}
END_TEST

START_TEST(test_stats_counters)
{
    cJSON *r = s_ask("stats", NULL);
    const cJSON *v = s_reply(r, "stats");
    ck_assert_str_eq(s_text(cJSON_GetObjectItem(v, "total")), "{}");
    cJSON_Delete(r);

    const zq_task_entry_t *add = zq_loader_find(s_loader, "tasks.add");
    const zq_task_entry_t *div = zq_loader_find(s_loader, "tasks.div");
    for (int i = 0; i < 5; i++) {
        zq_control_task_started(s_ctl, add);
        zq_control_task_done(s_ctl, ZQ_OUT_SUCCESS);
    }
    zq_control_task_started(s_ctl, div);
    zq_control_task_done(s_ctl, ZQ_OUT_RETRY);
    zq_control_task_started(s_ctl, div);
    zq_control_task_done(s_ctl, ZQ_OUT_FAILURE);
    zq_control_task_started(s_ctl, add);
    zq_control_task_done(s_ctl, ZQ_OUT_REVOKED);
    zq_task_entry_t stranger = *add; /* not from this loader: ignored */
    zq_control_task_started(s_ctl, &stranger);
    zq_control_task_started(NULL, add);
    zq_control_task_done(NULL, ZQ_OUT_SUCCESS);

    r = s_ask("stats", NULL);
    v = s_reply(r, "stats");
    ck_assert_str_eq(s_text(cJSON_GetObjectItem(v, "total")), "{\"tasks.add\":6,\"tasks.div\":2}");
    ck_assert_int_eq((int)cJSON_GetObjectItem(v, "succeeded")->valuedouble, 5);
    ck_assert_int_eq((int)cJSON_GetObjectItem(v, "retried")->valuedouble, 1);
    ck_assert_int_eq((int)cJSON_GetObjectItem(v, "failed")->valuedouble, 1);
    ck_assert_int_eq((int)cJSON_GetObjectItem(v, "revoked")->valuedouble, 1);
    ck_assert_int_eq((int)cJSON_GetObjectItem(v, "processed")->valuedouble, 7);
    ck_assert_int_eq((int)cJSON_GetObjectItem(v, "pid")->valuedouble, (int)getpid());
    ck_assert(cJSON_GetObjectItem(v, "uptime")->valuedouble > 1000);
    ck_assert_int_eq((int)cJSON_GetObjectItem(v, "prefetch_count")->valuedouble, 5);
    const cJSON *pool = cJSON_GetObjectItem(v, "pool");
    ck_assert_str_eq(cJSON_GetObjectItem(pool, "implementation")->valuestring, "threads");
    ck_assert_int_eq((int)cJSON_GetObjectItem(pool, "max-concurrency")->valuedouble, 2);
    /* no pool given: the worker's own process */
    char own[32];
    snprintf(own, sizeof own, "[%d]", (int)getpid());
    ck_assert_str_eq(s_text(cJSON_GetObjectItem(pool, "processes")), own);
    ck_assert_str_eq(s_text(cJSON_GetObjectItem(pool, "timeouts")), "[0,30]");
    const cJSON *broker = cJSON_GetObjectItem(v, "broker");
    ck_assert_str_eq(s_text(broker), "{\"url\":\"tcp://127.0.0.1:7460\",\"transport\":\"tcp\","
                                     "\"hostname\":\"127.0.0.1\",\"port\":7460,\"heartbeat\":0.5,"
                                     "\"connected\":true,\"broker_id\":\"b-1\"}");
    const cJSON *ru = cJSON_GetObjectItem(v, "rusage");
    const char *keys[] = {"utime", "stime", "maxrss", "minflt", "majflt", "nvcsw", "nivcsw"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        ck_assert_msg(cJSON_IsNumber(cJSON_GetObjectItem(ru, keys[i])), "rusage.%s", keys[i]);
    ck_assert(cJSON_GetObjectItem(ru, "maxrss")->valuedouble > 0);
    ck_assert_int_gt(s_src.live_calls, 0);
    cJSON_Delete(r);
}
END_TEST

START_TEST(test_conf)
{
    cJSON *r = s_ask("conf", NULL);
    const cJSON *v = s_reply(r, "conf");
    ck_assert_str_eq(cJSON_GetObjectItem(v, "broker_url")->valuestring, "tcp://127.0.0.1:7460");
    ck_assert_str_eq(cJSON_GetObjectItem(v, "worker_name")->valuestring, "w1@test");
    ck_assert_str_eq(cJSON_GetObjectItem(v, "worker_pool")->valuestring, "threads");
    ck_assert_str_eq(s_text(cJSON_GetObjectItem(v, "worker_queues")), "[\"celery\",\"hipri\"]");
    ck_assert_int_eq((int)cJSON_GetObjectItem(v, "worker_concurrency")->valuedouble, 2);
    ck_assert_int_eq((int)cJSON_GetObjectItem(v, "worker_prefetch")->valuedouble, 3);
    ck_assert(cJSON_GetObjectItem(v, "broker_heartbeat")->valuedouble == 0.5);
    ck_assert(cJSON_GetObjectItem(v, "task_time_limit")->valuedouble == 30);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(v, "task_soft_time_limit")));
    ck_assert_str_eq(cJSON_GetObjectItem(v, "worker_control")->valuestring, ""); /* not bound */
    ck_assert_str_eq(cJSON_GetObjectItem(v, "worker_log_level")->valuestring, "ERROR");
    cJSON_Delete(r);
}
END_TEST

/* ---------------------------------------------------------------------------------------
 * Errors
 */
START_TEST(test_errors)
{
    cJSON *body = cJSON_Parse("{\"req\": 3, \"method\": \"ping\"}");
    cJSON *r = zq_control_handle(s_ctl, "PING", body);
    ck_assert_str_eq(s_err_code(r), "EUNKNOWNCMD");
    ck_assert_int_eq((int)cJSON_GetObjectItem(r, "req")->valuedouble, 3);
    cJSON_Delete(r);
    cJSON_Delete(body);

    body = cJSON_Parse("{\"req\": 4}");
    r = zq_control_handle(s_ctl, ZQ_CMD_INSPECT, body);
    ck_assert_str_eq(s_err_code(r), "EINVAL");
    ck_assert_ptr_nonnull(strstr(s_err_msg(r), "method: missing (one of active,"));
    cJSON_Delete(r);
    cJSON_Delete(body);

    r = zq_control_handle(s_ctl, ZQ_CMD_INSPECT, NULL);
    ck_assert_str_eq(s_err_code(r), "EINVAL");
    ck_assert_ptr_null(cJSON_GetObjectItem(r, "req"));
    cJSON_Delete(r);

    r = s_ask("frobnicate", NULL);
    ck_assert_str_eq(s_err_code(r), "EINVAL");
    ck_assert_ptr_nonnull(strstr(s_err_msg(r), "unknown method 'frobnicate'"));
    cJSON_Delete(r);
    r = s_ask("stats", "[1]");
    ck_assert_str_eq(s_err_msg(r), "INSPECT: arguments: must be an object");
    cJSON_Delete(r);
    r = s_ask("query_task", NULL);
    ck_assert_str_eq(s_err_msg(r),
                     "INSPECT: query_task: arguments.ids: must be an array of 1-10000 task ids");
    cJSON_Delete(r);
    r = s_ask("query_task", "{\"ids\": []}");
    ck_assert_str_eq(s_err_code(r), "EINVAL");
    cJSON_Delete(r);
    r = s_ask("query_task", "{\"ids\": [\"ok\", \"has space\"]}");
    ck_assert_str_eq(s_err_msg(r), "INSPECT: query_task: arguments.ids: every entry must be a task id");
    cJSON_Delete(r);
    r = s_ask("query_task", "{\"ids\": [5]}");
    ck_assert_str_eq(s_err_code(r), "EINVAL");
    cJSON_Delete(r);
    ck_assert_ptr_null(zq_control_handle(NULL, ZQ_CMD_INSPECT, NULL));
}
END_TEST

START_TEST(test_methods_table)
{
    /* every advertised method answers */
    for (const char *const *m = zq_control_methods; *m; m++) {
        cJSON *r = s_ask(*m, !strcmp(*m, "query_task") ? "{\"ids\": [\"x\"]}" : NULL);
        s_reply(r, *m);
        cJSON_Delete(r);
    }
}
END_TEST

START_TEST(test_reply_size_cap)
{
    /* 64 tasks with 100 kB of arguments each: more than ZQ_CONTROL_MAX_REPLY */
    static char big[100 * 1024 + 8];
    static char ids[64][16];
    memset(big, 'x', sizeof big);
    big[0] = '[';
    big[1] = '"';
    big[sizeof big - 3] = '"';
    big[sizeof big - 2] = ']';
    big[sizeof big - 1] = '\0';
    for (int i = 0; i < 64; i++) {
        snprintf(ids[i], sizeof ids[i], "big-%d", i);
        s_job(ids[i], "tasks.add", big, ZQ_CONTROL_RESERVED);
    }
    cJSON *r = s_ask("reserved", NULL);
    const cJSON *v = s_reply(r, "reserved");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "truncated")));
    int n = cJSON_GetArraySize(v);
    ck_assert_int_gt(n, 10);
    ck_assert_int_lt(n, 64);
    char *txt = cJSON_PrintUnformatted(r);
    ck_assert_uint_le(strlen(txt), ZQ_CONTROL_MAX_REPLY + 4096);
    cJSON_free(txt);
    cJSON_Delete(r);
    r = s_ask("ping", NULL);
    ck_assert_ptr_null(cJSON_GetObjectItem(r, "truncated"));
    cJSON_Delete(r);
}
END_TEST

/* ---------------------------------------------------------------------------------------
 * The socket: bind, one round trip, a malformed request
 */
START_TEST(test_socket_round_trip)
{
    void *ctx = zmq_ctx_new();
    ck_assert_str_eq(zq_control_endpoint(s_ctl), "");
    ck_assert_ptr_null(zq_control_socket(s_ctl));
    ck_assert_int_eq(zq_control_bind(s_ctl, ctx), ZQ_OK);
    ck_assert_str_eq(zq_control_endpoint(s_ctl), "inproc://check-control");
    void *d = zmq_socket(ctx, ZMQ_DEALER);
    ck_assert_int_eq(zmq_connect(d, "inproc://check-control"), 0);
    const char *req = "{\"req\":1,\"method\":\"ping\"}";
    ck_assert_int_eq(zq_msg_send_raw(d, NULL, 0, ZQ_CMD_INSPECT, req, strlen(req), 0), ZQ_OK);
    /* a malformed one (two frames): answered EPROTO, since the sender is known */
    ck_assert_int_ge(zmq_send(d, "ZQP01", 5, ZMQ_SNDMORE), 0);
    ck_assert_int_ge(zmq_send(d, "INSPECT", 7, 0), 0);
    /* serve whatever has arrived and collect the replies, both in the order sent: the
     * second request may reach the ROUTER in the same turn or a later one */
    cJSON *replies[2] = {NULL, NULL};
    int got = 0;
    for (int turn = 0; got < 2 && turn < 100; turn++) {
        zmq_pollitem_t items[2] = {{zq_control_socket(s_ctl), 0, ZMQ_POLLIN, 0},
                                   {d, 0, ZMQ_POLLIN, 0}};
        ck_assert_int_ge(zmq_poll(items, 2, 100), 0);
        if (items[0].revents & ZMQ_POLLIN)
            zq_control_serve(s_ctl);
        while (got < 2) {
            zq_msg_t m;
            char err[256];
            if (zq_msg_recv(d, 0, &m, ZMQ_DONTWAIT, err, sizeof err) != ZQ_OK)
                break;
            ck_assert_str_eq(m.cmd, ZQ_CMD_REPLY);
            replies[got++] = m.body;
            m.body = NULL;
        }
    }
    ck_assert_int_eq(got, 2);
    ck_assert_str_eq(s_text(replies[0]),
                     "{\"req\":1,\"worker\":\"w1@test\",\"method\":\"ping\",\"reply\":{\"ok\":"
                     "\"pong\"}}");
    ck_assert_str_eq(s_err_code(replies[1]), "EPROTO");
    cJSON_Delete(replies[0]);
    cJSON_Delete(replies[1]);
    /* and counted */
    cJSON *st = s_ask("stats", NULL);
    ck_assert_int_eq((int)cJSON_GetObjectItem(s_reply(st, "stats"), "bad_messages")->valuedouble, 1);
    cJSON_Delete(st);
    /* nothing waiting: returns at once */
    zq_control_serve(s_ctl);
    zmq_close(d);
    zq_control_destroy(&s_ctl); /* closes its socket before the context goes */
    zmq_ctx_term(ctx);
}
END_TEST

START_TEST(test_bind_errors)
{
    zq_control_config_t cc = {.name = "w@x", .endpoint = "nonsense://here"};
    zq_control_t *c = zq_control_new(&cc);
    ck_assert_ptr_nonnull(c);
    void *ctx = zmq_ctx_new();
    ck_assert_int_eq(zq_control_bind(c, ctx), ZQ_EINVAL);
    ck_assert_ptr_null(zq_control_socket(c));
    ck_assert_int_eq(zq_control_bind(NULL, ctx), ZQ_EINVAL);
    zq_control_destroy(&c);
    /* the default: loopback, an ephemeral port */
    zq_control_config_t dc = {.name = "w@x"};
    c = zq_control_new(&dc);
    ck_assert_int_eq(zq_control_bind(c, ctx), ZQ_OK);
    ck_assert_int_eq(strncmp(zq_control_endpoint(c), "tcp://127.0.0.1:", 16), 0);
    /* a second control socket on the same port is refused with ZQ_EIO */
    zq_control_config_t same = {.name = "w@y", .endpoint = zq_control_endpoint(c)};
    zq_control_t *c2 = zq_control_new(&same);
    ck_assert_int_eq(zq_control_bind(c2, ctx), ZQ_EIO);
    zq_control_destroy(&c2);
    zq_control_destroy(&c);
    zq_control_destroy(NULL);
    zq_control_config_t bad = {.name = NULL};
    ck_assert_ptr_null(zq_control_new(&bad));
    ck_assert_ptr_null(zq_control_new(NULL));
    zmq_ctx_term(ctx);
}
END_TEST

static Suite *zq_control_suite(void)
{
    Suite *s = suite_create("zq_control");
    TCase *tc = tcase_create("Methods");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_add_test(tc, test_ping_registered_queues);
    tcase_add_test(tc, test_active_reserved_shapes);
    tcase_add_test(tc, test_scheduled_sorted_by_eta);
    tcase_add_test(tc, test_revoked_and_query_task);
    tcase_add_test(tc, test_stats_counters);
    tcase_add_test(tc, test_conf);
    tcase_add_test(tc, test_methods_table);
    suite_add_tcase(s, tc);

    tc = tcase_create("Errors");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_reply_size_cap);
    suite_add_tcase(s, tc);

    tc = tcase_create("Socket");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_add_test(tc, test_socket_round_trip);
    tcase_add_test(tc, test_bind_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(zq_control_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
