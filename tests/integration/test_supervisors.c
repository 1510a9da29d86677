/*
 * test_supervisors.c: supervision trees over real HTTP (/supervisors).
 *
 * What a client relies on: POST /supervisors starts a tree (201 with it) whose children are
 * servers like any other (callable by name), GET /supervisors and GET /supervisors/NAME show
 * the nested tree with each child's status and restarts, DELETE /supervisors/NAME stops it
 * and frees every name; a bad spec is 400 with a message, a used name 409, a child that
 * cannot start 400 start_failed naming it, with the children started before it stopped again;
 * one_for_all restarts the siblings of a crashed child; a nested supervisor past its intensity
 * is restarted by its parent; children are added, terminated, restarted and deleted on a
 * running supervisor; the default servers boot as the tree "root"; and the deferred-reply
 * article's Blocky application starts with one POST of examples/supervisors/blocky.json and
 * makes batches of exactly ten.
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

#define WAIT_MS 20000

static int setup_examples(void **state)
{
    const char *args[] = {"--behaviours-dir", GS_EXAMPLE_BEHAVIOURS, NULL};
    h_opts_t opts = {.args = args};

    return h_setup_with(state, &opts);
}

/* POST path with body (JSON text); asserts the status; returns the body (new, may be NULL). */
static json_t *post(const h_server_t *srv, const char *path, const char *body, long want)
{
    h_resp_t r;
    json_t *out;

    h_request(srv, "POST", path, body, &r);
    if (r.status != want)
        fail_msg("POST %s %s: %ld, want %ld: %s", path, body, r.status, want,
                 r.body != NULL ? r.body : "");
    out = json_incref(r.json);
    h_resp_close(&r);
    return out;
}

static long request_status(const h_server_t *srv, const char *method, const char *path)
{
    h_resp_t r;
    long status;

    h_request(srv, method, path, NULL, &r);
    status = r.status;
    h_resp_close(&r);
    return status;
}

/* The error code of a JSON error body (borrowed). */
static const char *error_of(const json_t *body)
{
    return h_str(body, "error");
}

/* GET /supervisors/NAME (new reference), or NULL when it is not 200. */
static json_t *tree(const h_server_t *srv, const char *name)
{
    char path[300];
    h_resp_t r;
    json_t *out = NULL;

    snprintf(path, sizeof(path), "/supervisors/%s", name);
    h_request(srv, "GET", path, NULL, &r);
    if (r.status == 200)
        out = json_incref(r.json);
    h_resp_close(&r);
    return out;
}

/* A child of supervisor sup as GET /supervisors/SUP shows it (new reference), or NULL. */
static json_t *child(const h_server_t *srv, const char *sup, const char *name)
{
    json_t *t = tree(srv, sup), *c, *found = NULL;
    size_t i;

    json_array_foreach(json_object_get(t, "children"), i, c)
    {
        if (strcmp(h_str(c, "name"), name) == 0)
            found = json_incref(c);
    }
    json_decref(t);
    return found;
}

static bool child_is(const h_server_t *srv, const char *sup, const char *name, const char *status,
                     json_int_t restarts)
{
    json_t *c = child(srv, sup, name);
    bool yes = c != NULL && strcmp(h_str(c, "status"), status) == 0 &&
               (restarts < 0 || json_integer_value(json_object_get(c, "restarts")) == restarts);

    json_decref(c);
    return yes;
}

/* ---------------------------------------------------------------------------------------- */
/* Trees                                                                                      */
/* ---------------------------------------------------------------------------------------- */

