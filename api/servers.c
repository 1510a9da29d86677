/*
 * servers.c: starting, listing, inspecting and stopping servers.
 *
 * API:
 *   POST   /servers       gs_start (init runs on this HTTP thread, as start_link runs it on the
 *                         caller's) -> 201 with the server's status; 200 {"ignored": true}
 *                         when init returned :ignore
 *   GET    /servers       gs_servers_json
 *   GET    /servers/NAME  gs_server_status, then defer to gs_get_state_async so the state is
 *                         read through the mailbox like :sys.get_state
 *   DELETE /servers/NAME  defer to gs_stop_async: 200 once terminate ran
 *   GET    /servers/NAME/held  gs_server_held_json: the open-reply ledger (who waits on the
 *                         calls the server holds), oldest first, ?limit=N of them
 */
#include "api_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum MHD_Result gs__handle_server_start(gs_request_t *req)
{
    gs_gateway_t *gw = req->gw;
    enum MHD_Result ret = MHD_YES;
    const gs_behaviour_t *b;
    const char *kind;
    json_t *reason = NULL, *status;
    gs_decoded_t d;
    int rc;

    if (gs__request_decode(req, &d, &ret) < 0)
        return ret;
    b = gs_behaviour_find(gw->rt, d.behaviour);
    if (b == NULL) {
        ret = gs__respond_error(req, GS_ENOBEHAVIOUR, "no behaviour is registered under \"%s\"",
                                d.behaviour);
        goto out;
    }
    kind = gs_behaviour_kind(gw->rt, d.behaviour);
    if ((d.start.memory_limit != 0 || d.start.instruction_limit != 0) &&
        (kind == NULL || strcmp(kind, "lua") != 0)) {
        ret = gs__respond_error(req, GS_HTTP_EBAD_REQUEST,
                                "memory_limit and instruction_limit apply to Lua behaviours; "
                                "\"%s\" is a %s behaviour",
                                d.behaviour, kind != NULL ? kind : "c");
        goto out;
    }
    rc = gs_start(gw->rt, d.name, b, d.args, &d.start, &reason); /* args: borrowed */
    if (rc == GS_EIGNORED) {
        /* OTP's :ignore: not an error, and nothing runs under the name. */
        ret = gs__respond_json(
            req, MHD_HTTP_OK,
            json_pack("{s:s,s:s,s:b}", "name", d.name, "behaviour", d.behaviour, "ignored", 1));
        goto out;
    }
    if (rc < 0) {
        ret = gs__respond_runtime_error(req, rc, reason);
        goto out;
    }
    gs__log(gw, GS_LOG_INFO, "http: started server \"%s\" (%s)", d.name, d.behaviour);
    status = gs_server_status(gw->rt, d.name);
    if (status == NULL) /* it stopped again already (e.g. a temporary server that crashed) */
        status = json_pack("{s:s,s:s}", "name", d.name, "behaviour", d.behaviour);
    ret = gs__respond_json(req, MHD_HTTP_CREATED, status);
out:
    json_decref(reason);
    gs__decoded_close(&d);
    return ret;
}

enum MHD_Result gs__handle_servers_list(gs_request_t *req)
{
    return gs__respond_json(req, MHD_HTTP_OK, gs_servers_json(req->gw->rt));
}

static enum MHD_Result finish_state(gs_request_t *req)
{
    json_t *status = req->extra;

    req->extra = NULL;
    if (req->status == 0) {
        json_object_set_new(status, "state", req->result ? req->result : json_null());
        req->result = NULL;
    } else {
        /* The status was read; the state could not be (the server is down, restarting, or
         * too slow to answer): say so rather than fail the whole inspection. */
        json_object_set_new(status, "state", json_null());
        json_object_set_new(status, "state_error", json_string(gs_err_name(req->status)));
    }
    return gs__respond_json(req, MHD_HTTP_OK, status);
}

static int start_get_state(gs_request_t *req, void *ctx)
{
    (void)ctx;
    return gs_get_state_async(req->gw->rt, req->param, req->gw->opts.default_timeout_ms,
                              gs__request_on_reply, req);
}

enum MHD_Result gs__handle_server_status(gs_request_t *req)
{
    json_t *status = gs_server_status(req->gw->rt, req->param);

    if (status == NULL)
        return gs__respond_no_such_server(req, req->param);
    req->extra = status;
    return gs__request_defer(req, GS_HOLD_CONTROL, finish_state, start_get_state, NULL);
}

static enum MHD_Result finish_stop(gs_request_t *req)
{
    if (req->status < 0)
        return gs__respond_runtime_error(req, req->status, req->result);
    gs__log(req->gw, GS_LOG_INFO, "http: stopped server \"%s\"", req->param);
    return gs__respond_json(req, MHD_HTTP_OK, json_pack("{s:b}", "ok", 1));
}

static int start_stop(gs_request_t *req, void *ctx)
{
    (void)ctx;
    return gs_stop_async(req->gw->rt, req->param, NULL, gs__request_on_done, req);
}

enum MHD_Result gs__handle_server_stop(gs_request_t *req)
{
    return gs__request_defer(req, GS_HOLD_CONTROL, finish_stop, start_stop, NULL);
}

enum MHD_Result gs__handle_server_held(gs_request_t *req)
{
    const char *arg = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "limit");
    unsigned long long limit = GS_HELD_LIST_DEFAULT;
    char *end = NULL;
    json_t *held;

    if (arg != NULL) {
        errno = 0;
        limit = strtoull(arg, &end, 10);
        if (errno != 0 || end == arg || *end != '\0' || limit < 1 || limit > GS_HELD_LIST_MAX)
            return gs__respond_error(req, GS_HTTP_EBAD_REQUEST, "limit must be in 1..%u",
                                     GS_HELD_LIST_MAX);
    }
    held = gs_server_held_json(req->gw->rt, req->param, (size_t)limit);
    if (held == NULL)
        return gs__respond_no_such_server(req, req->param);
    return gs__respond_json(req, MHD_HTTP_OK, held);
}
