/*
 * zq_store - the broker's durable task store (SQLite, WAL).
 *
 * One narrow interface so that another backend (a shared PostgreSQL store, issue 3+)
 * can replace it: the broker never writes SQL itself. Everything here runs on the
 * broker's single thread; nothing is thread-safe. (A store runs a thread of its own that
 * checkpoints the WAL through a second connection, started by zq_store_open and joined by
 * zq_store_destroy; it shares nothing with callers.)
 *
 * Writes are grouped by the caller: zq_store_begin() ... many writes ... zq_store_commit().
 * Outside a transaction each write commits on its own (fine for tests, slow for the broker).
 *
 * A task row keeps the task message exactly as the broker forwards it (JSON text, printed
 * once at SUBMIT) plus the queryable columns: state, queue, eta, expires, retries, worker,
 * result (JSON text), exception type/message, traceback, the four dates, runtime,
 * acks_late, ignore_result, parent/root ids. Times are epoch seconds (double); 0 = none.
 *
 * Where a non-terminal task lives, as the store sees it (the broker relies on this):
 *   - "ready":     state PENDING and no eta; ordered by rid (insertion order) per queue.
 *   - "scheduled": state PENDING or RETRY with an eta; ordered by (eta, rid).
 *   - "in flight": state RECEIVED or STARTED (a worker acknowledged it).
 * Tasks handed to a worker stay PENDING until its RECEIVED arrives; the broker tracks
 * those in memory.
 */
#ifndef ZQ_STORE_H
#define ZQ_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

/* Bumped on every schema change; see the migration procedure in zq_store.c. */
#define ZQ_STORE_SCHEMA_VERSION 2
/* File name of the database inside the data directory. */
#define ZQ_STORE_FILE "zq.db"

typedef struct zq_store zq_store_t;

typedef enum {
    ZQ_STORE_SYNC_OFF = 0,    /* no fsync at all: benchmarks only */
    ZQ_STORE_SYNC_NORMAL = 1, /* WAL + synchronous=NORMAL: survives a process crash */
    ZQ_STORE_SYNC_FULL = 2    /* WAL + synchronous=FULL: survives a power cut */
} zq_store_sync_t;

/* Parse "off|normal|full" (any case). ZQ_OK or ZQ_EINVAL. */
int zq_store_parse_sync(const char *s, zq_store_sync_t *out);
const char *zq_store_sync_name(zq_store_sync_t sync);

/* Open (creating when needed, mode 0700) the data directory dir and the database in it,
 * migrating the schema (a new database gets 8 KiB pages). Testing aids:
 * $ZQ_STORE_MAX_PAGES=N caps the database at N x 4 KiB, so that writes fail as on a full
 * disk; $ZQ_STORE_CKPT_PAGES=N checkpoints the WAL from N frames on (default: 40 MiB worth)
 * instead. On failure returns NULL and writes a one-line reason into err (errlen bytes, may
 * be NULL). Caller owns return value and must destroy it. */
zq_store_t *zq_store_open(const char *dir, zq_store_sync_t sync, char *err, size_t errlen);
/* Commit what is pending (if a transaction is open), close, free. NULL-safe; clears *self_p. */
void zq_store_destroy(zq_store_t **self_p);
/* The WAL as the broker's connection sees it, for tests and diagnostics. */
typedef struct {
    long commits;    /* commits of the caller's connection */
    long frames;     /* pages in the WAL after the last commit */
    long max_frames; /* the most seen after a commit */
    long resets;     /* times the WAL started over from its beginning */
    long passes;     /* checkpoints run by the store's thread */
    long finished;   /* checkpoints finished by the caller's thread (in zq_store_commit) */
    double finish_ms; /* the longest of those */
    long errors;     /* failed checkpoints (logged) */
} zq_store_wal_stats_t;
void zq_store_wal_stats(const zq_store_t *self, zq_store_wal_stats_t *out);

/* The last SQLite error message of this store. Never NULL; valid until the next call. */
const char *zq_store_errmsg(const zq_store_t *self);

/* Transactions. begin while one is open, or commit/rollback with none open, are no-ops.
 * commit returns ZQ_ESTORE when the commit failed (disk full, read-only...); the
 * transaction is then rolled back and nothing of it is stored. */
int zq_store_begin(zq_store_t *self);
int zq_store_commit(zq_store_t *self);
void zq_store_rollback(zq_store_t *self);
/* 1 while a transaction is open. A failed write can make SQLite roll the whole
 * transaction back on its own: callers check this after an error. */
