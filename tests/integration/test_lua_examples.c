/*
 * test_lua_examples.c: the Elixir lessons written in Lua (examples/behaviours/), played over
 * real HTTP against the real binary, as docs/lua.md shows them.
 *
 * genserv is started with --behaviours-dir pointing at the source tree's examples/behaviours
 * (GS_EXAMPLE_BEHAVIOURS, set by CMake), so every example is the file a user would load. Each
 * test is a lesson's scenario: Counter's three casts, Journal's first entry in the state,
 * SlowServer's deferred reply that holds up nobody else, Receiver, the incrementing and
 * decrementing counters, MisbehavingGenServer's calling_self crash and restart, Blocky's ten
 * producers making batches of exactly ten (and huge ones with immediate replies), the kv
 * plugin's store in Lua (against the C plugin itself when it is built), a hot upgrade that
 * reshapes the state, and an example uploaded with POST /behaviours instead of the folder.
 * What the Lua host guarantees in general is tested in test_behaviours.c and tests/unit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#ifdef GS_EXAMPLE_BEHAVIOURS

/* Generous: only a hang reaches it, also under valgrind. */
#define WAIT_MS 30000

static int setup_examples(void **state)
{
    const char *args[] = {"--behaviours-dir", GS_EXAMPLE_BEHAVIOURS, NULL};
    h_opts_t opts = {.args = args};

    return h_setup_with(state, &opts);
}

#ifdef GS_EXAMPLE_PLUGIN
/* The Lua examples and the C plugin they translate, side by side. */
static int setup_examples_and_plugin(void **state)
{
    const char *args[] = {"--behaviours-dir", GS_EXAMPLE_BEHAVIOURS, "--plugin", GS_EXAMPLE_PLUGIN,
                          NULL};
    h_opts_t opts = {.args = args};

    return h_setup_with(state, &opts);
}
#endif

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                    */
/* ---------------------------------------------------------------------------------------- */

/* Whether got (borrowed, may be NULL) equals the JSON text want; prints both when not. */
static bool json_is(const json_t *got, const char *want)
{
    json_t *w = h_json(want);
    bool equal = got != NULL && h_json_equal(got, w);

    if (got == NULL)
        fprintf(stderr, "got nothing, want %s\n", want);
    json_decref(w);
    return equal;
}

static void start(const h_server_t *srv, const char *name, const char *behaviour,
                  const char *args_json)
{
    long status = h_start_server(srv, name, behaviour, args_json, NULL);

    if (status != 201)
        fail_msg("POST /servers %s (%s): %ld", name, behaviour, status);
}

/* The state of GET /servers/NAME (new reference), or NULL when the server is not there. */
static json_t *state_of(const h_server_t *srv, const char *name)
{
    json_t *info = h_server_info(srv, name), *st;

    if (info == NULL)
        return NULL;
    st = json_incref(json_object_get(info, "state"));
    json_decref(info);
    return st;
}

/* The server's state, asserted to be exactly want (JSON text). */
static void state_is(const h_server_t *srv, const char *name, const char *want)
{
    json_t *st = state_of(srv, name);

    assert_true(json_is(st, want));
    json_decref(st);
}

/* The state as an integer (the counters' state is the bare count); INT64_MIN if it is not. */
static int64_t state_int(const h_server_t *srv, const char *name)
{
    json_t *st = state_of(srv, name);
    int64_t n = json_is_integer(st) ? (int64_t)json_integer_value(st) : INT64_MIN;

    json_decref(st);
    return n;
}

/* The reply of a call, asserted to be exactly want (JSON text). */
static void call_is(const h_server_t *srv, const char *server, const char *msg, const char *want)
{
    h_resp_t r;

    h_call(srv, server, msg, -1, &r);
    h_assert_reply(&r, want);
    h_resp_close(&r);
}

static void cast(const h_server_t *srv, const char *server, const char *msg)
{
    assert_int_equal(h_deliver(srv, "/cast", server, msg), 202);
}

