/*
 * test_errors.c: every error status of the HTTP contract, over real HTTP.
 *
 * Each case sends what a careless or hostile client might send (malformed JSON, wrong types,
 * missing fields, a timeout out of range, an oversize body, an unknown server, path or method)
 * and checks the status and that the body is {"error": CODE, "message": TEXT} as JSON. After
 * the bad requests the server must still serve good ones: a 4xx is an answer, not an injury.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

/* 256 bytes: one more than a server name may have. */
#define NAME_64   "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
#define LONG_NAME NAME_64 NAME_64 NAME_64 NAME_64

static void expect(const h_server_t *srv, const char *method, const char *path, const char *body,
                   long status, const char *code)
{
    h_resp_t r;

    h_request(srv, method, path, body, &r);
    if (r.status != status)
        fprintf(stderr, "request: %s %s %s\n", method, path, body ? body : "");
    h_assert_error(&r, status, code);
    h_resp_close(&r);
}

static void still_serving(const h_server_t *srv)
{
    h_resp_t r;

    h_call(srv, "counter", "\"get_count\"", -1, &r);
    h_assert_reply(&r, "0");
    h_resp_close(&r);
}

static const char *const body_paths[] = {"/call", "/cast", "/send", "/send_after", "/servers"};

static void test_malformed_json_is_400_bad_request(void **state)
{
    h_fixture_t *fx = *state;
    static const char *const bodies[] = {
        "{\"server\": \"counter\", \"message\": ", /* cut short */
        "not json at all",
        "{\"server\": \"counter\", \"message\": \"get_count\",}", /* trailing comma */
        "{'server': 'counter'}",
        "",                 /* empty */
        "[\"counter\", 1]", /* JSON, but not an object */
        "\"counter\"",
        "null",
        ("{\"server\": \"count\xff\xfe"
         "er\", \"message\": \"get_count\"}"),                                /* not UTF-8 */
        "{\"server\": \"counter\", \"server\": \"journal\", \"message\": 1}", /* dup key */
    };

    for (size_t p = 0; p < sizeof(body_paths) / sizeof(body_paths[0]); p++)
        for (size_t b = 0; b < sizeof(bodies) / sizeof(bodies[0]); b++)
            expect(&fx->srv, "POST", body_paths[p], bodies[b], 400, "bad_request");
    still_serving(&fx->srv);
    H_PASS(fx);
}

