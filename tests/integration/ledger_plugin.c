/*
 * ledger_plugin.c: a durable behaviour for the durability tests (test_durable.c, test_crash.c),
 * loaded into the real binary with --plugin, written against genserv.h alone as any plugin.
 *
 * The audits need what the built-in counter and journal do not offer: a call that changes the
 * state and answers with the result (so that an acknowledged call can be checked against the
 * state after a crash), and a record of how often each distinct message was applied (so that
 * "applied twice" is seen per message, not only as a total that a lost message could hide).
 * The ledger keeps a count and, per tag, how many times ["add", TAG] was applied, whether it
 * came as a call, a cast, a plain message or a timer.
 *
 * Messages:
 *   call/cast/info ["add", TAG]   count + 1, tags[TAG] + 1; the call answers the new count
 *   call "count"                  the count
 *   call ["times", TAG]           how many times TAG was applied (0 if never)
 *   call "get"                    the whole state (what dump_state stores)
 *   call ["pad", N]               make the state carry N bytes of padding (0..16 MiB), so that
 *                                 every later change writes that much: fills a disk
 *   call ["hold", TAG]            apply TAG but answer only when a ["release"] cast comes, so
 *                                 that a retry meets a first answer that is still deferred
 *   cast ["release"]              answer the held call, if any, with the count
 *   info anything else            kept in "other" (at most 100): e.g. a periodic timer's
 *                                 ["$gs_missed", N, MSG] after downtime
 * Init args: null. State JSON: {"count": N, "tags": {TAG: TIMES}, "pad": "xx...",
 * "other": [MSG...]}.
 *
 * A second behaviour, it_plain, is the same ledger without dump_state and restore: one that
 * can never be durable, whatever the built-ins come to support.
 */
#include <genserv/genserv.h>
#include <genserv/message.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LEDGER_MAX_PAD   (16 * 1024 * 1024)
#define LEDGER_MAX_OTHER 100

typedef struct ledger_s {
    json_int_t count;
    json_t *tags;  /* owned object: tag -> times */
    json_t *pad;   /* owned string */
    json_t *other; /* owned array */
    gs_from_t held;
    bool holding;
} ledger_t;

static void ledger_free(ledger_t *l)
{
    if (l == NULL)
        return;
    json_decref(l->tags);
    json_decref(l->pad);
    json_decref(l->other);
    free(l);
}

static ledger_t *ledger_create(void)
{
    ledger_t *l = calloc(1, sizeof(*l));

    if (l == NULL)
        return NULL;
    l->tags = json_object();
    l->pad = json_string("");
    l->other = json_array();
    if (l->tags == NULL || l->pad == NULL || l->other == NULL) {
        ledger_free(l);
        return NULL;
    }
    return l;
}

static int ledger_init(gs_server_t *self, json_t *args, void **state, json_t **reason)
{
    ledger_t *l;

    (void)self;
    if (!json_is_null(args)) {
        *reason = gs_bad_args("the ledger takes no args");
        return -1;
    }
    if ((l = ledger_create()) == NULL) {
        *reason = json_string("out_of_memory");
        return -1;
    }
    *state = l;
    return 0;
}

/* The tag of ["add", TAG], or NULL when msg is anything else. */
static const char *add_tag(const json_t *msg)
{
    if (!gs_msg_is_tuple(msg, "add", 2))
        return NULL;
    return json_string_value(json_array_get(msg, 1));
}

static void apply(ledger_t *l, const char *tag)
{
    json_t *times = json_object_get(l->tags, tag);

    l->count++;
    json_object_set_new(l->tags, tag, json_integer(json_integer_value(times) + 1));
}

/* Copies, not references: a reply leaves this thread while the state goes on changing
 * (jansson's reference counts are not atomic: sharing would race). */
static json_t *ledger_json(const ledger_t *l)
{
    return json_pack("{s:I, s:o, s:o, s:o}", "count", (json_int_t)l->count, "tags",
                     json_deep_copy(l->tags), "pad", json_deep_copy(l->pad), "other",
                     json_deep_copy(l->other));
}

