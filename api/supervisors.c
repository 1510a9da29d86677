/*
 * supervisors.c: supervision trees over HTTP (genserv.h's gs_supervisor_*).
 *
 * API:
 *   POST   /supervisors                        gs_supervisor_start_async: the children start
 *                                              in order (their inits run on scheduler threads
 *                                              and this one); 201 with the tree once all run
 *   GET    /supervisors                        gs_supervisors_json
 *   GET    /supervisors/NAME                   gs_supervisor_json
 *   DELETE /supervisors/NAME                   gs_stop_async: the supervisor stops its
 *                                              children in reverse order first; 200 after
 *   POST   /supervisors/NAME/children          start_child with a child spec: 201 the child
 *   POST   /supervisors/NAME/terminate_child   {"child": NAME}: 200 once it stopped
 *   POST   /supervisors/NAME/restart_child     {"child": NAME}: 200 once it runs again
 *   POST   /supervisors/NAME/delete_child      {"child": NAME}: 200
 * Every one of these is a request to the supervisor's own mailbox, answered when it decided
 * (a held connection, never a waiting thread).
 */
#include "api_internal.h"

#include <genserv/store.h>

#include <string.h>

/* Answer a supervisor's error: a bad spec with its message, a failed child naming it. */
static enum MHD_Result respond_sup_error(gs_request_t *req, int err, json_t *reason)
{
    const char *message = json_string_value(json_object_get(reason, "message"));
    if (err == GS_EINVAL && message != NULL)
        return gs__respond_error(req, GS_EINVAL, "%s", message);
    if (err == GS_ESTARTCHILD) {
        const char *child = json_string_value(json_object_get(reason, "child"));
        const char *why = json_string_value(json_object_get(reason, "error"));
        char text[600];
        snprintf(text, sizeof(text),
                 "child \"%s\" failed to start (%s); the children started "
                 "before it were stopped again",
                 child != NULL ? child : "?", why != NULL ? why : "?");
        return gs__respond_json(req, gs__error_status(err),
                                json_pack("{s:s, s:s, s:O}", "error", gs__error_code(err),
                                          "message", text, "reason", reason));
    }
    if (err == GS_ENOSUPERVISOR)
        return gs__respond_error(req, err, "no supervisor is running under \"%s\"", req->param);
    if (err == GS_ENOCHILD)
        return gs__respond_error(req, err, "supervisor \"%s\" has no child of that name",
                                 req->param);
    if (err == GS_EALREADY)
        return gs__respond_error(req, err, "the name is already used by a server or child");
    return gs__respond_runtime_error(req, err, reason);
}

/* ---------------------------------------------------------------------------------------- */
/* Trees                                                                                      */
/* ---------------------------------------------------------------------------------------- */

static enum MHD_Result finish_start(gs_request_t *req)
{
    json_t *reason = req->result != NULL ? req->result : req->extra;
    if (req->status < 0)
        return respond_sup_error(req, req->status, reason);
    const char *name = json_string_value(json_object_get(req->result, "name"));
    /* With a store, the spec as posted is committed before the 201 (ctx kept it in extra). */
    json_t *spec = req->extra;
    req->extra = NULL;
    int rc = gs__persist_spec(req->gw, "supervisor", name, spec);
    if (rc != 0) {
        gs_stop(req->gw->rt, name, NULL, GS_INFINITY);
        return gs__respond_error(req, rc,
                                 "the supervisor's spec could not be stored (%s); it was stopped "
                                 "again",
                                 gs_strerror(rc));
    }
    gs__log(req->gw, GS_LOG_INFO, "http: started supervisor \"%s\"", name);
    json_t *tree = req->result;
    req->result = NULL;
    return gs__respond_json(req, MHD_HTTP_CREATED, tree);
}

static int start_tree(gs_request_t *req, void *ctx)
{
    json_t *why = NULL;
    json_t *spec = json_deep_copy(ctx); /* for the store, once it started */
    int rc = gs_supervisor_start_async(req->gw->rt, ctx, gs__request_on_reply, req, &why);
    if (rc < 0) {
        json_decref(spec);
        req->extra = why; /* an up-front error's details, for finish_start */
    } else {
        json_decref(why);
        req->extra = spec;
    }
    return rc;
}

enum MHD_Result gs__handle_supervisor_start(gs_request_t *req)
{
    enum MHD_Result ret = MHD_YES;
    gs_decoded_t d;

    if (gs__request_decode(req, &d, &ret) < 0)
        return ret;
    ret = gs__request_defer(req, GS_HOLD_CONTROL, finish_start, start_tree, d.body);
    gs__decoded_close(&d);
    return ret;
}

enum MHD_Result gs__handle_supervisors_list(gs_request_t *req)
{
    return gs__respond_json(req, MHD_HTTP_OK, gs_supervisors_json(req->gw->rt));
}

enum MHD_Result gs__handle_supervisor_show(gs_request_t *req)
{
    json_t *tree = gs_supervisor_json(req->gw->rt, req->param);
    if (tree == NULL)
        return respond_sup_error(req, GS_ENOSUPERVISOR, NULL);
    return gs__respond_json(req, MHD_HTTP_OK, tree);
}

static enum MHD_Result finish_ok(gs_request_t *req)
{
    if (req->status < 0)
        return respond_sup_error(req, req->status, req->result);
    return gs__respond_json(req, MHD_HTTP_OK, json_pack("{s:b}", "ok", 1));
}

