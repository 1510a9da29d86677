/*
 * decode.c: a request body in, a validated runtime request (or a 400 with its reason) out.
 *
 * Pure functions: no libmicrohttpd, no runtime, no I/O, so that a fuzzer can drive the whole
 * decoding path (fuzz/fuzz_request.c) and the handlers stay about HTTP and the runtime.
 *
 * API:
 *   gs__decode_body(route, body, len, limits, &d, &err)   0, or -1 with err filled
 *   ... use d (server, message, timeout_ms, ...) ...
 *   gs__decoded_close(&d)                                 releases what d still owns
 *
 * Order of checks: the body is present; it nests no deeper than limits->max_depth (checked on
 * the bytes before jansson parses, so a megabyte of '[' costs one pass and no recursion); it is
 * well-formed JSON without duplicate keys; it is an object; then the route's fields, each with
 * its type and range. Unknown fields are ignored.
 */
#include "api_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The largest send_after delay accepted: about 24.8 days, the range of a signed 32-bit ms. */
#define GS_MAX_DELAY_MS 2147483647LL

static int fail(gs_decode_error_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(gs_decode_error_t *err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return -1;
}

int gs__json_depth_ok(const char *s, size_t len, unsigned max_depth)
{
    unsigned depth = 0;
    bool in_string = false;

    for (size_t i = 0; i < len; i++) {
        char c = s[i];

        if (in_string) {
            if (c == '\\')
                i++; /* whatever is escaped cannot end the string */
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max_depth)
                return 0;
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return 1;
}

/* A server name: a string of 1..GS_NAME_MAX bytes without NUL. Borrowed from obj. */
static const char *field_name(json_t *obj, const char *key, bool required, gs_decode_error_t *err,
                              int *rc)
{
    json_t *v = json_object_get(obj, key);
    size_t len;

    *rc = 0;
    if (v == NULL) {
        if (required)
            *rc = fail(err, "missing field \"%s\"", key);
        return NULL;
    }
    if (!json_is_string(v)) {
        *rc = fail(err, "field \"%s\" must be a string", key);
        return NULL;
    }
    len = json_string_length(v);
    if (len == 0 || len > GS_NAME_MAX || strlen(json_string_value(v)) != len) {
        *rc = fail(err, "field \"%s\" must be 1 to %d bytes without NUL", key, GS_NAME_MAX);
        return NULL;
    }
    return json_string_value(v);
}

/* An integer in [min, max]; *out is left alone when the field is absent and not required. */
static int field_int(json_t *obj, const char *key, bool required, int64_t min, int64_t max,
                     int64_t *out, gs_decode_error_t *err)
{
    json_t *v = json_object_get(obj, key);
    json_int_t n;

    if (v == NULL)
        return required ? fail(err, "missing field \"%s\"", key) : 0;
    if (!json_is_integer(v))
        return fail(err, "field \"%s\" must be an integer", key);
    n = json_integer_value(v);
    if (n < min || n > max)
        return fail(err, "field \"%s\" must be in %lld..%lld", key, (long long)min, (long long)max);
    *out = (int64_t)n;
    return 0;
}

/* Remove key from obj and return its value as a new reference (NULL if absent). The message
 * handed to the runtime must be the runtime's alone: if the body kept a reference, the body's
 * json_decref on this thread and the runtime's on a scheduler thread would race to free it
 * (jansson's decref is a release without an acquire; TSan reports it). */
static json_t *field_take(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);

    if (v != NULL) {
        json_incref(v);
        json_object_del(obj, key);
    }
    return v;
}

static int decode_message(gs_decoded_t *d, gs_decode_error_t *err)
{
    int rc;

    d->server = field_name(d->body, "server", true, err, &rc);
    if (rc < 0)
        return rc;
    d->message = field_take(d->body, "message");
    if (d->message == NULL)
        return fail(err, "missing field \"message\"");
    return 0;
}

static int decode_start(gs_decoded_t *d, gs_decode_error_t *err)
{
    const char *restart;
    json_t *flag;
    int64_t v;
    int rc;

    d->name = field_name(d->body, "name", true, err, &rc);
    if (rc < 0)
        return rc;
    d->behaviour = field_name(d->body, "behaviour", true, err, &rc);
    if (rc < 0)
        return rc;
    gs_start_options_init(&d->start);
    restart = field_name(d->body, "restart", false, err, &rc);
    if (rc < 0)
        return rc;
    if (restart != NULL && gs_restart_parse(restart, &d->start.restart) < 0)
        return fail(err, "field \"restart\" must be \"permanent\", \"transient\" or "
                         "\"temporary\"");
    v = d->start.max_restarts;
    if (field_int(d->body, "max_restarts", false, 0, 1000000, &v, err) < 0)
        return -1;
    d->start.max_restarts = (unsigned)v;
    v = d->start.max_seconds;
    if (field_int(d->body, "max_seconds", false, 1, 86400, &v, err) < 0)
        return -1;
    d->start.max_seconds = (unsigned)v;
    v = (int64_t)d->start.mailbox_limit;
    if (field_int(d->body, "mailbox_limit", false, 0, 100000000, &v, err) < 0)
        return -1;
    d->start.mailbox_limit = (size_t)v;
    flag = json_object_get(d->body, "sensitive");
    if (flag != NULL && !json_is_boolean(flag))
        return fail(err, "field \"sensitive\" must be true or false");
    d->start.sensitive = json_is_true(flag);
    flag = json_object_get(d->body, "durable");
    if (flag != NULL && !json_is_boolean(flag))
        return fail(err, "field \"durable\" must be true or false");
    d->start.durable = json_is_true(flag);
    /* Limits for behaviours that enforce them (Lua's), whose host checks them against its
     * maximums at init: here only the type and a sane range. */
    v = 0;
    if (field_int(d->body, "memory_limit", false, 0, INT64_C(1) << 40, &v, err) < 0)
        return -1;
    d->start.memory_limit = (uint64_t)v;
    v = 0;
    if (field_int(d->body, "instruction_limit", false, 0, INT64_C(1000000000000), &v, err) < 0)
        return -1;
    d->start.instruction_limit = (uint64_t)v;
    d->args = field_take(d->body, "args"); /* absent: JSON null */
    return 0;
}

/* A behaviour's code: POST /behaviours (named in the body) or PUT /behaviours/NAME. */
static int decode_code(gs_decoded_t *d, bool named, gs_decode_error_t *err)
{
    json_t *source = json_object_get(d->body, "source");
    int rc;

    if (named) {
        d->name = field_name(d->body, "name", true, err, &rc);
        if (rc < 0)
            return rc;
    }
    d->vsn = field_name(d->body, "vsn", false, err, &rc);
    if (rc < 0)
        return rc;
    if (source == NULL)
        return fail(err, "missing field \"source\"");
    if (!json_is_string(source) || json_string_length(source) == 0)
        return fail(err, "field \"source\" must be a non-empty string: the behaviour's code");
    d->source = json_string_value(source);
    d->source_len = json_string_length(source);
    d->limits = json_object_get(d->body, "limits");
    if (d->limits != NULL && !json_is_object(d->limits))
        return fail(err, "field \"limits\" must be an object: {\"memory_bytes\": N, "
                         "\"instructions\": N}");
    if (!named)
        d->extra = field_take(d->body, "extra"); /* absent: JSON null */
    return 0;
}

/* The route's fields of the parsed body d->body. */
static int decode_fields(gs_route_t route, const gs_decode_limits_t *lim, gs_decoded_t *d,
                         gs_decode_error_t *err)
{
    if (!json_is_object(d->body))
        return fail(err, "the request body must be a JSON object");

    switch (route) {
    case GS_ROUTE_CALL:
        d->timeout_ms = lim->default_timeout_ms;
        if (decode_message(d, err) < 0)
            return -1;
        return field_int(d->body, "timeout_ms", false, 0, lim->max_timeout_ms, &d->timeout_ms, err);
    case GS_ROUTE_CAST:
    case GS_ROUTE_SEND: {
        if (decode_message(d, err) < 0)
            return -1;
        /* "ack": "accepted" (default: 202 once queued) or "handled" (once handled and, for a
         * durable server, committed). */
        int rc;
        const char *ack = field_name(d->body, "ack", false, err, &rc);
        if (rc < 0)
            return rc;
        if (ack != NULL && strcmp(ack, "accepted") != 0 && strcmp(ack, "handled") != 0)
            return fail(err, "field \"ack\" must be \"accepted\" or \"handled\"");
        d->ack_handled = ack != NULL && strcmp(ack, "handled") == 0;
        return 0;
    }
    case GS_ROUTE_SEND_AFTER: {
        if (decode_message(d, err) < 0)
            return -1;
        if (field_int(d->body, "delay_ms", true, 0, GS_MAX_DELAY_MS, &d->delay_ms, err) < 0)
            return -1;
        d->interval_ms = 0;
        if (field_int(d->body, "interval_ms", false, 1, GS_MAX_DELAY_MS, &d->interval_ms, err) < 0)
            return -1;
        int rc;
        const char *misfire = field_name(d->body, "misfire", false, err, &rc);
        if (rc < 0)
            return rc;
        gs_misfire_t m = GS_MISFIRE_COALESCE;
        if (misfire != NULL && gs_misfire_parse(misfire, &m) != 0)
            return fail(err, "field \"misfire\" must be \"coalesce\", \"all\" or \"skip\"");
        d->misfire = (uint8_t)m;
        return 0;
    }
    case GS_ROUTE_SERVERS:
        return decode_start(d, err);
    case GS_ROUTE_BEHAVIOURS:
        return decode_code(d, true, err);
    case GS_ROUTE_SUPERVISORS:
    case GS_ROUTE_SUPERVISOR_CHILDREN:
    case GS_ROUTE_SUPERVISOR_TERMINATE_CHILD:
    case GS_ROUTE_SUPERVISOR_RESTART_CHILD:
    case GS_ROUTE_SUPERVISOR_DELETE_CHILD:
        return 0; /* a spec or {"child": NAME}: the runtime checks it (gs_supervisor_*) */
    case GS_ROUTE_BEHAVIOUR:
        return decode_code(d, false, err);
    case GS_ROUTE_SERVER: /* DELETE /servers/NAME: {"reason": any, "timeout_ms": N} */
        d->timeout_ms = GS_DEFAULT_TIMEOUT_MS;
        d->reason = field_take(d->body, "reason"); /* absent: NULL, "normal" */
        return field_int(d->body, "timeout_ms", false, 0, lim->max_timeout_ms, &d->timeout_ms, err);
    case GS_ROUTE_SERVER_STATE: /* PUT /servers/NAME/state: {"state": any} */
        d->state = field_take(d->body, "state");
        if (d->state == NULL)
            return fail(err, "missing field \"state\": the new state");
        return 0;
    default:
        return fail(err, "this path takes no request body");
    }
}

int gs__decode_body(gs_route_t route, const char *body, size_t len, const gs_decode_limits_t *lim,
                    gs_decoded_t *d, gs_decode_error_t *err)
{
    json_error_t jerr;

    memset(d, 0, sizeof(*d));
    err->message[0] = '\0';
    if (body == NULL || len == 0)
        return fail(err, "the request body is empty; a JSON object is expected");
    if (!gs__json_depth_ok(body, len, lim->max_depth))
        return fail(err, "the request body nests arrays and objects deeper than %u",
                    lim->max_depth);
    d->body = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (d->body == NULL)
        return fail(err, "malformed JSON at line %d, column %d: %s", jerr.line, jerr.column,
                    jerr.text);
    if (decode_fields(route, lim, d, err) < 0) {
        /* As the header promises, a refused body leaves nothing to release: the parsed body
         * (and a message already taken out of it) would leak in a caller that trusts that.
         * fuzz_request checks it (fuzz/regressions/request/refused_body_keeps_parsed_json). */
        gs__decoded_close(d);
        return -1;
    }
    return 0;
}

void gs__decoded_close(gs_decoded_t *d)
{
    json_decref(d->message);
    json_decref(d->args);
    json_decref(d->extra);
    json_decref(d->reason);
    json_decref(d->state);
    json_decref(d->body);
    memset(d, 0, sizeof(*d));
}
