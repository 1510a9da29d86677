/*
 * test_sched.c: what users rely on from the schedulers' placement (runtime/sched.c, issue 17).
 *
 * A server woken by a message runs next on its sender's scheduler, and a message from outside
 * goes where the server ran last, so that a sender and its receiver share a core's cache. That
 * must not cost what the schedulers promise besides:
 *   - a long handler does not keep a server it woke from a scheduler that has nothing to do:
 *     the idle one takes it (here: while the handler is still running);
 *   - two servers that wake each other forever do not starve a third one queued on the same
 *     scheduler;
 *   - a turn is bounded by messages handled plus messages sent, so a server that sends many
 *     messages per message yields to its receiver (whose mailbox stays short) and every
 *     message still arrives, in order.
 */
#include "testutil.h"

#include <stdatomic.h>

/* ---------------------------------------------------------------------------------------- */
/* A long handler does not hold back the server it woke                                       */
/* ---------------------------------------------------------------------------------------- */

static _Atomic int helper_ran;      /* set by the helper's handler */
static _Atomic int seen_while_busy; /* the long handler saw it while it was still running */

static int null_init(gs_server_t *self, json_t *args, void **state, json_t **reason)
{
    (void)self;
    (void)args;
    (void)reason;
    *state = NULL;
    return 0;
}

static gs_result_t helper_cast(gs_server_t *self, void *state, json_t *msg)
{
    (void)self;
    (void)state;
    (void)msg;
    atomic_store(&helper_ran, 1);
    return GS_NOREPLY;
}

static const gs_behaviour_t helper_behaviour = {
    .name = "sched_helper", .init = null_init, .handle_cast = helper_cast};

/* Wakes "helper" (which goes into this scheduler's next slot), then keeps its scheduler busy
 * until the helper has run or 5 s passed: only another scheduler can run the helper meanwhile. */
static gs_result_t long_cast(gs_server_t *self, void *state, json_t *msg)
{
    (void)state;
    (void)msg;
    gs_cast(gs_server_runtime(self), "helper", json_string("go"));
    int64_t deadline = tu_now_ms() + 5000;
    while (!atomic_load(&helper_ran) && tu_now_ms() < deadline) {
    }
    atomic_store(&seen_while_busy, atomic_load(&helper_ran));
    return GS_NOREPLY;
}

static const gs_behaviour_t long_behaviour = {
    .name = "sched_long", .init = null_init, .handle_cast = long_cast};

static void test_a_long_handler_does_not_hold_back_the_server_it_woke(void **st)
{
    gs_runtime_t *rt = *st;
    atomic_store(&helper_ran, 0);
    atomic_store(&seen_while_busy, -1);
    tu_start(rt, "helper", &helper_behaviour, NULL, NULL);
    tu_start(rt, "long", &long_behaviour, NULL, NULL);
    tu_cast(rt, "long", "\"work\"");
    TU_WAIT_UNTIL(atomic_load(&seen_while_busy) != -1, TU_WAIT_MS);
    assert_int_equal(atomic_load(&seen_while_busy), 1);
    assert_true(tu_stats(rt).scheduler_steals >= 1);
}

/* ---------------------------------------------------------------------------------------- */
/* Two servers that wake each other do not starve a third                                     */
/* ---------------------------------------------------------------------------------------- */

static _Atomic int ping_stop;

/* ping and pong cast "ball" to each other until ping_stop: each always wakes the other, which
 * goes into the scheduler's next slot ahead of the run queue. */
static gs_result_t ball_cast(gs_server_t *self, void *state, json_t *msg)
{
    (void)msg;
    if (!atomic_load(&ping_stop))
        gs_cast(gs_server_runtime(self), (const char *)state, json_string("ball"));
    return GS_NOREPLY;
}

static int ball_init(gs_server_t *self, json_t *args, void **state, json_t **reason)
{
    (void)self;
    (void)reason;
    /* the other player's name: a static string, by the test's argument */
    *state = strcmp(json_string_value(args), "pong") == 0 ? (void *)"pong" : (void *)"ping";
    return 0;
}

static const gs_behaviour_t ball_behaviour = {
    .name = "sched_ball", .init = ball_init, .handle_cast = ball_cast};

/* One scheduler (tu_setup_one_scheduler): the third server can only run if the pair lets the
 * run queue go first. */
