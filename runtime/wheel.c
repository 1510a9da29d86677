/*
 * wheel.c: the hierarchical timing wheel of wheel.h. See there for the shape; here the two
 * subtle points:
 *   - A node goes to the lowest level whose span covers its distance from the current tick,
 *     in the slot its due tick maps to at that level. A slot of level L is emptied ("cascaded")
 *     into the levels below when the current tick reaches the start of the span it stands for,
 *     which is always at or before the due ticks of the nodes in it.
 *   - At a tick where several levels cascade, the highest goes first, so that nodes it drops
 *     into a lower slot that cascades at the same tick move on down with it.
 */
#include "wheel.h"

#include <string.h>

#define L0_SLOTS (1u << GS__WHEEL_L0_BITS)
#define LN_SLOTS (1u << GS__WHEEL_LN_BITS)

/* Bits of the tick below level `level`'s slot index. */
static unsigned shift_of(unsigned level)
{
    return level == 0 ? 0 : GS__WHEEL_L0_BITS + GS__WHEEL_LN_BITS * (level - 1);
}

static gs__wslot_t *slot_of(gs__wheel_t *w, unsigned level, unsigned slot)
{
    return level == 0 ? &w->l0[slot] : &w->ln[level - 1][slot];
}

void gs__wheel_init(gs__wheel_t *w, uint64_t now_tick)
{
    memset(w, 0, sizeof(*w));
    w->tick = now_tick;
}

static void link_node(gs__wheel_t *w, gs__wnode_t *n, unsigned level, unsigned slot)
{
    gs__wslot_t *s = slot_of(w, level, slot);
    n->level = (uint8_t)level;
    n->slot = (uint16_t)slot;
    n->next = NULL;
    n->prev = s->tail;
    if (s->tail != NULL)
        s->tail->next = n;
    else
        s->head = n;
    s->tail = n;
    n->linked = true;
    if (level == 0)
        w->l0_bits[slot / 64] |= UINT64_C(1) << (slot % 64);
    else
        w->upper_count++;
}

/* earliest: the first tick that is still to be processed (the current one during a cascade,
 * which runs before its level-0 slot is emptied; the next one otherwise). */
static void place(gs__wheel_t *w, gs__wnode_t *n, uint64_t earliest)
{
    uint64_t due = n->due_tick > earliest ? n->due_tick : earliest;
    uint64_t delta = due - w->tick;
    if (delta < L0_SLOTS) {
        link_node(w, n, 0, (unsigned)(due & (L0_SLOTS - 1)));
        return;
    }
    for (unsigned level = 1; level < GS__WHEEL_LEVELS; level++) {
        unsigned shift = shift_of(level);
        if (level == GS__WHEEL_LEVELS - 1 || delta < (UINT64_C(1) << (shift + GS__WHEEL_LN_BITS))) {
            uint64_t span_end = UINT64_C(1) << (shift + GS__WHEEL_LN_BITS);
            if (delta >= span_end) /* beyond the wheel: park it where it is placed again */
                due = w->tick + span_end - 1;
            link_node(w, n, level, (unsigned)((due >> shift) & (LN_SLOTS - 1)));
            return;
        }
    }
}

void gs__wheel_insert(gs__wheel_t *w, gs__wnode_t *n)
{
    w->count++;
    place(w, n, w->tick + 1);
}

static void unlink_node(gs__wheel_t *w, gs__wnode_t *n)
{
    gs__wslot_t *s = slot_of(w, n->level, n->slot);
    if (n->prev != NULL)
        n->prev->next = n->next;
    else
        s->head = n->next;
    if (n->next != NULL)
        n->next->prev = n->prev;
    else
        s->tail = n->prev;
    n->prev = n->next = NULL;
    n->linked = false;
    if (n->level == 0) {
        if (s->head == NULL)
            w->l0_bits[n->slot / 64] &= ~(UINT64_C(1) << (n->slot % 64));
    } else {
        w->upper_count--;
    }
}

void gs__wheel_remove(gs__wheel_t *w, gs__wnode_t *n)
{
    if (!n->linked)
        return;
    unlink_node(w, n);
    w->count--;
}

/* Move every node of an upper slot down to where it now belongs. */
static void cascade(gs__wheel_t *w, unsigned level, unsigned slot)
{
    gs__wslot_t *s = slot_of(w, level, slot);
    gs__wnode_t *n = s->head;
    s->head = s->tail = NULL;
    while (n != NULL) {
        gs__wnode_t *next = n->next;
        w->upper_count--;
        n->linked = false;
        place(w, n, w->tick);
        n = next;
    }
}

void gs__wheel_advance(gs__wheel_t *w, uint64_t now_tick, gs__wheel_fire_cb fire, void *arg)
{
    while (w->tick < now_tick) {
        if (w->count == 0) {
            w->tick = now_tick; /* nothing to turn for */
            return;
        }
        uint64_t t = ++w->tick;
        if ((t & (L0_SLOTS - 1)) == 0) {
            for (unsigned level = GS__WHEEL_LEVELS - 1; level >= 1; level--) {
                unsigned shift = shift_of(level);
                if ((t & ((UINT64_C(1) << shift) - 1)) == 0)
                    cascade(w, level, (unsigned)((t >> shift) & (LN_SLOTS - 1)));
            }
        }
        unsigned idx = (unsigned)(t & (L0_SLOTS - 1));
        gs__wslot_t *s = &w->l0[idx];
        gs__wnode_t *n = s->head;
        s->head = s->tail = NULL;
        w->l0_bits[idx / 64] &= ~(UINT64_C(1) << (idx % 64));
        while (n != NULL) {
            gs__wnode_t *next = n->next;
            n->prev = n->next = NULL;
            n->linked = false;
            w->count--;
            fire(n, arg);
            n = next;
        }
    }
}

uint64_t gs__wheel_next(const gs__wheel_t *w)
{
    if (w->count == 0)
        return UINT64_MAX;
    uint64_t next = UINT64_MAX;
    /* The nearest non-empty level-0 slot after the current tick, going round once. */
    for (unsigned k = 1; k <= L0_SLOTS; k++) {
        unsigned idx = (unsigned)((w->tick + k) & (L0_SLOTS - 1));
        uint64_t word = w->l0_bits[idx / 64] >> (idx % 64);
        if (word == 0) {
            k += 63 - idx % 64; /* skip the rest of this empty word */
            continue;
        }
        k += (unsigned)__builtin_ctzll(word);
        if (k <= L0_SLOTS)
            next = w->tick + k;
        break;
    }
    if (w->upper_count > 0) {
        uint64_t boundary = ((w->tick >> GS__WHEEL_L0_BITS) + 1) << GS__WHEEL_L0_BITS;
        if (boundary < next)
            next = boundary;
    }
    return next;
}

gs__wnode_t *gs__wheel_pop_any(gs__wheel_t *w)
{
    for (unsigned level = 0; level < GS__WHEEL_LEVELS; level++) {
        unsigned slots = level == 0 ? L0_SLOTS : LN_SLOTS;
        for (unsigned i = 0; i < slots; i++) {
            gs__wnode_t *n = slot_of(w, level, i)->head;
            if (n != NULL) {
                gs__wheel_remove(w, n);
                return n;
            }
        }
    }
    return NULL;
}
