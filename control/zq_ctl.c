/*
 * zq_ctl - the subcommands of zq-ctl. Human output reads like Celery's
 * (../shared/reference/celery-outputs.md); --json prints one JSON object per line.
 * Exit codes are zq_exit_t: 0 success, 1 task failed/revoked/timed out or broker
 * unreachable, 2 usage or input error.
 */
#include "config.h"
#include "zq_ctl.h"
#include "zq_flower.h"
#include "zq.h"
#include "zq_auth.h"
#include "zq_log.h"
#include "zq_proto.h"
#include "zq_shell.h"
#include "zq_task_int.h"
#include "zq_time.h"
#include "zq_util.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <zmq.h>

#define S_DEFAULT_TIMEOUT 10.0 /* seconds: broker answers, and result's wait for a pending task */
#define S_EVENTS_TICK_MS 200   /* events: how often an interrupt is noticed */

typedef int (*s_cmd_fn)(const zq_cli_t *cli, zq_client_t *c, FILE *out, FILE *err);

static double s_timeout(const zq_cli_t *cli)
{
    return cli->timeout >= 0 ? cli->timeout : S_DEFAULT_TIMEOUT;
}

static void s_print_json(FILE *out, const cJSON *v)
{
    char *txt = cJSON_PrintUnformatted(v);
    fprintf(out, "%s\n", txt ? txt : "null");
    cJSON_free(txt);
    fflush(out);
}

/* "Error: ..." for a failed client call; returns the exit code. */
static int s_fail(FILE *err, zq_client_t *c, int rc)
{
    fprintf(err, "Error: %s\n", zq_client_errmsg(c));
    return zq_cli_exit_code(rc);
}

static int s_is_terminal(const char *state)
{
    return !strcmp(state, ZQ_STATE_SUCCESS) || !strcmp(state, ZQ_STATE_FAILURE) ||
           !strcmp(state, ZQ_STATE_REVOKED);
}

/* "FAILURE: ZeroDivisionError: division by zero", then the traceback. */
void zq_ctl_print_failure(FILE *err, const cJSON *rec)
{
    const char *state = zq_json_str(rec, "state", "?");
    const cJSON *exc = cJSON_GetObjectItemCaseSensitive(rec, "exception");
    if (cJSON_IsObject(exc))
        fprintf(err, "%s: %s: %s\n", state, zq_json_str(exc, "type", "Exception"),
                zq_json_str(exc, "message", ""));
    else
        fprintf(err, "%s\n", state);
    const char *tb = zq_json_str(rec, "traceback", NULL);
    if (tb && *tb)
        fprintf(err, "%s%s", tb, tb[strlen(tb) - 1] == '\n' ? "" : "\n");
}

/* ---------------------------------------------------------------------------------------
 * call
 */
static int s_cmd_call(const zq_cli_t *cli, zq_client_t *c, FILE *out, FILE *err)
{
    zq_send_opts_t o = {0};
    o.countdown = cli->countdown;
    o.eta = cli->eta;
    o.expires = cli->expires;
    o.expires_in = cli->expires_in;
    o.queue = cli->queue;
    o.task_id = cli->task_id;
    zq_async_result_t *r = NULL;
    double t0 = zq_mono();
    int rc = zq_client_apply_async(c, cli->task, cli->args, cli->kwargs, &o, &r);
    if (rc != ZQ_OK)
        return s_fail(err, c, rc);
    /* the id is printed only once the broker has stored the task */
    double ack = s_timeout(cli);
    rc = zq_client_flush(c, ack);
    int code = ZQ_EXIT_OK;
    if (rc == ZQ_ETIMEOUT) {
        fprintf(err, "Error: no answer from the broker at %s within %gs\n", zq_client_url(c), ack);
        code = ZQ_EXIT_FAIL;
        goto done;
    }
    if (rc != ZQ_OK) {
        code = s_fail(err, c, rc);
        goto done;
    }
    if (!cli->wait) {
        if (cli->json) {
            if (zq_result_state(r)) {
                s_print_json(out, zq_result_record(r));
            } else {
                code = s_fail(err, c, ZQ_EIO);
            }
        } else {
            fprintf(out, "%s\n", zq_result_id(r));
        }
        goto done;
    }
    double left = -1;
    if (cli->timeout >= 0) {
        left = cli->timeout - (zq_mono() - t0);
        if (left < 0)
            left = 0;
    }
    cJSON *value = NULL;
    rc = zq_result_get(r, left, &value);
    const cJSON *rec = zq_result_record(r);
    if (rc == ZQ_OK) {
        s_print_json(out, cli->json ? rec : value);
    } else if (rc == ZQ_EREMOTE && rec) {
        if (cli->json)
            s_print_json(out, rec); /* the record says it all */
        else
            zq_ctl_print_failure(err, rec);
        code = ZQ_EXIT_FAIL;
    } else if (rc == ZQ_ETIMEOUT && rec && cJSON_IsTrue(cJSON_GetObjectItem(rec, "timeout"))) {
        if (cli->json)
            s_print_json(out, rec);
        fprintf(err, "Error: timed out after %gs waiting for task %s (state %s)\n", cli->timeout,
                zq_result_id(r), zq_json_str(rec, "state", "PENDING"));
        code = ZQ_EXIT_FAIL;
    } else {
        code = s_fail(err, c, rc);
        if (rc == ZQ_EINVAL || rc == ZQ_ENOTFOUND)
            code = ZQ_EXIT_FAIL; /* the broker's verdict on a task, not a usage error */
    }
    cJSON_Delete(value);
done:
    zq_result_destroy(&r);
    return code;
}

/* ---------------------------------------------------------------------------------------
 * result
 */
