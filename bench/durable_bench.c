/*
 * durable_bench.c: what durability costs the runtime (issue 15). It embeds the runtime, the
 * built-in counter and the SQLite store through their public headers only (genserv.h,
 * builtins.h, store.h), like any embedding program, and measures:
 *
 *   cast      N counters (default 64) started durable on a store opened in a fresh temporary
 *             directory; T external threads (default 2) cast "increment" to them round
 *             robin for a window after a warm-up, each cast with a `handled` acknowledgement
 *             (gs_cast_opts), which the output gate lets run only once the change committed.
 *             The rate is acknowledgements per second over the window. A sender keeps at most
 *             INFLIGHT casts unacknowledged. Then the senders stop, every accepted cast must be
 *             acknowledged, and a get_count call to every counter (its reply, too, leaves only
 *             after the counter's earlier changes committed) must add up to the
 *             acknowledgements exactly (the audit: acknowledged and not counted is "lost";
 *             the reverse is an error). The store's statistics give the transactions
 *             committed and how many servers' changes each carried (the group commit). The
 *             same scenario without a store (the counters in memory) is the reference.
 *   latency   one external thread, one counter: cast "increment" then call get_count, whose
 *             reply waits for the increment's commit; the round trip's p50 and p99, durable
 *             and in memory, and the store's own submit-to-commit mean for the durable run.
 *
 * A counter's mailbox is bounded (MAILBOX, below the default): were a sender to outrun the
 * store, it meets back-pressure (GS_EOVERLOADED, counted; it moves on to the next counter).
 *
 * Every scenario runs --runs times in a runtime and a store of its own (median, min and max are
 * printed), bounded by a watchdog. --json writes the samples in runtime_bench's shape, which
 * bench/compare/run.sh reads.
 *
 * Usage: durable_bench [--quick] [--runs N] [--json FILE] [--only cast,latency] [--dir DIR]
 *                      [--servers N] [--threads T] [--durability process|power]
 *                      [--memory-first]
 */
#include <genserv/builtins.h>
#include <genserv/genserv.h>
#include <genserv/store.h>

#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_RUNS    15
#define MAX_SERVERS 4096
#define MAX_THREADS 64
#define MAILBOX     1024 /* a counter's mailbox bound (see the top of the file) */
#define CALL_MS     60000
#define RUN_LIMIT_S 300
#define CACHELINE   64
#define LAT_MAX     (1u << 22) /* round trips kept for the percentiles */

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                    */
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

static void die(const char *what, int rc)
{
    fprintf(stderr, "durable_bench: %s: %s\n", what, rc < 0 ? gs_strerror(rc) : "failed");
    exit(1);
}

