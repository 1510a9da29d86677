/*
 * test_supervisor.c: crashes, restarts and the events that report them.
 *
 * What a user relies on, as in Elixir's supervisors: a permanent server is always restarted,
 * a transient one only after a crash (not after "normal", "shutdown" or ["shutdown", _]), a
 * temporary one never; a restart runs init again with the original args, under the same name,
 * as a new incarnation; restart intensity (default 3 restarts within 5 s) leaves a server that
 * crashes once more "down" with a down_reason, and the window slides; calls a server held when
 * it crashed fail with server_crashed and the reason; status keeps restarts, messages_handled
 * and last_crash_reason across restarts; OTP's defaults for missing handlers hold; and an
 * event subscription sees started, state_changed, crashed, restarted, down and stopped, in
 * order per server, and nothing after gs_unsubscribe. Uses the "probe" behaviour of probe.h.
 */
#include "testutil.h"

#include "probe.h"

static gs_start_options_t restart_opts(gs_restart_t restart, unsigned max_restarts,
                                       unsigned max_seconds)
{
    gs_start_options_t opts = tu_start_options(restart, 0);
    if (max_restarts != (unsigned)-1)
        opts.max_restarts = max_restarts;
    if (max_seconds != 0)
        opts.max_seconds = max_seconds;
    return opts;
}

/* Crash name with a cast ["crash", reason] and wait until its restart count reaches want. */
static void crash_and_wait_restarts(gs_runtime_t *rt, const char *name, const char *reason,
                                    long long want)
{
    char msg[256];
    snprintf(msg, sizeof(msg), "[\"crash\", %s]", reason);
    assert_int_equal(tu_cast(rt, name, msg), 0);
    tu_wait_running(rt, name, want);
}

/* Whether name is gone from the registry or "down". */
static bool gone_or_down(gs_runtime_t *rt, const char *name)
{
    json_t *st = gs_server_status(rt, name);
    bool yes = st == NULL || strcmp(json_string_value(json_object_get(st, "status")), "down") == 0;
    json_decref(st);
    return yes;
}

/* ---------------------------------------------------------------------------------------- */
/* Restart types                                                                              */
/* ---------------------------------------------------------------------------------------- */

static void test_defaults(void **state)
{
    (void)state;
    gs_start_options_t opts;
    memset(&opts, 0xff, sizeof(opts));
    gs_start_options_init(&opts);
    assert_int_equal(opts.restart, GS_PERMANENT);
    assert_int_equal(opts.max_restarts, 3);
    assert_int_equal(opts.max_seconds, 5);
    assert_int_equal(opts.mailbox_limit, 0);
}

/* A permanent server is restarted after a crash: new incarnation, same args, init again. */
static void test_permanent_restarted_after_crash(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "perm", probe_behaviour(), "{\"a\": 1}", NULL);
    for (int i = 0; i < 3; i++)
        tu_call_expect(rt, "perm", "\"ping\"", "\"pong\"");
    gs_server_t *old = gs_whereis(rt, "perm");
    crash_and_wait_restarts(rt, "perm", "{\"e\": 1}", 1);
    /* Counters survive the restart: the 3 pings and the crashing cast were handled. */
    long long handled = tu_status_int(rt, "perm", "messages_handled");
    if (handled < 4)
        fail_msg("messages_handled %lld after the restart, want >= 4", handled);

    gs_server_t *now = gs_whereis(rt, "perm");
    assert_non_null(now);
    assert_ptr_not_equal(now, old);
    assert_int_equal(gs_cast_server(old, json_string("x")), GS_ENOSERVER);
    gs_server_unref(old);
    gs_server_unref(now);
    assert_int_equal(probe_inits(), 2);
    json_t *log = probe_terminated();
    assert_json_eq(log, "[[\"perm\", {\"e\": 1}, 0]]");
    json_decref(log);

    json_t *st = probe_state(rt, "perm");
    assert_json_eq(json_object_get(st, "args"), "{\"a\": 1}");
    json_decref(st);
    json_t *reason = tu_status_field(rt, "perm", "last_crash_reason");
    assert_json_eq(reason, "{\"e\": 1}");
    json_decref(reason);

    /* A crash during a call: the caller gets the reason, and the server comes back again. */
    json_t *r = NULL;
    assert_int_equal(tu_call(rt, "perm", "[\"crash\", \"in call\"]", TU_WAIT_MS, &r), GS_ECRASHED);
    assert_json_eq(r, "\"in call\"");
    json_decref(r);
    TU_WAIT_UNTIL(tu_status_int(rt, "perm", "restarts") == 2, TU_WAIT_MS);
    tu_call_expect(rt, "perm", "\"ping\"", "\"pong\"");
}

