/*
 * check_store - the broker's SQLite store (broker/zq_store.h): one Suite, TCases by concern.
 * Every test works in its own temporary data directory.
 */
#include "config.h"
#include "zq.h"
#include "zq_log.h"
#include "zq_store.h"
#include "zq_time.h"

#include <check.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char s_dir[256];
static zq_store_t *s_st;

static void s_rmrf(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static void setup(void)
{
    zq_log_set_level(ZQ_LOG_ERROR);
    snprintf(s_dir, sizeof s_dir, "/tmp/check_store.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(s_dir));
    char err[256] = "";
    s_st = zq_store_open(s_dir, ZQ_STORE_SYNC_OFF, err, sizeof err);
    ck_assert_msg(s_st != NULL, "open: %s", err);
}

static void teardown(void)
{
    zq_store_destroy(&s_st);
    ck_assert_ptr_null(s_st);
    s_rmrf(s_dir);
}

static void s_reopen(void)
{
    zq_store_destroy(&s_st);
    char err[256] = "";
    s_st = zq_store_open(s_dir, ZQ_STORE_SYNC_OFF, err, sizeof err);
    ck_assert_msg(s_st != NULL, "reopen: %s", err);
}

/* Enqueue a task with a message built from its fields. */
static int64_t s_add(const char *id, const char *queue, double eta, double expires)
{
    char msg[512];
    snprintf(msg, sizeof msg,
             "{\"id\":\"%s\",\"task\":\"tasks.add\",\"args\":[2,2],\"kwargs\":{\"k\":\"v\"},"
             "\"queue\":\"%s\",\"retries\":0,\"eta\":null}",
             id, queue);
    zq_store_task_t t = {.id = id,
                         .task = "tasks.add",
                         .queue = queue,
                         .msg = msg,
                         .msglen = strlen(msg),
                         .eta = eta,
                         .expires = expires,
                         .sent = zq_now(),
                         .root_id = id};
    int64_t rid = -1;
    ck_assert_int_eq(zq_store_enqueue(s_st, &t, &rid), ZQ_OK);
    ck_assert_int_gt(rid, 0);
    return rid;
}

static cJSON *s_rec(const char *id)
{
    cJSON *r = NULL;
    ck_assert_int_eq(zq_store_get_record(s_st, id, &r), ZQ_OK);
    ck_assert_ptr_nonnull(r);
    return r;
}

static int s_set(const char *id, const char *state, const char *worker)
{
    zq_store_state_t st = {.id = id, .state = state, .worker = worker, .runtime = -1};
    return zq_store_set_state(s_st, &st, NULL);
}

/* Rows collected by a zq_store_row_fn. */
typedef struct {
    char ids[64][64];
    int64_t rids[64];
    double etas[64];
    int acks_late[64];
    char states[64][16];
    int n;
} s_rows_t;

static int s_collect(void *arg, const zq_store_row_t *row)
{
    s_rows_t *r = arg;
    ck_assert_int_lt(r->n, 64);
    snprintf(r->ids[r->n], sizeof r->ids[0], "%s", row->id);
    snprintf(r->states[r->n], sizeof r->states[0], "%s", row->state);
    r->rids[r->n] = row->rid;
    r->etas[r->n] = row->eta;
    r->acks_late[r->n] = row->acks_late;
    ck_assert_int_eq(row->msg[row->msglen - 1], '}');
    r->n++;
    return 0;
}

/* ---- round trip ---- */

START_TEST(test_enqueue_record)
{
    double before = zq_now();
    s_add("t1", "celery", 0, 0);
    cJSON *r = s_rec("t1");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "known")));
    ck_assert_str_eq(cJSON_GetObjectItem(r, "id")->valuestring, "t1");
    ck_assert_str_eq(cJSON_GetObjectItem(r, "task")->valuestring, "tasks.add");
    ck_assert_str_eq(cJSON_GetObjectItem(r, "queue")->valuestring, "celery");
    ck_assert_str_eq(cJSON_GetObjectItem(r, "state")->valuestring, "PENDING");
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(r, "result")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(r, "exception")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(r, "eta")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(r, "date_done")));
    ck_assert_int_eq(cJSON_GetObjectItem(r, "retries")->valueint, 0);
    ck_assert_str_eq(cJSON_GetObjectItem(r, "root_id")->valuestring, "t1");
    /* args/kwargs come straight from the stored message */
    cJSON *args = cJSON_GetObjectItem(r, "args");
    ck_assert(cJSON_IsArray(args));
    ck_assert_int_eq(cJSON_GetArraySize(args), 2);
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "kwargs"), "k")->valuestring,
                     "v");
    double sent;
    ck_assert_int_eq(zq_time_parse(cJSON_GetObjectItem(r, "date_sent")->valuestring, &sent),
                     ZQ_OK);
    ck_assert(sent >= before - 0.001 && sent <= zq_now() + 0.001);
    cJSON_Delete(r);
    ck_assert_str_eq(zq_store_get_state(s_st, "t1"), "PENDING");
    ck_assert_int_eq(zq_store_count_unfinished(s_st), 1);
}
END_TEST

START_TEST(test_unknown_record)
{
    cJSON *r = s_rec("nope");
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(r, "known")));
    ck_assert_str_eq(cJSON_GetObjectItem(r, "state")->valuestring, "PENDING");
    ck_assert_str_eq(cJSON_GetObjectItem(r, "id")->valuestring, "nope");
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(r, "task")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(r, "result")));
    cJSON_Delete(r);
    ck_assert_ptr_null(zq_store_get_state(s_st, "nope"));
}
END_TEST

START_TEST(test_duplicate_id)
{
    int64_t rid = s_add("dup", "celery", 0, 0);
    const char *other = "{\"id\":\"dup\",\"task\":\"tasks.other\"}";
    zq_store_task_t t = {.id = "dup", .task = "tasks.other", .queue = "q2", .msg = other,
                         .msglen = strlen(other)};
    int64_t rid2 = -1;
    ck_assert_int_eq(zq_store_enqueue(s_st, &t, &rid2), ZQ_EDUPLICATE);
    ck_assert_int_eq(rid2, -1);
    cJSON *r = s_rec("dup");
    ck_assert_str_eq(cJSON_GetObjectItem(r, "task")->valuestring, "tasks.add");
    ck_assert_str_eq(cJSON_GetObjectItem(r, "queue")->valuestring, "celery");
    cJSON_Delete(r);
    s_rows_t rows = {0};
    ck_assert_int_eq(zq_store_load_ready(s_st, "celery", 0, 10, s_collect, &rows), 1);
    ck_assert_int_eq(rows.rids[0], rid);
}
END_TEST

START_TEST(test_special_characters)
{
    /* ids and texts with quotes, backslashes and control characters stay valid JSON */
    s_add("weird\"id\\", "celery", 0, 0);
    zq_store_state_t st = {.id = "weird\"id\\", .state = "FAILURE", .worker = "w@h",
                           .exc_type = "ValueError", .exc_message = "bad \"x\"\n\ttab\x01",
                           .traceback = "line1\nline2", .runtime = 0.5};
    ck_assert_int_eq(zq_store_set_state(s_st, &st, NULL), ZQ_OK);
    cJSON *r = s_rec("weird\"id\\");
    ck_assert_str_eq(cJSON_GetObjectItem(r, "id")->valuestring, "weird\"id\\");
    cJSON *exc = cJSON_GetObjectItem(r, "exception");
    ck_assert_str_eq(cJSON_GetObjectItem(exc, "message")->valuestring, "bad \"x\"\n\ttab\x01");
    ck_assert_str_eq(cJSON_GetObjectItem(r, "traceback")->valuestring, "line1\nline2");
    cJSON_Delete(r);
}
END_TEST

