/*
 * check_pool - the pool's lease (worker/zq_pool.c, zq_pool_set_lease): past it, a queued job
 * waits in the prefork child or pool thread that took it, until the lease is extended or the
 * job is taken back. Uses the plugins/tasks.so example.
 */
#include "config.h"
#include "zq_loader.h"
#include "zq_log.h"
#include "zq_pool.h"
#include "zq_time.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

/* Plugins resolve zq_task_* against this binary (linked -export-dynamic). */
__attribute__((used)) static const char *(*const s_link_sdk)(const zq_task_t *) = zq_task_name;

static const char *s_built(const char *rel)
{
    static char path[4096];
    const char *d = getenv("ZQ_BUILDDIR");
    snprintf(path, sizeof path, "%s/%s", d && *d ? d : ZQ_BUILDDIR, rel);
    return path;
}

typedef struct {
    int started, done;
    void *last;
} s_seen_t;

static void s_on_event(void *arg, const zq_pool_event_t *ev)
{
    s_seen_t *s = arg;
    if (ev->kind == ZQ_POOL_EV_STARTED)
        s->started++;
    else if (ev->kind == ZQ_POOL_EV_DONE)
        s->done++;
    s->last = ev->ctx;
}

/* Run the pool's events for ms, or until *until reaches want (until may be NULL). */
static void s_pump(zq_pool_t *p, int ms, const int *until, int want)
{
    double end = zq_mono() + ms / 1000.0;
    while (zq_mono() < end && !(until && *until >= want)) {
        zmq_pollitem_t items[8];
        int n = zq_pool_pollitems(p, items, 8);
        zmq_poll(items, n, 20);
        zq_pool_dispatch(p, items, n);
    }
}

static const zq_pool_kind_t s_kinds[] = {ZQ_POOL_PREFORK, ZQ_POOL_THREADS};

START_TEST(test_lease_holds_jobs)
{
    zq_log_set_level(ZQ_LOG_ERROR);
    zq_loader_t *l = zq_loader_new();
    ck_assert_int_eq(zq_loader_load_file(l, s_built("plugins/tasks.so")), ZQ_OK);
    s_seen_t seen = {0, 0, NULL};
    zq_pool_config_t cfg = {s_kinds[_i], 1, l, "lease@test", s_on_event, &seen};
    zq_pool_t *p = zq_pool_new(&cfg);
    ck_assert_ptr_nonnull(p);

    static const char a_text[] = "{\"id\":\"a\",\"task\":\"tasks.add\",\"args\":[1,2],\"kwargs\":{}}";
    static const char b_text[] = "{\"id\":\"b\",\"task\":\"tasks.add\",\"args\":[3,4],\"kwargs\":{}}";
    cJSON *a_body = cJSON_Parse(a_text), *b_body = cJSON_Parse(b_text);
    int a_ctx = 0, b_ctx = 0;
    zq_pool_job_t a = {&a_ctx, a_text, strlen(a_text), a_body, 0, 0, 0};
    zq_pool_job_t b = {&b_ctx, b_text, strlen(b_text), b_body, 0, 0, 0};

    /* the lease has run out: a queued job does not start */
    zq_pool_set_lease(p, zq_mono() - 1);
    ck_assert_int_eq(zq_pool_submit(p, &a), ZQ_OK);
    s_pump(p, 400, NULL, 0);
    ck_assert_int_eq(seen.started, 0);
    /* extended: it starts and ends */
    zq_pool_set_lease(p, zq_mono() + 60);
    s_pump(p, 5000, &seen.done, 1);
    ck_assert_int_eq(seen.started, 1);
    ck_assert_int_eq(seen.done, 1);
    ck_assert_ptr_eq(seen.last, &a_ctx);

    /* held past the lease, then taken back: it never runs, even once the lease is back */
    zq_pool_set_lease(p, 0);
    ck_assert_int_eq(zq_pool_submit(p, &b), ZQ_OK);
    s_pump(p, 400, NULL, 0);
    ck_assert_int_eq(seen.started, 1);
    ck_assert_int_eq(zq_pool_cancel(p, &b_ctx), ZQ_OK);
    zq_pool_set_lease(p, INFINITY);
    s_pump(p, 400, NULL, 0);
    ck_assert_int_eq(seen.started, 1);
    ck_assert_int_eq(seen.done, 1);

    zq_pool_destroy(&p, 0);
    cJSON_Delete(a_body);
    cJSON_Delete(b_body);
    zq_loader_destroy(&l);
}
END_TEST

START_TEST(test_destroy_with_a_job_held)
{
    /* a prefork child waiting on the lease does not make a warm destroy hang */
    zq_log_set_level(ZQ_LOG_ERROR);
    zq_loader_t *l = zq_loader_new();
    ck_assert_int_eq(zq_loader_load_file(l, s_built("plugins/tasks.so")), ZQ_OK);
    s_seen_t seen = {0, 0, NULL};
    zq_pool_config_t cfg = {s_kinds[_i], 1, l, "lease@test", s_on_event, &seen};
    zq_pool_t *p = zq_pool_new(&cfg);
    static const char text[] = "{\"id\":\"c\",\"task\":\"tasks.add\",\"args\":[1,1],\"kwargs\":{}}";
    cJSON *body = cJSON_Parse(text);
    int ctx = 0;
    zq_pool_job_t j = {&ctx, text, strlen(text), body, 0, 0, 0};
    zq_pool_set_lease(p, 0);
    ck_assert_int_eq(zq_pool_submit(p, &j), ZQ_OK);
    s_pump(p, 200, NULL, 0);
    double t0 = zq_mono();
    zq_pool_destroy(&p, 0);
    ck_assert(zq_mono() - t0 < 5);
    cJSON_Delete(body);
    zq_loader_destroy(&l);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pool");
    TCase *tc = tcase_create("lease");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_lease_holds_jobs, 0, 2);
    tcase_add_loop_test(tc, test_destroy_with_a_job_held, 0, 2);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
