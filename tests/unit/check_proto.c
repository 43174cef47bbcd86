/* Unit tests for common/zq_proto (ZQP/1 framing), zq_util (endpoints) and zq_uuid. */
#include "config.h"
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "zq.h"
#include "zq_proto.h"
#include "zq_util.h"
#include "zq_time.h"
#include "zq_uuid.h"
#include "zq_sb.h"

#include <stdio.h>

static int s_decode(const char **frames, size_t n, int has_id, zq_msg_t *m, char *err)
{
    const void *f[8];
    size_t sz[8];
    for (size_t i = 0; i < n; i++) {
        f[i] = frames[i];
        sz[i] = strlen(frames[i]);
    }
    return zq_msg_decode(f, sz, n, has_id, m, err, 128);
}

START_TEST(test_decode_valid)
{
    const char *fr[] = {"peer1", "ZQP01", "SUBMIT", "{\"task\":\"tasks.add\",\"args\":[2,2]}"};
    zq_msg_t m;
    char err[128] = "";
    ck_assert_int_eq(s_decode(fr, 4, 1, &m, err), ZQ_OK);
    ck_assert_uint_eq(m.identity_len, 5);
    ck_assert_mem_eq(m.identity, "peer1", 5);
    ck_assert_str_eq(m.cmd, "SUBMIT");
    ck_assert_str_eq(zq_json_str(m.body, "task", ""), "tasks.add");
    zq_msg_clear(&m);
    ck_assert_ptr_null(m.body);
}
END_TEST

START_TEST(test_decode_no_identity)
{
    const char *fr[] = {"ZQP01", "STATE", "{\"id\":\"x\",\"state\":\"STARTED\"}"};
    zq_msg_t m;
    char err[128];
    ck_assert_int_eq(s_decode(fr, 3, 0, &m, err), ZQ_OK);
    ck_assert_str_eq(m.cmd, "STATE");
    zq_msg_clear(&m);
}
END_TEST

START_TEST(test_decode_bad_version)
{
    const char *fr[] = {"p", "ZQP02", "SUBMIT", "{}"};
    zq_msg_t m;
    char err[128];
    ck_assert_int_eq(s_decode(fr, 4, 1, &m, err), ZQ_EPROTO);
    ck_assert_ptr_nonnull(strstr(err, "version"));
    ck_assert_ptr_null(m.body);
}
END_TEST

START_TEST(test_decode_bad_frames)
{
    const char *two[] = {"p", "ZQP01", "SUBMIT"};
    const char *five[] = {"p", "ZQP01", "SUBMIT", "{}", "{}"};
    zq_msg_t m;
    char err[128];
    ck_assert_int_eq(s_decode(two, 3, 1, &m, err), ZQ_EPROTO);
    ck_assert_ptr_nonnull(strstr(err, "3 frames"));
    ck_assert_int_eq(s_decode(five, 5, 1, &m, err), ZQ_EPROTO);
    ck_assert_int_eq(s_decode(five, 0, 1, &m, err), ZQ_EPROTO);
}
END_TEST

START_TEST(test_decode_bad_body)
{
    const char *notjson[] = {"p", "ZQP01", "SUBMIT", "{\"task\":"};
    const char *array[] = {"p", "ZQP01", "SUBMIT", "[1,2]"};
    const char *trailing[] = {"p", "ZQP01", "SUBMIT", "{} x"};
    const char *badcmd[] = {"p", "ZQP01", "sub mit", "{}"};
    const char *longcmd[] = {"p", "ZQP01", "ABCDEFGHIJKLMNOPQ", "{}"};
    zq_msg_t m;
    char err[128];
    ck_assert_int_eq(s_decode(notjson, 4, 1, &m, err), ZQ_EPROTO);
    ck_assert_ptr_nonnull(strstr(err, "not valid JSON"));
    ck_assert_int_eq(s_decode(array, 4, 1, &m, err), ZQ_EPROTO);
    ck_assert_ptr_nonnull(strstr(err, "not a JSON object"));
    ck_assert_int_eq(s_decode(trailing, 4, 1, &m, err), ZQ_EPROTO);
    ck_assert_int_eq(s_decode(badcmd, 4, 1, &m, err), ZQ_EPROTO);
    ck_assert_int_eq(s_decode(longcmd, 4, 1, &m, err), ZQ_EPROTO);
}
END_TEST

