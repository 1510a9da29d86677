/*
 * gateway.h: the HTTP/JSON gateway over the genserv runtime (library genserv_api).
 *
 * The gateway turns HTTP requests into runtime requests and runtime completions into HTTP
 * responses. It owns HTTP concerns only (routing, status codes, limits, content types,
 * server-sent events, metrics, the embedded dashboard files); everything a GenServer means is
 * the runtime's, reached through genserv.h.
 *
 * API:
 *   gs_gateway_options_init(&opts);           defaults, then override what the config says
 *   gs_gateway_create(rt, &opts, &gw);        binds, listens, starts the HTTP threads
 *   gs_gateway_port(gw);                      the port actually bound (port 0 picks one)
 *   ... serve ...
 *   gs_gateway_shutdown(gw);                  stop accepting, end event streams, and stop
 *                                             touching rt; held calls stay held
 *   gs_runtime_destroy(rt);                   completes every held call (503 shutting_down)
 *   gs_gateway_destroy(gw, wait_ms);          waits for those answers to go out, then frees
 *
 * Threads: gs_gateway_create, gs_gateway_shutdown and gs_gateway_destroy are called from one
 * controlling thread (the binary's main thread); the gateway runs its own HTTP threads and
 * one event thread, and receives runtime completions on runtime threads.
 */
#ifndef GS_GATEWAY_H
#define GS_GATEWAY_H

#include <genserv/genserv.h>

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Log levels, most severe first. A logger shows every level <= its threshold. */
typedef enum gs_log_level_e {
    GS_LOG_ERROR = 0,
    GS_LOG_WARN,
    GS_LOG_INFO,
    GS_LOG_DEBUG,
} gs_log_level_t;

/**
 * Where the gateway writes its log lines. line is borrowed, one event without a trailing
 * newline. Called from any gateway or runtime thread, possibly concurrently; must not block
 * for long.
 */
typedef void (*gs_log_cb)(gs_log_level_t level, const char *line, void *arg);

/*
 * XX(field, flag, config_key, min, max, default, metavar, help): the gateway's numeric
 * settings, fields of gs_gateway_options_t. gs_gateway_options_init takes its defaults and
 * gs_gateway_create its ranges from this list, and the genserv binary generates its flags
 * (--FLAG), environment variables (GENSERV_FLAG), config keys, --help and range checks from it
 * (server/config.c), so none of them can disagree. docs/API.md's "Limits" is checked against it
 * by tests/contract.
 */
