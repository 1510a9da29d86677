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
#include <genserv/store.h>

#include <stdio.h>
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
    uint8_t kind;          /* delivered as: GS__MSG_INFO, or GS__MSG_TIMEOUT (a result's) */
    uint8_t misfire;       /* gs_misfire_t, for its row */
    bool by_name : 1;      /* which member of target is set */
    bool external : 1;     /* gs_timer_options_t.external */
    bool durable : 1;      /* it has a row in the store (durable.c): keyed by its ref */
    bool restored : 1;     /* armed again from the store at start (created_by "restored") */
    /* Made in a server's callback (created_by): by its own target (its tick, its result's
     * timeout: almost every server timer), or by another server, whose name is not kept (a
     * pointer would take the record past 120 bytes, see below). */
    bool by_self : 1;
    bool by_other : 1;
    uint32_t msg_bytes;    /* gs_json_size(msg), counted against the bounds */
    uint32_t interval_ms;  /* periodic: fires again after this many ms; 0: once */
    uint32_t created_at_s; /* Unix time in seconds (listings show it in ms: the size below) */
    json_t *msg;           /* owned until delivered */
    union {
        gs_server_t *to;    /* referenced: this incarnation only */
        gs__child_t *child; /* referenced: whoever holds its name when it fires */
    } target;
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

    if (t->durable) { /* relaxed: tallies */
        atomic_fetch_sub_explicit(&rt->stats.stored_timers, 1, memory_order_relaxed);
        atomic_fetch_sub_explicit(&c->stored_timers, 1, memory_order_relaxed);
    }
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

static int64_t unix_now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* A stored timer's row (new text): {"to": NAME, "msg": MSG, "due": UNIX_MS, "every": MS,
 * "misfire": POLICY, "external": BOOL, "created": UNIX_MS}. msg: borrowed. */
static char *timer_row(const gs__timer_t *t, const json_t *msg, int64_t due_unix_ms, size_t *len)
{
    json_t *row =
        json_pack("{s:s, s:O, s:I, s:I, s:s, s:b, s:I}", "to", counted_child(t)->name, "msg", msg,
                  "due", (json_int_t)due_unix_ms, "every", (json_int_t)t->interval_ms, "misfire",
                  gs_misfire_name((gs_misfire_t)t->misfire), "external", t->external, "created",
                  (json_int_t)t->created_at_s * 1000);
    char *text = row != NULL ? json_dumps(row, JSON_COMPACT) : NULL;
    json_decref(row);
    if (text == NULL)
        abort(); /* the message is bounded by the timer bounds; its copy is internal */
    *len = strlen(text);
    return text;
}

static void ref_key(gs_timer_ref_t ref, char key[24])
{
    snprintf(key, 24, "%llu", (unsigned long long)ref);
}

/* A stored timer's row goes: with the running durable server's change if there is one,
 * else on its own. */
