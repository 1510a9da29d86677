/*
 * sandbox.c: one Lua state for one server, and what keeps it in its box.
 *
 * Modelled on Redis's script_lua.c and function_lua.c, adapted to a state per server:
 *   - Memory: the state's allocator counts every byte Lua asks for and refuses a request past
 *     the cap. Lua turns the refusal into a memory error (after one emergency collection); the
 *     sandbox's pcall and xpcall do not catch it, so the callback ends and the server crashes
 *     with ["memory_limit", bytes].
 *   - Instructions: the count hook runs every GS__LUA_HOOK_EVERY VM instructions and counts
 *     them against the callback's budget; past it the server crashes with ["cpu_limit", N].
 *     Once the budget is spent, the hook runs at every instruction and raises again, and no
 *     pcall of the sandbox catches it, so a script cannot swallow it. C functions that loop
 *     without running VM instructions charge their work to the same budget (the pattern
 *     matcher, pattern.c; table.insert/remove/move/concat/sort/unpack and string.rep, here).
 *     A wall-clock backstop (the budget times GS__LUA_NS_PER_STEP) catches what is charged
 *     nowhere, e.g. a loop comparing two long strings: each comparison is one instruction.
 *   - Globals: the chunk's environment is an empty proxy whose metatable reads through to the
 *     real globals and refuses every assignment ("assignment to undeclared global"); reading
 *     an undeclared global is an error too. rawset refuses the proxy and the library tables,
 *     which are locked the same way, and setmetatable refuses __gc (no finalizer ever runs:
 *     not at a collection inside the runtime's code, not at lua_close).
 *   - Libraries: base (without load, loadstring, dofile, loadfile, require, warn, print to
 *     stdout), string (without dump; the pattern functions of pattern.c; rep checked up
 *     front), table, math, utf8 and gs. No io, os, debug, package, coroutine. A state is
 *     small (see README.md): every global, library included, is made at its first use; the
 *     functions are light C functions taken once per process from a donor state.
 *   - Chunks: text only (luaL_loadbufferx mode "t"): a binary chunk is refused.
 */
#include "lua_internal.h"

#include <lualib.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------- */
/* The donor: the standard libraries' C functions, taken once per process                     */
/* ---------------------------------------------------------------------------------------- */

typedef struct fn_s {
    const char *name;
    lua_CFunction f;
} fn_t;

/* Filled from a donor state; a NULL f is one of ours, set below. */
static fn_t base_fns[] = {
    {"assert", NULL}, {"error", NULL},  {"getmetatable", NULL}, {"ipairs", NULL},
    {"next", NULL},   {"pairs", NULL},  {"rawequal", NULL},     {"rawget", NULL},
    {"rawlen", NULL}, {"select", NULL}, {"tonumber", NULL},     {"tostring", NULL},
    {"type", NULL},   {NULL, NULL},
};
static fn_t string_fns[] = {
    {"byte", NULL},  {"char", NULL},   {"format", NULL},   {"len", NULL},
    {"lower", NULL}, {"pack", NULL},   {"packsize", NULL}, {"reverse", NULL},
    {"sub", NULL},   {"unpack", NULL}, {"upper", NULL},    {NULL, NULL},
};
static fn_t utf8_fns[] = {
    {"char", NULL}, {"codepoint", NULL}, {"codes", NULL},
    {"len", NULL},  {"offset", NULL},    {NULL, NULL},
};
/* The string metatable's arithmetic (Lua 5.4 coerces "10" + 1 through it). */
static fn_t string_meta[] = {
    {"__add", NULL}, {"__sub", NULL},  {"__mul", NULL}, {"__mod", NULL}, {"__pow", NULL},
    {"__div", NULL}, {"__idiv", NULL}, {"__unm", NULL}, {NULL, NULL},
};
/* The originals our wrappers call. */
static lua_CFunction orig_setmetatable, orig_rawset, orig_rep;
static lua_CFunction orig_tinsert, orig_tremove, orig_tmove, orig_tconcat, orig_tsort, orig_tunpack,
    orig_tpack;
static char utf8_charpattern[64];
static size_t utf8_charpattern_len;
static pthread_once_t donor_once = PTHREAD_ONCE_INIT;

