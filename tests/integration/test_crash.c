/*
 * test_crash.c: the crash-recovery audit of durable servers. The real genserv runs on one data
 * directory under a mixed HTTP load from a few client threads and is killed with SIGKILL at
 * random moments, round after round, and started again on the same directory. Then the
 * clients retry what they were never answered, every timer is given time to fire, and an audit
 * counts what the clients were told against what the durable servers hold.
 *
 * The durable servers: ledgers (a count, and how many times each tag was applied), k0..k2 and
 * n and t of ledger_plugin.c and k3 of ledger.lua, uploaded over HTTP; the built-in counter cc
 * and journal jj. The load, every request under a tag of its own:
 *   - calls, casts with "ack": "handled" and sends with "ack": "handled" to k0..k3, and
 *     handled "increment" casts to cc, each with an Idempotency-Key (its tag). A request
 *     without an answer (the kill came first) is retried with the same key after the restart,
 *     until it is answered;
 *   - retries of calls that were answered already, whose answer must be the first one;
 *   - calls, casts with "ack": "handled" and casts with the default "accepted" to n, without
 *     keys and never retried;
 *   - send_after to t (["add", TAG]) and to jj (["add_entry", TAG]), due 20-300 ms or
 *     800-2500 ms later, many of them pending when genserv is killed.
 * The audit, each line of which fails on its own:
 *   - every restart came up;
 *   - no request got an answer the contract does not allow (a 4xx or 5xx);
 *   - the keyed requests, all answered in the end: each applied exactly once, each ledger's
 *     count is the number of distinct keys sent to it, and cc's count the number of its keys;
 *   - a retried call got the answer of its first application, and no two calls to a ledger
 *     were answered the same count (an answer was never given for a change that was lost);
 *   - every acknowledged request to n is applied exactly once, the others at most once, so
 *     that acknowledged <= count <= attempted;
 *   - every acknowledged timer fired exactly once (t's tags, jj's entries), the others at most
 *     once, and none is left stored;
 *   - the final state is the same after a clean restart, and genserv exits 0 on SIGTERM.
 *
 * The kill moments and the load come from one seed, printed first: GS_CRASH_SEED=N repeats a
 * run's choices (not its timing). GS_CRASH_ROUNDS=N changes the number of rounds (default 24).
 * Exit status 0 when the audit passes, 1 otherwise (with what failed and genserv's logs).
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h> /* the harness's assertions; the audit itself reports by exit status */

#include "harness.h"

#if !defined(GS_LEDGER_PLUGIN) || !defined(GS_LUA_LEDGER)
#error "GS_LEDGER_PLUGIN and GS_LUA_LEDGER must name the ledgers (tests/integration/CMakeLists.txt)"
#endif

#define WORKERS        3
#define KEYED_LEDGERS  4 /* k0..k2 in C, k3 in Lua */
#define DEFAULT_ROUNDS 24
#define MIN_ROUNDS     20
/* A round's load lasts this long (ms, at random) before the kill. */
#define ROUND_MIN_MS 80
#define ROUND_MAX_MS 450
/* Per worker and keyed ledger: a durable server remembers 10000 keys, the oldest forgotten
 * past that, and a forgotten key would make a late retry a new request. */
#define KEYS_PER_WORKER_LEDGER 3000
#define MAX_OPS                ((KEYED_LEDGERS + 2) * KEYS_PER_WORKER_LEDGER + 20000)
/* How long the retries, the timers and each restart may take: only a hang reaches these. */
#define DRAIN_MS  30000
#define TIMERS_MS 30000

enum kind {
    K_CALL_KEYED, /* keyed ones first: see keyed() */
    K_CAST_KEYED,
    K_SEND_KEYED,
    K_COUNTER_KEYED,
    K_JOURNAL_KEYED,
    K_CALL,
    K_CAST_HANDLED,
    K_CAST_ACCEPTED,
    K_TIMER_SHORT,
    K_TIMER_LONG,
    K_RECEIVER_TIMER,
    K_KINDS
};

static const char *const kind_name[K_KINDS] = {
    "keyed call",         "keyed cast", "keyed send",     "keyed counter cast",
    "keyed journal cast", "call",       "handled cast",   "accepted cast",
    "short timer",        "long timer", "receiver timer",
};

/* Out of 100: what a worker does next (a replay of an answered keyed call takes the rest). */
static const int kind_weight[K_KINDS] = {22, 11, 8, 7, 6, 8, 8, 5, 9, 5, 6};

