/*
 * test_cli.c: genserv's command-line client (`genserv call counter get_count`, docs/cli.md),
 * run as a user runs it: the real binary as a child process with GENSERV_URL (and
 * GENSERV_TOKEN) in its environment, against a real genserv the harness started. Each test
 * asserts what a user or a script relies on: what it prints on stdout, what it says on stderr,
 * and its exit status, whose distinct values (cli.h, GS_CLI_EXIT_*) are the client's contract
 * with scripts. What a command did is checked through the HTTP API, not only through the
 * client's own words.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

extern char **environ;

/* The client's exit statuses (server/cli.h): the test spells them out, as a script would. */
enum {
    EXIT_OK = 0,
    EXIT_ERROR = 1,
    EXIT_USAGE = 2,
    EXIT_CONNECT = 3,
    EXIT_TIMEOUT = 4,
    EXIT_NOT_FOUND = 5,
    EXIT_CRASHED = 6,
    EXIT_UNAUTHORIZED = 7,
};

/* One run of the client, started in the background. */
typedef struct cli_run_s {
    pid_t pid;
    char out_path[40], err_path[40];
    int code;  /* exit status once it ended; -1 when it died from a signal or was killed */
    char *out; /* its stdout and stderr once it ended (owned) */
    char *err;
} cli_run_t;

/* What the last run() printed, for the assertions that follow it. */
static cli_run_t last;

/* The whole of a file the test wrote (new memory); failing the test when it cannot be read. */
static char *slurp(const char *path)
{
    char *text = h_slurp(path, NULL);

    assert_non_null(text);
    return text;
}

/*
 * Start `genserv args...` (NULL-terminated, borrowed) with the test's environment less
 * GENSERV_*, plus GENSERV_URL=srv's URL (unless url_env is false) and GENSERV_TOKEN=token when
 * token is not NULL.
 */
static void cli_spawn(cli_run_t *r, const h_server_t *srv, bool url_env, const char *token,
                      const char *const *args)
{
    char *argv[64], *envp[512], url[320], tok[300];
    size_t n = 0, k = 0;
    int out, err;

    memset(r, 0, sizeof(*r));
    argv[n++] = (char *)GENSERV_BIN;
    for (size_t i = 0; args[i] != NULL; i++) {
        assert_true(n + 1 < 64);
        argv[n++] = (char *)args[i];
    }
    argv[n] = NULL;
    for (size_t i = 0; environ[i] != NULL && k + 4 < 512; i++)
        if (strncmp(environ[i], "GENSERV_", 8) != 0)
            envp[k++] = environ[i];
    snprintf(url, sizeof(url), "GENSERV_URL=%s", srv->url);
    if (url_env)
        envp[k++] = url;
    if (token != NULL) {
        snprintf(tok, sizeof(tok), "GENSERV_TOKEN=%s", token);
        envp[k++] = tok;
    }
    envp[k] = NULL;
    snprintf(r->out_path, sizeof(r->out_path), "/tmp/gs-cli-out-XXXXXX");
    snprintf(r->err_path, sizeof(r->err_path), "/tmp/gs-cli-err-XXXXXX");
    out = mkstemp(r->out_path);
    err = mkstemp(r->err_path);
    assert_true(out >= 0 && err >= 0);
    r->pid = fork();
    assert_true(r->pid >= 0);
    if (r->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(out, STDOUT_FILENO);
        dup2(err, STDERR_FILENO);
        execve(GENSERV_BIN, argv, envp);
        _exit(127);
    }
    close(out);
    close(err);
}

/* true while the run has not ended (reaps it when it has). */
static bool cli_running(cli_run_t *r)
{
    int status;

    if (r->pid == 0)
        return false;
    if (waitpid(r->pid, &status, WNOHANG) != r->pid)
        return true;
    r->pid = 0;
    r->code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return false;
}

/* Wait up to H_WAIT_MS (killing it past that), then read its output. Returns its status. */
static int cli_wait(cli_run_t *r)
{
    int64_t deadline = h_now_ms() + H_WAIT_MS;

    while (cli_running(r)) {
        if (h_now_ms() > deadline) {
            kill(r->pid, SIGKILL);
            waitpid(r->pid, NULL, 0);
            r->pid = 0;
            r->code = -1;
            break;
        }
        h_sleep_ms(5);
    }
    r->out = slurp(r->out_path);
    r->err = slurp(r->err_path);
    unlink(r->out_path);
    unlink(r->err_path);
    return r->code;
}