static lua_CFunction donor_get(lua_State *D, int t, const char *name)
{
    lua_getfield(D, t, name);
    lua_CFunction f = lua_tocfunction(D, -1);
    lua_pop(D, 1);
    if (f == NULL) {
        fprintf(stderr, "genserv_lua: the Lua library has no C function %s\n", name);
        abort();
    }
    return f;
}

static void donor_fill(lua_State *D, int t, fn_t *fns)
{
    for (fn_t *f = fns; f->name != NULL; f++)
        f->f = donor_get(D, t, f->name);
}

static void donor_open(lua_State *D, const char *name, lua_CFunction open)
{
    luaL_requiref(D, name, open, 1);
    lua_pop(D, 1);
}

/* Open the libraries once in a throwaway state and keep their C functions: light C functions
 * are plain pointers, valid in every state, so a server's state gets them for nothing. */
static void donor_run(void)
{
    lua_State *D = luaL_newstate();
    if (D == NULL)
        abort(); /* at the first state of the process: nothing can work without memory */
    donor_open(D, "_G", luaopen_base);
    donor_open(D, "string", luaopen_string);
    donor_open(D, "table", luaopen_table);
    donor_open(D, "utf8", luaopen_utf8);
    lua_pushglobaltable(D);
    int g = lua_gettop(D);
    donor_fill(D, g, base_fns);
    orig_setmetatable = donor_get(D, g, "setmetatable");
    orig_rawset = donor_get(D, g, "rawset");
    lua_getfield(D, g, "string");
    donor_fill(D, -1, string_fns);
    orig_rep = donor_get(D, lua_gettop(D), "rep");
    lua_pop(D, 1);
    lua_getfield(D, g, "table");
    int t = lua_gettop(D);
    orig_tinsert = donor_get(D, t, "insert");
    orig_tremove = donor_get(D, t, "remove");
    orig_tmove = donor_get(D, t, "move");
    orig_tconcat = donor_get(D, t, "concat");
    orig_tsort = donor_get(D, t, "sort");
    orig_tunpack = donor_get(D, t, "unpack");
    orig_tpack = donor_get(D, t, "pack");
    lua_pop(D, 1);
    lua_getfield(D, g, "utf8");
    donor_fill(D, lua_gettop(D), utf8_fns);
    lua_getfield(D, -1, "charpattern");
    const char *cp = lua_tolstring(D, -1, &utf8_charpattern_len);
    if (cp == NULL || utf8_charpattern_len >= sizeof(utf8_charpattern))
        abort();
    memcpy(utf8_charpattern, cp, utf8_charpattern_len);
    lua_pop(D, 2);
    lua_pushliteral(D, "");
    lua_getmetatable(D, -1);
    donor_fill(D, lua_gettop(D), string_meta);
    lua_close(D);
}

/* ---------------------------------------------------------------------------------------- */
/* Memory and instructions                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* lua_Alloc: counts what Lua holds, and refuses growth past the cap. */
static void count_hook(lua_State *L, lua_Debug *ar);

/* Bytes an allocation costs as one instruction of the budget: C functions that make big
 * strings (upper, rep, concat, format, gsub) run no instructions for their copying. */
#define BYTES_PER_STEP 8
/* Growth from which the allocator looks at the clock. */
#define BIG_ALLOC 4096

static void *box_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    gs__lua_box_t *b = ud;
    if (ptr == NULL)
        osize = 0; /* then osize is the kind of object, not a size */
    if (nsize == 0) {
        free(ptr);
        b->used -= osize;
        return NULL;
    }
    size_t left = b->used < b->limit ? b->limit - b->used : 0;
    if (nsize > osize && nsize - osize > left) {
        b->refused = true;
        return NULL;
    }
    void *q = realloc(ptr, nsize);
    if (q != NULL)
        b->used = b->used - osize + nsize;
    if (nsize > osize && nsize - osize >= BIG_ALLOC && b->L != NULL) {
        /* An allocator must not raise: past the budget or the backstop, the hook runs at the
         * very next instruction instead, and raises there. */
        b->steps += (nsize - osize) / BYTES_PER_STEP;
        if (b->steps > b->budget || gs__lua_now_ns() > b->deadline_ns)
            lua_sethook(b->L, count_hook, LUA_MASKCOUNT, 1);
    }
    return q;
}