/* The servers, and where each kind goes (ledgers by index; cc, jj and rr by name). */
enum { L_K0, L_K1, L_K2, L_K3, L_N, L_T, L_LEDGERS };
static const char *const ledger_names[L_LEDGERS] = {"k0", "k1", "k2", "k3", "n", "t"};

static bool keyed(int kind)
{
    return kind <= K_JOURNAL_KEYED;
}

static bool timer(int kind)
{
    return kind >= K_TIMER_SHORT;
}

enum state { S_SENT, S_ACKED, S_ACCEPTED, S_REFUSED };

typedef struct op_s {
    uint8_t kind;
    uint8_t ledger; /* L_*: for the ledgers' kinds */
    uint8_t state;
    uint16_t tries;
    int64_t reply; /* calls: the count answered */
} op_t;

typedef struct worker_s {
    int id;
    uint64_t rng;
    h_server_t srv; /* a copy per round: only the URL is read */
    atomic_bool *stop;
    bool drain; /* only retry what is pending; make nothing new */
    op_t *ops;
    size_t n;
    size_t *pending; /* keyed ops without an answer, oldest first */
    size_t npending;
    size_t *answered_calls; /* keyed calls with an answer, for replays */
    size_t nanswered;
    int keys[KEYED_LEDGERS + 2]; /* per keyed ledger, then cc and jj */
    long retries, replays, replay_mismatch, refused, transport;
    char first_refused[512];
    pthread_t thread;
} worker_t;

static int failures;

static void check(bool ok, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    printf("crash: %s ", ok ? "ok  " : "FAIL");
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
    if (!ok)
        failures++;
}

/* xorshift64*: the workers' and the kills' choices, reproducible from the seed. */
static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static int rand_in(uint64_t *s, int lo, int hi)
{
    return lo + (int)(next_rand(s) % (uint64_t)(hi - lo + 1));
}

static void op_tag(const worker_t *w, size_t i, char *tag, size_t len)
{
    snprintf(tag, len, "w%d-%zu", w->id, i);
}

/* The server op goes to. */
static const char *target(const op_t *op)
{
    if (op->kind == K_COUNTER_KEYED)
        return "cc";
    if (op->kind == K_JOURNAL_KEYED)
        return "jj";
    if (op->kind == K_RECEIVER_TIMER)
        return "rr";
    return ledger_names[op->ledger];
}

/* The outcome of one request. */
enum outcome { O_ANSWERED, O_NO_ANSWER };

static void refused(worker_t *w, const char *what, const h_resp_t *r)
{
    /* Truncated to fit: the start of the request and of the answer say enough. */
    if (w->refused++ == 0)
        snprintf(w->first_refused, sizeof(w->first_refused), "%.200s: %ld %.200s", what, r->status,
                 r->body != NULL ? r->body : "");
}

/* Send op i (again, for a retry). */
static enum outcome perform(worker_t *w, size_t i)
{
    op_t *op = &w->ops[i];
    char tag[32], body[512], header[64];
    const char *headers[] = {header, NULL};
    const char *path = "/call", *name = target(op);
    h_req_t req = {.method = "POST", .body = body, .timeout_ms = 20000};
    h_resp_t r;
    enum outcome out = O_ANSWERED;

