/*
 * zq-soak - the client side of the soak run (tests/soak/soak.sh, `make soak`) and of the
 * valgrind run (tests/soak/valgrind.sh, `make check-valgrind`); docs/reliability.md "Soak".
 * It uses the public client API (sdk/zq.h) only.
 *
 *   zq-soak [--broker URL] run --n N [--backlog B] [--sample-every K] [--stall S]
 *                              [--slow-every M] [--slow-seconds T]
 *       Sends N tasks.add(i, i), pipelined (no round trip per task), keeping at most B of
 *       them unfinished (so the broker's queue, and with it its memory, stays bounded and
 *       what the RSS samples show is the steady state), then waits until the broker counts
 *       N terminal tasks and none PENDING/RECEIVED/STARTED/RETRY, then checks every K-th
 *       task's record: SUCCESS with 2i, or FAILURE WorkerLostError (it ran on a worker that
 *       was SIGKILLed). Exit 0 when all of that holds; 1 otherwise, or when no task ended for
 *       S seconds (a stuck system). With --slow-every M, every M-th task is tasks.sleep(T)
 *       instead (default 0.25 s): tasks.add is over in microseconds, so a SIGKILL would
 *       almost never find one running; the slow ones make the "lost while running" path
 *       (FAILURE WorkerLostError) happen too, not only "lost before starting" (requeued).
 *   zq-soak [--broker URL] stats [--worker-lost]
 *       The broker's task counts (STATS), one "NAME COUNT" per line: the seven states,
 *       total, terminal, unfinished, workers_online; with --worker-lost also worker_lost
 *       (FAILURE WorkerLostError; a scan of the task table).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "zq.h"

#define S_CHUNK 1000        /* tasks sent between two looks at the backlog */
#define S_POLL_S 0.05       /* seconds between STATS while waiting for the workers */
#define S_PROGRESS_S 10.0   /* seconds between progress lines */
#define S_TIMEOUT 60.0      /* seconds: a request (STATS, an acknowledgement) may take this
                               long under valgrind or on a loaded machine */
#define S_MAX_SAMPLES 1000  /* records checked at the end (every K-th task) */

