/*
 * test_builtins_durable.c: the built-ins' dump_state and restore (issue 15, durable servers).
 *
 * Most tests call a behaviour's callbacks directly, the way the runtime does, so that they
 * can hold two states side by side: the one some messages made and the one restored from its
 * dump. For each storable built-in they check that
 *   - dump_state is deterministic and does not change the state (two dumps, same text);
 *   - the stored shape is the one the behaviour's top comment documents (exact text);
 *   - restore into a fresh state (*state NULL) gives a state whose dump is the same text and
 *     which answers calls the same;
 *   - restore over an existing state (the runtime's rollback) replaces it, without a leak
 *     (the suite runs under ASan), and a refused one leaves it untouched;
 *   - restore refuses malformed stored JSON (wrong types, missing or unknown fields,
 *     impossible counts) with ["bad_stored_state", why], at start and on a rollback alike.
 * A callback that needs a `self` (timers, sends, its own name) gets "host", a running server
 * that only counts what it is sent, so what it is sent can be checked too.
 *
 * The last tests start durable servers on the real SQLite store and restart the runtime, to
 * check the same shapes through the runtime's own path: what is in the states table, that a
 * restored ticker's stored timer keeps its reference and is not armed twice, that a durable
 * misbehaving server keeps its pings across its crash, and that slow and batcher, which hold
 * callers' calls, are refused with not_supported. No test waits on time passing: every timer
 * here is due in a minute or more, and waits are on observable facts.
 */
#include "testutil.h"

#include <dirent.h>
#include <stdatomic.h>
#include <unistd.h>

#include <genserv/message.h>
#include <genserv/store.h>

/* ---------------------------------------------------------------------------------------- */
/* The host: the `self` of direct callback calls                                             */
/* ---------------------------------------------------------------------------------------- */

/* What host was sent (relaxed: each is read once the test waited for a later marker). */
static atomic_int host_kicks;
static atomic_int host_markers;
static int host_state_storage;

static int host_init(gs_server_t *self, json_t *args, void **state, json_t **reason)
{
    (void)self;
    (void)args;
    (void)reason;
    atomic_store_explicit(&host_kicks, 0, memory_order_relaxed);
    atomic_store_explicit(&host_markers, 0, memory_order_relaxed);
    *state = &host_state_storage;
    return 0;
}

static gs_result_t host_handle_call(gs_server_t *self, void *state, json_t *msg, gs_from_t from)
{
    (void)self;
    (void)state;
    (void)msg;
    (void)from;
    return gs_reply_unknown_message();
}

static gs_result_t host_handle_info(gs_server_t *self, void *state, json_t *msg)
{
    (void)self;
    (void)state;
    if (gs_msg_is_atom(msg, "kick"))
        atomic_fetch_add_explicit(&host_kicks, 1, memory_order_relaxed);
    if (gs_msg_is_atom(msg, "marker"))
        atomic_fetch_add_explicit(&host_markers, 1, memory_order_relaxed);
    return GS_NOREPLY;
}

static const gs_behaviour_t host_behaviour = {
    .name = "host",
    .init = host_init,
    .handle_call = host_handle_call,
    .handle_cast = gs_ignore_message,
    .handle_info = host_handle_info,
};

/* Wait until host handled everything sent to it before now (its mailbox is in order). */
static void host_settle(gs_runtime_t *rt)
{
    int seen = atomic_load_explicit(&host_markers, memory_order_relaxed);
    assert_int_equal(tu_send(rt, "host", "\"marker\""), 0);
    TU_WAIT_UNTIL(atomic_load_explicit(&host_markers, memory_order_relaxed) > seen, TU_WAIT_MS);
}

/* ---------------------------------------------------------------------------------------- */
/* Calling a behaviour's callbacks directly                                                   */
/* ---------------------------------------------------------------------------------------- */

typedef struct ctx_s {
    gs_runtime_t *rt;
    gs_server_t *self; /* host: a handle reference */
    const gs_behaviour_t *b;
} ctx_t;

static ctx_t ctx_open(void **state, const gs_behaviour_t *b)
{
    ctx_t c = {.rt = *state, .b = b};
    tu_start(c.rt, "host", &host_behaviour, NULL, NULL);
    c.self = gs_whereis(c.rt, "host");
    assert_non_null(c.self);
    return c;
}

static void ctx_close(ctx_t *c)
{
    gs_server_unref(c->self);
}

/* init with args as JSON text (or NULL); asserts success. */
static void *make(ctx_t *c, const char *args)
{
    json_t *a = args != NULL ? tu_json(args) : json_null();
    json_t *reason = NULL;
    void *st = NULL;
    assert_int_equal(c->b->init(c->self, a, &st, &reason), 0);
    assert_null(reason);
    json_decref(a);
    return st;
}

/* terminate with reason (JSON text), as when the server goes away. */
static void drop_with(ctx_t *c, void *st, const char *reason)
{
    json_t *why = tu_json(reason);
    c->b->terminate(c->self, why, st);
    json_decref(why);
}

/* terminate as after gs_stop: the server is gone for good. */
static void drop(ctx_t *c, void *st)
{
    drop_with(c, st, "\"normal\"");
}

/* Release what a callback returned beyond what the test looked at. */
static void result_close(gs_result_t *r)
{
    json_decref(r->reply);
    json_decref(r->reason);
    json_decref(r->arg);
}

/* A call that must be answered at once: its reply (new reference). */
static json_t *call(ctx_t *c, void *st, const char *msg)
{
    json_t *m = tu_json(msg);
    gs_result_t r = c->b->handle_call(c->self, st, m, (gs_from_t){0});
    json_decref(m);
    assert_int_equal(r.action, GS_ACTION_REPLY);
    json_t *reply = r.reply;
    r.reply = NULL;
    result_close(&r);
    return reply;
}

