/*
 * test_tree.c: supervision trees (runtime/tree.c) as a user of gs_supervisor_* relies on them.
 *
 * A small C behaviour, "logger", appends "init:NAME" and "terminate:NAME" to one log as its
 * callbacks run; every test asserts the exact order of those calls, not timing: children
 * start in order and stop in reverse order; a start that fails stops the ones started before
 * it, in reverse; one_for_one, one_for_all and rest_for_one stop and restart exactly the
 * children OTP's strategies do; restart types; the intensity of the supervisor (all its
 * children's restarts count), escalation to the parent, and the top of a tree going away;
 * start_child, terminate_child, restart_child and delete_child; a child's shutdown time.
 */
#include "testutil.h"

#include <stdatomic.h>

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool refuse_inits; /* every logger init fails while set (seq_cst: a test flag) */
static json_t *calls;            /* ["init:a", "terminate:a", ...] */

static void log_call(const char *what, gs_server_t *self)
{
    char buf[300];
    snprintf(buf, sizeof(buf), "%s:%s", what, gs_server_name(self));
    pthread_mutex_lock(&log_mu);
    json_array_append_new(calls, json_string(buf));
    pthread_mutex_unlock(&log_mu);
}

static size_t log_len(void)
{
    pthread_mutex_lock(&log_mu);
    size_t n = json_array_size(calls);
    pthread_mutex_unlock(&log_mu);
    return n;
}

/* Wait until the log holds n calls, then assert they are exactly want (JSON text). */
#define assert_log(n, want)                                                                        \
    do {                                                                                           \
        TU_WAIT_UNTIL(log_len() >= (n), TU_WAIT_MS);                                               \
        pthread_mutex_lock(&log_mu);                                                               \
        json_t *copy_ = json_deep_copy(calls);                                                     \
        pthread_mutex_unlock(&log_mu);                                                             \
        assert_json_eq(copy_, want);                                                               \
        json_decref(copy_);                                                                        \
    } while (0)

static void log_reset(void)
{
    pthread_mutex_lock(&log_mu);
    json_array_clear(calls);
    pthread_mutex_unlock(&log_mu);
}

typedef struct logger_s {
    int slow_terminate_ms;
} logger_t;

/* args: {"fail": true} refuses to start; {"slow_terminate_ms": N} makes terminate slow. */
static int logger_init(gs_server_t *self, json_t *args, void **state, json_t **reason)
{
    log_call("init", self);
    if (json_is_true(json_object_get(args, "fail")) || atomic_load(&refuse_inits)) {
        *reason = json_string("boom");
        return -1;
    }
    logger_t *l = calloc(1, sizeof(*l));
    l->slow_terminate_ms = (int)json_integer_value(json_object_get(args, "slow_terminate_ms"));
    *state = l;
    return 0;
}

static gs_result_t logger_call(gs_server_t *self, void *state, json_t *msg, gs_from_t from)
{
    (void)self, (void)state, (void)msg, (void)from;
    return GS_REPLY(json_string("pong"));
}

/* "crash" stops with an abnormal reason, "exit" with "normal". */
static gs_result_t logger_cast(gs_server_t *self, void *state, json_t *msg)
{
    (void)self, (void)state;
    if (strcmp(json_string_value(msg), "exit") == 0)
        return GS_STOP(json_string("normal"));
    return GS_STOP(json_string("boom"));
}

static void logger_terminate(gs_server_t *self, json_t *reason, void *state)
{
    (void)reason;
    logger_t *l = state;
    if (l->slow_terminate_ms > 0)
        tu_sleep_ms(l->slow_terminate_ms); /* a child that does not stop in time */
    log_call("terminate", self);
    free(l);
}

static const gs_behaviour_t logger = {
    .name = "logger",
    .init = logger_init,
    .handle_call = logger_call,
    .handle_cast = logger_cast,
    .terminate = logger_terminate,
};

static int setup(void **state)
{
    gs_runtime_t *rt = tu_runtime_create(2, 0);
    assert_int_equal(gs_behaviour_register(rt, &logger), 0);
    pthread_mutex_lock(&log_mu);
    if (calls == NULL)
        calls = json_array();
    pthread_mutex_unlock(&log_mu);
    log_reset();
    atomic_store(&refuse_inits, false);
    *state = rt;
    return 0;
}

