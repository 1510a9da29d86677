/*
 * sched.c: the scheduler threads (M:N). Each scheduler owns a FIFO run queue of servers that
 * have messages; it runs the server at its head for one turn (at most `batch` messages, see
 * gs__server_run), then takes the next. There is no global lock: each run queue has its own
 * mutex, held only to link or unlink one server, and only when a server becomes runnable,
 * not per message.
 *
 * Placement (issue 17): a server made runnable by a message sent from a scheduler thread goes
 * into that scheduler's `next` slot and runs there as soon as the sender's turn ends, as Go
 * does with runnext and BEAM and Pony with a receiver woken on its sender's scheduler: the
 * message, the mailbox and the record pools are still in that core's cache. A sender and its
 * receiver then share a core, and what one message costs does not depend on how far apart
 * the host's cores are (on the machine of docs/performance.md a message that crosses cores
 * costs two to three times one that does not). The slot holds one server; the one it held
 * before goes to the queue's tail, and after NEXT_STREAK turns in a row from the slot the
 * queue's head goes first, so two servers that wake each other cannot starve the queue. A
 * server that yields (a full turn) goes to its scheduler's tail; one made runnable from
 * outside the schedulers (a timer, an HTTP thread) to the tail of the scheduler it last ran
 * on, or, before its first turn, of the less loaded of two taken round robin.
 *
 * Stealing: an idle scheduler takes the head of another's queue once it has waited there
 * STEAL_WAIT_NS, and what waits in another's slot once that owner has been in one turn that
 * long: a long handler must not keep a woken server from an idle core, while a sender and its
 * receiver that take turns quickly on one core stay there (moving one of them to the other
 * core would make every message between them cross cores). A scheduler that queues work
 * behind a head that has waited that long wakes a sleeping one to take it.
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
#define IDLE_BACKSTOP_NS (10u * 1000u * 1000u)
/* Work that waited this long on a busy scheduler may be taken by an idle one. */
#define STEAL_WAIT_NS (50u * 1000u)
/* Turns in a row from the `next` slot before the queue's head goes first. */
#define NEXT_STREAK 16

