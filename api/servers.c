/*
 * servers.c: starting, listing, inspecting and stopping servers, and listing behaviours.
 *
 * API:
 *   POST   /servers       gs_start (init runs on this HTTP thread, as start_link runs it on the
 *                         caller's) -> 201 with the server's status
 *   GET    /servers       gs_servers_json
 *   GET    /servers/NAME  gs_server_status, then hold the request for gs_get_state_async so
 *                         the state is read through the mailbox like :sys.get_state
 *   DELETE /servers/NAME  hold the request for gs_stop_async: 200 once terminate ran
 *   GET    /behaviours    gs_behaviours_json
 */
#include "api_internal.h"

#include <string.h>

static enum MHD_Result shutting_down(gs_request_t *req)
{
    return gs__respond_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting_down", "%s",
                             gs_strerror(GS_ESHUTDOWN));
}

static enum MHD_Result start_server(gs_request_t *req)
{
    gs_gateway_t *gw = req->gw;
    enum MHD_Result ret = MHD_YES;
    const gs_behaviour_t *b;
    json_t *reason = NULL, *status;
    gs_decoded_t d;
    int rc;

    if (gs__request_decode(req, &d, &ret) < 0)
        return ret;
    if (!gs__runtime_enter(gw)) {
        ret = shutting_down(req);
        goto out;
    }
    b = gs_behaviour_find(gw->rt, d.behaviour);
    if (b == NULL) {
        gs__runtime_leave(gw);
        ret = gs__respond_error(req, MHD_HTTP_NOT_FOUND, "no_such_behaviour",
                                "no behaviour is registered under \"%s\"", d.behaviour);
        goto out;
    }
    rc = gs_start(gw->rt, d.name, b, d.args, &d.start, &reason); /* args: borrowed */
    status = rc == 0 ? gs_server_status(gw->rt, d.name) : NULL;
    gs__runtime_leave(gw);
    if (rc < 0) {
        ret = gs__respond_runtime_error(req, rc, reason);
        goto out;
    }
    gs__log(gw, GS_LOG_INFO, "http: started server \"%s\" (%s)", d.name, d.behaviour);
    if (status == NULL) /* it stopped again already (e.g. a temporary server that crashed) */
        status = json_pack("{s:s,s:s}", "name", d.name, "behaviour", d.behaviour);
    ret = gs__respond_json(req, MHD_HTTP_CREATED, status);
out:
    json_decref(reason);
    gs__decoded_close(&d);
    return ret;
}

enum MHD_Result gs__handle_servers(gs_request_t *req)
{
    gs_gateway_t *gw = req->gw;
    json_t *all;

    if (req->match.method == GS_METHOD_POST)
        return start_server(req);
    if (!gs__runtime_enter(gw))
        return shutting_down(req);
    all = gs_servers_json(gw->rt);
    gs__runtime_leave(gw);
    return gs__respond_json(req, MHD_HTTP_OK, all);
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

static enum MHD_Result finish_stop(gs_request_t *req)
{
    if (req->status < 0)
        return gs__respond_runtime_error(req, req->status, req->result);
    gs__log(req->gw, GS_LOG_INFO, "http: stopped server \"%s\"", req->param);
    return gs__respond_json(req, MHD_HTTP_OK, json_pack("{s:b}", "ok", 1));
}

enum MHD_Result gs__handle_server(gs_request_t *req)
{
    gs_gateway_t *gw = req->gw;
    const char *name = req->param;
    json_t *status;
    int rc;

    if (name == NULL || strlen(name) > GS_NAME_MAX)
        return gs__respond_runtime_error(req, GS_ENOSERVER, NULL);
    if (!gs__runtime_enter(gw))
        return shutting_down(req);

    if (req->match.method == GS_METHOD_DELETE) {
        (void)gs__request_hold(req, finish_stop, false); /* not counted: cannot fail */
        rc = gs_stop_async(gw->rt, name, NULL, gs__on_done, req);
        gs__runtime_leave(gw);
        return gs__request_started(req, rc);
    }

    status = gs_server_status(gw->rt, name);
    if (status == NULL) {
        gs__runtime_leave(gw);
        return gs__respond_runtime_error(req, GS_ENOSERVER, NULL);
    }
    (void)gs__request_hold(req, finish_state, false); /* not counted: cannot fail */
    req->extra = status;
    rc = gs_get_state_async(gw->rt, name, gw->opts.default_timeout_ms, gs__on_reply, req);
    gs__runtime_leave(gw);
    return gs__request_started(req, rc);
}

enum MHD_Result gs__handle_behaviours(gs_request_t *req)
{
    gs_gateway_t *gw = req->gw;
    json_t *list;

    if (!gs__runtime_enter(gw))
        return shutting_down(req);
    list = gs_behaviours_json(gw->rt);
    gs__runtime_leave(gw);
    return gs__respond_json(req, MHD_HTTP_OK,
                            json_pack("{s:o}", "behaviours", list ? list : json_array()));
}
