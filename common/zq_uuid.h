/* zq_uuid - UUIDs for task ids (time-ordered version 7) and identities (random version 4). */
#ifndef ZQ_UUID_H
#define ZQ_UUID_H

#define ZQ_UUID_LEN 36
/* Write a new uuid4 ("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx") and a NUL into out[37]. */
void zq_uuid4(char out[37]);
/* Write a new time-ordered uuid7 (RFC 9562: 48-bit Unix milliseconds, then the
 * sub-millisecond fraction, then random bits) and a NUL into out[37]. Task ids are uuid7s:
 * ids minted in order land at the end of the broker's id index instead of on a random page
 * of it, which keeps the pages each group commit writes few. */
void zq_uuid7(char out[37]);
/* 1 when s looks like a canonical UUID (36 chars, hex and dashes). */
int zq_uuid_valid(const char *s);

#endif
