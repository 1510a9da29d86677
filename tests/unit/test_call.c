/*
 * test_call.c: calls and replies (gs_call, gs_call_async, gs_send_request, gs_reply).
 *
 * What a user relies on: a call gets exactly one outcome, the reply, timeout, no_such_server,
 * or server_crashed with the crash's reason; a reply that comes after the timeout is dropped
 * and counted in late_replies; a deferred reply may come from any thread or any other server,
 * once (a second gs_reply says no_such_call); a server calling itself gets calling_self and a
 * handler making a blocking call gets would_block, both at once instead of a deadlock; the
 * non-blocking gs_send_request delivers its outcome to handle_info as ["gs_reply", tag, reply]
 * or ["gs_error", tag, code, reason]; GS_INFINITY never times out. Each test runs in a fresh
 * runtime with two schedulers, driving the "probe" test behaviour of probe.h.
 */
#include "testutil.h"

#include "probe.h"

/* A call gets the handler's reply, any JSON value including null. */
static void test_call_reply(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "e", probe_behaviour(), NULL, NULL);
    tu_call_expect(rt, "e", "\"ping\"", "\"pong\"");
    tu_call_expect(rt, "e", "[\"echo\", null]", "null");
    tu_call_expect(rt, "e", "[\"echo\", 42]", "42");
    tu_call_expect(rt, "e", "[\"echo\", [\"nested\", {\"x\": [true, false]}]]",
                   "[\"nested\", {\"x\": [true, false]}]");

    /* The default timeout and GS_INFINITY are accepted timeouts. */
    json_t *r = NULL;
    assert_int_equal(tu_call(rt, "e", "\"ping\"", GS_DEFAULT_TIMEOUT_MS, &r), 0);
    json_decref(r);
    assert_int_equal(tu_call(rt, "e", "\"ping\"", GS_INFINITY, &r), 0);
    assert_json_eq(r, "\"pong\"");
    json_decref(r);
}

/* A call to a name nobody has fails at once with no_such_server, and never calls back. */
static void test_no_such_server(void **state)
{
    gs_runtime_t *rt = *state;
    json_t *r = json_string("untouched");
    json_t *keep = r;
    assert_int_equal(tu_call(rt, "nobody", "\"ping\"", 1000, &r), GS_ENOSERVER);
    assert_null(r);
    json_decref(keep);

    tu_reply_t reply;
    tu_reply_init(&reply);
    assert_int_equal(gs_call_async(rt, "nobody", json_string("ping"), 1000, tu_reply_cb, &reply),
                     GS_ENOSERVER);
    tu_destroy(state);
    assert_int_equal(reply.runs, 0);
    tu_reply_close(&reply);
}

/* Bad arguments are refused up front and the callback never runs. */
static void test_call_bad_arguments(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "e", probe_behaviour(), NULL, NULL);
    tu_reply_t reply;
    tu_reply_init(&reply);
    assert_int_equal(gs_call_async(rt, "e", NULL, 1000, tu_reply_cb, &reply), GS_EINVAL);
    assert_int_equal(gs_call_async(rt, "e", json_string("ping"), -5, tu_reply_cb, &reply),
                     GS_EINVAL);
    assert_int_equal(gs_cast(rt, "e", NULL), GS_EINVAL);
    assert_int_equal(gs_send(rt, "e", NULL), GS_EINVAL);
    json_t *r = NULL;
    assert_int_equal(gs_call(rt, "e", NULL, 1000, &r), GS_EINVAL);
    assert_null(r);
    tu_destroy(state);
    assert_int_equal(reply.runs, 0);
    tu_reply_close(&reply);
}

/* A handler that stops with a reason fails the call with server_crashed and that reason. */
static void test_server_crashed_with_reason(void **state)
{
    gs_runtime_t *rt = *state;
    gs_start_options_t opts = tu_start_options(GS_TEMPORARY, 0);
    tu_start(rt, "c", probe_behaviour(), NULL, &opts);
    json_t *r = NULL;
    assert_int_equal(tu_call(rt, "c", "[\"crash\", {\"why\": \"boom\"}]", TU_WAIT_MS, &r),
                     GS_ECRASHED);
    assert_json_eq(r, "{\"why\": \"boom\"}");
    json_decref(r);

    /* A bad return value crashes too; the caller learns it crashed. */
    tu_start(rt, "c2", probe_behaviour(), NULL, &opts);
    r = NULL;
    assert_int_equal(tu_call(rt, "c2", "\"bad_reply\"", TU_WAIT_MS, &r), GS_ECRASHED);
    json_decref(r);

    /* A behaviour without handle_call crashes with ["bad_call", msg], as in OTP. */
    tu_start(rt, "bare", bare_behaviour(), NULL, &opts);
    r = NULL;
    assert_int_equal(tu_call(rt, "bare", "[\"hello\", 1]", TU_WAIT_MS, &r), GS_ECRASHED);
    assert_json_eq(r, "[\"bad_call\", [\"hello\", 1]]");
    json_decref(r);
}

