/*
 * test_ops.c: issue 16, "Ops conventions", against the real binary: the probes (/livez,
 * /readyz, and /readyz turning 503 while a drain keeps everything else served), the request id
 * every answer carries, the access log and the JSON log format (parsed line by line), and the
 * metrics: the conventional families with their labels, the bound on per-server series, and
 * `promtool check metrics` on a real scrape.
 *
 * What is not observable here: /readyz before the boot finished. The binary loads the store,
 * the behaviours and the boot servers before it opens its port, so until then a probe gets a
 * refused connection, which every orchestrator counts as not ready.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <regex.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

/* The longest X-Request-Id genserv takes from a client (GS_REQUEST_ID_MAX). */
#define GS_TEST_LONG_ID 128

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                    */
/* ---------------------------------------------------------------------------------------- */

/* Lines of text (borrowed) that hold needle. */
static size_t count_lines_with(const char *text, const char *needle)
{
    size_t n = 0;
    const char *line = text;

    while (line != NULL && *line != '\0') {
        const char *end = strchr(line, '\n');
        size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
        const char *hit = strstr(line, needle);

        n += hit != NULL && hit < line + len;
        line = end != NULL ? end + 1 : NULL;
    }
    return n;
}

/* Every line of text (borrowed) parsed as a JSON object into a new array; the test fails on a
 * line that is not one. */
static json_t *json_lines(const char *text)
{
    json_t *all = json_array();
    const char *line = text;

    while (line != NULL && *line != '\0') {
        const char *end = strchr(line, '\n');
        size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
        json_error_t e;
        json_t *v = json_loadb(line, len, 0, &e);

        if (!json_is_object(v))
            fail_msg("not a JSON object (%s): %.*s", e.text, (int)len, line);
        json_array_append_new(all, v);
        line = end != NULL ? end + 1 : NULL;
    }
    return all;
}

/* The first access-log entry (borrowed from entries) with this request id, or NULL. */
static json_t *entry_with_id(json_t *entries, const char *id)
{
    size_t i;
    json_t *e;

    json_array_foreach(entries, i, e)
    {
        const char *rid = h_str(e, "request_id");

        if (rid != NULL && strcmp(rid, id) == 0)
            return e;
    }
    return NULL;
}

/* GET path with an X-Request-Id header (NULL: none). */
static void get_with_id(const h_server_t *srv, const char *path, const char *id, h_resp_t *r)
{
    char header[512];
    const char *const headers[] = {header, NULL};
    h_req_t req = {.method = "GET", .path = path, .headers = id != NULL ? headers : NULL};

    snprintf(header, sizeof(header), "X-Request-Id: %s", id != NULL ? id : "");
    h_request_ex(srv, &req, r);
}

/* A generated id: 8 hex digits, '-', 16 hex digits. */
static bool is_generated_id(const char *s)
{
    regex_t re;
    bool ok;

    assert_int_equal(regcomp(&re, "^[0-9a-f]{8}-[0-9a-f]{16}$", REG_EXTENDED | REG_NOSUB), 0);
    ok = s != NULL && regexec(&re, s, 0, NULL, 0) == 0;
    regfree(&re);
    return ok;
}

/* GET /readyz's status (0 when there is no answer). */
static long readyz_status(const h_server_t *srv)
{
    h_resp_t r;
    long st;

    h_request(srv, "GET", "/readyz", NULL, &r);
    st = r.status;
    h_resp_close(&r);
    return st;
}

static char tmpdir[256];

static int setup_logs(void **state)
{
    char access[320];
    static char arg[320];
    const char *const args[] = {"--log-format", "json", "--access-log", arg, NULL};
    h_opts_t o = {.args = args};

    if (h_tempdir(tmpdir, sizeof(tmpdir), "ops") < 0)
        return -1;
    snprintf(access, sizeof(access), "%s/access.log", tmpdir);
    snprintf(arg, sizeof(arg), "%s", access);
    return h_setup_with(state, &o);
}

