/*
 * mpsc.h: an intrusive, unbounded, lock-free multi-producer single-consumer FIFO queue
 * (Dmitry Vyukov's design, as in Pony's messageq.c). It carries every mailbox message and
 * every command to the timer thread.
 *
 * Producers (any thread) link a node with one atomic exchange; the single consumer unlinks
 * without atomics on the common path. Per producer, nodes come out in the order pushed, which
 * gives the runtime its "messages from one sender arrive in the order sent" guarantee.
 *
 * A producer that was preempted between its exchange and its link leaves the queue briefly
 * "inconsistent": pop returns NULL although the queue is not empty. gs__mpsc_maybe_nonempty()
 * tells the consumer to come back rather than go to sleep.
 */
#ifndef GS_MPSC_H
#define GS_MPSC_H

#include <stdatomic.h>
#include <stddef.h>

typedef struct gs__qnode_s {
    _Atomic(struct gs__qnode_s *) next;
} gs__qnode_t;

/* The producers' side: head and the stub. The consumer's cursor (the tail) is kept apart by
 * the owner of the queue, on a cache line of the consumer's own: with both in one line, every
 * pop's write of the tail and every push's exchange of the head took the line from the other
 * core (runtime_bench cast, one sender and one sink on two cores). */
typedef struct gs__mpsc_s {
    _Atomic(gs__qnode_t *) head; /* producers swap themselves in here */
    gs__qnode_t stub;            /* stands in when the queue is empty */
} gs__mpsc_t;

/* The consumer's cursor (consumer only). */
typedef gs__qnode_t *gs__mpsc_tail_t;

static inline void gs__mpsc_init(gs__mpsc_t *q, gs__mpsc_tail_t *tail)
{
    atomic_init(&q->stub.next, NULL);
    atomic_init(&q->head, &q->stub);
    *tail = &q->stub;
}

/* Any thread. Sequentially consistent so that a producer's following load of a "consumer is
 * asleep / unscheduled" flag cannot be ordered before the push (Dekker-style handshake). */
static inline void gs__mpsc_push(gs__mpsc_t *q, gs__qnode_t *n)
{
    atomic_store_explicit(&n->next, NULL, memory_order_relaxed);
    gs__qnode_t *prev = atomic_exchange_explicit(&q->head, n, memory_order_seq_cst);
    /* release: the consumer's acquire load of prev->next sees n's contents */
    atomic_store_explicit(&prev->next, n, memory_order_release);
}

/* Consumer only. NULL when empty (or momentarily inconsistent, see the top of the file). */
static inline gs__qnode_t *gs__mpsc_pop(gs__mpsc_t *q, gs__mpsc_tail_t *cursor)
{
    gs__qnode_t *tail = *cursor;
    /* acquire: pairs with the producer's release store of next */
    gs__qnode_t *next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (tail == &q->stub) {
        if (next == NULL)
            return NULL;
        *cursor = next;
        tail = next;
        next = atomic_load_explicit(&next->next, memory_order_acquire);
    }
    if (next != NULL) {
        *cursor = next;
        /* The next pop reads next->next, written by a producer on another core: start that
         * load now, while this message is handled. */
        __builtin_prefetch(next);
        return tail;
    }
    /* tail is the last linked node; if a producer is mid-push, wait for it. */
    if (tail != atomic_load_explicit(&q->head, memory_order_acquire))
        return NULL;
    gs__mpsc_push(q, &q->stub);
    next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (next != NULL) {
        *cursor = next;
        return tail;
    }
    return NULL;
}

/* Consumer only: false when the queue is certainly empty. seq_cst for the same handshake. */
static inline int gs__mpsc_maybe_nonempty(gs__mpsc_t *q, const gs__qnode_t *tail)
{
    return tail != &q->stub || atomic_load_explicit(&q->head, memory_order_seq_cst) != &q->stub;
}

#define gs__container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#endif