/* stop with a reply: the caller gets the reply, then the server terminates. */
static void test_stop_reply(void **state)
{
    gs_runtime_t *rt = *state;
    gs_start_options_t opts = tu_start_options(GS_TEMPORARY, 0);
    tu_start(rt, "s", probe_behaviour(), NULL, &opts);
    tu_call_expect(rt, "s", "[\"stop_reply\", \"normal\", \"bye\"]", "\"bye\"");
    TU_WAIT_UNTIL(probe_terminates() == 1, TU_WAIT_MS);
    json_t *log = probe_terminated();
    assert_json_eq(log, "[[\"s\", \"normal\", 0]]");
    json_decref(log);
    /* A normal exit of a temporary server frees its name. */
    TU_WAIT_UNTIL(tu_status_int(rt, "s", "restarts") == -1, TU_WAIT_MS);
}

/* A call times out with timeout; the late reply is then dropped and counted. */
static void test_timeout_then_late_reply_dropped(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "h", probe_behaviour(), NULL, NULL);
    uint64_t late0 = tu_stats(rt).late_replies;

    int64_t t0 = tu_now_ms();
    json_t *r = json_string("untouched");
    json_t *keep = r;
    assert_int_equal(tu_call(rt, "h", "\"hold\"", 200, &r), GS_ETIMEOUT);
    int64_t elapsed = tu_now_ms() - t0;
    assert_null(r);
    json_decref(keep);
    assert_in_range(elapsed, 160, 5000);

    /* The server still holds the call; answering it now is refused and counted. */
    tu_call_expect(rt, "h", "[\"release\", \"too late\"]", "[-13]");
    assert_int_equal(tu_stats(rt).late_replies, late0 + 1);
    assert_int_equal(tu_stats(rt).held_calls, 0);
    /* The server goes on normally. */
    tu_call_expect(rt, "h", "\"ping\"", "\"pong\"");
}

/* gs_call_async times out the same way: its callback runs once, with timeout. */
static void test_async_timeout(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "h", probe_behaviour(), NULL, NULL);
    tu_reply_t reply;
    tu_reply_init(&reply);
    int64_t t0 = tu_now_ms();
    assert_int_equal(gs_call_async(rt, "h", json_string("hold"), 100, tu_reply_cb, &reply), 0);
    tu_reply_expect(&reply, GS_ETIMEOUT);
    assert_in_range(tu_now_ms() - t0, 80, 5000);
    assert_null(reply.result);
    tu_call_expect(rt, "h", "[\"release\", 1]", "[-13]");
    tu_destroy(state);
    assert_int_equal(reply.runs, 1);
    tu_reply_close(&reply);
}

/* A held call with GS_INFINITY does not time out; it completes when released. */
static void test_infinity(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "h", probe_behaviour(), NULL, NULL);
    tu_reply_t reply;
    tu_reply_init(&reply);
    assert_int_equal(gs_call_async(rt, "h", json_string("hold"), GS_INFINITY, tu_reply_cb, &reply),
                     0);
    TU_WAIT_UNTIL(tu_status_int(rt, "h", "held_calls") == 1, TU_WAIT_MS);
    /* Not a proof of forever, but -1 must not be read as "already expired" or a tiny value.
     * Call timeouts fire in due order on the one timer thread, so once a marker call made
     * after it with a 300 ms timeout has timed out, such a misread timeout would have too. */
    tu_start(rt, "marker", probe_behaviour(), NULL, NULL);
    tu_reply_t marker;
    tu_reply_init(&marker);
    assert_int_equal(gs_call_async(rt, "marker", json_string("hold"), 300, tu_reply_cb, &marker),
                     0);
    tu_reply_expect(&marker, GS_ETIMEOUT);
    assert_int_equal(tu_reply_runs(&reply), 0);
    tu_call_expect(rt, "h", "[\"release\", \"finally\"]", "[0]");
    tu_reply_expect(&reply, 0);
    assert_json_eq(reply.result, "\"finally\"");
    tu_destroy(state);
    assert_int_equal(reply.runs, 1);
    assert_int_equal(marker.runs, 1);
    tu_reply_close(&reply);
    tu_reply_close(&marker);
}

