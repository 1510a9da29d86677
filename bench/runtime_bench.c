/*
 * runtime_bench.c: the runtime's benchmark, the program behind the table of
 * docs/performance.md. It embeds the runtime through genserv.h only, writes its own tiny
 * behaviours, and measures the scenarios of issue 2 against Erlang/OTP 25's figures:
 *
 *   cast      one "sink" server; 1 or 100 sender servers cast to it from a self-message loop
 *             (the way Erlang processes would, on the same two schedulers), then the same
 *             from 1 or 100 external threads for comparison. The message is an immortal
 *             jansson value (see "Constant messages" below). A full mailbox
 *             (GS_EOVERLOADED) makes the sender back off for BACKOFF_MS and is counted.
 *   call      one "echo" server; 1 or 100 caller servers, each with one gs_send_request in
 *             flight, sending the next when ["gs_reply", tag, reply] reaches its handle_info.
 *   idle      start N idle servers (NULL state) from the main thread: starts/s, bytes per
 *             server from the RSS delta (and malloc's own count), then the time to destroy the
 *             runtime, which stops them all.
 *   timers    N gs_send_after timers with delays spread uniformly over a range; each message
 *             carries its due time, the receiving server records delivery - due.
 *   batcher   10,000 producer servers push ["push", n] with gs_send_request to one batcher
 *             that holds every `from` and replies "ok" to all of them every interval.
 *   lua       the same with servers written in Lua (genserv_lua, issue 13): the lesson's
 *             Counter as the sink of casts from one sender server (C, or Lua with gs.cast),
 *             and again with the largest instruction budget against the default one (the
 *             budget's cost); a Lua caller with one gs.send_request in flight to a Lua echo;
 *             Blocky's consumer with 10,000 Lua producers; 100,000 idle Lua servers started,
 *             hibernated from init and awake (rate, bytes each). Targets: issue 13's.
 *
 * Every scenario runs --runs times (median, min, max are printed) in a runtime of its own with
 * the default options (one scheduler per core), is bounded in time (a watchdog alarm ends the
 * program if a run hangs), and throughput is counted over a fixed window after a warm-up.
 *
 * Constant messages ("go", "ok", the cast and call payloads, the tags, the flush) are jansson's
 * immortal singletons true, false and null, told apart by pointer: jansson never counts their
 * references, so they are the one kind of json_t that threads may share (the runtime's rule is
 * that messages move, never share; a shared refcounted string would make every send an atomic
 * increment on one cache line that every core fights for, and is a data race by jansson's
 * rules). They are also what an Erlang atom is: a constant whose sending allocates nothing.
 * Values that vary (["push", n], the timers' due times) are built per message.
 *
 * Usage: runtime_bench [--quick] [--runs N] [--json FILE] [--only cast,call,lua,...]
 */
#include <genserv/genserv.h>
#include <genserv/lua.h>

#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define MAX_RUNS         15
#define DEFAULT_BURST    64  /* casts per self-message of a sender's loop (--burst) */
#define BACKOFF_MS       1   /* a sender's pause after GS_EOVERLOADED */
#define CACHELINE        64  /* counters written by different threads live on their own lines */
#define RUN_LIMIT_S      300 /* watchdog: no single run may take longer */
#define PRODUCERS        10000
#define DEFAULT_BATCH_MS 10  /* the batcher's flush interval (--batch-interval) */
#define START_LIMIT_S    120 /* the idle scenario stops starting servers after this long */