static void test_start_show_list_delete(void **state)
{
    h_fixture_t *fx = *state;
    json_t *body, *list, *t, *c;
    size_t i;
    bool listed = false;

    body = post(&fx->srv, "/supervisors",
                "{\"name\": \"tree\", \"children\": ["
                "{\"name\": \"c1\", \"behaviour\": \"counter\"},"
                "{\"name\": \"sub\", \"strategy\": \"one_for_all\", \"children\": ["
                "{\"name\": \"c2\", \"behaviour\": \"counter\", \"restart\": \"transient\", "
                "\"shutdown\": 1000}]}]}",
                201);
    assert_string_equal(h_str(body, "name"), "tree");
    assert_string_equal(h_str(body, "status"), "running");
    assert_int_equal(json_array_size(json_object_get(body, "children")), 2);
    json_decref(body);

    /* A child is a server: called by its name. */
    assert_int_equal(h_deliver(&fx->srv, "/cast", "c2", "\"increment\""), 202);
    H_WAIT_UNTIL(h_call_int(&fx->srv, "c2", "\"get_count\"") == 1, WAIT_MS);

    list = NULL;
    {
        h_resp_t r;
        h_request(&fx->srv, "GET", "/supervisors", NULL, &r);
        assert_int_equal(r.status, 200);
        list = json_incref(json_object_get(r.json, "supervisors"));
        h_resp_close(&r);
    }
    json_array_foreach(list, i, t)
    {
        listed = listed || strcmp(h_str(t, "name"), "tree") == 0;
        assert_true(strcmp(h_str(t, "name"), "sub") != 0); /* nested: only inside its parent */
    }
    json_decref(list);
    assert_true(listed);

    t = tree(&fx->srv, "tree");
    c = json_array_get(json_object_get(t, "children"), 1);
    assert_string_equal(h_str(c, "kind"), "supervisor");
    assert_string_equal(h_str(c, "strategy"), "one_for_all");
    c = json_array_get(json_object_get(c, "children"), 0);
    assert_string_equal(h_str(c, "name"), "c2");
    assert_string_equal(h_str(c, "kind"), "server");
    assert_string_equal(h_str(c, "status"), "running");
    assert_string_equal(h_str(c, "restart"), "transient");
    assert_int_equal(json_integer_value(json_object_get(c, "shutdown")), 1000);
    assert_int_equal(json_integer_value(json_object_get(c, "restarts")), 0);
    json_decref(t);

    assert_int_equal(request_status(&fx->srv, "DELETE", "/supervisors/tree"), 200);
    assert_int_equal(request_status(&fx->srv, "GET", "/supervisors/tree"), 404);
    assert_int_equal(request_status(&fx->srv, "GET", "/servers/c1"), 404);
    assert_int_equal(request_status(&fx->srv, "GET", "/servers/c2"), 404);
    H_WAIT_UNTIL(request_status(&fx->srv, "GET", "/servers/tree") == 404, WAIT_MS);
    H_PASS(fx);
}

