/*
 * dispatch.c: the life of one HTTP request in libmicrohttpd's callbacks, and the checks every
 * route shares before its handler runs.
 *
 * API (libmicrohttpd's suspend_resume_epoll.c lifecycle):
 *   gs__request_uri_cb        once per request, before the path is percent-decoded: the
 *                             gs_request_t, with the raw path (routing must see "%2F" in a name)
 *   gs__request_access_cb     first call: route (router.c's table names the handler); later
 *                             calls: append body chunks up to max_body_bytes; last call: the
 *                             checks every route shares (404, preflight, 405, 413, 503
 *                             shutting_down, 401/403), then the route's handler, which answers
 *                             or defers (request.c); called again after a deferral's resume
 *   gs__request_completed_cb  free the request
 */
#include "api_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------- */
/* Dispatch: the checks every route shares, then its handler                                  */
/* ---------------------------------------------------------------------------------------- */

static bool route_takes_body(const gs_request_t *req)
{
    unsigned body_methods = GS_METHOD_POST | GS_METHOD_PUT;

    /* DELETE /servers/NAME may say why and how long to wait: {"reason", "timeout_ms"}. */
    if (req->match.method == GS_METHOD_DELETE && req->match.route == GS_ROUTE_SERVER)
        return true;
    return (req->match.method & body_methods) != 0 && (req->match.allowed & req->match.method) != 0;
}

static enum MHD_Result dispatch(gs_request_t *req)
{
    const gs_route_match_t *m = &req->match;
    gs_gateway_t *gw = req->gw;
    enum MHD_Result ret;

    gs__conn_phase(req->conn, GS_CONN_ACTIVE); /* the whole request is in */
    if (m->route == GS_ROUTE_NOT_FOUND)
        return gs__respond_error(req, GS_HTTP_ENOT_FOUND, "no such path");
    if (gs__is_preflight(req))
        return gs__respond_preflight(req);
    if (m->handler == NULL)
        return gs__respond_method_not_allowed(req);
    if (req->too_large) {
        req->close = true; /* the rest of the body is not read: close, lingering */
        return gs__respond_error(req, GS_HTTP_ETOO_LARGE, "the request body exceeds %zu bytes",
                                 gw->opts.max_body_bytes);
    }
    if (req->over_budget) {
        req->close = true;
        return gs__respond_error(req, GS_EOVERLOADED,
                                 "request bodies being received exceed %zu bytes in all; retry "
                                 "later",
                                 gw->opts.max_bodies_bytes);
    }
    if (req->param != NULL && strlen(req->param) > GS_NAME_MAX)
        return gs__respond_error(req, GS_HTTP_EBAD_REQUEST, "a name in a path is 1 to %d bytes",
                                 GS_NAME_MAX);
    if (m->runtime && !gs__runtime_enter(gw))
        return gs__respond_shutting_down(req);
    if (m->runtime && gw->opts.hold_until_ready && !gs__gateway_ready(gw)) {
        gs__runtime_leave(gw);
        return gs__respond_error(req, GS_HTTP_ENOT_READY,
                                 "genserv is starting: what the store kept and the boot servers "
                                 "are still loading (GET /readyz says what is left); retry");
    }
    if (gs__access_check(req, &ret) == 0)
        ret = m->handler(req);
    if (m->runtime)
        gs__runtime_leave(gw);
    return ret;
}

/* ---------------------------------------------------------------------------------------- */
/* libmicrohttpd's callbacks                                                                  */
/* ---------------------------------------------------------------------------------------- */

/*
 * MHD's URI callback runs once per request, before the path is percent-decoded: the request's
 * context is created here so that routing can see the raw path (a server name may hold an
 * encoded '/', "%2F", which must not split the path). Whatever is returned here MHD passes to
 * the access handler as *con_cls and, since it then counts the client as aware, to the
 * completed callback, even if the request fails before the handler runs.
 */
