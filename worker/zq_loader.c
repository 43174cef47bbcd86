/*
 * zq_loader - dlopen()s task plugins and keeps the registry of their tasks.
 *
 * Rules (docs/protocol.md §13, sdk/zq.h "Plugin ABI"): RTLD_NOW so that a missing symbol
 * fails at load and not in the middle of a task; RTLD_LOCAL so that two plugins cannot
 * clash on their own symbols; abi_major must match and abi_minor must not be newer than
 * ours; init() failing unloads the plugin; a task name is registered once (the first wins).
 * Each file is first dlopen()ed in a probe child (fork): dlopen runs the plugin's
 * constructors before any check can happen, and one that crashes, hangs or calls exit()
 * must cost that plugin only, not the worker.
 */
#include "config.h"
#include "zq_loader.h"
#include "zq_log.h"
#include "zq_time.h"
#include "zq_util.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
    char *path;                     /* as given */
    void *handle;                   /* dlopen handle */
    const zq_plugin_info_t *info;   /* the plugin's static table */
} s_plugin_t;

struct zq_loader {
    s_plugin_t *plugins;            /* loaded plugins, in load order */
    size_t nplugins, cap_plugins;
    zq_task_entry_t **tasks;        /* sorted by name */
    size_t ntasks, cap_tasks;
    int allow_insecure;             /* 1: world-writable files load with a warning */
    double probe_timeout;           /* seconds; <= 0: no probe */
};

zq_loader_t *zq_loader_new(void)
{
    zq_loader_t *self = calloc(1, sizeof(zq_loader_t));
    if (self)
        self->probe_timeout = ZQ_LOADER_PROBE_TIMEOUT;
    return self;
}

void zq_loader_set_probe_timeout(zq_loader_t *self, double seconds)
{
    if (self)
        self->probe_timeout = seconds > 0 ? seconds : 0;
}

static void s_entry_free(zq_task_entry_t *e)
{
    if (!e)
        return;
    free((char *)e->name);
    free(e);
}

static void s_unload(s_plugin_t *p)
{
    if (p->info && p->info->fini)
        p->info->fini();
    if (p->handle)
        dlclose(p->handle);
    free(p->path);
    memset(p, 0, sizeof *p);
}

void zq_loader_destroy(zq_loader_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zq_loader_t *self = *self_p;
    for (size_t i = 0; i < self->ntasks; i++)
        s_entry_free(self->tasks[i]);
    free(self->tasks);
    /* unload in reverse order, like destructors */
    for (size_t i = self->nplugins; i > 0; i--)
        s_unload(&self->plugins[i - 1]);
    free(self->plugins);
    free(self);
    *self_p = NULL;
}

void zq_loader_set_allow_insecure(zq_loader_t *self, int allow)
{
    if (self)
        self->allow_insecure = allow ? 1 : 0;
}

void zq_loader_resolve_opts(const zq_task_opts_t *o, zq_task_entry_t *e)
{
    e->bind = o->bind ? 1 : 0;
    if (o->max_retries == 0)
        e->max_retries = ZQ_DEFAULT_MAX_RETRIES;
    else if (o->max_retries == ZQ_NO_RETRIES)
        e->max_retries = 0;
    else if (o->max_retries < 0)
        e->max_retries = ZQ_RETRIES_FOREVER; /* ZQ_RETRIES_FOREVER or any other negative */
    else
        e->max_retries = o->max_retries;
    e->retry_delay = o->default_retry_delay > 0 ? o->default_retry_delay : ZQ_DEFAULT_RETRY_DELAY;
    e->acks_late = o->acks_late ? 1 : 0;
    e->time_limit = o->time_limit > 0 ? o->time_limit : 0;
    e->soft_time_limit = o->soft_time_limit > 0 ? o->soft_time_limit : 0;
    e->ignore_result = o->ignore_result ? 1 : 0;
}

