/*
 * call.c: the one completion primitive behind every call, whoever waits for it: an HTTP
 * request (gs_call_async), a server (gs_send_request), a blocking thread (gs_call).
 *
 * API (the life of a call):
 *   gs__call_create       refs = 1, owned by the mailbox message.
 *   gs__call_arm_timeout  +1 ref for the timer thread.
 *   dispatch_call         +1 ref for the held-call table while handle_call runs and for as
 *                         long as it keeps `from`.
 *   gs__call_complete     exactly once: an atomic exchange of `done` decides between the
 *                         reply, the timeout and the failure; the loser's value is dropped
 *                         (and counted as a late reply when it was one).
 *   gs_reply              finds the call by its id in the held-call table, so a stale or
 *                         repeated `from` is refused safely instead of touching freed memory.
 *   gs_call_abandon       the caller went away (gs_call_async_opts gave it a reference): the
 *                         same exchange completes the call with GS_ECALLERGONE, the call
 *                         leaves the table as on a timeout, and its id is remembered so that a
 *                         reply that comes later is counted as one to a gone caller.
 * The open-reply ledger (gs_server_held_json) reads who waits from the call records in the
 * table, under each shard's lock: the caller's kind and label, since when, the deadline, the
 * message's tag. The caller writes them before the call is queued; dispatch_call copies the
 * tag (gs__call_tag) before it inserts the call.
 * The held-call table is a sharded map by call id; crashes and stops scan it for the calls
 * their server still held (rare events; the common path is one insert and one remove per
 * call). A call's timeout is a timer node whose ops (below) the timer thread runs.
 */
#include "runtime_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---------------------------------------------------------------------------------------- */
/* A call's timeout, as the timer thread sees it                                              */
/* ---------------------------------------------------------------------------------------- */

static gs__call_t *held_take(gs_runtime_t *rt, uint64_t id);
static void held_release(gs_runtime_t *rt, gs__call_t *c);

/* Take c out of the held-call table: its holder (a new reference) when it was there, else
 * NULL. */
static gs_server_t *held_out(gs_runtime_t *rt, gs__call_t *c)
{
    gs__call_t *held = held_take(rt, c->id);
    gs_server_t *holder = NULL;

    if (held != NULL) {
        holder = gs__server_ref(held->holder);
        held_release(rt, held);
    }
    return holder;
}

static void timeout_fire(gs_runtime_t *rt, gs__tnode_t *n)
{
    gs__call_t *c = gs__container_of(n, gs__call_t, tnode);

    /* Out of the table first, so that a late gs_reply finds nothing and a woken caller sees
     * the held count without it. */
    gs_server_t *holder = held_out(rt, c);
    bool won = gs__call_complete(rt, c, c->timeout_status, NULL, true);
    /* dispatch_call inserts, then checks done: if it inserted after our first look, either it
     * sees done and takes the call out itself, or this second look (after done was set)
     * finds it. Either way the call does not stay counted as held. */
    if (holder == NULL)
        holder = held_out(rt, c);
    if (holder != NULL && won)
        gs__notify_caller_gone(holder, c->id);
    gs_server_unref(holder);
    if (won)
        gs__call_unref(c); /* the timer's reference */
    /* else: completed elsewhere; that path's CANCEL releases the timer's reference */
}

static bool timeout_cancelled(gs__tnode_t *n)
{
    gs__call_t *c = gs__container_of(n, gs__call_t, tnode);

    /* acquire: pairs with the exchange in gs__call_complete */
    return atomic_load_explicit(&c->done, memory_order_acquire) != 0;
}

static void timeout_release(gs__tnode_t *n)
{
    gs__call_unref(gs__container_of(n, gs__call_t, tnode));
}

static void timeout_shutdown(gs_runtime_t *rt, gs__tnode_t *n)
{
    gs__call_t *c = gs__container_of(n, gs__call_t, tnode);

    c->timeout_status = GS_ESHUTDOWN;
    timeout_fire(rt, n);
}

static const gs__tnode_ops_t timeout_ops = {timeout_fire, timeout_cancelled, timeout_release,
                                            timeout_shutdown};

/* ---------------------------------------------------------------------------------------- */
/* The completion primitive                                                                   */
/* ---------------------------------------------------------------------------------------- */

