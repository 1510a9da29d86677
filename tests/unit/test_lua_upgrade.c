/*
 * test_lua_upgrade.c: the Lua host's life cycle of code: loading (and what is refused),
 * hot upgrades through code_change (a changed state shape; a failing, raising or missing
 * code_change; a source that does not compile), delete while used, a directory of behaviours,
 * hibernation (the state closed and restored, or kept when JSON would lose it), and what a
 * server costs in memory awake and hibernated.
 */
#include "test_lua.h"

#include <malloc.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *v1_src =
    "local M = {vsn = '1'}\n"
    "function M.init() return {'ok', {count = 0}} end\n"
    "function M.handle_cast(m, s) s.count = s.count + 1 return {'noreply', s} end\n"
    "function M.handle_call(m, f, s) return {'reply', {'v1', s}, s} end\n"
    "return M\n";

/* v2: the state becomes {total = n, history = {}}. */
static const char *v2_src =
    "local M = {vsn = '2'}\n"
    "function M.init() return {'ok', {total = 0, history = gs.array()}} end\n"
    "function M.code_change(old, s, extra)\n"
    "  if extra == 'fail' then return {'error', {'nope', old}} end\n"
    "  if extra == 'raise' then error('broken') end\n"
    "  if extra == 'bad' then return 42 end\n"
    "  return {'ok', {total = s.count, history = {old}, extra = extra}}\n"
    "end\n"
    "function M.handle_cast(m, s) s.total = s.total + 10 return {'noreply', s} end\n"
    "function M.handle_call(m, f, s) return {'reply', {'v2', s}, s} end\n"
    "return M\n";

/* Collects one upgrade's outcomes. */
typedef struct outcome_s {
    pthread_mutex_t mu;
    json_t *outcomes;
} outcome_t;

static void on_upgrade(json_t *outcomes, void *arg)
{
    outcome_t *o = arg;
    pthread_mutex_lock(&o->mu);
    o->outcomes = outcomes;
    pthread_mutex_unlock(&o->mu);
}

static bool upgraded(void *arg)
{
    outcome_t *o = arg;
    pthread_mutex_lock(&o->mu);
    bool done = o->outcomes != NULL;
    pthread_mutex_unlock(&o->mu);
    return done;
}

/* Upgrade name to src with extra (JSON text); returns the outcomes (new) once every server's
 * answer is in. */
static json_t *upgrade(lt_t *f, const char *name, const char *src, const char *extra)
{
    outcome_t o = {PTHREAD_MUTEX_INITIALIZER, NULL};
    json_t *err = NULL, *x = extra != NULL ? tu_json(extra) : NULL;
    int rc = gs_lua_upgrade(f->lua, name, NULL, src, strlen(src), NULL, x, on_upgrade, &o, &err);
    json_decref(x);
    if (rc != 0) {
        char buf[512];
        print_error("gs_lua_upgrade = %s: %s\n", gs_err_name(rc), tu_dump(err, buf, sizeof(buf)));
        json_decref(err);
        _fail(__FILE__, __LINE__);
    }
    assert_true(tu_wait_until(upgraded, &o, TU_WAIT_MS));
    pthread_mutex_destroy(&o.mu);
    return o.outcomes;
}

