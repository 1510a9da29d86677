/*
 * test_calls.c: POST /call held open for deferred replies, over real HTTP.
 *
 * A call's HTTP response waits for the server's reply however late it comes: ten callers
 * pushing to a batcher are all held until the batch flushes and then answered together; a
 * call to the slow server does not hold up a call to the counter; a call that outlives its
 * timeout_ms gets 504 while the server goes on working, and drops the work it kept for that
 * caller (or, had the reply come first, the late reply is dropped and counted). The
 * limits answer 503 overloaded with Retry-After: too many calls held at once, and a full
 * mailbox. Timing checks are one-sided or generous: only a broken server trips them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "harness.h"

#define N_PUSHERS 10

static size_t discard(char *data, size_t size, size_t nmemb, void *arg)
{
    (void)data;
    (void)arg;
    return size * nmemb;
}

static void test_ten_pushes_to_a_batcher_are_held_until_the_flush(void **state)
{
    h_fixture_t *fx = *state;
    h_async_t *calls[N_PUSHERS];
    int64_t t_flush, first = INT64_MAX, last = 0;
    json_t *info, *st;
    h_resp_t stats;
    int i;

    /* A batcher whose own timer is far away: the flush is ours, so all ten are in one batch. */
    assert_int_equal(
        h_start_server(&fx->srv, "batch10", "batcher", "{\"interval_ms\": 600000}", NULL), 201);
    for (i = 0; i < N_PUSHERS; i++) {
        calls[i] = h_push_async(&fx->srv, "batch10", i + 1, 0);
        assert_non_null(calls[i]);
    }
    H_WAIT_UNTIL(h_server_int(&fx->srv, "batch10", "held_calls", false) == N_PUSHERS, H_WAIT_MS);
    assert_int_equal(h_server_int(&fx->srv, "batch10", "pending", true), N_PUSHERS);
    /* Held, not merely slow: nobody is answered while the batch is open. Every push was
     * handled (held_calls) and a later call to the same batcher has been answered, so an
     * answer to a push would have been written before that one; and the gateway still
     * holds all ten open. */
    h_call(&fx->srv, "batch10", "\"stats\"", -1, &stats);
    assert_int_equal(stats.status, 200);
    st = json_object_get(stats.json, "reply");
    assert_int_equal(json_integer_value(json_object_get(st, "pending")), N_PUSHERS);
    h_resp_close(&stats);
    assert_true(h_metrics_value(&fx->srv, "genserv_http_open_calls") >= N_PUSHERS);
    for (i = 0; i < N_PUSHERS; i++)
        assert_false(h_async_done(calls[i]));

    t_flush = h_now_ms();
    assert_int_equal(h_deliver(&fx->srv, "/send", "batch10", "\"flush\""), 202);
    for (i = 0; i < N_PUSHERS; i++) {
        h_resp_t *r = h_async_wait(calls[i]);

        h_assert_reply(r, "\"ok\"");
        assert_true(r->t_end_ms >= t_flush);
        if (r->t_end_ms < first)
            first = r->t_end_ms;
        if (r->t_end_ms > last)
            last = r->t_end_ms;
        h_async_destroy(calls[i]);
    }
    /* Released together: one flush answers them all (generous: a second for ten replies). */
    assert_true(last - first < 1000);

    info = h_server_info(&fx->srv, "batch10");
    assert_non_null(info);
    st = json_object_get(info, "state");
    assert_int_equal(json_integer_value(json_object_get(st, "last_batch_size")), 10);
    assert_int_equal(json_integer_value(json_object_get(st, "last_batch_sum")), 55);
    assert_int_equal(json_integer_value(json_object_get(st, "batches")), 1);
    assert_int_equal(json_integer_value(json_object_get(st, "pending")), 0);
    assert_int_equal(json_integer_value(json_object_get(info, "held_calls")), 0);
    json_decref(info);
    H_WAIT_UNTIL(h_metrics_value(&fx->srv, "genserv_http_open_calls") == 0, H_WAIT_MS);
    H_PASS(fx);
}

