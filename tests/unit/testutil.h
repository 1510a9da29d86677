/*
 * testutil.h: small helpers shared by the runtime's unit tests (tests/unit/test_*.c).
 *
 * Everything here is a static inline function or a macro over genserv.h, jansson, cmocka and
 * pthreads, so each test executable stays self-contained. The helpers follow three rules the
 * tests rely on:
 *   - waiting is polling with a deadline (TU_WAIT_UNTIL), never a fixed sleep that has to be
 *     "long enough"; the deadline (TU_WAIT_MS) is only reached when something hangs;
 *   - cmocka's assertions run on the test's own thread only: code that runs on a runtime
 *     thread (a callback, a handler) records what it saw, and the test asserts on it later;
 *   - every helper frees what it allocates, so a test that passes is also leak-free under
 *     ASan and valgrind.
 *
 * A "nothing happened" check (a cancelled timer did not fire, a stopped server was not
 * restarted) waits for a later fact that proves the moment has passed, e.g. a marker timer
 * due after the cancelled one has arrived, or the event that ends a server's exit path; a
 * bare sleep stays only where real time must pass for the behaviour itself, with a comment.
 *
 * API:
 *   tu_now_ms / tu_sleep_ms            monotonic clock, short sleeps (see above for the rule)
 *   TU_WAIT_UNTIL(cond, ms)            poll cond every millisecond; fail the test at the deadline
 *   tu_json / assert_json_eq           JSON from text; JSON equality that prints both sides
 *   tu_setup / tu_setup_builtins       cmocka fixtures: a fresh runtime with two schedulers
 *   tu_teardown / tu_destroy           (and the built-ins registered); destroy it, in the
 *   tu_test / tu_test_builtins         teardown or in the test itself; test entries using them
 *   tu_runtime_create                  a runtime with n schedulers (asserts success)
 *   tu_start / tu_start_options        gs_start with args as JSON text; start options
 *   tu_call / tu_call_expect / tu_cast / tu_send   messages given as JSON text
 *   tu_state / tu_state_int            gs_get_state (asserts success), one integer of it
 *   tu_reply_t                         an async-call collector: counts its callback's runs
 *   tu_status_int / tu_status_str_is   one field of gs_server_status
 *   tu_wait_running                    wait until a server runs with a given restart count
 *   tu_events_*                        a subscription that logs every event, for order checks
 *                                      and for waiting on the end of an exit path
 *   tu_stats                           gs_runtime_stats in one expression
 */
#ifndef GS_TESTUTIL_H
#define GS_TESTUTIL_H

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <genserv/builtins.h>
#include <genserv/genserv.h>

/* How long a test waits for something that should happen much sooner: only a hang hits it. */
#define TU_WAIT_MS 10000

static inline int64_t tu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void tu_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* Poll cond (an expression) every millisecond until it holds; fail the test after ms. */
#define TU_WAIT_UNTIL(cond, ms)                                                                    \
    do {                                                                                           \
        int64_t tu_deadline_ = tu_now_ms() + (ms);                                                 \
        while (!(cond) && tu_now_ms() < tu_deadline_)                                              \
            tu_sleep_ms(1);                                                                        \
        if (!(cond)) {                                                                             \
            print_error("timed out after %d ms waiting for: %s\n", (int)(ms), #cond);              \
            _fail(__FILE__, __LINE__);                                                             \
        }                                                                                          \
    } while (0)

/* Poll pred(arg) until it is true or ms pass; returns the last value of pred. */
static inline bool tu_wait_until(bool (*pred)(void *), void *arg, int ms)
{
    int64_t deadline = tu_now_ms() + ms;
    while (!pred(arg)) {
        if (tu_now_ms() >= deadline)
            return pred(arg);
        tu_sleep_ms(1);
    }
    return true;
}

/* ---------------------------------------------------------------------------------------- */
/* JSON                                                                                       */
/* ---------------------------------------------------------------------------------------- */

/* JSON from text written in a test (new reference); bad text fails the test. */
static inline json_t *tu_json(const char *text)
{
    json_error_t error;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &error);
    if (v == NULL) {
        print_error("bad JSON in test: %s (%s)\n", text, error.text);
        _fail(__FILE__, __LINE__);
    }
    return v;
}

