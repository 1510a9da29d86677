/*
 * test_lua_upgrade.c: the Lua host's life cycle of code and state: loading (and what is
 * refused), hot upgrades through code_change (a changed state shape; a failing, raising or
 * missing code_change; a source that does not compile), delete while used, a directory of
 * behaviours, hibernation (the state closed and restored, or kept when JSON would lose it),
 * what a server costs in memory awake and hibernated, and durability: dump_state and restore
 * called directly (the round trip, one text per value, what cannot be stored, a rollback),
 * then through a runtime with a store in memory (a restart restores instead of init and runs
 * restored; what restored refuses; a failed commit rolled back).
 */
#include "test_lua.h"

#include <genserv/store.h>

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

/* ---------------------------------------------------------------------------------------- */
/* Durability: the callbacks called directly                                                  */
/* ---------------------------------------------------------------------------------------- */

/*
 * The tests below call a Lua behaviour's callbacks as the runtime would, with a state they own.
 * self is a running server of the behaviour, started for its handle only: the callbacks read
 * its behaviour and start options, and gs_init_then does nothing outside its start. The Lua
 * code here calls no gs.* function that needs a running callback's server.
 */
typedef struct direct_s {
    const gs_behaviour_t *b;
    gs_server_t *self; /* a handle reference, dropped by direct_close */
} direct_t;

static direct_t direct_open(lt_t *f, const char *behaviour, const char *server,
                            const gs_start_options_t *opts)
{
    json_t *why = NULL;
    int rc = lt_start_rc(f, server, behaviour, NULL, opts, &why);
    json_decref(why);
    assert_int_equal(rc, 0);
    direct_t d = {gs_behaviour_find(f->rt, behaviour), gs_whereis(f->rt, server)};
    assert_non_null(d.b);
    assert_non_null(d.self);
    return d;
}

static void direct_close(direct_t *d)
{
    gs_server_unref(d->self);
}

/* init(args) called directly: the new state. */
static void *direct_init(direct_t *d, const char *args)
{
    void *st = NULL;
    json_t *a = tu_json(args), *why = NULL;
    assert_int_equal(d->b->init(d->self, a, &st, &why), 0);
    json_decref(a);
    assert_null(why);
    return st;
}

/* handle_call(msg) called directly: its reply (new). */
static json_t *direct_call(direct_t *d, void *st, const char *msg)
{
    json_t *m = tu_json(msg);
    gs_result_t r = d->b->handle_call(d->self, st, m, (gs_from_t){gs_server_runtime(d->self), 1});
    json_decref(m);
    if (r.action != GS_ACTION_REPLY) {
        char buf[512];
        print_error("handle_call(%s): action %d, reason %s\n", msg, (int)r.action,
                    tu_dump(r.reason, buf, sizeof(buf)));
        json_decref(r.reason);
        _fail(__FILE__, __LINE__);
    }
    json_decref(r.arg);
    return r.reply;
}

#define direct_call_expect(d, st, msg, want)                                                       \
    do {                                                                                           \
        json_t *dc_r_ = direct_call((d), (st), (msg));                                             \
        assert_json_eq(dc_r_, (want));                                                             \
        json_decref(dc_r_);                                                                        \
    } while (0)

static void direct_cast(direct_t *d, void *st, const char *msg)
{
    json_t *m = tu_json(msg);
    gs_result_t r = d->b->handle_cast(d->self, st, m);
    json_decref(m);
    assert_int_equal(r.action, GS_ACTION_NOREPLY);
}

static void direct_terminate(direct_t *d, void *st)
{
    json_t *why = json_string("normal");
    d->b->terminate(d->self, why, st);
    json_decref(why);
}

/* dump_state as the runtime writes it (compact text, keys in the order given: malloc'd), or
 * NULL with *reason (new) when it cannot be stored. */
static char *dump_text(direct_t *d, void *st, json_t **reason)
{
    json_t *why = NULL;
    json_t *v = d->b->dump_state(d->self, st, &why);
    if (v == NULL) {
        assert_non_null(why);
        *reason = why;
        return NULL;
    }
    assert_null(why);
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(v);
    assert_non_null(text);
    return text;
}

static char *dump_ok(direct_t *d, void *st)
{
    json_t *why = NULL;
    char *text = dump_text(d, st, &why);
    if (text == NULL) {
        char buf[512];
        print_error("dump_state: %s\n", tu_dump(why, buf, sizeof(buf)));
        json_decref(why);
        _fail(__FILE__, __LINE__);
    }
    return text;
}

