/*
 * zq_flower - `zq-ctl flower`: the web monitor (docs/monitor.md).
 *
 * One process: an embedded HTTP server (libmicrohttpd, a thread per connection) serving
 * the dashboard (HTML/CSS/JS compiled into the binary from control/web/), Flower's REST
 * API, a Server-Sent Events stream and Prometheus metrics. State comes from the broker's
 * store (TASKS, STATS, WORKERS, QUEUES requests), so the monitor is right the moment it
 * starts; the broker's event stream (PUB) only drives live updates and metrics.
 *
 *   zq-ctl flower [--broker URL] [--address ADDR] [--port N] [--basic-auth USER:PASS]...
 *                 [--read-only] [--url-prefix /PATH] [--timeout S]
 *                 [--curve-secret FILE --curve-server-key FILE]
 */
#ifndef ZQ_FLOWER_H
#define ZQ_FLOWER_H

#include <stddef.h>

#define ZQ_FLOWER_DEFAULT_PORT 5555
#define ZQ_FLOWER_DEFAULT_ADDRESS "127.0.0.1"
#define ZQ_FLOWER_MAX_AUTH 16 /* --basic-auth entries */

/* What `zq-ctl flower` was asked for. Strings are borrowed (from argv). */
typedef struct {
    const char *broker;     /* NULL = $ZQ_BROKER, else ZQ_DEFAULT_BROKER */
    const char *address;    /* IPv4 address to bind; default 127.0.0.1 */
    int port;               /* 0 = any free port (logged); default 5555 */
    const char *auth[ZQ_FLOWER_MAX_AUTH]; /* "user:password" */
    size_t nauth;
    int read_only;          /* POST endpoints answer 403 */
    const char *url_prefix; /* "" or "/path" (no trailing slash), for reverse proxies */
    char prefix_buf[128];   /* url_prefix as normalised by the parser */
    double timeout;         /* seconds to wait for the broker per request; default 5 */
    const char *curve_secret;     /* CurveZMQ key files (zq-ctl's global options); NULL = */
    const char *curve_server_key; /* $ZQ_CURVE_SECRET / $ZQ_CURVE_SERVER_KEY */
    int help, version;
} zq_flower_config_t;

/* Parse argv[1..argc) of `zq-ctl [GLOBAL] flower [OPTIONS]` (the word "flower" and the
 * global --broker/-b, --timeout, --json, --curve-* are accepted anywhere). ZQ_OK, or ZQ_EINVAL with
 * the reason in err. Pure: unit tested. */
int zq_flower_parse_args(zq_flower_config_t *cfg, int argc, char *const argv[], char *err,
                         size_t errlen);

/* Checks that are not about syntax: a public address needs --basic-auth (without auth the
 * monitor only listens on loopback). ZQ_OK or ZQ_EINVAL with the reason in err. */
int zq_flower_check_config(const zq_flower_config_t *cfg, char *err, size_t errlen);

/* 1 when the decoded "user:password" of an Authorization header matches one of cfg's
 * --basic-auth entries. Constant time in the length of the entries. */
int zq_flower_auth_ok(const zq_flower_config_t *cfg, const char *header);

/* Decode standard base64 (with or without padding) into out (NUL-terminated). Returns
 * the decoded length, or -1 for bad input or when out (outlen bytes) is too small. */
long zq_flower_base64_decode(const char *in, char *out, size_t outlen);

/* A file of control/web/, compiled in: control/web/zq_flower_assets.c is generated at build
 * time by control/web/embed.sh. */
typedef struct {
    const char *path; /* "index.html", "app.js", ... */
    const char *type; /* Content-Type */
    const unsigned char *data;
    size_t len;
} zq_flower_asset_t;
/* Ends with an entry whose path is NULL. */
extern const zq_flower_asset_t zq_flower_assets[];

typedef struct zq_flower zq_flower_t;

/* Bind the HTTP server and start its threads. NULL on error with the reason in err.
 * Caller owns the return value and must destroy it. */
zq_flower_t *zq_flower_new(const zq_flower_config_t *cfg, char *err, size_t errlen);
/* The TCP port actually bound. */
int zq_flower_port(const zq_flower_t *self);
/* Serve until zq_flower_stop() (async-signal-safe) is called. ZQ_OK. */
int zq_flower_run(zq_flower_t *self);
void zq_flower_stop(zq_flower_t *self);
/* Stop everything, close, free. NULL-safe; clears *self_p. */
void zq_flower_destroy(zq_flower_t **self_p);

/* 1 when argv is a `flower` command line (its first command word is "flower"). */
int zq_flower_wanted(int argc, char *const argv[]);
/* The whole `zq-ctl flower` program: parse, print help or errors, serve until SIGINT or
 * SIGTERM. Returns the exit code (0, 1 runtime failure such as a port in use, 2 usage). */
int zq_flower_main(int argc, char *argv[]);

#endif