/* v as text into buf (cut if too long), "NULL" for NULL. */
static inline const char *tu_dump(const json_t *v, char *buf, size_t size)
{
    if (v == NULL) {
        snprintf(buf, size, "NULL");
        return buf;
    }
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_SORT_KEYS);
    snprintf(buf, size, "%s", s != NULL ? s : "(unprintable)");
    free(s);
    return buf;
}

static inline void tu_assert_json_eq(const json_t *got, const char *want_text, const char *file,
                                     int line)
{
    json_t *want = tu_json(want_text);
    bool equal = got != NULL && json_equal((json_t *)got, want);
    json_decref(want);
    if (!equal) {
        char buf[1024];
        print_error("JSON differs:\n   got: %s\n  want: %s\n", tu_dump(got, buf, sizeof(buf)),
                    want_text);
        _fail(file, line);
    }
}

/* Assert that got (borrowed, may be NULL) equals the JSON text want; prints both if not. */
#define assert_json_eq(got, want_text) tu_assert_json_eq((got), (want_text), __FILE__, __LINE__)

/* ---------------------------------------------------------------------------------------- */
/* Runtime                                                                                    */
/* ---------------------------------------------------------------------------------------- */

static inline gs_runtime_t *tu_runtime_create(unsigned schedulers, size_t mailbox_limit)
{
    gs_runtime_options_t opts;
    gs_runtime_options_init(&opts);
    opts.schedulers = schedulers;
    opts.mailbox_limit = mailbox_limit;
    gs_runtime_t *rt = NULL;
    assert_int_equal(gs_runtime_create(&opts, &rt), 0);
    assert_non_null(rt);
    return rt;
}

/* ---------------------------------------------------------------------------------------- */
/* Events                                                                                     */
/* ---------------------------------------------------------------------------------------- */

/*
 * One process-wide event log, so that the fixture can end a subscription a failed test left
 * behind before it destroys the runtime (the callback must never outlive what it writes to).
 * Each entry is [type, server, behaviour, reason|null], in the order the callbacks ran.
 */
typedef struct tu_events_s {
    pthread_mutex_t mu;
    json_t *log;
    gs_subscription_t *sub;
} tu_events_t;

static inline tu_events_t *tu_events(void)
{
    static tu_events_t e = {.mu = PTHREAD_MUTEX_INITIALIZER};
    return &e;
}

/* A gs_event_cb: appends the event to tu_events()'s log (any thread). */
static inline void tu_events_cb(const gs_event_t *ev, void *arg)
{
    tu_events_t *e = arg;
    json_t *entry = json_pack("[s s s o?]", gs_event_name(ev->type), ev->server,
                              ev->behaviour != NULL ? ev->behaviour : "",
                              ev->reason != NULL ? json_deep_copy(ev->reason) : NULL);
    pthread_mutex_lock(&e->mu);
    if (e->log != NULL)
        json_array_append(e->log, entry);
    pthread_mutex_unlock(&e->mu);
    json_decref(entry);
}

/* Start logging rt's events into an empty log; asserts success. */
static inline void tu_events_subscribe(gs_runtime_t *rt)
{
    tu_events_t *e = tu_events();
    pthread_mutex_lock(&e->mu);
    json_decref(e->log);
    e->log = json_array();
    pthread_mutex_unlock(&e->mu);
    assert_null(e->sub);
    assert_int_equal(gs_subscribe(rt, tu_events_cb, e, &e->sub), 0);
    assert_non_null(e->sub);
}

/* End the subscription (the log stays readable); when this returns no callback runs. */
static inline void tu_events_unsubscribe(gs_runtime_t *rt)
{
    tu_events_t *e = tu_events();
    if (e->sub != NULL)
        gs_unsubscribe(rt, e->sub);
    e->sub = NULL;
}

/* Free the log; the subscription, if any, must be gone (unsubscribed or its runtime
 * destroyed, which frees it). */
static inline void tu_events_reset(void)
{
    tu_events_t *e = tu_events();
    pthread_mutex_lock(&e->mu);
    json_decref(e->log);
    e->log = NULL;
    e->sub = NULL;
    pthread_mutex_unlock(&e->mu);
}

