/*
 * test_timer.c: timers (gs_send_after, gs_send_after_server, gs_cancel_timer, gs_read_timer).
 *
 * What a user relies on: a timer's message reaches handle_info after its delay (checked with
 * generous bounds: no earlier than 80% of it, no later than 5 s); cancelling a pending timer
 * returns the time it had left and the message never arrives; read_timer counts down; a fired
 * or cancelled timer is no_such_timer; a timer given a name resolves it when it fires, so it
 * reaches a restarted server but is dropped (and counted) when nobody has the name; a timer
 * given a handle is dropped once that incarnation is gone; every timer fires or is cancelled,
 * never both, even when cancelling races with firing; and 100,000 timers all fire.
 *
 * "sink" is this file's own behaviour: it adds up integer infos into process-wide counters
 * (count, sum, time of the last arrival), on "again" re-arms itself like a ticker, and notes
 * a "marker" info apart: a timer due after the ones under test, whose arrival proves that
 * their moment has passed.
 */
#include "testutil.h"

#include "probe.h"

static atomic_llong sink_count;
static atomic_llong sink_sum;
static atomic_llong sink_last_ms;
static atomic_int sink_marker;

static gs_result_t sink_info(gs_server_t *self, void *state, json_t *msg)
{
    (void)state;
    if (json_is_string(msg) && strcmp(json_string_value(msg), "again") == 0) {
        /* A ticker: re-arm until five ticks were seen. */
        if (atomic_fetch_add(&sink_count, 1) + 1 < 5)
            gs_send_after_server(self, json_string("again"), 20, NULL);
        return GS_NOREPLY;
    }
    if (json_is_string(msg) && strcmp(json_string_value(msg), "marker") == 0) {
        atomic_store(&sink_marker, 1);
        return GS_NOREPLY;
    }
    atomic_fetch_add(&sink_sum, (long long)json_integer_value(msg));
    atomic_store(&sink_last_ms, tu_now_ms());
    atomic_fetch_add(&sink_count, 1);
    return GS_NOREPLY;
}

static const gs_behaviour_t sink_behaviour = {
    .name = "sink",
    .init = bare_init,
    .handle_info = sink_info,
};

/* probe_setup, with the sink's counters cleared too. */
static int sink_setup(void **state)
{
    atomic_store(&sink_count, 0);
    atomic_store(&sink_sum, 0);
    atomic_store(&sink_last_ms, 0);
    atomic_store(&sink_marker, 0);
    return probe_setup(state);
}

#define sink_test(f) cmocka_unit_test_setup_teardown(f, sink_setup, probe_teardown)

/* A timer delivers its message to handle_info after the delay, in delay order. */
static void test_send_after_delivers(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "sink", &sink_behaviour, NULL, NULL);
    uint64_t pending0 = tu_stats(rt).pending_timers;
    gs_timer_ref_t ref = 0;
    int64_t t0 = tu_now_ms();
    assert_int_equal(gs_send_after(rt, "sink", json_integer(7), 200, &ref), 0);
    assert_true(ref != 0);
    assert_int_equal(tu_stats(rt).pending_timers, pending0 + 1);
    TU_WAIT_UNTIL(atomic_load(&sink_count) == 1, 5000);
    assert_in_range(atomic_load(&sink_last_ms) - t0, 160, 5000);
    assert_int_equal(atomic_load(&sink_sum), 7);
    assert_int_equal(tu_stats(rt).pending_timers, pending0);

    /* The shorter timer fires first even though it was set second; refs are distinct. */
    tu_start(rt, "p", probe_behaviour(), NULL, NULL);
    gs_timer_ref_t r1 = 0, r2 = 0;
    assert_int_equal(gs_send_after(rt, "p", json_string("late"), 300, &r1), 0);
    assert_int_equal(gs_send_after(rt, "p", json_string("early"), 50, &r2), 0);
    assert_true(r1 != 0 && r2 != 0 && r1 != r2);
    /* A NULL ref pointer is allowed, and a zero delay is delivered promptly. */
    assert_int_equal(gs_send_after(rt, "p", json_string("now"), 0, NULL), 0);
    TU_WAIT_UNTIL(probe_ninfos(rt, "p") == 3, 5000);
    json_t *st = probe_state(rt, "p");
    assert_json_eq(json_object_get(st, "infos"), "[\"now\", \"early\", \"late\"]");
    json_decref(st);

    assert_int_equal(gs_send_after(rt, "p", NULL, 10, NULL), GS_EINVAL);
}

