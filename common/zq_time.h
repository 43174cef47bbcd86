/*
 * zq_time - wall clock as double seconds since the epoch (UTC), monotonic clock, and
 * ISO 8601 conversion. Wire timestamps are ISO 8601 UTC strings with microseconds:
 * "2026-11-26T12:00:00.123456Z" (docs/protocol.md "Timestamps").
 */
#ifndef ZQ_TIME_H
#define ZQ_TIME_H

#include <stddef.h>
#include <time.h>

/* Wall clock, seconds since the epoch, microsecond resolution. */
double zq_now(void);
/* Monotonic clock, seconds. For timeouts and intervals. */
double zq_mono(void);
/* Format t (epoch seconds) as "YYYY-MM-DDTHH:MM:SS.ffffffZ" into buf (>= 32 bytes). t is
 * clamped to years 0000-9999 (NaN: the epoch), so any double gives a valid timestamp. */
char *zq_time_iso(double t, char *buf, size_t len);
/* Parse ISO 8601: "YYYY-MM-DD[T ]HH:MM[:SS[.frac]][Z|+HH:MM|-HH:MM]" or "YYYY-MM-DD".
 * No offset means UTC; an offset is at most 23:59. ZQ_OK, or ZQ_EINVAL (also for a time
 * outside years 0000-9999 UTC). */
int zq_time_parse(const char *s, double *out);
/* t (seconds, >= 0) as a timespec, for absolute timers (timerfd, clock_nanosleep). */
struct timespec zq_time_timespec(double t);

#endif
