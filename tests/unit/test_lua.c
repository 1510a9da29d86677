/*
 * test_lua.c: Lua behaviours through the runtime: every callback's shapes and results, the
 * next actions, ignore and stop, errors with their line, the JSON mapping both ways, and the
 * gs library (runtime/lua/README.md is the contract these check).
 */
#include "test_lua.h"

/* The seed lesson's counter, in Lua. */
static const char *counter_src = "local M = {vsn = '1', description = 'a counter'}\n"
                                 "function M.init(args)\n"
                                 "  local n = 0\n"
                                 "  if args ~= gs.null and args.initial then n = args.initial end\n"
                                 "  return {'ok', {count = n}}\n"
                                 "end\n"
                                 "function M.handle_cast(msg, s)\n"
                                 "  if msg == 'increment' then s.count = s.count + 1 end\n"
                                 "  return {'noreply', s}\n"
                                 "end\n"
                                 "function M.handle_call(msg, from, s)\n"
                                 "  if msg == 'get_count' then return {'reply', s.count, s} end\n"
                                 "  return {'reply', {'error', 'unknown_message'}, s}\n"
                                 "end\n"
                                 "return M\n";

static void test_counter(void **state)
{
    lt_t *f = *state;
    lt_load(f, "lcounter", counter_src);
    assert_true(gs_lua_has(f->lua, "lcounter"));
    assert_string_equal(gs_behaviour_kind(f->rt, "lcounter"), "lua");
    lt_start(f, "c", "lcounter", "{\"initial\": 10}");
    for (int i = 0; i < 3; i++)
        assert_int_equal(tu_cast(f->rt, "c", "\"increment\""), 0);
    tu_call_expect(f->rt, "c", "\"get_count\"", "13");
    tu_call_expect(f->rt, "c", "\"what\"", "[\"error\", \"unknown_message\"]");
    json_t *st = tu_state(f->rt, "c");
    assert_json_eq(st, "{\"count\": 13}");
    json_decref(st);
    json_t *d = gs_lua_describe(f->lua, "lcounter");
    assert_string_equal(json_string_value(json_object_get(d, "vsn")), "1");
    assert_string_equal(json_string_value(json_object_get(d, "kind")), "lua");
    assert_json_eq(json_object_get(d, "servers"), "[\"c\"]");
    assert_true(json_is_string(json_object_get(d, "loaded_at")));
    assert_json_eq(json_object_get(d, "limits"),
                   "{\"memory_bytes\": 16777216, \"instructions\": 10000000}");
    json_decref(d);
    assert_null(gs_lua_describe(f->lua, "nothing"));
}

static void test_init_shapes(void **state)
{
    lt_t *f = *state;
    json_t *why = NULL;
    lt_load(
        f, "shapes",
        "local M = {}\n"
        "function M.init(a)\n"
        "  if a == 'ignore' then return 'ignore' end\n"
        "  if a == 'stop' then return {'stop', {'bad', 1}} end\n"
        "  if a == 'continue' then return {'ok', {log = {}}, {'continue', 'first'}} end\n"
        "  if a == 'timeout' then return {'ok', {log = {}}, 20} end\n"
        "  if a == 'hibernate' then return {'ok', {log = {'h'}}, 'hibernate'} end\n"
        "  if a == 'bad' then return {'okay', 1} end\n"
        "  if a == 'raise' then error('no way') end\n"
        "  return {'ok', {log = {}}}\n"
        "end\n"
        "function M.handle_continue(arg, s) table.insert(s.log, arg) return {'noreply', s} end\n"
        "function M.handle_info(msg, s) table.insert(s.log, msg) return {'noreply', s} end\n"
        "function M.handle_call(msg, from, s) table.insert(s.log, msg) return {'reply', s.log, s} "
        "end\n"
        "return M\n");
    assert_int_equal(lt_start_rc(f, "i", "shapes", "\"ignore\"", NULL, &why), GS_EIGNORED);
    assert_null(gs_whereis(f->rt, "i"));
    assert_int_equal(lt_start_rc(f, "s", "shapes", "\"stop\"", NULL, &why), GS_EINIT);
    assert_json_eq(why, "[\"bad\", 1]");
    json_decref(why);
    assert_int_equal(lt_start_rc(f, "b", "shapes", "\"bad\"", NULL, &why), GS_EINIT);
    assert_json_eq(why, "[\"bad_return_value\", \"init\"]");
    json_decref(why);
    assert_int_equal(lt_start_rc(f, "r", "shapes", "\"raise\"", NULL, &why), GS_EINIT);
    assert_json_eq(why, "[\"lua_error\", \"shapes:9: no way\"]");
    json_decref(why);

    /* {"ok", s, {"continue", arg}}: handle_continue before any message. */
    lt_start(f, "k", "shapes", "\"continue\"");
    tu_call_expect(f->rt, "k", "\"m\"", "[\"first\", \"m\"]");
    /* {"ok", s, 20}: a "timeout" info unless a message comes first. */
    lt_start(f, "t", "shapes", "\"timeout\"");
    TU_WAIT_UNTIL(tu_status_int(f->rt, "t", "messages_handled") >= 1, TU_WAIT_MS);
    tu_call_expect(f->rt, "t", "\"m\"", "[\"timeout\", \"m\"]");
    /* {"ok", s, "hibernate"}: the state survives its hibernation. */
    lt_start(f, "h", "shapes", "\"hibernate\"");
    json_t *st = tu_state(f->rt, "h");
    assert_json_eq(st, "{\"log\": [\"h\"]}");
    json_decref(st);
    tu_call_expect(f->rt, "h", "\"m\"", "[\"h\", \"m\"]");
}

