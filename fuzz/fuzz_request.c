/*
 * fuzz_request.c: fuzz what the gateway does with a request before it touches the runtime:
 * routing (router.c), percent-decoding the path parameter, and decoding a POST body into a
 * validated runtime request (decode.c). No libmicrohttpd daemon, no runtime threads.
 *
 * Input format (docs/fuzzing.md): three parts separated by the first two '\n' bytes,
 *   METHOD \n REQUEST-TARGET \n BODY
 * e.g. "POST\n/call\n{\"server\":\"counter\",\"message\":\"get_count\"}". The method and the
 * target end at their '\n' (or at a NUL, as C strings would); the body is every remaining
 * byte, NULs included. A missing part is empty.
 *
 * What runs, in the gateway's order (api/request.c's URI callback, request_route, dispatch,
 * append_body, then the route handler's gs__request_decode):
 *   1. gs__route_raw_path: an absolute-form target ("http://host/p") is cut to its path, and
 *      the path ends at '?' or '#';
 *   2. gs__route_match(method, raw path, url) with url the path as libmicrohttpd decodes it
 *      (MHD_http_unescape, which only matters for static files);
 *   3. gs__percent_decode of the parameter of /servers/NAME and /timers/ID (failure: 404);
 *   4. for a path that takes POST or PUT (or DELETE /servers/NAME, which may say why and how
 *      long to wait) with a body within the default max_body_bytes
 *      (larger ones get 413 before decoding; Content-Length only makes that answer come
 *      earlier, so no header changes what is decoded), gs__decode_body with the gateway's
 *      default limits, gs__decoded_take of the message as the handlers do, and
 *      gs__decoded_close.
 * Every step checks the invariants the handlers rely on and aborts when one breaks.
 */
#include "api_internal.h"
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The largest send_after delay decode.c accepts (docs/API.md, "Limits"). */
#define MAX_DELAY_MS 2147483647LL

/* Abort with a message: libFuzzer then saves the input as a crash. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_request: invariant broken at %s:%d: %s\n", __FILE__, __LINE__,   \
                    #cond);                                                                        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* The gateway's defaults (gs_gateway_options_init), and the decoding limits gs_gateway_create
 * makes of them; set on the first input. */
static gs_gateway_options_t defaults;
static gs_decode_limits_t limits;

/* A NUL-terminated copy of the len bytes at p (borrowed), cut at the first NUL. New memory;
 * tiny inputs only, so running out of memory aborts. */
static char *copy_cstr(const uint8_t *p, size_t len)
{
    char *s = malloc(len + 1);

    CHECK(s != NULL);
    if (len > 0)
        memcpy(s, p, len);
    s[len] = '\0';
    return s;
}

/* The raw path of a request target (borrowed), as the URI callback computes it: new memory. */
static char *raw_path_of(const char *uri)
{
    char *s = gs__route_raw_path(uri);

    CHECK(s != NULL);
    return s;
}

/* An independent percent-decoder to check gs__percent_decode against: the decoded bytes into
 * out (at least strlen(s) + 1 bytes), or -1 on a malformed escape or an encoded NUL. */
static int reference_decode(const char *s, char *out)
{
    static const char hex[] = "0123456789abcdef0123456789ABCDEF";
    size_t n = 0;

    for (size_t i = 0; s[i] != '\0'; i++) {
        if (s[i] != '%') {
            out[n++] = s[i];
            continue;
        }
        const char *h = s[i + 1] != '\0' ? strchr(hex, s[i + 1]) : NULL;
        const char *l = h != NULL && s[i + 2] != '\0' ? strchr(hex, s[i + 2]) : NULL;
        if (h == NULL || l == NULL)
            return -1;
        int v = (int)((h - hex) % 16) * 16 + (int)((l - hex) % 16);
        if (v == 0)
            return -1;
        out[n++] = (char)v;
        i += 2;
    }
    out[n] = '\0';
    return 0;
}

/* How deeply v (borrowed) nests arrays and objects: 0 for a scalar. */
static unsigned json_depth(json_t *v)
{
    unsigned deepest = 0;
    const char *key;
    json_t *child;
    size_t i;

    if (json_is_array(v)) {
        json_array_foreach(v, i, child)
        {
            unsigned d = json_depth(child);
            deepest = d > deepest ? d : deepest;
        }
        return deepest + 1;
    }
    if (json_is_object(v)) {
        json_object_foreach(v, key, child)
        {
            unsigned d = json_depth(child);
            deepest = d > deepest ? d : deepest;
        }
        return deepest + 1;
    }
    return 0;
}

/* A name field as the handlers use it: 1..GS_NAME_MAX bytes without NUL, inside the body. */
static void check_name(const char *name)
{
    CHECK(name != NULL);
    size_t len = strlen(name);
    CHECK(len >= 1 && len <= GS_NAME_MAX);
}

