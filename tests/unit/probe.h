/*
 * probe.h: "probe", the test behaviour the runtime's unit tests drive, written against
 * genserv.h only (like a user's behaviour would be), plus "bare", a behaviour with nothing but
 * init, for OTP's defaults.
 *
 * A probe does what a test tells it: echo, hold a call for a deferred reply and release it
 * later, crash with a given reason, call or send_request another server from inside a
 * handler, block its scheduler thread until the test opens a gate. It logs every cast and
 * info message it gets, and its format_state shows that log, so a test sees through
 * gs_get_state what the server saw, in order. Process-wide counters (inits, terminates with
 * their reasons) live in probe_globals(), reset by probe_reset() at the start of each test
 * (probe_setup / probe_teardown are the cmocka fixtures that do it around tu_setup).
 *
 * Calls (a string, or an array whose first element is the command):
 *   "ping" -> "pong"                      ["echo", x] -> x
 *   "hold" -> no reply until released     "held_froms" -> [from ids]
 *   ["release", v] -> [gs_reply rc per held call]   ["release_twice", v] -> [[rc, rc]...]
 *   ["reply_to", from_id, v] -> rc        ["crash", reason] -> stop(reason), no reply
 *   ["stop_reply", reason, reply]         "bad_reply" -> GS_REPLY(NULL), a bad return value
 *   ["call", name, msg, timeout] -> [rc name, elapsed ms] of a blocking gs_call
 *   ["call_async", name, msg] -> rc name  ["send_request", name, msg, timeout, tag] -> rc name
 *   ["stop", name] -> rc name of a blocking gs_stop    "self" -> [gs_self's name, self == it]
 *   ["sleep", ms] -> "slept"              "state" -> the formatted state
 * Casts: ["crash", reason] stops; ["sleep", ms]; "block" waits for probe_open_gate(); anything
 * else is logged. Infos: ["crash", reason] stops; anything else is logged.
 * Args (an object, all optional): "fail_init": reason (init fails; JSON null: no reason),
 * "init_cast": msg (init casts msg to itself), "terminate_sleep_ms": n, "log": false (count
 * casts and infos without keeping them).
 */
#ifndef GS_TEST_PROBE_H
#define GS_TEST_PROBE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <genserv/genserv.h>

#include "testutil.h"

typedef struct probe_globals_s {
    pthread_mutex_t mu;
    int inits;
    int terminates;
    json_t *terminated; /* [[name, reason, ncasts]...] in the order terminate ran */
    /* Gate for "block": relaxed would do for the flag itself, but the test reads the log
     * after seeing `blocked`, so both sides use seq_cst and keep the reasoning trivial. */
    atomic_int blocked;
    atomic_int gate_open;
} probe_globals_t;

static inline probe_globals_t *probe_globals(void)
{
    static probe_globals_t g = {.mu = PTHREAD_MUTEX_INITIALIZER};
    return &g;
}

/* Clear the process-wide counters; call at the start of a test, with no runtime running. */
static inline void probe_reset(void)
{
    probe_globals_t *g = probe_globals();
    pthread_mutex_lock(&g->mu);
    g->inits = 0;
    g->terminates = 0;
    json_decref(g->terminated);
    g->terminated = json_array();
    pthread_mutex_unlock(&g->mu);
    atomic_store(&g->blocked, 0);
    atomic_store(&g->gate_open, 0);
}

/* Free what probe_reset allocated; call at the end of a test. */
static inline void probe_cleanup(void)
{
    probe_globals_t *g = probe_globals();
    pthread_mutex_lock(&g->mu);
    json_decref(g->terminated);
    g->terminated = NULL;
    pthread_mutex_unlock(&g->mu);
}

/* cmocka fixtures for a test that drives probes: tu_setup / tu_teardown around clean
 * process-wide counters. */
static inline int probe_setup(void **state)
{
    probe_reset();
    return tu_setup(state);
}

static inline int probe_teardown(void **state)
{
    tu_teardown(state);
    probe_cleanup();
    return 0;
}

/* A cmocka test entry with the probe fixtures. */
#define probe_test(f) cmocka_unit_test_setup_teardown(f, probe_setup, probe_teardown)

