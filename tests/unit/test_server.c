/*
 * test_server.c: starting, stopping and finding servers (gs_start, gs_stop, gs_stop_async,
 * gs_whereis, gs_server_status, gs_servers_json, gs_self).
 *
 * What a user relies on: a name is taken by exactly one server (already_started otherwise);
 * a failing init leaves nothing behind and hands back its reason; the name is registered
 * before init runs, so messages sent during init wait for it; stopping a server first drains
 * the messages already in its mailbox, runs terminate with the reason, fails the callers it
 * still holds with server_stopped and frees the name; a handle names one incarnation only;
 * status and listing report the documented fields; names are 1 to 255 bytes; and 100,000 idle
 * servers start and stop cleanly. Each test runs in a fresh runtime with two schedulers,
 * driving the "probe" test behaviour of probe.h.
 */
#include "testutil.h"

#include "probe.h"

/* A started server answers calls and is found under its name, with its name and runtime. */
static void test_start_call_whereis(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "alpha", probe_behaviour(), NULL, NULL);
    tu_call_expect(rt, "alpha", "\"ping\"", "\"pong\"");
    tu_call_expect(rt, "alpha", "[\"echo\", {\"a\": [1, 2.5, null, \"x\"]}]",
                   "{\"a\": [1, 2.5, null, \"x\"]}");

    gs_server_t *s = gs_whereis(rt, "alpha");
    assert_non_null(s);
    assert_string_equal(gs_server_name(s), "alpha");
    assert_ptr_equal(gs_server_runtime(s), rt);
    assert_ptr_equal(gs_server_ref(s), s);
    gs_server_unref(s);
    gs_server_unref(s);
    gs_server_unref(NULL);

    assert_null(gs_whereis(rt, "nobody"));
    assert_int_equal(probe_inits(), 1);
}

/* The args given to gs_start reach init (JSON null when none were given). */
static void test_args_reach_init(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "with", probe_behaviour(), "{\"k\": [1, 2]}", NULL);
    tu_start(rt, "without", probe_behaviour(), NULL, NULL);
    tu_call_expect(rt, "with", "\"state\"",
                   "{\"args\": {\"k\": [1, 2]}, \"casts\": [], \"infos\": [], \"ncasts\": 0,"
                   " \"ninfos\": 0, \"calls\": 1, \"held\": 0}");
    json_t *st = probe_state(rt, "without");
    assert_non_null(st);
    assert_json_eq(json_object_get(st, "args"), "null");
    json_decref(st);
}

/* A second start under a taken name fails with already_started and leaves the first alone. */
static void test_already_started(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "one", probe_behaviour(), "{\"n\": 1}", NULL);
    gs_server_t *first = gs_whereis(rt, "one");

    json_t *args = tu_json("{\"n\": 2}");
    json_t *reason = NULL;
    assert_int_equal(gs_start(rt, "one", probe_behaviour(), args, NULL, &reason), GS_EALREADY);
    json_decref(args);
    json_decref(reason);

    gs_server_t *now = gs_whereis(rt, "one");
    assert_ptr_equal(now, first);
    json_t *st = probe_state(rt, "one");
    assert_json_eq(json_object_get(st, "args"), "{\"n\": 1}");
    json_decref(st);
    gs_server_unref(now);
    gs_server_unref(first);
    /* Whatever the refused start did, it left no second server to terminate. */
    tu_destroy(state);
    assert_int_equal(probe_terminates(), 1);
}

/* An init that fails returns init_failed with its reason; the name stays free. */
static void test_init_failure(void **state)
{
    gs_runtime_t *rt = *state;
    json_t *args = tu_json("{\"fail_init\": {\"why\": \"no database\"}}");
    json_t *reason = NULL;
    assert_int_equal(gs_start(rt, "bad", probe_behaviour(), args, NULL, &reason), GS_EINIT);
    assert_json_eq(reason, "{\"why\": \"no database\"}");
    json_decref(reason);

    /* The reason pointer is optional. */
    assert_int_equal(gs_start(rt, "bad", probe_behaviour(), args, NULL, NULL), GS_EINIT);
    json_decref(args);

    /* An init that gives no reason. */
    args = tu_json("{\"fail_init\": null}");
    json_t *stale = json_string("stale");
    reason = stale;
    assert_int_equal(gs_start(rt, "bad", probe_behaviour(), args, NULL, &reason), GS_EINIT);
    assert_null(reason);
    json_decref(stale);
    json_decref(args);

    assert_null(gs_whereis(rt, "bad"));
    assert_null(gs_server_status(rt, "bad"));
    assert_int_equal(tu_call(rt, "bad", "\"ping\"", 1000, NULL), GS_ENOSERVER);
    assert_int_equal(tu_stats(rt).servers, 0);

    /* The name is free for a server whose init succeeds. */
    tu_start(rt, "bad", probe_behaviour(), NULL, NULL);
    tu_call_expect(rt, "bad", "\"ping\"", "\"pong\"");

    /* terminate never ran for the failed inits: there was no state to release. */
    tu_destroy(state);
    assert_int_equal(probe_terminates(), 1);
}

