/*
 * supervisor.c: children (named servers as their supervisor sees them), starting them, what
 * happens after a server exits, and stopping servers on request.
 *
 * Every named server has its own supervisor in effect (one child per supervisor, like a
 * simple_one_for_one per name), with Elixir's child-spec semantics:
 *   permanent  restarted after any exit;   transient  restarted after a crash only;
 *   temporary  never restarted (and removed, as Elixir removes temporary children).
 * Restart intensity: more than max_restarts restarts within max_seconds and the supervisor
 * gives up: the server stays registered as "down" with a down_reason, so that operators can
 * see why, until it is stopped (removed) or started again under the same name.
 * A restart runs on the thread where the old incarnation died, at once, as an OTP supervisor
 * restarts a child as soon as it sees the exit. Messages queued to the dead incarnation die
 * with it (calls fail with the reason), as a dead process's mailbox does.
 *
 * Deliberate difference: gs_stop is Supervisor.terminate_child + delete_child, not
 * GenServer.stop: the server is not restarted, whatever its restart type.
 */
#include "runtime_internal.h"

#include <assert.h>
#include <sched.h>

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------- */
/* Children and their options                                                                 */
/* ---------------------------------------------------------------------------------------- */

void gs_start_options_init(gs_start_options_t *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->restart = GS_PERMANENT;
    opts->max_restarts = 3;
    opts->max_seconds = 5;
}

static const char *const restart_names[] = {"permanent", "transient", "temporary"};

int gs_restart_parse(const char *s, gs_restart_t *out)
{
    for (int i = 0; s != NULL && i < 3; i++) {
        if (strcmp(s, restart_names[i]) == 0) {
            *out = (gs_restart_t)i;
            return 0;
        }
    }
    return GS_EINVAL;
}

const char *gs_restart_name(gs_restart_t r)
{
    return (unsigned)r < 3 ? restart_names[r] : "unknown";
}

gs__child_t *gs__child_create(gs_runtime_t *rt, const char *name, size_t name_len,
                              const gs_behaviour_t *b, json_t *args, const gs_start_options_t *opts)
{
    gs__child_t *c = calloc(1, sizeof(*c) + name_len + 1);
    if (c == NULL)
        return NULL;
    atomic_init(&c->refs, 1);
    c->rt = rt;
    atomic_init(&c->b, b);
    c->args = args != NULL ? gs__json_copy(args) : json_null(); /* ours alone */
    c->opts = *opts;
    if (c->opts.mailbox_limit == 0)
        c->opts.mailbox_limit = rt->opts.mailbox_limit;
    c->name_len = name_len;
    memcpy(c->name, name, name_len);
    c->node.hash = gs_hash_bytes(name, name_len); /* the registry's, and the shard lock's */
    return c;
}

void gs__child_unref(gs__child_t *c)
{
    if (c == NULL)
        return;
    /* acq_rel: the freeing thread sees every write made by the other holders */
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    json_decref(c->args);
    json_decref(c->last_crash_reason);
    json_decref(c->down_reason);
    gs_server_unref(c->parent);
    gs__durable_detach(c);
    free(c->restart_times);
    free(c);
}

