/*
 * load.c: the Lua host. Behaviours by name, each a chain of versions; registering them with the
 * runtime; hot upgrades and the code_change that carries a server from one version to the next.
 *
 * API (genserv/lua.h):
 *   gs_lua_create / gs_lua_destroy      the host of a runtime, and every version freed
 *   gs_lua_load                         compile (a throwaway sandbox runs the chunk and checks
 *                                       its table), then gs_behaviour_register_as(.., "lua")
 *   gs_lua_upgrade                      compile; gs_behaviour_replace; then for the previous
 *                                       version and every older one still run,
 *                                       gs_behaviour_upgrade(old, new): each server's
 *                                       code_change (below) switches it between two messages
 *   gs_lua_delete                       gs_behaviour_unregister, unless a server runs any
 *                                       version of it
 *   gs_lua_describe, gs_lua_has, gs_lua_load_dir
 *
 * Each version is its own gs_behaviour_t (name, vsn, description, docs), so that the runtime
 * knows which servers run which code. A version that is no longer the current one is freed by
 * a sweep (on every load, upgrade and delete, and at destroy) once gs_behaviour_users says no
 * server runs it, no upgrade in flight names it (pins), and a grace period has passed since
 * it was replaced: gs_behaviour_find hands out a borrowed pointer with nothing to hold it, so
 * a start that found the old version just before the swap must be given time to register its
 * server (then the runtime counts it).
 *
 * The runtime calls code_change without saying which version the server moves to, so the
 * host's upgrade wraps `extra` as {"$gs_lua_to": VERSION_ID, "extra": EXTRA}: code_change
 * finds the target by its id and gives the Lua code_change the caller's extra.
 *
 * Locking: the host's mutex guards the names and the list of versions; it is never held while
 * a Lua callback runs, and never while gs_behaviour_upgrade runs (its callback may run at once,
 * on this thread).
 */
#include "lua_internal.h"

#include <genserv/map.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define NAME_MAX_BYTES  255
#define RETIRE_GRACE_MS 2000

typedef struct entry_s {
    gs_map_node_t node; /* first; hash: gs_hash_bytes(name) */
    char *name;
    gs__lua_version_t *current;
} entry_t;

struct gs_lua_s {
    gs_runtime_t *rt;
    gs_lua_options_t opts;
    gs__lua_env_t env;
    pthread_mutex_t mu;
    gs_map_t entries;            /* guarded by mu */
    gs__lua_version_t *versions; /* every version still allocated; guarded by mu */
    uint64_t next_id;
};

static int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
    return gs__lua_now_ns() / 1000000;
}

