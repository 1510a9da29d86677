/*
 * soak.c: the real genserv under a mixed load for a bounded time, then an audit.
 *
 * Workers (threads, each with its own keep-alive connection) do, at random, for --seconds:
 *   - casts of "increment" to one of K counters (every 202 is an acknowledged increment);
 *   - calls of "get_count" to those counters (a count never goes backwards);
 *   - send_after of a message to a receiver, 0-200 ms ahead (every 202 is a promised delivery);
 *   - pushes to a batcher that holds them until its next flush (every push must be answered);
 *   - calls to "misbehaving", which calls itself, crashes with calling_self and is restarted;
 *   - starts and stops of short-lived servers under fresh names;
 *   - calls with a 1 ms timeout to the slow server (a 504: slow lets the sleeper go, or its
 *     late reply is dropped);
 *   - every so often, a client that disconnects while its batcher push is held.
 * Then, once the load has stopped and settled (no call held open, no call held by a server, every
 * acknowledged timer delivered: facts read from genserv, not a sleep), the audit. Every line
 * compares two numbers obtained independently, mostly what the clients were told against
 * what genserv reports, and prints both:
 *   - every request got an HTTP answer (requests sent vs answers received), and every answer
 *     was one the contract allows (answers vs allowed answers);
 *   - per route, the answers the clients got vs the answers genserv counted in /metrics;
 *   - each counter's count vs the casts acknowledged to it: each counted exactly once;
 *   - the receiver's count vs the send_afters acknowledged;
 *   - the batcher's total vs the sum the acknowledged pushes carried;
 *   - misbehaving's restarts vs the calls that saw it crash;
 *   - the 504s the clients got vs the sleepers slow let go plus the late replies dropped
 *     (less those to clients that hung up, counted apart);
 *   - the clients that hung up on a held push vs the callers genserv saw go;
 *   - the servers left behind by the clients' count (starts - stops) vs genserv's;
 *   - no get_count reply went backwards (replies vs replies in order);
 *   - genserv's memory (VmRSS) after the load vs after the warm-up, plus a slack;
 *   - genserv still serves (the status /healthz answers), and exits 0 on SIGTERM.
 *
 * Usage: soak [--seconds N] [--workers N] [--rss-slack-mb N]   (genserv: the build's binary)
 * CTest runs it for 60 s (label "soak"); run it longer by hand: build/tests/soak/soak
 * --seconds 3600.
 * Exit 0 when the audit passes, 1 with the reasons printed otherwise. The child genserv is
 * always stopped by PID (also on failure, by the harness's atexit handler and watchdog).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h> /* the harness's assertions; the soak itself reports by exit status */

#include "harness.h"

#define COUNTERS 4
/* How long the load may take to settle once the workers stopped; only a hang reaches it. */
#define SETTLE_MS 30000

/* The routes the workers use, for counting answers per route. */
enum { R_CAST, R_CALL, R_SEND_AFTER, R_START, R_STOP, R_ROUTES };

static const char *const route_label[R_ROUTES] = {"/cast", "/call", "/send_after", "/servers",
                                                  "/servers/:name"};

typedef struct totals_s {
    atomic_long requests, answered, allowed, unexpected, disconnects;
    atomic_long by_route[R_ROUTES]; /* answers the clients received, per route */
    atomic_long casts_acked[COUNTERS];
    atomic_long timers_acked;
    atomic_long pushes_acked, pushes_acked_sum;
    atomic_long crashes, starts, stops, timeouts;
    atomic_long readings, in_order; /* get_count replies; those not below the one before */
} totals_t;

typedef struct soak_s {
    h_server_t srv;
    int seconds, workers;
    long rss_slack_mb;
    atomic_int stop;
    totals_t t;
    atomic_long next_name;
} soak_t;

typedef struct worker_s {
    soak_t *s;
    unsigned seed;
    long last_count[COUNTERS];
} worker_t;

static unsigned rnd(unsigned *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return (*seed >> 8) & 0xffffff;
}

