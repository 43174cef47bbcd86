/*
 * zq-bench - the zq benchmark client (issue 7; bench/README.md says how to run it).
 *
 * Every measuring subcommand drives a running broker and workers through the public client
 * API (sdk/zq.h) only, and prints ONE line of JSON:
 *   {"system":"zq","scenario":S,"case":C,"rep":R,"figures":{...},"detail":{...}}
 * `figures` holds the headline numbers (names end in _per_s, _ms, _mib, _us_per_task or
 * _count, which is how the report knows units and which direction is better); `detail` holds
 * the rest. The Celery
 * client (bench/celery/client.py) prints the same shape, so one report covers both.
 * `zq-bench report` aggregates such lines into a table (median and min-max over repetitions),
 * the zq/Celery ratio per figure, the issue-7 target checks, and a JSON file.
 *
 * Method (the same as the Celery reference, ../shared/reference/celery-figures.md):
 * timestamps are taken in this process; a task "ends" when the broker answers a GET for it,
 * i.e. when its result is stored and visible to a client.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <unistd.h>

#include "zq.h"
#include "zq_time.h"

#define S_TAIL_MAX 1000          /* tasks: completion of a big batch is detected on its last ones */
#define S_SAMPLES 1000           /* tasks: how many of a big batch are checked afterwards */
#define S_GET_TIMEOUT 86400.0    /* seconds: the broker-side wait of a GET; stalls are caught by
                                    the client's own --stall check instead */
#define S_FLUSH_TIMEOUT 600.0    /* seconds: acknowledgement of a whole pre-fill */
#define S_WINDOW 10000           /* GETs in flight at once while collecting results */

/* ------------------------------------------------------------------------------------------
 * Small helpers
 */
static double s_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wall clock: comparable with the broker's and the worker's timestamps (same machine). */
static double s_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A record's date ("2026-11-26T12:00:00.123456Z") as epoch seconds; NAN when absent or not
 * one (zq_time_parse: the library's own reader, no sscanf/timegm: it runs three times per
 * task of the measured client). */
static double s_parse_iso(const char *s)
{
    double t;
    return s && zq_time_parse(s, &t) == ZQ_OK ? t : NAN;
}

/* CPU seconds (user + system) this process used so far. */
/* Minor page faults of this process so far: each is a trip into the kernel (costly on a
 * VM), so the figure says how much fresh memory the client library touches per task. */
static long s_faults(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_minflt : 0;
}

static double s_cpu(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static int s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array (as the Celery reference computes it). */
static double s_pct(const double *sorted, size_t n, double p)
{
    if (n == 0)
        return NAN;
    double k = ceil(p / 100.0 * (double)n) - 1;
    if (k < 0)
        k = 0;
    return sorted[(size_t)k];
}

/* Adds min/p50/p90/p99/max/mean (prefix + name + "_ms") of vals (seconds, sorted in place) to
 * obj, in milliseconds. */
static void s_add_dist_ms(cJSON *obj, const char *prefix, double *vals, size_t n)
{
    static const struct {
        const char *name;
        double p;
    } pcts[] = {{"p50", 50}, {"p90", 90}, {"p99", 99}};
    char key[64];
    if (n == 0)
        return;
    qsort(vals, n, sizeof *vals, s_cmp_double);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += vals[i];
    snprintf(key, sizeof key, "%smin_ms", prefix);
    cJSON_AddNumberToObject(obj, key, vals[0] * 1e3);
    for (size_t i = 0; i < sizeof pcts / sizeof pcts[0]; i++) {
        snprintf(key, sizeof key, "%s%s_ms", prefix, pcts[i].name);
        cJSON_AddNumberToObject(obj, key, s_pct(vals, n, pcts[i].p) * 1e3);
    }
    snprintf(key, sizeof key, "%smax_ms", prefix);
    cJSON_AddNumberToObject(obj, key, vals[n - 1] * 1e3);
    snprintf(key, sizeof key, "%smean_ms", prefix);
    cJSON_AddNumberToObject(obj, key, sum / (double)n * 1e3);
}

/* ------------------------------------------------------------------------------------------
 * Options and the output line
 */
typedef struct {
    const char *broker;       /* URL; NULL = $ZQ_BROKER or the default */
    const char *scenario;     /* labels copied into the output line */
    const char *case_name;
    int rep;
    long n;                   /* tasks */
    long warmup;              /* latency: untimed calls first */
    int ignore_result;
    double countdown;         /* countdown scenario: seconds */
    double gap_ms;            /* countdown scenario: pause between submissions */
    double t0;                /* drain: wall-clock time the workers were started */
    const char *state_file;   /* prefill writes it, drain reads it */
    const char *meta_file;    /* report: run metadata to embed */
    const char *out_file;     /* report: JSON output */
    double timeout;           /* ping: seconds */
    double stall;             /* give up when no result arrives for this long (seconds) */
    const char *task;         /* task name (default tasks.add) */
} s_opts_t;

/* The output line: caller owns the returned object (cJSON_Delete). */
static cJSON *s_line_new(const s_opts_t *o, cJSON **figures, cJSON **detail)
{
    cJSON *line = cJSON_CreateObject();
    cJSON_AddStringToObject(line, "system", "zq");
    cJSON_AddStringToObject(line, "scenario", o->scenario ? o->scenario : "");
    cJSON_AddStringToObject(line, "case", o->case_name ? o->case_name : "");
    cJSON_AddNumberToObject(line, "rep", o->rep);
    *figures = cJSON_AddObjectToObject(line, "figures");
    *detail = cJSON_AddObjectToObject(line, "detail");
    /* the machine is often shared: say how busy it was when the measurement started */
    double load = 0;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &load) == 1)
            cJSON_AddNumberToObject(*detail, "loadavg_1m", load);
        fclose(f);
    }
    return line;
}

/* Prints the line on stdout (one line, flushed) and deletes it. Returns 0, or 1 when the line
 * carries an "error" (the process exit status). */
static int s_line_emit(cJSON *line)
{
    char *text = cJSON_PrintUnformatted(line);
    int failed = cJSON_GetObjectItem(line, "error") != NULL;
    if (text) {
        fputs(text, stdout);
        fputc('\n', stdout);
        fflush(stdout);
        cJSON_free(text);
    }
    cJSON_Delete(line);
    return failed;
}

static void s_line_error(cJSON *line, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_line_error(cJSON *line, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!cJSON_GetObjectItem(line, "error"))
        cJSON_AddStringToObject(line, "error", msg);
    fprintf(stderr, "zq-bench: %s\n", msg);
}

