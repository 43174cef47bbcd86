/*
 * check_outbox - upstream batches: framing, numbering, confirmation, resending.
 */
#include "zq.h"
#include "zq_outbox.h"

#include <check.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* a fake upstream socket: records what was sent; refuses when closed */
typedef struct {
    int open;
    int n;
    char *sent[16];
} s_sink_t;

static int s_send(void *arg, const char *json, size_t len)
{
    s_sink_t *k = arg;
    if (!k->open || k->n == 16)
        return ZQ_EIO;
    k->sent[k->n] = strndup(json, len);
    k->n++;
    return ZQ_OK;
}

static void s_sink_clear(s_sink_t *k)
{
    for (int i = 0; i < k->n; i++)
        free(k->sent[i]);
    k->n = 0;
}

static void s_collect(void *arg, const char *id)
{
    char *buf = arg;
    strcat(buf, id);
    strcat(buf, ";");
}

START_TEST(test_one_batch_per_flush)
{
    zq_outbox_t *o = zq_outbox_new("w1@h");
    ck_assert_ptr_nonnull(o);
    s_sink_t k = {.open = 1};
    ck_assert_int_eq(zq_outbox_flush(o, s_send, &k, 1.0), 0); /* nothing to send */
    const char *st = "{\"id\":\"a\",\"state\":\"SUCCESS\"}", *sub = "{\"task\":\"t.x\"}";
    ck_assert_int_eq(zq_outbox_add(o, "STATE", st, strlen(st), NULL, "a"), ZQ_OK);
    ck_assert_int_eq(zq_outbox_add(o, "SUBMIT", sub, strlen(sub), NULL, NULL), ZQ_OK);
    ck_assert_uint_eq(zq_outbox_messages(o), 2);
    ck_assert_int_eq(zq_outbox_flush(o, s_send, &k, 1.0), 1);
    ck_assert_int_eq(k.n, 1);
    cJSON *b = cJSON_Parse(k.sent[0]);
    ck_assert_ptr_nonnull(b);
    ck_assert_str_eq(cJSON_GetObjectItem(b, "worker")->valuestring, "w1@h");
    ck_assert_int_eq(cJSON_GetObjectItem(b, "seq")->valueint, 1);
    cJSON *msgs = cJSON_GetObjectItem(b, "messages");
    ck_assert_int_eq(cJSON_GetArraySize(msgs), 2);
    ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetArrayItem(msgs, 0), 0)->valuestring, "STATE");
    ck_assert_str_eq(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetArrayItem(msgs, 0), 1), "id")->valuestring,
        "a");
    ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetArrayItem(msgs, 1), 0)->valuestring, "SUBMIT");
    cJSON_Delete(b);
    /* sent but not confirmed: kept, not sent twice */
    ck_assert_int_eq(zq_outbox_flush(o, s_send, &k, 2.0), 0);
    ck_assert_uint_eq(zq_outbox_batches(o), 1);
    ck_assert(zq_outbox_oldest_sent(o) == 1.0);
    char ids[64] = "";
    zq_outbox_each_id(o, s_collect, ids);
    ck_assert_str_eq(ids, "a;");
    ck_assert_int_eq(zq_outbox_ack(o, 1), 1);
    ck_assert_uint_eq(zq_outbox_batches(o), 0);
    ck_assert_uint_eq(zq_outbox_messages(o), 0);
    ck_assert(zq_outbox_oldest_sent(o) == 0);
    ck_assert_int_eq(zq_outbox_ack(o, 1), 0); /* a duplicate ACK */
    s_sink_clear(&k);
    zq_outbox_destroy(&o);
    ck_assert_ptr_null(o);
    zq_outbox_destroy(&o); /* NULL-safe */
}
END_TEST

