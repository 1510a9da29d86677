/*
 * behaviours.c: the behaviours a client can start, and the ones it sends as source code.
 *
 * API:
 *   GET    /behaviours        gs_behaviours_json: every behaviour with its kind and vsn
 *   POST   /behaviours        code.load -> 201 with the behaviour (its source left out)
 *   GET    /behaviours/NAME   the registry's entry and the servers that run it, plus, for code
 *                             sent as source, code.describe's source, limits and loaded_at
 *   PUT    /behaviours/NAME   code.upgrade, deferred until every server running it answered:
 *                             200 with each server's outcome
 *   DELETE /behaviours/NAME   code.remove: 200, or 409 behaviour_in_use naming its servers
 *
 * A body is JSON ({"name", "vsn", "source", "limits"}, and "extra" for PUT) when it starts with
 * '{', which no Lua chunk can; otherwise it is the source itself and name, vsn and extra (JSON
 * text) come from the query string, so that `curl --data-binary @counter.lua
 * 'host/behaviours?name=counter'` works without quoting the code into JSON. Built-in and
 * plugin behaviours are read-only here (409 read_only_behaviour).
 */
#include "api_internal.h"

#include <genserv/store.h>

#include <stdio.h>
#include <string.h>

enum MHD_Result gs__handle_behaviours(gs_request_t *req)
{
    json_t *list = gs_behaviours_json(req->gw->rt);

    return gs__respond_json(req, MHD_HTTP_OK,
                            json_pack("{s:o}", "behaviours", list ? list : json_array()));
}

/* ---------------------------------------------------------------------------------------- */
/* The request: JSON, or the source with its name in the query string                         */
/* ---------------------------------------------------------------------------------------- */

static bool body_is_json(const gs_request_t *req)
{
    for (size_t i = 0; i < req->body_len; i++) {
        char c = req->body[i];
        if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
            return c == '{';
    }
    return true; /* empty: let the JSON decoder say what is missing */
}

/* A query-string argument as a name (1..GS_NAME_MAX bytes); NULL and a 400 when it is not. */
static const char *query_name(gs_request_t *req, const char *key, bool required,
                              enum MHD_Result *ret)
{
    const char *v = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, key);
    size_t len = v != NULL ? strlen(v) : 0;

    *ret = MHD_YES;
    if (v == NULL && !required)
        return NULL;
    if (v == NULL || len == 0 || len > GS_NAME_MAX) {
        *ret = gs__respond_error(req, GS_HTTP_EBAD_REQUEST,
                                 "the query argument \"%s\" must be 1 to %d bytes (the body is "
                                 "the source itself since it does not start with '{')",
                                 key, GS_NAME_MAX);
        return NULL;
    }
    return v;
}

/*
 * The code a POST (named: the behaviour's name is in the request) or a PUT carries, in d.
 * 0, or -1 after answering 400 (*ret). A raw body stays in req until gs__body_free; a JSON one
 * is freed here, as every decoded body is.
 */
static int decode_code(gs_request_t *req, bool named, gs_decoded_t *d, enum MHD_Result *ret)
{
    const char *extra;
    json_error_t jerr;

    if (body_is_json(req))
        return gs__request_decode(req, d, ret);
    memset(d, 0, sizeof(*d));
    if (named && (d->name = query_name(req, "name", true, ret)) == NULL)
        return -1;
    d->vsn = query_name(req, "vsn", false, ret);
    if (*ret != MHD_YES)
        return -1;
    extra = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "extra");
    if (!named && extra != NULL) {
        d->extra = json_loads(extra, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
        if (d->extra == NULL) {
            *ret = gs__respond_error(req, GS_HTTP_EBAD_REQUEST,
                                     "the query argument \"extra\" must be JSON: %s", jerr.text);
            return -1;
        }
    }
    d->source = req->body;
    d->source_len = req->body_len;
    return 0;
}

/* The source compiles into nothing: Lua's own message (err taken), as a 400. */
static enum MHD_Result respond_bad_source(gs_request_t *req, int rc, json_t *err)
{
    enum MHD_Result ret;

