/*
 * check_loader - the plugin loader and task registry (worker/zq_loader.c), against the
 * fixture plugins built in tests/plugins/ and the example plugin in plugins/.
 * Fixture paths: $ZQ_BUILDDIR (set by `make check`) or the build directory compiled in.
 */
#include "config.h"
#include "zq_loader.h"
#include "zq_log.h"
#include "zq_time.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Plugins resolve zq_task_* against this binary (linked -export-dynamic); nothing else here
 * uses the SDK, so reference it or the linker leaves sdk/zq_task.o out of the archive. */
__attribute__((used)) static const char *(*const s_link_sdk)(const zq_task_t *) = zq_task_name;

static char s_path[4096];
static FILE *s_log;

static const char *s_builddir(void)
{
    const char *d = getenv("ZQ_BUILDDIR");
    return d && *d ? d : ZQ_BUILDDIR;
}

/* Path of a built file, relative to the build directory. */
static const char *s_built(const char *rel)
{
    snprintf(s_path, sizeof s_path, "%s/%s", s_builddir(), rel);
    return s_path;
}

/* Capture the log into a temporary file for the test. */
static void s_setup(void)
{
    s_log = tmpfile();
    ck_assert_ptr_nonnull(s_log);
    zq_log_set_stream(s_log);
    zq_log_set_level(ZQ_LOG_DEBUG);
}

static void s_teardown(void)
{
    zq_log_set_stream(NULL);
    zq_log_set_level(ZQ_LOG_INFO);
    if (s_log)
        fclose(s_log);
    s_log = NULL;
}

/* Everything logged so far; caller frees. */
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

static int s_copy(const char *from, const char *to, mode_t mode)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    if (!in || !out) {
        if (in)
            fclose(in);
        if (out)
            fclose(out);
        return -1;
    }
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        fwrite(buf, 1, n, out);
    fclose(in);
    fclose(out);
    return chmod(to, mode);
}

static void s_rmtree(const char *dir, const char *const *files)
{
    char p[4096];
    for (; *files; files++) {
        snprintf(p, sizeof p, "%s/%s", dir, *files);
        unlink(p);
    }
    chmod(dir, 0700);
    rmdir(dir);
}

/* --- Core ---------------------------------------------------------------------------- */

START_TEST(test_good_plugin_registers_tasks)
{
    zq_loader_t *l = zq_loader_new();
    ck_assert_ptr_nonnull(l);
    ck_assert_int_eq(zq_loader_load_file(l, s_built("tests/plugins/ok.so")), ZQ_OK);
    ck_assert_uint_eq(zq_loader_plugin_count(l), 1);
    ck_assert_uint_eq(zq_loader_task_count(l), 1);
    const zq_task_entry_t *e = zq_loader_find(l, "ok.ping");
    ck_assert_ptr_nonnull(e);
    ck_assert_str_eq(e->name, "ok.ping");
    ck_assert_str_eq(e->module, "ok");
    ck_assert_ptr_nonnull(e->fn);
    ck_assert_ptr_nonnull(strstr(e->path, "tests/plugins/ok.so"));
    /* zeroed options resolve to Celery's defaults */
    ck_assert_int_eq(e->max_retries, ZQ_DEFAULT_MAX_RETRIES);
    ck_assert(e->retry_delay == ZQ_DEFAULT_RETRY_DELAY);
    ck_assert_int_eq(e->bind, 0);
    zq_loader_destroy(&l);
    ck_assert_ptr_null(l);
    zq_loader_destroy(&l); /* NULL-safe */
    zq_loader_destroy(NULL);
}
END_TEST

START_TEST(test_example_plugin_sorted_and_options)
{
    zq_loader_t *l = zq_loader_new();
    ck_assert_int_eq(zq_loader_load_file(l, s_built("plugins/tasks.so")), ZQ_OK);
    static const char *const want[] = {"tasks.add",  "tasks.add_when_binded", "tasks.crash",
                                       "tasks.div",  "tasks.fail",            "tasks.flaky",
                                       "tasks.request", "tasks.sleep"};
    ck_assert_uint_eq(zq_loader_task_count(l), 8);
    for (size_t i = 0; i < 8; i++)
        ck_assert_str_eq(zq_loader_task(l, i)->name, want[i]);
    ck_assert_ptr_null(zq_loader_task(l, 8));
    ck_assert_int_eq(zq_loader_find(l, "tasks.div")->bind, 1);
    ck_assert_int_eq(zq_loader_find(l, "tasks.flaky")->max_retries, ZQ_RETRIES_FOREVER);
    ck_assert_int_eq(zq_loader_find(l, "tasks.add")->bind, 0);
    zq_loader_destroy(&l);
}
END_TEST

