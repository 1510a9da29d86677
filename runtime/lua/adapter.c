/*
 * adapter.c: the gs_behaviour_t callbacks of every Lua behaviour, which run a server's Lua
 * callbacks in its own state and turn what they return into the runtime's results.
 *
 * API (the runtime calls these; load.c puts them in each version's gs_behaviour_t):
 *   gs__lua_init            a state for the server (sandbox.c), the chunk run in it for the
 *                           table of callbacks, then init(args)
 *   gs__lua_handle_*        handle_call(msg, from, state), handle_cast(msg, state), ...
 *   gs__lua_format_state    the state as JSON (or format_status(state)'s)
 *   gs__lua_hibernate       {"noreply", s, "hibernate"}: the state to JSON and the Lua state
 *                           closed, when JSON holds it exactly; else a full collection
 *   gs__lua_terminate       terminate(reason, state), then everything freed
 *   gs__lua_server_code_change   load.c's code_change: the new chunk in the server's state
 *   gs__lua_replace_state   :sys.replace_state: replace_state(new, state) if the table has
 *                           it ({"ok", state} or {"error", reason}); else the JSON as it is
 *   gs__lua_dump_state      durability: the state as JSON, strictly, keys sorted (a hibernated
 *                           state from its text, without waking it)
 *   gs__lua_restore         a state for the server as init would make one, with the stored
 *                           JSON as its state and no Lua init; on a rollback a fresh one in
 *                           place of the server's (see there)
 *   gs__lua_restored        restored(state) after a restore at start: {"ok", state[, NEXT]};
 *                           a stop, a raise or a bad return is kept as `doom` and the server
 *                           crashes with it in its first turn (see there)
 * A server's Lua state keeps two values on its stack between callbacks: [1] the table of
 * callbacks and [2] the state. Each callback runs as one protected call (a trampoline), so a
 * raise, a memory refusal or the instruction budget ends it with a reason and the server
 * crashes with GS_STOP(reason), its pending call failing with server_crashed.
 *
 * Results are read by position, not by length (Lua's # is unreliable with nils): the arity of
 * {"stop", reason, reply, state} is its last non-nil element, so a stop with a reply and a
 * nil state writes its state as gs.null. A missing callback behaves as OTP's default (the
 * runtime's, for one missing when the version was loaded; emulated here otherwise).
 */
#include "lua_internal.h"

#include <genserv/message.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct gs__lua_server_s {
    gs__lua_version_t *v; /* the code it runs: alive while the runtime counts it as a user */
    lua_State *L;         /* NULL while hibernated */
    char *frozen;         /* hibernated: the state as JSON text (NULL: the state was nil) */
    size_t frozen_len;
    gs__lua_marks_t marks; /* hibernated: which arrays carried gs.array_mt */
    json_t *doom;          /* owned: the stop restored asked for, which its first handler returns */
    uint64_t opt_memory, opt_instructions; /* the start's own limits (0: the version's) */
    uint64_t instruction_limit;
    size_t memory_limit;
    gs__lua_box_t box; /* the allocator's accounting */
};

/* The limits a server runs with: its start's, else its version's, each at most the host's. */
static void set_limits(gs__lua_server_t *srv)
{
    const gs__lua_version_t *v = srv->v;
    uint64_t mem = srv->opt_memory ? srv->opt_memory : v->memory_limit;
    uint64_t ins = srv->opt_instructions ? srv->opt_instructions : v->instruction_limit;
    srv->memory_limit = (size_t)(mem < v->max_memory_limit ? mem : v->max_memory_limit);
    srv->instruction_limit = ins < v->max_instruction_limit ? ins : v->max_instruction_limit;
    srv->box.limit = srv->memory_limit;
    srv->box.budget = srv->instruction_limit;
}

static void free_frozen(gs__lua_server_t *srv)
{
    free(srv->frozen);
    free(srv->marks.bits);
    srv->frozen = NULL;
    srv->frozen_len = 0;
    srv->marks = (gs__lua_marks_t){0};
}

/* ---------------------------------------------------------------------------------------- */
/* Waking: a state with the callbacks table and the state                                    */
/* ---------------------------------------------------------------------------------------- */

typedef struct wake_s {
    const gs__lua_version_t *v;
    json_t *state;                /* borrowed: the state, or NULL (nil) */
    const gs__lua_marks_t *marks; /* NULL: every array marked, as in a message */
} wake_t;

