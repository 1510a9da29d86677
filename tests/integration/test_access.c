/*
 * test_access.c: bearer tokens, CORS and the dashboard's security headers, over real HTTP.
 *
 * genserv runs with a full token (from the environment, as a container would set it) and a
 * read-only token. Without a token, or with a wrong one, every API endpoint answers 401 with a
 * Bearer challenge; the read-only token may look (GET, HEAD, also as ?access_token= for
 * EventSource) but not touch (403); the full token may do everything. The dashboard's files
 * and /healthz need no token, and the dashboard carries a Content-Security-Policy without
 * inline script. CORS is off unless origins are configured, and then answers only them.
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

#define TOKEN      "s3cret-token"
#define READ_TOKEN "look-only"
#define ORIGIN     "http://dash.example"

static int setup_tokens(void **state)
{
    static const char *const args[] = {"--read-token", READ_TOKEN, NULL};
    static const char *const env[] = {"GENSERV_TOKEN=" TOKEN, NULL};
    h_opts_t opts = {.args = args, .env = env};

    return h_setup_with(state, &opts);
}

static int setup_cors(void **state)
{
    static const char *const args[] = {"--cors-origins", "http://other.example, " ORIGIN, NULL};
    h_opts_t opts = {.args = args};

    return h_setup_with(state, &opts);
}

/* One request with an optional Authorization header and extra header; returns the status. */
static long ask(const h_server_t *srv, const char *method, const char *path, const char *body,
                const char *token, const char *extra, h_resp_t *r)
{
    char auth[128];
    const char *headers[3] = {NULL, NULL, NULL};
    size_t n = 0;
    h_req_t req = {.method = method, .path = path, .body = body, .headers = headers};

    if (token != NULL) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        headers[n++] = auth;
    }
    if (extra != NULL)
        headers[n++] = extra;
    h_request_ex(srv, &req, r);
    return r->status;
}

static void expect_status(const h_server_t *srv, const char *method, const char *path,
                          const char *body, const char *token, long status, const char *code)
{
    h_resp_t r;

    ask(srv, method, path, body, token, NULL, &r);
    if (r.status != status)
        fprintf(stderr, "%s %s (token %s): %ld %s\n", method, path, token ? token : "none",
                r.status, r.body);
    assert_int_equal(r.status, status);
    if (code != NULL)
        h_assert_error(&r, status, code);
    h_resp_close(&r);
}

static void test_no_token_is_401_with_a_challenge_everywhere_but_the_dashboard(void **state)
{
    h_fixture_t *fx = *state;
    static const char *const paths[] = {"/servers", "/servers/counter", "/behaviours",
                                        "/metrics", "/timers/1",        "/events"};
    char buf[128];
    h_resp_t r;

    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        expect_status(&fx->srv, "GET", paths[i], NULL, NULL, 401, "unauthorized");
    expect_status(&fx->srv, "POST", "/call", "{\"server\":\"counter\",\"message\":\"get_count\"}",
                  NULL, 401, "unauthorized");
    expect_status(&fx->srv, "POST", "/cast", "{\"server\":\"counter\",\"message\":\"increment\"}",
                  NULL, 401, "unauthorized");
    expect_status(&fx->srv, "DELETE", "/servers/counter", NULL, NULL, 401, "unauthorized");

    ask(&fx->srv, "GET", "/servers", NULL, NULL, NULL, &r);
    assert_non_null(h_header(&r, "WWW-Authenticate", buf, sizeof(buf)));
    assert_non_null(strstr(buf, "Bearer"));
    h_resp_close(&r);

    /* A wrong token, one of the same length, and a prefix of the right one are all refused. */
    expect_status(&fx->srv, "GET", "/servers", NULL, "nope", 401, "unauthorized");
    expect_status(&fx->srv, "GET", "/servers", NULL, "s3cret-tokem", 401, "unauthorized");
    expect_status(&fx->srv, "GET", "/servers", NULL, "s3cret", 401, "unauthorized");

    /* The cast above was refused: nothing reached the counter. */
    ask(&fx->srv, "POST", "/call", "{\"server\":\"counter\",\"message\":\"get_count\"}", TOKEN,
        NULL, &r);
    h_assert_reply(&r, "0");
    h_resp_close(&r);

    /* The dashboard and the health check need no token. */
    expect_status(&fx->srv, "GET", "/", NULL, NULL, 200, NULL);
    expect_status(&fx->srv, "GET", "/healthz", NULL, NULL, 200, NULL);
    H_PASS(fx);
}

static void test_the_full_token_may_do_everything(void **state)
{
    h_fixture_t *fx = *state;
    h_resp_t r;

    expect_status(&fx->srv, "POST", "/cast", "{\"server\":\"counter\",\"message\":\"increment\"}",
                  TOKEN, 202, NULL);
    ask(&fx->srv, "POST", "/call", "{\"server\":\"counter\",\"message\":\"get_count\"}", TOKEN,
        NULL, &r);
    h_assert_reply(&r, "1");
    h_resp_close(&r);
    expect_status(&fx->srv, "POST", "/servers", "{\"name\":\"c2\",\"behaviour\":\"counter\"}",
                  TOKEN, 201, NULL);
    expect_status(&fx->srv, "GET", "/servers/c2", NULL, TOKEN, 200, NULL);
    expect_status(&fx->srv, "DELETE", "/servers/c2", NULL, TOKEN, 200, NULL);
    expect_status(&fx->srv, "GET", "/metrics", NULL, TOKEN, 200, NULL);
    H_PASS(fx);
}