int zq_store_in_tx(const zq_store_t *self);

/* How many of the store's per-task statements SQLite runs through an ephemeral table (a
 * b-tree built on every run: "x IN (a,b,c)" of more than two constants, a sort, a two-pass
 * UPDATE), their numbers listed in names ("3,17"; truncated to len); the purges and the
 * SCHEDULED listing are left out (one run each, not per task). -1 if EXPLAIN failed. For
 * tests: the statements are written so that the answer is 0. */
int zq_store_ephemeral_plans(zq_store_t *self, char *names, size_t len);

/* ---- writing ---- */

/* A new task. Strings are borrowed for the call. */
typedef struct {
    const char *id;
    const char *task;
    const char *queue;
    const char *msg; /* the task message, JSON text as forwarded to workers */
    size_t msglen;
    double eta;      /* 0 = none */
    double expires;  /* 0 = none */
    double sent;     /* date_sent */
    int retries;
    int ignore_result;
    const char *parent_id; /* may be NULL */
    const char *root_id;   /* may be NULL */
} zq_store_task_t;

/* Store a new task in state PENDING. *rid_out (may be NULL) receives its row id, which
 * orders tasks of a queue. ZQ_OK; ZQ_EDUPLICATE when the id exists (nothing changed);
 * ZQ_ESTORE on an SQLite error (zq_store_errmsg). */
int zq_store_enqueue(zq_store_t *self, const zq_store_task_t *t, int64_t *rid_out);

/* A state change, with the fields of a STATE message (docs/protocol.md §8). Strings are
 * borrowed for the call; NULL / 0 / negative means "not given". */
typedef struct {
    const char *id;
    const char *state;     /* RECEIVED, STARTED, RETRY, SUCCESS, FAILURE, REVOKED */
    const char *worker;    /* worker name */
    double timestamp;      /* when it happened (epoch); 0 = now */
    const char *result;    /* SUCCESS: the value as JSON text (NULL = null) */
    const char *exc_type;  /* FAILURE, REVOKED, RETRY */
    const char *exc_message;
    const char *traceback;
    double runtime;        /* seconds; < 0 = none */
    double eta;            /* RETRY: when to run again (0 = timestamp) */
    int acks_late;         /* STARTED: 1 if the task is acks_late */
    /* Earlier states of the same run folded into this write (the broker coalesces the
     * STATEs of one task that arrive in one batch): their dates; 0 = not given. */
    double received_at;    /* STARTED, RETRY, terminal */
    double started_at;     /* RETRY, terminal */
    int64_t rid;           /* terminal: the task's row id when known (zq_store_enqueue's),
                            * which spares the lookup by id; 0 = not known */
} zq_store_state_t;

/* Where a task lives: filled in by the calls that move a task back to waiting. */
typedef struct {
    int64_t rid;
    double eta; /* 0 = none */
    char queue[256];
} zq_store_where_t;

/* Apply a state change. Terminal tasks never move (idempotent delivery): ZQ_ESTATE, and
 * nothing changes. Nor do tasks move backwards: RECEIVED applies only to a waiting task
 * (PENDING/RETRY), STARTED not after STARTED; otherwise ZQ_ESTATE. RETRY also increments retries, sets eta, and rewrites the stored task
 * message to match ("retries", "eta"), so the next TASK carries them; *where (may be
 * NULL) then receives the task's row id, eta and queue. ZQ_OK when applied, ZQ_ENOTFOUND
 * for an unknown id, ZQ_EINVAL for an unknown state, ZQ_ESTORE. */
int zq_store_set_state(zq_store_t *self, const zq_store_state_t *st, zq_store_where_t *where);

/* A task handed out but not run goes back to waiting: state PENDING, unless it is
 * terminal or queued (ZQ_ESTATE). ZQ_OK, ZQ_ENOTFOUND, ZQ_ESTORE. */
int zq_store_requeue(zq_store_t *self, const char *id);

/* End a task that is still queued (state PENDING or RETRY) as REVOKED with
 * TaskRevokedError and message (revoked, expired, purged). The task is named by id, or
 * by rid when id is NULL. *where (may be NULL) receives where it was. ZQ_OK when it was
 * queued; ZQ_ESTATE when it is not (running, done, unknown); ZQ_ESTORE. */
int zq_store_revoke_queued(zq_store_t *self, const char *id, int64_t rid, const char *message,
                           double now, zq_store_where_t *where);

