/*
 * test_sys.c: monitors (gs_monitor, gs_demonitor), stopping with a reason and a timeout
 * (gs_stop_opts: terminate sees the reason, callers fail with it, past the timeout the server
 * is killed), and the :sys operations (gs_suspend, gs_resume, gs_replace_state).
 *
 * The behaviour here, "sysprobe", keeps {"n": N, "log": [infos it received]} and shows it
 * through format_state. Calls:
 *   ["monitor", name]   reply the ref of gs_monitor(self, name)
 *   ["demonitor", ref]  reply "ok" or the error's name
 *   ["stop", reason]    stop with reason, replying "bye"     "n": reply n
 *   "hold"              keep the call (no reply)
 * Casts: "inc" (n + 1), ["sleep", ms] (holds its scheduler thread: a slow handler).
 * replace_state accepts {"n": integer} and refuses anything else with "bad_state". terminate
 * records its reason in `terminated` (the state is gone by then). "plain" is the same
 * behaviour without replace_state.
 */
#include <stdatomic.h>

#include "testutil.h"

typedef struct probe_s {
    json_int_t n;
    json_t *log;
} probe_t;

static pthread_mutex_t terminated_mu = PTHREAD_MUTEX_INITIALIZER;
static json_t *terminated; /* [reason...] in the order terminate ran */

static int sp_init(gs_server_t *self, json_t *args, void **state, json_t **reason)
{
    (void)self;
    (void)args;
    (void)reason;
    probe_t *p = calloc(1, sizeof(*p));
    p->log = json_array();
    *state = p;
    return 0;
}

static gs_result_t sp_call(gs_server_t *self, void *state, json_t *msg, gs_from_t from)
{
    (void)from;
    probe_t *p = state;
    const char *cmd =
        json_is_string(msg) ? json_string_value(msg) : json_string_value(json_array_get(msg, 0));
    if (cmd == NULL)
        return GS_REPLY(json_string("unknown"));
    if (strcmp(cmd, "monitor") == 0) {
        gs_monitor_ref_t ref = 0;
        int rc = gs_monitor(self, json_string_value(json_array_get(msg, 1)), &ref);
        return GS_REPLY(rc == 0 ? json_integer((json_int_t)ref) : json_string(gs_err_name(rc)));
    }
    if (strcmp(cmd, "demonitor") == 0) {
        int rc = gs_demonitor(self, (gs_monitor_ref_t)json_integer_value(json_array_get(msg, 1)));
        return GS_REPLY(json_string(rc == 0 ? "ok" : gs_err_name(rc)));
    }
    if (strcmp(cmd, "stop") == 0)
        return GS_STOP_REPLY(json_incref(json_array_get(msg, 1)), json_string("bye"));
    if (strcmp(cmd, "hold") == 0)
        return GS_NOREPLY;
    if (strcmp(cmd, "n") == 0)
        return GS_REPLY(json_integer(p->n));
    return GS_REPLY(json_string("unknown"));
}

static gs_result_t sp_cast(gs_server_t *self, void *state, json_t *msg)
{
    (void)self;
    probe_t *p = state;
    if (json_is_string(msg) && strcmp(json_string_value(msg), "inc") == 0)
        p->n++;
    else if (json_is_array(msg) && strcmp(json_string_value(json_array_get(msg, 0)), "sleep") == 0)
        tu_sleep_ms((int)json_integer_value(json_array_get(msg, 1))); /* a slow handler */
    return GS_NOREPLY;
}

static gs_result_t sp_info(gs_server_t *self, void *state, json_t *msg)
{
    (void)self;
    probe_t *p = state;
    json_array_append(p->log, msg);
    return GS_NOREPLY;
}

static void sp_terminate(gs_server_t *self, json_t *reason, void *state)
{
    (void)self;
    probe_t *p = state;
    pthread_mutex_lock(&terminated_mu);
    if (terminated != NULL)
        json_array_append_new(terminated, json_deep_copy(reason));
    pthread_mutex_unlock(&terminated_mu);
    json_decref(p->log);
    free(p);
}

