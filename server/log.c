/*
 * log.c: one line per event on stderr, written with a single write(2) so that lines from
 * different threads never interleave. Lines quote what clients send (server names, paths,
 * reasons), so every control character (a newline, an escape sequence that would drive the
 * operator's terminal) and DEL is written escaped, as \n, \r, \t or \xNN, and a backslash as
 * \\: what the log shows is always one line of printable text.
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

size_t gs_log_escape(const char *msg, char *out, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    for (const unsigned char *p = (const unsigned char *)msg; *p != '\0'; p++) {
        char esc[5];
        size_t k = 0;
        if (*p == '\\') {
            esc[k++] = '\\';
            esc[k++] = '\\';
        } else if (*p == '\n' || *p == '\r' || *p == '\t') {
            esc[k++] = '\\';
            esc[k++] = (char)(*p == '\n' ? 'n' : *p == '\r' ? 'r' : 't');
        } else if (*p < 0x20 || *p == 0x7f) {
            esc[k++] = '\\';
            esc[k++] = 'x';
            esc[k++] = hex[*p >> 4];
            esc[k++] = hex[*p & 15];
        } else {
            esc[k++] = (char)*p;
        }
        if (o + k >= len)
            break; /* cut at a whole character, never inside an escape */
        memcpy(out + o, esc, k);
        o += k;
    }
    if (len > 0)
        out[o] = '\0';
    return o;
}

static void write_line(gs_log_level_t level, const char *msg)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    size_t n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ %-5s ", ts.tv_nsec / 1000000L,
                          gs_log_level_name(level));
    /* One event, one line of printable text (see the top of the file). */
    n += gs_log_escape(msg, line + n, sizeof(line) - n - 1);
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
