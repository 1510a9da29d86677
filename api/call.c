/*
 * call.c: the messaging endpoints. POST /call holds the connection until the server answers
 * (gs_call_async); POST /cast, /send and /send_after answer as soon as the runtime accepted
 * the message; GET /timers lists the timers made over HTTP, and GET and DELETE /timers/REF read
 * and cancel one of them (timer_ref.c makes the references unforgeable).
 *
 * API (POST /call):
 *   gs__request_decode (decode.c)                  400 on anything wrong
 *   gs__request_defer(req, GS_HOLD_CALL, ...)      503 overloaded past max_held_calls, else
 *     start_call: gs_call_async_opts(..., gs__request_on_reply, req): the caller is "http"
 *     with the client's address, and the call's reference lets watch.c abandon the call if
 *     the client hangs up while it is held
 *   ... the runtime replies (often at once, on this thread), times out or fails the call;
 *   finish_call answers 200 {"reply"} or the mapped error, now or after a resume.
 */
#include "api_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static enum MHD_Result finish_call(gs_request_t *req)
{
    json_t *result = req->result;

    gs__metrics_observe_call(req->gw->metrics, gs__api_now_ns() - req->t_start_ns);
    if (req->status == 0) {
        req->result = NULL;
        return gs__respond_wrapped(req, MHD_HTTP_OK, "reply", result);
    }
    return gs__respond_runtime_error(req, req->status, result);
}

/* The Idempotency-Key header (docs/durability.md): NULL when absent; -1 (answered 400) when
 * it is not 1 to 255 printable ASCII characters. */
static int idempotency_key(gs_request_t *req, const char **key, enum MHD_Result *ret)
{
    const char *k = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Idempotency-Key");
    *key = NULL;
    if (k == NULL)
        return 0;
    size_t n = strlen(k);
    bool ok = n >= 1 && n <= 255;
    for (size_t i = 0; ok && i < n; i++)
        ok = k[i] >= 0x21 && k[i] <= 0x7e;
    if (!ok) {
        *ret = gs__respond_error(req, GS_HTTP_EBAD_REQUEST,
                                 "Idempotency-Key must be 1 to 255 printable ASCII characters");
        return -1;
    }
    *key = k;
    return 0;
}

typedef struct call_ctx_s {
    gs_decoded_t *d;
    const char *key;
} call_ctx_t;

static int start_call(gs_request_t *req, void *ctx)
{
    const call_ctx_t *cc = ctx;
    gs_decoded_t *d = cc->d;
    gs_call_options_t opts = {.timeout_ms = (int)d->timeout_ms,
                              .caller_kind = "http",
                              .caller = gs__conn_peer(req->conn),
                              .idempotency_key = cc->key};

    /* The call's reference only when a watcher can use it (two uncontended atomics). */
    return gs_call_async_opts(req->gw->rt, d->server, gs__decoded_take(&d->message), &opts,
                              gs__request_on_reply, req,
                              req->gw->watch != NULL ? &req->call : NULL);
}

enum MHD_Result gs__handle_call(gs_request_t *req)
{
    enum MHD_Result ret = MHD_YES;
    gs_decoded_t d;

    call_ctx_t cc = {&d, NULL};
    if (idempotency_key(req, &cc.key, &ret) < 0)
        return ret;
    if (gs__request_decode(req, &d, &ret) < 0)
        return ret;
    ret = gs__request_defer(req, GS_HOLD_CALL, finish_call, start_call, &cc);
    gs__decoded_close(&d);
    return ret;
}

/* POST /cast and /send share their shape: {"server", "message", "ack"} -> 202 {"ok": true}. */
typedef int (*deliver_fn)(gs_runtime_t *, const char *, json_t *, const gs_send_options_t *);

typedef struct deliver_ctx_s {
    deliver_fn deliver;
    gs_decoded_t *d;
    const char *key;
} deliver_ctx_t;

static enum MHD_Result finish_handled(gs_request_t *req)
{
    if (req->status < 0)
        return gs__respond_runtime_error(req, req->status, NULL);
    return gs__respond_json(req, MHD_HTTP_ACCEPTED,
                            json_pack("{s:b, s:s}", "ok", 1, "ack", "handled"));
}

