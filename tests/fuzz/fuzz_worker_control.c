/*
 * fuzz_worker_control - the worker's control socket (docs/protocol.md §8 "Control",
 * docs/management.md): INSPECT with every method and its arguments (query_task ids...),
 * other commands and malformed frames, sent from a DEALER to the real control module
 * (zq_control_serve on an inproc:// ROUTER) that reads a fake worker holding a few tasks.
 * Each message of the input is one request's frames [ZQP01][CMD][body] (the ROUTER adds the
 * identity). Checked: every request is answered by exactly one well-formed REPLY (the
 * protocol answers even malformed requests whose sender is known).
 */
#include "config.h"
#include "fuzz.h"
#include "zq.h"
#include "zq_control.h"
#include "zq_loader.h"
#include "zq_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#ifndef FZ_PLUGINS_DIR
#define FZ_PLUGINS_DIR ZQ_BUILDDIR "/plugins"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NJOBS 4

typedef struct {
    zq_control_job_t jobs[NJOBS];
    zq_request_t reqs[NJOBS];
    cJSON *args[NJOBS], *kwargs[NJOBS];
} s_src_t;

static s_src_t s_src;
static zq_loader_t *s_loader;
static zq_control_t *s_ctl;
static void *s_ctx, *s_dealer;
static const char *const s_queues[] = {"celery", "q2"};
static const char *const s_revoked[] = {"r1", "r2", "t-revoked"};

static void s_each_job(void *src, zq_control_job_fn *fn, void *arg)
{
    s_src_t *s = src;
    for (size_t i = 0; i < NJOBS; i++)
        fn(arg, &s->jobs[i]);
}

static int s_find_job(void *src, const char *id, zq_control_job_t *out)
{
    s_src_t *s = src;
    for (size_t i = 0; i < NJOBS; i++)
        if (!strcmp(s->jobs[i].req->id, id)) {
            *out = s->jobs[i];
            return 1;
        }
    return 0;
}

static void s_each_revoked(void *src, zq_control_id_fn *fn, void *arg)
{
    for (size_t i = 0; i < sizeof s_revoked / sizeof s_revoked[0]; i++)
        fn(arg, s_revoked[i]);
}

static void s_live(void *src, zq_control_live_t *out)
{
    memset(out, 0, sizeof *out);
    out->registered = 1;
    out->heartbeat = 2;
    out->processed = 12;
    out->broker_id = "b-fuzz";
}

static void s_job(size_t i, const char *id, const char *task, const char *args,
                  const char *kwargs, zq_control_place_t place, double eta)
{
    zq_request_t *r = &s_src.reqs[i];
    memset(r, 0, sizeof *r);
    r->id = id;
    r->task = task;
    r->args = s_src.args[i] = cJSON_Parse(args);
    r->kwargs = s_src.kwargs[i] = cJSON_Parse(kwargs);
    r->queue = "celery";
    r->root_id = id;
    r->hostname = "w1@fuzz";
    r->eta_t = eta;
    r->eta = eta > 0 ? "2030-01-01T00:00:00.000000Z" : NULL;
    zq_control_job_t *j = &s_src.jobs[i];
    memset(j, 0, sizeof *j);
    j->req = r;
    j->place = place;
    if (place == ZQ_CONTROL_ACTIVE) {
        j->time_start = 1795697322.5;
        j->pid = 4242;
        j->acks_late = 1;
    }
}

static void s_close(void)
{
    zmq_close(s_dealer);
    zq_control_destroy(&s_ctl);
    zmq_ctx_term(s_ctx);
    zq_loader_destroy(&s_loader);
    for (size_t i = 0; i < NJOBS; i++) {
        cJSON_Delete(s_src.args[i]);
        cJSON_Delete(s_src.kwargs[i]);
    }
}

static void s_init(void)
{
    fz_quiet();
    s_job(0, "t1", "tasks.add", "[2,2]", "{}", ZQ_CONTROL_ACTIVE, 0);
    s_job(1, "t2", "tasks.sleep", "[\"a \\\"quoted\\\" \\u00e9 string\", null, true]",
          "{\"k\": [1.5, {\"x\": -1e300}]}", ZQ_CONTROL_RESERVED, 0);
    s_job(2, "t3", "tasks.add", "[]", "{}", ZQ_CONTROL_SCHEDULED, 1893456000.0);
    s_job(3, "t4", "tasks.unknown", "[1e308, -0.0, 123456789012345678]", "{\"\": \"\"}",
          ZQ_CONTROL_RESERVED, 0);
    s_loader = zq_loader_new();
    const char *d = getenv("ZQ_FUZZ_PLUGINS");
    zq_loader_load_dir(s_loader, d && *d ? d : FZ_PLUGINS_DIR);
    zq_control_config_t cc = {
        .name = "w1@fuzz",
        .broker_url = "tcp://127.0.0.1:7460",
        .plugins_dir = "./plugins",
        .queues = s_queues,
        .nqueues = 2,
        .pool_kind = ZQ_POOL_PREFORK,
        .concurrency = 2,
        .prefetch = 1,
        .heartbeat = 2,
        .time_limit = 30,
        .soft_time_limit = 20,
        .endpoint = "inproc://zq-fuzz-control",
        .started = 1795697000,
        .loader = s_loader,
        .revokes_max = 50000,
        .each_job = s_each_job,
        .find_job = s_find_job,
        .each_revoked = s_each_revoked,
        .live = s_live,
        .src = &s_src,
    };
    s_ctx = zmq_ctx_new();
    s_ctl = zq_control_new(&cc);
    if (!s_ctx || !s_ctl || zq_control_bind(s_ctl, s_ctx) != ZQ_OK ||
        !(s_dealer = zmq_socket(s_ctx, ZMQ_DEALER)) ||
        zmq_connect(s_dealer, "inproc://zq-fuzz-control") != 0) {
        fprintf(stderr, "fuzz: cannot set up the control socket\n");
        abort();
    }
    zq_socket_defaults(s_dealer);
    atexit(s_close);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!s_ctl)
        s_init();
    fz_msg_t msgs[FZ_MAX_MSGS];
    size_t n = fz_split(data, size, msgs, FZ_MAX_MSGS);
    for (size_t i = 0; i < n; i++) {
        const fz_msg_t *m = &msgs[i];
        if (!m->n) {
            zmq_send(s_dealer, "", 0, 0);
        } else {
            for (size_t k = 0; k < m->n; k++)
                zmq_send(s_dealer, m->frame[k], m->size[k], k + 1 < m->n ? ZMQ_SNDMORE : 0);
        }
        zq_control_serve(s_ctl);
        /* exactly one REPLY, well formed */
        int replies = 0;
        for (;;) {
            zq_msg_t r;
            char err[256];
            int rc = zq_msg_recv(s_dealer, 0, &r, ZMQ_DONTWAIT, err, sizeof err);
            if (rc == ZQ_ETIMEOUT)
                break;
            if (rc != ZQ_OK || strcmp(r.cmd, ZQ_CMD_REPLY)) {
                fprintf(stderr, "fuzz: bad answer from the control socket: %s\n",
                        rc != ZQ_OK ? err : r.cmd);
                abort();
            }
            replies++;
            zq_msg_clear(&r);
        }
        if (replies != 1) {
            fprintf(stderr, "fuzz: %d replies to one request\n", replies);
            abort();
        }
    }
    fz_free(msgs, n);
    return 0;
}
