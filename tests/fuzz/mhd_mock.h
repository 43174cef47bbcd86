/*
 * mhd_mock.h - a stand-in for the part of libmicrohttpd the web monitor uses
 * (control/zq_flower.c), so that fuzz_flower_http drives the monitor's request handler
 * directly, without sockets or HTTP parsing (libmicrohttpd's own job). A program linking
 * mhd_mock.c must not link libmicrohttpd.
 *
 * MHD_start_daemon only records the access handler and the completion callback;
 * mhd_mock_request then plays one request the way libmicrohttpd calls them (headers, the
 * upload in one piece, the final call, completion).
 */
#ifndef ZQ_MHD_MOCK_H
#define ZQ_MHD_MOCK_H

#include <stddef.h>

#define MHD_MOCK_MAX_VALUES 16

typedef struct {
    int is_header;     /* 1: request header (names compare case-insensitively); 0: GET argument */
    const char *key;
    const char *value;
} mhd_mock_value_t;

typedef struct {
    const char *method;
    const char *url;   /* path, without the query string */
    const char *body;  /* upload data, may be NULL */
    size_t body_len;
    mhd_mock_value_t values[MHD_MOCK_MAX_VALUES];
    size_t nvalues;
} mhd_mock_request_t;

typedef struct {
    int handled;          /* the handler returned MHD_YES on its final call */
    unsigned status;      /* 0 when nothing was queued */
    char *content_type;   /* malloc'd or NULL */
    char *body;           /* malloc'd copy of the body (NUL-terminated), NULL for a stream */
    size_t body_len;
    int queued;           /* responses queued (one at most is right) */
} mhd_mock_result_t;

/* Play one request through the handler of the (only) daemon started. ZQ_OK, or -1 when no
 * daemon runs. Free res with mhd_mock_result_clear. */
int mhd_mock_request(const mhd_mock_request_t *rq, mhd_mock_result_t *res);
void mhd_mock_result_clear(mhd_mock_result_t *res);

#endif