/* ------------------------------------------------------------------------------------------
 * Collecting results: up to S_WINDOW GETs in flight on one client (zq_client_get_async /
 * zq_client_poll_result). A GET is a round trip of ~100 us; one at a time would cap collection
 * near 10k/s and measure the benchmark instead of zq. Records come back in completion order
 * and are matched to their index through a small hash of the ids.
 */
typedef struct {
    int rc;              /* ZQ_OK (SUCCESS), ZQ_EREMOTE (FAILURE/REVOKED), or an error */
    double value;        /* the result if it is a number, else NAN */
    int success;         /* state SUCCESS */
    double date_started; /* from the record (epoch s), NAN if absent */
    double date_done;
    double eta;
} s_outcome_t;

static void s_outcome_from_record(s_outcome_t *o, const cJSON *rec)
{
    const cJSON *st = cJSON_GetObjectItem(rec, "state");
    const cJSON *value = cJSON_GetObjectItem(rec, "result");
    o->success = cJSON_IsString(st) && strcmp(st->valuestring, ZQ_STATE_SUCCESS) == 0;
    o->rc = o->success ? ZQ_OK : ZQ_EREMOTE;
    o->value = cJSON_IsNumber(value) ? value->valuedouble : NAN;
    o->date_started = s_parse_iso(cJSON_GetStringValue(cJSON_GetObjectItem(rec, "date_started")));
    o->date_done = s_parse_iso(cJSON_GetStringValue(cJSON_GetObjectItem(rec, "date_done")));
    o->eta = s_parse_iso(cJSON_GetStringValue(cJSON_GetObjectItem(rec, "eta")));
}

/* The results of handles rs[0..n-1], in order, as a Celery user collects them
 * ([r.get() for r in results], bench/celery/client.py): the values only, each get() waiting
 * up to stall seconds. ZQ_OK when every task succeeded; else the first error, text in err. */
static int s_get_in_order(zq_client_t *c, zq_async_result_t **rs, size_t n, double stall,
                          s_outcome_t *out, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        cJSON *v = NULL;
        int rc = zq_result_get(rs[i], stall, &v);
        out[i] = (s_outcome_t){rc, cJSON_IsNumber(v) ? v->valuedouble : NAN, rc == ZQ_OK,
                               NAN, NAN, NAN};
        cJSON_Delete(v);
        if (rc != ZQ_OK) {
            snprintf(err, errlen, "get %s: %s (%s)", zq_result_id(rs[i]), zq_strerror(rc),
                     zq_client_errmsg(c));
            return rc;
        }
    }
    return ZQ_OK;
}

static uint64_t s_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* Waits for every id (GETs pipelined on client c) and fills out[i]. ZQ_OK when every GET
 * was answered with a terminal record (SUCCESS or not); else the first error, text in err.
 * Gives up when no result at all arrived for `stall` seconds (a stuck system should fail the
 * measurement quickly, not after every task's own timeout). */
static int s_collect(zq_client_t *c, const char *const *ids, size_t n, double stall,
                     s_outcome_t *out, char *err, size_t errlen)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    size_t *slot = calloc(cap, sizeof *slot); /* index + 1; 0 = empty */
    err[0] = 0;
    if (!slot) {
        snprintf(err, errlen, "out of memory");
        return ZQ_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        size_t h = (size_t)s_hash(ids[i]) & (cap - 1);
        while (slot[h])
            h = (h + 1) & (cap - 1);
        slot[h] = i + 1;
        out[i] = (s_outcome_t){ZQ_ETIMEOUT, NAN, 0, NAN, NAN, NAN};
    }
    size_t sent = 0, got = 0;
    int rc = ZQ_OK;
    while (got < n && rc == ZQ_OK) {
        while (sent < n && sent - got < S_WINDOW) {
            rc = zq_client_get_async(c, ids[sent], S_GET_TIMEOUT);
            if (rc != ZQ_OK) {
                snprintf(err, errlen, "get_async %s: %s (%s)", ids[sent], zq_strerror(rc),
                         zq_client_errmsg(c));
                break;
            }
            sent++;
        }
        if (rc != ZQ_OK)
            break;
        cJSON *rec = NULL;
        int prc = zq_client_poll_result(c, stall, &rec);
        const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(rec, "id"));
        size_t idx = SIZE_MAX;
        if (id) {
            size_t h = (size_t)s_hash(id) & (cap - 1);
            for (; slot[h]; h = (h + 1) & (cap - 1))
                if (strcmp(ids[slot[h] - 1], id) == 0) {
                    idx = slot[h] - 1;
                    break;
                }
        }
        if (prc == ZQ_OK && idx != SIZE_MAX && !cJSON_IsTrue(cJSON_GetObjectItem(rec, "timeout"))) {
            s_outcome_from_record(&out[idx], rec);
            got++;
        } else {
            rc = prc != ZQ_OK ? prc : ZQ_ETIMEOUT;
            if (idx == SIZE_MAX && prc == ZQ_OK)
                rc = ZQ_EPROTO;
            snprintf(err, errlen, "result of %s: %s%s%s", id ? id : "(no id)",
                     rc == ZQ_EPROTO ? "an id we did not ask for" : zq_strerror(rc),
                     prc == ZQ_OK ? "" : ": ", prc == ZQ_OK ? "" : zq_client_errmsg(c));
        }
        cJSON_Delete(rec);
    }
    /* GETs still outstanding after an error are answered later; a fresh client is used for
     * the next collection, so they cannot be confused with its records. */
    free(slot);
    return rc;
}

/* ------------------------------------------------------------------------------------------
 * Sending
 */
typedef struct {
    zq_client_t *client;
    cJSON *args; /* [i, i], reused: apply_async borrows it */
    cJSON *x, *y;
} s_sender_t;

static int s_sender_init(s_sender_t *s, const char *url)
{
    memset(s, 0, sizeof *s);
    s->client = zq_client_new(url);
    s->args = cJSON_CreateArray();
    s->x = cJSON_CreateNumber(0);
    s->y = cJSON_CreateNumber(0);
    if (!s->client || !s->args || !s->x || !s->y) {
        cJSON_Delete(s->x);
        cJSON_Delete(s->y);
        cJSON_Delete(s->args);
        zq_client_destroy(&s->client);
        return ZQ_EIO;
    }
    cJSON_AddItemToArray(s->args, s->x);
    cJSON_AddItemToArray(s->args, s->y);
    return ZQ_OK;
}

static void s_sender_fini(s_sender_t *s)
{
    cJSON_Delete(s->args);
    s->args = NULL;
    zq_client_destroy(&s->client);
}

