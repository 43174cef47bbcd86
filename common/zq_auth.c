/*
 * zq_auth - CurveZMQ key files, socket options and the ZAP handler (see zq_auth.h and
 * docs/protocol.md §13).
 *
 * The ZAP handler follows ZeroMQ RFC 27: libzmq sends [version "1.0"][request id][domain]
 * [address][routing id][mechanism][credentials...] to inproc://zeromq.zap.01 and waits for
 * [version][request id][status code][status text][user id][metadata]. We answer 200 for a
 * CURVE client whose public key is a NAME.key of the authorized directory (user id: NAME),
 * 400 otherwise. Nothing is cached: the directory is read at every handshake, which is
 * cheap next to the handshake's own public-key cryptography and makes revocation a matter
 * of deleting a file.
 */
#include "config.h"
#include "zq_auth.h"
#include "zq.h"
#include "zq_log.h"
#include "zq_util.h"
#include "zq_time.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_MAX_WATCH 8
/* ZMQ_ZAP_ENFORCE_DOMAIN, a draft option of libzmq 4.3 (Debian's library has it): without
 * it a CURVE server whose ZAP handler is missing lets every client in; with it, none. */
#define S_ZAP_ENFORCE_DOMAIN 93
#define S_ZAP_FRAMES 16 /* frames of a ZAP request we look at; more are drained */


/* ---------------------------------------------------------------------------------------
 * Keys and key files
 */
static int s_z85_char(int c)
{
    static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz"
                                   "ABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
    return c && strchr(alphabet, c) != NULL;
}

int zq_curve_valid_key(const char *s)
{
    if (!s || strlen(s) != ZQ_CURVE_KEYLEN)
        return 0;
    for (const char *p = s; *p; p++)
        if (!s_z85_char((unsigned char)*p))
            return 0;
    uint8_t bin[32];
    return zmq_z85_decode(bin, s) != NULL;
}

/* Trim spaces in place; returns the start. */
static char *s_trim(char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\r')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

/* A 40-character Z85 word alone on a line (a bare key, even if it starts with '#'). */
static int s_bare_key(const char *line)
{
    if (strlen(line) != ZQ_CURVE_KEYLEN)
        return 0;
    for (const char *p = line; *p; p++)
        if (!s_z85_char((unsigned char)*p))
            return 0;
    return 1;
}

/* Copy a value into a key slot: strips one pair of quotes; "" when it is not a key. */
static int s_take_value(const char *v, char out[ZQ_CURVE_KEYLEN + 1])
{
    size_t n = strlen(v);
    if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) {
        v++;
        n -= 2;
    }
    if (n != ZQ_CURVE_KEYLEN)
        return -1;
    memcpy(out, v, n);
    out[n] = '\0';
    return zq_curve_valid_key(out) ? 0 : -1;
}

int zq_curve_parse(const char *text, int want_secret, zq_curve_pair_t *out, char *err,
                   size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!text) {
        zq_errf(err, errlen, "no text");
        return ZQ_EINVAL;
    }
    char *copy = strdup(text);
    if (!copy) {
        zq_errf(err, errlen, "out of memory");
        return ZQ_ENOMEM;
    }
    char bare[ZQ_CURVE_KEYLEN + 1] = "";
    int lineno = 0, rc = ZQ_OK;
    char *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        char *l = s_trim(line);
        if (s_bare_key(l)) {
            if (!bare[0])
                memcpy(bare, l, ZQ_CURVE_KEYLEN + 1);
            continue;
        }
        if (!*l || *l == '#')
            continue;
        char *eq = strchr(l, '=');
        if (!eq)
            continue; /* a section name: "curve", "metadata" */
        *eq = '\0';
        char *name = s_trim(l), *value = s_trim(eq + 1);
        char *slot = !strcmp(name, "public-key")   ? out->public_key
                     : !strcmp(name, "secret-key") ? out->secret_key
                                                   : NULL;
        if (!slot)
            continue; /* metadata */
        if (s_take_value(value, slot) != 0) {
            zq_errf(err, errlen, "line %d: %s is not a 40-character Z85 key", lineno, name);
            rc = ZQ_EINVAL;
            break;
        }
    }
    free(copy);
    if (rc != ZQ_OK) {
        memset(out, 0, sizeof *out);
        return rc;
    }
    if (want_secret) {
        if (!out->secret_key[0] && bare[0])
            memcpy(out->secret_key, bare, sizeof bare);
        if (!out->secret_key[0]) {
            zq_errf(err, errlen, "no secret-key in it (is it the public .key file? the secret "
                               "one is NAME%s)", ZQ_CURVE_SECRET_SUFFIX);
            rc = ZQ_EINVAL;
        } else {
            char derived[ZQ_CURVE_KEYLEN + 1];
            if (zmq_curve_public(derived, out->secret_key) != 0) {
                zq_errf(err, errlen, "cannot derive the public key: %s", zmq_strerror(errno));
                rc = ZQ_EINVAL;
            } else if (out->public_key[0] && strcmp(derived, out->public_key) != 0) {
                zq_errf(err, errlen, "its public-key does not belong to its secret-key");
                rc = ZQ_EINVAL;
            } else {
                memcpy(out->public_key, derived, sizeof derived);
            }
        }
    } else {
        if (!out->public_key[0] && bare[0])
            memcpy(out->public_key, bare, sizeof bare);
        if (!out->public_key[0]) {
            zq_errf(err, errlen, "no public-key in it");
            rc = ZQ_EINVAL;
        }
        memset(out->secret_key, 0, sizeof out->secret_key); /* never carried around */
    }
    if (rc != ZQ_OK)
        memset(out, 0, sizeof *out);
    return rc;
}