/* The whole of a file of the examples folder (free it), and its length. */
static char *example_source(const char *file, size_t *len)
{
    char path[1024];
    FILE *f;
    char *buf;
    long n;

    snprintf(path, sizeof(path), "%s/%s", GS_EXAMPLE_BEHAVIOURS, file);
    f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open %s", path);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    assert_true(n > 0);
    rewind(f);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* The entry of GET /behaviours for name (new reference), or NULL. */
static json_t *listed(const h_server_t *srv, const char *name)
{
    h_resp_t r;
    json_t *found = NULL, *b;
    size_t i;

    h_request(srv, "GET", "/behaviours", NULL, &r);
    assert_int_equal(r.status, 200);
    json_array_foreach(json_object_get(r.json, "behaviours"), i, b)
    {
        if (strcmp(h_str(b, "name"), name) == 0)
            found = json_incref(b);
    }
    h_resp_close(&r);
    return found;
}

/* ---------------------------------------------------------------------------------------- */
/* The folder                                                                                 */
/* ---------------------------------------------------------------------------------------- */

static const char *const examples[] = {
    "lua_blocky_consumer",
    "lua_blocky_producer",
    "lua_counter",
    "lua_decrementing_counter",
    "lua_incrementing_counter",
    "lua_journal",
    "lua_kv",
    "lua_misbehaving_gen_server",
    "lua_receiver",
    "lua_slow_server",
};

/* Every example loads at boot as a Lua behaviour named after its file, with its vsn and its
 * docs, beside the built-ins it translates (no name clashes); the upgrade in upgrades/ is not
 * loaded (it is meant for PUT). */
static void test_every_example_loads_from_the_folder(void **state)
{
    h_fixture_t *fx = *state;
    const char *builtins[] = {"counter", "journal", "slow",     "receiver",
                              "ticker",  "batcher", "producer", "misbehaving"};

    for (size_t i = 0; i < sizeof(examples) / sizeof(examples[0]); i++) {
        json_t *b = listed(&fx->srv, examples[i]);

        if (b == NULL)
            fail_msg("%s is not listed by GET /behaviours", examples[i]);
        assert_string_equal(h_str(b, "kind"), "lua");
        assert_string_equal(h_str(b, "vsn"), "1");
        assert_non_null(h_str(b, "description"));
        assert_true(json_array_size(json_object_get(b, "messages")) > 0);
        json_decref(b);
    }
    for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++) {
        json_t *b = listed(&fx->srv, builtins[i]);

        assert_non_null(b);
        assert_string_equal(h_str(b, "kind"), "builtin");
        json_decref(b);
    }
    assert_null(listed(&fx->srv, "lua_counter_v2"));
    H_PASS(fx);
}

/* ---------------------------------------------------------------------------------------- */
/* The lessons                                                                                */
/* ---------------------------------------------------------------------------------------- */

static void test_counter_three_casts_then_get_count_is_3(void **state)
{
    h_fixture_t *fx = *state;
    h_resp_t r;

    start(&fx->srv, "c", "lua_counter", "0");
    for (int i = 0; i < 3; i++)
        cast(&fx->srv, "c", "\"increment\"");
    call_is(&fx->srv, "c", "\"get_count\"", "3");
    state_is(&fx->srv, "c", "3");

    /* A message no clause matches crashes it, as a FunctionClauseError does; it restarts
     * from init, with the count it was started with. */
    h_call(&fx->srv, "c", "\"reset\"", -1, &r);
    h_assert_error(&r, 500, "server_crashed");
    assert_true(
        json_is(json_object_get(r.json, "reason"), "[\"bad_return_value\", \"handle_call\"]"));
    h_resp_close(&r);
    assert_int_equal(h_server_int(&fx->srv, "c", "restarts", false), 1);
    call_is(&fx->srv, "c", "\"get_count\"", "0");
    H_PASS(fx);
}

static void test_journal_first_entry_in_the_state(void **state)
{
    h_fixture_t *fx = *state;

    start(&fx->srv, "j", "lua_journal", NULL);
    state_is(&fx->srv, "j", "[]"); /* an empty list, not {} */
    call_is(&fx->srv, "j", "\"entries\"", "[]");
    cast(&fx->srv, "j", "[\"add_entry\", \"first entry\"]");
    state_is(&fx->srv, "j", "[\"first entry\"]");
    cast(&fx->srv, "j", "[\"add_entry\", {\"mood\": \"fine\", \"tags\": []}]");
    call_is(&fx->srv, "j", "\"entries\"", "[{\"mood\": \"fine\", \"tags\": []}, \"first entry\"]");
    assert_int_equal(h_server_int(&fx->srv, "j", "restarts", false), 0);
    H_PASS(fx);
}

