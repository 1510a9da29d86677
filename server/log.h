/*
 * log.h: the binary's log. One line per event on stderr: an RFC 3339 UTC timestamp with
 * milliseconds, the level, and the message, e.g.
 *   2025-01-31T12:00:00.123Z info  runtime: started counter (counter)
 * or, with the json format (--log-format json), one JSON object per line:
 *   {"ts":"2025-01-31T12:00:00.123Z","level":"info","msg":"runtime: started counter (counter)"}
 * Lines above the configured level are not formatted at all.
 *
 * The access log (--access-log) is a second sink with one line per answered request, in the
 * same format: "-" is stderr, anything else a file opened for appending.
 */
#ifndef GS_SERVER_LOG_H
#define GS_SERVER_LOG_H

#include <genserv/gateway.h>

/** The shape of every line. */
typedef enum gs_log_format_e { GS_LOG_FORMAT_TEXT = 0, GS_LOG_FORMAT_JSON } gs_log_format_t;

/** Set the format of every line from now on. Call before other threads log. */
void gs_log_set_format(gs_log_format_t format);
/** "text" or "json" -> 0 and *out; anything else -> -1. s: borrowed. */
int gs_log_parse_format(const char *s, gs_log_format_t *out);

/**
 * Open the access log: where is "-" (stderr) or a path (borrowed), opened for appending and
 * created 0640 if missing. 0, or -1 with err filled (errlen bytes). Call before the gateway
 * starts; gs_log_access_close after it stopped.
 */
int gs_log_access_open(const char *where, char *err, size_t errlen);
/** Close the access log's file, if one was opened. */
void gs_log_access_close(void);
/** A gs_access_log_cb for the gateway: one line for entry (borrowed) in the log format; arg
 *  unused. Any thread. */
void gs_log_access_cb(const gs_access_entry_t *entry, void *arg);

/** Set the threshold: lines with a level above it are dropped. Any thread. */
void gs_log_set_level(gs_log_level_t level);
/** The current threshold. */
gs_log_level_t gs_log_level(void);
/** "error", "warn", "info", "debug" -> 0 and *out; anything else -> -1. s: borrowed. */
int gs_log_parse_level(const char *s, gs_log_level_t *out);
/** The name of a level. Static storage. */
const char *gs_log_level_name(gs_log_level_t level);
/** Write one line (fmt borrowed; no trailing newline needed). Any thread. */
void gs_log(gs_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** A gs_log_cb for the gateway: writes line (borrowed) at level; arg unused. */
void gs_log_line_cb(gs_log_level_t level, const char *line, void *arg);

/**
 * Copy msg (borrowed) into out (len bytes, NUL-terminated) with every control character and
 * DEL escaped (\n, \r, \t, \xNN) and a backslash doubled; cut at a whole character if out is
 * too short. Returns the length written.
 */
size_t gs_log_escape(const char *msg, char *out, size_t len);

#endif
