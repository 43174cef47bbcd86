/*
 * check_request - the request context and one task run (worker/zq_exec.c, sdk/zq_task.c):
 * decoding a TASK message, every accessor, the Celery-shaped dumps, and the STATE body each
 * outcome produces (success, failure, retry, retry refused, bad arguments, unknown task,
 * sub-tasks), with the plugins/tasks.so example and the tests/plugins/testtasks.so fixture.
 */
#include "config.h"
#include "zq_exec.h"
#include "zq_loader.h"
#include "zq_log.h"
#include "zq_task_int.h"
#include "zq_time.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WORKER "zq@testhost"
#define ID "63ae17f1-f1ee-40d5-9c78-e1db3f0607e1"

static FILE *s_log;
static zq_loader_t *s_loader;

static const char *s_built(const char *rel)
{
    static char path[4096];
    const char *d = getenv("ZQ_BUILDDIR");
    snprintf(path, sizeof path, "%s/%s", d && *d ? d : ZQ_BUILDDIR, rel);
    return path;
}

static void s_setup(void)
{
    s_log = tmpfile();
    ck_assert_ptr_nonnull(s_log);
    zq_log_set_stream(s_log);
    zq_log_set_level(ZQ_LOG_INFO);
}

static void s_teardown(void)
{
    zq_log_set_stream(NULL);
    if (s_log)
        fclose(s_log);
    s_log = NULL;
}

static void s_setup_exec(void)
{
    s_setup();
    s_loader = zq_loader_new();
    ck_assert_int_eq(zq_loader_load_file(s_loader, s_built("plugins/tasks.so")), ZQ_OK);
    ck_assert_int_eq(zq_loader_load_file(s_loader, s_built("tests/plugins/testtasks.so")), ZQ_OK);
}

static void s_teardown_exec(void)
{
    zq_loader_destroy(&s_loader);
    s_teardown();
}

static char *s_logged(void)
{
    fflush(s_log);
    long n = ftell(s_log);
    char *buf = calloc(1, (size_t)n + 1);
    rewind(s_log);
    size_t got = fread(buf, 1, (size_t)n, s_log);
    buf[got] = '\0';
    fseek(s_log, 0, SEEK_END);
    return buf;
}

/* Sub-tasks captured by the emit hook. */
static char *s_emitted;
static char s_emitted_cmd[16];

static int s_emit(void *arg, const char *cmd, const char *json, size_t len)
{
    (void)arg;
    free(s_emitted);
    s_emitted = strndup(json, len);
    snprintf(s_emitted_cmd, sizeof s_emitted_cmd, "%s", cmd);
    return ZQ_OK;
}

/* Decode body_text, run its task, return the STATE body parsed (caller deletes). */
static cJSON *s_run(const char *body_text, zq_outcome_state_t want)
{
    cJSON *body = cJSON_Parse(body_text);
    ck_assert_ptr_nonnull(body);
    zq_request_t r;
    char err[256];
    ck_assert_int_eq(zq_exec_decode(&r, body, err, sizeof err), ZQ_OK);
    const zq_task_entry_t *t = zq_loader_find(s_loader, r.task);
    ck_assert_ptr_nonnull(t);
    zq_exec_env_t env = {WORKER, s_emit, NULL, NULL};
    zq_outcome_t out;
    ck_assert_int_eq(zq_exec_run(t, &r, &env, &out), ZQ_OK);
    ck_assert_int_eq(out.state, want);
    ck_assert_ptr_nonnull(out.json);
    ck_assert_uint_eq(strlen(out.json), out.len);
    cJSON *st = cJSON_Parse(out.json);
    ck_assert_msg(st != NULL, "STATE is not JSON: %s", out.json);
    ck_assert_str_eq(cJSON_GetObjectItem(st, "id")->valuestring, r.id);
    ck_assert_str_eq(cJSON_GetObjectItem(st, "worker")->valuestring, WORKER);
    double ts;
    ck_assert_int_eq(zq_time_parse(cJSON_GetObjectItem(st, "timestamp")->valuestring, &ts), ZQ_OK);
    ck_assert(fabs(ts - zq_now()) < 5);
    zq_outcome_clear(&out);
    zq_request_clear(&r);
    cJSON_Delete(body);
    return st;
}

static const char *s_str(const cJSON *o, const char *path1, const char *path2)
{
    const cJSON *it = cJSON_GetObjectItem(o, path1);
    if (path2)
        it = cJSON_GetObjectItem(it, path2);
    ck_assert_msg(cJSON_IsString(it), "%s%s%s is not a string", path1, path2 ? "." : "",
                  path2 ? path2 : "");
    return it->valuestring;
}

static double s_num(const cJSON *o, const char *key)
{
    const cJSON *it = cJSON_GetObjectItem(o, key);
    ck_assert_msg(cJSON_IsNumber(it), "%s is not a number", key);
    return it->valuedouble;
}

/* --- Decode -------------------------------------------------------------------------- */

static const char *const s_full =
    "{\"id\":\"" ID "\",\"task\":\"tasks.add_when_binded\",\"args\":[5,5],\"kwargs\":{},"
    "\"queue\":\"hipri\",\"eta\":\"2026-11-26T12:00:00.000000Z\",\"expires\":"
    "\"2026-11-27T12:00:00Z\",\"retries\":2,\"root_id\":\"root-1\",\"parent_id\":\"parent-1\","
    "\"group\":\"g-1\",\"origin\":\"gen5697@sm\",\"ignore_result\":true,\"timelimit\":[10,5.5],"
    "\"priority\":6,\"redelivered\":true,\"sent\":\"2026-11-26T11:00:00Z\",\"unknown\":1}";