START_TEST(test_resolve_opts)
{
    zq_task_entry_t e;
    zq_task_opts_t o = {0};
    zq_loader_resolve_opts(&o, &e);
    ck_assert_int_eq(e.max_retries, 3);
    ck_assert(e.retry_delay == 180.0);
    ck_assert(e.time_limit == 0 && e.soft_time_limit == 0);
    o.max_retries = ZQ_NO_RETRIES;
    o.default_retry_delay = 0.2;
    o.bind = 7;
    o.time_limit = 5;
    zq_loader_resolve_opts(&o, &e);
    ck_assert_int_eq(e.max_retries, 0);
    ck_assert(e.retry_delay == 0.2);
    ck_assert_int_eq(e.bind, 1);
    ck_assert(e.time_limit == 5);
    o.max_retries = ZQ_RETRIES_FOREVER;
    zq_loader_resolve_opts(&o, &e);
    ck_assert_int_eq(e.max_retries, ZQ_RETRIES_FOREVER);
    o.max_retries = 7;
    zq_loader_resolve_opts(&o, &e);
    ck_assert_int_eq(e.max_retries, 7);
}
END_TEST

START_TEST(test_lookup_unknown)
{
    zq_loader_t *l = zq_loader_new();
    ck_assert_ptr_null(zq_loader_find(l, "tasks.add")); /* empty registry */
    ck_assert_int_eq(zq_loader_load_file(l, s_built("plugins/tasks.so")), ZQ_OK);
    ck_assert_ptr_null(zq_loader_find(l, "tasks.nonexistent"));
    ck_assert_ptr_null(zq_loader_find(l, "tasks"));
    ck_assert_ptr_null(zq_loader_find(l, "tasks.add "));
    ck_assert_ptr_null(zq_loader_find(l, ""));
    ck_assert_ptr_null(zq_loader_find(l, NULL));
    /* a name is never resolved as a symbol: the entry point is not a task */
    ck_assert_ptr_null(zq_loader_find(l, "zq_plugin_entry"));
    ck_assert_ptr_nonnull(zq_loader_find(l, "tasks.add"));
    zq_loader_destroy(&l);
}
END_TEST

/* --- Errors -------------------------------------------------------------------------- */

START_TEST(test_badabi_refused)
{
    zq_loader_t *l = zq_loader_new();
    const char *path = s_built("tests/plugins/badabi.so");
    ck_assert_int_eq(zq_loader_load_file(l, path), ZQ_EABI);
    ck_assert_uint_eq(zq_loader_plugin_count(l), 0);
    ck_assert_ptr_null(zq_loader_find(l, "badabi.never"));
    char *log = s_logged();
    ck_assert_ptr_nonnull(strstr(log, "ERROR/"));
    ck_assert_ptr_nonnull(strstr(log, path));
    ck_assert_ptr_nonnull(strstr(log, "ABI 99.0"));
    char host[32];
    snprintf(host, sizeof host, "ABI %d.%d", ZQ_PLUGIN_ABI_MAJOR, ZQ_PLUGIN_ABI_MINOR);
    ck_assert_ptr_nonnull(strstr(log, host));
    /* one line */
    ck_assert_ptr_eq(strchr(log, '\n'), log + strlen(log) - 1);
    free(log);
    zq_loader_destroy(&l);
}
END_TEST

START_TEST(test_nosym_refused)
{
    zq_loader_t *l = zq_loader_new();
    const char *path = s_built("tests/plugins/nosym.so");
    ck_assert_int_eq(zq_loader_load_file(l, path), ZQ_EPLUGIN);
    ck_assert_uint_eq(zq_loader_plugin_count(l), 0);
    char *log = s_logged();
    ck_assert_ptr_nonnull(strstr(log, path));
    ck_assert_ptr_nonnull(strstr(log, "zq_plugin_entry"));
    free(log);
    zq_loader_destroy(&l);
}
END_TEST

