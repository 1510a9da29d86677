/*
 * test_mailbox.c: mailboxes and scheduling (ordering, bounds, fairness, get_state).
 *
 * What a user relies on: messages from one sender to one server arrive in the order sent,
 * whatever mix of cast, send and call they are, while many other senders write at once; a
 * full mailbox refuses at once with overloaded instead of growing; a busy server yields after
 * a batch, so another server on the same scheduler thread still answers; gs_get_state goes
 * through the mailbox, so it sees every message sent before it, yet is not refused by a full
 * mailbox; messages stranded in a crashed server's mailbox are counted as dropped; and many
 * threads casting and calling at once lose nothing (the counts add up exactly).
 *
 * "seq" is this file's own behaviour: each message is ["seq", sender, i]; the server checks
 * that i increases per sender and counts messages per sender. "worker" burns ~20 us of CPU
 * per cast, to make a server busy.
 */
#include "testutil.h"

#include "probe.h"

#define SEQ_SENDERS 64

typedef struct seq_s {
    long long last[SEQ_SENDERS];
    long long count[SEQ_SENDERS];
    long long total;
    long long violations;
} seq_t;

static int seq_init(gs_server_t *self, json_t *args, void **state, json_t **reason)
{
    (void)self;
    (void)args;
    (void)reason;
    seq_t *s = calloc(1, sizeof(*s));
    for (int i = 0; i < SEQ_SENDERS; i++)
        s->last[i] = -1;
    *state = s;
    return 0;
}

/* Account for one ["seq", sender, i]; returns that sender's count so far. */
static long long seq_take(seq_t *s, json_t *msg)
{
    json_int_t sender = json_integer_value(json_array_get(msg, 1));
    json_int_t i = json_integer_value(json_array_get(msg, 2));
    s->total++;
    if (sender < 0 || sender >= SEQ_SENDERS) {
        s->violations++;
        return -1;
    }
    if (i <= s->last[sender])
        s->violations++;
    s->last[sender] = i;
    return ++s->count[sender];
}

static gs_result_t seq_call(gs_server_t *self, void *state, json_t *msg, gs_from_t from)
{
    (void)self;
    (void)from;
    seq_t *s = state;
    if (json_is_string(msg)) /* "report" */
        return GS_REPLY(json_pack("{s:I, s:I}", "total", (json_int_t)s->total, "violations",
                                  (json_int_t)s->violations));
    return GS_REPLY(json_integer(seq_take(s, msg)));
}

static gs_result_t seq_cast(gs_server_t *self, void *state, json_t *msg)
{
    (void)self;
    seq_take(state, msg);
    return GS_NOREPLY;
}

static json_t *seq_format(gs_server_t *self, void *state)
{
    (void)self;
    seq_t *s = state;
    return json_pack("{s:I, s:I}", "total", (json_int_t)s->total, "violations",
                     (json_int_t)s->violations);
}

static void seq_terminate(gs_server_t *self, json_t *reason, void *state)
{
    (void)self;
    (void)reason;
    free(state);
}

static const gs_behaviour_t seq_behaviour = {
    .name = "seq",
    .init = seq_init,
    .handle_call = seq_call,
    .handle_cast = seq_cast,
    .handle_info = seq_cast,
    .terminate = seq_terminate,
    .format_state = seq_format,
};

static atomic_llong worker_done;

static gs_result_t worker_cast(gs_server_t *self, void *state, json_t *msg)
{
    (void)self;
    (void)state;
    (void)msg;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < 20000);
    atomic_fetch_add(&worker_done, 1);
    return GS_NOREPLY;
}

static const gs_behaviour_t worker_behaviour = {
    .name = "worker",
    .init = bare_init,
    .handle_cast = worker_cast,
};

/* ---------------------------------------------------------------------------------------- */
/* Ordering                                                                                   */
/* ---------------------------------------------------------------------------------------- */

typedef struct sender_s {
    gs_runtime_t *rt;
    int id;
    int n;          /* messages per target */
    int targets;    /* servers "seq-0" .. "seq-<targets-1>" */
    int call_every; /* every call_every-th message is a blocking call; 0: never */
    int errors;     /* failed sends and wrong call replies */
    char first_error[160];
} sender_t;