/* Sends task(i, i). *r_p receives a handle when r_p is not NULL (caller owns it). */
static int s_send(s_sender_t *s, const char *task, long i, const zq_send_opts_t *opts,
                  zq_async_result_t **r_p)
{
    cJSON_SetNumberValue(s->x, (double)i);
    cJSON_SetNumberValue(s->y, (double)i);
    return zq_client_apply_async(s->client, task, s->args, NULL, opts, r_p);
}

static void s_destroy_handles(zq_async_result_t **rs, size_t n)
{
    if (!rs)
        return;
    for (size_t i = 0; i < n; i++)
        zq_result_destroy(&rs[i]);
    free(rs);
}

/* ------------------------------------------------------------------------------------------
 * ping: one add(1, 1) round trip; succeeds once a worker serves the broker (readiness check).
 */
static int s_cmd_ping(const s_opts_t *o)
{
    zq_client_t *c = zq_client_new(o->broker);
    if (!c) {
        fprintf(stderr, "zq-bench: cannot create a client\n");
        return 1;
    }
    zq_async_result_t *r = NULL;
    cJSON *v = NULL;
    int rc = zq_client_delay(c, o->task, zq_args("[1, 1]"), &r);
    if (rc == ZQ_OK)
        rc = zq_result_get(r, o->timeout, &v);
    int ok = rc == ZQ_OK && cJSON_IsNumber(v) && v->valuedouble == 2;
    if (!ok)
        fprintf(stderr, "zq-bench: ping: %s (%s)\n", zq_strerror(rc), zq_client_errmsg(c));
    cJSON_Delete(v);
    zq_result_destroy(&r);
    zq_client_destroy(&c);
    return ok ? 0 : 1;
}

/* ------------------------------------------------------------------------------------------
 * throughput: N tasks.add(i, i) sent as fast as one client can, then every result collected
 * (values checked). With --ignore-result the values are not stored: the end is detected when
 * the broker reports the last S_TAIL_MAX tasks terminal, then (untimed) every task is checked
 * and its date_done compared with that end.
 */
static int s_cmd_throughput(const s_opts_t *o)
{
    cJSON *fig, *det;
    cJSON *line = s_line_new(o, &fig, &det);
    size_t n = (size_t)o->n;
    zq_async_result_t **rs = calloc(n, sizeof *rs);
    const char **ids = calloc(n, sizeof *ids);
    s_outcome_t *out = calloc(n, sizeof *out);
    s_sender_t s;
    char err[300] = "";
    if (!rs || !ids || !out || s_sender_init(&s, o->broker) != ZQ_OK) {
        s_line_error(line, "out of memory or no client");
        free(ids);
        free(out);
        free(rs);
        return s_line_emit(line);
    }
    zq_send_opts_t opts = {0};
    opts.ignore_result = o->ignore_result;

    long flt0 = s_faults();
    double t0 = s_mono(), w0 = s_wall(), cpu0 = s_cpu();
    for (size_t i = 0; i < n; i++) {
        int rc = s_send(&s, o->task, (long)i, &opts, &rs[i]);
        if (rc != ZQ_OK) {
            s_line_error(line, "apply_async #%zu: %s (%s)", i, zq_strerror(rc),
                         zq_client_errmsg(s.client));
            n = i;
            break;
        }
        ids[i] = zq_result_id(rs[i]);
    }
    double t_sent = s_mono();
    int rc = zq_client_flush(s.client, S_FLUSH_TIMEOUT);
    double t_acked = s_mono();
    if (rc != ZQ_OK)
        s_line_error(line, "flush: %s (%s)", zq_strerror(rc), zq_client_errmsg(s.client));

    /* With ignore_result the clock stops when the last S_TAIL_MAX tasks are terminal. A
     * sample spread over the batch is awaited too, so that results keep arriving while the
     * batch is processed and a stuck system is noticed after o->stall seconds. */
    size_t nwait = n;
    const char **wait_ids = ids;
    s_outcome_t *wait_out = out;
    if (o->ignore_result && n > S_TAIL_MAX) {
        size_t from = n - S_TAIL_MAX, every = from / S_SAMPLES > 0 ? from / S_SAMPLES : 1;
        wait_ids = calloc(from / every + S_TAIL_MAX + 1, sizeof *wait_ids);
        wait_out = calloc(from / every + S_TAIL_MAX + 1, sizeof *wait_out);
        nwait = 0;
        for (size_t i = 0; wait_ids && i < n; i++)
            if (i >= from || i % every == 0)
                wait_ids[nwait++] = ids[i];
    }
    if (!wait_ids || !wait_out) {
        rc = ZQ_ENOMEM;
        snprintf(err, sizeof err, "out of memory");
    } else if (!o->ignore_result) {
        rc = s_get_in_order(s.client, rs, n, o->stall, out, err, sizeof err);
    } else {
        rc = s_collect(s.client, wait_ids, nwait, o->stall, wait_out, err, sizeof err);
    }
    double t_end = s_mono(), w_end = s_wall(), cpu_end = s_cpu();
    long flt_end = s_faults();
    if (rc != ZQ_OK)
        s_line_error(line, "collecting results: %s", err);
    /* untimed: the dates of each record (parsed now, when asked for) */
    for (size_t i = 0; rc == ZQ_OK && !o->ignore_result && i < n; i++) {
        double value = out[i].value;
        s_outcome_from_record(&out[i], zq_result_record(rs[i]));
        out[i].value = value;
    }
    if (wait_ids != ids) {
        free(wait_ids);
        free(wait_out);
        /* untimed: every task of the batch must have ended by the time the clock stopped */
        if (rc == ZQ_OK) {
            rc = s_collect(s.client, ids, n, o->stall, out, err, sizeof err);
            if (rc != ZQ_OK)
                s_line_error(line, "verifying: %s", err);
        }
    }

    size_t bad = 0, failed = 0, late = 0;
    double last_done = 0;
    for (size_t i = 0; i < n; i++) {
        if (!out[i].success)
            failed++;
        else if (!o->ignore_result && out[i].value != 2.0 * (double)i)
            bad++;
        if (out[i].date_done > last_done)
            last_done = out[i].date_done;
        if (out[i].date_done > w_end)
            late++;
    }
    if (failed || bad)
        s_line_error(line, "%zu tasks did not succeed, %zu wrong results", failed, bad);

    double total = t_end - t0;
    cJSON_AddNumberToObject(fig, "e2e_per_s", (double)n / total);
    cJSON_AddNumberToObject(fig, "accept_per_s", (double)n / (t_acked - t0));
    if (n)
        cJSON_AddNumberToObject(fig, "client_cpu_us_per_task", (cpu_end - cpu0) * 1e6 / (double)n);
    cJSON_AddNumberToObject(det, "n", (double)n);
    if (n)
        cJSON_AddNumberToObject(det, "client_faults_per_task",
                                (double)(flt_end - flt0) / (double)n);
    cJSON_AddNumberToObject(det, "send_s", t_sent - t0);
    cJSON_AddNumberToObject(det, "accepted_s", t_acked - t0);
    cJSON_AddNumberToObject(det, "total_s", total);
    cJSON_AddNumberToObject(det, "ignore_result", o->ignore_result);
    cJSON_AddNumberToObject(det, "bad_results", (double)bad);
    cJSON_AddNumberToObject(det, "not_success", (double)failed);
    cJSON_AddNumberToObject(det, "done_after_clock_stopped", (double)late);
    if (last_done > 0)
        cJSON_AddNumberToObject(det, "last_date_done_minus_start_s", last_done - w0);

    s_destroy_handles(rs, (size_t)o->n);
    free(ids);
    free(out);
    s_sender_fini(&s);
    return s_line_emit(line);
}

