/*
 * zq_walvfs.c - the "zq-wal" SQLite VFS: a commit's WAL frames leave in one write
 * (zq_walvfs.h says why).
 *
 * Only the pattern SQLite's WAL writer is documented to produce is gathered: a 24-byte
 * frame header at an offset past the 32-byte WAL header, then its page right after it. A
 * frame header whose "database size" field (bytes 4-7) is not zero marks a commit frame:
 * its page's write hands the gathered bytes to the real file and returns that write's
 * result. Any other write, and any other method, first hands over what is gathered, so an
 * unknown pattern degrades to plain pass-through, never to a commit left in memory.
 */
#include "config.h"
#include "zq_walvfs.h"
#include "zq.h"
#include "zq_util.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define WAL_HDR 32        /* the WAL file's own header */
#define FRAME_HDR 24      /* each frame's header */
/* Bytes gathered at most (14 frames of 8 KiB pages): SQLite's unix VFS takes writes
 * under 128 KiB only (it masks the length with 0x1ffff), so a larger run would fail. */
#define GATHER_MAX (120 * 1024)

typedef struct {
    sqlite3_file base;    /* pMethods = &s_io */
    sqlite3_file *real;   /* the default VFS's file, in the memory right after this */
    char *buf;            /* gathered bytes, for file offset off */
    size_t len, cap;
    sqlite3_int64 off;
    int expect;           /* after a frame header: 1 its page, 2 a commit frame's page */
} s_file;

static sqlite3_vfs s_vfs;
static sqlite3_vfs *s_real;
static pthread_once_t s_once = PTHREAD_ONCE_INIT;
static int s_reg_rc = SQLITE_OK;
static zq_walvfs_stats_t s_stats;

static void s_count(unsigned long *c)
{
    __atomic_fetch_add(c, 1, __ATOMIC_RELAXED);
}

/* Write what is gathered; the file is empty of gathered bytes after it, even on failure
 * (the failure is the caller's write failing: SQLite treats the transaction as failed). */
static int s_flush(s_file *p)
{
    p->expect = 0;
    if (!p->len)
        return SQLITE_OK;
    int rc = p->real->pMethods->xWrite(p->real, p->buf, (int)p->len, p->off);
    s_count(&s_stats.real_writes);
    if (rc != SQLITE_OK)
        s_count(&s_stats.failed);
    p->len = 0;
    return rc;
}

/* Append to the gathered run (contiguous: the caller checked). 0, or -1 when there is no
 * room (GATHER_MAX or out of memory): the caller flushes and writes directly. */
static int s_append(s_file *p, const void *data, int amt, sqlite3_int64 ofst)
{
    size_t need = p->len + (size_t)amt;
    if (need > GATHER_MAX)
        return -1;
    if (need > p->cap) {
        size_t cap = p->cap ? p->cap : 64 * 1024;
        while (cap < need)
            cap *= 2;
        if (cap > GATHER_MAX)
            cap = GATHER_MAX;
        char *nb = realloc(p->buf, cap);
        if (!nb)
            return -1;
        p->buf = nb;
        p->cap = cap;
    }
    if (!p->len)
        p->off = ofst;
    memcpy(p->buf + p->len, data, (size_t)amt);
    p->len = need;
    return 0;
}

static int s_write(sqlite3_file *f, const void *data, int amt, sqlite3_int64 ofst)
{
    s_file *p = (s_file *)f;
    s_count(&s_stats.wal_writes);
    int contiguous = !p->len || ofst == p->off + (sqlite3_int64)p->len;
    if (contiguous && p->expect == 0 && amt == FRAME_HDR && ofst >= WAL_HDR) {
        const unsigned char *h = data;
        int commit = (h[4] | h[5] | h[6] | h[7]) != 0;
        if (s_append(p, data, amt, ofst) == 0) {
            p->expect = commit ? 2 : 1;
            return SQLITE_OK;
        }
    } else if (contiguous && p->expect != 0 && p->len) {
        int commit = p->expect == 2;
        if (s_append(p, data, amt, ofst) == 0) {
            p->expect = 0;
            /* now if it ends a commit or the next frame would not fit */
            int full = p->len + FRAME_HDR + (size_t)amt > GATHER_MAX;
            return commit || full ? s_flush(p) : SQLITE_OK;
        }
    }
    int rc = s_flush(p);
    if (rc != SQLITE_OK)
        return rc;
    s_count(&s_stats.real_writes);
    rc = p->real->pMethods->xWrite(p->real, data, amt, ofst);
    if (rc != SQLITE_OK)
        s_count(&s_stats.failed);
    return rc;
}

