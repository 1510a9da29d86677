/*
 * test_lifecycle.c: the binary's life around its HTTP contract.
 *
 * Shutdown: SIGTERM (or SIGINT) with calls held open answers every one of them with 503
 * shutting_down and exits 0 within a bound, also with an event stream open. Disconnects: a
 * client that gives up while its call is held must not break or leak anything (libmicrohttpd
 * does not notice the disconnect of a suspended connection, so the server only finds out when
 * it answers); afterwards the held-call gauges are back to 0 and the server keeps serving.
 * Configuration: the config file's servers and limits, GENSERV_* environment variables, flag
 * precedence, --help, and refusing bad flags, a bad config and a missing plugin.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "harness.h"

#define N_HELD 5

static void test_sigterm_answers_held_calls_503_and_exits_0(void **state)
{
    h_fixture_t *fx = *state;
    h_req_t sleep_req = {.method = "POST",
                         .path = "/call",
                         .body = "{\"server\": \"slow\", \"message\": [\"sleep\", 120000], "
                                 "\"timeout_ms\": 200000}"};
    h_async_t *calls[N_HELD + 1];
    int64_t t0;
    int i;

    assert_int_equal(h_start_server(&fx->srv, "hold", "batcher", "{\"interval_ms\": 600000}", NULL),
                     201);
    for (i = 0; i < N_HELD; i++)
        assert_non_null(calls[i] = h_push_async(&fx->srv, "hold", i, 0));
    assert_non_null(calls[N_HELD] = h_async_start(&fx->srv, &sleep_req));
    H_WAIT_UNTIL(h_metrics_value(&fx->srv, "genserv_http_open_calls") == N_HELD + 1, H_WAIT_MS);

    t0 = h_now_ms();
    assert_int_equal(h_stop(&fx->srv, H_STOP_MS), 0);
    /* The bound: shutdown_timeout_ms (5 s by default) plus a margin. */
    assert_true(h_now_ms() - t0 < 12000);
    for (i = 0; i <= N_HELD; i++) {
        h_resp_t *r = h_async_wait(calls[i]);

        h_assert_error(r, 503, "shutting_down");
        assert_string_equal(r->retry_after, "1");
        h_async_destroy(calls[i]);
    }
    H_PASS(fx);
}

static void test_sigint_shuts_down_like_sigterm(void **state)
{
    h_fixture_t *fx = *state;
    h_async_t *held;

    assert_int_equal(h_start_server(&fx->srv, "hold", "batcher", "{\"interval_ms\": 600000}", NULL),
                     201);
    assert_non_null(held = h_push_async(&fx->srv, "hold", 1, 0));
    H_WAIT_UNTIL(h_server_int(&fx->srv, "hold", "held_calls", false) == 1, H_WAIT_MS);
    kill(fx->srv.pid, SIGINT);
    H_WAIT_UNTIL(!h_alive(&fx->srv), 12000);
    assert_int_equal(h_stop(&fx->srv, H_STOP_MS), 0);
    h_assert_error(h_async_wait(held), 503, "shutting_down");
    h_async_destroy(held);
    H_PASS(fx);
}

static void test_sigterm_with_an_event_stream_open_exits_0(void **state)
{
    h_fixture_t *fx = *state;
    h_events_t *ev = h_events_open(&fx->srv);
    json_t *snap;
    int64_t t0;

    assert_non_null(ev);
    snap = h_events_wait(ev, "snapshot", NULL, H_WAIT_MS);
    assert_non_null(snap);
    json_decref(snap);
    t0 = h_now_ms();
    assert_int_equal(h_stop(&fx->srv, H_STOP_MS), 0);
    assert_true(h_now_ms() - t0 < 12000);
    h_events_close(ev);
    H_PASS(fx);
}

