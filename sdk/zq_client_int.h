/*
 * zq_client_int.h - what the unit tests may ask the client library (sdk/zq_client.c) beyond
 * zq.h. Not installed.
 */
#ifndef ZQ_CLIENT_INT_H
#define ZQ_CLIENT_INT_H

#include "zq.h"

/* How many times the client found its broker socket empty (a receive that returned EAGAIN):
 * each costs libzmq two syscalls, so the hot paths avoid them (get() of a record already
 * here looks at no socket). */
unsigned long zq_client_empty_looks(const zq_client_t *self);

/* How many times the client looked a task id up in its table of subscribed handles (only
 * apply_async, zq_client_get_async and handle destruction do: a record and get() go
 * through the handle). */
unsigned long zq_client_id_lookups(const zq_client_t *self);

/* Batching of SUBMITs (sdk/zq_client.c): hold is how long after the last send a SUBMIT
 * waits for more to leave with (S_BATCH_HOLD, 0.5 ms), late how old a held batch is when
 * the flusher thread sends it (S_BATCH_LATE, 1 ms). Tests set them long, so that what is
 * batched does not depend on the machine's speed. */
void zq_client_set_batching(zq_client_t *self, double hold, double late);

/* The next n sends on the broker socket fail (as a send libzmq refuses would): for the
 * tests of what a task that cannot be sent becomes. */
void zq_client_fail_sends(zq_client_t *self, int n);

#endif