static int s_cmd_result(const zq_cli_t *cli, zq_client_t *c, FILE *out, FILE *err)
{
    zq_async_result_t *r = zq_client_result(c, cli->id);
    if (!r) {
        fprintf(err, "Error: out of memory\n");
        return ZQ_EXIT_FAIL;
    }
    int code = ZQ_EXIT_OK;
    int known = zq_result_known(r);
    if (known < 0) {
        code = s_fail(err, c, known);
        goto done;
    }
    if (known == 0) {
        if (cli->json)
            s_print_json(out, zq_result_record(r));
        fprintf(err, "Error: unknown task id %s (the broker never accepted it)\n", cli->id);
        code = ZQ_EXIT_FAIL;
        goto done;
    }
    const char *task = zq_json_str(zq_result_record(r), "task", NULL);
    if (cli->task_name && task && strcmp(task, cli->task_name) != 0) {
        fprintf(err, "Error: task %s is %s, not %s\n", cli->id, task, cli->task_name);
        code = ZQ_EXIT_FAIL;
        goto done;
    }
    /* --json shows the record as it is now (scripts poll it), unless --timeout asks to wait */
    int wait = !cli->json || cli->timeout >= 0;
    if (wait && !s_is_terminal(zq_json_str(zq_result_record(r), "state", ""))) {
        double t = s_timeout(cli);
        int rc = zq_result_get(r, t, NULL);
        const cJSON *rec = zq_result_record(r);
        if (rc == ZQ_ETIMEOUT && rec && cJSON_IsTrue(cJSON_GetObjectItem(rec, "timeout"))) {
            if (cli->json)
                s_print_json(out, rec);
            fprintf(err, "Error: task %s still %s after %gs\n", cli->id,
                    zq_json_str(rec, "state", "PENDING"), t);
            code = ZQ_EXIT_FAIL;
            goto done;
        }
        if (rc != ZQ_OK && rc != ZQ_EREMOTE) {
            code = s_fail(err, c, rc);
            if (code == ZQ_EXIT_USAGE)
                code = ZQ_EXIT_FAIL;
            goto done;
        }
    }
    const cJSON *rec = zq_result_record(r);
    const char *state = zq_json_str(rec, "state", "");
    code = zq_cli_state_exit_code(state);
    if (cli->json) {
        s_print_json(out, rec);
    } else if (cli->traceback) {
        /* Celery's --traceback: the traceback only (an empty line when there is none) */
        const char *tb = zq_json_str(rec, "traceback", "");
        fprintf(out, "%s%s", tb, *tb && tb[strlen(tb) - 1] == '\n' ? "" : "\n");
    } else if (code == ZQ_EXIT_OK) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, "result");
        cJSON *null = v ? NULL : cJSON_CreateNull();
        s_print_json(out, v ? v : null);
        cJSON_Delete(null);
    }
    if (code != ZQ_EXIT_OK && !cli->traceback && !cli->json && s_is_terminal(state))
        zq_ctl_print_failure(err, rec); /* --json: the record says it all */
done:
    zq_result_destroy(&r);
    return code;
}

/* ---------------------------------------------------------------------------------------
 * Remote control: status, inspect (docs/management.md)
 *
 * The broker's WORKERS list gives every live worker and its control endpoint; one DEALER
 * per worker sends INSPECT, all at once, and the replies are gathered until every worker
 * has answered or --timeout (default 1.0 s) has passed. A worker that did not answer is
 * reported as an ERROR; it never holds the command longer than the timeout.
 */
typedef struct {
    char *name;
    void *sock;
    void *mon;        /* CURVE: reports a refused handshake (zq_curve_monitor) */
    cJSON *reply;     /* the "reply" value (owned); NULL while unanswered */
    char error[300];  /* why there is no reply ("" while waiting) */
    int truncated;    /* the worker cut its list (too large) */
} s_node_t;

typedef struct {
    s_node_t *v;
    size_t n;
    void *ctx;
    zq_curve_client_t curve; /* zq-ctl's keys ($ZQ_CURVE_SECRET...); workers' keys come from
                              * WORKERS ("curve_key"), announced over the broker's channel */
} s_nodes_t;

static void s_nodes_free(s_nodes_t *g)
{
    for (size_t i = 0; i < g->n; i++) {
        if (g->v[i].sock)
            zmq_close(g->v[i].sock);
        if (g->v[i].mon)
            zmq_close(g->v[i].mon);
        free(g->v[i].name);
        cJSON_Delete(g->v[i].reply);
    }
    free(g->v);
    if (g->ctx)
        zmq_ctx_term(g->ctx);
    memset(g, 0, sizeof *g); /* the keys too */
}

static double s_ctl_timeout(const zq_cli_t *cli)
{
    return cli->timeout >= 0 ? cli->timeout : ZQ_CTL_CONTROL_TIMEOUT;
}

static int s_wanted(const zq_cli_t *cli, const char *name)
{
    if (!cli->destination)
        return 1;
    const cJSON *d;
    cJSON_ArrayForEach(d, cli->destination)
    {
        if (cJSON_IsString(d) && !strcmp(d->valuestring, name))
            return 1;
    }
    return 0;
}

static s_node_t *s_node_add(s_nodes_t *g, const char *name)
{
    s_node_t *v = realloc(g->v, (g->n + 1) * sizeof *v);
    if (!v)
        return NULL;
    g->v = v;
    s_node_t *nd = &g->v[g->n];
    memset(nd, 0, sizeof *nd);
    if (!(nd->name = strdup(name)))
        return NULL;
    g->n++;
    return nd;
}

static int s_node_cmp(const void *a, const void *b)
{
    return strcmp(((const s_node_t *)a)->name, ((const s_node_t *)b)->name);
}

/* Send INSPECT to one worker (w: its WORKERS entry). On failure, nd->error says why. */
static void s_node_ask(s_nodes_t *g, s_node_t *nd, const cJSON *w, const char *broker_url,
                       const char *request, size_t reqlen)
{
    const char *announced = zq_json_str(w, "control", "");
    if (!*announced) {
        snprintf(nd->error, sizeof nd->error,
                 "no control socket (a zq-worker older than the control protocol?)");
        return;
    }
    /* a wildcard host (--control tcp://0.0.0.0:N) means the worker's own host */
    char via[300], ep[600];
    const char *host = zq_json_str(w, "hostname", "");
    if (*host)
        snprintf(via, sizeof via, "tcp://%s:1", host);
    else
        snprintf(via, sizeof via, "%s", broker_url);
    if (zq_endpoint_resolve(announced, via, ep, sizeof ep) != ZQ_OK) {
        snprintf(nd->error, sizeof nd->error, "unusable control endpoint '%.200s'", announced);
        return;
    }
    /* a worker with CURVE announces its control socket's public key */
    const char *key = zq_json_str(w, "curve_key", NULL);
    if (key && !g->curve.enabled) {
        snprintf(nd->error, sizeof nd->error,
                 "its control socket requires CURVE: give zq-ctl --curve-secret and "
                 "--curve-server-key (or %s and %s)", ZQ_CURVE_ENV_SECRET, ZQ_CURVE_ENV_SERVER);
        return;
    }
    if (key && !zq_curve_valid_key(key)) {
        snprintf(nd->error, sizeof nd->error, "it announced a malformed curve_key");
        return;
    }
    nd->sock = zmq_socket(g->ctx, ZMQ_DEALER);
    if (!nd->sock) {
        snprintf(nd->error, sizeof nd->error, "cannot create a socket: %s", zmq_strerror(errno));
        return;
    }
    zq_socket_defaults(nd->sock);
    if (key && (zq_curve_client_apply(nd->sock, &g->curve, key) != ZQ_OK ||
                zq_curve_monitor(g->ctx, nd->sock, &nd->mon) != ZQ_OK)) {
        snprintf(nd->error, sizeof nd->error, "cannot set up CURVE on the control connection");
        return;
    }
    if (zmq_connect(nd->sock, ep) != 0) {
        snprintf(nd->error, sizeof nd->error, "cannot connect to %.200s: %s", ep,
                 zmq_strerror(errno));
        return;
    }
    if (zq_msg_send_raw(nd->sock, NULL, 0, ZQ_CMD_INSPECT, request, reqlen, ZMQ_DONTWAIT) !=
        ZQ_OK)
        snprintf(nd->error, sizeof nd->error, "cannot send to %.200s: %s", ep,
                 zmq_strerror(errno));
}

