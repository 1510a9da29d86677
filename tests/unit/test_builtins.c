/*
 * test_builtins.c: the seed scenarios, run against the real runtime and the built-in
 * behaviours exactly as an embedding program would use them (genserv.h and builtins.h).
 *
 * Each test gets a fresh runtime with two schedulers and the built-ins registered
 * (tu_setup_builtins), starts the servers it needs, talks to them with gs_cast, gs_send,
 * gs_call and gs_get_state, and lets gs_runtime_destroy stop them, so every test also checks
 * a clean shutdown under the sanitizers. Timing is only ever checked with generous bounds or,
 * better, as an order of events ("the short sleeper finished while the long one was still
 * asleep"), because a loaded CI machine can stall any thread for a while.
 */
#include "testutil.h"

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                    */
/* ---------------------------------------------------------------------------------------- */

/* gs_start that is expected to fail in init; returns the reason (new reference). */
static json_t *start_fails(gs_runtime_t *rt, const char *name, const char *behaviour,
                           const char *args)
{
    json_t *a = tu_json(args);
    json_t *reason = NULL;
    int rc = gs_start(rt, name, gs_behaviour_find(rt, behaviour), a, NULL, &reason);
    json_decref(a);
    assert_int_equal(rc, GS_EINIT);
    assert_null(gs_whereis(rt, name));
    return reason;
}

static void cast(gs_runtime_t *rt, const char *name, const char *msg)
{
    assert_int_equal(tu_cast(rt, name, msg), 0);
}

static void send_info(gs_runtime_t *rt, const char *name, const char *msg)
{
    assert_int_equal(tu_send(rt, name, msg), 0);
}

/* Wait until state[key] is at least min; returns the value seen. */
static long long wait_state_at_least(gs_runtime_t *rt, const char *name, const char *key,
                                     long long min)
{
    long long n = -1;
    TU_WAIT_UNTIL((n = tu_state_int(rt, name, key)) >= min, TU_WAIT_MS);
    return n;
}

/* An asynchronous call whose completion r collects (tu_reply_t). */
static void call_async(gs_runtime_t *rt, const char *name, const char *msg, tu_reply_t *r)
{
    tu_reply_init(r);
    assert_int_equal(gs_call_async(rt, name, tu_json(msg), TU_WAIT_MS, tu_reply_cb, r), 0);
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
            json_decref(tu_json(m->example));
        }
        if (b->args_doc != NULL)
            json_decref(tu_json(b->args_doc));
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
    tu_start_named(rt, "counter", "counter", NULL);
    cast(rt, "counter", "\"increment\"");
    cast(rt, "counter", "\"increment\"");
    cast(rt, "counter", "\"increment\"");
    /* Messages from one sender arrive in order, so the call sees all three casts. */
    assert_int_equal(tu_call_int(rt, "counter", "\"get_count\""), 3);
    json_t *s = tu_state(rt, "counter");
    assert_json_eq(s, "{\"count\": 3}");
    json_decref(s);
}

static void test_counter_steps_and_initial_value(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start_named(rt, "c", "counter", "{\"initial\": 10}");
    cast(rt, "c", "[\"increment\", 5]");
    cast(rt, "c", "\"decrement\"");
    cast(rt, "c", "[\"decrement\", 4]");
    cast(rt, "c", "[\"increment\", -20]");
    assert_int_equal(tu_call_int(rt, "c", "\"get_count\""), -10);
}

static void test_counter_ignores_bad_casts_and_overflow(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start_named(rt, "c", "counter", "{\"initial\": 9223372036854775806}");
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
    assert_int_equal(tu_call_int(rt, "c", "\"get_count\""), 9223372036854775807LL);
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
    tu_start_named(rt, "counter", "counter", NULL);
    tu_start_named(rt, "slow", "slow", NULL);
    tu_start_named(rt, "journal", "journal", NULL);
    cast(rt, "counter", "\"increment\"");

    tu_call_expect(rt, "counter", "\"get_cuont\"", "[\"error\", \"unknown_message\"]");
    tu_call_expect(rt, "counter", "[\"get_count\", 1]", "[\"error\", \"unknown_message\"]");
    tu_call_expect(rt, "journal", "{}", "[\"error\", \"unknown_message\"]");
    tu_call_expect(rt, "slow", "[\"sleep\", \"x\"]", "[\"error\", \"bad_argument\"]");
    tu_call_expect(rt, "slow", "[\"sleep\", -1]", "[\"error\", \"bad_argument\"]");
    tu_call_expect(rt, "slow", "[\"sleep\", 1e3]", "[\"error\", \"bad_argument\"]");
    /* Unknown casts and infos are ignored. */
    cast(rt, "slow", "\"what\"");
    send_info(rt, "counter", "\"what\"");
    send_info(rt, "slow", "[\"wake\", 12345]");
    send_info(rt, "slow", "[\"wake\", \"x\"]");

    /* Nothing crashed, and the state survived the typos. */
    assert_int_equal(tu_call_int(rt, "counter", "\"get_count\""), 1);
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
    tu_start_named(rt, "journal", "journal", NULL);
    cast(rt, "journal", "[\"add_entry\", \"first entry\"]");
    json_t *s = tu_state(rt, "journal");
    assert_json_eq(s, "[\"first entry\"]");
    json_decref(s);

    /* Newest first, as in the example solution's [entry | entries]. */
    cast(rt, "journal", "[\"add_entry\", \"second entry\"]");
    cast(rt, "journal", "[\"add_entry\", {\"any\": [\"json\"]}]");
    tu_call_expect(rt, "journal", "\"entries\"",
                   "[{\"any\": [\"json\"]}, \"second entry\", \"first entry\"]");
    /* Malformed entries are ignored. */
    cast(rt, "journal", "[\"add_entry\"]");
    cast(rt, "journal", "\"add_entry\"");
    s = tu_state(rt, "journal");
    assert_int_equal(json_array_size(s), 3);
    json_decref(s);
}

