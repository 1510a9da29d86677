/*
 * test_limits.c: issue 12, "Bounded under hostile input": the cases of the issue that
 * need a second request on the same connection, a configured limit or a burst, each against
 * the real binary, each written so that the behaviour before its fix fails it.
 *
 * Framing: every request head RFC 9112 says to refuse is sent with a second, well-formed
 * request pipelined behind it on the same connection. The head must get exactly one answer,
 * a JSON 400 with Connection: close, the connection must then be closed, and the pipelined
 * request must never be answered: that is what stops a proxy and genserv from disagreeing on
 * where a request ends (smuggling). Limits: the bodies being received at once, pending timers
 * in all, event streams whose client stops reading, headers past --max-header-bytes. Burst:
 * many new connections at once, every request answered and named when one is not.
 *
 * Memory: one test measures the genserv child's VmRSS (/proc/PID/status) with generous
 * margins. Under ASan (freed memory sits in a quarantine), TSan (its own allocator) and
 * valgrind (the PID is valgrind's) RSS says little about what genserv holds: there the test
 * asserts the bound's observable effect (every padded call held, no 503) and prints that the
 * RSS assertion was skipped and why. Under valgrind (GS_TEST_WRAPPER) the burst is scaled
 * down, printed as well.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "harness.h"

#define MiB (1024L * 1024L)

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                    */
/* ---------------------------------------------------------------------------------------- */

static double metric(const h_fixture_t *fx, const char *name)
{
    return h_metrics_value(&fx->srv, name);
}

/* POST path body; returns the status (the response is released). */
static long post_status(const h_server_t *srv, const char *path, const char *body)
{
    h_resp_t r;
    long status;

    h_request(srv, "POST", path, body, &r);
    status = r.status;
    h_resp_close(&r);
    return status;
}

