/*
 * test_observer.c: what the dashboard shows at Erlang observer's level (issue 16), over real
 * HTTP against the real binary: GET /system's overview (schedulers that get busy when a server
 * spins, event streams counted), per-server memory that grows with a server's state, GET
 * /timers?all=true listing the servers' own timers with who made them, the lifecycle history
 * replayed to an event stream opened after a crash (and bounded by --event-history), and
 * behaviour descriptions that name where each built-in comes from, and with --data-dir the
 * store's health in the overview and a durable server's tick listed as restored after a restart.
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

/* A Lua behaviour whose cast ["spin", ms] holds its scheduler thread for ms. */
static const char *spin_src = "local M = {}\n"
                              "function M.init() return {'ok', {}} end\n"
                              "function M.handle_cast(msg, s)\n"
                              "  local until_ms = gs.monotonic_ms() + msg[2]\n"
                              "  while gs.monotonic_ms() < until_ms do end\n"
                              "  return {'noreply', s}\n"
                              "end\n"
                              "return M\n";

static int setup(void **state)
{
    static const char *const args[] = {"--schedulers", "2", NULL};
    h_opts_t o = {.args = args};

    return h_setup_with(state, &o);
}

static int setup_short_history(void **state)
{
    static const char *const args[] = {"--event-history", "2", NULL};
    h_opts_t o = {.args = args};

    return h_setup_with(state, &o);
}

/* GET path, asserting 200; the JSON body (new reference). */
static json_t *get_json(const h_server_t *srv, const char *path)
{
    h_resp_t r;
    json_t *out;

    h_request(srv, "GET", path, NULL, &r);
    if (r.status != 200)
        fprintf(stderr, "GET %s: %ld %s\n", path, r.status, r.body);
    assert_int_equal(r.status, 200);
    assert_non_null(r.json);
    out = json_incref(r.json);
    h_resp_close(&r);
    return out;
}

static json_int_t int_at(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);

    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

/* The highest scheduler utilisation GET /system reports now. */
static double busiest(const h_server_t *srv)
{
    json_t *sys = get_json(srv, "/system"), *sc;
    double max = 0;
    size_t i;

    json_array_foreach(json_object_get(sys, "schedulers"), i, sc)
    {
        double u = json_number_value(json_object_get(sc, "utilisation"));
        if (u > max)
            max = u;
    }
    json_decref(sys);
    return max;
}

static json_int_t event_streams(const h_server_t *srv)
{
    json_t *sys = get_json(srv, "/system");
    json_int_t n = int_at(sys, "event_streams");

    json_decref(sys);
    return n;
}

static void test_system_overview(void **state)
{
    h_fixture_t *fx = *state;
    h_server_t *srv = &fx->srv;
    json_t *sys = get_json(srv, "/system"), *servers, *sc, *mem;
    size_t i;
    h_resp_t r;

    assert_true(strlen(h_str(sys, "version")) >= 5); /* "x.y.z" */
    assert_true(int_at(sys, "started_at_ms") > 1700000000000LL);
    assert_true(int_at(sys, "uptime_ms") >= 0);
    assert_int_equal(json_array_size(json_object_get(sys, "schedulers")), 2);
    json_array_foreach(json_object_get(sys, "schedulers"), i, sc)
    {
        double u = json_number_value(json_object_get(sc, "utilisation"));
        assert_int_equal(int_at(sc, "id"), (json_int_t)i);
        assert_true(json_is_number(json_object_get(sc, "utilisation")));
        assert_true(u >= 0.0 && u <= 1.0);
    }
    mem = json_object_get(sys, "memory");
    assert_true(int_at(mem, "rss_bytes") > 1024 * 1024);
    assert_true(int_at(mem, "servers_bytes") >= 0);
    servers = get_json(srv, "/servers");
    assert_int_equal(int_at(sys, "servers"), json_array_size(json_object_get(servers, "servers")));
    json_decref(servers);
    assert_true(int_at(sys, "connections") >= 1); /* this request's */
    assert_int_equal(int_at(sys, "held_calls"), 0);
    assert_int_equal(int_at(sys, "event_streams"), 0);
    assert_true(json_is_null(json_object_get(sys, "store"))); /* no --data-dir */
    json_decref(sys);

    /* An open event stream is counted. */
    h_events_t *ev = h_events_open(srv);
    assert_non_null(ev);
    H_WAIT_UNTIL(event_streams(srv) == 1, H_WAIT_MS);
    h_events_close(ev);
    H_WAIT_UNTIL(event_streams(srv) == 0, H_WAIT_MS);

    /* A server that holds its scheduler for seconds makes one scheduler busy. */
    json_t *body = json_pack("{s:s,s:s}", "name", "spin", "source", spin_src);
    char *text = json_dumps(body, JSON_COMPACT);
    h_request(srv, "POST", "/behaviours", text, &r);
    assert_int_equal(r.status, 201);
    h_resp_close(&r);
    free(text);
    json_decref(body);
    assert_int_equal(h_start_server(srv, "s", "spin", NULL, "{\"instruction_limit\": 1000000000}"),
                     201);
    assert_true(busiest(srv) < 0.9); /* idle now (a loaded CI box still leaves room) */
    assert_int_equal(h_deliver(srv, "/cast", "s", "[\"spin\", 3000]"), 202);
    H_WAIT_UNTIL(busiest(srv) >= 0.5, H_WAIT_MS);
    H_PASS(fx);
}

