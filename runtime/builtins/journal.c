/*
 * journal.c: the Journal exercise of the Elixir GenServer lessons, a list of entries kept newest
 * first.
 *
 * Elixir (the example solution):
 *   def handle_cast({:add_entry, entry}, entries), do: {:noreply, [entry | entries]}
 *   def handle_call(:entries, _from, entries), do: {:reply, entries, entries}
 *
 * Here: cast ["add_entry", entry] prepends any JSON value, call "entries" replies with the
 * array. State JSON: the array itself, e.g. ["first entry"] after one entry. Unlike the
 * Elixir list, the journal is bounded, because over HTTP anyone can add entries: in entries
 * (init args {"max_entries": n}, default 10000) and in bytes as gs_json_size() counts them
 * ({"max_bytes": n}, default 8 MiB; a JSON value in memory is several times its text). Past
 * either bound it drops its oldest entries; an entry larger than max_bytes on its own is not
 * added, and counted. Call "stats" -> {"entries", "bytes", "max_entries", "max_bytes",
 * "dropped"}.
 *
 * Durable: the stored state is {"entries": [...newest first], "max_entries": n, "max_bytes":
 * n, "dropped": n}: the entries as format_state shows them, with what "stats" counts beside
 * them (the byte count is recomputed, not stored). The bounds are part of the stored state: a
 * restored journal keeps the bounds it had, whatever the args of the new start (restore runs
 * instead of init). restore refuses a stored journal that breaks its own bounds.
 */
#include <stdlib.h>

#include <genserv/builtins.h>
#include <genserv/message.h>

#include "builtins_internal.h"

#define JOURNAL_DEFAULT_MAX       10000
#define JOURNAL_LIMIT_MAX         1000000
#define JOURNAL_DEFAULT_MAX_BYTES (8 * 1024 * 1024)
#define JOURNAL_LIMIT_MAX_BYTES   ((json_int_t)1 << 32)

typedef struct journal_s {
    json_t *entries; /* owned array, newest first; entries are never mutated once added */
    size_t max_entries;
    size_t bytes; /* gs_json_size of the entries */
    size_t max_bytes;
    json_int_t dropped; /* entries refused for being larger than max_bytes */
} journal_t;

static int journal_init(gs_server_t *self, json_t *args, void **state, json_t **reason)
{
    static const char *const allowed[] = {"max_entries", "max_bytes", NULL};
    json_int_t max = JOURNAL_DEFAULT_MAX, max_bytes = JOURNAL_DEFAULT_MAX_BYTES;
    (void)self;

    if (gs_args_check(args, allowed, reason) < 0 ||
        gs_args_int(args, "max_entries", 1, JOURNAL_LIMIT_MAX, &max, reason) < 0 ||
        gs_args_int(args, "max_bytes", 1024, JOURNAL_LIMIT_MAX_BYTES, &max_bytes, reason) < 0)
        return -1;
    journal_t *j = calloc(1, sizeof(*j));
    if (j == NULL || (j->entries = json_array()) == NULL) {
        free(j);
        *reason = json_string(gs_err_name(GS_ENOMEM));
        return -1;
    }
    j->max_entries = (size_t)max;
    j->max_bytes = (size_t)max_bytes;
    *state = j;
    return 0;
}

static gs_result_t journal_handle_cast(gs_server_t *self, void *state, json_t *msg)
{
    journal_t *j = state;
    (void)self;

    if (!gs_msg_is_tuple(msg, "add_entry", 2))
        return GS_NOREPLY;
    json_t *entry = json_array_get(msg, 1);
    size_t size = gs_json_size(entry);
    if (size > j->max_bytes) {
        /* A cast has nobody to refuse to: dropped, and counted (saturating, since a stored
         * state may start the count anywhere). */
        if (j->dropped < GS_JSON_INT_MAX)
            j->dropped++;
        return GS_NOREPLY;
    }
    /*
     * The message is ours to read and nobody mutates it, so the entry can be shared by
     * reference instead of copied; format_state copies before anything leaves this thread.
     */
    if (json_array_insert(j->entries, 0, entry) < 0)
        return GS_NOREPLY;
    j->bytes += size;
    while (json_array_size(j->entries) > j->max_entries || j->bytes > j->max_bytes) {
        size_t last = json_array_size(j->entries) - 1;
        j->bytes -= gs_json_size(json_array_get(j->entries, last));
        json_array_remove(j->entries, last);
    }
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
    if (gs_msg_is_atom(msg, "stats"))
        return GS_REPLY(json_pack("{sIsIsIsIsI}", "entries",
                                  (json_int_t)json_array_size(j->entries), "bytes",
                                  (json_int_t)j->bytes, "max_entries", (json_int_t)j->max_entries,
                                  "max_bytes", (json_int_t)j->max_bytes, "dropped", j->dropped));
    return gs_reply_unknown_message();
}

