/*
 * upgrade.c: hot code upgrade (OTP's code_change): every server that runs one version of a
 * behaviour switches to another, each between two of its own messages.
 *
 * API:
 *   gs_behaviour_upgrade   snapshot the named servers that run `from`; post each one a
 *                          GS__MSG_UPGRADE (past the mailbox limit: it is the system's own
 *                          message) carrying its gs__upgrade_req_t
 *   gs__server_upgrade     on the server's thread (server.c dispatches it): to->code_change
 *                          turns the state; on success the incarnation and its child switch
 *                          to `to` (restarts then run it too); on failure nothing changes
 *   upgrade_done           each server's outcome, gathered; the last one calls the callback
 * A server whose incarnation died before the message reached it is looked up again (its
 * restart runs `from` too, since the child had not switched yet), a few times, then reported.
 */
#include "runtime_internal.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>

#define UPGRADE_TRIES 100

static void upgrade_unref(gs__upgrade_t *up)
{
    /* acq_rel: the last one out sees every outcome appended */
    if (atomic_fetch_sub_explicit(&up->refs, 1, memory_order_acq_rel) != 1)
        return;
    json_decref(up->extra);
    json_decref(up->outcomes);
    pthread_mutex_destroy(&up->mu);
    free(up);
}

/* One more answer is in; the last one hands the outcomes to the callback. */
static void upgrade_answered(gs__upgrade_t *up)
{
    /* acq_rel: the one that brings it to zero sees every outcome before it */
    if (atomic_fetch_sub_explicit(&up->pending, 1, memory_order_acq_rel) != 1)
        return;
    json_t *outcomes = up->outcomes;
    up->outcomes = NULL;
    up->cb(outcomes != NULL ? outcomes : json_array(), up->arg);
}

static void add_outcome(gs__upgrade_t *up, const char *server, json_t *outcome)
{
    if (outcome == NULL)
        return;
    json_object_set_new(outcome, "server", json_string(server));
    pthread_mutex_lock(&up->mu);
    json_array_append_new(up->outcomes, outcome);
    pthread_mutex_unlock(&up->mu);
}

static int post(gs__upgrade_req_t *req);

static void upgrade_done(int status, json_t *result, void *arg)
{
    gs__upgrade_req_t *req = arg;
    gs__upgrade_t *up = req->up;

    if (status == GS_ENOSERVER && ++req->tries < UPGRADE_TRIES && post(req) == 0) {
        /* That incarnation died first; its successor got the message. */
        json_decref(result);
        return;
    }
    if (status != 0) {
        json_decref(result);
        result = json_pack("{s:s}", "error",
                           status == GS_ENOSERVER ? "not_running" : gs_err_name(status));
    }
    add_outcome(up, req->child->name, result);
    gs__child_unref(req->child);
    free(req);
    upgrade_answered(up);
    upgrade_unref(up);
}

/* Post req to its child's current incarnation. 0, or an error (req then untouched). */
static int post(gs__upgrade_req_t *req)
{
    gs__child_t *c = req->child;

    for (int i = 0; i < UPGRADE_TRIES; i++) {
        gs__child_lock(c);
        gs_server_t *s = c->current != NULL ? gs__server_ref(c->current) : NULL;
        gs__child_unlock(c);
        if (s == NULL)
            return GS_ENOSERVER;
        gs__call_t *call = gs__call_create(c->rt, GS__MSG_UPGRADE, NULL, upgrade_done, req);
        int rc = gs__server_push(s, &call->msg, true);
        gs_server_unref(s);
        if (rc == 0)
            return 0;                 /* the mailbox owns the call's one reference now */
        atomic_store(&call->done, 1); /* never called back */
        gs__call_unref(call);
        sched_yield(); /* it is dying: let its supervisor finish */
    }
    return GS_ENOSERVER;
}

int gs_behaviour_upgrade(gs_runtime_t *rt, const gs_behaviour_t *from, const gs_behaviour_t *to,
                         json_t *extra, gs_upgrade_cb cb, void *arg)
{
    if (rt == NULL || from == NULL || to == NULL || cb == NULL || to->init == NULL)
        return GS_EINVAL;
    if (atomic_load(&rt->shutting_down))
        return GS_ESHUTDOWN;
    gs__upgrade_t *up = calloc(1, sizeof(*up));
    if (up == NULL)
        return GS_ENOMEM;
    atomic_init(&up->refs, 1);
    atomic_init(&up->pending, 1); /* the posting itself, dropped last */
    up->rt = rt;
    up->from = from;
    up->to = to;
    up->extra = extra != NULL ? json_deep_copy(extra) : json_null();
    up->cb = cb;
    up->arg = arg;
    up->outcomes = json_array();
    pthread_mutex_init(&up->mu, NULL);

    size_t n = 0;
    gs__child_t **all = gs__registry_snapshot(rt, &n);
    for (size_t i = 0; i < n; i++) {
        gs__child_t *c = all[i];
        if (atomic_load_explicit(&c->b, memory_order_acquire) == from) {
            gs__upgrade_req_t *req = calloc(1, sizeof(*req));
            if (req == NULL) {
                add_outcome(up, c->name, json_pack("{s:s}", "error", "out_of_memory"));
            } else {
                req->up = up;
                req->child = c;
                gs__child_ref(c);
                atomic_fetch_add_explicit(&up->refs, 1, memory_order_relaxed);
                atomic_fetch_add_explicit(&up->pending, 1, memory_order_relaxed);
                if (post(req) != 0) {
                    add_outcome(up, c->name, json_pack("{s:s}", "error", "not_running"));
                    gs__child_unref(c);
                    free(req);
                    atomic_fetch_sub_explicit(&up->pending, 1, memory_order_relaxed);
                    atomic_fetch_sub_explicit(&up->refs, 1, memory_order_relaxed);
                }
            }
        }
        gs__child_unref(c);
    }
    free(all);
    upgrade_answered(up); /* the posting's share: the callback runs once every answer is in */
    upgrade_unref(up);
    return 0;
}