/* Purge the part of a queue that lives only on disk: ready tasks with rid > ready_after
 * and scheduled tasks with (eta, rid) > (sched_after_eta, sched_after_rid) (pass
 * sched_after_eta = INFINITY to purge no scheduled ones). They end REVOKED "purged".
 * *count receives how many. ZQ_OK or ZQ_ESTORE. */
int zq_store_purge_disk(zq_store_t *self, const char *queue, int64_t ready_after,
                        double sched_after_eta, int64_t sched_after_rid, double now, long *count);

/* Durable revoked set. add: ZQ_OK (also when already there) or ZQ_ESTORE. */
int zq_store_revoke_add(zq_store_t *self, const char *id, double now);
/* 1 if id is in the revoked set, 0 if not, negative on error. */
int zq_store_is_revoked(zq_store_t *self, const char *id);

/* ---- reading ---- */

/* One task row, as handed to a zq_store_row_fn. Every pointer is borrowed: valid only
 * during the callback. */
typedef struct {
    int64_t rid;
    const char *id;
    const char *task;
    const char *queue;
    const char *state;
    const char *msg;
    size_t msglen;
    double eta;     /* 0 = none */
    double expires; /* 0 = none */
    int retries;
    int acks_late;
} zq_store_row_t;

/* Called once per row; return 0 to go on, non-zero to stop early. */
typedef int (*zq_store_row_fn)(void *arg, const zq_store_row_t *row);

/* Ready tasks (PENDING, no eta) of queue with rid > after_rid, in rid order, at most
 * limit. Returns the number of rows visited, or ZQ_ESTORE. Used to refill the broker's
 * in-memory queue from disk. */
int zq_store_load_ready(zq_store_t *self, const char *queue, int64_t after_rid, int limit,
                        zq_store_row_fn fn, void *arg);

/* Scheduled tasks (PENDING/RETRY with an eta) of queue (NULL: every queue) with
 * (eta, rid) > (after_eta, after_rid) (-INFINITY: from the first) and eta <= before
 * (INFINITY for no bound), in (eta, rid) order, at most limit. Returns the number of rows
 * visited, or ZQ_ESTORE. Per queue it is an index range scan; NULL sorts (listings only). */
int zq_store_load_scheduled(zq_store_t *self, const char *queue, double after_eta,
                            int64_t after_rid, double before, int limit, zq_store_row_fn fn,
                            void *arg);

/* One task by id (all row fields). ZQ_OK after calling fn, ZQ_ENOTFOUND, ZQ_ESTORE. */
int zq_store_find(zq_store_t *self, const char *id, zq_store_row_fn fn, void *arg);

/* One task by row id (all fields). ZQ_OK after calling fn, ZQ_ENOTFOUND, ZQ_ESTORE. */
int zq_store_load_task(zq_store_t *self, int64_t rid, zq_store_row_fn fn, void *arg);

/* Every in-flight task (RECEIVED or STARTED), for recovery at startup. Returns the
 * number of rows visited, or ZQ_ESTORE. */
int zq_store_load_inflight(zq_store_t *self, zq_store_row_fn fn, void *arg);

/* Per-queue counts of waiting tasks, for recovery and QUEUES. */
typedef int (*zq_store_count_fn)(void *arg, const char *queue, long ready, long scheduled);
/* Calls fn once per queue that has ready or scheduled tasks. ZQ_OK or ZQ_ESTORE. */
int zq_store_queue_counts(zq_store_t *self, zq_store_count_fn fn, void *arg);

/* Count of non-terminal tasks. Negative on error. */
long zq_store_count_unfinished(zq_store_t *self);

/* The state of a task (static string, e.g. "SUCCESS") or NULL when unknown. */
const char *zq_store_get_state(zq_store_t *self, const char *id);

/* The record (docs/protocol.md §9) that zq_store_record_text will give for a task that a
 * terminal zq_store_set_state(st) just ended, composed from st and the task's stored
 * message (msg: its JSON text; eta, expires: 0 = none) without reading the row. Only valid
 * when no RECEIVED / STARTED / RETRY of the task was applied before st (their dates would
 * be in the row); the caller knows that, this function checks the rest: ZQ_EINVAL when it
 * cannot compose it (not terminal, no worker, a retried task without both dates, a message
 * without "task"): then read the record. *text_out: caller frees. */
int zq_store_record_compose(const zq_store_state_t *st, const char *msg, size_t msglen,
                            double eta, double expires, char **text_out, size_t *len_out);
