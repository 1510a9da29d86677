/*
 * test_held.c: deferred calls whose callers are known, over real HTTP.
 *
 * What a user relies on: when the client of a held POST /call hangs up, genserv learns it at
 * once, without waiting for the server's reply or the call's timeout: the call leaves the
 * server's held calls, a server that asked (slow does: notify_caller_gone) is told and drops
 * that caller's work, and /metrics counts it (genserv_callers_gone_total); a thousand clients
 * hanging up at once are each reported, and nothing leaks (the fixture's genserv must exit 0,
 * which under the ASan build includes LeakSanitizer's verdict). A client that stays is not
 * mistaken for one that left. GET /servers/NAME/held lists who waits on a server: an HTTP
 * client's address and port, or the calling server's name, since when, until when, and the
 * message's tag, redacted for a sensitive server; /metrics shows the oldest wait's age.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

/* The count of GET /servers/NAME/held, or -1 when it is not 200. */
static long held_count(const h_server_t *srv, const char *name)
{
    char path[300];
    h_resp_t r;
    long n = -1;

    snprintf(path, sizeof(path), "/servers/%s/held", name);
    h_request(srv, "GET", path, NULL, &r);
    if (r.status == 200)
        n = (long)json_integer_value(json_object_get(r.json, "count"));
    h_resp_close(&r);
    return n;
}

/* A raw POST /call to slow that sleeps ms (with the largest call timeout genserv allows by
 * default), on a connection of its own (-1 on failure). */