/* now: uv_hrtime() */
static void rq_push_locked(gs__sched_t *sc, gs_server_t *s, uint64_t now)
{
    s->rq_next = NULL;
    s->rq_since = now;
    if (sc->tail != NULL) {
        sc->tail->rq_next = s;
    } else {
        sc->head = s;
        atomic_store_explicit(&sc->head_since, now, memory_order_relaxed); /* hint */
    }
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
        /* relaxed: a hint for stealers (steal), the lock orders the queue itself */
        atomic_store_explicit(&sc->head_since, sc->head != NULL ? sc->head->rq_since : 0,
                              memory_order_relaxed);
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

/* Servers waiting on sc, the running one counted (a hint: relaxed loads, no lock). */
static size_t load_of(const gs__sched_t *sc)
{
    return atomic_load_explicit(&sc->len, memory_order_relaxed) +
           atomic_load_explicit(&sc->has_next, memory_order_relaxed) +
           !atomic_load_explicit(&sc->idle, memory_order_relaxed);
}

void gs__sched_enqueue(gs_runtime_t *rt, gs_server_t *s)
{
    gs__sched_t *sc = gs__tls.sched;
    bool local = sc != NULL && sc->rt == rt;
    if (!local) {
        /* From outside: where it ran last, so that a server that waited for a timer finds
         * the servers it talks to (and its own memory) where it left them; stealing spreads
         * a backlog. A server that never ran goes to the less loaded of two schedulers taken
         * round robin. relaxed: hints. */
        unsigned home = atomic_load_explicit(&s->home, memory_order_relaxed);
        if (home != 0 && home <= rt->nsched) {
            sc = &rt->scheds[home - 1];
        } else {
            unsigned i = atomic_fetch_add_explicit(&rt->rr, 1, memory_order_relaxed);
            sc = &rt->scheds[i % rt->nsched];
            gs__sched_t *other = &rt->scheds[(i + 1) % rt->nsched];
            if (load_of(other) < load_of(sc))
                sc = other;
        }
    }
    uint64_t now = uv_hrtime();
    uv_mutex_lock(&sc->lock);
    rq_push_locked(sc, s, now);
    bool wake = sc->sleeping;
    if (wake)
        signal_sleeper(rt, sc);
    bool backlog = now - sc->head->rq_since >= STEAL_WAIT_NS;
    uv_mutex_unlock(&sc->lock);
    /* Work waits there for long: let an idle scheduler steal it rather than wait. */
    if (!wake && backlog)
        wake_one_sleeper(rt, sc);
}

void gs__sched_ready(gs_runtime_t *rt, gs_server_t *s)
{
    gs__sched_t *sc = gs__tls.sched;
    if (sc == NULL || sc->rt != rt) {
        gs__sched_enqueue(rt, s);
        return;
    }
    /* This scheduler's own thread: it is running, so it is not asleep. */
    uv_mutex_lock(&sc->lock);
    gs_server_t *before = sc->next;
    sc->next = s;
    atomic_store_explicit(&sc->has_next, 1, memory_order_relaxed); /* hint, see len */
    bool backlog = false;
    if (before != NULL) {
        uint64_t now = uv_hrtime();
        rq_push_locked(sc, before, now);
        backlog = now - sc->head->rq_since >= STEAL_WAIT_NS;
    }
    uv_mutex_unlock(&sc->lock);
    if (backlog)
        wake_one_sleeper(rt, sc);
}

/* Whether victim has been in the same turn since self first saw work waiting in its slot,
 * for at least STEAL_WAIT_NS. now: uv_hrtime() of this look. */
static bool stalled(gs__sched_t *self, const gs__sched_t *victim, uint64_t now)
{
    struct gs__sched_seen_s *seen = &self->seen[victim->index];
    /* relaxed: a hint; a stale count only delays or hastens one steal */
    uint64_t turns = atomic_load_explicit(&victim->turns, memory_order_relaxed);
    if (seen->since_ns == 0 || seen->turns != turns) {
        seen->turns = turns;
        seen->since_ns = now;
        return false;
    }
    return now - seen->since_ns >= STEAL_WAIT_NS;
}

/* Take a server from another scheduler, or NULL. *watching: set when work waits elsewhere that
 * is not to be taken yet (its owner may still run it soon). */
static gs_server_t *steal(gs__sched_t *self, bool *watching)
{
    gs_runtime_t *rt = self->rt;
    uint64_t now = uv_hrtime();
    for (unsigned k = 1; k < rt->nsched; k++) {
        gs__sched_t *victim = &rt->scheds[(self->index + k) % rt->nsched];
        /* relaxed: hints; the lock orders the real data */
        uint64_t since = atomic_load_explicit(&victim->head_since, memory_order_relaxed);
        bool queued = since != 0 && now >= since;
        bool next = atomic_load_explicit(&victim->has_next, memory_order_relaxed) != 0;
        if (!queued && !next) {
            self->seen[victim->index].since_ns = 0;
            continue;
        }
        bool from_queue = queued && now - since >= STEAL_WAIT_NS;
        if (!from_queue && (queued || !stalled(self, victim, now))) {
            *watching = true;
            continue;
        }
        if (uv_mutex_trylock(&victim->lock) != 0)
            continue;
        gs_server_t *s = NULL;
        if (from_queue) {
            s = rq_pop_locked(victim);
        } else if (victim->head == NULL && victim->next != NULL) {
            s = victim->next;
            victim->next = NULL;
            atomic_store_explicit(&victim->has_next, 0, memory_order_relaxed); /* hint */
        }
        uv_mutex_unlock(&victim->lock);
        if (s != NULL) {
            self->seen[victim->index].since_ns = 0;
            atomic_fetch_add_explicit(&rt->stats.scheduler_steals, 1,
                                      memory_order_relaxed); /* counter */
            return s;
        }
    }
    return NULL;
}

/* The owner's next server: the slot first, but not more than NEXT_STREAK times in a row while
 * the queue waits. Lock held. */
static gs_server_t *take_locked(gs__sched_t *sc)
{
    gs_server_t *s = sc->next;
    if (s != NULL && (sc->next_streak < NEXT_STREAK || sc->head == NULL)) {
        sc->next = NULL;
        atomic_store_explicit(&sc->has_next, 0, memory_order_relaxed); /* hint */
        sc->next_streak++;
        return s;
    }
    sc->next_streak = 0;
    return rq_pop_locked(sc);
}

/* sc has work again (hint for load_of). */
static void break_idle(gs__sched_t *sc)
{
    if (atomic_load_explicit(&sc->idle, memory_order_relaxed))
        atomic_store_explicit(&sc->idle, 0, memory_order_relaxed);
}

static gs_server_t *next_server(gs__sched_t *sc)
{
    gs_runtime_t *rt = sc->rt;
    uint64_t idle_since = 0;
    for (int spin = 0;; spin++) {
        uv_mutex_lock(&sc->lock);
        gs_server_t *s = take_locked(sc);
        uv_mutex_unlock(&sc->lock);
        if (s != NULL) {
            break_idle(sc);
            return s;
        }
        atomic_store_explicit(&sc->idle, 1, memory_order_relaxed); /* hint for load_of */
        bool watching = false;
        if ((s = steal(sc, &watching)) != NULL) {
            break_idle(sc);
            return s;
        }
        if (atomic_load(&rt->stop_scheds))
            return NULL;
        if (idle_since == 0)
            idle_since = uv_hrtime();
        /* Spin a little before sleeping; longer while work waits elsewhere that may stall
         * (STEAL_WAIT_NS), so that it is taken by an idle scheduler and not by the backstop. */
        if (spin < IDLE_SPINS || (watching && uv_hrtime() - idle_since < 2 * STEAL_WAIT_NS)) {
            sched_yield();
            continue;
        }
        uv_mutex_lock(&sc->lock);
        while (sc->head == NULL && sc->next == NULL && !atomic_load(&rt->stop_scheds)) {
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
        idle_since = 0;
    }
}

static void sched_main(void *arg)
{
    gs__sched_t *sc = arg;
    gs__tls.sched = sc;
    gs__tls.runtime_thread = true;
    gs_server_t *s;
    uint16_t me = (uint16_t)(sc->index + 1);
    while ((s = next_server(sc)) != NULL) {
        /* relaxed: a placement hint (gs__sched_enqueue); written only when s moved */
        if (atomic_load_explicit(&s->home, memory_order_relaxed) != me)
            atomic_store_explicit(&s->home, me, memory_order_relaxed);
        gs__server_run(s, sc->rt->opts.batch);
        /* relaxed: this thread is the only writer; stealers want a hint (stalled) */
        atomic_store_explicit(&sc->turns,
                              atomic_load_explicit(&sc->turns, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    }
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
        sc->seen = calloc(n, sizeof(*sc->seen));
        if (sc->seen == NULL) {
            for (unsigned j = 0; j < i; j++)
                free(rt->scheds[j].seen);
            free(rt->scheds);
            rt->scheds = NULL;
            return GS_ENOMEM;
        }
        uv_mutex_init(&sc->lock);
        uv_cond_init(&sc->cond);
    }
    for (unsigned i = 0; i < n; i++) {
        if (uv_thread_create(&rt->scheds[i].thread, sched_main, &rt->scheds[i]) != 0) {
            for (unsigned j = i; j < n; j++) { /* gs__sched_free sees only the first i */
                free(rt->scheds[j].seen);
                uv_mutex_destroy(&rt->scheds[j].lock);
                uv_cond_destroy(&rt->scheds[j].cond);
            }
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
            while ((s = take_locked(sc)) != NULL) {
                again = true;
                atomic_store(&s->scheduled, 0);
                gs_server_unref(s);
            }
        }
    }
    for (unsigned i = 0; i < rt->nsched; i++) {
        uv_mutex_destroy(&rt->scheds[i].lock);
        uv_cond_destroy(&rt->scheds[i].cond);
        free(rt->scheds[i].seen);
    }
    free(rt->scheds);
    rt->scheds = NULL;
}