static void sender_error(sender_t *s, const char *what, long long a, long long b)
{
    if (s->errors++ == 0)
        snprintf(s->first_error, sizeof(s->first_error), "sender %d: %s (%lld, %lld)", s->id, what,
                 a, b);
}

/*
 * Send n messages to each target, round robin, alternating cast and send, with a blocking
 * call every call_every messages; a call's reply must be the number of this sender's
 * messages the server handled, i.e. everything sent to it so far, the call included.
 */
static void *sender_main(void *arg)
{
    sender_t *s = arg;
    long long sent[16] = {0};
    char name[16];
    for (int i = 0; i < s->n * s->targets; i++) {
        int t = i % s->targets;
        snprintf(name, sizeof(name), "seq-%d", t);
        json_t *msg = json_pack("[sii]", "seq", s->id, i);
        sent[t]++;
        int rc;
        if (s->call_every > 0 && i % s->call_every == s->call_every - 1) {
            json_t *r = NULL;
            rc = gs_call(s->rt, name, msg, TU_WAIT_MS, &r);
            if (rc == 0 && json_integer_value(r) != sent[t])
                sender_error(s, "call saw a different count", json_integer_value(r), sent[t]);
            json_decref(r);
        } else {
            rc = i % 2 ? gs_send(s->rt, name, msg) : gs_cast(s->rt, name, msg);
        }
        if (rc != 0)
            sender_error(s, gs_err_name(rc), i, t);
    }
    /* A final call per target sees everything this sender sent before it. */
    for (int t = 0; t < s->targets; t++) {
        snprintf(name, sizeof(name), "seq-%d", t);
        json_t *r = NULL;
        int rc = gs_call(s->rt, name, json_pack("[sii]", "seq", s->id, s->n * s->targets + t),
                         TU_WAIT_MS, &r);
        if (rc != 0)
            sender_error(s, gs_err_name(rc), -1, t);
        else if (json_integer_value(r) != sent[t] + 1)
            sender_error(s, "final call saw a different count", json_integer_value(r), sent[t] + 1);
        json_decref(r);
    }
    return NULL;
}

static void run_senders(gs_runtime_t *rt, int nsenders, int n, int targets, int call_every)
{
    sender_t senders[SEQ_SENDERS];
    pthread_t threads[SEQ_SENDERS];
    char name[16];
    uint64_t handled0 = tu_stats(rt).messages_handled;
    for (int t = 0; t < targets; t++) {
        snprintf(name, sizeof(name), "seq-%d", t);
        tu_start(rt, name, &seq_behaviour, NULL, NULL);
    }
    for (int i = 0; i < nsenders; i++) {
        senders[i] =
            (sender_t){.rt = rt, .id = i, .n = n, .targets = targets, .call_every = call_every};
        assert_int_equal(pthread_create(&threads[i], NULL, sender_main, &senders[i]), 0);
    }
    int errors = 0;
    for (int i = 0; i < nsenders; i++) {
        pthread_join(threads[i], NULL);
        if (senders[i].errors > 0)
            print_error("%s\n", senders[i].first_error);
        errors += senders[i].errors;
    }
    assert_int_equal(errors, 0);
    long long want = (long long)nsenders * (n + 1);
    for (int t = 0; t < targets; t++) {
        snprintf(name, sizeof(name), "seq-%d", t);
        json_t *report = NULL;
        assert_int_equal(gs_call(rt, name, json_string("report"), TU_WAIT_MS, &report), 0);
        assert_int_equal(json_integer_value(json_object_get(report, "violations")), 0);
        assert_int_equal(json_integer_value(json_object_get(report, "total")), want);
        json_decref(report);
    }
    /* The counter is updated after the handler replied, so give it a moment to catch up. */
    TU_WAIT_UNTIL(tu_stats(rt).messages_handled - handled0 >= (uint64_t)(want * targets),
                  TU_WAIT_MS);
}

/* Eight threads write to one server at once: each one's messages arrive in order, all. */
static void test_fifo_per_sender_many_senders(void **state)
{
    run_senders(*state, 8, 5000, 1, 0);
}