static void test_clients_that_disconnect_while_held_break_nothing(void **state)
{
    h_fixture_t *fx = *state;
    h_req_t sleeper = {.method = "POST",
                       .path = "/call",
                       .body = "{\"server\": \"slow\", \"message\": [\"sleep\", 60000], "
                               "\"timeout_ms\": 1000}",
                       .timeout_ms = 300};
    enum { N_GONE = 30 };
    h_async_t *gone[N_GONE], *a;
    h_resp_t r;
    int i;

    assert_int_equal(h_start_server(&fx->srv, "dis", "batcher", "{\"interval_ms\": 600000}", NULL),
                     201);
    /* Callers that give up after 300 ms and close their connections while held. */
    for (i = 0; i < N_GONE; i++)
        assert_non_null(gone[i] = h_push_async(&fx->srv, "dis", 1, 300));
    for (i = 0; i < N_GONE; i++) {
        h_resp_t *gr = h_async_wait(gone[i]);

        assert_int_equal(gr->curl_rc, CURLE_OPERATION_TIMEDOUT);
        assert_int_equal(gr->status, 0);
        h_async_destroy(gone[i]);
    }
    /* The server did not notice and does not mind. */
    h_request(&fx->srv, "GET", "/healthz", NULL, &r);
    assert_int_equal(r.status, 200);
    h_resp_close(&r);
    h_call(&fx->srv, "counter", "\"get_count\"", -1, &r);
    h_assert_reply(&r, "0");
    h_resp_close(&r);

    /* The flush answers them into closed sockets; everything held is released. */
    assert_int_equal(h_deliver(&fx->srv, "/send", "dis", "\"flush\""), 202);
    H_WAIT_UNTIL(h_server_int(&fx->srv, "dis", "held_calls", false) == 0, H_WAIT_MS);
    H_WAIT_UNTIL(h_metrics_value(&fx->srv, "genserv_http_open_calls") == 0, H_WAIT_MS);
    H_WAIT_UNTIL(h_metrics_value(&fx->srv, "genserv_held_calls") == 0, H_WAIT_MS);
    assert_int_equal(h_server_int(&fx->srv, "dis", "last_batch_size", true), N_GONE);

    /* And the batcher serves the next caller normally. */
    assert_non_null(a = h_push_async(&fx->srv, "dis", 2, 0));
    H_WAIT_UNTIL(h_server_int(&fx->srv, "dis", "held_calls", false) == 1, H_WAIT_MS);
    assert_int_equal(h_deliver(&fx->srv, "/send", "dis", "\"flush\""), 202);
    h_assert_reply(h_async_wait(a), "\"ok\"");
    h_async_destroy(a);

    /* A caller that leaves before the gateway's own timeout: the timeout still completes the
     * call, and nothing stays held. */
    assert_non_null(a = h_async_start(&fx->srv, &sleeper));
    assert_int_equal(h_async_wait(a)->curl_rc, CURLE_OPERATION_TIMEDOUT);
    h_async_destroy(a);
    H_WAIT_UNTIL(h_metrics_value(&fx->srv, "genserv_http_open_calls") == 0, H_WAIT_MS);
    h_call(&fx->srv, "slow", "[\"sleep\", 10]", -1, &r);
    h_assert_reply(&r, "\"response!\"");
    h_resp_close(&r);
    H_PASS(fx);
}

static void test_the_config_file_sets_servers_and_limits(void **state)
{
    h_fixture_t *fx = *state;
    h_opts_t opts = {
        .config_json =
            "{\"log_level\": \"debug\", \"limits\": {\"max_body_bytes\": 2048},"
            " \"servers\": ["
            "  {\"name\": \"c9\", \"behaviour\": \"counter\", \"args\": {\"initial\": 7},"
            "   \"restart\": \"transient\"},"
            "  {\"name\": \"rx\", \"behaviour\": \"receiver\"}]}"};
    char big[3000];
    json_t *list;
    h_resp_t r;

    h_fixture_restart(fx, &opts);
    h_request(&fx->srv, "GET", "/servers", NULL, &r);
    assert_int_equal(r.status, 200);
    list = json_object_get(r.json, "servers");
    assert_int_equal(json_array_size(list), 2); /* the config's servers replace the demo set */
    h_resp_close(&r);
    h_request(&fx->srv, "GET", "/servers/c9", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(h_str(r.json, "restart"), "transient");
    h_resp_close(&r);
    h_call(&fx->srv, "c9", "\"get_count\"", -1, &r);
    h_assert_reply(&r, "7");
    h_resp_close(&r);

    memset(big, ' ', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    big[0] = '{';
    big[sizeof(big) - 2] = '}';
    h_request(&fx->srv, "POST", "/cast", big, &r);
    h_assert_error(&r, 413, "too_large");
    h_resp_close(&r);
    H_PASS(fx);
}

static void test_environment_variables_and_flag_precedence(void **state)
{
    h_fixture_t *fx = *state;
    const char *env[] = {"GENSERV_MAX_BODY_BYTES=1024", "GENSERV_MAX_CALL_TIMEOUT_MS=1000",
                         "GENSERV_DEFAULT_CALL_TIMEOUT_MS=500", "GENSERV_SCHEDULERS=1", NULL};
    const char *flags[] = {"--max-body-bytes", "4096", NULL};
    h_opts_t by_env = {.env = env}, by_flag = {.env = env, .args = flags};
    char body[1500];
    h_resp_t r;

    memset(body, ' ', sizeof(body) - 1);
    body[sizeof(body) - 1] = '\0';
    memcpy(body, "{\"server\": \"counter\", \"message\": \"x\"}",
           strlen("{\"server\": \"counter\", \"message\": \"x\"}"));

    h_fixture_restart(fx, &by_env);
    h_request(&fx->srv, "POST", "/cast", body, &r);
    h_assert_error(&r, 413, "too_large");
    h_resp_close(&r);
    h_call(&fx->srv, "counter", "\"get_count\"", 2000, &r);
    h_assert_error(&r, 400, "bad_request");
    h_resp_close(&r);
    h_call(&fx->srv, "counter", "\"get_count\"", 1000, &r);
    h_assert_reply(&r, "0");
    h_resp_close(&r);

    /* A flag beats the environment. */
    h_fixture_restart(fx, &by_flag);
    h_request(&fx->srv, "POST", "/cast", body, &r);
    assert_int_equal(r.status, 202);
    h_resp_close(&r);
    H_PASS(fx);
}

static void test_a_bad_config_file_refuses_to_start(void **state)
{
    h_fixture_t *fx = *state;
    static const char *const configs[] = {
        "{\"bogus_key\": 1}",                                             /* unknown key */
        "{\"limits\": {\"max_body_bytes\": \"big\"}}",                    /* wrong type */
        "{\"servers\": [{\"name\": \"x\", \"behaviour\": \"no_such\"}]}", /* cannot start */
        "{\"servers\": [{\"name\": \"t\", \"behaviour\": \"ticker\", \"args\": {\"nope\": 1}}]}",
        "{not json",
    };
    static char out[65536];
    char path[64];

    for (size_t i = 0; i < sizeof(configs) / sizeof(configs[0]); i++) {
        const char *args[] = {"--listen", "127.0.0.1:0", "--config", path, NULL};
        FILE *f;
        int code;

        snprintf(path, sizeof(path), "/tmp/genserv-it-badcfg-%d.json", (int)getpid());
        f = fopen(path, "w");
        assert_non_null(f);
        fputs(configs[i], f);
        fclose(f);
        code = h_run(args, out, sizeof(out), H_WAIT_MS);
        unlink(path);
        if (code <= 0)
            fail_msg("config %s: genserv exited %d, expected an error exit:\n%s", configs[i], code,
                     out);
        assert_null(strstr(out, "listening on http://"));
    }
    H_PASS(fx);
}

static void test_it_listens_on_ipv6_loopback(void **state)
{
    const char *args[] = {"--listen", "[::1]:0", NULL};
    h_opts_t opts = {.args = args};
    h_fixture_t *fx = *state;
    FILE *f = fopen("/proc/net/if_inet6", "r");
    char line[256];
    bool has_lo6 = false;
    h_resp_t r;

    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "00000000000000000000000000000001", 32) == 0)
            has_lo6 = true;
    if (f != NULL)
        fclose(f);
    if (!has_lo6) {
        H_PASS(fx);
        skip();
    }
    h_fixture_restart(fx, &opts);
    assert_non_null(strstr(fx->srv.url, "http://[::1]:"));
    h_call(&fx->srv, "counter", "\"get_count\"", -1, &r);
    h_assert_reply(&r, "0");
    h_resp_close(&r);
    H_PASS(fx);
}