    op_tag(w, i, tag, sizeof(tag));
    switch (op->kind) {
    case K_CALL_KEYED:
    case K_CALL:
        snprintf(body, sizeof(body), "{\"server\": \"%s\", \"message\": [\"add\", \"%s\"]}", name,
                 tag);
        break;
    case K_CAST_KEYED:
    case K_SEND_KEYED:
    case K_CAST_HANDLED:
        path = op->kind == K_SEND_KEYED ? "/send" : "/cast";
        snprintf(body, sizeof(body),
                 "{\"server\": \"%s\", \"message\": [\"add\", \"%s\"], \"ack\": \"handled\"}", name,
                 tag);
        break;
    case K_COUNTER_KEYED:
        path = "/cast";
        snprintf(body, sizeof(body),
                 "{\"server\": \"cc\", \"message\": \"increment\", \"ack\": \"handled\"}");
        break;
    case K_JOURNAL_KEYED:
        path = "/cast";
        snprintf(body, sizeof(body),
                 "{\"server\": \"jj\", \"message\": [\"add_entry\", \"%s\"], \"ack\": "
                 "\"handled\"}",
                 tag);
        break;
    case K_CAST_ACCEPTED:
        path = "/cast";
        snprintf(body, sizeof(body), "{\"server\": \"%s\", \"message\": [\"add\", \"%s\"]}", name,
                 tag);
        break;
    default:
        path = "/send_after";
        snprintf(body, sizeof(body),
                 "{\"server\": \"%s\", \"message\": [\"add\", \"%s\"], \"delay_ms\": %d}", name,
                 tag,
                 op->kind == K_TIMER_LONG || (op->kind == K_RECEIVER_TIMER && (i & 1))
                     ? rand_in(&w->rng, 800, 2500)
                     : rand_in(&w->rng, 20, 300));
        break;
    }
    req.path = path;
    if (keyed(op->kind)) {
        snprintf(header, sizeof(header), "Idempotency-Key: %s", tag);
        req.headers = headers;
    }
    op->tries++;
    h_request_ex(&w->srv, &req, &r);
    if (r.status == 0) {
        /* No answer: genserv was killed before it (or before the connection). */
        w->transport++;
        out = O_NO_ANSWER;
    } else if (op->kind == K_CALL_KEYED || op->kind == K_CALL) {
        json_t *reply = json_object_get(r.json, "reply");

        if (r.status == 200 && json_is_integer(reply)) {
            op->state = S_ACKED;
            op->reply = (int64_t)json_integer_value(reply);
        } else {
            op->state = S_REFUSED;
            refused(w, body, &r);
        }
    } else if (op->kind == K_CAST_ACCEPTED) {
        if (r.status == 202) {
            op->state = S_ACCEPTED;
        } else {
            op->state = S_REFUSED;
            refused(w, body, &r);
        }
    } else if (timer(op->kind)) {
        if (r.status == 202 && h_str(r.json, "timer") != NULL) {
            op->state = S_ACKED;
        } else {
            op->state = S_REFUSED;
            refused(w, body, &r);
        }
    } else {
        if (r.status == 202 && json_is_true(json_object_get(r.json, "ok")) &&
            h_str(r.json, "ack") != NULL && strcmp(h_str(r.json, "ack"), "handled") == 0) {
            op->state = S_ACKED;
        } else {
            op->state = S_REFUSED;
            refused(w, body, &r);
        }
    }
    h_resp_close(&r);
    return out;
}

/* Ask again for an answered keyed call: the answer must be the first one. */
static enum outcome replay(worker_t *w)
{
    size_t i = w->answered_calls[next_rand(&w->rng) % w->nanswered];
    op_t *op = &w->ops[i];
    char tag[32], body[256], header[64];
    const char *headers[] = {header, NULL};
    h_req_t req = {
        .method = "POST", .path = "/call", .body = body, .headers = headers, .timeout_ms = 20000};
    json_t *reply;
    h_resp_t r;

    op_tag(w, i, tag, sizeof(tag));
    snprintf(body, sizeof(body), "{\"server\": \"%s\", \"message\": [\"add\", \"%s\"]}",
             ledger_names[op->ledger], tag);
    snprintf(header, sizeof(header), "Idempotency-Key: %s", tag);
    h_request_ex(&w->srv, &req, &r);
    if (r.status == 0) {
        h_resp_close(&r);
        w->transport++;
        return O_NO_ANSWER;
    }
    w->replays++;
    reply = json_object_get(r.json, "reply");
    if (r.status != 200 || !json_is_integer(reply) || json_integer_value(reply) != op->reply) {
        if (w->replay_mismatch++ == 0)
            printf("crash: a replay of %s (first answered %lld) got %ld %s\n", tag,
                   (long long)op->reply, r.status, r.body);
    }
    h_resp_close(&r);
    return O_ANSWERED;
}