static void test_upgrade_changes_state_shape(void **state)
{
    lt_t *f = *state;
    lt_load(f, "ctr", v1_src);
    lt_start(f, "a", "ctr", NULL);
    lt_start(f, "b", "ctr", NULL);
    for (int i = 0; i < 3; i++)
        tu_cast(f->rt, "a", "0");
    tu_call_expect(f->rt, "a", "0", "[\"v1\", {\"count\": 3}]");
    json_t *out = upgrade(f, "ctr", v2_src, "{\"why\": \"test\"}");
    assert_int_equal(json_array_size(out), 2);
    size_t i;
    json_t *e;
    json_array_foreach(out, i, e) assert_true(json_is_true(json_object_get(e, "ok")));
    json_decref(out);
    tu_call_expect(
        f->rt, "a", "0",
        "[\"v2\", {\"total\": 3, \"history\": [\"1\"], \"extra\": {\"why\": \"test\"}}]");
    tu_cast(f->rt, "a", "0");
    tu_call_expect(
        f->rt, "a", "0",
        "[\"v2\", {\"total\": 13, \"history\": [\"1\"], \"extra\": {\"why\": \"test\"}}]");
    /* New starts run the new code; the description says so. */
    lt_start(f, "c", "ctr", NULL);
    tu_call_expect(f->rt, "c", "0", "[\"v2\", {\"total\": 0, \"history\": []}]");
    json_t *d = gs_lua_describe(f->lua, "ctr");
    assert_string_equal(json_string_value(json_object_get(d, "vsn")), "2");
    assert_json_eq(json_object_get(d, "servers"), "[\"a\", \"b\", \"c\"]");
    json_decref(d);
    /* A crash restarts the new code. */
    const gs_behaviour_t *now = gs_behaviour_find(f->rt, "ctr");
    assert_string_equal(now->vsn, "2");
}

static void test_upgrade_failures_keep_old(void **state)
{
    lt_t *f = *state;
    lt_load(f, "ctr", v1_src);
    lt_start(f, "a", "ctr", NULL);
    tu_cast(f->rt, "a", "0");
    const char *extras[][2] = {
        {"\"fail\"", "[\"nope\", \"1\"]"},
        {"\"raise\"", "[\"lua_error\", \"ctr:5: broken\"]"},
        {"\"bad\"", "[\"bad_return_value\", \"code_change\"]"},
    };
    for (size_t i = 0; i < 3; i++) {
        json_t *out = upgrade(f, "ctr", v2_src, extras[i][0]);
        assert_int_equal(json_array_size(out), 1);
        assert_json_eq(json_object_get(json_array_get(out, 0), "error"), extras[i][1]);
        json_decref(out);
        /* Old code, old state. */
        tu_call_expect(f->rt, "a", "0", "[\"v1\", {\"count\": 1}]");
    }
    /* A later upgrade still reaches the server left on old code. */
    json_t *out = upgrade(f, "ctr", v2_src, "\"ok\"");
    assert_int_equal(json_array_size(out), 1);
    assert_true(json_is_true(json_object_get(json_array_get(out, 0), "ok")));
    json_decref(out);
    tu_call_expect(f->rt, "a", "0",
                   "[\"v2\", {\"total\": 1, \"history\": [\"1\"], \"extra\": \"ok\"}]");
}

static void test_upgrade_that_does_not_compile(void **state)
{
    lt_t *f = *state;
    lt_load(f, "ctr", v1_src);
    lt_start(f, "a", "ctr", NULL);
    json_t *err = NULL;
    const char *bad = "local M = {\nreturn M";
    assert_int_equal(
        gs_lua_upgrade(f->lua, "ctr", "9", bad, strlen(bad), NULL, NULL, on_upgrade, NULL, &err),
        GS_EINVAL);
    assert_non_null(strstr(json_string_value(err), "ctr:2:"));
    json_decref(err);
    assert_int_equal(gs_lua_upgrade(f->lua, "nothing", NULL, v2_src, strlen(v2_src), NULL, NULL,
                                    on_upgrade, NULL, &err),
                     GS_ENOBEHAVIOUR);
    tu_call_expect(f->rt, "a", "0", "[\"v1\", {\"count\": 0}]");
    json_t *d = gs_lua_describe(f->lua, "ctr");
    assert_string_equal(json_string_value(json_object_get(d, "vsn")), "1");
    json_decref(d);
    /* Without code_change the state is kept as it is (OTP's default). */
    json_t *out = upgrade(f, "ctr",
                          "return {handle_call = function(m, f, s) return {'reply', "
                          "{'v3', s}, s} end}",
                          NULL);
    json_decref(out);
    tu_call_expect(f->rt, "a", "0", "[\"v3\", {\"count\": 0}]");
}

