/*
 * zq_auth - CurveZMQ for zq (docs/protocol.md §13): key files, the CURVE options of client
 * and server sockets, and a ZAP handler (ZeroMQ RFC 27) that lets in only the public keys
 * found in an "authorized" directory.
 *
 * Key files (written by `zq-ctl keygen`, docs/management.md "Security"): text in czmq's
 * certificate layout, so that czmq's certificates can be used as they are:
 *
 *     #   zq CURVE public key (zq-ctl keygen) ...     <- comment lines start with '#'
 *     curve
 *         public-key = "<40 characters of Z85>"
 *         secret-key = "<40 characters of Z85>"  <- only in NAME.key_secret (mode 0600)
 *
 * NAME.key holds the public key, NAME.key_secret both keys. A file whose only content is a
 * bare 40-character Z85 key is accepted too (the public key, or the secret key of a secret
 * file: its public key is derived).
 *
 * Authorized directory: every file DIR/NAME.key (a public key file; hidden files and other
 * names are ignored) names one peer allowed in. It is read again at every handshake, so
 * adding or removing a file takes effect for the next connection without a restart;
 * connections already made are not cut.
 *
 * The ZAP handler is a REP socket bound at inproc://zeromq.zap.01 in the context of the
 * server sockets, which libzmq asks about every CURVE client before it lets it in. It is
 * served either by a thread of its own (zq_auth_start: the broker) or by the caller's
 * poll loop (zq_auth_pollitems + zq_auth_serve: the worker's control socket). Refusals
 * are counted and logged at most once a second.
 */
#ifndef ZQ_AUTH_H
#define ZQ_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#define ZQ_CURVE_KEYLEN 40                      /* Z85 text of a 32-byte CURVE key */
#define ZQ_CURVE_ENV_SECRET "ZQ_CURVE_SECRET"   /* client secret key file */
#define ZQ_CURVE_ENV_SERVER "ZQ_CURVE_SERVER_KEY" /* the broker's public key file */
#define ZQ_CURVE_PUBLIC_SUFFIX ".key"
#define ZQ_CURVE_SECRET_SUFFIX ".key_secret"
#define ZQ_CURVE_MAX_FILE 65536                 /* bytes: larger key files are refused */
#define ZQ_AUTH_MAX_KEYS 100000                 /* files looked at in an authorized dir */
#define ZQ_AUTH_ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define ZQ_AUTH_DOMAIN "zq"                     /* ZMQ_ZAP_DOMAIN of every zq server socket */
#define ZQ_AUTH_LOG_EVERY 1.0                   /* seconds between two refusal logs */

/* A key pair as Z85 text (NUL-terminated). secret_key is "" when only the public key is
 * known. */
typedef struct {
    char public_key[ZQ_CURVE_KEYLEN + 1];
    char secret_key[ZQ_CURVE_KEYLEN + 1];
} zq_curve_pair_t;

/* 1 when s is 40 characters of Z85 that decode to a 32-byte key. */
int zq_curve_valid_key(const char *s);

/* Parse the text of a key file (format above). want_secret: a secret key is required (the
 * public key is derived when absent, and must match when present); else a public key is
 * required. ZQ_OK, or ZQ_EINVAL with the reason in err. */
int zq_curve_parse(const char *text, int want_secret, zq_curve_pair_t *out, char *err,
                   size_t errlen);
/* Read a public key file (NAME.key). ZQ_OK; ZQ_EIO (cannot read, err says why) or
 * ZQ_EINVAL (not a key file). */
int zq_curve_read_public(const char *path, char key[ZQ_CURVE_KEYLEN + 1], char *err,
                         size_t errlen);
/* Read a secret key file (NAME.key_secret) into both keys. Warns when the file can be read
 * by other users. ZQ_OK, ZQ_EIO or ZQ_EINVAL (err says why). */
int zq_curve_read_secret(const char *path, zq_curve_pair_t *out, char *err, size_t errlen);

/* Make a new key pair (zmq_curve_keypair) and write DIR/NAME.key (mode 0644) and
 * DIR/NAME.key_secret (mode 0600); DIR is created (0700) when missing. Existing files are
 * never overwritten. name: 1-100 of [A-Za-z0-9._@-], not starting with '.'. out (may be
 * NULL) receives the keys. ZQ_OK; ZQ_EINVAL (bad name, no CURVE in libzmq), ZQ_EDUPLICATE
 * (a file exists), ZQ_EIO; err says why. */
int zq_curve_keygen(const char *dir, const char *name, zq_curve_pair_t *out, char *err,
                    size_t errlen);

/* The CURVE side of a client: its key pair and the server's public key. */
typedef struct {
    int enabled;                            /* 0: plain (no keys configured) */
    zq_curve_pair_t self;
    char server_key[ZQ_CURVE_KEYLEN + 1];   /* the broker's public key */
} zq_curve_client_t;

