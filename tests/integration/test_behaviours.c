/*
 * test_behaviours.c: behaviours sent as Lua source over HTTP, against the real binary.
 *
 * POST /behaviours (JSON or the raw source), GET /behaviours[/NAME], PUT /behaviours/NAME (a
 * hot upgrade with each server's outcome), DELETE /behaviours/NAME, POST /servers with a Lua
 * behaviour and its limits, init's "ignore", the crash reasons a Lua server's caller sees,
 * and --behaviours-dir at boot. What the behaviours themselves do (the Elixir lessons) is
 * test_lua_examples.c's; the Lua host's own rules are tests/unit/test_lua*.c's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

/* A counter whose replies say which code answered ({"v1", n}); casts add their number, and
 * "loop" spins forever (for the instruction budget), "grow" keeps what it is sent. */
static const char tally_v1[] = "-- tally, version 1\n"
                               "return {\n"
                               "  vsn = '1',\n"
                               "  init = function(args) return {'ok', 0} end,\n"
                               "  handle_cast = function(msg, n)\n"
                               "    if type(msg) == 'number' then return {'noreply', n + msg} end\n"
                               "    return {'noreply', n}\n"
                               "  end,\n"
                               "  handle_call = function(msg, from, n)\n"
                               "    if msg == 'loop' then while true do end end\n"
                               "    if msg == 'fail' then error('asked to fail') end\n"
                               "    return {'reply', {'v1', n}, n}\n"
                               "  end,\n"
                               "}\n";

/* Version 2: the state becomes an object; code_change refuses states above 5 and raises on 4. */
static const char tally_v2[] =
    "return {\n"
    "  vsn = '2',\n"
    "  init = function(args) return {'ok', {n = 0}} end,\n"
    "  handle_cast = function(msg, s)\n"
    "    if type(msg) == 'number' then s.n = s.n + msg end\n"
    "    return {'noreply', s}\n"
    "  end,\n"
    "  handle_call = function(msg, from, s) return {'reply', {'v2', s.n}, s} end,\n"
    "  code_change = function(old_vsn, n, extra)\n"
    "    if n == 4 then error('four is unlucky') end\n"
    "    if n > 5 then return {'error', 'too_big'} end\n"
    "    return {'ok', {n = n, was = old_vsn, extra = extra}}\n"
    "  end,\n"
    "}\n";

