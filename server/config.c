/*
 * config.c: flags, environment variables and the JSON config file, merged by precedence.
 *
 * One table describes every setting: its flag, its config key, its range, its default and its
 * help. The gateway's numeric settings come from the gateway's own list
 * (GS_GATEWAY_LIMITS_MAP in genserv/gateway.h), so their defaults and ranges are stated once.
 * --help, the environment names and the config keys are all generated from it, so they cannot drift
 * apart. Values are collected as text per source, then the highest source that gave one wins (flag
 * > env > config > default) and is parsed and checked once, with an error that names the source
 * ("GENSERV_MAX_BODY_BYTES: ..."). Unknown flags and unknown config keys are errors: a typo should
 * not silently fall back to a default.
 */
#include "config.h"

#include <genserv/genserv.h>
#include <genserv/lua.h>
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#ifndef GS_VERSION
#define GS_VERSION "0.1.0"
#endif

typedef enum kind_e { K_LISTEN, K_UINT, K_LEVEL, K_LIST, K_PATH, K_STRING, K_BOOL } kind_t;

typedef enum opt_id_e {
    OPT_LISTEN,
    OPT_CONFIG,
    OPT_SCHEDULERS,
    OPT_PLUGIN,
    OPT_LOG_LEVEL,
    OPT_LOG_FORMAT,
    OPT_ACCESS_LOG,
    OPT_DRAIN_MS,
/* The gateway's numeric settings: one option each, from its own list (genserv/gateway.h). */
#define GS__OPT_ID(field, flag, key, min, max, def, metavar, help) OPT_GW_##field,
    GS_GATEWAY_LIMITS_MAP(GS__OPT_ID)
#undef GS__OPT_ID
/* The runtime's bounds on timers, from its own list (genserv/genserv.h). */
#define GS__OPT_ID(field, flag, key, min, max, def, metavar, help) OPT_RT_##field,
        GS_RUNTIME_LIMITS_MAP(GS__OPT_ID)
#undef GS__OPT_ID
/* The Lua host's limits, from its own list (genserv/lua.h). */
#define GS__OPT_ID(field, flag, key, min, max, def, metavar, help) OPT_LUA_##field,
            GS_LUA_LIMITS_MAP(GS__OPT_ID)
#undef GS__OPT_ID
                OPT_BEHAVIOURS_DIR,
    OPT_MAILBOX_LIMIT,
    OPT_SHUTDOWN_TIMEOUT_MS,
    OPT_TOKEN,
    OPT_READ_TOKEN,
    OPT_CORS_ORIGINS,
    OPT_DATA_DIR,
    OPT_DURABILITY,
    OPT_IDEMPOTENCY_WINDOW_MS,
    OPT_HEALTH_CHECK,
    OPT_HELP,
    OPT_VERSION,
    OPT_COUNT
} opt_id_t;

typedef struct opt_s {
    const char *flag; /* without the leading "--" */
    kind_t kind;
    const char *key; /* config file key; "limits.x" lives in the "limits" object; NULL: none */
    unsigned long long min, max;
    const char *def; /* default as text; NULL: none */
    const char *arg; /* metavariable for --help */
    const char *help;
} opt_t;