static double s_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void s_sleep(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* The broker's counts of tasks by state. */
typedef struct {
    double state[7]; /* in the order of s_states */
    double total, terminal, unfinished, workers_online;
} s_counts_t;

static const char *const s_states[7] = {ZQ_STATE_PENDING, ZQ_STATE_RECEIVED, ZQ_STATE_STARTED,
                                        ZQ_STATE_RETRY,   ZQ_STATE_SUCCESS,  ZQ_STATE_FAILURE,
                                        ZQ_STATE_REVOKED};

/* One STATS request. ZQ_OK and *out filled, or the error (message on stderr). */
static int s_stats(zq_client_t *c, s_counts_t *out)
{
    cJSON *reply = NULL;
    int rc = zq_client_request(c, "STATS", NULL, S_TIMEOUT, &reply);
    if (rc != ZQ_OK) {
        fprintf(stderr, "zq-soak: STATS: %s (%s)\n", zq_strerror(rc), zq_client_errmsg(c));
        return rc;
    }
    const cJSON *tasks = cJSON_GetObjectItem(reply, "tasks");
    memset(out, 0, sizeof *out);
    for (int i = 0; i < 7; i++) {
        out->state[i] = cJSON_GetNumberValue(cJSON_GetObjectItem(tasks, s_states[i]));
        if (out->state[i] != out->state[i]) /* NaN: field missing */
            rc = ZQ_EPROTO;
    }
    out->total = cJSON_GetNumberValue(cJSON_GetObjectItem(tasks, "total"));
    out->workers_online = cJSON_GetNumberValue(cJSON_GetObjectItem(reply, "workers_online"));
    out->terminal = out->state[4] + out->state[5] + out->state[6];
    out->unfinished = out->state[0] + out->state[1] + out->state[2] + out->state[3];
    cJSON_Delete(reply);
    if (rc != ZQ_OK)
        fprintf(stderr, "zq-soak: STATS: a state count is missing from the reply\n");
    return rc;
}

/* FAILURE records whose exception is WorkerLostError (TASKS with a search: a table scan). */
static int s_worker_lost(zq_client_t *c, double *n)
{
    cJSON *body = cJSON_CreateObject();
    cJSON *reply = NULL;
    int rc = ZQ_ENOMEM;
    if (body && cJSON_AddStringToObject(body, "state", ZQ_STATE_FAILURE) &&
        cJSON_AddStringToObject(body, "search", "WorkerLostError") &&
        cJSON_AddNumberToObject(body, "limit", 1))
        rc = zq_client_request(c, "TASKS", body, S_TIMEOUT, &reply);
    cJSON_Delete(body);
    if (rc == ZQ_OK) {
        *n = cJSON_GetNumberValue(cJSON_GetObjectItem(reply, "total"));
        if (*n != *n)
            rc = ZQ_EPROTO;
    }
    if (rc != ZQ_OK)
        fprintf(stderr, "zq-soak: TASKS: %s (%s)\n", zq_strerror(rc), zq_client_errmsg(c));
    cJSON_Delete(reply);
    return rc;
}

static int s_cmd_stats(const char *broker, int worker_lost)
{
    zq_client_t *c = zq_client_new(broker);
    s_counts_t k;
    double lost = 0;
    int rc = c ? s_stats(c, &k) : ZQ_EINVAL;
    if (rc == ZQ_OK && worker_lost)
        rc = s_worker_lost(c, &lost);
    if (rc == ZQ_OK) {
        for (int i = 0; i < 7; i++)
            printf("%s %.0f\n", s_states[i], k.state[i]);
        printf("total %.0f\nterminal %.0f\nunfinished %.0f\nworkers_online %.0f\n", k.total,
               k.terminal, k.unfinished, k.workers_online);
        if (worker_lost)
            printf("worker_lost %.0f\n", lost);
    }
    zq_client_destroy(&c);
    return rc == ZQ_OK ? 0 : 1;
}

/* Checks a record: SUCCESS with the value expected, or FAILURE WorkerLostError. */
static int s_record_ok(const cJSON *rec, double want)
{
    const char *st = cJSON_GetStringValue(cJSON_GetObjectItem(rec, "state"));
    if (st && strcmp(st, ZQ_STATE_SUCCESS) == 0) {
        const cJSON *v = cJSON_GetObjectItem(rec, "result");
        return cJSON_IsNumber(v) && v->valuedouble == want;
    }
    const cJSON *exc = cJSON_GetObjectItem(rec, "exception");
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(exc, "type"));
    return st && strcmp(st, ZQ_STATE_FAILURE) == 0 && type && strcmp(type, "WorkerLostError") == 0;
}

typedef struct {
    char id[37];
    long i;
    double want; /* the result of a SUCCESS */
    int done;
} s_sample_t;

/* GETs every sample (pipelined) and checks its record. Returns how many are wrong. */
static size_t s_check_samples(zq_client_t *c, s_sample_t *smp, size_t n)
{
    size_t bad = 0, got = 0;
    for (size_t k = 0; k < n; k++)
        if (zq_client_get_async(c, smp[k].id, S_TIMEOUT) != ZQ_OK) {
            fprintf(stderr, "zq-soak: GET %s: %s\n", smp[k].id, zq_client_errmsg(c));
            return n;
        }
    while (got < n) {
        cJSON *rec = NULL;
        int rc = zq_client_poll_result(c, S_TIMEOUT, &rec);
        const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(rec, "id"));
        if (rc != ZQ_OK || !id) {
            fprintf(stderr, "zq-soak: GET: %s (%s)\n", zq_strerror(rc), zq_client_errmsg(c));
            cJSON_Delete(rec);
            return bad + (n - got);
        }
        for (size_t k = 0; k < n; k++) {
            if (smp[k].done || strcmp(smp[k].id, id) != 0)
                continue;
            smp[k].done = 1;
            if (!s_record_ok(rec, smp[k].want)) {
                char *text = cJSON_PrintUnformatted(rec);
                fprintf(stderr, "zq-soak: task %ld has a wrong record: %s\n", smp[k].i,
                        text ? text : "?");
                cJSON_free(text);
                bad++;
            }
            break;
        }
        got++;
        cJSON_Delete(rec);
    }
    return bad;
}

typedef struct {
    long n, backlog, sample_every, slow_every;
    double stall, slow_seconds;
} s_run_opts_t;