static void test_init_missing_is_args(void **state)
{
    lt_t *f = *state;
    lt_load(f, "noinit", "return {handle_call = function(m, f, s) return {'reply', s, s} end}");
    lt_start(f, "n", "noinit", "{\"a\": [1, 2]}");
    tu_call_expect(f->rt, "n", "0", "{\"a\": [1, 2]}");
}

static const char *results_src =
    "local M = {}\n"
    "function M.init() return {'ok', {n = 0, held = gs.null}} end\n"
    "function M.handle_call(msg, from, s)\n"
    "  s.n = s.n + 1\n"
    "  local k = msg[1]\n"
    "  if k == 'reply' then return {'reply', msg[2], s} end\n"
    "  if k == 'nil' then return {'reply', nil, s} end\n"
    "  if k == 'hold' then s.held = from return {'noreply', s} end\n"
    "  if k == 'release' then gs.reply(s.held, 'released') return {'reply', 'done', s} end\n"
    "  if k == 'stop_reply' then return {'stop', 'normal', 'bye', s} end\n"
    "  if k == 'stop' then return {'stop', {'because', 1}, s} end\n"
    "  if k == 'timeout' then return {'reply', 'soon', s, 10} end\n"
    "  if k == 'continue' then return {'reply', 'later', s, {'continue', msg[2]}} end\n"
    "  if k == 'hibernate' then return {'reply', s.n, s, 'hibernate'} end\n"
    "  if k == 'bad' then return {'replied', 1, s} end\n"
    "  if k == 'bad_next' then return {'reply', 1, s, -5} end\n"
    "  if k == 'bad_stop' then return {'stop', nil, 1, s} end\n"
    "  if k == 'number' then return 42 end\n"
    "  if k == 'index' then local x = nil\n return {'reply', x.y, s} end\n"
    "  if k == 'count' then return {'reply', s.n, s} end\n"
    "  return {'reply', 'what', s}\n"
    "end\n"
    "function M.handle_cast(msg, s)\n"
    "  if msg == 'stop' then return {'stop', 'shutdown', s} end\n"
    "  if msg == 'reply' then return {'reply', 1, s} end\n"
    "  return {'noreply', s}\n"
    "end\n"
    "function M.handle_info(msg, s)\n"
    "  gs.log('info', 'info', msg)\n"
    "  return {'noreply', s}\n"
    "end\n"
    "function M.handle_continue(arg, s) gs.log('info', 'continue', arg) return {'noreply', s} "
    "end\n"
    "function M.terminate(reason, s) gs.log('info', 'terminate', reason) end\n"
    "return M\n";