static int start_deliver(gs_request_t *req, void *ctx)
{
    deliver_ctx_t *c = ctx;
    gs_send_options_t opts = {
        .handled = gs__request_on_done, .handled_arg = req, .idempotency_key = c->key};
    return c->deliver(req->gw->rt, c->d->server, gs__decoded_take(&c->d->message), &opts);
}

static enum MHD_Result handle_deliver(gs_request_t *req, deliver_fn deliver)
{
    enum MHD_Result ret = MHD_YES;
    deliver_ctx_t c = {deliver, NULL, NULL};
    gs_decoded_t d;
    int rc;

    if (idempotency_key(req, &c.key, &ret) < 0)
        return ret;
    if (gs__request_decode(req, &d, &ret) < 0)
        return ret;
    c.d = &d;
    if (d.ack_handled) {
        /* Held until the server handled it (and, when durable, committed what it changed). */
        ret = gs__request_defer(req, GS_HOLD_CALL, finish_handled, start_deliver, &c);
        gs__decoded_close(&d);
        return ret;
    }
    gs_send_options_t opts = {.idempotency_key = c.key};
    rc = deliver(req->gw->rt, d.server, gs__decoded_take(&d.message), c.key != NULL ? &opts : NULL);
    if (rc < 0)
        ret = gs__respond_runtime_error(req, rc, NULL);
    else
        ret = gs__respond_json(req, MHD_HTTP_ACCEPTED, json_pack("{s:b}", "ok", 1));
    gs__decoded_close(&d);
    return ret;
}

enum MHD_Result gs__handle_cast(gs_request_t *req)
{
    return handle_deliver(req, gs_cast_opts);
}

enum MHD_Result gs__handle_send(gs_request_t *req)
{
    return handle_deliver(req, gs_send_opts);
}

static enum MHD_Result finish_send_after(gs_request_t *req)
{
    gs_gateway_t *gw = req->gw;
    char token[GS_TIMER_REF_LEN + 1];
    gs_timer_ref_t ref = (gs_timer_ref_t)json_integer_value(json_object_get(req->extra, "ref"));
    bool bound = json_is_true(json_object_get(req->extra, "bound"));

    if (req->status == GS_EOVERLOADED && bound)
        return gs__respond_error(
            req, req->status,
            "pending timers are past a bound (--max-timers, --max-timer-bytes, "
            "--max-timers-per-server or --max-timer-bytes-per-server); retry "
            "later");
    if (req->status < 0)
        return gs__respond_runtime_error(req, req->status, NULL);
    gs__timer_ref_format(&gw->timer_key, ref, token);
    return gs__respond_json(req, MHD_HTTP_ACCEPTED, json_pack("{s:s}", "timer", token));
}

static int start_send_after(gs_request_t *req, void *ctx)
{
    gs_decoded_t *d = ctx;
    /* An external timer respects the target's mailbox limit and is the only kind the
     * references below can reach; to a durable server its row commits before the 202. */
    gs_timer_options_t opts = {.external = true,
                               .interval_ms = (uint64_t)d->interval_ms,
                               .misfire = d->misfire,
                               .committed = gs__request_on_done,
                               .committed_arg = req};
    gs_timer_ref_t ref = 0;
    int rc = gs_send_after_opts(req->gw->rt, d->server, gs__decoded_take(&d->message),
                                (uint64_t)d->delay_ms, &opts, &ref);
    /* For finish_send_after (req->result is the completion's): the ref, and whether an
     * overload is past a timer bound rather than a full mailbox. */
    req->extra = json_pack("{s:I, s:b}", "ref", (json_int_t)ref, "bound",
                           rc == GS_EOVERLOADED && d->delay_ms > 0);
    return rc;
}

enum MHD_Result gs__handle_send_after(gs_request_t *req)
{
    enum MHD_Result ret = MHD_YES;
    gs_decoded_t d;

    if (gs__request_decode(req, &d, &ret) < 0)
        return ret;
    /* The name is resolved again when the timer fires (Process.send_after/3 with a name); it
     * must exist now, so that a typo is a 404 rather than a silently dropped timer. */
    ret = gs__request_defer(req, GS_HOLD_CONTROL, finish_send_after, start_send_after, &d);
    gs__decoded_close(&d);
    return ret;
}