/* Task i is slow (tasks.sleep) when it is the last of each run of slow_every. */
static int s_is_slow(const s_run_opts_t *o, long i)
{
    return o->slow_every > 0 && i % o->slow_every == o->slow_every - 1;
}

/* Waits until at most `limit` of `sent` tasks are unfinished (STATS). Gives up when the
 * terminal count did not move for o->stall seconds. *k receives the last counts. */
static int s_wait_backlog(zq_client_t *c, const s_run_opts_t *o, long sent, long limit,
                          s_counts_t *k, double *next_progress, double t0)
{
    double last = -1, since = s_mono();
    for (;;) {
        int rc = s_stats(c, k);
        if (rc != ZQ_OK)
            return rc;
        double now = s_mono();
        if (now >= *next_progress) {
            fprintf(stderr, "zq-soak: %.0f s: sent %ld/%ld, terminal %.0f, %.0f tasks/s\n",
                    now - t0, sent, o->n, k->terminal, k->terminal / (now - t0));
            *next_progress = now + S_PROGRESS_S;
        }
        if ((double)sent - k->terminal <= (double)limit && k->unfinished <= (double)limit)
            return ZQ_OK;
        if (k->terminal != last) {
            last = k->terminal;
            since = now;
        } else if (now - since > o->stall) {
            fprintf(stderr,
                    "zq-soak: no task ended for %.0f s (sent %ld, terminal %.0f, unfinished %.0f,"
                    " workers online %.0f)\n",
                    o->stall, sent, k->terminal, k->unfinished, k->workers_online);
            return ZQ_ETIMEOUT;
        }
        s_sleep(S_POLL_S);
    }
}

static int s_cmd_run(const char *broker, const s_run_opts_t *o)
{
    zq_client_t *c = zq_client_new(broker);
    cJSON *args = cJSON_CreateArray();
    cJSON *x = cJSON_CreateNumber(0), *y = cJSON_CreateNumber(0);
    cJSON *slow = cJSON_CreateArray(), *secs = cJSON_CreateNumber(o->slow_seconds);
    size_t nsmp = 0, cap = (size_t)(o->n / o->sample_every) + 1;
    s_sample_t *smp = calloc(cap, sizeof *smp);
    if (!c || !args || !x || !y || !slow || !secs || !smp) {
        fprintf(stderr, "zq-soak: no client, or out of memory\n");
        cJSON_Delete(x), cJSON_Delete(y), cJSON_Delete(args), free(smp);
        cJSON_Delete(secs), cJSON_Delete(slow);
        zq_client_destroy(&c);
        return 1;
    }
    cJSON_AddItemToArray(args, x); /* args owns x and y from here */
    cJSON_AddItemToArray(args, y);
    cJSON_AddItemToArray(slow, secs); /* slow owns secs */
    zq_client_set_timeout(c, S_TIMEOUT);

    int rc = ZQ_OK;
    s_counts_t k = {0};
    double t0 = s_mono(), next_progress = t0 + S_PROGRESS_S;
    long sent = 0;
    for (; sent < o->n && rc == ZQ_OK; sent++) {
        if (sent % S_CHUNK == 0 && sent > 0 && sent - (long)k.terminal > o->backlog)
            /* hysteresis: refill only once half the backlog is done */
            rc = s_wait_backlog(c, o, sent, o->backlog / 2, &k, &next_progress, t0);
        if (rc != ZQ_OK)
            break;
        cJSON_SetNumberValue(x, (double)sent);
        cJSON_SetNumberValue(y, (double)sent);
        int keep = sent % o->sample_every == 0 && nsmp < cap, is_slow = s_is_slow(o, sent);
        zq_async_result_t *r = NULL;
        rc = zq_client_apply_async(c, is_slow ? "tasks.sleep" : "tasks.add",
                                   is_slow ? slow : args, NULL, NULL, keep ? &r : NULL);
        if (rc != ZQ_OK) {
            fprintf(stderr, "zq-soak: apply_async #%ld: %s (%s)\n", sent, zq_strerror(rc),
                    zq_client_errmsg(c));
            break;
        }
        if (r) {
            snprintf(smp[nsmp].id, sizeof smp[nsmp].id, "%s", zq_result_id(r));
            smp[nsmp].want = is_slow ? o->slow_seconds : 2.0 * (double)sent;
            smp[nsmp++].i = sent;
            zq_result_destroy(&r);
        }
    }
    if (rc == ZQ_OK && (rc = zq_client_flush(c, S_TIMEOUT)) != ZQ_OK)
        fprintf(stderr, "zq-soak: flush: %s (%s)\n", zq_strerror(rc), zq_client_errmsg(c));
    if (rc == ZQ_OK)
        rc = s_wait_backlog(c, o, sent, 0, &k, &next_progress, t0);
    double t_end = s_mono();
    size_t bad = rc == ZQ_OK ? s_check_samples(c, smp, nsmp) : 0;
    int ok = rc == ZQ_OK && bad == 0 && k.terminal == (double)o->n && k.total == (double)o->n;
    printf("zq-soak: %ld tasks sent, %.0f in the store, %.0f terminal, %.0f unfinished in "
           "%.1f s: %.0f tasks/s; %zu sampled records checked, %zu wrong: %s\n",
           sent, k.total, k.terminal, k.unfinished, t_end - t0,
           (t_end - t0) > 0 ? k.terminal / (t_end - t0) : 0.0, nsmp, bad, ok ? "OK" : "FAILED");
    cJSON_Delete(args);
    cJSON_Delete(slow);
    free(smp);
    zq_client_destroy(&c);
    return ok ? 0 : 1;
}

