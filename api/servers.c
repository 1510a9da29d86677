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
 *   DELETE /servers/NAME  defer to gs_stop_async_opts with a reason and a timeout (body
 *                         {"reason", "timeout_ms"} or query ?reason=TEXT&timeout_ms=N): 200
 *                         once terminate ran, 504 past the timeout (the server is killed)
 *   POST /servers/NAME/suspend, /resume   gs_suspend_async / gs_resume_async: the status
 *   PUT  /servers/NAME/state  gs_replace_state_async: 200 {"old_state": ...}, 409
 *                         not_supported, 422 state_refused with the behaviour's reason
 *   GET    /servers/NAME/held  gs_server_held_json: the open-reply ledger (who waits on the
 *                         calls the server holds), oldest first, ?limit=N of them
 */
#include "api_internal.h"

#include <genserv/store.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The stored spec of a server started over HTTP: the fields of POST /servers, as
 * server/boot.c reads them back. New reference. */
static json_t *start_spec(const gs_decoded_t *d)
{
    const gs_start_options_t *o = &d->start;
    return json_pack("{s:s, s:s, s:O, s:s, s:I, s:I, s:I, s:b, s:I, s:I, s:b}", "name", d->name,
                     "behaviour", d->behaviour, "args", d->args != NULL ? d->args : json_null(),
                     "restart", gs_restart_name(o->restart), "max_restarts",
                     (json_int_t)o->max_restarts, "max_seconds", (json_int_t)o->max_seconds,
                     "mailbox_limit", (json_int_t)o->mailbox_limit, "sensitive", o->sensitive,
                     "memory_limit", (json_int_t)o->memory_limit, "instruction_limit",
                     (json_int_t)o->instruction_limit, "durable", o->durable);
}

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
    if (rc == GS_ENOTSUP && d.start.durable) {
        ret = gs__respond_error(req, rc,
                                gw->store == NULL
                                    ? "durable servers need a data directory (--data-dir)"
                                    : "behaviour \"%s\" cannot be stored (it has no dump_state "
                                      "and restore)",
                                d.behaviour);
        goto out;
    }
    if (rc < 0) {
        ret = gs__respond_runtime_error(req, rc, reason);
        goto out;
    }
    /* With a store, the spec is committed before the 201: the server comes back at the
     * next start. If it cannot be, the server does not stay either. */
    rc = gs__persist_spec(gw, "server", d.name, start_spec(&d));
    if (rc != 0) {
        gs_stop(gw->rt, d.name, NULL, GS_INFINITY);
        ret = gs__respond_error(req, rc,
                                "the server's spec could not be stored (%s); it was stopped again",
                                gs_strerror(rc));
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
        /* Reading the state measured it: the memory fields read before are older. */
        json_t *fresh = gs_server_status(req->gw->rt, req->param);

        if (fresh != NULL) {
            json_object_set(status, "memory_bytes", json_object_get(fresh, "memory_bytes"));
            json_object_set(status, "memory", json_object_get(fresh, "memory"));
            json_decref(fresh);
        }
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
    /* Stopped (or killed): a server started over HTTP does not come back at the next start. */
    if ((req->status == 0 || req->status == GS_ETIMEOUT) &&
        gs__persist_wait(req->gw, GS_STORE_SPECS, req->param, NULL) != 0)
        return gs__respond_error(req, GS_ESTORAGE,
                                 "the server stopped, but its stored spec could not be deleted: "
                                 "it would start again after a restart");
    if (req->status == GS_ETIMEOUT)
        return gs__respond_error(req, GS_ETIMEOUT,
                                 "the server did not stop within timeout_ms; it is killed when "
                                 "its current handler returns, without terminate");
    if (req->status < 0)
        return gs__respond_runtime_error(req, req->status, req->result);
    gs__log(req->gw, GS_LOG_INFO, "http: stopped server \"%s\"", req->param);
    return gs__respond_json(req, MHD_HTTP_OK, json_pack("{s:b}", "ok", 1));
}

typedef struct stop_args_s {
    json_t *reason; /* owned until the stop takes it */
    gs_stop_options_t opts;
} stop_args_t;

static int start_stop(gs_request_t *req, void *ctx)
{
    stop_args_t *a = ctx;
    json_t *reason = a->reason;

    a->reason = NULL;
    return gs_stop_async_opts(req->gw->rt, req->param, reason, &a->opts, gs__request_on_done, req);
}

/* timeout_ms as a query argument: decimal digits, 0..max. */
static int parse_timeout(const char *v, int64_t max, int64_t *out)
{
    int64_t n = 0;

    if (*v == '\0' || strlen(v) > 12)
        return -1;
    for (; *v != '\0'; v++) {
        if (*v < '0' || *v > '9')
            return -1;
        n = n * 10 + (*v - '0');
    }
    if (n > max)
        return -1;
    *out = n;
    return 0;
}