static void test_two_servers_waking_each_other_do_not_starve_a_third(void **st)
{
    gs_runtime_t *rt = *st;
    atomic_store(&ping_stop, 0);
    tu_start(rt, "ping", &ball_behaviour, "\"pong\"", NULL);
    tu_start(rt, "pong", &ball_behaviour, "\"ping\"", NULL);
    tu_start(rt, "counter", &gs_builtin_counter, NULL, NULL);
    tu_cast(rt, "ping", "\"ball\"");
    /* The pair is running: its servers keep handling balls. */
    TU_WAIT_UNTIL(tu_status_int(rt, "pong", "messages_handled") > 1000, TU_WAIT_MS);
    for (int i = 0; i < 10; i++)
        tu_cast(rt, "counter", "\"increment\"");
    TU_WAIT_UNTIL(tu_status_int(rt, "counter", "messages_handled") == 10, TU_WAIT_MS);
    /* ... and it was still playing meanwhile: the counter ran beside it, not after it. */
    int64_t before = tu_status_int(rt, "pong", "messages_handled");
    TU_WAIT_UNTIL(tu_status_int(rt, "pong", "messages_handled") > before, TU_WAIT_MS);
    atomic_store(&ping_stop, 1);
    assert_int_equal(tu_state_int(rt, "counter", "count"), 10);
}

/* ---------------------------------------------------------------------------------------- */
/* A turn counts sends: a fast sender yields to its receiver                                  */
/* ---------------------------------------------------------------------------------------- */

#define BURST  64 /* casts per message to the sender: as many as a turn's batch */
#define ROUNDS 20

static _Atomic int64_t received, out_of_order, max_mailbox;
static _Atomic int all_sent; /* every "go" is in the sender's mailbox */

static gs_result_t seq_cast(gs_server_t *self, void *state, json_t *msg)
{
    (void)self;
    (void)state;
    int64_t n = (int64_t)json_integer_value(msg);
    if (n != atomic_load(&received))
        atomic_fetch_add(&out_of_order, 1);
    atomic_fetch_add(&received, 1);
    return GS_NOREPLY;
}

static const gs_behaviour_t seq_behaviour = {
    .name = "sched_seq", .init = null_init, .handle_cast = seq_cast};

/* Each "go" casts BURST numbered messages to "seq", and notes the longest mailbox it left.
 * The first one waits until the test has sent every "go", so that they all wait at once. */
static gs_result_t burst_info(gs_server_t *self, void *state, json_t *msg)
{
    (void)msg;
    int64_t *next = state;
    int64_t deadline = tu_now_ms() + TU_WAIT_MS;
    while (!atomic_load(&all_sent) && tu_now_ms() < deadline) {
    }
    gs_runtime_t *rt = gs_server_runtime(self);
    gs_server_t *seq = gs_whereis(rt, "seq");
    for (int i = 0; i < BURST && seq != NULL; i++)
        gs_cast_server(seq, json_integer((*next)++));
    gs_server_unref(seq);
    json_t *status = gs_server_status(rt, "seq");
    int64_t len = (int64_t)json_integer_value(json_object_get(status, "mailbox_len"));
    if (len > atomic_load(&max_mailbox))
        atomic_store(&max_mailbox, len);
    json_decref(status);
    return GS_NOREPLY;
}

static int burst_init(gs_server_t *self, json_t *args, void **state, json_t **reason)
{
    (void)self;
    (void)args;
    (void)reason;
    *state = calloc(1, sizeof(int64_t));
    return *state != NULL ? 0 : -1;
}

static void burst_terminate(gs_server_t *self, json_t *reason, void *state)
{
    (void)self;
    (void)reason;
    free(state);
}

static const gs_behaviour_t burst_behaviour = {.name = "sched_burst",
                                               .init = burst_init,
                                               .handle_info = burst_info,
                                               .terminate = burst_terminate};

/* One scheduler, so that only the turns' bounds decide who runs when. */
static void test_a_turn_counts_sends_and_every_message_arrives_in_order(void **st)
{
    gs_runtime_t *rt = *st;
    atomic_store(&received, 0);
    atomic_store(&out_of_order, 0);
    atomic_store(&max_mailbox, 0);
    atomic_store(&all_sent, 0);
    tu_start(rt, "seq", &seq_behaviour, NULL, NULL);
    tu_start(rt, "burst", &burst_behaviour, NULL, NULL);
    for (int i = 0; i < ROUNDS; i++)
        tu_send(rt, "burst", "\"go\"");
    atomic_store(&all_sent, 1);
    TU_WAIT_UNTIL(atomic_load(&received) == (int64_t)ROUNDS * BURST, TU_WAIT_MS);
    assert_int_equal(atomic_load(&out_of_order), 0);
    /* Counting sends, the sender yields after each "go" and seq drains as fast as it fills
     * (a batch of 64 a turn); counting only messages handled, the sender's first turn would
     * run all ROUNDS of them and leave ROUNDS * BURST casts waiting. */
    assert_true(atomic_load(&max_mailbox) <= 3 * BURST);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        tu_test(test_a_long_handler_does_not_hold_back_the_server_it_woke),
        cmocka_unit_test_setup_teardown(test_two_servers_waking_each_other_do_not_starve_a_third,
                                        tu_setup_one_scheduler, tu_teardown),
        cmocka_unit_test_setup_teardown(test_a_turn_counts_sends_and_every_message_arrives_in_order,
                                        tu_setup_one_scheduler, tu_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