/* Two callers sleep at once in the same server: the one that asked for less is answered
 * first, while the other still sleeps (in the seed lesson it would wait for the first). */
static void test_slow_server_defers_its_reply_and_holds_up_nobody(void **state)
{
    h_fixture_t *fx = *state;
    const char *long_sleep = "{\"server\": \"s\", \"message\": [\"sleep\", 3000]}";
    const char *lesson_sleep = "{\"server\": \"s\", \"message\": \"sleep\"}";
    h_req_t first = {.method = "POST", .path = "/call", .body = long_sleep};
    h_req_t second = {.method = "POST", .path = "/call", .body = lesson_sleep};
    h_async_t *a, *b;
    h_resp_t *ra, *rb;

    start(&fx->srv, "s", "lua_slow_server", NULL);
    a = h_async_start(&fx->srv, &first);
    assert_non_null(a);
    H_WAIT_UNTIL(h_server_int(&fx->srv, "s", "held_calls", false) == 1, WAIT_MS);
    b = h_async_start(&fx->srv, &second);
    assert_non_null(b);
    rb = h_async_wait(b);
    assert_false(h_async_done(a)); /* the first still sleeps */
    h_assert_reply(rb, "\"response!\"");
    assert_true(rb->t_end_ms - rb->t_start_ms >= 950); /* the lesson's 1000 ms */
    ra = h_async_wait(a);
    h_assert_reply(ra, "\"response!\"");
    assert_true(ra->t_end_ms - ra->t_start_ms >= 2950);
    assert_true(ra->t_end_ms >= rb->t_end_ms);
    h_async_destroy(a);
    h_async_destroy(b);
    assert_int_equal(h_server_int(&fx->srv, "s", "held_calls", false), 0);
    assert_int_equal(h_server_int(&fx->srv, "s", "restarts", false), 0);
    H_PASS(fx);
}

static bool received_is(const h_server_t *srv, const char *name, int64_t n)
{
    return h_server_int(srv, name, "received", true) == n;
}

static void test_receiver_gets_plain_messages_in_handle_info(void **state)
{
    h_fixture_t *fx = *state;
    h_resp_t r;

    start(&fx->srv, "r", "lua_receiver", NULL);
    state_is(&fx->srv, "r", "{\"received\": 0, \"last\": []}");
    assert_int_equal(h_deliver(&fx->srv, "/send", "r", "\"hello\""), 202);
    assert_int_equal(h_deliver(&fx->srv, "/send", "r", "[\"greeting\", \"hi\"]"), 202);
    assert_int_equal(h_deliver(&fx->srv, "/send", "r", "42"), 202);
    state_is(&fx->srv, "r", "{\"received\": 3, \"last\": [\"hello\", [\"greeting\", \"hi\"], 42]}");

    /* send_after reaches handle_info too, later. */
    h_request(&fx->srv, "POST", "/send_after",
              "{\"server\": \"r\", \"message\": \"later\", \"delay_ms\": 50}", &r);
    assert_int_equal(r.status, 202);
    h_resp_close(&r);
    H_WAIT_UNTIL(received_is(&fx->srv, "r", 4), WAIT_MS);
    for (int i = 0; i < 8; i++)
        assert_int_equal(h_deliver(&fx->srv, "/send", "r", "0"), 202);
    state_is(&fx->srv, "r",
             "{\"received\": 12, \"last\": [42, \"later\", 0, 0, 0, 0, 0, 0, 0, 0]}");

    /* It has no handle_call: a call crashes it as OTP's default does. */
    h_call(&fx->srv, "r", "\"received\"", -1, &r);
    h_assert_error(&r, 500, "server_crashed");
    assert_true(json_is(json_object_get(r.json, "reason"), "[\"bad_call\", \"received\"]"));
    h_resp_close(&r);
    H_WAIT_UNTIL(h_server_int(&fx->srv, "r", "restarts", false) == 1, WAIT_MS);
    state_is(&fx->srv, "r", "{\"received\": 0, \"last\": []}");
    H_PASS(fx);
}

/* Both counters move by themselves, each at its own pace: the decrementing one, started
 * first and ticking every 500 ms, is at -3 or below once the incrementing one (every 1000 ms)
 * reaches 2. The first tick of each comes no sooner than its interval. */
