/*
 * fuzz_flower_http - what the web monitor (control/zq_flower.c, docs/monitor.md) parses
 * from HTTP requests: the route, query arguments (limit, offset, sort_by, state, ...,
 * received_start/end, timeout, terminate, signal, n, workername, refresh, status, format),
 * headers (Authorization, Origin, Host, Sec-Fetch-Site, Last-Event-ID) and POST bodies
 * (JSON: args, kwargs, countdown, eta, expires, queue, task_id, priority); and what it does
 * with the answers of the broker and of workers' control sockets.
 *
 * libmicrohttpd is replaced by tests/fuzz/mhd_mock.c (no sockets, no HTTP parsing) and the
 * broker and worker by the fake peer of fuzz.h ("control" endpoints in its answers are
 * pointed at its own control socket). Input: message 0 is the request, frames
 * [method][path][body][value]...: a value "?key=value" is a query argument, any other
 * "Name: value" a header; the next messages answer, in order, the requests the monitor
 * makes to the broker and to workers ("$REQ" replaced by their req).
 * Checked: a handled request has exactly one response, with a valid status, and a JSON
 * response is valid JSON; the Authorization header also goes through the basic-auth check.
 * ZQ_FUZZ_VERBOSE=1 prints each response.
 */
#include "config.h"
#include "fuzz.h"
#include "mhd_mock.h"
#include "zq.h"
#include "zq_flower.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *s_dir;
static fz_peer_t *s_peer;
static zq_flower_t *s_fl;
static zq_flower_config_t s_auth; /* only for zq_flower_auth_ok */

static void s_close(void)
{
    zq_flower_destroy(&s_fl);
    fz_peer_stop(&s_peer);
    fz_rmtree(s_dir);
    free(s_dir);
}

static void s_init(void)
{
    fz_quiet();
    if (!(s_dir = fz_tmpdir("flower")) || !(s_peer = fz_peer_start(s_dir, 1))) {
        fprintf(stderr, "fuzz: cannot start the fake peer\n");
        abort();
    }
    zq_flower_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.broker = fz_peer_broker(s_peer);
    cfg.address = "127.0.0.1";
    cfg.port = 0;
    cfg.url_prefix = "";
    cfg.timeout = 5.0;
    char err[512];
    if (!(s_fl = zq_flower_new(&cfg, err, sizeof err))) {
        fprintf(stderr, "fuzz: zq_flower_new: %s\n", err);
        abort();
    }
    s_auth.auth[0] = "user:pass";
    s_auth.auth[1] = "admin:s3cr:t,guest:guest";
    s_auth.nauth = 2;
    atexit(s_close);
}

static void s_fail(const char *why, const mhd_mock_request_t *rq, const mhd_mock_result_t *res)
{
    fprintf(stderr, "fuzz: %s: %s %s -> %u %s\n%s\n", why, rq->method, rq->url, res->status,
            res->content_type ? res->content_type : "-", res->body ? res->body : "");
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!s_fl)
        s_init();
    fz_msg_t msgs[FZ_MAX_MSGS];
    size_t n = fz_split(data, size, msgs, FZ_MAX_MSGS);
    if (!n)
        return 0;
    const fz_msg_t *m = &msgs[0];
    mhd_mock_request_t rq;
    memset(&rq, 0, sizeof rq);
    char *method = fz_str(m, 0, "GET"), *url = fz_str(m, 1, "/");
    char *strs[MHD_MOCK_MAX_VALUES];
    size_t nstrs = 0;
    rq.method = method;
    rq.url = url;
    if (m->n > 2 && m->size[2]) {
        rq.body = (const char *)m->frame[2];
        rq.body_len = m->size[2];
    }
    const char *authz = NULL;
    for (size_t i = 3; i < m->n && rq.nvalues < MHD_MOCK_MAX_VALUES; i++) {
        char *s = strs[nstrs++] = fz_str(m, i, "");
        mhd_mock_value_t *v = &rq.values[rq.nvalues++];
        if (s[0] == '?') {
            char *eq = strchr(s + 1, '=');
            if (eq)
                *eq = '\0';
            v->key = s + 1;
            v->value = eq ? eq + 1 : ""; /* libmicrohttpd gives "" for "?key" */
        } else {
            char *colon = strchr(s, ':');
            if (colon)
                *colon = '\0';
            const char *val = colon ? colon + 1 : "";
            while (*val == ' ')
                val++;
            v->is_header = 1;
            v->key = s;
            v->value = val;
            if (!strcasecmp(s, "Authorization"))
                authz = val;
        }
    }
    zq_flower_auth_ok(&s_auth, authz);
    if (authz) {
        char small[4], big[1024];
        zq_flower_base64_decode(authz, small, sizeof small);
        zq_flower_base64_decode(authz, big, sizeof big);
    }
    fz_peer_script(s_peer, msgs + 1, n - 1);
    mhd_mock_result_t res;
    if (mhd_mock_request(&rq, &res) != 0)
        abort();
    fz_peer_script(s_peer, NULL, 0);
    if (getenv("ZQ_FUZZ_VERBOSE"))
        fprintf(stderr, "%s %s -> %u %s %.300s\n", rq.method, rq.url, res.status,
                res.content_type ? res.content_type : "-", res.body ? res.body : "(stream)");
    if (res.queued > 1)
        s_fail("more than one response", &rq, &res);
    if (res.handled && res.queued != 1)
        s_fail("handled without a response", &rq, &res);
    if (res.queued && (res.status < 100 || res.status > 599))
        s_fail("bad status", &rq, &res);
    if (res.body && res.content_type && !strncmp(res.content_type, "application/json", 16)) {
        cJSON *v = cJSON_ParseWithLength(res.body, res.body_len);
        if (!v)
            s_fail("invalid JSON response", &rq, &res);
        cJSON_Delete(v);
    }
    mhd_mock_result_clear(&res);
    for (size_t i = 0; i < nstrs; i++)
        free(strs[i]);
    free(method);
    free(url);
    fz_free(msgs, n);
    return 0;
}
