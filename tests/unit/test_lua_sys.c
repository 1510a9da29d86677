/*
 * test_lua_sys.c: monitors and :sys.replace_state for Lua behaviours: gs.monitor and
 * gs.demonitor (the DOWN arrives in handle_info), and replace_state, by default (the JSON is
 * the new state) and through the behaviour's own replace_state check.
 */
#include "test_lua.h"

static const char *watcher_src =
    "local M = {}\n"
    "function M.init() return {'ok', {got = {}, refs = {}}} end\n"
    "function M.handle_call(msg, from, s)\n"
    "  if msg[1] == 'monitor' then local ref, err = gs.monitor(msg[2])\n"
    "    return {'reply', ref or err, s} end\n"
    "  if msg[1] == 'demonitor' then local ok, err = gs.demonitor(msg[2])\n"
    "    return {'reply', {ok or gs.null, err or gs.null}, s} end\n"
    "  if msg[1] == 'stop' then local ok, err = gs.stop(msg[2], msg[3])\n"
    "    return {'reply', {ok or gs.null, err or gs.null}, s} end\n"
    "  if msg[1] == 'got' then return {'reply', s.got, s} end\n"
    "  return {'reply', 'unknown', s}\n"
    "end\n"
    "function M.handle_info(msg, s)\n"
    "  if type(msg) == 'table' and msg[1] == 'DOWN' then\n"
    "    table.insert(s.got, {math.type(msg[2]), msg[2], msg[3], msg[4]}) end\n"
    "  return {'noreply', s}\n"
    "end\n"
    "return M\n";

static size_t got_len(lt_t *f, const char *name)
{
    json_t *r = NULL;
    assert_int_equal(tu_call(f->rt, name, "[\"got\"]", TU_WAIT_MS, &r), 0);
    size_t n = json_array_size(r);
    json_decref(r);
    return n;
}

static void test_monitor_receives_down(void **state)
{
    lt_t *f = *state;
    char want[256];
    lt_load(f, "lw", watcher_src);
    lt_start(f, "w", "lw", NULL);
    tu_start_named(f->rt, "t", "counter", NULL);
    long long ref = tu_call_int(f->rt, "w", "[\"monitor\", \"t\"]");
    assert_true(ref > 0);
    assert_int_equal(gs_stop(f->rt, "t", tu_json("[\"shutdown\", \"maintenance\"]"), TU_WAIT_MS),
                     0);
    TU_WAIT_UNTIL(got_len(f, "w") == 1, TU_WAIT_MS);
    snprintf(want, sizeof(want), "[[\"integer\", %lld, \"t\", [\"shutdown\", \"maintenance\"]]]",
             ref);
    tu_call_expect(f->rt, "w", "[\"got\"]", want);
}

static void test_monitor_missing_and_demonitor(void **state)
{
    lt_t *f = *state;
    char msg[128], want[256];
    lt_load(f, "lw", watcher_src);
    lt_start(f, "w", "lw", NULL);
    long long missing = tu_call_int(f->rt, "w", "[\"monitor\", \"nobody\"]");
    TU_WAIT_UNTIL(got_len(f, "w") == 1, TU_WAIT_MS);
    snprintf(want, sizeof(want), "[[\"integer\", %lld, \"nobody\", \"no_such_server\"]]", missing);
    tu_call_expect(f->rt, "w", "[\"got\"]", want);

    tu_start_named(f->rt, "t", "counter", NULL);
    long long ref = tu_call_int(f->rt, "w", "[\"monitor\", \"t\"]");
    snprintf(msg, sizeof(msg), "[\"demonitor\", %lld]", ref);
    tu_call_expect(f->rt, "w", msg, "[true, null]");
    tu_call_expect(f->rt, "w", msg, "[null, \"no_such_monitor\"]");
    /* No DOWN for t: the marker DOWN that follows its stop is the only new one. */
    assert_int_equal(gs_stop(f->rt, "t", NULL, TU_WAIT_MS), 0);
    tu_call_int(f->rt, "w", "[\"monitor\", \"gone\"]");
    TU_WAIT_UNTIL(got_len(f, "w") == 2, TU_WAIT_MS);
    json_t *r = NULL;
    assert_int_equal(tu_call(f->rt, "w", "[\"got\"]", TU_WAIT_MS, &r), 0);
    assert_string_equal(json_string_value(json_array_get(json_array_get(r, 1), 2)), "gone");
    json_decref(r);
}

