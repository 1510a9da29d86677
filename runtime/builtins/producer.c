/*
 * producer.c: Blocky.Producer from the deferred-reply article, a server that pushes numbers
 * to a batcher one at a time, each push waiting for the previous one's reply.
 *
 * Elixir (in outline):
 *   def init(state) do                  # state: %{id: id, number: 1}
 *     send(self(), :produce)
 *     {:ok, state}
 *   end
 *   def handle_info(:produce, %{number: number} = state) do
 *     send(self(), :produce)
 *     Blocky.Consumer.push(number)      # GenServer.call: waits for the batch
 *     {:noreply, %{state | number: number + 1}}
 *   end
 *
 * A blocking GenServer.call inside a handler would block a scheduler thread here, so the
 * producer uses the asynchronous gs_send_request instead: the outcome comes back to its own
 * handle_info as ["gs_reply", tag, reply] or ["gs_error", tag, code, reason], and only then
 * does it push the next number. Its "kick" plays the part of Elixir's :produce. On an error
 * (the target is missing, busy or timed out) it tries again after retry_ms.
 *
 * Init args: {"target": "batcher", "id": 0, "timeout_ms": 5000, "retry_ms": 100}. It pushes
 * ["push", 1], ["push", 2], ... forever, until stopped. State JSON: {"target", "id", "sent",
 * "acked", "errors"}.
 *
 * At most one push is ever outstanding: a "kick" sent by hand while one is in flight, or a
 * reply whose tag is not the current one (a stale or forged answer), is ignored.
 */
#include <stdlib.h>
#include <string.h>

#include <genserv/builtins.h>
#include <genserv/message.h>

#define PRODUCER_NAME_MAX 255

typedef struct producer_s {
    char *target;
    json_int_t id;
    json_int_t timeout_ms;
    json_int_t retry_ms;

    json_int_t next; /* the number the next push carries */
    json_int_t tag;  /* the tag of the push in flight */
    bool in_flight;

    json_int_t sent;
    json_int_t acked;
    json_int_t errors;
} producer_t;

static int producer_init(gs_server_t *self, json_t *args, void **state, json_t **reason)
{
    static const char *const allowed[] = {"target", "id", "timeout_ms", "retry_ms", NULL};
    producer_t init = {.id = 0, .timeout_ms = GS_DEFAULT_TIMEOUT_MS, .retry_ms = 100, .next = 1};
    const char *target = "batcher";

    if (gs_args_check(args, allowed, reason) < 0 ||
        gs_args_int(args, "id", GS_JSON_INT_MIN, GS_JSON_INT_MAX, &init.id, reason) < 0 ||
        gs_args_int(args, "timeout_ms", 1, 3600000, &init.timeout_ms, reason) < 0 ||
        gs_args_int(args, "retry_ms", 1, 3600000, &init.retry_ms, reason) < 0)
        return -1;
    json_t *t = json_is_object(args) ? json_object_get(args, "target") : NULL;
    if (t != NULL) {
        size_t len = json_string_length(t);
        if (!json_is_string(t) || len == 0 || len > PRODUCER_NAME_MAX ||
            strlen(json_string_value(t)) != len) {
            *reason = gs_bad_args("target must be a server name of 1 to 255 bytes");
            return -1;
        }
        target = json_string_value(t);
    }
    /* Pushing to itself could only ever fail with calling_self: refuse it up front. */
    if (strcmp(target, gs_server_name(self)) == 0) {
        *reason = gs_bad_args("a producer cannot target itself");
        return -1;
    }

    producer_t *p = malloc(sizeof(*p));
    if (p == NULL) {
        *reason = json_string(gs_err_name(GS_ENOMEM));
        return -1;
    }
    *p = init;
    p->target = strdup(target);
    /* The first push is made from handle_info, like the rest, not from inside init. */
    int rc = p->target != NULL ? gs_send_server(self, json_string("kick")) : GS_ENOMEM;
    if (rc < 0) {
        free(p->target);
        free(p);
        *reason = json_string(gs_err_name(rc));
        return -1;
    }
    *state = p;
    return 0;
}