#define tree_test(f) cmocka_unit_test_setup_teardown(f, setup, tu_teardown)

/* Start the tree spec (JSON text); asserts success. */
static void start_tree(gs_runtime_t *rt, const char *spec_text)
{
    json_t *spec = tu_json(spec_text), *result = NULL;
    int rc = gs_supervisor_start(rt, spec, TU_WAIT_MS, &result);
    json_decref(spec);
    if (rc != 0) {
        char buf[512];
        print_error("gs_supervisor_start: %s %s\n", gs_err_name(rc),
                    tu_dump(result, buf, sizeof(buf)));
        _fail(__FILE__, __LINE__);
    }
    assert_string_equal(json_string_value(json_object_get(result, "kind")), "supervisor");
    json_decref(result);
}

/* A child's field in the tree of sup, as an integer or via its status string. */
static json_t *tree_child(gs_runtime_t *rt, const char *sup, const char *child)
{
    json_t *tree = gs_supervisor_json(rt, sup);
    json_t *found = NULL, *c;
    size_t i;
    json_array_foreach(json_object_get(tree, "children"), i, c)
    {
        if (strcmp(json_string_value(json_object_get(c, "name")), child) == 0)
            found = json_incref(c);
    }
    json_decref(tree);
    return found;
}

static bool in_tree(gs_runtime_t *rt, const char *sup, const char *child)
{
    json_t *c = tree_child(rt, sup, child);
    json_decref(c);
    return c != NULL;
}

static bool child_is(gs_runtime_t *rt, const char *sup, const char *child, const char *status)
{
    json_t *c = tree_child(rt, sup, child);
    bool yes = c != NULL && strcmp(json_string_value(json_object_get(c, "status")), status) == 0;
    json_decref(c);
    return yes;
}

static long long child_restarts(gs_runtime_t *rt, const char *sup, const char *child)
{
    json_t *c = tree_child(rt, sup, child);
    long long n = c != NULL ? (long long)json_integer_value(json_object_get(c, "restarts")) : -1;
    json_decref(c);
    return n;
}

static bool gone(gs_runtime_t *rt, const char *name)
{
    gs_server_t *s = gs_whereis(rt, name);
    gs_server_unref(s);
    return s == NULL;
}

#define THREE(strategy)                                                                            \
    "{\"name\": \"sup\", \"strategy\": \"" strategy "\", \"children\": ["                          \
    "{\"name\": \"a\", \"behaviour\": \"logger\"},"                                                \
    "{\"name\": \"b\", \"behaviour\": \"logger\"},"                                                \
    "{\"name\": \"c\", \"behaviour\": \"logger\"}]}"

/* ---------------------------------------------------------------------------------------- */
/* Start and stop                                                                             */
/* ---------------------------------------------------------------------------------------- */

static void test_start_in_order_stop_in_reverse(void **state)
{
    gs_runtime_t *rt = *state;
    start_tree(rt, THREE("one_for_one"));
    assert_log(3, "[\"init:a\", \"init:b\", \"init:c\"]");
    tu_call_expect(rt, "b", "\"ping\"", "\"pong\""); /* a child is a server by its name */
    assert_true(child_is(rt, "sup", "a", "running"));
    json_t *list = gs_supervisors_json(rt);
    assert_int_equal(json_array_size(json_object_get(list, "supervisors")), 1);
    json_decref(list);

    assert_int_equal(gs_stop(rt, "sup", NULL, TU_WAIT_MS), 0);
    assert_log(6, "[\"init:a\", \"init:b\", \"init:c\", \"terminate:c\", \"terminate:b\", "
                  "\"terminate:a\"]");
    assert_null(gs_supervisor_json(rt, "sup"));
    assert_true(gone(rt, "a") && gone(rt, "b") && gone(rt, "c"));
    TU_WAIT_UNTIL(gone(rt, "sup"), TU_WAIT_MS); /* its own name goes right after */
}

