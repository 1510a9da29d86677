/*
 * test_otp.c: OTP's vocabulary in genserv.h, as a C behaviour uses it: what a result asks for
 * before the next message ({:continue, arg}, a timeout, :hibernate), init's :ignore and
 * {:ok, state, X}, and hot code upgrades through code_change.
 *
 * The behaviour here, "otp", logs what it sees (infos, continues, hibernations, upgrades) in
 * its state, and its format_state shows that log, so a test reads through gs_get_state what
 * happened, in order. Calls:
 *   ["continue", arg]  reply "ok", then handle_continue(arg); before returning, it casts itself
 *                      "queued", which must be handled after the continue
 *   ["timeout", ms]    reply "ok", then a timeout of ms    ["bad_timeout"]: timeout -1
 *   "hibernate"        reply "ok", then hibernate           "vsn": the code's answer ("v1"...)
 *   "log"              the log
 * Casts and infos: logged, except ["arm", ms] (a timeout of ms) and ["sleep", ms] (holds the
 * scheduler thread, so that what is sent meanwhile queues). handle_continue logs ["continue", arg];
 * arg "chain" continues again with "chained". Args: {"then": "continue"|"timeout"|"hibernate",
 * "arg": x, "ms": n} for init's
 * {:ok, state, X}; {"ignore": true} (always) or {"ignore_restarts": true} (from the second init
 * on) for :ignore; {"refuse_upgrade": true}: code_change fails.
 */
#include <stdatomic.h>

#include "testutil.h"

typedef struct otp_state_s {
    json_t *log;
    bool refuse_upgrade;
} otp_state_t;

static atomic_int otp_inits;

static void logv(otp_state_t *st, json_t *entry)
{
    json_array_append_new(st->log, entry);
}

static int otp_init(gs_server_t *self, json_t *args, void **state, json_t **reason)
{
    (void)reason;
    int n = atomic_fetch_add(&otp_inits, 1) + 1;
    if (json_is_true(json_object_get(args, "ignore")))
        return GS_INIT_IGNORE;
    if (json_is_true(json_object_get(args, "ignore_restarts")) && n > 1)
        return GS_INIT_IGNORE;

    otp_state_t *st = calloc(1, sizeof(*st));
    st->log = json_array();
    st->refuse_upgrade = json_is_true(json_object_get(args, "refuse_upgrade"));
    *state = st;

    const char *then = json_string_value(json_object_get(args, "then"));
    if (then == NULL)
        return 0;
    /* A message sent during init waits in the mailbox: init's continue still runs first. */
    gs_cast_server(self, json_string("during_init"));
    if (strcmp(then, "continue") == 0)
        gs_init_then(self, gs_then_continue(GS_NOREPLY, json_incref(json_object_get(args, "arg"))));
    else if (strcmp(then, "timeout") == 0)
        gs_init_then(self,
                     gs_then_timeout(GS_NOREPLY, json_integer_value(json_object_get(args, "ms"))));
    else if (strcmp(then, "hibernate") == 0)
        gs_init_then(self, gs_then_hibernate(GS_NOREPLY));
    return 0;
}

static gs_result_t otp_call(gs_server_t *self, void *state, json_t *msg, gs_from_t from,
                            const char *vsn)
{
    (void)from;
    otp_state_t *st = state;
    const char *cmd =
        json_is_string(msg) ? json_string_value(msg) : json_string_value(json_array_get(msg, 0));
    if (cmd == NULL)
        return GS_REPLY(json_string("unknown"));
    if (strcmp(cmd, "continue") == 0) {
        gs_cast_server(self, json_string("queued"));
        return gs_then_continue(GS_REPLY(json_string("ok")), json_incref(json_array_get(msg, 1)));
    }
    if (strcmp(cmd, "timeout") == 0)
        return gs_then_timeout(GS_REPLY(json_string("ok")),
                               json_integer_value(json_array_get(msg, 1)));
    if (strcmp(cmd, "bad_timeout") == 0)
        return gs_then_timeout(GS_REPLY(json_string("ok")), -1);
    if (strcmp(cmd, "hibernate") == 0)
        return gs_then_hibernate(GS_REPLY(json_string("ok")));
    if (strcmp(cmd, "vsn") == 0)
        return GS_REPLY(json_string(vsn));
    if (strcmp(cmd, "log") == 0)
        return GS_REPLY(json_deep_copy(st->log));
    return GS_REPLY(json_string("unknown"));
}

