/*
 * fuzz_time - ISO 8601 timestamps as peers send them (eta, expires, timestamp, the
 * monitor's received_start / received_end), common/zq_time.c. The whole input is the text
 * (up to its first NUL). Checked: a parsed time is finite, and formatting it with
 * zq_time_iso gives a wire timestamp that parses back to the same time (to the
 * microsecond); zq_time_iso on the number the input spells (strtod) never misbehaves.
 */
#include "config.h"
#include "fuzz.h"
#include "zq.h"
#include "zq_time.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    double t;
    if (zq_time_parse(s, &t) == ZQ_OK) {
        if (!isfinite(t)) {
            fprintf(stderr, "fuzz: '%s' parsed to %g\n", s, t);
            abort();
        }
        char iso[64];
        double back;
        zq_time_iso(t, iso, sizeof iso);
        if (zq_time_parse(iso, &back) != ZQ_OK || fabs(back - t) > 1e-5 * fmax(1, fabs(t) / 1e9)) {
            fprintf(stderr, "fuzz: '%s' -> %.6f -> '%s' does not parse back\n", s, t, iso);
            abort();
        }
    }
    char *end;
    double d = strtod(s, &end);
    if (end != s) {
        char iso[64];
        zq_time_iso(d, iso, sizeof iso);
    }
    free(s);
    return 0;
}
