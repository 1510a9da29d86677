/*
 * genserv/lua.h: behaviours written in Lua, loaded at run time and upgraded while they run
 * (library genserv_lua, runtime/lua/). See docs/lua.md (runtime/lua/README.md is its source)
 * for the language side: what a behaviour returns, the `gs` library, how JSON maps to Lua, and
 * the sandbox.
 *
 * The host compiles a behaviour's source, registers it with the runtime under its name (kind
 * "lua"), and gives each server of it a Lua state of its own: its globals, its memory (capped,
 * by allocator accounting) and an instruction budget per callback (the count hook). Uploading
 * a new version of a behaviour replaces it for new starts and upgrades the running servers one
 * by one between two of their messages, through the new code's code_change.
 *
 * API:
 *   gs_lua_options_init(&o);  gs_lua_create(rt, &o, &lua);      after gs_runtime_create
 *   gs_lua_load(lua, name, vsn, source, len, &err)              POST /behaviours
 *   gs_lua_upgrade(lua, name, vsn, source, len, extra, cb, arg, &err)   PUT /behaviours/NAME
 *   gs_lua_delete(lua, name)                                    DELETE /behaviours/NAME
 *   gs_lua_describe(lua, name)                                  GET /behaviours/NAME
 *   gs_lua_load_dir(lua, dir, err, errlen)                      --behaviours-dir at boot
 *   gs_runtime_destroy(rt); gs_lua_destroy(lua);                every server is gone first
 *
 * Threads: every function may be called from any thread except inside a Lua callback; the host
 * has its own lock. Callbacks of Lua servers run on the runtime's threads like any behaviour's.
 * Errors: 0 or a negative GS_E* code (genserv.h); an error about the source itself (syntax,
 * load, shape) also sets *err to a new JSON string with Lua's own message (line included).
 */
#ifndef GENSERV_LUA_H
#define GENSERV_LUA_H

#include <genserv/genserv.h>

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * XX(field, flag, config_key, min, max, default, metavar, help): the Lua host's settings,
 * fields of gs_lua_options_t. The genserv binary makes flags, environment variables and
 * config keys of them, as for the gateway's (GS_GATEWAY_LIMITS_MAP).
 */
#define GS_LUA_LIMITS_MAP(XX)                                                                      \
    XX(memory_limit, "lua-memory-limit", "limits.lua_memory_limit", 65536, 4294967296, 16777216,   \
       "BYTES",                                                                                    \
       "memory a Lua server may use, unless its behaviour or its start asks for another (up to "   \
       "lua-max-memory-limit); past it the server crashes with [\"memory_limit\", bytes].")        \
    XX(max_memory_limit, "lua-max-memory-limit", "limits.lua_max_memory_limit", 65536,             \
       17179869184, 268435456, "BYTES", "the most memory a behaviour or a start may ask for.")     \
    XX(instruction_limit, "lua-instruction-limit", "limits.lua_instruction_limit", 1000,           \
       10000000000, 10000000, "N",                                                                 \
       "Lua VM instructions one callback may run, unless its behaviour or its start asks for "     \
       "another (up to lua-max-instruction-limit); past it the server crashes with "               \
       "[\"cpu_limit\", instructions].")                                                           \
    XX(max_instruction_limit, "lua-max-instruction-limit", "limits.lua_max_instruction_limit",     \
       1000, 1000000000000, 1000000000, "N",                                                       \
       "the most instructions a behaviour or a start may ask for.")                                \
    XX(max_source_bytes, "lua-max-source-bytes", "limits.lua_max_source_bytes", 1024, 67108864,    \
       1048576, "BYTES", "the largest behaviour source accepted (400 past it).")                   \
    XX(max_behaviours, "lua-max-behaviours", "limits.lua_max_behaviours", 1, 1000000, 1000, "N",   \
       "Lua behaviours registered at once (503 overloaded past it).")

typedef struct gs_lua_options_s {
    uint64_t memory_limit;          /* bytes per server, by default */
    uint64_t max_memory_limit;      /* what a behaviour or a start may ask for at most */
    uint64_t instruction_limit;     /* per callback, by default */
    uint64_t max_instruction_limit; /* at most */
    uint64_t max_source_bytes;
    uint64_t max_behaviours;
    /*
     * Where gs.log() and print() go (NULL, the default: nowhere). Called on the thread running
     * the server's callback with level ("debug", "info", "warning" or "error"), the server's
     * name and the line (the arguments as text, separated by spaces), all borrowed for the
     * call; nothing is escaped (the caller's logger does that). Must not block.
     */
    void (*log)(const char *level, const char *server, const char *line, void *arg);
    void *log_arg;
    /*
     * The key that signs the `from` values and timer references Lua code holds (two words,
     * borrowed and copied; NULL, the default: drawn at random). A durable Lua server keeps
     * them in its state across a restart only if the next host has the same key: the binary
     * keeps it in its store (docs/durability.md).
     */
    const uint64_t *key;
} gs_lua_options_t;

