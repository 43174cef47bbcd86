/*
 * flower_api - HTTP tests of `zq-ctl flower` (docs/monitor.md) against a real monitor,
 * broker and worker, with a raw-socket HTTP/1.1 client (no library). Run by
 * tests/e2e/flower.sh, which starts the processes:
 *
 *   flower_api open     HOST PORT WORKER   every route, bad input, concurrency, SSE
 *   flower_api auth     HOST PORT USER:PASS USER2:PASS2   401 / 200
 *   flower_api readonly HOST PORT          403 on every POST route
 *   flower_api prefix   HOST PORT /PREFIX  routes live under the prefix only
 *
 * Prints "ok - ..." / "FAIL - ..." per check; exits 1 when one failed. Waits are on
 * conditions (a state reached, an event read), bounded, never fixed sleeps.
 */
#include "config.h"
#include "zq_time.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *s_host;
static int s_port;
static int s_pass, s_fail;
static const char *s_auth; /* "Authorization: Basic ..." header line or NULL */

static void s_check(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_check(int cond, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf(cond ? "ok - " : "FAIL - ");
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
    if (cond)
        s_pass++;
    else
        s_fail++;
}

typedef struct {
    int status;
    char *headers; /* raw header block */
    char *body;
    size_t len;
} resp_t;

static void s_free(resp_t *r)
{
    free(r->headers);
    free(r->body);
    memset(r, 0, sizeof *r);
}

static int s_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)s_port);
    inet_pton(AF_INET, s_host, &sa.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static int s_write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Decode a chunked body in place; returns the new length. */
static size_t s_unchunk(char *b, size_t n)
{
    size_t in = 0, out = 0;
    while (in < n) {
        char *end;
        unsigned long sz = strtoul(b + in, &end, 16);
        char *nl = strstr(end, "\r\n");
        if (!nl || sz == 0)
            break;
        in = (size_t)(nl + 2 - b);
        if (in + sz > n)
            sz = n - in;
        memmove(b + out, b + in, sz);
        out += sz;
        in += sz + 2;
    }
    b[out] = '\0';
    return out;
}

/* One request on a fresh connection (Connection: close). extra: more header lines
 * ("Name: value\r\n"...) or NULL. Returns 0, or -1 when the server did not answer. */
static int s_http(const char *method, const char *path, const char *extra, const char *body,
                  resp_t *r)
{
    memset(r, 0, sizeof *r);
    int fd = s_connect();
    if (fd < 0)
        return -1;
    size_t blen = body ? strlen(body) : 0;
    size_t cap = strlen(path) + (extra ? strlen(extra) : 0) + 512;
    char *req = malloc(cap);
    int n = snprintf(req, cap,
                     "%s %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n%s%s%s"
                     "Content-Length: %zu\r\n\r\n",
                     method, path, s_host, s_port, s_auth ? s_auth : "", extra ? extra : "",
                     body ? "Content-Type: application/json\r\n" : "", blen);
    int rc = s_write_all(fd, req, (size_t)n);
    free(req);
    if (rc == 0 && blen)
        s_write_all(fd, body, blen); /* a server may refuse early: read what it says */
    size_t len = 0, bufcap = 65536;
    char *buf = malloc(bufcap);
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 30000) <= 0)
            break;
        if (len + 4096 > bufcap) {
            bufcap *= 2;
            buf = realloc(buf, bufcap);
        }
        ssize_t got = read(fd, buf + len, bufcap - len - 1);
        if (got <= 0)
            break;
        len += (size_t)got;
    }
    close(fd);
    buf[len] = '\0';
    char *sep = strstr(buf, "\r\n\r\n");
    if (!sep || sscanf(buf, "HTTP/1.%*d %d", &r->status) != 1) {
        free(buf);
        return -1;
    }
    *sep = '\0';
    r->headers = strdup(buf);
    char *b = sep + 4;
    r->len = len - (size_t)(b - buf);
    r->body = malloc(r->len + 1);
    memcpy(r->body, b, r->len);
    r->body[r->len] = '\0';
    if (strcasestr(r->headers, "Transfer-Encoding: chunked"))
        r->len = s_unchunk(r->body, r->len);
    free(buf);
    return 0;
}

