/*
 * ctorcrash - fixture: a plugin whose constructor misbehaves as soon as it is dlopen()ed,
 * before any zq code could check it. By default it raises SIGSEGV; $ZQ_TEST_CTOR picks
 * another misdeed: "hang" (sleeps for ever), "exit" (calls exit(3)), "ok" (nothing: the
 * plugin then loads, module "ctorcrash", task ctorcrash.ping -> "pong").
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "zq.h"

__attribute__((constructor)) static void s_misbehave(void)
{
    const char *how = getenv("ZQ_TEST_CTOR");
    if (how && !strcmp(how, "ok"))
        return;
    if (how && !strcmp(how, "hang"))
        for (;;)
            pause();
    if (how && !strcmp(how, "exit"))
        exit(3);
    /* the default action, not a sanitizer's handler: the process dies of SIGSEGV */
    signal(SIGSEGV, SIG_DFL);
    raise(SIGSEGV);
}

static zq_task_status_t ping(zq_task_t *self, const cJSON *args, const cJSON *kwargs,
                             cJSON **result)
{
    *result = cJSON_CreateString("pong");
    return ZQ_TASK_SUCCESS;
}

static const zq_task_def_t tasks[] = {
    {"ping", ping, {0}},
    {NULL, NULL, {0}},
};

ZQ_PLUGIN("ctorcrash", "1.0", tasks)
