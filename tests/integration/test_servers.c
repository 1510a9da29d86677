/*
 * test_servers.c: managing and observing servers over real HTTP.
 *
 * POST /servers starts a server (201, 409 already_started, 404 no_such_behaviour), GET
 * /servers lists them with their status, GET /servers/NAME adds the state, DELETE stops one
 * (200 once terminate ran, then 404), GET /behaviours describes what can be started. The
 * observability endpoints are checked the way their consumers read them: /healthz as a probe,
 * /metrics as Prometheus text, /events as a browser's EventSource stream.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "harness.h"

/* The fields every STATUS object carries (docs/API.md). */
static const char *const status_fields[] = {
    "name",     "behaviour",  "status",    "mailbox_len",       "messages_handled",
    "restarts", "held_calls", "uptime_ms", "last_crash_reason", NULL,
};

static void assert_status_object(const json_t *st, const char *name, const char *behaviour)
{
    for (size_t i = 0; status_fields[i] != NULL; i++)
        if (json_object_get(st, status_fields[i]) == NULL)
            fail_msg("STATUS of %s lacks \"%s\"", name, status_fields[i]);
    assert_string_equal(h_str(st, "name"), name);
    assert_string_equal(h_str(st, "behaviour"), behaviour);
    assert_true(json_is_string(json_object_get(st, "status")));
    assert_true(json_is_integer(json_object_get(st, "mailbox_len")));
    assert_true(json_is_integer(json_object_get(st, "messages_handled")));
    assert_true(json_is_integer(json_object_get(st, "restarts")));
    assert_true(json_is_integer(json_object_get(st, "held_calls")));
    assert_true(json_is_integer(json_object_get(st, "uptime_ms")));
}

static void test_post_servers_starts_201_then_409_and_404(void **state)
{
    h_fixture_t *fx = *state;
    h_resp_t r;

    h_request(&fx->srv, "POST", "/servers",
              "{\"name\": \"c2\", \"behaviour\": \"counter\", \"args\": {\"initial\": 5}, "
              "\"restart\": \"transient\"}",
              &r);
    assert_int_equal(r.status, 201);
    assert_non_null(strstr(r.content_type, "application/json"));
    assert_status_object(r.json, "c2", "counter");
    assert_string_equal(h_str(r.json, "status"), "running");
    assert_string_equal(h_str(r.json, "restart"), "transient");
    h_resp_close(&r);

    h_call(&fx->srv, "c2", "\"get_count\"", -1, &r);
    h_assert_reply(&r, "5");
    h_resp_close(&r);

    /* The name is taken, whatever the behaviour. */
    h_request(&fx->srv, "POST", "/servers", "{\"name\": \"c2\", \"behaviour\": \"counter\"}", &r);
    h_assert_error(&r, 409, "already_started");
    h_resp_close(&r);
    h_request(&fx->srv, "POST", "/servers", "{\"name\": \"counter\", \"behaviour\": \"journal\"}",
              &r);
    h_assert_error(&r, 409, "already_started");
    h_resp_close(&r);

    h_request(&fx->srv, "POST", "/servers", "{\"name\": \"c3\", \"behaviour\": \"no_such\"}", &r);
    h_assert_error(&r, 404, "no_such_behaviour");
    h_resp_close(&r);
    h_request(&fx->srv, "GET", "/servers/c3", NULL, &r);
    h_assert_error(&r, 404, "no_such_server");
    h_resp_close(&r);

    /* Arguments that init refuses: a 4xx error, and no server is left behind. */
    h_request(&fx->srv, "POST", "/servers",
              "{\"name\": \"t1\", \"behaviour\": \"ticker\", \"args\": {\"intervall_ms\": 5}}", &r);
    h_assert_error(&r, 400, "init_failed");
    if (json_object_get(r.json, "reason") == NULL ||
        json_is_null(json_object_get(r.json, "reason")))
        fail_msg("init_failed without a reason: %s", r.body);
    h_resp_close(&r);
    h_request(&fx->srv, "GET", "/servers/t1", NULL, &r);
    h_assert_error(&r, 404, "no_such_server");
    h_resp_close(&r);
    H_PASS(fx);
}