/* The same call to two states must get equal replies. */
static void same_reply(ctx_t *c, void *a, void *b, const char *msg)
{
    json_t *ra = call(c, a, msg), *rb = call(c, b, msg);
    char buf_a[1024], buf_b[1024];
    if (!json_equal(ra, rb)) {
        print_error("%s: %s != %s\n", msg, tu_dump(ra, buf_a, sizeof(buf_a)),
                    tu_dump(rb, buf_b, sizeof(buf_b)));
        fail();
    }
    json_decref(ra);
    json_decref(rb);
}

static void cast(ctx_t *c, void *st, const char *msg)
{
    json_t *m = tu_json(msg);
    gs_result_t r = c->b->handle_cast(c->self, st, m);
    json_decref(m);
    assert_int_equal(r.action, GS_ACTION_NOREPLY);
    result_close(&r);
}

static void info(ctx_t *c, void *st, const char *msg)
{
    json_t *m = tu_json(msg);
    gs_result_t r = c->b->handle_info(c->self, st, m);
    json_decref(m);
    assert_int_equal(r.action, GS_ACTION_NOREPLY);
    result_close(&r);
}

/* dump_state as the runtime stores it (compact text, keys in the order built): a malloc'd
 * text. Dumped twice, to check that a dump is deterministic and leaves the state alone. */
static char *dump(ctx_t *c, void *st)
{
    char *text[2];
    for (int i = 0; i < 2; i++) {
        json_t *reason = NULL;
        json_t *v = c->b->dump_state(c->self, st, &reason);
        assert_non_null(v);
        assert_null(reason);
        text[i] = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        assert_non_null(text[i]);
        json_decref(v);
    }
    assert_string_equal(text[0], text[1]);
    free(text[1]);
    return text[0];
}

static void assert_dump(ctx_t *c, void *st, const char *want)
{
    char *got = dump(c, st);
    assert_string_equal(got, want);
    free(got);
}

/* restore from stored text into *st (NULL: at start; else a rollback); asserts success. */
static void restore(ctx_t *c, void **st, const char *text)
{
    json_t *stored = tu_json(text);
    json_t *reason = NULL;
    int rc = c->b->restore(c->self, stored, st, &reason);
    if (rc != 0) {
        char buf[512];
        print_error("restore %s refused: %s\n", text, tu_dump(reason, buf, sizeof(buf)));
        fail();
    }
    assert_null(reason);
    assert_non_null(*st);
    /* stored was only borrowed: the state shares nothing with it that it would change. */
    json_decref(stored);
    assert_dump(c, *st, text);
}

static void *restore_fresh(ctx_t *c, const char *text)
{
    void *st = NULL;
    restore(c, &st, text);
    return st;
}

/*
 * restore must refuse stored (JSON text) with ["bad_stored_state", text containing why], both
 * at start and over `live` (a rollback), which it must leave as it was.
 */
static void refused(ctx_t *c, void *live, const char *stored_text, const char *why)
{
    char *before = dump(c, live);
    for (int rollback = 0; rollback < 2; rollback++) {
        json_t *stored = tu_json(stored_text);
        json_t *reason = NULL;
        void *st = rollback ? live : NULL;
        int rc = c->b->restore(c->self, stored, &st, &reason);
        json_decref(stored);
        if (rc == 0) {
            print_error("restore accepted %s\n", stored_text);
            if (!rollback)
                drop(c, st);
            fail();
        }
        assert_ptr_equal(st, rollback ? live : NULL);
        const char *text = json_string_value(json_array_get(reason, 1));
        if (!gs_msg_is_tuple(reason, "bad_stored_state", 2) || text == NULL ||
            strstr(text, why) == NULL) {
            char buf[512];
            print_error("restore %s: reason %s, want [\"bad_stored_state\", \"...%s...\"]\n",
                        stored_text, tu_dump(reason, buf, sizeof(buf)), why);
            fail();
        }
        json_decref(reason);
    }
    assert_dump(c, live, before);
    free(before);
}

/* ---------------------------------------------------------------------------------------- */
/* Which built-ins can be stored                                                              */
/* ---------------------------------------------------------------------------------------- */

static void test_storable_builtins_are_exactly_these(void **state)
{
    (void)state;
    static const char *const storable[] = {"counter", "journal",  "receiver",
                                           "ticker",  "producer", "misbehaving"};
    static const char *const not_storable[] = {"slow", "batcher"};
    size_t seen = 0;

    for (size_t i = 0; gs_builtin_behaviours[i] != NULL; i++) {
        const gs_behaviour_t *b = gs_builtin_behaviours[i];
        bool want = false, known = false;
        for (size_t k = 0; k < sizeof(storable) / sizeof(*storable); k++)
            if (strcmp(b->name, storable[k]) == 0)
                want = known = true;
        for (size_t k = 0; k < sizeof(not_storable) / sizeof(*not_storable); k++)
            if (strcmp(b->name, not_storable[k]) == 0)
                known = true;
        if (!known)
            fail_msg("built-in %s: say whether it can be stored", b->name);
        /* Both or neither: the runtime needs both to make a server durable. */
        assert_int_equal(b->dump_state != NULL, want);
        assert_int_equal(b->restore != NULL, want);
        /* Durable only when asked (gs_start_options_t.durable), never by default. */
        assert_false(b->durable);
        seen++;
    }
    assert_int_equal(seen, 8);
}

/* ---------------------------------------------------------------------------------------- */
/* counter                                                                                    */
/* ---------------------------------------------------------------------------------------- */