static void test_call_results(void **state)
{
    lt_t *f = *state;
    lt_load(f, "results", results_src);
    lt_start(f, "r", "results", NULL);
    tu_call_expect(f->rt, "r", "[\"reply\", {\"a\": [1, null]}]", "{\"a\": [1, null]}");
    tu_call_expect(f->rt, "r", "[\"nil\"]", "null");
    /* A deferred reply: held, then released from another call. */
    tu_reply_t held;
    tu_reply_init(&held);
    assert_int_equal(
        gs_call_async(f->rt, "r", tu_json("[\"hold\"]"), TU_WAIT_MS, tu_reply_cb, &held), 0);
    TU_WAIT_UNTIL(tu_status_int(f->rt, "r", "held_calls") == 1, TU_WAIT_MS);
    tu_call_expect(f->rt, "r", "[\"release\"]", "\"done\"");
    tu_reply_expect(&held, 0);
    assert_json_eq(held.result, "\"released\"");
    tu_reply_close(&held);
    /* Next actions. */
    tu_call_expect(f->rt, "r", "[\"timeout\"]", "\"soon\"");
    TU_WAIT_UNTIL(lt_logged("info timeout"), TU_WAIT_MS);
}

static void test_call_results_next(void **state)
{
    lt_t *f = *state;
    lt_load(f, "results", results_src);
    lt_start(f, "r", "results", NULL);
    tu_call_expect(f->rt, "r", "[\"continue\", \"go\"]", "\"later\"");
    TU_WAIT_UNTIL(lt_logged("continue go"), TU_WAIT_MS);
    long long n = tu_call_int(f->rt, "r", "[\"hibernate\"]");
    assert_int_equal(tu_call_int(f->rt, "r", "[\"count\"]"), n + 1);
    json_t *st = tu_state(f->rt, "r");
    assert_int_equal(json_integer_value(json_object_get(st, "n")), n + 1);
    assert_true(json_is_null(json_object_get(st, "held")));
    json_decref(st);
    /* A cast that stops with shutdown: terminate sees the reason. */
    assert_int_equal(tu_cast(f->rt, "r", "\"stop\""), 0);
    TU_WAIT_UNTIL(lt_logged("terminate shutdown"), TU_WAIT_MS);
}

static void test_call_stops(void **state)
{
    lt_t *f = *state;
    gs_start_options_t temp = tu_start_options(GS_TEMPORARY, 0);
    lt_load(f, "results", results_src);
    lt_start_rc(f, "a", "results", NULL, &temp, NULL);
    tu_call_expect(f->rt, "a", "[\"stop_reply\"]", "\"bye\"");
    TU_WAIT_UNTIL(gs_server_status(f->rt, "a") == NULL, TU_WAIT_MS);

    const char *crashes[][2] = {
        {"[\"stop\"]", "[\"because\", 1]"},
        {"[\"bad\"]", "[\"bad_return_value\", \"handle_call\"]"},
        {"[\"bad_next\"]", "[\"bad_return_value\", \"handle_call\"]"},
        {"[\"bad_stop\"]", "[\"bad_return_value\", \"handle_call\"]"},
        {"[\"number\"]", "[\"bad_return_value\", \"handle_call\"]"},
        {"[\"index\"]", "[\"lua_error\", \"results:20: attempt to index a nil value (local "
                        "'x')\"]"},
    };
    for (size_t i = 0; i < sizeof(crashes) / sizeof(crashes[0]); i++) {
        char name[16];
        snprintf(name, sizeof(name), "b%zu", i);
        assert_int_equal(lt_start_rc(f, name, "results", NULL, &temp, NULL), 0);
        lt_call_fails(f, name, crashes[i][0], GS_ECRASHED, crashes[i][1]);
    }
    /* A reply from a cast is a bad return too. */
    lt_start_rc(f, "c", "results", NULL, &temp, NULL);
    tu_events_subscribe(f->rt);
    assert_int_equal(tu_cast(f->rt, "c", "\"reply\""), 0);
    TU_WAIT_UNTIL(tu_events_count("c", "down") == 1, TU_WAIT_MS);
    json_t *life = tu_events_lifecycle("c");
    assert_json_eq(json_array_get(life, 0),
                   "[\"crashed\", [\"bad_return_value\", \"handle_cast\"]]");
    json_decref(life);
}

