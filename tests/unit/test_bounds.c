/*
 * test_bounds.c: what a client cannot make the runtime keep or do (issue 12's runtime side):
 * pending timers bounded in number and bytes, per server and in all; external timers that
 * respect a mailbox limit and are the only ones reachable as external; the held-call table
 * that a timed-out call always leaves; a holder told when its caller is gone; gs_json_size.
 * Each test builds the runtime with the bounds it checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <genserv/builtins.h>
#include <genserv/message.h>

#include "probe.h"

/* A runtime with small timer bounds; 0 keeps a default. */
static gs_runtime_t *bounded(uint64_t timers, uint64_t bytes, uint64_t per_server,
                             uint64_t bytes_per_server)
{
    gs_runtime_options_t o;
    gs_runtime_t *rt = NULL;

    gs_runtime_options_init(&o);
    o.schedulers = 2;
    if (timers != 0)
        o.max_timers = timers;
    if (bytes != 0)
        o.max_timer_bytes = bytes;
    if (per_server != 0)
        o.max_timers_per_server = per_server;
    if (bytes_per_server != 0)
        o.max_timer_bytes_per_server = bytes_per_server;
    assert_int_equal(gs_runtime_create(&o, &rt), 0);
    return rt;
}

static int send_after(gs_runtime_t *rt, const char *name, const char *msg, uint64_t ms,
                      gs_timer_ref_t *ref)
{
    return gs_send_after(rt, name, tu_json(msg), ms, ref);
}

static void test_timers_are_bounded_per_server(void **state)
{
    gs_runtime_t *rt = bounded(0, 0, 3, 0);
    gs_timer_ref_t refs[3];

    (void)state;
    probe_reset();
    tu_start(rt, "a", probe_behaviour(), NULL, NULL);
    tu_start(rt, "b", probe_behaviour(), NULL, NULL);
    for (int i = 0; i < 3; i++)
        assert_int_equal(send_after(rt, "a", "\"t\"", 60000, &refs[i]), 0);
    assert_int_equal(send_after(rt, "a", "\"t\"", 60000, NULL), GS_EOVERLOADED);
    /* Another server has bounds of its own. */
    assert_int_equal(send_after(rt, "b", "\"t\"", 60000, NULL), 0);
    assert_int_equal(tu_stats(rt).pending_timers, 4);
    /* A cancelled timer makes room again. */
    assert_int_equal(gs_cancel_timer(rt, refs[0], NULL), 0);
    assert_int_equal(send_after(rt, "a", "\"t\"", 60000, NULL), 0);
    gs_runtime_destroy(rt);
    probe_cleanup();
}

static void test_timers_are_bounded_in_all(void **state)
{
    gs_runtime_t *rt = bounded(4, 0, 0, 0);

    (void)state;
    probe_reset();
    tu_start(rt, "a", probe_behaviour(), NULL, NULL);
    tu_start(rt, "b", probe_behaviour(), NULL, NULL);
    assert_int_equal(send_after(rt, "a", "1", 60000, NULL), 0);
    assert_int_equal(send_after(rt, "a", "2", 60000, NULL), 0);
    assert_int_equal(send_after(rt, "b", "3", 60000, NULL), 0);
    assert_int_equal(send_after(rt, "b", "4", 60000, NULL), 0);
    assert_int_equal(send_after(rt, "b", "5", 60000, NULL), GS_EOVERLOADED);
    /* A server's own timer (by handle) counts too. */
    gs_server_t *a = gs_whereis(rt, "a");
    assert_int_equal(gs_send_after_server(a, json_string("6"), 60000, NULL), GS_EOVERLOADED);
    gs_server_unref(a);
    assert_int_equal(tu_stats(rt).pending_timers, 4);
    gs_runtime_destroy(rt);
    probe_cleanup();
}

static void test_timer_bytes_are_bounded(void **state)
{
    gs_runtime_t *rt = bounded(0, 0, 0, 64 * 1024);
    json_t *big = json_array();
    gs_timer_ref_t ref;

    (void)state;
    probe_reset();
    tu_start(rt, "a", probe_behaviour(), NULL, NULL);
    for (int i = 0; i < 5000; i++)
        json_array_append_new(big, json_integer(i));
    assert_true(gs_json_size(big) > 64 * 1024);
    assert_int_equal(gs_send_after(rt, "a", big, 60000, NULL), GS_EOVERLOADED);
    assert_int_equal(tu_stats(rt).pending_timer_bytes, 0);
    /* A small one fits, and its bytes are counted until it fires. */
    assert_int_equal(send_after(rt, "a", "[\"small\", 1]", 20, &ref), 0);
    assert_true(tu_stats(rt).pending_timer_bytes > 0);
    TU_WAIT_UNTIL(tu_stats(rt).pending_timers == 0, TU_WAIT_MS);
    assert_int_equal(tu_stats(rt).pending_timer_bytes, 0);
    gs_runtime_destroy(rt);
    probe_cleanup();
}

