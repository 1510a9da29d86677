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
#include <stdlib.h>

#include <genserv/builtins.h>
#include <genserv/map.h>
#include <genserv/message.h>

#define SLOW_DEFAULT_MS 1000
#define SLOW_MAX_MS     3600000 /* one hour: anything longer is surely a mistake */

/*
 * The sleepers, by our sleeper number: the caller's whole gs_from_t (a from is an opaque
 * value; only the runtime knows what is inside), in the intrusive map of genserv/map.h, so
 * that thousands of sleepers cost O(1) each.
 */
typedef struct sleeper_s {
    gs_map_node_t node; /* hash: gs_hash_u64(seq), a bijection, so it is the key */
    gs_from_t from;
} sleeper_t;

typedef struct slow_s {
    gs_map_t sleepers;
    uint64_t next_seq;
    json_int_t served;
} slow_t;

/* Equal hashes mean equal sleeper numbers (gs_hash_u64 is a bijection). */
static bool same_seq(const gs_map_node_t *node, const void *key)
{
    (void)node;
    (void)key;
    return true;
}

static bool sleepers_put(slow_t *s, uint64_t seq, gs_from_t from)
{
    /* The number of sleepers comes from outside, so this fails softly. */
    sleeper_t *z = malloc(sizeof(*z));
    if (z == NULL)
        return false;
    z->from = from;
    if (gs_map_insert(&s->sleepers, &z->node, gs_hash_u64(seq)) != 0) {
        free(z);
        return false;
    }
    return true;
}

/* Remove sleeper seq into *from. Returns false when there is no such sleeper. */
static bool sleepers_take(slow_t *s, uint64_t seq, gs_from_t *from)
{
    gs_map_node_t *n = gs_map_remove(&s->sleepers, gs_hash_u64(seq), NULL, same_seq);
    if (n == NULL)
        return false;
    sleeper_t *z = (sleeper_t *)n; /* node is the first member */
    *from = z->from;
    free(z);
    return true;
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
    s->next_seq = 1;
    *state = s;
    return 0;
}

static gs_result_t slow_handle_call(gs_server_t *self, void *state, json_t *msg, gs_from_t from)
{
    slow_t *s = state;
    json_int_t ms = SLOW_DEFAULT_MS;
    gs_from_t unused;

    if (!gs_msg_is_atom(msg, "sleep")) {
        if (!gs_msg_is_tuple(msg, "sleep", 2))
            return gs_reply_unknown_message();
        if (!gs_json_int_in(json_array_get(msg, 1), 0, SLOW_MAX_MS, &ms))
            return gs_reply_bad_argument();
    }

    /* Sleeper numbers stay below 2^63, so they always fit in a JSON integer. */
    uint64_t seq = s->next_seq++;
    if (!sleepers_put(s, seq, from))
        return GS_REPLY(gs_msg_error(gs_err_name(GS_ENOMEM)));
    int rc =
        gs_send_after_server(self, json_pack("[sI]", "wake", (json_int_t)seq), (uint64_t)ms, NULL);
    if (rc < 0) {
        sleepers_take(s, seq, &unused);
        return GS_REPLY(gs_msg_error(gs_err_name(rc)));
    }
    /* No reply now: the caller keeps waiting until its timer fires. */
    return GS_NOREPLY;
}

static gs_result_t slow_handle_info(gs_server_t *self, void *state, json_t *msg)
{
    slow_t *s = state;
    json_int_t seq;
    gs_from_t from;
    (void)self;

    if (!gs_msg_is_tuple(msg, "wake", 2) ||
        !gs_json_int_in(json_array_get(msg, 1), 1, GS_JSON_INT_MAX, &seq) ||
        !sleepers_take(s, (uint64_t)seq, &from))
        return GS_NOREPLY;
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
    gs_map_filter(&s->sleepers, free_sleeper, NULL);
    gs_map_close(&s->sleepers);
    free(s);
}

static json_t *slow_format_state(gs_server_t *self, void *state)
{
    const slow_t *s = state;
    (void)self;
    return json_pack("{sIsI}", "pending", (json_int_t)gs_map_count(&s->sleepers), "served",
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
    .handle_cast = gs_ignore_message,
    .handle_info = slow_handle_info,
    .terminate = slow_terminate,
    .format_state = slow_format_state,
};