static void test_load_refusals(void **state)
{
    lt_t *f = *state;
    json_t *err = NULL;
    assert_int_equal(lt_load_rc(f, "counter", v1_src, NULL), GS_EEXIST); /* a built-in */
    lt_load(f, "ctr", v1_src);
    assert_int_equal(lt_load_rc(f, "ctr", v1_src, NULL), GS_EEXIST);
    assert_int_equal(lt_load_rc(f, "x1", "return 1", &err), GS_EINVAL);
    assert_string_equal(json_string_value(err),
                        "x1: the chunk must return a table of callbacks, not number");
    json_decref(err);
    assert_int_equal(lt_load_rc(f, "x2", "return {vsn = '1'}", &err), GS_EINVAL);
    assert_non_null(strstr(json_string_value(err), "none of init"));
    json_decref(err);
    assert_int_equal(lt_load_rc(f, "x3", "return {init = 1}", &err), GS_EINVAL);
    assert_non_null(strstr(json_string_value(err), "init must be a function"));
    json_decref(err);
    assert_int_equal(lt_load_rc(f, "x4", "error('at load')", &err), GS_EINVAL);
    assert_string_equal(json_string_value(err), "x4:1: at load");
    json_decref(err);
    assert_int_equal(lt_load_rc(f, "x5", "while true do end", &err), GS_EINVAL);
    assert_non_null(strstr(json_string_value(err), "cpu_limit"));
    json_decref(err);
    assert_int_equal(lt_load_rc(f, "", v1_src, NULL), GS_EINVAL);
    /* Listings are JSON: what they show must be UTF-8. */
    assert_int_equal(lt_load_rc(f, "x6", "return {vsn = '\\xff', init = function() end}", &err),
                     GS_EINVAL);
    assert_non_null(strstr(json_string_value(err), "vsn is not valid UTF-8"));
    json_decref(err);
    assert_int_equal(lt_load_rc(f, "bad\xff", v1_src, NULL), GS_EINVAL);
    lt_load(f, "bytes", "-- \xff\nreturn {init = function() end}");
    json_t *d = gs_lua_describe(f->lua, "bytes");
    assert_string_equal(json_string_value(json_object_get(d, "source")),
                        "-- ?\nreturn {init = function() end}");
    json_decref(d);
    /* Docs: messages, description, args. */
    lt_load(f, "docs",
            "return {description = 'd', args = {n = 1}, handle_call = function() end,\n"
            " messages = {{kind = 'call', example = {'push', 1}, description = 'Push.'},\n"
            "             {kind = 'cast', example = 'go'}}}");
    const gs_behaviour_t *b = gs_behaviour_find(f->rt, "docs");
    assert_string_equal(b->description, "d");
    assert_string_equal(b->args_doc, "{\"n\":1}");
    assert_string_equal(b->messages[0].kind, "call");
    assert_string_equal(b->messages[0].example, "[\"push\",1]");
    assert_string_equal(b->messages[0].description, "Push.");
    assert_string_equal(b->messages[1].example, "\"go\"");
    assert_null(b->messages[2].kind);
    /* Past max_behaviours. */
    lt_t *g = NULL;
    gs_lua_options_t o;
    gs_lua_options_init(&o);
    o.max_behaviours = 1;
    lt_setup_opts((void **)&g, &o);
    lt_load(g, "one", v1_src);
    assert_int_equal(lt_load_rc(g, "two", v1_src, NULL), GS_EOVERLOADED);
    lt_teardown((void **)&g);
    o.memory_limit = 10;
    gs_lua_t *bad = NULL;
    assert_int_equal(gs_lua_create(f->rt, &o, &bad), GS_EINVAL);
}

static void test_delete(void **state)
{
    lt_t *f = *state;
    lt_load(f, "ctr", v1_src);
    lt_start(f, "a", "ctr", NULL);
    assert_int_equal(gs_lua_delete(f->lua, "ctr"), GS_EINUSE);
    assert_int_equal(gs_lua_delete(f->lua, "nothing"), GS_ENOBEHAVIOUR);
    /* Old code still run after a failed upgrade counts too. */
    json_t *out = upgrade(f, "ctr", v2_src, "\"fail\"");
    json_decref(out);
    assert_int_equal(gs_lua_delete(f->lua, "ctr"), GS_EINUSE);
    assert_int_equal(gs_stop(f->rt, "a", NULL, TU_WAIT_MS), 0);
    assert_int_equal(gs_lua_delete(f->lua, "ctr"), 0);
    assert_false(gs_lua_has(f->lua, "ctr"));
    assert_null(gs_behaviour_find(f->rt, "ctr"));
    lt_load(f, "ctr", v2_src); /* the name is free again */
}

