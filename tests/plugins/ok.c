/* ok - fixture: the smallest valid plugin (module "ok", one task ok.ping -> "pong"). */
#include "zq.h"

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

ZQ_PLUGIN("ok", "1.0", tasks)