static void check_route(const gs_route_match_t *m, const char *raw_path)
{
    char allow[64];
    unsigned bits =
        GS_METHOD_GET | GS_METHOD_HEAD | GS_METHOD_POST | GS_METHOD_PUT | GS_METHOD_DELETE;

    CHECK(m->route >= GS_ROUTE_NOT_FOUND && m->route < GS_ROUTE_COUNT);
    /* Exactly one method bit. */
    CHECK(m->method != 0 && (m->method & (m->method - 1)) == 0);
    CHECK((m->route == GS_ROUTE_NOT_FOUND) == (m->allowed == 0));
    CHECK((m->allowed & ~bits) == 0);
    CHECK(gs__route_label(m->route) != NULL && gs__method_name(m->method) != NULL);
    CHECK(strlen(gs__allow_header(m->allowed, allow, sizeof(allow))) < sizeof(allow));
    /* A handler exactly for the allowed methods. */
    CHECK((m->handler != NULL) == ((m->allowed & m->method) != 0));

    if (m->route == GS_ROUTE_SERVER || m->route == GS_ROUTE_TIMER ||
        m->route == GS_ROUTE_BEHAVIOUR || m->route == GS_ROUTE_SUPERVISOR) {
        /* One non-empty segment at the end of the raw path, still encoded. */
        CHECK(m->param != NULL);
        CHECK(m->param > raw_path && m->param + strlen(m->param) == raw_path + strlen(raw_path));
        CHECK(m->param[0] != '\0' && strchr(m->param, '/') == NULL);
    } else if (m->route == GS_ROUTE_SERVER_SUSPEND || m->route == GS_ROUTE_SERVER_RESUME ||
               m->route == GS_ROUTE_SERVER_STATE || m->route == GS_ROUTE_SERVER_HELD ||
               m->route == GS_ROUTE_SUPERVISOR_CHILDREN ||
               m->route == GS_ROUTE_SUPERVISOR_TERMINATE_CHILD ||
               m->route == GS_ROUTE_SUPERVISOR_RESTART_CHILD ||
               m->route == GS_ROUTE_SUPERVISOR_DELETE_CHILD) {
        /* One non-empty segment, still encoded, then the row's fixed suffix ("/suspend"). */
        CHECK(m->param != NULL && m->param > raw_path && m->param_len > 0);
        CHECK(memchr(m->param, '/', m->param_len) == NULL && m->param[m->param_len] == '/');
        CHECK(strchr(m->param + m->param_len + 1, '/') == NULL);
    } else {
        CHECK(m->param == NULL);
    }
    if (m->route == GS_ROUTE_STATIC)
        CHECK(m->asset >= 0 && (size_t)m->asset < gs__web_assets_count);
}

/* The parameter as the handlers see it: decoded, or the route is 404. Returns new memory or
 * NULL when the escape is refused. */
static char *decode_param(const char *param)
{
    char *got = strdup(param);
    char *want = malloc(strlen(param) + 1);

    CHECK(got != NULL && want != NULL);
    int rc = gs__percent_decode(got);
    int ref = reference_decode(param, want);
    CHECK(rc == ref);
    if (rc == 0) {
        CHECK(strcmp(got, want) == 0);
        CHECK(strlen(got) <= strlen(param));
        CHECK(got[0] != '\0');
    } else {
        free(got);
        got = NULL;
    }
    free(want);
    return got;
}