/* Read a REPLY on nd's socket. Returns 1 when the node is settled (answered or failed), 0
 * when nothing is waiting, -1 after dropping a message that was not the awaited reply. */
static int s_node_read(s_node_t *nd)
{
    zq_msg_t m;
    char why[256];
    int rc = zq_msg_recv(nd->sock, 0, &m, ZMQ_DONTWAIT, why, sizeof why);
    if (rc == ZQ_ETIMEOUT)
        return 0;
    if (rc != ZQ_OK) {
        snprintf(nd->error, sizeof nd->error, "bad reply: %s", why);
        return 1;
    }
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(m.body, "error");
    cJSON *reply = cJSON_DetachItemFromObjectCaseSensitive(m.body, "reply");
    if (strcmp(m.cmd, ZQ_CMD_REPLY) != 0 || zq_json_num(m.body, "req", -1) != 1) {
        cJSON_Delete(reply);
        zq_msg_clear(&m);
        return -1; /* not ours: keep waiting */
    }
    if (e) {
        snprintf(nd->error, sizeof nd->error, "%s: %s", zq_json_str(e, "code", "?"),
                 zq_json_str(e, "message", ""));
        cJSON_Delete(reply);
    } else if (!reply) {
        snprintf(nd->error, sizeof nd->error, "bad reply: no \"reply\" member");
    } else {
        nd->reply = reply;
        nd->truncated = zq_json_bool(m.body, "truncated", 0);
    }
    zq_msg_clear(&m);
    return 1;
}

/* Ask every live worker (filtered by -d) `method` with `arguments` (borrowed, may be NULL)
 * and gather the replies, sorted by node name. ZQ_OK, or the client's error when the broker
 * did not give the worker list (message printed). */
static int s_gather(const zq_cli_t *cli, zq_client_t *c, const char *method,
                    const cJSON *arguments, s_nodes_t *g, FILE *err)
{
    memset(g, 0, sizeof *g);
    cJSON *workers = NULL;
    int rc = zq_client_request(c, ZQ_CMD_WORKERS, NULL, s_timeout(cli), &workers);
    if (rc != ZQ_OK) {
        fprintf(err, "Error: %s\n", zq_client_errmsg(c));
        return rc;
    }
    cJSON *body = cJSON_CreateObject();
    char *request = NULL;
    if (!body || !cJSON_AddNumberToObject(body, "req", 1) ||
        !cJSON_AddStringToObject(body, "method", method) ||
        (arguments && !cJSON_AddItemToObject(body, "arguments", cJSON_Duplicate(arguments, 1))) ||
        !(request = cJSON_PrintUnformatted(body)) || !(g->ctx = zmq_ctx_new())) {
        cJSON_Delete(body);
        cJSON_free(request);
        cJSON_Delete(workers);
        fprintf(err, "Error: out of memory\n");
        return ZQ_ENOMEM;
    }
    cJSON_Delete(body);
    char why[600];
    if (zq_curve_client_load(&g->curve, NULL, NULL, why, sizeof why) != ZQ_OK) {
        cJSON_free(request);
        cJSON_Delete(workers);
        fprintf(err, "Error: %s\n", why);
        return ZQ_EINVAL;
    }
    size_t reqlen = strlen(request);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(workers, "workers");
    const cJSON *w;
    cJSON_ArrayForEach(w, list)
    {
        const char *name = zq_json_str(w, "name", NULL);
        if (!name || !s_wanted(cli, name))
            continue;
        s_node_t *nd = s_node_add(g, name);
        if (!nd) {
            rc = ZQ_ENOMEM;
            break;
        }
        s_node_ask(g, nd, w, zq_client_url(c), request, reqlen);
    }
    cJSON_free(request);
    /* named with -d but not alive: said, not waited for */
    const cJSON *d;
    cJSON_ArrayForEach(d, cli->destination)
    {
        int found = 0;
        for (size_t i = 0; i < g->n; i++)
            found |= !strcmp(g->v[i].name, d->valuestring);
        s_node_t *nd = found ? NULL : s_node_add(g, d->valuestring);
        if (nd)
            snprintf(nd->error, sizeof nd->error, "not online (the broker does not list it)");
    }
    cJSON_Delete(workers);
    if (rc != ZQ_OK) {
        fprintf(err, "Error: out of memory\n");
        return rc;
    }
    /* per node: its DEALER and, with CURVE, its handshake monitor */
    zmq_pollitem_t *items = calloc(g->n ? 2 * g->n : 1, sizeof *items);
    size_t *which = calloc(g->n ? 2 * g->n : 1, sizeof *which);
    double deadline = zq_mono() + s_ctl_timeout(cli);
    while (items && which) {
        size_t k = 0;
        for (size_t i = 0; i < g->n; i++)
            if (!g->v[i].reply && !g->v[i].error[0] && g->v[i].sock) {
                items[k] = (zmq_pollitem_t){g->v[i].sock, 0, ZMQ_POLLIN, 0};
                which[k++] = i;
                if (g->v[i].mon) {
                    items[k] = (zmq_pollitem_t){g->v[i].mon, 0, ZMQ_POLLIN, 0};
                    which[k++] = i;
                }
            }
        double left = deadline - zq_mono();
        if (k == 0 || left <= 0)
            break;
        if (zmq_poll(items, (int)k, (long)(left * 1000) + 1) < 0 && errno != EINTR)
            break;
        for (size_t j = 0; j < k; j++) {
            s_node_t *nd = &g->v[which[j]];
            if (!(items[j].revents & ZMQ_POLLIN) || nd->reply || nd->error[0])
                continue;
            if (items[j].socket == nd->mon) {
                char peer[300];
                snprintf(peer, sizeof peer, "the control socket of %s", nd->name);
                zq_curve_monitor_check(nd->mon, 1, peer, nd->error, sizeof nd->error);
            } else {
                while (s_node_read(nd) < 0)
                    ;
            }
        }
    }
    free(items);
    free(which);
    for (size_t i = 0; i < g->n; i++)
        if (!g->v[i].reply && !g->v[i].error[0])
            snprintf(g->v[i].error, sizeof g->v[i].error, "no reply within %gs",
                     s_ctl_timeout(cli));
    if (g->n > 1)
        qsort(g->v, g->n, sizeof *g->v, s_node_cmp);
    return ZQ_OK;
}