START_TEST(test_kept_while_broker_away)
{
    zq_outbox_t *o = zq_outbox_new("w");
    s_sink_t k = {.open = 0};
    zq_outbox_add(o, "STATE", "{\"id\":\"a\"}", 10, NULL, "a");
    ck_assert_int_eq(zq_outbox_flush(o, s_send, &k, 1.0), 0); /* refused: kept unsent */
    zq_outbox_add(o, "STATE", "{\"id\":\"b\"}", 10, NULL, "b");
    ck_assert_int_eq(zq_outbox_flush(o, s_send, &k, 2.0), 0);
    ck_assert_uint_eq(zq_outbox_batches(o), 2);
    ck_assert(zq_outbox_oldest_sent(o) == 0);
    char ids[64] = "";
    zq_outbox_each_id(o, s_collect, ids);
    ck_assert_str_eq(ids, "a;b;");
    k.open = 1; /* back: both go, oldest first, numbered in order */
    ck_assert_int_eq(zq_outbox_flush(o, s_send, &k, 3.0), 2);
    ck_assert_ptr_nonnull(strstr(k.sent[0], "\"seq\":1,"));
    ck_assert_ptr_nonnull(strstr(k.sent[0], "\"id\":\"a\""));
    ck_assert_ptr_nonnull(strstr(k.sent[1], "\"seq\":2,"));
    s_sink_clear(&k);
    zq_outbox_destroy(&o);
}
END_TEST

START_TEST(test_ack_is_exact_and_resend)
{
    zq_outbox_t *o = zq_outbox_new("w");
    s_sink_t k = {.open = 1};
    for (int i = 0; i < 3; i++) {
        char json[32], id[8];
        snprintf(id, sizeof id, "t%d", i);
        snprintf(json, sizeof json, "{\"id\":\"%s\"}", id);
        zq_outbox_add(o, "STATE", json, strlen(json), NULL, id);
        zq_outbox_flush(o, s_send, &k, 1.0 + i);
    }
    ck_assert_int_eq(k.n, 3);
    ck_assert_uint_eq(zq_outbox_last_seq(o), 3);
    /* batch 1 lost on a broken connection, 2 and 3 confirmed: 1 is still kept */
    ck_assert_int_eq(zq_outbox_ack(o, 3), 1);
    ck_assert_int_eq(zq_outbox_ack(o, 2), 1);
    ck_assert_uint_eq(zq_outbox_batches(o), 1);
    char ids[64] = "";
    zq_outbox_each_id(o, s_collect, ids);
    ck_assert_str_eq(ids, "t0;");
    s_sink_clear(&k);
    zq_outbox_resend(o);
    ck_assert_int_eq(zq_outbox_flush(o, s_send, &k, 9.0), 1);
    ck_assert_ptr_nonnull(strstr(k.sent[0], "\"seq\":1,"));
    ck_assert(zq_outbox_oldest_sent(o) == 9.0);
    /* a new message after that gets the next number */
    zq_outbox_add(o, "RETURN", "{\"ids\":[]}", 10, NULL, NULL);
    zq_outbox_flush(o, s_send, &k, 10.0);
    ck_assert_ptr_nonnull(strstr(k.sent[1], "\"seq\":4,"));
    ck_assert_int_eq(zq_outbox_ack(o, 1), 1);
    ck_assert_int_eq(zq_outbox_ack(o, 4), 1);
    ck_assert_uint_eq(zq_outbox_batches(o), 0);
    s_sink_clear(&k);
    zq_outbox_destroy(&o);
}
END_TEST

START_TEST(test_bad_arguments)
{
    zq_outbox_t *o = zq_outbox_new("w");
    ck_assert_int_eq(zq_outbox_add(o, NULL, "{}", 2, NULL, NULL), ZQ_EINVAL);
    ck_assert_int_eq(zq_outbox_add(o, "STATE", NULL, 0, NULL, NULL), ZQ_EINVAL);
    ck_assert_int_eq(zq_outbox_add(NULL, "STATE", "{}", 2, NULL, NULL), ZQ_EINVAL);
    ck_assert_int_eq(zq_outbox_flush(NULL, s_send, NULL, 1), 0);
    ck_assert_int_eq(zq_outbox_ack(NULL, 1), 0);
    ck_assert_uint_eq(zq_outbox_batches(NULL), 0);
    /* the worker name is escaped into valid JSON */
    zq_outbox_t *q = zq_outbox_new("a\"b");
    s_sink_t k = {.open = 1};
    zq_outbox_add(q, "STATE", "{}", 2, NULL, NULL);
    zq_outbox_flush(q, s_send, &k, 1);
    cJSON *b = cJSON_Parse(k.sent[0]);
    ck_assert_ptr_nonnull(b);
    ck_assert_str_eq(cJSON_GetObjectItem(b, "worker")->valuestring, "a\"b");
    cJSON_Delete(b);
    s_sink_clear(&k);
    zq_outbox_destroy(&q);
    zq_outbox_destroy(&o);
}
END_TEST

