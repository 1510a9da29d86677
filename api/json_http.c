/*
 * json_http.c: JSON responses, the error body, the runtime-error-to-status map, and the
 * validation of request bodies.
 *
 * Every error the gateway sends is {"error": CODE, "message": TEXT} (plus "reason" when the
 * runtime gave one), with CODE stable for programs and TEXT for people. Runtime errors use the
 * runtime's own codes (gs_err_name) so that the HTTP contract and the C API say the same.
 */
#include "api_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char fallback_body[] =
    "{\"error\":\"internal_error\",\"message\":\"the response could not be encoded\"}\n";

enum MHD_Result gs__respond(gs_request_t *req, unsigned status, struct MHD_Response *resp)
{
    gs_gateway_t *gw = req->gw;
    enum MHD_Result r;

    if (resp == NULL) {
        /* Out of memory building the response: there is nothing to send, drop the connection. */
        req->answered = true;
        return MHD_NO;
    }
    gs__add_common_headers(req, resp);
    if (req->request_id[0] == '\0') /* answered before the first handler call ended */
        gs__request_id_init(req);
    MHD_add_response_header(resp, "X-Request-Id", req->request_id);
    if (req->close || atomic_load(&gw->closing))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    if (req->close) /* answered before the request was read whole: see linger.c */
        gs__linger_add(gw->linger, req->conn);
    r = MHD_queue_response(req->conn, status, resp);
    MHD_destroy_response(resp);
    req->answered = true;
    req->sent_status = status;
    if (req->match.method == GS_METHOD_HEAD || status == MHD_HTTP_NOT_MODIFIED)
        req->sent_bytes = 0;
    gs__metrics_count(gw->metrics, req->match.route, req->match.method, status,
                      gs__api_now_ns() - req->t_start_ns);
    if (gw->opts.log_level >= GS_LOG_DEBUG)
        gs__log(gw, GS_LOG_DEBUG, "http: %s %s%s%s %u in %.3f ms",
                gs__method_name(req->match.method), gs__route_label(req->match.route),
                req->param ? " " : "", req->param ? req->param : "", status,
                (double)(gs__api_now_ns() - req->t_start_ns) / 1e6);
    return r;
}

/* Bodies up to this size are encoded on the stack and copied once into the response's own
 * buffer; larger ones take one more allocation. */
#define GS_DUMP_STACK 1024

/*
 * Encode prefix + v + suffix + "\n" into one malloc'd buffer of exactly that size (prefix and
 * suffix may be ""), or NULL. v: borrowed; any JSON value. One allocation for the usual small
 * body instead of json_dumps' growing buffer, and no wrapper object to build and free.
 */
static char *encode(const json_t *v, const char *prefix, const char *suffix, size_t *len)
{
    char stack[GS_DUMP_STACK], *heap = NULL, *text, *out = NULL;
    size_t plen = strlen(prefix), slen = strlen(suffix), n;

    n = json_dumpb(v, stack, sizeof(stack), JSON_COMPACT | JSON_ENCODE_ANY);
    if (n == 0)
        return NULL;
    text = stack;
    if (n > sizeof(stack)) {
        heap = malloc(n);
        if (heap == NULL || json_dumpb(v, heap, n, JSON_COMPACT | JSON_ENCODE_ANY) != n)
            goto out;
        text = heap;
    }
    out = malloc(plen + n + slen + 1);
    if (out == NULL)
        goto out;
    memcpy(out, prefix, plen);
    memcpy(out + plen, text, n);
    /* a byte buffer with an explicit length, not a C string */
    memcpy(out + plen + n, suffix, slen); /* NOLINT(bugprone-not-null-terminated-result) */
    out[plen + n + slen] = '\n';
    *len = plen + n + slen + 1;
out:
    free(heap);
    return out;
}