static void cli_free(cli_run_t *r)
{
    if (r->pid != 0) {
        kill(r->pid, SIGKILL);
        waitpid(r->pid, NULL, 0);
        unlink(r->out_path);
        unlink(r->err_path);
    }
    free(r->out);
    free(r->err);
    memset(r, 0, sizeof(*r));
}

/* Run the client to its end; its output stays in `last` until the next run. */
static int run_with(const h_server_t *srv, const char *token, const char *const *args)
{
    cli_free(&last);
    cli_spawn(&last, srv, true, token, args);
    return cli_wait(&last);
}

#define RUN(fx, ...)          run_with(&(fx)->srv, NULL, (const char *const[]){__VA_ARGS__, NULL})
#define RUN_TOKEN(fx, t, ...) run_with(&(fx)->srv, (t), (const char *const[]){__VA_ARGS__, NULL})

/* Assert the last run's status, printing what it said when it is not. */
#define EXPECT_EXIT(want)                                                                          \
    do {                                                                                           \
        if (last.code != (want))                                                                   \
            fail_msg("exit %d, expected %d\nstdout:\n%s\nstderr:\n%s", last.code, (want),          \
                     last.out, last.err);                                                          \
    } while (0)

static void expect_out(const char *needle)
{
    if (strstr(last.out, needle) == NULL)
        fail_msg("stdout should hold \"%s\":\n%s\nstderr:\n%s", needle, last.out, last.err);
}

static void expect_err(const char *needle)
{
    if (strstr(last.err, needle) == NULL)
        fail_msg("stderr should hold \"%s\":\n%s", needle, last.err);
}

/* The last run's stdout as JSON (new reference), asserting it is one JSON document. */
static json_t *out_json(void)
{
    json_error_t e;
    json_t *j = json_loads(last.out, JSON_DECODE_ANY, &e);

    if (j == NULL)
        fail_msg("stdout is not JSON (%s):\n%s", e.text, last.out);
    return j;
}

static void expect_out_json(const char *want_text)
{
    json_t *got = out_json(), *want = h_json(want_text);

    assert_true(h_json_equal(got, want));
    json_decref(got);
    json_decref(want);
}

/* ---------------------------------------------------------------------------------------- */
/* Messages: JSON, the short form, tuples of several arguments                               */
/* ---------------------------------------------------------------------------------------- */

static void test_call_prints_the_reply_and_json_prints_the_answer(void **state)
{
    h_fixture_t *fx = *state;

    RUN(fx, "call", "counter", "get_count");
    EXPECT_EXIT(EXIT_OK);
    assert_string_equal(last.out, "0\n");
    assert_string_equal(last.err, "");

    RUN(fx, "cast", "counter", "increment");
    EXPECT_EXIT(EXIT_OK);
    assert_string_equal(last.out, "ok\n");
    RUN(fx, "call", "counter", "get_count", "--json");
    EXPECT_EXIT(EXIT_OK);
    expect_out_json("{\"reply\": 1}");
    /* Options may come anywhere after the subcommand, and --opt=value works too. */
    RUN(fx, "call", "--timeout=2000", "counter", "get_count");
    EXPECT_EXIT(EXIT_OK);
    assert_string_equal(last.out, "1\n");
    H_PASS(fx);
}