gs__call_t *gs__call_create(gs_runtime_t *rt, uint8_t kind, json_t *payload, gs_reply_cb cb,
                            void *arg)
{
    gs__call_t *c = gs__pool_alloc(GS__POOL_CALL);
    memset(c, 0, sizeof(*c));
    c->msg.kind = kind;
    c->msg.payload = payload;
    atomic_init(&c->refs, 1);
    atomic_init(&c->done, 0);
    /* relaxed: only uniqueness matters */
    c->id = atomic_fetch_add_explicit(&rt->next_call_id, 1, memory_order_relaxed);
    c->cb = cb;
    c->arg = arg;
    c->tnode.ops = &timeout_ops;
    c->timeout_status = GS_ETIMEOUT;
    return c;
}

void gs__call_ref(gs__call_t *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed); /* a holder exists already */
}

void gs__call_unref(gs__call_t *c)
{
    /* acq_rel: the freeing thread sees every write made by the other holders */
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    json_decref(c->msg.payload);
    gs__msg_meta_free(c->msg.meta);
    gs_server_unref(c->caller_server);
    gs__pool_free(GS__POOL_CALL, c);
}

void gs__call_tag(gs__call_t *c, const json_t *msg)
{
    const char *t =
        json_is_array(msg) ? json_string_value(json_array_get(msg, 0)) : json_string_value(msg);
    if (t == NULL)
        return;
    size_t n = strnlen(t, GS__TAG_MAX - 1);
    /* Cut at a character boundary, so that the ledger's JSON stays valid UTF-8. */
    if (n == GS__TAG_MAX - 1)
        while (n > 0 && ((unsigned char)t[n] & 0xC0) == 0x80)
            n--;
    memcpy(c->tag, t, n);
    c->tag[n] = '\0';
    c->tagged = true;
}

bool gs__call_complete(gs_runtime_t *rt, gs__call_t *c, int status, json_t *result, bool from_timer)
{
    /* acq_rel: the winner's callback sees everything the call's creator wrote; the loser
     * sees that the call is finished */
    if (atomic_exchange_explicit(&c->done, 1, memory_order_acq_rel) != 0) {
        if (status == 0 && c->msg.kind == GS__MSG_CALL)
            atomic_fetch_add_explicit(&rt->stats.late_replies, 1,
                                      memory_order_relaxed); /* counter */
        json_decref(result);
        return false;
    }
    if (c->timeout_armed && !from_timer)
        gs__timers_post(rt, &c->tnode, GS__TCMD_CANCEL);
    c->cb(status, result, c->arg);
    return true;
}

void gs__call_arm_timeout(gs_runtime_t *rt, gs__call_t *c, int64_t timeout_ms)
{
    gs__call_ref(c); /* the timer thread's */
    c->timeout_armed = true;
    c->tnode.w.due_tick = gs__due_tick((uint64_t)timeout_ms);
    c->deadline_tick = c->tnode.w.due_tick; /* the ledger's copy: the wheel owns the node's */
    gs__timers_post(rt, &c->tnode, GS__TCMD_ADD);
}

/* ---------------------------------------------------------------------------------------- */
/* The held-call table: a sharded map by call id                                              */
/* ---------------------------------------------------------------------------------------- */

static bool call_has_id(const gs_map_node_t *node, const void *key)
{
    return gs__container_of(node, gs__call_t, held_node)->id == *(const uint64_t *)key;
}

int gs__held_init(gs_runtime_t *rt)
{
    return gs_shmap_init(&rt->held);
}

void gs__held_close(gs_runtime_t *rt)
{
    /* Every server is dead by now, and each failed its held calls: the table is empty. */
    gs_shmap_close(&rt->held);
}

void gs__held_insert(gs_runtime_t *rt, gs__call_t *c, gs_server_t *holder)
{
    uint64_t hash = gs_hash_u64(c->id);
    gs_shmap_shard_t *sh = gs_shmap_shard(&rt->held, hash);

    gs__call_ref(c);
    c->holder = gs__server_ref(holder);
    atomic_fetch_add_explicit(&holder->held, 1, memory_order_relaxed);         /* counter */
    atomic_fetch_add_explicit(&rt->stats.held_calls, 1, memory_order_relaxed); /* gauge */
    gs_shmap_lock(sh);
    if (gs_map_insert(&sh->map, &c->held_node, hash) != 0)
        abort(); /* the first 8 buckets of a shard: a tiny internal allocation */
    gs_shmap_unlock(sh);
}

/* After unlinking: give back what the table held. */
/* A call taken out of the table is no longer counted as held; returns its holder (the
 * table's reference, for the caller to drop). */