/* A permanent server is restarted even after a normal exit. */
static void test_permanent_restarted_after_normal_exit(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "perm", probe_behaviour(), NULL, NULL);
    crash_and_wait_restarts(rt, "perm", "\"normal\"", 1);
    assert_int_equal(probe_inits(), 2);
    tu_call_expect(rt, "perm", "\"ping\"", "\"pong\"");
}

/* A transient server is restarted after a crash, not after a normal exit. */
static void test_transient(void **state)
{
    gs_runtime_t *rt = *state;
    gs_start_options_t opts = restart_opts(GS_TRANSIENT, (unsigned)-1, 0);
    tu_events_subscribe(rt);
    tu_start(rt, "tr", probe_behaviour(), NULL, &opts);
    crash_and_wait_restarts(rt, "tr", "\"oops\"", 1);
    assert_int_equal(probe_inits(), 2);

    assert_int_equal(tu_cast(rt, "tr", "[\"crash\", \"normal\"]"), 0);
    TU_WAIT_UNTIL(probe_terminates() == 2, TU_WAIT_MS);
    TU_WAIT_UNTIL(tu_status_int(rt, "tr", "restarts") == -1, TU_WAIT_MS);
    assert_null(gs_whereis(rt, "tr"));

    /* "shutdown" and ["shutdown", _] are normal exits too. */
    const char *normal[] = {"\"shutdown\"", "[\"shutdown\", {\"by\": \"test\"}]"};
    for (int i = 0; i < 2; i++) {
        tu_start(rt, "tr", probe_behaviour(), NULL, &opts);
        char msg[128];
        snprintf(msg, sizeof(msg), "[\"crash\", %s]", normal[i]);
        assert_int_equal(tu_cast(rt, "tr", msg), 0);
        TU_WAIT_UNTIL(tu_status_int(rt, "tr", "restarts") == -1, TU_WAIT_MS);
    }
    /* Each exit path ends by saying what it did: "stopped" for the three normal exits. Once
     * the third is there, a wrong restart would have shown (as "restarted"). */
    TU_WAIT_UNTIL(tu_events_count("tr", "stopped") == 3, TU_WAIT_MS);
    assert_int_equal(tu_events_count("tr", "restarted"), 1);
    assert_null(gs_whereis(rt, "tr"));
    assert_int_equal(probe_inits(), 4);
    assert_int_equal(tu_stats(rt).servers, 0);
}