/* Several threads cast, send and call to several servers at once: the counts add up. */
static void test_concurrent_cast_and_call(void **state)
{
    run_senders(*state, 8, 1500, 4, 7);
}

/* A cast followed by a call: the call sees the cast (the seed's increment, then get_count). */
static void test_cast_then_call_order(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "p", probe_behaviour(), NULL, NULL);
    for (int i = 0; i < 3; i++)
        assert_int_equal(tu_cast(rt, "p", "\"increment\""), 0);
    json_t *st = NULL;
    assert_int_equal(tu_call(rt, "p", "\"state\"", TU_WAIT_MS, &st), 0);
    assert_json_eq(json_object_get(st, "casts"), "[\"increment\", \"increment\", \"increment\"]");
    json_decref(st);
    /* Casts and infos share one order. */
    assert_int_equal(tu_send(rt, "p", "[\"i\", 1]"), 0);
    assert_int_equal(tu_cast(rt, "p", "[\"c\", 2]"), 0);
    assert_int_equal(tu_send(rt, "p", "[\"i\", 3]"), 0);
    st = probe_state(rt, "p");
    assert_json_eq(json_object_get(st, "infos"), "[[\"i\", 1], [\"i\", 3]]");
    assert_int_equal(json_integer_value(json_object_get(st, "ncasts")), 4);
    json_decref(st);
}

/* ---------------------------------------------------------------------------------------- */
/* Bounds                                                                                     */
/* ---------------------------------------------------------------------------------------- */

/* A full mailbox refuses casts, sends and calls at once; get_state still gets through. */
static void test_full_mailbox_overloaded(void **state)
{
    gs_runtime_t *rt = *state;
    enum { LIMIT = 10 };
    gs_start_options_t opts = tu_start_options(GS_PERMANENT, LIMIT);
    tu_start(rt, "small", probe_behaviour(), NULL, &opts);
    assert_int_equal(tu_cast(rt, "small", "\"block\""), 0);
    TU_WAIT_UNTIL(probe_is_blocked(), TU_WAIT_MS);

    int accepted = 0, rc = 0;
    int64_t t0 = tu_now_ms();
    for (int i = 0; i < 10 * LIMIT && rc == 0; i++) {
        rc = gs_cast(rt, "small", json_pack("[si]", "log", i));
        if (rc == 0)
            accepted++;
    }
    assert_int_equal(rc, GS_EOVERLOADED);
    assert_int_equal(accepted, LIMIT);
    assert_true(tu_now_ms() - t0 < 1000);
    assert_int_equal(tu_status_int(rt, "small", "mailbox_len"), LIMIT);
    assert_int_equal(tu_status_int(rt, "small", "mailbox_limit"), LIMIT);

    assert_int_equal(tu_send(rt, "small", "\"x\""), GS_EOVERLOADED);
    tu_reply_t refused, got_state;
    tu_reply_init(&refused);
    tu_reply_init(&got_state);
    assert_int_equal(tu_call(rt, "small", "\"ping\"", 1000, NULL), GS_EOVERLOADED);
    assert_int_equal(gs_call_async(rt, "small", json_string("ping"), 1000, tu_reply_cb, &refused),
                     GS_EOVERLOADED);
    assert_int_equal(gs_get_state_async(rt, "small", TU_WAIT_MS, tu_reply_cb, &got_state), 0);

    probe_open_gate();
    tu_reply_expect(&got_state, 0);
    assert_int_equal(json_integer_value(json_object_get(got_state.result, "ncasts")), LIMIT);
    /* Room again once it drained. */
    TU_WAIT_UNTIL(tu_status_int(rt, "small", "mailbox_len") == 0, TU_WAIT_MS);
    assert_int_equal(tu_cast(rt, "small", "\"more\""), 0);
    tu_call_expect(rt, "small", "\"ping\"", "\"pong\"");

    tu_destroy(state);
    assert_int_equal(refused.runs, 0);
    assert_int_equal(got_state.runs, 1);
    tu_reply_close(&refused);
    tu_reply_close(&got_state);
}

