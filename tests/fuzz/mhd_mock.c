/*
 * mhd_mock - see mhd_mock.h.
 */
#include "config.h"
#include "mhd_mock.h"

#include <microhttpd.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct MHD_Daemon {
    MHD_AccessHandlerCallback dh;
    void *dh_cls;
    MHD_RequestCompletedCallback done;
    void *done_cls;
    union MHD_DaemonInfo info;
};

struct MHD_Response {
    int refs;
    char *body; /* owned copy, or NULL for a callback response */
    size_t len;
    int persistent;
    char *content_type;
    MHD_ContentReaderFreeCallback crfc;
    void *crc_cls;
};

struct MHD_Connection {
    const mhd_mock_request_t *rq;
    struct MHD_Response *queued;
    unsigned status;
    int nqueued;
};

static struct MHD_Daemon *s_daemon;

static void s_die(const char *what)
{
    fprintf(stderr, "mhd_mock: %s\n", what);
    abort();
}

struct MHD_Daemon *MHD_start_daemon(unsigned int flags, uint16_t port, MHD_AcceptPolicyCallback apc,
                                    void *apc_cls, MHD_AccessHandlerCallback dh, void *dh_cls, ...)
{
    (void)flags;
    (void)apc;
    (void)apc_cls;
    if (s_daemon)
        s_die("one daemon at a time");
    struct MHD_Daemon *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->dh = dh;
    d->dh_cls = dh_cls;
    d->info.port = port ? port : 5555;
    va_list ap;
    va_start(ap, dh_cls);
    for (;;) {
        enum MHD_OPTION opt = va_arg(ap, enum MHD_OPTION);
        if (opt == MHD_OPTION_END)
            break;
        switch (opt) {
        case MHD_OPTION_SOCK_ADDR:
            (void)va_arg(ap, struct sockaddr *);
            break;
        case MHD_OPTION_NOTIFY_COMPLETED:
            d->done = va_arg(ap, MHD_RequestCompletedCallback);
            d->done_cls = va_arg(ap, void *);
            break;
        case MHD_OPTION_CONNECTION_LIMIT:
        case MHD_OPTION_CONNECTION_TIMEOUT:
            (void)va_arg(ap, unsigned int);
            break;
        case MHD_OPTION_CONNECTION_MEMORY_LIMIT:
            (void)va_arg(ap, size_t);
            break;
        case MHD_OPTION_EXTERNAL_LOGGER:
            (void)va_arg(ap, MHD_LogCallback);
            (void)va_arg(ap, void *);
            break;
        default:
            s_die("an option this mock does not know: teach it (tests/fuzz/mhd_mock.c)");
        }
    }
    va_end(ap);
    s_daemon = d;
    return d;
}

void MHD_stop_daemon(struct MHD_Daemon *daemon)
{
    if (daemon == s_daemon)
        s_daemon = NULL;
    free(daemon);
}

const union MHD_DaemonInfo *MHD_get_daemon_info(struct MHD_Daemon *daemon,
                                               enum MHD_DaemonInfoType info_type, ...)
{
    return info_type == MHD_DAEMON_INFO_BIND_PORT ? &daemon->info : NULL;
}

const char *MHD_lookup_connection_value(struct MHD_Connection *connection, enum MHD_ValueKind kind,
                                        const char *key)
{
    const mhd_mock_request_t *rq = connection->rq;
    int header = kind == MHD_HEADER_KIND;
    if (!header && kind != MHD_GET_ARGUMENT_KIND)
        return NULL;
    for (size_t i = 0; i < rq->nvalues; i++) {
        const mhd_mock_value_t *v = &rq->values[i];
        if (v->is_header == header && key &&
            (header ? !strcasecmp(v->key, key) : !strcmp(v->key, key)))
            return v->value;
    }
    return NULL;
}

static struct MHD_Response *s_response(void)
{
    struct MHD_Response *r = calloc(1, sizeof *r);
    if (r)
        r->refs = 1;
    return r;
}