static gs_result_t otp_call_v1(gs_server_t *self, void *state, json_t *msg, gs_from_t from)
{
    return otp_call(self, state, msg, from, "v1");
}

static gs_result_t otp_call_v2(gs_server_t *self, void *state, json_t *msg, gs_from_t from)
{
    return otp_call(self, state, msg, from, "v2");
}

static gs_result_t otp_log_msg(gs_server_t *self, void *state, json_t *msg)
{
    (void)self;
    const char *cmd = json_string_value(json_array_get(msg, 0));
    if (cmd != NULL && strcmp(cmd, "arm") == 0) /* a timeout of n ms, not logged */
        return gs_then_timeout(GS_NOREPLY, json_integer_value(json_array_get(msg, 1)));
    if (cmd != NULL && strcmp(cmd, "sleep") == 0) { /* hold the thread: messages queue up */
        tu_sleep_ms((int)json_integer_value(json_array_get(msg, 1)));
        return GS_NOREPLY;
    }
    logv(state, json_deep_copy(msg));
    return GS_NOREPLY;
}

static gs_result_t otp_continue(gs_server_t *self, void *state, json_t *arg)
{
    (void)self;
    logv(state, json_pack("[s O]", "continue", arg));
    if (json_is_string(arg) && strcmp(json_string_value(arg), "chain") == 0)
        return gs_then_continue(GS_NOREPLY, json_string("chained"));
    return GS_NOREPLY;
}

/* Hibernation may replace the state: this one moves it to a new allocation, so that a use of
 * the old pointer afterwards is a use after free that ASan reports. */
static void otp_hibernate(gs_server_t *self, void **state)
{
    (void)self;
    otp_state_t *old = *state;
    otp_state_t *st = malloc(sizeof(*st));
    *st = *old;
    free(old);
    logv(st, json_string("hibernated"));
    *state = st;
}

static void otp_terminate(gs_server_t *self, json_t *reason, void *state)
{
    (void)self;
    (void)reason;
    otp_state_t *st = state;
    json_decref(st->log);
    free(st);
}

static json_t *otp_format(gs_server_t *self, void *state)
{
    (void)self;
    return json_deep_copy(((otp_state_t *)state)->log);
}

static int otp_code_change(gs_server_t *self, const char *old_vsn, void **state, json_t *extra,
                           json_t **reason)
{
    (void)self;
    otp_state_t *st = *state;
    if (st->refuse_upgrade) {
        *reason = json_string("refused");
        return -1;
    }
    logv(st, json_pack("[s s O]", "upgraded", old_vsn != NULL ? old_vsn : "", extra));
    return 0;
}

static const gs_behaviour_t otp_v1 = {
    .name = "otp",
    .vsn = "1",
    .init = otp_init,
    .handle_call = otp_call_v1,
    .handle_cast = otp_log_msg,
    .handle_info = otp_log_msg,
    .handle_continue = otp_continue,
    .hibernate = otp_hibernate,
    .terminate = otp_terminate,
    .format_state = otp_format,
};

static const gs_behaviour_t otp_v2 = {
    .name = "otp",
    .vsn = "2",
    .init = otp_init,
    .handle_call = otp_call_v2,
    .handle_cast = otp_log_msg,
    .handle_info = otp_log_msg,
    .handle_continue = otp_continue,
    .hibernate = otp_hibernate,
    .terminate = otp_terminate,
    .format_state = otp_format,
    .code_change = otp_code_change,
};

/* Like v1, without handle_continue: a continue is then an undefined callback. */
static const gs_behaviour_t otp_no_continue = {
    .name = "otp_no_continue",
    .init = otp_init,
    .handle_call = otp_call_v1,
    .handle_cast = otp_log_msg,
    .handle_info = otp_log_msg,
    .terminate = otp_terminate,
    .format_state = otp_format,
};

