/* Unit tests for common/zq_time (ISO 8601) and common/zq_log (format, levels). */
#include "config.h"
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "zq.h"
#include "zq_log.h"
#include "zq_time.h"

START_TEST(test_iso_roundtrip)
{
    char buf[40];
    double t = 1795694400.123456; /* 2026-11-26T12:00:00.123456Z */
    ck_assert_str_eq(zq_time_iso(t, buf, sizeof buf), "2026-11-26T12:00:00.123456Z");
    double back;
    ck_assert_int_eq(zq_time_parse(buf, &back), ZQ_OK);
    ck_assert(fabs(back - t) < 1e-6);
}
END_TEST

START_TEST(test_timespec)
{
    struct timespec ts = zq_time_timespec(1795694400.25);
    ck_assert_int_eq((long)ts.tv_sec, 1795694400L);
    ck_assert_int_eq(ts.tv_nsec, 250000000L);
    ts = zq_time_timespec(0);
    ck_assert(ts.tv_sec == 0 && ts.tv_nsec == 0);
    ts = zq_time_timespec(-5);
    ck_assert(ts.tv_sec == 0 && ts.tv_nsec == 0);
    ts = zq_time_timespec(NAN);
    ck_assert(ts.tv_sec == 0 && ts.tv_nsec == 0);
    ts = zq_time_timespec(7.9999999999);
    ck_assert_int_eq((long)ts.tv_sec, 7L);
    ck_assert(ts.tv_nsec >= 0 && ts.tv_nsec <= 999999999L);
}
END_TEST

/* The per-thread cache of the last second: same second, next second, the second before
 * the epoch (time_t -1) first, and a buffer too short for the whole text. */
START_TEST(test_iso_cache)
{
    char buf[40], small[12];
    ck_assert_str_eq(zq_time_iso(-0.5, buf, sizeof buf), "1969-12-31T23:59:59.500000Z");
    ck_assert_str_eq(zq_time_iso(1795694400.25, buf, sizeof buf), "2026-11-26T12:00:00.250000Z");
    ck_assert_str_eq(zq_time_iso(1795694400.75, buf, sizeof buf), "2026-11-26T12:00:00.750000Z");
    ck_assert_str_eq(zq_time_iso(1795694401.000001, buf, sizeof buf),
                     "2026-11-26T12:00:01.000001Z");
    ck_assert_str_eq(zq_time_iso(1795694400.9999996, buf, sizeof buf),
                     "2026-11-26T12:00:01.000000Z");
    ck_assert_str_eq(zq_time_iso(1795694400.5, small, sizeof small), "2026-11-26T");
}
END_TEST

START_TEST(test_parse_forms)
{
    double t;
    ck_assert_int_eq(zq_time_parse("2026-11-26T12:00:00Z", &t), ZQ_OK);
    ck_assert(fabs(t - 1795694400.0) < 1e-9);
    ck_assert_int_eq(zq_time_parse("2026-11-26 12:00", &t), ZQ_OK); /* no offset: UTC */
    ck_assert(fabs(t - 1795694400.0) < 1e-9);
    ck_assert_int_eq(zq_time_parse("2026-11-26T13:00:00+01:00", &t), ZQ_OK);
    ck_assert(fabs(t - 1795694400.0) < 1e-9);
    ck_assert_int_eq(zq_time_parse("2026-11-26T07:00:00-0500", &t), ZQ_OK);
    ck_assert(fabs(t - 1795694400.0) < 1e-9);
    ck_assert_int_eq(zq_time_parse("2026-11-26", &t), ZQ_OK);
    ck_assert(fabs(t - 1795651200.0) < 1e-9);
    ck_assert_int_eq(zq_time_parse("2026-11-26T12:00:00,5Z", &t), ZQ_OK);
    ck_assert(fabs(t - 1795694400.5) < 1e-9);
}
END_TEST

START_TEST(test_parse_matches_timegm)
{
    /* the calendar arithmetic gives timegm()'s answer: every year's edges, leap days, a
     * day past a month's end (timegm rolls it over), a leap second, random dates */
    srand(11);
    for (int i = 0; i < 20000; i++) {
        int Y = i < 10000 ? i : rand() % 10000, M = 1 + rand() % 12, D = 1 + rand() % 31;
        int h = rand() % 24, mi = rand() % 60, se = rand() % 61;
        if (i < 10000) {
            M = (i % 2) ? 12 : (i % 3 ? 2 : 1);
            D = M == 12 ? 31 : (M == 2 ? 29 : 1);
        }
        char txt[64];
        snprintf(txt, sizeof txt, "%04d-%02d-%02dT%02d:%02d:%02dZ", Y, M, D, h, mi, se);
        struct tm tm = {0};
        tm.tm_year = Y - 1900;
        tm.tm_mon = M - 1;
        tm.tm_mday = D;
        tm.tm_hour = h;
        tm.tm_min = mi;
        tm.tm_sec = se;
        double want = (double)timegm(&tm), got = -1;
        int rc = zq_time_parse(txt, &got);
        if (want >= -62167219200.0 && want < 253402300800.0) {
            ck_assert_msg(rc == ZQ_OK, "%s refused", txt);
            ck_assert_msg(got == want, "%s: %.0f, timegm %.0f", txt, got, want);
        }
    }
}
END_TEST