/* A temporary server is never restarted. */
static void test_temporary(void **state)
{
    gs_runtime_t *rt = *state;
    gs_start_options_t opts = restart_opts(GS_TEMPORARY, (unsigned)-1, 0);
    tu_events_subscribe(rt);
    tu_start(rt, "tmp", probe_behaviour(), NULL, &opts);
    assert_int_equal(tu_cast(rt, "tmp", "[\"crash\", \"once\"]"), 0);
    TU_WAIT_UNTIL(probe_terminates() == 1, TU_WAIT_MS);
    TU_WAIT_UNTIL(gone_or_down(rt, "tmp"), TU_WAIT_MS);
    /* The crash's exit path ends with "down" (not restarted) or "restarted": once that is
     * there, a wrong restart would have shown. */
    TU_WAIT_UNTIL(tu_events_count("tmp", "down") + tu_events_count("tmp", "restarted") >= 1,
                  TU_WAIT_MS);
    assert_int_equal(tu_events_count("tmp", "restarted"), 0);
    assert_int_equal(probe_inits(), 1);
    assert_true(gone_or_down(rt, "tmp"));
    assert_int_equal(tu_call(rt, "tmp", "\"ping\"", 1000, NULL), GS_ENOSERVER);
    json_t *st = gs_server_status(rt, "tmp");
    if (st != NULL) {
        /* Kept as "down", it says why and has not been restarted. */
        assert_false(json_is_null(json_object_get(st, "down_reason")));
        assert_json_eq(json_object_get(st, "restarts"), "0");
        json_decref(st);
        assert_int_equal(gs_stop(rt, "tmp", NULL, TU_WAIT_MS), 0);
        assert_null(gs_server_status(rt, "tmp"));
    }
    /* Either way the name can be used again. */
    tu_start(rt, "tmp", probe_behaviour(), NULL, &opts);
    tu_call_expect(rt, "tmp", "\"ping\"", "\"pong\"");
}

/* ---------------------------------------------------------------------------------------- */
/* Intensity                                                                                  */
/* ---------------------------------------------------------------------------------------- */

/* Default intensity: three restarts within 5 s; the fourth crash leaves it down. */
static void test_intensity_default(void **state)
{
    gs_runtime_t *rt = *state;
    tu_events_subscribe(rt);
    tu_start(rt, "flaky", probe_behaviour(), NULL, NULL);
    for (int i = 1; i <= 3; i++)
        crash_and_wait_restarts(rt, "flaky", "\"again\"", i);
    assert_int_equal(probe_inits(), 4);

    assert_int_equal(tu_cast(rt, "flaky", "[\"crash\", \"the last straw\"]"), 0);
    TU_WAIT_UNTIL(tu_status_str_is(rt, "flaky", "status", "down"), TU_WAIT_MS);
    json_t *st = gs_server_status(rt, "flaky");
    assert_json_eq(json_object_get(st, "restarts"), "3");
    assert_json_eq(json_object_get(st, "last_crash_reason"), "\"the last straw\"");
    assert_false(json_is_null(json_object_get(st, "down_reason")));
    assert_non_null(json_object_get(st, "down_reason"));
    json_decref(st);
    /* The exit path that gave up ends with "down": after it, no restart can follow. */
    TU_WAIT_UNTIL(tu_events_count("flaky", "down") == 1, TU_WAIT_MS);
    assert_int_equal(tu_events_count("flaky", "restarted"), 3);
    assert_int_equal(probe_inits(), 4);
    assert_int_equal(probe_terminates(), 4);

    /* A down server is registered but takes no messages. */
    assert_int_equal(tu_stats(rt).servers, 1);
    assert_int_equal(tu_call(rt, "flaky", "\"ping\"", 1000, NULL), GS_ENOSERVER);
    assert_int_equal(tu_cast(rt, "flaky", "\"x\""), GS_ENOSERVER);
    assert_null(gs_whereis(rt, "flaky"));

    /* Stopping it simply removes it (no terminate: it has no state); then the name is free. */
    assert_int_equal(gs_stop(rt, "flaky", NULL, TU_WAIT_MS), 0);
    assert_null(gs_server_status(rt, "flaky"));
    assert_int_equal(tu_stats(rt).servers, 0);
    assert_int_equal(probe_terminates(), 4);
    tu_start(rt, "flaky", probe_behaviour(), NULL, NULL);
    tu_call_expect(rt, "flaky", "\"ping\"", "\"pong\"");
}