/* Read a whole small file. Caller frees *text. st (may be NULL) receives its stat. */
static int s_slurp(const char *path, char **text, struct stat *st_out, char *err, size_t errlen)
{
    *text = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        zq_errf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return ZQ_EIO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > ZQ_CURVE_MAX_FILE) {
        zq_errf(err, errlen, "%s: not a key file (a regular file of at most %d bytes)", path,
              ZQ_CURVE_MAX_FILE);
        close(fd);
        return ZQ_EINVAL;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        close(fd);
        zq_errf(err, errlen, "out of memory");
        return ZQ_ENOMEM;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    if (memchr(buf, '\0', got)) {
        zq_errf(err, errlen, "%s: not a key file (binary content)", path);
        free(buf);
        return ZQ_EINVAL;
    }
    if (st_out)
        *st_out = st;
    *text = buf;
    return ZQ_OK;
}

int zq_curve_read_public(const char *path, char key[ZQ_CURVE_KEYLEN + 1], char *err,
                         size_t errlen)
{
    key[0] = '\0';
    char *text;
    int rc = s_slurp(path, &text, NULL, err, errlen);
    if (rc != ZQ_OK)
        return rc;
    zq_curve_pair_t pair;
    char why[256];
    rc = zq_curve_parse(text, 0, &pair, why, sizeof why);
    free(text);
    if (rc != ZQ_OK) {
        zq_errf(err, errlen, "%s: not a public key file: %s", path, why);
        return rc;
    }
    memcpy(key, pair.public_key, ZQ_CURVE_KEYLEN + 1);
    return ZQ_OK;
}

int zq_curve_read_secret(const char *path, zq_curve_pair_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    char *text;
    struct stat st;
    int rc = s_slurp(path, &text, &st, err, errlen);
    if (rc != ZQ_OK)
        return rc;
    char why[256];
    rc = zq_curve_parse(text, 1, out, why, sizeof why);
    memset(text, 0, strlen(text));
    free(text);
    if (rc != ZQ_OK) {
        zq_errf(err, errlen, "%s: not a secret key file: %s", path, why);
        return rc;
    }
    if (st.st_mode & 0077)
        ZQ_WARN("the secret key file %s can be read by other users (mode %04o): chmod 600 it",
                path, (unsigned)(st.st_mode & 07777));
    return ZQ_OK;
}

static int s_valid_name(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 100 || name[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == '@'))
            return 0;
    }
    return 1;
}

