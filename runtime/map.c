/*
 * map.c: the intrusive hash map of genserv/map.h: chained buckets, a power of two of them,
 * doubled past two entries per bucket. Every table of the runtime (names, held calls, timers)
 * and of the gateway's event hub is one of these; see the header for the contract.
 */
#include <genserv/genserv.h>
#include <genserv/map.h>

#include <stdlib.h>

_Static_assert(GS_SHMAP_SHARDS == 64, "gs_shmap_shard takes the hash's top 6 bits");

#define INITIAL_BUCKETS 8

uint64_t gs_hash_bytes(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 14695981039346656037ull; /* FNV-1a 64 */

    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    /* FNV's high bits mix poorly for short keys, and the shard is chosen by the high bits. */
    return gs_hash_u64(h);
}

uint64_t gs_hash_u64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

void gs_map_init(gs_map_t *m)
{
    m->buckets = NULL;
    m->nbuckets = 0;
    m->count = 0;
}

void gs_map_close(gs_map_t *m)
{
    free(m->buckets);
    gs_map_init(m);
}

static size_t bucket_of(size_t nbuckets, uint64_t hash)
{
    return (size_t)hash & (nbuckets - 1);
}

/* Double the buckets; on failure keep the longer chains (still correct). */
static void grow(gs_map_t *m)
{
    size_t n = m->nbuckets ? m->nbuckets * 2 : INITIAL_BUCKETS;
    gs_map_node_t **nb = calloc(n, sizeof(*nb));

    if (nb == NULL)
        return;
    for (size_t b = 0; b < m->nbuckets; b++) {
        gs_map_node_t *node = m->buckets[b];
        while (node != NULL) {
            gs_map_node_t *next = node->next;
            size_t i = bucket_of(n, node->hash);
            node->next = nb[i];
            nb[i] = node;
            node = next;
        }
    }
    free(m->buckets);
    m->buckets = nb;
    m->nbuckets = n;
}

int gs_map_insert(gs_map_t *m, gs_map_node_t *node, uint64_t hash)
{
    if (m->count >= m->nbuckets * 2)
        grow(m);
    if (m->nbuckets == 0)
        return GS_ENOMEM;
    size_t i = bucket_of(m->nbuckets, hash);
    node->hash = hash;
    node->next = m->buckets[i];
    m->buckets[i] = node;
    m->count++;
    return 0;
}

/* The link that points at the node holding key, or NULL. */
static gs_map_node_t **find_link(const gs_map_t *m, uint64_t hash, const void *key, gs_map_eq_fn eq)
{
    if (m->nbuckets == 0)
        return NULL;
    for (gs_map_node_t **p = &m->buckets[bucket_of(m->nbuckets, hash)]; *p != NULL; p = &(*p)->next)
        if ((*p)->hash == hash && eq(*p, key))
            return p;
    return NULL;
}

gs_map_node_t *gs_map_find(const gs_map_t *m, uint64_t hash, const void *key, gs_map_eq_fn eq)
{
    gs_map_node_t **p = find_link(m, hash, key, eq);

    return p != NULL ? *p : NULL;
}

gs_map_node_t *gs_map_remove(gs_map_t *m, uint64_t hash, const void *key, gs_map_eq_fn eq)
{
    gs_map_node_t **p = find_link(m, hash, key, eq);
    gs_map_node_t *node;

    if (p == NULL)
        return NULL;
    node = *p;
    *p = node->next;
    node->next = NULL;
    m->count--;
    return node;
}

bool gs_map_unlink(gs_map_t *m, gs_map_node_t *node)
{
    if (m->nbuckets == 0)
        return false;
    for (gs_map_node_t **p = &m->buckets[bucket_of(m->nbuckets, node->hash)]; *p != NULL;
         p = &(*p)->next) {
        if (*p == node) {
            *p = node->next;
            node->next = NULL;
            m->count--;
            return true;
        }
    }
    return false;
}

void gs_map_filter(gs_map_t *m, gs_map_filter_fn fn, void *arg)
{
    for (size_t b = 0; b < m->nbuckets; b++) {
        gs_map_node_t **p = &m->buckets[b];
        while (*p != NULL) {
            gs_map_node_t *node = *p;
            gs_map_node_t *next = node->next;
            if (fn(node, arg)) {
                *p = next; /* node is the callback's now: not touched again */
                m->count--;
            } else {
                p = &node->next;
            }
        }
    }
}

int gs_shmap_init(gs_shmap_t *m)
{
    for (int i = 0; i < GS_SHMAP_SHARDS; i++) {
        if (pthread_mutex_init(&m->shards[i].lock, NULL) != 0) {
            while (i-- > 0)
                pthread_mutex_destroy(&m->shards[i].lock);
            return GS_ENOMEM;
        }
        gs_map_init(&m->shards[i].map);
    }
    return 0;
}

void gs_shmap_close(gs_shmap_t *m)
{
    for (int i = 0; i < GS_SHMAP_SHARDS; i++) {
        gs_map_close(&m->shards[i].map);
        pthread_mutex_destroy(&m->shards[i].lock);
    }
}

size_t gs_shmap_count(gs_shmap_t *m)
{
    size_t n = 0;

    for (int i = 0; i < GS_SHMAP_SHARDS; i++) {
        gs_shmap_lock(&m->shards[i]);
        n += m->shards[i].map.count;
        gs_shmap_unlock(&m->shards[i]);
    }
    return n;
}