static void test_missing_callbacks(void **state)
{
    lt_t *f = *state;
    gs_start_options_t temp = tu_start_options(GS_TEMPORARY, 0);
    lt_load(f, "bare",
            "return {init = function() return {'ok', 0, {'continue', 1}} end,"
            " handle_cast = function(m, s) return {'noreply', s, {'continue', m}} end}");
    lt_load(f, "bare2", "return {init = function() return {'ok', 0} end}");
    /* handle_continue missing: ["undef", "handle_continue"]. */
    tu_events_subscribe(f->rt);
    lt_start_rc(f, "u", "bare", NULL, &temp, NULL);
    TU_WAIT_UNTIL(tu_events_count("u", "down") == 1, TU_WAIT_MS);
    json_t *life = tu_events_lifecycle("u");
    assert_json_eq(json_array_get(life, 1), "[\"crashed\", [\"undef\", \"handle_continue\"]]");
    json_decref(life);
    /* handle_call missing: ["bad_call", msg]; handle_info missing: ignored. */
    lt_start_rc(f, "v", "bare2", NULL, &temp, NULL);
    assert_int_equal(tu_send(f->rt, "v", "\"hello\""), 0);
    lt_call_fails(f, "v", "[\"x\"]", GS_ECRASHED, "[\"bad_call\", [\"x\"]]");
    lt_start_rc(f, "w", "bare2", NULL, &temp, NULL);
    assert_int_equal(tu_cast(f->rt, "w", "7"), 0);
    TU_WAIT_UNTIL(tu_events_count("w", "down") == 1, TU_WAIT_MS);
    life = tu_events_lifecycle("w");
    assert_json_eq(json_array_get(life, 1), "[\"crashed\", [\"bad_cast\", 7]]");
    json_decref(life);
}

static void test_format_status(void **state)
{
    lt_t *f = *state;
    lt_load(f, "fs",
            "return {init = function() return {'ok', {secret = 's', shown = 1, f = print}} end,"
            " format_status = function(s) return {shown = s.shown} end,"
            " handle_call = function(m, f, s) return {'reply', 1, s} end}");
    lt_start(f, "x", "fs", NULL);
    json_t *st = tu_state(f->rt, "x");
    assert_json_eq(st, "{\"shown\": 1}");
    json_decref(st);
    /* Without format_status, a state JSON cannot show is shown as why (no crash). */
    lt_load(f, "nofs",
            "return {init = function() return {'ok', {handler = print}} end,"
            " handle_call = function(m, f, s) return {'reply', 1, s} end}");
    lt_start(f, "y", "nofs", NULL);
    st = tu_state(f->rt, "y");
    assert_json_eq(st, "{\"error\": [\"bad_value\", \"function at state.handler\"]}");
    json_decref(st);
    tu_call_expect(f->rt, "y", "1", "1");
}

/* ---------------------------------------------------------------------------------------- */
/* The JSON mapping                                                                           */
/* ---------------------------------------------------------------------------------------- */

static const char *echo_src =
    "local M = {}\n"
    "function M.init() return {'ok', 0} end\n"
    "local function kind(v)\n"
    "  if v == gs.null then return 'null' end\n"
    "  if type(v) == 'number' then return math.type(v) end\n"
    "  if type(v) == 'table' then return gs.is_array(v) and 'array' or 'object' end\n"
    "  return type(v)\n"
    "end\n"
    "function M.handle_call(msg, from, s)\n"
    "  if msg[1] == 'echo' then return {'reply', msg[2], s} end\n"
    "  if msg[1] == 'kind' then return {'reply', kind(msg[2]), s} end\n"
    "  return {'reply', 'unknown', s}\n"
    "end\n"
    "return M\n";

