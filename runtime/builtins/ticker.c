/*
 * ticker.c: the seed's IncrementingCounter and DecrementingCounter, a count that changes on
 * its own, driven by a timer message the server sends itself.
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
 */
#include <stdlib.h>

#include <genserv/builtins.h>
#include <genserv/message.h>

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

static void ticker_terminate(gs_server_t *self, json_t *reason, void *state)
{
    ticker_t *t = state;
    (void)reason;
    /* The runtime would drop the tick anyway; cancelling keeps the timer counters honest. */
    if (t->timer != 0)
        gs_cancel_timer(gs_server_runtime(self), t->timer, NULL);
    free(t);
}

static json_t *ticker_format_state(gs_server_t *self, void *state)
{
    const ticker_t *t = state;
    (void)self;
    return json_pack("{sIsIsI}", "count", t->count, "interval_ms", t->interval_ms, "step", t->step);
}

static const gs_message_doc_t ticker_messages[] = {
    {"call", "\"get_count\"", "Reply with the count, an integer."},
    {"info", "\"tick\"",
     "Add step to the count and restart the interval (the timer sends this itself)."},
    {NULL, NULL, NULL},
};

const gs_behaviour_t gs_builtin_ticker = {
    .name = "ticker",
    .description = "The seed's Incrementing/DecrementingCounter: adds step every interval_ms.",
    .args_doc = "{\"interval_ms\": 1000, \"step\": 1}",
    .messages = ticker_messages,
    .init = ticker_init,
    .handle_call = ticker_handle_call,
    .handle_cast = gs_ignore_message,
    .handle_info = ticker_handle_info,
    .terminate = ticker_terminate,
    .format_state = ticker_format_state,
};
