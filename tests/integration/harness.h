/*
 * harness.h: what the integration tests need to drive the real genserv binary over real HTTP.
 *
 * The tests start build/genserv (its path comes from GENSERV_BIN, set by CMake) on
 * 127.0.0.1 port 0, learn the chosen port from the first line of its stdout, and talk to it
 * with libcurl, exactly as a user with curl would. Three rules keep them honest and tidy:
 *   - no process is ever left behind: every child is stopped by PID (SIGTERM, then SIGKILL
 *     after a deadline) in the fixture's teardown, again by an atexit handler, by a watchdog
 *     alarm that kills every child if the executable hangs, and by PR_SET_PDEATHSIG if the
 *     test process itself is killed (ctest's timeout);
 *   - waiting is polling with a generous deadline, never a fixed sleep that must be "long
 *     enough": a deadline is only reached when something is broken. A "nothing happened"
 *     check waits for a later fact that proves the moment has passed (a marker timer due
 *     after the cancelled one has arrived, a state the last change shows in); a bare sleep
 *     stays only where real time must pass for the behaviour itself, with a comment;
 *   - when a test fails, its server's stderr (captured in a temp file) is printed.
 *
 * API:
 *   h_init(watchdog_s)                   once per executable, first thing in main()
 *   h_start(srv, opts) / h_stop(srv, ms) spawn and wait for "listening on ..."; stop by PID
 *   h_setup / h_teardown                 cmocka fixtures around a default genserv (h_fixture_t);
 *                                        a test marks success with H_PASS(fx) as its last step
 *   h_fixture_restart(fx, opts)          replace the fixture's genserv with one started with opts
 *   h_request / h_request_ex             one HTTP request: status, body, parsed JSON, headers
 *   h_async_start / h_async_wait         the same on a thread, for concurrent and held calls
 *   h_multi_start / h_multi_wait         n identical requests at once with curl multi
 *   h_call / h_deliver / h_start_server  shorthands for the JSON endpoints (h_call_int,
 *                                        h_push_async: a batcher push held on a thread)
 *   h_metrics_value / h_metric           one sample of GET /metrics (or of its text)
 *   H_WAIT_UNTIL / h_wait_until          wait on a condition, failing the test / returning
 *   h_events_open / h_events_wait        read GET /events in the background, wait for an event
 *                                        (h_events_last: the latest one of a kind so far)
 *   h_tempdir / h_rmtree                 a data directory that outlives restarts, and its removal
 */
#ifndef GS_INTEGRATION_HARNESS_H
#define GS_INTEGRATION_HARNESS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* How long to wait for something that should happen much sooner: only a hang reaches these. */
#define H_START_MS 20000
#define H_STOP_MS  20000
#define H_WAIT_MS  10000

/** A genserv child process. */
typedef struct h_server_s {
    pid_t pid;         /* 0 once reaped */
    char url[288];     /* "http://127.0.0.1:PORT" */
    char out_path[64]; /* its stdout */
    char err_path[64]; /* its stderr */
    char cfg_path[64]; /* the config file written for it, or "" */
    int status;        /* waitpid status once reaped */
    bool killed;       /* SIGKILL was needed */
} h_server_t;

/** What to start genserv with; every field may be NULL. */
typedef struct h_opts_s {
    const char *const *args; /* extra arguments after --listen 127.0.0.1:0, NULL-terminated */
    const char *const *env;  /* extra "NAME=value" entries, NULL-terminated; each replaces the
                                test's own NAME, if any */
    const char *config_json; /* written to a temp file and passed as --config FILE */
    /* When not 0: the child's soft RLIMIT_FSIZE in bytes (the hard limit stays), with SIGXFSZ
     * ignored, so that a write past it fails with EFBIG as a full disk would fail it with
     * ENOSPC. h_set_fsize_limit raises it again while the child runs. */
    unsigned long long fsize_limit;
} h_opts_t;

/**
 * Initialise libcurl, the atexit cleanup and a watchdog: after watchdog_s seconds every child
 * is killed and the executable exits 1 (set it below the CTest TIMEOUT).
 */
void h_init(unsigned watchdog_s);

