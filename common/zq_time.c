#include "config.h"
#include "zq_time.h"
#include "zq.h"

#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double zq_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double zq_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* What a 4-digit ISO 8601 year can say: 0000-01-01T00:00:00Z .. 9999-12-31T23:59:59Z. */
#define S_T_MIN (-62167219200.0)
#define S_T_MAX 253402300799.0

char *zq_time_iso(double t, char *buf, size_t len)
{
    /* peers send any number (a RETRY countdown of 1e300): clamp, so that the conversion
     * to time_t is defined and the text always parses back (found by tests/fuzz) */
    if (isnan(t))
        t = 0;
    else if (t < S_T_MIN)
        t = S_T_MIN;
    else if (t > S_T_MAX + 0.999999)
        t = S_T_MAX + 0.999999;
    time_t sec = (time_t)floor(t);
    long usec = lround((t - (double)sec) * 1e6);
    if (usec >= 1000000) {
        sec += 1;
        usec -= 1000000;
    }
    if (sec > (time_t)S_T_MAX) {
        sec = (time_t)S_T_MAX;
        usec = 999999;
    }
    /* the date and time to the second, per thread: records and events carry several
     * times of the same second, and gmtime_r + snprintf cost more than the rest */
    static __thread time_t c_sec;
    static __thread int c_valid;
    static __thread char c_txt[64];
    if (!c_valid || sec != c_sec) {
        struct tm tm;
        gmtime_r(&sec, &tm);
        /* not strftime's %Y: it does not pad years before 1000 to 4 digits */
        snprintf(c_txt, sizeof c_txt, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        c_sec = sec;
        c_valid = 1;
    }
    char whole[32];
    char *out = len < 28 ? whole : buf; /* too short: cut below as snprintf would */
    memcpy(out, c_txt, 19);
    out[19] = '.';
    for (int i = 25; i >= 20; i--) {
        out[i] = (char)('0' + usec % 10);
        usec /= 10;
    }
    out[26] = 'Z';
    out[27] = '\0';
    if (out == whole && len > 0) {
        memcpy(buf, whole, len - 1);
        buf[len - 1] = '\0';
    }
    return buf;
}

static int s_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)**p))
            return -1;
        v = v * 10 + (**p - '0');
        (*p)++;
    }
    *out = v;
    return 0;
}

int zq_time_parse(const char *s, double *out)
{
    if (!s || !out)
        return ZQ_EINVAL;
    const char *p = s;
    int Y, M, D, h = 0, m = 0, sec = 0;
    double frac = 0;
    if (s_digits(&p, 4, &Y) || *p++ != '-' || s_digits(&p, 2, &M) || *p++ != '-' ||
        s_digits(&p, 2, &D))
        return ZQ_EINVAL;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (s_digits(&p, 2, &h) || *p++ != ':' || s_digits(&p, 2, &m))
            return ZQ_EINVAL;
        if (*p == ':') {
            p++;
            if (s_digits(&p, 2, &sec))
                return ZQ_EINVAL;
            if (*p == '.' || *p == ',') {
                p++;
                double scale = 0.1;
                if (!isdigit((unsigned char)*p))
                    return ZQ_EINVAL;
                while (isdigit((unsigned char)*p)) {
                    frac += (*p - '0') * scale;
                    scale /= 10;
                    p++;
                }
            }
        }
    }
    long offset = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1, oh, om = 0;
        p++;
        if (s_digits(&p, 2, &oh))
            return ZQ_EINVAL;
        if (*p == ':')
            p++;
        if (*p && s_digits(&p, 2, &om))
            return ZQ_EINVAL;
        if (oh > 23 || om > 59)
            return ZQ_EINVAL;
        offset = sign * (oh * 3600L + om * 60L);
    }
    if (*p != '\0')
        return ZQ_EINVAL;
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
        return ZQ_EINVAL;
    /* days since 1970-01-01 in the proleptic Gregorian calendar (what timegm() computes,
     * a day past the month's end included, without its normalisation work: the broker
     * parses two dates of every STATE) */
    int64_t y = M <= 2 ? Y - 1 : Y;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (M > 2 ? M - 3 : M + 9) + 2) / 5 + D - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    int64_t days = era * 146097 + doe - 719468;
    double t = (double)(days * 86400 + h * 3600 + m * 60 + sec) - (double)offset + frac;
    if (t < S_T_MIN || t >= S_T_MAX + 1) /* an offset took it out of years 0000-9999 */
        return ZQ_EINVAL;
    *out = t;
    return ZQ_OK;
}

struct timespec zq_time_timespec(double t)
{
    struct timespec ts = {0, 0};
    if (!(t > 0))
        return ts;
    double sec = floor(t);
    ts.tv_sec = (time_t)sec;
    ts.tv_nsec = (long)((t - sec) * 1e9);
    if (ts.tv_nsec > 999999999L)
        ts.tv_nsec = 999999999L;
    return ts;
}