static void test_every_message_form_arrives_as_the_docs_say(void **state)
{
    h_fixture_t *fx = *state;
    json_t *got, *want;

    assert_int_equal(h_start_server(&fx->srv, "r", "receiver", NULL, NULL), 201);
    /* Each form, sent to a receiver, which keeps the last ten messages it got. */
    RUN(fx, "send", "r", "hello"); /* a bare word: a string (an atom) */
    EXPECT_EXIT(EXIT_OK);
    RUN(fx, "send", "r", "{:greeting, \"hi\"}"); /* a tuple in the short form */
    EXPECT_EXIT(EXIT_OK);
    RUN(fx, "send", "r", "greeting", "first entry", "42"); /* several arguments: a tuple */
    EXPECT_EXIT(EXIT_OK);
    RUN(fx, "send", "r", "[:a, {b, -1.5}, nil, true, \"x y\"]"); /* a nested list */
    EXPECT_EXIT(EXIT_OK);
    RUN(fx, "send", "r", "[\"push\", 5]"); /* JSON */
    EXPECT_EXIT(EXIT_OK);
    RUN(fx, "send", "r", "5"); /* JSON: a number */
    EXPECT_EXIT(EXIT_OK);
    RUN(fx, "send", "r", "\"5\""); /* JSON: a string */
    EXPECT_EXIT(EXIT_OK);
    RUN(fx, "send", "r", ":true"); /* an atom, never the boolean */
    EXPECT_EXIT(EXIT_OK);
    RUN(fx, "send", "r", "{\"k\": 1}"); /* JSON: an object */
    EXPECT_EXIT(EXIT_OK);
    RUN(fx, "send", "r", "--", "--verbose"); /* after --, no option: a string */
    EXPECT_EXIT(EXIT_OK);

    H_WAIT_UNTIL(h_call_int(&fx->srv, "r", "\"received\"") == 10, H_WAIT_MS);
    RUN(fx, "call", "r", "last", "--json");
    EXPECT_EXIT(EXIT_OK);
    got = out_json();
    want = h_json("{\"reply\": [\"hello\", [\"greeting\", \"hi\"], [\"greeting\", \"first entry\", "
                  "42], [\"a\", [\"b\", -1.5], null, true, \"x y\"], [\"push\", 5], 5, \"5\", "
                  "\"true\", {\"k\": 1}, \"--verbose\"]}");
    assert_true(h_json_equal(got, want));
    json_decref(got);
    json_decref(want);

    /* The short form in a call, and a cast's tuple of arguments, reach the handlers. */
    RUN(fx, "cast", "counter", "{:increment, 5}");
    EXPECT_EXIT(EXIT_OK);
    RUN(fx, "cast", "counter", "increment", "5");
    EXPECT_EXIT(EXIT_OK);
    RUN(fx, "call", "counter", ":get_count");
    EXPECT_EXIT(EXIT_OK);
    assert_string_equal(last.out, "10\n");
    H_PASS(fx);
}

static void test_usage_errors_exit_2_and_send_nothing(void **state)
{
    h_fixture_t *fx = *state;

    RUN(fx, "cast", "counter", "{:increment, ");
    EXPECT_EXIT(EXIT_USAGE);
    expect_err("genserv cast:");
    RUN(fx, "cast", "counter", "[increment 5]");
    EXPECT_EXIT(EXIT_USAGE);
    RUN(fx, "cast", "counter");
    EXPECT_EXIT(EXIT_USAGE);
    expect_err("a server name and a message are required");
    RUN(fx, "call", "counter", "get_count", "--frobnicate");
    EXPECT_EXIT(EXIT_USAGE);
    expect_err("unknown option --frobnicate");
    RUN(fx, "call", "counter", "get_count", "--timeout", "soon");
    EXPECT_EXIT(EXIT_USAGE);
    RUN(fx, "send-after", "counter", "-5", "increment");
    EXPECT_EXIT(EXIT_USAGE);
    /* The token is never a flag: flags show in ps. */
    RUN(fx, "call", "counter", "get_count", "--token", "secret");
    EXPECT_EXIT(EXIT_USAGE);
    expect_err("GENSERV_TOKEN");
    RUN(fx, "timers", "sideways");
    EXPECT_EXIT(EXIT_USAGE);
    /* None of them reached the counter. */
    assert_int_equal(h_call_int(&fx->srv, "counter", "\"get_count\""), 0);
    H_PASS(fx);
}

/* ---------------------------------------------------------------------------------------- */
/* Exit codes                                                                                */
/* ---------------------------------------------------------------------------------------- */

