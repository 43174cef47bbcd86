/*
 * zq_proto - ZQP/1 framing, as specified in docs/protocol.md (the source of truth; names
 * here mirror it one to one).
 *
 * Every message is [identity (ROUTER side only)] ["ZQP01"] [COMMAND] [JSON body].
 * Events on the PUB socket are [topic] ["ZQP01"] [JSON body].
 */
#ifndef ZQ_PROTO_H
#define ZQ_PROTO_H

#include <stddef.h>
#include <cjson/cJSON.h>
#include <zmq.h>

#define ZQ_PROTO_VERSION "ZQP01"
/* Largest message accepted on any socket (ZMQ_MAXMSGSIZE); bytes. Task args bigger than
 * this belong in a blob store, not in a queue. */
#define ZQ_MAX_MSG_SIZE (8 * 1024 * 1024)
#define ZQ_MAX_IDENTITY 255
#define ZQ_MAX_CMD 15

/* Client/worker -> broker frontend (ROUTER). Every request is answered with REPLY. */
#define ZQ_CMD_SUBMIT "SUBMIT"       /* send a task */
/* Several SUBMITs in one message: a JSON array of SUBMIT bodies, each answered as if sent
 * alone (§7). */
#define ZQ_CMD_SUBMITS "SUBMITS"
#define ZQ_CMD_GET "GET"             /* wait for a task's terminal record */
#define ZQ_CMD_QUERY "QUERY"         /* a task's record now, no waiting */
#define ZQ_CMD_INFO "INFO"           /* broker endpoints and identity */
#define ZQ_CMD_WORKERS "WORKERS"     /* live workers */
#define ZQ_CMD_PURGE "PURGE"         /* drop queued tasks */
#define ZQ_CMD_REVOKE "REVOKE"       /* revoke task ids */
#define ZQ_CMD_QUEUES "QUEUES"       /* queue depths */
#define ZQ_CMD_SCHEDULED "SCHEDULED" /* ETA tasks the broker still holds */
#define ZQ_CMD_TASKS "TASKS"         /* task records, filtered and paged (monitor) */
#define ZQ_CMD_STATS "STATS"         /* task counts by state and per worker (monitor) */
#define ZQ_CMD_HELLO "HELLO"         /* worker joins */
#define ZQ_CMD_HEARTBEAT "HEARTBEAT" /* worker is alive */
#define ZQ_CMD_BYE "BYE"             /* worker leaves */
#define ZQ_CMD_REPLY "REPLY"         /* broker -> requester */
#define ZQ_CMD_REPLIES "REPLIES"     /* broker -> requester: several REPLY bodies in one */

/* Broker -> worker, on the worker's dispatch channel (PUSH -> PULL). */
#define ZQ_CMD_TASK "TASK"
/* Several TASKs in one message: a JSON array of task messages, sent only to a worker that
 * said "batch_tasks": true in HELLO (§8). Same name as the frontend's TASKS (ZQ_CMD_TASKS):
 * commands are per channel. */
#define ZQ_CMD_TASK_BATCH "TASKS"
/* A TASKS message is closed before its body passes this (bytes; well under ZQ_MAX_MSG_SIZE) */
#define ZQ_TASK_BATCH_MAX (1024 * 1024)
#define ZQ_CMD_REVOKED "REVOKED"
#define ZQ_CMD_ACK "ACK" /* upstream batches committed */

/* Worker -> broker upstream (PUSH -> PULL). No reply. */
#define ZQ_CMD_STATE "STATE"
#define ZQ_CMD_RETURN "RETURN"
#define ZQ_CMD_BATCH "BATCH" /* several of the above, numbered, confirmed by ACK */
/* ZQ_CMD_SUBMIT is also valid upstream (sub-tasks sent by running tasks). */

/* zq-ctl -> a worker's control socket (DEALER -> ROUTER), answered with REPLY
 * (docs/management.md). */
#define ZQ_CMD_INSPECT "INSPECT"

/* Error codes carried in REPLY {"error": {"code": ..., "message": ...}}. */
#define ZQ_WERR_PROTO "EPROTO"
#define ZQ_WERR_VERSION "EVERSION"
#define ZQ_WERR_INVAL "EINVAL"
#define ZQ_WERR_NOTFOUND "ENOTFOUND"
#define ZQ_WERR_STORE "ESTORE"
#define ZQ_WERR_DUPLICATE "EDUPLICATE"
#define ZQ_WERR_UNKNOWN_WORKER "EUNKNOWNWORKER"
#define ZQ_WERR_UNKNOWN_CMD "EUNKNOWNCMD"