static void test_start_failure_rolls_back(void **state)
{
    gs_runtime_t *rt = *state;
    json_t *spec = tu_json("{\"name\": \"sup\", \"children\": ["
                           "{\"name\": \"a\", \"behaviour\": \"logger\"},"
                           "{\"name\": \"b\", \"behaviour\": \"logger\"},"
                           "{\"name\": \"bad\", \"behaviour\": \"logger\", \"args\": {\"fail\": "
                           "true}},"
                           "{\"name\": \"c\", \"behaviour\": \"logger\"}]}");
    json_t *details = NULL;
    assert_int_equal(gs_supervisor_start(rt, spec, TU_WAIT_MS, &details), GS_ESTARTCHILD);
    assert_json_eq(details, "{\"child\": \"bad\", \"error\": \"init_failed\", \"reason\": "
                            "\"boom\"}");
    json_decref(details);
    /* Answered once the started ones stopped, in reverse; c never started. */
    assert_log(5, "[\"init:a\", \"init:b\", \"init:bad\", \"terminate:b\", \"terminate:a\"]");
    TU_WAIT_UNTIL(gone(rt, "sup"), TU_WAIT_MS);
    assert_true(gone(rt, "a") && gone(rt, "b") && gone(rt, "c"));

    /* The names are free again: the same tree without the bad child starts. */
    json_array_remove(json_object_get(spec, "children"), 2);
    assert_int_equal(gs_supervisor_start(rt, spec, TU_WAIT_MS, NULL), 0);
    json_decref(spec);
}

/* A nested supervisor whose child fails: it stops its own started children, then its parent
 * stops the ones it started, each in reverse order, and the error names the nested one. */
static void test_nested_start_failure_rolls_back(void **state)
{
    gs_runtime_t *rt = *state;
    json_t *spec = tu_json("{\"name\": \"top\", \"children\": ["
                           "{\"name\": \"a\", \"behaviour\": \"logger\"},"
                           "{\"name\": \"sub\", \"children\": ["
                           "{\"name\": \"x\", \"behaviour\": \"logger\"},"
                           "{\"name\": \"bad\", \"behaviour\": \"logger\", \"args\": "
                           "{\"fail\": true}}]},"
                           "{\"name\": \"c\", \"behaviour\": \"logger\"}]}");
    json_t *details = NULL;
    assert_int_equal(gs_supervisor_start(rt, spec, TU_WAIT_MS, &details), GS_ESTARTCHILD);
    json_decref(spec);
    assert_string_equal(json_string_value(json_object_get(details, "child")), "sub");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(details, "reason"), "child")), "bad");
    json_decref(details);
    assert_log(5, "[\"init:a\", \"init:x\", \"init:bad\", \"terminate:x\", "
                  "\"terminate:a\"]");
    TU_WAIT_UNTIL(gone(rt, "top") && gone(rt, "sub"), TU_WAIT_MS);
    assert_true(gone(rt, "a") && gone(rt, "x") && gone(rt, "c"));
}

static void test_bad_specs(void **state)
{
    gs_runtime_t *rt = *state;
    static const char *const bad[] = {
        "[]",
        "{\"children\": []}",
        "{\"name\": \"s\", \"strategy\": \"one_for_none\"}",
        "{\"name\": \"s\", \"max_restarts\": -1, \"children\": []}",
        "{\"name\": \"s\", \"children\": [{\"name\": \"x\"}]}",
        "{\"name\": \"s\", \"children\": [{\"name\": \"x\", \"behaviour\": \"nope\"}]}",
        "{\"name\": \"s\", \"children\": [{\"name\": \"x\", \"behaviour\": \"logger\", "
        "\"restart\": \"sometimes\"}]}",
        "{\"name\": \"s\", \"children\": [{\"name\": \"x\", \"behaviour\": \"logger\", "
        "\"shutdown\": -5}]}",
        "{\"name\": \"s\", \"children\": [{\"name\": \"x\", \"behaviour\": \"logger\"}, "
        "{\"name\": \"x\", \"behaviour\": \"logger\"}]}",
        "{\"name\": \"s\", \"children\": [{\"name\": \"x\", \"behaviour\": \"logger\", "
        "\"colour\": 1}]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *spec = tu_json(bad[i]), *why = NULL;
        int rc = gs_supervisor_start(rt, spec, TU_WAIT_MS, &why);
        if (rc != GS_EINVAL || !json_is_string(json_object_get(why, "message")))
            fail_msg("spec %s: %s, want bad_argument with a message", bad[i], gs_err_name(rc));
        json_decref(why);
        json_decref(spec);
    }
    assert_int_equal(log_len(), 0); /* nothing started */
    start_tree(rt, "{\"name\": \"s\", \"children\": []}");
    json_t *again = tu_json("{\"name\": \"s\", \"children\": []}");
    assert_int_equal(gs_supervisor_start(rt, again, TU_WAIT_MS, NULL), GS_EALREADY);
    json_decref(again);
}

