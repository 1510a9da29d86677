/*
 * test_connections.c: what arrives on the socket, not just what the JSON says.
 *
 * Raw TCP clients send what libcurl would not: garbage instead of HTTP, pipelined requests
 * (also behind a held call), a chunked body past the limit, a body cut off by a disconnect,
 * and silence (the idle timeout closes an idle connection, but never a held call or an event
 * stream). Crowds of clients that give up while held, and a SIGTERM with hundreds of held
 * calls, check that the bookkeeping of suspended connections balances. Under ASan, the
 * teardown's "exit 0" also means that nothing leaked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "harness.h"

static void serving(const h_server_t *srv)
{
    h_resp_t r;

    h_request(srv, "GET", "/healthz", NULL, &r);
    assert_int_equal(r.status, 200);
    h_resp_close(&r);
    h_call(srv, "counter", "\"get_count\"", -1, &r);
    assert_int_equal(r.status, 200);
    h_resp_close(&r);
}

static void test_garbage_instead_of_http_is_refused_and_survived(void **state)
{
    h_fixture_t *fx = *state;
    static const char *const garbage[] = {
        "GARBAGE\r\n\r\n",
        "\x16\x03\x01\x02\x01\x01\x01\x01\xfc\x03\x03\r\n\r\n", /* TLS, then line ends */
        "POST /call HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        "POST /call HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n",
        "GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n",
    };
    char buf[4096];
    bool closed;

    for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
        int fd = h_raw_connect(&fx->srv);

        assert_true(fd >= 0);
        assert_int_equal(h_raw_send(fd, garbage[i], strlen(garbage[i])), 0);
        /* Either an HTTP error status or a closed connection; never a success, never a hang. */
        h_raw_read(fd, buf, sizeof(buf), "\r\n\r\n", 1, H_WAIT_MS, &closed);
        if (!closed && strncmp(buf, "HTTP/1.", 7) != 0)
            fail_msg("garbage %zu: neither closed nor answered: %.200s", i, buf);
        if (strncmp(buf, "HTTP/1.", 7) == 0 && (buf[9] == '2' || buf[9] == '3'))
            fail_msg("garbage %zu was answered with success: %.200s", i, buf);
        close(fd);
    }
    serving(&fx->srv);
    H_PASS(fx);
}