static void test_a_thousand_held_calls_are_all_answered_after_one_flush(void **state)
{
    enum { N = 1000 };
    h_fixture_t *fx = *state;
    h_req_t push = {.method = "POST",
                    .path = "/call",
                    .body = "{\"server\": \"many\", \"message\": [\"push\", 1], "
                            "\"timeout_ms\": 120000}",
                    .timeout_ms = 150000};
    h_multi_t *m;
    h_resp_t *rs;
    int64_t t_flush;
    size_t i;

    assert_int_equal(h_start_server(&fx->srv, "many", "batcher", "{\"interval_ms\": 600000}", NULL),
                     201);
    m = h_multi_start(&fx->srv, &push, N);
    assert_non_null(m);
    H_WAIT_UNTIL(h_server_int(&fx->srv, "many", "held_calls", false) == N, 60000);
    assert_int_equal(h_multi_completed(m), 0);
    assert_true(h_metrics_value(&fx->srv, "genserv_http_open_calls") >= N);

    t_flush = h_now_ms();
    assert_int_equal(h_deliver(&fx->srv, "/send", "many", "\"flush\""), 202);
    rs = h_multi_wait(m);
    for (i = 0; i < N; i++) {
        h_assert_reply(&rs[i], "\"ok\"");
        assert_true(rs[i].t_end_ms >= t_flush);
    }
    h_multi_destroy(m);
    assert_int_equal(h_server_int(&fx->srv, "many", "last_batch_size", true), N);
    assert_int_equal(h_server_int(&fx->srv, "many", "total", true), N);
    H_WAIT_UNTIL(h_metrics_value(&fx->srv, "genserv_http_open_calls") == 0, H_WAIT_MS);
    H_PASS(fx);
}

static void test_the_batchers_own_timer_releases_a_held_push(void **state)
{
    h_fixture_t *fx = *state;
    h_async_t *a;
    h_resp_t *r;

    assert_int_equal(h_start_server(&fx->srv, "tick", "batcher", "{\"interval_ms\": 300}", NULL),
                     201);
    a = h_push_async(&fx->srv, "tick", 7, 0);
    assert_non_null(a);
    r = h_async_wait(a);
    h_assert_reply(r, "\"ok\"");
    assert_true(r->t_end_ms - r->t_start_ms < 5000);
    h_async_destroy(a);
    assert_true(h_server_int(&fx->srv, "tick", "total", true) == 7);
    H_PASS(fx);
}

static void test_a_slow_call_does_not_delay_a_call_to_counter(void **state)
{
    h_fixture_t *fx = *state;
    h_req_t req = {.method = "POST",
                   .path = "/call",
                   .body = "{\"server\": \"slow\", \"message\": [\"sleep\", 2000], "
                           "\"timeout_ms\": 30000}"};
    h_async_t *sleeper;
    h_resp_t r, *sr;
    int64_t started = h_now_ms();

    sleeper = h_async_start(&fx->srv, &req);
    assert_non_null(sleeper);
    H_WAIT_UNTIL(h_server_int(&fx->srv, "slow", "pending", true) == 1, H_WAIT_MS);

    h_call(&fx->srv, "counter", "\"get_count\"", -1, &r);
    h_assert_reply(&r, "0");
    /* Answered while the sleeper still sleeps, and quickly. */
    assert_true(r.t_end_ms - r.t_start_ms < 1000);
    if (h_now_ms() - started < 1500)
        assert_false(h_async_done(sleeper));
    h_resp_close(&r);

    sr = h_async_wait(sleeper);
    h_assert_reply(sr, "\"response!\"");
    assert_true(sr->t_end_ms - sr->t_start_ms >= 2000 - 20);
    h_async_destroy(sleeper);
    H_PASS(fx);
}

