/*
 * batcher.c: Blocky.Consumer from the deferred-reply article, which shows how
 * GenServer.reply/2 turns a server into natural backpressure.
 *
 * Elixir (in outline):
 *   def push(number), do: GenServer.call(__MODULE__, {:push, number})
 *   def handle_call({:push, number}, from, batch), do: {:noreply, [{from, number} | batch]}
 *   def handle_info(:aggregate, batch) do
 *     sum = batch |> Enum.map(fn {_from, n} -> n end) |> Enum.sum()
 *     Enum.each(batch, fn {from, _n} -> GenServer.reply(from, :ok) end)
 *     Process.send_after(self(), :aggregate, @interval)
 *     {:noreply, []}
 *   end
 *
 * A producer's push is held without a reply until the next flush, so each producer has at
 * most one number in each batch: ten producers make batches of exactly ten. With
 * {"reply_immediately": true} (the article's version without backpressure) every push is
 * answered at once, producers push as fast as they can, and batches grow far larger.
 *
 * API: call ["push", integer] -> "ok" (at the next flush, or at once); call "stats" -> the
 * state. Info "flush" is the self-scheduled timer. Init args: {"interval_ms": 1000,
 * "reply_immediately": false}. State JSON: {"last_batch_size", "last_batch_sum", "batches",
 * "total", "pending"}. An empty flush records nothing, so the figures describe real batches.
 *
 * Not durable (no dump_state or restore, so the runtime refuses to start it durable with
 * not_supported): the batch being filled is callers' `from`s held for a deferred reply, and
 * a call lives only in the process that holds it. After a restart nobody would wait for the
 * stored batch's "ok", and a call id stored and replied to by a later process could answer
 * somebody else's call there.
 */
#include <stdlib.h>

#include <genserv/builtins.h>
#include <genserv/message.h>

#define BATCHER_MIN_MS 1
#define BATCHER_MAX_MS 86400000
/* After a flush, a held-caller array grown past this is given back rather than kept. */
#define BATCHER_KEEP_CAPACITY 1024

typedef struct batcher_s {
    json_int_t interval_ms;
    bool reply_immediately;
    gs_timer_ref_t timer; /* the pending flush, or 0 */

    /* The batch being filled. */
    json_int_t pending;
    json_int_t pending_sum;
    gs_from_t *held; /* callers waiting for the flush (deferred mode only) */
    size_t held_len;
    size_t held_cap;

    /* What the flushes recorded. */
    json_int_t last_batch_size;
    json_int_t last_batch_sum;
    json_int_t batches;
    json_int_t total;
} batcher_t;

/* Exactly one flush timer is pending at a time, even when "flush" is also sent by hand. */
static int batcher_schedule(gs_server_t *self, batcher_t *b)
{
    if (b->timer != 0)
        gs_cancel_timer(gs_server_runtime(self), b->timer, NULL);
    b->timer = 0;
    return gs_send_after_server(self, json_string("flush"), (uint64_t)b->interval_ms, &b->timer);
}

static int batcher_init(gs_server_t *self, json_t *args, void **state, json_t **reason)
{
    static const char *const allowed[] = {"interval_ms", "reply_immediately", NULL};
    json_int_t interval_ms = 1000;
    bool reply_immediately = false;

    if (gs_args_check(args, allowed, reason) < 0 ||
        gs_args_int(args, "interval_ms", BATCHER_MIN_MS, BATCHER_MAX_MS, &interval_ms, reason) <
            0 ||
        gs_args_bool(args, "reply_immediately", &reply_immediately, reason) < 0)
        return -1;
    batcher_t *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        *reason = json_string(gs_err_name(GS_ENOMEM));
        return -1;
    }
    b->interval_ms = interval_ms;
    b->reply_immediately = reply_immediately;
    int rc = batcher_schedule(self, b);
    if (rc < 0) {
        free(b);
        *reason = json_string(gs_err_name(rc));
        return -1;
    }
    *state = b;
    return 0;
}

/* Keep a caller for the next flush. Returns false when out of memory. */
static bool batcher_hold(batcher_t *b, gs_from_t from)
{
    if (b->held_len == b->held_cap) {
        /* The number of held callers comes from outside, so growth fails softly. */
        size_t cap = b->held_cap != 0 ? b->held_cap * 2 : 16;
        gs_from_t *held = realloc(b->held, cap * sizeof(*held));
        if (held == NULL)
            return false;
        b->held = held;
        b->held_cap = cap;
    }
    b->held[b->held_len++] = from;
    return true;
}

