/*
 * zq_exec - run one task message: decode it into a request context, call the task, and
 * produce the outcome as a ready-to-send STATE body (docs/protocol.md §8). Also builds the
 * STATE bodies the worker's main loop sends itself (RECEIVED, STARTED, and the failures it
 * decides without running anything: NotRegistered, InvalidArguments, revoked, lost).
 *
 * Outgoing bodies are written with zq_sb_t, not built as cJSON trees and printed: this is
 * the hot path (three STATE messages per task).
 */
#ifndef ZQ_EXEC_H
#define ZQ_EXEC_H

#include <signal.h>
#include <stddef.h>
#include "zq.h"
#include "zq_loader.h"
#include "zq_task_int.h"

/* How a run ended. */
typedef enum {
    ZQ_OUT_SUCCESS = 1,
    ZQ_OUT_FAILURE = 2,
    ZQ_OUT_RETRY = 3,
    ZQ_OUT_REVOKED = 4
} zq_outcome_state_t;

/* What zq_exec_run produced. */
typedef struct {
    zq_outcome_state_t state;
    char *json;     /* the STATE body; caller owns it and must free() it */
    size_t len;     /* its length */
    double runtime; /* seconds spent in the task function */
} zq_outcome_t;

/* Everything a run needs besides the message. All borrowed. */
typedef struct {
    const char *worker;                /* node name, "zq@host": STATE "worker", request hostname */
    zq_emit_fn *emit;                  /* where zq_task_send() goes; NULL refuses sub-tasks */
    void *emit_arg;
    volatile sig_atomic_t *soft_flag;  /* the soft-limit flag of this slot; may be NULL */
} zq_exec_env_t;

/* Decode a TASK body (borrowed; must outlive r) into r (§6 defaults applied; hostname set
 * later by the caller). Returns ZQ_OK; ZQ_EPROTO when there is no usable id (nothing can be
 * reported: drop it); ZQ_EINVAL when the task must end FAILURE InvalidArguments (r->id is
 * set; err says which field is wrong). Free with zq_request_clear() in every case. */
int zq_exec_decode(zq_request_t *r, const cJSON *body, char *err, size_t errlen);

/* zq_exec_decode_text's answer for a message outside the form it reads. */
#define ZQ_EXEC_DECLINED 1

/* Decode a TASK body from its text (raw, len bytes), without a cJSON tree: what a prefork
 * worker's main process needs, the child decoding the same text again to run it (parsing
 * a tree there as well was ~14 % of a prefork worker's CPU per task). r->body, r->args and
 * r->kwargs stay NULL (args and kwargs are only checked to be an array / an object / null)
 * until zq_exec_decode_args; the strings live in *store (caller frees it after
 * zq_request_clear). ZQ_OK; ZQ_EXEC_DECLINED, nothing kept, for anything zq_exec_decode
 * would refuse or word, or a form this reader leaves to cJSON (\u escapes, a duplicate, a
 * member of an unexpected type): parse the text and use zq_exec_decode; ZQ_ENOMEM. */
int zq_exec_decode_text(zq_request_t *r, const char *raw, size_t len, char **store);
/* Give a request decoded by zq_exec_decode_text its args and kwargs, parsed from the same
 * text: *tree (caller owns it, keeps it while r is used) holds them. ZQ_OK (nothing to do
 * when r has them) or ZQ_ENOMEM. */
int zq_exec_decode_args(zq_request_t *r, const char *raw, size_t len, cJSON **tree);

/* Run task t for request r (hostname and limits already set) and produce the outcome.
 * Logs like Celery from the calling process: "Task x[id] succeeded in 0.0001s: 4",
 * "... raised unexpected: Type('msg')" with a traceback, or "... retry: Retry in 5s".
 * ZQ_OK, or ZQ_ENOMEM (out is then empty). */
int zq_exec_run(const zq_task_entry_t *t, zq_request_t *r, const zq_exec_env_t *env,
                zq_outcome_t *out);

/* Free out->json and zero out. NULL-safe. */
void zq_outcome_clear(zq_outcome_t *out);

/* STATE bodies built by the main loop. Each returns a malloc'd text (caller frees) and its
 * length in *len, or NULL on ENOMEM. */
/* {"id","state":"RECEIVED","worker","timestamp"}; when: the receipt time (zq_now()
 * seconds; <= 0: now). */
char *zq_exec_state_received(const char *id, const char *worker, double when, size_t *len);
/* {"id","state":"STARTED","worker","timestamp","pid","acks_late"}; when: the start time
 * (zq_now() seconds; <= 0: now). */
char *zq_exec_state_started(const char *id, const char *worker, long pid, int acks_late,
                            double when, size_t *len);
/* A FAILURE or REVOKED decided by the worker: exception {type, message}, traceback (NULL =
 * null), runtime (< 0 = not run, omitted). extra is appended verbatim inside the object
 * (e.g. "\"expired\":true"), or NULL. */
char *zq_exec_state_error(const char *id, const char *worker, const char *state, const char *type,
                          const char *message, const char *traceback, double runtime,
                          const char *extra, size_t *len);

/* A traceback text for a task that did not return (crash, limit, lost): the call, then
 * "Type: message". entry may be NULL (unknown plugin); args/kwargs may be NULL. Caller
 * frees. */
char *zq_exec_traceback(const zq_task_entry_t *t, const char *name, const cJSON *args,
                        const cJSON *kwargs, const char *note, const char *type,
                        const char *message);

/* "Type('message')": Python's repr of an exception, for log lines. Caller frees. */
char *zq_exec_exc_repr(const char *type, const char *message);

#endif