static gs_server_t *held_uncount(gs_runtime_t *rt, gs__call_t *c)
{
    gs_server_t *holder = c->holder;
    c->holder = NULL;
    atomic_fetch_sub_explicit(&holder->held, 1, memory_order_relaxed);         /* counter */
    atomic_fetch_sub_explicit(&rt->stats.held_calls, 1, memory_order_relaxed); /* gauge */
    return holder;
}

static void held_release(gs_runtime_t *rt, gs__call_t *c)
{
    gs_server_unref(held_uncount(rt, c));
    gs__call_unref(c);
}

/* Unlink the call with this id; returns it with the table's reference, or NULL. */
static gs__call_t *held_take(gs_runtime_t *rt, uint64_t id)
{
    uint64_t hash = gs_hash_u64(id);
    gs_shmap_shard_t *sh = gs_shmap_shard(&rt->held, hash);

    gs_shmap_lock(sh);
    gs_map_node_t *n = gs_map_remove(&sh->map, hash, &id, call_has_id);
    gs_shmap_unlock(sh);
    return n != NULL ? gs__container_of(n, gs__call_t, held_node) : NULL;
}

bool gs__held_remove(gs_runtime_t *rt, gs__call_t *c)
{
    gs__call_t *found = held_take(rt, c->id);
    if (found != NULL)
        held_release(rt, found);
    return found != NULL;
}

void gs__notify_caller_gone(gs_server_t *holder, uint64_t id)
{
    if (!holder->b->notify_caller_gone)
        return;
    json_t *m = json_pack("[s, I]", "caller_gone", (json_int_t)id);
    if (m != NULL)
        gs__server_send(holder, GS__MSG_INFO, m, true); /* dropped if it is gone */
}

typedef struct held_by_s {
    gs_server_t *holder;
    gs__call_t *taken; /* chained through held_node.next once unlinked */
} held_by_t;

static bool take_if_held_by(gs_map_node_t *node, void *arg)
{
    held_by_t *by = arg;
    gs__call_t *c = gs__container_of(node, gs__call_t, held_node);

    if (c->holder != by->holder)
        return false;
    node->next = by->taken != NULL ? &by->taken->held_node : NULL;
    by->taken = c;
    return true;
}

void gs__held_fail_server(gs_runtime_t *rt, gs_server_t *s, int status, json_t *reason)
{
    /* relaxed: s's own thread is the only one that inserts calls held by s */
    if (atomic_load_explicit(&s->held, memory_order_relaxed) == 0)
        return;
    held_by_t by = {s, NULL};
    for (int i = 0; i < GS_SHMAP_SHARDS; i++) {
        gs_shmap_shard_t *sh = &rt->held.shards[i];
        gs_shmap_lock(sh);
        gs_map_filter(&sh->map, take_if_held_by, &by);
        gs_shmap_unlock(sh);
    }
    /* Callbacks run outside every lock. */
    while (by.taken != NULL) {
        gs__call_t *c = by.taken;
        gs_map_node_t *next = c->held_node.next;
        by.taken = next != NULL ? gs__container_of(next, gs__call_t, held_node) : NULL;
        c->held_node.next = NULL;
        gs__call_complete(rt, c, status, gs__json_copy(reason), false);
        held_release(rt, c);
    }
}

bool gs_call_pending(gs_from_t from)
{
    if (from.rt == NULL)
        return false;
    uint64_t hash = gs_hash_u64(from.id);
    gs_shmap_shard_t *sh = gs_shmap_shard(&from.rt->held, hash);
    gs_shmap_lock(sh);
    gs_map_node_t *n = gs_map_find(&sh->map, hash, &from.id, call_has_id);
    /* acquire: pairs with the exchange in gs__call_complete */
    bool pending =
        n != NULL && atomic_load_explicit(&gs__container_of(n, gs__call_t, held_node)->done,
                                          memory_order_acquire) == 0;
    gs_shmap_unlock(sh);
    return pending;
}

/* A reply to call id was dropped: GS_ECALLERGONE (counted) when its caller went away, once,
 * else GS_ENOCALL. */
static int dropped_reply(gs_runtime_t *rt, uint64_t id)
{
    uint64_t expected = id;
    /* relaxed: see the field; the exchange makes a second reply count as plainly late */
    if (!atomic_compare_exchange_strong_explicit(&rt->gone[id & (GS__GONE_SLOTS - 1)], &expected, 0,
                                                 memory_order_relaxed, memory_order_relaxed))
        return GS_ENOCALL;
    atomic_fetch_add_explicit(&rt->stats.replies_to_gone_callers, 1,
                              memory_order_relaxed); /* counter */
    return GS_ECALLERGONE;
}

