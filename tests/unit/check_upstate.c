/*
 * check_upstate - broker/zq_upstate.c (a worker's STATE read without a tree, and from one),
 * with the pieces it stands on: common/zq_jscan.c (reading JSON text in place) and
 * common/zq_arena.c (the turn's bump allocator).
 */
#include "config.h"
#include "zq.h"
#include "zq_arena.h"
#include "zq_jscan.h"
#include "zq_upstate.h"

#include <check.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int s_same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

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

/* The text reader's view equals the tree reader's. */
static void s_assert_same(const zq_upstate_t *t, const zq_upstate_t *j)
{
    ck_assert(s_same_str(t->id, j->id) && s_same_str(t->state, j->state));
    ck_assert(s_same_str(t->worker, j->worker) && s_same_str(t->timestamp, j->timestamp));
    ck_assert(s_same_str(t->traceback, j->traceback) && s_same_str(t->eta, j->eta));
    ck_assert(s_same_str(t->received, j->received) && s_same_str(t->started, j->started));
    ck_assert(s_same_str(t->exc_type, j->exc_type) && s_same_str(t->exc_message, j->exc_message));
    ck_assert(s_same_json(t->result, j->result) && s_same_json(t->signum, j->signum));
    ck_assert_int_eq(t->has_exc, j->has_exc);
    ck_assert_int_eq(t->acks_late, j->acks_late);
    ck_assert(t->has_runtime == j->has_runtime && (!t->has_runtime || t->runtime == j->runtime));
    ck_assert(t->has_countdown == j->has_countdown &&
              (!t->has_countdown || t->countdown == j->countdown));
    ck_assert(t->has_pid == j->has_pid && (!t->has_pid || t->pid == j->pid));
}

/* Read body both ways; returns the text reader's view (NULL when it declined). */
static const zq_upstate_t *s_both(zq_arena_t *a, const char *body)
{
    zq_upstate_t *t = NULL, *j = NULL;
    int rc = zq_upstate_read(body, strlen(body), a, &t);
    cJSON *tree = cJSON_Parse(body);
    ck_assert_int_eq(zq_upstate_from_json(tree, a, &j), ZQ_OK);
    cJSON_Delete(tree);
    if (rc == ZQ_UPSTATE_DECLINED) {
        ck_assert_ptr_null(t);
        return NULL;
    }
    ck_assert_int_eq(rc, ZQ_OK);
    s_assert_same(t, j);
    return t;
}

/* zq-worker's forms (worker/zq_exec.c, the folded members of worker/zq_worker.c). */
START_TEST(test_worker_forms)
{
    zq_arena_t a = {0};
    const zq_upstate_t *u = s_both(
        &a, "{\"id\":\"0192-a\",\"state\":\"SUCCESS\",\"worker\":\"w1@h\","
            "\"timestamp\":\"2026-11-26T12:00:00.123456Z\",\"result\":[4,{\"k\":\"v\"}],"
            "\"runtime\":0.000012,\"received\":\"2026-11-26T12:00:00.1Z\","
            "\"started\":\"2026-11-26T12:00:00.2Z\",\"pid\":4242,\"acks_late\":false}");
    ck_assert_ptr_nonnull(u);
    ck_assert_str_eq(u->id, "0192-a");
    ck_assert_str_eq(u->state, "SUCCESS");
    ck_assert_str_eq(u->worker, "w1@h");
    ck_assert_str_eq(u->result, "[4,{\"k\":\"v\"}]");
    ck_assert(u->has_runtime && u->runtime == 0.000012);
    ck_assert(u->has_pid && u->pid == 4242 && !u->acks_late && !u->has_exc);
    ck_assert_str_eq(u->received, "2026-11-26T12:00:00.1Z");
    ck_assert_ptr_null(u->eta);

    u = s_both(&a, "{\"id\":\"t\",\"state\":\"FAILURE\",\"worker\":\"w\",\"timestamp\":\"x\","
                   "\"exception\":{\"type\":\"KeyError\",\"message\":\"say \\\"hi\\\"\\n\\t\\\\/\"},"
                   "\"traceback\":\"Traceback (most recent call last):\\n  File\",\"runtime\":1}");
    ck_assert_ptr_nonnull(u);
    ck_assert(u->has_exc);
    ck_assert_str_eq(u->exc_type, "KeyError");
    ck_assert_str_eq(u->exc_message, "say \"hi\"\n\t\\/");
    ck_assert_str_eq(u->traceback, "Traceback (most recent call last):\n  File");

    u = s_both(&a, "{\"id\":\"t\",\"state\":\"RETRY\",\"exception\":{\"type\":\"Retry\","
                   "\"message\":\"m\"},\"countdown\":2.5,\"eta\":\"2026-11-26T12:00:03Z\"}");
    ck_assert(u && u->has_countdown && u->countdown == 2.5);
    ck_assert_str_eq(u->eta, "2026-11-26T12:00:03Z");

    u = s_both(&a, "{\"id\":\"t\",\"state\":\"STARTED\",\"pid\":7,\"acks_late\":true}");
    ck_assert(u && u->acks_late && u->pid == 7);

    u = s_both(&a, "{\"id\":\"t\",\"state\":\"REVOKED\",\"exception\":{\"type\":\"T\"},"
                   "\"signum\":\"SIGKILL\",\"expired\":false,\"terminated\":true}");
    ck_assert(u && u->has_exc && u->exc_message == NULL);
    ck_assert_str_eq(u->signum, "\"SIGKILL\"");
    u = s_both(&a, "{\"id\":\"t\",\"state\":\"REVOKED\",\"signum\":-9}");
    ck_assert_str_eq(u->signum, "-9");
    zq_arena_free(&a);
}
END_TEST