/* Index of the first entry whose name is >= name (binary search). */
static size_t s_lower_bound(const zq_loader_t *self, const char *name)
{
    size_t lo = 0, hi = self->ntasks;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(self->tasks[mid]->name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const zq_task_entry_t *zq_loader_find(const zq_loader_t *self, const char *name)
{
    if (!self || !name)
        return NULL;
    size_t i = s_lower_bound(self, name);
    return i < self->ntasks && strcmp(self->tasks[i]->name, name) == 0 ? self->tasks[i] : NULL;
}

size_t zq_loader_task_count(const zq_loader_t *self)
{
    return self ? self->ntasks : 0;
}

const zq_task_entry_t *zq_loader_task(const zq_loader_t *self, size_t i)
{
    return self && i < self->ntasks ? self->tasks[i] : NULL;
}

size_t zq_loader_plugin_count(const zq_loader_t *self)
{
    return self ? self->nplugins : 0;
}

static int s_insert(zq_loader_t *self, zq_task_entry_t *e)
{
    if (self->ntasks == self->cap_tasks) {
        size_t cap = self->cap_tasks ? self->cap_tasks * 2 : 16;
        zq_task_entry_t **nt = realloc(self->tasks, cap * sizeof *nt);
        if (!nt)
            return ZQ_ENOMEM;
        self->tasks = nt;
        self->cap_tasks = cap;
    }
    size_t i = s_lower_bound(self, e->name);
    memmove(&self->tasks[i + 1], &self->tasks[i], (self->ntasks - i) * sizeof *self->tasks);
    self->tasks[i] = e;
    self->ntasks++;
    return ZQ_OK;
}

/* World-writable check for a plugin file or directory. ZQ_OK when it may be used. */
static int s_check_mode(const zq_loader_t *self, const char *path, const struct stat *st,
                        const char *what)
{
    if (!(st->st_mode & S_IWOTH))
        return ZQ_OK;
    if (self->allow_insecure) {
        ZQ_WARN("plugin %s %s is world-writable; loading it anyway (--allow-insecure-plugins)",
                what, path);
        return ZQ_OK;
    }
    ZQ_ERROR("refusing plugin %s %s: it is world-writable, so any local user could make this "
             "worker run their code; fix it with `chmod o-w %s` or pass --allow-insecure-plugins",
             what, path, path);
    return ZQ_EINVAL;
}

/* Check the plugin's task table before calling anything in it. */
static int s_check_table(const char *path, const zq_plugin_info_t *info)
{
    if (!info->module || !*info->module || !zq_valid_token(info->module)) {
        ZQ_ERROR("refusing plugin %s: its module name is missing or invalid", path);
        return ZQ_EPLUGIN;
    }
    size_t mlen = strlen(info->module);
    for (const zq_task_def_t *d = info->tasks; d && d->name; d++) {
        if (!*d->name || !zq_valid_token(d->name) || mlen + 1 + strlen(d->name) > 255) {
            ZQ_ERROR("refusing plugin %s: task name '%s' is invalid (1-255 printable characters "
                     "without spaces, module included)", path, d->name);
            return ZQ_EPLUGIN;
        }
        if (!d->fn) {
            ZQ_ERROR("refusing plugin %s: task %s.%s has no function", path, info->module,
                     d->name);
            return ZQ_EPLUGIN;
        }
        for (const zq_task_def_t *e = info->tasks; e != d; e++)
            if (strcmp(e->name, d->name) == 0) {
                ZQ_ERROR("refusing plugin %s: task %s.%s is declared twice in its table", path,
                         info->module, d->name);
                return ZQ_EPLUGIN;
            }
    }
    return ZQ_OK;
}

/* dlopen openpath in a child first. ZQ_OK when the child got through dlopen (whether it
 * loaded or not: a failing dlopen fails here again, with its own message) or could not be
 * started; ZQ_EPLUGIN, logged, when loading killed the child, hung, or ended it. */
static int s_probe(const zq_loader_t *self, const char *path, const char *openpath)
{
    if (self->probe_timeout <= 0)
        return ZQ_OK;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        ZQ_WARN("cannot probe plugin %s before loading it (%s): loading it directly", path,
                strerror(errno));
        return ZQ_OK;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        char verdict = dlopen(openpath, RTLD_NOW | RTLD_LOCAL) ? 'y' : 'n';
        ssize_t n = write(fds[1], &verdict, 1);
        (void)n;
        _exit(0); /* no destructors, no atexit handlers, no stdio flush: nothing twice */
    }
    close(fds[1]);
    if (pid < 0) {
        ZQ_WARN("cannot probe plugin %s before loading it (fork: %s): loading it directly",
                path, strerror(errno));
        close(fds[0]);
        return ZQ_OK;
    }
    /* one byte when dlopen returned; EOF when the child died before */
    char verdict = 0;
    int hung = 0;
    double deadline = zq_mono() + self->probe_timeout;
    for (;;) {
        double left = deadline - zq_mono();
        struct pollfd pfd = {fds[0], POLLIN, 0};
        int r = left > 0 ? poll(&pfd, 1, (int)ceil(left * 1000)) : 0;
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0)
            hung = 1;
        if (r <= 0)
            break;
        ssize_t n = read(fds[0], &verdict, 1);
        if (n < 0 && errno == EINTR)
            continue;
        break;
    }
    close(fds[0]);
    if (hung)
        kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (verdict == 'y' || verdict == 'n')
        return ZQ_OK;
    if (hung) {
        ZQ_ERROR("refusing plugin %s: loading it did not finish within %gs in a probe process "
                 "(a constructor that hangs?)", path, self->probe_timeout);
    } else if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        const char *abbrev = sigabbrev_np(sig);
        ZQ_ERROR("refusing plugin %s: loading it killed a probe process with signal %d (SIG%s): "
                 "its constructor, or one in a library it needs, crashed", path, sig,
                 abbrev ? abbrev : "?");
    } else {
        ZQ_ERROR("refusing plugin %s: loading it ended a probe process (exit status %d) before "
                 "dlopen returned: its constructor calls exit()", path,
                 WIFEXITED(status) ? WEXITSTATUS(status) : status);
    }
    return ZQ_EPLUGIN;
}