static void test_errors(void **state)
{
    h_fixture_t *fx = *state;
    json_t *body;

    body = post(&fx->srv, "/supervisors", "{\"name\": \"s\", \"strategy\": \"one_for_some\"}", 400);
    assert_string_equal(error_of(body), "bad_request");
    assert_non_null(strstr(h_str(body, "message"), "strategy"));
    json_decref(body);
    body =
        post(&fx->srv, "/supervisors",
             "{\"name\": \"s\", \"children\": [{\"name\": \"x\", \"behaviour\": \"nope\"}]}", 400);
    assert_non_null(strstr(h_str(body, "message"), "nope"));
    json_decref(body);
    json_decref(post(&fx->srv, "/supervisors", "[1]", 400));

    /* A child whose name is taken: the one started before it is stopped again. */
    assert_int_equal(h_start_server(&fx->srv, "taken", "counter", NULL, NULL), 201);
    body = post(&fx->srv, "/supervisors",
                "{\"name\": \"s\", \"children\": ["
                "{\"name\": \"first\", \"behaviour\": \"counter\"},"
                "{\"name\": \"taken\", \"behaviour\": \"counter\"},"
                "{\"name\": \"never\", \"behaviour\": \"counter\"}]}",
                400);
    assert_string_equal(error_of(body), "start_failed");
    assert_string_equal(h_str(json_object_get(body, "reason"), "child"), "taken");
    assert_string_equal(h_str(json_object_get(body, "reason"), "error"), "already_started");
    assert_non_null(strstr(h_str(body, "message"), "taken"));
    json_decref(body);
    assert_int_equal(request_status(&fx->srv, "GET", "/servers/first"), 404);
    assert_int_equal(request_status(&fx->srv, "GET", "/servers/never"), 404);
    assert_int_equal(request_status(&fx->srv, "GET", "/supervisors/s"), 404);
    assert_int_equal(h_call_int(&fx->srv, "taken", "\"get_count\""), 0); /* untouched */

    /* 409: the supervisor's name is used. */
    json_decref(post(&fx->srv, "/supervisors", "{\"name\": \"s\", \"children\": []}", 201));
    body = post(&fx->srv, "/supervisors", "{\"name\": \"s\", \"children\": []}", 409);
    assert_string_equal(error_of(body), "already_started");
    json_decref(body);
    body = post(&fx->srv, "/supervisors", "{\"name\": \"taken\", \"children\": []}", 409);
    json_decref(body);

    /* 404s */
    assert_int_equal(request_status(&fx->srv, "GET", "/supervisors/nope"), 404);
    assert_int_equal(request_status(&fx->srv, "DELETE", "/supervisors/nope"), 404);
    assert_int_equal(request_status(&fx->srv, "DELETE", "/supervisors/taken"), 404);
    body = post(&fx->srv, "/supervisors/nope/children",
                "{\"name\": \"k\", \"behaviour\": \"counter\"}", 404);
    assert_string_equal(error_of(body), "no_such_supervisor");
    json_decref(body);
    body = post(&fx->srv, "/supervisors/s/terminate_child", "{\"child\": \"k\"}", 404);
    assert_string_equal(error_of(body), "no_such_child");
    json_decref(body);
    body = post(&fx->srv, "/supervisors/s/delete_child", "{}", 400);
    assert_string_equal(error_of(body), "bad_request");
    json_decref(body);
    H_PASS(fx);
}

/* ---------------------------------------------------------------------------------------- */
/* Strategies and escalation                                                                  */
/* ---------------------------------------------------------------------------------------- */

static void test_one_for_all_restarts_the_siblings(void **state)
{
    h_fixture_t *fx = *state;
    h_resp_t r;

    json_decref(post(&fx->srv, "/supervisors",
                     "{\"name\": \"all\", \"strategy\": \"one_for_all\", \"children\": ["
                     "{\"name\": \"x\", \"behaviour\": \"counter\"},"
                     "{\"name\": \"m\", \"behaviour\": \"misbehaving\"},"
                     "{\"name\": \"y\", \"behaviour\": \"counter\"}]}",
                     201));
    assert_int_equal(h_deliver(&fx->srv, "/cast", "x", "[\"increment\", 5]"), 202);
    H_WAIT_UNTIL(h_call_int(&fx->srv, "x", "\"get_count\"") == 5, WAIT_MS);
    h_call(&fx->srv, "m", "\"message\"", 5000, &r); /* m crashes */
    assert_int_equal(r.status, 500);
    h_resp_close(&r);
    H_WAIT_UNTIL(child_is(&fx->srv, "all", "x", "running", 1) &&
                     child_is(&fx->srv, "all", "m", "running", 1) &&
                     child_is(&fx->srv, "all", "y", "running", 1),
                 WAIT_MS);
    assert_int_equal(h_call_int(&fx->srv, "x", "\"get_count\""), 0); /* x started afresh */
    H_PASS(fx);
}