/* ---- states ---- */

START_TEST(test_state_lifecycle)
{
    s_add("a", "celery", 0, 0);
    ck_assert_int_eq(s_set("a", "RECEIVED", "w1@h"), ZQ_OK);
    ck_assert_str_eq(zq_store_get_state(s_st, "a"), "RECEIVED");
    zq_store_state_t st = {.id = "a", .state = "STARTED", .worker = "w1@h", .acks_late = 1,
                           .runtime = -1};
    ck_assert_int_eq(zq_store_set_state(s_st, &st, NULL), ZQ_OK);
    /* a late RECEIVED never moves a task back */
    ck_assert_int_eq(s_set("a", "RECEIVED", "w1@h"), ZQ_ESTATE);
    ck_assert_str_eq(zq_store_get_state(s_st, "a"), "STARTED");
    s_rows_t rows = {0};
    ck_assert_int_eq(zq_store_load_inflight(s_st, s_collect, &rows), 1);
    ck_assert_int_eq(rows.acks_late[0], 1);
    zq_store_state_t ok = {.id = "a", .state = "SUCCESS", .worker = "w1@h", .result = "{\"n\":4}",
                           .runtime = 0.25};
    ck_assert_int_eq(zq_store_set_state(s_st, &ok, NULL), ZQ_OK);
    cJSON *r = s_rec("a");
    ck_assert_str_eq(cJSON_GetObjectItem(r, "state")->valuestring, "SUCCESS");
    ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "result"), "n")->valueint, 4);
    ck_assert_str_eq(cJSON_GetObjectItem(r, "worker")->valuestring, "w1@h");
    ck_assert(fabs(cJSON_GetObjectItem(r, "runtime")->valuedouble - 0.25) < 1e-9);
    ck_assert(cJSON_IsString(cJSON_GetObjectItem(r, "date_received")));
    ck_assert(cJSON_IsString(cJSON_GetObjectItem(r, "date_started")));
    ck_assert(cJSON_IsString(cJSON_GetObjectItem(r, "date_done")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(r, "exception")));
    cJSON_Delete(r);
    ck_assert_int_eq(zq_store_count_unfinished(s_st), 0);
}
END_TEST

START_TEST(test_terminal_idempotent)
{
    s_add("b", "celery", 0, 0);
    zq_store_state_t ok = {.id = "b", .state = "SUCCESS", .result = "4", .runtime = 1};
    ck_assert_int_eq(zq_store_set_state(s_st, &ok, NULL), ZQ_OK);
    /* duplicate deliveries and later states change nothing */
    ck_assert_int_eq(zq_store_set_state(s_st, &ok, NULL), ZQ_ESTATE);
    zq_store_state_t fail = {.id = "b", .state = "FAILURE", .exc_type = "X", .runtime = -1};
    ck_assert_int_eq(zq_store_set_state(s_st, &fail, NULL), ZQ_ESTATE);
    ck_assert_int_eq(s_set("b", "STARTED", "w"), ZQ_ESTATE);
    ck_assert_int_eq(s_set("b", "RETRY", "w"), ZQ_ESTATE);
    ck_assert_int_eq(zq_store_requeue(s_st, "b"), ZQ_ESTATE);
    ck_assert_int_eq(zq_store_revoke_queued(s_st, "b", 0, "revoked", zq_now(), NULL), ZQ_ESTATE);
    cJSON *r = s_rec("b");
    ck_assert_str_eq(cJSON_GetObjectItem(r, "state")->valuestring, "SUCCESS");
    ck_assert_int_eq(cJSON_GetObjectItem(r, "result")->valueint, 4);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(r, "exception")));
    cJSON_Delete(r);
}
END_TEST

START_TEST(test_terminal_by_rid)
{
    /* the broker passes the row id it got from enqueue: the same end as by id, and a row id
     * that is not the task's (stale) falls back to the id and changes no other task */
    int64_t ra = s_add("ra", "celery", 0, 0);
    int64_t rb = s_add("rb", "celery", 0, 0);
    zq_store_state_t ok = {.id = "ra", .state = "SUCCESS", .result = "7", .runtime = 1,
                           .rid = ra};
    ck_assert_int_eq(zq_store_set_state(s_st, &ok, NULL), ZQ_OK);
    ck_assert_int_eq(zq_store_set_state(s_st, &ok, NULL), ZQ_ESTATE); /* once only */
    zq_store_state_t stale = {.id = "rb", .state = "FAILURE", .exc_type = "X", .runtime = -1,
                              .rid = ra};
    ck_assert_int_eq(zq_store_set_state(s_st, &stale, NULL), ZQ_OK);
    zq_store_state_t gone = {.id = "nope", .state = "SUCCESS", .runtime = -1, .rid = rb};
    ck_assert_int_eq(zq_store_set_state(s_st, &gone, NULL), ZQ_ENOTFOUND);
    cJSON *r = s_rec("ra");
    ck_assert_str_eq(cJSON_GetObjectItem(r, "state")->valuestring, "SUCCESS");
    ck_assert_int_eq(cJSON_GetObjectItem(r, "result")->valueint, 7);
    cJSON_Delete(r);
    r = s_rec("rb");
    ck_assert_str_eq(cJSON_GetObjectItem(r, "state")->valuestring, "FAILURE");
    cJSON_Delete(r);
    ck_assert_int_eq(zq_store_count_unfinished(s_st), 0);
}
END_TEST

START_TEST(test_no_ephemeral_plans)
{
    /* every statement the store prepares runs without an ephemeral table: a 3-term
     * "state NOT IN (...)" in the terminal UPDATEs built one per task */
    char names[256];
    int n = zq_store_ephemeral_plans(s_st, names, sizeof names);
    ck_assert_msg(n == 0, "statements with an ephemeral table: %d (%s)", n, names);
}
END_TEST

START_TEST(test_state_errors)
{
    ck_assert_int_eq(s_set("ghost", "SUCCESS", NULL), ZQ_ENOTFOUND);
    s_add("c", "celery", 0, 0);
    ck_assert_int_eq(s_set("c", "PENDING", NULL), ZQ_EINVAL);
    ck_assert_int_eq(s_set("c", "DONE", NULL), ZQ_EINVAL);
    ck_assert_int_eq(s_set("c", NULL, NULL), ZQ_EINVAL);
    ck_assert_str_eq(zq_store_get_state(s_st, "c"), "PENDING");
}
END_TEST

