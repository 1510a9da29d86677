/*
 * replay_main.c: a main() for the fuzz targets without libFuzzer, so that every normal build
 * (gcc or clang, sanitizers or not) runs the seed corpus and every past crash as a CTest test.
 *
 * Usage: <target>_replay PATH...
 *   A file is run as one input; a directory is walked recursively in name order (files whose
 *   name starts with '.' are skipped, e.g. .gitkeep). Each input is read whole into a buffer
 *   of exactly its size, so that ASan catches a read past its end, as under libFuzzer.
 *   LLVMFuzzerInitialize runs first when the target defines it.
 *
 * Exits 0 when every input ran (a crash or a broken invariant aborts the process first), 1
 * when a path cannot be read: a missing corpus directory is a broken test, not a pass.
 */
#include "fuzz.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Weak, so that targets without an initializer link too: then its address is NULL. */
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

/* Run the file at path (borrowed) as one input. Returns 0, or -1 if it cannot be read. */
static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    unsigned char *data = NULL;
    long size;
    int rc = -1;

    if (f == NULL) {
        perror(path);
        return -1;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        perror(path);
        goto out;
    }
    if (size > 0) {
        /* Exactly size bytes, so that ASan sees a read past the end of the input. */
        data = malloc((size_t)size);
        if (data == NULL || fread(data, 1, (size_t)size, f) != (size_t)size) {
            fprintf(stderr, "%s: cannot read %ld bytes\n", path, size);
            goto out;
        }
    }
    fprintf(stderr, "replay: %s (%ld bytes)\n", path, size);
    /* A zero-length input gets no buffer at all (NULL), so that nothing can read it. */
    LLVMFuzzerTestOneInput(data, (size_t)size);
    rc = 0;
out:
    free(data);
    fclose(f);
    return rc;
}

/* Run path (borrowed): a file, or every file under a directory. Returns the inputs run, or
 * -1 when something could not be read. */
static long run_path(const char *path)
{
    struct dirent **names = NULL;
    struct stat st;
    long total = 0;
    int n;

    if (stat(path, &st) != 0) {
        perror(path);
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return run_file(path) == 0 ? 1 : -1;

    n = scandir(path, &names, NULL, alphasort);
    if (n < 0) {
        perror(path);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const char *base = names[i]->d_name;
        long r = 0;

        if (base[0] != '.') {
            size_t len = strlen(path) + strlen(base) + 2;
            char *child = malloc(len);

            if (child == NULL) {
                r = -1;
            } else {
                snprintf(child, len, "%s/%s", path, base);
                r = run_path(child);
                free(child);
            }
        }
        free(names[i]);
        if (r < 0)
            total = -1;
        else if (total >= 0)
            total += r;
    }
    free(names);
    return total;
}

int main(int argc, char **argv)
{
    long total = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE-OR-DIRECTORY...\n", argv[0]);
        return 2;
    }
    if (LLVMFuzzerInitialize != NULL)
        LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        long r = run_path(argv[i]);

        if (r < 0)
            return 1;
        total += r;
    }
    fprintf(stderr, "replay: %ld inputs ran cleanly\n", total);
    return 0;
}