int gs_reply(gs_from_t from, json_t *reply)
{
    if (from.rt == NULL || reply == NULL) {
        json_decref(reply);
        return GS_EINVAL;
    }
    gs__call_t *c = held_take(from.rt, from.id);
    if (c == NULL) {
        atomic_fetch_add_explicit(&from.rt->stats.late_replies, 1,
                                  memory_order_relaxed); /* counter */
        json_decref(reply);
        return dropped_reply(from.rt, from.id);
    }
    /* Uncounted first: the caller this reply wakes never sees its call still held. */
    gs_server_t *holder = held_uncount(from.rt, c);
    gs_server_t *gate = gs__durable_current();
    if (gate != NULL) {
        /* A durable server's reply leaves once its state committed; the table's reference
         * moves to the deferred reply. */
        gs__durable_answered(gate, c, reply);
        gs__durable_defer_reply(gate, c, 0, reply);
        gs_server_unref(holder);
        return 0;
    }
    bool ok = gs__call_complete(from.rt, c, 0, reply, false);
    gs_server_unref(holder);
    gs__call_unref(c); /* the table's reference */
    return ok ? 0 : dropped_reply(from.rt, from.id);
}

/* ---------------------------------------------------------------------------------------- */
/* Callers that went away                                                                     */
/* ---------------------------------------------------------------------------------------- */

uint64_t gs_call_id(const gs_call_t *call)
{
    return call != NULL ? call->id : 0;
}

void gs_call_unref(gs_call_t *call)
{
    if (call != NULL)
        gs__call_unref(call);
}

int gs_call_abandon(gs_runtime_t *rt, gs_call_t *c)
{
    if (rt == NULL || c == NULL)
        return GS_EINVAL;
    /* As a timeout does (timeout_fire): out of the table first, so that a reply from now on
     * finds nothing, then the exchange, then a second look for a dispatch that inserted the
     * call in between. */
    gs_server_t *holder = held_out(rt, c);
    /* Remembered first: a reply that finds the table empty from now on counts as one to a
     * gone caller; forgotten again if the call had completed already. */
    _Atomic uint64_t *slot = &rt->gone[c->id & (GS__GONE_SLOTS - 1)];
    /* relaxed: see the field */
    uint64_t before = atomic_exchange_explicit(slot, c->id, memory_order_relaxed);
    bool won = gs__call_complete(rt, c, GS_ECALLERGONE, NULL, false);
    if (holder == NULL)
        holder = held_out(rt, c);
    if (!won) {
        uint64_t expected = c->id;
        /* relaxed: see the field; what the slot held before, unless it changed meanwhile */
        atomic_compare_exchange_strong_explicit(slot, &expected, before, memory_order_relaxed,
                                                memory_order_relaxed);
    } else {
        atomic_fetch_add_explicit(&rt->stats.callers_gone, 1, memory_order_relaxed); /* counter */
        if (holder != NULL)
            gs__notify_caller_gone(holder, c->id);
    }
    gs_server_unref(holder);
    return won ? 0 : GS_ENOCALL;
}

/* ---------------------------------------------------------------------------------------- */
/* The open-reply ledger                                                                      */
/* ---------------------------------------------------------------------------------------- */

/* One held call as the ledger shows it, copied out under its shard's lock. */
typedef struct ledger_row_s {
    uint64_t id, since_ns, deadline_tick;
    const char *kind; /* static storage */
    bool has_caller, tagged;
    char caller[GS__NAME_MAX + 1];
    char tag[GS__TAG_MAX];
} ledger_row_t;

typedef struct ledger_s {
    gs__child_t *child; /* whose calls; NULL: every server's (only the oldest is kept) */
    ledger_row_t *rows;
    size_t n, cap;
    bool failed;           /* out of memory: the listing is cut short */
    uint64_t oldest_since; /* UINT64_MAX: none */
} ledger_t;