static void test_counter_dump_and_restore(void **state)
{
    ctx_t c = ctx_open(state, &gs_builtin_counter);
    void *s = make(&c, "{\"initial\": 10}");
    cast(&c, s, "\"increment\"");
    cast(&c, s, "[\"increment\", 5]");
    cast(&c, s, "[\"decrement\", 1]");
    static const char stored[] = "{\"count\":15}";
    assert_dump(&c, s, stored);

    /* The stored shape is what format_state shows (and replace_state takes). */
    json_t *shown = c.b->format_state(c.self, s);
    assert_json_eq(shown, stored);
    json_decref(shown);

    void *r = restore_fresh(&c, stored);
    same_reply(&c, s, r, "\"get_count\"");
    cast(&c, s, "\"increment\"");
    cast(&c, r, "\"increment\"");
    assert_dump(&c, r, "{\"count\":16}");
    same_reply(&c, s, r, "\"get_count\"");

    /* A rollback puts the stored count back. */
    restore(&c, &s, stored);
    json_t *n = call(&c, s, "\"get_count\"");
    assert_json_eq(n, "15");
    json_decref(n);

    drop(&c, s);
    drop(&c, r);
    ctx_close(&c);
}

static void test_counter_refuses_bad_stored_states(void **state)
{
    ctx_t c = ctx_open(state, &gs_builtin_counter);
    void *s = make(&c, "{\"initial\": 3}");
    static const char want[] = "expected {\"count\": integer}";
    refused(&c, s, "{\"count\": \"15\"}", want);
    refused(&c, s, "{\"count\": 1.5}", want);
    refused(&c, s, "{\"count\": null}", want);
    refused(&c, s, "{}", want);
    refused(&c, s, "{\"count\": 1, \"step\": 2}", want);
    refused(&c, s, "[15]", want);
    refused(&c, s, "15", want);
    refused(&c, s, "null", want);

    /* replace_state shares the reading, and still says bad_state, not bad_stored_state. */
    json_t *next = tu_json("{\"count\": \"x\"}"), *reason = NULL;
    assert_int_not_equal(c.b->replace_state(c.self, &s, next, &reason), 0);
    assert_json_eq(reason, "[\"bad_state\", \"expected {\\\"count\\\": integer}\"]");
    json_decref(reason);
    json_decref(next);

    drop(&c, s);
    ctx_close(&c);
}

/* ---------------------------------------------------------------------------------------- */
/* journal                                                                                    */
/* ---------------------------------------------------------------------------------------- */

/* A cast ["add_entry", "xxx..."] of a string of n bytes: a malloc'd text. */
static char *big_entry(size_t n)
{
    char *msg = malloc(n + 32);
    assert_non_null(msg);
    int head = snprintf(msg, n + 32, "[\"add_entry\", \"");
    memset(msg + head, 'x', n);
    strcpy(msg + head + n, "\"]");
    return msg;
}

static void test_journal_dump_and_restore(void **state)
{
    ctx_t c = ctx_open(state, &gs_builtin_journal);
    void *s = make(&c, "{\"max_entries\": 3, \"max_bytes\": 2048}");
    cast(&c, s, "[\"add_entry\", \"first\"]");
    /* Its keys are not in sorted order: the stored text must keep them as they are. */
    cast(&c, s, "[\"add_entry\", {\"b\": 1, \"a\": [1, 2.5]}]");
    cast(&c, s, "[\"add_entry\", 3]");
    cast(&c, s, "[\"add_entry\", 4]"); /* past max_entries: "first" goes */
    char *big = big_entry(3000);
    cast(&c, s, big); /* larger than max_bytes on its own: dropped, and counted */
    free(big);
    static const char stored[] = "{\"entries\":[4,3,{\"b\":1,\"a\":[1,2.5]}],\"max_entries\":3,"
                                 "\"max_bytes\":2048,\"dropped\":1}";
    assert_dump(&c, s, stored);

    /* A dump is a snapshot: the next cast does not change one already taken. */
    json_t *reason = NULL;
    json_t *snapshot = c.b->dump_state(c.self, s, &reason);
    cast(&c, s, "[\"add_entry\", 5]");
    assert_json_eq(snapshot, stored);
    json_decref(snapshot);

    /* At start: the same entries, bounds and counts, and the same answers. */
    void *r = restore_fresh(&c, stored);
    json_t *entries = call(&c, r, "\"entries\"");
    assert_json_eq(entries, "[4, 3, {\"b\": 1, \"a\": [1, 2.5]}]");
    json_decref(entries);

    /* A rollback: s goes back to the stored journal, byte count included. */
    restore(&c, &s, stored);
    same_reply(&c, s, r, "\"entries\"");
    same_reply(&c, s, r, "\"stats\"");
    cast(&c, s, "[\"add_entry\", \"after\"]");
    cast(&c, r, "[\"add_entry\", \"after\"]");
    same_reply(&c, s, r, "\"stats\"");
    assert_dump(&c, r,
                "{\"entries\":[\"after\",4,3],\"max_entries\":3,\"max_bytes\":2048,"
                "\"dropped\":1}");

    drop(&c, s);
    drop(&c, r);
    ctx_close(&c);
}

