/*
 * registry.c: unique names -> children (named servers), in a sharded map (genserv/map.h), so
 * that lookups on the message path never take a global lock.
 *
 * A child's "shard lock" fields (current incarnation, crash and down reasons) are guarded by
 * the mutex of the shard its name hashes to; gs__child_lock() takes it. The registry only links
 * children and counts references with the inline gs__child_ref; dropping a reference (which
 * may free a child) is left to the caller, so this file calls nothing above it.
 */
#include "runtime_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct name_key_s {
    const char *name;
    size_t len;
} name_key_t;

static bool child_has_name(const gs_map_node_t *node, const void *key)
{
    const gs__child_t *c = gs__container_of(node, gs__child_t, node);
    const name_key_t *k = key;

    return c->name_len == k->len && memcmp(c->name, k->name, k->len) == 0;
}

static name_key_t key_of(const char *name)
{
    return (name_key_t){name, strnlen(name, GS__NAME_MAX + 1)};
}

int gs__registry_init(gs_runtime_t *rt)
{
    return gs_shmap_init(&rt->registry);
}

typedef struct releaser_s {
    void (*release)(gs__child_t *c);
} releaser_t;

static bool release_all(gs_map_node_t *node, void *arg)
{
    ((releaser_t *)arg)->release(gs__container_of(node, gs__child_t, node));
    return true;
}

void gs__registry_close(gs_runtime_t *rt, void (*release)(gs__child_t *c))
{
    releaser_t r = {release};

    for (int i = 0; i < GS_SHMAP_SHARDS; i++)
        gs_map_filter(&rt->registry.shards[i].map, release_all, &r);
    gs_shmap_close(&rt->registry);
}

int gs__registry_insert(gs_runtime_t *rt, gs__child_t *child, gs__child_t **replaced)
{
    name_key_t k = {child->name, child->name_len};
    uint64_t hash = gs_hash_bytes(child->name, child->name_len);
    gs_shmap_shard_t *sh = gs_shmap_shard(&rt->registry, hash);
    int rc = 0;

    *replaced = NULL;
    gs_shmap_lock(sh);
    gs_map_node_t *found = gs_map_find(&sh->map, hash, &k, child_has_name);
    if (found != NULL) {
        gs__child_t *old = gs__container_of(found, gs__child_t, node);
        if (old->current != NULL || old->down_reason == NULL) {
            rc = GS_EALREADY;
            goto out;
        }
        /* A "down" server gives its name up to a new start. */
        gs_map_unlink(&sh->map, found);
        *replaced = old;
    }
    rc = gs_map_insert(&sh->map, &child->node, hash);
    if (rc != 0) {
        if (*replaced != NULL) /* put it back: nothing changes */
            gs_map_insert(&sh->map, &(*replaced)->node, hash);
        *replaced = NULL;
        goto out;
    }
    gs__child_ref(child);
    if (*replaced == NULL)
        atomic_fetch_add_explicit(&rt->stats.servers, 1, memory_order_relaxed); /* gauge */
out:
    gs_shmap_unlock(sh);
    return rc;
}

bool gs__registry_remove(gs_runtime_t *rt, gs__child_t *child)
{
    gs_shmap_shard_t *sh = gs_shmap_shard(&rt->registry, child->node.hash);
    bool removed;

    gs_shmap_lock(sh);
    removed = gs_map_unlink(&sh->map, &child->node);
    gs_shmap_unlock(sh);
    if (removed)
        atomic_fetch_sub_explicit(&rt->stats.servers, 1, memory_order_relaxed); /* gauge */
    return removed;
}

/* The child under k, with its shard locked (the caller unlocks sh), or NULL. */
static gs__child_t *find_locked(gs_runtime_t *rt, const name_key_t *k, gs_shmap_shard_t **sh)
{
    uint64_t hash = gs_hash_bytes(k->name, k->len);

    *sh = gs_shmap_shard(&rt->registry, hash);
    gs_shmap_lock(*sh);
    gs_map_node_t *n = gs_map_find(&(*sh)->map, hash, k, child_has_name);
    return n != NULL ? gs__container_of(n, gs__child_t, node) : NULL;
}

gs_server_t *gs__registry_whereis(gs_runtime_t *rt, const char *name)
{
    name_key_t k = key_of(name);
    gs_shmap_shard_t *sh;
    gs__child_t *c = find_locked(rt, &k, &sh);
    gs_server_t *s = c != NULL && c->current != NULL ? gs__server_ref(c->current) : NULL;

    gs_shmap_unlock(sh);
    return s;
}

gs__child_t *gs__registry_child(gs_runtime_t *rt, const char *name)
{
    name_key_t k = key_of(name);
    gs_shmap_shard_t *sh;
    gs__child_t *c = find_locked(rt, &k, &sh);

    if (c != NULL)
        gs__child_ref(c);
    gs_shmap_unlock(sh);
    return c;
}

void gs__child_lock(gs__child_t *c)
{
    gs_shmap_lock(gs_shmap_shard(&c->rt->registry, c->node.hash));
}

void gs__child_unlock(gs__child_t *c)
{
    gs_shmap_unlock(gs_shmap_shard(&c->rt->registry, c->node.hash));
}

typedef struct snapshot_s {
    gs__child_t **out;
    size_t n, cap;
} snapshot_t;

static bool snapshot_one(gs_map_node_t *node, void *arg)
{
    snapshot_t *snap = arg;

    if (snap->n == snap->cap) {
        gs__child_t **grown = realloc(snap->out, snap->cap * 2 * sizeof(*grown));
        if (grown == NULL)
            return false; /* a shorter snapshot rather than none */
        snap->out = grown;
        snap->cap *= 2;
    }
    gs__child_t *c = gs__container_of(node, gs__child_t, node);
    gs__child_ref(c);
    snap->out[snap->n++] = c;
    return false;
}

gs__child_t **gs__registry_snapshot(gs_runtime_t *rt, size_t *count)
{
    snapshot_t snap = {malloc(64 * sizeof(gs__child_t *)), 0, 64};

    for (int i = 0; snap.out != NULL && i < GS_SHMAP_SHARDS; i++) {
        gs_shmap_shard_t *sh = &rt->registry.shards[i];
        gs_shmap_lock(sh);
        gs_map_filter(&sh->map, snapshot_one, &snap);
        gs_shmap_unlock(sh);
    }
    *count = snap.n;
    return snap.out;
}
