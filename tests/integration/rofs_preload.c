/*
 * rofs_preload.c: an LD_PRELOAD library that makes a directory behave as if its file system had
 * been remounted read-only, for test_durable.c.
 *
 * Why not remount it for real: Linux refuses to remount a file system read-only while a file
 * on it is open for writing (EBUSY), and a running genserv keeps DIR/genserv.db and its WAL
 * open for writing for as long as it runs. So the test preloads this into genserv instead and,
 * while the trigger file exists, every write, truncation and sync of a file under the
 * directory fails with EROFS, as it would on a read-only file system. What is already written
 * stays readable. Removing the trigger makes the directory writable again.
 *
 * Configured by the environment of the process it is loaded into:
 *   GS_IT_ROFS_DIR      the directory (its path as genserv opens it, without a trailing /)
 *   GS_IT_ROFS_TRIGGER  the trigger file's path (outside the directory)
 * Without both it does nothing but pass every call through.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

/* Whether fd is a file under GS_IT_ROFS_DIR while the trigger exists. errno is kept. */
static int refused(int fd)
{
    const char *dir = getenv("GS_IT_ROFS_DIR"), *trigger = getenv("GS_IT_ROFS_TRIGGER");
    char link[64], path[4096];
    int saved = errno, out = 0;
    size_t dlen;
    ssize_t n;

    if (dir == NULL || trigger == NULL || fd < 0 || access(trigger, F_OK) != 0)
        goto done;
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    n = readlink(link, path, sizeof(path) - 1);
    if (n <= 0)
        goto done;
    path[n] = '\0';
    dlen = strlen(dir);
    out = strncmp(path, dir, dlen) == 0 && path[dlen] == '/';
done:
    errno = saved;
    return out;
}

typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef ssize_t (*pwrite64_fn)(int, const void *, size_t, off64_t);
typedef int (*ftruncate_fn)(int, off_t);
typedef int (*ftruncate64_fn)(int, off64_t);
typedef int (*sync_fn)(int);

static write_fn real_write;
static pwrite_fn real_pwrite;
static pwrite64_fn real_pwrite64;
static ftruncate_fn real_ftruncate;
static ftruncate64_fn real_ftruncate64;
static sync_fn real_fsync, real_fdatasync;

/* The next definition of name (libc's, or a sanitizer's interceptor) into *fn. ISO C has no
 * cast from an object pointer to a function pointer, hence the copy. */
static void next(const char *name, void *fn, size_t size)
{
    void *sym = dlsym(RTLD_NEXT, name);

    memcpy(fn, &sym, size);
}

/* At load, before genserv's main and any thread: the pointers are only read afterwards. */
__attribute__((constructor)) static void resolve(void)
{
    next("write", &real_write, sizeof(real_write));
    next("pwrite", &real_pwrite, sizeof(real_pwrite));
    next("pwrite64", &real_pwrite64, sizeof(real_pwrite64));
    next("ftruncate", &real_ftruncate, sizeof(real_ftruncate));
    next("ftruncate64", &real_ftruncate64, sizeof(real_ftruncate64));
    next("fsync", &real_fsync, sizeof(real_fsync));
    next("fdatasync", &real_fdatasync, sizeof(real_fdatasync));
}

/* A call before the constructor ran (another library's constructor writing) resolves first. */
#define REFUSE_IF_READ_ONLY(fd, real)                                                              \
    if (real == NULL)                                                                              \
        resolve();                                                                                 \
    if (refused(fd)) {                                                                             \
        errno = EROFS;                                                                             \
        return -1;                                                                                 \
    }

EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
    REFUSE_IF_READ_ONLY(fd, real_write)
    return real_write(fd, buf, n);
}

EXPORT ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    REFUSE_IF_READ_ONLY(fd, real_pwrite)
    return real_pwrite(fd, buf, n, off);
}

EXPORT ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
    REFUSE_IF_READ_ONLY(fd, real_pwrite64)
    return real_pwrite64(fd, buf, n, off);
}

EXPORT int ftruncate(int fd, off_t len)
{
    REFUSE_IF_READ_ONLY(fd, real_ftruncate)
    return real_ftruncate(fd, len);
}

EXPORT int ftruncate64(int fd, off64_t len)
{
    REFUSE_IF_READ_ONLY(fd, real_ftruncate64)
    return real_ftruncate64(fd, len);
}

EXPORT int fsync(int fd)
{
    REFUSE_IF_READ_ONLY(fd, real_fsync)
    return real_fsync(fd);
}

EXPORT int fdatasync(int fd)
{
    REFUSE_IF_READ_ONLY(fd, real_fdatasync)
    return real_fdatasync(fd);
}