typedef struct {
    unsigned char identity[ZQ_MAX_IDENTITY + 1]; /* ROUTER peer id (or event topic) */
    size_t identity_len;
    char cmd[ZQ_MAX_CMD + 1];
    cJSON *body; /* owned by the message; an object */
    char *raw;   /* owned; when set (body NULL), the body's text, not parsed: the broker
                  * reads a worker's BATCH without a tree */
    size_t raw_len;
} zq_msg_t;

/* Decode already-received frames. has_identity: the first frame is a routing id.
 * On error returns ZQ_EPROTO and writes a reason into err (never NULL-terminated
 * beyond errlen). On success the caller owns out->body (zq_msg_clear). */
int zq_msg_decode(const void *const *frames, const size_t *sizes, size_t nframes, int has_identity,
                  zq_msg_t *out, char *err, size_t errlen);

/* Receive one whole multipart message from sock and decode it. flags: 0 or ZMQ_DONTWAIT.
 * ZQ_ETIMEOUT when nothing is waiting (DONTWAIT) / EAGAIN, ZQ_EIO on socket error,
 * ZQ_EPROTO on a malformed message (fully consumed; err says why; out->identity is set
 * when it could be read, so that the sender can be answered). */
int zq_msg_recv(void *sock, int has_identity, zq_msg_t *out, int flags, char *err, size_t errlen);

/* A message received but not decoded (a reader that can take some commands from their
 * text, without a cJSON tree): the first ZQ_FRAMES_MAX frames, in libzmq's buffers until
 * zq_frames_close. */
#define ZQ_FRAMES_MAX 8 /* more than any valid message has; extra frames are an error */
typedef struct {
    zmq_msg_t part[ZQ_FRAMES_MAX];
    const void *data[ZQ_FRAMES_MAX];
    size_t size[ZQ_FRAMES_MAX];
    size_t n;     /* frames kept */
    size_t total; /* frames received (more than n: malformed) */
} zq_frames_t;

/* Receive one whole message. ZQ_OK (close it with zq_frames_close), ZQ_ETIMEOUT when
 * nothing is waiting (DONTWAIT), ZQ_EIO on socket error (err says why; nothing to close). */
int zq_frames_recv(void *sock, zq_frames_t *f, int flags, char *err, size_t errlen);
void zq_frames_close(zq_frames_t *f);
/* Decode received frames as zq_msg_recv does (ZQ_OK or ZQ_EPROTO, same contract). */
int zq_frames_decode(const zq_frames_t *f, int has_identity, zq_msg_t *out, char *err,
                     size_t errlen);

/* Send [identity?][ZQP01][cmd][json]. json is borrowed text of length len. */
int zq_msg_send_raw(void *sock, const void *identity, size_t idlen, const char *cmd,
                    const char *json, size_t len, int flags);
/* Same, printing body (borrowed). */
int zq_msg_send(void *sock, const void *identity, size_t idlen, const char *cmd, const cJSON *body,
                int flags);
/* Free the body and reset. */
void zq_msg_clear(zq_msg_t *m);

/* The elements of a JSON array's text, one at a time, without parsing them (the body of a
 * TASKS, §8): the scanner follows strings (with escapes) and nesting only, so each
 * element's text is handed as it came to a real parser, which validates it. */
typedef struct {
    const char *p, *end;
    int closed; /* the closing ']' was read */
} zq_jarray_t;

/* Start on text (len bytes, borrowed for the iteration). ZQ_OK, or ZQ_EPROTO when it does
 * not start with '[' (whitespace aside). */
int zq_jarray_begin(zq_jarray_t *it, const char *text, size_t len);
/* 1 with the next element's text (whitespace around it trimmed) in *elem, *n; 0 after the
 * last one (the closing ']' and only whitespace after it); ZQ_EPROTO when the text is not
 * an array of elements: an unterminated string or nesting, a stray '}' , an empty element
 * ("[1,]", "[,1]"), bytes after the ']'. The elements before the error were returned. */
int zq_jarray_next(zq_jarray_t *it, const char **elem, size_t *n);

/* Build a REPLY body carrying an error. Caller owns return value. req may be NULL. */
cJSON *zq_reply_error(const cJSON *req, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Apply the socket options every zq socket gets: linger, max message size, and
 * reconnect intervals. */
void zq_socket_defaults(void *sock);

#endif
