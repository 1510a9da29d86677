/*
 * introspect.c: each server's status as JSON, read from counters and the child's record
 * without going through the server's mailbox (so an overloaded server can still be looked
 * at), its open-reply ledger (call.c reads the held-call table), and what inspection may show
 * of a state or a tag (sensitive, redact). The state itself
 * (gs_get_state) does go through the mailbox: see call.c and server.c's dispatch.
 */
#include "runtime_internal.h"

#include <genserv/message.h>

#include <stdlib.h>
#include <string.h>

const char *gs_server_status_name(gs_server_status_t status)
{
    switch (status) {
#define GS__STATUS_NAME(sym, name, meaning)                                                        \
    case GS_STATUS_##sym:                                                                          \
        return name;
        GS_SERVER_STATUS_MAP(GS__STATUS_NAME)
#undef GS__STATUS_NAME
    }
    return "unknown";
}

/* One value per field of GS_SERVER_STATUS_FIELDS: the object is written from that list, so
 * what is emitted and what is documented cannot differ. */
typedef struct status_values_s {
#define GS__STATUS_VALUE(field, type, meaning) json_t *field;
    GS_SERVER_STATUS_FIELDS(GS__STATUS_VALUE)
#undef GS__STATUS_VALUE
} status_values_t;

static json_t *child_status(gs__child_t *c)
{
    /* relaxed loads throughout: a snapshot of counters for display */
    uint32_t restarts = atomic_load_explicit(&c->restarts, memory_order_relaxed);
    uint64_t handled = atomic_load_explicit(&c->handled_before, memory_order_relaxed);
    gs_server_status_t status = GS_STATUS_DOWN;
    int64_t mailbox = 0, uptime = 0;
    uint64_t state_bytes = 0, msg_bytes = 0;
    uint32_t held = 0;
    status_values_t v;

    gs__child_lock(c);
    /* Under the shard lock the current incarnation cannot be replaced, and the child's
     * reference keeps it alive: its counters are read without taking a reference. */
    gs_server_t *s = c->current;
    if (s != NULL) {
        uint8_t st = atomic_load_explicit(&s->status, memory_order_acquire);
        status = st == GS__RUNNING ? GS_STATUS_RUNNING
                 : restarts > 0    ? GS_STATUS_RESTARTING
                                   : GS_STATUS_STARTING;
        /* relaxed: a snapshot, as the counters */
        if (st == GS__RUNNING && atomic_load_explicit(&s->suspended, memory_order_relaxed))
            status = GS_STATUS_SUSPENDED;
        mailbox = atomic_load_explicit(&s->mailbox_len, memory_order_relaxed);
        if (mailbox < 0)
            mailbox = 0;
        handled += atomic_load_explicit(&s->handled, memory_order_relaxed);
        held = atomic_load_explicit(&s->held, memory_order_relaxed);
        state_bytes = atomic_load_explicit(&s->state_bytes, memory_order_relaxed);
        msg_bytes = atomic_load_explicit(&s->msg_bytes, memory_order_relaxed);
        if (st == GS__RUNNING)
            uptime = (int64_t)(gs__now_ms() - s->started_ms);
    }
    /* Copies: the scheduler thread owns the child's values; sharing a reference across
     * threads would race in jansson's reference counting (see gs__json_copy). */
    v.last_crash_reason =
        c->last_crash_reason != NULL ? gs__json_copy(c->last_crash_reason) : json_null();
    v.down_reason = c->down_reason != NULL ? gs__json_copy(c->down_reason) : json_null();
    gs__child_unlock(c);

    v.name = json_string(c->name);
    /* acquire: pairs with the upgrade's release store of the child's code */
    const gs_behaviour_t *b = atomic_load_explicit(&c->b, memory_order_acquire);
    v.behaviour = json_string(b->name);
    v.vsn = b->vsn != NULL ? json_string(b->vsn) : json_null();
    v.status = json_string(gs_server_status_name(status));
    v.restart = json_string(gs_restart_name(c->opts.restart));
    v.mailbox_len = json_integer((json_int_t)mailbox);
    v.mailbox_limit = json_integer((json_int_t)c->opts.mailbox_limit);
    v.messages_handled = json_integer((json_int_t)handled);
    v.restarts = json_integer((json_int_t)restarts);
    v.held_calls = json_integer((json_int_t)held);
    v.uptime_ms = json_integer((json_int_t)uptime);
    v.sensitive = json_boolean(b->sensitive || c->opts.sensitive);
    int64_t committed;
    uint64_t lag;
    v.durable = json_boolean(gs__durable_progress(c, &committed, &lag));
    v.committed_seq = committed >= 0 ? json_integer((json_int_t)committed) : json_null();
    v.commit_lag = json_integer((json_int_t)lag);
    /* relaxed: a tally for display */
    v.stored_timers =
        json_integer((json_int_t)atomic_load_explicit(&c->stored_timers, memory_order_relaxed));

    uint64_t mailbox_bytes = gs__mailbox_bytes(mailbox, msg_bytes);
    uint64_t memory_bytes = state_bytes + mailbox_bytes;
    v.memory_bytes = json_integer((json_int_t)memory_bytes);
    v.memory = json_pack("{s:I,s:I}", "state_bytes", (json_int_t)state_bytes, "mailbox_bytes",
                         (json_int_t)mailbox_bytes);

    json_t *out = json_object();
#define GS__STATUS_SET(field, type, meaning) json_object_set_new(out, #field, v.field);
    GS_SERVER_STATUS_FIELDS(GS__STATUS_SET)
#undef GS__STATUS_SET
    return out;
}