static void count_hook(lua_State *L, lua_Debug *ar)
{
    gs__lua_box_t *b = gs__lua_box(L);
    (void)ar;
    if (b->fatal == GS__LUA_FATAL_NONE) {
        b->steps += b->every;
        if (b->steps <= b->budget && gs__lua_now_ns() <= b->deadline_ns)
            return;
        /* Spent: from now on at every instruction, so that whatever runs next (an error
         * handler, a loop around a pcall) raises again at once. */
        lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
    }
    gs__lua_raise_cpu(L);
}

void gs__lua_budget_start(lua_State *L, uint64_t instructions)
{
    gs__lua_box_t *b = gs__lua_box(L);
    if (instructions > 0)
        b->budget = instructions;
    b->steps = 0;
    b->fatal = GS__LUA_FATAL_NONE;
    b->refused = false;
    b->every = b->budget < GS__LUA_HOOK_EVERY ? (unsigned)b->budget : GS__LUA_HOOK_EVERY;
    if (b->every == 0)
        b->every = 1;
    int64_t span = (int64_t)(b->budget > (uint64_t)INT64_MAX / GS__LUA_NS_PER_STEP
                                 ? INT64_MAX / 2
                                 : b->budget * GS__LUA_NS_PER_STEP);
    if (span < GS__LUA_MIN_DEADLINE_NS)
        span = GS__LUA_MIN_DEADLINE_NS;
    b->deadline_ns = gs__lua_now_ns() + span;
    lua_sethook(L, count_hook, LUA_MASKCOUNT, (int)b->every);
}

/* A UTF-8 copy of s (len bytes) for a JSON reason: invalid bytes become U+FFFD, and it is cut
 * at max bytes. New reference. */
static json_t *utf8_text(const char *s, size_t len, size_t max)
{
    size_t cap = (len < max ? len : max) * 3 + 4;
    char *out = malloc(cap);
    if (out == NULL)
        return json_string("(out of memory)");
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end && o + 4 < cap && o < max) {
        unsigned c = *p;
        size_t n = c < 0x80           ? 1
                   : (c >> 5) == 0x6  ? 2
                   : (c >> 4) == 0xe  ? 3
                   : (c >> 3) == 0x1e ? 4
                                      : 0;
        bool ok = n > 0 && (size_t)(end - p) >= n;
        for (size_t i = 1; ok && i < n; i++)
            ok = (p[i] & 0xc0) == 0x80;
        if (ok && n > 1) {
            uint32_t cp = n == 2 ? c & 0x1f : n == 3 ? c & 0x0f : c & 0x07;
            for (size_t i = 1; i < n; i++)
                cp = cp << 6 | (p[i] & 0x3f);
            ok = (n == 2 && cp >= 0x80) ||
                 (n == 3 && cp >= 0x800 && (cp < 0xd800 || cp > 0xdfff)) ||
                 (n == 4 && cp >= 0x10000 && cp <= 0x10ffff);
        }
        if (ok && c == 0)
            ok = false; /* jansson's json_string wants no NUL */
        if (ok) {
            memcpy(out + o, p, n);
            o += n;
            p += n;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3); /* NOLINT(bugprone-not-null-terminated-result) */
            o += 3;
            p++;
        }
    }
    json_t *j = json_stringn(out, o);
    free(out);
    return j != NULL ? j : json_string("(unprintable)");
}

#define REASON_MAX_BYTES 4096