/* Bad arguments are refused up front. */
static void test_start_bad_arguments(void **state)
{
    gs_runtime_t *rt = *state;
    assert_int_equal(gs_start(rt, "", probe_behaviour(), NULL, NULL, NULL), GS_EINVAL);
    assert_int_equal(gs_start(rt, NULL, probe_behaviour(), NULL, NULL, NULL), GS_EINVAL);
    assert_int_equal(gs_start(rt, "x", NULL, NULL, NULL, NULL), GS_EINVAL);
    static const gs_behaviour_t no_init = {.name = "no_init"};
    assert_int_equal(gs_start(rt, "x", &no_init, NULL, NULL, NULL), GS_EINVAL);
    assert_null(gs_whereis(rt, "x"));
    assert_int_equal(tu_stats(rt).servers, 0);
}

/* Names of 1 and 255 bytes work; 256 bytes are refused. */
static void test_name_lengths(void **state)
{
    gs_runtime_t *rt = *state;
    char name[257];
    memset(name, 'n', 256);
    name[256] = '\0';
    assert_int_equal(gs_start(rt, name, probe_behaviour(), NULL, NULL, NULL), GS_EINVAL);

    name[255] = '\0';
    tu_start(rt, name, probe_behaviour(), NULL, NULL);
    tu_call_expect(rt, name, "\"ping\"", "\"pong\"");
    json_t *st = gs_server_status(rt, name);
    assert_non_null(st);
    assert_string_equal(json_string_value(json_object_get(st, "name")), name);
    json_decref(st);
    gs_server_t *s = gs_whereis(rt, name);
    assert_non_null(s);
    assert_int_equal(strlen(gs_server_name(s)), 255);
    gs_server_unref(s);

    tu_start(rt, "n", probe_behaviour(), NULL, NULL);
    tu_call_expect(rt, "n", "\"ping\"", "\"pong\"");
    /* A name that is a prefix of another is a different name. */
    name[254] = '\0';
    assert_null(gs_whereis(rt, name));

    /* Names are bytes: UTF-8 and punctuation are fine. */
    tu_start(rt, "caf\xc3\xa9/1 2", probe_behaviour(), NULL, NULL);
    tu_call_expect(rt, "caf\xc3\xa9/1 2", "\"ping\"", "\"pong\"");
}

/* gs_stop drains the mailbox, runs terminate with the reason and frees the name. */
static void test_stop_runs_terminate(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "s", probe_behaviour(), "{\"log\": false}", NULL);
    for (int i = 0; i < 100; i++)
        assert_int_equal(tu_cast(rt, "s", "[\"log\", 1]"), 0);
    assert_int_equal(gs_stop(rt, "s", json_string("bye"), TU_WAIT_MS), 0);

    /* terminate ran once, after all 100 queued casts, with the given reason. */
    json_t *log = probe_terminated();
    assert_json_eq(log, "[[\"s\", \"bye\", 100]]");
    json_decref(log);
    assert_null(gs_whereis(rt, "s"));
    assert_null(gs_server_status(rt, "s"));
    assert_int_equal(gs_stop(rt, "s", NULL, 1000), GS_ENOSERVER);
    assert_int_equal(tu_cast(rt, "s", "\"x\""), GS_ENOSERVER);

    /* The name is free again; a NULL reason means "normal". */
    tu_start(rt, "s", probe_behaviour(), NULL, NULL);
    assert_int_equal(gs_stop(rt, "s", NULL, TU_WAIT_MS), 0);
    log = probe_terminated();
    assert_json_eq(json_array_get(log, 1), "[\"s\", \"normal\", 0]");
    json_decref(log);
    assert_int_equal(tu_stats(rt).servers, 0);
}

