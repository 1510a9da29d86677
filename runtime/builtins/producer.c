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
 *
 * Durable: the stored state is what format_state shows plus what a restore needs to go on,
 * {"target", "id", "sent", "acked", "errors", "timeout_ms", "retry_ms", "next"}, next being
 * the number the next push carries (the settings are part of the stored state: a restored
 * producer keeps them, whatever the args of the new start). The push in flight (its tag) is
 * not stored, because its answer can only ever reach the process that asked: at a start,
 * restore makes a fresh start of it and sends itself a "kick", as init does (a plain message
 * is not stored; a retry timer is, and is armed again by the runtime, but a kick that finds a
 * push in flight is ignored), so the push that was in flight when genserv stopped is made
 * again with the same number: at least once, never skipped. On a rollback, in the same
 * process, the push in flight is real and its answer will come, so restore keeps the current
 * tag and in-flight flag rather than the stored ones, which may name an answer already
 * consumed.
 */
#include <stdlib.h>
#include <string.h>

#include <genserv/builtins.h>
#include <genserv/message.h>

#include "builtins_internal.h"

#define PRODUCER_NAME_MAX 255
#define PRODUCER_MAX_MS   3600000 /* the longest timeout_ms and retry_ms: one hour */

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

/*
 * Why name (borrowed; len bytes, or NULL when the value given is not a string) cannot be the
 * target of the producer self, or NULL when it can. Init's target and the stored one alike.
 */
static const char *producer_bad_target(gs_server_t *self, const char *name, size_t len)
{
    if (name == NULL || len == 0 || len > PRODUCER_NAME_MAX || strlen(name) != len)
        return "target must be a server name of 1 to 255 bytes";
    /* Pushing to itself could only ever fail with calling_self: refuse it up front. */
    if (strcmp(name, gs_server_name(self)) == 0)
        return "a producer cannot target itself";
    return NULL;
}

/*
 * Make *state a producer with the fields of `fields`, its own copy of target (borrowed) and
 * nothing in flight, and set it going: the first push is made from handle_info, like the
 * rest, not from here. Shared by init and a restore at start. 0, or -1 with *reason set.
 */