static void producer_retry_later(gs_server_t *self, producer_t *p)
{
    p->errors++;
    /* If even the timer cannot be set (at shutdown), the producer simply goes quiet. */
    gs_send_after_server(self, json_string("kick"), (uint64_t)p->retry_ms, NULL);
}

static void producer_push(gs_server_t *self, producer_t *p)
{
    json_t *msg = json_pack("[sI]", "push", p->next);
    p->tag++;
    int rc = gs_send_request(self, p->target, msg, (int)p->timeout_ms, json_integer(p->tag));
    if (rc < 0) {
        producer_retry_later(self, p);
        return;
    }
    p->in_flight = true;
    p->sent++;
}

/* True when msg is [kind, tag, ...] of the given arity and tag is the push in flight. */
static bool producer_is_answer(const producer_t *p, const json_t *msg, const char *kind,
                               size_t arity)
{
    json_int_t tag;
    return p->in_flight && gs_msg_is_tuple(msg, kind, arity) &&
           gs_json_int_in(json_array_get(msg, 1), p->tag, p->tag, &tag);
}

static gs_result_t producer_handle_info(gs_server_t *self, void *state, json_t *msg)
{
    producer_t *p = state;

    if (gs_msg_is_atom(msg, "kick")) {
        if (!p->in_flight)
            producer_push(self, p);
    } else if (producer_is_answer(p, msg, "gs_reply", 3)) {
        p->in_flight = false;
        /* Anything but "ok" (say, ["error", "unknown_message"]) is a failed push. */
        if (!gs_msg_is_atom(json_array_get(msg, 2), "ok")) {
            producer_retry_later(self, p);
        } else {
            p->acked++;
            /* After 2^63 - 1 pushes the numbers start again from one rather than overflow. */
            p->next = p->next < GS_JSON_INT_MAX ? p->next + 1 : 1;
            producer_push(self, p);
        }
    } else if (producer_is_answer(p, msg, "gs_error", 4)) {
        p->in_flight = false;
        producer_retry_later(self, p);
    }
    return GS_NOREPLY;
}

static json_t *producer_stats(const producer_t *p)
{
    return json_pack("{sssIsIsIsI}", "target", p->target, "id", p->id, "sent", p->sent, "acked",
                     p->acked, "errors", p->errors);
}

static gs_result_t producer_handle_call(gs_server_t *self, void *state, json_t *msg, gs_from_t from)
{
    (void)self;
    (void)from;
    if (gs_msg_is_atom(msg, "stats"))
        return GS_REPLY(producer_stats(state));
    return gs_reply_unknown_message();
}

static void producer_terminate(gs_server_t *self, json_t *reason, void *state)
{
    producer_t *p = state;
    (void)self;
    (void)reason;
    /* A reply still in flight is dropped by the runtime once this incarnation is gone. */
    free(p->target);
    free(p);
}

static json_t *producer_format_state(gs_server_t *self, void *state)
{
    (void)self;
    return producer_stats(state);
}

static const gs_message_doc_t producer_messages[] = {
    {"call", "\"stats\"", "Reply with the state: target, id, pushes sent, acked and failed."},
    {"info", "\"kick\"", "Push the next number unless a push is already in flight."},
    {"info", "[\"gs_reply\", 1, \"ok\"]",
     "The target's answer to push number tag (sent by the runtime): push the next number."},
    {"info", "[\"gs_error\", 1, \"timeout\", null]",
     "The push failed (sent by the runtime): count the error and retry after retry_ms."},
    {NULL, NULL, NULL},
};

const gs_behaviour_t gs_builtin_producer = {
    .name = "producer",
    .description = "Blocky.Producer: pushes 1, 2, 3... to a batcher, one reply at a time.",
    .args_doc = "{\"target\": \"batcher\", \"id\": 1}",
    .messages = producer_messages,
    .init = producer_init,
    .handle_call = producer_handle_call,
    .handle_cast = gs_ignore_message,
    .handle_info = producer_handle_info,
    .terminate = producer_terminate,
    .format_state = producer_format_state,
};