/* A stopped server is not restarted, even a permanent one stopped with a crash-like reason. */
static void test_stopped_not_restarted(void **state)
{
    gs_runtime_t *rt = *state;
    tu_events_subscribe(rt);
    tu_start(rt, "p", probe_behaviour(), NULL, NULL);
    assert_int_equal(gs_stop(rt, "p", json_string("boom"), TU_WAIT_MS), 0);
    /* The exit path decides on a restart and then says what it did: "stopped" for a server
     * that stays gone, "restarted" otherwise. Once that event is there, a wrong restart would
     * have shown. */
    TU_WAIT_UNTIL(tu_events_count("p", "stopped") + tu_events_count("p", "restarted") >= 1,
                  TU_WAIT_MS);
    assert_int_equal(tu_events_count("p", "restarted"), 0);
    assert_null(gs_whereis(rt, "p"));
    assert_int_equal(probe_inits(), 1);
    assert_int_equal(probe_terminates(), 1);
}

/* Callers a server still holds fail with server_stopped and the reason when it is stopped. */
static void test_stop_fails_held_callers(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "h", probe_behaviour(), NULL, NULL);
    tu_reply_t r1, r2;
    tu_reply_init(&r1);
    tu_reply_init(&r2);
    assert_int_equal(gs_call_async(rt, "h", json_string("hold"), GS_INFINITY, tu_reply_cb, &r1), 0);
    assert_int_equal(gs_call_async(rt, "h", json_string("hold"), TU_WAIT_MS, tu_reply_cb, &r2), 0);
    TU_WAIT_UNTIL(tu_status_int(rt, "h", "held_calls") == 2, TU_WAIT_MS);

    assert_int_equal(gs_stop(rt, "h", json_string("going away"), TU_WAIT_MS), 0);
    tu_reply_expect(&r1, GS_ESTOPPED);
    assert_json_eq(r1.result, "\"going away\"");
    tu_reply_expect(&r2, GS_ESTOPPED);
    assert_json_eq(r2.result, "\"going away\"");
    assert_int_equal(tu_stats(rt).held_calls, 0);

    tu_destroy(state);
    assert_int_equal(r1.runs, 1);
    assert_int_equal(r2.runs, 1);
    tu_reply_close(&r1);
    tu_reply_close(&r2);
}

typedef struct stop_seen_s {
    tu_reply_t reply;
    atomic_int terminates_seen; /* probe terminates when the callback ran */
} stop_seen_t;

static void stop_seen_cb(int status, void *arg)
{
    stop_seen_t *s = arg;
    atomic_store(&s->terminates_seen, probe_terminates());
    tu_done_cb(status, &s->reply);
}

/* gs_stop_async calls back once, after terminate ran; an up-front error never calls back. */
static void test_stop_async(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "a", probe_behaviour(), "{\"terminate_sleep_ms\": 50}", NULL);
    stop_seen_t seen;
    tu_reply_init(&seen.reply);
    atomic_init(&seen.terminates_seen, -1);
    assert_int_equal(gs_stop_async(rt, "a", NULL, stop_seen_cb, &seen), 0);
    tu_reply_expect(&seen.reply, 0);
    assert_int_equal(atomic_load(&seen.terminates_seen), 1);

    stop_seen_t none;
    tu_reply_init(&none.reply);
    atomic_init(&none.terminates_seen, -1);
    assert_int_equal(gs_stop_async(rt, "a", json_string("x"), stop_seen_cb, &none), GS_ENOSERVER);

    tu_destroy(state);
    assert_int_equal(seen.reply.runs, 1);
    assert_int_equal(none.reply.runs, 0);
    tu_reply_close(&seen.reply);
    tu_reply_close(&none.reply);
}

/* A blocking stop that outlasts its timeout says timeout, and the stop still goes ahead. */
static void test_stop_timeout_still_stops(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "slowterm", probe_behaviour(), "{\"terminate_sleep_ms\": 1000}", NULL);
    int64_t t0 = tu_now_ms();
    assert_int_equal(gs_stop(rt, "slowterm", NULL, 50), GS_ETIMEOUT);
    assert_true(tu_now_ms() - t0 < 900);
    TU_WAIT_UNTIL(tu_status_int(rt, "slowterm", "restarts") == -1, TU_WAIT_MS);
    assert_int_equal(probe_terminates(), 1);
    assert_null(gs_whereis(rt, "slowterm"));
}