/* ---------------------------------------------------------------------------------------- */
/* Clocks, memory, small helpers                                                              */
/* ---------------------------------------------------------------------------------------- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* Resident set size in bytes, from /proc/self/statm (its second field, in pages). */
static uint64_t rss_bytes(void)
{
    unsigned long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return 0;
    if (fscanf(f, "%lu %lu", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Bytes glibc's malloc has handed out and not had back, over every arena (0 when the program
 * is linked with another allocator, as with jemalloc). */
static uint64_t heap_bytes(void)
{
    struct mallinfo2 mi = mallinfo2();
    return (uint64_t)mi.uordblks + (uint64_t)mi.hblkhd;
}

/*
 * Give back to the system what earlier runs freed, so that an RSS delta grows with the run
 * that follows only: glibc's malloc_trim, and with jemalloc (which malloc_trim cannot see,
 * and which keeps freed pages resident for about 10 s) a purge of every arena. mallctl is
 * looked up rather than linked, so that the program builds without jemalloc too.
 */
static void heap_release(void)
{
    int (*mallctl_fn)(const char *, void *, size_t *, void *, size_t) = NULL;
    void *sym = dlsym(RTLD_DEFAULT, "mallctl");
    malloc_trim(0);
    if (sym != NULL) {
        memcpy(&mallctl_fn, &sym, sizeof(mallctl_fn)); /* ISO C has no object-to-function cast */
        mallctl_fn("arena.4096.purge", NULL, NULL, NULL, 0); /* 4096: MALLCTL_ARENAS_ALL */
    }
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "runtime_bench: %s: %s\n", what, rc < 0 ? gs_strerror(rc) : "failed");
    exit(1);
}

static void watchdog_cb(int sig)
{
    static const char msg[] = "runtime_bench: a run exceeded its time limit\n";
    (void)sig;
    ssize_t w = write(STDERR_FILENO, msg, sizeof(msg) - 1);
    (void)w;
    _exit(2);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

/* xorshift64*: reproducible delays without touching libc's rand() state. */
static uint64_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717u;
}

/*
 * A counter with a single writer at a time: the server that owns it (a server runs on one
 * thread at a time, and the run queue's lock orders one thread's turn before the next), or
 * one external thread. The main thread only reads it.
 */
typedef struct slot_s {
    _Alignas(CACHELINE) _Atomic uint64_t n;
    int64_t next; /* producer scenario: the number the next push carries (owner only) */
} slot_t;

static void slot_inc(slot_t *s)
{
    /* relaxed: a single writer (see above); the reader wants a recent value, not an order */
    uint64_t v = atomic_load_explicit(&s->n, memory_order_relaxed);
    atomic_store_explicit(&s->n, v + 1, memory_order_relaxed);
}

static uint64_t slots_sum(slot_t *s, unsigned n)
{
    uint64_t sum = 0;
    for (unsigned i = 0; i < n; i++)
        sum += atomic_load_explicit(&s[i].n, memory_order_relaxed); /* see slot_inc */
    return sum;
}

static slot_t *slots_create(unsigned n)
{
    slot_t *s = aligned_alloc(CACHELINE, (size_t)n * sizeof(*s));
    if (s == NULL)
        die("slots", GS_ENOMEM);
    for (unsigned i = 0; i < n; i++) {
        atomic_init(&s[i].n, 0);
        s[i].next = 1;
    }
    return s;
}

/* ---------------------------------------------------------------------------------------- */
/* Configuration and results                                                                  */
/* ---------------------------------------------------------------------------------------- */

typedef struct config_s {
    bool quick;
    int runs;
    const char *json_path;
    const char *only;
    double warmup_s, window_s;
    unsigned idle_servers;
    unsigned lua_idle_servers;
    unsigned timers, timer_min_ms, timer_max_ms;
    double batcher_window_s;
    unsigned batch_ms; /* the batcher's flush interval */
    unsigned burst;    /* casts per self-message of a sender server */
} config_t;

typedef enum target_kind_e { T_NONE = 0, T_AT_LEAST, T_AT_MOST } target_kind_t;

typedef enum metric_id_e {
    M_CAST_1,
    M_CAST_100,
    M_CAST_T1,
    M_CAST_T100,
    M_CALL_1,
    M_CALL_100,
    M_START_RATE,
    M_START_RSS,
    M_START_HEAP,
    M_START_TIME,
    M_STOP_TIME,
    M_TIMER_RATE,
    M_TIMER_P50,
    M_TIMER_P99,
    M_TIMER_MAX,
    M_BATCHER,
    M_LUA_CAST,
    M_LUA_CAST_LUA,
    M_LUA_CAST_MAX,
    M_LUA_BUDGET_NS,
    M_LUA_CALL,
    M_LUA_BATCHER,
    M_LUA_START_RATE,
    M_LUA_IDLE_RSS,
    M_LUA_HIB_START_RATE,
    M_LUA_HIB_RSS,
    M_LUA_STOP_TIME,
    /* Details: what the figures above cost in back-pressure and errors. */
    M_CAST_1_OVL,
    M_CAST_100_OVL,
    M_CAST_T1_OVL,
    M_CAST_T100_OVL,
    M_CALL_1_ERR,
    M_CALL_100_ERR,
    M_TIMER_LOST,
    M_BATCH_SIZE,
    M_LUA_CAST_OVL,
    M_LUA_STATE_BYTES,
    M_LUA_ERRORS,
/* Where the time of the cast and call scenarios goes, per message handled in the window
 * (issue 17): see window_profile. */
#define PROFILE_IDS(P) P##_WAKEUPS, P##_STEALS, P##_INLINE, P##_CSWITCHES, P##_CPU_NS
    PROFILE_IDS(M_CAST_1_PROF),
    PROFILE_IDS(M_CAST_100_PROF),
    PROFILE_IDS(M_CALL_1_PROF),
    PROFILE_IDS(M_CALL_100_PROF),
    M_COUNT
} metric_id_t;

typedef struct metric_s {
    const char *key;   /* JSON key */
    const char *label; /* table label; "%N" is replaced by the scenario's count */
    const char *unit;  /* unit after scaling */
    double scale;      /* displayed value = raw / scale */
    const char *otp;   /* OTP 25 figure from issue 2 */
    target_kind_t tk;
    double target; /* raw units */
    bool detail;
    double samples[MAX_RUNS];
    int n;
} metric_t;

/* A row of the main table, and a row of the details table. */
#define METRIC(k, l, u, s, o, t, v)                                                                \
    {                                                                                              \
        .key = (k), .label = (l), .unit = (u), .scale = (s), .otp = (o), .tk = (t), .target = (v)  \
    }
#define DETAIL(k, l, u)                                                                            \
    {                                                                                              \
        .key = (k), .label = (l), .unit = (u), .scale = 1, .otp = "", .detail = true               \
    }

static metric_t metrics[M_COUNT] = {
    [M_CAST_1] = METRIC("cast_1_sender", "cast to 1 server, 1 sender server", "M msg/s", 1e6,
                        "5.5 M/s", T_AT_LEAST, 11e6),
    [M_CAST_100] = METRIC("cast_100_senders", "cast to 1 server, 100 sender servers", "M msg/s",
                          1e6, "4.3 M/s", T_AT_LEAST, 8.6e6),
    [M_CAST_T1] = METRIC("cast_1_thread", "cast to 1 server, 1 external thread", "M msg/s", 1e6,
                         "-", T_NONE, 0),
    [M_CAST_T100] = METRIC("cast_100_threads", "cast to 1 server, 100 external threads", "M msg/s",
                           1e6, "-", T_NONE, 0),
    [M_CALL_1] = METRIC("call_1_caller", "call round trips, 1 caller server", "k calls/s", 1e3,
                        "640 k/s", T_AT_LEAST, 1280e3),
    [M_CALL_100] = METRIC("call_100_callers", "call round trips, 100 caller servers", "k calls/s",
                          1e3, "420 k/s", T_AT_LEAST, 840e3),
    [M_START_RATE] = METRIC("start_rate", "start %N idle servers: rate", "k starts/s", 1e3,
                            "450 k/s", T_AT_LEAST, 900e3),
    [M_START_RSS] = METRIC("idle_bytes_rss", "bytes per idle server (RSS delta)", "bytes", 1,
                           "2800 B", T_AT_MOST, 700),
    [M_START_HEAP] = METRIC("idle_bytes_heap", "bytes per idle server (malloc in use)", "bytes", 1,
                            "-", T_NONE, 0),
    [M_START_TIME] = METRIC("start_time", "start %N idle servers: time", "s", 1, "-", T_NONE, 0),
    [M_STOP_TIME] =
        METRIC("stop_time", "stop them all (gs_runtime_destroy)", "s", 1, "-", T_NONE, 0),
    [M_TIMER_RATE] = METRIC("timer_schedule_rate", "schedule %N send_after timers", "k timers/s",
                            1e3, "800 k/s", T_AT_LEAST, 1600e3),
    [M_TIMER_P50] =
        METRIC("timer_lateness_p50", "timer lateness p50", "ms", 1, "1.4 ms", T_NONE, 0),
    [M_TIMER_P99] =
        METRIC("timer_lateness_p99", "timer lateness p99", "ms", 1, "40-90 ms", T_AT_MOST, 5),
    [M_TIMER_MAX] = METRIC("timer_lateness_max", "timer lateness max", "ms", 1, "-", T_NONE, 0),
    [M_BATCHER] = METRIC("batcher_10k_producers", "batcher, %N producers: completed calls",
                         "k calls/s", 1e3, "350 k/s", T_AT_LEAST, 700e3),
    /* Lua behaviours (issue 13): targets against the OTP figures, as above. */
    [M_LUA_CAST] = METRIC("lua_cast_1_sender", "Lua counter: cast to it, 1 sender server",
                          "M msg/s", 1e6, "5.5 M/s", T_AT_LEAST, 0.7 * 5.5e6),
    [M_LUA_CAST_LUA] = METRIC("lua_cast_lua_sender", "Lua counter: cast to it, 1 Lua sender server",
                              "M msg/s", 1e6, "5.5 M/s", T_NONE, 0),
    [M_LUA_CAST_MAX] =
        METRIC("lua_cast_budget_max", "Lua counter: cast, instruction budget at its maximum",
               "M msg/s", 1e6, "-", T_NONE, 0),
    [M_LUA_BUDGET_NS] =
        METRIC("lua_budget_cost_ns", "Lua counter: ns per cast, default budget minus the largest",
               "ns/msg", 1, "-", T_NONE, 0),
    [M_LUA_CALL] = METRIC("lua_call_1_caller", "Lua call round trips, Lua caller to Lua echo",
                          "k calls/s", 1e3, "640 k/s", T_AT_LEAST, 640e3),
    [M_LUA_BATCHER] =
        METRIC("lua_batcher_10k_producers", "Lua batcher, %N Lua producers: completed calls",
               "k calls/s", 1e3, "350 k/s", T_AT_LEAST, 350e3),
    [M_LUA_START_RATE] = METRIC("lua_start_rate", "start %N Lua servers: rate", "k starts/s", 1e3,
                                "450 k/s", T_NONE, 0),
    [M_LUA_IDLE_RSS] = METRIC("lua_idle_bytes_rss", "bytes per idle Lua server, awake (RSS delta)",
                              "bytes", 1, "2800 B", T_AT_MOST, 16384),
    [M_LUA_HIB_START_RATE] =
        METRIC("lua_hibernated_start_rate", "start %N hibernating Lua servers: rate", "k starts/s",
               1e3, "-", T_NONE, 0),
    /* The target is 2,800 B plus the state's size, set once that is measured. */
    [M_LUA_HIB_RSS] =
        METRIC("lua_hibernated_bytes_rss", "bytes per idle Lua server, hibernated (RSS delta)",
               "bytes", 1, "2800 B", T_AT_MOST, 2800),
    [M_LUA_STOP_TIME] = METRIC("lua_stop_time", "stop the awake Lua servers (gs_runtime_destroy)",
                               "s", 1, "-", T_NONE, 0),
    [M_CAST_1_OVL] = DETAIL("cast_1_sender_overloaded", "cast, 1 sender server: overloaded", "/s"),
    [M_CAST_100_OVL] =
        DETAIL("cast_100_senders_overloaded", "cast, 100 sender servers: overloaded", "/s"),
    [M_CAST_T1_OVL] =
        DETAIL("cast_1_thread_overloaded", "cast, 1 external thread: overloaded", "/s"),
    [M_CAST_T100_OVL] =
        DETAIL("cast_100_threads_overloaded", "cast, 100 external threads: overloaded", "/s"),
    [M_CALL_1_ERR] =
        DETAIL("call_1_caller_errors", "call, 1 caller: errors + overloads", "per run"),
    [M_CALL_100_ERR] =
        DETAIL("call_100_callers_errors", "call, 100 callers: errors + overloads", "per run"),
    [M_TIMER_LOST] =
        DETAIL("timer_not_delivered", "timers not delivered by the deadline", "per run"),
    [M_BATCH_SIZE] = DETAIL("batcher_mean_batch", "batcher: mean batch size", "calls"),
    [M_LUA_CAST_OVL] =
        DETAIL("lua_cast_1_sender_overloaded", "Lua counter, 1 sender server: overloaded", "/s"),
    [M_LUA_STATE_BYTES] =
        DETAIL("lua_idle_state_bytes", "idle Lua server: its state as JSON", "bytes"),
    [M_LUA_ERRORS] =
        DETAIL("lua_errors", "Lua scenarios: restarts, failed calls, wrong counts", "per run"),
#define PROFILE_DETAILS(P, key, what)                                                              \
    [P##_WAKEUPS] = DETAIL(key "_wakeups", what ": scheduler wake-ups", "per 1k msgs"),            \
    [P##_STEALS] =                                                                                 \
        DETAIL(key "_steals", what ": servers stolen by idle schedulers", "per 1k msgs"),          \
    [P##_INLINE] =                                                                                 \
        DETAIL(key "_inline", what ": turns run on the caller's thread", "per 1k msgs"),           \
    [P##_CSWITCHES] = DETAIL(key "_cswitches", what ": context switches", "per 1k msgs"),          \
    [P##_CPU_NS] = DETAIL(key "_cpu_ns", what ": CPU time, all threads", "ns/msg")
    PROFILE_DETAILS(M_CAST_1_PROF, "cast_1_sender", "cast, 1 sender server"),
    PROFILE_DETAILS(M_CAST_100_PROF, "cast_100_senders", "cast, 100 sender servers"),
    PROFILE_DETAILS(M_CALL_1_PROF, "call_1_caller", "call, 1 caller"),
    PROFILE_DETAILS(M_CALL_100_PROF, "call_100_callers", "call, 100 callers"),
};

static unsigned label_count[M_COUNT]; /* what "%N" stands for */

static void record(metric_id_t id, double v)
{
    metric_t *m = &metrics[id];
    if (m->n < MAX_RUNS)
        m->samples[m->n++] = v;
}

/* ---------------------------------------------------------------------------------------- */
/* Where a window's time went: the runtime's scheduler statistics and the process's context   */
/* switches and CPU time (getrusage: every thread), so that each figure comes with its cost   */
/* per message and a change of host shows in which of them moved (issue 17).                  */
/* ---------------------------------------------------------------------------------------- */

typedef struct profile_s {
    double msgs, wakeups, steals, inline_turns, cswitches, cpu_ns;
} profile_t;

static profile_t profile_now(gs_runtime_t *rt)
{
    gs_runtime_stats_t st;
    struct rusage ru;
    gs_runtime_stats(rt, &st);
    getrusage(RUSAGE_SELF, &ru);
    return (profile_t){
        .msgs = (double)st.messages_handled,
        .wakeups = (double)st.scheduler_wakeups,
        .steals = (double)st.scheduler_steals,
        .inline_turns = (double)st.inline_turns,
        .cswitches = (double)(ru.ru_nvcsw + ru.ru_nivcsw),
        .cpu_ns = ((double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec) * 1e9 +
                  ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) * 1e3,
    };
}

static profile_t profile_delta(profile_t a, profile_t b)
{
    return (profile_t){b.msgs - a.msgs,           b.wakeups - a.wakeups,
                       b.steals - a.steals,       b.inline_turns - a.inline_turns,
                       b.cswitches - a.cswitches, b.cpu_ns - a.cpu_ns};
}

/* ---------------------------------------------------------------------------------------- */
/* Shared context of the scenario being run (one at a time)                                  */
/* ---------------------------------------------------------------------------------------- */

static struct {
    gs_runtime_t *rt;
    _Atomic int stop;           /* set by main: loops end at their next turn */
    _Atomic uint64_t overloads; /* GS_EOVERLOADED seen by senders, callers, producers */
    _Atomic uint64_t errors;    /* anything else that went wrong */
    json_t *msg;                /* the shared cast message */
    json_t *go;                 /* the self-message that drives every loop */
    json_t *ok;                 /* the shared reply */
    json_t *tag;                /* the shared request tag */
    json_t *push;               /* "push", shared by every ["push", n] */
    json_t *flush;              /* the batcher's timer message */
    slot_t *counts;             /* per sender/caller/producer; [0] for single counters */
    unsigned ncounts;
    slot_t sink_count;
    int64_t *late; /* timer lateness in ns, in order of delivery */
    unsigned nlate;
    _Atomic uint64_t flushes, flushed;
    unsigned batch_ms;
    unsigned burst;
    const char *cast_text; /* set: senders cast this string, a new one per message */
    gs_lua_t *lua;         /* the Lua host of a lua scenario */
    profile_t window;      /* what measure's window cost (window_profile) */
} g;

/* Record g.window as the details from `first` on (PROFILE_IDS' order), and print them. */
static void record_profile(metric_id_t first)
{
    profile_t w = g.window;
    double per = w.msgs > 0 ? 1000.0 / w.msgs : 0;
    record(first, w.wakeups * per);
    record(first + 1, w.steals * per);
    record(first + 2, w.inline_turns * per);
    record(first + 3, w.cswitches * per);
    record(first + 4, w.msgs > 0 ? w.cpu_ns / w.msgs : 0);
    fprintf(stderr,
            "    per 1k messages: %.2f wake-ups, %.2f steals, %.2f inline turns, %.2f context "
            "switches; %.0f ns CPU per message\n",
            w.wakeups * per, w.steals * per, w.inline_turns * per, w.cswitches * per,
            w.msgs > 0 ? w.cpu_ns / w.msgs : 0);
}

static bool stopping(void)
{
    /* relaxed: a loop that runs one more turn after the flag is harmless */
    return atomic_load_explicit(&g.stop, memory_order_relaxed) != 0;
}

static void count(_Atomic uint64_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed); /* a statistic, no order */
}

/* Failures once the scenario is being torn down (the target stopped first) are expected. */
static void count_error(void)
{
    if (!stopping())
        count(&g.errors);
}

static void backoff(gs_server_t *self)
{
    int rc = gs_send_after_server(self, json_incref(g.go), BACKOFF_MS, NULL);
    if (rc != 0 && rc != GS_ESHUTDOWN)
        count_error();
}

static void loop_again(gs_server_t *self)
{
    if (gs_send_server(self, json_incref(g.go)) != 0)
        backoff(self);
}

static bool is_reply(json_t *msg)
{
    const char *s = json_string_value(json_array_get(msg, 0));
    return s != NULL && strcmp(s, "gs_reply") == 0;
}

static int null_init(gs_server_t *self, json_t *args, void **state, json_t **reason)
{
    (void)self;
    (void)args;
    (void)reason;
    *state = NULL;
    return 0;
}

static slot_t *slot_arg(json_t *args)
{
    json_int_t i = json_integer_value(args);
    return i >= 0 && (unsigned)i < g.ncounts ? &g.counts[i] : NULL;
}

/* An idle server: no state, no handlers. */
static const gs_behaviour_t idle_behaviour = {
    .name = "bench_idle", .description = "does nothing", .init = null_init};

/* ---------------------------------------------------------------------------------------- */
/* cast: sink, sender servers, sender threads                                                 */
/* ---------------------------------------------------------------------------------------- */

static gs_result_t sink_handle_cast(gs_server_t *self, void *state, json_t *msg)
{
    (void)self;
    (void)state;
    (void)msg;
    slot_inc(&g.sink_count);
    return GS_NOREPLY;
}

static const gs_behaviour_t sink_behaviour = {.name = "bench_sink",
                                              .description = "counts casts",
                                              .init = null_init,
                                              .handle_cast = sink_handle_cast};

/* A sender holds a handle on the sink, like a process that looked its pid up once. */
static int sender_init(gs_server_t *self, json_t *args, void **state, json_t **reason)
{
    (void)args;
    gs_server_t *sink = gs_whereis(gs_server_runtime(self), "sink");
    if (sink == NULL) {
        *reason = json_string("no sink");
        return -1;
    }
    *state = sink;
    loop_again(self);
    return 0;
}

static gs_result_t sender_handle_info(gs_server_t *self, void *state, json_t *msg)
{
    (void)msg;
    if (stopping())
        return GS_NOREPLY;
    for (unsigned i = 0; i < g.burst; i++) {
        /* A string is built per message, as a real sender builds it (see the lua scenarios). */
        json_t *m = g.cast_text != NULL ? json_string_nocheck(g.cast_text) : json_incref(g.msg);
        int rc = gs_cast_server(state, m);
        if (rc == GS_EOVERLOADED) {
            count(&g.overloads);
            backoff(self);
            return GS_NOREPLY;
        }
        if (rc != 0) {
            count_error();
            return GS_NOREPLY;
        }
    }
    loop_again(self);
    return GS_NOREPLY;
}

static void sender_terminate(gs_server_t *self, json_t *reason, void *state)
{
    (void)self;
    (void)reason;
    gs_server_unref(state);
}

static const gs_behaviour_t sender_behaviour = {.name = "bench_sender",
                                                .description = "casts to the sink in a loop",
                                                .init = sender_init,
                                                .handle_info = sender_handle_info,
                                                .terminate = sender_terminate};

static void *sender_thread(void *arg)
{
    gs_server_t *sink = arg;
    while (!stopping()) {
        for (unsigned i = 0; i < g.burst; i++) {
            int rc = gs_cast_server(sink, json_incref(g.msg));
            if (rc == GS_EOVERLOADED) {
                count(&g.overloads);
                sleep_s(BACKOFF_MS / 1000.0);
                break;
            }
            if (rc != 0) {
                count_error();
                return NULL;
            }
        }
    }
    return NULL;
}

/* Count over the window that follows the warm-up; returns events per second. */
static double measure(const config_t *cfg, slot_t *slots, unsigned n, double window_s)
{
    sleep_s(cfg->warmup_s);
    profile_t p0 = profile_now(g.rt);
    uint64_t c0 = slots_sum(slots, n), t0 = now_ns();
    sleep_s(window_s);
    uint64_t c1 = slots_sum(slots, n), t1 = now_ns();
    g.window = profile_delta(p0, profile_now(g.rt));
    return (double)(c1 - c0) * 1e9 / (double)(t1 - t0);
}

static void reset_context(void)
{
    atomic_store(&g.stop, 0);
    atomic_store(&g.overloads, 0);
    atomic_store(&g.errors, 0);
    atomic_store(&g.sink_count.n, 0);
    atomic_store(&g.flushes, 0);
    atomic_store(&g.flushed, 0);
    g.cast_text = NULL;
    /* The timers scenario keeps a million timers pending to one sink: past the default
     * bounds, which are for servers that clients drive. */
    gs_runtime_options_t o;
    gs_runtime_options_init(&o);
    o.max_timers = o.max_timers_per_server = 100000000;
    o.max_timer_bytes = o.max_timer_bytes_per_server = (uint64_t)64 << 30;
    int rc = gs_runtime_create(&o, &g.rt);
    if (rc != 0)
        die("gs_runtime_create", rc);
}

static void start_or_die(const char *name, const gs_behaviour_t *b, json_t *args)
{
    json_t *reason = NULL;
    int rc = gs_start(g.rt, name, b, args, NULL, &reason);
    if (rc != 0) {
        char *why = reason != NULL ? json_dumps(reason, JSON_ENCODE_ANY) : NULL;
        fprintf(stderr, "runtime_bench: start %s: %s %s\n", name, gs_strerror(rc),
                why != NULL ? why : "");
        exit(1);
    }
    json_decref(args);
}

static void run_cast(const config_t *cfg, unsigned senders, bool threads)
{
    metric_id_t id =
        threads ? (senders == 1 ? M_CAST_T1 : M_CAST_T100) : (senders == 1 ? M_CAST_1 : M_CAST_100);
    metric_id_t ovl = threads ? (senders == 1 ? M_CAST_T1_OVL : M_CAST_T100_OVL)
                              : (senders == 1 ? M_CAST_1_OVL : M_CAST_100_OVL);
    pthread_t tids[100];
    char name[32];
    reset_context();
    start_or_die("sink", &sink_behaviour, NULL);
    gs_server_t *sink = gs_whereis(g.rt, "sink");
    for (unsigned i = 0; i < senders; i++) {
        if (threads) {
            if (pthread_create(&tids[i], NULL, sender_thread, sink) != 0)
                die("pthread_create", 0);
        } else {
            snprintf(name, sizeof(name), "sender%u", i);
            start_or_die(name, &sender_behaviour, NULL);
        }
    }
    uint64_t o0 = atomic_load(&g.overloads), t0 = now_ns();
    double rate = measure(cfg, &g.sink_count, 1, cfg->window_s);
    double ovl_rate = (double)(atomic_load(&g.overloads) - o0) * 1e9 / (double)(now_ns() - t0);
    atomic_store(&g.stop, 1);
    if (threads)
        for (unsigned i = 0; i < senders; i++)
            pthread_join(tids[i], NULL);
    gs_server_unref(sink);
    gs_runtime_destroy(g.rt);
    record(id, rate);
    record(ovl, ovl_rate);
    if (atomic_load(&g.errors) != 0)
        fprintf(stderr, "  cast: %llu errors\n", (unsigned long long)atomic_load(&g.errors));
    fprintf(stderr, "  %-42s %8.3f M msg/s (overloaded %.0f/s)\n", metrics[id].label, rate / 1e6,
            ovl_rate);
    if (!threads)
        record_profile(senders == 1 ? M_CAST_1_PROF_WAKEUPS : M_CAST_100_PROF_WAKEUPS);
}

/* ---------------------------------------------------------------------------------------- */
/* call: echo and callers                                                                     */
/* ---------------------------------------------------------------------------------------- */

static gs_result_t echo_handle_call(gs_server_t *self, void *state, json_t *msg, gs_from_t from)
{
    (void)self;
    (void)state;
    (void)msg;
    (void)from;
    return GS_REPLY(json_incref(g.ok));
}

static const gs_behaviour_t echo_behaviour = {.name = "bench_echo",
                                              .description = "replies ok",
                                              .init = null_init,
                                              .handle_call = echo_handle_call};

static int caller_init(gs_server_t *self, json_t *args, void **state, json_t **reason)
{
    slot_t *slot = slot_arg(args);
    if (slot == NULL) {
        *reason = json_string("bad id");
        return -1;
    }
    *state = slot;
    loop_again(self);
    return 0;
}

/* One request in flight per caller, with GenServer.call's default timeout, as in OTP. */
static void caller_request(gs_server_t *self, const char *target, json_t *msg)
{
    int rc = gs_send_request(self, target, msg, GS_DEFAULT_TIMEOUT_MS, json_incref(g.tag));
    if (rc == GS_EOVERLOADED) {
        count(&g.overloads);
        backoff(self);
    } else if (rc != 0 && rc != GS_ESHUTDOWN) {
        count_error();
        backoff(self);
    }
}

static gs_result_t caller_handle_info(gs_server_t *self, void *state, json_t *msg)
{
    if (stopping())
        return GS_NOREPLY;
    if (msg != g.go) {
        if (!is_reply(msg)) { /* ["gs_error", tag, code, reason]: try again shortly */
            count_error();
            backoff(self);
            return GS_NOREPLY;
        }
        slot_inc(state);
    }
    caller_request(self, "echo", json_incref(g.msg));
    return GS_NOREPLY;
}

static const gs_behaviour_t caller_behaviour = {.name = "bench_caller",
                                                .description = "calls echo in a loop",
                                                .init = caller_init,
                                                .handle_info = caller_handle_info};

static void run_call(const config_t *cfg, unsigned callers)
{
    char name[32];
    reset_context();
    g.counts = slots_create(callers);
    g.ncounts = callers;
    start_or_die("echo", &echo_behaviour, NULL);
    for (unsigned i = 0; i < callers; i++) {
        snprintf(name, sizeof(name), "caller%u", i);
        start_or_die(name, &caller_behaviour, json_integer(i));
    }
    double rate = measure(cfg, g.counts, callers, cfg->window_s);
    atomic_store(&g.stop, 1);
    gs_runtime_destroy(g.rt);
    free(g.counts);
    g.counts = NULL;
    metric_id_t id = callers == 1 ? M_CALL_1 : M_CALL_100;
    record(id, rate);
    record(callers == 1 ? M_CALL_1_ERR : M_CALL_100_ERR,
           (double)(atomic_load(&g.errors) + atomic_load(&g.overloads)));
    fprintf(stderr, "  %-42s %8.1f k calls/s (errors %llu, overloaded %llu)\n", metrics[id].label,
            rate / 1e3, (unsigned long long)atomic_load(&g.errors),
            (unsigned long long)atomic_load(&g.overloads));
    record_profile(callers == 1 ? M_CALL_1_PROF_WAKEUPS : M_CALL_100_PROF_WAKEUPS);
}

/* ---------------------------------------------------------------------------------------- */
/* idle: a million servers                                                                    */
/* ---------------------------------------------------------------------------------------- */

static void run_idle(const config_t *cfg)
{
    char name[32];
    unsigned n = cfg->idle_servers, started = 0;
    reset_context();
    heap_release(); /* give back what earlier runs freed, so that RSS grows with this one */
    uint64_t rss0 = rss_bytes(), heap0 = heap_bytes();
    uint64_t t0 = now_ns();
    for (unsigned i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "idle%07u", i);
        int rc = gs_start(g.rt, name, &idle_behaviour, NULL, NULL, NULL);
        if (rc != 0)
            die("gs_start idle", rc);
        started++;
        if ((i & 4095) == 0 && now_ns() - t0 > (uint64_t)START_LIMIT_S * 1000000000u) {
            fprintf(stderr, "  idle: time limit reached after %u servers\n", started);
            break;
        }
    }
    uint64_t t1 = now_ns();
    uint64_t rss1 = rss_bytes(), heap1 = heap_bytes();
    gs_runtime_stats_t st;
    gs_runtime_stats(g.rt, &st);
    if (st.servers != started)
        fprintf(stderr, "  idle: %llu servers registered, %u started\n",
                (unsigned long long)st.servers, started);
    uint64_t t2 = now_ns();
    gs_runtime_destroy(g.rt);
    uint64_t t3 = now_ns();
    double start_s = (double)(t1 - t0) / 1e9, stop_s = (double)(t3 - t2) / 1e9;
    record(M_START_RATE, started / start_s);
    record(M_START_RSS, (double)(rss1 - rss0) / started);
    if (heap1 > heap0) /* glibc's own count: a program linked with jemalloc has none */
        record(M_START_HEAP, (double)(heap1 - heap0) / started);
    record(M_START_TIME, start_s);
    record(M_STOP_TIME, stop_s);
    fprintf(stderr,
            "  idle %u: %.1f k starts/s, %.0f B/server RSS, %.0f B/server heap, "
            "start %.2f s, destroy %.2f s\n",
            started, started / start_s / 1e3, (double)(rss1 - rss0) / started,
            (double)(heap1 - heap0) / started, start_s, stop_s);
}

/* ---------------------------------------------------------------------------------------- */
/* timers                                                                                     */
/* ---------------------------------------------------------------------------------------- */

/* Each message is its due time (CLOCK_MONOTONIC ns, the clock the runtime uses too). */
static gs_result_t tsink_handle_info(gs_server_t *self, void *state, json_t *msg)
{
    (void)self;
    (void)state;
    uint64_t now = now_ns();
    uint64_t i = atomic_load_explicit(&g.sink_count.n, memory_order_relaxed); /* see slot_inc */
    if (i < g.nlate)
        g.late[i] = (int64_t)(now - (uint64_t)json_integer_value(msg));
    /* release: the main thread's acquire load of the count sees the lateness written above */
    atomic_store_explicit(&g.sink_count.n, i + 1, memory_order_release);
    return GS_NOREPLY;
}

static const gs_behaviour_t tsink_behaviour = {.name = "bench_timer_sink",
                                               .description = "records timer lateness",
                                               .init = null_init,
                                               .handle_info = tsink_handle_info};

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void run_timers(const config_t *cfg)
{
    unsigned n = cfg->timers;
    uint64_t span = cfg->timer_max_ms - cfg->timer_min_ms + 1;
    reset_context();
    g.late = malloc((size_t)n * sizeof(*g.late));
    if (g.late == NULL)
        die("lateness array", GS_ENOMEM);
    g.nlate = n;
    start_or_die("tsink", &tsink_behaviour, NULL);
    gs_server_t *tsink = gs_whereis(g.rt, "tsink");
    uint64_t t0 = now_ns();
    for (unsigned i = 0; i < n; i++) {
        uint64_t delay_ms = cfg->timer_min_ms + rng_next() % span;
        json_t *msg = json_integer((json_int_t)(now_ns() + delay_ms * 1000000u));
        int rc = gs_send_after_server(tsink, msg, delay_ms, NULL);
        if (rc != 0)
            die("gs_send_after_server", rc);
    }
    uint64_t t1 = now_ns();
    gs_server_unref(tsink);
    uint64_t deadline = t1 + (cfg->timer_max_ms + 5000) * 1000000ull, got;
    /* acquire: pairs with the sink's release store, so late[0..got) is complete */
    while ((got = atomic_load_explicit(&g.sink_count.n, memory_order_acquire)) < n &&
           now_ns() < deadline)
        sleep_s(0.01);
    gs_runtime_destroy(g.rt);
    qsort(g.late, got, sizeof(*g.late), cmp_i64);
    double rate = n * 1e9 / (double)(t1 - t0);
    double p50 = got ? g.late[got / 2] / 1e6 : -1;
    double p99 = got ? g.late[(size_t)((double)got * 0.99)] / 1e6 : -1;
    double max = got ? g.late[got - 1] / 1e6 : -1;
    record(M_TIMER_RATE, rate);
    record(M_TIMER_P50, p50);
    record(M_TIMER_P99, p99);
    record(M_TIMER_MAX, max);
    record(M_TIMER_LOST, (double)(n - got));
    fprintf(stderr,
            "  timers %u: %.1f k/s scheduled; lateness p50 %.3f p99 %.3f max %.3f ms; "
            "%llu not delivered\n",
            n, rate / 1e3, p50, p99, max, (unsigned long long)(n - got));
    free(g.late);
    g.late = NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* batcher: 10,000 producers, one deferred-reply batcher                                      */
/* ---------------------------------------------------------------------------------------- */

typedef struct batcher_s {
    gs_from_t *held;
    size_t len, cap;
    json_int_t sum, total;
} batcher_t;

static int batcher_init(gs_server_t *self, json_t *args, void **state, json_t **reason)
{
    (void)args;
    batcher_t *b = calloc(1, sizeof(*b));
    if (b == NULL || gs_send_after_server(self, json_incref(g.flush), g.batch_ms, NULL) != 0) {
        free(b);
        *reason = json_string("init");
        return -1;
    }
    *state = b;
    return 0;
}

/* ["push", n]: hold the caller until the next flush (the article's backpressure). */
static gs_result_t batcher_handle_call(gs_server_t *self, void *state, json_t *msg, gs_from_t from)
{
    batcher_t *b = state;
    (void)self;
    if (b->len == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1024;
        gs_from_t *held = realloc(b->held, cap * sizeof(*held));
        if (held == NULL)
            return GS_REPLY(json_string("out_of_memory"));
        b->held = held;
        b->cap = cap;
    }
    b->held[b->len++] = from;
    b->sum += json_integer_value(json_array_get(msg, 1));
    return GS_NOREPLY;
}

static gs_result_t batcher_handle_info(gs_server_t *self, void *state, json_t *msg)
{
    batcher_t *b = state;
    if (msg != g.flush)
        return GS_NOREPLY;
    for (size_t i = 0; i < b->len; i++)
        gs_reply(b->held[i], json_incref(g.ok));
    if (b->len > 0) {
        count(&g.flushes);
        atomic_fetch_add_explicit(&g.flushed, b->len, memory_order_relaxed); /* statistic */
    }
    b->total += b->sum;
    b->sum = 0;
    b->len = 0;
    int rc = gs_send_after_server(self, json_incref(g.flush), g.batch_ms, NULL);
    if (rc != 0 && rc != GS_ESHUTDOWN)
        count_error();
    return GS_NOREPLY;
}

static void batcher_terminate(gs_server_t *self, json_t *reason, void *state)
{
    batcher_t *b = state;
    (void)self;
    (void)reason;
    free(b->held);
    free(b);
}

static const gs_behaviour_t batcher_behaviour = {.name = "bench_batcher",
                                                 .description = "holds pushes until a flush",
                                                 .init = batcher_init,
                                                 .handle_call = batcher_handle_call,
                                                 .handle_info = batcher_handle_info,
                                                 .terminate = batcher_terminate};

static gs_result_t producer_handle_info(gs_server_t *self, void *state, json_t *msg)
{
    slot_t *slot = state;
    if (stopping())
        return GS_NOREPLY;
    if (msg != g.go) {
        if (!is_reply(msg)) {
            count_error();
            backoff(self);
            return GS_NOREPLY;
        }
        slot_inc(slot);
    }
    /* A new ["push", n] per push, as a real producer builds it (the tag is a constant). */
    json_t *push = json_array();
    json_array_append(push, g.push);
    json_array_append_new(push, json_integer(slot->next++));
    caller_request(self, "batcher", push);
    return GS_NOREPLY;
}

static const gs_behaviour_t producer_behaviour = {.name = "bench_producer",
                                                  .description = "pushes to the batcher",
                                                  .init = caller_init,
                                                  .handle_info = producer_handle_info};

static void run_batcher(const config_t *cfg)
{
    char name[32];
    reset_context();
    g.counts = slots_create(PRODUCERS);
    g.ncounts = PRODUCERS;
    start_or_die("batcher", &batcher_behaviour, NULL);
    for (unsigned i = 0; i < PRODUCERS; i++) {
        snprintf(name, sizeof(name), "producer%u", i);
        start_or_die(name, &producer_behaviour, json_integer(i));
    }
    uint64_t f0 = atomic_load(&g.flushes), n0 = atomic_load(&g.flushed);
    double rate = measure(cfg, g.counts, PRODUCERS, cfg->batcher_window_s);
    uint64_t f1 = atomic_load(&g.flushes), n1 = atomic_load(&g.flushed);
    atomic_store(&g.stop, 1);
    gs_runtime_destroy(g.rt);
    free(g.counts);
    g.counts = NULL;
    double mean_batch = f1 > f0 ? (double)(n1 - n0) / (double)(f1 - f0) : 0;
    record(M_BATCHER, rate);
    record(M_BATCH_SIZE, mean_batch);
    fprintf(stderr, "  batcher: %.1f k calls/s, mean batch %.0f (errors %llu, overloaded %llu)\n",
            rate / 1e3, mean_batch, (unsigned long long)atomic_load(&g.errors),
            (unsigned long long)atomic_load(&g.overloads));
}

/* ---------------------------------------------------------------------------------------- */
/* lua: the same scenarios with behaviours written in Lua (genserv_lua, issue 13)             */
/* ---------------------------------------------------------------------------------------- */

/*
 * The behaviours are the examples' (examples/behaviours/), kept here so that an edit to an
 * example does not move a benchmark: the lesson's Counter (lua_counter.lua; init args `true`
 * make it hibernate at once, for the idle scenario), Blocky's Consumer and Producer
 * (lua_blocky_consumer.lua, lua_blocky_producer.lua, without the consumer's history of batches
 * and its print), an echo server, a caller that keeps one gs.send_request in flight, and a
 * sender casting a burst per self-message like the C sender. Each server counts what it did
 * in its state and the main thread reads that count with gs_get_state (format_status, where
 * the state holds more): it is the Lua code's own count, read through the mailbox, taken when
 * the answer arrives.
 */
static const char lua_counter_src[] =
    "local Counter = {vsn = '1'}\n"
    "function Counter.init(args)\n"
    "  if args == true then return {'ok', 0, 'hibernate'} end\n"
    "  return {'ok', 0}\n"
    "end\n"
    "function Counter.handle_cast(msg, count)\n"
    "  if msg == 'increment' then return {'noreply', count + 1} end\n"
    "end\n"
    "function Counter.handle_call(msg, _from, count)\n"
    "  if msg == 'get_count' then return {'reply', count, count} end\n"
    "end\n"
    "return Counter\n";

static const char lua_sender_src[] = "local Sender = {}\n"
                                     "function Sender.init(args)\n"
                                     "  gs.send(gs.self(), 'go')\n"
                                     "  return {'ok', args}\n"
                                     "end\n"
                                     "function Sender.handle_info(msg, s)\n"
                                     "  for _ = 1, s.burst do\n"
                                     "    if not gs.cast(s.sink, 'increment') then\n"
                                     "      gs.send_after(nil, 'go', 1)\n"
                                     "      return {'noreply', s}\n"
                                     "    end\n"
                                     "  end\n"
                                     "  gs.send(gs.self(), 'go')\n"
                                     "  return {'noreply', s}\n"
                                     "end\n"
                                     "return Sender\n";

static const char lua_echo_src[] = "local Echo = {}\n"
                                   "function Echo.init() return {'ok', 0} end\n"
                                   "function Echo.handle_call(msg, _from, n)\n"
                                   "  return {'reply', 'ok', n}\n"
                                   "end\n"
                                   "return Echo\n";

static const char lua_caller_src[] = "local Caller = {}\n"
                                     "function Caller.init(target)\n"
                                     "  gs.send(gs.self(), 'go')\n"
                                     "  return {'ok', {target = target, n = 0, errors = 0}}\n"
                                     "end\n"
                                     "function Caller.handle_info(msg, s)\n"
                                     "  if msg ~= 'go' then\n"
                                     "    if msg[1] ~= 'gs_reply' then\n"
                                     "      s.errors = s.errors + 1\n"
                                     "      gs.send_after(nil, 'go', 1)\n"
                                     "      return {'noreply', s}\n"
                                     "    end\n"
                                     "    s.n = s.n + 1\n"
                                     "  end\n"
                                     "  if not gs.send_request(s.target, 'ping', 'echo') then\n"
                                     "    s.errors = s.errors + 1\n"
                                     "    gs.send_after(nil, 'go', 1)\n"
                                     "  end\n"
                                     "  return {'noreply', s}\n"
                                     "end\n"
                                     "function Caller.format_status(s) return {s.n, s.errors} end\n"
                                     "return Caller\n";

static const char lua_consumer_src[] =
    "local Consumer = {}\n"
    "function Consumer.init(interval_ms)\n"
    "  gs.send_after(nil, 'aggregate', interval_ms)\n"
    "  return {'ok', {interval_ms = interval_ms, batch = {}, replied = 0, flushes = 0}}\n"
    "end\n"
    "function Consumer.handle_call(msg, from, state)\n"
    "  if type(msg) == 'table' and msg[1] == 'push' and math.type(msg[2]) == 'integer' then\n"
    "    table.insert(state.batch, {from, msg[2]})\n"
    "    return {'noreply', state}\n"
    "  end\n"
    "end\n"
    "function Consumer.handle_info(msg, state)\n"
    "  if msg == 'aggregate' then\n"
    "    local sum = 0\n"
    "    for _, pushed in ipairs(state.batch) do sum = sum + pushed[2] end\n"
    "    for _, pushed in ipairs(state.batch) do gs.reply(pushed[1], 'ok') end\n"
    "    if #state.batch > 0 then state.flushes = state.flushes + 1 end\n"
    "    state.replied = state.replied + #state.batch\n"
    "    state.sum = sum\n"
    "    gs.send_after(nil, 'aggregate', state.interval_ms)\n"
    "    state.batch = {}\n"
    "  end\n"
    "  return {'noreply', state}\n"
    "end\n"
    "function Consumer.format_status(state) return {state.replied, state.flushes} end\n"
    "return Consumer\n";

static const char lua_producer_src[] =
    "local Producer = {}\n"
    "local RETRY_MS = 100\n"
    "function Producer.init(consumer)\n"
    "  gs.send(gs.self(), 'produce')\n"
    "  return {'ok', {consumer = consumer, number = 1}}\n"
    "end\n"
    "function Producer.handle_info(msg, state)\n"
    "  if msg == 'produce' then\n"
    "    if not gs.send_request(state.consumer, {'push', state.number}, state.number) then\n"
    "      gs.send_after(nil, 'produce', RETRY_MS)\n"
    "    end\n"
    "    return {'noreply', state}\n"
    "  end\n"
    "  if type(msg) == 'table' and msg[2] == state.number then\n"
    "    if msg[1] == 'gs_reply' then\n"
    "      state.number = state.number + 1\n"
    "      gs.send(gs.self(), 'produce')\n"
    "    elseif msg[1] == 'gs_error' then\n"
    "      gs.send_after(nil, 'produce', RETRY_MS)\n"
    "    end\n"
    "  end\n"
    "  return {'noreply', state}\n"
    "end\n"
    "return Producer\n";

/* The largest instruction budget the host accepts (GS_LUA_LIMITS_MAP's bound). */
#define LUA_MAX_INSTRUCTIONS 1000000000000ull

/* A runtime and a Lua host with every behaviour above loaded; the host's options are its
 * defaults, save that a server may ask for the largest budget there is. */
static void lua_begin(void)
{
    static const struct {
        const char *name, *src;
        size_t len;
    } srcs[] = {
        {"bench_lua_counter", lua_counter_src, sizeof(lua_counter_src) - 1},
        {"bench_lua_sender", lua_sender_src, sizeof(lua_sender_src) - 1},
        {"bench_lua_echo", lua_echo_src, sizeof(lua_echo_src) - 1},
        {"bench_lua_caller", lua_caller_src, sizeof(lua_caller_src) - 1},
        {"bench_lua_consumer", lua_consumer_src, sizeof(lua_consumer_src) - 1},
        {"bench_lua_producer", lua_producer_src, sizeof(lua_producer_src) - 1},
    };
    gs_lua_options_t o;
    reset_context();
    gs_lua_options_init(&o);
    o.max_instruction_limit = LUA_MAX_INSTRUCTIONS;
    int rc = gs_lua_create(g.rt, &o, &g.lua);
    if (rc != 0)
        die("gs_lua_create", rc);
    for (size_t i = 0; i < sizeof(srcs) / sizeof(srcs[0]); i++) {
        json_t *err = NULL;
        rc = gs_lua_load(g.lua, srcs[i].name, "1", srcs[i].src, srcs[i].len, NULL, &err);
        if (rc != 0) {
            fprintf(stderr, "runtime_bench: gs_lua_load %s: %s\n", srcs[i].name,
                    err != NULL ? json_string_value(err) : gs_strerror(rc));
            exit(1);
        }
    }
}

/* What went wrong in this run's lua scenarios: restarts, failed calls, unreadable counts. */
static uint64_t lua_errors;

static void lua_end(void)
{
    gs_runtime_destroy(g.rt);
    gs_lua_destroy(g.lua);
    g.lua = NULL;
}

/* Start a server of Lua behaviour b (args taken; opts may be NULL). */
static void lua_start(const char *name, const char *b, json_t *args, const gs_start_options_t *o)
{
    const gs_behaviour_t *beh = gs_behaviour_find(g.rt, b);
    json_t *reason = NULL;
    if (beh == NULL)
        die(b, GS_ENOBEHAVIOUR);
    int rc = gs_start(g.rt, name, beh, args, o, &reason);
    if (rc != 0) {
        char *why = reason != NULL ? json_dumps(reason, JSON_ENCODE_ANY) : NULL;
        fprintf(stderr, "runtime_bench: start %s (%s): %s %s\n", name, b, gs_strerror(rc),
                why != NULL ? why : "");
        exit(1);
    }
    json_decref(args);
}

/* What a Lua server shows of its state through gs_get_state: new reference, or NULL. */
static json_t *lua_state(const char *name)
{
    json_t *st = NULL;
    if (gs_get_state(g.rt, name, 10000, &st) != 0) {
        json_decref(st);
        return NULL;
    }
    return st;
}

/* The count a Lua server keeps: its state, or the first element of what it shows. */
static uint64_t lua_count(const char *name)
{
    json_t *st = lua_state(name);
    json_t *n = json_is_array(st) ? json_array_get(st, 0) : st;
    uint64_t v = json_is_integer(n) ? (uint64_t)json_integer_value(n) : 0;
    if (!json_is_integer(n))
        count(&g.errors);
    json_decref(st);
    return v;
}

/* Restarts of a server (a crash of a Lua server is an error of the scenario). */
static uint64_t restarts_of(const char *name)
{
    json_t *st = gs_server_status(g.rt, name);
    uint64_t n = (uint64_t)json_integer_value(json_object_get(st, "restarts"));
    json_decref(st);
    return n;
}

/* Events per second counted by a Lua server over the window that follows the warm-up. */
static double measure_lua(const config_t *cfg, const char *name, double window_s)
{
    sleep_s(cfg->warmup_s);
    uint64_t c0 = lua_count(name), t0 = now_ns();
    sleep_s(window_s);
    uint64_t c1 = lua_count(name), t1 = now_ns();
    return c1 > c0 ? (double)(c1 - c0) * 1e9 / (double)(t1 - t0) : 0;
}

typedef enum lua_cast_e { LUA_CAST_C_SENDER, LUA_CAST_MAX_BUDGET, LUA_CAST_LUA_SENDER } lua_cast_t;

/*
 * The Lua Counter as the sink of the cast scenario: one sender server casts "increment" (a
 * new string per message) in bursts, backing off 1 ms when the counter's mailbox is full. The
 * sender is the C one of the cast scenario, or (LUA_CAST_LUA_SENDER) a Lua server doing the
 * same with gs.cast. LUA_CAST_MAX_BUDGET starts the counter with the largest instruction
 * budget: the count hook stays (the host has no switch for it), only the budget differs.
 * Returns the rate; the caller records it (run_lua: the budget's runs are paired).
 */
static double run_lua_cast(const config_t *cfg, lua_cast_t mode)
{
    static const metric_id_t ids[] = {M_LUA_CAST, M_LUA_CAST_MAX, M_LUA_CAST_LUA};
    gs_start_options_t o;
    lua_begin();
    gs_start_options_init(&o);
    if (mode == LUA_CAST_MAX_BUDGET)
        o.instruction_limit = LUA_MAX_INSTRUCTIONS;
    lua_start("sink", "bench_lua_counter", NULL, &o);
    if (mode == LUA_CAST_LUA_SENDER) {
        lua_start("sender0", "bench_lua_sender",
                  json_pack("{s:s, s:i}", "sink", "sink", "burst", (int)g.burst), NULL);
    } else {
        g.cast_text = "increment";
        start_or_die("sender0", &sender_behaviour, NULL);
    }
    uint64_t o0 = atomic_load(&g.overloads), t0 = now_ns();
    double rate = measure_lua(cfg, "sink", cfg->window_s);
    double ovl_rate = (double)(atomic_load(&g.overloads) - o0) * 1e9 / (double)(now_ns() - t0);
    uint64_t errors = atomic_load(&g.errors) + restarts_of("sink") + restarts_of("sender0");
    atomic_store(&g.stop, 1);
    lua_end();
    lua_errors += errors;
    if (mode == LUA_CAST_LUA_SENDER)
        record(M_LUA_CAST_LUA, rate);
    else if (mode == LUA_CAST_C_SENDER)
        record(M_LUA_CAST_OVL, ovl_rate);
    if (errors != 0)
        fprintf(stderr, "  lua cast: %llu errors\n", (unsigned long long)errors);
    fprintf(stderr, "  %-50s %8.3f M msg/s (overloaded %.0f/s)\n", metrics[ids[mode]].label,
            rate / 1e6, ovl_rate);
    return rate;
}

/* A Lua caller keeping one gs.send_request in flight to a Lua echo server. */
static void run_lua_call(const config_t *cfg)
{
    lua_begin();
    lua_start("echo", "bench_lua_echo", NULL, NULL);
    lua_start("caller0", "bench_lua_caller", json_string("echo"), NULL);
    double rate = measure_lua(cfg, "caller0", cfg->window_s);
    json_t *st = lua_state("caller0");
    uint64_t errors = (uint64_t)json_integer_value(json_array_get(st, 1)) + restarts_of("echo") +
                      restarts_of("caller0") + atomic_load(&g.errors);
    json_decref(st);
    lua_end();
    record(M_LUA_CALL, rate);
    lua_errors += errors;
    fprintf(stderr, "  %-50s %8.1f k calls/s (errors %llu)\n", metrics[M_LUA_CALL].label,
            rate / 1e3, (unsigned long long)errors);
}

/* Blocky: 10,000 Lua producers, each with one push in flight, to a Lua consumer that holds
 * every `from` and answers them all every batch interval. Completed calls are the replies the
 * consumer made. */
static void run_lua_batcher(const config_t *cfg)
{
    char name[32];
    lua_begin();
    lua_start("consumer", "bench_lua_consumer", json_integer(g.batch_ms), NULL);
    uint64_t t0 = now_ns();
    for (unsigned i = 0; i < PRODUCERS; i++) {
        snprintf(name, sizeof(name), "producer%u", i);
        lua_start(name, "bench_lua_producer", json_string("consumer"), NULL);
    }
    double start_s = (double)(now_ns() - t0) / 1e9;
    double rate = measure_lua(cfg, "consumer", cfg->batcher_window_s);
    json_t *st = lua_state("consumer");
    double mean = json_integer_value(json_array_get(st, 1)) > 0
                      ? (double)json_integer_value(json_array_get(st, 0)) /
                            (double)json_integer_value(json_array_get(st, 1))
                      : 0;
    json_decref(st);
    uint64_t errors = restarts_of("consumer") + atomic_load(&g.errors);
    lua_end();
    record(M_LUA_BATCHER, rate);
    fprintf(stderr,
            "  %-50s %8.1f k calls/s (mean batch %.0f, producers started in %.2f s, errors "
            "%llu)\n",
            "Lua batcher, 10,000 Lua producers", rate / 1e3, mean, start_s,
            (unsigned long long)errors);
    lua_errors += errors;
}

/*
 * N idle Lua Counters started from the main thread: the rate, and bytes per server as the RSS
 * delta (each has its own Lua state: its globals, the chunk's functions, its state). With
 * hibernate, each init returns {"ok", 0, "hibernate"}: the state is kept as JSON text and the
 * Lua state closed. The hibernating run goes first, on the youngest heap.
 */
static void run_lua_idle(const config_t *cfg, bool hibernate)
{
    char name[32];
    unsigned n = cfg->lua_idle_servers, started = 0;
    lua_begin();
    heap_release();
    uint64_t rss0 = rss_bytes(), t0 = now_ns();
    for (unsigned i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "lua%07u", i);
        lua_start(name, "bench_lua_counter", hibernate ? json_true() : NULL, NULL);
        started++;
        if ((i & 1023) == 0 && now_ns() - t0 > (uint64_t)START_LIMIT_S * 1000000000u) {
            fprintf(stderr, "  lua idle: time limit reached after %u servers\n", started);
            break;
        }
    }
    uint64_t t1 = now_ns(), rss1 = rss_bytes();
    /* The state as inspection shows it (a hibernated server is read without waking it). */
    json_t *st = lua_state("lua0000000");
    char *text = st != NULL ? json_dumps(st, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    double state_bytes = text != NULL ? (double)strlen(text) : -1;
    free(text);
    json_decref(st);
    uint64_t t2 = now_ns();
    lua_end();
    uint64_t t3 = now_ns();
    double start_s = (double)(t1 - t0) / 1e9, per = (double)(rss1 - rss0) / started;
    record(hibernate ? M_LUA_HIB_START_RATE : M_LUA_START_RATE, started / start_s);
    record(hibernate ? M_LUA_HIB_RSS : M_LUA_IDLE_RSS, per);
    if (hibernate) {
        record(M_LUA_STATE_BYTES, state_bytes);
        metrics[M_LUA_HIB_RSS].target = 2800 + state_bytes;
    } else {
        record(M_LUA_STOP_TIME, (double)(t3 - t2) / 1e9);
    }
    fprintf(stderr,
            "  lua idle %u%s: %.1f k starts/s, %.0f B/server RSS, state %.0f B, start %.2f s, "
            "destroy %.2f s\n",
            started, hibernate ? " hibernated" : "", started / start_s / 1e3, per, state_bytes,
            start_s, (double)(t3 - t2) / 1e9);
}

static bool selected(const config_t *cfg, const char *name);

/* Whether a part of the lua group is selected: "lua" selects them all. */
static bool lua_selected(const config_t *cfg, const char *part)
{
    return selected(cfg, "lua") || selected(cfg, part);
}

static void run_lua(const config_t *cfg)
{
    lua_errors = 0;
    if (lua_selected(cfg, "lua-idle")) {
        run_lua_idle(cfg, true);
        run_lua_idle(cfg, false);
    }
    if (lua_selected(cfg, "lua-budget")) {
        /* Default, largest, largest, default: a drift of the machine's load over the four
         * windows cancels out of the difference. Each figure is the mean of its two. */
        double d1 = run_lua_cast(cfg, LUA_CAST_C_SENDER);
        double m1 = run_lua_cast(cfg, LUA_CAST_MAX_BUDGET);
        double m2 = run_lua_cast(cfg, LUA_CAST_MAX_BUDGET);
        double d2 = run_lua_cast(cfg, LUA_CAST_C_SENDER);
        double def = (d1 + d2) / 2, max = (m1 + m2) / 2;
        record(M_LUA_CAST, def);
        record(M_LUA_CAST_MAX, max);
        if (def > 0 && max > 0)
            record(M_LUA_BUDGET_NS, 1e9 / def - 1e9 / max);
    } else if (lua_selected(cfg, "lua-cast")) {
        record(M_LUA_CAST, run_lua_cast(cfg, LUA_CAST_C_SENDER));
    }
    if (lua_selected(cfg, "lua-cast-lua"))
        run_lua_cast(cfg, LUA_CAST_LUA_SENDER);
    if (lua_selected(cfg, "lua-call"))
        run_lua_call(cfg);
    if (lua_selected(cfg, "lua-batcher"))
        run_lua_batcher(cfg);
    record(M_LUA_ERRORS, (double)lua_errors);
}

/* ---------------------------------------------------------------------------------------- */
/* Report                                                                                     */
/* ---------------------------------------------------------------------------------------- */

typedef struct summary_s {
    double median, min, max;
} summary_t;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static summary_t summarize(const metric_t *m)
{
    double v[MAX_RUNS];
    memcpy(v, m->samples, (size_t)m->n * sizeof(double));
    qsort(v, (size_t)m->n, sizeof(double), cmp_double);
    summary_t s = {v[m->n / 2], v[0], v[m->n - 1]};
    if (m->n % 2 == 0)
        s.median = (v[m->n / 2 - 1] + v[m->n / 2]) / 2;
    return s;
}

static void fmt_value(char *buf, size_t len, const metric_t *m, double raw)
{
    double v = raw / m->scale;
    if (v >= 100 || v == (long long)v)
        snprintf(buf, len, "%.0f", v);
    else if (v >= 10)
        snprintf(buf, len, "%.1f", v);
    else
        snprintf(buf, len, "%.2f", v);
}

static void fmt_label(char *buf, size_t len, metric_id_t id)
{
    const char *l = metrics[id].label, *p = strstr(l, "%N");
    if (p == NULL) {
        snprintf(buf, len, "%s", l);
        return;
    }
    char num[32];
    unsigned n = label_count[id];
    if (n >= 1000000 && n % 1000000 == 0)
        snprintf(num, sizeof(num), "%u,000,000", n / 1000000);
    else if (n >= 1000 && n % 1000 == 0)
        snprintf(num, sizeof(num), "%u,000", n / 1000);
    else
        snprintf(num, sizeof(num), "%u", n);
    snprintf(buf, len, "%.*s%s%s", (int)(p - l), l, num, p + 2);
}

/* "yes", or by how much it misses. */
static void fmt_met(char *buf, size_t len, const metric_t *m, double median)
{
    if (m->tk == T_NONE)
        snprintf(buf, len, "-");
    else if (m->tk == T_AT_LEAST)
        snprintf(buf, len, median >= m->target ? "yes" : "no (%.0f%% of target)",
                 100 * median / m->target);
    else
        snprintf(buf, len, median <= m->target ? "yes" : "no (%.1fx the limit)",
                 median / m->target);
}

static void print_table(FILE *f, bool details)
{
    char label[96], med[32], lo[32], hi[32], tgt[32], met[48];
    if (!details) {
        fprintf(f, "| Scenario | genserv (median) | min | max | unit | OTP 25 (issue 2) "
                   "| Target | Met |\n");
        fprintf(f, "|---|---:|---:|---:|---|---:|---:|---|\n");
    } else {
        fprintf(f, "| Detail | median | min | max | unit |\n|---|---:|---:|---:|---|\n");
    }
    for (int i = 0; i < M_COUNT; i++) {
        const metric_t *m = &metrics[i];
        if (m->n == 0 || m->detail != details)
            continue;
        summary_t s = summarize(m);
        fmt_label(label, sizeof(label), (metric_id_t)i);
        fmt_value(med, sizeof(med), m, s.median);
        fmt_value(lo, sizeof(lo), m, s.min);
        fmt_value(hi, sizeof(hi), m, s.max);
        if (details) {
            fprintf(f, "| %s | %s | %s | %s | %s |\n", label, med, lo, hi, m->unit);
            continue;
        }
        if (m->tk == T_NONE)
            snprintf(tgt, sizeof(tgt), "-");
        else
            snprintf(tgt, sizeof(tgt), "%s %g",
                     m->tk == T_AT_LEAST ? ">=" : "<=", m->target / m->scale);
        fmt_met(met, sizeof(met), m, s.median);
        fprintf(f, "| %s | **%s** | %s | %s | %s | %s | %s | %s |\n", label, med, lo, hi, m->unit,
                m->otp, tgt, met);
    }
}

/* A "VmHWM:"-style field of /proc/self/status in KiB, or -1. */
static long long proc_status_kb(const char *field)
{
    char line[256];
    long long kb = -1;
    size_t flen = strlen(field);
    FILE *f = fopen("/proc/self/status", "r");
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, field, flen) == 0) {
            kb = strtoll(line + flen, NULL, 10);
            break;
        }
    }
    if (f != NULL)
        fclose(f);
    return kb;
}

/*
 * The results as JSON: per metric its samples in raw units (msg/s, bytes, ms), the display
 * scale and unit, median, min, max and target; and the process's peak RSS (VmHWM), which is
 * the peak of the scenarios selected with --only (bench/compare runs one at a time).
 */
static void write_json(const config_t *cfg, const char *path, unsigned schedulers)
{
    json_t *root = json_pack("{s:s, s:i, s:i, s:I}", "mode", cfg->quick ? "quick" : "full", "runs",
                             cfg->runs, "schedulers", (int)schedulers, "peak_rss_kb",
                             (json_int_t)proc_status_kb("VmHWM:"));
    json_t *res = json_object();
    for (int i = 0; i < M_COUNT; i++) {
        const metric_t *m = &metrics[i];
        if (m->n == 0)
            continue;
        summary_t s = summarize(m);
        json_t *samples = json_array();
        for (int k = 0; k < m->n; k++)
            json_array_append_new(samples, json_real(m->samples[k]));
        char label[96];
        fmt_label(label, sizeof(label), (metric_id_t)i);
        json_t *o = json_pack("{s:s, s:f, s:f, s:f, s:o, s:s, s:f, s:s}", "label", label, "median",
                              s.median, "min", s.min, "max", s.max, "samples", samples, "otp",
                              m->otp, "scale", m->scale, "unit", m->unit);
        if (m->tk != T_NONE) {
            json_object_set_new(o, "target", json_real(m->target));
            json_object_set_new(o, "target_kind",
                                json_string(m->tk == T_AT_LEAST ? "at_least" : "at_most"));
            json_object_set_new(
                o, "met",
                json_boolean(m->tk == T_AT_LEAST ? s.median >= m->target : s.median <= m->target));
        }
        json_object_set_new(res, m->key, o);
    }
    json_object_set_new(root, "results", res);
    if (json_dump_file(root, path, JSON_INDENT(2) | JSON_SORT_KEYS) != 0)
        fprintf(stderr, "runtime_bench: cannot write %s\n", path);
    json_decref(root);
}

static void print_machine(unsigned schedulers)
{
    char line[256], model[256] = "unknown", load[128] = "?";
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) == 0 && colon != NULL) {
            snprintf(model, sizeof(model), "%s", colon + 2);
            model[strcspn(model, "\n")] = '\0';
            break;
        }
    }
    if (f != NULL)
        fclose(f);
    f = fopen("/proc/loadavg", "r");
    if (f != NULL && fgets(load, sizeof(load), f) != NULL)
        load[strcspn(load, "\n")] = '\0';
    if (f != NULL)
        fclose(f);
    printf("CPU: %s, %ld online; runtime schedulers: %u (default: one per core); "
           "load average: %s\n\n",
           model, sysconf(_SC_NPROCESSORS_ONLN), schedulers, load);
}

