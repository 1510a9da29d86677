/*
 * kv.c: an example plugin, a key-value store whose keys can expire, written against genserv.h
 * only. Build it (see CMakeLists.txt), then
 *   genserv --plugin build/examples/plugin/libgs_example_plugin.so
 *   curl -d '{"name":"cache","behaviour":"kv","args":{"max_keys":1000}}' localhost:8080/servers
 *   curl -d '{"server":"cache","message":["put","greeting","hello",2000]}' localhost:8080/call
 *   curl -d '{"server":"cache","message":["get","greeting"]}' localhost:8080/call
 *
 * It reads messages and init args with the public helpers of genserv/message.h, exactly as the
 * built-ins do.
 *
 * Elixir, for comparison, keeps a map in the state and lets each expiry be a message:
 *   def handle_call({:put, k, v, ttl}, _from, s) do
 *     ref = Process.send_after(self(), {:expire, k, gen}, ttl)
 *     {:reply, :ok, put_in(s, [k], {v, ref, gen})}
 *   end
 *   def handle_info({:expire, k, gen}, s), do: {:noreply, drop_if_same_gen(s, k, gen)}
 *
 * Messages (tuple = array with its tag first):
 *   call ["put", KEY, VALUE] or ["put", KEY, VALUE, TTL_MS]  -> "ok" | ["error", "full"]
 *   call ["get", KEY]       -> ["ok", VALUE] | "not_found"
 *   call ["ttl", KEY]       -> ["ok", MS or null] | "not_found"
 *   call ["delete", KEY]    -> "ok"
 *   call "keys"             -> [KEY...]
 *   call "size"             -> N
 *   cast ["put", ...] and ["delete", KEY]: the same without an answer
 *   info ["expire", KEY, GEN]: the TTL timer; dropped if KEY was written again since.
 * A malformed call is answered ["error", "bad_request"] instead of crashing the store.
 * Init args: null or {"max_keys": N, "max_bytes": N} (defaults 100000 keys and 64 MiB of
 * values as gs_json_size counts them: a put past either is ["error", "full"]). State JSON:
 * {"size", "bytes", "max_keys", "max_bytes", "entries": {KEY: {"value", "ttl_ms"}}}.
 */
#include <genserv/genserv.h>
#include <genserv/message.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KV_DEFAULT_MAX_KEYS  100000
#define KV_DEFAULT_MAX_BYTES (64 * 1024 * 1024)
#define KV_MAX_TTL_MS        2147483647LL

typedef struct kv_s {
    /* key -> {"value": V, "deadline": monotonic ms or null, "timer": ref, "gen": n} */
    json_t *entries;
    json_int_t max_keys;
    json_int_t max_bytes;
    json_int_t bytes; /* gs_json_size of the values, plus the keys */
    json_int_t next_gen;
} kv_t;

/* What an entry counts against max_bytes. */
static json_int_t entry_bytes(const char *key, const json_t *entry)
{
    return (json_int_t)strlen(key) + (json_int_t)gs_json_size(json_object_get(entry, "value"));
}

