/*
 * timer.c: send_after timers and call timeouts, on one dedicated libuv loop thread.
 *
 * Every thread hands nodes to the timer thread through one MPSC queue of commands (ADD,
 * CANCEL); only the timer thread touches the timing wheel (wheel.h: O(1) insert, cancel and
 * fire, 1 ms ticks), and one uv_timer_t is armed for the wheel's next tick with work. So a
 * pending timer costs its record (about 120 bytes), and scheduling one is a queue push.
 *
 * Wake-ups: a producer wakes the loop (uv_async_send) only when its node is due before the
 * loop's next planned look at the queue (armed_due_ns). The loop looks at least every
 * RESCAN_NS while it has work, which bounds how long cancelled nodes wait to be freed. The
 * loop publishes armed_due_ns before its final check of the queue, and producers read it
 * after their push (both seq_cst): one of the two always sees the other.
 *
 * API (a send_after timer):
 *   gs_send_after    record in the timer map (shard-locked) + ADD, under the shard lock, so a
 *                    cancel's CANCEL can never overtake its ADD.
 *   fire             PENDING -> FIRED under the shard lock, deliver, free.
 *   gs_cancel_timer  PENDING -> CANCELLED under the shard lock, then CANCEL: the timer thread
 *                    takes it out of the wheel (if there) and frees it.
 * A call timeout is the same node embedded in the call (see call.c): firing completes the
 * call with its timeout_status unless someone completed it first.
 */
#include "runtime_internal.h"

#include <stdlib.h>
#include <string.h>

#define RESCAN_NS   (10u * 1000u * 1000u)
#define NS_PER_TICK 1000000u /* the wheel turns in milliseconds, as uv timers count */

enum { T_PENDING = 0, T_FIRED, T_CANCELLED };

struct gs__timer_s {
    gs__tnode_t t;
    gs_timer_ref_t ref;
    _Atomic uint8_t state;     /* changed under the map shard's lock */
    bool by_name;              /* which member of target is set */
    struct gs__timer_s *hnext; /* map chain (shard lock) */
    json_t *msg;               /* owned until delivered */
    union {
        gs_server_t *to; /* referenced */
        char *name;      /* owned; resolved when it fires */
    } target;
};

/* At most 120 bytes, so that glibc keeps a freed record in a fastbin. A larger one is freed
 * with coalescing, and when a million of them are freed in due-time order (not allocation
 * order) the coalesced holes reach 64 KiB, which makes glibc consolidate every fastbin of
 * the arena under its lock: the json_t messages the sinks had freed, hundreds of thousands of
 * them. runtime_bench saw 100 ms stalls of the timer thread and the sink (p99 lateness 70-90
 * ms instead of 3) until the record shrank below this line. */
_Static_assert(sizeof(struct gs__timer_s) <= 120, "a timer record must stay fastbin-sized");

/* ---------------------------------------------------------------------------------------- */
/* The timer map: ref -> timer, for read_timer and cancel_timer from any thread               */
/* ---------------------------------------------------------------------------------------- */

static gs__tmap_shard_t *tshard(gs__timers_t *tm, gs_timer_ref_t ref)
{
    return &tm->shards[ref % GS__TIMER_SHARDS];
}

static gs__timer_t **tmap_slot(gs__tmap_shard_t *sh, gs_timer_ref_t ref)
{
    gs__timer_t **p = &sh->buckets[(ref / GS__TIMER_SHARDS) & (sh->nbuckets - 1)];
    while (*p != NULL && (*p)->ref != ref)
        p = &(*p)->hnext;
    return p;
}

static void tmap_grow(gs__tmap_shard_t *sh)
{
    size_t n = sh->nbuckets * 2;
    gs__timer_t **nb = calloc(n, sizeof(*nb));
    if (nb == NULL)
        return; /* longer chains, still correct */
    for (size_t b = 0; b < sh->nbuckets; b++) {
        gs__timer_t *t = sh->buckets[b];
        while (t != NULL) {
            gs__timer_t *next = t->hnext;
            size_t i = (t->ref / GS__TIMER_SHARDS) & (n - 1);
            t->hnext = nb[i];
            nb[i] = t;
            t = next;
        }
    }
    free(sh->buckets);
    sh->buckets = nb;
    sh->nbuckets = n;
}