#define GS_GATEWAY_LIMITS_MAP(XX)                                                                  \
    XX(threads, "http-threads", "http_threads", 0, 64, 0, "N",                                     \
       "HTTP threads, each with its own epoll; 0 means one per online core.")                      \
    XX(max_body_bytes, "max-body-bytes", "limits.max_body_bytes", 1, 1073741824, 1048576, "N",     \
       "largest request body; larger ones get 413 too_large.")                                     \
    XX(max_bodies_bytes, "max-bodies-bytes", "limits.max_bodies_bytes", 1024, 1099511627776,       \
       268435456, "BYTES",                                                                         \
       "request bodies being received at once, in all; a body that would pass it gets 503 "        \
       "overloaded.")                                                                              \
    XX(max_connections, "max-connections", "limits.max_connections", 1, 1000000, 16384, "N",       \
       "concurrent HTTP connections; the open-file limit is raised to fit.")                       \
    XX(max_held_calls, "max-held-calls", "limits.max_held_calls", 1, 1000000, 16384, "N",          \
       "requests held open at once waiting for a server; past it 503 overloaded.")                 \
    XX(default_timeout_ms, "default-call-timeout-ms", "limits.default_call_timeout_ms", 0,         \
       2147483647, 5000, "MS", "timeout of a /call that gives no timeout_ms.")                     \
    XX(max_timeout_ms, "max-call-timeout-ms", "limits.max_call_timeout_ms", 0, 2147483647, 300000, \
       "MS", "largest timeout_ms accepted; larger ones get 400.")                                  \
    XX(max_subscribers, "max-event-streams", "limits.max_event_streams", 0, 1024, 64, "N",         \
       "concurrent GET /events streams; past it 503 overloaded.")                                  \
    XX(connection_timeout_s, "idle-timeout-s", "limits.idle_timeout_s", 0, 86400, 60, "S",         \
       "close a connection idle this long (0: never); held calls never time out this way.")        \
    XX(request_timeout_s, "request-timeout-s", "limits.request_timeout_s", 0, 86400, 30, "S",      \
       "a request's headers and body must arrive within this once its request line has (0: no "    \
       "limit); slower clients are disconnected. Also bounds how long a connection may trickle "   \
       "a request line (idle-timeout-s).")                                                         \
    XX(max_event_buffer, "max-event-buffer", "limits.max_event_buffer", 4096, 67108864, 1048576,   \
       "BYTES",                                                                                    \
       "events an event stream's client may fall behind by; past it the stream gets a last "       \
       "closed event (too_slow) and ends.")                                                        \
    XX(coalesce_ms, "events-coalesce-ms", "events_coalesce_ms", 1, 60000, 250, "MS",               \
       "at most one state_changed event per server per period.")                                   \
    XX(event_history, "event-history", "event_history", 0, 100000, 200, "N",                       \
       "lifecycle events (started, stopped, crashed, restarted, down) kept in memory for GET "     \
       "/events/history and replayed first to every new event stream (0: none).")                  \
    XX(connection_memory, "connection-memory", "limits.connection_memory", 2048, 1048576, 6144,    \
       "BYTES",                                                                                    \
       "memory per connection for the request line and headers; larger headers get 431. Every "    \
       "open connection (held calls too) touches this much.")                                      \
    XX(max_json_depth, "max-json-depth", "limits.max_json_depth", 1, 1024, 64, "N",                \
       "how deeply arrays and objects may nest in a request body; deeper gets 400.")               \
    XX(linger_ms, "linger-ms", "limits.linger_ms", 0, 60000, 2000, "MS",                           \
       "after an answer sent before the request was read whole (413, 431, a refused head), keep "  \
       "reading and discarding what the client still sends for this long before closing, so "      \
       "that it reads the answer instead of a reset (0: close at once).")                          \
    XX(linger_bytes, "linger-bytes", "limits.linger_bytes", 0, 1073741824, 4194304, "BYTES",       \
       "... or until this much was discarded.")                                                    \
    XX(max_header_bytes, "max-header-bytes", "limits.max_header_bytes", 256, 1047552, 4096,        \
       "BYTES",                                                                                    \
       "largest request line plus headers; larger ones get 431 headers_too_large. Must leave "     \
       "1 KiB of connection-memory free (headers larger than connection-memory itself get "        \
       "libmicrohttpd's own 431).")                                                                \
    XX(metrics_max_servers, "metrics-max-servers", "limits.metrics_max_servers", 0, 10000, 100,    \
       "N",                                                                                        \
       "GET /metrics has per-server series for at most this many servers (the first by name); "    \
       "the rest are only counted (genserv_metrics_servers_omitted), so that clients starting "    \
       "servers cannot grow the series count without bound.")

/**
 * Behaviours that clients send as source code (POST, PUT and DELETE /behaviours, and the
 * source in GET /behaviours/NAME). The gateway knows no language: the binary wires these to
 * the Lua host (genserv/lua.h), whose functions they mirror with ctx first, so an embedder can
 * run the gateway without one. Every pointer is borrowed unless said otherwise; *err receives
 * a new reference (a JSON string for the client). A NULL load leaves the routes that change
 * behaviours answering 501 not_implemented.
 */
