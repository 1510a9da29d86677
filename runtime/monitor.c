/*
 * monitor.c: monitors (Process.monitor/1 given a name): a server watches one incarnation of a
 * named server and receives ["DOWN", ref, name, reason] once when it ends.
 *
 * API:
 *   gs_monitor         resolve the name to its current incarnation (the target) and record
 *                      the monitor in the runtime's table by ref; no incarnation: DOWN at once.
 *   gs_demonitor       the watcher takes its monitor out of the table.
 *   gs__monitors_down  a dying incarnation takes out every monitor on it (DOWN to each
 *                      watcher) and every monitor it held (dropped).
 * A monitor is in the table or nowhere: whoever unlinks it (demonitor, the target's death,
 * the watcher's death, or gs_monitor itself when it raced a death) owns it and frees it, so
 * each monitor fires or is dropped exactly once. Deaths scan the table (64 shard locks), like
 * gs__held_fail_server, but only when the dying incarnation is counted in a monitor
 * (monitors_on, monitors_held): a server nobody watches dies as cheaply as before.
 * The race between a monitor and a death is a Dekker handshake on two seq_cst variables: the
 * monitor counts itself (monitors_on) then reads mon_closed; the death sets mon_closed then
 * reads the count. At least one of them sees the other, so no monitor outlives its target.
 */
#include "runtime_internal.h"

#include <stdlib.h>

typedef struct gs__monitor_s {
    gs_map_node_t node; /* in rt->monitors (shard lock) */
    gs_monitor_ref_t ref;
    gs_server_t *watcher; /* referenced: the DOWN goes there */
    gs_server_t *target;  /* referenced: the incarnation watched */
} gs__monitor_t;

static bool monitor_has_ref(const gs_map_node_t *node, const void *key)
{
    return gs__container_of(node, gs__monitor_t, node)->ref == *(const uint64_t *)key;
}

int gs__monitors_init(gs_runtime_t *rt)
{
    atomic_init(&rt->next_monitor_ref, 1);
    return gs_shmap_init(&rt->monitors);
}

static void monitor_free(gs__monitor_t *m)
{
    /* relaxed: the counts only gate the death scan; an increment is what must be seen (see
     * the top of the file), a late decrement only costs a useless scan */
    atomic_fetch_sub_explicit(&m->target->monitors_on, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&m->watcher->monitors_held, 1, memory_order_relaxed);
    gs_server_unref(m->target);
    gs_server_unref(m->watcher);
    free(m);
}

static bool take_all(gs_map_node_t *node, void *arg)
{
    gs__monitor_t *m = gs__container_of(node, gs__monitor_t, node);
    gs__monitor_t **list = arg;

    node->next = *list != NULL ? &(*list)->node : NULL;
    *list = m;
    return true;
}

void gs__monitors_close(gs_runtime_t *rt)
{
    /* Every incarnation is dead by now and took its monitors out; free any left anyway. */
    gs__monitor_t *list = NULL;
    for (int i = 0; i < GS_SHMAP_SHARDS; i++)
        gs_map_filter(&rt->monitors.shards[i].map, take_all, &list);
    while (list != NULL) {
        gs__monitor_t *m = list;
        list = m->node.next != NULL ? gs__container_of(m->node.next, gs__monitor_t, node) : NULL;
        monitor_free(m);
    }
    gs_shmap_close(&rt->monitors);
}

/* Unlink the monitor with ref (if watcher is not NULL, only if it is watcher's). */
static gs__monitor_t *monitor_take(gs_runtime_t *rt, gs_monitor_ref_t ref,
                                   const gs_server_t *watcher)
{
    uint64_t hash = gs_hash_u64(ref);
    gs_shmap_shard_t *sh = gs_shmap_shard(&rt->monitors, hash);
    gs__monitor_t *m = NULL;

    gs_shmap_lock(sh);
    gs_map_node_t *n = gs_map_find(&sh->map, hash, &ref, monitor_has_ref);
    if (n != NULL) {
        m = gs__container_of(n, gs__monitor_t, node);
        if (watcher == NULL || m->watcher == watcher)
            gs_map_unlink(&sh->map, n);
        else
            m = NULL;
    }
    gs_shmap_unlock(sh);
    return m;
}

/* ["DOWN", ref, name, reason] to watcher, past its mailbox limit (a DOWN must not be lost to a
 * busy spell). reason: borrowed, copied (it belongs to the dying server's thread). */
