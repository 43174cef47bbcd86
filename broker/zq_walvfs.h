/*
 * zq_walvfs.h - an SQLite VFS that writes a commit's WAL frames with one system call.
 *
 * SQLite appends each WAL frame with two writes (a 24-byte header, then the page), so a
 * group commit of 12 pages costs 24 pwrite() calls, each paying the kernel's per-call
 * write path (1-3 us on this VM). This VFS ("zq-wal") wraps the platform's default VFS and,
 * for WAL files only, gathers contiguous writes in memory and hands them to the real file in
 * one write when the commit frame's page arrives (or before any other use of the file: a
 * read, a sync, a size, a non-contiguous write, a close; or when 120 KiB are gathered). A commit
 * is thus on the file, with its error reported to SQLite, before SQLite publishes it to
 * readers; the write that fails is the commit frame's, so SQLite rolls the transaction back
 * as it would have without this VFS. Every other file passes through untouched.
 *
 * Thread-safety: one SQLite connection per thread, as the store uses it (each connection's
 * WAL handle gathers its own writes).
 */
#ifndef ZQ_WALVFS_H
#define ZQ_WALVFS_H

#include <stddef.h>

#define ZQ_WALVFS_NAME "zq-wal"

/* Register the VFS under ZQ_WALVFS_NAME (not as the default), once per process; later calls
 * return the first one's result. ZQ_OK, or ZQ_ESTORE with a message in err. */
int zq_walvfs_register(char *err, size_t errlen);

typedef struct {
    unsigned long wal_writes;  /* writes SQLite asked of WAL files */
    unsigned long real_writes; /* writes this VFS made to them */
    unsigned long failed;      /* of those, failed (reported to SQLite) */
} zq_walvfs_stats_t;

/* Counters since the process started, for tests and diagnostics. */
void zq_walvfs_stats(zq_walvfs_stats_t *out);

#endif