static int tramp_wake(lua_State *L)
{
    wake_t *w = lua_touserdata(L, 1);
    gs__lua_load_chunk(L, w->v->source, w->v->len, w->v->chunkname);
    if (w->state == NULL)
        lua_pushnil(L);
    else if (w->marks != NULL)
        gs__lua_push_json(L, w->state, w->marks->bits, w->marks->n);
    else
        gs__lua_push_json(L, w->state, NULL, 0);
    return 2;
}

/*
 * Open srv's Lua state (srv->L NULL): a sandbox within srv's limits, the chunk run in it for
 * the table of callbacks, and state (borrowed; NULL: nil) as Lua values, its arrays marked as
 * marks says. 0, or nonzero with *reason (new) and srv->L still NULL. A state the memory limit
 * cannot hold fails here, as it would in init.
 */
static int open_state(gs__lua_server_t *srv, json_t *state, const gs__lua_marks_t *marks,
                      json_t **reason)
{
    lua_State *L = gs__lua_sandbox_create(&srv->box, srv->memory_limit, srv->instruction_limit,
                                          srv->v->env, reason);
    if (L == NULL)
        return -1;
    wake_t w = {srv->v, state, marks};
    lua_pushcfunction(L, tramp_wake);
    lua_pushlightuserdata(L, &w);
    if (gs__lua_pcall(L, 1, 2, srv->instruction_limit, reason) != LUA_OK) {
        gs__lua_sandbox_close(L);
        return -1;
    }
    /* The compiler's leftovers go now rather than at some later collection. */
    lua_gc(L, LUA_GCCOLLECT);
    srv->L = L;
    return 0;
}

int gs__lua_server_wake(gs__lua_server_t *srv, json_t **reason)
{
    if (srv->L != NULL)
        return 0;
    json_t *state = NULL;
    if (srv->frozen != NULL) {
        state = json_loadb(srv->frozen, srv->frozen_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        if (state == NULL) {
            *reason = json_pack("[s, s]", "lua_error", "the hibernated state does not load");
            return -1;
        }
    }
    int rc = open_state(srv, state, &srv->marks, reason);
    json_decref(state);
    if (rc != 0)
        return -1;
    free_frozen(srv);
    return 0;
}

gs__lua_version_t *gs__lua_server_version(gs__lua_server_t *srv)
{
    return srv->v;
}

/* ---------------------------------------------------------------------------------------- */
/* Results                                                                                    */
/* ---------------------------------------------------------------------------------------- */

typedef enum kind_e { K_INIT, K_RESTORED, K_CALL, K_CAST, K_INFO, K_CONTINUE } kind_t;

typedef struct hctx_s {
    kind_t kind;
    const char *cb;  /* the Lua callback's name */
    json_t *msg;     /* borrowed: the message, init's args, continue's arg (restored: none) */
    gs_from_t from;  /* K_CALL; K_INFO: the call of a ["caller_gone", id] (id 0: none) */
    bool missing;    /* the table has no such function */
    bool ignore;     /* init returned "ignore" */
    gs_result_t out; /* the result (its JSON values new) */
} hctx_t;

static gs_result_t stop_pair(const char *tag, const char *what)
{
    return GS_STOP(json_pack("[s, s]", tag, what));
}

/* The value at idx as JSON for a result, or NULL with *out set to a bad_value stop. */
static json_t *result_json(lua_State *L, int idx, const char *root, gs_result_t *out)
{
    char err[200];
    json_t *v = gs__lua_to_json(L, idx, root, 0, NULL, err, sizeof(err));
    if (v == NULL)
        *out = stop_pair("bad_value", err);
    return v;
}

/* The next action at idx (nil: none) applied to *r; false when it is not one. */
static bool parse_next(lua_State *L, int idx, gs_result_t *r, gs_result_t *bad)
{
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        return true;
    case LUA_TNUMBER: {
        lua_Integer ms;
        if (lua_isinteger(L, idx)) {
            ms = lua_tointeger(L, idx);
        } else {
            lua_Number d = lua_tonumber(L, idx);
            if (!(d >= 0 && d <= 9.2e18 && floor(d) == d))
                return false;
            ms = (lua_Integer)d;
        }
        if (ms < 0)
            return false;
        *r = gs_then_timeout(*r, (int64_t)ms);
        return true;
    }
    case LUA_TSTRING: {
        const char *s = lua_tostring(L, idx);
        if (strcmp(s, "hibernate") == 0) {
            *r = gs_then_hibernate(*r);
            return true;
        }
        return strcmp(s, "infinity") == 0; /* no timeout */
    }
    case LUA_TTABLE: {
        lua_rawgeti(L, idx, 1);
        bool cont = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "continue") == 0;
        lua_pop(L, 1);
        if (!cont)
            return false;
        lua_rawgeti(L, idx, 2);
        json_t *arg = result_json(L, lua_gettop(L), "continue", bad);
        lua_pop(L, 1);
        if (arg == NULL)
            return true; /* *bad says why */
        *r = gs_then_continue(*r, arg);
        return true;
    }
    default:
        return false;
    }
}

