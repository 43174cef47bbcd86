/*
 * zq_proto - frame-level encode/decode for ZQP/1 (docs/protocol.md). Decoding never trusts
 * the peer: every frame count, size, version and body is checked, and a bad message is
 * reported, never asserted.
 */
#include "config.h"
#include "zq_proto.h"
#include "zq.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

static void s_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void s_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

void zq_msg_clear(zq_msg_t *m)
{
    if (!m)
        return;
    cJSON_Delete(m->body);
    free(m->raw);
    memset(m, 0, sizeof *m);
}

int zq_msg_decode(const void *const *frames, const size_t *sizes, size_t nframes, int has_identity,
                  zq_msg_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    size_t i = 0;
    if (has_identity) {
        if (nframes < 1 || sizes[0] == 0 || sizes[0] > ZQ_MAX_IDENTITY) {
            s_err(err, errlen, "missing or bad identity frame");
            return ZQ_EPROTO;
        }
        memcpy(out->identity, frames[0], sizes[0]);
        out->identity_len = sizes[0];
        i = 1;
    }
    if (nframes - i != 3) {
        s_err(err, errlen, "expected 3 frames (version, command, body), got %zu", nframes - i);
        return ZQ_EPROTO;
    }
    if (sizes[i] != strlen(ZQ_PROTO_VERSION) ||
        memcmp(frames[i], ZQ_PROTO_VERSION, sizes[i]) != 0) {
        s_err(err, errlen, "unsupported protocol version (want %s)", ZQ_PROTO_VERSION);
        return ZQ_EPROTO;
    }
    i++;
    if (sizes[i] == 0 || sizes[i] > ZQ_MAX_CMD) {
        s_err(err, errlen, "bad command frame (%zu bytes)", sizes[i]);
        return ZQ_EPROTO;
    }
    for (size_t k = 0; k < sizes[i]; k++) {
        char c = ((const char *)frames[i])[k];
        if (!((c >= 'A' && c <= 'Z') || c == '_')) {
            s_err(err, errlen, "bad command frame (not an upper-case name)");
            return ZQ_EPROTO;
        }
    }
    memcpy(out->cmd, frames[i], sizes[i]);
    out->cmd[sizes[i]] = '\0';
    i++;
    const char *end = NULL;
    /* cJSON_ParseWithLengthOpts stops at len: no NUL terminator needed */
    cJSON *body = cJSON_ParseWithLengthOpts(frames[i], sizes[i], &end, 0);
    if (!body) {
        s_err(err, errlen, "%s: body is not valid JSON", out->cmd);
        return ZQ_EPROTO;
    }
    if (!cJSON_IsObject(body)) {
        cJSON_Delete(body);
        s_err(err, errlen, "%s: body is not a JSON object", out->cmd);
        return ZQ_EPROTO;
    }
    /* trailing garbage after the object */
    const char *stop = (const char *)frames[i] + sizes[i];
    while (end && end < stop && (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
        end++;
    if (end && end < stop) {
        cJSON_Delete(body);
        s_err(err, errlen, "%s: trailing bytes after the JSON body", out->cmd);
        return ZQ_EPROTO;
    }
    out->body = body;
    return ZQ_OK;
}

int zq_frames_recv(void *sock, zq_frames_t *f, int flags, char *err, size_t errlen)
{
    f->n = f->total = 0;
    for (int more = 1; more;) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, sock, f->total == 0 ? flags : 0) < 0) {
            int e = errno;
            zmq_msg_close(&part);
            zq_frames_close(f);
            if (e == EAGAIN)
                return ZQ_ETIMEOUT;
            s_err(err, errlen, "recv: %s", zmq_strerror(e));
            return ZQ_EIO;
        }
        more = zmq_msg_more(&part);
        f->total++;
        if (f->n < ZQ_FRAMES_MAX) {
            f->part[f->n] = part;
            f->data[f->n] = zmq_msg_data(&f->part[f->n]);
            f->size[f->n] = zmq_msg_size(&f->part[f->n]);
            f->n++;
        } else {
            zmq_msg_close(&part); /* drain the rest so the next recv starts clean */
        }
    }
    return ZQ_OK;
}

void zq_frames_close(zq_frames_t *f)
{
    for (size_t k = 0; k < f->n; k++)
        zmq_msg_close(&f->part[k]);
    f->n = f->total = 0;
}

int zq_frames_decode(const zq_frames_t *f, int has_identity, zq_msg_t *out, char *err,
                     size_t errlen)
{
    int rc;
    if (f->total > ZQ_FRAMES_MAX) {
        memset(out, 0, sizeof *out);
        s_err(err, errlen, "too many frames (%zu)", f->total);
        rc = ZQ_EPROTO;
    } else {
        rc = zq_msg_decode(f->data, f->size, f->n, has_identity, out, err, errlen);
    }
    /* a malformed message still names its sender, so that it can be answered */
    if (rc != ZQ_OK && has_identity && f->n > 0 && f->size[0] > 0 &&
        f->size[0] <= ZQ_MAX_IDENTITY) {
        memcpy(out->identity, f->data[0], f->size[0]);
        out->identity_len = f->size[0];
    }
    return rc;
}

