/*
 * zq_submit - the fast reading of a SUBMIT body (see zq_submit.h). Every check mirrors one
 * of s_submit_prepare's; where a value would be refused there, or needs more than this
 * reader knows (escapes, nulls, members it does not take), it declines and the general
 * path decides.
 */
#include "config.h"
#include "zq_submit.h"
#include "zq.h"
#include "zq_jscan.h"
#include "zq_time.h"
#include "zq_util.h"
#include "zq_uuid.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_DECLINE ZQ_JSCAN_DECLINE

/* A token string (zq_valid_token: 1-255 printable characters, no spaces) copied into out. */
static int s_token(zq_jscan_t *r, char out[256])
{
    const char *s;
    size_t n;
    if (zq_jscan_string(r, 0, &s, &n) != 0 || n == 0 || n > 255)
        return S_DECLINE;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] > '~')
            return S_DECLINE;
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

/* A number that is a whole number in [lo, hi] (s_is_int). */
static int s_int(zq_jscan_t *r, double lo, double hi, double *v)
{
    if (zq_jscan_number(r, v) != 0 || !(*v >= lo && *v <= hi) || *v != floor(*v))
        return S_DECLINE;
    return 0;
}

/* A timestamp string (zq_time_parse). */
static int s_time(zq_jscan_t *r, double *t)
{
    const char *s;
    size_t n;
    char buf[64];
    if (zq_jscan_string(r, 0, &s, &n) != 0 || n >= sizeof buf)
        return S_DECLINE;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return zq_time_parse(buf, t) == ZQ_OK ? 0 : S_DECLINE;
}

enum {
    K_REQ, K_ID, K_TASK, K_ARGS, K_KWARGS, K_QUEUE, K_COUNTDOWN, K_ETA, K_EXPIRES, K_IGNORE,
    K_PRIORITY, K_ORIGIN, K_ROOT, K_PARENT, K_GROUP, K_GET, K_COALESCE, K_RETRIES, K_N
};
static const char *const s_keys[K_N] = {
    "req",      "id",            "task",     "args",   "kwargs",    "queue",
    "countdown", "eta",          "expires",  "ignore_result", "priority", "origin",
    "root_id",  "parent_id",     "group",    "get",    "coalesce",  "retries"};

static int s_key(const char *k, size_t n)
{
    for (int i = 0; i < K_N; i++)
        if (k[0] == s_keys[i][0] && strlen(s_keys[i]) == n && memcmp(k, s_keys[i], n) == 0)
            return i;
    return -1;
}

static void s_put_token(zq_sb_t *b, const char *key, const char *v)
{
    zq_sb_putc(b, ',');
    zq_sb_putc(b, '"');
    zq_sb_puts(b, key);
    zq_sb_putn(b, "\":\"", 3);
    zq_sb_puts(b, v);
    zq_sb_putc(b, '"');
}