START_TEST(test_failure_and_ignore_result)
{
    s_add("f", "celery", 0, 0);
    zq_store_state_t st = {.id = "f", .state = "FAILURE", .worker = "w", .exc_type = "ZeroDivisionError",
                           .exc_message = "division by zero", .traceback = "Traceback...",
                           .runtime = 0.1};
    ck_assert_int_eq(zq_store_set_state(s_st, &st, NULL), ZQ_OK);
    cJSON *r = s_rec("f");
    cJSON *exc = cJSON_GetObjectItem(r, "exception");
    ck_assert_str_eq(cJSON_GetObjectItem(exc, "type")->valuestring, "ZeroDivisionError");
    ck_assert_str_eq(cJSON_GetObjectItem(exc, "message")->valuestring, "division by zero");
    ck_assert_str_eq(cJSON_GetObjectItem(r, "traceback")->valuestring, "Traceback...");
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(r, "result")));
    cJSON_Delete(r);

    const char *msg = "{\"id\":\"ig\",\"task\":\"t.x\"}";
    zq_store_task_t t = {.id = "ig", .task = "t.x", .queue = "celery", .msg = msg,
                         .msglen = strlen(msg), .ignore_result = 1};
    ck_assert_int_eq(zq_store_enqueue(s_st, &t, NULL), ZQ_OK);
    zq_store_state_t ok = {.id = "ig", .state = "SUCCESS", .result = "[1,2,3]", .runtime = 0};
    ck_assert_int_eq(zq_store_set_state(s_st, &ok, NULL), ZQ_OK);
    r = s_rec("ig");
    ck_assert_str_eq(cJSON_GetObjectItem(r, "state")->valuestring, "SUCCESS");
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(r, "result"))); /* the state, not the value */
    cJSON_Delete(r);
}
END_TEST

static int s_msg(void *arg, const zq_store_row_t *row)
{
    snprintf(arg, 512, "%s", row->msg);
    return 0;
}

START_TEST(test_retry)
{
    int64_t rid = s_add("r", "q1", 0, 0);
    ck_assert_int_eq(s_set("r", "STARTED", "w"), ZQ_OK);
    double eta = zq_now() + 30;
    zq_store_state_t st = {.id = "r", .state = "RETRY", .worker = "w", .exc_type = "IOError",
                           .exc_message = "again", .eta = eta, .runtime = -1};
    zq_store_where_t where;
    ck_assert_int_eq(zq_store_set_state(s_st, &st, &where), ZQ_OK);
    ck_assert_int_eq(where.rid, rid);
    ck_assert_str_eq(where.queue, "q1");
    ck_assert(fabs(where.eta - eta) < 1e-3);
    cJSON *r = s_rec("r");
    ck_assert_str_eq(cJSON_GetObjectItem(r, "state")->valuestring, "RETRY");
    ck_assert_int_eq(cJSON_GetObjectItem(r, "retries")->valueint, 1);
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "exception"), "type")->valuestring,
                     "IOError");
    cJSON_Delete(r);
    /* scheduled again, and the stored message says so (the next TASK carries it) */
    s_rows_t rows = {0};
    ck_assert_int_eq(zq_store_load_scheduled(s_st, "q1", -INFINITY, 0, INFINITY, 10, s_collect,
                                             &rows),
                     1);
    ck_assert_str_eq(rows.ids[0], "r");
    ck_assert_str_eq(rows.states[0], "RETRY");
    s_rows_t none = {0};
    ck_assert_int_eq(zq_store_load_ready(s_st, "q1", 0, 10, s_collect, &none), 0);
    char text[512] = "";
    ck_assert_int_eq(zq_store_load_task(s_st, rid, s_msg, text), ZQ_OK);
    cJSON *msg = cJSON_Parse(text);
    ck_assert_ptr_nonnull(msg);
    ck_assert_int_eq(cJSON_GetObjectItem(msg, "retries")->valueint, 1);
    double meta;
    ck_assert_int_eq(zq_time_parse(cJSON_GetObjectItem(msg, "eta")->valuestring, &meta), ZQ_OK);
    ck_assert(fabs(meta - eta) < 1e-3);
    cJSON_Delete(msg);
    /* the retry runs: RECEIVED is allowed from RETRY */
    ck_assert_int_eq(s_set("r", "RECEIVED", "w2"), ZQ_OK);
}
END_TEST

START_TEST(test_requeue)
{
    s_add("q", "celery", 0, 0);
    ck_assert_int_eq(zq_store_requeue(s_st, "q"), ZQ_OK); /* PENDING stays PENDING */
    ck_assert_int_eq(s_set("q", "RECEIVED", "w"), ZQ_OK);
    ck_assert_int_eq(zq_store_requeue(s_st, "q"), ZQ_OK);
    ck_assert_str_eq(zq_store_get_state(s_st, "q"), "PENDING");
    ck_assert_int_eq(s_set("q", "STARTED", "w"), ZQ_OK);
    ck_assert_int_eq(zq_store_requeue(s_st, "q"), ZQ_OK);
    ck_assert_str_eq(zq_store_get_state(s_st, "q"), "PENDING");
    ck_assert_int_eq(zq_store_requeue(s_st, "nope"), ZQ_ENOTFOUND);
}
END_TEST

/* ---- scheduling and paging ---- */

START_TEST(test_eta_due)
{
    double now = zq_now();
    s_add("late", "celery", now + 100, 0);
    s_add("soon", "celery", now + 1, 0);
    s_add("past", "celery", now - 5, 0);
    s_add("ready", "celery", 0, 0);
    s_add("other", "q2", now - 1, 0);
    s_rows_t rows = {0};
    /* due within 2 s, in eta order; ready tasks are not scheduled ones */
    ck_assert_int_eq(zq_store_load_scheduled(s_st, "celery", -INFINITY, 0, now + 2, 10,
                                             s_collect, &rows),
                     2);
    ck_assert_str_eq(rows.ids[0], "past");
    ck_assert_str_eq(rows.ids[1], "soon");
    /* resume after a cursor */
    s_rows_t more = {0};
    ck_assert_int_eq(zq_store_load_scheduled(s_st, "celery", rows.etas[1], rows.rids[1], INFINITY,
                                             10, s_collect, &more),
                     1);
    ck_assert_str_eq(more.ids[0], "late");
    /* every queue */
    s_rows_t all = {0};
    ck_assert_int_eq(zq_store_load_scheduled(s_st, NULL, -INFINITY, 0, INFINITY, 10, s_collect,
                                             &all),
                     4);
    ck_assert_str_eq(all.ids[0], "past");
    ck_assert_str_eq(all.ids[1], "other");
    s_rows_t ready = {0};
    ck_assert_int_eq(zq_store_load_ready(s_st, "celery", 0, 10, s_collect, &ready), 1);
    ck_assert_str_eq(ready.ids[0], "ready");
}
END_TEST

START_TEST(test_ready_paging)
{
    /* the broker keeps a few in memory and reads the rest back in order */
    char id[16];
    for (int i = 0; i < 10; i++) {
        snprintf(id, sizeof id, "p%d", i);
        s_add(id, "celery", 0, 0);
    }
    ck_assert_int_eq(s_set("p4", "RECEIVED", "w"), ZQ_OK); /* not waiting: skipped */
    int64_t cursor = 0;
    int seen = 0, pages = 0;
    for (;;) {
        s_rows_t rows = {0};
        int n = zq_store_load_ready(s_st, "celery", cursor, 3, s_collect, &rows);
        ck_assert_int_ge(n, 0);
        if (!n)
            break;
        pages++;
        for (int i = 0; i < rows.n; i++) {
            int want = seen < 4 ? seen : seen + 1;
            snprintf(id, sizeof id, "p%d", want);
            ck_assert_str_eq(rows.ids[i], id);
            ck_assert_int_gt(rows.rids[i], cursor);
            cursor = rows.rids[i];
            seen++;
        }
    }
    ck_assert_int_eq(seen, 9);
    ck_assert_int_eq(pages, 3);
}
END_TEST

