/*
 * zq_sb - the small string builder every part writes outgoing JSON (and Python-style reprs)
 * with, so no message pays for a cJSON build + print round trip on the hot path.
 */
#include "config.h"
#include "zq_sb.h"
#include "zq_util.h"
#include "zq_time.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void zq_sb_init(zq_sb_t *sb)
{
    memset(sb, 0, sizeof *sb);
}

void zq_sb_free(zq_sb_t *sb)
{
    if (!sb)
        return;
    free(sb->buf);
    memset(sb, 0, sizeof *sb);
}

static int s_grow(zq_sb_t *sb, size_t extra)
{
    if (sb->oom)
        return -1;
    size_t need = sb->len + extra + 1;
    if (need <= sb->cap)
        return 0;
    size_t cap = sb->cap ? sb->cap : 256;
    while (cap < need)
        cap *= 2;
    char *nb = realloc(sb->buf, cap);
    if (!nb) {
        sb->oom = 1;
        return -1;
    }
    sb->buf = nb;
    sb->cap = cap;
    return 0;
}

char *zq_sb_steal(zq_sb_t *sb, size_t *len)
{
    if (sb->oom || s_grow(sb, 0) != 0) {
        zq_sb_free(sb);
        if (len)
            *len = 0;
        return NULL;
    }
    char *out = sb->buf;
    out[sb->len] = '\0';
    if (len)
        *len = sb->len;
    memset(sb, 0, sizeof *sb);
    return out;
}

void zq_sb_putn(zq_sb_t *sb, const char *s, size_t n)
{
    if (s_grow(sb, n) != 0)
        return;
    memcpy(sb->buf + sb->len, s, n);
    sb->len += n;
    sb->buf[sb->len] = '\0';
}

void zq_sb_puts(zq_sb_t *sb, const char *s)
{
    zq_sb_putn(sb, s, strlen(s));
}

void zq_sb_putc(zq_sb_t *sb, char c)
{
    zq_sb_putn(sb, &c, 1);
}

void zq_sb_printf(zq_sb_t *sb, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof small) {
        zq_sb_putn(sb, small, (size_t)n);
        return;
    }
    if (s_grow(sb, (size_t)n) != 0)
        return;
    va_start(ap, fmt);
    vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb->len += (size_t)n;
}

void zq_sb_json_str(zq_sb_t *sb, const char *s)
{
    if (!s) {
        zq_sb_puts(sb, "null");
        return;
    }
    zq_sb_putc(sb, '"');
    const char *run = s;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        zq_sb_putn(sb, run, (size_t)(p - run));
        run = p + 1;
        switch (c) {
        case '"': zq_sb_puts(sb, "\\\""); break;
        case '\\': zq_sb_puts(sb, "\\\\"); break;
        case '\n': zq_sb_puts(sb, "\\n"); break;
        case '\r': zq_sb_puts(sb, "\\r"); break;
        case '\t': zq_sb_puts(sb, "\\t"); break;
        case '\b': zq_sb_puts(sb, "\\b"); break;
        case '\f': zq_sb_puts(sb, "\\f"); break;
        default: zq_sb_printf(sb, "\\u%04x", c); break;
        }
    }
    zq_sb_puts(sb, run);
    zq_sb_putc(sb, '"');
}

/* Shortest %g form that reads back as the same double (what Python's repr does). */
static void s_shortest(char *buf, size_t len, double v)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

void zq_sb_put_u64(zq_sb_t *sb, uint64_t v)
{
    char buf[20];
    size_t n;
    const char *d = zq_u64_digits(v, buf, &n);
    zq_sb_putn(sb, d, n);
}

void zq_sb_reserve(zq_sb_t *sb, size_t extra)
{
    s_grow(sb, extra);
}

void zq_sb_fixed6(zq_sb_t *sb, double v)
{
    if (!(v >= 0 && v < 1e9)) {
        zq_sb_printf(sb, "%.6f", v);
        return;
    }
    uint64_t us = (uint64_t)llround(v * 1e6);
    zq_sb_put_u64(sb, us / 1000000);
    char frac[7];
    uint64_t f = us % 1000000;
    frac[0] = '.';
    for (int i = 6; i >= 1; i--) {
        frac[i] = (char)('0' + f % 10);
        f /= 10;
    }
    zq_sb_putn(sb, frac, 7);
}

void zq_sb_json_secs(zq_sb_t *sb, double secs)
{
    char buf[48];
    int n = snprintf(buf, sizeof buf, "%.9f", secs > 0 && secs < 1e15 ? secs : 0);
    while (n > 2 && buf[n - 1] == '0' && buf[n - 2] != '.')
        n--;
    zq_sb_putn(sb, buf, (size_t)n);
}

