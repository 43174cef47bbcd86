/*
 * zq_broker_int.h - test seams of the broker loop (tests/fuzz, tests/unit). Not for
 * production use.
 */
#ifndef ZQ_BROKER_INT_H
#define ZQ_BROKER_INT_H

#include <stddef.h>
#include "zq_broker.h"

/* Handle one message as if zq_broker_run() had just received it, in a turn of its own:
 * frames as they came off the socket (frontend: [identity][ZQP01][CMD][body]; upstream,
 * when `upstream` is 1: [ZQP01][CMD][body]), decoded and handled by the same functions as
 * the loop, then the turn's commit, replies (sent to whatever peer has that identity, or
 * dropped by the ROUTER), events (new subscriptions are read first), parked GETs and
 * dispatch. Frames are borrowed for the call.
 * Call it from the thread that owns the broker, never while zq_broker_run() runs. */
void zq_broker_feed(zq_broker_t *self, int upstream, const void *const *frames,
                    const size_t *sizes, size_t nframes);

/* Make the next n sends of tasks on dispatch channels (TASK, TASKS) fail as a full channel
 * does (EAGAIN): not taken, the worker blocked until its channel polls writable again.
 * n < 0 changes nothing. Returns how many such failures were still to come. Same thread
 * rule as zq_broker_feed. */
int zq_broker_fail_dispatch(zq_broker_t *self, int n);

/* Make the next n turn commits fail as a failing store's do (rolled back: the turn's
 * SUBMITs refused, its upstream messages kept and applied again after 0.5 s). n < 0
 * changes nothing. Returns how many such failures were still to come. Same thread rule. */
int zq_broker_fail_commits(zq_broker_t *self, int n);

/* Make the next n allocations for the STATEs of a turn fail as out of memory (the STATE is
 * not applied, its batch left unconfirmed). Same thread rule. */
void zq_broker_fail_state_memory(zq_broker_t *self, int n);

#endif
