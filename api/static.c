/*
 * static.c: the dashboard's files, embedded in the binary at build time.
 *
 * api/embed_web.cmake turns every file under web/ into a byte array in the generated
 * web_assets.c (gs__web_assets). Here they are looked up by path ("/" and "/dir/" mean their
 * index.html), given a Content-Type by extension and an ETag from their content, and served
 * revalidated on every load; access.c adds the security headers (CSP, no framing, no sniffing).
 */
#include "api_internal.h"

#include <stdio.h>
#include <string.h>

int gs__static_find(const char *url)
{
    char path[1024];
    size_t n = strlen(url), i;

    if (n == 0 || url[0] != '/' || n + sizeof("index.html") >= sizeof(path))
        return -1;
    memcpy(path, url, n + 1);
    if (path[n - 1] == '/')
        memcpy(path + n, "index.html", sizeof("index.html"));
    for (i = 0; i < gs__web_assets_count; i++)
        if (strcmp(gs__web_assets[i].path, path) == 0)
            return (int)i;
    return -1;
}

const char *gs__content_type(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".txt", "text/plain; charset=utf-8"},
        {".map", "application/json"},
        {".woff2", "font/woff2"},
        {".webmanifest", "application/manifest+json"},
    };
    const char *dot = strrchr(path, '.');
    size_t i;

    if (dot != NULL && strchr(dot, '/') == NULL)
        for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
            if (strcmp(dot, types[i].ext) == 0)
                return types[i].type;
    return "application/octet-stream";
}

static void asset_etag(const gs_web_asset_t *a, char *buf, size_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a: cheap, and the files are small */
    size_t i;

    for (i = 0; i < a->size; i++)
        h = (h ^ a->data[i]) * 1099511628211ull;
    snprintf(buf, len, "\"%016llx\"", (unsigned long long)h);
}

enum MHD_Result gs__handle_static(gs_request_t *req)
{
    const gs_web_asset_t *a;
    struct MHD_Response *resp;
    const char *inm;
    char etag[24];
    unsigned status = MHD_HTTP_OK;

    if (req->match.asset < 0 || (size_t)req->match.asset >= gs__web_assets_count)
        return gs__respond_error(req, GS_HTTP_ENOT_FOUND, "no such path");
    a = &gs__web_assets[req->match.asset];
    asset_etag(a, etag, sizeof(etag));
    inm = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
    if (inm != NULL && strstr(inm, etag) != NULL) {
        status = MHD_HTTP_NOT_MODIFIED;
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    } else {
        resp = MHD_create_response_from_buffer(a->size, (void *)a->data, MHD_RESPMEM_PERSISTENT);
    }
    if (resp == NULL)
        return MHD_NO;
    req->sent_bytes = status == MHD_HTTP_OK ? a->size : 0;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, gs__content_type(a->path));
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    return gs__respond(req, status, resp);
}
