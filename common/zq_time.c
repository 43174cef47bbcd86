#include "config.h"
#include "zq_time.h"
#include "zq.h"

#include <ctype.h>
#include <math.h>
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

char *zq_time_iso(double t, char *buf, size_t len)
{
    time_t sec = (time_t)floor(t);
    long usec = lround((t - (double)sec) * 1e6);
    if (usec >= 1000000) {
        sec += 1;
        usec -= 1000000;
    }
    struct tm tm;
    gmtime_r(&sec, &tm);
    char base[24];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, len, "%s.%06ldZ", base, usec);
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
        offset = sign * (oh * 3600L + om * 60L);
    }
    if (*p != '\0')
        return ZQ_EINVAL;
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
        return ZQ_EINVAL;
    struct tm tm = {0};
    tm.tm_year = Y - 1900;
    tm.tm_mon = M - 1;
    tm.tm_mday = D;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    *out = (double)t - (double)offset + frac;
    return ZQ_OK;
}
