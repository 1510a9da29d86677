/*
 * journal.c: the seed's Journal exercise, a list of entries kept newest first.
 *
 * Elixir (the example solution):
 *   def handle_cast({:add_entry, entry}, entries), do: {:noreply, [entry | entries]}
 *   def handle_call(:entries, _from, entries), do: {:reply, entries, entries}
 *
 * Here: cast ["add_entry", entry] prepends any JSON value, call "entries" replies with the
 * array. State JSON: the array itself, e.g. ["first entry"] after one entry. Unlike the
 * Elixir list, the journal is bounded (init args {"max_entries": n}, default 10000) and drops
 * its oldest entry when full, because over HTTP anyone can add entries.
 */
#include <stdlib.h>

#include <genserv/builtins.h>
#include <genserv/message.h>

#define JOURNAL_DEFAULT_MAX 10000
#define JOURNAL_LIMIT_MAX   1000000

typedef struct journal_s {
    json_t *entries; /* owned array, newest first; entries are never mutated once added */
    size_t max_entries;
} journal_t;

static int journal_init(gs_server_t *self, json_t *args, void **state, json_t **reason)
{
    static const char *const allowed[] = {"max_entries", NULL};
    json_int_t max = JOURNAL_DEFAULT_MAX;
    (void)self;

    if (gs_args_check(args, allowed, reason) < 0 ||
        gs_args_int(args, "max_entries", 1, JOURNAL_LIMIT_MAX, &max, reason) < 0)
        return -1;
    journal_t *j = malloc(sizeof(*j));
    if (j == NULL || (j->entries = json_array()) == NULL) {
        free(j);
        *reason = json_string(gs_err_name(GS_ENOMEM));
        return -1;
    }
    j->max_entries = (size_t)max;
    *state = j;
    return 0;
}

static gs_result_t journal_handle_cast(gs_server_t *self, void *state, json_t *msg)
{
    journal_t *j = state;
    (void)self;

    if (!gs_msg_is_tuple(msg, "add_entry", 2))
        return GS_NOREPLY;
    /*
     * The message is ours to read and nobody mutates it, so the entry can be shared by
     * reference instead of copied; format_state copies before anything leaves this thread.
     */
    if (json_array_insert(j->entries, 0, json_array_get(msg, 1)) < 0)
        return GS_NOREPLY;
    if (json_array_size(j->entries) > j->max_entries)
        json_array_remove(j->entries, json_array_size(j->entries) - 1);
    return GS_NOREPLY;
}

static gs_result_t journal_handle_call(gs_server_t *self, void *state, json_t *msg, gs_from_t from)
{
    journal_t *j = state;
    (void)self;
    (void)from;

    /*
     * A deep copy, because the reply is read (serialised) on another thread while this
     * server goes on changing its array.
     */
    if (gs_msg_is_atom(msg, "entries"))
        return GS_REPLY(json_deep_copy(j->entries));
    return gs_reply_unknown_message();
}

static void journal_terminate(gs_server_t *self, json_t *reason, void *state)
{
    journal_t *j = state;
    (void)self;
    (void)reason;
    json_decref(j->entries);
    free(j);
}

static json_t *journal_format_state(gs_server_t *self, void *state)
{
    const journal_t *j = state;
    (void)self;
    return json_deep_copy(j->entries);
}

static const gs_message_doc_t journal_messages[] = {
    {"cast", "[\"add_entry\", \"first entry\"]",
     "Prepend an entry (any JSON value); the oldest is dropped past max_entries."},
    {"call", "\"entries\"", "Reply with every entry, newest first."},
    {NULL, NULL, NULL},
};

const gs_behaviour_t gs_builtin_journal = {
    .name = "journal",
    .description = "The seed's Journal exercise: entries kept newest first.",
    .args_doc = "{\"max_entries\": 10000}",
    .messages = journal_messages,
    .init = journal_init,
    .handle_call = journal_handle_call,
    .handle_cast = journal_handle_cast,
    .handle_info = gs_ignore_message,
    .terminate = journal_terminate,
    .format_state = journal_format_state,
};