/* ---------------------------------------------------------------------------------------- */
/* Strategies                                                                                 */
/* ---------------------------------------------------------------------------------------- */

static void test_one_for_one(void **state)
{
    gs_runtime_t *rt = *state;
    start_tree(rt, THREE("one_for_one"));
    assert_int_equal(tu_cast(rt, "b", "\"crash\""), 0);
    assert_log(5, "[\"init:a\", \"init:b\", \"init:c\", \"terminate:b\", \"init:b\"]");
    TU_WAIT_UNTIL(child_restarts(rt, "sup", "b") == 1, TU_WAIT_MS);
    assert_int_equal(child_restarts(rt, "sup", "a"), 0);
    TU_WAIT_UNTIL(child_is(rt, "sup", "b", "running"), TU_WAIT_MS);
    assert_int_equal(tu_status_int(rt, "b", "restarts"), 1);
    tu_call_expect(rt, "b", "\"ping\"", "\"pong\"");
}

static void test_one_for_all(void **state)
{
    gs_runtime_t *rt = *state;
    start_tree(rt, THREE("one_for_all"));
    assert_int_equal(tu_cast(rt, "b", "\"crash\""), 0);
    assert_log(9, "[\"init:a\", \"init:b\", \"init:c\", \"terminate:b\", \"terminate:c\", "
                  "\"terminate:a\", \"init:a\", \"init:b\", \"init:c\"]");
    TU_WAIT_UNTIL(child_is(rt, "sup", "c", "running"), TU_WAIT_MS);
    assert_int_equal(child_restarts(rt, "sup", "a"), 1);
    assert_int_equal(child_restarts(rt, "sup", "b"), 1);
}

static void test_rest_for_one(void **state)
{
    gs_runtime_t *rt = *state;
    start_tree(rt, THREE("rest_for_one"));
    assert_int_equal(tu_cast(rt, "b", "\"crash\""), 0);
    assert_log(7, "[\"init:a\", \"init:b\", \"init:c\", \"terminate:b\", \"terminate:c\", "
                  "\"init:b\", \"init:c\"]");
    TU_WAIT_UNTIL(child_is(rt, "sup", "c", "running"), TU_WAIT_MS);
    assert_int_equal(child_restarts(rt, "sup", "a"), 0);
    /* a was never touched: the log has no terminate:a. */
    tu_call_expect(rt, "a", "\"ping\"", "\"pong\"");
}

/* ---------------------------------------------------------------------------------------- */
/* Restart types                                                                              */
/* ---------------------------------------------------------------------------------------- */

static void test_restart_types(void **state)
{
    gs_runtime_t *rt = *state;
    start_tree(rt, "{\"name\": \"sup\", \"max_restarts\": 10, \"children\": ["
                   "{\"name\": \"p\", \"behaviour\": \"logger\"},"
                   "{\"name\": \"tr\", \"behaviour\": \"logger\", \"restart\": \"transient\"},"
                   "{\"name\": \"tm\", \"behaviour\": \"logger\", \"restart\": \"temporary\"}]}");
    assert_log(3, "[\"init:p\", \"init:tr\", \"init:tm\"]");
    /* permanent: restarted after a normal exit too */
    assert_int_equal(tu_cast(rt, "p", "\"exit\""), 0);
    assert_log(5, "[\"init:p\", \"init:tr\", \"init:tm\", \"terminate:p\", \"init:p\"]");
    /* transient: restarted after a crash ... */
    assert_int_equal(tu_cast(rt, "tr", "\"crash\""), 0);
    assert_log(7, "[\"init:p\", \"init:tr\", \"init:tm\", \"terminate:p\", \"init:p\", "
                  "\"terminate:tr\", \"init:tr\"]");
    TU_WAIT_UNTIL(child_is(rt, "sup", "tr", "running"), TU_WAIT_MS);
    /* ... not after a normal exit: it stays in the tree, stopped */
    assert_int_equal(tu_cast(rt, "tr", "\"exit\""), 0);
    TU_WAIT_UNTIL(child_is(rt, "sup", "tr", "stopped"), TU_WAIT_MS);
    /* temporary: never restarted, and forgotten */
    assert_int_equal(tu_cast(rt, "tm", "\"crash\""), 0);
    json_t *c = NULL;
    TU_WAIT_UNTIL((json_decref(c), c = tree_child(rt, "sup", "tm")) == NULL, TU_WAIT_MS);
    assert_log(9, "[\"init:p\", \"init:tr\", \"init:tm\", \"terminate:p\", \"init:p\", "
                  "\"terminate:tr\", \"init:tr\", \"terminate:tr\", \"terminate:tm\"]");
    assert_true(gone(rt, "tm") && gone(rt, "tr"));
    /* Nothing else ran meanwhile. */
    tu_call_expect(rt, "p", "\"ping\"", "\"pong\"");
    assert_int_equal(log_len(), 9);
}

