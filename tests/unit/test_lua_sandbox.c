/*
 * test_lua_sandbox.c: what a Lua behaviour cannot do. Forbidden globals and functions, binary
 * chunks, new globals, globals shared between servers; the memory cap and the instruction
 * budget (their crash reasons, uncatchable, and a permanent server restarted); hostile inputs
 * bounded in time (each measured and printed); and the pattern matcher of pattern.c checked
 * against Lua's own on the same cases.
 */
#include "test_lua.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

/* A behaviour whose call evaluates the Lua expression given as the message... through a fixed
 * set of snippets (the sandbox has no load): each test loads its own chunk instead. */
static void load_call(lt_t *f, const char *name, const char *body)
{
    char src[8192];
    snprintf(src, sizeof(src),
             "local M = {}\n"
             "function M.init() return {'ok', 0} end\n"
             "function M.handle_call(msg, from, s)\n%s\nend\n"
             "return M\n",
             body);
    lt_load(f, name, src);
}

static void test_forbidden_globals(void **state)
{
    lt_t *f = *state;
    load_call(f, "probe",
              "  local ok, v = pcall(function() return _ENV[msg] end)\n"
              "  return {'reply', ok and v ~= nil, s}");
    lt_start(f, "p", "probe", NULL);
    const char *absent[] = {"io",     "os",         "debug",   "package",  "require",
                            "load",   "loadstring", "dofile",  "loadfile", "coroutine",
                            "warn",   "module",     "setfenv", "getfenv",  "newproxy",
                            "unpack", "jit",        "bit32",   "utf8x"};
    for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++) {
        char msg[64];
        snprintf(msg, sizeof(msg), "\"%s\"", absent[i]);
        json_t *r = NULL;
        assert_int_equal(tu_call(f->rt, "p", msg, TU_WAIT_MS, &r), 0);
        if (!json_is_false(r)) {
            print_error("global %s is reachable\n", absent[i]);
            fail();
        }
        json_decref(r);
    }
    const char *present[] = {
        "string",       "table",         "math",   "utf8",     "gs",     "pairs",
        "ipairs",       "pcall",         "xpcall", "error",    "type",   "tostring",
        "print",        "select",        "next",   "rawequal", "_G",     "_VERSION",
        "assert",       "tonumber",      "rawget", "rawset",   "rawlen", "setmetatable",
        "getmetatable", "collectgarbage"};
    for (size_t i = 0; i < sizeof(present) / sizeof(present[0]); i++) {
        char msg[64];
        snprintf(msg, sizeof(msg), "\"%s\"", present[i]);
        json_t *r = NULL;
        assert_int_equal(tu_call(f->rt, "p", msg, TU_WAIT_MS, &r), 0);
        if (!json_is_true(r)) {
            print_error("global %s is missing\n", present[i]);
            fail();
        }
        json_decref(r);
    }
    load_call(f, "fns",
              "  local r = {}\n"
              "  r.dump = string.dump == nil\n"
              "  r.stop = not pcall(collectgarbage, 'stop')\n"
              "  r.step = not pcall(collectgarbage, 'step')\n"
              "  r.count = type(collectgarbage('count')) == 'number'\n"
              "  r.collect = collectgarbage() == 0\n"
              "  r.gc = not pcall(setmetatable, {}, {__gc = function() end})\n"
              "  r.strmeta = getmetatable('') == false\n"
              "  r.gmeta = getmetatable(_G) == false\n"
              "  r.setg = not pcall(setmetatable, _G, {})\n"
              "  r.rawset = not pcall(rawset, _G, 'x', 1)\n"
              "  r.strset = not pcall(function() string.x = 1 end)\n"
              "  r.libset = not pcall(function() string.find = nil end)\n"
              "  r.gsset = not pcall(function() gs.reply = nil end)\n"
              "  r.newg = not pcall(function() newglobal = 1 end)\n"
              "  r.oldg = not pcall(function() print = nil end)\n"
              "  r.method = ('abc'):upper() == 'ABC'\n"
              "  r.arith = '10' + 1 == 11\n"
              "  r.amt = not pcall(function() gs.array_mt.__gc = print end)\n"
              "  r.amtraw = not pcall(rawset, gs.array_mt, '__gc', print)\n"
              "  return {'reply', r, s}");
    lt_start(f, "q", "fns", NULL);
    tu_call_expect(
        f->rt, "q", "0",
        "{\"dump\": true, \"stop\": true, \"step\": true, \"count\": true, \"collect\": "
        "true, \"gc\": true, \"strmeta\": true, \"gmeta\": true, \"setg\": true, "
        "\"rawset\": true, \"strset\": true, \"libset\": true, \"gsset\": true, "
        "\"newg\": true, \"oldg\": true, \"method\": true, \"arith\": true, \"amt\": true, "
        "\"amtraw\": true}");
}

