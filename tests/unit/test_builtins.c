/*
 * test_builtins.c: the seed scenarios, run against the real runtime and the built-in
 * behaviours exactly as an embedding program would use them (genserv.h and builtins.h).
 *
 * Each test gets a fresh runtime with two schedulers (setup/teardown), starts the servers it
 * needs, talks to them with gs_cast, gs_send, gs_call and gs_get_state, and lets
 * gs_runtime_destroy stop them, so every test also checks a clean shutdown under the
 * sanitizers. Timing is only ever checked with generous bounds or, better, as an order of
 * events ("the short sleeper finished while the long one was still asleep"), because a
 * loaded CI machine can stall any thread for a while.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <genserv/builtins.h>
#include <genserv/genserv.h>

/* How long a test waits for something that should happen well before; only a hang hits it. */
#define WAIT_MS 10000

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                    */
/* ---------------------------------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Parse JSON text written in a test; the tests' own JSON is always valid. */
static json_t *J(const char *text)
{
    json_error_t error;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &error);
    if (v == NULL)
        fail_msg("bad JSON in test: %s (%s)", text, error.text);
    return v;
}

/* Compare v (borrowed) with JSON text, printing both when they differ. */
static void assert_json(const json_t *v, const char *text)
{
    json_t *want = J(text);
    bool equal = json_equal((json_t *)v, want);
    json_decref(want);
    if (!equal) {
        char got[512] = "NULL";
        if (v != NULL) {
            /* json_dumpb does not terminate the text; a reply too long to show is cut. */
            size_t n = json_dumpb(v, got, sizeof(got) - 1, JSON_ENCODE_ANY);
            got[n < sizeof(got) - 1 ? n : 0] = '\0';
        }
        fail_msg("got %s, want %s", got, text);
    }
}

static void start(gs_runtime_t *rt, const char *name, const char *behaviour, const char *args)
{
    const gs_behaviour_t *b = gs_behaviour_find(rt, behaviour);
    assert_non_null(b);
    json_t *a = args != NULL ? J(args) : NULL;
    json_t *reason = NULL;
    int rc = gs_start(rt, name, b, a, NULL, &reason);
    if (rc != 0) {
        char *r = reason != NULL ? json_dumps(reason, JSON_ENCODE_ANY) : NULL;
        fail_msg("gs_start(%s) = %s, reason %s", name, gs_err_name(rc), r != NULL ? r : "none");
    }
    json_decref(a);
}

/* gs_start that is expected to fail in init; returns the reason (new reference). */
static json_t *start_fails(gs_runtime_t *rt, const char *name, const char *behaviour,
                           const char *args)
{
    json_t *a = J(args);
    json_t *reason = NULL;
    int rc = gs_start(rt, name, gs_behaviour_find(rt, behaviour), a, NULL, &reason);
    json_decref(a);
    assert_int_equal(rc, GS_EINIT);
    assert_null(gs_whereis(rt, name));
    return reason;
}

static void cast(gs_runtime_t *rt, const char *name, const char *msg)
{
    assert_int_equal(gs_cast(rt, name, J(msg)), 0);
}

static void send_info(gs_runtime_t *rt, const char *name, const char *msg)
{
    assert_int_equal(gs_send(rt, name, J(msg)), 0);
}

/* A blocking call; returns the reply or reason (new reference) and the status in *rc. */
static json_t *call_rc(gs_runtime_t *rt, const char *name, const char *msg, int *rc)
{
    json_t *result = NULL;
    *rc = gs_call(rt, name, J(msg), WAIT_MS, &result);
    return result;
}

/* A call that must succeed with exactly the reply `want` (JSON text). */
static void call_expect(gs_runtime_t *rt, const char *name, const char *msg, const char *want)
{
    int rc;
    json_t *reply = call_rc(rt, name, msg, &rc);
    if (rc != 0)
        fail_msg("call %s %s: %s", name, msg, gs_err_name(rc));
    assert_json(reply, want);
    json_decref(reply);
}

static json_int_t call_int(gs_runtime_t *rt, const char *name, const char *msg)
{
    int rc;
    json_t *reply = call_rc(rt, name, msg, &rc);
    assert_int_equal(rc, 0);
    assert_true(json_is_integer(reply));
    json_int_t n = json_integer_value(reply);
    json_decref(reply);
    return n;
}

