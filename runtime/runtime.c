/*
 * runtime.c: creating and destroying a runtime, its options and counters.
 *
 * API:
 *   gs_runtime_create   registry, held-call table, events, timer thread, scheduler threads.
 *   gs_runtime_destroy  refuse new work; stop every server (terminate runs, callers fail);
 *                       join the schedulers, then the timer thread; free what is left.
 * The order matters: servers stop while the schedulers still run (terminate runs on them),
 * and the timer thread outlives the schedulers so that call timeouts armed by a last handler
 * still find it; what it holds at the end is dropped.
 */
#include "runtime_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

void gs_runtime_options_init(gs_runtime_options_t *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->mailbox_limit = GS_DEFAULT_MAILBOX_LIMIT;
    opts->batch = GS_DEFAULT_BATCH;
#define GS__LIMIT_DEFAULT(field, flag, key, min, max, def, metavar, help) opts->field = def;
    GS_RUNTIME_LIMITS_MAP(GS__LIMIT_DEFAULT)
#undef GS__LIMIT_DEFAULT
}

int gs_runtime_create(const gs_runtime_options_t *opts, gs_runtime_t **out)
{
    if (out == NULL)
        return GS_EINVAL;
    *out = NULL;
    gs_runtime_t *rt = aligned_alloc(GS__CACHELINE, (sizeof(*rt) + GS__CACHELINE - 1) /
                                                        GS__CACHELINE * GS__CACHELINE);
    if (rt == NULL)
        return GS_ENOMEM;
    memset(rt, 0, sizeof(*rt));
    gs_runtime_options_init(&rt->opts);
    if (opts != NULL) {
        rt->opts = *opts;
        if (rt->opts.mailbox_limit == 0)
            rt->opts.mailbox_limit = GS_DEFAULT_MAILBOX_LIMIT;
        if (rt->opts.batch == 0)
            rt->opts.batch = GS_DEFAULT_BATCH;
#define GS__LIMIT_ZERO(field, flag, key, min, max, def, metavar, help)                             \
    if (rt->opts.field == 0)                                                                       \
        rt->opts.field = def;
        GS_RUNTIME_LIMITS_MAP(GS__LIMIT_ZERO)
#undef GS__LIMIT_ZERO
    }
    if (rt->opts.schedulers == 0)
        rt->opts.schedulers = uv_available_parallelism();
    if (rt->opts.schedulers == 0 || rt->opts.schedulers > 1024) {
        free(rt);
        return GS_EINVAL;
    }
    /* With a store, a durable state may keep a `from` across a restart (a Lua state, a C
     * state that stores ids): call ids then start past any id an earlier process gave out
     * (2^20 per second of wall clock; still below 2^53, exact in a browser's JSON), so a stale
     * `from` finds no call instead of someone else's. */
    uint64_t first_id = 1;
    if (opts != NULL && opts->store != NULL) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        first_id = ((uint64_t)now.tv_sec << 20) + 1;
    }
    atomic_init(&rt->next_call_id, first_id);
    uv_mutex_init(&rt->behaviours_lock);
    uv_mutex_init(&rt->live_lock);
    uv_mutex_init(&rt->trees_lock);
    uv_cond_init(&rt->live_cond);
    atomic_init(&rt->next_timer_ref, 1);
    int rc = gs__registry_init(rt);
    if (rc == 0 && (rc = gs__held_init(rt)) != 0)
        gs__registry_close(rt, gs__child_unref);
    if (rc == 0 && (rc = gs__send_after_init(rt)) != 0) {
        gs__held_close(rt);
        gs__registry_close(rt, gs__child_unref);
    }
    if (rc == 0 && (rc = gs__monitors_init(rt)) != 0) {
        gs__send_after_close(rt);
        gs__held_close(rt);
        gs__registry_close(rt, gs__child_unref);
    }
    if (rc == 0 && (rc = gs__durable_init(rt)) != 0) {
        gs__durable_close(rt);
        gs__monitors_close(rt);
        gs__send_after_close(rt);
        gs__held_close(rt);
        gs__registry_close(rt, gs__child_unref);
    }
    if (rc != 0) {
        uv_cond_destroy(&rt->live_cond);
        uv_mutex_destroy(&rt->trees_lock);
        uv_mutex_destroy(&rt->live_lock);
        uv_mutex_destroy(&rt->behaviours_lock);
        free(rt);
        return rc;
    }
    gs__events_init(rt);
    rc = gs__timers_start(rt);
    if (rc == 0) {
        rc = gs__sched_start(rt);
        if (rc != 0) {
            gs__timers_stop(rt);
            gs__sched_free(rt);
            gs__timers_free(rt);
        }
    }
    if (rc != 0) {
        gs__events_close(rt);
        gs__durable_close(rt);
        gs__monitors_close(rt);
        gs__send_after_close(rt);
        gs__held_close(rt);
        gs__registry_close(rt, gs__child_unref);
        uv_cond_destroy(&rt->live_cond);
        uv_mutex_destroy(&rt->trees_lock);
        uv_mutex_destroy(&rt->live_lock);
        uv_mutex_destroy(&rt->behaviours_lock);
        free(rt);
        return rc;
    }
    *out = rt;
    return 0;
}