/* The number of elements of the result table at t: its last non-nil one among 1..6. */
static int arity(lua_State *L, int t)
{
    int n = 0;
    for (int i = 1; i <= 6; i++) {
        if (lua_rawgeti(L, t, i) != LUA_TNIL)
            n = i;
        lua_pop(L, 1);
    }
    return n;
}

static bool tag_is(lua_State *L, int t, const char *tag)
{
    lua_rawgeti(L, t, 1);
    bool is = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), tag) == 0;
    lua_pop(L, 1);
    return is;
}

/*
 * Read the result at index r of callback c->cb into c->out and push the state to keep: the
 * new one, or the old one (index 2) when the result is bad or stops without a state. Runs no
 * Lua code and raises nothing once a JSON value is made (so none can leak).
 */
static void parse_result(lua_State *L, hctx_t *c, int r)
{
    int n = lua_type(L, r) == LUA_TTABLE ? arity(L, r) : 0;
    int state_at = 0, next_at = 0, reason_at = 0, reply_at = 0;
    bool first = c->kind == K_INIT || c->kind == K_RESTORED; /* init's shapes, but "ignore" */

    luaL_checkstack(L, 8, NULL);
    if (c->kind == K_INIT && lua_type(L, r) == LUA_TSTRING &&
        strcmp(lua_tostring(L, r), "ignore") == 0) {
        c->ignore = true;
        lua_pushvalue(L, 2);
        return;
    }
    if (n == 0) {
        /* not a table, or an empty one */
    } else if (n <= 3 && (first ? tag_is(L, r, "ok") : tag_is(L, r, "noreply"))) {
        state_at = 2, next_at = 3; /* {"ok", state, NEXT} from init, {"noreply", ...} after */
    } else if (first && tag_is(L, r, "stop") && n == 2) {
        reason_at = 2;
    } else if (c->kind == K_CALL && tag_is(L, r, "reply") && n <= 4) {
        reply_at = 2, state_at = 3, next_at = 4;
    } else if (c->kind == K_CALL && tag_is(L, r, "stop") && n == 4) {
        reason_at = 2, reply_at = 3, state_at = 4;
    } else if (!first && tag_is(L, r, "stop") && n <= 3) {
        reason_at = 2, state_at = 3;
    }
    if ((state_at == 0 && reason_at == 0) ||
        (reason_at != 0 && lua_rawgeti(L, r, reason_at) == LUA_TNIL)) {
        c->out = stop_pair("bad_return_value", c->cb);
        lua_pushvalue(L, 2);
        return;
    }
    /* Read every element before making any JSON value. */
    int base = lua_gettop(L);
    lua_rawgeti(L, r, state_at ? state_at : 1);   /* base + 1 */
    lua_rawgeti(L, r, next_at ? next_at : 7);     /* base + 2 */
    lua_rawgeti(L, r, reason_at ? reason_at : 7); /* base + 3 */
    lua_rawgeti(L, r, reply_at ? reply_at : 7);   /* base + 4 */
    int keep = state_at ? base + 1 : 2;
    json_t *reason = NULL, *reply = NULL;

    if (reason_at && (reason = result_json(L, base + 3, "reason", &c->out)) == NULL) {
        lua_pushvalue(L, 2);
        return;
    }
    if (reply_at && (reply = result_json(L, base + 4, "reply", &c->out)) == NULL) {
        json_decref(reason);
        lua_pushvalue(L, 2);
        return;
    }
    if (reason != NULL) {
        c->out = reply != NULL ? GS_STOP_REPLY(reason, reply) : GS_STOP(reason);
        lua_pushvalue(L, keep);
        return;
    }
    gs_result_t out = reply != NULL ? GS_REPLY(reply) : GS_NOREPLY;
    gs_result_t why = {0};
    if (!parse_next(L, base + 2, &out, &why)) {
        json_decref(reply);
        c->out = stop_pair("bad_return_value", c->cb);
        lua_pushvalue(L, 2);
        return;
    }
    if (why.action == GS_ACTION_STOP) { /* the continue's argument is not JSON */
        json_decref(reply);
        c->out = why;
        lua_pushvalue(L, 2);
        return;
    }
    c->out = out;
    lua_pushvalue(L, keep);
}