static cJSON *s_get_json(const char *path, int *status)
{
    resp_t r;
    if (s_http("GET", path, NULL, NULL, &r) != 0) {
        *status = 0;
        return NULL;
    }
    *status = r.status;
    cJSON *j = cJSON_Parse(r.body);
    s_free(&r);
    return j;
}

static cJSON *s_post_json(const char *path, const char *body, int *status)
{
    resp_t r;
    if (s_http("POST", path, NULL, body, &r) != 0) {
        *status = 0;
        return NULL;
    }
    *status = r.status;
    cJSON *j = cJSON_Parse(r.body);
    s_free(&r);
    return j;
}

static const char *s_str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static const char *s_errtext(const cJSON *o)
{
    return s_str(o, "error");
}

/* Wait (bounded) until /api/task/info/id says state. */
static int s_wait_state(const char *id, const char *state, double secs)
{
    char path[300];
    snprintf(path, sizeof path, "/api/task/info/%s", id);
    double until = zq_mono() + secs;
    while (zq_mono() < until) {
        int st;
        cJSON *j = s_get_json(path, &st);
        int ok = st == 200 && !strcmp(s_str(j, "state"), state);
        cJSON_Delete(j);
        if (ok)
            return 1;
        usleep(20000);
    }
    return 0;
}

/* Total count of tasks (X-Total-Count of /api/tasks), or -1. */
static long s_total(void)
{
    resp_t r;
    if (s_http("GET", "/api/tasks?limit=1", NULL, NULL, &r) != 0)
        return -1;
    const char *h = strcasestr(r.headers, "X-Total-Count:");
    long n = h ? atol(h + 14) : -1;
    s_free(&r);
    return n;
}

static char *s_apply(const char *name, const char *body)
{
    char path[300];
    snprintf(path, sizeof path, "/api/task/async-apply/%s", name);
    int st;
    cJSON *j = s_post_json(path, body, &st);
    char *id = st == 200 && *s_str(j, "task-id") ? strdup(s_str(j, "task-id")) : NULL;
    cJSON_Delete(j);
    return id;
}

/* ---- open mode: every route ---- */

static void t_pages(void)
{
    resp_t r;
    s_check(s_http("GET", "/healthcheck", NULL, NULL, &r) == 0 && r.status == 200 &&
                !strcmp(r.body, "OK"),
            "GET /healthcheck -> 200 OK");
    s_free(&r);
    s_check(s_http("GET", "/", NULL, NULL, &r) == 0 && r.status == 200 &&
                strstr(r.body, "zq flower") && strcasestr(r.headers, "Content-Security-Policy") &&
                strcasestr(r.headers, "text/html"),
            "GET / -> the dashboard page with a CSP");
    s_free(&r);
    s_check(s_http("GET", "/task/abc", NULL, NULL, &r) == 0 && r.status == 200 &&
                strstr(r.body, "/static/app.js"),
            "GET /task/ID -> the page (routed in the browser)");
    s_free(&r);
    s_check(s_http("GET", "/static/app.js", NULL, NULL, &r) == 0 && r.status == 200 &&
                strcasestr(r.headers, "text/javascript") && strstr(r.body, "EventSource"),
            "GET /static/app.js (compiled in)");
    s_free(&r);
    s_check(s_http("GET", "/static/app.css", NULL, NULL, &r) == 0 && r.status == 200 &&
                strcasestr(r.headers, "text/css"),
            "GET /static/app.css");
    s_free(&r);
    s_check(s_http("GET", "/static/nope.js", NULL, NULL, &r) == 0 && r.status == 404,
            "GET /static/nope.js -> 404");
    s_free(&r);
    s_check(s_http("GET", "/no/such/thing", NULL, NULL, &r) == 0 && r.status == 404 &&
                strstr(r.body, "\"error\""),
            "unknown route -> 404 with a JSON error");
    s_free(&r);
}