struct MHD_Response *MHD_create_response_from_buffer(size_t size, void *buffer,
                                                     enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = s_response();
    if (!r)
        return NULL;
    /* a copy in every mode, so that ASan checks the size against the buffer */
    r->body = malloc(size + 1);
    if (!r->body) {
        free(r);
        return NULL;
    }
    if (size)
        memcpy(r->body, buffer, size);
    r->body[size] = '\0';
    r->len = size;
    if (mode == MHD_RESPMEM_MUST_FREE)
        free(buffer);
    return r;
}

struct MHD_Response *MHD_create_response_from_callback(uint64_t size, size_t block_size,
                                                       MHD_ContentReaderCallback crc, void *crc_cls,
                                                       MHD_ContentReaderFreeCallback crfc)
{
    (void)size;
    (void)block_size;
    (void)crc; /* an event stream would block: it is never read here */
    struct MHD_Response *r = s_response();
    if (!r)
        return NULL;
    r->crfc = crfc;
    r->crc_cls = crc_cls;
    return r;
}

enum MHD_Result MHD_add_response_header(struct MHD_Response *response, const char *header,
                                        const char *content)
{
    if (!response || !header || !content)
        s_die("MHD_add_response_header with NULL");
    if (strchr(content, '\n') || strchr(content, '\r'))
        s_die("a response header value with a line break (header injection)");
    if (!strcasecmp(header, MHD_HTTP_HEADER_CONTENT_TYPE)) {
        free(response->content_type);
        response->content_type = strdup(content);
    }
    return MHD_YES;
}

static void s_release(struct MHD_Response *r)
{
    if (!r || --r->refs > 0)
        return;
    if (r->crfc)
        r->crfc(r->crc_cls);
    free(r->body);
    free(r->content_type);
    free(r);
}

void MHD_destroy_response(struct MHD_Response *response)
{
    s_release(response);
}

enum MHD_Result MHD_queue_response(struct MHD_Connection *connection, unsigned int status_code,
                                   struct MHD_Response *response)
{
    if (!response)
        return MHD_NO;
    connection->nqueued++;
    if (connection->queued)
        return MHD_NO; /* libmicrohttpd refuses a second response */
    response->refs++;
    connection->queued = response;
    connection->status = status_code;
    return MHD_YES;
}

int mhd_mock_request(const mhd_mock_request_t *rq, mhd_mock_result_t *res)
{
    memset(res, 0, sizeof *res);
    struct MHD_Daemon *d = s_daemon;
    if (!d)
        return -1;
    struct MHD_Connection conn = {.rq = rq};
    void *con_cls = NULL;
    size_t up = 0;
    enum MHD_Result ret =
        d->dh(d->dh_cls, &conn, rq->url, rq->method, "HTTP/1.1", NULL, &up, &con_cls);
    if (ret == MHD_YES && rq->body_len) {
        up = rq->body_len;
        ret = d->dh(d->dh_cls, &conn, rq->url, rq->method, "HTTP/1.1", rq->body, &up, &con_cls);
        if (ret == MHD_YES && up != 0)
            s_die("the handler did not consume the upload");
    }
    if (ret == MHD_YES) {
        up = 0;
        ret = d->dh(d->dh_cls, &conn, rq->url, rq->method, "HTTP/1.1", NULL, &up, &con_cls);
        res->handled = ret == MHD_YES;
    }
    if (d->done)
        d->done(d->done_cls, &conn, &con_cls,
                ret == MHD_YES ? MHD_REQUEST_TERMINATED_COMPLETED_OK
                               : MHD_REQUEST_TERMINATED_WITH_ERROR);
    res->queued = conn.nqueued;
    res->status = conn.status;
    if (conn.queued) {
        if (conn.queued->content_type)
            res->content_type = strdup(conn.queued->content_type);
        if (conn.queued->body) {
            res->body = malloc(conn.queued->len + 1);
            if (res->body) {
                memcpy(res->body, conn.queued->body, conn.queued->len + 1);
                res->body_len = conn.queued->len;
            }
        }
        s_release(conn.queued);
    }
    return 0;
}

void mhd_mock_result_clear(mhd_mock_result_t *res)
{
    free(res->content_type);
    free(res->body);
    memset(res, 0, sizeof *res);
}
