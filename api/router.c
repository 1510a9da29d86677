/*
 * router.c: which route a method and path select, and which methods a path allows.
 *
 * The table is small and fixed, so matching is a handful of string comparisons: exact paths
 * first, then the two prefixes with one path segment as a parameter (/servers/NAME,
 * /timers/ID), then the embedded static files. Routes match the raw path, before
 * percent-decoding, so that an encoded '/' in a server name ("a%2Fb") stays inside its segment;
 * the parameter is decoded afterwards. Static files match the decoded path. A path that names
 * nothing is GS_ROUTE_NOT_FOUND (404); a known path with a method it does not allow keeps its
 * route and gets 405 with Allow.
 */
#include "api_internal.h"

#include <stdio.h>
#include <string.h>

typedef struct route_def_s {
    const char *path; /* exact path, or prefix ending in '/' when prefix is set */
    bool prefix;
    gs_route_t route;
    unsigned allowed;
    const char *label;
} route_def_t;

#define GET_HEAD (GS_METHOD_GET | GS_METHOD_HEAD)

static const route_def_t routes[] = {
    {"/call", false, GS_ROUTE_CALL, GS_METHOD_POST, "/call"},
    {"/cast", false, GS_ROUTE_CAST, GS_METHOD_POST, "/cast"},
    {"/send", false, GS_ROUTE_SEND, GS_METHOD_POST, "/send"},
    {"/send_after", false, GS_ROUTE_SEND_AFTER, GS_METHOD_POST, "/send_after"},
    {"/timers/", true, GS_ROUTE_TIMER, GET_HEAD | GS_METHOD_DELETE, "/timers/:id"},
    {"/servers", false, GS_ROUTE_SERVERS, GET_HEAD | GS_METHOD_POST, "/servers"},
    {"/servers/", true, GS_ROUTE_SERVER, GET_HEAD | GS_METHOD_DELETE, "/servers/:name"},
    {"/behaviours", false, GS_ROUTE_BEHAVIOURS, GET_HEAD, "/behaviours"},
    {"/events", false, GS_ROUTE_EVENTS, GET_HEAD, "/events"},
    {"/metrics", false, GS_ROUTE_METRICS, GET_HEAD, "/metrics"},
    {"/healthz", false, GS_ROUTE_HEALTHZ, GET_HEAD, "/healthz"},
};

static unsigned method_bit(const char *method)
{
    if (strcmp(method, MHD_HTTP_METHOD_GET) == 0)
        return GS_METHOD_GET;
    if (strcmp(method, MHD_HTTP_METHOD_POST) == 0)
        return GS_METHOD_POST;
    if (strcmp(method, MHD_HTTP_METHOD_HEAD) == 0)
        return GS_METHOD_HEAD;
    if (strcmp(method, MHD_HTTP_METHOD_DELETE) == 0)
        return GS_METHOD_DELETE;
    if (strcmp(method, MHD_HTTP_METHOD_OPTIONS) == 0)
        return GS_METHOD_OPTIONS;
    return GS_METHOD_OTHER;
}

void gs__route_match(const char *method, const char *raw_path, const char *url, gs_route_match_t *m)
{
    size_t i;

    memset(m, 0, sizeof(*m));
    m->route = GS_ROUTE_NOT_FOUND;
    m->method = method_bit(method != NULL ? method : "");
    m->asset = -1;
    if (raw_path == NULL)
        return;

    for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        const route_def_t *r = &routes[i];

        if (!r->prefix) {
            if (strcmp(raw_path, r->path) == 0) {
                m->route = r->route;
                m->allowed = r->allowed;
                return;
            }
            continue;
        }
        size_t n = strlen(r->path);
        if (strncmp(raw_path, r->path, n) == 0) {
            const char *param = raw_path + n;

            /* One non-empty segment, still encoded: "/servers/a%2Fb" names the server "a/b",
             * while "/servers/" and "/servers/a/b" name nothing. */
            if (param[0] == '\0' || strchr(param, '/') != NULL)
                return;
            m->route = r->route;
            m->allowed = r->allowed;
            m->param = param;
            return;
        }
    }

    m->asset = url != NULL ? gs__static_find(url) : -1;
    if (m->asset >= 0) {
        m->route = GS_ROUTE_STATIC;
        m->allowed = GET_HEAD;
    }
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int gs__percent_decode(char *s)
{
    char *out = s;

    for (; *s; s++) {
        if (*s != '%') {
            *out++ = *s;
            continue;
        }
        int hi = hex_digit(s[1]), lo = hi >= 0 ? hex_digit(s[2]) : -1;
        if (lo < 0 || (hi == 0 && lo == 0))
            return -1;
        *out++ = (char)(hi * 16 + lo);
        s += 2;
    }
    *out = '\0';
    return 0;
}

const char *gs__route_label(gs_route_t r)
{
    size_t i;

    for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        if (routes[i].route == r)
            return routes[i].label;
    if (r == GS_ROUTE_STATIC)
        return "static";
    return "not_found";
}

const char *gs__method_name(unsigned method)
{
    switch (method) {
    case GS_METHOD_GET:
        return "GET";
    case GS_METHOD_HEAD:
        return "HEAD";
    case GS_METHOD_POST:
        return "POST";
    case GS_METHOD_DELETE:
        return "DELETE";
    default:
        return "other";
    }
}

const char *gs__allow_header(unsigned allowed, char *buf, size_t len)
{
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {{GS_METHOD_GET, "GET"},
                 {GS_METHOD_HEAD, "HEAD"},
                 {GS_METHOD_POST, "POST"},
                 {GS_METHOD_DELETE, "DELETE"}};
    size_t i, used = 0;

    buf[0] = '\0';
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if ((allowed & names[i].bit) == 0)
            continue;
        int n = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", names[i].name);
        if (n < 0 || (size_t)n >= len - used)
            break;
        used += (size_t)n;
    }
    return buf;
}