/* Python's json.dumps(sort_keys=True, indent=4). */
static int s_key_cmp(const void *a, const void *b)
{
    return strcmp((*(const cJSON *const *)a)->string, (*(const cJSON *const *)b)->string);
}

static void s_pretty(zq_sb_t *sb, const cJSON *v, int level)
{
    int obj = cJSON_IsObject(v);
    if (!obj && !cJSON_IsArray(v)) {
        zq_sb_json(sb, v);
        return;
    }
    int n = cJSON_GetArraySize(v);
    if (n == 0) {
        zq_sb_puts(sb, obj ? "{}" : "[]");
        return;
    }
    const cJSON **items = malloc((size_t)n * sizeof *items);
    if (!items) {
        sb->oom = 1;
        return;
    }
    int k = 0;
    for (const cJSON *it = v->child; it && k < n; it = it->next)
        items[k++] = it;
    if (obj)
        qsort(items, (size_t)k, sizeof *items, s_key_cmp);
    zq_sb_puts(sb, obj ? "{\n" : "[\n");
    for (int i = 0; i < k; i++) {
        zq_sb_printf(sb, "%*s", 4 * (level + 1), "");
        if (obj) {
            zq_sb_json_str(sb, items[i]->string);
            zq_sb_puts(sb, ": ");
        }
        s_pretty(sb, items[i], level + 1);
        zq_sb_puts(sb, i + 1 < k ? ",\n" : "\n");
    }
    zq_sb_printf(sb, "%*s%c", 4 * level, "", obj ? '}' : ']');
    free(items);
}

char *zq_ctl_pretty_json(const cJSON *v)
{
    zq_sb_t sb;
    zq_sb_init(&sb);
    s_pretty(&sb, v, 0);
    return zq_sb_steal(&sb, NULL);
}

/* text, each line prefixed with `indent` spaces */
static void s_indented(FILE *out, const char *text, int indent)
{
    for (const char *p = text; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        fprintf(out, "%*s%.*s\n", indent, "", (int)n, p);
        p = nl ? nl + 1 : NULL;
    }
}

void zq_ctl_print_node(FILE *out, const char *node, const cJSON *reply, const char *error)
{
    if (error || !reply) {
        fprintf(out, "->  %s: ERROR\n", node);
        s_indented(out, error ? error : "no reply", 8);
        return;
    }
    fprintf(out, "->  %s: OK\n", node);
    const cJSON *ok = cJSON_IsObject(reply) ? cJSON_GetObjectItemCaseSensitive(reply, "ok") : NULL;
    if (cJSON_IsString(ok) && cJSON_GetArraySize(reply) == 1) {
        s_indented(out, ok->valuestring, 8); /* ping: {"ok": "pong"} */
    } else if (cJSON_IsArray(reply)) {
        if (cJSON_GetArraySize(reply) == 0)
            fprintf(out, "    - empty -\n");
        const cJSON *it;
        cJSON_ArrayForEach(it, reply)
        {
            if (cJSON_IsString(it)) {
                fprintf(out, "    * %s\n", it->valuestring);
                continue;
            }
            zq_sb_t sb;
            zq_sb_init(&sb);
            zq_sb_pyrepr(&sb, it);
            fprintf(out, "    * %s\n", sb.buf && !sb.oom ? sb.buf : "?");
            zq_sb_free(&sb);
        }
    } else {
        char *txt = zq_ctl_pretty_json(reply);
        s_indented(out, txt ? txt : "?", 4);
        fprintf(out, "    \n");
        free(txt);
    }
}

const char *zq_ctl_broker_task_state(const cJSON *rec, double now)
{
    if (!rec || cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(rec, "known")))
        return "unknown";
    const char *st = zq_json_str(rec, "state", "");
    static const struct {
        const char *state, *word;
    } map[] = {{ZQ_STATE_RECEIVED, "received"}, {ZQ_STATE_STARTED, "started"},
               {ZQ_STATE_SUCCESS, "success"},   {ZQ_STATE_FAILURE, "failure"},
               {ZQ_STATE_REVOKED, "revoked"}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(st, map[i].state))
            return map[i].word;
    double eta;
    const char *e = zq_json_str(rec, "eta", NULL);
    return e && zq_time_parse(e, &eta) == ZQ_OK && eta > now ? "scheduled" : "queued";
}

/* Add item (taken over, may be NULL) to o. 0 on failure (item freed). */
static int s_add_owned(cJSON *o, const char *key, cJSON *item)
{
    if (item && cJSON_AddItemToObject(o, key, item))
        return 1;
    cJSON_Delete(item);
    return 0;
}