static int raw_sleep_call(const h_server_t *srv, int ms)
{
    char body[128], req[512];
    int fd = h_raw_connect(srv);
    int n = snprintf(body, sizeof(body),
                     "{\"server\":\"slow\",\"message\":[\"sleep\",%d],\"timeout_ms\":300000}", ms);
    int len = snprintf(req, sizeof(req),
                       "POST /call HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       "Content-Length: %d\r\n\r\n%s",
                       n, body);

    if (fd >= 0 && h_raw_send(fd, req, (size_t)len) < 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

#define CLIENTS 1000

static void test_a_thousand_clients_hang_up_at_once(void **state)
{
    h_fixture_t *fx = *state;
    int n = h_under_valgrind() ? 100 : CLIENTS;
    double gone0 = h_metrics_value(&fx->srv, "genserv_callers_gone_total");
    int *fds = calloc((size_t)n, sizeof(*fds));

    assert_non_null(fds);
    assert_true(gone0 >= 0);
    if (n < CLIENTS)
        fprintf(stderr, "under valgrind: %d clients instead of %d\n", n, CLIENTS);
    for (int i = 0; i < n; i++) {
        fds[i] = raw_sleep_call(&fx->srv, 600000);
        assert_true(fds[i] >= 0);
    }
    /* Every one held by slow, and each in its ledger. */
    H_WAIT_UNTIL(h_server_int(&fx->srv, "slow", "pending", true) == n, 60000);
    H_WAIT_UNTIL(held_count(&fx->srv, "slow") == n, H_WAIT_MS);
    assert_true(h_metrics_value(&fx->srv, "genserv_held_call_oldest_age_seconds") > 0);

    /* All hang up at once. */
    for (int i = 0; i < n; i++)
        close(fds[i]);
    free(fds);

    /* Each is reported: counted, slow told (its sleepers and their timers gone), nothing held
     * any more, every connection closed. */
    H_WAIT_UNTIL(h_metrics_value(&fx->srv, "genserv_callers_gone_total") == gone0 + n, 60000);
    H_WAIT_UNTIL(h_server_int(&fx->srv, "slow", "pending", true) == 0, H_WAIT_MS);
    assert_int_equal(h_server_int(&fx->srv, "slow", "abandoned", true), n);
    assert_int_equal(h_server_int(&fx->srv, "slow", "held_calls", false), 0);
    assert_int_equal(held_count(&fx->srv, "slow"), 0);
    H_WAIT_UNTIL(h_metrics_value(&fx->srv, "genserv_http_open_calls") == 0, H_WAIT_MS);
    H_WAIT_UNTIL(h_metrics_value(&fx->srv, "genserv_held_calls") == 0, H_WAIT_MS);
    assert_true(h_metrics_value(&fx->srv, "genserv_held_call_oldest_age_seconds") == 0);
    /* Still serving. */
    h_resp_t r;
    h_call(&fx->srv, "slow", "[\"sleep\", 1]", 5000, &r);
    h_assert_reply(&r, "\"response!\"");
    h_resp_close(&r);
    H_PASS(fx); /* the teardown checks that genserv exits 0: no leak under ASan */
}

/* A client that stays, even one that pipelines its next request behind a held call, is not
 * taken for one that left: it gets its answer. */
static void test_a_client_that_stays_gets_its_answer(void **state)
{
    h_fixture_t *fx = *state;
    static const char next[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    char buf[4096];
    bool closed = false;
    double gone0 = h_metrics_value(&fx->srv, "genserv_callers_gone_total");
    int fd = raw_sleep_call(&fx->srv, 300);

    assert_true(fd >= 0);
    assert_int_equal(h_raw_send(fd, next, sizeof(next) - 1), 0);
    h_raw_read(fd, buf, sizeof(buf), "HTTP/1.1 200", 2, H_WAIT_MS, &closed);
    close(fd);
    assert_non_null(strstr(buf, "response!"));
    assert_non_null(strstr(strstr(buf, "response!"), "\"ok\""));
    assert_true(h_metrics_value(&fx->srv, "genserv_callers_gone_total") == gone0);
    H_PASS(fx);
}

/* A script that calls another server without waiting: the call's caller is a server. */
static const char asker_lua[] =
    "return {handle_cast = function(msg, s)\n"
    "  gs.send_request(msg[1], msg[2], 't', 60000) return {'noreply', s} end}\n";

static json_t *held_json(const h_server_t *srv, const char *path, long want_status)
{
    h_resp_t r;
    json_t *out;

    h_request(srv, "GET", path, NULL, &r);
    if (r.status != want_status)
        fail_msg("GET %s: %ld %s", path, r.status, r.body);
    out = json_incref(r.json);
    h_resp_close(&r);
    return out;
}

static void test_the_ledger_names_who_waits(void **state)
{
    h_fixture_t *fx = *state;
    h_req_t load = {.method = "POST",
                    .path = "/behaviours?name=asker",
                    .body = asker_lua,
                    .content_type = "text/x-lua"};
    h_req_t call = {.method = "POST",
                    .path = "/call",
                    .body =
                        "{\"server\":\"slow\",\"message\":[\"sleep\",60000],\"timeout_ms\":60000}"};
    h_resp_t r;

    /* An HTTP client first, then a server. */
    h_async_t *client = h_async_start(&fx->srv, &call);
    assert_non_null(client);
    H_WAIT_UNTIL(held_count(&fx->srv, "slow") == 1, H_WAIT_MS);
    h_request_ex(&fx->srv, &load, &r);
    assert_int_equal(r.status, 201);
    h_resp_close(&r);
    assert_int_equal(h_start_server(&fx->srv, "asker", "asker", NULL, NULL), 201);
    assert_int_equal(h_deliver(&fx->srv, "/cast", "asker", "[\"slow\", [\"sleep\", 60000]]"), 202);
    H_WAIT_UNTIL(held_count(&fx->srv, "slow") == 2, H_WAIT_MS);

    json_t *held = held_json(&fx->srv, "/servers/slow/held", 200);
    json_t *calls = json_object_get(held, "calls");
    assert_string_equal(h_str(held, "server"), "slow");
    assert_int_equal(json_array_size(calls), 2);
    json_t *first = json_array_get(calls, 0), *second = json_array_get(calls, 1);
    assert_string_equal(h_str(first, "kind"), "http");
    assert_true(strncmp(h_str(first, "caller"), "127.0.0.1:", 10) == 0);
    assert_true(atoi(h_str(first, "caller") + 10) > 0);
    assert_string_equal(h_str(first, "tag"), "sleep");
    assert_true(json_integer_value(json_object_get(first, "remaining_ms")) > 50000);
    assert_true(json_integer_value(json_object_get(first, "deadline_ms")) >
                json_integer_value(json_object_get(first, "since_ms")));
    assert_string_equal(h_str(second, "kind"), "server");
    assert_string_equal(h_str(second, "caller"), "asker");
    assert_string_equal(h_str(second, "tag"), "sleep");
    assert_true(json_integer_value(json_object_get(first, "waited_ms")) >=
                json_integer_value(json_object_get(second, "waited_ms")));
    json_decref(held);

    /* ?limit cuts the list, not the count; a bad one is 400; an unknown server 404. */
    held = held_json(&fx->srv, "/servers/slow/held?limit=1", 200);
    assert_int_equal(json_integer_value(json_object_get(held, "count")), 2);
    assert_int_equal(json_array_size(json_object_get(held, "calls")), 1);
    json_decref(held);
    h_request(&fx->srv, "GET", "/servers/slow/held?limit=0", NULL, &r);
    h_assert_error(&r, 400, "bad_request");
    h_resp_close(&r);
    h_request(&fx->srv, "GET", "/servers/nobody/held", NULL, &r);
    h_assert_error(&r, 404, "no_such_server");
    h_resp_close(&r);
    h_request(&fx->srv, "POST", "/servers/slow/held", "{}", &r);
    h_assert_error(&r, 405, "method_not_allowed");
    h_resp_close(&r);
    assert_true(h_metrics_value(&fx->srv, "genserv_held_call_oldest_age_seconds") > 0);

    /* A sensitive server's tags are redacted. */
    assert_int_equal(h_start_server(&fx->srv, "secret", "slow", NULL, "{\"sensitive\": true}"),
                     201);
    h_async_t *hidden =
        h_async_start(&fx->srv, &(h_req_t){
                                    .method = "POST",
                                    .path = "/call",
                                    .body = "{\"server\":\"secret\",\"message\":["
                                            "\"sleep\",60000],\"timeout_ms\":60000}",
                                    .timeout_ms = 60000,
                                });
    assert_non_null(hidden);
    H_WAIT_UNTIL(held_count(&fx->srv, "secret") == 1, H_WAIT_MS);
    held = held_json(&fx->srv, "/servers/secret/held", 200);
    assert_string_equal(h_str(json_array_get(json_object_get(held, "calls"), 0), "tag"),
                        "[redacted]");
    json_decref(held);

    /* Stopping the servers answers the held clients (server_stopped) and empties the ledger. */
    h_request(&fx->srv, "DELETE", "/servers/slow", NULL, &r);
    assert_int_equal(r.status, 200);
    h_resp_close(&r);
    h_request(&fx->srv, "DELETE", "/servers/secret", NULL, &r);
    assert_int_equal(r.status, 200);
    h_resp_close(&r);
    h_assert_error(h_async_wait(client), 500, "server_stopped");
    h_assert_error(h_async_wait(hidden), 500, "server_stopped");
    h_async_destroy(client);
    h_async_destroy(hidden);
    H_PASS(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_a_thousand_clients_hang_up_at_once, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_a_client_that_stays_gets_its_answer, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_the_ledger_names_who_waits, h_setup, h_teardown),
    };

    h_init(170);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