int zq_submit_read(const char *body, size_t len, double now, zq_submit_t *out, zq_sb_t *msg)
{
    memset(out, 0, sizeof *out);
    zq_jscan_t r;
    zq_jscan_init(&r, body, len);
    unsigned seen = 0;
    double countdown = 0, expires_in = 0, priority = 0, retries = 0, num;
    int has_countdown = 0, expires_num = 0, has_ignore = 0, has_priority = 0;
    char origin[256] = "", group[256] = "";
    if (zq_jscan_object(&r) != 0)
        return ZQ_SUBMIT_DECLINED;
    const char *k;
    size_t kn;
    int first = 1, more;
    while ((more = zq_jscan_member(&r, &first, &k, &kn)) == 1) {
        int key = kn ? s_key(k, kn) : -1;
        if (key < 0 || (seen >> key & 1))
            return ZQ_SUBMIT_DECLINED; /* a member it does not take, or twice */
        seen |= 1u << key;
        const char *v0 = r.p;
        int rc = 0;
        switch (key) {
        case K_REQ:
            rc = zq_jscan_number(&r, &out->req);
            out->has_req = 1;
            break;
        case K_ID: rc = s_token(&r, out->id); break;
        case K_TASK: rc = s_token(&r, out->task); break;
        case K_QUEUE: rc = s_token(&r, out->queue); break;
        case K_ROOT: rc = s_token(&r, out->root_id); break;
        case K_PARENT: rc = s_token(&r, out->parent_id); break;
        case K_ORIGIN: rc = s_token(&r, origin); break;
        case K_GROUP: rc = s_token(&r, group); break;
        case K_ARGS:
        case K_KWARGS:
            if (r.p >= r.end || *r.p != (key == K_ARGS ? '[' : '{'))
                return ZQ_SUBMIT_DECLINED;
            rc = zq_jscan_value(&r, 0, NULL, NULL);
            if (key == K_ARGS) {
                out->args = v0;
                out->args_len = (size_t)(r.p - v0);
            } else {
                out->kwargs = v0;
                out->kwargs_len = (size_t)(r.p - v0);
            }
            break;
        case K_COUNTDOWN:
            rc = zq_jscan_number(&r, &countdown);
            if (rc == 0 && !(isfinite(countdown) && fabs(countdown) <= 1e10))
                rc = S_DECLINE;
            has_countdown = 1;
            break;
        case K_ETA: rc = s_time(&r, &out->eta); break;
        case K_EXPIRES:
            if (r.p < r.end && *r.p == '"') {
                rc = s_time(&r, &out->expires);
            } else {
                rc = zq_jscan_number(&r, &expires_in);
                if (rc == 0 && !(isfinite(expires_in) && fabs(expires_in) <= 1e10))
                    rc = S_DECLINE;
                expires_num = 1;
            }
            break;
        case K_IGNORE:
            rc = zq_jscan_bool(&r, &out->ignore_result);
            has_ignore = 1;
            break;
        case K_PRIORITY:
            rc = s_int(&r, 0, 9, &priority);
            has_priority = 1;
            break;
        case K_RETRIES: rc = s_int(&r, 0, 1e9, &retries); break;
        case K_GET: rc = s_int(&r, 1, 9007199254740991.0, &out->get); break;
        case K_COALESCE:
            if (r.p < r.end && (*r.p == 't' || *r.p == 'f')) {
                int b = 0;
                rc = zq_jscan_bool(&r, &b);
                out->coalesce = b;
            } else {
                rc = zq_jscan_number(&r, &num);
                out->coalesce =
                    rc == 0 && num >= 2 && num < 1e9 && num == floor(num) ? 2 : 0;
            }
            break;
        default: rc = S_DECLINE;
        }
        if (rc != 0)
            return ZQ_SUBMIT_DECLINED;
    }
    if (more != 0 || zq_jscan_end(&r) != 0 || !(seen >> K_TASK & 1))
        return ZQ_SUBMIT_DECLINED; /* malformed, trailing bytes, or no task (nor an empty
                                    * body): the general path says so */

    if (!(seen >> K_ID & 1))
        zq_uuid7(out->id);
    if (!(seen >> K_QUEUE & 1))
        snprintf(out->queue, sizeof out->queue, "%s", ZQ_DEFAULT_QUEUE);
    if (!(seen >> K_ROOT & 1))
        memcpy(out->root_id, out->id, strlen(out->id) + 1);
    if (!out->args) {
        out->args = "[]";
        out->args_len = 2;
    }
    if (!out->kwargs) {
        out->kwargs = "{}";
        out->kwargs_len = 2;
    }
    /* countdown wins over eta, as in Celery's apply_async */
    if (has_countdown)
        out->eta = now + countdown;
    if (expires_num) {
        out->expires = now + expires_in;
        if (out->expires <= 0)
            out->expires = 1e-6; /* long past, but still "has an expiry" */
    }
    out->retries = (int)retries;

    size_t mark = msg->len;
    zq_sb_putn(msg, "{\"id\":\"", 7);
    zq_sb_puts(msg, out->id);
    zq_sb_putc(msg, '"');
    s_put_token(msg, "task", out->task);
    zq_sb_putn(msg, ",\"args\":", 8);
    zq_sb_putn(msg, out->args, out->args_len);
    zq_sb_putn(msg, ",\"kwargs\":", 10);
    zq_sb_putn(msg, out->kwargs, out->kwargs_len);
    s_put_token(msg, "queue", out->queue);
    if (has_ignore)
        zq_sb_puts(msg, out->ignore_result ? ",\"ignore_result\":true" : ",\"ignore_result\":false");
    if (has_priority) {
        zq_sb_putn(msg, ",\"priority\":", 12);
        zq_sb_put_u64(msg, (uint64_t)priority);
    }
    if (origin[0])
        s_put_token(msg, "origin", origin);
    s_put_token(msg, "root_id", out->root_id);
    if (out->parent_id[0])
        s_put_token(msg, "parent_id", out->parent_id);
    if (group[0])
        s_put_token(msg, "group", group);
    zq_sb_putn(msg, ",\"eta\":", 7);
    zq_sb_json_time(msg, out->eta);
    zq_sb_putn(msg, ",\"expires\":", 11);
    zq_sb_json_time(msg, out->expires);
    zq_sb_putn(msg, ",\"sent\":", 8);
    zq_sb_json_time(msg, now);
    zq_sb_putn(msg, ",\"retries\":", 11);
    zq_sb_put_u64(msg, (uint64_t)out->retries);
    zq_sb_putc(msg, '}');
    if (msg->oom) {
        msg->len = mark;
        msg->oom = 0;
        return ZQ_SUBMIT_DECLINED; /* the general path reports the lack of memory */
    }
    return ZQ_OK;
}
