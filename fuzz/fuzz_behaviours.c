/*
 * fuzz_behaviours.c: fuzz the init args and the messages of every built-in behaviour through
 * the public API (genserv.h), on one runtime shared by all inputs.
 *
 * Input format (docs/fuzzing.md): one JSON array
 *   [BEHAVIOUR, ARGS, MSG, MSG, ...]
 * BEHAVIOUR is an integer (an index into gs_builtin_behaviours, taken modulo their number,
 * negative ones too), a behaviour's name, or an object {"behaviour": one of those, "restart":
 * "permanent"|"transient"|"temporary", "mailbox_limit": n, "max_restarts": n, "max_seconds":
 * n} whose numbers are clamped to small ranges (a tiny mailbox makes calls and casts
 * overload); ARGS is any JSON (absent: null); each MSG is any JSON. Anything else (not JSON,
 * not an array, no behaviour) is skipped at once. Strings may hold NULs (\u0000): the runtime
 * and the built-ins take messages from embedders and plugins too, not only from the gateway,
 * which refuses them.
 *
 * A companion server "batcher" (reply_immediately, so it never holds a call across inputs)
 * runs for the whole process, so that a producer with its default target really pushes, and
 * gs_send_request's answers and the producer's reply path are exercised too.
 *
 * Each input:
 *   gs_start the behaviour under a fresh name with ARGS (an init failure ends the input);
 *   for each MSG: gs_call_async (20 ms timeout, so a deferred reply never holds the fuzzer),
 *     gs_cast and gs_send, each with its own copy (messages move, never share);
 *   gs_get_state and gs_server_status, as GET /servers/NAME does;
 *   gs_stop, then wait until every call's callback ran, the name is free and no server and
 *     no held call is left, so that nothing carries over to the next input.
 * Replies, reasons and states must be encodable as JSON (the gateway sends them). A broken
 * invariant, a callback run twice (ASan: use after free), a call never completed or a stop
 * that does not finish in time aborts.
 */
#include <genserv/builtins.h>
#include "fuzz.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CALL_TIMEOUT_MS 20
/* Far beyond what any input needs on an idle runtime: reaching it means a hang. */
#define STOP_TIMEOUT_MS  3000
#define DRAIN_TIMEOUT_MS 3000

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_behaviours: invariant broken at %s:%d: %s\n", __FILE__,          \
                    __LINE__, #cond);                                                              \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static gs_runtime_t *rt;
static size_t nbehaviours;
static uint64_t seq; /* the fuzzer's thread only */
/* Calls whose callback has not run yet. Release by the callback, acquire by the waiter: once
 * the waiter sees 0, every callback's frees happened before it goes on. */
static atomic_int pending;
/* Servers registered between inputs: the companion. */
static uint64_t baseline_servers;

#define COMPANION      "batcher"
#define COMPANION_ARGS "{\"reply_immediately\": true}"

/* One call in flight: owned by the runtime's callback, which frees it exactly once. */
typedef struct call_rec_s {
    uint64_t input; /* the input that made the call, for a debugger */
} call_rec_t;

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* v (borrowed) must be something the gateway can send: json_dumps succeeds. */
static void check_encodable(json_t *v)
{
    char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    CHECK(text != NULL);
    free(text);
}

/* The gs_reply_cb contract of genserv.h, on whichever thread completes the call. */
static void on_reply(int status, json_t *result, void *arg)
{
    call_rec_t *rec = arg;

    if (status == 0 || status == GS_ECRASHED || status == GS_ESTOPPED) {
        CHECK(result != NULL);
        check_encodable(result);
    } else {
        CHECK(result == NULL);
        CHECK(status == GS_ETIMEOUT || status == GS_ENOSERVER || status == GS_ESHUTDOWN ||
              status == GS_EOVERLOADED);
    }
    json_decref(result);
    free(rec); /* a second run of this callback is a double free */
    atomic_fetch_sub_explicit(&pending, 1, memory_order_release);
}

static void destroy_runtime(void)
{
    gs_runtime_destroy(rt);
    rt = NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    gs_runtime_options_t opts;

    (void)argc;
    (void)argv;
    gs_runtime_options_init(&opts);
    /* Two schedulers, like the 2-core machines it runs on: handlers, the caller-runs path and
     * the timer thread all race as they do in production. */
    opts.schedulers = 2;
    CHECK(gs_runtime_create(&opts, &rt) == 0);
    CHECK(gs_builtins_register(rt) == 0);
    while (gs_builtin_behaviours[nbehaviours] != NULL)
        nbehaviours++;
    json_t *args = json_loads(COMPANION_ARGS, 0, NULL);
    CHECK(gs_start(rt, COMPANION, &gs_builtin_batcher, args, NULL, NULL) == 0);
    json_decref(args);
    gs_runtime_stats_t st;
    gs_runtime_stats(rt, &st);
    baseline_servers = st.servers;
    /* Runs before LeakSanitizer's exit check (registered earlier, so it runs later). */
    atexit(destroy_runtime);
    return 0;
}

/* The integer v (borrowed) clamped to [min, max], or dflt when v is not an integer. */
static json_int_t clamp(json_t *v, json_int_t min, json_int_t max, json_int_t dflt)
{
    if (!json_is_integer(v))
        return dflt;
    json_int_t n = json_integer_value(v);
    return n < min ? min : n > max ? max : n;
}

