/*
 * lua_internal.h: what the files of the Lua host (library genserv_lua) share, private to it.
 *
 * One file per concern, and calls point one way (scripts/layers.py checks that no two files
 * call each other):
 *   load.c      the host: versions of behaviours, the runtime's registry, upgrade, code_change
 *     -> adapter.c   the gs_behaviour_t callbacks: a server's Lua state, results, hibernation
 *     -> sandbox.c   a state: allocator accounting, the count hook, locked globals, the allowed
 *                    libraries (made at first use), the chunk
 *          -> gslib.c    the `gs` library -> convert.c   JSON <-> Lua
 *          -> pattern.c  string.find/match/gmatch/gsub with a step bound
 * What the lower files need of a state's accounting (the box, the budget) is inline here, so
 * that pattern.c and gslib.c charge work without calling back up into sandbox.c.
 */
#ifndef GS_LUA_INTERNAL_H
#define GS_LUA_INTERNAL_H

#include <genserv/lua.h>

#include <lauxlib.h>
#include <lua.h>

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Nesting bound of JSON <-> Lua conversions, the gateway's max_json_depth default. */
#define GS__LUA_MAX_DEPTH 64
/* Instructions between two runs of the count hook. */
#define GS__LUA_HOOK_EVERY 1000
/* The wall-clock backstop of a callback: its instruction budget times this many nanoseconds
 * (with a floor), for C work the count hook does not see (see sandbox.c). */
#define GS__LUA_NS_PER_STEP     100
#define GS__LUA_MIN_DEADLINE_NS 50000000LL

/* ---------------------------------------------------------------------------------------- */
/* The host-wide environment every state sees (read-only once the host is created)            */
/* ---------------------------------------------------------------------------------------- */

typedef struct gs__lua_env_s {
    uint64_t key[2]; /* SipHash key: `from` values and timer references carry a MAC */
    void (*log)(const char *level, const char *server, const char *line, void *arg);
    void *log_arg;
} gs__lua_env_t;

/** SipHash-2-4 of two 64-bit words under env's key (gslib.c). */
uint64_t gs__lua_mac(const gs__lua_env_t *env, uint64_t a, uint64_t b);

/* ---------------------------------------------------------------------------------------- */
/* The box: one state's accounting, the ud of its allocator                                   */
/* ---------------------------------------------------------------------------------------- */

typedef enum gs__lua_fatal_e {
    GS__LUA_FATAL_NONE = 0,
    GS__LUA_FATAL_CPU, /* the instruction budget or its wall-clock backstop ran out */
    GS__LUA_FATAL_MEM, /* an allocation was refused: no pcall may catch it */
} gs__lua_fatal_t;

typedef struct gs__lua_box_s {
    size_t used;         /* bytes Lua holds now */
    size_t limit;        /* the memory cap */
    uint64_t steps;      /* instructions (and charged C work) in this callback */
    uint64_t budget;     /* the instruction budget of a callback */
    int64_t deadline_ns; /* CLOCK_MONOTONIC: the backstop */
    unsigned every;      /* instructions between two runs of the count hook */
    int fatal;           /* gs__lua_fatal_t */
    bool refused;        /* the allocator refused a request past the cap */
    const gs__lua_env_t *env;
    lua_State *L; /* the state's main thread, for the allocator to arm the hook */
} gs__lua_box_t;

static inline gs__lua_box_t *gs__lua_box(lua_State *L)
{
    void *ud = NULL;
    lua_getallocf(L, &ud);
    return ud;
}

static inline int64_t gs__lua_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/** Raise the budget's error: from then on no pcall of the sandbox catches an error (sandbox.c),
 *  and the count hook raises again at every instruction. */
static inline int gs__lua_raise_cpu(lua_State *L)
{
    gs__lua_box_t *b = gs__lua_box(L);
    b->fatal = GS__LUA_FATAL_CPU;
    lua_pushliteral(L, "cpu_limit");
    return lua_error(L);
}

/**
 * Charge n steps of work done in C (a pattern match, a table shift) against the callback's
 * instruction budget, as if it were n VM instructions, and check the wall-clock backstop.
 * Raises cpu_limit past either.
 */
static inline void gs__lua_charge(lua_State *L, uint64_t n)
{
    gs__lua_box_t *b = gs__lua_box(L);
    b->steps += n;
    if (b->steps > b->budget || b->fatal != GS__LUA_FATAL_NONE || gs__lua_now_ns() > b->deadline_ns)
        gs__lua_raise_cpu(L);
}

