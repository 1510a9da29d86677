/*
 * access.c: who may use the API (bearer tokens), and the answer to a CORS preflight (cors.c
 * says which origins are allowed and adds the headers every answer carries).
 *
 * Tokens (both optional, off by default: genserv binds to 127.0.0.1 unless told otherwise):
 *   token       full access. Sent as "Authorization: Bearer TOKEN".
 *   read_token  GET and HEAD only (the dashboard's view, /servers, /metrics, /events...).
 *               A write with it is 403 forbidden; no token or a wrong one is 401.
 * Browsers' EventSource cannot send headers, so GET and HEAD also accept the token as the
 * query parameter access_token (documented; it may end up in proxies' logs, so prefer the
 * header everywhere else). The dashboard's own files and the probes (/healthz, /livez,
 * /readyz) need no token: they hold
 * no data, the page must load to ask for the token, and probes carry none.
 * Comparison is constant-time in the length of the configured token.
 *
 * CORS (off by default): a comma-separated list of origins, or "*". A request whose Origin is
 * allowed gets Access-Control-Allow-Origin (and Vary: Origin); a preflight OPTIONS on a known
 * path gets 204 with the methods the path allows and the headers the API reads.
 */
#include "api_internal.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Equal iff given (len bytes) == expected; the time depends on strlen(expected) only. */
static bool token_equal(const char *given, size_t len, const char *expected)
{
    size_t n = strlen(expected);
    unsigned char diff = len != n;

    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)((i < len ? given[i] : 0) ^ expected[i]);
    return diff == 0;
}

/* The token the request presents: borrowed from MHD's copy of the request, or NULL. */
static const char *presented(const gs_request_t *req, size_t *len)
{
    const char *auth =
        MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    const char *t = NULL;

    if (auth != NULL && strncasecmp(auth, "Bearer ", 7) == 0) {
        t = auth + 7;
        while (*t == ' ')
            t++;
    } else if (req->match.method & (GS_METHOD_GET | GS_METHOD_HEAD)) {
        t = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "access_token");
    }
    if (t != NULL)
        *len = strlen(t);
    return t;
}

static enum MHD_Result refuse(gs_request_t *req, gs_http_error_t err, const char *message)
{
    /* gs__respond_error builds the body; the challenge header tells clients what to send */
    req->challenge = err == GS_HTTP_EUNAUTHORIZED;
    return gs__respond_error(req, err, "%s", message);
}

int gs__access_check(gs_request_t *req, enum MHD_Result *ret)
{
    const gs_gateway_t *gw = req->gw;
    const char *t;
    size_t len = 0;

    if (gw->opts.token == NULL && gw->opts.read_token == NULL)
        return 0;
    if (req->match.route == GS_ROUTE_STATIC || req->match.route == GS_ROUTE_HEALTHZ ||
        req->match.route == GS_ROUTE_LIVEZ || req->match.route == GS_ROUTE_READYZ)
        return 0;
    t = presented(req, &len);
    if (t != NULL && gw->opts.token != NULL && token_equal(t, len, gw->opts.token))
        return 0;
    if (t != NULL && gw->opts.read_token != NULL && token_equal(t, len, gw->opts.read_token)) {
        if (req->match.method & (GS_METHOD_GET | GS_METHOD_HEAD))
            return 0;
        *ret = refuse(req, GS_HTTP_EFORBIDDEN, "the read-only token allows GET and HEAD only");
        return -1;
    }
    *ret = refuse(req, GS_HTTP_EUNAUTHORIZED,
                  t == NULL ? "this endpoint needs \"Authorization: Bearer TOKEN\""
                            : "the token is not valid");
    return -1;
}

bool gs__is_preflight(const gs_request_t *req)
{
    return req->match.method == GS_METHOD_OPTIONS && req->match.allowed != 0 &&
           gs__cors_origin(req) != NULL;
}

enum MHD_Result gs__respond_preflight(gs_request_t *req)
{
    char allow[64];
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);

    if (resp == NULL)
        return MHD_NO;
    MHD_add_response_header(resp, "Access-Control-Allow-Methods",
                            gs__allow_header(req->match.allowed, allow, sizeof(allow)));
    MHD_add_response_header(resp, "Access-Control-Allow-Headers", "Authorization, Content-Type");
    MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
    return gs__respond(req, MHD_HTTP_NO_CONTENT, resp);
}
