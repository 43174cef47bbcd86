/*
 * zq_store - SQLite implementation of the broker's task store (see zq_store.h).
 *
 * Durability comes from WAL mode plus the caller's group commit: the broker opens one
 * transaction per poll iteration, so a commit (and, with sync=full, one fsync) covers a
 * whole batch of tasks. Every statement is prepared once at open and reused.
 *
 * Partial indexes make the three "where does a waiting task live" questions cheap
 * (ready per queue by rid, scheduled by (eta, rid), in flight) while finished tasks,
 * the bulk of the table, sit in none of them.
 *
 * Checkpoints run on a thread of their own (s_ckpt_main), never inside the broker's COMMIT:
 * the broker's connection has wal_autocheckpoint=0 and a WAL hook (s_wal_hook, called after
 * each commit with the WAL's size) that wakes the thread once the WAL holds STORE_CKPT_BYTES
 * of frames. The thread copies the WAL back through a second connection with PASSIVE
 * checkpoints, which never block the broker's reads or writes, repeated while many frames
 * came in meanwhile. The WAL starts over (at the broker's next write) only if everything was
 * copied before the broker's current transaction began: a broker that is busy all the time is
 * never between two transactions when the thread finishes, and its WAL would grow without
 * bound. So if the WAL has not started over when the thread is done, the broker's own thread,
 * just after its next commit, finishes the checkpoint (zq_store_commit -> s_wal_finish:
 * PASSIVE on its connection, left with the frames of the last turn or two; measured ~6 ms
 * with --sync normal against ~100 ms for a whole checkpoint), and its next write starts the
 * WAL over. (A RESTART from the thread would have to win the writer lock in the
 * microseconds between two of the broker's transactions: only the broker knows when it holds
 * none.) Only a reader that holds old frames (an sqlite3 shell with a transaction open) can
 * keep the WAL from starting over; the WAL file is cut back to 2 x STORE_CKPT_BYTES
 * when it does (journal_size_limit).
 * A checkpoint fsyncs as SQLite's own does: with --sync normal or full the WAL before copying
 * and the database after (the thread fdatasync()s the database after each pass so that the
 * broker's thread has little left to flush); with --sync off nothing. Both connections have
 * the same synchronous setting. Checkpoint errors (disk full) are logged, never fatal: the
 * WAL then grows until the broker's own commits fail.
 *
 * Schema migration procedure (PRAGMA user_version holds the schema version):
 *   1. Bump ZQ_STORE_SCHEMA_VERSION.
 *   2. Append a step to s_migrate(): `if (v < N) { ...ALTER TABLE / CREATE INDEX /
 *      UPDATE... ; v = N; }` that turns version N-1 into N. Never edit an old step:
 *      databases in the field may be at any older version.
 *   3. All steps and the new user_version run in one transaction, so a failed migration
 *      leaves the database as it was. A database newer than this binary is refused.
 *   4. Add a unit test that opens a database of version N-1 and checks the result.
 */
#include "config.h"
#include "zq_store.h"
#include "zq.h"
#include "zq_log.h"
#include "zq_sb.h"
#include "zq_time.h"
#include "zq_util.h"
#include "zq_walvfs.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* SQLite page cache, KiB: 1,000 pages of 8 KiB, enough for the pages a turn touches (the
 * tails of the table and its indexes, the rows of the tasks in flight). Larger is slower:
 * each page the cache has not held yet is a fresh malloc() and page faults, and recycling
 * a page costs neither; with 64 MiB every page of a 50,000-task run was fresh (5 interleaved
 * runs: broker 23.6 us per task at 64 MiB, ~22 at 16, ~21 at 8). Also bounds the broker's
 * memory with a million queued tasks (the rows themselves stay on disk). */
#define STORE_CACHE_KIB 8192
/* How long a statement waits on a lock held by another connection (an sqlite3 shell, the
 * checkpointer). ms. Normal locking, not EXCLUSIVE: the checkpointer needs a connection of
 * its own; the LOCK file keeps other brokers out. */
#define STORE_BUSY_MS 2000
/* WAL bytes that make the checkpointer copy the WAL back (see the top of this file), as a
 * number of frames (pages) once the page size is known. Testing aid: $ZQ_STORE_CKPT_PAGES
 * gives the frames. */
#define STORE_CKPT_BYTES (40 << 20)
/* Page size of a new database (an existing one keeps its own). 8 KiB, not SQLite's 4 KiB: a
 * group commit writes the same bytes to the WAL in half the frames (one pwrite of header and
 * one of page each), and the recent rows a commit touches sit on fewer pages. Not 16 KiB: a
 * lone task's commit writes whole pages, and 16 KiB ones cost the round trip ~0.15 ms at p50
 * and p90. Measured (bench/README.md): broker 34.4 -> 32.6 us of CPU per task at 50,000 tasks
 * (16 KiB: 31.0), round trip p50 0.489 -> 0.475 ms (16 KiB: 0.63). */
#define STORE_PAGE_SIZE 8192

/* Not "state NOT IN ('SUCCESS','FAILURE','REVOKED')": SQLite evaluates a constant IN list of
 * more than two terms through an ephemeral table it builds on every run of the statement (a
 * b-tree opened, three rows inserted, a page allocated), which cost the per-task UPDATEs ~5 %
 * of the broker's main thread. Comparisons cost nothing. zq_store_ephemeral_plans() checks. */
#define NOT_TERMINAL_SQL "state<>'SUCCESS' AND state<>'FAILURE' AND state<>'REVOKED'"
#define RECORD_COLS                                                                         \
    "id,task,queue,msg,state,result,exc_type,exc_message,traceback,retries,worker,eta,"     \
    "expires,parent_id,root_id,date_sent,date_received,date_started,date_done,runtime"
#define ROW_COLS "rid,id,task,queue,state,msg,eta,expires,retries,acks_late"

enum {
    ST_INSERT,
    ST_RECEIVED,
    ST_STARTED,
    ST_TERMINAL,
    ST_TERMINAL_RID,
    ST_RETRY,
    ST_REQUEUE,
    ST_REVOKE_QUEUED,
    ST_REVOKE_QUEUED_RID,
    ST_WHERE_ID,
    ST_WHERE_RID,
    ST_PURGE_READY,
    ST_PURGE_SCHED,
    ST_REVOKE_ADD,
    ST_IS_REVOKED,
    ST_LOAD_READY,
    ST_LOAD_SCHED,
    ST_LOAD_SCHED_ALL,
    ST_LOAD_ID,
    ST_LOAD_TASK,
    ST_LOAD_INFLIGHT,
    ST_COUNT_READY,
    ST_COUNT_SCHED,
    ST_COUNT_UNFINISHED,
    ST_GET_STATE,
    ST_RECORD,
    ST_REVOKED_LIST,
    ST_WORKER_OF,
    ST_LIVE_READY,
    ST_LIVE_SCHED,
    ST_LIVE_INFLIGHT,
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_COUNT
};

static const char *const s_sql[ST_COUNT] = {
    [ST_INSERT] = "INSERT OR IGNORE INTO tasks(id,task,queue,state,msg,eta,expires,retries,"
                  "date_sent,ignore_result,parent_id,root_id) "
                  "VALUES(?1,?2,?3,'PENDING',?4,?5,?6,?7,?8,?9,?10,?11)",
    /* a RECEIVED that arrives after STARTED (children report on their own sockets) must
     * not move the task back */
    [ST_RECEIVED] = "UPDATE tasks SET state='RECEIVED',worker=coalesce(?2,worker),"
                    "date_received=?3 WHERE id=?1 AND state IN ('PENDING','RETRY')",
    [ST_STARTED] = "UPDATE tasks SET state='STARTED',worker=coalesce(?2,worker),"
                   "date_started=?3,acks_late=?4,date_received=coalesce(?5,date_received) "
                   "WHERE id=?1 AND (state='PENDING' OR state='RETRY' OR state='RECEIVED')",
    [ST_TERMINAL] = "UPDATE tasks SET state=?2,worker=coalesce(?3,worker),date_done=?4,"
                    "result=CASE WHEN ignore_result THEN NULL ELSE ?5 END,exc_type=?6,"
                    "exc_message=?7,traceback=?8,runtime=?9,"
                    "date_received=coalesce(?10,date_received),"
                    "date_started=coalesce(?11,date_started) "
                    "WHERE id=?1 AND " NOT_TERMINAL_SQL,
    /* the same by row id (and id, should the row hold another task) */
    [ST_TERMINAL_RID] = "UPDATE tasks SET state=?2,worker=coalesce(?3,worker),date_done=?4,"
                        "result=CASE WHEN ignore_result THEN NULL ELSE ?5 END,exc_type=?6,"
                        "exc_message=?7,traceback=?8,runtime=?9,"
                        "date_received=coalesce(?10,date_received),"
                        "date_started=coalesce(?11,date_started) "
                        "WHERE rid=?12 AND id=?1 AND " NOT_TERMINAL_SQL,
    /* the stored message is rewritten in SQL (JSON1): no parse/print round trip in C */
    [ST_RETRY] = "UPDATE tasks SET state='RETRY',worker=coalesce(?2,worker),exc_type=?3,"
                 "exc_message=?4,traceback=?5,retries=retries+1,eta=?6,"
                 "msg=json_set(msg,'$.retries',retries+1,'$.eta',?7),"
                 "date_received=coalesce(?8,date_received),date_started=coalesce(?9,date_started) "
                 "WHERE id=?1 AND " NOT_TERMINAL_SQL,
    [ST_REQUEUE] = "UPDATE tasks SET state='PENDING' WHERE id=?1 AND state IN "
                   "('RECEIVED','STARTED')",
    [ST_REVOKE_QUEUED] = "UPDATE tasks SET state='REVOKED',exc_type='TaskRevokedError',"
                         "exc_message=?2,traceback=NULL,date_done=?3 "
                         "WHERE id=?1 AND state IN ('PENDING','RETRY')",
    [ST_REVOKE_QUEUED_RID] = "UPDATE tasks SET state='REVOKED',exc_type='TaskRevokedError',"
                             "exc_message=?2,traceback=NULL,date_done=?3 "
                             "WHERE rid=?1 AND state IN ('PENDING','RETRY')",
    [ST_WHERE_ID] = "SELECT rid,eta,queue FROM tasks WHERE id=?1",
    [ST_WHERE_RID] = "SELECT rid,eta,queue FROM tasks WHERE rid=?1",
    [ST_PURGE_READY] = "UPDATE tasks SET state='REVOKED',exc_type='TaskRevokedError',"
                       "exc_message='purged',date_done=?3 "
                       "WHERE queue=?1 AND state='PENDING' AND eta IS NULL AND rid>?2",
    [ST_PURGE_SCHED] = "UPDATE tasks SET state='REVOKED',exc_type='TaskRevokedError',"
                       "exc_message='purged',date_done=?4 "
                       "WHERE eta IS NOT NULL AND state IN ('PENDING','RETRY') AND queue=?1 "
                       "AND (eta,rid)>(?2,?3)",
    [ST_REVOKE_ADD] = "INSERT OR IGNORE INTO revoked(id,ts) VALUES(?1,?2)",
    [ST_IS_REVOKED] = "SELECT 1 FROM revoked WHERE id=?1",
    [ST_LOAD_READY] = "SELECT " ROW_COLS " FROM tasks WHERE queue=?1 AND state='PENDING' "
                      "AND eta IS NULL AND rid>?2 ORDER BY rid LIMIT ?3",
    [ST_LOAD_SCHED] = "SELECT " ROW_COLS " FROM tasks WHERE queue=?5 AND eta IS NOT NULL "
                      "AND state IN ('PENDING','RETRY') AND (eta,rid)>(?1,?2) AND eta<=?3 "
                      "ORDER BY eta,rid LIMIT ?4",
    /* every queue: SCHEDULED listings only (sorts; not on a hot path) */
    [ST_LOAD_SCHED_ALL] = "SELECT " ROW_COLS " FROM tasks WHERE eta IS NOT NULL "
                          "AND state IN ('PENDING','RETRY') AND (eta,rid)>(?1,?2) AND eta<=?3 "
                          "ORDER BY eta,rid LIMIT ?4",
    [ST_LOAD_ID] = "SELECT " ROW_COLS " FROM tasks WHERE id=?1",
    [ST_LOAD_TASK] = "SELECT " ROW_COLS " FROM tasks WHERE rid=?1",
    [ST_LOAD_INFLIGHT] = "SELECT " ROW_COLS " FROM tasks WHERE state IN ('RECEIVED','STARTED')",
    [ST_COUNT_READY] = "SELECT queue,count(*) FROM tasks WHERE state='PENDING' AND eta IS NULL "
                       "GROUP BY queue",
    [ST_COUNT_SCHED] = "SELECT queue,count(*) FROM tasks WHERE eta IS NOT NULL AND state IN "
                       "('PENDING','RETRY') GROUP BY queue",
    [ST_COUNT_UNFINISHED] =
        "SELECT (SELECT count(*) FROM tasks WHERE state='PENDING' AND eta IS NULL)"
        "+(SELECT count(*) FROM tasks WHERE eta IS NOT NULL AND state IN ('PENDING','RETRY'))"
        "+(SELECT count(*) FROM tasks WHERE state IN ('RECEIVED','STARTED'))",
    [ST_GET_STATE] = "SELECT state FROM tasks WHERE id=?1",
    [ST_RECORD] = "SELECT " RECORD_COLS " FROM tasks WHERE id=?1",
    [ST_REVOKED_LIST] = "SELECT id FROM revoked ORDER BY rowid DESC LIMIT ?1",
    /* monitor counts: each one a scan of a partial index only, never of the table */
    [ST_WORKER_OF] = "SELECT worker FROM tasks WHERE id=?1",
    [ST_LIVE_READY] = "SELECT count(*) FROM tasks WHERE state='PENDING' AND eta IS NULL",
    [ST_LIVE_SCHED] = "SELECT state,count(*) FROM tasks WHERE eta IS NOT NULL AND state IN "
                      "('PENDING','RETRY') GROUP BY state",
    [ST_LIVE_INFLIGHT] = "SELECT state,count(*) FROM tasks WHERE state IN ('RECEIVED','STARTED') "
                         "GROUP BY state",
    [ST_BEGIN] = "BEGIN",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
};

