/*
 * log.c: the gateway's log lines, through the log callback its options give, and
 * libmicrohttpd's own messages at the level they deserve.
 */
#include "api_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void gs__log(gs_gateway_t *gw, gs_log_level_t level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;

    if (gw->opts.log_cb == NULL || level > gw->opts.log_level)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    gw->opts.log_cb(level, line, gw->opts.log_arg);
}

void gs__mhd_log(void *cls, const char *fmt, va_list ap)
{
    gs_gateway_t *gw = cls;
    gs_log_level_t level;
    char line[1024];
    size_t n;

    if (gw->opts.log_cb == NULL)
        return;
    vsnprintf(line, sizeof(line), fmt, ap);
    n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    /* A client that went away is an ordinary event, not a warning. */
    level = strstr(line, "no longer available") != NULL || strstr(line, "reset by peer") != NULL
                ? GS_LOG_DEBUG
                : GS_LOG_WARN;
    if (level > gw->opts.log_level)
        return;
    gw->opts.log_cb(level, line, gw->opts.log_arg);
}