/* The reason dump_state gives for st (which must not be storable), as JSON text to compare. */
#define dump_refused(d, st, want)                                                                  \
    do {                                                                                           \
        json_t *dr_why_ = NULL;                                                                    \
        char *dr_text_ = dump_text((d), (st), &dr_why_);                                           \
        if (dr_text_ != NULL)                                                                      \
            print_error("dump_state stored %s\n", dr_text_);                                       \
        assert_null(dr_text_);                                                                     \
        assert_json_eq(dr_why_, (want));                                                           \
        json_decref(dr_why_);                                                                      \
    } while (0)

/* A counter whose state has one of every kind of JSON value, and shapes for the tests below.
 * `calls` is a chunk-level local: per Lua state, outside the stored state. */
static const char *store_src =
    "local M = {vsn = '1'}\n"
    "local calls = 0\n"
    "local KEYS = {'b', 'a', 'ab', 'B', '_', 'aa', 'z', 'y10', 'y2'}\n"
    "local function build(rev)\n"
    "  local t = {}\n"
    "  if rev then\n"
    "    for i = 1, 200 do t['junk' .. i] = i end\n"
    "    for i = #KEYS, 1, -1 do t[KEYS[i]] = #KEYS[i] end\n"
    "    for i = 1, 200 do t['junk' .. i] = nil end\n"
    "    t.inner = {y = 1, x = {2, 3}, w = gs.null}\n"
    "  else\n"
    "    for i = 1, #KEYS do t[KEYS[i]] = #KEYS[i] end\n"
    "    t.inner = {w = gs.null}\n"
    "    t.inner.x = {2, 3}\n"
    "    t.inner.y = 1\n"
    "  end\n"
    "  return t\n"
    "end\n"
    "function M.init(a)\n"
    "  return {'ok', {count = 0, f = 2.0, e = gs.array(), o = {}, n = gs.null,\n"
    "                 list = {1, 'two', {three = 3}}, s = 'caf\\u{e9}'}}\n"
    "end\n"
    "function M.handle_cast(m, s)\n"
    "  if m == 'inc' then s.count = s.count + 1 end\n"
    "  return {'noreply', s}\n"
    "end\n"
    "function M.handle_call(m, f, s)\n"
    "  calls = calls + 1\n"
    "  if m == 'get' then return {'reply', s.count, s} end\n"
    "  if m == 'calls' then return {'reply', calls, s} end\n"
    "  if m == 'state' then return {'reply', s, s} end\n"
    "  if m == 'sleep' then return {'reply', 0, s, 'hibernate'} end\n"
    "  if m == 'fwd' then return {'reply', 0, build(false)} end\n"
    "  if m == 'rev' then return {'reply', 0, build(true)} end\n"
    "  if m == 'fn' then s.cb = print end\n"
    "  if m == 'int' then s.t = {[17] = 'x', name = 'y'} end\n"
    "  if m == 'shared' then local t = {1} s.a = t s.b = t end\n"
    "  if m == 'nan' then s.x = 0/0 end\n"
    "  if m == 'cycle' then s.self = s end\n"
    "  if m == 'mt' then s.obj = setmetatable({}, {__index = {}}) end\n"
    "  return {'reply', 0, s}\n"
    "end\n"
    "return M\n";

/* A state dumps, restores into a new server state, dumps to the same text, and answers as it
 * did. */
static void test_dump_restore_round_trip(void **state)
{
    lt_t *f = *state;
    lt_load(f, "st", store_src);
    direct_t d = direct_open(f, "st", "host", NULL);
    void *st = direct_init(&d, "null");
    for (int i = 0; i < 3; i++)
        direct_cast(&d, st, "\"inc\"");
    char *before = dump_ok(&d, st);
    /* Keys sorted, a float written as a float, arrays and an empty array kept. */
    assert_string_equal(before,
                        "{\"count\":3,\"e\":[],\"f\":2.0,\"list\":[1,\"two\",{\"three\":3}],"
                        "\"n\":null,\"o\":{},\"s\":\"caf\xc3\xa9\"}");
    json_t *stored = tu_json(before), *why = NULL;
    void *back = NULL;
    assert_int_equal(d.b->restore(d.self, stored, &back, &why), 0);
    assert_null(why);
    assert_non_null(back);
    assert_ptr_not_equal(back, st);
    json_decref(stored);
    char *after = dump_ok(&d, back);
    assert_string_equal(after, before);
    /* It answers as the original does, and both go on from there. */
    direct_call_expect(&d, back, "\"get\"", "3");
    direct_cast(&d, back, "\"inc\"");
    direct_call_expect(&d, back, "\"get\"", "4");
    direct_call_expect(&d, st, "\"get\"", "3");
    /* An unchanged state dumps to the same text every time (the runtime's change check). */
    char *again = dump_ok(&d, st);
    assert_string_equal(again, before);
    free(before);
    free(after);
    free(again);
    direct_terminate(&d, st);
    direct_terminate(&d, back);
    direct_close(&d);
}