/* How many events of server (any when NULL) and type (any when NULL) were logged. */
static inline size_t tu_events_count(const char *server, const char *type)
{
    tu_events_t *e = tu_events();
    size_t n = 0, i;
    json_t *entry;
    pthread_mutex_lock(&e->mu);
    json_array_foreach(e->log, i, entry)
    {
        if ((server == NULL || strcmp(json_string_value(json_array_get(entry, 1)), server) == 0) &&
            (type == NULL || strcmp(json_string_value(json_array_get(entry, 0)), type) == 0))
            n++;
    }
    pthread_mutex_unlock(&e->mu);
    return n;
}

/* A copy of the whole log (new reference). */
static inline json_t *tu_events_log(void)
{
    tu_events_t *e = tu_events();
    pthread_mutex_lock(&e->mu);
    json_t *copy = json_deep_copy(e->log != NULL ? e->log : json_array());
    pthread_mutex_unlock(&e->mu);
    return copy;
}

/* The lifecycle events of server (state_changed left out) as [[type, reason]...] (new). */
static inline json_t *tu_events_lifecycle(const char *server)
{
    json_t *log = tu_events_log();
    json_t *out = json_array();
    size_t i;
    json_t *entry;
    json_array_foreach(log, i, entry)
    {
        const char *type = json_string_value(json_array_get(entry, 0));
        if (strcmp(json_string_value(json_array_get(entry, 1)), server) != 0 ||
            strcmp(type, "state_changed") == 0)
            continue;
        json_array_append_new(out, json_pack("[sO]", type, json_array_get(entry, 3)));
    }
    json_decref(log);
    return out;
}

/* ---------------------------------------------------------------------------------------- */
/* Fixtures                                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* cmocka setup: a fresh runtime with two schedulers in *state. */
static inline int tu_setup(void **state)
{
    *state = tu_runtime_create(2, 0);
    return 0;
}

/* cmocka setup for a test that needs one scheduler thread to run every server (fairness). */
static inline int tu_setup_one_scheduler(void **state)
{
    *state = tu_runtime_create(1, 0);
    return 0;
}

/* cmocka setup: two schedulers and the built-in behaviours registered (gs_behaviour_find). */
static inline int tu_setup_builtins(void **state)
{
    gs_runtime_t *rt = tu_runtime_create(2, 0);
    *state = rt;
    return gs_builtins_register(rt) == 0 ? 0 : -1;
}

/* Destroy the test's runtime now (to assert on what destroy settled); the teardown then
 * has nothing left to do. */
static inline void tu_destroy(void **state)
{
    if (*state != NULL) {
        tu_events_unsubscribe(*state);
        gs_runtime_destroy(*state);
    }
    *state = NULL;
}

/* cmocka teardown: destroy the runtime unless the test did, and forget the event log. */
static inline int tu_teardown(void **state)
{
    tu_destroy(state);
    tu_events_reset();
    return 0;
}

/* A cmocka test entry with the fixtures above: tu_test(test_x), tu_test_builtins(test_x). */
#define tu_test(f)          cmocka_unit_test_setup_teardown(f, tu_setup, tu_teardown)
#define tu_test_builtins(f) cmocka_unit_test_setup_teardown(f, tu_setup_builtins, tu_teardown)

/* ---------------------------------------------------------------------------------------- */
/* Servers and messages                                                                       */
/* ---------------------------------------------------------------------------------------- */

static inline gs_runtime_stats_t tu_stats(gs_runtime_t *rt)
{
    gs_runtime_stats_t st;
    memset(&st, 0, sizeof(st));
    gs_runtime_stats(rt, &st);
    return st;
}

/* Start name with behaviour b and args given as JSON text (or NULL); asserts success. */
static inline void tu_start(gs_runtime_t *rt, const char *name, const gs_behaviour_t *b,
                            const char *args, const gs_start_options_t *opts)
{
    json_t *a = args != NULL ? tu_json(args) : NULL;
    json_t *reason = NULL;
    int rc = gs_start(rt, name, b, a, opts, &reason);
    json_decref(a);
    if (rc != 0) {
        char buf[512];
        print_error("gs_start(%s) = %s, reason %s\n", name, gs_err_name(rc),
                    tu_dump(reason, buf, sizeof(buf)));
        json_decref(reason);
        _fail(__FILE__, __LINE__);
    }
}

