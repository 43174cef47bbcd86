/*
 * check_submit - broker/zq_submit.c: the SUBMIT bodies it reads (the client library's form
 * and the other members of docs/protocol.md §6) and the task message it writes, and every
 * kind of body it must leave to the general path (declining, never refusing).
 */
#include "config.h"
#include "zq.h"
#include "zq_sb.h"
#include "zq_submit.h"
#include "zq_time.h"
#include "zq_util.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const double s_now = 1795000000.25; /* 2026-11-18 */

/* Read body; on ZQ_OK the written message, parsed (caller owns it). */
static cJSON *s_read(const char *body, zq_submit_t *r, int *rc)
{
    zq_sb_t b;
    zq_sb_init(&b);
    zq_sb_puts(&b, "prefix"); /* the message is appended */
    *rc = zq_submit_read(body, strlen(body), s_now, r, &b);
    cJSON *msg = NULL;
    if (*rc == ZQ_OK) {
        ck_assert(b.len > 6 && !memcmp(b.buf, "prefix", 6));
        msg = cJSON_ParseWithLength(b.buf + 6, b.len - 6);
        ck_assert_msg(cJSON_IsObject(msg), "not an object: %.*s", (int)(b.len - 6), b.buf + 6);
    } else {
        ck_assert_int_eq(*rc, ZQ_SUBMIT_DECLINED);
        ck_assert_uint_eq(b.len, 6); /* nothing written */
    }
    zq_sb_free(&b);
    return msg;
}

static double s_time_of(const cJSON *msg, const char *key)
{
    double t = 0;
    const char *s = zq_json_str(msg, key, NULL);
    if (s)
        ck_assert_int_eq(zq_time_parse(s, &t), ZQ_OK);
    return t;
}

/* What the client library sends (sdk/zq_client.c): read, completed, request members out. */
START_TEST(test_client_form)
{
    zq_submit_t r;
    int rc;
    cJSON *m = s_read("{\"req\":7,\"id\":\"0192-ab\",\"task\":\"tasks.add\",\"args\":[2,3],"
                      "\"kwargs\":{},\"queue\":\"celery\",\"ignore_result\":false,\"priority\":0,"
                      "\"origin\":\"gen1@h\",\"root_id\":\"0192-ab\",\"get\":8,\"coalesce\":2}",
                      &r, &rc);
    ck_assert_int_eq(rc, ZQ_OK);
    ck_assert(r.has_req && r.req == 7 && r.get == 8 && r.coalesce == 2);
    ck_assert_str_eq(r.id, "0192-ab");
    ck_assert_str_eq(r.task, "tasks.add");
    ck_assert_str_eq(r.queue, "celery");
    ck_assert_str_eq(r.root_id, "0192-ab");
    ck_assert_str_eq(r.parent_id, "");
    ck_assert(r.eta == 0 && r.expires == 0 && r.retries == 0 && !r.ignore_result);
    ck_assert_int_eq((int)r.args_len, 5);
    ck_assert(!memcmp(r.args, "[2,3]", 5));
    ck_assert(!memcmp(r.kwargs, "{}", 2));
    /* the stored message (docs §6) */
    static const char *const gone[] = {"req", "get", "coalesce", "countdown"};
    for (int i = 0; i < 4; i++)
        ck_assert_ptr_null(cJSON_GetObjectItem(m, gone[i]));
    ck_assert_str_eq(zq_json_str(m, "id", ""), "0192-ab");
    ck_assert_str_eq(zq_json_str(m, "task", ""), "tasks.add");
    ck_assert_str_eq(zq_json_str(m, "origin", ""), "gen1@h");
    ck_assert_str_eq(zq_json_str(m, "root_id", ""), "0192-ab");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(m, "args")), 2);
    ck_assert(cJSON_IsObject(cJSON_GetObjectItem(m, "kwargs")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(m, "eta")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(m, "expires")));
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(m, "ignore_result")));
    ck_assert_int_eq(zq_json_num(m, "priority", -1), 0);
    ck_assert_int_eq(zq_json_num(m, "retries", -1), 0);
    ck_assert(fabs(s_time_of(m, "sent") - s_now) < 1e-3);
    cJSON_Delete(m);
}
END_TEST

