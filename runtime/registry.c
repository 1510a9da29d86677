/*
 * registry.c: unique names -> children (named servers), in GS__REGISTRY_SHARDS independently
 * locked hash tables, so that lookups on the message path never take a global lock.
 *
 * A child's "shard lock" fields (current incarnation, crash and down reasons) are guarded by
 * the mutex of the shard its name hashes to; gs__child_lock() takes it.
 */
#include "runtime_internal.h"

#include <stdlib.h>
#include <string.h>

uint32_t gs__name_hash(const char *name, size_t len)
{
    /* FNV-1a: names are short; this is cheap and spreads well enough over 64 shards. */
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)name[i];
        h *= 16777619u;
    }
    return h;
}

static gs__registry_shard_t *shard_of(gs_runtime_t *rt, uint32_t hash)
{
    return &rt->registry[hash % GS__REGISTRY_SHARDS];
}

static size_t bucket_of(const gs__registry_shard_t *sh, uint32_t hash)
{
    return (hash / GS__REGISTRY_SHARDS) & (sh->nbuckets - 1);
}

void gs__registry_init(gs_runtime_t *rt)
{
    for (int i = 0; i < GS__REGISTRY_SHARDS; i++) {
        gs__registry_shard_t *sh = &rt->registry[i];
        uv_mutex_init(&sh->lock);
        sh->nbuckets = 0;
        sh->buckets = NULL;
        sh->count = 0;
    }
}

void gs__registry_close(gs_runtime_t *rt)
{
    for (int i = 0; i < GS__REGISTRY_SHARDS; i++) {
        gs__registry_shard_t *sh = &rt->registry[i];
        for (size_t b = 0; b < sh->nbuckets; b++) {
            gs__child_t *c = sh->buckets[b];
            while (c != NULL) {
                gs__child_t *next = c->hnext;
                gs__child_unref(c);
                c = next;
            }
        }
        free(sh->buckets);
        uv_mutex_destroy(&sh->lock);
    }
}

/* Find under the shard lock. */
static gs__child_t **find_slot(gs__registry_shard_t *sh, const char *name, size_t len,
                               uint32_t hash)
{
    if (sh->nbuckets == 0)
        return NULL;
    gs__child_t **slot = &sh->buckets[bucket_of(sh, hash)];
    for (; *slot != NULL; slot = &(*slot)->hnext) {
        gs__child_t *c = *slot;
        if (c->hash == hash && c->name_len == len && memcmp(c->name, name, len) == 0)
            return slot;
    }
    return slot; /* the empty end of the chain */
}

static void grow(gs__registry_shard_t *sh)
{
    size_t n = sh->nbuckets ? sh->nbuckets * 2 : 8;
    gs__child_t **nb = calloc(n, sizeof(*nb));
    if (nb == NULL)
        return; /* keep the longer chains; still correct */
    for (size_t b = 0; b < sh->nbuckets; b++) {
        gs__child_t *c = sh->buckets[b];
        while (c != NULL) {
            gs__child_t *next = c->hnext;
            size_t i = (c->hash / GS__REGISTRY_SHARDS) & (n - 1);
            c->hnext = nb[i];
            nb[i] = c;
            c = next;
        }
    }
    free(sh->buckets);
    sh->buckets = nb;
    sh->nbuckets = n;
}

int gs__registry_insert(gs_runtime_t *rt, gs__child_t *child)
{
    gs__registry_shard_t *sh = shard_of(rt, child->hash);
    gs__child_t *replaced = NULL;
    int rc = 0;
    uv_mutex_lock(&sh->lock);
    if (sh->count >= sh->nbuckets)
        grow(sh);
    if (sh->nbuckets == 0) {
        rc = GS_ENOMEM;
        goto out;
    }
    gs__child_t **slot = find_slot(sh, child->name, child->name_len, child->hash);
    if (*slot != NULL) {
        if ((*slot)->current != NULL || (*slot)->down_reason == NULL) {
            rc = GS_EALREADY;
            goto out;
        }
        replaced = *slot; /* a "down" server gives its name up to a new start */
        child->hnext = replaced->hnext;
        *slot = child;
    } else {
        child->hnext = NULL;
        *slot = child;
        sh->count++;
        atomic_fetch_add_explicit(&rt->registered, 1, memory_order_relaxed); /* counter */
    }
    gs__child_ref(child);
out:
    uv_mutex_unlock(&sh->lock);
    if (replaced != NULL)
        gs__child_unref(replaced);
    return rc;
}

void gs__registry_remove(gs_runtime_t *rt, gs__child_t *child)
{
    gs__registry_shard_t *sh = shard_of(rt, child->hash);
    bool removed = false;
    uv_mutex_lock(&sh->lock);
    gs__child_t **slot = find_slot(sh, child->name, child->name_len, child->hash);
    if (slot != NULL && *slot == child) {
        *slot = child->hnext;
        child->hnext = NULL;
        sh->count--;
        removed = true;
        atomic_fetch_sub_explicit(&rt->registered, 1, memory_order_relaxed); /* counter */
    }
    uv_mutex_unlock(&sh->lock);
    if (removed)
        gs__child_unref(child);
}

gs_server_t *gs__registry_whereis(gs_runtime_t *rt, const char *name)
{
    size_t len = strnlen(name, GS__NAME_MAX + 1);
    uint32_t hash = gs__name_hash(name, len);
    gs__registry_shard_t *sh = shard_of(rt, hash);
    gs_server_t *s = NULL;
    uv_mutex_lock(&sh->lock);
    gs__child_t **slot = find_slot(sh, name, len, hash);
    if (slot != NULL && *slot != NULL && (*slot)->current != NULL)
        s = gs_server_ref((*slot)->current);
    uv_mutex_unlock(&sh->lock);
    return s;
}

gs__child_t *gs__registry_child(gs_runtime_t *rt, const char *name)
{
    size_t len = strnlen(name, GS__NAME_MAX + 1);
    uint32_t hash = gs__name_hash(name, len);
    gs__registry_shard_t *sh = shard_of(rt, hash);
    gs__child_t *c = NULL;
    uv_mutex_lock(&sh->lock);
    gs__child_t **slot = find_slot(sh, name, len, hash);
    if (slot != NULL && *slot != NULL) {
        c = *slot;
        gs__child_ref(c);
    }
    uv_mutex_unlock(&sh->lock);
    return c;
}

void gs__child_lock(gs__child_t *c)
{
    uv_mutex_lock(&shard_of(c->rt, c->hash)->lock);
}

void gs__child_unlock(gs__child_t *c)
{
    uv_mutex_unlock(&shard_of(c->rt, c->hash)->lock);
}

gs__child_t **gs__registry_snapshot(gs_runtime_t *rt, size_t *count)
{
    size_t n = 0, cap = 64;
    gs__child_t **out = malloc(cap * sizeof(*out));
    for (int i = 0; out != NULL && i < GS__REGISTRY_SHARDS; i++) {
        gs__registry_shard_t *sh = &rt->registry[i];
        uv_mutex_lock(&sh->lock);
        for (size_t b = 0; b < sh->nbuckets; b++) {
            for (gs__child_t *c = sh->buckets[b]; c != NULL; c = c->hnext) {
                if (n == cap) {
                    gs__child_t **grown = realloc(out, cap * 2 * sizeof(*out));
                    if (grown == NULL)
                        continue; /* a shorter snapshot rather than none */
                    out = grown;
                    cap *= 2;
                }
                gs__child_ref(c);
                out[n++] = c;
            }
        }
        uv_mutex_unlock(&sh->lock);
    }
    *count = n;
    return out;
}