/* One text per value: keys in byte order whatever the order Lua keeps them in, which differs
 * with the insertion history (and across states, whose string hashes are seeded apart). */
static void test_dump_state_sorted(void **state)
{
    lt_t *f = *state;
    const char *want = "{\"B\":1,\"_\":1,\"a\":1,\"aa\":2,\"ab\":2,\"b\":1,"
                       "\"inner\":{\"w\":null,\"x\":[2,3],\"y\":1},\"y10\":3,\"y2\":2,\"z\":1}";
    lt_load(f, "st", store_src);
    direct_t d = direct_open(f, "st", "host", NULL);
    void *fwd = direct_init(&d, "null"), *rev = direct_init(&d, "null");
    direct_call_expect(&d, fwd, "\"fwd\"", "0");
    direct_call_expect(&d, rev, "\"rev\"", "0");
    char *a = dump_ok(&d, fwd), *b = dump_ok(&d, rev);
    assert_string_equal(a, want);
    assert_string_equal(b, want);
    /* Hibernated, the state is dumped from its text without waking it, in the same order. */
    json_t *r = direct_call(&d, rev, "\"sleep\"");
    json_decref(r);
    void *p = rev;
    d.b->hibernate(d.self, &p);
    assert_ptr_equal(p, rev);
    char *c = dump_ok(&d, rev);
    assert_string_equal(c, want);
    direct_call_expect(&d, rev, "\"state\"", want); /* and wakes as it was */
    free(a);
    free(b);
    free(c);
    direct_terminate(&d, fwd);
    direct_terminate(&d, rev);
    direct_close(&d);
}