static void test_stop_with_a_reason(void **state)
{
    lt_t *f = *state;
    char want[256];
    lt_load(f, "lw", watcher_src);
    lt_start(f, "w", "lw", NULL);
    tu_start_named(f->rt, "t", "counter", NULL);
    long long ref = tu_call_int(f->rt, "w", "[\"monitor\", \"t\"]");
    tu_call_expect(f->rt, "w", "[\"stop\", \"t\", [\"shutdown\", \"by lua\"]]", "[true, null]");
    TU_WAIT_UNTIL(got_len(f, "w") == 1, TU_WAIT_MS);
    snprintf(want, sizeof(want), "[[\"integer\", %lld, \"t\", [\"shutdown\", \"by lua\"]]]", ref);
    tu_call_expect(f->rt, "w", "[\"got\"]", want);
    tu_call_expect(f->rt, "w", "[\"stop\", \"t\"]", "[null, \"no_such_server\"]");
    tu_call_expect(f->rt, "w", "[\"stop\", \"w\"]", "[null, \"calling_self\"]");
}

static const char *checked_src =
    "local M = {}\n"
    "function M.init() return {'ok', {count = 0}} end\n"
    "function M.handle_call(msg, from, s) return {'reply', s.count, s} end\n"
    "function M.replace_state(new, old)\n"
    "  if type(new) ~= 'table' or math.type(new.count) ~= 'integer' then\n"
    "    return {'error', {'bad_state', 'count must be an integer'}} end\n"
    "  if new.count < 0 then error('negative') end\n"
    "  return {'ok', {count = new.count, was = old.count}}\n"
    "end\n"
    "return M\n";

static void test_replace_state(void **state)
{
    lt_t *f = *state;
    json_t *r = NULL;
    /* Without a check of its own, the JSON becomes the state. */
    lt_load(f, "lw", watcher_src);
    lt_start(f, "w", "lw", NULL);
    assert_int_equal(
        gs_replace_state(f->rt, "w", tu_json("{\"got\": [[1]], \"refs\": {}}"), TU_WAIT_MS, &r), 0);
    assert_json_eq(r, "{\"got\": {}, \"refs\": {}}"); /* the old state (empty tables) */
    json_decref(r);
    tu_call_expect(f->rt, "w", "[\"got\"]", "[[1]]");

    /* With one: accepted, refused with its reason, refused when it raises. */
    lt_load(f, "lc", checked_src);
    lt_start(f, "c", "lc", NULL);
    assert_int_equal(gs_replace_state(f->rt, "c", tu_json("{\"count\": 5}"), TU_WAIT_MS, &r), 0);
    assert_json_eq(r, "{\"count\": 0}");
    json_decref(r);
    tu_call_expect(f->rt, "c", "\"n\"", "5");
    json_t *st = tu_state(f->rt, "c");
    assert_json_eq(st, "{\"count\": 5, \"was\": 0}");
    json_decref(st);
    assert_int_equal(gs_replace_state(f->rt, "c", tu_json("{\"count\": \"x\"}"), TU_WAIT_MS, &r),
                     GS_EREFUSED);
    assert_json_eq(r, "[\"bad_state\", \"count must be an integer\"]");
    json_decref(r);
    assert_int_equal(gs_replace_state(f->rt, "c", tu_json("{\"count\": -1}"), TU_WAIT_MS, &r),
                     GS_EREFUSED);
    assert_true(json_is_array(r));
    assert_string_equal(json_string_value(json_array_get(r, 0)), "lua_error");
    json_decref(r);
    tu_call_expect(f->rt, "c", "\"n\"", "5"); /* alive, and its state kept */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        lt_test(test_monitor_receives_down),
        lt_test(test_monitor_missing_and_demonitor),
        lt_test(test_stop_with_a_reason),
        lt_test(test_replace_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