static void test_escalation_to_the_parent(void **state)
{
    h_fixture_t *fx = *state;
    h_resp_t r;

    json_decref(post(&fx->srv, "/supervisors",
                     "{\"name\": \"top\", \"children\": ["
                     "{\"name\": \"keep\", \"behaviour\": \"counter\"},"
                     "{\"name\": \"sub\", \"max_restarts\": 0, \"children\": ["
                     "{\"name\": \"m\", \"behaviour\": \"misbehaving\"}]}]}",
                     201));
    h_call(&fx->srv, "m", "\"message\"", 5000, &r);
    assert_int_equal(r.status, 500);
    h_resp_close(&r);
    /* sub gave up at once (intensity 0), top restarted it and with it m. */
    H_WAIT_UNTIL(child_is(&fx->srv, "top", "sub", "running", 1), WAIT_MS);
    H_WAIT_UNTIL(child_is(&fx->srv, "sub", "m", "running", 0), WAIT_MS);
    assert_true(child_is(&fx->srv, "top", "keep", "running", 0));
    {
        h_call(&fx->srv, "m", "\"ping\"", 5000, &r);
        assert_int_equal(r.status, 200);
        h_resp_close(&r);
    }
    H_PASS(fx);
}

/* ---------------------------------------------------------------------------------------- */
/* Children of a running supervisor                                                           */
/* ---------------------------------------------------------------------------------------- */

static void test_child_management(void **state)
{
    h_fixture_t *fx = *state;
    json_t *body;

    json_decref(post(&fx->srv, "/supervisors", "{\"name\": \"s\", \"children\": []}", 201));
    body = post(&fx->srv, "/supervisors/s/children",
                "{\"name\": \"k\", \"behaviour\": \"counter\", \"args\": {\"initial\": 7}}", 201);
    assert_string_equal(h_str(body, "name"), "k");
    assert_string_equal(h_str(body, "status"), "running");
    json_decref(body);
    assert_int_equal(h_call_int(&fx->srv, "k", "\"get_count\""), 7);
    json_decref(post(&fx->srv, "/supervisors/s/children",
                     "{\"name\": \"k\", \"behaviour\": \"counter\"}", 409));
    json_decref(post(&fx->srv, "/supervisors/s/children", "{\"name\": \"k2\"}", 400));

    body = post(&fx->srv, "/supervisors/s/delete_child", "{\"child\": \"k\"}", 409);
    assert_string_equal(error_of(body), "child_running");
    json_decref(body);
    json_decref(post(&fx->srv, "/supervisors/s/terminate_child", "{\"child\": \"k\"}", 200));
    assert_true(child_is(&fx->srv, "s", "k", "stopped", 0));
    assert_int_equal(request_status(&fx->srv, "GET", "/servers/k"), 404);
    json_decref(post(&fx->srv, "/supervisors/s/restart_child", "{\"child\": \"k\"}", 200));
    assert_true(child_is(&fx->srv, "s", "k", "running", 1));
    assert_int_equal(h_call_int(&fx->srv, "k", "\"get_count\""), 7);
    json_decref(post(&fx->srv, "/supervisors/s/terminate_child", "{\"child\": \"k\"}", 200));
    json_decref(post(&fx->srv, "/supervisors/s/delete_child", "{\"child\": \"k\"}", 200));
    body = child(&fx->srv, "s", "k");
    assert_null(body);
    H_PASS(fx);
}

/* How many children root lists, or -1 when it is gone. */
static long root_children(const h_server_t *srv)
{
    json_t *t = tree(srv, "root");
    long n = t != NULL ? (long)json_array_size(json_object_get(t, "children")) : -1;

    json_decref(t);
    return n;
}

/* The default servers boot as the children of "root", one_for_one, in their start order; a
 * crash of one restarts it alone. */
