/*
 * server.c: one server incarnation (a pid) from start to death: its mailbox, the dispatch of
 * each message to the behaviour's callbacks, and what happens to callers when it dies.
 *
 * API:
 *   gs__server_create   an incarnation of a child (supervisor.c's gs_start and restarts)
 *   gs__server_init     init runs on the calling thread while `scheduled` is held at 1, so
 *                       that messages sent during init wait until it returned.
 *   gs__server_push     reserve a mailbox slot (GS_EOVERLOADED past the limit), link the
 *                       message, and put the server on a run queue if it was idle.
 *   gs__server_run      a turn: at most `batch` messages, then yield (a scheduler's, or
 *                       one message on a calling thread outside the runtime).
 *   gs__server_die      terminate, fail held and queued calls, release the state.
 *   gs_stop_async       a STOP message that is handled in mailbox order.
 *   system messages     (:sys) suspend, resume, replace_state, state requests, stop and
 *                       upgrade: in mailbox order, and the only ones handled while suspended;
 *                       a suspended server keeps the others it pops in `saved`, in order, and
 *                       handles them first once resumed.
 *   gs__server_kill     a stop's timeout passed: the server dies with "killed" as soon as the
 *                       handler it runs returns (its terminate runs with "killed", only to
 *                       release the state: see gs_stop_options_t).
 * A server's callbacks only ever run on the thread that flipped `scheduled` from 0 to 1 (or
 * on the thread running init), which is what makes "one message at a time" true without a
 * lock per server.
 */
#include "runtime_internal.h"

#include <genserv/message.h>
#include <genserv/store.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------- */
/* Children and incarnations                                                                  */
/* ---------------------------------------------------------------------------------------- */

gs_server_t *gs__server_create(gs__child_t *child)
{
    size_t size = (sizeof(gs_server_t) + GS__CACHELINE - 1) / GS__CACHELINE * GS__CACHELINE;
    gs_server_t *s = aligned_alloc(GS__CACHELINE, size);
    if (s == NULL)
        return NULL;
    memset(s, 0, sizeof(*s));
    gs__mpsc_init(&s->mailbox, &s->mailbox_tail);
    atomic_init(&s->mailbox_len, 0);
    atomic_init(&s->refs, 1);
    atomic_init(&s->scheduled, 1); /* held until init returned */
    atomic_init(&s->status, GS__STARTING);
    gs__child_ref(child);
    s->child = child;
    s->rt = child->rt;
    s->b = atomic_load_explicit(&child->b, memory_order_acquire); /* see gs__server_upgrade */
    s->mailbox_limit = (int64_t)child->opts.mailbox_limit;
    return s;
}

gs_server_t *gs_server_ref(gs_server_t *s)
{
    return gs__server_ref(s);
}

static void server_free(gs_server_t *s)
{
    int status = atomic_load(&s->rt->shutting_down) ? GS_ESHUTDOWN : GS_ENOSERVER;
    gs__server_drain(s, status, NULL);
    gs__child_unref(s->child);
    free(s);
}

void gs_server_unref(gs_server_t *s)
{
    if (s == NULL)
        return;
    /* acq_rel: the freeing thread sees every write made by the other holders */
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        server_free(s);
}

const char *gs_server_name(const gs_server_t *s)
{
    return s->child->name;
}

gs_runtime_t *gs_server_runtime(const gs_server_t *s)
{
    return s->rt;
}

void gs__live_add(gs_runtime_t *rt, int delta)
{
    /* acq_rel: the waiter in gs__live_wait sees the dead servers' writes. The lock is only
     * taken to wake it, when the count reaches zero (not on every start and death). */
    int64_t before = atomic_fetch_add_explicit(&rt->live, (int64_t)delta, memory_order_acq_rel);
    if (before + delta == 0) {
        uv_mutex_lock(&rt->live_lock);
        uv_cond_broadcast(&rt->live_cond);
        uv_mutex_unlock(&rt->live_lock);
    }
}

void gs__live_wait(gs_runtime_t *rt)
{
    uv_mutex_lock(&rt->live_lock);
    while (atomic_load(&rt->live) > 0)
        uv_cond_wait(&rt->live_cond, &rt->live_lock);
    uv_mutex_unlock(&rt->live_lock);
}

/* ---------------------------------------------------------------------------------------- */
/* Mailbox                                                                                    */
/* ---------------------------------------------------------------------------------------- */

int gs__server_reserve(gs_server_t *s, bool force)
{
    /* acquire: pairs with the release store of GS__DEAD in gs__server_die */
    if (atomic_load_explicit(&s->status, memory_order_acquire) == GS__DEAD)
        return GS_ENOSERVER;
    /* seq_cst: ordered before this producer's later load of `scheduled`, so that either the
     * consumer's recheck of the length sees this message or we see it unscheduled. */
    int64_t before = atomic_fetch_add(&s->mailbox_len, 1);
    if (!force && before >= s->mailbox_limit) {
        atomic_fetch_sub(&s->mailbox_len, 1);
        return GS_EOVERLOADED;
    }
    return 0;
}

/* The caller runs the turn (see gs_runtime_options_t.schedulers_only): for calls, state
 * requests and casts acknowledged once handled, from threads outside the runtime only. A
 * runtime thread must not (the timer thread runs no handlers; a scheduler has its own
 * queue); a plain cast's sender does not wait for the handler anyway; a stop runs terminate,
 * which may take long, and its caller's timeout must hold. */