/* ------------------------------------------------------------------------------------------
 * latency: sequential apply_async(add, [1, 1]).get() round trips.
 */
static int s_cmd_latency(const s_opts_t *o)
{
    cJSON *fig, *det;
    cJSON *line = s_line_new(o, &fig, &det);
    size_t n = (size_t)o->n;
    double *lat = calloc(n ? n : 1, sizeof *lat);
    s_sender_t s;
    if (!lat || s_sender_init(&s, o->broker) != ZQ_OK) {
        free(lat);
        s_line_error(line, "out of memory or no client");
        return s_line_emit(line);
    }
    size_t done = 0;
    for (long i = -o->warmup; i < (long)n; i++) {
        zq_async_result_t *r = NULL;
        cJSON *v = NULL;
        double t = s_mono();
        int rc = s_send(&s, o->task, 1, NULL, &r);
        if (rc == ZQ_OK)
            rc = zq_result_get(r, 10, &v);
        double dt = s_mono() - t;
        int ok = rc == ZQ_OK && cJSON_IsNumber(v) && v->valuedouble == 2;
        cJSON_Delete(v);
        zq_result_destroy(&r);
        if (!ok) {
            s_line_error(line, "round trip %ld: %s (%s)", i, zq_strerror(rc),
                         zq_client_errmsg(s.client));
            break;
        }
        if (i >= 0)
            lat[done++] = dt;
    }
    cJSON_AddNumberToObject(det, "n", (double)done);
    cJSON_AddNumberToObject(det, "warmup", (double)o->warmup);
    s_add_dist_ms(fig, "", lat, done);
    /* the headline figures are p50/p90/p99/max; keep min and mean as detail */
    cJSON_AddItemToObject(det, "min_ms", cJSON_DetachItemFromObject(fig, "min_ms"));
    cJSON_AddItemToObject(det, "mean_ms", cJSON_DetachItemFromObject(fig, "mean_ms"));
    free(lat);
    s_sender_fini(&s);
    return s_line_emit(line);
}

/* ------------------------------------------------------------------------------------------
 * countdown: N tasks with countdown C, sent back to back or gap_ms apart. Lateness is the
 * record's date_started minus its eta (both stamped by zq); we also report it against the
 * client's own send time + C, and count tasks that started before their eta (must be 0).
 */
static int s_cmd_countdown(const s_opts_t *o)
{
    cJSON *fig, *det;
    cJSON *line = s_line_new(o, &fig, &det);
    size_t n = (size_t)o->n;
    zq_async_result_t **rs = calloc(n ? n : 1, sizeof *rs);
    const char **ids = calloc(n ? n : 1, sizeof *ids);
    s_outcome_t *out = calloc(n ? n : 1, sizeof *out);
    double *sent = calloc(n ? n : 1, sizeof *sent);
    double *late = calloc(n ? n : 1, sizeof *late);
    double *late_client = calloc(n ? n : 1, sizeof *late_client);
    s_sender_t s;
    char err[300] = "";
    if (!rs || !ids || !out || !sent || !late || !late_client ||
        s_sender_init(&s, o->broker) != ZQ_OK) {
        s_line_error(line, "out of memory or no client");
        free(rs), free(ids), free(out), free(sent), free(late), free(late_client);
        return s_line_emit(line);
    }
    zq_send_opts_t opts = {0};
    opts.countdown = o->countdown;
    for (size_t i = 0; i < n; i++) {
        sent[i] = s_wall();
        int rc = s_send(&s, o->task, (long)i, &opts, &rs[i]);
        if (rc != ZQ_OK) {
            s_line_error(line, "apply_async #%zu: %s", i, zq_strerror(rc));
            n = i;
            break;
        }
        ids[i] = zq_result_id(rs[i]);
        if (o->gap_ms > 0) {
            struct timespec ts = {(time_t)(o->gap_ms / 1000), (long)(fmod(o->gap_ms, 1000) * 1e6)};
            nanosleep(&ts, NULL);
        }
    }
    int rc = zq_client_flush(s.client, 60);
    if (rc != ZQ_OK)
        s_line_error(line, "flush: %s", zq_strerror(rc));
    rc = s_collect(s.client, ids, n, o->stall, out, err, sizeof err);
    if (rc != ZQ_OK)
        s_line_error(line, "collecting: %s", err);
    size_t m = 0, early = 0, missing = 0;
    for (size_t i = 0; i < n; i++) {
        if (!out[i].success || isnan(out[i].date_started) || isnan(out[i].eta)) {
            missing++;
            continue;
        }
        late[m] = out[i].date_started - out[i].eta;
        late_client[m] = out[i].date_started - (sent[i] + o->countdown);
        if (late[m] < 0)
            early++;
        m++;
    }
    if (missing)
        s_line_error(line, "%zu tasks without SUCCESS, date_started or eta in their record", missing);
    cJSON_AddNumberToObject(det, "n", (double)m);
    cJSON_AddNumberToObject(det, "countdown_s", o->countdown);
    cJSON_AddNumberToObject(det, "gap_ms", o->gap_ms);
    cJSON *dist = cJSON_AddObjectToObject(det, "late_vs_eta");
    s_add_dist_ms(dist, "", late, m);
    cJSON *distc = cJSON_AddObjectToObject(det, "late_vs_client_send_plus_countdown");
    s_add_dist_ms(distc, "", late_client, m);
    /* headline: p50/p99/max lateness vs eta, and the never-early check */
    const char *keep[] = {"p50_ms", "p99_ms", "max_ms"};
    char key[32];
    for (size_t k = 0; k < 3; k++) {
        snprintf(key, sizeof key, "late_%s", keep[k]);
        cJSON_AddNumberToObject(fig, key, cJSON_GetNumberValue(cJSON_GetObjectItem(dist, keep[k])));
    }
    cJSON_AddNumberToObject(fig, "early_count", (double)early);

    s_destroy_handles(rs, n);
    free(ids), free(out), free(sent), free(late), free(late_client);
    s_sender_fini(&s);
    return s_line_emit(line);
}