/* Whether got (borrowed, may be NULL) equals the JSON text want. */
static bool json_is(const json_t *got, const char *want)
{
    json_t *w = h_json(want);
    bool equal = got != NULL && h_json_equal(got, w);
    if (!equal) {
        char *g = got != NULL ? json_dumps(got, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
        fprintf(stderr, "got %s, want %s\n", g != NULL ? g : "NULL", want);
        free(g);
    }
    json_decref(w);
    return equal;
}

/* POST /behaviours {"name", "vsn"?, "source"} as JSON. Fills *r. */
static void post_code(const h_server_t *srv, const char *name, const char *vsn, const char *source,
                      h_resp_t *r)
{
    json_t *body = json_pack("{s:s,s:s}", "name", name, "source", source);
    if (vsn != NULL)
        json_object_set_new(body, "vsn", json_string(vsn));
    char *text = json_dumps(body, JSON_COMPACT);
    h_request(srv, "POST", "/behaviours", text, r);
    free(text);
    json_decref(body);
}

/* PUT /behaviours/NAME {"vsn", "source", "extra"} (extra as JSON text, may be NULL). */
static void put_code(const h_server_t *srv, const char *name, const char *vsn, const char *source,
                     const char *extra, h_resp_t *r)
{
    json_t *body = json_pack("{s:s,s:s}", "vsn", vsn, "source", source);
    if (extra != NULL)
        json_object_set_new(body, "extra", h_json(extra));
    char *text = json_dumps(body, JSON_COMPACT);
    char path[300];
    snprintf(path, sizeof(path), "/behaviours/%s", name);
    h_request(srv, "PUT", path, text, r);
    free(text);
    json_decref(body);
}

static void load_tally(const h_server_t *srv)
{
    h_resp_t r;
    post_code(srv, "tally", NULL, tally_v1, &r);
    if (r.status != 201)
        fail_msg("POST /behaviours: %ld %s", r.status, r.body);
    h_resp_close(&r);
}

static void start(const h_server_t *srv, const char *name, const char *behaviour)
{
    long status = h_start_server(srv, name, behaviour, NULL, NULL);
    if (status != 201)
        fail_msg("POST /servers %s (%s): %ld", name, behaviour, status);
}

/* The reply of a call, asserted to be exactly want (JSON text). */
static void call_is(const h_server_t *srv, const char *server, const char *msg, const char *want)
{
    h_resp_t r;
    h_call(srv, server, msg, -1, &r);
    h_assert_reply(&r, want);
    h_resp_close(&r);
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
/* Loading                                                                                    */
/* ---------------------------------------------------------------------------------------- */

static void test_posted_source_is_started_and_called(void **state)
{
    h_fixture_t *fx = *state;
    h_resp_t r;

    post_code(&fx->srv, "tally", "1.0.0", tally_v1, &r);
    assert_int_equal(r.status, 201);
    assert_string_equal(h_str(r.json, "name"), "tally");
    assert_string_equal(h_str(r.json, "kind"), "lua");
    assert_string_equal(h_str(r.json, "vsn"), "1.0.0"); /* the request's vsn wins */
    assert_null(json_object_get(r.json, "source"));     /* the client has it already */
    assert_int_equal(json_array_size(json_object_get(r.json, "servers")), 0);
    h_resp_close(&r);

    json_t *entry = listed(&fx->srv, "tally");
    assert_non_null(entry);
    assert_string_equal(h_str(entry, "kind"), "lua");
    assert_string_equal(h_str(entry, "vsn"), "1.0.0");
    json_decref(entry);

    start(&fx->srv, "t1", "tally");
    for (int i = 1; i <= 3; i++)
        assert_int_equal(h_deliver(&fx->srv, "/cast", "t1", "1"), 202);
    call_is(&fx->srv, "t1", "\"get\"", "[\"v1\", 3]");
    assert_int_equal(h_server_int(&fx->srv, "t1", "restarts", false), 0);
    H_PASS(fx);
}

static void test_raw_source_with_its_name_in_the_query(void **state)
{
    h_fixture_t *fx = *state;
    h_resp_t r;
    h_req_t req = {.method = "POST",
                   .path = "/behaviours?name=raw_tally&vsn=7",
                   .body = tally_v1,
                   .content_type = "text/x-lua"};

    h_request_ex(&fx->srv, &req, &r);
    assert_int_equal(r.status, 201);
    assert_string_equal(h_str(r.json, "vsn"), "7");
    h_resp_close(&r);
    start(&fx->srv, "rt", "raw_tally");
    call_is(&fx->srv, "rt", "\"get\"", "[\"v1\", 0]");

    /* curl --data-binary sends form-urlencoded: the body is still the source. */
    req.path = "/behaviours?name=raw_form";
    req.content_type = "application/x-www-form-urlencoded";
    h_request_ex(&fx->srv, &req, &r);
    assert_int_equal(r.status, 201);
    h_resp_close(&r);

    /* Without its name it is refused, and says where the name goes. */
    req.path = "/behaviours";
    h_request_ex(&fx->srv, &req, &r);
    h_assert_error(&r, 400, "bad_request");
    assert_non_null(strstr(h_str(r.json, "message"), "\"name\""));
    h_resp_close(&r);
    H_PASS(fx);
}

static void test_source_that_does_not_load_is_400_with_luas_message(void **state)
{
    h_fixture_t *fx = *state;
    static const struct {
        const char *source, *says;
    } cases[] = {
        /* Lua's own syntax error, with the chunk's name and the line. */
        {"return {\n  init = function(a)\n    return {'ok', 0 end\n}\n", "broken:3:"},
        /* An error raised while the chunk runs. */
        {"local x = 1\nerror('not today')\nreturn {}\n", "not today"},
        /* A chunk that returns no table of callbacks. */
        {"return 42\n", "table"},
        {"return {vsn = '1'}\n", "none of"},
        /* A precompiled (binary) chunk is never loaded. */
        {"\x1bLua\x54\x00\x19\x93\r\n\x1a\n", "binary"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        h_resp_t r;
        post_code(&fx->srv, "broken", NULL, cases[i].source, &r);
        h_assert_error(&r, 400, "bad_request");
        if (strstr(h_str(r.json, "message"), cases[i].says) == NULL)
            fail_msg("case %zu: message %s lacks \"%s\"", i, h_str(r.json, "message"),
                     cases[i].says);
        h_resp_close(&r);
    }
    /* Nothing was registered. */
    assert_null(listed(&fx->srv, "broken"));
    H_PASS(fx);
}

static void test_a_taken_name_is_409(void **state)
{
    h_fixture_t *fx = *state;
    h_resp_t r;

    /* A built-in's name. */
    post_code(&fx->srv, "counter", NULL, tally_v1, &r);
    h_assert_error(&r, 409, "already_registered");
    assert_non_null(strstr(h_str(r.json, "message"), "builtin"));
    h_resp_close(&r);
    call_is(&fx->srv, "counter", "\"get_count\"", "0"); /* the built-in is untouched */

    /* A Lua behaviour's name: PUT is the way to replace it. */
    load_tally(&fx->srv);
    post_code(&fx->srv, "tally", NULL, tally_v2, &r);
    h_assert_error(&r, 409, "already_registered");
    assert_non_null(strstr(h_str(r.json, "message"), "PUT /behaviours/tally"));
    h_resp_close(&r);
    H_PASS(fx);
}

static void test_get_one_behaviour(void **state)
{
    h_fixture_t *fx = *state;
    h_resp_t r;

    load_tally(&fx->srv);
    start(&fx->srv, "t2", "tally");
    start(&fx->srv, "t1", "tally");
    h_request(&fx->srv, "GET", "/behaviours/tally", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(h_str(r.json, "kind"), "lua");
    assert_string_equal(h_str(r.json, "vsn"), "1"); /* from the chunk's table */
    assert_string_equal(h_str(r.json, "source"), tally_v1);
    assert_true(json_is(json_object_get(r.json, "servers"), "[\"t1\", \"t2\"]"));
    assert_non_null(json_object_get(json_object_get(r.json, "limits"), "memory_bytes"));
    assert_non_null(h_str(r.json, "loaded_at"));
    h_resp_close(&r);

    /* A built-in: its entry and its servers, no source. */
    h_request(&fx->srv, "GET", "/behaviours/counter", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(h_str(r.json, "kind"), "builtin");
    assert_null(json_object_get(r.json, "source"));
    assert_true(json_is(json_object_get(r.json, "servers"), "[\"counter\"]"));
    h_resp_close(&r);

    h_request(&fx->srv, "GET", "/behaviours/nope", NULL, &r);
    h_assert_error(&r, 404, "no_such_behaviour");
    h_resp_close(&r);
    H_PASS(fx);
}

/* ---------------------------------------------------------------------------------------- */
/* Upgrading                                                                                  */
/* ---------------------------------------------------------------------------------------- */

/* The outcome of server in a PUT's answer (borrowed from r), or NULL. */
static json_t *outcome(const h_resp_t *r, const char *server)
{
    json_t *o;
    size_t i;
    json_array_foreach(json_object_get(r->json, "outcomes"), i, o)
    {
        if (strcmp(h_str(o, "server"), server) == 0)
            return o;
    }
    return NULL;
}

static void test_put_upgrades_running_servers(void **state)
{
    h_fixture_t *fx = *state;
    h_resp_t r;

    load_tally(&fx->srv);
    start(&fx->srv, "b", "tally");
    start(&fx->srv, "a", "tally");
    assert_int_equal(h_deliver(&fx->srv, "/cast", "a", "2"), 202);
    call_is(&fx->srv, "a", "\"get\"", "[\"v1\", 2]"); /* the cast is in */

    put_code(&fx->srv, "tally", "2", tally_v2, "{\"by\": \"test\"}", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "upgraded")), 2);
    assert_int_equal(json_integer_value(json_object_get(r.json, "failed")), 0);
    assert_string_equal(h_str(r.json, "vsn"), "2");
    /* One outcome per server, sorted by name. */
    assert_true(json_is(json_object_get(r.json, "outcomes"),
                        "[{\"server\": \"a\", \"ok\": true},"
                        " {\"server\": \"b\", \"ok\": true}]"));
    h_resp_close(&r);

    /* The new code answers, with the state code_change made of the old one. */
    call_is(&fx->srv, "a", "\"get\"", "[\"v2\", 2]");
    json_t *info = h_server_info(&fx->srv, "a");
    assert_true(json_is(json_object_get(info, "state"),
                        "{\"n\": 2, \"was\": \"1\", \"extra\": {\"by\": \"test\"}}"));
    json_decref(info);
    assert_int_equal(h_server_int(&fx->srv, "a", "restarts", false), 0);

    /* New starts run it too, and the listing says so. */
    start(&fx->srv, "c", "tally");
    call_is(&fx->srv, "c", "\"get\"", "[\"v2\", 0]");
    json_t *entry = listed(&fx->srv, "tally");
    assert_string_equal(h_str(entry, "vsn"), "2");
    json_decref(entry);
    H_PASS(fx);
}

static void test_a_failing_code_change_keeps_that_servers_code_and_state(void **state)
{
    h_fixture_t *fx = *state;
    h_resp_t r;

    load_tally(&fx->srv);
    start(&fx->srv, "ok", "tally");
    start(&fx->srv, "big", "tally");
    start(&fx->srv, "four", "tally");
    assert_int_equal(h_deliver(&fx->srv, "/cast", "big", "9"), 202);
    assert_int_equal(h_deliver(&fx->srv, "/cast", "four", "4"), 202);
    call_is(&fx->srv, "big", "\"get\"", "[\"v1\", 9]");
    call_is(&fx->srv, "four", "\"get\"", "[\"v1\", 4]");

    put_code(&fx->srv, "tally", "2", tally_v2, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "upgraded")), 1);
    assert_int_equal(json_integer_value(json_object_get(r.json, "failed")), 2);
    assert_true(json_is_true(json_object_get(outcome(&r, "ok"), "ok")));
    /* {"error", reason} from code_change: that reason. */
    assert_true(json_is(json_object_get(outcome(&r, "big"), "error"), "\"too_big\""));
    /* A code_change that raises: Lua's message. */
    char *why = json_dumps(json_object_get(outcome(&r, "four"), "error"), JSON_ENCODE_ANY);
    if (why == NULL || strstr(why, "four is unlucky") == NULL)
        fail_msg("the raising code_change's outcome: %s", why ? why : "(none)");
    free(why);
    h_resp_close(&r);

    /* Both kept their old code and their state, and run on. */
    call_is(&fx->srv, "big", "\"get\"", "[\"v1\", 9]");
    call_is(&fx->srv, "four", "\"get\"", "[\"v1\", 4]");
    call_is(&fx->srv, "ok", "\"get\"", "[\"v2\", 0]");
    assert_int_equal(h_server_int(&fx->srv, "four", "restarts", false), 0);
    /* While they run the old code, the behaviour cannot be deleted. */
    assert_int_equal(h_request(&fx->srv, "DELETE", "/behaviours/tally", NULL, &r), 0);
    h_assert_error(&r, 409, "behaviour_in_use");
    h_resp_close(&r);
    H_PASS(fx);
}

static void test_put_that_does_not_load_changes_nothing(void **state)
{
    h_fixture_t *fx = *state;
    h_resp_t r;

    load_tally(&fx->srv);
    start(&fx->srv, "t", "tally");
    put_code(&fx->srv, "tally", "2", "return {handle_call = function(", NULL, &r);
    h_assert_error(&r, 400, "bad_request");
    assert_non_null(strstr(h_str(r.json, "message"), "tally:1:"));
    h_resp_close(&r);
    call_is(&fx->srv, "t", "\"get\"", "[\"v1\", 0]");
    json_t *entry = listed(&fx->srv, "tally");
    assert_string_equal(h_str(entry, "vsn"), "1");
    json_decref(entry);

    /* The raw form: the source as the body, vsn and extra in the query string. */
    h_req_t req = {.method = "PUT",
                   .path = "/behaviours/tally?vsn=2&extra=%5B1%5D",
                   .body = tally_v2,
                   .content_type = "text/x-lua"};
    h_request_ex(&fx->srv, &req, &r);
    assert_int_equal(r.status, 200);
    h_resp_close(&r);
    json_t *info = h_server_info(&fx->srv, "t");
    assert_true(json_is(json_object_get(json_object_get(info, "state"), "extra"), "[1]"));
    json_decref(info);
    H_PASS(fx);
}

static void test_builtins_are_read_only_and_unknowns_404(void **state)
{
    h_fixture_t *fx = *state;
    h_resp_t r;

    put_code(&fx->srv, "counter", "2", tally_v2, NULL, &r);
    h_assert_error(&r, 409, "read_only_behaviour");
    h_resp_close(&r);
    h_request(&fx->srv, "DELETE", "/behaviours/counter", NULL, &r);
    h_assert_error(&r, 409, "read_only_behaviour");
    h_resp_close(&r);
    put_code(&fx->srv, "nope", "2", tally_v2, NULL, &r);
    h_assert_error(&r, 404, "no_such_behaviour");
    h_resp_close(&r);
    h_request(&fx->srv, "DELETE", "/behaviours/nope", NULL, &r);
    h_assert_error(&r, 404, "no_such_behaviour");
    h_resp_close(&r);
    call_is(&fx->srv, "counter", "\"get_count\"", "0");
    H_PASS(fx);
}

static void test_delete_waits_for_its_servers_to_stop(void **state)
{
    h_fixture_t *fx = *state;
    h_resp_t r;

    load_tally(&fx->srv);
    start(&fx->srv, "t", "tally");
    h_request(&fx->srv, "DELETE", "/behaviours/tally", NULL, &r);
    h_assert_error(&r, 409, "behaviour_in_use");
    assert_true(json_is(json_object_get(r.json, "servers"), "[\"t\"]"));
    h_resp_close(&r);

    h_request(&fx->srv, "DELETE", "/servers/t", NULL, &r);
    assert_int_equal(r.status, 200);
    h_resp_close(&r);
    h_request(&fx->srv, "DELETE", "/behaviours/tally", NULL, &r);
    assert_int_equal(r.status, 200);
    h_resp_close(&r);
    assert_null(listed(&fx->srv, "tally"));
    assert_int_equal(h_start_server(&fx->srv, "t", "tally", NULL, NULL), 404);
    /* The name is free for a new behaviour. */
    load_tally(&fx->srv);
    H_PASS(fx);
}

/* ---------------------------------------------------------------------------------------- */
/* Servers of Lua behaviours                                                                  */
/* ---------------------------------------------------------------------------------------- */

static void test_a_lua_error_crashes_the_server_with_its_line(void **state)
{
    h_fixture_t *fx = *state;
    h_resp_t r;

    load_tally(&fx->srv);
    start(&fx->srv, "t", "tally");
    h_call(&fx->srv, "t", "\"fail\"", -1, &r);
    h_assert_error(&r, 500, "server_crashed");
    char *why = json_dumps(json_object_get(r.json, "reason"), JSON_ENCODE_ANY);
    /* ["lua_error", "tally:11: asked to fail"]: the chunk's name and the line of error(). */
    if (why == NULL || strstr(why, "lua_error") == NULL || strstr(why, "tally:11:") == NULL ||
        strstr(why, "asked to fail") == NULL)
        fail_msg("reason %s", why ? why : "(none)");
    free(why);
    h_resp_close(&r);
    /* Permanent: restarted, with a fresh state. */
    call_is(&fx->srv, "t", "\"get\"", "[\"v1\", 0]");
    assert_int_equal(h_server_int(&fx->srv, "t", "restarts", false), 1);
    H_PASS(fx);
}

static void test_the_instruction_budget_crashes_a_spinning_server(void **state)
{
    h_fixture_t *fx = *state;
    h_resp_t r;
    const char *body =
        "{\"name\": \"spin\", \"behaviour\": \"tally\", \"instruction_limit\": 100000,"
        " \"restart\": \"transient\"}";

    load_tally(&fx->srv);
    h_request(&fx->srv, "POST", "/servers", body, &r);
    assert_int_equal(r.status, 201);
    h_resp_close(&r);
    h_call(&fx->srv, "spin", "\"loop\"", -1, &r);
    h_assert_error(&r, 500, "server_crashed");
    assert_true(json_is(json_object_get(r.json, "reason"), "[\"cpu_limit\", 100000]"));
    h_resp_close(&r);
    /* Transient: a crash is restarted; everything else still answers meanwhile. */
    call_is(&fx->srv, "spin", "\"get\"", "[\"v1\", 0]");
    call_is(&fx->srv, "counter", "\"get_count\"", "0");
    H_PASS(fx);
}

static void test_the_memory_limit_crashes_a_growing_server(void **state)
{
    h_fixture_t *fx = *state;
    h_resp_t r;
    static const char hoarder[] =
        "return {\n"
        "  init = function(a) return {'ok', {}} end,\n"
        "  handle_call = function(msg, from, kept)\n"
        "    for i = 1, msg do kept[#kept + 1] = string.rep('x', 1000) .. i end\n"
        "    return {'reply', #kept, kept}\n"
        "  end,\n"
        "  format_status = function(kept) return #kept end,\n"
        "}\n";

    post_code(&fx->srv, "hoarder", NULL, hoarder, &r);
    assert_int_equal(r.status, 201);
    h_resp_close(&r);
    h_request(&fx->srv, "POST", "/servers",
              "{\"name\": \"h\", \"behaviour\": \"hoarder\", \"memory_limit\": 1048576}", &r);
    assert_int_equal(r.status, 201);
    h_resp_close(&r);
    call_is(&fx->srv, "h", "10", "10");
    h_call(&fx->srv, "h", "5000", -1, &r); /* 5 MB of strings in a 1 MiB cap */
    h_assert_error(&r, 500, "server_crashed");
    assert_true(json_is(json_object_get(r.json, "reason"), "[\"memory_limit\", 1048576]"));
    h_resp_close(&r);
    call_is(&fx->srv, "h", "1", "1"); /* restarted with a fresh state */

    /* A limit above the host's maximum is refused at start; on a built-in, at all. */
    h_request(&fx->srv, "POST", "/servers",
              "{\"name\": \"h2\", \"behaviour\": \"hoarder\", \"memory_limit\": 1099511627776}",
              &r);
    assert_int_equal(r.status, 400);
    h_resp_close(&r);
    h_request(&fx->srv, "POST", "/servers",
              "{\"name\": \"c2\", \"behaviour\": \"counter\", \"memory_limit\": 1048576}", &r);
    h_assert_error(&r, 400, "bad_request");
    h_resp_close(&r);
    H_PASS(fx);
}

static void test_init_ignore_starts_nothing(void **state)
{
    h_fixture_t *fx = *state;
    h_resp_t r;

    post_code(&fx->srv, "shy", NULL, "return {init = function(a) return 'ignore' end}", &r);
    assert_int_equal(r.status, 201);
    h_resp_close(&r);
    h_request(&fx->srv, "POST", "/servers", "{\"name\": \"s\", \"behaviour\": \"shy\"}", &r);
    assert_int_equal(r.status, 200);
    assert_true(json_is_true(json_object_get(r.json, "ignored")));
    h_resp_close(&r);
    h_request(&fx->srv, "GET", "/servers/s", NULL, &r);
    h_assert_error(&r, 404, "no_such_server");
    h_resp_close(&r);
    H_PASS(fx);
}

/* ---------------------------------------------------------------------------------------- */
/* --behaviours-dir                                                                           */
/* ---------------------------------------------------------------------------------------- */

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void remove_dir(const char *dir, const char *const *files)
{
    char path[512];
    for (size_t i = 0; files[i] != NULL; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

static void test_behaviours_dir_loads_at_boot_before_the_servers(void **state)
{
    h_fixture_t *fx = *state;
    char dir[] = "/tmp/genserv-it-behaviours-XXXXXX";
    static const char *const files[] = {"tally.lua", "other.lua", "notes.txt", NULL};

    assert_non_null(mkdtemp(dir));
    write_file(dir, "tally.lua", tally_v1);
    write_file(dir, "other.lua", tally_v2);
    write_file(dir, "notes.txt", "not Lua, not loaded");
    const char *args[] = {"--behaviours-dir", dir, NULL};
    /* A boot server may run a behaviour of the folder. */
    h_opts_t opts = {.args = args,
                     .config_json = "{\"servers\": [{\"name\": \"booted\", \"behaviour\": "
                                    "\"tally\"}]}"};
    h_fixture_restart(fx, &opts);

    call_is(&fx->srv, "booted", "\"get\"", "[\"v1\", 0]");
    json_t *other = listed(&fx->srv, "other");
    assert_non_null(other);
    assert_string_equal(h_str(other, "vsn"), "2");
    json_decref(other);
    assert_null(listed(&fx->srv, "notes"));

    /* A file that does not load stops the boot, naming the file and Lua's message. */
    write_file(dir, "other.lua", "return {\n\n  init = \n");
    h_server_t bad;
    h_opts_t bad_opts = {.args = args};
    int started = h_start(&bad, &bad_opts);
    if (started == 0) {
        h_stop(&bad, H_STOP_MS);
        h_cleanup_files(&bad);
        remove_dir(dir, files);
        fail_msg("genserv started with a broken behaviours-dir file");
    }
    remove_dir(dir, files);
    H_PASS(fx);
}

int main(void)
{
    h_init(170);
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, h_setup, h_teardown)
        T(test_posted_source_is_started_and_called),
        T(test_raw_source_with_its_name_in_the_query),
        T(test_source_that_does_not_load_is_400_with_luas_message),
        T(test_a_taken_name_is_409),
        T(test_get_one_behaviour),
        T(test_put_upgrades_running_servers),
        T(test_a_failing_code_change_keeps_that_servers_code_and_state),
        T(test_put_that_does_not_load_changes_nothing),
        T(test_builtins_are_read_only_and_unknowns_404),
        T(test_delete_waits_for_its_servers_to_stop),
        T(test_a_lua_error_crashes_the_server_with_its_line),
        T(test_the_instruction_budget_crashes_a_spinning_server),
        T(test_the_memory_limit_crashes_a_growing_server),
        T(test_init_ignore_starts_nothing),
        T(test_behaviours_dir_loads_at_boot_before_the_servers),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