/* One request; returns its status (0: no HTTP answer) and counts it. */
static long req(worker_t *w, int route, const char *method, const char *path, const char *body,
                long timeout, h_resp_t *r)
{
    h_req_t q = {.method = method, .path = path, .body = body, .timeout_ms = timeout};

    atomic_fetch_add(&w->s->t.requests, 1);
    h_request_ex(&w->s->srv, &q, r);
    if (r->status != 0) {
        atomic_fetch_add(&w->s->t.answered, 1);
        atomic_fetch_add(&w->s->t.by_route[route], 1);
    }
    return r->status;
}

static void allowed(worker_t *w)
{
    atomic_fetch_add(&w->s->t.allowed, 1);
}

static void unexpected(worker_t *w, const char *what, const h_resp_t *r)
{
    atomic_fetch_add(&w->s->t.unexpected, 1);
    fprintf(stderr, "soak: unexpected answer to %s: %ld %.200s\n", what, r->status,
            r->body ? r->body : "");
}

static void op_cast(worker_t *w)
{
    int k = (int)(rnd(&w->seed) % COUNTERS);
    char body[128];
    h_resp_t r;

    snprintf(body, sizeof(body), "{\"server\": \"c%d\", \"message\": \"increment\"}", k);
    if (req(w, R_CAST, "POST", "/cast", body, 0, &r) == 202) {
        atomic_fetch_add(&w->s->t.casts_acked[k], 1);
        allowed(w);
    } else if (r.status == 503) { /* overloaded is allowed: then it was not acknowledged */
        allowed(w);
    } else {
        unexpected(w, "cast", &r);
    }
    h_resp_close(&r);
}

static void op_get(worker_t *w)
{
    int k = (int)(rnd(&w->seed) % COUNTERS);
    char body[128];
    h_resp_t r;

    snprintf(body, sizeof(body), "{\"server\": \"c%d\", \"message\": \"get_count\"}", k);
    if (req(w, R_CALL, "POST", "/call", body, 0, &r) == 200 &&
        json_is_integer(json_object_get(r.json, "reply"))) {
        long n = (long)json_integer_value(json_object_get(r.json, "reply"));
        atomic_fetch_add(&w->s->t.readings, 1);
        if (n >= w->last_count[k])
            atomic_fetch_add(&w->s->t.in_order, 1);
        w->last_count[k] = n;
        allowed(w);
    } else if (r.status == 503) {
        allowed(w);
    } else {
        unexpected(w, "get_count", &r);
    }
    h_resp_close(&r);
}

static void op_send_after(worker_t *w)
{
    char body[160];
    h_resp_t r;

    snprintf(body, sizeof(body),
             "{\"server\": \"inbox\", \"message\": [\"t\", %u], \"delay_ms\": %u}", rnd(&w->seed),
             rnd(&w->seed) % 200);
    if (req(w, R_SEND_AFTER, "POST", "/send_after", body, 0, &r) == 202) {
        atomic_fetch_add(&w->s->t.timers_acked, 1);
        allowed(w);
    } else if (r.status == 503) {
        allowed(w);
    } else {
        unexpected(w, "send_after", &r);
    }
    h_resp_close(&r);
}

/* A push of n to the batcher, held until its next flush; client_ms 0: no client-side limit. */
static void push(worker_t *w, unsigned n, long client_ms)
{
    char body[128];
    h_resp_t r;

    snprintf(body, sizeof(body), "{\"server\": \"batch\", \"message\": [\"push\", %u]}", n);
    if (req(w, R_CALL, "POST", "/call", body, client_ms, &r) == 200 &&
        json_is_string(json_object_get(r.json, "reply"))) {
        atomic_fetch_add(&w->s->t.pushes_acked, 1);
        atomic_fetch_add(&w->s->t.pushes_acked_sum, (long)n);
        allowed(w);
    } else if (r.status == 503) {
        allowed(w);
    } else if (r.status == 0 && client_ms > 0) {
        /* Cut off by us, on purpose: not an unanswered request. The runtime still completes
         * the call, the connection is cleaned up, nothing leaks (the RSS audit and the
         * ASan/valgrind runs check). */
        atomic_fetch_add(&w->s->t.disconnects, 1);
    } else {
        unexpected(w, "push", &r);
    }
    h_resp_close(&r);
}

