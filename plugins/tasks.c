/*
 * tasks - the example plugin (module "tasks"), the C twin of the tasks.py of Celery's
 * documentation: add, add_when_binded, div, sleep, fail, request, flaky, crash.
 *
 * Built as a plain shared object (no libzq): the zq_task_* and cJSON symbols resolve
 * against the worker that loads it. Arguments are borrowed; results are handed over.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "zq.h"

/* Positional argument i, else keyword `name`, else NULL (Python's binding rules, minus
 * defaults). */
static const cJSON *s_arg(const cJSON *args, const cJSON *kwargs, int i, const char *name)
{
    const cJSON *a = cJSON_GetArrayItem(args, i);
    return a ? a : cJSON_GetObjectItemCaseSensitive(kwargs, name);
}

static const char *s_pytype(const cJSON *v)
{
    if (cJSON_IsNumber(v))
        return v->valuedouble == floor(v->valuedouble) ? "int" : "float";
    if (cJSON_IsString(v))
        return "str";
    if (cJSON_IsBool(v))
        return "bool";
    if (cJSON_IsArray(v))
        return "list";
    if (cJSON_IsObject(v))
        return "dict";
    return "NoneType";
}

/* Check the call shape like Python does, with Python's messages. names lists the
 * parameters; required of them have no default. */
static zq_task_status_t s_bind(zq_task_t *self, const char *fn, const cJSON *args,
                               const cJSON *kwargs, const char *const *names, int nparams,
                               int required, const cJSON **out)
{
    int npos = cJSON_GetArraySize(args);
    if (npos > nparams)
        return zq_task_fail(self, "TypeError",
                            "%s() takes %d positional argument%s but %d %s given", fn, nparams,
                            nparams == 1 ? "" : "s", npos, npos == 1 ? "was" : "were");
    for (const cJSON *k = kwargs ? kwargs->child : NULL; k; k = k->next) {
        int found = -1;
        for (int i = 0; i < nparams; i++)
            if (strcmp(k->string, names[i]) == 0)
                found = i;
        if (found < 0)
            return zq_task_fail(self, "TypeError", "%s() got an unexpected keyword argument '%s'",
                                fn, k->string);
        if (found < npos)
            return zq_task_fail(self, "TypeError", "%s() got multiple values for argument '%s'",
                                fn, k->string);
    }
    for (int i = 0; i < nparams; i++) {
        out[i] = s_arg(args, kwargs, i, names[i]);
        if (!out[i] && i < required)
            return zq_task_fail(self, "TypeError",
                                "%s() missing 1 required positional argument: '%s'", fn, names[i]);
    }
    return ZQ_TASK_SUCCESS;
}

static zq_task_status_t s_add_values(zq_task_t *self, const cJSON *x, const cJSON *y,
                                     cJSON **result)
{
    if (!cJSON_IsNumber(x) || !cJSON_IsNumber(y))
        return zq_task_fail(self, "TypeError", "unsupported operand type(s) for +: '%s' and '%s'",
                            s_pytype(x), s_pytype(y));
    *result = cJSON_CreateNumber(x->valuedouble + y->valuedouble);
    return *result ? ZQ_TASK_SUCCESS : zq_task_fail(self, "MemoryError", "out of memory");
}

/* add(x, y) -> x + y */
static zq_task_status_t add(zq_task_t *self, const cJSON *args, const cJSON *kwargs,
                            cJSON **result)
{
    static const char *const names[] = {"x", "y"};
    const cJSON *v[2];
    if (s_bind(self, "add", args, kwargs, names, 2, 2, v) != ZQ_TASK_SUCCESS)
        return ZQ_TASK_FAILED;
    return s_add_values(self, v[0], v[1], result);
}

/* add_when_binded(x, y): prints self and self.request (as the Celery docs do), x + y */
static zq_task_status_t add_when_binded(zq_task_t *self, const cJSON *args, const cJSON *kwargs,
                                        cJSON **result)
{
    static const char *const names[] = {"x", "y"};
    const cJSON *v[2];
    if (s_bind(self, "add_when_binded", args, kwargs, names, 2, 2, v) != ZQ_TASK_SUCCESS)
        return ZQ_TASK_FAILED;
    char *me = zq_task_to_string(self);
    char *req = zq_request_to_string(zq_task_request(self));
    /* Celery redirects print() to the log at WARNING */
    zq_task_log(self, ZQ_LOG_WARNING, "self -> %s", me ? me : "?");
    zq_task_log(self, ZQ_LOG_WARNING, "self.request -> %s", req ? req : "?");
    free(me);
    free(req);
    return s_add_values(self, v[0], v[1], result);
}

/* div(x, y, countdown=5): x / y; on y == 0 retries once after `countdown` seconds, without
 * exc, so the final error is MaxRetriesExceededError (the Celery docs' example). */
static zq_task_status_t div_(zq_task_t *self, const cJSON *args, const cJSON *kwargs,
                             cJSON **result)
{
    static const char *const names[] = {"x", "y", "countdown"};
    const cJSON *v[3];
    if (s_bind(self, "div", args, kwargs, names, 3, 2, v) != ZQ_TASK_SUCCESS)
        return ZQ_TASK_FAILED;
    if (!cJSON_IsNumber(v[0]) || !cJSON_IsNumber(v[1]))
        return zq_task_fail(self, "TypeError", "unsupported operand type(s) for /: '%s' and '%s'",
                            s_pytype(v[0]), s_pytype(v[1]));
    if (v[2] && !cJSON_IsNumber(v[2]))
        return zq_task_fail(self, "TypeError", "countdown must be a number, not '%s'",
                            s_pytype(v[2]));
    if (v[1]->valuedouble == 0) {
        zq_task_log(self, ZQ_LOG_WARNING, "Error ZeroDivisionError");
        zq_retry_opts_t ro = ZQ_RETRY_DEFAULTS;
        ro.countdown = v[2] ? v[2]->valuedouble : 5;
        ro.max_retries = 1;
        return zq_task_retry(self, &ro);
    }
    *result = cJSON_CreateNumber(v[0]->valuedouble / v[1]->valuedouble);
    return *result ? ZQ_TASK_SUCCESS : zq_task_fail(self, "MemoryError", "out of memory");
}