/* Create path exclusively with mode and write text. ZQ_OK, ZQ_EDUPLICATE or ZQ_EIO. */
static int s_write_new(const char *path, mode_t mode, const char *text, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        int e = errno;
        zq_errf(err, errlen, "cannot create %s: %s%s", path, strerror(e),
              e == EEXIST ? " (a key is never overwritten: remove it first, or choose another "
                            "--name)"
                          : "");
        return e == EEXIST ? ZQ_EDUPLICATE : ZQ_EIO;
    }
    size_t len = strlen(text), off = 0;
    int rc = fchmod(fd, mode) == 0 ? ZQ_OK : ZQ_EIO; /* whatever the umask */
    while (rc == ZQ_OK && off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            rc = ZQ_EIO;
        else
            off += (size_t)w;
    }
    if (rc == ZQ_OK && fsync(fd) != 0)
        rc = ZQ_EIO;
    if (close(fd) != 0)
        rc = ZQ_EIO;
    if (rc != ZQ_OK) {
        zq_errf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        unlink(path);
    }
    return rc;
}

int zq_curve_keygen(const char *dir, const char *name, zq_curve_pair_t *out, char *err,
                    size_t errlen)
{
    if (!dir || !*dir)
        dir = ".";
    if (!s_valid_name(name)) {
        zq_errf(err, errlen, "bad key name '%s': want 1-100 of A-Z a-z 0-9 . _ - @, not starting "
                           "with '.'", name ? name : "");
        return ZQ_EINVAL;
    }
    if (!zmq_has("curve")) {
        zq_errf(err, errlen, "this libzmq was built without CURVE (libsodium)");
        return ZQ_EINVAL;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        zq_errf(err, errlen, "cannot create the directory %s: %s", dir, strerror(errno));
        return ZQ_EIO;
    }
    zq_curve_pair_t pair;
    memset(&pair, 0, sizeof pair);
    if (zmq_curve_keypair(pair.public_key, pair.secret_key) != 0) {
        zq_errf(err, errlen, "zmq_curve_keypair: %s", zmq_strerror(errno));
        return ZQ_EIO;
    }
    char when[40], pub_path[4096], sec_path[4096], pub_text[512], sec_text[512];
    zq_time_iso(zq_now(), when, sizeof when);
    if ((size_t)snprintf(pub_path, sizeof pub_path, "%s/%s%s", dir, name,
                         ZQ_CURVE_PUBLIC_SUFFIX) >= sizeof pub_path ||
        (size_t)snprintf(sec_path, sizeof sec_path, "%s/%s%s", dir, name,
                         ZQ_CURVE_SECRET_SUFFIX) >= sizeof sec_path) {
        zq_errf(err, errlen, "path too long");
        return ZQ_EINVAL;
    }
    snprintf(pub_text, sizeof pub_text,
             "#   zq CURVE public key \"%s\", made %s by zq-ctl keygen.\n"
             "#   Give it to the peers of its owner: their --curve-authorized directory lets\n"
             "#   it in; a broker's public key is its clients' --curve-server-key.\n"
             "curve\n"
             "    public-key = \"%s\"\n",
             name, when, pair.public_key);
    snprintf(sec_text, sizeof sec_text,
             "#   zq CURVE secret key \"%s\", made %s by zq-ctl keygen.\n"
             "#   Keep it private (mode 0600); never copy it anywhere but to its owner.\n"
             "curve\n"
             "    public-key = \"%s\"\n"
             "    secret-key = \"%s\"\n",
             name, when, pair.public_key, pair.secret_key);
    int rc = s_write_new(sec_path, 0600, sec_text, err, errlen);
    memset(sec_text, 0, sizeof sec_text);
    if (rc != ZQ_OK)
        return rc;
    rc = s_write_new(pub_path, 0644, pub_text, err, errlen);
    if (rc != ZQ_OK) {
        unlink(sec_path); /* one without the other is of no use */
        return rc;
    }
    if (out)
        *out = pair;
    memset(&pair, 0, sizeof pair);
    return ZQ_OK;
}

/* ---------------------------------------------------------------------------------------
 * Socket options
 */