static void test_get_servers_lists_every_server_with_its_status(void **state)
{
    h_fixture_t *fx = *state;
    static const char *const defaults[][2] = {
        {"batcher", "batcher"}, {"counter", "counter"}, {"journal", "journal"},
        {"slow", "slow"},       {"ticker", "ticker"},   {"root", "supervisor"},
    };
    json_t *list, *st;
    size_t i, j;
    h_resp_t r;

    assert_int_equal(h_start_server(&fx->srv, "extra", "receiver", NULL, NULL), 201);
    h_request(&fx->srv, "GET", "/servers", NULL, &r);
    assert_int_equal(r.status, 200);
    list = json_object_get(r.json, "servers");
    assert_true(json_is_array(list));
    assert_int_equal(json_array_size(list), 7); /* the defaults, their supervisor, extra */
    for (i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
        bool found = false;

        json_array_foreach(list, j, st)
        {
            if (strcmp(h_str(st, "name"), defaults[i][0]) == 0) {
                assert_status_object(st, defaults[i][0], defaults[i][1]);
                assert_string_equal(h_str(st, "status"), "running");
                assert_null(json_object_get(st, "state")); /* the list is status only */
                found = true;
            }
        }
        if (!found)
            fail_msg("GET /servers lacks %s: %s", defaults[i][0], r.body);
    }
    h_resp_close(&r);

    /* One server, with its state as :sys.get_state shows it. */
    assert_int_equal(h_deliver(&fx->srv, "/cast", "counter", "[\"increment\", 4]"), 202);
    h_request(&fx->srv, "GET", "/servers/counter", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_status_object(r.json, "counter", "counter");
    st = h_json("{\"count\": 4}");
    assert_true(h_json_equal(json_object_get(r.json, "state"), st));
    json_decref(st);
    h_resp_close(&r);
    /* The counters are a snapshot taken as the request arrives, before the state is read
     * through the mailbox, so they may lag the state by the messages queued then. */
    H_WAIT_UNTIL(h_server_int(&fx->srv, "counter", "messages_handled", false) >= 1, H_WAIT_MS);
    H_PASS(fx);
}

static void test_delete_server_is_200_then_404(void **state)
{
    h_fixture_t *fx = *state;
    h_req_t push = {.method = "POST",
                    .path = "/call",
                    .body = "{\"server\": \"b2\", \"message\": [\"push\", 1]}"};
    h_async_t *held;
    h_resp_t r, *hr;

    assert_int_equal(h_start_server(&fx->srv, "c3", "counter", NULL, NULL), 201);
    h_request(&fx->srv, "DELETE", "/servers/c3", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_true(json_is_object(r.json));
    h_resp_close(&r);
    h_request(&fx->srv, "GET", "/servers/c3", NULL, &r);
    h_assert_error(&r, 404, "no_such_server");
    h_resp_close(&r);
    h_request(&fx->srv, "DELETE", "/servers/c3", NULL, &r);
    h_assert_error(&r, 404, "no_such_server");
    h_resp_close(&r);
    h_call(&fx->srv, "c3", "\"get_count\"", -1, &r);
    h_assert_error(&r, 404, "no_such_server");
    h_resp_close(&r);
    /* The name is free again. */
    assert_int_equal(h_start_server(&fx->srv, "c3", "counter", NULL, NULL), 201);

    /* Stopping a server that holds a call answers that call instead of leaving it hanging. */
    assert_int_equal(h_start_server(&fx->srv, "b2", "batcher", "{\"interval_ms\": 600000}", NULL),
                     201);
    held = h_async_start(&fx->srv, &push);
    assert_non_null(held);
    H_WAIT_UNTIL(h_server_int(&fx->srv, "b2", "held_calls", false) == 1, H_WAIT_MS);
    h_request(&fx->srv, "DELETE", "/servers/b2", NULL, &r);
    assert_int_equal(r.status, 200);
    h_resp_close(&r);
    hr = h_async_wait(held);
    h_assert_error(hr, 500, "server_stopped");
    h_async_destroy(held);
    H_PASS(fx);
}

/* Every name POST /servers accepts must be reachable at /servers/NAME (percent-encoded), or
 * POST /servers must refuse it with 400: a server nobody can inspect or stop over HTTP is a
 * leak only a restart cures. */
static void test_every_name_post_servers_accepts_is_addressable(void **state)
{
    h_fixture_t *fx = *state;
    static const char *const names[] = {"my server", "50%", "caf\u00e9", "a?b",
                                        "a#b",       "..",  "x.y",       "a/b"};
    CURL *c = curl_easy_init();
    h_resp_t r;

    assert_non_null(c);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        json_t *jname = json_string(names[i]);
        char *body, *esc, path[512];
        long status;

        json_t *obj;

        assert_non_null(jname);
        obj = json_pack("{s:o,s:s}", "name", jname, "behaviour", "counter");
        body = json_dumps(obj, JSON_COMPACT);
        json_decref(obj);
        assert_non_null(body);
        h_request(&fx->srv, "POST", "/servers", body, &r);
        status = r.status;
        if (status != 201) {
            h_assert_error(&r, 400, "bad_request");
            h_resp_close(&r);
            free(body);
            continue;
        }
        h_resp_close(&r);
        esc = curl_easy_escape(c, names[i], 0);
        assert_non_null(esc);
        snprintf(path, sizeof(path), "/servers/%s", esc);
        curl_free(esc);
        h_request(&fx->srv, "GET", path, NULL, &r);
        if (r.status != 200 || h_str(r.json, "name") == NULL ||
            strcmp(h_str(r.json, "name"), names[i]) != 0)
            fail_msg("POST /servers %s gave 201, but GET %s gives %ld %s", body, path, r.status,
                     r.body);
        h_resp_close(&r);
        h_request(&fx->srv, "DELETE", path, NULL, &r);
        if (r.status != 200)
            fail_msg("POST /servers %s gave 201, but DELETE %s gives %ld %s", body, path, r.status,
                     r.body);
        h_resp_close(&r);
        free(body);
    }
    curl_easy_cleanup(c);
    H_PASS(fx);
}

static void test_behaviours_lists_every_builtin_with_its_messages(void **state)
{
    h_fixture_t *fx = *state;
    static const char *const builtins[] = {"counter", "journal", "slow",     "receiver",
                                           "ticker",  "batcher", "producer", "misbehaving"};
    json_t *list, *b, *m;
    size_t i, j, k;
    h_resp_t r;

    h_request(&fx->srv, "GET", "/behaviours", NULL, &r);
    assert_int_equal(r.status, 200);
    list = json_object_get(r.json, "behaviours");
    assert_true(json_is_array(list));
    for (i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++) {
        bool found = false;

        json_array_foreach(list, j, b)
        {
            if (h_str(b, "name") == NULL || strcmp(h_str(b, "name"), builtins[i]) != 0)
                continue;
            found = true;
            assert_true(json_is_string(json_object_get(b, "description")));
            assert_true(json_is_array(json_object_get(b, "messages")));
            assert_true(json_array_size(json_object_get(b, "messages")) > 0);
            json_array_foreach(json_object_get(b, "messages"), k, m)
            {
                assert_true(json_is_string(json_object_get(m, "kind")));
                assert_non_null(json_object_get(m, "example"));
            }
        }
        if (!found)
            fail_msg("GET /behaviours lacks %s", builtins[i]);
    }
    h_resp_close(&r);
    H_PASS(fx);
}

static void test_healthz_is_200_ok(void **state)
{
    h_fixture_t *fx = *state;
    json_t *ok = h_json("{\"ok\": true}");
    h_resp_t r;

    h_request(&fx->srv, "GET", "/healthz", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.content_type, "application/json"));
    assert_true(h_json_equal(r.json, ok));
    h_resp_close(&r);
    h_request(&fx->srv, "HEAD", "/healthz", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    h_resp_close(&r);
    json_decref(ok);
    H_PASS(fx);
}

static bool has_line_with(const char *text, const char *prefix, const char *part)
{
    const char *p = text;
    size_t plen = strlen(prefix);

    while (p != NULL && *p != '\0') {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);

        if (len >= plen && strncmp(p, prefix, plen) == 0) {
            char line[512];

            snprintf(line, sizeof(line), "%.*s", (int)len, p);
            if (part == NULL || strstr(line, part) != NULL)
                return true;
        }
        p = nl ? nl + 1 : NULL;
    }
    return false;
}

