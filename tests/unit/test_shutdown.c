/*
 * test_shutdown.c: gs_runtime_destroy, and the runtime-wide odds and ends (options, errors,
 * behaviour registry, statistics).
 *
 * What a user relies on when shutting down: every pending call completes exactly once with an
 * error (shutting_down, or server_stopped with the reason "shutdown"), whether a server held
 * it, it waited in a mailbox behind a busy handler, or a thread is blocked in gs_call on it;
 * terminate runs for every server with "shutdown"; a terminate that tries to start or message
 * servers is refused instead of leaking; a slow terminate is waited for; pending timers are
 * dropped without delaying it; and everything is freed (this suite runs under ASan and TSan).
 * Also: the option defaults, the error table, the behaviour registry and its JSON listing.
 */
#include "testutil.h"

#include "probe.h"

#include <unistd.h>

/* Whether a shutdown completion is one of the two the header allows. */
static void assert_shutdown_outcome(tu_reply_t *r)
{
    assert_int_equal(r->runs, 1);
    if (r->status == GS_ESTOPPED) {
        assert_json_eq(r->result, "\"shutdown\"");
    } else {
        if (r->status != GS_ESHUTDOWN)
            fail_msg("status %s, want shutting_down or server_stopped", gs_err_name(r->status));
        assert_null(r->result);
    }
}

/* Every pending call, held or queued, completes exactly once with an error at destroy. */
static void test_destroy_completes_pending_calls(void **state)
{
    gs_runtime_t *rt = *state;
    enum { HELD = 50, QUEUED = 20 };
    tu_start(rt, "holder", probe_behaviour(), NULL, NULL);
    tu_start(rt, "busy", probe_behaviour(), NULL, NULL);
    static tu_reply_t held[HELD], queued[QUEUED];
    for (int i = 0; i < HELD; i++) {
        tu_reply_init(&held[i]);
        assert_int_equal(gs_call_async(rt, "holder", json_string("hold"),
                                       i % 2 ? GS_INFINITY : 60000, tu_reply_cb, &held[i]),
                         0);
    }
    TU_WAIT_UNTIL(tu_status_int(rt, "holder", "held_calls") == HELD, TU_WAIT_MS);
    assert_int_equal(tu_stats(rt).held_calls, HELD);

    /* Calls queued behind a handler that is busy for a while. */
    assert_int_equal(tu_cast(rt, "busy", "[\"sleep\", 200]"), 0);
    for (int i = 0; i < QUEUED; i++) {
        tu_reply_init(&queued[i]);
        assert_int_equal(
            gs_call_async(rt, "busy", json_string("hold"), GS_INFINITY, tu_reply_cb, &queued[i]),
            0);
    }

    tu_destroy(state);
    for (int i = 0; i < HELD; i++) {
        assert_shutdown_outcome(&held[i]);
        tu_reply_close(&held[i]);
    }
    for (int i = 0; i < QUEUED; i++) {
        assert_shutdown_outcome(&queued[i]);
        tu_reply_close(&queued[i]);
    }
    assert_int_equal(probe_terminates(), 2);
}

/* terminate runs once for every server, with the reason "shutdown". */
static void test_terminate_runs_for_every_server(void **state)
{
    gs_runtime_t *rt = *state;
    enum { N = 1000 };
    char name[32];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "s%d", i);
        tu_start(rt, name, probe_behaviour(), NULL, NULL);
    }
    /* Some are in the middle of work, some have mail waiting. */
    for (int i = 0; i < N; i += 10) {
        snprintf(name, sizeof(name), "s%d", i);
        assert_int_equal(tu_cast(rt, name, "[\"log\", 1]"), 0);
        assert_int_equal(tu_send(rt, name, "[\"info\", 2]"), 0);
    }
    tu_destroy(state);
    assert_int_equal(probe_terminates(), N);
    json_t *log = probe_terminated();
    size_t i;
    json_t *entry;
    json_array_foreach(log, i, entry)
    {
        assert_json_eq(json_array_get(entry, 1), "\"shutdown\"");
    }
    json_decref(log);
}

typedef struct blocked_caller_s {
    gs_runtime_t *rt;
    int rc;
    json_t *result;
} blocked_caller_t;