void *gs__request_uri_cb(void *cls, const char *uri, struct MHD_Connection *conn)
{
    gs_gateway_t *gw = cls;
    gs_request_t *req = calloc(1, sizeof(*req));

    if (req == NULL)
        return NULL;
    req->raw_path = gs__route_raw_path(uri);
    req->target = strdup(uri); /* for the access log; bounded by max_header_bytes */
    if (req->raw_path == NULL || req->target == NULL) {
        free(req->raw_path);
        free(req->target);
        free(req);
        return NULL;
    }
    req->gw = gw;
    req->conn = conn;
    req->t_start_ns = gs__api_now_ns();
    gs__kick_activity(gw->kick);
    gs__conn_phase(conn, GS_CONN_RECEIVING);
    /* Relaxed: a gauge read by shutdown, which tolerates a stale value for one poll. */
    atomic_fetch_add_explicit(&gw->active, 1, memory_order_relaxed);
    return req;
}

/* First handler call: route the request (method known now). Returns false when out of memory. */
static bool request_route(gs_request_t *req, const char *method, const char *url)
{
    req->routed = true;
    gs__route_match(method, req->raw_path, url, &req->match);
    if (req->match.param != NULL) {
        req->param = strndup(req->match.param, req->match.param_len);
        if (req->param == NULL)
            return false;
        if (gs__percent_decode(req->param) < 0) {
            /* A malformed escape or an encoded NUL names nothing. */
            memset(&req->match, 0, sizeof(req->match));
            req->match.route = GS_ROUTE_NOT_FOUND;
            free(req->param);
            req->param = NULL;
        }
        req->match.param = req->param;
    }
    return true;
}

/* What the first handler call learns from the request's head. */
typedef struct head_s {
    gs_framing_t framing;
    size_t bytes; /* the request line and the headers, as sent (give or take whitespace) */
    size_t count; /* header lines */
} head_t;

/*
 * What libmicrohttpd 0.9.75 spends of a connection's memory pool per header line beyond its
 * text (its record and alignment: about 60 bytes, measured), and what an answer's own head
 * needs of the pool. A head of many short lines fits max_header_bytes yet leaves no room for
 * the answer: libmicrohttpd then closes without answering ("failed to create response
 * header"). Counting each line's cost refuses such a head while a JSON 431 still fits.
 */
#define GS_HEADER_LINE_COST 64
#define GS_ANSWER_RESERVE   1536

static enum MHD_Result visit_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    head_t *h = cls;

    (void)kind;
    /* "Key: value\r\n" */
    h->bytes += strlen(key) + 2 + (value != NULL ? strlen(value) : 0) + 2;
    h->count++;
    gs__framing_header(&h->framing, key, value);
    return MHD_YES;
}

/* The head's checks, before anything else: 431 past max_header_bytes, 400 for a head that
 * framing.c refuses. Either answer closes the connection. Returns true when answered. */
static bool refuse_head(gs_request_t *req, const char *method, const char *version,
                        enum MHD_Result *ret)
{
    head_t h = {.bytes = strlen(method) + 1 + strlen(req->raw_path) + 1 + strlen(version) + 4};
    const char *why;

    gs__framing_init(&h.framing);
    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, visit_header, &h);
    if (h.bytes > req->gw->opts.max_header_bytes) {
        req->close = true;
        gs__conn_phase(req->conn, GS_CONN_ACTIVE);
        *ret = gs__respond_error(req, GS_HTTP_EHEADERS_TOO_LARGE,
                                 "the request line and headers exceed %zu bytes",
                                 req->gw->opts.max_header_bytes);
        return true;
    }
    if (h.bytes + h.count * GS_HEADER_LINE_COST + GS_ANSWER_RESERVE >
        req->gw->opts.connection_memory) {
        req->close = true;
        gs__conn_phase(req->conn, GS_CONN_ACTIVE);
        *ret = gs__respond_error(req, GS_HTTP_EHEADERS_TOO_LARGE,
                                 "%zu header lines leave no room for the answer in "
                                 "connection_memory (%zu bytes); send fewer",
                                 h.count, req->gw->opts.connection_memory);
        return true;
    }
    why = gs__framing_check(&h.framing, version, req->raw_path);
    if (why == NULL)
        return false;
    req->close = true;
    gs__conn_phase(req->conn, GS_CONN_ACTIVE);
    *ret = gs__respond_error(req, GS_HTTP_EBAD_REQUEST, "%s", why);
    return true;
}