static void test_metrics_is_prometheus_text(void **state)
{
    h_fixture_t *fx = *state;
    static const char *const families[] = {
        "genserv_http_requests_total",
        "genserv_http_open_calls",
        "genserv_server_mailbox_length",
        "genserv_server_messages_handled_total",
        "genserv_server_restarts_total",
        "genserv_call_duration_seconds",
        "genserv_server_up",
        "genserv_servers",
        "genserv_server_held_calls",
        "genserv_late_replies_total",
        "genserv_pending_timers",
        "genserv_held_calls",
    };
    char type_line[128];
    h_resp_t r;

    h_call(&fx->srv, "counter", "\"get_count\"", -1, &r);
    h_assert_reply(&r, "0");
    h_resp_close(&r);
    h_request(&fx->srv, "GET", "/nope", NULL, &r);
    h_resp_close(&r);

    h_request(&fx->srv, "GET", "/metrics", NULL, &r);
    assert_int_equal(r.status, 200);
    if (strncmp(r.content_type, "text/plain", 10) != 0)
        fail_msg("Content-Type of /metrics is \"%s\", not text/plain", r.content_type);
    for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
        snprintf(type_line, sizeof(type_line), "# TYPE %s ", families[i]);
        if (strstr(r.body, type_line) == NULL)
            fail_msg("/metrics lacks \"%s\":\n%s", type_line, r.body);
    }
    /* Requests by route and status, including the call just made and the 404. */
    assert_true(has_line_with(r.body, "genserv_http_requests_total{", "route=\"/call\""));
    assert_true(has_line_with(r.body, "genserv_http_requests_total{", "code=\"200\""));
    assert_true(has_line_with(r.body, "genserv_http_requests_total{", "code=\"404\""));
    /* Per-server series, labelled by server. */
    assert_true(has_line_with(r.body, "genserv_server_mailbox_length{", "server=\"counter\""));
    assert_true(has_line_with(r.body, "genserv_server_restarts_total{", "server=\"batcher\""));
    /* The call latency histogram counted the call. */
    assert_true(has_line_with(r.body, "genserv_call_duration_seconds_bucket{", "le=\"+Inf\""));
    assert_true(h_metric(r.body, "genserv_call_duration_seconds_count") >= 1);
    assert_true(h_metric(r.body, "genserv_http_open_calls") == 0);
    /* Every non-comment line is "name[{labels}] value". */
    for (const char *p = r.body; p != NULL && *p != '\0';) {
        const char *nl = strchr(p, '\n'), *sp;

        if (*p != '#') {
            sp = memchr(p, ' ', nl ? (size_t)(nl - p) : strlen(p));
            if (sp == NULL || sp == p)
                fail_msg("not a sample line: %.80s", p);
        }
        p = nl ? nl + 1 : NULL;
    }
    h_resp_close(&r);
    H_PASS(fx);
}