/* The task record of docs/protocol.md §9 as JSON text ("known": true), or for an id never
 * accepted the record {"id", "known": false, "state": "PENDING", every other field null}.
 * *text_out is NUL-terminated; caller owns it and must free() it. ZQ_OK, ZQ_ENOMEM,
 * ZQ_ESTORE. */
int zq_store_record_text(zq_store_t *self, const char *id, char **text_out, size_t *len_out);
/* Same, as cJSON. Caller owns *out and must cJSON_Delete it. */
int zq_store_get_record(zq_store_t *self, const char *id, cJSON **out);

/* Revoked ids, most recent first, at most limit. fn gets each id (borrowed). Returns
 * the number visited or ZQ_ESTORE. */
typedef int (*zq_store_id_fn)(void *arg, const char *id);
int zq_store_revoked_list(zq_store_t *self, int limit, zq_store_id_fn fn, void *arg);

/* ---- monitor queries (TASKS, STATS; docs/protocol.md §7) ---- */

/* Tasks by state, and retries performed. Terminal counts and retries are counters kept
 * by the writes (the first call scans the table once, and so does the first call after a
 * rollback); the waiting and running counts come from the partial indexes. So a call
 * costs O(unfinished tasks), never O(all tasks). */
typedef struct {
    long pending, received, started, retry, success, failure, revoked;
    long total;   /* the sum of the above */
    long retried; /* RETRY transitions so far (the sum of every task's retries) */
} zq_store_counts_t;
/* ZQ_OK or ZQ_ESTORE. */
int zq_store_counts(zq_store_t *self, zq_store_counts_t *out);

/* Per worker name (the worker recorded on the task): tasks it ended SUCCESS or FAILURE and
 * retries it reported. Counted like zq_store_counts (a first call scans; after a rescan a
 * task's retries count for the worker that last held it). fn is called once per name seen,
 * in no particular order; name is borrowed for the call. ZQ_OK or ZQ_ESTORE. */
typedef int (*zq_store_wcount_fn)(void *arg, const char *worker, long succeeded, long failed,
                                  long retried);
int zq_store_worker_counts(zq_store_t *self, zq_store_wcount_fn fn, void *arg);

/* A TASKS listing. Zero-initialise, then set what you need. Strings are borrowed. */
typedef struct {
    long limit;           /* rows to return; <= 0 means 100; at most ZQ_STORE_LIST_MAX */
    long offset;          /* rows to skip (>= 0) */
    const char *sort_by;  /* a key of zq_store_sort_valid(), "-key" for descending; NULL:
                           * newest first (acceptance order) */
    const char *state;    /* one state or a comma-separated list; NULL = any */
    const char *task;     /* exact task name; NULL = any */
    const char *worker;   /* exact worker name; NULL = any */
    const char *parent_id; /* children of this task (indexed); NULL = any */
    const char *root_id;  /* tasks of this workflow (a scan); NULL = any */
    double received_start, received_end; /* date_received bounds (epoch, inclusive); 0 = none */
    const char *search;   /* case-insensitive substring of the id, name, message (args,
                           * kwargs), result, exception or worker; NULL/"" = none */
    size_t max_bytes;     /* stop adding records once the text is this long (0 = no cap) */
} zq_store_query_t;
#define ZQ_STORE_LIST_MAX 1000

/* 1 when sort_by (with or without a leading "-") is a sort key: name, id, state, queue,
 * sent, received, started, done, runtime, worker, retries, eta, expires (also Flower's
 * uuid, succeeded, timestamp). */
int zq_store_sort_valid(const char *sort_by);
/* 1 when s is one state name or a comma-separated list of them. */
int zq_store_states_valid(const char *s);

/* The records (docs/protocol.md §9) matching q as a JSON array text ("[...]", caller owns
 * *text_out and must free() it), *total the number of matches (every page), *truncated 1
 * when max_bytes cut the page short. ZQ_OK, ZQ_EINVAL (a bad sort key or state: nothing
 * is read), ZQ_ENOMEM, ZQ_ESTORE. Filters other than state scan the table. */
int zq_store_list_tasks(zq_store_t *self, const zq_store_query_t *q, char **text_out,
                        size_t *len_out, long *total, int *truncated);

/* 1 when state is SUCCESS, FAILURE or REVOKED. */
int zq_state_is_terminal(const char *state);
/* The static copy of a valid state name ("PENDING" ... "REVOKED"), NULL if not one. */
const char *zq_state_canonical(const char *state);

#endif