static void test_journal_drops_oldest_past_max_entries(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start_named(rt, "j", "journal", "{\"max_entries\": 2}");
    cast(rt, "j", "[\"add_entry\", 1]");
    cast(rt, "j", "[\"add_entry\", 2]");
    cast(rt, "j", "[\"add_entry\", 3]");
    tu_call_expect(rt, "j", "\"entries\"", "[3, 2]");
    json_decref(start_fails(rt, "j2", "journal", "{\"max_entries\": 0}"));
}

/* ---------------------------------------------------------------------------------------- */
/* receiver                                                                                   */
/* ---------------------------------------------------------------------------------------- */

static void test_receiver_counts_infos(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start_named(rt, "receiver", "receiver", NULL);
    send_info(rt, "receiver", "\"hello\"");
    send_info(rt, "receiver", "[\"greeting\", \"hi\"]");
    send_info(rt, "receiver", "42");
    /* A cast is not an info: the receiver ignores it. */
    cast(rt, "receiver", "\"not counted\"");
    assert_int_equal(tu_call_int(rt, "receiver", "\"received\""), 3);
    tu_call_expect(rt, "receiver", "\"last\"", "[\"hello\", [\"greeting\", \"hi\"], 42]");

    /* Only the last ten are kept, oldest first. */
    for (int i = 0; i < 12; i++) {
        char msg[16];
        snprintf(msg, sizeof(msg), "%d", i);
        send_info(rt, "receiver", msg);
    }
    json_t *s = tu_state(rt, "receiver");
    assert_json_eq(s, "{\"received\": 15, \"last\": [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]}");
    json_decref(s);
}

/* ---------------------------------------------------------------------------------------- */
/* ticker                                                                                     */
/* ---------------------------------------------------------------------------------------- */

/* One get_count of a ticker, which must not be above the reading before (*last). */
static long long count_reading(gs_runtime_t *rt, const char *name, long long *last)
{
    long long n = tu_call_int(rt, name, "\"get_count\"");
    if (n > *last)
        fail_msg("the count went up from %lld to %lld", *last, n);
    *last = n;
    return n;
}

static void test_ticker_decrementing_goes_down_over_time(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start_named(rt, "down", "ticker", "{\"interval_ms\": 500, \"step\": -1}");
    json_t *s = tu_state(rt, "down");
    assert_int_equal(json_integer_value(json_object_get(s, "interval_ms")), 500);
    assert_int_equal(json_integer_value(json_object_get(s, "step")), -1);
    long long first = json_integer_value(json_object_get(s, "count"));
    json_decref(s);
    assert_true(first <= 0);

    /* About 1.5 s of ticks (the ticker's own interval is the real time this takes): wait
     * until the count went down by at least two, checking at every reading that it only goes
     * down. */
    long long last = first;
    TU_WAIT_UNTIL(count_reading(rt, "down", &last) <= -2, TU_WAIT_MS);
}