static int s_counts(void *arg, const char *queue, long ready, long scheduled)
{
    long *c = arg;
    if (!strcmp(queue, "celery")) {
        c[0] = ready;
        c[1] = scheduled;
    } else {
        c[2] += ready + scheduled;
    }
    return 0;
}

START_TEST(test_purge_counts)
{
    int64_t rids[6];
    char id[16];
    for (int i = 0; i < 6; i++) {
        snprintf(id, sizeof id, "x%d", i);
        rids[i] = s_add(id, "celery", 0, 0);
    }
    double now = zq_now();
    s_add("e1", "celery", now + 50, 0);
    s_add("e2", "celery", now + 60, 0);
    s_add("keep", "other", 0, 0);
    ck_assert_int_eq(s_set("x5", "STARTED", "w"), ZQ_OK); /* running: never purged */
    long c[3] = {0, 0, 0};
    ck_assert_int_eq(zq_store_queue_counts(s_st, s_counts, c), ZQ_OK);
    ck_assert_int_eq(c[0], 5);
    ck_assert_int_eq(c[1], 2);
    ck_assert_int_eq(c[2], 1);
    /* the broker had x0, x1 in memory: it revokes those by rid, then the disk part */
    ck_assert_int_eq(zq_store_revoke_queued(s_st, NULL, rids[0], "purged", now, NULL), ZQ_OK);
    ck_assert_int_eq(zq_store_revoke_queued(s_st, NULL, rids[1], "purged", now, NULL), ZQ_OK);
    long n = -1;
    ck_assert_int_eq(zq_store_purge_disk(s_st, "celery", rids[1], -INFINITY, 0, now, &n), ZQ_OK);
    ck_assert_int_eq(n, 3 + 2);
    memset(c, 0, sizeof c);
    ck_assert_int_eq(zq_store_queue_counts(s_st, s_counts, c), ZQ_OK);
    ck_assert_int_eq(c[0], 0);
    ck_assert_int_eq(c[1], 0);
    ck_assert_int_eq(c[2], 1);
    cJSON *r = s_rec("x3");
    ck_assert_str_eq(cJSON_GetObjectItem(r, "state")->valuestring, "REVOKED");
    cJSON *exc = cJSON_GetObjectItem(r, "exception");
    ck_assert_str_eq(cJSON_GetObjectItem(exc, "type")->valuestring, "TaskRevokedError");
    ck_assert_str_eq(cJSON_GetObjectItem(exc, "message")->valuestring, "purged");
    cJSON_Delete(r);
    ck_assert_str_eq(zq_store_get_state(s_st, "x5"), "STARTED");
    /* nothing left: a second purge counts 0 */
    ck_assert_int_eq(zq_store_purge_disk(s_st, "celery", 0, -INFINITY, 0, now, &n), ZQ_OK);
    ck_assert_int_eq(n, 0);
}
END_TEST

START_TEST(test_revoke_queued)
{
    s_add("rq", "q9", zq_now() + 100, 0);
    zq_store_where_t where;
    ck_assert_int_eq(zq_store_revoke_queued(s_st, "rq", 0, "revoked", zq_now(), &where), ZQ_OK);
    ck_assert_str_eq(where.queue, "q9");
    ck_assert(where.eta > 0);
    ck_assert_str_eq(zq_store_get_state(s_st, "rq"), "REVOKED");
    s_add("run", "q9", 0, 0);
    ck_assert_int_eq(s_set("run", "STARTED", "w"), ZQ_OK);
    ck_assert_int_eq(zq_store_revoke_queued(s_st, "run", 0, "revoked", zq_now(), NULL),
                     ZQ_ESTATE);
    ck_assert_int_eq(zq_store_revoke_queued(s_st, "ghost", 0, "revoked", zq_now(), NULL),
                     ZQ_ESTATE);
}
END_TEST

/* ---- durability ---- */

static int s_ids(void *arg, const char *id)
{
    s_rows_t *r = arg;
    snprintf(r->ids[r->n++], sizeof r->ids[0], "%s", id);
    return 0;
}

START_TEST(test_revoke_durable)
{
    ck_assert_int_eq(zq_store_is_revoked(s_st, "v1"), 0);
    ck_assert_int_eq(zq_store_revoke_add(s_st, "v1", zq_now()), ZQ_OK);
    ck_assert_int_eq(zq_store_revoke_add(s_st, "v2", zq_now()), ZQ_OK);
    ck_assert_int_eq(zq_store_revoke_add(s_st, "v1", zq_now()), ZQ_OK); /* again: fine */
    s_reopen();
    ck_assert_int_eq(zq_store_is_revoked(s_st, "v1"), 1);
    ck_assert_int_eq(zq_store_is_revoked(s_st, "v2"), 1);
    ck_assert_int_eq(zq_store_is_revoked(s_st, "v3"), 0);
    s_rows_t r = {0};
    ck_assert_int_eq(zq_store_revoked_list(s_st, 10, s_ids, &r), 2);
    ck_assert_str_eq(r.ids[0], "v2"); /* most recent first */
    ck_assert_str_eq(r.ids[1], "v1");
    s_rows_t one = {0};
    ck_assert_int_eq(zq_store_revoked_list(s_st, 1, s_ids, &one), 1);
}
END_TEST

START_TEST(test_recover_after_reopen)
{
    ck_assert_int_eq(zq_store_begin(s_st), ZQ_OK);
    s_add("w1", "celery", 0, 0);
    s_add("w2", "celery", 0, 0);
    s_add("w3", "celery", zq_now() + 100, 0);
    s_add("done", "celery", 0, 0);
    ck_assert_int_eq(s_set("w2", "RECEIVED", "wk"), ZQ_OK);
    zq_store_state_t st = {.id = "w3", .state = "STARTED", .worker = "wk", .acks_late = 1,
                           .runtime = -1};
    ck_assert_int_eq(zq_store_set_state(s_st, &st, NULL), ZQ_OK);
    ck_assert_int_eq(s_set("done", "SUCCESS", "wk"), ZQ_OK);
    ck_assert(zq_store_in_tx(s_st));
    s_reopen(); /* destroy commits what is pending */
    ck_assert_int_eq(zq_store_count_unfinished(s_st), 3);
    s_rows_t ready = {0};
    ck_assert_int_eq(zq_store_load_ready(s_st, "celery", 0, 10, s_collect, &ready), 1);
    ck_assert_str_eq(ready.ids[0], "w1");
    s_rows_t fl = {0};
    ck_assert_int_eq(zq_store_load_inflight(s_st, s_collect, &fl), 2);
    for (int i = 0; i < 2; i++) {
        if (!strcmp(fl.ids[i], "w3")) {
            ck_assert_str_eq(fl.states[i], "STARTED");
            ck_assert_int_eq(fl.acks_late[i], 1);
            ck_assert(fl.etas[i] > 0);
        } else {
            ck_assert_str_eq(fl.ids[i], "w2");
            ck_assert_str_eq(fl.states[i], "RECEIVED");
        }
    }
    ck_assert_str_eq(zq_store_get_state(s_st, "done"), "SUCCESS");
}
END_TEST

