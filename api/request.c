/*
 * request.c: the one way a handler defers its answer to the runtime (the hold / start /
 * complete protocol), so that no handler repeats it by hand or can get it half right.
 *
 * API:
 *   gs__request_defer         hold (counted against max_held_calls for a /call: 503
 *                             overloaded past it), start the runtime request, then answer at
 *                             once if the outcome is in, else suspend the connection
 *   gs__request_on_reply/done the runtime's completion, any thread: store the outcome and
 *                             resume the connection if it was suspended
 *   gs__request_resumed       the access handler, called again after the resume: req->finish
 *                             answers
 *   gs__request_abandon       the request ended while held (its daemon stopped)
 *
 * A suspended /call's socket is watched for its client's hang-up (watch.c) from just before
 * the suspend is published (the CAS to SUSPENDED) until just before the resume, by whichever
 * thread resumes: so the completion that sees SUSPENDED always finds the socket watched, and
 * the descriptor is never watched once libmicrohttpd may close it.
 *
 * Ordering of a deferral: req->phase (STARTED -> SUSPENDED or DONE) decides between the HTTP
 * thread and the completion. The completion resumes only a connection the handler has
 * suspended; a completion that lands between the handler's check and its suspend finds
 * STARTED, so the handler's CAS fails and it resumes the connection itself ("chained" suspend
 * and resume, supported since libmicrohttpd 0.9.54).
 *
 * Suspended connections never time out and do not notice disconnects. Every runtime request a
 * handler defers on carries a timeout the runtime enforces (calls, state reads) or is certain to
 * complete (stops), so every held connection is resumed; a client that went away is noticed on
 * the write after resume, and the request is freed in the completed callback. A held /call's
 * client that goes away is noticed sooner, by watch.c, which abandons its call so that the
 * resume comes at once.
 */
#include "api_internal.h"

/* A deferred request's progress; the completion and the HTTP thread both move it. */
typedef enum { PHASE_STARTED = 1, PHASE_SUSPENDED, PHASE_DONE } gs_phase_t;

/* ---------------------------------------------------------------------------------------- */
/* Deferring to the runtime                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* Count req in; false (nothing counted) when it is a /call and max_held_calls are held. */
static bool hold(gs_request_t *req, gs_hold_t kind)
{
    gs_gateway_t *gw = req->gw;

    /* Relaxed: a bound and a gauge, not a publication; overshooting by a racing thread is
     * undone at once. */
    if (kind == GS_HOLD_CALL &&
        atomic_fetch_add_explicit(&gw->held_calls, 1, memory_order_relaxed) >=
            gw->opts.max_held_calls) {
        atomic_fetch_sub_explicit(&gw->held_calls, 1, memory_order_relaxed);
        return false;
    }
    atomic_fetch_add_explicit(&gw->held, 1, memory_order_relaxed);
    req->counted = kind == GS_HOLD_CALL;
    return true;
}

/* The held request is over (answered, or its connection gone): count it out. */
static void unhold(gs_request_t *req)
{
    atomic_fetch_sub_explicit(&req->gw->held, 1, memory_order_relaxed); /* see hold */
    if (req->counted)
        atomic_fetch_sub_explicit(&req->gw->held_calls, 1, memory_order_relaxed);
}

static enum MHD_Result finish_held(gs_request_t *req)
{
    unhold(req);
    return req->finish(req);
}

enum MHD_Result gs__request_resumed(gs_request_t *req)
{
    req->held = false;
    return finish_held(req);
}

void gs__request_abandon(gs_request_t *req)
{
    if (req->held)
        unhold(req);
    req->held = false;
}

/* Store the outcome and, if the connection was suspended, resume it. Exactly once per
 * deferral; req must not be touched by the caller afterwards. result: taken. */
static void complete(gs_request_t *req, int status, json_t *result)
{
    /* Only the exchange below lets the HTTP thread read these (or MHD's resume, which takes
     * the daemon's mutex after it). */
    req->status = status;
    req->result = result;
    /* acq_rel: releases status and result; acquires the suspend when it came first */
    if (atomic_exchange_explicit(&req->phase, PHASE_DONE, memory_order_acq_rel) ==
        PHASE_SUSPENDED) {
        gs__watch_remove(req->gw->watch, req);
        MHD_resume_connection(req->conn);
    }
}

void gs__request_on_reply(int status, json_t *result, void *arg)
{
    complete(arg, status, result);
}

void gs__request_on_done(int status, void *arg)
{
    complete(arg, status, NULL);
}

enum MHD_Result gs__request_defer(gs_request_t *req, gs_hold_t kind, gs_finish_fn finish,
                                  gs_start_fn start, void *ctx)
{
    int expected = PHASE_STARTED;
    int rc;

    if (!hold(req, kind))
        return gs__respond_error(req, GS_EOVERLOADED, "%u calls are held open already; retry later",
                                 req->gw->opts.max_held_calls);
    req->finish = finish;
    atomic_init(&req->phase, PHASE_STARTED);
    rc = start(req, ctx);
    if (rc < 0)
        complete(req, rc, NULL); /* refused up front: the callback will never run */
    /* acquire: pairs with the completion's exchange, so status and result are visible */
    if (atomic_load_explicit(&req->phase, memory_order_acquire) == PHASE_DONE)
        return finish_held(req); /* answered already (often on this very thread) */
    req->held = true;
    MHD_suspend_connection(req->conn);
    gs__watch_add(req->gw->watch, req);
    /* acq_rel: publishes the suspend to a completion that comes later; on failure, acquires
     * the outcome of one that came meanwhile, between the check above and here: a suspend
     * followed at once by a resume is allowed (libmicrohttpd >= 0.9.54). */
    if (!atomic_compare_exchange_strong_explicit(&req->phase, &expected, PHASE_SUSPENDED,
                                                 memory_order_acq_rel, memory_order_acquire)) {
        gs__watch_remove(req->gw->watch, req);
        MHD_resume_connection(req->conn);
    }
    return MHD_YES;
}