static void test_incrementing_and_decrementing_counters_tick(void **state)
{
    h_fixture_t *fx = *state;
    int64_t t0, up, down;

    t0 = h_now_ms();
    start(&fx->srv, "down", "lua_decrementing_counter", "0");
    start(&fx->srv, "up", "lua_incrementing_counter", "0");
    H_WAIT_UNTIL(state_int(&fx->srv, "down") <= -1, WAIT_MS);
    assert_true(h_now_ms() - t0 >= 450);
    H_WAIT_UNTIL(state_int(&fx->srv, "up") >= 1, WAIT_MS);
    assert_true(h_now_ms() - t0 >= 950);
    H_WAIT_UNTIL((up = state_int(&fx->srv, "up")) >= 2, WAIT_MS);
    down = state_int(&fx->srv, "down");
    if (down > -3)
        fail_msg("down is %lld when up is %lld", (long long)down, (long long)up);
    assert_int_equal(h_server_int(&fx->srv, "up", "restarts", false), 0);
    assert_int_equal(h_server_int(&fx->srv, "down", "restarts", false), 0);
    H_PASS(fx);
}

static void test_misbehaving_calling_self_crashes_and_restarts(void **state)
{
    h_fixture_t *fx = *state;
    json_t *info;
    h_resp_t r;
    char *reason;

    start(&fx->srv, "m", "lua_misbehaving_gen_server", NULL);
    h_call(&fx->srv, "m", "\"message\"", -1, &r);
    h_assert_error(&r, 500, "server_crashed");
    reason = json_dumps(json_object_get(r.json, "reason"), JSON_ENCODE_ANY | JSON_COMPACT);
    assert_non_null(reason);
    if (strstr(reason, "calling_self") == NULL)
        fail_msg("reason %s has no calling_self", reason);
    free(reason);
    h_resp_close(&r);

    H_WAIT_UNTIL(h_server_int(&fx->srv, "m", "restarts", false) == 1, WAIT_MS);
    info = h_server_info(&fx->srv, "m");
    assert_non_null(info);
    assert_string_equal(h_str(info, "status"), "running");
    reason = json_dumps(json_object_get(info, "last_crash_reason"), JSON_ENCODE_ANY);
    assert_non_null(reason);
    assert_non_null(strstr(reason, "calling_self"));
    free(reason);
    json_decref(info);
    call_is(&fx->srv, "m", "\"ping\"", "\"pong\"");
    H_PASS(fx);
}

/* ---------------------------------------------------------------------------------------- */
/* Blocky                                                                                     */
/* ---------------------------------------------------------------------------------------- */

/* How many batches the consumer has recorded (its state's "batches"). */
static size_t batches(const h_server_t *srv, const char *consumer)
{
    json_t *st = state_of(srv, consumer);
    size_t n = json_array_size(json_object_get(st, "batches"));

    json_decref(st);
    return n;
}

/* Ten producers, then their consumer: until it starts they retry, so every producer has its
 * first number in the first batch. */
static void start_blocky(const h_server_t *srv, const char *consumer, const char *consumer_args)
{
    for (int i = 1; i <= 10; i++) {
        char name[16], args[96];

        snprintf(name, sizeof(name), "producer_%d", i);
        snprintf(args, sizeof(args), "{\"id\": %d, \"consumer\": \"%s\"}", i, consumer);
        start(srv, name, "lua_blocky_producer", args);
    }
    start(srv, consumer, "lua_blocky_consumer", consumer_args);
}

/* With deferred replies every batch is exactly ten numbers, and as every producer pushes 1,
 * then 2, then 3, the sums are 10, 20, 30, as in the article's output. */
