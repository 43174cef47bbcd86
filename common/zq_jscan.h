/*
 * zq_jscan - reading JSON text in place, for the per-task paths that must not build a cJSON
 * tree (broker: SUBMIT and worker BATCH bodies). Each reader takes a value at the cursor and
 * moves past it, or answers ZQ_JSCAN_DECLINE and leaves the cursor somewhere inside it: the
 * caller then gives the whole text to cJSON, which words the error (or takes a form these
 * readers do not: \u escapes, deeper nesting). What these readers accept, cJSON accepts too.
 */
#ifndef ZQ_JSCAN_H
#define ZQ_JSCAN_H

#include <stddef.h>

#define ZQ_JSCAN_DECLINE (-1)
#define ZQ_JSCAN_MAX_DEPTH 64 /* deeper values are declined (cJSON allows 1,000) */

typedef struct {
    const char *p, *end; /* the cursor and the end of the text */
} zq_jscan_t;

void zq_jscan_init(zq_jscan_t *r, const char *text, size_t len);
/* Skip whitespace; 1 when the next byte is c (not consumed), else 0. */
int zq_jscan_peek(zq_jscan_t *r, char c);
/* Skip whitespace, then consume c: 0, or DECLINE when the next byte is not c. */
int zq_jscan_char(zq_jscan_t *r, char c);
/* A string without control characters: *s, *n are its bytes between the quotes (borrowed,
 * still escaped). escapes: allow the two-character escapes (\u is declined: cJSON refuses
 * lone surrogates); 0: any backslash declines. */
int zq_jscan_string(zq_jscan_t *r, int escapes, const char **s, size_t *n);
/* The n escaped bytes of a string read with escapes=1, unescaped into out (n + 1 bytes
 * suffice; NUL-terminated). The length written. */
size_t zq_jscan_unescape(const char *s, size_t n, char *out);
/* A number in JSON's grammar (finite or not: cJSON would hold 1e999 as inf). */
int zq_jscan_number(zq_jscan_t *r, double *v);
int zq_jscan_literal(zq_jscan_t *r, const char *lit);
int zq_jscan_bool(zq_jscan_t *r, int *v);
/* Any JSON value, validated and skipped; *s, *n (may be NULL) get its text. A number cJSON
 * would hold as inf (printed as null) declines. depth: 0 for a top-level value. */
int zq_jscan_value(zq_jscan_t *r, int depth, const char **s, size_t *n);
/* Members of an object. After zq_jscan_object(r) (0: the '{' was read), each call of
 * zq_jscan_member gives the next key (escape-free, borrowed) with the cursor on its value:
 * 1; 0 after the closing '}'; DECLINE. The caller reads each value before the next call. */
int zq_jscan_object(zq_jscan_t *r);
int zq_jscan_member(zq_jscan_t *r, int *first, const char **key, size_t *kn);
/* Elements of an array, the same way: 1 with the cursor on an element, 0 after ']'. */
int zq_jscan_array(zq_jscan_t *r);
int zq_jscan_element(zq_jscan_t *r, int *first);
/* Only whitespace is left: 0, else DECLINE. */
int zq_jscan_end(zq_jscan_t *r);

#endif
