/*
 * fuzz_client_reply - what the client library (sdk/zq_client.c) does with the broker's
 * answers (docs/protocol.md §7, §9): REPLY matching by req, error objects, records read by
 * zq_result_get / zq_result_state / zq_result_known / zq_client_poll_result, and any
 * malformed message on its DEALER. A fake broker (fuzz.h) answers the client's requests,
 * in this order, with the messages of the input ([ZQP01][CMD][body], "$REQ" replaced by the
 * request's req), each followed by a fallback error REPLY so that nothing waits:
 *   1 SUBMIT (apply_async)  2 GET (zq_result_get)  3 QUERY (zq_result_state)
 *   4 QUERY (zq_result_known)  5 GET (zq_client_get_async + poll_result)  6 REVOKE
 *   7 TASKS (zq_client_request)
 */
#include "config.h"
#include "fuzz.h"
#include "zq.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *s_dir;
static fz_peer_t *s_peer;
static zq_client_t *s_c;

static void s_close(void)
{
    zq_client_destroy(&s_c);
    fz_peer_stop(&s_peer);
    fz_rmtree(s_dir);
    free(s_dir);
}

static void s_init(void)
{
    fz_quiet();
    if (!(s_dir = fz_tmpdir("client")) || !(s_peer = fz_peer_start(s_dir, 0)) ||
        !(s_c = zq_client_new(fz_peer_broker(s_peer)))) {
        fprintf(stderr, "fuzz: cannot set up the client\n");
        abort();
    }
    zq_client_set_linger(s_c, 0);
    zq_client_set_timeout(s_c, 5.0);
    atexit(s_close);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!s_c)
        s_init();
    fz_msg_t msgs[FZ_MAX_MSGS];
    size_t n = fz_split(data, size, msgs, FZ_MAX_MSGS);
    fz_peer_script(s_peer, msgs, n);

    zq_send_opts_t o;
    memset(&o, 0, sizeof o);
    o.task_id = "fz-task";
    zq_async_result_t *r = NULL;
    cJSON *args = cJSON_CreateArray();
    zq_client_apply_async(s_c, "tasks.add", args, NULL, &o, &r);
    cJSON_Delete(args);
    if (!r)
        r = zq_client_result(s_c, "fz-task");
    cJSON *v = NULL;
    zq_result_get(r, 5.0, &v);
    cJSON_Delete(v);
    zq_result_state(r);
    zq_result_known(r);
    zq_result_destroy(&r);

    zq_client_get_async(s_c, "fz-task", 5.0);
    cJSON *rec = NULL;
    for (int i = 0; i < 4 && zq_client_poll_result(s_c, 5.0, &rec) != ZQ_ESTATE; i++) {
        cJSON_Delete(rec);
        rec = NULL;
    }
    cJSON_Delete(rec);

    const char *ids[] = {"fz-task", "other"};
    zq_client_revoke(s_c, ids, 2, 1, SIGKILL);
    cJSON *reply = NULL;
    zq_client_request(s_c, "TASKS", NULL, 5.0, &reply);
    cJSON_Delete(reply);
    zq_client_flush(s_c, 5.0);

    fz_peer_script(s_peer, NULL, 0);
    fz_free(msgs, n);
    return 0;
}