START_TEST(test_parse_errors)
{
    double t;
    const char *bad[] = {"", "tomorrow", "2026-13-01", "2026-11-26T25:00", "2026-11-26T12:00:00Q",
                         "2026-11-26T12:00:00.", "2026/11/26", "3"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(zq_time_parse(bad[i], &t) == ZQ_EINVAL, "accepted '%s'", bad[i]);
    ck_assert_int_eq(zq_time_parse(NULL, &t), ZQ_EINVAL);
}
END_TEST

/* Found by tests/fuzz (fuzz_time, fuzz_broker_upstream): a peer's number far outside any
 * date (a RETRY countdown of 1e300) made zq_time_iso convert it to time_t (undefined
 * behaviour); years before 1000 were not padded; offsets could push a time out of range. */
START_TEST(test_iso_limits)
{
    char buf[40];
    double t;
    ck_assert_str_eq(zq_time_iso(1e300, buf, sizeof buf), "9999-12-31T23:59:59.999999Z");
    ck_assert_str_eq(zq_time_iso(-1e300, buf, sizeof buf), "0000-01-01T00:00:00.000000Z");
    ck_assert_str_eq(zq_time_iso(INFINITY, buf, sizeof buf), "9999-12-31T23:59:59.999999Z");
    ck_assert_str_eq(zq_time_iso(NAN, buf, sizeof buf), "1970-01-01T00:00:00.000000Z");
    ck_assert_int_eq(zq_time_parse("0999-01-02T03:04:05Z", &t), ZQ_OK);
    ck_assert_str_eq(zq_time_iso(t, buf, sizeof buf), "0999-01-02T03:04:05.000000Z");
    ck_assert_int_eq(zq_time_parse("9999-12-31T23:59:59.5Z", &t), ZQ_OK);
    ck_assert_str_eq(zq_time_iso(t, buf, sizeof buf), "9999-12-31T23:59:59.500000Z");
    ck_assert_int_eq(zq_time_parse("9999-12-31T23:00:00-01:00", &t), ZQ_EINVAL);
    ck_assert_int_eq(zq_time_parse("0000-01-01T00:00:00+00:01", &t), ZQ_EINVAL);
    ck_assert_int_eq(zq_time_parse("2026-11-26T12:00:00+24:00", &t), ZQ_EINVAL);
    ck_assert_int_eq(zq_time_parse("2026-11-26T12:00:00+01:60", &t), ZQ_EINVAL);
    ck_assert_int_eq(zq_time_parse("2026-11-26T12:00:00+23:59", &t), ZQ_OK);
}
END_TEST

START_TEST(test_clocks)
{
    double a = zq_mono(), b = zq_mono();
    ck_assert(b >= a);
    ck_assert(zq_now() > 1.7e9);
}
END_TEST

START_TEST(test_log_format_and_level)
{
    FILE *fp = tmpfile();
    ck_assert_ptr_nonnull(fp);
    zq_log_set_stream(fp);
    zq_log_set_level(ZQ_LOG_INFO);
    zq_log_set_process_name("ForkPoolWorker-1");
    ZQ_DEBUG("hidden %d", 1);
    ZQ_INFO("Task tasks.add[%s] succeeded in %.6fs: %d", "abc", 0.000123, 4);
    zq_log_set_process_name(NULL);
    ZQ_ERROR("boom");
    fflush(fp);
    rewind(fp);
    char line[512];
    ck_assert_ptr_nonnull(fgets(line, sizeof line, fp));
    /* [YYYY-MM-DD HH:MM:SS,mmm: INFO/ForkPoolWorker-1] ... */
    ck_assert_int_eq(line[0], '[');
    ck_assert_int_eq(line[20], ',');
    ck_assert_ptr_nonnull(
        strstr(line, ": INFO/ForkPoolWorker-1] Task tasks.add[abc] succeeded in 0.000123s: 4\n"));
    ck_assert_ptr_nonnull(fgets(line, sizeof line, fp));
    ck_assert_ptr_nonnull(strstr(line, ": ERROR/MainProcess] boom\n"));
    ck_assert_ptr_null(fgets(line, sizeof line, fp));
    zq_log_set_stream(NULL);
    fclose(fp);
    zq_log_level_t l;
    ck_assert_int_eq(zq_log_parse_level("warning", &l), ZQ_OK);
    ck_assert_int_eq(l, ZQ_LOG_WARNING);
    ck_assert_int_eq(zq_log_parse_level("loud", &l), ZQ_EINVAL);
}
END_TEST

static Suite *zq_time_suite(void)
{
    Suite *s = suite_create("zq_time");
    TCase *core = tcase_create("Core");
    tcase_add_test(core, test_iso_roundtrip);
    tcase_add_test(core, test_iso_cache);
    tcase_add_test(core, test_timespec);
    tcase_add_test(core, test_parse_forms);
    tcase_add_test(core, test_parse_matches_timegm);
    tcase_add_test(core, test_clocks);
    suite_add_tcase(s, core);
    TCase *errors = tcase_create("Errors");
    tcase_add_test(errors, test_parse_errors);
    tcase_add_test(errors, test_iso_limits);
    suite_add_tcase(s, errors);
    TCase *log = tcase_create("Log");
    tcase_add_test(log, test_log_format_and_level);
    suite_add_tcase(s, log);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(zq_time_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
