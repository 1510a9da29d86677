/*
 * ticker.c: the Elixir GenServer lessons' IncrementingCounter and DecrementingCounter, a count that
 * changes on its own, driven by a timer message the server sends itself.
 *
 * Elixir:
 *   def init(count) do
 *     Process.send_after(self(), :tick, 1000)
 *     {:ok, count}
 *   end
 *   def handle_info(:tick, count) do
 *     Process.send_after(self(), :tick, 1000)
 *     {:noreply, count + 1}
 *   end
 *
 * Here: init args {"interval_ms": 1000, "step": 1, "initial": 0} (DecrementingCounter is
 * {"interval_ms": 500, "step": -1}); each "tick" adds step to the count and schedules the
 * next with gs_send_after_server(self, ...). Call "get_count". State JSON:
 * {"count", "interval_ms", "step"}.
 *
 * A "tick" sent by hand (POST /send) counts like any tick, but it must not start a second
 * chain of timers, or every forged tick would make the ticker tick faster forever. So each
 * tick first cancels the pending timer, if any, and then schedules exactly one: there is
 * never more than one timer pending.
 *
 * Durable: the stored state is what format_state shows plus the pending tick's timer
 * reference, {"count", "interval_ms", "step", "timer": ref, or 0 for none}. A durable
 * server's own send_after timers are stored by the runtime and armed again at the next start
 * under the same reference, so restore does not schedule a tick (init, which does, is not
 * called): it only takes the reference back, so that the next tick still cancels the timer
 * it replaces and there is still never more than one pending. Arming one in restore would
 * make two chains of ticks after every restart. The one exception is a stored timer of 0: a
 * tick that came during a shutdown could not schedule the next one, so no tick is stored,
 * and a restore at start begins a new chain as init does. terminate leaves the pending tick
 * alone at a shutdown, since cancelling it would delete it from the store. The interval and
 * step are part of the stored state: a restored ticker keeps them, whatever the args of the
 * new start.
 */
#include <stdlib.h>

#include <genserv/builtins.h>
#include <genserv/message.h>

#include "builtins_internal.h"

#define TICKER_MIN_MS 10       /* below this the ticker would mostly flood events */
#define TICKER_MAX_MS 86400000 /* one day */

typedef struct ticker_s {
    json_int_t count;
    json_int_t interval_ms;
    json_int_t step;
    gs_timer_ref_t timer; /* the pending tick, or 0 */
} ticker_t;

static int ticker_schedule(gs_server_t *self, ticker_t *t)
{
    if (t->timer != 0)
        gs_cancel_timer(gs_server_runtime(self), t->timer, NULL);
    t->timer = 0;
    return gs_send_after_server(self, json_string("tick"), (uint64_t)t->interval_ms, &t->timer);
}

static int ticker_init(gs_server_t *self, json_t *args, void **state, json_t **reason)
{
    static const char *const allowed[] = {"interval_ms", "step", "initial", NULL};
    ticker_t init = {.count = 0, .interval_ms = 1000, .step = 1, .timer = 0};

    if (gs_args_check(args, allowed, reason) < 0 ||
        gs_args_int(args, "interval_ms", TICKER_MIN_MS, TICKER_MAX_MS, &init.interval_ms, reason) <
            0 ||
        gs_args_int(args, "step", GS_JSON_INT_MIN, GS_JSON_INT_MAX, &init.step, reason) < 0 ||
        gs_args_int(args, "initial", GS_JSON_INT_MIN, GS_JSON_INT_MAX, &init.count, reason) < 0)
        return -1;
    ticker_t *t = malloc(sizeof(*t));
    if (t == NULL) {
        *reason = json_string(gs_err_name(GS_ENOMEM));
        return -1;
    }
    *t = init;
    int rc = ticker_schedule(self, t);
    if (rc < 0) {
        free(t);
        *reason = json_string(gs_err_name(rc));
        return -1;
    }
    *state = t;
    return 0;
}

static gs_result_t ticker_handle_info(gs_server_t *self, void *state, json_t *msg)
{
    ticker_t *t = state;
    json_int_t sum;

    if (!gs_msg_is_atom(msg, "tick"))
        return GS_NOREPLY;
    /* At the end of the range the count stays put rather than wrapping around. */
    if (gs_json_int_add(t->count, t->step, &sum))
        t->count = sum;
    int rc = ticker_schedule(self, t);
    /*
     * Without its next tick the ticker would silently stop; a crash lets the supervisor
     * restart it instead. At shutdown there is nothing to restart, so it just stops ticking.
     */
    if (rc < 0 && rc != GS_ESHUTDOWN)
        return GS_STOP(json_string(gs_err_name(rc)));
    return GS_NOREPLY;
}