static int dump_writer(lua_State *L, const void *p, size_t sz, void *ud)
{
    (void)L;
    luaL_addlstring(ud, p, sz);
    return 0;
}

static void test_binary_chunk_refused(void **state)
{
    lt_t *f = *state;
    lua_State *L = luaL_newstate();
    assert_int_equal(luaL_loadstring(L, "return {handle_call = function() end}"), LUA_OK);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    lua_pushvalue(L, -2);
    lua_dump(L, dump_writer, &b, 0);
    lua_pop(L, 1);
    luaL_pushresult(&b);
    size_t len;
    const char *bin = lua_tolstring(L, -1, &len);
    json_t *err = NULL;
    assert_int_equal(gs_lua_load(f->lua, "bin", NULL, bin, len, NULL, &err), GS_EINVAL);
    assert_non_null(strstr(json_string_value(err), "binary"));
    json_decref(err);
    lua_close(L);
    assert_false(gs_lua_has(f->lua, "bin"));
}

static void test_new_globals_refused(void **state)
{
    lt_t *f = *state;
    json_t *err = NULL;
    assert_int_equal(lt_load_rc(f, "g1", "x = 1\nreturn {init = function() end}", &err), GS_EINVAL);
    assert_string_equal(json_string_value(err),
                        "g1:1: assignment to undeclared global or locked table field 'x'");
    json_decref(err);
    assert_int_equal(lt_load_rc(f, "g2", "return {init = function() return y end}\n", NULL),
                     0); /* read at run time only */
    json_t *why = NULL;
    assert_int_equal(lt_start_rc(f, "s", "g2", NULL, NULL, &why), GS_EINIT);
    assert_json_eq(why, "[\"lua_error\", \"g2:1: undeclared global 'y'\"]");
    json_decref(why);
}

static void test_globals_do_not_leak(void **state)
{
    lt_t *f = *state;
    lt_load(f, "leak",
            "local n = 0\n"
            "return {init = function() return {'ok', 0} end,\n"
            " handle_call = function(m, f, s) n = n + 1 return {'reply', n, s} end}");
    lt_start(f, "a", "leak", NULL);
    lt_start(f, "b", "leak", NULL);
    assert_int_equal(tu_call_int(f->rt, "a", "0"), 1);
    assert_int_equal(tu_call_int(f->rt, "a", "0"), 2);
    assert_int_equal(tu_call_int(f->rt, "b", "0"), 1);
}

/* ---------------------------------------------------------------------------------------- */
/* Limits                                                                                     */
/* ---------------------------------------------------------------------------------------- */

static const char *hog_src =
    "local M = {}\n"
    "function M.init() return {'ok', {}} end\n"
    "local function grow() local t = {} for i = 1, 1e8 do t[i] = ('x'):rep(64) .. i end end\n"
    "local function spin() while true do end end\n"
    "function M.handle_call(msg, from, s)\n"
    "  if msg == 'grow' then grow() end\n"
    "  if msg == 'grow_caught' then for i = 1, 100 do pcall(grow) end end\n"
    "  if msg == 'spin' then spin() end\n"
    "  if msg == 'spin_caught' then while true do pcall(spin) end end\n"
    "  if msg == 'spin_xpcall' then while true do xpcall(spin, function(e) return e end) end end\n"
    "  if msg == 'rep' then return {'reply', #('x'):rep(1e12), s} end\n"
    "  return {'reply', 'ok', s}\n"
    "end\n"
    "return M\n";