/* ------------------------------------------------------------------------------------------
 * prefill: N tasks sent and durably acknowledged (normally with no worker running), with
 * --countdown for far-future ETA tasks. Writes the ids needed by `drain` to the state file:
 *   "n N", then "tail I ID" for the last S_TAIL_MAX tasks and "sample I ID" for S_SAMPLES more.
 */
static int s_cmd_prefill(const s_opts_t *o)
{
    cJSON *fig, *det;
    cJSON *line = s_line_new(o, &fig, &det);
    size_t n = (size_t)o->n;
    size_t tail = n < S_TAIL_MAX ? n : S_TAIL_MAX;
    size_t every = n / S_SAMPLES > 0 ? n / S_SAMPLES : 1;
    FILE *f = o->state_file ? fopen(o->state_file, "w") : NULL;
    s_sender_t s;
    if (o->state_file && !f) {
        s_line_error(line, "%s: %s", o->state_file, strerror(errno));
        return s_line_emit(line);
    }
    if (s_sender_init(&s, o->broker) != ZQ_OK) {
        s_line_error(line, "no client");
        if (f)
            fclose(f);
        return s_line_emit(line);
    }
    if (f)
        fprintf(f, "n %zu\n", n);
    zq_send_opts_t opts = {0};
    opts.countdown = o->countdown;
    opts.ignore_result = o->ignore_result;
    double t0 = s_mono();
    for (size_t i = 0; i < n; i++) {
        int keep = f && (i >= n - tail || i % every == 0);
        zq_async_result_t *r = NULL;
        int rc = s_send(&s, o->task, (long)i, &opts, keep ? &r : NULL);
        if (rc != ZQ_OK) {
            s_line_error(line, "apply_async #%zu: %s (%s)", i, zq_strerror(rc),
                         zq_client_errmsg(s.client));
            n = i;
            break;
        }
        if (r)
            fprintf(f, "%s %zu %s\n", i >= n - tail ? "tail" : "sample", i, zq_result_id(r));
        zq_result_destroy(&r);
    }
    double t_sent = s_mono();
    int rc = zq_client_flush(s.client, S_FLUSH_TIMEOUT);
    double t_acked = s_mono();
    if (rc != ZQ_OK)
        s_line_error(line, "flush: %s (%s)", zq_strerror(rc), zq_client_errmsg(s.client));
    if (f && fclose(f) != 0)
        s_line_error(line, "%s: %s", o->state_file, strerror(errno));
    cJSON_AddNumberToObject(fig, "prefill_per_s", (double)n / (t_acked - t0));
    cJSON_AddNumberToObject(det, "n", (double)n);
    cJSON_AddNumberToObject(det, "send_s", t_sent - t0);
    cJSON_AddNumberToObject(det, "accepted_s", t_acked - t0);
    cJSON_AddNumberToObject(det, "countdown_s", o->countdown);
    s_sender_fini(&s);
    return s_line_emit(line);
}

/* ------------------------------------------------------------------------------------------
 * drain: after `prefill` and a worker start at wall-clock --t0, wait until the tail of the
 * batch is done (values checked), stop the clock, then check the samples (all SUCCESS and
 * finished before the clock stopped). Rate = n / (end - t0).
 */
static int s_cmd_drain(const s_opts_t *o)
{
    cJSON *fig, *det;
    cJSON *line = s_line_new(o, &fig, &det);
    FILE *f = o->state_file ? fopen(o->state_file, "r") : NULL;
    if (!f) {
        s_line_error(line, "--state FILE: %s", o->state_file ? strerror(errno) : "missing");
        return s_line_emit(line);
    }
    size_t n = 0, cap = S_TAIL_MAX + S_SAMPLES + 16, nt = 0, ns = 0;
    char **tail = calloc(cap, sizeof *tail), **samp = calloc(cap, sizeof *samp);
    long *tail_i = calloc(cap, sizeof *tail_i);
    char kind[16], id[300], err[300] = "";
    size_t idx;
    if (fscanf(f, "n %zu\n", &n) != 1)
        s_line_error(line, "%s: not a state file written by zq-bench prefill", o->state_file);
    while (tail && samp && tail_i && fscanf(f, "%15s %zu %299s\n", kind, &idx, id) == 3) {
        if (strcmp(kind, "tail") == 0 && nt < cap) {
            tail_i[nt] = (long)idx;
            tail[nt++] = strdup(id);
        } else if (ns < cap) {
            samp[ns++] = strdup(id);
        }
    }
    fclose(f);
    zq_client_t *c = NULL;
    if (!tail || !samp || !tail_i || nt == 0) {
        s_line_error(line, "%s: no task ids", o->state_file);
    } else if (!(c = zq_client_new(o->broker))) {
        s_line_error(line, "cannot create a client");
    } else {
        /* samples first: spread over the batch, their results arrive during the drain, so a
         * stuck system is noticed after o->stall seconds; the clock stops with the tail */
        const char **all = calloc(ns + nt, sizeof *all);
        s_outcome_t *aout = calloc(ns + nt, sizeof *aout);
        int rc = ZQ_ENOMEM;
        snprintf(err, sizeof err, "out of memory");
        if (all && aout) {
            memcpy(all, samp, ns * sizeof *all);
            memcpy(all + ns, tail, nt * sizeof *all);
            rc = s_collect(c, all, ns + nt, o->stall, aout, err, sizeof err);
        }
        double w_end = s_wall();
        if (rc != ZQ_OK)
            s_line_error(line, "waiting for the batch: %s", err);
        size_t bad = 0, late = 0, failed = 0;
        for (size_t i = 0; aout && i < ns + nt; i++) {
            if (!aout[i].success)
                failed++;
            else if (i >= ns && aout[i].value != 2.0 * (double)tail_i[i - ns])
                bad++;
            else if (i < ns && aout[i].date_done > w_end + 0.001)
                late++;
        }
        free(all);
        free(aout);
        if (bad || failed)
            s_line_error(line, "%zu tasks did not succeed, %zu wrong results", failed, bad);
        cJSON_AddNumberToObject(fig, "drain_per_s", (double)n / (w_end - o->t0));
        cJSON_AddNumberToObject(det, "n", (double)n);
        cJSON_AddNumberToObject(det, "drain_s", w_end - o->t0);
        cJSON_AddNumberToObject(det, "tail_checked", (double)nt);
        cJSON_AddNumberToObject(det, "samples_checked", (double)ns);
        cJSON_AddNumberToObject(det, "samples_done_after_clock_stopped", (double)late);
    }
    zq_client_destroy(&c);
    for (size_t i = 0; i < nt; i++)
        free(tail[i]);
    for (size_t i = 0; i < ns; i++)
        free(samp[i]);
    free(tail), free(samp), free(tail_i);
    return s_line_emit(line);
}

