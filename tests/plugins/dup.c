/* dup - fixture: module "tasks" declaring `add` again; loaded after plugins/tasks.so its
 * tasks.add must be refused with a log line naming both files (the first one wins). */
#include "zq.h"

static zq_task_status_t add(zq_task_t *self, const cJSON *args, const cJSON *kwargs,
                            cJSON **result)
{
    *result = cJSON_CreateString("dup");
    return ZQ_TASK_SUCCESS;
}

static const zq_task_def_t tasks[] = {
    {"add", add, {0}},
    {NULL, NULL, {0}},
};

ZQ_PLUGIN("tasks", "1.0", tasks)