/* handle_*(...), init(args) and restored(state): arguments 1 the callbacks, 2 the state, 3 the
 * context. */
static int tramp_handle(lua_State *L)
{
    hctx_t *c = lua_touserdata(L, 3);
    lua_pushstring(L, c->cb);
    if (lua_rawget(L, 1) != LUA_TFUNCTION) {
        c->missing = true;
        if (c->kind == K_INIT) { /* no init: the state is the args, as {:ok, args} */
            gs__lua_push_json(L, c->msg, NULL, 0);
            c->out = GS_NOREPLY;
            return 1;
        }
        lua_settop(L, 2);
        return 1;
    }
    int n = 1;
    if (c->kind == K_RESTORED) {
        n = 0; /* the state alone, below */
    } else if (c->kind == K_INFO && c->from.id != 0) {
        /* {"caller_gone", from}: the from handle_call was given, equal element by element */
        lua_createtable(L, 2, 0);
        lua_pushliteral(L, "caller_gone");
        lua_rawseti(L, -2, 1);
        gs__lua_push_from(L, c->from);
        lua_rawseti(L, -2, 2);
        gs__lua_push_array_mt(L);
        lua_setmetatable(L, -2);
    } else {
        gs__lua_push_json(L, c->msg, NULL, 0);
    }
    if (c->kind == K_CALL) {
        gs__lua_push_from(L, c->from);
        n++;
    }
    if (c->kind != K_INIT) {
        lua_pushvalue(L, 2);
        n++;
    }
    lua_call(L, n, 1);
    parse_result(L, c, lua_gettop(L));
    return 1;
}

/* Run c in srv's state; a failure to run it at all is a stop, and so is a doom restored left. */
static gs_result_t run(gs__lua_server_t *srv, hctx_t *c)
{
    json_t *why = NULL;
    if (srv->doom != NULL) {
        why = srv->doom;
        srv->doom = NULL;
        return GS_STOP(why);
    }
    if (gs__lua_server_wake(srv, &why) != 0)
        return GS_STOP(why);
    lua_State *L = srv->L;
    lua_pushcfunction(L, tramp_handle);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_pushlightuserdata(L, c);
    if (gs__lua_pcall(L, 3, 1, srv->instruction_limit, &why) != LUA_OK) {
        lua_settop(L, 2);
        return GS_STOP(why);
    }
    lua_replace(L, 2);
    return c->out;
}

static void server_free(gs__lua_server_t *srv)
{
    gs__lua_sandbox_close(srv->L);
    free_frozen(srv);
    json_decref(srv->doom);
    free(srv);
}

/*
 * A server record of self's behaviour with self's start limits and no Lua state yet, or NULL
 * with *reason (new): a start that asks for more than the host allows is refused, not quietly
 * capped, since the caller would otherwise believe it has what it asked for.
 */
static gs__lua_server_t *server_create(gs_server_t *self, json_t **reason)
{
    gs__lua_version_t *v = gs__lua_version_of(gs_server_behaviour(self));
    const gs_start_options_t *opts = gs_server_options(self);
    if (opts->memory_limit > v->max_memory_limit) {
        *reason = json_pack("[s, {s:I, s:I}]", "bad_limit", "memory_limit",
                            (json_int_t)opts->memory_limit, "max", (json_int_t)v->max_memory_limit);
        return NULL;
    }
    if (opts->instruction_limit > v->max_instruction_limit) {
        *reason = json_pack("[s, {s:I, s:I}]", "bad_limit", "instruction_limit",
                            (json_int_t)opts->instruction_limit, "max",
                            (json_int_t)v->max_instruction_limit);
        return NULL;
    }
    gs__lua_server_t *srv = calloc(1, sizeof(*srv));
    if (srv == NULL) {
        *reason = json_string(gs_err_name(GS_ENOMEM));
        return NULL;
    }
    srv->v = v;
    srv->opt_memory = opts->memory_limit;
    srv->opt_instructions = opts->instruction_limit;
    set_limits(srv);
    return srv;
}

/* ---------------------------------------------------------------------------------------- */
/* The callbacks                                                                              */
/* ---------------------------------------------------------------------------------------- */

