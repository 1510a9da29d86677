/*
 * embed.c: a C program that embeds the genserv runtime, built out of tree against an installed
 * genserv with nothing but its public headers and pkg-config:
 *
 *   cc -o embed examples/embed/embed.c $(pkg-config --cflags --libs genserv)
 *   ./embed            # prints "count 3" and "deferred 42", exits 0
 *
 * The Elixir lesson's Counter, plus a deferred reply: handle_call keeps `from` for ["later",
 * N] and a timer message answers it with GenServer.reply/2 (gs_reply) 10 ms afterwards.
 */
#include <genserv/genserv.h>
#include <genserv/message.h>

#include <stdio.h>
#include <stdlib.h>

typedef struct counter_s {
    json_int_t count;
    gs_from_t waiting; /* the caller of ["later", N], answered by a timer */
    json_int_t later;
} counter_t;

static int init(gs_server_t *self, json_t *args, void **state, json_t **reason)
{
    (void)self;
    (void)args;
    counter_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        *reason = json_string("out_of_memory");
        return -1;
    }
    *state = c;
    return 0;
}

static gs_result_t handle_cast(gs_server_t *self, void *state, json_t *msg)
{
    counter_t *c = state;
    (void)self;
    if (gs_msg_is_atom(msg, "increment"))
        c->count++;
    return GS_NOREPLY;
}

static gs_result_t handle_call(gs_server_t *self, void *state, json_t *msg, gs_from_t from)
{
    counter_t *c = state;
    json_int_t n;
    if (gs_msg_is_atom(msg, "get_count"))
        return GS_REPLY(json_integer(c->count));
    if (gs_msg_is_tuple(msg, "later", 2) &&
        gs_json_int_in(json_array_get(msg, 1), 0, GS_JSON_INT_MAX, &n)) {
        c->waiting = from; /* {:noreply, state}: the caller keeps waiting */
        c->later = n;
        gs_send_after_server(self, json_string("answer"), 10, NULL);
        return GS_NOREPLY;
    }
    return gs_reply_unknown_message();
}

static gs_result_t handle_info(gs_server_t *self, void *state, json_t *msg)
{
    counter_t *c = state;
    (void)self;
    if (gs_msg_is_atom(msg, "answer"))
        gs_reply(c->waiting, json_integer(c->later)); /* GenServer.reply(from, n) */
    return GS_NOREPLY;
}

static void terminate(gs_server_t *self, json_t *reason, void *state)
{
    (void)self;
    (void)reason;
    free(state);
}

static const gs_behaviour_t counter = {
    .name = "counter",
    .init = init,
    .handle_call = handle_call,
    .handle_cast = handle_cast,
    .handle_info = handle_info,
    .terminate = terminate,
};

static int check(const char *what, int rc)
{
    if (rc != 0)
        fprintf(stderr, "embed: %s: %s\n", what, gs_strerror(rc));
    return rc;
}

int main(void)
{
    gs_runtime_t *rt;
    json_t *reply = NULL;
    int status = 1;

    if (check("gs_runtime_create", gs_runtime_create(NULL, &rt)) != 0)
        return 1;
    if (check("gs_start", gs_start(rt, "counter", &counter, NULL, NULL, NULL)) != 0)
        goto out;
    for (int i = 0; i < 3; i++)
        gs_cast(rt, "counter", json_string("increment")); /* the message moves */
    if (check("get_count", gs_call(rt, "counter", json_string("get_count"), 5000, &reply)) != 0)
        goto out;
    printf("count %lld\n", (long long)json_integer_value(reply));
    json_decref(reply);
    if (check("later", gs_call(rt, "counter", json_pack("[si]", "later", 42), 5000, &reply)) != 0)
        goto out;
    printf("deferred %lld\n", (long long)json_integer_value(reply));
    json_decref(reply);
    status = 0;
out:
    gs_runtime_destroy(rt);
    return status;
}