static void test_default_servers_form_the_root_tree(void **state)
{
    h_fixture_t *fx = *state;
    static const char *const order[] = {"counter", "journal", "batcher", "ticker", "slow"};
    json_t *t = tree(&fx->srv, "root"), *c;
    size_t i;

    assert_non_null(t);
    assert_string_equal(h_str(t, "strategy"), "one_for_one");
    assert_int_equal(json_integer_value(json_object_get(t, "max_restarts")), 3);
    assert_int_equal(json_integer_value(json_object_get(t, "max_seconds")), 5);
    assert_int_equal(json_array_size(json_object_get(t, "children")), 5);
    json_array_foreach(json_object_get(t, "children"), i, c)
    {
        assert_string_equal(h_str(c, "name"), order[i]);
        assert_string_equal(h_str(c, "status"), "running");
        assert_string_equal(h_str(c, "restart"), "permanent");
    }
    json_decref(t);
    /* A stop that is not its supervisor's (DELETE /servers/NAME) takes the child out of its
     * tree: not restarted, and not counted against root's intensity, so that four of them in
     * a row (past 3 in 5 s) leave root and the other defaults running. */
    static const char *const gone[] = {"counter", "journal", "batcher", "ticker"};
    for (i = 0; i < 4; i++) {
        char path[64];

        snprintf(path, sizeof(path), "/servers/%s", gone[i]);
        assert_int_equal(request_status(&fx->srv, "DELETE", path), 200);
        assert_int_equal(request_status(&fx->srv, "GET", path), 404);
    }
    /* root decides on each exit notice in its own turn: wait until it has taken all four. */
    H_WAIT_UNTIL(root_children(&fx->srv) == 1, WAIT_MS);
    t = tree(&fx->srv, "root");
    assert_non_null(t);
    assert_string_equal(h_str(t, "status"), "running");
    assert_int_equal(json_integer_value(json_object_get(t, "restarts")), 0);
    json_decref(t);
    assert_true(child_is(&fx->srv, "root", "slow", "running", 0));
    H_PASS(fx);
}

/* ---------------------------------------------------------------------------------------- */
/* Blocky                                                                                     */
/* ---------------------------------------------------------------------------------------- */

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = calloc(1, (size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return buf;
}

static size_t batches(const h_server_t *srv)
{
    json_t *info = h_server_info(srv, "consumer");
    size_t n = json_array_size(json_object_get(json_object_get(info, "state"), "batches"));

    json_decref(info);
    return n;
}

/* One POST of examples/supervisors/blocky.json: a consumer and ten producers under one
 * one_for_one supervisor, and batches of exactly ten (sums 10, 20, 30...). */
static void test_blocky_in_one_post(void **state)
{
    h_fixture_t *fx = *state;
    char *spec = read_file(GS_EXAMPLE_SUPERVISORS "/blocky.json");
    json_t *body = post(&fx->srv, "/supervisors", spec, 201), *info, *b;
    size_t i;

    free(spec);
    assert_string_equal(h_str(body, "strategy"), "one_for_one");
    assert_int_equal(json_array_size(json_object_get(body, "children")), 11);
    json_decref(body);
    H_WAIT_UNTIL(batches(&fx->srv) >= 3, WAIT_MS);
    info = h_server_info(&fx->srv, "consumer");
    json_array_foreach(json_object_get(json_object_get(info, "state"), "batches"), i, b)
    {
        if (json_integer_value(json_object_get(b, "size")) != 10 ||
            json_integer_value(json_object_get(b, "sum")) != (json_int_t)(10 * (i + 1)))
            fail_msg("batch %zu is not {size: 10, sum: %zu}", i + 1, 10 * (i + 1));
    }
    json_decref(info);
    for (int p = 1; p <= 10; p++) {
        char name[16];

        snprintf(name, sizeof(name), "producer_%d", p);
        assert_true(child_is(&fx->srv, "blocky", name, "running", 0));
    }
    assert_int_equal(request_status(&fx->srv, "DELETE", "/supervisors/blocky"), 200);
    assert_int_equal(request_status(&fx->srv, "GET", "/servers/consumer"), 404);
    H_PASS(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_start_show_list_delete, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_errors, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_one_for_all_restarts_the_siblings, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_escalation_to_the_parent, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_child_management, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_default_servers_form_the_root_tree, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_blocky_in_one_post, setup_examples, h_teardown),
    };

    h_init(170);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
