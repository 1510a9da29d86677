/*
 * introspect.c: each server's status as JSON, read from counters and the child's record
 * without going through the server's mailbox (so an overloaded server can still be looked
 * at), and what inspection may show of a state (sensitive, redact). The state itself
 * (gs_get_state) does go through the mailbox: see call.c and server.c's dispatch.
 */
#include "runtime_internal.h"

#include <stdlib.h>
#include <string.h>

static json_t *child_status(gs__child_t *c)
{
    /* relaxed loads throughout: a snapshot of counters for display */
    uint32_t restarts = atomic_load_explicit(&c->restarts, memory_order_relaxed);
    uint64_t handled = atomic_load_explicit(&c->handled_before, memory_order_relaxed);
    const char *status = "down";
    int64_t mailbox = 0, uptime = 0;
    uint32_t held = 0;

    gs__child_lock(c);
    /* Under the shard lock the current incarnation cannot be replaced, and the child's
     * reference keeps it alive: its counters are read without taking a reference. */
    gs_server_t *s = c->current;
    if (s != NULL) {
        uint8_t st = atomic_load_explicit(&s->status, memory_order_acquire);
        status = st == GS__RUNNING ? "running" : restarts > 0 ? "restarting" : "starting";
        mailbox = atomic_load_explicit(&s->mailbox_len, memory_order_relaxed);
        if (mailbox < 0)
            mailbox = 0;
        handled += atomic_load_explicit(&s->handled, memory_order_relaxed);
        held = atomic_load_explicit(&s->held, memory_order_relaxed);
        if (st == GS__RUNNING)
            uptime = (int64_t)(gs__now_ms() - s->started_ms);
    }
    /* Copies: the scheduler thread owns the child's values; sharing a reference across
     * threads would race in jansson's reference counting (see gs__json_copy). */
    json_t *crash =
        c->last_crash_reason != NULL ? gs__json_copy(c->last_crash_reason) : json_null();
    json_t *down = c->down_reason != NULL ? gs__json_copy(c->down_reason) : json_null();
    gs__child_unlock(c);

    return json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:b}", "name",
                     c->name, "behaviour", c->b->name, "status", status, "restart",
                     gs_restart_name(c->opts.restart), "mailbox_len", (json_int_t)mailbox,
                     "mailbox_limit", (json_int_t)c->opts.mailbox_limit, "messages_handled",
                     (json_int_t)handled, "restarts", (json_int_t)restarts, "held_calls",
                     (json_int_t)held, "uptime_ms", (json_int_t)uptime, "last_crash_reason", crash,
                     "down_reason", down, "sensitive", c->b->sensitive || c->opts.sensitive);
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

/* The state as inspection may show it (gs_behaviour_t.sensitive and .redact). */
json_t *gs__inspect_state(gs_server_t *s)
{
    const gs_behaviour_t *b = s->child->b;
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