/* Sleepers of slow whose callers timed out: let go, or answered late (the reply dropped). */
static int64_t gone_sleepers(const h_server_t *srv)
{
    return h_server_int(srv, "slow", "abandoned", true) +
           (int64_t)h_metrics_value(srv, "genserv_late_replies_total");
}

static void test_a_call_timeout_gives_504_and_the_server_keeps_working(void **state)
{
    h_fixture_t *fx = *state;
    h_resp_t r;

    h_call(&fx->srv, "slow", "[\"sleep\", 2000]", 200, &r);
    h_assert_error(&r, 504, "timeout");
    assert_true(r.t_end_ms - r.t_start_ms >= 200 - 20);
    assert_true(r.t_end_ms - r.t_start_ms < 1900);
    h_resp_close(&r);

    /* The same server answers the next call. */
    h_call(&fx->srv, "slow", "[\"sleep\", 10]", 5000, &r);
    h_assert_reply(&r, "\"response!\"");
    h_resp_close(&r);

    /* The sleeper whose caller timed out gets no reply through to anyone: slow is told the
     * caller is gone and lets it go (abandoned, include/genserv/genserv.h notify_caller_gone);
     * had its wake come first, the reply would have been dropped and counted as late. */
    H_WAIT_UNTIL(gone_sleepers(&fx->srv) == 1, H_WAIT_MS);
    H_WAIT_UNTIL(h_server_int(&fx->srv, "slow", "pending", true) == 0, H_WAIT_MS);
    H_WAIT_UNTIL(h_metrics_value(&fx->srv, "genserv_http_open_calls") == 0, H_WAIT_MS);

    /* timeout_ms 0 is in range: an immediate timeout for a call that is not answered at once. */
    h_call(&fx->srv, "slow", "[\"sleep\", 1000]", 0, &r);
    h_assert_error(&r, 504, "timeout");
    h_resp_close(&r);
    H_PASS(fx);
}

static void test_a_call_without_timeout_ms_gets_the_default_timeout(void **state)
{
    const char *args[] = {"--default-call-timeout-ms", "300", NULL};
    h_opts_t opts = {.args = args};
    h_fixture_t *fx = *state;
    h_resp_t r;

    h_fixture_restart(fx, &opts);

    h_call(&fx->srv, "slow", "[\"sleep\", 5000]", -1, &r);
    h_assert_error(&r, 504, "timeout");
    assert_true(r.t_end_ms - r.t_start_ms >= 300 - 20);
    assert_true(r.t_end_ms - r.t_start_ms < 4000);
    h_resp_close(&r);
    H_PASS(fx);
}

static void test_any_content_type_and_unknown_fields_are_accepted(void **state)
{
    h_fixture_t *fx = *state;
    static const char *const types[] = {"text/plain", "application/x-www-form-urlencoded",
                                        "application/json; charset=utf-8",
                                        "application/octet-stream"};
    h_resp_t r;

    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        h_req_t req = {.method = "POST",
                       .path = "/call",
                       .body = "{\"server\": \"counter\", \"message\": \"get_count\", "
                               "\"unknown\": {\"field\": [1, 2]}, \"trace_id\": \"abc\"}",
                       .content_type = types[i]};

        h_request_ex(&fx->srv, &req, &r);
        if (r.status != 200)
            fail_msg("Content-Type %s: %ld %s", types[i], r.status, r.body);
        h_assert_reply(&r, "0");
        h_resp_close(&r);
    }
    H_PASS(fx);
}

