/*
 * client_api - drives the public client API (sdk/zq.h) against a real broker and worker
 * started by tests/e2e/core.sh. Usage: client_api BROKER_URL. Exit 0 when every check passed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zq.h"

static int s_fail;

#define CHECK(cond, ...)                                                                          \
    do {                                                                                          \
        if (cond) {                                                                               \
            printf("ok   - " __VA_ARGS__);                                                        \
        } else {                                                                                  \
            s_fail++;                                                                             \
            printf("FAIL - " __VA_ARGS__);                                                        \
        }                                                                                         \
        printf("\n");                                                                             \
    } while (0)

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: client_api BROKER_URL\n");
        return 2;
    }
    zq_client_t *c = zq_client_new(argv[1]);
    CHECK(c != NULL, "client_new");
    if (!c)
        return 1;

    /* delay + get */
    zq_async_result_t *r = NULL;
    int rc = zq_client_delay(c, "tasks.add", zq_args("[2, 2]"), &r);
    CHECK(rc == ZQ_OK && r, "delay: %s", zq_strerror(rc));
    cJSON *v = NULL;
    rc = zq_result_get(r, 10, &v);
    CHECK(rc == ZQ_OK && cJSON_IsNumber(v) && v->valueint == 4, "delay(2,2).get() == 4 (rc %d)", rc);
    cJSON_Delete(v);
    CHECK(strcmp(zq_result_state(r), ZQ_STATE_SUCCESS) == 0, "state SUCCESS");
    CHECK(zq_result_known(r) == 1, "known");
    zq_result_destroy(&r);
    CHECK(r == NULL, "destroy clears the pointer");

    /* apply_async with options: task_id, countdown, kwargs */
    zq_send_opts_t o = {0};
    o.task_id = "client-api-fixed-id-1";
    o.countdown = 0.3;
    cJSON *args = zq_args("[]");
    cJSON *kwargs = zq_args("{\"message\": \"from kwargs\"}");
    rc = zq_client_apply_async(c, "tasks.fail", args, kwargs, &o, &r);
    CHECK(rc == ZQ_OK, "apply_async with options");
    CHECK(r && strcmp(zq_result_id(r), "client-api-fixed-id-1") == 0, "task_id honoured");
    rc = zq_result_get(r, 10, NULL);
    CHECK(rc == ZQ_EREMOTE, "a failing task gives ZQ_EREMOTE (%d)", rc);
    const cJSON *rec = zq_result_record(r);
    const cJSON *exc = cJSON_GetObjectItem(rec, "exception");
    const cJSON *msg = cJSON_GetObjectItem(exc, "message");
    CHECK(cJSON_IsString(msg) && strstr(msg->valuestring, "from kwargs"),
          "the failure carries the message from kwargs");
    zq_result_destroy(&r);
    cJSON_Delete(args);
    cJSON_Delete(kwargs);

    /* a timeout while the task is still running */
    rc = zq_client_delay(c, "tasks.sleep", zq_args("[1.5]"), &r);
    rc = zq_result_get(r, 0.2, NULL);
    CHECK(rc == ZQ_ETIMEOUT, "get(0.2) on a 1.5 s task times out (%d)", rc);
    rc = zq_result_get(r, 10, &v);
    CHECK(rc == ZQ_OK && cJSON_IsNumber(v), "then completes");
    cJSON_Delete(v);
    zq_result_destroy(&r);

    /* pipelining: 200 tasks sent before any get */
    enum { N = 200 };
    zq_async_result_t *rs[N];
    for (int i = 0; i < N; i++) {
        char a[32];
        snprintf(a, sizeof a, "[%d, 1]", i);
        rc = zq_client_delay(c, "tasks.add", zq_args(a), &rs[i]);
        if (rc != ZQ_OK)
            break;
    }
    CHECK(zq_client_flush(c, 10) == ZQ_OK, "flush: every task acknowledged");
    int good = 0;
    for (int i = 0; i < N; i++) {
        v = NULL;
        if (zq_result_get(rs[i], 10, &v) == ZQ_OK && cJSON_IsNumber(v) && v->valueint == i + 1)
            good++;
        cJSON_Delete(v);
        zq_result_destroy(&rs[i]);
    }
    CHECK(good == N, "%d/%d pipelined results correct", good, N);

    /* unknown id: PENDING, but known says no */
    r = zq_client_result(c, "00000000-0000-4000-8000-00000000abcd");
    CHECK(strcmp(zq_result_state(r), ZQ_STATE_PENDING) == 0, "unknown id reads PENDING");
    CHECK(zq_result_known(r) == 0, "unknown id is marked unknown");
    zq_result_destroy(&r);

    /* bad input is refused locally */
    rc = zq_client_apply_async(c, "bad name", NULL, NULL, NULL, &r);
    CHECK(rc == ZQ_EINVAL && r == NULL, "a task name with a space is refused");
    cJSON *notarray = zq_args("{\"a\":1}");
    rc = zq_client_apply_async(c, "tasks.add", notarray, NULL, NULL, &r);
    CHECK(rc == ZQ_EINVAL, "args must be an array");
    cJSON_Delete(notarray);

    zq_client_destroy(&c);
    CHECK(c == NULL, "client_destroy clears the pointer");
    printf("%d failed\n", s_fail);
    return s_fail ? 1 : 0;
}