static int occurrences(const char *hay, const char *needle)
{
    int n = 0;

    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* A pipelined request that must never be answered when it follows a refused head. It names a
 * path of its own so that an answer to it cannot be mistaken for the refusal. */
static const char pipelined[] = "GET /healthz?pipelined HTTP/1.1\r\nHost: x\r\n\r\n";

/*
 * Send head (a whole request, body included) and the pipelined request after it in one write
 * on a new connection, read until genserv closes it (or H_WAIT_MS), and assert: exactly one
 * answer, `HTTP/1.1 status`, Connection: close, a JSON body {"error": code, "message": ...}
 * of exactly its Content-Length with nothing after it, and the connection closed. A second
 * answer (the pipelined request served) or an answer that never comes fails with what was
 * read. `what` names the case in a failure.
 */
static void assert_refused_alone(const h_server_t *srv, const char *what, const char *head,
                                 size_t head_len, int status, const char *code)
{
    size_t len = head_len + strlen(pipelined), got;
    char *req = malloc(len), buf[8192], line[32], clen[32];
    const char *body, *cl;
    int fd = h_raw_connect(srv);
    bool closed;
    json_t *j;

    assert_non_null(req);
    assert_true(fd >= 0);
    memcpy(req, head, head_len);
    memcpy(req + head_len, pipelined, strlen(pipelined));
    /* genserv may answer and close before it has read everything; lingering lets the write
     * finish, and a failed write still leaves the answer to be read. */
    (void)h_raw_send(fd, req, len);
    got = h_raw_read(fd, buf, sizeof(buf), NULL, 0, H_WAIT_MS, &closed);
    close(fd);
    free(req);

    snprintf(line, sizeof(line), "HTTP/1.1 %d ", status);
    body = strstr(buf, "\r\n\r\n");
    if (strncmp(buf, line, strlen(line)) != 0 || body == NULL)
        fail_msg("%s: expected one \"%s...\" answer, got (%zu bytes, closed %d): %.800s", what,
                 line, got, (int)closed, buf);
    if (occurrences(buf, "\nHTTP/1.") != 0)
        fail_msg("%s: more than one status line on the connection (the pipelined request "
                 "answered, or one answer's head written twice): %.1500s",
                 what, buf);
    if (strcasestr(buf, "\r\nConnection: close\r\n") == NULL)
        fail_msg("%s: no Connection: close in: %.800s", what, buf);
    if (strcasestr(buf, "\r\nContent-Type: application/json") == NULL)
        fail_msg("%s: not a JSON answer: %.800s", what, buf);
    body += 4;
    cl = strcasestr(buf, "\r\nContent-Length: ");
    assert_non_null(cl);
    snprintf(clen, sizeof(clen), "%zu", strlen(body));
    if (strncmp(cl + strlen("\r\nContent-Length: "), clen, strlen(clen)) != 0)
        fail_msg("%s: bytes after the answer's body (%zu read after the head): %.1500s", what,
                 strlen(body), buf);
    j = json_loads(body, 0, NULL);
    if (j == NULL || h_str(j, "error") == NULL || strcmp(h_str(j, "error"), code) != 0 ||
        h_str(j, "message") == NULL || h_str(j, "message")[0] == '\0')
        fail_msg("%s: expected {\"error\": \"%s\", \"message\": ...}, got: %s", what, code, body);
    json_decref(j);
    if (!closed)
        fail_msg("%s: the connection stayed open %d ms after the answer", what, H_WAIT_MS);
}

/* The same for a head given as a C string. */
static void assert_head_refused(const h_server_t *srv, const char *what, const char *head)
{
    assert_refused_alone(srv, what, head, strlen(head), 400, "bad_request");
}

/* GET /healthz still answers (on a new connection). */
static void still_serving(const h_server_t *srv)
{
    h_resp_t r;

    h_request(srv, "GET", "/healthz", NULL, &r);
    assert_int_equal(r.status, 200);
    h_resp_close(&r);
}

/* How many GET /healthz?pipelined genserv has answered: none may be, ever. They are counted
 * under the route /healthz, so the test compares before and after instead. */
static double healthz_requests(const h_server_t *srv)
{
    h_resp_t r;
    double n;

    h_request(srv, "GET", "/metrics", NULL, &r);
    assert_int_equal(r.status, 200);
    n = h_metric_sum(r.body,
                     "genserv_http_requests_total{route=\"/healthz\",method=\"GET\",code=\"200\"}");
    h_resp_close(&r);
    return n;
}

/* ---------------------------------------------------------------------------------------- */
/* 7. Content-Length and Transfer-Encoding together                                           */
/* ---------------------------------------------------------------------------------------- */

/*
 * Guards c12f278 (gateway: refuse the request heads RFC 9112 says to). Before it,
 * libmicrohttpd framed the body by Transfer-Encoding, so "0\r\n\r\n" ended it and the
 * request after it ran: two answers on the connection (a 202 and the pipelined one's 200).
 */
static void test_content_length_with_transfer_encoding_smuggles_nothing(void **state)
{
    h_fixture_t *fx = *state;
    double healthz = healthz_requests(&fx->srv);

    assert_head_refused(&fx->srv, "Content-Length and Transfer-Encoding",
                        "POST /cast HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    /* The same with the headers the other way round, and Transfer-Encoding's case changed. */
    assert_head_refused(&fx->srv, "transfer-encoding before content-length",
                        "POST /cast HTTP/1.1\r\nHost: x\r\ntransfer-encoding: chunked\r\n"
                        "content-length: 5\r\n\r\n0\r\n\r\n");
    assert_true(healthz_requests(&fx->srv) == healthz);
    still_serving(&fx->srv);
    H_PASS(fx);
}

/* ---------------------------------------------------------------------------------------- */
/* 8. Two Content-Length headers that disagree                                                */
/* ---------------------------------------------------------------------------------------- */

/*
 * Guards c12f278. Before it, libmicrohttpd took one of the two values and answered 202: a
 * proxy that took the other would frame a different request after it.
 */
static void test_disagreeing_content_lengths_are_refused(void **state)
{
    h_fixture_t *fx = *state;
    static const char body[] = "{\"server\":\"counter\",\"message\":\"increment\"}"; /* 42 */
    double healthz = healthz_requests(&fx->srv);
    char head[512];

    snprintf(head, sizeof(head),
             "POST /cast HTTP/1.1\r\nHost: x\r\nContent-Length: 42\r\nContent-Length: 40\r\n\r\n%s",
             body);
    assert_head_refused(&fx->srv, "Content-Length 42 and 40", head);
    snprintf(head, sizeof(head),
             "POST /cast HTTP/1.1\r\nHost: x\r\ncontent-length: 42\r\nContent-Length: 43\r\n\r\n%s",
             body);
    assert_head_refused(&fx->srv, "content-length 42 and Content-Length 43", head);
    assert_true(healthz_requests(&fx->srv) == healthz);
    /* Neither cast ran. */
    assert_int_equal(h_call_int(&fx->srv, "counter", "\"get_count\""), 0);
    H_PASS(fx);
}

/* ---------------------------------------------------------------------------------------- */
/* 9. A Transfer-Encoding other than chunked                                                  */
/* ---------------------------------------------------------------------------------------- */

/*
 * Guards c12f278. Before it, libmicrohttpd read a body of unknown length until the client
 * closed: no answer at all until --request-timeout-s (30 s), so this test's 10 s read came
 * back empty. The answer must come at once, without the client closing its side.
 */
static void test_a_transfer_encoding_other_than_chunked_is_refused_at_once(void **state)
{
    h_fixture_t *fx = *state;
    static const char *const codings[] = {"gzip", "gzip, chunked", "chunked, gzip", "identity",
                                          "chunked, chunked"};
    double healthz = healthz_requests(&fx->srv);
    char head[256], what[64];

    for (size_t i = 0; i < sizeof(codings) / sizeof(codings[0]); i++) {
        int64_t t0 = h_now_ms();

        snprintf(head, sizeof(head),
                 "POST /cast HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: %s\r\n\r\n", codings[i]);
        snprintf(what, sizeof(what), "Transfer-Encoding: %s", codings[i]);
        assert_head_refused(&fx->srv, what, head);
        if (h_now_ms() - t0 > 5000)
            fail_msg("%s: answered only after %lld ms", what, (long long)(h_now_ms() - t0));
    }
    assert_true(healthz_requests(&fx->srv) == healthz);
    still_serving(&fx->srv);
    H_PASS(fx);
}

/* ---------------------------------------------------------------------------------------- */
/* 10. Host: none on HTTP/1.1, or two                                                         */
/* ---------------------------------------------------------------------------------------- */

/*
 * Guards c12f278 (and libmicrohttpd's strict mode for the missing Host). Before it, a request
 * with two Host headers was served (200), and which one a virtual-hosting proxy routed by was
 * anyone's guess.
 */
static void test_a_missing_or_second_host_header_is_refused(void **state)
{
    h_fixture_t *fx = *state;
    double healthz = healthz_requests(&fx->srv);
    h_resp_t r;

    assert_head_refused(&fx->srv, "two Host headers",
                        "GET /healthz HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n");
    assert_head_refused(&fx->srv, "two equal Host headers",
                        "GET /healthz HTTP/1.1\r\nHost: x\r\nHost: x\r\n\r\n");
    assert_head_refused(&fx->srv, "no Host on HTTP/1.1", "GET /healthz HTTP/1.1\r\n\r\n");
    assert_true(healthz_requests(&fx->srv) == healthz);
    /* HTTP/1.0 needs none, and one Host is fine. */
    {
        int fd = h_raw_connect(&fx->srv);
        char buf[2048];
        bool closed;

        assert_true(fd >= 0);
        assert_int_equal(h_raw_send(fd, "GET /healthz HTTP/1.0\r\n\r\n", 25), 0);
        h_raw_read(fd, buf, sizeof(buf), NULL, 0, H_WAIT_MS, &closed);
        close(fd);
        if (strncmp(buf, "HTTP/1.1 200 ", 13) != 0)
            fail_msg("HTTP/1.0 without Host: expected 200, got: %.400s", buf);
    }
    h_request(&fx->srv, "GET", "/healthz", NULL, &r);
    assert_int_equal(r.status, 200);
    h_resp_close(&r);
    H_PASS(fx);
}

/* ---------------------------------------------------------------------------------------- */
/* 10. Header names that are not tokens                                                       */
/* ---------------------------------------------------------------------------------------- */

/*
 * Guards c12f278. Before it, "Content-Length : 5" and names with separators or controls were
 * passed on as headers of their own and the request served: a proxy that reads
 * "Transfer-Encoding : chunked" as Transfer-Encoding frames the body differently from one
 * that ignores it.
 */
static void test_a_header_name_that_is_not_a_token_is_refused(void **state)
{
    h_fixture_t *fx = *state;
    static const struct {
        const char *what, *head;
    } cases[] = {
        {"whitespace before the colon", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Thing : y\r\n\r\n"},
        {"a tab before the colon", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Thing\t: y\r\n\r\n"},
        {"Transfer-Encoding with a space before the colon",
         "POST /cast HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding : chunked"
         "\r\n\r\n0\r\n\r\n"},
        {"a space inside the name", "GET /healthz HTTP/1.1\r\nHost: x\r\nX Thing: y\r\n\r\n"},
        {"a separator in the name", "GET /healthz HTTP/1.1\r\nHost: x\r\nX(Thing): y\r\n\r\n"},
        {"a slash in the name", "GET /healthz HTTP/1.1\r\nHost: x\r\nX/Thing: y\r\n\r\n"},
        {"a control character in the name",
         "GET /healthz HTTP/1.1\r\nHost: x\r\nX\x01Thing: y\r\n\r\n"},
    };
    double healthz = healthz_requests(&fx->srv);

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_head_refused(&fx->srv, cases[i].what, cases[i].head);
    assert_true(healthz_requests(&fx->srv) == healthz);
    still_serving(&fx->srv);
    H_PASS(fx);
}

/* ---------------------------------------------------------------------------------------- */
/* An encoded NUL in the path                                                                 */
/* ---------------------------------------------------------------------------------------- */

/*
 * Guards c12f278. Before it, the static handler cut the decoded path at the NUL and served
 * index.html for /index.html%00.js (200, text/html, kept open), and /servers/x%00y reached a
 * server named "x".
 */
static void test_an_encoded_nul_in_the_path_is_refused_not_served(void **state)
{
    h_fixture_t *fx = *state;
    static const char *const paths[] = {"/index.html%00.js", "/servers/counter%00x", "/healthz%00"};
    double healthz = healthz_requests(&fx->srv);
    char head[256], what[64];

    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        snprintf(head, sizeof(head), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", paths[i]);
        snprintf(what, sizeof(what), "GET %s", paths[i]);
        assert_head_refused(&fx->srv, what, head);
    }
    assert_true(healthz_requests(&fx->srv) == healthz);
    still_serving(&fx->srv);
    H_PASS(fx);
}

/* ---------------------------------------------------------------------------------------- */
/* Headers past --max-header-bytes                                                            */
/* ---------------------------------------------------------------------------------------- */

static int setup_small_headers(void **state)
{
    static const char *const args[] = {"--max-header-bytes", "2048", NULL};
    h_opts_t opts = {.args = args};

    return h_setup_with(state, &opts);
}

/*
 * Guards 84f566b (gateway: a JSON 431 headers_too_large of its own). Before it, only
 * libmicrohttpd's 431 existed, with an HTML body and only past the connection's memory: a
 * head of 3 KB within the default 6 KiB was served (200) whatever --max-header-bytes said.
 */
static void test_headers_past_max_header_bytes_get_a_json_431_and_a_close(void **state)
{
    h_fixture_t *fx = *state;
    double healthz = healthz_requests(&fx->srv);
    char head[4096], pad[3001];

    memset(pad, 'a', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    /* Many short headers adding up to the same are a defect of their own, kept out of this
     * file: from about 75 of them the connection's memory pool runs out (no answer at all,
     * then libmicrohttpd's HTML 431), whatever their bytes. */
    snprintf(head, sizeof(head), "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\n\r\n", pad);
    assert_refused_alone(&fx->srv, "one 3 KB header", head, strlen(head), 431, "headers_too_large");
    assert_true(healthz_requests(&fx->srv) == healthz);
    /* Just under the limit is served. */
    pad[1500] = '\0';
    snprintf(head, sizeof(head),
             "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\nConnection: close\r\n\r\n", pad);
    {
        int fd = h_raw_connect(&fx->srv);
        char buf[2048];
        bool closed;

        assert_true(fd >= 0);
        assert_int_equal(h_raw_send(fd, head, strlen(head)), 0);
        h_raw_read(fd, buf, sizeof(buf), NULL, 0, H_WAIT_MS, &closed);
        close(fd);
        if (strncmp(buf, "HTTP/1.1 200 ", 13) != 0)
            fail_msg("a 1.5 KB header under --max-header-bytes 2048: %.400s", buf);
    }
    H_PASS(fx);
}

/* ---------------------------------------------------------------------------------------- */
/* 1. Request bodies: bounded while they arrive, and none kept by a held call                 */
/* ---------------------------------------------------------------------------------------- */

enum { BODY = 1000000 }; /* bytes of each padded body; the budget is 2.5 MiB (2621440) */

static int setup_bodies_budget(void **state)
{
    static const char *const args[] = {"--max-bodies-bytes", "2621440", NULL};
    h_opts_t opts = {.args = args};

    return h_setup_with(state, &opts);
}

/* A JSON request body of exactly BODY bytes: {..."pad": "xxx..."} after prefix (malloc'd). */
static char *padded_body(const char *prefix)
{
    char *b = malloc(BODY + 1);
    size_t plen = strlen(prefix);

    assert_non_null(b);
    assert_true(plen + 16 < BODY);
    memcpy(b, prefix, plen);
    memcpy(b + plen, ", \"pad\": \"", 10);
    memset(b + plen + 10, 'x', BODY - plen - 12);
    memcpy(b + BODY - 2, "\"}", 3);
    return b;
}

/* A new connection that has sent the head of a POST path with a body of BODY bytes and all
 * of that body but its last byte, and then stalls: its body is being received. */
static int stalled_upload(const h_server_t *srv, const char *path, const char *body)
{
    char head[256];
    int fd = h_raw_connect(srv);

    assert_true(fd >= 0);
    snprintf(head, sizeof(head),
             "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             "Content-Length: %d\r\nConnection: close\r\n\r\n",
             path, BODY);
    assert_int_equal(h_raw_send(fd, head, strlen(head)), 0);
    assert_int_equal(h_raw_send(fd, body, BODY - 1), 0);
    return fd;
}

/* POST path with body (len bytes) on a new connection, written whole with blocking writes
 * (a write refused by a reset is remembered, not fatal), then read to the close. Returns the
 * status of the answer, 0 when there was none; the answer is in buf. */
static int post_whole(const h_server_t *srv, const char *path, const char *body, size_t len,
                      char *buf, size_t cap)
{
    char head[256];
    int fd = h_raw_connect(srv);
    bool closed;

    assert_true(fd >= 0);
    snprintf(head, sizeof(head),
             "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n",
             path, len);
    if (h_raw_send(fd, head, strlen(head)) == 0)
        (void)h_raw_send(fd, body, len);
    h_raw_read(fd, buf, cap, NULL, 0, H_WAIT_MS, &closed);
    close(fd);
    return strncmp(buf, "HTTP/1.1 ", 9) == 0 ? atoi(buf + 9) : 0;
}

/* Send the last byte of a stalled upload of body, read its answer to the close into buf.
 * Returns its status, 0 when there was none. */
static int finish_upload(int fd, const char *body, char *buf, size_t cap)
{
    bool closed;

    (void)h_raw_send(fd, body + BODY - 1, 1);
    h_raw_read(fd, buf, cap, NULL, 0, H_WAIT_MS, &closed);
    close(fd);
    return strncmp(buf, "HTTP/1.1 ", 9) == 0 ? atoi(buf + 9) : 0;
}

/*
 * Guards 8b10ea5 (request bodies bounded in all, --max-bodies-bytes) and the free at decode
 * that it builds on (issue 12.1: a held call kept its whole body until answered). Before
 * 8b10ea5 the flag did not exist and genserv refused to start; a gateway with the budget but
 * bodies kept until the answer would refuse the third padded held call below with 503.
 *
 * Two uploads of 1 MB stall one byte short of their end: they hold 2 to 2.1 MB of the 2.5 MiB
 * budget. A third 1 MB body cannot fit (503 overloaded, Retry-After, closed), a small one
 * still does (the bound is bytes, not requests); once the stalled ones go, 1 MB fits again.
 * Then twelve 1 MB calls held one after another by slow are all accepted: 12 MB of bodies
 * through a 2.5 MiB budget, because a held call keeps none of its body.
 */
static void test_bodies_being_received_are_bounded_and_held_calls_keep_none(void **state)
{
    enum { HELD = 12 };
    h_fixture_t *fx = *state;
    char *cast = padded_body("{\"server\": \"counter\", \"message\": \"increment\"");
    char *call = padded_body("{\"server\": \"slow\", \"message\": [\"sleep\", 120000], "
                             "\"timeout_ms\": 120000");
    h_async_t *held[HELD];
    char buf[4096];
    int64_t deadline, accepted = 0;
    long before = -1, during;
    h_resp_t r;

    /*
     * Nothing shows when genserv has read the two stalled bodies, so the third may arrive
     * while they still grow, and one of them may be the one refused instead (a refused body
     * is answered once it has all arrived). Whichever it is, three at once do not fit and any
     * two do: exactly one of the three is refused.
     */
    {
        int a = stalled_upload(&fx->srv, "/cast", cast);
        int b = stalled_upload(&fx->srv, "/cast", cast);
        char answers[3][1024];
        int statuses[3], refused = -1;

        statuses[2] = post_whole(&fx->srv, "/cast", cast, BODY, answers[2], sizeof(answers[2]));
        /* A small body fits beside any two: the bound is bytes, not requests. */
        assert_int_equal(
            post_status(&fx->srv, "/cast", "{\"server\": \"counter\", \"message\": \"increment\"}"),
            202);
        accepted++;
        statuses[0] = finish_upload(a, cast, answers[0], sizeof(answers[0]));
        statuses[1] = finish_upload(b, cast, answers[1], sizeof(answers[1]));
        for (int i = 0; i < 3; i++) {
            if (statuses[i] == 202) {
                accepted++;
                continue;
            }
            if (statuses[i] != 503 || refused != -1)
                fail_msg("three 1 MB bodies at once under a 2.5 MiB budget: expected one 503 and "
                         "two 202, got %d, %d and %d; the answers:\n%s\n%s\n%s",
                         statuses[0], statuses[1], statuses[2], answers[0], answers[1], answers[2]);
            refused = i;
        }
        if (refused == -1)
            fail_msg("three 1 MB bodies at once under a 2.5 MiB budget were all accepted");
        if (strstr(answers[refused], "\"overloaded\"") == NULL ||
            strcasestr(answers[refused], "\r\nRetry-After: ") == NULL ||
            strcasestr(answers[refused], "\r\nConnection: close\r\n") == NULL)
            fail_msg("past --max-bodies-bytes: expected 503 overloaded with Retry-After and "
                     "Connection: close, got: %.600s",
                     answers[refused]);
        if (refused != 2)
            fprintf(stderr,
                    "# the third body arrived while stalled upload %d still grew, and "
                    "that one was refused\n",
                    refused);
    }
    /* Their share came back with their answers: 1 MB fits again. */
    assert_int_equal(post_whole(&fx->srv, "/cast", cast, BODY, buf, sizeof(buf)), 202);
    accepted++;
    H_WAIT_UNTIL(h_call_int(&fx->srv, "counter", "\"get_count\"") == accepted, H_WAIT_MS);

    /* Held calls, one after another: each must be held before the next is sent. */
    if (!SANITIZED && !h_under_valgrind()) {
        before = h_rss_bytes(fx->srv.pid);
        assert_true(before > 0);
    }
    for (int i = 0; i < HELD; i++) {
        h_req_t req = {.method = "POST", .path = "/call", .body = call, .timeout_ms = 150000};

        held[i] = h_async_start(&fx->srv, &req);
        assert_non_null(held[i]);
        H_WAIT_UNTIL(metric(fx, "genserv_held_calls") == i + 1 || h_async_done(held[i]), H_WAIT_MS);
        if (h_async_done(held[i])) {
            h_resp_t *done = h_async_wait(held[i]);

            fail_msg("padded held call %d of %d was answered instead of held: %ld %s "
                     "(a held call still keeps its body's budget?)",
                     i + 1, HELD, done->status, done->body);
        }
    }
    if (before > 0) {
        /* 12 MB of bodies went through; what stays is twelve connections and call records.
         * The allocator returns freed pages within a second or so (dirty_decay_ms): wait for
         * it rather than sample once. */
        deadline = h_now_ms() + H_WAIT_MS;
        while ((during = h_rss_bytes(fx->srv.pid)) - before >= 8 * MiB) {
            if (h_now_ms() > deadline)
                fail_msg("RSS stayed %ld KB above its level before %d padded calls were held",
                         (during - before) / 1024, HELD);
            h_sleep_ms(50);
        }
    } else {
        fprintf(stderr,
                "# RSS not asserted: %s (the bound's effect, every padded call held "
                "past a budget of 2.5 MiB, was)\n",
                SANITIZED ? "a sanitizer's allocator keeps freed memory"
                          : "under valgrind the PID is valgrind's");
    }
    /* Release them: a stopped server fails its callers at once. */
    h_request(&fx->srv, "DELETE", "/servers/slow", NULL, &r);
    assert_int_equal(r.status, 200);
    h_resp_close(&r);
    for (int i = 0; i < HELD; i++) {
        h_assert_error(h_async_wait(held[i]), 500, "server_stopped");
        h_async_destroy(held[i]);
    }
    H_WAIT_UNTIL(metric(fx, "genserv_http_open_calls") == 0, H_WAIT_MS);
    free(cast);
    free(call);
    H_PASS(fx);
}

/* ---------------------------------------------------------------------------------------- */
/* 2. Pending timers bounded in all                                                           */
/* ---------------------------------------------------------------------------------------- */

static int setup_max_timers(void **state)
{
    /* No default servers: the ticker's and the batcher's own timers would count too. */
    static const char *const args[] = {"--max-timers", "10", NULL};
    h_opts_t opts = {.args = args,
                     .config_json = "{\"servers\": [{\"name\": \"a\", \"behaviour\": \"receiver\"},"
                                    " {\"name\": \"b\", \"behaviour\": \"receiver\"}]}"};

    return h_setup_with(state, &opts);
}

static long send_after(const h_server_t *srv, const char *server, int delay_ms, char *ref,
                       size_t ref_len)
{
    char body[160];
    h_resp_t r;
    long status;

    snprintf(body, sizeof(body), "{\"server\": \"%s\", \"message\": \"m\", \"delay_ms\": %d}",
             server, delay_ms);
    h_request(srv, "POST", "/send_after", body, &r);
    status = r.status;
    if (status == 503) {
        h_assert_error(&r, 503, "overloaded");
        if (r.retry_after[0] == '\0')
            fail_msg("503 without Retry-After: %s", r.body);
    }
    if (ref != NULL)
        snprintf(ref, ref_len, "%s",
                 status == 202 && h_str(r.json, "timer") != NULL ? h_str(r.json, "timer") : "");
    h_resp_close(&r);
    return status;
}

static int64_t timers_listed(const h_server_t *srv)
{
    int64_t n = -1;
    h_resp_t r;

    h_request(srv, "GET", "/timers", NULL, &r);
    if (r.status == 200 && json_is_integer(json_object_get(r.json, "count")))
        n = (int64_t)json_integer_value(json_object_get(r.json, "count"));
    h_resp_close(&r);
    return n;
}

/*
 * Guards 33e86bc (timers bounded). Before it, pending timers had no bound at all (issue 12.2:
 * 20,002 timers pending for an hour) and --max-timers did not exist (genserv refused to
 * start). The bound is over every server at once: past it, a timer to either server is 503;
 * a cancelled or fired timer gives its place back.
 */
static void test_pending_timers_past_max_timers_get_503(void **state)
{
    h_fixture_t *fx = *state;
    char ref[128], path[192];
    h_resp_t r;

    H_WAIT_UNTIL(metric(fx, "genserv_pending_timers") == 0, H_WAIT_MS);
    for (int i = 0; i < 8; i++)
        assert_int_equal(send_after(&fx->srv, i % 2 ? "a" : "b", 600000, NULL, 0), 202);
    assert_int_equal(send_after(&fx->srv, "a", 600000, ref, sizeof(ref)), 202);
    /* The tenth fires soon; the bound is reached meanwhile. */
    assert_int_equal(send_after(&fx->srv, "b", 300, NULL, 0), 202);
    assert_int_equal(send_after(&fx->srv, "a", 600000, NULL, 0), 503);
    assert_int_equal(send_after(&fx->srv, "b", 600000, NULL, 0), 503);
    assert_int_equal(send_after(&fx->srv, "b", 0, NULL, 0), 503);
    /* When it has fired, one place is free again, and only one. */
    H_WAIT_UNTIL(timers_listed(&fx->srv) == 9, H_WAIT_MS);
    assert_int_equal(send_after(&fx->srv, "a", 600000, NULL, 0), 202);
    assert_int_equal(send_after(&fx->srv, "b", 600000, NULL, 0), 503);
    /* A cancelled one gives its place back at once. */
    snprintf(path, sizeof(path), "/timers/%s", ref);
    h_request(&fx->srv, "DELETE", path, NULL, &r);
    assert_int_equal(r.status, 200);
    h_resp_close(&r);
    assert_int_equal(send_after(&fx->srv, "b", 600000, NULL, 0), 202);
    assert_int_equal(send_after(&fx->srv, "a", 600000, NULL, 0), 503);
    assert_int_equal(timers_listed(&fx->srv), 10);
    assert_true(metric(fx, "genserv_pending_timers") == 10);
    H_PASS(fx);
}

/* ---------------------------------------------------------------------------------------- */
/* 6. Event streams whose clients never read                                                  */
/* ---------------------------------------------------------------------------------------- */

static int setup_small_event_buffer(void **state)
{
    static const char *const args[] = {"--max-event-buffer", "16384", "--max-event-streams", "16",
                                       NULL};
    h_opts_t opts = {.args = args};

    return h_setup_with(state, &opts);
}

/* A GET /events on a socket with a small receive buffer that is then never read. */
static int unread_stream(const h_server_t *srv)
{
    static const char get[] = "GET /events HTTP/1.1\r\nHost: x\r\n\r\n";
    int fd = h_raw_connect(srv), small = 4096;

    assert_true(fd >= 0);
    /* After connect the window already advertised may be larger; the server's small send
     * buffer (sse.c) and --max-event-buffer still bound what it holds. */
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
    assert_int_equal(h_raw_send(fd, get, strlen(get)), 0);
    return fd;
}

/*
 * Guards 0cdf03e and b9dc5db (events: a stream ended for falling behind says so and is
 * counted; the buffer it may fall behind is --max-event-buffer). Before them, such a stream
 * was closed silently: no "closed" event, and genserv_http_event_streams_too_slow_total did
 * not exist (h_metrics_value gives -1), so the wait below ran out.
 *
 * Eight clients open GET /events and never read. Servers with long names are started and
 * stopped until genserv has given up on all eight, each counted; their slots are free again
 * (eight more streams fit in --max-event-streams 16), and a client that reads still gets every
 * event in order.
 */
static void test_streams_whose_clients_never_read_are_ended_and_counted(void **state)
{
    enum { STREAMS = 8 };
    h_fixture_t *fx = *state;
    int fds[STREAMS], cycles = 0;
    int64_t deadline;
    h_events_t *ev;
    json_t *j;

    for (int i = 0; i < STREAMS; i++)
        fds[i] = unread_stream(&fx->srv);
    H_WAIT_UNTIL(metric(fx, "genserv_http_event_streams") == STREAMS, H_WAIT_MS);
    deadline = h_now_ms() + 60000;
    while (metric(fx, "genserv_http_event_streams_too_slow_total") < STREAMS) {
        char name[240], path[280];
        h_resp_t r;

        if (h_now_ms() > deadline)
            fail_msg("after %d servers started and stopped, %g of %d unread streams ended", cycles,
                     metric(fx, "genserv_http_event_streams_too_slow_total"), STREAMS);
        snprintf(name, sizeof(name), "ev%05d-", cycles);
        memset(name + 8, 'z', sizeof(name) - 9);
        name[sizeof(name) - 1] = '\0';
        assert_int_equal(h_start_server(&fx->srv, name, "counter", NULL, NULL), 201);
        snprintf(path, sizeof(path), "/servers/%s", name);
        h_request(&fx->srv, "DELETE", path, NULL, &r);
        assert_int_equal(r.status, 200);
        h_resp_close(&r);
        cycles++;
    }
    assert_true(metric(fx, "genserv_http_event_streams_too_slow_total") == STREAMS);
    /* Ended streams go once their clients do (the closed event may still be unsent). */
    for (int i = 0; i < STREAMS; i++)
        close(fds[i]);
    H_WAIT_UNTIL(metric(fx, "genserv_http_event_streams") == 0, H_WAIT_MS);

    /* Their places are free: a reading client is admitted and sees what follows. */
    ev = h_events_open(&fx->srv);
    assert_non_null(ev);
    j = h_events_wait(ev, "snapshot", NULL, H_WAIT_MS);
    assert_non_null(j);
    json_decref(j);
    assert_int_equal(h_start_server(&fx->srv, "after", "counter", NULL, NULL), 201);
    j = h_events_wait(ev, "started", "after", H_WAIT_MS);
    assert_non_null(j);
    json_decref(j);
    h_events_close(ev);
    H_PASS(fx);
}

/* ---------------------------------------------------------------------------------------- */
/* 13. A burst of new connections                                                             */
/* ---------------------------------------------------------------------------------------- */

/*
 * Guards issue 12.13 (a cast of a 400-connection burst got no answer at all, once in about a
 * dozen runs). A stress test, not a proof: 2,000 casts over new connections, 200 at a time,
 * each answered 202 and counted once by the counter. A request that gets no answer is named:
 * its index, curl's error and how long it waited. Under valgrind, 400 (2 rounds).
 */
static void test_a_burst_of_new_connections_loses_no_request(void **state)
{
    enum { AT_ONCE = 200 };
    h_fixture_t *fx = *state;
    h_req_t req = {.method = "POST",
                   .path = "/cast",
                   .body = "{\"server\": \"counter\", \"message\": \"increment\"}",
                   .timeout_ms = 60000};
    int rounds = h_under_valgrind() ? 2 : 10, failed = 0;

    if (h_under_valgrind())
        fprintf(stderr,
                "# under valgrind: %d requests instead of 2,000 (memcheck makes each "
                "one 10-50x slower)\n",
                rounds * AT_ONCE);
    for (int round = 0; round < rounds; round++) {
        h_multi_t *m = h_multi_start(&fx->srv, &req, AT_ONCE);
        h_resp_t *rs;

        assert_non_null(m);
        rs = h_multi_wait(m);
        for (int i = 0; i < AT_ONCE; i++) {
            if (rs[i].status == 202)
                continue;
            failed++;
            fprintf(stderr,
                    "request %d (round %d, #%d): status %ld, curl error %d (%s) after %lld ms, "
                    "body: %.200s\n",
                    round * AT_ONCE + i, round, i, rs[i].status, rs[i].curl_rc,
                    curl_easy_strerror((CURLcode)rs[i].curl_rc),
                    (long long)(rs[i].t_end_ms - rs[i].t_start_ms), rs[i].body);
        }
        h_multi_destroy(m);
    }
    if (failed != 0)
        fail_msg("%d of %d requests of the burst were not answered 202 (each named above)", failed,
                 rounds * AT_ONCE);
    /* Each 202 was handled, once. */
    H_WAIT_UNTIL(h_call_int(&fx->srv, "counter", "\"get_count\"") >= rounds * AT_ONCE, H_WAIT_MS);
    assert_int_equal(h_call_int(&fx->srv, "counter", "\"get_count\""), rounds * AT_ONCE);
    H_PASS(fx);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_content_length_with_transfer_encoding_smuggles_nothing,
                                        h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_disagreeing_content_lengths_are_refused, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(
            test_a_transfer_encoding_other_than_chunked_is_refused_at_once, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_a_missing_or_second_host_header_is_refused, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_a_header_name_that_is_not_a_token_is_refused, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_an_encoded_nul_in_the_path_is_refused_not_served,
                                        h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(
            test_headers_past_max_header_bytes_get_a_json_431_and_a_close, setup_small_headers,
            h_teardown),
        cmocka_unit_test_setup_teardown(
            test_bodies_being_received_are_bounded_and_held_calls_keep_none, setup_bodies_budget,
            h_teardown),
        cmocka_unit_test_setup_teardown(test_pending_timers_past_max_timers_get_503,
                                        setup_max_timers, h_teardown),
        cmocka_unit_test_setup_teardown(test_streams_whose_clients_never_read_are_ended_and_counted,
                                        setup_small_event_buffer, h_teardown),
        cmocka_unit_test_setup_teardown(test_a_burst_of_new_connections_loses_no_request, h_setup,
                                        h_teardown),
    };

    if (argc > 1) /* one test by name (a glob), for a rerun by hand */
        cmocka_set_test_filter(argv[1]);
    h_init(170);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