static void test_ticker_forged_ticks_count_but_do_not_multiply(void **state)
{
    gs_runtime_t *rt = *state;
    /* A long interval: no real tick happens during the test. */
    tu_start_named(rt, "up", "ticker", "{\"interval_ms\": 60000, \"step\": 2, \"initial\": 1}");
    for (int i = 0; i < 5; i++)
        send_info(rt, "up", "\"tick\"");
    assert_int_equal(tu_call_int(rt, "up", "\"get_count\""), 11);
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
    tu_start_named(rt, "slow", "slow", NULL);
    tu_start_named(rt, "counter", "counter", NULL);

    int64_t t0 = tu_now_ms();
    tu_reply_t long_sleep;
    call_async(rt, "slow", "\"sleep\"", &long_sleep);

    /* Another server answers at once while slow is "asleep". */
    assert_int_equal(tu_call_int(rt, "counter", "\"get_count\""), 0);
    assert_int_equal(tu_reply_runs(&long_sleep), 0);
    assert_true(tu_now_ms() - t0 < 900);

    /* So does slow itself: a short sleeper is answered while the long one still sleeps. */
    tu_call_expect(rt, "slow", "[\"sleep\", 50]", "\"response!\"");
    assert_int_equal(tu_reply_runs(&long_sleep), 0);
    json_t *s = tu_state(rt, "slow");
    assert_json_eq(s, "{\"pending\": 1, \"served\": 1, \"abandoned\": 0}");
    json_decref(s);

    assert_true(tu_reply_wait(&long_sleep, TU_WAIT_MS));
    assert_int_equal(long_sleep.status, 0);
    assert_json_eq(long_sleep.result, "\"response!\"");
    /* A timer never fires early. */
    assert_true(long_sleep.done_at_ms - t0 >= 990);
    tu_reply_close(&long_sleep);
}

static void test_slow_many_callers_sleep_concurrently(void **state)
{
    gs_runtime_t *rt = *state;
    enum { CALLERS = 20 };
    tu_reply_t calls[CALLERS];
    tu_start_named(rt, "slow", "slow", NULL);

    /* Twenty 300 ms sleeps one after another would take 6 s; together they take ~0.3 s. */
    int64_t t0 = tu_now_ms();
    for (int i = 0; i < CALLERS; i++)
        call_async(rt, "slow", "[\"sleep\", 300]", &calls[i]);
    for (int i = 0; i < CALLERS; i++) {
        assert_true(tu_reply_wait(&calls[i], TU_WAIT_MS));
        assert_int_equal(calls[i].status, 0);
        assert_json_eq(calls[i].result, "\"response!\"");
        tu_reply_close(&calls[i]);
    }
    assert_true(tu_now_ms() - t0 < 3000);
    json_t *s = tu_state(rt, "slow");
    assert_json_eq(s, "{\"pending\": 0, \"served\": 20, \"abandoned\": 0}");
    json_decref(s);
}

static void test_slow_stopped_with_sleepers_fails_them(void **state)
{
    gs_runtime_t *rt = *state;
    tu_reply_t sleeper;
    tu_start_named(rt, "slow", "slow", NULL);
    call_async(rt, "slow", "[\"sleep\", 60000]", &sleeper);
    /* Make sure the sleeper is held before stopping (the state is asked after it). */
    assert_int_equal(tu_state_int(rt, "slow", "pending"), 1);
    assert_int_equal(gs_stop(rt, "slow", NULL, TU_WAIT_MS), 0);
    assert_true(tu_reply_wait(&sleeper, TU_WAIT_MS));
    assert_int_equal(sleeper.status, GS_ESTOPPED);
    tu_reply_close(&sleeper);
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
        tu_start_named(rt, name, "producer", args);
    }
}

static void test_batcher_ten_producers_deferred_batches_of_ten(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start_named(rt, "batcher", "batcher", "{\"interval_ms\": 300}");
    start_producers(rt, 10, "batcher");

    /*
     * Each producer's push is held until the flush, so each producer has exactly one number
     * in each batch. The first batch may catch producers still starting; later ones cannot.
     */
    long long batches = wait_state_at_least(rt, "batcher", "batches", 3);
    for (int round = 0; round < 3; round++) {
        json_t *s = tu_state(rt, "batcher");
        assert_int_equal(json_integer_value(json_object_get(s, "last_batch_size")), 10);
        assert_true(json_integer_value(json_object_get(s, "pending")) <= 10);
        json_decref(s);
        batches = wait_state_at_least(rt, "batcher", "batches", batches + 1);
    }

    /* Every producer pushes one number per batch, and its acks follow the batches. */
    json_t *p = tu_state(rt, "producer_3");
    assert_string_equal(json_string_value(json_object_get(p, "target")), "batcher");
    assert_int_equal(json_integer_value(json_object_get(p, "id")), 3);
    assert_true(json_integer_value(json_object_get(p, "acked")) >= 3);
    assert_int_equal(json_integer_value(json_object_get(p, "errors")), 0);
    json_decref(p);
}

static void test_batcher_reply_immediately_gives_far_larger_batches(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start_named(rt, "batcher", "batcher", "{\"interval_ms\": 300, \"reply_immediately\": true}");
    start_producers(rt, 10, "batcher");

    /* Without backpressure the producers push as fast as round trips go. */
    long long batches = wait_state_at_least(rt, "batcher", "batches", 3);
    wait_state_at_least(rt, "batcher", "batches", batches + 1);
    long long size = tu_state_int(rt, "batcher", "last_batch_size");
    assert_true(size > 100);
}