typedef struct gs_gateway_code_s {
    void *ctx;
    /** Compile and register; 0, GS_EINVAL with *err, GS_EEXIST, GS_EOVERLOADED, GS_ENOMEM. */
    int (*load)(void *ctx, const char *name, const char *vsn, const char *source, size_t len,
                json_t *limits, json_t **err);
    /** Hot upgrade; 0 (cb will run once with the outcomes), GS_ENOBEHAVIOUR, GS_EINVAL with
     *  *err, GS_ENOMEM. */
    int (*upgrade)(void *ctx, const char *name, const char *vsn, const char *source, size_t len,
                   json_t *limits, json_t *extra, gs_upgrade_cb cb, void *arg, json_t **err);
    /** Unregister; 0, GS_ENOBEHAVIOUR, GS_EINUSE. */
    int (*remove)(void *ctx, const char *name);
    /** {"name", "kind", "vsn", "source", "limits", "servers", "loaded_at"}: a new reference,
     *  or NULL when name is not one of these behaviours. */
    json_t *(*describe)(void *ctx, const char *name);
} gs_gateway_code_t;

/**
 * One answered request, for an access log. Every pointer is borrowed for the duration of the
 * callback only.
 */
typedef struct gs_access_entry_s {
    const char *method;     /* as sent: "GET", "POST", ... */
    const char *path;       /* path and query as sent, with access_token's value redacted */
    unsigned status;        /* the status sent */
    uint64_t duration_ns;   /* from the request line's arrival to the end of the exchange */
    uint64_t bytes;         /* body bytes of the answer (0 for HEAD, 304 and event streams) */
    const char *client;     /* the peer's numeric address ("127.0.0.1", "::1"), or "-" */
    const char *request_id; /* the X-Request-Id sent back (the client's, or one generated) */
} gs_access_entry_t;

/**
 * Where the gateway reports each answered request (the access log). Called once per request
 * from an HTTP thread when the exchange ends, possibly concurrently; must not block for long.
 */
typedef void (*gs_access_log_cb)(const gs_access_entry_t *entry, void *arg);

/** Hard ceiling for max_subscribers (event fan-out uses a fixed array of this size). */
#define GS_GATEWAY_MAX_SUBSCRIBERS_CAP 1024u

typedef struct gs_gateway_options_s {
    const char *host;              /* borrowed; numeric address or name to bind; "127.0.0.1" */
    uint16_t port;                 /* 0 picks a free port; default 8080 */
    unsigned threads;              /* HTTP threads (epoll each); 0: one per online core */
    size_t max_body_bytes;         /* larger request bodies get 413 too_large */
    size_t max_bodies_bytes;       /* all bodies being received at once (503 past it) */
    unsigned max_connections;      /* concurrent HTTP connections (MHD connection limit) */
    unsigned max_held_calls;       /* requests suspended at once waiting for the runtime */
    int default_timeout_ms;        /* /call timeout when the body has none; GS_DEFAULT_TIMEOUT_MS */
    int max_timeout_ms;            /* largest timeout_ms accepted (range 0..max) */
    unsigned max_subscribers;      /* concurrent GET /events streams */
    size_t max_event_buffer;       /* bytes a stream's client may fall behind (sse.c) */
    unsigned connection_timeout_s; /* idle connection timeout; suspended ones never time out */
    unsigned request_timeout_s;    /* a request's headers and body, once started; 0: none */
    size_t connection_memory;      /* bytes per connection for headers (431 past them) */
    unsigned max_json_depth;       /* nesting depth of request bodies (400 past it) */
    size_t max_header_bytes;       /* request line + headers (431 past it) */
    unsigned metrics_max_servers;  /* servers with per-server series in GET /metrics */
    unsigned linger_ms;            /* lingering close after an early answer (linger.c) */
    size_t linger_bytes;
    const char *token;        /* borrowed, copied; NULL: no token needed (see access.c) */
    const char *read_token;   /* borrowed, copied; NULL: none; GET and HEAD only */
    const char *cors_origins; /* borrowed, copied; "a,b" or "*"; NULL: CORS off */
    unsigned coalesce_ms;     /* at most one state_changed per server per this period */
    unsigned event_history;   /* lifecycle events kept and replayed to new streams (sse.c) */
    gs_log_level_t log_level; /* lines above this level are not even formatted; INFO */
    gs_log_cb log_cb;         /* NULL: no logging */
    void *log_arg;
    gs_gateway_code_t code;         /* behaviours as source; all NULL by default (see above) */
    gs_access_log_cb access_log_cb; /* NULL: no access log */
    void *access_log_arg;
    /* true: until every readiness check passed (gs_gateway_set_ready), the routes that reach
     * the runtime answer 503 not_ready with Retry-After, while the probes, the dashboard's
     * files and /healthz are served: the binary opens its port before it restores what the
     * store kept, so that /livez answers during a long restore. false (default): every route
     * serves from the start and only /readyz waits for the checks. */
    bool hold_until_ready;
} gs_gateway_options_t;