START_TEST(test_rollback)
{
    s_add("kept", "celery", 0, 0);
    ck_assert_int_eq(zq_store_begin(s_st), ZQ_OK);
    ck_assert_int_eq(zq_store_begin(s_st), ZQ_OK); /* nested: a no-op */
    s_add("gone", "celery", 0, 0);
    zq_store_rollback(s_st);
    ck_assert(!zq_store_in_tx(s_st));
    ck_assert_ptr_null(zq_store_get_state(s_st, "gone"));
    ck_assert_str_eq(zq_store_get_state(s_st, "kept"), "PENDING");
    ck_assert_int_eq(zq_store_commit(s_st), ZQ_OK); /* none open: a no-op */
    ck_assert_int_eq(zq_store_begin(s_st), ZQ_OK);
    s_add("committed", "celery", 0, 0);
    ck_assert_int_eq(zq_store_commit(s_st), ZQ_OK);
    s_reopen();
    ck_assert_str_eq(zq_store_get_state(s_st, "committed"), "PENDING");
}
END_TEST

START_TEST(test_find)
{
    int64_t rid = s_add("fnd", "qq", 0, 0);
    s_rows_t r = {0};
    ck_assert_int_eq(zq_store_find(s_st, "fnd", s_collect, &r), ZQ_OK);
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(r.rids[0], rid);
    ck_assert_int_eq(zq_store_find(s_st, "nope", s_collect, &r), ZQ_ENOTFOUND);
    ck_assert_int_eq(zq_store_load_task(s_st, rid + 100, s_collect, &r), ZQ_ENOTFOUND);
}
END_TEST

/* ---- opening ---- */

START_TEST(test_open_errors)
{
    char err[256] = "";
    /* a data dir that cannot be created (a file in the way) */
    char path[300];
    snprintf(path, sizeof path, "%s/file", s_dir);
    FILE *fp = fopen(path, "w");
    ck_assert_ptr_nonnull(fp);
    fclose(fp);
    char sub[320];
    snprintf(sub, sizeof sub, "%s/data", path);
    ck_assert_ptr_null(zq_store_open(sub, ZQ_STORE_SYNC_NORMAL, err, sizeof err));
    ck_assert_msg(strstr(err, "cannot create data dir") != NULL, "%s", err);
    ck_assert_ptr_null(zq_store_open(path, ZQ_STORE_SYNC_NORMAL, err, sizeof err));
    ck_assert_msg(strstr(err, "not a directory") != NULL, "%s", err);
    ck_assert_ptr_null(zq_store_open("", ZQ_STORE_SYNC_NORMAL, err, sizeof err));
    /* a read-only directory (meaningless for root, who may write anyway) */
    if (geteuid() != 0) {
        char ro[300];
        snprintf(ro, sizeof ro, "%s/ro", s_dir);
        ck_assert_int_eq(mkdir(ro, 0500), 0);
        ck_assert_ptr_null(zq_store_open(ro, ZQ_STORE_SYNC_NORMAL, err, sizeof err));
        ck_assert_msg(strstr(err, "not writable") != NULL, "%s", err);
    }
    /* one broker per data dir */
    ck_assert_ptr_null(zq_store_open(s_dir, ZQ_STORE_SYNC_NORMAL, err, sizeof err));
    ck_assert_msg(strstr(err, "in use by another zq-broker") != NULL, "%s", err);
}
END_TEST

START_TEST(test_created_mode)
{
    char sub[300];
    snprintf(sub, sizeof sub, "%s/a/b", s_dir);
    char err[256] = "";
    zq_store_t *st = zq_store_open(sub, ZQ_STORE_SYNC_FULL, err, sizeof err);
    ck_assert_msg(st != NULL, "%s", err);
    struct stat sb;
    ck_assert_int_eq(stat(sub, &sb), 0);
    ck_assert_int_eq(sb.st_mode & 0777, 0700);
    zq_store_destroy(&st);
    zq_store_destroy(&st); /* NULL-safe */
}
END_TEST

/* ---- monitor queries: counts and listings (TASKS, STATS) ---- */

typedef struct {
    char names[8][64];
    long succ[8], fail[8], retr[8];
    int n;
} s_wc_t;

static int s_wc_collect(void *arg, const char *worker, long succeeded, long failed, long retried)
{
    s_wc_t *w = arg;
    ck_assert_int_lt(w->n, 8);
    snprintf(w->names[w->n], sizeof w->names[0], "%s", worker);
    w->succ[w->n] = succeeded;
    w->fail[w->n] = failed;
    w->retr[w->n] = retried;
    w->n++;
    return 0;
}

static int s_wc_find(const s_wc_t *w, const char *name)
{
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->names[i], name))
            return i;
    return -1;
}

/* A mix of every state: p1 p2 PENDING, e1 scheduled, r1 RECEIVED, s1 STARTED, d1 d2
 * SUCCESS (w1, w2), f1 FAILURE (w1), y1 RETRY (w2, then due again), v1 REVOKED (queued). */
static void s_mix(void)
{
    s_add("p1", "celery", 0, 0);
    s_add("p2", "other", 0, 0);
    s_add("e1", "celery", zq_now() + 3600, 0);
    s_add("r1", "celery", 0, 0);
    ck_assert_int_eq(s_set("r1", "RECEIVED", "w1"), ZQ_OK);
    s_add("s1", "celery", 0, 0);
    ck_assert_int_eq(s_set("s1", "STARTED", "w2"), ZQ_OK);
    s_add("d1", "celery", 0, 0);
    ck_assert_int_eq(s_set("d1", "SUCCESS", "w1"), ZQ_OK);
    s_add("d2", "celery", 0, 0);
    ck_assert_int_eq(s_set("d2", "SUCCESS", "w2"), ZQ_OK);
    s_add("f1", "celery", 0, 0);
    ck_assert_int_eq(s_set("f1", "FAILURE", "w1"), ZQ_OK);
    s_add("y1", "celery", 0, 0);
    ck_assert_int_eq(s_set("y1", "RETRY", "w2"), ZQ_OK);
    s_add("v1", "celery", 0, 0);
    ck_assert_int_eq(zq_store_revoke_queued(s_st, "v1", 0, "revoked", zq_now(), NULL), ZQ_OK);
}

static void s_check_mix_counts(void)
{
    zq_store_counts_t c;
    ck_assert_int_eq(zq_store_counts(s_st, &c), ZQ_OK);
    ck_assert_int_eq(c.pending, 3); /* p1 p2 e1 */
    ck_assert_int_eq(c.received, 1);
    ck_assert_int_eq(c.started, 1);
    ck_assert_int_eq(c.retry, 1);
    ck_assert_int_eq(c.success, 2);
    ck_assert_int_eq(c.failure, 1);
    ck_assert_int_eq(c.revoked, 1);
    ck_assert_int_eq(c.total, 10);
    ck_assert_int_eq(c.retried, 1);
    s_wc_t w = {0};
    ck_assert_int_eq(zq_store_worker_counts(s_st, s_wc_collect, &w), ZQ_OK);
    ck_assert_int_eq(w.n, 2);
    int i1 = s_wc_find(&w, "w1"), i2 = s_wc_find(&w, "w2");
    ck_assert_int_ge(i1, 0);
    ck_assert_int_ge(i2, 0);
    ck_assert_int_eq(w.succ[i1], 1);
    ck_assert_int_eq(w.fail[i1], 1);
    ck_assert_int_eq(w.retr[i1], 0);
    ck_assert_int_eq(w.succ[i2], 1);
    ck_assert_int_eq(w.fail[i2], 0);
    ck_assert_int_eq(w.retr[i2], 1);
}

