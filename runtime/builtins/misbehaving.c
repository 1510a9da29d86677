/*
 * misbehaving.c: MisbehavingGenServer from the Elixir GenServer lessons, which calls itself.
 *
 * Elixir:
 *   def handle_call(:message, _from, state) do
 *     GenServer.call(self(), :message)   # exits with {:calling_self, ...}
 *     {:reply, :ok, state}
 *   end
 *
 * A server that makes a blocking call to itself would wait for its own reply forever. OTP
 * detects it and exits with calling_self; so does genserv: gs_call from a server's own
 * callback to that same server returns GS_ECALLINGSELF at once. The server then crashes with
 * that reason, the caller of "message" gets server_crashed with reason "calling_self", and
 * the supervisor restarts the server.
 *
 * API: call "message" -> crash; call "ping" -> "pong" (to see it running again). State JSON:
 * {"pings": how many pings this incarnation answered}, which a crash resets to 0: a restart
 * starts from init, and the old state is gone, exactly as in Elixir.
 *
 * Durable: the stored state is what format_state shows, {"pings": n}. A durable misbehaving
 * server is the lesson's counterpoint: its restart restores the stored state instead of
 * running init, so the pings survive the crash (the crashing call changed nothing).
 */
#include <stdlib.h>

#include <genserv/builtins.h>
#include <genserv/message.h>

#include "builtins_internal.h"

typedef struct misbehaving_s {
    json_int_t pings;
} misbehaving_t;

static int misbehaving_init(gs_server_t *self, json_t *args, void **state, json_t **reason)
{
    static const char *const allowed[] = {NULL};
    (void)self;

    if (gs_args_check(args, allowed, reason) < 0)
        return -1;
    misbehaving_t *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        *reason = json_string(gs_err_name(GS_ENOMEM));
        return -1;
    }
    *state = m;
    return 0;
}

static gs_result_t misbehaving_handle_call(gs_server_t *self, void *state, json_t *msg,
                                           gs_from_t from)
{
    misbehaving_t *m = state;
    (void)from;

    if (gs_msg_is_atom(msg, "ping")) {
        /* Saturate rather than overflow: a stored state may start the count anywhere. */
        if (m->pings < GS_JSON_INT_MAX)
            m->pings++;
        return GS_REPLY(json_string("pong"));
    }
    if (!gs_msg_is_atom(msg, "message"))
        return gs_reply_unknown_message();

    json_t *result = NULL;
    int rc = gs_call(gs_server_runtime(self), gs_server_name(self), json_string("message"),
                     GS_DEFAULT_TIMEOUT_MS, &result);
    json_decref(result);
    /*
     * The runtime answers GS_ECALLINGSELF without waiting, and that code's stable name is
     * the crash reason, "calling_self". A success would mean the runtime let a server call
     * itself; that is reported as a crash too rather than as a reply.
     */
    return GS_STOP(json_string(rc < 0 ? gs_err_name(rc) : "unexpected_reply"));
}

static void misbehaving_terminate(gs_server_t *self, json_t *reason, void *state)
{
    (void)self;
    (void)reason;
    free(state);
}

/* The state as JSON, {"pings": n}: what format_state shows and dump_state stores. */
static json_t *misbehaving_json(const misbehaving_t *m)
{
    return json_pack("{sI}", "pings", m->pings);
}

static json_t *misbehaving_format_state(gs_server_t *self, void *state)
{
    (void)self;
    return misbehaving_json(state);
}

static json_t *misbehaving_dump_state(gs_server_t *self, void *state, json_t **reason)
{
    (void)self;
    return gs__stored_dump(misbehaving_json(state), reason);
}

/* On a rollback the current state is reused in place: once read, nothing can fail. */
static int misbehaving_restore(gs_server_t *self, json_t *stored, void **state, json_t **reason)
{
    static const char *const fields[] = {"pings", NULL};
    json_int_t pings;
    (void)self;

    if (gs__stored_fields(stored, fields, reason) < 0 ||
        gs__stored_int(stored, "pings", 0, GS_JSON_INT_MAX, &pings, reason) < 0)
        return -1;
    misbehaving_t *m = *state;
    if (m == NULL && (m = malloc(sizeof(*m))) == NULL) {
        *reason = json_string(gs_err_name(GS_ENOMEM));
        return -1;
    }
    m->pings = pings;
    *state = m;
    return 0;
}

static const gs_message_doc_t misbehaving_messages[] = {
    {"call", "\"message\"",
     "Call itself, get calling_self, and crash with that reason; the supervisor restarts it."},
    {"call", "\"ping\"",
     "Reply \"pong\" and count the ping; the count restarts from 0 after a crash."},
    {NULL, NULL, NULL},
};

const gs_behaviour_t gs_builtin_misbehaving = {
    .name = "misbehaving",
    .description = "MisbehavingGenServer from the Elixir GenServer lessons: calls itself and "
                   "crashes with calling_self.",
    .args_doc = NULL,
    .messages = misbehaving_messages,
    .init = misbehaving_init,
    .handle_call = misbehaving_handle_call,
    .handle_cast = gs_ignore_message,
    .handle_info = gs_ignore_message,
    .terminate = misbehaving_terminate,
    .format_state = misbehaving_format_state,
    .dump_state = misbehaving_dump_state,
    .restore = misbehaving_restore,
};