static int producer_start(gs_server_t *self, const producer_t *fields, const char *target,
                          void **state, json_t **reason)
{
    producer_t *p = malloc(sizeof(*p));
    if (p == NULL) {
        *reason = json_string(gs_err_name(GS_ENOMEM));
        return -1;
    }
    *p = *fields;
    p->tag = 0;
    p->in_flight = false;
    p->target = strdup(target);
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

static int producer_init(gs_server_t *self, json_t *args, void **state, json_t **reason)
{
    static const char *const allowed[] = {"target", "id", "timeout_ms", "retry_ms", NULL};
    producer_t init = {.id = 0, .timeout_ms = GS_DEFAULT_TIMEOUT_MS, .retry_ms = 100, .next = 1};
    json_t *t = json_is_object(args) ? json_object_get(args, "target") : NULL;
    /* The default is checked too: a producer may well be named "batcher". */
    const char *target = t != NULL ? json_string_value(t) : "batcher", *why;
    size_t len = t != NULL ? json_string_length(t) : strlen(target);

    if (gs_args_check(args, allowed, reason) < 0 ||
        gs_args_int(args, "id", GS_JSON_INT_MIN, GS_JSON_INT_MAX, &init.id, reason) < 0 ||
        gs_args_int(args, "timeout_ms", 1, PRODUCER_MAX_MS, &init.timeout_ms, reason) < 0 ||
        gs_args_int(args, "retry_ms", 1, PRODUCER_MAX_MS, &init.retry_ms, reason) < 0)
        return -1;
    if ((why = producer_bad_target(self, target, len)) != NULL) {
        *reason = gs_bad_args(why);
        return -1;
    }
    return producer_start(self, &init, target, state, reason);
}

/* Counters saturate rather than overflow: a stored state may start them anywhere. */
static void saturating_inc(json_int_t *n)
{
    if (*n < GS_JSON_INT_MAX)
        (*n)++;
}

static void producer_retry_later(gs_server_t *self, producer_t *p)
{
    saturating_inc(&p->errors);
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
    saturating_inc(&p->sent);
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
            saturating_inc(&p->acked);
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

/*
 * The producer as JSON: {"target", "id", "sent", "acked", "errors"}, what "stats" and
 * format_state show; with full (dump_state), also what a restore needs to go on: the
 * settings and the number of the next push.
 */
static json_t *producer_json(const producer_t *p, bool full)
{
    json_t *j = json_pack("{sssIsIsIsI}", "target", p->target, "id", p->id, "sent", p->sent,
                          "acked", p->acked, "errors", p->errors);
    if (j != NULL && full &&
        json_object_update_new(j, json_pack("{sIsIsI}", "timeout_ms", p->timeout_ms, "retry_ms",
                                            p->retry_ms, "next", p->next)) != 0) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

static gs_result_t producer_handle_call(gs_server_t *self, void *state, json_t *msg, gs_from_t from)
{
    (void)self;
    (void)from;
    if (gs_msg_is_atom(msg, "stats"))
        return GS_REPLY(producer_json(state, false));
    return gs_reply_unknown_message();
}

static void producer_free(producer_t *p)
{
    free(p->target);
    free(p);
}

static void producer_terminate(gs_server_t *self, json_t *reason, void *state)
{
    (void)self;
    (void)reason;
    /* A reply still in flight is dropped by the runtime once this incarnation is gone. */
    producer_free(state);
}

static json_t *producer_format_state(gs_server_t *self, void *state)
{
    (void)self;
    return producer_json(state, false);
}

static json_t *producer_dump_state(gs_server_t *self, void *state, json_t **reason)
{
    (void)self;
    return gs__stored_dump(producer_json(state, true), reason);
}

/*
 * The stored producer (see the top of the file): at start (*state NULL) a fresh one, set
 * going as init sets it going; on a rollback the stored fields with the current push in
 * flight, the current state freed only once the new one is complete.
 */
static int producer_restore(gs_server_t *self, json_t *stored, void **state, json_t **reason)
{
    static const char *const fields[] = {"target",     "id",       "sent", "acked", "errors",
                                         "timeout_ms", "retry_ms", "next", NULL};
    producer_t read = {0};
    json_t *t = json_object_get(stored, "target");
    const char *target = json_string_value(t), *why;

    if (gs__stored_fields(stored, fields, reason) < 0)
        return -1;
    if ((why = producer_bad_target(self, target, json_string_length(t))) != NULL) {
        *reason = gs__stored_refused(why);
        return -1;
    }
    if (gs__stored_int(stored, "id", GS_JSON_INT_MIN, GS_JSON_INT_MAX, &read.id, reason) < 0 ||
        gs__stored_int(stored, "sent", 0, GS_JSON_INT_MAX, &read.sent, reason) < 0 ||
        gs__stored_int(stored, "acked", 0, GS_JSON_INT_MAX, &read.acked, reason) < 0 ||
        gs__stored_int(stored, "errors", 0, GS_JSON_INT_MAX, &read.errors, reason) < 0 ||
        gs__stored_int(stored, "timeout_ms", 1, PRODUCER_MAX_MS, &read.timeout_ms, reason) < 0 ||
        gs__stored_int(stored, "retry_ms", 1, PRODUCER_MAX_MS, &read.retry_ms, reason) < 0 ||
        gs__stored_int(stored, "next", 1, GS_JSON_INT_MAX, &read.next, reason) < 0)
        return -1;
    /* acked is not checked against sent: after a rollback that kept a push in flight which
     * the stored state had not counted, its ack may take acked past sent. */
    if (*state == NULL)
        return producer_start(self, &read, target, state, reason);

    producer_t *old = *state, *p = malloc(sizeof(*p));
    if (p == NULL || (read.target = strdup(target)) == NULL) {
        free(p);
        *reason = json_string(gs_err_name(GS_ENOMEM));
        return -1;
    }
    *p = read;
    p->tag = old->tag;
    p->in_flight = old->in_flight;
    producer_free(old);
    *state = p;
    return 0;
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
    .description = "Blocky.Producer from the deferred-reply (GenServer.reply/2) article: pushes 1, "
                   "2, 3... to a batcher, one reply at a time.",
    .args_doc = "{\"target\": \"batcher\", \"id\": 1}",
    .messages = producer_messages,
    .init = producer_init,
    .handle_call = producer_handle_call,
    .handle_cast = gs_ignore_message,
    .handle_info = producer_handle_info,
    .terminate = producer_terminate,
    .format_state = producer_format_state,
    .dump_state = producer_dump_state,
    .restore = producer_restore,
};