static void send_down(gs_server_t *watcher, gs_monitor_ref_t ref, const char *name, json_t *reason)
{
    json_t *msg = json_array();
    if (msg == NULL)
        return;
    json_array_append_new(msg, json_string("DOWN"));
    json_array_append_new(msg, json_integer((json_int_t)ref));
    json_array_append_new(msg, json_string(name));
    json_array_append_new(msg, reason != NULL ? gs__json_copy(reason) : json_null());
    gs__server_send(watcher, GS__MSG_INFO, msg, true); /* dropped if the watcher is gone */
}

int gs_monitor(gs_server_t *watcher, const char *name, gs_monitor_ref_t *ref)
{
    if (ref != NULL)
        *ref = 0;
    if (watcher == NULL || name == NULL)
        return GS_EINVAL;
    gs_runtime_t *rt = watcher->rt;
    if (atomic_load_explicit(&rt->shutting_down, memory_order_relaxed)) /* advisory */
        return GS_ESHUTDOWN;
    /* relaxed: only uniqueness matters */
    gs_monitor_ref_t r = atomic_fetch_add_explicit(&rt->next_monitor_ref, 1, memory_order_relaxed);
    if (ref != NULL)
        *ref = r;
    gs_server_t *target = gs__registry_whereis(rt, name);
    if (target == NULL) {
        json_t *why = json_string(gs_err_name(GS_ENOSERVER));
        send_down(watcher, r, name, why);
        json_decref(why);
        return 0;
    }
    gs__monitor_t *m = malloc(sizeof(*m));
    if (m == NULL) {
        gs_server_unref(target);
        return GS_ENOMEM;
    }
    m->ref = r;
    m->watcher = gs_server_ref(watcher);
    m->target = target;
    /* seq_cst: counted before the insert and before reading mon_closed (top of the file) */
    atomic_fetch_add(&target->monitors_on, 1);
    atomic_fetch_add(&watcher->monitors_held, 1);
    uint64_t hash = gs_hash_u64(r);
    gs_shmap_shard_t *sh = gs_shmap_shard(&rt->monitors, hash);
    gs_shmap_lock(sh);
    if (gs_map_insert(&sh->map, &m->node, hash) != 0)
        abort(); /* the first 8 buckets of a shard: a tiny internal allocation */
    gs_shmap_unlock(sh);
    /* seq_cst: a death that closed before our count was seen may have missed the monitor: if
     * so, it is still in the table, and it is ours to fire. */
    if (atomic_load(&target->mon_closed) || atomic_load(&watcher->mon_closed)) {
        gs__monitor_t *mine = monitor_take(rt, r, NULL);
        if (mine != NULL) {
            json_t *why = json_string(gs_err_name(GS_ENOSERVER));
            send_down(watcher, r, name, why);
            json_decref(why);
            monitor_free(mine);
        }
    }
    return 0;
}

int gs_demonitor(gs_server_t *watcher, gs_monitor_ref_t ref)
{
    if (watcher == NULL)
        return GS_EINVAL;
    gs__monitor_t *m = monitor_take(watcher->rt, ref, watcher);
    if (m == NULL)
        return GS_ENOMONITOR;
    monitor_free(m);
    return 0;
}

typedef struct involving_s {
    const gs_server_t *s;
    gs__monitor_t *taken; /* chained through node.next once unlinked */
} involving_t;

static bool take_if_involving(gs_map_node_t *node, void *arg)
{
    involving_t *inv = arg;
    gs__monitor_t *m = gs__container_of(node, gs__monitor_t, node);

    if (m->target != inv->s && m->watcher != inv->s)
        return false;
    node->next = inv->taken != NULL ? &inv->taken->node : NULL;
    inv->taken = m;
    return true;
}

void gs__monitors_down(gs_server_t *s, json_t *reason)
{
    gs_runtime_t *rt = s->rt;

    /* seq_cst: closed before the counts are read (top of the file) */
    atomic_store(&s->mon_closed, 1);
    if (atomic_load(&s->monitors_on) == 0 && atomic_load(&s->monitors_held) == 0)
        return;
    involving_t inv = {s, NULL};
    for (int i = 0; i < GS_SHMAP_SHARDS; i++) {
        gs_shmap_shard_t *sh = &rt->monitors.shards[i];
        gs_shmap_lock(sh);
        gs_map_filter(&sh->map, take_if_involving, &inv);
        gs_shmap_unlock(sh);
    }
    /* Messages are sent and references dropped outside every lock. */
    while (inv.taken != NULL) {
        gs__monitor_t *m = inv.taken;
        gs_map_node_t *next = m->node.next;
        inv.taken = next != NULL ? gs__container_of(next, gs__monitor_t, node) : NULL;
        if (m->target == s && m->watcher != s)
            send_down(m->watcher, m->ref, s->child->name, reason);
        monitor_free(m);
    }
}