static bool caller_runs(const gs_server_t *s, const gs__msg_t *m)
{
    /* A cast or send whose sender waits until it was handled (gs_send_options_t.handled: an
     * HTTP "ack": "handled") is a call in all but its reply: the same reasoning holds. */
    bool waits = m->kind == GS__MSG_CALL || m->kind == GS__MSG_GET_STATE ||
                 (m->meta != NULL && m->meta->handled != NULL);
    return waits && !gs__tls.runtime_thread && !s->rt->opts.schedulers_only;
}

static void run_inline(gs_server_t *s)
{
    gs__tls_t outside = gs__tls;
    /* For the turn this thread is a scheduler without a queue: handlers see gs_self(), and
     * what they send is queued for the schedulers rather than run here in turn. One message
     * only: the caller's thread has work of its own (an HTTP thread, its other connections),
     * and whatever else is waiting goes to a scheduler. (Issue 17 measured 8, to answer the
     * other HTTP thread's call waiting behind: no difference at 64 connections, A/B three
     * runs each; 16 cost 15% of POST /call's throughput in an earlier session.) */
    gs__tls.runtime_thread = true;
    atomic_fetch_add_explicit(&s->rt->stats.inline_turns, 1, memory_order_relaxed); /* counter */
    gs__server_run(s, 1);
    gs__tls = outside;
}

void gs__server_push_reserved(gs_server_t *s, gs__msg_t *m)
{
    bool inline_turn = caller_runs(s, m); /* before the push: m may be freed right after */
    if (gs__tls.current != NULL)
        gs__tls.sends++; /* a send is work of the sender's turn too (gs__server_run) */
    gs__mpsc_push(&s->mailbox, &m->node);
    /* seq_cst load (see gs__server_reserve); the exchange decides which thread schedules */
    if (atomic_load(&s->scheduled) == 0 && atomic_exchange(&s->scheduled, 1) == 0) {
        gs_server_ref(s); /* the run queue's reference, which the turn gives back */
        if (inline_turn)
            run_inline(s);
        else
            gs__sched_ready(s->rt, s);
    }
}

int gs__server_push(gs_server_t *s, gs__msg_t *m, bool force)
{
    int rc = gs__server_reserve(s, force);
    if (rc == 0)
        gs__server_push_reserved(s, m);
    return rc;
}

void gs__msg_discard(gs_runtime_t *rt, gs__msg_t *m, int status, json_t *reason)
{
    if (m->kind == GS__MSG_KILL) { /* a wake-up, not a message anyone sent */
        gs__msg_free(m);
        return;
    }
    if (m->kind == GS__MSG_CAST || m->kind == GS__MSG_INFO || m->kind == GS__MSG_TIMEOUT) {
        /* A result's timeout is the server's own, not a message anyone sent: not counted. */
        if (m->kind != GS__MSG_TIMEOUT)
            atomic_fetch_add_explicit(&rt->stats.dropped_messages, 1,
                                      memory_order_relaxed); /* counter */
        if (m->meta != NULL && m->meta->handled != NULL) {
            m->meta->handled(status == GS_ESHUTDOWN ? status : GS_ENOSERVER, m->meta->handled_arg);
            m->meta->handled = NULL;
        }
        json_decref(m->payload);
        gs__msg_free(m);
        return;
    }
    gs__call_t *c = gs__container_of(m, gs__call_t, msg);
    json_decref(c->msg.payload);
    c->msg.payload = NULL;
    if (m->kind == GS__MSG_CALL)
        gs__call_complete(rt, c, status, gs__json_copy(reason), false);
    else /* a stop or a state request that the server did not live to see */
        gs__call_complete(rt, c, status == GS_ESHUTDOWN ? status : GS_ENOSERVER, NULL, false);
    gs__call_unref(c);
}

