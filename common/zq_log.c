/*
 * zq_log - one line per call, written with a single fwrite so that lines from forked
 * children and threads sharing stderr do not interleave mid-line.
 */
#include "config.h"
#include "zq_log.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

static zq_log_level_t s_level = ZQ_LOG_INFO;
static FILE *s_stream;
static __thread char s_procname[48] = "MainProcess";

void zq_log_set_level(zq_log_level_t level)
{
    s_level = level;
}

zq_log_level_t zq_log_get_level(void)
{
    return s_level;
}

int zq_log_parse_level(const char *s, zq_log_level_t *out)
{
    static const struct {
        const char *name;
        zq_log_level_t level;
    } map[] = {{"DEBUG", ZQ_LOG_DEBUG},     {"INFO", ZQ_LOG_INFO},   {"WARNING", ZQ_LOG_WARNING},
               {"WARN", ZQ_LOG_WARNING},    {"ERROR", ZQ_LOG_ERROR}, {"CRITICAL", ZQ_LOG_ERROR},
               {"FATAL", ZQ_LOG_ERROR}};
    if (!s)
        return ZQ_EINVAL;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcasecmp(s, map[i].name) == 0) {
            *out = map[i].level;
            return ZQ_OK;
        }
    return ZQ_EINVAL;
}

void zq_log_set_process_name(const char *name)
{
    snprintf(s_procname, sizeof s_procname, "%s", name ? name : "MainProcess");
}

void zq_log_set_stream(void *fp)
{
    s_stream = fp;
}

static const char *s_level_name(zq_log_level_t l)
{
    if (l >= ZQ_LOG_ERROR)
        return "ERROR";
    if (l >= ZQ_LOG_WARNING)
        return "WARNING";
    if (l >= ZQ_LOG_INFO)
        return "INFO";
    return "DEBUG";
}

void zq_vlog(zq_log_level_t level, const char *fmt, va_list ap)
{
    if (level < s_level)
        return;
    char line[8192];
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    localtime_r(&tv.tv_sec, &tm);
    int n = (int)strftime(line, sizeof line, "[%Y-%m-%d %H:%M:%S", &tm);
    n += snprintf(line + n, sizeof line - (size_t)n, ",%03d: %s/%s] ", (int)(tv.tv_usec / 1000),
                  s_level_name(level), s_procname);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    if (m < 0)
        m = 0;
    n += m;
    if ((size_t)n > sizeof line - 2)
        n = (int)sizeof line - 2; /* truncated: keep the newline */
    line[n++] = '\n';
    FILE *fp = s_stream ? s_stream : stderr;
    fwrite(line, 1, (size_t)n, fp);
    fflush(fp);
}

void zq_log(zq_log_level_t level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    zq_vlog(level, fmt, ap);
    va_end(ap);
}