static void test_load_dir(void **state)
{
    lt_t *f = *state;
    char dir[] = "/tmp/gs-lua-dir-XXXXXX";
    char path[256], err[512];
    assert_non_null(mkdtemp(dir));
    const char *files[][2] = {
        {"alpha.lua", "return {vsn = 'a1', handle_call = function(m, f, s) return {'reply', "
                      "'alpha', s} end}"},
        {"beta.lua", "return {handle_call = function(m, f, s) return {'reply', 'beta', s} end}"},
        {"notes.txt", "not lua"},
    };
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i][0]);
        FILE *fp = fopen(path, "w");
        assert_non_null(fp);
        fputs(files[i][1], fp);
        fclose(fp);
    }
    assert_int_equal(gs_lua_load_dir(f->lua, dir, err, sizeof(err)), 0);
    assert_true(gs_lua_has(f->lua, "alpha") && gs_lua_has(f->lua, "beta"));
    assert_false(gs_lua_has(f->lua, "notes"));
    assert_string_equal(gs_behaviour_find(f->rt, "alpha")->vsn, "a1");
    lt_start(f, "x", "beta", NULL);
    tu_call_expect(f->rt, "x", "0", "\"beta\"");
    /* A broken file: the error names it. */
    snprintf(path, sizeof(path), "%s/gamma.lua", dir);
    FILE *fp = fopen(path, "w");
    fputs("return {", fp);
    fclose(fp);
    assert_int_equal(gs_lua_load_dir(f->lua, dir, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "alpha.lua")); /* already loaded: the first it could not */
    assert_int_equal(gs_lua_load_dir(f->lua, "/nonexistent-dir", err, sizeof(err)), -1);
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i][0]);
        unlink(path);
    }
    snprintf(path, sizeof(path), "%s/gamma.lua", dir);
    unlink(path);
    rmdir(dir);
}

static void test_load_dir_broken(void **state)
{
    lt_t *f = *state;
    char dir[] = "/tmp/gs-lua-dir-XXXXXX", path[256], err[512];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/gamma.lua", dir);
    FILE *fp = fopen(path, "w");
    fputs("return {\n", fp);
    fclose(fp);
    assert_int_equal(gs_lua_load_dir(f->lua, dir, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "gamma.lua: gamma:2:"));
    unlink(path);
    rmdir(dir);
}

/* ---------------------------------------------------------------------------------------- */
/* Hibernation                                                                                */
/* ---------------------------------------------------------------------------------------- */

static const char *sleepy_src =
    "local M = {}\n"
    "function M.init(a) return {'ok', a, 'hibernate'} end\n"
    "function M.handle_call(m, f, s)\n"
    "  if m == 'get' then return {'reply', s, s, 'hibernate'} end\n"
    "  if m == 'kinds' then return {'reply', {getmetatable(s.empty) == gs.array_mt,\n"
    "     getmetatable(s.list) == nil, math.type(s.f), s.null == gs.null}, s, 'hibernate'} end\n"
    "  if m == 'fn' then s.fn = print return {'reply', 1, s, 'hibernate'} end\n"
    "  if m == 'mem' then return {'reply', collectgarbage('count') * 1024, s} end\n"
    "  return {'reply', 0, s}\n"
    "end\n"
    "function M.terminate(r, s) gs.log('info', 'bye', s.n) end\n"
    "return M\n";