static int s_long(const char *opt, const char *v, long min, long *out)
{
    char *end;
    errno = 0;
    long n = v ? strtol(v, &end, 10) : 0;
    if (!v || errno || end == v || *end || n < min) {
        fprintf(stderr, "zq-soak: %s needs an integer >= %ld, got '%s'\n", opt, min, v ? v : "");
        return -1;
    }
    *out = n;
    return 0;
}

static void s_usage(FILE *f)
{
    fprintf(f, "usage: zq-soak [--broker URL] run --n N [--backlog B] [--sample-every K]"
               " [--stall S]\n"
               "                                   [--slow-every M] [--slow-seconds T]\n"
               "       zq-soak [--broker URL] stats [--worker-lost]\n"
               "(tests/soak/soak.sh and tests/soak/valgrind.sh run it; see the comment at the top"
               " of tests/soak/zq_soak.c)\n");
}

int main(int argc, char **argv)
{
    const char *broker = NULL, *cmd = NULL;
    s_run_opts_t o = {1000, 20000, 0, 0, 120, 0.25};
    int worker_lost = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long stall = 0;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            s_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--broker") && v) {
            broker = v, i++;
        } else if (!strcmp(a, "--n")) {
            if (s_long(a, v, 1, &o.n) != 0)
                return 2;
            i++;
        } else if (!strcmp(a, "--backlog")) {
            if (s_long(a, v, 2, &o.backlog) != 0)
                return 2;
            i++;
        } else if (!strcmp(a, "--sample-every")) {
            if (s_long(a, v, 1, &o.sample_every) != 0)
                return 2;
            i++;
        } else if (!strcmp(a, "--slow-every")) {
            if (s_long(a, v, 0, &o.slow_every) != 0)
                return 2;
            i++;
        } else if (!strcmp(a, "--slow-seconds")) {
            char *end;
            o.slow_seconds = v ? strtod(v, &end) : -1;
            if (!v || end == v || *end || !(o.slow_seconds >= 0)) {
                fprintf(stderr, "zq-soak: --slow-seconds needs seconds >= 0\n");
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--stall")) {
            if (s_long(a, v, 1, &stall) != 0)
                return 2;
            o.stall = (double)stall;
            i++;
        } else if (!strcmp(a, "--worker-lost")) {
            worker_lost = 1;
        } else if (!cmd && a[0] != '-') {
            cmd = a;
        } else {
            fprintf(stderr, "zq-soak: unexpected argument '%s'\n", a);
            s_usage(stderr);
            return 2;
        }
    }
    if (cmd && !strcmp(cmd, "stats"))
        return s_cmd_stats(broker, worker_lost);
    if (cmd && !strcmp(cmd, "run")) {
        if (o.sample_every == 0) /* about S_MAX_SAMPLES records checked */
            o.sample_every = o.n / S_MAX_SAMPLES > 0 ? o.n / S_MAX_SAMPLES : 1;
        return s_cmd_run(broker, &o);
    }
    s_usage(stderr);
    return 2;
}