/* ---------------------------------------------------------------------------------------- */
/* Intensity and escalation                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* Past the intensity of a nested supervisor, it stops its children and itself; its parent
 * sees a child crash, restarts it (one_for_one), and its children start again. */
static void test_escalation(void **state)
{
    gs_runtime_t *rt = *state;
    tu_events_subscribe(rt);
    start_tree(rt, "{\"name\": \"top\", \"children\": ["
                   "{\"name\": \"x\", \"behaviour\": \"logger\"},"
                   "{\"name\": \"sub\", \"max_restarts\": 1, \"children\": ["
                   "{\"name\": \"v\", \"behaviour\": \"logger\"},"
                   "{\"name\": \"w\", \"behaviour\": \"logger\"}]}]}");
    assert_log(3, "[\"init:x\", \"init:v\", \"init:w\"]");
    assert_int_equal(tu_cast(rt, "w", "\"crash\""), 0); /* 1 restart: allowed */
    assert_log(5, "[\"init:x\", \"init:v\", \"init:w\", \"terminate:w\", \"init:w\"]");
    TU_WAIT_UNTIL(child_is(rt, "sub", "w", "running"), TU_WAIT_MS);
    assert_int_equal(tu_cast(rt, "w", "\"crash\""), 0); /* 2: past it */
    /* sub stops v (w is dead already), stops; top restarts sub, which starts v and w. */
    assert_log(9, "[\"init:x\", \"init:v\", \"init:w\", \"terminate:w\", \"init:w\", "
                  "\"terminate:w\", \"terminate:v\", \"init:v\", \"init:w\"]");
    TU_WAIT_UNTIL(child_restarts(rt, "top", "sub") == 1, TU_WAIT_MS);
    TU_WAIT_UNTIL(child_is(rt, "top", "sub", "running"), TU_WAIT_MS);
    assert_int_equal(child_restarts(rt, "top", "x"), 0);
    assert_int_equal(tu_events_count("sub", "crashed"), 1);
    json_t *life = tu_events_lifecycle("sub");
    json_t *crash = json_array_get(life, 1);
    assert_string_equal(json_string_value(json_array_get(crash, 0)), "crashed");
    assert_string_equal(json_string_value(json_object_get(json_array_get(crash, 1), "reason")),
                        "reached_max_restart_intensity");
    json_decref(life);
    /* The new sub counts afresh. */
    json_t *tree = gs_supervisor_json(rt, "top");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(tree, "children"), 1), "kind")),
                        "supervisor");
    json_decref(tree);
}

/* The top of a tree past its intensity stops its children in reverse order and goes away. */
static void test_top_gives_up(void **state)
{
    gs_runtime_t *rt = *state;
    tu_events_subscribe(rt);
    start_tree(rt, "{\"name\": \"sup\", \"max_restarts\": 0, \"children\": ["
                   "{\"name\": \"a\", \"behaviour\": \"logger\"},"
                   "{\"name\": \"b\", \"behaviour\": \"logger\"},"
                   "{\"name\": \"c\", \"behaviour\": \"logger\"}]}");
    assert_int_equal(tu_cast(rt, "a", "\"crash\""), 0);
    assert_log(6, "[\"init:a\", \"init:b\", \"init:c\", \"terminate:a\", \"terminate:c\", "
                  "\"terminate:b\"]");
    TU_WAIT_UNTIL(gone(rt, "sup"), TU_WAIT_MS);
    assert_null(gs_supervisor_json(rt, "sup"));
    TU_WAIT_UNTIL(tu_events_count("sup", "down") == 1, TU_WAIT_MS);
}

