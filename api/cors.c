/*
 * cors.c: which web pages may call the API (CORS, off by default: a comma-separated list of
 * origins, or "*"), and the headers every answer carries (CORS, the 401 challenge, the
 * dashboard's security headers). A request whose Origin is allowed gets
 * Access-Control-Allow-Origin (and Vary: Origin).
 */
#include "api_internal.h"

#include <string.h>

#define CSP                                                                                        \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "                 \
    "frame-ancestors 'none'"

/* The Origin if CORS allows it (borrowed), else NULL. */
const char *gs__cors_origin(const gs_request_t *req)
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

void gs__add_common_headers(const gs_request_t *req, struct MHD_Response *resp)
{
    const char *origin = gs__cors_origin(req);

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
