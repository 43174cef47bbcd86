/*
 * zq_log - leveled logging in Celery's line format:
 *   [2026-11-26 12:00:00,123: INFO/MainProcess] message
 * The process name ("MainProcess", "ForkPoolWorker-1", "ThreadPoolWorker-2") is per thread.
 */
#ifndef ZQ_LOG_H
#define ZQ_LOG_H

#include <stdarg.h>
#include "zq.h"

/* Minimum level printed; default INFO. */
void zq_log_set_level(zq_log_level_t level);
zq_log_level_t zq_log_get_level(void);
/* Parse "DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL" (any case). ZQ_EINVAL if unknown. */
int zq_log_parse_level(const char *s, zq_log_level_t *out);
/* Name shown after the level, per thread (copied). Default "MainProcess". */
void zq_log_set_process_name(const char *name);
/* Redirect output (default stderr). fp is borrowed. */
void zq_log_set_stream(void *fp);

void zq_log(zq_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void zq_vlog(zq_log_level_t level, const char *fmt, va_list ap);

/* DEBUG arguments are not even evaluated unless DEBUG is on (some look things up) */
#define ZQ_DEBUG(...)                                                                          \
    do {                                                                                       \
        if (zq_log_get_level() <= ZQ_LOG_DEBUG)                                                \
            zq_log(ZQ_LOG_DEBUG, __VA_ARGS__);                                                 \
    } while (0)
#define ZQ_INFO(...) zq_log(ZQ_LOG_INFO, __VA_ARGS__)
#define ZQ_WARN(...) zq_log(ZQ_LOG_WARNING, __VA_ARGS__)
#define ZQ_ERROR(...) zq_log(ZQ_LOG_ERROR, __VA_ARGS__)

#endif