/* While it holds a call, a server goes on handling other messages. */
static void test_holding_server_keeps_working(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "h", probe_behaviour(), NULL, NULL);
    tu_reply_t held[3];
    for (int i = 0; i < 3; i++) {
        tu_reply_init(&held[i]);
        assert_int_equal(
            gs_call_async(rt, "h", json_string("hold"), TU_WAIT_MS, tu_reply_cb, &held[i]), 0);
    }
    for (int i = 0; i < 10; i++)
        tu_call_expect(rt, "h", "\"ping\"", "\"pong\"");
    for (int i = 0; i < 3; i++)
        assert_int_equal(tu_reply_runs(&held[i]), 0);
    tu_call_expect(rt, "h", "[\"release\", \"ok\"]", "[0, 0, 0]");
    for (int i = 0; i < 3; i++) {
        tu_reply_expect(&held[i], 0);
        assert_json_eq(held[i].result, "\"ok\"");
    }
    tu_destroy(state);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(held[i].runs, 1);
        tu_reply_close(&held[i]);
    }
}

/* The id of the one call h holds, from its held_froms. */
static gs_from_t held_from(gs_runtime_t *rt, const char *name)
{
    json_t *ids = NULL;
    assert_int_equal(tu_call(rt, name, "\"held_froms\"", TU_WAIT_MS, &ids), 0);
    assert_int_equal(json_array_size(ids), 1);
    gs_from_t from = {.rt = rt, .id = (uint64_t)json_integer_value(json_array_get(ids, 0))};
    json_decref(ids);
    return from;
}

typedef struct caller_s {
    gs_runtime_t *rt;
    const char *name;
    const char *msg;
    int timeout_ms;
    int rc;
    json_t *result;
} caller_t;

static void *caller_main(void *arg)
{
    caller_t *c = arg;
    c->rc = tu_call(c->rt, c->name, c->msg, c->timeout_ms, &c->result);
    return NULL;
}

typedef struct replier_s {
    gs_from_t from;
    int rc1;
    int rc2;
} replier_t;

static void *replier_main(void *arg)
{
    replier_t *r = arg;
    r->rc1 = gs_reply(r->from, json_string("from a thread"));
    r->rc2 = gs_reply(r->from, json_string("again"));
    return NULL;
}

/* A deferred reply from a thread outside the runtime completes a blocked caller, once. */
static void test_deferred_reply_from_thread(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "h", probe_behaviour(), NULL, NULL);
    uint64_t late0 = tu_stats(rt).late_replies;
    caller_t c = {rt, "h", "\"hold\"", TU_WAIT_MS, 1, NULL};
    pthread_t ct, rtid;
    assert_int_equal(pthread_create(&ct, NULL, caller_main, &c), 0);
    TU_WAIT_UNTIL(tu_status_int(rt, "h", "held_calls") == 1, TU_WAIT_MS);
    assert_int_equal(tu_stats(rt).held_calls, 1);

    replier_t rep = {held_from(rt, "h"), 1, 1};
    assert_int_equal(pthread_create(&rtid, NULL, replier_main, &rep), 0);
    pthread_join(rtid, NULL);
    pthread_join(ct, NULL);
    assert_int_equal(rep.rc1, 0);
    assert_int_equal(rep.rc2, GS_ENOCALL);
    assert_int_equal(c.rc, 0);
    assert_json_eq(c.result, "\"from a thread\"");
    json_decref(c.result);
    assert_int_equal(tu_stats(rt).late_replies, late0 + 1);
    TU_WAIT_UNTIL(tu_stats(rt).held_calls == 0, TU_WAIT_MS);
}

/* A deferred reply may come from another server's handler. */
static void test_deferred_reply_from_other_server(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "holder", probe_behaviour(), NULL, NULL);
    tu_start(rt, "helper", probe_behaviour(), NULL, NULL);
    tu_reply_t reply;
    tu_reply_init(&reply);
    assert_int_equal(
        gs_call_async(rt, "holder", json_string("hold"), TU_WAIT_MS, tu_reply_cb, &reply), 0);
    TU_WAIT_UNTIL(tu_status_int(rt, "holder", "held_calls") == 1, TU_WAIT_MS);
    gs_from_t from = held_from(rt, "holder");

    char msg[128];
    snprintf(msg, sizeof(msg), "[\"reply_to\", %llu, {\"by\": \"helper\"}]",
             (unsigned long long)from.id);
    tu_call_expect(rt, "helper", msg, "0");
    tu_reply_expect(&reply, 0);
    assert_json_eq(reply.result, "{\"by\": \"helper\"}");
    /* Once more is refused. */
    tu_call_expect(rt, "helper", msg, "-13");
    tu_destroy(state);
    assert_int_equal(reply.runs, 1);
    tu_reply_close(&reply);
}