void gs__server_drain(gs_server_t *s, int status, json_t *reason)
{
    gs__qnode_t *n;
    /* First what a suspension kept: it came first. */
    while ((n = s->saved_head) != NULL) {
        s->saved_head = atomic_load_explicit(&n->next, memory_order_relaxed); /* ours alone */
        s->saved_n--;
        atomic_fetch_sub_explicit(&s->mailbox_len, 1, memory_order_relaxed); /* as below */
        gs__msg_discard(s->rt, (gs__msg_t *)n, status, reason);
    }
    s->saved_tail = NULL;
    while ((n = gs__mpsc_pop(&s->mailbox, &s->mailbox_tail)) != NULL) {
        atomic_fetch_sub_explicit(&s->mailbox_len, 1, memory_order_relaxed); /* own recheck
                                                                                is seq_cst */
        gs__msg_discard(s->rt, (gs__msg_t *)n, status, reason);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Start and init                                                                             */
/* ---------------------------------------------------------------------------------------- */

/* Let producers schedule s again, and schedule it now if messages arrived meanwhile or a
 * handle_continue is due (init asked for one). */
static void release_scheduling(gs_server_t *s)
{
    if (s->cont != NULL && !s->exited) {
        gs_server_ref(s); /* still scheduled: the turn runs handle_continue first */
        gs__sched_enqueue(s->rt, s);
        return;
    }
    atomic_store(&s->scheduled, 0); /* seq_cst: see gs__server_reserve */
    if (atomic_load(&s->mailbox_len) > 0 && atomic_exchange(&s->scheduled, 1) == 0) {
        gs_server_ref(s);
        gs__sched_enqueue(s->rt, s);
    }
}

/* The server is dead: callers waiting on it fail, its state goes. run_terminate is false when
 * init failed (there is no state to terminate, as in OTP). reason: borrowed. */
static void server_die(gs_server_t *s, json_t *reason, int fail_status, bool run_terminate)
{
    gs_runtime_t *rt = s->rt;
    /* release: a producer that sees DEAD also sees that no callback will run any more */
    atomic_store_explicit(&s->status, GS__DEAD, memory_order_release);
    s->exited = true;
    if (run_terminate && s->b->terminate != NULL) {
        gs_server_t *saved = gs__tls.current;
        gs__tls.current = s;
        s->b->terminate(s, reason, s->state);
        gs__tls.current = saved;
    }
    s->state = NULL;
    json_decref(s->cont);
    s->cont = NULL;
    if (s->timeout_armed) {
        gs_cancel_timer(rt, s->timeout_ref, NULL);
        s->timeout_armed = false;
    }
    gs__held_fail_server(rt, s, fail_status, reason);
    gs__server_drain(s, fail_status, reason);
    gs__monitors_down(s, reason); /* after the callers: OTP sends DOWN once the process is gone */
    atomic_fetch_add_explicit(&s->child->handled_before,
                              atomic_load_explicit(&s->handled, memory_order_relaxed),
                              memory_order_relaxed); /* counters */
    atomic_store_explicit(&s->handled, 0, memory_order_relaxed);
    gs__live_add(rt, -1);
}

void gs__server_die(gs_server_t *s, json_t *reason, int fail_status)
{
    server_die(s, reason, fail_status, true);
}

static json_t *apply_next(gs_server_t *s, gs_result_t *r);

int gs__server_init(gs_server_t *s, json_t **reason)
{
    gs__live_add(s->rt, 1);
    gs__child_t *c = s->child;
    void *state = NULL;
    json_t *why = NULL;
    gs_server_t *saved = gs__tls.current;
    gs__tls.current = s;
    s->in_init = true;
    /* A durable server with a stored state is restored instead (durable.c). */
    int rc = c->dur != NULL ? gs__durable_restore(s, &state, &why) : 0;
    if (rc == 0)
        rc = s->b->init(s, c->args, &state, &why);
    else
        rc = rc > 0 ? 0 : -1;
    s->in_init = false;
    gs__tls.current = saved;
    if (rc != 0) {
        gs_result_t then = s->init_then;
        json_decref(then.arg);
        bool ignore = rc == GS_INIT_IGNORE;
        json_t *died = ignore        ? json_string("normal")
                       : why != NULL ? json_incref(why)
                                     : json_string("init_failed");
        server_die(s, died, ignore ? GS_ESTOPPED : GS_ECRASHED, false);
        json_decref(died);
        if (ignore) {
            json_decref(why);
            why = NULL;
        }
        *reason = why; /* as init gave it: possibly NULL */
        if (c->dur != NULL)
            json_decref(gs__durable_after(s)); /* what init sent before refusing goes out */
        release_scheduling(s); /* a message that raced in is drained by the scheduler */
        return ignore ? GS_EIGNORED : GS_EINIT;
    }
    s->state = state;
    s->started_ms = gs__now_ms();
    gs__server_measure(s, NULL); /* its memory shows from the start, not after a message */
    atomic_store_explicit(&s->status, GS__RUNNING, memory_order_release); /* see reserve */
    /* {:ok, state, X}: what init asked for once it returned. A continue without
     * handle_continue is a bad return, as from a handler: the next turn crashes it. */
    gs_result_t then = s->init_then;
    s->init_then = (gs_result_t){0};
    json_t *cannot = apply_next(s, &then);
    if (cannot != NULL) /* its timeout could not be armed: the first turn crashes it */
        s->cont = json_pack("[s, o]", "$crash", cannot);
    if (c->dur != NULL) {
        /* The initial state is stored, and what init sent leaves once it is. A state that
         * cannot be stored crashes the server in its first turn, as a bad next action does. */
        gs_server_t *saved_current = gs__tls.current;
        gs__tls.current = s;
        json_t *bad = gs__durable_after(s);
        gs__tls.current = saved_current;
        if (bad != NULL) {
            json_decref(s->cont);
            s->cont = json_pack("[s, o]", "$crash", bad);
        }
    }
    release_scheduling(s);
    return 0;
}

void gs_init_then(gs_server_t *self, gs_result_t next)
{
    if (self == NULL || !self->in_init || gs__tls.current != self) {
        json_decref(next.arg);
        return;
    }
    json_decref(self->init_then.arg);
    self->init_then = next;
}

const gs_start_options_t *gs_server_options(const gs_server_t *s)
{
    return &s->child->opts;
}

const gs_behaviour_t *gs_server_behaviour(const gs_server_t *s)
{
    return s->b;
}

/* ---------------------------------------------------------------------------------------- */
/* Dispatch                                                                                   */
/* ---------------------------------------------------------------------------------------- */

static json_t *bad_return(const char *what)
{
    return json_pack("[s, s]", "bad_return_value", what);
}

/*
 * What a reply or noreply result asks for before the next message (r->arg is taken). Returns
 * a stop reason (new) when it cannot be done, else NULL. Running thread only.
 */
static json_t *apply_next(gs_server_t *s, gs_result_t *r)
{
    switch (r->next) {
    case GS_NEXT_NONE:
        break;
    case GS_NEXT_CONTINUE:
        /* Run before the next message; without handle_continue the turn crashes it. */
        json_decref(s->cont);
        s->cont = r->arg != NULL ? r->arg : json_null();
        r->arg = NULL;
        break;
    case GS_NEXT_TIMEOUT:
        if (r->timeout_ms < 0)
            return bad_return("timeout");
        s->timeout_gen++;
        if (gs__send_timeout(s, (uint64_t)r->timeout_ms, &s->timeout_ref) != 0)
            return json_pack("[s, s]", "system_limit", "timers");
        s->timeout_armed = true;
        break;
    case GS_NEXT_HIBERNATE:
        if (s->b->hibernate != NULL)
            s->b->hibernate(s, &s->state);
        break;
    default:
        return bad_return("next");
    }
    json_decref(r->arg);
    r->arg = NULL;
    return NULL;
}

/* A message arrived: a result's pending timeout no longer applies. */
static void timeout_disarm(gs_server_t *s)
{
    if (!s->timeout_armed)
        return;
    s->timeout_armed = false;
    s->timeout_gen++; /* a TIMEOUT already queued is stale now */
    gs_cancel_timer(s->rt, s->timeout_ref, NULL);
}

/* Apply a handle_cast/handle_info/handle_continue result. Returns the stop reason (new) or
 * NULL. */
static json_t *async_result(gs_server_t *s, gs_result_t r, const char *who)
{
    switch (r.action) {
    case GS_ACTION_NOREPLY:
        json_decref(r.reply);
        json_decref(r.reason);
        return apply_next(s, &r);
    case GS_ACTION_STOP:
        json_decref(r.reply);
        json_decref(r.arg);
        return r.reason != NULL ? r.reason : bad_return(who);
    default:
        json_decref(r.reply);
        json_decref(r.reason);
        json_decref(r.arg);
        return bad_return(who);
    }
}

/* Answer c with reply (taken): now, or for a durable server once its change committed. */
static void complete_reply(gs_server_t *s, gs__call_t *c, json_t *reply)
{
    if (s->child->dur == NULL) {
        gs__call_complete(s->rt, c, 0, reply, false);
        return;
    }
    gs__durable_answered(s, c, reply);
    gs__call_ref(c); /* the effect's */
    gs__durable_defer_reply(s, c, 0, reply);
}

/* Handle one call; returns the stop reason (new) or NULL. */
static json_t *dispatch_call(gs_server_t *s, gs__call_t *c)
{
    gs_runtime_t *rt = s->rt;
    const gs_behaviour_t *b = s->b;
    json_t *msg = c->msg.payload;
    c->msg.payload = NULL;
    json_t *stop = NULL;

    /* In the table before the handler runs: it may hand `from` to another thread that
     * replies before the handler even returns. A call that timed out while queued is still
     * handled (the server's state must see it), but nobody can reply to it any more. */
    /* The call ended before the handler could keep it (it timed out while queued, or in the
     * window below): if the handler keeps `from` anyway, it is told at once, since the
     * timeout could not tell it (it notifies only the holder it took out of the table). */
    bool ended_unheld = true;
    /* acquire: pairs with the exchange in gs__call_complete */
    if (atomic_load_explicit(&c->done, memory_order_acquire) == 0) {
        gs__call_tag(c, msg);
        gs__held_insert(rt, c, s);
        ended_unheld = false;
        /* A timeout that fired between the check above and the insert missed the call in the
         * table: see it done now and take it out again (the timeout's second look is the
         * other half of this handshake: call.c, timeout_fire). Whichever takes it out tells
         * the server. */
        if (atomic_load_explicit(&c->done, memory_order_acquire) != 0)
            ended_unheld = gs__held_remove(rt, c);
    }
    if (c->msg.meta != NULL && c->msg.meta->key != NULL && s->child->dur != NULL &&
        gs__durable_replay_call(s, c)) {
        gs__held_remove(rt, c);
        goto out; /* a retry: answered with what the first call was answered */
    }
    if (b->handle_call == NULL) {
        stop = json_pack("[s, O]", "bad_call", msg);
        goto out;
    }
    gs__tls.current_call = c;
    gs_result_t r = b->handle_call(s, s->state, msg, (gs_from_t){rt, c->id});
    gs__tls.current_call = NULL;
    switch (r.action) {
    case GS_ACTION_REPLY:
        json_decref(r.reason);
        if (r.reply == NULL) {
            json_decref(r.arg);
            stop = bad_return("handle_call");
            break;
        }
        gs__held_remove(rt, c); /* first: a woken caller sees held_calls without it */
        complete_reply(s, c, r.reply);
        stop = apply_next(s, &r);
        break;
    case GS_ACTION_NOREPLY:
        json_decref(r.reply);
        json_decref(r.reason);
        if (ended_unheld)
            gs__notify_caller_gone(s, c->id);
        stop = apply_next(s, &r);
        break;
    case GS_ACTION_STOP:
        json_decref(r.arg);
        if (r.reply != NULL) {
            gs__held_remove(rt, c);
            complete_reply(s, c, r.reply);
        }
        stop = r.reason != NULL ? r.reason : bad_return("handle_call");
        break;
    default:
        json_decref(r.reply);
        json_decref(r.reason);
        json_decref(r.arg);
        stop = bad_return("handle_call");
    }
out:
    json_decref(msg);
    return stop;
}

static void dispatch_stop(gs_server_t *s, gs__call_t *c)
{
    json_t *reason = c->msg.payload;
    c->msg.payload = NULL;
    s->child->stopping = true;
    gs__supervisor_exit(s, reason, !gs__reason_is_normal(reason));
    gs__call_complete(s->rt, c, 0, NULL, false);
}

static void dispatch_get_state(gs_server_t *s, gs__call_t *c)
{
    json_t *shown = gs__inspect_state(s);

    /* A read is when a fresh size is wanted; a sensitive one's "[redacted]" says nothing. */
    if (!s->b->sensitive && !s->child->opts.sensitive)
        gs__server_measure(s, shown);
    gs__call_complete(s->rt, c, 0, shown, false);
}

json_t *gs__server_upgrade(gs_server_t *s, const gs__upgrade_req_t *req)
{
    const gs__upgrade_t *up = req->up;
    json_t *reason = NULL;

    if (s->b != up->from)
        return json_pack("{s:s}", "error", "not_running_that_version");
    if (up->to->code_change != NULL) {
        void *state = s->state;
        json_t *extra = json_deep_copy(up->extra);
        gs_server_t *saved = gs__tls.current;
        gs__tls.current = s;
        int rc = up->to->code_change(s, up->from->vsn, &state, extra, &reason);
        gs__tls.current = saved;
        json_decref(extra);
        if (rc != 0) {
            json_t *out = json_pack("{s:o}", "error",
                                    reason != NULL ? reason : json_string("code_change_failed"));
            return out;
        }
        s->state = state;
    }
    s->b = up->to;
    /* release: readers of the child's code (status, events, restarts) see the new one whole */
    atomic_store_explicit(&s->child->b, up->to, memory_order_release);
    return json_pack("{s:b}", "ok", 1);
}

/* :sys.suspend and :sys.resume. A state_changed event tells watchers the status changed. */
static void dispatch_suspend(gs_server_t *s, gs__call_t *c, bool suspend)
{
    /* relaxed: this thread is the only writer; introspection reads a snapshot */
    atomic_store_explicit(&s->suspended, suspend ? 1 : 0, memory_order_relaxed);
    gs__call_complete(s->rt, c, 0, NULL, false);
    gs__emit(s->rt, GS_EVENT_STATE_CHANGED, s->child, NULL);
}

/* :sys.replace_state: the behaviour checks the new state; the caller gets the old one as
 * inspection shows it (redacted where the behaviour says so). */
static void dispatch_replace_state(gs_server_t *s, gs__call_t *c)
{
    json_t *next = c->msg.payload, *reason = NULL;
    c->msg.payload = NULL;

    if (s->b->replace_state == NULL) {
        gs__call_complete(s->rt, c, GS_ENOTSUP, NULL, false);
        goto out;
    }
    json_t *old = gs__inspect_state(s);
    void *state = s->state;
    int rc = s->b->replace_state(s, &state, next, &reason);
    if (rc != 0) {
        json_decref(old);
        gs__call_complete(s->rt, c, GS_EREFUSED, reason, false);
        goto out;
    }
    s->state = state;
    gs__call_complete(s->rt, c, 0, old, false);
out:
    json_decref(next);
}

/* A hot upgrade reached s (GS__MSG_UPGRADE): see gs__server_upgrade. */
static void dispatch_upgrade(gs_server_t *s, gs__call_t *c)
{
    gs__call_complete(s->rt, c, 0, gs__server_upgrade(s, c->arg), false);
}

static void dispatch(gs_server_t *s, gs__msg_t *m)
{
    const gs_behaviour_t *b = s->b;
    json_t *stop = NULL;

    /* Any message but an inspection, a suspension or a resume ends a result's timeout (a
     * TIMEOUT checks its own). */
    if (m->kind != GS__MSG_GET_STATE && m->kind != GS__MSG_TIMEOUT && m->kind != GS__MSG_SUSPEND &&
        m->kind != GS__MSG_RESUME && m->kind != GS__MSG_KILL)
        timeout_disarm(s);
    switch (m->kind) {
    case GS__MSG_CAST:
    case GS__MSG_INFO: {
        /* A retry of a message this durable server handled already is not handled again. */
        gs__msg_meta_t *meta = m->meta;
        m->meta = NULL;
        bool replay = meta != NULL && meta->key != NULL && s->child->dur != NULL &&
                      gs__durable_replay_send(s, meta->key);
        if (replay)
            ;
        else if (m->kind == GS__MSG_INFO) {
            if (b->handle_info != NULL)
                stop = async_result(s, b->handle_info(s, s->state, m->payload), "handle_info");
        } else if (b->handle_cast == NULL)
            stop = json_pack("[s, O]", "bad_cast", m->payload);
        else
            stop = async_result(s, b->handle_cast(s, s->state, m->payload), "handle_cast");
        json_decref(m->payload);
        gs__msg_free(m);
        if (meta != NULL)
            gs__msg_handled(s, meta, stop == NULL || gs__reason_is_normal(stop) ? 0 : GS_ECRASHED);
        break;
    }
    case GS__MSG_TIMEOUT: {
        /* The timeout of the generation still armed: nothing came first. */
        bool current =
            s->timeout_armed && (uint64_t)json_integer_value(m->payload) == s->timeout_gen;
        json_decref(m->payload);
        gs__msg_free(m);
        if (!current)
            return;
        s->timeout_armed = false;
        if (b->handle_info != NULL) {
            json_t *timeout = json_string("timeout");
            stop = async_result(s, b->handle_info(s, s->state, timeout), "handle_info");
            json_decref(timeout);
        }
        break;
    }
    case GS__MSG_CALL: {
        gs__call_t *c = gs__container_of(m, gs__call_t, msg);
        stop = dispatch_call(s, c);
        gs__call_unref(c);
        break;
    }
    case GS__MSG_STOP: {
        gs__call_t *c = gs__container_of(m, gs__call_t, msg);
        dispatch_stop(s, c);
        gs__call_unref(c);
        return;
    }
    case GS__MSG_GET_STATE: {
        gs__call_t *c = gs__container_of(m, gs__call_t, msg);
        dispatch_get_state(s, c);
        gs__call_unref(c);
        break;
    }
    case GS__MSG_UPGRADE: {
        gs__call_t *c = gs__container_of(m, gs__call_t, msg);
        dispatch_upgrade(s, c);
        gs__call_unref(c);
        break;
    }
    case GS__MSG_SUSPEND:
    case GS__MSG_RESUME: {
        gs__call_t *c = gs__container_of(m, gs__call_t, msg);
        dispatch_suspend(s, c, m->kind == GS__MSG_SUSPEND);
        gs__call_unref(c);
        break;
    }
    case GS__MSG_REPLACE_STATE: {
        gs__call_t *c = gs__container_of(m, gs__call_t, msg);
        dispatch_replace_state(s, c);
        gs__call_unref(c);
        break;
    }
    case GS__MSG_KILL: /* the run loop looks at `killed` before each message */
        gs__msg_free(m);
        return;
    }
    if (stop != NULL) {
        bool abnormal = !gs__reason_is_normal(stop);
        gs__supervisor_exit(s, stop, abnormal);
    }
}

/* dispatch for a durable server: roll back first if a commit failed, then store the change
 * the message made and hold back what it said until that committed (durable.c). */
static void dispatch_durable(gs_server_t *s, gs__msg_t *m)
{
    /* s stays valid through a crash (the turn holds the run queue's reference), and so does
     * its child, whose durable record a new incarnation shares. A system message (a stop, an
     * inspection) is not undone by a rollback and must not be eaten by one; the wake-up a
     * failed commit sends (KILL) is what brings the rollback about. */
    json_t *stop =
        !gs__msg_is_system(m->kind) || m->kind == GS__MSG_KILL ? gs__durable_before(s) : NULL;
    if (stop != NULL) {
        gs__msg_discard(s->rt, m, GS_ESTORAGE, NULL);
        gs__supervisor_exit(s, stop, true);
    } else {
        dispatch(s, m);
        /* s may have died (and a new incarnation of c may run): only what was said leaves */
        stop = gs__durable_after(s);
        if (stop != NULL && !s->exited)
            gs__supervisor_exit(s, stop, true);
        else
            json_decref(stop);
    }
}

/* The handle_continue a result asked for, before any message. */
static void run_continue(gs_server_t *s)
{
    json_t *arg = s->cont, *stop;

    s->cont = NULL;
    if (json_is_array(arg) && json_array_size(arg) == 2 && json_is_string(json_array_get(arg, 0)) &&
        strcmp(json_string_value(json_array_get(arg, 0)), "$crash") == 0) {
        stop = json_incref(json_array_get(arg, 1)); /* init's next action could not be done */
    } else if (s->b->handle_continue == NULL) {
        stop = json_pack("[s, s]", "undef", "handle_continue");
    } else {
        stop = async_result(s, s->b->handle_continue(s, s->state, arg), "handle_continue");
    }
    json_decref(arg);
    if (stop != NULL)
        gs__supervisor_exit(s, stop, !gs__reason_is_normal(stop));
}

/* Whether m is a message the server handles (counted, and a state_changed): not an
 * inspection, nor a result's timeout that a message since made stale. */
static bool counts_as_handled(const gs_server_t *s, const gs__msg_t *m)
{
    if (m->kind == GS__MSG_GET_STATE || m->kind == GS__MSG_SUSPEND || m->kind == GS__MSG_RESUME ||
        m->kind == GS__MSG_KILL)
        return false;
    if (m->kind == GS__MSG_TIMEOUT)
        return s->timeout_armed && (uint64_t)json_integer_value(m->payload) == s->timeout_gen;
    return true;
}

/* The next message: what a suspension kept comes first once resumed. */
static gs__qnode_t *next_message(gs_server_t *s)
{
    gs__qnode_t *n = s->saved_head;
    if (n == NULL || atomic_load_explicit(&s->suspended, memory_order_relaxed)) /* ours */
        return gs__mpsc_pop(&s->mailbox, &s->mailbox_tail);
    s->saved_head = atomic_load_explicit(&n->next, memory_order_relaxed); /* ours alone */
    if (s->saved_head == NULL)
        s->saved_tail = NULL;
    s->saved_n--;
    return n;
}

/* Suspended: keep a message that is not a system message for after the resume. It stays
 * counted in mailbox_len. */
static void save_message(gs_server_t *s, gs__qnode_t *n)
{
    atomic_store_explicit(&n->next, NULL, memory_order_relaxed); /* ours alone now */
    if (s->saved_tail != NULL)
        atomic_store_explicit(&s->saved_tail->next, n, memory_order_relaxed);
    else
        s->saved_head = n;
    s->saved_tail = n;
    s->saved_n++;
}

/* Messages counted in mailbox_len that this server would handle now: a suspended one's kept
 * messages wait for the resume. */
static int64_t kept(const gs_server_t *s)
{
    return atomic_load_explicit(&s->suspended, memory_order_relaxed) ? s->saved_n : 0; /* ours */
}

void gs__server_kill(gs_server_t *s)
{
    /* relaxed: the flag carries nothing else; the push below publishes it to the run loop
     * (mailbox push release, pop acquire), which looks at it before each message. */
    atomic_store_explicit(&s->killed, 1, memory_order_relaxed);
    gs__msg_t *m = gs__msg_alloc();
    m->kind = GS__MSG_KILL;
    m->payload = NULL;
    if (gs__server_push(s, m, true) != 0)
        gs__msg_free(m); /* dead already */
}

/* Killed (a stop's timeout passed): die now, with "killed", and stay stopped. */
static void die_killed(gs_server_t *s)
{
    s->child->stopping = true;
    gs__supervisor_exit(s, json_string("killed"), true);
}

void gs__server_run(gs_server_t *s, unsigned batch)
{
    gs_runtime_t *rt = s->rt;
    unsigned n = 0, handled = 0;
    /* Measure memory this turn? One clock read per turn, none per message. */
    bool measure = gs__now_ms() - s->measured_ms >= GS__MEASURE_PERIOD_MS, sample = measure;
    gs__tls.sends = 0;
    if (atomic_load_explicit(&s->status, memory_order_acquire) == GS__DEAD) {
        gs__server_drain(s, GS_ENOSERVER, NULL);
        goto unschedule;
    }
    gs__tls.current = s;
    /* A turn is bounded by messages handled plus messages its handlers sent, as BEAM counts a
     * send against the sender's reductions: a server that sends many messages per message
     * (a producer's loop) yields as often as its receivers do, instead of filling their
     * mailboxes batch times faster than they drain (issue 17: a mailbox that outgrows the
     * cache halves the throughput of both). */
    while (n + gs__tls.sends < batch) {
        /* relaxed: see gs__server_kill */
        if (atomic_load_explicit(&s->killed, memory_order_relaxed)) {
            die_killed(s);
            break;
        }
        if (s->cont != NULL) {
            /* A result asked for handle_continue: it runs before any other message. */
            n++;
            handled++;
            run_continue(s);
            if (s->child->dur != NULL) {
                json_t *stop = gs__durable_after(s);
                if (stop != NULL && !s->exited)
                    gs__supervisor_exit(s, stop, true);
                else
                    json_decref(stop);
            }
            if (s->exited)
                break;
            continue;
        }
        gs__qnode_t *node = next_message(s);
        if (node == NULL)
            break;
        if (atomic_load_explicit(&s->suspended, memory_order_relaxed) && /* ours */
            !gs__msg_is_system(((gs__msg_t *)node)->kind)) {
            n++; /* sorting the mailbox is work too: the turn stays bounded */
            save_message(s, node);
            continue;
        }
        /* Per message, so that the count is "waiting", never "waiting or being handled":
         * a busy handler must not shrink the room its mailbox_limit promises. relaxed: the
         * seq_cst recheck below is on this same thread. */
        atomic_fetch_sub_explicit(&s->mailbox_len, 1, memory_order_relaxed);
        n++;
        /* A state request is an inspection (:sys.get_state), not a message the server
         * handles: it neither counts nor makes a state_changed event (a dashboard that reads
         * the state on state_changed would otherwise feed itself). Counted before dispatch:
         * a crash folds this incarnation's count into the child. relaxed load + store: this
         * thread is the only writer; readers want a snapshot. */
        if (counts_as_handled(s, (gs__msg_t *)node)) {
            handled++;
            atomic_store_explicit(&s->handled,
                                  atomic_load_explicit(&s->handled, memory_order_relaxed) + 1,
                                  memory_order_relaxed);
        }
        if (sample && ((gs__msg_t *)node)->payload != NULL) {
            sample = false; /* one message a measurement */
            /* relaxed: a snapshot for display, this thread its only writer */
            atomic_store_explicit(&s->msg_bytes, gs_json_size(((gs__msg_t *)node)->payload),
                                  memory_order_relaxed);
        }
        if (s->child->dur != NULL) {
            dispatch_durable(s, (gs__msg_t *)node);
        } else {
            dispatch(s, (gs__msg_t *)node);
        }
        if (s->exited)
            break;
    }
    /* A kill whose wake-up was the turn's last message: nothing would schedule it again. */
    if (!s->exited && atomic_load_explicit(&s->killed, memory_order_relaxed)) /* see kill */
        die_killed(s);
    if (measure && handled > 0 && !s->exited)
        gs__server_measure(s, NULL);
    gs__tls.current = NULL;
    if (handled > 0) {
        /* relaxed: statistics */
        atomic_fetch_add_explicit(&rt->stats.messages_handled, handled, memory_order_relaxed);
        if (!s->exited)
            gs__emit(rt, GS_EVENT_STATE_CHANGED, s->child, NULL);
    }
unschedule:
    /* relaxed: a hint; the seq_cst recheck below catches what it misses */
    if (!s->exited && (s->cont != NULL ||
                       (n + gs__tls.sends >= batch &&
                        atomic_load_explicit(&s->mailbox_len, memory_order_relaxed) > kept(s)))) {
        gs__sched_enqueue(rt, s); /* yield: more is waiting; keeps the queue's ref */
        return;
    }
    /* A suspended server is not scheduled for the messages it keeps: only for new ones (a
     * system message among them is what it waits for). Read while this thread still owns the
     * server: once `scheduled` is 0 another thread may take it and change what it keeps (and
     * then does this same recheck when it lets go). */
    int64_t keep = kept(s);
    atomic_store(&s->scheduled, 0); /* seq_cst: see gs__server_reserve */
    if (atomic_load(&s->mailbox_len) > keep && atomic_exchange(&s->scheduled, 1) == 0) {
        gs__sched_enqueue(rt, s);
        return;
    }
    gs_server_unref(s);
}

/* ---------------------------------------------------------------------------------------- */
/* Messages by name and by handle                                                             */
/* ---------------------------------------------------------------------------------------- */

int gs__server_send(gs_server_t *s, uint8_t kind, json_t *msg, bool force)
{
    gs__msg_t *m = gs__msg_alloc();
    if (m == NULL) {
        json_decref(msg);
        return GS_ENOMEM;
    }
    m->kind = kind;
    m->payload = msg;
    int rc = gs__server_push(s, m, force);
    if (rc != 0) {
        json_decref(msg);
        gs__msg_free(m);
    }
    return rc;
}

static int send_by_name(gs_runtime_t *rt, const char *name, uint8_t kind, json_t *msg,
                        const gs_send_options_t *opts)
{
    if (rt == NULL || name == NULL || msg == NULL) {
        json_decref(msg);
        return GS_EINVAL;
    }
    if (atomic_load_explicit(&rt->shutting_down, memory_order_relaxed)) { /* advisory */
        json_decref(msg);
        return GS_ESHUTDOWN;
    }
    gs_server_t *s = gs__registry_whereis(rt, name);
    if (s == NULL) {
        json_decref(msg);
        return GS_ENOSERVER;
    }
    gs_server_t *from = gs__durable_current();
    int rc = 0;
    if (from != NULL && opts == NULL) {
        /* A durable server's cast leaves once its state committed: checked now, sent then. */
        gs__durable_defer_send(from, NULL, name, kind, msg);
    } else if (opts == NULL || (opts->handled == NULL && opts->idempotency_key == NULL)) {
        rc = gs__server_send(s, kind, msg, false);
    } else {
        gs__msg_t *m = gs__msg_alloc();
        m->kind = kind;
        m->payload = msg;
        m->meta = calloc(1, sizeof(*m->meta));
        if (m->meta == NULL || (opts->idempotency_key != NULL &&
                                (m->meta->key = strdup(opts->idempotency_key)) == NULL)) {
            gs__msg_free(m);
            json_decref(msg);
            gs_server_unref(s);
            return GS_ENOMEM;
        }
        m->meta->handled = opts->handled;
        m->meta->handled_arg = opts->handled_arg;
        if ((rc = gs__server_push(s, m, false)) != 0) {
            json_decref(msg);
            gs__msg_free(m);
        }
    }
    gs_server_unref(s);
    return rc;
}

int gs_cast(gs_runtime_t *rt, const char *name, json_t *msg)
{
    return send_by_name(rt, name, GS__MSG_CAST, msg, NULL);
}

int gs_send(gs_runtime_t *rt, const char *name, json_t *msg)
{
    return send_by_name(rt, name, GS__MSG_INFO, msg, NULL);
}

int gs_cast_opts(gs_runtime_t *rt, const char *name, json_t *msg, const gs_send_options_t *opts)
{
    return send_by_name(rt, name, GS__MSG_CAST, msg, opts);
}

int gs_send_opts(gs_runtime_t *rt, const char *name, json_t *msg, const gs_send_options_t *opts)
{
    return send_by_name(rt, name, GS__MSG_INFO, msg, opts);
}

static int send_to_handle(gs_server_t *to, uint8_t kind, json_t *msg)
{
    if (to == NULL || msg == NULL) {
        json_decref(msg);
        return GS_EINVAL;
    }
    gs_server_t *from = gs__durable_current();
    if (from != NULL) {
        if (atomic_load_explicit(&to->status, memory_order_acquire) == GS__DEAD) {
            json_decref(msg);
            return GS_ENOSERVER;
        }
        gs__durable_defer_send(from, to, NULL, kind, msg);
        return 0;
    }
    return gs__server_send(to, kind, msg, false);
}

int gs_cast_server(gs_server_t *to, json_t *msg)
{
    return send_to_handle(to, GS__MSG_CAST, msg);
}

int gs_send_server(gs_server_t *to, json_t *msg)
{
    return send_to_handle(to, GS__MSG_INFO, msg);
}

void gs__msg_meta_free(gs__msg_meta_t *meta)
{
    if (meta == NULL)
        return;
    free(meta->key);
    free(meta->row);
    free(meta);
}

void gs__msg_handled(gs_server_t *s, gs__msg_meta_t *meta, int status)
{
    if (meta->tref != 0 && s->child->dur != NULL) {
        /* A stored timer's delivery: its row goes with the change the message made. */
        char key[24];
        snprintf(key, sizeof(key), "%llu", (unsigned long long)meta->tref);
        gs__durable_op(s, GS_STORE_TIMERS, key, meta->row, meta->row_len);
        meta->row = NULL;
    }
    if (meta->handled != NULL) {
        if (s->child->dur != NULL)
            gs__durable_defer_done(s, meta->handled, meta->handled_arg, status);
        else
            meta->handled(status, meta->handled_arg);
    }
    gs__msg_meta_free(meta);
}

gs_server_t *gs_whereis(gs_runtime_t *rt, const char *name)
{
    if (rt == NULL || name == NULL)
        return NULL;
    return gs__registry_whereis(rt, name);
}