    if (err == NULL)
        return gs__respond_runtime_error(req, rc, NULL);
    if (json_is_string(err)) {
        ret = gs__respond_error(req, GS_HTTP_EBAD_REQUEST, "%s", json_string_value(err));
    } else {
        char *text = json_dumps(err, JSON_ENCODE_ANY | JSON_COMPACT);
        ret = gs__respond_error(req, GS_HTTP_EBAD_REQUEST, "%s", text != NULL ? text : "?");
        free(text);
    }
    json_decref(err);
    return ret;
}

/* 404 for no behaviour at all, 409 for one that is not code sent as source, else 0. */
static int check_writable(gs_request_t *req, const char *name, enum MHD_Result *ret)
{
    const gs_gateway_code_t *code = &req->gw->opts.code;
    const char *kind = gs_behaviour_kind(req->gw->rt, name);
    json_t *desc;

    if (code->load == NULL) {
        *ret = gs__respond_error(req, GS_HTTP_ENOT_IMPLEMENTED,
                                 "this gateway runs no behaviours sent as source code");
        return -1;
    }
    if (kind == NULL) {
        *ret = gs__respond_error(req, GS_ENOBEHAVIOUR,
                                 "no behaviour is registered under \"%s\" (POST /behaviours "
                                 "registers one)",
                                 name);
        return -1;
    }
    desc = code->describe(code->ctx, name);
    json_decref(desc);
    if (desc == NULL) {
        *ret = gs__respond_error(req, GS_HTTP_EREAD_ONLY,
                                 "\"%s\" is a %s behaviour: only behaviours sent as source can "
                                 "be upgraded or deleted over HTTP",
                                 name, kind);
        return -1;
    }
    return 0;
}

/* What POST and PUT answer about the behaviour name: code.describe without the source (the
 * client just sent it). New reference. */
static json_t *summary(gs_request_t *req, const char *name)
{
    const gs_gateway_code_t *code = &req->gw->opts.code;
    json_t *desc = code->describe(code->ctx, name);

    if (desc == NULL) /* deleted meanwhile */
        return json_pack("{s:s}", "name", name);
    json_object_del(desc, "source");
    return desc;
}

/* ---------------------------------------------------------------------------------------- */
/* POST /behaviours                                                                           */
/* ---------------------------------------------------------------------------------------- */

/* With a store, the behaviour's code as loaded now ({"vsn", "source", "limits"}) is written
 * before the answer: it is loaded again at the next start (server/boot.c). */
static int persist_behaviour(gs_request_t *req, const char *name)
{
    const gs_gateway_code_t *code = &req->gw->opts.code;
    if (req->gw->store == NULL)
        return 0;
    json_t *desc = code->describe(code->ctx, name);
    if (desc == NULL)
        return GS_ENOBEHAVIOUR;
    json_t *row =
        json_pack("{s:O?, s:O?, s:O?}", "vsn", json_object_get(desc, "vsn"), "source",
                  json_object_get(desc, "source"), "limits", json_object_get(desc, "limits"));
    json_decref(desc);
    int rc = row != NULL ? gs__persist_wait(req->gw, GS_STORE_BEHAVIOURS, name, row) : GS_ENOMEM;
    json_decref(row);
    return rc;
}

enum MHD_Result gs__handle_behaviour_load(gs_request_t *req)
{
    const gs_gateway_code_t *code = &req->gw->opts.code;
    enum MHD_Result ret;
    json_t *err = NULL;
    const char *kind;
    gs_decoded_t d;
    int rc;