/* Defaults, times and the other members. */
START_TEST(test_members)
{
    zq_submit_t r;
    int rc;
    /* only a task: id minted, root_id = id, queue celery, [] and {} */
    cJSON *m = s_read(" { \"task\" : \"t.x\" } \n", &r, &rc);
    ck_assert_int_eq(rc, ZQ_OK);
    ck_assert(zq_valid_token(r.id) && strlen(r.id) == 36);
    ck_assert_str_eq(r.root_id, r.id);
    ck_assert_str_eq(zq_json_str(m, "root_id", ""), r.id);
    ck_assert_str_eq(zq_json_str(m, "queue", ""), "celery");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(m, "args")), 0);
    ck_assert(cJSON_IsObject(cJSON_GetObjectItem(m, "kwargs")));
    ck_assert(!r.has_req && r.get == 0 && r.coalesce == 0);
    cJSON_Delete(m);
    /* countdown wins over eta; expires in seconds; retries; parent and group */
    m = s_read("{\"task\":\"t.x\",\"eta\":\"2030-01-01T00:00:00Z\",\"countdown\":1.5,"
               "\"expires\":60,\"retries\":2,\"parent_id\":\"p-1\",\"group\":\"g-1\","
               "\"queue\":\"q2\",\"ignore_result\":true,\"priority\":9,\"coalesce\":true,"
               "\"args\":[{\"a\":[1,2.5e3,-0.5,\"s\\\"\\\\\\n\"]},null,true,false],"
               "\"kwargs\":{\"k\":{\"n\":[]}}}",
               &r, &rc);
    ck_assert_int_eq(rc, ZQ_OK);
    ck_assert(fabs(r.eta - (s_now + 1.5)) < 1e-9);
    ck_assert(fabs(r.expires - (s_now + 60)) < 1e-9);
    ck_assert(fabs(s_time_of(m, "eta") - (s_now + 1.5)) < 1e-3);
    ck_assert(fabs(s_time_of(m, "expires") - (s_now + 60)) < 1e-3);
    ck_assert_int_eq(r.retries, 2);
    ck_assert_int_eq(zq_json_num(m, "retries", -1), 2);
    ck_assert_str_eq(r.parent_id, "p-1");
    ck_assert_str_eq(zq_json_str(m, "parent_id", ""), "p-1");
    ck_assert_str_eq(zq_json_str(m, "group", ""), "g-1");
    ck_assert_str_eq(zq_json_str(m, "queue", ""), "q2");
    ck_assert(r.ignore_result && cJSON_IsTrue(cJSON_GetObjectItem(m, "ignore_result")));
    ck_assert_int_eq(zq_json_num(m, "priority", -1), 9);
    ck_assert_int_eq(r.coalesce, 1);
    const cJSON *a0 = cJSON_GetArrayItem(cJSON_GetObjectItem(m, "args"), 0);
    ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(a0, "a"), 3)->valuestring, "s\"\\\n");
    cJSON_Delete(m);
    /* eta as given; expires as a timestamp; a past expiry stays an expiry */
    m = s_read("{\"task\":\"t.x\",\"eta\":\"2030-01-01T00:00:00Z\","
               "\"expires\":\"2030-01-02T00:00:00Z\",\"coalesce\":1.5}",
               &r, &rc);
    ck_assert_int_eq(rc, ZQ_OK);
    ck_assert_int_eq((long long)r.eta, 1893456000LL);
    ck_assert_int_eq((long long)r.expires, 1893542400LL);
    ck_assert_int_eq(r.coalesce, 0); /* as s_coalesce: not a form it knows */
    cJSON_Delete(m);
    m = s_read("{\"task\":\"t.x\",\"expires\":-1e10}", &r, &rc);
    ck_assert_int_eq(rc, ZQ_OK);
    ck_assert(r.expires > 0 && r.expires < 1);
    cJSON_Delete(m);
}
END_TEST