START_TEST(test_decode_every_accessor)
{
    cJSON *body = cJSON_Parse(s_full);
    zq_request_t r;
    char err[128];
    ck_assert_int_eq(zq_exec_decode(&r, body, err, sizeof err), ZQ_OK);
    r.hostname = WORKER;
    ck_assert_str_eq(zq_request_id(&r), ID);
    ck_assert_str_eq(zq_request_task(&r), "tasks.add_when_binded");
    ck_assert_int_eq(cJSON_GetArraySize(zq_request_args(&r)), 2);
    ck_assert(cJSON_IsObject(zq_request_kwargs(&r)));
    ck_assert_int_eq(zq_request_retries(&r), 2);
    ck_assert_str_eq(zq_request_eta(&r), "2026-11-26T12:00:00.000000Z");
    ck_assert_str_eq(zq_request_expires(&r), "2026-11-27T12:00:00Z");
    ck_assert(r.eta_t > 0 && r.expires_t - r.eta_t == 86400);
    ck_assert_str_eq(zq_request_root_id(&r), "root-1");
    ck_assert_str_eq(zq_request_parent_id(&r), "parent-1");
    ck_assert_str_eq(zq_request_group(&r), "g-1");
    ck_assert_str_eq(zq_request_hostname(&r), WORKER);
    ck_assert_str_eq(zq_request_origin(&r), "gen5697@sm");
    ck_assert_str_eq(zq_request_queue(&r), "hipri");
    ck_assert_int_eq(zq_request_redelivered(&r), 1);
    double hard, soft;
    zq_request_timelimit(&r, &hard, &soft);
    ck_assert(hard == 10 && soft == 5.5);
    ck_assert_int_eq(zq_request_is_eager(&r), 0);
    ck_assert_int_eq(zq_request_called_directly(&r), 0);
    ck_assert_int_eq(r.ignore_result, 1);
    ck_assert_int_eq(r.priority, 6);
    zq_request_clear(&r);
    cJSON_Delete(body);
}
END_TEST

START_TEST(test_decode_defaults)
{
    cJSON *body = cJSON_Parse("{\"id\":\"abc\",\"task\":\"tasks.add\"}");
    zq_request_t r;
    ck_assert_int_eq(zq_exec_decode(&r, body, NULL, 0), ZQ_OK);
    ck_assert(cJSON_IsArray(r.args) && cJSON_GetArraySize(r.args) == 0);
    ck_assert(cJSON_IsObject(r.kwargs) && r.kwargs->child == NULL);
    ck_assert_str_eq(zq_request_root_id(&r), "abc"); /* its own id */
    ck_assert_ptr_null(zq_request_parent_id(&r));
    ck_assert_ptr_null(zq_request_group(&r));
    ck_assert_ptr_null(zq_request_eta(&r));
    ck_assert_ptr_null(zq_request_expires(&r));
    ck_assert_str_eq(zq_request_queue(&r), "celery");
    ck_assert_int_eq(zq_request_retries(&r), 0);
    ck_assert_int_eq(zq_request_redelivered(&r), 0);
    double hard = 1, soft = 1;
    zq_request_timelimit(&r, &hard, &soft);
    ck_assert(hard == 0 && soft == 0);
    zq_request_clear(&r);
    zq_request_clear(&r); /* idempotent */
    zq_request_clear(NULL);
    cJSON_Delete(body);
    /* accessors are NULL-safe */
    ck_assert_ptr_null(zq_request_id(NULL));
    ck_assert_int_eq(zq_request_retries(NULL), 0);
    ck_assert_ptr_null(zq_request_to_json(NULL));
    ck_assert_ptr_null(zq_request_to_string(NULL));
}
END_TEST