static void t_tasks(const char *worker)
{
    int st;
    char path[600];
    char *id = s_apply("tasks.add", "{\"args\":[2,3]}");
    s_check(id != NULL, "POST /api/task/async-apply/tasks.add -> a task id");
    if (!id)
        return;
    snprintf(path, sizeof path, "/api/task/result/%s?timeout=10", id);
    cJSON *j = s_get_json(path, &st);
    const cJSON *res = cJSON_GetObjectItem(j, "result");
    s_check(st == 200 && !strcmp(s_str(j, "state"), "SUCCESS") && cJSON_IsNumber(res) &&
                res->valueint == 5 && !strcmp(s_str(j, "task-id"), id),
            "GET /api/task/result/ID?timeout=10 waits -> SUCCESS 5");
    cJSON_Delete(j);

    snprintf(path, sizeof path, "/api/task/info/%s", id);
    j = s_get_json(path, &st);
    s_check(st == 200 && !strcmp(s_str(j, "uuid"), id) && !strcmp(s_str(j, "name"), "tasks.add") &&
                !strcmp(s_str(j, "worker"), worker) && cJSON_IsNumber(cJSON_GetObjectItem(j, "succeeded")) &&
                cJSON_IsArray(cJSON_GetObjectItem(j, "children")) && *s_str(j, "date_done"),
            "GET /api/task/info/ID -> every field (Flower's names and zq's)");
    cJSON_Delete(j);

    /* Flower's shape: an object keyed by id, with the total in a header */
    resp_t r;
    s_http("GET", "/api/tasks", NULL, NULL, &r);
    j = cJSON_Parse(r.body);
    s_check(r.status == 200 && cJSON_IsObject(cJSON_GetObjectItem(j, id)) &&
                strcasestr(r.headers, "X-Total-Count:"),
            "GET /api/tasks -> object keyed by id, X-Total-Count");
    cJSON_Delete(j);
    s_free(&r);
    j = s_get_json("/api/tasks?format=list&limit=1", &st);
    s_check(st == 200 && cJSON_GetArraySize(cJSON_GetObjectItem(j, "tasks")) == 1 &&
                cJSON_GetObjectItem(j, "total")->valuedouble >= 1,
            "GET /api/tasks?format=list&limit=1 -> one record and the total");
    cJSON_Delete(j);
    snprintf(path, sizeof path,
             "/api/tasks?format=list&state=SUCCESS&taskname=tasks.add&workername=%s&sort_by=-received",
             worker);
    j = s_get_json(path, &st);
    int found = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(j, "tasks")) found |= !strcmp(s_str(e, "id"), id);
    s_check(st == 200 && found, "filters state + taskname + workername + sort_by find it");
    cJSON_Delete(j);
    snprintf(path, sizeof path, "/api/tasks?format=list&search=%.8s", id);
    j = s_get_json(path, &st);
    found = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(j, "tasks")) found |= !strcmp(s_str(e, "id"), id);
    s_check(st == 200 && found, "free-text search finds it by part of its id");
    cJSON_Delete(j);
    j = s_get_json("/api/tasks?format=list&state=failure&taskname=tasks.add", &st);
    found = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(j, "tasks")) found |= !strcmp(s_str(e, "id"), id);
    s_check(st == 200 && !found, "state=failure (any case) does not list a SUCCESS");
    cJSON_Delete(j);
    j = s_get_json("/api/tasks?format=list&received_start=2000-01-01%2000:00&received_end=2999-01-01%2000:00", &st);
    s_check(st == 200 && cJSON_GetArraySize(cJSON_GetObjectItem(j, "tasks")) >= 1,
            "received_start/received_end in Flower's format");
    cJSON_Delete(j);

    static const char *const bad[][2] = {
        {"/api/tasks?sort_by=bogus", "sort_by"},
        {"/api/tasks?limit=0", "limit"},
        {"/api/tasks?limit=abc", "limit"},
        {"/api/tasks?offset=-3", "offset"},
        {"/api/tasks?state=DONE", "state"},
        {"/api/tasks?received_start=yesterday", "received_start"},
        {"/api/task/result/x?timeout=-1", "timeout"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        j = s_get_json(bad[i][0], &st);
        s_check(st == 400 && strstr(s_errtext(j), bad[i][1]), "%s -> 400 naming %s (%s)",
                bad[i][0], bad[i][1], s_errtext(j));
        cJSON_Delete(j);
    }

    j = s_post_json("/api/task/apply/tasks.add", "{\"args\":[40,2]}", &st);
    res = cJSON_GetObjectItem(j, "result");
    s_check(st == 200 && !strcmp(s_str(j, "state"), "SUCCESS") && cJSON_IsNumber(res) &&
                res->valueint == 42,
            "POST /api/task/apply/tasks.add waits -> SUCCESS 42");
    cJSON_Delete(j);
    j = s_post_json("/api/task/send-task/tasks.unheard_of", "{}", &st);
    char *nr = st == 200 ? strdup(s_str(j, "task-id")) : NULL;
    cJSON_Delete(j);
    s_check(nr && s_wait_state(nr, "FAILURE", 15),
            "POST /api/task/send-task/ skips the registry check: NotRegistered FAILURE");
    if (nr) {
        snprintf(path, sizeof path, "/api/task/result/%s", nr);
        j = s_get_json(path, &st);
        s_check(st == 200 && strstr(s_str(cJSON_GetObjectItem(j, "exception"), "type"), "NotRegistered"),
                "... its result says NotRegistered");
        cJSON_Delete(j);
        free(nr);
    }
    j = s_get_json("/api/task/types", &st);
    found = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(j, "task-types")) found |=
        cJSON_IsString(e) && !strcmp(e->valuestring, "tasks.add");
    s_check(st == 200 && found, "GET /api/task/types lists tasks.add");
    cJSON_Delete(j);
    j = s_get_json("/api/queues/length", &st);
    found = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(j, "active_queues")) found |=
        !strcmp(s_str(e, "name"), "celery") && cJSON_IsNumber(cJSON_GetObjectItem(e, "messages"));
    s_check(st == 200 && found, "GET /api/queues/length -> celery with messages");
    cJSON_Delete(j);
    free(id);
}