/* Cancelling a pending timer returns its remaining time, and the message never arrives. */
static void test_cancel_before_firing(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "p", probe_behaviour(), NULL, NULL);
    uint64_t pending0 = tu_stats(rt).pending_timers;
    gs_timer_ref_t ref = 0;
    assert_int_equal(gs_send_after(rt, "p", json_string("never"), 300, &ref), 0);
    int64_t remaining = -1;
    assert_int_equal(gs_cancel_timer(rt, ref, &remaining), 0);
    assert_in_range(remaining, 1, 300);
    assert_int_equal(tu_stats(rt).pending_timers, pending0);

    assert_int_equal(gs_cancel_timer(rt, ref, &remaining), GS_ENOTIMER);
    assert_int_equal(gs_read_timer(rt, ref, &remaining), GS_ENOTIMER);
    assert_int_equal(gs_cancel_timer(rt, ref, NULL), GS_ENOTIMER);

    /* Past the due time nothing arrives: a marker timer set after it and due later has
     * arrived (timers fire in due order, into one mailbox), and nothing came before it. */
    assert_int_equal(gs_send_after(rt, "p", json_string("marker"), 350, NULL), 0);
    TU_WAIT_UNTIL(probe_ninfos(rt, "p") >= 1, TU_WAIT_MS);
    json_t *st = probe_state(rt, "p");
    assert_json_eq(json_object_get(st, "infos"), "[\"marker\"]");
    json_decref(st);
}

/* read_timer counts down and leaves the timer pending. */
static void test_read_timer_decreasing(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "p", probe_behaviour(), NULL, NULL);
    gs_timer_ref_t ref = 0;
    assert_int_equal(gs_send_after(rt, "p", json_string("later"), 10000, &ref), 0);
    int64_t r1 = -1, r2 = -1, r3 = -1;
    assert_int_equal(gs_read_timer(rt, ref, &r1), 0);
    assert_in_range(r1, 5000, 10000);
    /* Counting down is real time passing: wait until a reading is lower (each must succeed). */
    TU_WAIT_UNTIL(gs_read_timer(rt, ref, &r2) == 0 && r2 < r1, TU_WAIT_MS);
    assert_int_equal(gs_read_timer(rt, ref, &r2), 0);
    assert_true(r2 < r1);
    assert_true(r2 > 5000);
    assert_int_equal(gs_cancel_timer(rt, ref, &r3), 0);
    assert_true(r3 <= r2);
    assert_true(r3 > 5000);
}

/* A fired timer, and a reference that never existed, are no_such_timer. */
static void test_enotimer_after_firing(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "sink", &sink_behaviour, NULL, NULL);
    gs_timer_ref_t ref = 0;
    assert_int_equal(gs_send_after(rt, "sink", json_integer(1), 10, &ref), 0);
    TU_WAIT_UNTIL(atomic_load(&sink_count) == 1, 5000);
    int64_t remaining = -1;
    assert_int_equal(gs_read_timer(rt, ref, &remaining), GS_ENOTIMER);
    assert_int_equal(gs_cancel_timer(rt, ref, &remaining), GS_ENOTIMER);
    assert_int_equal(gs_read_timer(rt, 0, &remaining), GS_ENOTIMER);
    assert_int_equal(gs_cancel_timer(rt, 0, &remaining), GS_ENOTIMER);
    assert_int_equal(gs_read_timer(rt, ref + 1000000, &remaining), GS_ENOTIMER);
    assert_int_equal(gs_cancel_timer(rt, UINT64_MAX, &remaining), GS_ENOTIMER);
}

/* A timer whose named target is gone when it fires is dropped and counted. */
static void test_target_gone_dropped(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "t", &sink_behaviour, NULL, NULL);
    uint64_t dropped0 = tu_stats(rt).dropped_timers;
    assert_int_equal(gs_send_after(rt, "t", json_integer(1), 100, NULL), 0);
    assert_int_equal(gs_stop(rt, "t", NULL, TU_WAIT_MS), 0);
    TU_WAIT_UNTIL(tu_stats(rt).dropped_timers == dropped0 + 1, 5000);

    /* The name is resolved when the timer fires: a name nobody has is accepted, then dropped. */
    assert_int_equal(gs_send_after(rt, "nobody", json_integer(1), 10, NULL), 0);
    TU_WAIT_UNTIL(tu_stats(rt).dropped_timers == dropped0 + 2, 5000);
    assert_int_equal(atomic_load(&sink_count), 0);
    TU_WAIT_UNTIL(tu_stats(rt).pending_timers == 0, 5000);
}

/* A named timer reaches the restarted incarnation; a handle timer does not. */
static void test_timer_across_restart(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "r", probe_behaviour(), NULL, NULL);
    gs_server_t *old = gs_whereis(rt, "r");
    assert_non_null(old);
    uint64_t dropped0 = tu_stats(rt).dropped_timers;
    assert_int_equal(gs_send_after(rt, "r", json_string("by name"), 500, NULL), 0);
    assert_int_equal(gs_send_after_server(old, json_string("by handle"), 500, NULL), 0);
    assert_int_equal(tu_cast(rt, "r", "[\"crash\", \"restart me\"]"), 0);
    TU_WAIT_UNTIL(tu_status_int(rt, "r", "restarts") == 1, TU_WAIT_MS);

    TU_WAIT_UNTIL(tu_stats(rt).dropped_timers == dropped0 + 1, 5000);
    TU_WAIT_UNTIL(probe_ninfos(rt, "r") == 1, 5000);
    json_t *st = probe_state(rt, "r");
    assert_json_eq(json_object_get(st, "infos"), "[\"by name\"]");
    json_decref(st);
    gs_server_unref(old);
}