json_t *gs__lua_error_reason(lua_State *L, int status)
{
    gs__lua_box_t *b = gs__lua_box(L);
    json_t *why;

    if (b->fatal == GS__LUA_FATAL_CPU) {
        why = json_pack("[s, I]", "cpu_limit", (json_int_t)b->budget);
    } else if ((status == LUA_ERRMEM || b->fatal == GS__LUA_FATAL_MEM) && b->refused) {
        why = json_pack("[s, I]", "memory_limit", (json_int_t)b->limit);
    } else if (lua_type(L, -1) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        why = json_pack("[s, o]", "lua_error", utf8_text(s, len, REASON_MAX_BYTES));
    } else {
        char err[256];
        json_t *v = gs__lua_to_json(L, -1, "error", 0, NULL, err, sizeof(err));
        if (v == NULL) {
            snprintf(err, sizeof(err), "(error object is a %s value)", luaL_typename(L, -1));
            v = json_string(err);
        }
        why = json_pack("[s, o]", "lua_error", v);
    }
    lua_pop(L, 1);
    return why != NULL ? why : json_string("lua_error");
}

int gs__lua_pcall(lua_State *L, int nargs, int nresults, uint64_t instructions, json_t **reason)
{
    gs__lua_budget_start(L, instructions);
    int status = lua_pcall(L, nargs, nresults, 0);
    if (status != LUA_OK)
        *reason = gs__lua_error_reason(L, status);
    /* Nothing of this callback's budget applies any more (a collection may run finalizers:
     * none exist, but the hook stays quiet between callbacks all the same). */
    lua_sethook(L, NULL, 0, 0);
    return status;
}

/* ---------------------------------------------------------------------------------------- */
/* Wrapped base functions                                                                    */
/* ---------------------------------------------------------------------------------------- */

/* The status of a protected call inside the sandbox: a limit is not catchable. */
static bool fatal_after(lua_State *L, int status)
{
    gs__lua_box_t *b = gs__lua_box(L);
    if (status == LUA_ERRMEM && b->fatal == GS__LUA_FATAL_NONE)
        b->fatal = GS__LUA_FATAL_MEM;
    return b->fatal != GS__LUA_FATAL_NONE;
}

static int sb_pcall(lua_State *L)
{
    luaL_checkany(L, 1);
    int status = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
    luaL_checkstack(L, 1, NULL);
    if (status != LUA_OK) {
        if (fatal_after(L, status))
            return lua_error(L); /* the limit goes on up with its error value */
        lua_pushboolean(L, 0);
        lua_insert(L, -2);
        return 2;
    }
    lua_pushboolean(L, 1);
    lua_insert(L, 1);
    return lua_gettop(L);
}

static int sb_xpcall(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    /* f, msgh, args -> msgh, f, args */
    lua_pushvalue(L, 1);
    lua_copy(L, 2, 1);
    lua_replace(L, 2);
    int status = lua_pcall(L, n - 2, LUA_MULTRET, 1);
    luaL_checkstack(L, 1, NULL);
    if (status != LUA_OK) {
        if (fatal_after(L, status))
            return lua_error(L);
        lua_pushboolean(L, 0);
        lua_insert(L, -2);
        return 2;
    }
    lua_pushboolean(L, 1);
    lua_replace(L, 1); /* over msgh */
    return lua_gettop(L);
}

static int refuse_newindex(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TSTRING)
        return luaL_error(L, "assignment to undeclared global or locked table field '%s'",
                          lua_tostring(L, 2));
    return luaL_error(L, "assignment to a locked table");
}

/* Whether the table at idx is locked: its metatable's __newindex is refuse_newindex. */
static bool is_locked(lua_State *L, int idx)
{
    bool locked = false;
    if (lua_getmetatable(L, idx)) {
        lua_pushliteral(L, "__newindex");
        lua_rawget(L, -2);
        locked = lua_tocfunction(L, -1) == refuse_newindex;
        lua_pop(L, 2);
    }
    return locked;
}

static int sb_rawset(lua_State *L)
{
    if (lua_type(L, 1) == LUA_TTABLE && is_locked(L, 1))
        return luaL_error(L, "rawset of a locked table");
    return orig_rawset(L);
}

static int sb_setmetatable(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL)
            return luaL_error(L, "__gc metamethods are not allowed in genserv's Lua");
        lua_pop(L, 1);
    }
    return orig_setmetatable(L);
}

