/*
 * fuzz_worker_dispatch - what the worker reads on its dispatch channel (docs/protocol.md §8,
 * "Dispatch"): TASK (the task message decoded into a request: id, name, args, kwargs, eta,
 * expires, limits, retries...), TASKS (the array split by zq_jarray_*, each element as a
 * TASK), REVOKED (ids, terminate, signal), ACK (seqs), and malformed frames.
 * Each message of the input is [ZQP01][CMD][body], fed in order through
 * zq_worker_feed_dispatch (worker/zq_worker_int.h) to a worker that never runs (held tasks
 * stay held). Making one forks a probe child per plugin (worker/zq_loader.c), so a worker
 * serves $ZQ_FUZZ_RESET inputs (default 200; the replay uses 1) as the broker targets do.
 *
 * Oracle: a TASK body (or TASKS element) the text reader of a prefork worker's main process
 * takes (zq_exec_decode_text) is decoded to the same request, args and kwargs as the tree
 * reader decodes it to.
 *
 * Each TASK body (and TASKS element) that decodes is also turned into what the worker derives from it and sends
 * or logs: the request as JSON and text (zq_request_to_json / _to_string), the Python-style
 * traceback with the call's arguments, and a FAILURE STATE body, which must be valid JSON.
 *
 * The worker loads the example plugin (plugins/tasks.so, tasks.add ...): $ZQ_FUZZ_PLUGINS,
 * else the directory the build gave (FZ_PLUGINS_DIR), else $ZQ_BUILDDIR/plugins.
 */
#include "config.h"
#include "fuzz.h"
#include "zq.h"
#include "zq_exec.h"
#include "zq_proto.h"
#include "zq_task_int.h"
#include "zq_worker.h"
#include "zq_worker_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef FZ_PLUGINS_DIR
#define FZ_PLUGINS_DIR ZQ_BUILDDIR "/plugins"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *s_plugins(void)
{
    const char *d = getenv("ZQ_FUZZ_PLUGINS");
    if (d && *d)
        return d;
    d = getenv("ZQ_BUILDDIR");
    static char buf[4096];
    if (d && *d) {
        snprintf(buf, sizeof buf, "%s/plugins", d);
        return buf;
    }
    return FZ_PLUGINS_DIR;
}

/* A STATE body or record the worker builds must be one JSON object. */
static void s_check_json(const char *what, const char *txt, size_t len)
{
    if (!txt)
        return; /* out of memory */
    cJSON *v = cJSON_ParseWithLength(txt, len);
    if (!cJSON_IsObject(v)) {
        fprintf(stderr, "fuzz: %s is not a JSON object: %.*s\n", what, (int)len, txt);
        abort();
    }
    cJSON_Delete(v);
}

static int s_same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

/* zq_exec_decode_text agrees with zq_exec_decode (r: its request, rc its answer). */
static void s_differential(const char *text, size_t textlen, const zq_request_t *j, int rc)
{
    zq_request_t t;
    char *store;
    if (zq_exec_decode_text(&t, text, textlen, &store) != ZQ_OK)
        return;
    cJSON *tree = NULL;
    int same = rc == ZQ_OK && s_same(t.id, j->id) && s_same(t.task, j->task) &&
               s_same(t.queue, j->queue) && s_same(t.root_id, j->root_id) &&
               s_same(t.parent_id, j->parent_id) && s_same(t.group, j->group) &&
               s_same(t.origin, j->origin) && s_same(t.eta, j->eta) &&
               s_same(t.expires, j->expires) && t.eta_t == j->eta_t &&
               t.expires_t == j->expires_t && t.retries == j->retries &&
               t.priority == j->priority && t.redelivered == j->redelivered &&
               t.ignore_result == j->ignore_result && t.hard == j->hard && t.soft == j->soft;
    if (same && zq_exec_decode_args(&t, text, textlen, &tree) == ZQ_OK)
        same = cJSON_Compare(t.args, j->args, 1) && cJSON_Compare(t.kwargs, j->kwargs, 1);
    if (!same) {
        fprintf(stderr, "fuzz: the text and tree readers differ on %.*s\n", (int)textlen, text);
        abort();
    }
    zq_request_clear(&t);
    cJSON_Delete(tree);
    free(store);
}