static int send_after_external(gs_runtime_t *rt, const char *name, const char *msg, uint64_t ms,
                               gs_timer_ref_t *ref)
{
    static const gs_timer_options_t external = {.external = true};
    return gs_send_after_opts(rt, name, tu_json(msg), ms, &external, ref);
}

/* A busy server whose mailbox (limit 1) is full: its handler blocks on the probe's gate. */
static void fill_blocked(gs_runtime_t *rt)
{
    gs_start_options_t o = tu_start_options(GS_PERMANENT, 1);
    tu_start(rt, "busy", probe_behaviour(), NULL, &o);
    assert_int_equal(tu_cast(rt, "busy", "\"block\""), 0);
    TU_WAIT_UNTIL(probe_is_blocked(), TU_WAIT_MS);
    assert_int_equal(tu_cast(rt, "busy", "\"queued\""), 0);
    assert_int_equal(tu_cast(rt, "busy", "\"one too many\""), GS_EOVERLOADED);
}

static void test_external_timers_respect_the_mailbox_limit(void **state)
{
    gs_runtime_t *rt = *state;
    uint64_t dropped0 = tu_stats(rt).dropped_timers;

    fill_blocked(rt);
    /* Due at once into a full mailbox: refused up front. */
    assert_int_equal(send_after_external(rt, "busy", "\"now\"", 0, NULL), GS_EOVERLOADED);
    /* Due later: accepted, then dropped and counted when it fires into the full mailbox. */
    assert_int_equal(send_after_external(rt, "busy", "\"later\"", 5, NULL), 0);
    TU_WAIT_UNTIL(tu_stats(rt).dropped_timers == dropped0 + 1, TU_WAIT_MS);
    /* A server's own kind of timer (not external) keeps its guarantee: it is delivered past
     * the limit. */
    assert_int_equal(send_after(rt, "busy", "\"forced\"", 5, NULL), 0);
    TU_WAIT_UNTIL(tu_stats(rt).pending_timers == 0, TU_WAIT_MS);
    assert_int_equal(tu_stats(rt).dropped_timers, dropped0 + 1);
    probe_open_gate();
    TU_WAIT_UNTIL(tu_state_int(rt, "busy", "ninfos") == 1, TU_WAIT_MS);
}

static void test_only_external_timers_are_reachable_as_external(void **state)
{
    gs_runtime_t *rt = *state;
    gs_timer_ref_t own, ext;
    int64_t left = -1;

    tu_start(rt, "a", probe_behaviour(), NULL, NULL);
    assert_int_equal(send_after(rt, "a", "\"own\"", 60000, &own), 0);
    assert_int_equal(send_after_external(rt, "a", "[\"ext\", 1]", 30000, &ext), 0);
    assert_int_equal(send_after_external(rt, "nobody", "1", 1000, NULL), GS_ENOSERVER);

    assert_int_equal(gs_read_external_timer(rt, own, &left), GS_ENOTIMER);
    assert_int_equal(gs_cancel_external_timer(rt, own, NULL), GS_ENOTIMER);
    assert_int_equal(gs_read_timer(rt, own, &left), 0); /* still pending: untouched */
    assert_int_equal(gs_read_external_timer(rt, ext, &left), 0);
    assert_in_range(left, 29000, 30000);

    json_t *list = gs_external_timers_json(rt, 10);
    assert_int_equal(json_integer_value(json_object_get(list, "count")), 1);
    json_t *t = json_array_get(json_object_get(list, "timers"), 0);
    assert_int_equal(json_integer_value(json_object_get(t, "ref")), (json_int_t)ext);
    assert_string_equal(json_string_value(json_object_get(t, "server")), "a");
    assert_json_eq(json_object_get(t, "message"), "[\"ext\", 1]");
    assert_true(json_integer_value(json_object_get(t, "created_at_ms")) > 1700000000000);
    json_decref(list);
    /* The limit bounds the listing, not the count. */
    assert_int_equal(send_after_external(rt, "a", "2", 1000, NULL), 0);
    list = gs_external_timers_json(rt, 1);
    assert_int_equal(json_integer_value(json_object_get(list, "count")), 2);
    assert_int_equal(json_array_size(json_object_get(list, "timers")), 1);
    /* Soonest first: the 1 s one. */
    assert_json_eq(json_object_get(json_array_get(json_object_get(list, "timers"), 0), "message"),
                   "2");
    json_decref(list);

    assert_int_equal(gs_cancel_external_timer(rt, ext, &left), 0);
    assert_int_equal(gs_read_external_timer(rt, ext, &left), GS_ENOTIMER);
}