static int choose_kind(worker_t *w)
{
    int x = rand_in(&w->rng, 0, 99);

    for (int k = 0; k < K_KINDS; k++) {
        if (x < kind_weight[k])
            return k;
        x -= kind_weight[k];
    }
    return -1; /* a replay */
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;

    /* relaxed: the flag only tells the loop to end; the join publishes everything else */
    while (!atomic_load_explicit(w->stop, memory_order_relaxed)) {
        if (w->npending > 0) {
            size_t i = w->pending[0];

            w->retries++;
            if (perform(w, i) == O_NO_ANSWER)
                break; /* genserv is gone until the next round */
            memmove(w->pending, w->pending + 1, --w->npending * sizeof(*w->pending));
            if (w->ops[i].kind == K_CALL_KEYED && w->ops[i].state == S_ACKED)
                w->answered_calls[w->nanswered++] = i;
            continue;
        }
        if (w->drain)
            break;
        int kind = choose_kind(w);
        if (kind < 0) {
            if (w->nanswered > 0 && replay(w) == O_NO_ANSWER)
                break;
            continue;
        }
        if (w->n == MAX_OPS)
            break;
        op_t *op = &w->ops[w->n];
        memset(op, 0, sizeof(*op));
        op->kind = (uint8_t)kind;
        if (kind <= K_SEND_KEYED)
            op->ledger = (uint8_t)rand_in(&w->rng, L_K0, L_K3);
        else if (kind == K_CALL || kind == K_CAST_HANDLED || kind == K_CAST_ACCEPTED)
            op->ledger = L_N;
        else if (kind == K_TIMER_SHORT || kind == K_TIMER_LONG)
            op->ledger = L_T;
        if (keyed(kind)) {
            int *keys = &w->keys[kind == K_COUNTER_KEYED   ? KEYED_LEDGERS
                                 : kind == K_JOURNAL_KEYED ? KEYED_LEDGERS + 1
                                                           : op->ledger];

            if (*keys >= KEYS_PER_WORKER_LEDGER)
                continue;
            ++*keys;
        }
        size_t i = w->n++;
        if (perform(w, i) == O_NO_ANSWER) {
            if (keyed(kind))
                w->pending[w->npending++] = i;
            break;
        }
        if (kind == K_CALL_KEYED && op->state == S_ACKED)
            w->answered_calls[w->nanswered++] = i;
    }
    return NULL;
}

static void workers_start(worker_t *ws, const h_server_t *srv, atomic_bool *stop, bool drain)
{
    atomic_store_explicit(stop, false, memory_order_relaxed); /* before the threads exist */
    for (int i = 0; i < WORKERS; i++) {
        ws[i].srv = *srv;
        ws[i].stop = stop;
        ws[i].drain = drain;
        if (pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]) != 0) {
            fprintf(stderr, "crash: pthread_create failed\n");
            exit(1);
        }
    }
}

static void workers_join(worker_t *ws, atomic_bool *stop)
{
    /* relaxed: it publishes nothing; the joins below publish what the workers wrote */
    atomic_store_explicit(stop, true, memory_order_relaxed);
    for (int i = 0; i < WORKERS; i++)
        pthread_join(ws[i].thread, NULL);
}

/* ---------------------------------------------------------------------------------------- */
/* genserv                                                                                    */
/* ---------------------------------------------------------------------------------------- */

static char data_dir[64];

/* Upload ledger.lua as the behaviour lua_ledger. 0 or -1. */
static int upload_lua_ledger(const h_server_t *srv)
{
    FILE *f = fopen(GS_LUA_LEDGER, "r");
    static char source[8192];
    json_t *body;
    char *text;
    size_t n;
    h_resp_t r;
    int rc;

    if (f == NULL)
        return -1;
    n = fread(source, 1, sizeof(source) - 1, f);
    fclose(f);
    source[n] = '\0';
    body = json_pack("{s:s, s:s}", "name", "lua_ledger", "source", source);
    text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    h_request(srv, "POST", "/behaviours", text, &r);
    rc = r.status == 201 ? 0 : -1;
    if (rc != 0)
        fprintf(stderr, "crash: POST /behaviours lua_ledger: %ld %s\n", r.status, r.body);
    free(text);
    h_resp_close(&r);
    return rc;
}

static int start(h_server_t *srv)
{
    const char *args[] = {"--plugin", GS_LEDGER_PLUGIN, "--data-dir", data_dir, NULL};
    h_opts_t opts = {.args = args};

    return h_start(srv, &opts);
}

/* A ledger's whole state (new reference), or NULL. */
static json_t *ledger_get(const h_server_t *srv, const char *name)
{
    h_resp_t r;
    json_t *out = NULL;

    h_call(srv, name, "\"get\"", -1, &r);
    if (r.status == 200 && json_is_object(json_object_get(r.json, "reply")))
        out = json_incref(json_object_get(r.json, "reply"));
    h_resp_close(&r);
    return out;
}

static int64_t times_of(const json_t *st, const char *tag)
{
    return (int64_t)json_integer_value(json_object_get(json_object_get(st, "tags"), tag));
}

/* How many times each entry of the journal jj occurs: {ENTRY: N} (new reference), or NULL
 * when jj does not answer. */
