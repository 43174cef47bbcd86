/*
 * zq_outbox - a worker's upstream messages, batched and kept until the broker confirms them.
 *
 * Everything a worker tells the broker on the upstream channel (STATE, SUBMIT, RETURN) goes
 * through here. Messages added during one turn of the worker's loop become one BATCH
 * (docs/protocol.md §8) numbered by a per-worker sequence; the batch is kept until an ACK
 * naming that sequence comes back on the dispatch channel, which the broker
 * sends only after the batch's effects are committed. After the worker registers again
 * (broker restart) every unconfirmed batch is sent again; the broker applies them
 * idempotently. So a result is never lost in a socket buffer or in an uncommitted broker
 * transaction.
 */
#ifndef ZQ_OUTBOX_H
#define ZQ_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

typedef struct zq_outbox zq_outbox_t;

/* Bytes after which the open batch is closed and a new one begun (a fraction of
 * ZQ_MAX_MSG_SIZE, the most a zq socket accepts). */
#define ZQ_OUTBOX_BATCH_MAX (1024 * 1024)

/* Sends one BATCH body (JSON text, len bytes) upstream. Returns ZQ_OK when queued to the
 * socket, else a negative code: the batch stays unsent and is tried again at the next flush. */
typedef int(zq_outbox_send_fn)(void *arg, const char *json, size_t len);

/* worker: the name put in every batch (copied). NULL on ENOMEM. */
zq_outbox_t *zq_outbox_new(const char *worker);
void zq_outbox_destroy(zq_outbox_t **self_p);

/* Append one message (cmd: STATE, SUBMIT, RETURN; json: one JSON object, copied) to the
 * open batch. extra: more members written into that object as it is copied (`"k":v,...`,
 * no leading comma), or NULL. task_id: the task a terminal STATE ends (remembered so that
 * HELLO can list it in `holding` until confirmed), else NULL. ZQ_OK, ZQ_EINVAL (NULL
 * argument) or ZQ_ENOMEM (the message is dropped). */
int zq_outbox_add(zq_outbox_t *self, const char *cmd, const char *json, size_t len,
                  const char *extra, const char *task_id);

/* Close the open batch, then send every batch not sent yet, oldest first, stopping at the
 * first one send refuses. now: zq_mono(), stamped on what is sent. Returns how many
 * batches were sent. */
int zq_outbox_flush(zq_outbox_t *self, zq_outbox_send_fn *send, void *arg, double now);

/* The broker committed batch seq: forget it. Not cumulative: a batch lost with a broken
 * connection while later ones got through is still sent again. Returns 1 if it was kept. */
int zq_outbox_ack(zq_outbox_t *self, uint64_t seq);

/* Mark every unconfirmed batch as unsent, so that the next flush sends them again (after
 * a re-registration, or when the oldest waited too long). */
void zq_outbox_resend(zq_outbox_t *self);

/* zq_mono() time the oldest sent, unconfirmed batch was sent; 0 when none is waiting. */
double zq_outbox_oldest_sent(const zq_outbox_t *self);

/* Batches kept (sent or not) and messages in them, open batch included. */
size_t zq_outbox_batches(const zq_outbox_t *self);
size_t zq_outbox_messages(const zq_outbox_t *self);
/* Sequence of the last batch closed (0: none yet). */
uint64_t zq_outbox_last_seq(const zq_outbox_t *self);

/* Call fn for every task id ended by an unconfirmed STATE (open batch included). */
void zq_outbox_each_id(const zq_outbox_t *self, void (*fn)(void *arg, const char *id),
                       void *arg);

#endif