static json_t *state_of(gs_runtime_t *rt, const char *name)
{
    json_t *state = NULL;
    assert_int_equal(gs_get_state(rt, name, WAIT_MS, &state), 0);
    assert_non_null(state);
    return state;
}

static json_int_t state_int(gs_runtime_t *rt, const char *name, const char *key)
{
    json_t *state = state_of(rt, name);
    json_t *v = json_object_get(state, key);
    if (!json_is_integer(v))
        fail_msg("state of %s has no integer %s", name, key);
    json_int_t n = json_integer_value(v);
    json_decref(state);
    return n;
}

/* Poll state[key] until it is at least min; fails after WAIT_MS. Returns the value seen. */
static json_int_t wait_state_at_least(gs_runtime_t *rt, const char *name, const char *key,
                                      json_int_t min)
{
    int64_t deadline = now_ms() + WAIT_MS;
    json_int_t n;
    while ((n = state_int(rt, name, key)) < min) {
        if (now_ms() > deadline)
            fail_msg("%s.%s stayed at %lld, below %lld", name, key, (long long)n, (long long)min);
        sleep_ms(10);
    }
    return n;
}

/* Poll the server's status until it runs with the given restart count; fails after WAIT_MS. */
static void wait_running_with_restarts(gs_runtime_t *rt, const char *name, json_int_t restarts)
{
    int64_t deadline = now_ms() + WAIT_MS;
    for (;;) {
        json_t *status = gs_server_status(rt, name);
        const char *st = json_string_value(json_object_get(status, "status"));
        bool done = st != NULL && strcmp(st, "running") == 0 &&
                    json_integer_value(json_object_get(status, "restarts")) == restarts;
        json_decref(status);
        if (done)
            return;
        if (now_ms() > deadline)
            fail_msg("%s is not running with %lld restarts", name, (long long)restarts);
        sleep_ms(10);
    }
}

/* The outcome of a gs_call_async, which a test thread can wait for. */
typedef struct pending_call_s {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    int status;
    json_t *result;
    int64_t done_at_ms;
} pending_call_t;

static void pending_call_init(pending_call_t *p)
{
    memset(p, 0, sizeof(*p));
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
}

static void pending_call_close(pending_call_t *p)
{
    json_decref(p->result);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
}