static void test_the_read_token_may_look_but_not_touch(void **state)
{
    h_fixture_t *fx = *state;
    h_resp_t r;

    expect_status(&fx->srv, "GET", "/servers", NULL, READ_TOKEN, 200, NULL);
    expect_status(&fx->srv, "GET", "/servers/counter", NULL, READ_TOKEN, 200, NULL);
    expect_status(&fx->srv, "HEAD", "/behaviours", NULL, READ_TOKEN, 200, NULL);
    expect_status(&fx->srv, "POST", "/cast", "{\"server\":\"counter\",\"message\":\"increment\"}",
                  READ_TOKEN, 403, "forbidden");
    expect_status(&fx->srv, "POST", "/call", "{\"server\":\"counter\",\"message\":\"get_count\"}",
                  READ_TOKEN, 403, "forbidden");
    expect_status(&fx->srv, "DELETE", "/servers/counter", NULL, READ_TOKEN, 403, "forbidden");
    /* The refused cast changed nothing, and the refused stop stopped nothing. */
    ask(&fx->srv, "POST", "/call", "{\"server\":\"counter\",\"message\":\"get_count\"}", TOKEN,
        NULL, &r);
    h_assert_reply(&r, "0");
    h_resp_close(&r);

    /* EventSource cannot send headers: GET may carry the token as ?access_token=. */
    expect_status(&fx->srv, "GET", "/servers?access_token=" READ_TOKEN, NULL, NULL, 200, NULL);
    expect_status(&fx->srv, "GET", "/servers?access_token=wrong", NULL, NULL, 401, "unauthorized");
    /* ...but a write may not. */
    expect_status(&fx->srv, "POST", "/cast?access_token=" TOKEN,
                  "{\"server\":\"counter\",\"message\":\"increment\"}", NULL, 401, "unauthorized");
    H_PASS(fx);
}

static void test_the_dashboard_has_a_strict_content_security_policy(void **state)
{
    h_fixture_t *fx = *state;
    char csp[512], buf[128];
    h_resp_t r;

    ask(&fx->srv, "GET", "/", NULL, NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(h_header(&r, "Content-Security-Policy", csp, sizeof(csp)));
    assert_non_null(strstr(csp, "script-src 'self'"));
    assert_non_null(strstr(csp, "frame-ancestors 'none'"));
    assert_null(strstr(csp, "unsafe-inline"));
    assert_null(strstr(csp, "unsafe-eval"));
    assert_non_null(h_header(&r, "X-Content-Type-Options", buf, sizeof(buf)));
    assert_string_equal(buf, "nosniff");
    assert_non_null(h_header(&r, "X-Frame-Options", buf, sizeof(buf)));
    assert_string_equal(buf, "DENY");
    h_resp_close(&r);
    /* Without CORS configured, no page elsewhere may read the API's answers. */
    ask(&fx->srv, "GET", "/servers", NULL, TOKEN, "Origin: " ORIGIN, &r);
    assert_int_equal(r.status, 200);
    assert_null(h_header(&r, "Access-Control-Allow-Origin", buf, sizeof(buf)));
    h_resp_close(&r);
    expect_status(&fx->srv, "OPTIONS", "/call", NULL, NULL, 405, NULL);
    H_PASS(fx);
}

static void test_cors_answers_configured_origins_only(void **state)
{
    h_fixture_t *fx = *state;
    char buf[128];
    h_resp_t r;

    ask(&fx->srv, "GET", "/servers", NULL, NULL, "Origin: " ORIGIN, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(h_header(&r, "Access-Control-Allow-Origin", buf, sizeof(buf)));
    assert_string_equal(buf, ORIGIN);
    h_resp_close(&r);

    ask(&fx->srv, "GET", "/servers", NULL, NULL, "Origin: http://evil.example", &r);
    assert_int_equal(r.status, 200);
    assert_null(h_header(&r, "Access-Control-Allow-Origin", buf, sizeof(buf)));
    h_resp_close(&r);

    /* The preflight of a POST /call from an allowed page. */
    ask(&fx->srv, "OPTIONS", "/call", NULL, NULL, "Origin: " ORIGIN, &r);
    assert_int_equal(r.status, 204);
    assert_non_null(h_header(&r, "Access-Control-Allow-Methods", buf, sizeof(buf)));
    assert_non_null(strstr(buf, "POST"));
    assert_non_null(h_header(&r, "Access-Control-Allow-Headers", buf, sizeof(buf)));
    assert_non_null(strstr(buf, "Content-Type"));
    h_resp_close(&r);
    /* ...and from a page that is not. */
    ask(&fx->srv, "OPTIONS", "/call", NULL, NULL, "Origin: http://evil.example", &r);
    assert_int_equal(r.status, 405);
    h_resp_close(&r);
    H_PASS(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_no_token_is_401_with_a_challenge_everywhere_but_the_dashboard, setup_tokens,
            h_teardown),
        cmocka_unit_test_setup_teardown(test_the_full_token_may_do_everything, setup_tokens,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_the_read_token_may_look_but_not_touch, setup_tokens,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_the_dashboard_has_a_strict_content_security_policy,
                                        h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_cors_answers_configured_origins_only, setup_cors,
                                        h_teardown),
    };

    h_init(150);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