static void test_journal_refuses_bad_stored_states(void **state)
{
    ctx_t c = ctx_open(state, &gs_builtin_journal);
    void *s = make(&c, "{\"max_entries\": 3, \"max_bytes\": 2048}");
    cast(&c, s, "[\"add_entry\", \"kept\"]");

    refused(&c, s, "[\"kept\"]", "must be an object"); /* format_state's shape is not enough */
    refused(&c, s, "{\"entries\": [], \"max_entries\": 3, \"max_bytes\": 2048}", "no dropped");
    refused(&c, s,
            "{\"entries\": [], \"max_entries\": 3, \"max_bytes\": 2048, \"dropped\": 0, "
            "\"bytes\": 0}",
            "unknown key \"bytes\"");
    refused(&c, s, "{\"entries\": \"x\", \"max_entries\": 3, \"max_bytes\": 2048, \"dropped\": 0}",
            "entries must be an array");
    refused(&c, s,
            "{\"entries\": [1, 2, 3, 4], \"max_entries\": 3, \"max_bytes\": 2048, \"dropped\": 0}",
            "entries holds more than 3 values");
    refused(&c, s, "{\"entries\": [], \"max_entries\": 0, \"max_bytes\": 2048, \"dropped\": 0}",
            "max_entries must be an integer from 1 to 1000000");
    refused(&c, s, "{\"entries\": [], \"max_entries\": \"3\", \"max_bytes\": 2048, \"dropped\": 0}",
            "max_entries must be an integer");
    refused(&c, s, "{\"entries\": [], \"max_entries\": 3, \"max_bytes\": 100, \"dropped\": 0}",
            "max_bytes must be an integer from 1024");
    refused(&c, s, "{\"entries\": [], \"max_entries\": 3, \"max_bytes\": 2048, \"dropped\": -1}",
            "dropped must be an integer from 0");
    refused(&c, s, "{\"entries\": [], \"max_entries\": 3, \"max_bytes\": 2048, \"dropped\": 1.0}",
            "dropped must be an integer");

    /* An entry the journal would never have kept under its own max_bytes. */
    char *big = big_entry(3000);
    json_t *cast_msg = tu_json(big);
    json_t *row = json_pack("{s[O]sisisi}", "entries", json_array_get(cast_msg, 1), "max_entries",
                            3, "max_bytes", 2048, "dropped", 0);
    char *text = json_dumps(row, JSON_COMPACT);
    refused(&c, s, text, "entries takes more than 2048 bytes");
    free(text);
    json_decref(row);
    json_decref(cast_msg);
    free(big);

    drop(&c, s);
    ctx_close(&c);
}

/* ---------------------------------------------------------------------------------------- */
/* receiver                                                                                   */
/* ---------------------------------------------------------------------------------------- */

static void test_receiver_dump_and_restore(void **state)
{
    ctx_t c = ctx_open(state, &gs_builtin_receiver);
    void *s = make(&c, NULL);
    info(&c, s, "\"hello\"");
    info(&c, s, "[\"greeting\", \"hi\"]");
    info(&c, s, "42");
    for (int i = 0; i < 8; i++) {
        char msg[16];
        snprintf(msg, sizeof(msg), "%d", i);
        info(&c, s, msg);
    }
    static const char stored[] =
        "{\"received\":11,\"last\":[[\"greeting\",\"hi\"],42,0,1,2,3,4,5,6,7]}";
    assert_dump(&c, s, stored);

    /* The stored shape is what format_state shows. */
    json_t *shown = c.b->format_state(c.self, s);
    assert_json_eq(shown, stored);
    json_decref(shown);

    void *r = restore_fresh(&c, stored);
    same_reply(&c, s, r, "\"received\"");
    same_reply(&c, s, r, "\"last\"");
    info(&c, s, "{\"late\": true}");
    info(&c, r, "{\"late\": true}");
    same_reply(&c, s, r, "\"last\"");

    restore(&c, &s, stored); /* a rollback */
    json_t *n = call(&c, s, "\"received\"");
    assert_json_eq(n, "11");
    json_decref(n);

    drop(&c, s);
    drop(&c, r);
    ctx_close(&c);
}

static void test_receiver_refuses_bad_stored_states(void **state)
{
    ctx_t c = ctx_open(state, &gs_builtin_receiver);
    void *s = make(&c, NULL);
    info(&c, s, "\"kept\"");

    refused(&c, s, "{\"received\": 12, \"last\": [1,2,3,4,5,6,7,8,9,10,11]}",
            "last holds more than 10 values");
    refused(&c, s, "{\"received\": 2, \"last\": [1, 2, 3]}", "received is less than");
    refused(&c, s, "{\"received\": -1, \"last\": []}", "received must be an integer from 0");
    refused(&c, s, "{\"received\": \"1\", \"last\": [1]}", "received must be an integer");
    refused(&c, s, "{\"received\": 1, \"last\": {\"0\": 1}}", "last must be an array");
    refused(&c, s, "{\"received\": 1}", "no last");
    refused(&c, s, "{\"received\": 1, \"last\": [1], \"bytes\": 40}", "unknown key");

    /* A message larger than everything the receiver keeps. */
    size_t n = 300 * 1024;
    char *text = malloc(n + 64);
    assert_non_null(text);
    int head = snprintf(text, n + 64, "{\"received\": 1, \"last\": [\"");
    memset(text + head, 'x', n);
    strcpy(text + head + n, "\"]}");
    refused(&c, s, text, "last takes more than 262144 bytes");
    free(text);

    drop(&c, s);
    ctx_close(&c);
}

/* ---------------------------------------------------------------------------------------- */
/* ticker                                                                                     */
/* ---------------------------------------------------------------------------------------- */

/* The "timer" of a ticker's dump. */
static gs_timer_ref_t ticker_timer(ctx_t *c, void *st)
{
    char *text = dump(c, st);
    json_t *v = tu_json(text);
    free(text);
    json_int_t ref = json_integer_value(json_object_get(v, "timer"));
    json_decref(v);
    return (gs_timer_ref_t)ref;
}