static int setup(void **state)
{
    atomic_store(&otp_inits, 0);
    gs_runtime_t *rt = tu_runtime_create(2, 0);
    assert_int_equal(gs_behaviour_register(rt, &otp_v1), 0);
    assert_int_equal(gs_behaviour_register(rt, &otp_no_continue), 0);
    *state = rt;
    return 0;
}

static int teardown(void **state)
{
    tu_events_unsubscribe(*state);
    gs_runtime_destroy(*state);
    tu_events_reset();
    return 0;
}

static void start(gs_runtime_t *rt, const char *name, const gs_behaviour_t *b, const char *args)
{
    tu_start(rt, name, b, args, NULL);
}

/* The reason of server's one crash, from the event log (new reference). */
static json_t *crash_reason(const char *server)
{
    json_t *life = tu_events_lifecycle(server);
    json_t *reason = NULL;
    size_t i;
    json_t *e;
    json_array_foreach(life, i, e)
    {
        if (strcmp(json_string_value(json_array_get(e, 0)), "crashed") == 0)
            reason = json_incref(json_array_get(e, 1));
    }
    json_decref(life);
    return reason;
}

/* The log, through gs_get_state (the format_state above). New reference. */
static json_t *log_of(gs_runtime_t *rt, const char *name)
{
    json_t *st = NULL;
    assert_int_equal(gs_get_state(rt, name, TU_WAIT_MS, &st), 0);
    return st;
}

static bool log_has(gs_runtime_t *rt, const char *name, const char *entry_text)
{
    json_t *want = tu_json(entry_text);
    json_t *log = log_of(rt, name);
    bool found = false;
    size_t i;
    json_t *e;
    json_array_foreach(log, i, e) found = found || json_equal(e, want);
    json_decref(log);
    json_decref(want);
    return found;
}

static void assert_log(gs_runtime_t *rt, const char *name, const char *want)
{
    json_t *log = log_of(rt, name);
    assert_json_eq(log, want);
    json_decref(log);
}

/* ---------------------------------------------------------------------------------------- */
/* {:continue, arg}                                                                           */
/* ---------------------------------------------------------------------------------------- */

static void test_continue_runs_before_queued_messages(void **state)
{
    gs_runtime_t *rt = *state;
    start(rt, "c", &otp_v1, "{}");
    tu_call_expect(rt, "c", "[\"continue\", \"x\"]", "\"ok\"");
    /* "queued" was in the mailbox before the reply left: the continue still came first. */
    TU_WAIT_UNTIL(log_has(rt, "c", "\"queued\""), TU_WAIT_MS);
    assert_log(rt, "c", "[[\"continue\", \"x\"], \"queued\"]");
}

static void test_continue_chains(void **state)
{
    gs_runtime_t *rt = *state;
    start(rt, "c", &otp_v1, "{}");
    tu_call_expect(rt, "c", "[\"continue\", \"chain\"]", "\"ok\"");
    TU_WAIT_UNTIL(log_has(rt, "c", "\"queued\""), TU_WAIT_MS);
    assert_log(rt, "c", "[[\"continue\", \"chain\"], [\"continue\", \"chained\"], \"queued\"]");
}

static void test_init_continue_before_messages_sent_during_init(void **state)
{
    gs_runtime_t *rt = *state;
    start(rt, "c", &otp_v1, "{\"then\": \"continue\", \"arg\": \"boot\"}");
    TU_WAIT_UNTIL(log_has(rt, "c", "\"during_init\""), TU_WAIT_MS);
    assert_log(rt, "c", "[[\"continue\", \"boot\"], \"during_init\"]");
}

static void test_continue_without_handle_continue_crashes(void **state)
{
    gs_runtime_t *rt = *state;
    tu_events_subscribe(rt);
    json_t *a = tu_json("{}");
    gs_start_options_t o;
    gs_start_options_init(&o);
    o.restart = GS_TEMPORARY;
    assert_int_equal(gs_start(rt, "nc", &otp_no_continue, a, &o, NULL), 0);
    json_decref(a);
    tu_call_expect(rt, "nc", "[\"continue\", 1]", "\"ok\"");
    TU_WAIT_UNTIL(tu_events_count("nc", "crashed") == 1, TU_WAIT_MS);
    json_t *why = crash_reason("nc");
    assert_json_eq(why, "[\"undef\", \"handle_continue\"]");
    json_decref(why);
}

