/*
 * gslib.c: the `gs` library, GenServer and Process for Lua callbacks (README.md lists every
 * function). Each one acts for the server whose callback runs on this thread (gs_self()) and
 * none blocks: a call to another server is gs.send_request, whose answer comes back later as
 * an info message, never a wait.
 *
 * Values that leave the server (messages, replies, tags) are converted to JSON first; one that
 * JSON cannot hold raises "bad_value: function at message.f" where the script called.
 * Failures the caller may expect (no such server, a full mailbox, calling_self) return nil and
 * the error's code, the Lua way; misuse (a wrong argument type) raises.
 *
 * A `from` and a timer reference are plain JSON values (so they can be kept in the state, sent
 * to another server and survive hibernation) carrying a MAC of the host's random key: the
 * runtime's call ids and timer references are sequential, and without the MAC any server, or
 * any HTTP client through a server that trusts its messages, could answer or cancel another's.
 */
#include "lua_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------- */
/* MACs: SipHash-2-4 of two 64-bit words                                                      */
/* ---------------------------------------------------------------------------------------- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

uint64_t gs__lua_mac(const gs__lua_env_t *env, uint64_t a, uint64_t b)
{
    uint64_t k0 = env->key[0], k1 = env->key[1];
    uint64_t v0 = k0 ^ 0x736f6d6570736575ULL, v1 = k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ULL, v3 = k1 ^ 0x7465646279746573ULL;
    const uint64_t words[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        v3 ^= words[i];
        SIPROUND;
        SIPROUND;
        v0 ^= words[i];
    }
    uint64_t last = (uint64_t)16 << 56; /* the length, no tail bytes */
    v3 ^= last;
    SIPROUND;
    SIPROUND;
    v0 ^= last;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

#define FROM_TAG  0x66726f6dULL /* "from": a from's MAC differs from a timer's */
#define TIMER_TAG 0x74696d72ULL /* "timr" */

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                    */
/* ---------------------------------------------------------------------------------------- */

static gs_server_t *self_of(lua_State *L, const char *fn)
{
    gs_server_t *s = gs_self();
    if (s == NULL)
        luaL_error(L, "gs.%s: only inside a server's callback", fn);
    return s;
}

/* The value at idx as JSON (new), or raise bad_value. */
static json_t *arg_json(lua_State *L, int idx, const char *root)
{
    char err[200];
    json_t *v = gs__lua_to_json(L, idx, root, 0, NULL, err, sizeof(err));
    if (v == NULL)
        luaL_error(L, "bad_value: %s", err);
    return v;
}