static void test_ticker_dump_and_restore_keep_the_timer_ref(void **state)
{
    ctx_t c = ctx_open(state, &gs_builtin_ticker);
    /* A minute's interval: no tick comes by itself during the test; ticks are sent by hand. */
    void *s = make(&c, "{\"interval_ms\": 60000, \"step\": 2, \"initial\": 1}");
    info(&c, s, "\"tick\"");
    info(&c, s, "\"tick\"");
    gs_timer_ref_t ref = ticker_timer(&c, s);
    assert_true(ref != 0);
    assert_int_equal(gs_read_timer(c.rt, ref, NULL), 0); /* the one pending tick */

    char stored[160];
    snprintf(stored, sizeof(stored),
             "{\"count\":5,\"interval_ms\":60000,\"step\":2,\"timer\":%llu}",
             (unsigned long long)ref);
    assert_dump(&c, s, stored);
    /* format_state shows the same without the timer. */
    json_t *shown = c.b->format_state(c.self, s);
    assert_json_eq(shown, "{\"count\": 5, \"interval_ms\": 60000, \"step\": 2}");
    json_decref(shown);

    /* restore arms nothing: the runtime arms a durable server's stored timers itself. */
    uint64_t pending = tu_stats(c.rt).pending_timers;
    void *r = restore_fresh(&c, stored);
    assert_int_equal(tu_stats(c.rt).pending_timers, pending);
    same_reply(&c, s, r, "\"get_count\"");

    /* The restored ticker's next tick replaces the timer it was given back, so there is
     * still only one pending: the stored reference is cancelled, a new one armed. */
    info(&c, r, "\"tick\"");
    assert_int_equal(gs_read_timer(c.rt, ref, NULL), GS_ENOTIMER);
    gs_timer_ref_t next = ticker_timer(&c, r);
    assert_true(next != 0 && next != ref);
    assert_int_equal(gs_read_timer(c.rt, next, NULL), 0);
    assert_int_equal(tu_stats(c.rt).pending_timers, pending);
    json_t *n = call(&c, r, "\"get_count\"");
    assert_json_eq(n, "7");
    json_decref(n);

    /* A rollback takes back the stored count and reference, and arms nothing either. */
    restore(&c, &r, stored);
    assert_int_equal(tu_stats(c.rt).pending_timers, pending);

    drop(&c, s); /* its timer was cancelled by r's tick: cancelling it again is harmless */
    drop(&c, r);

    /* terminate cancels the pending tick, but not at a shutdown: a durable ticker's tick is
     * stored with its state for its next start, and a cancel would delete it from the store
     * (test_durable_counter_and_ticker_survive_a_restart goes through that path). */
    void *u = make(&c, "{\"interval_ms\": 60000}");
    gs_timer_ref_t tick = ticker_timer(&c, u);
    drop(&c, u);
    assert_int_equal(gs_read_timer(c.rt, tick, NULL), GS_ENOTIMER);
    u = make(&c, "{\"interval_ms\": 60000}");
    tick = ticker_timer(&c, u);
    drop_with(&c, u, "\"shutdown\"");
    assert_int_equal(gs_read_timer(c.rt, tick, NULL), 0);
    assert_int_equal(gs_cancel_timer(c.rt, tick, NULL), 0);
    u = make(&c, "{\"interval_ms\": 60000}");
    tick = ticker_timer(&c, u);
    drop_with(&c, u, "[\"shutdown\", \"tree\"]");
    assert_int_equal(gs_read_timer(c.rt, tick, NULL), 0);
    assert_int_equal(gs_cancel_timer(c.rt, tick, NULL), 0);
    ctx_close(&c);
}

static void test_ticker_refuses_bad_stored_states(void **state)
{
    ctx_t c = ctx_open(state, &gs_builtin_ticker);
    void *s = make(&c, "{\"interval_ms\": 60000}");

    /* format_state's shape, as an older version might have stored it: no timer. */
    refused(&c, s, "{\"count\": 5, \"interval_ms\": 60000, \"step\": 2}", "no timer");
    refused(&c, s, "{\"count\": 5, \"interval_ms\": 5, \"step\": 2, \"timer\": 0}",
            "interval_ms must be an integer from 10 to 86400000");
    refused(&c, s, "{\"count\": 5, \"interval_ms\": 86400001, \"step\": 2, \"timer\": 0}",
            "interval_ms must be an integer from 10");
    refused(&c, s, "{\"count\": 5, \"interval_ms\": 1000, \"step\": 0.5, \"timer\": 0}",
            "step must be an integer");
    refused(&c, s, "{\"count\": 5, \"interval_ms\": 1000, \"step\": 1, \"timer\": -1}",
            "timer must be an integer from 0");
    refused(&c, s, "{\"count\": \"5\", \"interval_ms\": 1000, \"step\": 1, \"timer\": 0}",
            "count must be an integer");
    refused(&c, s, "{\"count\": 5, \"interval_ms\": 1000, \"step\": 1, \"timer\": 0, \"phase\": 3}",
            "unknown key \"phase\"");

    /* timer 0: no tick was stored (one that came during a shutdown could not schedule the
     * next), so a restore at start begins a new chain, as init does... */
    static const char no_tick[] = "{\"count\":5,\"interval_ms\":60000,\"step\":1,\"timer\":0}";
    uint64_t pending = tu_stats(c.rt).pending_timers;
    json_t *stored = tu_json(no_tick), *reason = NULL;
    void *r = NULL;
    assert_int_equal(c.b->restore(c.self, stored, &r, &reason), 0);
    json_decref(stored);
    assert_int_equal(tu_stats(c.rt).pending_timers, pending + 1);
    gs_timer_ref_t tick = ticker_timer(&c, r);
    assert_true(tick != 0);
    assert_int_equal(gs_read_timer(c.rt, tick, NULL), 0);
    /* ... but a rollback takes the committed state as it is, and arms nothing. */
    restore(&c, &r, no_tick);
    assert_int_equal(tu_stats(c.rt).pending_timers, pending + 1);
    assert_int_equal(gs_cancel_timer(c.rt, tick, NULL), 0);
    drop(&c, r);

    drop(&c, s);
    ctx_close(&c);
}