START_TEST(test_decode_errors)
{
    static const struct {
        const char *json;
        int rc;
        const char *needle;
    } cases[] = {
        {"{\"task\":\"tasks.add\"}", ZQ_EPROTO, "id"},
        {"{\"id\":\"has space\",\"task\":\"tasks.add\"}", ZQ_EPROTO, "id"},
        {"{\"id\":42,\"task\":\"tasks.add\"}", ZQ_EPROTO, "id"},
        {"{\"id\":\"a\"}", ZQ_EINVAL, "task name"},
        {"{\"id\":\"a\",\"task\":\"tasks.add\",\"args\":{\"x\":1}}", ZQ_EINVAL,
         "args must be a JSON array, got an object"},
        {"{\"id\":\"a\",\"task\":\"tasks.add\",\"args\":\"[1,2]\"}", ZQ_EINVAL,
         "args must be a JSON array, got a string"},
        {"{\"id\":\"a\",\"task\":\"tasks.add\",\"kwargs\":[1]}", ZQ_EINVAL,
         "kwargs must be a JSON object, got an array"},
        {"{\"id\":\"a\",\"task\":\"tasks.add\",\"eta\":\"tomorrow\"}", ZQ_EINVAL, "eta"},
        {"{\"id\":\"a\",\"task\":\"tasks.add\",\"expires\":12}", ZQ_EINVAL, "expires"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *body = cJSON_Parse(cases[i].json);
        ck_assert_ptr_nonnull(body);
        zq_request_t r;
        char err[256] = "";
        ck_assert_int_eq(zq_exec_decode(&r, body, err, sizeof err), cases[i].rc);
        ck_assert_msg(strstr(err, cases[i].needle), "case %zu: '%s' lacks '%s'", i, err,
                      cases[i].needle);
        if (cases[i].rc == ZQ_EINVAL)
            ck_assert_str_eq(r.id, "a"); /* the failure can still be reported */
        zq_request_clear(&r);
        cJSON_Delete(body);
    }
}
END_TEST

static int s_same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

/* The text reader of a prefork worker's main process (zq_exec_decode_text) gives what the
 * tree reader gives, args and kwargs once asked for; it declines, keeping nothing, every
 * message the tree reader refuses or words, and forms it leaves to cJSON. */
START_TEST(test_decode_text)
{
    static const char *const same[] = {
        "{\"id\":\"" ID "\",\"task\":\"tasks.add\",\"args\":[2,3],\"kwargs\":{\"k\":[1,{}]},"
        "\"queue\":\"celery\",\"priority\":3,\"origin\":\"gen1@h\",\"root_id\":\"r1\","
        "\"parent_id\":\"p1\",\"group\":\"g1\",\"eta\":\"2026-11-26T12:00:00Z\","
        "\"expires\":\"2026-11-27T12:00:00.5Z\",\"sent\":\"2026-11-26T11:00:00Z\",\"retries\":4,"
        "\"redelivered\":true,\"ignore_result\":false,\"timelimit\":[10,null]}",
        "{\"id\":\"a\",\"task\":\"t.x\"}",
        " { \"task\" : \"t.x\" , \"id\" : \"a\" , \"args\" : null , \"kwargs\" : null ,"
        " \"eta\" : null , \"queue\" : \"q\\\"1\\\\\" , \"timelimit\" : [ -1 , 2.5 ] ,"
        " \"retries\" : -3 , \"priority\" : 12 , \"x\" : [ \"\\n\" ] } ",
    };
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        cJSON *body = cJSON_Parse(same[i]);
        ck_assert_ptr_nonnull(body);
        zq_request_t t, j;
        char *store, err[256];
        ck_assert_int_eq(zq_exec_decode_text(&t, same[i], strlen(same[i]), &store), ZQ_OK);
        ck_assert_int_eq(zq_exec_decode(&j, body, err, sizeof err), ZQ_OK);
        ck_assert(s_same(t.id, j.id) && s_same(t.task, j.task) && s_same(t.queue, j.queue));
        ck_assert(s_same(t.root_id, j.root_id) && s_same(t.parent_id, j.parent_id));
        ck_assert(s_same(t.group, j.group) && s_same(t.origin, j.origin));
        ck_assert(s_same(t.eta, j.eta) && s_same(t.expires, j.expires));
        ck_assert(t.eta_t == j.eta_t && t.expires_t == j.expires_t);
        ck_assert_int_eq(t.retries, j.retries);
        ck_assert_int_eq(t.priority, j.priority);
        ck_assert_int_eq(t.redelivered, j.redelivered);
        ck_assert_int_eq(t.ignore_result, j.ignore_result);
        ck_assert(t.hard == j.hard && t.soft == j.soft);
        ck_assert(!t.body && !t.args && !t.kwargs);
        cJSON *tree;
        ck_assert_int_eq(zq_exec_decode_args(&t, same[i], strlen(same[i]), &tree), ZQ_OK);
        ck_assert(cJSON_Compare(t.args, j.args, 1) && cJSON_Compare(t.kwargs, j.kwargs, 1));
        cJSON *again;
        ck_assert_int_eq(zq_exec_decode_args(&t, same[i], strlen(same[i]), &again), ZQ_OK);
        ck_assert_ptr_null(again); /* already there */
        zq_request_clear(&t);
        zq_request_clear(&j);
        cJSON_Delete(tree);
        free(store);
        cJSON_Delete(body);
    }
    static const char *const declined[] = {
        "{\"task\":\"t.x\"}", "{\"id\":\"has space\",\"task\":\"t.x\"}", "{\"id\":\"a\"}",
        "{\"id\":\"a\",\"task\":\"t.x\",\"args\":{}}", "{\"id\":\"a\",\"task\":\"t.x\",\"kwargs\":[]}",
        "{\"id\":\"a\",\"task\":\"t.x\",\"eta\":\"tomorrow\"}",
        "{\"id\":\"a\",\"task\":\"t.x\",\"expires\":12}",
        "{\"id\":\"a\",\"task\":\"t.x\",\"retries\":\"x\"}",
        "{\"id\":\"a\",\"id\":\"b\",\"task\":\"t.x\"}", "{\"id\":\"\\u0061\",\"task\":\"t.x\"}",
        "{\"id\":\"a\",\"task\":\"t.x\",\"timelimit\":[1]}",
        "{\"id\":\"a\",\"task\":\"t.x\",\"redelivered\":1}", "[1]", "{\"id\":\"a\",}",
        "{\"id\":\"a\",\"task\":\"t.x\"} x"};
    for (size_t i = 0; i < sizeof declined / sizeof declined[0]; i++) {
        zq_request_t t;
        char *store = (char *)1;
        ck_assert_msg(zq_exec_decode_text(&t, declined[i], strlen(declined[i]), &store) ==
                          ZQ_EXEC_DECLINED,
                      "took %s", declined[i]);
        ck_assert_ptr_null(store);
        ck_assert_ptr_null(t.id);
    }
}
END_TEST

/* A member given twice: the first counts, as cJSON_GetObjectItemCaseSensitive finds it
 * (the decoder reads every member in one pass); unknown members are ignored. */
START_TEST(test_decode_first_of_duplicates)
{
    cJSON *body = cJSON_Parse("{\"zz\":1,\"task\":\"tasks.add\",\"id\":\"" ID "\","
                              "\"queue\":\"q1\",\"retries\":2,\"id\":\"other\","
                              "\"queue\":\"q2\",\"retries\":\"x\",\"ignore_result\":true,"
                              "\"ignore_result\":false,\"args\":[1],\"args\":\"bad\"}");
    ck_assert_ptr_nonnull(body);
    zq_request_t r;
    char err[256];
    ck_assert_int_eq(zq_exec_decode(&r, body, err, sizeof err), ZQ_OK);
    ck_assert_str_eq(r.id, ID);
    ck_assert_str_eq(r.queue, "q1");
    ck_assert_int_eq(r.retries, 2);
    ck_assert_int_eq(r.ignore_result, 1);
    ck_assert_int_eq(cJSON_GetArraySize(r.args), 1);
    zq_request_clear(&r);
    cJSON_Delete(body);
}
END_TEST

/* --- Repr ---------------------------------------------------------------------------- */