/* Version 1. Keep in step with the migration procedure above. */
static const char s_schema_v1[] =
    "CREATE TABLE tasks ("
    " rid INTEGER PRIMARY KEY,"       /* insertion order: FIFO order of a queue */
    " id TEXT NOT NULL UNIQUE,"       /* task id */
    " task TEXT NOT NULL,"            /* task name */
    " queue TEXT NOT NULL,"
    " state TEXT NOT NULL,"
    " msg TEXT NOT NULL,"             /* task message as forwarded to workers */
    " eta REAL, expires REAL,"        /* epoch seconds or NULL */
    " retries INTEGER NOT NULL DEFAULT 0,"
    " worker TEXT,"                   /* last worker that held it */
    " result TEXT,"                   /* JSON text */
    " exc_type TEXT, exc_message TEXT, traceback TEXT,"
    " date_sent REAL, date_received REAL, date_started REAL, date_done REAL,"
    " runtime REAL,"
    " acks_late INTEGER NOT NULL DEFAULT 0,"
    " ignore_result INTEGER NOT NULL DEFAULT 0,"
    " parent_id TEXT, root_id TEXT);"
    "CREATE INDEX tasks_ready ON tasks(queue,rid) WHERE state='PENDING' AND eta IS NULL;"
    "CREATE INDEX tasks_sched ON tasks(queue,eta,rid) WHERE eta IS NOT NULL AND state IN "
    " ('PENDING','RETRY');"
    /* keyed by rid, not state: RECEIVED -> STARTED does not move the entry */
    "CREATE INDEX tasks_inflight ON tasks(rid) WHERE state IN ('RECEIVED','STARTED');"
    "CREATE TABLE revoked (id TEXT PRIMARY KEY, ts REAL NOT NULL);";

/* Version 2: the children of a task (monitor's task page, TASKS parent_id). Partial: only
 * sub-tasks have an entry, so plain tasks cost nothing more to insert. */
static const char s_schema_v2[] =
    "CREATE INDEX tasks_parent ON tasks(parent_id) WHERE parent_id IS NOT NULL;";

/* Monitor counters (zq_store_counts): terminal outcomes and retries, overall and per
 * worker. One scan fills them on first use; from then on every write that ends or retries
 * a task bumps them, so that STATS never scans the table. A rollback voids them (they may
 * count writes that never happened): the next zq_store_counts scans again. */
typedef struct {
    char *name;
    long succeeded, failed, retried;
} s_wcount_t;

typedef struct {
    int valid;
    long success, failure, revoked, retried;
    s_wcount_t *w; /* open addressing on the name; NULL name = free slot */
    size_t wcap, wn;
} s_counts_t;

#define S_WCOUNT_MAX 65536 /* distinct worker names counted; more are not itemised */

struct zq_store {
    sqlite3 *db;
    const char *vfs;   /* ZQ_WALVFS_NAME, or NULL (the default VFS) if it could not register */
    sqlite3_stmt *st[ST_COUNT];
    int in_tx;         /* our BEGIN is open */
    int lock_fd;       /* flock()ed LOCK file: one broker per data dir */
    char errbuf[512];  /* last error text */
    s_counts_t counts; /* monitor counters, see s_counts_t */

    /* background checkpoints (top of this file) */
    zq_store_sync_t sync;
    int ckpt_pages;      /* checkpoint from this many WAL frames on */
    sqlite3 *cdb;        /* the checkpointer's connection (its thread only, once started) */
    int db_fd;           /* zq.db, for fdatasync; closed only after both connections */
    pthread_t ckpt_thread;
    int ckpt_started;
    pthread_mutex_t ckpt_mu;
    pthread_cond_t ckpt_cv;
    int ckpt_stop;       /* under ckpt_mu */
    int ckpt_want;       /* under ckpt_mu: a checkpoint is asked for */
    atomic_int ckpt_busy;   /* a pass is asked for or running */
    atomic_long ckpt_passes, ckpt_errors;
    double ckpt_logged;  /* thread only: when it last logged an error */
    /* broker thread only (s_wal_hook, zq_store_commit) */
    int wal_next;        /* ask for a checkpoint when the WAL reaches this many frames */
    int ckpt_wait;       /* one was asked for ... */
    long ckpt_asked;     /* ... when ckpt_passes was this */
    int wal_finish;      /* zq_store_commit finishes the checkpoint itself */
    zq_store_wal_stats_t wal;
};

static const char *const s_states[] = {ZQ_STATE_PENDING, ZQ_STATE_RECEIVED, ZQ_STATE_STARTED,
                                       ZQ_STATE_RETRY,   ZQ_STATE_SUCCESS,  ZQ_STATE_FAILURE,
                                       ZQ_STATE_REVOKED};

const char *zq_state_canonical(const char *state)
{
    if (!state)
        return NULL;
    for (size_t i = 0; i < sizeof s_states / sizeof s_states[0]; i++)
        if (strcmp(state, s_states[i]) == 0)
            return s_states[i];
    return NULL;
}

int zq_state_is_terminal(const char *state)
{
    return state && (!strcmp(state, ZQ_STATE_SUCCESS) || !strcmp(state, ZQ_STATE_FAILURE) ||
                     !strcmp(state, ZQ_STATE_REVOKED));
}

int zq_store_parse_sync(const char *s, zq_store_sync_t *out)
{
    if (!s)
        return ZQ_EINVAL;
    if (!strcasecmp(s, "off"))
        *out = ZQ_STORE_SYNC_OFF;
    else if (!strcasecmp(s, "normal"))
        *out = ZQ_STORE_SYNC_NORMAL;
    else if (!strcasecmp(s, "full"))
        *out = ZQ_STORE_SYNC_FULL;
    else
        return ZQ_EINVAL;
    return ZQ_OK;
}

const char *zq_store_sync_name(zq_store_sync_t sync)
{
    return sync == ZQ_STORE_SYNC_OFF ? "off" : sync == ZQ_STORE_SYNC_FULL ? "full" : "normal";
}

static void s_seterr(zq_store_t *self, const char *what)
{
    snprintf(self->errbuf, sizeof self->errbuf, "%s: %s", what, sqlite3_errmsg(self->db));
}

const char *zq_store_errmsg(const zq_store_t *self)
{
    return self && self->errbuf[0] ? self->errbuf : "no error";
}


/* mkdir -p with mode 0700 for what we create. */
static int s_mkdirs(const char *dir, char *err, size_t errlen)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) {
        zq_errf(err, errlen, "data dir %s: path too long", dir);
        return ZQ_EINVAL;
    }
    for (char *p = path + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(path, 0700) != 0 && errno != EEXIST) {
                zq_errf(err, errlen, "cannot create data dir %s: %s", path, strerror(errno));
                return ZQ_EIO;
            }
            *p = c;
            if (!c)
                break;
        }
    }
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        zq_errf(err, errlen, "data dir %s is not a directory", dir);
        return ZQ_EIO;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        zq_errf(err, errlen, "data dir %s is not writable: %s", dir, strerror(errno));
        return ZQ_EIO;
    }
    return ZQ_OK;
}

static int s_exec(zq_store_t *self, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(self->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(self->errbuf, sizeof self->errbuf, "%s", msg ? msg : "unknown error");
        sqlite3_free(msg);
        return ZQ_ESTORE;
    }
    return ZQ_OK;
}