static void test_events_stream_started_stopped_crashed_and_state_changed(void **state)
{
    h_fixture_t *fx = *state;
    h_events_t *ev = h_events_open(&fx->srv);
    char ct[128];
    json_t *e;
    h_resp_t r;

    assert_non_null(ev);
    assert_int_equal(h_events_status(ev, ct, sizeof(ct)), 200);
    if (strncmp(ct, "text/event-stream", 17) != 0)
        fail_msg("Content-Type of /events is \"%s\"", ct);
    /* The stream opens with the reconnect delay and a snapshot of every server. */
    e = h_events_wait(ev, "snapshot", NULL, H_WAIT_MS);
    assert_non_null(e);
    assert_int_equal(json_array_size(json_object_get(e, "servers")),
                     6); /* the defaults and their supervisor, root */
    json_decref(e);
    {
        char *text = h_events_text(ev);

        if (strncmp(text, "retry: 2000", 11) != 0)
            fail_msg("the stream does not start with \"retry: 2000\": %.200s", text);
        free(text);
    }

    assert_int_equal(h_start_server(&fx->srv, "evt", "counter", NULL, NULL), 201);
    e = h_events_wait(ev, "started", "evt", H_WAIT_MS);
    assert_non_null(e);
    json_decref(e);

    assert_int_equal(h_deliver(&fx->srv, "/cast", "evt", "\"increment\""), 202);
    e = h_events_wait(ev, "state_changed", "evt", H_WAIT_MS);
    assert_non_null(e);
    json_decref(e);

    assert_int_equal(h_start_server(&fx->srv, "bad", "misbehaving", NULL, NULL), 201);
    h_call(&fx->srv, "bad", "\"message\"", -1, &r);
    h_assert_error(&r, 500, "server_crashed");
    h_resp_close(&r);
    e = h_events_wait(ev, "crashed", "bad", H_WAIT_MS);
    assert_non_null(e);
    assert_non_null(json_object_get(e, "reason"));
    json_decref(e);
    e = h_events_wait(ev, "restarted", "bad", H_WAIT_MS);
    assert_non_null(e);
    json_decref(e);

    h_request(&fx->srv, "DELETE", "/servers/evt", NULL, &r);
    assert_int_equal(r.status, 200);
    h_resp_close(&r);
    e = h_events_wait(ev, "stopped", "evt", H_WAIT_MS);
    assert_non_null(e);
    json_decref(e);

    h_events_close(ev);
    H_PASS(fx);
}

