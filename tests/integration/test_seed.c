/*
 * test_seed.c: the seed lessons' scenarios, played over real HTTP against the real binary.
 *
 * Each test is what a reader of the Elixir lessons would type with curl: three casts to the
 * counter and a call that sees them; a journal entry visible in the server's state; a message
 * sent later with send_after arriving in handle_info, or cancelled before it fires; and the
 * misbehaving server that calls itself, crashes with calling_self and is restarted by its
 * supervisor. Every test runs against its own genserv with the default servers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

/* POST /send_after with body (JSON text); asserts 202 {"timer": REF} (REF an opaque string,
 * docs/API.md) and, when path is not NULL, writes "/timers/REF" into it. */
static void send_after(const h_server_t *srv, const char *body, char *path, size_t len)
{
    const char *ref;
    h_resp_t r;

    h_request(srv, "POST", "/send_after", body, &r);
    if (r.status != 202 || !json_is_object(r.json))
        fail_msg("POST /send_after: expected 202 {\"timer\": REF}, got %ld %s", r.status, r.body);
    ref = h_str(r.json, "timer");
    assert_non_null(ref);
    assert_true(ref[0] != '\0');
    if (path != NULL)
        snprintf(path, len, "/timers/%s", ref);
    h_resp_close(&r);
}

static int64_t received(const h_server_t *srv)
{
    return h_call_int(srv, "receiver", "\"received\"");
}

static void test_counter_three_casts_then_get_count_is_3(void **state)
{
    h_fixture_t *fx = *state;
    json_t *ok = h_json("{\"ok\": true}");
    h_resp_t r;

    for (int i = 0; i < 3; i++) {
        h_request(&fx->srv, "POST", "/cast",
                  "{\"server\": \"counter\", \"message\": \"increment\"}", &r);
        assert_int_equal(r.status, 202);
        assert_true(h_json_equal(r.json, ok));
        h_resp_close(&r);
    }
    h_call(&fx->srv, "counter", "\"get_count\"", -1, &r);
    h_assert_reply(&r, "3");
    assert_non_null(strstr(r.content_type, "application/json"));
    h_resp_close(&r);
    json_decref(ok);
    H_PASS(fx);
}

static void test_journal_add_entry_then_state(void **state)
{
    h_fixture_t *fx = *state;
    json_t *info, *want = h_json("[\"first entry\"]");
    h_resp_t r;

    assert_int_equal(h_deliver(&fx->srv, "/cast", "journal", "[\"add_entry\", \"first entry\"]"),
                     202);
    info = h_server_info(&fx->srv, "journal");
    assert_non_null(info);
    assert_true(h_json_equal(json_object_get(info, "state"), want));
    assert_string_equal(h_str(info, "name"), "journal");
    assert_string_equal(h_str(info, "behaviour"), "journal");
    json_decref(info);

    h_call(&fx->srv, "journal", "\"entries\"", -1, &r);
    h_assert_reply(&r, "[\"first entry\"]");
    h_resp_close(&r);
    json_decref(want);
    H_PASS(fx);
}