static void test_each_kind_of_error_has_its_exit_code_and_the_apis_words(void **state)
{
    h_fixture_t *fx = *state;
    h_server_t gone;

    RUN(fx, "call", "nope", "get_count");
    EXPECT_EXIT(EXIT_NOT_FOUND);
    expect_err("genserv: no server is running under the name \"nope\" (no_such_server)");
    assert_string_equal(last.out, "");
    /* With --json, the API's error also goes to stdout, for the script. */
    RUN(fx, "call", "nope", "get_count", "--json");
    EXPECT_EXIT(EXIT_NOT_FOUND);
    expect_out("\"error\":\"no_such_server\"");

    RUN(fx, "call", "slow", "sleep", "2000", "--timeout", "300");
    EXPECT_EXIT(EXIT_TIMEOUT);
    expect_err("(timeout)");

    assert_int_equal(h_start_server(&fx->srv, "m", "misbehaving", NULL, NULL), 201);
    RUN(fx, "call", "m", "message");
    EXPECT_EXIT(EXIT_CRASHED);
    expect_err("(server_crashed): reason \"calling_self\"");

    /* Any other error of the API: here 409 already_started. */
    RUN(fx, "start", "counter", "counter");
    EXPECT_EXIT(EXIT_ERROR);
    expect_err("(already_started)");

    /* Nothing listening: a genserv that was stopped, so the port is surely free of it. */
    assert_int_equal(h_start(&gone, NULL), 0);
    assert_int_equal(h_stop(&gone, H_STOP_MS), 0);
    h_cleanup_files(&gone);
    RUN(fx, "call", "counter", "get_count", "--url", gone.url);
    EXPECT_EXIT(EXIT_CONNECT);
    expect_err(gone.url);
    /* --url overrides GENSERV_URL (which names the fixture's genserv here). */
    RUN(fx, "ps", "--url", gone.url);
    EXPECT_EXIT(EXIT_CONNECT);
    H_PASS(fx);
}

static void test_the_token_comes_from_the_environment(void **state)
{
    h_fixture_t *fx = *state;
    const char *const env[] = {"GENSERV_TOKEN=s3cret", "GENSERV_READ_TOKEN=viewer", NULL};
    const h_opts_t opts = {.env = env};

    h_fixture_restart(fx, &opts);
    RUN(fx, "call", "counter", "get_count");
    EXPECT_EXIT(EXIT_UNAUTHORIZED);
    expect_err("(unauthorized)");
    RUN_TOKEN(fx, "wrong", "ps");
    EXPECT_EXIT(EXIT_UNAUTHORIZED);
    RUN_TOKEN(fx, "viewer", "cast", "counter", "increment");
    EXPECT_EXIT(EXIT_UNAUTHORIZED);
    expect_err("(forbidden)");
    RUN_TOKEN(fx, "viewer", "ps");
    EXPECT_EXIT(EXIT_OK);
    RUN_TOKEN(fx, "s3cret", "cast", "counter", "increment");
    EXPECT_EXIT(EXIT_OK);
    RUN_TOKEN(fx, "s3cret", "call", "counter", "get_count");
    EXPECT_EXIT(EXIT_OK);
    assert_string_equal(last.out, "1\n");
    H_PASS(fx);
}

/* ---------------------------------------------------------------------------------------- */
/* A held deferred call                                                                      */
/* ---------------------------------------------------------------------------------------- */

static void test_a_deferred_reply_is_waited_for(void **state)
{
    h_fixture_t *fx = *state;
    cli_run_t r;

    /* slow holds the call (a deferred reply plus a timer) for 3 s: the client must wait. */
    cli_spawn(&r, &fx->srv, true, NULL,
              (const char *const[]){"call", "slow", "sleep", "3000", "--timeout", "30000", NULL});
    H_WAIT_UNTIL(h_server_int(&fx->srv, "slow", "held_calls", false) == 1, H_WAIT_MS);
    /* Held by the server, and the client still waiting for it. */
    assert_true(cli_running(&r));
    assert_int_equal(cli_wait(&r), EXIT_OK);
    assert_string_equal(r.out, "\"response!\"\n");
    assert_int_equal(h_server_int(&fx->srv, "slow", "held_calls", false), 0);
    cli_free(&r);

    /* The batcher's pushes are held until its flush, and answered together. */
    RUN(fx, "call", "batcher", "push", "5");
    EXPECT_EXIT(EXIT_OK);
    assert_string_equal(last.out, "\"ok\"\n");
    H_PASS(fx);
}

/* ---------------------------------------------------------------------------------------- */
/* Servers and trees                                                                         */
/* ---------------------------------------------------------------------------------------- */

/* The line of `ps` for the server name, or fail. Points into last.out. */
static const char *ps_line(const char *name)
{
    char want[64];
    const char *p;

    snprintf(want, sizeof(want), "\n%s ", name);
    p = strstr(last.out, want);
    if (p == NULL)
        fail_msg("ps shows no line for %s:\n%s", name, last.out);
    return p + 1;
}

