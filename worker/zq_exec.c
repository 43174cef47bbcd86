/*
 * zq_exec - decode a TASK message, run the task, turn what it did into a STATE body.
 *
 * Runs in whichever process or thread the pool runs tasks in; the log lines it writes carry
 * that process's name (ForkPoolWorker-N, ThreadPoolWorker-N, MainProcess), as Celery's do.
 * C has no stack to show, so a "traceback" is what we know: the plugin file, the call with
 * its arguments, any note (e.g. why a retry was refused), and the error.
 */
#include "config.h"
#include "zq_exec.h"
#include "zq_jscan.h"
#include "zq_log.h"
#include "zq_time.h"
#include "zq_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest result repr in the "succeeded in" log line (Celery's resultrepr_maxsize). */
#define RESULT_REPR_MAX 1024

static const char *s_type_name(const cJSON *v)
{
    if (!v)
        return "nothing";
    if (cJSON_IsArray(v))
        return "an array";
    if (cJSON_IsObject(v))
        return "an object";
    if (cJSON_IsString(v))
        return "a string";
    if (cJSON_IsNumber(v))
        return "a number";
    if (cJSON_IsBool(v))
        return "a boolean";
    if (cJSON_IsNull(v))
        return "null";
    return "an invalid value";
}

/* The members zq_exec_decode reads, found in one pass over the message (it runs twice per
 * task, in the worker and in the pool child; a lookup per key walked the members 16 times). */
enum {
    F_ID,
    F_ROOT_ID,
    F_PARENT_ID,
    F_GROUP,
    F_ORIGIN,
    F_QUEUE,
    F_RETRIES,
    F_PRIORITY,
    F_REDELIVERED,
    F_IGNORE_RESULT,
    F_TIMELIMIT,
    F_TASK,
    F_ARGS,
    F_KWARGS,
    F_ETA,
    F_EXPIRES,
    F_COUNT
};
static const char *const s_keys[F_COUNT] = {
    "id",       "root_id",  "parent_id", "group",       "origin",        "queue",
    "retries",  "priority", "redelivered", "ignore_result", "timelimit", "task",
    "args",     "kwargs",   "eta",       "expires"};

static double s_num(const cJSON *it, double fallback)
{
    return cJSON_IsNumber(it) ? it->valuedouble : fallback;
}

static int s_bool(const cJSON *it, int fallback)
{
    return cJSON_IsBool(it) ? cJSON_IsTrue(it) : fallback;
}

/* An optional timestamp member: absent/null = none; else an ISO 8601 string. */
static int s_time_field(const cJSON *it, const char *key, const char **text, double *t, char *err,
                        size_t errlen)
{
    *text = NULL;
    *t = 0;
    if (!it || cJSON_IsNull(it))
        return ZQ_OK;
    if (!cJSON_IsString(it) || zq_time_parse(it->valuestring, t) != ZQ_OK) {
        zq_errf(err, errlen, "%s must be an ISO 8601 timestamp or null, got %s", key,
              s_type_name(it));
        return ZQ_EINVAL;
    }
    *text = it->valuestring;
    return ZQ_OK;
}