static void ledger_add(ledger_t *l, const gs__call_t *c)
{
    /* acquire: pairs with the exchange in gs__call_complete; a call completing this very
     * moment is on its way out of the table */
    if (atomic_load_explicit(&c->done, memory_order_acquire) != 0)
        return;
    if (l->child == NULL) {
        if (c->since_ns < l->oldest_since)
            l->oldest_since = c->since_ns;
        return;
    }
    if (c->holder->child != l->child)
        return;
    if (l->n == l->cap) {
        /* The number of held calls comes from outside: fail softly. */
        size_t cap = l->cap ? l->cap * 2 : 64;
        ledger_row_t *rows = realloc(l->rows, cap * sizeof(*rows));
        if (rows == NULL) {
            l->failed = true;
            return;
        }
        l->rows = rows;
        l->cap = cap;
    }
    ledger_row_t *r = &l->rows[l->n++];
    r->id = c->id;
    r->since_ns = c->since_ns;
    r->deadline_tick = c->deadline_tick;
    r->tagged = c->tagged;
    if (r->tagged)
        memcpy(r->tag, c->tag, sizeof(r->tag));
    r->has_caller = true;
    if (c->caller_kind != NULL) {
        r->kind = c->caller_kind;
        r->has_caller = c->caller[0] != '\0';
        memcpy(r->caller, c->caller, sizeof(c->caller));
    } else if (c->caller_server != NULL) {
        r->kind = "server";
        snprintf(r->caller, sizeof(r->caller), "%s", gs_server_name(c->caller_server));
    } else {
        r->kind = "thread";
        r->has_caller = false;
    }
}

static bool ledger_visit(gs_map_node_t *node, void *arg)
{
    ledger_t *l = arg;
    const gs__call_t *c = gs__container_of(node, gs__call_t, held_node);
    ledger_add(l, c);
    return false; /* a look: nothing is unlinked */
}

static void ledger_scan(gs_runtime_t *rt, ledger_t *l)
{
    for (int i = 0; i < GS_SHMAP_SHARDS && !l->failed; i++) {
        gs_shmap_shard_t *sh = &rt->held.shards[i];
        gs_shmap_lock(sh);
        gs_map_filter(&sh->map, ledger_visit, l);
        gs_shmap_unlock(sh);
    }
}