static void t_workers(const char *worker)
{
    int st;
    cJSON *j = s_get_json("/api/workers", &st);
    cJSON *w = cJSON_GetObjectItem(j, worker);
    s_check(st == 200 && cJSON_IsTrue(cJSON_GetObjectItem(w, "online")) &&
                cJSON_IsObject(cJSON_GetObjectItem(w, "stats")) &&
                cJSON_GetObjectItem(cJSON_GetObjectItem(w, "stats"), "succeeded")->valuedouble >= 1,
            "GET /api/workers -> %s online with its counts", worker);
    cJSON_Delete(j);
    j = s_get_json("/api/workers?status=true", &st);
    s_check(st == 200 && cJSON_IsTrue(cJSON_GetObjectItem(j, worker)),
            "GET /api/workers?status=true -> {name: true}");
    cJSON_Delete(j);
    char path[300];
    snprintf(path, sizeof path, "/api/workers?workername=%s&refresh=1", worker);
    j = s_get_json(path, &st);
    s_check(st == 200 && cJSON_GetArraySize(j) == 1 && cJSON_GetObjectItem(j, worker),
            "GET /api/workers?workername=NAME&refresh=1 -> that worker");
    cJSON *insp = cJSON_GetObjectItem(cJSON_GetObjectItem(j, worker), "inspect");
    s_check(cJSON_IsObject(cJSON_GetObjectItem(insp, "stats")) &&
                cJSON_IsArray(cJSON_GetObjectItem(insp, "active")) &&
                cJSON_IsObject(cJSON_GetObjectItem(insp, "conf")),
            "... with its control socket's stats, active, conf (inspect)");
    cJSON_Delete(j);
    snprintf(path, sizeof path, "/api/worker/shutdown/%s", worker);
    j = s_post_json(path, NULL, &st);
    s_check(st == 501 && strstr(s_errtext(j), "unknown method"),
            "POST /api/worker/shutdown/NAME -> 501: the worker does not offer it (%s)",
            s_errtext(j));
    cJSON_Delete(j);
    j = s_post_json("/api/worker/pool/grow/nobody@nowhere?n=2", NULL, &st);
    s_check(st == 404, "POST /api/worker/pool/grow/unknown -> 404");
    cJSON_Delete(j);
    snprintf(path, sizeof path, "/api/worker/pool/shrink/%s?n=0", worker);
    j = s_post_json(path, NULL, &st);
    s_check(st == 400 && strstr(s_errtext(j), "n:"), "pool/shrink?n=0 -> 400");
    cJSON_Delete(j);
    j = s_get_json("/api/workers?workername=nobody@nowhere", &st);
    s_check(st == 404, "GET /api/workers?workername=unknown -> 404");
    cJSON_Delete(j);
    j = s_get_json("/api/stats", &st);
    s_check(st == 200 && cJSON_IsObject(cJSON_GetObjectItem(j, "tasks")) &&
                cJSON_IsArray(cJSON_GetObjectItem(j, "history")) &&
                cJSON_IsArray(cJSON_GetObjectItem(j, "queues")),
            "GET /api/stats -> counts, queues, history");
    cJSON_Delete(j);
}

