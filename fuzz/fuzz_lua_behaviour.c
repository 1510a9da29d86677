/*
 * fuzz_lua_behaviour.c: arbitrary Lua behaviours, and arbitrary messages driven into them, on
 * one runtime and Lua host shared by all inputs (genserv/lua.h, the public API only).
 *
 * Input: SOURCE, then optionally a line "--@@" and a JSON array of messages:
 *   return {handle_call = function(m, f, s) return {'reply', m, s} end}
 *   --@@
 *   ["ping", ["push", 1], null]
 * Without the separator, the whole input is the source and the messages are a fixed few.
 * Each input is loaded under a fresh name with small limits (1 MB, 200,000 instructions),
 * started (temporary), sent every message as a call (20 ms timeout), a cast and an info, then
 * upgraded to its own source (code_change runs in the server), inspected, stopped and
 * deleted. It must not crash, leak or hang: a callback is bounded by its instruction budget
 * (and its wall-clock backstop), and the runtime's calls by their timeouts, so an input ends
 * within a few seconds at worst (libFuzzer's -timeout catches a hang). Replies, reasons and
 * states must be JSON the gateway can send.
 */
#include "fuzz.h"

#include <genserv/lua.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_lua_behaviour: invariant broken at %s:%d: %s\n", __FILE__,       \
                    __LINE__, #cond);                                                              \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define CALL_TIMEOUT_MS  20
#define DRAIN_TIMEOUT_MS 5000

static gs_runtime_t *rt;
static gs_lua_t *lua;
static uint64_t seq;
static atomic_int pending; /* calls and upgrades whose callback has not run */

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

static void check_encodable(json_t *v)
{
    char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    CHECK(text != NULL);
    free(text);
}

static void on_reply(int status, json_t *result, void *arg)
{
    (void)arg;
    if (status == 0 || status == GS_ECRASHED || status == GS_ESTOPPED) {
        CHECK(result != NULL);
        check_encodable(result);
    }
    json_decref(result);
    atomic_fetch_sub_explicit(&pending, 1, memory_order_release);
}

static void on_upgrade(json_t *outcomes, void *arg)
{
    (void)arg;
    CHECK(json_is_array(outcomes));
    check_encodable(outcomes);
    json_decref(outcomes);
    atomic_fetch_sub_explicit(&pending, 1, memory_order_release);
}

static void shutdown_all(void)
{
    gs_runtime_destroy(rt);
    gs_lua_destroy(lua);
    rt = NULL;
    lua = NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    gs_runtime_options_t ro;
    gs_lua_options_t lo;
    (void)argc;
    (void)argv;
    gs_runtime_options_init(&ro);
    ro.schedulers = 2;
    CHECK(gs_runtime_create(&ro, &rt) == 0);
    gs_lua_options_init(&lo);
    lo.max_source_bytes = 65536;
    CHECK(gs_lua_create(rt, &lo, &lua) == 0);
    atexit(shutdown_all);
    return 0;
}

static void wait_pending(void)
{
    int64_t deadline = now_ms() + DRAIN_TIMEOUT_MS;
    while (atomic_load_explicit(&pending, memory_order_acquire) != 0) {
        CHECK(now_ms() < deadline);
        sleep_ms(1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char name[32];
    const char *sep = "\n--@@\n";
    const char *text = (const char *)data;
    size_t src_len = size;
    json_t *msgs = NULL;

    for (size_t i = 0; i + strlen(sep) <= size; i++) {
        if (memcmp(text + i, sep, strlen(sep)) == 0) {
            src_len = i;
            msgs = json_loadb(text + i + strlen(sep), size - i - strlen(sep),
                              JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
            break;
        }
    }
    if (!json_is_array(msgs)) {
        json_decref(msgs);
        msgs = json_loads("[\"ping\", [\"push\", 1], null, {\"a\": []}]", 0, NULL);
    }
    snprintf(name, sizeof(name), "lf%llu", (unsigned long long)++seq);
    json_t *limits = json_pack("{s:i, s:i}", "memory_bytes", 1 << 20, "instructions", 200000);
    json_t *err = NULL;
    int rc = gs_lua_load(lua, name, NULL, text, src_len, limits, &err);
    if (getenv("FUZZ_LUA_VERBOSE") != NULL)
        fprintf(stderr, "load %s: %s %s\n", name, gs_err_name(rc), json_string_value(err));
    json_decref(limits);
    if (rc != 0) {
        CHECK(rc == GS_EINVAL);
        CHECK(json_is_string(err));
        json_decref(err);
        json_decref(msgs);
        return 0;
    }
    gs_start_options_t opts;
    gs_start_options_init(&opts);
    opts.restart = GS_TEMPORARY;
    opts.mailbox_limit = 1000;
    json_t *reason = NULL;
    rc = gs_start(rt, name, gs_behaviour_find(rt, name), json_array_get(msgs, 0), &opts, &reason);
    if (reason != NULL)
        check_encodable(reason);
    json_decref(reason);
    if (rc == 0) {
        size_t i;
        json_t *m;
        json_array_foreach(msgs, i, m)
        {
            atomic_fetch_add_explicit(&pending, 1, memory_order_relaxed);
            if (gs_call_async(rt, name, json_deep_copy(m), CALL_TIMEOUT_MS, on_reply, NULL) != 0)
                atomic_fetch_sub_explicit(&pending, 1, memory_order_relaxed);
            gs_cast(rt, name, json_deep_copy(m));
            gs_send(rt, name, json_deep_copy(m));
        }
        atomic_fetch_add_explicit(&pending, 1, memory_order_relaxed);
        json_t *extra = json_array_get(msgs, 1);
        if (gs_lua_upgrade(lua, name, "fuzz", text, src_len, NULL, extra, on_upgrade, NULL, &err) !=
            0) {
            atomic_fetch_sub_explicit(&pending, 1, memory_order_relaxed);
            json_decref(err);
        }
        json_t *state = NULL;
        if (gs_get_state(rt, name, DRAIN_TIMEOUT_MS, &state) == 0)
            check_encodable(state);
        json_decref(state);
        json_t *status = gs_server_status(rt, name);
        json_decref(status);
        int64_t deadline = now_ms() + DRAIN_TIMEOUT_MS;
        while ((rc = gs_stop(rt, name, NULL, DRAIN_TIMEOUT_MS)) != 0) {
            CHECK(rc == GS_ENOSERVER);
            json_t *st = gs_server_status(rt, name);
            if (st == NULL)
                break;
            json_decref(st);
            CHECK(now_ms() < deadline);
            sleep_ms(1);
        }
    }
    wait_pending();
    int64_t deadline = now_ms() + DRAIN_TIMEOUT_MS;
    while ((rc = gs_lua_delete(lua, name)) == GS_EINUSE) {
        CHECK(now_ms() < deadline);
        sleep_ms(1);
    }
    CHECK(rc == 0);
    json_decref(msgs);
    return 0;
}