static json_t *journal_counts(const h_server_t *srv)
{
    json_t *counts, *e;
    h_resp_t r;
    size_t i;

    h_call(srv, "jj", "\"entries\"", -1, &r);
    if (r.status != 200 || !json_is_array(json_object_get(r.json, "reply"))) {
        h_resp_close(&r);
        return NULL;
    }
    counts = json_object();
    json_array_foreach(json_object_get(r.json, "reply"), i, e)
    {
        const char *tag = json_is_string(e) ? json_string_value(e) : "(not a string)";

        json_object_set_new(counts, tag,
                            json_integer(json_integer_value(json_object_get(counts, tag)) + 1));
    }
    h_resp_close(&r);
    return counts;
}

/* How many times op i was applied: its tag in its ledger, or its entry in jj. */
static int64_t applied_times(const worker_t *w, size_t i, json_t *const *ledgers, const json_t *jj)
{
    char tag[32];

    op_tag(w, i, tag, sizeof(tag));
    if (w->ops[i].kind == K_JOURNAL_KEYED)
        return (int64_t)json_integer_value(json_object_get(jj, tag));
    return times_of(ledgers[w->ops[i].ledger], tag);
}

typedef struct timers_wait_s {
    const h_server_t *srv;
    worker_t *ws;
    long unfired;        /* out: acknowledged timers to t not fired yet */
    long rr_acked;       /* out: acknowledged timers to rr */
    int64_t rr_received; /* out */
} timers_wait_t;

/* Whether every acknowledged timer has fired and none is left stored. */
static bool timers_done(void *arg)
{
    timers_wait_t *tw = arg;
    json_t *ledgers[L_LEDGERS] = {NULL};
    char tag[32];

    ledgers[L_T] = ledger_get(tw->srv, "t");
    tw->unfired = tw->rr_acked = 0;
    tw->rr_received = h_call_int(tw->srv, "rr", "\"received\"");
    for (int w = 0; ledgers[L_T] != NULL && w < WORKERS; w++)
        for (size_t i = 0; i < tw->ws[w].n; i++) {
            const op_t *op = &tw->ws[w].ops[i];

            if (op->state != S_ACKED)
                continue;
            op_tag(&tw->ws[w], i, tag, sizeof(tag));
            if (op->kind == K_RECEIVER_TIMER)
                tw->rr_acked++;
            else if (timer(op->kind) && times_of(ledgers[L_T], tag) == 0)
                tw->unfired++;
        }
    json_decref(ledgers[L_T]);
    return ledgers[L_T] != NULL && tw->unfired == 0 && tw->rr_received >= tw->rr_acked &&
           h_server_int(tw->srv, "t", "stored_timers", false) == 0 &&
           h_server_int(tw->srv, "rr", "stored_timers", false) == 0;
}

/* Start every durable server of the audit (over HTTP, so that they come back). 0 or -1. */
static int start_servers(const h_server_t *srv)
{
    if (upload_lua_ledger(srv) != 0)
        return -1;
    for (int l = 0; l < L_LEDGERS; l++)
        if (h_start_server(srv, ledger_names[l], l == L_K3 ? "lua_ledger" : "it_ledger", NULL,
                           "{\"durable\": true}") != 201)
            return -1;
    if (h_start_server(srv, "cc", "counter", NULL, "{\"durable\": true}") != 201 ||
        h_start_server(srv, "jj", "journal", NULL, "{\"durable\": true}") != 201 ||
        h_start_server(srv, "rr", "receiver", NULL, "{\"durable\": true}") != 201)
        return -1;
    return 0;
}

