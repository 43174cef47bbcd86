/*
 * zq_upstate - a worker's STATE as the broker uses it (see zq_upstate.h).
 */
#include "config.h"
#include "zq_upstate.h"
#include "zq.h"
#include "zq_jscan.h"
#include "zq_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum {
    K_ID, K_STATE, K_WORKER, K_TS, K_TB, K_ETA, K_RECEIVED, K_STARTED, /* strings */
    K_RESULT, K_SIGNUM, K_EXC, K_RUNTIME, K_COUNTDOWN, K_PID, K_ACKS_LATE, K_N
};
static const char *const s_keys[K_N] = {"id",      "state",     "worker",  "timestamp",
                                        "traceback", "eta",     "received", "started",
                                        "result",  "signum",    "exception", "runtime",
                                        "countdown", "pid",     "acks_late"};
#define S_NSTR (K_STARTED + 1)

static int s_key(const char *k, size_t n)
{
    for (int i = 0; i < K_N; i++)
        if (k[0] == s_keys[i][0] && strlen(s_keys[i]) == n && memcmp(k, s_keys[i], n) == 0)
            return i;
    return -1;
}

static const char **s_str_slot(zq_upstate_t *u, int key)
{
    const char **slots[S_NSTR] = {&u->id,        &u->state, &u->worker,   &u->timestamp,
                                  &u->traceback, &u->eta,   &u->received, &u->started};
    return slots[key];
}

/* A string (unescaped into the arena) or null (NULL). */
static int s_string(zq_jscan_t *r, zq_arena_t *a, const char **out)
{
    const char *s;
    size_t n;
    if (zq_jscan_literal(r, "null") == 0) {
        *out = NULL;
        return 0;
    }
    if (zq_jscan_string(r, 1, &s, &n) != 0)
        return ZQ_JSCAN_DECLINE;
    char *copy = zq_arena_alloc(a, n + 1);
    if (!copy)
        return ZQ_ENOMEM;
    zq_jscan_unescape(s, n, copy);
    *out = copy;
    return 0;
}

/* "exception": {"type": string, "message": string, ...anything else} */
static int s_exception(zq_jscan_t *r, zq_arena_t *a, zq_upstate_t *u)
{
    if (zq_jscan_object(r) != 0)
        return ZQ_JSCAN_DECLINE;
    u->has_exc = 1;
    const char *k;
    size_t kn;
    int first = 1, more, seen = 0;
    while ((more = zq_jscan_member(r, &first, &k, &kn)) == 1) {
        int which = kn == 4 && !memcmp(k, "type", 4)      ? 1
                    : kn == 7 && !memcmp(k, "message", 7) ? 2
                                                          : 0;
        if (!which) {
            if (zq_jscan_value(r, 2, NULL, NULL) != 0)
                return ZQ_JSCAN_DECLINE;
            continue;
        }
        if ((seen & which) || !zq_jscan_peek(r, '"'))
            return ZQ_JSCAN_DECLINE; /* twice, or not a string: the tree decides */
        seen |= which;
        int rc = s_string(r, a, which == 1 ? &u->exc_type : &u->exc_message);
        if (rc != 0)
            return rc;
    }
    return more;
}

static int s_read(zq_jscan_t *r, zq_arena_t *a, zq_upstate_t *u)
{
    if (zq_jscan_object(r) != 0)
        return ZQ_JSCAN_DECLINE;
    unsigned seen = 0;
    const char *k;
    size_t kn;
    int first = 1, more;
    while ((more = zq_jscan_member(r, &first, &k, &kn)) == 1) {
        int key = kn ? s_key(k, kn) : -1;
        if (key < 0) { /* a member the broker does not read */
            if (zq_jscan_value(r, 1, NULL, NULL) != 0)
                return ZQ_JSCAN_DECLINE;
            continue;
        }
        if (seen >> key & 1)
            return ZQ_JSCAN_DECLINE;
        seen |= 1u << key;
        int rc = 0;
        const char *v;
        size_t vn;
        if (key < S_NSTR) {
            rc = s_string(r, a, s_str_slot(u, key));
        } else if (key == K_RESULT || key == K_SIGNUM) {
            if (key == K_SIGNUM && !zq_jscan_peek(r, '"') && !zq_jscan_peek(r, '-') &&
                !(r->p < r->end && *r->p >= '0' && *r->p <= '9'))
                return ZQ_JSCAN_DECLINE;
            rc = zq_jscan_value(r, 1, &v, &vn); /* one level below the body */
            if (rc == 0) {
                char *copy = zq_arena_strndup(a, v, vn);
                if (!copy)
                    return ZQ_ENOMEM;
                *(key == K_RESULT ? &u->result : &u->signum) = copy;
            }
        } else if (key == K_EXC) {
            rc = s_exception(r, a, u);
        } else if (key == K_ACKS_LATE) {
            rc = zq_jscan_bool(r, &u->acks_late);
        } else {
            double num = 0;
            rc = zq_jscan_number(r, &num);
            if (rc == 0 && !isfinite(num))
                rc = ZQ_JSCAN_DECLINE;
            if (key == K_RUNTIME) {
                u->has_runtime = 1;
                u->runtime = num;
            } else if (key == K_COUNTDOWN) {
                u->has_countdown = 1;
                u->countdown = num;
            } else {
                u->has_pid = 1;
                u->pid = num;
            }
        }
        if (rc != 0)
            return rc;
    }
    return more;
}