static void journal_free(journal_t *j)
{
    json_decref(j->entries);
    free(j);
}

static void journal_terminate(gs_server_t *self, json_t *reason, void *state)
{
    (void)self;
    (void)reason;
    journal_free(state);
}

static json_t *journal_format_state(gs_server_t *self, void *state)
{
    const journal_t *j = state;
    (void)self;
    return json_deep_copy(j->entries);
}

static json_t *journal_dump_state(gs_server_t *self, void *state, json_t **reason)
{
    const journal_t *j = state;
    (void)self;
    /*
     * json_copy makes a new array of the same entries. The array is copied because the next
     * cast changes it, and the dump must stay what the state was; the entries are shared,
     * because nobody ever mutates them (see journal_t) and the runtime serialises the dump
     * at once on this thread: a deep copy of up to max_bytes after every message would only
     * double what storing the journal costs.
     */
    return gs__stored_dump(json_pack("{sosIsIsI}", "entries", json_copy(j->entries), "max_entries",
                                     (json_int_t)j->max_entries, "max_bytes",
                                     (json_int_t)j->max_bytes, "dropped", j->dropped),
                           reason);
}

/*
 * A journal from what journal_dump_state stored, read as strictly as init reads its args and
 * within the bounds the journal would have kept itself. On a rollback the current journal is
 * freed only once the new one is complete, so a refusal leaves it untouched.
 */
static int journal_restore(gs_server_t *self, json_t *stored, void **state, json_t **reason)
{
    static const char *const fields[] = {"entries", "max_entries", "max_bytes", "dropped", NULL};
    json_int_t max, max_bytes, dropped;
    json_t *entries = NULL;
    journal_t *j = NULL;
    size_t bytes = 0;
    int rc = -1;
    (void)self;

    if (gs__stored_fields(stored, fields, reason) < 0 ||
        gs__stored_int(stored, "max_entries", 1, JOURNAL_LIMIT_MAX, &max, reason) < 0 ||
        gs__stored_int(stored, "max_bytes", 1024, JOURNAL_LIMIT_MAX_BYTES, &max_bytes, reason) <
            0 ||
        gs__stored_int(stored, "dropped", 0, GS_JSON_INT_MAX, &dropped, reason) < 0 ||
        gs__stored_array(stored, "entries", (size_t)max, (size_t)max_bytes, &entries, &bytes,
                         reason) < 0)
        goto out;
    if ((j = malloc(sizeof(*j))) == NULL) {
        *reason = json_string(gs_err_name(GS_ENOMEM));
        goto out;
    }
    *j = (journal_t){.entries = entries,
                     .max_entries = (size_t)max,
                     .bytes = bytes,
                     .max_bytes = (size_t)max_bytes,
                     .dropped = dropped};
    entries = NULL; /* the journal's now */
    if (*state != NULL)
        journal_free(*state);
    *state = j;
    rc = 0;
out:
    json_decref(entries);
    return rc;
}

static const gs_message_doc_t journal_messages[] = {
    {"cast", "[\"add_entry\", \"first entry\"]",
     "Prepend an entry (any JSON value); the oldest is dropped past max_entries."},
    {"call", "\"entries\"", "Reply with every entry, newest first."},
    {"call", "\"stats\"",
     "Entries and bytes kept, their bounds, and entries dropped as too large."},
    {NULL, NULL, NULL},
};

const gs_behaviour_t gs_builtin_journal = {
    .name = "journal",
    .description = "The Journal exercise of the Elixir GenServer lessons: entries kept newest "
                   "first.",
    .args_doc = "{\"max_entries\": 10000, \"max_bytes\": 8388608}",
    .messages = journal_messages,
    .init = journal_init,
    .handle_call = journal_handle_call,
    .handle_cast = journal_handle_cast,
    .handle_info = gs_ignore_message,
    .terminate = journal_terminate,
    .format_state = journal_format_state,
    .dump_state = journal_dump_state,
    .restore = journal_restore,
};
