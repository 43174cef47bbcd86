/*
 * testtasks - fixture tasks for unit and end-to-end tests (module "testtasks"):
 *   retry_default(n)  bound; retries with no countdown until retries == n: the delay is the
 *                     task's default_retry_delay (0.2 s), the limit the default (3)
 *   forever(n)        bound, max_retries ZQ_RETRIES_FOREVER, default_retry_delay 0.05 s
 *   retry_exc()       bound; retry(exc=ZeroDivisionError, max_retries=1): past the limit the
 *                     original error surfaces, as Celery's `raise self.retry(exc=exc)`
 *   no_retries()      bound, max_retries ZQ_NO_RETRIES: the first retry is refused
 *   unbound_retry()   not bound: retry() is refused (RuntimeError)
 *   sleep_ignore(s)   sleeps s seconds ignoring the soft limit (for hard-limit tests)
 *   limited(s)        sleep with the task's own limits: time_limit 1 s, soft_time_limit 0.5 s
 *   send_sub(name, args=[], kwargs={})  sends a sub-task; returns its id
 *   echo(*args, **kwargs) -> {"args": args, "kwargs": kwargs}
 *   fail_with_result() sets *result, then fails (the worker must free it)
 *   bad_status()      returns a status that is not a zq_task_status_t
 *   log(msg)          logs msg through zq_task_log at INFO, returns null
 *   acks_late()       acks_late task returning true
 *   record(s, value, gate=null)  appends "<task id>\n" to the file named by $ZQ_TEST_RECORD
 *                     (when set) as it starts, then waits until the file `gate` exists (or its
 *                     directory is gone: the test is over), sleeps s seconds, returns value.
 *                     Fault tests count how many times each id ran, and hold tasks running
 *                     for as long as they need without guessing durations.
 *   record_late(s, value, gate=null)  the same, acks_late
 */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "zq.h"

static zq_task_status_t retry_until(zq_task_t *self, const cJSON *args, double countdown)
{
    const cJSON *n = cJSON_GetArrayItem(args, 0);
    int want = cJSON_IsNumber(n) ? (int)n->valuedouble : 1;
    if (zq_request_retries(zq_task_request(self)) >= want)
        return ZQ_TASK_SUCCESS;
    zq_retry_opts_t ro = ZQ_RETRY_DEFAULTS;
    ro.countdown = countdown;
    return zq_task_retry(self, &ro);
}

static zq_task_status_t retry_default(zq_task_t *self, const cJSON *args, const cJSON *kwargs,
                                      cJSON **result)
{
    zq_task_status_t st = retry_until(self, args, ZQ_DEFAULT);
    if (st == ZQ_TASK_SUCCESS)
        *result = cJSON_CreateNumber(zq_request_retries(zq_task_request(self)));
    return st;
}

static zq_task_status_t forever(zq_task_t *self, const cJSON *args, const cJSON *kwargs,
                                cJSON **result)
{
    zq_task_status_t st = retry_until(self, args, ZQ_DEFAULT);
    if (st == ZQ_TASK_SUCCESS)
        *result = cJSON_CreateNumber(zq_request_retries(zq_task_request(self)));
    return st;
}

static zq_task_status_t retry_exc(zq_task_t *self, const cJSON *args, const cJSON *kwargs,
                                  cJSON **result)
{
    zq_retry_opts_t ro = {0, 1, "ZeroDivisionError", "division by zero"};
    return zq_task_retry(self, &ro);
}

static zq_task_status_t no_retries(zq_task_t *self, const cJSON *args, const cJSON *kwargs,
                                   cJSON **result)
{
    return zq_task_retry(self, NULL);
}

static zq_task_status_t unbound_retry(zq_task_t *self, const cJSON *args, const cJSON *kwargs,
                                      cJSON **result)
{
    return zq_task_retry(self, NULL);
}

static void s_nap(double seconds)
{
    struct timespec ts = {(time_t)seconds, (long)((seconds - floor(seconds)) * 1e9)};
    while (nanosleep(&ts, &ts) != 0)
        ; /* EINTR (e.g. the soft-limit signal): sleep the rest */
}

static zq_task_status_t sleep_ignore(zq_task_t *self, const cJSON *args, const cJSON *kwargs,
                                     cJSON **result)
{
    const cJSON *s = cJSON_GetArrayItem(args, 0);
    double secs = cJSON_IsNumber(s) && s->valuedouble > 0 ? s->valuedouble : 0;
    s_nap(secs);
    *result = cJSON_CreateNumber(secs);
    return ZQ_TASK_SUCCESS;
}

static zq_task_status_t limited(zq_task_t *self, const cJSON *args, const cJSON *kwargs,
                                cJSON **result)
{
    const cJSON *s = cJSON_GetArrayItem(args, 0);
    double secs = cJSON_IsNumber(s) && s->valuedouble > 0 ? s->valuedouble : 0;
    for (double slept = 0; slept < secs; slept += 0.01) {
        if (zq_task_soft_limit_exceeded(self))
            return zq_task_fail(self, "SoftTimeLimitExceeded", "soft time limit exceeded");
        s_nap(0.01);
    }
    *result = cJSON_CreateNumber(secs);
    return ZQ_TASK_SUCCESS;
}