static void *blocked_caller_main(void *arg)
{
    blocked_caller_t *c = arg;
    /* rt must not be touched after this returns: destroy may already have freed it. */
    c->rc = gs_call(c->rt, "holder", json_string("hold"), GS_INFINITY, &c->result);
    return NULL;
}

/* A thread blocked in gs_call (even with GS_INFINITY) is released by destroy. */
static void test_blocked_caller_released(void **state)
{
    gs_runtime_t *rt = *state;
    enum { N = 4 };
    tu_start(rt, "holder", probe_behaviour(), NULL, NULL);
    blocked_caller_t callers[N];
    pthread_t threads[N];
    for (int i = 0; i < N; i++) {
        callers[i] = (blocked_caller_t){rt, 1, NULL};
        assert_int_equal(pthread_create(&threads[i], NULL, blocked_caller_main, &callers[i]), 0);
    }
    TU_WAIT_UNTIL(tu_status_int(rt, "holder", "held_calls") == N, TU_WAIT_MS);
    int64_t t0 = tu_now_ms();
    tu_destroy(state);
    for (int i = 0; i < N; i++) {
        pthread_join(threads[i], NULL);
        assert_true(callers[i].rc == GS_ESHUTDOWN || callers[i].rc == GS_ESTOPPED);
        if (callers[i].rc == GS_ESTOPPED)
            assert_json_eq(callers[i].result, "\"shutdown\"");
        else
            assert_null(callers[i].result);
        json_decref(callers[i].result);
    }
    assert_true(tu_now_ms() - t0 < 5000);
}

/* A terminate that tries to start or message servers during shutdown is refused. */
static atomic_int meddler_start_rc;
static atomic_int meddler_cast_rc;
static atomic_int meddler_timer_rc;
static atomic_int meddler_terminated;

static void meddler_terminate(gs_server_t *self, json_t *reason, void *state)
{
    (void)reason;
    (void)state;
    gs_runtime_t *rt = gs_server_runtime(self);
    atomic_store(&meddler_start_rc, gs_start(rt, "newcomer", probe_behaviour(), NULL, NULL, NULL));
    atomic_store(&meddler_cast_rc, gs_cast(rt, "bystander", json_string("hello")));
    atomic_store(&meddler_timer_rc, gs_send_after(rt, "bystander", json_string("later"), 10, NULL));
    atomic_fetch_add(&meddler_terminated, 1);
}

static const gs_behaviour_t meddler_behaviour = {
    .name = "meddler",
    .init = bare_init,
    .terminate = meddler_terminate,
};

static void test_terminate_during_shutdown_is_refused(void **state)
{
    gs_runtime_t *rt = *state;
    atomic_store(&meddler_start_rc, 1);
    atomic_store(&meddler_cast_rc, 1);
    atomic_store(&meddler_timer_rc, 1);
    atomic_store(&meddler_terminated, 0);
    tu_start(rt, "bystander", probe_behaviour(), NULL, NULL);
    tu_start(rt, "meddler", &meddler_behaviour, NULL, NULL);
    tu_destroy(state);
    assert_int_equal(atomic_load(&meddler_terminated), 1);
    assert_int_equal(atomic_load(&meddler_start_rc), GS_ESHUTDOWN);
    int cast_rc = atomic_load(&meddler_cast_rc);
    if (cast_rc != GS_ESHUTDOWN && cast_rc != GS_ENOSERVER)
        fail_msg("cast during shutdown: %s", gs_err_name(cast_rc));
    assert_int_equal(atomic_load(&meddler_timer_rc), GS_ESHUTDOWN);
    /* newcomer never started, so only bystander's terminate ran among the probes. */
    assert_int_equal(probe_terminates(), 1);
    assert_int_equal(probe_inits(), 1);
}

/* destroy waits for a slow terminate; pending timers do not delay it. */
static void test_slow_terminate_waited_for(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "slow", probe_behaviour(), "{\"terminate_sleep_ms\": 300}", NULL);
    for (int i = 0; i < 100; i++)
        assert_int_equal(gs_send_after(rt, "slow", json_integer(i), 60000, NULL), 0);
    int64_t t0 = tu_now_ms();
    tu_destroy(state);
    int64_t took = tu_now_ms() - t0;
    assert_int_equal(probe_terminates(), 1);
    assert_in_range(took, 240, 10000);
}