/* A server re-arming its own timer from handle_info ticks like the seed's counters. */
static void test_self_rearming_ticker(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "tick", &sink_behaviour, NULL, NULL);
    int64_t t0 = tu_now_ms();
    assert_int_equal(gs_send(rt, "tick", json_string("again")), 0);
    TU_WAIT_UNTIL(atomic_load(&sink_count) == 5, 5000);
    /* Four re-arms of 20 ms each. */
    assert_true(tu_now_ms() - t0 >= 64);
    TU_WAIT_UNTIL(tu_stats(rt).pending_timers == 0, 5000);
    assert_int_equal(atomic_load(&sink_count), 5);
}

/* pending_timers counts timers that neither fired nor were cancelled. */
static void test_pending_timers_stat(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "p", probe_behaviour(), NULL, NULL);
    uint64_t pending0 = tu_stats(rt).pending_timers;
    gs_timer_ref_t refs[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(gs_send_after(rt, "p", json_integer(i), 60000, &refs[i]), 0);
    assert_int_equal(tu_stats(rt).pending_timers, pending0 + 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(gs_cancel_timer(rt, refs[i], NULL), 0);
    assert_int_equal(tu_stats(rt).pending_timers, pending0);
}

/* Cancelling races with firing: every timer is either cancelled or delivered, never both. */
static void test_cancel_races_firing(void **state)
{
    gs_runtime_t *rt = *state;
    enum { N = 10000 };
    gs_start_options_t opts = tu_start_options(GS_PERMANENT, 2 * N);
    tu_start(rt, "sink", &sink_behaviour, NULL, &opts);
    static gs_timer_ref_t refs[N];
    for (int i = 0; i < N; i++)
        assert_int_equal(
            gs_send_after(rt, "sink", json_integer(i + 1), (uint64_t)(i % 5), &refs[i]), 0);
    long long cancelled = 0, cancelled_sum = 0;
    for (int i = 0; i < N; i++) {
        int rc = gs_cancel_timer(rt, refs[i], NULL);
        if (rc == 0) {
            cancelled++;
            cancelled_sum += i + 1;
        } else {
            assert_int_equal(rc, GS_ENOTIMER);
        }
    }
    long long total_sum = (long long)N * (N + 1) / 2;
    TU_WAIT_UNTIL(atomic_load(&sink_count) == N - cancelled, TU_WAIT_MS);
    TU_WAIT_UNTIL(tu_stats(rt).pending_timers == 0, TU_WAIT_MS);
    /* Nothing more arrives: a marker timer due after all of them (at most 4 ms ahead) has
     * reached the sink's mailbox behind anything a cancelled timer could still deliver. */
    assert_int_equal(gs_send_after(rt, "sink", json_string("marker"), 10, NULL), 0);
    TU_WAIT_UNTIL(atomic_load(&sink_marker), TU_WAIT_MS);
    assert_int_equal(atomic_load(&sink_count), N - cancelled);
    assert_int_equal(atomic_load(&sink_sum), total_sum - cancelled_sum);
}

/* 100,000 timers, spread over 200 ms, all fire exactly once. */
static void test_many_timers_fire(void **state)
{
    gs_runtime_t *rt = *state;
    enum { N = 100000 };
    gs_start_options_t opts = tu_start_options(GS_PERMANENT, 2 * N);
    tu_start(rt, "sink", &sink_behaviour, NULL, &opts);
    for (int i = 0; i < N; i++) {
        int rc = gs_send_after(rt, "sink", json_integer(i), (uint64_t)(i % 200), NULL);
        if (rc != 0)
            fail_msg("send_after %d: %s", i, gs_err_name(rc));
    }
    TU_WAIT_UNTIL(atomic_load(&sink_count) == N, 60000);
    assert_int_equal(atomic_load(&sink_sum), (long long)N * (N - 1) / 2);
    TU_WAIT_UNTIL(tu_stats(rt).pending_timers == 0, 5000);
    assert_int_equal(tu_stats(rt).dropped_timers, 0);
}

/* Pending timers do not hold up gs_runtime_destroy and are freed by it. */
static void test_destroy_with_pending_timers(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "p", probe_behaviour(), NULL, NULL);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(gs_send_after(rt, "p", json_integer(i), 60000 + (uint64_t)i, NULL), 0);
    assert_int_equal(gs_send_after(rt, "nobody", json_string("x"), 60000, NULL), 0);
    int64_t t0 = tu_now_ms();
    gs_runtime_destroy(rt);
    *state = NULL;
    assert_true(tu_now_ms() - t0 < 5000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        sink_test(test_send_after_delivers),         sink_test(test_cancel_before_firing),
        sink_test(test_read_timer_decreasing),       sink_test(test_enotimer_after_firing),
        sink_test(test_target_gone_dropped),         sink_test(test_timer_across_restart),
        sink_test(test_self_rearming_ticker),        sink_test(test_pending_timers_stat),
        sink_test(test_cancel_races_firing),         sink_test(test_many_timers_fire),
        sink_test(test_destroy_with_pending_timers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