/* All children's restarts count against the supervisor's intensity (3 in 5 s by default). */
static void test_intensity_is_the_supervisors(void **state)
{
    gs_runtime_t *rt = *state;
    start_tree(rt, THREE("one_for_one"));
    const char *order[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tu_cast(rt, order[i], "\"crash\""), 0);
        TU_WAIT_UNTIL(child_restarts(rt, "sup", order[i]) == 1 &&
                          child_is(rt, "sup", order[i], "running"),
                      TU_WAIT_MS);
    }
    assert_int_equal(tu_cast(rt, "a", "\"crash\""), 0); /* the 4th restart in 5 s */
    TU_WAIT_UNTIL(gone(rt, "sup"), TU_WAIT_MS);
    assert_true(gone(rt, "a") && gone(rt, "b") && gone(rt, "c"));
}

/* A stop someone else asks for (gs_stop, DELETE /servers/NAME) takes the child out of its tree,
 * as terminate_child + delete_child: permanent, yet not restarted, and not counted against the
 * intensity, so that stopping children one by one cannot take the tree down. */
static void test_a_requested_stop_takes_the_child_out(void **state)
{
    gs_runtime_t *rt = *state;
    start_tree(rt, "{\"name\": \"sup\", \"strategy\": \"one_for_all\", \"max_restarts\": 1, "
                   "\"children\": [{\"name\": \"a\", \"behaviour\": \"logger\"},"
                   "{\"name\": \"b\", \"behaviour\": \"logger\"},"
                   "{\"name\": \"c\", \"behaviour\": \"logger\"}]}");
    assert_int_equal(gs_stop(rt, "b", json_string("bye"), TU_WAIT_MS), 0);
    assert_int_equal(gs_stop(rt, "c", NULL, TU_WAIT_MS), 0);
    /* The supervisor forgot both (its decision comes through its mailbox: wait for it), and
     * one_for_all restarted nobody. */
    TU_WAIT_UNTIL(!in_tree(rt, "sup", "b") && !in_tree(rt, "sup", "c"), TU_WAIT_MS);
    assert_true(gone(rt, "b") && gone(rt, "c"));
    assert_log(5, "[\"init:a\", \"init:b\", \"init:c\", \"terminate:b\", \"terminate:c\"]");
    assert_true(child_is(rt, "sup", "a", "running"));
    assert_int_equal(child_restarts(rt, "sup", "a"), 0);
    /* A crash still counts: the intensity (1) allows one restart of a, all of it left. */
    assert_int_equal(tu_cast(rt, "a", "\"crash\""), 0);
    TU_WAIT_UNTIL(child_restarts(rt, "sup", "a") == 1 && child_is(rt, "sup", "a", "running"),
                  TU_WAIT_MS);
    assert_false(gone(rt, "sup"));
}

/* A restart whose init fails is another crash of that child: it is tried again, each try
 * counting against the intensity, until the supervisor gives up. */
static void test_failed_restarts_count(void **state)
{
    gs_runtime_t *rt = *state;
    start_tree(rt, "{\"name\": \"sup\", \"max_restarts\": 2, \"children\": ["
                   "{\"name\": \"a\", \"behaviour\": \"logger\"},"
                   "{\"name\": \"f\", \"behaviour\": \"logger\"}]}");
    atomic_store(&refuse_inits, true);
    assert_int_equal(tu_cast(rt, "f", "\"crash\""), 0);
    /* crash, 2 restarts that fail, then the third is past the intensity: a is stopped. */
    assert_log(6, "[\"init:a\", \"init:f\", \"terminate:f\", \"init:f\", \"init:f\", "
                  "\"terminate:a\"]");
    TU_WAIT_UNTIL(gone(rt, "sup"), TU_WAIT_MS);
    assert_true(gone(rt, "a") && gone(rt, "f"));
    assert_int_equal(log_len(), 6);
}

/* ---------------------------------------------------------------------------------------- */
/* Children of a running supervisor                                                           */
/* ---------------------------------------------------------------------------------------- */

