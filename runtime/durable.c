/*
 * durable.c: durable servers. A durable server's state goes to the store after every message
 * that changed it, and what the server says to the world (replies, casts and sends, timers it
 * starts, a cast's "handled" acknowledgement) leaves only once that state committed: the
 * output gate. The server itself never waits: it goes on handling messages while its last
 * change commits, and their changes and effects queue behind it.
 *
 * API (one gs__durable_t per durable child, so that it outlives an incarnation's crash):
 *   gs__durable_init      at gs_runtime_create: the stored states, by name (rt->restore).
 *   gs__durable_attach    a durable child takes its stored state, if any.
 *   gs__durable_restore   its incarnation's init: the stored (or last handled) state is
 *                         restored with the behaviour's restore, instead of init.
 *   gs__durable_defer_*   during a callback on the server's thread: an effect is kept in
 *                         `local` instead of happening.
 *   gs__durable_after     after the callback: dump the state; if it changed, seq + 1 and it
 *                         is `pending`. With nothing in flight, pending goes to the store at
 *                         once (one batch: the state, the timer and key rows of the messages
 *                         since) and the effects wait in `inflight`; with nothing to write,
 *                         the effects leave now.
 *   committed (store thread)  the effects of the committed batch leave, in order; whatever
 *                         is pending is submitted next. A server thus has at most one batch in
 *                         flight, and a hot server writes its state once per commit, however
 *                         many messages changed it meanwhile.
 *   a failed commit       every effect in flight or pending fails (replies: GS_ESTORAGE,
 *                         sends and timers: dropped), `failed` is set and the server is woken;
 *   gs__durable_before    before its next message it rolls back to the committed state.
 * Effects leave under `mu`, so two threads (the store's, and the server's when nothing was
 * in flight) never interleave one server's effects out of order.
 */
#include "runtime_internal.h"

#include <genserv/store.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The most idempotency keys one durable server remembers; past it the oldest are forgotten. */
#define KEYS_MAX 10000

enum { E_REPLY = 1, E_SEND, E_TIMER, E_DONE };

typedef struct effect_s {
    struct effect_s *next;
    uint8_t kind;
    uint8_t msg_kind; /* E_SEND: GS__MSG_CAST or GS__MSG_INFO */
    int status;       /* E_REPLY, E_DONE: what it completes with */
    gs__call_t *call; /* E_REPLY: referenced */
    json_t *json;     /* E_REPLY: the reply; E_SEND: the message (owned) */
    gs_server_t *to;  /* E_SEND to a handle: referenced */
    char *name;       /* E_SEND by name: owned */
    gs_timer_ref_t ref;
    gs_done_cb cb; /* E_DONE */
    void *arg;
} effect_t;

typedef struct effects_s {
    effect_t *head, *tail;
} effects_t;

/* An idempotency key a server handled: its answer (NULL while a deferred reply is awaited). */
typedef struct idem_s {
    gs_map_node_t node;
    struct idem_s *older, *newer; /* by age, for the window and KEYS_MAX */
    uint64_t at_ms;               /* Unix time */
    uint64_t batch;               /* the batch that last wrote its row (0: the running callback) */
    char *answer;                 /* owned: the reply as JSON text, "" for a cast or send */
    char key[];
} idem_t;

struct gs__durable_s {
    gs_runtime_t *rt;
    gs__child_t *child; /* not referenced: the child owns this */

    /* The server's thread only. */
    char *last;                /* the last state dumped (the newest, committed or not) */
    char *base;                /* a fresh child's first state (seq 1): what a rollback goes
                                  back to while no commit has succeeded yet */
    uint64_t seq;              /* its sequence number */
    _Atomic uint64_t seq_seen; /* seq, for other threads' status reads (relaxed: a display) */
    effects_t local;
    gs_store_batch_t *local_ops; /* row changes of the callback running now */
    gs_map_t keys;               /* idempotency keys: key -> idem_t */
    idem_t *oldest, *newest;
    idem_t **touched; /* keys whose row the running callback wrote */
    size_t ntouched, touched_cap;

    pthread_mutex_t mu;
    /* mu: */
    bool inflight; /* a batch is with the store */
    /* A commit failed: roll back before the next message. Written under mu; read without it
     * before every message (acquire, pairing with the release stores), so that the common
     * case, nothing failed, takes no lock per message. */
    _Atomic bool failed;
    char *committed; /* the state the store has (NULL: none yet) */
    uint64_t committed_seq;
    uint64_t submitted;       /* batches submitted so far: the pending one will be +1 */
    uint64_t inflight_batch;  /* the number of the batch in flight */
    uint64_t committed_batch; /* the number of the last batch that committed */
    char *inflight_state;     /* the state in the batch in flight (NULL: it has none) */
    uint64_t inflight_seq;
    effects_t inflight_fx; /* leave when the batch in flight commits */
    char *pending_state;   /* changed since the batch in flight, not yet submitted */
    uint64_t pending_seq;
    gs_store_batch_t *pending_ops;
    effects_t pending_fx; /* leave after the pending batch commits */
};

static idem_t *idem_link(gs__durable_t *d, const char *key, char *answer, uint64_t at_ms);
static void idem_rollback(gs__durable_t *d, uint64_t committed_batch);

/* A stored state read at start, until a child of its name takes it. */
typedef struct restore_s {
    gs_map_node_t node;
    char *text;   /* owned: the state as JSON text, or NULL (only keys are stored) */
    json_t *keys; /* owned: its idempotency keys, [[KEY, AT_MS, ANSWER_TEXT|null], ...] */
    uint64_t seq;
    size_t len;
    char name[];
} restore_t;