static void delete_row(gs_runtime_t *rt, gs_timer_ref_t ref)
{
    char key[24];
    ref_key(ref, key);
    gs_server_t *cur = gs__durable_current();
    if (cur != NULL)
        gs__durable_op(cur, GS_STORE_TIMERS, key, NULL, 0);
    else
        gs__durable_op_alone(rt, GS_STORE_TIMERS, key, NULL, 0, NULL, NULL);
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

/* Deliver a fired timer's msg (taken) to its target; a stored timer's message carries its
 * row (meta: deleted, or for a periodic one moved to next_row, with the change it causes). */
static int deliver(gs_runtime_t *rt, gs__timer_t *t, json_t *msg, gs_timer_ref_t ref)
{
    if (t->durable && atomic_load(&rt->shutting_down)) {
        json_decref(msg); /* not delivered: its row stays, and it fires at the next start */
        return GS_ESHUTDOWN;
    }
    gs_server_t *s =
        t->by_name ? gs__registry_whereis(rt, t->target.child->name) : gs__server_ref(t->target.to);
    if (s == NULL) {
        json_decref(msg);
        if (t->durable && t->interval_ms == 0)
            delete_row(rt, ref);
        return GS_ENOSERVER;
    }
    gs__msg_t *m = gs__msg_alloc();
    m->kind = t->kind;
    m->payload = msg;
    bool stored_here = t->durable && s->child->dur != NULL;
    char *next = NULL;
    size_t next_len = 0;
    if (t->durable && t->interval_ms != 0) /* a periodic row moves to its next period */
        next = timer_row(t, msg, unix_now_ms() + t->interval_ms, &next_len);
    if (stored_here) {
        if ((m->meta = calloc(1, sizeof(*m->meta))) == NULL)
            abort(); /* a small fixed-size record */
        m->meta->tref = ref;
        m->meta->row = next;
        m->meta->row_len = next_len;
        next = NULL;
    }
    /* Past the mailbox limit, but for external timers: a server's own tick must not be lost
     * to a busy spell, while a client's timer is a client's message like any cast. */
    int rc = gs__server_push(s, m, !t->external);
    if (rc != 0) {
        json_decref(msg);
        gs__msg_free(m);
    }
    if (t->durable && !stored_here) { /* nobody's change carries it */
        char key[24];
        ref_key(ref, key);
        if (next != NULL)
            gs__durable_op_alone(rt, GS_STORE_TIMERS, key, next, next_len, NULL, NULL);
        else if (t->interval_ms == 0)
            delete_row(rt, ref);
    } else if (t->durable && rc != 0 && t->interval_ms == 0) {
        delete_row(rt, ref); /* pushed nowhere: its meta went with the message */
    }
    gs_server_unref(s);
    return rc;
}

static void timer_fire(gs_runtime_t *rt, gs__tnode_t *n)
{
    gs__timer_t *t = gs__container_of(n, gs__timer_t, t);
    gs_shmap_shard_t *sh = gs_shmap_shard(&rt->timer_refs, t->node.hash);
    gs_timer_ref_t ref = ref_of(t);
    bool fired = false;
    json_t *copy = NULL;
    gs_shmap_lock(sh);
    if (atomic_load_explicit(&t->state, memory_order_relaxed) == T_PENDING) { /* lock */
        if (t->interval_ms != 0) {
            /* Periodic: a copy goes, the timer stays pending for its next period (re-added
             * under the lock, so that a cancel's CANCEL still follows its ADD). */
            copy = json_deep_copy(t->msg);
            t->t.w.due_tick += t->interval_ms;
            gs__timers_post(rt, &t->t, GS__TCMD_ADD);
        } else {
            atomic_store_explicit(&t->state, T_FIRED, memory_order_relaxed);
            gs_map_unlink(&sh->map, &t->node);
            fired = true;
        }
    }
    gs_shmap_unlock(sh);
    if (copy != NULL) {
        if (deliver(rt, t, copy, ref) != 0) /* counter */
            atomic_fetch_add_explicit(&rt->stats.dropped_timers, 1, memory_order_relaxed);
        return;
    }
    if (!fired)
        return; /* cancelled: its CANCEL command frees it */
    unaccount(rt, t);
    json_t *msg = t->msg;
    t->msg = NULL;
    if (deliver(rt, t, msg, ref) != 0) /* counter */
        atomic_fetch_add_explicit(&rt->stats.dropped_timers, 1, memory_order_relaxed);
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

/* What the row of a new stored timer waits for before the timer is armed. */
typedef struct arming_s {
    gs_runtime_t *rt;
    gs_timer_ref_t ref;
    gs_done_cb cb;
    void *arg;
} arming_t;

static void row_committed(int status, void *arg)
{
    arming_t *a = arg;
    gs__timer_release(a->rt, a->ref, status == 0);
    if (a->cb != NULL)
        a->cb(status, a->arg);
    free(a);
}

/* How a timer is made beyond its options: a restored one keeps its ref and its row. */
typedef struct making_s {
    gs_timer_ref_t ref; /* 0: a new ref */
    bool restored;      /* its row is in the store already */
} making_t;

static int send_after(gs_runtime_t *rt, gs_server_t *to, gs__child_t *child, json_t *msg,
                      uint64_t delay_ms, const gs_timer_options_t *opts, uint8_t kind,
                      gs_timer_ref_t *ref, const making_t *making)
{
    int rc = 0;
    gs__timer_t *t = NULL;

    if (atomic_load(&rt->shutting_down)) {
        rc = GS_ESHUTDOWN;
        goto out;
    }
    if (delay_ms > (uint64_t)365 * 24 * 3600 * 1000 || opts->interval_ms > UINT32_MAX ||
        opts->misfire > GS_MISFIRE_SKIP) { /* a year: beyond that, a mistake */
        rc = GS_EINVAL;
        goto out;
    }
    /* Stored (durable.c): a durable server's own timers, and a client's to a durable one. */
    gs__child_t *counted = child != NULL ? child : to->child;
    gs_server_t *gate = kind == GS__MSG_INFO ? gs__durable_current() : NULL;
    bool durable =
        making != NULL && making->restored
            ? true
            : kind == GS__MSG_INFO && (opts->external ? counted->dur != NULL : gate != NULL);
    if (durable && child == NULL) {
        /* A stored timer is addressed by name, as it is after a restart of genserv: a crash
         * and restart of its server in this process must not drop it either. */
        child = to->child;
        to = NULL;
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
    t->durable = durable;
    if (durable) { /* relaxed: tallies; counted out in unaccount */
        atomic_fetch_add_explicit(&rt->stats.stored_timers, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&counted->stored_timers, 1, memory_order_relaxed);
    }
    t->misfire = opts->misfire;
    t->interval_ms = (uint32_t)opts->interval_ms;
    t->restored = making != NULL && making->restored;
    t->by_name = child != NULL;
    if (t->by_name) {
        gs__child_ref(child);
        t->target.child = child;
    } else {
        t->target.to = gs__server_ref(to);
    }
    /* Who made it, for listings (GET /timers): the server whose callback runs on this thread,
     * unless a client (external) or the store (restored) did. */
    if (!t->external && !t->restored && gs__tls.current != NULL) {
        t->by_self = gs__tls.current->child == counted_child(t);
        t->by_other = !t->by_self;
    }
    int64_t now_ms = unix_now_ms();
    t->created_at_s = (uint32_t)(now_ms / 1000);
    atomic_init(&t->state, T_PENDING);
    /* relaxed: only uniqueness matters */
    gs_timer_ref_t r =
        making != NULL && making->ref != 0
            ? making->ref
            : atomic_fetch_add_explicit(&rt->next_timer_ref, 1, memory_order_relaxed);

    /* A new stored timer is armed once its row committed: with the running durable server's
     * change (output gate), or on its own for a client's timer. */
    bool hold = durable && !(making != NULL && making->restored);
    uint64_t hash = gs_hash_u64(r);
    gs_shmap_shard_t *sh = gs_shmap_shard(&rt->timer_refs, hash);
    gs_shmap_lock(sh);
    if (gs_map_insert(&sh->map, &t->node, hash) != 0)
        abort(); /* the first 8 buckets of a shard: a tiny internal allocation */
    if (!hold)
        gs__timers_post(rt, &t->t, GS__TCMD_ADD); /* under the lock: see the top of the file */
    gs_shmap_unlock(sh);
    if (ref != NULL)
        *ref = r;
    if (hold) {
        char key[24];
        size_t len;
        ref_key(r, key);
        /* t is in the map and not armed: nothing frees it before its release below. */
        char *row = timer_row(t, t->msg, now_ms + (int64_t)delay_ms, &len);
        if (!opts->external && gate != NULL) {
            gs__durable_op(gate, GS_STORE_TIMERS, key, row, len);
            gs__durable_defer_timer(gate, r);
            if (opts->committed != NULL)
                gs__durable_defer_done(gate, opts->committed, opts->committed_arg, 0);
        } else {
            arming_t *a = malloc(sizeof(*a));
            if (a == NULL)
                abort(); /* a small fixed-size record */
            *a = (arming_t){rt, r, opts->committed, opts->committed_arg};
            gs__durable_op_alone(rt, GS_STORE_TIMERS, key, row, len, row_committed, a);
        }
    } else if (opts->committed != NULL) {
        opts->committed(0, opts->committed_arg);
    }
out:
    json_decref(msg);
    return rc;
}

void gs__timer_release(gs_runtime_t *rt, gs_timer_ref_t ref, bool arm)
{
    gs_shmap_shard_t *sh;
    gs__timer_t *t = find_locked(rt, ref, &sh);
    if (t != NULL && arm) {
        gs__timers_post(rt, &t->t, GS__TCMD_ADD);
    } else if (t != NULL) {
        /* Its row did not commit: it never existed. Not added, so CANCEL only frees it. */
        atomic_store_explicit(&t->state, T_CANCELLED, memory_order_release);
        gs_map_unlink(&sh->map, &t->node);
        unaccount(rt, t);
        gs__timers_post(rt, &t->t, GS__TCMD_CANCEL);
    }
    gs_shmap_unlock(sh);
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
    rc = send_after(rt, NULL, child, msg, delay_ms, opts, GS__MSG_INFO, ref, NULL);
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
    return send_after(to->rt, to, NULL, msg, delay_ms, &defaults, GS__MSG_INFO, ref, NULL);
}

int gs__send_timeout(gs_server_t *s, uint64_t ms, gs_timer_ref_t *ref)
{
    static const gs_timer_options_t own = {.external = false};
    json_t *gen = json_integer((json_int_t)s->timeout_gen);

    if (gen == NULL)
        return GS_ENOMEM;
    return send_after(s->rt, s, NULL, gen, ms, &own, GS__MSG_TIMEOUT, ref, NULL);
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
    /* At shutdown (a terminate that cancels its tick) the row stays: the timer was not
     * cancelled by the server's logic but by the stop, and the next start needs it. Read
     * before the CANCEL below: once it is posted the timer thread may free t. */
    bool drop_row = t != NULL && cancel && t->durable && !atomic_load(&rt->shutting_down);
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
    if (drop_row)
        delete_row(rt, ref);
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

/* The `limit` soonest pending timers seen so far, as a max-heap on due_tick (items[0] is the
 * latest of them), so that a listing costs O(pending * log limit) time and O(limit) memory
 * however many timers are pending. */
typedef struct listing_s {
    due_ref_t *items;
    size_t n, cap, limit;
    size_t total;       /* timers that matched, listed or not */
    bool external_only; /* only timers made by clients (gs_timer_options_t.external) */
} listing_t;

static void heap_down(due_ref_t *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && h[l].due_tick > h[m].due_tick)
            m = l;
        if (r < n && h[r].due_tick > h[m].due_tick)
            m = r;
        if (m == i)
            return;
        due_ref_t tmp = h[i];
        h[i] = h[m];
        h[m] = tmp;
        i = m;
    }
}

static bool collect(gs_map_node_t *node, void *arg)
{
    gs__timer_t *t = gs__container_of(node, gs__timer_t, node);
    listing_t *l = arg;
    due_ref_t it = {t->t.w.due_tick, ref_of(t)};

    if (l->external_only && !t->external)
        return false;
    l->total++;
    if (l->n < l->limit) {
        if (l->n == l->cap) {
            size_t cap = l->cap ? l->cap * 2 : 64;
            due_ref_t *grown = realloc(l->items, cap * sizeof(*grown));
            if (grown == NULL)
                return false; /* a shorter listing rather than none */
            l->items = grown;
            l->cap = cap;
        }
        size_t i = l->n++; /* sift up */
        l->items[i] = it;
        while (i > 0 && l->items[(i - 1) / 2].due_tick < l->items[i].due_tick) {
            due_ref_t tmp = l->items[i];
            l->items[i] = l->items[(i - 1) / 2];
            l->items[(i - 1) / 2] = tmp;
            i = (i - 1) / 2;
        }
    } else if (l->n > 0 && it.due_tick < l->items[0].due_tick) {
        l->items[0] = it;
        heap_down(l->items, l->n, 0);
    }
    return false;
}

static int by_due(const void *a, const void *b)
{
    const due_ref_t *x = a, *y = b;
    return (x->due_tick > y->due_tick) - (x->due_tick < y->due_tick);
}

/* Who made t: "external", "restored", "server:NAME" or "runtime". New reference. */
static json_t *created_by(const gs__timer_t *t)
{
    if (t->external)
        return json_string("external");
    if (t->restored)
        return json_string("restored");
    if (t->by_self)
        return json_sprintf("server:%s", counted_child(t)->name);
    if (t->by_other)
        return json_string("server");
    return json_string("runtime");
}

/* One pending timer as JSON (see the header), or NULL when it is gone by now. */
static json_t *describe(gs_runtime_t *rt, gs_timer_ref_t ref)
{
    gs_shmap_shard_t *sh;
    gs__timer_t *t = find_locked(rt, ref, &sh);
    json_t *e = NULL;

    if (t != NULL) {
        /* A copy: the message stays the timer thread's to deliver (see gs__json_copy). */
        e = json_pack("{s:I, s:s, s:o, s:I, s:I, s:o, s:b}", "ref", (json_int_t)ref, "server",
                      counted_child(t)->name, "message", json_deep_copy(t->msg), "remaining_ms",
                      (json_int_t)gs__ms_until(t->t.w.due_tick), "created_at_ms",
                      (json_int_t)t->created_at_s * 1000, "created_by", created_by(t), "external",
                      t->external);
        if (e != NULL && t->interval_ms > 0)
            json_object_set_new(e, "interval_ms", json_integer((json_int_t)t->interval_ms));
    }
    gs_shmap_unlock(sh);
    return e;
}

json_t *gs_timers_json(gs_runtime_t *rt, size_t limit, bool external_only)
{
    listing_t l = {NULL, 0, 0, limit, 0, external_only};
    json_t *list = json_array();

    for (int i = 0; i < GS_SHMAP_SHARDS; i++) {
        gs_shmap_shard_t *sh = &rt->timer_refs.shards[i];
        gs_shmap_lock(sh);
        gs_map_filter(&sh->map, collect, &l);
        gs_shmap_unlock(sh);
    }
    if (l.n > 1)
        qsort(l.items, l.n, sizeof(*l.items), by_due);
    for (size_t i = 0; list != NULL && i < l.n; i++) {
        json_t *e = describe(rt, l.items[i].ref);
        if (e != NULL)
            json_array_append_new(list, e);
    }
    free(l.items);
    return json_pack("{s:I, s:b, s:o}", "count", (json_int_t)l.total, "truncated", l.total > l.n,
                     "timers", list != NULL ? list : json_array());
}

json_t *gs_external_timers_json(gs_runtime_t *rt, size_t limit)
{
    return gs_timers_json(rt, limit, true);
}

/* ---------------------------------------------------------------------------------------- */
/* Stored timers at start                                                                     */
/* ---------------------------------------------------------------------------------------- */

static const char *const misfire_names[] = {
#define GS__MISFIRE_NAME(sym, name, meaning) name,
    GS_MISFIRE_MAP(GS__MISFIRE_NAME)
#undef GS__MISFIRE_NAME
};

int gs_misfire_parse(const char *s, gs_misfire_t *out)
{
    for (size_t i = 0; s != NULL && i < sizeof(misfire_names) / sizeof(*misfire_names); i++)
        if (strcmp(s, misfire_names[i]) == 0) {
            *out = (gs_misfire_t)i;
            return 0;
        }
    return GS_EINVAL;
}

const char *gs_misfire_name(gs_misfire_t m)
{
    return (size_t)m < sizeof(misfire_names) / sizeof(*misfire_names) ? misfire_names[m] : "?";
}

typedef struct restoring_s {
    gs_runtime_t *rt;
    int64_t now;
    int64_t not_before; /* a reload after a failed commit: due no sooner (0: at start) */
    json_int_t restored, overdue, skipped, unreadable;
    gs_timer_ref_t max_ref;
} restoring_t;

/* Arm one stored timer again under its own ref and row. msg taken. */
static int rearm(restoring_t *r, gs_timer_ref_t ref, const char *to, json_t *msg, int64_t due,
                 const gs_timer_options_t *opts)
{
    gs_runtime_t *rt = r->rt;
    gs__child_t *child = gs__registry_child(rt, to);
    if (child == NULL) {
        gs_start_options_t none;
        gs_start_options_init(&none);
        none.mailbox_limit = 1;
        child = gs__child_create(rt, to, strlen(to), NULL, NULL, &none);
        if (child == NULL) {
            json_decref(msg);
            return GS_ENOMEM;
        }
    }
    making_t making = {ref, true};
    int rc = send_after(rt, NULL, child, msg, due > r->now ? (uint64_t)(due - r->now) : 0, opts,
                        GS__MSG_INFO, NULL, &making);
    gs__child_unref(child);
    return rc;
}

static bool restore_timer(const char *key, const char *val, size_t len, void *arg)
{
    restoring_t *r = arg;
    json_error_t err;
    json_t *row = json_loadb(val, len, JSON_ALLOW_NUL, &err);
    const char *to = json_string_value(json_object_get(row, "to"));
    json_t *msg = json_object_get(row, "msg");
    json_t *due = json_object_get(row, "due"), *every = json_object_get(row, "every");
    gs_timer_options_t opts = {.external = json_is_true(json_object_get(row, "external"))};
    gs_misfire_t misfire = GS_MISFIRE_COALESCE;
    char *end = NULL;
    unsigned long long ref = strtoull(key, &end, 10);
    size_t tolen = to != NULL ? strlen(to) : 0;
    if (to == NULL || tolen == 0 || tolen > GS__NAME_MAX || msg == NULL || !json_is_integer(due) ||
        !json_is_integer(every) || json_integer_value(every) < 0 ||
        json_integer_value(every) > UINT32_MAX || ref == 0 || end == NULL || *end != '\0' ||
        gs_misfire_parse(json_string_value(json_object_get(row, "misfire")), &misfire) != 0) {
        fprintf(stderr, "genserv: store: stored timer %s is unreadable; dropped\n", key);
        r->unreadable++;
        gs__durable_op_alone(r->rt, GS_STORE_TIMERS, key, NULL, 0, NULL, NULL);
        json_decref(row);
        return true;
    }
    if (ref > r->max_ref)
        r->max_ref = ref;
    opts.misfire = (uint8_t)misfire;
    opts.interval_ms = (uint64_t)json_integer_value(every);
    int64_t at = json_integer_value(due);
    if (at < r->not_before)
        at = r->not_before; /* a redelivery, not a misfire: after a pause, not in a loop */
    json_incref(msg);
    if (at >= r->now) {
        r->restored++;
        rearm(r, ref, to, msg, at, &opts);
    } else if (opts.interval_ms == 0) {
        /* One-shot, due while genserv was down: once now, or not at all (skip). */
        if (misfire == GS_MISFIRE_SKIP) {
            r->skipped++;
            json_decref(msg);
            gs__durable_op_alone(r->rt, GS_STORE_TIMERS, key, NULL, 0, NULL, NULL);
        } else {
            r->overdue++;
            rearm(r, ref, to, msg, r->now, &opts);
        }
    } else {
        /* Periodic: `missed` periods came and went. The timer keeps its phase. */
        int64_t every_ms = (int64_t)opts.interval_ms;
        int64_t missed = (r->now - at) / every_ms + 1;
        int64_t next = at + missed * every_ms;
        if (misfire == GS_MISFIRE_SKIP) {
            r->skipped++;
            rearm(r, ref, to, msg, next, &opts);
        } else if (misfire == GS_MISFIRE_COALESCE) {
            r->overdue++;
            json_t *late = missed > 1
                               ? json_pack("[s, I, O]", "$gs_missed", (json_int_t)missed, msg)
                               : json_incref(msg);
            gs_send(r->rt, to, late); /* the one late delivery */
            rearm(r, ref, to, msg, next, &opts);
        } else {
            r->overdue++;
            int64_t n = missed < GS_MISFIRE_ALL_MAX ? missed : GS_MISFIRE_ALL_MAX;
            for (int64_t i = 0; i < n; i++)
                gs_send(r->rt, to, json_deep_copy(msg));
            rearm(r, ref, to, msg, next, &opts);
        }
    }
    json_decref(row);
    return true;
}

int gs_runtime_restore_timers(gs_runtime_t *rt, json_t **report)
{
    if (report != NULL)
        *report = NULL;
    gs_store_t *st = rt != NULL ? gs_runtime_store(rt) : NULL;
    if (st == NULL)
        return GS_EINVAL;
    restoring_t r = {.rt = rt, .now = unix_now_ms()};
    int rc = st->load(st, GS_STORE_TIMERS, restore_timer, &r);
    /* New refs start past every stored one: a row's key stays one timer's. relaxed: start-up */
    if (atomic_load_explicit(&rt->next_timer_ref, memory_order_relaxed) <= r.max_ref)
        atomic_store_explicit(&rt->next_timer_ref, r.max_ref + 1, memory_order_relaxed);
    if (report != NULL)
        *report = json_pack("{s:I, s:I, s:I, s:I}", "restored", r.restored, "overdue", r.overdue,
                            "skipped", r.skipped, "unreadable", r.unreadable);
    return rc != 0 ? GS_ESTORAGE : 0;
}

/* After a failed commit: the stored timers of name whose deliveries were undone are in the
 * store again but no longer pending here. */
typedef struct reloading_s {
    restoring_t r;
    const char *name;
} reloading_t;

static bool reload_timer(const char *key, const char *val, size_t len, void *arg)
{
    reloading_t *rl = arg;
    char *end = NULL;
    unsigned long long ref = strtoull(key, &end, 10);
    json_t *row = json_loadb(val, len, JSON_ALLOW_NUL, NULL);
    const char *to = json_string_value(json_object_get(row, "to"));
    bool mine = to != NULL && strcmp(to, rl->name) == 0 && ref != 0 && end != NULL && *end == '\0';
    json_decref(row);
    if (!mine)
        return true;
    gs_shmap_shard_t *sh;
    gs__timer_t *t = find_locked(rl->r.rt, ref, &sh);
    gs_shmap_unlock(sh);
    if (t != NULL)
        return true; /* still pending: its delivery was not undone */
    return restore_timer(key, val, len, &rl->r);
}

void gs__timers_reload(gs_runtime_t *rt, const char *name)
{
    gs_store_t *st = gs_runtime_store(rt);
    if (st == NULL)
        return;
    int64_t now = unix_now_ms();
    /* Due again a second from now: a store that just failed is given time, and a timer whose
     * delivery keeps failing does not spin. */
    reloading_t rl = {.r = {.rt = rt, .now = now, .not_before = now + 1000}, .name = name};
    if (st->load(st, GS_STORE_TIMERS, reload_timer, &rl) != 0)
        fprintf(stderr,
                "genserv: store: the timers of %s could not be read again after a "
                "failed commit; they fire at the next start\n",
                name);
}