/* A broker SCHEDULED row as a worker shows a scheduled task: {eta, priority, request}. */
static cJSON *s_broker_sched_item(const cJSON *row)
{
    const char *task = zq_json_str(row, "task", "");
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(row, "args");
    const cJSON *kwargs = cJSON_GetObjectItemCaseSensitive(row, "kwargs");
    double prio = zq_json_num(row, "priority", 0);
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    /* insertion order is the printed order: Celery's */
    int ok = cJSON_AddStringToObject(o, "eta", zq_json_str(row, "eta", "")) &&
             cJSON_AddNumberToObject(o, "priority", prio);
    cJSON *r = ok ? cJSON_AddObjectToObject(o, "request") : NULL;
    ok = r && cJSON_AddStringToObject(r, "id", zq_json_str(row, "id", "")) &&
         cJSON_AddStringToObject(r, "name", task) &&
         s_add_owned(r, "args", args ? cJSON_Duplicate(args, 1) : cJSON_CreateArray()) &&
         s_add_owned(r, "kwargs", kwargs ? cJSON_Duplicate(kwargs, 1) : cJSON_CreateObject()) &&
         cJSON_AddStringToObject(r, "type", task) && cJSON_AddNullToObject(r, "hostname") &&
         cJSON_AddNullToObject(r, "time_start") && cJSON_AddFalseToObject(r, "acknowledged");
    cJSON *di = ok ? cJSON_AddObjectToObject(r, "delivery_info") : NULL;
    ok = di && cJSON_AddStringToObject(di, "exchange", "") &&
         cJSON_AddStringToObject(di, "routing_key", zq_json_str(row, "queue", ZQ_DEFAULT_QUEUE)) &&
         cJSON_AddNumberToObject(di, "priority", prio) &&
         cJSON_AddFalseToObject(di, "redelivered") && cJSON_AddNullToObject(r, "worker_pid");
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* The broker's entry for inspect scheduled: the ETA tasks it still holds. */
static cJSON *s_broker_scheduled(zq_client_t *c, double timeout, int *truncated, char *why,
                                 size_t whylen)
{
    cJSON *reply = NULL;
    if (zq_client_request(c, ZQ_CMD_SCHEDULED, NULL, timeout, &reply) != ZQ_OK) {
        snprintf(why, whylen, "%s", zq_client_errmsg(c));
        return NULL;
    }
    *truncated = zq_json_bool(reply, "truncated", 0);
    cJSON *out = cJSON_CreateArray();
    const cJSON *row;
    cJSON_ArrayForEach(row, cJSON_GetObjectItemCaseSensitive(reply, "scheduled"))
    {
        cJSON *it = s_broker_sched_item(row);
        if (!it || !out || !cJSON_AddItemToArray(out, it)) {
            cJSON_Delete(it);
            cJSON_Delete(out);
            out = NULL;
            break;
        }
    }
    cJSON_Delete(reply);
    if (!out)
        snprintf(why, whylen, "out of memory");
    return out;
}

/* The broker's entry for query_task: {id: [state, record]} for the ids no worker holds;
 * NULL with *why empty when there are none. */
static cJSON *s_broker_query(zq_client_t *c, double timeout, const zq_cli_t *cli,
                             const s_nodes_t *g, char *why, size_t whylen)
{
    why[0] = '\0';
    cJSON *body = cJSON_CreateObject();
    cJSON *ids = body ? cJSON_AddArrayToObject(body, "ids") : NULL;
    int n = 0;
    for (size_t i = 1; ids && i < cli->npos; i++) {
        int held = 0;
        for (size_t k = 0; k < g->n && !held; k++)
            held = cJSON_GetObjectItemCaseSensitive(g->v[k].reply, cli->pos[i]) != NULL;
        if (!held && cJSON_AddItemToArray(ids, cJSON_CreateString(cli->pos[i])))
            n++;
    }
    if (!ids || n == 0) {
        if (!ids)
            snprintf(why, whylen, "out of memory");
        cJSON_Delete(body);
        return NULL;
    }
    cJSON *reply = NULL;
    int rc = zq_client_request(c, ZQ_CMD_QUERY, body, timeout, &reply);
    cJSON_Delete(body);
    if (rc != ZQ_OK) {
        snprintf(why, whylen, "%s", zq_client_errmsg(c));
        return NULL;
    }
    cJSON *out = cJSON_CreateObject();
    double now = zq_now();
    cJSON *rec;
    cJSON *recs = cJSON_GetObjectItemCaseSensitive(reply, "records");
    while (out && recs && (rec = recs->child)) {
        cJSON_DetachItemViaPointer(recs, rec);
        const char *id = zq_json_str(rec, "id", NULL);
        cJSON *pair = cJSON_CreateArray();
        if (!id || cJSON_GetObjectItemCaseSensitive(out, id) || !pair ||
            !cJSON_AddItemToArray(pair, cJSON_CreateString(zq_ctl_broker_task_state(rec, now))) ||
            !cJSON_AddItemToArray(pair, rec) || (rec = NULL, 0) ||
            !cJSON_AddItemToObject(out, id ? id : "", pair)) {
            cJSON_Delete(rec);
            cJSON_Delete(pair);
            continue;
        }
    }
    cJSON_Delete(reply);
    if (!out)
        snprintf(why, whylen, "out of memory");
    return out;
}

static int s_nodes_ok(const s_nodes_t *g)
{
    int n = 0;
    for (size_t i = 0; i < g->n; i++)
        n += g->v[i].reply != NULL;
    return n;
}

static void s_footer(FILE *out, int n)
{
    fprintf(out, "\n%d node%s online.\n", n, n == 1 ? "" : "s");
}

static void s_truncated_notice(FILE *err, const char *node)
{
    fprintf(err, "Warning: %s cut its reply short (more than %d MiB)\n", node, 4);
}

/* {node: reply or {"error": text}} with the replies moved out of g. Caller owns it. */
static cJSON *s_nodes_json(s_nodes_t *g)
{
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; o && i < g->n; i++) {
        s_node_t *nd = &g->v[i];
        cJSON *v = nd->reply;
        nd->reply = NULL;
        if (!v && (v = cJSON_CreateObject()) && !cJSON_AddStringToObject(v, "error", nd->error)) {
            cJSON_Delete(v);
            v = NULL;
        }
        if (!s_add_owned(o, nd->name, v)) {
            cJSON_Delete(o);
            o = NULL;
        }
    }
    return o;
}

static int s_cmd_status(const zq_cli_t *cli, zq_client_t *c, FILE *out, FILE *err)
{
    s_nodes_t g;
    int rc = s_gather(cli, c, "ping", NULL, &g, err);
    if (rc != ZQ_OK) {
        s_nodes_free(&g);
        return zq_cli_exit_code(rc == ZQ_EINVAL ? ZQ_EPROTO : rc);
    }
    int ok = s_nodes_ok(&g);
    if (cli->json && g.n) {
        cJSON *o = s_nodes_json(&g);
        s_print_json(out, o);
        cJSON_Delete(o);
    } else if (!cli->json) {
        for (size_t i = 0; i < g.n; i++) {
            if (g.v[i].reply)
                fprintf(out, "->  %s: OK\n", g.v[i].name); /* Celery's status: no "pong" */
            else
                zq_ctl_print_node(out, g.v[i].name, NULL, g.v[i].error);
        }
        if (ok)
            s_footer(out, ok);
    }
    s_nodes_free(&g);
    if (!ok) {
        fprintf(err, "Error: No nodes replied within time constraint\n");
        return ZQ_EXIT_FAIL;
    }
    return ZQ_EXIT_OK;
}

