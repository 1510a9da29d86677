/*
 * test_observe.c: the runtime's part of the observer view (issue 16): schedulers' idle time
 * (gs_runtime_scheduler_idle), every pending timer with who made it, bounded
 * (gs_timers_json), and each server's approximate memory in its status (gs_server_status,
 * gs_runtime_memory).
 */
#include "testutil.h"

#include <genserv/builtins.h>

static uint64_t idle_of(gs_runtime_t *rt, unsigned i)
{
    uint64_t idle[2] = {0, 0};

    assert_int_equal(gs_runtime_scheduler_idle(rt, idle, 2), 2);
    return idle[i];
}

static void test_idle_schedulers_count_their_sleep(void **state)
{
    gs_runtime_t *rt = *state;
    uint64_t before0 = idle_of(rt, 0), before1 = idle_of(rt, 1);

    /* Nothing runs: both sleep, and a sleep is counted when it ends (every 50 ms at most). */
    TU_WAIT_UNTIL(idle_of(rt, 0) >= before0 + 200000000u && idle_of(rt, 1) >= before1 + 200000000u,
                  TU_WAIT_MS);
    assert_int_equal(gs_runtime_scheduler_idle(rt, NULL, 0), 2);
    assert_int_equal(gs_runtime_scheduler_idle(NULL, NULL, 0), 0);
}

static json_t *timer_to(const json_t *list, const char *server)
{
    json_t *t;
    size_t i;

    json_array_foreach(json_object_get(list, "timers"), i, t)
    {
        if (strcmp(json_string_value(json_object_get(t, "server")), server) == 0)
            return t;
    }
    return NULL;
}

static const char *by(const json_t *t)
{
    return json_string_value(json_object_get(t, "created_by"));
}

static void test_every_timer_is_listed_with_its_maker(void **state)
{
    gs_runtime_t *rt = *state;
    gs_timer_options_t ext = {.external = true, .interval_ms = 0};
    gs_timer_options_t every = {.external = true, .interval_ms = 900000};

    /* A ticker arms its own tick; a client's timers; a timer from this (embedding) thread. */
    tu_start_named(rt, "t", "ticker", "{\"interval_ms\": 600000}");
    tu_start_named(rt, "c", "counter", NULL);
    assert_int_equal(gs_send_after_opts(rt, "c", tu_json("\"increment\""), 700000, &ext, NULL), 0);
    assert_int_equal(gs_send_after_opts(rt, "c", tu_json("1"), 800000, &every, NULL), 0);
    assert_int_equal(gs_send_after(rt, "t", tu_json("\"tick\""), 900000, NULL), 0);
    TU_WAIT_UNTIL(tu_stats(rt).pending_timers == 4, TU_WAIT_MS);

    json_t *all = gs_timers_json(rt, 100, false);
    assert_int_equal(json_integer_value(json_object_get(all, "count")), 4);
    assert_false(json_is_true(json_object_get(all, "truncated")));
    json_t *timers = json_object_get(all, "timers");
    assert_int_equal(json_array_size(timers), 4);
    /* Soonest first: the ticker's own (600 s), then the client's 700 s and 800 s ones, then
     * the embedding thread's 900 s one. */
    assert_string_equal(by(json_array_get(timers, 0)), "server:t");
    assert_string_equal(by(json_array_get(timers, 1)), "external");
    assert_string_equal(by(json_array_get(timers, 2)), "external");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(timers, 2), "interval_ms")),
                     900000);
    assert_null(json_object_get(json_array_get(timers, 1), "interval_ms"));
    assert_string_equal(by(json_array_get(timers, 3)), "runtime");
    assert_non_null(timer_to(all, "t"));
    json_decref(all);

    /* Bounded: the 2 soonest of 4, and said so; the external-only view keeps its count. */
    json_t *two = gs_timers_json(rt, 2, false);
    assert_int_equal(json_integer_value(json_object_get(two, "count")), 4);
    assert_true(json_is_true(json_object_get(two, "truncated")));
    assert_int_equal(json_array_size(json_object_get(two, "timers")), 2);
    assert_string_equal(by(json_array_get(json_object_get(two, "timers"), 0)), "server:t");
    json_decref(two);
    json_t *ext_only = gs_external_timers_json(rt, 100);
    assert_int_equal(json_integer_value(json_object_get(ext_only, "count")), 2);
    assert_null(timer_to(ext_only, "t"));
    json_decref(ext_only);
}

static json_int_t memory_of(gs_runtime_t *rt, const char *name, const char *key)
{
    json_t *st = gs_server_status(rt, name);
    json_t *mem = json_object_get(st, "memory");
    json_int_t v;

    assert_non_null(mem);
    v = json_integer_value(json_object_get(mem, key));
    assert_int_equal(json_integer_value(json_object_get(st, "memory_bytes")),
                     json_integer_value(json_object_get(mem, "state_bytes")) +
                         json_integer_value(json_object_get(mem, "mailbox_bytes")));
    json_decref(st);
    return v;
}

static void test_memory_follows_the_state(void **state)
{
    gs_runtime_t *rt = *state;

    tu_start_named(rt, "j", "journal", NULL);
    json_decref(tu_state(rt, "j")); /* a read weighs the state */
    json_int_t empty = memory_of(rt, "j", "state_bytes");
    assert_true(empty > 0);
    for (int i = 0; i < 20; i++)
        assert_int_equal(
            tu_cast(rt, "j", "[\"add_entry\", \"an entry of a journal that takes some room\"]"), 0);
    json_decref(tu_state(rt, "j")); /* after the casts: the mailbox is FIFO */
    json_int_t full = memory_of(rt, "j", "state_bytes");
    assert_true(full >= empty + 20 * 40);
    assert_int_equal(memory_of(rt, "j", "mailbox_bytes"), 0);
    assert_true(gs_runtime_memory(rt) >= (uint64_t)full);
    assert_int_equal(gs_runtime_memory(NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_idle_schedulers_count_their_sleep, tu_setup,
                                        tu_teardown),
        cmocka_unit_test_setup_teardown(test_every_timer_is_listed_with_its_maker,
                                        tu_setup_builtins, tu_teardown),
        cmocka_unit_test_setup_teardown(test_memory_follows_the_state, tu_setup_builtins,
                                        tu_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
