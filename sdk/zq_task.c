/*
 * zq_task - the task side of the SDK: what a running task calls (request accessors, fail,
 * retry, log, sub-tasks).
 *
 * Every function here runs inside the process that runs the task (a prefork child, a pool
 * thread or the solo main loop); nothing touches ZeroMQ: sub-tasks leave through the
 * zq_emit_fn the pool installed. The retry rules follow Celery's Task.retry (see zq.h).
 */
#include "config.h"
#include "zq_task_int.h"
#include "zq_log.h"
#include "zq_time.h"
#include "zq_util.h"
#include "zq_uuid.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Longest argsrepr/kwargsrepr kept in a request dump, as Celery's argsrepr_maxsize. */
#define REPR_MAX 1024
/* Longest message accepted from zq_task_fail / zq_task_log (bytes); longer is truncated. */
#define MSG_MAX 4096

/* Cut a repr at max bytes, Celery-style ("..." at the end). */
static void s_truncate(zq_sb_t *sb, size_t from, size_t max)
{
    if (sb->oom || sb->len - from <= max)
        return;
    sb->len = from + max - 3;
    memcpy(sb->buf + sb->len, "...", 4);
    sb->len += 3;
}

/* ---------------------------------------------------------------------------------------
 * Request context
 */
void zq_request_clear(zq_request_t *r)
{
    if (!r)
        return;
    cJSON_Delete(r->own_args);
    cJSON_Delete(r->own_kwargs);
    memset(r, 0, sizeof *r);
}

const char *zq_request_id(const zq_request_t *r)
{
    return r ? r->id : NULL;
}

const char *zq_request_task(const zq_request_t *r)
{
    return r ? r->task : NULL;
}

const cJSON *zq_request_args(const zq_request_t *r)
{
    return r ? r->args : NULL;
}

const cJSON *zq_request_kwargs(const zq_request_t *r)
{
    return r ? r->kwargs : NULL;
}

int zq_request_retries(const zq_request_t *r)
{
    return r ? r->retries : 0;
}

const char *zq_request_eta(const zq_request_t *r)
{
    return r ? r->eta : NULL;
}

const char *zq_request_expires(const zq_request_t *r)
{
    return r ? r->expires : NULL;
}

const char *zq_request_root_id(const zq_request_t *r)
{
    return r ? r->root_id : NULL;
}

const char *zq_request_parent_id(const zq_request_t *r)
{
    return r ? r->parent_id : NULL;
}

const char *zq_request_group(const zq_request_t *r)
{
    return r ? r->group : NULL;
}

const char *zq_request_hostname(const zq_request_t *r)
{
    return r ? r->hostname : NULL;
}

const char *zq_request_origin(const zq_request_t *r)
{
    return r ? r->origin : NULL;
}

const char *zq_request_queue(const zq_request_t *r)
{
    return r ? r->queue : NULL;
}

int zq_request_redelivered(const zq_request_t *r)
{
    return r ? r->redelivered : 0;
}

void zq_request_timelimit(const zq_request_t *r, double *hard, double *soft)
{
    if (hard)
        *hard = r ? r->hard : 0;
    if (soft)
        *soft = r ? r->soft : 0;
}

int zq_request_is_eager(const zq_request_t *r)
{
    (void)r;
    return 0; /* zq always runs tasks in a worker */
}

int zq_request_called_directly(const zq_request_t *r)
{
    (void)r;
    return 0;
}

static cJSON *s_str_or_null(const char *s)
{
    return s ? cJSON_CreateString(s) : cJSON_CreateNull();
}

