/*
 * zq.h - the zq SDK: the only header a task plugin or a client program includes.
 *
 * Two halves:
 *   - Task side: a plugin (.so) exports one symbol, zq_plugin_entry(), returning a
 *     zq_plugin_info_t that declares its module name, ABI version and task table.
 *     Tasks receive their arguments as borrowed cJSON and hand back a cJSON result.
 *   - Client side: zq_client_t sends tasks to a broker (apply_async / delay) and
 *     waits for their results (zq_result_get), without polling.
 *
 * Link with `pkg-config --cflags --libs zq`. Everything here is documented in
 * docs/plugin-abi.md (ownership table) and docs/protocol.md (what goes on the wire).
 *
 * Conventions: int functions return ZQ_OK (0) or a negative zq_err_t. Types are opaque;
 * constructors are *_new, destructors *_destroy(T **p), NULL-safe, and clear *p.
 */
#ifndef ZQ_H
#define ZQ_H

#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ZQ_VERSION_MAJOR 0
#define ZQ_VERSION_MINOR 1
#define ZQ_VERSION_PATCH 0

/* Plugin ABI. Bump MAJOR when zq_plugin_info_t or zq_task_def_t change layout or meaning;
 * bump MINOR when fields are only appended. The worker loads a plugin only when
 * abi_major == ZQ_PLUGIN_ABI_MAJOR and abi_minor <= ZQ_PLUGIN_ABI_MINOR. */
#define ZQ_PLUGIN_ABI_MAJOR 1
#define ZQ_PLUGIN_ABI_MINOR 0

/* ---------------------------------------------------------------------------------------
 * Errors
 */
typedef enum {
    ZQ_OK = 0,
    ZQ_EINVAL = -1,     /* bad argument or input */
    ZQ_ENOMEM = -2,     /* out of memory */
    ZQ_EPROTO = -3,     /* malformed or unexpected message */
    ZQ_EIO = -4,        /* socket or file error */
    ZQ_ETIMEOUT = -5,   /* a wait ran out of time */
    ZQ_EABI = -6,       /* plugin ABI mismatch */
    ZQ_EPLUGIN = -7,    /* plugin could not be loaded */
    ZQ_ENOTFOUND = -8,  /* no such task id / task name / worker */
    ZQ_EREMOTE = -9,    /* the broker refused a request, or the task ended FAILURE/REVOKED */
    ZQ_ESTORE = -10,    /* the broker could not store the task */
    ZQ_ESTATE = -11,    /* operation not allowed in this state */
    ZQ_EDUPLICATE = -12, /* name already in use */
    ZQ_EAUTH = -13       /* CurveZMQ: the peer refused our key, or keys are missing on one side */
} zq_err_t;

/* Human-readable text for a zq_err_t. Never NULL; static storage. */
const char *zq_strerror(int rc);

/* Task states, as Celery names them. */
#define ZQ_STATE_PENDING "PENDING"
#define ZQ_STATE_RECEIVED "RECEIVED"
#define ZQ_STATE_STARTED "STARTED"
#define ZQ_STATE_RETRY "RETRY"
#define ZQ_STATE_SUCCESS "SUCCESS"
#define ZQ_STATE_FAILURE "FAILURE"
#define ZQ_STATE_REVOKED "REVOKED"

/* "retry forever": pass as max_retries (Celery's max_retries=None). */
#define ZQ_RETRIES_FOREVER (-1)
/* "not given": the task's own default applies. */
#define ZQ_DEFAULT (-2)
/* zq_task_opts_t.max_retries: the task may not retry at all (0 there means "default"). */
#define ZQ_NO_RETRIES (-3)

/* ---------------------------------------------------------------------------------------
 * Task side
 */

/* The per-call handle a task receives. Valid only during the call. */
typedef struct zq_task zq_task_t;

/* What a task function returns. */
typedef enum {
    ZQ_TASK_SUCCESS = 0, /* *result holds the value (NULL means JSON null) */
    ZQ_TASK_FAILED = 1,  /* set with zq_task_fail(); the task ends FAILURE */
    ZQ_TASK_RETRY = 2    /* set with zq_task_retry(); see there */
} zq_task_status_t;