START_TEST(test_counts_scan_and_incremental)
{
    /* counted by the first scan */
    s_mix();
    s_check_mix_counts();
    /* then by the writes: y1 runs again on w1 and succeeds; a lost task fails on w2 */
    ck_assert_int_eq(s_set("y1", "SUCCESS", "w1"), ZQ_OK);
    ck_assert_int_eq(s_set("s1", "FAILURE", NULL), ZQ_OK); /* worker from the row: w2 */
    ck_assert_int_eq(s_set("d1", "FAILURE", "w1"), ZQ_ESTATE); /* terminal: not counted */
    zq_store_counts_t c;
    ck_assert_int_eq(zq_store_counts(s_st, &c), ZQ_OK);
    ck_assert_int_eq(c.success, 3);
    ck_assert_int_eq(c.failure, 2);
    ck_assert_int_eq(c.retry, 0);
    ck_assert_int_eq(c.started, 0);
    ck_assert_int_eq(c.total, 10);
    s_wc_t w = {0};
    ck_assert_int_eq(zq_store_worker_counts(s_st, s_wc_collect, &w), ZQ_OK);
    int i1 = s_wc_find(&w, "w1"), i2 = s_wc_find(&w, "w2");
    ck_assert_int_eq(w.succ[i1], 2);
    ck_assert_int_eq(w.fail[i2], 1);
    /* a purge counts as revoked */
    long n = 0;
    ck_assert_int_eq(zq_store_purge_disk(s_st, "celery", 0, -INFINITY, 0, zq_now(), &n), ZQ_OK);
    ck_assert_int_eq(n, 2); /* p1, e1 */
    ck_assert_int_eq(zq_store_counts(s_st, &c), ZQ_OK);
    ck_assert_int_eq(c.revoked, 3);
    ck_assert_int_eq(c.pending, 1);
    /* what a restart's scan finds is what the writes counted */
    zq_store_counts_t before = c;
    s_reopen();
    ck_assert_int_eq(zq_store_counts(s_st, &c), ZQ_OK);
    ck_assert_int_eq(memcmp(&before, &c, sizeof c), 0);
}
END_TEST

START_TEST(test_counts_rollback_rescans)
{
    s_mix();
    s_check_mix_counts();
    ck_assert_int_eq(zq_store_begin(s_st), ZQ_OK);
    ck_assert_int_eq(s_set("r1", "SUCCESS", "w1"), ZQ_OK);
    zq_store_counts_t c;
    ck_assert_int_eq(zq_store_counts(s_st, &c), ZQ_OK);
    ck_assert_int_eq(c.success, 3); /* the open transaction sees its own write */
    zq_store_rollback(s_st);
    s_check_mix_counts(); /* the counters forgot it */
}
END_TEST

/* Ids of a listing, in order, into ids[] (at most 16). */
static int s_list(const zq_store_query_t *q, char ids[16][16], long *total)
{
    char *text = NULL;
    size_t len = 0;
    int trunc = 0;
    int rc = zq_store_list_tasks(s_st, q, &text, &len, total, &trunc);
    if (rc != ZQ_OK)
        return -rc * 1000;
    ck_assert_uint_eq(strlen(text), len);
    cJSON *arr = cJSON_Parse(text);
    free(text);
    ck_assert(cJSON_IsArray(arr));
    int n = 0;
    const cJSON *rec;
    cJSON_ArrayForEach(rec, arr)
    {
        ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(rec, "known")));
        ck_assert_int_lt(n, 16);
        snprintf(ids[n++], 16, "%s", cJSON_GetObjectItem(rec, "id")->valuestring);
    }
    cJSON_Delete(arr);
    return n;
}

START_TEST(test_list_filters)
{
    s_mix();
    char ids[16][16];
    long total;
    zq_store_query_t q = {0};
    /* default: newest first, total from the counters */
    ck_assert_int_eq(s_list(&q, ids, &total), 10);
    ck_assert_int_eq(total, 10);
    ck_assert_str_eq(ids[0], "v1");
    ck_assert_str_eq(ids[9], "p1");
    /* paging */
    q.limit = 3;
    q.offset = 2;
    ck_assert_int_eq(s_list(&q, ids, &total), 3);
    ck_assert_int_eq(total, 10);
    ck_assert_str_eq(ids[0], "f1");
    /* by state, one and several */
    zq_store_query_t qs = {.state = "SUCCESS"};
    ck_assert_int_eq(s_list(&qs, ids, &total), 2);
    ck_assert_int_eq(total, 2);
    qs.state = "PENDING,RETRY";
    ck_assert_int_eq(s_list(&qs, ids, &total), 4);
    ck_assert_int_eq(total, 4);
    /* worker, name, search */
    zq_store_query_t qw = {.worker = "w1", .sort_by = "id"};
    ck_assert_int_eq(s_list(&qw, ids, &total), 3);
    ck_assert_int_eq(total, 3);
    ck_assert_str_eq(ids[0], "d1");
    ck_assert_str_eq(ids[1], "f1");
    ck_assert_str_eq(ids[2], "r1");
    zq_store_query_t qn = {.task = "tasks.nope"};
    ck_assert_int_eq(s_list(&qn, ids, &total), 0);
    ck_assert_int_eq(total, 0);
    zq_store_query_t qf = {.search = "W2", .state = "SUCCESS"};
    ck_assert_int_eq(s_list(&qf, ids, &total), 1);
    ck_assert_str_eq(ids[0], "d2");
    qf.state = NULL;
    qf.search = "\"K\":\"V\""; /* kwargs, case-insensitive */
    ck_assert_int_eq(s_list(&qf, ids, &total), 10);
    qf.search = "%"; /* no LIKE wildcards */
    ck_assert_int_eq(s_list(&qf, ids, &total), 0);
    /* received time range: only r1 d1 ... have a date_received? set one explicitly */
    zq_store_state_t st = {.id = "p2", .state = "RECEIVED", .worker = "w3",
                           .timestamp = 1000000000.0, .runtime = -1};
    ck_assert_int_eq(zq_store_set_state(s_st, &st, NULL), ZQ_OK);
    zq_store_query_t qt = {.received_start = 999999999.0, .received_end = 1000000001.0};
    ck_assert_int_eq(s_list(&qt, ids, &total), 1);
    ck_assert_str_eq(ids[0], "p2");
    /* sort ascending with NULLs last */
    zq_store_query_t qr = {.sort_by = "received", .limit = 2};
    ck_assert_int_eq(s_list(&qr, ids, &total), 2);
    ck_assert_str_eq(ids[0], "p2");
}
END_TEST