START_TEST(test_decode_binary_body)
{
    /* a NUL inside the body must not be read past, nor accepted */
    const void *f[4] = {"p", "ZQP01", "SUBMIT", "{}\0garbage"};
    size_t sz[4] = {1, 5, 6, 10};
    zq_msg_t m;
    char err[128];
    ck_assert_int_eq(zq_msg_decode(f, sz, 4, 1, &m, err, sizeof err), ZQ_EPROTO);
}
END_TEST

START_TEST(test_roundtrip_over_sockets)
{
    char dir[] = "/tmp/zqprotoXXXXXX", ep[128];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(ep, sizeof ep, "ipc://%s/s", dir);
    void *ctx = zmq_ctx_new();
    void *router = zmq_socket(ctx, ZMQ_ROUTER), *dealer = zmq_socket(ctx, ZMQ_DEALER);
    zq_socket_defaults(router);
    zq_socket_defaults(dealer);
    ck_assert_int_eq(zmq_bind(router, ep), 0);
    ck_assert_int_eq(zmq_connect(dealer, ep), 0);
    cJSON *body = cJSON_CreateObject();
    cJSON_AddNumberToObject(body, "req", 7);
    cJSON_AddStringToObject(body, "id", "abc");
    ck_assert_int_eq(zq_msg_send(dealer, NULL, 0, ZQ_CMD_QUERY, body, 0), ZQ_OK);
    cJSON_Delete(body);
    zq_msg_t m;
    char err[128];
    ck_assert_int_eq(zq_msg_recv(router, 1, &m, 0, err, sizeof err), ZQ_OK);
    ck_assert_str_eq(m.cmd, "QUERY");
    ck_assert_str_eq(zq_json_str(m.body, "id", ""), "abc");
    /* reply with an error; the dealer sees the echoed req */
    cJSON *rep = zq_reply_error(m.body, ZQ_WERR_NOTFOUND, "no task %s", "abc");
    ck_assert_int_eq(zq_msg_send(router, m.identity, m.identity_len, ZQ_CMD_REPLY, rep, 0), ZQ_OK);
    cJSON_Delete(rep);
    zq_msg_clear(&m);
    ck_assert_int_eq(zq_msg_recv(dealer, 0, &m, 0, err, sizeof err), ZQ_OK);
    ck_assert_str_eq(m.cmd, "REPLY");
    ck_assert_int_eq((int)zq_json_num(m.body, "req", -1), 7);
    const cJSON *e = cJSON_GetObjectItem(m.body, "error");
    ck_assert_str_eq(zq_json_str(e, "code", ""), "ENOTFOUND");
    ck_assert_str_eq(zq_json_str(e, "message", ""), "no task abc");
    zq_msg_clear(&m);
    /* nothing waiting: DONTWAIT gives ETIMEOUT */
    ck_assert_int_eq(zq_msg_recv(dealer, 0, &m, ZMQ_DONTWAIT, err, sizeof err), ZQ_ETIMEOUT);
    /* a malformed multipart message is consumed whole and reported with the sender's id */
    zmq_send(dealer, "ZQP01", 5, ZMQ_SNDMORE);
    zmq_send(dealer, "SUBMIT", 6, 0);
    ck_assert_int_eq(zq_msg_recv(router, 1, &m, 0, err, sizeof err), ZQ_EPROTO);
    ck_assert_uint_gt(m.identity_len, 0);
    zmq_close(router);
    zmq_close(dealer);
    zmq_ctx_term(ctx);
    char path[160];
    snprintf(path, sizeof path, "%s/s", dir);
    unlink(path);
    rmdir(dir);
}
END_TEST

/* Split text with zq_jarray_*; the elements joined with '|' into out; returns the last
 * zq_jarray_next code (0: clean end) or the zq_jarray_begin error. Each element is copied
 * into a buffer of its own size, so that ASan sees a read past it. */
static int s_split(const char *text, char *out, size_t outlen)
{
    zq_jarray_t it;
    size_t len = strlen(text);
    char *copy = malloc(len ? len : 1); /* no NUL: the scanner must stop at len */
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, text, len);
    out[0] = '\0';
    int rc = zq_jarray_begin(&it, copy, len);
    const char *e;
    size_t n;
    while (rc == ZQ_OK && (rc = zq_jarray_next(&it, &e, &n)) == 1) {
        ck_assert(e >= copy && e + n <= copy + len);
        size_t o = strlen(out);
        ck_assert(o + n + 2 < outlen);
        if (o)
            out[o++] = '|';
        memcpy(out + o, e, n);
        out[o + n] = '\0';
        rc = ZQ_OK;
    }
    free(copy);
    return rc;
}