/* max_restarts 0: the first crash is already too many. */
static void test_intensity_zero(void **state)
{
    gs_runtime_t *rt = *state;
    gs_start_options_t opts = restart_opts(GS_PERMANENT, 0, 0);
    tu_start(rt, "fragile", probe_behaviour(), NULL, &opts);
    assert_int_equal(tu_cast(rt, "fragile", "[\"crash\", \"x\"]"), 0);
    TU_WAIT_UNTIL(tu_status_str_is(rt, "fragile", "status", "down"), TU_WAIT_MS);
    assert_int_equal(tu_status_int(rt, "fragile", "restarts"), 0);
    assert_int_equal(probe_inits(), 1);

    /* A new start under a down server's name replaces it with a fresh, running server. */
    tu_start(rt, "fragile", probe_behaviour(), NULL, NULL);
    tu_call_expect(rt, "fragile", "\"ping\"", "\"pong\"");
    assert_true(tu_status_str_is(rt, "fragile", "status", "running"));
    assert_int_equal(tu_stats(rt).servers, 1);
}

/* The intensity window slides: restarts older than max_seconds no longer count. */
static void test_intensity_window_slides(void **state)
{
    gs_runtime_t *rt = *state;
    gs_start_options_t opts = restart_opts(GS_PERMANENT, 1, 1);
    tu_start(rt, "w", probe_behaviour(), NULL, &opts);
    crash_and_wait_restarts(rt, "w", "1", 1);
    /* A bare sleep on purpose: the window is real time (max_seconds 1), and only the clock
     * says when a restart has aged out of it. The restart was recorded before this thread saw
     * it, so a second after that it is out (the runtime's clock is monotonic, in ms; 100 ms
     * spare for rounding). Longer would not be more generous, only slower. */
    tu_sleep_ms(1100);
    crash_and_wait_restarts(rt, "w", "2", 2);
    /* A second restart within the window is one too many. */
    assert_int_equal(tu_cast(rt, "w", "[\"crash\", 3]"), 0);
    TU_WAIT_UNTIL(tu_status_str_is(rt, "w", "status", "down"), TU_WAIT_MS);
    assert_int_equal(tu_status_int(rt, "w", "restarts"), 2);
}

/* ---------------------------------------------------------------------------------------- */
/* Calls across a crash, OTP defaults                                                         */
/* ---------------------------------------------------------------------------------------- */

/* Calls held for a deferred reply fail with server_crashed and the reason on a crash. */
static void test_held_calls_fail_on_crash(void **state)
{
    gs_runtime_t *rt = *state;
    enum { N = 3 };
    tu_start(rt, "h", probe_behaviour(), NULL, NULL);
    tu_reply_t r[N];
    for (int i = 0; i < N; i++) {
        tu_reply_init(&r[i]);
        assert_int_equal(
            gs_call_async(rt, "h", json_string("hold"), TU_WAIT_MS, tu_reply_cb, &r[i]), 0);
    }
    TU_WAIT_UNTIL(tu_status_int(rt, "h", "held_calls") == N, TU_WAIT_MS);
    json_t *ids = NULL;
    assert_int_equal(tu_call(rt, "h", "\"held_froms\"", TU_WAIT_MS, &ids), 0);
    assert_int_equal(json_array_size(ids), N);

    crash_and_wait_restarts(rt, "h", "{\"bang\": true}", 1);
    for (int i = 0; i < N; i++) {
        tu_reply_expect(&r[i], GS_ECRASHED);
        assert_json_eq(r[i].result, "{\"bang\": true}");
    }
    /* Their froms are spent: a reply now is refused, and the new incarnation holds nothing. */
    for (size_t i = 0; i < N; i++) {
        gs_from_t from = {.rt = rt, .id = (uint64_t)json_integer_value(json_array_get(ids, i))};
        assert_int_equal(gs_reply(from, json_string("too late")), GS_ENOCALL);
    }
    json_decref(ids);
    assert_int_equal(tu_status_int(rt, "h", "held_calls"), 0);
    assert_int_equal(tu_stats(rt).held_calls, 0);

    tu_destroy(state);
    for (int i = 0; i < N; i++) {
        assert_int_equal(r[i].runs, 1);
        tu_reply_close(&r[i]);
    }
}

/* Without handle_cast a cast crashes with ["bad_cast", msg]; without handle_info infos are
 * ignored. */