/* ---------------------------------------------------------------------------------------- */
/* Timeouts                                                                                   */
/* ---------------------------------------------------------------------------------------- */

static void test_timeout_arrives_when_nothing_comes(void **state)
{
    gs_runtime_t *rt = *state;
    start(rt, "t", &otp_v1, "{}");
    tu_call_expect(rt, "t", "[\"timeout\", 20]", "\"ok\"");
    TU_WAIT_UNTIL(log_has(rt, "t", "\"timeout\""), TU_WAIT_MS);
    assert_log(rt, "t", "[\"timeout\"]");
}

static void test_init_timeout(void **state)
{
    gs_runtime_t *rt = *state;
    start(rt, "t", &otp_v1, "{\"then\": \"timeout\", \"ms\": 0}");
    /* A message sent during init came first: the timeout no longer applies. */
    TU_WAIT_UNTIL(log_has(rt, "t", "\"during_init\""), TU_WAIT_MS);
    gs_timer_ref_t ref;
    assert_int_equal(gs_send_after(rt, "t", json_string("marker"), 100, &ref), 0);
    TU_WAIT_UNTIL(log_has(rt, "t", "\"marker\""), TU_WAIT_MS);
    assert_log(rt, "t", "[\"during_init\", \"marker\"]");
}

static void test_message_first_cancels_timeout(void **state)
{
    gs_runtime_t *rt = *state;
    start(rt, "t", &otp_v1, "{}");
    tu_call_expect(rt, "t", "[\"timeout\", 150]", "\"ok\"");
    tu_send(rt, "t", "\"ping\"");
    /* The marker is due after the timeout would have been: when it is in, the moment passed. */
    gs_timer_ref_t ref;
    assert_int_equal(gs_send_after(rt, "t", json_string("marker"), 400, &ref), 0);
    TU_WAIT_UNTIL(log_has(rt, "t", "\"marker\""), TU_WAIT_MS);
    assert_log(rt, "t", "[\"ping\", \"marker\"]");
}

static void test_death_with_a_timeout_queued(void **state)
{
    (void)state;
    /* One scheduler, and no caller running a turn itself: while "b" holds the only thread,
     * "t"'s timeout fires into its mailbox behind the call that crashes it, so the dying
     * server drains a queued timeout: a message of its own that is not a call (it was once
     * failed as one, a heap overflow that fuzz_lua_behaviour found). */
    gs_runtime_options_t o;
    gs_runtime_options_init(&o);
    o.schedulers = 1;
    o.schedulers_only = true;
    gs_runtime_t *rt = NULL;
    assert_int_equal(gs_runtime_create(&o, &rt), 0);
    tu_events_subscribe(rt);
    start(rt, "t", &otp_v1, "{}");
    start(rt, "b", &otp_v1, "{}");
    tu_reply_t r;
    tu_reply_init(&r);

    tu_cast(rt, "t", "[\"arm\", 30]");
    tu_cast(rt, "b", "[\"sleep\", 300]"); /* after t's arm: the run queue is FIFO */
    /* The call must come after the arm was handled (handled at once, it would disarm the
     * timeout before it fires), and before it fires: while b holds the thread. */
    TU_WAIT_UNTIL(tu_status_int(rt, "t", "messages_handled") == 1, TU_WAIT_MS);
    assert_int_equal(
        gs_call_async(rt, "t", tu_json("[\"bad_timeout\"]"), TU_WAIT_MS, tu_reply_cb, &r), 0);
    assert_true(tu_reply_wait(&r, TU_WAIT_MS));
    TU_WAIT_UNTIL(tu_events_count("t", "restarted") == 1, TU_WAIT_MS);
    tu_call_expect(rt, "t", "\"log\"", "[]");
    assert_int_equal(tu_stats(rt).dropped_messages, 0);
    tu_events_unsubscribe(rt);
    gs_runtime_destroy(rt);
    tu_reply_close(&r);
}