static void test_json_round_trips(void **state)
{
    lt_t *f = *state;
    lt_load(f, "echo", echo_src);
    lt_start(f, "e", "echo", NULL);
    const char *values[] = {
        "null",
        "true",
        "false",
        "0",
        "-1",
        "9223372036854775807",
        "-9223372036854775808",
        "2.5",
        "2.0",
        "-0.5",
        "1e300",
        "\"\"",
        "\"h\\u00e9llo \\u2603\"",
        "[]",
        "{}",
        "[[]]",
        "[{}]",
        "{\"a\": []}",
        "{\"a\": {}}",
        "[null, null]",
        "{\"k\": null}",
        "[1, [2, [3, [4]]]]",
        "{\"1\": \"a\", \"b\": [true, false, null, 1.5]}",
    };
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        char msg[256];
        snprintf(msg, sizeof(msg), "[\"echo\", %s]", values[i]);
        json_t *r = NULL;
        assert_int_equal(tu_call(f->rt, "e", msg, TU_WAIT_MS, &r), 0);
        json_t *want = tu_json(values[i]);
        if (!json_equal(r, want) || json_typeof(r) != json_typeof(want)) {
            char buf[256];
            print_error("echo %s -> %s\n", values[i], tu_dump(r, buf, sizeof(buf)));
            fail();
        }
        json_decref(want);
        json_decref(r);
    }
    tu_call_expect(f->rt, "e", "[\"kind\", 3]", "\"integer\"");
    tu_call_expect(f->rt, "e", "[\"kind\", 3.0]", "\"float\"");
    tu_call_expect(f->rt, "e", "[\"kind\", null]", "\"null\"");
    tu_call_expect(f->rt, "e", "[\"kind\", []]", "\"array\"");
    tu_call_expect(f->rt, "e", "[\"kind\", {}]", "\"object\"");
    tu_call_expect(f->rt, "e", "[\"kind\", \"s\"]", "\"string\"");
}

