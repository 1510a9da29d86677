/*
 * test_wheel.c: the timer thread's hierarchical timing wheel (runtime/wheel.h), driven by a
 * simulated clock so that exactness can be asserted: every node fires at the first tick at or
 * after its due tick, never early and never late, across every level and through cascades;
 * removed nodes never fire; gs__wheel_next() never sleeps past work.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "wheel.h"

typedef struct rec_s {
    gs__wnode_t n;
    uint64_t fired_at; /* 0: not fired */
    int fires;
} rec_t;

typedef struct clock_s {
    uint64_t now;
} clock_t_;

static void on_fire(gs__wnode_t *n, void *arg)
{
    clock_t_ *c = arg;
    rec_t *r = (rec_t *)((char *)n - offsetof(rec_t, n));
    r->fired_at = c->now;
    r->fires++;
}

/* Step the clock tick by tick, as a timer thread that is never late would. */
static void run_until(gs__wheel_t *w, clock_t_ *c, uint64_t end)
{
    while (c->now < end) {
        c->now++;
        gs__wheel_advance(w, c->now, on_fire, c);
    }
}

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void test_fires_exactly_at_due_tick_on_every_level(void **state)
{
    (void)state;
    enum { N = 20000 };
    static gs__wheel_t w;
    clock_t_ c = {.now = 1000};
    gs__wheel_init(&w, c.now);
    rec_t *recs = calloc(N, sizeof(*recs));
    assert_non_null(recs);
    uint64_t seed = 88172645463325252ull, last = 0;
    for (int i = 0; i < N; i++) {
        /* Spread over every level: 1 tick to ~20 million ticks (level 3). */
        uint64_t span = UINT64_C(1) << (rnd(&seed) % 25);
        recs[i].n.due_tick = c.now + 1 + rnd(&seed) % span;
        if (recs[i].n.due_tick > last)
            last = recs[i].n.due_tick;
        gs__wheel_insert(&w, &recs[i].n);
    }
    assert_int_equal(w.count, N);
    run_until(&w, &c, last);
    for (int i = 0; i < N; i++) {
        assert_int_equal(recs[i].fires, 1);
        assert_int_equal(recs[i].fired_at, recs[i].n.due_tick);
    }
    assert_int_equal(w.count, 0);
    free(recs);
}

static void test_inserts_while_turning_and_late_inserts(void **state)
{
    (void)state;
    static gs__wheel_t w;
    clock_t_ c = {.now = 255}; /* just before a level-0 wrap: cascades come at once */
    gs__wheel_init(&w, c.now);
    rec_t a = {0}, b = {0}, past = {0};
    a.n.due_tick = 256 + 300;
    gs__wheel_insert(&w, &a.n);
    run_until(&w, &c, 400);
    b.n.due_tick = 401; /* inserted mid-way, due next tick */
    gs__wheel_insert(&w, &b.n);
    past.n.due_tick = 10; /* already past: fires at the next tick, not never */
    gs__wheel_insert(&w, &past.n);
    run_until(&w, &c, 600);
    assert_int_equal(a.fired_at, 556);
    assert_int_equal(b.fired_at, 401);
    assert_int_equal(past.fired_at, 401);
}

static void test_removed_nodes_never_fire(void **state)
{
    (void)state;
    enum { N = 5000 };
    static gs__wheel_t w;
    clock_t_ c = {.now = 0};
    gs__wheel_init(&w, c.now);
    rec_t *recs = calloc(N, sizeof(*recs));
    assert_non_null(recs);
    uint64_t seed = 7;
    for (int i = 0; i < N; i++) {
        recs[i].n.due_tick = 1 + rnd(&seed) % 100000;
        gs__wheel_insert(&w, &recs[i].n);
    }
    /* Remove every other one, some before and some after cascades moved them. */
    run_until(&w, &c, 300);
    for (int i = 0; i < N; i += 2)
        gs__wheel_remove(&w, &recs[i].n);
    gs__wheel_remove(&w, &recs[0].n); /* twice: harmless */
    run_until(&w, &c, 100001);
    for (int i = 0; i < N; i++) {
        if (i % 2 == 0 && recs[i].n.due_tick > 300)
            assert_int_equal(recs[i].fires, 0);
        else
            assert_int_equal(recs[i].fires, 1);
    }
    assert_int_equal(w.count, 0);
    free(recs);
}

/* A thread that sleeps until gs__wheel_next() and then jumps the clock there must still fire
 * every node on time: next() never points past work. */
static void test_next_never_sleeps_past_work(void **state)
{
    (void)state;
    enum { N = 3000 };
    static gs__wheel_t w;
    clock_t_ c = {.now = 12345};
    gs__wheel_init(&w, c.now);
    rec_t *recs = calloc(N, sizeof(*recs));
    assert_non_null(recs);
    uint64_t seed = 99;
    for (int i = 0; i < N; i++) {
        recs[i].n.due_tick = c.now + 1 + rnd(&seed) % 2000000;
        gs__wheel_insert(&w, &recs[i].n);
    }
    uint64_t wakeups = 0;
    for (uint64_t next; (next = gs__wheel_next(&w)) != UINT64_MAX; wakeups++) {
        assert_true(next > c.now);
        c.now = next;
        gs__wheel_advance(&w, c.now, on_fire, &c);
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(recs[i].fired_at, recs[i].n.due_tick);
    /* It slept: far fewer wake-ups than ticks. */
    assert_true(wakeups < 2000000 / 4);
    free(recs);
}

static void test_far_future_and_teardown(void **state)
{
    (void)state;
    static gs__wheel_t w;
    clock_t_ c = {.now = 0};
    gs__wheel_init(&w, c.now);
    rec_t far = {0}, near = {0};
    far.n.due_tick = UINT64_C(1) << 40; /* beyond the wheel's span: parked, not lost */
    near.n.due_tick = 5;
    gs__wheel_insert(&w, &far.n);
    gs__wheel_insert(&w, &near.n);
    run_until(&w, &c, 10);
    assert_int_equal(near.fires, 1);
    assert_int_equal(far.fires, 0);
    assert_ptr_equal(gs__wheel_pop_any(&w), &far.n);
    assert_null(gs__wheel_pop_any(&w));
    assert_int_equal(w.count, 0);
    assert_int_equal(gs__wheel_next(&w), UINT64_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fires_exactly_at_due_tick_on_every_level),
        cmocka_unit_test(test_inserts_while_turning_and_late_inserts),
        cmocka_unit_test(test_removed_nodes_never_fire),
        cmocka_unit_test(test_next_never_sleeps_past_work),
        cmocka_unit_test(test_far_future_and_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