static void test_start_ps_state_stop_and_tree(void **state)
{
    h_fixture_t *fx = *state;
    json_t *j, *s;
    const char *line;
    size_t i;
    bool found = false;

    RUN(fx, "start", "counter", "c2", "{\"initial\": 10}", "--restart", "transient");
    EXPECT_EXIT(EXIT_OK);
    assert_string_equal(last.out, "started c2 (counter)\n");
    j = h_server_info(&fx->srv, "c2");
    assert_non_null(j);
    assert_string_equal(h_str(j, "restart"), "transient");
    json_decref(j);

    RUN(fx, "cast", "c2", "increment");
    EXPECT_EXIT(EXIT_OK);
    RUN(fx, "state", "c2");
    EXPECT_EXIT(EXIT_OK);
    expect_out_json("{\"count\": 11}");
    RUN(fx, "state", "c2", "--json");
    EXPECT_EXIT(EXIT_OK);
    j = out_json();
    assert_string_equal(h_str(j, "name"), "c2");
    json_decref(j);

    RUN(fx, "ps");
    EXPECT_EXIT(EXIT_OK);
    assert_memory_equal(last.out, "NAME ", 5);
    expect_out("MAILBOX");
    expect_out("MEMORY");
    expect_out("UPTIME");
    line = ps_line("c2");
    assert_true(strncmp(line, "c2 ", 3) == 0);
    assert_non_null(strstr(line, "counter"));
    assert_non_null(strstr(line, "running"));
    RUN(fx, "ps", "--json");
    EXPECT_EXIT(EXIT_OK);
    j = out_json();
    json_array_foreach(json_object_get(j, "servers"), i, s) found =
        found || strcmp(h_str(s, "name"), "c2") == 0;
    assert_true(found);
    json_decref(j);

    /* A child of the running default tree. */
    RUN(fx, "start", "counter", "audit", "--supervisor", "root");
    EXPECT_EXIT(EXIT_OK);
    RUN(fx, "tree");
    EXPECT_EXIT(EXIT_OK);
    expect_out("root  supervisor one_for_one, running");
    expect_out("\n  audit  counter, permanent, running, restarts 0\n");
    RUN(fx, "tree", "root", "--json");
    EXPECT_EXIT(EXIT_OK);
    j = out_json();
    assert_int_equal(json_array_size(json_object_get(j, "children")), 6);
    json_decref(j);
    RUN(fx, "tree", "nope");
    EXPECT_EXIT(EXIT_NOT_FOUND);
    expect_err("(no_such_supervisor)");

    RUN(fx, "stop", "c2", "--reason", "{:shutdown, :maintenance}");
    EXPECT_EXIT(EXIT_OK);
    assert_string_equal(last.out, "stopped c2\n");
    RUN(fx, "state", "c2");
    EXPECT_EXIT(EXIT_NOT_FOUND);
    RUN(fx, "stop", "c2");
    EXPECT_EXIT(EXIT_NOT_FOUND);
    /* Without --data-dir a durable server cannot be: the API's 409 not_supported. */
    RUN(fx, "start", "counter", "d", "--durable");
    EXPECT_EXIT(EXIT_ERROR);
    expect_err("(not_supported)");
    H_PASS(fx);
}

/* ---------------------------------------------------------------------------------------- */
/* Timers                                                                                    */
/* ---------------------------------------------------------------------------------------- */

static void test_send_after_and_timers(void **state)
{
    h_fixture_t *fx = *state;
    char ref[64];
    json_t *j;

    assert_int_equal(h_start_server(&fx->srv, "r", "receiver", NULL, NULL), 201);
    RUN(fx, "send-after", "r", "60000", "greeting", "later");
    EXPECT_EXIT(EXIT_OK);
    assert_int_equal(strlen(last.out), 49); /* 48 hex digits and a newline */
    snprintf(ref, sizeof(ref), "%.48s", last.out);

    /* Every pending timer: the client's, and the ticker's own tick (made by the ticker). */
    RUN(fx, "timers");
    EXPECT_EXIT(EXIT_OK);
    expect_out("TIMER");
    expect_out(ref);
    expect_out("[\"greeting\",\"later\"]");
    expect_out(" http ");
    expect_out(" server:ticker ");
    /* --http: only the ones clients made. */
    RUN(fx, "timers", "--http", "--json");
    EXPECT_EXIT(EXIT_OK);
    j = out_json();
    assert_int_equal(json_integer_value(json_object_get(j, "count")), 1);
    json_decref(j);
    RUN(fx, "timers", "read", ref);
    EXPECT_EXIT(EXIT_OK);
    expect_out(" ms left\n");
    RUN(fx, "timers", "cancel", ref);
    EXPECT_EXIT(EXIT_OK);
    expect_out("left (cancelled)");
    RUN(fx, "timers", "read", ref);
    EXPECT_EXIT(EXIT_NOT_FOUND);
    expect_err("(no_such_timer)");

    /* One that fires: it arrives in handle_info. */
    RUN(fx, "send-after", "r", "0", "ping");
    EXPECT_EXIT(EXIT_OK);
    H_WAIT_UNTIL(h_call_int(&fx->srv, "r", "\"received\"") == 1, H_WAIT_MS);
    H_PASS(fx);
}

