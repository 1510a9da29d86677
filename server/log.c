/*
 * log.c: one line per event on stderr, as text or as a JSON object (log.h), written with a
 * single write(2) so that lines from different threads never interleave. The access log
 * goes the same way to its own descriptor. Lines quote what clients send (server names, paths,
 * reasons), so every control character (a newline, an escape sequence that would drive the
 * operator's terminal) and DEL is written escaped, as \n, \r, \t or \xNN, and a backslash as
 * \\: what the log shows is always one line of printable text. JSON lines are encoded by
 * jansson (which escapes every control character); text that is not valid UTF-8 is written
 * with its controls escaped and every byte above 0x7f as '?'.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Relaxed: a threshold read on every line; a stale value for a moment is harmless. */
static atomic_int threshold = GS_LOG_INFO;

static const char *const names[] = {"error", "warn", "info", "debug"};

/* Set once at start, before other threads log (gs_log_set_format, gs_log_access_open). */
static gs_log_format_t format = GS_LOG_FORMAT_TEXT;
static int access_fd = -1;
static bool access_owned; /* access_fd is a file of ours, not stderr */

void gs_log_set_format(gs_log_format_t f)
{
    format = f;
}

int gs_log_parse_format(const char *s, gs_log_format_t *out)
{
    if (s != NULL && strcmp(s, "text") == 0)
        *out = GS_LOG_FORMAT_TEXT;
    else if (s != NULL && strcmp(s, "json") == 0)
        *out = GS_LOG_FORMAT_JSON;
    else
        return -1;
    return 0;
}

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

/* "2025-01-31T12:00:00.123Z" into buf (at least 32 bytes). */
static size_t timestamp(char *buf, size_t len)
{
    struct timespec ts;
    struct tm tm;
    size_t n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000L);
    return n;
}

static void write_fd(int fd, const char *line, size_t n)
{
    if (write(fd, line, n) < 0) {
        /* Nowhere left to report it. */
    }
}

/* A JSON string of s (borrowed): new reference, or NULL when out of memory. Text that is not
 * valid UTF-8 is escaped first (see the top of the file). */
static json_t *text_json(const char *s)
{
    json_t *v = json_string(s);
    char buf[2048];

    if (v != NULL)
        return v;
    gs_log_escape(s, buf, sizeof(buf));
    for (char *p = buf; *p != '\0'; p++)
        if ((unsigned char)*p > 0x7f)
            *p = '?';
    return json_string(buf);
}

/* obj (taken) with "ts", "level" and "msg" first, as one line on fd. */
static void write_json(int fd, gs_log_level_t level, const char *msg, json_t *fields)
{
    char ts[40];
    json_t *o = json_object();
    char *text;

    timestamp(ts, sizeof(ts));
    if (o == NULL || json_object_set_new(o, "ts", json_string(ts)) < 0 ||
        json_object_set_new(o, "level", json_string(gs_log_level_name(level))) < 0 ||
        json_object_set_new(o, "msg", text_json(msg)) < 0 ||
        (fields != NULL && json_object_update(o, fields) < 0)) {
        json_decref(o);
        json_decref(fields);
        return;
    }
    json_decref(fields);
    text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    json_decref(o);
    if (text == NULL)
        return;
    {
        size_t n = strlen(text);

        text[n] = '\n'; /* json_dumps' NUL becomes the newline: one write */
        write_fd(fd, text, n + 1);
    }
    free(text);
}

static void write_line(gs_log_level_t level, const char *msg)
{
    char line[2048];
    size_t n;

    if (format == GS_LOG_FORMAT_JSON) {
        write_json(STDERR_FILENO, level, msg, NULL);
        return;
    }
    n = timestamp(line, sizeof(line));
    n += (size_t)snprintf(line + n, sizeof(line) - n, " %-5s ", gs_log_level_name(level));
    /* One event, one line of printable text (see the top of the file). */
    n += gs_log_escape(msg, line + n, sizeof(line) - n - 1);
    line[n++] = '\n';
    write_fd(STDERR_FILENO, line, n);
}

int gs_log_access_open(const char *where, char *err, size_t errlen)
{
    if (where == NULL)
        return 0;
    if (strcmp(where, "-") == 0) {
        access_fd = STDERR_FILENO;
        access_owned = false;
        return 0;
    }
    access_fd = open(where, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (access_fd < 0) {
        snprintf(err, errlen, "access log %s: %s", where, strerror(errno));
        return -1;
    }
    access_owned = true;
    return 0;
}

void gs_log_access_close(void)
{
    if (access_owned && access_fd >= 0)
        close(access_fd);
    access_fd = -1;
    access_owned = false;
}

void gs_log_access_cb(const gs_access_entry_t *e, void *arg)
{
    char line[4096], path[2048], ts[40];
    double ms = (double)e->duration_ns / 1e6;
    size_t n;

    (void)arg;
    if (access_fd < 0)
        return;
    if (format == GS_LOG_FORMAT_JSON) {
        json_t *fields = json_pack("{s:o,s:o,s:I,s:f,s:I,s:o,s:o}", "method", text_json(e->method),
                                   "path", text_json(e->path), "status", (json_int_t)e->status,
                                   "duration_ms", ms, "bytes", (json_int_t)e->bytes, "client",
                                   text_json(e->client), "request_id", text_json(e->request_id));

        if (fields != NULL)
            write_json(access_fd, GS_LOG_INFO, "request", fields);
        return;
    }
    /* What the client sent is escaped (see the top of the file); the rest is ours. */
    gs_log_escape(e->path, path, sizeof(path));
    timestamp(ts, sizeof(ts));
    n = (size_t)snprintf(line, sizeof(line), "%s %s \"%s %s\" %u %llu %.3fms %s\n", ts, e->client,
                         e->method, path, e->status, (unsigned long long)e->bytes, ms,
                         e->request_id);
    if (n >= sizeof(line)) {
        n = sizeof(line);
        line[n - 1] = '\n';
    }
    write_fd(access_fd, line, n);
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
