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

#include <genserv/message.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { T_PENDING = 0, T_FIRED, T_CANCELLED };

struct gs__timer_s {
    gs__tnode_t t;
    /* In the timer map while pending (shard lock). Its hash, gs_hash_u64(ref), is a bijection
     * of the ref, so it is the key itself: no separate ref field (see the size below). */
    gs_map_node_t node;
    _Atomic uint8_t state; /* changed under the map shard's lock */
    bool by_name;          /* which member of target is set */
    bool external;         /* gs_timer_options_t.external */
    uint8_t kind;          /* delivered as: GS__MSG_INFO, or GS__MSG_TIMEOUT (a result's) */
    uint32_t msg_bytes;    /* gs_json_size(msg), counted against the bounds */
    json_t *msg;           /* owned until delivered */
    union {
        gs_server_t *to;    /* referenced: this incarnation only */
        gs__child_t *child; /* referenced: whoever holds its name when it fires */
    } target;
    int64_t created_at_ms; /* Unix time, for listings */
};

/* At most 120 bytes, so that glibc keeps a freed record in a fastbin. A larger one is freed
 * with coalescing, and when a million of them are freed in due-time order (not allocation
 * order) the coalesced holes reach 64 KiB, which makes glibc consolidate every fastbin of
 * the arena under its lock: the json_t messages the sinks had freed, hundreds of thousands of
 * them. runtime_bench saw 100 ms stalls of the timer thread and the sink (p99 lateness 70-90
 * ms instead of 3) until the record shrank below this line. */
_Static_assert(sizeof(struct gs__timer_s) <= 120, "a timer record must stay fastbin-sized");

/* gs_hash_u64 undone: the ref of a record, from its map hash. */
static gs_timer_ref_t ref_of(const gs__timer_t *t)
{
    uint64_t y = t->node.hash;

    y ^= (y >> 31) ^ (y >> 62);
    y *= 0x319642b2d24d8ec3ull; /* the inverse of 0x94d049bb133111eb mod 2^64 */
    y ^= (y >> 27) ^ (y >> 54);
    y *= 0x96de1b173f119089ull; /* the inverse of 0xbf58476d1ce4e5b9 mod 2^64 */
    y ^= (y >> 30) ^ (y >> 60);
    return y;
}

/* The named server a timer counts against. */
static gs__child_t *counted_child(const gs__timer_t *t)
{
    return t->by_name ? t->target.child : t->target.to->child;
}

/* ---------------------------------------------------------------------------------------- */
/* The bounds                                                                                 */
/* ---------------------------------------------------------------------------------------- */

/* Count a new timer of `bytes` against its child and the runtime; GS_EOVERLOADED (nothing
 * counted) past a bound. relaxed: tallies checked against bounds, which a racing thread may
 * overshoot by one timer before it undoes its own count. */
static int account(gs_runtime_t *rt, gs__child_t *c, uint64_t bytes)
{
    const gs_runtime_options_t *o = &rt->opts;
    uint64_t n = atomic_fetch_add_explicit(&rt->stats.pending_timers, 1, memory_order_relaxed);
    uint64_t b =
        atomic_fetch_add_explicit(&rt->stats.pending_timer_bytes, bytes, memory_order_relaxed);
    uint64_t cn = atomic_fetch_add_explicit(&c->timers, 1, memory_order_relaxed);
    uint64_t cb = atomic_fetch_add_explicit(&c->timer_bytes, bytes, memory_order_relaxed);

    if (n < o->max_timers && b + bytes <= o->max_timer_bytes && cn < o->max_timers_per_server &&
        cb + bytes <= o->max_timer_bytes_per_server)
        return 0;
    atomic_fetch_sub_explicit(&rt->stats.pending_timers, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&rt->stats.pending_timer_bytes, bytes, memory_order_relaxed);
    atomic_fetch_sub_explicit(&c->timers, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&c->timer_bytes, bytes, memory_order_relaxed);
    return GS_EOVERLOADED;
}

