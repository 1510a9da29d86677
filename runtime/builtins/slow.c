/*
 * slow.c: the seed's SlowServer, rewritten so that slowness never blocks a thread.
 *
 * Elixir:
 *   def handle_call(:sleep, _from, state) do
 *     Process.sleep(1000)
 *     {:reply, "response!", state}
 *   end
 *
 * Process.sleep blocks only one cheap BEAM process; here it would block a scheduler thread
 * and every server queued behind it. So handle_call keeps the caller's `from`, asks for a
 * timer message to itself and returns no reply; when the timer fires, handle_info answers
 * that caller with gs_reply. Meanwhile the server keeps handling other messages, so many
 * callers sleep at once and each is answered after its own delay.
 *
 * API: call "sleep" (1000 ms) or ["sleep", ms] -> "response!" after ms. State JSON:
 * {"pending": callers still asleep, "served": callers answered}.
 *
 * The timer message carries a number of our own, never the caller's from id: a forged
 * ["wake", n] sent over HTTP can at worst wake one of our own sleepers early, never answer a
 * call that belongs to another server.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "builtins.h"
#include "builtins_internal.h"

#define SLOW_DEFAULT_MS 1000
#define SLOW_MAX_MS     3600000 /* one hour: anything longer is surely a mistake */

typedef struct slow_s {
    json_t *sleepers; /* owned object: our sequence number (decimal) -> the caller's from id */
    uint64_t next_seq;
    json_int_t served;
} slow_t;

static int slow_init(gs_server_t *self, json_t *args, void **state, json_t **reason)
{
    static const char *const allowed[] = {NULL};
    (void)self;

    if (gs__builtin_check_args(args, allowed, reason) < 0)
        return -1;
    slow_t *s = malloc(sizeof(*s));
    if (s == NULL || (s->sleepers = json_object()) == NULL) {
        free(s);
        *reason = json_string(gs_err_name(GS_ENOMEM));
        return -1;
    }
    s->next_seq = 1;
    s->served = 0;
    *state = s;
    return 0;
}

static gs_result_t slow_handle_call(gs_server_t *self, void *state, json_t *msg, gs_from_t from)
{
    slow_t *s = state;
    json_int_t ms = SLOW_DEFAULT_MS;
    char key[24];

    if (!gs__builtin_is_atom(msg, "sleep")) {
        if (!gs__builtin_is_tuple(msg, "sleep", 2))
            return gs__builtin_unknown_call();
        if (!gs__builtin_int_in(json_array_get(msg, 1), 0, SLOW_MAX_MS, &ms))
            return gs__builtin_bad_argument();
    }

    uint64_t seq = s->next_seq++;
    snprintf(key, sizeof(key), "%" PRIu64, seq);
    /* The id is stored bit for bit in a json_int_t; it is only ever converted back. */
    if (json_object_set_new(s->sleepers, key, json_integer((json_int_t)from.id)) < 0)
        return GS_REPLY(gs__builtin_error(gs_err_name(GS_ENOMEM)));
    int rc =
        gs_send_after_server(self, json_pack("[sI]", "wake", (json_int_t)seq), (uint64_t)ms, NULL);
    if (rc < 0) {
        json_object_del(s->sleepers, key);
        return GS_REPLY(gs__builtin_error(gs_err_name(rc)));
    }
    /* No reply now: the caller keeps waiting until its timer fires. */
    return GS_NOREPLY;
}

static gs_result_t slow_handle_info(gs_server_t *self, void *state, json_t *msg)
{
    slow_t *s = state;
    json_int_t seq;
    char key[24];
    (void)self;

    if (!gs__builtin_is_tuple(msg, "wake", 2) ||
        !gs__builtin_int_in(json_array_get(msg, 1), 1, GS__JSON_INT_MAX, &seq))
        return GS_NOREPLY;
    snprintf(key, sizeof(key), "%" JSON_INTEGER_FORMAT, seq);
    json_t *id = json_object_get(s->sleepers, key);
    if (id == NULL)
        return GS_NOREPLY;
    gs_from_t from = {.id = (uint64_t)json_integer_value(id)};
    json_object_del(s->sleepers, key);
    /*
     * GS_ENOCALL means the caller gave up (its call timed out) while asleep; the runtime
     * counts the late reply, and the sleeper is served all the same.
     */
    gs_reply(from, json_string("response!"));
    s->served++;
    return GS_NOREPLY;
}

static void slow_terminate(gs_server_t *self, json_t *reason, void *state)
{
    slow_t *s = state;
    (void)self;
    (void)reason;
    /* Callers still asleep are failed by the runtime, which holds their calls. */
    json_decref(s->sleepers);
    free(s);
}

static json_t *slow_format_state(gs_server_t *self, void *state)
{
    const slow_t *s = state;
    (void)self;
    return json_pack("{sIsI}", "pending", (json_int_t)json_object_size(s->sleepers), "served",
                     s->served);
}

static const gs_message_doc_t slow_messages[] = {
    {"call", "\"sleep\"", "Reply \"response!\" after 1000 ms, without blocking the server."},
    {"call", "[\"sleep\", 200]", "Reply \"response!\" after ms (0 to 3600000) milliseconds."},
    {"info", "[\"wake\", 1]", "Internal: the timer that answers sleeper number n."},
    {NULL, NULL, NULL},
};

const gs_behaviour_t gs_builtin_slow = {
    .name = "slow",
    .description = "The seed's SlowServer: slow replies via a deferred reply and a timer.",
    .args_doc = NULL,
    .messages = slow_messages,
    .init = slow_init,
    .handle_call = slow_handle_call,
    .handle_cast = gs__builtin_ignore,
    .handle_info = slow_handle_info,
    .terminate = slow_terminate,
    .format_state = slow_format_state,
};