/* GET and DELETE /timers/REF share their shape: {"remaining_ms"} or 404 no_such_timer, which
 * is also the answer to anything that is not a reference this gateway made. */
static enum MHD_Result handle_timer(gs_request_t *req,
                                    int (*op)(gs_runtime_t *, gs_timer_ref_t, int64_t *))
{
    gs_timer_ref_t ref;
    int64_t remaining = 0;
    int rc = GS_ENOTIMER;

    if (gs__timer_ref_parse(&req->gw->timer_key, req->param, &ref) == 0)
        rc = op(req->gw->rt, ref, &remaining);
    if (rc == GS_ENOTIMER)
        return gs__respond_error(req, rc,
                                 "no pending timer made over HTTP has this reference (it fired, "
                                 "was cancelled, or never existed)");
    if (rc < 0)
        return gs__respond_runtime_error(req, rc, NULL);
    return gs__respond_json(req, MHD_HTTP_OK,
                            json_pack("{s:I}", "remaining_ms", (json_int_t)remaining));
}

enum MHD_Result gs__handle_timer_read(gs_request_t *req)
{
    return handle_timer(req, gs_read_external_timer);
}

enum MHD_Result gs__handle_timer_cancel(gs_request_t *req)
{
    return handle_timer(req, gs_cancel_external_timer);
}

/* GET /timers[?limit=N][&all=true]: the timers made over HTTP (all: every pending timer),
 * soonest first. */
enum MHD_Result gs__handle_timers_list(gs_request_t *req)
{
    gs_gateway_t *gw = req->gw;
    const char *limit_arg = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "limit");
    unsigned long long limit = GS_TIMERS_LIST_DEFAULT;
    char token[GS_TIMER_REF_LEN + 1], *end = NULL;
    json_t *all, *timers, *t;
    size_t i;

    if (limit_arg != NULL) {
        errno = 0;
        limit = strtoull(limit_arg, &end, 10);
        if (errno != 0 || end == limit_arg || *end != '\0' || limit < 1 ||
            limit > GS_TIMERS_LIST_MAX)
            return gs__respond_error(req, GS_HTTP_EBAD_REQUEST, "limit must be in 1..%u",
                                     GS_TIMERS_LIST_MAX);
    }
    /* ?all=true: every pending timer, the servers' own included (the dashboard's view, as
     * observer's); without it only the timers made over HTTP, as before. */
    const char *all_arg = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "all");
    bool every = all_arg != NULL && strcmp(all_arg, "true") == 0;
    if (all_arg != NULL && !every && strcmp(all_arg, "false") != 0)
        return gs__respond_error(req, GS_HTTP_EBAD_REQUEST, "all must be true or false");
    all = gs_timers_json(gw->rt, (size_t)limit, !every);
    if (all == NULL)
        return gs__respond_runtime_error(req, GS_ENOMEM, NULL);
    timers = json_object_get(all, "timers");
    json_array_foreach(timers, i, t)
    {
        /* The runtime's ref becomes the client's reference; its Unix time an ISO 8601 one. */
        json_int_t ref = json_integer_value(json_object_get(t, "ref"));
        json_int_t at = json_integer_value(json_object_get(t, "created_at_ms"));
        time_t secs = (time_t)(at / 1000);
        struct tm tm;
        char iso[64];

        gs__timer_ref_format(&gw->timer_key, (gs_timer_ref_t)ref, token);
        gmtime_r(&secs, &tm);
        snprintf(iso, sizeof(iso), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(at % 1000));
        json_object_del(t, "ref");
        json_object_del(t, "created_at_ms");
        json_object_del(t, "external");
        /* A client's timer is one made over HTTP: the only kind /timers/REF reads or cancels. */
        if (strcmp(json_string_value(json_object_get(t, "created_by")), "external") == 0)
            json_object_set_new(t, "created_by", json_string("http"));
        json_object_set_new(t, "timer", json_string(token));
        json_object_set_new(t, "created_at", json_string(iso));
    }
    return gs__respond_json(req, MHD_HTTP_OK, all);
}