static void timer_free(gs__timer_t *t)
{
    json_decref(t->msg);
    if (t->by_name)
        free(t->target.name);
    else
        gs_server_unref(t->target.to);
    free(t);
}

/* ---------------------------------------------------------------------------------------- */
/* The timer thread                                                                           */
/* ---------------------------------------------------------------------------------------- */

static void fire_timer(gs_runtime_t *rt, gs__timer_t *t)
{
    gs__tmap_shard_t *sh = tshard(&rt->timers, t->ref);
    bool fired = false;
    uv_mutex_lock(&sh->lock);
    if (atomic_load_explicit(&t->state, memory_order_relaxed) == T_PENDING) { /* lock */
        atomic_store_explicit(&t->state, T_FIRED, memory_order_relaxed);
        *tmap_slot(sh, t->ref) = t->hnext;
        sh->count--;
        fired = true;
    }
    uv_mutex_unlock(&sh->lock);
    if (!fired)
        return; /* cancelled: its CANCEL command frees it */
    atomic_fetch_sub_explicit(&rt->pending_timers, 1, memory_order_relaxed); /* counter */
    json_t *msg = t->msg;
    t->msg = NULL;
    int rc;
    /* Forced past the mailbox limit: a server's own tick must not be lost to a busy spell. */
    if (!t->by_name) {
        rc = gs__server_send(t->target.to, GS__MSG_INFO, msg, true);
    } else {
        gs_server_t *s = gs__registry_whereis(rt, t->target.name);
        rc = s != NULL ? gs__server_send(s, GS__MSG_INFO, msg, true) : GS_ENOSERVER;
        if (s == NULL)
            json_decref(msg);
        gs_server_unref(s);
    }
    if (rc != 0)
        atomic_fetch_add_explicit(&rt->dropped_timers, 1, memory_order_relaxed); /* counter */
    timer_free(t);
}

static void fire_call(gs_runtime_t *rt, gs__call_t *c)
{
    gs__held_remove(rt, c); /* a late gs_reply finds nothing; idempotent if it lost */
    if (gs__call_complete(rt, c, c->timeout_status, NULL, true))
        gs__call_unref(c); /* the timer's reference */
    /* else: completed elsewhere; that path's CANCEL releases the timer's reference */
}

static void fire(gs_runtime_t *rt, gs__tnode_t *n)
{
    if (n->kind == GS__TNODE_CALL)
        fire_call(rt, gs__container_of(n, gs__call_t, tnode));
    else
        fire_timer(rt, gs__container_of(n, gs__timer_t, t));
}

static bool node_cancelled(gs__tnode_t *n)
{
    if (n->kind == GS__TNODE_CALL) {
        gs__call_t *c = gs__container_of(n, gs__call_t, tnode);
        /* acquire: pairs with the exchange in gs__call_complete */
        return atomic_load_explicit(&c->done, memory_order_acquire) != 0;
    }
    gs__timer_t *t = gs__container_of(n, gs__timer_t, t);
    /* acquire: the cancel happened under the shard lock before its CANCEL was pushed */
    return atomic_load_explicit(&t->state, memory_order_acquire) == T_CANCELLED;
}

static void release_node(gs__tnode_t *n)
{
    if (n->kind == GS__TNODE_CALL)
        gs__call_unref(gs__container_of(n, gs__call_t, tnode));
    else
        timer_free(gs__container_of(n, gs__timer_t, t));
}

