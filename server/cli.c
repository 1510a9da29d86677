/*
 * cli.c: the subcommands of genserv's command-line client (docs/cli.md).
 *
 * Each subcommand is one or two requests of the HTTP API (docs/API.md) and a way to print
 * their answer: for people (tables, indented JSON, colour only on a terminal) or, with
 * --json, the API's own JSON, one document per line, for scripts. Errors are the API's
 * {"error", "message"}, printed on stderr as `genserv: MESSAGE (ERROR)`, and the exit status
 * says which kind they were (GS_CLI_EXIT_* in cli.h), so that a script can tell a timeout
 * from a missing server without parsing anything.
 *
 * API: gs_cli_main() -> parse_args() (options anywhere after the subcommand, `--` ends them)
 *      -> the subcommand's function -> request() -> print the answer, or fail() -> exit status
 *
 * Where genserv is: --url, else GENSERV_URL, else http://127.0.0.1:8080 (genserv's default
 * listen address). The token comes from GENSERV_TOKEN only: a flag would show in `ps`.
 */
#include "cli.h"

#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CLI_DEFAULT_URL "http://127.0.0.1:8080"
/* A request other than a call: an answer comes within the API's own bounds (a stop waits at
 * most max_call_timeout_ms for terminate); this only guards against a host that never answers. */
#define CLI_REQUEST_TIMEOUT_MS 310000L
/* A call's client-side deadline is its timeout_ms plus this, so that genserv's own 504 (which
 * says what happened) comes first. */
#define CLI_CALL_MARGIN_MS 10000L
#define CLI_MAX_POSITIONAL 64

typedef struct cli_s {
    gs_cli_conn_t conn;
    const char *cmd;
    bool json;        /* --json */
    bool color_out;   /* stdout is a terminal */
    bool color_err;   /* stderr is a terminal */
    long timeout_ms;  /* --timeout, -1 when not given */
    long interval_ms; /* --interval, -1 when not given */
    long limit;       /* --limit, -1 when not given */
    bool durable;     /* --durable */
    bool http;        /* timers --http: only those made over HTTP */
    const char *supervisor, *restart, *name, *reason, *ack, *vsn, *args;
    int npos;
    char *pos[CLI_MAX_POSITIONAL];
} cli_t;

/* ------------------------------------------------------------------------------------------ */
/* Help                                                                                        */
/* ------------------------------------------------------------------------------------------ */

typedef struct command_s {
    const char *name;
    int (*run)(cli_t *cli);
    const char *options; /* the options it takes, "|url|json|...|" */
    const char *usage;
    const char *help; /* what it does, then examples */
} command_t;

static const command_t *find_command(const char *name);
static void print_overview(FILE *f);

static const char common_help[] =
    "Options every subcommand takes:\n"
    "  --url URL   where genserv listens (default: $GENSERV_URL, else " CLI_DEFAULT_URL ")\n"
    "  --json      print the API's JSON answer (one line) instead of text for people\n"
    "  --help      this help\n"
    "The token comes from the environment only: GENSERV_TOKEN (flags show in `ps`).\n"
    "Exit status: 0 ok, 1 other error, 2 usage, 3 cannot connect, 4 timeout,\n"
    "  5 no such server (or timer, behaviour, supervisor), 6 crashed, 7 unauthorized.\n";

static void print_command_help(FILE *f, const command_t *c)
{
    fprintf(f, "usage: genserv %s\n\n%s\n%s", c->usage, c->help, common_help);
}

/* ------------------------------------------------------------------------------------------ */
/* Output                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static const char *bold(const cli_t *cli)
{
    return cli->color_out ? "\033[1m" : "";
}

static const char *plain(const cli_t *cli)
{
    return cli->color_out ? "\033[0m" : "";
}

/* A usage error: nothing was sent. */
static int usage(const cli_t *cli, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "genserv %s: ", cli->cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(genserv help %s)\n", cli->cmd);
    return GS_CLI_EXIT_USAGE;
}

static void print_err_prefix(const cli_t *cli)
{
    fprintf(stderr, "%sgenserv:%s ", cli->color_err ? "\033[1;31m" : "",
            cli->color_err ? "\033[0m" : "");
}

/* The exit status of an API error: its HTTP status and its "error" code (docs/API.md). */
static int exit_for(long status, const char *error)
{
    if (status == 401 || status == 403)
        return GS_CLI_EXIT_UNAUTHORIZED;
    if (status == 504 || strcmp(error, "timeout") == 0)
        return GS_CLI_EXIT_TIMEOUT;
    if (strncmp(error, "no_such_", 8) == 0 || strcmp(error, "not_found") == 0)
        return GS_CLI_EXIT_NOT_FOUND;
    if (strcmp(error, "server_crashed") == 0 || strcmp(error, "server_stopped") == 0)
        return GS_CLI_EXIT_CRASHED;
    return GS_CLI_EXIT_ERROR;
}

/*
 * Report a failed request (resp borrowed) and return its exit status: no answer at all, or
 * the API's error. With --json the error's JSON also goes to stdout, for the script.
 */
static int fail(const cli_t *cli, const gs_cli_resp_t *resp)
{
    json_t *j, *reason;
    const char *error = "", *message = NULL;
    char *r = NULL;
    int rc;

    if (resp->status == 0) {
        print_err_prefix(cli);
        fprintf(stderr, "%s: %s\n", cli->conn.url, resp->error);
        if (resp->curl_rc == CURLE_OPERATION_TIMEDOUT)
            return GS_CLI_EXIT_TIMEOUT;
        return GS_CLI_EXIT_CONNECT;
    }
    j = json_loadb(resp->body, resp->body_len, 0, NULL);
    if (json_is_object(j)) {
        if (json_is_string(json_object_get(j, "error")))
            error = json_string_value(json_object_get(j, "error"));
        if (json_is_string(json_object_get(j, "message")))
            message = json_string_value(json_object_get(j, "message"));
    }
    reason = json_object_get(j, "reason");
    if (reason != NULL)
        r = json_dumps(reason, JSON_ENCODE_ANY | JSON_COMPACT);
    print_err_prefix(cli);
    if (message != NULL)
        fprintf(stderr, "%s (%s)%s%s\n", message, error, r ? ": reason " : "", r ? r : "");
    else
        fprintf(stderr, "HTTP %ld: %.200s\n", resp->status, resp->body);
    if (cli->json && j != NULL) {
        fputs(resp->body, stdout);
        if (resp->body_len == 0 || resp->body[resp->body_len - 1] != '\n')
            fputc('\n', stdout);
    }
    rc = exit_for(resp->status, error);
    free(r);
    json_decref(j);
    return rc;
}

/* Wider than this, a value printed for people is indented over several lines. */
#define CLI_ONE_LINE 80

/* Print v (borrowed) as JSON: compact with --json; for people on one line when it fits,
 * else indented. */