    if (code->load == NULL)
        return gs__respond_error(req, GS_HTTP_ENOT_IMPLEMENTED,
                                 "this gateway runs no behaviours sent as source code");
    if (decode_code(req, true, &d, &ret) < 0)
        goto out;
    rc = code->load(code->ctx, d.name, d.vsn, d.source, d.source_len, d.limits, &err);
    switch (rc) {
    case 0:
        if ((rc = persist_behaviour(req, d.name)) != 0) {
            code->remove(code->ctx, d.name); /* not stored: not loaded either */
            ret = gs__respond_runtime_error(req, rc, NULL);
            break;
        }
        gs__log(req->gw, GS_LOG_INFO, "http: loaded behaviour \"%s\"", d.name);
        ret = gs__respond_json(req, MHD_HTTP_CREATED, summary(req, d.name));
        break;
    case GS_EEXIST:
        kind = gs_behaviour_kind(req->gw->rt, d.name);
        if (kind != NULL && strcmp(kind, "lua") == 0)
            ret = gs__respond_error(req, GS_EEXIST,
                                    "a Lua behaviour \"%s\" is loaded already; PUT "
                                    "/behaviours/%s upgrades it",
                                    d.name, d.name);
        else
            ret = gs__respond_error(req, GS_EEXIST, "\"%s\" is taken by a %s behaviour", d.name,
                                    kind != NULL ? kind : "registered");
        json_decref(err);
        break;
    case GS_EINVAL:
        ret = respond_bad_source(req, rc, err);
        break;
    default:
        json_decref(err);
        ret = gs__respond_runtime_error(req, rc, NULL);
    }
out:
    gs__decoded_close(&d);
    gs__body_free(req);
    return ret;
}

/* ---------------------------------------------------------------------------------------- */
/* GET /behaviours/NAME                                                                       */
/* ---------------------------------------------------------------------------------------- */

/* The registry's entry for name (new reference), or NULL. */
static json_t *registry_entry(gs_runtime_t *rt, const char *name)
{
    json_t *all = gs_behaviours_json(rt), *entry = NULL, *b;
    size_t i;

    json_array_foreach(all, i, b)
    {
        if (strcmp(json_string_value(json_object_get(b, "name")), name) == 0) {
            entry = json_incref(b);
            break;
        }
    }
    json_decref(all);
    return entry;
}

enum MHD_Result gs__handle_behaviour_show(gs_request_t *req)
{
    const gs_gateway_code_t *code = &req->gw->opts.code;
    gs_runtime_t *rt = req->gw->rt;
    json_t *entry = registry_entry(rt, req->param), *desc;
    const gs_behaviour_t *b;

    if (entry == NULL)
        return gs__respond_error(req, GS_ENOBEHAVIOUR, "no behaviour is registered under \"%s\"",
                                 req->param);
    desc = code->describe != NULL ? code->describe(code->ctx, req->param) : NULL;
    if (desc != NULL) {
        json_object_update(entry, desc); /* source, limits, loaded_at, servers */
        json_decref(desc);
    } else if ((b = gs_behaviour_find(rt, req->param)) != NULL) {
        json_object_set_new(entry, "servers", gs_behaviour_servers(rt, b));
    }
    return gs__respond_json(req, MHD_HTTP_OK, entry);
}

/* ---------------------------------------------------------------------------------------- */
/* PUT /behaviours/NAME: a hot upgrade                                                        */
/* ---------------------------------------------------------------------------------------- */

static void on_upgraded(json_t *outcomes, void *arg)
{
    gs__request_on_reply(0, outcomes, arg);
}

static int outcome_cmp(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;

    return strcmp(json_string_value(json_object_get(x, "server")),
                  json_string_value(json_object_get(y, "server")));
}

/* outcomes (taken) sorted by server name, and how many went each way. New reference. */
static json_t *sorted_outcomes(json_t *outcomes, size_t *ok, size_t *failed)
{
    size_t n = json_array_size(outcomes), i;
    json_t **v = n > 0 ? calloc(n, sizeof(*v)) : NULL, *out = json_array();

    *ok = *failed = 0;
    for (i = 0; i < n && v != NULL; i++)
        v[i] = json_array_get(outcomes, i);
    if (v != NULL)
        qsort(v, n, sizeof(*v), outcome_cmp);
    for (i = 0; i < n; i++) {
        json_t *o = v != NULL ? v[i] : json_array_get(outcomes, i);
        if (json_is_true(json_object_get(o, "ok")))
            (*ok)++;
        else
            (*failed)++;
        json_array_append(out, o);
    }
    free(v);
    json_decref(outcomes);
    return out;
}

static enum MHD_Result finish_upgrade(gs_request_t *req)
{
    json_t *err = req->extra, *body, *servers;
    size_t ok, failed;