typedef struct gs_gateway_s gs_gateway_t;

/** Fill opts with the defaults of GS_GATEWAY_LIMITS_MAP (host "127.0.0.1", port 8080, log
 *  level info, no tokens, CORS off). opts: borrowed. */
void gs_gateway_options_init(gs_gateway_options_t *opts);

/**
 * Bind opts->host:opts->port, start the HTTP threads and subscribe to the runtime's events.
 * @param rt   borrowed; must outlive every use until gs_gateway_shutdown() returns.
 * @param opts borrowed; copied (host included).
 * @param out  receives the gateway, owned by the caller until gs_gateway_destroy().
 * @param err  if not NULL, receives a sentence describing a failure (errlen bytes).
 * @return 0, GS_EINVAL (bad option, or the address cannot be bound: see err), GS_ENOMEM.
 */
int gs_gateway_create(gs_runtime_t *rt, const gs_gateway_options_t *opts, gs_gateway_t **out,
                      char *err, size_t errlen);

/** The port actually bound. */
uint16_t gs_gateway_port(const gs_gateway_t *gw);
/** The host as given in the options: borrowed, valid until gs_gateway_destroy(). */
const char *gs_gateway_host(const gs_gateway_t *gw);

/**
 * What GET /readyz waits for (docs/API.md): the embedder marks each part loaded with
 * gs_gateway_set_ready. An embedder without a store or a behaviours folder marks those parts
 * loaded too: a check says "nothing left to load", not "this part exists".
 */
typedef enum gs_ready_check_e {
    GS_READY_STORE = 1u << 0,      /* the store is open and what it kept is restored */
    GS_READY_BEHAVIOURS = 1u << 1, /* the behaviours (folder, plugins, built-ins) are loaded */
    GS_READY_SERVERS = 1u << 2,    /* the boot servers are started */
    GS_READY_ALL = (1u << 3) - 1,
} gs_ready_check_t;

/**
 * Mark the checks (an OR of gs_ready_check_t) as passed. GET /readyz answers 200 once every
 * check passed and until gs_gateway_drain or gs_gateway_shutdown; before, 503 not_ready with
 * the checks. A new gateway has passed none. Any thread.
 */
void gs_gateway_set_ready(gs_gateway_t *gw, unsigned checks);

/**
 * Begin draining: GET /readyz answers 503 shutting_down from now on so that a load balancer
 * stops sending new work, while every other route serves as before. gs_gateway_shutdown
 * drains too. Idempotent; any thread.
 */
void gs_gateway_drain(gs_gateway_t *gw);

/**
 * Begin shutdown: close the listening socket, answer new requests on open connections with
 * 503 shutting_down, end every event stream, unsubscribe from the runtime and wait until no
 * HTTP thread is inside a runtime function. When it returns the gateway never calls rt again;
 * calls it holds stay held until the runtime completes them (gs_runtime_destroy does).
 * Idempotent.
 */
void gs_gateway_shutdown(gs_gateway_t *gw);

/**
 * Wait up to wait_ms for every request in progress to be answered (held calls included: call
 * this after gs_runtime_destroy, which completes them), then stop the HTTP threads and free
 * the gateway. Calls gs_gateway_shutdown first if it was not called. Accepts NULL.
 * @return 0, or GS_ETIMEOUT if requests were still in progress after wait_ms (the daemon is
 *         then left running and leaked rather than stopped with suspended connections).
 */
int gs_gateway_destroy(gs_gateway_t *gw, int wait_ms);

#ifdef __cplusplus
}
#endif
#endif /* GS_GATEWAY_H */