/* The behaviour v (borrowed) names, and the start options it asks for in *o. */
static const gs_behaviour_t *pick_behaviour(json_t *v, gs_start_options_t *o)
{
    gs_start_options_init(o);
    if (json_is_object(v)) {
        json_t *restart = json_object_get(v, "restart");
        gs_restart_t r;

        if (json_is_string(restart) && gs_restart_parse(json_string_value(restart), &r) == 0)
            o->restart = r;
        o->mailbox_limit = (size_t)clamp(json_object_get(v, "mailbox_limit"), 1, 1000,
                                         (json_int_t)o->mailbox_limit);
        o->max_restarts =
            (unsigned)clamp(json_object_get(v, "max_restarts"), 0, 100, o->max_restarts);
        o->max_seconds = (unsigned)clamp(json_object_get(v, "max_seconds"), 1, 60, o->max_seconds);
        v = json_object_get(v, "behaviour");
    }
    if (json_is_integer(v)) {
        json_int_t n = (json_int_t)nbehaviours;
        json_int_t i = json_integer_value(v) % n;
        return gs_builtin_behaviours[i < 0 ? i + n : i];
    }
    if (json_is_string(v))
        return gs_behaviour_find(rt, json_string_value(v));
    return NULL;
}

static void call(const char *name, json_t *msg)
{
    call_rec_t *rec = malloc(sizeof(*rec));

    CHECK(rec != NULL);
    rec->input = seq;
    atomic_fetch_add_explicit(&pending, 1, memory_order_relaxed);
    int rc = gs_call_async(rt, name, json_deep_copy(msg), CALL_TIMEOUT_MS, on_reply, rec);
    if (rc < 0) {
        /* Refused up front: the callback will never run. */
        CHECK(rc == GS_ENOSERVER || rc == GS_EOVERLOADED);
        atomic_fetch_sub_explicit(&pending, 1, memory_order_relaxed);
        free(rec);
    }
}

static void deliver(const char *name, json_t *msg,
                    int (*fn)(gs_runtime_t *, const char *, json_t *))
{
    int rc = fn(rt, name, json_deep_copy(msg));
    CHECK(rc == 0 || rc == GS_ENOSERVER || rc == GS_EOVERLOADED);
}

/* What GET /servers/NAME reads: the status and the state. */
static void inspect(const char *name)
{
    json_t *state = NULL;
    json_t *status = gs_server_status(rt, name);

    if (status != NULL) {
        check_encodable(status);
        json_decref(status);
    }
    if (gs_get_state(rt, name, STOP_TIMEOUT_MS, &state) == 0) {
        CHECK(state != NULL);
        check_encodable(state);
    }
    json_decref(state);
}

/* Stop name and wait until nothing of it is left. */
static void stop(const char *name)
{
    int64_t deadline = now_ms() + DRAIN_TIMEOUT_MS;
    gs_runtime_stats_t st;

    for (;;) {
        int rc = gs_stop(rt, name, NULL, STOP_TIMEOUT_MS);
        if (rc == 0)
            break;
        /* ENOSERVER: it never started, or it is between a crash and its restart; in that
         * case try again. Anything else (a timeout) is a hang. */
        CHECK(rc == GS_ENOSERVER);
        json_t *status = gs_server_status(rt, name);
        if (status == NULL)
            break;
        json_decref(status);
        CHECK(now_ms() < deadline);
        sleep_ms(1);
    }
    for (;;) {
        json_t *status = gs_server_status(rt, name);
        json_decref(status);
        gs_runtime_stats(rt, &st);
        if (status == NULL && st.servers == baseline_servers && st.held_calls == 0 &&
            atomic_load_explicit(&pending, memory_order_acquire) == 0)
            break;
        if (now_ms() >= deadline) {
            fprintf(stderr,
                    "fuzz_behaviours: %s not drained: registered %d, servers %llu, held calls "
                    "%llu, calls pending %d\n",
                    name, status != NULL, (unsigned long long)st.servers,
                    (unsigned long long)st.held_calls, atomic_load(&pending));
            abort();
        }
        sleep_ms(1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char name[32];
    json_t *input, *reason = NULL;

    size_t skip = 0;
    while (skip < size && strchr(" \t\r\n", data[skip]) != NULL && data[skip] != '\0')
        skip++;
    if (skip == size || data[skip] != '[')
        return 0; /* not a JSON array: not worth the parser */
    input = json_loadb((const char *)data, size, JSON_ALLOW_NUL, NULL);
    if (!json_is_array(input) || json_array_size(input) == 0)
        goto out;
    gs_start_options_t opts;
    const gs_behaviour_t *b = pick_behaviour(json_array_get(input, 0), &opts);
    if (b == NULL)
        goto out;

    snprintf(name, sizeof(name), "fuzz-%llu", (unsigned long long)++seq);
    /* Args are borrowed (NULL: JSON null); gs_start keeps a copy of its own. */
    int rc = gs_start(rt, name, b, json_array_get(input, 1), &opts, &reason);
    if (rc != 0) {
        CHECK(rc == GS_EINIT);
        if (reason != NULL)
            check_encodable(reason);
        goto out;
    }
    for (size_t i = 2; i < json_array_size(input); i++) {
        json_t *msg = json_array_get(input, i);

        call(name, msg);
        deliver(name, msg, gs_cast);
        deliver(name, msg, gs_send);
    }
    inspect(name);
    stop(name);
out:
    json_decref(reason);
    json_decref(input);
    return 0;
}