static int teardown_logs(void **state)
{
    int rc = h_teardown(state);

    h_rmtree(tmpdir);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Probes                                                                                     */
/* ---------------------------------------------------------------------------------------- */

static int setup_token(void **state)
{
    const char *const env[] = {"GENSERV_TOKEN=ops-secret-token", NULL};
    h_opts_t o = {.env = env};

    return h_setup_with(state, &o);
}

/* Both probes answer without a token; /readyz says which parts are loaded. */
static void test_livez_and_readyz_answer_without_a_token(void **state)
{
    h_fixture_t *fx = *state;
    h_resp_t r;
    json_t *checks;

    h_request(&fx->srv, "GET", "/livez", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(r.json);
    assert_true(json_is_true(json_object_get(r.json, "ok")));
    h_resp_close(&r);

    h_request(&fx->srv, "GET", "/readyz", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(r.json);
    assert_true(json_is_true(json_object_get(r.json, "ok")));
    checks = json_object_get(r.json, "checks");
    assert_true(json_is_true(json_object_get(checks, "store")));
    assert_true(json_is_true(json_object_get(checks, "behaviours")));
    assert_true(json_is_true(json_object_get(checks, "servers")));
    assert_true(json_is_true(json_object_get(checks, "accepting")));
    h_resp_close(&r);

    /* The token still guards everything else. */
    h_request(&fx->srv, "GET", "/servers", NULL, &r);
    h_assert_error(&r, 401, "unauthorized");
    h_resp_close(&r);
    h_request(&fx->srv, "POST", "/readyz", "{}", &r);
    assert_int_equal(r.status, 405);
    h_resp_close(&r);
    H_PASS(fx);
}

static int setup_drain(void **state)
{
    const char *const args[] = {"--drain-ms", "4000", NULL};
    h_opts_t o = {.args = args};

    return h_setup_with(state, &o);
}

/* On SIGTERM /readyz turns 503 not_ready at once while /livez and calls are still served
 * for --drain-ms; then genserv stops by itself and exits 0. */
static void test_readyz_is_503_while_draining_and_the_rest_is_served(void **state)
{
    h_fixture_t *fx = *state;
    h_resp_t r;
    int64_t t0;

    assert_int_equal(readyz_status(&fx->srv), 200);
    t0 = h_now_ms();
    assert_int_equal(kill(fx->srv.pid, SIGTERM), 0);
    H_WAIT_UNTIL(readyz_status(&fx->srv) == 503, H_WAIT_MS);

    h_request(&fx->srv, "GET", "/readyz", NULL, &r);
    h_assert_error(&r, 503, "not_ready");
    assert_true(json_is_false(json_object_get(json_object_get(r.json, "checks"), "accepting")));
    assert_true(json_is_true(json_object_get(json_object_get(r.json, "checks"), "servers")));
    h_resp_close(&r);

    /* Still serving: the probe a kubelet restarts on, and real work. */
    h_request(&fx->srv, "GET", "/livez", NULL, &r);
    assert_int_equal(r.status, 200);
    h_resp_close(&r);
    h_request(&fx->srv, "POST", "/call", "{\"server\":\"counter\",\"message\":\"get_count\"}", &r);
    assert_int_equal(r.status, 200);
    h_resp_close(&r);
    /* Only if the drain is not over yet does the last answer prove anything. */
    assert_true(h_now_ms() - t0 < 4000);

    /* It stops by itself once the drain is over (a second SIGTERM would exit at once with
     * 143, which is why the fixture's stop is not used), and cleanly. */
    H_WAIT_UNTIL(!h_alive(&fx->srv), H_STOP_MS);
    assert_true(h_now_ms() - t0 >= 3900);
    assert_int_equal(h_stop(&fx->srv, H_STOP_MS), 0);
    H_PASS(fx);
}

/* ---------------------------------------------------------------------------------------- */
/* Request ids                                                                                */
/* ---------------------------------------------------------------------------------------- */

/* A valid X-Request-Id comes back as sent; a missing, too long or unsafe one is replaced by a
 * generated one, unique per request; and every kind of answer carries one. */
static void test_every_answer_carries_a_request_id(void **state)
{
    h_fixture_t *fx = *state;
    char id[256], id2[256], longid[GS_TEST_LONG_ID + 2];
    h_resp_t r;

    get_with_id(&fx->srv, "/servers", "trace-42.a:b/c=d@e~f+g_h", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(h_header(&r, "X-Request-Id", id, sizeof(id)), "trace-42.a:b/c=d@e~f+g_h");
    h_resp_close(&r);

    get_with_id(&fx->srv, "/servers", NULL, &r);
    assert_true(is_generated_id(h_header(&r, "X-Request-Id", id, sizeof(id))));
    h_resp_close(&r);
    get_with_id(&fx->srv, "/servers", NULL, &r);
    assert_true(is_generated_id(h_header(&r, "X-Request-Id", id2, sizeof(id2))));
    assert_string_not_equal(id, id2);
    h_resp_close(&r);

    /* Refused ids: a space (it would split a log line), a quote, and 129 characters. */
    get_with_id(&fx->srv, "/servers", "two words", &r);
    assert_true(is_generated_id(h_header(&r, "X-Request-Id", id, sizeof(id))));
    h_resp_close(&r);
    get_with_id(&fx->srv, "/servers", "a\"b", &r);
    assert_true(is_generated_id(h_header(&r, "X-Request-Id", id, sizeof(id))));
    h_resp_close(&r);
    memset(longid, 'x', GS_TEST_LONG_ID + 1);
    longid[GS_TEST_LONG_ID + 1] = '\0';
    get_with_id(&fx->srv, "/servers", longid, &r);
    assert_true(is_generated_id(h_header(&r, "X-Request-Id", id, sizeof(id))));
    h_resp_close(&r);
    longid[GS_TEST_LONG_ID] = '\0'; /* 128: the longest taken */
    get_with_id(&fx->srv, "/servers", longid, &r);
    assert_string_equal(h_header(&r, "X-Request-Id", id, sizeof(id)), longid);
    h_resp_close(&r);

    /* Errors, a static file, a held call, an event stream. */
    {
        static const struct {
            const char *method, *path, *body;
            long status;
        } cases[] = {
            {"GET", "/no/such/path", NULL, 404},
            {"DELETE", "/call", NULL, 405},
            {"POST", "/call", "[1]", 400},
            {"GET", "/", NULL, 200},
            {"GET", "/healthz", NULL, 200},
            {"POST", "/call", "{\"server\":\"slow\",\"message\":[\"sleep\",300]}", 200},
            {"POST", "/call", "{\"server\":\"nobody\",\"message\":\"x\"}", 404},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            char header[64];
            const char *const headers[] = {header, NULL};
            h_req_t req = {.method = cases[i].method,
                           .path = cases[i].path,
                           .body = cases[i].body,
                           .headers = headers};

            snprintf(header, sizeof(header), "X-Request-Id: case-%zu", i);
            h_request_ex(&fx->srv, &req, &r);
            assert_int_equal(r.status, cases[i].status);
            snprintf(id2, sizeof(id2), "case-%zu", i);
            if (h_header(&r, "X-Request-Id", id, sizeof(id)) == NULL || strcmp(id, id2) != 0)
                fail_msg("%s %s: X-Request-Id %s, expected %s", cases[i].method, cases[i].path,
                         h_header(&r, "X-Request-Id", id, sizeof(id)) ? id : "(none)", id2);
            h_resp_close(&r);
        }
    }
    {
        /* An event stream never ends by itself: the client gives up after its headers came. */
        const char *const headers[] = {"X-Request-Id: stream-1", NULL};
        h_req_t req = {.method = "GET", .path = "/events", .timeout_ms = 700, .headers = headers};

        h_request_ex(&fx->srv, &req, &r);
        assert_int_equal(r.status, 200);
        assert_non_null(h_header(&r, "X-Request-Id", id, sizeof(id)));
        assert_string_equal(id, "stream-1");
        h_resp_close(&r);
    }
    H_PASS(fx);
}

/* ---------------------------------------------------------------------------------------- */
/* Logs                                                                                       */
/* ---------------------------------------------------------------------------------------- */

/* One access-log line per request, a JSON object with every field, the token in the query
 * redacted; and every line genserv writes on stderr is a JSON object too. */
static void test_access_log_and_json_log_lines(void **state)
{
    h_fixture_t *fx = *state;
    char path[320], *text = NULL;
    json_t *entries = NULL, *e;
    h_resp_t r;
    int64_t deadline = h_now_ms() + H_WAIT_MS;

    snprintf(path, sizeof(path), "%s/access.log", tmpdir);
    get_with_id(&fx->srv, "/servers?access_token=very-secret&limit=1", "log-1", &r);
    assert_int_equal(r.status, 200);
    h_resp_close(&r);
    /* The key percent-encoded is the same key to the token check: redacted too. */
    get_with_id(&fx->srv, "/servers?%61ccess_token=also-secret", "log-4", &r);
    assert_int_equal(r.status, 200);
    h_resp_close(&r);
    get_with_id(&fx->srv, "/nowhere", "log-2", &r);
    assert_int_equal(r.status, 404);
    h_resp_close(&r);
    {
        const char *const headers[] = {"X-Request-Id: log-3", NULL};
        h_req_t req = {.method = "POST",
                       .path = "/call",
                       .body = "{\"server\":\"counter\",\"message\":\"get_count\"}",
                       .headers = headers};

        h_request_ex(&fx->srv, &req, &r);
        assert_int_equal(r.status, 200);
        h_resp_close(&r);
    }

    /* The line is written when the exchange ends, just after the client has its answer. */
    for (;;) {
        free(text);
        json_decref(entries);
        text = h_slurp(path, NULL);
        entries = text != NULL ? json_lines(text) : json_array();
        if (entry_with_id(entries, "log-3") != NULL || h_now_ms() > deadline)
            break;
        h_sleep_ms(10);
    }
    assert_non_null(text);
    assert_null(strstr(text, "very-secret"));
    assert_null(strstr(text, "also-secret"));

    e = entry_with_id(entries, "log-1");
    assert_non_null(e);
    assert_string_equal(h_str(e, "msg"), "request");
    assert_string_equal(h_str(e, "level"), "info");
    assert_non_null(h_str(e, "ts"));
    assert_string_equal(h_str(e, "method"), "GET");
    assert_string_equal(h_str(e, "path"), "/servers?access_token=REDACTED&limit=1");
    assert_int_equal(json_integer_value(json_object_get(e, "status")), 200);
    assert_true(json_integer_value(json_object_get(e, "bytes")) > 2);
    assert_true(json_is_number(json_object_get(e, "duration_ms")));
    assert_true(json_number_value(json_object_get(e, "duration_ms")) >= 0);
    assert_string_equal(h_str(e, "client"), "127.0.0.1");

    e = entry_with_id(entries, "log-4");
    assert_non_null(e);
    assert_string_equal(h_str(e, "path"), "/servers?access_token=REDACTED");

    e = entry_with_id(entries, "log-2");
    assert_non_null(e);
    assert_int_equal(json_integer_value(json_object_get(e, "status")), 404);
    assert_string_equal(h_str(e, "path"), "/nowhere");
    e = entry_with_id(entries, "log-3");
    assert_non_null(e);
    assert_string_equal(h_str(e, "method"), "POST");
    assert_int_equal(json_integer_value(json_object_get(e, "bytes")),
                     (json_int_t)strlen("{\"reply\":0}\n"));
    json_decref(entries);
    free(text);

    /* stderr: every line an object with ts, level and msg (the boot's lines at least). */
    text = h_slurp(fx->srv.err_path, NULL);
    assert_non_null(text);
    entries = json_lines(text);
    assert_true(json_array_size(entries) >= 3);
    {
        size_t i;

        json_array_foreach(entries, i, e)
        {
            assert_non_null(h_str(e, "ts"));
            assert_non_null(h_str(e, "level"));
            assert_non_null(h_str(e, "msg"));
        }
    }
    json_decref(entries);
    free(text);
    H_PASS(fx);
}

/* The text access log: one line per request on stderr with "-". */
static void test_access_log_text_on_stderr(void **state)
{
    h_fixture_t *fx = *state;
    h_resp_t r;
    char *text = NULL;
    int64_t deadline = h_now_ms() + H_WAIT_MS;

    get_with_id(&fx->srv, "/livez?access_token=hidden", "text-1", &r);
    assert_int_equal(r.status, 200);
    h_resp_close(&r);
    do {
        free(text);
        text = h_slurp(fx->srv.err_path, NULL);
        if (text != NULL && strstr(text, "text-1") != NULL)
            break;
        h_sleep_ms(10);
    } while (h_now_ms() < deadline);
    assert_non_null(text);
    assert_int_equal(count_lines_with(text, " text-1"), 1);
    assert_int_equal(count_lines_with(text, "\"GET /livez?access_token=REDACTED\" 200 12 "), 1);
    assert_null(strstr(text, "hidden"));
    free(text);
    H_PASS(fx);
}

static int setup_text_access(void **state)
{
    const char *const args[] = {"--access-log", "-", NULL};
    h_opts_t o = {.args = args};

    return h_setup_with(state, &o);
}

/* ---------------------------------------------------------------------------------------- */
/* Metrics                                                                                    */
/* ---------------------------------------------------------------------------------------- */

static char *scrape(const h_server_t *srv)
{
    h_resp_t r;
    char *text;

    h_request(srv, "GET", "/metrics", NULL, &r);
    assert_int_equal(r.status, 200);
    text = strdup(r.body);
    h_resp_close(&r);
    assert_non_null(text);
    return text;
}

/* The conventional families are there with their labels. */
static void test_metrics_have_the_conventional_families(void **state)
{
    h_fixture_t *fx = *state;
    h_resp_t r;
    char *m;

    h_request(&fx->srv, "POST", "/call", "{\"server\":\"counter\",\"message\":\"get_count\"}", &r);
    assert_int_equal(r.status, 200);
    h_resp_close(&r);
    h_request(&fx->srv, "DELETE", "/call", NULL, &r);
    assert_int_equal(r.status, 405);
    h_resp_close(&r);
    m = scrape(&fx->srv);

    assert_true(h_metric(m, "process_cpu_seconds_total") >= 0);
    assert_true(h_metric(m, "process_resident_memory_bytes") > 1e6);
    assert_true(h_metric(m, "process_virtual_memory_bytes") > 1e6);
    assert_true(h_metric(m, "process_open_fds") > 3);
    assert_true(h_metric(m, "process_max_fds") >= h_metric(m, "process_open_fds"));
    assert_true(h_metric(m, "process_start_time_seconds") > 1.6e9);
    assert_true(h_metric(m, "process_start_time_seconds") <= (double)time(NULL) + 5);
    assert_int_equal(count_lines_with(m, "genserv_build_info{version=\""), 1);
    assert_non_null(strstr(m, "\"} 1\n"));
    assert_true(h_metric(m, "genserv_http_requests_total{route=\"/call\",method=\"POST\","
                            "code=\"200\"}") >= 1);
    assert_true(h_metric(m, "genserv_http_requests_total{route=\"/call\",method=\"DELETE\","
                            "code=\"405\"}") == 1);
    assert_true(h_metric(m, "genserv_http_request_duration_seconds_bucket{route=\"/call\","
                            "le=\"+Inf\"}") >= 1);
    assert_true(h_metric(m, "genserv_http_request_duration_seconds_count{route=\"/call\"}") >= 1);
    assert_true(h_metric(m, "genserv_http_request_duration_seconds_sum{route=\"/call\"}") >= 0);
    assert_true(h_metric(m, "genserv_held_calls") >= 0);
    assert_true(h_metric(m, "genserv_held_call_oldest_age_seconds") >= 0);
    assert_true(h_metric(m, "genserv_behaviour_servers{behaviour=\"counter\"}") == 1);
    assert_true(h_metric(m, "genserv_behaviour_servers{behaviour=\"slow\"}") == 1);
    assert_true(h_metric(m, "genserv_metrics_servers_omitted") == 0);
    assert_true(h_metric(m, "genserv_server_up{server=\"counter\",behaviour=\"counter\"}") == 1);
    free(m);
    H_PASS(fx);
}

static int setup_few_series(void **state)
{
    const char *const args[] = {"--metrics-max-servers", "2", NULL};
    h_opts_t o = {.args = args};

    return h_setup_with(state, &o);
}

/* Starting servers adds no per-server series past --metrics-max-servers; the per-behaviour
 * count still sees every server. */
static void test_per_server_series_are_bounded(void **state)
{
    h_fixture_t *fx = *state;
    json_t *list;
    h_resp_t r;
    char name[32], *m;
    size_t total;

    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof(name), "extra-%02d", i);
        assert_int_equal(h_start_server(&fx->srv, name, "counter", NULL, NULL), 201);
    }
    h_request(&fx->srv, "GET", "/servers", NULL, &r);
    assert_int_equal(r.status, 200);
    list = json_object_get(r.json, "servers");
    total = json_array_size(list);
    assert_true(total >= 22);
    h_resp_close(&r);

    m = scrape(&fx->srv);
    assert_int_equal(count_lines_with(m, "genserv_server_up{"), 2);
    assert_int_equal(count_lines_with(m, "genserv_server_mailbox_length{"), 2);
    assert_true(h_metric(m, "genserv_metrics_servers_omitted") == (double)(total - 2));
    assert_true(h_metric(m, "genserv_behaviour_servers{behaviour=\"counter\"}") == 21);
    free(m);
    H_PASS(fx);
}

/* promtool, from Debian's prometheus package: in PATH, or NULL. */
static const char *find_promtool(char *buf, size_t len)
{
    const char *path = getenv("PATH");
    char dirs[4096], *save = NULL, *d;

    snprintf(dirs, sizeof(dirs), "%s", path != NULL ? path : "/usr/bin:/bin");
    for (d = strtok_r(dirs, ":", &save); d != NULL; d = strtok_r(NULL, ":", &save)) {
        snprintf(buf, len, "%s/promtool", d);
        if (access(buf, X_OK) == 0)
            return buf;
    }
    return NULL;
}

/* A real scrape, after traffic on several routes, passes `promtool check metrics` (lint
 * included: names, units, _total, HELP and TYPE). In CI promtool must exist. */
static void test_promtool_accepts_the_scrape(void **state)
{
    h_fixture_t *fx = *state;
    char tool[512], dir[256], file[320], cmd[1200], out[8192];
    const char *ci = getenv("CI");
    h_resp_t r;
    FILE *f, *p;
    char *m;
    size_t n;
    int rc;

    if (find_promtool(tool, sizeof(tool)) == NULL) {
        if (ci != NULL && ci[0] != '\0')
            fail_msg("promtool is missing and CI is set: scripts/deps.sh installs prometheus");
        print_message("promtool not found (Debian's prometheus package): the check is skipped\n");
        H_PASS(fx);
        skip();
    }
    h_request(&fx->srv, "POST", "/call", "{\"server\":\"counter\",\"message\":\"increment\"}", &r);
    h_resp_close(&r);
    h_request(&fx->srv, "GET", "/nope", NULL, &r);
    h_resp_close(&r);
    h_request(&fx->srv, "POST", "/servers",
              "{\"name\":\"a \\\"quoted\\\\ name\",\"behaviour\":"
              "\"counter\"}",
              &r);
    assert_int_equal(r.status, 201);
    h_resp_close(&r);
    m = scrape(&fx->srv);
    assert_non_null(strstr(m, "server=\"a \\\"quoted\\\\ name\""));

    if (h_tempdir(dir, sizeof(dir), "ops-prom") < 0)
        fail_msg("no temp dir");
    snprintf(file, sizeof(file), "%s/metrics.txt", dir);
    f = fopen(file, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(m, 1, strlen(m), f), strlen(m));
    fclose(f);
    free(m);
    snprintf(cmd, sizeof(cmd), "'%s' check metrics < '%s' 2>&1", tool, file);
    p = popen(cmd, "r");
    assert_non_null(p);
    n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    rc = pclose(p);
    h_rmtree(dir);
    if (rc != 0)
        fail_msg("promtool check metrics failed (%d):\n%s", rc, out);
    H_PASS(fx);
}

/* A port no one listens on now (bound, then closed): for a genserv whose address the test must
 * know before it prints "listening on". */
static unsigned free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static long probe(const h_server_t *at, const char *method, const char *path, const char *body,
                  h_resp_t *r)
{
    h_request(at, method, path, body, r);
    return r->status;
}

static bool livez_ok(const h_server_t *at)
{
    h_resp_t r;
    bool ok = probe(at, "GET", "/livez", NULL, &r) == 200;

    h_resp_close(&r);
    return ok;
}

/* What a client saw of a genserv still booting (the probing thread's findings: the main thread
 * must start genserv, whose death signal follows the thread that spawned it). */
typedef struct booting_s {
    h_server_t at; /* only its url */
    char gate[300];
    bool up; /* /livez answered 200 in time */
    long readyz, call, servers, healthz, page;
    char readyz_error[32], call_error[32];
    bool behaviours_ok, servers_pending, retry_after;
} booting_t;

static void copy_error(const h_resp_t *r, char *out, size_t len)
{
    const char *e = json_string_value(json_object_get(r->json, "error"));

    snprintf(out, len, "%s", e != NULL ? e : "");
}

static void *probe_booting(void *arg)
{
    booting_t *b = arg;
    h_resp_t r;
    char buf[16];
    FILE *f;

    for (int i = 0; i < H_START_MS / 10 && !(b->up = livez_ok(&b->at)); i++) {
        struct timespec tick = {0, 10 * 1000 * 1000};
        nanosleep(&tick, NULL); /* polling for the port to open, bounded */
    }
    if (b->up) {
        b->readyz = probe(&b->at, "GET", "/readyz", NULL, &r);
        copy_error(&r, b->readyz_error, sizeof(b->readyz_error));
        json_t *checks = json_object_get(r.json, "checks");
        b->behaviours_ok = json_is_true(json_object_get(checks, "behaviours"));
        b->servers_pending = json_is_false(json_object_get(checks, "servers"));
        h_resp_close(&r);
        b->call = probe(&b->at, "POST", "/call",
                        "{\"server\": \"counter\", \"message\": \"get_count\"}", &r);
        copy_error(&r, b->call_error, sizeof(b->call_error));
        b->retry_after = h_header(&r, "Retry-After", buf, sizeof(buf)) != NULL;
        h_resp_close(&r);
        b->servers = probe(&b->at, "GET", "/servers", NULL, &r);
        h_resp_close(&r);
        b->healthz = probe(&b->at, "GET", "/healthz", NULL, &r);
        h_resp_close(&r);
        b->page = probe(&b->at, "GET", "/", NULL, &r); /* the dashboard's page */
        h_resp_close(&r);
    }
    if ((f = fopen(b->gate, "w")) != NULL) /* let the boot go on, whatever was seen */
        fclose(f);
    return NULL;
}

static int setup_tmpdir(void **state)
{
    (void)state;
    return h_tempdir(tmpdir, sizeof(tmpdir), "ops") < 0 ? -1 : 0;
}

static int teardown_tmpdir(void **state)
{
    (void)state;
    h_rmtree(tmpdir);
    return 0;
}

/* While the boot servers start (one whose init waits for a file here), the port is open:
 * /livez 200, /readyz 503 saying which check is left, every route that reaches the runtime
 * 503 not_ready with Retry-After; once the init returns, ready and "listening on". */
static void test_probes_answer_while_genserv_boots(void **state)
{
    char listen[64], config[600];
    unsigned port = free_port();
    booting_t b = {0};
    h_server_t srv;
    h_opts_t opts = {0};
    pthread_t t;
    h_resp_t r;

    (void)state;
    snprintf(b.gate, sizeof(b.gate), "%s/open", tmpdir);
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", port);
    snprintf(config, sizeof(config),
             "{\"servers\": [{\"name\": \"counter\", \"behaviour\": \"counter\"},"
             " {\"name\": \"gate\", \"behaviour\": \"it_gate\", \"args\": {\"until\": \"%s\"}}]}",
             b.gate);
    const char *args[] = {"--listen", listen, "--plugin", GS_LEDGER_PLUGIN, NULL};
    opts.args = args;
    opts.config_json = config;
    snprintf(b.at.url, sizeof(b.at.url), "http://%s", listen);
    assert_int_equal(pthread_create(&t, NULL, probe_booting, &b), 0);
    int rc = h_start(&srv, &opts); /* returns once ready: after the gate opened */
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(rc, 0);

    assert_true(b.up);
    assert_int_equal(b.readyz, 503);
    assert_string_equal(b.readyz_error, "not_ready");
    assert_true(b.behaviours_ok);
    assert_true(b.servers_pending);
    assert_int_equal(b.call, 503);
    assert_string_equal(b.call_error, "not_ready");
    assert_true(b.retry_after);
    assert_int_equal(b.servers, 503);
    assert_int_equal(b.healthz, 200);
    assert_int_equal(b.page, 200);

    /* Ready now, and everything serves. */
    assert_int_equal(readyz_status(&srv), 200);
    assert_int_equal(h_call_int(&srv, "counter", "\"get_count\""), 0);
    assert_int_equal(probe(&srv, "POST", "/call", "{\"server\": \"gate\", \"message\": \"x\"}", &r),
                     200);
    h_resp_close(&r);
    assert_int_equal(h_stop(&srv, H_STOP_MS), 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_livez_and_readyz_answer_without_a_token, setup_token,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_readyz_is_503_while_draining_and_the_rest_is_served,
                                        setup_drain, h_teardown),
        cmocka_unit_test_setup_teardown(test_every_answer_carries_a_request_id, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_access_log_and_json_log_lines, setup_logs,
                                        teardown_logs),
        cmocka_unit_test_setup_teardown(test_access_log_text_on_stderr, setup_text_access,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_metrics_have_the_conventional_families, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_per_server_series_are_bounded, setup_few_series,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_promtool_accepts_the_scrape, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_probes_answer_while_genserv_boots, setup_tmpdir,
                                        teardown_tmpdir),
    };

    (void)argc;
    (void)argv;
    h_init(150);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
