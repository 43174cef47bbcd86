/*
 * fuzz_broker_upstream - the broker's upstream channel (docs/protocol.md §8, "Upstream"):
 * BATCH, STATE (every state and its fields), RETURN, SUBMIT of sub-tasks, and malformed
 * frames.
 * Each message of the input is [ZQP01][CMD][body], fed to a fresh broker whose worker
 * w1@fuzz holds tasks t1 and t3 (fuzz_broker.h).
 * Oracle: every body, and every message body of a BATCH, read as a STATE by the text reader
 * (zq_upstate_read) gives what the tree reader gives (zq_upstate_from_json), and is JSON
 * cJSON takes, whenever the text reader does not decline.
 */
#include "config.h"
#include "fuzz_broker.h"
#include "fuzz.h"
#include "zq.h"
#include "zq_upstate.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int s_same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

/* Two JSON texts with the same value (the reader copies, the tree prints). */
static int s_same_json(const char *a, const char *b)
{
    if (!a || !b)
        return !a && !b;
    cJSON *x = cJSON_Parse(a), *y = cJSON_Parse(b);
    int same = x && y && cJSON_Compare(x, y, 1);
    cJSON_Delete(x);
    cJSON_Delete(y);
    return same;
}

static void s_differential(const char *body, size_t len)
{
    zq_arena_t a = {0};
    zq_upstate_t *t, *j;
    if (zq_upstate_read(body, len, &a, &t) == ZQ_OK) {
        cJSON *tree = cJSON_ParseWithLength(body, len);
        if (!tree || zq_upstate_from_json(tree, &a, &j) != ZQ_OK)
            abort(); /* the text reader took what cJSON refuses */
        const char *ts[] = {t->id, t->state, t->worker, t->timestamp, t->traceback, t->eta,
                            t->received, t->started, t->exc_type, t->exc_message};
        const char *js[] = {j->id, j->state, j->worker, j->timestamp, j->traceback, j->eta,
                            j->received, j->started, j->exc_type, j->exc_message};
        for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
            if (!s_same_str(ts[i], js[i]))
                abort();
        if (!s_same_json(t->result, j->result) || !s_same_json(t->signum, j->signum) ||
            t->has_exc != j->has_exc || t->acks_late != j->acks_late ||
            t->has_runtime != j->has_runtime || t->has_countdown != j->has_countdown ||
            t->has_pid != j->has_pid || (t->has_runtime && t->runtime != j->runtime) ||
            (t->has_countdown && t->countdown != j->countdown) || (t->has_pid && t->pid != j->pid))
            abort();
        cJSON_Delete(tree);
    }
    zq_arena_free(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_msg_t msgs[FZ_MAX_MSGS];
    size_t n = fz_split(data, size, msgs, FZ_MAX_MSGS);
    for (size_t i = 0; i < n; i++) {
        if (msgs[i].n < 3)
            continue;
        const char *body = (const char *)msgs[i].frame[2];
        s_differential(body, msgs[i].size[2]);
        cJSON *batch = cJSON_ParseWithLength(body, msgs[i].size[2]);
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(batch, "messages"))
        {
            char *one = cJSON_PrintUnformatted(cJSON_GetArrayItem(e, 1));
            if (one)
                s_differential(one, strlen(one));
            cJSON_free(one);
        }
        cJSON_Delete(batch);
    }
    fz_free(msgs, n);
    fz_broker_one(data, size, 1);
    return 0;
}
