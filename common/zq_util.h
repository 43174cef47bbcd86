/*
 * zq_util - small helpers shared by every program: JSON field access, endpoint
 * derivation (docs/protocol.md §3), host and node names, and the broker URL default.
 */
#ifndef ZQ_UTIL_H
#define ZQ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

/* Field access on a borrowed object; absent or wrong type gives the fallback. */
const char *zq_json_str(const cJSON *obj, const char *key, const char *fallback);
double zq_json_num(const cJSON *obj, const char *key, double fallback);
int zq_json_bool(const cJSON *obj, const char *key, int fallback);
/* One pass over obj's members: out[i] gets the first member named keys[i] (borrowed from
 * obj), or NULL. For code that reads many members of one object per task: a lookup each
 * walks the members again and compares every name. n <= 64. */
void zq_json_members(const cJSON *obj, const char *const *keys, size_t n, const cJSON **out);
/* The string value of a member zq_json_members found (or NULL), else fallback. */
const char *zq_json_member_str(const cJSON *member, const char *fallback);

/* Write a human-readable error message into err[errlen] (printf format); NULL-safe. */
void zq_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The broker URL to use: url if not NULL/empty, else $ZQ_BROKER, else ZQ_DEFAULT_BROKER. */
const char *zq_broker_url(const char *url);

/* Derive a sibling endpoint from the frontend URL (docs/protocol.md §3):
 * tcp://H:P -> tcp://H:(P+port_offset); ipc://PATH -> ipc://PATH<ipc_suffix>.
 * ZQ_EINVAL for anything else. */
int zq_endpoint_derive(const char *frontend, int port_offset, const char *ipc_suffix, char *out,
                       size_t outlen);
/* The ephemeral endpoint to bind for per-worker channels: tcp://H:* or ipc://PATH<suffix>. */
int zq_endpoint_ephemeral(const char *frontend, const char *ipc_suffix, char *out, size_t outlen);
/* Rewrite an announced endpoint for use by a peer that reached the broker through
 * `via`: a wildcard host (0.0.0.0, *, [::]) is replaced by via's host. */
int zq_endpoint_resolve(const char *announced, const char *via, char *out, size_t outlen);
/* 1 when the endpoint binds beyond loopback (tcp on a non-127.x / non-localhost host). */
int zq_endpoint_is_public(const char *endpoint);

/* This machine's host name (cached). */
const char *zq_hostname(void);

/* 1 for a valid task id or name: 1-255 printable ASCII chars, no spaces. */
int zq_valid_token(const char *s);
/* A 64-bit hash of len bytes / of a NUL-terminated string (the same for the same bytes):
 * for hash tables, not for security. */
uint64_t zq_hash(const void *p, size_t len);
uint64_t zq_hash_str(const char *s);
/* v in decimal at the end of buf, without printf (it runs several times per task): where
 * the digits start; *len gets their count. */
const char *zq_u64_digits(uint64_t v, char buf[20], size_t *len);

#endif