static char *dup_str(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Options and the host                                                                       */
/* ---------------------------------------------------------------------------------------- */

void gs_lua_options_init(gs_lua_options_t *opts)
{
    memset(opts, 0, sizeof(*opts));
#define GS__LUA_DEFAULT(field, flag, key, min, max, dflt, metavar, help) opts->field = (dflt);
    GS_LUA_LIMITS_MAP(GS__LUA_DEFAULT)
#undef GS__LUA_DEFAULT
}

static bool options_valid(const gs_lua_options_t *o)
{
#define GS__LUA_CHECK(field, flag, key, min, max, dflt, metavar, help)                             \
    if (o->field < (uint64_t)(min) || o->field > (uint64_t)(max))                                  \
        return false;
    GS_LUA_LIMITS_MAP(GS__LUA_CHECK)
#undef GS__LUA_CHECK
    return o->memory_limit <= o->max_memory_limit &&
           o->instruction_limit <= o->max_instruction_limit;
}

static void random_key(uint64_t key[2])
{
    if (getrandom(key, 2 * sizeof(uint64_t), 0) == (ssize_t)(2 * sizeof(uint64_t)))
        return;
    /* No entropy source: unguessable enough for a MAC of call ids only if nothing better
     * exists; getrandom does not fail on Linux 3.17+ once the pool is seeded. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    key[0] = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)key;
    key[1] = (uint64_t)ts.tv_sec * 0xbf58476d1ce4e5b9ULL ^ (uint64_t)getpid();
}

int gs_lua_create(gs_runtime_t *rt, const gs_lua_options_t *opts, gs_lua_t **out)
{
    gs_lua_options_t dflt;
    if (out == NULL || rt == NULL)
        return GS_EINVAL;
    *out = NULL;
    if (opts == NULL) {
        gs_lua_options_init(&dflt);
        opts = &dflt;
    }
    if (!options_valid(opts))
        return GS_EINVAL;
    gs_lua_t *lua = calloc(1, sizeof(*lua));
    if (lua == NULL)
        return GS_ENOMEM;
    lua->rt = rt;
    lua->opts = *opts;
    if (opts->key != NULL)
        memcpy(lua->env.key, opts->key, sizeof(lua->env.key));
    else
        random_key(lua->env.key);
    lua->env.log = opts->log;
    lua->env.log_arg = opts->log_arg;
    pthread_mutex_init(&lua->mu, NULL);
    gs_map_init(&lua->entries);
    lua->next_id = 1;
    *out = lua;
    return 0;
}

static void version_free(gs__lua_version_t *v)
{
    if (v == NULL)
        return;
    free(v->name);
    free(v->vsn);
    free(v->description);
    free(v->args_doc);
    free(v->messages);
    free(v->source);
    free(v);
}

static bool free_entry(gs_map_node_t *node, void *arg)
{
    (void)arg;
    entry_t *e = (entry_t *)node;
    free(e->name);
    free(e);
    return true;
}

void gs_lua_destroy(gs_lua_t *lua)
{
    if (lua == NULL)
        return;
    gs__lua_version_t *v = lua->versions;
    while (v != NULL) {
        gs__lua_version_t *next = v->next;
        version_free(v);
        v = next;
    }
    gs_map_filter(&lua->entries, free_entry, NULL);
    gs_map_close(&lua->entries);
    pthread_mutex_destroy(&lua->mu);
    free(lua);
}

/* ---------------------------------------------------------------------------------------- */
/* Names and versions (under mu)                                                             */
/* ---------------------------------------------------------------------------------------- */

static bool entry_is(const gs_map_node_t *node, const void *key)
{
    return strcmp(((const entry_t *)node)->name, key) == 0;
}

static entry_t *entry_find(gs_lua_t *lua, const char *name)
{
    return (entry_t *)gs_map_find(&lua->entries, gs_hash_bytes(name, strlen(name)), name, entry_is);
}

static void version_link(gs_lua_t *lua, gs__lua_version_t *v)
{
    v->id = lua->next_id++;
    v->next = lua->versions;
    if (lua->versions != NULL)
        lua->versions->prev = v;
    lua->versions = v;
}

static void version_unlink(gs_lua_t *lua, gs__lua_version_t *v)
{
    if (v->prev != NULL)
        v->prev->next = v->next;
    else
        lua->versions = v->next;
    if (v->next != NULL)
        v->next->prev = v->prev;
}

static gs__lua_version_t *version_by_id(gs_lua_t *lua, uint64_t id)
{
    for (gs__lua_version_t *v = lua->versions; v != NULL; v = v->next)
        if (v->id == id)
            return v;
    return NULL;
}

/* Free the retired versions nobody runs, names or may still be starting. */
static void sweep_locked(gs_lua_t *lua, bool all)
{
    int64_t now = mono_ms();
    gs__lua_version_t *v = lua->versions;
    while (v != NULL) {
        gs__lua_version_t *next = v->next;
        /* acquire: pairs with the release of the upgrade that unpinned it */
        if (v->retired_ms != 0 && atomic_load_explicit(&v->pins, memory_order_acquire) == 0 &&
            (all || now - v->retired_ms >= RETIRE_GRACE_MS) &&
            gs_behaviour_users(lua->rt, &v->b) == 0) {
            version_unlink(lua, v);
            version_free(v);
        }
        v = next;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Compiling a version                                                                        */
/* ---------------------------------------------------------------------------------------- */

static const char *const callbacks[] = {"init",        "handle_call",     "handle_cast",
                                        "handle_info", "handle_continue", "terminate",
                                        "code_change", "format_status",   "restored"};
enum {
    CB_INIT,
    CB_CALL,
    CB_CAST,
    CB_INFO,
    CB_CONTINUE,
    CB_TERMINATE,
    CB_CODE_CHANGE,
    CB_FORMAT,
    CB_RESTORED,
    CB_COUNT
};

/* What the chunk's table says, gathered inside the protected inspection (every pointer is
 * stored as soon as it is made, so that a raise leaks nothing: the caller frees them). */
typedef struct inspect_s {
    const gs__lua_version_t *v;
    char *vsn, *description, *args_doc;
    gs_message_doc_t *messages; /* with the strings in the same block */
    bool has[CB_COUNT];
    bool notify_caller_gone, durable;
} inspect_t;

/* Whether s is valid UTF-8 (jansson's own check, without NULs). */
static bool utf8_valid(const char *s)
{
    json_t *j = json_string(s);
    json_decref(j);
    return j != NULL;
}

/* A string field of the table at t (nil: NULL), as a new C string; raises if not a string. */
static char *opt_string(lua_State *L, int t, const char *field, bool numbers)
{
    lua_getfield(L, t, field); /* the table is the script's: a plain lookup */
    char *out = NULL;
    if (lua_type(L, -1) == LUA_TSTRING || (numbers && lua_type(L, -1) == LUA_TNUMBER)) {
        /* Listings are JSON (gs_behaviours_json): a string JSON cannot hold would drop the
         * behaviour from them. */
        if (!utf8_valid(lua_tostring(L, -1)))
            luaL_error(L, "the behaviour's %s is not valid UTF-8", field);
        out = strdup(lua_tostring(L, -1));
        if (out == NULL)
            luaL_error(L, "out of memory");
    } else if (!lua_isnil(L, -1)) {
        luaL_error(L, "the behaviour's %s must be a string, not %s", field, luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    return out;
}

/* v (at idx) as JSON text (new C string); raises when JSON cannot hold it. */
static char *json_text(lua_State *L, int idx, const char *root)
{
    char err[200];
    json_t *j = gs__lua_to_json(L, idx, root, 0, NULL, err, sizeof(err));
    if (j == NULL)
        luaL_error(L, "bad_value: %s", err);
    char *text = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);
    json_decref(j);
    if (text == NULL)
        luaL_error(L, "out of memory");
    return text;
}

/* messages = {{kind = "call", example = {"push", 1}, description = "..."}, ...} */
static void inspect_messages(lua_State *L, int t, inspect_t *in)
{
    lua_getfield(L, t, "messages");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return;
    }
    luaL_argexpected(L, lua_istable(L, -1), 1, "a table of message docs");
    int m = lua_gettop(L);
    lua_Integer n = (lua_Integer)lua_rawlen(L, m);
    if (n > 1000)
        luaL_error(L, "the behaviour documents more than 1000 messages");
    /* First the texts, in a table of their own (kept on the stack), then one block. */
    size_t bytes = 0;
    lua_createtable(L, (int)n * 3, 0);
    int texts = lua_gettop(L);
    for (lua_Integer i = 1; i <= n; i++) {
        if (lua_rawgeti(L, m, i) != LUA_TTABLE)
            luaL_error(L, "messages[%d] must be a table", (int)i);
        int d = lua_gettop(L);
        lua_getfield(L, d, "kind");
        const char *kind = lua_tostring(L, -1);
        if (kind == NULL ||
            (strcmp(kind, "call") != 0 && strcmp(kind, "cast") != 0 && strcmp(kind, "info") != 0))
            luaL_error(L, "messages[%d].kind must be \"call\", \"cast\" or \"info\"", (int)i);
        lua_rawseti(L, texts, i * 3 - 2);
        lua_getfield(L, d, "example");
        char *ex = json_text(L, lua_gettop(L), "example");
        lua_pushstring(L, ex);
        free(ex);
        lua_rawseti(L, texts, i * 3 - 1);
        lua_pop(L, 1);
        lua_getfield(L, d, "description");
        if (!lua_isnil(L, -1) &&
            (lua_type(L, -1) != LUA_TSTRING || !utf8_valid(lua_tostring(L, -1))))
            luaL_error(L, "messages[%d].description must be a UTF-8 string", (int)i);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            lua_pushliteral(L, "");
        }
        lua_rawseti(L, texts, i * 3);
        lua_pop(L, 1);
    }
    for (lua_Integer i = 1; i <= n * 3; i++) {
        size_t len;
        lua_rawgeti(L, texts, i);
        lua_tolstring(L, -1, &len);
        bytes += len + 1;
        lua_pop(L, 1);
    }
    size_t head = ((size_t)n + 1) * sizeof(gs_message_doc_t);
    in->messages = calloc(1, head + bytes);
    if (in->messages == NULL)
        luaL_error(L, "out of memory");
    char *p = (char *)in->messages + head;
    for (lua_Integer i = 0; i < n; i++) {
        const char **fields[3] = {&in->messages[i].kind, &in->messages[i].example,
                                  &in->messages[i].description};
        for (int f = 0; f < 3; f++) {
            size_t len;
            lua_rawgeti(L, texts, i * 3 + f + 1);
            const char *s = lua_tolstring(L, -1, &len);
            memcpy(p, s, len + 1);
            *fields[f] = p;
            p += len + 1;
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 2);
}

static int tramp_inspect(lua_State *L)
{
    inspect_t *in = lua_touserdata(L, 1);
    gs__lua_load_chunk(L, in->v->source, in->v->len, in->v->chunkname);
    int t = lua_gettop(L);
    bool any = false;
    for (int i = 0; i < CB_COUNT; i++) {
        lua_getfield(L, t, callbacks[i]);
        if (!lua_isnil(L, -1) && !lua_isfunction(L, -1))
            luaL_error(L, "%s: %s must be a function, not %s", in->v->name, callbacks[i],
                       luaL_typename(L, -1));
        in->has[i] = lua_isfunction(L, -1);
        any = any || (i <= CB_INFO && in->has[i]);
        lua_pop(L, 1);
    }
    if (!any)
        luaL_error(L, "%s: the table has none of init, handle_call, handle_cast, handle_info",
                   in->v->name);
    in->vsn = opt_string(L, t, "vsn", true);
    in->description = opt_string(L, t, "description", false);
    lua_getfield(L, t, "args");
    if (!lua_isnil(L, -1))
        in->args_doc = json_text(L, lua_gettop(L), "args");
    lua_pop(L, 1);
    lua_getfield(L, t, "notify_caller_gone");
    in->notify_caller_gone = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, t, "durable");
    in->durable = lua_toboolean(L, -1);
    lua_pop(L, 1);
    inspect_messages(L, t, in);
    return 0;
}

/* *err from a crash reason (taken): Lua's message for a lua_error, else the reason as text. */
static json_t *err_of(json_t *reason)
{
    json_t *msg = json_array_get(reason, 1);
    json_t *out;
    if (json_is_string(msg) &&
        strcmp(json_string_value(json_array_get(reason, 0)), "lua_error") == 0) {
        out = json_incref(msg);
    } else {
        char *text = json_dumps(reason, JSON_ENCODE_ANY | JSON_COMPACT);
        out = json_string(text != NULL ? text : "the chunk does not load");
        free(text);
    }
    json_decref(reason);
    return out;
}

/* Read {"memory_bytes": N, "instructions": N} (borrowed) into *mem and *ins. */
static int parse_limits(gs_lua_t *lua, json_t *limits, uint64_t *mem, uint64_t *ins, json_t **err)
{
    const char *key;
    json_t *value;
    if (limits == NULL || json_is_null(limits))
        return 0;
    if (!json_is_object(limits)) {
        *err = json_string("limits must be an object {\"memory_bytes\", \"instructions\"}");
        return GS_EINVAL;
    }
    json_object_foreach(limits, key, value)
    {
        bool is_mem = strcmp(key, "memory_bytes") == 0;
        if (!is_mem && strcmp(key, "instructions") != 0) {
            *err = json_sprintf("unknown limit \"%s\" (memory_bytes, instructions)", key);
            return GS_EINVAL;
        }
        json_int_t n = json_is_integer(value) ? json_integer_value(value) : -1;
        uint64_t min = is_mem ? 65536 : 1000;
        uint64_t max = is_mem ? lua->opts.max_memory_limit : lua->opts.max_instruction_limit;
        if (n < 0 || (uint64_t)n < min || (uint64_t)n > max) {
            *err = json_sprintf("limits.%s must be an integer from %llu to %llu", key,
                                (unsigned long long)min, (unsigned long long)max);
            return GS_EINVAL;
        }
        *(is_mem ? mem : ins) = (uint64_t)n;
    }
    return 0;
}

/*
 * A new version of name from source, checked in a throwaway sandbox; not linked or registered.
 * limits NULL: mem and ins as given (the host's defaults, or the behaviour's for an upgrade).
 */
static int compile(gs_lua_t *lua, const char *name, const char *vsn, const char *source, size_t len,
                   json_t *limits, uint64_t mem, uint64_t ins, bool has_limits,
                   gs__lua_version_t **out, json_t **err)
{
    json_t *reason = NULL;
    *out = NULL;
    if (name == NULL || name[0] == '\0' || strlen(name) > NAME_MAX_BYTES || !utf8_valid(name)) {
        *err = json_string("a behaviour's name is 1 to 255 bytes of UTF-8");
        return GS_EINVAL;
    }
    if (source == NULL) {
        *err = json_string("no source");
        return GS_EINVAL;
    }
    if (len > lua->opts.max_source_bytes) {
        *err = json_sprintf("the source is %zu bytes, more than lua-max-source-bytes (%llu)", len,
                            (unsigned long long)lua->opts.max_source_bytes);
        return GS_EINVAL;
    }
    if (limits != NULL && !json_is_null(limits)) {
        int rc = parse_limits(lua, limits, &mem, &ins, err);
        if (rc != 0)
            return rc;
        has_limits = true;
    }
    gs__lua_version_t *v = calloc(1, sizeof(*v));
    if (v == NULL || (v->name = strdup(name)) == NULL || (v->source = malloc(len + 1)) == NULL) {
        version_free(v);
        return GS_ENOMEM;
    }
    memcpy(v->source, source, len);
    v->source[len] = '\0';
    v->len = len;
    v->host = lua;
    v->env = &lua->env;
    snprintf(v->chunkname, sizeof(v->chunkname), "=%s", name);
    v->memory_limit = mem;
    v->instruction_limit = ins;
    v->max_memory_limit = lua->opts.max_memory_limit;
    v->max_instruction_limit = lua->opts.max_instruction_limit;
    v->has_limits = has_limits;
    v->loaded_at_ms = unix_ms();
    atomic_init(&v->pins, 0);

    /* Run it once, as a server's state would, to check and read its table. */
    gs__lua_box_t box;
    inspect_t in = {.v = v};
    lua_State *L = gs__lua_sandbox_create(&box, (size_t)mem, ins, &lua->env, &reason);
    int status = LUA_ERRRUN;
    if (L != NULL) {
        lua_pushcfunction(L, tramp_inspect);
        lua_pushlightuserdata(L, &in);
        status = gs__lua_pcall(L, 1, 0, ins, &reason);
        gs__lua_sandbox_close(L);
    }
    if (status != LUA_OK) {
        free(in.vsn);
        free(in.description);
        free(in.args_doc);
        free(in.messages);
        version_free(v);
        *err = err_of(reason);
        return GS_EINVAL;
    }
    if (vsn != NULL) {
        free(in.vsn);
        in.vsn = dup_str(vsn);
    }
    v->vsn = in.vsn;
    v->description = in.description;
    v->args_doc = in.args_doc;
    v->messages = in.messages;
    v->has_terminate = in.has[CB_TERMINATE];
    v->has_format_status = in.has[CB_FORMAT];

    gs_behaviour_t *b = &v->b;
    b->name = v->name;
    b->description = v->description;
    b->args_doc = v->args_doc;
    b->messages = v->messages;
    b->vsn = v->vsn;
    b->init = gs__lua_init;
    /* A callback the table lacks stays NULL: the runtime's OTP defaults apply. */
    b->handle_call = in.has[CB_CALL] ? gs__lua_handle_call : NULL;
    b->handle_cast = in.has[CB_CAST] ? gs__lua_handle_cast : NULL;
    b->handle_info = in.has[CB_INFO] ? gs__lua_handle_info : NULL;
    /* handle_continue always: it also runs the stop a restored callback asked for (adapter.c),
     * and stands in for a missing one exactly as the runtime would (["undef", ...]). */
    b->handle_continue = gs__lua_handle_continue;
    /* These always: they free the server's Lua state, show it, shrink it, move it. */
    b->terminate = gs__lua_terminate;
    b->format_state = gs__lua_format_state;
    b->hibernate = gs__lua_hibernate;
    b->code_change = NULL;                    /* set by the caller (it lives in this file) */
    b->replace_state = gs__lua_replace_state; /* accepts the JSON unless the table checks */
    b->notify_caller_gone = in.notify_caller_gone;
    /* Every Lua state can be stored (adapter.c: the state as JSON); M.durable = true makes
     * every server of the behaviour durable, whatever its start says. */
    b->durable = in.durable;
    b->dump_state = gs__lua_dump_state;
    b->restore = gs__lua_restore;
    b->restored = in.has[CB_RESTORED] ? gs__lua_restored : NULL;
    *out = v;
    return 0;
}

static int lua_code_change(gs_server_t *self, const char *old_vsn, void **state, json_t *extra,
                           json_t **reason);

/* ---------------------------------------------------------------------------------------- */
/* load, delete, describe                                                                     */
/* ---------------------------------------------------------------------------------------- */

int gs_lua_load(gs_lua_t *lua, const char *name, const char *vsn, const char *source, size_t len,
                json_t *limits, json_t **err)
{
    gs__lua_version_t *v = NULL;
    json_t *ignored = NULL;
    if (err == NULL)
        err = &ignored;
    *err = NULL;
    if (lua == NULL)
        return GS_EINVAL;
    if (name != NULL && gs_behaviour_find(lua->rt, name) != NULL)
        return GS_EEXIST; /* before compiling: a taken name need not be compiled */
    int rc = compile(lua, name, vsn, source, len, limits, lua->opts.memory_limit,
                     lua->opts.instruction_limit, false, &v, err);
    if (rc != 0) {
        json_decref(ignored);
        return rc;
    }
    v->b.code_change = lua_code_change;

    entry_t *e = calloc(1, sizeof(*e));
    if (e == NULL || (e->name = strdup(name)) == NULL) {
        free(e);
        version_free(v);
        return GS_ENOMEM;
    }
    e->current = v;
    pthread_mutex_lock(&lua->mu);
    sweep_locked(lua, false);
    if (gs_map_count(&lua->entries) >= lua->opts.max_behaviours)
        rc = GS_EOVERLOADED;
    else if (entry_find(lua, name) != NULL)
        rc = GS_EEXIST;
    else
        rc = gs_behaviour_register_as(lua->rt, &v->b, "lua");
    if (rc == 0) {
        rc = gs_map_insert(&lua->entries, &e->node, gs_hash_bytes(name, strlen(name)));
        if (rc != 0)
            gs_behaviour_unregister(lua->rt, name);
    }
    if (rc == 0)
        version_link(lua, v);
    pthread_mutex_unlock(&lua->mu);
    if (rc != 0) {
        free(e->name);
        free(e);
        version_free(v);
    }
    return rc;
}

/* Whether any version of name is run by a server (under mu). */
static bool in_use_locked(gs_lua_t *lua, const char *name)
{
    for (gs__lua_version_t *v = lua->versions; v != NULL; v = v->next)
        if (strcmp(v->name, name) == 0 && gs_behaviour_users(lua->rt, &v->b) > 0)
            return true;
    return false;
}

int gs_lua_delete(gs_lua_t *lua, const char *name)
{
    int rc = 0;
    if (lua == NULL || name == NULL)
        return GS_EINVAL;
    pthread_mutex_lock(&lua->mu);
    entry_t *e = entry_find(lua, name);
    if (e == NULL) {
        rc = GS_ENOBEHAVIOUR;
    } else if (in_use_locked(lua, name)) {
        rc = GS_EINUSE;
    } else if ((rc = gs_behaviour_unregister(lua->rt, name)) == 0) {
        gs_map_unlink(&lua->entries, &e->node);
        e->current->retired_ms = mono_ms();
        free(e->name);
        free(e);
    }
    sweep_locked(lua, false);
    pthread_mutex_unlock(&lua->mu);
    return rc;
}

bool gs_lua_has(gs_lua_t *lua, const char *name)
{
    if (lua == NULL || name == NULL)
        return false;
    pthread_mutex_lock(&lua->mu);
    bool has = entry_find(lua, name) != NULL;
    pthread_mutex_unlock(&lua->mu);
    return has;
}

static int by_string(const void *a, const void *b)
{
    return strcmp(json_string_value(*(json_t *const *)a), json_string_value(*(json_t *const *)b));
}

json_t *gs_lua_describe(gs_lua_t *lua, const char *name)
{
    if (lua == NULL || name == NULL)
        return NULL;
    pthread_mutex_lock(&lua->mu);
    entry_t *e = entry_find(lua, name);
    if (e == NULL) {
        pthread_mutex_unlock(&lua->mu);
        return NULL;
    }
    const gs__lua_version_t *v = e->current;
    /* Servers of every version of it: one that kept old code after a failed upgrade too. */
    json_t *servers = json_array();
    for (gs__lua_version_t *o = lua->versions; o != NULL; o = o->next) {
        if (strcmp(o->name, name) != 0)
            continue;
        json_t *names = gs_behaviour_servers(lua->rt, &o->b);
        json_array_extend(servers, names);
        json_decref(names);
    }
    size_t n = json_array_size(servers);
    json_t **items = malloc((n ? n : 1) * sizeof(*items));
    if (items != NULL) {
        for (size_t i = 0; i < n; i++)
            items[i] = json_incref(json_array_get(servers, i));
        qsort(items, n, sizeof(*items), by_string);
        json_array_clear(servers);
        for (size_t i = 0; i < n; i++)
            json_array_append_new(servers, items[i]);
        free(items);
    }
    char when[40];
    time_t secs = (time_t)(v->loaded_at_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t w = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + w, sizeof(when) - w, ".%03dZ", (int)(v->loaded_at_ms % 1000));
    /* Lua takes any bytes in a comment or a string; JSON only UTF-8: the rest shows as '?'. */
    json_t *source = json_stringn(v->source, v->len);
    if (source == NULL) {
        char *copy = malloc(v->len + 1);
        for (size_t i = 0; copy != NULL && i < v->len; i++) {
            copy[i] = v->source[i];
            if ((unsigned char)copy[i] >= 0x80)
                copy[i] = '?';
        }
        source = copy != NULL ? json_stringn(copy, v->len) : json_string("");
        free(copy);
    }
    json_t *out =
        json_pack("{s:s, s:s, s:s?, s:s?, s:o, s:{s:I, s:I}, s:o, s:s}", "name", v->name, "kind",
                  "lua", "vsn", v->vsn, "description", v->description, "source", source, "limits",
                  "memory_bytes", (json_int_t)v->memory_limit, "instructions",
                  (json_int_t)v->instruction_limit, "servers", servers, "loaded_at", when);
    pthread_mutex_unlock(&lua->mu);
    return out;
}

/* ---------------------------------------------------------------------------------------- */
/* Upgrade                                                                                    */
/* ---------------------------------------------------------------------------------------- */

/* One gs_lua_upgrade: the outcomes of its gs_behaviour_upgrade calls, gathered. */
typedef struct agg_s {
    atomic_int pending; /* calls whose callback has not run, plus the posting's share */
    pthread_mutex_t mu;
    json_t *outcomes; /* guarded by mu */
    gs_upgrade_cb cb;
    void *arg;
    size_t npinned;
    gs__lua_version_t *pinned[]; /* each pinned once */
} agg_t;

static void agg_release(agg_t *a)
{
    /* acq_rel: the last one sees every outcome appended before */
    if (atomic_fetch_sub_explicit(&a->pending, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < a->npinned; i++) /* release: see sweep_locked */
        atomic_fetch_sub_explicit(&a->pinned[i]->pins, 1, memory_order_release);
    json_t *outcomes = a->outcomes;
    if (a->cb != NULL)
        a->cb(outcomes, a->arg);
    else
        json_decref(outcomes);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

static void agg_cb(json_t *outcomes, void *arg)
{
    agg_t *a = arg;
    pthread_mutex_lock(&a->mu);
    json_array_extend(a->outcomes, outcomes);
    pthread_mutex_unlock(&a->mu);
    json_decref(outcomes);
    agg_release(a);
}

int gs_lua_upgrade(gs_lua_t *lua, const char *name, const char *vsn, const char *source, size_t len,
                   json_t *limits, json_t *extra, gs_upgrade_cb cb, void *arg, json_t **err)
{
    json_t *ignored = NULL;
    if (err == NULL)
        err = &ignored;
    *err = NULL;
    if (lua == NULL || name == NULL)
        return GS_EINVAL;
    pthread_mutex_lock(&lua->mu);
    entry_t *e = entry_find(lua, name);
    uint64_t mem = 0, ins = 0;
    bool had = false;
    if (e != NULL) {
        mem = e->current->memory_limit;
        ins = e->current->instruction_limit;
        had = e->current->has_limits;
    }
    pthread_mutex_unlock(&lua->mu);
    if (e == NULL)
        return GS_ENOBEHAVIOUR;

    gs__lua_version_t *to = NULL;
    int rc = compile(lua, name, vsn, source, len, limits, mem, ins, had, &to, err);
    if (rc != 0) {
        json_decref(ignored);
        return rc;
    }
    to->b.code_change = lua_code_change;

    pthread_mutex_lock(&lua->mu);
    e = entry_find(lua, name);
    size_t n = 0;
    for (gs__lua_version_t *v = lua->versions; v != NULL; v = v->next)
        n += strcmp(v->name, name) == 0;
    agg_t *a = calloc(1, sizeof(*a) + (n + 1) * sizeof(a->pinned[0]));
    const gs_behaviour_t *old = NULL;
    if (e == NULL) {
        rc = GS_ENOBEHAVIOUR; /* deleted meanwhile */
    } else if (a == NULL || (a->outcomes = json_array()) == NULL) {
        rc = GS_ENOMEM;
    } else {
        rc = gs_behaviour_replace(lua->rt, &to->b, &old);
    }
    if (rc != 0) {
        pthread_mutex_unlock(&lua->mu);
        if (a != NULL)
            json_decref(a->outcomes);
        free(a);
        version_free(to);
        return rc;
    }
    gs__lua_version_t *prev = e->current;
    prev->retired_ms = mono_ms();
    e->current = to;
    version_link(lua, to);
    /* The servers to move: those of the previous version, and of any older one still run
     * (a server whose earlier code_change failed). Each pinned until its answer is in. */
    a->cb = cb;
    a->arg = arg;
    pthread_mutex_init(&a->mu, NULL);
    atomic_fetch_add_explicit(&to->pins, 1, memory_order_relaxed);
    a->pinned[a->npinned++] = to;
    for (gs__lua_version_t *v = lua->versions; v != NULL; v = v->next) {
        if (v == to || strcmp(v->name, name) != 0 ||
            (v != prev && gs_behaviour_users(lua->rt, &v->b) == 0))
            continue;
        atomic_fetch_add_explicit(&v->pins, 1, memory_order_relaxed);
        a->pinned[a->npinned++] = v;
    }
    atomic_init(&a->pending, (int)a->npinned); /* one per old version, plus the posting */
    json_t *wrapped = json_pack("{s:I, s:O?}", "$gs_lua_to", (json_int_t)to->id, "extra", extra);
    pthread_mutex_unlock(&lua->mu);

    /* Outside the lock: a callback may run at once, on this thread. The posting's share of
     * a->pending, released after the loop, keeps a alive throughout it. */
    size_t nfrom = a->npinned;
    for (size_t i = 1; i < nfrom; i++) {
        gs__lua_version_t *from = a->pinned[i]; // NOLINT(clang-analyzer-unix.Malloc): see above
        int urc = wrapped != NULL
                      ? gs_behaviour_upgrade(lua->rt, &from->b, &to->b, wrapped, agg_cb, a)
                      : GS_ENOMEM;
        if (urc != 0)
            agg_release(a); /* refused up front: its callback never runs */
    }
    json_decref(wrapped);
    agg_release(a); /* the posting's share */ // NOLINT(clang-analyzer-unix.Malloc): see above
    return 0;
}

/*
 * The runtime's code_change for a server moving to a Lua version: which one, the wrapped
 * extra says (see the top of this file); the work is the adapter's, in the server's state.
 */
static int lua_code_change(gs_server_t *self, const char *old_vsn, void **state, json_t *extra,
                           json_t **reason)
{
    gs__lua_server_t *srv = *state;
    gs__lua_version_t *cur = gs__lua_server_version(srv);
    gs_lua_t *lua = cur->host;
    json_t *user_extra = extra;
    json_t *id = json_object_get(extra, "$gs_lua_to");
    (void)self;

    pthread_mutex_lock(&lua->mu);
    gs__lua_version_t *to = NULL;
    if (json_is_integer(id)) {
        to = version_by_id(lua, (uint64_t)json_integer_value(id));
        user_extra = json_object_get(extra, "extra");
    } else {
        /* Moved by someone else's gs_behaviour_upgrade: to the current version. */
        entry_t *e = entry_find(lua, cur->name);
        to = e != NULL ? e->current : NULL;
    }
    /* Pinned by the upgrade in flight (or current): safe to use once unlocked. */
    pthread_mutex_unlock(&lua->mu);
    if (to == NULL) {
        *reason = json_pack("[s, s]", "no_such_version", cur->name);
        return -1;
    }
    return gs__lua_server_code_change(srv, to, old_vsn, user_extra != NULL ? user_extra : NULL,
                                      reason);
}

/* ---------------------------------------------------------------------------------------- */
/* A directory                                                                                */
/* ---------------------------------------------------------------------------------------- */

static int is_lua_file(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    return n > 4 && d->d_name[0] != '.' && strcmp(d->d_name + n - 4, ".lua") == 0;
}

/* Read path whole (at most max bytes): a new buffer and *len, or NULL with errno. */
static char *read_file(const char *path, uint64_t max, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        if (n == cap) {
            if (cap > max) {
                errno = EFBIG;
                free(buf);
                buf = NULL;
                break;
            }
            char *bigger = realloc(buf, cap * 2);
            if (bigger == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            free(buf);
            buf = NULL;
            break;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    *len = n;
    return buf;
}

int gs_lua_load_dir(gs_lua_t *lua, const char *dir, char *err, size_t errlen)
{
    struct dirent **names = NULL;
    char dummy[1];
    if (err == NULL || errlen == 0) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    err[0] = '\0';
    if (lua == NULL || dir == NULL) {
        snprintf(err, errlen, "no directory");
        return -1;
    }
    int n = scandir(dir, &names, is_lua_file, alphasort);
    if (n < 0) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        char path[4096], name[NAME_MAX_BYTES + 1];
        const char *file = names[i]->d_name;
        size_t flen = strlen(file) - 4;
        snprintf(path, sizeof(path), "%s/%s", dir, file);
        if (rc == 0 && flen > NAME_MAX_BYTES) {
            snprintf(err, errlen, "%s: the name is longer than 255 bytes", path);
            rc = -1;
        }
        if (rc == 0) {
            memcpy(name, file, flen);
            name[flen] = '\0';
            size_t len = 0;
            char *src = read_file(path, lua->opts.max_source_bytes, &len);
            json_t *why = NULL;
            int lrc = src == NULL ? GS_EINVAL : gs_lua_load(lua, name, NULL, src, len, NULL, &why);
            if (src == NULL)
                snprintf(err, errlen, "%s: %s", path, strerror(errno));
            else if (lrc != 0)
                snprintf(err, errlen, "%s: %s", path,
                         json_is_string(why) ? json_string_value(why) : gs_strerror(lrc));
            if (src == NULL || lrc != 0)
                rc = -1;
            json_decref(why);
            free(src);
        }
        free(names[i]);
    }
    free(names);
    return rc;
}