static void test_keep_alive_connections_carry_many_calls(void **state)
{
    h_fixture_t *fx = *state;
    h_resp_t r;

    /* The curl command line reuses one connection for --next; the harness opens one per
     * request, so this checks the server side with a raw keep-alive client: curl's share of
     * one easy handle across requests. */
    CURL *c = curl_easy_init();
    long conns = 0, total = 0;
    assert_non_null(c);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    for (int i = 0; i < 50; i++) {
        char url[400];
        const char *body = i % 2 ? "{\"server\": \"counter\", \"message\": \"increment\"}"
                                 : "{\"server\": \"counter\", \"message\": \"get_count\"}";
        long code = 0, opened = 0;

        snprintf(url, sizeof(url), "%s%s", fx->srv.url, i % 2 ? "/cast" : "/call");
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        assert_int_equal(curl_easy_perform(c), CURLE_OK);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &opened);
        assert_int_equal(code, i % 2 ? 202 : 200);
        conns += opened;
        total++;
    }
    curl_easy_cleanup(c);
    /* One connection for all fifty (a reconnect or two would be tolerable, fifty is not). */
    assert_true(conns <= 3);
    assert_int_equal(total, 50);
    h_call(&fx->srv, "counter", "\"get_count\"", -1, &r);
    h_assert_reply(&r, "25");
    h_resp_close(&r);
    H_PASS(fx);
}

static void assert_overloaded(const h_resp_t *r)
{
    char *end = NULL;

    h_assert_error(r, 503, "overloaded");
    if (r->retry_after[0] == '\0')
        fail_msg("503 overloaded without a Retry-After header: %s", r->body);
    /* Retry-After is delay-seconds; docs/API.md: "503 answers carry Retry-After: 1". */
    strtol(r->retry_after, &end, 10);
    assert_true(end != r->retry_after && *end == '\0');
    assert_string_equal(r->retry_after, "1");
}

static void test_held_calls_past_the_limit_get_503_overloaded(void **state)
{
    const char *args[] = {"--max-held-calls", "2", NULL};
    h_opts_t opts = {.args = args};
    h_fixture_t *fx = *state;
    h_async_t *a, *b;
    h_resp_t r;

    /* This test needs its own limits: replace the default server. */
    h_fixture_restart(fx, &opts);

    assert_int_equal(h_start_server(&fx->srv, "hold", "batcher", "{\"interval_ms\": 600000}", NULL),
                     201);
    a = h_push_async(&fx->srv, "hold", 1, 0);
    b = h_push_async(&fx->srv, "hold", 2, 0);
    assert_non_null(a);
    assert_non_null(b);
    H_WAIT_UNTIL(h_metrics_value(&fx->srv, "genserv_http_open_calls") == 2, H_WAIT_MS);

    h_call(&fx->srv, "hold", "[\"push\", 3]", 60000, &r);
    assert_overloaded(&r);
    h_resp_close(&r);
    /* Requests that hold nothing are still served, and so are the ones an operator needs
     * most in this state: reading a server's state and stopping one (held, not counted). */
    h_request(&fx->srv, "GET", "/healthz", NULL, &r);
    assert_int_equal(r.status, 200);
    h_resp_close(&r);
    h_request(&fx->srv, "GET", "/servers/hold", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(r.json, "state"), "pending")), 2);
    h_resp_close(&r);
    assert_int_equal(h_start_server(&fx->srv, "spare", "counter", NULL, NULL), 201);
    h_request(&fx->srv, "DELETE", "/servers/spare", NULL, &r);
    assert_int_equal(r.status, 200);
    h_resp_close(&r);

    assert_int_equal(h_deliver(&fx->srv, "/send", "hold", "\"flush\""), 202);
    h_assert_reply(h_async_wait(a), "\"ok\"");
    h_assert_reply(h_async_wait(b), "\"ok\"");
    h_async_destroy(a);
    h_async_destroy(b);
    H_WAIT_UNTIL(h_metrics_value(&fx->srv, "genserv_http_open_calls") == 0, H_WAIT_MS);
    /* Room again. */
    h_call(&fx->srv, "counter", "\"get_count\"", -1, &r);
    h_assert_reply(&r, "0");
    h_resp_close(&r);
    H_PASS(fx);
}

