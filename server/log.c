/*
 * log.c: one line per event on stderr, written with a single write(2) so that lines from
 * different threads never interleave.
 */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Relaxed: a threshold read on every line; a stale value for a moment is harmless. */
static atomic_int threshold = GS_LOG_INFO;

static const char *const names[] = {"error", "warn", "info", "debug"};

void gs_log_set_level(gs_log_level_t level)
{
    atomic_store_explicit(&threshold, (int)level, memory_order_relaxed);
}

gs_log_level_t gs_log_level(void)
{
    return (gs_log_level_t)atomic_load_explicit(&threshold, memory_order_relaxed);
}

int gs_log_parse_level(const char *s, gs_log_level_t *out)
{
    size_t i;

    for (i = 0; s != NULL && i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (gs_log_level_t)i;
            return 0;
        }
    if (s != NULL && strcmp(s, "warning") == 0) {
        *out = GS_LOG_WARN;
        return 0;
    }
    return -1;
}

const char *gs_log_level_name(gs_log_level_t level)
{
    return (unsigned)level < sizeof(names) / sizeof(names[0]) ? names[level] : "?";
}

static void write_line(gs_log_level_t level, const char *msg)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    size_t n;
    int k;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    k = snprintf(line + n, sizeof(line) - n, ".%03ldZ %-5s %s", ts.tv_nsec / 1000000L,
                 gs_log_level_name(level), msg);
    n = k < 0 ? n : (n + (size_t)k >= sizeof(line) - 1 ? sizeof(line) - 2 : n + (size_t)k);
    /* One event, one line: fold any newline in the message. */
    for (size_t i = 0; i < n; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, n) < 0) {
        /* Nowhere left to report it. */
    }
}

void gs_log(gs_log_level_t level, const char *fmt, ...)
{
    char msg[1800];
    va_list ap;

    if ((int)level > atomic_load_explicit(&threshold, memory_order_relaxed))
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    write_line(level, msg);
}

void gs_log_line_cb(gs_log_level_t level, const char *line, void *arg)
{
    (void)arg;
    if ((int)level > atomic_load_explicit(&threshold, memory_order_relaxed))
        return;
    write_line(level, line);
}