json_t *gs_server_status(gs_runtime_t *rt, const char *name)
{
    if (rt == NULL || name == NULL)
        return NULL;
    gs__child_t *c = gs__registry_child(rt, name);
    if (c == NULL)
        return NULL;
    json_t *out = child_status(c);
    gs__child_unref(c);
    return out;
}

json_t *gs_server_held_json(gs_runtime_t *rt, const char *name, size_t limit)
{
    if (rt == NULL || name == NULL)
        return NULL;
    gs__child_t *c = gs__registry_child(rt, name);
    if (c == NULL)
        return NULL;
    /* acquire: pairs with the upgrade's release store of the child's code */
    const gs_behaviour_t *b = atomic_load_explicit(&c->b, memory_order_acquire);
    json_t *out = gs__held_json(rt, c, b->sensitive || c->opts.sensitive, limit);
    gs__child_unref(c);
    return out;
}

static int by_name(const void *a, const void *b)
{
    const gs__child_t *x = *(gs__child_t *const *)a, *y = *(gs__child_t *const *)b;
    return strcmp(x->name, y->name);
}

json_t *gs_servers_json(gs_runtime_t *rt)
{
    size_t n = 0;
    gs__child_t **all = gs__registry_snapshot(rt, &n);
    json_t *list = json_array();
    if (n > 0)
        qsort(all, n, sizeof(*all), by_name);
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(list, child_status(all[i]));
        gs__child_unref(all[i]);
    }
    free(all);
    return json_pack("{s:o}", "servers", list);
}

uint64_t gs__mailbox_bytes(int64_t mailbox_len, uint64_t msg_bytes)
{
    return mailbox_len > 0 ? (uint64_t)mailbox_len * (sizeof(gs__msg_t) + msg_bytes) : 0;
}

void gs__server_measure(gs_server_t *s, const json_t *shown)
{
    const gs_behaviour_t *b = s->b;
    bool sensitive = b->sensitive || s->child->opts.sensitive;
    json_t *st = NULL;

    s->measured_ms = gs__now_ms();
    if (shown == NULL && (sensitive || b->format_state == NULL))
        return; /* a sensitive state is not even formatted (see gs__inspect_state) */
    if (shown == NULL)
        shown = st = b->format_state(s, s->state);
    /* relaxed: a snapshot for display, written by this thread only */
    atomic_store_explicit(&s->state_bytes, shown != NULL ? (uint64_t)gs_json_size(shown) : 0,
                          memory_order_relaxed);
    json_decref(st);
}

uint64_t gs_runtime_memory(gs_runtime_t *rt)
{
    size_t n = 0;
    uint64_t sum = 0;
    gs__child_t **all = rt != NULL ? gs__registry_snapshot(rt, &n) : NULL;

    for (size_t i = 0; i < n; i++) {
        gs__child_t *c = all[i];
        gs__child_lock(c);
        gs_server_t *s = c->current; /* as in child_status: alive under the lock */
        if (s != NULL) {
            /* relaxed: a snapshot for display */
            int64_t len = atomic_load_explicit(&s->mailbox_len, memory_order_relaxed);
            sum +=
                atomic_load_explicit(&s->state_bytes, memory_order_relaxed) +
                gs__mailbox_bytes(len, atomic_load_explicit(&s->msg_bytes, memory_order_relaxed));
        }
        gs__child_unlock(c);
        gs__child_unref(c);
    }
    free(all);
    return sum;
}

/* The state as inspection may show it (gs_behaviour_t.sensitive and .redact). */
json_t *gs__inspect_state(gs_server_t *s)
{
    const gs_behaviour_t *b = s->b;
    json_t *st;

    if (b->sensitive || s->child->opts.sensitive)
        return json_string(GS_REDACTED); /* format_state is not even asked */
    st = b->format_state != NULL ? b->format_state(s, s->state) : NULL;
    if (st == NULL)
        return json_null();
    if (b->redact != NULL && json_is_object(st)) {
        for (const char *const *k = b->redact; *k != NULL; k++)
            if (json_object_get(st, *k) != NULL)
                json_object_set_new(st, *k, json_string(GS_REDACTED));
    }
    return st;
}

struct gs_status_cursor_s {
    gs__child_t **children; /* referenced; [next, count) still to visit */
    size_t next, count;
};

gs_status_cursor_t *gs_status_cursor_create(gs_runtime_t *rt)
{
    gs_status_cursor_t *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->children = gs__registry_snapshot(rt, &c->count);
    if (c->children == NULL) {
        free(c);
        return NULL;
    }
    return c;
}

size_t gs_status_cursor_next(gs_status_cursor_t *c, json_t *list, size_t max)
{
    size_t n = 0;

    while (n < max && c->next < c->count) {
        gs__child_t *child = c->children[c->next];
        c->children[c->next++] = NULL;
        /* Stopped since the cursor was made: neither running nor kept as down. */
        gs__child_lock(child);
        bool gone = child->current == NULL && child->down_reason == NULL;
        gs__child_unlock(child);
        if (!gone && json_array_append_new(list, child_status(child)) == 0)
            n++;
        gs__child_unref(child);
    }
    return n;
}

void gs_status_cursor_destroy(gs_status_cursor_t *c)
{
    if (c == NULL)
        return;
    for (size_t i = c->next; i < c->count; i++)
        gs__child_unref(c->children[i]);
    free(c->children);
    free(c);
}