/* Start name with the registered behaviour called behaviour (e.g. a built-in); asserts success. */
static inline void tu_start_named(gs_runtime_t *rt, const char *name, const char *behaviour,
                                  const char *args)
{
    const gs_behaviour_t *b = gs_behaviour_find(rt, behaviour);
    if (b == NULL) {
        print_error("no behaviour %s is registered\n", behaviour);
        _fail(__FILE__, __LINE__);
    }
    tu_start(rt, name, b, args, NULL);
}

/* Start options with the given restart type and mailbox limit (0: the runtime's default). */
static inline gs_start_options_t tu_start_options(gs_restart_t restart, size_t mailbox_limit)
{
    gs_start_options_t opts;
    gs_start_options_init(&opts);
    opts.restart = restart;
    opts.mailbox_limit = mailbox_limit;
    return opts;
}

/* Blocking call with msg as JSON text. Returns the status; *out gets the result (new). */
static inline int tu_call(gs_runtime_t *rt, const char *name, const char *msg, int timeout_ms,
                          json_t **out)
{
    json_t *result = NULL;
    int rc = gs_call(rt, name, tu_json(msg), timeout_ms, &result);
    if (out != NULL)
        *out = result;
    else
        json_decref(result);
    return rc;
}

/* A call that must succeed and reply exactly want (JSON text). */
#define tu_call_expect(rt, name, msg, want)                                                        \
    do {                                                                                           \
        json_t *tu_r_ = NULL;                                                                      \
        int tu_rc_ = tu_call((rt), (name), (msg), TU_WAIT_MS, &tu_r_);                             \
        if (tu_rc_ != 0) {                                                                         \
            print_error("call %s %s: %s\n", (name), (msg), gs_err_name(tu_rc_));                   \
            json_decref(tu_r_);                                                                    \
            _fail(__FILE__, __LINE__);                                                             \
        }                                                                                          \
        tu_assert_json_eq(tu_r_, (want), __FILE__, __LINE__);                                      \
        json_decref(tu_r_);                                                                        \
    } while (0)

/* A call that must succeed with an integer reply; returns it. */
static inline long long tu_call_int(gs_runtime_t *rt, const char *name, const char *msg)
{
    json_t *r = NULL;
    int rc = tu_call(rt, name, msg, TU_WAIT_MS, &r);
    if (rc != 0 || !json_is_integer(r)) {
        char buf[512];
        print_error("call %s %s: %s, reply %s, want an integer\n", name, msg, gs_err_name(rc),
                    tu_dump(r, buf, sizeof(buf)));
        json_decref(r);
        _fail(__FILE__, __LINE__);
    }
    long long n = (long long)json_integer_value(r);
    json_decref(r);
    return n;
}

static inline int tu_cast(gs_runtime_t *rt, const char *name, const char *msg)
{
    return gs_cast(rt, name, tu_json(msg));
}

static inline int tu_send(gs_runtime_t *rt, const char *name, const char *msg)
{
    return gs_send(rt, name, tu_json(msg));
}

/* The server's state through gs_get_state (new reference); fails the test on an error. */
static inline json_t *tu_state(gs_runtime_t *rt, const char *name)
{
    json_t *st = NULL;
    int rc = gs_get_state(rt, name, TU_WAIT_MS, &st);
    if (rc != 0 || st == NULL) {
        print_error("gs_get_state(%s) = %s\n", name, gs_err_name(rc));
        json_decref(st);
        _fail(__FILE__, __LINE__);
    }
    return st;
}

/* The integer state[key] of a server whose state is an object; fails the test otherwise. */
static inline long long tu_state_int(gs_runtime_t *rt, const char *name, const char *key)
{
    json_t *st = tu_state(rt, name);
    json_t *v = json_object_get(st, key);
    if (!json_is_integer(v)) {
        char buf[512];
        print_error("the state of %s has no integer %s: %s\n", name, key,
                    tu_dump(st, buf, sizeof(buf)));
        json_decref(st);
        _fail(__FILE__, __LINE__);
    }
    long long n = (long long)json_integer_value(v);
    json_decref(st);
    return n;
}

/* One integer field of gs_server_status, or -1 when the server or the field is missing. */
static inline long long tu_status_int(gs_runtime_t *rt, const char *name, const char *field)
{
    json_t *st = gs_server_status(rt, name);
    json_t *v = st != NULL ? json_object_get(st, field) : NULL;
    long long n = json_is_integer(v) ? (long long)json_integer_value(v) : -1;
    json_decref(st);
    return n;
}