static int s_cmd_inspect(const zq_cli_t *cli, zq_client_t *c, FILE *out, FILE *err)
{
    cJSON *arguments = NULL;
    int query = !strcmp(cli->method, "query_task");
    if (query) {
        arguments = cJSON_CreateObject();
        cJSON *ids = arguments ? cJSON_AddArrayToObject(arguments, "ids") : NULL;
        for (size_t i = 1; ids && i < cli->npos; i++)
            if (!cJSON_AddItemToArray(ids, cJSON_CreateString(cli->pos[i])))
                ids = NULL;
        if (!ids) {
            cJSON_Delete(arguments);
            fprintf(err, "Error: out of memory\n");
            return ZQ_EXIT_FAIL;
        }
    }
    s_nodes_t g;
    int rc = s_gather(cli, c, cli->method, arguments, &g, err);
    cJSON_Delete(arguments);
    if (rc != ZQ_OK) {
        s_nodes_free(&g);
        return zq_cli_exit_code(rc == ZQ_EINVAL ? ZQ_EPROTO : rc);
    }
    /* what the broker holds: listed under its own entry, so nothing is invisible */
    cJSON *broker = NULL;
    char why[512] = "";
    int has_broker = 0, btrunc = 0;
    if (!cli->destination && !strcmp(cli->method, "scheduled")) {
        broker = s_broker_scheduled(c, s_timeout(cli), &btrunc, why, sizeof why);
        has_broker = 1;
    } else if (!cli->destination && query) {
        broker = s_broker_query(c, s_timeout(cli), cli, &g, why, sizeof why);
        has_broker = broker != NULL || why[0];
    }
    int ok = s_nodes_ok(&g);
    for (size_t i = 0; i < g.n; i++)
        if (g.v[i].truncated)
            s_truncated_notice(err, g.v[i].name);
    if (btrunc)
        fprintf(err, "Warning: the broker listed only the first 10000 scheduled tasks\n");
    if (cli->json) {
        cJSON *o = s_nodes_json(&g);
        if (o && has_broker) {
            cJSON *b = broker;
            broker = NULL;
            if (!b && (b = cJSON_CreateObject()) && !cJSON_AddStringToObject(b, "error", why)) {
                cJSON_Delete(b);
                b = NULL;
            }
            if (!s_add_owned(o, ZQ_CTL_BROKER_NODE, b)) {
                cJSON_Delete(o);
                o = NULL;
            }
        }
        if (o && (g.n || has_broker))
            s_print_json(out, o);
        cJSON_Delete(o);
    } else {
        for (size_t i = 0; i < g.n; i++)
            zq_ctl_print_node(out, g.v[i].name, g.v[i].reply,
                              g.v[i].reply ? NULL : g.v[i].error);
        if (has_broker)
            zq_ctl_print_node(out, ZQ_CTL_BROKER_NODE, broker, broker ? NULL : why);
        if (ok || has_broker)
            s_footer(out, ok);
    }
    cJSON_Delete(broker);
    s_nodes_free(&g);
    if (!ok && !has_broker) {
        fprintf(err, "Error: No nodes replied within time constraint\n");
        return ZQ_EXIT_FAIL;
    }
    return ZQ_EXIT_OK;
}

/* ---------------------------------------------------------------------------------------
 * revoke
 */
static int s_cmd_revoke(const zq_cli_t *cli, zq_client_t *c, FILE *out, FILE *err)
{
    cJSON *body = cJSON_CreateObject();
    cJSON *ids = body ? cJSON_AddArrayToObject(body, "ids") : NULL;
    for (size_t i = 0; ids && i < cli->npos; i++)
        cJSON_AddItemToArray(ids, cJSON_CreateString(cli->pos[i]));
    if (!ids || cJSON_GetArraySize(ids) != (int)cli->npos ||
        !cJSON_AddBoolToObject(body, "terminate", cli->terminate) ||
        !cJSON_AddStringToObject(body, "signal", cli->signal)) {
        cJSON_Delete(body);
        fprintf(err, "Error: out of memory\n");
        return ZQ_EXIT_FAIL;
    }
    cJSON *reply = NULL;
    int rc = zq_client_request(c, ZQ_CMD_REVOKE, body, s_timeout(cli), &reply);
    cJSON_Delete(body);
    if (rc != ZQ_OK)
        return s_fail(err, c, rc);
    if (cli->json) {
        s_print_json(out, reply);
    } else {
        const cJSON *done = cJSON_GetObjectItemCaseSensitive(reply, "revoked");
        fprintf(out, "tasks ");
        int first = 1;
        if (cJSON_IsArray(done) && cJSON_GetArraySize(done) > 0) {
            const cJSON *id;
            cJSON_ArrayForEach(id, done)
            {
                if (cJSON_IsString(id)) {
                    fprintf(out, "%s%s", first ? "" : ", ", id->valuestring);
                    first = 0;
                }
            }
        } else {
            for (size_t i = 0; i < cli->npos; i++)
                fprintf(out, "%s%s", i ? ", " : "", cli->pos[i]);
        }
        fprintf(out, " flagged as revoked%s\n",
                cli->terminate ? " (running ones terminated)" : "");
    }
    cJSON_Delete(reply);
    return ZQ_EXIT_OK;
}

/* ---------------------------------------------------------------------------------------
 * purge
 */
static void s_join_names(const cJSON *arr, const char *key, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        const char *s = cJSON_IsString(it) ? it->valuestring : zq_json_str(it, key, NULL);
        if (!s)
            continue;
        int w = snprintf(buf + n, len - n, "%s%s", n ? ", " : "", s);
        if (w < 0 || (size_t)w >= len - n)
            break;
        n += (size_t)w;
    }
}

static int s_cmd_purge(const zq_cli_t *cli, zq_client_t *c, FILE *out, FILE *err)
{
    double t = s_timeout(cli);
    if (!cli->force) {
        /* as Celery (click) does, the answer is read from stdin even when it is a pipe:
         * `echo y | zq-ctl purge` confirms, end of input aborts */
        char names[2048];
        int nq;
        if (cli->queues) {
            s_join_names(cli->queues, NULL, names, sizeof names);
            nq = cJSON_GetArraySize(cli->queues);
        } else {
            cJSON *reply = NULL;
            int rc = zq_client_request(c, ZQ_CMD_QUEUES, NULL, t, &reply);
            if (rc != ZQ_OK)
                return s_fail(err, c, rc);
            const cJSON *qs = cJSON_GetObjectItemCaseSensitive(reply, "queues");
            s_join_names(qs, "name", names, sizeof names);
            nq = cJSON_GetArraySize(qs);
            cJSON_Delete(reply);
        }
        fprintf(out,
                "WARNING:This will remove all tasks from queue%s: %s.\n"
                "         There is no undo for this operation!\n\n"
                "(to skip this prompt use the -f option)\n"
                "Are you sure you want to delete all tasks? [y/N]: ",
                nq == 1 ? "" : "s", nq ? names : "(none)");
        fflush(out);
        char line[64] = "";
        if (!fgets(line, sizeof line, stdin) || (strcasecmp(line, "y\n") && strcasecmp(line, "yes\n") &&
                                                 strcasecmp(line, "y") && strcasecmp(line, "yes"))) {
            fprintf(err, "Aborted!\n");
            return ZQ_EXIT_FAIL;
        }
    }
    cJSON *body = cJSON_CreateObject();
    if (!body || (cli->queues &&
                  !cJSON_AddItemReferenceToObject(body, "queues", (cJSON *)cli->queues))) {
        cJSON_Delete(body);
        fprintf(err, "Error: out of memory\n");
        return ZQ_EXIT_FAIL;
    }
    cJSON *reply = NULL;
    int rc = zq_client_request(c, ZQ_CMD_PURGE, body, t, &reply);
    cJSON_Delete(body); /* the reference does not free cli->queues */
    if (rc != ZQ_OK)
        return s_fail(err, c, rc);
    if (cli->json) {
        s_print_json(out, reply);
    } else {
        double n = zq_json_num(reply, "purged", 0); /* not cast: the broker's number */
        const cJSON *qs = cJSON_GetObjectItemCaseSensitive(reply, "queues");
        int nq = cJSON_IsArray(qs) ? cJSON_GetArraySize(qs) : 0;
        if (n > 0)
            fprintf(out, "Purged %.0f message%s from %d known task queue%s.\n", n,
                    n == 1 ? "" : "s", nq, nq == 1 ? "" : "s");
        else
            fprintf(out, "No messages purged from %d queue%s.\n", nq, nq == 1 ? "" : "s");
    }
    cJSON_Delete(reply);
    return ZQ_EXIT_OK;
}