int zq_exec_decode(zq_request_t *r, const cJSON *body, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    r->body = body;
    if (!cJSON_IsObject(body)) {
        zq_errf(err, errlen, "task message is not a JSON object");
        return ZQ_EPROTO;
    }
    const cJSON *f[F_COUNT];
    zq_json_members(body, s_keys, F_COUNT, f);
    const char *id = zq_json_member_str(f[F_ID], NULL);
    if (!zq_valid_token(id)) {
        zq_errf(err, errlen, "task message without a valid id");
        return ZQ_EPROTO;
    }
    r->id = id;
    /* informational fields: a wrong type falls back to the default (§5: be lenient) */
    const char *root = zq_json_member_str(f[F_ROOT_ID], NULL);
    r->root_id = root ? root : id;
    r->parent_id = zq_json_member_str(f[F_PARENT_ID], NULL);
    r->group = zq_json_member_str(f[F_GROUP], NULL);
    r->origin = zq_json_member_str(f[F_ORIGIN], NULL);
    const char *queue = zq_json_member_str(f[F_QUEUE], NULL);
    r->queue = queue ? queue : ZQ_DEFAULT_QUEUE;
    double retries = s_num(f[F_RETRIES], 0);
    r->retries = retries >= 0 && retries < 1e9 ? (int)retries : 0;
    double prio = s_num(f[F_PRIORITY], 0);
    r->priority = prio >= 0 && prio <= 9 ? (int)prio : 0;
    r->redelivered = s_bool(f[F_REDELIVERED], 0);
    r->ignore_result = s_bool(f[F_IGNORE_RESULT], 0);
    const cJSON *tl = f[F_TIMELIMIT];
    if (cJSON_IsArray(tl)) {
        const cJSON *h = cJSON_GetArrayItem(tl, 0), *s = cJSON_GetArrayItem(tl, 1);
        r->hard = cJSON_IsNumber(h) && h->valuedouble > 0 ? h->valuedouble : 0;
        r->soft = cJSON_IsNumber(s) && s->valuedouble > 0 ? s->valuedouble : 0;
    }

    /* fields that decide whether and how it runs: a wrong one fails the task */
    const char *task = zq_json_member_str(f[F_TASK], NULL);
    if (!zq_valid_token(task)) {
        zq_errf(err, errlen, "task name missing or invalid");
        return ZQ_EINVAL;
    }
    r->task = task;
    const cJSON *args = f[F_ARGS];
    if (!args || cJSON_IsNull(args)) {
        if (!(r->own_args = cJSON_CreateArray())) {
            zq_errf(err, errlen, "out of memory");
            return ZQ_EPROTO;
        }
        args = r->own_args;
    } else if (!cJSON_IsArray(args)) {
        zq_errf(err, errlen, "args must be a JSON array, got %s", s_type_name(args));
        return ZQ_EINVAL;
    }
    r->args = args;
    const cJSON *kwargs = f[F_KWARGS];
    if (!kwargs || cJSON_IsNull(kwargs)) {
        if (!(r->own_kwargs = cJSON_CreateObject())) {
            zq_errf(err, errlen, "out of memory");
            return ZQ_EPROTO;
        }
        kwargs = r->own_kwargs;
    } else if (!cJSON_IsObject(kwargs)) {
        zq_errf(err, errlen, "kwargs must be a JSON object, got %s", s_type_name(kwargs));
        return ZQ_EINVAL;
    }
    r->kwargs = kwargs;
    if (s_time_field(f[F_ETA], "eta", &r->eta, &r->eta_t, err, errlen) != ZQ_OK ||
        s_time_field(f[F_EXPIRES], "expires", &r->expires, &r->expires_t, err, errlen) != ZQ_OK)
        return ZQ_EINVAL;
    return ZQ_OK;
}

/* The text readers of zq_exec_decode_text: 0, or ZQ_JSCAN_DECLINE. */
typedef struct {
    const char *s; /* escaped bytes between the quotes; NULL: absent or null */
    size_t n;
} s_span_t;

/* A string or null. */
static int s_text_str(zq_jscan_t *j, s_span_t *v)
{
    if (zq_jscan_literal(j, "null") == 0) {
        v->s = NULL;
        return 0;
    }
    return zq_jscan_string(j, 1, &v->s, &v->n);
}

/* A number, finite. */
static int s_text_num(zq_jscan_t *j, double *v)
{
    return zq_jscan_number(j, v) == 0 && isfinite(*v) ? 0 : ZQ_JSCAN_DECLINE;
}

/* "timelimit": [hard, soft], each a number or null. */
static int s_text_limits(zq_jscan_t *j, double *hard, double *soft)
{
    double *v[2] = {hard, soft};
    if (zq_jscan_array(j) != 0)
        return ZQ_JSCAN_DECLINE;
    for (int i = 0; i < 2; i++) {
        *v[i] = 0;
        if (i && zq_jscan_char(j, ',') != 0)
            return ZQ_JSCAN_DECLINE;
        double x;
        if (zq_jscan_literal(j, "null") == 0)
            continue;
        if (s_text_num(j, &x) != 0)
            return ZQ_JSCAN_DECLINE;
        *v[i] = x > 0 ? x : 0;
    }
    return zq_jscan_char(j, ']');
}