static void t_metrics(const char *worker)
{
    resp_t r;
    s_http("GET", "/metrics", NULL, NULL, &r);
    char online[300];
    snprintf(online, sizeof online, "zq_worker_online{worker=\"%s\"} 1", worker);
    static const char *const want[] = {
        "# TYPE zq_events_total counter", "zq_events_total{worker=",
        "type=\"task-succeeded\",task=\"tasks.add\"}", "# TYPE zq_task_runtime_seconds histogram",
        "zq_task_runtime_seconds_bucket{", "le=\"+Inf\"", "zq_task_runtime_seconds_count{",
        "zq_task_prefetch_time_seconds{", "zq_worker_prefetched_tasks{",
        "zq_worker_number_of_currently_executing_tasks{", "zq_queue_length{queue=\"celery\"}",
        "zq_queue_reserved{", "zq_tasks{state=\"SUCCESS\"}", "zq_broker_up 1"};
    s_check(r.status == 200 && strcasestr(r.headers, "text/plain"), "GET /metrics -> text/plain");
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        s_check(r.body && strstr(r.body, want[i]) != NULL, "/metrics has %s", want[i]);
    s_check(r.body && strstr(r.body, online) != NULL, "/metrics has %s", online);
    s_free(&r);
}

static void t_bad_input(void)
{
    int st;
    long before = s_total();
    cJSON *j = s_post_json("/api/task/async-apply/tasks.add", "{\"args\": [1,", &st);
    s_check(st == 400 && strstr(s_errtext(j), "JSON"), "bad JSON body -> 400 (%s)", s_errtext(j));
    cJSON_Delete(j);
    j = s_post_json("/api/task/async-apply/tasks.add", "[1,2]", &st);
    s_check(st == 400 && strstr(s_errtext(j), "object"), "a body that is not an object -> 400");
    cJSON_Delete(j);
    j = s_post_json("/api/task/async-apply/tasks.add", "{\"args\":\"x\"}", &st);
    s_check(st == 400 && strstr(s_errtext(j), "args"), "args not an array -> 400 naming args");
    cJSON_Delete(j);
    j = s_post_json("/api/task/async-apply/tasks.add", "{\"countdown\":-1}", &st);
    s_check(st == 400 && strstr(s_errtext(j), "countdown"), "countdown < 0 -> 400");
    cJSON_Delete(j);
    j = s_post_json("/api/task/async-apply/tasks.add", "{\"eta\":\"tomorrow\"}", &st);
    s_check(st == 400 && strstr(s_errtext(j), "eta"), "bad eta -> 400");
    cJSON_Delete(j);
    j = s_post_json("/api/task/async-apply/tasks.add", "{\"bogus\":1}", &st);
    s_check(st == 400 && strstr(s_errtext(j), "bogus"), "unknown field -> 400 naming it");
    cJSON_Delete(j);
    j = s_post_json("/api/task/async-apply/tasks.nope", "{}", &st);
    s_check(st == 404 && strstr(s_errtext(j), "tasks.nope"), "unregistered task -> 404");
    cJSON_Delete(j);
    j = s_post_json("/api/task/async-apply/bad%20name", "{}", &st);
    s_check(st == 400, "a task name with a space -> 400");
    cJSON_Delete(j);
    s_check(s_total() == before, "nothing was sent by the refused requests (%ld tasks)", before);

    j = s_get_json("/api/task/info/bad%20id", &st);
    s_check(st == 400 && strstr(s_errtext(j), "task id"), "GET info of a malformed id -> 400");
    cJSON_Delete(j);
    j = s_get_json("/api/task/info/never-sent-0000", &st);
    s_check(st == 404 && strstr(s_errtext(j), "Unknown task"), "GET info of an unknown id -> 404");
    cJSON_Delete(j);
    j = s_get_json("/api/task/result/never-sent-0000", &st);
    s_check(st == 404 && !strcmp(s_str(j, "state"), "PENDING") &&
                cJSON_IsFalse(cJSON_GetObjectItem(j, "known")),
            "GET result of an unknown id -> 404, PENDING, known false");
    cJSON_Delete(j);
    j = s_post_json("/api/task/revoke/never-sent-0000", NULL, &st);
    s_check(st == 404, "revoke of an unknown id -> 404");
    cJSON_Delete(j);
    j = s_get_json("/api/task/info/never-sent-0000", &st);
    s_check(st == 404, "... and it is still unknown afterwards");
    cJSON_Delete(j);
    j = s_post_json("/api/task/revoke/x?terminate=maybe", NULL, &st);
    s_check(st == 400 && strstr(s_errtext(j), "terminate"), "terminate=maybe -> 400");
    cJSON_Delete(j);

    /* methods */
    j = s_get_json("/api/task/revoke/abc", &st);
    s_check(st == 405, "GET on a POST route -> 405");
    cJSON_Delete(j);
    j = s_post_json("/api/tasks", "{}", &st);
    s_check(st == 405, "POST on a GET route -> 405");
    cJSON_Delete(j);

    /* cross-site POSTs are refused and change nothing */
    resp_t r;
    s_http("POST", "/api/task/async-apply/tasks.add", "Origin: http://evil.example\r\n",
           "{\"args\":[1,1]}", &r);
    s_check(r.status == 403 && strstr(r.body, "cross-site"), "POST with a foreign Origin -> 403");
    s_free(&r);
    s_http("POST", "/api/task/async-apply/tasks.add", "Sec-Fetch-Site: cross-site\r\n",
           "{\"args\":[1,1]}", &r);
    s_check(r.status == 403, "POST with Sec-Fetch-Site: cross-site -> 403");
    s_free(&r);
    char origin[128];
    snprintf(origin, sizeof origin, "Origin: http://%s:%d\r\nSec-Fetch-Site: same-origin\r\n",
             s_host, s_port);
    s_http("POST", "/api/task/async-apply/tasks.add", origin, "{\"args\":[1,1]}", &r);
    s_check(r.status == 200, "POST from the monitor's own origin -> 200");
    s_free(&r);
    s_check(s_total() == before + 1, "only the same-origin POST sent a task");

    /* sizes */
    size_t big = 200000;
    char *q = malloc(big + 64);
    strcpy(q, "/api/tasks?search=");
    memset(q + strlen(q), 'A', big);
    q[18 + big] = '\0';
    int rc = s_http("GET", q, NULL, NULL, &r);
    s_check(rc == 0 && r.status >= 400 && r.status < 500, "a 200 KB query string -> %d (4xx)",
            r.status);
    s_free(&r);
    q[18 + 300] = '\0';
    j = s_get_json(q, &st);
    s_check(st == 400 && strstr(s_errtext(j), "search"), "a 300-byte search -> 400 naming search");
    cJSON_Delete(j);
    free(q);
    char *body = malloc(2 * 1024 * 1024 + 32);
    memset(body, ' ', 2 * 1024 * 1024);
    body[2 * 1024 * 1024] = '\0';
    memcpy(body, "{\"args\":[\"", 10);
    s_http("POST", "/api/task/async-apply/tasks.add", NULL, body, &r);
    s_check(r.status == 413, "a 2 MiB body -> 413 (got %d)", r.status);
    s_free(&r);
    free(body);
    s_check(s_http("GET", "/healthcheck", NULL, NULL, &r) == 0 && r.status == 200,
            "the monitor still answers");
    s_free(&r);
}