/* check_dir: 0 when the caller (load_dir) has already checked the directory. */
static int s_load_file(zq_loader_t *self, const char *path, int check_dir)
{
    if (!self || !path || !*path)
        return ZQ_EINVAL;
    struct stat st;
    if (stat(path, &st) != 0) {
        ZQ_ERROR("cannot load plugin %s: %s", path, strerror(errno));
        return ZQ_EINVAL;
    }
    if (!S_ISREG(st.st_mode)) {
        ZQ_ERROR("cannot load plugin %s: not a regular file", path);
        return ZQ_EINVAL;
    }
    if (s_check_mode(self, path, &st, "file") != ZQ_OK)
        return ZQ_EINVAL;
    /* the directory matters too: whoever can write it can swap the file */
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    struct stat dst;
    if (check_dir && stat(dir, &dst) == 0 && s_check_mode(self, dir, &dst, "directory") != ZQ_OK)
        return ZQ_EINVAL;

    if (self->nplugins == self->cap_plugins) {
        size_t cap = self->cap_plugins ? self->cap_plugins * 2 : 8;
        s_plugin_t *np = realloc(self->plugins, cap * sizeof *np);
        if (!np)
            return ZQ_ENOMEM;
        self->plugins = np;
        self->cap_plugins = cap;
    }
    /* a path without a slash would make dlopen search the library path instead */
    char openpath[PATH_MAX];
    snprintf(openpath, sizeof openpath, "%s%s", strchr(path, '/') ? "" : "./", path);
    if (s_probe(self, path, openpath) != ZQ_OK)
        return ZQ_EPLUGIN;
    dlerror();
    void *handle = dlopen(openpath, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char *err = dlerror();
        ZQ_ERROR("cannot load plugin %s: %s (check its dependencies with `ldd %s`)", path,
                 err ? err : "dlopen failed", path);
        return ZQ_EPLUGIN;
    }
    for (size_t i = 0; i < self->nplugins; i++)
        if (self->plugins[i].handle == handle) {
            ZQ_ERROR("refusing plugin %s: it is already loaded (from %s)", path,
                     self->plugins[i].path);
            dlclose(handle);
            return ZQ_EDUPLICATE;
        }
    dlerror();
    zq_plugin_entry_fn entry;
    /* dlsym returns void *; POSIX guarantees it converts to a function pointer */
    *(void **)&entry = dlsym(handle, ZQ_PLUGIN_ENTRY_SYMBOL);
    if (!entry) {
        const char *err = dlerror();
        ZQ_ERROR("refusing plugin %s: no %s() symbol, so it is not a zq plugin (%s); declare it "
                 "with ZQ_PLUGIN(...) from zq.h", path, ZQ_PLUGIN_ENTRY_SYMBOL,
                 err ? err : "symbol is NULL");
        dlclose(handle);
        return ZQ_EPLUGIN;
    }
    const zq_plugin_info_t *info = entry();
    if (!info) {
        ZQ_ERROR("refusing plugin %s: %s() returned NULL", path, ZQ_PLUGIN_ENTRY_SYMBOL);
        dlclose(handle);
        return ZQ_EPLUGIN;
    }
    if (info->abi_major != ZQ_PLUGIN_ABI_MAJOR || info->abi_minor > ZQ_PLUGIN_ABI_MINOR) {
        ZQ_ERROR("refusing plugin %s: built for plugin ABI %u.%u, this worker supports ABI %d.%d "
                 "(same major, minor up to %d); rebuild the plugin against this zq's zq.h",
                 path, (unsigned)info->abi_major, (unsigned)info->abi_minor, ZQ_PLUGIN_ABI_MAJOR,
                 ZQ_PLUGIN_ABI_MINOR, ZQ_PLUGIN_ABI_MINOR);
        dlclose(handle);
        return ZQ_EABI;
    }
    if (s_check_table(path, info) != ZQ_OK) {
        dlclose(handle);
        return ZQ_EPLUGIN;
    }
    if (info->init) {
        int rc = info->init();
        if (rc != ZQ_OK) {
            ZQ_ERROR("refusing plugin %s: its init() failed (returned %d)", path, rc);
            if (info->fini)
                info->fini();
            dlclose(handle);
            return ZQ_EPLUGIN;
        }
    }
    s_plugin_t *p = &self->plugins[self->nplugins];
    memset(p, 0, sizeof *p);
    p->path = strdup(path);
    p->handle = handle;
    p->info = info;
    if (!p->path) {
        s_unload(p);
        return ZQ_ENOMEM;
    }
    self->nplugins++;

    size_t declared = 0, registered = 0;
    int rc = ZQ_OK;
    for (const zq_task_def_t *d = info->tasks; d && d->name; d++) {
        declared++;
        size_t n = strlen(info->module) + 1 + strlen(d->name) + 1;
        char *full = malloc(n);
        if (!full)
            return ZQ_ENOMEM;
        snprintf(full, n, "%s.%s", info->module, d->name);
        const zq_task_entry_t *prev = zq_loader_find(self, full);
        if (prev) {
            ZQ_ERROR("refusing task %s from plugin %s: already registered by plugin %s", full,
                     path, prev->path);
            free(full);
            rc = ZQ_EDUPLICATE;
            continue;
        }
        zq_task_entry_t *e = calloc(1, sizeof *e);
        if (!e) {
            free(full);
            return ZQ_ENOMEM;
        }
        e->name = full;
        e->module = info->module;
        e->path = p->path;
        e->fn = d->fn;
        zq_loader_resolve_opts(&d->opts, e);
        if (s_insert(self, e) != ZQ_OK) {
            s_entry_free(e);
            return ZQ_ENOMEM;
        }
        registered++;
    }
    if (declared > 0 && registered == 0) {
        /* nothing of it is reachable: do not keep its code mapped */
        self->nplugins--;
        s_unload(p);
        return ZQ_EDUPLICATE;
    }
    if (declared == 0)
        ZQ_WARN("plugin %s (module %s) declares no tasks", path, info->module);
    ZQ_DEBUG("loaded plugin %s: module %s %s, %zu task(s)", path, info->module,
             info->version ? info->version : "", registered);
    return rc;
}