/* A supervisor stopped or a child deleted: its stored spec goes (req->extra: the names). */
static enum MHD_Result finish_forget(gs_request_t *req)
{
    json_t *names = req->extra, *n;
    size_t i;
    int rc = 0;
    req->extra = NULL;
    for (i = 0; req->status == 0 && rc == 0 && i < json_array_size(names); i++) {
        n = json_array_get(names, i);
        rc = gs__persist_wait(req->gw, GS_STORE_SPECS, json_string_value(n), NULL);
    }
    json_decref(names);
    if (rc != 0)
        return gs__respond_error(req, rc,
                                 "done, but the stored spec could not be deleted: it would come "
                                 "back after a restart");
    return finish_ok(req);
}

/* The names of a supervisor and of every child in its tree (what the store may hold). */
static void collect_names(const json_t *tree, json_t *names)
{
    const json_t *c;
    size_t i;
    json_array_append_new(names, json_string(json_string_value(json_object_get(tree, "name"))));
    const json_t *children = json_object_get(tree, "children");
    for (i = 0; i < json_array_size(children); i++) {
        c = json_array_get(children, i);
        collect_names(c, names);
    }
}

static int start_stop(gs_request_t *req, void *ctx)
{
    (void)ctx;
    return gs_stop_async(req->gw->rt, req->param, NULL, gs__request_on_done, req);
}

enum MHD_Result gs__handle_supervisor_stop(gs_request_t *req)
{
    json_t *tree = gs_supervisor_json(req->gw->rt, req->param);
    if (tree == NULL)
        return respond_sup_error(req, GS_ENOSUPERVISOR, NULL);
    req->extra = json_array();
    collect_names(tree, req->extra);
    json_decref(tree);
    gs__log(req->gw, GS_LOG_INFO, "http: stopping supervisor \"%s\"", req->param);
    return gs__request_defer(req, GS_HOLD_CONTROL, finish_forget, start_stop, NULL);
}

/* ---------------------------------------------------------------------------------------- */
/* Children of a running supervisor                                                           */
/* ---------------------------------------------------------------------------------------- */

static enum MHD_Result finish_child_start(gs_request_t *req)
{
    json_t *spec = req->extra;
    req->extra = NULL;
    if (req->status < 0) {
        json_decref(spec);
        return respond_sup_error(req, req->status, req->result);
    }
    /* Stored as a "child" row: at the next start it is added to its supervisor again. */
    const char *name = json_string_value(json_object_get(spec, "name"));
    int rc = gs__persist_spec(req->gw, "child", name,
                              json_pack("{s:s, s:o}", "supervisor", req->param, "child", spec));
    if (rc != 0) {
        gs_supervisor_terminate_child(req->gw->rt, req->param, name, GS_INFINITY);
        gs_supervisor_delete_child(req->gw->rt, req->param, name, GS_INFINITY);
        return gs__respond_error(req, rc,
                                 "the child's spec could not be stored (%s); it was removed "
                                 "again",
                                 gs_strerror(rc));
    }
    json_t *child = req->result;
    req->result = NULL;
    return gs__respond_json(req, MHD_HTTP_CREATED, child);
}

static int start_child(gs_request_t *req, void *ctx)
{
    req->extra = json_deep_copy(ctx); /* for the store, once it started */
    return gs_supervisor_start_child_async(req->gw->rt, req->param, ctx, gs__request_on_reply, req);
}

enum MHD_Result gs__handle_supervisor_start_child(gs_request_t *req)
{
    enum MHD_Result ret = MHD_YES;
    gs_decoded_t d;

    if (gs__request_decode(req, &d, &ret) < 0)
        return ret;
    ret = gs__request_defer(req, GS_HOLD_CONTROL, finish_child_start, start_child, d.body);
    gs__decoded_close(&d);
    return ret;
}

typedef int (*child_op_fn)(gs_runtime_t *rt, const char *sup, const char *child, gs_reply_cb cb,
                           void *arg);

typedef struct child_op_s {
    child_op_fn op;
    const char *child;
} child_op_t;

static int start_child_op(gs_request_t *req, void *ctx)
{
    const child_op_t *c = ctx;
    return c->op(req->gw->rt, req->param, c->child, gs__request_on_reply, req);
}

/* {"child": NAME} to op. */
static enum MHD_Result child_op(gs_request_t *req, child_op_fn op)
{
    enum MHD_Result ret = MHD_YES;
    gs_decoded_t d;

    if (gs__request_decode(req, &d, &ret) < 0)
        return ret;
    child_op_t c = {op, json_string_value(json_object_get(d.body, "child"))};
    if (c.child == NULL) {
        ret = gs__respond_error(req, GS_HTTP_EBAD_REQUEST,
                                "the body needs \"child\": the name of one of its children");
    } else if (op == gs_supervisor_delete_child_async) {
        req->extra = json_pack("[s]", c.child); /* a deleted child's stored row goes too */
        ret = gs__request_defer(req, GS_HOLD_CONTROL, finish_forget, start_child_op, &c);
    } else {
        ret = gs__request_defer(req, GS_HOLD_CONTROL, finish_ok, start_child_op, &c);
    }
    gs__decoded_close(&d);
    return ret;
}

enum MHD_Result gs__handle_supervisor_terminate_child(gs_request_t *req)
{
    return child_op(req, gs_supervisor_terminate_child_async);
}

enum MHD_Result gs__handle_supervisor_restart_child(gs_request_t *req)
{
    return child_op(req, gs_supervisor_restart_child_async);
}

enum MHD_Result gs__handle_supervisor_delete_child(gs_request_t *req)
{
    return child_op(req, gs_supervisor_delete_child_async);
}
