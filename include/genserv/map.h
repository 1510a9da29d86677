/*
 * genserv/map.h: an intrusive hash map, plain (gs_map_t) or sharded with a lock per shard
 * (gs_shmap_t). The runtime's name registry, held-call table and timer table are sharded maps;
 * a behaviour that keeps records by key (a built-in's sleepers, a plugin's sessions) can use a
 * plain one in its state.
 *
 * Intrusive: the caller embeds a gs_map_node_t in each record, computes the key's hash
 * (gs_hash_bytes, gs_hash_u64) and compares keys in its own callback, so the map allocates
 * nothing per entry and never copies or frees a record: who owns a record is the caller's
 * business. The buckets double when the load passes two entries per bucket; if that
 * allocation fails the chains just get longer (still correct).
 *
 * API:
 *   gs_map_t m; gs_map_init(&m);
 *   gs_map_insert(&m, &rec->node, hash);                    (no duplicate check)
 *   node = gs_map_find(&m, hash, key, eq);                  NULL when absent
 *   node = gs_map_remove(&m, hash, key, eq);                unlinked, or NULL
 *   gs_map_unlink(&m, &rec->node);                          this very node
 *   gs_map_filter(&m, fn, arg);                             visit all; unlink where fn says
 *   gs_map_close(&m);                                       frees the buckets, not the records
 * A gs_map_t is not synchronised: one thread at a time. A gs_shmap_t spreads keys over
 * GS_SHMAP_SHARDS maps by hash, each with its own mutex: lock the shard of a hash
 * (gs_shmap_lock), use its map, unlock. Nothing here blocks but those mutexes.
 */
#ifndef GENSERV_MAP_H
#define GENSERV_MAP_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Embed one in each record. Fields are the map's; never touch them. */
typedef struct gs_map_node_s {
    struct gs_map_node_s *next;
    uint64_t hash;
} gs_map_node_t;

typedef struct gs_map_s {
    gs_map_node_t **buckets; /* owned; NULL until the first insert */
    size_t nbuckets;         /* 0 or a power of two */
    size_t count;
} gs_map_t;

/** True when node (borrowed) holds key (borrowed): the caller's key comparison. */
typedef bool (*gs_map_eq_fn)(const gs_map_node_t *node, const void *key);
/** Visit node during gs_map_filter; return true to unlink it (the callback may then free its
 *  record: the map does not touch a node after unlinking it). */
typedef bool (*gs_map_filter_fn)(gs_map_node_t *node, void *arg);

/** A well-mixed hash of len bytes (FNV-1a 64, then a finaliser). */
uint64_t gs_hash_bytes(const void *data, size_t len);
/** A well-mixed hash of an integer key (splitmix64's finaliser). */
uint64_t gs_hash_u64(uint64_t x);

/** An empty map; allocates nothing. m: caller's memory. */
void gs_map_init(gs_map_t *m);
/** Free the buckets. Records still linked are not touched (the caller owns them). */
void gs_map_close(gs_map_t *m);
/**
 * Link node under hash. The caller makes keys unique if it needs them unique (find first).
 * @return 0, or GS_ENOMEM when the map has no buckets yet and none can be allocated (node is
 *         then not linked).
 */
int gs_map_insert(gs_map_t *m, gs_map_node_t *node, uint64_t hash);
/** The node holding key, or NULL. */
gs_map_node_t *gs_map_find(const gs_map_t *m, uint64_t hash, const void *key, gs_map_eq_fn eq);
/** Unlink and return the node holding key, or NULL. */
gs_map_node_t *gs_map_remove(gs_map_t *m, uint64_t hash, const void *key, gs_map_eq_fn eq);
/** Unlink node if it is linked in m. Returns whether it was. */
bool gs_map_unlink(gs_map_t *m, gs_map_node_t *node);
/** Call fn on every node, in no particular order; unlink those for which it returns true. */
void gs_map_filter(gs_map_t *m, gs_map_filter_fn fn, void *arg);
/** Entries linked. */
static inline size_t gs_map_count(const gs_map_t *m)
{
    return m->count;
}

/* ---------------------------------------------------------------------------------------- */
/* Sharded: a lock per shard                                                                  */
/* ---------------------------------------------------------------------------------------- */

#define GS_SHMAP_SHARDS 64

typedef struct gs_shmap_shard_s {
    pthread_mutex_t lock;
    gs_map_t map; /* guarded by lock */
    /* Keeps two shards' locks off one cache line. */
    char pad[64];
} gs_shmap_shard_t;

typedef struct gs_shmap_s {
    gs_shmap_shard_t shards[GS_SHMAP_SHARDS];
} gs_shmap_t;

/** Initialise every shard (m: caller's memory). Returns 0 or GS_ENOMEM. */
int gs_shmap_init(gs_shmap_t *m);
/** Destroy the locks and free the buckets; records are the caller's. */
void gs_shmap_close(gs_shmap_t *m);
/** The shard a hash belongs to. Its map may be used only between gs_shmap_lock and unlock. */
static inline gs_shmap_shard_t *gs_shmap_shard(gs_shmap_t *m, uint64_t hash)
{
    /* The top bits pick the shard; the map's buckets use the low bits. */
    return &m->shards[hash >> 58];
}
static inline void gs_shmap_lock(gs_shmap_shard_t *sh)
{
    pthread_mutex_lock(&sh->lock);
}
static inline void gs_shmap_unlock(gs_shmap_shard_t *sh)
{
    pthread_mutex_unlock(&sh->lock);
}
/** Entries in all shards (each read under its lock: a snapshot). */
size_t gs_shmap_count(gs_shmap_t *m);

#ifdef __cplusplus
}
#endif
#endif /* GENSERV_MAP_H */