/* zq_json_members: the first member of each name, in one pass; absent -> NULL. */
START_TEST(test_json_members)
{
    cJSON *o = cJSON_Parse("{\"b\":2,\"a\":\"x\",\"b\":3,\"ab\":true,\"c\":null}");
    static const char *const keys[] = {"a", "b", "ab", "zz", "c"};
    const cJSON *f[5];
    zq_json_members(o, keys, 5, f);
    ck_assert_str_eq(zq_json_member_str(f[0], "-"), "x");
    ck_assert(cJSON_IsNumber(f[1]) && f[1]->valuedouble == 2); /* the first "b" */
    ck_assert(cJSON_IsTrue(f[2]));
    ck_assert_ptr_null(f[3]);
    ck_assert(cJSON_IsNull(f[4]));
    ck_assert_str_eq(zq_json_member_str(f[1], "-"), "-"); /* not a string */
    ck_assert_str_eq(zq_json_member_str(NULL, "-"), "-");
    cJSON_Delete(o);
    o = cJSON_Parse("[1,2]");
    zq_json_members(o, keys, 5, f); /* not an object: nothing found */
    for (int i = 0; i < 5; i++)
        ck_assert_ptr_null(f[i]);
    zq_json_members(NULL, keys, 5, f);
    ck_assert_ptr_null(f[0]);
    cJSON_Delete(o);
}
END_TEST

START_TEST(test_jarray_split)
{
    char out[512];
    ck_assert_int_eq(s_split("[]", out, sizeof out), 0);
    ck_assert_str_eq(out, "");
    ck_assert_int_eq(s_split(" \n[ \t] \r\n", out, sizeof out), 0);
    ck_assert_int_eq(s_split("[{\"id\":\"a\"}]", out, sizeof out), 0);
    ck_assert_str_eq(out, "{\"id\":\"a\"}");
    /* nesting, whitespace around elements trimmed, scalars are elements too */
    ck_assert_int_eq(s_split("[ {\"a\":[1,[2,{\"b\":[]}]],\"c\":{}} ,\n[3,4],5, \"x\" ,null]", out,
                             sizeof out),
                     0);
    ck_assert_str_eq(out, "{\"a\":[1,[2,{\"b\":[]}]],\"c\":{}}|[3,4]|5|\"x\"|null");
    /* brackets, commas and escaped quotes inside strings do not count */
    ck_assert_int_eq(s_split("[{\"s\":\"],[{\\\"}\"},\"\\\\\",{\"t\":\"\\\\\\\"]\"}]", out,
                             sizeof out),
                     0);
    ck_assert_str_eq(out, "{\"s\":\"],[{\\\"}\"}|\"\\\\\"|{\"t\":\"\\\\\\\"]\"}");
    /* what is inside an element is the parser's business: split as given */
    ck_assert_int_eq(s_split("[{\"a\":1} {\"b\":2}, {]]", out, sizeof out), 0);
    ck_assert_str_eq(out, "{\"a\":1} {\"b\":2}|{]");
}
END_TEST