/* messages_handled in the latest state_changed of server on ev, or -1. */
static int64_t last_handled(h_events_t *ev, const char *server)
{
    json_t *e = h_events_last(ev, "state_changed", server);
    json_t *n = json_object_get(json_object_get(e, "status"), "messages_handled");
    int64_t out = json_is_integer(n) ? (int64_t)json_integer_value(n) : -1;

    json_decref(e);
    return out;
}

static void test_events_are_coalesced_for_a_busy_server(void **state)
{
    enum { N_CASTS = 400 };
    h_fixture_t *fx = *state;
    h_req_t cast = {.method = "POST",
                    .path = "/cast",
                    .body = "{\"server\": \"busy\", \"message\": \"increment\"}"};
    h_events_t *ev;
    h_multi_t *m;
    h_resp_t *rs, r;
    json_t *e;
    size_t changes, i;

    assert_int_equal(h_start_server(&fx->srv, "busy", "counter", NULL, NULL), 201);
    ev = h_events_open(&fx->srv);
    assert_non_null(ev);
    m = h_multi_start(&fx->srv, &cast, N_CASTS);
    assert_non_null(m);
    rs = h_multi_wait(m);
    for (i = 0; i < N_CASTS; i++)
        assert_int_equal(rs[i].status, 202);
    h_multi_destroy(m);
    h_call(&fx->srv, "busy", "\"get_count\"", -1, &r);
    h_assert_reply(&r, "400");
    h_resp_close(&r);
    /* The state change shows up, but as a handful of events, not one per message. */
    e = h_events_wait(ev, "state_changed", "busy", H_WAIT_MS);
    assert_non_null(e);
    json_decref(e);
    /* Counted once the stream has shown the final state (the casts and the get_count all
     * handled): every change is reported by then, and nothing changes after it. */
    H_WAIT_UNTIL(last_handled(ev, "busy") == N_CASTS + 1, H_WAIT_MS);
    changes = h_events_count(ev, "state_changed", "busy");
    printf("%zu state_changed events for %d casts\n", changes, N_CASTS);
    assert_true(changes >= 1 && changes < N_CASTS / 4);
    h_events_close(ev);
    H_PASS(fx);
}

static void test_the_dashboard_is_served(void **state)
{
    h_fixture_t *fx = *state;
    h_resp_t r;

    h_request(&fx->srv, "GET", "/", NULL, &r);
    assert_int_equal(r.status, 200);
    if (strncmp(r.content_type, "text/html", 9) != 0)
        fail_msg("GET / has Content-Type \"%s\"", r.content_type);
    assert_true(r.body_len > 0);
    h_resp_close(&r);
    H_PASS(fx);
}

static bool is_down(const h_server_t *srv, const char *name)
{
    json_t *info = h_server_info(srv, name);
    bool down =
        info != NULL && h_str(info, "status") != NULL && strcmp(h_str(info, "status"), "down") == 0;

    json_decref(info);
    return down;
}