int zq_loader_load_file(zq_loader_t *self, const char *path)
{
    return s_load_file(self, path, 1);
}

static int s_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int zq_loader_load_dir(zq_loader_t *self, const char *dir)
{
    if (!self || !dir || !*dir)
        return ZQ_EINVAL;
    struct stat st;
    if (stat(dir, &st) != 0) {
        ZQ_ERROR("cannot read plugin directory %s: %s", dir, strerror(errno));
        return ZQ_EIO;
    }
    if (!S_ISDIR(st.st_mode)) {
        ZQ_ERROR("cannot read plugin directory %s: not a directory", dir);
        return ZQ_EIO;
    }
    if (s_check_mode(self, dir, &st, "directory") != ZQ_OK)
        return ZQ_EINVAL;
    DIR *d = opendir(dir);
    if (!d) {
        ZQ_ERROR("cannot read plugin directory %s: %s", dir, strerror(errno));
        return ZQ_EIO;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len <= 3 || strcmp(de->d_name + len - 3, ".so") != 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) {
                rc = ZQ_ENOMEM;
                break;
            }
            names = nn;
        }
        if (!(names[n] = strdup(de->d_name))) {
            rc = ZQ_ENOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    if (n > 1)
        qsort(names, n, sizeof *names, s_cmp_str);
    int loaded = 0;
    for (size_t i = 0; i < n; i++) {
        if (rc == ZQ_OK) {
            char path[PATH_MAX];
            int len = snprintf(path, sizeof path, "%s%s%s", dir,
                               dir[strlen(dir) - 1] == '/' ? "" : "/", names[i]);
            if (len > 0 && (size_t)len < sizeof path) {
                size_t before = self->nplugins;
                s_load_file(self, path, 0);
                if (self->nplugins > before)
                    loaded++;
            } else {
                ZQ_ERROR("skipping plugin %s/%s: path too long", dir, names[i]);
            }
        }
        free(names[i]);
    }
    free(names);
    return rc != ZQ_OK ? rc : loaded;
}