/* Replying twice: the first reply wins, the second is no_such_call and counted as late. */
static void test_reply_twice(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "h", probe_behaviour(), NULL, NULL);
    uint64_t late0 = tu_stats(rt).late_replies;
    tu_reply_t reply;
    tu_reply_init(&reply);
    assert_int_equal(gs_call_async(rt, "h", json_string("hold"), TU_WAIT_MS, tu_reply_cb, &reply),
                     0);
    TU_WAIT_UNTIL(tu_status_int(rt, "h", "held_calls") == 1, TU_WAIT_MS);
    tu_call_expect(rt, "h", "[\"release_twice\", \"first\"]", "[[0, -13]]");
    tu_reply_expect(&reply, 0);
    assert_json_eq(reply.result, "\"first\"");
    assert_int_equal(tu_stats(rt).late_replies, late0 + 1);

    /* A from that never existed is refused the same way. */
    gs_from_t bogus = {.rt = rt, .id = UINT64_C(0x7fffffffffff1234)};
    assert_int_equal(gs_reply(bogus, json_string("nobody asked")), GS_ENOCALL);
    tu_destroy(state);
    assert_int_equal(reply.runs, 1);
    tu_reply_close(&reply);
}

/* The infos a probe logged (new reference). */
static json_t *infos_of(gs_runtime_t *rt, const char *name)
{
    json_t *st = probe_state(rt, name);
    json_t *infos = json_incref(json_object_get(st, "infos"));
    json_decref(st);
    return infos;
}

/* gs_send_request delivers the reply to handle_info as ["gs_reply", tag, reply]. */
static void test_send_request_reply(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "a", probe_behaviour(), NULL, NULL);
    tu_start(rt, "b", probe_behaviour(), NULL, NULL);
    tu_call_expect(rt, "a", "[\"send_request\", \"b\", [\"echo\", 42], 5000, {\"t\": 1}]",
                   "\"ok\"");
    TU_WAIT_UNTIL(probe_ninfos(rt, "a") == 1, TU_WAIT_MS);
    json_t *infos = infos_of(rt, "a");
    assert_json_eq(infos, "[[\"gs_reply\", {\"t\": 1}, 42]]");
    json_decref(infos);

    /* A deferred reply travels the same way, and a itself was never blocked meanwhile. */
    tu_call_expect(rt, "a", "[\"send_request\", \"b\", \"hold\", 5000, \"t2\"]", "\"ok\"");
    TU_WAIT_UNTIL(tu_status_int(rt, "b", "held_calls") == 1, TU_WAIT_MS);
    tu_call_expect(rt, "a", "\"ping\"", "\"pong\"");
    tu_call_expect(rt, "b", "[\"release\", \"later\"]", "[0]");
    TU_WAIT_UNTIL(probe_ninfos(rt, "a") == 2, TU_WAIT_MS);
    infos = infos_of(rt, "a");
    assert_json_eq(json_array_get(infos, 1), "[\"gs_reply\", \"t2\", \"later\"]");
    json_decref(infos);
}

/* gs_send_request's timeout arrives as ["gs_error", tag, "timeout", null]. */
static void test_send_request_timeout(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "a", probe_behaviour(), NULL, NULL);
    tu_start(rt, "b", probe_behaviour(), NULL, NULL);
    int64_t t0 = tu_now_ms();
    tu_call_expect(rt, "a", "[\"send_request\", \"b\", \"hold\", 150, [\"tag\", 7]]", "\"ok\"");
    TU_WAIT_UNTIL(probe_ninfos(rt, "a") == 1, TU_WAIT_MS);
    assert_in_range(tu_now_ms() - t0, 120, 5000);
    json_t *infos = infos_of(rt, "a");
    assert_json_eq(infos, "[[\"gs_error\", [\"tag\", 7], \"timeout\", null]]");
    json_decref(infos);

    /* The late reply is dropped: a gets nothing more. */
    uint64_t late0 = tu_stats(rt).late_replies;
    tu_call_expect(rt, "b", "[\"release\", \"late\"]", "[-13]");
    assert_int_equal(tu_stats(rt).late_replies, late0 + 1);
    assert_int_equal(probe_ninfos(rt, "a"), 1);
}

