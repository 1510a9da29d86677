/*
 * test_sys.c: issue 14's per-server operations over real HTTP: DELETE /servers/NAME with a
 * reason and a timeout (504 and a kill past it), POST /servers/NAME/suspend and /resume, PUT
 * /servers/NAME/state (:sys.replace_state, full-access token only), and GET /events?server=NAME
 * (one server's events only).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#define TOKEN      "s3cret-token"
#define READ_TOKEN "look-only"

/* A Lua behaviour whose cast "spin" holds its scheduler thread for ms: a slow handler. */
static const char *spin_src = "local M = {}\n"
                              "function M.init() return {'ok', {n = 0}} end\n"
                              "function M.handle_cast(msg, s)\n"
                              "  local until_ms = gs.monotonic_ms() + msg[2]\n"
                              "  while gs.monotonic_ms() < until_ms do end\n"
                              "  return {'noreply', s}\n"
                              "end\n"
                              "function M.handle_call(msg, from, s) return {'reply', s.n, s} end\n"
                              "return M\n";

static long request(const h_server_t *srv, const char *method, const char *path, const char *body,
                    const char *token, h_resp_t *r)
{
    char auth[128];
    const char *headers[2] = {NULL, NULL};
    h_req_t req = {.method = method, .path = path, .body = body, .headers = headers};

    if (token != NULL) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        headers[0] = auth;
    }
    h_request_ex(srv, &req, r);
    return r->status;
}

/* A request that must answer status with {"error": code} (code NULL: any body); returns
 * nothing, fails the test otherwise. */
static void expect(const h_server_t *srv, const char *method, const char *path, const char *body,
                   long status, const char *code)
{
    h_resp_t r;
    request(srv, method, path, body, NULL, &r);
    if (r.status != status || (code != NULL && (h_str(r.json, "error") == NULL ||
                                                strcmp(h_str(r.json, "error"), code) != 0)))
        fprintf(stderr, "%s %s %s: %ld %s\n", method, path, body ? body : "", r.status, r.body);
    assert_int_equal(r.status, status);
    if (code != NULL)
        assert_string_equal(h_str(r.json, "error"), code);
    h_resp_close(&r);
}

static bool json_is(const json_t *got, const char *want)
{
    json_t *w = h_json(want);
    bool equal = got != NULL && h_json_equal(got, w);
    json_decref(w);
    return equal;
}