START_TEST(test_list_errors_and_cap)
{
    s_mix();
    char ids[16][16];
    long total;
    zq_store_query_t q = {.sort_by = "bogus"};
    ck_assert_int_eq(s_list(&q, ids, &total), -ZQ_EINVAL * 1000);
    ck_assert_msg(strstr(zq_store_errmsg(s_st), "sort") != NULL, "%s", zq_store_errmsg(s_st));
    q.sort_by = "-runtime";
    ck_assert_int_eq(s_list(&q, ids, &total), 10);
    zq_store_query_t qs = {.state = "DONE"};
    ck_assert_int_eq(s_list(&qs, ids, &total), -ZQ_EINVAL * 1000);
    qs.state = "SUCCESS,";
    ck_assert_int_eq(s_list(&qs, ids, &total), -ZQ_EINVAL * 1000);
    ck_assert(zq_store_states_valid("PENDING,STARTED"));
    ck_assert(!zq_store_states_valid(""));
    ck_assert(zq_store_sort_valid("-received"));
    ck_assert(!zq_store_sort_valid("rid"));
    /* a byte cap cuts the page, always after at least one record */
    zq_store_query_t qc = {.max_bytes = 1};
    char *text = NULL;
    int trunc = 0;
    ck_assert_int_eq(zq_store_list_tasks(s_st, &qc, &text, NULL, &total, &trunc), ZQ_OK);
    ck_assert_int_eq(trunc, 1);
    ck_assert_int_eq(total, 10);
    cJSON *arr = cJSON_Parse(text);
    ck_assert_int_eq(cJSON_GetArraySize(arr), 1);
    cJSON_Delete(arr);
    free(text);
}
END_TEST

START_TEST(test_list_children)
{
    s_add("root", "celery", 0, 0);
    for (int i = 0; i < 3; i++) {
        char id[16], msg[128];
        snprintf(id, sizeof id, "c%d", i);
        snprintf(msg, sizeof msg, "{\"id\":\"%s\",\"task\":\"tasks.add\",\"args\":[]}", id);
        zq_store_task_t t = {.id = id, .task = "tasks.add", .queue = "celery", .msg = msg,
                             .msglen = strlen(msg), .sent = zq_now(), .parent_id = "root",
                             .root_id = "root"};
        ck_assert_int_eq(zq_store_enqueue(s_st, &t, NULL), ZQ_OK);
    }
    char ids[16][16];
    long total;
    zq_store_query_t q = {.parent_id = "root", .sort_by = "sent"};
    ck_assert_int_eq(s_list(&q, ids, &total), 3);
    ck_assert_int_eq(total, 3);
    ck_assert_str_eq(ids[0], "c0");
    zq_store_query_t qr = {.root_id = "root"};
    ck_assert_int_eq(s_list(&qr, ids, &total), 4);
}
END_TEST

START_TEST(test_migrate_v1)
{
    /* a version-1 database (no tasks_parent index) is brought to the current version */
    zq_store_destroy(&s_st);
    char path[300];
    snprintf(path, sizeof path, "%s/%s", s_dir, ZQ_STORE_FILE);
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, "DROP INDEX tasks_parent; PRAGMA user_version=1", NULL,
                                  NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    char err[256] = "";
    s_st = zq_store_open(s_dir, ZQ_STORE_SYNC_OFF, err, sizeof err);
    ck_assert_msg(s_st != NULL, "%s", err);
    zq_store_destroy(&s_st);
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(db,
                                        "SELECT (SELECT count(*) FROM sqlite_master WHERE "
                                        "name='tasks_parent'), (SELECT user_version FROM "
                                        "pragma_user_version)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_int_eq(sqlite3_column_int(st, 0), 1);
    ck_assert_int_eq(sqlite3_column_int(st, 1), ZQ_STORE_SCHEMA_VERSION);
    sqlite3_finalize(st);
    sqlite3_close(db);
    s_reopen();
}
END_TEST

/* The page size of the database file (read with a connection of the test's own). */
static int s_page_size(void)
{
    char path[300];
    snprintf(path, sizeof path, "%s/%s", s_dir, ZQ_STORE_FILE);
    sqlite3 *db;
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA page_size", -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    int page = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return page;
}

/* A new database gets 8 KiB pages; an existing one keeps its own (SQLite cannot change the
 * page size of a WAL database) and works as before. */
START_TEST(test_page_size)
{
    ck_assert_int_eq(s_page_size(), 8192);
    zq_store_destroy(&s_st);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -f '%s/%s'*", s_dir, ZQ_STORE_FILE);
    ck_assert_int_eq(system(cmd), 0);
    char path[300];
    snprintf(path, sizeof path, "%s/%s", s_dir, ZQ_STORE_FILE);
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, "PRAGMA page_size=4096; CREATE TABLE x(a)", NULL, NULL,
                                  NULL),
                     SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, "DROP TABLE x", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    char err[256] = "";
    s_st = zq_store_open(s_dir, ZQ_STORE_SYNC_OFF, err, sizeof err);
    ck_assert_msg(s_st != NULL, "%s", err);
    s_add("old-pages", "celery", 0, 0);
    ck_assert_str_eq(zq_store_get_state(s_st, "old-pages"), "PENDING");
    zq_store_destroy(&s_st);
    ck_assert_int_eq(s_page_size(), 4096);
    s_reopen();
}
END_TEST

START_TEST(test_schema_too_new)
{
    zq_store_destroy(&s_st);
    char path[300];
    snprintf(path, sizeof path, "%s/%s", s_dir, ZQ_STORE_FILE);
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, "PRAGMA user_version=99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    char err[256] = "";
    ck_assert_ptr_null(zq_store_open(s_dir, ZQ_STORE_SYNC_OFF, err, sizeof err));
    ck_assert_msg(strstr(err, "newer") != NULL, "%s", err);
    /* the current version opens as it is */
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version=%d", ZQ_STORE_SCHEMA_VERSION);
    ck_assert_int_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    s_st = zq_store_open(s_dir, ZQ_STORE_SYNC_OFF, err, sizeof err);
    ck_assert_msg(s_st != NULL, "%s", err);
}
END_TEST

START_TEST(test_sync_names)
{
    zq_store_sync_t s;
    ck_assert_int_eq(zq_store_parse_sync("OFF", &s), ZQ_OK);
    ck_assert_int_eq(s, ZQ_STORE_SYNC_OFF);
    ck_assert_int_eq(zq_store_parse_sync("normal", &s), ZQ_OK);
    ck_assert_int_eq(s, ZQ_STORE_SYNC_NORMAL);
    ck_assert_int_eq(zq_store_parse_sync("Full", &s), ZQ_OK);
    ck_assert_str_eq(zq_store_sync_name(s), "full");
    ck_assert_int_eq(zq_store_parse_sync("fast", &s), ZQ_EINVAL);
    ck_assert_int_eq(zq_store_parse_sync(NULL, &s), ZQ_EINVAL);
    ck_assert(zq_state_is_terminal("REVOKED"));
    ck_assert(!zq_state_is_terminal("RETRY"));
    ck_assert_ptr_null(zq_state_canonical("success"));
}
END_TEST