/* ---------------------------------------------------------------------------------------- */
/* Main                                                                                       */
/* ---------------------------------------------------------------------------------------- */

static bool selected(const config_t *cfg, const char *name)
{
    if (cfg->only == NULL)
        return true;
    size_t len = strlen(name);
    for (const char *p = cfg->only; *p != '\0';) {
        size_t n = strcspn(p, ",");
        if (n == len && strncmp(p, name, len) == 0)
            return true;
        p += n + (p[n] == ',');
    }
    return false;
}

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: runtime_bench [--quick] [--runs N] [--json FILE] [--only LIST]\n"
        "  --quick      smaller counts and windows (under 30 s in all)\n"
        "  --runs N     repeat each scenario N times (default 3, at most %d)\n"
        "  --json FILE  also write the results as JSON, with the peak RSS\n"
        "  --only LIST  comma-separated: idle,cast,cast-threads,call,timers,batcher,lua\n"
        "               (cast: cast-1,cast-100; call: call-1,call-100;\n"
        "                lua: lua-idle,lua-cast,lua-budget,lua-cast-lua,lua-call,lua-batcher)\n",
        MAX_RUNS);
}

static void parse_args(int argc, char **argv, config_t *cfg)
{
    *cfg = (config_t){.runs = 3, .batch_ms = DEFAULT_BATCH_MS, .burst = DEFAULT_BURST};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            cfg->quick = true;
        } else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
            cfg->runs = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc) {
            cfg->json_path = argv[++i];
        } else if (strcmp(argv[i], "--burst") == 0 && i + 1 < argc) {
            cfg->burst = (unsigned)atoi(argv[++i]);
        } else if (strcmp(argv[i], "--batch-interval") == 0 && i + 1 < argc) {
            cfg->batch_ms = (unsigned)atoi(argv[++i]);
        } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
            cfg->only = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            exit(0);
        } else {
            usage(stderr);
            exit(2);
        }
    }
    if (cfg->runs < 1 || cfg->runs > MAX_RUNS || cfg->batch_ms < 1 || cfg->batch_ms > 10000 ||
        cfg->burst < 1 || cfg->burst > 100000) {
        usage(stderr);
        exit(2);
    }
    if (cfg->quick) {
        cfg->warmup_s = 0.1;
        cfg->window_s = 0.4;
        cfg->batcher_window_s = 0.8;
        cfg->idle_servers = 100000;
        cfg->lua_idle_servers = 100000;
        cfg->timers = 100000;
        cfg->timer_min_ms = 500;
        cfg->timer_max_ms = 1500;
    } else {
        cfg->warmup_s = 0.5;
        cfg->window_s = 2.0;
        cfg->batcher_window_s = 3.0;
        cfg->idle_servers = 1000000;
        cfg->lua_idle_servers = 100000;
        cfg->timers = 1000000;
        cfg->timer_min_ms = 1000;
        cfg->timer_max_ms = 3000;
    }
}

