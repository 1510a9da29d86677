/*
 * test_durable.c: durable servers on SQLite, as a client sees them over real HTTP, against the
 * real binary started with --data-dir on a directory that outlives its restarts.
 *
 * Each promise is checked across the kind of stop it is about: a clean stop (SIGTERM) and a
 * crash (SIGKILL, nothing flushed):
 *   - an acknowledged change is in the state after the restart (the output gate: a durable
 *     reply leaves only once its change committed), and nothing is applied twice;
 *   - servers started over HTTP come back, durable ones with their state, and stopped ones
 *     stay gone; a behaviour without dump_state/restore cannot be durable (409);
 *   - the built-in counter and journal and an uploaded Lua behaviour are restored, not
 *     initialised, after either kind of stop;
 *   - "ack": "handled" answers once the message was handled and committed;
 *   - an Idempotency-Key makes a retry get the recorded answer, before and after a crash, and
 *     a retry of a call whose first answer is still deferred gets 409;
 *   - send_after to a durable server is stored before its 202, fires after a restart, and its
 *     reference still reads; overdue timers follow their misfire policy;
 *   - a store that cannot be opened, is corrupt or is in use stops the start with exit 3;
 *   - a disk that fills up, or a file system that turns read-only, while genserv runs: durable
 *     writes answer 503 storage_unavailable and roll back, in-memory servers go on, and once
 *     there is room again durable writes succeed; what was refused meanwhile (a start, a keyed
 *     write, a timer's delivery) leaves nothing behind and is not lost.
 * The durable behaviour is mostly the ledger of ledger_plugin.c (a call that changes the state
 * and answers the new count, and a per-tag record of how often each message was applied),
 * loaded with --plugin; ledger.lua is the same in Lua. A read-only file system is
 * rofs_preload.c (Linux will not remount one read-only under a running genserv). Every wait is
 * on an observable fact; the one bare sleep is the downtime that the misfire test needs real
 * time to pass in.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#if !defined(GS_LEDGER_PLUGIN) || !defined(GS_LUA_LEDGER)
#error "GS_LEDGER_PLUGIN and GS_LUA_LEDGER must name the ledgers (tests/integration/CMakeLists.txt)"
#endif

/* ---------------------------------------------------------------------------------------- */
/* A genserv on a data directory of its own                                                   */
/* ---------------------------------------------------------------------------------------- */

typedef struct d_fixture_s {
    h_server_t srv;
    char dir[64];           /* the test's directory: the data directory, or holds it */
    char data[128];         /* the data directory (dir, unless read_only_shim) */
    bool mounted;           /* a tmpfs is mounted on dir: unmounted in teardown */
    bool passed;            /* H_PASS */
    unsigned long long fsz; /* the fsize limit genserv is started with (0: none) */
    /* genserv is started with rofs_preload.c: data/ turns read-only while trigger exists. */
    bool read_only_shim;
    char trigger[128];
} d_fixture_t;

static int d_start_opts(d_fixture_t *fx)
{
    const char *args[] = {"--plugin", GS_LEDGER_PLUGIN, "--data-dir", fx->data, NULL};
    char preload[512], rodir[160], trigger[160], asan[1024];
    const char *env[] = {preload, rodir, trigger, asan, NULL};
    const char *asan_now = getenv("ASAN_OPTIONS");
    h_opts_t opts = {.args = args, .fsize_limit = fx->fsz};

    if (fx->read_only_shim) {
        snprintf(preload, sizeof(preload), "LD_PRELOAD=%s", GS_ROFS_PRELOAD);
        snprintf(rodir, sizeof(rodir), "GS_IT_ROFS_DIR=%s", fx->data);
        snprintf(trigger, sizeof(trigger), "GS_IT_ROFS_TRIGGER=%s", fx->trigger);
        /* An ASan build's runtime wants to be first among the preloaded libraries; the shim
         * only passes calls on to it, so the order does not matter here. */
        snprintf(asan, sizeof(asan), "ASAN_OPTIONS=%s%sverify_asan_link_order=0",
                 asan_now != NULL ? asan_now : "", asan_now != NULL ? ":" : "");
        opts.env = env;
    }
    return h_start(&fx->srv, &opts);
}

static void d_start(d_fixture_t *fx)
{
    assert_int_equal(d_start_opts(fx), 0);
}

/* Stop genserv (SIGTERM, which must exit 0, or SIGKILL) and start it again on the same data
 * directory. */
static void d_restart(d_fixture_t *fx, bool kill9)
{
    if (kill9) {
        h_kill(&fx->srv);
    } else {
        int code = h_stop(&fx->srv, H_STOP_MS);

        if (code != 0) {
            h_dump_logs(&fx->srv);
            fail_msg("genserv exited with %d on SIGTERM, not 0", code);
        }
    }
    h_cleanup_files(&fx->srv);
    d_start(fx);
}

static d_fixture_t *d_fixture_create(void)
{
    d_fixture_t *fx = calloc(1, sizeof(*fx));

    if (fx == NULL || h_tempdir(fx->dir, sizeof(fx->dir), "data") != 0) {
        free(fx);
        return NULL;
    }
    snprintf(fx->data, sizeof(fx->data), "%s", fx->dir);
    return fx;
}

