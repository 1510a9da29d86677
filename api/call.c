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

static int start_call(gs_request_t *req, void *ctx)
{
    gs_decoded_t *d = ctx;
    gs_call_options_t opts = {.timeout_ms = (int)d->timeout_ms,
                              .caller_kind = "http",
                              .caller = gs__conn_peer(req->conn)};

    /* The call's reference only when a watcher can use it (two uncontended atomics). */
    return gs_call_async_opts(req->gw->rt, d->server, gs__decoded_take(&d->message), &opts,
                              gs__request_on_reply, req,
                              req->gw->watch != NULL ? &req->call : NULL);
}

enum MHD_Result gs__handle_call(gs_request_t *req)
{
    enum MHD_Result ret = MHD_YES;
    gs_decoded_t d;

    if (gs__request_decode(req, &d, &ret) < 0)
        return ret;
    ret = gs__request_defer(req, GS_HOLD_CALL, finish_call, start_call, &d);
    gs__decoded_close(&d);
    return ret;
}

/* POST /cast and /send share their shape: {"server", "message"} -> 202 {"ok": true}. */
static enum MHD_Result handle_deliver(gs_request_t *req,
                                      int (*deliver)(gs_runtime_t *, const char *, json_t *))
{
    enum MHD_Result ret = MHD_YES;
    gs_decoded_t d;
    int rc;

    if (gs__request_decode(req, &d, &ret) < 0)
        return ret;
    rc = deliver(req->gw->rt, d.server, gs__decoded_take(&d.message));
    if (rc < 0)
        ret = gs__respond_runtime_error(req, rc, NULL);
    else
        ret = gs__respond_json(req, MHD_HTTP_ACCEPTED, json_pack("{s:b}", "ok", 1));
    gs__decoded_close(&d);
    return ret;
}

enum MHD_Result gs__handle_cast(gs_request_t *req)
{
    return handle_deliver(req, gs_cast);
}

enum MHD_Result gs__handle_send(gs_request_t *req)
{
    return handle_deliver(req, gs_send);
}

enum MHD_Result gs__handle_send_after(gs_request_t *req)
{
    static const gs_timer_options_t external = {.external = true};
    gs_gateway_t *gw = req->gw;
    enum MHD_Result ret = MHD_YES;
    gs_timer_ref_t ref = 0;
    char token[GS_TIMER_REF_LEN + 1];
    gs_decoded_t d;
    int rc;

    if (gs__request_decode(req, &d, &ret) < 0)
        return ret;
    /* The name is resolved again when the timer fires (Process.send_after/3 with a name); it
     * must exist now, so that a typo is a 404 rather than a silently dropped timer. An
     * external timer respects the target's mailbox limit and is the only kind the
     * references below can reach. */
    rc = gs_send_after_opts(gw->rt, d.server, gs__decoded_take(&d.message), (uint64_t)d.delay_ms,
                            &external, &ref);
    if (rc == GS_EOVERLOADED && d.delay_ms > 0) {
        ret = gs__respond_error(req, rc,
                                "pending timers are past a bound (--max-timers, --max-timer-bytes, "
                                "--max-timers-per-server or --max-timer-bytes-per-server); retry "
                                "later");
    } else if (rc < 0) {
        ret = gs__respond_runtime_error(req, rc, NULL);
    } else {
        gs__timer_ref_format(&gw->timer_key, ref, token);
        ret = gs__respond_json(req, MHD_HTTP_ACCEPTED, json_pack("{s:s}", "timer", token));
    }
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

/* GET /timers[?limit=N]: the timers made over HTTP, soonest first. */
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
    all = gs_external_timers_json(gw->rt, (size_t)limit);
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
        json_object_set_new(t, "timer", json_string(token));
        json_object_set_new(t, "created_at", json_string(iso));
    }
    return gs__respond_json(req, MHD_HTTP_OK, all);
}