START_TEST(test_to_string_shape)
{
    cJSON *body = cJSON_Parse("{\"id\":\"" ID "\",\"task\":\"tasks.add_when_binded\","
                              "\"args\":[5,5],\"kwargs\":{},\"origin\":\"gen5697@sm\"}");
    zq_request_t r;
    ck_assert_int_eq(zq_exec_decode(&r, body, NULL, 0), ZQ_OK);
    r.hostname = WORKER;
    char *s = zq_request_to_string(&r);
    ck_assert_ptr_nonnull(s);
    /* the head of Celery's dump, field for field */
    const char *head =
        "<Context: {'lang': 'c', 'task': 'tasks.add_when_binded', 'id': '" ID "', "
        "'shadow': None, 'eta': None, 'expires': None, 'group': None, 'group_index': None, "
        "'retries': 0, 'timelimit': [None, None], 'root_id': '" ID "', 'parent_id': None, "
        "'argsrepr': '(5, 5)', 'kwargsrepr': '{}', 'origin': 'gen5697@sm', "
        "'ignore_result': False, 'properties': {'correlation_id': '" ID "', "
        "'delivery_info': {'exchange': '', 'routing_key': 'celery'}, 'priority': 0}, "
        "'correlation_id': '" ID "', 'hostname': '" WORKER "', "
        "'delivery_info': {'exchange': '', 'routing_key': 'celery', 'priority': 0, "
        "'redelivered': False}, 'args': [5, 5], 'kwargs': {}, 'is_eager': False, "
        "'callbacks': None, 'errbacks': None, 'chain': None, 'chord': None, "
        "'called_directly': False}>";
    ck_assert_str_eq(s, head);
    free(s);
    zq_request_clear(&r);
    cJSON_Delete(body);
}
END_TEST

START_TEST(test_to_string_values)
{
    cJSON *body = cJSON_Parse("{\"id\":\"x1\",\"task\":\"tasks.show\",\"args\":[1],"
                              "\"kwargs\":{\"y\":2,\"s\":\"it's\"},\"timelimit\":[10,null]}");
    zq_request_t r;
    ck_assert_int_eq(zq_exec_decode(&r, body, NULL, 0), ZQ_OK);
    char *s = zq_request_to_string(&r);
    ck_assert_ptr_nonnull(strstr(s, "'argsrepr': '(1,)'"));
    /* both quote kinds inside: Python keeps single quotes and escapes them */
    ck_assert_ptr_nonnull(strstr(s, "'kwargsrepr': '{\\'y\\': 2, \\'s\\': \"it\\'s\"}'"));
    ck_assert_ptr_nonnull(strstr(s, "'timelimit': [10, None]"));
    ck_assert_ptr_nonnull(strstr(s, "'kwargs': {'y': 2, 's': \"it's\"}"));
    free(s);
    zq_request_clear(&r);
    cJSON_Delete(body);
}
END_TEST

START_TEST(test_to_json_fields)
{
    cJSON *body = cJSON_Parse(s_full);
    zq_request_t r;
    ck_assert_int_eq(zq_exec_decode(&r, body, NULL, 0), ZQ_OK);
    r.hostname = WORKER;
    cJSON *j = zq_request_to_json(&r);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(s_str(j, "lang", NULL), "c");
    ck_assert_str_eq(s_str(j, "id", NULL), ID);
    ck_assert_str_eq(s_str(j, "task", NULL), "tasks.add_when_binded");
    ck_assert_str_eq(s_str(j, "root_id", NULL), "root-1");
    ck_assert_str_eq(s_str(j, "parent_id", NULL), "parent-1");
    ck_assert_str_eq(s_str(j, "group", NULL), "g-1");
    ck_assert_str_eq(s_str(j, "hostname", NULL), WORKER);
    ck_assert_str_eq(s_str(j, "origin", NULL), "gen5697@sm");
    ck_assert_str_eq(s_str(j, "eta", NULL), "2026-11-26T12:00:00.000000Z");
    ck_assert_str_eq(s_str(j, "delivery_info", "routing_key"), "hipri");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "delivery_info"),
                                               "redelivered")));
    ck_assert_str_eq(s_str(j, "argsrepr", NULL), "(5, 5)");
    ck_assert_int_eq((int)s_num(j, "retries"), 2);
    const cJSON *tl = cJSON_GetObjectItem(j, "timelimit");
    ck_assert(cJSON_GetArrayItem(tl, 0)->valuedouble == 10);
    ck_assert(cJSON_GetArrayItem(tl, 1)->valuedouble == 5.5);
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(j, "is_eager")));
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(j, "called_directly")));
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(j, "ignore_result")));
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "args")), 2);
    /* a copy: the request is untouched when the caller frees it */
    cJSON_Delete(j);
    ck_assert_int_eq(cJSON_GetArraySize(zq_request_args(&r)), 2);
    zq_request_clear(&r);
    cJSON_Delete(body);
}
END_TEST