static void test_missing_handlers(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "bare", bare_behaviour(), NULL, NULL);
    assert_int_equal(tu_send(rt, "bare", "[\"ignored\", 1]"), 0);
    TU_WAIT_UNTIL(tu_status_int(rt, "bare", "messages_handled") >= 1, TU_WAIT_MS);
    assert_int_equal(tu_status_int(rt, "bare", "restarts"), 0);

    assert_int_equal(tu_cast(rt, "bare", "[\"hello\", 2]"), 0);
    TU_WAIT_UNTIL(tu_status_int(rt, "bare", "restarts") == 1, TU_WAIT_MS);
    json_t *reason = tu_status_field(rt, "bare", "last_crash_reason");
    assert_json_eq(reason, "[\"bad_cast\", [\"hello\", 2]]");
    json_decref(reason);
}

/* ---------------------------------------------------------------------------------------- */
/* Events                                                                                     */
/* ---------------------------------------------------------------------------------------- */

/* Assert the event types of a tu_events_lifecycle() list, e.g. "[\"started\", \"stopped\"]". */
#define assert_types(list, want) assert_types_at((list), (want), __FILE__, __LINE__)
static void assert_types_at(json_t *list, const char *want, const char *file, int line)
{
    json_t *types = json_array();
    size_t i;
    json_t *entry;
    json_array_foreach(list, i, entry)
    {
        json_array_append(types, json_array_get(entry, 0));
    }
    tu_assert_json_eq(types, want, file, line);
    json_decref(types);
}

static void test_event_names(void **state)
{
    (void)state;
    assert_string_equal(gs_event_name(GS_EVENT_STARTED), "started");
    assert_string_equal(gs_event_name(GS_EVENT_STOPPED), "stopped");
    assert_string_equal(gs_event_name(GS_EVENT_CRASHED), "crashed");
    assert_string_equal(gs_event_name(GS_EVENT_RESTARTED), "restarted");
    assert_string_equal(gs_event_name(GS_EVENT_DOWN), "down");
    assert_string_equal(gs_event_name(GS_EVENT_STATE_CHANGED), "state_changed");
}

/* A subscription sees each server's lifecycle in order, and nothing after unsubscribe. */
static void test_events(void **state)
{
    gs_runtime_t *rt = *state;
    tu_events_subscribe(rt);

    gs_start_options_t opts = restart_opts(GS_PERMANENT, 1, 0);
    tu_start(rt, "ev", probe_behaviour(), NULL, &opts);
    assert_int_equal(tu_cast(rt, "ev", "[\"log\", 1]"), 0);
    TU_WAIT_UNTIL(tu_events_count("ev", "state_changed") >= 1, TU_WAIT_MS);
    crash_and_wait_restarts(rt, "ev", "\"c1\"", 1);
    assert_int_equal(tu_cast(rt, "ev", "[\"crash\", \"c2\"]"), 0);
    TU_WAIT_UNTIL(tu_events_count("ev", "down") == 1, TU_WAIT_MS);

    tu_start(rt, "ev2", probe_behaviour(), NULL, NULL);
    assert_int_equal(gs_stop(rt, "ev2", json_string("done"), TU_WAIT_MS), 0);
    TU_WAIT_UNTIL(tu_events_count("ev2", "stopped") == 1, TU_WAIT_MS);

    /* ev: started, crashed c1, restarted, crashed c2, down (past max_restarts 1). */
    json_t *got = tu_events_lifecycle("ev");
    assert_types(got, "[\"started\", \"crashed\", \"restarted\", \"crashed\", \"down\"]");
    assert_json_eq(json_array_get(json_array_get(got, 1), 1), "\"c1\"");
    assert_json_eq(json_array_get(json_array_get(got, 3), 1), "\"c2\"");
    assert_false(json_is_null(json_array_get(json_array_get(got, 4), 1)));
    json_decref(got);

    /* Removing a server that is down says "stopped" too: its name is free again. */
    assert_int_equal(gs_stop(rt, "ev", NULL, TU_WAIT_MS), 0);
    TU_WAIT_UNTIL(tu_events_count("ev", "stopped") == 1, TU_WAIT_MS);
    assert_null(gs_server_status(rt, "ev"));

    got = tu_events_lifecycle("ev2");
    assert_types(got, "[\"started\", \"stopped\"]");
    assert_json_eq(json_array_get(json_array_get(got, 1), 1), "\"done\"");
    json_decref(got);

    /* Every event names the behaviour. */
    json_t *log = tu_events_log();
    size_t i;
    json_t *entry;
    json_array_foreach(log, i, entry)
    {
        assert_string_equal(json_string_value(json_array_get(entry, 2)), "probe");
    }
    json_decref(log);

    /* After unsubscribe, nothing more arrives. */
    tu_events_unsubscribe(rt);
    size_t before = tu_events_count(NULL, NULL);
    tu_start(rt, "ev4", probe_behaviour(), NULL, NULL);
    assert_int_equal(tu_cast(rt, "ev4", "[\"log\", 1]"), 0);
    assert_int_equal(gs_stop(rt, "ev4", NULL, TU_WAIT_MS), 0);
    gs_unsubscribe(rt, NULL);
    tu_destroy(state);
    assert_int_equal(tu_events_count(NULL, NULL), before);
}