static void test_hibernate_round_trip(void **state)
{
    lt_t *f = *state;
    lt_load(f, "sleepy", sleepy_src);
    const char *args = "{\"n\": 5, \"empty\": [], \"obj\": {}, \"list\": [1, 2], \"f\": 2.0, "
                       "\"null\": null, \"s\": \"a\\u00e9b\"}";
    lt_start(f, "z", "sleepy", args);
    /* Asleep: the state is shown without waking. */
    json_t *st = tu_state(f->rt, "z");
    assert_json_eq(st, args);
    json_decref(st);
    tu_call_expect(f->rt, "z", "\"get\"", args);
    /* Decoded arrays carry gs.array_mt; the exact marks come back from hibernation. */
    tu_call_expect(f->rt, "z", "\"kinds\"", "[true, false, \"float\", true]");
    tu_call_expect(f->rt, "z", "\"kinds\"", "[true, false, \"float\", true]");
    /* A function in the state: not closed, still works. */
    tu_call_expect(f->rt, "z", "\"fn\"", "1");
    st = tu_state(f->rt, "z");
    assert_json_eq(st, "{\"error\": [\"bad_value\", \"function at state.fn\"]}");
    json_decref(st);
    tu_call_expect(f->rt, "z", "\"kinds\"", "[true, false, \"float\", true]");
}

static void test_hibernate_terminate(void **state)
{
    lt_t *f = *state;
    lt_load(f, "sleepy", sleepy_src);
    lt_start(f, "z", "sleepy", "{\"n\": 7}");
    assert_int_equal(gs_stop(f->rt, "z", NULL, TU_WAIT_MS), 0);
    assert_true(lt_logged("bye 7"));
}

/* Memory per server: awake and hibernated, from the allocator's own count (mallinfo2, glibc;
 * the figures mean nothing under a sanitizer's allocator, where this only prints them). */
static void test_memory_per_server(void **state)
{
    lt_t *f = *state;
    enum { N = 2000 };
    lt_load(f, "counter_l",
            "local M = {}\n"
            "function M.init() return {'ok', {count = 0}} end\n"
            "function M.handle_cast(m, s) s.count = s.count + 1 return {'noreply', s} end\n"
            "function M.handle_call(m, f, s)\n"
            "  if m == 'sleep' then return {'reply', s.count, s, 'hibernate'} end\n"
            "  return {'reply', s.count, s}\n"
            "end\n"
            "return M\n");
    char name[32];
    malloc_trim(0);
    struct mallinfo2 m0 = mallinfo2();
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "m%d", i);
        lt_start(f, name, "counter_l", NULL);
        tu_cast(f->rt, name, "0");
        assert_int_equal(tu_call_int(f->rt, name, "\"get\""), 1);
    }
    struct mallinfo2 m1 = mallinfo2();
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "m%d", i);
        assert_int_equal(tu_call_int(f->rt, name, "\"sleep\""), 1);
    }
    malloc_trim(0);
    struct mallinfo2 m2 = mallinfo2();
    long long awake = ((long long)m1.uordblks - (long long)m0.uordblks) / N;
    long long asleep = ((long long)m2.uordblks - (long long)m0.uordblks) / N;
    print_message("  per server (runtime's share included): awake %lld B, hibernated %lld B\n",
                  awake, asleep);
    /* Each still answers after its sleep. */
    assert_int_equal(tu_call_int(f->rt, "m0", "\"get\""), 1);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#if defined(__has_feature)
#if !__has_feature(address_sanitizer) && !__has_feature(thread_sanitizer)
    assert_true(awake > 0 && awake < 16384);
    assert_true(asleep > 0 && asleep < 2900);
#endif
#else
    assert_true(awake > 0 && awake < 16384);
    assert_true(asleep > 0 && asleep < 2900);
#endif
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        lt_test(test_upgrade_changes_state_shape),
        lt_test(test_upgrade_failures_keep_old),
        lt_test(test_upgrade_that_does_not_compile),
        lt_test(test_load_refusals),
        lt_test(test_delete),
        lt_test(test_load_dir),
        lt_test(test_load_dir_broken),
        lt_test(test_hibernate_round_trip),
        lt_test(test_hibernate_terminate),
        lt_test(test_memory_per_server),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