static json_t *batcher_stats(const batcher_t *b)
{
    return json_pack("{sIsIsIsIsI}", "last_batch_size", b->last_batch_size, "last_batch_sum",
                     b->last_batch_sum, "batches", b->batches, "total", b->total, "pending",
                     b->pending);
}

static gs_result_t batcher_handle_call(gs_server_t *self, void *state, json_t *msg, gs_from_t from)
{
    batcher_t *b = state;
    json_int_t n, sum;
    (void)self;

    if (gs_msg_is_atom(msg, "stats"))
        return GS_REPLY(batcher_stats(b));
    if (!gs_msg_is_tuple(msg, "push", 2))
        return gs_reply_unknown_message();
    /* A number that would overflow the batch's sum is refused, not wrapped. */
    if (!gs_json_int_in(json_array_get(msg, 1), GS_JSON_INT_MIN, GS_JSON_INT_MAX, &n) ||
        !gs_json_int_add(b->pending_sum, n, &sum))
        return gs_reply_bad_argument();
    if (!b->reply_immediately && !batcher_hold(b, from))
        return GS_REPLY(gs_msg_error(gs_err_name(GS_ENOMEM)));
    b->pending_sum = sum;
    b->pending++;
    if (b->reply_immediately)
        return GS_REPLY(json_string("ok"));
    /* No reply: the caller waits for the flush, which is the backpressure. */
    return GS_NOREPLY;
}

static void batcher_flush(batcher_t *b)
{
    if (b->pending == 0)
        return;
    b->last_batch_size = b->pending;
    b->last_batch_sum = b->pending_sum;
    b->batches++;
    if (!gs_json_int_add(b->total, b->pending_sum, &b->total))
        b->total = b->pending_sum > 0 ? GS_JSON_INT_MAX : GS_JSON_INT_MIN;
    /* A caller that timed out meanwhile refuses its reply (GS_ENOCALL); that is fine. */
    for (size_t i = 0; i < b->held_len; i++)
        gs_reply(b->held[i], json_string("ok"));
    b->held_len = 0;
    if (b->held_cap > BATCHER_KEEP_CAPACITY) {
        free(b->held);
        b->held = NULL;
        b->held_cap = 0;
    }
    b->pending = 0;
    b->pending_sum = 0;
}

static gs_result_t batcher_handle_info(gs_server_t *self, void *state, json_t *msg)
{
    batcher_t *b = state;

    if (!gs_msg_is_atom(msg, "flush"))
        return GS_NOREPLY;
    batcher_flush(b);
    int rc = batcher_schedule(self, b);
    /* Without its next flush the batcher would hold its callers forever: crash instead. */
    if (rc < 0 && rc != GS_ESHUTDOWN)
        return GS_STOP(json_string(gs_err_name(rc)));
    return GS_NOREPLY;
}

static void batcher_terminate(gs_server_t *self, json_t *reason, void *state)
{
    batcher_t *b = state;
    (void)reason;
    /* Held callers are not answered here: the runtime fails every call a server still holds. */
    if (b->timer != 0)
        gs_cancel_timer(gs_server_runtime(self), b->timer, NULL);
    free(b->held);
    free(b);
}

static json_t *batcher_format_state(gs_server_t *self, void *state)
{
    (void)self;
    return batcher_stats(state);
}

static const gs_message_doc_t batcher_messages[] = {
    {"call", "[\"push\", 1]",
     "Add an integer to the batch; the reply \"ok\" comes at the next flush (or at once with "
     "reply_immediately)."},
    {"call", "\"stats\"", "Reply with the state: last batch size and sum, batches, total."},
    {"info", "\"flush\"", "Close the batch and answer its callers (the timer sends this)."},
    {NULL, NULL, NULL},
};

const gs_behaviour_t gs_builtin_batcher = {
    .name = "batcher",
    .description = "Blocky.Consumer from the deferred-reply (GenServer.reply/2) article: holds "
                   "pushes and answers them in batches every interval.",
    .args_doc = "{\"interval_ms\": 1000, \"reply_immediately\": false}",
    .messages = batcher_messages,
    .init = batcher_init,
    .handle_call = batcher_handle_call,
    .handle_cast = gs_ignore_message,
    .handle_info = batcher_handle_info,
    .terminate = batcher_terminate,
    .format_state = batcher_format_state,
};