static void check_decoded(gs_route_t route, const gs_decoded_t *d)
{
    unsigned max = limits.max_depth;

    CHECK(json_is_object(d->body));
    CHECK(json_depth(d->body) <= max);
    switch (route) {
    case GS_ROUTE_CALL:
    case GS_ROUTE_CAST:
    case GS_ROUTE_SEND:
    case GS_ROUTE_SEND_AFTER:
        check_name(d->server);
        /* The message is the handler's alone: taken out of the body, not shared with it. */
        CHECK(d->message != NULL && json_object_get(d->body, "message") == NULL);
        CHECK(json_depth(d->message) + 1 <= max);
        if (route == GS_ROUTE_CALL)
            CHECK(d->timeout_ms >= 0 && d->timeout_ms <= limits.max_timeout_ms);
        if (route == GS_ROUTE_SEND_AFTER)
            CHECK(d->delay_ms >= 0 && d->delay_ms <= MAX_DELAY_MS);
        break;
    case GS_ROUTE_SERVERS:
        check_name(d->name);
        check_name(d->behaviour);
        CHECK((unsigned)d->start.restart <= GS_TEMPORARY);
        CHECK(d->start.max_restarts <= 1000000);
        CHECK(d->start.max_seconds >= 1 && d->start.max_seconds <= 86400);
        CHECK(d->start.mailbox_limit <= 100000000);
        CHECK(json_object_get(d->body, "args") == NULL);
        CHECK(d->args == NULL || json_depth(d->args) + 1 <= max);
        break;
    case GS_ROUTE_BEHAVIOURS:
    case GS_ROUTE_BEHAVIOUR:
        if (route == GS_ROUTE_BEHAVIOURS)
            check_name(d->name);
        else
            CHECK(d->name == NULL && json_object_get(d->body, "extra") == NULL);
        if (d->vsn != NULL)
            check_name(d->vsn);
        /* The source is the body's string, whole (it may hold NUL bytes). */
        CHECK(d->source != NULL && d->source_len > 0);
        CHECK(d->source == json_string_value(json_object_get(d->body, "source")));
        CHECK(d->source_len == json_string_length(json_object_get(d->body, "source")));
        CHECK(d->limits == NULL || json_is_object(d->limits));
        break;
    case GS_ROUTE_SERVER: /* DELETE /servers/NAME: the stop's reason and timeout */
        CHECK(d->timeout_ms >= 0 && d->timeout_ms <= limits.max_timeout_ms);
        CHECK(json_object_get(d->body, "reason") == NULL);
        CHECK(d->reason == NULL || json_depth(d->reason) + 1 <= max);
        break;
    case GS_ROUTE_SERVER_STATE:
        CHECK(d->state != NULL && json_object_get(d->body, "state") == NULL);
        CHECK(json_depth(d->state) + 1 <= max);
        break;
    case GS_ROUTE_SUPERVISORS:
    case GS_ROUTE_SUPERVISOR_CHILDREN:
    case GS_ROUTE_SUPERVISOR_TERMINATE_CHILD:
    case GS_ROUTE_SUPERVISOR_RESTART_CHILD:
    case GS_ROUTE_SUPERVISOR_DELETE_CHILD:
        /* A spec or {"child": NAME}: the body goes to the runtime whole (gs_supervisor_*),
         * which checks it; nothing is taken out of it here. */
        CHECK(d->message == NULL && d->server == NULL && d->name == NULL && d->state == NULL);
        break;
    default:
        CHECK(!"a route without a body decoded one");
    }
}

static void decode(gs_route_t route, const uint8_t *body, size_t len)
{
    gs_decode_error_t err;
    gs_decoded_t d;

    /* The gateway hands over NULL when no body arrived. */
    int rc = gs__decode_body(route, len > 0 ? (const char *)body : NULL, len, &limits, &d, &err);
    CHECK(rc == 0 || rc == -1);
    CHECK(memchr(err.message, '\0', sizeof(err.message)) != NULL);
    if (rc == 0) {
        CHECK(err.message[0] == '\0');
        check_decoded(route, &d);
        /* What a messaging handler does: the message moves to the runtime, which frees it. */
        json_decref(gs__decoded_take(&d.message));
        CHECK(d.message == NULL);
        gs__decoded_close(&d);
    } else {
        CHECK(err.message[0] != '\0');
        /* The contract: a refused body leaves nothing in d to release. */
        CHECK(d.body == NULL && d.message == NULL && d.args == NULL && d.extra == NULL &&
              d.reason == NULL && d.state == NULL);
    }
    gs__decoded_close(&d); /* harmless on a closed or refused d, as json_http.c relies on */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (limits.max_depth == 0) {
        gs_gateway_options_init(&defaults);
        limits = gs__decode_limits(&defaults);
    }
    const uint8_t *end = data + size;
    const uint8_t *nl1 = size > 0 ? memchr(data, '\n', size) : NULL;
    const uint8_t *target = nl1 != NULL ? nl1 + 1 : end;
    const uint8_t *nl2 = nl1 != NULL ? memchr(target, '\n', (size_t)(end - target)) : NULL;
    const uint8_t *body = nl2 != NULL ? nl2 + 1 : end;
    gs_route_match_t m;

    char *method = copy_cstr(data, (size_t)((nl1 != NULL ? nl1 : end) - data));
    char *uri = copy_cstr(target, (size_t)((nl2 != NULL ? nl2 : end) - target));
    char *raw_path = raw_path_of(uri);
    char *url = strdup(raw_path);
    CHECK(url != NULL);
    MHD_http_unescape(url);

    gs__route_match(method, raw_path, url, &m);
    check_route(&m, raw_path);

    char *param = NULL;
    if (m.param != NULL) {
        param = decode_param(m.param);
        if (param == NULL) {
            /* A malformed escape or an encoded NUL names nothing: 404, as in request_route. */
            m.route = GS_ROUTE_NOT_FOUND;
            m.allowed = 0;
        }
    }

    /* dispatch: 404, then 405, then 413, then the handler decodes its body. */
    size_t body_len = (size_t)(end - body);
    bool takes_body =
        ((m.method & (GS_METHOD_POST | GS_METHOD_PUT)) != 0 && (m.allowed & m.method) != 0) ||
        (m.method == GS_METHOD_DELETE && m.route == GS_ROUTE_SERVER);
    if (takes_body && body_len <= defaults.max_body_bytes)
        decode(m.route, body, body_len);

    free(param);
    free(url);
    free(raw_path);
    free(uri);
    free(method);
    return 0;
}
