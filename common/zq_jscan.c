/*
 * zq_jscan - reading JSON text in place (see zq_jscan.h).
 */
#include "config.h"
#include "zq_jscan.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define S_DECLINE ZQ_JSCAN_DECLINE

void zq_jscan_init(zq_jscan_t *r, const char *text, size_t len)
{
    r->p = text;
    r->end = text + len;
}

static void s_ws(zq_jscan_t *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

int zq_jscan_peek(zq_jscan_t *r, char c)
{
    s_ws(r);
    return r->p < r->end && *r->p == c;
}

int zq_jscan_char(zq_jscan_t *r, char c)
{
    if (!zq_jscan_peek(r, c))
        return S_DECLINE;
    r->p++;
    return 0;
}

int zq_jscan_string(zq_jscan_t *r, int escapes, const char **s, size_t *n)
{
    s_ws(r);
    if (r->p >= r->end || *r->p != '"')
        return S_DECLINE;
    const char *start = ++r->p;
    while (r->p < r->end && *r->p != '"') {
        unsigned char c = (unsigned char)*r->p;
        if (c < 0x20)
            return S_DECLINE;
        if (c == '\\') {
            if (!escapes || ++r->p >= r->end || !memchr("\"\\/bfnrt", *r->p, 8))
                return S_DECLINE;
        }
        r->p++;
    }
    if (r->p >= r->end)
        return S_DECLINE;
    *s = start;
    *n = (size_t)(r->p - start);
    r->p++;
    return 0;
}

size_t zq_jscan_unescape(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\' && i + 1 < n) {
            switch (s[++i]) {
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            default: c = s[i]; /* " \ / */
            }
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return o;
}

int zq_jscan_number(zq_jscan_t *r, double *v)
{
    s_ws(r);
    const char *p = r->p, *end = r->end, *start = p;
    if (p < end && *p == '-')
        p++;
    if (p < end && *p == '0') {
        p++;
    } else if (p < end && *p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    } else {
        return S_DECLINE;
    }
    if (p < end && *p == '.') {
        p++;
        if (p >= end || *p < '0' || *p > '9')
            return S_DECLINE;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || *p < '0' || *p > '9')
            return S_DECLINE;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    char buf[48];
    size_t n = (size_t)(p - start);
    if (n >= sizeof buf)
        return S_DECLINE;
    memcpy(buf, start, n);
    buf[n] = '\0';
    *v = strtod(buf, NULL);
    r->p = p;
    return 0;
}

int zq_jscan_literal(zq_jscan_t *r, const char *lit)
{
    s_ws(r);
    size_t n = strlen(lit);
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, lit, n) != 0)
        return S_DECLINE;
    r->p += n;
    return 0;
}

int zq_jscan_bool(zq_jscan_t *r, int *v)
{
    if (zq_jscan_literal(r, "true") == 0) {
        *v = 1;
        return 0;
    }
    if (zq_jscan_literal(r, "false") == 0) {
        *v = 0;
        return 0;
    }
    return S_DECLINE;
}

static int s_value(zq_jscan_t *r, int depth)
{
    s_ws(r);
    if (r->p >= r->end || depth > ZQ_JSCAN_MAX_DEPTH)
        return S_DECLINE;
    char c = *r->p;
    if (c == '"') {
        const char *s;
        size_t n;
        return zq_jscan_string(r, 1, &s, &n);
    }
    if (c == '[' || c == '{') {
        int first = 1, rc = 0;
        const char *k;
        size_t kn;
        r->p++;
        if (c == '[') {
            while ((rc = zq_jscan_element(r, &first)) == 1)
                if (s_value(r, depth + 1) != 0)
                    return S_DECLINE;
        } else {
            /* keys may hold escapes here: read as strings, not as zq_jscan_member keys */
            for (;;) {
                if (zq_jscan_peek(r, '}') && first) {
                    r->p++;
                    return 0;
                }
                if (!first && zq_jscan_char(r, ',') != 0)
                    return zq_jscan_char(r, '}');
                first = 0;
                if (zq_jscan_string(r, 1, &k, &kn) != 0 || zq_jscan_char(r, ':') != 0 ||
                    s_value(r, depth + 1) != 0)
                    return S_DECLINE;
            }
        }
        return rc;
    }
    if (c == 't')
        return zq_jscan_literal(r, "true");
    if (c == 'f')
        return zq_jscan_literal(r, "false");
    if (c == 'n')
        return zq_jscan_literal(r, "null");
    double v;
    return zq_jscan_number(r, &v) == 0 && isfinite(v) ? 0 : S_DECLINE;
}

int zq_jscan_value(zq_jscan_t *r, int depth, const char **s, size_t *n)
{
    s_ws(r);
    const char *start = r->p;
    if (s_value(r, depth) != 0)
        return S_DECLINE;
    if (s)
        *s = start;
    if (n)
        *n = (size_t)(r->p - start);
    return 0;
}

int zq_jscan_object(zq_jscan_t *r)
{
    return zq_jscan_char(r, '{');
}

int zq_jscan_member(zq_jscan_t *r, int *first, const char **key, size_t *kn)
{
    if (zq_jscan_peek(r, '}')) {
        r->p++;
        return 0;
    }
    if (!*first && zq_jscan_char(r, ',') != 0)
        return S_DECLINE;
    *first = 0;
    if (zq_jscan_string(r, 0, key, kn) != 0 || zq_jscan_char(r, ':') != 0)
        return S_DECLINE;
    s_ws(r);
    return 1;
}

int zq_jscan_array(zq_jscan_t *r)
{
    return zq_jscan_char(r, '[');
}

int zq_jscan_element(zq_jscan_t *r, int *first)
{
    if (zq_jscan_peek(r, ']')) {
        r->p++;
        return 0;
    }
    if (!*first && zq_jscan_char(r, ',') != 0)
        return S_DECLINE;
    *first = 0;
    s_ws(r);
    return 1;
}

int zq_jscan_end(zq_jscan_t *r)
{
    s_ws(r);
    return r->p == r->end ? 0 : S_DECLINE;
}