static int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static gs_store_t *store_of(gs_runtime_t *rt)
{
    return rt->opts.store;
}

gs_store_t *gs_runtime_store(const gs_runtime_t *rt)
{
    return rt != NULL ? rt->opts.store : NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Rows                                                                                       */
/* ---------------------------------------------------------------------------------------- */

/* A states row: {"seq": N, "state": STATE}, STATE being the dumped text as it is. */
static char *state_row(const char *state, uint64_t seq, size_t *len)
{
    size_t slen = strlen(state), cap = slen + 48;
    char *row = malloc(cap);
    if (row == NULL)
        abort(); /* a few bytes more than the state the server already holds twice */
    int n = snprintf(row, cap, "{\"seq\":%llu,\"state\":%s}", (unsigned long long)seq, state);
    *len = (size_t)n;
    return row;
}

/* An idempotency key's row key: ["name","key"] as JSON, so that no name or key can collide. */
static char *key_row_key(const char *name, const char *key)
{
    json_t *k = json_pack("[ss]", name, key);
    char *text = k != NULL ? json_dumps(k, JSON_COMPACT) : NULL;
    json_decref(k);
    if (text == NULL)
        abort(); /* bounded by the gateway's limits: a tiny allocation */
    return text;
}

/* ---------------------------------------------------------------------------------------- */
/* Effects                                                                                    */
/* ---------------------------------------------------------------------------------------- */

static void fx_append(effects_t *l, effect_t *e)
{
    e->next = NULL;
    if (l->tail != NULL)
        l->tail->next = e;
    else
        l->head = e;
    l->tail = e;
}

static void fx_concat(effects_t *into, effects_t *from)
{
    if (from->head == NULL)
        return;
    if (into->tail != NULL)
        into->tail->next = from->head;
    else
        into->head = from->head;
    into->tail = from->tail;
    from->head = from->tail = NULL;
}

static effect_t *fx_new(uint8_t kind)
{
    effect_t *e = calloc(1, sizeof(*e));
    if (e == NULL)
        abort(); /* a small fixed-size record */
    e->kind = kind;
    return e;
}

/* Why effects fail: their commit failed (GS_ESTORAGE), or the state they followed could not
 * be stored and the server crashed (GS_ECRASHED with the crash reason, borrowed). */
typedef struct failure_s {
    int status;
    json_t *reason;
} failure_t;

static const failure_t storage_failed = {GS_ESTORAGE, NULL};

/* Let e happen (why NULL) or fail it. Frees e. */
static void fx_run(gs_runtime_t *rt, effect_t *e, const failure_t *why)
{
    bool ok = why == NULL;
    switch (e->kind) {
    case E_REPLY:
        if (ok)
            gs__call_complete(rt, e->call, e->status, e->json, false);
        else {
            json_decref(e->json);
            gs__call_complete(rt, e->call, why->status, gs__json_copy(why->reason), false);
        }
        gs__call_unref(e->call);
        break;
    case E_SEND: {
        int rc = GS_ESTORAGE;
        if (ok && e->to != NULL) {
            rc = gs__server_send(e->to, e->msg_kind, e->json, false);
        } else if (ok) {
            gs_server_t *s = gs__registry_whereis(rt, e->name);
            rc = s != NULL ? gs__server_send(s, e->msg_kind, e->json, false) : GS_ENOSERVER;
            if (s == NULL)
                json_decref(e->json);
            gs_server_unref(s);
        } else {
            json_decref(e->json);
        }
        if (rc != 0) /* counter */
            atomic_fetch_add_explicit(&rt->stats.dropped_messages, 1, memory_order_relaxed);
        gs_server_unref(e->to);
        free(e->name);
        break;
    }
    case E_TIMER:
        gs__timer_release(rt, e->ref, ok);
        break;
    case E_DONE:
        e->cb(ok ? e->status : why->status, e->arg);
        break;
    }
    free(e);
}

static void fx_run_all(gs_runtime_t *rt, effects_t *l, const failure_t *why)
{
    effect_t *e = l->head;
    l->head = l->tail = NULL;
    while (e != NULL) {
        effect_t *next = e->next;
        fx_run(rt, e, why);
        e = next;
    }
}

gs_server_t *gs__durable_current(void)
{
    gs_server_t *s = gs__tls.current;
    return s != NULL && s->child->dur != NULL ? s : NULL;
}

void gs__durable_defer_reply(gs_server_t *s, gs__call_t *c, int status, json_t *reply)
{
    effect_t *e = fx_new(E_REPLY);
    e->call = c;
    e->status = status;
    e->json = reply;
    fx_append(&s->child->dur->local, e);
}

void gs__durable_defer_send(gs_server_t *s, gs_server_t *to, const char *name, uint8_t kind,
                            json_t *msg)
{
    effect_t *e = fx_new(E_SEND);
    e->msg_kind = kind;
    e->json = msg;
    if (to != NULL)
        e->to = gs__server_ref(to);
    else if ((e->name = strdup(name)) == NULL)
        abort(); /* a name: at most 255 bytes */
    fx_append(&s->child->dur->local, e);
}

void gs__durable_defer_timer(gs_server_t *s, gs_timer_ref_t ref)
{
    effect_t *e = fx_new(E_TIMER);
    e->ref = ref;
    fx_append(&s->child->dur->local, e);
}

void gs__durable_defer_done(gs_server_t *s, gs_done_cb cb, void *arg, int status)
{
    effect_t *e = fx_new(E_DONE);
    e->cb = cb;
    e->arg = arg;
    e->status = status;
    fx_append(&s->child->dur->local, e);
}

/* ---------------------------------------------------------------------------------------- */
/* Row changes                                                                                */
/* ---------------------------------------------------------------------------------------- */

static void add_op(gs_store_batch_t **b, int table, const char *key, char *val, size_t len)
{
    if (*b == NULL && (*b = gs_store_batch_create(NULL, NULL)) == NULL)
        abort(); /* a small fixed-size record */
    int rc = val != NULL ? gs_store_batch_put_owned(*b, table, key, val, len)
                         : gs_store_batch_delete(*b, table, key);
    if (rc != 0)
        abort(); /* the row's value is already allocated; only the op array grows */
}

void gs__durable_op(gs_server_t *s, int table, const char *key, char *val, size_t len)
{
    add_op(&s->child->dur->local_ops, table, key, val, len);
}

/* Count a batch in before submitting it: false (counted out again) once shutdown closed the
 * store to new batches. seq_cst both: see gs_runtime_t.durable_closed. */
static bool enter(gs_runtime_t *rt)
{
    atomic_fetch_add(&rt->durable_inflight, 1);
    if (atomic_load(&rt->durable_closed) == 0)
        return true;
    atomic_fetch_sub(&rt->durable_inflight, 1);
    return false;
}

typedef struct alone_s {
    gs_runtime_t *rt;
    gs_done_cb cb;
    void *arg;
} alone_t;

/* The store's thread runs completions as a runtime thread: what they send or call is queued
 * for the schedulers, never run there in turn (a durable server's turn would take the lock
 * on_committed holds, and a blocking call would stall every commit). Returns what to give
 * back to store_thread_leave. */
static gs__tls_t store_thread_enter(void)
{
    gs__tls_t outside = gs__tls;
    gs__tls.runtime_thread = true;
    return outside;
}

static void store_thread_leave(gs__tls_t outside)
{
    gs__tls = outside;
}

static void alone_done(int status, void *arg)
{
    alone_t *a = arg;
    gs_runtime_t *rt = a->rt;
    gs__tls_t outside = store_thread_enter();
    if (a->cb != NULL)
        a->cb(status, a->arg);
    free(a);
    store_thread_leave(outside);
    atomic_fetch_sub(&rt->durable_inflight, 1);
}

void gs__durable_op_alone(gs_runtime_t *rt, int table, const char *key, char *val, size_t len,
                          gs_done_cb cb, void *arg)
{
    gs_store_t *st = store_of(rt);
    alone_t *a = malloc(sizeof(*a));
    gs_store_batch_t *b = NULL;
    if (a == NULL)
        abort(); /* a small fixed-size record */
    *a = (alone_t){rt, cb, arg};
    if (st == NULL || (b = gs_store_batch_create(alone_done, a)) == NULL) {
        free(val);
        free(a);
        if (cb != NULL)
            cb(st == NULL ? 0 : GS_ENOMEM, arg);
        return;
    }
    add_op(&b, table, key, val, len);
    if (!enter(rt)) {
        gs_store_batch_destroy(b);
        free(a);
        if (cb != NULL)
            cb(GS_ESHUTDOWN, arg);
    } else if (st->submit(st, b) != 0) {
        atomic_fetch_sub(&rt->durable_inflight, 1);
        free(a); /* submit freed the batch without running done */
        if (cb != NULL)
            cb(GS_ESHUTDOWN, arg);
    }
}

/* Move the ops of from into *into (created if needed); from is freed. */
static void ops_concat(gs_store_batch_t **into, gs_store_batch_t *from)
{
    if (from == NULL)
        return;
    if (*into == NULL) {
        *into = from;
        return;
    }
    for (size_t i = 0; i < from->n; i++) {
        gs_store_op_t *op = &from->ops[i];
        int rc = op->del
                     ? gs_store_batch_delete(*into, op->table, op->key)
                     : gs_store_batch_put_owned(*into, op->table, op->key, op->val, op->val_len);
        if (rc != 0)
            abort();    /* the op array's growth: internal */
        op->val = NULL; /* taken */
    }
    gs_store_batch_destroy(from);
}

/* ---------------------------------------------------------------------------------------- */
/* The commit pipeline                                                                        */
/* ---------------------------------------------------------------------------------------- */

static void on_committed(int status, void *arg);

/* Whether something waits to be written (mu). */
static bool pending_writes(const gs__durable_t *d)
{
    return d->pending_state != NULL || (d->pending_ops != NULL && d->pending_ops->n > 0);
}

/* Hand what is pending to the store (mu held, nothing in flight). On a failure to submit
 * (shutdown), the batch's effects fail at once. */
static void submit_pending(gs__durable_t *d)
{
    gs_store_batch_t *b = d->pending_ops;
    d->pending_ops = NULL;
    if (b == NULL && (b = gs_store_batch_create(NULL, NULL)) == NULL)
        abort(); /* a small fixed-size record */
    b->done = on_committed;
    b->arg = d;
    if (d->pending_state != NULL) {
        size_t len;
        char *row = state_row(d->pending_state, d->pending_seq, &len);
        if (gs_store_batch_put_owned(b, GS_STORE_STATES, d->child->name, row, len) != 0)
            abort(); /* the op array's growth: internal */
    }
    d->inflight = true;
    d->inflight_batch = ++d->submitted;
    d->inflight_state = d->pending_state;
    d->inflight_seq = d->pending_seq;
    d->pending_state = NULL;
    fx_concat(&d->inflight_fx, &d->pending_fx);
    gs__child_ref(d->child); /* the batch's: d lives in the child */
    gs_store_t *st = store_of(d->rt);
    bool entered = enter(d->rt);
    if (!entered)
        gs_store_batch_destroy(b);
    if (!entered || st->submit(st, b) != 0) {
        if (entered) /* submit freed b without running done */
            atomic_fetch_sub(&d->rt->durable_inflight, 1);
        d->inflight = false;
        free(d->inflight_state);
        d->inflight_state = NULL;
        fx_run_all(d->rt, &d->inflight_fx, &storage_failed);
        gs__child_unref(d->child);
    }
}

/* Wake the server so that gs__durable_before rolls it back now rather than at its next
 * message (a KILL without the killed flag is a no-op wake-up). */
static void wake(gs__child_t *c)
{
    gs__child_lock(c);
    gs_server_t *s = c->current != NULL ? gs__server_ref(c->current) : NULL;
    gs__child_unlock(c);
    if (s == NULL)
        return;
    gs__msg_t *m = gs__msg_alloc();
    m->kind = GS__MSG_KILL;
    m->payload = NULL;
    if (gs__server_push(s, m, true) != 0)
        gs__msg_free(m);
    gs_server_unref(s);
}

/* The store's thread: the batch in flight committed (status 0) or failed. */
static void on_committed(int status, void *arg)
{
    gs__durable_t *d = arg;
    gs__child_t *c = d->child;
    bool failed = false;
    gs__tls_t outside = store_thread_enter();

    pthread_mutex_lock(&d->mu);
    d->inflight = false;
    if (status == 0) {
        d->committed_batch = d->inflight_batch;
        free(d->base); /* a commit succeeded: rollbacks go back to committed states now */
        d->base = NULL;
        if (d->inflight_state != NULL) {
            free(d->committed);
            d->committed = d->inflight_state;
            d->committed_seq = d->inflight_seq;
            d->inflight_state = NULL;
        }
        effects_t out = d->inflight_fx;
        d->inflight_fx = (effects_t){NULL, NULL};
        if (pending_writes(d))
            submit_pending(d); /* its effects move to inflight_fx */
        else
            fx_concat(&out, &d->pending_fx); /* nothing uncommitted precedes them */
        fx_run_all(d->rt, &out, NULL);
    } else {
        /* Everything since the committed state is undone: what it would have said fails. */
        free(d->inflight_state);
        d->inflight_state = NULL;
        free(d->pending_state);
        d->pending_state = NULL;
        gs_store_batch_destroy(d->pending_ops);
        d->pending_ops = NULL;
        fx_concat(&d->inflight_fx, &d->pending_fx);
        /* Set before the failures go out: a client that hears its 503 and sends again must
         * find the server rolling back, not reading the undone state (whose reply would then
         * fail too, for a change the client never asked for). */
        atomic_store_explicit(&d->failed, true, memory_order_release);
        fx_run_all(d->rt, &d->inflight_fx, &storage_failed);
        failed = true;
    }
    pthread_mutex_unlock(&d->mu);
    if (failed)
        wake(c);
    gs_runtime_t *rt = d->rt;
    gs__child_unref(c); /* may free d */
    store_thread_leave(outside);
    atomic_fetch_sub(&rt->durable_inflight, 1);
}

/* Dump s's state: a new malloc'd text, or NULL with *reason (new). */
static char *dump(gs_server_t *s, json_t **reason)
{
    json_t *why = NULL;
    json_t *v = s->b->dump_state(s, s->state, &why);
    if (v == NULL) {
        *reason = json_pack("[s, o]", "unserializable_state", why != NULL ? why : json_null());
        return NULL;
    }
    json_decref(why);
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(v);
    if (text == NULL)
        *reason = json_pack("[s, s]", "unserializable_state", "json_dumps failed");
    return text;
}

/* Roll s back to the committed state (its thread; after a failed commit). */
static json_t *rollback(gs_server_t *s, gs__durable_t *d)
{
    pthread_mutex_lock(&d->mu);
    bool never = d->committed == NULL;
    const char *to = never ? d->base : d->committed;
    char *text = to != NULL ? strdup(to) : NULL;
    uint64_t seq = never ? 1 : d->committed_seq, committed_batch = d->committed_batch;
    atomic_store_explicit(&d->failed, false, memory_order_release);
    pthread_mutex_unlock(&d->mu);
    /* The keys the undone changes recorded are undone with them: a retry is a new request. */
    idem_rollback(d, committed_batch);
    /* What the running callback said fails with the rest. */
    fx_run_all(d->rt, &d->local, &storage_failed);
    gs_store_batch_destroy(d->local_ops);
    d->local_ops = NULL;
    if (text == NULL) /* never committed: nothing to go back to */
        return json_pack("[s, s]", "storage_unavailable", "no committed state to roll back to");
    json_error_t err;
    json_t *stored = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    json_t *why = NULL;
    int rc = stored != NULL ? s->b->restore(s, stored, &s->state, &why) : -1;
    json_decref(stored);
    if (rc != 0) {
        free(text);
        return json_pack("[s, o]", "rollback_failed", why != NULL ? why : json_null());
    }
    free(d->last);
    d->last = text;
    d->seq = seq;
    atomic_store_explicit(&d->seq_seen, seq, memory_order_relaxed); /* a display */
    /* A stored timer whose delivery was undone is due again (its row stayed in the store). */
    gs__timers_reload(d->rt, d->child->name);
    if (never) {
        /* Back to the state it started with, which the store has yet to take: written again
         * now (or behind the batch in flight). */
        pthread_mutex_lock(&d->mu);
        free(d->pending_state);
        if ((d->pending_state = strdup(d->last)) == NULL)
            abort(); /* the state's size again */
        d->pending_seq = seq;
        if (!d->inflight)
            submit_pending(d);
        pthread_mutex_unlock(&d->mu);
    }
    return NULL;
}

bool gs__durable_progress(gs__child_t *child, int64_t *committed_seq, uint64_t *lag)
{
    gs__durable_t *d = child->dur;
    *committed_seq = -1;
    *lag = 0;
    if (d == NULL)
        return false;
    pthread_mutex_lock(&d->mu);
    bool any = d->committed != NULL;
    uint64_t committed = d->committed_seq;
    pthread_mutex_unlock(&d->mu);
    uint64_t seen = atomic_load_explicit(&d->seq_seen, memory_order_relaxed); /* a display */
    *committed_seq = any ? (int64_t)committed : -1;
    *lag = seen > committed ? seen - committed : 0;
    return true;
}

json_t *gs__durable_before(gs_server_t *s)
{
    gs__durable_t *d = s->child->dur;
    /* acquire: see `failed`; rollback takes mu for what it reads */
    return atomic_load_explicit(&d->failed, memory_order_acquire) ? rollback(s, d) : NULL;
}

json_t *gs__durable_after(gs_server_t *s)
{
    gs__durable_t *d = s->child->dur;
    char *text = NULL;
    json_t *stop = NULL;

    if (!s->exited && s->state != NULL) {
        text = dump(s, &stop);
        if (text == NULL) {
            /* The state cannot be stored: the server crashes, the store keeps what it had,
             * and what this callback said goes out with the crash's other news (its reply
             * was not given: the call fails with the crash). */
            failure_t crash = {GS_ECRASHED, stop};
            fx_run_all(d->rt, &d->local, &crash);
            gs_store_batch_destroy(d->local_ops);
            d->local_ops = NULL;
            return stop;
        }
        if (d->last != NULL && strcmp(text, d->last) == 0) {
            free(text);
            text = NULL;
        } else {
            free(d->last);
            d->last = text;
            d->seq++;
            atomic_store_explicit(&d->seq_seen, d->seq, memory_order_relaxed); /* a display */
            /* seq 1 only on a fresh child's first dump (a restored one starts at its row's) */
            if (d->seq == 1 && (d->base = strdup(text)) == NULL)
                abort(); /* the state's size again */
        }
    }
    if (text == NULL && d->local.head == NULL && d->local_ops == NULL)
        return NULL; /* nothing changed, nothing said: the common read */

    pthread_mutex_lock(&d->mu);
    if (atomic_load_explicit(&d->failed, memory_order_relaxed)) { /* mu held */
        pthread_mutex_unlock(&d->mu);
        return s->exited ? NULL : rollback(s, d); /* this message too ran on the undone state */
    }
    if (text != NULL) {
        free(d->pending_state);
        if ((d->pending_state = strdup(text)) == NULL)
            abort(); /* the state's size again, next to the copy just made */
        d->pending_seq = d->seq;
    }
    ops_concat(&d->pending_ops, d->local_ops);
    d->local_ops = NULL;
    fx_concat(&d->pending_fx, &d->local);
    for (size_t i = 0; i < d->ntouched; i++) /* their rows go in the pending batch */
        d->touched[i]->batch = d->submitted + 1;
    d->ntouched = 0;
    if (!d->inflight) {
        if (pending_writes(d))
            submit_pending(d);
        else
            fx_run_all(d->rt, &d->pending_fx, NULL); /* nothing uncommitted precedes them */
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Children                                                                                   */
/* ---------------------------------------------------------------------------------------- */

static bool restore_has_name(const gs_map_node_t *node, const void *key)
{
    const restore_t *r = gs__container_of(node, restore_t, node);
    return strcmp(r->name, key) == 0;
}

/* Take the stored state of name out of the restore table, or NULL. */
static restore_t *restore_take(gs_runtime_t *rt, const char *name)
{
    uint64_t hash = gs_hash_bytes(name, strlen(name));
    gs_shmap_shard_t *sh = gs_shmap_shard(&rt->restore, hash);
    gs_shmap_lock(sh);
    gs_map_node_t *n = gs_map_remove(&sh->map, hash, name, restore_has_name);
    gs_shmap_unlock(sh);
    return n != NULL ? gs__container_of(n, restore_t, node) : NULL;
}

/* Put a state in the restore table (replacing one of the same name). Takes text. */
static void restore_put(gs_runtime_t *rt, const char *name, char *text, uint64_t seq)
{
    size_t nlen = strlen(name);
    restore_t *r = malloc(sizeof(*r) + nlen + 1);
    if (r == NULL)
        abort(); /* start-up, or a tree child's hand-over: small */
    r->text = text;
    r->keys = NULL;
    r->len = text != NULL ? strlen(text) : 0;
    r->seq = seq;
    memcpy(r->name, name, nlen + 1);
    restore_t *old = restore_take(rt, name);
    if (old != NULL) {
        r->keys = old->keys; /* a hand-over keeps the keys read at start */
        free(old->text);
        free(old);
    }
    uint64_t hash = gs_hash_bytes(name, nlen);
    gs_shmap_shard_t *sh = gs_shmap_shard(&rt->restore, hash);
    gs_shmap_lock(sh);
    if (gs_map_insert(&sh->map, &r->node, hash) != 0)
        abort(); /* the table's own growth: internal */
    gs_shmap_unlock(sh);
}

int gs__durable_attach(gs__child_t *child)
{
    gs_runtime_t *rt = child->rt;
    const gs_behaviour_t *b = atomic_load_explicit(&child->b, memory_order_acquire);
    if (store_of(rt) == NULL || b == NULL || b->dump_state == NULL || b->restore == NULL)
        return GS_ENOTSUP;
    gs__durable_t *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return GS_ENOMEM;
    d->rt = rt;
    d->child = child;
    /* Batch 1 stands for what the store held at start (the keys read from it): the batches
     * this process submits are 2, 3, ... */
    d->submitted = d->committed_batch = 1;
    pthread_mutex_init(&d->mu, NULL);
    gs_map_init(&d->keys);
    restore_t *r = restore_take(rt, child->name);
    if (r != NULL) {
        if (r->text != NULL) {
            d->last = r->text;
            d->seq = d->committed_seq = r->seq;
            atomic_init(&d->seq_seen, r->seq);
            d->committed = strdup(r->text);
            if (d->committed == NULL)
                abort(); /* the state read at start: its size again */
        }
        size_t i;
        json_t *k;
        json_array_foreach(r->keys, i, k)
        {
            const char *answer = json_string_value(json_array_get(k, 2));
            char *copy = answer != NULL ? strdup(answer) : NULL;
            idem_link(d, json_string_value(json_array_get(k, 0)), copy,
                      (uint64_t)json_integer_value(json_array_get(k, 1)));
        }
        json_decref(r->keys);
        free(r);
    }
    child->dur = d;
    return 0;
}

static bool free_idem(gs_map_node_t *node, void *arg)
{
    (void)arg;
    idem_t *k = gs__container_of(node, idem_t, node);
    free(k->answer);
    free(k);
    return true;
}

void gs__durable_detach(gs__child_t *child)
{
    gs__durable_t *d = child->dur;
    if (d == NULL)
        return;
    child->dur = NULL;
    /* Nothing is in flight: a batch holds a reference on the child. */
    fx_run_all(d->rt, &d->local, &storage_failed);
    fx_run_all(d->rt, &d->pending_fx, &storage_failed);
    gs_store_batch_destroy(d->local_ops);
    gs_store_batch_destroy(d->pending_ops);
    gs_map_filter(&d->keys, free_idem, NULL);
    gs_map_close(&d->keys);
    free(d->touched);
    free(d->last);
    free(d->base);
    free(d->committed);
    free(d->pending_state);
    free(d->inflight_state);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

void gs__durable_forget(gs__child_t *child, bool keep)
{
    gs__durable_t *d = child->dur;
    if (d == NULL)
        return;
    if (keep) {
        /* A tree child: its supervisor starts the next child of this name, which takes it. */
        if (d->last != NULL) {
            char *text = strdup(d->last);
            if (text == NULL)
                abort(); /* the state's size again */
            restore_put(child->rt, child->name, text, d->seq);
        }
        return;
    }
    /* Queued behind whatever of it is still in flight (the store commits in order). */
    gs_store_batch_t *b = NULL;
    add_op(&b, GS_STORE_STATES, child->name, NULL, 0);
    for (idem_t *k = d->oldest; k != NULL; k = k->newer) {
        char *rk = key_row_key(child->name, k->key);
        add_op(&b, GS_STORE_KEYS, rk, NULL, 0);
        free(rk);
    }
    pthread_mutex_lock(&d->mu);
    ops_concat(&d->pending_ops, b);
    if (!d->inflight)
        submit_pending(d);
    pthread_mutex_unlock(&d->mu);
}

int gs__durable_restore(gs_server_t *s, void **state, json_t **reason)
{
    gs__durable_t *d = s->child->dur;
    *reason = NULL;
    if (d->last == NULL)
        return 0;
    json_error_t err;
    json_t *stored = json_loads(d->last, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (stored == NULL) {
        *reason = json_pack("[s, s]", "bad_stored_state", err.text);
        return -1;
    }
    *state = NULL;
    int rc = s->b->restore(s, stored, state, reason);
    json_decref(stored);
    if (rc != 0)
        return -1;
    if (s->b->restored != NULL)
        s->b->restored(s, *state);
    return 1;
}

/* ---------------------------------------------------------------------------------------- */
/* Start-up: the stored states                                                                */
/* ---------------------------------------------------------------------------------------- */

static bool load_state(const char *key, const char *val, size_t len, void *arg)
{
    gs_runtime_t *rt = arg;
    json_error_t err;
    json_t *row = json_loadb(val, len, JSON_ALLOW_NUL, &err);
    json_t *state = json_object_get(row, "state");
    json_t *seq = json_object_get(row, "seq");
    if (state == NULL || !json_is_integer(seq) || json_integer_value(seq) < 0) {
        fprintf(stderr, "genserv: store: the stored state of %s is unreadable (%s); skipped\n", key,
                row == NULL ? err.text : "no seq or state");
        json_decref(row);
        return true;
    }
    char *text = json_dumps(state, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text != NULL)
        restore_put(rt, key, text, (uint64_t)json_integer_value(seq));
    json_decref(row);
    return true;
}

/* A keys row: key ["NAME","KEY"], value {"at": UNIX_MS, "answer": JSON|null|""}. */
static bool load_key(const char *key, const char *val, size_t len, void *arg)
{
    gs_runtime_t *rt = arg;
    json_error_t err;
    json_t *k = json_loads(key, 0, &err), *row = json_loadb(val, len, JSON_ALLOW_NUL, &err);
    const char *name = json_string_value(json_array_get(k, 0));
    const char *ikey = json_string_value(json_array_get(k, 1));
    json_t *at = json_object_get(row, "at"), *answer = json_object_get(row, "answer");
    if (name == NULL || ikey == NULL || !json_is_integer(at) || answer == NULL) {
        fprintf(stderr, "genserv: store: an idempotency key row is unreadable; skipped\n");
        goto out;
    }
    restore_t *r = restore_take(rt, name);
    if (r == NULL) {
        restore_put(rt, name, NULL, 0);
        r = restore_take(rt, name);
    }
    if (r->keys == NULL)
        r->keys = json_array();
    char *dumped = json_is_null(answer) ? NULL : json_dumps(answer, JSON_COMPACT | JSON_ENCODE_ANY);
    json_t *text = json_is_null(answer) ? json_null()
                   : json_is_string(answer) && *json_string_value(answer) == '\0'
                       ? json_string("")
                       : json_string(dumped != NULL ? dumped : "null");
    free(dumped);
    json_array_append_new(r->keys, json_pack("[s, O, o]", ikey, at, text));
    /* back in the table */
    uint64_t hash = gs_hash_bytes(name, strlen(name));
    gs_shmap_shard_t *sh = gs_shmap_shard(&rt->restore, hash);
    gs_shmap_lock(sh);
    if (gs_map_insert(&sh->map, &r->node, hash) != 0)
        abort(); /* the table's own growth: internal */
    gs_shmap_unlock(sh);
out:
    json_decref(k);
    json_decref(row);
    return true;
}

/* New timer refs start past every stored one, so that a row's key stays one timer's even
 * for timers that servers start before gs_runtime_restore_timers. */
static bool max_timer_ref(const char *key, const char *val, size_t len, void *arg)
{
    gs_runtime_t *rt = arg;
    (void)val;
    (void)len;
    unsigned long long ref = strtoull(key, NULL, 10);
    /* relaxed: start-up, before any other thread makes timers */
    if (ref >= atomic_load_explicit(&rt->next_timer_ref, memory_order_relaxed))
        atomic_store_explicit(&rt->next_timer_ref, ref + 1, memory_order_relaxed);
    return true;
}

int gs__durable_init(gs_runtime_t *rt)
{
    int rc = gs_shmap_init(&rt->restore);
    if (rc != 0 || store_of(rt) == NULL)
        return rc;
    gs_store_t *st = store_of(rt);
    if (st->load(st, GS_STORE_STATES, load_state, rt) != 0 ||
        st->load(st, GS_STORE_KEYS, load_key, rt) != 0 ||
        st->load(st, GS_STORE_TIMERS, max_timer_ref, rt) != 0)
        return GS_ESTORAGE;
    return 0;
}

static bool free_restore(gs_map_node_t *node, void *arg)
{
    (void)arg;
    restore_t *r = gs__container_of(node, restore_t, node);
    free(r->text);
    json_decref(r->keys);
    free(r);
    return true;
}

void gs__durable_close(gs_runtime_t *rt)
{
    for (int i = 0; i < GS_SHMAP_SHARDS; i++)
        gs_map_filter(&rt->restore.shards[i].map, free_restore, NULL);
    gs_shmap_close(&rt->restore);
}

/* ---------------------------------------------------------------------------------------- */
/* Idempotency keys                                                                           */
/* ---------------------------------------------------------------------------------------- */

static bool idem_has_key(const gs_map_node_t *node, const void *key)
{
    return strcmp(gs__container_of(node, idem_t, node)->key, key) == 0;
}

static uint64_t window_ms(const gs_runtime_t *rt)
{
    return rt->opts.idempotency_window_ms != 0 ? rt->opts.idempotency_window_ms
                                               : 24u * 3600u * 1000u;
}

/* k's row is written by the running callback: its batch is known once the callback ends. */
static void idem_touch(gs__durable_t *d, idem_t *k)
{
    if (k->batch == 0)
        return; /* touched already */
    if (d->ntouched == d->touched_cap) {
        size_t cap = d->touched_cap ? d->touched_cap * 2 : 8;
        idem_t **t = realloc(d->touched, cap * sizeof(*t));
        if (t == NULL)
            abort(); /* a few pointers per message */
        d->touched = t;
        d->touched_cap = cap;
    }
    d->touched[d->ntouched++] = k;
    k->batch = 0;
}

/* The key's row: {"at": UNIX_MS, "answer": JSON or null ("" as a cast's)}. */
static void idem_store(gs_server_t *s, idem_t *k)
{
    idem_touch(s->child->dur, k);
    char *rk = key_row_key(s->child->name, k->key);
    size_t cap = 64 + (k->answer != NULL ? strlen(k->answer) : 0);
    char *row = malloc(cap);
    if (row == NULL)
        abort(); /* the answer's size, which the server produced */
    int n = snprintf(row, cap, "{\"at\":%llu,\"answer\":%s}", (unsigned long long)k->at_ms,
                     k->answer == NULL    ? "null"
                     : *k->answer == '\0' ? "\"\""
                                          : k->answer);
    gs__durable_op(s, GS_STORE_KEYS, rk, row, (size_t)n);
    free(rk);
}

/* Take the oldest key out of the age list; NULL when there is none. */
static idem_t *idem_pop_oldest(gs__durable_t *d)
{
    idem_t *k = d->oldest;
    if (k == NULL)
        return NULL;
    d->oldest = k->newer;
    if (d->oldest != NULL)
        d->oldest->older = NULL;
    else
        d->newest = NULL;
    k->newer = NULL;
    return k;
}

/* Take k out of the touched list, if it is there. */
static void idem_untouch(gs__durable_t *d, const idem_t *k)
{
    for (size_t i = 0; i < d->ntouched; i++)
        if (d->touched[i] == k) {
            d->touched[i] = d->touched[--d->ntouched];
            return;
        }
}

/* Forget k (out of the list already), and its row. */
static void idem_forget(gs_server_t *s, idem_t *k)
{
    gs__durable_t *d = s->child->dur;
    idem_untouch(d, k);
    gs_map_unlink(&d->keys, &k->node);
    char *rk = key_row_key(s->child->name, k->key);
    gs__durable_op(s, GS_STORE_KEYS, rk, NULL, 0);
    free(rk);
    free(k->answer);
    free(k);
}

/* Link a key (answer taken, may be NULL) as the newest. */
static idem_t *idem_link(gs__durable_t *d, const char *key, char *answer, uint64_t at_ms)
{
    size_t len = strlen(key);
    idem_t *k = malloc(sizeof(*k) + len + 1);
    if (k == NULL)
        abort(); /* a bounded key */
    memcpy(k->key, key, len + 1);
    k->answer = answer;
    k->at_ms = at_ms;
    k->batch = 1; /* read from the store: committed (idem_touch marks new ones) */
    k->newer = NULL;
    k->older = d->newest;
    if (d->newest != NULL)
        d->newest->newer = k;
    else
        d->oldest = k;
    d->newest = k;
    if (gs_map_insert(&d->keys, &k->node, gs_hash_bytes(key, len)) != 0)
        abort(); /* the map's first buckets: internal */
    return k;
}

/* The live record of key, after forgetting those past the window. */
static idem_t *idem_find(gs_server_t *s, const char *key)
{
    gs__durable_t *d = s->child->dur;
    uint64_t now = (uint64_t)unix_ms(), window = window_ms(s->rt);
    while (d->oldest != NULL && d->oldest->at_ms + window < now)
        idem_forget(s, idem_pop_oldest(d));
    gs_map_node_t *n = gs_map_find(&d->keys, gs_hash_bytes(key, strlen(key)), key, idem_has_key);
    return n != NULL ? gs__container_of(n, idem_t, node) : NULL;
}

static idem_t *idem_record(gs_server_t *s, const char *key, char *answer)
{
    gs__durable_t *d = s->child->dur;
    if (gs_map_count(&d->keys) >= KEYS_MAX)
        idem_forget(s, idem_pop_oldest(d));
    idem_t *k = idem_link(d, key, answer, (uint64_t)unix_ms());
    idem_store(s, k);
    return k;
}

bool gs__durable_replay_call(gs_server_t *s, gs__call_t *c)
{
    const char *key = c->msg.meta->key;
    idem_t *k = idem_find(s, key);
    if (k == NULL) {
        idem_record(s, key, NULL); /* its answer comes with the reply */
        return false;
    }
    if (k->answer == NULL || *k->answer == '\0') {
        /* The first call waits for a deferred reply (or the key was a cast's). */
        gs__call_complete(s->rt, c, GS_EKEYBUSY, NULL, false);
        return true;
    }
    json_error_t err;
    json_t *reply = json_loads(k->answer, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    gs__call_ref(c); /* the effect's */
    gs__durable_defer_reply(s, c, 0, reply != NULL ? reply : json_null());
    return true;
}

bool gs__durable_replay_send(gs_server_t *s, const char *key)
{
    if (idem_find(s, key) != NULL)
        return true;
    char *empty = strdup("");
    if (empty == NULL)
        abort(); /* one byte */
    idem_record(s, key, empty);
    return false;
}

void gs__durable_answered(gs_server_t *s, gs__call_t *c, const json_t *reply)
{
    if (c->msg.meta == NULL || c->msg.meta->key == NULL || s->child->dur == NULL)
        return;
    gs__durable_t *d = s->child->dur;
    const char *key = c->msg.meta->key;
    gs_map_node_t *n = gs_map_find(&d->keys, gs_hash_bytes(key, strlen(key)), key, idem_has_key);
    if (n == NULL)
        return; /* not this server's key (a reply to another server's caller) */
    idem_t *k = gs__container_of(n, idem_t, node);
    free(k->answer);
    k->answer = json_dumps(reply, JSON_COMPACT | JSON_ENCODE_ANY);
    idem_store(s, k);
}

/* After a failed commit (the server's thread): forget the keys whose rows were in a batch that
 * did not commit, or in the callback that ran on the undone state. No row is written: theirs
 * never committed (a committed key whose later answer did not commit is forgotten too; the
 * store keeps it without an answer, as a call whose reply is still awaited). */
static void idem_rollback(gs__durable_t *d, uint64_t committed_batch)
{
    idem_t *k = d->oldest;
    d->ntouched = 0;
    while (k != NULL) {
        idem_t *newer = k->newer;
        if (k->batch == 0 || k->batch > committed_batch) {
            if (k->older != NULL)
                k->older->newer = k->newer;
            else
                d->oldest = k->newer;
            if (k->newer != NULL)
                k->newer->older = k->older;
            else
                d->newest = k->older;
            gs_map_unlink(&d->keys, &k->node);
            free(k->answer);
            free(k);
        }
        k = newer;
    }
}