/* Runtimes come and go cleanly, with and without servers, with one or more schedulers. */
static void test_create_destroy_cycles(void **state)
{
    (void)state;
    for (int i = 0; i < 20; i++) {
        gs_runtime_t *rt = tu_runtime_create((unsigned)(i % 3), 0);
        if (i % 2) {
            tu_start(rt, "p", probe_behaviour(), NULL, NULL);
            tu_call_expect(rt, "p", "\"ping\"", "\"pong\"");
        }
        gs_runtime_destroy(rt);
    }
    gs_runtime_t *rt = NULL;
    assert_int_equal(gs_runtime_create(NULL, &rt), 0);
    assert_true(gs_runtime_schedulers(rt) >= 1);
    gs_runtime_destroy(rt);
}

/* ---------------------------------------------------------------------------------------- */
/* Runtime-wide odds and ends                                                                 */
/* ---------------------------------------------------------------------------------------- */

static void test_options_and_schedulers(void **state)
{
    (void)state;
    gs_runtime_options_t opts;
    memset(&opts, 0xff, sizeof(opts));
    gs_runtime_options_init(&opts);
    /* "The defaults" may be spelled as 0 (meaning the default) or as the value itself. */
    assert_true(opts.schedulers == 0 || opts.schedulers == (unsigned)sysconf(_SC_NPROCESSORS_ONLN));
    assert_true(opts.mailbox_limit == 0 || opts.mailbox_limit == GS_DEFAULT_MAILBOX_LIMIT);
    assert_true(opts.batch == 0 || opts.batch == GS_DEFAULT_BATCH);

    gs_runtime_t *rt = tu_runtime_create(3, 0);
    assert_int_equal(gs_runtime_schedulers(rt), 3);
    gs_runtime_stats_t st = tu_stats(rt);
    assert_int_equal(st.servers, 0);
    assert_int_equal(st.messages_handled, 0);
    assert_int_equal(st.late_replies, 0);
    assert_int_equal(st.pending_timers, 0);
    assert_int_equal(st.held_calls, 0);
    gs_runtime_destroy(rt);

    /* The runtime's mailbox limit is every server's default. */
    rt = tu_runtime_create(1, 7);
    assert_int_equal(gs_runtime_schedulers(rt), 1);
    tu_start(rt, "p", probe_behaviour(), NULL, NULL);
    assert_int_equal(tu_status_int(rt, "p", "mailbox_limit"), 7);
    gs_runtime_destroy(rt);
}