static void test_child_management(void **state)
{
    gs_runtime_t *rt = *state;
    start_tree(rt, "{\"name\": \"sup\", \"children\": [{\"name\": \"a\", \"behaviour\": "
                   "\"logger\"}]}");
    json_t *spec = tu_json("{\"name\": \"d\", \"behaviour\": \"logger\"}"), *res = NULL;
    assert_int_equal(gs_supervisor_start_child(rt, "sup", spec, TU_WAIT_MS, &res), 0);
    assert_string_equal(json_string_value(json_object_get(res, "status")), "running");
    json_decref(res);
    assert_int_equal(gs_supervisor_start_child(rt, "sup", spec, TU_WAIT_MS, NULL), GS_EALREADY);
    json_decref(spec);
    assert_log(2, "[\"init:a\", \"init:d\"]");
    assert_int_equal(gs_supervisor_delete_child(rt, "sup", "d", TU_WAIT_MS), GS_ERUNNING);
    assert_int_equal(gs_supervisor_terminate_child(rt, "sup", "d", TU_WAIT_MS), 0);
    assert_log(3, "[\"init:a\", \"init:d\", \"terminate:d\"]");
    assert_true(child_is(rt, "sup", "d", "stopped"));
    assert_true(gone(rt, "d"));
    assert_int_equal(gs_supervisor_restart_child(rt, "sup", "d", TU_WAIT_MS), 0);
    assert_log(4, "[\"init:a\", \"init:d\", \"terminate:d\", \"init:d\"]");
    assert_int_equal(gs_supervisor_terminate_child(rt, "sup", "d", TU_WAIT_MS), 0);
    assert_int_equal(gs_supervisor_delete_child(rt, "sup", "d", TU_WAIT_MS), 0);
    json_t *gone_child = tree_child(rt, "sup", "d");
    assert_null(gone_child);
    assert_int_equal(gs_supervisor_terminate_child(rt, "sup", "d", TU_WAIT_MS), GS_ENOCHILD);
    assert_int_equal(gs_supervisor_terminate_child(rt, "a", "d", TU_WAIT_MS), GS_ENOSUPERVISOR);
    /* A child that fails to start is not added. */
    json_t *bad = tu_json("{\"name\": \"e\", \"behaviour\": \"logger\", \"args\": {\"fail\": "
                          "true}}");
    assert_int_equal(gs_supervisor_start_child(rt, "sup", bad, TU_WAIT_MS, NULL), GS_ESTARTCHILD);
    json_decref(bad);
    assert_null(tree_child(rt, "sup", "e"));
    /* The supervisor's stop stops what remains: a only. */
    assert_int_equal(gs_stop(rt, "sup", NULL, TU_WAIT_MS), 0);
    assert_log(7, "[\"init:a\", \"init:d\", \"terminate:d\", \"init:d\", \"terminate:d\", "
                  "\"init:e\", \"terminate:a\"]");
}

/* A child that does not stop within its shutdown time is treated as killed: the stop of the
 * tree goes on without it (the runtime cannot interrupt its callback; it ends on its own). */
static void test_shutdown_time(void **state)
{
    gs_runtime_t *rt = *state;
    tu_events_subscribe(rt);
    start_tree(rt, "{\"name\": \"sup\", \"children\": ["
                   "{\"name\": \"a\", \"behaviour\": \"logger\"},"
                   "{\"name\": \"slow\", \"behaviour\": \"logger\", \"shutdown\": 50, "
                   "\"args\": {\"slow_terminate_ms\": 3000}}]}");
    int64_t t0 = tu_now_ms();
    assert_int_equal(gs_stop(rt, "sup", NULL, TU_WAIT_MS), 0);
    /* a stopped before slow's terminate ended */
    assert_log(3, "[\"init:a\", \"init:slow\", \"terminate:a\"]");
    assert_true(tu_now_ms() - t0 < 3000);
    TU_WAIT_UNTIL(log_len() == 4, TU_WAIT_MS); /* slow ends on its own */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        tree_test(test_start_in_order_stop_in_reverse),
        tree_test(test_start_failure_rolls_back),
        tree_test(test_nested_start_failure_rolls_back),
        tree_test(test_bad_specs),
        tree_test(test_one_for_one),
        tree_test(test_one_for_all),
        tree_test(test_rest_for_one),
        tree_test(test_restart_types),
        tree_test(test_escalation),
        tree_test(test_top_gives_up),
        tree_test(test_intensity_is_the_supervisors),
        tree_test(test_a_requested_stop_takes_the_child_out),
        tree_test(test_failed_restarts_count),
        tree_test(test_child_management),
        tree_test(test_shutdown_time),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    json_decref(calls);
    return rc;
}