static void test_delete_with_a_reason(void **state)
{
    h_fixture_t *fx = *state;
    h_server_t *srv = &fx->srv;
    h_resp_t r;

    assert_int_equal(h_start_server(srv, "c", "counter", NULL, NULL), 201);
    h_events_t *ev = h_events_open_path(srv, "/events?server=c");
    assert_non_null(ev);
    json_t *snap = h_events_wait(ev, "snapshot", NULL, H_WAIT_MS);
    assert_non_null(snap);
    json_decref(snap);

    /* Bad values are refused before anything stops. */
    expect(srv, "DELETE", "/servers/c", "{\"timeout_ms\": -1}", 400, "bad_request");
    expect(srv, "DELETE", "/servers/c", "{\"timeout_ms\": \"soon\"}", 400, "bad_request");
    expect(srv, "DELETE", "/servers/c", "[1]", 400, "bad_request");
    expect(srv, "DELETE", "/servers/c?timeout_ms=abc", NULL, 400, "bad_request");
    expect(srv, "DELETE", "/servers/c?reason=x", "{\"reason\": \"y\"}", 400, "bad_request");
    expect(srv, "DELETE", "/servers/c?timeout_ms=5", "{\"timeout_ms\": 5}", 400, "bad_request");
    expect(srv, "DELETE", "/servers/nobody?reason=x", NULL, 404, "no_such_server");
    assert_int_equal(h_server_int(srv, "c", "restarts", false), 0);

    request(srv, "DELETE", "/servers/c",
            "{\"reason\": [\"shutdown\", {\"by\": \"ops\"}], \"timeout_ms\": 10000}", NULL, &r);
    assert_int_equal(r.status, 200);
    h_resp_close(&r);
    json_t *stopped = h_events_wait(ev, "stopped", "c", H_WAIT_MS);
    assert_non_null(stopped);
    assert_true(json_is(json_object_get(stopped, "reason"), "[\"shutdown\", {\"by\": \"ops\"}]"));
    json_decref(stopped);

    /* The query's reason is a string. */
    assert_int_equal(h_start_server(srv, "c", "counter", NULL, NULL), 201);
    request(srv, "DELETE", "/servers/c?reason=maintenance&timeout_ms=10000", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    h_resp_close(&r);
    H_WAIT_UNTIL(h_events_count(ev, "stopped", "c") == 2, H_WAIT_MS);
    stopped = h_events_last(ev, "stopped", "c");
    assert_true(json_is(json_object_get(stopped, "reason"), "\"maintenance\""));
    json_decref(stopped);
    h_events_close(ev);
    H_PASS(fx);
}

static void test_delete_past_its_timeout_kills(void **state)
{
    h_fixture_t *fx = *state;
    h_server_t *srv = &fx->srv;
    h_resp_t r;
    json_t *body = json_pack("{s:s,s:s}", "name", "spin", "source", spin_src);
    char *text = json_dumps(body, JSON_COMPACT);

    request(srv, "POST", "/behaviours", text, NULL, &r);
    assert_int_equal(r.status, 201);
    h_resp_close(&r);
    free(text);
    json_decref(body);
    assert_int_equal(h_start_server(srv, "s", "spin", NULL, "{\"instruction_limit\": 1000000000}"),
                     201);
    h_events_t *ev = h_events_open_path(srv, "/events?server=s");
    assert_non_null(ev);

    assert_int_equal(h_deliver(srv, "/cast", "s", "[\"spin\", 1500]"), 202);
    request(srv, "DELETE", "/servers/s?timeout_ms=100", NULL, NULL, &r);
    assert_int_equal(r.status, 504);
    assert_string_equal(h_str(r.json, "error"), "timeout");
    assert_true(r.t_end_ms - r.t_start_ms < 1500); /* at its timeout, not after the handler */
    h_resp_close(&r);

    /* Killed once the handler returned: "stopped" with "killed", and not restarted. */
    json_t *stopped = h_events_wait(ev, "stopped", "s", H_WAIT_MS);
    assert_non_null(stopped);
    assert_true(json_is(json_object_get(stopped, "reason"), "\"killed\""));
    json_decref(stopped);
    expect(srv, "GET", "/servers/s", NULL, 404, "no_such_server");
    assert_int_equal(h_events_count(ev, "restarted", "s"), 0);
    h_events_close(ev);
    H_PASS(fx);
}

static void test_suspend_and_resume(void **state)
{
    h_fixture_t *fx = *state;
    h_server_t *srv = &fx->srv;
    h_resp_t r;

    assert_int_equal(h_start_server(srv, "c", "counter", NULL, NULL), 201);
    request(srv, "POST", "/servers/c/suspend", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(h_str(r.json, "status"), "suspended");
    h_resp_close(&r);

    assert_int_equal(h_deliver(srv, "/cast", "c", "\"increment\""), 202);
    assert_int_equal(h_deliver(srv, "/cast", "c", "\"increment\""), 202);
    /* State reads answer, as :sys.get_state does on a suspended process. */
    json_t *info = h_server_info(srv, "c");
    assert_non_null(info);
    assert_string_equal(h_str(info, "status"), "suspended");
    assert_true(json_is(json_object_get(info, "state"), "{\"count\": 0}"));
    assert_int_equal(json_integer_value(json_object_get(info, "mailbox_len")), 2);
    json_decref(info);
    /* A call waits in the mailbox, and times out there. */
    h_call(srv, "c", "\"get_count\"", 100, &r);
    assert_int_equal(r.status, 504);
    h_resp_close(&r);

    request(srv, "POST", "/servers/c/resume", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    h_resp_close(&r);
    H_WAIT_UNTIL(h_server_int(srv, "c", "count", true) == 2, H_WAIT_MS);
    info = h_server_info(srv, "c");
    assert_string_equal(h_str(info, "status"), "running");
    json_decref(info);

    expect(srv, "POST", "/servers/nobody/suspend", NULL, 404, "no_such_server");
    expect(srv, "POST", "/servers/nobody/resume", NULL, 404, "no_such_server");
    expect(srv, "GET", "/servers/c/suspend", NULL, 405, "method_not_allowed");
    H_PASS(fx);
}

static void test_replace_state(void **state)
{
    h_fixture_t *fx = *state;
    h_server_t *srv = &fx->srv;
    h_resp_t r;

    assert_int_equal(h_start_server(srv, "c", "counter", "{\"initial\": 3}", NULL), 201);
    request(srv, "PUT", "/servers/c/state", "{\"state\": {\"count\": 40}}", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_true(json_is(r.json, "{\"old_state\": {\"count\": 3}}"));
    h_resp_close(&r);
    assert_int_equal(h_call_int(srv, "c", "\"get_count\""), 40);

    /* The behaviour refuses what is not its state; the old one stays. */
    request(srv, "PUT", "/servers/c/state", "{\"state\": {\"count\": \"many\"}}", NULL, &r);
    assert_int_equal(r.status, 422);
    assert_string_equal(h_str(r.json, "error"), "state_refused");
    assert_true(json_is(json_object_get(r.json, "reason"),
                        "[\"bad_state\", \"expected {\\\"count\\\": integer}\"]"));
    h_resp_close(&r);
    assert_int_equal(h_call_int(srv, "c", "\"get_count\""), 40);

    /* Without the callback: not supported. Bad bodies: 400. */
    assert_int_equal(h_start_server(srv, "m", "misbehaving", NULL, NULL), 201);
    assert_int_equal(
        request(srv, "PUT", "/servers/m/state", "{\"state\": {\"pings\": 1}}", NULL, &r), 409);
    assert_string_equal(h_str(r.json, "error"), "not_supported");
    h_resp_close(&r);
    assert_int_equal(request(srv, "PUT", "/servers/c/state", "{\"count\": 1}", NULL, &r), 400);
    h_resp_close(&r);
    assert_int_equal(request(srv, "PUT", "/servers/c/state", NULL, NULL, &r), 400);
    h_resp_close(&r);
    assert_int_equal(request(srv, "PUT", "/servers/nobody/state", "{\"state\": 1}", NULL, &r), 404);
    h_resp_close(&r);
    H_PASS(fx);
}

static void test_events_of_one_server(void **state)
{
    h_fixture_t *fx = *state;
    h_server_t *srv = &fx->srv;

    expect(srv, "GET", "/events?server=", NULL, 400, "bad_request");
    assert_int_equal(h_start_server(srv, "other", "counter", NULL, NULL), 201);
    /* A name may be watched before it starts: the snapshot is then empty. */
    h_events_t *ev = h_events_open_path(srv, "/events?server=a");
    assert_non_null(ev);
    json_t *snap = h_events_wait(ev, "snapshot", NULL, H_WAIT_MS);
    assert_non_null(snap);
    assert_true(json_is(json_object_get(snap, "servers"), "[]"));
    json_decref(snap);

    assert_int_equal(h_start_server(srv, "a", "counter", NULL, NULL), 201);
    assert_int_equal(h_deliver(srv, "/cast", "other", "\"increment\""), 202);
    assert_int_equal(h_deliver(srv, "/cast", "a", "\"increment\""), 202);
    json_t *changed = h_events_wait(ev, "state_changed", "a", H_WAIT_MS);
    assert_non_null(changed);
    json_decref(changed);
    h_resp_t r;
    request(srv, "DELETE", "/servers/other", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    h_resp_close(&r);
    request(srv, "DELETE", "/servers/a", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    h_resp_close(&r);
    json_t *stopped = h_events_wait(ev, "stopped", "a", H_WAIT_MS);
    assert_non_null(stopped);
    json_decref(stopped);
    /* "other" stopped first: its events would have come before a's stop. */
    char *text = h_events_text(ev);
    assert_null(strstr(text, "\"other\""));
    free(text);
    assert_int_equal(h_events_count(ev, "started", "a"), 1);

    /* With the server running, the snapshot holds it alone. */
    assert_int_equal(h_start_server(srv, "a", "counter", NULL, NULL), 201);
    h_events_t *ev2 = h_events_open_path(srv, "/events?server=a");
    snap = h_events_wait(ev2, "snapshot", NULL, H_WAIT_MS);
    assert_non_null(snap);
    json_t *list = json_object_get(snap, "servers");
    assert_int_equal(json_array_size(list), 1);
    assert_string_equal(h_str(json_array_get(list, 0), "name"), "a");
    json_decref(snap);
    h_events_close(ev2);
    h_events_close(ev);
    H_PASS(fx);
}

static void test_sys_routes_need_the_full_token(void **state)
{
    h_fixture_t *fx = *state;
    h_server_t *srv = &fx->srv;
    h_resp_t r;

    assert_int_equal(request(srv, "POST", "/servers",
                             "{\"name\": \"c\", \"behaviour\": \"counter\"}", TOKEN, &r),
                     201);
    h_resp_close(&r);
    static const char *const writes[][3] = {
        {"PUT", "/servers/c/state", "{\"state\": {\"count\": 1}}"},
        {"POST", "/servers/c/suspend", NULL},
        {"POST", "/servers/c/resume", NULL},
        {"DELETE", "/servers/c?reason=x", NULL},
    };
    for (size_t i = 0; i < sizeof(writes) / sizeof(writes[0]); i++) {
        assert_int_equal(request(srv, writes[i][0], writes[i][1], writes[i][2], NULL, &r), 401);
        h_resp_close(&r);
        assert_int_equal(request(srv, writes[i][0], writes[i][1], writes[i][2], READ_TOKEN, &r),
                         403);
        h_resp_close(&r);
    }
    assert_int_equal(request(srv, "GET", "/events?server=c", NULL, NULL, &r), 401);
    h_resp_close(&r);
    for (size_t i = 0; i < sizeof(writes) / sizeof(writes[0]); i++) {
        assert_int_equal(request(srv, writes[i][0], writes[i][1], writes[i][2], TOKEN, &r), 200);
        h_resp_close(&r);
    }
    H_PASS(fx);
}

/* A Lua behaviour that monitors a server and keeps the DOWN messages it receives. */
static const char *watcher_src =
    "local M = {}\n"
    "function M.init() return {'ok', {downs = gs.array()}} end\n"
    "function M.handle_call(msg, from, s)\n"
    "  if msg[1] == 'monitor' then return {'reply', gs.monitor(msg[2]), s} end\n"
    "  return {'reply', s.downs, s}\n"
    "end\n"
    "function M.handle_info(msg, s)\n"
    "  if type(msg) == 'table' and msg[1] == 'DOWN' then table.insert(s.downs, msg) end\n"
    "  return {'noreply', s}\n"
    "end\n"
    "return M\n";

/* The watcher's DOWN messages so far (new reference), or NULL. */
static json_t *downs(const h_server_t *srv)
{
    h_resp_t r;
    h_call(srv, "w", "\"downs\"", 5000, &r);
    json_t *list = r.status == 200 ? json_incref(json_object_get(r.json, "reply")) : NULL;
    h_resp_close(&r);
    return list;
}

static size_t downs_len(const h_server_t *srv)
{
    json_t *list = downs(srv);
    size_t n = json_array_size(list);
    json_decref(list);
    return n;
}

static void test_monitors_see_the_stop_reason(void **state)
{
    h_fixture_t *fx = *state;
    h_server_t *srv = &fx->srv;
    h_resp_t r;
    json_t *body = json_pack("{s:s,s:s}", "name", "watcher", "source", watcher_src);
    char *text = json_dumps(body, JSON_COMPACT);

    request(srv, "POST", "/behaviours", text, NULL, &r);
    assert_int_equal(r.status, 201);
    h_resp_close(&r);
    free(text);
    json_decref(body);
    assert_int_equal(h_start_server(srv, "w", "watcher", NULL, NULL), 201);
    assert_int_equal(h_start_server(srv, "c", "counter", NULL, NULL), 201);
    int64_t ref = h_call_int(srv, "w", "[\"monitor\", \"c\"]");
    assert_true(ref > 0);
    int64_t missing = h_call_int(srv, "w", "[\"monitor\", \"nobody\"]");
    H_WAIT_UNTIL(downs_len(srv) == 1, H_WAIT_MS);

    request(srv, "DELETE", "/servers/c", "{\"reason\": {\"why\": \"upgrade\"}}", NULL, &r);
    assert_int_equal(r.status, 200);
    h_resp_close(&r);
    H_WAIT_UNTIL(downs_len(srv) == 2, H_WAIT_MS);
    json_t *list = downs(srv);
    char want[256];
    snprintf(want, sizeof(want),
             "[[\"DOWN\", %lld, \"nobody\", \"no_such_server\"], [\"DOWN\", %lld, \"c\", "
             "{\"why\": \"upgrade\"}]]",
             (long long)missing, (long long)ref);
    bool ok = json_is(list, want);
    if (!ok) {
        char *got = json_dumps(list, JSON_COMPACT);
        fprintf(stderr, "got %s, want %s\n", got, want);
        free(got);
    }
    json_decref(list);
    assert_true(ok);
    H_PASS(fx);
}

static int setup_tokens(void **state)
{
    static const char *const args[] = {"--read-token", READ_TOKEN, NULL};
    static const char *const env[] = {"GENSERV_TOKEN=" TOKEN, NULL};
    h_opts_t opts = {.args = args, .env = env};

    return h_setup_with(state, &opts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_delete_with_a_reason, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_delete_past_its_timeout_kills, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_suspend_and_resume, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_replace_state, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_sys_routes_need_the_full_token, setup_tokens,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_events_of_one_server, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_monitors_see_the_stop_reason, h_setup, h_teardown),
    };

    h_init(150);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