/* ---------------------------------------------------------------------------------------- */
/* convert.c: JSON <-> Lua                                                                    */
/* ---------------------------------------------------------------------------------------- */

/* Registry key (its address): gs.array_mt. */
extern const char gs__lua_array_mt_key;
/* gs.null: a light userdata whose address is this. */
extern const char gs__lua_null;

/** Push gs.array_mt (created in the registry on first use). May raise (memory). */
void gs__lua_push_array_mt(lua_State *L);

/**
 * Push v (borrowed; NULL pushes nil) as a Lua value: objects become tables with string keys,
 * arrays sequences marked with gs.array_mt, null gs.null. marks (may be NULL): when set, the
 * arrays met in document order are marked only where its bit says so (a hibernated state's
 * exact metatables); nmarks bits. May raise a Lua error (memory, nesting): call it protected.
 */
void gs__lua_push_json(lua_State *L, json_t *v, const unsigned char *marks, size_t nmarks);

/* Flags of gs__lua_to_json. */
#define GS__LUA_STRICT 1u /* lossless or fail: for hibernation and dump_state (see convert.c) */
#define GS__LUA_SORTED 2u /* objects' keys in byte order, whatever Lua's: one text per value */

typedef struct gs__lua_marks_s {
    unsigned char *bits; /* malloc'd; bit i: the i-th array met carried gs.array_mt */
    size_t n, cap;
} gs__lua_marks_t;

/**
 * The value at idx as JSON: a new reference, or NULL with a sentence in err ("function at
 * state.handler"; err may be NULL). root names the value in that sentence. Never raises, runs
 * no Lua code and allocates nothing in L (metatables are not consulted, save gs.array_mt).
 * marks (may be NULL; STRICT only) receives which arrays were marked (the caller frees bits),
 * in the order Lua traverses the tables: not with SORTED, whose document order differs.
 */
json_t *gs__lua_to_json(lua_State *L, int idx, const char *root, unsigned flags,
                        gs__lua_marks_t *marks, char *err, size_t errlen);

/**
 * A copy of v (borrowed) whose objects have their keys in the order SORTED gives them, so that
 * JSON read back from a text (a hibernated state) dumps as the awake value would. A new
 * reference, or NULL when out of memory. Scalars are shared with v, not copied.
 */
json_t *gs__lua_json_sorted(json_t *v);

/* ---------------------------------------------------------------------------------------- */
/* gslib.c and pattern.c: libraries, opened at first use by sandbox.c                          */
/* ---------------------------------------------------------------------------------------- */

/** Fill the table at the top of the stack with the `gs` library. May raise (memory). */
void gs__lua_fill_gs(lua_State *L);
/** Push the Lua value of a call's `from`: {"$from", id, mac} marked as an array, so that it
 *  survives JSON (a message to another server) and gs.reply there checks its MAC. */
void gs__lua_push_from(lua_State *L, gs_from_t from);
/** gs.log's work, for print too: level and the arguments from index first on. */
int gs__lua_log_args(lua_State *L, const char *level, int first);

/* The pattern functions of the string library, with a step bound (pattern.c). */
int gs__lua_str_find(lua_State *L);
int gs__lua_str_match(lua_State *L);
int gs__lua_str_gmatch(lua_State *L);
int gs__lua_str_gsub(lua_State *L);

/* ---------------------------------------------------------------------------------------- */
/* sandbox.c: a state                                                                         */
/* ---------------------------------------------------------------------------------------- */

/**
 * A new sandboxed state whose allocator accounts in box (caller's memory, initialised here
 * with the memory limit, the instruction budget and env, borrowed): locked globals, the
 * allowed libraries made at first use, the count hook. Returns NULL with *reason (new) when
 * even that does not fit (nothing is then left to free).
 */
lua_State *gs__lua_sandbox_create(gs__lua_box_t *box, size_t limit, uint64_t budget,
                                  const gs__lua_env_t *env, json_t **reason);

/** Start a callback's budget: instructions (0: the box's), the backstop, the fatal flags. */
void gs__lua_budget_start(lua_State *L, uint64_t instructions);

/**
 * Compile source as text (a binary chunk is refused) named chunkname ("=NAME": errors read
 * "NAME:LINE: ..."), run it, and leave the table it returns on the stack. Call it protected
 * (inside gs__lua_pcall). Raises a Lua error when it does not compile, raises, or does not
 * return a table.
 */
void gs__lua_load_chunk(lua_State *L, const char *source, size_t len, const char *chunkname);