/* ------------------------------------------------------------------------------------------
 * report: aggregate result lines (JSONL, from zq-bench, client.py and run.sh) into a table
 * and a JSON document: per (system, scenario, case, figure) the median, min and max over the
 * repetitions; the zq/Celery ratio of medians; the issue-7 targets.
 */
typedef struct {
    char *system, *scenario, *case_name, *figure;
    double *v;
    size_t n, cap;
} s_series_t;

typedef struct {
    s_series_t *s;
    size_t n, cap;
} s_table_t;

static s_series_t *s_table_find(s_table_t *t, const char *sys, const char *sc, const char *cs,
                                const char *fig, int create)
{
    for (size_t i = 0; i < t->n; i++)
        if (!strcmp(t->s[i].system, sys) && !strcmp(t->s[i].scenario, sc) &&
            !strcmp(t->s[i].case_name, cs) && !strcmp(t->s[i].figure, fig))
            return &t->s[i];
    if (!create)
        return NULL;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        s_series_t *s = realloc(t->s, cap * sizeof *s);
        if (!s)
            return NULL;
        t->s = s;
        t->cap = cap;
    }
    s_series_t *s = &t->s[t->n++];
    memset(s, 0, sizeof *s);
    s->system = strdup(sys);
    s->scenario = strdup(sc);
    s->case_name = strdup(cs);
    s->figure = strdup(fig);
    return s;
}

static void s_series_add(s_series_t *s, double v)
{
    if (!s)
        return;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4;
        double *nv = realloc(s->v, cap * sizeof *nv);
        if (!nv)
            return;
        s->v = nv;
        s->cap = cap;
    }
    s->v[s->n++] = v;
}

static double s_median(double *v, size_t n)
{
    if (n == 0)
        return NAN;
    qsort(v, n, sizeof *v, s_cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Units and direction from the figure name's suffix. */
static const char *s_unit(const char *fig, int *higher_better)
{
    size_t l = strlen(fig);
#define ENDS(sfx) (l >= strlen(sfx) && strcmp(fig + l - strlen(sfx), sfx) == 0)
    *higher_better = 0;
    if (ENDS("_per_s")) {
        *higher_better = 1;
        return "tasks/s";
    }
    if (ENDS("_ms"))
        return "ms";
    if (ENDS("_us_per_task"))
        return "us/task";
    if (ENDS("_mib"))
        return "MiB";
    if (ENDS("_pct"))
        return "%";
    return "";
#undef ENDS
}

static void s_fmt(char *buf, size_t len, double v, const char *unit)
{
    if (isnan(v))
        snprintf(buf, len, "n/a");
    else if (!strcmp(unit, "tasks/s"))
        snprintf(buf, len, "%.0f", v);
    else if (!strcmp(unit, "ms"))
        snprintf(buf, len, v < 10 ? "%.3f" : "%.1f", v);
    else if (!strcmp(unit, "MiB") || !strcmp(unit, "%") || !strcmp(unit, "us/task"))
        snprintf(buf, len, "%.1f", v);
    else
        snprintf(buf, len, "%g", v);
}

static void s_fmt_series(char *buf, size_t len, s_series_t *s, double *median_out)
{
    int hb;
    const char *unit = s_unit(s->figure, &hb);
    char a[32], b[32], c[32];
    double med = s_median(s->v, s->n); /* sorts v */
    s_fmt(a, sizeof a, med, unit);
    if (s->n > 1) {
        s_fmt(b, sizeof b, s->v[0], unit);
        s_fmt(c, sizeof c, s->v[s->n - 1], unit);
        snprintf(buf, len, "%s [%s-%s]", a, b, c);
    } else {
        snprintf(buf, len, "%s", a);
    }
    if (median_out)
        *median_out = med;
}

/* The issue-7 targets, checked against zq's medians. Ratios compare two series of zq. */
typedef struct {
    const char *what;
    const char *scenario, *case_name, *figure;
    const char *base_case, *base_figure; /* non-NULL: value = figure / base (a ratio) */
    int at_least;                        /* 1: value >= limit; 0: value <= limit */
    double limit;
} s_target_t;

static const s_target_t s_targets[] = {
    {"end-to-end throughput, results stored (tasks/s)", "throughput", "prefork, results",
     "e2e_per_s", NULL, NULL, 1, 50000},
    {"the same with glibc's default malloc (tasks/s)", "throughput",
     "prefork, results, default malloc", "e2e_per_s", NULL, NULL, 1, 50000},
    {"round trip p50 (ms)", "latency", "prefork", "p50_ms", NULL, NULL, 0, 0.5},
    {"round trip p99 (ms)", "latency", "prefork", "p99_ms", NULL, NULL, 0, 2.0},
    {"countdown lateness p99, burst (ms)", "countdown", "prefork, burst", "late_p99_ms", NULL,
     NULL, 0, 5.0},
    {"countdown lateness p99, 1 ms apart (ms)", "countdown", "prefork, 1 ms apart",
     "late_p99_ms", NULL, NULL, 0, 5.0},
    {"worker RSS, -c 2 prefork, idle (MiB)", "memory", "prefork, idle", "worker_rss_mib", NULL,
     NULL, 0, 15},
    {"drain rate, 1M queued / 100k queued", "scale", "1M queued", "drain_per_s",
     "100k queued", "drain_per_s", 1, 0.8},
    {"throughput, 1M ETA pending / empty", "scale", "1M ETA pending", "e2e_per_s", "empty",
     "e2e_per_s", 1, 0.8},
    {"broker RSS with 1M queued (MiB)", "memory", "broker, 1M queued", "broker_rss_mib", NULL,
     NULL, 0, 200},
};

static char *s_read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (cap - len - 1 == 0) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf)
        buf[len] = 0;
    return buf;
}