/* What JSON cannot hold, or would hold as another value, is not stored: the reason names it. */
static void test_dump_state_refusals(void **state)
{
    lt_t *f = *state;
    lt_load(f, "st", store_src);
    direct_t d = direct_open(f, "st", "host", NULL);
    const char *cases[][2] = {
        {"\"fn\"", "[\"bad_value\", \"function at state.cb\"]"},
        {"\"int\"",
         "[\"bad_value\", \"integer key (JSON would make it a string) at state.t[17]\"]"},
        {"\"nan\"", "[\"bad_value\", \"NaN at state.x\"]"},
        {"\"cycle\"", "[\"bad_value\", \"cyclic table at state.self\"]"},
        {"\"mt\"", "[\"bad_value\", \"table with a metatable at state.obj\"]"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        void *st = direct_init(&d, "null");
        direct_call_expect(&d, st, cases[i][0], "0");
        dump_refused(&d, st, cases[i][1]);
        direct_terminate(&d, st);
    }
    /* A table reached twice would come back as two: which of its places is named depends on
     * Lua's order. */
    void *st = direct_init(&d, "null");
    direct_call_expect(&d, st, "\"shared\"", "0");
    json_t *why = NULL;
    assert_null(dump_text(&d, st, &why));
    const char *text = json_string_value(json_array_get(why, 1));
    assert_non_null(text);
    assert_true(strcmp(text, "table reached twice at state.a") == 0 ||
                strcmp(text, "table reached twice at state.b") == 0);
    json_decref(why);
    direct_terminate(&d, st);
    direct_close(&d);
}

/* A rollback: restore over the server's state replaces it with a fresh Lua state (the old one
 * freed: the suite runs under ASan), and a restore that fails leaves the old one working. */
static void test_restore_rollback_replaces(void **state)
{
    lt_t *f = *state;
    lt_load(f, "st", store_src);
    direct_t d = direct_open(f, "st", "host", NULL);
    void *st = direct_init(&d, "null");
    direct_cast(&d, st, "\"inc\"");
    direct_cast(&d, st, "\"inc\"");
    char *committed = dump_ok(&d, st);
    for (int i = 0; i < 3; i++)
        direct_cast(&d, st, "\"inc\"");
    direct_call_expect(&d, st, "\"calls\"", "1");
    direct_call_expect(&d, st, "\"calls\"", "2");
    direct_call_expect(&d, st, "\"get\"", "5");

    json_t *stored = tu_json(committed), *why = NULL;
    void *old = st;
    assert_int_equal(d.b->restore(d.self, stored, &st, &why), 0);
    assert_null(why);
    assert_ptr_not_equal(st, old);
    direct_call_expect(&d, st, "\"get\"", "2");
    /* Rebuilt, not patched: what the rolled-back messages left outside the state is gone. */
    direct_call_expect(&d, st, "\"calls\"", "2");
    char *now = dump_ok(&d, st);
    assert_string_equal(now, committed);
    free(now);

    /* A stored value the state cannot take (deeper than JSON may be): refused, old state kept. */
    char deep[200] = "";
    for (int i = 0; i < 70; i++)
        strcat(deep, "[");
    for (int i = 0; i < 70; i++)
        strcat(deep, "]");
    json_t *bad = tu_json(deep);
    old = st;
    assert_int_not_equal(d.b->restore(d.self, bad, &st, &why), 0);
    assert_ptr_equal(st, old);
    assert_string_equal(json_string_value(json_array_get(why, 0)), "lua_error");
    assert_non_null(strstr(json_string_value(json_array_get(why, 1)), "nested deeper than 64"));
    json_decref(why);
    why = NULL;
    json_decref(bad);
    direct_call_expect(&d, st, "\"get\"", "2");

    /* Over a hibernated state too. */
    direct_cast(&d, st, "\"inc\"");
    json_decref(direct_call(&d, st, "\"sleep\""));
    d.b->hibernate(d.self, &st);
    assert_int_equal(d.b->restore(d.self, stored, &st, &why), 0);
    direct_call_expect(&d, st, "\"get\"", "2");
    json_decref(stored);
    free(committed);
    direct_terminate(&d, st);
    direct_close(&d);
}

/* A restore at start is bound as init is: by the start's memory limit, and by the host's caps
 * on what a start may ask for. */
static void test_restore_limits(void **state)
{
    lt_t *f = *state;
    lt_load(f, "st", store_src);
    gs_start_options_t o;
    gs_start_options_init(&o);
    o.memory_limit = 256 * 1024;
    direct_t d = direct_open(f, "st", "small", &o);
    size_t n = 1024 * 1024;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, 'x', n);
    big[n] = '\0';
    json_t *stored = json_pack("{s:s}", "big", big), *why = NULL;
    free(big);
    void *st = NULL;
    assert_int_not_equal(d.b->restore(d.self, stored, &st, &why), 0);
    assert_null(st);
    assert_string_equal(json_string_value(json_array_get(why, 0)), "memory_limit");
    json_decref(why);
    json_decref(stored);
    direct_close(&d);
}

/* restored(state) changes the state; what it refuses waits for the server's first handler
 * (outside a start gs_init_then cannot run it sooner). M.durable and the callbacks every Lua
 * behaviour gets. */