int zq_curve_client_load(zq_curve_client_t *out, const char *secret_file,
                         const char *server_key_file, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    const char *sec = secret_file ? secret_file : getenv(ZQ_CURVE_ENV_SECRET);
    const char *srv = server_key_file ? server_key_file : getenv(ZQ_CURVE_ENV_SERVER);
    int has_sec = sec && *sec, has_srv = srv && *srv;
    if (!has_sec && !has_srv)
        return ZQ_OK;
    if (!has_sec || !has_srv) {
        zq_errf(err, errlen,
              "CURVE needs both keys: this side's secret key file ($%s, zq-ctl --curve-secret) "
              "and the server's public key file ($%s, --curve-server-key); only the %s is "
              "given",
              ZQ_CURVE_ENV_SECRET, ZQ_CURVE_ENV_SERVER, has_sec ? "secret key" : "server key");
        return ZQ_EINVAL;
    }
    if (!zmq_has("curve")) {
        zq_errf(err, errlen, "CURVE keys are configured but this libzmq has no CURVE support");
        return ZQ_EINVAL;
    }
    int rc = zq_curve_read_secret(sec, &out->self, err, errlen);
    if (rc == ZQ_OK)
        rc = zq_curve_read_public(srv, out->server_key, err, errlen);
    if (rc != ZQ_OK) {
        memset(out, 0, sizeof *out);
        return rc;
    }
    out->enabled = 1;
    return ZQ_OK;
}

int zq_curve_client_apply(void *sock, const zq_curve_client_t *cfg, const char *server_key)
{
    if (!cfg || !cfg->enabled)
        return ZQ_OK;
    const char *srv = server_key ? server_key : cfg->server_key;
    if (!zq_curve_valid_key(srv))
        return ZQ_EINVAL;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, srv, ZQ_CURVE_KEYLEN) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, cfg->self.public_key, ZQ_CURVE_KEYLEN) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, cfg->self.secret_key, ZQ_CURVE_KEYLEN) != 0)
        return ZQ_EINVAL;
    return ZQ_OK;
}

int zq_curve_server_apply(void *sock, const zq_curve_pair_t *pair)
{
    int one = 1;
    if (!pair || !zq_curve_valid_key(pair->secret_key) ||
        zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, pair->secret_key, ZQ_CURVE_KEYLEN) != 0 ||
        zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, ZQ_AUTH_DOMAIN, strlen(ZQ_AUTH_DOMAIN)) != 0)
        return ZQ_EINVAL;
    /* fail closed where libzmq can (a library without drafts refuses the option: the
     * handler is then only guaranteed by binding it before any server socket) */
    if (zmq_setsockopt(sock, S_ZAP_ENFORCE_DOMAIN, &one, sizeof one) != 0)
        ZQ_DEBUG("auth: this libzmq cannot enforce ZAP (ZMQ_ZAP_ENFORCE_DOMAIN)");
    return ZQ_OK;
}

/* ---------------------------------------------------------------------------------------
 * Handshake outcomes (client side)
 */
int zq_curve_describe_event(uint16_t event, uint32_t value, int curve_on, const char *peer,
                            char *why, size_t len)
{
    if (!peer)
        peer = "the server";
    switch (event) {
    case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        return -1;
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        zq_errf(why, len,
              "%s refused this client's CURVE key (ZAP status %u): its public key is not in "
              "the server's --curve-authorized directory",
              peer, value);
        return 1;
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH) {
            if (curve_on)
                zq_errf(why, len,
                      "%s does not use CURVE but this client does (unset %s and %s, or "
                      "configure the server's keys)",
                      peer, ZQ_CURVE_ENV_SECRET, ZQ_CURVE_ENV_SERVER);
            else
                zq_errf(why, len,
                      "%s requires CURVE authentication: give this client a key pair and the "
                      "server's public key (%s and %s; zq-ctl --curve-secret and "
                      "--curve-server-key)",
                      peer, ZQ_CURVE_ENV_SECRET, ZQ_CURVE_ENV_SERVER);
        } else {
            zq_errf(why, len, "CURVE handshake with %s failed (protocol error 0x%08x)%s", peer,
                  value,
                  value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC ? ": wrong server key?" : "");
        }
        return 1;
    case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        if (!curve_on)
            return 0; /* a plain connection cut mid-greeting: a restart, not a refusal */
        zq_errf(why, len,
              "%s closed the connection during the CURVE handshake: does it use CURVE, and is "
              "the server key (%s) its public key?",
              peer, ZQ_CURVE_ENV_SERVER);
        return 1;
    default:
        return 0;
    }
}