/* What the text reader takes besides the worker's forms, still as the tree reads it. */
START_TEST(test_other_forms)
{
    zq_arena_t a = {0};
    const zq_upstate_t *u =
        s_both(&a, " { \"state\" : \"SUCCESS\" , \"id\" : \"t\" , \"result\" : null ,"
                   " \"worker\" : null , \"unknown\" : {\"a\":[1,2,{\"b\":null}],\"c\":-1.5e3} } ");
    ck_assert_ptr_nonnull(u);
    ck_assert_str_eq(u->result, "null"); /* present: SUCCESS with a None result */
    ck_assert_ptr_null(u->worker);
    u = s_both(&a, "{}");
    ck_assert(u && !u->id && !u->state && !u->result);
    u = s_both(&a, "{\"id\":\"t\",\"exception\":{}}");
    ck_assert(u && u->has_exc && !u->exc_type && !u->exc_message);
    zq_arena_free(&a);
}
END_TEST

/* Outside its form the text reader declines; the tree reader still gives an answer. */
START_TEST(test_declines)
{
    static const char *const bodies[] = {
        "[]", "\"x\"", "{\"id\":\"t\"", "{\"id\":\"t\",}", "{\"id\":\"t\"} x",
        "{\"id\":\"\\u0041\"}",                 /* \u: cJSON decides */
        "{\"id\\n\":\"t\"}",                    /* an escape in a key */
        "{\"id\":\"a\",\"id\":\"b\"}",          /* twice: the tree takes the first */
        "{\"id\":5}", "{\"state\":true}",       /* a string member of another type */
        "{\"runtime\":\"1\"}", "{\"pid\":null}", "{\"countdown\":[1]}",
        "{\"runtime\":1e999}",                  /* inf in cJSON */
        "{\"acks_late\":1}", "{\"exception\":\"boom\"}", "{\"exception\":{\"type\":5}}",
        "{\"exception\":{\"type\":\"a\",\"type\":\"b\"}}", "{\"signum\":null}",
        "{\"signum\":true}", "{\"result\":1e400}", "{\"result\":[1,]}",
        "{\"x\":\"\x01\"}"};
    zq_arena_t a = {0};
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        zq_upstate_t *u = (zq_upstate_t *)1;
        ck_assert_msg(zq_upstate_read(bodies[i], strlen(bodies[i]), &a, &u) ==
                          ZQ_UPSTATE_DECLINED,
                      "took %s", bodies[i]);
        ck_assert_ptr_null(u);
    }
    /* nesting: 64 levels below the body are read, deeper ones left to cJSON */
    char deep[400];
    for (int levels = 64; levels <= 65; levels++) {
        size_t n = 0;
        n += (size_t)sprintf(deep + n, "{\"result\":");
        for (int i = 0; i < levels; i++)
            deep[n++] = '[';
        for (int i = 0; i < levels; i++)
            deep[n++] = ']';
        deep[n++] = '}';
        deep[n] = '\0';
        zq_upstate_t *u;
        ck_assert_int_eq(zq_upstate_read(deep, n, &a, &u),
                         levels == 64 ? ZQ_OK : ZQ_UPSTATE_DECLINED);
    }
    /* the tree reader on what is no object: nothing read */
    zq_upstate_t *j;
    cJSON *arr = cJSON_Parse("[1]");
    ck_assert_int_eq(zq_upstate_from_json(arr, &a, &j), ZQ_OK);
    ck_assert(!j->id && !j->state && !j->has_exc && !j->has_pid);
    cJSON_Delete(arr);
    zq_arena_free(&a);
}
END_TEST