/* The integer value of a PRAGMA query ("PRAGMA user_version"). */
static int s_pragma_int(zq_store_t *self, const char *sql, int *v)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(self->db, sql, -1, &st, NULL) != SQLITE_OK) {
        s_seterr(self, sql);
        return ZQ_ESTORE;
    }
    int rc = sqlite3_step(st);
    *v = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW) {
        s_seterr(self, sql);
        return ZQ_ESTORE;
    }
    return ZQ_OK;
}

static int s_user_version(zq_store_t *self, int *v)
{
    return s_pragma_int(self, "PRAGMA user_version", v);
}

/* Bring the schema to ZQ_STORE_SCHEMA_VERSION (procedure at the top of this file). */
static int s_migrate(zq_store_t *self)
{
    int v;
    if (s_user_version(self, &v) != ZQ_OK)
        return ZQ_ESTORE;
    if (v == ZQ_STORE_SCHEMA_VERSION)
        return ZQ_OK;
    if (v > ZQ_STORE_SCHEMA_VERSION) {
        snprintf(self->errbuf, sizeof self->errbuf,
                 "database schema version %d is newer than this zq-broker supports (%d)", v,
                 ZQ_STORE_SCHEMA_VERSION);
        return ZQ_ESTORE;
    }
    if (s_exec(self, "BEGIN IMMEDIATE") != ZQ_OK)
        return ZQ_ESTORE;
    int rc = ZQ_OK;
    if (v < 1) {
        rc = s_exec(self, s_schema_v1);
        v = 1;
    }
    if (rc == ZQ_OK && v < 2) {
        rc = s_exec(self, s_schema_v2);
        v = 2;
    }
    /* next: if (rc == ZQ_OK && v < 2) { rc = s_exec(self, "ALTER TABLE ..."); v = 2; } */
    if (rc == ZQ_OK) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version=%d", v);
        rc = s_exec(self, sql);
    }
    if (rc == ZQ_OK)
        rc = s_exec(self, "COMMIT");
    if (rc != ZQ_OK) {
        char keep[sizeof self->errbuf];
        memcpy(keep, self->errbuf, sizeof keep);
        s_exec(self, "ROLLBACK");
        memcpy(self->errbuf, keep, sizeof keep);
    }
    return rc;
}

/* ---- background checkpoints (top of this file) ---- */

/* Ask the thread for a checkpoint. Broker thread. */
static void s_ckpt_ask(zq_store_t *self)
{
    atomic_store(&self->ckpt_busy, 1);
    pthread_mutex_lock(&self->ckpt_mu);
    self->ckpt_want = 1;
    pthread_cond_signal(&self->ckpt_cv);
    pthread_mutex_unlock(&self->ckpt_mu);
}

/* After every commit of the broker's connection, with the WAL's size in frames. Cheap: a
 * few comparisons, and one wake-up of the thread per WAL cycle. */
static int s_wal_hook(void *arg, sqlite3 *db, const char *name, int n)
{
    zq_store_t *self = arg;
    (void)db;
    (void)name;
    self->wal.commits++;
    if (n < self->wal.frames) { /* started over */
        self->wal.resets++;
        self->wal_next = self->ckpt_pages;
        self->ckpt_wait = 0;
    }
    self->wal.frames = n;
    if (n > self->wal.max_frames)
        self->wal.max_frames = n;
    if (n < self->wal_next || atomic_load(&self->ckpt_busy))
        return SQLITE_OK;
    if (!self->ckpt_wait) {
        self->ckpt_asked = atomic_load(&self->ckpt_passes);
        self->ckpt_wait = 1;
        s_ckpt_ask(self);
    } else if (atomic_load(&self->ckpt_passes) > self->ckpt_asked) {
        self->wal_finish = 1; /* zq_store_commit, outside SQLite's COMMIT */
    }
    return SQLITE_OK;
}

/* The thread's checkpoint is done but the WAL did not start over (the broker was never
 * between two transactions at the right moment): copy what the broker committed since, from
 * its own connection, between two transactions, so that its next write starts the WAL over. */
static void s_wal_finish(zq_store_t *self)
{
    self->wal_finish = 0;
    self->ckpt_wait = 0;
    double t0 = zq_now();
    int log = 0, done = 0;
    int rc = sqlite3_wal_checkpoint_v2(self->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
    if (rc == SQLITE_OK && log == done) {
        self->wal.finished++;
        double ms = (zq_now() - t0) * 1e3;
        if (ms > self->wal.finish_ms)
            self->wal.finish_ms = ms;
        return;
    }
    /* busy (the thread again), a reader holding old frames, an error: retry a bit later */
    self->wal_next = log + self->ckpt_pages / 4;
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
        atomic_fetch_add(&self->ckpt_errors, 1);
        ZQ_WARN("store: WAL checkpoint failed (retried later): %s", sqlite3_errmsg(self->db));
    }
}

/* One request: checkpoint until few new frames came in during a pass (each pass is shorter
 * than the one before), fdatasync()ing the database as it goes, so that what s_wal_finish
 * is left with on the broker's thread is small: the frames of the last turn or two. */