/* A task. args (a JSON array) and kwargs (a JSON object) are borrowed until the
 * function returns: do not free, change or keep them. Store the return value in
 * *result: whatever non-NULL value is there on return belongs to the worker, which
 * deletes it, on success and on failure alike. */
typedef zq_task_status_t (*zq_task_fn)(zq_task_t *self, const cJSON *args, const cJSON *kwargs,
                                       cJSON **result);

/* Task options. Zero-initialise, then set what you need; zq_task_def_t's defaults:
 * max_retries 3 (use ZQ_RETRIES_FOREVER for none), default_retry_delay 180 s. */
typedef struct {
    int bind;                   /* 1: a bound task: zq_task_request() and retry work */
    int max_retries;            /* 0 = default (3); N > 0; ZQ_RETRIES_FOREVER; ZQ_NO_RETRIES */
    double default_retry_delay; /* seconds; 0 means default (180) */
    int acks_late;              /* 1: a task lost with its worker is re-run, not failed */
    double time_limit;          /* hard limit, seconds; 0 = worker default */
    double soft_time_limit;     /* soft limit, seconds; 0 = worker default */
    int ignore_result;          /* 1: the state is recorded, the value is not stored */
} zq_task_opts_t;

/* One entry of a plugin's task table. The table ends with an entry whose name is NULL.
 * name is the short name; the full name is "<module>.<name>" (e.g. tasks.add). */
typedef struct {
    const char *name;
    zq_task_fn fn;
    zq_task_opts_t opts;
} zq_task_def_t;

/* What zq_plugin_entry() returns. Must stay valid while the plugin is loaded (static). */
typedef struct {
    uint32_t abi_major; /* ZQ_PLUGIN_ABI_MAJOR at build time: always first */
    uint32_t abi_minor; /* ZQ_PLUGIN_ABI_MINOR at build time */
    const char *module; /* module name: tasks are registered as module.name */
    const char *version;
    int (*init)(void);  /* optional, called once after load; ZQ_OK or negative */
    void (*fini)(void); /* optional, called before unload */
    const zq_task_def_t *tasks;
} zq_plugin_info_t;

/* The one symbol a plugin exports. */
#define ZQ_PLUGIN_ENTRY_SYMBOL "zq_plugin_entry"
typedef const zq_plugin_info_t *(*zq_plugin_entry_fn)(void);

/* Declare the plugin in one line: ZQ_PLUGIN("tasks", "1.0", my_tasks); */
#define ZQ_PLUGIN(module_, version_, tasks_)                                                      \
    const zq_plugin_info_t *zq_plugin_entry(void);                                                \
    __attribute__((visibility("default"))) const zq_plugin_info_t *zq_plugin_entry(void)          \
    {                                                                                             \
        static const zq_plugin_info_t info = {ZQ_PLUGIN_ABI_MAJOR, ZQ_PLUGIN_ABI_MINOR, (module_), \
                                              (version_), NULL, NULL, (tasks_)};                  \
        return &info;                                                                             \
    }

/* The request context of a bound task: Celery's self.request. Opaque; read it with the
 * accessors below. Strings are borrowed for the duration of the call; NULL when absent. */
typedef struct zq_request zq_request_t;

/* The request of a bound task; NULL for a task declared without bind. */
const zq_request_t *zq_task_request(const zq_task_t *self);
/* The full task name ("tasks.add"); always available. */
const char *zq_task_name(const zq_task_t *self);
/* The task id; always available. */
const char *zq_task_id(const zq_task_t *self);