int main(void)
{
    const char *env_seed = getenv("GS_CRASH_SEED"), *env_rounds = getenv("GS_CRASH_ROUNDS");
    uint64_t seed, rng;
    int rounds = env_rounds != NULL ? atoi(env_rounds) : DEFAULT_ROUNDS, restarts_ok = 0;
    worker_t ws[WORKERS];
    atomic_bool stop;
    h_server_t srv;
    json_t *final[L_LEDGERS] = {NULL}, *final_jj = NULL;
    int64_t final_cc = -1, final_rr = -1;
    long pending_at_kills = 0, kills_mid_request = 0;
    int64_t t0 = h_now_ms(), t_load;

    h_init(170);
    if (env_seed != NULL) {
        seed = strtoull(env_seed, NULL, 10);
    } else {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        seed = (uint64_t)ts.tv_sec * 1000003u ^ (uint64_t)ts.tv_nsec ^ (uint64_t)getpid();
    }
    if (seed == 0)
        seed = 1; /* xorshift's one fixed point */
    if (rounds < MIN_ROUNDS && env_rounds == NULL)
        rounds = MIN_ROUNDS;
    printf("crash: seed %llu (GS_CRASH_SEED=%llu repeats its choices), %d rounds\n",
           (unsigned long long)seed, (unsigned long long)seed, rounds);
    rng = seed;

    memset(ws, 0, sizeof(ws));
    for (int i = 0; i < WORKERS; i++) {
        ws[i].id = i;
        ws[i].rng = seed + 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1);
        ws[i].ops = calloc(MAX_OPS, sizeof(op_t));
        ws[i].pending = calloc(MAX_OPS, sizeof(size_t));
        ws[i].answered_calls = calloc(MAX_OPS, sizeof(size_t));
        if (ws[i].ops == NULL || ws[i].pending == NULL || ws[i].answered_calls == NULL)
            return 1;
    }
    if (h_tempdir(data_dir, sizeof(data_dir), "crash") != 0 || start(&srv) != 0)
        return 1;
    if (start_servers(&srv) != 0) {
        h_dump_logs(&srv);
        return 1;
    }

    /* The rounds: load, a kill at a random moment, a restart on the same directory. */
    t_load = h_now_ms();
    for (int round = 0; round < rounds; round++) {
        int64_t pending_t, pending_rr;

        workers_start(ws, &srv, &stop, false);
        /* The kill's moment is what is random here: a bare sleep is the point. */
        h_sleep_ms(rand_in(&rng, ROUND_MIN_MS, ROUND_MAX_MS));
        pending_t = h_server_int(&srv, "t", "stored_timers", false);
        pending_rr = h_server_int(&srv, "rr", "stored_timers", false);
        h_kill(&srv);
        workers_join(ws, &stop);
        pending_at_kills += (pending_t > 0 ? pending_t : 0) + (pending_rr > 0 ? pending_rr : 0);
        h_cleanup_files(&srv);
        if (start(&srv) != 0) {
            check(false, "round %d: genserv did not come back on its data directory", round + 1);
            break;
        }
        restarts_ok++;
    }
    for (int i = 0; i < WORKERS; i++)
        kills_mid_request += ws[i].transport;
    printf("crash: %d rounds of load and SIGKILL in %.1f s\n", restarts_ok,
           (double)(h_now_ms() - t_load) / 1000.0);
    check(restarts_ok == rounds, "restarts: %d of %d came up", restarts_ok, rounds);
    if (restarts_ok != rounds)
        goto out;

    /* Retry, with their keys, the requests a kill left without an answer. */
    {
        int64_t deadline = h_now_ms() + DRAIN_MS;
        size_t left;

        do {
            workers_start(ws, &srv, &stop, true);
            for (int i = 0; i < WORKERS; i++)
                pthread_join(ws[i].thread, NULL);
            left = 0;
            for (int i = 0; i < WORKERS; i++)
                left += ws[i].npending;
        } while (left > 0 && h_now_ms() < deadline);
        check(left == 0, "every keyed request answered after its retries (%zu left)", left);
    }
    /* Every acknowledged timer fires; what is stored fires too (a timer whose 202 the kill
     * took may have been stored). */
    {
        timers_wait_t tw = {&srv, ws, 0, 0, 0};
        bool done = h_wait_until(timers_done, &tw, TIMERS_MS);

        check(done,
              "every acknowledged timer fired and none is left stored (%ld unfired to t, %lld "
              "received of %ld acknowledged to rr, %lld + %lld stored)",
              tw.unfired, (long long)tw.rr_received, tw.rr_acked,
              (long long)h_server_int(&srv, "t", "stored_timers", false),
              (long long)h_server_int(&srv, "rr", "stored_timers", false));
    }

    /* The audit. */
    {
        long made[K_KINDS] = {0}, acked[K_KINDS] = {0}, applied[K_KINDS] = {0};
        long lost = 0, twice = 0, retries = 0, replays = 0, mismatch = 0, fired_unacked = 0;
        long refused_n = 0, keys_per_ledger[KEYED_LEDGERS] = {0}, dup_answers = 0;
        long n_acked = 0, n_attempted = 0, timers_acked = 0, timers_fired = 0, jj_entries = 0;
        int64_t counts[L_LEDGERS];
        json_t *seen[KEYED_LEDGERS], *v;
        const char *k;

        for (int l = 0; l < L_LEDGERS; l++) {
            final[l] = ledger_get(&srv, ledger_names[l]);
            if (final[l] == NULL) {
                check(false, "ledger %s answers", ledger_names[l]);
                goto out;
            }
            counts[l] = (int64_t)json_integer_value(json_object_get(final[l], "count"));
        }
        final_cc = h_call_int(&srv, "cc", "\"get_count\"");
        final_rr = h_call_int(&srv, "rr", "\"received\"");
        final_jj = journal_counts(&srv);
        if (final_cc == INT64_MIN || final_rr == INT64_MIN || final_jj == NULL) {
            check(false, "cc, rr and jj answer");
            goto out;
        }
        json_object_foreach(final_jj, k, v) jj_entries += (long)json_integer_value(v);
        for (int l = 0; l < KEYED_LEDGERS; l++)
            seen[l] = json_object();
        for (int w = 0; w < WORKERS; w++) {
            retries += ws[w].retries;
            replays += ws[w].replays;
            mismatch += ws[w].replay_mismatch;
            refused_n += ws[w].refused;
            if (ws[w].refused > 0)
                printf("crash: worker %d's first refused request: %s\n", w, ws[w].first_refused);
            for (size_t i = 0; i < ws[w].n; i++) {
                const op_t *op = &ws[w].ops[i];
                int64_t t;

                made[op->kind]++;
                if (op->state == S_ACKED)
                    acked[op->kind]++;
                if (op->kind == K_COUNTER_KEYED || op->kind == K_RECEIVER_TIMER)
                    continue; /* counted as a whole below */
                t = applied_times(&ws[w], i, final, final_jj);
                if (t > 0)
                    applied[op->kind]++;
                if (t > 1)
                    twice++;
                if (op->state == S_ACKED && t == 0)
                    lost++;
                if (keyed(op->kind) && op->kind != K_JOURNAL_KEYED)
                    keys_per_ledger[op->ledger]++;
                if (op->ledger == L_N && !timer(op->kind)) {
                    n_attempted++;
                    n_acked += op->state == S_ACKED;
                }
                if (timer(op->kind)) {
                    timers_acked += op->state == S_ACKED;
                    timers_fired += t > 0;
                    fired_unacked += t > 0 && op->state != S_ACKED;
                }
                /* Two calls answered the same count: one answer was for a lost change. */
                if (op->kind == K_CALL_KEYED && op->state == S_ACKED) {
                    char key[32];

                    snprintf(key, sizeof(key), "%lld", (long long)op->reply);
                    if (json_object_get(seen[op->ledger], key) != NULL)
                        dup_answers++;
                    json_object_set_new(seen[op->ledger], key, json_true());
                    if (op->reply > counts[op->ledger])
                        dup_answers++; /* answered a count the ledger never reached */
                }
            }
        }
        for (int l = 0; l < KEYED_LEDGERS; l++)
            json_decref(seen[l]);

        printf("crash: load:");
        for (int kd = 0; kd < K_KINDS; kd++)
            printf("%s %ld %ss (%ld acknowledged)", kd ? "," : "", made[kd], kind_name[kd],
                   acked[kd]);
        printf("\ncrash: %ld requests had no answer when genserv was killed; %ld retries with "
               "their keys; %ld replays of answered calls; %ld timers were stored at the kills\n",
               kills_mid_request, retries, replays, pending_at_kills);

        check(refused_n == 0, "no request got a 4xx or 5xx (%ld did)", refused_n);
        {
            long keyed_n = 0, keyed_acked = 0;
            bool counts_ok = final_cc == made[K_COUNTER_KEYED] &&
                             jj_entries == made[K_JOURNAL_KEYED] &&
                             applied[K_JOURNAL_KEYED] == made[K_JOURNAL_KEYED];

            for (int kd = 0; kd < K_KINDS; kd++)
                if (keyed(kd)) {
                    keyed_n += made[kd];
                    keyed_acked += acked[kd];
                }
            for (int l = 0; l < KEYED_LEDGERS; l++) {
                size_t tags = json_object_size(json_object_get(final[l], "tags"));

                counts_ok &= counts[l] == keys_per_ledger[l] && tags == (size_t)counts[l];
                printf("crash: %s%s: count %lld, %ld distinct keys sent, %zu tags applied\n",
                       ledger_names[l], l == L_K3 ? " (Lua)" : "", (long long)counts[l],
                       keys_per_ledger[l], tags);
            }
            printf("crash: cc (counter): count %lld, %ld distinct keys sent; jj (journal): %ld "
                   "entries, %ld distinct keys sent, %ld of them there\n",
                   (long long)final_cc, made[K_COUNTER_KEYED], jj_entries, made[K_JOURNAL_KEYED],
                   applied[K_JOURNAL_KEYED]);
            check(keyed_n > 0 && keyed_acked == keyed_n && counts_ok,
                  "keyed requests: %ld sent, %ld answered in the end, each server's count is "
                  "its number of distinct keys",
                  keyed_n, keyed_acked);
        }
        check(mismatch == 0, "replays: %ld of answered calls, %ld answered differently", replays,
              mismatch);
        check(dup_answers == 0,
              "answers: no two keyed calls to a ledger got the same count, none a count the "
              "ledger never reached (%ld did)",
              dup_answers);
        check(lost == 0, "lost: %ld acknowledged requests and timers are not in the state", lost);
        check(twice == 0, "applied twice: %ld", twice);
        check(n_acked <= counts[L_N] && counts[L_N] <= n_attempted &&
                  (size_t)counts[L_N] == json_object_size(json_object_get(final[L_N], "tags")),
              "without keys: %ld acknowledged <= count %lld <= %ld attempted (%ld accepted "
              "casts, %ld of them applied)",
              n_acked, (long long)counts[L_N], n_attempted, made[K_CAST_ACCEPTED],
              applied[K_CAST_ACCEPTED]);
        check(timers_acked > 0 && timers_fired >= timers_acked && counts[L_T] == timers_fired,
              "timers to t: %ld acknowledged, %ld fired (%ld of them unacknowledged), count %lld",
              timers_acked, timers_fired, fired_unacked, (long long)counts[L_T]);
        check(acked[K_RECEIVER_TIMER] <= final_rr && final_rr <= made[K_RECEIVER_TIMER],
              "timers to rr: %ld acknowledged <= %lld received <= %ld made",
              acked[K_RECEIVER_TIMER], (long long)final_rr, made[K_RECEIVER_TIMER]);
        printf("audit: %d rounds, %ld acknowledged calls, %ld handled casts and sends, %ld "
               "timers (fired %ld, pending at the kills %ld), %ld lost, %ld applied twice\n",
               restarts_ok, acked[K_CALL_KEYED] + acked[K_CALL],
               acked[K_CAST_KEYED] + acked[K_SEND_KEYED] + acked[K_COUNTER_KEYED] +
                   acked[K_JOURNAL_KEYED] + acked[K_CAST_HANDLED],
               timers_acked + acked[K_RECEIVER_TIMER], timers_fired + final_rr, pending_at_kills,
               lost, twice);
    }

    /* What was committed is what a clean restart finds. */
    {
        int code = h_stop(&srv, H_STOP_MS);
        bool same = true;
        json_t *again;

        check(code == 0, "exit status on SIGTERM %d, want 0", code);
        h_cleanup_files(&srv);
        if (start(&srv) != 0) {
            check(false, "genserv came back after the audit");
            goto out;
        }
        for (int l = 0; l < L_LEDGERS; l++) {
            again = ledger_get(&srv, ledger_names[l]);
            same &= again != NULL && json_equal(again, final[l]);
            json_decref(again);
        }
        again = journal_counts(&srv);
        same &= again != NULL && json_equal(again, final_jj) &&
                h_call_int(&srv, "cc", "\"get_count\"") == final_cc &&
                h_call_int(&srv, "rr", "\"received\"") == final_rr;
        json_decref(again);
        check(same, "the final states are the same after a clean restart");
    }
out:
    for (int l = 0; l < L_LEDGERS; l++)
        json_decref(final[l]);
    json_decref(final_jj);
    {
        int code = h_stop(&srv, H_STOP_MS);

        if (failures > 0 || code != 0)
            h_dump_logs(&srv);
        h_cleanup_files(&srv);
    }
    for (int i = 0; i < WORKERS; i++) {
        free(ws[i].ops);
        free(ws[i].pending);
        free(ws[i].answered_calls);
    }
    h_rmtree(data_dir);
    printf("crash: %s in %.1f s\n", failures == 0 ? "passed" : "FAILED",
           (double)(h_now_ms() - t0) / 1000.0);
    return failures == 0 ? 0 : 1;
}