static void print_json(const cli_t *cli, const json_t *v)
{
    char *s = json_dumps(v, JSON_ENCODE_ANY | (cli->json ? JSON_COMPACT : 0));

    if (s != NULL && !cli->json && strlen(s) > CLI_ONE_LINE) {
        free(s);
        s = json_dumps(v, JSON_ENCODE_ANY | JSON_INDENT(2));
    }
    if (s != NULL)
        printf("%s\n", s);
    free(s);
}

/* An answer's body printed as is (--json): one line. */
static void print_body(const gs_cli_resp_t *resp)
{
    fwrite(resp->body, 1, resp->body_len, stdout);
    if (resp->body_len == 0 || resp->body[resp->body_len - 1] != '\n')
        fputc('\n', stdout);
}

/* A table: rows of cells (owned copies), printed with columns as wide as their widest cell. */
typedef struct table_s {
    size_t ncols, nrows, cap;
    char **cells;
} table_t;

static void table_row(table_t *t, ...)
{
    va_list ap;

    if (t->nrows == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 16;
        t->cells = realloc(t->cells, t->cap * t->ncols * sizeof(char *));
        if (t->cells == NULL)
            abort(); /* a table of a listing the API bounded: tiny */
    }
    va_start(ap, t);
    for (size_t i = 0; i < t->ncols; i++) {
        const char *s = va_arg(ap, const char *);

        t->cells[t->nrows * t->ncols + i] = strdup(s != NULL ? s : "-");
    }
    va_end(ap);
    t->nrows++;
}

static void table_free(table_t *t)
{
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
}

/* Print t, then free it. */
static void table_print(const cli_t *cli, table_t *t)
{
    size_t w[16] = {0};

    for (size_t r = 0; r < t->nrows; r++)
        for (size_t i = 0; i < t->ncols && i < 16; i++) {
            size_t n = strlen(t->cells[r * t->ncols + i]);

            if (n > w[i])
                w[i] = n;
        }
    for (size_t r = 0; r < t->nrows; r++) {
        if (r == 0)
            fputs(bold(cli), stdout);
        for (size_t i = 0; i < t->ncols; i++) {
            const char *s = t->cells[r * t->ncols + i];

            if (i + 1 == t->ncols)
                fputs(s, stdout);
            else
                printf("%-*s  ", (int)w[i], s);
        }
        if (r == 0)
            fputs(plain(cli), stdout);
        fputc('\n', stdout);
    }
    table_free(t);
}

/* The text of a JSON value for a table cell: strings bare, the rest as compact JSON. */
static void cell_json(char *buf, size_t len, const json_t *v)
{
    char *s;

    if (v == NULL || json_is_null(v)) {
        snprintf(buf, len, "-");
        return;
    }
    if (json_is_string(v)) {
        snprintf(buf, len, "%s", json_string_value(v));
        return;
    }
    s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    snprintf(buf, len, "%s", s != NULL ? s : "?");
    free(s);
}

static void cell_int(char *buf, size_t len, const json_t *v)
{
    if (json_is_integer(v))
        snprintf(buf, len, "%lld", (long long)json_integer_value(v));
    else
        snprintf(buf, len, "-");
}

/* 1536 -> "1.5 KiB"; "-" when the field is absent (an older genserv). */
static void cell_bytes(char *buf, size_t len, const json_t *v)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double b;
    int u = 0;

    if (!json_is_integer(v)) {
        snprintf(buf, len, "-");
        return;
    }
    b = (double)json_integer_value(v);
    while (b >= 1024.0 && u < 4) {
        b /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%.0f B", b);
    else
        snprintf(buf, len, "%.1f %s", b, units[u]);
}

/* 3723000 ms -> "1h02m03s". */
static void cell_duration(char *buf, size_t len, const json_t *v)
{
    long long s, h, m;

    if (!json_is_integer(v)) {
        snprintf(buf, len, "-");
        return;
    }
    s = (long long)json_integer_value(v) / 1000;
    h = s / 3600;
    m = (s / 60) % 60;
    s %= 60;
    if (h > 0)
        snprintf(buf, len, "%lldh%02lldm%02llds", h, m, s);
    else if (m > 0)
        snprintf(buf, len, "%lldm%02llds", m, s);
    else
        snprintf(buf, len, "%llds", s);
}

/* ------------------------------------------------------------------------------------------ */
/* Requests                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/*
 * method path with body (a JSON value, taken: decref'd here; NULL: no body). On a 2xx answer
 * returns 0 and, when out is not NULL, its parsed JSON in *out (a new reference, or NULL when
 * it is not JSON); *resp keeps the raw answer (close it). Otherwise reports the error and
 * returns its exit status (resp closed).
 */
static int request(cli_t *cli, const char *method, const char *path, json_t *body, long timeout_ms,
                   gs_cli_resp_t *resp, json_t **out)
{
    char *text = NULL;
    int rc;

    if (body != NULL) {
        text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(body);
        if (text == NULL) {
            fprintf(stderr, "genserv: out of memory\n");
            return GS_CLI_EXIT_ERROR;
        }
    }
    gs_cli_http_request(&cli->conn, method, path, text, text ? strlen(text) : 0, NULL,
                        timeout_ms > 0 ? timeout_ms : CLI_REQUEST_TIMEOUT_MS, resp);
    free(text);
    if (resp->status < 200 || resp->status > 299) {
        rc = fail(cli, resp);
        gs_cli_resp_close(resp);
        return rc;
    }
    if (out != NULL)
        *out = json_loadb(resp->body, resp->body_len, JSON_DECODE_ANY, NULL);
    return 0;
}

/* A path with one escaped name: fmt has one %s. Returns 0, or a usage status. */
static int path_with(const cli_t *cli, char *buf, size_t len, const char *fmt, const char *name)
{
    char *e = gs_cli_escape(name);
    int n;

    if (e == NULL)
        return usage(cli, "bad name");
    n = snprintf(buf, len, fmt, e);
    curl_free(e);
    if (n < 0 || (size_t)n >= len)
        return usage(cli, "name too long");
    return 0;
}

/* The message from the positional arguments from index first on. New reference or NULL. */
static json_t *message_from(const cli_t *cli, int first)
{
    char err[256] = "";
    json_t *m = gs_cli_message_parse(cli->npos - first, cli->pos + first, err, sizeof(err));

    if (m == NULL)
        usage(cli, "%s", err);
    return m;
}

/* ------------------------------------------------------------------------------------------ */
/* Messaging                                                                                   */
/* ------------------------------------------------------------------------------------------ */

static int cmd_call(cli_t *cli)
{
    gs_cli_resp_t resp;
    json_t *msg, *body, *out = NULL;
    long client_ms;
    int rc;

    if (cli->npos < 2)
        return usage(cli, "a server name and a message are required");
    msg = message_from(cli, 1);
    if (msg == NULL)
        return GS_CLI_EXIT_USAGE;
    body = json_pack("{s:s, s:o}", "server", cli->pos[0], "message", msg);
    if (body == NULL)
        return usage(cli, "the server name is not valid UTF-8");
    if (cli->timeout_ms >= 0)
        json_object_set_new(body, "timeout_ms", json_integer(cli->timeout_ms));
    client_ms = cli->timeout_ms >= 0 ? cli->timeout_ms + CLI_CALL_MARGIN_MS : 0;
    rc = request(cli, "POST", "/call", body, client_ms, &resp, &out);
    if (rc != 0)
        return rc;
    if (cli->json)
        print_body(&resp);
    else
        print_json(cli, json_object_get(out, "reply"));
    json_decref(out);
    gs_cli_resp_close(&resp);
    return 0;
}