static void test_restored_and_durable_flag(void **state)
{
    lt_t *f = *state;
    lt_load(f, "plain", v1_src);
    lt_load(f, "dur", "return {durable = true, init = function() return {'ok', 0} end}");
    lt_load(f, "rest",
            "local M = {}\n"
            "function M.init() return {'ok', {n = 0}} end\n"
            "function M.restored(s)\n"
            "  if s.refuse then return {'stop', {'refused', s.n}} end\n"
            "  s.back = true return {'ok', s}\n"
            "end\n"
            "function M.handle_call(m, f, s) return {'reply', s, s} end\n"
            "return M\n");
    const gs_behaviour_t *plain = gs_behaviour_find(f->rt, "plain");
    const gs_behaviour_t *dur = gs_behaviour_find(f->rt, "dur");
    assert_false(plain->durable);
    assert_true(dur->durable);
    assert_non_null(plain->dump_state);
    assert_non_null(plain->restore);
    assert_null(plain->restored);
    assert_null(dur->restored);
    /* Durable needs a store: this runtime has none. */
    json_t *why = NULL;
    assert_int_equal(lt_start_rc(f, "d", "dur", NULL, NULL, &why), GS_ENOTSUP);
    json_decref(why);

    direct_t d = direct_open(f, "rest", "host", NULL);
    assert_non_null(d.b->restored);
    json_t *stored = tu_json("{\"n\": 4}");
    void *st = NULL;
    assert_int_equal(d.b->restore(d.self, stored, &st, &why), 0);
    json_decref(stored);
    d.b->restored(d.self, st);
    direct_call_expect(&d, st, "0", "{\"n\": 4, \"back\": true}");
    direct_terminate(&d, st);

    stored = tu_json("{\"n\": 5, \"refuse\": true}");
    st = NULL;
    assert_int_equal(d.b->restore(d.self, stored, &st, &why), 0);
    json_decref(stored);
    d.b->restored(d.self, st);
    json_t *m = json_integer(0);
    gs_result_t r = d.b->handle_call(d.self, st, m, (gs_from_t){f->rt, 1});
    json_decref(m);
    assert_int_equal(r.action, GS_ACTION_STOP);
    assert_null(r.reply);
    assert_json_eq(r.reason, "[\"refused\", 5]");
    json_decref(r.reason);
    direct_call_expect(&d, st, "0", "{\"n\": 5, \"refuse\": true}"); /* once only */
    direct_terminate(&d, st);
    direct_close(&d);
}

/* ---------------------------------------------------------------------------------------- */
/* Durability through a runtime with a store                                                 */
/* ---------------------------------------------------------------------------------------- */

/*
 * A store in memory (genserv/store.h), as small as the interface allows: one thread commits
 * the batches in order and then runs their done callbacks, as a backend must (never on the
 * submitting thread, which may hold the server's durable lock). fail > 0 makes that many of
 * the next batches fail. Its tables outlive a runtime, so that the next one reads them back.
 */
typedef struct mem_store_s {
    gs_store_t st; /* first: the runtime's pointer leads back here */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    gs_store_batch_t *head, *tail;      /* mu */
    bool closing;                       /* mu */
    int fail;                           /* mu */
    uint64_t commits, failures;         /* mu */
    json_t *tables[GS_STORE_TABLE_MAX]; /* mu: key -> the value's text */
} mem_store_t;

static void *mem_store_main(void *arg)
{
    mem_store_t *ms = arg;
    pthread_mutex_lock(&ms->mu);
    for (;;) {
        while (ms->head == NULL && !ms->closing)
            pthread_cond_wait(&ms->cv, &ms->mu);
        gs_store_batch_t *b = ms->head;
        if (b == NULL)
            break; /* closing, and everything queued is done */
        ms->head = b->next;
        if (ms->head == NULL)
            ms->tail = NULL;
        int status = 0;
        if (ms->fail > 0) {
            ms->fail--;
            ms->failures++;
            status = GS_ESTORAGE;
        } else {
            for (size_t i = 0; i < b->n; i++) {
                const gs_store_op_t *op = &b->ops[i];
                if (op->del)
                    json_object_del(ms->tables[op->table], op->key);
                else
                    json_object_set_new(ms->tables[op->table], op->key,
                                        json_stringn(op->val, op->val_len));
            }
            ms->commits++;
        }
        pthread_mutex_unlock(&ms->mu);
        if (b->done != NULL)
            b->done(status, b->arg);
        gs_store_batch_destroy(b);
        pthread_mutex_lock(&ms->mu);
    }
    pthread_mutex_unlock(&ms->mu);
    return NULL;
}

static int mem_store_submit(gs_store_t *st, gs_store_batch_t *b)
{
    mem_store_t *ms = (mem_store_t *)st;
    pthread_mutex_lock(&ms->mu);
    if (ms->closing) {
        pthread_mutex_unlock(&ms->mu);
        gs_store_batch_destroy(b);
        return GS_ESHUTDOWN;
    }
    b->next = NULL;
    if (ms->tail != NULL)
        ms->tail->next = b;
    else
        ms->head = b;
    ms->tail = b;
    pthread_cond_signal(&ms->cv);
    pthread_mutex_unlock(&ms->mu);
    return 0;
}