static json_t *sp_format(gs_server_t *self, void *state)
{
    (void)self;
    probe_t *p = state;
    return json_pack("{s:I, s:O}", "n", p->n, "log", p->log);
}

static int sp_replace(gs_server_t *self, void **state, json_t *next, json_t **reason)
{
    (void)self;
    probe_t *p = *state;
    if (!json_is_integer(json_object_get(next, "n"))) {
        *reason = json_string("bad_state");
        return 1;
    }
    p->n = json_integer_value(json_object_get(next, "n"));
    return 0;
}

static const gs_behaviour_t sysprobe = {
    .name = "sysprobe",
    .init = sp_init,
    .handle_call = sp_call,
    .handle_cast = sp_cast,
    .handle_info = sp_info,
    .terminate = sp_terminate,
    .format_state = sp_format,
    .replace_state = sp_replace,
};

static const gs_behaviour_t plain = {
    .name = "plain",
    .init = sp_init,
    .handle_call = sp_call,
    .handle_cast = sp_cast,
    .handle_info = sp_info,
    .terminate = sp_terminate,
    .format_state = sp_format,
};

static int setup(void **state)
{
    pthread_mutex_lock(&terminated_mu);
    json_decref(terminated);
    terminated = json_array();
    pthread_mutex_unlock(&terminated_mu);
    return tu_setup(state);
}

static int teardown(void **state)
{
    int rc = tu_teardown(state);
    pthread_mutex_lock(&terminated_mu);
    json_decref(terminated);
    terminated = NULL;
    pthread_mutex_unlock(&terminated_mu);
    return rc;
}

static size_t terminated_count(void)
{
    pthread_mutex_lock(&terminated_mu);
    size_t n = json_array_size(terminated);
    pthread_mutex_unlock(&terminated_mu);
    return n;
}

/* The info log of a sysprobe server (new reference). */
static json_t *log_of(gs_runtime_t *rt, const char *name)
{
    json_t *st = tu_state(rt, name);
    json_t *log = json_incref(json_object_get(st, "log"));
    json_decref(st);
    return log;
}

static size_t log_len(gs_runtime_t *rt, const char *name)
{
    json_t *log = log_of(rt, name);
    size_t n = json_array_size(log);
    json_decref(log);
    return n;
}

/* Whether no server is registered under name. */
static bool gone(gs_runtime_t *rt, const char *name)
{
    json_t *st = gs_server_status(rt, name);
    json_decref(st);
    return st == NULL;
}

/* The DOWN a watcher expects, as JSON text. */
static void expect_down(json_t *entry, long long ref, const char *name, const char *reason)
{
    char want[256];
    snprintf(want, sizeof(want), "[\"DOWN\", %lld, \"%s\", %s]", ref, name, reason);
    assert_json_eq(entry, want);
}

static long long monitor(gs_runtime_t *rt, const char *watcher, const char *target)
{
    char msg[128];
    snprintf(msg, sizeof(msg), "[\"monitor\", \"%s\"]", target);
    long long ref = tu_call_int(rt, watcher, msg);
    assert_true(ref > 0);
    return ref;
}

/* ---------------------------------------------------------------------------------------- */
/* Monitors                                                                                   */
/* ---------------------------------------------------------------------------------------- */

