/*
 * zq_broker_int.h - test seam of the broker loop (tests/fuzz). Not for production use.
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

#endif