int zq_exec_decode_text(zq_request_t *r, const char *raw, size_t len, char **store)
{
    memset(r, 0, sizeof *r);
    *store = NULL;
    s_span_t str[F_COUNT];
    memset(str, 0, sizeof str);
    double retries = 0, prio = 0;
    unsigned seen = 0;
    zq_jscan_t j;
    zq_jscan_init(&j, raw, len);
    const char *k;
    size_t kn, need = 0;
    int first = 1, more;
    if (zq_jscan_object(&j) != 0)
        return ZQ_EXEC_DECLINED;
    while ((more = zq_jscan_member(&j, &first, &k, &kn)) == 1) {
        int key = -1;
        for (int i = 0; i < F_COUNT && key < 0; i++)
            if (strlen(s_keys[i]) == kn && !memcmp(s_keys[i], k, kn))
                key = i;
        if (key < 0) { /* a member the worker does not read */
            if (zq_jscan_value(&j, 1, NULL, NULL) != 0)
                return ZQ_EXEC_DECLINED;
            continue;
        }
        if (seen >> key & 1)
            return ZQ_EXEC_DECLINED;
        seen |= 1u << key;
        int rc;
        switch (key) {
        case F_RETRIES: rc = s_text_num(&j, &retries); break;
        case F_PRIORITY: rc = s_text_num(&j, &prio); break;
        case F_REDELIVERED: rc = zq_jscan_bool(&j, &r->redelivered); break;
        case F_IGNORE_RESULT: rc = zq_jscan_bool(&j, &r->ignore_result); break;
        case F_TIMELIMIT: rc = s_text_limits(&j, &r->hard, &r->soft); break;
        case F_ARGS:
        case F_KWARGS: /* checked here, built when asked for (zq_exec_decode_args) */
            rc = zq_jscan_peek(&j, key == F_ARGS ? '[' : '{') || zq_jscan_peek(&j, 'n')
                     ? zq_jscan_value(&j, 1, NULL, NULL)
                     : ZQ_JSCAN_DECLINE;
            break;
        default:
            rc = s_text_str(&j, &str[key]);
            need += str[key].n + 1;
        }
        if (rc != 0)
            return ZQ_EXEC_DECLINED;
    }
    if (more != 0 || zq_jscan_end(&j) != 0)
        return ZQ_EXEC_DECLINED;
    char *buf = malloc(need ? need : 1), *at = buf;
    if (!buf)
        return ZQ_ENOMEM;
    const char *v[F_COUNT] = {NULL};
    for (int i = 0; i < F_COUNT; i++)
        if (str[i].s) {
            v[i] = at;
            at += zq_jscan_unescape(str[i].s, str[i].n, at) + 1;
        }
    /* anything zq_exec_decode would refuse or word is left to it */
    if (!zq_valid_token(v[F_ID]) || !zq_valid_token(v[F_TASK]) ||
        (v[F_ETA] && zq_time_parse(v[F_ETA], &r->eta_t) != ZQ_OK) ||
        (v[F_EXPIRES] && zq_time_parse(v[F_EXPIRES], &r->expires_t) != ZQ_OK)) {
        free(buf);
        memset(r, 0, sizeof *r);
        return ZQ_EXEC_DECLINED;
    }
    r->id = v[F_ID];
    r->task = v[F_TASK];
    r->root_id = v[F_ROOT_ID] ? v[F_ROOT_ID] : r->id;
    r->parent_id = v[F_PARENT_ID];
    r->group = v[F_GROUP];
    r->origin = v[F_ORIGIN];
    r->queue = v[F_QUEUE] ? v[F_QUEUE] : ZQ_DEFAULT_QUEUE;
    r->retries = retries >= 0 && retries < 1e9 ? (int)retries : 0;
    r->priority = prio >= 0 && prio <= 9 ? (int)prio : 0;
    r->eta = v[F_ETA];
    r->expires = v[F_EXPIRES];
    *store = buf;
    return ZQ_OK;
}