void zq_sb_json_num(zq_sb_t *sb, double v)
{
    char buf[40];
    if (!isfinite(v)) {
        zq_sb_puts(sb, "null");
        return;
    }
    if (v == floor(v) && fabs(v) < 1e15)
        snprintf(buf, sizeof buf, "%lld", (long long)v);
    else
        s_shortest(buf, sizeof buf, v);
    zq_sb_puts(sb, buf);
}

void zq_sb_json(zq_sb_t *sb, const cJSON *v)
{
    if (!v) {
        zq_sb_puts(sb, "null");
        return;
    }
    char *txt = cJSON_PrintUnformatted(v);
    if (!txt) {
        sb->oom = 1;
        return;
    }
    zq_sb_puts(sb, txt);
    cJSON_free(txt);
}

void zq_sb_pystr(zq_sb_t *sb, const char *s)
{
    if (!s) {
        zq_sb_puts(sb, "None");
        return;
    }
    /* Python picks double quotes only when the text has ' and no " */
    char q = (strchr(s, '\'') && !strchr(s, '"')) ? '"' : '\'';
    zq_sb_putc(sb, q);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '\\')
            zq_sb_puts(sb, "\\\\");
        else if (*p == (unsigned char)q) {
            zq_sb_putc(sb, '\\');
            zq_sb_putc(sb, q);
        } else if (*p == '\n')
            zq_sb_puts(sb, "\\n");
        else if (*p == '\r')
            zq_sb_puts(sb, "\\r");
        else if (*p == '\t')
            zq_sb_puts(sb, "\\t");
        else if (*p < 0x20 || *p == 0x7f)
            zq_sb_printf(sb, "\\x%02x", *p);
        else
            zq_sb_putc(sb, (char)*p);
    }
    zq_sb_putc(sb, q);
}

void zq_sb_pyfloat(zq_sb_t *sb, double v)
{
    char buf[40];
    if (isnan(v)) {
        zq_sb_puts(sb, "nan");
        return;
    }
    if (isinf(v)) {
        zq_sb_puts(sb, v < 0 ? "-inf" : "inf");
        return;
    }
    s_shortest(buf, sizeof buf, v);
    zq_sb_puts(sb, buf);
    /* Python always shows a float as a float: 5.0, 1e+16 */
    if (!strpbrk(buf, ".en"))
        zq_sb_puts(sb, ".0");
}

static void s_pyitems(zq_sb_t *sb, const cJSON *v)
{
    int first = 1;
    for (const cJSON *it = v->child; it; it = it->next) {
        if (!first)
            zq_sb_puts(sb, ", ");
        first = 0;
        if (cJSON_IsObject(v)) {
            zq_sb_pystr(sb, it->string ? it->string : "");
            zq_sb_puts(sb, ": ");
        }
        zq_sb_pyrepr(sb, it);
    }
}

void zq_sb_pyrepr(zq_sb_t *sb, const cJSON *v)
{
    if (!v || cJSON_IsNull(v)) {
        zq_sb_puts(sb, "None");
    } else if (cJSON_IsTrue(v)) {
        zq_sb_puts(sb, "True");
    } else if (cJSON_IsFalse(v)) {
        zq_sb_puts(sb, "False");
    } else if (cJSON_IsNumber(v)) {
        /* JSON does not tell 4 from 4.0: integral values print as integers */
        zq_sb_json_num(sb, v->valuedouble);
    } else if (cJSON_IsString(v)) {
        zq_sb_pystr(sb, v->valuestring);
    } else if (cJSON_IsArray(v)) {
        zq_sb_putc(sb, '[');
        s_pyitems(sb, v);
        zq_sb_putc(sb, ']');
    } else if (cJSON_IsObject(v)) {
        zq_sb_putc(sb, '{');
        s_pyitems(sb, v);
        zq_sb_putc(sb, '}');
    } else if (cJSON_IsRaw(v) && v->valuestring) {
        zq_sb_puts(sb, v->valuestring);
    } else {
        zq_sb_puts(sb, "None");
    }
}

void zq_sb_pytuple(zq_sb_t *sb, const cJSON *array)
{
    zq_sb_putc(sb, '(');
    if (array) {
        s_pyitems(sb, array);
        if (cJSON_GetArraySize(array) == 1)
            zq_sb_putc(sb, ',');
    }
    zq_sb_putc(sb, ')');
}

void zq_sb_json_time(zq_sb_t *sb, double t)
{
    if (t <= 0) {
        zq_sb_putn(sb, "null", 4);
        return;
    }
    char iso[40];
    zq_time_iso(t, iso, sizeof iso);
    zq_sb_putc(sb, '"');
    zq_sb_puts(sb, iso);
    zq_sb_putc(sb, '"');
}