static void pending_call_cb(int status, json_t *result, void *arg)
{
    pending_call_t *p = arg;
    pthread_mutex_lock(&p->lock);
    p->status = status;
    p->result = result;
    p->done_at_ms = now_ms();
    p->done = true;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

static bool pending_call_is_done(pending_call_t *p)
{
    pthread_mutex_lock(&p->lock);
    bool done = p->done;
    pthread_mutex_unlock(&p->lock);
    return done;
}

static void pending_call_wait(pending_call_t *p)
{
    int64_t deadline = now_ms() + WAIT_MS;
    pthread_mutex_lock(&p->lock);
    while (!p->done && now_ms() < deadline) {
        pthread_mutex_unlock(&p->lock);
        sleep_ms(5);
        pthread_mutex_lock(&p->lock);
    }
    bool done = p->done;
    pthread_mutex_unlock(&p->lock);
    if (!done)
        fail_msg("an asynchronous call never completed");
}

static void call_async(gs_runtime_t *rt, const char *name, const char *msg, pending_call_t *p)
{
    pending_call_init(p);
    assert_int_equal(gs_call_async(rt, name, J(msg), WAIT_MS, pending_call_cb, p), 0);
}

/* ---------------------------------------------------------------------------------------- */
/* Fixture: a fresh runtime with the built-ins registered                                    */
/* ---------------------------------------------------------------------------------------- */

static int setup(void **state)
{
    gs_runtime_options_t opts;
    gs_runtime_t *rt = NULL;
    gs_runtime_options_init(&opts);
    opts.schedulers = 2;
    if (gs_runtime_create(&opts, &rt) != 0 || gs_builtins_register(rt) != 0)
        return -1;
    *state = rt;
    return 0;
}

static int teardown(void **state)
{
    gs_runtime_destroy(*state);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Registration and documentation                                                             */
/* ---------------------------------------------------------------------------------------- */

static void test_builtins_are_registered_and_documented(void **state)
{
    gs_runtime_t *rt = *state;
    static const char *const names[] = {"counter", "journal", "slow",     "receiver",
                                        "ticker",  "batcher", "producer", "misbehaving"};
    size_t n = 0;

    for (; gs_builtin_behaviours[n] != NULL; n++) {
        const gs_behaviour_t *b = gs_builtin_behaviours[n];
        assert_ptr_equal(gs_behaviour_find(rt, b->name), b);
        assert_non_null(b->description);
        assert_non_null(b->init);
        assert_non_null(b->handle_call);
        assert_non_null(b->handle_cast);
        assert_non_null(b->handle_info);
        assert_non_null(b->terminate);
        assert_non_null(b->format_state);
        assert_non_null(b->messages);
        assert_non_null(b->messages[0].kind);
        /* Every documented example must be valid JSON, since the dashboard offers it. */
        for (const gs_message_doc_t *m = b->messages; m->kind != NULL; m++) {
            assert_true(strcmp(m->kind, "call") == 0 || strcmp(m->kind, "cast") == 0 ||
                        strcmp(m->kind, "info") == 0);
            assert_non_null(m->description);
            json_decref(J(m->example));
        }
        if (b->args_doc != NULL)
            json_decref(J(b->args_doc));
    }
    assert_int_equal(n, sizeof(names) / sizeof(names[0]));
    for (size_t i = 0; i < n; i++)
        assert_non_null(gs_behaviour_find(rt, names[i]));

    /* Registering twice is refused, not duplicated. */
    assert_int_equal(gs_builtins_register(rt), GS_EEXIST);

    json_t *all = gs_behaviours_json(rt);
    assert_true(json_array_size(all) >= n);
    json_decref(all);
}

/* ---------------------------------------------------------------------------------------- */
/* counter                                                                                    */
/* ---------------------------------------------------------------------------------------- */

static void test_counter_three_increments_then_get_count_is_3(void **state)
{
    gs_runtime_t *rt = *state;
    start(rt, "counter", "counter", NULL);
    cast(rt, "counter", "\"increment\"");
    cast(rt, "counter", "\"increment\"");
    cast(rt, "counter", "\"increment\"");
    /* Messages from one sender arrive in order, so the call sees all three casts. */
    assert_int_equal(call_int(rt, "counter", "\"get_count\""), 3);
    json_t *s = state_of(rt, "counter");
    assert_json(s, "{\"count\": 3}");
    json_decref(s);
}

static void test_counter_steps_and_initial_value(void **state)
{
    gs_runtime_t *rt = *state;
    start(rt, "c", "counter", "{\"initial\": 10}");
    cast(rt, "c", "[\"increment\", 5]");
    cast(rt, "c", "\"decrement\"");
    cast(rt, "c", "[\"decrement\", 4]");
    cast(rt, "c", "[\"increment\", -20]");
    assert_int_equal(call_int(rt, "c", "\"get_count\""), -10);
}

static void test_counter_ignores_bad_casts_and_overflow(void **state)
{
    gs_runtime_t *rt = *state;
    start(rt, "c", "counter", "{\"initial\": 9223372036854775806}");
    cast(rt, "c", "[\"increment\", \"x\"]");
    cast(rt, "c", "[\"increment\", 1.5]");
    cast(rt, "c", "[\"increment\"]");
    cast(rt, "c", "[\"increment\", 1, 2]");
    cast(rt, "c", "[\"decrement\", -9223372036854775808]");
    cast(rt, "c", "{\"increment\": 1}");
    cast(rt, "c", "null");
    cast(rt, "c", "\"reset\"");
    cast(rt, "c", "[\"increment\", 5]"); /* would overflow: ignored, not wrapped */
    cast(rt, "c", "\"increment\"");      /* reaches the maximum exactly */
    cast(rt, "c", "\"increment\"");      /* past the maximum: ignored */
    assert_int_equal(call_int(rt, "c", "\"get_count\""), 9223372036854775807LL);
    json_t *status = gs_server_status(rt, "c");
    assert_int_equal(json_integer_value(json_object_get(status, "restarts")), 0);
    json_decref(status);
}

static void test_counter_refuses_bad_init_args(void **state)
{
    gs_runtime_t *rt = *state;
    json_t *reason = start_fails(rt, "c", "counter", "{\"initial\": \"x\"}");
    assert_string_equal(json_string_value(json_array_get(reason, 0)), "bad_args");
    json_decref(reason);
    json_decref(start_fails(rt, "c", "counter", "{\"inital\": 1}"));
    json_decref(start_fails(rt, "c", "counter", "[1]"));
}

/* ---------------------------------------------------------------------------------------- */
/* Unknown messages                                                                           */
/* ---------------------------------------------------------------------------------------- */

static void test_unknown_message_replies_error_without_crashing(void **state)
{
    gs_runtime_t *rt = *state;
    start(rt, "counter", "counter", NULL);
    start(rt, "slow", "slow", NULL);
    start(rt, "journal", "journal", NULL);
    cast(rt, "counter", "\"increment\"");

    call_expect(rt, "counter", "\"get_cuont\"", "[\"error\", \"unknown_message\"]");
    call_expect(rt, "counter", "[\"get_count\", 1]", "[\"error\", \"unknown_message\"]");
    call_expect(rt, "journal", "{}", "[\"error\", \"unknown_message\"]");
    call_expect(rt, "slow", "[\"sleep\", \"x\"]", "[\"error\", \"bad_argument\"]");
    call_expect(rt, "slow", "[\"sleep\", -1]", "[\"error\", \"bad_argument\"]");
    call_expect(rt, "slow", "[\"sleep\", 1e3]", "[\"error\", \"bad_argument\"]");
    /* Unknown casts and infos are ignored. */
    cast(rt, "slow", "\"what\"");
    send_info(rt, "counter", "\"what\"");
    send_info(rt, "slow", "[\"wake\", 12345]");
    send_info(rt, "slow", "[\"wake\", \"x\"]");

    /* Nothing crashed, and the state survived the typos. */
    assert_int_equal(call_int(rt, "counter", "\"get_count\""), 1);
    const char *names[] = {"counter", "slow", "journal"};
    for (size_t i = 0; i < 3; i++) {
        json_t *status = gs_server_status(rt, names[i]);
        assert_int_equal(json_integer_value(json_object_get(status, "restarts")), 0);
        assert_true(json_is_null(json_object_get(status, "last_crash_reason")));
        json_decref(status);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* journal                                                                                    */
/* ---------------------------------------------------------------------------------------- */

static void test_journal_add_entry_then_get_state(void **state)
{
    gs_runtime_t *rt = *state;
    start(rt, "journal", "journal", NULL);
    cast(rt, "journal", "[\"add_entry\", \"first entry\"]");
    json_t *s = state_of(rt, "journal");
    assert_json(s, "[\"first entry\"]");
    json_decref(s);

    /* Newest first, as in the example solution's [entry | entries]. */
    cast(rt, "journal", "[\"add_entry\", \"second entry\"]");
    cast(rt, "journal", "[\"add_entry\", {\"any\": [\"json\"]}]");
    call_expect(rt, "journal", "\"entries\"",
                "[{\"any\": [\"json\"]}, \"second entry\", \"first entry\"]");
    /* Malformed entries are ignored. */
    cast(rt, "journal", "[\"add_entry\"]");
    cast(rt, "journal", "\"add_entry\"");
    s = state_of(rt, "journal");
    assert_int_equal(json_array_size(s), 3);
    json_decref(s);
}

static void test_journal_drops_oldest_past_max_entries(void **state)
{
    gs_runtime_t *rt = *state;
    start(rt, "j", "journal", "{\"max_entries\": 2}");
    cast(rt, "j", "[\"add_entry\", 1]");
    cast(rt, "j", "[\"add_entry\", 2]");
    cast(rt, "j", "[\"add_entry\", 3]");
    call_expect(rt, "j", "\"entries\"", "[3, 2]");
    json_decref(start_fails(rt, "j2", "journal", "{\"max_entries\": 0}"));
}

/* ---------------------------------------------------------------------------------------- */
/* receiver                                                                                   */
/* ---------------------------------------------------------------------------------------- */

static void test_receiver_counts_infos(void **state)
{
    gs_runtime_t *rt = *state;
    start(rt, "receiver", "receiver", NULL);
    send_info(rt, "receiver", "\"hello\"");
    send_info(rt, "receiver", "[\"greeting\", \"hi\"]");
    send_info(rt, "receiver", "42");
    /* A cast is not an info: the receiver ignores it. */
    cast(rt, "receiver", "\"not counted\"");
    assert_int_equal(call_int(rt, "receiver", "\"received\""), 3);
    call_expect(rt, "receiver", "\"last\"", "[\"hello\", [\"greeting\", \"hi\"], 42]");

    /* Only the last ten are kept, oldest first. */
    for (int i = 0; i < 12; i++) {
        char msg[16];
        snprintf(msg, sizeof(msg), "%d", i);
        send_info(rt, "receiver", msg);
    }
    json_t *s = state_of(rt, "receiver");
    assert_json(s, "{\"received\": 15, \"last\": [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]}");
    json_decref(s);
}

/* ---------------------------------------------------------------------------------------- */
/* ticker                                                                                     */
/* ---------------------------------------------------------------------------------------- */

static void test_ticker_decrementing_goes_down_over_time(void **state)
{
    gs_runtime_t *rt = *state;
    start(rt, "down", "ticker", "{\"interval_ms\": 500, \"step\": -1}");
    json_t *s = state_of(rt, "down");
    assert_int_equal(json_integer_value(json_object_get(s, "interval_ms")), 500);
    assert_int_equal(json_integer_value(json_object_get(s, "step")), -1);
    json_int_t first = json_integer_value(json_object_get(s, "count"));
    json_decref(s);
    assert_true(first <= 0);

    /* About 1.5 s of ticks; the count only goes down, and by at least two. */
    int64_t deadline = now_ms() + WAIT_MS;
    json_int_t last = first;
    while (last > -2) {
        json_int_t n = call_int(rt, "down", "\"get_count\"");
        assert_true(n <= last);
        last = n;
        if (now_ms() > deadline)
            fail_msg("the ticker stayed at %lld", (long long)last);
        sleep_ms(50);
    }
}

static void test_ticker_forged_ticks_count_but_do_not_multiply(void **state)
{
    gs_runtime_t *rt = *state;
    /* A long interval: no real tick happens during the test. */
    start(rt, "up", "ticker", "{\"interval_ms\": 60000, \"step\": 2, \"initial\": 1}");
    for (int i = 0; i < 5; i++)
        send_info(rt, "up", "\"tick\"");
    assert_int_equal(call_int(rt, "up", "\"get_count\""), 11);
    /*
     * Each tick replaced the pending timer rather than adding one, so one timer is pending,
     * not six. (The bound leaves room for any timers the runtime counts for its own use.)
     */
    gs_runtime_stats_t stats;
    gs_runtime_stats(rt, &stats);
    assert_true(stats.pending_timers >= 1 && stats.pending_timers < 6);

    json_decref(start_fails(rt, "t", "ticker", "{\"interval_ms\": 0}"));
    json_decref(start_fails(rt, "t", "ticker", "{\"interval_ms\": \"fast\"}"));
    json_decref(start_fails(rt, "t", "ticker", "{\"step\": 0.5}"));
}

/* ---------------------------------------------------------------------------------------- */
/* slow                                                                                       */
/* ---------------------------------------------------------------------------------------- */

static void test_slow_sleep_does_not_delay_others(void **state)
{
    gs_runtime_t *rt = *state;
    start(rt, "slow", "slow", NULL);
    start(rt, "counter", "counter", NULL);

    int64_t t0 = now_ms();
    pending_call_t long_sleep;
    call_async(rt, "slow", "\"sleep\"", &long_sleep);

    /* Another server answers at once while slow is "asleep". */
    assert_int_equal(call_int(rt, "counter", "\"get_count\""), 0);
    assert_false(pending_call_is_done(&long_sleep));
    assert_true(now_ms() - t0 < 900);

    /* So does slow itself: a short sleeper is answered while the long one still sleeps. */
    call_expect(rt, "slow", "[\"sleep\", 50]", "\"response!\"");
    assert_false(pending_call_is_done(&long_sleep));
    json_t *s = state_of(rt, "slow");
    assert_json(s, "{\"pending\": 1, \"served\": 1}");
    json_decref(s);

    pending_call_wait(&long_sleep);
    assert_int_equal(long_sleep.status, 0);
    assert_json(long_sleep.result, "\"response!\"");
    /* A timer never fires early. */
    assert_true(long_sleep.done_at_ms - t0 >= 990);
    pending_call_close(&long_sleep);
}

static void test_slow_many_callers_sleep_concurrently(void **state)
{
    gs_runtime_t *rt = *state;
    enum { CALLERS = 20 };
    pending_call_t calls[CALLERS];
    start(rt, "slow", "slow", NULL);

    /* Twenty 300 ms sleeps one after another would take 6 s; together they take ~0.3 s. */
    int64_t t0 = now_ms();
    for (int i = 0; i < CALLERS; i++)
        call_async(rt, "slow", "[\"sleep\", 300]", &calls[i]);
    for (int i = 0; i < CALLERS; i++) {
        pending_call_wait(&calls[i]);
        assert_int_equal(calls[i].status, 0);
        assert_json(calls[i].result, "\"response!\"");
        pending_call_close(&calls[i]);
    }
    assert_true(now_ms() - t0 < 3000);
    json_t *s = state_of(rt, "slow");
    assert_json(s, "{\"pending\": 0, \"served\": 20}");
    json_decref(s);
}

static void test_slow_stopped_with_sleepers_fails_them(void **state)
{
    gs_runtime_t *rt = *state;
    pending_call_t sleeper;
    start(rt, "slow", "slow", NULL);
    call_async(rt, "slow", "[\"sleep\", 60000]", &sleeper);
    /* Make sure the sleeper is held before stopping (the state is asked after it). */
    assert_int_equal(state_int(rt, "slow", "pending"), 1);
    assert_int_equal(gs_stop(rt, "slow", NULL, WAIT_MS), 0);
    pending_call_wait(&sleeper);
    assert_int_equal(sleeper.status, GS_ESTOPPED);
    pending_call_close(&sleeper);
}

/* ---------------------------------------------------------------------------------------- */
/* batcher and producer                                                                       */
/* ---------------------------------------------------------------------------------------- */

static void start_producers(gs_runtime_t *rt, int count, const char *target)
{
    for (int i = 0; i < count; i++) {
        char name[32], args[96];
        snprintf(name, sizeof(name), "producer_%d", i);
        snprintf(args, sizeof(args), "{\"target\": \"%s\", \"id\": %d}", target, i);
        start(rt, name, "producer", args);
    }
}

static void test_batcher_ten_producers_deferred_batches_of_ten(void **state)
{
    gs_runtime_t *rt = *state;
    start(rt, "batcher", "batcher", "{\"interval_ms\": 300}");
    start_producers(rt, 10, "batcher");

    /*
     * Each producer's push is held until the flush, so each producer has exactly one number
     * in each batch. The first batch may catch producers still starting; later ones cannot.
     */
    json_int_t batches = wait_state_at_least(rt, "batcher", "batches", 3);
    for (int round = 0; round < 3; round++) {
        json_t *s = state_of(rt, "batcher");
        assert_int_equal(json_integer_value(json_object_get(s, "last_batch_size")), 10);
        assert_true(json_integer_value(json_object_get(s, "pending")) <= 10);
        json_decref(s);
        batches = wait_state_at_least(rt, "batcher", "batches", batches + 1);
    }

    /* Every producer pushes one number per batch, and its acks follow the batches. */
    json_t *p = state_of(rt, "producer_3");
    assert_string_equal(json_string_value(json_object_get(p, "target")), "batcher");
    assert_int_equal(json_integer_value(json_object_get(p, "id")), 3);
    assert_true(json_integer_value(json_object_get(p, "acked")) >= 3);
    assert_int_equal(json_integer_value(json_object_get(p, "errors")), 0);
    json_decref(p);
}

static void test_batcher_reply_immediately_gives_far_larger_batches(void **state)
{
    gs_runtime_t *rt = *state;
    start(rt, "batcher", "batcher", "{\"interval_ms\": 300, \"reply_immediately\": true}");
    start_producers(rt, 10, "batcher");

    /* Without backpressure the producers push as fast as round trips go. */
    json_int_t batches = wait_state_at_least(rt, "batcher", "batches", 3);
    wait_state_at_least(rt, "batcher", "batches", batches + 1);
    json_int_t size = state_int(rt, "batcher", "last_batch_size");
    assert_true(size > 100);
}

static void test_batcher_push_directly_and_stats(void **state)
{
    gs_runtime_t *rt = *state;
    pending_call_t a, b;
    start(rt, "batcher", "batcher", "{\"interval_ms\": 60000}");
    call_async(rt, "batcher", "[\"push\", 4]", &a);
    call_async(rt, "batcher", "[\"push\", 5]", &b);
    call_expect(rt, "batcher", "[\"push\", \"x\"]", "[\"error\", \"bad_argument\"]");
    call_expect(rt, "batcher", "[\"push\", 1.5]", "[\"error\", \"bad_argument\"]");
    call_expect(rt, "batcher", "\"stats\"",
                "{\"last_batch_size\": 0, \"last_batch_sum\": 0, \"batches\": 0, \"total\": 0,"
                " \"pending\": 2}");
    assert_false(pending_call_is_done(&a));

    /* A flush sent by hand closes the batch early and answers both callers. */
    send_info(rt, "batcher", "\"flush\"");
    pending_call_wait(&a);
    pending_call_wait(&b);
    assert_int_equal(a.status, 0);
    assert_json(a.result, "\"ok\"");
    assert_json(b.result, "\"ok\"");
    call_expect(rt, "batcher", "\"stats\"",
                "{\"last_batch_size\": 2, \"last_batch_sum\": 9, \"batches\": 1, \"total\": 9,"
                " \"pending\": 0}");
    /* An empty flush records nothing. */
    send_info(rt, "batcher", "\"flush\"");
    assert_int_equal(state_int(rt, "batcher", "batches"), 1);
    pending_call_close(&a);
    pending_call_close(&b);

    json_decref(start_fails(rt, "b2", "batcher", "{\"reply_immediately\": 1}"));
}

static void test_producer_retries_until_target_exists(void **state)
{
    gs_runtime_t *rt = *state;
    start(rt, "p", "producer", "{\"target\": \"late\", \"retry_ms\": 20}");
    wait_state_at_least(rt, "p", "errors", 2);
    assert_int_equal(state_int(rt, "p", "acked"), 0);

    start(rt, "late", "batcher", "{\"interval_ms\": 20}");
    wait_state_at_least(rt, "p", "acked", 3);

    json_t *reason = start_fails(rt, "self", "producer", "{\"target\": \"self\"}");
    assert_string_equal(json_string_value(json_array_get(reason, 0)), "bad_args");
    json_decref(reason);
    json_decref(start_fails(rt, "q", "producer", "{\"target\": \"\"}"));
    json_decref(start_fails(rt, "q", "producer", "{\"target\": 7}"));
}

/* ---------------------------------------------------------------------------------------- */
/* misbehaving                                                                                */
/* ---------------------------------------------------------------------------------------- */

static void test_misbehaving_calling_self_crashes_and_restarts(void **state)
{
    gs_runtime_t *rt = *state;
    start(rt, "misbehaving", "misbehaving", NULL);
    call_expect(rt, "misbehaving", "\"ping\"", "\"pong\"");

    int rc;
    json_t *reason = call_rc(rt, "misbehaving", "\"message\"", &rc);
    assert_int_equal(rc, GS_ECRASHED);
    assert_json(reason, "\"calling_self\"");
    json_decref(reason);

    /* The supervisor restarts it; the new incarnation starts from init, pings back at 0. */
    wait_running_with_restarts(rt, "misbehaving", 1);
    json_t *status = gs_server_status(rt, "misbehaving");
    assert_json(json_object_get(status, "last_crash_reason"), "\"calling_self\"");
    json_decref(status);
    call_expect(rt, "misbehaving", "\"ping\"", "\"pong\"");
    json_t *s = state_of(rt, "misbehaving");
    assert_json(s, "{\"pings\": 1}");
    json_decref(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_builtins_are_registered_and_documented, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_counter_three_increments_then_get_count_is_3, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_counter_steps_and_initial_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counter_ignores_bad_casts_and_overflow, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_counter_refuses_bad_init_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_message_replies_error_without_crashing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_journal_add_entry_then_get_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_drops_oldest_past_max_entries, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_receiver_counts_infos, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ticker_decrementing_goes_down_over_time, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ticker_forged_ticks_count_but_do_not_multiply, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_slow_sleep_does_not_delay_others, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_many_callers_sleep_concurrently, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_stopped_with_sleepers_fails_them, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_batcher_ten_producers_deferred_batches_of_ten, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_batcher_reply_immediately_gives_far_larger_batches,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_batcher_push_directly_and_stats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_producer_retries_until_target_exists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_misbehaving_calling_self_crashes_and_restarts, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