static int s_close(sqlite3_file *f)
{
    s_file *p = (s_file *)f;
    int frc = s_flush(p);
    int rc = p->real->pMethods->xClose(p->real);
    free(p->buf);
    p->buf = NULL;
    p->cap = 0;
    return frc != SQLITE_OK ? frc : rc;
}

/* The methods below hand over what is gathered, then pass the call through. */
#define REAL(f) (((s_file *)(f))->real)
#define FLUSH_OR_RETURN(f)                                                                   \
    do {                                                                                     \
        int frc_ = s_flush((s_file *)(f));                                                   \
        if (frc_ != SQLITE_OK)                                                               \
            return frc_;                                                                     \
    } while (0)

static int s_read(sqlite3_file *f, void *out, int amt, sqlite3_int64 ofst)
{
    FLUSH_OR_RETURN(f);
    return REAL(f)->pMethods->xRead(REAL(f), out, amt, ofst);
}

static int s_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    FLUSH_OR_RETURN(f);
    return REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int s_sync(sqlite3_file *f, int flags)
{
    FLUSH_OR_RETURN(f);
    return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int s_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    FLUSH_OR_RETURN(f);
    return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int s_lock(sqlite3_file *f, int level)
{
    FLUSH_OR_RETURN(f);
    return REAL(f)->pMethods->xLock(REAL(f), level);
}

static int s_unlock(sqlite3_file *f, int level)
{
    FLUSH_OR_RETURN(f);
    return REAL(f)->pMethods->xUnlock(REAL(f), level);
}

static int s_check_reserved(sqlite3_file *f, int *out)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int s_file_control(sqlite3_file *f, int op, void *arg)
{
    FLUSH_OR_RETURN(f);
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int s_sector_size(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int s_device_chars(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int s_shm_map(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **pp)
{
    if (REAL(f)->pMethods->iVersion < 2)
        return SQLITE_IOERR_SHMMAP;
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, pgsz, extend, pp);
}

static int s_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    FLUSH_OR_RETURN(f);
    if (REAL(f)->pMethods->iVersion < 2)
        return SQLITE_IOERR_SHMLOCK;
    return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}

static void s_shm_barrier(sqlite3_file *f)
{
    s_flush((s_file *)f); /* no way to report here; WAL files are not given barriers */
    if (REAL(f)->pMethods->iVersion >= 2)
        REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int s_shm_unmap(sqlite3_file *f, int del)
{
    if (REAL(f)->pMethods->iVersion < 2)
        return SQLITE_OK;
    return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

static int s_fetch(sqlite3_file *f, sqlite3_int64 ofst, int amt, void **pp)
{
    *pp = NULL;
    FLUSH_OR_RETURN(f);
    if (REAL(f)->pMethods->iVersion < 3)
        return SQLITE_OK; /* no mapping: SQLite reads instead */
    return REAL(f)->pMethods->xFetch(REAL(f), ofst, amt, pp);
}

static int s_unfetch(sqlite3_file *f, sqlite3_int64 ofst, void *ptr)
{
    if (REAL(f)->pMethods->iVersion < 3)
        return SQLITE_OK;
    return REAL(f)->pMethods->xUnfetch(REAL(f), ofst, ptr);
}

static const sqlite3_io_methods s_io = {
    .iVersion = 3,
    .xClose = s_close,
    .xRead = s_read,
    .xWrite = s_write,
    .xTruncate = s_truncate,
    .xSync = s_sync,
    .xFileSize = s_file_size,
    .xLock = s_lock,
    .xUnlock = s_unlock,
    .xCheckReservedLock = s_check_reserved,
    .xFileControl = s_file_control,
    .xSectorSize = s_sector_size,
    .xDeviceCharacteristics = s_device_chars,
    .xShmMap = s_shm_map,
    .xShmLock = s_shm_lock,
    .xShmBarrier = s_shm_barrier,
    .xShmUnmap = s_shm_unmap,
    .xFetch = s_fetch,
    .xUnfetch = s_unfetch,
};

/* A WAL file is wrapped; any other file is the default VFS's own, opened in place (the
 * memory SQLite gives is larger than it needs), so it costs nothing. */
static int s_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags,
                  int *out_flags)
{
    (void)vfs;
    if (!(flags & SQLITE_OPEN_WAL))
        return s_real->xOpen(s_real, name, f, flags, out_flags);
    s_file *p = (s_file *)f;
    memset(p, 0, sizeof *p);
    p->real = (sqlite3_file *)(p + 1);
    int rc = s_real->xOpen(s_real, name, p->real, flags, out_flags);
    /* SQLite closes a file whose open failed if its methods are set: so must we */
    p->base.pMethods = p->real->pMethods ? &s_io : NULL;
    return rc;
}

/* The rest of the VFS is the default one's, called with its own object. */
static int s_delete(sqlite3_vfs *v, const char *name, int sync_dir)
{
    (void)v;
    return s_real->xDelete(s_real, name, sync_dir);
}

static int s_access(sqlite3_vfs *v, const char *name, int flags, int *out)
{
    (void)v;
    return s_real->xAccess(s_real, name, flags, out);
}

static int s_full_path(sqlite3_vfs *v, const char *name, int n, char *out)
{
    (void)v;
    return s_real->xFullPathname(s_real, name, n, out);
}

static void *s_dl_open(sqlite3_vfs *v, const char *name)
{
    (void)v;
    return s_real->xDlOpen(s_real, name);
}

static void s_dl_error(sqlite3_vfs *v, int n, char *msg)
{
    (void)v;
    s_real->xDlError(s_real, n, msg);
}

static void (*s_dl_sym(sqlite3_vfs *v, void *h, const char *sym))(void)
{
    (void)v;
    return s_real->xDlSym(s_real, h, sym);
}

static void s_dl_close(sqlite3_vfs *v, void *h)
{
    (void)v;
    s_real->xDlClose(s_real, h);
}

static int s_randomness(sqlite3_vfs *v, int n, char *out)
{
    (void)v;
    return s_real->xRandomness(s_real, n, out);
}

static int s_sleep(sqlite3_vfs *v, int us)
{
    (void)v;
    return s_real->xSleep(s_real, us);
}

static int s_current_time(sqlite3_vfs *v, double *out)
{
    (void)v;
    return s_real->xCurrentTime(s_real, out);
}

static int s_last_error(sqlite3_vfs *v, int n, char *out)
{
    (void)v;
    return s_real->xGetLastError ? s_real->xGetLastError(s_real, n, out) : 0;
}

static int s_current_time64(sqlite3_vfs *v, sqlite3_int64 *out)
{
    (void)v;
    return s_real->xCurrentTimeInt64(s_real, out);
}

static void s_register(void)
{
    s_real = sqlite3_vfs_find(NULL);
    if (!s_real || s_real->iVersion < 2 || !s_real->xCurrentTimeInt64) {
        s_reg_rc = SQLITE_ERROR;
        return;
    }
    s_vfs = (sqlite3_vfs){
        .iVersion = 2, /* no system-call overrides: those are the default VFS's business */
        .szOsFile = (int)sizeof(s_file) + s_real->szOsFile,
        .mxPathname = s_real->mxPathname,
        .zName = ZQ_WALVFS_NAME,
        .xOpen = s_open,
        .xDelete = s_delete,
        .xAccess = s_access,
        .xFullPathname = s_full_path,
        .xDlOpen = s_dl_open,
        .xDlError = s_dl_error,
        .xDlSym = s_dl_sym,
        .xDlClose = s_dl_close,
        .xRandomness = s_randomness,
        .xSleep = s_sleep,
        .xCurrentTime = s_current_time,
        .xGetLastError = s_last_error,
        .xCurrentTimeInt64 = s_current_time64,
    };
    s_reg_rc = sqlite3_vfs_register(&s_vfs, 0);
}

int zq_walvfs_register(char *err, size_t errlen)
{
    pthread_once(&s_once, s_register);
    if (s_reg_rc != SQLITE_OK) {
        zq_errf(err, errlen, "cannot register the %s SQLite VFS: %s", ZQ_WALVFS_NAME,
                sqlite3_errstr(s_reg_rc));
        return ZQ_ESTORE;
    }
    return ZQ_OK;
}

void zq_walvfs_stats(zq_walvfs_stats_t *out)
{
    out->wal_writes = __atomic_load_n(&s_stats.wal_writes, __ATOMIC_RELAXED);
    out->real_writes = __atomic_load_n(&s_stats.real_writes, __ATOMIC_RELAXED);
    out->failed = __atomic_load_n(&s_stats.failed, __ATOMIC_RELAXED);
}