const char *zq_request_id(const zq_request_t *r);
const char *zq_request_task(const zq_request_t *r);
const cJSON *zq_request_args(const zq_request_t *r);   /* borrowed */
const cJSON *zq_request_kwargs(const zq_request_t *r); /* borrowed */
int zq_request_retries(const zq_request_t *r);
const char *zq_request_eta(const zq_request_t *r);     /* ISO 8601 UTC or NULL */
const char *zq_request_expires(const zq_request_t *r); /* ISO 8601 UTC or NULL */
const char *zq_request_root_id(const zq_request_t *r);
const char *zq_request_parent_id(const zq_request_t *r);
const char *zq_request_group(const zq_request_t *r);
const char *zq_request_hostname(const zq_request_t *r); /* the worker's node name */
const char *zq_request_origin(const zq_request_t *r);   /* who sent it: "gen<pid>@<host>" */
const char *zq_request_queue(const zq_request_t *r);    /* delivery_info.routing_key */
int zq_request_redelivered(const zq_request_t *r);
/* Hard and soft limits in seconds; 0 when none. These are the effective limits: the
 * message's timelimit, else the task's option, else the worker's --time-limit. */
void zq_request_timelimit(const zq_request_t *r, double *hard, double *soft);
int zq_request_is_eager(const zq_request_t *r);
int zq_request_called_directly(const zq_request_t *r);

/* The whole request as a JSON object (Celery's field names).
 * Caller owns return value and must cJSON_Delete it. NULL on ENOMEM. */
cJSON *zq_request_to_json(const zq_request_t *r);
/* "<Context: {'task': 'tasks.add', 'id': '...', ...}>", shaped like Celery's dump.
 * Caller owns return value and must free() it. */
char *zq_request_to_string(const zq_request_t *r);
/* "<@task: tasks.add of tasks>", like print(self) in Celery. Caller must free() it. */
char *zq_task_to_string(const zq_task_t *self);

/* End the task with an error: type is the exception class name ("ZeroDivisionError"),
 * message printf-style. The host copies both. Returns ZQ_TASK_FAILED, so a task can write
 * `return zq_task_fail(self, "ValueError", "bad x: %d", x);`. */