/* Return true, or nil and the error's code. */
static int outcome(lua_State *L, int rc)
{
    if (rc == 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushnil(L);
    lua_pushstring(L, gs_err_name(rc));
    return 2;
}

/* ---------------------------------------------------------------------------------------- */
/* from                                                                                       */
/* ---------------------------------------------------------------------------------------- */

void gs__lua_push_from(lua_State *L, gs_from_t from)
{
    const gs__lua_env_t *env = gs__lua_box(L)->env;
    char mac[17];
    snprintf(mac, sizeof(mac), "%016" PRIx64, gs__lua_mac(env, from.id, FROM_TAG));
    lua_createtable(L, 3, 0);
    lua_pushliteral(L, "$from");
    lua_rawseti(L, -2, 1);
    lua_pushinteger(L, (lua_Integer)from.id);
    lua_rawseti(L, -2, 2);
    lua_pushstring(L, mac);
    lua_rawseti(L, -2, 3);
    gs__lua_push_array_mt(L);
    lua_setmetatable(L, -2);
}

/* The from at idx: true and *from when it is one this host made. */
static bool check_from(lua_State *L, int idx, gs_from_t *from)
{
    const gs__lua_env_t *env = gs__lua_box(L)->env;
    bool ok = false;
    if (lua_type(L, idx) != LUA_TTABLE)
        return false;
    lua_rawgeti(L, idx, 1);
    lua_rawgeti(L, idx, 2);
    lua_rawgeti(L, idx, 3);
    if (lua_type(L, -3) == LUA_TSTRING && strcmp(lua_tostring(L, -3), "$from") == 0 &&
        lua_isinteger(L, -2) && lua_tointeger(L, -2) > 0 && lua_type(L, -1) == LUA_TSTRING) {
        uint64_t id = (uint64_t)lua_tointeger(L, -2);
        char mac[17];
        snprintf(mac, sizeof(mac), "%016" PRIx64, gs__lua_mac(env, id, FROM_TAG));
        if (strcmp(lua_tostring(L, -1), mac) == 0) {
            from->id = id;
            ok = true;
        }
    }
    lua_pop(L, 3);
    return ok;
}

/* gs.reply(from, value): true, or nil and "no_such_call" (already answered, timed out, its
 * server gone) or "bad_from" (not a from this host made). */
static int l_reply(lua_State *L)
{
    gs_server_t *s = self_of(L, "reply");
    gs_from_t from = {gs_server_runtime(s), 0};
    luaL_checkany(L, 1);
    if (!check_from(L, 1, &from)) {
        lua_pushnil(L);
        lua_pushliteral(L, "bad_from");
        return 2;
    }
    json_t *v = arg_json(L, 2, "reply");
    return outcome(L, gs_reply(from, v));
}

/* gs.call_pending(from): whether that call still waits for its reply. */
static int l_call_pending(lua_State *L)
{
    gs_server_t *s = self_of(L, "call_pending");
    gs_from_t from = {gs_server_runtime(s), 0};
    lua_pushboolean(L, check_from(L, 1, &from) && gs_call_pending(from));
    return 1;
}

/* ---------------------------------------------------------------------------------------- */
/* Messages and timers                                                                        */
/* ---------------------------------------------------------------------------------------- */

static int l_self(lua_State *L)
{
    lua_pushstring(L, gs_server_name(self_of(L, "self")));
    return 1;
}

static int send_by(lua_State *L, const char *fn, int (*op)(gs_runtime_t *, const char *, json_t *))
{
    gs_server_t *s = self_of(L, fn);
    const char *name = luaL_checkstring(L, 1);
    json_t *msg = arg_json(L, 2, "message");
    return outcome(L, op(gs_server_runtime(s), name, msg));
}

static int l_cast(lua_State *L)
{
    return send_by(L, "cast", gs_cast);
}

static int l_send(lua_State *L)
{
    return send_by(L, "send", gs_send);
}

static void push_timer_ref(lua_State *L, gs_timer_ref_t ref)
{
    const gs__lua_env_t *env = gs__lua_box(L)->env;
    char text[40];
    snprintf(text, sizeof(text), "%016" PRIx64 "%016" PRIx64, (uint64_t)ref,
             gs__lua_mac(env, ref, TIMER_TAG));
    lua_pushstring(L, text);
}

/* The timer reference at idx, or 0 when it is not one this host made. */
static gs_timer_ref_t check_timer_ref(lua_State *L, int idx)
{
    const gs__lua_env_t *env = gs__lua_box(L)->env;
    size_t len;
    const char *text = lua_tolstring(L, idx, &len);
    char hex[17], want[40];
    if (lua_type(L, idx) != LUA_TSTRING || len != 32)
        return 0;
    memcpy(hex, text, 16);
    hex[16] = '\0';
    char *end;
    uint64_t ref = strtoull(hex, &end, 16);
    if (*end != '\0' || ref == 0)
        return 0;
    snprintf(want, sizeof(want), "%016" PRIx64 "%016" PRIx64, ref,
             gs__lua_mac(env, ref, TIMER_TAG));
    return strcmp(want, text) == 0 ? (gs_timer_ref_t)ref : 0;
}

/* gs.send_after(dest, msg, ms): a timer reference, or nil and the error's code. dest nil or
 * the server's own name: this incarnation (Process.send_after(self(), ...)). */
static int l_send_after(lua_State *L)
{
    gs_server_t *s = self_of(L, "send_after");
    const char *dest = NULL; /* nil or gs.null: self */
    if (!lua_isnoneornil(L, 1) && lua_touserdata(L, 1) != (void *)&gs__lua_null)
        dest = luaL_checkstring(L, 1);
    lua_Integer ms = luaL_checkinteger(L, 3);
    luaL_argcheck(L, ms >= 0, 3, "a delay in ms must not be negative");
    json_t *msg = arg_json(L, 2, "message");
    gs_timer_ref_t ref = 0;
    int rc = dest == NULL || strcmp(dest, gs_server_name(s)) == 0
                 ? gs_send_after_server(s, msg, (uint64_t)ms, &ref)
                 : gs_send_after(gs_server_runtime(s), dest, msg, (uint64_t)ms, &ref);
    if (rc != 0)
        return outcome(L, rc);
    push_timer_ref(L, ref);
    return 1;
}

static int timer_op(lua_State *L, const char *fn,
                    int (*op)(gs_runtime_t *, gs_timer_ref_t, int64_t *))
{
    gs_server_t *s = self_of(L, fn);
    luaL_checkany(L, 1);
    gs_timer_ref_t ref = check_timer_ref(L, 1);
    int64_t left = 0;
    if (ref == 0 || op(gs_server_runtime(s), ref, &left) != 0) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushinteger(L, (lua_Integer)left);
    return 1;
}

/* gs.cancel_timer(ref) / gs.read_timer(ref): the ms it had left, or nil (fired, cancelled, or
 * not a reference), like Process.cancel_timer/read_timer's false. */
static int l_cancel_timer(lua_State *L)
{
    return timer_op(L, "cancel_timer", gs_cancel_timer);
}

static int l_read_timer(lua_State *L)
{
    return timer_op(L, "read_timer", gs_read_timer);
}

/* gs.send_request(name, msg, tag[, timeout_ms]): true, or nil and the code ("calling_self",
 * "no_such_server", ...). The answer comes as the info ["gs_reply", tag, reply] or
 * ["gs_error", tag, code, reason]. */
static int l_send_request(lua_State *L)
{
    gs_server_t *s = self_of(L, "send_request");
    const char *name = luaL_checkstring(L, 1);
    lua_Integer timeout = luaL_optinteger(L, 4, GS_DEFAULT_TIMEOUT_MS);
    luaL_argcheck(L, timeout >= 0 && timeout <= INT32_MAX, 4, "a timeout in ms");
    json_t *msg = arg_json(L, 2, "message");
    json_t *tag = gs__lua_to_json(L, 3, "tag", 0, NULL, NULL, 0);
    if (tag == NULL) {
        json_decref(msg);
        return luaL_error(L, "bad_value: the tag of gs.send_request is not JSON");
    }
    return outcome(L, gs_send_request(s, name, msg, (int)timeout, tag));
}

/* ---------------------------------------------------------------------------------------- */
/* Time, logs, values                                                                         */
/* ---------------------------------------------------------------------------------------- */

static int l_now_ms(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lua_pushinteger(L, (lua_Integer)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    return 1;
}

static int l_monotonic_ms(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)(gs__lua_now_ns() / 1000000));
    return 1;
}