static void op_push(worker_t *w)
{
    /* 1..1000: a push counted twice or lost always changes the batcher's total. */
    push(w, 1 + rnd(&w->seed) % 1000, 0);
}

/* A client that gives up while its push is held. It pushes 0, so that whether genserv got
 * it before the client left does not change the batcher's total. */
static void op_disconnect(worker_t *w)
{
    push(w, 0, 5);
}

static void op_crash(worker_t *w)
{
    h_resp_t r;

    /* MisbehavingGenServer: calls itself, gets calling_self, crashes; the call answers 500. */
    req(w, R_CALL, "POST", "/call", "{\"server\": \"misbehaving\", \"message\": \"message\"}", 0,
        &r);
    if (r.status == 500) {
        atomic_fetch_add(&w->s->t.crashes, 1);
        allowed(w);
    } else if (r.status == 503 || r.status == 404) { /* 404: caught mid-restart */
        allowed(w);
    } else {
        unexpected(w, "misbehaving", &r);
    }
    h_resp_close(&r);
}

static void op_start_stop(worker_t *w)
{
    char body[128], path[64];
    long n = atomic_fetch_add(&w->s->next_name, 1);
    h_resp_t r;

    snprintf(body, sizeof(body), "{\"name\": \"tmp%ld\", \"behaviour\": \"journal\"}", n);
    if (req(w, R_START, "POST", "/servers", body, 0, &r) == 201) {
        atomic_fetch_add(&w->s->t.starts, 1);
        allowed(w);
        h_resp_close(&r);
        snprintf(path, sizeof(path), "/servers/tmp%ld", n);
        if (req(w, R_STOP, "DELETE", path, NULL, 0, &r) == 200) {
            atomic_fetch_add(&w->s->t.stops, 1);
            allowed(w);
        } else {
            unexpected(w, "stop", &r);
        }
    } else {
        unexpected(w, "start", &r);
    }
    h_resp_close(&r);
}

static void op_timeout(worker_t *w)
{
    h_resp_t r;

    if (req(w, R_CALL, "POST", "/call",
            "{\"server\": \"slow\", \"message\": [\"sleep\", 50], \"timeout_ms\": 1}", 0,
            &r) == 504) {
        atomic_fetch_add(&w->s->t.timeouts, 1);
        allowed(w);
    } else {
        unexpected(w, "slow call", &r);
    }
    h_resp_close(&r);
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    static void (*const ops[])(worker_t *) = {
        op_cast, op_cast, op_cast,  op_cast,       op_get,     op_get,
        op_push, op_push, op_crash, op_start_stop, op_timeout, op_send_after,
    };

    while (!atomic_load(&w->s->stop)) {
        unsigned x = rnd(&w->seed);
        if (x % 200 == 0)
            op_disconnect(w);
        else
            ops[x % (sizeof(ops) / sizeof(ops[0]))](w);
    }
    return NULL;
}