START_TEST(test_jarray_malformed)
{
    char out[512];
    const char *bad_start[] = {"", "  ", "{}", "x[]", "\"[\""};
    for (size_t i = 0; i < sizeof bad_start / sizeof *bad_start; i++)
        ck_assert_msg(s_split(bad_start[i], out, sizeof out) == ZQ_EPROTO, "%s", bad_start[i]);
    /* elements before the error are returned */
    struct {
        const char *text, *before;
    } bad[] = {
        {"[", ""},
        {"[1", ""},
        {"[1,", "1"},
        {"[1,]", "1"},
        {"[,1]", ""},
        {"[1,,2]", "1"},
        {"[{\"a\":1}", ""},
        {"[{\"a\":\"]}", ""},          /* unterminated string */
        {"[\"\\", ""},                 /* escape at the very end */
        {"[{\"a\":1}}]", ""},          /* stray '}' */
        {"[1] x", "1"},                /* bytes after the array */
        {"[1]]", "1"},
        {"[] ,", ""},
        {"[[1,2]", ""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ck_assert_msg(s_split(bad[i].text, out, sizeof out) == ZQ_EPROTO, "%s", bad[i].text);
        ck_assert_msg(!strcmp(out, bad[i].before), "%s: got %s", bad[i].text, out);
    }
}
END_TEST

START_TEST(test_endpoints)
{
    char out[256];
    ck_assert_int_eq(zq_endpoint_derive("tcp://127.0.0.1:7460", 1, ".up", out, sizeof out), ZQ_OK);
    ck_assert_str_eq(out, "tcp://127.0.0.1:7461");
    ck_assert_int_eq(zq_endpoint_derive("ipc:///tmp/zq/b", 2, ".ev", out, sizeof out), ZQ_OK);
    ck_assert_str_eq(out, "ipc:///tmp/zq/b.ev");
    ck_assert_int_eq(zq_endpoint_derive("tcp://127.0.0.1:65535", 1, "", out, sizeof out),
                     ZQ_EINVAL);
    ck_assert_int_eq(zq_endpoint_derive("udp://x:1", 1, "", out, sizeof out), ZQ_EINVAL);
    ck_assert_int_eq(zq_endpoint_derive("tcp://127.0.0.1:abc", 1, "", out, sizeof out), ZQ_EINVAL);
    ck_assert_int_eq(zq_endpoint_ephemeral("tcp://127.0.0.1:7460", ".d1", out, sizeof out), ZQ_OK);
    ck_assert_str_eq(out, "tcp://127.0.0.1:*");
    ck_assert_int_eq(zq_endpoint_resolve("tcp://0.0.0.0:4000", "tcp://10.1.2.3:7460", out,
                                         sizeof out),
                     ZQ_OK);
    ck_assert_str_eq(out, "tcp://10.1.2.3:4000");
    ck_assert_int_eq(zq_endpoint_resolve("tcp://127.0.0.1:4000", "tcp://h:1", out, sizeof out),
                     ZQ_OK);
    ck_assert_str_eq(out, "tcp://127.0.0.1:4000");
    ck_assert_int_eq(zq_endpoint_is_public("tcp://127.0.0.1:1"), 0);
    ck_assert_int_eq(zq_endpoint_is_public("tcp://0.0.0.0:1"), 1);
    ck_assert_int_eq(zq_endpoint_is_public("ipc:///tmp/x"), 0);
}
END_TEST

START_TEST(test_broker_url_default)
{
    unsetenv("ZQ_BROKER");
    ck_assert_str_eq(zq_broker_url(NULL), ZQ_DEFAULT_BROKER);
    setenv("ZQ_BROKER", "tcp://127.0.0.1:9", 1);
    ck_assert_str_eq(zq_broker_url(""), "tcp://127.0.0.1:9");
    ck_assert_str_eq(zq_broker_url("ipc:///x"), "ipc:///x");
    unsetenv("ZQ_BROKER");
}
END_TEST

START_TEST(test_hash)
{
    /* the same bytes, the same hash, whichever function; every length up to two words */
    const char *id = "0192b3c4-d5e6-7f80-9a1b-2c3d4e5f6a7b";
    ck_assert(zq_hash_str(id) == zq_hash(id, strlen(id)));
    ck_assert(zq_hash(NULL, 0) == zq_hash("", 0));
    for (size_t n = 0; n < 17; n++)
        ck_assert(zq_hash(id, n) != zq_hash(id, n + 1));
    /* ids made in the same millisecond differ in a few late characters: the low bits a
     * table masks still spread them (no bucket of 1,024 holds more than 16 of 4,096) */
    static int bucket[1024];
    char buf[40];
    for (int i = 0; i < 4096; i++) {
        snprintf(buf, sizeof buf, "0192b3c4-d5e6-7f80-9a1b-2c3d4e5f%04x", i);
        bucket[zq_hash_str(buf) & 1023]++;
    }
    for (int i = 0; i < 1024; i++)
        ck_assert_int_le(bucket[i], 16);
}
END_TEST

START_TEST(test_u64_digits)
{
    char buf[20];
    size_t n;
    const char *d = zq_u64_digits(0, buf, &n);
    ck_assert(n == 1 && d[0] == '0');
    d = zq_u64_digits(1234567890, buf, &n);
    ck_assert(n == 10 && !memcmp(d, "1234567890", 10));
    d = zq_u64_digits(UINT64_MAX, buf, &n);
    ck_assert(n == 20 && !memcmp(d, "18446744073709551615", 20) && d == buf);
}
END_TEST

START_TEST(test_sb_fixed6)
{
    /* the record's runtime: "%.6f" without printf, the same text for the values a task's
     * runtime takes (a tie at the seventh decimal may round the other way: none here) */
    const double v[] = {0,         0.0005,    0.000001,  0.0000004,   0.25,      1,
                        1.5,       12.3456789, 59.999999, 59.9999996, 3600.000001,
                        123456.654321, 999999999.999999, 1e9, 1e12, -1, 1e-300};
    srand(7);
    for (size_t i = 0; i < sizeof v / sizeof v[0] + 2000; i++) {
        double x = i < sizeof v / sizeof v[0] ? v[i] : (double)rand() / RAND_MAX * 1000.0;
        zq_sb_t sb = {0};
        zq_sb_fixed6(&sb, x);
        char want[64];
        snprintf(want, sizeof want, "%.6f", x);
        ck_assert_int_eq(sb.oom, 0);
        ck_assert_msg(sb.len == strlen(want) && !memcmp(sb.buf, want, sb.len),
                      "%.17g: %.*s, printf %s", x, (int)sb.len, sb.buf, want);
        zq_sb_free(&sb);
    }
    zq_sb_t sb = {0};
    zq_sb_reserve(&sb, 5000);
    ck_assert_uint_ge(sb.cap, 5001);
    ck_assert_uint_eq(sb.len, 0);
    zq_sb_free(&sb);
}
END_TEST

START_TEST(test_uuid_and_tokens)
{
    char a[37], b[37];
    zq_uuid4(a);
    zq_uuid4(b);
    ck_assert_int_eq(zq_uuid_valid(a), 1);
    ck_assert_str_ne(a, b);
    ck_assert_int_eq(a[14], '4');
    ck_assert(strchr("89ab", a[19]) != NULL);
    ck_assert_int_eq(zq_uuid_valid("not-a-uuid"), 0);
    /* task ids: uuid7, in minting order, the millisecond clock in the first 48 bits */
    char prev[37], next[37];
    zq_uuid7(prev);
    ck_assert_int_eq(zq_uuid_valid(prev), 1);
    ck_assert_int_eq(prev[14], '7');
    ck_assert(strchr("89ab", prev[19]) != NULL);
    unsigned long long ms = strtoull(prev, NULL, 16) << 16 | strtoull(prev + 9, NULL, 16);
    ck_assert(llabs((long long)ms - (long long)(zq_now() * 1000)) < 2000);
    for (int i = 0; i < 1000; i++) {
        zq_uuid7(next);
        /* time and sub-millisecond fraction (the first 18 characters) never go back; the
         * random rest orders ids minted within the same 1/4096 ms */
        ck_assert_msg(strncmp(prev, next, 18) <= 0, "%s minted after %s sorts before it", next,
                      prev);
        ck_assert_str_ne(prev, next);
        memcpy(prev, next, sizeof prev);
    }
    ck_assert_int_eq(zq_valid_token("tasks.add"), 1);
    ck_assert_int_eq(zq_valid_token(""), 0);
    ck_assert_int_eq(zq_valid_token("has space"), 0);
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[299] = '\0';
    ck_assert_int_eq(zq_valid_token(longname), 0);
}
END_TEST

static Suite *zq_proto_suite(void)
{
    Suite *s = suite_create("zq_proto");
    TCase *core = tcase_create("Core");
    tcase_add_test(core, test_decode_valid);
    tcase_add_test(core, test_decode_no_identity);
    tcase_add_test(core, test_roundtrip_over_sockets);
    tcase_add_test(core, test_jarray_split);
    tcase_add_test(core, test_json_members);
    suite_add_tcase(s, core);
    TCase *errors = tcase_create("Errors");
    tcase_add_test(errors, test_decode_bad_version);
    tcase_add_test(errors, test_decode_bad_frames);
    tcase_add_test(errors, test_decode_bad_body);
    tcase_add_test(errors, test_decode_binary_body);
    tcase_add_test(errors, test_jarray_malformed);
    suite_add_tcase(s, errors);
    TCase *util = tcase_create("Util");
    tcase_add_test(util, test_endpoints);
    tcase_add_test(util, test_broker_url_default);
    tcase_add_test(util, test_uuid_and_tokens);
    tcase_add_test(util, test_hash);
    tcase_add_test(util, test_u64_digits);
    tcase_add_test(util, test_sb_fixed6);
    suite_add_tcase(s, util);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(zq_proto_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