static int by_key(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int mem_store_load(gs_store_t *st, int table, gs_store_row_cb cb, void *arg)
{
    mem_store_t *ms = (mem_store_t *)st;
    if (table <= 0 || table >= GS_STORE_TABLE_MAX)
        return GS_ESTORAGE;
    pthread_mutex_lock(&ms->mu);
    json_t *rows = json_deep_copy(ms->tables[table]);
    pthread_mutex_unlock(&ms->mu);
    size_t n = json_object_size(rows), i = 0;
    const char **keys = malloc((n + 1) * sizeof(*keys));
    const char *key;
    json_t *val;
    json_object_foreach(rows, key, val) keys[i++] = key;
    qsort(keys, n, sizeof(*keys), by_key);
    for (i = 0; i < n; i++) {
        val = json_object_get(rows, keys[i]);
        if (!cb(keys[i], json_string_value(val), json_string_length(val), arg))
            break;
    }
    free(keys);
    json_decref(rows);
    return 0;
}

static void mem_store_stats(gs_store_t *st, gs_store_stats_t *out)
{
    mem_store_t *ms = (mem_store_t *)st;
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&ms->mu);
    out->commits = out->batches = ms->commits;
    out->errors = ms->failures;
    pthread_mutex_unlock(&ms->mu);
    out->healthy = true;
}

static const char *mem_store_last_error(gs_store_t *st)
{
    (void)st;
    return "";
}

static void mem_store_destroy(gs_store_t *st)
{
    mem_store_t *ms = (mem_store_t *)st;
    pthread_mutex_lock(&ms->mu);
    ms->closing = true;
    pthread_cond_signal(&ms->cv);
    pthread_mutex_unlock(&ms->mu);
    pthread_join(ms->thread, NULL);
    for (int t = 0; t < GS_STORE_TABLE_MAX; t++)
        json_decref(ms->tables[t]);
    pthread_cond_destroy(&ms->cv);
    pthread_mutex_destroy(&ms->mu);
    free(ms);
}

static mem_store_t *mem_store_create(void)
{
    mem_store_t *ms = calloc(1, sizeof(*ms));
    assert_non_null(ms);
    ms->st = (gs_store_t){.name = "memory",
                          .location = "memory",
                          .submit = mem_store_submit,
                          .load = mem_store_load,
                          .stats = mem_store_stats,
                          .last_error = mem_store_last_error,
                          .destroy = mem_store_destroy};
    pthread_mutex_init(&ms->mu, NULL);
    pthread_cond_init(&ms->cv, NULL);
    for (int t = 0; t < GS_STORE_TABLE_MAX; t++)
        ms->tables[t] = json_object();
    assert_int_equal(pthread_create(&ms->thread, NULL, mem_store_main, ms), 0);
    return ms;
}

static uint64_t mem_store_commits(mem_store_t *ms)
{
    pthread_mutex_lock(&ms->mu);
    uint64_t n = ms->commits;
    pthread_mutex_unlock(&ms->mu);
    return n;
}