/* ---------------------------------------------------------------------------------------
 * queues
 */
static int s_cmd_queues(const zq_cli_t *cli, zq_client_t *c, FILE *out, FILE *err)
{
    cJSON *reply = NULL;
    int rc = zq_client_request(c, ZQ_CMD_QUEUES, NULL, s_timeout(cli), &reply);
    if (rc != ZQ_OK)
        return s_fail(err, c, rc);
    if (cli->json) {
        s_print_json(out, reply);
        cJSON_Delete(reply);
        return ZQ_EXIT_OK;
    }
    const cJSON *qs = cJSON_GetObjectItemCaseSensitive(reply, "queues");
    int w = 5;
    const cJSON *q;
    cJSON_ArrayForEach(q, qs)
    {
        int n = (int)strlen(zq_json_str(q, "name", ""));
        if (n > w)
            w = n;
    }
    if (cJSON_GetArraySize(qs) == 0) {
        fprintf(out, "- empty -\n");
    } else {
        fprintf(out, "%-*s  %9s  %9s  %9s  %9s\n", w, "queue", "ready", "scheduled", "reserved",
                "consumers");
        cJSON_ArrayForEach(q, qs)
        {
            fprintf(out, "%-*s  %9.0f  %9.0f  %9.0f  %9.0f\n", w, zq_json_str(q, "name", "?"),
                    zq_json_num(q, "ready", 0), zq_json_num(q, "scheduled", 0),
                    zq_json_num(q, "reserved", 0), zq_json_num(q, "consumers", 0));
        }
    }
    cJSON_Delete(reply);
    return ZQ_EXIT_OK;
}

/* ---------------------------------------------------------------------------------------
 * events
 */
static volatile sig_atomic_t s_interrupted;

static void s_on_signal(int sig)
{
    (void)sig;
    s_interrupted = 1;
}

/* "task-succeeded uuid=... hostname=... result=4": every field but type and timestamp,
 * strings bare, other values as JSON. */
static void s_print_event(FILE *out, const cJSON *ev)
{
    fprintf(out, "%s", zq_json_str(ev, "type", "?"));
    const cJSON *f;
    cJSON_ArrayForEach(f, ev)
    {
        if (!f->string || !strcmp(f->string, "type") || !strcmp(f->string, "timestamp"))
            continue;
        if (cJSON_IsString(f)) {
            fprintf(out, " %s=%s", f->string, f->valuestring);
        } else {
            char *txt = cJSON_PrintUnformatted(f);
            fprintf(out, " %s=%s", f->string, txt ? txt : "?");
            cJSON_free(txt);
        }
    }
    fputc('\n', out);
    fflush(out);
}

/* One event: [topic][ZQP01][JSON object] (docs/protocol.md §4). Returns the body (caller
 * owns), or NULL for a malformed message, which is consumed whole. */
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
    cJSON *body = NULL;
    if (n == 3 && zmq_msg_size(&f[1]) == strlen(ZQ_PROTO_VERSION) &&
        !memcmp(zmq_msg_data(&f[1]), ZQ_PROTO_VERSION, strlen(ZQ_PROTO_VERSION))) {
        body = cJSON_ParseWithLength(zmq_msg_data(&f[2]), zmq_msg_size(&f[2]));
        if (!cJSON_IsObject(body)) {
            cJSON_Delete(body);
            body = NULL;
        }
    }
    for (size_t i = 0; i < n && i < 3; i++)
        zmq_msg_close(&f[i]);
    return body;
}

static int s_cmd_events(const zq_cli_t *cli, zq_client_t *c, FILE *out, FILE *err)
{
    cJSON *info = NULL;
    int rc = zq_client_request(c, ZQ_CMD_INFO, NULL, s_timeout(cli), &info);
    if (rc != ZQ_OK)
        return s_fail(err, c, rc);
    char ep[600];
    const char *announced = zq_json_str(info, "events", NULL);
    if (!announced ||
        zq_endpoint_resolve(announced, zq_client_url(c), ep, sizeof ep) != ZQ_OK) {
        fprintf(err, "Error: the broker at %s announced no usable events endpoint\n",
                zq_client_url(c));
        cJSON_Delete(info);
        return ZQ_EXIT_FAIL;
    }
    cJSON_Delete(info);
    void *ctx = zmq_ctx_new();
    void *sub = ctx ? zmq_socket(ctx, ZMQ_SUB) : NULL;
    int code = ZQ_EXIT_OK;
    if (!sub) {
        fprintf(err, "Error: cannot create a socket: %s\n", zmq_strerror(errno));
        code = ZQ_EXIT_FAIL;
        goto out;
    }
    zq_socket_defaults(sub);
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "", 0);
    /* the events socket is the broker's too: same server key as the frontend */
    zq_curve_client_t curve;
    char why[600];
    if (zq_curve_client_load(&curve, NULL, NULL, why, sizeof why) != ZQ_OK ||
        zq_curve_client_apply(sub, &curve, NULL) != ZQ_OK) {
        fprintf(err, "Error: %s\n", why);
        memset(&curve, 0, sizeof curve);
        code = ZQ_EXIT_USAGE;
        goto out;
    }
    memset(&curve, 0, sizeof curve);
    if (zmq_connect(sub, ep) != 0) {
        fprintf(err, "Error: cannot connect to the events endpoint %s: %s\n", ep,
                zmq_strerror(errno));
        code = ZQ_EXIT_FAIL;
        goto out;
    }
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal; /* no SA_RESTART: zmq_poll returns on Ctrl-C */
    sigemptyset(&sa.sa_mask);
    s_interrupted = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    long seen = 0, bad = 0;
    while (!s_interrupted && (cli->limit == 0 || seen < cli->limit)) {
        zmq_pollitem_t it = {sub, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, S_EVENTS_TICK_MS) <= 0)
            continue;
        cJSON *ev = s_recv_event(sub);
        if (!ev) {
            if (!bad++)
                ZQ_WARN("events: dropped a malformed event from %s (logged once)", ep);
            continue;
        }
        if (cli->json)
            s_print_json(out, ev);
        else
            s_print_event(out, ev);
        cJSON_Delete(ev);
        seen++;
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
out:
    if (sub)
        zmq_close(sub);
    if (ctx)
        zmq_ctx_term(ctx);
    return code;
}