static void test_state_reads_do_not_cancel_timeout(void **state)
{
    gs_runtime_t *rt = *state;
    start(rt, "t", &otp_v1, "{}");
    tu_call_expect(rt, "t", "[\"timeout\", 100]", "\"ok\"");
    /* :sys.get_state is not a message of the behaviour's: the timeout still comes. */
    for (int i = 0; i < 5; i++)
        json_decref(log_of(rt, "t"));
    TU_WAIT_UNTIL(log_has(rt, "t", "\"timeout\""), TU_WAIT_MS);
}

static void test_negative_timeout_is_a_bad_return(void **state)
{
    gs_runtime_t *rt = *state;
    tu_events_subscribe(rt);
    start(rt, "t", &otp_v1, "{}");
    /* As in OTP, the reply leaves first; the next action then fails (timeout_value). */
    tu_call_expect(rt, "t", "[\"bad_timeout\"]", "\"ok\"");
    TU_WAIT_UNTIL(tu_events_count("t", "crashed") == 1, TU_WAIT_MS);
    json_t *why = crash_reason("t");
    assert_non_null(why);
    assert_string_equal(json_string_value(json_array_get(why, 0)), "bad_return_value");
    json_decref(why);
}

/* ---------------------------------------------------------------------------------------- */
/* :hibernate                                                                                 */
/* ---------------------------------------------------------------------------------------- */

static void test_hibernate_runs_callback_and_keeps_state(void **state)
{
    gs_runtime_t *rt = *state;
    start(rt, "h", &otp_v1, "{}");
    tu_send(rt, "h", "\"before\"");
    tu_call_expect(rt, "h", "\"hibernate\"", "\"ok\"");
    tu_send(rt, "h", "\"after\"");
    TU_WAIT_UNTIL(log_has(rt, "h", "\"after\""), TU_WAIT_MS);
    assert_log(rt, "h", "[\"before\", \"hibernated\", \"after\"]");
}

static void test_init_hibernate(void **state)
{
    gs_runtime_t *rt = *state;
    start(rt, "h", &otp_v1, "{\"then\": \"hibernate\"}");
    TU_WAIT_UNTIL(log_has(rt, "h", "\"during_init\""), TU_WAIT_MS);
    assert_log(rt, "h", "[\"hibernated\", \"during_init\"]");
}

/* ---------------------------------------------------------------------------------------- */
/* :ignore                                                                                    */
/* ---------------------------------------------------------------------------------------- */

static bool listed(gs_runtime_t *rt, const char *name)
{
    json_t *st = gs_server_status(rt, name);
    json_decref(st);
    return st != NULL;
}

static void test_init_ignore_starts_nothing(void **state)
{
    gs_runtime_t *rt = *state;
    json_t *a = tu_json("{\"ignore\": true}");
    json_t *reason = NULL;
    assert_int_equal(gs_start(rt, "i", &otp_v1, a, NULL, &reason), GS_EIGNORED);
    json_decref(a);
    assert_null(reason);
    assert_null(gs_whereis(rt, "i"));
    assert_false(listed(rt, "i"));
    /* The name is free. */
    start(rt, "i", &otp_v1, "{}");
    assert_string_equal(gs_err_name(GS_EIGNORED), "ignored");
}

static void test_restart_ignored_frees_the_name(void **state)
{
    gs_runtime_t *rt = *state;
    tu_events_subscribe(rt);
    start(rt, "i", &otp_v1, "{\"ignore_restarts\": true}");
    tu_send(rt, "i", "\"alive\"");
    /* As in OTP, the reply leaves first; the next action then fails (timeout_value). */
    tu_call_expect(rt, "i", "[\"bad_timeout\"]", "\"ok\"");
    /* Its restart's init said :ignore: the supervisor leaves the child out. */
    TU_WAIT_UNTIL(!listed(rt, "i"), TU_WAIT_MS);
    assert_int_equal(atomic_load(&otp_inits), 2);
    start(rt, "i", &otp_v1, "{}");
}

/* ---------------------------------------------------------------------------------------- */
/* Hot upgrades                                                                               */
/* ---------------------------------------------------------------------------------------- */

typedef struct upgrade_wait_s {
    pthread_mutex_t mu;
    json_t *outcomes;
    int calls;
} upgrade_wait_t;

static void upgrade_cb(json_t *outcomes, void *arg)
{
    upgrade_wait_t *w = arg;
    pthread_mutex_lock(&w->mu);
    w->outcomes = outcomes;
    w->calls++;
    pthread_mutex_unlock(&w->mu);
}