START_TEST(test_duplicate_names_refused)
{
    zq_loader_t *l = zq_loader_new();
    char first[4096];
    snprintf(first, sizeof first, "%s", s_built("plugins/tasks.so"));
    const char *second = s_built("tests/plugins/dup.so");
    ck_assert_int_eq(zq_loader_load_file(l, first), ZQ_OK);
    ck_assert_int_eq(zq_loader_load_file(l, second), ZQ_EDUPLICATE);
    /* the first one wins, and dup.so had nothing else: it is unloaded */
    const zq_task_entry_t *e = zq_loader_find(l, "tasks.add");
    ck_assert_ptr_nonnull(e);
    ck_assert_str_eq(e->path, first);
    ck_assert_uint_eq(zq_loader_plugin_count(l), 1);
    ck_assert_uint_eq(zq_loader_task_count(l), 8);
    char *log = s_logged();
    ck_assert_ptr_nonnull(strstr(log, "tasks.add"));
    ck_assert_ptr_nonnull(strstr(log, first));
    ck_assert_ptr_nonnull(strstr(log, second));
    free(log);
    /* the same file twice is refused too */
    ck_assert_int_eq(zq_loader_load_file(l, first), ZQ_EDUPLICATE);
    ck_assert_uint_eq(zq_loader_plugin_count(l), 1);
    zq_loader_destroy(&l);
}
END_TEST

START_TEST(test_missing_file_and_bad_args)
{
    zq_loader_t *l = zq_loader_new();
    ck_assert_int_eq(zq_loader_load_file(l, "/nonexistent/x.so"), ZQ_EINVAL);
    ck_assert_int_eq(zq_loader_load_file(l, NULL), ZQ_EINVAL);
    ck_assert_int_eq(zq_loader_load_file(NULL, "x"), ZQ_EINVAL);
    ck_assert_int_eq(zq_loader_load_file(l, s_builddir()), ZQ_EINVAL); /* a directory */
    ck_assert_int_eq(zq_loader_load_dir(l, "/nonexistent"), ZQ_EIO);
    char *log = s_logged();
    ck_assert_ptr_nonnull(strstr(log, "/nonexistent/x.so"));
    free(log);
    zq_loader_destroy(&l);
}
END_TEST

START_TEST(test_not_a_shared_object)
{
    char dir[] = "/tmp/zq-check-loader-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[4096];
    snprintf(path, sizeof path, "%s/garbage.so", dir);
    FILE *f = fopen(path, "w");
    fputs("not an ELF file\n", f);
    fclose(f);
    zq_loader_t *l = zq_loader_new();
    ck_assert_int_eq(zq_loader_load_file(l, path), ZQ_EPLUGIN);
    char *log = s_logged();
    ck_assert_ptr_nonnull(strstr(log, path));
    ck_assert_ptr_nonnull(strstr(log, "ldd"));
    free(log);
    zq_loader_destroy(&l);
    static const char *const files[] = {"garbage.so", NULL};
    s_rmtree(dir, files);
}
END_TEST

START_TEST(test_world_writable_refused)
{
    char dir[] = "/tmp/zq-check-loader-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[4096];
    snprintf(path, sizeof path, "%s/ok.so", dir);
    ck_assert_int_eq(s_copy(s_built("tests/plugins/ok.so"), path, 0777), 0);
    chmod(path, 0777); /* umask-proof */

    zq_loader_t *l = zq_loader_new();
    ck_assert_int_eq(zq_loader_load_file(l, path), ZQ_EINVAL);
    ck_assert_uint_eq(zq_loader_plugin_count(l), 0);
    char *log = s_logged();
    ck_assert_ptr_nonnull(strstr(log, "world-writable"));
    ck_assert_ptr_nonnull(strstr(log, path));
    ck_assert_ptr_nonnull(strstr(log, "--allow-insecure-plugins"));
    free(log);
    zq_loader_set_allow_insecure(l, 1);
    ck_assert_int_eq(zq_loader_load_file(l, path), ZQ_OK);
    ck_assert_ptr_nonnull(zq_loader_find(l, "ok.ping"));
    zq_loader_destroy(&l);

    /* a world-writable directory: anyone could drop a plugin there */
    chmod(path, 0755);
    chmod(dir, 0777);
    l = zq_loader_new();
    ck_assert_int_eq(zq_loader_load_dir(l, dir), ZQ_EINVAL);
    ck_assert_int_eq(zq_loader_load_file(l, path), ZQ_EINVAL);
    ck_assert_uint_eq(zq_loader_plugin_count(l), 0);
    zq_loader_destroy(&l);
    static const char *const files[] = {"ok.so", NULL};
    s_rmtree(dir, files);
}
END_TEST

