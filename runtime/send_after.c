/*
 * send_after.c: Process.send_after, read_timer and cancel_timer: a message delivered to a
 * server's handle_info when its timer node fires on the timer thread (timer.c).
 *
 * API (a send_after timer):
 *   gs_send_after    record in the timer map (shard-locked) + ADD, under the shard lock, so a
 *                    cancel's CANCEL can never overtake its ADD.
 *   fire             PENDING -> FIRED under the shard lock, deliver, free.
 *   gs_cancel_timer  PENDING -> CANCELLED under the shard lock, then CANCEL: the timer thread
 *                    takes it out of the wheel (if there) and frees it.
 */
#include "runtime_internal.h"

#include <stdlib.h>
#include <string.h>

enum { T_PENDING = 0, T_FIRED, T_CANCELLED };

struct gs__timer_s {
    gs__tnode_t t;
    /* In the timer map while pending (shard lock). Its hash, gs_hash_u64(ref), is a bijection
     * of the ref, so it is the key itself: no separate ref field (see the size below). */
    gs_map_node_t node;
    _Atomic uint8_t state; /* changed under the map shard's lock */
    bool by_name;          /* which member of target is set */
    json_t *msg;           /* owned until delivered */
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
/* The timer map: ref -> pending timer, for read_timer and cancel_timer from any thread       */
/* ---------------------------------------------------------------------------------------- */

/* gs_map_find compares hashes first, and equal hashes mean equal refs (see the struct). */
static bool timer_has_ref(const gs_map_node_t *node, const void *key)
{
    (void)node;
    (void)key;
    return true;
}

/* The pending timer ref, with its shard locked (the caller unlocks *sh), or NULL. */
static gs__timer_t *find_locked(gs_runtime_t *rt, gs_timer_ref_t ref, gs_shmap_shard_t **sh)
{
    uint64_t hash = gs_hash_u64(ref);

    *sh = gs_shmap_shard(&rt->timer_refs, hash);
    gs_shmap_lock(*sh);
    gs_map_node_t *n = gs_map_find(&(*sh)->map, hash, &ref, timer_has_ref);
    return n != NULL ? gs__container_of(n, gs__timer_t, node) : NULL;
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

static void timer_fire(gs_runtime_t *rt, gs__tnode_t *n)
{
    gs__timer_t *t = gs__container_of(n, gs__timer_t, t);
    gs_shmap_shard_t *sh = gs_shmap_shard(&rt->timer_refs, t->node.hash);
    bool fired = false;
    gs_shmap_lock(sh);
    if (atomic_load_explicit(&t->state, memory_order_relaxed) == T_PENDING) { /* lock */
        atomic_store_explicit(&t->state, T_FIRED, memory_order_relaxed);
        gs_map_unlink(&sh->map, &t->node);
        fired = true;
    }
    gs_shmap_unlock(sh);
    if (!fired)
        return; /* cancelled: its CANCEL command frees it */
    atomic_fetch_sub_explicit(&rt->stats.pending_timers, 1, memory_order_relaxed); /* gauge */
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
        atomic_fetch_add_explicit(&rt->stats.dropped_timers, 1, memory_order_relaxed); /* counter */
    timer_free(t);
}

static bool timer_cancelled(gs__tnode_t *n)
{
    gs__timer_t *t = gs__container_of(n, gs__timer_t, t);
    /* acquire: the cancel happened under the shard lock before its CANCEL was pushed */
    return atomic_load_explicit(&t->state, memory_order_acquire) == T_CANCELLED;
}

static void timer_release(gs__tnode_t *n)
{
    timer_free(gs__container_of(n, gs__timer_t, t));
}

/* Still pending when the runtime is destroyed: dropped. */
static void timer_shutdown(gs_runtime_t *rt, gs__tnode_t *n)
{
    gs__timer_t *t = gs__container_of(n, gs__timer_t, t);
    if (atomic_load(&t->state) != T_PENDING)
        return; /* cancelled: its CANCEL, drained next, frees it */
    gs_shmap_shard_t *sh = gs_shmap_shard(&rt->timer_refs, t->node.hash);
    gs_map_unlink(&sh->map, &t->node);
    atomic_fetch_sub(&rt->stats.pending_timers, 1);
    timer_free(t);
}

static const gs__tnode_ops_t timer_ops = {timer_fire, timer_cancelled, timer_release,
                                          timer_shutdown};

int gs__send_after_init(gs_runtime_t *rt)
{
    return gs_shmap_init(&rt->timer_refs);
}

void gs__send_after_close(gs_runtime_t *rt)
{
    gs_shmap_close(&rt->timer_refs);
}

/* ---------------------------------------------------------------------------------------- */
/* send_after, cancel_timer, read_timer                                                       */
/* ---------------------------------------------------------------------------------------- */

static int send_after(gs_runtime_t *rt, gs_server_t *to, const char *name, json_t *msg,
                      uint64_t delay_ms, gs_timer_ref_t *ref)
{
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
    t->t.ops = &timer_ops;
    t->t.due_ns = gs__now_ns() + delay_ms * 1000000u;
    t->msg = msg;
    t->by_name = name != NULL;
    if (!t->by_name)
        t->target.to = gs__server_ref(to);
    atomic_init(&t->state, T_PENDING);
    /* relaxed: only uniqueness matters */
    gs_timer_ref_t r = atomic_fetch_add_explicit(&rt->next_timer_ref, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&rt->stats.pending_timers, 1, memory_order_relaxed); /* gauge */

    uint64_t hash = gs_hash_u64(r);
    gs_shmap_shard_t *sh = gs_shmap_shard(&rt->timer_refs, hash);
    gs_shmap_lock(sh);
    if (gs_map_insert(&sh->map, &t->node, hash) != 0)
        abort(); /* the first 8 buckets of a shard: a tiny internal allocation */
    gs__timers_post(rt, &t->t, GS__TCMD_ADD); /* under the lock: see the top of the file */
    gs_shmap_unlock(sh);
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
    gs_shmap_shard_t *sh;
    gs__timer_t *t = find_locked(rt, ref, &sh);
    /* Only pending timers are in the map (the lock orders the state) */
    if (t != NULL) {
        atomic_store_explicit(&t->state, T_CANCELLED, memory_order_release);
        gs_map_unlink(&sh->map, &t->node);
        if (remaining != NULL)
            *remaining = remaining_ms(t);
        gs__timers_post(rt, &t->t, GS__TCMD_CANCEL);
    }
    gs_shmap_unlock(sh);
    if (t == NULL)
        return GS_ENOTIMER;
    atomic_fetch_sub_explicit(&rt->stats.pending_timers, 1, memory_order_relaxed); /* gauge */
    return 0;
}

int gs_read_timer(gs_runtime_t *rt, gs_timer_ref_t ref, int64_t *remaining)
{
    if (rt == NULL || ref == 0)
        return GS_ENOTIMER;
    gs_shmap_shard_t *sh;
    int rc = GS_ENOTIMER;
    gs__timer_t *t = find_locked(rt, ref, &sh);
    if (t != NULL) {
        if (remaining != NULL)
            *remaining = remaining_ms(t);
        rc = 0;
    }
    gs_shmap_unlock(sh);
    return rc;
}