static void test_down_on_crash_then_restart_is_not_watched(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "w", &sysprobe, NULL, NULL);
    tu_start(rt, "t", &sysprobe, NULL, NULL); /* permanent: restarted */

    long long ref1 = monitor(rt, "w", "t");
    assert_int_equal(tu_call(rt, "t", "[\"stop\", [\"boom\", 1]]", TU_WAIT_MS, NULL), 0);
    TU_WAIT_UNTIL(log_len(rt, "w") == 1, TU_WAIT_MS);
    tu_wait_running(rt, "t", 1);
    /* The restart is a new incarnation: its crash reaches no one. A stop of the next one,
     * watched by a second monitor, proves the moment has passed. */
    assert_int_equal(tu_call(rt, "t", "[\"stop\", \"again\"]", TU_WAIT_MS, NULL), 0);
    tu_wait_running(rt, "t", 2);
    long long ref2 = monitor(rt, "w", "t");
    assert_true(ref2 != ref1);
    assert_int_equal(gs_stop(rt, "t", tu_json("[\"shutdown\", \"bye\"]"), TU_WAIT_MS), 0);
    TU_WAIT_UNTIL(log_len(rt, "w") == 2, TU_WAIT_MS);

    json_t *log = log_of(rt, "w");
    expect_down(json_array_get(log, 0), ref1, "t", "[\"boom\", 1]");
    expect_down(json_array_get(log, 1), ref2, "t", "[\"shutdown\", \"bye\"]");
    json_decref(log);
}

static void test_down_on_normal_exit(void **state)
{
    gs_runtime_t *rt = *state;
    gs_start_options_t o = tu_start_options(GS_TRANSIENT, 0);
    tu_start(rt, "w", &sysprobe, NULL, NULL);
    tu_start(rt, "t", &sysprobe, NULL, &o);
    long long ref = monitor(rt, "w", "t");
    tu_call_expect(rt, "t", "[\"stop\", \"normal\"]", "\"bye\"");
    TU_WAIT_UNTIL(log_len(rt, "w") == 1, TU_WAIT_MS);
    json_t *log = log_of(rt, "w");
    expect_down(json_array_get(log, 0), ref, "t", "\"normal\"");
    json_decref(log);
}

static void test_no_such_server_at_once(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "w", &sysprobe, NULL, NULL);
    long long ref = monitor(rt, "w", "nobody");
    TU_WAIT_UNTIL(log_len(rt, "w") == 1, TU_WAIT_MS);
    json_t *log = log_of(rt, "w");
    expect_down(json_array_get(log, 0), ref, "nobody", "\"no_such_server\"");
    json_decref(log);
}

static void test_demonitor(void **state)
{
    gs_runtime_t *rt = *state;
    char msg[128];
    tu_start(rt, "w", &sysprobe, NULL, NULL);
    tu_start(rt, "t", &sysprobe, NULL, NULL);
    long long ref = monitor(rt, "w", "t");
    snprintf(msg, sizeof(msg), "[\"demonitor\", %lld]", ref);
    tu_call_expect(rt, "w", msg, "\"ok\"");
    tu_call_expect(rt, "w", msg, "\"no_such_monitor\"");
    /* Someone else's monitor cannot be removed. */
    tu_start(rt, "other", &sysprobe, NULL, NULL);
    long long theirs = monitor(rt, "other", "t");
    snprintf(msg, sizeof(msg), "[\"demonitor\", %lld]", theirs);
    tu_call_expect(rt, "w", msg, "\"no_such_monitor\"");

    /* gs_stop returns after the death, so a DOWN would be queued before the next one. */
    assert_int_equal(gs_stop(rt, "t", NULL, TU_WAIT_MS), 0);
    long long marker = monitor(rt, "w", "nobody");
    TU_WAIT_UNTIL(log_len(rt, "w") == 1, TU_WAIT_MS);
    json_t *log = log_of(rt, "w");
    expect_down(json_array_get(log, 0), marker, "nobody", "\"no_such_server\"");
    json_decref(log);
    TU_WAIT_UNTIL(log_len(rt, "other") == 1, TU_WAIT_MS); /* theirs fired */
}

