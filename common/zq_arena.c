/*
 * zq_arena - a bump allocator (see zq_arena.h).
 */
#include "config.h"
#include "zq_arena.h"

#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#define S_CHUNK_MIN (64 * 1024)

struct zq_arena_chunk {
    zq_arena_chunk_t *next;
    size_t cap, off;
    alignas(max_align_t) char data[];
};

void *zq_arena_alloc(zq_arena_t *a, size_t n)
{
    const size_t align = alignof(max_align_t);
    size_t need = (n + align - 1) & ~(align - 1);
    if (need < n)
        return NULL;
    if (a->fail > 0) {
        a->fail--;
        return NULL;
    }
    zq_arena_chunk_t *c = a->head;
    if (!c || c->cap - c->off < need) {
        size_t cap = c ? 2 * c->cap : S_CHUNK_MIN;
        while (cap < need)
            cap *= 2;
        zq_arena_chunk_t *nc = malloc(sizeof *nc + cap);
        if (!nc)
            return NULL;
        nc->cap = cap;
        nc->off = 0;
        nc->next = c;
        a->head = c = nc;
    }
    void *p = c->data + c->off;
    c->off += need;
    a->used += need;
    return p;
}

char *zq_arena_strndup(zq_arena_t *a, const char *s, size_t n)
{
    char *p = zq_arena_alloc(a, n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

void zq_arena_reset(zq_arena_t *a)
{
    zq_arena_chunk_t *c = a->head;
    if (!c)
        return;
    for (zq_arena_chunk_t *o = c->next, *next; o; o = next) {
        next = o->next;
        free(o);
    }
    c->next = NULL;
    c->off = 0;
    a->used = 0;
}

void zq_arena_free(zq_arena_t *a)
{
    zq_arena_reset(a);
    free(a->head);
    a->head = NULL;
}
