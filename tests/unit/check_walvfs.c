/*
 * check_walvfs - the "zq-wal" SQLite VFS (broker/zq_walvfs.h): a commit's WAL frames reach
 * the file in a few writes, before the commit returns; a write that fails fails the commit;
 * files other than the WAL pass through. Each test works in its own temporary directory and
 * reads the database back through a second connection on SQLite's default VFS.
 */
#include "config.h"
#include "zq.h"
#include "zq_walvfs.h"

#include <check.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE 8192

static char s_dir[256];
static char s_path[300];
static sqlite3 *s_db;  /* on zq-wal */
static sqlite3 *s_ref; /* on the default VFS: what another reader sees */

static void s_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
}

static long s_count_rows(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    long n = (long)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

static long s_wal_size(void)
{
    char wal[320];
    snprintf(wal, sizeof wal, "%s-wal", s_path);
    struct stat sb;
    return stat(wal, &sb) == 0 ? (long)sb.st_size : -1;
}

static void s_open_both(const char *journal)
{
    char err[200] = "";
    ck_assert_msg(zq_walvfs_register(err, sizeof err) == ZQ_OK, "register: %s", err);
    ck_assert_int_eq(sqlite3_open_v2(s_path, &s_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                                     ZQ_WALVFS_NAME),
                     SQLITE_OK);
    char sql[200];
    snprintf(sql, sizeof sql,
             "PRAGMA page_size=%d; PRAGMA journal_mode=%s; PRAGMA synchronous=NORMAL;"
             "PRAGMA wal_autocheckpoint=0; CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT);",
             PAGE, journal);
    s_exec(s_db, sql);
    ck_assert_int_eq(sqlite3_open_v2(s_path, &s_ref, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
}

static void setup(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/check_walvfs.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(s_dir));
    snprintf(s_path, sizeof s_path, "%s/t.db", s_dir);
}

static void teardown(void)
{
    sqlite3_close(s_ref);
    sqlite3_close(s_db);
    s_ref = s_db = NULL;
    char cmd[320];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* One transaction of n rows of 1,000 bytes each. Returns sqlite3_exec's code. */
static int s_insert_tx(int from, int n)
{
    char sql[200];
    int rc = sqlite3_exec(s_db, "BEGIN", NULL, NULL, NULL);
    for (int i = 0; rc == SQLITE_OK && i < n; i++) {
        snprintf(sql, sizeof sql, "INSERT INTO t VALUES(%d, printf('%%01000d', %d))", from + i,
                 from + i);
        rc = sqlite3_exec(s_db, sql, NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(s_db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        sqlite3_exec(s_db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

START_TEST(test_commit_in_few_writes)
{
    s_open_both("WAL");
    for (int tx = 0; tx < 5; tx++) {
        zq_walvfs_stats_t a, b;
        zq_walvfs_stats(&a);
        long before = s_wal_size();
        ck_assert_int_eq(s_insert_tx(tx * 200, 200), SQLITE_OK);
        zq_walvfs_stats(&b);
        unsigned long asked = b.wal_writes - a.wal_writes, made = b.real_writes - a.real_writes;
        /* ~25 pages of 8 KiB: ~50 writes asked; in runs of at most 120 KiB, ~3 made */
        ck_assert_msg(asked >= 40, "writes asked: %lu", asked);
        ck_assert_msg(made * 5 <= asked, "writes made: %lu of %lu", made, asked);
        ck_assert_uint_eq(b.failed, a.failed);
        /* every frame is on the file when COMMIT returns, with nothing else called since */
        long frames = (long)asked / 2;
        ck_assert_int_ge(s_wal_size() - (before > 0 ? before : 32), frames * (24 + PAGE));
        ck_assert_int_eq(s_count_rows(s_ref), (tx + 1) * 200);
    }
    /* and the database reads back whole after a checkpoint */
    s_exec(s_db, "PRAGMA wal_checkpoint(TRUNCATE)");
    ck_assert_int_eq(s_count_rows(s_ref), 1000);
    sqlite3_stmt *st = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(s_ref, "PRAGMA integrity_check", -1, &st, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
}
END_TEST

START_TEST(test_failed_write_fails_commit)
{
    s_open_both("WAL");
    ck_assert_int_eq(s_insert_tx(0, 10), SQLITE_OK);
    /* the WAL may not grow past what it is now plus ~3 pages: the next big commit's
     * gathered write fails (EFBIG), and it must come back as the commit's error */
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old, lim;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)s_wal_size() + 3 * (24 + PAGE);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    zq_walvfs_stats_t a, b;
    zq_walvfs_stats(&a);
    int rc = s_insert_tx(10, 200);
    zq_walvfs_stats(&b);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, SIG_DFL);
    ck_assert_msg(rc != SQLITE_OK, "a commit whose frames could not be written succeeded");
    ck_assert_uint_gt(b.failed, a.failed);
    /* nothing of it is visible, to either connection, and the next commit works */
    ck_assert_int_eq(s_count_rows(s_ref), 10);
    ck_assert_int_eq(s_count_rows(s_db), 10);
    ck_assert_int_eq(s_insert_tx(10, 200), SQLITE_OK);
    ck_assert_int_eq(s_count_rows(s_ref), 210);
}
END_TEST

START_TEST(test_other_files_pass_through)
{
    /* a rollback-journal database on zq-wal: its files are the default VFS's own, nothing
     * is gathered */
    s_open_both("DELETE");
    zq_walvfs_stats_t a, b;
    zq_walvfs_stats(&a);
    ck_assert_int_eq(s_insert_tx(0, 100), SQLITE_OK);
    zq_walvfs_stats(&b);
    ck_assert_uint_eq(b.wal_writes, a.wal_writes);
    ck_assert_uint_eq(b.real_writes, a.real_writes);
    ck_assert_int_eq(s_count_rows(s_ref), 100);
    ck_assert_int_eq(s_wal_size(), -1);
}
END_TEST

START_TEST(test_register_once)
{
    char err[200] = "";
    ck_assert_int_eq(zq_walvfs_register(err, sizeof err), ZQ_OK);
    ck_assert_int_eq(zq_walvfs_register(err, sizeof err), ZQ_OK);
    sqlite3_vfs *v = sqlite3_vfs_find(ZQ_WALVFS_NAME);
    ck_assert_ptr_nonnull(v);
    ck_assert_ptr_ne(v, sqlite3_vfs_find(NULL)); /* not made the default */
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("walvfs");
    TCase *tc = tcase_create("wal");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_commit_in_few_writes);
    tcase_add_test(tc, test_failed_write_fails_commit);
    tcase_add_test(tc, test_other_files_pass_through);
    tcase_add_test(tc, test_register_once);
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