/* cast and send: the same body to a different endpoint. */
static int deliver(cli_t *cli, const char *path)
{
    gs_cli_resp_t resp;
    json_t *msg, *body;
    int rc;

    if (cli->npos < 2)
        return usage(cli, "a server name and a message are required");
    msg = message_from(cli, 1);
    if (msg == NULL)
        return GS_CLI_EXIT_USAGE;
    body = json_pack("{s:s, s:o}", "server", cli->pos[0], "message", msg);
    if (body == NULL)
        return usage(cli, "the server name is not valid UTF-8");
    if (cli->ack != NULL)
        json_object_set_new(body, "ack", json_string(cli->ack));
    rc = request(cli, "POST", path, body, 0, &resp, NULL);
    if (rc != 0)
        return rc;
    if (cli->json)
        print_body(&resp);
    else
        printf("ok\n");
    gs_cli_resp_close(&resp);
    return 0;
}

static int cmd_cast(cli_t *cli)
{
    return deliver(cli, "/cast");
}

static int cmd_send(cli_t *cli)
{
    return deliver(cli, "/send");
}

/* A non-negative integer argument, or -1. */
static long parse_ms(const char *s)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0)
        return -1;
    return v;
}

static int cmd_send_after(cli_t *cli)
{
    gs_cli_resp_t resp;
    json_t *msg, *body, *out = NULL;
    long delay;
    int rc;

    if (cli->npos < 3)
        return usage(cli, "a server name, a delay in ms and a message are required");
    delay = parse_ms(cli->pos[1]);
    if (delay < 0)
        return usage(cli, "the delay must be milliseconds, a non-negative integer: \"%s\"",
                     cli->pos[1]);
    msg = message_from(cli, 2);
    if (msg == NULL)
        return GS_CLI_EXIT_USAGE;
    body = json_pack("{s:s, s:o, s:I}", "server", cli->pos[0], "message", msg, "delay_ms",
                     (json_int_t)delay);
    if (body == NULL)
        return usage(cli, "the server name is not valid UTF-8");
    if (cli->interval_ms >= 0)
        json_object_set_new(body, "interval_ms", json_integer(cli->interval_ms));
    rc = request(cli, "POST", "/send_after", body, 0, &resp, &out);
    if (rc != 0)
        return rc;
    if (cli->json)
        print_body(&resp);
    else
        printf("%s\n", json_string_value(json_object_get(out, "timer")));
    json_decref(out);
    gs_cli_resp_close(&resp);
    return 0;
}

static int timer_ref(cli_t *cli, const char *method)
{
    gs_cli_resp_t resp;
    json_t *out = NULL;
    char path[512];
    int rc;

    if (cli->npos != 2)
        return usage(cli, "timers %s takes one timer reference", cli->pos[0]);
    rc = path_with(cli, path, sizeof(path), "/timers/%s", cli->pos[1]);
    if (rc != 0)
        return rc;
    rc = request(cli, method, path, NULL, 0, &resp, &out);
    if (rc != 0)
        return rc;
    if (cli->json)
        print_body(&resp);
    else
        printf("%lld ms%s\n", (long long)json_integer_value(json_object_get(out, "remaining_ms")),
               strcmp(method, "DELETE") == 0 ? " left (cancelled)" : " left");
    json_decref(out);
    gs_cli_resp_close(&resp);
    return 0;
}