static json_t *status_of(const json_t *list, const char *name)
{
    json_t *s;
    size_t i;

    json_array_foreach(json_object_get(list, "servers"), i, s)
    {
        if (strcmp(h_str(s, "name"), name) == 0)
            return s;
    }
    return NULL;
}

static void test_memory_grows_with_the_state(void **state)
{
    h_fixture_t *fx = *state;
    h_server_t *srv = &fx->srv;
    char entry[200];

    assert_int_equal(h_start_server(srv, "j", "journal", NULL, NULL), 201);
    json_t *before = get_json(srv, "/servers/j");
    json_int_t state0 = int_at(json_object_get(before, "memory"), "state_bytes");
    assert_true(state0 > 0); /* reading the state measured it */
    assert_int_equal(int_at(json_object_get(before, "memory"), "mailbox_bytes"), 0);
    assert_int_equal(int_at(before, "memory_bytes"), state0);
    json_decref(before);

    /* 50 entries of 100 bytes: the state grows by 5000 bytes of text and more. */
    for (int i = 0; i < 50; i++) {
        snprintf(entry, sizeof(entry), "[\"add_entry\", \"%03d%097d\"]", i, 0);
        assert_int_equal(h_deliver(srv, "/cast", "j", entry), 202);
    }
    H_WAIT_UNTIL(h_server_int(srv, "j", "messages_handled", false) == 50, H_WAIT_MS);
    json_t *after = get_json(srv, "/servers/j");
    json_int_t state1 = int_at(json_object_get(after, "memory"), "state_bytes");
    assert_true(state1 >= state0 + 5000);
    assert_int_equal(int_at(after, "memory_bytes"),
                     state1 + int_at(json_object_get(after, "memory"), "mailbox_bytes"));
    json_decref(after);

    /* The listing shows the measured size too, and the overview adds it up. */
    json_t *list = get_json(srv, "/servers");
    json_t *j = status_of(list, "j");
    assert_non_null(j);
    assert_true(int_at(j, "memory_bytes") >= state1);
    json_decref(list);
    json_t *sys = get_json(srv, "/system");
    assert_true(int_at(json_object_get(sys, "memory"), "servers_bytes") >= state1);
    json_decref(sys);
    H_PASS(fx);
}

static json_t *timer_of(const json_t *list, const char *server)
{
    json_t *t;
    size_t i;

    json_array_foreach(json_object_get(list, "timers"), i, t)
    {
        if (strcmp(h_str(t, "server"), server) == 0)
            return t;
    }
    return NULL;
}