    req->extra = NULL;
    if (req->status == GS_EINVAL)
        return respond_bad_source(req, req->status, err);
    json_decref(err);
    if (req->status < 0)
        return gs__respond_runtime_error(req, req->status, NULL);
    /* The new code runs now; stored, it is also what the next start loads. A store that
     * cannot take it is said, though the upgrade itself happened. */
    int stored = persist_behaviour(req, req->param);
    if (stored != 0) {
        json_decref(req->result);
        req->result = NULL;
        return gs__respond_error(req, stored,
                                 "the upgrade ran, but the new source could not be stored: "
                                 "a restart would load the previous one");
    }
    servers = sorted_outcomes(req->result, &ok, &failed);
    req->result = NULL;
    gs__log(req->gw, GS_LOG_INFO,
            "http: upgraded behaviour \"%s\": %zu servers upgraded, %zu kept "
            "their code",
            req->param, ok, failed);
    body = summary(req, req->param);
    json_object_set_new(body, "upgraded", json_integer((json_int_t)ok));
    json_object_set_new(body, "failed", json_integer((json_int_t)failed));
    json_object_set_new(body, "outcomes", servers);
    return gs__respond_json(req, MHD_HTTP_OK, body);
}

static int start_upgrade(gs_request_t *req, void *ctx)
{
    const gs_gateway_code_t *code = &req->gw->opts.code;
    gs_decoded_t *d = ctx;
    json_t *err = NULL;
    int rc = code->upgrade(code->ctx, req->param, d->vsn, d->source, d->source_len, d->limits,
                           d->extra, on_upgraded, req, &err);

    req->extra = err; /* for finish_upgrade: Lua's message when the source does not load */
    return rc;
}

enum MHD_Result gs__handle_behaviour_upgrade(gs_request_t *req)
{
    enum MHD_Result ret;
    gs_decoded_t d;

    memset(&d, 0, sizeof(d));
    if (check_writable(req, req->param, &ret) < 0 || decode_code(req, false, &d, &ret) < 0)
        goto out;
    ret = gs__request_defer(req, GS_HOLD_CONTROL, finish_upgrade, start_upgrade, &d);
out:
    gs__decoded_close(&d);
    gs__body_free(req);
    return ret;
}

/* ---------------------------------------------------------------------------------------- */
/* DELETE /behaviours/NAME                                                                    */
/* ---------------------------------------------------------------------------------------- */

enum MHD_Result gs__handle_behaviour_delete(gs_request_t *req)
{
    const gs_gateway_code_t *code = &req->gw->opts.code;
    enum MHD_Result ret;
    json_t *desc, *servers;
    char *names;
    int rc;

    if (check_writable(req, req->param, &ret) < 0)
        return ret;
    rc = code->remove(code->ctx, req->param);
    if (rc == 0 && (rc = gs__persist_wait(req->gw, GS_STORE_BEHAVIOURS, req->param, NULL)) != 0)
        return gs__respond_error(req, rc,
                                 "the behaviour was removed, but the store still has it: a "
                                 "restart would load it again");
    if (rc == 0) {
        gs__log(req->gw, GS_LOG_INFO, "http: deleted behaviour \"%s\"", req->param);
        return gs__respond_json(req, MHD_HTTP_OK, json_pack("{s:b}", "ok", 1));
    }
    if (rc != GS_EINUSE)
        return gs__respond_runtime_error(req, rc, NULL);
    /* Say which servers: they must be stopped first, as OTP purges no code a process runs. */
    desc = code->describe(code->ctx, req->param);
    servers = json_incref(json_object_get(desc, "servers"));
    json_decref(desc);
    if (servers == NULL)
        servers = json_array();
    names = json_dumps(servers, JSON_COMPACT);
    ret = gs__respond_json(req, gs__error_status(GS_EINUSE),
                           json_pack("{s:s,s:s+,s:o}", "error", gs__error_code(GS_EINUSE),
                                     "message", "servers run this behaviour; stop them first: ",
                                     names != NULL ? names : "[]", "servers", servers));
    free(names);
    return ret;
}
