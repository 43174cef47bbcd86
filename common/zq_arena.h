/*
 * zq_arena - a bump allocator for what lives exactly one broker turn (the worker STATEs
 * read from a BATCH, until their store write): one reset frees it all, and a busy turn
 * makes no malloc per message once the first chunk is large enough.
 */
#ifndef ZQ_ARENA_H
#define ZQ_ARENA_H

#include <stddef.h>

typedef struct zq_arena_chunk zq_arena_chunk_t;

/* A zeroed zq_arena_t is an empty arena. */
typedef struct {
    zq_arena_chunk_t *head; /* the chunk being filled; older ones follow */
    size_t used;            /* bytes of all chunks handed out since the last reset */
    int fail;               /* testing aid: this many allocations still to fail (ENOMEM) */
} zq_arena_t;

/* n bytes aligned for any type, valid until zq_arena_reset / zq_arena_free; NULL on ENOMEM. */
void *zq_arena_alloc(zq_arena_t *a, size_t n);
/* A NUL-terminated copy of n bytes of s; NULL on ENOMEM. */
char *zq_arena_strndup(zq_arena_t *a, const char *s, size_t n);
/* Forget everything handed out; keeps the newest chunk (the largest) for the next turn. */
void zq_arena_reset(zq_arena_t *a);
void zq_arena_free(zq_arena_t *a);

#endif
