/*
 * zq_outbox - upstream batches kept until the broker confirms them (see zq_outbox.h).
 */
#include "zq_outbox.h"

#include "zq.h"
#include "zq_sb.h"

#include <stdlib.h>
#include <string.h>

typedef struct s_batch {
    struct s_batch *next;
    uint64_t seq;
    char *text; /* the whole BATCH body */
    size_t len;
    size_t nmsg;
    char *ids;  /* NUL-separated task ids ended by this batch */
    size_t idslen;
    double sent; /* zq_mono() of the last send; 0 = not sent since (re)queued */
} s_batch_t;

struct zq_outbox {
    char *worker;
    uint64_t seq;          /* last sequence given to a batch */
    s_batch_t *head, *tail; /* closed batches, oldest first */
    size_t nbatches, nmsgs;
    /* the open batch */
    zq_sb_t open;
    size_t open_n;
    zq_sb_t open_ids;
};

zq_outbox_t *zq_outbox_new(const char *worker)
{
    zq_outbox_t *self = calloc(1, sizeof *self);
    if (!self || !(self->worker = strdup(worker ? worker : ""))) {
        free(self);
        return NULL;
    }
    zq_sb_init(&self->open);
    zq_sb_init(&self->open_ids);
    return self;
}

static void s_batch_free(s_batch_t *b)
{
    free(b->text);
    free(b->ids);
    free(b);
}

void zq_outbox_destroy(zq_outbox_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zq_outbox_t *self = *self_p;
    for (s_batch_t *b = self->head, *next; b; b = next) {
        next = b->next;
        s_batch_free(b);
    }
    zq_sb_free(&self->open);
    zq_sb_free(&self->open_ids);
    free(self->worker);
    free(self);
    *self_p = NULL;
}

static void s_seal_or_drop(zq_outbox_t *self);

int zq_outbox_add(zq_outbox_t *self, const char *cmd, const char *json, size_t len,
                  const char *extra, const char *task_id)
{
    if (!self || !cmd || !json)
        return ZQ_EINVAL;
    if (extra && !*extra)
        extra = NULL;
    if (extra && (len < 2 || json[len - 1] != '}'))
        extra = NULL; /* not an object we can extend: the message goes as it is */
    /* a batch stays well under the broker's ZMQ_MAXMSGSIZE: a larger one would cut the
     * connection, and be sent again, forever */
    if (self->open_n &&
        self->open.len + len + (extra ? strlen(extra) : 0) + 64 > ZQ_OUTBOX_BATCH_MAX)
        s_seal_or_drop(self);
    zq_sb_t *b = &self->open;
    size_t mark = b->len, idmark = self->open_ids.len;
    if (!self->open_n) {
        /* the sequence is only known when the batch opens: write the head now */
        b->len = 0;
        zq_sb_puts(b, "{\"worker\":");
        zq_sb_json_str(b, self->worker);
        zq_sb_printf(b, ",\"seq\":%llu,\"messages\":[", (unsigned long long)self->seq + 1);
    } else {
        zq_sb_putc(b, ',');
    }
    zq_sb_puts(b, "[\"");
    zq_sb_puts(b, cmd);
    zq_sb_puts(b, "\",");
    if (extra) {
        /* "{...}" + extra: "{...,extra}" ("{extra}" for an empty object) */
        zq_sb_putn(b, json, len - 1);
        if (len > 2)
            zq_sb_putc(b, ',');
        zq_sb_puts(b, extra);
        zq_sb_putc(b, '}');
    } else {
        zq_sb_putn(b, json, len);
    }
    zq_sb_putc(b, ']');
    if (task_id)
        zq_sb_putn(&self->open_ids, task_id, strlen(task_id) + 1);
    if (b->oom || self->open_ids.oom) {
        /* drop this message only; the batch stays well formed */
        b->oom = 0;
        b->len = self->open_n ? mark : 0;
        self->open_ids.oom = 0;
        self->open_ids.len = idmark;
        return ZQ_ENOMEM;
    }
    self->open_n++;
    self->nmsgs++;
    return ZQ_OK;
}

