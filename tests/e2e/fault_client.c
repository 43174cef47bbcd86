/*
 * fault_client - the client side of tests/e2e/faults.sh, through the public client API only.
 *
 * fault_client load BROKER_URL N SLEEP IDS_FILE
 *   A client under load while the broker is SIGKILLed: sends N tasks
 *   testtasks.record(SLEEP, i) in batches of 20, waiting after each batch until the broker
 *   acknowledged it (zq_client_flush: while the broker is down this waits, and the client
 *   library sends the unacknowledged SUBMITs again once it is back), then get()s every task.
 *   Prints "acked K" after each batch (the test waits on it to time the kill), then one line
 *   per task that did not end SUCCESS with the value i, then a summary:
 *     "acknowledged A" "terminal T" "success S" "worker_lost L" "other O"
 *   IDS_FILE gets "<id> <i> <state>" per task. Exit 0 when every task was acknowledged and
 *   reached a terminal state (whatever it is: faults.sh judges the states), 1 otherwise.
 *
 * fault_client submit BROKER_URL NAME ARGS [NAME ARGS]...
 *   Sends the tasks (ARGS: a JSON array) at once, so that a worker receives them together,
 *   and prints their ids, one a line, once the broker acknowledged them all.
 *
 * fault_client states BROKER_URL ID...
 *   Prints the state of each id (QUERY), space-separated, on one line: one process for
 *   what the tests poll.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "zq.h"

enum { BATCH = 20 };

static int s_submit(zq_client_t *c, int n, char **pairs)
{
    zq_async_result_t **rs = calloc((size_t)n, sizeof *rs);
    int rc = rs ? ZQ_OK : ZQ_ENOMEM;
    for (int i = 0; i < n && rc == ZQ_OK; i++) {
        cJSON *a = zq_args(pairs[2 * i + 1]);
        rc = a ? zq_client_delay(c, pairs[2 * i], a, &rs[i]) : ZQ_EINVAL;
    }
    if (rc == ZQ_OK)
        rc = zq_client_flush(c, 10);
    for (int i = 0; rs && i < n; i++) {
        if (rc == ZQ_OK)
            printf("%s\n", zq_result_id(rs[i]));
        zq_result_destroy(&rs[i]);
    }
    free(rs);
    if (rc != ZQ_OK)
        fprintf(stderr, "fault_client: %s (%s)\n", zq_strerror(rc), zq_client_errmsg(c));
    return rc == ZQ_OK ? 0 : 1;
}

static int s_states(zq_client_t *c, int n, char **ids)
{
    for (int i = 0; i < n; i++) {
        zq_async_result_t *r = zq_client_result(c, ids[i]);
        const char *st = r ? zq_result_state(r) : NULL;
        printf("%s%s", i ? " " : "", st ? st : "?");
        zq_result_destroy(&r);
    }
    printf("\n");
    return 0;
}

int main(int argc, char **argv)
{
    int load = argc == 6 && !strcmp(argv[1], "load");
    int submit = argc >= 5 && argc % 2 == 1 && !strcmp(argv[1], "submit");
    int states = argc >= 4 && !strcmp(argv[1], "states");
    if (!load && !submit && !states) {
        fprintf(stderr, "usage: fault_client load BROKER_URL N SLEEP IDS_FILE\n"
                        "       fault_client submit BROKER_URL NAME ARGS [NAME ARGS]...\n"
                        "       fault_client states BROKER_URL ID...\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    zq_client_t *c = zq_client_new(argv[2]);
    if (!c)
        return 1;
    if (!load) {
        int rc = submit ? s_submit(c, (argc - 3) / 2, argv + 3) : s_states(c, argc - 3, argv + 3);
        zq_client_destroy(&c);
        return rc;
    }
    int n = atoi(argv[3]);
    double sleep_s = atof(argv[4]);
    if (n <= 0)
        return 2;
    zq_client_set_timeout(c, 60);
    zq_async_result_t **rs = calloc((size_t)n, sizeof *rs);
    if (!rs)
        return 1;

    /* submit: a steady stream, so that the kill lands while tasks are being sent */
    int acked = 0, rc = ZQ_OK;
    for (int i = 0; i < n && rc == ZQ_OK; i++) {
        char a[64];
        snprintf(a, sizeof a, "[%g, %d]", sleep_s, i);
        rc = zq_client_delay(c, "testtasks.record", zq_args(a), &rs[i]);
        if (rc != ZQ_OK) {
            printf("submit %d: %s (%s)\n", i, zq_strerror(rc), zq_client_errmsg(c));
            break;
        }
        if ((i + 1) % BATCH == 0 || i + 1 == n) {
            rc = zq_client_flush(c, 60);
            if (rc != ZQ_OK) {
                printf("flush after %d: %s (%s)\n", i + 1, zq_strerror(rc), zq_client_errmsg(c));
                break;
            }
            acked = i + 1;
            printf("acked %d\n", acked);
            struct timespec ts = {0, 2000000}; /* pace the stream: ~10,000 tasks/s at most */
            nanosleep(&ts, NULL);
        }
    }
    printf("acknowledged %d\n", acked);

    /* get() each one */
    FILE *ids = fopen(argv[5], "w");
    int terminal = 0, success = 0, lost = 0, other = 0;
    for (int i = 0; i < acked; i++) {
        cJSON *v = NULL;
        int grc = zq_result_get(rs[i], 60, &v);
        const cJSON *rec = zq_result_record(rs[i]);
        const char *state = cJSON_GetStringValue(cJSON_GetObjectItem(rec, "state"));
        const char *exc = cJSON_GetStringValue(
            cJSON_GetObjectItem(cJSON_GetObjectItem(rec, "exception"), "type"));
        if (ids)
            fprintf(ids, "%s %d %s\n", zq_result_id(rs[i]), i, state ? state : "?");
        if (grc == ZQ_OK || grc == ZQ_EREMOTE)
            terminal++;
        if (grc == ZQ_OK && cJSON_IsNumber(v) && v->valueint == i) {
            success++;
        } else {
            if (exc && !strcmp(exc, "WorkerLostError"))
                lost++;
            else
                other++;
            printf("task %d %s: get %s, state %s, exception %s\n", i, zq_result_id(rs[i]),
                   zq_strerror(grc), state ? state : "?", exc ? exc : "none");
        }
        cJSON_Delete(v);
    }
    if (ids)
        fclose(ids);
    printf("terminal %d\nsuccess %d\nworker_lost %d\nother %d\n", terminal, success, lost, other);
    for (int i = 0; i < n; i++)
        zq_result_destroy(&rs[i]);
    free(rs);
    zq_client_destroy(&c);
    return acked == n && terminal == n ? 0 : 1;
}