static void test_blocky_ten_producers_make_batches_of_exactly_ten(void **state)
{
    h_fixture_t *fx = *state;
    json_t *st, *b;
    size_t i;

    start_blocky(&fx->srv, "consumer", NULL);
    H_WAIT_UNTIL(batches(&fx->srv, "consumer") >= 3, WAIT_MS);
    st = state_of(&fx->srv, "consumer");
    assert_true(json_is(json_object_get(st, "interval_ms"), "1000"));
    json_array_foreach(json_object_get(st, "batches"), i, b)
    {
        char want[64];

        snprintf(want, sizeof(want), "{\"size\": 10, \"sum\": %zu}", 10 * (i + 1));
        if (!json_is(b, want)) {
            char *all = json_dumps(st, JSON_COMPACT);
            fail_msg("batch %zu is not %s: %s", i + 1, want, all);
        }
    }
    json_decref(st);
    for (int p = 1; p <= 10; p++) {
        char name[16];

        snprintf(name, sizeof(name), "producer_%d", p);
        assert_true(h_server_int(&fx->srv, name, "number", true) >= 4);
        assert_int_equal(h_server_int(&fx->srv, name, "restarts", false), 0);
    }
    H_PASS(fx);
}

/* With immediate replies nothing holds a producer back: batches are far larger than ten. */
static void test_blocky_immediate_replies_make_huge_batches(void **state)
{
    h_fixture_t *fx = *state;
    json_int_t largest = 0;
    json_t *st, *b;
    size_t i;

    start_blocky(&fx->srv, "fast", "{\"reply_immediately\": true}");
    H_WAIT_UNTIL(batches(&fx->srv, "fast") >= 2, WAIT_MS);
    st = state_of(&fx->srv, "fast");
    json_array_foreach(json_object_get(st, "batches"), i, b)
    {
        json_int_t size = json_integer_value(json_object_get(b, "size"));

        if (size > largest)
            largest = size;
    }
    if (largest < 100) {
        char *all = json_dumps(st, JSON_COMPACT);
        fail_msg("no batch of 100 or more: %s", all);
    }
    json_decref(st);
    assert_int_equal(h_server_int(&fx->srv, "fast", "restarts", false), 0);
    H_PASS(fx);
}

/* ---------------------------------------------------------------------------------------- */
/* kv                                                                                         */
/* ---------------------------------------------------------------------------------------- */

static bool key_gone(const h_server_t *srv, const char *server, const char *key)
{
    char msg[128];
    const char *reply;
    h_resp_t r;
    bool gone;

    snprintf(msg, sizeof(msg), "[\"get\", \"%s\"]", key);
    h_call(srv, server, msg, -1, &r);
    reply = h_str(r.json, "reply");
    gone = r.status == 200 && reply != NULL && strcmp(reply, "not_found") == 0;
    h_resp_close(&r);
    return gone;
}

/* test_plugin.c's scenario, on the Lua store. */
static void test_kv_stores_expires_and_refuses_like_the_plugin(void **state)
{
    h_fixture_t *fx = *state;
    json_t *st;
    h_resp_t r;

    start(&fx->srv, "cache", "lua_kv", "{\"max_keys\": 10}");
    call_is(&fx->srv, "cache", "[\"put\", \"greeting\", \"hello\"]", "\"ok\"");
    call_is(&fx->srv, "cache", "[\"get\", \"greeting\"]", "[\"ok\", \"hello\"]");
    call_is(&fx->srv, "cache", "[\"get\", \"nothing\"]", "\"not_found\"");
    call_is(&fx->srv, "cache", "[\"ttl\", \"greeting\"]", "[\"ok\", null]");

    /* A cast and a TTL: the key written with a 300 ms TTL disappears by itself. */
    cast(&fx->srv, "cache", "[\"put\", \"brief\", 1, 300]");
    call_is(&fx->srv, "cache", "\"size\"", "2");
    call_is(&fx->srv, "cache", "\"keys\"", "[\"brief\", \"greeting\"]");
    H_WAIT_UNTIL(key_gone(&fx->srv, "cache", "brief"), WAIT_MS);
    st = state_of(&fx->srv, "cache");
    assert_true(json_is(st,
                        "{\"size\": 1, \"bytes\": 78, \"max_keys\": 10, \"max_bytes\": 8388608, "
                        "\"entries\": {\"greeting\": {\"value\": \"hello\", \"ttl_ms\": null}}}"));
    json_decref(st);

    /* Malformed messages are answered, not crashes. */
    call_is(&fx->srv, "cache", "[\"put\"]", "[\"error\", \"bad_request\"]");
    call_is(&fx->srv, "cache", "[\"put\", \"k\", 1, 1.5]", "[\"error\", \"bad_request\"]");
    call_is(&fx->srv, "cache", "\"what\"", "[\"error\", \"bad_request\"]");
    cast(&fx->srv, "cache", "\"what\"");
    assert_int_equal(h_deliver(&fx->srv, "/send", "cache", "[\"expire\", \"greeting\", 1.5]"), 202);
    call_is(&fx->srv, "cache", "[\"delete\", \"greeting\"]", "\"ok\"");
    call_is(&fx->srv, "cache", "\"keys\"", "[]");
    assert_int_equal(h_server_int(&fx->srv, "cache", "restarts", false), 0);

    /* Full, and init args checked as the plugin checks them. */
    start(&fx->srv, "small", "lua_kv", "{\"max_keys\": 2}");
    call_is(&fx->srv, "small", "[\"put\", \"a\", 1]", "\"ok\"");
    call_is(&fx->srv, "small", "[\"put\", \"b\", 2]", "\"ok\"");
    call_is(&fx->srv, "small", "[\"put\", \"c\", 3]", "[\"error\", \"full\"]");
    call_is(&fx->srv, "small", "[\"put\", \"a\", 10]", "\"ok\""); /* an overwrite fits */
    h_request(&fx->srv, "POST", "/servers",
              "{\"name\": \"bad\", \"behaviour\": \"lua_kv\", \"args\": {\"max_kes\": 2}}", &r);
    h_assert_error(&r, 400, "init_failed");
    assert_true(json_is(json_object_get(r.json, "reason"),
                        "[\"bad_args\", \"unknown key \\\"max_kes\\\"\"]"));
    h_resp_close(&r);
    H_PASS(fx);
}