START_TEST(test_batches_stay_small)
{
    /* 40 messages of 100 KB: never one batch above ZQ_OUTBOX_BATCH_MAX, all of them sent */
    zq_outbox_t *o = zq_outbox_new("w");
    s_sink_t k = {.open = 1};
    size_t big = 100 * 1024;
    char *json = malloc(big + 1);
    memset(json, ' ', big);
    json[0] = '{';
    json[big - 1] = '}';
    json[big] = '\0';
    for (int i = 0; i < 40; i++)
        ck_assert_int_eq(zq_outbox_add(o, "STATE", json, big, NULL, NULL), ZQ_OK);
    ck_assert_uint_eq(zq_outbox_messages(o), 40);
    ck_assert_int_ge(zq_outbox_flush(o, s_send, &k, 1.0), 4);
    size_t msgs = 0;
    for (int i = 0; i < k.n; i++) {
        ck_assert_uint_le(strlen(k.sent[i]), ZQ_OUTBOX_BATCH_MAX);
        cJSON *b = cJSON_Parse(k.sent[i]);
        ck_assert_ptr_nonnull(b);
        msgs += (size_t)cJSON_GetArraySize(cJSON_GetObjectItem(b, "messages"));
        cJSON_Delete(b);
    }
    ck_assert_uint_eq(msgs, 40);
    free(json);
    s_sink_clear(&k);
    zq_outbox_destroy(&o);
}
END_TEST

START_TEST(test_extra_members)
{
    /* members folded into a message as it is queued: no copy of the message first */
    zq_outbox_t *o = zq_outbox_new("w");
    s_sink_t k = {.open = 1};
    const char *st = "{\"id\":\"a\",\"state\":\"SUCCESS\"}";
    zq_outbox_add(o, "STATE", st, strlen(st), "\"received\":\"2026-11-26T12:00:00Z\"", "a");
    zq_outbox_add(o, "STATE", "{}", 2, "\"x\":1", NULL);
    zq_outbox_add(o, "STATE", "[1]", 3, "\"x\":1", NULL); /* not an object: sent as it is */
    zq_outbox_add(o, "STATE", st, strlen(st), "", NULL);
    zq_outbox_flush(o, s_send, &k, 1.0);
    cJSON *b = cJSON_Parse(k.sent[0]);
    ck_assert_ptr_nonnull(b);
    cJSON *msgs = cJSON_GetObjectItem(b, "messages");
    cJSON *m0 = cJSON_GetArrayItem(cJSON_GetArrayItem(msgs, 0), 1);
    ck_assert_str_eq(cJSON_GetObjectItem(m0, "state")->valuestring, "SUCCESS");
    ck_assert_str_eq(cJSON_GetObjectItem(m0, "received")->valuestring, "2026-11-26T12:00:00Z");
    cJSON *m1 = cJSON_GetArrayItem(cJSON_GetArrayItem(msgs, 1), 1);
    ck_assert_int_eq(cJSON_GetObjectItem(m1, "x")->valueint, 1);
    ck_assert(cJSON_IsArray(cJSON_GetArrayItem(cJSON_GetArrayItem(msgs, 2), 1)));
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetArrayItem(cJSON_GetArrayItem(msgs, 3), 1)), 2);
    cJSON_Delete(b);
    s_sink_clear(&k);
    zq_outbox_destroy(&o);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("outbox");
    TCase *tc = tcase_create("batches");
    tcase_add_test(tc, test_one_batch_per_flush);
    tcase_add_test(tc, test_kept_while_broker_away);
    tcase_add_test(tc, test_ack_is_exact_and_resend);
    tcase_add_test(tc, test_bad_arguments);
    tcase_add_test(tc, test_batches_stay_small);
    tcase_add_test(tc, test_extra_members);
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
