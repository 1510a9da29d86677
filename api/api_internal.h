/*
 * api_internal.h: declarations shared by the files of the gateway and nobody else.
 *
 * A request's life (libmicrohttpd's suspend/resume lifecycle), all in request.c but the
 * handlers:
 *   URI callback           a gs_request_t with the raw path
 *   first handler call     routed (router.c's table names the handler)
 *   body chunks            appended, up to max_body_bytes (then 413)
 *   body complete          checks (404, 405, 413, 503 shutting_down, 401/403), then the
 *                          route's handler (call.c, servers.c, ...) answers at once
 *                          (json_http.c) or defers: gs__request_defer starts a runtime request
 *                          whose completion resumes the connection
 *   handler called again   the outcome is in: req->finish answers
 *   completed callback     the request is freed
 */
#ifndef GS_API_INTERNAL_H
#define GS_API_INTERNAL_H

#include <genserv/gateway.h>
#include <genserv/map.h>

#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* ---------------------------------------------------------------------------------------- */
/* Routes (router.c)                                                                          */
/* ---------------------------------------------------------------------------------------- */

/* XX(ROUTE, label): every route and its label in metrics and logs. router.c's table says
 * which paths and methods select it and which handler answers. */
#define GS_ROUTE_MAP(XX)                                                                           \
    XX(NOT_FOUND, "not_found") /* no such path: 0 */                                               \
    XX(CALL, "/call")                                                                              \
    XX(CAST, "/cast")                                                                              \
    XX(SEND, "/send")                                                                              \
    XX(SEND_AFTER, "/send_after")                                                                  \
    XX(TIMERS, "/timers")                                                                          \
    XX(TIMER, "/timers/:ref")                                                                      \
    XX(SERVERS, "/servers")                                                                        \
    XX(SERVER, "/servers/:name")                                                                   \
    XX(SERVER_SUSPEND, "/servers/:name/suspend")                                                   \
    XX(SERVER_RESUME, "/servers/:name/resume")                                                     \
    XX(SERVER_STATE, "/servers/:name/state")                                                       \
    XX(SERVER_HELD, "/servers/:name/held")                                                         \
    XX(BEHAVIOURS, "/behaviours")                                                                  \
    XX(BEHAVIOUR, "/behaviours/:name")                                                             \
    XX(SUPERVISORS, "/supervisors")                                                                \
    XX(SUPERVISOR, "/supervisors/:name")                                                           \
    XX(SUPERVISOR_CHILDREN, "/supervisors/:name/children")                                         \
    XX(SUPERVISOR_TERMINATE_CHILD, "/supervisors/:name/terminate_child")                           \
    XX(SUPERVISOR_RESTART_CHILD, "/supervisors/:name/restart_child")                               \
    XX(SUPERVISOR_DELETE_CHILD, "/supervisors/:name/delete_child")                                 \
    XX(EVENTS, "/events")                                                                          \
    XX(EVENTS_HISTORY, "/events/history")                                                          \
    XX(SYSTEM, "/system")                                                                          \
    XX(METRICS, "/metrics")                                                                        \
    XX(HEALTHZ, "/healthz")                                                                        \
    XX(LIVEZ, "/livez")                                                                            \
    XX(READYZ, "/readyz")                                                                          \
    XX(STATIC, "static")

typedef enum gs_route_e {
#define GS__ROUTE_ENUM(r, label) GS_ROUTE_##r,
    GS_ROUTE_MAP(GS__ROUTE_ENUM)
#undef GS__ROUTE_ENUM
        GS_ROUTE_COUNT
} gs_route_t;

/** The metrics label of a route, e.g. "/servers/:name". Static storage. */
static inline const char *gs__route_label(gs_route_t r)
{
#define GS__ROUTE_LABEL(r, label) label,
    static const char *const labels[] = {GS_ROUTE_MAP(GS__ROUTE_LABEL)};
#undef GS__ROUTE_LABEL
    return (unsigned)r < GS_ROUTE_COUNT ? labels[r] : "not_found";
}

/** Methods as bits, for route tables and the Allow header. */
enum {
    GS_METHOD_GET = 1u << 0,
    GS_METHOD_HEAD = 1u << 1,
    GS_METHOD_POST = 1u << 2,
    GS_METHOD_DELETE = 1u << 3,
    GS_METHOD_OTHER = 1u << 4,
    GS_METHOD_OPTIONS = 1u << 5, /* CORS preflight; never in a route's allowed set */
    GS_METHOD_PUT = 1u << 6,
};

typedef struct gs_request_s gs_request_t;

/** The longest X-Request-Id taken from a client; longer ones are replaced (access_log.c). */
#define GS_REQUEST_ID_MAX 128

/** A route's handler: runs once the whole request is in and every check passed; answers req
 *  at once or defers it (gs__request_defer). Its result is the access handler's. */
typedef enum MHD_Result (*gs_handler_fn)(gs_request_t *req);

typedef struct gs_route_match_s {
    gs_route_t route;
    unsigned method;       /* the request's method bit */
    unsigned allowed;      /* methods the path allows; 0 when the path is unknown */
    gs_handler_fn handler; /* for this method; NULL when the path or the method has none */
    bool runtime;          /* the handler calls the runtime (503 shutting_down once closing) */
    const char *param;     /* borrowed from the raw path: NAME or ID after the prefix, else NULL */
    size_t param_len;      /* param's length (a suffix may follow it in the raw path) */
    int asset;             /* GS_ROUTE_STATIC: index in the asset table */
} gs_route_match_t;