static void test_every_timer_is_listed_with_its_maker(void **state)
{
    h_fixture_t *fx = *state;
    h_server_t *srv = &fx->srv;
    h_resp_t r;

    /* The boot's ticker and batcher tick on timers they made themselves. */
    json_t *all = get_json(srv, "/timers?all=true");
    json_t *tick = timer_of(all, "ticker");
    assert_non_null(tick);
    assert_string_equal(h_str(tick, "created_by"), "server:ticker");
    assert_non_null(h_str(tick, "timer"));
    assert_true(int_at(tick, "remaining_ms") >= 0);
    assert_non_null(json_object_get(tick, "message"));
    assert_non_null(timer_of(all, "batcher"));
    assert_false(json_is_true(json_object_get(all, "truncated")));
    json_decref(all);

    /* A client's periodic timer: "http", with its interval; the plain listing shows only it. */
    h_request(srv, "POST", "/send_after",
              "{\"server\": \"counter\", \"message\": \"increment\", \"delay_ms\": 600000, "
              "\"interval_ms\": 600000}",
              &r);
    assert_int_equal(r.status, 202);
    h_resp_close(&r);
    all = get_json(srv, "/timers?all=true");
    json_t *mine = timer_of(all, "counter");
    assert_non_null(mine);
    assert_string_equal(h_str(mine, "created_by"), "http");
    assert_int_equal(int_at(mine, "interval_ms"), 600000);
    assert_true(int_at(all, "count") >= 3);
    json_decref(all);
    json_t *plain = get_json(srv, "/timers");
    assert_int_equal(int_at(plain, "count"), 1);
    assert_string_equal(h_str(json_array_get(json_object_get(plain, "timers"), 0), "created_by"),
                        "http");
    json_decref(plain);

    /* Bounded: ?limit=1 lists the soonest and says the rest were left out. */
    json_t *one = get_json(srv, "/timers?all=true&limit=1");
    assert_int_equal(json_array_size(json_object_get(one, "timers")), 1);
    assert_true(json_is_true(json_object_get(one, "truncated")));
    assert_true(int_at(one, "count") >= 3);
    assert_string_not_equal(h_str(json_array_get(json_object_get(one, "timers"), 0), "server"),
                            "counter"); /* the 10-minute one is not the soonest */
    json_decref(one);

    h_request(srv, "GET", "/timers?all=yes", NULL, &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(h_str(r.json, "error"), "bad_request");
    h_resp_close(&r);
    H_PASS(fx);
}

/* The index in events (a JSON array) of the first event of type about server, or -1. */
static int find_event(const json_t *events, const char *type, const char *server)
{
    json_t *e;
    size_t i;

    json_array_foreach(events, i, e)
    {
        if (strcmp(h_str(e, "type"), type) == 0 && h_str(e, "server") != NULL &&
            strcmp(h_str(e, "server"), server) == 0)
            return (int)i;
    }
    return -1;
}

static void test_history_is_replayed_to_a_late_client(void **state)
{
    h_fixture_t *fx = *state;
    h_server_t *srv = &fx->srv;
    h_resp_t r;

    assert_int_equal(h_start_server(srv, "m", "misbehaving", NULL, NULL), 201);
    h_call(srv, "m", "\"message\"", 5000, &r);
    assert_int_equal(r.status, 500);
    h_resp_close(&r);
    H_WAIT_UNTIL(h_server_int(srv, "m", "restarts", false) == 1, H_WAIT_MS);

    /* An operator arriving after the crash: the stream's first event is the history. */
    h_events_t *ev = h_events_open(srv);
    assert_non_null(ev);
    json_t *hist = h_events_wait(ev, "history", NULL, H_WAIT_MS);
    assert_non_null(hist);
    json_t *events = json_object_get(hist, "events");
    int started = find_event(events, "started", "m");
    int crashed = find_event(events, "crashed", "m");
    int restarted = find_event(events, "restarted", "m");
    assert_true(started >= 0 && crashed > started && restarted > crashed);
    json_t *crash = json_array_get(events, (size_t)crashed);
    assert_string_equal(h_str(crash, "reason"), "calling_self");
    assert_string_equal(h_str(crash, "behaviour"), "misbehaving");
    assert_true(int_at(crash, "at_ms") > 1700000000000LL);
    json_decref(hist);
    /* ... then the snapshot, then live events, with no event sent twice. */
    json_t *snap = h_events_wait(ev, "snapshot", NULL, H_WAIT_MS);
    assert_non_null(snap);
    json_decref(snap);
    char *text = h_events_text(ev);
    assert_true(strstr(text, "\"type\":\"history\"") < strstr(text, "\"type\":\"snapshot\""));
    free(text);
    assert_int_equal(h_events_count(ev, "crashed", "m"), 0); /* only inside the history */
    assert_int_equal(h_start_server(srv, "m2", "counter", NULL, NULL), 201);
    json_t *live = h_events_wait(ev, "started", "m2", H_WAIT_MS);
    assert_non_null(live);
    assert_true(int_at(live, "at_ms") > 1700000000000LL);
    json_decref(live);
    h_events_close(ev);

    /* The same as JSON, and one server's part of it. */
    json_t *all = get_json(srv, "/events/history");
    assert_true(find_event(json_object_get(all, "events"), "crashed", "m") >= 0);
    assert_true(find_event(json_object_get(all, "events"), "started", "m2") >= 0);
    assert_int_equal(int_at(all, "capacity"), 200);
    json_decref(all);
    json_t *one = get_json(srv, "/events/history?server=m2");
    assert_int_equal(json_array_size(json_object_get(one, "events")), 1);
    json_decref(one);

    /* A stream of one server gets that server's history only. */
    ev = h_events_open_path(srv, "/events?server=m");
    assert_non_null(ev);
    hist = h_events_wait(ev, "history", NULL, H_WAIT_MS);
    assert_non_null(hist);
    assert_true(find_event(json_object_get(hist, "events"), "crashed", "m") >= 0);
    assert_int_equal(find_event(json_object_get(hist, "events"), "started", "m2"), -1);
    json_decref(hist);
    h_events_close(ev);
    H_PASS(fx);
}

static void test_history_keeps_the_last_n(void **state)
{
    h_fixture_t *fx = *state;
    h_server_t *srv = &fx->srv;
    h_resp_t r;

    assert_int_equal(h_start_server(srv, "a", "counter", NULL, NULL), 201);
    assert_int_equal(h_start_server(srv, "b", "counter", NULL, NULL), 201);
    assert_int_equal(h_start_server(srv, "c", "counter", NULL, NULL), 201);
    json_t *all = get_json(srv, "/events/history");
    json_t *events = json_object_get(all, "events");
    assert_int_equal(json_array_size(events), 2); /* --event-history 2: a's start gave way */
    assert_int_equal(find_event(events, "started", "a"), -1);
    assert_int_equal(find_event(events, "started", "b"), 0);
    assert_int_equal(find_event(events, "started", "c"), 1);
    assert_int_equal(int_at(all, "capacity"), 2);
    json_decref(all);

    h_request(srv, "GET", "/events/history?server=", NULL, &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(h_str(r.json, "error"), "bad_request");
    h_resp_close(&r);
    H_PASS(fx);
}

/* A data directory for the durable test: made by its setup, removed by its teardown. */
static char data_dir[256];
static const char *data_args[] = {"--data-dir", data_dir, NULL};

static int setup_durable(void **state)
{
    h_opts_t o = {.args = data_args};

    if (h_tempdir(data_dir, sizeof(data_dir), "observer") != 0)
        return -1;
    return h_setup_with(state, &o);
}

static int teardown_durable(void **state)
{
    int rc = h_teardown(state);

    h_rmtree(data_dir);
    return rc;
}

static void test_the_store_and_restored_timers(void **state)
{
    h_fixture_t *fx = *state;
    h_opts_t o = {.args = data_args};

    /* The store's health in the overview. */
    json_t *sys = get_json(&fx->srv, "/system");
    json_t *store = json_object_get(sys, "store");
    assert_true(json_is_object(store));
    assert_true(json_is_true(json_object_get(store, "healthy")));
    assert_string_equal(h_str(store, "durability"), "process");
    assert_non_null(strstr(h_str(store, "path"), data_dir));
    assert_int_equal(int_at(store, "errors_total"), 0);
    assert_true(int_at(store, "commit_lag") >= 0);
    json_decref(sys);

    /* A durable ticker's tick is its own timer; after a restart it was restored. */
    assert_int_equal(h_start_server(&fx->srv, "dt", "ticker", "{\"interval_ms\": 600000}",
                                    "{\"durable\": true}"),
                     201);
    json_t *all = get_json(&fx->srv, "/timers?all=true");
    assert_non_null(timer_of(all, "dt"));
    assert_string_equal(h_str(timer_of(all, "dt"), "created_by"), "server:dt");
    json_decref(all);
    h_fixture_restart(fx, &o);
    all = get_json(&fx->srv, "/timers?all=true");
    assert_non_null(timer_of(all, "dt"));
    assert_string_equal(h_str(timer_of(all, "dt"), "created_by"), "restored");
    json_decref(all);
    H_PASS(fx);
}

static void test_descriptions_name_their_source(void **state)
{
    h_fixture_t *fx = *state;
    h_server_t *srv = &fx->srv;
    json_t *list = get_json(srv, "/behaviours"), *b;
    size_t i;

    json_array_foreach(json_object_get(list, "behaviours"), i, b)
    {
        const char *d = h_str(b, "description");
        assert_non_null(d);
        assert_true(strlen(d) > 10);
        if (strstr(d, "seed") != NULL)
            fail_msg("%s's description points nowhere: %s", h_str(b, "name"), d);
    }
    json_decref(list);
    json_t *counter = get_json(srv, "/behaviours/counter");
    assert_non_null(strstr(h_str(counter, "description"), "Elixir GenServer lessons"));
    json_decref(counter);
    json_t *batcher = get_json(srv, "/behaviours/batcher");
    assert_non_null(strstr(h_str(batcher, "description"), "Blocky.Consumer"));
    assert_non_null(strstr(h_str(batcher, "description"), "deferred-reply"));
    json_decref(batcher);
    H_PASS(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_system_overview, setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_memory_grows_with_the_state, setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_every_timer_is_listed_with_its_maker, setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_history_is_replayed_to_a_late_client, setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_history_keeps_the_last_n, setup_short_history,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_descriptions_name_their_source, setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_the_store_and_restored_timers, setup_durable,
                                        teardown_durable),
    };

    h_init(150);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
