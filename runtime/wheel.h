/*
 * wheel.h: a hierarchical timing wheel (Varghese & Lauck; the Linux kernel's timer wheel) with
 * 1 ms ticks, owned by the timer thread alone.
 *
 * Level 0 has 8192 slots of one tick; levels 1-4 have 64 slots, each covering 64 slots of the
 * level below: 8.2 s, 8.7 min, 9.3 h, 24.9 days, 4.4 years in all (later deadlines wait in the
 * last level and are placed again as it turns). Level 0 is that wide so that the common
 * deadlines (call timeouts, 5 s by default; send_afters of a few seconds) go straight to the
 * slot they fire from: a cascade moves every node of an upper slot at once, and at a million
 * timers over a few seconds a 256-slot level 0 cascaded ~130,000 nodes (~15 ms of cache misses,
 * during which nothing fired) every 256 ms. A node sits in one slot's doubly linked list:
 * insert, remove and fire are O(1), and a node is touched about once per level it passes
 * through, where a binary heap of a million timers misses the cache at each of its 20 levels.
 */
#ifndef GS_WHEEL_H
#define GS_WHEEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GS__WHEEL_L0_BITS 13
#define GS__WHEEL_LN_BITS 6
#define GS__WHEEL_LEVELS  5 /* level 0 and four upper levels */

typedef struct gs__wnode_s {
    struct gs__wnode_s *prev, *next;
    uint64_t due_tick; /* the first tick at which it is due */
    uint8_t level;
    uint16_t slot;
    bool linked; /* in a slot of the wheel */
} gs__wnode_t;

typedef struct gs__wslot_s {
    gs__wnode_t *head, *tail;
} gs__wslot_t;

typedef struct gs__wheel_s {
    uint64_t tick;      /* every tick up to this one has been processed */
    size_t count;       /* nodes in the wheel */
    size_t upper_count; /* nodes in levels 1-4 */
    uint64_t l0_bits[(1u << GS__WHEEL_L0_BITS) / 64]; /* non-empty level-0 slots */
    gs__wslot_t l0[1u << GS__WHEEL_L0_BITS];
    gs__wslot_t ln[GS__WHEEL_LEVELS - 1][1u << GS__WHEEL_LN_BITS];
} gs__wheel_t;

typedef void (*gs__wheel_fire_cb)(gs__wnode_t *n, void *arg);

void gs__wheel_init(gs__wheel_t *w, uint64_t now_tick);
/* Link n, due at n->due_tick (a deadline already passed fires at the next tick). */
void gs__wheel_insert(gs__wheel_t *w, gs__wnode_t *n);
/* Unlink n if it is linked. */
void gs__wheel_remove(gs__wheel_t *w, gs__wnode_t *n);
/* Process every tick up to now_tick: fire(n) for each node due, unlinked first, in order of
 * due tick (insertion order within a tick). fire must not touch the wheel. */
void gs__wheel_advance(gs__wheel_t *w, uint64_t now_tick, gs__wheel_fire_cb fire, void *arg);
/* The next tick at which advancing has work to do: a due node or a cascade; UINT64_MAX when
 * the wheel is empty. */
uint64_t gs__wheel_next(const gs__wheel_t *w);
/* Unlink and return any node (for teardown), or NULL when empty. */
gs__wnode_t *gs__wheel_pop_any(gs__wheel_t *w);

#endif