/**
 * Match method, raw_path (as sent, without the query) and url (MHD's percent-decoded path, for
 * static files); all borrowed. Never fails: unknown paths give GS_ROUTE_NOT_FOUND.
 */
void gs__route_match(const char *method, const char *raw_path, const char *url,
                     gs_route_match_t *m);

/* HTTP helpers that know no route (http.c) */

/**
 * The path of a request target as sent (origin-form, or the path of an absolute-form
 * "http://host/path"), without its query or fragment: new memory (free it), or NULL when out
 * of memory. uri: borrowed.
 */
char *gs__route_raw_path(const char *uri);
/** Percent-decode s in place. Returns -1 (s undefined) on a malformed escape or "%00". */
int gs__percent_decode(char *s);
/** "GET", "POST", ... for a method bit ("other" for the rest). Static storage. */
const char *gs__method_name(unsigned method);
/** Writes "GET, HEAD, POST" style text for allowed into buf (static-size). Returns buf. */
const char *gs__allow_header(unsigned allowed, char *buf, size_t len);

/* ---------------------------------------------------------------------------------------- */
/* Requests (dispatch.c, request.c) */
/* ---------------------------------------------------------------------------------------- */

/** What a deferred request's finish callback answers with, once the outcome is in. */
typedef enum MHD_Result (*gs_finish_fn)(gs_request_t *req);

struct gs_request_s {
    gs_gateway_t *gw;
    struct MHD_Connection *conn;
    gs_route_match_t match;
    bool routed;
    char *raw_path; /* owned; the path as sent, without query */
    char *param;    /* owned; match.param percent-decoded */
    char *subject;  /* owned; the server a body names (set by gs__request_decode), or NULL */

    char *body; /* owned; NUL-terminated */
    size_t body_len;
    size_t body_cap;
    bool too_large;    /* past max_body_bytes: answered 413 */
    bool over_budget;  /* past max_bodies_bytes: answered 503 */
    bool held;         /* suspended waiting for the runtime; HTTP thread only */
    bool counted;      /* held as a /call, against max_held_calls; HTTP thread only */
    _Atomic int phase; /* request.c's gs_phase_t, once deferred: who resumes the connection */
    bool answered;     /* a response was queued */
    bool close;        /* answer with Connection: close (a refused head, an early error) */
    bool challenge;    /* a 401: add WWW-Authenticate */
    uint64_t t_start_ns;
    /* The access log's and X-Request-Id's (access_log.c); HTTP thread only. */
    char *target;        /* owned: the request target as sent (path and query), or NULL */
    char method_name[8]; /* as sent, cut to fit */
    char request_id[GS_REQUEST_ID_MAX + 1]; /* "" until the first handler call */
    unsigned sent_status;                   /* the status queued, once answered */
    uint64_t sent_bytes;                    /* the body bytes of the answer (see gs__respond) */

    /* Filled by the completion on any thread before it resumes the connection; read on the
     * HTTP thread after resume (MHD's resume takes a mutex, which orders them). */
    gs_finish_fn finish;
    int status;
    json_t *result; /* owned (new reference from the runtime), or NULL */
    json_t *extra;  /* owned; handler-specific (e.g. the status for GET /servers/NAME) */

    /* A /call's runtime call (gs_call_async_opts), so that its client's hang-up can abandon
     * it (watch.c): owned, or NULL (answered without a watcher, or moved to the watcher). */
    gs_call_t *call;
    /* While suspended, the socket is watched for a hang-up (watch.c; its lock guards these
     * but watch_added, which the HTTP thread writes before the suspend is published). */
    gs_map_node_t watch_node;
    uint64_t call_id;
    int watch_fd;
    bool watched;
    bool watch_added;
};

/** The libmicrohttpd callbacks of a request's life (dispatch.c; gateway.c hands them to the
 *  daemon, cls is the gateway). */
void *gs__request_uri_cb(void *cls, const char *uri, struct MHD_Connection *conn);
enum MHD_Result gs__request_access_cb(void *cls, struct MHD_Connection *conn, const char *url,
                                      const char *method, const char *version, const char *upload,
                                      size_t *upload_size, void **con_cls);
void gs__request_completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls,
                              enum MHD_RequestTerminationCode toe);

/** Whether a deferred request counts against max_held_calls. */
typedef enum gs_hold_e {
    /* A /call: bounded by max_held_calls (503 overloaded past it). */
    GS_HOLD_CALL = 1,
    /* A state read or a stop: never refused, so that an operator can still look at and stop
     * servers when calls fill the limit (they are short: bounded by the default call timeout,
     * or certain to complete). */
    GS_HOLD_CONTROL,
} gs_hold_t;

/**
 * Start a runtime request on req's behalf: start(req, ctx) must start exactly one runtime
 * request whose completion callback is gs__request_on_reply or gs__request_on_done with req as
 * its argument, and return what the runtime returned. The request is then held until that
 * completion: answered at once when the outcome is in already (the runtime often runs an
 * idle server's turn on this very thread), otherwise suspended until the completion resumes
 * it; either way finish(req) answers with req->status and req->result. An up-front error
 * (start returned < 0) is finished the same way, with that status. A GS_HOLD_CALL past
 * max_held_calls is answered 503 overloaded without calling start.
 * HTTP thread, inside a handler; its result is the handler's.
 */