#ifdef GS_EXAMPLE_PLUGIN
/* The same messages to the C plugin's kv and to lua_kv get the same replies and leave the
 * same state (times aside: a TTL's milliseconds left are compared by their kind only). Keys are
 * added in alphabetical order, since "keys" lists them sorted in Lua and in insertion order in
 * C. */
static void test_kv_answers_exactly_as_the_c_plugin(void **state)
{
    h_fixture_t *fx = *state;
    char big[1200];
    static const char *const calls[] = {
        "[\"put\", \"a\", \"hello\"]",
        "[\"put\", \"b\", {\"x\": [1, 2.5, null, true], \"y\": {}}]",
        "[\"put\", \"c\", [], 60000]",
        "[\"get\", \"a\"]",
        "[\"get\", \"b\"]",
        "[\"put\", \"b\", \"shorter\"]",
        "[\"get\", \"b\"]",
        "[\"get\", \"c\"]",
        "[\"get\", \"nothing\"]",
        "[\"ttl\", \"a\"]",
        "[\"ttl\", \"nothing\"]",
        "\"size\"",
        "[\"put\", \"e\", \"x\", -1]",
        "[\"put\", \"e\", \"x\", 2147483648]",
        "[\"put\", 1, 2]",
        "[\"put\", \"e\", \"x\", 1, 2]",
        "[\"get\"]",
        "[\"get\", 7]",
        "[\"get\", \"a\", \"b\"]",
        "[\"delete\", \"nothing\"]",
        "\"nothing\"",
        "{\"put\": 1}",
        "null",
        "[\"put\", \"f\", \"123456789012345678901234567890\"]",
        "[\"put\", \"g\", [[\"nested\"], {\"deep\": [{}]}]]",
        "[\"put\", \"h\", 1]", /* a sixth key: full */
        "[\"put\", \"a\", \"overwritten\"]",
        "\"keys\"",
        "[\"delete\", \"g\"]",
        "\"size\"",
        "[\"put\", \"d\", 1, 0]", /* expires at once */
        "big",                    /* past max_bytes: full */
    };
    json_t *sc, *sl;

    snprintf(big, sizeof(big), "[\"put\", \"big\", \"%01000d\"]", 0);
    start(&fx->srv, "c_kv", "kv", "{\"max_keys\": 5, \"max_bytes\": 1024}");
    start(&fx->srv, "lua_kv", "lua_kv", "{\"max_keys\": 5, \"max_bytes\": 1024}");
    for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
        const char *msg = strcmp(calls[i], "big") == 0 ? big : calls[i];
        h_resp_t rc, rl;

        h_call(&fx->srv, "c_kv", msg, -1, &rc);
        h_call(&fx->srv, "lua_kv", msg, -1, &rl);
        assert_int_equal(rc.status, 200);
        if (rl.status != 200 || !h_json_equal(rc.json, rl.json))
            fail_msg("%s: the plugin answers %s, lua_kv %s", msg, rc.body, rl.body);
        h_resp_close(&rc);
        h_resp_close(&rl);
    }
    call_is(&fx->srv, "lua_kv", big, "[\"error\", \"full\"]");
    /* "d" had a TTL of 0: both expire it. */
    H_WAIT_UNTIL(key_gone(&fx->srv, "c_kv", "d") && key_gone(&fx->srv, "lua_kv", "d"), WAIT_MS);
    sc = state_of(&fx->srv, "c_kv");
    sl = state_of(&fx->srv, "lua_kv");
    assert_non_null(sc);
    assert_non_null(sl);
    /* c's TTL is the milliseconds left, in both; the rest is identical. */
    assert_true(json_is_integer(
        json_object_get(json_object_get(json_object_get(sl, "entries"), "c"), "ttl_ms")));
    json_object_del(json_object_get(json_object_get(sc, "entries"), "c"), "ttl_ms");
    json_object_del(json_object_get(json_object_get(sl, "entries"), "c"), "ttl_ms");
    if (!h_json_equal(sc, sl))
        fail_msg("the states differ");
    json_decref(sc);
    json_decref(sl);
    H_PASS(fx);
}
#endif