static void test_help_documents_every_flag(void **state)
{
    h_fixture_t *fx = *state;
    static const char *const words[] = {"--listen",        "--config",    "--schedulers",
                                        "--plugin",        "--log-level", "GENSERV_LISTEN",
                                        "--max-body-bytes"};
    const char *args[] = {"--help", NULL};
    static char out[65536];

    assert_int_equal(h_run(args, out, sizeof(out), H_WAIT_MS), 0);
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strstr(out, words[i]) == NULL)
            fail_msg("--help does not mention %s:\n%s", words[i], out);
    H_PASS(fx);
}

static void test_bad_flags_config_or_plugin_refuse_to_start(void **state)
{
    h_fixture_t *fx = *state;
    static const char *const unknown[] = {"--listen", "127.0.0.1:0", "--no-such-flag", NULL};
    static const char *const bad_value[] = {"--listen", "127.0.0.1:0", "--schedulers", "lots",
                                            NULL};
    static const char *const no_config[] = {"--listen", "127.0.0.1:0", "--config",
                                            "/nonexistent/genserv.json", NULL};
    static const char *const no_plugin[] = {"--listen", "127.0.0.1:0", "--plugin",
                                            "/nonexistent/plugin.so", NULL};
    static const char *const *const cases[] = {unknown, bad_value, no_config, no_plugin};
    static char out[65536];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int code = h_run(cases[i], out, sizeof(out), H_WAIT_MS);

        if (code <= 0)
            fail_msg("genserv %s %s exited %d, expected an error exit:\n%s", cases[i][2],
                     cases[i][3] ? cases[i][3] : "", code, out);
        /* It says why, and never claims to listen. */
        assert_null(strstr(out, "listening on http://"));
        assert_true(strlen(out) > 0);
    }
    H_PASS(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sigterm_answers_held_calls_503_and_exits_0, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_sigint_shuts_down_like_sigterm, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_with_an_event_stream_open_exits_0, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_clients_that_disconnect_while_held_break_nothing,
                                        h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_the_config_file_sets_servers_and_limits, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_environment_variables_and_flag_precedence, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_a_bad_config_file_refuses_to_start, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_it_listens_on_ipv6_loopback, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_help_documents_every_flag, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_bad_flags_config_or_plugin_refuse_to_start, h_setup,
                                        h_teardown),
    };

    h_init(170);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