static int s_cmd_report(const s_opts_t *o, int argc, char **argv)
{
    s_table_t t = {0};
    cJSON *doc = cJSON_CreateObject();
    cJSON *runs = cJSON_CreateArray();
    int errors = 0;
    if (o->meta_file) {
        char *text = s_read_file(o->meta_file);
        cJSON *meta = text ? cJSON_Parse(text) : NULL;
        free(text);
        if (meta)
            cJSON_AddItemToObject(doc, "meta", meta);
        else
            fprintf(stderr, "zq-bench: report: %s: not readable JSON\n", o->meta_file);
    }
    for (int a = 0; a < argc; a++) {
        FILE *f = fopen(argv[a], "r");
        if (!f) {
            fprintf(stderr, "zq-bench: report: %s: %s\n", argv[a], strerror(errno));
            errors++;
            continue;
        }
        char *buf = NULL;
        size_t cap = 0;
        ssize_t len;
        while ((len = getline(&buf, &cap, f)) > 0) {
            if (buf[0] != '{')
                continue; /* tolerate stray text */
            cJSON *l = cJSON_Parse(buf);
            if (!l)
                continue;
            const char *sys = cJSON_GetStringValue(cJSON_GetObjectItem(l, "system"));
            const char *sc = cJSON_GetStringValue(cJSON_GetObjectItem(l, "scenario"));
            const char *cs = cJSON_GetStringValue(cJSON_GetObjectItem(l, "case"));
            const cJSON *figs = cJSON_GetObjectItem(l, "figures");
            if (cJSON_GetObjectItem(l, "error"))
                errors++;
            if (sys && sc && cs && cJSON_IsObject(figs)) {
                const cJSON *it;
                cJSON_ArrayForEach(it, figs)
                {
                    if (cJSON_IsNumber(it))
                        s_series_add(s_table_find(&t, sys, sc, cs, it->string, 1), it->valuedouble);
                }
            }
            cJSON_AddItemToArray(runs, l);
        }
        free(buf);
        fclose(f);
    }

    int have_celery = 0;
    for (size_t i = 0; i < t.n; i++)
        have_celery |= !strcmp(t.s[i].system, "celery");

    cJSON *summary = cJSON_AddArrayToObject(doc, "summary");
    printf("%-11s %-32s %-22s %-8s %-30s", "scenario", "case", "figure", "unit", "zq median [min-max]");
    if (have_celery)
        printf(" %-30s %s", "Celery median [min-max]", "zq/Celery");
    printf("\n");
    for (size_t i = 0; i < t.n; i++) {
        s_series_t *z = &t.s[i];
        if (strcmp(z->system, "zq") != 0)
            continue;
        int hb;
        const char *unit = s_unit(z->figure, &hb);
        char zs[128], cs_[128] = "-", ratio[32] = "-";
        double zm = NAN, cm = NAN;
        size_t zn = z->n;
        s_fmt_series(zs, sizeof zs, z, &zm);
        s_series_t *c = s_table_find(&t, "celery", z->scenario, z->case_name, z->figure, 0);
        if (c) {
            s_fmt_series(cs_, sizeof cs_, c, &cm);
            if (cm != 0 && !isnan(cm) && !isnan(zm))
                snprintf(ratio, sizeof ratio, "%.3g", zm / cm);
        }
        printf("%-11s %-32s %-22s %-8s %-30s", z->scenario, z->case_name, z->figure, unit, zs);
        if (have_celery)
            printf(" %-30s %s%s", cs_, ratio, strcmp(ratio, "-") ? (hb ? "" : " (lower is better)") : "");
        printf("\n");
        cJSON *row = cJSON_CreateObject();
        cJSON_AddStringToObject(row, "scenario", z->scenario);
        cJSON_AddStringToObject(row, "case", z->case_name);
        cJSON_AddStringToObject(row, "figure", z->figure);
        cJSON_AddStringToObject(row, "unit", unit);
        cJSON_AddBoolToObject(row, "higher_is_better", hb);
        cJSON *zo = cJSON_AddObjectToObject(row, "zq");
        cJSON_AddNumberToObject(zo, "median", zm);
        cJSON_AddNumberToObject(zo, "min", z->v[0]);
        cJSON_AddNumberToObject(zo, "max", z->v[zn - 1]);
        cJSON_AddNumberToObject(zo, "n", (double)zn);
        if (c) {
            cJSON *co = cJSON_AddObjectToObject(row, "celery");
            cJSON_AddNumberToObject(co, "median", cm);
            cJSON_AddNumberToObject(co, "min", c->v[0]);
            cJSON_AddNumberToObject(co, "max", c->v[c->n - 1]);
            cJSON_AddNumberToObject(co, "n", (double)c->n);
            if (cm != 0 && !isnan(cm) && !isnan(zm))
                cJSON_AddNumberToObject(row, "ratio_zq_over_celery", zm / cm);
        }
        cJSON_AddItemToArray(summary, row);
    }
    /* Celery-only rows (a scenario zq did not run) are still shown. */
    for (size_t i = 0; i < t.n; i++) {
        s_series_t *c = &t.s[i];
        if (strcmp(c->system, "celery") != 0 ||
            s_table_find(&t, "zq", c->scenario, c->case_name, c->figure, 0))
            continue;
        int hb;
        char cs_[128];
        s_fmt_series(cs_, sizeof cs_, c, NULL);
        printf("%-11s %-32s %-22s %-8s %-30s %-30s -\n", c->scenario, c->case_name, c->figure,
               s_unit(c->figure, &hb), "-", cs_);
    }

    cJSON *targets = cJSON_AddArrayToObject(doc, "targets");
    int header = 0;
    for (size_t i = 0; i < sizeof s_targets / sizeof s_targets[0]; i++) {
        const s_target_t *g = &s_targets[i];
        s_series_t *s = s_table_find(&t, "zq", g->scenario, g->case_name, g->figure, 0);
        if (!s)
            continue;
        double v = s_median(s->v, s->n);
        if (g->base_case) {
            s_series_t *b = s_table_find(&t, "zq", g->scenario, g->base_case, g->base_figure, 0);
            if (!b)
                continue;
            v = v / s_median(b->v, b->n);
        }
        int met = g->at_least ? v >= g->limit : v <= g->limit;
        if (!header++)
            printf("\nissue-7 targets (zq medians):\n");
        printf("  %-4s %-48s %10.3f %s %g\n", met ? "MET" : "MISS", g->what, v,
               g->at_least ? ">=" : "<=", g->limit);
        cJSON *row = cJSON_CreateObject();
        cJSON_AddStringToObject(row, "target", g->what);
        cJSON_AddNumberToObject(row, "value", v);
        cJSON_AddStringToObject(row, "op", g->at_least ? ">=" : "<=");
        cJSON_AddNumberToObject(row, "limit", g->limit);
        cJSON_AddBoolToObject(row, "met", met);
        cJSON_AddItemToArray(targets, row);
    }
    if (errors)
        printf("\n%d measurement(s) reported an error (see \"error\" in the JSON).\n", errors);
    cJSON_AddNumberToObject(doc, "errors", errors);
    cJSON_AddItemToObject(doc, "runs", runs);

    int rc = 0;
    if (o->out_file) {
        char *text = cJSON_Print(doc);
        FILE *f = fopen(o->out_file, "w");
        if (!text || !f || fputs(text, f) < 0 || fputc('\n', f) == EOF) {
            fprintf(stderr, "zq-bench: report: cannot write %s: %s\n", o->out_file, strerror(errno));
            rc = 1;
        }
        if (f && fclose(f) != 0)
            rc = 1;
        cJSON_free(text);
    }
    cJSON_Delete(doc);
    for (size_t i = 0; i < t.n; i++) {
        free(t.s[i].system), free(t.s[i].scenario), free(t.s[i].case_name);
        free(t.s[i].figure), free(t.s[i].v);
    }
    free(t.s);
    return rc;
}