int zq_exec_decode_args(zq_request_t *r, const char *raw, size_t len, cJSON **tree)
{
    *tree = NULL;
    if (r->args)
        return ZQ_OK;
    cJSON *body = cJSON_ParseWithLength(raw, len);
    const cJSON *f[F_COUNT];
    zq_json_members(body, s_keys, F_COUNT, f);
    const cJSON *args = cJSON_IsArray(f[F_ARGS]) ? f[F_ARGS] : NULL;
    const cJSON *kwargs = cJSON_IsObject(f[F_KWARGS]) ? f[F_KWARGS] : NULL;
    if (!body || (!args && !(r->own_args = cJSON_CreateArray())) ||
        (!kwargs && !(r->own_kwargs = cJSON_CreateObject()))) {
        cJSON_Delete(body);
        return ZQ_ENOMEM;
    }
    r->args = args ? args : r->own_args;
    r->kwargs = kwargs ? kwargs : r->own_kwargs;
    *tree = body;
    return ZQ_OK;
}

void zq_outcome_clear(zq_outcome_t *out)
{
    if (!out)
        return;
    free(out->json);
    memset(out, 0, sizeof *out);
}

/* {"id":..,"state":..,"worker":..,"timestamp":.. (no closing brace); when <= 0: now */
static void s_head_at(zq_sb_t *sb, const char *id, const char *state, const char *worker,
                      double when)
{
    char ts[40];
    zq_sb_puts(sb, "{\"id\":");
    zq_sb_json_str(sb, id);
    zq_sb_puts(sb, ",\"state\":\"");
    zq_sb_puts(sb, state);
    zq_sb_puts(sb, "\",\"worker\":");
    zq_sb_json_str(sb, worker);
    zq_sb_puts(sb, ",\"timestamp\":\"");
    zq_sb_puts(sb, zq_time_iso(when > 0 ? when : zq_now(), ts, sizeof ts));
    zq_sb_putc(sb, '"');
}

static void s_head(zq_sb_t *sb, const char *id, const char *state, const char *worker)
{
    s_head_at(sb, id, state, worker, 0);
}

static void s_exception(zq_sb_t *sb, const char *type, const char *message)
{
    zq_sb_puts(sb, ",\"exception\":{\"type\":");
    zq_sb_json_str(sb, type);
    zq_sb_puts(sb, ",\"message\":");
    zq_sb_json_str(sb, message ? message : "");
    zq_sb_putc(sb, '}');
}

char *zq_exec_state_received(const char *id, const char *worker, double when, size_t *len)
{
    zq_sb_t sb;
    zq_sb_init(&sb);
    s_head_at(&sb, id, ZQ_STATE_RECEIVED, worker, when);
    zq_sb_putc(&sb, '}');
    return zq_sb_steal(&sb, len);
}

char *zq_exec_state_started(const char *id, const char *worker, long pid, int acks_late,
                            double when, size_t *len)
{
    zq_sb_t sb;
    zq_sb_init(&sb);
    s_head_at(&sb, id, ZQ_STATE_STARTED, worker, when);
    zq_sb_printf(&sb, ",\"pid\":%ld,\"acks_late\":%s}", pid, acks_late ? "true" : "false");
    return zq_sb_steal(&sb, len);
}

char *zq_exec_state_error(const char *id, const char *worker, const char *state, const char *type,
                          const char *message, const char *traceback, double runtime,
                          const char *extra, size_t *len)
{
    zq_sb_t sb;
    zq_sb_init(&sb);
    s_head(&sb, id, state, worker);
    s_exception(&sb, type, message);
    zq_sb_puts(&sb, ",\"traceback\":");
    zq_sb_json_str(&sb, traceback);
    if (runtime >= 0) {
        zq_sb_puts(&sb, ",\"runtime\":");
        zq_sb_json_secs(&sb, runtime);
    }
    if (extra && *extra) {
        zq_sb_putc(&sb, ',');
        zq_sb_puts(&sb, extra);
    }
    zq_sb_putc(&sb, '}');
    return zq_sb_steal(&sb, len);
}

char *zq_exec_exc_repr(const char *type, const char *message)
{
    zq_sb_t sb;
    zq_sb_init(&sb);
    zq_sb_puts(&sb, type ? type : "Exception");
    zq_sb_putc(&sb, '(');
    zq_sb_pystr(&sb, message ? message : "");
    zq_sb_putc(&sb, ')');
    return zq_sb_steal(&sb, NULL);
}