/* A declared Content-Length over the limit is refused before the body is read. */
static bool declared_too_large(gs_request_t *req)
{
    const char *cl =
        MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    char *end = NULL;
    unsigned long long n;

    if (cl == NULL)
        return false;
    errno = 0;
    n = strtoull(cl, &end, 10);
    if (errno != 0 || end == cl)
        return false; /* MHD itself rejects a malformed Content-Length */
    return n > req->gw->opts.max_body_bytes;
}

static enum MHD_Result append_body(gs_request_t *req, const char *data, size_t len)
{
    if (req->too_large || req->over_budget || !route_takes_body(req))
        return MHD_YES; /* discard */
    switch (gs__body_append(req, data, len)) {
    case GS_BODY_TOO_LARGE:
        req->too_large = true;
        break;
    case GS_BODY_OVER_BUDGET:
        req->over_budget = true;
        break;
    case GS_BODY_OK:
        break;
    }
    return MHD_YES;
}

enum MHD_Result gs__request_access_cb(void *cls, struct MHD_Connection *conn, const char *url,
                                      const char *method, const char *version, const char *upload,
                                      size_t *upload_size, void **con_cls)
{
    gs_request_t *req = *con_cls;

    (void)cls;
    (void)conn; /* req->conn, from the URI callback, is the same */
    if (req == NULL)
        return MHD_NO; /* the URI callback ran out of memory: close the connection */
    if (!req->routed) {
        if (!request_route(req, method, url))
            return MHD_NO; /* out of memory: close the connection */
        snprintf(req->method_name, sizeof(req->method_name), "%s", method);
        gs__request_id_init(req);
        enum MHD_Result ret;
        if (refuse_head(req, method, version, &ret))
            return ret;
        if (route_takes_body(req) && declared_too_large(req)) {
            /* Answered before the body: MHD discards the rest and closes the connection. */
            req->too_large = true;
            return dispatch(req);
        }
        return MHD_YES;
    }
    if (req->held) /* resumed by the completion: the outcome is in req */
        return gs__request_resumed(req);
    if (*upload_size != 0) {
        enum MHD_Result r = append_body(req, upload, *upload_size);

        *upload_size = 0;
        return r;
    }
    if (req->answered)
        return MHD_YES;
    return dispatch(req);
}

void gs__request_completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls,
                              enum MHD_RequestTerminationCode toe)
{
    gs_gateway_t *gw = cls;
    gs_request_t *req = *con_cls;

    gs__conn_phase(conn, GS_CONN_IDLE); /* waiting for the next request line */
    if (req == NULL)
        return;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && req->answered)
        gs__log(gw, GS_LOG_DEBUG, "http: connection ended before the answer was sent (%d)",
                (int)toe);
    if (req->answered)
        gs__access_log(req);
    gs__request_abandon(req); /* only held when the daemon stops with suspended connections */
    gs__watch_remove(gw->watch, req); /* the same: a watched request is resumed first */
    gs_call_unref(req->call);
    json_decref(req->result);
    json_decref(req->extra);
    gs__body_free(req);
    free(req->param);
    free(req->subject);
    free(req->raw_path);
    free(req->target);
    free(req);
    *con_cls = NULL;
    atomic_fetch_sub_explicit(&gw->active, 1, memory_order_relaxed);
}