static int sb_collectgarbage(lua_State *L)
{
    const char *opt = luaL_optstring(L, 1, "collect");
    if (strcmp(opt, "count") == 0) {
        int kb = lua_gc(L, LUA_GCCOUNT), b = lua_gc(L, LUA_GCCOUNTB);
        lua_pushnumber(L, (lua_Number)kb + (lua_Number)b / 1024);
        return 1;
    }
    if (strcmp(opt, "collect") == 0) {
        gs__lua_box_t *box = gs__lua_box(L);
        gs__lua_charge(L, box->used / 16); /* a full collection's work: the heap */
        lua_gc(L, LUA_GCCOLLECT);
        lua_pushinteger(L, 0);
        return 1;
    }
    return luaL_error(L, "collectgarbage option '%s' is not allowed (only count and collect)", opt);
}

static int sb_print(lua_State *L)
{
    return gs__lua_log_args(L, "info", 1);
}

/* ---------------------------------------------------------------------------------------- */
/* Wrapped string and table functions: their C loops charged to the budget                   */
/* ---------------------------------------------------------------------------------------- */

/* string.rep: a result past the memory left is refused before any byte is written, and an
 * empty one does not loop n times (the original would: ("").rep("", 1e18)). */
static int sb_rep(lua_State *L)
{
    size_t l, lsep;
    luaL_checklstring(L, 1, &l);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_optlstring(L, 3, "", &lsep);
    if (n <= 0 || l + lsep == 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    gs__lua_box_t *b = gs__lua_box(L);
    size_t left = b->limit > b->used ? b->limit - b->used : 0;
    if ((uint64_t)n > left / (l + lsep) + 1 || (uint64_t)n * l + (uint64_t)(n - 1) * lsep > left) {
        b->refused = true;
        b->fatal = GS__LUA_FATAL_MEM;
        return luaL_error(L, "not enough memory");
    }
    gs__lua_charge(L, ((uint64_t)n * (l + lsep)) / 64 + (uint64_t)n / 8);
    return orig_rep(L);
}

/* The length table functions loop over (the # operator, __len included). */
static lua_Integer tlen(lua_State *L)
{
    return lua_type(L, 1) == LUA_TTABLE ? luaL_len(L, 1) : 0;
}

/* Argument idx as the integer the original will read (floats with an integral value too). */
static bool int_arg(lua_State *L, int idx, lua_Integer *out)
{
    int isnum = 0;
    *out = lua_tointegerx(L, idx, &isnum);
    return isnum != 0 && lua_type(L, idx) == LUA_TNUMBER;
}

static void charge_span(lua_State *L, lua_Integer from, lua_Integer to)
{
    if (to >= from) /* unsigned: no overflow for any pair of lua_Integers */
        gs__lua_charge(L, (uint64_t)to - (uint64_t)from + 1);
}

static int sb_tinsert(lua_State *L)
{
    lua_Integer pos;
    if (lua_gettop(L) >= 3 && int_arg(L, 2, &pos))
        charge_span(L, pos, tlen(L));
    return orig_tinsert(L);
}

static int sb_tremove(lua_State *L)
{
    lua_Integer pos;
    if (lua_gettop(L) >= 2 && int_arg(L, 2, &pos))
        charge_span(L, pos, tlen(L));
    return orig_tremove(L);
}

static int sb_tmove(lua_State *L)
{
    lua_Integer from, to;
    if (int_arg(L, 2, &from) && int_arg(L, 3, &to))
        charge_span(L, from, to);
    return orig_tmove(L);
}

static int sb_tconcat(lua_State *L)
{
    lua_Integer i, j;
    if (!int_arg(L, 3, &i))
        i = 1;
    if (!int_arg(L, 4, &j))
        j = tlen(L);
    charge_span(L, i, j);
    return orig_tconcat(L);
}

static int sb_tsort(lua_State *L)
{
    lua_Integer n = tlen(L);
    if (n > 1) {
        uint64_t log2n = 0, per = 1;
        for (uint64_t m = (uint64_t)n; m > 1; m >>= 1)
            log2n++;
        gs__lua_charge(L, (uint64_t)n); /* the scan below */
        if (lua_isnoneornil(L, 2)) {
            /* The default comparison of strings is a strcoll: as long as the longest. */
            for (lua_Integer i = 1; i <= n; i++) {
                size_t len = 0;
                if (lua_rawgeti(L, 1, i) == LUA_TSTRING)
                    lua_tolstring(L, -1, &len);
                lua_pop(L, 1);
                if (1 + len / BYTES_PER_STEP > per)
                    per = 1 + len / BYTES_PER_STEP;
            }
        }
        uint64_t cmps = (uint64_t)n * (log2n + 1);
        gs__lua_charge(L, per > UINT64_MAX / cmps ? UINT64_MAX / 2 : cmps * per);
    }
    return orig_tsort(L);
}

static int sb_tunpack(lua_State *L)
{
    lua_Integer i, j;
    if (!int_arg(L, 2, &i))
        i = 1;
    if (!int_arg(L, 3, &j))
        j = tlen(L);
    charge_span(L, i, j);
    return orig_tunpack(L);
}

/* ---------------------------------------------------------------------------------------- */
/* Globals, made at their first use                                                           */
/* ---------------------------------------------------------------------------------------- */

static const char string_lib_key = 0; /* registry: the real string table, for the metatable */

/* Push a locked proxy of the table at the top, which it replaces: reads go through to it,
 * every write is refused. */
static void lock_top(lua_State *L)
{
    lua_createtable(L, 0, 0); /* proxy */
    lua_createtable(L, 0, 3); /* its metatable */
    lua_pushvalue(L, -3);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, refuse_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_replace(L, -2);
}

static void set_fns(lua_State *L, const fn_t *fns)
{
    for (const fn_t *f = fns; f->name != NULL; f++) {
        lua_pushcfunction(L, f->f);
        lua_setfield(L, -2, f->name);
    }
}

static void set_fn(lua_State *L, const char *name, lua_CFunction f)
{
    lua_pushcfunction(L, f);
    lua_setfield(L, -2, name);
}

/* The real string table (made once per state, kept in the registry). */
static void push_string_lib(lua_State *L)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &string_lib_key) == LUA_TTABLE)
        return;
    lua_pop(L, 1);
    lua_createtable(L, 0, 16);
    set_fns(L, string_fns);
    set_fn(L, "rep", sb_rep);
    set_fn(L, "find", gs__lua_str_find);
    set_fn(L, "match", gs__lua_str_match);
    set_fn(L, "gmatch", gs__lua_str_gmatch);
    set_fn(L, "gsub", gs__lua_str_gsub);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &string_lib_key);
}