static gs_result_t ledger_handle_call(gs_server_t *self, void *state, json_t *msg, gs_from_t from)
{
    ledger_t *l = state;
    const char *tag = add_tag(msg);
    json_int_t n;

    (void)self;
    if (tag != NULL) {
        apply(l, tag);
        return GS_REPLY(json_integer(l->count));
    }
    if (gs_msg_is_atom(msg, "count"))
        return GS_REPLY(json_integer(l->count));
    if (gs_msg_is_atom(msg, "get"))
        return GS_REPLY(ledger_json(l));
    if (gs_msg_is_tuple(msg, "times", 2) && json_is_string(json_array_get(msg, 1)))
        return GS_REPLY(json_integer(json_integer_value(
            json_object_get(l->tags, json_string_value(json_array_get(msg, 1))))));
    if (gs_msg_is_tuple(msg, "pad", 2) &&
        gs_json_int_in(json_array_get(msg, 1), 0, LEDGER_MAX_PAD, &n)) {
        char *text = malloc((size_t)n + 1);

        if (text == NULL)
            return GS_REPLY(gs_msg_error("out_of_memory"));
        memset(text, 'x', (size_t)n);
        text[n] = '\0';
        json_decref(l->pad);
        l->pad = json_string(text);
        free(text);
        return GS_REPLY(json_integer(n));
    }
    if (gs_msg_is_tuple(msg, "hold", 2) && json_is_string(json_array_get(msg, 1)) && !l->holding) {
        apply(l, json_string_value(json_array_get(msg, 1)));
        l->held = from;
        l->holding = true;
        return GS_NOREPLY;
    }
    return gs_reply_unknown_message();
}

static gs_result_t ledger_handle_cast(gs_server_t *self, void *state, json_t *msg)
{
    ledger_t *l = state;
    const char *tag = add_tag(msg);

    (void)self;
    if (tag != NULL) {
        apply(l, tag);
    } else if (gs_msg_is_tuple(msg, "release", 1) && l->holding) {
        l->holding = false;
        gs_reply(l->held, json_integer(l->count));
    }
    return GS_NOREPLY;
}

static gs_result_t ledger_handle_info(gs_server_t *self, void *state, json_t *msg)
{
    ledger_t *l = state;
    const char *tag = add_tag(msg);

    (void)self;
    if (tag != NULL)
        apply(l, tag);
    else if (json_array_size(l->other) < LEDGER_MAX_OTHER)
        json_array_append(l->other, msg);
    return GS_NOREPLY;
}

static void ledger_terminate(gs_server_t *self, json_t *reason, void *state)
{
    (void)self;
    (void)reason;
    ledger_free(state);
}

static json_t *ledger_format_state(gs_server_t *self, void *state)
{
    (void)self;
    return ledger_json(state);
}

static json_t *ledger_dump_state(gs_server_t *self, void *state, json_t **reason)
{
    (void)self;
    (void)reason;
    return ledger_json(state);
}

/* The stored shape, checked whole: a ledger that read back something else would make the
 * tests' audits count against a state the store never had. On a rollback *state is the
 * current ledger, replaced only once the stored one was read. */
static int ledger_restore(gs_server_t *self, json_t *stored, void **state, json_t **reason)
{
    json_t *count = json_object_get(stored, "count"), *tags = json_object_get(stored, "tags");
    json_t *pad = json_object_get(stored, "pad"), *other = json_object_get(stored, "other");
    ledger_t *l;

    (void)self;
    if (!json_is_integer(count) || !json_is_object(tags) || !json_is_string(pad) ||
        !json_is_array(other)) {
        *reason = json_pack("[s, s]", "bad_stored_state",
                            "expected {\"count\", \"tags\", \"pad\", \"other\"}");
        return -1;
    }
    if ((l = calloc(1, sizeof(*l))) == NULL) {
        *reason = json_string("out_of_memory");
        return -1;
    }
    l->count = json_integer_value(count);
    l->tags = json_deep_copy(tags);
    l->pad = json_deep_copy(pad);
    l->other = json_deep_copy(other);
    if (l->tags == NULL || l->pad == NULL || l->other == NULL) {
        ledger_free(l);
        *reason = json_string("out_of_memory");
        return -1;
    }
    if (*state != NULL) {
        ledger_t *old = *state;

        /* A held call stays held across a rollback: its caller is still waiting. */
        l->held = old->held;
        l->holding = old->holding;
        ledger_free(old);
    }
    *state = l;
    return 0;
}