/* ---------------------------------------------------------------------------------------- */
/* Lua behaviours                                                                            */
/* ---------------------------------------------------------------------------------------- */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_behaviours_list_show_upload_upgrade(void **state)
{
    h_fixture_t *fx = *state;
    char dir[256], v1[300], v2[300], bad[300];

    assert_int_equal(h_tempdir(dir, sizeof(dir), "cli"), 0);
    snprintf(v1, sizeof(v1), "%s/tally.lua", dir);
    snprintf(v2, sizeof(v2), "%s/tally2.lua", dir);
    snprintf(bad, sizeof(bad), "%s/broken.lua", dir);
    write_file(v1, "return {\n  vsn = \"1\",\n"
                   "  init = function(args) return {\"ok\", 0} end,\n"
                   "  handle_cast = function(n, count) return {\"noreply\", count + n} end,\n"
                   "  handle_call = function(msg, from, count) return {\"reply\", count, count} "
                   "end,\n}\n");
    write_file(v2, "return {\n  vsn = \"2\",\n"
                   "  init = function(args) return {\"ok\", {count = 0}} end,\n"
                   "  handle_cast = function(n, s) return {\"noreply\", {count = s.count + n}} "
                   "end,\n"
                   "  handle_call = function(msg, from, s) return {\"reply\", s, s} end,\n"
                   "  code_change = function(old, count, extra) return {\"ok\", {count = count}} "
                   "end,\n}\n");
    write_file(bad, "return {\n  init = function(a) return {\"ok\", 0 end\n}\n");

    RUN(fx, "behaviours");
    EXPECT_EXIT(EXIT_OK);
    expect_out("DESCRIPTION");
    expect_out("\ncounter ");
    RUN(fx, "behaviours", "show", "counter");
    EXPECT_EXIT(EXIT_OK);
    expect_out("increment");

    RUN(fx, "behaviours", "upload", v1);
    EXPECT_EXIT(EXIT_OK);
    assert_string_equal(last.out, "uploaded tally (vsn 1)\n");
    RUN(fx, "behaviours", "upload", v1, "--name", "tally_b");
    EXPECT_EXIT(EXIT_OK);
    RUN(fx, "behaviours", "upload", v1);
    EXPECT_EXIT(EXIT_ERROR);
    expect_err("(already_registered)");
    RUN(fx, "behaviours", "upload", bad);
    EXPECT_EXIT(EXIT_ERROR);
    expect_err("broken:2:");
    RUN(fx, "behaviours", "upload", "/nonexistent/x.lua");
    EXPECT_EXIT(EXIT_USAGE);

    RUN(fx, "start", "tally", "t");
    EXPECT_EXIT(EXIT_OK);
    RUN(fx, "cast", "t", "5");
    EXPECT_EXIT(EXIT_OK);
    RUN(fx, "behaviours", "show", "tally");
    EXPECT_EXIT(EXIT_OK);
    expect_out("[\"t\"]");
    expect_out("handle_cast = function(n, count)");

    RUN(fx, "behaviours", "upgrade", "tally", v2);
    EXPECT_EXIT(EXIT_OK);
    assert_string_equal(last.out, "upgraded tally to vsn 2: 1 server(s) upgraded, 0 failed\n");
    RUN(fx, "call", "t", "get", "--json");
    EXPECT_EXIT(EXIT_OK);
    expect_out_json("{\"reply\": {\"count\": 5}}");
    RUN(fx, "behaviours", "upgrade", "counter", v2);
    EXPECT_EXIT(EXIT_ERROR);
    expect_err("(read_only_behaviour)");
    RUN(fx, "behaviours", "show", "nope");
    EXPECT_EXIT(EXIT_NOT_FOUND);
    h_rmtree(dir);
    H_PASS(fx);
}