/* Sleepers of slow whose calls time out are let go, and their timers cancelled at once. */
static void test_a_holder_is_told_its_caller_is_gone(void **state)
{
    gs_runtime_t *rt = *state;
    json_t *r = NULL;

    tu_start_named(rt, "slow", "slow", NULL);
    uint64_t base = tu_stats(rt).pending_timers;
    for (int i = 0; i < 20; i++) {
        assert_int_equal(tu_call(rt, "slow", "[\"sleep\", 3600000]", 10, &r), GS_ETIMEOUT);
        json_decref(r);
    }
    TU_WAIT_UNTIL(tu_state_int(rt, "slow", "abandoned") == 20, TU_WAIT_MS);
    TU_WAIT_UNTIL(tu_stats(rt).pending_timers == base, TU_WAIT_MS);
    assert_int_equal(tu_state_int(rt, "slow", "pending"), 0);
    assert_int_equal(tu_stats(rt).held_calls, 0);
}

/* A forged ["caller_gone", ID] for a caller that still waits changes nothing. */
static void test_a_forged_caller_gone_is_ignored(void **state)
{
    gs_runtime_t *rt = *state;
    tu_reply_t waiting;

    tu_start_named(rt, "slow", "slow", NULL);
    tu_reply_init(&waiting);
    assert_int_equal(
        gs_call_async(rt, "slow", tu_json("[\"sleep\", 300]"), 10000, tu_reply_cb, &waiting), 0);
    TU_WAIT_UNTIL(tu_state_int(rt, "slow", "pending") == 1, TU_WAIT_MS);
    /* Every id a client could guess: none is a caller that is gone. */
    for (int id = 1; id < 200; id++) {
        char msg[64];
        snprintf(msg, sizeof(msg), "[\"caller_gone\", %d]", id);
        assert_int_equal(tu_send(rt, "slow", msg), 0);
    }
    assert_true(tu_reply_wait(&waiting, TU_WAIT_MS));
    assert_int_equal(waiting.status, 0);
    assert_json_eq(waiting.result, "\"response!\"");
    assert_int_equal(tu_state_int(rt, "slow", "abandoned"), 0);
    tu_reply_close(&waiting);
}

/* Many calls that time out at the moment they are handled: none stays counted as held. */
static void test_timed_out_calls_never_stay_held(void **state)
{
    gs_runtime_t *rt = *state;
    enum { N = 5000 };
    tu_reply_t *r = calloc(N, sizeof(*r));

    assert_non_null(r);
    tu_start_named(rt, "slow", "slow", NULL);
    for (int i = 0; i < N; i++) {
        tu_reply_init(&r[i]);
        assert_int_equal(
            gs_call_async(rt, "slow", tu_json("[\"sleep\", 1]"), i % 3, tu_reply_cb, &r[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        assert_true(tu_reply_wait(&r[i], TU_WAIT_MS));
        assert_true(r[i].status == 0 || r[i].status == GS_ETIMEOUT);
        tu_reply_close(&r[i]);
    }
    free(r);
    TU_WAIT_UNTIL(tu_stats(rt).held_calls == 0, TU_WAIT_MS);
    TU_WAIT_UNTIL(tu_status_int(rt, "slow", "held_calls") == 0, TU_WAIT_MS);
    TU_WAIT_UNTIL(tu_state_int(rt, "slow", "pending") == 0, TU_WAIT_MS);
}

static void test_json_size_counts_what_is_kept(void **state)
{
    json_t *s = json_stringn("aaaaaaaaaa", 10), *a = json_array(), *o = json_object();

    (void)state;
    assert_int_equal(gs_json_size(NULL), 0);
    assert_int_equal(gs_json_size(json_null()), 0);
    assert_true(gs_json_size(s) >= 10);
    for (int i = 0; i < 1000; i++)
        json_array_append_new(a, json_integer(i));
    /* A thousand integers take far more than their text (about 4 KB). */
    assert_true(gs_json_size(a) >= 1000 * 24);
    json_object_set(o, "list", a);
    json_object_set(o, "s", s);
    assert_true(gs_json_size(o) > gs_json_size(a) + gs_json_size(s));
    json_decref(o);
    json_decref(a);
    json_decref(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timers_are_bounded_per_server),
        cmocka_unit_test(test_timers_are_bounded_in_all),
        cmocka_unit_test(test_timer_bytes_are_bounded),
        probe_test(test_external_timers_respect_the_mailbox_limit),
        probe_test(test_only_external_timers_are_reachable_as_external),
        cmocka_unit_test_setup_teardown(test_a_holder_is_told_its_caller_is_gone, tu_setup_builtins,
                                        tu_teardown),
        cmocka_unit_test_setup_teardown(test_a_forged_caller_gone_is_ignored, tu_setup_builtins,
                                        tu_teardown),
        cmocka_unit_test_setup_teardown(test_timed_out_calls_never_stay_held, tu_setup_builtins,
                                        tu_teardown),
        cmocka_unit_test(test_json_size_counts_what_is_kept),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