static void test_a_server_past_its_restart_intensity_is_down(void **state)
{
    h_fixture_t *fx = *state;
    h_events_t *ev = h_events_open(&fx->srv);
    json_t *info, *e;
    h_resp_t r;

    assert_non_null(ev);
    assert_int_equal(h_start_server(&fx->srv, "fragile", "misbehaving", NULL,
                                    "{\"max_restarts\": 0, \"max_seconds\": 60}"),
                     201);
    h_call(&fx->srv, "fragile", "\"message\"", -1, &r);
    h_assert_error(&r, 500, "server_crashed");
    h_resp_close(&r);

    H_WAIT_UNTIL(is_down(&fx->srv, "fragile"), H_WAIT_MS);
    e = h_events_wait(ev, "down", "fragile", H_WAIT_MS);
    assert_non_null(e);
    json_decref(e);
    h_events_close(ev);

    /* Still listed and inspectable: 200 with the state it cannot give, and why. */
    h_request(&fx->srv, "GET", "/servers/fragile", NULL, &r);
    assert_int_equal(r.status, 200);
    info = r.json;
    assert_true(json_is_null(json_object_get(info, "state")));
    assert_true(json_is_string(json_object_get(info, "state_error")));
    assert_false(json_is_null(json_object_get(info, "down_reason")));
    assert_string_equal(h_str(info, "last_crash_reason"), "calling_self");
    h_resp_close(&r);

    /* A call to it is answered with an error, never held. */
    h_call(&fx->srv, "fragile", "\"ping\"", 2000, &r);
    assert_true(r.status >= 400);
    assert_true(json_is_string(json_object_get(r.json, "error")));
    h_resp_close(&r);

    /* Removing it frees the name. */
    h_request(&fx->srv, "DELETE", "/servers/fragile", NULL, &r);
    if (r.status != 200)
        fail_msg("DELETE of a down server: %ld %s", r.status, r.body);
    h_resp_close(&r);
    h_request(&fx->srv, "GET", "/servers/fragile", NULL, &r);
    h_assert_error(&r, 404, "no_such_server");
    h_resp_close(&r);
    assert_int_equal(h_start_server(&fx->srv, "fragile", "misbehaving", NULL, NULL), 201);
    H_PASS(fx);
}

static void test_event_streams_past_the_limit_get_503(void **state)
{
    const char *args[] = {"--max-event-streams", "1", NULL};
    h_opts_t opts = {.args = args};
    h_fixture_t *fx = *state;
    h_events_t *first, *second, *again = NULL;
    char ct[128], name[32];
    int64_t deadline;
    int i = 0;

    h_fixture_restart(fx, &opts);

    first = h_events_open(&fx->srv);
    assert_non_null(first);
    assert_int_equal(h_events_status(first, ct, sizeof(ct)), 200);
    second = h_events_open(&fx->srv);
    assert_non_null(second);
    assert_int_equal(h_events_status(second, ct, sizeof(ct)), 503);
    h_events_close(second);

    /* Once the first client leaves (noticed at the next write to it), a new one fits. */
    h_events_close(first);
    deadline = h_now_ms() + 30000;
    for (;;) {
        snprintf(name, sizeof(name), "poke%d", i++);
        assert_int_equal(h_start_server(&fx->srv, name, "counter", NULL, NULL), 201);
        again = h_events_open(&fx->srv);
        assert_non_null(again);
        if (h_events_status(again, ct, sizeof(ct)) == 200)
            break;
        h_events_close(again);
        if (h_now_ms() > deadline)
            fail_msg("the event stream slot was not freed after its client left");
        h_sleep_ms(200);
    }
    h_events_close(again);
    H_PASS(fx);
}

/* A server started with "sensitive": true shows its state as "[redacted]" to every inspector
 * while it keeps working; a non-boolean "sensitive" is a 400. */
