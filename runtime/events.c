/*
 * events.c: the runtime's event stream (started, stopped, crashed, restarted, down, state
 * changed), for dashboards that must not poll every server.
 *
 * Subscriptions are few and change rarely; events are frequent (one state_changed per busy
 * turn). So emitting reads an atomic count first and costs nothing without subscribers, and
 * callbacks run under a read lock that gs_unsubscribe's write lock waits out: when it returns,
 * no callback of that subscription is running or will run.
 */
#include "runtime_internal.h"

#include <stdlib.h>

static const char *const event_names[] = {
    [GS_EVENT_STARTED] = "started", [GS_EVENT_STOPPED] = "stopped",
    [GS_EVENT_CRASHED] = "crashed", [GS_EVENT_RESTARTED] = "restarted",
    [GS_EVENT_DOWN] = "down",       [GS_EVENT_STATE_CHANGED] = "state_changed",
};

const char *gs_event_name(gs_event_type_t t)
{
    if ((unsigned)t < sizeof(event_names) / sizeof(event_names[0]) && event_names[t] != NULL)
        return event_names[t];
    return "unknown";
}

void gs__events_init(gs_runtime_t *rt)
{
    uv_rwlock_init(&rt->subs_lock);
    rt->subs = NULL;
    atomic_init(&rt->nsubs, 0);
}

void gs__events_close(gs_runtime_t *rt)
{
    struct gs_subscription_s *s = rt->subs;
    while (s != NULL) {
        struct gs_subscription_s *next = s->next;
        free(s);
        s = next;
    }
    rt->subs = NULL;
    uv_rwlock_destroy(&rt->subs_lock);
}

void gs__emit(gs_runtime_t *rt, gs_event_type_t type, const gs__child_t *child, json_t *reason)
{
    /* relaxed: a subscriber that races with an event may miss that one event */
    if (atomic_load_explicit(&rt->nsubs, memory_order_relaxed) == 0)
        return;
    /* acquire: pairs with the upgrade's release store of the child's code */
    const gs_behaviour_t *b =
        atomic_load_explicit(&((gs__child_t *)child)->b, memory_order_acquire);
    gs_event_t ev = {type, child->name, b->name, reason};
    uv_rwlock_rdlock(&rt->subs_lock);
    for (struct gs_subscription_s *s = rt->subs; s != NULL; s = s->next)
        s->cb(&ev, s->arg);
    uv_rwlock_rdunlock(&rt->subs_lock);
}

int gs_subscribe(gs_runtime_t *rt, gs_event_cb cb, void *arg, gs_subscription_t **out)
{
    if (rt == NULL || cb == NULL || out == NULL)
        return GS_EINVAL;
    gs_subscription_t *s = malloc(sizeof(*s));
    if (s == NULL)
        return GS_ENOMEM;
    s->cb = cb;
    s->arg = arg;
    uv_rwlock_wrlock(&rt->subs_lock);
    s->next = rt->subs;
    rt->subs = s;
    atomic_fetch_add_explicit(&rt->nsubs, 1, memory_order_relaxed); /* see gs__emit */
    uv_rwlock_wrunlock(&rt->subs_lock);
    *out = s;
    return 0;
}

void gs_unsubscribe(gs_runtime_t *rt, gs_subscription_t *sub)
{
    if (rt == NULL || sub == NULL)
        return;
    uv_rwlock_wrlock(&rt->subs_lock);
    for (gs_subscription_t **p = &rt->subs; *p != NULL; p = &(*p)->next) {
        if (*p == sub) {
            *p = sub->next;
            atomic_fetch_sub_explicit(&rt->nsubs, 1, memory_order_relaxed); /* see gs__emit */
            break;
        }
    }
    uv_rwlock_wrunlock(&rt->subs_lock);
    free(sub);
}
