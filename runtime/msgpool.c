/*
 * msgpool.c: recycling of cast/info message envelopes between threads ("magazines").
 *
 * A message is allocated by its sender and freed by the scheduler thread that handled it, so
 * with plain malloc every send misses the sender's thread cache and every free lands on the
 * other thread's: together about a third of the cast path's time (perf, runtime_bench cast).
 * Here each thread keeps two short lists: envelopes to hand out and envelopes it freed. A full
 * freed list (a magazine of GS__MAG envelopes) goes to a global stack under one mutex; an empty
 * allocation list takes a magazine from it. So the mutex is taken once per GS__MAG messages on
 * each side, and envelopes flow back from consumers to producers.
 *
 * Bounds: the global stack keeps at most POOL_MAX magazines (the rest go back to malloc), and
 * a thread's lists are flushed to it when the thread exits (pthread key destructor), so
 * nothing is lost to threads that come and go (HTTP threads, test threads).
 */
#include "runtime_internal.h"

#include <pthread.h>
#include <stdlib.h>

#define GS__MAG  64
#define POOL_MAX 4096 /* magazines: 4096 * 64 * 24 bytes = 6 MiB at most */

typedef struct tcache_s {
    gs__msg_t *alloc; /* linked through node.next */
    gs__msg_t *freed;
    unsigned nfreed; /* envelopes in freed */
    bool registered;
} tcache_t;

static _Thread_local tcache_t tcache;

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static gs__msg_t *pool; /* magazines, linked through the first envelope's `batch` */
static size_t pool_len;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static pthread_key_t key;

static gs__msg_t *next_of(gs__msg_t *m)
{
    /* relaxed: the envelope is private to this thread while it is in a list */
    return (gs__msg_t *)atomic_load_explicit(&m->node.next, memory_order_relaxed);
}

static void set_next(gs__msg_t *m, gs__msg_t *next)
{
    /* node is the first member: the cast keeps NULL as NULL; relaxed: see next_of */
    atomic_store_explicit(&m->node.next, (gs__qnode_t *)next, memory_order_relaxed);
}

static void free_list(gs__msg_t *m)
{
    while (m != NULL) {
        gs__msg_t *next = next_of(m);
        free(m);
        m = next;
    }
}

/* Give a magazine (a list of GS__MAG or fewer envelopes) to the global stack. */
static void pool_put(gs__msg_t *mag)
{
    pthread_mutex_lock(&pool_lock);
    if (pool_len < POOL_MAX) {
        mag->batch = pool;
        pool = mag;
        pool_len++;
        mag = NULL;
    }
    pthread_mutex_unlock(&pool_lock);
    free_list(mag);
}

static void flush(void *unused)
{
    (void)unused;
    if (tcache.alloc != NULL)
        pool_put(tcache.alloc);
    if (tcache.freed != NULL)
        pool_put(tcache.freed);
    tcache = (tcache_t){0};
}

static void make_key(void)
{
    pthread_key_create(&key, flush);
}

static void register_thread(void)
{
    pthread_once(&key_once, make_key);
    pthread_setspecific(key, &tcache); /* any non-NULL value makes the destructor run */
    tcache.registered = true;
}

gs__msg_t *gs__msg_alloc(void)
{
    if (tcache.alloc == NULL) {
        if (tcache.freed != NULL) { /* a thread that both sends and handles */
            tcache.alloc = tcache.freed;
            tcache.freed = NULL;
            tcache.nfreed = 0;
        } else {
            pthread_mutex_lock(&pool_lock);
            gs__msg_t *mag = pool;
            if (mag != NULL) {
                pool = mag->batch;
                pool_len--;
            }
            pthread_mutex_unlock(&pool_lock);
            if (mag == NULL)
                return malloc(sizeof(gs__msg_t));
            if (!tcache.registered)
                register_thread();
            tcache.alloc = mag;
        }
    }
    gs__msg_t *m = tcache.alloc;
    tcache.alloc = next_of(m);
    return m;
}

void gs__msg_free(gs__msg_t *m)
{
    if (!tcache.registered)
        register_thread();
    set_next(m, tcache.freed);
    tcache.freed = m;
    if (++tcache.nfreed == GS__MAG) {
        gs__msg_t *mag = tcache.freed;
        tcache.freed = NULL;
        tcache.nfreed = 0;
        pool_put(mag);
    }
}