static int d_setup(void **state)
{
    d_fixture_t *fx = d_fixture_create();

    if (fx == NULL)
        return -1;
    if (d_start_opts(fx) != 0) {
        h_rmtree(fx->dir);
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

/* For the tests that start genserv themselves (a mount first, or none at all). */
static int d_setup_dir_only(void **state)
{
    d_fixture_t *fx = d_fixture_create();

    *state = fx;
    return fx != NULL ? 0 : -1;
}

/* genserv with its data directory in DIR/data, which turns read-only while DIR/read-only
 * exists (rofs_preload.c). */
static int d_setup_read_only_shim(void **state)
{
    d_fixture_t *fx = d_fixture_create();
    char real[4096];

    if (fx == NULL)
        return -1;
    /* The shim compares with the paths the kernel reports for genserv's files: no links. */
    if (realpath(fx->dir, real) == NULL || strlen(real) > 100) {
        h_rmtree(fx->dir);
        free(fx);
        return -1;
    }
    snprintf(fx->data, sizeof(fx->data), "%.100s/data", real);
    snprintf(fx->trigger, sizeof(fx->trigger), "%.100s/read-only", real);
    fx->read_only_shim = true;
    if (d_start_opts(fx) != 0) {
        h_rmtree(fx->dir);
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static void read_only(const d_fixture_t *fx, bool on)
{
    if (on) {
        int fd = open(fx->trigger, O_WRONLY | O_CREAT, 0600);

        assert_true(fd >= 0);
        close(fd);
    } else {
        assert_int_equal(unlink(fx->trigger), 0);
    }
}

static int d_teardown(void **state)
{
    d_fixture_t *fx = *state;
    int code = 0;

    if (fx == NULL)
        return 0;
    if (fx->srv.pid > 0 || fx->srv.out_path[0] != '\0') {
        code = h_stop(&fx->srv, H_STOP_MS);
        if (code != 0)
            fprintf(stderr, "harness: genserv exited with %d (-1: signal or killed), not 0\n",
                    code);
        if (code != 0 || !fx->passed)
            h_dump_logs(&fx->srv);
        h_cleanup_files(&fx->srv);
    }
    if (fx->mounted && umount2(fx->dir, MNT_DETACH) != 0)
        fprintf(stderr, "test: umount %s: %s\n", fx->dir, strerror(errno));
    h_rmtree(fx->dir);
    free(fx);
    *state = NULL;
    return code == 0 ? 0 : -1;
}

/* ---------------------------------------------------------------------------------------- */
/* Requests                                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* POST path with body (JSON text) and, when key is not NULL, an Idempotency-Key. */
static void post(const h_server_t *srv, const char *path, const char *body, const char *key,
                 h_resp_t *r)
{
    char header[320];
    const char *headers[] = {header, NULL};
    h_req_t req = {.method = "POST", .path = path, .body = body, .headers = headers};

    if (key != NULL)
        snprintf(header, sizeof(header), "Idempotency-Key: %s", key);
    else
        req.headers = NULL;
    h_request_ex(srv, &req, r);
}

/* POST /call {server, ["add", tag]} with key (may be NULL): the new count, failing the test
 * unless it is 200 with an integer. */
static int64_t add_call(const h_server_t *srv, const char *server, const char *tag, const char *key)
{
    char body[512];
    json_t *reply;
    int64_t n;
    h_resp_t r;

    snprintf(body, sizeof(body), "{\"server\": \"%s\", \"message\": [\"add\", \"%s\"]}", server,
             tag);
    post(srv, "/call", body, key, &r);
    reply = json_object_get(r.json, "reply");
    if (r.status != 200 || !json_is_integer(reply))
        fail_msg("call add %s on %s: %ld (curl %d) %s", tag, server, r.status, r.curl_rc, r.body);
    n = (int64_t)json_integer_value(reply);
    h_resp_close(&r);
    return n;
}

/* POST /cast or /send {server, ["add", tag], "ack": ack (NULL: none)} with key (may be NULL):
 * the response, which the caller closes. */
static void add_deliver(const h_server_t *srv, const char *path, const char *server,
                        const char *tag, const char *ack, const char *key, h_resp_t *r)
{
    char body[512];

    if (ack != NULL)
        snprintf(body, sizeof(body),
                 "{\"server\": \"%s\", \"message\": [\"add\", \"%s\"], \"ack\": \"%s\"}", server,
                 tag, ack);
    else
        snprintf(body, sizeof(body), "{\"server\": \"%s\", \"message\": [\"add\", \"%s\"]}", server,
                 tag);
    post(srv, path, body, key, r);
}

/* Assert that r is 202 with exactly the JSON body expected. */
static void assert_202(const h_resp_t *r, const char *expected)
{
    json_t *want = h_json(expected);
    bool same;

    if (r->status != 202)
        fail_msg("expected 202 %s, got %ld (curl %d): %s", expected, r->status, r->curl_rc,
                 r->body);
    same = h_json_equal(r->json, want);
    json_decref(want);
    if (!same)
        fail_msg("unexpected 202 body: %s", r->body);
}

/* The ledger's whole state through a call (new reference); fails the test if not 200. */
static json_t *ledger_get(const h_server_t *srv, const char *server)
{
    h_resp_t r;
    json_t *state;

    h_call(srv, server, "\"get\"", -1, &r);
    if (r.status != 200 || !json_is_object(json_object_get(r.json, "reply")))
        fail_msg("call get on %s: %ld (curl %d) %s", server, r.status, r.curl_rc, r.body);
    state = json_incref(json_object_get(r.json, "reply"));
    h_resp_close(&r);
    return state;
}

static int64_t ledger_count(const h_server_t *srv, const char *server)
{
    int64_t n = h_call_int(srv, server, "\"count\"");

    if (n == INT64_MIN)
        fail_msg("call count on %s did not answer an integer", server);
    return n;
}

/* How many times tag was applied; INT64_MIN (never a real answer) when the call failed, so
 * that it can be polled while genserv comes up. */
static int64_t ledger_times(const h_server_t *srv, const char *server, const char *tag)
{
    char msg[300];

    snprintf(msg, sizeof(msg), "[\"times\", \"%s\"]", tag);
    return h_call_int(srv, server, msg);
}

static int64_t tag_times(const json_t *state, const char *tag)
{
    return (int64_t)json_integer_value(json_object_get(json_object_get(state, "tags"), tag));
}

/* An integer field of GET /servers/NAME, failing the test when absent. */
static int64_t status_int(const h_server_t *srv, const char *name, const char *field)
{
    int64_t v = h_server_int(srv, name, field, false);

    if (v == INT64_MIN)
        fail_msg("GET /servers/%s has no integer \"%s\"", name, field);
    return v;
}

static bool status_durable(const h_server_t *srv, const char *name)
{
    json_t *info = h_server_info(srv, name);
    bool durable;

    if (info == NULL)
        fail_msg("GET /servers/%s is not 200", name);
    if (!json_is_boolean(json_object_get(info, "durable")))
        fail_msg("GET /servers/%s has no boolean \"durable\"", name);
    durable = json_is_true(json_object_get(info, "durable"));
    json_decref(info);
    return durable;
}

static long status_code(const h_server_t *srv, const char *method, const char *path)
{
    h_resp_t r;
    long status;

    h_request(srv, method, path, NULL, &r);
    status = r.status;
    h_resp_close(&r);
    return status;
}

static void start_ledger_of(const h_server_t *srv, const char *name, const char *behaviour,
                            bool durable)
{
    assert_int_equal(
        h_start_server(srv, name, behaviour, NULL, durable ? "{\"durable\": true}" : NULL), 201);
}

static void start_ledger(const h_server_t *srv, const char *name, bool durable)
{
    start_ledger_of(srv, name, "it_ledger", durable);
}

/* Upload ledger.lua as behaviour name with POST /behaviours; durable: with "durable = true"
 * added to its table. */
static void upload_lua_ledger(const h_server_t *srv, const char *name, bool durable)
{
    FILE *f = fopen(GS_LUA_LEDGER, "r");
    static char source[8192];
    size_t n;
    json_t *body;
    char *text;
    h_resp_t r;

    assert_non_null(f);
    n = fread(source, 1, sizeof(source) - 1, f);
    fclose(f);
    source[n] = '\0';
    body = json_pack("{s:s, s:s}", "name", name, "source", source);
    if (durable) {
        /* The table's own flag, on the line that names its version. */
        char *vsn = strstr(source, "vsn = \"1\",");
        char with[8300];

        assert_non_null(vsn);
        snprintf(with, sizeof(with), "%.*svsn = \"1\", durable = true,%s", (int)(vsn - source),
                 source, vsn + strlen("vsn = \"1\","));
        json_object_set_new(body, "source", json_string(with));
    }
    text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    h_request(srv, "POST", "/behaviours", text, &r);
    free(text);
    if (r.status != 201)
        fail_msg("POST /behaviours %s: %ld %s", name, r.status, r.body);
    h_resp_close(&r);
}

/* POST /send_after to server; the timer's reference into ref (its 202's "timer"). */
static void send_after(const h_server_t *srv, const char *server, const char *tag, int delay_ms,
                       int interval_ms, const char *misfire, char *ref, size_t reflen)
{
    char body[512];
    int n;
    h_resp_t r;

    n = snprintf(body, sizeof(body),
                 "{\"server\": \"%s\", \"message\": [\"add\", \"%s\"], \"delay_ms\": %d", server,
                 tag, delay_ms);
    if (interval_ms > 0)
        n += snprintf(body + n, sizeof(body) - (size_t)n, ", \"interval_ms\": %d", interval_ms);
    if (misfire != NULL)
        n += snprintf(body + n, sizeof(body) - (size_t)n, ", \"misfire\": \"%s\"", misfire);
    snprintf(body + n, sizeof(body) - (size_t)n, "}");
    h_request(srv, "POST", "/send_after", body, &r);
    if (r.status != 202 || h_str(r.json, "timer") == NULL)
        fail_msg("send_after %s: %ld (curl %d) %s", body, r.status, r.curl_rc, r.body);
    snprintf(ref, reflen, "%s", h_str(r.json, "timer"));
    h_resp_close(&r);
}

/* GET /timers/REF: the status, and remaining_ms into *remaining when 200. */
static long timer_read(const h_server_t *srv, const char *ref, int64_t *remaining)
{
    char path[160]; /* "/timers/" and a reference of up to 127 bytes */
    h_resp_t r;
    long status;

    snprintf(path, sizeof(path), "/timers/%s", ref);
    h_request(srv, "GET", path, NULL, &r);
    status = r.status;
    if (status == 200 && remaining != NULL)
        *remaining = (int64_t)json_integer_value(json_object_get(r.json, "remaining_ms"));
    h_resp_close(&r);
    return status;
}

/* A request on a thread of its own, with an Idempotency-Key (h_async_start sends no headers). */
typedef struct keyed_s {
    const h_server_t *srv;
    char path[32];
    char body[512];
    char key[128];
    h_resp_t resp;
    pthread_t thread;
} keyed_t;

static void *keyed_main(void *arg)
{
    keyed_t *k = arg;

    post(k->srv, k->path, k->body, k->key[0] != '\0' ? k->key : NULL, &k->resp);
    return NULL;
}

static keyed_t *keyed_start(const h_server_t *srv, const char *path, const char *body,
                            const char *key)
{
    keyed_t *k = calloc(1, sizeof(*k));

    assert_non_null(k);
    k->srv = srv;
    snprintf(k->path, sizeof(k->path), "%s", path);
    snprintf(k->body, sizeof(k->body), "%s", body);
    snprintf(k->key, sizeof(k->key), "%s", key != NULL ? key : "");
    assert_int_equal(pthread_create(&k->thread, NULL, keyed_main, k), 0);
    return k;
}

static h_resp_t *keyed_wait(keyed_t *k)
{
    pthread_join(k->thread, NULL);
    return &k->resp;
}

static void keyed_destroy(keyed_t *k)
{
    h_resp_close(&k->resp);
    free(k);
}

/* ---------------------------------------------------------------------------------------- */
/* Acknowledged changes survive a clean stop and a crash                                      */
/* ---------------------------------------------------------------------------------------- */

#define T1_ROUND 40

static void assert_every_tag_once(const json_t *state, const char *prefix, int n)
{
    char tag[32];

    for (int i = 1; i <= n; i++) {
        snprintf(tag, sizeof(tag), "%s%d", prefix, i);
        if (tag_times(state, tag) != 1)
            fail_msg("tag %s was applied %lld times, not once", tag,
                     (long long)tag_times(state, tag));
    }
}

static void test_acknowledged_calls_survive_sigterm_and_sigkill(void **state)
{
    d_fixture_t *fx = *state;
    int64_t seq0, seq1;
    bool seen[T1_ROUND + 1] = {false};
    keyed_t *calls[T1_ROUND];
    char tag[32], body[256];
    json_t *st;
    double commits0;

    start_ledger(&fx->srv, "l", true);
    assert_true(status_durable(&fx->srv, "l"));
    H_WAIT_UNTIL(status_int(&fx->srv, "l", "commit_lag") == 0, H_WAIT_MS);
    seq0 = status_int(&fx->srv, "l", "committed_seq");
    assert_int_equal(status_int(&fx->srv, "l", "stored_timers"), 0);
    commits0 = h_metrics_value(&fx->srv, "genserv_store_commits_total");
    assert_true(commits0 >= 1); /* the server's spec and its first state */

    /* One at a time: each answer is the count its own change made. */
    for (int i = 1; i <= T1_ROUND; i++) {
        snprintf(tag, sizeof(tag), "a%d", i);
        assert_int_equal(add_call(&fx->srv, "l", tag, NULL), i);
    }
    /* Every reply left after its commit, so nothing is left to commit, and each change had a
     * sequence number of its own. */
    assert_int_equal(status_int(&fx->srv, "l", "commit_lag"), 0);
    seq1 = status_int(&fx->srv, "l", "committed_seq");
    assert_int_equal(seq1, seq0 + T1_ROUND);
    assert_true(h_metrics_value(&fx->srv, "genserv_store_commits_total") > commits0);
    assert_true(h_metrics_value(&fx->srv, "genserv_store_commit_latency_seconds_count") >=
                T1_ROUND);
    assert_true(h_metrics_value(&fx->srv, "genserv_store_healthy") == 1);
    assert_true(h_metrics_value(&fx->srv, "genserv_store_errors_total") == 0);

    d_restart(fx, false);
    assert_true(status_durable(&fx->srv, "l"));
    assert_int_equal(status_int(&fx->srv, "l", "committed_seq"), seq1);
    st = ledger_get(&fx->srv, "l");
    assert_int_equal(json_integer_value(json_object_get(st, "count")), T1_ROUND);
    assert_int_equal(json_object_size(json_object_get(st, "tags")), T1_ROUND);
    assert_every_tag_once(st, "a", T1_ROUND);
    json_decref(st);
    printf("SIGTERM restart: count %d, committed_seq %lld kept\n", T1_ROUND, (long long)seq1);

    /* Concurrent calls, then SIGKILL the moment the last answer is in: every answered change
     * must be there, each answer a distinct count. */
    for (int i = 0; i < T1_ROUND; i++) {
        snprintf(body, sizeof(body), "{\"server\": \"l\", \"message\": [\"add\", \"b%d\"]}", i + 1);
        calls[i] = keyed_start(&fx->srv, "/call", body, NULL);
    }
    for (int i = 0; i < T1_ROUND; i++) {
        h_resp_t *r = keyed_wait(calls[i]);
        json_t *reply = json_object_get(r->json, "reply");
        int64_t n = json_integer_value(reply);

        if (r->status != 200 || !json_is_integer(reply) || n <= T1_ROUND || n > 2 * T1_ROUND ||
            seen[n - T1_ROUND])
            fail_msg("concurrent add b%d: %ld %s", i + 1, r->status, r->body);
        seen[n - T1_ROUND] = true;
    }
    d_restart(fx, true);
    st = ledger_get(&fx->srv, "l");
    assert_int_equal(json_integer_value(json_object_get(st, "count")), 2 * T1_ROUND);
    assert_every_tag_once(st, "a", T1_ROUND);
    assert_every_tag_once(st, "b", T1_ROUND);
    json_decref(st);
    for (int i = 0; i < T1_ROUND; i++)
        keyed_destroy(calls[i]);
    printf("SIGKILL restart: count %d, every acknowledged call there once\n", 2 * T1_ROUND);
    H_PASS(fx);
}

/* ---------------------------------------------------------------------------------------- */
/* Servers started over HTTP                                                                  */
/* ---------------------------------------------------------------------------------------- */

static void test_servers_started_over_http_come_back_and_stopped_ones_do_not(void **state)
{
    d_fixture_t *fx = *state;
    h_resp_t r;

    start_ledger(&fx->srv, "keep", true);
    start_ledger(&fx->srv, "mem", false);
    start_ledger(&fx->srv, "gone", true);
    start_ledger(&fx->srv, "gone_mem", false);
    assert_false(status_durable(&fx->srv, "mem"));
    for (int i = 0; i < 3; i++) {
        char tag[16];

        snprintf(tag, sizeof(tag), "k%d", i);
        add_call(&fx->srv, "keep", tag, NULL);
        add_call(&fx->srv, "mem", tag, NULL);
        add_call(&fx->srv, "gone", tag, NULL);
    }
    assert_int_equal(status_code(&fx->srv, "DELETE", "/servers/gone"), 200);
    assert_int_equal(status_code(&fx->srv, "DELETE", "/servers/gone_mem"), 200);

    /* A behaviour without dump_state and restore cannot be durable, and says so. */
    h_request(&fx->srv, "POST", "/servers",
              "{\"name\": \"p\", \"behaviour\": \"it_plain\", \"durable\": true}", &r);
    h_assert_error(&r, 409, "not_supported");
    h_resp_close(&r);
    assert_int_equal(status_code(&fx->srv, "GET", "/servers/p"), 404);

    for (int round = 0; round < 2; round++) {
        bool kill9 = round == 1;

        d_restart(fx, kill9);
        /* The durable one with its state; the in-memory one started again by its init. */
        assert_true(status_durable(&fx->srv, "keep"));
        assert_int_equal(ledger_count(&fx->srv, "keep"), 3);
        assert_false(status_durable(&fx->srv, "mem"));
        assert_int_equal(ledger_count(&fx->srv, "mem"), 0);
        assert_int_equal(status_code(&fx->srv, "GET", "/servers/gone"), 404);
        assert_int_equal(status_code(&fx->srv, "GET", "/servers/gone_mem"), 404);
        assert_int_equal(status_code(&fx->srv, "GET", "/servers/p"), 404);
        printf("after %s: keep (durable) count 3, mem (in memory) count 0, stopped ones gone\n",
               kill9 ? "SIGKILL" : "SIGTERM");
    }
    /* The stopped durable server's state went with it: the same name starts afresh. */
    start_ledger(&fx->srv, "gone", true);
    assert_int_equal(ledger_count(&fx->srv, "gone"), 0);
    H_PASS(fx);
}

/* ---------------------------------------------------------------------------------------- */
/* "ack": "handled"                                                                           */
/* ---------------------------------------------------------------------------------------- */

static void test_ack_handled_answers_once_handled_and_committed(void **state)
{
    d_fixture_t *fx = *state;
    h_resp_t r;

    start_ledger(&fx->srv, "l", true);
    start_ledger(&fx->srv, "mem", false);

    /* Acknowledged as handled, then SIGKILL at once: the change must be there. */
    add_deliver(&fx->srv, "/cast", "l", "h1", "handled", NULL, &r);
    assert_202(&r, "{\"ok\": true, \"ack\": \"handled\"}");
    h_resp_close(&r);
    add_deliver(&fx->srv, "/send", "l", "h2", "handled", NULL, &r);
    assert_202(&r, "{\"ok\": true, \"ack\": \"handled\"}");
    h_resp_close(&r);
    d_restart(fx, true);
    assert_int_equal(ledger_times(&fx->srv, "l", "h1"), 1);
    assert_int_equal(ledger_times(&fx->srv, "l", "h2"), 1);

    /* The default, and "accepted" said aloud: 202 once queued, without "ack". */
    add_deliver(&fx->srv, "/cast", "l", "h3", NULL, NULL, &r);
    assert_202(&r, "{\"ok\": true}");
    h_resp_close(&r);
    add_deliver(&fx->srv, "/send", "l", "h4", "accepted", NULL, &r);
    assert_202(&r, "{\"ok\": true}");
    h_resp_close(&r);
    H_WAIT_UNTIL(ledger_times(&fx->srv, "l", "h3") == 1 && ledger_times(&fx->srv, "l", "h4") == 1,
                 H_WAIT_MS);

    /* To an in-memory server "handled" means handled; to no server it is a 404. */
    add_deliver(&fx->srv, "/cast", "mem", "m1", "handled", NULL, &r);
    assert_202(&r, "{\"ok\": true, \"ack\": \"handled\"}");
    h_resp_close(&r);
    assert_int_equal(ledger_times(&fx->srv, "mem", "m1"), 1);
    add_deliver(&fx->srv, "/cast", "nobody", "x", "handled", NULL, &r);
    h_assert_error(&r, 404, "no_such_server");
    h_resp_close(&r);
    add_deliver(&fx->srv, "/cast", "l", "x", "maybe", NULL, &r);
    h_assert_error(&r, 400, "bad_request");
    h_resp_close(&r);
    assert_int_equal(ledger_times(&fx->srv, "l", "x"), 0);
    H_PASS(fx);
}

/* ---------------------------------------------------------------------------------------- */
/* The built-ins and Lua behaviours                                                           */
/* ---------------------------------------------------------------------------------------- */

static void test_builtins_and_a_lua_behaviour_keep_their_state(void **state)
{
    d_fixture_t *fx = *state;
    json_t *entries, *want, *st;
    h_resp_t r;

    upload_lua_ledger(&fx->srv, "lua_ledger", false);
    upload_lua_ledger(&fx->srv, "lua_ledger_durable", true);
    /* init would make the count 1000 again: a restored counter keeps what it counted. */
    assert_int_equal(
        h_start_server(&fx->srv, "c", "counter", "{\"initial\": 1000}", "{\"durable\": true}"),
        201);
    assert_int_equal(h_start_server(&fx->srv, "j", "journal", NULL, "{\"durable\": true}"), 201);
    start_ledger_of(&fx->srv, "lua", "lua_ledger", true);
    /* A Lua behaviour that says durable = true makes its servers durable unasked. */
    start_ledger_of(&fx->srv, "lua2", "lua_ledger_durable", false);
    assert_true(status_durable(&fx->srv, "lua2"));
    /* The batcher holds its callers, which do not outlive the process: it cannot be durable. */
    h_request(&fx->srv, "POST", "/servers",
              "{\"name\": \"b\", \"behaviour\": \"batcher\", \"durable\": true}", &r);
    h_assert_error(&r, 409, "not_supported");
    h_resp_close(&r);

    for (int i = 0; i < 3; i++) {
        post(&fx->srv, "/cast",
             "{\"server\": \"c\", \"message\": [\"increment\", 5], \"ack\": \"handled\"}", NULL,
             &r);
        assert_202(&r, "{\"ok\": true, \"ack\": \"handled\"}");
        h_resp_close(&r);
    }
    post(&fx->srv, "/cast",
         "{\"server\": \"j\", \"message\": [\"add_entry\", \"e1\"], \"ack\": \"handled\"}", NULL,
         &r);
    assert_202(&r, "{\"ok\": true, \"ack\": \"handled\"}");
    h_resp_close(&r);
    post(&fx->srv, "/cast",
         "{\"server\": \"j\", \"message\": [\"add_entry\", {\"n\": 2}], \"ack\": \"handled\"}",
         NULL, &r);
    assert_202(&r, "{\"ok\": true, \"ack\": \"handled\"}");
    h_resp_close(&r);
    assert_int_equal(add_call(&fx->srv, "lua", "a1", NULL), 1);
    assert_int_equal(add_call(&fx->srv, "lua", "a2", "key-a2"), 2);
    add_deliver(&fx->srv, "/cast", "lua", "a3", "handled", NULL, &r);
    assert_202(&r, "{\"ok\": true, \"ack\": \"handled\"}");
    h_resp_close(&r);
    assert_int_equal(add_call(&fx->srv, "lua2", "b1", NULL), 1);

    want = h_json("[{\"n\": 2}, \"e1\"]");
    for (int round = 0; round < 2; round++) {
        bool kill9 = round == 1;

        d_restart(fx, kill9);
        assert_int_equal(h_call_int(&fx->srv, "c", "\"get_count\""), 1015 + round);
        h_call(&fx->srv, "j", "\"entries\"", -1, &r);
        entries = json_object_get(r.json, "reply");
        if (r.status != 200 || !h_json_equal(entries, want))
            fail_msg("journal entries after the restart: %ld %s", r.status, r.body);
        h_resp_close(&r);
        assert_int_equal(ledger_count(&fx->srv, "lua"), 3 + round);
        assert_int_equal(add_call(&fx->srv, "lua", "a2", "key-a2"), 2); /* the recorded answer */
        st = ledger_get(&fx->srv, "lua");
        assert_int_equal(tag_times(st, "a2"), 1);
        json_decref(st);
        assert_true(status_durable(&fx->srv, "lua2"));
        assert_int_equal(ledger_count(&fx->srv, "lua2"), 1);
        printf("after %s: counter 1%03d, journal 2 entries, Lua ledger %d\n",
               kill9 ? "SIGKILL" : "SIGTERM", 15 + round, 3 + round);
        /* One more change for the crash to keep (the read that saw it left after its commit). */
        assert_int_equal(h_deliver(&fx->srv, "/cast", "c", "\"increment\""), 202);
        H_WAIT_UNTIL(h_call_int(&fx->srv, "c", "\"get_count\"") == 1016 + round, H_WAIT_MS);
        assert_int_equal(add_call(&fx->srv, "lua", "x", NULL), 4 + round);
    }
    json_decref(want);
    H_PASS(fx);
}

/* ---------------------------------------------------------------------------------------- */
/* Idempotency-Key                                                                            */
/* ---------------------------------------------------------------------------------------- */

static void test_idempotency_keys_make_retries_safe_across_a_crash(void **state)
{
    d_fixture_t *fx = *state;
    char long_key[300];
    keyed_t *held;
    h_resp_t r;

    start_ledger(&fx->srv, "l", true);
    start_ledger(&fx->srv, "l2", true);
    start_ledger(&fx->srv, "mem", false);

    /* A retried call gets the answer it had the first time, and is not applied again. */
    assert_int_equal(add_call(&fx->srv, "l", "k1", "key-1"), 1);
    assert_int_equal(add_call(&fx->srv, "l", "k1", "key-1"), 1);
    assert_int_equal(add_call(&fx->srv, "l", "k2", "key-2"), 2);
    assert_int_equal(add_call(&fx->srv, "l", "k1", "key-1"), 1);
    assert_int_equal(ledger_count(&fx->srv, "l"), 2);

    /* Casts and sends: a retry is accepted and dropped, whichever acknowledgement it asks. */
    add_deliver(&fx->srv, "/cast", "l", "c1", NULL, "cast-1", &r);
    assert_202(&r, "{\"ok\": true}");
    h_resp_close(&r);
    add_deliver(&fx->srv, "/cast", "l", "c1", "handled", "cast-1", &r);
    assert_202(&r, "{\"ok\": true, \"ack\": \"handled\"}");
    h_resp_close(&r);
    add_deliver(&fx->srv, "/send", "l", "s1", "handled", "send-1", &r);
    assert_202(&r, "{\"ok\": true, \"ack\": \"handled\"}");
    h_resp_close(&r);
    add_deliver(&fx->srv, "/send", "l", "s1", "handled", "send-1", &r);
    assert_202(&r, "{\"ok\": true, \"ack\": \"handled\"}");
    h_resp_close(&r);
    assert_int_equal(ledger_times(&fx->srv, "l", "c1"), 1);
    assert_int_equal(ledger_times(&fx->srv, "l", "s1"), 1);
    assert_int_equal(ledger_count(&fx->srv, "l"), 4);

    /* A key belongs to one server: the same key on another applies there. */
    assert_int_equal(add_call(&fx->srv, "l2", "k1", "key-1"), 1);
    /* An in-memory server ignores keys (nothing would remember them across a restart). */
    assert_int_equal(add_call(&fx->srv, "mem", "k1", "key-1"), 1);
    assert_int_equal(add_call(&fx->srv, "mem", "k1", "key-1"), 2);

    /* The recorded answers are stored with the changes: after a crash, retries are still
     * answered as the first time and still not applied. */
    d_restart(fx, true);
    assert_int_equal(add_call(&fx->srv, "l", "k1", "key-1"), 1);
    assert_int_equal(add_call(&fx->srv, "l", "k2", "key-2"), 2);
    add_deliver(&fx->srv, "/cast", "l", "c1", "handled", "cast-1", &r);
    assert_202(&r, "{\"ok\": true, \"ack\": \"handled\"}");
    h_resp_close(&r);
    add_deliver(&fx->srv, "/send", "l", "s1", NULL, "send-1", &r);
    assert_202(&r, "{\"ok\": true}");
    h_resp_close(&r);
    assert_int_equal(add_call(&fx->srv, "l2", "k1", "key-1"), 1);
    assert_int_equal(ledger_count(&fx->srv, "l"), 4);
    assert_int_equal(ledger_times(&fx->srv, "l", "k1"), 1);
    assert_int_equal(ledger_times(&fx->srv, "l", "c1"), 1);
    assert_int_equal(ledger_times(&fx->srv, "l", "s1"), 1);
    assert_int_equal(ledger_count(&fx->srv, "l2"), 1);
    /* A new key after the restart is a new request. */
    assert_int_equal(add_call(&fx->srv, "l", "k3", "key-3"), 5);

    /* A retry while the first call's answer is still deferred (the ledger holds it until a
     * release): 409, and the first call is not disturbed. */
    held = keyed_start(&fx->srv, "/call", "{\"server\": \"l\", \"message\": [\"hold\", \"h1\"]}",
                       "key-hold");
    H_WAIT_UNTIL(h_server_int(&fx->srv, "l", "held_calls", false) == 1, H_WAIT_MS);
    post(&fx->srv, "/call", "{\"server\": \"l\", \"message\": [\"hold\", \"h1\"]}", "key-hold", &r);
    h_assert_error(&r, 409, "idempotency_in_progress");
    h_resp_close(&r);
    assert_int_equal(h_deliver(&fx->srv, "/cast", "l", "[\"release\"]"), 202);
    h_assert_reply(keyed_wait(held), "6");
    keyed_destroy(held);
    post(&fx->srv, "/call", "{\"server\": \"l\", \"message\": [\"hold\", \"h1\"]}", "key-hold", &r);
    h_assert_reply(&r, "6");
    h_resp_close(&r);
    assert_int_equal(ledger_times(&fx->srv, "l", "h1"), 1);

    /* Keys that are not 1 to 255 printable characters are refused before anything happens. */
    memset(long_key, 'k', 256);
    long_key[256] = '\0';
    post(&fx->srv, "/call", "{\"server\": \"l\", \"message\": [\"add\", \"bad\"]}", long_key, &r);
    h_assert_error(&r, 400, "bad_request");
    h_resp_close(&r);
    post(&fx->srv, "/cast", "{\"server\": \"l\", \"message\": [\"add\", \"bad\"]}", "a\tb", &r);
    h_assert_error(&r, 400, "bad_request");
    h_resp_close(&r);
    assert_int_equal(ledger_times(&fx->srv, "l", "bad"), 0);
    H_PASS(fx);
}

/* ---------------------------------------------------------------------------------------- */
/* send_after to a durable server                                                             */
/* ---------------------------------------------------------------------------------------- */

static void test_timers_to_a_durable_server_survive_restarts(void **state)
{
    d_fixture_t *fx = *state;
    char t1[128], t2[128], t3[128], tm[128], mark[128];
    int64_t remaining = -1;

    start_ledger(&fx->srv, "l", true);
    start_ledger(&fx->srv, "mem", false);

    /* Long enough to be still pending after the restart below (which memcheck makes slow),
     * short enough to fire within H_WAIT_MS of it. */
    const int64_t t_ms = h_under_valgrind() ? 8000 : 2500;

    /* The row is committed before the 202: it is counted at once. */
    send_after(&fx->srv, "l", "t1", t_ms, 0, NULL, t1, sizeof(t1));
    assert_int_equal(status_int(&fx->srv, "l", "stored_timers"), 1);
    assert_true(h_metrics_value(&fx->srv, "genserv_stored_timers") == 1);
    assert_int_equal(timer_read(&fx->srv, t1, &remaining), 200);
    assert_true(remaining > 0 && remaining <= t_ms);
    /* A cancelled one leaves the store too. */
    send_after(&fx->srv, "l", "t2", t_ms, 0, NULL, t2, sizeof(t2));
    {
        char path[160];

        snprintf(path, sizeof(path), "/timers/%s", t2);
        assert_int_equal(status_code(&fx->srv, "DELETE", path), 200);
    }
    H_WAIT_UNTIL(status_int(&fx->srv, "l", "stored_timers") == 1, H_WAIT_MS);
    /* A timer to an in-memory server is not stored. */
    send_after(&fx->srv, "mem", "tm", 60000, 0, NULL, tm, sizeof(tm));
    assert_int_equal(status_int(&fx->srv, "mem", "stored_timers"), 0);
    assert_true(h_metrics_value(&fx->srv, "genserv_stored_timers") == 1);

    d_restart(fx, false);
    remaining = -1;
    assert_int_equal(timer_read(&fx->srv, t1, &remaining), 200);
    assert_true(remaining >= 0 && remaining <= t_ms);
    assert_int_equal(timer_read(&fx->srv, t2, NULL), 404);
    assert_int_equal(timer_read(&fx->srv, tm, NULL), 404);
    assert_int_equal(status_int(&fx->srv, "l", "stored_timers"), 1);
    printf("after SIGTERM: t1's reference reads, remaining_ms %lld\n", (long long)remaining);
    H_WAIT_UNTIL(ledger_times(&fx->srv, "l", "t1") == 1, H_WAIT_MS);
    assert_int_equal(timer_read(&fx->srv, t1, NULL), 404);
    H_WAIT_UNTIL(status_int(&fx->srv, "l", "stored_timers") == 0, H_WAIT_MS);

    /* Committed before its 202, so a crash right after the 202 cannot lose it. */
    send_after(&fx->srv, "l", "t3", 800, 0, NULL, t3, sizeof(t3));
    d_restart(fx, true);
    H_WAIT_UNTIL(ledger_times(&fx->srv, "l", "t3") == 1, H_WAIT_MS);
    /* Each fired once: a marker due after everything else proves no second delivery came. */
    send_after(&fx->srv, "l", "mark", 300, 0, NULL, mark, sizeof(mark));
    H_WAIT_UNTIL(ledger_times(&fx->srv, "l", "mark") == 1, H_WAIT_MS);
    assert_int_equal(ledger_times(&fx->srv, "l", "t1"), 1);
    assert_int_equal(ledger_times(&fx->srv, "l", "t2"), 0);
    assert_int_equal(ledger_times(&fx->srv, "l", "t3"), 1);
    H_WAIT_UNTIL(status_int(&fx->srv, "l", "stored_timers") == 0, H_WAIT_MS);
    assert_true(h_metrics_value(&fx->srv, "genserv_stored_timers") == 0);
    H_PASS(fx);
}

/* ---------------------------------------------------------------------------------------- */
/* Misfire policies                                                                           */
/* ---------------------------------------------------------------------------------------- */

/* Under valgrind genserv is 10-50x slower to make timers and stop: five times the time. */
/* Under a sanitizer genserv is slower to start and to exit (TSan's exit alone can take most of
 * a second), and the test is built with the same sanitizer as the genserv it runs. */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define MF_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define MF_SANITIZED 1
#endif
#endif
#ifndef MF_SANITIZED
#define MF_SANITIZED 0
#endif
#define MF_SCALE    (h_under_valgrind() ? 5 : MF_SANITIZED ? 3 : 1)
#define MF_DELAY    (1000 * MF_SCALE) /* every timer's first due time, ms after it was made */
#define MF_INTERVAL (1000 * MF_SCALE) /* the periodic ones' period */
#define MF_DOWN     (4600 * MF_SCALE) /* down from before the first due time to past this */

/* How many ["$gs_missed", N, ["add", tag]] the ledger kept, N of the last one into *n. */
static int missed_wrappers(const json_t *st, const char *tag, int64_t *n)
{
    json_t *m;
    size_t i;
    int found = 0;

    json_array_foreach(json_object_get(st, "other"), i, m)
    {
        json_t *inner = json_array_get(m, 2);

        if (json_array_size(m) == 3 && json_is_string(json_array_get(m, 0)) &&
            strcmp(json_string_value(json_array_get(m, 0)), "$gs_missed") == 0 &&
            json_is_string(json_array_get(inner, 1)) &&
            strcmp(json_string_value(json_array_get(inner, 1)), tag) == 0) {
            found++;
            *n = (int64_t)json_integer_value(json_array_get(m, 1));
        }
    }
    return found;
}

static void test_overdue_timers_follow_their_misfire_policy(void **state)
{
    d_fixture_t *fx = *state;
    char s1[128], c1[128], a1[128], pc[128], pa[128], ps[128], mark[128], path[160];
    int64_t t_made, t_stopped, t_spawn, t_up, missed_min, missed_max, n = 0;
    json_t *st;

    start_ledger(&fx->srv, "l", true);
    t_made = h_now_ms();
    send_after(&fx->srv, "l", "s1", MF_DELAY, 0, "skip", s1, sizeof(s1));
    send_after(&fx->srv, "l", "c1", MF_DELAY, 0, "coalesce", c1, sizeof(c1));
    send_after(&fx->srv, "l", "a1", MF_DELAY, 0, "all", a1, sizeof(a1));
    send_after(&fx->srv, "l", "pc", MF_DELAY, MF_INTERVAL, "coalesce", pc, sizeof(pc));
    send_after(&fx->srv, "l", "pa", MF_DELAY, MF_INTERVAL, "all", pa, sizeof(pa));
    send_after(&fx->srv, "l", "ps", MF_DELAY, MF_INTERVAL, "skip", ps, sizeof(ps));
    assert_int_equal(status_int(&fx->srv, "l", "stored_timers"), 6);
    assert_int_equal(h_stop(&fx->srv, H_STOP_MS), 0);
    t_stopped = h_now_ms();
    /* The test means "down before anything was due": a stop that took longer proves nothing. */
    if (t_stopped - t_made >= MF_DELAY - 100 * MF_SCALE)
        fail_msg("genserv took %lld ms to make six timers and stop; they were due at %d",
                 (long long)(t_stopped - t_made), MF_DELAY);
    h_cleanup_files(&fx->srv);
    /* The downtime itself is what is tested: real time must pass while nothing runs. */
    h_sleep_ms((int)(t_made + MF_DOWN - h_now_ms()));
    t_spawn = h_now_ms();
    d_start(fx);
    t_up = h_now_ms();
    /* Periods missed, as genserv counts them at its start: (now - due) / period + 1, where due
     * lies between t_made + MF_DELAY and the moment the last timer was made. */
    missed_min = (t_spawn - (t_stopped + MF_DELAY)) / MF_INTERVAL + 1;
    missed_max = (t_up - (t_made + MF_DELAY)) / MF_INTERVAL + 1;
    assert_true(missed_min >= 3);

    /* The first read: the late deliveries were queued before genserv listened. */
    st = ledger_get(&fx->srv, "l");
    printf("after %lld ms down: missed %lld..%lld periods; pa %lld, pc %lld, ps %lld\n",
           (long long)(t_spawn - t_stopped), (long long)missed_min, (long long)missed_max,
           (long long)tag_times(st, "pa"), (long long)tag_times(st, "pc"),
           (long long)tag_times(st, "ps"));
    /* all (periodic): every missed period, plus at most the next regular one since. */
    if (tag_times(st, "pa") < missed_min || tag_times(st, "pa") > missed_max + 1)
        fail_msg("periodic \"all\" delivered %lld times, expected %lld..%lld",
                 (long long)tag_times(st, "pa"), (long long)missed_min, (long long)missed_max + 1);
    /* coalesce (periodic): one late delivery saying how many were missed. */
    if (missed_wrappers(st, "pc", &n) != 1 || n < missed_min || n > missed_max)
        fail_msg("periodic \"coalesce\": expected one [\"$gs_missed\", %lld..%lld, ...], state %s",
                 (long long)missed_min, (long long)missed_max,
                 json_dumps(json_object_get(st, "other"), JSON_COMPACT));
    assert_true(tag_times(st, "pc") <= 1);
    /* skip (periodic): nothing for the missed periods, only the next one. */
    assert_int_equal(missed_wrappers(st, "ps", &n), 0);
    assert_true(tag_times(st, "ps") <= 1);
    json_decref(st);

    /* skip (one-shot): dropped at the start, its reference gone at once. */
    assert_int_equal(timer_read(&fx->srv, s1, NULL), 404);
    /* The periodic ones go on under their references. */
    assert_int_equal(timer_read(&fx->srv, pa, NULL), 200);
    assert_int_equal(timer_read(&fx->srv, pc, NULL), 200);
    assert_int_equal(timer_read(&fx->srv, ps, NULL), 200);
    H_WAIT_UNTIL(ledger_times(&fx->srv, "l", "ps") >= 1 && ledger_times(&fx->srv, "l", "pc") >= 1,
                 H_WAIT_MS);
    /* coalesce and all (one-shot): delivered once; a marker made now proves no second came. */
    send_after(&fx->srv, "l", "mark", 200, 0, NULL, mark, sizeof(mark));
    H_WAIT_UNTIL(ledger_times(&fx->srv, "l", "mark") == 1, H_WAIT_MS);
    assert_int_equal(ledger_times(&fx->srv, "l", "c1"), 1);
    assert_int_equal(ledger_times(&fx->srv, "l", "a1"), 1);
    assert_int_equal(ledger_times(&fx->srv, "l", "s1"), 0);

    /* Cancelled periodic timers leave the store: they do not come back. */
    snprintf(path, sizeof(path), "/timers/%s", pa);
    assert_int_equal(status_code(&fx->srv, "DELETE", path), 200);
    snprintf(path, sizeof(path), "/timers/%s", pc);
    assert_int_equal(status_code(&fx->srv, "DELETE", path), 200);
    snprintf(path, sizeof(path), "/timers/%s", ps);
    assert_int_equal(status_code(&fx->srv, "DELETE", path), 200);
    H_WAIT_UNTIL(status_int(&fx->srv, "l", "stored_timers") == 0, H_WAIT_MS);
    d_restart(fx, false);
    assert_int_equal(timer_read(&fx->srv, pa, NULL), 404);
    assert_int_equal(status_int(&fx->srv, "l", "stored_timers"), 0);
    H_PASS(fx);
}

/* ---------------------------------------------------------------------------------------- */
/* A store that cannot be used stops the start                                                */
/* ---------------------------------------------------------------------------------------- */

/* Run genserv on data_dir to its exit; assert exit 3 and that its output names want. */
static void assert_exit_3(const char *data_dir, const char *want)
{
    const char *args[] = {"--listen", "127.0.0.1:0", "--data-dir", data_dir, NULL};
    char out[8192];
    int code = h_run(args, out, sizeof(out), H_START_MS);

    if (code != 3 || strstr(out, want) == NULL)
        fail_msg("genserv --data-dir %s: exit %d (expected 3) naming \"%s\"; it said:\n%s",
                 data_dir, code, want, out);
    printf("exit 3: %s", strstr(out, "store:") ? strstr(out, "store:") : out);
}

static void write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static void test_a_data_dir_that_cannot_be_opened_exits_3(void **state)
{
    d_fixture_t *fx = *state;
    char path[160], db[160];

    /* A data directory below a regular file cannot be made. */
    snprintf(path, sizeof(path), "%s/file", fx->dir);
    write_file(path, "x", 1);
    snprintf(path, sizeof(path), "%s/file/data", fx->dir);
    assert_exit_3(path, path);
    /* A genserv.db that is a directory cannot be opened. */
    snprintf(path, sizeof(path), "%s/d", fx->dir);
    snprintf(db, sizeof(db), "%s/d/genserv.db", fx->dir);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(mkdir(db, 0700), 0);
    assert_exit_3(path, db);
    H_PASS(fx);
}

static void test_a_corrupted_store_exits_3(void **state)
{
    d_fixture_t *fx = *state;
    char db[160], garbage[16384];
    uint32_t x = 2463534242u;

    /* A store that was good once: genserv made it and stopped cleanly. */
    assert_int_equal(d_start_opts(fx), 0);
    start_ledger(&fx->srv, "l", true);
    add_call(&fx->srv, "l", "a", NULL);
    assert_int_equal(h_stop(&fx->srv, H_STOP_MS), 0);
    h_cleanup_files(&fx->srv);
    /* Then garbage over it all (xorshift: no two runs need differ, only be not SQLite). */
    for (size_t i = 0; i < sizeof(garbage); i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        garbage[i] = (char)x;
    }
    snprintf(db, sizeof(db), "%s/genserv.db", fx->dir);
    write_file(db, garbage, sizeof(garbage));
    assert_exit_3(fx->dir, db);
    H_PASS(fx);
}

static void test_a_second_genserv_on_the_same_data_dir_exits_3(void **state)
{
    d_fixture_t *fx = *state;
    char db[160];

    start_ledger(&fx->srv, "l", true);
    add_call(&fx->srv, "l", "a", NULL);
    snprintf(db, sizeof(db), "%s/genserv.db", fx->dir);
    assert_exit_3(fx->dir, "in use");
    assert_exit_3(fx->dir, db);
    /* The first one is not disturbed. */
    assert_int_equal(add_call(&fx->srv, "l", "b", NULL), 2);
    d_restart(fx, false);
    assert_int_equal(ledger_count(&fx->srv, "l"), 2);
    H_PASS(fx);
}

/* ---------------------------------------------------------------------------------------- */
/* Storage failing while genserv runs                                                         */
/* ---------------------------------------------------------------------------------------- */

/* A small tmpfs on fx->dir. false (with a note printed) when this machine will not mount, or
 * when GS_IT_NO_MOUNT is set (to run the fallback where mounting works). */
static bool mount_tmpfs(d_fixture_t *fx, const char *size)
{
    char opts[64];

    if (getenv("GS_IT_NO_MOUNT") != NULL) {
        printf("note: GS_IT_NO_MOUNT is set: no tmpfs\n");
        return false;
    }
    snprintf(opts, sizeof(opts), "size=%s,mode=0700", size);
    if (mount("tmpfs", fx->dir, "tmpfs", 0, opts) != 0) {
        printf("note: cannot mount a tmpfs on %s (%s)\n", fx->dir, strerror(errno));
        return false;
    }
    fx->mounted = true;
    return true;
}

/* Fill the file system of path with it until ENOSPC, then give back `leave` bytes: the size
 * of the file. */
static long long fill(const char *path, long long leave)
{
    static char block[65536];
    long long total = 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    assert_true(fd >= 0);
    memset(block, 'f', sizeof(block));
    for (size_t chunk = sizeof(block); chunk >= 512;) {
        ssize_t w = write(fd, block, chunk);

        if (w > 0)
            total += w;
        else if (w < 0 && errno != EINTR)
            chunk /= 2; /* ENOSPC: the last pages with smaller writes */
    }
    total = total > leave ? total - leave : 0;
    assert_int_equal(ftruncate(fd, (off_t)total), 0);
    close(fd);
    return total;
}

static double metric(const h_server_t *srv, const char *name)
{
    double v = h_metrics_value(srv, name);

    if (v < 0)
        fail_msg("GET /metrics has no %s", name);
    return v;
}

typedef enum { DISK_TMPFS, DISK_FSIZE } disk_t;

/*
 * Take away the room durable writes need: on a tmpfs, a file that takes all but a few hundred
 * KB, so that a few writes still fit; else an RLIMIT_FSIZE no larger than genserv's files
 * are now (a write that grows one fails with EFBIG, as it would with ENOSPC).
 */
static void disk_fill(d_fixture_t *fx, disk_t disk)
{
    char path[160];

    if (disk == DISK_TMPFS) {
        snprintf(path, sizeof(path), "%s/filler", fx->dir);
        printf("filler: %lld bytes\n", fill(path, 300 * 1024));
    } else {
        struct stat sb;
        long long biggest = 0;
        const char *names[] = {"genserv.db", "genserv.db-wal", NULL};

        for (size_t i = 0; names[i] != NULL; i++) {
            snprintf(path, sizeof(path), "%s/%s", fx->data, names[i]);
            if (stat(path, &sb) == 0 && sb.st_size > biggest)
                biggest = sb.st_size;
        }
        assert_int_equal(h_set_fsize_limit(&fx->srv, (unsigned long long)biggest + 1), 0);
    }
}

static void disk_free(d_fixture_t *fx, disk_t disk)
{
    char path[160];

    if (disk == DISK_TMPFS) {
        snprintf(path, sizeof(path), "%s/filler", fx->dir);
        assert_int_equal(unlink(path), 0);
    } else {
        assert_int_equal(h_set_fsize_limit(&fx->srv, 0), 0);
    }
}

/* Every kind of durable write to l is refused with 503 and leaves no trace, while in-memory
 * servers go on: what both a full disk and a read-only one must look like. count_ok: l's
 * last committed count. small: whether even a small write must fail (on a full disk a timer's
 * row may still fit where a state does not). */
static void assert_durable_writes_refused(d_fixture_t *fx, int64_t count_ok, bool small)
{
    int64_t mem;
    h_resp_t r;

    h_request(&fx->srv, "POST", "/call", "{\"server\": \"l\", \"message\": [\"add\", \"f1\"]}", &r);
    h_assert_error(&r, 503, "storage_unavailable");
    h_resp_close(&r);
    add_deliver(&fx->srv, "/cast", "l", "f2", "handled", NULL, &r);
    h_assert_error(&r, 503, "storage_unavailable");
    h_resp_close(&r);
    add_deliver(&fx->srv, "/send", "l", "f3", "handled", NULL, &r);
    h_assert_error(&r, 503, "storage_unavailable");
    h_resp_close(&r);
    if (small) {
        h_request(&fx->srv, "POST", "/send_after",
                  "{\"server\": \"l\", \"message\": [\"add\", \"f4\"], \"delay_ms\": 100}", &r);
        h_assert_error(&r, 503, "storage_unavailable");
        h_resp_close(&r);
        assert_int_equal(status_int(&fx->srv, "l", "stored_timers"), 0);
    }
    /* Rolled back: the state is the committed one. */
    assert_int_equal(ledger_count(&fx->srv, "l"), count_ok);
    assert_int_equal(ledger_times(&fx->srv, "l", "f1"), 0);
    assert_int_equal(ledger_times(&fx->srv, "l", "f2"), 0);
    assert_int_equal(ledger_times(&fx->srv, "l", "f3"), 0);
    assert_true(status_durable(&fx->srv, "l"));
    /* In-memory servers keep working, the built-in counter as much as a ledger. */
    mem = ledger_count(&fx->srv, "mem");
    assert_int_equal(add_call(&fx->srv, "mem", "m1", NULL), mem + 1);
    assert_int_equal(h_deliver(&fx->srv, "/cast", "counter", "\"increment\""), 202);
    H_WAIT_UNTIL(h_call_int(&fx->srv, "counter", "\"get_count\"") >= 1, H_WAIT_MS);
    assert_true(metric(&fx->srv, "genserv_store_errors_total") > 0);
    assert_true(metric(&fx->srv, "genserv_store_healthy") == 0);
}

static void test_a_full_disk_refuses_durable_writes_until_there_is_room(void **state)
{
    d_fixture_t *fx = *state;
    disk_t disk = mount_tmpfs(fx, "2m") ? DISK_TMPFS : DISK_FSIZE;
    int64_t count_ok = 3, pad_ok = 0, pad = 0;
    char body[256], ref[128];
    json_t *st;
    h_resp_t r;
    int tries;

    if (disk == DISK_FSIZE) {
        /* Far beyond anything written until disk_fill lowers it; set at the start so that the
         * child ignores SIGXFSZ and a write past the limit fails instead of killing it. */
        printf("note: filling with RLIMIT_FSIZE instead of a small tmpfs\n");
        fx->fsz = 1ull << 40;
    }
    d_start(fx);
    start_ledger(&fx->srv, "l", true);
    start_ledger(&fx->srv, "mem", false);
    for (int i = 1; i <= count_ok; i++) {
        char tag[8];

        snprintf(tag, sizeof(tag), "a%d", i);
        add_call(&fx->srv, "l", tag, NULL);
    }
    disk_fill(fx, disk);

    /* Writes that grow the state until one does not fit: what a durable server is asked to
     * remember when there is no room for it. */
    for (tries = 0; tries < 200; tries++) {
        pad = 50000 + tries * 1000;
        snprintf(body, sizeof(body), "{\"server\": \"l\", \"message\": [\"pad\", %lld]}",
                 (long long)pad);
        h_request(&fx->srv, "POST", "/call", body, &r);
        if (r.status != 200)
            break;
        pad_ok = pad;
        h_resp_close(&r);
    }
    h_assert_error(&r, 503, "storage_unavailable");
    h_resp_close(&r);
    printf("full after %d durable writes (the last committed pad %lld bytes, refused %lld)\n",
           tries, (long long)pad_ok, (long long)pad);

    /* The refused change is not there: the server is back at its last committed state. */
    st = ledger_get(&fx->srv, "l");
    assert_int_equal(json_integer_value(json_object_get(st, "count")), count_ok);
    assert_int_equal(json_string_length(json_object_get(st, "pad")), pad_ok);
    json_decref(st);
    assert_durable_writes_refused(fx, count_ok, false);
    printf("while full: genserv_store_errors_total %g\n",
           metric(&fx->srv, "genserv_store_errors_total"));

    /* Room again: the next durable writes commit, timers included. */
    disk_free(fx, disk);
    assert_int_equal(add_call(&fx->srv, "l", "after", NULL), count_ok + 1);
    send_after(&fx->srv, "l", "t", 100, 0, NULL, ref, sizeof(ref));
    H_WAIT_UNTIL(ledger_times(&fx->srv, "l", "t") == 1, H_WAIT_MS);
    assert_true(metric(&fx->srv, "genserv_store_healthy") == 1);
    d_restart(fx, false);
    st = ledger_get(&fx->srv, "l");
    assert_int_equal(json_integer_value(json_object_get(st, "count")), count_ok + 2);
    assert_int_equal(json_string_length(json_object_get(st, "pad")), pad_ok);
    assert_int_equal(tag_times(st, "after"), 1);
    assert_int_equal(tag_times(st, "f1") + tag_times(st, "f2") + tag_times(st, "f3"), 0);
    json_decref(st);
    H_PASS(fx);
}

static void test_a_read_only_file_system_refuses_durable_writes_until_writable(void **state)
{
    d_fixture_t *fx = *state;
    json_t *st;

    start_ledger(&fx->srv, "l", true);
    start_ledger(&fx->srv, "mem", false);
    assert_int_equal(add_call(&fx->srv, "l", "a1", NULL), 1);
    read_only(fx, true);
    assert_durable_writes_refused(fx, 1, true);
    read_only(fx, false);
    assert_int_equal(add_call(&fx->srv, "l", "a2", NULL), 2);
    assert_true(metric(&fx->srv, "genserv_store_healthy") == 1);
    d_restart(fx, true);
    st = ledger_get(&fx->srv, "l");
    assert_int_equal(json_integer_value(json_object_get(st, "count")), 2);
    assert_int_equal(tag_times(st, "a2"), 1);
    json_decref(st);
    H_PASS(fx);
}

/*
 * Starting a durable server over HTTP stores its spec before the 201; when that cannot be
 * stored the start is refused (503) and the server "was stopped again": nothing may be left
 * running under the name. The server's own first state cannot be stored either, so it crashes
 * and is restarted while the refusal stops it: several starts give that race its chances.
 */
#define REFUSED_STARTS 10

static void test_a_durable_start_refused_for_storage_leaves_no_server(void **state)
{
    d_fixture_t *fx = *state;
    char body[160], path[64];
    int left = 0;
    h_resp_t r;

    read_only(fx, true);
    for (int i = 0; i < REFUSED_STARTS; i++) {
        snprintf(body, sizeof(body),
                 "{\"name\": \"r%d\", \"behaviour\": \"it_ledger\", \"durable\": true}", i);
        h_request(&fx->srv, "POST", "/servers", body, &r);
        h_assert_error(&r, 503, "storage_unavailable");
        h_resp_close(&r);
        snprintf(path, sizeof(path), "/servers/r%d", i);
        left += status_code(&fx->srv, "GET", path) != 404;
    }
    printf("%d of %d refused durable starts left a server running\n", left, REFUSED_STARTS);
    assert_int_equal(left, 0);
    read_only(fx, false);
    /* Nor does one come back: its spec was never stored. */
    d_restart(fx, false);
    assert_int_equal(status_code(&fx->srv, "GET", "/servers/r0"), 404);
    H_PASS(fx);
}

/*
 * A write refused for storage was never applied, so its retry under the same Idempotency-Key
 * must be applied (once) when the store works again, not answered from a record of the refused
 * attempt: the key's record goes back with the state.
 */
static void test_a_retry_of_a_keyed_write_refused_for_storage_is_applied(void **state)
{
    d_fixture_t *fx = *state;
    h_resp_t r;

    start_ledger(&fx->srv, "l", true);
    assert_int_equal(add_call(&fx->srv, "l", "a1", NULL), 1);
    read_only(fx, true);
    post(&fx->srv, "/call", "{\"server\": \"l\", \"message\": [\"add\", \"k1\"]}", "key-call", &r);
    h_assert_error(&r, 503, "storage_unavailable");
    h_resp_close(&r);
    add_deliver(&fx->srv, "/cast", "l", "k2", "handled", "key-cast", &r);
    h_assert_error(&r, 503, "storage_unavailable");
    h_resp_close(&r);
    read_only(fx, false);

    /* The retries, as a client does after a 503; both are checked before either fails. */
    post(&fx->srv, "/call", "{\"server\": \"l\", \"message\": [\"add\", \"k1\"]}", "key-call", &r);
    long call_status = r.status;
    char call_body[256];
    snprintf(call_body, sizeof(call_body), "%s", r.body);
    h_resp_close(&r);
    add_deliver(&fx->srv, "/cast", "l", "k2", "handled", "key-cast", &r);
    long cast_status = r.status;
    h_resp_close(&r);
    int64_t k1 = ledger_times(&fx->srv, "l", "k1"), k2 = ledger_times(&fx->srv, "l", "k2");
    printf("retried call: %ld %s, k1 applied %lld times; retried cast: %ld, k2 applied %lld "
           "times\n",
           call_status, call_body, (long long)k1, cast_status, (long long)k2);
    if (k1 != 1 || k2 != 1)
        fail_msg("a retry under the key of a refused write was answered as done (call %ld, "
                 "cast %ld) but not applied: k1 %lld times, k2 %lld times (expected 1 each)",
                 call_status, cast_status, (long long)k1, (long long)k2);
    assert_int_equal(call_status, 200);
    assert_int_equal(cast_status, 202);
    assert_int_equal(ledger_count(&fx->srv, "l"), 3);
    H_PASS(fx);
}

/*
 * A timer to a durable server that comes due while the store cannot commit: its delivery is
 * rolled back with the rest, but the timer must not be lost with it. Its row is still stored,
 * so it is still pending; once the store works again it fires, once (not only at the next
 * start of genserv).
 */
static void test_a_timer_due_while_the_store_fails_is_delivered_once_it_works(void **state)
{
    d_fixture_t *fx = *state;
    char ref[128], mark[128];
    int64_t deadline, times = 0;

    start_ledger(&fx->srv, "l", true);
    send_after(&fx->srv, "l", "t1", 300, 0, NULL, ref, sizeof(ref));
    read_only(fx, true);
    /* Due, delivered, and its change refused: the timer is due again a second later (its
     * reference reads as pending again then), and again, until a commit succeeds. */
    H_WAIT_UNTIL(metric(&fx->srv, "genserv_store_errors_total") > 0, H_WAIT_MS);
    assert_int_equal(ledger_times(&fx->srv, "l", "t1"), 0);
    read_only(fx, false);
    /* 1, or 2 when the timer's next try came first. */
    int64_t after = add_call(&fx->srv, "l", "after", NULL);
    assert_true(after == 1 || after == 2);
    deadline = h_now_ms() + H_WAIT_MS;
    while ((times = ledger_times(&fx->srv, "l", "t1")) == 0 && h_now_ms() < deadline)
        h_sleep_ms(10);
    if (times != 1)
        fail_msg("the timer due while the store failed was applied %lld times within %d ms of "
                 "the store working again (expected 1); l says stored_timers %lld",
                 (long long)times, H_WAIT_MS,
                 (long long)status_int(&fx->srv, "l", "stored_timers"));
    /* And not again after a restart: a marker due after it proves nothing else came. */
    d_restart(fx, false);
    send_after(&fx->srv, "l", "mark", 300, 0, NULL, mark, sizeof(mark));
    H_WAIT_UNTIL(ledger_times(&fx->srv, "l", "mark") == 1, H_WAIT_MS);
    assert_int_equal(ledger_times(&fx->srv, "l", "t1"), 1);
    H_PASS(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_acknowledged_calls_survive_sigterm_and_sigkill,
                                        d_setup, d_teardown),
        cmocka_unit_test_setup_teardown(
            test_servers_started_over_http_come_back_and_stopped_ones_do_not, d_setup, d_teardown),
        cmocka_unit_test_setup_teardown(test_ack_handled_answers_once_handled_and_committed,
                                        d_setup, d_teardown),
        cmocka_unit_test_setup_teardown(test_builtins_and_a_lua_behaviour_keep_their_state, d_setup,
                                        d_teardown),
        cmocka_unit_test_setup_teardown(test_idempotency_keys_make_retries_safe_across_a_crash,
                                        d_setup, d_teardown),
        cmocka_unit_test_setup_teardown(test_timers_to_a_durable_server_survive_restarts, d_setup,
                                        d_teardown),
        cmocka_unit_test_setup_teardown(test_overdue_timers_follow_their_misfire_policy, d_setup,
                                        d_teardown),
        cmocka_unit_test_setup_teardown(test_a_data_dir_that_cannot_be_opened_exits_3,
                                        d_setup_dir_only, d_teardown),
        cmocka_unit_test_setup_teardown(test_a_corrupted_store_exits_3, d_setup_dir_only,
                                        d_teardown),
        cmocka_unit_test_setup_teardown(test_a_second_genserv_on_the_same_data_dir_exits_3, d_setup,
                                        d_teardown),
        cmocka_unit_test_setup_teardown(test_a_full_disk_refuses_durable_writes_until_there_is_room,
                                        d_setup_dir_only, d_teardown),
        cmocka_unit_test_setup_teardown(
            test_a_read_only_file_system_refuses_durable_writes_until_writable,
            d_setup_read_only_shim, d_teardown),
        cmocka_unit_test_setup_teardown(test_a_durable_start_refused_for_storage_leaves_no_server,
                                        d_setup_read_only_shim, d_teardown),
        cmocka_unit_test_setup_teardown(
            test_a_timer_due_while_the_store_fails_is_delivered_once_it_works,
            d_setup_read_only_shim, d_teardown),
        cmocka_unit_test_setup_teardown(
            test_a_retry_of_a_keyed_write_refused_for_storage_is_applied, d_setup_read_only_shim,
            d_teardown),
    };
    int64_t t0;
    int failed;

    h_init(100);
    t0 = h_now_ms();
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    printf("it_durable: %.1f s\n", (double)(h_now_ms() - t0) / 1000.0);
    return failed;
}