static const gs_message_doc_t ledger_messages[] = {
    {"call", "[\"add\", \"k1\"]", "Apply tag k1 once; reply with the new count."},
    {"cast", "[\"add\", \"k1\"]", "Apply tag k1 once."},
    {"call", "\"count\"", "Reply with the count."},
    {"call", "[\"times\", \"k1\"]", "Reply with how many times k1 was applied."},
    {"call", "\"get\"", "Reply with the whole state."},
    {"call", "[\"pad\", 1000]", "Carry this many bytes of padding in the state."},
    {"call", "[\"hold\", \"k1\"]", "Apply k1; reply only after a [\"release\"] cast."},
    {"cast", "[\"release\"]", "Answer the held call with the count."},
    {NULL, NULL, NULL},
};

static const gs_behaviour_t ledger = {
    .name = "it_ledger",
    .description = "The durability tests' ledger: a count and how often each tag was applied.",
    .args_doc = "null",
    .messages = ledger_messages,
    .init = ledger_init,
    .handle_call = ledger_handle_call,
    .handle_cast = ledger_handle_cast,
    .handle_info = ledger_handle_info,
    .terminate = ledger_terminate,
    .format_state = ledger_format_state,
    .dump_state = ledger_dump_state,
    .restore = ledger_restore,
};

static const gs_behaviour_t plain = {
    .name = "it_plain",
    .description = "The ledger without dump_state and restore: it cannot be durable.",
    .args_doc = "null",
    .messages = ledger_messages,
    .init = ledger_init,
    .handle_call = ledger_handle_call,
    .handle_cast = ledger_handle_cast,
    .handle_info = ledger_handle_info,
    .terminate = ledger_terminate,
    .format_state = ledger_format_state,
};

/*
 * it_gate: a boot server whose init does not return until the file its args name exists (at
 * most 60 s), so that it_ops sees genserv while it boots: port open, not ready yet. Its init
 * holds a scheduler thread meanwhile, as a slow init does (OTP's start_link waits the same).
 */
static int gate_init(gs_server_t *self, json_t *args, void **state, json_t **reason)
{
    const char *until = json_string_value(json_object_get(args, "until"));
    struct timespec tick = {0, 10 * 1000 * 1000};

    (void)self;
    if (until == NULL) {
        *reason = gs_bad_args("{\"until\": PATH}");
        return -1;
    }
    for (int i = 0; i < 6000 && access(until, F_OK) != 0; i++)
        nanosleep(&tick, NULL);
    *state = NULL;
    return 0;
}

static gs_result_t gate_handle_call(gs_server_t *self, void *state, json_t *msg, gs_from_t from)
{
    (void)self;
    (void)msg;
    (void)from;
    (void)state;
    return GS_REPLY(json_string("open"));
}

static const gs_behaviour_t gate = {
    .name = "it_gate",
    .description = "it_ops' slow boot server: init waits until the file args.until exists.",
    .args_doc = "{\"until\": \"/path/of/a/file\"}",
    .init = gate_init,
    .handle_call = gate_handle_call,
};

static const gs_behaviour_t *const behaviours[] = {&ledger, &plain, &gate};

GS_PLUGIN_EXPORT const gs_plugin_t gs_plugin = {
    .abi_version = GS_PLUGIN_ABI_VERSION,
    .behaviours = behaviours,
    .count = 3,
};