/* The committed state of server name as compact text (malloc'd), or NULL. */
static char *mem_store_state(mem_store_t *ms, const char *name)
{
    pthread_mutex_lock(&ms->mu);
    const char *row = json_string_value(json_object_get(ms->tables[GS_STORE_STATES], name));
    json_t *r = row != NULL ? json_loads(row, 0, NULL) : NULL;
    pthread_mutex_unlock(&ms->mu);
    char *text =
        r != NULL ? json_dumps(json_object_get(r, "state"), JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(r);
    return text;
}

/* Whether the store holds want (compact text) as name's committed state. */
static bool mem_store_has(mem_store_t *ms, const char *name, const char *want)
{
    char *text = mem_store_state(ms, name);
    bool has = text != NULL && strcmp(text, want) == 0;
    free(text);
    return has;
}

/* The Lua fixture (lt_t first, for the lt_* helpers) over a runtime with the store in memory;
 * dt_reboot is a restart of genserv: a new runtime and host over the same store. */
typedef struct dt_s {
    lt_t lt;
    mem_store_t *ms;
} dt_t;

static void dt_boot(dt_t *d)
{
    gs_runtime_options_t opts;
    gs_runtime_options_init(&opts);
    opts.schedulers = 2;
    opts.store = &d->ms->st;
    assert_int_equal(gs_runtime_create(&opts, &d->lt.rt), 0);
    gs_lua_options_t o;
    gs_lua_options_init(&o);
    o.log = lt_log;
    assert_int_equal(gs_lua_create(d->lt.rt, &o, &d->lt.lua), 0);
}

static void dt_halt(dt_t *d)
{
    gs_runtime_destroy(d->lt.rt);
    gs_lua_destroy(d->lt.lua);
    d->lt.rt = NULL;
    d->lt.lua = NULL;
}

static void dt_reboot(dt_t *d)
{
    dt_halt(d);
    dt_boot(d);
}

static int dt_setup(void **state)
{
    dt_t *d = calloc(1, sizeof(*d));
    assert_non_null(d);
    d->ms = mem_store_create();
    dt_boot(d);
    pthread_mutex_lock(&lt_log_mu);
    json_decref(lt_log_lines);
    lt_log_lines = json_array();
    pthread_mutex_unlock(&lt_log_mu);
    *state = d;
    return 0;
}

static int dt_teardown(void **state)
{
    dt_t *d = *state;
    if (d == NULL)
        return 0;
    if (d->lt.rt != NULL)
        dt_halt(d);
    d->ms->st.destroy(&d->ms->st); /* after the runtime, which borrows it */
    pthread_mutex_lock(&lt_log_mu);
    json_decref(lt_log_lines);
    lt_log_lines = NULL;
    pthread_mutex_unlock(&lt_log_mu);
    free(d);
    *state = NULL;
    return 0;
}

#define dt_test(fn) cmocka_unit_test_setup_teardown(fn, dt_setup, dt_teardown)

/* How many lines equal to want were logged. */
static size_t lt_log_count(const char *want)
{
    size_t n = 0, i;
    json_t *e;
    pthread_mutex_lock(&lt_log_mu);
    json_array_foreach(lt_log_lines, i, e) n +=
        strcmp(json_string_value(json_array_get(e, 2)), want) == 0;
    pthread_mutex_unlock(&lt_log_mu);
    return n;
}

/* Durable by its table; restored says so in the state and asks for a continue (its NEXT). */
static const char *durable_src =
    "local M = {durable = true}\n"
    "function M.init(a) gs.log('info', 'init') return {'ok', {count = 0}} end\n"
    "function M.restored(s)\n"
    "  gs.log('info', 'restored ' .. s.count)\n"
    "  s.note = 'back'\n"
    "  return {'ok', s, {'continue', 'next'}}\n"
    "end\n"
    "function M.handle_continue(arg, s) s.cont = arg return {'noreply', s} end\n"
    "function M.handle_cast(m, s)\n"
    "  if m == 'crash' then error('boom') end\n"
    "  s.count = s.count + 1 return {'noreply', s}\n"
    "end\n"
    "function M.handle_call(m, f, s) return {'reply', s, s} end\n"
    "return M\n";

/* A restart of genserv restores the server from the store instead of running init, runs
 * restored and its NEXT, and the server answers as before; so does a restart after a crash. */
static void test_durable_restart_restores(void **state)
{
    dt_t *d = *state;
    lt_t *f = &d->lt;
    lt_load(f, "dctr", durable_src);
    lt_start(f, "d", "dctr", NULL); /* durable by M.durable alone */
    for (int i = 0; i < 3; i++)
        tu_cast(f->rt, "d", "\"inc\"");
    tu_call_expect(f->rt, "d", "0", "{\"count\": 3}");
    TU_WAIT_UNTIL(mem_store_has(d->ms, "d", "{\"count\":3}"), TU_WAIT_MS);
    assert_int_equal(lt_log_count("init"), 1);
    assert_int_equal(lt_log_count("restored 3"), 0);

    dt_reboot(d);
    lt_load(f, "dctr", durable_src);
    lt_start(f, "d", "dctr", NULL);
    tu_call_expect(f->rt, "d", "0", "{\"count\": 3, \"note\": \"back\", \"cont\": \"next\"}");
    assert_int_equal(lt_log_count("init"), 1);
    assert_int_equal(lt_log_count("restored 3"), 1);
    TU_WAIT_UNTIL(mem_store_has(d->ms, "d", "{\"cont\":\"next\",\"count\":3,\"note\":\"back\"}"),
                  TU_WAIT_MS);

    /* A crash: its supervisor restarts it from the last state it handled, not from init. */
    tu_cast(f->rt, "d", "\"inc\"");
    tu_cast(f->rt, "d", "\"crash\"");
    tu_wait_running(f->rt, "d", 1);
    tu_call_expect(f->rt, "d", "0", "{\"count\": 4, \"note\": \"back\", \"cont\": \"next\"}");
    assert_int_equal(lt_log_count("init"), 1);
    assert_int_equal(lt_log_count("restored 4"), 1);
}

/* Whatever restored returns but {"ok", state[, NEXT]} crashes the server as it starts, with
 * that reason; the supervisor restarts it (and restored refuses again) until it gives up. */
static void test_restored_refusals(void **state)
{
    dt_t *d = *state;
    lt_t *f = &d->lt;
    lt_load(f, "rr",
            "local M = {durable = true}\n"
            "function M.init(a) return {'ok', {mode = a}} end\n"
            "function M.restored(s)\n"
            "  if s.mode == 'stop' then return {'stop', {'refused', s.mode}} end\n"
            "  if s.mode == 'raise' then error('cannot') end\n"
            "  return 42\n"
            "end\n"
            "function M.handle_cast(m, s) error('crash') end\n"
            "function M.handle_call(m, f, s) return {'reply', s.mode, s} end\n"
            "return M\n");
    const char *cases[][3] = {
        {"r_stop", "\"stop\"", "[\"refused\", \"stop\"]"},
        {"r_raise", "\"raise\"", "[\"lua_error\", \"rr:5: cannot\"]"},
        {"r_bad", "\"bad\"", "[\"bad_return_value\", \"restored\"]"},
    };
    for (size_t i = 0; i < 3; i++) {
        json_t *why = NULL;
        assert_int_equal(lt_start_rc(f, cases[i][0], "rr", cases[i][1], NULL, &why), 0);
        tu_call_expect(f->rt, cases[i][0], "0", cases[i][1]);
        tu_cast(f->rt, cases[i][0], "0");
    }
    for (size_t i = 0; i < 3; i++) {
        TU_WAIT_UNTIL(tu_status_str_is(f->rt, cases[i][0], "status", "down"), TU_WAIT_MS);
        json_t *last = lt_last_crash(f, cases[i][0]);
        assert_json_eq(last, cases[i][2]);
        json_decref(last);
    }
}

/* A failed commit rolls the server back to the committed state (restore over its state): not
 * a crash, and restored does not run. */
static void test_durable_rollback(void **state)
{
    dt_t *d = *state;
    lt_t *f = &d->lt;
    lt_load(f, "dctr", durable_src);
    lt_start(f, "d", "dctr", NULL);
    TU_WAIT_UNTIL(mem_store_has(d->ms, "d", "{\"count\":0}"), TU_WAIT_MS);
    uint64_t commits = mem_store_commits(d->ms);
    pthread_mutex_lock(&d->ms->mu);
    d->ms->fail = 1;
    pthread_mutex_unlock(&d->ms->mu);
    tu_cast(f->rt, "d", "\"inc\"");
    /* A call handled before the failure is known waits on the failing commit and fails with
     * it; the first handled after it sees the rolled-back state. */
    json_t *r = NULL;
    int rc = GS_ESTORAGE;
    for (int i = 0; i < 1000 && rc == GS_ESTORAGE; i++) {
        json_decref(r);
        r = NULL;
        rc = tu_call(f->rt, "d", "0", TU_WAIT_MS, &r);
    }
    assert_int_equal(rc, 0);
    assert_json_eq(r, "{\"count\": 0}");
    json_decref(r);
    assert_int_equal(tu_status_int(f->rt, "d", "restarts"), 0);
    assert_int_equal(lt_log_count("restored 0"), 0);
    assert_int_equal(mem_store_commits(d->ms), commits);
    /* And it goes on from there. */
    tu_cast(f->rt, "d", "\"inc\"");
    tu_call_expect(f->rt, "d", "0", "{\"count\": 1}");
    TU_WAIT_UNTIL(mem_store_has(d->ms, "d", "{\"count\":1}"), TU_WAIT_MS);
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
        lt_test(test_dump_restore_round_trip),
        lt_test(test_dump_state_sorted),
        lt_test(test_dump_state_refusals),
        lt_test(test_restore_rollback_replaces),
        lt_test(test_restore_limits),
        lt_test(test_restored_and_durable_flag),
        dt_test(test_durable_restart_restores),
        dt_test(test_restored_refusals),
        dt_test(test_durable_rollback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