static void drain_commands(gs_runtime_t *rt)
{
    gs__timers_t *tm = &rt->timers;
    gs__qnode_t *q;
    while ((q = gs__mpsc_pop(&tm->cmds, &tm->cmds_tail)) != NULL) {
        gs__tcmd_t *cmd = gs__container_of(q, gs__tcmd_t, q);
        if (cmd->op == GS__TCMD_ADD) {
            gs__tnode_t *n = gs__container_of(cmd, gs__tnode_t, add);
            if (!node_cancelled(n)) {
                /* ceil: a tick is processed once the clock reached it, never early */
                n->w.due_tick = (n->due_ns + NS_PER_TICK - 1) / NS_PER_TICK;
                gs__wheel_insert(&tm->wheel, &n->w);
            }
            /* else: a CANCEL follows in the queue and releases it */
        } else {
            gs__tnode_t *n = gs__container_of(cmd, gs__tnode_t, cancel);
            gs__wheel_remove(&tm->wheel, &n->w);
            release_node(n);
        }
    }
}

static void fire_wnode(gs__wnode_t *w, void *rt)
{
    fire(rt, gs__container_of(w, gs__tnode_t, w));
}

static void timer_cb(uv_timer_t *h);

static void process(gs_runtime_t *rt)
{
    gs__timers_t *tm = &rt->timers;
    uint64_t now, next;
    for (;;) {
        drain_commands(rt);
        now = gs__now_ns();
        gs__wheel_advance(&tm->wheel, now / NS_PER_TICK, fire_wnode, rt);
        uint64_t tick = gs__wheel_next(&tm->wheel);
        next = tick == UINT64_MAX ? UINT64_MAX : tick * NS_PER_TICK;
        if (next != UINT64_MAX && next > now + RESCAN_NS)
            next = now + RESCAN_NS;
        atomic_store(&tm->armed_due_ns, next); /* seq_cst: see the top of the file */
        if (!gs__mpsc_maybe_nonempty(&tm->cmds, tm->cmds_tail))
            break;
    }
    if (atomic_load(&tm->stop)) {
        uv_close((uv_handle_t *)&tm->wake, NULL);
        uv_close((uv_handle_t *)&tm->timer, NULL);
        return;
    }
    if (next == UINT64_MAX) {
        uv_timer_stop(&tm->timer);
        return;
    }
    uv_update_time(&tm->loop);
    /* uv timers count whole milliseconds: round up so we never wake before the due time */
    uint64_t ms = next > now ? (next - now + 999999u) / 1000000u : 0;
    uv_timer_start(&tm->timer, timer_cb, ms, 0);
}

static void timer_cb(uv_timer_t *h)
{
    process(h->loop->data);
}

static void wake_cb(uv_async_t *h)
{
    process(h->loop->data);
}

static void timer_main(void *arg)
{
    gs_runtime_t *rt = arg;
    gs__tls.runtime_thread = true;
    uv_run(&rt->timers.loop, UV_RUN_DEFAULT);
}

int gs__timers_start(gs_runtime_t *rt)
{
    gs__timers_t *tm = &rt->timers;
    gs__mpsc_init(&tm->cmds, &tm->cmds_tail);
    atomic_init(&tm->armed_due_ns, UINT64_MAX);
    atomic_init(&tm->stop, 0);
    atomic_init(&tm->next_ref, 1);
    gs__wheel_init(&tm->wheel, gs__now_ns() / NS_PER_TICK);
    for (int i = 0; i < GS__TIMER_SHARDS; i++) {
        uv_mutex_init(&tm->shards[i].lock);
        tm->shards[i].nbuckets = 16;
        tm->shards[i].buckets = calloc(16, sizeof(gs__timer_t *));
        if (tm->shards[i].buckets == NULL)
            abort();
    }
    if (uv_loop_init(&tm->loop) != 0)
        return GS_ENOMEM;
    tm->loop.data = rt;
    uv_async_init(&tm->loop, &tm->wake, wake_cb);
    uv_timer_init(&tm->loop, &tm->timer);
    if (uv_thread_create(&tm->thread, timer_main, rt) != 0) {
        uv_close((uv_handle_t *)&tm->wake, NULL);
        uv_close((uv_handle_t *)&tm->timer, NULL);
        uv_run(&tm->loop, UV_RUN_DEFAULT);
        uv_loop_close(&tm->loop);
        return GS_ENOMEM;
    }
    return 0;
}