/* A blocking stop from inside a handler is refused with would_block instead of deadlocking. */
static void test_stop_from_handler_would_block(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "a", probe_behaviour(), NULL, NULL);
    tu_start(rt, "b", probe_behaviour(), NULL, NULL);
    tu_call_expect(rt, "a", "[\"stop\", \"b\"]", "\"would_block\"");
    tu_call_expect(rt, "b", "\"ping\"", "\"pong\"");
}

/* A handle names one incarnation: once it is gone, messages to the handle fail. */
static void test_handle_of_stopped_server(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "h", probe_behaviour(), NULL, NULL);
    gs_server_t *old = gs_whereis(rt, "h");
    assert_non_null(old);
    assert_int_equal(gs_cast_server(old, json_string("x")), 0);
    assert_int_equal(gs_stop(rt, "h", NULL, TU_WAIT_MS), 0);
    tu_start(rt, "h", probe_behaviour(), NULL, NULL);

    /* The old handle still answers its name, but messages through it fail. */
    assert_string_equal(gs_server_name(old), "h");
    assert_int_equal(gs_cast_server(old, json_string("x")), GS_ENOSERVER);
    assert_int_equal(gs_send_server(old, json_string("x")), GS_ENOSERVER);
    tu_reply_t r;
    tu_reply_init(&r);
    assert_int_equal(gs_call_server_async(old, json_string("ping"), 1000, tu_reply_cb, &r),
                     GS_ENOSERVER);

    /* The new incarnation is a different handle and got none of it. */
    gs_server_t *now = gs_whereis(rt, "h");
    assert_non_null(now);
    assert_ptr_not_equal(now, old);
    json_t *st = probe_state(rt, "h");
    assert_json_eq(json_object_get(st, "casts"), "[]");
    json_decref(st);
    gs_server_unref(now);
    gs_server_unref(old);
    tu_destroy(state);
    assert_int_equal(r.runs, 0);
    tu_reply_close(&r);
}

/* One reading of a server's uptime_ms, with this thread's clock just before and after. */
typedef struct uptime_read_s {
    gs_runtime_t *rt;
    const char *name;
    long long uptime;
    int64_t before, after;
} uptime_read_t;

static long long read_uptime(uptime_read_t *u)
{
    u->before = tu_now_ms();
    u->uptime = tu_status_int(u->rt, u->name, "uptime_ms");
    u->after = tu_now_ms();
    return u->uptime;
}

/* Status has every documented field with the right value. */
static void test_status_fields(void **state)
{
    gs_runtime_t *rt = *state;
    gs_start_options_t opts = tu_start_options(GS_TRANSIENT, 17);
    int64_t before_start = tu_now_ms();
    tu_start(rt, "st", probe_behaviour(), NULL, &opts);
    int64_t after_start = tu_now_ms();
    for (int i = 0; i < 3; i++)
        tu_call_expect(rt, "st", "\"ping\"", "\"pong\"");
    TU_WAIT_UNTIL(tu_status_int(rt, "st", "messages_handled") == 3, TU_WAIT_MS);

    json_t *st = gs_server_status(rt, "st");
    assert_non_null(st);
    assert_json_eq(json_object_get(st, "name"), "\"st\"");
    assert_json_eq(json_object_get(st, "behaviour"), "\"probe\"");
    assert_json_eq(json_object_get(st, "status"), "\"running\"");
    assert_json_eq(json_object_get(st, "restart"), "\"transient\"");
    assert_json_eq(json_object_get(st, "mailbox_len"), "0");
    assert_json_eq(json_object_get(st, "mailbox_limit"), "17");
    assert_json_eq(json_object_get(st, "messages_handled"), "3");
    assert_json_eq(json_object_get(st, "restarts"), "0");
    assert_json_eq(json_object_get(st, "held_calls"), "0");
    assert_true(json_is_integer(json_object_get(st, "uptime_ms")));
    assert_true(json_integer_value(json_object_get(st, "uptime_ms")) >= 0);
    assert_json_eq(json_object_get(st, "last_crash_reason"), "null");
    assert_json_eq(json_object_get(st, "down_reason"), "null");
    json_decref(st);

    /* A held call shows in held_calls; the runtime's default mailbox limit applies when the
     * options say 0, and a permanent server says so. */
    tu_reply_t r;
    tu_reply_init(&r);
    assert_int_equal(gs_call_async(rt, "st", json_string("hold"), TU_WAIT_MS, tu_reply_cb, &r), 0);
    TU_WAIT_UNTIL(tu_status_int(rt, "st", "held_calls") == 1, TU_WAIT_MS);
    assert_int_equal(tu_stats(rt).held_calls, 1);
    tu_start(rt, "dflt", probe_behaviour(), NULL, NULL);
    assert_int_equal(tu_status_int(rt, "dflt", "mailbox_limit"), GS_DEFAULT_MAILBOX_LIMIT);
    assert_true(tu_status_str_is(rt, "dflt", "restart", "permanent"));
    /* Uptime is real time passing: wait until it shows 10 ms, then check it against this
     * thread's clock on both sides of the reading (1 ms of rounding either way). */
    uptime_read_t up = {rt, "st", -1, 0, 0};
    TU_WAIT_UNTIL(read_uptime(&up) >= 10, TU_WAIT_MS);
    assert_true(up.uptime >= 10);
    assert_true(up.uptime + 1 >= up.before - after_start);
    assert_true(up.uptime <= up.after - before_start + 1);

    tu_destroy(state);
    assert_int_equal(r.runs, 1);
    tu_reply_close(&r);
}

