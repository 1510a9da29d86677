/*
 * pool.c: recycling of the runtime's small fixed-size records between threads ("magazines").
 *
 * A message envelope, a call record or a send_request record is allocated by one thread (the
 * sender, the caller) and freed by another (the scheduler that handled it, whoever completed
 * the call). With plain malloc every allocation misses the sender's thread cache and every free
 * lands on the other thread's: about a third of the cast path's time (perf, runtime_bench
 * cast), and a fifth of the batcher's. Here each thread keeps, per pool, two short lists:
 * records to hand out and records it freed. A full freed list (a magazine of GS__MAG records)
 * goes to the pool's global stack under one mutex; an empty allocation list takes a magazine
 * from it. So the mutex is taken once per GS__MAG records on each side, and records flow back
 * from the threads that free them to the threads that allocate them.
 *
 * Bounds: each global stack keeps at most about POOL_BYTES of records (the rest go back to
 * malloc), and a thread's lists are flushed to the stacks when the thread exits (pthread key
 * destructor), so nothing is lost to threads that come and go (HTTP threads, test threads).
 *
 * A free record is linked through its first pointer-sized word, and a magazine (a list) to the
 * next magazine through its second: every record is at least two pointers large.
 */
#include "runtime_internal.h"

#include <pthread.h>
#include <stdlib.h>

#define GS__MAG    64
#define POOL_BYTES (8u * 1024u * 1024u) /* per pool, in the global stack */

typedef struct free_s {
    struct free_s *next;     /* within a list */
    struct free_s *next_mag; /* magazine to magazine, in the global stack */
} free_t;

typedef struct pool_s {
    size_t size;
    size_t max_mags;
    pthread_mutex_t lock;
    free_t *mags; /* the global stack of magazines */
    size_t nmags;
} pool_t;

#define POOL(sz)                                                                                   \
    {                                                                                              \
        .size = (sz), .max_mags = POOL_BYTES / ((sz)*GS__MAG), .lock = PTHREAD_MUTEX_INITIALIZER   \
    }

static pool_t pools[GS__POOL_COUNT] = {
    [GS__POOL_MSG] = POOL(sizeof(gs__msg_t)),
    [GS__POOL_CALL] = POOL(sizeof(gs__call_t)),
    [GS__POOL_REQUEST] = POOL(GS__POOL_REQUEST_SIZE),
};

_Static_assert(sizeof(gs__msg_t) >= sizeof(free_t), "a pooled record holds two links");
_Static_assert(GS__POOL_REQUEST_SIZE >= sizeof(free_t), "a pooled record holds two links");

typedef struct tcache_s {
    free_t *alloc; /* records to hand out */
    free_t *freed; /* records this thread freed */
    unsigned nfreed;
} tcache_t;

static _Thread_local tcache_t tcaches[GS__POOL_COUNT];
static _Thread_local bool registered;

static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static pthread_key_t key;

static void free_list(free_t *f)
{
    while (f != NULL) {
        free_t *next = f->next;
        free(f);
        f = next;
    }
}

/* Give a magazine (a list of GS__MAG or fewer records) to the pool's global stack. */
static void put_mag(pool_t *p, free_t *mag)
{
    pthread_mutex_lock(&p->lock);
    if (p->nmags < p->max_mags) {
        mag->next_mag = p->mags;
        p->mags = mag;
        p->nmags++;
        mag = NULL;
    }
    pthread_mutex_unlock(&p->lock);
    free_list(mag);
}

static void flush(void *unused)
{
    (void)unused;
    for (int i = 0; i < GS__POOL_COUNT; i++) {
        tcache_t *tc = &tcaches[i];
        if (tc->alloc != NULL)
            put_mag(&pools[i], tc->alloc);
        if (tc->freed != NULL)
            put_mag(&pools[i], tc->freed);
        *tc = (tcache_t){0};
    }
}

static void make_key(void)
{
    pthread_key_create(&key, flush);
}

static void register_thread(void)
{
    pthread_once(&key_once, make_key);
    pthread_setspecific(key, &registered); /* any non-NULL value makes the destructor run */
    registered = true;
}

void *gs__pool_alloc(gs__pool_id_t id)
{
    tcache_t *tc = &tcaches[id];
    if (tc->alloc == NULL) {
        if (tc->freed != NULL) { /* a thread that both allocates and frees */
            tc->alloc = tc->freed;
            tc->freed = NULL;
            tc->nfreed = 0;
        } else {
            pool_t *p = &pools[id];
            pthread_mutex_lock(&p->lock);
            free_t *mag = p->mags;
            if (mag != NULL) {
                p->mags = mag->next_mag;
                p->nmags--;
            }
            pthread_mutex_unlock(&p->lock);
            if (mag == NULL) {
                void *r = malloc(p->size);
                if (r == NULL)
                    abort(); /* a fixed-size internal record: nothing sensible to do */
                return r;
            }
            if (!registered)
                register_thread();
            tc->alloc = mag;
        }
    }
    free_t *r = tc->alloc;
    tc->alloc = r->next;
    /* A record freed by another core is in that core's cache: fetch the next one now, while
     * this one is filled, rather than stall on it at the next allocation (perf: the load of
     * r->next was most of this function's time on the cast path across cores). */
    if (tc->alloc != NULL)
        __builtin_prefetch(tc->alloc, 1);
    return r;
}

void gs__pool_free(gs__pool_id_t id, void *ptr)
{
    tcache_t *tc = &tcaches[id];
    free_t *r = ptr;
    if (!registered)
        register_thread();
    r->next = tc->freed;
    tc->freed = r;
    if (++tc->nfreed == GS__MAG) {
        tc->freed = NULL;
        tc->nfreed = 0;
        put_mag(&pools[id], r);
    }
}