static cJSON *s_limit(double v)
{
    return v > 0 ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

/* Add item to obj; a failed add (ENOMEM) leaves item with us, so delete it. */
static int s_add(cJSON *obj, const char *key, cJSON *item)
{
    if (!item)
        return -1;
    if (!cJSON_AddItemToObject(obj, key, item)) {
        cJSON_Delete(item);
        return -1;
    }
    return 0;
}

static cJSON *s_repr_string(const cJSON *v, int tuple)
{
    zq_sb_t sb;
    zq_sb_init(&sb);
    if (tuple)
        zq_sb_pytuple(&sb, v);
    else
        zq_sb_pyrepr(&sb, v);
    s_truncate(&sb, 0, REPR_MAX);
    char *txt = zq_sb_steal(&sb, NULL);
    cJSON *out = txt ? cJSON_CreateString(txt) : NULL;
    free(txt);
    return out;
}

static cJSON *s_delivery_info(const zq_request_t *r, int full)
{
    cJSON *d = cJSON_CreateObject();
    if (!d)
        return NULL;
    int bad = s_add(d, "exchange", cJSON_CreateString(""));
    bad |= s_add(d, "routing_key", s_str_or_null(r->queue));
    if (full) {
        bad |= s_add(d, "priority", cJSON_CreateNumber(r->priority));
        bad |= s_add(d, "redelivered", cJSON_CreateBool(r->redelivered));
    }
    if (bad) {
        cJSON_Delete(d);
        return NULL;
    }
    return d;
}

cJSON *zq_request_to_json(const zq_request_t *r)
{
    if (!r)
        return NULL;
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON *tl = cJSON_CreateArray();
    if (tl && !(cJSON_AddItemToArray(tl, s_limit(r->hard)) &&
                cJSON_AddItemToArray(tl, s_limit(r->soft)))) {
        cJSON_Delete(tl);
        tl = NULL;
    }
    cJSON *props = cJSON_CreateObject();
    if (props) {
        int pbad = s_add(props, "correlation_id", s_str_or_null(r->id));
        pbad |= s_add(props, "delivery_info", s_delivery_info(r, 0));
        pbad |= s_add(props, "priority", cJSON_CreateNumber(r->priority));
        if (pbad) {
            cJSON_Delete(props);
            props = NULL;
        }
    }
    /* Celery's field order, so that the dump reads like the one in Celery's docs.
     * One statement per field: the operands of | are evaluated in no fixed order. */
    int bad = 0;
    bad |= s_add(o, "lang", cJSON_CreateString("c"));
    bad |= s_add(o, "task", s_str_or_null(r->task));
    bad |= s_add(o, "id", s_str_or_null(r->id));
    bad |= s_add(o, "shadow", cJSON_CreateNull());
    bad |= s_add(o, "eta", s_str_or_null(r->eta));
    bad |= s_add(o, "expires", s_str_or_null(r->expires));
    bad |= s_add(o, "group", s_str_or_null(r->group));
    bad |= s_add(o, "group_index", cJSON_CreateNull());
    bad |= s_add(o, "retries", cJSON_CreateNumber(r->retries));
    bad |= s_add(o, "timelimit", tl);
    bad |= s_add(o, "root_id", s_str_or_null(r->root_id));
    bad |= s_add(o, "parent_id", s_str_or_null(r->parent_id));
    bad |= s_add(o, "argsrepr", s_repr_string(r->args, 1));
    bad |= s_add(o, "kwargsrepr", s_repr_string(r->kwargs, 0));
    bad |= s_add(o, "origin", s_str_or_null(r->origin));
    bad |= s_add(o, "ignore_result", cJSON_CreateBool(r->ignore_result));
    bad |= s_add(o, "properties", props);
    bad |= s_add(o, "correlation_id", s_str_or_null(r->id));
    bad |= s_add(o, "hostname", s_str_or_null(r->hostname));
    bad |= s_add(o, "delivery_info", s_delivery_info(r, 1));
    bad |= s_add(o, "args", r->args ? cJSON_Duplicate(r->args, 1) : cJSON_CreateArray());
    bad |= s_add(o, "kwargs", r->kwargs ? cJSON_Duplicate(r->kwargs, 1) : cJSON_CreateObject());
    bad |= s_add(o, "is_eager", cJSON_CreateFalse());
    bad |= s_add(o, "callbacks", cJSON_CreateNull());
    bad |= s_add(o, "errbacks", cJSON_CreateNull());
    bad |= s_add(o, "chain", cJSON_CreateNull());
    bad |= s_add(o, "chord", cJSON_CreateNull());
    bad |= s_add(o, "called_directly", cJSON_CreateFalse());
    if (bad) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

char *zq_request_to_string(const zq_request_t *r)
{
    cJSON *j = zq_request_to_json(r);
    if (!j)
        return NULL;
    zq_sb_t sb;
    zq_sb_init(&sb);
    zq_sb_puts(&sb, "<Context: ");
    zq_sb_pyrepr(&sb, j);
    zq_sb_putc(&sb, '>');
    cJSON_Delete(j);
    return zq_sb_steal(&sb, NULL);
}

/* ---------------------------------------------------------------------------------------
 * Task handle
 */
void zq_task_clear(zq_task_t *t)
{
    if (!t)
        return;
    free(t->exc_type);
    free(t->exc_message);
    free(t->note);
    free(t->retry_type);
    free(t->retry_message);
    memset(t, 0, sizeof *t);
}

const zq_request_t *zq_task_request(const zq_task_t *self)
{
    return self && self->bound ? self->req : NULL;
}

const char *zq_task_name(const zq_task_t *self)
{
    return self ? self->name : NULL;
}

const char *zq_task_id(const zq_task_t *self)
{
    return self && self->req ? self->req->id : NULL;
}

char *zq_task_to_string(const zq_task_t *self)
{
    if (!self)
        return NULL;
    zq_sb_t sb;
    zq_sb_init(&sb);
    zq_sb_printf(&sb, "<@task: %s of %s>", self->name ? self->name : "?",
                 self->module ? self->module : "?");
    return zq_sb_steal(&sb, NULL);
}

static char *s_strdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void s_set_failure(zq_task_t *t, const char *type, const char *msg)
{
    free(t->exc_type);
    free(t->exc_message);
    t->exc_type = strdup(type && *type ? type : "Exception");
    t->exc_message = strdup(msg ? msg : "");
}

zq_task_status_t zq_task_fail(zq_task_t *self, const char *type, const char *fmt, ...)
{
    if (!self)
        return ZQ_TASK_FAILED;
    char msg[MSG_MAX];
    msg[0] = '\0';
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
    }
    s_set_failure(self, type, msg);
    self->retry_set = 0;
    return ZQ_TASK_FAILED;
}

zq_task_status_t zq_task_retry(zq_task_t *self, const zq_retry_opts_t *opts)
{
    static const zq_retry_opts_t defaults = ZQ_RETRY_DEFAULTS;
    if (!self)
        return ZQ_TASK_FAILED;
    if (!opts)
        opts = &defaults;
    if (!self->bound || !self->req)
        return zq_task_fail(self, "RuntimeError",
                            "retry() needs a bound task: declare %s with .opts.bind = 1",
                            self->name ? self->name : "the task");
    double countdown =
        opts->countdown >= 0 && isfinite(opts->countdown) ? opts->countdown : self->retry_delay;
    int limit = opts->max_retries;
    if (limit == ZQ_NO_RETRIES)
        limit = 0;
    else if (limit == ZQ_DEFAULT || (limit < 0 && limit != ZQ_RETRIES_FOREVER))
        limit = self->max_retries;
    int retries = self->req->retries;
    if (limit != ZQ_RETRIES_FOREVER && retries >= limit) {
        zq_sb_t sb;
        zq_sb_init(&sb);
        if (opts->exc_type) {
            /* Celery: `raise self.retry(exc=exc)` past max_retries re-raises exc */
            s_set_failure(self, opts->exc_type, opts->exc_message);
            zq_sb_printf(&sb, "retry refused: max_retries=%d exceeded (retries=%d)", limit,
                         retries);
        } else {
            zq_sb_printf(&sb, "Can't retry %s[%s] args:", self->name, self->req->id);
            zq_sb_pytuple(&sb, self->req->args);
            zq_sb_puts(&sb, " kwargs:");
            zq_sb_pyrepr(&sb, self->req->kwargs);
            char *msg = zq_sb_steal(&sb, NULL);
            s_set_failure(self, "MaxRetriesExceededError", msg ? msg : "Can't retry");
            free(msg);
            zq_sb_printf(&sb, "retry(countdown=%g, max_retries=%d) after %d retries", countdown,
                         limit, retries);
        }
        free(self->note);
        self->note = zq_sb_steal(&sb, NULL);
        self->retry_set = 0;
        return ZQ_TASK_FAILED;
    }
    free(self->retry_type);
    free(self->retry_message);
    self->retry_type = s_strdup(opts->exc_type);
    self->retry_message = opts->exc_type ? strdup(opts->exc_message ? opts->exc_message : "")
                                         : NULL;
    self->countdown = countdown;
    self->retry_set = 1;
    return ZQ_TASK_RETRY;
}

int zq_task_soft_limit_exceeded(const zq_task_t *self)
{
    return self && self->soft_flag && *self->soft_flag ? 1 : 0;
}

void zq_task_log(const zq_task_t *self, zq_log_level_t level, const char *fmt, ...)
{
    if (level < zq_log_get_level())
        return;
    char msg[MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt ? fmt : "", ap);
    va_end(ap);
    zq_log(level, "%s[%s]: %s", self && self->name ? self->name : "?",
           self && self->req && self->req->id ? self->req->id : "?", msg);
}

int zq_task_send(zq_task_t *self, const char *name, const cJSON *args, const cJSON *kwargs,
                 const zq_send_opts_t *opts, char id_out[37])
{
    static const zq_send_opts_t no_opts;
    if (!self || !self->req)
        return ZQ_EINVAL;
    if (!self->emit)
        return ZQ_ESTATE;
    if (!opts)
        opts = &no_opts;
    if (!zq_valid_token(name) || (args && !cJSON_IsArray(args)) ||
        (kwargs && !cJSON_IsObject(kwargs)) || opts->priority < 0 || opts->priority > 9 ||
        opts->countdown < 0 || opts->expires_in < 0)
        return ZQ_EINVAL;
    double t;
    if ((opts->eta && zq_time_parse(opts->eta, &t) != ZQ_OK) ||
        (opts->expires && zq_time_parse(opts->expires, &t) != ZQ_OK))
        return ZQ_EINVAL;
    if (opts->queue && !zq_valid_token(opts->queue))
        return ZQ_EINVAL;
    char id[256];
    if (opts->task_id) {
        if (!zq_valid_token(opts->task_id) || (id_out && strlen(opts->task_id) > ZQ_UUID_LEN))
            return ZQ_EINVAL;
        snprintf(id, sizeof id, "%s", opts->task_id);
    } else {
        zq_uuid7(id);
    }
    const zq_request_t *r = self->req;
    zq_sb_t sb;
    zq_sb_init(&sb);
    zq_sb_puts(&sb, "{\"id\":");
    zq_sb_json_str(&sb, id);
    zq_sb_puts(&sb, ",\"task\":");
    zq_sb_json_str(&sb, name);
    zq_sb_puts(&sb, ",\"args\":");
    if (args)
        zq_sb_json(&sb, args);
    else
        zq_sb_puts(&sb, "[]");
    zq_sb_puts(&sb, ",\"kwargs\":");
    if (kwargs)
        zq_sb_json(&sb, kwargs);
    else
        zq_sb_puts(&sb, "{}");
    if (opts->queue) {
        zq_sb_puts(&sb, ",\"queue\":");
        zq_sb_json_str(&sb, opts->queue);
    }
    if (opts->eta) {
        zq_sb_puts(&sb, ",\"eta\":");
        zq_sb_json_str(&sb, opts->eta);
    } else if (opts->countdown > 0) {
        zq_sb_puts(&sb, ",\"countdown\":");
        zq_sb_json_num(&sb, opts->countdown);
    }
    if (opts->expires) {
        zq_sb_puts(&sb, ",\"expires\":");
        zq_sb_json_str(&sb, opts->expires);
    } else if (opts->expires_in > 0) {
        zq_sb_puts(&sb, ",\"expires\":");
        zq_sb_json_num(&sb, opts->expires_in);
    }
    zq_sb_puts(&sb, ",\"parent_id\":");
    zq_sb_json_str(&sb, r->id);
    zq_sb_puts(&sb, ",\"root_id\":");
    zq_sb_json_str(&sb, r->root_id ? r->root_id : r->id);
    zq_sb_printf(&sb, ",\"origin\":");
    char origin[300];
    snprintf(origin, sizeof origin, "gen%ld@%s", (long)getpid(), zq_hostname());
    zq_sb_json_str(&sb, origin);
    zq_sb_printf(&sb, ",\"ignore_result\":%s,\"priority\":%d}",
                 opts->ignore_result ? "true" : "false", opts->priority);
    size_t len;
    char *json = zq_sb_steal(&sb, &len);
    if (!json)
        return ZQ_ENOMEM;
    int rc = self->emit(self->emit_arg, "SUBMIT", json, len);
    free(json);
    if (rc == ZQ_OK && id_out) {
        size_t n = strlen(id); /* <= 36: checked above */
        if (n > ZQ_UUID_LEN)
            n = ZQ_UUID_LEN;
        memcpy(id_out, id, n);
        id_out[n] = '\0';
    }
    return rc;
}