static int by_age(const void *a, const void *b)
{
    const ledger_row_t *x = a, *y = b;
    if (x->since_ns != y->since_ns)
        return x->since_ns < y->since_ns ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

json_t *gs__held_json(gs_runtime_t *rt, gs__child_t *child, bool sensitive, size_t limit)
{
    ledger_t l = {.child = child, .oldest_since = UINT64_MAX};
    ledger_scan(rt, &l);
    if (l.n > 1)
        qsort(l.rows, l.n, sizeof(*l.rows), by_age);

    uint64_t now_ns = gs__now_ns();
    int64_t now_wall = wall_ms();
    json_t *calls = json_array();
    for (size_t i = 0; i < l.n && i < limit; i++) {
        const ledger_row_t *r = &l.rows[i];
        int64_t waited = now_ns > r->since_ns ? (int64_t)((now_ns - r->since_ns) / 1000000u) : 0;
        json_t *deadline = json_null(), *remaining = json_null();
        if (r->deadline_tick != 0) {
            int64_t left = gs__ms_until(r->deadline_tick);
            deadline = json_integer(now_wall + left);
            remaining = json_integer(left);
        }
        /* json_string refuses what is not UTF-8 (a caller's label or kind is copied as given,
         * and may be cut inside a character): null rather than a lost row */
        json_t *kind = json_string(r->kind);
        json_t *caller = r->has_caller ? json_string(r->caller) : NULL;
        json_t *tag = !r->tagged  ? json_null()
                      : sensitive ? json_string(GS_REDACTED)
                                  : json_string(r->tag);
        json_array_append_new(
            calls, json_pack("{s:I, s:o, s:o, s:I, s:I, s:o, s:o, s:o}", "id", (json_int_t)r->id,
                             "kind", kind != NULL ? kind : json_null(), "caller",
                             caller != NULL ? caller : json_null(), "since_ms",
                             (json_int_t)(now_wall - waited), "waited_ms", (json_int_t)waited,
                             "deadline_ms", deadline, "remaining_ms", remaining, "tag",
                             tag != NULL ? tag : json_null()));
    }
    json_t *out = json_pack("{s:s, s:I, s:o}", "server", child->name, "count", (json_int_t)l.n,
                            "calls", calls);
    free(l.rows);
    return out;
}

int64_t gs_held_oldest_ms(gs_runtime_t *rt)
{
    ledger_t l = {.child = NULL, .oldest_since = UINT64_MAX};
    if (rt == NULL)
        return -1;
    ledger_scan(rt, &l);
    if (l.oldest_since == UINT64_MAX)
        return -1;
    uint64_t now = gs__now_ns();
    return now > l.oldest_since ? (int64_t)((now - l.oldest_since) / 1000000u) : 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Calls                                                                                      */
/* ---------------------------------------------------------------------------------------- */

/* Queue a call-like request (a call or a state request) to s. msg taken. For a call, opts
 * (may be NULL) say who waits, and *out (when not NULL) receives a reference to it. */
static int call_server(gs_server_t *s, uint8_t kind, json_t *msg, int timeout_ms, bool force,
                       gs_reply_cb cb, void *arg, const gs_call_options_t *opts, gs__call_t **out)
{
    gs_runtime_t *rt = s->rt;
    if (atomic_load_explicit(&rt->shutting_down, memory_order_relaxed)) { /* advisory */
        json_decref(msg);
        return GS_ESHUTDOWN;
    }
    if (kind == GS__MSG_CALL && gs__tls.current != NULL && gs__tls.current->child == s->child) {
        json_decref(msg);
        return GS_ECALLINGSELF;
    }
    int rc = gs__server_reserve(s, force);
    if (rc != 0) {
        json_decref(msg);
        return rc;
    }
    gs__call_t *c = gs__call_create(rt, kind, msg, cb, arg);
    if (kind == GS__MSG_CALL) {
        c->since_ns = gs__now_ns();
        if (opts != NULL && opts->caller_kind != NULL) {
            c->caller_kind = opts->caller_kind;
            if (opts->caller != NULL) { /* not snprintf: this is every HTTP call's path */
                size_t n = strnlen(opts->caller, sizeof(c->caller) - 1);
                memcpy(c->caller, opts->caller, n);
                c->caller[n] = '\0';
            }
        } else if (gs__tls.current != NULL) {
            c->caller_server = gs__server_ref(gs__tls.current);
        }
        if (opts != NULL && opts->idempotency_key != NULL && s->child->dur != NULL) {
            c->msg.meta = calloc(1, sizeof(*c->msg.meta));
            if (c->msg.meta == NULL || (c->msg.meta->key = strdup(opts->idempotency_key)) == NULL)
                abort(); /* a key the gateway bounded: a tiny allocation */
        }
    }
    if (timeout_ms >= 0)
        gs__call_arm_timeout(rt, c, timeout_ms);
    if (out != NULL) {
        gs__call_ref(c); /* the caller's: taken before the push, after which c may complete */
        *out = c;
    }
    gs__server_push_reserved(s, &c->msg);
    return 0;
}

int gs_call_server_async(gs_server_t *to, json_t *msg, int timeout_ms, gs_reply_cb cb, void *arg)
{
    if (to == NULL || msg == NULL || cb == NULL || timeout_ms < GS_INFINITY) {
        json_decref(msg);
        return GS_EINVAL;
    }
    return call_server(to, GS__MSG_CALL, msg, timeout_ms, false, cb, arg, NULL, NULL);
}

void gs_call_options_init(gs_call_options_t *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->timeout_ms = GS_DEFAULT_TIMEOUT_MS;
}

int gs_call_async_opts(gs_runtime_t *rt, const char *name, json_t *msg,
                       const gs_call_options_t *opts, gs_reply_cb cb, void *arg, gs_call_t **call)
{
    gs_call_options_t defaults;
    if (call != NULL)
        *call = NULL;
    if (opts == NULL) {
        gs_call_options_init(&defaults);
        opts = &defaults;
    }
    if (rt == NULL || name == NULL || msg == NULL || cb == NULL || opts->timeout_ms < GS_INFINITY) {
        json_decref(msg);
        return GS_EINVAL;
    }
    gs_server_t *s = gs__registry_whereis(rt, name);
    if (s == NULL) {
        json_decref(msg);
        return GS_ENOSERVER;
    }
    int rc = call_server(s, GS__MSG_CALL, msg, opts->timeout_ms, false, cb, arg, opts, call);
    gs_server_unref(s);
    return rc;
}

int gs_call_async(gs_runtime_t *rt, const char *name, json_t *msg, int timeout_ms, gs_reply_cb cb,
                  void *arg)
{
    gs_call_options_t opts = {.timeout_ms = timeout_ms};
    return gs_call_async_opts(rt, name, msg, &opts, cb, arg, NULL);
}

/* A blocking wait on a stack record: safe because a call always completes (its timeout is
 * armed), and the callback's last touch is the unlock that the waiter needs to return. */
typedef struct waiter_s {
    uv_mutex_t lock;
    uv_cond_t cond;
    bool done;
    int status;
    json_t *result;
} waiter_t;

static void waiter_cb(int status, json_t *result, void *arg)
{
    waiter_t *w = arg;
    uv_mutex_lock(&w->lock);
    w->done = true;
    w->status = status;
    w->result = result;
    uv_cond_signal(&w->cond);
    uv_mutex_unlock(&w->lock);
}

typedef int (*start_fn)(gs_runtime_t *rt, const char *name, json_t *msg, int timeout_ms,
                        gs_reply_cb cb, void *arg);

static int blocking(start_fn start, gs_runtime_t *rt, const char *name, json_t *msg, int timeout_ms,
                    json_t **result)
{
    waiter_t w = {.done = false};
    uv_mutex_init(&w.lock);
    uv_cond_init(&w.cond);
    int rc = start(rt, name, msg, timeout_ms, waiter_cb, &w);
    if (rc == 0) {
        uv_mutex_lock(&w.lock);
        while (!w.done)
            uv_cond_wait(&w.cond, &w.lock);
        uv_mutex_unlock(&w.lock);
        rc = w.status;
        if (result != NULL)
            *result = w.result;
        else
            json_decref(w.result);
    }
    uv_cond_destroy(&w.cond);
    uv_mutex_destroy(&w.lock);
    return rc;
}

/* Refuse blocking calls from runtime threads before anything is sent. */
static int check_may_block(gs_runtime_t *rt, const char *name, json_t *msg)
{
    if (gs__tls.current == NULL && !gs__tls.runtime_thread)
        return 0;
    int rc = gs__tls.runtime_thread ? GS_EWOULDBLOCK : 0;
    gs_server_t *s = rt != NULL && name != NULL ? gs__registry_whereis(rt, name) : NULL;
    if (s != NULL && gs__tls.current != NULL && s->child == gs__tls.current->child)
        rc = GS_ECALLINGSELF;
    else if (s == NULL && rc != 0)
        rc = GS_ENOSERVER;
    gs_server_unref(s);
    if (rc != 0)
        json_decref(msg);
    return rc;
}

int gs_call(gs_runtime_t *rt, const char *name, json_t *msg, int timeout_ms, json_t **result)
{
    if (result != NULL)
        *result = NULL;
    int rc = check_may_block(rt, name, msg);
    if (rc != 0)
        return rc;
    return blocking(gs_call_async, rt, name, msg, timeout_ms, result);
}

int gs_get_state_async(gs_runtime_t *rt, const char *name, int timeout_ms, gs_reply_cb cb,
                       void *arg)
{
    if (rt == NULL || name == NULL || cb == NULL || timeout_ms < GS_INFINITY)
        return GS_EINVAL;
    gs_server_t *s = gs__registry_whereis(rt, name);
    if (s == NULL)
        return GS_ENOSERVER;
    int rc = call_server(s, GS__MSG_GET_STATE, NULL, timeout_ms, true, cb, arg, NULL, NULL);
    gs_server_unref(s);
    return rc;
}

static int get_state_start(gs_runtime_t *rt, const char *name, json_t *msg, int timeout_ms,
                           gs_reply_cb cb, void *arg)
{
    (void)msg;
    return gs_get_state_async(rt, name, timeout_ms, cb, arg);
}

int gs_get_state(gs_runtime_t *rt, const char *name, int timeout_ms, json_t **state)
{
    if (state != NULL)
        *state = NULL;
    if (gs__tls.runtime_thread)
        return GS_EWOULDBLOCK;
    return blocking(get_state_start, rt, name, NULL, timeout_ms, state);
}

/* ---------------------------------------------------------------------------------------- */
/* :sys operations: system messages, past the mailbox limit like a state request              */
/* ---------------------------------------------------------------------------------------- */

static int sys_async(gs_runtime_t *rt, const char *name, uint8_t kind, json_t *payload,
                     int timeout_ms, gs_reply_cb cb, void *arg)
{
    if (rt == NULL || name == NULL || cb == NULL || timeout_ms < GS_INFINITY) {
        json_decref(payload);
        return GS_EINVAL;
    }
    gs_server_t *s = gs__registry_whereis(rt, name);
    if (s == NULL) {
        json_decref(payload);
        return GS_ENOSERVER;
    }
    int rc = call_server(s, kind, payload, timeout_ms, true, cb, arg, NULL, NULL);
    gs_server_unref(s);
    return rc;
}

int gs_suspend_async(gs_runtime_t *rt, const char *name, int timeout_ms, gs_reply_cb cb, void *arg)
{
    return sys_async(rt, name, GS__MSG_SUSPEND, NULL, timeout_ms, cb, arg);
}

int gs_resume_async(gs_runtime_t *rt, const char *name, int timeout_ms, gs_reply_cb cb, void *arg)
{
    return sys_async(rt, name, GS__MSG_RESUME, NULL, timeout_ms, cb, arg);
}

int gs_replace_state_async(gs_runtime_t *rt, const char *name, json_t *new_state, int timeout_ms,
                           gs_reply_cb cb, void *arg)
{
    if (new_state == NULL)
        return GS_EINVAL;
    return sys_async(rt, name, GS__MSG_REPLACE_STATE, new_state, timeout_ms, cb, arg);
}

static int suspend_start(gs_runtime_t *rt, const char *name, json_t *msg, int timeout_ms,
                         gs_reply_cb cb, void *arg)
{
    (void)msg;
    return gs_suspend_async(rt, name, timeout_ms, cb, arg);
}

static int resume_start(gs_runtime_t *rt, const char *name, json_t *msg, int timeout_ms,
                        gs_reply_cb cb, void *arg)
{
    (void)msg;
    return gs_resume_async(rt, name, timeout_ms, cb, arg);
}

int gs_suspend(gs_runtime_t *rt, const char *name, int timeout_ms)
{
    if (gs__tls.runtime_thread)
        return GS_EWOULDBLOCK;
    return blocking(suspend_start, rt, name, NULL, timeout_ms, NULL);
}

int gs_resume(gs_runtime_t *rt, const char *name, int timeout_ms)
{
    if (gs__tls.runtime_thread)
        return GS_EWOULDBLOCK;
    return blocking(resume_start, rt, name, NULL, timeout_ms, NULL);
}

int gs_replace_state(gs_runtime_t *rt, const char *name, json_t *new_state, int timeout_ms,
                     json_t **result)
{
    if (result != NULL)
        *result = NULL;
    if (gs__tls.runtime_thread) {
        json_decref(new_state);
        return GS_EWOULDBLOCK;
    }
    return blocking(gs_replace_state_async, rt, name, new_state, timeout_ms, result);
}

/* ---------------------------------------------------------------------------------------- */
/* Requests from servers: the answer comes back as a message                                  */
/* ---------------------------------------------------------------------------------------- */

typedef struct request_s {
    gs_server_t *self; /* referenced */
    json_t *tag;       /* owned */
} request_t;
_Static_assert(sizeof(request_t) <= GS__POOL_REQUEST_SIZE, "request_t comes from its pool");

static void request_done(int status, json_t *result, void *arg)
{
    request_t *req = arg;
    json_t *m;
    /* Built by hand rather than with json_pack: this runs once per request, and the format
     * parser was a third of a round trip's instructions (callgrind, runtime_bench call). */
    m = json_array();
    if (m != NULL) {
        json_array_append_new(m, json_string_nocheck(status == 0 ? "gs_reply" : "gs_error"));
        json_array_append_new(m, req->tag);
        if (status != 0)
            json_array_append_new(m, json_string_nocheck(gs_err_name(status)));
        json_array_append_new(m, result != NULL ? result : json_null());
    } else {
        json_decref(req->tag);
        json_decref(result);
    }
    req->tag = NULL; /* moved into m: never shared between threads */
    /* Forced past the mailbox limit: dropping it would leave the requester waiting forever.
     * If the requester is gone, the answer goes with it. */
    if (m == NULL || gs__server_send(req->self, GS__MSG_INFO, m, true) != 0)
        atomic_fetch_add_explicit(&req->self->rt->stats.dropped_messages, 1,
                                  memory_order_relaxed); /* counter */
    gs_server_unref(req->self);
    gs__pool_free(GS__POOL_REQUEST, req);
}

int gs_send_request(gs_server_t *self, const char *name, json_t *msg, int timeout_ms, json_t *tag)
{
    if (self == NULL || tag == NULL) {
        json_decref(msg);
        json_decref(tag);
        return GS_EINVAL;
    }
    request_t *req = gs__pool_alloc(GS__POOL_REQUEST);
    req->self = gs_server_ref(self);
    req->tag = tag;
    int rc = gs_call_async(self->rt, name, msg, timeout_ms, request_done, req);
    if (rc != 0) {
        gs_server_unref(req->self);
        json_decref(req->tag);
        gs__pool_free(GS__POOL_REQUEST, req);
    }
    return rc;
}