static void test_wrongly_typed_fields_are_400_bad_request(void **state)
{
    h_fixture_t *fx = *state;
    static const struct {
        const char *path, *body;
    } cases[] = {
        {"/call", "{\"server\": 5, \"message\": \"get_count\"}"},
        {"/call", "{\"server\": [\"counter\"], \"message\": \"get_count\"}"},
        {"/call", "{\"server\": null, \"message\": \"get_count\"}"},
        {"/call", "{\"server\": \"counter\", \"message\": \"get_count\", \"timeout_ms\": \"100\"}"},
        {"/call", "{\"server\": \"counter\", \"message\": \"get_count\", \"timeout_ms\": 1.5}"},
        {"/call", "{\"server\": \"counter\", \"message\": \"get_count\", \"timeout_ms\": null}"},
        {"/cast", "{\"server\": 1, \"message\": \"increment\"}"},
        {"/send", "{\"server\": true, \"message\": \"x\"}"},
        {"/send_after", "{\"server\": \"counter\", \"message\": \"x\", \"delay_ms\": \"10\"}"},
        {"/send_after", "{\"server\": \"counter\", \"message\": \"x\", \"delay_ms\": 2.5}"},
        {"/servers", "{\"name\": 7, \"behaviour\": \"counter\"}"},
        {"/servers", "{\"name\": \"c\", \"behaviour\": [\"counter\"]}"},
        {"/servers", "{\"name\": \"c\", \"behaviour\": \"counter\", \"restart\": \"forever\"}"},
        {"/servers", "{\"name\": \"c\", \"behaviour\": \"counter\", \"restart\": 1}"},
        {"/servers", "{\"name\": \"\", \"behaviour\": \"counter\"}"},
        {"/call", "{\"server\": \"count\\u0000er\", \"message\": \"get_count\"}"},
        {"/servers", "{\"name\": \"" LONG_NAME "\", \"behaviour\": \"counter\"}"},
        {"/call", "{\"server\": \"" LONG_NAME "\", \"message\": \"get_count\"}"},
        {"/servers", "{\"name\": \"a\\u0000b\", \"behaviour\": \"counter\"}"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect(&fx->srv, "POST", cases[i].path, cases[i].body, 400, "bad_request");
    /* None of them started anything or changed the counter. */
    expect(&fx->srv, "GET", "/servers/c", NULL, 404, "no_such_server");
    still_serving(&fx->srv);
    H_PASS(fx);
}

static void test_missing_fields_are_400_bad_request(void **state)
{
    h_fixture_t *fx = *state;
    static const struct {
        const char *path, *body;
    } cases[] = {
        {"/call", "{\"message\": \"get_count\"}"},
        {"/call", "{\"server\": \"counter\"}"},
        {"/call", "{}"},
        {"/cast", "{\"message\": \"increment\"}"},
        {"/cast", "{\"server\": \"counter\"}"},
        {"/send", "{\"server\": \"counter\"}"},
        {"/send_after", "{\"server\": \"counter\", \"message\": \"x\"}"},
        {"/send_after", "{\"message\": \"x\", \"delay_ms\": 10}"},
        {"/servers", "{\"behaviour\": \"counter\"}"},
        {"/servers", "{\"name\": \"c\"}"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect(&fx->srv, "POST", cases[i].path, cases[i].body, 400, "bad_request");
    still_serving(&fx->srv);
    H_PASS(fx);
}

static void test_deeply_nested_json_is_refused_and_survived(void **state)
{
    h_fixture_t *fx = *state;
    const size_t depth = 100000;
    size_t len = 0;
    char *body = malloc(2 * depth + 128);
    h_resp_t r;

    assert_non_null(body);
    len += (size_t)sprintf(body, "{\"server\": \"journal\", \"message\": [\"add_entry\", ");
    memset(body + len, '[', depth);
    len += depth;
    memset(body + len, ']', depth);
    len += depth;
    memcpy(body + len, "]}", 3);
    h_request(&fx->srv, "POST", "/cast", body, &r);
    h_assert_error(&r, 400, "bad_request");
    h_resp_close(&r);
    free(body);
    still_serving(&fx->srv);
    H_PASS(fx);
}

/* Bodies nest at most 64 arrays and objects deep by default (the body's own object counts):
 * 64 is accepted, 65 is refused with a message that says why. */
static char *nested_cast(size_t k)
{
    char *body = malloc(2 * k + 128);
    size_t len;

    assert_non_null(body);
    len = (size_t)sprintf(body, "{\"server\": \"journal\", \"message\": [\"add_entry\", ");
    memset(body + len, '[', k);
    len += k;
    memset(body + len, ']', k);
    len += k;
    memcpy(body + len, "]}", 3);
    return body;
}

static void test_the_nesting_limit_is_exact(void **state)
{
    h_fixture_t *fx = *state;
    char *ok = nested_cast(62), *deep = nested_cast(63); /* 2 + k levels */
    h_resp_t r;

    h_request(&fx->srv, "POST", "/cast", ok, &r);
    assert_int_equal(r.status, 202);
    h_resp_close(&r);
    h_request(&fx->srv, "POST", "/cast", deep, &r);
    h_assert_error(&r, 400, "bad_request");
    assert_non_null(strstr(r.body, "deeper than 64"));
    h_resp_close(&r);
    free(ok);
    free(deep);
    still_serving(&fx->srv);
    H_PASS(fx);
}

static void test_a_timeout_out_of_range_is_400_bad_request(void **state)
{
    h_fixture_t *fx = *state;
    static const char *const bodies[] = {
        "{\"server\": \"counter\", \"message\": \"get_count\", \"timeout_ms\": -1}",
        "{\"server\": \"counter\", \"message\": \"get_count\", \"timeout_ms\": 300001}",
        "{\"server\": \"counter\", \"message\": \"get_count\", \"timeout_ms\": 1000000000000}",
        ("{\"server\": \"counter\", \"message\": \"get_count\", "
         "\"timeout_ms\": 99999999999999999999999}"),
    };
    h_resp_t r;

    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
        expect(&fx->srv, "POST", "/call", bodies[i], 400, "bad_request");
    expect(&fx->srv, "POST", "/send_after",
           "{\"server\": \"counter\", \"message\": \"x\", \"delay_ms\": -5}", 400, "bad_request");
    /* The largest timeout accepted by default (300000 ms) is fine. */
    h_request(&fx->srv, "POST", "/call",
              "{\"server\": \"counter\", \"message\": \"get_count\", \"timeout_ms\": 300000}", &r);
    h_assert_reply(&r, "0");
    h_resp_close(&r);
    H_PASS(fx);
}

/* {"server": "counter", "message": "xxxx..."} of exactly len bytes. */
static char *body_of_size(size_t len)
{
    static const char head[] = "{\"server\": \"counter\", \"message\": \"";
    static const char tail[] = "\"}";
    char *s = malloc(len + 1);

    assert_non_null(s);
    assert_true(len > sizeof(head) + sizeof(tail));
    memcpy(s, head, sizeof(head) - 1);
    memset(s + sizeof(head) - 1, 'x', len - (sizeof(head) - 1) - (sizeof(tail) - 1));
    memcpy(s + len - (sizeof(tail) - 1), tail, sizeof(tail));
    assert_int_equal(strlen(s), len);
    return s;
}

static void test_an_oversize_body_is_413_too_large(void **state)
{
    h_fixture_t *fx = *state;
    const size_t limit = 1024 * 1024; /* the default max_body_bytes */
    char *big = body_of_size(limit + 1), *fits = body_of_size(limit - 1024);
    h_resp_t r;

    h_request(&fx->srv, "POST", "/cast", big, &r);
    h_assert_error(&r, 413, "too_large");
    h_resp_close(&r);
    h_request(&fx->srv, "POST", "/call", big, &r);
    h_assert_error(&r, 413, "too_large");
    h_resp_close(&r);
    /* Far larger bodies too (the server may stop reading early; the answer is still 413). */
    free(big);
    big = body_of_size(8 * limit);
    h_request(&fx->srv, "POST", "/cast", big, &r);
    h_assert_error(&r, 413, "too_large");
    h_resp_close(&r);
    free(big);

    /* Just under the limit is accepted (the counter ignores an unknown cast). */
    h_request(&fx->srv, "POST", "/cast", fits, &r);
    assert_int_equal(r.status, 202);
    h_resp_close(&r);
    free(fits);
    still_serving(&fx->srv);
    H_PASS(fx);
}

static void test_a_configured_body_limit_is_enforced(void **state)
{
    const char *args[] = {"--max-body-bytes", "1024", NULL};
    h_opts_t opts = {.args = args};
    h_fixture_t *fx = *state;
    char *big = body_of_size(1025), *fits = body_of_size(1024);
    h_resp_t r;

    h_fixture_restart(fx, &opts);

    h_request(&fx->srv, "POST", "/call", big, &r);
    h_assert_error(&r, 413, "too_large");
    h_resp_close(&r);
    h_request(&fx->srv, "POST", "/cast", fits, &r);
    assert_int_equal(r.status, 202);
    h_resp_close(&r);
    free(big);
    free(fits);
    still_serving(&fx->srv);
    H_PASS(fx);
}

static void test_an_unknown_server_is_404_no_such_server(void **state)
{
    h_fixture_t *fx = *state;

    expect(&fx->srv, "POST", "/call", "{\"server\": \"nobody\", \"message\": \"get_count\"}", 404,
           "no_such_server");
    expect(&fx->srv, "POST", "/cast", "{\"server\": \"nobody\", \"message\": \"increment\"}", 404,
           "no_such_server");
    expect(&fx->srv, "POST", "/send", "{\"server\": \"nobody\", \"message\": \"x\"}", 404,
           "no_such_server");
    expect(&fx->srv, "POST", "/send_after",
           "{\"server\": \"nobody\", \"message\": \"x\", \"delay_ms\": 10}", 404, "no_such_server");
    expect(&fx->srv, "GET", "/servers/nobody", NULL, 404, "no_such_server");
    expect(&fx->srv, "DELETE", "/servers/nobody", NULL, 404, "no_such_server");
    H_PASS(fx);
}

static void test_an_unknown_timer_is_404_no_such_timer(void **state)
{
    h_fixture_t *fx = *state;

    expect(&fx->srv, "GET", "/timers/987654321", NULL, 404, "no_such_timer");
    expect(&fx->srv, "DELETE", "/timers/987654321", NULL, 404, "no_such_timer");
    /* docs/API.md: references are opaque and cannot be forged, so anything that is not one
     * POST /send_after gave is 404 no_such_timer, whatever it looks like. */
    expect(&fx->srv, "GET", "/timers/abc", NULL, 404, "no_such_timer");
    expect(&fx->srv, "DELETE", "/timers/0", NULL, 404, "no_such_timer");
    expect(&fx->srv, "GET", "/timers/-3", NULL, 404, "no_such_timer");
    expect(&fx->srv, "GET", "/timers/99999999999999999999999", NULL, 404, "no_such_timer");
    expect(&fx->srv, "GET", "/timers/0000000000000004cdc706447a903bdb774efcf771984afa", NULL, 404,
           "no_such_timer");
    H_PASS(fx);
}

static void test_an_unknown_path_is_404_not_found(void **state)
{
    h_fixture_t *fx = *state;
    static const struct {
        const char *method, *path;
    } cases[] = {
        {"GET", "/nope"},         {"POST", "/calls"},       {"GET", "/servers/a/b"},
        {"GET", "/call/counter"}, {"DELETE", "/nope"},      {"GET", "/timers/"},
        {"POST", "/nope"},        {"GET", "/healthz/more"}, {"PUT", "/nope"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect(&fx->srv, cases[i].method, cases[i].path,
               strcmp(cases[i].method, "POST") == 0 ? "{}" : NULL, 404, "not_found");
    H_PASS(fx);
}

static void test_a_name_too_long_in_a_path_is_400(void **state)
{
    h_fixture_t *fx = *state;
    char path[400];
    int n = snprintf(path, sizeof(path), "/servers/");

    memset(path + n, 'a', 256); /* one byte past the longest name */
    path[n + 256] = '\0';
    expect(&fx->srv, "GET", path, NULL, 400, "bad_request");
    expect(&fx->srv, "DELETE", path, NULL, 400, "bad_request");
    memcpy(path, "/behaviours/", 12);
    memset(path + 12, 'b', 256);
    path[12 + 256] = '\0';
    expect(&fx->srv, "GET", path, NULL, 400, "bad_request");
    /* 255 bytes is a name: there is just no such server. */
    path[9 + 255] = '\0';
    memcpy(path, "/servers/", 9);
    memset(path + 9, 'a', 255);
    expect(&fx->srv, "GET", path, NULL, 404, "no_such_server");
    H_PASS(fx);
}

static void test_many_short_header_lines_get_a_json_431(void **state)
{
    h_fixture_t *fx = *state;
    static char lines[70][16];
    const char *headers[71];
    h_resp_t r;

    /* 70 lines of 10 bytes fit --max-header-bytes (700 of 4096) but, at about 60 bytes of
     * libmicrohttpd's per line, leave the answer no room: refused while a JSON 431 fits. */
    for (int i = 0; i < 70; i++) {
        snprintf(lines[i], sizeof(lines[i]), "X-%03d: 0", i);
        headers[i] = lines[i];
    }
    headers[70] = NULL;
    h_req_t req = {.method = "GET", .path = "/healthz", .headers = headers};
    h_request_ex(&fx->srv, &req, &r);
    h_assert_error(&r, 431, "headers_too_large");
    h_resp_close(&r);
    /* 30 such lines are served. */
    headers[30] = NULL;
    h_request_ex(&fx->srv, &req, &r);
    assert_int_equal(r.status, 200);
    h_resp_close(&r);
    H_PASS(fx);
}

static void expect_405(const h_server_t *srv, const char *method, const char *path,
                       const char *const *allowed, const char *const *refused)
{
    h_resp_t r;

    h_request(srv, method, path, strcmp(method, "POST") == 0 ? "{}" : NULL, &r);
    if (r.status != 405)
        fail_msg("%s %s: expected 405, got %ld %s", method, path, r.status, r.body);
    assert_true(json_is_object(r.json));
    assert_non_null(h_str(r.json, "error"));
    assert_non_null(h_str(r.json, "message"));
    if (r.allow[0] == '\0')
        fail_msg("%s %s: 405 without an Allow header", method, path);
    for (size_t i = 0; allowed[i] != NULL; i++)
        if (strstr(r.allow, allowed[i]) == NULL)
            fail_msg("%s %s: Allow \"%s\" lacks %s", method, path, r.allow, allowed[i]);
    for (size_t i = 0; refused != NULL && refused[i] != NULL; i++)
        if (strstr(r.allow, refused[i]) != NULL)
            fail_msg("%s %s: Allow \"%s\" offers %s", method, path, r.allow, refused[i]);
    h_resp_close(&r);
}

static void test_a_wrong_method_is_405_with_allow(void **state)
{
    h_fixture_t *fx = *state;
    const char *post[] = {"POST", NULL}, *get[] = {"GET", NULL};
    const char *get_post[] = {"GET", "POST", NULL}, *get_delete[] = {"GET", "DELETE", NULL};
    const char *no_post[] = {"POST", NULL}, *no_get[] = {"GET", NULL};
    const char *get_put_delete[] = {"GET", "PUT", "DELETE", NULL};
    h_resp_t r;

    expect_405(&fx->srv, "GET", "/call", post, no_get);
    expect_405(&fx->srv, "DELETE", "/cast", post, no_get);
    expect_405(&fx->srv, "PUT", "/send", post, NULL);
    expect_405(&fx->srv, "GET", "/send_after", post, NULL);
    expect_405(&fx->srv, "POST", "/healthz", get, no_post);
    expect_405(&fx->srv, "DELETE", "/metrics", get, no_post);
    expect_405(&fx->srv, "DELETE", "/behaviours", get_post, NULL);
    expect_405(&fx->srv, "POST", "/behaviours/counter", get_put_delete, no_post);
    expect_405(&fx->srv, "POST", "/events", get, no_post);
    expect_405(&fx->srv, "PUT", "/servers", get_post, NULL);
    expect_405(&fx->srv, "DELETE", "/servers", get_post, NULL);
    expect_405(&fx->srv, "POST", "/servers/counter", get_delete, no_post);
    expect_405(&fx->srv, "PUT", "/timers/1", get_delete, no_post);

    /* The 405 changed nothing: the counter is still there. */
    h_request(&fx->srv, "GET", "/servers/counter", NULL, &r);
    assert_int_equal(r.status, 200);
    h_resp_close(&r);
    H_PASS(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_malformed_json_is_400_bad_request, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_wrongly_typed_fields_are_400_bad_request, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_missing_fields_are_400_bad_request, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_the_nesting_limit_is_exact, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_deeply_nested_json_is_refused_and_survived, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_a_timeout_out_of_range_is_400_bad_request, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_an_oversize_body_is_413_too_large, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_a_configured_body_limit_is_enforced, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_an_unknown_server_is_404_no_such_server, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_an_unknown_timer_is_404_no_such_timer, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_an_unknown_path_is_404_not_found, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_a_name_too_long_in_a_path_is_400, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_many_short_header_lines_get_a_json_431, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_a_wrong_method_is_405_with_allow, h_setup, h_teardown),
    };

    h_init(170);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