/* Messages left in a crashed server's mailbox are dropped and counted; a queued call fails. */
static void test_dropped_messages_counted(void **state)
{
    gs_runtime_t *rt = *state;
    gs_start_options_t opts = tu_start_options(GS_TEMPORARY, 0);
    tu_start(rt, "doomed", probe_behaviour(), NULL, &opts);
    uint64_t dropped0 = tu_stats(rt).dropped_messages;
    assert_int_equal(tu_cast(rt, "doomed", "\"block\""), 0);
    TU_WAIT_UNTIL(probe_is_blocked(), TU_WAIT_MS);
    assert_int_equal(tu_cast(rt, "doomed", "[\"crash\", \"gone\"]"), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(tu_cast(rt, "doomed", "\"stranded\""), 0);
    tu_reply_t queued;
    tu_reply_init(&queued);
    assert_int_equal(
        gs_call_async(rt, "doomed", json_string("ping"), TU_WAIT_MS, tu_reply_cb, &queued), 0);
    probe_open_gate();

    tu_reply_wait(&queued, TU_WAIT_MS);
    assert_int_equal(tu_reply_runs(&queued), 1);
    assert_int_not_equal(queued.status, 0);
    TU_WAIT_UNTIL(tu_stats(rt).dropped_messages >= dropped0 + 5, TU_WAIT_MS);
    tu_destroy(state);
    assert_int_equal(queued.runs, 1);
    tu_reply_close(&queued);
}

/* ---------------------------------------------------------------------------------------- */
/* Fairness and get_state                                                                     */
/* ---------------------------------------------------------------------------------------- */

/* With one scheduler thread, a server with a long queue still lets another one answer. */
static void test_busy_server_does_not_starve_others(void **state)
{
    gs_runtime_t *rt = *state; /* one scheduler thread: tu_setup_one_scheduler */
    enum { WORK = 50000 };     /* ~1 s of work at 20 us each */
    atomic_store(&worker_done, 0);
    tu_start(rt, "busy", &worker_behaviour, NULL, NULL);
    tu_start(rt, "idle", probe_behaviour(), NULL, NULL);
    for (int i = 0; i < WORK; i++)
        assert_int_equal(gs_cast(rt, "busy", json_true()), 0);
    TU_WAIT_UNTIL(atomic_load(&worker_done) > 0, TU_WAIT_MS);

    tu_call_expect(rt, "idle", "\"ping\"", "\"pong\"");
    long long done = atomic_load(&worker_done);
    /* idle answered long before busy got through its queue. */
    assert_true(done < WORK / 2);
    /* And busy did get everything done eventually. */
    TU_WAIT_UNTIL(atomic_load(&worker_done) == WORK, 60000);
}

/* gs_get_state sees every message sent before it; without format_state it is null. */
static void test_get_state_through_mailbox(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "p", probe_behaviour(), "{\"log\": false}", NULL);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(tu_cast(rt, "p", "\"x\""), 0);
    json_t *st = NULL;
    assert_int_equal(gs_get_state(rt, "p", TU_WAIT_MS, &st), 0);
    assert_int_equal(json_integer_value(json_object_get(st, "ncasts")), 1000);
    json_decref(st);

    tu_start(rt, "b", bare_behaviour(), NULL, NULL);
    st = NULL;
    assert_int_equal(gs_get_state(rt, "b", TU_WAIT_MS, &st), 0);
    assert_json_eq(st, "null");
    json_decref(st);

    st = json_string("untouched");
    json_t *keep = st;
    assert_int_equal(gs_get_state(rt, "nobody", TU_WAIT_MS, &st), GS_ENOSERVER);
    assert_null(st);
    json_decref(keep);
    tu_reply_t r;
    tu_reply_init(&r);
    assert_int_equal(gs_get_state_async(rt, "nobody", TU_WAIT_MS, tu_reply_cb, &r), GS_ENOSERVER);
    tu_destroy(state);
    assert_int_equal(r.runs, 0);
    tu_reply_close(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        probe_test(test_fifo_per_sender_many_senders),
        probe_test(test_concurrent_cast_and_call),
        probe_test(test_cast_then_call_order),
        probe_test(test_full_mailbox_overloaded),
        probe_test(test_dropped_messages_counted),
        cmocka_unit_test_setup_teardown(test_busy_server_does_not_starve_others,
                                        tu_setup_one_scheduler, tu_teardown),
        probe_test(test_get_state_through_mailbox),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
