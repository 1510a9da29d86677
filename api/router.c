/*
 * router.c: which route a method and path select, and which methods a path allows.
 *
 * The table is small and fixed, so matching is a handful of string comparisons: each row is a
 * path (exact, or a prefix with one path segment as a parameter: /servers/NAME, /timers/REF,
 * optionally followed by a fixed suffix: /servers/NAME/held), the methods it answers and the
 * handler that answers them; then the embedded static files. Routes
 * match the raw path, before percent-decoding, so that an encoded '/' in a server name ("a%2Fb")
 * stays inside its segment; the parameter is decoded afterwards. Static files match the decoded
 * path. A path that names nothing is GS_ROUTE_NOT_FOUND (404); a known path with a method it does
 * not allow keeps its route and gets 405 with Allow.
 */
#include "api_internal.h"

#include <stdio.h>
#include <string.h>

typedef struct route_def_s {
    const char *path; /* exact path, or prefix ending in '/' when prefix is set */
    bool prefix;
    bool runtime; /* the handler calls the runtime */
    gs_route_t route;
    unsigned methods;      /* the methods this row answers */
    gs_handler_fn handler; /* who answers them */
    const char *suffix;    /* prefix rows: what follows the parameter ("/held"), or NULL */
} route_def_t;

#define GET_HEAD (GS_METHOD_GET | GS_METHOD_HEAD)

/* One row per path and method set; a path's allowed methods are the union of its rows.
 * {path, prefix, runtime, route, methods, handler, suffix} */
static const route_def_t routes[] = {
    {"/call", false, true, GS_ROUTE_CALL, GS_METHOD_POST, gs__handle_call, NULL},
    {"/cast", false, true, GS_ROUTE_CAST, GS_METHOD_POST, gs__handle_cast, NULL},
    {"/send", false, true, GS_ROUTE_SEND, GS_METHOD_POST, gs__handle_send, NULL},
    {"/send_after", false, true, GS_ROUTE_SEND_AFTER, GS_METHOD_POST, gs__handle_send_after, NULL},
    {"/timers", false, true, GS_ROUTE_TIMERS, GET_HEAD, gs__handle_timers_list, NULL},
    {"/timers/", true, true, GS_ROUTE_TIMER, GET_HEAD, gs__handle_timer_read, NULL},
    {"/timers/", true, true, GS_ROUTE_TIMER, GS_METHOD_DELETE, gs__handle_timer_cancel, NULL},
    {"/servers", false, true, GS_ROUTE_SERVERS, GET_HEAD, gs__handle_servers_list, NULL},
    {"/servers", false, true, GS_ROUTE_SERVERS, GS_METHOD_POST, gs__handle_server_start, NULL},
    {"/servers/", true, true, GS_ROUTE_SERVER, GET_HEAD, gs__handle_server_status, NULL},
    {"/servers/", true, true, GS_ROUTE_SERVER, GS_METHOD_DELETE, gs__handle_server_stop, NULL},
    {"/servers/", true, true, GS_ROUTE_SERVER_SUSPEND, GS_METHOD_POST, gs__handle_server_suspend,
     "/suspend"},
    {"/servers/", true, true, GS_ROUTE_SERVER_RESUME, GS_METHOD_POST, gs__handle_server_resume,
     "/resume"},
    {"/servers/", true, true, GS_ROUTE_SERVER_STATE, GS_METHOD_PUT, gs__handle_server_replace_state,
     "/state"},
    {"/servers/", true, true, GS_ROUTE_SERVER_HELD, GET_HEAD, gs__handle_server_held, "/held"},
    {"/behaviours", false, true, GS_ROUTE_BEHAVIOURS, GET_HEAD, gs__handle_behaviours, NULL},
    {"/behaviours", false, true, GS_ROUTE_BEHAVIOURS, GS_METHOD_POST, gs__handle_behaviour_load,
     NULL},
    {"/behaviours/", true, true, GS_ROUTE_BEHAVIOUR, GET_HEAD, gs__handle_behaviour_show, NULL},
    {"/behaviours/", true, true, GS_ROUTE_BEHAVIOUR, GS_METHOD_PUT, gs__handle_behaviour_upgrade,
     NULL},
    {"/behaviours/", true, true, GS_ROUTE_BEHAVIOUR, GS_METHOD_DELETE, gs__handle_behaviour_delete,
     NULL},
    {"/supervisors", false, true, GS_ROUTE_SUPERVISORS, GET_HEAD, gs__handle_supervisors_list,
     NULL},
    {"/supervisors", false, true, GS_ROUTE_SUPERVISORS, GS_METHOD_POST, gs__handle_supervisor_start,
     NULL},
    {"/supervisors/", true, true, GS_ROUTE_SUPERVISOR, GET_HEAD, gs__handle_supervisor_show, NULL},
    {"/supervisors/", true, true, GS_ROUTE_SUPERVISOR, GS_METHOD_DELETE, gs__handle_supervisor_stop,
     NULL},
    {"/supervisors/", true, true, GS_ROUTE_SUPERVISOR_CHILDREN, GS_METHOD_POST,
     gs__handle_supervisor_start_child, "/children"},
    {"/supervisors/", true, true, GS_ROUTE_SUPERVISOR_TERMINATE_CHILD, GS_METHOD_POST,
     gs__handle_supervisor_terminate_child, "/terminate_child"},
    {"/supervisors/", true, true, GS_ROUTE_SUPERVISOR_RESTART_CHILD, GS_METHOD_POST,
     gs__handle_supervisor_restart_child, "/restart_child"},
    {"/supervisors/", true, true, GS_ROUTE_SUPERVISOR_DELETE_CHILD, GS_METHOD_POST,
     gs__handle_supervisor_delete_child, "/delete_child"},
    {"/events", false, true, GS_ROUTE_EVENTS, GET_HEAD, gs__handle_events, NULL},
    {"/events/history", false, true, GS_ROUTE_EVENTS_HISTORY, GET_HEAD, gs__handle_events_history,
     NULL},
    {"/system", false, true, GS_ROUTE_SYSTEM, GET_HEAD, gs__handle_system, NULL},
    {"/metrics", false, true, GS_ROUTE_METRICS, GET_HEAD, gs__handle_metrics, NULL},
    {"/healthz", false, false, GS_ROUTE_HEALTHZ, GET_HEAD, gs__handle_healthz, NULL},
    {"/livez", false, false, GS_ROUTE_LIVEZ, GET_HEAD, gs__handle_livez, NULL},
    {"/readyz", false, false, GS_ROUTE_READYZ, GET_HEAD, gs__handle_readyz, NULL},
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
    if (strcmp(method, MHD_HTTP_METHOD_PUT) == 0)
        return GS_METHOD_PUT;
    if (strcmp(method, MHD_HTTP_METHOD_OPTIONS) == 0)
        return GS_METHOD_OPTIONS;
    return GS_METHOD_OTHER;
}

