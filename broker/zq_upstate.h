/*
 * zq_upstate - a worker's STATE message (docs/protocol.md §8 "Upstream") as the broker uses
 * it: the members it reads, copied into the turn's arena. zq_upstate_read takes the body's
 * text without a cJSON tree (parsing and freeing the tree of every STATE in a BATCH was
 * ~12 % of the broker's CPU per task); a body outside its form is declined, and
 * zq_upstate_from_json reads it from the tree instead, with the same result. Neither
 * judges the values: the broker checks them (s_on_state) as it always did.
 */
#ifndef ZQ_UPSTATE_H
#define ZQ_UPSTATE_H

#include "zq_arena.h"
#include "zq_jscan.h"

#include <cjson/cJSON.h>
#include <stddef.h>

/* zq_upstate_read's answer when the body is not in the form it reads. */
#define ZQ_UPSTATE_DECLINED 1

/* Strings are NUL-terminated, unescaped, NULL when the member is absent, null or (from a
 * tree) not a string; all of it lives in the arena. */
typedef struct {
    const char *id, *state, *worker, *timestamp, *traceback, *eta, *received, *started;
    const char *result;    /* compact JSON text of "result" ("null" for null); NULL: absent */
    const char *signum;    /* JSON text of "signum" when a number or a string */
    int has_exc;           /* "exception" is an object */
    const char *exc_type;  /* its "type" / "message" when strings */
    const char *exc_message;
    int has_runtime, has_countdown, has_pid; /* these members are numbers */
    double runtime, countdown, pid;
    int acks_late; /* "acks_late": true; 0 when false, absent or not a boolean */
} zq_upstate_t;

/* Read a STATE body (len bytes, borrowed) into *out (in a). ZQ_OK; ZQ_UPSTATE_DECLINED: not
 * in this reader's form (an escape in a key, \u, a member of an unexpected type, a
 * duplicate, nesting beyond 64, not an object), take zq_upstate_from_json; ZQ_ENOMEM. */
int zq_upstate_read(const char *body, size_t len, zq_arena_t *a, zq_upstate_t **out);
/* The same for the object at r's cursor, in a longer text (a BATCH read in one pass): on
 * ZQ_OK the cursor is past it; otherwise it is anywhere inside it. */
int zq_upstate_scan(zq_jscan_t *r, zq_arena_t *a, zq_upstate_t **out);
/* The same from a parsed body (borrowed; any JSON value). ZQ_OK or ZQ_ENOMEM. */
int zq_upstate_from_json(const cJSON *body, zq_arena_t *a, zq_upstate_t **out);

#endif