static void watchdog_cb(int sig)
{
    static const char msg[] = "durable_bench: a run exceeded its time limit\n";
    (void)sig;
    ssize_t w = write(STDERR_FILENO, msg, sizeof(msg) - 1);
    (void)w;
    _exit(2);
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Remove a run's directory and everything in it. */
static void rm_tree(const char *dir)
{
    if (nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "durable_bench: cannot remove %s: %s\n", dir, strerror(errno));
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ---------------------------------------------------------------------------------------- */
/* Configuration and results                                                                  */
/* ---------------------------------------------------------------------------------------- */

typedef struct config_s {
    bool quick;
    int runs;
    const char *json_path;
    const char *only;
    const char *dir; /* where the runs' temporary directories go */
    unsigned servers, threads;
    gs_durability_t durability;
    bool memory_first; /* run the in-memory side of each pair first */
    double warmup_s, window_s;
} config_t;

typedef enum metric_id_e {
    M_CAST,
    M_CAST_MEM,
    M_LAT_P50,
    M_LAT_P99,
    M_LAT_MEM_P50,
    M_LAT_MEM_P99,
    M_COMMIT_MEAN,
    /* Details */
    M_COMMITS,
    M_GROUP,
    M_CAST_OVL,
    M_LOST,
    M_ERRORS,
    M_COUNT
} metric_id_t;

typedef struct metric_s {
    const char *key, *label, *unit;
    double scale;
    double target; /* at least, raw units; 0: none */
    bool detail;
    double samples[MAX_RUNS];
    int n;
} metric_t;

/* A row of the table (target: at least, in raw units; 0: none), and a row of details. */
#define METRIC(k, l, u, s, t)                                                                      \
    {                                                                                              \
        .key = (k), .label = (l), .unit = (u), .scale = (s), .target = (t)                         \
    }
#define DETAIL(k, l, u)                                                                            \
    {                                                                                              \
        .key = (k), .label = (l), .unit = (u), .scale = 1, .detail = true                          \
    }

static metric_t metrics[M_COUNT] = {
    [M_CAST] = METRIC("durable_cast_committed", "durable counters: committed state changes",
                      "k changes/s", 1e3, 200e3),
    [M_CAST_MEM] = METRIC("memory_cast_changes", "the same counters in memory: state changes",
                          "k changes/s", 1e3, 0),
    [M_LAT_P50] =
        METRIC("durable_call_p50_us", "cast + call round trip, durable counter: p50", "us", 1e3, 0),
    [M_LAT_P99] =
        METRIC("durable_call_p99_us", "cast + call round trip, durable counter: p99", "us", 1e3, 0),
    [M_LAT_MEM_P50] = METRIC("memory_call_p50_us", "cast + call round trip, counter in memory: p50",
                             "us", 1e3, 0),
    [M_LAT_MEM_P99] = METRIC("memory_call_p99_us", "cast + call round trip, counter in memory: p99",
                             "us", 1e3, 0),
    [M_COMMIT_MEAN] =
        METRIC("store_commit_mean_us", "store: submit to commit, mean (latency run)", "us", 1e3, 0),
    [M_COMMITS] = DETAIL("durable_cast_transactions", "cast run: transactions committed", "/s"),
    [M_GROUP] = DETAIL("durable_cast_batches_per_commit",
                       "cast run: servers' changes (batches) per transaction", "batches"),
    [M_CAST_OVL] =
        DETAIL("durable_cast_overloaded", "cast run: casts refused, mailbox full", "per run"),
    [M_LOST] = DETAIL("durable_cast_lost", "cast run: acknowledged casts missing from the counts",
                      "per run"),
    [M_ERRORS] = DETAIL("durable_errors", "failed casts, calls and commits; unacknowledged casts",
                        "per run"),
};

static void record(metric_id_t id, double v)
{
    metric_t *m = &metrics[id];
    if (m->n < MAX_RUNS)
        m->samples[m->n++] = v;
}

/* ---------------------------------------------------------------------------------------- */
/* One runtime with (or without) a store                                                      */
/* ---------------------------------------------------------------------------------------- */

typedef struct bench_rt_s {
    gs_runtime_t *rt;
    gs_store_t *st; /* NULL: in memory */
    char dir[4096];
} bench_rt_t;

/* The store directory of the run under way, removed at exit if a failure ends the program
 * first (main thread only). */
static char live_dir[4096];

static void live_dir_cleanup(void)
{
    if (live_dir[0] != '\0')
        rm_tree(live_dir);
}

static void bench_rt_create(const config_t *cfg, bool durable, bench_rt_t *b)
{
    char err[512] = "";
    gs_runtime_options_t o;
    memset(b, 0, sizeof(*b));
    if (durable) {
        snprintf(b->dir, sizeof(b->dir), "%s/durable_bench.XXXXXX", cfg->dir);
        if (mkdtemp(b->dir) == NULL) {
            fprintf(stderr, "durable_bench: mkdtemp %s: %s\n", b->dir, strerror(errno));
            exit(1);
        }
        memcpy(live_dir, b->dir, sizeof(live_dir));
        int rc = gs_store_sqlite_open(b->dir, cfg->durability, &b->st, err, sizeof(err));
        if (rc != 0) {
            fprintf(stderr, "durable_bench: gs_store_sqlite_open: %s\n", err);
            exit(1);
        }
    }
    gs_runtime_options_init(&o);
    o.store = b->st;
    int rc = gs_runtime_create(&o, &b->rt);
    if (rc != 0)
        die("gs_runtime_create", rc);
    rc = gs_builtins_register(b->rt);
    if (rc != 0)
        die("gs_builtins_register", rc);
}

/* The store after the runtime (gs_store_t's rule), then the directory. */
static void bench_rt_destroy(bench_rt_t *b)
{
    gs_runtime_destroy(b->rt);
    if (b->st != NULL) {
        b->st->destroy(b->st);
        rm_tree(b->dir);
        live_dir[0] = '\0';
    }
}

static void start_counter(bench_rt_t *b, const char *name)
{
    gs_start_options_t so;
    json_t *reason = NULL;
    gs_start_options_init(&so);
    so.durable = b->st != NULL;
    so.mailbox_limit = MAILBOX;
    int rc = gs_start(b->rt, name, &gs_builtin_counter, NULL, &so, &reason);
    if (rc != 0) {
        char *why = reason != NULL ? json_dumps(reason, JSON_ENCODE_ANY) : NULL;
        fprintf(stderr, "durable_bench: start %s: %s %s\n", name, gs_strerror(rc),
                why != NULL ? why : "");
        exit(1);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Reading the counts: get_count to every counter at once                                    */
/* ---------------------------------------------------------------------------------------- */

static _Atomic uint64_t errors; /* failed casts, calls and commits of the scenario */

typedef struct reading_s {
    _Atomic unsigned pending;
    _Atomic uint64_t sum;
} reading_t;

static void count_cb(int status, json_t *result, void *arg)
{
    reading_t *r = arg;
    if (status == 0 && json_is_integer(result))
        /* relaxed: the main thread reads sum after it sees pending reach 0 (acquire below) */
        atomic_fetch_add_explicit(&r->sum, (uint64_t)json_integer_value(result),
                                  memory_order_relaxed);
    else
        atomic_fetch_add_explicit(&errors, 1, memory_order_relaxed); /* a statistic */
    json_decref(result);
    /* release: publishes this callback's addition to sum to the thread that waits */
    atomic_fetch_sub_explicit(&r->pending, 1, memory_order_release);
}

/* The sum of every counter's count, each read once its earlier changes are committed (the
 * output gate holds a durable server's reply until then). Mailboxes must have room. */
static uint64_t read_counts(gs_server_t **srv, unsigned n)
{
    reading_t r;
    atomic_init(&r.pending, n);
    atomic_init(&r.sum, 0);
    for (unsigned i = 0; i < n; i++) {
        int rc = gs_call_server_async(srv[i], json_string("get_count"), CALL_MS, count_cb, &r);
        if (rc != 0) {
            atomic_fetch_add_explicit(&errors, 1, memory_order_relaxed);    /* a statistic */
            atomic_fetch_sub_explicit(&r.pending, 1, memory_order_relaxed); /* ours alone */
        }
    }
    /* acquire: pairs with count_cb's release, so every addition to sum is visible */
    while (atomic_load_explicit(&r.pending, memory_order_acquire) != 0)
        sleep_s(0.0001);
    return atomic_load_explicit(&r.sum, memory_order_relaxed);
}

/* ---------------------------------------------------------------------------------------- */
/* cast                                                                                       */
/* ---------------------------------------------------------------------------------------- */

/*
 * A sender thread casts "increment" to its counters round robin, each cast with a `handled`
 * acknowledgement: it runs once the change committed (durable) or was handled (in memory).
 * The sender keeps at most INFLIGHT casts unacknowledged, as a client that wants to know what
 * was committed would, so that mailboxes stay short and the count of acknowledgements is the
 * count of committed changes, to the message.
 */
#define INFLIGHT 8192

typedef struct sender_s {
    _Alignas(CACHELINE) _Atomic uint64_t acked; /* written by handled_cb on runtime threads */
    _Atomic uint64_t nacked;                    /* acknowledged with an error */
    _Alignas(CACHELINE) gs_runtime_t *rt;
    char (*names)[16];
    unsigned first, n, step; /* counters first, first + step, ... (n of them) */
    _Atomic int *stop;
    uint64_t accepted, overloaded; /* the sender's own; main reads them after the join */
} sender_t;

static void handled_cb(int status, void *arg)
{
    sender_t *s = arg;
    /* relaxed: tallies; the sender reads them to pace itself and main reads them after the
     * runtime is destroyed (which joins every thread that runs this) */
    if (status == 0)
        atomic_fetch_add_explicit(&s->acked, 1, memory_order_relaxed);
    else
        atomic_fetch_add_explicit(&s->nacked, 1, memory_order_relaxed);
}

static uint64_t acked_of(sender_t *s)
{
    return atomic_load_explicit(&s->acked, memory_order_relaxed) + /* see handled_cb */
           atomic_load_explicit(&s->nacked, memory_order_relaxed);
}

static void *sender_main(void *arg)
{
    sender_t *s = arg;
    gs_send_options_t o = {.handled = handled_cb, .handled_arg = s};
    unsigned k = 0, refused = 0;
    /* relaxed: a sender that casts one more time after the flag is harmless */
    while (!atomic_load_explicit(s->stop, memory_order_relaxed)) {
        if (s->accepted - acked_of(s) >= INFLIGHT) {
            sleep_s(0.00005);
            continue;
        }
        int rc =
            gs_cast_opts(s->rt, s->names[s->first + k * s->step], json_string("increment"), &o);
        if (rc == 0) {
            s->accepted++;
            refused = 0;
        } else if (rc == GS_EOVERLOADED) {
            s->overloaded++;
            /* Every counter of ours is full: let the schedulers and the store catch up. */
            if (++refused == s->n) {
                sleep_s(0.0002);
                refused = 0;
            }
        } else {
            atomic_fetch_add_explicit(&errors, 1, memory_order_relaxed); /* a statistic */
        }
        k = k + 1 == s->n ? 0 : k + 1;
    }
    return NULL;
}

static uint64_t acked_sum(sender_t *senders, unsigned n)
{
    uint64_t sum = 0;
    for (unsigned t = 0; t < n; t++)
        sum += atomic_load_explicit(&senders[t].acked, memory_order_relaxed); /* see handled_cb */
    return sum;
}

static void run_cast(const config_t *cfg, bool durable)
{
    static char names[MAX_SERVERS][16];
    static sender_t senders[MAX_THREADS];
    bench_rt_t b;
    gs_server_t *srv[MAX_SERVERS];
    pthread_t tids[MAX_THREADS];
    _Atomic int stop;
    unsigned nthreads = cfg->threads < cfg->servers ? cfg->threads : cfg->servers;

    atomic_init(&stop, 0);
    atomic_store(&errors, 0);
    bench_rt_create(cfg, durable, &b);
    for (unsigned i = 0; i < cfg->servers; i++) {
        snprintf(names[i], sizeof(names[i]), "c%04u", i);
        start_counter(&b, names[i]);
        srv[i] = gs_whereis(b.rt, names[i]);
        if (srv[i] == NULL)
            die(names[i], GS_ENOSERVER);
    }
    for (unsigned t = 0; t < nthreads; t++) {
        senders[t] = (sender_t){.rt = b.rt,
                                .names = names,
                                .first = t,
                                .n = (cfg->servers - t + nthreads - 1) / nthreads,
                                .step = nthreads,
                                .stop = &stop};
        atomic_init(&senders[t].acked, 0);
        atomic_init(&senders[t].nacked, 0);
        if (pthread_create(&tids[t], NULL, sender_main, &senders[t]) != 0)
            die("pthread_create", 0);
    }
    gs_store_stats_t s0 = {0}, s1 = {0};
    sleep_s(cfg->warmup_s);
    uint64_t t0 = now_ns(), a0 = acked_sum(senders, nthreads);
    if (b.st != NULL)
        b.st->stats(b.st, &s0);
    sleep_s(cfg->window_s);
    uint64_t t1 = now_ns(), a1 = acked_sum(senders, nthreads);
    if (b.st != NULL)
        b.st->stats(b.st, &s1);
    atomic_store_explicit(&stop, 1, memory_order_relaxed); /* see sender_main */
    uint64_t accepted = 0, overloaded = 0, acked = 0, nacked = 0;
    for (unsigned t = 0; t < nthreads; t++) {
        pthread_join(tids[t], NULL);
        accepted += senders[t].accepted;
        overloaded += senders[t].overloaded;
    }
    /* The audit: once every accepted cast is acknowledged, the counters' committed counts add
     * up to the acknowledged casts, no more, no less. */
    uint64_t deadline = now_ns() + (uint64_t)CALL_MS * 1000000u;
    for (unsigned t = 0; t < nthreads; t++)
        while (acked_of(&senders[t]) < senders[t].accepted && now_ns() < deadline)
            sleep_s(0.0001);
    for (unsigned t = 0; t < nthreads; t++) {
        acked += atomic_load_explicit(&senders[t].acked, memory_order_relaxed); /* handled_cb */
        nacked += atomic_load_explicit(&senders[t].nacked, memory_order_relaxed);
    }
    uint64_t counted = read_counts(srv, cfg->servers);
    for (unsigned i = 0; i < cfg->servers; i++)
        gs_server_unref(srv[i]);
    gs_store_stats_t s2 = {0};
    if (b.st != NULL)
        b.st->stats(b.st, &s2); /* its failed transactions, over the whole run */
    bench_rt_destroy(&b);

    double secs = (double)(t1 - t0) / 1e9;
    double rate = (double)(a1 - a0) / secs;
    /* lost: acknowledged and not counted; the other way round (counted, never acknowledged,
     * or never accepted) is an error too. */
    uint64_t lost = acked > counted ? acked - counted : 0;
    uint64_t errs = atomic_load(&errors) + nacked + s2.errors + (accepted - acked - nacked) +
                    (counted > acked ? counted - acked : 0);
    record(durable ? M_CAST : M_CAST_MEM, rate);
    if (durable) {
        uint64_t commits = s1.commits - s0.commits, batches = s1.batches - s0.batches;
        record(M_COMMITS, (double)commits / secs);
        record(M_GROUP, commits > 0 ? (double)batches / (double)commits : 0);
        record(M_CAST_OVL, (double)overloaded);
        record(M_LOST, (double)lost);
        record(M_ERRORS, (double)errs);
        fprintf(stderr,
                "  %-48s %8.1f k changes/s (%.0f transactions/s, %.1f servers' changes each; "
                "overloaded %llu; acknowledged %llu, counted %llu, lost %llu, errors %llu)\n",
                metrics[M_CAST].label, rate / 1e3, (double)commits / secs,
                commits > 0 ? (double)batches / (double)commits : 0, (unsigned long long)overloaded,
                (unsigned long long)acked, (unsigned long long)counted, (unsigned long long)lost,
                (unsigned long long)errs);
    } else {
        fprintf(stderr,
                "  %-48s %8.1f k changes/s (acknowledged %llu, counted %llu, lost %llu, "
                "errors %llu)\n",
                metrics[M_CAST_MEM].label, rate / 1e3, (unsigned long long)acked,
                (unsigned long long)counted, (unsigned long long)lost, (unsigned long long)errs);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* latency                                                                                    */
/* ---------------------------------------------------------------------------------------- */

static uint64_t lat[LAT_MAX];

static double percentile(uint64_t *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)v[i];
}

static void run_latency(const config_t *cfg, bool durable)
{
    bench_rt_t b;
    size_t n = 0;
    uint64_t errs = 0;
    bench_rt_create(cfg, durable, &b);
    start_counter(&b, "lat");
    gs_store_stats_t s0 = {0}, s1 = {0};
    uint64_t t_start = now_ns(), t_window = t_start + (uint64_t)(cfg->warmup_s * 1e9),
             t_end = t_window + (uint64_t)(cfg->window_s * 1e9);
    bool counting = false;
    for (uint64_t t = t_start; t < t_end && n < LAT_MAX;) {
        if (!counting && t >= t_window) {
            counting = true;
            if (b.st != NULL)
                b.st->stats(b.st, &s0);
        }
        json_t *reply = NULL;
        int rc = gs_cast(b.rt, "lat", json_string("increment"));
        if (rc == 0)
            rc = gs_call(b.rt, "lat", json_string("get_count"), CALL_MS, &reply);
        json_decref(reply);
        uint64_t t2 = now_ns();
        if (rc != 0)
            errs++;
        else if (counting)
            lat[n++] = t2 - t;
        t = t2;
    }
    if (b.st != NULL)
        b.st->stats(b.st, &s1);
    bench_rt_destroy(&b);
    qsort(lat, n, sizeof(lat[0]), cmp_u64);
    double p50 = percentile(lat, n, 0.50), p99 = percentile(lat, n, 0.99);
    record(durable ? M_LAT_P50 : M_LAT_MEM_P50, p50);
    record(durable ? M_LAT_P99 : M_LAT_MEM_P99, p99);
    double mean = 0;
    if (durable) {
        uint64_t batches = s1.batches - s0.batches;
        mean = batches > 0 ? (double)(s1.latency_ns_sum - s0.latency_ns_sum) / (double)batches : 0;
        record(M_COMMIT_MEAN, mean);
        errs += s1.errors;
    }
    atomic_fetch_add(&errors, errs);
    fprintf(stderr, "  cast + call round trip, %-9s p50 %7.1f us, p99 %7.1f us (%zu round trips%s",
            durable ? "durable:" : "in memory:", p50 / 1e3, p99 / 1e3, n, durable ? "" : ")\n");
    if (durable)
        fprintf(stderr, "; store submit to commit: mean %.1f us)\n", mean / 1e3);
    if (errs != 0)
        fprintf(stderr, "  latency: %llu errors\n", (unsigned long long)errs);
}

/* ---------------------------------------------------------------------------------------- */
/* Report                                                                                     */
/* ---------------------------------------------------------------------------------------- */

typedef struct summary_s {
    double median, min, max;
} summary_t;

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

static void print_table(FILE *f, const config_t *cfg)
{
    fprintf(f,
            "| Scenario (%u counters, %u sender threads, durability %s) | median | min | max "
            "| unit | target | met |\n|---|---:|---:|---:|---|---:|---|\n",
            cfg->servers, cfg->threads,
            cfg->durability == GS_DURABILITY_POWER ? "power" : "process");
    for (int i = 0; i < M_COUNT; i++) {
        const metric_t *m = &metrics[i];
        if (m->n == 0)
            continue;
        summary_t s = summarize(m);
        char tgt[32] = "-", met[8] = "-";
        if (m->target > 0) {
            snprintf(tgt, sizeof(tgt), ">= %g", m->target / m->scale);
            snprintf(met, sizeof(met), "%s", s.median >= m->target ? "yes" : "NO");
        }
        fprintf(f, "| %s%s | %.1f | %.1f | %.1f | %s | %s | %s |\n", m->detail ? "detail: " : "",
                m->label, s.median / m->scale, s.min / m->scale, s.max / m->scale, m->unit, tgt,
                met);
    }
}

static long long peak_rss_kb(void)
{
    char line[256];
    long long kb = -1;
    FILE *f = fopen("/proc/self/status", "r");
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "VmHWM:", 6) == 0) {
            kb = strtoll(line + 6, NULL, 10);
            break;
        }
    if (f != NULL)
        fclose(f);
    return kb;
}

/* runtime_bench's JSON: per metric its samples in raw units, scale, unit and label. */
static void write_json(const config_t *cfg)
{
    json_t *root =
        json_pack("{s:s, s:i, s:i, s:i, s:s, s:I}", "mode", cfg->quick ? "quick" : "full", "runs",
                  cfg->runs, "servers", (int)cfg->servers, "threads", (int)cfg->threads,
                  "durability", cfg->durability == GS_DURABILITY_POWER ? "power" : "process",
                  "peak_rss_kb", (json_int_t)peak_rss_kb());
    json_t *res = json_object();
    for (int i = 0; i < M_COUNT; i++) {
        const metric_t *m = &metrics[i];
        if (m->n == 0)
            continue;
        summary_t s = summarize(m);
        json_t *samples = json_array();
        for (int k = 0; k < m->n; k++)
            json_array_append_new(samples, json_real(m->samples[k]));
        json_t *o = json_pack("{s:s, s:f, s:f, s:f, s:o, s:f, s:s, s:b}", "label", m->label,
                              "median", s.median, "min", s.min, "max", s.max, "samples", samples,
                              "scale", m->scale, "unit", m->unit, "detail", m->detail);
        if (m->target > 0) {
            json_object_set_new(o, "target", json_real(m->target));
            json_object_set_new(o, "met", json_boolean(s.median >= m->target));
        }
        json_object_set_new(res, m->key, o);
    }
    json_object_set_new(root, "results", res);
    if (json_dump_file(root, cfg->json_path, JSON_INDENT(2) | JSON_SORT_KEYS) != 0)
        fprintf(stderr, "durable_bench: cannot write %s\n", cfg->json_path);
    json_decref(root);
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
    fprintf(f,
            "usage: durable_bench [--quick] [--runs N] [--json FILE] [--only cast,latency]\n"
            "                     [--dir DIR] [--servers N] [--threads T]\n"
            "                     [--durability process|power] [--memory-first]\n"
            "  --quick       short windows (0.2 s warm-up, 1 s window)\n"
            "  --runs N      repeat each scenario N times (default 3, at most %d)\n"
            "  --json FILE   also write the results as JSON\n"
            "  --only LIST   cast, latency (default both)\n"
            "  --dir DIR     where each run's store directory is made (default $TMPDIR or /tmp)\n"
            "  --servers N   durable counters in the cast scenario (default 64, at most %d)\n"
            "  --threads T   sender threads in the cast scenario (default 2, at most %d)\n"
            "  --durability  process (default) or power\n"
            "  --memory-first  each pair of runs starts with the one in memory (then every other\n"
            "                run; default: durable first)\n",
            MAX_RUNS, MAX_SERVERS, MAX_THREADS);
}

static void parse_args(int argc, char **argv, config_t *cfg)
{
    const char *tmp = getenv("TMPDIR");
    *cfg = (config_t){.runs = 3,
                      .dir = tmp != NULL && *tmp != '\0' ? tmp : "/tmp",
                      .servers = 64,
                      .threads = 2,
                      .durability = GS_DURABILITY_PROCESS};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--quick") == 0) {
            cfg->quick = true;
            continue;
        }
        if (strcmp(a, "--memory-first") == 0) {
            cfg->memory_first = true;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (v == NULL) {
            usage(stderr);
            exit(2);
        }
        i++;
        if (strcmp(a, "--runs") == 0)
            cfg->runs = atoi(v);
        else if (strcmp(a, "--json") == 0)
            cfg->json_path = v;
        else if (strcmp(a, "--only") == 0)
            cfg->only = v;
        else if (strcmp(a, "--dir") == 0)
            cfg->dir = v;
        else if (strcmp(a, "--servers") == 0)
            cfg->servers = (unsigned)atoi(v);
        else if (strcmp(a, "--threads") == 0)
            cfg->threads = (unsigned)atoi(v);
        else if (strcmp(a, "--durability") == 0 && strcmp(v, "process") == 0)
            cfg->durability = GS_DURABILITY_PROCESS;
        else if (strcmp(a, "--durability") == 0 && strcmp(v, "power") == 0)
            cfg->durability = GS_DURABILITY_POWER;
        else {
            usage(stderr);
            exit(2);
        }
    }
    if (cfg->runs < 1 || cfg->runs > MAX_RUNS || cfg->servers < 1 || cfg->servers > MAX_SERVERS ||
        cfg->threads < 1 || cfg->threads > MAX_THREADS) {
        usage(stderr);
        exit(2);
    }
    cfg->warmup_s = cfg->quick ? 0.2 : 0.5;
    cfg->window_s = cfg->quick ? 1.0 : 3.0;
}

int main(int argc, char **argv)
{
    config_t cfg;
    parse_args(argc, argv, &cfg);
    atexit(live_dir_cleanup);
    signal(SIGALRM, watchdog_cb);
    setvbuf(stdout, NULL, _IOLBF, 0);

    printf("# genserv durable_bench (%s mode, %d run%s per scenario, store in %s)\n\n",
           cfg.quick ? "quick" : "full", cfg.runs, cfg.runs == 1 ? "" : "s", cfg.dir);
    for (int r = 0; r < cfg.runs; r++) {
        fprintf(stderr, "run %d/%d\n", r + 1, cfg.runs);
        alarm(RUN_LIMIT_S);
        /* Which side goes first alternates, so that a drift of the machine's load over the
         * runs does not fall on one side only. */
        bool first = (r % 2 == 0) != cfg.memory_first;
        if (selected(&cfg, "cast")) {
            run_cast(&cfg, first);
            run_cast(&cfg, !first);
        }
        if (selected(&cfg, "latency")) {
            run_latency(&cfg, first);
            run_latency(&cfg, !first);
        }
        alarm(0);
    }
    print_table(stdout, &cfg);
    if (cfg.json_path != NULL)
        write_json(&cfg);
    return 0;
}