/* ["add_entry", [0, 0, ...]] with n zeros: a big entry that is slow to deep-copy. */
static char *big_entry_cast(const char *server, size_t n)
{
    size_t cap = 128 + 2 * n, len;
    char *s = malloc(cap);

    assert_non_null(s);
    len = (size_t)snprintf(s, cap, "{\"server\": \"%s\", \"message\": [\"add_entry\", [", server);
    for (size_t i = 0; i < n; i++) {
        s[len++] = '0';
        if (i + 1 < n)
            s[len++] = ',';
    }
    memcpy(s + len, "]]}", 4);
    return s;
}

static void test_a_full_mailbox_gives_503_overloaded_with_retry_after(void **state)
{
    h_fixture_t *fx = *state;
    const h_req_t entries = {.method = "POST",
                             .path = "/call",
                             .body = "{\"server\": \"jam\", \"message\": \"entries\", "
                                     "\"timeout_ms\": 60000}"};
    bool overloaded = false;
    json_t *info;
    h_resp_t r;
    char *big;
    int round, i;

    /* A journal with room for two messages, made slow to answer "entries" (a deep copy of
     * every entry) by a few large entries. While it copies, casts pile up in its mailbox. */
    assert_int_equal(h_start_server(&fx->srv, "jam", "journal", NULL, "{\"mailbox_limit\": 2}"),
                     201);
    info = h_server_info(&fx->srv, "jam");
    assert_non_null(info);
    assert_int_equal(json_integer_value(json_object_get(info, "mailbox_limit")), 2);
    json_decref(info);
    big = big_entry_cast("jam", 150000);
    for (i = 0; i < 5; i++) {
        h_request(&fx->srv, "POST", "/cast", big, &r);
        assert_int_equal(r.status, 202);
        h_resp_close(&r);
    }
    free(big);

    for (round = 0; round < 20 && !overloaded; round++) {
        h_async_t *busy = h_async_start(&fx->srv, &entries);

        assert_non_null(busy);
        for (i = 0; i < 500 && !overloaded && !h_async_done(busy); i++) {
            h_request(&fx->srv, "POST", "/cast",
                      "{\"server\": \"jam\", \"message\": [\"add_entry\", 1]}", &r);
            if (r.status == 503) {
                assert_overloaded(&r);
                overloaded = true;
            } else {
                assert_int_equal(r.status, 202);
            }
            h_resp_close(&r);
        }
        /* The call itself may find the mailbox full: that is the same answer. */
        if (h_async_wait(busy)->status == 503) {
            assert_overloaded(h_async_wait(busy));
            overloaded = true;
        } else {
            assert_int_equal(h_async_wait(busy)->status, 200);
        }
        h_async_destroy(busy);
    }
    printf("mailbox full after %d round(s) of casts behind a slow call\n", round);
    assert_true(overloaded);

    /* The server itself is fine and answers again once its mailbox drained. */
    H_WAIT_UNTIL(h_server_int(&fx->srv, "jam", "mailbox_len", false) == 0, H_WAIT_MS);
    h_call(&fx->srv, "jam", "[\"no_such\", \"message\"]", -1, &r);
    h_assert_reply(&r, "[\"error\", \"unknown_message\"]");
    h_resp_close(&r);
    H_PASS(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ten_pushes_to_a_batcher_are_held_until_the_flush,
                                        h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_a_thousand_held_calls_are_all_answered_after_one_flush,
                                        h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_the_batchers_own_timer_releases_a_held_push, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_a_slow_call_does_not_delay_a_call_to_counter, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_a_call_timeout_gives_504_and_the_server_keeps_working,
                                        h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_a_call_without_timeout_ms_gets_the_default_timeout,
                                        h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_any_content_type_and_unknown_fields_are_accepted,
                                        h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_keep_alive_connections_carry_many_calls, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_held_calls_past_the_limit_get_503_overloaded, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_a_full_mailbox_gives_503_overloaded_with_retry_after,
                                        h_setup, h_teardown),
    };

    h_init(170);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