/* The string metatable's __index until the string library exists: makes it, then puts it in
 * the metatable's place so that later method calls go straight to it. */
static int string_index(lua_State *L)
{
    push_string_lib(L);
    if (lua_getmetatable(L, 1)) {
        lua_pushvalue(L, -2);
        lua_setfield(L, -2, "__index");
        lua_pop(L, 1);
    }
    lua_pushvalue(L, 2);
    lua_rawget(L, -2);
    return 1;
}

/* Push library `name` as a locked table, or return false. */
static bool push_library(lua_State *L, const char *name)
{
    if (strcmp(name, "string") == 0) {
        push_string_lib(L);
    } else if (strcmp(name, "table") == 0) {
        lua_createtable(L, 0, 7);
        set_fn(L, "insert", sb_tinsert);
        set_fn(L, "remove", sb_tremove);
        set_fn(L, "move", sb_tmove);
        set_fn(L, "concat", sb_tconcat);
        set_fn(L, "sort", sb_tsort);
        set_fn(L, "unpack", sb_tunpack);
        set_fn(L, "pack", orig_tpack);
    } else if (strcmp(name, "math") == 0) {
        lua_pushcfunction(L, luaopen_math); /* random keeps its state in an upvalue */
        lua_call(L, 0, 1);
    } else if (strcmp(name, "utf8") == 0) {
        lua_createtable(L, 0, 6);
        set_fns(L, utf8_fns);
        lua_pushlstring(L, utf8_charpattern, utf8_charpattern_len);
        lua_setfield(L, -2, "charpattern");
    } else if (strcmp(name, "gs") == 0) {
        lua_createtable(L, 0, 24);
        gs__lua_fill_gs(L);
    } else {
        return false;
    }
    lock_top(L);
    return true;
}