/**
 * lua_pcall(L, nargs, nresults) after gs__lua_budget_start(L, instructions): 0, or nonzero
 * with *reason (new) saying why: ["cpu_limit", N], ["memory_limit", bytes] or
 * ["lua_error", message].
 */
int gs__lua_pcall(lua_State *L, int nargs, int nresults, uint64_t instructions, json_t **reason);

/** A crash reason from a failed pcall whose error value is at the top (popped). New. */
json_t *gs__lua_error_reason(lua_State *L, int status);

/** Close L (runs no Lua code: finalizers are refused by the sandbox). Accepts NULL. */
void gs__lua_sandbox_close(lua_State *L);

/* ---------------------------------------------------------------------------------------- */
/* Versions (load.c owns them; adapter.c reads them)                                         */
/* ---------------------------------------------------------------------------------------- */

typedef struct gs__lua_version_s gs__lua_version_t;
struct gs__lua_version_s {
    gs_behaviour_t b; /* first: a server's gs_server_behaviour() leads back here */
    gs_lua_t *host;
    const gs__lua_env_t *env;
    uint64_t id;
    char *name, *vsn, *description, *args_doc;
    gs_message_doc_t *messages; /* its strings in the same allocation */
    char *source;
    size_t len;
    char chunkname[260];                              /* "=NAME" */
    uint64_t memory_limit, instruction_limit;         /* this version's defaults */
    uint64_t max_memory_limit, max_instruction_limit; /* the host's caps */
    bool has_limits;                                  /* the behaviour asked for its own */
    bool has_terminate, has_format_status;            /* callbacks worth waking a state for */
    int64_t loaded_at_ms;                             /* Unix time */
    int64_t retired_ms;             /* monotonic; 0 while it is the current version */
    atomic_int pins;                /* upgrades in flight that name it */
    gs__lua_version_t *prev, *next; /* the host's list of every version */
};

static inline gs__lua_version_t *gs__lua_version_of(const gs_behaviour_t *b)
{
    return (gs__lua_version_t *)b; /* b is the first member */
}

/* ---------------------------------------------------------------------------------------- */
/* adapter.c: the behaviour's callbacks                                                       */
/* ---------------------------------------------------------------------------------------- */

int gs__lua_init(gs_server_t *self, json_t *args, void **state, json_t **reason);
gs_result_t gs__lua_handle_call(gs_server_t *self, void *state, json_t *msg, gs_from_t from);
gs_result_t gs__lua_handle_cast(gs_server_t *self, void *state, json_t *msg);
gs_result_t gs__lua_handle_info(gs_server_t *self, void *state, json_t *msg);
gs_result_t gs__lua_handle_continue(gs_server_t *self, void *state, json_t *arg);
void gs__lua_terminate(gs_server_t *self, json_t *reason, void *state);
json_t *gs__lua_format_state(gs_server_t *self, void *state);
void gs__lua_hibernate(gs_server_t *self, void **state);
/** :sys.replace_state for every Lua behaviour: the table's replace_state(new, state) decides,
 *  or, without one, the new JSON becomes the state. next borrowed; *reason new on refusal. */
int gs__lua_replace_state(gs_server_t *self, void **state, json_t *next, json_t **reason);
/** Durability, for every Lua behaviour: the state as JSON, strictly and with sorted keys
 *  (new reference), or NULL with *reason (new) naming what JSON cannot hold. */
json_t *gs__lua_dump_state(gs_server_t *self, void *state, json_t **reason);
/** A server built from stored (borrowed) without the Lua init: at start (*state NULL), or in
 *  place of *state on a rollback (a fresh Lua state; the old one freed only on success). */
int gs__lua_restore(gs_server_t *self, json_t *stored, void **state, json_t **reason);
/** The table's restored(state), after a restore at start; only set when the table has it. */
void gs__lua_restored(gs_server_t *self, void *state);

/* What load.c's code_change needs of a server. */
typedef struct gs__lua_server_s gs__lua_server_t;
/** The server's Lua state awake (open). 0, or nonzero with *reason (new). */
int gs__lua_server_wake(gs__lua_server_t *srv, json_t **reason);
/** The version the server runs. */
gs__lua_version_t *gs__lua_server_version(gs__lua_server_t *srv);
/**
 * Run the new version's code_change in the server's own state (its values stay): on
 * {"ok", state} the server runs `to` with the new state and 0 is returned; otherwise nonzero
 * with *reason (new) and nothing changed. extra borrowed.
 */
int gs__lua_server_code_change(gs__lua_server_t *srv, gs__lua_version_t *to, const char *old_vsn,
                               json_t *extra, json_t **reason);

#endif /* GS_LUA_INTERNAL_H */