typedef int (*gs_start_fn)(gs_request_t *req, void *ctx);
enum MHD_Result gs__request_defer(gs_request_t *req, gs_hold_t kind, gs_finish_fn finish,
                                  gs_start_fn start, void *ctx);

/** The completion callbacks for gs__request_defer's start (arg is the gs_request_t). Any
 *  thread, exactly once per deferral. result: taken. */
void gs__request_on_reply(int status, json_t *result, void *arg);
void gs__request_on_done(int status, void *arg);
/** For dispatch.c: the access handler called again after the completion resumed a held req
 *  (finish answers); and a request that ends while still held (counted out). */
enum MHD_Result gs__request_resumed(gs_request_t *req);
void gs__request_abandon(gs_request_t *req);

/* ---------------------------------------------------------------------------------------- */
/* Logging (log.c) and the clock                                                              */
/* ---------------------------------------------------------------------------------------- */

/** Log a formatted line through the gateway's log callback. */
void gs__log(gs_gateway_t *gw, gs_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/** libmicrohttpd's logger (MHD_OPTION_EXTERNAL_LOGGER; cls is the gateway). */
void gs__mhd_log(void *cls, const char *fmt, va_list ap);

/** Monotonic nanoseconds. */
static inline uint64_t gs__api_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---------------------------------------------------------------------------------------- */
/* Responses and request bodies (json_http.c)                                                 */
/* ---------------------------------------------------------------------------------------- */

/*
 * XX(SYMBOL, status, code): the gateway's own errors, beside the runtime's. The errors table
 * of docs/API.md is checked against this list and GS_HTTP_RUNTIME_ERROR_MAP (tests/contract).
 */
#define GS_HTTP_ERROR_MAP(XX)                                                                      \
    XX(BAD_REQUEST, 400, "bad_request")                                                            \
    XX(UNAUTHORIZED, 401, "unauthorized")                                                          \
    XX(FORBIDDEN, 403, "forbidden")                                                                \
    XX(NOT_FOUND, 404, "not_found")                                                                \
    XX(METHOD_NOT_ALLOWED, 405, "method_not_allowed")                                              \
    XX(TOO_LARGE, 413, "too_large")                                                                \
    XX(HEADERS_TOO_LARGE, 431, "headers_too_large")                                                \
    XX(READ_ONLY, 409, "read_only_behaviour")                                                      \
    XX(INTERNAL_ERROR, 500, "internal_error")                                                      \
    XX(NOT_IMPLEMENTED, 501, "not_implemented")                                                    \
    XX(NOT_READY, 503, "not_ready")

/* The gateway's error numbers: far from the runtime's (negative) GS_E* codes, so that one int
 * names either kind. */
typedef enum gs_http_error_e {
    GS_HTTP_ERROR_BASE = 1000,
#define GS__HTTP_ERROR_ENUM(sym, status, code) GS_HTTP_E##sym,
    GS_HTTP_ERROR_MAP(GS__HTTP_ERROR_ENUM)
#undef GS__HTTP_ERROR_ENUM
} gs_http_error_t;

/*
 * XX(ERR, status, with_reason, over_http): how each runtime error (GS_ERRNO_MAP) is answered:
 * its HTTP status, whether the body carries the runtime's "reason", and whether an HTTP client
 * can meet it at all (the others would be a bug in genserv: HTTP threads are not runtime
 * threads). GS_EINVAL is answered as bad_request, like the gateway's own validation.
 */
#define GS_HTTP_RUNTIME_ERROR_MAP(XX)                                                              \
    XX(EINVAL, 400, false, true)                                                                   \
    XX(ENOMEM, 503, false, true)                                                                   \
    XX(EALREADY, 409, false, true)                                                                 \
    XX(ENOSERVER, 404, false, true)                                                                \
    XX(ENOBEHAVIOUR, 404, false, true)                                                             \
    XX(ETIMEOUT, 504, false, true)                                                                 \
    XX(ECRASHED, 500, true, true)                                                                  \
    XX(ESTOPPED, 500, true, true)                                                                  \
    XX(EOVERLOADED, 503, false, true)                                                              \
    XX(ECALLINGSELF, 500, false, false)                                                            \
    XX(EWOULDBLOCK, 500, false, false)                                                             \
    XX(ENOTIMER, 404, false, true)                                                                 \
    XX(ENOCALL, 500, false, false)                                                                 \
    XX(EINIT, 400, true, true)                                                                     \
    XX(ESHUTDOWN, 503, false, true)                                                                \
    XX(EEXIST, 409, false, true)                                                                   \
    XX(EIGNORED, 200, false, false) /* POST /servers answers {"ignored": true} itself */           \
    XX(EINUSE, 409, false, true)                                                                   \
    XX(ENOMONITOR, 404, false, false) /* monitors are a server's own business */                   \
    XX(ENOTSUP, 409, false, true)                                                                  \
    XX(EREFUSED, 422, true, true)                                                                  \
    /* the client went away (watch.c): counted as 499, as nginx logs it; never read */             \
    XX(ECALLERGONE, 499, false, false)                                                             \
    XX(ENOSUPERVISOR, 404, false, true)                                                            \
    XX(ENOCHILD, 404, false, true)                                                                 \
    XX(ESTARTCHILD, 400, true, true)                                                               \
    XX(ERUNNING, 409, false, true)                                                                 \
    XX(ESTORAGE, 503, false, true)                                                                 \
    XX(EKEYBUSY, 409, false, true)

/** The HTTP status and the "error" code of err: a GS_E* or a gs_http_error_t. */
unsigned gs__error_status(int err);
const char *gs__error_code(int err);

/** Answer with body (taken) as JSON. Returns what MHD_queue_response returned. */
enum MHD_Result gs__respond_json(gs_request_t *req, unsigned status, json_t *body);
/**
 * Answer {key: value} without building the object: key borrowed (ASCII, no escapes), value
 * taken (NULL is sent as null).
 */
enum MHD_Result gs__respond_wrapped(gs_request_t *req, unsigned status, const char *key,
                                    json_t *value);
/** Answer err (a gs_http_error_t, or a runtime GS_E* without its reason) with its status and
 *  {"error": code, "message": printf(fmt, ...)}; fmt borrowed. 503s carry Retry-After. */
enum MHD_Result gs__respond_error(gs_request_t *req, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/** 503 shutting_down, the answer to everything that needs the runtime once shutdown began. */
enum MHD_Result gs__respond_shutting_down(gs_request_t *req);
/** 404 no_such_server naming the server (name borrowed). */
enum MHD_Result gs__respond_no_such_server(gs_request_t *req, const char *name);
/**
 * Answer a runtime error code with its mapped status, {"error": gs_err_name(err), "message":
 * gs_strerror(err)} and "reason" (borrowed, may be NULL) when the error carries one. A
 * no_such_server names the server: req->subject, else req->param.
 */
enum MHD_Result gs__respond_runtime_error(gs_request_t *req, int err, json_t *reason);
/**
 * Answer with a ready response (taken: it is destroyed here) and count it in the metrics.
 * Adds the headers every response carries.
 */
enum MHD_Result gs__respond(gs_request_t *req, unsigned status, struct MHD_Response *resp);
/** 405 with the Allow header for req's route. */
enum MHD_Result gs__respond_method_not_allowed(gs_request_t *req);

/* ---------------------------------------------------------------------------------------- */
/* Slow requests (reaper.c)                                                                   */
/* ---------------------------------------------------------------------------------------- */

typedef struct gs_reaper_s gs_reaper_t;
typedef struct gs_conn_s gs_conn_t;
typedef enum { GS_CONN_IDLE = 0, GS_CONN_RECEIVING, GS_CONN_ACTIVE } gs_conn_phase_t;

/** Start the thread that closes connections past their phase's deadline (0: none). NULL when
 * out of resources (then only libmicrohttpd's idle timeout applies). */
gs_reaper_t *gs__reaper_start(gs_gateway_t *gw, unsigned idle_timeout_s,
                              unsigned request_timeout_s);
/** Stop and free it; after MHD_stop_daemon (every connection closed). Accepts NULL. */
void gs__reaper_stop(gs_reaper_t *r);
/** A new connection (MHD's STARTED notification): its entry, to keep as the socket context,
 * or NULL (not watched). */
gs_conn_t *gs__conn_started(gs_reaper_t *r, struct MHD_Connection *conn);
/** MHD's CLOSED notification: unlink and free c (the socket context; NULL is fine). */
void gs__conn_closed(gs_reaper_t *r, gs_conn_t *c);
/** The connection's request reached a milestone: restart its deadline for phase. */
void gs__conn_phase(struct MHD_Connection *conn, gs_conn_phase_t phase);
/** The connection's client as "ADDR:PORT" ("[ADDR]:PORT" for IPv6), formatted once when it
 *  connected: borrowed, valid while the connection is; NULL when unknown. */
const char *gs__conn_peer(struct MHD_Connection *conn);

/* ---------------------------------------------------------------------------------------- */
/* Request bodies as they arrive (body.c)                                                     */
/* ---------------------------------------------------------------------------------------- */

typedef enum gs_body_e {
    GS_BODY_OK = 0,
    GS_BODY_TOO_LARGE,   /* past max_body_bytes: 413 */
    GS_BODY_OVER_BUDGET, /* past max_bodies_bytes for all requests at once: 503 */
} gs_body_t;

/** Append len bytes (borrowed) to req's body. On an error the body is freed (and what
 *  follows is to be discarded). HTTP thread. */
gs_body_t gs__body_append(gs_request_t *req, const char *data, size_t len);
/** Free req's body and give its bytes back to the budget. Idempotent. */
void gs__body_free(gs_request_t *req);

/* ---------------------------------------------------------------------------------------- */
/* Lingering close (linger.c)                                                                 */
/* ---------------------------------------------------------------------------------------- */

typedef struct gs_linger_s gs_linger_t;

/** Start the thread that drains sockets after early answers; NULL when out of resources (then
 *  early answers close at once). */
gs_linger_t *gs__linger_start(unsigned max_ms, size_t max_bytes);
/** conn is being answered early and closed: keep a duplicate of its socket and drain it. HTTP
 *  thread, while libmicrohttpd still owns the connection. Accepts a NULL l. */
void gs__linger_add(gs_linger_t *l, struct MHD_Connection *conn);
/** Connections that lingered since the start (for /metrics). */
uint64_t gs__linger_count(gs_linger_t *l);
/** Stop, closing whatever still lingers. After MHD_stop_daemon. Accepts NULL. */
void gs__linger_stop(gs_linger_t *l);

/* ---------------------------------------------------------------------------------------- */
/* Waking HTTP threads after a burst (kick.c)                                                 */
/* ---------------------------------------------------------------------------------------- */

typedef struct gs_kick_s gs_kick_t;

/** Start the thread that wakes every HTTP thread once activity stops (see kick.c), aimed at
 *  the listening socket listen_fd (borrowed; its address is read now). NULL when it cannot. */
gs_kick_t *gs__kick_start(int listen_fd);
/** A request or a connection began: one relaxed increment. Any thread; accepts NULL. */
void gs__kick_activity(gs_kick_t *k);
/** Connections opened to wake the HTTP threads since the start (for /metrics). */
uint64_t gs__kick_count(const gs_kick_t *k);
/** Stop the thread (idempotent). Before the listening socket closes. Accepts NULL. */
void gs__kick_stop(gs_kick_t *k);
/** Free k, stopping it first if need be. After the daemon stopped. Accepts NULL. */
void gs__kick_destroy(gs_kick_t *k);

/* ---------------------------------------------------------------------------------------- */
/* Clients of held calls that go away (watch.c)                                               */
/* ---------------------------------------------------------------------------------------- */

typedef struct gs_watch_s gs_watch_t;

/** Start the thread that watches the sockets of held /calls for a hang-up and abandons their
 *  calls in rt (borrowed; must outlive gs__watch_stop). NULL when it cannot. */
gs_watch_t *gs__watch_start(gs_runtime_t *rt);
/** Watch req's socket while it is suspended (req->call set; else nothing). HTTP thread, after
 *  MHD_suspend_connection and before the suspend is published. Accepts a NULL w. */
void gs__watch_add(gs_watch_t *w, gs_request_t *req);
/** Stop watching req's socket; before MHD_resume_connection. Any thread. Accepts a NULL w. */
void gs__watch_remove(gs_watch_t *w, gs_request_t *req);
/** Stop the thread (idempotent): no call is abandoned afterwards. Before the runtime goes. */
void gs__watch_stop(gs_watch_t *w);
/** Free w, stopping it first if need be. After the daemon stopped. Accepts NULL. */
void gs__watch_destroy(gs_watch_t *w);

/* ---------------------------------------------------------------------------------------- */
/* Access: tokens, CORS, common headers (access.c)                                           */
/* ---------------------------------------------------------------------------------------- */

/**
 * May req go on? 0 if so; -1 when it was answered 401 unauthorized or 403 forbidden (the
 * caller then returns *ret). No-op without configured tokens.
 */
int gs__access_check(gs_request_t *req, enum MHD_Result *ret);
/** An OPTIONS on a known path from an origin CORS allows. */
bool gs__is_preflight(const gs_request_t *req);
/** 204 with the Access-Control-Allow-* headers for req's path. */
enum MHD_Result gs__respond_preflight(gs_request_t *req);
/** (cors.c) The request's Origin if CORS allows it (borrowed from the request), else NULL. */
const char *gs__cors_origin(const gs_request_t *req);
/** (cors.c) Headers for every answer to req (CORS, the 401 challenge, the dashboard's
 * security headers). resp: borrowed. */
void gs__add_common_headers(const gs_request_t *req, struct MHD_Response *resp);

/* ---------------------------------------------------------------------------------------- */
/* Request ids and the access log (access_log.c)                                              */
/* ---------------------------------------------------------------------------------------- */

/** 1 when s (borrowed) may be echoed as an X-Request-Id: 1..GS_REQUEST_ID_MAX characters of
 *  letters, digits and -_.:+/=@~ (no spaces, quotes or controls: it goes into logs). */
int gs__request_id_valid(const char *s);
/** Draw the generated ids' random prefix and start their counter. gs_gateway_create. */
void gs__request_ids_init(gs_gateway_t *gw);
/** Set req->request_id from its X-Request-Id when valid, else a new one. First handler call. */
void gs__request_id_init(gs_request_t *req);
/** Report req, answered, to the access log callback, if any. The completed callback. */
void gs__access_log(gs_request_t *req);

/* ---------------------------------------------------------------------------------------- */
/* Request framing (framing.c): pure, no MHD                                                  */
/* ---------------------------------------------------------------------------------------- */

/* What the header lines of one request say about its framing, as they are visited. */
typedef struct gs_framing_s {
    const char *content_length;    /* borrowed: the first one */
    const char *transfer_encoding; /* borrowed */
    unsigned hosts;
    const char *error; /* static storage: why the head is refused, or NULL */
} gs_framing_t;

void gs__framing_init(gs_framing_t *f);
/** Visit one header line (name and value borrowed, as the request has them). */
void gs__framing_header(gs_framing_t *f, const char *name, const char *value);
/** After every header: why the request must be refused (400), or NULL. version and raw_path
 *  borrowed ("HTTP/1.1", the path as sent). */
const char *gs__framing_check(gs_framing_t *f, const char *version, const char *raw_path);

/* ---------------------------------------------------------------------------------------- */
/* Decoding request bodies (decode.c): pure, no MHD, no runtime                               */
/* ---------------------------------------------------------------------------------------- */

#define GS_NAME_MAX 255

typedef struct gs_decode_limits_s {
    int64_t default_timeout_ms; /* POST /call without timeout_ms */
    int64_t max_timeout_ms;     /* timeout_ms range is 0..this */
    unsigned max_depth;         /* nesting of arrays and objects in a body */
} gs_decode_limits_t;

/** The decoding limits the gateway's options give (gs_gateway_create, and the fuzzer). */
static inline gs_decode_limits_t gs__decode_limits(const gs_gateway_options_t *o)
{
    return (gs_decode_limits_t){.default_timeout_ms = o->default_timeout_ms,
                                .max_timeout_ms = o->max_timeout_ms,
                                .max_depth = o->max_json_depth};
}

/* A decoded body. Owns body, message and args; the strings borrow from body. */
typedef struct gs_decoded_s {
    json_t *body;             /* the parsed object, minus the fields taken out below */
    const char *server;       /* /call, /cast, /send, /send_after */
    json_t *message;          /* taken out of body; hand it on with gs__decoded_take */
    int64_t timeout_ms;       /* /call */
    int64_t delay_ms;         /* /send_after */
    int64_t interval_ms;      /* /send_after: periodic (0: once) */
    uint8_t misfire;          /* /send_after: gs_misfire_t */
    bool ack_handled;         /* /cast, /send: "ack": "handled" */
    const char *name;         /* POST /servers */
    const char *behaviour;    /* POST /servers */
    json_t *args;             /* POST /servers; NULL when absent; gs_start borrows it */
    gs_start_options_t start; /* POST /servers: restart, intensity, mailbox_limit */
    const char *vsn;          /* POST /behaviours, PUT /behaviours/NAME; NULL when absent */
    const char *source;       /* the same; source_len bytes (may hold NUL) */
    size_t source_len;
    json_t *limits; /* the same; borrowed from body; NULL when absent */
    json_t *extra;  /* PUT /behaviours/NAME: code_change's extra; NULL when absent */
    json_t *reason; /* DELETE /servers/NAME: the stop's reason; NULL when absent */
    json_t *state;  /* PUT /servers/NAME/state: the new state */
} gs_decoded_t;

/* Why a body was refused: always 400 bad_request; message is for a human. */
typedef struct gs_decode_error_s {
    char message[256];
} gs_decode_error_t;

/**
 * Decode the body (borrowed, len bytes, not necessarily NUL-terminated) of a POST to route.
 * @return 0 with *d filled (release it with gs__decoded_close), or -1 with err filled (*d then
 *         holds nothing that needs releasing, but gs__decoded_close is harmless).
 */
int gs__decode_body(gs_route_t route, const char *body, size_t len, const gs_decode_limits_t *lim,
                    gs_decoded_t *d, gs_decode_error_t *err);
/** Release what d still owns. */
void gs__decoded_close(gs_decoded_t *d);
/**
 * Decode req's body for its route with the gateway's limits. On failure answers 400
 * bad_request itself and returns -1 (the caller then returns *ret); on success 0, with
 * req->subject set to the server the body names. Either way the body's text is freed: what the
 * request needs from then on is in d.
 */
int gs__request_decode(gs_request_t *req, gs_decoded_t *d, enum MHD_Result *ret);
/** Take one of d's owned values (a pointer to d->message or d->args): new reference, or NULL. */
static inline json_t *gs__decoded_take(json_t **field)
{
    json_t *v = *field;

    *field = NULL;
    return v;
}
/** 1 when s (len bytes) nests '[' and '{' at most max_depth deep outside strings, else 0. */
int gs__json_depth_ok(const char *s, size_t len, unsigned max_depth);

/* ---------------------------------------------------------------------------------------- */
/* Route handlers (call.c, servers.c, behaviours.c, sse.c, metrics.c, static.c), named by      */
/* router.c's table                                                                           */
/* ---------------------------------------------------------------------------------------- */

enum MHD_Result gs__handle_call(gs_request_t *req);
enum MHD_Result gs__handle_server_suspend(gs_request_t *req);
enum MHD_Result gs__handle_server_resume(gs_request_t *req);
enum MHD_Result gs__handle_server_replace_state(gs_request_t *req);
enum MHD_Result gs__handle_cast(gs_request_t *req);
enum MHD_Result gs__handle_send(gs_request_t *req);
enum MHD_Result gs__handle_send_after(gs_request_t *req);
enum MHD_Result gs__handle_timers_list(gs_request_t *req);
enum MHD_Result gs__handle_timer_read(gs_request_t *req);
enum MHD_Result gs__handle_timer_cancel(gs_request_t *req);
enum MHD_Result gs__handle_servers_list(gs_request_t *req);
enum MHD_Result gs__handle_server_start(gs_request_t *req);
enum MHD_Result gs__handle_server_status(gs_request_t *req);
enum MHD_Result gs__handle_server_stop(gs_request_t *req);
enum MHD_Result gs__handle_server_held(gs_request_t *req);
enum MHD_Result gs__handle_supervisors_list(gs_request_t *req);
enum MHD_Result gs__handle_supervisor_start(gs_request_t *req);
enum MHD_Result gs__handle_supervisor_show(gs_request_t *req);
enum MHD_Result gs__handle_supervisor_stop(gs_request_t *req);
enum MHD_Result gs__handle_supervisor_start_child(gs_request_t *req);
enum MHD_Result gs__handle_supervisor_terminate_child(gs_request_t *req);
enum MHD_Result gs__handle_supervisor_restart_child(gs_request_t *req);
enum MHD_Result gs__handle_supervisor_delete_child(gs_request_t *req);
enum MHD_Result gs__handle_behaviours(gs_request_t *req);
enum MHD_Result gs__handle_behaviour_load(gs_request_t *req);
enum MHD_Result gs__handle_behaviour_show(gs_request_t *req);
enum MHD_Result gs__handle_behaviour_upgrade(gs_request_t *req);
enum MHD_Result gs__handle_behaviour_delete(gs_request_t *req);
enum MHD_Result gs__handle_events(gs_request_t *req);
enum MHD_Result gs__handle_events_history(gs_request_t *req);
enum MHD_Result gs__handle_system(gs_request_t *req);
enum MHD_Result gs__handle_metrics(gs_request_t *req);
enum MHD_Result gs__handle_healthz(gs_request_t *req);
enum MHD_Result gs__handle_livez(gs_request_t *req);
enum MHD_Result gs__handle_readyz(gs_request_t *req);
enum MHD_Result gs__handle_static(gs_request_t *req);

/* ---------------------------------------------------------------------------------------- */
/* Timer references over HTTP (timer_ref.c)                                                   */
/* ---------------------------------------------------------------------------------------- */

/** GET /servers/NAME/held lists this many calls unless ?limit=N (1..GS_HELD_LIST_MAX) says
 *  otherwise. */
#define GS_HELD_LIST_DEFAULT 100u
#define GS_HELD_LIST_MAX     10000u

/** GET /timers lists this many timers unless ?limit=N (1..GS_TIMERS_LIST_MAX) says otherwise. */
#define GS_TIMERS_LIST_DEFAULT 100u
#define GS_TIMERS_LIST_MAX     10000u

/** The hex length of a timer reference: the id (16) and a 128-bit MAC over it (32). */
#define GS_TIMER_REF_LEN 48

typedef struct gs_timer_key_s {
    uint64_t k[4]; /* two SipHash keys */
} gs_timer_key_t;

/** Draw a key from the kernel's CSPRNG. 0, or -1 (errno set). */
int gs__timer_key_init(gs_timer_key_t *key);

/* ---------------------------------------------------------------------------------------- */
/* What the gateway stores (persist.c); each a no-op returning 0 without a store              */
/* ---------------------------------------------------------------------------------------- */

/** Put table/key = val (borrowed; NULL deletes) and wait until it committed. HTTP thread.
 *  0, GS_ESTORAGE, GS_ESHUTDOWN, GS_ENOMEM. */
int gs__persist_wait(gs_gateway_t *gw, int table, const char *key, const json_t *val);
/** Store the spec (taken) of what was started under name: kind "server", "supervisor" or
 *  "child" (a supervisor's child added over HTTP; spec {"supervisor", "child"}). */
int gs__persist_spec(gs_gateway_t *gw, const char *kind, const char *name, json_t *spec);
/** Replace key (drawn already) with the stored one, or store key when there is none. */
int gs__persist_timer_key(gs_gateway_t *gw, gs_timer_key_t *key);
/** The reference a client gets for the runtime timer ref: GS_TIMER_REF_LEN hex digits. */
void gs__timer_ref_format(const gs_timer_key_t *key, gs_timer_ref_t ref,
                          char out[GS_TIMER_REF_LEN + 1]);
/** The runtime ref behind a client's reference s (borrowed): 0, or -1 when it is not one this
 *  key made (any forgery, typo or other shape). */
int gs__timer_ref_parse(const gs_timer_key_t *key, const char *s, gs_timer_ref_t *ref);

/* ---------------------------------------------------------------------------------------- */
/* Metrics (counters.c, metrics.c) */
/* ---------------------------------------------------------------------------------------- */

#define GS_METRICS_MIN_STATUS 100
#define GS_METRICS_MAX_STATUS 600
#define GS_METRICS_STATUSES   (GS_METRICS_MAX_STATUS - GS_METRICS_MIN_STATUS)
#define GS_METRICS_BUCKETS    14
/* The method label's values: GET HEAD POST PUT DELETE OPTIONS other (gs__metrics_method). */
#define GS_METRICS_METHODS 7

typedef struct gs_metrics_s {
    /* All counters are relaxed atomics: they are independent tallies read for a report, and
     * nothing is synchronised through them. */
    atomic_uint_fast64_t requests[GS_ROUTE_COUNT][GS_METRICS_METHODS][GS_METRICS_STATUSES];
    /* Every route's latency, from the request line to the answer queued; non-cumulative. */
    atomic_uint_fast64_t route_buckets[GS_ROUTE_COUNT][GS_METRICS_BUCKETS];
    atomic_uint_fast64_t route_count[GS_ROUTE_COUNT];
    atomic_uint_fast64_t route_sum_us[GS_ROUTE_COUNT];
    atomic_uint_fast64_t call_buckets[GS_METRICS_BUCKETS]; /* non-cumulative */
    atomic_uint_fast64_t call_count;
    atomic_uint_fast64_t call_sum_us;
} gs_metrics_t;

/** Upper bounds of the /call latency buckets, in microseconds (the last bucket is +Inf). */
extern const uint64_t gs__call_bucket_us[GS_METRICS_BUCKETS - 1];
/** Count one answered request (method: a GS_METHOD_ bit), and its latency ns. Any thread. */
void gs__metrics_count(gs_metrics_t *m, gs_route_t route, unsigned method, unsigned status,
                       uint64_t ns);
/** The method label of index i (0..GS_METRICS_METHODS-1). Static storage. */
const char *gs__metrics_method(unsigned i);
/** Record one /call's latency in nanoseconds. Any thread. */
void gs__metrics_observe_call(gs_metrics_t *m, uint64_t ns);

/* ---------------------------------------------------------------------------------------- */
/* Events (sse.c)                                                                             */
/* ---------------------------------------------------------------------------------------- */

typedef struct gs_sse_s gs_sse_t;

/** Create the event hub and subscribe it to rt. Returns NULL on failure. */
gs_sse_t *gs__sse_create(gs_gateway_t *gw, gs_runtime_t *rt);
/** Unsubscribe, stop the coalescing thread, end every stream. Idempotent. */
void gs__sse_shutdown(gs_sse_t *hub);
/** Free the hub; every stream must have ended. Accepts NULL. */
void gs__sse_destroy(gs_sse_t *hub);
/** Streams currently open. */
unsigned gs__sse_subscribers(gs_sse_t *hub);
/** Streams ended because their client fell behind (each told so by a last "closed" event). */
uint64_t gs__sse_too_slow(gs_sse_t *hub);
/** The lifecycle events kept (oldest first, at most opts.event_history), each as on the
 *  stream plus "at_ms", filtered to one server when server (borrowed) is not NULL: a new
 *  reference, or NULL when out of memory. Any thread. */
json_t *gs__sse_history(gs_sse_t *hub, const char *server);

/* ---------------------------------------------------------------------------------------- */
/* GET /system (system.c)                                                                     */
/* ---------------------------------------------------------------------------------------- */

typedef struct gs_sysload_s gs_sysload_t;

/** The scheduler samples for rt's schedulers (borrowed): owned by the caller, or NULL. */
gs_sysload_t *gs__sysload_create(gs_runtime_t *rt);
/** Accepts NULL. */
void gs__sysload_destroy(gs_sysload_t *l);

/* ---------------------------------------------------------------------------------------- */
/* Static files (static.c, web_assets.c generated at build time from web/)                    */
/* ---------------------------------------------------------------------------------------- */

typedef struct gs_web_asset_s {
    const char *path; /* "/index.html" */
    const unsigned char *data;
    size_t size;
} gs_web_asset_t;

extern const gs_web_asset_t gs__web_assets[];
extern const size_t gs__web_assets_count;

/** Index of the asset serving url ("/" -> "/index.html"), or -1. */
int gs__static_find(const char *url);
/** The Content-Type for a path by its extension. Static storage. */
const char *gs__content_type(const char *path);

/* ---------------------------------------------------------------------------------------- */
/* The gateway                                                                                */
/* ---------------------------------------------------------------------------------------- */

struct gs_gateway_s {
    gs_runtime_t *rt;
    /* The runtime's store (genserv/store.h), or NULL; kept here because the store outlives the
     * runtime (the binary closes it after the gateway), and a request finishing during
     * shutdown may still write to it after the runtime is gone. */
    struct gs_store_s *store;
    struct MHD_Daemon *daemon;
    gs_gateway_options_t opts;
    gs_decode_limits_t limits; /* from opts, for decoding bodies */
    char *host;                /* owned copy of opts.host */
    uint16_t port;
    int listen_fd;

    /* Shutdown gate. closing and users are sequentially consistent: a handler increments
     * users then reads closing, shutdown stores closing then reads users (Dekker), so either
     * the handler sees closing or shutdown sees the handler. */
    atomic_bool closing;
    atomic_int users;
    bool shut_down; /* controlling thread only */

    /* Relaxed: a gauge and a bound, not used to publish data. */
    atomic_uint held;           /* requests suspended waiting for the runtime (all kinds) */
    atomic_uint held_calls;     /* of which /calls: the ones max_held_calls bounds */
    atomic_uint active;         /* requests between first handler call and completed callback */
    atomic_uint connections;    /* open HTTP connections (MHD's notify-connection callback) */
    atomic_size_t bodies_bytes; /* held by request bodies still being received (body.c) */

    gs_timer_key_t timer_key; /* for the references of timers made over HTTP */
    gs_metrics_t *metrics;
    gs_sse_t *sse;
    gs_reaper_t *reaper;
    gs_linger_t *linger;
    struct gs_kick_s *kick; /* NULL if it could not start, and after shutdown */
    gs_watch_t *watch;      /* NULL if it could not start */
    gs_sysload_t *sysload;  /* GET /system's scheduler samples (system.c) */
    int64_t started_at_ms;  /* Unix time when the gateway was created */
    uint64_t started_ns;    /* gs__api_now_ns() then */

    /* Readiness (GET /readyz, and the gate of opts.hold_until_ready: release/acquire there). */
    atomic_uint ready_checks; /* gs_ready_check_t bits passed */
    atomic_bool draining;     /* gs_gateway_drain or shutdown began */
    /* Generated request ids: a per-process random prefix and a counter (relaxed: only its
     * uniqueness matters). */
    char id_prefix[9];
    atomic_uint_fast64_t id_next;
};

/** Whether every readiness check passed (gs_gateway_set_ready, which releases). gw: borrowed.
 *  Any thread. */
static inline bool gs__gateway_ready(gs_gateway_t *gw)
{
    unsigned passed = atomic_load_explicit(&gw->ready_checks, memory_order_acquire);
    return (passed & GS_READY_ALL) == GS_READY_ALL;
}

/**
 * Enter and leave a section that calls the runtime. Enter fails (returns false) once the
 * gateway is shutting down. The access handler does this around every route marked runtime
 * in the route table; handlers never need to.
 */
static inline bool gs__runtime_enter(gs_gateway_t *gw)
{
    /* seq_cst on both (see the struct): pairs with gs_gateway_shutdown's store and load. */
    atomic_fetch_add(&gw->users, 1);
    if (atomic_load(&gw->closing)) {
        atomic_fetch_sub(&gw->users, 1);
        return false;
    }
    return true;
}

static inline void gs__runtime_leave(gs_gateway_t *gw)
{
    atomic_fetch_sub(&gw->users, 1);
}

#endif /* GS_API_INTERNAL_H */