/* gs_send_request to a crashing server: ["gs_error", tag, "server_crashed", reason]. */
static void test_send_request_crash(void **state)
{
    gs_runtime_t *rt = *state;
    gs_start_options_t opts = tu_start_options(GS_TEMPORARY, 0);
    tu_start(rt, "a", probe_behaviour(), NULL, NULL);
    tu_start(rt, "b", probe_behaviour(), NULL, &opts);
    tu_call_expect(rt, "a", "[\"send_request\", \"b\", [\"crash\", \"kaput\"], 5000, 3]", "\"ok\"");
    TU_WAIT_UNTIL(probe_ninfos(rt, "a") == 1, TU_WAIT_MS);
    json_t *infos = infos_of(rt, "a");
    assert_json_eq(infos, "[[\"gs_error\", 3, \"server_crashed\", \"kaput\"]]");
    json_decref(infos);

    /* An up-front error is returned and no message arrives later. */
    tu_call_expect(rt, "a", "[\"send_request\", \"nobody\", \"ping\", 100, 4]",
                   "\"no_such_server\"");
    tu_call_expect(rt, "a", "[\"send_request\", \"b\", \"ping\", 100, 5]", "\"no_such_server\"");
    /* A marker request made after them, with a longer timeout, times out into a's mailbox:
     * a late message for tags 4 or 5 (their 100 ms timeouts fire first, on the same timer
     * thread) would have arrived before it. */
    tu_start(rt, "m", probe_behaviour(), NULL, NULL);
    tu_call_expect(rt, "a", "[\"send_request\", \"m\", \"hold\", 150, \"marker\"]", "\"ok\"");
    TU_WAIT_UNTIL(probe_ninfos(rt, "a") == 2, TU_WAIT_MS);
    infos = infos_of(rt, "a");
    assert_json_eq(json_array_get(infos, 1), "[\"gs_error\", \"marker\", \"timeout\", null]");
    json_decref(infos);
}

/* A server calling itself gets calling_self at once, blocking or not. */
static void test_calling_self(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "me", probe_behaviour(), NULL, NULL);
    int64_t t0 = tu_now_ms();
    tu_call_expect(rt, "me", "[\"call_async\", \"me\", \"ping\"]", "\"calling_self\"");
    json_t *r = NULL;
    assert_int_equal(tu_call(rt, "me", "[\"call\", \"me\", \"ping\", 5000]", TU_WAIT_MS, &r), 0);
    assert_string_equal(json_string_value(json_array_get(r, 0)), "calling_self");
    json_decref(r);
    /* At once: well before the 5 s the inner call would wait otherwise. */
    assert_true(tu_now_ms() - t0 < 2500);
    tu_call_expect(rt, "me", "\"ping\"", "\"pong\"");
}

/* A blocking call from a handler to another server is would_block, without waiting. */
static void test_would_block(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "a", probe_behaviour(), NULL, NULL);
    tu_start(rt, "b", probe_behaviour(), NULL, NULL);
    json_t *r = NULL;
    assert_int_equal(tu_call(rt, "a", "[\"call\", \"b\", \"hold\", 3000]", TU_WAIT_MS, &r), 0);
    assert_string_equal(json_string_value(json_array_get(r, 0)), "would_block");
    assert_true(json_integer_value(json_array_get(r, 1)) < 1500);
    json_decref(r);
    /* b never saw the call. */
    assert_int_equal(tu_status_int(rt, "b", "held_calls"), 0);
    /* But the asynchronous call from a handler is fine. */
    tu_call_expect(rt, "a", "[\"call_async\", \"b\", \"ping\"]", "\"ok\"");
}

/* Many async calls with every kind of outcome: each callback runs exactly once. */
static void test_call_async_exactly_once(void **state)
{
    gs_runtime_t *rt = *state;
    enum { N = 200 };
    gs_start_options_t opts = tu_start_options(GS_TEMPORARY, 0);
    tu_start(rt, "fast", probe_behaviour(), NULL, NULL);
    tu_start(rt, "holder", probe_behaviour(), NULL, NULL);
    tu_start(rt, "crasher", probe_behaviour(), NULL, &opts);
    tu_start(rt, "stopper", probe_behaviour(), NULL, NULL);
    static tu_reply_t replies[4][N];
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < N; i++)
            tu_reply_init(&replies[k][i]);

    for (int i = 0; i < N; i++) {
        json_t *msg = json_pack("[si]", "echo", i);
        assert_int_equal(gs_call_async(rt, "fast", msg, TU_WAIT_MS, tu_reply_cb, &replies[0][i]),
                         0);
        /* Half released, half timed out. */
        assert_int_equal(gs_call_async(rt, "holder", json_string("hold"), i % 2 ? 100 : TU_WAIT_MS,
                                       tu_reply_cb, &replies[1][i]),
                         0);
        assert_int_equal(gs_call_async(rt, "crasher", json_string("hold"), TU_WAIT_MS, tu_reply_cb,
                                       &replies[2][i]),
                         0);
        assert_int_equal(gs_call_async(rt, "stopper", json_string("hold"), TU_WAIT_MS, tu_reply_cb,
                                       &replies[3][i]),
                         0);
    }
    TU_WAIT_UNTIL(tu_status_int(rt, "crasher", "held_calls") == N, TU_WAIT_MS);
    TU_WAIT_UNTIL(tu_status_int(rt, "stopper", "held_calls") == N, TU_WAIT_MS);
    for (int i = 1; i < N; i += 2)
        tu_reply_expect(&replies[1][i], GS_ETIMEOUT);
    assert_int_equal(tu_cast(rt, "crasher", "[\"crash\", \"bang\"]"), 0);
    json_t *rcs = NULL;
    assert_int_equal(tu_call(rt, "holder", "[\"release\", \"r\"]", TU_WAIT_MS, &rcs), 0);
    assert_int_equal(json_array_size(rcs), N);
    for (int i = 0; i < N; i++)
        assert_int_equal(json_integer_value(json_array_get(rcs, i)), i % 2 ? GS_ENOCALL : 0);
    json_decref(rcs);
    assert_int_equal(gs_stop(rt, "stopper", json_string("enough"), TU_WAIT_MS), 0);

    for (int i = 0; i < N; i++) {
        tu_reply_expect(&replies[0][i], 0);
        assert_int_equal(json_integer_value(replies[0][i].result), i);
        if (i % 2 == 0) {
            tu_reply_expect(&replies[1][i], 0);
            assert_json_eq(replies[1][i].result, "\"r\"");
        }
        tu_reply_expect(&replies[2][i], GS_ECRASHED);
        assert_json_eq(replies[2][i].result, "\"bang\"");
        tu_reply_expect(&replies[3][i], GS_ESTOPPED);
        assert_json_eq(replies[3][i].result, "\"enough\"");
    }
    /* Once everything is joined, no callback ran a second time. */
    tu_destroy(state);
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < N; i++) {
            assert_int_equal(replies[k][i].runs, 1);
            tu_reply_close(&replies[k][i]);
        }
}