int zq_curve_monitor(void *ctx, void *sock, void **mon_p)
{
    *mon_p = NULL;
    char ep[96];
    static atomic_uint seq;
    snprintf(ep, sizeof ep, "inproc://zq-curve-monitor-%p-%u", sock, atomic_fetch_add(&seq, 1));
    int mask = ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL;
    if (zmq_socket_monitor(sock, ep, mask) != 0)
        return ZQ_EIO;
    void *mon = zmq_socket(ctx, ZMQ_PAIR);
    int zero = 0;
    if (mon)
        zmq_setsockopt(mon, ZMQ_LINGER, &zero, sizeof zero);
    if (!mon || zmq_connect(mon, ep) != 0) {
        if (mon)
            zmq_close(mon);
        zmq_socket_monitor(sock, NULL, 0);
        return ZQ_EIO;
    }
    *mon_p = mon;
    return ZQ_OK;
}

/* One monitor event without blocking: 1 read (event, value set), 0 none. */
static int s_read_event(void *mon, uint16_t *event, uint32_t *value)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, mon, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&m);
        return 0;
    }
    *event = 0;
    *value = 0;
    if (zmq_msg_size(&m) >= 6) {
        memcpy(event, zmq_msg_data(&m), 2);
        memcpy(value, (char *)zmq_msg_data(&m) + 2, 4);
    }
    int more = zmq_msg_more(&m);
    zmq_msg_close(&m);
    while (more) { /* the endpoint frame */
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, mon, 0) < 0)
            more = 0;
        else
            more = zmq_msg_more(&m);
        zmq_msg_close(&m);
    }
    return 1;
}

int zq_curve_monitor_check(void *mon, int curve_on, const char *peer, char *why, size_t len)
{
    int failed = 0;
    uint16_t event;
    uint32_t value;
    while (mon && s_read_event(mon, &event, &value)) {
        int r = zq_curve_describe_event(event, value, curve_on, peer, why, len);
        if (r != 0)
            failed = r > 0;
    }
    return failed;
}

/* ---------------------------------------------------------------------------------------
 * Authorized directory
 */
static int s_is_key_file(const char *name)
{
    size_t n = strlen(name), s = strlen(ZQ_CURVE_PUBLIC_SUFFIX);
    return name[0] != '.' && n > s && !strcmp(name + n - s, ZQ_CURVE_PUBLIC_SUFFIX);
}

/* Walk dir's key files: fn returns nonzero to stop (that value is returned). Returns 0
 * after the walk, ZQ_EIO when dir cannot be opened. */
static int s_each_key(const char *dir, int (*fn)(void *arg, const char *file, const char *key),
                      void *arg)
{
    DIR *d = opendir(dir);
    if (!d)
        return ZQ_EIO;
    struct dirent *de;
    int r = 0, seen = 0;
    while (!r && seen < ZQ_AUTH_MAX_KEYS && (de = readdir(d))) {
        if (!s_is_key_file(de->d_name))
            continue;
        seen++;
        char path[4096], key[ZQ_CURVE_KEYLEN + 1];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= sizeof path)
            continue;
        if (zq_curve_read_public(path, key, NULL, 0) != ZQ_OK)
            continue; /* not a key: does not let anybody in */
        r = fn(arg, de->d_name, key);
    }
    closedir(d);
    return r;
}

typedef struct {
    char want[ZQ_CURVE_KEYLEN + 1];
    char *name;
    size_t namelen;
} s_find_t;

static int s_match(void *arg, const char *file, const char *key)
{
    s_find_t *f = arg;
    if (strcmp(f->want, key) != 0)
        return 0;
    if (f->name && f->namelen) {
        size_t n = strlen(file) - strlen(ZQ_CURVE_PUBLIC_SUFFIX);
        snprintf(f->name, f->namelen, "%.*s", (int)n, file);
    }
    return 1;
}

int zq_auth_check_key(const char *dir, const uint8_t key[32], char *name, size_t namelen)
{
    s_find_t f = {{0}, name, namelen};
    if (name && namelen)
        name[0] = '\0';
    if (!zmq_z85_encode(f.want, key, 32))
        return 0;
    return s_each_key(dir, s_match, &f);
}

static int s_count(void *arg, const char *file, const char *key)
{
    (void)file;
    (void)key;
    ++*(int *)arg;
    return 0;
}

int zq_auth_count_keys(const char *dir)
{
    int n = 0;
    return s_each_key(dir, s_count, &n) == ZQ_EIO ? ZQ_EIO : n;
}