/* --- Constructors that misbehave at dlopen (the probe child) --------------------------- */

START_TEST(test_ctor_crash_refused)
{
    zq_loader_t *l = zq_loader_new();
    const char *path = s_built("tests/plugins/ctorcrash.so");
    unsetenv("ZQ_TEST_CTOR"); /* default: raise(SIGSEGV) in the constructor */
    ck_assert_int_eq(zq_loader_load_file(l, path), ZQ_EPLUGIN);
    ck_assert_uint_eq(zq_loader_plugin_count(l), 0);
    ck_assert_ptr_null(zq_loader_find(l, "ctorcrash.ping"));
    char *log = s_logged();
    ck_assert_ptr_nonnull(strstr(log, "ERROR/"));
    ck_assert_ptr_nonnull(strstr(log, path));
    ck_assert_ptr_nonnull(strstr(log, "signal 11 (SIGSEGV)"));
    ck_assert_ptr_eq(strchr(log, '\n'), log + strlen(log) - 1); /* one line */
    free(log);
    /* we are still here, and the next plugin loads */
    ck_assert_int_eq(zq_loader_load_file(l, s_built("tests/plugins/ok.so")), ZQ_OK);
    ck_assert_ptr_nonnull(zq_loader_find(l, "ok.ping"));
    zq_loader_destroy(&l);
}
END_TEST

START_TEST(test_ctor_hang_refused)
{
    zq_loader_t *l = zq_loader_new();
    zq_loader_set_probe_timeout(l, 0.3);
    const char *path = s_built("tests/plugins/ctorcrash.so");
    setenv("ZQ_TEST_CTOR", "hang", 1);
    double t0 = zq_mono();
    ck_assert_int_eq(zq_loader_load_file(l, path), ZQ_EPLUGIN);
    double took = zq_mono() - t0;
    ck_assert(took >= 0.29 && took < 5);
    ck_assert_uint_eq(zq_loader_plugin_count(l), 0);
    char *log = s_logged();
    ck_assert_ptr_nonnull(strstr(log, path));
    ck_assert_ptr_nonnull(strstr(log, "did not finish within 0.3s"));
    free(log);
    unsetenv("ZQ_TEST_CTOR");
    zq_loader_destroy(&l);
}
END_TEST

START_TEST(test_ctor_exit_refused)
{
    zq_loader_t *l = zq_loader_new();
    const char *path = s_built("tests/plugins/ctorcrash.so");
    setenv("ZQ_TEST_CTOR", "exit", 1);
    ck_assert_int_eq(zq_loader_load_file(l, path), ZQ_EPLUGIN);
    char *log = s_logged();
    ck_assert_ptr_nonnull(strstr(log, path));
    ck_assert_ptr_nonnull(strstr(log, "exit status 3"));
    free(log);
    unsetenv("ZQ_TEST_CTOR");
    zq_loader_destroy(&l);
}
END_TEST

START_TEST(test_ctor_ok_loads)
{
    /* the same file with a harmless constructor: the probe passes, the plugin loads */
    zq_loader_t *l = zq_loader_new();
    setenv("ZQ_TEST_CTOR", "ok", 1);
    ck_assert_int_eq(zq_loader_load_file(l, s_built("tests/plugins/ctorcrash.so")), ZQ_OK);
    ck_assert_ptr_nonnull(zq_loader_find(l, "ctorcrash.ping"));
    unsetenv("ZQ_TEST_CTOR");
    zq_loader_destroy(&l);
    /* without a probe nothing changes for a good plugin */
    l = zq_loader_new();
    zq_loader_set_probe_timeout(l, 0);
    ck_assert_int_eq(zq_loader_load_file(l, s_built("tests/plugins/ok.so")), ZQ_OK);
    zq_loader_destroy(&l);
}
END_TEST