/* Whether a string field of gs_server_status equals want (false when missing). */
static inline bool tu_status_str_is(gs_runtime_t *rt, const char *name, const char *field,
                                    const char *want)
{
    json_t *st = gs_server_status(rt, name);
    json_t *v = st != NULL ? json_object_get(st, field) : NULL;
    bool is = json_is_string(v) && strcmp(json_string_value(v), want) == 0;
    json_decref(st);
    return is;
}

/* Wait until name is running with the given restart count (a restart done, or none yet). */
#define tu_wait_running(rt, name, restarts)                                                        \
    TU_WAIT_UNTIL(tu_status_int((rt), (name), "restarts") == (restarts) &&                         \
                      tu_status_str_is((rt), (name), "status", "running"),                         \
                  TU_WAIT_MS)

/* One field of gs_server_status as a new reference (NULL when missing). */
static inline json_t *tu_status_field(gs_runtime_t *rt, const char *name, const char *field)
{
    json_t *st = gs_server_status(rt, name);
    json_t *v = st != NULL ? json_incref(json_object_get(st, field)) : NULL;
    json_decref(st);
    return v;
}

/* ---------------------------------------------------------------------------------------- */
/* Asynchronous replies                                                                       */
/* ---------------------------------------------------------------------------------------- */

/*
 * Collects the completion of one gs_call_async / gs_get_state_async / gs_stop_async. The
 * callback may run on any thread; `runs` counts how often it ran so that a test can check
 * "exactly once" after everything settled (e.g. after gs_runtime_destroy joined the threads).
 */
typedef struct tu_reply_s {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int runs;
    int status;
    json_t *result;     /* owned; the last result */
    int64_t done_at_ms; /* tu_now_ms() when the callback last ran */
} tu_reply_t;

static inline void tu_reply_init(tu_reply_t *r)
{
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->runs = 0;
    r->status = 1; /* no status yet: neither 0 nor a GS_E* code */
    r->result = NULL;
    r->done_at_ms = 0;
}

static inline void tu_reply_close(tu_reply_t *r)
{
    json_decref(r->result);
    r->result = NULL;
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
}

/* A gs_reply_cb; arg is a tu_reply_t. */
static inline void tu_reply_cb(int status, json_t *result, void *arg)
{
    tu_reply_t *r = arg;
    pthread_mutex_lock(&r->mu);
    r->runs++;
    r->status = status;
    json_decref(r->result);
    r->result = result;
    r->done_at_ms = tu_now_ms();
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* A gs_done_cb; arg is a tu_reply_t. */
static inline void tu_done_cb(int status, void *arg)
{
    tu_reply_cb(status, NULL, arg);
}

static inline int tu_reply_runs(tu_reply_t *r)
{
    pthread_mutex_lock(&r->mu);
    int n = r->runs;
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* Wait until the callback ran at least once; returns whether it did within ms. */
static inline bool tu_reply_wait(tu_reply_t *r, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&r->mu);
    while (r->runs == 0) {
        if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) != 0)
            break;
    }
    bool ran = r->runs > 0;
    pthread_mutex_unlock(&r->mu);
    return ran;
}

/* Wait for the callback and assert it ran exactly once so far with the given status. */
#define tu_reply_expect(r, want_status)                                                            \
    do {                                                                                           \
        if (!tu_reply_wait((r), TU_WAIT_MS)) {                                                     \
            print_error("the completion callback never ran\n");                                    \
            _fail(__FILE__, __LINE__);                                                             \
        }                                                                                          \
        pthread_mutex_lock(&(r)->mu);                                                              \
        int tu_runs_ = (r)->runs, tu_status_ = (r)->status;                                        \
        pthread_mutex_unlock(&(r)->mu);                                                            \
        assert_int_equal(tu_runs_, 1);                                                             \
        if (tu_status_ != (want_status)) {                                                         \
            print_error("completion status %s (%d), want %s (%d)\n", gs_err_name(tu_status_),      \
                        tu_status_, gs_err_name(want_status), (int)(want_status));                 \
            _fail(__FILE__, __LINE__);                                                             \
        }                                                                                          \
    } while (0)

#endif /* GS_TESTUTIL_H */