/* Calls through a handle reach that incarnation. */
static void test_call_server_async(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "e", probe_behaviour(), NULL, NULL);
    gs_server_t *s = gs_whereis(rt, "e");
    tu_reply_t reply;
    tu_reply_init(&reply);
    assert_int_equal(gs_call_server_async(s, tu_json("[\"echo\", \"via handle\"]"), TU_WAIT_MS,
                                          tu_reply_cb, &reply),
                     0);
    tu_reply_expect(&reply, 0);
    assert_json_eq(reply.result, "\"via handle\"");
    gs_server_unref(s);
    tu_destroy(state);
    tu_reply_close(&reply);
}

/* ---------------------------------------------------------------------------------------- */
/* Callers that go away, and the open-reply ledger                                            */
/* ---------------------------------------------------------------------------------------- */

/* The probe, asking to be told when a caller it holds is gone (notify_caller_gone). */
static const gs_behaviour_t *gone_probe(void)
{
    static gs_behaviour_t b;
    if (b.name == NULL) {
        b = *probe_behaviour();
        b.name = "probe_gone";
        b.notify_caller_gone = true;
    }
    return &b;
}

/* The ledger's calls of name (new reference), failing the test when there is no such server. */
static json_t *held_of(gs_runtime_t *rt, const char *name, size_t limit)
{
    json_t *held = gs_server_held_json(rt, name, limit);
    assert_non_null(held);
    assert_string_equal(json_string_value(json_object_get(held, "server")), name);
    return held;
}

static size_t held_count(gs_runtime_t *rt, const char *name)
{
    json_t *held = held_of(rt, name, 1);
    size_t n = (size_t)json_integer_value(json_object_get(held, "count"));
    json_decref(held);
    return n;
}

/* A caller that goes away while its call is held: the call completes with caller_gone at once,
 * leaves the server's held calls and the ledger, the server is told with the id it holds, and
 * a reply that comes later is dropped, refused with caller_gone and counted. */