static void t_revoke(void)
{
    int st;
    char path[300];
    char *id = s_apply("tasks.add", "{\"args\":[1,2],\"countdown\":3600}");
    s_check(id != NULL, "a task with countdown 3600 sent");
    if (id) {
        snprintf(path, sizeof path, "/api/task/revoke/%s", id);
        cJSON *j = s_post_json(path, NULL, &st);
        s_check(st == 200 && strstr(s_str(j, "message"), "Revoked"), "POST revoke -> 200 Revoked");
        cJSON_Delete(j);
        s_check(s_wait_state(id, "REVOKED", 10), "... and it ends REVOKED");
        free(id);
    }
    id = s_apply("tasks.sleep", "{\"args\":[30]}");
    s_check(id && s_wait_state(id, "STARTED", 15), "tasks.sleep(30) started");
    if (id) {
        snprintf(path, sizeof path, "/api/task/revoke/%s?terminate=true&signal=SIGKILL", id);
        cJSON *j = s_post_json(path, NULL, &st);
        s_check(st == 200, "POST revoke?terminate=true&signal=SIGKILL -> 200");
        cJSON_Delete(j);
        s_check(s_wait_state(id, "REVOKED", 15), "... the running task is terminated (REVOKED)");
        free(id);
    }
}

typedef struct {
    int ok, bad;
} s_conc_t;

