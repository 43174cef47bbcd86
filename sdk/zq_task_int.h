/*
 * zq_task_int.h - internals of zq_task_t and zq_request_t, shared by the SDK (sdk/zq_task.c:
 * what plugins call) and the worker (worker/zq_exec.c: what fills them in and reads the
 * outcome). Not installed; plugins only ever see the opaque types of zq.h.
 *
 * Includes zq_sb.h (the string builder) for the code that writes the worker's messages.
 */
#ifndef ZQ_TASK_INT_H
#define ZQ_TASK_INT_H

#include <signal.h>
#include <stddef.h>
#include "zq.h"
#include "zq_sb.h"

/* ---------------------------------------------------------------------------------------
 * The request context (Celery's self.request). Every pointer is borrowed from the TASK
 * message body the request was decoded from (worker/zq_exec.c, zq_exec_decode), except
 * the defaults created for a missing args/kwargs, which the request owns.
 */
struct zq_request {
    const cJSON *body;     /* the TASK message; borrowed */
    const char *id;        /* never NULL once decoded */
    const char *task;      /* never NULL once decoded */
    const cJSON *args;     /* a JSON array, never NULL once decoded (but for a prefork
                            * worker's main process: until zq_exec_decode_args) */
    const cJSON *kwargs;   /* a JSON object, the same */
    cJSON *own_args;       /* [] created when the message had none */
    cJSON *own_kwargs;     /* {} created when the message had none */
    const char *eta;       /* ISO 8601 or NULL */
    const char *expires;   /* ISO 8601 or NULL */
    double eta_t;          /* eta as epoch seconds; 0 = none */
    double expires_t;      /* expires as epoch seconds; 0 = none */
    const char *root_id;   /* defaults to id */
    const char *parent_id; /* NULL when none */
    const char *group;     /* NULL when none */
    const char *origin;    /* NULL when unknown */
    const char *queue;     /* delivery_info.routing_key; defaults to "celery" */
    const char *hostname;  /* worker node name; borrowed from the worker */
    int retries;           /* >= 0 */
    int priority;          /* 0-9 */
    int redelivered;       /* 0/1 */
    int ignore_result;     /* 0/1, from the message */
    double hard;           /* effective hard limit, seconds; 0 = none */
    double soft;           /* effective soft limit, seconds; 0 = none */
};

/* Free what the request owns (the default args/kwargs) and zero it. NULL-safe. */
void zq_request_clear(zq_request_t *r);

/* ---------------------------------------------------------------------------------------
 * The per-call task handle.
 */

/* How a running task hands a message to the broker (sub-task SUBMIT): the pool decides
 * (a prefork child writes it to its result pipe, a thread queues it for the main loop).
 * json is borrowed for the duration of the call. ZQ_OK or a negative zq_err_t. */
typedef int(zq_emit_fn)(void *arg, const char *cmd, const char *json, size_t len);

struct zq_task {
    /* set by the host before the call */
    const char *name;                  /* full name "tasks.add"; borrowed from the registry */
    const char *module;                /* plugin module name; borrowed */
    int bound;                         /* 1: zq_task_request() returns the request */
    int max_retries;                   /* resolved: N >= 0 or ZQ_RETRIES_FOREVER */
    double retry_delay;                /* resolved default_retry_delay, seconds */
    const zq_request_t *req;           /* always set; hidden from unbound tasks */
    volatile sig_atomic_t *soft_flag;  /* set to 1 when the soft limit passed; may be NULL */
    zq_emit_fn *emit;                  /* sub-task sink; NULL: zq_task_send fails ZQ_ESTATE */
    void *emit_arg;
    /* outcome, written by zq_task_fail / zq_task_retry (all malloc'd, freed by clear) */
    char *exc_type;                    /* FAILURE: exception type */
    char *exc_message;                 /* FAILURE: its message */
    char *note;                        /* extra traceback line (e.g. why a retry was refused) */
    int retry_set;                     /* 1: zq_task_retry scheduled a retry */
    double countdown;                  /* RETRY: seconds */
    char *retry_type;                  /* RETRY: the cause, or NULL (then "Retry") */
    char *retry_message;
};

/* Free the outcome fields and zero the whole handle. NULL-safe. */
void zq_task_clear(zq_task_t *t);

#endif