START_TEST(test_pyrepr)
{
    static const struct {
        const char *json;
        const char *repr;
    } cases[] = {
        {"null", "None"},
        {"true", "True"},
        {"4", "4"},
        {"-3", "-3"},
        {"2.5", "2.5"},
        {"0.1", "0.1"},
        {"\"a'b\"", "\"a'b\""},
        {"\"a'b\\\"c\"", "'a\\'b\"c'"},
        {"\"l1\\nl2\\\\\"", "'l1\\nl2\\\\'"},
        {"[1,[\"x\",{}],{\"k\":null}]", "[1, ['x', {}], {'k': None}]"},
        {"\"\\u00e9t\\u00e9\"", "'\xc3\xa9t\xc3\xa9'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *v = cJSON_Parse(cases[i].json);
        ck_assert_ptr_nonnull(v);
        zq_sb_t sb;
        zq_sb_init(&sb);
        zq_sb_pyrepr(&sb, v);
        char *s = zq_sb_steal(&sb, NULL);
        ck_assert_str_eq(s, cases[i].repr);
        free(s);
        cJSON_Delete(v);
    }
    zq_sb_t sb;
    zq_sb_init(&sb);
    zq_sb_pyfloat(&sb, 5);
    zq_sb_puts(&sb, " ");
    zq_sb_pyfloat(&sb, 0.25);
    zq_sb_puts(&sb, " ");
    cJSON *one = cJSON_Parse("[4]"), *two = cJSON_Parse("[4,0]"), *none = cJSON_Parse("[]");
    zq_sb_pytuple(&sb, one);
    zq_sb_pytuple(&sb, two);
    zq_sb_pytuple(&sb, none);
    zq_sb_puts(&sb, " ");
    zq_sb_json_str(&sb, "q\"b\\\n\x01");
    zq_sb_puts(&sb, " ");
    zq_sb_json_num(&sb, 4);
    zq_sb_puts(&sb, " ");
    zq_sb_json_num(&sb, NAN);
    zq_sb_puts(&sb, " ");
    zq_sb_json_secs(&sb, 0.0001234567891);
    zq_sb_puts(&sb, " ");
    zq_sb_json_secs(&sb, 2.5);
    zq_sb_puts(&sb, " ");
    zq_sb_json_secs(&sb, 3);
    zq_sb_puts(&sb, " ");
    zq_sb_json_secs(&sb, -1);
    zq_sb_puts(&sb, " ");
    zq_sb_json_secs(&sb, NAN);
    char *s = zq_sb_steal(&sb, NULL);
    ck_assert_str_eq(s, "5.0 0.25 (4,)(4, 0)() \"q\\\"b\\\\\\n\\u0001\" 4 null 0.000123457 2.5 3.0 0.0 0.0");
    free(s);
    cJSON_Delete(one);
    cJSON_Delete(two);
    cJSON_Delete(none);
}
END_TEST

/* --- Exec ---------------------------------------------------------------------------- */

START_TEST(test_exec_add)
{
    cJSON *st = s_run("{\"id\":\"" ID "\",\"task\":\"tasks.add\",\"args\":[2,2]}",
                      ZQ_OUT_SUCCESS);
    ck_assert_str_eq(s_str(st, "state", NULL), "SUCCESS");
    const cJSON *res = cJSON_GetObjectItem(st, "result");
    ck_assert(cJSON_IsNumber(res) && res->valuedouble == 4);
    ck_assert(s_num(st, "runtime") >= 0);
    cJSON_Delete(st);
    char *log = s_logged();
    ck_assert_ptr_nonnull(strstr(log, "INFO/MainProcess] Task tasks.add[" ID "] succeeded in "));
    ck_assert_ptr_nonnull(strstr(log, "s: 4\n"));
    free(log);
    /* keyword arguments, floats */
    st = s_run("{\"id\":\"k\",\"task\":\"tasks.add\",\"args\":[1.5],\"kwargs\":{\"y\":2}}",
               ZQ_OUT_SUCCESS);
    ck_assert(cJSON_GetObjectItem(st, "result")->valuedouble == 3.5);
    cJSON_Delete(st);
}
END_TEST

START_TEST(test_exec_ignore_result)
{
    cJSON *st = s_run("{\"id\":\"i\",\"task\":\"tasks.add\",\"args\":[2,2],"
                      "\"ignore_result\":true}", ZQ_OUT_SUCCESS);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(st, "result")));
    cJSON_Delete(st);
}
END_TEST

START_TEST(test_exec_fail)
{
    cJSON *st = s_run("{\"id\":\"" ID "\",\"task\":\"tasks.fail\",\"args\":[\"boom\"]}",
                      ZQ_OUT_FAILURE);
    ck_assert_str_eq(s_str(st, "state", NULL), "FAILURE");
    ck_assert_str_eq(s_str(st, "exception", "type"), "TaskError");
    ck_assert_str_eq(s_str(st, "exception", "message"), "boom");
    const char *tb = s_str(st, "traceback", NULL);
    ck_assert_ptr_nonnull(strstr(tb, "Traceback (most recent call last):"));
    ck_assert_ptr_nonnull(strstr(tb, "plugins/tasks.so\", in tasks.fail"));
    ck_assert_ptr_nonnull(strstr(tb, "tasks.fail('boom')"));
    ck_assert_ptr_nonnull(strstr(tb, "TaskError: boom"));
    cJSON_Delete(st);
    char *log = s_logged();
    ck_assert_ptr_nonnull(
        strstr(log, "ERROR/MainProcess] Task tasks.fail[" ID "] raised unexpected: "
                    "TaskError('boom')\nTraceback"));
    free(log);
}
END_TEST

START_TEST(test_exec_bad_argument_types)
{
    cJSON *st = s_run("{\"id\":\"b\",\"task\":\"tasks.add\",\"args\":[2,\"x\"]}", ZQ_OUT_FAILURE);
    ck_assert_str_eq(s_str(st, "exception", "type"), "TypeError");
    ck_assert_str_eq(s_str(st, "exception", "message"),
                     "unsupported operand type(s) for +: 'int' and 'str'");
    cJSON_Delete(st);
    st = s_run("{\"id\":\"b\",\"task\":\"tasks.add\",\"args\":[2]}", ZQ_OUT_FAILURE);
    ck_assert_str_eq(s_str(st, "exception", "message"),
                     "add() missing 1 required positional argument: 'y'");
    cJSON_Delete(st);
    st = s_run("{\"id\":\"b\",\"task\":\"tasks.add\",\"args\":[1,2,3]}", ZQ_OUT_FAILURE);
    ck_assert_str_eq(s_str(st, "exception", "message"),
                     "add() takes 2 positional arguments but 3 were given");
    cJSON_Delete(st);
    st = s_run("{\"id\":\"b\",\"task\":\"tasks.add\",\"args\":[1],\"kwargs\":{\"z\":1}}",
               ZQ_OUT_FAILURE);
    ck_assert_str_eq(s_str(st, "exception", "message"),
                     "add() got an unexpected keyword argument 'z'");
    cJSON_Delete(st);
    /* a result set before failing is freed by the worker (valgrind checks) */
    st = s_run("{\"id\":\"f\",\"task\":\"testtasks.fail_with_result\"}", ZQ_OUT_FAILURE);
    ck_assert_str_eq(s_str(st, "exception", "message"), "bad value: 42");
    cJSON_Delete(st);
}
END_TEST