/* The timer left the map (fired, cancelled or dropped at shutdown): count it out. */
static void unaccount(gs_runtime_t *rt, gs__timer_t *t)
{
    gs__child_t *c = counted_child(t);

    atomic_fetch_sub_explicit(&rt->stats.pending_timers, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&rt->stats.pending_timer_bytes, t->msg_bytes, memory_order_relaxed);
    atomic_fetch_sub_explicit(&c->timers, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&c->timer_bytes, t->msg_bytes, memory_order_relaxed);
}

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
        gs__child_unref(t->target.child);
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
    unaccount(rt, t);
    json_t *msg = t->msg;
    t->msg = NULL;
    int rc;
    /* Past the mailbox limit, but for external timers: a server's own tick must not be lost
     * to a busy spell, while a client's timer is a client's message like any cast. */
    if (!t->by_name) {
        rc = gs__server_send(t->target.to, t->kind, msg, !t->external);
    } else {
        gs_server_t *s = gs__registry_whereis(rt, t->target.child->name);
        rc = s != NULL ? gs__server_send(s, t->kind, msg, !t->external) : GS_ENOSERVER;
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
    unaccount(rt, t);
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

static int send_after(gs_runtime_t *rt, gs_server_t *to, gs__child_t *child, json_t *msg,
                      uint64_t delay_ms, const gs_timer_options_t *opts, uint8_t kind,
                      gs_timer_ref_t *ref)
{
    int rc = 0;
    gs__timer_t *t = NULL;

    if (atomic_load(&rt->shutting_down)) {
        rc = GS_ESHUTDOWN;
        goto out;
    }
    if (delay_ms > (uint64_t)365 * 24 * 3600 * 1000) { /* a year: beyond that, a mistake */
        rc = GS_EINVAL;
        goto out;
    }
    if (opts->external && delay_ms == 0 && child != NULL) {
        /* Due at once into a full mailbox: refused now rather than dropped in a moment. */
        gs_server_t *s = gs__registry_whereis(rt, child->name);
        bool full = s != NULL &&
                    atomic_load_explicit(&s->mailbox_len, memory_order_relaxed) >= s->mailbox_limit;
        gs_server_unref(s);
        if (full) {
            rc = GS_EOVERLOADED;
            goto out;
        }
    }
    size_t bytes = gs_json_size(msg);
    if (bytes > UINT32_MAX || (rc = account(rt, child != NULL ? child : to->child, bytes)) != 0) {
        rc = GS_EOVERLOADED;
        goto out;
    }
    t = calloc(1, sizeof(*t));
    if (t == NULL) {
        gs__timer_t probe = {.by_name = child != NULL, .msg_bytes = (uint32_t)bytes};
        if (child != NULL)
            probe.target.child = child;
        else
            probe.target.to = to;
        unaccount(rt, &probe);
        rc = GS_ENOMEM;
        goto out;
    }
    t->t.ops = &timer_ops;
    t->t.w.due_tick = gs__due_tick(delay_ms);
    t->msg = msg;
    msg = NULL;
    t->msg_bytes = (uint32_t)bytes;
    t->external = opts->external;
    t->kind = kind;
    t->by_name = child != NULL;
    if (t->by_name) {
        gs__child_ref(child);
        t->target.child = child;
    } else {
        t->target.to = gs__server_ref(to);
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    t->created_at_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    atomic_init(&t->state, T_PENDING);
    /* relaxed: only uniqueness matters */
    gs_timer_ref_t r = atomic_fetch_add_explicit(&rt->next_timer_ref, 1, memory_order_relaxed);

    uint64_t hash = gs_hash_u64(r);
    gs_shmap_shard_t *sh = gs_shmap_shard(&rt->timer_refs, hash);
    gs_shmap_lock(sh);
    if (gs_map_insert(&sh->map, &t->node, hash) != 0)
        abort(); /* the first 8 buckets of a shard: a tiny internal allocation */
    gs__timers_post(rt, &t->t, GS__TCMD_ADD); /* under the lock: see the top of the file */
    gs_shmap_unlock(sh);
    if (ref != NULL)
        *ref = r;
out:
    json_decref(msg);
    return rc;
}

int gs_send_after_opts(gs_runtime_t *rt, const char *name, json_t *msg, uint64_t delay_ms,
                       const gs_timer_options_t *opts, gs_timer_ref_t *ref)
{
    static const gs_timer_options_t defaults = {.external = false};
    size_t len = name != NULL ? strnlen(name, GS__NAME_MAX + 1) : 0;
    int rc;

    if (ref != NULL)
        *ref = 0;
    if (rt == NULL || msg == NULL || len == 0 || len > GS__NAME_MAX) {
        json_decref(msg);
        return GS_EINVAL;
    }
    if (opts == NULL)
        opts = &defaults;
    if (atomic_load(&rt->shutting_down)) {
        json_decref(msg);
        return GS_ESHUTDOWN;
    }
    gs__child_t *child = gs__registry_child(rt, name);
    if (child == NULL && opts->external) {
        json_decref(msg); /* a client's typo is an error now, not a silently dropped timer */
        return GS_ENOSERVER;
    }
    if (child == NULL) {
        /* Process.send_after to a name nobody holds yet: the timer keeps the name in a record
         * of its own (registered nowhere) and resolves it when it fires. It counts against
         * the runtime's bounds; a server's own bounds begin once a server holds the name. */
        gs_start_options_t none;
        gs_start_options_init(&none);
        none.mailbox_limit = 1;
        child = gs__child_create(rt, name, len, NULL, NULL, &none);
        if (child == NULL) {
            json_decref(msg);
            return GS_ENOMEM;
        }
    }
    rc = send_after(rt, NULL, child, msg, delay_ms, opts, GS__MSG_INFO, ref);
    gs__child_unref(child);
    return rc;
}

int gs_send_after(gs_runtime_t *rt, const char *name, json_t *msg, uint64_t delay_ms,
                  gs_timer_ref_t *ref)
{
    return gs_send_after_opts(rt, name, msg, delay_ms, NULL, ref);
}

int gs_send_after_server(gs_server_t *to, json_t *msg, uint64_t delay_ms, gs_timer_ref_t *ref)
{
    static const gs_timer_options_t defaults = {.external = false};

    if (ref != NULL)
        *ref = 0;
    if (to == NULL || msg == NULL) {
        json_decref(msg);
        return GS_EINVAL;
    }
    return send_after(to->rt, to, NULL, msg, delay_ms, &defaults, GS__MSG_INFO, ref);
}

int gs__send_timeout(gs_server_t *s, uint64_t ms, gs_timer_ref_t *ref)
{
    static const gs_timer_options_t own = {.external = false};
    json_t *gen = json_integer((json_int_t)s->timeout_gen);

    if (gen == NULL)
        return GS_ENOMEM;
    return send_after(s->rt, s, NULL, gen, ms, &own, GS__MSG_TIMEOUT, ref);
}

/* Read or cancel ref; external_only refuses the servers' own timers (as if absent). */
static int read_or_cancel(gs_runtime_t *rt, gs_timer_ref_t ref, bool cancel, bool external_only,
                          int64_t *remaining)
{
    if (rt == NULL || ref == 0)
        return GS_ENOTIMER;
    gs_shmap_shard_t *sh;
    gs__timer_t *t = find_locked(rt, ref, &sh);
    /* Only pending timers are in the map (the lock orders the state) */
    if (t != NULL && external_only && !t->external)
        t = NULL;
    if (t != NULL) {
        if (remaining != NULL)
            *remaining = gs__ms_until(t->t.w.due_tick);
        if (cancel) {
            atomic_store_explicit(&t->state, T_CANCELLED, memory_order_release);
            gs_map_unlink(&sh->map, &t->node);
            unaccount(rt, t);
            gs__timers_post(rt, &t->t, GS__TCMD_CANCEL);
        }
    }
    gs_shmap_unlock(sh);
    return t != NULL ? 0 : GS_ENOTIMER;
}

int gs_cancel_timer(gs_runtime_t *rt, gs_timer_ref_t ref, int64_t *remaining)
{
    return read_or_cancel(rt, ref, true, false, remaining);
}

int gs_read_timer(gs_runtime_t *rt, gs_timer_ref_t ref, int64_t *remaining)
{
    return read_or_cancel(rt, ref, false, false, remaining);
}

int gs_cancel_external_timer(gs_runtime_t *rt, gs_timer_ref_t ref, int64_t *remaining)
{
    return read_or_cancel(rt, ref, true, true, remaining);
}

int gs_read_external_timer(gs_runtime_t *rt, gs_timer_ref_t ref, int64_t *remaining)
{
    return read_or_cancel(rt, ref, false, true, remaining);
}

typedef struct due_ref_s {
    uint64_t due_tick;
    gs_timer_ref_t ref;
} due_ref_t;

typedef struct listing_s {
    due_ref_t *items;
    size_t n, cap;
} listing_t;

static bool collect_external(gs_map_node_t *node, void *arg)
{
    gs__timer_t *t = gs__container_of(node, gs__timer_t, node);
    listing_t *l = arg;

    if (!t->external)
        return false;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        due_ref_t *grown = realloc(l->items, cap * sizeof(*grown));
        if (grown == NULL)
            return false; /* a shorter listing rather than none */
        l->items = grown;
        l->cap = cap;
    }
    l->items[l->n++] = (due_ref_t){t->t.w.due_tick, ref_of(t)};
    return false;
}

static int by_due(const void *a, const void *b)
{
    const due_ref_t *x = a, *y = b;
    return (x->due_tick > y->due_tick) - (x->due_tick < y->due_tick);
}

/* One pending external timer as JSON (see the header), or NULL when it is gone by now. */
static json_t *describe(gs_runtime_t *rt, gs_timer_ref_t ref)
{
    gs_shmap_shard_t *sh;
    gs__timer_t *t = find_locked(rt, ref, &sh);
    json_t *e = NULL;

    if (t != NULL && t->external)
        /* A copy: the message stays the timer thread's to deliver (see gs__json_copy). */
        e = json_pack("{s:I, s:s, s:o, s:I, s:I}", "ref", (json_int_t)ref, "server",
                      counted_child(t)->name, "message", json_deep_copy(t->msg), "remaining_ms",
                      (json_int_t)gs__ms_until(t->t.w.due_tick), "created_at_ms",
                      (json_int_t)t->created_at_ms);
    gs_shmap_unlock(sh);
    return e;
}

json_t *gs_external_timers_json(gs_runtime_t *rt, size_t limit)
{
    listing_t l = {NULL, 0, 0};
    json_t *list = json_array();

    /* Refs and due times first (16 bytes a timer), so that only the `limit` soonest are
     * described, whatever the number pending. */
    for (int i = 0; i < GS_SHMAP_SHARDS; i++) {
        gs_shmap_shard_t *sh = &rt->timer_refs.shards[i];
        gs_shmap_lock(sh);
        gs_map_filter(&sh->map, collect_external, &l);
        gs_shmap_unlock(sh);
    }
    if (l.n > 1)
        qsort(l.items, l.n, sizeof(*l.items), by_due);
    for (size_t i = 0; list != NULL && i < l.n && json_array_size(list) < limit; i++) {
        json_t *e = describe(rt, l.items[i].ref);
        if (e != NULL)
            json_array_append_new(list, e);
    }
    free(l.items);
    return json_pack("{s:I, s:o}", "count", (json_int_t)l.n, "timers",
                     list != NULL ? list : json_array());
}