int gs__lua_init(gs_server_t *self, json_t *args, void **state, json_t **reason)
{
    gs__lua_server_t *srv = server_create(self, reason);
    if (srv == NULL)
        return -1;
    hctx_t c = {.kind = K_INIT, .cb = "init", .msg = args};
    gs_result_t r = run(srv, &c);
    if (c.ignore) {
        server_free(srv);
        return GS_INIT_IGNORE;
    }
    if (r.action == GS_ACTION_STOP) {
        *reason = r.reason;
        json_decref(r.reply);
        server_free(srv);
        return -1;
    }
    if (r.next != GS_NEXT_NONE)
        gs_init_then(self, r);
    lua_gc(srv->L, LUA_GCCOLLECT);
    *state = srv;
    return 0;
}

gs_result_t gs__lua_handle_call(gs_server_t *self, void *state, json_t *msg, gs_from_t from)
{
    hctx_t c = {.kind = K_CALL, .cb = "handle_call", .msg = msg, .from = from};
    (void)self;
    gs_result_t r = run(state, &c);
    if (c.missing)
        return GS_STOP(json_pack("[s, O]", "bad_call", msg));
    return r;
}

gs_result_t gs__lua_handle_cast(gs_server_t *self, void *state, json_t *msg)
{
    hctx_t c = {.kind = K_CAST, .cb = "handle_cast", .msg = msg};
    (void)self;
    gs_result_t r = run(state, &c);
    if (c.missing)
        return GS_STOP(json_pack("[s, O]", "bad_cast", msg));
    return r;
}

/*
 * The runtime's ["caller_gone", id] reaches a Lua callback as {"caller_gone", from}, the same
 * value handle_call was given, so that the script can match it with the from it keeps. Only
 * for a call that is no longer pending: the runtime tells after the call ended, and a forged
 * message naming a call that still waits (perhaps another server's) must not yield a from
 * that could answer it; it arrives as it was sent. A forged one naming an ended call yields a
 * from that can neither answer nor be pending: harmless.
 */
static uint64_t caller_gone_id(gs_server_t *self, const json_t *msg)
{
    json_int_t id;
    if (!gs_server_behaviour(self)->notify_caller_gone || !gs_msg_is_tuple(msg, "caller_gone", 2) ||
        !gs_json_int_in(json_array_get(msg, 1), 1, GS_JSON_INT_MAX, &id))
        return 0;
    gs_from_t from = {gs_server_runtime(self), (uint64_t)id};
    return gs_call_pending(from) ? 0 : (uint64_t)id;
}

gs_result_t gs__lua_handle_info(gs_server_t *self, void *state, json_t *msg)
{
    hctx_t c = {.kind = K_INFO, .cb = "handle_info", .msg = msg};
    c.from = (gs_from_t){gs_server_runtime(self), caller_gone_id(self, msg)};
    gs_result_t r = run(state, &c);
    if (c.missing)
        return GS_NOREPLY; /* OTP's default: an unexpected info is dropped */
    return r;
}

gs_result_t gs__lua_handle_continue(gs_server_t *self, void *state, json_t *arg)
{
    hctx_t c = {.kind = K_CONTINUE, .cb = "handle_continue", .msg = arg};
    (void)self;
    gs_result_t r = run(state, &c);
    if (c.missing)
        return stop_pair("undef", "handle_continue");
    return r;
}

typedef struct tctx_s {
    json_t *reason;
} tctx_t;

static int tramp_terminate(lua_State *L)
{
    tctx_t *c = lua_touserdata(L, 3);
    lua_pushliteral(L, "terminate");
    if (lua_rawget(L, 1) != LUA_TFUNCTION)
        return 0;
    gs__lua_push_json(L, c->reason, NULL, 0);
    lua_pushvalue(L, 2);
    lua_call(L, 2, 0);
    return 0;
}

void gs__lua_terminate(gs_server_t *self, json_t *reason, void *state)
{
    gs__lua_server_t *srv = state;
    json_t *why = NULL;
    (void)self;
    if (srv == NULL)
        return;
    /* A hibernated server is woken only if it has something to say. */
    if ((srv->L != NULL || srv->v->has_terminate) && gs__lua_server_wake(srv, &why) == 0) {
        tctx_t c = {reason};
        lua_State *L = srv->L;
        lua_pushcfunction(L, tramp_terminate);
        lua_pushvalue(L, 1);
        lua_pushvalue(L, 2);
        lua_pushlightuserdata(L, &c);
        if (gs__lua_pcall(L, 3, 0, srv->instruction_limit, &why) != LUA_OK)
            json_decref(why); /* as in OTP, what terminate raises changes nothing */
    } else {
        json_decref(why);
    }
    server_free(srv);
}