START_TEST(test_invalid_arguments_and_unknown_task)
{
    /* what the worker sends when it cannot even start: the decode error / unknown name */
    cJSON *body = cJSON_Parse("{\"id\":\"a\",\"task\":\"tasks.add\",\"args\":{}}");
    zq_request_t r;
    char err[256];
    ck_assert_int_eq(zq_exec_decode(&r, body, err, sizeof err), ZQ_EINVAL);
    size_t len;
    char *json = zq_exec_state_error(r.id, WORKER, ZQ_STATE_FAILURE, "InvalidArguments", err,
                                     NULL, -1, NULL, &len);
    cJSON *st = cJSON_Parse(json);
    ck_assert_str_eq(s_str(st, "state", NULL), "FAILURE");
    ck_assert_str_eq(s_str(st, "exception", "type"), "InvalidArguments");
    ck_assert_str_eq(s_str(st, "exception", "message"), "args must be a JSON array, got an object");
    ck_assert_ptr_null(cJSON_GetObjectItem(st, "runtime")); /* it did not run */
    cJSON_Delete(st);
    free(json);
    zq_request_clear(&r);
    cJSON_Delete(body);

    ck_assert_ptr_null(zq_loader_find(s_loader, "tasks.nonexistent"));
    json = zq_exec_state_error("u", WORKER, ZQ_STATE_FAILURE, "NotRegistered",
                               "'tasks.nonexistent'", "tb", -1, NULL, &len);
    st = cJSON_Parse(json);
    ck_assert_str_eq(s_str(st, "exception", "type"), "NotRegistered");
    ck_assert_str_eq(s_str(st, "exception", "message"), "'tasks.nonexistent'");
    ck_assert_str_eq(s_str(st, "traceback", NULL), "tb");
    cJSON_Delete(st);
    free(json);

    json = zq_exec_state_error("r", WORKER, ZQ_STATE_REVOKED, "TaskRevokedError", "expired", NULL,
                               -1, "\"expired\":true", &len);
    st = cJSON_Parse(json);
    ck_assert_ptr_nonnull(st);
    ck_assert_str_eq(s_str(st, "state", NULL), "REVOKED");
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(st, "traceback")));
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(st, "expired")));
    cJSON_Delete(st);
    free(json);

    json = zq_exec_state_started("s", WORKER, 1234, 1, 1795697322.25, &len);
    st = cJSON_Parse(json);
    ck_assert_str_eq(s_str(st, "state", NULL), "STARTED");
    ck_assert_int_eq((int)s_num(st, "pid"), 1234);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(st, "acks_late")));
    ck_assert_str_eq(s_str(st, "timestamp", NULL), "2026-11-26T12:48:42.250000Z");
    cJSON_Delete(st);
    free(json);
    json = zq_exec_state_received("s", WORKER, 0, &len);
    st = cJSON_Parse(json);
    ck_assert_str_eq(s_str(st, "state", NULL), "RECEIVED");
    cJSON_Delete(st);
    free(json);
}
END_TEST

START_TEST(test_exec_retry)
{
    double before = zq_now();
    cJSON *st = s_run("{\"id\":\"" ID "\",\"task\":\"tasks.div\",\"args\":[4,0]}", ZQ_OUT_RETRY);
    ck_assert_str_eq(s_str(st, "state", NULL), "RETRY");
    ck_assert_str_eq(s_str(st, "exception", "type"), "Retry");
    ck_assert_str_eq(s_str(st, "exception", "message"), "Retry in 5s");
    ck_assert(s_num(st, "countdown") == 5);
    double eta;
    ck_assert_int_eq(zq_time_parse(s_str(st, "eta", NULL), &eta), ZQ_OK);
    ck_assert(eta >= before + 5 - 0.001 && eta < zq_now() + 5 + 0.001);
    cJSON_Delete(st);
    char *log = s_logged();
    ck_assert_ptr_nonnull(strstr(log, "WARNING/MainProcess] tasks.div[" ID "]: Error "
                                      "ZeroDivisionError\n"));
    ck_assert_ptr_nonnull(strstr(log, "INFO/MainProcess] Task tasks.div[" ID "] retry: Retry in "
                                      "5s\n"));
    free(log);
    /* countdown from the kwarg */
    st = s_run("{\"id\":\"c\",\"task\":\"tasks.div\",\"args\":[4,0],\"kwargs\":"
               "{\"countdown\":0.5}}", ZQ_OUT_RETRY);
    ck_assert(s_num(st, "countdown") == 0.5);
    cJSON_Delete(st);
    /* div that works: true division */
    st = s_run("{\"id\":\"d\",\"task\":\"tasks.div\",\"args\":[6,4]}", ZQ_OUT_SUCCESS);
    ck_assert(cJSON_GetObjectItem(st, "result")->valuedouble == 1.5);
    cJSON_Delete(st);
}
END_TEST

START_TEST(test_exec_max_retries_exceeded)
{
    cJSON *st = s_run("{\"id\":\"" ID "\",\"task\":\"tasks.div\",\"args\":[4,0],\"retries\":1}",
                      ZQ_OUT_FAILURE);
    ck_assert_str_eq(s_str(st, "exception", "type"), "MaxRetriesExceededError");
    ck_assert_str_eq(s_str(st, "exception", "message"),
                     "Can't retry tasks.div[" ID "] args:(4, 0) kwargs:{}");
    ck_assert_ptr_nonnull(strstr(s_str(st, "traceback", NULL), "max_retries=1"));
    cJSON_Delete(st);
    char *log = s_logged();
    /* both errors show: the task's own warning and the final one */
    ck_assert_ptr_nonnull(strstr(log, "Error ZeroDivisionError"));
    ck_assert_ptr_nonnull(strstr(log, "Task tasks.div[" ID "] raised unexpected: "
                                      "MaxRetriesExceededError(\"Can't retry tasks.div[" ID
                                      "] args:(4, 0) kwargs:{}\")"));
    free(log);
}
END_TEST