static void *s_conc_main(void *arg)
{
    s_conc_t *c = arg;
    static const char *const paths[] = {"/api/tasks?limit=5&format=list", "/metrics",
                                        "/api/workers", "/api/stats", "/healthcheck"};
    for (int i = 0; i < 20; i++) {
        resp_t r;
        if (s_http("GET", paths[i % 5], NULL, NULL, &r) == 0 && r.status == 200)
            c->ok++;
        else
            c->bad++;
        s_free(&r);
    }
    return NULL;
}

static void t_concurrent(void)
{
    enum { N = 16 };
    pthread_t th[N];
    s_conc_t c[N];
    memset(c, 0, sizeof c);
    double t0 = zq_mono();
    for (int i = 0; i < N; i++)
        pthread_create(&th[i], NULL, s_conc_main, &c[i]);
    int ok = 0, bad = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        ok += c[i].ok;
        bad += c[i].bad;
    }
    s_check(bad == 0 && ok == N * 20, "%d concurrent clients x 20 requests: %d ok, %d failed (%.2fs)",
            N, ok, bad, zq_mono() - t0);
}

/* SSE: the stream says hello, then carries the events of a task sent now. */
static void t_sse(void)
{
    int fd = s_connect();
    char req[256];
    int n = snprintf(req, sizeof req, "GET /api/events HTTP/1.0\r\nHost: %s\r\n%s\r\n", s_host,
                     s_auth ? s_auth : "");
    s_write_all(fd, req, (size_t)n);
    size_t cap = 1 << 20, len = 0;
    char *buf = calloc(1, cap);
    int hello = 0, got = 0;
    char *id = NULL;
    double until = zq_mono() + 15;
    while (zq_mono() < until && !got && len + 1 < cap) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 200) > 0) {
            ssize_t k = read(fd, buf + len, cap - len - 1);
            if (k <= 0)
                break;
            len += (size_t)k;
            buf[len] = '\0';
        }
        if (!hello && strstr(buf, "event: hello")) {
            hello = 1;
            s_check(strcasestr(buf, "text/event-stream") != NULL, "SSE: text/event-stream, hello");
            id = s_apply("tasks.add", "{\"args\":[40,2]}");
        }
        if (id) {
            char *ev = strstr(buf, "event: task-succeeded");
            while (ev && !got) {
                char *end = strstr(ev, "\n\n");
                if (!end)
                    break;
                got = memmem(ev, (size_t)(end - ev), id, strlen(id)) != NULL &&
                      memmem(ev, (size_t)(end - ev), "\"name\":\"tasks.add\"", 18) != NULL;
                ev = strstr(end, "event: task-succeeded");
            }
        }
    }
    s_check(hello && id && got, "SSE: task-succeeded of a task sent now arrives, with its name");
    free(id);
    free(buf);
    close(fd);
}

/* ---- other modes ---- */