static void test_batcher_push_directly_and_stats(void **state)
{
    gs_runtime_t *rt = *state;
    tu_reply_t a, b;
    tu_start_named(rt, "batcher", "batcher", "{\"interval_ms\": 60000}");
    call_async(rt, "batcher", "[\"push\", 4]", &a);
    call_async(rt, "batcher", "[\"push\", 5]", &b);
    tu_call_expect(rt, "batcher", "[\"push\", \"x\"]", "[\"error\", \"bad_argument\"]");
    tu_call_expect(rt, "batcher", "[\"push\", 1.5]", "[\"error\", \"bad_argument\"]");
    tu_call_expect(rt, "batcher", "\"stats\"",
                   "{\"last_batch_size\": 0, \"last_batch_sum\": 0, \"batches\": 0, \"total\": 0,"
                   " \"pending\": 2}");
    assert_int_equal(tu_reply_runs(&a), 0);

    /* A flush sent by hand closes the batch early and answers both callers. */
    send_info(rt, "batcher", "\"flush\"");
    assert_true(tu_reply_wait(&a, TU_WAIT_MS));
    assert_true(tu_reply_wait(&b, TU_WAIT_MS));
    assert_int_equal(a.status, 0);
    assert_json_eq(a.result, "\"ok\"");
    assert_json_eq(b.result, "\"ok\"");
    tu_call_expect(rt, "batcher", "\"stats\"",
                   "{\"last_batch_size\": 2, \"last_batch_sum\": 9, \"batches\": 1, \"total\": 9,"
                   " \"pending\": 0}");
    /* An empty flush records nothing. */
    send_info(rt, "batcher", "\"flush\"");
    assert_int_equal(tu_state_int(rt, "batcher", "batches"), 1);
    tu_reply_close(&a);
    tu_reply_close(&b);

    json_decref(start_fails(rt, "b2", "batcher", "{\"reply_immediately\": 1}"));
}

static void test_producer_retries_until_target_exists(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start_named(rt, "p", "producer", "{\"target\": \"late\", \"retry_ms\": 20}");
    wait_state_at_least(rt, "p", "errors", 2);
    assert_int_equal(tu_state_int(rt, "p", "acked"), 0);

    tu_start_named(rt, "late", "batcher", "{\"interval_ms\": 20}");
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
    tu_start_named(rt, "misbehaving", "misbehaving", NULL);
    tu_call_expect(rt, "misbehaving", "\"ping\"", "\"pong\"");

    json_t *reason = NULL;
    assert_int_equal(tu_call(rt, "misbehaving", "\"message\"", TU_WAIT_MS, &reason), GS_ECRASHED);
    assert_json_eq(reason, "\"calling_self\"");
    json_decref(reason);

    /* The supervisor restarts it; the new incarnation starts from init, pings back at 0. */
    tu_wait_running(rt, "misbehaving", 1);
    json_t *status = gs_server_status(rt, "misbehaving");
    assert_json_eq(json_object_get(status, "last_crash_reason"), "\"calling_self\"");
    json_decref(status);
    tu_call_expect(rt, "misbehaving", "\"ping\"", "\"pong\"");
    json_t *s = tu_state(rt, "misbehaving");
    assert_json_eq(s, "{\"pings\": 1}");
    json_decref(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        tu_test_builtins(test_builtins_are_registered_and_documented),
        tu_test_builtins(test_counter_three_increments_then_get_count_is_3),
        tu_test_builtins(test_counter_steps_and_initial_value),
        tu_test_builtins(test_counter_ignores_bad_casts_and_overflow),
        tu_test_builtins(test_counter_refuses_bad_init_args),
        tu_test_builtins(test_unknown_message_replies_error_without_crashing),
        tu_test_builtins(test_journal_add_entry_then_get_state),
        tu_test_builtins(test_journal_drops_oldest_past_max_entries),
        tu_test_builtins(test_receiver_counts_infos),
        tu_test_builtins(test_ticker_decrementing_goes_down_over_time),
        tu_test_builtins(test_ticker_forged_ticks_count_but_do_not_multiply),
        tu_test_builtins(test_slow_sleep_does_not_delay_others),
        tu_test_builtins(test_slow_many_callers_sleep_concurrently),
        tu_test_builtins(test_slow_stopped_with_sleepers_fails_them),
        tu_test_builtins(test_batcher_ten_producers_deferred_batches_of_ten),
        tu_test_builtins(test_batcher_reply_immediately_gives_far_larger_batches),
        tu_test_builtins(test_batcher_push_directly_and_stats),
        tu_test_builtins(test_producer_retries_until_target_exists),
        tu_test_builtins(test_misbehaving_calling_self_crashes_and_restarts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