START_TEST(test_exec_retry_variants)
{
    /* exc given, past the limit: the original error surfaces (Celery's raise self.retry(exc)) */
    cJSON *st = s_run("{\"id\":\"e\",\"task\":\"testtasks.retry_exc\",\"retries\":1}",
                      ZQ_OUT_FAILURE);
    ck_assert_str_eq(s_str(st, "exception", "type"), "ZeroDivisionError");
    ck_assert_str_eq(s_str(st, "exception", "message"), "division by zero");
    cJSON_Delete(st);
    /* exc given, within the limit: RETRY carries it, and the log shows it */
    st = s_run("{\"id\":\"e0\",\"task\":\"testtasks.retry_exc\"}", ZQ_OUT_RETRY);
    ck_assert_str_eq(s_str(st, "exception", "type"), "ZeroDivisionError");
    cJSON_Delete(st);
    char *log = s_logged();
    ck_assert_ptr_nonnull(strstr(log, "Task testtasks.retry_exc[e0] retry: Retry in 0s: "
                                      "ZeroDivisionError('division by zero')"));
    free(log);
    /* no countdown: the task's default_retry_delay */
    st = s_run("{\"id\":\"r\",\"task\":\"testtasks.retry_default\",\"args\":[3],\"retries\":2}",
               ZQ_OUT_RETRY);
    ck_assert(s_num(st, "countdown") == 0.2);
    cJSON_Delete(st);
    /* default max_retries is 3 */
    st = s_run("{\"id\":\"r\",\"task\":\"testtasks.retry_default\",\"args\":[9],\"retries\":3}",
               ZQ_OUT_FAILURE);
    ck_assert_str_eq(s_str(st, "exception", "type"), "MaxRetriesExceededError");
    cJSON_Delete(st);
    st = s_run("{\"id\":\"r\",\"task\":\"testtasks.retry_default\",\"args\":[3],\"retries\":3}",
               ZQ_OUT_SUCCESS);
    ck_assert(cJSON_GetObjectItem(st, "result")->valuedouble == 3);
    cJSON_Delete(st);
    /* forever */
    st = s_run("{\"id\":\"f\",\"task\":\"testtasks.forever\",\"args\":[1000],\"retries\":500}",
               ZQ_OUT_RETRY);
    cJSON_Delete(st);
    st = s_run("{\"id\":\"f\",\"task\":\"tasks.flaky\",\"args\":[2],\"retries\":1}", ZQ_OUT_RETRY);
    ck_assert(s_num(st, "countdown") == 0);
    cJSON_Delete(st);
    st = s_run("{\"id\":\"f\",\"task\":\"tasks.flaky\",\"args\":[2],\"retries\":2}",
               ZQ_OUT_SUCCESS);
    ck_assert(cJSON_GetObjectItem(st, "result")->valuedouble == 2);
    cJSON_Delete(st);
    /* ZQ_NO_RETRIES: refused at once */
    st = s_run("{\"id\":\"n\",\"task\":\"testtasks.no_retries\"}", ZQ_OUT_FAILURE);
    ck_assert_str_eq(s_str(st, "exception", "type"), "MaxRetriesExceededError");
    cJSON_Delete(st);
    /* unbound tasks cannot retry */
    st = s_run("{\"id\":\"u\",\"task\":\"testtasks.unbound_retry\"}", ZQ_OUT_FAILURE);
    ck_assert_str_eq(s_str(st, "exception", "type"), "RuntimeError");
    ck_assert_ptr_nonnull(strstr(s_str(st, "exception", "message"), "bound"));
    cJSON_Delete(st);
    /* a status that is not a zq_task_status_t */
    st = s_run("{\"id\":\"s\",\"task\":\"testtasks.bad_status\"}", ZQ_OUT_FAILURE);
    ck_assert_str_eq(s_str(st, "exception", "type"), "RuntimeError");
    ck_assert_ptr_nonnull(strstr(s_str(st, "exception", "message"), "77"));
    cJSON_Delete(st);
}
END_TEST

START_TEST(test_exec_bound_request_and_log)
{
    cJSON *st = s_run("{\"id\":\"" ID "\",\"task\":\"tasks.request\",\"retries\":1,"
                      "\"timelimit\":[30,null]}", ZQ_OUT_SUCCESS);
    const cJSON *res = cJSON_GetObjectItem(st, "result");
    ck_assert(cJSON_IsObject(res));
    ck_assert_str_eq(s_str(res, "id", NULL), ID);
    ck_assert_str_eq(s_str(res, "task", NULL), "tasks.request");
    ck_assert_str_eq(s_str(res, "hostname", NULL), WORKER);
    ck_assert_int_eq((int)s_num(res, "retries"), 1);
    cJSON_Delete(st);

    st = s_run("{\"id\":\"" ID "\",\"task\":\"tasks.add_when_binded\",\"args\":[5,5]}",
               ZQ_OUT_SUCCESS);
    ck_assert(cJSON_GetObjectItem(st, "result")->valuedouble == 10);
    cJSON_Delete(st);
    char *log = s_logged();
    ck_assert_ptr_nonnull(strstr(log, "WARNING/MainProcess] tasks.add_when_binded[" ID "]: "
                                      "self -> <@task: tasks.add_when_binded of tasks>\n"));
    ck_assert_ptr_nonnull(strstr(log, "tasks.add_when_binded[" ID "]: self.request -> "
                                      "<Context: {'lang': 'c', 'task': 'tasks.add_when_binded'"));
    free(log);
    st = s_run("{\"id\":\"l\",\"task\":\"testtasks.log\",\"args\":[\"hello there\"]}",
               ZQ_OUT_SUCCESS);
    cJSON_Delete(st);
    log = s_logged();
    ck_assert_ptr_nonnull(strstr(log, "INFO/MainProcess] testtasks.log[l]: hello there\n"));
    free(log);
}
END_TEST