/* Load a client's keys from files: secret_file (NULL: $ZQ_CURVE_SECRET) and
 * server_key_file (NULL: $ZQ_CURVE_SERVER_KEY). Empty or unset both: out->enabled = 0 and
 * ZQ_OK. Only one of them, an unreadable file or a bad key: ZQ_EINVAL / ZQ_EIO with err. */
int zq_curve_client_load(zq_curve_client_t *out, const char *secret_file,
                         const char *server_key_file, char *err, size_t errlen);
/* Set the CURVE client options on sock (before connect): cfg's key pair, and server_key
 * (NULL: cfg->server_key). Nothing when cfg is NULL or not enabled. ZQ_OK or ZQ_EINVAL
 * (a bad key: libzmq refused it). */
int zq_curve_client_apply(void *sock, const zq_curve_client_t *cfg, const char *server_key);
/* Make sock a CURVE server with this key pair (before bind), in ZAP domain ZQ_AUTH_DOMAIN.
 * ZQ_OK or ZQ_EINVAL. */
int zq_curve_server_apply(void *sock, const zq_curve_pair_t *pair);

/* Client side: the meaning of one socket-monitor event for the user. For a failed
 * handshake (ZMQ_EVENT_HANDSHAKE_FAILED_*) writes a sentence naming peer (an endpoint or
 * "the broker at URL") and what to do, and returns 1; ZMQ_EVENT_HANDSHAKE_SUCCEEDED
 * returns -1; anything else 0. curve_on: this side uses CURVE. */
int zq_curve_describe_event(uint16_t event, uint32_t value, int curve_on, const char *peer,
                            char *why, size_t len);
/* Attach a monitor to a client socket (before connect) that reports handshake outcomes:
 * *mon_p is a PAIR in ctx, closed by the caller (zmq_close) after the socket. ZQ_OK or
 * ZQ_EIO. */
int zq_curve_monitor(void *ctx, void *sock, void **mon_p);
/* Read what mon reported, without blocking: 1 when a handshake failed (why is the
 * sentence of zq_curve_describe_event), 0 when nothing failed since the last call (or a
 * later handshake succeeded). */
int zq_curve_monitor_check(void *mon, int curve_on, const char *peer, char *why, size_t len);

/* ---------------------------------------------------------------------------------------
 * The ZAP handler
 */
typedef struct zq_auth zq_auth_t;

/* Bind the ZAP handler in ctx (before any CURVE server socket of ctx is bound), letting in
 * the keys of authorized_dir (copied). who names the owner in logs ("zq-broker"). Logs the
 * number of keys found (a warning when none). Caller owns return value and must destroy
 * it (before zmq_ctx_term). NULL on error (logged: the directory cannot be read, another
 * handler is bound in ctx). */
zq_auth_t *zq_auth_new(void *ctx, const char *authorized_dir, const char *who);
/* Stop the thread (if any), close the sockets, free. NULL-safe; clears *self_p. */
void zq_auth_destroy(zq_auth_t **self_p);

/* Count handshakes that server socket sock (of the handler's ctx) refused for a protocol
 * reason (a plain client on a CURVE socket, a client with the wrong server key, a peer that
 * hung up mid-handshake): what is logged as "rejected ... on <what>". Call from the thread
 * that owns sock, before zq_auth_start. At most 8 sockets. ZQ_OK, ZQ_ESTATE (started or full), ZQ_EIO. */
int zq_auth_watch(zq_auth_t *self, void *sock, const char *what);

/* Serve from a thread of the handler's own until destroy. ZQ_OK or ZQ_EIO. */
int zq_auth_start(zq_auth_t *self);
/* Or from the caller's loop: fill up to max poll items (the ZAP socket, the watches) and
 * return how many; after zmq_poll, zq_auth_serve answers what is waiting without
 * blocking. */
int zq_auth_pollitems(const zq_auth_t *self, zmq_pollitem_t *items, int max);
void zq_auth_serve(zq_auth_t *self);

/* Is this 32-byte key in the authorized directory (read now)? 1 yes, 0 no, ZQ_EIO when the
 * directory cannot be read. name (may be NULL) receives the key file's NAME. */
int zq_auth_check_key(const char *dir, const uint8_t key[32], char *name, size_t namelen);
/* Number of key files (NAME.key holding a valid public key) in dir, or ZQ_EIO. */
int zq_auth_count_keys(const char *dir);

/* Handshakes let in / refused (by ZAP or by protocol) so far. Any thread. */
long zq_auth_accepted(const zq_auth_t *self);
long zq_auth_rejected(const zq_auth_t *self);

#endif
