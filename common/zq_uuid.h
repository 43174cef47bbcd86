/* zq_uuid - random (version 4) UUIDs for task ids, from getrandom(2). */
#ifndef ZQ_UUID_H
#define ZQ_UUID_H

#define ZQ_UUID_LEN 36
/* Write a new uuid4 ("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx") and a NUL into out[37]. */
void zq_uuid4(char out[37]);
/* 1 when s looks like a canonical UUID (36 chars, hex and dashes). */
int zq_uuid_valid(const char *s);

#endif
