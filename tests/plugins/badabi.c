/* badabi - fixture: a plugin built for a future ABI (major 99); the loader must refuse it
 * with ZQ_EABI and a log line naming the file and both versions. */
#include "zq.h"

static zq_task_status_t never(zq_task_t *self, const cJSON *args, const cJSON *kwargs,
                              cJSON **result)
{
    return zq_task_fail(self, "RuntimeError", "must never run");
}

static const zq_task_def_t tasks[] = {
    {"never", never, {0}},
    {NULL, NULL, {0}},
};

const zq_plugin_info_t *zq_plugin_entry(void);
__attribute__((visibility("default"))) const zq_plugin_info_t *zq_plugin_entry(void)
{
    static const zq_plugin_info_t info = {99, 0, "badabi", "1.0", NULL, NULL, tasks};
    return &info;
}