typedef struct gs_lua_s gs_lua_t;

/** Fill opts with the defaults of GS_LUA_LIMITS_MAP. */
void gs_lua_options_init(gs_lua_options_t *opts);

/**
 * The Lua host for rt (borrowed; it must outlive the host's use: destroy the host after the
 * runtime). opts borrowed (NULL: the defaults). *out: owned by the caller.
 * @return 0, GS_EINVAL (an option out of range), GS_ENOMEM.
 */
int gs_lua_create(gs_runtime_t *rt, const gs_lua_options_t *opts, gs_lua_t **out);

/** Free the host and every version of every behaviour. After gs_runtime_destroy (no server
 *  may run Lua code any more). Accepts NULL. */
void gs_lua_destroy(gs_lua_t *lua);

/**
 * Compile source (len bytes, borrowed; text only: a binary chunk is refused), check that it
 * returns a table with at least one handler, and register it under name (borrowed, copied;
 * 1..255 bytes of UTF-8) with version vsn (borrowed, copied, may be NULL: then the table's
 * `vsn`). limits (borrowed, may be NULL): {"memory_bytes": N, "instructions": N}, this
 * behaviour's defaults instead of the host's (each from the map's minimum to the host's
 * maximum). err (may be NULL) receives a new JSON string on GS_EINVAL, else NULL.
 * @return 0; GS_EINVAL with *err (the source does not compile, load or return a table of
 *         callbacks; too large; a limit out of range); GS_EEXIST (the name is taken: by a
 *         built-in or plugin, or by a Lua behaviour, which gs_lua_upgrade replaces);
 *         GS_EOVERLOADED (max_behaviours); GS_ENOMEM.
 */
int gs_lua_load(gs_lua_t *lua, const char *name, const char *vsn, const char *source, size_t len,
                json_t *limits, json_t **err);

/**
 * A hot upgrade: compile source as gs_lua_load does (if it does not load, nothing changes:
 * GS_EINVAL with *err), make it the behaviour's code for new starts, and move every running
 * server of the behaviour to it between two of its messages, calling the new code's
 * code_change(old_vsn, state, extra) (extra borrowed). cb gets each server's outcome (see
 * gs_upgrade_cb); a server whose code_change fails or raises keeps its old code and state.
 * limits as for gs_lua_load (NULL: keep the behaviour's). name, vsn, source borrowed. cb may be
 * NULL (the outcomes are dropped); it runs once, on a runtime thread or at once on this one,
 * with outcomes taken, after the previous version's servers and those of any older version
 * still run have answered. err as for gs_lua_load.
 * @return 0 (cb will be called), GS_ENOBEHAVIOUR (no Lua behaviour of that name), GS_EINVAL,
 *         GS_ENOMEM.
 */
int gs_lua_upgrade(gs_lua_t *lua, const char *name, const char *vsn, const char *source, size_t len,
                   json_t *limits, json_t *extra, gs_upgrade_cb cb, void *arg, json_t **err);

/**
 * Unregister a Lua behaviour (name borrowed) and free its code once no server runs it.
 * @return 0, GS_ENOBEHAVIOUR (no Lua behaviour of that name), GS_EINUSE (a server runs it, or
 *         an older version of it).
 */
int gs_lua_delete(gs_lua_t *lua, const char *name);

/**
 * A Lua behaviour as JSON: {"name", "kind": "lua", "vsn", "source", "limits": {"memory_bytes",
 * "instructions"}, "servers": [NAME...] (of every version still run, sorted), "loaded_at": ISO
 * 8601, UTC, of the current version}. name borrowed. New reference, or NULL when no Lua
 * behaviour has that name. A source's bytes that are not UTF-8 are shown as '?'.
 */
json_t *gs_lua_describe(gs_lua_t *lua, const char *name);

/** Whether name (borrowed) is a Lua behaviour. */
bool gs_lua_has(gs_lua_t *lua, const char *name);

/**
 * Load every *.lua file of dir (the file name without .lua is the behaviour's name; its vsn
 * is the one the chunk's table gives as `vsn`, if any), in name order.
 * dir borrowed; err is the caller's buffer (may be NULL). Stops at the first file that does
 * not load; those before it stay loaded.
 * @return 0, or -1 with err (errlen bytes) naming the file and Lua's message.
 */
int gs_lua_load_dir(gs_lua_t *lua, const char *dir, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif /* GENSERV_LUA_H */
