/*
 * check_dispatch - the worker's side of the dispatch channel (docs/protocol.md §8): TASKS
 * handled element by element as TASK bodies, through zq_worker_feed_dispatch on a worker
 * that never runs (worker/zq_worker_int.h). The worker loads the example plugin
 * (plugins/tasks.so: tasks.add).
 */
#include "config.h"
#include "zq.h"
#include "zq_log.h"
#include "zq_worker.h"
#include "zq_worker_int.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static zq_worker_t *s_w;

static void setup(void)
{
    zq_log_set_level(getenv("ZQ_TEST_DEBUG") ? ZQ_LOG_DEBUG : ZQ_LOG_ERROR + 1);
    static char dir[4096];
    const char *b = getenv("ZQ_BUILDDIR");
    snprintf(dir, sizeof dir, "%s/plugins", b && *b ? b : ZQ_BUILDDIR);
    zq_worker_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.plugins_dir = dir;
    cfg.broker_url = "ipc:///nonexistent/zq-check"; /* never connected: it never runs */
    cfg.nodename = "chk@dispatch";
    cfg.queues = "celery";
    cfg.concurrency = 2;
    cfg.prefetch = 1;
    cfg.pool = ZQ_POOL_PREFORK;
    s_w = zq_worker_new(&cfg);
    ck_assert_ptr_nonnull(s_w);
    ck_assert_uint_gt(zq_worker_task_count(s_w), 0);
}

static void teardown(void)
{
    zq_worker_destroy(&s_w);
}

static void s_feed(const char *version, const char *cmd, const char *body)
{
    const void *f[3] = {version, cmd, body};
    size_t n[3] = {strlen(version), strlen(cmd), strlen(body)};
    zq_worker_feed_dispatch(s_w, f, n, 3);
}

/* w holds id, and would ship exactly text to a prefork child. */
static void s_holds(const char *id, const char *text)
{
    const char *raw;
    size_t len;
    ck_assert_msg(zq_worker_held(s_w, id, &raw, &len), "%s not held", id);
    ck_assert_msg(len == strlen(text) && !memcmp(raw, text, len), "%s: raw %.*s", id, (int)len,
                  raw);
}

#define T1 "{\"id\":\"k1\",\"task\":\"tasks.add\",\"args\":[1,2],\"redelivered\":false}"
#define T2 "{\"id\":\"k2\",\"task\":\"tasks.add\",\"args\":[\"],[{\\\"}\"],\"redelivered\":true}"
#define T3 "{\"id\":\"k3\",\"task\":\"tasks.add\",\"kwargs\":{\"a\":[[],{}]}}"

START_TEST(test_tasks_each_element)
{
    s_feed("ZQP01", "TASKS", "[" T1 ", \n" T2 "," T3 "]");
    s_holds("k1", T1);
    s_holds("k2", T2);
    s_holds("k3", T3);
    ck_assert_uint_eq(zq_worker_bad_messages(s_w), 0);
    /* a duplicate delivery is ignored, as for TASK */
    s_feed("ZQP01", "TASKS", "[" T1 "]");
    s_holds("k1", T1);
    ck_assert_uint_eq(zq_worker_bad_messages(s_w), 0);
}
END_TEST

START_TEST(test_tasks_malformed)
{
    /* bad elements are counted and skipped, the others taken */
    s_feed("ZQP01", "TASKS",
           "[7,{\"id\":\"m1\",\"task\":\"tasks.add\",\"args\":[1,1]},{\"a\":1} {\"b\":2},"
           "{\"task\":\"tasks.add\"},{\"id\":\"m2\",\"task\":\"tasks.add\",\"args\":[2,2]}]");
    ck_assert(zq_worker_held(s_w, "m1", NULL, NULL));
    ck_assert(zq_worker_held(s_w, "m2", NULL, NULL));
    ck_assert_uint_eq(zq_worker_bad_messages(s_w), 3); /* 7, two objects, no id */
    /* a broken array: what came before the fault is taken, the fault counted once */
    s_feed("ZQP01", "TASKS", "[{\"id\":\"m3\",\"task\":\"tasks.add\"},{\"id\":\"m4\",\"args\":[");
    ck_assert(zq_worker_held(s_w, "m3", NULL, NULL));
    ck_assert(!zq_worker_held(s_w, "m4", NULL, NULL));
    ck_assert_uint_eq(zq_worker_bad_messages(s_w), 4);
    s_feed("ZQP01", "TASKS", "{\"id\":\"m5\",\"task\":\"tasks.add\"}"); /* not an array */
    s_feed("ZQP02", "TASKS", "[{\"id\":\"m6\",\"task\":\"tasks.add\"}]"); /* wrong version */
    s_feed("ZQP01", "TASKS", "[]");                                   /* nothing: fine */
    ck_assert(!zq_worker_held(s_w, "m5", NULL, NULL));
    ck_assert(!zq_worker_held(s_w, "m6", NULL, NULL));
    ck_assert_uint_eq(zq_worker_bad_messages(s_w), 6);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("dispatch");
    TCase *tc = tcase_create("tasks");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_tasks_each_element);
    tcase_add_test(tc, test_tasks_malformed);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