static void test_abandon_held_call(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "g", gone_probe(), NULL, NULL);
    gs_runtime_stats_t before = tu_stats(rt);
    tu_reply_t reply;
    tu_reply_init(&reply);
    gs_call_options_t opts;
    gs_call_options_init(&opts);
    assert_int_equal(opts.timeout_ms, GS_DEFAULT_TIMEOUT_MS);
    opts.timeout_ms = 60000;
    opts.caller_kind = "http";
    opts.caller = "10.1.2.3:4567";
    gs_call_t *call = NULL;
    assert_int_equal(gs_call_async_opts(rt, "g", tu_json("[\"hold\", {\"big\": 1}]"), &opts,
                                        tu_reply_cb, &reply, &call),
                     0);
    assert_non_null(call);
    TU_WAIT_UNTIL(tu_status_int(rt, "g", "held_calls") == 1, TU_WAIT_MS);

    /* The ledger says who waits, since when, until when, for what. */
    json_t *held = held_of(rt, "g", 10);
    assert_int_equal(json_integer_value(json_object_get(held, "count")), 1);
    json_t *c = json_array_get(json_object_get(held, "calls"), 0);
    assert_int_equal(json_integer_value(json_object_get(c, "id")), (json_int_t)gs_call_id(call));
    assert_string_equal(json_string_value(json_object_get(c, "kind")), "http");
    assert_string_equal(json_string_value(json_object_get(c, "caller")), "10.1.2.3:4567");
    assert_string_equal(json_string_value(json_object_get(c, "tag")), "hold");
    json_int_t since = json_integer_value(json_object_get(c, "since_ms"));
    json_int_t deadline = json_integer_value(json_object_get(c, "deadline_ms"));
    assert_true(since > 1600000000000 && deadline - since > 50000 && deadline - since <= 60100);
    assert_in_range(json_integer_value(json_object_get(c, "remaining_ms")), 50000, 60000);
    json_decref(held);
    assert_true(gs_held_oldest_ms(rt) >= 0);
    /* The id is the from the server holds. */
    char want[64];
    snprintf(want, sizeof(want), "[%llu]", (unsigned long long)gs_call_id(call));
    tu_call_expect(rt, "g", "\"held_froms\"", want);

    assert_int_equal(gs_call_abandon(rt, call), 0);
    tu_reply_expect(&reply, GS_ECALLERGONE);
    assert_int_equal(tu_status_int(rt, "g", "held_calls"), 0);
    assert_int_equal(held_count(rt, "g"), 0);
    assert_int_equal(gs_held_oldest_ms(rt), -1);
    assert_int_equal(tu_stats(rt).callers_gone, before.callers_gone + 1);
    /* Once only: the call is over. */
    assert_int_equal(gs_call_abandon(rt, call), GS_ENOCALL);
    assert_int_equal(tu_stats(rt).callers_gone, before.callers_gone + 1);

    /* The server was told, with the id of the from it holds. */
    snprintf(want, sizeof(want), "[[\"caller_gone\", %llu]]", (unsigned long long)gs_call_id(call));
    TU_WAIT_UNTIL(probe_ninfos(rt, "g") == 1, TU_WAIT_MS);
    json_t *infos = infos_of(rt, "g");
    assert_json_eq(infos, want);
    json_decref(infos);

    /* A reply that comes later is dropped, refused as caller_gone and counted as such (and as
     * late); a second one is merely late. */
    tu_call_expect(rt, "g", "[\"release_twice\", \"too late\"]", "[[-22, -13]]");
    gs_runtime_stats_t after = tu_stats(rt);
    assert_int_equal(after.replies_to_gone_callers, before.replies_to_gone_callers + 1);
    assert_int_equal(after.late_replies, before.late_replies + 2);
    gs_call_unref(call);
    tu_destroy(state);
    assert_int_equal(reply.runs, 1);
    tu_reply_close(&reply);
}

/* A call whose caller goes away while it still waits in the mailbox ends at once; the server
 * handles it later, and is told at once when it keeps that from. Nothing stays held. */
static void test_abandon_queued_call(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "g", gone_probe(), NULL, NULL);
    assert_int_equal(tu_cast(rt, "g", "\"block\""), 0);
    TU_WAIT_UNTIL(probe_is_blocked(), TU_WAIT_MS);
    tu_reply_t reply;
    tu_reply_init(&reply);
    gs_call_t *call = NULL;
    assert_int_equal(
        gs_call_async_opts(rt, "g", json_string("hold"), NULL, tu_reply_cb, &reply, &call), 0);
    assert_int_equal(gs_call_abandon(rt, call), 0);
    tu_reply_expect(&reply, GS_ECALLERGONE);
    probe_open_gate();
    TU_WAIT_UNTIL(probe_ninfos(rt, "g") == 1, TU_WAIT_MS);
    char want[64];
    snprintf(want, sizeof(want), "[[\"caller_gone\", %llu]]", (unsigned long long)gs_call_id(call));
    json_t *infos = infos_of(rt, "g");
    assert_json_eq(infos, want);
    json_decref(infos);
    assert_int_equal(tu_status_int(rt, "g", "held_calls"), 0);
    assert_int_equal(held_count(rt, "g"), 0);
    gs_call_unref(call);
    tu_destroy(state);
    assert_int_equal(reply.runs, 1);
    tu_reply_close(&reply);
}

/* A server that did not ask is not told; its caller still ends at once. Up-front errors give
 * no reference. */
static void test_abandon_without_notify(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "h", probe_behaviour(), NULL, NULL);
    tu_reply_t reply;
    tu_reply_init(&reply);
    gs_call_t *call = (gs_call_t *)&reply; /* overwritten */
    assert_int_equal(
        gs_call_async_opts(rt, "nobody", json_string("hold"), NULL, tu_reply_cb, &reply, &call),
        GS_ENOSERVER);
    assert_null(call);
    assert_int_equal(
        gs_call_async_opts(rt, "h", json_string("hold"), NULL, tu_reply_cb, &reply, &call), 0);
    TU_WAIT_UNTIL(tu_status_int(rt, "h", "held_calls") == 1, TU_WAIT_MS);
    assert_int_equal(gs_call_abandon(rt, call), 0);
    tu_reply_expect(&reply, GS_ECALLERGONE);
    /* A later message shows the server got no info in between. */
    tu_call_expect(rt, "h", "\"ping\"", "\"pong\"");
    assert_int_equal(probe_ninfos(rt, "h"), 0);
    assert_int_equal(gs_call_abandon(NULL, call), GS_EINVAL);
    gs_call_unref(call);
    gs_call_unref(NULL);
    tu_destroy(state);
    tu_reply_close(&reply);
}