static void test_a_sensitive_server_hides_its_state(void **state)
{
    h_fixture_t *fx = *state;
    json_t *info;
    h_resp_t r;

    assert_int_equal(h_start_server(&fx->srv, "vault", "journal", NULL, "{\"sensitive\": true}"),
                     201);
    assert_int_equal(h_deliver(&fx->srv, "/cast", "vault", "[\"add_entry\", \"the key\"]"), 202);
    h_call(&fx->srv, "vault", "\"entries\"", -1, &r);
    h_assert_reply(&r, "[\"the key\"]");
    h_resp_close(&r);

    info = h_server_info(&fx->srv, "vault");
    assert_non_null(info);
    assert_string_equal(json_string_value(json_object_get(info, "state")), "[redacted]");
    assert_true(json_is_true(json_object_get(info, "sensitive")));
    json_decref(info);
    h_request(&fx->srv, "GET", "/servers", NULL, &r);
    assert_null(strstr(r.body, "the key"));
    h_resp_close(&r);

    /* The same behaviour started without it shows its entries. */
    assert_int_equal(h_start_server(&fx->srv, "open", "journal", NULL, NULL), 201);
    info = h_server_info(&fx->srv, "open");
    assert_false(json_is_true(json_object_get(info, "sensitive")));
    json_decref(info);

    h_request(&fx->srv, "POST", "/servers",
              "{\"name\": \"x\", \"behaviour\": \"journal\", \"sensitive\": \"yes\"}", &r);
    h_assert_error(&r, 400, "bad_request");
    h_resp_close(&r);
    H_PASS(fx);
}

static void test_head_is_allowed_wherever_get_is(void **state)
{
    h_fixture_t *fx = *state;
    static const char *const paths[] = {"/servers", "/servers/counter", "/behaviours",
                                        "/metrics", "/healthz",         "/"};
    h_resp_t get, head;

    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        h_request(&fx->srv, "GET", paths[i], NULL, &get);
        h_request(&fx->srv, "HEAD", paths[i], NULL, &head);
        if (head.status != 200 || get.status != 200)
            fail_msg("HEAD %s: %ld, GET: %ld", paths[i], head.status, get.status);
        assert_int_equal(head.body_len, 0);
        assert_string_equal(head.content_type, get.content_type);
        h_resp_close(&get);
        h_resp_close(&head);
    }
    h_request(&fx->srv, "HEAD", "/servers/nobody", NULL, &head);
    assert_int_equal(head.status, 404);
    h_resp_close(&head);
    H_PASS(fx);
}

static void test_static_files_have_types_etags_and_304(void **state)
{
    h_fixture_t *fx = *state;
    char etag[128], buf[128], inm[200];
    const char *hdrs[] = {inm, NULL};
    h_req_t cond = {.method = "GET", .path = "/app.js", .headers = hdrs};
    h_resp_t r;

    h_request(&fx->srv, "GET", "/app.js", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.content_type, "javascript"));
    assert_non_null(h_header(&r, "ETag", etag, sizeof(etag)));
    assert_non_null(h_header(&r, "Cache-Control", buf, sizeof(buf)));
    assert_non_null(strstr(buf, "no-cache"));
    assert_non_null(h_header(&r, "X-Content-Type-Options", buf, sizeof(buf)));
    assert_string_equal(buf, "nosniff");
    h_resp_close(&r);

    snprintf(inm, sizeof(inm), "If-None-Match: %s", etag);
    h_request_ex(&fx->srv, &cond, &r);
    assert_int_equal(r.status, 304);
    assert_int_equal(r.body_len, 0);
    h_resp_close(&r);

    h_request(&fx->srv, "GET", "/style.css", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.content_type, "text/css"));
    h_resp_close(&r);
    h_request(&fx->srv, "GET", "/index.html", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.content_type, "text/html"));
    h_resp_close(&r);
    H_PASS(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_post_servers_starts_201_then_409_and_404, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_get_servers_lists_every_server_with_its_status,
                                        h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_delete_server_is_200_then_404, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_every_name_post_servers_accepts_is_addressable,
                                        h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_behaviours_lists_every_builtin_with_its_messages,
                                        h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_healthz_is_200_ok, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_metrics_is_prometheus_text, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(
            test_events_stream_started_stopped_crashed_and_state_changed, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_events_are_coalesced_for_a_busy_server, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_the_dashboard_is_served, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_a_server_past_its_restart_intensity_is_down, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_event_streams_past_the_limit_get_503, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_a_sensitive_server_hides_its_state, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_head_is_allowed_wherever_get_is, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_static_files_have_types_etags_and_304, h_setup,
                                        h_teardown),
    };

    h_init(170);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
