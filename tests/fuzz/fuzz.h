/*
 * fuzz.h - what the fuzz targets of tests/fuzz/ share (tests/fuzz/README.md).
 *
 * Input encoding: a fuzz input is a list of messages, each a list of frames. A frame is a
 * 2-byte big-endian length L followed by L bytes (fewer when the input ends first); the
 * length 0xFFFF ends the current message and starts the next one. Every frame is copied
 * into a buffer of its own exact size, so that AddressSanitizer sees a read past the end
 * of a frame. tests/fuzz/pack.sh writes inputs in this encoding.
 *
 * The fake peer: a thread serving two ROUTER sockets on ipc:// endpoints in a temporary
 * directory, one playing the broker's frontend and one a worker's control socket. Each
 * request gets the next scripted message (the fuzz input), with every "$REQ" in its frames
 * replaced by the request's "req", then a fallback error REPLY carrying the same req, so
 * that a client waiting for that req is never left waiting when the scripted message did
 * not answer it.
 */
#ifndef ZQ_FUZZ_H
#define ZQ_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#define FZ_MAX_FRAMES 16 /* frames kept per message; more than any valid message has */
#define FZ_MAX_MSGS 16   /* messages kept per input */

typedef struct {
    unsigned char *frame[FZ_MAX_FRAMES]; /* each malloc'd with exactly size[i] bytes */
    size_t size[FZ_MAX_FRAMES];
    size_t n;     /* frames kept */
    size_t total; /* frames found (n, or more when FZ_MAX_FRAMES were exceeded) */
} fz_msg_t;

/* Split data into at most max messages (see the encoding above). Returns how many; an
 * empty input has none. Free with fz_free. */
size_t fz_split(const uint8_t *data, size_t size, fz_msg_t *msgs, size_t max);
void fz_free(fz_msg_t *msgs, size_t n);

/* A frame as a NUL-terminated string (malloc'd; bytes after an embedded NUL are cut), or
 * a copy of fallback when the message has no frame i. Caller frees. */
char *fz_str(const fz_msg_t *m, size_t i, const char *fallback);

/* Silence zq's log (ZQ_FUZZ_LOG=1 keeps it) and libzmq's SIGPIPE; fz_loud turns the log
 * back on (to stderr, INFO) to say why the set-up of a target failed. */
void fz_quiet(void);
void fz_loud(void);

/* A fresh temporary directory "$TMPDIR/zq-fuzz-NAME.XXXXXX" (TMPDIR unset: /dev/shm if
 * writable, else /tmp). Caller
 * frees the returned path; fz_rmtree removes the directory and its content. NULL on
 * failure. */
char *fz_tmpdir(const char *name);
void fz_rmtree(const char *dir);

/* The fake peer (see above). dir: where its ipc endpoints live. rewrite_control: in every
 * scripted frame that is JSON, set the value of each "control" member to this peer's
 * control endpoint (so that a monitor never connects where a fuzz input points it). */
typedef struct fz_peer fz_peer_t;
fz_peer_t *fz_peer_start(const char *dir, int rewrite_control);
const char *fz_peer_broker(const fz_peer_t *p);  /* "ipc://DIR/broker" */
const char *fz_peer_control(const fz_peer_t *p); /* "ipc://DIR/control" */
/* Answer the next requests with msgs[0..n) (borrowed until the next call; NULL/0 stops). */
void fz_peer_script(fz_peer_t *p, const fz_msg_t *msgs, size_t n);
/* Requests answered since the start. */
unsigned long fz_peer_requests(fz_peer_t *p);
void fz_peer_stop(fz_peer_t **p);

#endif