/* ---------------------------------------------------------------------------------------- */
/* producer                                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* The producer's push number tag was answered "ok" (what gs_send_request delivers). */
static void acked(ctx_t *c, void *st, int tag)
{
    char msg[64];
    snprintf(msg, sizeof(msg), "[\"gs_reply\", %d, \"ok\"]", tag);
    info(c, st, msg);
}

static void test_producer_dump_and_restore(void **state)
{
    ctx_t c = ctx_open(state, &gs_builtin_producer);
    /* The pushes go to a real batcher, which adds up the numbers it was given; its answers
     * go to host (the producer's `self` here), and the test hands the producer "ok"s. */
    tu_start_named(c.rt, "sink", "batcher",
                   "{\"interval_ms\": 86400000, \"reply_immediately\": true}");
    void *p = make(&c, "{\"target\": \"sink\", \"id\": 7, \"retry_ms\": 50}");
    info(&c, p, "\"kick\""); /* init's kick, delivered: push 1 (tag 1) */
    acked(&c, p, 1);         /* push 2 (tag 2) */
    acked(&c, p, 2);         /* push 3 (tag 3), in flight */
    static const char stored[] =
        "{\"target\":\"sink\",\"id\":7,\"sent\":3,\"acked\":2,\"errors\":0,"
        "\"timeout_ms\":5000,\"retry_ms\":50,\"next\":3}";
    assert_dump(&c, p, stored);
    json_t *stats = call(&c, p, "\"stats\"");
    assert_json_eq(stats, "{\"target\": \"sink\", \"id\": 7, \"sent\": 3, \"acked\": 2, "
                          "\"errors\": 0}");

    /* A rollback keeps the push in flight now (tag 4), whose answer will come, not the
     * stored one's (tag 3), whose answer was consumed: without that it would wait forever. */
    acked(&c, p, 3); /* push 4 (tag 4), in flight */
    restore(&c, &p, stored);
    acked(&c, p, 3); /* stale: ignored */
    assert_dump(&c, p, stored);
    acked(&c, p, 4); /* the live answer: counted, and next (3, as stored) + 1 is pushed */
    assert_dump(&c, p,
                "{\"target\":\"sink\",\"id\":7,\"sent\":4,\"acked\":3,\"errors\":0,"
                "\"timeout_ms\":5000,\"retry_ms\":50,\"next\":4}");

    /* At start nothing is in flight (its answer could only reach the old process): restore
     * sends itself a kick, as init does, and that kick pushes the stored next number again. */
    host_settle(c.rt);
    int kicks = atomic_load_explicit(&host_kicks, memory_order_relaxed);
    void *r = restore_fresh(&c, stored);
    host_settle(c.rt);
    assert_int_equal(atomic_load_explicit(&host_kicks, memory_order_relaxed), kicks + 1);
    json_t *again = call(&c, r, "\"stats\"");
    assert_true(json_equal(again, stats));
    json_decref(again);
    acked(&c, r, 1); /* no push of its own is in flight yet: ignored */
    assert_dump(&c, r, stored);
    info(&c, r, "\"kick\""); /* the kick restore sent: push 3 again (tag 1) */
    acked(&c, r, 1);         /* push 4 (tag 2) */
    assert_dump(&c, r,
                "{\"target\":\"sink\",\"id\":7,\"sent\":5,\"acked\":3,\"errors\":0,"
                "\"timeout_ms\":5000,\"retry_ms\":50,\"next\":4}");

    /* The numbers the sink was pushed: 1, 2, 3, 4 (p), 4 again (p after the rollback), then
     * 3 and 4 (r): at least once each, none skipped. */
    TU_WAIT_UNTIL(tu_state_int(c.rt, "sink", "pending") == 7, TU_WAIT_MS);
    assert_int_equal(tu_send(c.rt, "sink", "\"flush\""), 0);
    TU_WAIT_UNTIL(tu_state_int(c.rt, "sink", "batches") == 1, TU_WAIT_MS);
    assert_int_equal(tu_state_int(c.rt, "sink", "last_batch_sum"), 1 + 2 + 3 + 4 + 4 + 3 + 4);

    json_decref(stats);
    drop(&c, p);
    drop(&c, r);
    ctx_close(&c);
}

static void test_producer_refuses_bad_stored_states(void **state)
{
    ctx_t c = ctx_open(state, &gs_builtin_producer);
    void *p = make(&c, "{\"target\": \"nobody\", \"retry_ms\": 60000}");

#define PRODUCER_ROW(target, next)                                                                 \
    "{\"target\": " target ", \"id\": 0, \"sent\": 3, \"acked\": 2, \"errors\": 0, "               \
    "\"timeout_ms\": 5000, \"retry_ms\": 100, \"next\": " next "}"
    refused(&c, p, PRODUCER_ROW("7", "3"), "target must be a server name");
    refused(&c, p, PRODUCER_ROW("\"\"", "3"), "target must be a server name");
    refused(&c, p, PRODUCER_ROW("\"host\"", "3"), "cannot target itself");
    refused(&c, p, PRODUCER_ROW("\"sink\"", "0"), "next must be an integer from 1");
    refused(&c, p, PRODUCER_ROW("\"sink\"", "\"3\""), "next must be an integer");
#undef PRODUCER_ROW
    /* format_state's shape, as an older version might have stored it. */
    refused(&c, p, "{\"target\": \"sink\", \"id\": 0, \"sent\": 3, \"acked\": 2, \"errors\": 0}",
            "no timeout_ms");
    refused(&c, p,
            "{\"target\": \"sink\", \"id\": 0, \"sent\": -3, \"acked\": 0, \"errors\": 0, "
            "\"timeout_ms\": 5000, \"retry_ms\": 100, \"next\": 1}",
            "sent must be an integer from 0");
    refused(&c, p,
            "{\"target\": \"sink\", \"id\": 0, \"sent\": 0, \"acked\": 0, \"errors\": 0, "
            "\"timeout_ms\": 0, \"retry_ms\": 100, \"next\": 1}",
            "timeout_ms must be an integer from 1 to 3600000");
    refused(&c, p,
            "{\"target\": \"sink\", \"id\": 0, \"sent\": 0, \"acked\": 0, \"errors\": 0, "
            "\"timeout_ms\": 100, \"retry_ms\": 3600001, \"next\": 1}",
            "retry_ms must be an integer from 1 to 3600000");
    refused(&c, p,
            "{\"target\": \"sink\", \"id\": 0, \"sent\": 0, \"acked\": 0, \"errors\": 0, "
            "\"timeout_ms\": 100, \"retry_ms\": 100, \"next\": 1, \"tag\": 4}",
            "unknown key \"tag\"");

    drop(&c, p);
    ctx_close(&c);
}

