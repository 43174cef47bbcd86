/*
 * replay - run a fuzz target's LLVMFuzzerTestOneInput over files without libFuzzer, so that
 * a plain `make check` (any compiler) replays every seed and crash regression
 * (tests/fuzz/replay.sh). Arguments are files or directories (their files, sorted; names
 * starting with '.' and README* are skipped). Prints "ok FILE" per input and a closing
 * "N passed, 0 failed"; an input that crashes or trips a sanitizer ends the process, so the
 * caller counts the inputs not reported ok as failed.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static long s_passed;

static int s_run(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        perror(path);
        return -1;
    }
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, fp)) > 0) {
        n += got;
        if (n == cap) {
            uint8_t *b = realloc(buf, cap *= 2);
            if (!b)
                free(buf);
            buf = b;
        }
    }
    fclose(fp);
    if (!buf) {
        fprintf(stderr, "%s: out of memory\n", path);
        return -1;
    }
    /* an exact-size copy, as libFuzzer gives: reads past the end are caught */
    uint8_t *exact = malloc(n ? n : 1);
    if (!exact) {
        free(buf);
        return -1;
    }
    memcpy(exact, buf, n);
    free(buf);
    fprintf(stderr, "replay %s (%zu bytes)\n", path, n);
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    printf("ok %s\n", path);
    fflush(stdout);
    s_passed++;
    return 0;
}

static int s_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int s_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        perror(dir);
        return -1;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !strncmp(e->d_name, "README", 6))
            continue;
        char **v = realloc(names, (n + 1) * sizeof *v);
        if (!v)
            break;
        names = v;
        if (!(names[n] = malloc(strlen(dir) + strlen(e->d_name) + 2)))
            break;
        sprintf(names[n++], "%s/%s", dir, e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, s_cmp);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode) && s_run(names[i]) != 0)
            rc = -1;
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            continue; /* a target without regressions has no directory for them */
        }
        if ((S_ISDIR(st.st_mode) ? s_dir(argv[i]) : s_run(argv[i])) != 0)
            rc = 1;
    }
    printf("replayed %ld input(s)%s\n", s_passed, rc ? ", some could not be read" : "");
    return rc;
}
