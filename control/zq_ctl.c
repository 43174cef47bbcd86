/*
 * zq_ctl - the subcommands of zq-ctl. Human output reads like Celery's
 * (../shared/reference/celery-outputs.md); --json prints one JSON object per line.
 * Exit codes are zq_exit_t: 0 success, 1 task failed/revoked/timed out or broker
 * unreachable, 2 usage or input error.
 */
#include "config.h"
#include "zq_ctl.h"
#include "zq.h"
#include "zq_log.h"
#include "zq_proto.h"
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
static void s_print_failure(FILE *err, const cJSON *rec)
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
            s_print_failure(err, rec);
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
        s_print_failure(err, rec); /* --json: the record says it all */
done:
    zq_result_destroy(&r);
    return code;
}

/* ---------------------------------------------------------------------------------------
 * status
 */
static int s_cmd_status(const zq_cli_t *cli, zq_client_t *c, FILE *out, FILE *err)
{
    cJSON *reply = NULL;
    int rc = zq_client_request(c, ZQ_CMD_WORKERS, NULL, s_timeout(cli), &reply);
    if (rc != ZQ_OK)
        return s_fail(err, c, rc == ZQ_EINVAL ? ZQ_EPROTO : rc);
    const cJSON *workers = cJSON_GetObjectItemCaseSensitive(reply, "workers");
    int n = cJSON_IsArray(workers) ? cJSON_GetArraySize(workers) : 0;
    int code = ZQ_EXIT_OK;
    if (n == 0) {
        fprintf(err, "Error: No nodes replied within time constraint\n");
        code = ZQ_EXIT_FAIL;
    } else if (cli->json) {
        cJSON *o = cJSON_CreateObject();
        const cJSON *w;
        cJSON_ArrayForEach(w, workers)
        {
            cJSON *ok = cJSON_AddObjectToObject(o, zq_json_str(w, "name", "?"));
            if (ok)
                cJSON_AddStringToObject(ok, "ok", "pong");
        }
        s_print_json(out, o);
        cJSON_Delete(o);
    } else {
        const cJSON *w;
        cJSON_ArrayForEach(w, workers)
        {
            fprintf(out, "->  %s: OK\n", zq_json_str(w, "name", "?"));
        }
        fprintf(out, "\n%d node%s online.\n", n, n == 1 ? "" : "s");
    }
    cJSON_Delete(reply);
    return code;
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
        if (!isatty(STDIN_FILENO)) {
            fprintf(err, "Error: purge asks for confirmation but stdin is not a terminal; "
                         "use -f to purge without asking\n");
            return ZQ_EXIT_USAGE;
        }
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
        long n = (long)zq_json_num(reply, "purged", 0);
        const cJSON *qs = cJSON_GetObjectItemCaseSensitive(reply, "queues");
        int nq = cJSON_IsArray(qs) ? cJSON_GetArraySize(qs) : 0;
        if (n > 0)
            fprintf(out, "Purged %ld message%s from %d known task queue%s.\n", n,
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
 * Dispatch
 */
static const struct {
    zq_cli_cmd_t id;
    s_cmd_fn fn;
} s_table[] = {{ZQ_CLI_CALL, s_cmd_call},     {ZQ_CLI_RESULT, s_cmd_result},
               {ZQ_CLI_STATUS, s_cmd_status}, {ZQ_CLI_REVOKE, s_cmd_revoke},
               {ZQ_CLI_PURGE, s_cmd_purge},   {ZQ_CLI_EVENTS, s_cmd_events},
               {ZQ_CLI_QUEUES, s_cmd_queues}, {ZQ_CLI_NONE, NULL}};

int zq_ctl_run(const zq_cli_t *cli, FILE *out, FILE *err)
{
    if (cli->cmd == ZQ_CLI_HELP) {
        zq_cli_help(out, cli->help_for);
        return ZQ_EXIT_OK;
    }
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