/* Values made in Lua: a chunk per case, so that each conversion failure is its own crash. */
static void test_lua_to_json(void **state)
{
    lt_t *f = *state;
    struct {
        const char *expr, *reply;
    } ok[] = {
        {"{1, 2, 3}", "[1, 2, 3]"},
        {"{}", "{}"},
        {"gs.array()", "[]"},
        {"gs.object()", "{}"},
        {"gs.array({1})", "[1]"},
        {"{[1] = 'a', x = 2}", "{\"1\": \"a\", \"x\": 2}"},
        {"{[1] = 'a', [3] = 'c'}", "{\"1\": \"a\", \"3\": \"c\"}"},
        {"{[-1] = 0}", "{\"-1\": 0}"},
        {"{gs.null, gs.null}", "[null, null]"},
        {"2.0", "2.0"},
        {"7 // 2", "3"},
        {"2^53", "9007199254740992.0"},
        {"math.maxinteger", "9223372036854775807"},
        {"'\\u{2603}'", "\"\\u2603\""},
        {"{a = {b = {c = {}}}}", "{\"a\": {\"b\": {\"c\": {}}}}"},
        {"(function() local t = {} return {t, t} end)()", "[{}, {}]"},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char src[512], name[16];
        snprintf(src, sizeof(src),
                 "return {handle_call = function(m, f, s) return {'reply', %s, s} end}",
                 ok[i].expr);
        snprintf(name, sizeof(name), "ok%zu", i);
        lt_load(f, name, src);
        lt_start(f, name, name, NULL);
        json_t *r = NULL;
        assert_int_equal(tu_call(f->rt, name, "0", TU_WAIT_MS, &r), 0);
        json_t *want = tu_json(ok[i].reply);
        if (!json_equal(r, want) || json_typeof(r) != json_typeof(want)) {
            char buf[256];
            print_error("%s -> %s, want %s\n", ok[i].expr, tu_dump(r, buf, sizeof(buf)),
                        ok[i].reply);
            fail();
        }
        json_decref(want);
        json_decref(r);
    }
    struct {
        const char *expr, *reason;
    } bad[] = {
        {"{f = print}", "function at reply.f"},
        {"{1, {print}}", "function at reply[2][1]"},
        {"(function() local t = {} t.self = t return t end)()", "cyclic table at reply.self"},
        {"0/0", "NaN at reply"},
        {"1/0", "infinite number at reply"},
        {"'\\xff'", "invalid UTF-8 string at reply"},
        {"{['\\xff'] = 1}", "invalid UTF-8 key at reply[\\\"?\\\"]"},
        {"{[1.5] = 1}", "float key at reply"},
        {"{[true] = 1}", "boolean key at reply"},
        {"{[1] = 'a', ['1'] = 'b'}", NULL}, /* duplicate key, either order */
        {"(function() local t = {} for i = 1, 70 do t = {t} end return t end)()", NULL},
    };
    gs_start_options_t temp = tu_start_options(GS_TEMPORARY, 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char src[512], name[16], reason[256];
        snprintf(src, sizeof(src),
                 "return {handle_call = function(m, f, s) return {'reply', %s, s} end}",
                 bad[i].expr);
        snprintf(name, sizeof(name), "bad%zu", i);
        lt_load(f, name, src);
        assert_int_equal(lt_start_rc(f, name, name, NULL, &temp, NULL), 0);
        json_t *r = NULL;
        assert_int_equal(tu_call(f->rt, name, "0", TU_WAIT_MS, &r), GS_ECRASHED);
        assert_string_equal(json_string_value(json_array_get(r, 0)), "bad_value");
        if (bad[i].reason != NULL) {
            snprintf(reason, sizeof(reason), "[\"bad_value\", \"%s\"]", bad[i].reason);
            assert_json_eq(r, reason);
        }
        json_decref(r);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* The gs library                                                                            */
/* ---------------------------------------------------------------------------------------- */

static const char *gs_src =
    "local M = {notify_caller_gone = true}\n"
    "local function both(a, b) return {a == nil and gs.null or a, b == nil and gs.null or b} end\n"
    "function M.init() return {'ok', {got = {}, timer = false, from = false}} end\n"
    "function M.handle_call(msg, from, s)\n"
    "  local k = msg[1]\n"
    "  if k == 'self' then return {'reply', gs.self(), s} end\n"
    "  if k == 'cast' then return {'reply', both(gs.cast(msg[2], msg[3])), s} end\n"
    "  if k == 'send' then return {'reply', both(gs.send(msg[2], msg[3])), s} end\n"
    "  if k == 'after' then s.timer = gs.send_after(msg[2], msg[3], msg[4])\n"
    "    return {'reply', type(s.timer), s} end\n"
    "  if k == 'read' then return {'reply', gs.read_timer(s.timer) or 'none', s} end\n"
    "  if k == 'cancel' then return {'reply', gs.cancel_timer(s.timer) or 'none', s} end\n"
    "  if k == 'forged_timer' then return {'reply', "
    "gs.cancel_timer(('0'):rep(15)..'1'..('0'):rep(16)) or 'none', s} end\n"
    "  if k == 'got' then return {'reply', s.got, s} end\n"
    "  if k == 'hand' then gs.send(msg[2], {'answer', from}) return {'noreply', s} end\n"
    "  if k == 'forge' then return {'reply', both(gs.reply({'$from', 1, '0000000000000000'}, 1)), "
    "s} end\n"
    "  if k == 'request' then return {'reply', both(gs.send_request(msg[2], msg[3], msg[4], "
    "1000)), s} end\n"
    "  if k == 'hold' then s.from = from return {'noreply', s} end\n"
    "  if k == 'pending' then return {'reply', gs.call_pending(s.from), s} end\n"
    "  if k == 'bad_send' then gs.send(msg[2], {f = print}) end\n"
    "  if k == 'kept' then return {'reply', s.from, s} end\n"
    "  if k == 'late' then return {'reply', both(gs.reply(s.from, 'late')), s} end\n"
    "  if k == 'time' then return {'reply', math.type(gs.now_ms()) == 'integer' and gs.now_ms() > "
    "1.6e12, s} end\n"
    "  return {'reply', 'unknown', s}\n"
    "end\n"
    "function M.handle_cast(msg, s) table.insert(s.got, {'cast', msg}) return {'noreply', s} end\n"
    "function M.handle_info(msg, s)\n"
    "  if type(msg) == 'table' and msg[1] == 'answer' then\n"
    "    table.insert(s.got, {'replied', gs.reply(msg[2], 'from ' .. gs.self())})\n"
    "  else table.insert(s.got, {'info', msg}) end\n"
    "  return {'noreply', s}\n"
    "end\n"
    "return M\n";

static void test_gs_messages(void **state)
{
    lt_t *f = *state;
    lt_load(f, "gsb", gs_src);
    lt_start(f, "a", "gsb", NULL);
    lt_start(f, "b", "gsb", NULL);
    tu_call_expect(f->rt, "a", "[\"self\"]", "\"a\"");
    tu_call_expect(f->rt, "a", "[\"cast\", \"b\", [1]]", "[true, null]");
    tu_call_expect(f->rt, "a", "[\"send\", \"b\", \"hi\"]", "[true, null]");
    tu_call_expect(f->rt, "a", "[\"cast\", \"nobody\", 1]", "[null, \"no_such_server\"]");
    tu_call_expect(f->rt, "b", "[\"got\"]", "[[\"cast\", [1]], [\"info\", \"hi\"]]");
    tu_call_expect(f->rt, "a", "[\"time\"]", "true");
    /* A message JSON cannot hold raises where the script sent it. */
    gs_start_options_t temp = tu_start_options(GS_TEMPORARY, 0);
    lt_start_rc(f, "t", "gsb", NULL, &temp, NULL);
    lt_call_fails(f, "t", "[\"bad_send\", \"b\"]", GS_ECRASHED,
                  "[\"lua_error\", \"gsb:20: bad_value: function at message.f\"]");
}

static void test_gs_timers(void **state)
{
    lt_t *f = *state;
    lt_load(f, "gsb", gs_src);
    lt_start(f, "a", "gsb", NULL);
    /* To itself (nil: this incarnation), read then cancelled. */
    tu_call_expect(f->rt, "a", "[\"after\", null, \"late\", 60000]", "\"string\"");
    json_t *r = NULL;
    assert_int_equal(tu_call(f->rt, "a", "[\"read\"]", TU_WAIT_MS, &r), 0);
    assert_true(json_is_integer(r) && json_integer_value(r) > 50000);
    json_decref(r);
    assert_int_equal(tu_call(f->rt, "a", "[\"cancel\"]", TU_WAIT_MS, &r), 0);
    assert_true(json_is_integer(r));
    json_decref(r);
    tu_call_expect(f->rt, "a", "[\"read\"]", "\"none\"");
    tu_call_expect(f->rt, "a", "[\"forged_timer\"]", "\"none\"");
    /* By name, delivered. */
    tu_call_expect(f->rt, "a", "[\"after\", \"a\", \"tick\", 1]", "\"string\"");
    for (;;) {
        assert_int_equal(tu_call(f->rt, "a", "[\"got\"]", TU_WAIT_MS, &r), 0);
        bool got = json_array_size(r) == 1;
        json_decref(r);
        if (got)
            break;
        tu_sleep_ms(1);
    }
    tu_call_expect(f->rt, "a", "[\"got\"]", "[[\"info\", \"tick\"]]");
}

static void test_gs_reply_from_another_server(void **state)
{
    lt_t *f = *state;
    lt_load(f, "gsb", gs_src);
    lt_start(f, "a", "gsb", NULL);
    lt_start(f, "b", "gsb", NULL);
    /* a keeps its caller's from and sends it (as JSON) to b, which answers it. */
    tu_call_expect(f->rt, "a", "[\"hand\", \"b\"]", "\"from b\"");
    tu_call_expect(f->rt, "b", "[\"got\"]", "[[\"replied\", true]]");
    /* A forged from is refused. */
    tu_call_expect(f->rt, "a", "[\"forge\"]", "[null, \"bad_from\"]");
}

static void test_gs_send_request(void **state)
{
    lt_t *f = *state;
    lt_load(f, "gsb", gs_src);
    lt_start(f, "a", "gsb", NULL);
    tu_start_named(f->rt, "counter", "counter", NULL);
    tu_call_expect(f->rt, "a", "[\"request\", \"counter\", \"get_count\", [\"t\", 1]]",
                   "[true, null]");
    tu_call_expect(f->rt, "a", "[\"request\", \"a\", \"x\", \"t\"]", "[null, \"calling_self\"]");
    json_t *r = NULL;
    for (;;) {
        assert_int_equal(tu_call(f->rt, "a", "[\"got\"]", TU_WAIT_MS, &r), 0);
        bool got = json_array_size(r) == 1;
        json_decref(r);
        if (got)
            break;
        tu_sleep_ms(1);
    }
    tu_call_expect(f->rt, "a", "[\"got\"]", "[[\"info\", [\"gs_reply\", [\"t\", 1], 0]]]");
}

/* The info a Lua server got once one came: {"info", {"caller_gone", from}} (new reference). */
static json_t *wait_gone_info(lt_t *f, const char *name)
{
    json_t *r = NULL;
    for (;;) {
        assert_int_equal(tu_call(f->rt, name, "[\"got\"]", TU_WAIT_MS, &r), 0);
        if (json_array_size(r) == 1)
            break;
        json_decref(r);
        tu_sleep_ms(1);
    }
    json_t *info = json_incref(json_array_get(json_array_get(r, 0), 1));
    json_decref(r);
    assert_string_equal(json_string_value(json_array_get(info, 0)), "caller_gone");
    return info;
}

/* A held call whose caller times out arrives as {"caller_gone", from}: the very from the
 * script kept, which is no longer pending. */
static void test_gs_caller_gone_info(void **state)
{
    lt_t *f = *state;
    lt_load(f, "gsb", gs_src);
    lt_start(f, "a", "gsb", NULL);
    json_t *r = NULL;
    assert_int_equal(gs_call(f->rt, "a", tu_json("[\"hold\"]"), 20, &r), GS_ETIMEOUT);
    json_t *info = wait_gone_info(f, "a");
    json_t *kept = NULL;
    assert_int_equal(tu_call(f->rt, "a", "[\"kept\"]", TU_WAIT_MS, &kept), 0);
    assert_string_equal(json_string_value(json_array_get(kept, 0)), "$from");
    assert_true(json_equal(json_array_get(info, 1), kept));
    json_decref(kept);
    json_decref(info);
    tu_call_expect(f->rt, "a", "[\"pending\"]", "false");
}

/* A caller that goes away (gs_call_abandon, as the gateway does when an HTTP client hangs up)
 * reaches the script the same way, and its reply is refused with caller_gone. A forged
 * ["caller_gone", id] naming a call that still waits arrives as it was sent: no from. */
static void test_gs_caller_gone_abandoned(void **state)
{
    lt_t *f = *state;
    lt_load(f, "gsb", gs_src);
    lt_start(f, "a", "gsb", NULL);
    lt_start(f, "b", "gsb", NULL);
    tu_reply_t reply;
    tu_reply_init(&reply);
    gs_call_t *call = NULL;
    assert_int_equal(
        gs_call_async_opts(f->rt, "a", tu_json("[\"hold\"]"), NULL, tu_reply_cb, &reply, &call), 0);
    TU_WAIT_UNTIL(tu_status_int(f->rt, "a", "held_calls") == 1, TU_WAIT_MS);

    /* Forged, while the call still waits: b gets the bare id. */
    char forged[64];
    snprintf(forged, sizeof(forged), "[\"caller_gone\", %llu]",
             (unsigned long long)gs_call_id(call));
    assert_int_equal(tu_send(f->rt, "b", forged), 0);
    json_t *info = wait_gone_info(f, "b");
    assert_true(json_is_integer(json_array_get(info, 1)));
    json_decref(info);

    assert_int_equal(gs_call_abandon(f->rt, call), 0);
    tu_reply_expect(&reply, GS_ECALLERGONE);
    info = wait_gone_info(f, "a");
    json_t *kept = NULL;
    assert_int_equal(tu_call(f->rt, "a", "[\"kept\"]", TU_WAIT_MS, &kept), 0);
    assert_true(json_equal(json_array_get(info, 1), kept));
    assert_int_equal(json_integer_value(json_array_get(kept, 1)), (json_int_t)gs_call_id(call));
    json_decref(kept);
    json_decref(info);
    tu_call_expect(f->rt, "a", "[\"late\"]", "[null, \"caller_gone\"]");
    gs_call_unref(call);
    tu_reply_close(&reply);
}

static void test_print_and_log(void **state)
{
    lt_t *f = *state;
    lt_load(f, "logs",
            "return {handle_call = function(m, f, s) print('a', 1, true, nil)\n"
            " gs.log('error', 'x', 2.5) return {'reply', pcall(gs.log, 'loud', 'x'), s} end}");
    lt_start(f, "l", "logs", NULL);
    tu_call_expect(f->rt, "l", "0", "false");
    assert_true(lt_logged("a 1 true nil"));
    assert_true(lt_logged("x 2.5"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        lt_test(test_counter),
        lt_test(test_init_shapes),
        lt_test(test_init_missing_is_args),
        lt_test(test_call_results),
        lt_test(test_call_results_next),
        lt_test(test_call_stops),
        lt_test(test_missing_callbacks),
        lt_test(test_format_status),
        lt_test(test_json_round_trips),
        lt_test(test_lua_to_json),
        lt_test(test_gs_messages),
        lt_test(test_gs_timers),
        lt_test(test_gs_reply_from_another_server),
        lt_test(test_gs_send_request),
        lt_test(test_gs_caller_gone_info),
        lt_test(test_gs_caller_gone_abandoned),
        lt_test(test_print_and_log),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
