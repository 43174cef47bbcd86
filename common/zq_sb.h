/*
 * zq_sb - the small string builder used to write outgoing JSON and Python-style reprs
 * without a cJSON build + print round trip on the hot path (broker, store, worker, flower).
 */
#ifndef ZQ_SB_H
#define ZQ_SB_H

#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

/* Appends never fail loudly: on ENOMEM the builder is marked (oom) and further appends are
 * ignored, so a caller checks once at the end. A zeroed zq_sb_t is an empty builder. */
typedef struct {
    char *buf;  /* NUL-terminated when len > 0 */
    size_t len; /* bytes used, without the NUL */
    size_t cap; /* bytes allocated */
    int oom;    /* 1 once an allocation failed */
} zq_sb_t;

void zq_sb_init(zq_sb_t *sb);
/* Free the buffer and reset. */
void zq_sb_free(zq_sb_t *sb);
/* Detach the text: caller owns return value and must free() it (NULL on ENOMEM). */
char *zq_sb_steal(zq_sb_t *sb, size_t *len);
void zq_sb_putn(zq_sb_t *sb, const char *s, size_t n);
void zq_sb_puts(zq_sb_t *sb, const char *s);
void zq_sb_putc(zq_sb_t *sb, char c);
/* v in decimal (no printf: this is on the per-task paths). */
void zq_sb_put_u64(zq_sb_t *sb, uint64_t v);
void zq_sb_printf(zq_sb_t *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Room for extra more bytes now (one allocation instead of several doublings). */
void zq_sb_reserve(zq_sb_t *sb, size_t extra);
/* v with six decimals, as printf's "%.6f" writes it; without printf for 0 <= v < 1e9 (the
 * last digit may differ from printf's in a tie at the seventh decimal). */
void zq_sb_fixed6(zq_sb_t *sb, double v);
/* A JSON string literal with escapes, or null when s is NULL. */
void zq_sb_json_str(zq_sb_t *sb, const char *s);
/* A JSON number: integral values without a fraction, others in shortest round-trip form;
 * null for NaN/inf (JSON has neither). */
void zq_sb_json_num(zq_sb_t *sb, double v);
/* A duration in seconds, fixed point to the nanosecond with trailing zeros trimmed
 * ("0.000123", "2.5", never "1.2e-07"): a JSON number from one snprintf, where the shortest
 * round-trip form of zq_sb_json_num costs up to three and three strtod (it is per task).
 * Negative, NaN and infinite durations are written 0. */
void zq_sb_json_secs(zq_sb_t *sb, double secs);
/* A time (epoch seconds) as a JSON string in the wire format (docs/protocol.md §5), or
 * null for t <= 0. */
void zq_sb_json_time(zq_sb_t *sb, double t);
/* Compact JSON of v (borrowed); null when v is NULL. */
void zq_sb_json(zq_sb_t *sb, const cJSON *v);
/* Python repr() of a JSON value: 'str', None, True, [1, 2], {'k': 'v'}. */
void zq_sb_pyrepr(zq_sb_t *sb, const cJSON *v);
/* Python repr of a str. */
void zq_sb_pystr(zq_sb_t *sb, const char *s);
/* Python repr of a float: 5.0, 0.25. */
void zq_sb_pyfloat(zq_sb_t *sb, double v);
/* A JSON array as a Python tuple: (), (4,), (4, 0). */
void zq_sb_pytuple(zq_sb_t *sb, const cJSON *array);

#endif
