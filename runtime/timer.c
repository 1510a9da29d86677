/*
 * timer.c: the timer thread: a dedicated libuv loop that fires timer nodes when they are due.
 * It knows nothing of what a node is: each carries its ops (fire, cancelled, release,
 * shutdown), given by send_after.c for Process.send_after timers and by call.c for call
 * timeouts.
 *
 * Every thread hands nodes to the timer thread through one MPSC queue of commands (ADD,
 * CANCEL); only the timer thread touches the timing wheel (wheel.h: O(1) insert, cancel and
 * fire, 1 ms ticks), and one uv_timer_t is armed for the wheel's next tick with work. So a
 * pending timer costs its record (about 120 bytes), and scheduling one is a queue push.
 *
 * Wake-ups: a producer wakes the loop (uv_async_send) only when its node is due before the
 * loop's next planned look at the queue (armed_due_ns). The loop looks at least every
 * RESCAN_NS while it has work, which bounds how long cancelled nodes wait to be freed. The
 * loop publishes armed_due_ns before its final check of the queue, and producers read it
 * after their push (both seq_cst): one of the two always sees the other.
 */
#include "runtime_internal.h"

#include <stdlib.h>

#define RESCAN_NS   (10u * 1000u * 1000u)
#define NS_PER_TICK 1000000u /* the wheel turns in milliseconds, as uv timers count */

static void drain_commands(gs_runtime_t *rt)
{
    gs__timers_t *tm = &rt->timers;
    gs__qnode_t *q;
    while ((q = gs__mpsc_pop(&tm->cmds, &tm->cmds_tail)) != NULL) {
        gs__tcmd_t *cmd = gs__container_of(q, gs__tcmd_t, q);
        if (cmd->op == GS__TCMD_ADD) {
            gs__tnode_t *n = gs__container_of(cmd, gs__tnode_t, add);
            if (!n->ops->cancelled(n)) {
                gs__wheel_insert(&tm->wheel, &n->w);
            }
            /* else: a CANCEL follows in the queue and releases it */
        } else {
            gs__tnode_t *n = gs__container_of(cmd, gs__tnode_t, cancel);
            gs__wheel_remove(&tm->wheel, &n->w);
            n->ops->release(n);
        }
    }
}

static void fire_wnode(gs__wnode_t *w, void *rt)
{
    gs__tnode_t *n = gs__container_of(w, gs__tnode_t, w);
    n->ops->fire(rt, n);
}

static void timer_cb(uv_timer_t *h);

static void process(gs_runtime_t *rt)
{
    gs__timers_t *tm = &rt->timers;
    uint64_t now, next;
    for (;;) {
        drain_commands(rt);
        now = gs__now_ns();
        gs__wheel_advance(&tm->wheel, now / NS_PER_TICK, fire_wnode, rt);
        uint64_t tick = gs__wheel_next(&tm->wheel);
        next = tick == UINT64_MAX ? UINT64_MAX : tick * NS_PER_TICK;
        if (next != UINT64_MAX && next > now + RESCAN_NS)
            next = now + RESCAN_NS;
        atomic_store(&tm->armed_due_ns, next); /* seq_cst: see the top of the file */
        if (!gs__mpsc_maybe_nonempty(&tm->cmds, tm->cmds_tail))
            break;
    }
    if (atomic_load(&tm->stop)) {
        uv_close((uv_handle_t *)&tm->wake, NULL);
        uv_close((uv_handle_t *)&tm->timer, NULL);
        return;
    }
    if (next == UINT64_MAX) {
        uv_timer_stop(&tm->timer);
        return;
    }
    uv_update_time(&tm->loop);
    /* uv timers count whole milliseconds: round up so we never wake before the due time */
    uint64_t ms = next > now ? (next - now + 999999u) / 1000000u : 0;
    uv_timer_start(&tm->timer, timer_cb, ms, 0);
}

static void timer_cb(uv_timer_t *h)
{
    process(h->loop->data);
}

static void wake_cb(uv_async_t *h)
{
    process(h->loop->data);
}

static void timer_main(void *arg)
{
    gs_runtime_t *rt = arg;
    gs__tls.runtime_thread = true;
    uv_run(&rt->timers.loop, UV_RUN_DEFAULT);
}

int gs__timers_start(gs_runtime_t *rt)
{
    gs__timers_t *tm = &rt->timers;
    gs__mpsc_init(&tm->cmds, &tm->cmds_tail);
    atomic_init(&tm->armed_due_ns, UINT64_MAX);
    atomic_init(&tm->stop, 0);
    gs__wheel_init(&tm->wheel, gs__now_ns() / NS_PER_TICK);
    if (uv_loop_init(&tm->loop) != 0)
        return GS_ENOMEM;
    tm->loop.data = rt;
    uv_async_init(&tm->loop, &tm->wake, wake_cb);
    uv_timer_init(&tm->loop, &tm->timer);
    if (uv_thread_create(&tm->thread, timer_main, rt) != 0) {
        uv_close((uv_handle_t *)&tm->wake, NULL);
        uv_close((uv_handle_t *)&tm->timer, NULL);
        uv_run(&tm->loop, UV_RUN_DEFAULT);
        uv_loop_close(&tm->loop);
        return GS_ENOMEM;
    }
    return 0;
}

void gs__timers_stop(gs_runtime_t *rt)
{
    gs__timers_t *tm = &rt->timers;
    atomic_store(&tm->stop, 1);
    uv_async_send(&tm->wake);
    uv_thread_join(&tm->thread);
    uv_loop_close(&tm->loop);
}

void gs__timers_free(gs_runtime_t *rt)
{
    gs__timers_t *tm = &rt->timers;
    /* Commands posted after the thread stopped (cancels from the last completions), then
     * whatever is still pending: timers are dropped, call timeouts end the calls. */
    drain_commands(rt);
    gs__wnode_t *w;
    while ((w = gs__wheel_pop_any(&tm->wheel)) != NULL) {
        gs__tnode_t *n = gs__container_of(w, gs__tnode_t, w);
        n->ops->shutdown(rt, n);
        drain_commands(rt);
    }
}

void gs__timers_post(gs_runtime_t *rt, gs__tnode_t *n, gs__tcmd_op_t op)
{
    gs__timers_t *tm = &rt->timers;
    gs__tcmd_t *cmd = op == GS__TCMD_ADD ? &n->add : &n->cancel;
    cmd->op = (uint8_t)op;
    gs__mpsc_push(&tm->cmds, &cmd->q);
    /* seq_cst load after the push: see the top of the file. Cancels never wake: they are
     * picked up within RESCAN_NS. */
    if (op == GS__TCMD_ADD && n->w.due_tick * NS_PER_TICK < atomic_load(&tm->armed_due_ns) &&
        !atomic_load_explicit(&tm->stop, memory_order_relaxed))
        uv_async_send(&tm->wake);
}