static bool upgrade_done(void *arg)
{
    upgrade_wait_t *w = arg;
    pthread_mutex_lock(&w->mu);
    bool done = w->calls > 0;
    pthread_mutex_unlock(&w->mu);
    return done;
}

/* The outcome for server, from outcomes (borrowed), as a new reference without "server". */
static json_t *outcome_of(json_t *outcomes, const char *server)
{
    size_t i;
    json_t *o;
    json_array_foreach(outcomes, i, o)
    {
        if (strcmp(json_string_value(json_object_get(o, "server")), server) == 0) {
            json_t *copy = json_deep_copy(o);
            json_object_del(copy, "server");
            return copy;
        }
    }
    return NULL;
}

static json_t *upgrade(gs_runtime_t *rt, const gs_behaviour_t *from, const gs_behaviour_t *to,
                       const char *extra)
{
    upgrade_wait_t w = {.mu = PTHREAD_MUTEX_INITIALIZER};
    json_t *x = tu_json(extra);
    assert_int_equal(gs_behaviour_upgrade(rt, from, to, x, upgrade_cb, &w), 0);
    json_decref(x);
    assert_true(tu_wait_until(upgrade_done, &w, TU_WAIT_MS));
    pthread_mutex_lock(&w.mu);
    assert_int_equal(w.calls, 1);
    json_t *out = w.outcomes;
    pthread_mutex_unlock(&w.mu);
    pthread_mutex_destroy(&w.mu);
    return out;
}

static void test_upgrade_switches_code_and_turns_state(void **state)
{
    gs_runtime_t *rt = *state;
    start(rt, "a", &otp_v1, "{}");
    start(rt, "b", &otp_v1, "{}");
    tu_cast(rt, "a", "\"kept\"");

    const gs_behaviour_t *old = NULL;
    assert_int_equal(gs_behaviour_replace(rt, &otp_v2, &old), 0);
    assert_ptr_equal(old, &otp_v1);
    assert_int_equal(gs_behaviour_users(rt, &otp_v1), 2);

    json_t *out = upgrade(rt, &otp_v1, &otp_v2, "{\"why\": \"test\"}");
    assert_int_equal(json_array_size(out), 2);
    json_t *oa = outcome_of(out, "a"), *ob = outcome_of(out, "b");
    assert_json_eq(oa, "{\"ok\": true}");
    assert_json_eq(ob, "{\"ok\": true}");
    json_decref(oa);
    json_decref(ob);
    json_decref(out);

    tu_call_expect(rt, "a", "\"vsn\"", "\"v2\"");
    assert_log(rt, "a", "[\"kept\", [\"upgraded\", \"1\", {\"why\": \"test\"}]]");
    gs_server_t *a = gs_whereis(rt, "a");
    assert_ptr_equal(gs_server_behaviour(a), &otp_v2);
    gs_server_unref(a);
    assert_int_equal(gs_behaviour_users(rt, &otp_v1), 0);
    assert_int_equal(gs_behaviour_users(rt, &otp_v2), 2);
    /* New starts run the new code too. */
    start(rt, "c", gs_behaviour_find(rt, "otp"), "{}");
    tu_call_expect(rt, "c", "\"vsn\"", "\"v2\"");
}

static void test_failed_code_change_keeps_old_code_and_state(void **state)
{
    gs_runtime_t *rt = *state;
    start(rt, "ok", &otp_v1, "{}");
    start(rt, "no", &otp_v1, "{\"refuse_upgrade\": true}");
    tu_cast(rt, "no", "\"mine\"");
    assert_int_equal(gs_behaviour_replace(rt, &otp_v2, NULL), 0);

    json_t *out = upgrade(rt, &otp_v1, &otp_v2, "null");
    json_t *ok = outcome_of(out, "ok"), *no = outcome_of(out, "no");
    assert_json_eq(ok, "{\"ok\": true}");
    assert_json_eq(no, "{\"error\": \"refused\"}");
    json_decref(ok);
    json_decref(no);
    json_decref(out);

    tu_call_expect(rt, "no", "\"vsn\"", "\"v1\"");
    assert_log(rt, "no", "[\"mine\"]");
    assert_int_equal(gs_behaviour_users(rt, &otp_v1), 1);
    /* The old version is still in use: it cannot be forgotten by name (the name is v2's). */
    assert_int_equal(gs_behaviour_unregister(rt, "otp"), GS_EINUSE);
}