#define LOG_LINE_MAX 16384

int gs__lua_log_args(lua_State *L, const char *level, int first)
{
    const gs__lua_env_t *env = gs__lua_box(L)->env;
    gs_server_t *s = gs_self();
    if (env == NULL || env->log == NULL)
        return 0;
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = first; i <= n; i++) {
        size_t len;
        const char *t = luaL_tolstring(L, i, &len); /* __tostring runs under the budget */
        lua_pop(L, 1);
        if (i > first)
            luaL_addchar(&b, ' ');
        luaL_addlstring(&b, t, len < LOG_LINE_MAX ? len : LOG_LINE_MAX);
    }
    luaL_pushresult(&b);
    size_t len;
    const char *line = lua_tolstring(L, -1, &len);
    if (len > LOG_LINE_MAX) {
        lua_pushlstring(L, line, LOG_LINE_MAX);
        line = lua_tostring(L, -1);
    }
    env->log(level, s != NULL ? gs_server_name(s) : "", line, env->log_arg);
    return 0;
}

static int l_log(lua_State *L)
{
    static const char *const levels[] = {"debug", "info", "warning", "error", NULL};
    int level = luaL_checkoption(L, 1, NULL, levels);
    return gs__lua_log_args(L, levels[level], 2);
}

/* gs.array([t]): t (or a new table) marked as a JSON array, even when empty. */
static int l_array(lua_State *L)
{
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    gs__lua_push_array_mt(L);
    lua_setmetatable(L, 1);
    return 1;
}

/* gs.object([t]): t (or a new table) as a JSON object: its gs.array_mt mark, if any, goes. */
static int l_object(lua_State *L)
{
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    if (lua_getmetatable(L, 1)) {
        gs__lua_push_array_mt(L);
        if (lua_rawequal(L, -1, -2)) {
            lua_pushnil(L);
            lua_setmetatable(L, 1);
        }
    }
    lua_settop(L, 1);
    return 1;
}

/* gs.is_array(t): whether t encodes as a JSON array (convert.c's rule: its keys are exactly
 * 1..n, n >= 1, or it is empty and marked with gs.array_mt). */