static inline int probe_inits(void)
{
    probe_globals_t *g = probe_globals();
    pthread_mutex_lock(&g->mu);
    int n = g->inits;
    pthread_mutex_unlock(&g->mu);
    return n;
}

static inline int probe_terminates(void)
{
    probe_globals_t *g = probe_globals();
    pthread_mutex_lock(&g->mu);
    int n = g->terminates;
    pthread_mutex_unlock(&g->mu);
    return n;
}

/* A deep copy of the terminate log [[name, reason, ncasts]...] (new reference). */
static inline json_t *probe_terminated(void)
{
    probe_globals_t *g = probe_globals();
    pthread_mutex_lock(&g->mu);
    json_t *copy = json_deep_copy(g->terminated);
    pthread_mutex_unlock(&g->mu);
    return copy;
}

static inline void probe_open_gate(void)
{
    atomic_store(&probe_globals()->gate_open, 1);
}

static inline bool probe_is_blocked(void)
{
    return atomic_load(&probe_globals()->blocked) != 0;
}

typedef struct probe_s {
    json_t *args;
    json_t *casts; /* logged casts, in order */
    json_t *infos; /* logged infos, in order */
    long long ncasts;
    long long ninfos;
    long long calls;
    bool log;
    gs_from_t *held;
    size_t nheld;
    size_t capheld;
} probe_t;