int zq_upstate_scan(zq_jscan_t *r, zq_arena_t *a, zq_upstate_t **out)
{
    *out = NULL;
    zq_upstate_t *u = zq_arena_alloc(a, sizeof *u);
    if (!u)
        return ZQ_ENOMEM;
    memset(u, 0, sizeof *u);
    int rc = s_read(r, a, u);
    if (rc == ZQ_ENOMEM)
        return ZQ_ENOMEM;
    if (rc != 0)
        return ZQ_UPSTATE_DECLINED; /* what it took stays in the arena until its reset */
    *out = u;
    return ZQ_OK;
}

int zq_upstate_read(const char *body, size_t len, zq_arena_t *a, zq_upstate_t **out)
{
    zq_jscan_t r;
    zq_jscan_init(&r, body, len);
    int rc = zq_upstate_scan(&r, a, out);
    if (rc == ZQ_OK && zq_jscan_end(&r) != 0) {
        *out = NULL;
        return ZQ_UPSTATE_DECLINED;
    }
    return rc;
}

/* A string member copied into the arena; NULL when absent or not a string. */
static int s_copy(zq_arena_t *a, const cJSON *m, const char **out)
{
    const char *s = zq_json_member_str(m, NULL);
    *out = NULL;
    if (!s)
        return ZQ_OK;
    *out = zq_arena_strndup(a, s, strlen(s));
    return *out ? ZQ_OK : ZQ_ENOMEM;
}

/* Compact JSON of m into the arena. */
static int s_print(zq_arena_t *a, const cJSON *m, const char **out)
{
    char *text = cJSON_PrintUnformatted(m);
    if (!text)
        return ZQ_ENOMEM;
    *out = zq_arena_strndup(a, text, strlen(text));
    cJSON_free(text);
    return *out ? ZQ_OK : ZQ_ENOMEM;
}

int zq_upstate_from_json(const cJSON *body, zq_arena_t *a, zq_upstate_t **out)
{
    *out = NULL;
    zq_upstate_t *u = zq_arena_alloc(a, sizeof *u);
    if (!u)
        return ZQ_ENOMEM;
    memset(u, 0, sizeof *u);
    const cJSON *f[K_N];
    zq_json_members(cJSON_IsObject(body) ? body : NULL, s_keys, K_N, f);
    int rc = ZQ_OK;
    for (int k = 0; k < S_NSTR && rc == ZQ_OK; k++)
        rc = s_copy(a, f[k], s_str_slot(u, k));
    if (rc == ZQ_OK && f[K_RESULT])
        rc = s_print(a, f[K_RESULT], &u->result);
    if (rc == ZQ_OK && (cJSON_IsNumber(f[K_SIGNUM]) || cJSON_IsString(f[K_SIGNUM])))
        rc = s_print(a, f[K_SIGNUM], &u->signum);
    if (rc == ZQ_OK && cJSON_IsObject(f[K_EXC])) {
        u->has_exc = 1;
        rc = s_copy(a, cJSON_GetObjectItemCaseSensitive(f[K_EXC], "type"), &u->exc_type);
        if (rc == ZQ_OK)
            rc = s_copy(a, cJSON_GetObjectItemCaseSensitive(f[K_EXC], "message"),
                        &u->exc_message);
    }
    if (rc != ZQ_OK)
        return rc;
    if ((u->has_runtime = cJSON_IsNumber(f[K_RUNTIME])))
        u->runtime = f[K_RUNTIME]->valuedouble;
    if ((u->has_countdown = cJSON_IsNumber(f[K_COUNTDOWN])))
        u->countdown = f[K_COUNTDOWN]->valuedouble;
    if ((u->has_pid = cJSON_IsNumber(f[K_PID])))
        u->pid = f[K_PID]->valuedouble;
    u->acks_late = cJSON_IsTrue(f[K_ACKS_LATE]);
    *out = u;
    return ZQ_OK;
}