static json_int_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (json_int_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int kv_init(gs_server_t *self, json_t *args, void **state, json_t **reason)
{
    static const char *const allowed[] = {"max_keys", "max_bytes", NULL};
    json_int_t max_keys = KV_DEFAULT_MAX_KEYS, max_bytes = KV_DEFAULT_MAX_BYTES;
    kv_t *kv;

    (void)self;
    if (gs_args_check(args, allowed, reason) < 0 ||
        gs_args_int(args, "max_keys", 1, GS_JSON_INT_MAX, &max_keys, reason) < 0 ||
        gs_args_int(args, "max_bytes", 1024, GS_JSON_INT_MAX, &max_bytes, reason) < 0)
        return -1;
    kv = calloc(1, sizeof(*kv));
    if (kv == NULL || (kv->entries = json_object()) == NULL) {
        free(kv);
        *reason = json_string("out_of_memory");
        return -1;
    }
    kv->max_keys = max_keys;
    kv->max_bytes = max_bytes;
    *state = kv;
    return 0;
}

/* Cancel the entry's timer, if it has one. Cancelling a timer that fired already is fine. */
static void cancel_entry_timer(gs_server_t *self, json_t *entry)
{
    json_t *t = json_object_get(entry, "timer");

    if (json_is_integer(t))
        gs_cancel_timer(gs_server_runtime(self), (gs_timer_ref_t)json_integer_value(t), NULL);
}

/* ["put", KEY, VALUE] or ["put", KEY, VALUE, TTL]: returns the reply (new reference). */
static json_t *kv_put(gs_server_t *self, kv_t *kv, json_t *msg)
{
    const char *key = json_string_value(json_array_get(msg, 1));
    json_t *value = json_array_get(msg, 2), *ttl = json_array_get(msg, 3), *old, *entry;
    json_int_t gen = ++kv->next_gen;

    json_int_t ms = 0;

    if (key == NULL || (ttl != NULL && !gs_json_int_in(ttl, 0, KV_MAX_TTL_MS, &ms)))
        return gs_msg_error("bad_request");
    old = json_object_get(kv->entries, key);
    if (old == NULL && (json_int_t)json_object_size(kv->entries) >= kv->max_keys)
        return gs_msg_error("full");
    json_int_t grow =
        (json_int_t)(strlen(key) + gs_json_size(value)) - (old != NULL ? entry_bytes(key, old) : 0);
    if (kv->bytes + grow > kv->max_bytes)
        return gs_msg_error("full");
    if (old != NULL)
        cancel_entry_timer(self, old);
    entry = json_pack("{sOsIsn}", "value", value, "gen", gen, "deadline");
    if (entry == NULL)
        return gs_msg_error("out_of_memory");
    if (ttl != NULL) {
        gs_timer_ref_t ref = 0;

        /* The expiry is a message to this incarnation: a restarted store starts empty, and
         * its predecessor's timers are dropped by the runtime. */
        if (gs_send_after_server(self, json_pack("[ssI]", "expire", key, gen), (uint64_t)ms,
                                 &ref) == 0) {
            json_object_set_new(entry, "deadline", json_integer(now_ms() + ms));
            json_object_set_new(entry, "timer", json_integer((json_int_t)ref));
        }
    }
    json_object_set_new(kv->entries, key, entry);
    kv->bytes += grow;
    return json_string("ok");
}

static json_t *kv_delete(gs_server_t *self, kv_t *kv, const char *key)
{
    json_t *old = json_object_get(kv->entries, key);

    if (old != NULL) {
        cancel_entry_timer(self, old);
        kv->bytes -= entry_bytes(key, old);
        json_object_del(kv->entries, key);
    }
    return json_string("ok");
}

/* ["put", KEY, VALUE] or ["put", KEY, VALUE, TTL_MS] */
static bool is_put(const json_t *msg)
{
    return gs_msg_is_tuple(msg, "put", 3) || gs_msg_is_tuple(msg, "put", 4);
}

static json_t *kv_answer(gs_server_t *self, kv_t *kv, json_t *msg)
{
    const char *key = json_string_value(json_array_get(msg, 1));

    if (gs_msg_is_atom(msg, "size"))
        return json_integer((json_int_t)json_object_size(kv->entries));
    if (gs_msg_is_atom(msg, "keys")) {
        json_t *keys = json_array();
        const char *k;
        json_t *v;

        json_object_foreach(kv->entries, k, v)
        {
            json_array_append_new(keys, json_string(k));
        }
        return keys;
    }
    if (is_put(msg))
        return kv_put(self, kv, msg);
    if (key == NULL)
        return gs_msg_error("bad_request");
    if (gs_msg_is_tuple(msg, "get", 2)) {
        json_t *e = json_object_get(kv->entries, key);

        return e ? json_pack("[sO]", "ok", json_object_get(e, "value")) : json_string("not_found");
    }
    if (gs_msg_is_tuple(msg, "ttl", 2)) {
        json_t *e = json_object_get(kv->entries, key), *d;

        if (e == NULL)
            return json_string("not_found");
        d = json_object_get(e, "deadline");
        if (!json_is_integer(d))
            return json_pack("[sn]", "ok");
        json_int_t left = json_integer_value(d) - now_ms();
        return json_pack("[sI]", "ok", left > 0 ? left : 0);
    }
    if (gs_msg_is_tuple(msg, "delete", 2))
        return kv_delete(self, kv, key);
    return gs_msg_error("bad_request");
}

static gs_result_t kv_handle_call(gs_server_t *self, void *state, json_t *msg, gs_from_t from)
{
    (void)from;
    return GS_REPLY(kv_answer(self, state, msg));
}

static gs_result_t kv_handle_cast(gs_server_t *self, void *state, json_t *msg)
{
    /* Casts of "put" and "delete" only; there is nobody to tell about a bad one. */
    if (is_put(msg) || gs_msg_is_tuple(msg, "delete", 2))
        json_decref(kv_answer(self, state, msg));
    return GS_NOREPLY;
}

static gs_result_t kv_handle_info(gs_server_t *self, void *state, json_t *msg)
{
    kv_t *kv = state;
    const char *key = json_string_value(json_array_get(msg, 1));
    json_t *gen = json_array_get(msg, 2), *e;

    (void)self;
    if (!gs_msg_is_tuple(msg, "expire", 3) || key == NULL || !json_is_integer(gen))
        return GS_NOREPLY;
    e = json_object_get(kv->entries, key);
    /* Only the write that scheduled this expiry may be expired by it. */
    if (e != NULL && json_integer_value(json_object_get(e, "gen")) == json_integer_value(gen)) {
        kv->bytes -= entry_bytes(key, e);
        json_object_del(kv->entries, key);
    }
    return GS_NOREPLY;
}

static void kv_terminate(gs_server_t *self, json_t *reason, void *state)
{
    kv_t *kv = state;

    (void)self;
    (void)reason;
    json_decref(kv->entries);
    free(kv);
}

static json_t *kv_format_state(gs_server_t *self, void *state)
{
    kv_t *kv = state;
    json_t *entries = json_object(), *e;
    json_int_t now = now_ms();
    const char *k;

    (void)self;
    json_object_foreach(kv->entries, k, e)
    {
        json_t *d = json_object_get(e, "deadline");
        json_int_t left = json_is_integer(d) ? json_integer_value(d) - now : 0;

        json_object_set_new(
            entries, k,
            json_pack("{sOso}", "value", json_object_get(e, "value"), "ttl_ms",
                      json_is_integer(d) ? json_integer(left > 0 ? left : 0) : json_null()));
    }
    return json_pack("{sIsIsIsIso}", "size", (json_int_t)json_object_size(kv->entries), "bytes",
                     kv->bytes, "max_keys", kv->max_keys, "max_bytes", kv->max_bytes, "entries",
                     entries);
}

static const gs_message_doc_t kv_messages[] = {
    {"call", "[\"put\", \"greeting\", \"hello\", 5000]",
     "Store a value; with a fourth element it expires after that many ms."},
    {"call", "[\"get\", \"greeting\"]", "Fetch a value: [\"ok\", value] or \"not_found\"."},
    {"call", "[\"ttl\", \"greeting\"]", "Milliseconds left before the key expires (null: never)."},
    {"call", "[\"delete\", \"greeting\"]", "Remove a key."},
    {"call", "\"keys\"", "Every key."},
    {"call", "\"size\"", "How many keys are stored."},
    {"cast", "[\"put\", \"greeting\", \"hello\"]", "Store a value without waiting."},
    {"cast", "[\"delete\", \"greeting\"]", "Remove a key without waiting."},
    {NULL, NULL, NULL},
};

static const gs_behaviour_t kv_behaviour = {
    .name = "kv",
    .description = "A key-value store whose keys can expire (an example plugin).",
    .args_doc = "{\"max_keys\": 100000, \"max_bytes\": 67108864}",
    .messages = kv_messages,
    .init = kv_init,
    .handle_call = kv_handle_call,
    .handle_cast = kv_handle_cast,
    .handle_info = kv_handle_info,
    .terminate = kv_terminate,
    .format_state = kv_format_state,
};

static const gs_behaviour_t *const behaviours[] = {&kv_behaviour};

/* What genserv --plugin looks up (GS_PLUGIN_SYMBOL): the one symbol this object exports
 * (the build hides the rest). */
GS_PLUGIN_EXPORT const gs_plugin_t gs_plugin = {
    .abi_version = GS_PLUGIN_ABI_VERSION,
    .behaviours = behaviours,
    .count = sizeof(behaviours) / sizeof(behaviours[0]),
};