/**
 * true when scripts/valgrind.sh runs every genserv under memcheck (GS_TEST_WRAPPER names
 * valgrind): genserv is 10-50x slower there, and its PID is valgrind's, whose RSS shows
 * memcheck's shadow memory and freed-block queue rather than what genserv holds. Tests scale
 * their loads down and skip RSS bounds there (saying so); h_init multiplies the watchdog by 5.
 */
bool h_under_valgrind(void);

/** The whole of the file at path (borrowed) as new memory, NUL-terminated (the caller frees
 *  it), its length in *len when len is not NULL; NULL when it cannot be opened. */
char *h_slurp(const char *path, size_t *len);

/** VmRSS of a live process in bytes, or -1 (no such process, or /proc unreadable). */
long h_rss_bytes(pid_t pid);

/**
 * Spawn genserv with opts (borrowed; NULL: defaults) and wait up to H_START_MS for the first
 * stdout line `listening on http://HOST:PORT`. Returns 0, or -1 after printing why (the
 * child, if any, is killed and its stderr printed).
 */
int h_start(h_server_t *srv, const h_opts_t *opts);

/**
 * Send SIGTERM, wait up to deadline_ms, then SIGKILL. Returns the exit code (0..255), or -1 if
 * it died from a signal or had to be killed. Idempotent: once reaped it returns the same.
 */
int h_stop(h_server_t *srv, int deadline_ms);
/** SIGKILL and reap (no-op once reaped). */
void h_kill(h_server_t *srv);
/** Print the captured stderr (and stdout) of srv to stderr, framed, for a failing test. */
void h_dump_logs(const h_server_t *srv);
/** Remove the temp files of srv (after h_stop). */
void h_cleanup_files(h_server_t *srv);
/** true while the child has not exited (reaps it if it has). */
bool h_alive(h_server_t *srv);
/** Set the running child's soft RLIMIT_FSIZE (bytes; 0: unlimited) with prlimit. 0 or -1. */
int h_set_fsize_limit(const h_server_t *srv, unsigned long long bytes);

/* ---------------------------------------------------------------------------------------- */
/* Fixtures                                                                                   */
/* ---------------------------------------------------------------------------------------- */

typedef struct h_fixture_s {
    h_server_t srv;
    bool passed; /* set by H_PASS at the end of a test; teardown prints logs otherwise */
} h_fixture_t;

/** cmocka setup: genserv with its default servers (counter, journal, batcher, ticker, slow). */
int h_setup(void **state);
/** The same with opts (borrowed; copied by h_start): for setups of a group's own. */
int h_setup_with(void **state, const h_opts_t *opts);
/**
 * cmocka teardown: stops the server (it must exit 0 within H_STOP_MS), prints its logs when
 * the test did not reach H_PASS or the exit was not clean, removes its files.
 */
int h_teardown(void **state);
/** Stop fx's server in a test and check it exited 0; prints its logs otherwise. */
int h_fixture_stop(h_fixture_t *fx);
/** In a test: stop fx's server (asserting exit 0) and start a new one with opts (borrowed). */
void h_fixture_restart(h_fixture_t *fx, const h_opts_t *opts);

#define H_PASS(fx) ((fx)->passed = true)

/* ---------------------------------------------------------------------------------------- */
/* HTTP                                                                                       */
/* ---------------------------------------------------------------------------------------- */

typedef struct h_resp_s {
    long status; /* 0: no HTTP response at all (see curl_rc) */
    int curl_rc; /* CURLcode */
    char *body;  /* owned, NUL-terminated (may be empty) */
    size_t body_len;
    json_t *json; /* owned: the body parsed as JSON, or NULL */
    char content_type[128];
    char allow[128];
    char retry_after[32];
    char *headers;      /* owned: every response header line as received */
    int64_t t_start_ms; /* monotonic, just before the request went out */
    int64_t t_end_ms;   /* monotonic, once the response was complete */
} h_resp_t;

typedef struct h_req_s {
    const char *method;         /* "GET", "POST", "DELETE", "PUT", ... */
    const char *path;           /* "/call" */
    const char *body;           /* NULL: none */
    size_t body_len;            /* 0 with a body: strlen(body) */
    long timeout_ms;            /* client-side limit; 0: 60 s. A short one simulates a client that
                                   gives up and disconnects. */
    const char *content_type;   /* NULL: application/json when there is a body */
    const char *const *headers; /* extra request headers ("Name: value"), NULL-terminated */
} h_req_t;