/* ---------------------------------------------------------------------------------------- */
/* misbehaving                                                                                */
/* ---------------------------------------------------------------------------------------- */

static void test_misbehaving_dump_and_restore(void **state)
{
    ctx_t c = ctx_open(state, &gs_builtin_misbehaving);
    void *m = make(&c, NULL);
    json_decref(call(&c, m, "\"ping\""));
    json_decref(call(&c, m, "\"ping\""));
    static const char stored[] = "{\"pings\":2}";
    assert_dump(&c, m, stored);
    json_t *shown = c.b->format_state(c.self, m);
    assert_json_eq(shown, stored);
    json_decref(shown);

    void *r = restore_fresh(&c, stored);
    same_reply(&c, m, r, "\"ping\"");
    assert_dump(&c, r, "{\"pings\":3}");
    restore(&c, &r, stored); /* a rollback */

    /* A stored count at the very top saturates instead of overflowing. */
    restore(&c, &r, "{\"pings\":9223372036854775807}");
    json_decref(call(&c, r, "\"ping\""));
    assert_dump(&c, r, "{\"pings\":9223372036854775807}");

    refused(&c, m, "{\"pings\": -1}", "pings must be an integer from 0");
    refused(&c, m, "{\"pings\": \"2\"}", "pings must be an integer");
    refused(&c, m, "{}", "no pings");
    refused(&c, m, "{\"pings\": 2, \"crashes\": 1}", "unknown key \"crashes\"");
    refused(&c, m, "[2]", "must be an object");

    drop(&c, m);
    drop(&c, r);
    ctx_close(&c);
}

/* ---------------------------------------------------------------------------------------- */
/* Through the runtime, on the SQLite store                                                   */
/* ---------------------------------------------------------------------------------------- */

typedef struct store_dir_s {
    char path[64];
    gs_store_t *store;
} store_dir_t;

static void store_open(store_dir_t *d)
{
    char err[256] = "";
    int rc = gs_store_sqlite_open(d->path, GS_DURABILITY_PROCESS, &d->store, err, sizeof(err));
    if (rc != 0)
        fail_msg("gs_store_sqlite_open(%s): %s", d->path, err);
}

static void store_close(store_dir_t *d)
{
    d->store->destroy(d->store);
    d->store = NULL;
}

static void store_dir_create(store_dir_t *d)
{
    snprintf(d->path, sizeof(d->path), "/tmp/gs_builtins_durable_XXXXXX");
    assert_non_null(mkdtemp(d->path));
    store_open(d);
}

static void store_dir_remove(store_dir_t *d)
{
    if (d->store != NULL)
        store_close(d);
    DIR *dir = opendir(d->path);
    assert_non_null(dir);
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char file[512];
        snprintf(file, sizeof(file), "%s/%s", d->path, e->d_name);
        unlink(file);
    }
    closedir(dir);
    rmdir(d->path);
}

static gs_runtime_t *durable_runtime(gs_store_t *st)
{
    gs_runtime_options_t opts;
    gs_runtime_options_init(&opts);
    opts.schedulers = 2;
    opts.store = st;
    gs_runtime_t *rt = NULL;
    assert_int_equal(gs_runtime_create(&opts, &rt), 0);
    assert_int_equal(gs_builtins_register(rt), 0);
    return rt;
}

static void start_durable(gs_runtime_t *rt, const char *name, const char *behaviour,
                          const char *args)
{
    gs_start_options_t opts;
    gs_start_options_init(&opts);
    opts.durable = true;
    tu_start(rt, name, gs_behaviour_find(rt, behaviour), args, &opts);
}

/* A gs_store_row_cb: the row of the key given in found[0], as JSON into found[1]. */
static bool find_row(const char *key, const char *val, size_t len, void *arg)
{
    json_t **found = arg;
    if (strcmp(key, json_string_value(found[0])) != 0)
        return true;
    found[1] = json_loadb(val, len, 0, NULL);
    return false;
}

/* The state stored for name: its states row's "state" (new reference). */
static json_t *stored_state(gs_store_t *st, const char *name)
{
    json_t *found[2] = {json_string(name), NULL};
    assert_int_equal(st->load(st, GS_STORE_STATES, find_row, found), 0);
    json_t *state = json_incref(json_object_get(found[1], "state"));
    json_decref(found[0]);
    json_decref(found[1]);
    assert_non_null(state);
    return state;
}