/* ---------------------------------------------------------------------------------------
 * The ZAP handler
 */
typedef struct {
    void *pair;     /* reads the monitor of a watched server socket */
    char what[32];  /* "frontend", "control" */
} s_watch_t;

struct zq_auth {
    void *ctx;
    void *zap;                   /* REP bound at ZQ_AUTH_ZAP_ENDPOINT */
    char *dir;
    char who[64];
    s_watch_t watch[S_MAX_WATCH];
    size_t nwatch;
    pthread_t thread;
    int started;
    int stop_pipe[2];            /* wakes the thread at destroy */
    atomic_long accepted, rejected;
    double last_log;             /* zq_mono() of the last refusal log (serving thread only) */
    long unlogged;               /* refusals since then that were not logged */
};

/* A refusal: counted always, logged at most every ZQ_AUTH_LOG_EVERY seconds. */
static void s_refused(zq_auth_t *self, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_refused(zq_auth_t *self, const char *fmt, ...)
{
    long total = atomic_fetch_add(&self->rejected, 1) + 1;
    double now = zq_mono();
    if (self->last_log > 0 && now - self->last_log < ZQ_AUTH_LOG_EVERY) {
        self->unlogged++;
        return;
    }
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (self->unlogged)
        ZQ_WARN("%s: %s (%ld refused in all; %ld more since the last such line)", self->who, msg,
                total, self->unlogged);
    else
        ZQ_WARN("%s: %s (%ld refused in all)", self->who, msg, total);
    self->last_log = now;
    self->unlogged = 0;
}

static void s_send_str(void *sock, const char *s, size_t len, int more)
{
    zmq_send(sock, s, len, more ? ZMQ_SNDMORE : 0);
}

/* A frame as printable text (for logs), cut to fit. */
static void s_frame_text(zmq_msg_t *m, char *out, size_t len)
{
    size_t n = zmq_msg_size(m) < len - 1 ? zmq_msg_size(m) : len - 1;
    const char *d = zmq_msg_data(m);
    for (size_t i = 0; i < n; i++)
        out[i] = d[i] >= ' ' && d[i] <= '~' ? d[i] : '?';
    out[n] = '\0';
}

/* Answer one ZAP request waiting on the REP socket. */
static void s_zap_one(zq_auth_t *self)
{
    zmq_msg_t f[S_ZAP_FRAMES];
    size_t n = 0;
    int more = 1;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, self->zap, n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(&m);
            if (n == 0)
                return; /* nothing waiting */
            break;
        }
        more = zmq_msg_more(&m);
        if (n < S_ZAP_FRAMES) {
            zmq_msg_init(&f[n]);
            zmq_msg_move(&f[n++], &m);
        }
        zmq_msg_close(&m);
    }
    const char *status = "400", *text = "not authorized";
    char user[256] = "";
    /* [version][request id][domain][address][routing id][mechanism][credentials...] */
    int well_formed = n >= 6 && zmq_msg_size(&f[0]) == 3 && !memcmp(zmq_msg_data(&f[0]), "1.0", 3);
    char addr[128] = "?", mech[16] = "?";
    if (n >= 4)
        s_frame_text(&f[3], addr, sizeof addr);
    if (n >= 6)
        s_frame_text(&f[5], mech, sizeof mech);
    if (!well_formed) {
        status = "500";
        text = "malformed ZAP request";
        s_refused(self, "malformed ZAP request (%zu frames): refused", n);
    } else if (strcmp(mech, "CURVE") != 0 || n < 7 || zmq_msg_size(&f[6]) != 32) {
        s_refused(self, "refused a %s connection from %s: only CURVE clients are let in", mech,
                  addr);
    } else {
        const uint8_t *key = zmq_msg_data(&f[6]);
        int r = zq_auth_check_key(self->dir, key, user, sizeof user);
        char z85[ZQ_CURVE_KEYLEN + 1] = "?";
        zmq_z85_encode(z85, key, 32);
        if (r == 1) {
            status = "200";
            text = "OK";
            atomic_fetch_add(&self->accepted, 1);
            ZQ_DEBUG("%s: let in %s (key %s) from %s", self->who, user, z85, addr);
        } else if (r == ZQ_EIO) {
            status = "500";
            text = "authorized directory unreadable";
            s_refused(self, "refused key %s from %s: cannot read the authorized directory %s: %s",
                      z85, addr, self->dir, strerror(errno));
        } else {
            s_refused(self, "refused key %s from %s: not in the authorized directory %s", z85,
                      addr, self->dir);
        }
    }
    /* [version][request id][status code][status text][user id][metadata] */
    s_send_str(self->zap, "1.0", 3, 1);
    if (n >= 2)
        zmq_send(self->zap, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), ZMQ_SNDMORE);
    else
        s_send_str(self->zap, "", 0, 1);
    s_send_str(self->zap, status, 3, 1);
    s_send_str(self->zap, text, strlen(text), 1);
    s_send_str(self->zap, user, strlen(user), 1);
    s_send_str(self->zap, "", 0, 0);
    for (size_t i = 0; i < n; i++)
        zmq_msg_close(&f[i]);
}