static void test_monitors_of_a_dead_watcher_are_dropped(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "w", &sysprobe, NULL, NULL);
    tu_start(rt, "t", &sysprobe, NULL, NULL);
    tu_start(rt, "w2", &sysprobe, NULL, NULL);
    monitor(rt, "w", "t");
    long long ref2 = monitor(rt, "w2", "t");
    /* The watcher crashes and restarts: its monitor went with the old incarnation. */
    assert_int_equal(tu_call(rt, "w", "[\"stop\", \"crash\"]", TU_WAIT_MS, NULL), 0);
    tu_wait_running(rt, "w", 1);
    assert_int_equal(gs_stop(rt, "t", tu_json("\"done\""), TU_WAIT_MS), 0);
    TU_WAIT_UNTIL(log_len(rt, "w2") == 1, TU_WAIT_MS);
    json_t *log = log_of(rt, "w2");
    expect_down(json_array_get(log, 0), ref2, "t", "\"done\"");
    json_decref(log);
    assert_int_equal(log_len(rt, "w"), 0);
}

/* ---------------------------------------------------------------------------------------- */
/* Stopping                                                                                   */
/* ---------------------------------------------------------------------------------------- */

static void test_stop_reason_reaches_terminate_callers_and_monitors(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "w", &sysprobe, NULL, NULL);
    tu_start(rt, "t", &sysprobe, NULL, NULL);
    long long ref = monitor(rt, "w", "t");
    tu_reply_t held;
    tu_reply_init(&held);
    assert_int_equal(gs_call_async(rt, "t", tu_json("\"hold\""), TU_WAIT_MS, tu_reply_cb, &held),
                     0);
    TU_WAIT_UNTIL(tu_status_int(rt, "t", "held_calls") == 1, TU_WAIT_MS);

    gs_stop_options_t o;
    gs_stop_options_init(&o);
    assert_int_equal(o.timeout_ms, GS_INFINITY);
    assert_int_equal(gs_stop_opts(rt, "t", tu_json("{\"why\": \"maintenance\"}"), &o), 0);
    assert_null(gs_server_status(rt, "t"));

    pthread_mutex_lock(&terminated_mu);
    assert_json_eq(terminated, "[{\"why\": \"maintenance\"}]");
    pthread_mutex_unlock(&terminated_mu);
    assert_true(tu_reply_wait(&held, TU_WAIT_MS));
    assert_int_equal(held.status, GS_ESTOPPED);
    assert_json_eq(held.result, "{\"why\": \"maintenance\"}");
    tu_reply_close(&held);
    TU_WAIT_UNTIL(log_len(rt, "w") == 1, TU_WAIT_MS);
    json_t *log = log_of(rt, "w");
    expect_down(json_array_get(log, 0), ref, "t", "{\"why\": \"maintenance\"}");
    json_decref(log);
}

static void test_stop_timeout_kills(void **state)
{
    gs_runtime_t *rt = *state;
    tu_events_subscribe(rt);
    tu_start(rt, "w", &sysprobe, NULL, NULL);
    tu_start(rt, "t", &sysprobe, NULL, NULL); /* permanent, yet not restarted */
    long long ref = monitor(rt, "w", "t");
    assert_int_equal(tu_cast(rt, "t", "[\"sleep\", 1000]"), 0);
    tu_reply_t queued;
    tu_reply_init(&queued);
    assert_int_equal(gs_call_async(rt, "t", tu_json("\"n\""), TU_WAIT_MS, tu_reply_cb, &queued), 0);

    gs_stop_options_t o = {.timeout_ms = 50};
    int64_t t0 = tu_now_ms();
    assert_int_equal(gs_stop_opts(rt, "t", tu_json("\"polite\""), &o), GS_ETIMEOUT);
    assert_true(tu_now_ms() - t0 < 1000);    /* answered at its timeout, not after the handler */
    assert_int_equal(terminated_count(), 0); /* the handler still runs */

    /* Killed once the slow handler returned: callers and monitors see "killed", and
     * terminate runs only to release the state, with "killed" (not the stop's reason). */
    TU_WAIT_UNTIL(gone(rt, "t"), TU_WAIT_MS);
    assert_true(tu_reply_wait(&queued, TU_WAIT_MS));
    assert_int_equal(queued.status, GS_ESTOPPED);
    assert_json_eq(queued.result, "\"killed\"");
    tu_reply_close(&queued);
    TU_WAIT_UNTIL(log_len(rt, "w") == 1, TU_WAIT_MS);
    json_t *log = log_of(rt, "w");
    expect_down(json_array_get(log, 0), ref, "t", "\"killed\"");
    json_decref(log);
    pthread_mutex_lock(&terminated_mu);
    assert_json_eq(terminated, "[\"killed\"]");
    pthread_mutex_unlock(&terminated_mu);
    TU_WAIT_UNTIL(tu_events_count("t", "stopped") == 1, TU_WAIT_MS);
    assert_int_equal(tu_events_count("t", "restarted"), 0);
    tu_events_unsubscribe(rt);
    tu_events_reset();
}