/** Run req against srv; fills *resp (always: release it with h_resp_close). Returns curl_rc. */
int h_request_ex(const h_server_t *srv, const h_req_t *req, h_resp_t *resp);
/** h_request_ex with method, path and an optional body (text). */
int h_request(const h_server_t *srv, const char *method, const char *path, const char *body,
              h_resp_t *resp);
void h_resp_close(h_resp_t *resp);
/** The value of response header name (case-insensitive) copied into buf, or NULL if absent. */
const char *h_header(const h_resp_t *resp, const char *name, char *buf, size_t len);

/** POST /call {"server", "message": message_json (JSON text), "timeout_ms"?}; timeout < 0: none */
int h_call(const h_server_t *srv, const char *server, const char *message_json, int timeout_ms,
           h_resp_t *resp);
/** POST path (/cast or /send) {"server", "message": message_json}; returns the status. */
long h_deliver(const h_server_t *srv, const char *path, const char *server,
               const char *message_json);
/** POST /servers {"name", "behaviour", "args": args_json or null, ...extra_json fields}. */
long h_start_server(const h_server_t *srv, const char *name, const char *behaviour,
                    const char *args_json, const char *extra_fields);
/** GET /servers/NAME's JSON (new reference), or NULL when it is not 200. */
json_t *h_server_info(const h_server_t *srv, const char *name);
/** An integer field of GET /servers/NAME (top level, or inside "state" if in_state);
 * INT64_MIN when it is not there. */
int64_t h_server_int(const h_server_t *srv, const char *name, const char *field, bool in_state);
/** The integer reply of POST /call {server, message_json}; INT64_MIN when it is not 200 with
 * an integer reply. */
int64_t h_call_int(const h_server_t *srv, const char *server, const char *message_json);

/* Concurrent requests: each runs on its own thread with its own easy handle. */
typedef struct h_async_s h_async_t;
/** Start req (copied, except headers: none are sent) on a thread. Returns NULL only when the thread
 * cannot be created. */
h_async_t *h_async_start(const h_server_t *srv, const h_req_t *req);
/** true once the request has completed (never blocks). */
bool h_async_done(h_async_t *a);
/** Join; the response stays owned by a. */
h_resp_t *h_async_wait(h_async_t *a);
/** Join if needed, free everything. Accepts NULL. */
void h_async_destroy(h_async_t *a);
/** POST /call {"server", "message": ["push", n], "timeout_ms": 60000} on a thread, with a
 * client-side limit of client_ms (0: the default): a batcher holds it until its flush. */
h_async_t *h_push_async(const h_server_t *srv, const char *server, int n, long client_ms);

/* Many identical requests at once over as many connections, driven by curl multi. */
typedef struct h_multi_s h_multi_t;
/** Start n copies of req (copied, except headers: none are sent) on one thread. NULL when that
 * cannot start. */
h_multi_t *h_multi_start(const h_server_t *srv, const h_req_t *req, size_t n);
/** How many have completed so far (never blocks). */
size_t h_multi_completed(h_multi_t *m);
/** Join; returns the n responses, owned by m. */
h_resp_t *h_multi_wait(h_multi_t *m);
/** Join if needed, free everything. Accepts NULL. */
void h_multi_destroy(h_multi_t *m);

/* GET /events read in the background. */
typedef struct h_events_s h_events_t;
/** Open GET /events; waits (up to H_WAIT_MS) for the response headers. NULL on failure. */
h_events_t *h_events_open(const h_server_t *srv);
/** The same for path (with its query), e.g. "/events?server=c". */
h_events_t *h_events_open_path(const h_server_t *srv, const char *path);
/** HTTP status and Content-Type of the stream once headers arrived. */
long h_events_status(h_events_t *ev, char *content_type, size_t len);
/**
 * Wait up to deadline_ms for a data line whose JSON has "type" == type and, when server is not
 * NULL, "server" == server. Returns that JSON (new reference) or NULL.
 */
