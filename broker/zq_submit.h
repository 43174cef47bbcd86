/*
 * zq_submit - the fast reading of a SUBMIT body (docs/protocol.md §6, §7): the request in
 * the form zq's client library sends it is validated and turned into the stored task message
 * in one pass over its text, without a cJSON tree (parsing, completing and printing the tree
 * was ~15 % of the broker's CPU per task). Anything outside that form (an unknown member, a
 * null, a duplicate, a \u escape, a value of an unexpected type or range) is left to the
 * general path (s_submit_prepare in zq_broker.c), which also words every error: this reader
 * never refuses a request, it only declines to read it.
 */
#ifndef ZQ_SUBMIT_H
#define ZQ_SUBMIT_H

#include "zq_sb.h"

#include <stddef.h>

/* zq_submit_read's answer when the body is not in the form it reads. */
#define ZQ_SUBMIT_DECLINED 1

typedef struct {
    /* the request */
    int has_req;  /* "req" given (any number, answered as given) */
    double req;
    double get;   /* "get": the record's request number; 0 when absent */
    int coalesce; /* "coalesce": 0 absent or false, 1 true, 2 an integer >= 2 */
    /* the task (NUL-terminated, in this struct) */
    char id[256], task[256], queue[256], root_id[256], parent_id[256]; /* parent_id "": none */
    double eta, expires; /* epoch seconds; 0: none */
    int retries, ignore_result;
    /* the arguments' JSON text, spans of the body */
    const char *args, *kwargs;
    size_t args_len, kwargs_len;
} zq_submit_t;

/* Read body (len bytes, borrowed: args and kwargs point into it) as a SUBMIT received at
 * now (epoch seconds). ZQ_OK: *out is filled and msg (appended to) holds the task message to
 * store and forward (docs §6: request-only members dropped, defaults filled in, eta/expires
 * as timestamps or null, sent and retries set). ZQ_SUBMIT_DECLINED: not in this reader's
 * form, nothing written to msg; take the general path. An id is minted when absent. */
int zq_submit_read(const char *body, size_t len, double now, zq_submit_t *out, zq_sb_t *msg);

#endif