static const opt_t opts[OPT_COUNT] = {
    [OPT_LISTEN] = {"listen", K_LISTEN, "listen", 0, 0, "127.0.0.1:8080", "HOST:PORT",
                    "address to serve HTTP on; port 0 picks a free port. The first line on "
                    "stdout is then `listening on http://HOST:PORT`."},
    [OPT_CONFIG] = {"config", K_PATH, NULL, 0, 0, NULL, "FILE",
                    "JSON config file: settings, limits and the servers to start at boot."},
    [OPT_SCHEDULERS] = {"schedulers", K_UINT, "schedulers", 0, 1024, "0", "N",
                        "runtime scheduler threads; 0 means one per core."},
    [OPT_PLUGIN] = {"plugin", K_LIST, "plugins", 0, 0, NULL, "PATH.so",
                    "load a behaviour plugin (repeatable; GENSERV_PLUGIN takes a ':'-separated "
                    "list)."},
    [OPT_LOG_LEVEL] = {"log-level", K_LEVEL, "log_level", 0, 0, "info", "LEVEL",
                       "error, warn, info or debug (debug logs every request)."},
    [OPT_LOG_FORMAT] = {"log-format", K_STRING, "log_format", 0, 0, "text", "FORMAT",
                        "text (one readable line per event) or json (one JSON object per "
                        "line: ts, level, msg, and the event's fields)."},
    [OPT_ACCESS_LOG] = {"access-log", K_STRING, "access_log", 0, 0, NULL, "FILE",
                        "write one line per answered request (method, path, status, duration, "
                        "bytes, client, request id) to FILE (appended), or to stderr with -, in "
                        "the log format. Off by default."},
    [OPT_DRAIN_MS] = {"drain-ms", K_UINT, "drain_ms", 0, 600000, "0", "MS",
                      "on SIGTERM/SIGINT, answer GET /readyz 503 and keep serving everything "
                      "for this long before closing the listening socket, so that a load "
                      "balancer stops sending new requests first (5000 behind Kubernetes)."},
#define GS__OPT_ROW(field, flag, key, min, max, def, metavar, help)                                \
    [OPT_GW_##field] = {flag, K_UINT, key, min, max, #def, metavar, help},
    GS_GATEWAY_LIMITS_MAP(GS__OPT_ROW)
#undef GS__OPT_ROW
#define GS__OPT_ROW(field, flag, key, min, max, def, metavar, help)                                \
    [OPT_RT_##field] = {flag, K_UINT, key, min, max, #def, metavar, help},
        GS_RUNTIME_LIMITS_MAP(GS__OPT_ROW)
#undef GS__OPT_ROW
#define GS__OPT_ROW(field, flag, key, min, max, def, metavar, help)                                \
    [OPT_LUA_##field] = {flag, K_UINT, key, min, max, #def, metavar, help},
            GS_LUA_LIMITS_MAP(GS__OPT_ROW)
#undef GS__OPT_ROW
                [OPT_BEHAVIOURS_DIR] = {"behaviours-dir", K_STRING, "behaviours_dir", 0, 0, NULL,
                                        "DIR",
                                        "load every *.lua file of DIR at boot as a Lua "
                                        "behaviour named after the file (counter.lua: "
                                        "\"counter\"), before the boot servers start; a file "
                                        "that does not load stops the boot."},
    [OPT_MAILBOX_LIMIT] = {"mailbox-limit", K_UINT, "limits.mailbox_limit", 0, 100000000, "0", "N",
                           "default per-server mailbox bound; 0 means the runtime's default "
                           "(100000). Past it 503 overloaded."},
    [OPT_SHUTDOWN_TIMEOUT_MS] = {"shutdown-timeout-ms", K_UINT, "shutdown_timeout_ms", 0, 600000,
                                 "5000", "MS",
                                 "on SIGTERM/SIGINT, how long to wait for answers to go out."},
    [OPT_TOKEN] = {"token", K_STRING, "token", 0, 0, NULL, "TOKEN",
                   "require `Authorization: Bearer TOKEN` on every endpoint but the dashboard's "
                   "files and /healthz (401 without it). Prefer GENSERV_TOKEN or the config file: "
                   "flags show in ps."},
    [OPT_READ_TOKEN] = {"read-token", K_STRING, "read_token", 0, 0, NULL, "TOKEN",
                        "a second token that allows GET and HEAD only (403 for the rest): for "
                        "the dashboard and monitoring."},
    [OPT_CORS_ORIGINS] = {"cors-origins", K_STRING, "cors_origins", 0, 0, NULL, "ORIGINS",
                          "web origins allowed to call the API from a browser (CORS), "
                          "comma-separated, or *. Off by default."},
    [OPT_DATA_DIR] = {"data-dir", K_STRING, "data_dir", 0, 0, NULL, "DIR",
                      "keep durable servers, stored timers, the servers and supervisors started "
                      "over HTTP and uploaded behaviours in DIR/genserv.db (SQLite, created if "
                      "missing) and bring them back at start. Without it everything lives in "
                      "memory (docs/durability.md)."},
    [OPT_DURABILITY] = {"durability", K_STRING, "durability", 0, 0, "process", "LEVEL",
                        "what a committed durable write survives: process (the process dying; "
                        "SQLite synchronous=NORMAL) or power (the machine losing power too; "
                        "synchronous=FULL, an fsync per commit)."},
    [OPT_IDEMPOTENCY_WINDOW_MS] = {"idempotency-window-ms", K_UINT, "idempotency_window_ms", 1000,
                                   31536000000ull, "86400000", "MS",
                                   "how long a durable server remembers an Idempotency-Key's "
                                   "answer (default 24 h)."},
    [OPT_HEALTH_CHECK] = {"health-check", K_BOOL, NULL, 0, 0, NULL, NULL,
                          "start nothing: ask the genserv at the listen address these settings "
                          "give (0.0.0.0 and :: mean the loopback) for GET /healthz and exit 0 "
                          "if it answers 200 within 2 s, else 1. For container health checks."},
    [OPT_HELP] = {"help", K_BOOL, NULL, 0, 0, NULL, NULL, "print this help and exit."},
    [OPT_VERSION] = {"version", K_BOOL, NULL, 0, 0, NULL, NULL, "print the version and exit."},
};

/* The servers started when no config file says otherwise: the built-ins' demo set
 * (docs/behaviours.md). */
static const char default_servers[] = "[{\"name\": \"counter\", \"behaviour\": \"counter\"},"
                                      " {\"name\": \"journal\", \"behaviour\": \"journal\"},"
                                      " {\"name\": \"batcher\", \"behaviour\": \"batcher\"},"
                                      " {\"name\": \"ticker\", \"behaviour\": \"ticker\","
                                      "  \"args\": {\"interval_ms\": 500, \"step\": -1}},"
                                      " {\"name\": \"slow\", \"behaviour\": \"slow\"}]";

/* Values by source while loading; every char* borrowed from argv, environ, or `owned`. */
typedef struct layers_s {
    const char *flag[OPT_COUNT];
    const char *env[OPT_COUNT];
    const char *file[OPT_COUNT];
    const char **flag_plugins;
    size_t n_flag_plugins;
    json_t *file_plugins; /* borrowed from the config JSON */
    json_t *json;         /* the config JSON, owned */
    char *owned[OPT_COUNT];
} layers_t;

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static void env_name(const opt_t *o, char *buf, size_t len)
{
    size_t i = (size_t)snprintf(buf, len, "GENSERV_");

    for (const char *p = o->flag; *p && i + 1 < len; p++) { /* flags are ASCII a-z 0-9 - */
        char c = *p;

        if (c == '-')
            c = '_';
        else if (c >= 'a' && c <= 'z')
            c = (char)(c - ('a' - 'A'));
        buf[i++] = c;
    }
    buf[i] = '\0';
}

/* Print text word-wrapped to 80 columns, each line starting with indent spaces. */
static void print_wrapped(FILE *out, int indent, const char *text)
{
    const int width = 80;
    int col = 0;

    while (*text) {
        size_t word = strcspn(text, " ");

        if (col > indent && col + 1 + (int)word > width) {
            fputc('\n', out);
            col = 0;
        }
        if (col == 0)
            col = fprintf(out, "%*s", indent, "");
        else
            col += fprintf(out, " ");
        col += fprintf(out, "%.*s", (int)word, text);
        text += word;
        while (*text == ' ')
            text++;
    }
    fputc('\n', out);
}

static void print_help(FILE *out, const char *prog)
{
    char env[64], line[256];
    size_t i;

    fprintf(out,
            "Usage: %s [OPTIONS]        run the service\n"
            "       %s SUBCOMMAND ...   the command-line client: call, cast, send, ps, watch...\n"
            "                           (`%s help` lists them; docs/cli.md)\n\n"
            "genserv hosts named GenServers and serves them over HTTP/JSON (see docs/API.md).\n\n"
            "Every option can also be set with the environment variable shown, and in the JSON\n"
            "config file under the key shown. Precedence: flag > environment > config file >\n"
            "default. Plugins: the highest source that lists any replaces the lower ones.\n\n"
            "Options:\n",
            prog, prog, prog);
    for (i = 0; i < OPT_COUNT; i++) {
        const opt_t *o = &opts[i];
        int n;

        fprintf(out, "  --%s%s%s\n", o->flag, o->arg ? " " : "", o->arg ? o->arg : "");
        print_wrapped(out, 6, o->help);
        if (o->kind == K_BOOL)
            continue;
        env_name(o, env, sizeof(env));
        n = snprintf(line, sizeof(line), "(env %s", env);
        if (o->key != NULL)
            n += snprintf(line + n, sizeof(line) - (size_t)n, ", config \"%s\"", o->key);
        if (o->def != NULL)
            n += snprintf(line + n, sizeof(line) - (size_t)n, ", default %s", o->def);
        snprintf(line + n, sizeof(line) - (size_t)n, ")");
        print_wrapped(out, 6, line);
    }
    fprintf(out,
            "\nConfig file example:\n"
            "  {\"listen\": \"127.0.0.1:8080\", \"log_level\": \"info\", \"plugins\": [],\n"
            "   \"limits\": {\"max_body_bytes\": 1048576, \"max_connections\": 16384},\n"
            "   \"servers\": [{\"name\": \"counter\", \"behaviour\": \"counter\", \"args\": null,\n"
            "                \"restart\": \"permanent\"}]}\n"
            "Without \"servers\" (or without a config file) genserv starts counter, journal,\n"
            "batcher, ticker ({\"interval_ms\": 500, \"step\": -1}) and slow.\n\n"
            "Signals: SIGTERM or SIGINT stops accepting, answers every held call with 503\n"
            "shutting_down, runs every terminate callback and exits 0.\n");
}

/* ---------------------------------------------------------------------------------------- */
/* Sources                                                                                    */
/* ---------------------------------------------------------------------------------------- */

static int parse_argv(layers_t *l, int argc, char **argv, char *err, size_t errlen)
{
    int i;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *name, *eq, *value = NULL;
        size_t nlen, k;

        if (strcmp(a, "-h") == 0)
            a = "--help";
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0')
            return fail(err, errlen, "unexpected argument \"%s\" (see --help)", a);
        name = a + 2;
        eq = strchr(name, '=');
        nlen = eq ? (size_t)(eq - name) : strlen(name);
        for (k = 0; k < OPT_COUNT; k++)
            if (strlen(opts[k].flag) == nlen && strncmp(opts[k].flag, name, nlen) == 0)
                break;
        if (k == OPT_COUNT)
            return fail(err, errlen, "unknown option \"--%.*s\" (see --help)", (int)nlen, name);
        if (opts[k].kind == K_BOOL) {
            if (eq != NULL)
                return fail(err, errlen, "--%s takes no value", opts[k].flag);
            l->flag[k] = "1";
            continue;
        }
        if (eq != NULL)
            value = eq + 1;
        else if (i + 1 < argc)
            value = argv[++i];
        else
            return fail(err, errlen, "--%s needs a value", opts[k].flag);
        if (opts[k].kind == K_LIST) {
            const char **np = realloc(l->flag_plugins, (l->n_flag_plugins + 1) * sizeof(*np));

            if (np == NULL)
                return fail(err, errlen, "out of memory");
            l->flag_plugins = np;
            l->flag_plugins[l->n_flag_plugins++] = value;
        } else {
            l->flag[k] = value;
        }
    }
    return 0;
}

static void read_env(layers_t *l)
{
    char name[64];
    size_t i;

    for (i = 0; i < OPT_COUNT; i++) {
        const char *v;

        if (opts[i].kind == K_BOOL)
            continue;
        env_name(&opts[i], name, sizeof(name));
        v = getenv(name);
        if (v != NULL && v[0] != '\0')
            l->env[i] = v;
    }
}

/* Record value (borrowed JSON) for option i from the config file, as text. */
static int file_value(layers_t *l, size_t i, json_t *v, char *err, size_t errlen)
{
    const opt_t *o = &opts[i];
    char buf[32];

    if (o->kind == K_LIST) {
        size_t k;
        json_t *e;

        if (!json_is_array(v))
            return fail(err, errlen, "config \"%s\" must be an array of paths", o->key);
        json_array_foreach(v, k, e) if (!json_is_string(e)) return fail(
            err, errlen, "config \"%s\" must be an array of paths", o->key);
        l->file_plugins = v;
        return 0;
    }
    if (o->kind == K_UINT) {
        if (!json_is_integer(v))
            return fail(err, errlen, "config \"%s\" must be an integer", o->key);
        snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
        l->owned[i] = strdup(buf);
        if (l->owned[i] == NULL)
            return fail(err, errlen, "out of memory");
        l->file[i] = l->owned[i];
        return 0;
    }
    if (!json_is_string(v))
        return fail(err, errlen, "config \"%s\" must be a string", o->key);
    l->file[i] = json_string_value(v);
    return 0;
}

static int check_servers(json_t *servers, char *err, size_t errlen)
{
    size_t i;
    json_t *s;

    if (!json_is_array(servers))
        return fail(err, errlen, "config \"servers\" must be an array");
    json_array_foreach(servers, i, s)
    {
        if (!json_is_object(s) || !json_is_string(json_object_get(s, "name")) ||
            !json_is_string(json_object_get(s, "behaviour")))
            return fail(err, errlen,
                        "config \"servers\"[%zu] must be an object with string \"name\" and "
                        "\"behaviour\"",
                        i);
    }
    return 0;
}

static int read_file(layers_t *l, const char *path, char *err, size_t errlen)
{
    json_error_t jerr;
    const char *key;
    json_t *v;

    l->json = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (l->json == NULL)
        return fail(err, errlen, "config %s: line %d, column %d: %s", path, jerr.line, jerr.column,
                    jerr.text);
    if (!json_is_object(l->json))
        return fail(err, errlen, "config %s: must be a JSON object", path);
    json_object_foreach(l->json, key, v)
    {
        size_t i;

        if (strcmp(key, "servers") == 0) {
            if (check_servers(v, err, errlen) < 0)
                return -1;
            continue;
        }
        if (strcmp(key, "limits") == 0) {
            const char *lk;
            json_t *lv;

            if (!json_is_object(v))
                return fail(err, errlen, "config \"limits\" must be an object");
            json_object_foreach(v, lk, lv)
            {
                for (i = 0; i < OPT_COUNT; i++)
                    if (opts[i].key != NULL && strncmp(opts[i].key, "limits.", 7) == 0 &&
                        strcmp(opts[i].key + 7, lk) == 0)
                        break;
                if (i == OPT_COUNT)
                    return fail(err, errlen, "config %s: unknown key \"limits.%s\"", path, lk);
                if (file_value(l, i, lv, err, errlen) < 0)
                    return -1;
            }
            continue;
        }
        for (i = 0; i < OPT_COUNT; i++)
            if (opts[i].key != NULL && strcmp(opts[i].key, key) == 0)
                break;
        if (i == OPT_COUNT)
            return fail(err, errlen, "config %s: unknown key \"%s\"", path, key);
        if (file_value(l, i, v, err, errlen) < 0)
            return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Parsing values                                                                             */
/* ---------------------------------------------------------------------------------------- */

static int parse_uint(const char *s, unsigned long long min, unsigned long long max,
                      unsigned long long *out)
{
    char *end = NULL;
    unsigned long long v;

    if (s == NULL || !isdigit((unsigned char)s[0]))
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_listen(gs_config_t *cfg, const char *s, char *err, size_t errlen, const char *src)
{
    const char *colon, *host = s;
    size_t hlen;
    unsigned long long port;

    if (s[0] == '[') {
        const char *close = strchr(s, ']');

        if (close == NULL || close[1] != ':')
            return fail(err, errlen, "%s: \"%s\" is not [IPV6]:PORT", src, s);
        host = s + 1;
        hlen = (size_t)(close - host);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL)
            return fail(err, errlen, "%s: \"%s\" is not HOST:PORT", src, s);
        hlen = (size_t)(colon - s);
    }
    if (hlen == 0)
        return fail(err, errlen, "%s: \"%s\" has an empty host", src, s);
    if (parse_uint(colon + 1, 0, 65535, &port) < 0)
        return fail(err, errlen, "%s: \"%s\" needs a port in 0..65535", src, s);
    cfg->listen = strdup(s);
    cfg->host = strndup(host, hlen);
    if (cfg->listen == NULL || cfg->host == NULL)
        return fail(err, errlen, "out of memory");
    cfg->port = (uint16_t)port;
    return 0;
}

/* The winning text for option i and a description of where it came from. */
static const char *pick(const layers_t *l, size_t i, char *src, size_t srclen)
{
    if (l->flag[i] != NULL) {
        snprintf(src, srclen, "--%s", opts[i].flag);
        return l->flag[i];
    }
    if (l->env[i] != NULL) {
        env_name(&opts[i], src, srclen);
        return l->env[i];
    }
    if (l->file[i] != NULL) {
        snprintf(src, srclen, "config \"%s\"", opts[i].key);
        return l->file[i];
    }
    snprintf(src, srclen, "default of --%s", opts[i].flag);
    return opts[i].def;
}

static int push_plugin(gs_config_t *cfg, const char *path, size_t len)
{
    char **np = realloc(cfg->plugins, (cfg->nplugins + 1) * sizeof(*np));

    if (np == NULL)
        return -1;
    cfg->plugins = np;
    cfg->plugins[cfg->nplugins] = strndup(path, len);
    if (cfg->plugins[cfg->nplugins] == NULL)
        return -1;
    cfg->nplugins++;
    return 0;
}

static int resolve_plugins(gs_config_t *cfg, const layers_t *l, char *err, size_t errlen)
{
    size_t i;

    if (l->n_flag_plugins > 0) {
        for (i = 0; i < l->n_flag_plugins; i++)
            if (push_plugin(cfg, l->flag_plugins[i], strlen(l->flag_plugins[i])) < 0)
                return fail(err, errlen, "out of memory");
    } else if (l->env[OPT_PLUGIN] != NULL) {
        const char *p = l->env[OPT_PLUGIN];

        while (*p) {
            const char *e = strchr(p, ':');
            size_t n = e ? (size_t)(e - p) : strlen(p);

            if (n > 0 && push_plugin(cfg, p, n) < 0)
                return fail(err, errlen, "out of memory");
            p += n + (e != NULL);
        }
    } else if (l->file_plugins != NULL) {
        json_t *e;

        json_array_foreach(l->file_plugins, i,
                           e) if (push_plugin(cfg, json_string_value(e), json_string_length(e)) <
                                  0) return fail(err, errlen, "out of memory");
    }
    return 0;
}

static int resolve(gs_config_t *cfg, layers_t *l, char *err, size_t errlen)
{
    unsigned long long num[OPT_COUNT] = {0};
    char src[80];
    size_t i;

    for (i = 0; i < OPT_COUNT; i++) {
        const char *v;

        if (opts[i].kind != K_UINT)
            continue;
        v = pick(l, i, src, sizeof(src));
        if (parse_uint(v, opts[i].min, opts[i].max, &num[i]) < 0)
            return fail(err, errlen, "%s: \"%s\" is not an integer in %llu..%llu", src, v ? v : "",
                        opts[i].min, opts[i].max);
    }
    {
        const char *v = pick(l, OPT_LISTEN, src, sizeof(src));

        if (parse_listen(cfg, v, err, errlen, src) < 0)
            return -1;
        v = pick(l, OPT_LOG_LEVEL, src, sizeof(src));
        if (gs_log_parse_level(v, &cfg->log_level) < 0)
            return fail(err, errlen, "%s: \"%s\" is not error, warn, info or debug", src, v);
    }
    cfg->schedulers = (unsigned)num[OPT_SCHEDULERS];
    cfg->mailbox_limit = (size_t)num[OPT_MAILBOX_LIMIT];
    cfg->shutdown_timeout_ms = (int)num[OPT_SHUTDOWN_TIMEOUT_MS];
    cfg->drain_ms = (int)num[OPT_DRAIN_MS];
    {
        const char *v = pick(l, OPT_LOG_FORMAT, src, sizeof(src));

        if (gs_log_parse_format(v, &cfg->log_format) < 0)
            return fail(err, errlen, "%s: \"%s\" is not text or json", src, v);
    }
    gs_gateway_options_init(&cfg->gateway);
#define GS__OPT_SET(field, flag, key, min, max, def, metavar, help)                                \
    cfg->gateway.field = num[OPT_GW_##field]; /* in min..max: checked above */
    GS_GATEWAY_LIMITS_MAP(GS__OPT_SET)
#undef GS__OPT_SET
    gs_runtime_options_init(&cfg->runtime);
    cfg->runtime.schedulers = cfg->schedulers;
    cfg->runtime.mailbox_limit = cfg->mailbox_limit;
#define GS__OPT_SET(field, flag, key, min, max, def, metavar, help)                                \
    cfg->runtime.field = num[OPT_RT_##field]; /* in min..max: checked above */
    GS_RUNTIME_LIMITS_MAP(GS__OPT_SET)
#undef GS__OPT_SET
#define GS__OPT_SET(field, flag, key, min, max, def, metavar, help)                                \
    cfg->lua.field = num[OPT_LUA_##field]; /* in min..max: checked above */
    GS_LUA_LIMITS_MAP(GS__OPT_SET)
#undef GS__OPT_SET
    if (cfg->lua.memory_limit > cfg->lua.max_memory_limit)
        return fail(err, errlen, "the Lua memory limit (%llu) exceeds its maximum (%llu)",
                    (unsigned long long)cfg->lua.memory_limit,
                    (unsigned long long)cfg->lua.max_memory_limit);
    if (cfg->lua.instruction_limit > cfg->lua.max_instruction_limit)
        return fail(err, errlen, "the Lua instruction limit (%llu) exceeds its maximum (%llu)",
                    (unsigned long long)cfg->lua.instruction_limit,
                    (unsigned long long)cfg->lua.max_instruction_limit);
    {
        static const opt_id_t strings[] = {OPT_TOKEN,          OPT_READ_TOKEN, OPT_CORS_ORIGINS,
                                           OPT_BEHAVIOURS_DIR, OPT_DATA_DIR,   OPT_ACCESS_LOG};
        char **dest[] = {&cfg->token,          &cfg->read_token, &cfg->cors_origins,
                         &cfg->behaviours_dir, &cfg->data_dir,   &cfg->access_log};

        for (i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
            const char *v = pick(l, strings[i], src, sizeof(src));

            if (v == NULL)
                continue;
            if (v[0] == '\0')
                return fail(err, errlen, "%s: must not be empty", src);
            *dest[i] = strdup(v);
            if (*dest[i] == NULL)
                return fail(err, errlen, "out of memory");
        }
    }
    {
        const char *v = pick(l, OPT_DURABILITY, src, sizeof(src));
        if (strcmp(v, "process") == 0)
            cfg->durability = GS_DURABILITY_PROCESS;
        else if (strcmp(v, "power") == 0)
            cfg->durability = GS_DURABILITY_POWER;
        else
            return fail(err, errlen, "%s: \"%s\" is not process or power", src, v);
    }
    cfg->runtime.idempotency_window_ms = num[OPT_IDEMPOTENCY_WINDOW_MS];
    if (cfg->gateway.default_timeout_ms > cfg->gateway.max_timeout_ms)
        return fail(err, errlen, "the default call timeout (%d ms) exceeds the largest (%d ms)",
                    cfg->gateway.default_timeout_ms, cfg->gateway.max_timeout_ms);
    if (resolve_plugins(cfg, l, err, errlen) < 0)
        return -1;

    if (l->json != NULL && json_object_get(l->json, "servers") != NULL) {
        cfg->servers = json_incref(json_object_get(l->json, "servers"));
    } else {
        cfg->servers = json_loads(default_servers, 0, NULL);
        if (cfg->servers == NULL)
            return fail(err, errlen, "out of memory");
        cfg->servers_default = true;
    }
    return 0;
}

gs_config_result_t gs_config_load(gs_config_t *cfg, int argc, char **argv, FILE *out, char *err,
                                  size_t errlen)
{
    gs_config_result_t result = GS_CONFIG_ERROR;
    layers_t l;
    const char *path;
    size_t i;
    int rc;

    memset(cfg, 0, sizeof(*cfg));
    memset(&l, 0, sizeof(l));
    err[0] = '\0';

    rc = parse_argv(&l, argc, argv, err, errlen);
    cfg->health_check = l.flag[OPT_HEALTH_CHECK] != NULL;
    if (rc < 0)
        goto out;
    if (l.flag[OPT_HELP] != NULL) {
        print_help(out, argc > 0 ? argv[0] : "genserv");
        result = GS_CONFIG_EXIT;
        goto out;
    }
    if (l.flag[OPT_VERSION] != NULL) {
        fprintf(out, "genserv %s (plugin ABI %u)\n", GS_VERSION, GS_PLUGIN_ABI_VERSION);
        result = GS_CONFIG_EXIT;
        goto out;
    }
    read_env(&l);
    path = l.flag[OPT_CONFIG] != NULL ? l.flag[OPT_CONFIG] : l.env[OPT_CONFIG];
    if (path != NULL) {
        cfg->config_path = strdup(path);
        if (cfg->config_path == NULL || read_file(&l, path, err, errlen) < 0)
            goto out;
    }
    if (resolve(cfg, &l, err, errlen) < 0)
        goto out;
    result = GS_CONFIG_OK;
out:
    for (i = 0; i < OPT_COUNT; i++)
        free(l.owned[i]);
    free(l.flag_plugins);
    json_decref(l.json);
    return result;
}

void gs_config_close(gs_config_t *cfg)
{
    size_t i;

    for (i = 0; i < cfg->nplugins; i++)
        free(cfg->plugins[i]);
    free(cfg->plugins);
    free(cfg->listen);
    free(cfg->host);
    free(cfg->config_path);
    free(cfg->token);
    free(cfg->read_token);
    free(cfg->cors_origins);
    free(cfg->behaviours_dir);
    free(cfg->data_dir);
    free(cfg->access_log);
    json_decref(cfg->servers);
    memset(cfg, 0, sizeof(*cfg));
}

void gs_config_gateway_options(const gs_config_t *cfg, gs_gateway_options_t *o)
{
    *o = cfg->gateway; /* the numeric settings, and the defaults of the rest */
    o->host = cfg->host;
    o->port = cfg->port;
    o->log_level = cfg->log_level;
    o->token = cfg->token;
    o->read_token = cfg->read_token;
    o->cors_origins = cfg->cors_origins;
}