/* A response for prefix + v + suffix, or the fallback error body (*fallback set) when it
 * cannot be encoded. GET and HEAD answers say no-store: the dashboard polls them, and a
 * cached /servers would be a stale one; POST answers are not cached anyway. */
static struct MHD_Response *json_response(gs_request_t *req, const json_t *v, const char *prefix,
                                          const char *suffix, bool *fallback)
{
    struct MHD_Response *resp;
    size_t len = 0;
    char *text = v != NULL ? encode(v, prefix, suffix, &len) : NULL;

    *fallback = text == NULL;
    req->sent_bytes = text != NULL ? len : sizeof(fallback_body) - 1;
    if (text == NULL) {
        resp = MHD_create_response_from_buffer(sizeof(fallback_body) - 1, (void *)fallback_body,
                                               MHD_RESPMEM_PERSISTENT);
    } else {
        resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
        if (resp == NULL)
            free(text);
    }
    if (resp != NULL) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        if (req->match.method & (GS_METHOD_GET | GS_METHOD_HEAD))
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    }
    return resp;
}

enum MHD_Result gs__respond_json(gs_request_t *req, unsigned status, json_t *body)
{
    bool fallback;
    struct MHD_Response *resp = json_response(req, body, "", "", &fallback);

    json_decref(body);
    return gs__respond(req, fallback ? MHD_HTTP_INTERNAL_SERVER_ERROR : status, resp);
}

enum MHD_Result gs__respond_wrapped(gs_request_t *req, unsigned status, const char *key,
                                    json_t *value)
{
    char prefix[64];
    bool fallback;
    struct MHD_Response *resp;

    /* key is one of ours ("reply"): plain ASCII, no escaping needed */
    snprintf(prefix, sizeof(prefix), "{\"%s\":", key);
    resp = json_response(req, value != NULL ? value : json_null(), prefix, "}", &fallback);
    json_decref(value);
    return gs__respond(req, fallback ? MHD_HTTP_INTERNAL_SERVER_ERROR : status, resp);
}

static json_t *error_body(const char *code, const char *message)
{
    json_t *body = json_object();

    if (body == NULL)
        return NULL;
    json_object_set_new(body, "error", json_string(code));
    /* A message may quote client input that is not UTF-8: keep the error readable anyway. */
    json_t *msg = json_string(message);
    if (msg == NULL)
        msg = json_string("(message not valid UTF-8)");
    json_object_set_new(body, "message", msg);
    return body;
}

static enum MHD_Result respond_error_body(gs_request_t *req, unsigned status, json_t *body,
                                          bool retry_after)
{
    bool fallback;
    struct MHD_Response *resp = json_response(req, body, "", "", &fallback);

    json_decref(body);
    if (resp != NULL && retry_after)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    return gs__respond(req, fallback ? MHD_HTTP_INTERNAL_SERVER_ERROR : status, resp);
}