json_t *h_events_wait(h_events_t *ev, const char *type, const char *server, int deadline_ms);
/** A copy of everything the stream received so far (free it). */
char *h_events_text(h_events_t *ev);
/** How many data lines so far match type (and server when not NULL). */
size_t h_events_count(h_events_t *ev, const char *type, const char *server);
/** The last data line so far that matches type (and server when not NULL), as JSON (new
 * reference), or NULL. */
json_t *h_events_last(h_events_t *ev, const char *type, const char *server);
/** Abort the stream and free everything. Accepts NULL. */
void h_events_close(h_events_t *ev);

/* Raw TCP, for what libcurl will not send (garbage, pipelining, silence). */
/** Connect to srv's address. Returns the socket, or -1. */
int h_raw_connect(const h_server_t *srv);
/** Send all of len bytes of data. Returns 0 or -1. */
int h_raw_send(int fd, const char *data, size_t len);
/**
 * Read into buf (NUL-terminated, at most len - 1 bytes) until the peer closes, until
 * `until` (when not NULL) has appeared `count` times, or until deadline_ms pass.
 * Returns the bytes read; *closed tells whether the peer closed the connection.
 */
size_t h_raw_read(int fd, char *buf, size_t len, const char *until, int count, int deadline_ms,
                  bool *closed);

/* ---------------------------------------------------------------------------------------- */
/* Misc                                                                                       */
/* ---------------------------------------------------------------------------------------- */

int64_t h_now_ms(void);
void h_sleep_ms(int ms);
/** JSON from text, asserting it parses (new reference). */
json_t *h_json(const char *text);
/** true when a and b are equal JSON; prints both when not. */
bool h_json_equal(const json_t *a, const json_t *b);
/** A string field of obj, or NULL. */
const char *h_str(const json_t *obj, const char *key);
/** The value of the Prometheus sample `name` (exact, with labels) in text; -1 when absent. */
double h_metric(const char *text, const char *name);
/** The sum of every sample in text whose line starts with prefix, e.g.
 * `genserv_http_requests_total{route="/call",` for every status of a route; 0 when none. */
double h_metric_sum(const char *text, const char *prefix);
/** The sample `name` of srv's GET /metrics; -1 when absent, -2 when /metrics is not 200. */
double h_metrics_value(const h_server_t *srv, const char *name);

/**
 * Assert that resp is an error answer: the given status, Content-Type application/json and a
 * body {"error": code, "message": non-empty string, ...}.
 */
void h_assert_error(const h_resp_t *resp, long status, const char *code);

/** Assert that resp is 200 {"reply": R} with R equal to the JSON text expected. */
void h_assert_reply(const h_resp_t *resp, const char *expected_json);

/**
 * Run genserv with exactly args (after argv[0]; nothing added), capture stdout and stderr into
 * out (NUL-terminated, truncated to len), wait up to deadline_ms (then SIGKILL). Returns the
 * exit code, or -1 when it died from a signal or had to be killed.
 */
int h_run(const char *const *args, char *out, size_t len, int deadline_ms);

/** Make a new empty directory /tmp/genserv-it-WHAT-XXXXXX (its path into path, len bytes).
 *  Returns 0, or -1 after printing why. */
int h_tempdir(char *path, size_t len, const char *what);
/** Remove path and everything below it, without crossing into other file systems (a mount
 *  below it is left alone). A missing path is no error. Returns 0 or -1. */
int h_rmtree(const char *path);

/** Poll pred(arg) every 10 ms until it holds or deadline_ms pass; returns its last value. For
 * code outside a cmocka test (the soak), which reports rather than fails. */
bool h_wait_until(bool (*pred)(void *), void *arg, int deadline_ms);

/** Poll cond (an expression) every 10 ms until it holds; fail the test after ms. */
#define H_WAIT_UNTIL(cond, ms)                                                                     \
    do {                                                                                           \
        int64_t h_deadline_ = h_now_ms() + (ms);                                                   \
        while (!(cond)) {                                                                          \
            if (h_now_ms() > h_deadline_)                                                          \
                fail_msg("timed out after %d ms waiting for: %s", (int)(ms), #cond);               \
            h_sleep_ms(10);                                                                        \
        }                                                                                          \
    } while (0)

#endif /* GS_INTEGRATION_HARNESS_H */