/* ------------------------------------------------------------------------------------------
 * Command line
 */
static void s_usage(FILE *f)
{
    fprintf(f,
            "usage: zq-bench [--broker URL] COMMAND [options]\n"
            "\n"
            "Measuring commands (each prints one JSON line; run them through bench/run.sh):\n"
            "  throughput [--n N] [--ignore-result]   N tasks.add(i, i) as fast as one client can,\n"
            "                                         then every result (default N 100000)\n"
            "  latency [--n N] [--warmup W]           sequential apply_async().get() (default 5000, 20)\n"
            "  countdown [--n N] [--countdown S] [--gap-ms G]\n"
            "                                         lateness of countdown tasks (default 1000, 1 s, 0)\n"
            "  prefill --state FILE [--n N] [--countdown S]\n"
            "                                         send N tasks (usually with no worker running)\n"
            "  drain --state FILE --t0 EPOCH          wait for a prefill to be processed\n"
            "  ping [--timeout S]                     one add(1, 1) round trip (readiness)\n"
            "Labels: --scenario NAME --case TEXT --rep N (copied into the JSON line).\n"
            "Other:  --task NAME (default tasks.add); --stall S: fail when no result arrives for S\n"
            "        seconds (default 30)\n"
            "\n"
            "  report [--meta FILE] [--out FILE] RESULTS.jsonl...\n"
            "                                         table of medians [min-max], zq/Celery ratios,\n"
            "                                         issue-7 targets; JSON to --out\n");
}

static int s_num(const char *opt, const char *v, double *out)
{
    char *end;
    errno = 0;
    double d = v ? strtod(v, &end) : 0;
    if (!v || errno || end == v || *end || d < 0) {
        fprintf(stderr, "zq-bench: %s needs a non-negative number, got '%s'\n", opt, v ? v : "");
        return -1;
    }
    *out = d;
    return 0;
}

int main(int argc, char **argv)
{
    s_opts_t o = {0};
    o.n = -1;
    o.warmup = 20;
    o.countdown = -1;
    o.timeout = -1;
    o.stall = 30;
    o.task = "tasks.add";
    const char *cmd = NULL;
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    int nrest = 0;
    if (!rest)
        return 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        double d = 0;
        int used = 1;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            s_usage(stdout);
            free(rest);
            return 0;
        } else if (!strcmp(a, "--broker"))
            o.broker = v;
        else if (!strcmp(a, "--scenario"))
            o.scenario = v;
        else if (!strcmp(a, "--case"))
            o.case_name = v;
        else if (!strcmp(a, "--state"))
            o.state_file = v;
        else if (!strcmp(a, "--meta"))
            o.meta_file = v;
        else if (!strcmp(a, "--out"))
            o.out_file = v;
        else if (!strcmp(a, "--task"))
            o.task = v;
        else if (!strcmp(a, "--ignore-result")) {
            o.ignore_result = 1;
            used = 0;
        } else if (!strcmp(a, "--rep") || !strcmp(a, "--n") || !strcmp(a, "--warmup") ||
                   !strcmp(a, "--countdown") || !strcmp(a, "--gap-ms") || !strcmp(a, "--t0") ||
                   !strcmp(a, "--timeout") || !strcmp(a, "--stall")) {
            if (s_num(a, v, &d) != 0) {
                free(rest);
                return 2;
            }
            if (!strcmp(a, "--rep"))
                o.rep = (int)d;
            else if (!strcmp(a, "--n"))
                o.n = (long)d;
            else if (!strcmp(a, "--warmup"))
                o.warmup = (long)d;
            else if (!strcmp(a, "--countdown"))
                o.countdown = d;
            else if (!strcmp(a, "--gap-ms"))
                o.gap_ms = d;
            else if (!strcmp(a, "--t0"))
                o.t0 = d;
            else if (!strcmp(a, "--stall"))
                o.stall = d;
            else
                o.timeout = d;
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "zq-bench: unknown option %s (see --help)\n", a);
            free(rest);
            return 2;
        } else {
            used = 0;
            if (!cmd)
                cmd = a;
            else
                rest[nrest++] = argv[i];
        }
        if (used) {
            if (!v) {
                fprintf(stderr, "zq-bench: %s needs a value\n", a);
                free(rest);
                return 2;
            }
            i++;
        }
    }
    if (!cmd) {
        s_usage(stderr);
        free(rest);
        return 2;
    }
    int rc;
    if (!strcmp(cmd, "report")) {
        rc = s_cmd_report(&o, nrest, rest);
        free(rest);
        return rc;
    }
    free(rest);
    if (nrest) {
        fprintf(stderr, "zq-bench: %s: unexpected argument (see --help)\n", cmd);
        return 2;
    }
    if (!strcmp(cmd, "ping")) {
        if (o.timeout < 0)
            o.timeout = 10;
        return s_cmd_ping(&o);
    }
    if (!strcmp(cmd, "throughput")) {
        if (o.n < 0)
            o.n = 100000;
        return s_cmd_throughput(&o);
    }
    if (!strcmp(cmd, "latency")) {
        if (o.n < 0)
            o.n = 5000;
        return s_cmd_latency(&o);
    }
    if (!strcmp(cmd, "countdown")) {
        if (o.n < 0)
            o.n = 1000;
        if (o.countdown < 0)
            o.countdown = 1;
        return s_cmd_countdown(&o);
    }
    if (!strcmp(cmd, "prefill") || !strcmp(cmd, "drain")) {
        if (!o.state_file) {
            fprintf(stderr, "zq-bench: %s needs --state FILE\n", cmd);
            return 2;
        }
        if (o.countdown < 0)
            o.countdown = 0;
        if (o.n < 0)
            o.n = 1000000;
        if (!strcmp(cmd, "prefill"))
            return s_cmd_prefill(&o);
        if (o.t0 <= 0) {
            fprintf(stderr, "zq-bench: drain needs --t0 EPOCH (when the workers were started)\n");
            return 2;
        }
        return s_cmd_drain(&o);
    }
    fprintf(stderr, "zq-bench: unknown command '%s' (see --help)\n", cmd);
    return 2;
}