enum MHD_Result gs__handle_server_stop(gs_request_t *req)
{
    const char *q_reason = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "reason");
    const char *q_timeout =
        MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "timeout_ms");
    int64_t max = req->gw->opts.max_timeout_ms;
    enum MHD_Result ret = MHD_YES;
    gs_decoded_t d;
    stop_args_t a;

    memset(&d, 0, sizeof(d));
    d.timeout_ms = GS_DEFAULT_TIMEOUT_MS;
    if (req->body_len > 0) {
        if (gs__request_decode(req, &d, &ret) < 0)
            return ret;
    } else {
        gs__body_free(req);
    }
    if (q_reason != NULL) {
        if (d.reason != NULL) {
            ret = gs__respond_error(req, GS_HTTP_EBAD_REQUEST,
                                    "reason is given both in the body and in the query");
            goto out;
        }
        d.reason = json_string(q_reason); /* NULL: not UTF-8 */
        if (d.reason == NULL) {
            ret = gs__respond_error(req, GS_HTTP_EBAD_REQUEST,
                                    "the query argument \"reason\" must be UTF-8 text");
            goto out;
        }
    }
    if (q_timeout != NULL) {
        if (json_object_get(d.body, "timeout_ms") != NULL) {
            ret = gs__respond_error(req, GS_HTTP_EBAD_REQUEST,
                                    "timeout_ms is given both in the body and in the query");
            goto out;
        }
        if (parse_timeout(q_timeout, max, &d.timeout_ms) < 0) {
            ret = gs__respond_error(req, GS_HTTP_EBAD_REQUEST,
                                    "the query argument \"timeout_ms\" must be an integer in "
                                    "0..%lld",
                                    (long long)max);
            goto out;
        }
    }
    gs_stop_options_init(&a.opts);
    a.opts.timeout_ms = (int)d.timeout_ms;
    a.reason = gs__decoded_take(&d.reason);
    ret = gs__request_defer(req, GS_HOLD_CONTROL, finish_stop, start_stop, &a);
    json_decref(a.reason); /* not taken when the defer refused before starting */
out:
    gs__decoded_close(&d);
    return ret;
}

/* ---------------------------------------------------------------------------------------- */
/* :sys                                                                                       */
/* ---------------------------------------------------------------------------------------- */

static enum MHD_Result finish_sys_status(gs_request_t *req)
{
    if (req->status < 0)
        return gs__respond_runtime_error(req, req->status, req->result);
    json_t *status = gs_server_status(req->gw->rt, req->param);
    if (status == NULL) /* stopped since */
        status = json_pack("{s:s}", "name", req->param);
    return gs__respond_json(req, MHD_HTTP_OK, status);
}

static int start_suspend(gs_request_t *req, void *ctx)
{
    (void)ctx;
    return gs_suspend_async(req->gw->rt, req->param, req->gw->opts.default_timeout_ms,
                            gs__request_on_reply, req);
}

static int start_resume(gs_request_t *req, void *ctx)
{
    (void)ctx;
    return gs_resume_async(req->gw->rt, req->param, req->gw->opts.default_timeout_ms,
                           gs__request_on_reply, req);
}

enum MHD_Result gs__handle_server_suspend(gs_request_t *req)
{
    gs__body_free(req); /* nothing to say in it */
    return gs__request_defer(req, GS_HOLD_CONTROL, finish_sys_status, start_suspend, NULL);
}

enum MHD_Result gs__handle_server_resume(gs_request_t *req)
{
    gs__body_free(req);
    return gs__request_defer(req, GS_HOLD_CONTROL, finish_sys_status, start_resume, NULL);
}

static enum MHD_Result finish_replace_state(gs_request_t *req)
{
    if (req->status < 0)
        return gs__respond_runtime_error(req, req->status, req->result);
    json_t *old = req->result != NULL ? req->result : json_null();
    req->result = NULL;
    gs__log(req->gw, GS_LOG_INFO, "http: replaced the state of server \"%s\"", req->param);
    return gs__respond_wrapped(req, MHD_HTTP_OK, "old_state", old);
}

static int start_replace_state(gs_request_t *req, void *ctx)
{
    json_t **state = ctx;

    return gs_replace_state_async(req->gw->rt, req->param, gs__decoded_take(state),
                                  req->gw->opts.default_timeout_ms, gs__request_on_reply, req);
}

enum MHD_Result gs__handle_server_replace_state(gs_request_t *req)
{
    enum MHD_Result ret = MHD_YES;
    gs_decoded_t d;

    if (gs__request_decode(req, &d, &ret) < 0)
        return ret;
    ret = gs__request_defer(req, GS_HOLD_CONTROL, finish_replace_state, start_replace_state,
                            &d.state);
    gs__decoded_close(&d);
    return ret;
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