int main(int argc, char **argv)
{
    config_t cfg;
    parse_args(argc, argv, &cfg);
    signal(SIGALRM, watchdog_cb);
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* Immortal constants (see the top of the file); handlers tell go and flush apart by
     * pointer, so those two differ from each other and from the payloads. */
    g.msg = json_null();
    g.go = json_true();
    g.ok = json_null();
    g.tag = json_null();
    g.push = json_null();
    g.flush = json_false();
    g.batch_ms = cfg.batch_ms;
    g.burst = cfg.burst;
    label_count[M_START_RATE] = label_count[M_START_TIME] = cfg.idle_servers;
    label_count[M_TIMER_RATE] = cfg.timers;
    label_count[M_BATCHER] = label_count[M_LUA_BATCHER] = PRODUCERS;
    label_count[M_LUA_START_RATE] = label_count[M_LUA_HIB_START_RATE] = cfg.lua_idle_servers;

    gs_runtime_t *probe;
    int rc = gs_runtime_create(NULL, &probe);
    if (rc != 0)
        die("gs_runtime_create", rc);
    unsigned schedulers = gs_runtime_schedulers(probe);
    gs_runtime_destroy(probe);

    printf("# genserv runtime_bench (%s mode, %d run%s per scenario)\n\n",
           cfg.quick ? "quick" : "full", cfg.runs, cfg.runs == 1 ? "" : "s");
    print_machine(schedulers);
    for (int r = 0; r < cfg.runs; r++) {
        fprintf(stderr, "run %d/%d\n", r + 1, cfg.runs);
        /* The idle scenario goes first, while the heap is young, for a clean RSS delta. */
        alarm(RUN_LIMIT_S);
        if (selected(&cfg, "idle"))
            run_idle(&cfg);
        if (selected(&cfg, "cast") || selected(&cfg, "cast-1"))
            run_cast(&cfg, 1, false);
        if (selected(&cfg, "cast") || selected(&cfg, "cast-100"))
            run_cast(&cfg, 100, false);
        if (selected(&cfg, "cast-threads")) {
            run_cast(&cfg, 1, true);
            run_cast(&cfg, 100, true);
        }
        if (selected(&cfg, "call") || selected(&cfg, "call-1"))
            run_call(&cfg, 1);
        if (selected(&cfg, "call") || selected(&cfg, "call-100"))
            run_call(&cfg, 100);
        if (selected(&cfg, "timers"))
            run_timers(&cfg);
        if (selected(&cfg, "batcher"))
            run_batcher(&cfg);
        if (lua_selected(&cfg, "lua-idle") || lua_selected(&cfg, "lua-cast") ||
            lua_selected(&cfg, "lua-budget") || lua_selected(&cfg, "lua-cast-lua") ||
            lua_selected(&cfg, "lua-call") || lua_selected(&cfg, "lua-batcher"))
            run_lua(&cfg);
        alarm(0);
    }

    print_table(stdout, false);
    printf("\n");
    print_table(stdout, true);
    if (cfg.json_path != NULL)
        write_json(&cfg, cfg.json_path, schedulers);

    json_decref(g.msg);
    json_decref(g.go);
    json_decref(g.ok);
    json_decref(g.tag);
    json_decref(g.push);
    json_decref(g.flush);
    return 0;
}