static inline void probe_sleep_ms(long long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static inline const char *probe_rc_name(int rc)
{
    return rc == 0 ? "ok" : gs_err_name(rc);
}

/* The command of a message: the string itself, or the first element of an array. */
static inline const char *probe_cmd(json_t *msg)
{
    if (json_is_string(msg))
        return json_string_value(msg);
    if (json_is_array(msg) && json_is_string(json_array_get(msg, 0)))
        return json_string_value(json_array_get(msg, 0));
    return "";
}

/* Element i of an array message as a new reference (JSON null when missing). */
static inline json_t *probe_arg(json_t *msg, size_t i)
{
    json_t *v = json_is_array(msg) ? json_array_get(msg, i) : NULL;
    return v != NULL ? json_deep_copy(v) : json_null();
}

static inline int probe_init(gs_server_t *self, json_t *args, void **state, json_t **reason)
{
    json_t *fail = json_is_object(args) ? json_object_get(args, "fail_init") : NULL;
    if (fail != NULL) {
        *reason = json_is_null(fail) ? NULL : json_deep_copy(fail);
        return 1;
    }
    probe_t *p = calloc(1, sizeof(*p));
    p->args = json_deep_copy(args);
    p->casts = json_array();
    p->infos = json_array();
    p->log = !(json_is_object(args) && json_is_false(json_object_get(args, "log")));
    json_t *init_cast = json_is_object(args) ? json_object_get(args, "init_cast") : NULL;
    if (init_cast != NULL)
        gs_cast(gs_server_runtime(self), gs_server_name(self), json_deep_copy(init_cast));
    probe_globals_t *g = probe_globals();
    pthread_mutex_lock(&g->mu);
    g->inits++;
    pthread_mutex_unlock(&g->mu);
    *state = p;
    return 0;
}

static inline json_t *probe_format_state(gs_server_t *self, void *state)
{
    (void)self;
    probe_t *p = state;
    return json_pack("{s:O, s:O, s:O, s:I, s:I, s:I, s:I}", "args", p->args, "casts", p->casts,
                     "infos", p->infos, "ncasts", (json_int_t)p->ncasts, "ninfos",
                     (json_int_t)p->ninfos, "calls", (json_int_t)p->calls, "held",
                     (json_int_t)p->nheld);
}

static inline void probe_noop_reply_cb(int status, json_t *result, void *arg)
{
    (void)status;
    (void)arg;
    json_decref(result);
}

static inline gs_result_t probe_handle_call(gs_server_t *self, void *state, json_t *msg,
                                            gs_from_t from)
{
    probe_t *p = state;
    gs_runtime_t *rt = gs_server_runtime(self);
    const char *cmd = probe_cmd(msg);
    p->calls++;
    if (strcmp(cmd, "ping") == 0)
        return GS_REPLY(json_string("pong"));
    if (strcmp(cmd, "echo") == 0)
        return GS_REPLY(probe_arg(msg, 1));
    if (strcmp(cmd, "hold") == 0) {
        if (p->nheld == p->capheld) {
            p->capheld = p->capheld ? 2 * p->capheld : 8;
            p->held = realloc(p->held, p->capheld * sizeof(*p->held));
        }
        p->held[p->nheld++] = from;
        return GS_NOREPLY;
    }
    if (strcmp(cmd, "held_froms") == 0) {
        json_t *ids = json_array();
        for (size_t i = 0; i < p->nheld; i++)
            json_array_append_new(ids, json_integer((json_int_t)p->held[i].id));
        return GS_REPLY(ids);
    }
    if (strcmp(cmd, "release") == 0 || strcmp(cmd, "release_twice") == 0) {
        bool twice = strcmp(cmd, "release_twice") == 0;
        json_t *rcs = json_array();
        for (size_t i = 0; i < p->nheld; i++) {
            int rc = gs_reply(p->held[i], probe_arg(msg, 1));
            if (twice) {
                int rc2 = gs_reply(p->held[i], probe_arg(msg, 1));
                json_array_append_new(rcs, json_pack("[ii]", rc, rc2));
            } else {
                json_array_append_new(rcs, json_integer(rc));
            }
        }
        p->nheld = 0;
        return GS_REPLY(rcs);
    }
    if (strcmp(cmd, "reply_to") == 0) {
        gs_from_t to = {.rt = rt, .id = (uint64_t)json_integer_value(json_array_get(msg, 1))};
        return GS_REPLY(json_integer(gs_reply(to, probe_arg(msg, 2))));
    }
    if (strcmp(cmd, "crash") == 0)
        return GS_STOP(probe_arg(msg, 1));
    if (strcmp(cmd, "stop_reply") == 0)
        return GS_STOP_REPLY(probe_arg(msg, 1), probe_arg(msg, 2));
    if (strcmp(cmd, "bad_reply") == 0)
        return GS_REPLY(NULL);
    if (strcmp(cmd, "call") == 0) {
        json_t *result = NULL;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int rc = gs_call(rt, json_string_value(json_array_get(msg, 1)), probe_arg(msg, 2),
                         (int)json_integer_value(json_array_get(msg, 3)), &result);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        json_decref(result);
        long long ms = (t1.tv_sec - t0.tv_sec) * 1000LL + (t1.tv_nsec - t0.tv_nsec) / 1000000;
        return GS_REPLY(json_pack("[sI]", probe_rc_name(rc), (json_int_t)ms));
    }
    if (strcmp(cmd, "call_async") == 0) {
        int rc = gs_call_async(rt, json_string_value(json_array_get(msg, 1)), probe_arg(msg, 2),
                               1000, probe_noop_reply_cb, NULL);
        return GS_REPLY(json_string(probe_rc_name(rc)));
    }
    if (strcmp(cmd, "send_request") == 0) {
        int rc =
            gs_send_request(self, json_string_value(json_array_get(msg, 1)), probe_arg(msg, 2),
                            (int)json_integer_value(json_array_get(msg, 3)), probe_arg(msg, 4));
        return GS_REPLY(json_string(probe_rc_name(rc)));
    }
    if (strcmp(cmd, "stop") == 0) {
        int rc = gs_stop(rt, json_string_value(json_array_get(msg, 1)), NULL, 1000);
        return GS_REPLY(json_string(probe_rc_name(rc)));
    }
    if (strcmp(cmd, "self") == 0) {
        gs_server_t *me = gs_self();
        return GS_REPLY(json_pack("[sb]", me != NULL ? gs_server_name(me) : "", me == self));
    }
    if (strcmp(cmd, "sleep") == 0) {
        probe_sleep_ms(json_integer_value(json_array_get(msg, 1)));
        return GS_REPLY(json_string("slept"));
    }
    if (strcmp(cmd, "state") == 0)
        return GS_REPLY(probe_format_state(self, state));
    return GS_REPLY(json_pack("[sO]", "unknown", msg));
}

static inline gs_result_t probe_handle_cast(gs_server_t *self, void *state, json_t *msg)
{
    (void)self;
    probe_t *p = state;
    const char *cmd = probe_cmd(msg);
    if (strcmp(cmd, "crash") == 0)
        return GS_STOP(probe_arg(msg, 1));
    if (strcmp(cmd, "sleep") == 0) {
        probe_sleep_ms(json_integer_value(json_array_get(msg, 1)));
        return GS_NOREPLY;
    }
    if (strcmp(cmd, "block") == 0) {
        /* Deliberately blocks this scheduler thread (tests run with >= 2 of them); gives up
         * after 20 s so that a broken test cannot hang the suite. */
        probe_globals_t *g = probe_globals();
        atomic_store(&g->blocked, 1);
        for (int i = 0; i < 20000 && !atomic_load(&g->gate_open); i++)
            probe_sleep_ms(1);
        atomic_store(&g->blocked, 0);
        return GS_NOREPLY;
    }
    p->ncasts++;
    if (p->log)
        json_array_append(p->casts, msg);
    return GS_NOREPLY;
}

static inline gs_result_t probe_handle_info(gs_server_t *self, void *state, json_t *msg)
{
    (void)self;
    probe_t *p = state;
    if (strcmp(probe_cmd(msg), "crash") == 0)
        return GS_STOP(probe_arg(msg, 1));
    p->ninfos++;
    if (p->log)
        json_array_append(p->infos, msg);
    return GS_NOREPLY;
}

static inline void probe_terminate(gs_server_t *self, json_t *reason, void *state)
{
    probe_t *p = state;
    probe_globals_t *g = probe_globals();
    pthread_mutex_lock(&g->mu);
    g->terminates++;
    if (g->terminated != NULL)
        json_array_append_new(g->terminated,
                              json_pack("[s o? I]", gs_server_name(self),
                                        reason != NULL ? json_deep_copy(reason) : NULL,
                                        (json_int_t)p->ncasts));
    pthread_mutex_unlock(&g->mu);
    json_t *slow = json_is_object(p->args) ? json_object_get(p->args, "terminate_sleep_ms") : NULL;
    if (json_is_integer(slow))
        probe_sleep_ms(json_integer_value(slow));
    json_decref(p->args);
    json_decref(p->casts);
    json_decref(p->infos);
    free(p->held);
    free(p);
}

static inline const gs_behaviour_t *probe_behaviour(void)
{
    static const gs_message_doc_t docs[] = {
        {"call", "\"ping\"", "Answers \"pong\"."},
        {"cast", "[\"log\", 1]", "Logs the message."},
        {NULL, NULL, NULL},
    };
    static const gs_behaviour_t b = {
        .name = "probe",
        .description = "A test behaviour that does what the test tells it.",
        .args_doc = "{}",
        .messages = docs,
        .init = probe_init,
        .handle_call = probe_handle_call,
        .handle_cast = probe_handle_cast,
        .handle_info = probe_handle_info,
        .terminate = probe_terminate,
        .format_state = probe_format_state,
    };
    return &b;
}

static inline int bare_init(gs_server_t *self, json_t *args, void **state, json_t **reason)
{
    (void)self;
    (void)args;
    (void)reason;
    *state = NULL;
    return 0;
}

/* Only init: calls and casts crash with bad_call/bad_cast, infos are ignored. */
static inline const gs_behaviour_t *bare_behaviour(void)
{
    static const gs_behaviour_t b = {
        .name = "bare",
        .description = "Nothing but init.",
        .init = bare_init,
    };
    return &b;
}

/* Fetch a probe's formatted state (new reference), failing the test on error. */
static inline json_t *probe_state(gs_runtime_t *rt, const char *name)
{
    json_t *st = NULL;
    int rc = gs_get_state(rt, name, 10000, &st);
    if (rc != 0) {
        json_decref(st);
        return NULL;
    }
    return st;
}

/* The number of logged infos of a probe (-1 if it cannot be asked). */
static inline long long probe_ninfos(gs_runtime_t *rt, const char *name)
{
    json_t *st = probe_state(rt, name);
    long long n = st != NULL ? (long long)json_integer_value(json_object_get(st, "ninfos")) : -1;
    json_decref(st);
    return n;
}

#endif /* GS_TEST_PROBE_H */