static int l_is_array(lua_State *L)
{
    bool array = false;
    if (lua_type(L, 1) == LUA_TTABLE) {
        lua_Integer count = 0, maxk = 0;
        bool seq = true;
        lua_settop(L, 1);
        lua_pushnil(L);
        while (lua_next(L, 1) != 0) {
            count++;
            lua_Integer k = lua_isinteger(L, -2) ? lua_tointeger(L, -2) : 0;
            if (k < 1)
                seq = false;
            else if (k > maxk)
                maxk = k;
            lua_pop(L, 1);
        }
        if (count > 0) {
            array = seq && maxk == count;
        } else if (lua_getmetatable(L, 1)) {
            gs__lua_push_array_mt(L);
            array = lua_rawequal(L, -1, -2);
        }
    }
    lua_pushboolean(L, array);
    return 1;
}

/* gs.monitor(name): a monitor reference (an integer), or nil and the code. When the server
 * now registered under name ends, handle_info gets {"DOWN", ref, name, reason} once; at once
 * with reason "no_such_server" when none runs under that name (Process.monitor(name)). */
static int l_monitor(lua_State *L)
{
    gs_server_t *s = self_of(L, "monitor");
    const char *name = luaL_checkstring(L, 1);
    gs_monitor_ref_t ref = 0;
    int rc = gs_monitor(s, name, &ref);
    if (rc != 0)
        return outcome(L, rc);
    lua_pushinteger(L, (lua_Integer)ref);
    return 1;
}

/* gs.demonitor(ref): true, or nil and "no_such_monitor" (fired already, or not ours). A DOWN
 * already queued still arrives. */
static int l_demonitor(lua_State *L)
{
    gs_server_t *s = self_of(L, "demonitor");
    lua_Integer ref = luaL_checkinteger(L, 1);
    return outcome(L, ref > 0 ? gs_demonitor(s, (gs_monitor_ref_t)ref) : GS_ENOMONITOR);
}

/* The outcome of gs.stop is not reported: a monitor says when the server is gone. */
static void stop_done(int status, void *arg)
{
    (void)status;
    (void)arg;
}

/* gs.stop(name[, reason[, timeout_ms]]): true once the stop is on its way (the server then
 * handles what is in its mailbox, terminate runs with reason; past timeout_ms, default 5000,
 * it is killed), or nil and the code ("no_such_server", "calling_self": a callback stops its
 * own server by returning {"stop", reason, state}, as GenServer.stop(self()) exits). */
static int l_stop(lua_State *L)
{
    gs_server_t *s = self_of(L, "stop");
    const char *name = luaL_checkstring(L, 1);
    lua_Integer timeout = luaL_optinteger(L, 3, GS_DEFAULT_TIMEOUT_MS);
    luaL_argcheck(L, timeout >= 0 && timeout <= INT32_MAX, 3, "a timeout in ms");
    if (strcmp(name, gs_server_name(s)) == 0)
        return outcome(L, GS_ECALLINGSELF);
    json_t *reason = lua_isnoneornil(L, 2) ? NULL : arg_json(L, 2, "reason");
    gs_stop_options_t opts;
    gs_stop_options_init(&opts);
    opts.timeout_ms = (int)timeout;
    return outcome(L,
                   gs_stop_async_opts(gs_server_runtime(s), name, reason, &opts, stop_done, NULL));
}

static const luaL_Reg gs_fns[] = {
    {"self", l_self},
    {"reply", l_reply},
    {"call_pending", l_call_pending},
    {"cast", l_cast},
    {"send", l_send},
    {"send_after", l_send_after},
    {"cancel_timer", l_cancel_timer},
    {"read_timer", l_read_timer},
    {"send_request", l_send_request},
    {"monitor", l_monitor},
    {"demonitor", l_demonitor},
    {"stop", l_stop},
    {"now_ms", l_now_ms},
    {"monotonic_ms", l_monotonic_ms},
    {"log", l_log},
    {"array", l_array},
    {"object", l_object},
    {"is_array", l_is_array},
    {NULL, NULL},
};

void gs__lua_fill_gs(lua_State *L)
{
    luaL_setfuncs(L, gs_fns, 0);
    lua_pushlightuserdata(L, (void *)&gs__lua_null);
    lua_setfield(L, -2, "null");
    gs__lua_push_array_mt(L);
    lua_setfield(L, -2, "array_mt");
}