static int cmd_timers(cli_t *cli)
{
    gs_cli_resp_t resp;
    json_t *out = NULL, *t;
    table_t tab = {6, 0, 0, NULL};
    char path[64], rem[32], msg[256], count[32];
    size_t i;
    int rc;

    if (cli->npos > 0 && strcmp(cli->pos[0], "read") == 0)
        return timer_ref(cli, "GET");
    if (cli->npos > 0 && strcmp(cli->pos[0], "cancel") == 0)
        return timer_ref(cli, "DELETE");
    if (cli->npos > 0 && strcmp(cli->pos[0], "list") != 0)
        return usage(cli, "unknown: \"%s\" (list, read REF or cancel REF)", cli->pos[0]);
    if (cli->npos > 1)
        return usage(cli, "timers list takes no arguments");
    /* Every pending timer, as observer shows them (servers' own ticks too), or with --http
     * only the ones clients made (the ones `timers cancel` can cancel). */
    snprintf(path, sizeof(path), "/timers?all=%s", cli->http ? "false" : "true");
    if (cli->limit >= 0)
        snprintf(path + strlen(path), sizeof(path) - strlen(path), "&limit=%ld", cli->limit);
    rc = request(cli, "GET", path, NULL, 0, &resp, &out);
    if (rc != 0)
        return rc;
    if (cli->json) {
        print_body(&resp);
        goto out;
    }
    table_row(&tab, "TIMER", "SERVER", "REMAINING", "BY", "CREATED", "MESSAGE");
    json_array_foreach(json_object_get(out, "timers"), i, t)
    {
        snprintf(rem, sizeof(rem), "%lld ms",
                 (long long)json_integer_value(json_object_get(t, "remaining_ms")));
        cell_json(msg, sizeof(msg), json_object_get(t, "message"));
        table_row(&tab, json_string_value(json_object_get(t, "timer")),
                  json_string_value(json_object_get(t, "server")), rem,
                  json_string_value(json_object_get(t, "created_by")),
                  json_string_value(json_object_get(t, "created_at")), msg);
    }
    if (i == 0) {
        printf(cli->http ? "no pending timers made over HTTP\n" : "no pending timers\n");
        table_free(&tab);
    } else {
        table_print(cli, &tab);
    }
    cell_int(count, sizeof(count), json_object_get(out, "count"));
    if (json_integer_value(json_object_get(out, "count")) > (json_int_t)i)
        printf("(%zu of %s pending timers: --limit N shows more)\n", i, count);
out:
    json_decref(out);
    gs_cli_resp_close(&resp);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Servers                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static int cmd_ps(cli_t *cli)
{
    gs_cli_resp_t resp;
    json_t *out = NULL, *s;
    table_t tab = {8, 0, 0, NULL};
    char mbox[32], held[32], restarts[32], mem[32], up[32];
    size_t i;
    int rc;

    if (cli->npos > 0)
        return usage(cli, "ps takes no arguments");
    rc = request(cli, "GET", "/servers", NULL, 0, &resp, &out);
    if (rc != 0)
        return rc;
    if (cli->json) {
        print_body(&resp);
        goto out;
    }
    table_row(&tab, "NAME", "BEHAVIOUR", "STATUS", "MAILBOX", "HELD", "RESTARTS", "MEMORY",
              "UPTIME");
    json_array_foreach(json_object_get(out, "servers"), i, s)
    {
        cell_int(mbox, sizeof(mbox), json_object_get(s, "mailbox_len"));
        cell_int(held, sizeof(held), json_object_get(s, "held_calls"));
        cell_int(restarts, sizeof(restarts), json_object_get(s, "restarts"));
        cell_bytes(mem, sizeof(mem), json_object_get(s, "memory_bytes"));
        cell_duration(up, sizeof(up), json_object_get(s, "uptime_ms"));
        table_row(&tab, json_string_value(json_object_get(s, "name")),
                  json_string_value(json_object_get(s, "behaviour")),
                  json_string_value(json_object_get(s, "status")), mbox, held, restarts, mem, up);
    }
    table_print(cli, &tab);
out:
    json_decref(out);
    gs_cli_resp_close(&resp);
    return 0;
}

static int cmd_state(cli_t *cli)
{
    gs_cli_resp_t resp;
    json_t *out = NULL;
    char path[1024];
    int rc;

    if (cli->npos != 1)
        return usage(cli, "state takes one server name");
    rc = path_with(cli, path, sizeof(path), "/servers/%s", cli->pos[0]);
    if (rc != 0)
        return rc;
    rc = request(cli, "GET", path, NULL, 0, &resp, &out);
    if (rc != 0)
        return rc;
    if (cli->json) {
        print_body(&resp);
    } else {
        json_t *err = json_object_get(out, "state_error");

        print_json(cli, json_object_get(out, "state"));
        if (json_is_string(err))
            fprintf(stderr, "genserv: the state could not be read (%s)\n", json_string_value(err));
    }
    json_decref(out);
    gs_cli_resp_close(&resp);
    return 0;
}

static int cmd_start(cli_t *cli)
{
    gs_cli_resp_t resp;
    json_t *args = json_null(), *body, *out = NULL;
    char path[1024];
    char err[256] = "";
    int rc;

    if (cli->npos < 2)
        return usage(cli, "a behaviour and a name are required");
    if (cli->npos > 2) {
        args = gs_cli_message_parse(cli->npos - 2, cli->pos + 2, err, sizeof(err));
        if (args == NULL)
            return usage(cli, "args: %s", err);
    }
    body =
        json_pack("{s:s, s:s, s:o}", "behaviour", cli->pos[0], "name", cli->pos[1], "args", args);
    if (body == NULL)
        return usage(cli, "the names must be valid UTF-8");
    if (cli->restart != NULL)
        json_object_set_new(body, "restart", json_string(cli->restart));
    if (cli->supervisor != NULL) {
        /* A child of a running tree: POST /supervisors/NAME/children takes a child spec. */
        if (cli->durable) {
            json_decref(body);
            return usage(cli, "--durable and --supervisor cannot be combined (a child spec "
                              "has no durable field)");
        }
        rc = path_with(cli, path, sizeof(path), "/supervisors/%s/children", cli->supervisor);
        if (rc != 0) {
            json_decref(body);
            return rc;
        }
    } else {
        snprintf(path, sizeof(path), "/servers");
        if (cli->durable)
            json_object_set_new(body, "durable", json_true());
    }
    rc = request(cli, "POST", path, body, 0, &resp, &out);
    if (rc != 0)
        return rc;
    if (cli->json)
        print_body(&resp);
    else if (json_is_true(json_object_get(out, "ignored")))
        printf("%s: init returned ignore; nothing runs under the name\n", cli->pos[1]);
    else
        printf("started %s (%s)%s%s\n", cli->pos[1], cli->pos[0], cli->supervisor ? " under " : "",
               cli->supervisor ? cli->supervisor : "");
    json_decref(out);
    gs_cli_resp_close(&resp);
    return 0;
}

static int cmd_stop(cli_t *cli)
{
    gs_cli_resp_t resp;
    json_t *body;
    char path[1024];
    long client_ms = 0;
    int rc;

    if (cli->npos != 1)
        return usage(cli, "stop takes one server name");
    rc = path_with(cli, path, sizeof(path), "/servers/%s", cli->pos[0]);
    if (rc != 0)
        return rc;
    body = json_object();
    if (cli->reason != NULL) {
        char err[256] = "";
        json_t *r = gs_cli_message_parse(1, (char *const *)&cli->reason, err, sizeof(err));

        if (r == NULL) {
            json_decref(body);
            return usage(cli, "--reason: %s", err);
        }
        json_object_set_new(body, "reason", r);
    }
    if (cli->timeout_ms >= 0) {
        json_object_set_new(body, "timeout_ms", json_integer(cli->timeout_ms));
        client_ms = cli->timeout_ms + CLI_CALL_MARGIN_MS;
    }
    rc = request(cli, "DELETE", path, body, client_ms, &resp, NULL);
    if (rc != 0)
        return rc;
    if (cli->json)
        print_body(&resp);
    else
        printf("stopped %s\n", cli->pos[0]);
    gs_cli_resp_close(&resp);
    return 0;
}

/* One node of a tree (borrowed) and its children, indented by depth. */
static void print_tree_node(const cli_t *cli, const json_t *n, int depth)
{
    const char *kind = json_string_value(json_object_get(n, "kind"));
    char restarts[32];
    const json_t *c;
    size_t i;

    cell_int(restarts, sizeof(restarts), json_object_get(n, "restarts"));
    printf("%*s", depth * 2, "");
    if (kind != NULL && strcmp(kind, "supervisor") == 0)
        printf("%s%s%s  supervisor %s, %s, restarts %s\n", bold(cli),
               json_string_value(json_object_get(n, "name")), plain(cli),
               json_string_value(json_object_get(n, "strategy")),
               json_string_value(json_object_get(n, "status")), restarts);
    else
        printf("%s  %s, %s, %s, restarts %s\n", json_string_value(json_object_get(n, "name")),
               json_string_value(json_object_get(n, "behaviour")),
               json_string_value(json_object_get(n, "restart")),
               json_string_value(json_object_get(n, "status")), restarts);
    json_array_foreach(json_object_get(n, "children"), i, c)
    {
        print_tree_node(cli, c, depth + 1);
    }
}

static int cmd_tree(cli_t *cli)
{
    gs_cli_resp_t resp;
    json_t *out = NULL, *t;
    char path[1024];
    size_t i;
    int rc;

    if (cli->npos > 1)
        return usage(cli, "tree takes at most one supervisor name");
    if (cli->npos == 1) {
        rc = path_with(cli, path, sizeof(path), "/supervisors/%s", cli->pos[0]);
        if (rc != 0)
            return rc;
    } else {
        snprintf(path, sizeof(path), "/supervisors");
    }
    rc = request(cli, "GET", path, NULL, 0, &resp, &out);
    if (rc != 0)
        return rc;
    if (cli->json)
        print_body(&resp);
    else if (cli->npos == 1)
        print_tree_node(cli, out, 0);
    else
        json_array_foreach(json_object_get(out, "supervisors"), i, t)
        {
            print_tree_node(cli, t, 0);
        }
    json_decref(out);
    gs_cli_resp_close(&resp);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Behaviours                                                                                  */
/* ------------------------------------------------------------------------------------------ */

/* A whole file (path borrowed) as a new string (free it), or NULL after printing why. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0, r;

    if (f == NULL) {
        fprintf(stderr, "genserv: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    do {
        if (n + 4096 + 1 > cap) {
            char *b;

            cap = cap ? cap * 2 : 65536;
            b = realloc(buf, cap);
            if (b == NULL) {
                fprintf(stderr, "genserv: %s: out of memory\n", path);
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = b;
        }
        r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
    } while (r > 0);
    if (ferror(f)) {
        fprintf(stderr, "genserv: %s: read error\n", path);
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* The behaviour's name from its file: "dir/tally.lua" -> "tally". A new string. */
static char *name_from_file(const char *path)
{
    const char *base = strrchr(path, '/');
    char *name = strdup(base != NULL ? base + 1 : path);
    size_t n;

    if (name == NULL)
        abort();
    n = strlen(name);
    if (n > 4 && strcmp(name + n - 4, ".lua") == 0)
        name[n - 4] = '\0';
    return name;
}

/*
 * The body of POST or PUT /behaviours: {"name"?, "vsn"?, "source"} (a new reference), or NULL
 * after printing why. name borrowed, may be NULL.
 */
static json_t *behaviour_body(const cli_t *cli, const char *name, const char *file)
{
    size_t len = 0;
    char *src = read_file(file, &len);
    json_t *body, *s;

    if (src == NULL)
        return NULL;
    s = json_stringn(src, len);
    free(src);
    if (s == NULL) {
        fprintf(stderr, "genserv: %s is not UTF-8 text\n", file);
        return NULL;
    }
    body = json_pack("{s:o}", "source", s);
    if (name != NULL)
        json_object_set_new(body, "name", json_string(name));
    if (cli->vsn != NULL)
        json_object_set_new(body, "vsn", json_string(cli->vsn));
    return body;
}

static int behaviours_list(cli_t *cli)
{
    gs_cli_resp_t resp;
    json_t *out = NULL, *b;
    table_t tab = {4, 0, 0, NULL};
    size_t i;
    int rc;

    rc = request(cli, "GET", "/behaviours", NULL, 0, &resp, &out);
    if (rc != 0)
        return rc;
    if (cli->json) {
        print_body(&resp);
        goto out;
    }
    table_row(&tab, "NAME", "KIND", "VSN", "DESCRIPTION");
    json_array_foreach(json_object_get(out, "behaviours"), i, b)
    {
        table_row(&tab, json_string_value(json_object_get(b, "name")),
                  json_string_value(json_object_get(b, "kind")),
                  json_string_value(json_object_get(b, "vsn")),
                  json_string_value(json_object_get(b, "description")));
    }
    table_print(cli, &tab);
out:
    json_decref(out);
    gs_cli_resp_close(&resp);
    return 0;
}

static int behaviours_show(cli_t *cli)
{
    gs_cli_resp_t resp;
    json_t *out = NULL, *m;
    char path[1024], servers[1024];
    size_t i;
    int rc;

    rc = path_with(cli, path, sizeof(path), "/behaviours/%s", cli->pos[1]);
    if (rc != 0)
        return rc;
    rc = request(cli, "GET", path, NULL, 0, &resp, &out);
    if (rc != 0)
        return rc;
    if (cli->json) {
        print_body(&resp);
        goto out;
    }
    cell_json(servers, sizeof(servers), json_object_get(out, "servers"));
    printf("%sname%s         %s\n", bold(cli), plain(cli),
           json_string_value(json_object_get(out, "name")));
    printf("%skind%s         %s\n", bold(cli), plain(cli),
           json_string_value(json_object_get(out, "kind")));
    printf("%svsn%s          %s\n", bold(cli), plain(cli),
           json_is_string(json_object_get(out, "vsn"))
               ? json_string_value(json_object_get(out, "vsn"))
               : "-");
    if (json_is_string(json_object_get(out, "description")))
        printf("%sdescription%s  %s\n", bold(cli), plain(cli),
               json_string_value(json_object_get(out, "description")));
    printf("%sservers%s      %s\n", bold(cli), plain(cli), servers);
    if (json_array_size(json_object_get(out, "messages")) > 0)
        printf("%smessages%s\n", bold(cli), plain(cli));
    json_array_foreach(json_object_get(out, "messages"), i, m)
    {
        char ex[256];

        cell_json(ex, sizeof(ex), json_object_get(m, "example"));
        printf("  %-5s %-28s %s\n", json_string_value(json_object_get(m, "kind")), ex,
               json_is_string(json_object_get(m, "description"))
                   ? json_string_value(json_object_get(m, "description"))
                   : "");
    }
    if (json_is_string(json_object_get(out, "source")))
        printf("%ssource%s\n%s", bold(cli), plain(cli),
               json_string_value(json_object_get(out, "source")));
out:
    json_decref(out);
    gs_cli_resp_close(&resp);
    return 0;
}

static int behaviours_upload(cli_t *cli)
{
    gs_cli_resp_t resp;
    json_t *body, *out = NULL;
    char *name;
    int rc;

    if (cli->npos != 2)
        return usage(cli, "behaviours upload takes one FILE.lua");
    name = cli->name != NULL ? strdup(cli->name) : name_from_file(cli->pos[1]);
    if (name == NULL)
        abort();
    body = behaviour_body(cli, name, cli->pos[1]);
    if (body == NULL) {
        free(name);
        return GS_CLI_EXIT_USAGE;
    }
    rc = request(cli, "POST", "/behaviours", body, 0, &resp, &out);
    if (rc == 0) {
        if (cli->json)
            print_body(&resp);
        else
            printf("uploaded %s (vsn %s)\n", name,
                   json_is_string(json_object_get(out, "vsn"))
                       ? json_string_value(json_object_get(out, "vsn"))
                       : "-");
        json_decref(out);
        gs_cli_resp_close(&resp);
    }
    free(name);
    return rc;
}

static int behaviours_upgrade(cli_t *cli)
{
    gs_cli_resp_t resp;
    json_t *body, *out = NULL, *o;
    char path[1024];
    json_int_t failed;
    size_t i;
    int rc;

    if (cli->npos != 3)
        return usage(cli, "behaviours upgrade takes a NAME and a FILE.lua");
    rc = path_with(cli, path, sizeof(path), "/behaviours/%s", cli->pos[1]);
    if (rc != 0)
        return rc;
    body = behaviour_body(cli, NULL, cli->pos[2]);
    if (body == NULL)
        return GS_CLI_EXIT_USAGE;
    rc = request(cli, "PUT", path, body, 0, &resp, &out);
    if (rc != 0)
        return rc;
    failed = json_integer_value(json_object_get(out, "failed"));
    if (cli->json) {
        print_body(&resp);
    } else {
        printf("upgraded %s to vsn %s: %lld server(s) upgraded, %lld failed\n", cli->pos[1],
               json_is_string(json_object_get(out, "vsn"))
                   ? json_string_value(json_object_get(out, "vsn"))
                   : "-",
               (long long)json_integer_value(json_object_get(out, "upgraded")), (long long)failed);
        json_array_foreach(json_object_get(out, "outcomes"), i, o)
        {
            char why[256];

            if (json_object_get(o, "error") == NULL)
                continue;
            cell_json(why, sizeof(why), json_object_get(o, "error"));
            printf("  %s kept its old code: %s\n", json_string_value(json_object_get(o, "server")),
                   why);
        }
    }
    json_decref(out);
    gs_cli_resp_close(&resp);
    /* The code was replaced, but a server that kept the old one is something to act on. */
    return failed > 0 ? GS_CLI_EXIT_ERROR : 0;
}

static int cmd_behaviours(cli_t *cli)
{
    const char *sub = cli->npos > 0 ? cli->pos[0] : "list";

    if (strcmp(sub, "list") == 0)
        return cli->npos <= 1 ? behaviours_list(cli) : usage(cli, "list takes no arguments");
    if (strcmp(sub, "show") == 0)
        return cli->npos == 2 ? behaviours_show(cli)
                              : usage(cli, "behaviours show takes one behaviour name");
    if (strcmp(sub, "upload") == 0)
        return behaviours_upload(cli);
    if (strcmp(sub, "upgrade") == 0)
        return behaviours_upgrade(cli);
    return usage(cli, "unknown: \"%s\" (list, show, upload or upgrade)", sub);
}

/* ------------------------------------------------------------------------------------------ */
/* Operations                                                                                  */
/* ------------------------------------------------------------------------------------------ */

/* Written by the SIGINT/SIGTERM handler, read by libcurl's progress callback: sig_atomic_t. */
static volatile sig_atomic_t watch_stop;

static void watch_signal(int sig)
{
    (void)sig;
    watch_stop = 1;
}

typedef struct watch_s {
    const cli_t *cli;
    int closed; /* a `closed` event came: the server ended the stream */
} watch_t;

/* "2026-12-01T22:45:03Z" of now, UTC, for the start of a line. */
static void now_utc(char *buf, size_t len)
{
    time_t t = time(NULL);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(buf, len, "%H:%M:%S", &tm);
}

/* "22:45:03" of a Unix time in ms, UTC. */
static void at_utc(char *buf, size_t len, json_int_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(buf, len, "%H:%M:%S", &tm);
}

static void watch_line(watch_t *w, json_t *ev, const char *data, const char *when);

/* The stream's first line: the recent lifecycle events genserv kept, each printed as a live
 * one would be, at the time it happened and marked "history". ev borrowed. */
static void watch_history(watch_t *w, json_t *ev)
{
    size_t i;
    json_t *past;
    char when[32];

    json_array_foreach(json_object_get(ev, "events"), i, past)
    {
        json_t *at = json_object_get(past, "at_ms");

        if (json_is_integer(at))
            at_utc(when, sizeof(when), json_integer_value(at));
        else
            snprintf(when, sizeof(when), "--:--:--");
        strncat(when, " history", sizeof(when) - strlen(when) - 1);
        watch_line(w, past, NULL, when);
    }
}

/* One event as one line. data borrowed. */
static int watch_data_cb(const char *data, void *arg)
{
    watch_t *w = arg;
    json_t *ev;
    char when[16];

    if (w->cli->json) {
        printf("%s\n", data);
        goto flush;
    }
    ev = json_loads(data, 0, NULL);
    now_utc(when, sizeof(when));
    watch_line(w, ev, data, when);
    json_decref(ev);
flush:
    /* One line at a time, also into a pipe; a reader that went away ends the watch. */
    return fflush(stdout) != 0 || ferror(stdout);
}

/* Print ev (borrowed; NULL if data was not JSON) as one line starting with when. data: the
 * raw text, printed as it is when it is no event (NULL: nothing to fall back on). */
static void watch_line(watch_t *w, json_t *ev, const char *data, const char *when)
{
    const char *type = json_string_value(json_object_get(ev, "type"));
    const char *server = json_string_value(json_object_get(ev, "server"));
    char reason[512] = "";

    if (type == NULL) {
        if (data != NULL)
            printf("%s %s\n", when, data);
    } else if (strcmp(type, "history") == 0) {
        watch_history(w, ev);
    } else if (strcmp(type, "snapshot") == 0) {
        printf("%s snapshot: %zu server(s)\n", when,
               json_array_size(json_object_get(ev, "servers")));
    } else if (strcmp(type, "state_changed") == 0) {
        const json_t *st = json_object_get(ev, "status");

        printf("%s state_changed %s: %s, mailbox %lld, handled %lld, held %lld\n", when,
               server ? server : "?",
               json_string_value(json_object_get(st, "status")) != NULL
                   ? json_string_value(json_object_get(st, "status"))
                   : "?",
               (long long)json_integer_value(json_object_get(st, "mailbox_len")),
               (long long)json_integer_value(json_object_get(st, "messages_handled")),
               (long long)json_integer_value(json_object_get(st, "held_calls")));
    } else if (strcmp(type, "closed") == 0) {
        printf("%s closed: %s\n", when, json_string_value(json_object_get(ev, "reason")));
        w->closed = 1;
    } else {
        if (json_object_get(ev, "reason") != NULL) {
            reason[0] = ':';
            reason[1] = ' ';
            cell_json(reason + 2, sizeof(reason) - 2, json_object_get(ev, "reason"));
        }
        const char *behaviour = json_string_value(json_object_get(ev, "behaviour"));

        printf("%s %s %s (%s)%s\n", when, type, server ? server : "?", behaviour ? behaviour : "?",
               reason);
    }
}

static int cmd_watch(cli_t *cli)
{
    struct sigaction sa;
    gs_cli_resp_t resp;
    watch_t w = {cli, 0};
    char path[1024];
    int rc;

    if (cli->npos > 1)
        return usage(cli, "watch takes at most one server name");
    if (cli->npos == 1) {
        rc = path_with(cli, path, sizeof(path), "/events?server=%s", cli->pos[0]);
        if (rc != 0)
            return rc;
    } else {
        snprintf(path, sizeof(path), "/events");
    }
    /* Ctrl-C (and SIGTERM) end the watch as its normal end: exit 0. No SA_RESTART, so that
     * libcurl's poll returns and its progress callback sees the flag. */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = watch_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    rc = gs_cli_http_stream(&cli->conn, path, watch_data_cb, &w, &watch_stop, &resp);
    if (rc == CURLE_ABORTED_BY_CALLBACK || (rc == CURLE_OK && resp.status == 200)) {
        gs_cli_resp_close(&resp);
        return 0;
    }
    if (resp.status != 0 && resp.status != 200)
        resp.curl_rc = CURLE_OK;
    else if (resp.status == 200)
        resp.status = 0; /* the stream broke: the connection's error */
    rc = fail(cli, &resp);
    gs_cli_resp_close(&resp);
    return rc;
}

static int cmd_metrics(cli_t *cli)
{
    gs_cli_resp_t resp;
    int rc;

    if (cli->npos > 0)
        return usage(cli, "metrics takes no arguments");
    rc = request(cli, "GET", "/metrics", NULL, 0, &resp, NULL);
    if (rc != 0)
        return rc;
    fwrite(resp.body, 1, resp.body_len, stdout);
    gs_cli_resp_close(&resp);
    return 0;
}

static int cmd_help(cli_t *cli)
{
    const command_t *c;

    if (cli->npos == 0) {
        print_overview(stdout);
        return 0;
    }
    c = find_command(cli->pos[0]);
    if (c == NULL) {
        fprintf(stderr, "genserv: no subcommand \"%s\"\n", cli->pos[0]);
        print_overview(stderr);
        return GS_CLI_EXIT_USAGE;
    }
    print_command_help(stdout, c);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* The table of subcommands                                                                    */
/* ------------------------------------------------------------------------------------------ */

static const command_t commands[] = {
    {"call", cmd_call, "|timeout|", "call NAME MESSAGE... [--timeout MS]",
     "Call a server and print its reply (GenServer.call). The call may be held for a deferred\n"
     "reply; --timeout MS is the call's timeout_ms (default: genserv's, 5000).\n"
     "MESSAGE is JSON or the short form (genserv help messages).\n\n"
     "  genserv call counter get_count              # \"get_count\"          -> 0\n"
     "  genserv call batcher push 5                 # [\"push\", 5]          -> \"ok\"\n"
     "  genserv call journal '{:add_entry, \"x\"}'    # [\"add_entry\", \"x\"]\n"
     "  genserv call journal '[\"add_entry\",\"x\"]'    # the same, as JSON\n"
     "  genserv call slow sleep 2000 --timeout 300  # exit 4: timeout\n"},
    {"cast", cmd_cast, "|ack|", "cast NAME MESSAGE... [--ack handled]",
     "Cast to a server (GenServer.cast): answered once the message is in its mailbox, or with\n"
     "--ack handled once it was handled.\n\n"
     "  genserv cast counter increment\n"},
    {"send", cmd_send, "|ack|", "send NAME MESSAGE...",
     "Send a plain message to a server's handle_info (send/2).\n\n"
     "  genserv send ticker tick\n"},
    {"send-after", cmd_send_after, "|interval|",
     "send-after NAME DELAY_MS MESSAGE... [--interval MS]",
     "Deliver a message to handle_info after DELAY_MS (Process.send_after); prints the timer's\n"
     "reference. --interval MS repeats it (:timer.send_interval) until cancelled.\n\n"
     "  genserv send-after receiver 60000 greeting hello\n"},
    {"timers", cmd_timers, "|limit|http|",
     "timers [list [--limit N] [--http] | read REF | cancel REF]",
     "Every pending timer, soonest first, with who made it (--http: only those made over\n"
     "HTTP, which cancel can cancel); the time left on one\n"
     "(Process.read_timer); or cancel one (Process.cancel_timer).\n\n"
     "  genserv timers\n  genserv timers read 00000000000000044cdc...\n"
     "  genserv timers cancel 00000000000000044cdc...\n"},
    {"ps", cmd_ps, "||", "ps",
     "Every server as a table: name, behaviour, status, mailbox, held calls, restarts, memory\n"
     "and uptime.\n\n  genserv ps\n"},
    {"state", cmd_state, "||", "state NAME",
     "A server's state, as :sys.get_state sees it (with --json: its whole status).\n\n"
     "  genserv state counter\n"},
    {"start", cmd_start, "|durable|supervisor|restart|",
     "start BEHAVIOUR NAME [ARGS...] [--restart TYPE] [--durable] [--supervisor SUP]",
     "Start a server (POST /servers), or a child of the running supervisor SUP. ARGS, given\n"
     "like a message, are passed to init (default null).\n\n"
     "  genserv start counter counter2 '{\"initial\": 10}' --restart transient\n"
     "  genserv start counter audit --supervisor root\n"},
    {"stop", cmd_stop, "|reason|timeout|", "stop NAME [--reason REASON] [--timeout MS]",
     "Stop a server (GenServer.stop): terminate runs with REASON (default normal).\n\n"
     "  genserv stop counter2 --reason '{:shutdown, :maintenance}'\n"},
    {"tree", cmd_tree, "||", "tree [SUPERVISOR]",
     "The supervision trees, indented, or the tree under one supervisor.\n\n"
     "  genserv tree\n  genserv tree root\n"},
    {"behaviours", cmd_behaviours, "|name|vsn|",
     "behaviours [list | show NAME | upload FILE.lua [--name NAME] [--vsn V] | upgrade NAME "
     "FILE.lua [--vsn V]]",
     "The behaviours that can be started; one with its messages (and a Lua one's source);\n"
     "register a Lua behaviour (its name: --name, else the file's name without .lua); or\n"
     "hot-upgrade one (exit 1 when a server kept its old code).\n\n"
     "  genserv behaviours\n  genserv behaviours show counter\n"
     "  genserv behaviours upload tally.lua\n  genserv behaviours upgrade tally tally2.lua\n"},
    {"watch", cmd_watch, "||", "watch [NAME]",
     "Runtime events as they happen, one line each (GET /events), for every server or one.\n"
     "Ctrl-C ends it (exit 0).\n\n  genserv watch\n  genserv watch counter --json\n"},
    {"metrics", cmd_metrics, "||", "metrics",
     "GET /metrics as it is (Prometheus text).\n\n  genserv metrics | grep genserv_held_calls\n"},
    {"help", cmd_help, "||", "help [SUBCOMMAND | messages]",
     "The list of subcommands, or one's usage and examples.\n"},
};

static const char messages_help[] =
    "Messages (docs/cli.md): every argument after the server's name is one term; one term is\n"
    "the message, several are a tuple (a JSON array).\n"
    "  - an argument that is JSON is that JSON: 5, true, '\"5\"', '[\"push\", 5]', '{\"a\": 1}'\n"
    "  - one that starts with { [ or : is the short Elixir-like form:\n"
    "      :word and word -> \"word\"; {t, ...} and [t, ...] -> [t, ...]; numbers, \"text\",\n"
    "      true, false and nil as in JSON:  '{:add_entry, \"x\"}' -> [\"add_entry\", \"x\"]\n"
    "  - anything else is that text, a string: get_count -> \"get_count\"\n"
    "  genserv call counter get_count        -> \"get_count\"\n"
    "  genserv call batcher push 5           -> [\"push\", 5]\n"
    "  genserv call journal add_entry 'first entry'  -> [\"add_entry\", \"first entry\"]\n";

static const command_t *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static void print_overview(FILE *f)
{
    fprintf(f, "genserv's client: talks to a running genserv over its HTTP API.\n"
               "usage: genserv SUBCOMMAND [ARGS...] [--url URL] [--json]\n\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  genserv %s\n", commands[i].usage);
    fprintf(f,
            "\n`genserv help SUBCOMMAND` shows examples; `genserv help messages` the short "
            "form of\nmessages. Without a subcommand, genserv is the server "
            "(genserv --help).\n\n%s",
            common_help);
}

bool gs_cli_is_command(const char *arg)
{
    return arg != NULL && find_command(arg) != NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Arguments                                                                                   */
/* ------------------------------------------------------------------------------------------ */

/* An option's integer value; -1 (with a usage message) when it is not one. */
static long opt_long(const cli_t *cli, const char *opt, const char *v)
{
    long n = parse_ms(v);

    if (n < 0 || n > INT_MAX)
        usage(cli, "--%s needs a non-negative integer, not \"%s\"", opt, v);
    return n > INT_MAX ? -1 : n;
}

/* Where the value of the integer option opt goes, or NULL when opt is not one. */
static long *long_option(cli_t *cli, const char *opt)
{
    if (strcmp(opt, "timeout") == 0)
        return &cli->timeout_ms;
    if (strcmp(opt, "interval") == 0)
        return &cli->interval_ms;
    if (strcmp(opt, "limit") == 0)
        return &cli->limit;
    return NULL;
}

/* Where the value of the text option opt goes (parse_args knows opt is one of them). */
static const char **string_option(cli_t *cli, const char *opt)
{
    if (strcmp(opt, "supervisor") == 0)
        return &cli->supervisor;
    if (strcmp(opt, "restart") == 0)
        return &cli->restart;
    if (strcmp(opt, "name") == 0)
        return &cli->name;
    if (strcmp(opt, "reason") == 0)
        return &cli->reason;
    if (strcmp(opt, "ack") == 0)
        return &cli->ack;
    if (strcmp(opt, "vsn") == 0)
        return &cli->vsn;
    return &cli->conn.url; /* "url" */
}

/*
 * Options anywhere after the subcommand (`--opt VALUE` or `--opt=VALUE`); `--` ends them, so
 * that a message may start with `--`. Returns 0, 1 for --help (printed), or a usage status.
 */
static int parse_args(cli_t *cli, const command_t *c, int argc, char **argv)
{
    static const char *const with_value[] = {"url",        "timeout", "interval", "limit",
                                             "supervisor", "restart", "name",     "reason",
                                             "ack",        "vsn"};
    bool options = true;

    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = NULL, *eq;
        char opt[32];
        bool takes = false;
        size_t n;

        if (!options || strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            if (options && strcmp(a, "--") == 0) {
                options = false;
                continue;
            }
            if (strcmp(a, "-h") == 0 && options) {
                print_command_help(stdout, c);
                return 1;
            }
            if (cli->npos == CLI_MAX_POSITIONAL)
                return usage(cli, "more than %d arguments", CLI_MAX_POSITIONAL);
            cli->pos[cli->npos++] = argv[i];
            continue;
        }
        a += 2;
        eq = strchr(a, '=');
        n = eq != NULL ? (size_t)(eq - a) : strlen(a);
        if (n >= sizeof(opt))
            return usage(cli, "unknown option --%s", a);
        memcpy(opt, a, n);
        opt[n] = '\0';
        if (strcmp(opt, "help") == 0) {
            print_command_help(stdout, c);
            return 1;
        }
        if (strcmp(opt, "json") == 0) {
            cli->json = true;
            continue;
        }
        if (strcmp(opt, "token") == 0)
            return usage(cli, "the token is read from GENSERV_TOKEN only (a flag shows in ps)");
        for (size_t k = 0; k < sizeof(with_value) / sizeof(with_value[0]); k++)
            takes = takes || strcmp(opt, with_value[k]) == 0;
        if (strcmp(opt, "url") != 0) {
            char key[40];

            snprintf(key, sizeof(key), "|%s|", opt);
            if (strstr(c->options, key) == NULL)
                return usage(cli, "unknown option --%s", opt);
        }
        if (takes) {
            if (eq != NULL)
                v = eq + 1;
            else if (i + 1 < argc)
                v = argv[++i];
            else
                return usage(cli, "--%s needs a value", opt);
        } else if (eq != NULL) {
            return usage(cli, "--%s takes no value", opt);
        }
        if (strcmp(opt, "http") == 0) {
            cli->http = true;
            continue;
        }
        if (strcmp(opt, "durable") == 0) {
            cli->durable = true;
        } else if (long_option(cli, opt) != NULL) {
            long value = opt_long(cli, opt, v);

            if (value < 0)
                return GS_CLI_EXIT_USAGE;
            *long_option(cli, opt) = value;
        } else {
            *string_option(cli, opt) = v;
        }
    }
    return 0;
}

int gs_cli_main(int argc, char **argv)
{
    const command_t *c = find_command(argv[1]);
    cli_t cli;
    char url[2048];
    size_t n;
    int rc;

    memset(&cli, 0, sizeof(cli));
    cli.cmd = argv[1];
    cli.timeout_ms = cli.interval_ms = cli.limit = -1;
    cli.conn.url = getenv("GENSERV_URL");
    if (cli.conn.url == NULL || cli.conn.url[0] == '\0')
        cli.conn.url = CLI_DEFAULT_URL;
    cli.conn.token = getenv("GENSERV_TOKEN");
    cli.color_out = isatty(STDOUT_FILENO) && getenv("NO_COLOR") == NULL;
    cli.color_err = isatty(STDERR_FILENO) && getenv("NO_COLOR") == NULL;
    rc = parse_args(&cli, c, argc, argv);
    if (rc != 0)
        return rc == 1 ? 0 : rc;
    if (cli.json)
        cli.color_out = false;
    if (c->run == cmd_help && cli.npos == 1 && strcmp(cli.pos[0], "messages") == 0) {
        fputs(messages_help, stdout);
        return 0;
    }
    if (cli.conn.token != NULL && strpbrk(cli.conn.token, "\r\n") != NULL) {
        fprintf(stderr, "genserv: GENSERV_TOKEN holds a line break\n");
        return GS_CLI_EXIT_USAGE;
    }
    /* "http://host:8080/" and "host:8080" both work: paths are appended to it. */
    n = strlen(cli.conn.url);
    while (n > 0 && cli.conn.url[n - 1] == '/')
        n--;
    if ((int)n >= (int)sizeof(url) - 8)
        return usage(&cli, "--url is too long");
    snprintf(url, sizeof(url), "%s%.*s", strstr(cli.conn.url, "://") ? "" : "http://", (int)n,
             cli.conn.url);
    cli.conn.url = url;
    signal(SIGPIPE, SIG_IGN); /* a closed pipe is an error of fwrite, not the end */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "genserv: libcurl could not start\n");
        return GS_CLI_EXIT_ERROR;
    }
    rc = c->run(&cli);
    if (fflush(stdout) != 0 && rc == 0)
        rc = GS_CLI_EXIT_ERROR;
    curl_global_cleanup();
    return rc;
}