START_TEST(test_disk_full)
{
    zq_store_destroy(&s_st);
    setenv("ZQ_STORE_MAX_PAGES", "40", 1);
    char err[256] = "";
    s_st = zq_store_open(s_dir, ZQ_STORE_SYNC_OFF, err, sizeof err);
    unsetenv("ZQ_STORE_MAX_PAGES");
    ck_assert_msg(s_st != NULL, "%s", err);
    s_add("first", "celery", 0, 0);
    /* a batch that does not fit: the write fails, the transaction is gone, nothing of it
     * stays, and what was committed before is intact */
    ck_assert_int_eq(zq_store_begin(s_st), ZQ_OK);
    char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    int rc = ZQ_OK, i;
    for (i = 0; i < 1000 && rc == ZQ_OK; i++) {
        char id[32], msg[3100];
        snprintf(id, sizeof id, "big%d", i);
        snprintf(msg, sizeof msg, "{\"id\":\"%s\",\"pad\":\"%s\"}", id, big);
        zq_store_task_t t = {.id = id, .task = "t.x", .queue = "celery", .msg = msg,
                             .msglen = strlen(msg)};
        rc = zq_store_enqueue(s_st, &t, NULL);
    }
    ck_assert_int_eq(rc, ZQ_ESTORE);
    ck_assert_msg(strstr(zq_store_errmsg(s_st), "full") != NULL, "%s", zq_store_errmsg(s_st));
    if (zq_store_in_tx(s_st))
        ck_assert_int_eq(zq_store_commit(s_st), ZQ_OK); /* only the failed statement undone */
    else
        zq_store_rollback(s_st);
    ck_assert_str_eq(zq_store_get_state(s_st, "first"), "PENDING");
    char last[32];
    snprintf(last, sizeof last, "big%d", i - 1);
    ck_assert_ptr_null(zq_store_get_state(s_st, last));
}
END_TEST

/* Commits back to back, as a broker that is never idle makes them, with a checkpoint every
 * 64 WAL pages: the WAL is copied back and started over again and again (so it stays
 * small) while the commits go on, and every committed row is there after a reopen. */
static void s_wal_cycles(zq_store_sync_t sync, int ntx)
{
    zq_store_destroy(&s_st);
    setenv("ZQ_STORE_CKPT_PAGES", "64", 1);
    char err[256] = "";
    s_st = zq_store_open(s_dir, sync, err, sizeof err);
    unsetenv("ZQ_STORE_CKPT_PAGES");
    ck_assert_msg(s_st != NULL, "%s", err);
    int n = 0;
    long written = 0, prev = 0; /* WAL pages written by all the commits */
    zq_store_wal_stats_t w;
    for (int t = 0; t < ntx; t++) {
        ck_assert_int_eq(zq_store_begin(s_st), ZQ_OK);
        for (int k = 0; k < 8; k++, n++) {
            char id[32];
            snprintf(id, sizeof id, "t%06d", n);
            s_add(id, "celery", 0, 0);
            if (n >= 4) { /* earlier tasks end: updates all over the table */
                snprintf(id, sizeof id, "t%06d", n - 4);
                ck_assert_int_eq(s_set(id, "SUCCESS", "wk"), ZQ_OK);
            }
        }
        ck_assert_int_eq(zq_store_commit(s_st), ZQ_OK);
        zq_store_wal_stats(s_st, &w);
        written += w.frames >= prev ? w.frames - prev : w.frames;
        prev = w.frames;
    }
    ck_assert_msg(w.passes >= 2 && w.resets >= 2 && w.errors == 0,
                  "passes %ld resets %ld errors %ld", w.passes, w.resets, w.errors);
    /* without checkpoints the WAL would hold every page written */
    ck_assert_msg(w.max_frames * 3 < written, "WAL grew to %ld of %ld pages", w.max_frames,
                  written);

    /* the database can be read from another connection while the store is open */
    char path[512];
    snprintf(path, sizeof path, "%s/%s", s_dir, ZQ_STORE_FILE);
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT count(*) FROM tasks", -1, &st, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_int_eq(sqlite3_column_int(st, 0), n);
    sqlite3_finalize(st);
    sqlite3_close(db);

    s_reopen(); /* destroy stops and joins the checkpointer */
    zq_store_counts_t c;
    ck_assert_int_eq(zq_store_counts(s_st, &c), ZQ_OK);
    ck_assert_int_eq(c.total, n);
    ck_assert_int_eq(c.success, n - 4);
    ck_assert_int_eq(c.pending, 4);
    char id[32];
    snprintf(id, sizeof id, "t%06d", n - 1);
    ck_assert_str_eq(zq_store_get_state(s_st, id), "PENDING");
    snprintf(id, sizeof id, "t%06d", n - 5);
    ck_assert_str_eq(zq_store_get_state(s_st, id), "SUCCESS");
    /* closed cleanly: the last connection checkpointed and removed the WAL */
    zq_store_destroy(&s_st);
    struct stat sb;
    snprintf(path, sizeof path, "%s/%s-wal", s_dir, ZQ_STORE_FILE);
    ck_assert_int_ne(stat(path, &sb), 0);
    s_st = zq_store_open(s_dir, ZQ_STORE_SYNC_OFF, err, sizeof err);
    ck_assert_msg(s_st != NULL, "%s", err);
}

START_TEST(test_wal_checkpoint_cycles)
{
    s_wal_cycles(ZQ_STORE_SYNC_OFF, 1500);
}
END_TEST

START_TEST(test_wal_checkpoint_cycles_sync)
{
    s_wal_cycles(ZQ_STORE_SYNC_NORMAL, 400); /* the fsyncs (and fdatasync) path */
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("records");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_enqueue_record);
    tcase_add_test(tc, test_unknown_record);
    tcase_add_test(tc, test_duplicate_id);
    tcase_add_test(tc, test_special_characters);
    tcase_add_test(tc, test_find);
    suite_add_tcase(s, tc);
    tc = tcase_create("states");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_state_lifecycle);
    tcase_add_test(tc, test_terminal_idempotent);
    tcase_add_test(tc, test_terminal_by_rid);
    tcase_add_test(tc, test_no_ephemeral_plans);
    tcase_add_test(tc, test_state_errors);
    tcase_add_test(tc, test_failure_and_ignore_result);
    tcase_add_test(tc, test_retry);
    tcase_add_test(tc, test_requeue);
    suite_add_tcase(s, tc);
    tc = tcase_create("queues");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_eta_due);
    tcase_add_test(tc, test_ready_paging);
    tcase_add_test(tc, test_purge_counts);
    tcase_add_test(tc, test_revoke_queued);
    suite_add_tcase(s, tc);
    tc = tcase_create("durability");
    /* the WAL-cycle tests commit 1,900 transactions: ~2 s alone under ASan, several times
     * that beside the rest of a parallel sanitized suite (Check's default limit is 4 s) */
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_revoke_durable);
    tcase_add_test(tc, test_recover_after_reopen);
    tcase_add_test(tc, test_rollback);
    tcase_add_test(tc, test_disk_full);
    tcase_add_test(tc, test_wal_checkpoint_cycles);
    tcase_add_test(tc, test_wal_checkpoint_cycles_sync);
    suite_add_tcase(s, tc);
    tc = tcase_create("open");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_open_errors);
    tcase_add_test(tc, test_created_mode);
    tcase_add_test(tc, test_schema_too_new);
    tcase_add_test(tc, test_sync_names);
    tcase_add_test(tc, test_migrate_v1);
    tcase_add_test(tc, test_page_size);
    suite_add_tcase(s, tc);

    tc = tcase_create("monitor");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_counts_scan_and_incremental);
    tcase_add_test(tc, test_counts_rollback_rescans);
    tcase_add_test(tc, test_list_filters);
    tcase_add_test(tc, test_list_errors_and_cap);
    tcase_add_test(tc, test_list_children);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(s_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