static void test_upgraded_server_restarts_with_new_code(void **state)
{
    gs_runtime_t *rt = *state;
    tu_events_subscribe(rt);
    start(rt, "r", &otp_v1, "{}");
    assert_int_equal(gs_behaviour_replace(rt, &otp_v2, NULL), 0);
    json_decref(upgrade(rt, &otp_v1, &otp_v2, "null"));
    /* As in OTP, the reply leaves first; the next action then fails (timeout_value). */
    tu_call_expect(rt, "r", "[\"bad_timeout\"]", "\"ok\"");
    tu_wait_running(rt, "r", 1);
    tu_call_expect(rt, "r", "\"vsn\"", "\"v2\"");
}

static void test_upgrade_without_code_change_keeps_state(void **state)
{
    gs_runtime_t *rt = *state;
    start(rt, "k", &otp_v1, "{}");
    tu_cast(rt, "k", "\"s\"");
    /* v2 -> v1: v1 has no code_change, so the state is kept as it is (OTP's default). */
    json_t *out = upgrade(rt, &otp_v1, &otp_v1, "null");
    json_decref(out);
    assert_log(rt, "k", "[\"s\"]");
}

static void test_upgrade_with_no_servers_answers_at_once(void **state)
{
    gs_runtime_t *rt = *state;
    json_t *out = upgrade(rt, &otp_v1, &otp_v2, "null");
    assert_json_eq(out, "[]");
    json_decref(out);
}

static void test_unregister(void **state)
{
    gs_runtime_t *rt = *state;
    start(rt, "u", &otp_v1, "{}");
    assert_int_equal(gs_behaviour_unregister(rt, "otp"), GS_EINUSE);
    assert_int_equal(gs_stop(rt, "u", NULL, TU_WAIT_MS), 0);
    assert_int_equal(gs_behaviour_unregister(rt, "otp"), 0);
    assert_null(gs_behaviour_find(rt, "otp"));
    assert_int_equal(gs_behaviour_unregister(rt, "otp"), GS_ENOBEHAVIOUR);
    assert_int_equal(gs_behaviour_register(rt, &otp_v1), 0);
}

static void test_kind_and_vsn_listed(void **state)
{
    gs_runtime_t *rt = *state;
    assert_string_equal(gs_behaviour_kind(rt, "otp"), "c");
    json_t *all = gs_behaviours_json(rt);
    size_t i;
    json_t *b;
    bool seen = false;
    json_array_foreach(all, i, b)
    {
        if (strcmp(json_string_value(json_object_get(b, "name")), "otp") == 0) {
            seen = true;
            assert_string_equal(json_string_value(json_object_get(b, "kind")), "c");
            assert_string_equal(json_string_value(json_object_get(b, "vsn")), "1");
        }
    }
    json_decref(all);
    assert_true(seen);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_continue_runs_before_queued_messages),
        T(test_continue_chains),
        T(test_init_continue_before_messages_sent_during_init),
        T(test_continue_without_handle_continue_crashes),
        T(test_timeout_arrives_when_nothing_comes),
        T(test_init_timeout),
        T(test_message_first_cancels_timeout),
        T(test_state_reads_do_not_cancel_timeout),
        cmocka_unit_test(test_death_with_a_timeout_queued),
        T(test_negative_timeout_is_a_bad_return),
        T(test_hibernate_runs_callback_and_keeps_state),
        T(test_init_hibernate),
        T(test_init_ignore_starts_nothing),
        T(test_restart_ignored_frees_the_name),
        T(test_upgrade_switches_code_and_turns_state),
        T(test_failed_code_change_keeps_old_code_and_state),
        T(test_upgraded_server_restarts_with_new_code),
        T(test_upgrade_without_code_change_keeps_state),
        T(test_upgrade_with_no_servers_answers_at_once),
        T(test_unregister),
        T(test_kind_and_vsn_listed),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