static void test_memory_limit(void **state)
{
    lt_t *f = *state;
    lt_load(f, "hog", hog_src);
    gs_start_options_t o = tu_start_options(GS_PERMANENT, 0);
    o.memory_limit = 1 << 20;
    o.max_restarts = 100;
    assert_int_equal(lt_start_rc(f, "m", "hog", NULL, &o, NULL), 0);
    lt_call_fails(f, "m", "\"grow\"", GS_ECRASHED, "[\"memory_limit\", 1048576]");
    tu_wait_running(f->rt, "m", 1);
    lt_call_fails(f, "m", "\"grow_caught\"", GS_ECRASHED, "[\"memory_limit\", 1048576]");
    tu_wait_running(f->rt, "m", 2);
    lt_call_fails(f, "m", "\"rep\"", GS_ECRASHED, "[\"memory_limit\", 1048576]");
    tu_wait_running(f->rt, "m", 3);
    tu_call_expect(f->rt, "m", "0", "\"ok\"");
    /* A start cannot ask for more than the host's maximum: its init is refused, and says so. */
    gs_start_options_t big = tu_start_options(GS_TEMPORARY, 0);
    big.memory_limit = (uint64_t)1 << 40;
    json_t *why = NULL;
    assert_int_equal(lt_start_rc(f, "big", "hog", NULL, &big, &why), GS_EINIT);
    assert_string_equal(json_string_value(json_array_get(why, 0)), "bad_limit");
    json_decref(why);
}

static void test_cpu_limit(void **state)
{
    lt_t *f = *state;
    lt_load(f, "hog", hog_src);
    gs_start_options_t o = tu_start_options(GS_PERMANENT, 0);
    o.instruction_limit = 100000;
    o.max_restarts = 100;
    assert_int_equal(lt_start_rc(f, "c", "hog", NULL, &o, NULL), 0);
    lt_call_fails(f, "c", "\"spin\"", GS_ECRASHED, "[\"cpu_limit\", 100000]");
    tu_wait_running(f->rt, "c", 1);
    lt_call_fails(f, "c", "\"spin_caught\"", GS_ECRASHED, "[\"cpu_limit\", 100000]");
    tu_wait_running(f->rt, "c", 2);
    lt_call_fails(f, "c", "\"spin_xpcall\"", GS_ECRASHED, "[\"cpu_limit\", 100000]");
    tu_wait_running(f->rt, "c", 3);
    tu_call_expect(f->rt, "c", "0", "\"ok\"");
    /* A behaviour's own limits, checked at load. */
    json_t *err = NULL;
    json_t *limits = tu_json("{\"instructions\": 5000, \"memory_bytes\": 200000}");
    assert_int_equal(gs_lua_load(f->lua, "small", NULL, hog_src, strlen(hog_src), limits, &err), 0);
    json_decref(limits);
    assert_int_equal(lt_start_rc(f, "s", "small", NULL, NULL, NULL), 0);
    lt_call_fails(f, "s", "\"spin\"", GS_ECRASHED, "[\"cpu_limit\", 5000]");
    limits = tu_json("{\"instructions\": 10}");
    assert_int_equal(gs_lua_load(f->lua, "tiny", NULL, hog_src, strlen(hog_src), limits, &err),
                     GS_EINVAL);
    json_decref(limits);
    json_decref(err);
    limits = tu_json("{\"cpu\": 10000}");
    assert_int_equal(gs_lua_load(f->lua, "typo", NULL, hog_src, strlen(hog_src), limits, &err),
                     GS_EINVAL);
    json_decref(limits);
    json_decref(err);
}

/* A start or a behaviour may not ask for more than the host's maximum: a start gets the
 * maximum, a behaviour is refused. */
static void test_limits_at_most_the_hosts(void **state)
{
    lt_t *g = NULL;
    gs_lua_options_t o;
    (void)state;
    gs_lua_options_init(&o);
    o.memory_limit = 1 << 20;
    o.max_memory_limit = 2 << 20;
    o.instruction_limit = 100000;
    o.max_instruction_limit = 200000;
    lt_setup_opts((void **)&g, &o);
    lt_load(g, "hog", hog_src);
    /* A start may ask for up to the host's maximum, not more (refused, not capped). */
    gs_start_options_t big = tu_start_options(GS_TEMPORARY, 0);
    big.memory_limit = (uint64_t)1 << 40;
    assert_int_equal(lt_start_rc(g, "m", "hog", NULL, &big, NULL), GS_EINIT);
    big.memory_limit = 2 << 20;
    big.instruction_limit = (uint64_t)1 << 40;
    assert_int_equal(lt_start_rc(g, "c", "hog", NULL, &big, NULL), GS_EINIT);
    big.instruction_limit = 200000;
    assert_int_equal(lt_start_rc(g, "m", "hog", NULL, &big, NULL), 0);
    lt_call_fails(g, "m", "\"rep\"", GS_ECRASHED, "[\"memory_limit\", 2097152]");
    assert_int_equal(lt_start_rc(g, "c", "hog", NULL, &big, NULL), 0);
    lt_call_fails(g, "c", "\"spin\"", GS_ECRASHED, "[\"cpu_limit\", 200000]");
    /* The host's defaults when neither the behaviour nor the start says. */
    assert_int_equal(lt_start_rc(g, "d", "hog", NULL, NULL, NULL), 0);
    lt_call_fails(g, "d", "\"spin\"", GS_ECRASHED, "[\"cpu_limit\", 100000]");
    json_t *err = NULL, *limits = tu_json("{\"memory_bytes\": 4194304}");
    assert_int_equal(gs_lua_load(g->lua, "greedy", NULL, hog_src, strlen(hog_src), limits, &err),
                     GS_EINVAL);
    json_decref(limits);
    json_decref(err);
    lt_teardown((void **)&g);
}

