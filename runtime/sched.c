/*
 * sched.c: the scheduler threads (M:N). Each scheduler owns a FIFO run queue of servers that
 * have messages; it runs the server at its head for one turn (at most `batch` messages, see
 * gs__server_run), then takes the next. There is no global lock: each run queue has its own
 * mutex, held only to link or unlink one server, and only when a server becomes runnable,
 * not per message.
 *
 * Placement: a server made runnable by a scheduler thread goes on that thread's own queue
 * (the message is hot in its cache); one made runnable from outside goes round robin. An idle
 * scheduler steals from the others before it sleeps, and a scheduler that queues work while
 * another sleeps wakes it, so two busy servers do not share one thread while a core idles.
 */
#include "runtime_internal.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>

/* What the current thread is doing: set on scheduler threads, on the timer thread, and around
 * callbacks a thread outside the runtime runs (server.c's inline turn, init). */
_Thread_local gs__tls_t gs__tls;

/* Spins of an idle scheduler before it sleeps; sched_yield keeps a spinning scheduler from
 * starving a producer thread that shares its core (this machine has two). */
#define IDLE_SPINS       64
#define IDLE_BACKSTOP_NS (50u * 1000u * 1000u)

static void rq_push_locked(gs__sched_t *sc, gs_server_t *s)
{
    s->rq_next = NULL;
    if (sc->tail != NULL)
        sc->tail->rq_next = s;
    else
        sc->head = s;
    sc->tail = s;
    /* relaxed: a hint for stealers and the idle check; the lock orders the real data */
    atomic_fetch_add_explicit(&sc->len, 1, memory_order_relaxed);
}

static gs_server_t *rq_pop_locked(gs__sched_t *sc)
{
    gs_server_t *s = sc->head;
    if (s != NULL) {
        sc->head = s->rq_next;
        if (sc->head == NULL)
            sc->tail = NULL;
        s->rq_next = NULL;
        atomic_fetch_sub_explicit(&sc->len, 1, memory_order_relaxed); /* hint, see above */
    }
    return s;
}

/* Wake sc, asleep on its condition variable (its lock held). */
static void signal_sleeper(gs_runtime_t *rt, gs__sched_t *sc)
{
    uv_cond_signal(&sc->cond);
    atomic_fetch_add_explicit(&rt->stats.scheduler_wakeups, 1, memory_order_relaxed); /* counter */
}

static void wake_one_sleeper(gs_runtime_t *rt, const gs__sched_t *except)
{
    /* relaxed: a stale count only costs a missed or spurious wake-up of a stealer; the
     * scheduler that owns the work runs it anyway */
    if (atomic_load_explicit(&rt->sleeping, memory_order_relaxed) == 0)
        return;
    for (unsigned i = 0; i < rt->nsched; i++) {
        gs__sched_t *sc = &rt->scheds[i];
        if (sc == except)
            continue;
        uv_mutex_lock(&sc->lock);
        bool sleeping = sc->sleeping;
        if (sleeping)
            signal_sleeper(rt, sc);
        uv_mutex_unlock(&sc->lock);
        if (sleeping)
            return;
    }
}

void gs__sched_enqueue(gs_runtime_t *rt, gs_server_t *s)
{
    gs__sched_t *sc = gs__tls.sched;
    bool local = sc != NULL && sc->rt == rt;
    if (!local) {
        /* relaxed: any spread over the schedulers will do */
        unsigned i = atomic_fetch_add_explicit(&rt->rr, 1, memory_order_relaxed);
        sc = &rt->scheds[i % rt->nsched];
    }
    uv_mutex_lock(&sc->lock);
    rq_push_locked(sc, s);
    bool wake = sc->sleeping;
    if (wake)
        signal_sleeper(rt, sc);
    uv_mutex_unlock(&sc->lock);
    /* A backlog, or a busy owner: let an idle scheduler steal it rather than wait. */
    if (!wake && (!local || atomic_load_explicit(&sc->len, memory_order_relaxed) > 1))
        wake_one_sleeper(rt, sc);
}

static gs_server_t *steal(gs__sched_t *self)
{
    gs_runtime_t *rt = self->rt;
    for (unsigned k = 1; k < rt->nsched; k++) {
        gs__sched_t *victim = &rt->scheds[(self->index + k) % rt->nsched];
        if (atomic_load_explicit(&victim->len, memory_order_relaxed) == 0) /* hint */
            continue;
        if (uv_mutex_trylock(&victim->lock) != 0)
            continue;
        gs_server_t *s = rq_pop_locked(victim);
        uv_mutex_unlock(&victim->lock);
        if (s != NULL) {
            atomic_fetch_add_explicit(&rt->stats.scheduler_steals, 1,
                                      memory_order_relaxed); /* counter */
            return s;
        }
    }
    return NULL;
}