static void t_auth(const char *cred1, const char *cred2)
{
    static const char *const tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *creds[] = {cred1, cred2, "nobody:wrong", NULL};
    char hdr[3][300];
    for (int i = 0; creds[i]; i++) {
        const unsigned char *s = (const unsigned char *)creds[i];
        size_t n = strlen(creds[i]), o = 0;
        char out[256];
        for (size_t k = 0; k < n; k += 3) {
            unsigned v = s[k] << 16 | (k + 1 < n ? s[k + 1] << 8 : 0) | (k + 2 < n ? s[k + 2] : 0);
            out[o++] = tbl[v >> 18 & 63];
            out[o++] = tbl[v >> 12 & 63];
            out[o++] = k + 1 < n ? tbl[v >> 6 & 63] : '=';
            out[o++] = k + 2 < n ? tbl[v & 63] : '=';
        }
        out[o] = '\0';
        snprintf(hdr[i], sizeof hdr[i], "Authorization: Basic %s\r\n", out);
    }
    resp_t r;
    s_http("GET", "/api/workers", NULL, NULL, &r);
    s_check(r.status == 401 && strcasestr(r.headers, "WWW-Authenticate: Basic"),
            "no credentials -> 401 with WWW-Authenticate");
    s_free(&r);
    s_http("GET", "/", NULL, NULL, &r);
    s_check(r.status == 401, "the page too needs credentials");
    s_free(&r);
    s_http("GET", "/metrics", hdr[2], NULL, &r);
    s_check(r.status == 401, "wrong password -> 401");
    s_free(&r);
    s_http("GET", "/healthcheck", NULL, NULL, &r);
    s_check(r.status == 200, "/healthcheck needs none");
    s_free(&r);
    for (int i = 0; i < 2; i++) {
        s_http("GET", "/api/workers", hdr[i], NULL, &r);
        s_check(r.status == 200, "user %d's credentials -> 200", i + 1);
        s_free(&r);
    }
    s_auth = hdr[0];
    char *id = s_apply("tasks.add", "{\"args\":[1,1]}");
    s_check(id != NULL, "an authenticated POST sends a task");
    free(id);
    s_auth = NULL;
    s_http("POST", "/api/task/async-apply/tasks.add", hdr[2], "{}", &r);
    s_check(r.status == 401, "an unauthenticated POST -> 401");
    s_free(&r);
}

static void t_readonly(void)
{
    long before = s_total();
    static const char *const posts[] = {"/api/task/async-apply/tasks.add", "/api/task/revoke/abc",
                                        "/api/worker/shutdown/w", "/api/worker/pool/grow/w",
                                        "/api/worker/pool/shrink/w"};
    for (size_t i = 0; i < sizeof posts / sizeof posts[0]; i++) {
        int st;
        cJSON *j = s_post_json(posts[i], "{}", &st);
        s_check(st == 403 && strstr(s_errtext(j), "read-only"), "read-only: POST %s -> 403",
                posts[i]);
        cJSON_Delete(j);
    }
    s_check(s_total() == before && before >= 0, "read-only: nothing was sent");
    resp_t r;
    s_http("GET", "/", NULL, NULL, &r);
    s_check(r.status == 200 && strstr(r.body, "data-readonly=\"true\""),
            "read-only: the page knows (buttons disabled)");
    s_free(&r);
}

static void t_prefix(const char *prefix)
{
    char path[300];
    resp_t r;
    snprintf(path, sizeof path, "%s/", prefix);
    s_http("GET", path, NULL, NULL, &r);
    char want[300];
    snprintf(want, sizeof want, "%s/static/app.js", prefix);
    s_check(r.status == 200 && strstr(r.body, want), "GET %s/ -> page linking %s", prefix, want);
    s_free(&r);
    snprintf(path, sizeof path, "%s/api/tasks", prefix);
    s_http("GET", path, NULL, NULL, &r);
    s_check(r.status == 200, "GET %s/api/tasks -> 200", prefix);
    s_free(&r);
    s_http("GET", "/api/tasks", NULL, NULL, &r);
    s_check(r.status == 404, "GET /api/tasks without the prefix -> 404");
    s_free(&r);
    snprintf(path, sizeof path, "%s/static/app.js", prefix);
    s_http("GET", path, NULL, NULL, &r);
    s_check(r.status == 200, "GET %s -> 200", path);
    s_free(&r);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: flower_api open|auth|readonly|prefix HOST PORT [ARG...]\n");
        return 2;
    }
    s_host = argv[2];
    s_port = atoi(argv[3]);
    const char *mode = argv[1];
    if (!strcmp(mode, "open") && argc >= 5) {
        t_pages();
        t_tasks(argv[4]);
        t_workers(argv[4]);
        t_metrics(argv[4]);
        t_bad_input();
        t_revoke();
        t_concurrent();
        t_sse();
    } else if (!strcmp(mode, "auth") && argc >= 6) {
        t_auth(argv[4], argv[5]);
    } else if (!strcmp(mode, "readonly")) {
        t_readonly();
    } else if (!strcmp(mode, "prefix") && argc >= 5) {
        t_prefix(argv[4]);
    } else {
        fprintf(stderr, "flower_api: bad arguments\n");
        return 2;
    }
    return s_fail ? 1 : 0;
}