/* ThreadSanitizer makes memcmp (a long string comparison) an order of magnitude slower, and
 * the count hook sees only every thousandth instruction: its stalls are measured, with room. */
#if defined(__SANITIZE_THREAD__)
#define STALL_BOUND_MS 5000
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define STALL_BOUND_MS 5000
#endif
#endif
#ifndef STALL_BOUND_MS
#define STALL_BOUND_MS 2000
#endif

/* Each hostile expression runs in a call with the default limits: it must end (a crash or a
 * reply) well within 2 s. The worst is printed: the stall a scheduler thread can suffer. */
static void test_hostile_inputs_bounded(void **state)
{
    lt_t *f = *state;
    static const struct {
        const char *what, *code, *reason; /* reason: the first element, or NULL for a reply */
    } cases[] = {
        {"find .-.-.-.-b", "('a'):rep(1e6):find('.-.-.-.-b')", "cpu_limit"},
        {"match (.-)(.-)(.-)b", "('a'):rep(1e5):match('(.-)(.-)(.-)b')", "cpu_limit"},
        {"gsub a-a-a-a-b", "('a'):rep(3e5):gsub('a-a-a-a-b', '')", "cpu_limit"},
        {"gmatch .-.-b", "(function() for x in ('a'):rep(1e5):gmatch('.-.-b') do end end)()",
         "cpu_limit"},
        {"find %b over a long run",
         "(function() local s = ('('):rep(1e6) for i = 1, 1e6 do s:find('%b()') end end)()",
         "cpu_limit"},
        {"plain find", "('a'):rep(4e6):find(('a'):rep(2e6) .. 'b', 1, true)", "cpu_limit"},
        {"rep huge", "('x'):rep(1e12)", "memory_limit"},
        {"rep of nothing", "('').rep('', 1e18)", NULL},
        {"insert under a huge __len",
         "table.insert(setmetatable({}, {__len = function() return 1e12 end}), 1, 0)", "cpu_limit"},
        {"remove under a huge __len",
         "table.remove(setmetatable({}, {__len = function() return 1e12 end}), 1)", "cpu_limit"},
        {"move", "table.move({}, 1, 1e12, 2)", "cpu_limit"},
        {"concat via C __index",
         "table.concat(setmetatable({}, {__index = function(t, k) return 'x' end}), '', 1, 1e9)",
         "cpu_limit"},
        {"concat via tostring", "table.concat(setmetatable({}, {__index = tostring}), '', 1, 1e9)",
         "cpu_limit"},
        {"unpack", "table.unpack({}, 1, 1e8)", "cpu_limit"},
        {"sort under a huge __len",
         "table.sort(setmetatable({}, {__len = function() return 1e12 end}))", "cpu_limit"},
        {"compare long strings",
         "(function() local a, b = ('x'):rep(4e6), ('x'):rep(4e6) while true do local _ = a == b "
         "end end)()",
         "cpu_limit"},
        {"upper in a loop",
         "(function() local a = ('x'):rep(4e6) while true do local _ = a:upper() end end)()",
         "cpu_limit"},
        {"sort long strings",
         "(function() local s = ('x'):rep(4e6) local t = {} for i = 1, 1e4 do t[i] = s end "
         "table.sort(t) end)()",
         "cpu_limit"},
        {"JSON of a DAG",
         "gs.send(gs.self(), (function() local t = {} for i = 1, 40 do t = {t, t} end return t "
         "end)())",
         "lua_error"},
        {"deep recursion",
         "(function() local function r(n) return 1 + r(n + 1) end return r(1) end)()",
         "memory_limit"},
        {"gsub inside gsub, deep patterns",
         "(function() local p = ('a?'):rep(180) .. '(a)' local function f(s) return (s:gsub(p, "
         "function(x) return f(('a'):rep(181)) end)) end return f(('a'):rep(181)) end)()",
         "lua_error"},
        {"error in error handler",
         "(function() local function h(e) error(e) end while true do xpcall(error, h, 'x') end "
         "end)()",
         "cpu_limit"},
        {"collect in a loop",
         "(function() local t = {} for i = 1, 1e5 do t[i] = {i} end while true do collectgarbage() "
         "end end)()",
         "cpu_limit"},
    };
    gs_start_options_t temp = tu_start_options(GS_TEMPORARY, 0);
    int64_t worst = 0;
    const char *worst_what = "";
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char body[1024], name[16];
        snprintf(body, sizeof(body), "  return {'reply', type((%s)), s}", cases[i].code);
        snprintf(name, sizeof(name), "h%zu", i);
        load_call(f, name, body);
        assert_int_equal(lt_start_rc(f, name, name, NULL, &temp, NULL), 0);
        json_t *r = NULL;
        int64_t t0 = tu_now_ms();
        int rc = tu_call(f->rt, name, "0", 60000, &r);
        int64_t took = tu_now_ms() - t0;
        char buf[256];
        print_message("  %-28s %5lld ms  %s %s\n", cases[i].what, (long long)took, gs_err_name(rc),
                      tu_dump(r, buf, sizeof(buf)));
        if (cases[i].reason == NULL) {
            assert_int_equal(rc, 0);
        } else {
            assert_int_equal(rc, GS_ECRASHED);
            assert_string_equal(json_string_value(json_array_get(r, 0)), cases[i].reason);
        }
        json_decref(r);
        assert_true(took < STALL_BOUND_MS);
        if (took > worst) {
            worst = took;
            worst_what = cases[i].what;
        }
    }
    print_message("  worst stall: %lld ms (%s)\n", (long long)worst, worst_what);
}