/* sleep(seconds) -> seconds; gives up with SoftTimeLimitExceeded when the soft limit hits. */
static zq_task_status_t sleep_(zq_task_t *self, const cJSON *args, const cJSON *kwargs,
                               cJSON **result)
{
    static const char *const names[] = {"seconds"};
    const cJSON *v[1];
    if (s_bind(self, "sleep", args, kwargs, names, 1, 1, v) != ZQ_TASK_SUCCESS)
        return ZQ_TASK_FAILED;
    if (!cJSON_IsNumber(v[0]) || v[0]->valuedouble < 0 || !isfinite(v[0]->valuedouble))
        return zq_task_fail(self, "TypeError", "seconds must be a non-negative number, not '%s'",
                            s_pytype(v[0]));
    struct timespec now, end;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double want = v[0]->valuedouble;
    end.tv_sec = now.tv_sec + (time_t)want;
    end.tv_nsec = now.tv_nsec + (long)((want - floor(want)) * 1e9);
    if (end.tv_nsec >= 1000000000L) {
        end.tv_sec++;
        end.tv_nsec -= 1000000000L;
    }
    for (;;) {
        if (zq_task_soft_limit_exceeded(self))
            return zq_task_fail(self, "SoftTimeLimitExceeded", "soft time limit exceeded");
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec > end.tv_sec || (now.tv_sec == end.tv_sec && now.tv_nsec >= end.tv_nsec))
            break;
        /* short naps: a threads-pool soft limit is a flag, not a signal that wakes us */
        struct timespec nap = {0, 10 * 1000 * 1000};
        double left = (double)(end.tv_sec - now.tv_sec) + (end.tv_nsec - now.tv_nsec) / 1e9;
        if (left < 0.01)
            nap.tv_nsec = (long)(left * 1e9);
        nanosleep(&nap, NULL);
    }
    *result = cJSON_CreateNumber(want);
    return ZQ_TASK_SUCCESS;
}

/* fail(message): ends FAILURE TaskError(message) */
static zq_task_status_t fail(zq_task_t *self, const cJSON *args, const cJSON *kwargs,
                             cJSON **result)
{
    static const char *const names[] = {"message"};
    const cJSON *v[1];
    if (s_bind(self, "fail", args, kwargs, names, 1, 1, v) != ZQ_TASK_SUCCESS)
        return ZQ_TASK_FAILED;
    if (!cJSON_IsString(v[0]))
        return zq_task_fail(self, "TypeError", "message must be a str, not '%s'",
                            s_pytype(v[0]));
    return zq_task_fail(self, "TaskError", "%s", v[0]->valuestring);
}

/* request(): the whole request context as a JSON object */
static zq_task_status_t request(zq_task_t *self, const cJSON *args, const cJSON *kwargs,
                                cJSON **result)
{
    if (s_bind(self, "request", args, kwargs, NULL, 0, 0, NULL) != ZQ_TASK_SUCCESS)
        return ZQ_TASK_FAILED;
    *result = zq_request_to_json(zq_task_request(self));
    return *result ? ZQ_TASK_SUCCESS : zq_task_fail(self, "MemoryError", "out of memory");
}

/* flaky(n): retries right away until it has been retried n times, then returns n */
static zq_task_status_t flaky(zq_task_t *self, const cJSON *args, const cJSON *kwargs,
                              cJSON **result)
{
    static const char *const names[] = {"n"};
    const cJSON *v[1];
    if (s_bind(self, "flaky", args, kwargs, names, 1, 1, v) != ZQ_TASK_SUCCESS)
        return ZQ_TASK_FAILED;
    if (!cJSON_IsNumber(v[0]) || v[0]->valuedouble < 0)
        return zq_task_fail(self, "TypeError", "n must be a non-negative int, not '%s'",
                            s_pytype(v[0]));
    int n = (int)v[0]->valuedouble;
    int retries = zq_request_retries(zq_task_request(self));
    if (retries < n) {
        zq_retry_opts_t ro = ZQ_RETRY_DEFAULTS;
        ro.countdown = 0;
        ro.exc_type = "FlakyError";
        ro.exc_message = "not yet";
        return zq_task_retry(self, &ro);
    }
    *result = cJSON_CreateNumber(n);
    return ZQ_TASK_SUCCESS;
}

/* crash(): dereferences NULL; the prefork pool reports WorkerLostError and carries on */
static zq_task_status_t crash(zq_task_t *self, const cJSON *args, const cJSON *kwargs,
                              cJSON **result)
{
    /* a volatile pointer: the compiler cannot turn the store into a trap (SIGILL) */
    volatile int *volatile p = NULL;
    *p = 42;
    return ZQ_TASK_SUCCESS;
}

static const zq_task_def_t tasks[] = {
    {"add", add, {0}},
    {"add_when_binded", add_when_binded, {.bind = 1}},
    {"div", div_, {.bind = 1}},
    {"sleep", sleep_, {0}},
    {"fail", fail, {0}},
    {"request", request, {.bind = 1}},
    {"flaky", flaky, {.bind = 1, .max_retries = ZQ_RETRIES_FOREVER}},
    {"crash", crash, {0}},
    {NULL, NULL, {0}},
};

ZQ_PLUGIN("tasks", "1.0", tasks)