void gs__timers_stop(gs_runtime_t *rt)
{
    gs__timers_t *tm = &rt->timers;
    atomic_store(&tm->stop, 1);
    uv_async_send(&tm->wake);
    uv_thread_join(&tm->thread);
    uv_loop_close(&tm->loop);
}

void gs__timers_free(gs_runtime_t *rt)
{
    gs__timers_t *tm = &rt->timers;
    /* Commands posted after the thread stopped (cancels from the last completions), then
     * whatever is still pending: timers are dropped, call timeouts end the calls. */
    drain_commands(rt);
    gs__wnode_t *w;
    while ((w = gs__wheel_pop_any(&tm->wheel)) != NULL) {
        gs__tnode_t *n = gs__container_of(w, gs__tnode_t, w);
        if (n->kind == GS__TNODE_CALL) {
            gs__call_t *c = gs__container_of(n, gs__call_t, tnode);
            c->timeout_status = GS_ESHUTDOWN;
            fire_call(rt, c);
        } else {
            gs__timer_t *t = gs__container_of(n, gs__timer_t, t);
            if (atomic_load(&t->state) == T_PENDING) {
                gs__tmap_shard_t *sh = tshard(tm, t->ref);
                *tmap_slot(sh, t->ref) = t->hnext;
                sh->count--;
                atomic_fetch_sub(&rt->pending_timers, 1);
                timer_free(t);
            }
        }
        drain_commands(rt);
    }
    for (int i = 0; i < GS__TIMER_SHARDS; i++) {
        free(tm->shards[i].buckets);
        uv_mutex_destroy(&tm->shards[i].lock);
    }
}

void gs__timers_post(gs_runtime_t *rt, gs__tnode_t *n, gs__tcmd_op_t op)
{
    gs__timers_t *tm = &rt->timers;
    gs__tcmd_t *cmd = op == GS__TCMD_ADD ? &n->add : &n->cancel;
    cmd->op = (uint8_t)op;
    gs__mpsc_push(&tm->cmds, &cmd->q);
    /* seq_cst load after the push: see the top of the file. Cancels never wake: they are
     * picked up within RESCAN_NS. */
    if (op == GS__TCMD_ADD && n->due_ns < atomic_load(&tm->armed_due_ns) &&
        !atomic_load_explicit(&tm->stop, memory_order_relaxed))
        uv_async_send(&tm->wake);
}

/* ---------------------------------------------------------------------------------------- */
/* send_after, cancel_timer, read_timer                                                       */
/* ---------------------------------------------------------------------------------------- */

static int send_after(gs_runtime_t *rt, gs_server_t *to, const char *name, json_t *msg,
                      uint64_t delay_ms, gs_timer_ref_t *ref)
{
    gs__timers_t *tm = &rt->timers;
    if (ref != NULL)
        *ref = 0;
    if (atomic_load(&rt->shutting_down)) {
        json_decref(msg);
        return GS_ESHUTDOWN;
    }
    if (delay_ms > (uint64_t)365 * 24 * 3600 * 1000) { /* a year: beyond that, a mistake */
        json_decref(msg);
        return GS_EINVAL;
    }
    gs__timer_t *t = calloc(1, sizeof(*t));
    if (t == NULL || (name != NULL && (t->target.name = strdup(name)) == NULL)) {
        free(t);
        json_decref(msg);
        return GS_ENOMEM;
    }
    t->t.kind = GS__TNODE_TIMER;
    t->t.due_ns = gs__now_ns() + delay_ms * 1000000u;
    t->msg = msg;
    t->by_name = name != NULL;
    if (!t->by_name)
        t->target.to = gs_server_ref(to);
    atomic_init(&t->state, T_PENDING);
    /* relaxed: only uniqueness matters */
    t->ref = atomic_fetch_add_explicit(&tm->next_ref, 1, memory_order_relaxed);
    gs_timer_ref_t r = t->ref;
    atomic_fetch_add_explicit(&rt->pending_timers, 1, memory_order_relaxed); /* counter */

    gs__tmap_shard_t *sh = tshard(tm, t->ref);
    uv_mutex_lock(&sh->lock);
    if (sh->count >= sh->nbuckets * 2)
        tmap_grow(sh);
    gs__timer_t **slot = &sh->buckets[(t->ref / GS__TIMER_SHARDS) & (sh->nbuckets - 1)];
    t->hnext = *slot;
    *slot = t;
    sh->count++;
    gs__timers_post(rt, &t->t, GS__TCMD_ADD); /* under the lock: see the top of the file */
    uv_mutex_unlock(&sh->lock);
    if (ref != NULL)
        *ref = r;
    return 0;
}