static void s_ckpt_pass(zq_store_t *self)
{
    int prev = 0;
    for (int i = 0; i < 4; i++) {
        int log = 0, done = 0;
        int rc = sqlite3_wal_checkpoint_v2(self->cdb, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
        const char *fail = NULL;
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            fail = sqlite3_errmsg(self->cdb);
        else if (self->sync != ZQ_STORE_SYNC_OFF && fdatasync(self->db_fd) != 0)
            fail = strerror(errno);
        if (fail) {
            atomic_fetch_add(&self->ckpt_errors, 1);
            double now = zq_now();
            if (now - self->ckpt_logged >= 10) { /* a full disk fails every pass */
                self->ckpt_logged = now;
                ZQ_WARN("store: WAL checkpoint failed (retried later): %s", fail);
            }
            break;
        }
        if (rc == SQLITE_BUSY || log < prev + 256)
            break;
        prev = log;
    }
    atomic_fetch_add(&self->ckpt_passes, 1);
    atomic_store(&self->ckpt_busy, 0);
}

static void *s_ckpt_main(void *arg)
{
    zq_store_t *self = arg;
    pthread_mutex_lock(&self->ckpt_mu);
    for (;;) {
        while (!self->ckpt_stop && !self->ckpt_want)
            pthread_cond_wait(&self->ckpt_cv, &self->ckpt_mu);
        if (self->ckpt_stop)
            break;
        self->ckpt_want = 0;
        pthread_mutex_unlock(&self->ckpt_mu);
        s_ckpt_pass(self);
        pthread_mutex_lock(&self->ckpt_mu);
    }
    pthread_mutex_unlock(&self->ckpt_mu);
    return NULL;
}

/* Open the checkpointer's connection and start its thread. On failure the broker's own
 * connection checkpoints inside its commits, as SQLite does by default: slower, not fatal. */
static void s_ckpt_start(zq_store_t *self, const char *path)
{
    const char *why = NULL;
    char pragma[64];
    snprintf(pragma, sizeof pragma, "PRAGMA synchronous=%s; PRAGMA journal_mode=WAL;",
             self->sync == ZQ_STORE_SYNC_OFF    ? "OFF"
             : self->sync == ZQ_STORE_SYNC_FULL ? "FULL"
                                                : "NORMAL");
    if (!sqlite3_threadsafe())
        why = "SQLite was built without threads";
    else if (sqlite3_open_v2(path, &self->cdb, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                             self->vfs) != SQLITE_OK ||
             sqlite3_exec(self->cdb, pragma, NULL, NULL, NULL) != SQLITE_OK)
        why = self->cdb ? sqlite3_errmsg(self->cdb) : "out of memory";
    else if ((self->db_fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        why = strerror(errno);
    if (!why) {
        /* no signal for this thread: the broker's handlers expect its own thread */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        int rc = pthread_create(&self->ckpt_thread, NULL, s_ckpt_main, self);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (rc == 0)
            self->ckpt_started = 1;
        else
            why = strerror(rc);
    }
    if (why) {
        ZQ_WARN("store: no checkpoint thread (%s): checkpoints run inside commits", why);
        sqlite3_wal_autocheckpoint(self->db, self->ckpt_pages);
    }
}

static void s_ckpt_stop(zq_store_t *self)
{
    if (self->ckpt_started) {
        pthread_mutex_lock(&self->ckpt_mu);
        self->ckpt_stop = 1;
        pthread_cond_signal(&self->ckpt_cv);
        pthread_mutex_unlock(&self->ckpt_mu);
        pthread_join(self->ckpt_thread, NULL);
        self->ckpt_started = 0;
    }
    if (self->cdb)
        sqlite3_close(self->cdb);
    self->cdb = NULL;
}

void zq_store_wal_stats(const zq_store_t *self, zq_store_wal_stats_t *out)
{
    *out = self->wal;
    out->passes = atomic_load(&((zq_store_t *)self)->ckpt_passes);
    out->errors = atomic_load(&((zq_store_t *)self)->ckpt_errors);
}

zq_store_t *zq_store_open(const char *dir, zq_store_sync_t sync, char *err, size_t errlen)
{
    if (!dir || !*dir) {
        zq_errf(err, errlen, "no data dir given");
        return NULL;
    }
    if (s_mkdirs(dir, err, errlen) != ZQ_OK)
        return NULL;
    zq_store_t *self = calloc(1, sizeof *self);
    if (!self) {
        zq_errf(err, errlen, "out of memory");
        return NULL;
    }
    self->lock_fd = -1;
    self->db_fd = -1;
    self->sync = sync;
    pthread_mutex_init(&self->ckpt_mu, NULL);
    pthread_cond_init(&self->ckpt_cv, NULL);
    char path[4200];
    snprintf(path, sizeof path, "%s/LOCK", dir);
    self->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (self->lock_fd < 0) {
        zq_errf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        goto fail;
    }
    if (flock(self->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        zq_errf(err, errlen, "data dir %s is in use by another zq-broker (%s)", dir,
              strerror(errno));
        goto fail;
    }
    snprintf(path, sizeof path, "%s/%s", dir, ZQ_STORE_FILE);
    /* the broker does not read SQLite's memory statistics: skip the global mutex and
     * counters on every allocation (refused harmlessly once SQLite is initialised) */
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    /* a commit's WAL frames in one write, not two per page (zq_walvfs.h) */
    char vfs_err[160];
    if (zq_walvfs_register(vfs_err, sizeof vfs_err) != ZQ_OK) {
        zq_log(ZQ_LOG_WARNING, "%s: WAL frames are written one by one", vfs_err);
        self->vfs = NULL;
    } else {
        self->vfs = ZQ_WALVFS_NAME;
    }
    if (sqlite3_open_v2(path, &self->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        self->vfs) != SQLITE_OK) {
        zq_errf(err, errlen, "cannot open %s: %s", path,
              self->db ? sqlite3_errmsg(self->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(self->db, STORE_BUSY_MS);
    /* more small allocations (cursors, records) from the connection's own pool than the
     * default 100 slots: fewer malloc/free calls per statement. A no-op where SQLite is
     * built with SQLITE_OMIT_LOOKASIDE, as Debian 12's is. */
    sqlite3_db_config(self->db, SQLITE_DBCONFIG_LOOKASIDE, NULL, 1200, 1000);
    /* checkpoints every ~40 MB of WAL (5,120 pages of 8 KiB), not SQLite's 1,000 pages, on
     * the checkpointer's thread: pages rewritten by successive group commits (index tails,
     * recent rows) are copied back to the database once instead of many times.
     * secure_delete off: Debian builds SQLite with SQLITE_SECURE_DELETE, which zeroes every
     * cell a statement removes or rewrites (each terminal UPDATE's old row and index
     * entries); a task's data is no secret from whoever can read the database file. */
    char pragmas[360];
    snprintf(pragmas, sizeof pragmas,
             "PRAGMA page_size=%d; PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA cache_size=-%d;"
             "PRAGMA temp_store=MEMORY; PRAGMA foreign_keys=OFF; PRAGMA wal_autocheckpoint=0;"
             "PRAGMA secure_delete=OFF;",
             STORE_PAGE_SIZE,
             sync == ZQ_STORE_SYNC_OFF ? "OFF" : sync == ZQ_STORE_SYNC_FULL ? "FULL" : "NORMAL",
             STORE_CACHE_KIB);
    int page = 0;
    if (s_exec(self, pragmas) != ZQ_OK || s_pragma_int(self, "PRAGMA page_size", &page) != ZQ_OK ||
        page < 512) {
        zq_errf(err, errlen, "cannot set up %s: %s", path, self->errbuf);
        goto fail;
    }
    const char *ckp = getenv("ZQ_STORE_CKPT_PAGES");
    self->ckpt_pages = ckp && atoi(ckp) >= 4 ? atoi(ckp) : STORE_CKPT_BYTES / page;
    self->wal_next = self->ckpt_pages;
    /* a WAL that grew (a reader held it) is cut back when it starts over */
    snprintf(pragmas, sizeof pragmas, "PRAGMA journal_size_limit=%lld;",
             2LL * self->ckpt_pages * page);
    s_exec(self, pragmas);
    if (s_migrate(self) != ZQ_OK) {
        zq_errf(err, errlen, "cannot migrate %s: %s", path, self->errbuf);
        goto fail;
    }
    /* testing aid: a database capped at N 4-KiB units fails writes as a full disk would */
    const char *maxp = getenv("ZQ_STORE_MAX_PAGES");
    if (maxp && atol(maxp) > 0) {
        char sql[64];
        long units = atol(maxp), pages = units * 4096 / page;
        snprintf(sql, sizeof sql, "PRAGMA max_page_count=%ld", pages > 2 ? pages : 2);
        s_exec(self, sql);
    }
    for (int i = 0; i < ST_COUNT; i++) {
        if (sqlite3_prepare_v3(self->db, s_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &self->st[i],
                               NULL) != SQLITE_OK) {
            zq_errf(err, errlen, "cannot prepare statement %d in %s: %s", i, path,
                  sqlite3_errmsg(self->db));
            goto fail;
        }
    }
    sqlite3_wal_hook(self->db, s_wal_hook, self);
    s_ckpt_start(self, path);
    return self;
fail:
    zq_store_destroy(&self);
    return NULL;
}

void zq_store_destroy(zq_store_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zq_store_t *self = *self_p;
    if (self->in_tx && zq_store_commit(self) != ZQ_OK)
        ZQ_ERROR("store: final commit failed: %s", self->errbuf);
    s_ckpt_stop(self);
    ZQ_DEBUG("store: WAL: %ld commits, %ld resets, %ld pages at most, %ld checkpoints (%ld finished by the "
             "broker's thread, %.1f ms at most, %ld failed)",
             self->wal.commits, self->wal.resets, self->wal.max_frames, (long)atomic_load(&self->ckpt_passes),
             self->wal.finished, self->wal.finish_ms, (long)atomic_load(&self->ckpt_errors));
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(self->st[i]);
    if (self->db)
        sqlite3_close(self->db); /* the last connection: checkpoints and removes the WAL */
    if (self->db_fd >= 0)
        close(self->db_fd); /* only now: a close drops every fcntl lock of the process */
    pthread_mutex_destroy(&self->ckpt_mu);
    pthread_cond_destroy(&self->ckpt_cv);
    if (self->lock_fd >= 0)
        close(self->lock_fd); /* releases the flock */
    for (size_t i = 0; i < self->counts.wcap; i++)
        free(self->counts.w[i].name);
    free(self->counts.w);
    free(self);
    *self_p = NULL;
}

/* Run a statement that returns no rows; resets it. SQLITE_DONE -> ZQ_OK. */
static int s_run(zq_store_t *self, int which, const char *what)
{
    sqlite3_stmt *st = self->st[which];
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        s_seterr(self, what);
        if (self->in_tx && sqlite3_get_autocommit(self->db)) {
            self->in_tx = 0; /* SQLite rolled the whole transaction back */
            self->counts.valid = 0;
        }
        return ZQ_ESTORE;
    }
    return ZQ_OK;
}

/* ---- monitor counters (s_counts_t) ---- */


/* The counters of worker name, added when new; NULL past S_WCOUNT_MAX names or on ENOMEM. */
static s_wcount_t *s_wcount(s_counts_t *c, const char *name)
{
    if (c->wcap) {
        size_t i = zq_hash_str(name) & (c->wcap - 1);
        for (; c->w[i].name; i = (i + 1) & (c->wcap - 1))
            if (!strcmp(c->w[i].name, name))
                return &c->w[i];
    }
    if (c->wn >= S_WCOUNT_MAX)
        return NULL;
    if ((c->wn + 1) * 2 > c->wcap) {
        size_t ncap = c->wcap ? c->wcap * 2 : 16;
        s_wcount_t *nw = calloc(ncap, sizeof *nw);
        if (!nw)
            return NULL;
        for (size_t k = 0; k < c->wcap; k++) {
            if (!c->w[k].name)
                continue;
            size_t i = zq_hash_str(c->w[k].name) & (ncap - 1);
            while (nw[i].name)
                i = (i + 1) & (ncap - 1);
            nw[i] = c->w[k];
        }
        free(c->w);
        c->w = nw;
        c->wcap = ncap;
    }
    size_t i = zq_hash_str(name) & (c->wcap - 1);
    while (c->w[i].name)
        i = (i + 1) & (c->wcap - 1);
    c->w[i].name = strdup(name);
    if (!c->w[i].name)
        return NULL;
    c->wn++;
    return &c->w[i];
}

static void s_counts_reset(s_counts_t *c)
{
    for (size_t i = 0; i < c->wcap; i++) {
        free(c->w[i].name);
        memset(&c->w[i], 0, sizeof c->w[i]);
    }
    c->wn = 0;
    c->success = c->failure = c->revoked = c->retried = 0;
    c->valid = 0;
}

/* A write moved task id to state (terminal or RETRY) for worker (NULL: the row says). */
static void s_count_state(zq_store_t *self, const char *state, const char *worker, const char *id)
{
    s_counts_t *c = &self->counts;
    if (!c->valid)
        return;
    int retry = !strcmp(state, ZQ_STATE_RETRY);
    if (retry)
        c->retried++;
    else if (!strcmp(state, ZQ_STATE_SUCCESS))
        c->success++;
    else if (!strcmp(state, ZQ_STATE_FAILURE))
        c->failure++;
    else if (!strcmp(state, ZQ_STATE_REVOKED))
        c->revoked++;
    else
        return;
    if (!strcmp(state, ZQ_STATE_REVOKED))
        return; /* per worker: ran and ended (or retried) there */
    sqlite3_stmt *st = NULL;
    if (!worker) { /* rare: a lost task; ask the row, as a rescan would */
        st = self->st[ST_WORKER_OF];
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
            worker = (const char *)sqlite3_column_text(st, 0);
    }
    s_wcount_t *w = worker ? s_wcount(c, worker) : NULL;
    if (w) {
        if (retry)
            w->retried++;
        else if (!strcmp(state, ZQ_STATE_SUCCESS))
            w->succeeded++;
        else
            w->failed++;
    }
    if (st)
        sqlite3_reset(st);
}

int zq_store_begin(zq_store_t *self)
{
    if (self->in_tx)
        return ZQ_OK;
    if (s_run(self, ST_BEGIN, "begin") != ZQ_OK)
        return ZQ_ESTORE;
    self->in_tx = 1;
    return ZQ_OK;
}

int zq_store_commit(zq_store_t *self)
{
    if (!self->in_tx)
        return ZQ_OK;
    int rc = s_run(self, ST_COMMIT, "commit");
    if (rc != ZQ_OK && !sqlite3_get_autocommit(self->db)) {
        char keep[sizeof self->errbuf];
        memcpy(keep, self->errbuf, sizeof keep);
        s_run(self, ST_ROLLBACK, "rollback");
        memcpy(self->errbuf, keep, sizeof keep);
    }
    if (rc != ZQ_OK)
        self->counts.valid = 0;
    self->in_tx = 0;
    if (self->wal_finish && rc == ZQ_OK)
        s_wal_finish(self);
    return rc;
}

void zq_store_rollback(zq_store_t *self)
{
    if (!self->in_tx)
        return;
    if (!sqlite3_get_autocommit(self->db))
        s_run(self, ST_ROLLBACK, "rollback");
    self->in_tx = 0;
    self->counts.valid = 0;
}

int zq_store_in_tx(const zq_store_t *self)
{
    return self->in_tx && !sqlite3_get_autocommit(self->db);
}

int zq_store_ephemeral_plans(zq_store_t *self, char *names, size_t len)
{
    int found = 0;
    size_t at = 0;
    if (len)
        names[0] = '\0';
    for (int i = 0; i < ST_COUNT; i++) {
        /* run once per purge or listing, not per task: a two-pass UPDATE, a sort */
        if (i == ST_PURGE_READY || i == ST_PURGE_SCHED || i == ST_LOAD_SCHED_ALL)
            continue;
        char *sql = sqlite3_mprintf("EXPLAIN %s", s_sql[i]);
        sqlite3_stmt *st = NULL;
        if (!sql || sqlite3_prepare_v2(self->db, sql, -1, &st, NULL) != SQLITE_OK) {
            sqlite3_free(sql);
            return -1;
        }
        sqlite3_free(sql);
        int eph = 0, rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            const char *op = (const char *)sqlite3_column_text(st, 1);
            if (op && !strcmp(op, "OpenEphemeral"))
                eph = 1;
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
            return -1;
        if (!eph)
            continue;
        found++;
        if (at < len) {
            int n = snprintf(names + at, len - at, "%s%d", at ? "," : "", i);
            at += n > 0 ? (size_t)n : 0;
        }
    }
    return found;
}

/* ---- binding helpers: NULL / 0 become SQL NULL ---- */

static void s_bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static void s_bind_time(sqlite3_stmt *st, int i, double t)
{
    if (t > 0)
        sqlite3_bind_double(st, i, t);
    else
        sqlite3_bind_null(st, i);
}

int zq_store_enqueue(zq_store_t *self, const zq_store_task_t *t, int64_t *rid_out)
{
    sqlite3_stmt *st = self->st[ST_INSERT];
    s_bind_text(st, 1, t->id);
    s_bind_text(st, 2, t->task);
    s_bind_text(st, 3, t->queue);
    sqlite3_bind_text(st, 4, t->msg, (int)t->msglen, SQLITE_STATIC);
    s_bind_time(st, 5, t->eta);
    s_bind_time(st, 6, t->expires);
    sqlite3_bind_int(st, 7, t->retries);
    s_bind_time(st, 8, t->sent);
    sqlite3_bind_int(st, 9, t->ignore_result ? 1 : 0);
    s_bind_text(st, 10, t->parent_id);
    s_bind_text(st, 11, t->root_id);
    if (s_run(self, ST_INSERT, "enqueue") != ZQ_OK)
        return ZQ_ESTORE;
    if (sqlite3_changes(self->db) == 0)
        return ZQ_EDUPLICATE;
    if (rid_out)
        *rid_out = sqlite3_last_insert_rowid(self->db);
    return ZQ_OK;
}

/* After an UPDATE guarded by state that changed nothing: unknown id or wrong state? */
static int s_why_unchanged(zq_store_t *self, const char *id)
{
    return zq_store_get_state(self, id) ? ZQ_ESTATE : ZQ_ENOTFOUND;
}

/* Fill *where for a task named by id (or by rid when id is NULL). */
static int s_where(zq_store_t *self, const char *id, int64_t rid, zq_store_where_t *where)
{
    int which = id ? ST_WHERE_ID : ST_WHERE_RID;
    sqlite3_stmt *st = self->st[which];
    if (id)
        s_bind_text(st, 1, id);
    else
        sqlite3_bind_int64(st, 1, rid);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        where->rid = sqlite3_column_int64(st, 0);
        where->eta = sqlite3_column_type(st, 1) == SQLITE_NULL ? 0 : sqlite3_column_double(st, 1);
        const char *q = (const char *)sqlite3_column_text(st, 2);
        snprintf(where->queue, sizeof where->queue, "%s", q ? q : "");
    } else if (rc != SQLITE_DONE) {
        s_seterr(self, "where");
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? ZQ_OK : rc == SQLITE_DONE ? ZQ_ENOTFOUND : ZQ_ESTORE;
}

int zq_store_set_state(zq_store_t *self, const zq_store_state_t *s, zq_store_where_t *where)
{
    const char *state = zq_state_canonical(s->state);
    if (!state || state == s_states[0]) /* PENDING is not a transition */
        return ZQ_EINVAL;
    double ts = s->timestamp > 0 ? s->timestamp : zq_now();
    int which;
    sqlite3_stmt *st;
    char iso[40];
    if (state == s_states[1]) { /* RECEIVED */
        which = ST_RECEIVED;
        st = self->st[which];
        sqlite3_bind_double(st, 3, ts);
    } else if (state == s_states[2]) { /* STARTED */
        which = ST_STARTED;
        st = self->st[which];
        sqlite3_bind_double(st, 3, ts);
        sqlite3_bind_int(st, 4, s->acks_late > 0);
        s_bind_time(st, 5, s->received_at);
    } else if (state == s_states[3]) { /* RETRY */
        which = ST_RETRY;
        st = self->st[which];
        double eta = s->eta > 0 ? s->eta : ts;
        s_bind_text(st, 3, s->exc_type);
        s_bind_text(st, 4, s->exc_message);
        s_bind_text(st, 5, s->traceback);
        sqlite3_bind_double(st, 6, eta);
        sqlite3_bind_text(st, 7, zq_time_iso(eta, iso, sizeof iso), -1, SQLITE_STATIC);
        s_bind_time(st, 8, s->received_at);
        s_bind_time(st, 9, s->started_at);
    } else { /* terminal */
        which = s->rid > 0 ? ST_TERMINAL_RID : ST_TERMINAL;
        st = self->st[which];
        if (s->rid > 0)
            sqlite3_bind_int64(st, 12, s->rid);
        sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
        sqlite3_bind_double(st, 4, ts);
        s_bind_text(st, 5, s->result ? s->result : (state == s_states[4] ? "null" : NULL));
        s_bind_text(st, 6, s->exc_type);
        s_bind_text(st, 7, s->exc_message);
        s_bind_text(st, 8, s->traceback);
        if (s->runtime >= 0)
            sqlite3_bind_double(st, 9, s->runtime);
        else
            sqlite3_bind_null(st, 9);
        s_bind_time(st, 10, s->received_at);
        s_bind_time(st, 11, s->started_at);
    }
    s_bind_text(st, 1, s->id);
    s_bind_text(st, 2 + (which == ST_TERMINAL || which == ST_TERMINAL_RID), s->worker);
    if (s_run(self, which, "set state") != ZQ_OK)
        return ZQ_ESTORE;
    if (sqlite3_changes(self->db) == 0 && which == ST_TERMINAL_RID) {
        /* not that row (a caller's stale rid): by id, which says why if it fails too */
        zq_store_state_t by_id = *s;
        by_id.rid = 0;
        return zq_store_set_state(self, &by_id, where);
    }
    if (sqlite3_changes(self->db) == 0)
        return s_why_unchanged(self, s->id);
    if (which == ST_TERMINAL || which == ST_TERMINAL_RID || which == ST_RETRY)
        s_count_state(self, state, s->worker, s->id);
    if (where && which == ST_RETRY)
        return s_where(self, s->id, 0, where);
    return ZQ_OK;
}

int zq_store_requeue(zq_store_t *self, const char *id)
{
    sqlite3_stmt *st = self->st[ST_REQUEUE];
    s_bind_text(st, 1, id);
    if (s_run(self, ST_REQUEUE, "requeue") != ZQ_OK)
        return ZQ_ESTORE;
    if (sqlite3_changes(self->db) == 1)
        return ZQ_OK;
    const char *state = zq_store_get_state(self, id);
    if (!state)
        return ZQ_ENOTFOUND;
    /* already waiting (handed out, but the worker's RECEIVED never arrived) */
    if (state == s_states[0] || state == s_states[3])
        return ZQ_OK;
    return ZQ_ESTATE;
}

int zq_store_revoke_queued(zq_store_t *self, const char *id, int64_t rid, const char *message,
                           double now, zq_store_where_t *where)
{
    int which = id ? ST_REVOKE_QUEUED : ST_REVOKE_QUEUED_RID;
    sqlite3_stmt *st = self->st[which];
    if (id)
        s_bind_text(st, 1, id);
    else
        sqlite3_bind_int64(st, 1, rid);
    s_bind_text(st, 2, message);
    sqlite3_bind_double(st, 3, now);
    if (s_run(self, which, "revoke") != ZQ_OK)
        return ZQ_ESTORE;
    if (sqlite3_changes(self->db) != 1)
        return ZQ_ESTATE;
    self->counts.revoked++; /* harmless while !valid: a scan resets it */
    return where ? s_where(self, id, rid, where) : ZQ_OK;
}

int zq_store_purge_disk(zq_store_t *self, const char *queue, int64_t ready_after,
                        double sched_after_eta, int64_t sched_after_rid, double now, long *count)
{
    long n = 0;
    sqlite3_stmt *st = self->st[ST_PURGE_READY];
    s_bind_text(st, 1, queue);
    sqlite3_bind_int64(st, 2, ready_after);
    sqlite3_bind_double(st, 3, now);
    if (s_run(self, ST_PURGE_READY, "purge") != ZQ_OK)
        return ZQ_ESTORE;
    n += sqlite3_changes(self->db);
    if (!isinf(sched_after_eta) || sched_after_eta < 0) {
        st = self->st[ST_PURGE_SCHED];
        s_bind_text(st, 1, queue);
        sqlite3_bind_double(st, 2, isinf(sched_after_eta) ? -1e300 : sched_after_eta);
        sqlite3_bind_int64(st, 3, sched_after_rid);
        sqlite3_bind_double(st, 4, now);
        if (s_run(self, ST_PURGE_SCHED, "purge") != ZQ_OK)
            return ZQ_ESTORE;
        n += sqlite3_changes(self->db);
    }
    self->counts.revoked += n;
    if (count)
        *count = n;
    return ZQ_OK;
}

int zq_store_revoke_add(zq_store_t *self, const char *id, double now)
{
    sqlite3_stmt *st = self->st[ST_REVOKE_ADD];
    s_bind_text(st, 1, id);
    sqlite3_bind_double(st, 2, now);
    return s_run(self, ST_REVOKE_ADD, "revoke");
}

int zq_store_is_revoked(zq_store_t *self, const char *id)
{
    sqlite3_stmt *st = self->st[ST_IS_REVOKED];
    s_bind_text(st, 1, id);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    s_seterr(self, "is revoked");
    return ZQ_ESTORE;
}

/* ---- reading ---- */

static double s_col_time(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? 0 : sqlite3_column_double(st, i);
}

/* Step through the rows of a prepared statement with ROW_COLS columns. */
static int s_rows(zq_store_t *self, int which, zq_store_row_fn fn, void *arg)
{
    sqlite3_stmt *st = self->st[which];
    int n = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        zq_store_row_t row;
        row.rid = sqlite3_column_int64(st, 0);
        row.id = (const char *)sqlite3_column_text(st, 1);
        row.task = (const char *)sqlite3_column_text(st, 2);
        row.queue = (const char *)sqlite3_column_text(st, 3);
        row.state = zq_state_canonical((const char *)sqlite3_column_text(st, 4));
        row.msg = (const char *)sqlite3_column_text(st, 5);
        row.msglen = (size_t)sqlite3_column_bytes(st, 5);
        row.eta = s_col_time(st, 6);
        row.expires = s_col_time(st, 7);
        row.retries = sqlite3_column_int(st, 8);
        row.acks_late = sqlite3_column_int(st, 9);
        n++;
        if (!row.id || !row.queue || !row.state) /* damaged row: skip, never crash */
            continue;
        if (fn(arg, &row) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        s_seterr(self, "load");
        return ZQ_ESTORE;
    }
    return n;
}

int zq_store_load_ready(zq_store_t *self, const char *queue, int64_t after_rid, int limit,
                        zq_store_row_fn fn, void *arg)
{
    sqlite3_stmt *st = self->st[ST_LOAD_READY];
    s_bind_text(st, 1, queue);
    sqlite3_bind_int64(st, 2, after_rid);
    sqlite3_bind_int(st, 3, limit);
    return s_rows(self, ST_LOAD_READY, fn, arg);
}

int zq_store_load_scheduled(zq_store_t *self, const char *queue, double after_eta,
                            int64_t after_rid, double before, int limit, zq_store_row_fn fn,
                            void *arg)
{
    int which = queue ? ST_LOAD_SCHED : ST_LOAD_SCHED_ALL;
    sqlite3_stmt *st = self->st[which];
    sqlite3_bind_double(st, 1, isinf(after_eta) && after_eta < 0 ? -1e300 : after_eta);
    sqlite3_bind_int64(st, 2, after_rid);
    sqlite3_bind_double(st, 3, isinf(before) ? 1e300 : before);
    sqlite3_bind_int(st, 4, limit);
    if (queue)
        s_bind_text(st, 5, queue);
    return s_rows(self, which, fn, arg);
}

int zq_store_find(zq_store_t *self, const char *id, zq_store_row_fn fn, void *arg)
{
    s_bind_text(self->st[ST_LOAD_ID], 1, id);
    int n = s_rows(self, ST_LOAD_ID, fn, arg);
    if (n < 0)
        return n;
    return n == 0 ? ZQ_ENOTFOUND : ZQ_OK;
}

int zq_store_load_task(zq_store_t *self, int64_t rid, zq_store_row_fn fn, void *arg)
{
    sqlite3_bind_int64(self->st[ST_LOAD_TASK], 1, rid);
    int n = s_rows(self, ST_LOAD_TASK, fn, arg);
    if (n < 0)
        return n;
    return n == 0 ? ZQ_ENOTFOUND : ZQ_OK;
}

int zq_store_load_inflight(zq_store_t *self, zq_store_row_fn fn, void *arg)
{
    return s_rows(self, ST_LOAD_INFLIGHT, fn, arg);
}

typedef struct {
    char *name;
    long ready, scheduled;
} s_qcount_t;

static int s_count_into(zq_store_t *self, int which, s_qcount_t **arr, size_t *n, size_t *cap,
                        int sched)
{
    sqlite3_stmt *st = self->st[which];
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *q = (const char *)sqlite3_column_text(st, 0);
        long c = (long)sqlite3_column_int64(st, 1);
        if (!q)
            continue;
        size_t i;
        for (i = 0; i < *n; i++)
            if (!strcmp((*arr)[i].name, q))
                break;
        if (i == *n) {
            if (*n == *cap) {
                size_t nc = *cap ? *cap * 2 : 8;
                s_qcount_t *na = realloc(*arr, nc * sizeof *na);
                if (!na)
                    break;
                *arr = na;
                *cap = nc;
            }
            (*arr)[i].name = strdup(q);
            (*arr)[i].ready = (*arr)[i].scheduled = 0;
            if (!(*arr)[i].name)
                break;
            (*n)++;
        }
        if (sched)
            (*arr)[i].scheduled = c;
        else
            (*arr)[i].ready = c;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        s_seterr(self, "queue counts");
        return ZQ_ESTORE;
    }
    return ZQ_OK;
}

int zq_store_queue_counts(zq_store_t *self, zq_store_count_fn fn, void *arg)
{
    s_qcount_t *arr = NULL;
    size_t n = 0, cap = 0;
    int rc = s_count_into(self, ST_COUNT_READY, &arr, &n, &cap, 0);
    if (rc == ZQ_OK)
        rc = s_count_into(self, ST_COUNT_SCHED, &arr, &n, &cap, 1);
    for (size_t i = 0; i < n; i++) {
        if (rc == ZQ_OK && fn(arg, arr[i].name, arr[i].ready, arr[i].scheduled) != 0)
            rc = ZQ_OK + 1; /* stop calling, still free */
        free(arr[i].name);
    }
    free(arr);
    return rc > 0 ? ZQ_OK : rc;
}

long zq_store_count_unfinished(zq_store_t *self)
{
    sqlite3_stmt *st = self->st[ST_COUNT_UNFINISHED];
    long n = ZQ_ESTORE;
    if (sqlite3_step(st) == SQLITE_ROW)
        n = (long)sqlite3_column_int64(st, 0);
    else
        s_seterr(self, "count");
    sqlite3_reset(st);
    return n;
}

const char *zq_store_get_state(zq_store_t *self, const char *id)
{
    sqlite3_stmt *st = self->st[ST_GET_STATE];
    s_bind_text(st, 1, id);
    const char *state = NULL;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        state = zq_state_canonical((const char *)sqlite3_column_text(st, 0));
    else if (rc != SQLITE_DONE)
        s_seterr(self, "get state");
    sqlite3_reset(st);
    return state;
}

int zq_store_revoked_list(zq_store_t *self, int limit, zq_store_id_fn fn, void *arg)
{
    sqlite3_stmt *st = self->st[ST_REVOKED_LIST];
    sqlite3_bind_int(st, 1, limit);
    int n = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        n++;
        if (id && fn(arg, id) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        s_seterr(self, "revoked list");
        return ZQ_ESTORE;
    }
    return n;
}

/* ---- the task record, written as JSON text directly from the columns (no cJSON round
 * trip on the GET hot path) ---- */

static void s_put_col_str(zq_sb_t *b, sqlite3_stmt *st, int i)
{
    zq_sb_json_str(b, (const char *)sqlite3_column_text(st, i));
}

static void s_put_col_time(zq_sb_t *b, sqlite3_stmt *st, int i)
{
    if (sqlite3_column_type(st, i) == SQLITE_NULL) {
        zq_sb_putn(b, "null", 4);
        return;
    }
    char iso[40];
    zq_time_iso(sqlite3_column_double(st, i), iso, sizeof iso);
    zq_sb_putn(b, "\"", 1);
    zq_sb_puts(b, iso);
    zq_sb_putn(b, "\"", 1);
}

/* Skip one JSON value starting at p (< end); returns the first byte after it or NULL.
 * The text was printed by cJSON, but a damaged row must not crash the broker. */
static const char *s_skip_value(const char *p, const char *end)
{
    if (p >= end)
        return NULL;
    if (*p == '"') {
        for (p++; p < end; p++) {
            if (*p == '\\')
                p++;
            else if (*p == '"')
                return p + 1;
        }
        return NULL;
    }
    if (*p == '{' || *p == '[') {
        int depth = 0;
        for (; p < end; p++) {
            if (*p == '"') {
                p = s_skip_value(p, end);
                if (!p)
                    return NULL;
                p--;
            } else if (*p == '{' || *p == '[') {
                depth++;
            } else if (*p == '}' || *p == ']') {
                if (--depth == 0)
                    return p + 1;
            }
        }
        return NULL;
    }
    while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n')
        p++;
    return p;
}

/* The raw text of the top-level members keys[0..n) of the JSON object text, in one pass:
 * val[k] (vlen[k] bytes) is the first member named keys[k], NULL when there is none (also
 * past a malformed member, where the scan stops). */
static void s_find_members(const char *text, size_t len, const char *const *keys, size_t n,
                           const char **val, size_t *vlen)
{
    size_t left = n;
    for (size_t k = 0; k < n; k++) {
        val[k] = NULL;
        vlen[k] = 0;
    }
    const char *p = text, *end = text + len;
    while (p < end && *p != '{')
        p++;
    if (p >= end)
        return;
    p++;
    while (p < end && left) {
        while (p < end && (*p == ' ' || *p == ',' || *p == '\n' || *p == '\t' || *p == '\r'))
            p++;
        if (p >= end || *p != '"')
            return;
        const char *kstart = p + 1;
        const char *kend = s_skip_value(p, end);
        if (!kend)
            return;
        size_t klen = (size_t)(kend - 1 - kstart);
        p = kend;
        while (p < end && (*p == ' ' || *p == ':'))
            p++;
        const char *vend = s_skip_value(p, end);
        if (!vend)
            return;
        for (size_t k = 0; k < n; k++)
            if (!val[k] && strlen(keys[k]) == klen && !memcmp(kstart, keys[k], klen)) {
                val[k] = p;
                vlen[k] = (size_t)(vend - p);
                left--;
                break;
            }
        p = vend;
    }
}

/* A member's raw text found by s_find_members, or fallback. */
static void s_put_raw(zq_sb_t *b, const char *v, size_t vlen, const char *fallback)
{
    if (v)
        zq_sb_putn(b, v, vlen);
    else
        zq_sb_puts(b, fallback);
}

/* The record (docs/protocol.md §9) of the current row of st, whose first columns are
 * RECORD_COLS. */
static void s_put_record(zq_sb_t *b, sqlite3_stmt *st)
{
    const char *msg = (const char *)sqlite3_column_text(st, 3);
    size_t msglen = (size_t)sqlite3_column_bytes(st, 3);
    zq_sb_puts(b, "{\"id\":");
    s_put_col_str(b, st, 0);
    zq_sb_puts(b, ",\"task\":");
    s_put_col_str(b, st, 1);
    zq_sb_puts(b, ",\"state\":");
    s_put_col_str(b, st, 4);
    zq_sb_puts(b, ",\"result\":");
    const char *result = (const char *)sqlite3_column_text(st, 5);
    zq_sb_puts(b, result ? result : "null"); /* stored as JSON text */
    zq_sb_puts(b, ",\"exception\":");
    if (sqlite3_column_type(st, 6) != SQLITE_NULL) {
        zq_sb_puts(b, "{\"type\":");
        s_put_col_str(b, st, 6);
        zq_sb_puts(b, ",\"message\":");
        if (sqlite3_column_type(st, 7) == SQLITE_NULL)
            zq_sb_puts(b, "\"\"");
        else
            s_put_col_str(b, st, 7);
        zq_sb_puts(b, "}");
    } else {
        zq_sb_puts(b, "null");
    }
    zq_sb_puts(b, ",\"traceback\":");
    s_put_col_str(b, st, 8);
    char num[64];
    snprintf(num, sizeof num, ",\"retries\":%d", sqlite3_column_int(st, 9));
    zq_sb_puts(b, num);
    zq_sb_puts(b, ",\"worker\":");
    s_put_col_str(b, st, 10);
    zq_sb_puts(b, ",\"queue\":");
    s_put_col_str(b, st, 2);
    static const char *const keys[] = {"args", "kwargs"};
    const char *v[2];
    size_t vlen[2];
    s_find_members(msg ? msg : "", msg ? msglen : 0, keys, 2, v, vlen);
    zq_sb_puts(b, ",\"args\":");
    s_put_raw(b, v[0], vlen[0], "[]");
    zq_sb_puts(b, ",\"kwargs\":");
    s_put_raw(b, v[1], vlen[1], "{}");
    zq_sb_puts(b, ",\"eta\":");
    s_put_col_time(b, st, 11);
    zq_sb_puts(b, ",\"expires\":");
    s_put_col_time(b, st, 12);
    zq_sb_puts(b, ",\"parent_id\":");
    s_put_col_str(b, st, 13);
    zq_sb_puts(b, ",\"root_id\":");
    s_put_col_str(b, st, 14);
    static const char *const dates[] = {"date_sent", "date_received", "date_started",
                                        "date_done"};
    for (int i = 0; i < 4; i++) {
        zq_sb_puts(b, ",\"");
        zq_sb_puts(b, dates[i]);
        zq_sb_puts(b, "\":");
        s_put_col_time(b, st, 15 + i);
    }
    zq_sb_puts(b, ",\"runtime\":");
    if (sqlite3_column_type(st, 19) == SQLITE_NULL)
        snprintf(num, sizeof num, "null");
    else
        snprintf(num, sizeof num, "%.6f", sqlite3_column_double(st, 19));
    zq_sb_puts(b, num);
    zq_sb_puts(b, ",\"known\":true}");
}

int zq_store_record_compose(const zq_store_state_t *st, const char *msg, size_t msglen,
                            double eta, double expires, char **text_out, size_t *len_out)
{
    *text_out = NULL;
    *len_out = 0;
    const char *state = zq_state_canonical(st->state);
    if (!state || !zq_state_is_terminal(state) || !st->id || !st->worker || !msg)
        return ZQ_EINVAL;
    /* every member the record takes from the message, in one pass */
    enum { M_TASK, M_RETRIES, M_IGNORE, M_QUEUE, M_ARGS, M_KWARGS, M_PARENT, M_ROOT, M_SENT, M_N };
    static const char *const keys[M_N] = {"task",   "retries",   "ignore_result",
                                          "queue",  "args",      "kwargs",
                                          "parent_id", "root_id", "sent"};
    const char *v[M_N];
    size_t vlen[M_N];
    s_find_members(msg, msglen, keys, M_N, v, vlen);
    if (!v[M_TASK])
        return ZQ_EINVAL;
    long retries = 0;
    if (v[M_RETRIES]) {
        char num[24];
        if (vlen[M_RETRIES] >= sizeof num)
            return ZQ_EINVAL;
        memcpy(num, v[M_RETRIES], vlen[M_RETRIES]);
        num[vlen[M_RETRIES]] = '\0';
        char *end;
        retries = strtol(num, &end, 10);
        if (*end || retries < 0 || retries > 2000000000L)
            return ZQ_EINVAL;
    }
    /* a retried task's dates of an earlier run stay unless this state brings both */
    if (retries > 0 && !(st->received_at > 0 && st->started_at > 0))
        return ZQ_EINVAL;
    int ignore = v[M_IGNORE] && vlen[M_IGNORE] == 4 && !memcmp(v[M_IGNORE], "true", 4);
    zq_sb_t b = {0};
    /* one allocation: the members taken from the message, the state's texts, ~330 bytes
     * of names, dates and numbers */
    zq_sb_reserve(&b, 512 + msglen + strlen(st->id) + strlen(st->worker) +
                          (st->result ? strlen(st->result) : 0) +
                          (st->traceback ? 2 * strlen(st->traceback) : 0) +
                          (st->exc_type ? strlen(st->exc_type) : 0) +
                          (st->exc_message ? 2 * strlen(st->exc_message) : 0));
    /* the same members, in the same order, as s_put_record */
    zq_sb_puts(&b, "{\"id\":");
    zq_sb_json_str(&b, st->id);
    zq_sb_puts(&b, ",\"task\":");
    s_put_raw(&b, v[M_TASK], vlen[M_TASK], "null");
    zq_sb_puts(&b, ",\"state\":");
    zq_sb_json_str(&b, state);
    zq_sb_puts(&b, ",\"result\":");
    zq_sb_puts(&b, !ignore && st->result ? st->result : "null");
    zq_sb_puts(&b, ",\"exception\":");
    if (st->exc_type) {
        zq_sb_puts(&b, "{\"type\":");
        zq_sb_json_str(&b, st->exc_type);
        zq_sb_puts(&b, ",\"message\":");
        zq_sb_json_str(&b, st->exc_message ? st->exc_message : "");
        zq_sb_puts(&b, "}");
    } else {
        zq_sb_puts(&b, "null");
    }
    zq_sb_puts(&b, ",\"traceback\":");
    zq_sb_json_str(&b, st->traceback);
    zq_sb_puts(&b, ",\"retries\":");
    zq_sb_put_u64(&b, (uint64_t)retries);
    zq_sb_puts(&b, ",\"worker\":");
    zq_sb_json_str(&b, st->worker);
    zq_sb_puts(&b, ",\"queue\":");
    s_put_raw(&b, v[M_QUEUE], vlen[M_QUEUE], "null");
    zq_sb_puts(&b, ",\"args\":");
    s_put_raw(&b, v[M_ARGS], vlen[M_ARGS], "[]");
    zq_sb_puts(&b, ",\"kwargs\":");
    s_put_raw(&b, v[M_KWARGS], vlen[M_KWARGS], "{}");
    zq_sb_puts(&b, ",\"eta\":");
    zq_sb_json_time(&b, eta);
    zq_sb_puts(&b, ",\"expires\":");
    zq_sb_json_time(&b, expires);
    zq_sb_puts(&b, ",\"parent_id\":");
    s_put_raw(&b, v[M_PARENT], vlen[M_PARENT], "null");
    zq_sb_puts(&b, ",\"root_id\":");
    s_put_raw(&b, v[M_ROOT], vlen[M_ROOT], "null");
    zq_sb_puts(&b, ",\"date_sent\":");
    s_put_raw(&b, v[M_SENT], vlen[M_SENT], "null");
    zq_sb_puts(&b, ",\"date_received\":");
    zq_sb_json_time(&b, st->received_at);
    zq_sb_puts(&b, ",\"date_started\":");
    zq_sb_json_time(&b, st->started_at);
    zq_sb_puts(&b, ",\"date_done\":");
    zq_sb_json_time(&b, st->timestamp > 0 ? st->timestamp : zq_now());
    if (st->runtime >= 0) {
        zq_sb_puts(&b, ",\"runtime\":");
        zq_sb_fixed6(&b, st->runtime);
    } else {
        zq_sb_puts(&b, ",\"runtime\":null");
    }
    zq_sb_puts(&b, ",\"known\":true}");
    if (b.oom) {
        free(b.buf);
        return ZQ_ENOMEM;
    }
    *text_out = b.buf;
    *len_out = b.len;
    return ZQ_OK;
}

int zq_store_record_text(zq_store_t *self, const char *id, char **text_out, size_t *len_out)
{
    sqlite3_stmt *st = self->st[ST_RECORD];
    s_bind_text(st, 1, id);
    zq_sb_t b = {0};
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        s_put_record(&b, st);
    } else if (rc == SQLITE_DONE) {
        zq_sb_puts(&b, "{\"id\":");
        zq_sb_json_str(&b, id);
        zq_sb_puts(&b, ",\"known\":false,\"state\":\"PENDING\",\"task\":null,\"result\":null,"
                       "\"exception\":null,\"traceback\":null,\"retries\":null,\"worker\":null,"
                       "\"queue\":null,\"args\":null,\"kwargs\":null,\"eta\":null,"
                       "\"expires\":null,\"parent_id\":null,\"root_id\":null,"
                       "\"date_sent\":null,\"date_received\":null,\"date_started\":null,"
                       "\"date_done\":null,\"runtime\":null}");
    } else {
        s_seterr(self, "record");
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        free(b.buf);
        return ZQ_ESTORE;
    }
    if (b.oom) {
        free(b.buf);
        return ZQ_ENOMEM;
    }
    *text_out = b.buf;
    if (len_out)
        *len_out = b.len;
    return ZQ_OK;
}

int zq_store_get_record(zq_store_t *self, const char *id, cJSON **out)
{
    char *text;
    size_t len;
    int rc = zq_store_record_text(self, id, &text, &len);
    if (rc != ZQ_OK)
        return rc;
    *out = cJSON_ParseWithLength(text, len);
    free(text);
    return *out ? ZQ_OK : ZQ_ENOMEM;
}

/* ---- monitor queries ---- */

/* Fill the counters with one scan of the table (see s_counts_t). */
static int s_counts_scan(zq_store_t *self)
{
    s_counts_t *c = &self->counts;
    s_counts_reset(c);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(self->db,
                           "SELECT worker,state,count(*),coalesce(sum(retries),0) FROM tasks "
                           "GROUP BY worker,state",
                           -1, &st, NULL) != SQLITE_OK) {
        s_seterr(self, "counts");
        return ZQ_ESTORE;
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *worker = (const char *)sqlite3_column_text(st, 0);
        const char *state = zq_state_canonical((const char *)sqlite3_column_text(st, 1));
        long n = (long)sqlite3_column_int64(st, 2);
        long retries = (long)sqlite3_column_int64(st, 3);
        c->retried += retries;
        s_wcount_t *w = worker ? s_wcount(c, worker) : NULL;
        if (w)
            w->retried += retries;
        if (state == s_states[4]) {
            c->success += n;
            if (w)
                w->succeeded += n;
        } else if (state == s_states[5]) {
            c->failure += n;
            if (w)
                w->failed += n;
        } else if (state == s_states[6]) {
            c->revoked += n;
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        s_seterr(self, "counts");
        s_counts_reset(c);
        return ZQ_ESTORE;
    }
    c->valid = 1;
    return ZQ_OK;
}

/* Run one of the ST_LIVE_* statements: rows of (state, count), or one count. */
static int s_live(zq_store_t *self, int which, zq_store_counts_t *out)
{
    sqlite3_stmt *st = self->st[which];
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (which == ST_LIVE_READY) {
            out->pending += (long)sqlite3_column_int64(st, 0);
            continue;
        }
        const char *state = zq_state_canonical((const char *)sqlite3_column_text(st, 0));
        long n = (long)sqlite3_column_int64(st, 1);
        if (state == s_states[0])
            out->pending += n;
        else if (state == s_states[1])
            out->received += n;
        else if (state == s_states[2])
            out->started += n;
        else if (state == s_states[3])
            out->retry += n;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        s_seterr(self, "counts");
        return ZQ_ESTORE;
    }
    return ZQ_OK;
}

int zq_store_counts(zq_store_t *self, zq_store_counts_t *out)
{
    memset(out, 0, sizeof *out);
    if (!self->counts.valid && s_counts_scan(self) != ZQ_OK)
        return ZQ_ESTORE;
    if (s_live(self, ST_LIVE_READY, out) != ZQ_OK || s_live(self, ST_LIVE_SCHED, out) != ZQ_OK ||
        s_live(self, ST_LIVE_INFLIGHT, out) != ZQ_OK)
        return ZQ_ESTORE;
    out->success = self->counts.success;
    out->failure = self->counts.failure;
    out->revoked = self->counts.revoked;
    out->retried = self->counts.retried;
    out->total = out->pending + out->received + out->started + out->retry + out->success +
                 out->failure + out->revoked;
    return ZQ_OK;
}

int zq_store_worker_counts(zq_store_t *self, zq_store_wcount_fn fn, void *arg)
{
    if (!self->counts.valid && s_counts_scan(self) != ZQ_OK)
        return ZQ_ESTORE;
    const s_counts_t *c = &self->counts;
    for (size_t i = 0; i < c->wcap; i++)
        if (c->w[i].name &&
            fn(arg, c->w[i].name, c->w[i].succeeded, c->w[i].failed, c->w[i].retried) != 0)
            break;
    return ZQ_OK;
}

/* Sort keys: API name -> column. */
static const struct {
    const char *key, *col;
} s_sort_keys[] = {{"name", "task"},          {"task", "task"},
                   {"id", "id"},              {"uuid", "id"},
                   {"state", "state"},        {"queue", "queue"},
                   {"sent", "rid"},           {"received", "date_received"},
                   {"started", "date_started"}, {"done", "date_done"},
                   {"succeeded", "date_done"}, {"timestamp", "date_done"},
                   {"runtime", "runtime"},    {"worker", "worker"},
                   {"retries", "retries"},    {"eta", "eta"},
                   {"expires", "expires"},    {NULL, NULL}};

static const char *s_sort_col(const char *sort_by, int *desc)
{
    *desc = 0;
    if (!sort_by)
        return NULL;
    if (*sort_by == '-') {
        *desc = 1;
        sort_by++;
    }
    for (size_t i = 0; s_sort_keys[i].key; i++)
        if (!strcmp(sort_by, s_sort_keys[i].key))
            return s_sort_keys[i].col;
    return NULL;
}

int zq_store_sort_valid(const char *sort_by)
{
    int desc;
    return s_sort_col(sort_by, &desc) != NULL;
}

/* Calls fn for each state of a comma-separated list; 0 when one is not a state. */
static int s_each_state(const char *s, void (*fn)(void *arg, const char *state), void *arg)
{
    if (!s || !*s)
        return 0;
    while (*s) {
        const char *comma = strchr(s, ',');
        size_t n = comma ? (size_t)(comma - s) : strlen(s);
        char one[16];
        if (n == 0 || n >= sizeof one)
            return 0;
        memcpy(one, s, n);
        one[n] = '\0';
        const char *state = zq_state_canonical(one);
        if (!state)
            return 0;
        if (fn)
            fn(arg, state);
        if (!comma)
            break;
        s = comma + 1;
        if (!*s)
            return 0; /* a trailing comma */
    }
    return 1;
}

int zq_store_states_valid(const char *s)
{
    return s_each_state(s, NULL, NULL);
}

/* A WHERE clause being built: plain "?" placeholders, parameters in the same order. */
typedef struct {
    zq_sb_t *sql;
    int where; /* "WHERE" written */
    const char *text[16];
    double num[16];
    int n;
    unsigned mask; /* state filter: bit per s_states index */
} s_filter_t;

static void s_state_bit(void *arg, const char *state)
{
    s_filter_t *f = arg;
    for (unsigned i = 0; i < sizeof s_states / sizeof s_states[0]; i++)
        if (state == s_states[i])
            f->mask |= 1u << i;
}

static void s_cond(s_filter_t *f, const char *cond)
{
    zq_sb_puts(f->sql, f->where ? " AND " : " WHERE ");
    f->where = 1;
    zq_sb_puts(f->sql, cond);
}

static void s_param_text(s_filter_t *f, const char *v)
{
    f->text[f->n++] = v;
}

static void s_param_num(s_filter_t *f, double v)
{
    f->text[f->n] = NULL;
    f->num[f->n++] = v;
}

static void s_build_filter(const zq_store_query_t *q, s_filter_t *f, const char *search_lc)
{
    if (f->mask) {
        s_cond(f, "state IN (");
        int first = 1;
        for (unsigned i = 0; i < sizeof s_states / sizeof s_states[0]; i++) {
            if (!(f->mask & (1u << i)))
                continue;
            zq_sb_puts(f->sql, first ? "'" : ",'");
            zq_sb_puts(f->sql, s_states[i]); /* static names: nothing from the caller */
            zq_sb_puts(f->sql, "'");
            first = 0;
        }
        zq_sb_puts(f->sql, ")");
    }
    static const char *const conds[] = {"task=?", "worker=?", "parent_id=?", "root_id=?"};
    const char *vals[] = {q->task, q->worker, q->parent_id, q->root_id};
    for (int i = 0; i < 4; i++) {
        if (vals[i]) {
            s_cond(f, conds[i]);
            s_param_text(f, vals[i]);
        }
    }
    if (search_lc) {
        s_cond(f, "(instr(lower(id),?) OR instr(lower(task),?) OR instr(lower(msg),?) OR "
                  "instr(lower(coalesce(result,'')),?) OR "
                  "instr(lower(coalesce(exc_type,'')||': '||coalesce(exc_message,'')),?) OR "
                  "instr(lower(coalesce(worker,'')),?))");
        for (int i = 0; i < 6; i++)
            s_param_text(f, search_lc);
    }
    if (q->received_start > 0) {
        s_cond(f, "date_received>=?");
        s_param_num(f, q->received_start);
    }
    if (q->received_end > 0) {
        s_cond(f, "date_received<=?");
        s_param_num(f, q->received_end);
    }
}

static void s_bind_filter(sqlite3_stmt *st, const s_filter_t *f)
{
    for (int i = 0; i < f->n; i++) {
        if (f->text[i])
            sqlite3_bind_text(st, i + 1, f->text[i], -1, SQLITE_STATIC);
        else
            sqlite3_bind_double(st, i + 1, f->num[i]);
    }
}

int zq_store_list_tasks(zq_store_t *self, const zq_store_query_t *q, char **text_out,
                        size_t *len_out, long *total, int *truncated)
{
    *text_out = NULL;
    *total = 0;
    if (truncated)
        *truncated = 0;
    int desc = 1;
    const char *col = "rid";
    if (q->sort_by && !(col = s_sort_col(q->sort_by, &desc))) {
        snprintf(self->errbuf, sizeof self->errbuf, "unknown sort key '%.64s'", q->sort_by);
        return ZQ_EINVAL;
    }
    zq_sb_t where = {0};
    s_filter_t f = {.sql = &where};
    if (q->state && !s_each_state(q->state, s_state_bit, &f)) {
        snprintf(self->errbuf, sizeof self->errbuf, "not a state (or list of states): '%.64s'",
                 q->state);
        return ZQ_EINVAL;
    }
    char *search_lc = NULL;
    if (q->search && *q->search) {
        search_lc = strdup(q->search);
        if (!search_lc)
            return ZQ_ENOMEM;
        for (char *p = search_lc; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a'); /* as SQLite's lower(): ASCII only */
    }
    s_build_filter(q, &f, search_lc);
    long limit = q->limit <= 0 ? 100 : q->limit > ZQ_STORE_LIST_MAX ? ZQ_STORE_LIST_MAX : q->limit;
    long offset = q->offset > 0 ? q->offset : 0;
    zq_sb_t sql = {0}, out = {0};
    int rc = ZQ_OK;
    sqlite3_stmt *st = NULL;

    /* total: from the counters when only the state is filtered (no table scan) */
    int only_state = f.n == 0;
    if (only_state) {
        zq_store_counts_t c;
        if (zq_store_counts(self, &c) != ZQ_OK) {
            rc = ZQ_ESTORE;
            goto done;
        }
        const long by[] = {c.pending, c.received, c.started, c.retry,
                           c.success, c.failure,  c.revoked};
        for (unsigned i = 0; i < 7; i++)
            if (!f.mask || (f.mask & (1u << i)))
                *total += by[i];
    } else {
        zq_sb_puts(&sql, "SELECT count(*) FROM tasks");
        zq_sb_puts(&sql, where.buf ? where.buf : "");
        if (sql.oom || sqlite3_prepare_v2(self->db, sql.buf, -1, &st, NULL) != SQLITE_OK) {
            rc = sql.oom ? ZQ_ENOMEM : ZQ_ESTORE;
            if (!sql.oom)
                s_seterr(self, "list tasks");
            goto done;
        }
        s_bind_filter(st, &f);
        if (sqlite3_step(st) == SQLITE_ROW) {
            *total = (long)sqlite3_column_int64(st, 0);
        } else {
            s_seterr(self, "list tasks");
            rc = ZQ_ESTORE;
            goto done;
        }
        sqlite3_finalize(st);
        st = NULL;
        sql.len = 0;
    }

    zq_sb_puts(&sql, "SELECT " RECORD_COLS " FROM tasks");
    zq_sb_puts(&sql, where.buf ? where.buf : "");
    char tail[160];
    snprintf(tail, sizeof tail, " ORDER BY %s %s%s, rid %s LIMIT %ld OFFSET %ld", col,
             desc ? "DESC" : "ASC", strcmp(col, "rid") ? " NULLS LAST" : "",
             desc ? "DESC" : "ASC", limit, offset);
    if (!strcmp(col, "rid")) /* "rid DESC, rid DESC": harmless, but say it once */
        snprintf(tail, sizeof tail, " ORDER BY rid %s LIMIT %ld OFFSET %ld",
                 desc ? "DESC" : "ASC", limit, offset);
    zq_sb_puts(&sql, tail);
    if (sql.oom || sqlite3_prepare_v2(self->db, sql.buf, -1, &st, NULL) != SQLITE_OK) {
        rc = sql.oom ? ZQ_ENOMEM : ZQ_ESTORE;
        if (!sql.oom)
            s_seterr(self, "list tasks");
        goto done;
    }
    s_bind_filter(st, &f);
    zq_sb_putn(&out, "[", 1);
    int n = 0, step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (q->max_bytes && n > 0 && out.len >= q->max_bytes) {
            if (truncated)
                *truncated = 1;
            break;
        }
        if (n++)
            zq_sb_putn(&out, ",", 1);
        s_put_record(&out, st);
    }
    zq_sb_putn(&out, "]", 1);
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
        s_seterr(self, "list tasks");
        rc = ZQ_ESTORE;
    } else if (out.oom) {
        rc = ZQ_ENOMEM;
    }
done:
    sqlite3_finalize(st);
    free(sql.buf);
    free(where.buf);
    free(search_lc);
    if (rc != ZQ_OK) {
        free(out.buf);
        return rc;
    }
    *text_out = out.buf;
    if (len_out)
        *len_out = out.len;
    return ZQ_OK;
}