/* The status of a server in init is "starting"; messages sent during init wait for it. */
typedef struct slow_init_s {
    atomic_int in_init;
    atomic_int release;
} slow_init_t;

static slow_init_t slow_init_ctl;

static int slow_init(gs_server_t *self, json_t *args, void **state, json_t **reason)
{
    (void)self;
    (void)args;
    (void)reason;
    atomic_store(&slow_init_ctl.in_init, 1);
    for (int i = 0; i < 20000 && !atomic_load(&slow_init_ctl.release); i++)
        probe_sleep_ms(1);
    *state = calloc(1, sizeof(int));
    return 0;
}

static gs_result_t slow_init_cast(gs_server_t *self, void *state, json_t *msg)
{
    (void)self;
    (void)msg;
    (*(int *)state)++;
    return GS_NOREPLY;
}

static json_t *slow_init_format(gs_server_t *self, void *state)
{
    (void)self;
    return json_integer(*(int *)state);
}

static void slow_init_terminate(gs_server_t *self, json_t *reason, void *state)
{
    (void)self;
    (void)reason;
    free(state);
}

static const gs_behaviour_t slow_init_behaviour = {
    .name = "slow_init",
    .init = slow_init,
    .handle_cast = slow_init_cast,
    .terminate = slow_init_terminate,
    .format_state = slow_init_format,
};

typedef struct starter_s {
    gs_runtime_t *rt;
    int rc;
} starter_t;

static void *starter_main(void *arg)
{
    starter_t *s = arg;
    s->rc = gs_start(s->rt, "slow", &slow_init_behaviour, NULL, NULL, NULL);
    return NULL;
}

static void test_messages_during_init_wait(void **state)
{
    gs_runtime_t *rt = *state;
    atomic_store(&slow_init_ctl.in_init, 0);
    atomic_store(&slow_init_ctl.release, 0);
    starter_t s = {rt, 1};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, starter_main, &s), 0);
    TU_WAIT_UNTIL(atomic_load(&slow_init_ctl.in_init), TU_WAIT_MS);

    /* The name is registered before init runs: casts are accepted and wait in the mailbox. */
    assert_true(tu_status_str_is(rt, "slow", "status", "starting"));
    for (int i = 0; i < 5; i++)
        assert_int_equal(tu_cast(rt, "slow", "\"inc\""), 0);
    json_t *other_args = NULL;
    assert_int_equal(gs_start(rt, "slow", &slow_init_behaviour, other_args, NULL, NULL),
                     GS_EALREADY);

    atomic_store(&slow_init_ctl.release, 1);
    pthread_join(t, NULL);
    assert_int_equal(s.rc, 0);
    json_t *st = NULL;
    assert_int_equal(gs_get_state(rt, "slow", TU_WAIT_MS, &st), 0);
    assert_json_eq(st, "5");
    json_decref(st);
    assert_true(tu_status_str_is(rt, "slow", "status", "running"));
}

/* An init may cast to its own name; the message is handled after init returns. */
static void test_init_messages_self(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "selfie", probe_behaviour(), "{\"init_cast\": [\"hello\", \"me\"]}", NULL);
    json_t *st = probe_state(rt, "selfie");
    assert_json_eq(json_object_get(st, "casts"), "[[\"hello\", \"me\"]]");
    json_decref(st);
}