static void test_an_enormous_header_is_refused_and_survived(void **state)
{
    h_fixture_t *fx = *state;
    const size_t n = 256 * 1024;
    char *req = malloc(n + 128), buf[4096];
    bool closed;
    int fd;

    assert_non_null(req);
    strcpy(req, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(req + strlen(req), 'a', n);
    strcpy(req + strlen("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ") + n, "\r\n\r\n");
    fd = h_raw_connect(&fx->srv);
    assert_true(fd >= 0);
    h_raw_send(fd, req, strlen(req)); /* the server may close before it has read it all */
    h_raw_read(fd, buf, sizeof(buf), "\r\n\r\n", 1, H_WAIT_MS, &closed);
    if (strncmp(buf, "HTTP/1.", 7) == 0)
        assert_true(buf[9] == '4');
    else
        assert_true(closed);
    close(fd);
    free(req);
    serving(&fx->srv);
    H_PASS(fx);
}

/* "POST path" with body as one HTTP/1.1 request, appended to out. */
static void append_post(char *out, size_t cap, const char *path, const char *body)
{
    size_t len = strlen(out);

    snprintf(out + len, cap - len, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s",
             path, strlen(body), body);
}

static void test_pipelined_requests_are_answered_in_order(void **state)
{
    h_fixture_t *fx = *state;
    char reqs[1024] = "", buf[8192];
    const char *second, *third;
    bool closed;
    int fd;

    append_post(reqs, sizeof(reqs), "/cast", "{\"server\":\"counter\",\"message\":\"increment\"}");
    append_post(reqs, sizeof(reqs), "/call", "{\"server\":\"counter\",\"message\":\"get_count\"}");
    append_post(reqs, sizeof(reqs), "/call", "{\"server\":\"counter\",\"message\":\"get_count\"}");
    fd = h_raw_connect(&fx->srv);
    assert_true(fd >= 0);
    assert_int_equal(h_raw_send(fd, reqs, strlen(reqs)), 0);
    h_raw_read(fd, buf, sizeof(buf), "{\"reply\":1}", 2, H_WAIT_MS, &closed);
    /* Three answers, in the order asked: 202, then 200 twice with the count 1. */
    assert_int_equal(strncmp(buf, "HTTP/1.1 202", 12), 0);
    second = strstr(buf + 1, "HTTP/1.1 ");
    assert_non_null(second);
    assert_int_equal(strncmp(second, "HTTP/1.1 200", 12), 0);
    assert_non_null(strstr(second, "{\"reply\":1}"));
    third = strstr(second + 1, "HTTP/1.1 ");
    assert_non_null(third);
    assert_int_equal(strncmp(third, "HTTP/1.1 200", 12), 0);
    assert_non_null(strstr(third, "{\"reply\":1}"));
    close(fd);
    H_PASS(fx);
}

static void test_a_request_pipelined_behind_a_held_call_waits_its_turn(void **state)
{
    h_fixture_t *fx = *state;
    char reqs[1024] = "", buf[8192];
    const char *second;
    bool closed;
    int fd;

    assert_int_equal(h_start_server(&fx->srv, "pipe", "batcher", "{\"interval_ms\": 600000}", NULL),
                     201);
    append_post(reqs, sizeof(reqs), "/call", "{\"server\":\"pipe\",\"message\":[\"push\",42]}");
    strcat(reqs, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    fd = h_raw_connect(&fx->srv);
    assert_true(fd >= 0);
    assert_int_equal(h_raw_send(fd, reqs, strlen(reqs)), 0);
    H_WAIT_UNTIL(h_server_int(&fx->srv, "pipe", "held_calls", false) == 1, H_WAIT_MS);
    /* Nothing may come back yet: the first answer is held, the second must follow it. */
    h_raw_read(fd, buf, sizeof(buf), "HTTP/1.1 ", 1, 300, &closed);
    assert_false(closed);
    assert_int_equal(strlen(buf), 0);

    assert_int_equal(h_deliver(&fx->srv, "/send", "pipe", "\"flush\""), 202);
    /* Both answers, in order: the push's "ok", then the health check's. */
    h_raw_read(fd, buf, sizeof(buf), "{\"ok\":true}", 1, H_WAIT_MS, &closed);
    assert_int_equal(strncmp(buf, "HTTP/1.1 200", 12), 0);
    assert_non_null(strstr(buf, "{\"reply\":\"ok\"}"));
    second = strstr(buf + 1, "HTTP/1.1 ");
    if (second == NULL)
        fail_msg("no answer to the pipelined request after the held one: %s", buf);
    assert_int_equal(strncmp(second, "HTTP/1.1 200", 12), 0);
    assert_non_null(strstr(second, "{\"ok\":true}"));
    assert_null(strstr(second, "{\"reply\":\"ok\"}"));
    close(fd);
    H_PASS(fx);
}

static void test_a_chunked_body_past_the_limit_is_413(void **state)
{
    const char *args[] = {"--max-body-bytes", "4096", NULL};
    h_opts_t opts = {.args = args};
    h_fixture_t *fx = *state;
    static const char head[] = "POST /cast HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                               "Content-Type: application/json\r\n\r\n";
    char chunk[1100], buf[4096];
    bool closed;
    int fd;

    h_fixture_restart(fx, &opts);
    fd = h_raw_connect(&fx->srv);
    assert_true(fd >= 0);
    assert_int_equal(h_raw_send(fd, head, strlen(head)), 0);
    /* Eight chunks of 1000 bytes: twice the limit, without a Content-Length to warn. */
    memset(chunk, ' ', sizeof(chunk));
    memcpy(chunk, "3e8\r\n", 5);
    memcpy(chunk + 5 + 1000, "\r\n", 2);
    for (int i = 0; i < 8; i++)
        if (h_raw_send(fd, chunk, 5 + 1000 + 2) < 0)
            break; /* the server may answer and close early */
    h_raw_send(fd, "0\r\n\r\n", 5);
    h_raw_read(fd, buf, sizeof(buf), "too_large", 1, H_WAIT_MS, &closed);
    if (strncmp(buf, "HTTP/1.1 413", 12) != 0)
        fail_msg("a chunked body past the limit got: %.300s", buf);
    assert_non_null(strstr(buf, "\"error\":\"too_large\""));
    close(fd);
    serving(&fx->srv);
    H_PASS(fx);
}

static void leave_mid_body(const h_server_t *srv, int n, int pause_ms)
{
    static const char head[] = "POST /call HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
                               "{\"server\": \"counter\", \"message\": ";

    for (int i = 0; i < n; i++) {
        int fd = h_raw_connect(srv);

        assert_true(fd >= 0);
        assert_int_equal(h_raw_send(fd, head, strlen(head)), 0);
        /* A bare sleep on purpose: what is under test is the close arriving apart from the
         * data, a moment later, rather than in the same read; no fact tells when the server
         * has read the partial body. */
        if (pause_ms > 0)
            h_sleep_ms(pause_ms);
        close(fd);
    }
}

static void test_clients_that_leave_mid_body_leak_nothing(void **state)
{
    const char *args[] = {"--idle-timeout-s", "2", NULL};
    h_opts_t opts = {.args = args};
    h_fixture_t *fx = *state;

    /* Whether the close comes a moment after the partial body or together with it, the
     * connection is freed: at once when the server sees the EOF, at the latest by the idle
     * timeout (data and FIN in one go may only be noticed by the latter: libmicrohttpd's
     * edge-triggered epoll, see .gateway-bugs.txt). Nothing stays behind after that. */
    h_fixture_restart(fx, &opts);
    leave_mid_body(&fx->srv, 20, 20);
    leave_mid_body(&fx->srv, 50, 0);
    serving(&fx->srv);
    H_WAIT_UNTIL(h_metrics_value(&fx->srv, "genserv_http_connections") <= 1, 15000);
    H_PASS(fx);
}

static void test_idle_connections_close_but_held_calls_and_streams_do_not(void **state)
{
    const char *args[] = {"--idle-timeout-s", "1", NULL};
    h_opts_t opts = {.args = args};
    h_fixture_t *fx = *state;
    h_req_t push = {.method = "POST",
                    .path = "/call",
                    .body = "{\"server\": \"idle\", \"message\": [\"push\", 1], "
                            "\"timeout_ms\": 60000}"};
    h_events_t *ev;
    h_async_t *held;
    char buf[256];
    bool closed;
    json_t *e;
    int fd;

    h_fixture_restart(fx, &opts);
    assert_int_equal(h_start_server(&fx->srv, "idle", "batcher", "{\"interval_ms\": 600000}", NULL),
                     201);
    ev = h_events_open(&fx->srv);
    assert_non_null(ev);
    held = h_async_start(&fx->srv, &push);
    assert_non_null(held);
    H_WAIT_UNTIL(h_server_int(&fx->srv, "idle", "held_calls", false) == 1, H_WAIT_MS);
    /* The push's state_changed is the stream's last write until something else happens. */
    e = h_events_wait(ev, "state_changed", "idle", H_WAIT_MS);
    assert_non_null(e);
    json_decref(e);

    /* A silent connection is closed after about a second (a generous bound: 15 s). */
    fd = h_raw_connect(&fx->srv);
    assert_true(fd >= 0);
    h_raw_read(fd, buf, sizeof(buf), NULL, 0, 15000, &closed);
    assert_true(closed);
    close(fd);

    /* The held call and the event stream were opened before that connection and have been
     * silent since, so they have been idle for longer than the timeout that closed it: the
     * idle timeout had its chance at them. They are still there, and the call is answered
     * below over its own connection. */
    assert_false(h_async_done(held));
    assert_int_equal(h_server_int(&fx->srv, "idle", "held_calls", false), 1);
    assert_int_equal(h_start_server(&fx->srv, "late", "counter", NULL, NULL), 201);
    e = h_events_wait(ev, "started", "late", H_WAIT_MS);
    assert_non_null(e);
    json_decref(e);

    assert_int_equal(h_deliver(&fx->srv, "/send", "idle", "\"flush\""), 202);
    h_assert_reply(h_async_wait(held), "\"ok\"");
    h_async_destroy(held);
    h_events_close(ev);
    H_PASS(fx);
}

/* Send data one byte every 300 ms until the server closes the connection or deadline_ms
 * passes; returns how long it took (ms), or -1 if the connection stayed open. */
static int64_t trickle(int fd, const char *data, int deadline_ms)
{
    int64_t t0 = h_now_ms();
    size_t len = strlen(data);

    for (size_t i = 0; h_now_ms() - t0 < deadline_ms; i = (i + 1) % len) {
        char buf[64];
        bool closed = false;

        if (send(fd, data + i, 1, MSG_NOSIGNAL) != 1)
            return h_now_ms() - t0; /* reset by the server */
        h_raw_read(fd, buf, sizeof(buf), NULL, 0, 300, &closed);
        if (closed)
            return h_now_ms() - t0;
    }
    return -1;
}

/* Slowloris: a client that sends its headers, or its body, one byte at a time never looks
 * idle, so the idle timeout cannot stop it; the request deadline does (2 s here), in each
 * phase, and other clients are served meanwhile. */
static void test_clients_that_send_a_byte_at_a_time_are_cut_off(void **state)
{
    const char *args[] = {"--request-timeout-s", "2", "--idle-timeout-s", "3", NULL};
    h_opts_t opts = {.args = args};
    h_fixture_t *fx = *state;
    int64_t took;
    int fd;

    h_fixture_restart(fx, &opts);
    /* Headers trickling after the request line. */
    fd = h_raw_connect(&fx->srv);
    assert_true(fd >= 0);
    assert_int_equal(h_raw_send(fd, "GET /healthz HTTP/1.1\r\n", 24), 0);
    took = trickle(fd, "X-Slow: aaaaaaaaaaaaaaaa\r\n", 20000);
    close(fd);
    assert_true(took >= 1500 && took < 10000);
    serving(&fx->srv);

    /* A body trickling after complete headers. */
    fd = h_raw_connect(&fx->srv);
    assert_true(fd >= 0);
    static const char head[] = "POST /call HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n";
    assert_int_equal(h_raw_send(fd, head, sizeof(head) - 1), 0);
    took = trickle(fd, "[1, 2, 3, ", 20000);
    close(fd);
    assert_true(took >= 1500 && took < 10000);

    /* A request line trickling on a new connection: bounded by the idle timeout (3 s). */
    fd = h_raw_connect(&fx->srv);
    assert_true(fd >= 0);
    took = trickle(fd, "GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 20000);
    close(fd);
    assert_true(took >= 2500 && took < 12000);
    serving(&fx->srv);
    H_WAIT_UNTIL(h_metrics_value(&fx->srv, "genserv_http_connections") <= 1, 15000);
    H_PASS(fx);
}

static void test_hundreds_of_clients_that_give_up_while_held(void **state)
{
    enum { N = 300 };
    h_fixture_t *fx = *state;
    h_req_t push = {.method = "POST",
                    .path = "/call",
                    .body = "{\"server\": \"crowd\", \"message\": [\"push\", 1], "
                            "\"timeout_ms\": 60000}",
                    .timeout_ms = 1500};
    h_multi_t *m;
    h_resp_t *rs;

    assert_int_equal(
        h_start_server(&fx->srv, "crowd", "batcher", "{\"interval_ms\": 600000}", NULL), 201);
    m = h_multi_start(&fx->srv, &push, N);
    assert_non_null(m);
    rs = h_multi_wait(m);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(rs[i].curl_rc, CURLE_OPERATION_TIMEDOUT);
    h_multi_destroy(m);
    serving(&fx->srv);

    assert_int_equal(h_deliver(&fx->srv, "/send", "crowd", "\"flush\""), 202);
    H_WAIT_UNTIL(h_server_int(&fx->srv, "crowd", "held_calls", false) == 0, H_WAIT_MS);
    H_WAIT_UNTIL(h_metrics_value(&fx->srv, "genserv_http_open_calls") == 0, H_WAIT_MS);
    assert_int_equal(h_server_int(&fx->srv, "crowd", "last_batch_size", true), N);
    serving(&fx->srv);
    H_PASS(fx);
}

static void test_sigterm_with_hundreds_of_held_calls(void **state)
{
    enum { N = 500 };
    h_fixture_t *fx = *state;
    h_req_t push = {.method = "POST",
                    .path = "/call",
                    .body = "{\"server\": \"many\", \"message\": [\"push\", 1], "
                            "\"timeout_ms\": 120000}",
                    .timeout_ms = 150000};
    h_multi_t *m;
    h_resp_t *rs;
    int64_t t0;

    assert_int_equal(h_start_server(&fx->srv, "many", "batcher", "{\"interval_ms\": 600000}", NULL),
                     201);
    m = h_multi_start(&fx->srv, &push, N);
    assert_non_null(m);
    H_WAIT_UNTIL(h_metrics_value(&fx->srv, "genserv_http_open_calls") == N, 60000);
    t0 = h_now_ms();
    assert_int_equal(h_stop(&fx->srv, H_STOP_MS), 0);
    assert_true(h_now_ms() - t0 < 12000);
    rs = h_multi_wait(m);
    for (size_t i = 0; i < N; i++)
        h_assert_error(&rs[i], 503, "shutting_down");
    h_multi_destroy(m);
    H_PASS(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_clients_that_send_a_byte_at_a_time_are_cut_off,
                                        h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_garbage_instead_of_http_is_refused_and_survived,
                                        h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_an_enormous_header_is_refused_and_survived, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_requests_are_answered_in_order, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_a_request_pipelined_behind_a_held_call_waits_its_turn,
                                        h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_a_chunked_body_past_the_limit_is_413, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_clients_that_leave_mid_body_leak_nothing, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(
            test_idle_connections_close_but_held_calls_and_streams_do_not, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_hundreds_of_clients_that_give_up_while_held, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_with_hundreds_of_held_calls, h_setup,
                                        h_teardown),
    };

    h_init(170);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
