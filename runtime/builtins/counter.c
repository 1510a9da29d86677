/*
 * counter.c: Counter from the Elixir GenServer lessons, the smallest useful GenServer.
 *
 * Elixir:
 *   def handle_cast(:increment, count), do: {:noreply, count + 1}
 *   def handle_call(:get_count, _from, count), do: {:reply, count, count}
 *
 * Here: cast "increment" / ["increment", n] / "decrement" / ["decrement", n], call
 * "get_count" -> the integer. Init args: null or {"initial": n}. State JSON: {"count": n}.
 * :sys.replace_state takes the same shape, {"count": n}, and refuses anything else.
 * A step that would overflow the count is ignored rather than wrapped.
 *
 * Durable: the stored state is the shape format_state shows and replace_state takes,
 * {"count": n}, built and read by the same two functions (counter_json, counter_read), so
 * the three can never disagree. restore refuses any other shape.
 */
#include <stdlib.h>

#include <genserv/builtins.h>
#include <genserv/message.h>

#include "builtins_internal.h"

typedef struct counter_s {
    json_int_t count;
} counter_t;

static int counter_init(gs_server_t *self, json_t *args, void **state, json_t **reason)
{
    static const char *const allowed[] = {"initial", NULL};
    json_int_t initial = 0;
    (void)self;

    if (gs_args_check(args, allowed, reason) < 0 ||
        gs_args_int(args, "initial", GS_JSON_INT_MIN, GS_JSON_INT_MAX, &initial, reason) < 0)
        return -1;
    counter_t *c = malloc(sizeof(*c));
    if (c == NULL) {
        *reason = json_string(gs_err_name(GS_ENOMEM));
        return -1;
    }
    c->count = initial;
    *state = c;
    return 0;
}

/*
 * Read an increment or decrement message into the signed step it stands for. Returns false
 * for anything else, including a step that is not an integer or cannot be negated.
 */
static bool counter_step(const json_t *msg, json_int_t *step)
{
    json_int_t n;
    if (gs_msg_is_atom(msg, "increment")) {
        *step = 1;
        return true;
    }
    if (gs_msg_is_atom(msg, "decrement")) {
        *step = -1;
        return true;
    }
    if (gs_msg_is_tuple(msg, "increment", 2) &&
        gs_json_int_in(json_array_get(msg, 1), GS_JSON_INT_MIN, GS_JSON_INT_MAX, &n)) {
        *step = n;
        return true;
    }
    /* The minimum cannot be negated without overflow, so it is not a valid decrement. */
    if (gs_msg_is_tuple(msg, "decrement", 2) &&
        gs_json_int_in(json_array_get(msg, 1), -GS_JSON_INT_MAX, GS_JSON_INT_MAX, &n)) {
        *step = -n;
        return true;
    }
    return false;
}

static gs_result_t counter_handle_cast(gs_server_t *self, void *state, json_t *msg)
{
    counter_t *c = state;
    json_int_t step, sum;
    (void)self;

    /* Unknown casts and bad steps are ignored: there is nobody to answer. */
    if (counter_step(msg, &step) && gs_json_int_add(c->count, step, &sum))
        c->count = sum;
    return GS_NOREPLY;
}

static gs_result_t counter_handle_call(gs_server_t *self, void *state, json_t *msg, gs_from_t from)
{
    counter_t *c = state;
    (void)self;
    (void)from;

    if (gs_msg_is_atom(msg, "get_count"))
        return GS_REPLY(json_integer(c->count));
    return gs_reply_unknown_message();
}

static void counter_terminate(gs_server_t *self, json_t *reason, void *state)
{
    (void)self;
    (void)reason;
    free(state);
}

/* The state as JSON, {"count": n}: what format_state shows and dump_state stores. */
static json_t *counter_json(const counter_t *c)
{
    return json_pack("{sI}", "count", (json_int_t)c->count);
}

/*
 * Read {"count": integer}, and nothing else, into *count: the shape counter_json builds, given
 * back by a client (replace_state) or by the store (restore). tag names the refusal, so that
 * each says where the bad state came from.
 */
static int counter_read(const json_t *j, const char *tag, json_int_t *count, json_t **reason)
{
    json_t *v = json_object_get(j, "count");
    if (!json_is_integer(v) || json_object_size(j) != 1) {
        *reason = json_pack("[s, s]", tag, "expected {\"count\": integer}");
        return -1;
    }
    *count = json_integer_value(v);
    return 0;
}

static json_t *counter_format_state(gs_server_t *self, void *state)
{
    (void)self;
    return counter_json(state);
}

/* :sys.replace_state: the shape format_state shows, and nothing else. */
static int counter_replace_state(gs_server_t *self, void **state, json_t *next, json_t **reason)
{
    counter_t *c = *state;
    json_int_t count;
    (void)self;

    if (counter_read(next, "bad_state", &count, reason) < 0)
        return -1;
    c->count = count;
    return 0;
}

static json_t *counter_dump_state(gs_server_t *self, void *state, json_t **reason)
{
    (void)self;
    return gs__stored_dump(counter_json(state), reason);
}

/*
 * The stored count, read like a replaced one. On a rollback the current state is reused in
 * place: once the count was read nothing can fail, so the old state is never lost half-way.
 */
static int counter_restore(gs_server_t *self, json_t *stored, void **state, json_t **reason)
{
    json_int_t count;
    (void)self;

    if (counter_read(stored, "bad_stored_state", &count, reason) < 0)
        return -1;
    counter_t *c = *state;
    if (c == NULL && (c = malloc(sizeof(*c))) == NULL) {
        *reason = json_string(gs_err_name(GS_ENOMEM));
        return -1;
    }
    c->count = count;
    *state = c;
    return 0;
}

static const gs_message_doc_t counter_messages[] = {
    {"cast", "\"increment\"", "Add one to the count."},
    {"cast", "[\"increment\", 5]", "Add n (an integer) to the count."},
    {"cast", "\"decrement\"", "Subtract one from the count."},
    {"cast", "[\"decrement\", 5]", "Subtract n (an integer) from the count."},
    {"call", "\"get_count\"", "Reply with the count, an integer."},
    {NULL, NULL, NULL},
};

const gs_behaviour_t gs_builtin_counter = {
    .name = "counter",
    .description = "Counter, the first GenServer of the Elixir GenServer lessons: casts change a "
                   "count, a call reads it.",
    .args_doc = "{\"initial\": 0}",
    .messages = counter_messages,
    .init = counter_init,
    .handle_call = counter_handle_call,
    .handle_cast = counter_handle_cast,
    .handle_info = gs_ignore_message,
    .terminate = counter_terminate,
    .format_state = counter_format_state,
    .replace_state = counter_replace_state,
    .dump_state = counter_dump_state,
    .restore = counter_restore,
};