char *zq_exec_traceback(const zq_task_entry_t *t, const char *name, const cJSON *args,
                        const cJSON *kwargs, const char *note, const char *type,
                        const char *message)
{
    zq_sb_t sb;
    zq_sb_init(&sb);
    if (!name)
        name = t ? t->name : "?";
    zq_sb_puts(&sb, "Traceback (most recent call last):\n");
    if (t && t->path)
        zq_sb_printf(&sb, "  File \"%s\", in %s\n", t->path, name);
    else
        zq_sb_printf(&sb, "  No plugin of this worker declares %s\n", name);
    if (args || kwargs) { /* none: the arguments themselves were unusable */
        /* the call as Python would write it: name(1, 'a', key=2) */
        zq_sb_printf(&sb, "    %s(", name);
        size_t from = sb.len;
        int first = 1;
        for (const cJSON *a = args ? args->child : NULL; a; a = a->next) {
            if (!first)
                zq_sb_puts(&sb, ", ");
            first = 0;
            zq_sb_pyrepr(&sb, a);
        }
        for (const cJSON *k = kwargs ? kwargs->child : NULL; k; k = k->next) {
            if (!first)
                zq_sb_puts(&sb, ", ");
            first = 0;
            zq_sb_printf(&sb, "%s=", k->string ? k->string : "?");
            zq_sb_pyrepr(&sb, k);
        }
        if (!sb.oom && sb.len - from > RESULT_REPR_MAX) {
            sb.len = from + RESULT_REPR_MAX;
            zq_sb_puts(&sb, "...");
        }
        zq_sb_puts(&sb, ")\n");
    }
    if (note && *note)
        zq_sb_printf(&sb, "  %s\n", note);
    zq_sb_printf(&sb, "%s: %s", type ? type : "Exception", message ? message : "");
    return zq_sb_steal(&sb, NULL);
}

static void s_log_failure(const zq_request_t *r, const char *type, const char *message,
                          const char *traceback)
{
    if (ZQ_LOG_ERROR < zq_log_get_level())
        return;
    char *repr = zq_exec_exc_repr(type, message);
    ZQ_ERROR("Task %s[%s] raised unexpected: %s\n%s", r->task, r->id, repr ? repr : type,
             traceback ? traceback : "");
    free(repr);
}

static int s_failure(const zq_task_entry_t *t, const zq_request_t *r, const zq_exec_env_t *env,
                     const char *type, const char *message, const char *note, double runtime,
                     zq_outcome_t *out)
{
    char *tb = zq_exec_traceback(t, r->task, r->args, r->kwargs, note, type, message);
    s_log_failure(r, type, message, tb);
    out->state = ZQ_OUT_FAILURE;
    out->json = zq_exec_state_error(r->id, env->worker, ZQ_STATE_FAILURE, type, message, tb,
                                    runtime, NULL, &out->len);
    free(tb);
    return out->json ? ZQ_OK : ZQ_ENOMEM;
}

static int s_success(const zq_task_entry_t *t, const zq_request_t *r, const zq_exec_env_t *env,
                     const cJSON *result, double runtime, zq_outcome_t *out)
{
    if (ZQ_LOG_INFO >= zq_log_get_level()) {
        zq_sb_t rs;
        zq_sb_init(&rs);
        /* "0.000123s", never "1.2e-07s" */
        zq_sb_json_secs(&rs, runtime);
        zq_sb_puts(&rs, "s: ");
        size_t from = rs.len;
        zq_sb_pyrepr(&rs, result);
        if (!rs.oom && rs.len - from > RESULT_REPR_MAX) {
            rs.len = from + RESULT_REPR_MAX - 3;
            zq_sb_puts(&rs, "...");
        }
        ZQ_INFO("Task %s[%s] succeeded in %s", r->task, r->id, rs.buf ? rs.buf : "?");
        zq_sb_free(&rs);
    }
    zq_sb_t sb;
    zq_sb_init(&sb);
    s_head(&sb, r->id, ZQ_STATE_SUCCESS, env->worker);
    zq_sb_puts(&sb, ",\"result\":");
    /* ignore_result: the state is recorded, the value is not (no need to ship it) */
    if (r->ignore_result || t->ignore_result)
        zq_sb_puts(&sb, "null");
    else
        zq_sb_json(&sb, result);
    zq_sb_puts(&sb, ",\"runtime\":");
    zq_sb_json_secs(&sb, runtime);
    zq_sb_putc(&sb, '}');
    out->state = ZQ_OUT_SUCCESS;
    out->json = zq_sb_steal(&sb, &out->len);
    return out->json ? ZQ_OK : ZQ_ENOMEM;
}