START_TEST(test_exec_subtask)
{
    free(s_emitted);
    s_emitted = NULL;
    cJSON *st = s_run("{\"id\":\"parent\",\"task\":\"testtasks.send_sub\",\"root_id\":\"root\","
                      "\"args\":[\"tasks.add\",[1,2],{\"z\":1}]}", ZQ_OUT_SUCCESS);
    const char *child = s_str(st, "result", NULL);
    ck_assert_ptr_nonnull(s_emitted);
    ck_assert_str_eq(s_emitted_cmd, "SUBMIT");
    cJSON *sub = cJSON_Parse(s_emitted);
    ck_assert_ptr_nonnull(sub);
    ck_assert_str_eq(s_str(sub, "id", NULL), child);
    ck_assert_str_eq(s_str(sub, "task", NULL), "tasks.add");
    ck_assert_str_eq(s_str(sub, "parent_id", NULL), "parent");
    ck_assert_str_eq(s_str(sub, "root_id", NULL), "root");
    ck_assert_ptr_nonnull(strstr(s_str(sub, "origin", NULL), "gen"));
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(sub, "args")), 2);
    ck_assert(cJSON_IsObject(cJSON_GetObjectItem(sub, "kwargs")));
    cJSON_Delete(sub);
    cJSON_Delete(st);
    free(s_emitted);
    s_emitted = NULL;
    /* invalid names are refused before anything is sent */
    st = s_run("{\"id\":\"p2\",\"task\":\"testtasks.send_sub\",\"args\":[\"bad name\"]}",
               ZQ_OUT_FAILURE);
    ck_assert_str_eq(s_str(st, "exception", "message"), "zq_task_send failed: -1");
    ck_assert_ptr_null(s_emitted);
    cJSON_Delete(st);
}
END_TEST

START_TEST(test_exec_echo)
{
    cJSON *st = s_run("{\"id\":\"e\",\"task\":\"testtasks.echo\",\"args\":[1,\"two\",[3]],"
                      "\"kwargs\":{\"k\":{\"v\":null}}}", ZQ_OUT_SUCCESS);
    char *txt = cJSON_PrintUnformatted(cJSON_GetObjectItem(st, "result"));
    ck_assert_str_eq(txt, "{\"args\":[1,\"two\",[3]],\"kwargs\":{\"k\":{\"v\":null}}}");
    free(txt);
    cJSON_Delete(st);
}
END_TEST

START_TEST(test_task_handle_direct)
{
    /* the SDK calls on a hand-built handle (what a host other than the worker would do) */
    cJSON *body = cJSON_Parse("{\"id\":\"h\",\"task\":\"m.t\",\"args\":[4,0]}");
    zq_request_t r;
    ck_assert_int_eq(zq_exec_decode(&r, body, NULL, 0), ZQ_OK);
    zq_task_t t;
    memset(&t, 0, sizeof t);
    t.name = "m.t";
    t.module = "m";
    t.req = &r;
    t.max_retries = 2;
    t.retry_delay = 7;
    ck_assert_ptr_null(zq_task_request(&t)); /* not bound */
    ck_assert_str_eq(zq_task_id(&t), "h");
    ck_assert_str_eq(zq_task_name(&t), "m.t");
    t.bound = 1;
    ck_assert_ptr_eq(zq_task_request(&t), &r);
    char *s = zq_task_to_string(&t);
    ck_assert_str_eq(s, "<@task: m.t of m>");
    free(s);
    ck_assert_int_eq(zq_task_soft_limit_exceeded(&t), 0);
    volatile sig_atomic_t flag = 1;
    t.soft_flag = &flag;
    ck_assert_int_eq(zq_task_soft_limit_exceeded(&t), 1);
    ck_assert_int_eq(zq_task_retry(&t, NULL), ZQ_TASK_RETRY);
    ck_assert(t.countdown == 7);
    zq_retry_opts_t ro = ZQ_RETRY_DEFAULTS;
    ro.max_retries = 0;
    ck_assert_int_eq(zq_task_retry(&t, &ro), ZQ_TASK_FAILED);
    ck_assert_str_eq(t.exc_type, "MaxRetriesExceededError");
    ck_assert_int_eq(zq_task_fail(&t, NULL, "x%d", 1), ZQ_TASK_FAILED);
    ck_assert_str_eq(t.exc_type, "Exception");
    ck_assert_str_eq(t.exc_message, "x1");
    ck_assert_int_eq(zq_task_send(&t, "a.b", NULL, NULL, NULL, NULL), ZQ_ESTATE); /* no emit */
    zq_task_clear(&t);
    zq_task_clear(NULL);
    /* NULL-safe */
    ck_assert_ptr_null(zq_task_id(NULL));
    ck_assert_int_eq(zq_task_fail(NULL, "T", "m"), ZQ_TASK_FAILED);
    ck_assert_int_eq(zq_task_soft_limit_exceeded(NULL), 0);
    zq_request_clear(&r);
    cJSON_Delete(body);
}
END_TEST

static Suite *zq_request_suite(void)
{
    Suite *s = suite_create("request");
    TCase *dec = tcase_create("Decode");
    tcase_add_checked_fixture(dec, s_setup, s_teardown);
    tcase_add_test(dec, test_decode_every_accessor);
    tcase_add_test(dec, test_decode_defaults);
    tcase_add_test(dec, test_decode_errors);
    tcase_add_test(dec, test_decode_first_of_duplicates);
    tcase_add_test(dec, test_decode_text);
    suite_add_tcase(s, dec);
    TCase *repr = tcase_create("Repr");
    tcase_add_checked_fixture(repr, s_setup, s_teardown);
    tcase_add_test(repr, test_to_string_shape);
    tcase_add_test(repr, test_to_string_values);
    tcase_add_test(repr, test_to_json_fields);
    tcase_add_test(repr, test_pyrepr);
    suite_add_tcase(s, repr);
    TCase *exec = tcase_create("Exec");
    tcase_add_checked_fixture(exec, s_setup_exec, s_teardown_exec);
    tcase_add_test(exec, test_exec_add);
    tcase_add_test(exec, test_exec_ignore_result);
    tcase_add_test(exec, test_exec_fail);
    tcase_add_test(exec, test_exec_bad_argument_types);
    tcase_add_test(exec, test_invalid_arguments_and_unknown_task);
    tcase_add_test(exec, test_exec_retry);
    tcase_add_test(exec, test_exec_max_retries_exceeded);
    tcase_add_test(exec, test_exec_retry_variants);
    tcase_add_test(exec, test_exec_bound_request_and_log);
    tcase_add_test(exec, test_exec_subtask);
    tcase_add_test(exec, test_exec_echo);
    tcase_add_test(exec, test_task_handle_direct);
    suite_add_tcase(s, exec);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(zq_request_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