static long rss_kb(pid_t pid)
{
    char path[64], line[256];
    long kb = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

/* GET /metrics as text (free it), or NULL. */
static char *metrics_text(const h_server_t *srv)
{
    h_resp_t r;
    char *text = NULL;

    h_request(srv, "GET", "/metrics", NULL, &r);
    if (r.status == 200 && r.body != NULL)
        text = strdup(r.body);
    h_resp_close(&r);
    return text;
}

/* The answers genserv counted on a route, every status together. */
static long route_answers(const char *metrics, const char *route)
{
    char prefix[128];

    snprintf(prefix, sizeof(prefix), "genserv_http_requests_total{route=\"%s\",", route);
    return metrics != NULL ? (long)h_metric_sum(metrics, prefix) : -1;
}

static long metric(const char *metrics, const char *name)
{
    return metrics != NULL ? (long)h_metric(metrics, name) : -1;
}

/* The load has settled: no call held open by the gateway or held by a server (held batcher
 * pushes flushed, the slow server's late replies given), and the receiver got at least the
 * timer messages acknowledged so far (each was at most 200 ms ahead). */
typedef struct settle_s {
    const h_server_t *srv;
    long inbox_want;
} settle_t;

static bool settled(void *arg)
{
    settle_t *st = arg;

    return h_metrics_value(st->srv, "genserv_http_open_calls") == 0 &&
           h_metrics_value(st->srv, "genserv_held_calls") == 0 &&
           h_server_int(st->srv, "inbox", "received", true) >= st->inbox_want;
}

static int failures;

static void check(bool ok, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fprintf(stderr, "soak: %s ", ok ? "ok  " : "FAIL");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (!ok)
        failures++;
}

/* Wait until the load settled (see settled), or report that it did not. */
static void settle(soak_t *s, long inbox_want, const char *after)
{
    settle_t st = {&s->srv, inbox_want};

    if (!h_wait_until(settled, &st, SETTLE_MS))
        check(false,
              "the load settled within %d ms after the %s: open calls %.0f, held calls %.0f "
              "(want 0 and 0), inbox received %lld of %ld",
              SETTLE_MS, after, h_metrics_value(&s->srv, "genserv_http_open_calls"),
              h_metrics_value(&s->srv, "genserv_held_calls"),
              (long long)h_server_int(&s->srv, "inbox", "received", true), inbox_want);
}

static void run_phase(soak_t *s, int seconds)
{
    pthread_t th[64];
    worker_t w[64];
    int n = s->workers;

    atomic_store(&s->stop, 0);
    for (int i = 0; i < n; i++) {
        w[i] = (worker_t){.s = s, .seed = 7919u * (unsigned)(i + 1)};
        if (pthread_create(&th[i], NULL, worker_main, &w[i]) != 0) {
            n = i;
            break;
        }
    }
    /* A bare sleep on purpose: the load runs for a span of real time, which is the point. */
    h_sleep_ms(seconds * 1000);
    atomic_store(&s->stop, 1);
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
}

int main(int argc, char **argv)
{
    static soak_t s = {.seconds = 60, .workers = 16, .rss_slack_mb = 32};
    static const char *const setup[] = {
        "{\"name\": \"c0\", \"behaviour\": \"counter\"}",
        "{\"name\": \"c1\", \"behaviour\": \"counter\"}",
        "{\"name\": \"c2\", \"behaviour\": \"counter\"}",
        "{\"name\": \"c3\", \"behaviour\": \"counter\"}",
        "{\"name\": \"inbox\", \"behaviour\": \"receiver\"}",
        "{\"name\": \"batch\", \"behaviour\": \"batcher\", \"args\": {\"interval_ms\": 20}}",
        ("{\"name\": \"misbehaving\", \"behaviour\": \"misbehaving\", \"max_restarts\": 1000000, "
         "\"max_seconds\": 1}"),
    };
    long rss0, rss1, inbox0, total0, restarts0, abandoned0, counts0[COUNTERS];
    char *m0, *m1;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            s.seconds = atoi(argv[++i]);
        else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc)
            s.workers = atoi(argv[++i]);
        else if (strcmp(argv[i], "--rss-slack-mb") == 0 && i + 1 < argc)
            s.rss_slack_mb = atol(argv[++i]);
        else {
            fprintf(stderr, "usage: soak [--seconds N] [--workers N] [--rss-slack-mb N]\n");
            return 2;
        }
    }
    if (s.workers < 1 || s.workers > 64 || s.seconds < 1) {
        fprintf(stderr, "soak: --workers must be 1..64 and --seconds at least 1\n");
        return 2;
    }
    h_init((unsigned)s.seconds + 240);
    if (h_start(&s.srv, NULL) < 0)
        return 1;
    for (size_t i = 0; i < sizeof(setup) / sizeof(setup[0]); i++) {
        h_resp_t r;
        h_request(&s.srv, "POST", "/servers", setup[i], &r);
        if (r.status != 201) {
            fprintf(stderr, "soak: cannot start %s: %ld %s\n", setup[i], r.status, r.body);
            h_stop(&s.srv, H_STOP_MS);
            return 1;
        }
        h_resp_close(&r);
    }

    /* Warm-up: the allocators' arenas, the connection pools, the schedulers' caches. */
    run_phase(&s, s.seconds / 10 > 2 ? s.seconds / 10 : 2);
    settle(&s, atomic_load(&s.t.timers_acked), "warm-up");
    rss0 = rss_kb(s.srv.pid);
    /* The audit covers the measured phase only, from these baselines. */
    memset(&s.t, 0, sizeof(s.t));
    for (int k = 0; k < COUNTERS; k++) {
        char name[8];
        snprintf(name, sizeof(name), "c%d", k);
        counts0[k] = (long)h_call_int(&s.srv, name, "\"get_count\"");
    }
    inbox0 = (long)h_server_int(&s.srv, "inbox", "received", true);
    total0 = (long)h_server_int(&s.srv, "batch", "total", true);
    restarts0 = (long)h_server_int(&s.srv, "misbehaving", "restarts", false);
    abandoned0 = (long)h_server_int(&s.srv, "slow", "abandoned", true);
    m0 = metrics_text(&s.srv); /* last: nothing but the workers talks to genserv until m1 */

    fprintf(stderr, "soak: %d workers for %d s (RSS after warm-up %ld kB)\n", s.workers, s.seconds,
            rss0);
    run_phase(&s, s.seconds);
    settle(&s, inbox0 + atomic_load(&s.t.timers_acked), "load");
    m1 = metrics_text(&s.srv);
    rss1 = rss_kb(s.srv.pid);

    fprintf(stderr,
            "soak: %ld requests, %ld answered; %ld pushes acknowledged, %ld crashes, %ld starts, "
            "%ld stops, %ld timeouts, %ld disconnects\n",
            atomic_load(&s.t.requests), atomic_load(&s.t.answered), atomic_load(&s.t.pushes_acked),
            atomic_load(&s.t.crashes), atomic_load(&s.t.starts), atomic_load(&s.t.stops),
            atomic_load(&s.t.timeouts), atomic_load(&s.t.disconnects));
    {
        long sent = atomic_load(&s.t.requests), answered = atomic_load(&s.t.answered);
        long gave_up = atomic_load(&s.t.disconnects);
        check(sent > 1000 && sent == answered + gave_up,
              "every request got an HTTP answer: %ld sent, %ld answered (+%ld given up on "
              "purpose)",
              sent, answered, gave_up);
        check(answered == atomic_load(&s.t.allowed),
              "every answer was one the contract allows: %ld answered, %ld allowed", answered,
              atomic_load(&s.t.allowed));
    }
    for (int i = 0; i < R_ROUTES; i++) {
        long client = atomic_load(&s.t.by_route[i]);
        long server = route_answers(m1, route_label[i]) - route_answers(m0, route_label[i]);
        if (i == R_STOP)
            continue; /* its label is shared with the GET /servers/NAME of settling */
        if (i == R_CALL) {
            /* A client that gave up may or may not have reached genserv before it left. */
            long gave_up = atomic_load(&s.t.disconnects);
            check(client > 0 && server >= client && server <= client + gave_up,
                  "%s: the clients got %ld answers, genserv counted %ld (%ld clients gave up)",
                  route_label[i], client, server, gave_up);
            continue;
        }
        check(client > 0 && server == client,
              "%s: the clients got %ld answers, genserv counted %ld", route_label[i], client,
              server);
    }
    for (int k = 0; k < COUNTERS; k++) {
        char name[8];
        snprintf(name, sizeof(name), "c%d", k);
        long got = (long)h_call_int(&s.srv, name, "\"get_count\"") - counts0[k];
        long acked = atomic_load(&s.t.casts_acked[k]);
        check(got == acked, "%s counted %ld increments, %ld were acknowledged", name, got, acked);
    }
    {
        long got = (long)h_server_int(&s.srv, "inbox", "received", true) - inbox0;
        long acked = atomic_load(&s.t.timers_acked);
        check(got == acked, "inbox received %ld timer messages, %ld were acknowledged", got, acked);
    }
    {
        long total = (long)h_server_int(&s.srv, "batch", "total", true) - total0;
        long sum = atomic_load(&s.t.pushes_acked_sum);
        check(atomic_load(&s.t.pushes_acked) > 0 && total == sum,
              "the batcher summed %ld, the %ld acknowledged pushes carried %ld", total,
              atomic_load(&s.t.pushes_acked), sum);
    }
    {
        long restarts = (long)h_server_int(&s.srv, "misbehaving", "restarts", false) - restarts0;
        long crashes = atomic_load(&s.t.crashes);
        /* Each restart follows one crash, whose call answers 500; calls queued behind it fail
         * with it (500 too) without a restart of their own. */
        check(restarts > 0 && restarts <= crashes,
              "misbehaving was restarted %ld times, %ld calls to it saw it crash", restarts,
              crashes);
    }
    {
        /* Each sleeper whose caller timed out ends one way: slow is told the caller is gone
         * and lets it go (abandoned), or its wake came first and the reply was dropped. The
         * late replies also count those the batcher gave to clients that hung up on a held
         * push (it does not opt in to caller_gone), which genserv counts apart as well. */
        long late =
            metric(m1, "genserv_late_replies_total") - metric(m0, "genserv_late_replies_total");
        long to_gone = metric(m1, "genserv_replies_to_gone_callers_total") -
                       metric(m0, "genserv_replies_to_gone_callers_total");
        long abandoned = (long)h_server_int(&s.srv, "slow", "abandoned", true) - abandoned0;
        long timeouts = atomic_load(&s.t.timeouts);
        check(timeouts > 0 && late - to_gone + abandoned == timeouts,
              "the clients got %ld timeouts (504), genserv let %ld sleepers go and dropped %ld "
              "late replies (%ld of them to clients that hung up)",
              timeouts, abandoned, late, to_gone);
    }
    {
        /* A client that hangs up on a held push is noticed at once (caller_gone), unless its
         * answer came first; each such push is answered at most once more, into the void. */
        long gone =
            metric(m1, "genserv_callers_gone_total") - metric(m0, "genserv_callers_gone_total");
        long to_gone = metric(m1, "genserv_replies_to_gone_callers_total") -
                       metric(m0, "genserv_replies_to_gone_callers_total");
        long gave_up = atomic_load(&s.t.disconnects);
        check(gone <= gave_up && to_gone <= gone,
              "%ld clients hung up on a held push, genserv saw %ld of them go and dropped %ld "
              "replies to them",
              gave_up, gone, to_gone);
    }
    {
        long by_client = atomic_load(&s.t.starts) - atomic_load(&s.t.stops);
        long by_server = metric(m1, "genserv_servers") - metric(m0, "genserv_servers");
        check(atomic_load(&s.t.starts) > 0 && by_client == by_server,
              "servers left behind: %ld by the clients' count (%ld started, %ld stopped), %ld by "
              "genserv's",
              by_client, atomic_load(&s.t.starts), atomic_load(&s.t.stops), by_server);
    }
    check(atomic_load(&s.t.readings) > 0 &&
              atomic_load(&s.t.in_order) == atomic_load(&s.t.readings),
          "no counter went backwards: %ld get_count replies, %ld of them in order",
          atomic_load(&s.t.readings), atomic_load(&s.t.in_order));
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    /* ASan's quarantine keeps freed memory on purpose: the RSS says nothing here. In these
     * builds LeakSanitizer checks at genserv's exit instead (a leak fails the exit status). */
    s.rss_slack_mb = 1 << 20;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
    s.rss_slack_mb = 1 << 20;
#endif
#endif
    check(rss1 > 0 && rss1 <= rss0 + s.rss_slack_mb * 1024,
          "RSS came back near its start: %ld kB after warm-up, %ld kB after the load (slack %ld "
          "MB)",
          rss0, rss1, s.rss_slack_mb);
    {
        h_resp_t r;
        h_request(&s.srv, "GET", "/healthz", NULL, &r);
        check(r.status == 200, "still serving: /healthz answered %ld, want 200", r.status);
        h_resp_close(&r);
    }
    {
        int rc = h_stop(&s.srv, H_STOP_MS);
        check(rc == 0, "exit status on SIGTERM %d, want 0", rc);
        if (failures > 0)
            h_dump_logs(&s.srv);
        h_cleanup_files(&s.srv);
    }
    free(m0);
    free(m1);
    fprintf(stderr, "soak: %s\n", failures == 0 ? "passed" : "FAILED");
    return failures == 0 ? 0 : 1;
}
