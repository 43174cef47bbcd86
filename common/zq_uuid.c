#include "config.h"
#include "zq_uuid.h"

#include <ctype.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* A per-thread buffer of random bytes: one getrandom() per 256 ids instead of per id,
 * since ids are minted on the hot path of apply_async. */
static __thread uint8_t s_pool[4096];
static __thread size_t s_pool_left;

static void s_fill(uint8_t *out, size_t n)
{
    if (s_pool_left < n) {
        size_t got = 0;
        while (got < sizeof s_pool) {
            ssize_t r = getrandom(s_pool + got, sizeof s_pool - got, 0);
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        if (got < sizeof s_pool) { /* no entropy source: degrade, never fail */
            uint64_t x = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)out;
            for (size_t i = got; i < sizeof s_pool; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                s_pool[i] = (uint8_t)x;
            }
        }
        s_pool_left = sizeof s_pool;
    }
    memcpy(out, s_pool + sizeof s_pool - s_pool_left, n);
    s_pool_left -= n;
}

static void s_format(const uint8_t b[16], char out[37])
{
    static const char hex[] = "0123456789abcdef";
    char *p = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        *p++ = hex[b[i] >> 4];
        *p++ = hex[b[i] & 15];
    }
    *p = '\0';
}

void zq_uuid7(char out[37])
{
    uint8_t b[16];
    s_fill(b, sizeof b);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    /* RFC 9562 method 3: the 12 bits after the version hold the sub-millisecond fraction,
     * so ids minted by one process sort in minting order (to 1/4096 ms) */
    uint64_t frac = ((uint64_t)(ts.tv_nsec % 1000000) << 12) / 1000000;
    for (int i = 0; i < 6; i++)
        b[i] = (uint8_t)(ms >> (40 - 8 * i));
    b[6] = (uint8_t)(0x70 | ((frac >> 8) & 0x0f));
    b[7] = (uint8_t)(frac & 0xff);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    s_format(b, out);
}

void zq_uuid4(char out[37])
{
    uint8_t b[16];
    s_fill(b, sizeof b);
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    s_format(b, out);
}

int zq_uuid_valid(const char *s)
{
    if (!s || strlen(s) != ZQ_UUID_LEN)
        return 0;
    for (int i = 0; i < ZQ_UUID_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!isxdigit((unsigned char)s[i])) {
            return 0;
        }
    }
    return 1;
}