/* ---------------------------------------------------------------------------------------- */
/* watch, metrics, help                                                                      */
/* ---------------------------------------------------------------------------------------- */

/* true when the file at path holds needle (the output of a run still going). */
static bool file_has(const char *path, const char *needle)
{
    char *text = slurp(path);
    bool has = strstr(text, needle) != NULL;

    free(text);
    return has;
}

static void test_watch_prints_one_line_per_event_until_ctrl_c(void **state)
{
    h_fixture_t *fx = *state;
    cli_run_t r, j;
    char *line, *save = NULL;
    size_t lines = 0;

    cli_spawn(&r, &fx->srv, true, NULL, (const char *const[]){"watch", NULL});
    cli_spawn(&j, &fx->srv, true, NULL, (const char *const[]){"watch", "w1", "--json", NULL});
    H_WAIT_UNTIL(file_has(r.out_path, "snapshot: ") && file_has(j.out_path, "\"snapshot\""),
                 H_WAIT_MS);
    assert_int_equal(h_start_server(&fx->srv, "w1", "counter", NULL, NULL), 201);
    H_WAIT_UNTIL(file_has(r.out_path, " started w1 (counter)\n"), H_WAIT_MS);
    /* The boot servers started before the watch: replayed from genserv's history, marked. */
    assert_true(file_has(r.out_path, " history started counter (counter)\n"));
    H_WAIT_UNTIL(file_has(j.out_path, "\"type\":\"started\""), H_WAIT_MS);
    /* Ctrl-C ends a watch as its normal end. */
    kill(r.pid, SIGINT);
    kill(j.pid, SIGINT);
    assert_int_equal(cli_wait(&r), EXIT_OK);
    assert_int_equal(cli_wait(&j), EXIT_OK);
    /* --json: every line is one event's JSON, about w1 only. */
    for (line = strtok_r(j.out, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        json_t *ev = h_json(line);
        const char *type = h_str(ev, "type");

        assert_non_null(type);
        if (strcmp(type, "history") == 0) { /* what happened to w1 before: nothing */
            assert_int_equal(json_array_size(json_object_get(ev, "events")), 0);
        } else if (strcmp(type, "snapshot") != 0) {
            assert_string_equal(h_str(ev, "server"), "w1");
        }
        json_decref(ev);
        lines++;
    }
    assert_true(lines >= 2);
    cli_free(&r);
    cli_free(&j);

    RUN(fx, "watch", "--url", "http://127.0.0.1:1");
    EXPECT_EXIT(EXIT_CONNECT);
    H_PASS(fx);
}

static void test_metrics_and_help(void **state)
{
    h_fixture_t *fx = *state;

    RUN(fx, "metrics");
    EXPECT_EXIT(EXIT_OK);
    expect_out("# TYPE genserv_http_requests_total counter\n");
    assert_true(h_metric(last.out, "genserv_servers") >= 5);

    RUN(fx, "help");
    EXPECT_EXIT(EXIT_OK);
    expect_out("genserv call NAME MESSAGE...");
    expect_out("Exit status:");
    RUN(fx, "help", "call");
    EXPECT_EXIT(EXIT_OK);
    expect_out("genserv call counter get_count");
    RUN(fx, "call", "--help");
    EXPECT_EXIT(EXIT_OK);
    expect_out("usage: genserv call");
    RUN(fx, "help", "messages");
    EXPECT_EXIT(EXIT_OK);
    expect_out("short");
    RUN(fx, "help", "nope");
    EXPECT_EXIT(EXIT_USAGE);
    H_PASS(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_call_prints_the_reply_and_json_prints_the_answer,
                                        h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_every_message_form_arrives_as_the_docs_say, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_usage_errors_exit_2_and_send_nothing, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(
            test_each_kind_of_error_has_its_exit_code_and_the_apis_words, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_the_token_comes_from_the_environment, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_a_deferred_reply_is_waited_for, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_start_ps_state_stop_and_tree, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_send_after_and_timers, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_behaviours_list_show_upload_upgrade, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_watch_prints_one_line_per_event_until_ctrl_c, h_setup,
                                        h_teardown),
        cmocka_unit_test_setup_teardown(test_metrics_and_help, h_setup, h_teardown),
    };
    int rc;

    h_init(170);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    cli_free(&last);
    return rc;
}
