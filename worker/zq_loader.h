/*
 * zq_loader - plugin loading and the task registry of a worker.
 *
 * A plugin is a shared object exporting zq_plugin_entry() (sdk/zq.h). The loader first
 * dlopen()s it in a probe child (one fork per plugin), so that a constructor that crashes,
 * hangs or exits is refused instead of taking the worker down; then opens it with
 * dlopen(RTLD_NOW | RTLD_LOCAL), checks its ABI version, calls its init(), and
 * registers its tasks as "<module>.<name>". Every refusal is one ERROR log line naming the
 * file and the reason; the other plugins still load. Task names arrive from the wire and
 * are only ever looked up in the registry (sorted array, binary search), never dlsym'd.
 */
#ifndef ZQ_LOADER_H
#define ZQ_LOADER_H

#include <stddef.h>
#include "zq.h"

typedef struct zq_loader zq_loader_t;

/* One registered task. Owned by the loader; valid until zq_loader_destroy. Options are
 * resolved: the zq_task_opts_t defaults (0 = default) are already applied. */
typedef struct {
    const char *name;        /* full name "tasks.add" */
    const char *module;      /* plugin module name ("tasks") */
    const char *path;        /* file the plugin was loaded from */
    zq_task_fn fn;           /* the task function */
    int bind;                /* 1: bound task (request, retry) */
    int max_retries;         /* N >= 0, or ZQ_RETRIES_FOREVER */
    double retry_delay;      /* default_retry_delay, seconds */
    int acks_late;           /* 1: re-run rather than fail when its worker is lost */
    double time_limit;       /* hard limit, seconds; 0 = the worker's default */
    double soft_time_limit;  /* soft limit, seconds; 0 = the worker's default */
    int ignore_result;       /* 1: the value is not stored */
} zq_task_entry_t;

/* Seconds a probe child may take to dlopen a plugin before it is refused as hanging. */
#define ZQ_LOADER_PROBE_TIMEOUT 10.0

/* Defaults applied to zeroed zq_task_opts_t fields (Celery's). */
#define ZQ_DEFAULT_MAX_RETRIES 3
#define ZQ_DEFAULT_RETRY_DELAY 180.0 /* seconds */

/* An empty registry. Caller owns return value and must destroy it. NULL on ENOMEM. */
zq_loader_t *zq_loader_new(void);
/* Call every plugin's fini(), dlclose them, free the registry. NULL-safe; clears *self_p.
 * Entries returned earlier become invalid. */
void zq_loader_destroy(zq_loader_t **self_p);

/* Let world-writable plugin files and directories load (logged as a WARNING). Default off:
 * anyone who can write there could make the worker run their code. */
void zq_loader_set_allow_insecure(zq_loader_t *self, int allow);

/* How long a probe child may take to dlopen a plugin (default ZQ_LOADER_PROBE_TIMEOUT);
 * <= 0 loads plugins without a probe. */
void zq_loader_set_probe_timeout(zq_loader_t *self, double seconds);

/* Load one plugin file. Returns ZQ_OK when it loaded with all its tasks; ZQ_EDUPLICATE when
 * it loaded but some task names were already taken (those were refused, the first
 * registration wins; if none was left the plugin is unloaded); ZQ_EABI on a version
 * mismatch; ZQ_EPLUGIN when dlopen, the probe (its constructor crashed, hung or exited),
 * the entry symbol, the plugin's table or its init() failed; ZQ_EINVAL for a bad path or
 * an insecure (world-writable) file. Each refusal is logged at ERROR. */
int zq_loader_load_file(zq_loader_t *self, const char *path);

/* Load every "*.so" in dir, in name order (so logs are deterministic). Returns the number of
 * plugins loaded (>= 0), or ZQ_EIO when the directory cannot be read, ZQ_EINVAL when it is
 * world-writable (and insecure loading is off). Per-file failures are logged, not returned. */
int zq_loader_load_dir(zq_loader_t *self, const char *dir);

/* The task registered under name, or NULL. name is borrowed (may come from the wire). */
const zq_task_entry_t *zq_loader_find(const zq_loader_t *self, const char *name);

/* Number of registered tasks, and the i-th in name order (NULL when out of range). */
size_t zq_loader_task_count(const zq_loader_t *self);
const zq_task_entry_t *zq_loader_task(const zq_loader_t *self, size_t i);
/* Number of plugins loaded. */
size_t zq_loader_plugin_count(const zq_loader_t *self);

/* Apply the zq_task_opts_t defaults (0 = default) to out's option fields. For tests. */
void zq_loader_resolve_opts(const zq_task_opts_t *opts, zq_task_entry_t *out);

#endif