static void test_durable_counter_and_ticker_survive_a_restart(void **state)
{
    (void)state;
    store_dir_t d;
    store_dir_create(&d);

    gs_runtime_t *rt = durable_runtime(d.store);
    start_durable(rt, "c", "counter", "{\"initial\": 5}");
    start_durable(rt, "t", "ticker", "{\"interval_ms\": 60000, \"step\": 3}");
    assert_int_equal(tu_cast(rt, "c", "[\"increment\", 2]"), 0);
    assert_int_equal(tu_send(rt, "t", "\"tick\""), 0);
    /* A durable server's replies leave once what it changed before them committed. */
    assert_int_equal(tu_call_int(rt, "c", "\"get_count\""), 7);
    assert_int_equal(tu_call_int(rt, "t", "\"get_count\""), 3);
    gs_runtime_destroy(rt);

    /* The states table holds exactly the documented shapes. */
    json_t *c_row = stored_state(d.store, "c"), *t_row = stored_state(d.store, "t");
    assert_json_eq(c_row, "{\"count\": 7}");
    json_int_t ref = json_integer_value(json_object_get(t_row, "timer"));
    assert_true(ref > 0);
    json_object_del(t_row, "timer");
    assert_json_eq(t_row, "{\"count\": 3, \"interval_ms\": 60000, \"step\": 3}");
    json_decref(c_row);
    json_decref(t_row);
    store_close(&d);

    /* Restarted: the stored states come back whatever the new args say. */
    store_open(&d);
    rt = durable_runtime(d.store);
    start_durable(rt, "c", "counter", "{\"initial\": 100}");
    start_durable(rt, "t", "ticker", "{\"interval_ms\": 1000, \"step\": 1}");
    assert_int_equal(tu_call_int(rt, "c", "\"get_count\""), 7);
    json_t *t_state = tu_state(rt, "t");
    assert_json_eq(t_state, "{\"count\": 3, \"interval_ms\": 60000, \"step\": 3}");
    json_decref(t_state);

    /* The runtime arms the stored tick under its stored reference; the ticker's restore
     * armed nothing, so it is the only timer pending. */
    assert_int_equal(gs_read_timer(rt, (gs_timer_ref_t)ref, NULL), GS_ENOTIMER);
    json_t *report = NULL;
    assert_int_equal(gs_runtime_restore_timers(rt, &report), 0);
    assert_json_eq(report, "{\"restored\": 1, \"overdue\": 0, \"skipped\": 0, \"unreadable\": 0}");
    json_decref(report);
    assert_int_equal(gs_read_timer(rt, (gs_timer_ref_t)ref, NULL), 0);
    assert_int_equal(tu_stats(rt).pending_timers, 1);

    /* The next tick replaces that very timer: still one pending. */
    assert_int_equal(tu_send(rt, "t", "\"tick\""), 0);
    assert_int_equal(tu_call_int(rt, "t", "\"get_count\""), 6);
    assert_int_equal(gs_read_timer(rt, (gs_timer_ref_t)ref, NULL), GS_ENOTIMER);
    assert_int_equal(tu_stats(rt).pending_timers, 1);
    gs_runtime_destroy(rt);

    store_dir_remove(&d);
}

static void test_durable_misbehaving_keeps_its_pings_across_its_crash(void **state)
{
    (void)state;
    store_dir_t d;
    store_dir_create(&d);
    gs_runtime_t *rt = durable_runtime(d.store);

    start_durable(rt, "m", "misbehaving", NULL);
    tu_call_expect(rt, "m", "\"ping\"", "\"pong\"");
    tu_call_expect(rt, "m", "\"ping\"", "\"pong\"");
    json_t *reason = NULL;
    assert_int_equal(tu_call(rt, "m", "\"message\"", TU_WAIT_MS, &reason), GS_ECRASHED);
    assert_json_eq(reason, "\"calling_self\"");
    json_decref(reason);

    /* Restarted from the stored state, not from init: the pings were not lost. */
    tu_wait_running(rt, "m", 1);
    tu_call_expect(rt, "m", "\"ping\"", "\"pong\"");
    json_t *s = tu_state(rt, "m");
    assert_json_eq(s, "{\"pings\": 3}");
    json_decref(s);

    gs_runtime_destroy(rt);
    store_dir_remove(&d);
}

static void test_durable_slow_and_batcher_are_not_supported(void **state)
{
    (void)state;
    store_dir_t d;
    store_dir_create(&d);
    gs_runtime_t *rt = durable_runtime(d.store);

    static const char *const names[] = {"slow", "batcher"};
    for (size_t i = 0; i < 2; i++) {
        gs_start_options_t opts;
        gs_start_options_init(&opts);
        opts.durable = true;
        json_t *reason = NULL;
        assert_int_equal(
            gs_start(rt, names[i], gs_behaviour_find(rt, names[i]), NULL, &opts, &reason),
            GS_ENOTSUP);
        json_decref(reason);
        assert_null(gs_whereis(rt, names[i]));
    }

    gs_runtime_destroy(rt);
    store_dir_remove(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_storable_builtins_are_exactly_these),
        tu_test_builtins(test_counter_dump_and_restore),
        tu_test_builtins(test_counter_refuses_bad_stored_states),
        tu_test_builtins(test_journal_dump_and_restore),
        tu_test_builtins(test_journal_refuses_bad_stored_states),
        tu_test_builtins(test_receiver_dump_and_restore),
        tu_test_builtins(test_receiver_refuses_bad_stored_states),
        tu_test_builtins(test_ticker_dump_and_restore_keep_the_timer_ref),
        tu_test_builtins(test_ticker_refuses_bad_stored_states),
        tu_test_builtins(test_producer_dump_and_restore),
        tu_test_builtins(test_producer_refuses_bad_stored_states),
        tu_test_builtins(test_misbehaving_dump_and_restore),
        cmocka_unit_test(test_durable_counter_and_ticker_survive_a_restart),
        cmocka_unit_test(test_durable_misbehaving_keeps_its_pings_across_its_crash),
        cmocka_unit_test(test_durable_slow_and_batcher_are_not_supported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