static gs_server_t *next_server(gs__sched_t *sc)
{
    gs_runtime_t *rt = sc->rt;
    for (int spin = 0;; spin++) {
        uv_mutex_lock(&sc->lock);
        gs_server_t *s = rq_pop_locked(sc);
        uv_mutex_unlock(&sc->lock);
        if (s != NULL)
            return s;
        if ((s = steal(sc)) != NULL)
            return s;
        if (atomic_load(&rt->stop_scheds))
            return NULL;
        if (spin < IDLE_SPINS) {
            sched_yield();
            continue;
        }
        uv_mutex_lock(&sc->lock);
        while (sc->head == NULL && !atomic_load(&rt->stop_scheds)) {
            sc->sleeping = true;
            atomic_fetch_add_explicit(&rt->sleeping, 1, memory_order_relaxed); /* hint */
            /* Enqueuers wake sleepers; the timeout is only a backstop for stealing. */
            uint64_t slept = uv_hrtime();
            uv_cond_timedwait(&sc->cond, &sc->lock, IDLE_BACKSTOP_NS);
            /* relaxed: a tally read for display (gs_runtime_scheduler_idle) */
            atomic_fetch_add_explicit(&sc->idle_ns, uv_hrtime() - slept, memory_order_relaxed);
            atomic_fetch_sub_explicit(&rt->sleeping, 1, memory_order_relaxed);
            sc->sleeping = false;
            if (sc->head == NULL && atomic_load_explicit(&sc->len, memory_order_relaxed) == 0)
                break; /* timed out: go and look for work to steal */
        }
        uv_mutex_unlock(&sc->lock);
        spin = IDLE_SPINS - 1;
    }
}

static void sched_main(void *arg)
{
    gs__sched_t *sc = arg;
    gs__tls.sched = sc;
    gs__tls.runtime_thread = true;
    gs_server_t *s;
    while ((s = next_server(sc)) != NULL)
        gs__server_run(s, sc->rt->opts.batch);
}

int gs__sched_start(gs_runtime_t *rt)
{
    unsigned n = rt->opts.schedulers;
    size_t size = (n * sizeof(gs__sched_t) + GS__CACHELINE - 1) / GS__CACHELINE * GS__CACHELINE;
    rt->scheds = aligned_alloc(GS__CACHELINE, size);
    if (rt->scheds == NULL)
        return GS_ENOMEM;
    memset(rt->scheds, 0, n * sizeof(gs__sched_t));
    rt->nsched = n;
    for (unsigned i = 0; i < n; i++) {
        gs__sched_t *sc = &rt->scheds[i];
        sc->rt = rt;
        sc->index = i;
        uv_mutex_init(&sc->lock);
        uv_cond_init(&sc->cond);
    }
    for (unsigned i = 0; i < n; i++) {
        if (uv_thread_create(&rt->scheds[i].thread, sched_main, &rt->scheds[i]) != 0) {
            rt->nsched = i; /* stop the ones that started */
            gs__sched_stop(rt);
            return GS_ENOMEM;
        }
    }
    return 0;
}

unsigned gs_runtime_scheduler_idle(const gs_runtime_t *rt, uint64_t *idle_ns, unsigned max)
{
    if (rt == NULL || rt->scheds == NULL)
        return 0;
    for (unsigned i = 0; i < rt->nsched && i < max && idle_ns != NULL; i++)
        idle_ns[i] = atomic_load_explicit(&rt->scheds[i].idle_ns, memory_order_relaxed);
    return rt->nsched;
}

void gs__sched_stop(gs_runtime_t *rt)
{
    atomic_store(&rt->stop_scheds, 1); /* seq_cst: seen by the next idle check */
    for (unsigned i = 0; i < rt->nsched; i++) {
        gs__sched_t *sc = &rt->scheds[i];
        uv_mutex_lock(&sc->lock);
        uv_cond_signal(&sc->cond);
        uv_mutex_unlock(&sc->lock);
    }
    for (unsigned i = 0; i < rt->nsched; i++)
        uv_thread_join(&rt->scheds[i].thread);
}

void gs__sched_free(gs_runtime_t *rt)
{
    /* Servers still queued (a last message to a dead server, a timer that fired late) give
     * back the queue's reference; the last reference drains their mailbox, which may queue
     * more, so go round until every queue is empty. */
    for (bool again = true; again;) {
        again = false;
        for (unsigned i = 0; i < rt->nsched; i++) {
            gs__sched_t *sc = &rt->scheds[i];
            gs_server_t *s;
            while ((s = rq_pop_locked(sc)) != NULL) {
                again = true;
                atomic_store(&s->scheduled, 0);
                gs_server_unref(s);
            }
        }
    }
    for (unsigned i = 0; i < rt->nsched; i++) {
        uv_mutex_destroy(&rt->scheds[i].lock);
        uv_cond_destroy(&rt->scheds[i].cond);
    }
    free(rt->scheds);
    rt->scheds = NULL;
}
