/*
 * slow.c: SlowServer from the Elixir GenServer lessons, rewritten so that slowness never blocks a
 * thread.
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
 *
 * Not durable (no dump_state or restore, so the runtime refuses to start it durable with
 * not_supported): its state is its sleepers, callers' `from`s held for a deferred reply, and
 * a call lives only in the process that holds it. A restart fails them all, and a call id
 * stored and replied to by a later process could answer somebody else's call there. Storing
 * only the counters would restore a slow server whose "pending" is a lie.
 */
#include <stddef.h>
#include <stdlib.h>

#include <genserv/builtins.h>
#include <genserv/map.h>
#include <genserv/message.h>

#define SLOW_DEFAULT_MS 1000
#define SLOW_MAX_MS     3600000 /* one hour: anything longer is surely a mistake */

/*
 * The sleepers: the caller's whole gs_from_t (a from is an opaque value; only the runtime knows
 * what is inside) and the timer that will wake it, found by our sleeper number (when the timer
 * fires) and by the caller's id (when the runtime says the caller is gone: its call timed out,
 * and the timer is cancelled rather than left pending). Two intrusive maps of genserv/map.h
 * over one record, so that thousands of sleepers cost O(1) each.
 */
typedef struct sleeper_s {
    gs_map_node_t by_seq;    /* first; hash: gs_hash_u64(seq), a bijection, so it is the key */
    gs_map_node_t by_caller; /* hash: gs_hash_u64(from.id), likewise */
    gs_from_t from;
    gs_timer_ref_t timer;
} sleeper_t;

typedef struct slow_s {
    gs_map_t sleepers; /* by seq */
    gs_map_t callers;  /* by from.id */
    uint64_t next_seq;
    json_int_t served;
    json_int_t abandoned; /* callers gone before their wake: their timers were cancelled */
} slow_t;

/* Equal hashes mean equal keys (gs_hash_u64 is a bijection). */
static bool same_key(const gs_map_node_t *node, const void *key)
{
    (void)node;
    (void)key;
    return true;
}

static sleeper_t *sleepers_put(slow_t *s, uint64_t seq, gs_from_t from)
{
    /* The number of sleepers comes from outside, so this fails softly. */
    sleeper_t *z = calloc(1, sizeof(*z));
    if (z == NULL)
        return NULL;
    z->from = from;
    if (gs_map_insert(&s->sleepers, &z->by_seq, gs_hash_u64(seq)) != 0) {
        free(z);
        return NULL;
    }
    if (gs_map_insert(&s->callers, &z->by_caller, gs_hash_u64(from.id)) != 0) {
        gs_map_unlink(&s->sleepers, &z->by_seq);
        free(z);
        return NULL;
    }
    return z;
}

/* Take sleeper seq out of both maps: the record, which the caller frees, or NULL. */
static sleeper_t *sleepers_take(slow_t *s, uint64_t seq)
{
    gs_map_node_t *n = gs_map_remove(&s->sleepers, gs_hash_u64(seq), NULL, same_key);
    if (n == NULL)
        return NULL;
    sleeper_t *z = (sleeper_t *)n; /* by_seq is the first member */
    gs_map_unlink(&s->callers, &z->by_caller);
    return z;
}

/* The same, by the caller's id. */
static sleeper_t *sleepers_take_caller(slow_t *s, uint64_t id)
{
    gs_map_node_t *n = gs_map_remove(&s->callers, gs_hash_u64(id), NULL, same_key);
    if (n == NULL)
        return NULL;
    sleeper_t *z = (sleeper_t *)((char *)n - offsetof(sleeper_t, by_caller));
    gs_map_unlink(&s->sleepers, &z->by_seq);
    return z;
}

static bool free_sleeper(gs_map_node_t *node, void *arg)
{
    (void)arg;
    free(node); /* the sleeper_t: node is its first member */
    return true;
}

static int slow_init(gs_server_t *self, json_t *args, void **state, json_t **reason)
{
    static const char *const allowed[] = {NULL};
    (void)self;

    if (gs_args_check(args, allowed, reason) < 0)
        return -1;
    slow_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        *reason = json_string(gs_err_name(GS_ENOMEM));
        return -1;
    }
    gs_map_init(&s->sleepers);
    gs_map_init(&s->callers);
    s->next_seq = 1;
    *state = s;
    return 0;
}