/* Everything outside its form goes to the general path, which accepts or refuses it. */
START_TEST(test_declines)
{
    static const char *const bodies[] = {
        "",
        "[]",
        "{}",
        "{\"task\":\"t.x\"} x",                      /* trailing bytes */
        "{\"task\":\"t.x\"",                         /* unterminated */
        "{\"task\":\"t.x\",}",
        "{\"id\":\"a\"}",                            /* no task */
        "{\"task\":\"t.x\",\"task\":\"t.y\"}",       /* twice */
        "{\"task\":\"t.x\",\"timelimit\":[1,2]}",    /* a member it does not take */
        "{\"task\":\"t.x\",\"redelivered\":false}",
        "{\"task\":\"t.x\",\"bogus\":1}",
        "{\"task\":null}",                           /* nulls */
        "{\"task\":\"t.x\",\"id\":null}",
        "{\"task\":\"t.x\",\"eta\":null}",
        "{\"task\":\"t.x\",\"parent_id\":null}",
        "{\"task\":\"t x\"}",                        /* not a token */
        "{\"task\":\"\"}",
        "{\"task\":\"t\\u0041\"}",                   /* escapes in a name */
        "{\"ta\\u0073k\":\"t.x\"}",
        "{\"task\":1}",
        "{\"task\":\"t.x\",\"args\":{}}",            /* wrong types */
        "{\"task\":\"t.x\",\"kwargs\":[]}",
        "{\"task\":\"t.x\",\"args\":\"[1]\"}",
        "{\"task\":\"t.x\",\"args\":[1,]}",          /* not JSON */
        "{\"task\":\"t.x\",\"args\":[01]}",
        "{\"task\":\"t.x\",\"args\":[1.]}",
        "{\"task\":\"t.x\",\"args\":[.5]}",
        "{\"task\":\"t.x\",\"args\":[+1]}",
        "{\"task\":\"t.x\",\"args\":[1e]}",
        "{\"task\":\"t.x\",\"args\":[tru]}",
        "{\"task\":\"t.x\",\"args\":[1e400]}",      /* inf: the general path prints null */
        "{\"task\":\"t.x\",\"kwargs\":{\"a\"}}",
        "{\"task\":\"t.x\",\"kwargs\":{1:2}}",
        "{\"task\":\"t.x\",\"args\":[\"\\ud800\"]}", /* \u: cJSON may refuse it */
        "{\"task\":\"t.x\",\"args\":[\"a\tb\"]}",    /* a raw control character */
        "{\"task\":\"t.x\",\"args\":[\"\\x\"]}",
        "{\"task\":\"t.x\",\"priority\":10}",        /* out of range */
        "{\"task\":\"t.x\",\"priority\":1.5}",
        "{\"task\":\"t.x\",\"retries\":-1}",
        "{\"task\":\"t.x\",\"get\":0}",
        "{\"task\":\"t.x\",\"get\":1.5}",
        "{\"task\":\"t.x\",\"get\":true}",
        "{\"task\":\"t.x\",\"countdown\":1e11}",
        "{\"task\":\"t.x\",\"countdown\":\"5\"}",
        "{\"task\":\"t.x\",\"expires\":1e11}",
        "{\"task\":\"t.x\",\"expires\":\"tomorrow\"}",
        "{\"task\":\"t.x\",\"eta\":\"2030-13-01T00:00:00Z\"}",
        "{\"task\":\"t.x\",\"ignore_result\":1}",
        "{\"task\":\"t.x\",\"coalesce\":\"yes\"}",
        "{\"task\":\"t.x\",\"req\":\"1\"}",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        zq_submit_t r;
        int rc;
        cJSON *m = s_read(bodies[i], &r, &rc);
        ck_assert_msg(rc == ZQ_SUBMIT_DECLINED, "read: %s", bodies[i]);
        cJSON_Delete(m);
    }
    /* nesting past its limit */
    char deep[400] = "{\"task\":\"t.x\",\"args\":";
    for (int i = 0; i < 70; i++)
        strcat(deep, "[");
    for (int i = 0; i < 70; i++)
        strcat(deep, "]");
    strcat(deep, "}");
    zq_submit_t r;
    int rc;
    cJSON_Delete(s_read(deep, &r, &rc));
    ck_assert_int_eq(rc, ZQ_SUBMIT_DECLINED);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("submit");
    TCase *tc = tcase_create("read");
    tcase_add_test(tc, test_client_form);
    tcase_add_test(tc, test_members);
    tcase_add_test(tc, test_declines);
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