/* Read the events of one watched socket. */
static void s_watch_drain(zq_auth_t *self, s_watch_t *w)
{
    uint16_t event;
    uint32_t value;
    while (s_read_event(w->pair, &event, &value)) {
        /* a plain client is seen as a mechanism mismatch, or (when it hung up first) as a
         * connection closed mid-handshake: both are refusals */
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)
            s_refused(self, "rejected a connection on %s: closed during the CURVE handshake (a "
                            "client without CURVE keys, or with the wrong server key)",
                      w->what);
        if (event != ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
            continue;
        if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
            s_refused(self, "rejected a connection on %s: the client does not use CURVE",
                      w->what);
        else if ((value & 0xf0000000u) == 0x20000000u)
            ZQ_ERROR("%s: the ZAP handler's reply was refused by libzmq (0x%08x)", self->who,
                     value); /* our bug, not the peer's */
        else
            s_refused(self, "rejected a connection on %s: CURVE handshake failed (protocol "
                            "error 0x%08x%s)",
                      w->what, value,
                      value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC
                          ? ": the client has the wrong server key"
                          : "");
    }
}

zq_auth_t *zq_auth_new(void *ctx, const char *authorized_dir, const char *who)
{
    if (!ctx || !authorized_dir || !*authorized_dir) {
        ZQ_ERROR("auth: no authorized directory given");
        return NULL;
    }
    const char *name = who && *who ? who : "auth";
    int nkeys = zq_auth_count_keys(authorized_dir);
    if (nkeys < 0) {
        ZQ_ERROR("%s: cannot read the authorized keys directory %s: %s", name, authorized_dir,
                 strerror(errno));
        return NULL;
    }
    zq_auth_t *self = calloc(1, sizeof *self);
    if (!self || !(self->dir = strdup(authorized_dir))) {
        ZQ_ERROR("%s: out of memory", name);
        free(self);
        return NULL;
    }
    snprintf(self->who, sizeof self->who, "%s", name);
    self->ctx = ctx;
    self->stop_pipe[0] = self->stop_pipe[1] = -1;
    atomic_init(&self->accepted, 0);
    atomic_init(&self->rejected, 0);
    int zero = 0;
    self->zap = zmq_socket(ctx, ZMQ_REP);
    if (self->zap)
        zmq_setsockopt(self->zap, ZMQ_LINGER, &zero, sizeof zero);
    if (!self->zap || zmq_bind(self->zap, ZQ_AUTH_ZAP_ENDPOINT) != 0) {
        ZQ_ERROR("%s: cannot bind the ZAP handler at %s: %s", name, ZQ_AUTH_ZAP_ENDPOINT,
                 zmq_strerror(zmq_errno()));
        zq_auth_destroy(&self);
        return NULL;
    }
    if (nkeys == 0)
        ZQ_WARN("%s: no key files (NAME%s) in %s: every CURVE client will be refused", name,
                ZQ_CURVE_PUBLIC_SUFFIX, authorized_dir);
    else
        ZQ_INFO("%s: CURVE on; %d authorized key%s in %s (read again at every handshake)", name,
                nkeys, nkeys == 1 ? "" : "s", authorized_dir);
    return self;
}

