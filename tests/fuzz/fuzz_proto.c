/*
 * fuzz_proto - ZQP/1 framing (common/zq_proto.c, docs/protocol.md §4): zq_msg_decode on the
 * first message of the input, read as a ROUTER message (frame 0 the identity) and as a
 * message without identity; then the same frames sent over an inproc:// PAIR and read back
 * with zq_msg_recv (frame counts beyond its limit, identity handling). Checked: a decoded
 * message has a valid command and an object body that prints to JSON which decodes again;
 * a rejection says why and leaves no body; both paths agree.
 */
#include "config.h"
#include "fuzz.h"
#include "zq.h"
#include "zq_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void *s_ctx, *s_in, *s_out;

static void s_fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz: %s: %s\n", what, detail);
    abort();
}

static void s_close(void)
{
    zmq_close(s_in);
    zmq_close(s_out);
    zmq_ctx_term(s_ctx);
}

static void s_init(void)
{
    fz_quiet();
    s_ctx = zmq_ctx_new();
    s_in = zmq_socket(s_ctx, ZMQ_PAIR);
    s_out = zmq_socket(s_ctx, ZMQ_PAIR);
    if (!s_in || zmq_bind(s_in, "inproc://zq-fuzz-proto") != 0 || !s_out ||
        zmq_connect(s_out, "inproc://zq-fuzz-proto") != 0)
        s_fail("setup", zmq_strerror(zmq_errno()));
    zq_socket_defaults(s_in);
    atexit(s_close);
}

/* Invariants of one decode result. */
static void s_check(int rc, const zq_msg_t *m, const char *err)
{
    if (rc != ZQ_OK) {
        if (rc != ZQ_EPROTO || !err[0] || m->body)
            s_fail("rejection", err[0] ? err : "no reason given");
        return;
    }
    size_t n = strlen(m->cmd);
    if (!n || n > ZQ_MAX_CMD || strspn(m->cmd, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_") != n)
        s_fail("bad command accepted", m->cmd);
    if (!cJSON_IsObject(m->body))
        s_fail("decoded body", "not an object");
    if (m->identity_len > ZQ_MAX_IDENTITY)
        s_fail("identity", "too long");
    /* what a peer prints from it must decode again */
    char *txt = cJSON_PrintUnformatted(m->body);
    if (!txt)
        return;
    const void *f[3] = {ZQ_PROTO_VERSION, m->cmd, txt};
    size_t s[3] = {strlen(ZQ_PROTO_VERSION), n, strlen(txt)};
    zq_msg_t again;
    char err2[256] = "";
    if (zq_msg_decode(f, s, 3, 0, &again, err2, sizeof err2) != ZQ_OK)
        s_fail("re-encoded message does not decode", err2);
    zq_msg_clear(&again);
    cJSON *e = zq_reply_error(m->body, ZQ_WERR_INVAL, "%s", txt);
    char *et = e ? cJSON_PrintUnformatted(e) : NULL;
    if (et && !cJSON_IsObject(cJSON_GetObjectItem(e, "error")))
        s_fail("zq_reply_error", et);
    cJSON_free(et);
    cJSON_Delete(e);
    cJSON_free(txt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!s_ctx)
        s_init();
    fz_msg_t m;
    if (fz_split(data, size, &m, 1) == 0)
        return 0;
    int rc[2];
    for (int has_id = 0; has_id < 2; has_id++) {
        zq_msg_t out;
        char err[256] = "";
        rc[has_id] = zq_msg_decode((const void *const *)m.frame, m.size, m.n, has_id, &out, err,
                                   sizeof err);
        s_check(rc[has_id], &out, err);
        if (rc[has_id] == ZQ_OK && has_id &&
            (out.identity_len != m.size[0] || memcmp(out.identity, m.frame[0], m.size[0])))
            s_fail("identity", "not the first frame");
        zq_msg_clear(&out);
    }
    /* the same frames through a socket: zq_msg_recv must agree with zq_msg_decode, and
     * with more frames than it keeps it must drain them all (total frames in the input) */
    if (m.n) {
        size_t sent = m.total > m.n ? m.total : m.n;
        for (size_t k = 0; k < sent; k++) {
            const void *f = k < m.n ? (const void *)m.frame[k] : "";
            size_t len = k < m.n ? m.size[k] : 0;
            zmq_send(s_out, f, len, k + 1 < sent ? ZMQ_SNDMORE : 0);
        }
        zq_msg_t out;
        char err[256] = "";
        int r = zq_msg_recv(s_in, 1, &out, ZMQ_DONTWAIT, err, sizeof err);
        if (r == ZQ_ETIMEOUT || r == ZQ_EIO)
            s_fail("zq_msg_recv", "the message did not arrive");
        s_check(r, &out, err);
        if ((r == ZQ_OK) != (rc[1] == ZQ_OK && sent == m.n))
            s_fail("zq_msg_recv and zq_msg_decode disagree", err);
        zq_msg_clear(&out);
        char buf[8];
        if (zmq_recv(s_in, buf, sizeof buf, ZMQ_DONTWAIT) >= 0)
            s_fail("zq_msg_recv", "left frames of the message behind");
    }
    fz_free(&m, 1);
    return 0;
}