/* ---------------------------------------------------------------------------------------- */
/* Patterns, against Lua's own                                                                */
/* ---------------------------------------------------------------------------------------- */

static const char *pattern_cases =
    "local function ser(...) local t = {} for i = 1, select('#', ...) do\n"
    "  t[i] = tostring((select(i, ...))) end return table.concat(t, ',') end\n"
    "local function gm(s, p, init) local t = {}\n"
    "  for a, b in string.gmatch(s, p, init) do t[#t + 1] = tostring(a) .. ':' .. tostring(b)\n"
    "    if #t > 20 then break end end return table.concat(t, ';') end\n"
    "local cases = {\n"
    " {'hello world', 'o w'}, {'hello world', 'l+'}, {'hello', 'l*'}, {'hello', 'x*'},\n"
    " {'hello', '^h'}, {'hello', '^e'}, {'hello', 'o$'}, {'hello$', 'o%$'}, {'a.b', '%.'},\n"
    " {'a.b', '.'}, {'key = value', '(%w+)%s*=%s*(%w+)'}, {'  trim  ', '^%s*(.-)%s*$'},\n"
    " {'f(a(b)c)d', '%b()'}, {'THE (quick) fox', '%f[%a]%a+'}, {'hello', '()ll()'},\n"
    " {'abc', '[a-b]+'}, {'abc', '[^a]+'}, {'a]b', '[]]'}, {'a-b', '[a-]+'}, {'x^y', '[%^x]+'},\n"
    " {'123abc', '%d+'}, {'123abc', '%D+'}, {'aaa', 'a-b'}, {'aaab', 'a-b'}, {'abab', '(ab)%1'},\n"
    " {'hello', '(h)(e)(l)(l)(o)'}, {'', ''}, {'', 'a*'}, {'abc', ''}, {'abc', '$'},\n"
    " {'a\\0b', '\\0'}, {'a\\0b', '%z'}, {'abc', 'b', 3}, {'abc', 'b', -2}, {'abc', 'b', 10},\n"
    " {'abc', '^b', 2}, {'x = 1, y = 2', '(%w+) = (%w+)'}, {'%d', '%%d'}, {'a+b', 'a+b', 1, "
    "true},\n"
    " {'a.b.c', '.', 1, true}, {'aXb', '%u'}, {'a b\\tc', '%s'}, {'Ab1_', '[%w_]+'},\n"
    " {'one two  three', '%a+'}, {'aaa', 'a?a?a?a'}, {'ab', 'a?b?c?'}, {'[x]', '%[(.)%]'},\n"
    " {'THE END', '%f[%w]%w+%f[%W]'}, {'(((a)))', '%b()'}, {'xx', 'x-$'}, {'hello', 'l-o'},\n"
    " {'aaa', '^a-$'}, {'ab', '(a)(b)()'}, {'abc', '[%a-z]'}, {'a-z', '[a%-z]+'}, {'', '^$'},\n"
    " {'[a', '[a'}, {'a', '%'}, {'a', '(()'}, {'a', '%b'}, {'a', '%f'}, {'a', '(a'}, {'a', 'a)'},\n"
    " {'a', '%1'}, {'aa', '(a)%2'}, {'a', '[^]'}, {'a', '%g'}, {'\\1\\2', '%c+'}, {'a,b', '%p'},\n"
    " {'0xFF', '%x+'}, {'aB', '%l%u'},\n"
    "}\n"
    "local out = {}\n"
    "for i, c in ipairs(cases) do\n"
    "  local s, p, init, plain = c[1], c[2], c[3], c[4]\n"
    "  out[#out + 1] = ser(pcall(string.find, s, p, init, plain))\n"
    "  out[#out + 1] = ser(pcall(string.match, s, p, init))\n"
    "  out[#out + 1] = ser(pcall(gm, s, p, init))\n"
    "  out[#out + 1] = ser(pcall(string.gsub, s, p, '<%0>'))\n"
    "  out[#out + 1] = ser(pcall(string.gsub, s, p, '%1|'))\n"
    "  out[#out + 1] = ser(pcall(string.gsub, s, p, '%%', 1))\n"
    "  out[#out + 1] = ser(pcall(string.gsub, s, p, string.upper))\n"
    "  out[#out + 1] = ser(pcall(string.gsub, s, p, {a = 'A', hello = false, b = 7}))\n"
    "  out[#out + 1] = ser(pcall(string.gsub, s, p, '%'))\n"
    "  out[#out + 1] = ser(pcall(string.gsub, s, p, '%9'))\n"
    "end\n"
    "return table.concat(out, '\\n')\n";