/* __index of the real globals table: a global at its first use (then kept in the table). */
static int global_index(lua_State *L)
{
    const char *name = lua_tostring(L, 2);
    if (name != NULL && lua_type(L, 2) == LUA_TSTRING) {
        bool found = true;
        const fn_t *f = base_fns;
        while (f->name != NULL && strcmp(f->name, name) != 0)
            f++;
        if (f->name != NULL)
            lua_pushcfunction(L, f->f);
        else if (strcmp(name, "pcall") == 0)
            lua_pushcfunction(L, sb_pcall);
        else if (strcmp(name, "xpcall") == 0)
            lua_pushcfunction(L, sb_xpcall);
        else if (strcmp(name, "rawset") == 0)
            lua_pushcfunction(L, sb_rawset);
        else if (strcmp(name, "setmetatable") == 0)
            lua_pushcfunction(L, sb_setmetatable);
        else if (strcmp(name, "collectgarbage") == 0)
            lua_pushcfunction(L, sb_collectgarbage);
        else if (strcmp(name, "print") == 0)
            lua_pushcfunction(L, sb_print);
        else if (strcmp(name, "_VERSION") == 0)
            lua_pushliteral(L, LUA_VERSION);
        else if (strcmp(name, "_G") == 0)
            lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
        else
            found = push_library(L, name);
        if (found) {
            lua_pushvalue(L, 2);
            lua_pushvalue(L, -2);
            lua_rawset(L, 1);
            return 1;
        }
    }
    luaL_where(L, 1);
    lua_pushfstring(L, "undeclared global '%s'", name != NULL ? name : luaL_typename(L, 2));
    lua_concat(L, 2);
    return lua_error(L);
}

/* Run protected at the state's creation: the locked environment and the string metatable. */
static int setup(lua_State *L)
{
    /* The real globals, filled at first use by global_index. */
    lua_createtable(L, 0, 0);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, global_index);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    /* The environment every chunk sees: a locked proxy of them. */
    lock_top(L);
    lua_rawseti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);

    /* Strings' metatable: arithmetic coercion, and methods once the library is made. */
    lua_pushliteral(L, "");
    lua_createtable(L, 0, 10);
    set_fns(L, string_meta);
    set_fn(L, "__index", string_index);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable"); /* getmetatable("") is false: not the script's */
    lua_setmetatable(L, -2);
    lua_pop(L, 1);
    /* gs.array_mt is the script's to compare with, not to change: a __gc added to it would
     * make every decoded array a finalizer, run inside the host's own C code. */
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "gs.array");
    lua_setfield(L, -2, "__name");
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, refuse_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &gs__lua_array_mt_key);
    return 0;
}

static int panic(lua_State *L)
{
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "genserv_lua: unprotected Lua error: %s\n", msg != NULL ? msg : "?");
    abort();
    return 0;
}

lua_State *gs__lua_sandbox_create(gs__lua_box_t *box, size_t limit, uint64_t budget,
                                  const gs__lua_env_t *env, json_t **reason)
{
    pthread_once(&donor_once, donor_run);
    memset(box, 0, sizeof(*box));
    box->limit = limit;
    box->budget = budget;
    box->env = env;
    lua_State *L = lua_newstate(box_alloc, box);
    if (L == NULL) {
        *reason = json_pack("[s, I]", "memory_limit", (json_int_t)limit);
        return NULL;
    }
    lua_atpanic(L, panic);
    box->L = L;
    lua_pushcfunction(L, setup);
    if (gs__lua_pcall(L, 0, 0, 0, reason) != LUA_OK) {
        lua_close(L);
        return NULL;
    }
    return L;
}

void gs__lua_load_chunk(lua_State *L, const char *source, size_t len, const char *chunkname)
{
    if (luaL_loadbufferx(L, source, len, chunkname, "t") != LUA_OK)
        lua_error(L); /* its message says why: syntax (with the line), or a binary chunk */
    lua_call(L, 0, 1);
    if (!lua_istable(L, -1))
        luaL_error(L, "%s: the chunk must return a table of callbacks, not %s", chunkname + 1,
                   luaL_typename(L, -1));
}

void gs__lua_sandbox_close(lua_State *L)
{
    if (L != NULL)
        lua_close(L);
}