/* A temporary server that crashes: crashed, then down ("RESTARTED or DOWN follows"). */
static void test_events_temporary_crash(void **state)
{
    gs_runtime_t *rt = *state;
    tu_events_subscribe(rt);
    gs_start_options_t tmp = restart_opts(GS_TEMPORARY, (unsigned)-1, 0);
    tu_start(rt, "ev3", probe_behaviour(), NULL, &tmp);
    assert_int_equal(tu_cast(rt, "ev3", "[\"crash\", \"t\"]"), 0);
    TU_WAIT_UNTIL(tu_events_count("ev3", "crashed") == 1, TU_WAIT_MS);
    /* Whatever follows the crash comes from the same exit, so it is there once terminate ran. */
    TU_WAIT_UNTIL(probe_terminates() == 1, TU_WAIT_MS);
    TU_WAIT_UNTIL(tu_events_count("ev3", NULL) - tu_events_count("ev3", "state_changed") >= 3,
                  TU_WAIT_MS);
    tu_events_unsubscribe(rt);
    json_t *got = tu_events_lifecycle("ev3");
    assert_types(got, "[\"started\", \"crashed\", \"down\"]");
    assert_json_eq(json_array_get(json_array_get(got, 1), 1), "\"t\"");
    json_decref(got);
}

/* A crash in a batch of messages: the messages handled before it still count. */
static void test_messages_handled_across_restart(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "m", probe_behaviour(), NULL, NULL);
    assert_int_equal(tu_cast(rt, "m", "\"block\""), 0);
    TU_WAIT_UNTIL(probe_is_blocked(), TU_WAIT_MS);
    /* Queue 20 casts and a crash behind the blocker, so that they are handled in one go. */
    for (int i = 0; i < 20; i++)
        assert_int_equal(tu_cast(rt, "m", "[\"log\", 1]"), 0);
    assert_int_equal(tu_cast(rt, "m", "[\"crash\", \"after 20\"]"), 0);
    probe_open_gate();
    TU_WAIT_UNTIL(tu_status_int(rt, "m", "restarts") == 1, TU_WAIT_MS);
    /* block + 20 logs + crash = 22 messages handled by the first incarnation. */
    long long handled = tu_status_int(rt, "m", "messages_handled");
    if (handled < 22)
        fail_msg("messages_handled %lld after the restart, want >= 22", handled);
}

/* Casts by name while the server crashes and is restarted, again and again: each cast is
 * either accepted (0) or refused because the incarnation it found had just died
 * (GS_ENOSERVER), never anything else; and every accepted cast is accounted for, handled by
 * one of the incarnations or dropped with a dead one's mailbox and counted. */
typedef struct caster_s {
    gs_runtime_t *rt;
    atomic_int stop;
    long accepted, refused, other;
} caster_t;

