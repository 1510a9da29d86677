/*
 * call.c: the messaging endpoints. POST /call holds the connection until the server answers
 * (gs_call_async); POST /cast, /send and /send_after answer as soon as the runtime accepted
 * the message; GET and DELETE /timers/ID read and cancel timers.
 *
 * API (POST /call):
 *   gs__request_decode (decode.c)                  400 on anything wrong
 *   gs__request_defer(req, GS_HOLD_CALL, ...)      503 overloaded past max_held_calls, else
 *     start_call: gs_call_async(..., gs__request_on_reply, req)
 *   ... the runtime replies (often at once, on this thread), times out or fails the call;
 *   finish_call answers 200 {"reply"} or the mapped error, now or after a resume.
 */
#include "api_internal.h"

#include <errno.h>
#include <stdlib.h>

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

    return gs_call_async(req->gw->rt, d->server, gs__decoded_take(&d->message), (int)d->timeout_ms,
                         gs__request_on_reply, req);
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
    gs_gateway_t *gw = req->gw;
    enum MHD_Result ret = MHD_YES;
    gs_timer_ref_t ref = 0;
    gs_server_t *target;
    gs_decoded_t d;
    int rc;

    if (gs__request_decode(req, &d, &ret) < 0)
        return ret;
    /* The name is resolved again when the timer fires (Process.send_after/3 with a name);
     * checking it now turns a typo into a 404 instead of a silently dropped timer. */
    target = gs_whereis(gw->rt, d.server);
    if (target == NULL) {
        rc = GS_ENOSERVER;
    } else {
        gs_server_unref(target);
        rc = gs_send_after(gw->rt, d.server, gs__decoded_take(&d.message), (uint64_t)d.delay_ms,
                           &ref);
    }
    if (rc < 0)
        ret = gs__respond_runtime_error(req, rc, NULL);
    else
        ret =
            gs__respond_json(req, MHD_HTTP_ACCEPTED, json_pack("{s:I}", "timer", (json_int_t)ref));
    gs__decoded_close(&d);
    return ret;
}

/* A timer id is a positive decimal integer that fits json_int_t (what POST /send_after gave). */
static int parse_timer_id(const char *s, gs_timer_ref_t *out)
{
    char *end = NULL;
    unsigned long long v;

    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v == 0 || v > (unsigned long long)INT64_MAX)
        return -1;
    *out = (gs_timer_ref_t)v;
    return 0;
}

/* GET and DELETE /timers/ID share their shape: {"remaining_ms"} or 404 no_such_timer. */
static enum MHD_Result handle_timer(gs_request_t *req,
                                    int (*op)(gs_runtime_t *, gs_timer_ref_t, int64_t *))
{
    gs_timer_ref_t ref;
    int64_t remaining = 0;
    int rc;

    if (parse_timer_id(req->param, &ref) < 0)
        return gs__respond_error(req, GS_HTTP_EBAD_REQUEST, "a timer id is a positive integer");
    rc = op(req->gw->rt, ref, &remaining);
    if (rc < 0)
        return gs__respond_runtime_error(req, rc, NULL);
    return gs__respond_json(req, MHD_HTTP_OK,
                            json_pack("{s:I}", "remaining_ms", (json_int_t)remaining));
}

enum MHD_Result gs__handle_timer_read(gs_request_t *req)
{
    return handle_timer(req, gs_read_timer);
}

enum MHD_Result gs__handle_timer_cancel(gs_request_t *req)
{
    return handle_timer(req, gs_cancel_timer);
}