/* Close the open batch into the list. */
static int s_seal(zq_outbox_t *self)
{
    if (!self->open_n)
        return ZQ_OK;
    zq_sb_puts(&self->open, "]}");
    s_batch_t *bt = calloc(1, sizeof *bt);
    if (!bt || self->open.oom) {
        free(bt);
        return ZQ_ENOMEM;
    }
    bt->nmsg = self->open_n;
    bt->text = zq_sb_steal(&self->open, &bt->len);
    if (!bt->text) {
        free(bt);
        return ZQ_ENOMEM; /* the batch is lost: only possible when memory ran out */
    }
    bt->seq = ++self->seq;
    if (self->open_ids.len) {
        bt->idslen = self->open_ids.len;
        bt->ids = zq_sb_steal(&self->open_ids, NULL);
        if (!bt->ids)
            bt->idslen = 0;
    }
    zq_sb_free(&self->open_ids);
    zq_sb_init(&self->open);
    zq_sb_init(&self->open_ids);
    self->open_n = 0;
    if (self->tail)
        self->tail->next = bt;
    else
        self->head = bt;
    self->tail = bt;
    self->nbatches++;
    return ZQ_OK;
}

/* Close the open batch; out of memory, it cannot be kept: start a new one. */
static void s_seal_or_drop(zq_outbox_t *self)
{
    if (s_seal(self) != ZQ_OK) {
        zq_sb_free(&self->open);
        zq_sb_free(&self->open_ids);
        self->nmsgs -= self->open_n;
        self->open_n = 0;
    }
}

int zq_outbox_flush(zq_outbox_t *self, zq_outbox_send_fn *send, void *arg, double now)
{
    if (!self)
        return 0;
    s_seal_or_drop(self);
    int n = 0;
    for (s_batch_t *b = self->head; b; b = b->next) {
        if (b->sent > 0)
            continue;
        if (!send || send(arg, b->text, b->len) != ZQ_OK)
            break;
        b->sent = now > 0 ? now : 1e-9;
        n++;
    }
    return n;
}

int zq_outbox_ack(zq_outbox_t *self, uint64_t seq)
{
    s_batch_t *prev = NULL;
    for (s_batch_t *b = self ? self->head : NULL; b; prev = b, b = b->next) {
        if (b->seq != seq)
            continue;
        if (prev)
            prev->next = b->next;
        else
            self->head = b->next;
        if (self->tail == b)
            self->tail = prev;
        self->nbatches--;
        self->nmsgs -= b->nmsg;
        s_batch_free(b);
        return 1;
    }
    return 0;
}

void zq_outbox_resend(zq_outbox_t *self)
{
    for (s_batch_t *b = self ? self->head : NULL; b; b = b->next)
        b->sent = 0;
}

double zq_outbox_oldest_sent(const zq_outbox_t *self)
{
    /* batches go out in order: the first one sent is the oldest */
    for (const s_batch_t *b = self ? self->head : NULL; b; b = b->next)
        if (b->sent > 0)
            return b->sent;
    return 0;
}

size_t zq_outbox_batches(const zq_outbox_t *self)
{
    return self ? self->nbatches + (self->open_n ? 1 : 0) : 0;
}

size_t zq_outbox_messages(const zq_outbox_t *self)
{
    return self ? self->nmsgs : 0;
}

uint64_t zq_outbox_last_seq(const zq_outbox_t *self)
{
    return self ? self->seq : 0;
}

static void s_each(const char *ids, size_t len, void (*fn)(void *, const char *), void *arg)
{
    for (size_t off = 0; ids && off < len; off += strlen(ids + off) + 1)
        fn(arg, ids + off);
}

void zq_outbox_each_id(const zq_outbox_t *self, void (*fn)(void *arg, const char *id), void *arg)
{
    if (!self || !fn)
        return;
    for (const s_batch_t *b = self->head; b; b = b->next)
        s_each(b->ids, b->idslen, fn, arg);
    s_each(self->open_ids.buf, self->open_ids.len, fn, arg);
}
