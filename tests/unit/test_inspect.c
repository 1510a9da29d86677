/*
 * test_inspect.c: what inspection shows of a server's state (gs_behaviour_t.sensitive and
 * .redact, gs_start_options_t.sensitive), like OTP's format_status.
 *
 * A behaviour that lists keys to redact has those values replaced in every view of its state
 * while the rest stays readable; a sensitive behaviour, or a server started as sensitive,
 * shows only "[redacted]" and its format_state is never even asked; the status says which
 * servers are sensitive; and the server itself keeps the real state (its handlers see it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "testutil.h"

/* A login record: {"user", "password", "logins"}; call "check" answers the password, to show
 * that redaction changes what inspection sees and nothing else. */
typedef struct login_s {
    json_t *st;
} login_t;

static int format_calls;

static int login_init(gs_server_t *self, json_t *args, void **state, json_t **reason)
{
    (void)self;
    (void)reason;
    login_t *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return -1;
    l->st = json_deep_copy(args);
    *state = l;
    return 0;
}

static gs_result_t login_call(gs_server_t *self, void *state, json_t *msg, gs_from_t from)
{
    (void)self;
    (void)msg;
    (void)from;
    login_t *l = state;
    return GS_REPLY(json_deep_copy(json_object_get(l->st, "password")));
}

static void login_terminate(gs_server_t *self, json_t *reason, void *state)
{
    (void)self;
    (void)reason;
    login_t *l = state;
    json_decref(l->st);
    free(l);
}

static json_t *login_format(gs_server_t *self, void *state)
{
    (void)self;
    format_calls++;
    return json_deep_copy(((login_t *)state)->st);
}

static const char *const login_redact[] = {"password", "missing_key", NULL};

static const gs_behaviour_t redacting = {
    .name = "test_login_redacting",
    .init = login_init,
    .handle_call = login_call,
    .terminate = login_terminate,
    .format_state = login_format,
    .redact = login_redact,
};

static const gs_behaviour_t sensitive = {
    .name = "test_login_sensitive",
    .init = login_init,
    .handle_call = login_call,
    .terminate = login_terminate,
    .format_state = login_format,
    .sensitive = true,
};

static const gs_behaviour_t plain = {
    .name = "test_login_plain",
    .init = login_init,
    .handle_call = login_call,
    .terminate = login_terminate,
    .format_state = login_format,
};

#define ARGS "{\"user\": \"ada\", \"password\": \"hunter2\", \"logins\": 3}"

/* tu_setup, with the count of format_state calls cleared too. */
static int login_setup(void **state)
{
    format_calls = 0;
    return tu_setup(state);
}

#define login_test(f) cmocka_unit_test_setup_teardown(f, login_setup, tu_teardown)

static void test_listed_keys_are_redacted_and_the_rest_is_shown(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "r", &redacting, ARGS, NULL);
    json_t *st = tu_state(rt, "r");
    /* A listed key that the state lacks is not added. */
    assert_json_eq(st, "{\"user\": \"ada\", \"password\": \"[redacted]\", \"logins\": 3}");
    json_decref(st);
    /* The server itself still has the real state. */
    tu_call_expect(rt, "r", "\"check\"", "\"hunter2\"");
    assert_false(json_is_true(tu_status_field(rt, "r", "sensitive")));
}

static void test_a_sensitive_behaviour_shows_nothing(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "s", &sensitive, ARGS, NULL);
    json_t *st = tu_state(rt, "s");
    assert_json_eq(st, "\"[redacted]\"");
    json_decref(st);
    assert_int_equal(format_calls, 0);
    assert_true(json_is_true(tu_status_field(rt, "s", "sensitive")));
    tu_call_expect(rt, "s", "\"check\"", "\"hunter2\"");
}

static void test_a_server_started_sensitive_shows_nothing(void **state)
{
    gs_runtime_t *rt = *state;
    gs_start_options_t opts;
    gs_start_options_init(&opts);
    opts.sensitive = true;
    tu_start(rt, "p1", &plain, ARGS, &opts);

    json_t *st = tu_state(rt, "p1");
    assert_json_eq(st, "\"[redacted]\"");
    json_decref(st);
    assert_true(json_is_true(tu_status_field(rt, "p1", "sensitive")));
    /* Never formatted: not to be shown, nor to be weighed for its memory. */
    assert_int_equal(format_calls, 0);
    assert_int_equal(tu_status_int(rt, "p1", "memory_bytes"), 0);

    /* The same behaviour started without the option shows everything (and is weighed). */
    tu_start(rt, "p2", &plain, ARGS, NULL);
    st = tu_state(rt, "p2");
    assert_json_eq(st, ARGS);
    json_decref(st);
    assert_false(json_is_true(tu_status_field(rt, "p2", "sensitive")));
    assert_true(format_calls >= 1);
}

/* Reading the state is an inspection, not a message: it does not count as handled. */
static void test_reading_the_state_is_not_a_handled_message(void **state)
{
    gs_runtime_t *rt = *state;
    tu_start(rt, "p", &plain, ARGS, NULL);
    for (int i = 0; i < 5; i++)
        json_decref(tu_state(rt, "p"));
    assert_int_equal(tu_status_int(rt, "p", "messages_handled"), 0);
    tu_call_expect(rt, "p", "\"check\"", "\"hunter2\"");
    TU_WAIT_UNTIL(tu_status_int(rt, "p", "messages_handled") == 1, TU_WAIT_MS);
    json_decref(tu_state(rt, "p"));
    assert_int_equal(tu_status_int(rt, "p", "messages_handled"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        login_test(test_listed_keys_are_redacted_and_the_rest_is_shown),
        login_test(test_a_sensitive_behaviour_shows_nothing),
        login_test(test_a_server_started_sensitive_shows_nothing),
        login_test(test_reading_the_state_is_not_a_handled_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