static void test_errors_table(void **state)
{
    (void)state;
    struct {
        int err;
        const char *code;
    } rows[] = {
        {GS_EINVAL, "bad_argument"},
        {GS_ENOMEM, "out_of_memory"},
        {GS_EALREADY, "already_started"},
        {GS_ENOSERVER, "no_such_server"},
        {GS_ENOBEHAVIOUR, "no_such_behaviour"},
        {GS_ETIMEOUT, "timeout"},
        {GS_ECRASHED, "server_crashed"},
        {GS_ESTOPPED, "server_stopped"},
        {GS_EOVERLOADED, "overloaded"},
        {GS_ECALLINGSELF, "calling_self"},
        {GS_EWOULDBLOCK, "would_block"},
        {GS_ENOTIMER, "no_such_timer"},
        {GS_ENOCALL, "no_such_call"},
        {GS_EINIT, "init_failed"},
        {GS_ESHUTDOWN, "shutting_down"},
        {GS_EEXIST, "already_registered"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        assert_string_equal(gs_err_name(rows[i].err), rows[i].code);
        assert_non_null(gs_strerror(rows[i].err));
        assert_string_not_equal(gs_strerror(rows[i].err), "unknown error");
    }
    assert_string_equal(gs_strerror(GS_ETIMEOUT), "the call timed out before the server replied");
    assert_string_equal(gs_err_name(-999), "unknown");
    assert_string_equal(gs_strerror(-999), "unknown error");
    assert_string_equal(gs_err_name(1), "unknown");

    gs_restart_t r = GS_TEMPORARY;
    assert_int_equal(gs_restart_parse("permanent", &r), 0);
    assert_int_equal(r, GS_PERMANENT);
    assert_int_equal(gs_restart_parse("transient", &r), 0);
    assert_int_equal(r, GS_TRANSIENT);
    assert_int_equal(gs_restart_parse("temporary", &r), 0);
    assert_int_equal(r, GS_TEMPORARY);
    assert_int_equal(gs_restart_parse("forever", &r), GS_EINVAL);
    assert_int_equal(gs_restart_parse("", &r), GS_EINVAL);
    assert_string_equal(gs_restart_name(GS_PERMANENT), "permanent");
    assert_string_equal(gs_restart_name(GS_TRANSIENT), "transient");
    assert_string_equal(gs_restart_name(GS_TEMPORARY), "temporary");
}

static void test_behaviour_registry(void **state)
{
    gs_runtime_t *rt = *state;
    json_t *all = gs_behaviours_json(rt);
    assert_json_eq(all, "[]");
    json_decref(all);

    assert_int_equal(gs_behaviour_register(rt, probe_behaviour()), 0);
    assert_int_equal(gs_behaviour_register(rt, bare_behaviour()), 0);
    assert_int_equal(gs_behaviour_register(rt, probe_behaviour()), GS_EEXIST);
    static const gs_behaviour_t nameless = {.init = bare_init};
    static const gs_behaviour_t initless = {.name = "initless"};
    assert_int_equal(gs_behaviour_register(rt, &nameless), GS_EINVAL);
    assert_int_equal(gs_behaviour_register(rt, &initless), GS_EINVAL);
    assert_ptr_equal(gs_behaviour_find(rt, "probe"), probe_behaviour());
    assert_ptr_equal(gs_behaviour_find(rt, "bare"), bare_behaviour());
    assert_null(gs_behaviour_find(rt, "initless"));
    assert_null(gs_behaviour_find(rt, "nope"));

    /* Sorted by name, with the documentation of each. */
    all = gs_behaviours_json(rt);
    assert_int_equal(json_array_size(all), 2);
    json_t *bare = json_array_get(all, 0);
    json_t *probe = json_array_get(all, 1);
    assert_json_eq(json_object_get(bare, "name"), "\"bare\"");
    assert_json_eq(json_object_get(bare, "description"), "\"Nothing but init.\"");
    assert_json_eq(json_object_get(probe, "name"), "\"probe\"");
    assert_non_null(json_object_get(probe, "args"));
    /* Each message doc: kind, description, and the example as its text or as that JSON. */
    json_t *msgs = json_object_get(probe, "messages");
    assert_int_equal(json_array_size(msgs), 2);
    const char *kinds[] = {"call", "cast"};
    const char *examples[] = {"\"ping\"", "[\"log\", 1]"};
    const char *descriptions[] = {"Answers \"pong\".", "Logs the message."};
    for (size_t k = 0; k < 2; k++) {
        json_t *m = json_array_get(msgs, k);
        assert_string_equal(json_string_value(json_object_get(m, "kind")), kinds[k]);
        assert_string_equal(json_string_value(json_object_get(m, "description")), descriptions[k]);
        json_t *ex = json_object_get(m, "example");
        json_t *parsed = tu_json(examples[k]);
        bool ok = json_equal(ex, parsed) ||
                  (json_is_string(ex) && strcmp(json_string_value(ex), examples[k]) == 0);
        json_decref(parsed);
        if (!ok)
            fail_msg("example %zu is neither %s nor its text", k, examples[k]);
    }
    json_decref(all);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        probe_test(test_destroy_completes_pending_calls),
        probe_test(test_terminate_runs_for_every_server),
        probe_test(test_blocked_caller_released),
        probe_test(test_terminate_during_shutdown_is_refused),
        probe_test(test_slow_terminate_waited_for),
        cmocka_unit_test(test_create_destroy_cycles),
        cmocka_unit_test(test_options_and_schedulers),
        cmocka_unit_test(test_errors_table),
        probe_test(test_behaviour_registry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