unsigned gs__error_status(int err)
{
    /* One case per row of the tables: rows that share a status are separate on purpose. */
    /* NOLINTBEGIN(bugprone-branch-clone) */
    switch (err) {
#define GS__HTTP_STATUS(sym, status, code)                                                         \
    case GS_HTTP_E##sym:                                                                           \
        return status;
        GS_HTTP_ERROR_MAP(GS__HTTP_STATUS)
#undef GS__HTTP_STATUS
#define GS__RUNTIME_STATUS(sym, status, with_reason, over_http)                                    \
    case GS_##sym:                                                                                 \
        return status;
        GS_HTTP_RUNTIME_ERROR_MAP(GS__RUNTIME_STATUS)
#undef GS__RUNTIME_STATUS
    default:
        return MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
    /* NOLINTEND(bugprone-branch-clone) */
}

const char *gs__error_code(int err)
{
    switch (err) {
#define GS__HTTP_CODE(sym, status, code)                                                           \
    case GS_HTTP_E##sym:                                                                           \
        return code;
        GS_HTTP_ERROR_MAP(GS__HTTP_CODE)
#undef GS__HTTP_CODE
    case GS_EINVAL:
        return gs__error_code(GS_HTTP_EBAD_REQUEST);
    default:
        return gs_err_name(err);
    }
}

static bool error_has_reason(int err)
{
    /* NOLINTBEGIN(bugprone-branch-clone): one case per row of the table */
    switch (err) {
#define GS__RUNTIME_REASON(sym, status, with_reason, over_http)                                    \
    case GS_##sym:                                                                                 \
        return with_reason;
        GS_HTTP_RUNTIME_ERROR_MAP(GS__RUNTIME_REASON)
#undef GS__RUNTIME_REASON
    default:
        return false;
    }
    /* NOLINTEND(bugprone-branch-clone) */
}

enum MHD_Result gs__respond_error(gs_request_t *req, int err, const char *fmt, ...)
{
    char message[512];
    unsigned status = gs__error_status(err);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    return respond_error_body(req, status, error_body(gs__error_code(err), message),
                              status == MHD_HTTP_SERVICE_UNAVAILABLE);
}

enum MHD_Result gs__respond_shutting_down(gs_request_t *req)
{
    return gs__respond_error(req, GS_ESHUTDOWN, "%s", gs_strerror(GS_ESHUTDOWN));
}

enum MHD_Result gs__respond_no_such_server(gs_request_t *req, const char *name)
{
    return gs__respond_error(req, GS_ENOSERVER, "no server is running under the name \"%s\"", name);
}

enum MHD_Result gs__respond_runtime_error(gs_request_t *req, int err, json_t *reason)
{
    const char *subject = req->subject != NULL ? req->subject : req->param;
    unsigned status;
    json_t *body;

    if (err == GS_ENOSERVER && subject != NULL)
        return gs__respond_no_such_server(req, subject);
    status = gs__error_status(err);
    if (err == GS_ESTOPPED && atomic_load(&req->gw->closing)) {
        /* The runtime is stopping every server: to the client that is a shutdown. */
        status = gs__error_status(GS_ESHUTDOWN);
        body = error_body(gs__error_code(GS_ESHUTDOWN), gs_strerror(GS_ESHUTDOWN));
    } else {
        body = error_body(gs__error_code(err), gs_strerror(err));
    }
    if (body != NULL && error_has_reason(err))
        json_object_set(body, "reason", reason != NULL ? reason : json_null());
    return respond_error_body(req, status, body, status == MHD_HTTP_SERVICE_UNAVAILABLE);
}

enum MHD_Result gs__respond_method_not_allowed(gs_request_t *req)
{
    char allow[64];
    bool fallback;
    json_t *body = error_body(gs__error_code(GS_HTTP_EMETHOD_NOT_ALLOWED),
                              "this path does not allow this method");
    struct MHD_Response *resp = json_response(req, body, "", "", &fallback);

    json_decref(body);
    if (resp != NULL)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
                                gs__allow_header(req->match.allowed, allow, sizeof(allow)));
    return gs__respond(req, gs__error_status(GS_HTTP_EMETHOD_NOT_ALLOWED), resp);
}

/* ---------------------------------------------------------------------------------------- */
/* Request bodies                                                                             */
/* ---------------------------------------------------------------------------------------- */

int gs__request_decode(gs_request_t *req, gs_decoded_t *d, enum MHD_Result *ret)
{
    gs_decode_error_t err;
    int rc = gs__decode_body(req->match.route, req->body, req->body_len, &req->gw->limits, d, &err);

    /* The text is not needed once decoded: a held call must not keep its whole body. */
    gs__body_free(req);
    if (rc < 0) {
        gs__decoded_close(d);
        *ret = gs__respond_error(req, GS_HTTP_EBAD_REQUEST, "%s", err.message);
        return -1;
    }
    if (d->server != NULL)
        req->subject = strdup(d->server); /* out of memory: the error just names nobody */
    return 0;
}