static void *caster_main(void *arg)
{
    caster_t *c = arg;
    while (!atomic_load(&c->stop)) {
        int rc = gs_cast(c->rt, "phoenix", json_pack("[si]", "log", 1));
        if (rc == 0)
            c->accepted++;
        else if (rc == GS_ENOSERVER || rc == GS_EOVERLOADED) /* a full mailbox: fine too */
            c->refused++;
        else
            c->other++;
    }
    return NULL;
}

typedef struct restarts_past_s {
    gs_runtime_t *rt;
    const char *name;
    long long before;
} restarts_past_t;

/* Whether the server restarted since `before` was read (a tu_wait_until predicate). */
static bool restarted_past(void *arg)
{
    restarts_past_t *p = arg;
    return tu_status_int(p->rt, p->name, "restarts") > p->before;
}

static void test_casts_to_a_name_being_restarted(void **state)
{
    gs_runtime_t *rt = *state;
    gs_start_options_t opts = restart_opts(GS_PERMANENT, 1000000, 1);
    tu_start(rt, "phoenix", probe_behaviour(), "{\"log\": false}", &opts);
    uint64_t dropped0 = tu_stats(rt).dropped_messages;
    caster_t c = {.rt = rt};
    atomic_init(&c.stop, 0);
    pthread_t th;
    long crash_casts = 0;
    assert_int_equal(pthread_create(&th, NULL, caster_main, &c), 0);
    for (int i = 0; i < 50; i++) {
        /* The crash goes through the mailbox like any cast. It too may find the incarnation
         * that just died (GS_ENOSERVER), or land in its mailbox and be dropped with it: the
         * same two outcomes, counted the same way below. So send it again until a restart
         * shows that one was handled. */
        restarts_past_t past = {rt, "phoenix", tu_status_int(rt, "phoenix", "restarts")};
        int64_t deadline = tu_now_ms() + TU_WAIT_MS;
        while (!restarted_past(&past)) {
            assert_true(tu_now_ms() < deadline);
            if (tu_cast(rt, "phoenix", "[\"crash\", \"boom\"]") == 0)
                crash_casts++;
            tu_wait_until(restarted_past, &past, 50);
        }
    }
    atomic_store(&c.stop, 1);
    pthread_join(th, NULL);
    /* A spare crash cast may still be queued, so the stop may meet an incarnation as it dies:
     * it then stops the one that replaces it (the name is what the caller means). */
    assert_int_equal(gs_stop(rt, "phoenix", NULL, TU_WAIT_MS), 0);

    assert_int_equal(c.other, 0);
    assert_true(c.accepted > 0);
    /* Every incarnation ran terminate once (crashes, then the final stop) with its count of
     * casts handled; a crash cast handled is one terminate with reason "boom". */
    json_t *log = probe_terminated();
    long long handled = 0, crashes = 0;
    size_t i;
    json_t *e;
    json_array_foreach(log, i, e)
    {
        handled += json_integer_value(json_array_get(e, 2));
        if (json_is_string(json_array_get(e, 1)) &&
            strcmp(json_string_value(json_array_get(e, 1)), "boom") == 0)
            crashes++;
    }
    assert_int_equal((long long)json_array_size(log), crashes + 1);
    assert_true(crashes >= 10);
    json_decref(log);
    uint64_t dropped = tu_stats(rt).dropped_messages - dropped0;
    /* Each accepted cast was handled by exactly one incarnation or dropped and counted. */
    assert_int_equal(handled + crashes + (long long)dropped, c.accepted + crash_casts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        probe_test(test_permanent_restarted_after_crash),
        probe_test(test_permanent_restarted_after_normal_exit),
        probe_test(test_transient),
        probe_test(test_temporary),
        probe_test(test_intensity_default),
        probe_test(test_intensity_zero),
        probe_test(test_intensity_window_slides),
        probe_test(test_held_calls_fail_on_crash),
        probe_test(test_missing_handlers),
        cmocka_unit_test(test_event_names),
        probe_test(test_events),
        probe_test(test_events_temporary_crash),
        probe_test(test_messages_handled_across_restart),
        probe_test(test_casts_to_a_name_being_restarted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