static zq_task_status_t send_sub(zq_task_t *self, const cJSON *args, const cJSON *kwargs,
                                 cJSON **result)
{
    const cJSON *name = cJSON_GetArrayItem(args, 0);
    const cJSON *sargs = cJSON_GetArrayItem(args, 1);
    const cJSON *skw = cJSON_GetArrayItem(args, 2);
    if (!cJSON_IsString(name))
        return zq_task_fail(self, "TypeError", "send_sub(name, args=[], kwargs={})");
    char id[37];
    int rc = zq_task_send(self, name->valuestring, cJSON_IsArray(sargs) ? sargs : NULL,
                          cJSON_IsObject(skw) ? skw : NULL, NULL, id);
    if (rc != ZQ_OK)
        return zq_task_fail(self, "SendError", "zq_task_send failed: %d", rc);
    *result = cJSON_CreateString(id);
    return ZQ_TASK_SUCCESS;
}

static zq_task_status_t echo(zq_task_t *self, const cJSON *args, const cJSON *kwargs,
                             cJSON **result)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *a = cJSON_Duplicate(args, 1), *k = cJSON_Duplicate(kwargs, 1);
    if (!o || !a || !k || !cJSON_AddItemToObject(o, "args", a)) {
        cJSON_Delete(o);
        cJSON_Delete(a);
        cJSON_Delete(k);
        return zq_task_fail(self, "MemoryError", "out of memory");
    }
    if (!cJSON_AddItemToObject(o, "kwargs", k)) {
        cJSON_Delete(o);
        cJSON_Delete(k);
        return zq_task_fail(self, "MemoryError", "out of memory");
    }
    *result = o;
    return ZQ_TASK_SUCCESS;
}

static zq_task_status_t fail_with_result(zq_task_t *self, const cJSON *args, const cJSON *kwargs,
                                         cJSON **result)
{
    *result = cJSON_CreateString("the worker must free this");
    return zq_task_fail(self, "ValueError", "bad value: %d", 42);
}

static zq_task_status_t bad_status(zq_task_t *self, const cJSON *args, const cJSON *kwargs,
                                   cJSON **result)
{
    return (zq_task_status_t)77;
}

static zq_task_status_t log_(zq_task_t *self, const cJSON *args, const cJSON *kwargs,
                             cJSON **result)
{
    const cJSON *m = cJSON_GetArrayItem(args, 0);
    zq_task_log(self, ZQ_LOG_INFO, "%s", cJSON_IsString(m) ? m->valuestring : "hello");
    return ZQ_TASK_SUCCESS;
}

static zq_task_status_t acks_late(zq_task_t *self, const cJSON *args, const cJSON *kwargs,
                                  cJSON **result)
{
    *result = cJSON_CreateTrue();
    return ZQ_TASK_SUCCESS;
}

static zq_task_status_t record(zq_task_t *self, const cJSON *args, const cJSON *kwargs,
                               cJSON **result)
{
    const char *file = getenv("ZQ_TEST_RECORD");
    if (file && *file) {
        char line[300];
        int n = snprintf(line, sizeof line, "%s\n", zq_task_id(self));
        /* one short O_APPEND write: lines from concurrent processes never interleave */
        int fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0 || n <= 0 || (size_t)n >= sizeof line || write(fd, line, (size_t)n) != n) {
            if (fd >= 0)
                close(fd);
            return zq_task_fail(self, "IOError", "cannot record to %s", file);
        }
        close(fd);
    }
    const cJSON *gate = cJSON_GetArrayItem(args, 2);
    if (cJSON_IsString(gate)) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", gate->valuestring);
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = '\0';
        for (int i = 0; i < 120 * 100 && access(gate->valuestring, F_OK) != 0; i++) {
            if (slash && access(dir, F_OK) != 0)
                break;
            s_nap(0.01);
        }
    }
    const cJSON *s = cJSON_GetArrayItem(args, 0);
    if (cJSON_IsNumber(s) && s->valuedouble > 0)
        s_nap(s->valuedouble);
    const cJSON *v = cJSON_GetArrayItem(args, 1);
    *result = v ? cJSON_Duplicate(v, 1) : NULL;
    return ZQ_TASK_SUCCESS;
}

static const zq_task_def_t tasks[] = {
    {"retry_default", retry_default, {.bind = 1, .default_retry_delay = 0.2}},
    {"forever", forever,
     {.bind = 1, .max_retries = ZQ_RETRIES_FOREVER, .default_retry_delay = 0.05}},
    {"retry_exc", retry_exc, {.bind = 1}},
    {"no_retries", no_retries, {.bind = 1, .max_retries = ZQ_NO_RETRIES}},
    {"unbound_retry", unbound_retry, {0}},
    {"sleep_ignore", sleep_ignore, {0}},
    {"limited", limited, {.time_limit = 1, .soft_time_limit = 0.5}},
    {"send_sub", send_sub, {.bind = 1}},
    {"echo", echo, {0}},
    {"fail_with_result", fail_with_result, {0}},
    {"bad_status", bad_status, {0}},
    {"log", log_, {0}},
    {"acks_late", acks_late, {.acks_late = 1}},
    {"record", record, {0}},
    {"record_late", record, {.acks_late = 1}},
    {NULL, NULL, {0}},
};

ZQ_PLUGIN("testtasks", "1.0", tasks)