int gs_send_after(gs_runtime_t *rt, const char *name, json_t *msg, uint64_t delay_ms,
                  gs_timer_ref_t *ref)
{
    size_t len = name != NULL ? strnlen(name, GS__NAME_MAX + 1) : 0;
    if (rt == NULL || msg == NULL || len == 0 || len > GS__NAME_MAX) {
        json_decref(msg);
        if (ref != NULL)
            *ref = 0;
        return GS_EINVAL;
    }
    return send_after(rt, NULL, name, msg, delay_ms, ref);
}

int gs_send_after_server(gs_server_t *to, json_t *msg, uint64_t delay_ms, gs_timer_ref_t *ref)
{
    if (to == NULL || msg == NULL) {
        json_decref(msg);
        if (ref != NULL)
            *ref = 0;
        return GS_EINVAL;
    }
    return send_after(to->rt, to, NULL, msg, delay_ms, ref);
}

static int64_t remaining_ms(const gs__timer_t *t)
{
    uint64_t now = gs__now_ns();
    if (t->t.due_ns <= now)
        return 0;
    return (int64_t)((t->t.due_ns - now + 999999u) / 1000000u);
}

int gs_cancel_timer(gs_runtime_t *rt, gs_timer_ref_t ref, int64_t *remaining)
{
    if (rt == NULL || ref == 0)
        return GS_ENOTIMER;
    gs__tmap_shard_t *sh = tshard(&rt->timers, ref);
    gs__timer_t *t = NULL;
    uv_mutex_lock(&sh->lock);
    gs__timer_t **slot = tmap_slot(sh, ref);
    if (*slot != NULL && atomic_load_explicit(&(*slot)->state, memory_order_relaxed) ==
                             T_PENDING) { /* the lock orders it */
        t = *slot;
        atomic_store_explicit(&t->state, T_CANCELLED, memory_order_release);
        *slot = t->hnext;
        sh->count--;
        if (remaining != NULL)
            *remaining = remaining_ms(t);
        gs__timers_post(rt, &t->t, GS__TCMD_CANCEL);
    }
    uv_mutex_unlock(&sh->lock);
    if (t == NULL)
        return GS_ENOTIMER;
    atomic_fetch_sub_explicit(&rt->pending_timers, 1, memory_order_relaxed); /* counter */
    return 0;
}

int gs_read_timer(gs_runtime_t *rt, gs_timer_ref_t ref, int64_t *remaining)
{
    if (rt == NULL || ref == 0)
        return GS_ENOTIMER;
    gs__tmap_shard_t *sh = tshard(&rt->timers, ref);
    int rc = GS_ENOTIMER;
    uv_mutex_lock(&sh->lock);
    gs__timer_t *t = *tmap_slot(sh, ref);
    if (t != NULL) {
        if (remaining != NULL)
            *remaining = remaining_ms(t);
        rc = 0;
    }
    uv_mutex_unlock(&sh->lock);
    return rc;
}