/* In a longer text (a BATCH's messages), one STATE after the other from the cursor. */
START_TEST(test_scan)
{
    const char text[] = "[{\"id\":\"a\",\"state\":\"SUCCESS\",\"result\":{\"x\":[1]}} , "
                        "{\"id\":\"b\",\"state\":\"RETRY\",\"countdown\":2}]";
    zq_arena_t a = {0};
    zq_jscan_t r;
    zq_jscan_init(&r, text, strlen(text));
    ck_assert_int_eq(zq_jscan_array(&r), 0);
    zq_upstate_t *u;
    int first = 1;
    ck_assert_int_eq(zq_jscan_element(&r, &first), 1);
    ck_assert_int_eq(zq_upstate_scan(&r, &a, &u), ZQ_OK);
    ck_assert_str_eq(u->id, "a");
    ck_assert_str_eq(u->result, "{\"x\":[1]}");
    ck_assert_int_eq(*r.p, ' '); /* just past the object */
    ck_assert_int_eq(zq_jscan_element(&r, &first), 1);
    ck_assert_int_eq(zq_upstate_scan(&r, &a, &u), ZQ_OK);
    ck_assert(!strcmp(u->id, "b") && u->has_countdown && u->countdown == 2);
    ck_assert_int_eq(zq_jscan_element(&r, &first), 0);
    ck_assert_int_eq(zq_jscan_end(&r), 0);
    /* what zq_upstate_read declines, the scan declines too; trailing text is the read's */
    zq_jscan_init(&r, "{\"id\":5}", 8);
    ck_assert_int_eq(zq_upstate_scan(&r, &a, &u), ZQ_UPSTATE_DECLINED);
    ck_assert_int_eq(zq_upstate_read("{\"id\":\"a\"} x", 12, &a, &u), ZQ_UPSTATE_DECLINED);
    /* out of memory (the arena's testing aid) */
    a.fail = 1;
    zq_jscan_init(&r, "{}", 2);
    ck_assert_int_eq(zq_upstate_scan(&r, &a, &u), ZQ_ENOMEM);
    ck_assert_ptr_null(u);
    zq_arena_free(&a);
}
END_TEST

START_TEST(test_jscan)
{
    zq_jscan_t r;
    const char *s, *k;
    size_t n, kn;
    double v;
    const char text[] = " {\"a\" : [1, \"x\\\"y\", {\"b\":false}], \"c\":-2.5e1}  ";
    zq_jscan_init(&r, text, strlen(text));
    ck_assert_int_eq(zq_jscan_object(&r), 0);
    int first = 1;
    ck_assert_int_eq(zq_jscan_member(&r, &first, &k, &kn), 1);
    ck_assert(kn == 1 && k[0] == 'a');
    ck_assert_int_eq(zq_jscan_value(&r, 0, &s, &n), 0);
    ck_assert_uint_eq(n, strlen("[1, \"x\\\"y\", {\"b\":false}]"));
    ck_assert_int_eq(zq_jscan_member(&r, &first, &k, &kn), 1);
    ck_assert_int_eq(zq_jscan_number(&r, &v), 0);
    ck_assert(v == -25);
    ck_assert_int_eq(zq_jscan_member(&r, &first, &k, &kn), 0);
    ck_assert_int_eq(zq_jscan_end(&r), 0);

    char out[16];
    ck_assert_uint_eq(zq_jscan_unescape("a\\\"\\\\\\/\\b\\f\\n\\r\\t", 17, out), 9);
    ck_assert(!memcmp(out, "a\"\\/\b\f\n\r\t", 10));

    static const char *const bad[] = {"01", "1.", "-", "1e", "tru", "[1 2]", "{\"a\" 1}",
                                      "{1:2}", "\"\\x\"", "\"abc", "[", "{\"a\":1,}", "[,1]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        zq_jscan_init(&r, bad[i], strlen(bad[i]));
        ck_assert_msg(zq_jscan_value(&r, 0, NULL, NULL) != 0 || zq_jscan_end(&r) != 0,
                      "took %s", bad[i]);
    }
    /* escapes are refused where the caller says so */
    zq_jscan_init(&r, "\"a\\nb\"", 6);
    ck_assert_int_eq(zq_jscan_string(&r, 0, &s, &n), ZQ_JSCAN_DECLINE);
}
END_TEST

START_TEST(test_arena)
{
    zq_arena_t a = {0};
    char *first = zq_arena_strndup(&a, "hello", 3);
    ck_assert_str_eq(first, "hel");
    ck_assert_uint_eq((uintptr_t)first % _Alignof(max_align_t), 0);
    /* more than a chunk: the earlier pointers stay valid */
    char *big = zq_arena_alloc(&a, 200000);
    ck_assert_ptr_nonnull(big);
    memset(big, 'x', 200000);
    ck_assert_str_eq(first, "hel");
    for (int i = 0; i < 1000; i++) {
        double *d = zq_arena_alloc(&a, sizeof *d * 3);
        ck_assert_uint_eq((uintptr_t)d % _Alignof(max_align_t), 0);
        d[2] = i;
    }
    ck_assert(a.used >= 200000);
    zq_arena_reset(&a);
    ck_assert_uint_eq(a.used, 0);
    ck_assert_ptr_nonnull(zq_arena_alloc(&a, 10)); /* reuses the kept chunk */
    zq_arena_free(&a);
    ck_assert_ptr_null(a.head);
    zq_arena_reset(&a); /* an empty arena */
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("upstate");
    TCase *tc = tcase_create("read");
    tcase_add_test(tc, test_worker_forms);
    tcase_add_test(tc, test_other_forms);
    tcase_add_test(tc, test_declines);
    tcase_add_test(tc, test_scan);
    tcase_add_test(tc, test_jscan);
    tcase_add_test(tc, test_arena);
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