void gs__child_forget(gs_runtime_t *rt, gs__child_t *c)
{
    /* The registry's reference is never the last: every caller holds one of its own (a start,
     * the dying incarnation's, a stop's lookup). A plain decrement says so, to readers and to
     * the static analyzer, which would otherwise follow a free here into the caller.
     * acq_rel: as any release of a reference. */
    if (gs__registry_remove(rt, c)) {
        uint32_t before = atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel);
        assert(before > 1);
        (void)before;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Starting                                                                                   */
/* ---------------------------------------------------------------------------------------- */

int gs_start(gs_runtime_t *rt, const char *name, const gs_behaviour_t *b, json_t *args,
             const gs_start_options_t *opts, json_t **reason)
{
    return gs__start_child(rt, name, b, args, opts, NULL, reason, NULL);
}

int gs__start_child(gs_runtime_t *rt, const char *name, const gs_behaviour_t *b, json_t *args,
                    const gs_start_options_t *opts, const gs__tree_link_t *link, json_t **reason,
                    gs__child_t **out)
{
    gs_start_options_t o;
    json_t *why = NULL;
    int rc = 0;
    if (reason != NULL)
        *reason = NULL;
    if (rt == NULL || name == NULL || b == NULL || b->init == NULL)
        return GS_EINVAL;
    size_t len = strnlen(name, GS__NAME_MAX + 1);
    if (len == 0 || len > GS__NAME_MAX)
        return GS_EINVAL;
    if (opts != NULL)
        o = *opts;
    else
        gs_start_options_init(&o);
    if ((unsigned)o.restart > GS_TEMPORARY)
        return GS_EINVAL;
    if (atomic_load(&rt->shutting_down))
        return GS_ESHUTDOWN;
    o.durable = o.durable || b->durable;
    if (o.durable && (rt->opts.store == NULL || b->dump_state == NULL || b->restore == NULL))
        return GS_ENOTSUP; /* durable needs a store, and a behaviour that can be stored */

    gs__child_t *child = gs__child_create(rt, name, len, b, args, &o);
    if (child == NULL)
        return GS_ENOMEM;
    if (link != NULL) {
        /* Before the insert: an exit right after init already goes to the supervisor. */
        child->parent = link->parent != NULL ? gs_server_ref(link->parent) : NULL;
        child->tree_gen = link->gen;
        child->tree = link->tree;
        atomic_init(&child->restarts, link->restarts);
    }
    gs_server_t *s = gs__server_create(child);
    if (s == NULL) {
        rc = GS_ENOMEM;
        goto out;
    }
    child->current = s; /* the child's reference; not visible to others before the insert */
    gs__child_t *replaced;
    rc = gs__registry_insert(rt, child, &replaced);
    gs__child_unref(replaced);
    if (rc != 0) {
        child->current = NULL;
        atomic_store(&s->status, GS__DEAD);
        gs_server_unref(s);
        goto out;
    }
    /* Once the name is ours: its stored state (if any) is this child's to restore. */
    if (o.durable && gs__durable_attach(child) != 0)
        abort(); /* checked above; only a small allocation is left to fail */
    rc = gs__server_init(s, &why);
    if (rc != 0) {
        gs__child_lock(child);
        child->current = NULL;
        gs__child_unlock(child);
        gs__durable_forget(child, true); /* a failed start keeps the stored state */
        gs__child_forget(rt, child);
        gs_server_unref(s);
        if (reason != NULL)
            *reason = why;
        else
            json_decref(why);
        goto out;
    }
    gs__emit(rt, link != NULL && link->restart ? GS_EVENT_RESTARTED : GS_EVENT_STARTED, child,
             NULL);
    if (out != NULL) {
        gs__child_ref(child);
        *out = child;
    }
out:
    gs__child_unref(child);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* After an exit                                                                              */
/* ---------------------------------------------------------------------------------------- */

bool gs__reason_is_normal(const json_t *reason)
{
    if (json_is_string(reason)) {
        const char *s = json_string_value(reason);
        return strcmp(s, "normal") == 0 || strcmp(s, "shutdown") == 0;
    }
    if (json_is_array(reason) && json_array_size(reason) > 0) {
        const json_t *tag = json_array_get(reason, 0);
        return json_is_string(tag) && strcmp(json_string_value(tag), "shutdown") == 0;
    }
    return false;
}

/* Record a restart at now; false if that exceeds the intensity (the supervisor gives up). */
static bool intensity_allows(gs__child_t *c, uint64_t now_ms)
{
    unsigned max = c->opts.max_restarts;
    if (max == 0)
        return false;
    if (c->restart_times == NULL) {
        c->restart_times = calloc(max, sizeof(uint64_t));
        if (c->restart_times == NULL)
            return false;
        for (unsigned i = 0; i < max; i++)
            c->restart_times[i] = UINT64_MAX; /* never */
    }
    uint64_t period = (uint64_t)c->opts.max_seconds * 1000u;
    unsigned recent = 0;
    for (unsigned i = 0; i < max; i++) {
        uint64_t t = c->restart_times[i];
        if (t != UINT64_MAX && now_ms - t < period)
            recent++;
    }
    if (recent >= max)
        return false;
    c->restart_times[c->restart_next] = now_ms;
    c->restart_next = (c->restart_next + 1) % max;
    return true;
}

/* Replace the registered incarnation (under the shard lock); NULL unregisters it. */
static void set_current(gs__child_t *c, gs_server_t *next)
{
    gs__child_lock(c);
    gs_server_t *old = c->current;
    c->current = next;
    gs__child_unlock(c);
    gs_server_unref(old);
}

/* A child of a supervision tree exited: it does not restart itself. Its name is freed and
 * its supervisor is told, in its mailbox, to decide by its strategy (tree.c). reason taken. */
static void tree_child_exit(gs_server_t *s, json_t *reason, bool abnormal)
{
    gs__child_t *c = s->child;
    gs_runtime_t *rt = s->rt;
    bool crashed = abnormal && !c->stopping;
    gs__child_ref(c); /* s may go with set_current */
    gs__server_die(s, reason, crashed ? GS_ECRASHED : GS_ESTOPPED);
    if (crashed) {
        gs__child_lock(c);
        json_decref(c->last_crash_reason);
        c->last_crash_reason = gs__json_copy(reason);
        gs__child_unlock(c);
        gs__emit(rt, GS_EVENT_CRASHED, c, reason);
    }
    set_current(c, NULL);
    gs__child_forget(rt, c);
    /* A durable child's state waits for the next child of its name that its supervisor
     * starts, unless someone stopped it (then it is gone for good). */
    gs__durable_forget(c, !c->stopping);
    if (!crashed)
        gs__emit(rt, GS_EVENT_STOPPED, c, reason);
    /* Past the mailbox limit: an exit must reach the supervisor. If the supervisor is gone,
     * it is dropped: a dying supervisor stops its children itself. */
    /* REQUESTED: someone stopped it (gs_stop, DELETE /servers/NAME), not its supervisor. */
    json_t *note = json_pack("[s, I, o, b, b]", "$gs_exit", (json_int_t)c->tree_gen,
                             gs__json_copy(reason), abnormal, c->stopping);
    gs__server_send(c->parent, GS__MSG_INFO, note, true);
    json_decref(reason);
    gs__child_unref(c);
}

void gs__supervisor_exit(gs_server_t *s, json_t *reason, bool abnormal)
{
    gs__child_t *c = s->child;
    gs_runtime_t *rt = s->rt;
    bool stopping = c->stopping || atomic_load(&rt->shutting_down);
    if (c->parent != NULL && !atomic_load(&rt->shutting_down)) {
        tree_child_exit(s, reason, abnormal);
        return;
    }
    gs__child_ref(c); /* s may go with set_current */
    gs__server_die(s, reason, abnormal && !c->stopping ? GS_ECRASHED : GS_ESTOPPED);

    if (abnormal && !c->stopping) {
        gs__child_lock(c);
        json_decref(c->last_crash_reason);
        c->last_crash_reason = gs__json_copy(reason);
        gs__child_unlock(c);
        gs__emit(rt, GS_EVENT_CRASHED, c, reason);
    }
    bool restart = !stopping && (c->opts.restart == GS_PERMANENT ||
                                 (c->opts.restart == GS_TRANSIENT && abnormal));
    if (!restart) {
        /* Not restarted: the name is freed, as Elixir removes the child. A crash says so
         * with DOWN (what a dashboard shows), a normal exit or a stop with STOPPED. */
        set_current(c, NULL);
        gs__child_forget(rt, c);
        if (!atomic_load(&rt->shutting_down))
            gs__durable_forget(c, false); /* gone for good: its stored state goes too */
        gs__emit(rt, abnormal && !stopping ? GS_EVENT_DOWN : GS_EVENT_STOPPED, c, reason);
        goto out;
    }
    for (;;) {
        if (!intensity_allows(c, gs__now_ms())) {
            json_t *why =
                json_pack("{s:s, s:I, s:I, s:o}", "reason", "reached_max_restart_intensity",
                          "max_restarts", (json_int_t)c->opts.max_restarts, "max_seconds",
                          (json_int_t)c->opts.max_seconds, "last_reason", gs__json_copy(reason));
            gs__child_lock(c);
            gs_server_t *old = c->current;
            c->current = NULL;
            json_decref(c->down_reason);
            c->down_reason = why;
            gs__child_unlock(c);
            gs_server_unref(old);
            gs__emit(rt, GS_EVENT_DOWN, c, why);
            break;
        }
        atomic_fetch_add_explicit(&c->restarts, 1, memory_order_relaxed); /* counter */
        gs_server_t *ns = gs__server_create(c);
        if (ns == NULL)
            continue; /* counts against the intensity, so this ends */
        set_current(c, ns);
        json_t *why = NULL;
        int rc = gs__server_init(ns, &why);
        if (rc == 0) {
            gs__emit(rt, GS_EVENT_RESTARTED, c, NULL);
            break;
        }
        if (rc == GS_EIGNORED) {
            /* init said :ignore: as an OTP supervisor does, keep no process for it (here: the
             * name is freed, as for a child that is not restarted). */
            set_current(c, NULL);
            gs__child_forget(rt, c);
            json_t *ignored = json_string("ignore");
            gs__emit(rt, GS_EVENT_STOPPED, c, ignored);
            json_decref(ignored);
            break;
        }
        /* init failed: that is another crash of this child */
        if (why == NULL)
            why = json_string("init_failed");
        gs__child_lock(c);
        json_decref(c->last_crash_reason);
        c->last_crash_reason = gs__json_copy(why);
        gs__child_unlock(c);
        gs__emit(rt, GS_EVENT_CRASHED, c, why);
        json_decref(reason);
        reason = why;
    }
out:
    json_decref(reason);
    gs__child_unref(c);
}

/* ---------------------------------------------------------------------------------------- */
/* Stopping on request                                                                        */
/* ---------------------------------------------------------------------------------------- */

/*
 * A stop is a STOP message handled in mailbox order. With a timeout (gs_stop_options_t), it is
 * a call whose timeout completes it with GS_ETIMEOUT and kills the incarnation it was sent to
 * (OTP's brutal kill after a supervisor's shutdown timeout): the completion primitive decides
 * between "terminate ran" and "timed out" exactly once, so a stop is never both.
 */
typedef struct stop_req_s {
    gs_done_cb cb;
    void *arg;
    gs_server_t *target; /* referenced when the stop has a timeout: whom it kills */
} stop_req_t;

static void stop_req_done(int status, json_t *result, void *arg)
{
    stop_req_t *req = arg;
    json_decref(result);
    if (req->target != NULL) {
        if (status == GS_ETIMEOUT)
            gs__server_kill(req->target);
        gs_server_unref(req->target);
    }
    req->cb(status, req->arg);
    free(req);
}

void gs_stop_options_init(gs_stop_options_t *opts)
{
    opts->timeout_ms = GS_INFINITY;
}

int gs_stop_async(gs_runtime_t *rt, const char *name, json_t *reason, gs_done_cb cb, void *arg)
{
    return gs_stop_async_opts(rt, name, reason, NULL, cb, arg);
}

int gs_stop_async_opts(gs_runtime_t *rt, const char *name, json_t *reason,
                       const gs_stop_options_t *opts, gs_done_cb cb, void *arg)
{
    int rc = 0;
    int timeout_ms = opts != NULL ? opts->timeout_ms : GS_INFINITY;
    gs__child_t *child = NULL;
    gs_server_t *s = NULL;
    stop_req_t *req = NULL;
    if (rt == NULL || name == NULL || cb == NULL || timeout_ms < GS_INFINITY) {
        rc = GS_EINVAL;
        goto out;
    }
    if (atomic_load(&rt->shutting_down)) {
        rc = GS_ESHUTDOWN;
        goto out;
    }
    if (reason == NULL)
        reason = json_string("normal");
    child = gs__registry_child(rt, name);
    if (child == NULL) {
        rc = GS_ENOSERVER;
        goto out;
    }
    req = malloc(sizeof(*req));
    if (req == NULL) {
        rc = GS_ENOMEM;
        goto out;
    }
    req->cb = cb;
    req->arg = arg;
    req->target = NULL;
    for (int tries = 0;; tries++) {
        gs__child_lock(child);
        s = child->current != NULL ? gs_server_ref(child->current) : NULL;
        gs__child_unlock(child);
        if (s == NULL) {
            /* Down: nothing to terminate, just forget it, and say so to subscribers (a
             * dashboard removes its row on "stopped"). Complete through the timer thread so
             * that the callback never runs inside this call (the caller may not be ready). */
            gs__child_forget(rt, child);
            gs__emit(rt, GS_EVENT_STOPPED, child, reason);
            gs__call_t *c = gs__call_create(rt, GS__MSG_STOP, NULL, stop_req_done, req);
            c->timeout_status = 0;
            gs__call_arm_timeout(rt, c, 0);
            gs__call_unref(c);
            req = NULL;
            goto out;
        }
        if (child->tree) {
            /* A supervisor stops its children first, in its own turns (tree.c): ask it. */
            json_t *ask = json_pack("[s, o]", "$gs_stop_tree", gs__json_copy(reason));
            if (gs_call_server_async(s, ask, GS_INFINITY, stop_req_done, req) == 0) {
                req = NULL;
                goto out;
            }
            gs_server_unref(s);
            s = NULL;
            rc = GS_ENOSERVER;
            goto out;
        }
        gs__call_t *c = gs__call_create(rt, GS__MSG_STOP, reason, stop_req_done, req);
        /* Reserved before the timeout is armed, armed before the push: the stop cannot
         * complete before its timeout exists (call.c's call_server does the same). */
        if (gs__server_reserve(s, true) == 0) {
            if (timeout_ms >= 0) {
                req->target = gs_server_ref(s);
                gs__call_arm_timeout(rt, c, timeout_ms);
            }
            gs__server_push_reserved(s, &c->msg);
            reason = NULL;
            req = NULL;
            goto out;
        }
        /* That incarnation died between the lookup and the push: its supervisor is
         * restarting it (stop the next one, as the name is what the caller means) or giving
         * up (the name goes or is down). Take the request back and look again. */
        reason = c->msg.payload;
        c->msg.payload = NULL;
        atomic_store(&c->done, 1); /* never called back */
        gs__call_unref(c);
        gs_server_unref(s);
        s = NULL;
        gs__child_t *now = gs__registry_child(rt, name);
        gs__child_unref(now);
        if (now != child || tries >= 100000) {
            rc = GS_ENOSERVER;
            goto out;
        }
        sched_yield(); /* the restart runs on the thread where it died: let it finish */
    }
out:
    json_decref(reason);
    free(req);
    gs_server_unref(s);
    gs__child_unref(child);
    return rc;
}

typedef struct stop_wait_s {
    _Atomic int refs;
    uv_mutex_t lock;
    uv_cond_t cond;
    bool done;
    int status;
} stop_wait_t;

static void stop_wait_unref(stop_wait_t *w)
{
    /* acq_rel: the last one out sees the other side's writes before destroying */
    if (atomic_fetch_sub_explicit(&w->refs, 1, memory_order_acq_rel) == 1) {
        uv_cond_destroy(&w->cond);
        uv_mutex_destroy(&w->lock);
        free(w);
    }
}

static void stop_wait_done(int status, void *arg)
{
    stop_wait_t *w = arg;
    uv_mutex_lock(&w->lock);
    w->done = true;
    w->status = status;
    uv_cond_signal(&w->cond);
    uv_mutex_unlock(&w->lock);
    stop_wait_unref(w);
}

/* Wait for a stop with options for up to timeout_ms (GS_INFINITY: until it completes). */
static int stop_blocking(gs_runtime_t *rt, const char *name, json_t *reason,
                         const gs_stop_options_t *opts, int timeout_ms)
{
    if (gs__tls.runtime_thread) {
        json_decref(reason);
        return GS_EWOULDBLOCK;
    }
    stop_wait_t *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        json_decref(reason);
        return GS_ENOMEM;
    }
    atomic_init(&w->refs, 2); /* the waiter and the callback: either may be last */
    uv_mutex_init(&w->lock);
    uv_cond_init(&w->cond);
    int rc = gs_stop_async_opts(rt, name, reason, opts, stop_wait_done, w);
    if (rc != 0) {
        atomic_store(&w->refs, 1);
        stop_wait_unref(w);
        return rc;
    }
    uint64_t deadline = timeout_ms >= 0 ? gs__now_ns() + (uint64_t)timeout_ms * 1000000u : 0;
    uv_mutex_lock(&w->lock);
    while (!w->done) {
        if (timeout_ms < 0) {
            uv_cond_wait(&w->cond, &w->lock);
            continue;
        }
        uint64_t now = gs__now_ns();
        if (now >= deadline || uv_cond_timedwait(&w->cond, &w->lock, deadline - now) != 0) {
            if (!w->done)
                break;
        }
    }
    rc = w->done ? w->status : GS_ETIMEOUT;
    uv_mutex_unlock(&w->lock);
    stop_wait_unref(w);
    return rc;
}

int gs_stop(gs_runtime_t *rt, const char *name, json_t *reason, int timeout_ms)
{
    return stop_blocking(rt, name, reason, NULL, timeout_ms);
}

int gs_stop_opts(gs_runtime_t *rt, const char *name, json_t *reason, const gs_stop_options_t *opts)
{
    /* The runtime enforces opts->timeout_ms: the completion comes, in time or as a timeout. */
    return stop_blocking(rt, name, reason, opts, GS_INFINITY);
}