/* What the worker derives from a TASK body besides holding it. */
static void s_derive_task(const char *text, size_t textlen)
{
    cJSON *body = cJSON_ParseWithLength(text, textlen);
    zq_request_t r;
    char err[256];
    int rc = zq_exec_decode(&r, body, err, sizeof err);
    s_differential(text, textlen, &r, rc);
    if (rc == ZQ_OK) {
        r.hostname = "fz@fuzz";
        cJSON *j = zq_request_to_json(&r);
        char *txt = j ? cJSON_PrintUnformatted(j) : NULL;
        if (txt)
            s_check_json("zq_request_to_json", txt, strlen(txt));
        cJSON_free(txt);
        cJSON_Delete(j);
        free(zq_request_to_string(&r));
    }
    if (rc != ZQ_EPROTO) {
        char *tb = zq_exec_traceback(NULL, r.task ? r.task : "?", r.args, r.kwargs, NULL,
                                     "InvalidArguments", err);
        size_t len = 0;
        char *st = zq_exec_state_error(r.id, "fz@fuzz", ZQ_STATE_FAILURE, "InvalidArguments",
                                       rc == ZQ_OK ? "x" : err, tb, 0.5, NULL, &len);
        s_check_json("a FAILURE STATE", st, len);
        free(st);
        free(tb);
        st = zq_exec_state_received(r.id, "fz@fuzz", 0, &len);
        s_check_json("a RECEIVED STATE", st, len);
        free(st);
    }
    zq_request_clear(&r);
    cJSON_Delete(body);
}

static void s_derive(const fz_msg_t *m)
{
    if (m->n != 3)
        return;
    if (m->size[1] == 4 && !memcmp(m->frame[1], "TASK", 4)) {
        s_derive_task((const char *)m->frame[2], m->size[2]);
    } else if (m->size[1] == 5 && !memcmp(m->frame[1], "TASKS", 5)) {
        zq_jarray_t it;
        const char *e;
        size_t n;
        int rc = zq_jarray_begin(&it, (const char *)m->frame[2], m->size[2]);
        while (rc == ZQ_OK && (rc = zq_jarray_next(&it, &e, &n)) == 1) {
            if (e < (const char *)m->frame[2] || e + n > (const char *)m->frame[2] + m->size[2]) {
                fprintf(stderr, "fuzz: a TASKS element outside the body\n");
                abort();
            }
            s_derive_task(e, n);
            rc = ZQ_OK;
        }
    }
}

static zq_worker_t *s_w;
static long s_uses, s_reset_every;

static void s_close(void)
{
    zq_worker_destroy(&s_w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!s_reset_every) {
        fz_quiet();
        const char *e = getenv("ZQ_FUZZ_RESET");
        s_reset_every = e && atol(e) > 0 ? atol(e) : 200;
        atexit(s_close);
    }
    if (s_w && s_uses >= s_reset_every)
        zq_worker_destroy(&s_w);
    if (!s_w) {
        zq_worker_config_t cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.plugins_dir = s_plugins();
        cfg.broker_url = "ipc:///nonexistent/zq-fuzz"; /* never connected: it never runs */
        cfg.nodename = "fz@fuzz";
        cfg.queues = "celery,q2";
        cfg.concurrency = 2;
        cfg.prefetch = 1;
        cfg.pool = ZQ_POOL_PREFORK;
        cfg.time_limit = 30;
        cfg.soft_time_limit = 20;
        s_w = zq_worker_new(&cfg);
        if (!s_w || zq_worker_task_count(s_w) == 0) {
            fprintf(stderr, "fuzz: no worker with tasks from %s (set ZQ_FUZZ_PLUGINS)\n",
                    cfg.plugins_dir);
            abort();
        }
        s_uses = 0;
    }
    s_uses++;
    fz_msg_t msgs[FZ_MAX_MSGS];
    size_t n = fz_split(data, size, msgs, FZ_MAX_MSGS);
    for (size_t i = 0; i < n; i++) {
        zq_worker_feed_dispatch(s_w, (const void *const *)msgs[i].frame, msgs[i].size,
                                msgs[i].total);
        s_derive(&msgs[i]);
    }
    fz_free(msgs, n);
    return 0;
}
