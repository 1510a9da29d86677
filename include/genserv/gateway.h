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

/** Defaults of the limits (see docs/API.md, "Limits"). */
#define GS_GATEWAY_DEFAULT_MAX_BODY_BYTES       (1024u * 1024u)
#define GS_GATEWAY_DEFAULT_MAX_CONNECTIONS      16384u
#define GS_GATEWAY_DEFAULT_MAX_HELD_CALLS       16384u
#define GS_GATEWAY_DEFAULT_MAX_TIMEOUT_MS       300000
#define GS_GATEWAY_DEFAULT_MAX_SUBSCRIBERS      64u
#define GS_GATEWAY_DEFAULT_CONNECTION_TIMEOUT_S 60u
#define GS_GATEWAY_DEFAULT_REQUEST_TIMEOUT_S    30u
#define GS_GATEWAY_DEFAULT_COALESCE_MS          250u
/* Memory per connection for the request line, the headers and the read buffer (a
 * libmicrohttpd pool). Headers that do not fit get 431. libmicrohttpd zeroes the whole pool
 * after every request, so it costs time per request and RSS per open connection: 10,000
 * held calls touch 10,000 pools. */
#define GS_GATEWAY_DEFAULT_CONNECTION_MEMORY (6u * 1024u)
/* How deeply arrays and objects may nest in a request body (400 beyond). */
#define GS_GATEWAY_DEFAULT_MAX_JSON_DEPTH 64u
/** Hard ceiling for max_subscribers (event fan-out uses a fixed array of this size). */
#define GS_GATEWAY_MAX_SUBSCRIBERS_CAP 1024u

typedef struct gs_gateway_options_s {
    const char *host;              /* borrowed; numeric address or name to bind; "127.0.0.1" */
    uint16_t port;                 /* 0 picks a free port; default 8080 */
    unsigned threads;              /* HTTP threads (epoll each); 0: one per online core */
    size_t max_body_bytes;         /* larger request bodies get 413 too_large */
    unsigned max_connections;      /* concurrent HTTP connections (MHD connection limit) */
    unsigned max_held_calls;       /* requests suspended at once waiting for the runtime */
    int default_timeout_ms;        /* /call timeout when the body has none; GS_DEFAULT_TIMEOUT_MS */
    int max_timeout_ms;            /* largest timeout_ms accepted (range 0..max) */
    unsigned max_subscribers;      /* concurrent GET /events streams */
    unsigned connection_timeout_s; /* idle connection timeout; suspended ones never time out */
    unsigned request_timeout_s;    /* a request's headers and body, once started; 0: none */
    size_t connection_memory;      /* bytes per connection for headers (431 past them) */
    unsigned max_json_depth;       /* nesting depth of request bodies (400 past it) */
    const char *token;             /* borrowed, copied; NULL: no token needed (see access.c) */
    const char *read_token;        /* borrowed, copied; NULL: none; GET and HEAD only */
    const char *cors_origins;      /* borrowed, copied; "a,b" or "*"; NULL: CORS off */
    unsigned coalesce_ms;          /* at most one state_changed per server per this period */
    gs_log_level_t log_level;      /* lines above this level are not even formatted; INFO */
    gs_log_cb log_cb;              /* NULL: no logging */
    void *log_arg;
} gs_gateway_options_t;

typedef struct gs_gateway_s gs_gateway_t;

/** Fill opts with the defaults above (host "127.0.0.1", port 8080). opts: borrowed. */
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