static int tramp_format(lua_State *L)
{
    lua_pushliteral(L, "format_status");
    if (lua_rawget(L, 1) != LUA_TFUNCTION) {
        lua_pushvalue(L, 2);
        return 1;
    }
    lua_pushvalue(L, 2);
    lua_call(L, 1, 1);
    return 1;
}

/* What inspection shows when the state cannot be shown: the reason it would crash with. */
static json_t *bad_state(json_t *why)
{
    return json_pack("{s:o}", "error", why);
}

json_t *gs__lua_format_state(gs_server_t *self, void *state)
{
    gs__lua_server_t *srv = state;
    json_t *why = NULL;
    (void)self;
    if (srv->L == NULL && !srv->v->has_format_status) {
        /* Hibernated: its JSON is the answer, and it stays asleep. */
        if (srv->frozen == NULL)
            return json_null();
        json_t *v =
            json_loadb(srv->frozen, srv->frozen_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        return v != NULL ? v : json_null();
    }
    if (gs__lua_server_wake(srv, &why) != 0)
        return bad_state(why);
    lua_State *L = srv->L;
    lua_pushcfunction(L, tramp_format);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    if (gs__lua_pcall(L, 2, 1, srv->instruction_limit, &why) != LUA_OK)
        return bad_state(why);
    char err[200];
    json_t *v = gs__lua_to_json(L, -1, "state", 0, NULL, err, sizeof(err));
    lua_settop(L, 2);
    return v != NULL ? v : bad_state(json_pack("[s, s]", "bad_value", err));
}

void gs__lua_hibernate(gs_server_t *self, void **state)
{
    gs__lua_server_t *srv = *state;
    (void)self;
    if (srv->L == NULL)
        return;
    lua_State *L = srv->L;
    gs__lua_marks_t marks = {0};
    json_t *v = NULL;
    bool nil = lua_isnil(L, 2);
    if (!nil)
        v = gs__lua_to_json(L, 2, "state", GS__LUA_STRICT, &marks, NULL, 0);
    char *text = v != NULL ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    json_decref(v);
    if (!nil && text == NULL) {
        /* JSON would lose something of it (a function, a shared table...): keep the state
         * and give back what a full collection can. */
        free(marks.bits);
        lua_gc(L, LUA_GCCOLLECT);
        return;
    }
    free_frozen(srv);
    srv->frozen = text;
    srv->frozen_len = text != NULL ? strlen(text) : 0;
    srv->marks = marks;
    gs__lua_sandbox_close(L);
    srv->L = NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* code_change                                                                                */
/* ---------------------------------------------------------------------------------------- */

typedef struct cctx_s {
    const gs__lua_version_t *to;
    const char *old_vsn;
    json_t *extra;
    json_t *reason; /* new: why it failed */
} cctx_t;

/* Arguments 1 the old callbacks, 2 the state, 3 the context. Returns the new table and state,
 * or nothing with c->reason set. */
static int tramp_code_change(lua_State *L)
{
    cctx_t *c = lua_touserdata(L, 3);
    gs__lua_load_chunk(L, c->to->source, c->to->len, c->to->chunkname); /* 4: the new table */
    lua_pushliteral(L, "code_change");
    if (lua_rawget(L, 4) != LUA_TFUNCTION) {
        lua_pushvalue(L, 4);
        lua_pushvalue(L, 2); /* OTP's default: the state as it is */
        return 2;
    }
    if (c->old_vsn != NULL)
        lua_pushstring(L, c->old_vsn);
    else
        lua_pushnil(L);
    lua_pushvalue(L, 2);
    gs__lua_push_json(L, c->extra, NULL, 0);
    lua_call(L, 3, 1);
    int r = lua_gettop(L);
    int n = lua_type(L, r) == LUA_TTABLE ? arity(L, r) : 0;
    if (n >= 1 && n <= 2 && tag_is(L, r, "ok")) {
        lua_pushvalue(L, 4);
        lua_rawgeti(L, r, 2);
        return 2;
    }
    if (n == 2 && tag_is(L, r, "error")) {
        lua_rawgeti(L, r, 2);
        char err[200];
        json_t *why = gs__lua_to_json(L, -1, "reason", 0, NULL, err, sizeof(err));
        c->reason = why != NULL ? why : json_pack("[s, s]", "bad_value", err);
        return 0;
    }
    c->reason = json_pack("[s, s]", "bad_return_value", "code_change");
    return 0;
}

int gs__lua_server_code_change(gs__lua_server_t *srv, gs__lua_version_t *to, const char *old_vsn,
                               json_t *extra, json_t **reason)
{
    if (gs__lua_server_wake(srv, reason) != 0)
        return -1;
    lua_State *L = srv->L;
    cctx_t c = {to, old_vsn, extra, NULL};
    lua_pushcfunction(L, tramp_code_change);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_pushlightuserdata(L, &c);
    if (gs__lua_pcall(L, 3, LUA_MULTRET, srv->instruction_limit, reason) != LUA_OK) {
        lua_settop(L, 2);
        json_decref(c.reason);
        return -1;
    }
    if (c.reason != NULL) {
        lua_settop(L, 2);
        *reason = c.reason;
        return -1;
    }
    /* [old table, old state, new table, new state] -> [new table, new state] */
    lua_replace(L, 2);
    lua_replace(L, 1);
    lua_settop(L, 2);
    srv->v = to;
    set_limits(srv);
    lua_gc(L, LUA_GCCOLLECT);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* replace_state                                                                              */
/* ---------------------------------------------------------------------------------------- */

typedef struct rctx_s {
    json_t *next;   /* borrowed: the state a client asks for */
    json_t *reason; /* new: why it was refused */
} rctx_t;

/* Arguments 1 the callbacks, 2 the state, 3 the context. Returns the new state, or nothing
 * with c->reason set. */
static int tramp_replace_state(lua_State *L)
{
    rctx_t *c = lua_touserdata(L, 3);
    lua_pushliteral(L, "replace_state");
    if (lua_rawget(L, 1) != LUA_TFUNCTION) {
        /* No check of its own: the JSON, as Lua values, is the new state. */
        gs__lua_push_json(L, c->next, NULL, 0);
        return 1;
    }
    gs__lua_push_json(L, c->next, NULL, 0);
    lua_pushvalue(L, 2);
    lua_call(L, 2, 1);
    int r = lua_gettop(L);
    int n = lua_type(L, r) == LUA_TTABLE ? arity(L, r) : 0;
    if (n >= 1 && n <= 2 && tag_is(L, r, "ok")) {
        lua_rawgeti(L, r, 2);
        return 1;
    }
    if (n == 2 && tag_is(L, r, "error")) {
        lua_rawgeti(L, r, 2);
        char err[200];
        json_t *why = gs__lua_to_json(L, -1, "reason", 0, NULL, err, sizeof(err));
        c->reason = why != NULL ? why : json_pack("[s, s]", "bad_value", err);
        return 0;
    }
    c->reason = json_pack("[s, s]", "bad_return_value", "replace_state");
    return 0;
}

int gs__lua_replace_state(gs_server_t *self, void **state, json_t *next, json_t **reason)
{
    gs__lua_server_t *srv = *state;
    (void)self;
    if (gs__lua_server_wake(srv, reason) != 0)
        return -1;
    lua_State *L = srv->L;
    rctx_t c = {next, NULL};
    lua_pushcfunction(L, tramp_replace_state);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_pushlightuserdata(L, &c);
    /* A raise in the check refuses the state (its reason says why); the server lives on. */
    if (gs__lua_pcall(L, 3, LUA_MULTRET, srv->instruction_limit, reason) != LUA_OK) {
        lua_settop(L, 2);
        json_decref(c.reason);
        return -1;
    }
    if (c.reason != NULL) {
        lua_settop(L, 2);
        *reason = c.reason;
        return -1;
    }
    lua_replace(L, 2); /* [table, old state, new state] -> [table, new state] */
    lua_settop(L, 2);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Durability                                                                                 */
/* ---------------------------------------------------------------------------------------- */

/*
 * The runtime dumps a durable server's state after every message and compares the text with
 * the last one, so this must give one text per value, and cheaply: the conversion is SORTED
 * (convert.c says why Lua's own order will not do) and costs one pass over the state.
 *
 * It is STRICT too, as hibernation is: what is stored must come back as the same Lua value,
 * or a server would behave differently after a restart than before it, silently. An integer
 * key (JSON would make it a string: t[17] would read nil after a restore), a table reached
 * twice (it would come back as two), a metatable other than gs.array_mt (lost), a function,
 * a userdata, a cycle, NaN or inf: each is refused with the place it was found, and the
 * runtime crashes the server with ["unserializable_state", ["bad_value", "... at state.x"]]
 * and keeps the state it stored last. What JSON does not keep of a value that is stored is
 * whether a non-empty array carried gs.array_mt: a restored one does, as a decoded message's.
 */
json_t *gs__lua_dump_state(gs_server_t *self, void *state, json_t **reason)
{
    gs__lua_server_t *srv = state;
    char err[200];
    (void)self;
    if (srv->L == NULL) {
        /* Hibernated: its text, made by the same strict conversion, stays asleep; only the
         * keys' order differs (hibernation keeps Lua's, for its marks). */
        if (srv->frozen == NULL)
            return json_null();
        json_t *text =
            json_loadb(srv->frozen, srv->frozen_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        json_t *v = text != NULL ? gs__lua_json_sorted(text) : NULL;
        if (v == NULL)
            *reason =
                json_pack("[s, s]", "bad_value",
                          text == NULL ? "the hibernated state does not load" : "out of memory");
        json_decref(text);
        return v;
    }
    /* Its own budget: the conversion's time bound is the callback's backstop, and the last
     * callback may be long past (a system message runs none). */
    gs__lua_budget_start(srv->L, srv->instruction_limit);
    json_t *v = gs__lua_to_json(srv->L, 2, "state", GS__LUA_STRICT | GS__LUA_SORTED, NULL, err,
                                sizeof(err));
    if (v == NULL)
        *reason = json_pack("[s, s]", "bad_value", err);
    return v;
}

/*
 * At start (*state NULL) this is init without the Lua init: the same limits (and the same
 * refusal of a start that asks for more than the host allows), a sandbox, the chunk run for
 * the table of callbacks, and the stored JSON pushed as the state, under the memory limit
 * (a stored state too large for it fails the start with ["memory_limit", bytes]).
 *
 * On a rollback (*state the server's) the server is rebuilt rather than its state value
 * replaced in place: a fresh Lua state, as at a restart from the store, so that nothing the
 * rolled-back messages left behind (a chunk-level local they changed, garbage) survives them;
 * a rollback is rare, and running the chunk once more is cheap next to the failed commit
 * that caused it. The new state is built beside the old one (each within the memory limit),
 * and the old one is freed only once the new one stands: on a failure the server keeps its
 * state, for terminate, and the runtime crashes it.
 */
int gs__lua_restore(gs_server_t *self, json_t *stored, void **state, json_t **reason)
{
    gs__lua_server_t *old = *state, *srv;
    if (old == NULL) {
        if ((srv = server_create(self, reason)) == NULL)
            return -1;
    } else {
        if ((srv = calloc(1, sizeof(*srv))) == NULL) {
            *reason = json_string(gs_err_name(GS_ENOMEM));
            return -1;
        }
        srv->v = old->v; /* the code it runs now: an upgrade may have moved it */
        srv->opt_memory = old->opt_memory;
        srv->opt_instructions = old->opt_instructions;
        set_limits(srv);
    }
    if (open_state(srv, stored, NULL, reason) != 0) {
        server_free(srv);
        return -1;
    }
    if (old != NULL) {
        srv->doom = old->doom; /* not the state's: the server's first turn still owes it */
        old->doom = NULL;
        server_free(old);
    }
    *state = srv;
    return 0;
}

/*
 * restored(state), after a restore at start, inside the start as init is: {"ok", state} or
 * {"ok", state, NEXT} (NEXT through gs_init_then, as init's). The C callback cannot refuse
 * the start, so anything else ({"stop", reason}, a raise, a limit, a bad return) is kept as
 * the server's doom, and a {"continue"} asked through gs_init_then makes its first turn run
 * handle_continue, which returns the doom as a stop before any message (run() above; load.c
 * sets handle_continue on every Lua behaviour for this, the table's or not). The server thus
 * starts and at once stops with that reason, and its supervisor decides as for any exit.
 * Called outside a start (gs_init_then then does nothing), the doom waits for the first
 * handler instead.
 */
void gs__lua_restored(gs_server_t *self, void *state)
{
    gs__lua_server_t *srv = state;
    hctx_t c = {.kind = K_RESTORED, .cb = "restored"};
    gs_result_t r = run(srv, &c);
    if (c.missing)
        return;
    if (r.action == GS_ACTION_STOP) {
        json_decref(r.reply);
        json_decref(srv->doom);
        srv->doom =
            r.reason != NULL ? r.reason : json_pack("[s, s]", "bad_return_value", "restored");
        gs_init_then(self, gs_then_continue(GS_NOREPLY, json_null()));
        return;
    }
    if (r.next != GS_NEXT_NONE)
        gs_init_then(self, r);
    lua_gc(srv->L, LUA_GCCOLLECT);
}
