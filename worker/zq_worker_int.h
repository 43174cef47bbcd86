/*
 * zq_worker_int.h - test seams of the worker's main loop (tests/fuzz, tests/unit). Not for
 * production use.
 */
#ifndef ZQ_WORKER_INT_H
#define ZQ_WORKER_INT_H

#include <stddef.h>
#include "zq_worker.h"

/* Handle one message as if it had come on the dispatch channel ([ZQP01][CMD][body], frames
 * borrowed for the call): decoded and handed to the same TASK / REVOKED handlers as in
 * zq_worker_run(). On a worker from zq_worker_new() that never ran, accepted tasks are only
 * held (no pool runs them) and the STATEs it would send are dropped (no upstream channel,
 * logged at ERROR). */
void zq_worker_feed_dispatch(zq_worker_t *w, const void *const *frames, const size_t *sizes,
                             size_t nframes);

/* Does w hold task id (received, not ended)? *raw / *rawlen (may be NULL) get the text the
 * prefork pool would ship to its child (NULL in other pools). */
int zq_worker_held(const zq_worker_t *w, const char *id, const char **raw, size_t *rawlen);
/* Malformed messages (and TASKS elements) dropped so far. */
unsigned long zq_worker_bad_messages(const zq_worker_t *w);

#endif
