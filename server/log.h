/*
 * log.h: the binary's log. One line per event on stderr: an RFC 3339 UTC timestamp with
 * milliseconds, the level, and the message, e.g.
 *   2025-01-31T12:00:00.123Z info  runtime: started counter (counter)
 * Lines above the configured level are not formatted at all.
 */
#ifndef GS_SERVER_LOG_H
#define GS_SERVER_LOG_H

#include <genserv/gateway.h>

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