/* ---------------------------------------------------------------------------------------- */
/* Hot upgrade, and uploading over HTTP                                                       */
/* ---------------------------------------------------------------------------------------- */

/* PUT /behaviours/lua_counter with the body source (raw), answered into *r. */
static void put_counter(const h_server_t *srv, const char *source, size_t len, h_resp_t *r)
{
    h_req_t req = {.method = "PUT",
                   .path = "/behaviours/lua_counter",
                   .body = source,
                   .body_len = len,
                   .content_type = "text/x-lua"};

    h_request_ex(srv, &req, r);
}

/* upgrades/lua_counter_v2.lua while servers run: the integer state becomes {"count",
 * "history"}; the server whose code_change refuses keeps its code and state; a source that
 * does not compile changes nothing. */
static void test_hot_upgrade_reshapes_the_counters_state(void **state)
{
    h_fixture_t *fx = *state;
    size_t len;
    char *v2 = example_source("upgrades/lua_counter_v2.lua", &len);
    json_t *b;
    h_resp_t r;

    start(&fx->srv, "c1", "lua_counter", "0");
    start(&fx->srv, "odd", "lua_counter", "\"ten\"");
    for (int i = 0; i < 3; i++)
        cast(&fx->srv, "c1", "\"increment\"");
    call_is(&fx->srv, "c1", "\"get_count\"", "3");

    put_counter(&fx->srv, v2, len, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(h_str(r.json, "vsn"), "2"); /* the chunk's own */
    assert_true(json_is(json_object_get(r.json, "upgraded"), "1"));
    assert_true(json_is(json_object_get(r.json, "failed"), "1"));
    assert_true(json_is(json_object_get(r.json, "outcomes"),
                        "[{\"server\": \"c1\", \"ok\": true}, "
                        "{\"server\": \"odd\", \"error\": [\"not_a_count\", \"ten\"]}]"));
    h_resp_close(&r);

    /* c1 runs version 2, with its count carried over into the new shape. */
    state_is(&fx->srv, "c1", "{\"count\": 3, \"history\": [[\"upgraded\", \"1\", 3]]}");
    cast(&fx->srv, "c1", "\"increment\"");
    call_is(&fx->srv, "c1", "\"get_count\"", "4");
    call_is(&fx->srv, "c1", "\"history\"", "[[\"upgraded\", \"1\", 3], [\"increment\", 4]]");
    /* odd kept version 1 and its state. */
    state_is(&fx->srv, "odd", "\"ten\"");
    call_is(&fx->srv, "odd", "\"get_count\"", "\"ten\"");
    /* A new server runs version 2. */
    start(&fx->srv, "c2", "lua_counter", "5");
    state_is(&fx->srv, "c2", "{\"count\": 5, \"history\": []}");
    assert_int_equal(h_server_int(&fx->srv, "c1", "restarts", false), 0);

    /* A source that does not compile: 400 with Lua's message and line, nothing changed. */
    put_counter(&fx->srv, "return {", 0, &r);
    h_assert_error(&r, 400, "bad_request");
    assert_non_null(strstr(h_str(r.json, "message"), "lua_counter:1:"));
    h_resp_close(&r);
    b = listed(&fx->srv, "lua_counter");
    assert_non_null(b);
    assert_string_equal(h_str(b, "vsn"), "2");
    json_decref(b);
    state_is(&fx->srv, "c1",
             "{\"count\": 4, \"history\": [[\"upgraded\", \"1\", 3], "
             "[\"increment\", 4]]}");
    call_is(&fx->srv, "c1", "\"get_count\"", "4");
    call_is(&fx->srv, "odd", "\"get_count\"", "\"ten\"");
    free(v2);
    H_PASS(fx);
}

/* Without --behaviours-dir: an example sent as the raw body of POST /behaviours, named in the
 * query string, then started and played like the rest. */
static void test_an_example_uploaded_with_post_behaviours(void **state)
{
    h_fixture_t *fx = *state;
    size_t len;
    char *src = example_source("lua_journal.lua", &len);
    h_req_t req = {.method = "POST",
                   .path = "/behaviours?name=lua_journal",
                   .body = src,
                   .body_len = len,
                   .content_type = "application/x-www-form-urlencoded"}; /* as curl sends it */
    h_resp_t r;

    assert_null(listed(&fx->srv, "lua_journal"));
    h_request_ex(&fx->srv, &req, &r);
    assert_int_equal(r.status, 201);
    assert_string_equal(h_str(r.json, "name"), "lua_journal");
    assert_string_equal(h_str(r.json, "kind"), "lua");
    assert_string_equal(h_str(r.json, "vsn"), "1");
    h_resp_close(&r);

    start(&fx->srv, "j", "lua_journal", NULL);
    cast(&fx->srv, "j", "[\"add_entry\", \"first entry\"]");
    state_is(&fx->srv, "j", "[\"first entry\"]");

    /* GET /behaviours/NAME gives back the very source and the servers running it. */
    h_request(&fx->srv, "GET", "/behaviours/lua_journal", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(h_str(r.json, "source"), src);
    assert_true(json_is(json_object_get(r.json, "servers"), "[\"j\"]"));
    h_resp_close(&r);
    free(src);
    H_PASS(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_every_example_loads_from_the_folder, setup_examples,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_counter_three_casts_then_get_count_is_3,
                                        setup_examples, h_teardown),
        cmocka_unit_test_setup_teardown(test_journal_first_entry_in_the_state, setup_examples,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_slow_server_defers_its_reply_and_holds_up_nobody,
                                        setup_examples, h_teardown),
        cmocka_unit_test_setup_teardown(test_receiver_gets_plain_messages_in_handle_info,
                                        setup_examples, h_teardown),
        cmocka_unit_test_setup_teardown(test_incrementing_and_decrementing_counters_tick,
                                        setup_examples, h_teardown),
        cmocka_unit_test_setup_teardown(test_misbehaving_calling_self_crashes_and_restarts,
                                        setup_examples, h_teardown),
        cmocka_unit_test_setup_teardown(test_blocky_ten_producers_make_batches_of_exactly_ten,
                                        setup_examples, h_teardown),
        cmocka_unit_test_setup_teardown(test_blocky_immediate_replies_make_huge_batches,
                                        setup_examples, h_teardown),
        cmocka_unit_test_setup_teardown(test_kv_stores_expires_and_refuses_like_the_plugin,
                                        setup_examples, h_teardown),
#ifdef GS_EXAMPLE_PLUGIN
        cmocka_unit_test_setup_teardown(test_kv_answers_exactly_as_the_c_plugin,
                                        setup_examples_and_plugin, h_teardown),
#endif
        cmocka_unit_test_setup_teardown(test_hot_upgrade_reshapes_the_counters_state,
                                        setup_examples, h_teardown),
        cmocka_unit_test_setup_teardown(test_an_example_uploaded_with_post_behaviours, h_setup,
                                        h_teardown),
    };

    h_init(170);
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else /* !GS_EXAMPLE_BEHAVIOURS */

static void test_lua_examples_not_configured(void **state)
{
    (void)state;
    skip();
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_lua_examples_not_configured)};

    return cmocka_run_group_tests(tests, NULL, NULL);
}

#endif