static void test_patterns_match_lua(void **state)
{
    lt_t *f = *state;
    /* Lua's own answers. */
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    char code[8192];
    snprintf(code, sizeof(code), "return (function()\n%s\nend)()", pattern_cases);
    if (luaL_dostring(L, code) != LUA_OK) {
        print_error("reference: %s\n", lua_tostring(L, -1));
        fail();
    }
    const char *want = lua_tostring(L, -1);
    /* Ours, in a server. */
    char body[8192];
    snprintf(body, sizeof(body), "local r = (function()\n%s\nend)()\nreturn {'reply', r, s}",
             pattern_cases);
    load_call(f, "pat", body);
    lt_start(f, "p", "pat", NULL);
    json_t *r = NULL;
    assert_int_equal(tu_call(f->rt, "p", "0", TU_WAIT_MS, &r), 0);
    const char *got = json_string_value(r);
    assert_non_null(got);
    if (strcmp(got, want) != 0) {
        /* The first line that differs. */
        const char *a = got, *b = want;
        int line = 1;
        while (*a && *a == *b) {
            if (*a == '\n')
                line++;
            a++;
            b++;
        }
        const char *la = a, *lb = b;
        while (la > got && la[-1] != '\n')
            la--;
        while (lb > want && lb[-1] != '\n')
            lb--;
        print_error("line %d differs:\n   ours: %.*s\n    lua: %.*s\n", line,
                    (int)strcspn(la, "\n"), la, (int)strcspn(lb, "\n"), lb);
        fail();
    }
    json_decref(r);
    lua_close(L);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        lt_test(test_forbidden_globals),
        lt_test(test_binary_chunk_refused),
        lt_test(test_new_globals_refused),
        lt_test(test_globals_do_not_leak),
        lt_test(test_memory_limit),
        lt_test(test_cpu_limit),
        lt_test(test_hostile_inputs_bounded),
        lt_test(test_patterns_match_lua),
        cmocka_unit_test(test_limits_at_most_the_hosts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