static int s_retry(const zq_request_t *r, const zq_exec_env_t *env, const zq_task_t *task,
                   double runtime, zq_outcome_t *out)
{
    char retry_msg[64];
    snprintf(retry_msg, sizeof retry_msg, "Retry in %gs", task->countdown);
    if (ZQ_LOG_INFO >= zq_log_get_level()) {
        char *repr = task->retry_type ? zq_exec_exc_repr(task->retry_type, task->retry_message)
                                      : NULL;
        ZQ_INFO("Task %s[%s] retry: %s%s%s", r->task, r->id, retry_msg, repr ? ": " : "",
                repr ? repr : "");
        free(repr);
    }
    char eta[40];
    zq_time_iso(zq_now() + task->countdown, eta, sizeof eta);
    zq_sb_t sb;
    zq_sb_init(&sb);
    s_head(&sb, r->id, ZQ_STATE_RETRY, env->worker);
    if (task->retry_type)
        s_exception(&sb, task->retry_type, task->retry_message);
    else
        s_exception(&sb, "Retry", retry_msg);
    zq_sb_puts(&sb, ",\"countdown\":");
    zq_sb_json_num(&sb, task->countdown);
    zq_sb_printf(&sb, ",\"eta\":\"%s\",\"runtime\":", eta);
    zq_sb_json_secs(&sb, runtime);
    zq_sb_putc(&sb, '}');
    out->state = ZQ_OUT_RETRY;
    out->json = zq_sb_steal(&sb, &out->len);
    return out->json ? ZQ_OK : ZQ_ENOMEM;
}

int zq_exec_run(const zq_task_entry_t *t, zq_request_t *r, const zq_exec_env_t *env,
                zq_outcome_t *out)
{
    memset(out, 0, sizeof *out);
    if (!t || !r || !env)
        return ZQ_EINVAL;
    if (!r->hostname)
        r->hostname = env->worker;
    zq_task_t task;
    memset(&task, 0, sizeof task);
    task.name = t->name;
    task.module = t->module;
    task.bound = t->bind;
    task.max_retries = t->max_retries;
    task.retry_delay = t->retry_delay;
    task.req = r;
    task.soft_flag = env->soft_flag;
    task.emit = env->emit;
    task.emit_arg = env->emit_arg;

    cJSON *result = NULL;
    double t0 = zq_mono();
    zq_task_status_t st = t->fn(&task, r->args, r->kwargs, &result);
    double runtime = zq_mono() - t0;
    out->runtime = runtime;

    int rc;
    if (st == ZQ_TASK_SUCCESS) {
        rc = s_success(t, r, env, result, runtime, out);
    } else if (st == ZQ_TASK_RETRY && task.retry_set) {
        rc = s_retry(r, env, &task, runtime, out);
    } else if (st == ZQ_TASK_FAILED && task.exc_type) {
        rc = s_failure(t, r, env, task.exc_type, task.exc_message, task.note, runtime, out);
    } else if (st == ZQ_TASK_RETRY) {
        rc = s_failure(t, r, env, "RuntimeError",
                       "the task returned ZQ_TASK_RETRY without a successful zq_task_retry()",
                       NULL, runtime, out);
    } else if (st == ZQ_TASK_FAILED) {
        rc = s_failure(t, r, env, "RuntimeError",
                       "the task returned ZQ_TASK_FAILED without calling zq_task_fail()", NULL,
                       runtime, out);
    } else {
        char msg[96];
        snprintf(msg, sizeof msg, "the task returned an unknown status (%d)", (int)st);
        rc = s_failure(t, r, env, "RuntimeError", msg, NULL, runtime, out);
    }
    cJSON_Delete(result);
    zq_task_clear(&task);
    return rc;
}
