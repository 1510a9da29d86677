/*
 * cli.h: genserv's command-line client, `genserv SUBCOMMAND ...` (docs/cli.md).
 *
 * The same binary is the server and its client: main() hands argv to gs_cli_main() when
 * argv[1] is one of the client's subcommands, before anything of the server starts. The client
 * talks to a running genserv over its HTTP API with libcurl, exactly as curl would: it adds
 * nothing the API does not offer, and its errors are the API's.
 *
 * API:
 *   gs_cli_is_command(argv[1])   is this a subcommand of the client?
 *   gs_cli_main(argc, argv)      run it; returns the process's exit status (GS_CLI_EXIT_*)
 *   gs_cli_message_parse()       a message from arguments: JSON or the short form (cli_message.c)
 *   gs_cli_http_*                one request, or an event stream (cli_http.c)
 */
#ifndef GS_SERVER_CLI_H
#define GS_SERVER_CLI_H

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

/* Exit statuses a script can test (docs/cli.md, "Exit codes"). */
#define GS_CLI_EXIT_OK           0 /* the reply, or the operation succeeded */
#define GS_CLI_EXIT_ERROR        1 /* any other error the API answered */
#define GS_CLI_EXIT_USAGE        2 /* bad arguments: nothing was sent */
#define GS_CLI_EXIT_CONNECT      3 /* no answer at all: connection refused, DNS, reset */
#define GS_CLI_EXIT_TIMEOUT      4 /* 504 timeout, or the client's own deadline passed */
#define GS_CLI_EXIT_NOT_FOUND    5 /* no such server, timer, behaviour, supervisor or child */
#define GS_CLI_EXIT_CRASHED      6 /* the server crashed or was stopped before it replied */
#define GS_CLI_EXIT_UNAUTHORIZED 7 /* 401 unauthorized or 403 forbidden: check GENSERV_TOKEN */

/** true when arg (borrowed; NULL allowed) names a client subcommand, e.g. "call" or "help". */
bool gs_cli_is_command(const char *arg);

/**
 * Run the client: argv[1] is the subcommand (see gs_cli_is_command). Reads GENSERV_URL and
 * GENSERV_TOKEN from the environment. Prints results on stdout and errors on stderr. Returns
 * a GS_CLI_EXIT_* status. argv is borrowed. Not thread-safe (it initialises libcurl and
 * installs a SIGINT handler for `watch`): call it once, from main().
 */
int gs_cli_main(int argc, char **argv);

/**
 * The message of argv[0..argc-1] (borrowed): one argument is one term, several are a tuple
 * (a JSON array). Returns a new reference, or NULL with a sentence in err (errlen bytes,
 * NUL-terminated) when an argument does not parse or argc is 0.
 */
json_t *gs_cli_message_parse(int argc, char *const *argv, char *err, size_t errlen);

/** One HTTP answer. Release it with gs_cli_resp_close. */
typedef struct gs_cli_resp_s {
    long status;     /* HTTP status, or 0 when no answer came (see curl_rc and error) */
    int curl_rc;     /* CURLcode */
    char *body;      /* owned, NUL-terminated; "" when empty */
    size_t body_len; /* bytes in body */
    char error[256]; /* libcurl's words when status is 0 */
} gs_cli_resp_t;

/** Where and how to reach genserv. Strings borrowed for the client's lifetime. */
typedef struct gs_cli_conn_s {
    const char *url;   /* "http://127.0.0.1:8080", without a trailing slash */
    const char *token; /* GENSERV_TOKEN, or NULL */
} gs_cli_conn_t;

/**
 * One request: method to conn->url + path (borrowed; already percent-encoded). body
 * (borrowed, may be NULL) is sent as is with content_type (NULL: application/json).
 * timeout_ms bounds the whole exchange (0: none). Always fills *resp; returns its curl_rc.
 */
int gs_cli_http_request(const gs_cli_conn_t *conn, const char *method, const char *path,
                        const char *body, size_t body_len, const char *content_type,
                        long timeout_ms, gs_cli_resp_t *resp);

/** Frees what resp owns; accepts a zeroed resp. */
void gs_cli_resp_close(gs_cli_resp_t *resp);

/**
 * The callback of gs_cli_http_stream for each `data:` line of an event stream: data is the
 * text after "data: " (borrowed, NUL-terminated, without the newline). Returns 0 to go on,
 * non-zero to end the stream.
 */
typedef int (*gs_cli_data_cb)(const char *data, void *arg);

/**
 * GET path as a Server-Sent Events stream, calling data_cb for each data line until the
 * server ends the stream, data_cb asks to stop, or *stop becomes non-zero (a signal handler
 * sets it; it is polled at least once a second). Fills *resp with the status (its body holds
 * an error answer's JSON when the status is not 200). Returns the curl_rc;
 * CURLE_ABORTED_BY_CALLBACK when it was stopped.
 */
int gs_cli_http_stream(const gs_cli_conn_t *conn, const char *path, gs_cli_data_cb data_cb,
                       void *arg, volatile sig_atomic_t *stop, gs_cli_resp_t *resp);

/** path-encode s (borrowed) into a new string (free it with curl_free), or NULL. */
char *gs_cli_escape(const char *s);

#endif
