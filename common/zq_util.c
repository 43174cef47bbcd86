#include "config.h"
#include "zq_util.h"
#include "zq.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *zq_json_str(const cJSON *obj, const char *key, const char *fallback)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(it) && it->valuestring ? it->valuestring : fallback;
}

void zq_json_members(const cJSON *obj, const char *const *keys, size_t n, const cJSON **out)
{
    uint64_t open = n >= 64 ? UINT64_MAX : (UINT64_C(1) << n) - 1; /* keys not found yet */
    for (size_t i = 0; i < n; i++)
        out[i] = NULL;
    for (const cJSON *m = obj ? obj->child : NULL; m && open; m = m->next) {
        const char *k = m->string;
        if (!k)
            continue;
        for (size_t i = 0; i < n && i < 64; i++)
            if ((open >> i & 1) && k[0] == keys[i][0] && strcmp(k, keys[i]) == 0) {
                out[i] = m;
                open &= ~(UINT64_C(1) << i);
                break;
            }
    }
}

const char *zq_json_member_str(const cJSON *member, const char *fallback)
{
    return cJSON_IsString(member) && member->valuestring ? member->valuestring : fallback;
}

double zq_json_num(const cJSON *obj, const char *key, double fallback)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(it) ? it->valuedouble : fallback;
}

int zq_json_bool(const cJSON *obj, const char *key, int fallback)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (cJSON_IsBool(it))
        return cJSON_IsTrue(it);
    return fallback;
}

const char *zq_broker_url(const char *url)
{
    if (url && *url)
        return url;
    const char *env = getenv("ZQ_BROKER");
    if (env && *env)
        return env;
    return ZQ_DEFAULT_BROKER;
}

/* Split "tcp://host:port" into host (with brackets for IPv6) and port. */
static int s_split_tcp(const char *ep, char *host, size_t hostlen, const char **port)
{
    if (strncmp(ep, "tcp://", 6) != 0)
        return ZQ_EINVAL;
    const char *h = ep + 6;
    const char *colon = strrchr(h, ':');
    if (!colon || colon == h)
        return ZQ_EINVAL;
    size_t n = (size_t)(colon - h);
    if (n >= hostlen)
        return ZQ_EINVAL;
    memcpy(host, h, n);
    host[n] = '\0';
    *port = colon + 1;
    return ZQ_OK;
}

int zq_endpoint_derive(const char *frontend, int port_offset, const char *ipc_suffix, char *out,
                       size_t outlen)
{
    if (!frontend)
        return ZQ_EINVAL;
    if (strncmp(frontend, "ipc://", 6) == 0) {
        int n = snprintf(out, outlen, "%s%s", frontend, ipc_suffix);
        return n > 0 && (size_t)n < outlen ? ZQ_OK : ZQ_EINVAL;
    }
    char host[256];
    const char *port;
    if (s_split_tcp(frontend, host, sizeof host, &port) != ZQ_OK)
        return ZQ_EINVAL;
    char *end;
    long p = strtol(port, &end, 10);
    if (*end || p <= 0 || p + port_offset > 65535)
        return ZQ_EINVAL;
    int n = snprintf(out, outlen, "tcp://%s:%ld", host, p + port_offset);
    return n > 0 && (size_t)n < outlen ? ZQ_OK : ZQ_EINVAL;
}

int zq_endpoint_ephemeral(const char *frontend, const char *ipc_suffix, char *out, size_t outlen)
{
    if (!frontend)
        return ZQ_EINVAL;
    if (strncmp(frontend, "ipc://", 6) == 0) {
        int n = snprintf(out, outlen, "%s%s", frontend, ipc_suffix);
        return n > 0 && (size_t)n < outlen ? ZQ_OK : ZQ_EINVAL;
    }
    char host[256];
    const char *port;
    if (s_split_tcp(frontend, host, sizeof host, &port) != ZQ_OK)
        return ZQ_EINVAL;
    int n = snprintf(out, outlen, "tcp://%s:*", host);
    return n > 0 && (size_t)n < outlen ? ZQ_OK : ZQ_EINVAL;
}

static int s_wildcard(const char *host)
{
    return !strcmp(host, "0.0.0.0") || !strcmp(host, "*") || !strcmp(host, "[::]") ||
           !strcmp(host, "::");
}

int zq_endpoint_resolve(const char *announced, const char *via, char *out, size_t outlen)
{
    char host[256], vhost[256];
    const char *port, *vport;
    if (s_split_tcp(announced, host, sizeof host, &port) == ZQ_OK && s_wildcard(host) &&
        via && s_split_tcp(via, vhost, sizeof vhost, &vport) == ZQ_OK) {
        int n = snprintf(out, outlen, "tcp://%s:%s", vhost, port);
        return n > 0 && (size_t)n < outlen ? ZQ_OK : ZQ_EINVAL;
    }
    int n = snprintf(out, outlen, "%s", announced);
    return n > 0 && (size_t)n < outlen ? ZQ_OK : ZQ_EINVAL;
}

int zq_endpoint_is_public(const char *endpoint)
{
    char host[256];
    const char *port;
    if (!endpoint || s_split_tcp(endpoint, host, sizeof host, &port) != ZQ_OK)
        return 0;
    if (!strncmp(host, "127.", 4) || !strcmp(host, "localhost") || !strcmp(host, "[::1]") ||
        !strcmp(host, "lo"))
        return 0;
    return 1;
}

const char *zq_hostname(void)
{
    static char name[256];
    if (!name[0]) {
        if (gethostname(name, sizeof name - 1) != 0 || !name[0])
            snprintf(name, sizeof name, "localhost");
    }
    return name;
}

int zq_valid_token(const char *s)
{
    if (!s)
        return 0;
    size_t n = strlen(s);
    if (n == 0 || n > 255)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] > '~')
            return 0;
    return 1;
}

void zq_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

uint64_t zq_hash(const void *p, size_t n)
{
    /* 8 bytes a step (task ids are 36 characters: byte-wise FNV-1a was ~2 % of the broker),
     * then murmur3's finaliser, so that the low bits a table masks are well mixed */
    const unsigned char *s = p;
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ n, w;
    for (; n >= 8; s += 8, n -= 8) {
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }
    w = 0;
    if (n)
        memcpy(&w, s, n);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

uint64_t zq_hash_str(const char *s)
{
    return zq_hash(s, strlen(s));
}

const char *zq_u64_digits(uint64_t v, char buf[20], size_t *len)
{
    size_t i = 20;
    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    *len = 20 - i;
    return buf + i;
}
