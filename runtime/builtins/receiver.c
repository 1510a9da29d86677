/*
 * receiver.c: Receiver from the Elixir GenServer lessons, a server that only handles plain
 * messages.
 *
 * Elixir:
 *   def handle_info(msg, state) do
 *     IO.inspect(msg, label: "received")
 *     {:noreply, state}
 *   end
 *
 * Here every message sent with gs_send (POST /send, send_after) reaches handle_info, which
 * counts it and keeps the last ten, oldest first, instead of printing it. Calls: "received"
 * -> the count, "last" -> the kept messages. State JSON: {"received": n, "last": [...]}.
 * What it keeps is bounded in bytes too (gs_json_size, RECEIVER_MAX_BYTES in all): the oldest
 * kept messages make room, and one larger than that on its own is counted but not kept.
 *
 * Durable: the stored state is what format_state shows, {"received": n, "last": [...]}, built
 * by one function for both (receiver_json). restore refuses a stored state the receiver could
 * not have reached: more than ten messages kept, or more bytes than it keeps, or fewer
 * received than kept.
 */
#include <stdlib.h>

#include <genserv/builtins.h>
#include <genserv/message.h>

#include "builtins_internal.h"

#define RECEIVER_KEEP      10
#define RECEIVER_MAX_BYTES (256 * 1024)

typedef struct receiver_s {
    json_int_t received;
    json_t *last; /* owned array, oldest first, at most RECEIVER_KEEP messages */
    size_t bytes; /* gs_json_size of last's messages, at most RECEIVER_MAX_BYTES */
} receiver_t;

static int receiver_init(gs_server_t *self, json_t *args, void **state, json_t **reason)
{
    static const char *const allowed[] = {NULL};
    (void)self;

    if (gs_args_check(args, allowed, reason) < 0)
        return -1;
    receiver_t *r = malloc(sizeof(*r));
    if (r == NULL || (r->last = json_array()) == NULL) {
        free(r);
        *reason = json_string(gs_err_name(GS_ENOMEM));
        return -1;
    }
    r->received = 0;
    r->bytes = 0;
    *state = r;
    return 0;
}

static gs_result_t receiver_handle_info(gs_server_t *self, void *state, json_t *msg)
{
    receiver_t *r = state;
    (void)self;

    /* Saturate rather than overflow: nobody sends 2^63 messages, but a fuzzer may try. */
    if (r->received < GS_JSON_INT_MAX)
        r->received++;
    size_t size = gs_json_size(msg);
    if (size > RECEIVER_MAX_BYTES)
        return GS_NOREPLY; /* counted, not kept */
    /* The message is never mutated by anyone, so keeping a reference is enough. */
    if (json_array_append(r->last, msg) != 0)
        return GS_NOREPLY;
    r->bytes += size;
    while (json_array_size(r->last) > RECEIVER_KEEP || r->bytes > RECEIVER_MAX_BYTES) {
        r->bytes -= gs_json_size(json_array_get(r->last, 0));
        json_array_remove(r->last, 0);
    }
    return GS_NOREPLY;
}

static gs_result_t receiver_handle_call(gs_server_t *self, void *state, json_t *msg, gs_from_t from)
{
    receiver_t *r = state;
    (void)self;
    (void)from;

    if (gs_msg_is_atom(msg, "received"))
        return GS_REPLY(json_integer(r->received));
    /* A copy: the reply is serialised on another thread while this array keeps changing. */
    if (gs_msg_is_atom(msg, "last"))
        return GS_REPLY(json_deep_copy(r->last));
    return gs_reply_unknown_message();
}

static void receiver_free(receiver_t *r)
{
    json_decref(r->last);
    free(r);
}

static void receiver_terminate(gs_server_t *self, json_t *reason, void *state)
{
    (void)self;
    (void)reason;
    receiver_free(state);
}

/*
 * The state as JSON, {"received": n, "last": [...]}, for format_state (deep) and dump_state
 * (not deep). Either way the array is a new one, since the next message changes ours. What
 * format_state returns is serialised on another thread, so its messages are copied too;
 * dump_state's is serialised at once on this thread, and shares the messages, which nobody
 * mutates.
 */
static json_t *receiver_json(const receiver_t *r, bool deep)
{
    return json_pack("{sIso}", "received", r->received, "last",
                     deep ? json_deep_copy(r->last) : json_copy(r->last));
}

static json_t *receiver_format_state(gs_server_t *self, void *state)
{
    (void)self;
    return receiver_json(state, true);
}

static json_t *receiver_dump_state(gs_server_t *self, void *state, json_t **reason)
{
    (void)self;
    return gs__stored_dump(receiver_json(state, false), reason);
}

/* On a rollback the current state is freed only once the new one is complete. */
static int receiver_restore(gs_server_t *self, json_t *stored, void **state, json_t **reason)
{
    static const char *const fields[] = {"received", "last", NULL};
    json_int_t received;
    json_t *last = NULL;
    receiver_t *r = NULL;
    size_t bytes = 0;
    int rc = -1;
    (void)self;

    if (gs__stored_fields(stored, fields, reason) < 0 ||
        gs__stored_int(stored, "received", 0, GS_JSON_INT_MAX, &received, reason) < 0 ||
        gs__stored_array(stored, "last", RECEIVER_KEEP, RECEIVER_MAX_BYTES, &last, &bytes, reason) <
            0)
        goto out;
    /* Every kept message was counted first (the count saturates; it never drops). */
    if ((size_t)received < json_array_size(last)) {
        *reason = gs__stored_refused("received is less than the messages kept in last");
        goto out;
    }
    if ((r = malloc(sizeof(*r))) == NULL) {
        *reason = json_string(gs_err_name(GS_ENOMEM));
        goto out;
    }
    *r = (receiver_t){.received = received, .last = last, .bytes = bytes};
    last = NULL; /* the receiver's now */
    if (*state != NULL)
        receiver_free(*state);
    *state = r;
    rc = 0;
out:
    json_decref(last);
    return rc;
}

static const gs_message_doc_t receiver_messages[] = {
    {"info", "\"hello\"", "Any message: counted, and kept among the last ten."},
    {"info", "[\"greeting\", \"hello\"]", "Tuples too: every plain message reaches handle_info."},
    {"call", "\"received\"", "Reply with how many messages have arrived."},
    {"call", "\"last\"", "Reply with the last ten messages, oldest first."},
    {NULL, NULL, NULL},
};

const gs_behaviour_t gs_builtin_receiver = {
    .name = "receiver",
    .description = "Receiver from the Elixir GenServer lessons: counts and keeps the plain "
                   "messages sent to it (handle_info).",
    .args_doc = NULL,
    .messages = receiver_messages,
    .init = receiver_init,
    .handle_call = receiver_handle_call,
    .handle_cast = gs_ignore_message,
    .handle_info = receiver_handle_info,
    .terminate = receiver_terminate,
    .format_state = receiver_format_state,
    .dump_state = receiver_dump_state,
    .restore = receiver_restore,
};