static gs_result_t slow_handle_call(gs_server_t *self, void *state, json_t *msg, gs_from_t from)
{
    slow_t *s = state;
    json_int_t ms = SLOW_DEFAULT_MS;

    if (!gs_msg_is_atom(msg, "sleep")) {
        if (!gs_msg_is_tuple(msg, "sleep", 2))
            return gs_reply_unknown_message();
        if (!gs_json_int_in(json_array_get(msg, 1), 0, SLOW_MAX_MS, &ms))
            return gs_reply_bad_argument();
    }

    /* Sleeper numbers stay below 2^63, so they always fit in a JSON integer. */
    uint64_t seq = s->next_seq++;
    sleeper_t *z = sleepers_put(s, seq, from);
    if (z == NULL)
        return GS_REPLY(gs_msg_error(gs_err_name(GS_ENOMEM)));
    int rc = gs_send_after_server(self, json_pack("[sI]", "wake", (json_int_t)seq), (uint64_t)ms,
                                  &z->timer);
    if (rc < 0) {
        /* e.g. overloaded: past the runtime's bounds on pending timers */
        free(sleepers_take(s, seq));
        return GS_REPLY(gs_msg_error(gs_err_name(rc)));
    }
    /* No reply now: the caller keeps waiting until its timer fires. */
    return GS_NOREPLY;
}

static gs_result_t slow_handle_info(gs_server_t *self, void *state, json_t *msg)
{
    slow_t *s = state;
    json_int_t n;
    sleeper_t *z;

    if (gs_msg_is_tuple(msg, "caller_gone", 2) &&
        gs_json_int_in(json_array_get(msg, 1), 1, GS_JSON_INT_MAX, &n)) {
        /* Its call timed out: nobody waits for this sleeper any more, so its timer goes now
         * instead of staying pending for up to an hour. A client could send this message
         * too: the runtime is asked whether the call really ended. */
        gs_map_node_t *found = gs_map_find(&s->callers, gs_hash_u64((uint64_t)n), NULL, same_key);
        sleeper_t *w =
            found != NULL ? (sleeper_t *)((char *)found - offsetof(sleeper_t, by_caller)) : NULL;
        z = w != NULL && !gs_call_pending(w->from) ? sleepers_take_caller(s, (uint64_t)n) : NULL;
        if (z != NULL) {
            gs_cancel_timer(gs_server_runtime(self), z->timer, NULL);
            free(z);
            s->abandoned++;
        }
        return GS_NOREPLY;
    }
    if (!gs_msg_is_tuple(msg, "wake", 2) ||
        !gs_json_int_in(json_array_get(msg, 1), 1, GS_JSON_INT_MAX, &n) ||
        (z = sleepers_take(s, (uint64_t)n)) == NULL)
        return GS_NOREPLY;
    /*
     * GS_ENOCALL means the caller gave up (its call timed out) just before its wake; the
     * runtime counts the late reply, and the sleeper is served all the same.
     */
    gs_reply(z->from, json_string("response!"));
    free(z);
    s->served++;
    return GS_NOREPLY;
}

static void slow_terminate(gs_server_t *self, json_t *reason, void *state)
{
    slow_t *s = state;
    (void)self;
    (void)reason;
    /* Callers still asleep are failed by the runtime, which holds their calls. */
    gs_map_filter(&s->sleepers, free_sleeper, NULL);
    gs_map_close(&s->sleepers);
    gs_map_close(&s->callers);
    free(s);
}

static json_t *slow_format_state(gs_server_t *self, void *state)
{
    const slow_t *s = state;
    (void)self;
    return json_pack("{sIsIsI}", "pending", (json_int_t)gs_map_count(&s->sleepers), "served",
                     s->served, "abandoned", s->abandoned);
}

static const gs_message_doc_t slow_messages[] = {
    {"call", "\"sleep\"", "Reply \"response!\" after 1000 ms, without blocking the server."},
    {"call", "[\"sleep\", 200]", "Reply \"response!\" after ms (0 to 3600000) milliseconds."},
    {"info", "[\"wake\", 1]", "Internal: the timer that answers sleeper number n."},
    {"info", "[\"caller_gone\", 7]",
     "From the runtime: call 7 timed out or its client hung up; its sleeper's timer is "
     "cancelled."},
    {NULL, NULL, NULL},
};

const gs_behaviour_t gs_builtin_slow = {
    .name = "slow",
    .description = "SlowServer from the Elixir GenServer lessons, without its sleep: slow "
                   "replies via a deferred reply (GenServer.reply/2) and a timer.",
    .args_doc = NULL,
    .messages = slow_messages,
    .init = slow_init,
    .handle_call = slow_handle_call,
    .handle_cast = gs_ignore_message,
    .handle_info = slow_handle_info,
    .terminate = slow_terminate,
    .format_state = slow_format_state,
    .notify_caller_gone = true,
};