int zq_auth_watch(zq_auth_t *self, void *sock, const char *what)
{
    if (!self || !sock || self->started || self->nwatch >= S_MAX_WATCH)
        return ZQ_ESTATE;
    void *pair = NULL;
    char ep[96];
    snprintf(ep, sizeof ep, "inproc://zq-auth-watch-%p-%zu", (void *)self, self->nwatch);
    int mask = ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL;
    if (zmq_socket_monitor(sock, ep, mask) != 0)
        return ZQ_EIO;
    pair = zmq_socket(self->ctx, ZMQ_PAIR);
    int zero = 0;
    if (pair)
        zmq_setsockopt(pair, ZMQ_LINGER, &zero, sizeof zero);
    if (!pair || zmq_connect(pair, ep) != 0) {
        if (pair)
            zmq_close(pair);
        zmq_socket_monitor(sock, NULL, 0);
        return ZQ_EIO;
    }
    s_watch_t *w = &self->watch[self->nwatch++];
    w->pair = pair;
    snprintf(w->what, sizeof w->what, "%s", what ? what : "a socket");
    return ZQ_OK;
}

int zq_auth_pollitems(const zq_auth_t *self, zmq_pollitem_t *items, int max)
{
    int n = 0;
    if (!self || max <= 0)
        return 0;
    items[n++] = (zmq_pollitem_t){self->zap, 0, ZMQ_POLLIN, 0};
    for (size_t i = 0; i < self->nwatch && n < max; i++)
        items[n++] = (zmq_pollitem_t){self->watch[i].pair, 0, ZMQ_POLLIN, 0};
    return n;
}

void zq_auth_serve(zq_auth_t *self)
{
    if (!self)
        return;
    for (int i = 0; i < 64; i++) { /* bounded: the caller's loop has other work */
        int events = 0;
        size_t sz = sizeof events;
        if (zmq_getsockopt(self->zap, ZMQ_EVENTS, &events, &sz) != 0 || !(events & ZMQ_POLLIN))
            break;
        s_zap_one(self);
    }
    for (size_t i = 0; i < self->nwatch; i++)
        s_watch_drain(self, &self->watch[i]);
}

static void *s_thread_main(void *arg)
{
    zq_auth_t *self = arg;
    zq_log_set_process_name("ZapHandler");
    zmq_pollitem_t items[S_MAX_WATCH + 2];
    for (;;) {
        int n = zq_auth_pollitems(self, items, S_MAX_WATCH + 1);
        items[n++] = (zmq_pollitem_t){NULL, self->stop_pipe[0], ZMQ_POLLIN, 0};
        if (zmq_poll(items, n, -1) < 0) {
            if (zmq_errno() == EINTR)
                continue;
            if (zmq_errno() != ETERM)
                ZQ_ERROR("%s: ZAP handler: poll failed: %s", self->who, zmq_strerror(zmq_errno()));
            break;
        }
        if (items[n - 1].revents & ZMQ_POLLIN)
            break;
        zq_auth_serve(self);
    }
    return NULL;
}

int zq_auth_start(zq_auth_t *self)
{
    if (!self || self->started)
        return ZQ_ESTATE;
    if (pipe2(self->stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        ZQ_ERROR("%s: cannot create a pipe: %s", self->who, strerror(errno));
        return ZQ_EIO;
    }
    int rc = pthread_create(&self->thread, NULL, s_thread_main, self);
    if (rc != 0) {
        ZQ_ERROR("%s: cannot start the ZAP handler thread: %s", self->who, strerror(rc));
        return ZQ_EIO;
    }
    self->started = 1;
    return ZQ_OK;
}

void zq_auth_destroy(zq_auth_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zq_auth_t *self = *self_p;
    if (self->started) {
        ssize_t w = write(self->stop_pipe[1], "x", 1);
        (void)w;
        pthread_join(self->thread, NULL);
    }
    for (int i = 0; i < 2; i++)
        if (self->stop_pipe[i] >= 0)
            close(self->stop_pipe[i]);
    for (size_t i = 0; i < self->nwatch; i++)
        zmq_close(self->watch[i].pair);
    if (self->zap)
        zmq_close(self->zap);
    free(self->dir);
    free(self);
    *self_p = NULL;
}

long zq_auth_accepted(const zq_auth_t *self)
{
    return self ? atomic_load(&((zq_auth_t *)self)->accepted) : 0;
}

long zq_auth_rejected(const zq_auth_t *self)
{
    return self ? atomic_load(&((zq_auth_t *)self)->rejected) : 0;
}