static gs_result_t ticker_handle_call(gs_server_t *self, void *state, json_t *msg, gs_from_t from)
{
    ticker_t *t = state;
    (void)self;
    (void)from;

    if (gs_msg_is_atom(msg, "get_count"))
        return GS_REPLY(json_integer(t->count));
    return gs_reply_unknown_message();
}

/* "shutdown" or ["shutdown", ...]: the runtime, or a supervisor, stopping the server. */
static bool is_shutdown(const json_t *reason)
{
    return gs_msg_is_atom(reason, "shutdown") ||
           (json_is_array(reason) && gs_msg_is_atom(json_array_get(reason, 0), "shutdown"));
}

static void ticker_terminate(gs_server_t *self, json_t *reason, void *state)
{
    ticker_t *t = state;
    /*
     * The runtime would drop the tick anyway; cancelling keeps the timer counters honest.
     * Not at a shutdown, though: a durable ticker's pending tick is stored with its state for
     * its next start, and a cancel would delete it from the store (the restored ticker would
     * never tick again). At the runtime's own shutdown every pending timer is dropped anyway.
     */
    if (t->timer != 0 && !is_shutdown(reason))
        gs_cancel_timer(gs_server_runtime(self), t->timer, NULL);
    free(t);
}

/* What format_state shows, {"count", "interval_ms", "step"}; dump_state adds the timer. */
static json_t *ticker_json(const ticker_t *t)
{
    return json_pack("{sIsIsI}", "count", t->count, "interval_ms", t->interval_ms, "step", t->step);
}

static json_t *ticker_format_state(gs_server_t *self, void *state)
{
    (void)self;
    return ticker_json(state);
}

static json_t *ticker_dump_state(gs_server_t *self, void *state, json_t **reason)
{
    const ticker_t *t = state;
    json_t *j = ticker_json(t);
    (void)self;

    /* References count up from 1 and never come near 2^63, so one fits a JSON integer. */
    if (j != NULL && json_object_set_new(j, "timer", json_integer((json_int_t)t->timer)) != 0) {
        json_decref(j);
        j = NULL;
    }
    return gs__stored_dump(j, reason);
}

/*
 * The stored ticker, without scheduling the stored tick again (see the top of the file). On
 * a rollback the current state is reused in place: once every field was read, nothing can
 * fail.
 */
static int ticker_restore(gs_server_t *self, json_t *stored, void **state, json_t **reason)
{
    static const char *const fields[] = {"count", "interval_ms", "step", "timer", NULL};
    ticker_t read;
    json_int_t timer;

    if (gs__stored_fields(stored, fields, reason) < 0 ||
        gs__stored_int(stored, "count", GS_JSON_INT_MIN, GS_JSON_INT_MAX, &read.count, reason) <
            0 ||
        gs__stored_int(stored, "interval_ms", TICKER_MIN_MS, TICKER_MAX_MS, &read.interval_ms,
                       reason) < 0 ||
        gs__stored_int(stored, "step", GS_JSON_INT_MIN, GS_JSON_INT_MAX, &read.step, reason) < 0 ||
        gs__stored_int(stored, "timer", 0, GS_JSON_INT_MAX, &timer, reason) < 0)
        return -1;
    read.timer = (gs_timer_ref_t)timer;
    ticker_t *t = *state;
    if (t != NULL) {
        *t = read; /* a rollback: the committed state, timer and all */
        return 0;
    }
    if ((t = malloc(sizeof(*t))) == NULL) {
        *reason = json_string(gs_err_name(GS_ENOMEM));
        return -1;
    }
    *t = read;
    /* No tick stored: start a new chain, or the restored ticker would never tick. */
    int rc = t->timer == 0 ? ticker_schedule(self, t) : 0;
    if (rc < 0) {
        free(t);
        *reason = json_string(gs_err_name(rc));
        return -1;
    }
    *state = t;
    return 0;
}

static const gs_message_doc_t ticker_messages[] = {
    {"call", "\"get_count\"", "Reply with the count, an integer."},
    {"info", "\"tick\"",
     "Add step to the count and restart the interval (the timer sends this itself)."},
    {NULL, NULL, NULL},
};

const gs_behaviour_t gs_builtin_ticker = {
    .name = "ticker",
    .description = "IncrementingCounter and DecrementingCounter from the Elixir GenServer "
                   "lessons: adds step every interval_ms (Process.send_after/3).",
    .args_doc = "{\"interval_ms\": 1000, \"step\": 1}",
    .messages = ticker_messages,
    .init = ticker_init,
    .handle_call = ticker_handle_call,
    .handle_cast = gs_ignore_message,
    .handle_info = ticker_handle_info,
    .terminate = ticker_terminate,
    .format_state = ticker_format_state,
    .dump_state = ticker_dump_state,
    .restore = ticker_restore,
};