static void test_stop_within_timeout_runs_terminate(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "t", &sysprobe, NULL, NULL);
    gs_stop_options_t o = {.timeout_ms = TU_WAIT_MS};
    assert_int_equal(gs_stop_opts(rt, "t", NULL, &o), 0);
    pthread_mutex_lock(&terminated_mu);
    assert_json_eq(terminated, "[\"normal\"]");
    pthread_mutex_unlock(&terminated_mu);
    gs_stop_options_t bad = {.timeout_ms = -2};
    assert_int_equal(gs_stop_opts(rt, "t", NULL, &bad), GS_EINVAL);
}

/* ---------------------------------------------------------------------------------------- */
/* :sys                                                                                       */
/* ---------------------------------------------------------------------------------------- */

static void test_suspend_queues_until_resume(void **state)
{
    gs_runtime_t *rt = *state;
    gs_start_options_t o = tu_start_options(GS_PERMANENT, 3);
    tu_start(rt, "t", &sysprobe, NULL, &o);
    assert_int_equal(gs_suspend(rt, "t", TU_WAIT_MS), 0);
    assert_true(tu_status_str_is(rt, "t", "status", "suspended"));

    assert_int_equal(tu_cast(rt, "t", "\"inc\""), 0);
    assert_int_equal(tu_cast(rt, "t", "\"inc\""), 0);
    /* A call waits in the mailbox, as in OTP, and may time out there. */
    json_t *r = NULL;
    assert_int_equal(tu_call(rt, "t", "\"n\"", 50, &r), GS_ETIMEOUT);
    assert_null(r);
    /* The mailbox limit still holds (two casts and the timed-out call). */
    assert_int_equal(tu_cast(rt, "t", "\"inc\""), GS_EOVERLOADED);
    assert_int_equal(tu_status_int(rt, "t", "mailbox_len"), 3);
    /* State reads still answer, and see nothing handled. */
    assert_int_equal(tu_state_int(rt, "t", "n"), 0);
    assert_int_equal(gs_suspend(rt, "t", TU_WAIT_MS), 0); /* twice is fine */

    assert_int_equal(gs_resume(rt, "t", TU_WAIT_MS), 0);
    TU_WAIT_UNTIL(tu_status_int(rt, "t", "mailbox_len") == 0, TU_WAIT_MS);
    tu_call_expect(rt, "t", "\"n\"", "2");
    assert_true(tu_status_str_is(rt, "t", "status", "running"));
    assert_int_equal(gs_resume(rt, "t", TU_WAIT_MS), 0); /* not suspended: fine */
    assert_int_equal(gs_suspend(rt, "nobody", TU_WAIT_MS), GS_ENOSERVER);
}

static void test_stop_of_a_suspended_server(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "t", &sysprobe, NULL, NULL);
    assert_int_equal(gs_suspend(rt, "t", TU_WAIT_MS), 0);
    tu_reply_t kept;
    tu_reply_init(&kept);
    assert_int_equal(gs_call_async(rt, "t", tu_json("\"n\""), TU_WAIT_MS, tu_reply_cb, &kept), 0);
    assert_int_equal(gs_stop(rt, "t", tu_json("\"bye\""), TU_WAIT_MS), 0);
    assert_true(tu_reply_wait(&kept, TU_WAIT_MS));
    assert_int_equal(kept.status, GS_ESTOPPED);
    tu_reply_close(&kept);
    pthread_mutex_lock(&terminated_mu);
    assert_json_eq(terminated, "[\"bye\"]");
    pthread_mutex_unlock(&terminated_mu);
}