/* ---------------------------------------------------------------------------------------
 * shell (control/zq_shell.c)
 */
static int s_cmd_shell(const zq_cli_t *cli, zq_client_t *c, FILE *out, FILE *err)
{
    return zq_shell_run(cli, c, stdin, out, err);
}

/* ---------------------------------------------------------------------------------------
 * keygen (docs/management.md "Security")
 */
static int s_cmd_keygen(const zq_cli_t *cli, FILE *out, FILE *err)
{
    const char *dir = cli->key_dir ? cli->key_dir : ".";
    const char *name = cli->key_name ? cli->key_name : ZQ_CLI_KEY_NAME;
    zq_curve_pair_t pair;
    char why[600];
    int rc = zq_curve_keygen(dir, name, &pair, why, sizeof why);
    if (rc != ZQ_OK) {
        fprintf(err, "Error: %s\n", why);
        return rc == ZQ_EINVAL ? ZQ_EXIT_USAGE : ZQ_EXIT_FAIL;
    }
    if (cli->json) {
        cJSON *o = cJSON_CreateObject();
        char path[4200];
        cJSON_AddStringToObject(o, "public_key", pair.public_key);
        snprintf(path, sizeof path, "%s/%s%s", dir, name, ZQ_CURVE_PUBLIC_SUFFIX);
        cJSON_AddStringToObject(o, "public_file", path);
        snprintf(path, sizeof path, "%s/%s%s", dir, name, ZQ_CURVE_SECRET_SUFFIX);
        cJSON_AddStringToObject(o, "secret_file", path);
        s_print_json(out, o);
        cJSON_Delete(o);
    } else {
        fprintf(out, "%s\n", pair.public_key);
        fprintf(err, "wrote %s/%s%s (public) and %s/%s%s (secret, mode 0600)\n", dir, name,
                ZQ_CURVE_PUBLIC_SUFFIX, dir, name, ZQ_CURVE_SECRET_SUFFIX);
    }
    memset(&pair, 0, sizeof pair);
    return ZQ_EXIT_OK;
}

/* --curve-secret / --curve-server-key: passed on through the environment, so that every
 * connection of this process (the client library, inspect's control connections, the
 * events socket, the shell's commands) uses them. Checked here to fail with a clear
 * message before anything connects. */
static int s_curve_setup(const zq_cli_t *cli, FILE *err)
{
    if (cli->curve_secret)
        setenv(ZQ_CURVE_ENV_SECRET, cli->curve_secret, 1);
    if (cli->curve_server_key)
        setenv(ZQ_CURVE_ENV_SERVER, cli->curve_server_key, 1);
    zq_curve_client_t curve;
    char why[600];
    int rc = zq_curve_client_load(&curve, NULL, NULL, why, sizeof why);
    memset(&curve, 0, sizeof curve);
    if (rc != ZQ_OK) {
        fprintf(err, "Error: %s\n", why);
        return ZQ_EXIT_USAGE;
    }
    return ZQ_EXIT_OK;
}

/* ---------------------------------------------------------------------------------------
 * Dispatch
 */
static const struct {
    zq_cli_cmd_t id;
    s_cmd_fn fn;
} s_table[] = {{ZQ_CLI_CALL, s_cmd_call},     {ZQ_CLI_RESULT, s_cmd_result},
               {ZQ_CLI_STATUS, s_cmd_status}, {ZQ_CLI_REVOKE, s_cmd_revoke},
               {ZQ_CLI_PURGE, s_cmd_purge},   {ZQ_CLI_EVENTS, s_cmd_events},
               {ZQ_CLI_QUEUES, s_cmd_queues}, {ZQ_CLI_INSPECT, s_cmd_inspect},
               {ZQ_CLI_SHELL, s_cmd_shell},   {ZQ_CLI_NONE, NULL}};

int zq_ctl_run(const zq_cli_t *cli, FILE *out, FILE *err)
{
    if (cli->cmd == ZQ_CLI_HELP) {
        zq_cli_help(out, cli->help_for);
        return ZQ_EXIT_OK;
    }
    if (cli->cmd == ZQ_CLI_KEYGEN)
        return s_cmd_keygen(cli, out, err);
    int curve_rc = s_curve_setup(cli, err);
    if (curve_rc != ZQ_EXIT_OK)
        return curve_rc;
    s_cmd_fn fn = NULL;
    for (size_t i = 0; s_table[i].fn; i++)
        if (s_table[i].id == cli->cmd)
            fn = s_table[i].fn;
    if (!fn) {
        fprintf(err, "Error: command not implemented\n");
        return ZQ_EXIT_USAGE;
    }
    char why[600];
    const char *url = zq_broker_url(cli->broker);
    if (zq_cli_check_url(url, why, sizeof why) != ZQ_OK) {
        fprintf(err, "Error: %s%s\n", why, cli->broker ? "" : " (from $ZQ_BROKER)");
        return ZQ_EXIT_USAGE;
    }
    zq_client_t *c = zq_client_new(url);
    if (!c) {
        fprintf(err, "Error: cannot connect to %s\n", url);
        return ZQ_EXIT_FAIL;
    }
    zq_client_set_timeout(c, s_timeout(cli));
    zq_client_set_linger(c, 0); /* call flushes itself and reports a failure */
    int code = fn(cli, c, out, err);
    fflush(out);
    zq_client_destroy(&c);
    return code;
}

int zq_ctl_main(int argc, char *argv[])
{
    if (zq_flower_wanted(argc, argv)) /* a server with options of its own */
        return zq_flower_main(argc, argv);
    /* the client library's notices are not for a CLI user; its warnings are */
    zq_log_set_level(ZQ_LOG_WARNING);
    zq_cli_t cli;
    char err[1024];
    int code;
    if (zq_cli_parse(&cli, argc, argv, err, sizeof err) != ZQ_OK) {
        zq_cli_print_error(stderr, cli.command, err);
        code = ZQ_EXIT_USAGE;
    } else if (cli.help) {
        zq_cli_help(stdout, cli.command);
        code = ZQ_EXIT_OK;
    } else if (cli.version) {
        printf("zq-ctl %s\n", PACKAGE_VERSION);
        code = ZQ_EXIT_OK;
    } else {
        code = zq_ctl_run(&cli, stdout, stderr);
    }
    zq_cli_clear(&cli);
    return code;
}