/* --- Directory ----------------------------------------------------------------------- */

START_TEST(test_load_dir_skips_bad_ones)
{
    char dir[] = "/tmp/zq-check-loader-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    static const char *const files[] = {"a_badabi.so", "b_nosym.so", "c_ok.so", "d_tasks.so",
                                        "e_ctorcrash.so", "readme.txt", NULL};
    static const char *const from[] = {"tests/plugins/badabi.so", "tests/plugins/nosym.so",
                                       "tests/plugins/ok.so", "plugins/tasks.so",
                                       "tests/plugins/ctorcrash.so", "tests/plugins/ok.so"};
    char path[4096];
    for (int i = 0; files[i]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        char src[4096];
        snprintf(src, sizeof src, "%s", s_built(from[i]));
        ck_assert_int_eq(s_copy(src, path, 0644), 0);
    }
    zq_loader_t *l = zq_loader_new();
    ck_assert_int_eq(zq_loader_load_dir(l, dir), 2);
    ck_assert_uint_eq(zq_loader_plugin_count(l), 2);
    ck_assert_uint_eq(zq_loader_task_count(l), 9);
    ck_assert_ptr_nonnull(zq_loader_find(l, "ok.ping"));
    ck_assert_ptr_nonnull(zq_loader_find(l, "tasks.add"));
    char *log = s_logged();
    /* sorted: the ABI error comes before the missing symbol */
    char *abi = strstr(log, "a_badabi.so"), *nosym = strstr(log, "b_nosym.so");
    ck_assert_ptr_nonnull(abi);
    ck_assert_ptr_nonnull(nosym);
    ck_assert(abi < nosym);
    ck_assert_ptr_nonnull(strstr(log, "e_ctorcrash.so: loading it killed a probe process"));
    ck_assert_ptr_null(strstr(log, "readme.txt"));
    free(log);
    zq_loader_destroy(&l);
    s_rmtree(dir, files);
}
END_TEST

START_TEST(test_load_empty_dir)
{
    char dir[] = "/tmp/zq-check-loader-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    zq_loader_t *l = zq_loader_new();
    ck_assert_int_eq(zq_loader_load_dir(l, dir), 0);
    ck_assert_uint_eq(zq_loader_task_count(l), 0);
    zq_loader_destroy(&l);
    static const char *const files[] = {NULL};
    s_rmtree(dir, files);
}
END_TEST

static Suite *zq_loader_suite(void)
{
    Suite *s = suite_create("loader");
    TCase *core = tcase_create("Core");
    tcase_add_checked_fixture(core, s_setup, s_teardown);
    tcase_add_test(core, test_good_plugin_registers_tasks);
    tcase_add_test(core, test_example_plugin_sorted_and_options);
    tcase_add_test(core, test_resolve_opts);
    tcase_add_test(core, test_lookup_unknown);
    suite_add_tcase(s, core);
    TCase *errors = tcase_create("Errors");
    tcase_add_checked_fixture(errors, s_setup, s_teardown);
    tcase_add_test(errors, test_badabi_refused);
    tcase_add_test(errors, test_nosym_refused);
    tcase_add_test(errors, test_duplicate_names_refused);
    tcase_add_test(errors, test_missing_file_and_bad_args);
    tcase_add_test(errors, test_not_a_shared_object);
    tcase_add_test(errors, test_world_writable_refused);
    suite_add_tcase(s, errors);
    TCase *ctor = tcase_create("Constructors");
    tcase_add_checked_fixture(ctor, s_setup, s_teardown);
    tcase_add_test(ctor, test_ctor_crash_refused);
    tcase_add_test(ctor, test_ctor_hang_refused);
    tcase_add_test(ctor, test_ctor_exit_refused);
    tcase_add_test(ctor, test_ctor_ok_loads);
    suite_add_tcase(s, ctor);
    TCase *dir = tcase_create("Directory");
    tcase_add_checked_fixture(dir, s_setup, s_teardown);
    tcase_add_test(dir, test_load_dir_skips_bad_ones);
    tcase_add_test(dir, test_load_empty_dir);
    suite_add_tcase(s, dir);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(zq_loader_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
