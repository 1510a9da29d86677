/*
 * access.c: who may use the API (bearer tokens), which web pages may call it (CORS), and the
 * headers every answer carries.
 *
 * Tokens (both optional, off by default: genserv binds to 127.0.0.1 unless told otherwise):
 *   token       full access. Sent as "Authorization: Bearer TOKEN".
 *   read_token  GET and HEAD only (the dashboard's view, /servers, /metrics, /events...).
 *               A write with it is 403 forbidden; no token or a wrong one is 401.
 * Browsers' EventSource cannot send headers, so GET and HEAD also accept the token as the
 * query parameter access_token (documented; it may end up in proxies' logs, so prefer the
 * header everywhere else). The dashboard's own files and /healthz need no token: they hold
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

#define CSP                                                                                        \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "                 \
    "frame-ancestors 'none'"

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

static enum MHD_Result refuse(gs_request_t *req, unsigned status, const char *code,
                              const char *message)
{
    /* gs__respond_error builds the body; the challenge header tells clients what to send */
    req->challenge = status == MHD_HTTP_UNAUTHORIZED;
    return gs__respond_error(req, status, code, "%s", message);
}

int gs__access_check(gs_request_t *req, enum MHD_Result *ret)
{
    const gs_gateway_t *gw = req->gw;
    const char *t;
    size_t len = 0;

    if (gw->opts.token == NULL && gw->opts.read_token == NULL)
        return 0;
    if (req->match.route == GS_ROUTE_STATIC || req->match.route == GS_ROUTE_HEALTHZ)
        return 0;
    t = presented(req, &len);
    if (t != NULL && gw->opts.token != NULL && token_equal(t, len, gw->opts.token))
        return 0;
    if (t != NULL && gw->opts.read_token != NULL && token_equal(t, len, gw->opts.read_token)) {
        if (req->match.method & (GS_METHOD_GET | GS_METHOD_HEAD))
            return 0;
        *ret = refuse(req, MHD_HTTP_FORBIDDEN, "forbidden",
                      "the read-only token allows GET and HEAD only");
        return -1;
    }
    *ret = refuse(req, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                  t == NULL ? "this endpoint needs \"Authorization: Bearer TOKEN\""
                            : "the token is not valid");
    return -1;
}

/* The Origin if CORS allows it (borrowed), else NULL. */
static const char *allowed_origin(const gs_request_t *req)
{
    const char *list = req->gw->opts.cors_origins, *origin, *p;
    size_t n;

    if (list == NULL || req->conn == NULL)
        return NULL;
    origin = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Origin");
    if (origin == NULL)
        return NULL;
    if (strcmp(list, "*") == 0)
        return origin;
    n = strlen(origin);
    for (p = list; *p != '\0';) {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);

        while (len > 0 && *p == ' ') {
            p++;
            len--;
        }
        while (len > 0 && p[len - 1] == ' ')
            len--;
        if (len == n && strncmp(p, origin, n) == 0)
            return origin;
        if (end == NULL)
            break;
        p = end + 1;
    }
    return NULL;
}

bool gs__is_preflight(const gs_request_t *req)
{
    return req->match.method == GS_METHOD_OPTIONS && req->match.allowed != 0 &&
           allowed_origin(req) != NULL;
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

void gs__add_common_headers(const gs_request_t *req, struct MHD_Response *resp)
{
    const char *origin = allowed_origin(req);

    if (origin != NULL) {
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", origin);
        MHD_add_response_header(resp, "Vary", "Origin");
    }
    if (req->challenge)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"genserv\"");
    if (req->match.route == GS_ROUTE_STATIC) {
        /* The dashboard: no inline script or style, no framing, no sniffing. */
        MHD_add_response_header(resp, "Content-Security-Policy", CSP);
        MHD_add_response_header(resp, "X-Frame-Options", "DENY");
        MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
        MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    }
    /* JSON answers say what they are (Content-Type: application/json), so browsers never
     * render them; three more headers per /call would be three more allocations. */
}