static void test_send_after_delivers_to_handle_info_after_the_delay(void **state)
{
    h_fixture_t *fx = *state;
    const int delay = 1000;
    char path[160];
    int64_t t0, remaining, seen_at;
    h_resp_t r;

    assert_int_equal(h_start_server(&fx->srv, "receiver", "receiver", NULL, NULL), 201);
    t0 = h_now_ms();
    send_after(
        &fx->srv,
        "{\"server\": \"receiver\", \"message\": [\"greeting\", \"later\"], \"delay_ms\": 1000}",
        path, sizeof(path));

    /* read_timer while it is pending. */
    h_request(&fx->srv, "GET", path, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_true(json_is_integer(json_object_get(r.json, "remaining_ms")));
    remaining = (int64_t)json_integer_value(json_object_get(r.json, "remaining_ms"));
    assert_true(remaining >= 0 && remaining <= delay);
    h_resp_close(&r);
    /* Not delivered early (checked only while the delay is surely not over yet). */
    if (h_now_ms() - t0 < delay / 2)
        assert_int_equal(received(&fx->srv), 0);

    H_WAIT_UNTIL(received(&fx->srv) == 1, H_WAIT_MS);
    seen_at = h_now_ms();
    /* The timer started after t0, so it cannot have fired before t0 + delay (a few ms of
     * clock granularity aside). */
    assert_true(seen_at - t0 >= delay - 20);

    h_call(&fx->srv, "receiver", "\"last\"", -1, &r);
    h_assert_reply(&r, "[[\"greeting\", \"later\"]]");
    h_resp_close(&r);

    /* Fired: the timer is gone. */
    h_request(&fx->srv, "GET", path, NULL, &r);
    h_assert_error(&r, 404, "no_such_timer");
    h_resp_close(&r);
    h_request(&fx->srv, "DELETE", path, NULL, &r);
    h_assert_error(&r, 404, "no_such_timer");
    h_resp_close(&r);
    H_PASS(fx);
}

static void test_cancel_timer_before_it_fires(void **state)
{
    h_fixture_t *fx = *state;
    const int delay = 1500;
    char path[160];
    int64_t t0, remaining;
    h_resp_t r;

    assert_int_equal(h_start_server(&fx->srv, "receiver", "receiver", NULL, NULL), 201);
    t0 = h_now_ms();
    send_after(&fx->srv, "{\"server\": \"receiver\", \"message\": \"never\", \"delay_ms\": 1500}",
               path, sizeof(path));

    h_request(&fx->srv, "DELETE", path, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_true(json_is_integer(json_object_get(r.json, "remaining_ms")));
    remaining = (int64_t)json_integer_value(json_object_get(r.json, "remaining_ms"));
    assert_true(remaining >= 0 && remaining <= delay);
    if (h_now_ms() - t0 < delay / 2)
        assert_true(remaining > 0);
    h_resp_close(&r);

    h_request(&fx->srv, "GET", path, NULL, &r);
    h_assert_error(&r, 404, "no_such_timer");
    h_resp_close(&r);
    h_request(&fx->srv, "DELETE", path, NULL, &r);
    h_assert_error(&r, 404, "no_such_timer");
    h_resp_close(&r);

    /* Past the delay, the message never arrived: a marker timer set after it with the same
     * delay, so due later, has arrived (timers fire in due order into one mailbox), and it is
     * the only message the receiver got. */
    send_after(&fx->srv, "{\"server\": \"receiver\", \"message\": \"marker\", \"delay_ms\": 1500}",
               NULL, 0);
    H_WAIT_UNTIL(received(&fx->srv) >= 1, H_WAIT_MS);
    assert_true(h_now_ms() >= t0 + delay);
    assert_int_equal(received(&fx->srv), 1);
    assert_int_equal(h_server_int(&fx->srv, "receiver", "received", true), 1);
    h_call(&fx->srv, "receiver", "\"last\"", -1, &r);
    h_assert_reply(&r, "[\"marker\"]");
    h_resp_close(&r);
    H_PASS(fx);
}

static void test_send_delivers_to_handle_info(void **state)
{
    h_fixture_t *fx = *state;
    h_resp_t r;

    assert_int_equal(h_start_server(&fx->srv, "receiver", "receiver", NULL, NULL), 201);
    assert_int_equal(h_deliver(&fx->srv, "/send", "receiver", "\"hello\""), 202);
    assert_int_equal(h_deliver(&fx->srv, "/send", "receiver", "[\"greeting\", \"hi\"]"), 202);
    /* A cast goes to handle_cast, which the receiver ignores. */
    assert_int_equal(h_deliver(&fx->srv, "/cast", "receiver", "\"ignored\""), 202);
    h_call(&fx->srv, "receiver", "\"last\"", -1, &r);
    h_assert_reply(&r, "[\"hello\", [\"greeting\", \"hi\"]]");
    h_resp_close(&r);
    H_PASS(fx);
}

static void test_a_timer_whose_server_is_gone_is_dropped(void **state)
{
    h_fixture_t *fx = *state;
    double before;
    char path[160];
    h_resp_t r;

    assert_int_equal(h_start_server(&fx->srv, "gone", "receiver", NULL, NULL), 201);
    before = h_metrics_value(&fx->srv, "genserv_dropped_timers_total");
    assert_true(before >= 0);
    send_after(&fx->srv, "{\"server\": \"gone\", \"message\": \"late\", \"delay_ms\": 300}", path,
               sizeof(path));
    h_request(&fx->srv, "DELETE", "/servers/gone", NULL, &r);
    assert_int_equal(r.status, 200);
    h_resp_close(&r);

    H_WAIT_UNTIL(h_metrics_value(&fx->srv, "genserv_dropped_timers_total") >= before + 1,
                 H_WAIT_MS);
    h_request(&fx->srv, "GET", path, NULL, &r);
    h_assert_error(&r, 404, "no_such_timer");
    h_resp_close(&r);
    /* A new server under the old name does not receive the old timer's message. */
    assert_int_equal(h_start_server(&fx->srv, "gone", "receiver", NULL, NULL), 201);
    h_call(&fx->srv, "gone", "\"received\"", -1, &r);
    h_assert_reply(&r, "0");
    h_resp_close(&r);
    H_PASS(fx);
}

static void test_send_after_with_zero_delay_is_delivered(void **state)
{
    h_fixture_t *fx = *state;

    assert_int_equal(h_start_server(&fx->srv, "receiver", "receiver", NULL, NULL), 201);
    send_after(&fx->srv, "{\"server\": \"receiver\", \"message\": \"now\", \"delay_ms\": 0}", NULL,
               0);
    H_WAIT_UNTIL(received(&fx->srv) == 1, H_WAIT_MS);
    H_PASS(fx);
}

static bool restarted_once(const h_server_t *srv, const char *name)
{
    json_t *info = h_server_info(srv, name);
    bool ok = info != NULL && h_str(info, "status") != NULL &&
              strcmp(h_str(info, "status"), "running") == 0 &&
              json_integer_value(json_object_get(info, "restarts")) == 1;

    json_decref(info);
    return ok;
}

static void test_misbehaving_crash_gives_500_and_it_is_restarted(void **state)
{
    h_fixture_t *fx = *state;
    json_t *info, *reason;
    h_resp_t r;

    assert_int_equal(h_start_server(&fx->srv, "misbehaving", "misbehaving", NULL, NULL), 201);
    h_call(&fx->srv, "misbehaving", "\"ping\"", -1, &r);
    h_assert_reply(&r, "\"pong\"");
    h_resp_close(&r);

    h_call(&fx->srv, "misbehaving", "\"message\"", -1, &r);
    h_assert_error(&r, 500, "server_crashed");
    reason = json_object_get(r.json, "reason");
    assert_true(json_is_string(reason));
    assert_string_equal(json_string_value(reason), "calling_self");
    h_resp_close(&r);

    H_WAIT_UNTIL(restarted_once(&fx->srv, "misbehaving"), H_WAIT_MS);
    info = h_server_info(&fx->srv, "misbehaving");
    assert_non_null(info);
    assert_true(json_is_string(json_object_get(info, "last_crash_reason")));
    assert_string_equal(h_str(info, "last_crash_reason"), "calling_self");
    /* A restart starts from init: the pings of the old incarnation are gone. */
    assert_int_equal(json_integer_value(json_object_get(json_object_get(info, "state"), "pings")),
                     0);
    json_decref(info);

    h_call(&fx->srv, "misbehaving", "\"ping\"", -1, &r);
    h_assert_reply(&r, "\"pong\"");
    h_resp_close(&r);
    H_PASS(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_counter_three_casts_then_get_count_is_3, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_journal_add_entry_then_state, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_send_after_delivers_to_handle_info_after_the_delay,
                                        h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_cancel_timer_before_it_fires, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_send_delivers_to_handle_info, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_a_timer_whose_server_is_gone_is_dropped, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_send_after_with_zero_delay_is_delivered, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_misbehaving_crash_gives_500_and_it_is_restarted,
                                        h_setup, h_teardown),
    };

    h_init(170);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