int zq_msg_recv(void *sock, int has_identity, zq_msg_t *out, int flags, char *err, size_t errlen)
{
    zq_frames_t f;
    memset(out, 0, sizeof *out);
    int rc = zq_frames_recv(sock, &f, flags, err, errlen);
    if (rc != ZQ_OK)
        return rc;
    rc = zq_frames_decode(&f, has_identity, out, err, errlen);
    zq_frames_close(&f);
    return rc;
}

int zq_msg_send_raw(void *sock, const void *identity, size_t idlen, const char *cmd,
                    const char *json, size_t len, int flags)
{
    if (identity && zmq_send(sock, identity, idlen, ZMQ_SNDMORE | flags) < 0)
        return ZQ_EIO;
    if (zmq_send(sock, ZQ_PROTO_VERSION, strlen(ZQ_PROTO_VERSION), ZMQ_SNDMORE | flags) < 0)
        return ZQ_EIO;
    if (zmq_send(sock, cmd, strlen(cmd), ZMQ_SNDMORE | flags) < 0)
        return ZQ_EIO;
    if (zmq_send(sock, json, len, flags) < 0)
        return ZQ_EIO;
    return ZQ_OK;
}

int zq_msg_send(void *sock, const void *identity, size_t idlen, const char *cmd, const cJSON *body,
                int flags)
{
    char *txt = cJSON_PrintUnformatted(body);
    if (!txt)
        return ZQ_ENOMEM;
    int rc = zq_msg_send_raw(sock, identity, idlen, cmd, txt, strlen(txt), flags);
    cJSON_free(txt);
    return rc;
}

cJSON *zq_reply_error(const cJSON *req, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *r = cJSON_CreateObject();
    if (!r)
        return NULL;
    const cJSON *reqid = req ? cJSON_GetObjectItemCaseSensitive(req, "req") : NULL;
    if (cJSON_IsNumber(reqid))
        cJSON_AddNumberToObject(r, "req", reqid->valuedouble);
    cJSON *e = cJSON_AddObjectToObject(r, "error");
    if (e) {
        cJSON_AddStringToObject(e, "code", code);
        cJSON_AddStringToObject(e, "message", msg);
    }
    return r;
}

void zq_socket_defaults(void *sock)
{
    int linger = 0, ivl = 100, ivlmax = 2000;
    int64_t maxsize = ZQ_MAX_MSG_SIZE;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &maxsize, sizeof maxsize);
    zmq_setsockopt(sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(sock, ZMQ_RECONNECT_IVL_MAX, &ivlmax, sizeof ivlmax);
}

/* ---------------------------------------------------------------------------------------
 * JSON array splitter (TASKS)
 */
static int s_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int zq_jarray_begin(zq_jarray_t *it, const char *text, size_t len)
{
    it->p = text;
    it->end = text + len;
    it->closed = 0;
    while (it->p < it->end && s_ws(*it->p))
        it->p++;
    if (it->p == it->end || *it->p != '[')
        return ZQ_EPROTO;
    it->p++;
    while (it->p < it->end && s_ws(*it->p))
        it->p++;
    if (it->p < it->end && *it->p == ']') { /* [] */
        it->p++;
        it->closed = 1;
    }
    return ZQ_OK;
}

int zq_jarray_next(zq_jarray_t *it, const char **elem, size_t *n)
{
    const char *p = it->p, *end = it->end;
    if (it->closed) {
        while (p < end && s_ws(*p))
            p++;
        it->p = p;
        return p == end ? 0 : ZQ_EPROTO;
    }
    while (p < end && s_ws(*p))
        p++;
    const char *start = p;
    size_t depth = 0;
    for (; p < end; p++) {
        char c = *p;
        if (c == '"') {
            for (p++; p < end && *p != '"'; p++)
                if (*p == '\\' && ++p == end)
                    break;
            if (p >= end)
                return ZQ_EPROTO; /* unterminated string */
        } else if (c == '[' || c == '{') {
            depth++;
        } else if (c == ']' || c == '}') {
            if (depth == 0) {
                if (c == '}')
                    return ZQ_EPROTO;
                break;
            }
            depth--;
        } else if (c == ',' && depth == 0) {
            break;
        }
    }
    if (p == end)
        return ZQ_EPROTO; /* no closing ']' */
    const char *stop = p;
    while (stop > start && s_ws(stop[-1]))
        stop--;
    if (stop == start)
        return ZQ_EPROTO; /* empty element */
    it->closed = *p == ']';
    it->p = p + 1;
    *elem = start;
    *n = (size_t)(stop - start);
    return 1;
}