static void test_shutdown_with_a_suspended_server(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "t", &sysprobe, NULL, NULL);
    assert_int_equal(gs_suspend(rt, "t", TU_WAIT_MS), 0);
    assert_int_equal(tu_cast(rt, "t", "\"inc\""), 0);
    tu_reply_t kept;
    tu_reply_init(&kept);
    assert_int_equal(gs_call_async(rt, "t", tu_json("\"n\""), GS_INFINITY, tu_reply_cb, &kept), 0);
    TU_WAIT_UNTIL(tu_status_int(rt, "t", "mailbox_len") == 2, TU_WAIT_MS);
    /* The shutdown's stop is a system message: terminate runs, and what it kept fails. */
    tu_destroy(state);
    assert_int_equal(tu_reply_runs(&kept), 1);
    assert_true(kept.status == GS_ESTOPPED || kept.status == GS_ESHUTDOWN);
    tu_reply_close(&kept);
    pthread_mutex_lock(&terminated_mu);
    assert_json_eq(terminated, "[\"shutdown\"]");
    pthread_mutex_unlock(&terminated_mu);
}

static void test_replace_state(void **state)
{
    gs_runtime_t *rt = *state;
    json_t *r = NULL;
    tu_start(rt, "t", &sysprobe, NULL, NULL);
    assert_int_equal(tu_cast(rt, "t", "\"inc\""), 0);
    assert_int_equal(gs_replace_state(rt, "t", tu_json("{\"n\": 41}"), TU_WAIT_MS, &r), 0);
    assert_json_eq(r, "{\"n\": 1, \"log\": []}"); /* the old state, after the cast */
    json_decref(r);
    tu_call_expect(rt, "t", "\"n\"", "41");

    assert_int_equal(gs_replace_state(rt, "t", tu_json("[1]"), TU_WAIT_MS, &r), GS_EREFUSED);
    assert_json_eq(r, "\"bad_state\"");
    json_decref(r);
    tu_call_expect(rt, "t", "\"n\"", "41");

    /* While suspended too, as :sys. */
    assert_int_equal(gs_suspend(rt, "t", TU_WAIT_MS), 0);
    assert_int_equal(gs_replace_state(rt, "t", tu_json("{\"n\": 5}"), TU_WAIT_MS, NULL), 0);
    assert_int_equal(gs_resume(rt, "t", TU_WAIT_MS), 0);
    tu_call_expect(rt, "t", "\"n\"", "5");

    tu_start(rt, "p", &plain, NULL, NULL);
    assert_int_equal(gs_replace_state(rt, "p", tu_json("{\"n\": 1}"), TU_WAIT_MS, &r), GS_ENOTSUP);
    assert_null(r);
    assert_int_equal(gs_replace_state(rt, "nobody", tu_json("{}"), TU_WAIT_MS, &r), GS_ENOSERVER);
    assert_int_equal(gs_replace_state(rt, "t", NULL, TU_WAIT_MS, &r), GS_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_down_on_crash_then_restart_is_not_watched),
        T(test_down_on_normal_exit),
        T(test_no_such_server_at_once),
        T(test_demonitor),
        T(test_monitors_of_a_dead_watcher_are_dropped),
        T(test_stop_reason_reaches_terminate_callers_and_monitors),
        T(test_stop_timeout_kills),
        T(test_stop_within_timeout_runs_terminate),
        T(test_suspend_queues_until_resume),
        T(test_stop_of_a_suspended_server),
        T(test_shutdown_with_a_suspended_server),
        T(test_replace_state),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