unsigned gs_runtime_schedulers(const gs_runtime_t *rt)
{
    return rt->nsched;
}

/* One round of stop_all_servers: a countdown that starts at 1 (the waiter's own share, so it
 * cannot reach zero while calls are still being posted) plus one per STOP posted; whoever
 * brings it to zero posts the semaphore once. A semaphore rather than a condition variable:
 * glibc 2.36's condition variables (bug 25847) left this wait hung in pthread_cond_signal
 * under ThreadSanitizer when shutdown raced a server that was restarting in a loop. */
typedef struct stop_wait_s {
    _Atomic size_t pending;
    uv_sem_t done;
} stop_wait_t;

static void stop_wait_drop(stop_wait_t *w)
{
    /* acq_rel: the last one sees every terminate that ran before the others dropped */
    if (atomic_fetch_sub_explicit(&w->pending, 1, memory_order_acq_rel) == 1)
        uv_sem_post(&w->done);
}

static void stop_done_cb(int status, json_t *result, void *arg)
{
    (void)status;
    json_decref(result);
    stop_wait_drop(arg);
}

/* Ask every registered server to stop with reason "shutdown" and wait until each has
 * terminated. Servers started meanwhile (by a handler) are caught by the next round. */
static void stop_all_servers(gs_runtime_t *rt)
{
    stop_wait_t w;
    if (uv_sem_init(&w.done, 0) != 0)
        abort(); /* nothing sensible to do: shutdown cannot wait without it */
    for (;;) {
        size_t n = 0;
        bool raced = false;
        gs__child_t **children = gs__registry_snapshot(rt, &n);
        atomic_init(&w.pending, 1);
        for (size_t i = 0; i < n; i++) {
            gs__child_t *c = children[i];
            gs__child_lock(c);
            gs_server_t *s = c->current ? gs_server_ref(c->current) : NULL;
            gs__child_unlock(c);
            if (s == NULL) {
                gs__child_forget(rt, c); /* down: nothing to terminate */
            } else {
                gs__call_t *call =
                    gs__call_create(rt, GS__MSG_STOP, json_string("shutdown"), stop_done_cb, &w);
                /* relaxed: ordered before the push, which publishes the call */
                atomic_fetch_add_explicit(&w.pending, 1, memory_order_relaxed);
                if (gs__server_push(s, &call->msg, true) != 0) {
                    /* It is dying on its own right now; the next round finds it gone. */
                    atomic_store(&call->done, 1);
                    gs__call_unref(call);
                    stop_wait_drop(&w);
                    raced = true;
                }
                gs_server_unref(s);
            }
            gs__child_unref(c);
        }
        free(children);
        /* Drop the waiter's own share; unless that was the last, wait for the last post. */
        if (atomic_fetch_sub_explicit(&w.pending, 1, memory_order_acq_rel) != 1)
            uv_sem_wait(&w.done);
        if (n == 0)
            break;
        if (raced)
            uv_sleep(1); /* let the dying server's supervisor finish with its name */
    }
    /* Incarnations that were starting or restarting when we looked finish dying too. */
    gs__live_wait(rt);
    uv_sem_destroy(&w.done);
}

void gs_runtime_destroy(gs_runtime_t *rt)
{
    if (rt == NULL)
        return;
    /* seq_cst: every thread that checks the flag afterwards refuses new work. */
    atomic_store(&rt->shutting_down, 1);
    stop_all_servers(rt);
    /* What durable servers submitted last commits before what it releases is freed; nothing
     * is submitted after (a timer the timer thread still fires must not delete its row: it
     * was not delivered, and fires at the next start). seq_cst: see durable_closed. */
    atomic_store(&rt->durable_closed, 1);
    while (atomic_load(&rt->durable_inflight) > 0)
        uv_sleep(1);
    gs__sched_stop(rt);
    gs__timers_stop(rt);
    gs__sched_free(rt);
    gs__timers_free(rt);
    gs__events_close(rt);
    gs__monitors_close(rt);
    gs__send_after_close(rt);
    gs__held_close(rt);
    gs__registry_close(rt, gs__child_unref);
    gs__durable_close(rt);
    free(rt->behaviours);
    uv_cond_destroy(&rt->live_cond);
    uv_mutex_destroy(&rt->trees_lock);
    uv_mutex_destroy(&rt->live_lock);
    uv_mutex_destroy(&rt->behaviours_lock);
    free(rt);
}

void gs_runtime_stats(gs_runtime_t *rt, gs_runtime_stats_t *out)
{
    /* relaxed: independent tallies read for reporting; no ordering with other data needed */
#define GS__STATS_READ(field, kind, help)                                                          \
    out->field = atomic_load_explicit(&rt->stats.field, memory_order_relaxed);
    GS_RUNTIME_STATS_MAP(GS__STATS_READ)
#undef GS__STATS_READ
}

gs_server_t *gs_self(void)
{
    return gs__tls.current;
}