/* gs_self is the running server inside a callback and NULL elsewhere. */
static void test_self(void **state)
{
    gs_runtime_t *rt = *state;
    assert_null(gs_self());
    tu_start(rt, "me", probe_behaviour(), NULL, NULL);
    tu_call_expect(rt, "me", "\"self\"", "[\"me\", true]");
    assert_null(gs_self());
}

/* gs_servers_json lists every server, sorted by name, with its status. */
static void test_servers_json(void **state)
{
    gs_runtime_t *rt = *state;
    json_t *all = gs_servers_json(rt);
    assert_json_eq(all, "{\"servers\": []}");
    json_decref(all);

    tu_start(rt, "charlie", probe_behaviour(), NULL, NULL);
    tu_start(rt, "alpha", probe_behaviour(), NULL, NULL);
    tu_start(rt, "bravo", bare_behaviour(), NULL, NULL);
    all = gs_servers_json(rt);
    json_t *servers = json_object_get(all, "servers");
    assert_int_equal(json_array_size(servers), 3);
    const char *want[] = {"alpha", "bravo", "charlie"};
    const char *behaviour[] = {"probe", "bare", "probe"};
    for (size_t i = 0; i < 3; i++) {
        json_t *s = json_array_get(servers, i);
        assert_string_equal(json_string_value(json_object_get(s, "name")), want[i]);
        assert_string_equal(json_string_value(json_object_get(s, "behaviour")), behaviour[i]);
        assert_string_equal(json_string_value(json_object_get(s, "status")), "running");
        assert_true(json_is_integer(json_object_get(s, "mailbox_len")));
    }
    json_decref(all);
    assert_int_equal(tu_stats(rt).servers, 3);

    assert_int_equal(gs_stop(rt, "bravo", NULL, TU_WAIT_MS), 0);
    all = gs_servers_json(rt);
    servers = json_object_get(all, "servers");
    assert_int_equal(json_array_size(servers), 2);
    assert_json_eq(json_object_get(json_array_get(servers, 1), "name"), "\"charlie\"");
    json_decref(all);
}

/* 100,000 idle servers start, answer, and stop cleanly, half by gs_stop and half at destroy. */
static void test_many_servers(void **state)
{
    gs_runtime_t *rt = *state;
    enum { N = 100000 };
    char name[32];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "idle-%d", i);
        int rc = gs_start(rt, name, probe_behaviour(), NULL, NULL, NULL);
        if (rc != 0)
            fail_msg("start %s: %s", name, gs_err_name(rc));
    }
    assert_int_equal(tu_stats(rt).servers, N);
    assert_int_equal(probe_inits(), N);
    /* A sample answers, and the registry finds them all. */
    for (int i = 0; i < N; i += 9973) {
        snprintf(name, sizeof(name), "idle-%d", i);
        tu_call_expect(rt, name, "\"ping\"", "\"pong\"");
    }
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "idle-%d", i);
        gs_server_t *s = gs_whereis(rt, name);
        if (s == NULL)
            fail_msg("%s not found", name);
        gs_server_unref(s);
    }
    json_t *all = gs_servers_json(rt);
    assert_int_equal(json_array_size(json_object_get(all, "servers")), N);
    json_decref(all);

    for (int i = 0; i < N; i += 2) {
        snprintf(name, sizeof(name), "idle-%d", i);
        int rc = gs_stop(rt, name, NULL, TU_WAIT_MS);
        if (rc != 0)
            fail_msg("stop %s: %s", name, gs_err_name(rc));
    }
    assert_int_equal(tu_stats(rt).servers, N / 2);
    assert_int_equal(probe_terminates(), N / 2);
    tu_destroy(state);
    assert_int_equal(probe_terminates(), N);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        probe_test(test_start_call_whereis),
        probe_test(test_args_reach_init),
        probe_test(test_already_started),
        probe_test(test_init_failure),
        probe_test(test_start_bad_arguments),
        probe_test(test_name_lengths),
        probe_test(test_stop_runs_terminate),
        probe_test(test_stopped_not_restarted),
        probe_test(test_stop_fails_held_callers),
        probe_test(test_stop_async),
        probe_test(test_stop_timeout_still_stops),
        probe_test(test_stop_from_handler_would_block),
        probe_test(test_handle_of_stopped_server),
        probe_test(test_status_fields),
        probe_test(test_messages_during_init_wait),
        probe_test(test_init_messages_self),
        probe_test(test_self),
        probe_test(test_servers_json),
        probe_test(test_many_servers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