/* The ledger names each kind of caller, oldest first, cuts at the limit but counts all, and
 * redacts a sensitive server's tags. */
static void test_ledger_kinds_and_redaction(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "g", gone_probe(), NULL, NULL);
    tu_start(rt, "asker", probe_behaviour(), NULL, NULL);
    assert_null(gs_server_held_json(rt, "nobody", 10));

    /* A thread, then a server (gs_send_request from asker's handler). */
    tu_reply_t reply;
    tu_reply_init(&reply);
    assert_int_equal(gs_call_async(rt, "g", json_string("hold"), GS_INFINITY, tu_reply_cb, &reply),
                     0);
    TU_WAIT_UNTIL(held_count(rt, "g") == 1, TU_WAIT_MS);
    tu_call_expect(rt, "asker", "[\"send_request\", \"g\", [\"hold\", 2], 60000, \"t\"]", "\"ok\"");
    TU_WAIT_UNTIL(held_count(rt, "g") == 2, TU_WAIT_MS);

    json_t *held = held_of(rt, "g", 10);
    json_t *calls = json_object_get(held, "calls");
    assert_int_equal(json_array_size(calls), 2);
    json_t *first = json_array_get(calls, 0), *second = json_array_get(calls, 1);
    assert_string_equal(json_string_value(json_object_get(first, "kind")), "thread");
    assert_true(json_is_null(json_object_get(first, "caller")));
    assert_true(json_is_null(json_object_get(first, "deadline_ms")));
    assert_true(json_is_null(json_object_get(first, "remaining_ms")));
    assert_string_equal(json_string_value(json_object_get(second, "kind")), "server");
    assert_string_equal(json_string_value(json_object_get(second, "caller")), "asker");
    assert_string_equal(json_string_value(json_object_get(second, "tag")), "hold");
    assert_true(json_integer_value(json_object_get(first, "since_ms")) <=
                json_integer_value(json_object_get(second, "since_ms")));
    json_decref(held);

    /* The limit cuts the list to the oldest; count stays the whole. */
    held = held_of(rt, "g", 1);
    assert_int_equal(json_integer_value(json_object_get(held, "count")), 2);
    assert_int_equal(json_array_size(json_object_get(held, "calls")), 1);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(held, "calls"), 0), "kind")),
                        "thread");
    json_decref(held);

    /* A sensitive server's tags are redacted. */
    gs_start_options_t secret = tu_start_options(GS_PERMANENT, 0);
    secret.sensitive = true;
    tu_start(rt, "s", gone_probe(), NULL, &secret);
    tu_reply_t r2;
    tu_reply_init(&r2);
    assert_int_equal(
        gs_call_async(rt, "s", tu_json("[\"hold\", \"password\"]"), 60000, tu_reply_cb, &r2), 0);
    TU_WAIT_UNTIL(held_count(rt, "s") == 1, TU_WAIT_MS);
    held = held_of(rt, "s", 10);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(held, "calls"), 0), "tag")),
                        GS_REDACTED);
    json_decref(held);

    tu_destroy(state);
    assert_int_equal(reply.runs, 1);
    tu_reply_close(&reply);
    tu_reply_close(&r2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        probe_test(test_call_reply),
        probe_test(test_no_such_server),
        probe_test(test_call_bad_arguments),
        probe_test(test_server_crashed_with_reason),
        probe_test(test_stop_reply),
        probe_test(test_timeout_then_late_reply_dropped),
        probe_test(test_async_timeout),
        probe_test(test_infinity),
        probe_test(test_holding_server_keeps_working),
        probe_test(test_deferred_reply_from_thread),
        probe_test(test_deferred_reply_from_other_server),
        probe_test(test_reply_twice),
        probe_test(test_send_request_reply),
        probe_test(test_send_request_timeout),
        probe_test(test_send_request_crash),
        probe_test(test_calling_self),
        probe_test(test_would_block),
        probe_test(test_call_async_exactly_once),
        probe_test(test_call_server_async),
        probe_test(test_abandon_held_call),
        probe_test(test_abandon_queued_call),
        probe_test(test_abandon_without_notify),
        probe_test(test_ledger_kinds_and_redaction),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