/* The param of raw_path under prefix row r: one non-empty segment, still encoded
 * ("/servers/a%2Fb" names the server "a/b"; "/servers/" and "/servers/a/b" name nothing),
 * followed by exactly r->suffix when the row has one. *len: the segment's length. */
static const char *prefix_param(const route_def_t *r, const char *raw_path, size_t *len)
{
    size_t n = strlen(r->path);
    const char *param = raw_path + n, *end;

    if (strncmp(raw_path, r->path, n) != 0 || param[0] == '\0' || param[0] == '/')
        return NULL;
    end = strchr(param, '/');
    if (end == NULL)
        end = param + strlen(param);
    if (r->suffix != NULL ? strcmp(end, r->suffix) != 0 : *end != '\0')
        return NULL;
    *len = (size_t)(end - param);
    return param;
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
        const char *param = NULL;
        size_t len = 0;

        if (r->prefix ? (param = prefix_param(r, raw_path, &len)) == NULL
                      : strcmp(raw_path, r->path) != 0)
            continue;
        /* Rows of one path are adjacent and agree on route and param. */
        m->route = r->route;
        m->param = param;
        m->param_len = len;
        m->allowed |= r->methods;
        if (r->methods & m->method) {
            m->handler = r->handler;
            m->runtime = r->runtime;
        }
    }
    if (m->route != GS_ROUTE_NOT_FOUND)
        return;

    m->asset = url != NULL ? gs__static_find(url) : -1;
    if (m->asset >= 0) {
        m->route = GS_ROUTE_STATIC;
        m->allowed = GET_HEAD;
        if (m->method & GET_HEAD)
            m->handler = gs__handle_static;
    }
}