zq_task_status_t zq_task_fail(zq_task_t *self, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Options of zq_task_retry(). ZQ_DEFAULT (or a zeroed struct via ZQ_RETRY_DEFAULTS) means
 * "the task's own default". */
typedef struct {
    double countdown;    /* seconds from now; < 0 (ZQ_DEFAULT) = task's default_retry_delay */
    int max_retries;     /* ZQ_DEFAULT = task's max_retries; ZQ_RETRIES_FOREVER; or N >= 0 */
    const char *exc_type;    /* the error that caused the retry, or NULL */
    const char *exc_message; /* its message, or NULL */
} zq_retry_opts_t;
#define ZQ_RETRY_DEFAULTS {ZQ_DEFAULT, ZQ_DEFAULT, NULL, NULL}

/* Ask for the task to run again later with the same id, on the same queue, with
 * retries + 1 (Celery's self.retry). Only for bound tasks. Returns ZQ_TASK_RETRY when a
 * retry was scheduled: return that from the task. When the retry limit is exceeded it
 * returns ZQ_TASK_FAILED and the task ends FAILURE: with the original error when
 * exc_type is given (as Celery re-raises exc), else with MaxRetriesExceededError. */
zq_task_status_t zq_task_retry(zq_task_t *self, const zq_retry_opts_t *opts);

/* 1 once the soft time limit has passed: clean up and return soon. */
int zq_task_soft_limit_exceeded(const zq_task_t *self);

/* Task logger: lines carry the task name and id, like Celery's get_task_logger:
 * "[... INFO/ForkPoolWorker-1] tasks.add[<id>]: message". */
typedef enum { ZQ_LOG_DEBUG = 10, ZQ_LOG_INFO = 20, ZQ_LOG_WARNING = 30, ZQ_LOG_ERROR = 40 } zq_log_level_t;
void zq_task_log(const zq_task_t *self, zq_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Options for sending a task (client side and sub-tasks alike). Zero-initialise. */
typedef struct {
    double countdown;      /* seconds from now; 0 = none */
    const char *eta;       /* ISO 8601 (UTC unless an offset is given); NULL = none */
    double expires_in;     /* seconds after publish; 0 = none */
    const char *expires;   /* ISO 8601; NULL = none (wins over expires_in) */
    const char *queue;     /* NULL = "celery" */
    const char *task_id;   /* NULL = a fresh uuid7 (time-ordered) */
    int ignore_result;     /* 1: do not store the value */
    int priority;          /* 0-9, informational */
} zq_send_opts_t;

/* Send a sub-task from inside a running task: parent_id is this task's id and root_id
 * this task's root_id. args (array or NULL) and kwargs (object or NULL) are borrowed.
 * id_out (37 bytes, may be NULL) receives the new task's id. The worker forwards it to the
 * broker without waiting (no acknowledgement reaches the task). ZQ_OK; ZQ_EINVAL for a bad
 * name, args, kwargs or option (also an opts->task_id longer than 36 characters when
 * id_out is given); ZQ_ESTATE outside a worker; ZQ_ENOMEM. */
int zq_task_send(zq_task_t *self, const char *name, const cJSON *args, const cJSON *kwargs,
                 const zq_send_opts_t *opts, char id_out[37]);

/* ---------------------------------------------------------------------------------------
 * Client side
 *
 * A client is one DEALER socket to the broker's frontend (docs/protocol.md §7). Use one
 * client from one thread at a time (give each thread its own client). Result handles
 * borrow their client: use them only while it lives (destroying them later is fine).
 *
 * Requests are pipelined: apply_async returns as soon as the SUBMIT is queued, and the
 * broker's acknowledgements are consumed whenever the client reads its socket. If the
 * connection to the broker drops and comes back (a broker restart), every request still
 * waiting for its REPLY except PURGE is sent again: SUBMIT is idempotent per task id and
 * GET/QUERY/REVOKE are harmless to repeat, so a get() survives a broker restart.
 */
typedef struct zq_client zq_client_t;
typedef struct zq_async_result zq_async_result_t;

/* The broker URL a program uses when none is given: $ZQ_BROKER, else this. */
#define ZQ_DEFAULT_BROKER "tcp://127.0.0.1:7460"
/* Celery's default queue name. */
#define ZQ_DEFAULT_QUEUE "celery"
/* Default wait, seconds, of requests that take no timeout argument (state, known,
 * revoke); see zq_client_set_timeout(). */
#define ZQ_CLIENT_TIMEOUT 10.0

/* Connect to a broker (NULL = $ZQ_BROKER or ZQ_DEFAULT_BROKER), with the CurveZMQ keys of
 * the environment ($ZQ_CURVE_SECRET and $ZQ_CURVE_SERVER_KEY, see zq_client_opts_t).
 * Returns NULL on error (a malformed URL, unreadable keys; logged). Caller owns return
 * value and must destroy it. The connection is made lazily by ZeroMQ; a broker that is
 * down is retried until the calls that wait on it time out. */
zq_client_t *zq_client_new(const char *broker_url);

/* Options of zq_client_new_opts(). Zero-initialise, then set what you need.
 *
 * CurveZMQ (docs/protocol.md §13): a broker started with --curve-secret lets in only
 * clients that encrypt with a key pair of their own whose public key it authorised. Give
 * the client its secret key file and the broker's public key file, both as written by
 * `zq-ctl keygen` (NAME.key_secret and the broker's NAME.key; format in
 * docs/management.md "Security"). Both or neither: NULL takes the environment variable
 * ($ZQ_CURVE_SECRET, $ZQ_CURVE_SERVER_KEY), "" means none. When the broker refuses the
 * key, or wants CURVE from a client without keys (or the reverse), the calls that wait for
 * the broker fail at once with ZQ_EAUTH and a zq_client_errmsg() that says which. */
typedef struct {
    const char *broker_url;            /* NULL = $ZQ_BROKER or ZQ_DEFAULT_BROKER */
    const char *curve_secret_file;     /* this client's NAME.key_secret; NULL = $ZQ_CURVE_SECRET */
    const char *curve_server_key_file; /* the broker's NAME.key; NULL = $ZQ_CURVE_SERVER_KEY */
} zq_client_opts_t;

/* zq_client_new() with options (opts NULL: all defaults). Same ownership and errors. */
zq_client_t *zq_client_new_opts(const zq_client_opts_t *opts);
/* 1 when this client talks CURVE to its broker. */
int zq_client_is_curve(const zq_client_t *self);
/* Waits (up to 5 s, see zq_client_set_linger) for acknowledgements of tasks still in
 * flight, so that tasks sent just before are not lost; logs a warning naming how many
 * were not acknowledged. Then closes. NULL-safe; clears *self_p. */
void zq_client_destroy(zq_client_t **self_p);
/* The last error's message (a broker's text, a timeout...). Never NULL; valid until the
 * next call on self. */
const char *zq_client_errmsg(const zq_client_t *self);
/* The broker URL this client talks to. */
const char *zq_client_url(const zq_client_t *self);
/* How long zq_client_destroy() waits for acknowledgements, seconds (default 5; 0: not at
 * all, for a caller that flushed itself and gave up). */
void zq_client_set_linger(zq_client_t *self, double seconds);
/* Timeout, seconds, of the calls that take none (state, known, revoke). Default
 * ZQ_CLIENT_TIMEOUT; < 0 waits forever. */
void zq_client_set_timeout(zq_client_t *self, double seconds);

/* Send a task (Celery's apply_async). name: a task name (1-255 printable ASCII, no
 * spaces). args: JSON array or NULL; kwargs: JSON object or NULL; both borrowed. opts may
 * be NULL. On success *result_p (if result_p is not NULL) is a new handle that the caller
 * owns and must destroy. The call does not wait for the broker's acknowledgement
 * (pipelining); zq_client_flush() does, and so does zq_result_get(). At most 16384 tasks
 * are in flight unacknowledged: past that the call waits for acknowledgements, up to the
 * client's timeout (zq_client_set_timeout), then fails with ZQ_ETIMEOUT (broker down).
 * With a handle (and without ignore_result), the task's record is subscribed to (as
 * Celery's Redis backend does at send time): the broker sends it when the task ends and
 * the client keeps it, so
 * zq_result_get() / zq_client_get_async() usually send nothing. Destroy handles you will
 * not wait on; pass result_p NULL for fire-and-forget tasks.
 * Tasks submitted in quick succession travel together (one SUBMITS message, up to 64 tasks,
 * docs/protocol.md §7): a task that comes within 0.5 ms of the client's last send may wait
 * up to 1 ms in the client; every other call of the client sends it at once. For that the
 * client starts one thread of its own (every signal blocked) the first time it holds a
 * task. A task that cannot be handed to the socket is refused: zq_client_flush() and
 * zq_result_get() report ZQ_EIO.
 * ZQ_EINVAL for bad input (zq_client_errmsg says which field), ZQ_ENOMEM. */
int zq_client_apply_async(zq_client_t *self, const char *name, const cJSON *args,
                          const cJSON *kwargs, const zq_send_opts_t *opts,
                          zq_async_result_t **result_p);
/* Celery's delay(): apply_async with positional args only. Takes ownership of args
 * (a JSON array, may be NULL) so that `zq_client_delay(c, "tasks.add", zq_args("[2,2]"), &r)`
 * leaks nothing. */
int zq_client_delay(zq_client_t *self, const char *name, cJSON *args, zq_async_result_t **result_p);
/* Wait until the broker has acknowledged (durably stored) every task sent so far, or
 * timeout seconds (< 0: forever). ZQ_OK; ZQ_ETIMEOUT; or, when the broker refused a task
 * since the last flush, ZQ_ESTORE (it could not store it), ZQ_EINVAL (it rejected a
 * field) or ZQ_EREMOTE (another refusal), with the broker's message in zq_client_errmsg;
 * ZQ_EIO when a task could not be sent at all. A refusal is reported once. */
int zq_client_flush(zq_client_t *self, double timeout);
/* Number of tasks sent and not yet acknowledged. */
size_t zq_client_unacked(const zq_client_t *self);

/* A handle for an existing id (zq-ctl result). Caller owns return value (NULL when
 * task_id is not a valid id, or on ENOMEM). */
zq_async_result_t *zq_client_result(zq_client_t *self, const char *task_id);

const char *zq_result_id(const zq_async_result_t *r);
/* Wait for the task to finish, at most timeout seconds (< 0: forever). The broker parks
 * the request until the result exists: no polling. Returns ZQ_OK when the task ended
 * SUCCESS (*value_p: caller owns, may be NULL if not wanted), ZQ_EREMOTE when it ended
 * FAILURE or REVOKED (zq_client_errmsg gives "Type: message", zq_result_record the whole
 * record), ZQ_ETIMEOUT when it was not done in time (the broker said so, or did not
 * answer within timeout plus a short grace), ZQ_ENOTFOUND when the broker says it never
 * accepted the id, the broker's refusal of this task's SUBMIT, or another error. */
int zq_result_get(zq_async_result_t *r, double timeout, cJSON **value_p);
/* Ask the broker for the current state without waiting (QUERY). Returns a static state
 * name, or NULL on error (zq_client_errmsg). "PENDING" for an id the broker never
 * accepted too, as Celery does; zq_result_known() tells the two apart. */
const char *zq_result_state(zq_async_result_t *r);
/* 1 if the broker knows this id, 0 if it never accepted it, negative zq_err_t on error.
 * Asks the broker (QUERY). */
int zq_result_known(zq_async_result_t *r);
/* The last record fetched by get/state/known (docs/protocol.md §9 "Task record"), or
 * NULL before the first. Borrowed: valid until the next call on r or its destruction.
 * After a get() that found its record already pushed, the record is parsed by the first
 * call of this function (get() itself reads only the value). */
const cJSON *zq_result_record(const zq_async_result_t *r);
/* Free a handle (NULL-safe, clears *r_p); a record still to come for it is dropped. May be
 * called after its client was destroyed. */
void zq_result_destroy(zq_async_result_t **r_p);

/* Pipelined results: several GETs outstanding at once (a benchmark, a fan-out).
 * zq_client_get_async() sends GET for task_id (timeout seconds, < 0: forever) and returns
 * without waiting. zq_client_poll_result() waits up to timeout seconds (< 0: forever) for
 * the next GET to complete, in completion order, and hands over its record in *record_p
 * (caller owns and must cJSON_Delete it; its "id" says which task):
 *   ZQ_OK        the record (terminal state, or "timeout": true when the broker's wait
 *                ran out; a task ended FAILURE is still ZQ_OK here: read "state");
 *   ZQ_ETIMEOUT  no GET completed within timeout (*record_p NULL), or the broker did not
 *                answer one GET within its timeout plus a grace: *record_p is then
 *                {"id": ..., "timeout": true};
 *   ZQ_ESTATE    no GET is outstanding (*record_p NULL);
 *   other        the broker refused one GET: *record_p is {"id", "error": {"code",
 *                "message"}}. */
int zq_client_get_async(zq_client_t *self, const char *task_id, double timeout);
int zq_client_poll_result(zq_client_t *self, double timeout, cJSON **record_p);

/* Revoke tasks (client API of `zq-ctl revoke`): REVOKE {ids, terminate, signal}.
 * signum 0 means SIGTERM. ZQ_OK once the broker recorded it. */
int zq_client_revoke(zq_client_t *self, const char *const *ids, size_t n, int terminate,
                     int signum);

/* Any frontend request (docs/protocol.md §7) for tools such as zq-ctl: sends cmd with body
 * (a JSON object, borrowed; NULL = {}; "req" is added by the client) and waits up to
 * timeout seconds (< 0: forever) for its REPLY. ZQ_OK with *reply_p = the success object
 * without "req" (caller owns and must cJSON_Delete it); ZQ_ETIMEOUT when the broker did
 * not answer; the broker's error code mapped to zq_err_t (ZQ_EINVAL, ZQ_ENOTFOUND,
 * ZQ_ESTORE, ZQ_EDUPLICATE, ZQ_EPROTO for EPROTO/EVERSION/EUNKNOWNCMD, else ZQ_EREMOTE)
 * with its message in zq_client_errmsg. */
int zq_client_request(zq_client_t *self, const char *cmd, const cJSON *body, double timeout,
                      cJSON **reply_p);

/* Convenience: parse a JSON text; caller owns the result (NULL on bad JSON). */
cJSON *zq_args(const char *json);

#ifdef __cplusplus
}
#endif
#endif /* ZQ_H */
