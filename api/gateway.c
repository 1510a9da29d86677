/*
 * gateway.c: the libmicrohttpd daemon, the life of each request, and shutdown.
 *
 * Every request gets a gs_request_t on the first call of the access handler; its body is
 * accumulated up to the limit; when the body is complete the route's handler runs. A handler
 * that needs the runtime's answer holds the request (gs__request_hold: count it), starts the
 * runtime request and hands the outcome of the start to gs__request_started. An answer that
 * is there already (the runtime often runs an idle server's turn on the calling thread) is
 * sent at once; otherwise the connection is suspended, and the runtime's completion, on
 * whatever thread it runs, stores the outcome and resumes it; the access handler is then
 * called again and runs req->finish, which queues the response. The request is freed in the
 * completed callback. This is libmicrohttpd's suspend_resume_epoll.c pattern.
 *
 * Ordering: req->phase (STARTED -> SUSPENDED or DONE) decides between the two threads. The
 * completion resumes only a connection the handler has suspended; a completion that lands
 * between the handler's check and its suspend finds STARTED, so the handler's CAS fails and
 * it resumes the connection itself ("chained" suspend and resume, supported since
 * libmicrohttpd 0.9.54).
 *
 * Timeouts: suspended connections never time out and do not notice disconnects. Every runtime
 * request the gateway makes carries a timeout the runtime enforces (calls, get_state), or is
 * guaranteed to complete (stop), so every held connection is resumed; a client that went away
 * is noticed on the write after resume and the request is freed in the completed callback.
 *
 * Shutdown: gs_gateway_shutdown closes the listening socket and the gate to the runtime;
 * gs_runtime_destroy then completes every held call; gs_gateway_destroy waits for the answers
 * to be written and only then stops the daemon, since stopping it with suspended connections
 * is not allowed.
 */
#include "api_internal.h"

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* The largest number of HTTP threads we start, whatever the options say. */
#define GS_MAX_HTTP_THREADS 64u

uint64_t gs__api_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void gs__log(gs_gateway_t *gw, gs_log_level_t level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;

    if (gw->opts.log_cb == NULL || level > gw->opts.log_level)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    gw->opts.log_cb(level, line, gw->opts.log_arg);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    gs_gateway_t *gw = cls;
    gs_log_level_t level;
    char line[1024];
    size_t n;

    if (gw->opts.log_cb == NULL)
        return;
    vsnprintf(line, sizeof(line), fmt, ap);
    n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    /* A client that went away is an ordinary event, not a warning. */
    level = strstr(line, "no longer available") != NULL || strstr(line, "reset by peer") != NULL
                ? GS_LOG_DEBUG
                : GS_LOG_WARN;
    if (level > gw->opts.log_level)
        return;
    gw->opts.log_cb(level, line, gw->opts.log_arg);
}

/* ---------------------------------------------------------------------------------------- */
/* The shutdown gate                                                                          */
/* ---------------------------------------------------------------------------------------- */

bool gs__runtime_enter(gs_gateway_t *gw)
{
    /* seq_cst on both (see the struct): pairs with gs_gateway_shutdown's store and load. */
    atomic_fetch_add(&gw->users, 1);
    if (atomic_load(&gw->closing)) {
        atomic_fetch_sub(&gw->users, 1);
        return false;
    }
    return true;
}

void gs__runtime_leave(gs_gateway_t *gw)
{
    atomic_fetch_sub(&gw->users, 1);
}

/* ---------------------------------------------------------------------------------------- */
/* Holding a request for the runtime                                                          */
/* ---------------------------------------------------------------------------------------- */

int gs__request_hold(gs_request_t *req, gs_finish_fn finish, bool counted)
{
    gs_gateway_t *gw = req->gw;

    /* Relaxed: a bound and a gauge, not a publication; overshooting by a racing thread is
     * undone below. */
    if (counted && atomic_fetch_add_explicit(&gw->held_calls, 1, memory_order_relaxed) >=
                       gw->opts.max_held_calls) {
        atomic_fetch_sub_explicit(&gw->held_calls, 1, memory_order_relaxed);
        return GS_EOVERLOADED;
    }
    atomic_fetch_add_explicit(&gw->held, 1, memory_order_relaxed);
    req->counted = counted;
    req->finish = finish;
    atomic_init(&req->phase, GS_PHASE_STARTED);
    return 0;
}

/* The held request is over (answered, or its connection gone): count it out. */
static void unhold(gs_request_t *req)
{
    atomic_fetch_sub_explicit(&req->gw->held, 1, memory_order_relaxed); /* see hold */
    if (req->counted)
        atomic_fetch_sub_explicit(&req->gw->held_calls, 1, memory_order_relaxed);
}

static enum MHD_Result finish_held(gs_request_t *req)
{
    unhold(req);
    return req->finish(req);
}

enum MHD_Result gs__request_started(gs_request_t *req, int rc)
{
    int expected = GS_PHASE_STARTED;

    if (rc < 0)
        gs__request_complete(req, rc, NULL);
    /* acquire: pairs with the completion's exchange, so status and result are visible */
    if (atomic_load_explicit(&req->phase, memory_order_acquire) == GS_PHASE_DONE)
        return finish_held(req); /* answered already (often on this very thread) */
    req->held = true;
    MHD_suspend_connection(req->conn);
    /* acq_rel: publishes the suspend to a completion that comes later; on failure, acquires
     * the outcome of one that came meanwhile. It came between the check above and here: a
     * suspend followed at once by a resume is allowed (libmicrohttpd >= 0.9.54). */
    if (!atomic_compare_exchange_strong_explicit(&req->phase, &expected, GS_PHASE_SUSPENDED,
                                                 memory_order_acq_rel, memory_order_acquire))
        MHD_resume_connection(req->conn);
    return MHD_YES;
}

void gs__request_complete(gs_request_t *req, int status, json_t *result)
{
    /* Only the exchange below lets the HTTP thread read these (or MHD's resume, which takes
     * the daemon's mutex after it). */
    req->status = status;
    req->result = result;
    /* acq_rel: releases status and result; acquires the suspend when it came first */
    if (atomic_exchange_explicit(&req->phase, GS_PHASE_DONE, memory_order_acq_rel) ==
        GS_PHASE_SUSPENDED)
        MHD_resume_connection(req->conn);
}

void gs__on_reply(int status, json_t *result, void *arg)
{
    gs__request_complete(arg, status, result);
}

void gs__on_done(int status, void *arg)
{
    gs__request_complete(arg, status, NULL);
}

/* ---------------------------------------------------------------------------------------- */
/* The access handler                                                                         */
/* ---------------------------------------------------------------------------------------- */

static bool route_takes_body(const gs_request_t *req)
{
    return req->match.method == GS_METHOD_POST && (req->match.allowed & GS_METHOD_POST) != 0;
}

static enum MHD_Result dispatch(gs_request_t *req)
{
    const gs_route_match_t *m = &req->match;
    enum MHD_Result ret;

    gs__conn_phase(req->conn, GS_CONN_ACTIVE); /* the whole request is in */
    if (m->route == GS_ROUTE_NOT_FOUND)
        return gs__respond_error(req, MHD_HTTP_NOT_FOUND, "not_found", "no such path");
    if (gs__is_preflight(req))
        return gs__respond_preflight(req);
    if ((m->allowed & m->method) == 0)
        return gs__respond_method_not_allowed(req);
    if (req->too_large)
        return gs__respond_error(req, MHD_HTTP_CONTENT_TOO_LARGE, "too_large",
                                 "the request body exceeds %zu bytes",
                                 req->gw->opts.max_body_bytes);
    if (atomic_load(&req->gw->closing) && m->route != GS_ROUTE_HEALTHZ &&
        m->route != GS_ROUTE_STATIC)
        return gs__respond_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting_down", "%s",
                                 gs_strerror(GS_ESHUTDOWN));

    if (gs__access_check(req, &ret) < 0)
        return ret;

    switch (m->route) {
    case GS_ROUTE_CALL:
        return gs__handle_call(req);
    case GS_ROUTE_CAST:
        return gs__handle_cast(req);
    case GS_ROUTE_SEND:
        return gs__handle_send(req);
    case GS_ROUTE_SEND_AFTER:
        return gs__handle_send_after(req);
    case GS_ROUTE_TIMER:
        return gs__handle_timer(req);
    case GS_ROUTE_SERVERS:
        return gs__handle_servers(req);
    case GS_ROUTE_SERVER:
        return gs__handle_server(req);
    case GS_ROUTE_BEHAVIOURS:
        return gs__handle_behaviours(req);
    case GS_ROUTE_EVENTS:
        return gs__handle_events(req);
    case GS_ROUTE_METRICS:
        return gs__handle_metrics(req);
    case GS_ROUTE_HEALTHZ:
        return gs__respond_json(req, MHD_HTTP_OK, json_pack("{s:b}", "ok", 1));
    case GS_ROUTE_STATIC:
        return gs__handle_static(req);
    case GS_ROUTE_NOT_FOUND:
    case GS_ROUTE_COUNT:
        break;
    }
    return gs__respond_error(req, MHD_HTTP_NOT_FOUND, "not_found", "no such path");
}

/*
 * MHD's URI callback runs once per request, before the path is percent-decoded: the request's
 * context is created here so that routing can see the raw path (a server name may hold an
 * encoded '/', "%2F", which must not split the path). Whatever is returned here MHD passes to
 * the access handler as *con_cls and, since it then counts the client as aware, to the
 * completed callback, even if the request fails before the handler runs.
 */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    gs_gateway_t *gw = cls;
    gs_request_t *req = calloc(1, sizeof(*req));
    size_t n;

    if (req == NULL)
        return NULL;
    /* Absolute-form targets ("http://host/path") route on their path. */
    if (strncmp(uri, "http://", 7) == 0 || strncmp(uri, "https://", 8) == 0) {
        const char *p = strchr(strstr(uri, "//") + 2, '/');

        uri = p != NULL ? p : "/";
    }
    n = strcspn(uri, "?#");
    req->raw_path = strndup(uri, n);
    if (req->raw_path == NULL) {
        free(req);
        return NULL;
    }
    req->gw = gw;
    req->conn = conn;
    req->t_start_ns = gs__api_now_ns();
    gs__conn_phase(conn, GS_CONN_RECEIVING);
    /* Relaxed: a gauge read by shutdown, which tolerates a stale value for one poll. */
    atomic_fetch_add_explicit(&gw->active, 1, memory_order_relaxed);
    return req;
}

/* First handler call: route the request (method known now). Returns false when out of memory. */
static bool request_route(gs_request_t *req, const char *method, const char *url)
{
    req->routed = true;
    gs__route_match(method, req->raw_path, url, &req->match);
    if (req->match.param != NULL) {
        req->param = strdup(req->match.param);
        if (req->param == NULL)
            return false;
        if (gs__percent_decode(req->param) < 0) {
            /* A malformed escape or an encoded NUL names nothing. */
            req->match.route = GS_ROUTE_NOT_FOUND;
            req->match.allowed = 0;
            free(req->param);
            req->param = NULL;
        }
        req->match.param = req->param;
    }
    return true;
}

/* A declared Content-Length over the limit is refused before the body is read. */
static bool declared_too_large(gs_request_t *req)
{
    const char *cl =
        MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    char *end = NULL;
    unsigned long long n;

    if (cl == NULL)
        return false;
    errno = 0;
    n = strtoull(cl, &end, 10);
    if (errno != 0 || end == cl)
        return false; /* MHD itself rejects a malformed Content-Length */
    return n > req->gw->opts.max_body_bytes;
}

static enum MHD_Result append_body(gs_request_t *req, const char *data, size_t len)
{
    size_t limit = req->gw->opts.max_body_bytes;

    if (req->too_large || !route_takes_body(req))
        return MHD_YES; /* discard */
    if (len > limit - req->body_len) {
        req->too_large = true;
        free(req->body);
        req->body = NULL;
        req->body_len = req->body_cap = 0;
        return MHD_YES;
    }
    if (req->body_len + len + 1 > req->body_cap) {
        /* The first chunk is usually the whole body: size it exactly (a held call keeps its
         * request, and 10,000 of them are 10,000 buffers). */
        size_t cap = req->body_cap ? req->body_cap : len + 1;
        char *nb;

        while (cap < req->body_len + len + 1)
            cap *= 2;
        if (cap > limit + 1)
            cap = limit + 1;
        nb = realloc(req->body, cap);
        if (nb == NULL) {
            /* Sized by input: fail softly, as if the body were too large. */
            req->too_large = true;
            free(req->body);
            req->body = NULL;
            req->body_len = req->body_cap = 0;
            return MHD_YES;
        }
        req->body = nb;
        req->body_cap = cap;
    }
    memcpy(req->body + req->body_len, data, len);
    req->body_len += len;
    req->body[req->body_len] = '\0';
    return MHD_YES;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload,
                                 size_t *upload_size, void **con_cls)
{
    gs_request_t *req = *con_cls;

    (void)cls;
    (void)version;
    (void)conn; /* req->conn, from on_uri, is the same */
    if (req == NULL) {
        /* on_uri ran out of memory: close the connection. */
        return MHD_NO;
    }
    if (!req->routed) {
        if (!request_route(req, method, url))
            return MHD_NO; /* out of memory: close the connection */
        if (route_takes_body(req) && declared_too_large(req)) {
            /* Answered before the body: MHD discards the rest and closes the connection. */
            req->too_large = true;
            return dispatch(req);
        }
        return MHD_YES;
    }
    if (req->held) {
        /* Resumed by the completion: the outcome is in req. */
        req->held = false;
        return finish_held(req);
    }
    if (*upload_size != 0) {
        enum MHD_Result r = append_body(req, upload, *upload_size);

        *upload_size = 0;
        return r;
    }
    if (req->answered)
        return MHD_YES;
    return dispatch(req);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    gs_gateway_t *gw = cls;
    gs_request_t *req = *con_cls;

    gs__conn_phase(conn, GS_CONN_IDLE); /* waiting for the next request line */
    if (req == NULL)
        return;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && req->answered)
        gs__log(gw, GS_LOG_DEBUG, "http: connection ended before the answer was sent (%d)",
                (int)toe);
    if (req->held) /* only possible when the daemon is stopped with suspended connections */
        unhold(req);
    json_decref(req->result);
    json_decref(req->extra);
    free(req->body);
    free(req->param);
    free(req->raw_path);
    free(req);
    *con_cls = NULL;
    atomic_fetch_sub_explicit(&gw->active, 1, memory_order_relaxed);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    gs_gateway_t *gw = cls;

    /* Relaxed: a gauge for /metrics. */
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        atomic_fetch_add_explicit(&gw->connections, 1, memory_order_relaxed);
        *socket_context = gs__conn_started(gw->reaper, conn);
    } else {
        atomic_fetch_sub_explicit(&gw->connections, 1, memory_order_relaxed);
        gs__conn_closed(gw->reaper, *socket_context);
        *socket_context = NULL;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Creating and destroying the gateway                                                        */
/* ---------------------------------------------------------------------------------------- */

void gs_gateway_options_init(gs_gateway_options_t *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->host = "127.0.0.1";
    opts->port = 8080;
    opts->threads = 0;
    opts->max_body_bytes = GS_GATEWAY_DEFAULT_MAX_BODY_BYTES;
    opts->max_connections = GS_GATEWAY_DEFAULT_MAX_CONNECTIONS;
    opts->max_held_calls = GS_GATEWAY_DEFAULT_MAX_HELD_CALLS;
    opts->default_timeout_ms = GS_DEFAULT_TIMEOUT_MS;
    opts->max_timeout_ms = GS_GATEWAY_DEFAULT_MAX_TIMEOUT_MS;
    opts->max_subscribers = GS_GATEWAY_DEFAULT_MAX_SUBSCRIBERS;
    opts->connection_timeout_s = GS_GATEWAY_DEFAULT_CONNECTION_TIMEOUT_S;
    opts->request_timeout_s = GS_GATEWAY_DEFAULT_REQUEST_TIMEOUT_S;
    opts->connection_memory = GS_GATEWAY_DEFAULT_CONNECTION_MEMORY;
    opts->max_json_depth = GS_GATEWAY_DEFAULT_MAX_JSON_DEPTH;
    opts->coalesce_ms = GS_GATEWAY_DEFAULT_COALESCE_MS;
    opts->log_level = GS_LOG_INFO;
}

static int check_options(const gs_gateway_options_t *o, char *err, size_t errlen)
{
    const char *why = NULL;

    if (o->host == NULL || o->host[0] == '\0')
        why = "the listen host is empty";
    else if (o->max_body_bytes == 0 || o->max_body_bytes > ((size_t)1 << 30))
        why = "max_body_bytes must be in 1..1073741824";
    else if (o->max_connections == 0)
        why = "max_connections must be at least 1";
    else if (o->max_held_calls == 0)
        why = "max_held_calls must be at least 1";
    else if (o->max_timeout_ms < 0)
        why = "max_timeout_ms must be >= 0";
    else if (o->default_timeout_ms < 0 || o->default_timeout_ms > o->max_timeout_ms)
        why = "default_timeout_ms must be in 0..max_timeout_ms";
    else if (o->max_subscribers > GS_GATEWAY_MAX_SUBSCRIBERS_CAP)
        why = "max_subscribers must be at most 1024";
    else if (o->coalesce_ms == 0 || o->coalesce_ms > 60000)
        why = "coalesce_ms must be in 1..60000";
    else if (o->connection_memory < 2048 || o->connection_memory > 1024 * 1024)
        why = "connection_memory must be in 2048..1048576";
    else if (o->max_json_depth == 0 || o->max_json_depth > 1024)
        why = "max_json_depth must be in 1..1024";
    else if ((o->token != NULL && o->token[0] == '\0') ||
             (o->read_token != NULL && o->read_token[0] == '\0'))
        why = "a token must not be empty";
    else if (o->token != NULL && o->read_token != NULL && strcmp(o->token, o->read_token) == 0)
        why = "the read-only token must differ from the token";
    if (why != NULL && err != NULL)
        snprintf(err, errlen, "%s", why);
    return why ? GS_EINVAL : 0;
}

/* Create, bind and listen on a socket for host:port; returns the fd or -1 with err set. */
static int bind_listen(const char *host, uint16_t port, uint16_t *bound, char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL, *ai;
    char portstr[8];
    int fd = -1, rc, one = 1, saved = 0;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
    rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 65535) == 0)
            break;
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, errlen, "cannot listen on %s:%u: %s", host, (unsigned)port, strerror(saved));
        return -1;
    }
    {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);

        memset(&ss, 0, sizeof(ss));
        if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
            snprintf(err, errlen, "getsockname: %s", strerror(errno));
            close(fd);
            return -1;
        }
        if (ss.ss_family == AF_INET)
            *bound = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else
            *bound = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    return fd;
}

/* The strings gs_gateway_create copied into gw->opts, and the metrics. */
static void free_options(gs_gateway_t *gw)
{
    free(gw->metrics);
    free(gw->host);
    free((char *)gw->opts.token);
    free((char *)gw->opts.read_token);
    free((char *)gw->opts.cors_origins);
}

int gs_gateway_create(gs_runtime_t *rt, const gs_gateway_options_t *opts, gs_gateway_t **out,
                      char *err, size_t errlen)
{
    gs_gateway_t *gw = NULL;
    char scratch[256];
    unsigned threads;
    unsigned flags;
    int rc;

    if (err == NULL) {
        err = scratch;
        errlen = sizeof(scratch);
    }
    err[0] = '\0';
    *out = NULL;
    if (rt == NULL || opts == NULL) {
        snprintf(err, errlen, "no runtime or no options");
        return GS_EINVAL;
    }
    rc = check_options(opts, err, errlen);
    if (rc < 0)
        return rc;

    gw = calloc(1, sizeof(*gw));
    if (gw == NULL)
        return GS_ENOMEM;
    gw->rt = rt;
    gw->opts = *opts;
    gw->limits = (gs_decode_limits_t){.default_timeout_ms = opts->default_timeout_ms,
                                      .max_timeout_ms = opts->max_timeout_ms,
                                      .max_depth = opts->max_json_depth};
    gw->listen_fd = -1;
    gw->host = strdup(opts->host);
    gw->opts.token = opts->token != NULL ? strdup(opts->token) : NULL;
    gw->opts.read_token = opts->read_token != NULL ? strdup(opts->read_token) : NULL;
    gw->opts.cors_origins = opts->cors_origins != NULL ? strdup(opts->cors_origins) : NULL;
    gw->metrics = calloc(1, sizeof(*gw->metrics));
    if (gw->host == NULL || gw->metrics == NULL || (opts->token && !gw->opts.token) ||
        (opts->read_token && !gw->opts.read_token) ||
        (opts->cors_origins && !gw->opts.cors_origins)) {
        rc = GS_ENOMEM;
        goto out;
    }
    gw->opts.host = gw->host;
    atomic_init(&gw->closing, false);
    atomic_init(&gw->users, 0);
    atomic_init(&gw->held, 0);
    atomic_init(&gw->held_calls, 0);
    atomic_init(&gw->active, 0);
    atomic_init(&gw->connections, 0);

    gw->listen_fd = bind_listen(gw->host, opts->port, &gw->port, err, errlen);
    if (gw->listen_fd < 0) {
        rc = GS_EINVAL;
        goto out;
    }

    gw->sse = gs__sse_create(gw, rt);
    if (gw->sse == NULL) {
        snprintf(err, errlen, "cannot subscribe to runtime events");
        rc = GS_ENOMEM;
        goto out;
    }

    threads = opts->threads;
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);

        threads = n > 0 ? (unsigned)n : 1;
    }
    if (threads > GS_MAX_HTTP_THREADS)
        threads = GS_MAX_HTTP_THREADS;

    flags =
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    gw->reaper = gs__reaper_start(gw, opts->connection_timeout_s, opts->request_timeout_s);
    if (gw->reaper == NULL) {
        rc = GS_ENOMEM;
        goto out;
    }
    /* The logger goes first so that MHD reports even option errors through it. */
    gw->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_access, gw, MHD_OPTION_EXTERNAL_LOGGER, (MHD_LogCallback)mhd_log,
        gw, MHD_OPTION_URI_LOG_CALLBACK, on_uri, gw, MHD_OPTION_LISTEN_SOCKET,
        (MHD_socket)gw->listen_fd, MHD_OPTION_CONNECTION_LIMIT, (unsigned int)opts->max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)opts->connection_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, opts->connection_memory, MHD_OPTION_NOTIFY_COMPLETED,
        (MHD_RequestCompletedCallback)on_completed, gw, MHD_OPTION_NOTIFY_CONNECTION,
        (MHD_NotifyConnectionCallback)on_connection, gw, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned int)(threads > 1 ? threads : 0), MHD_OPTION_END);
    if (gw->daemon == NULL) {
        snprintf(err, errlen, "libmicrohttpd could not start on %s:%u", gw->host,
                 (unsigned)gw->port);
        rc = GS_EINVAL;
        goto out;
    }
    gs__log(gw, GS_LOG_INFO, "http: listening on %s:%u with %u thread(s), %u connections max",
            gw->host, (unsigned)gw->port, threads, opts->max_connections);
    *out = gw;
    return 0;

out:
    if (gw->sse != NULL) {
        gs__sse_shutdown(gw->sse);
        gs__sse_destroy(gw->sse);
    }
    gs__reaper_stop(gw->reaper); /* no daemon: no connection uses it */
    if (gw->listen_fd >= 0)
        close(gw->listen_fd);
    free_options(gw);
    free(gw);
    return rc;
}

uint16_t gs_gateway_port(const gs_gateway_t *gw)
{
    return gw->port;
}

const char *gs_gateway_host(const gs_gateway_t *gw)
{
    return gw->host;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

void gs_gateway_shutdown(gs_gateway_t *gw)
{
    MHD_socket fd;

    if (gw == NULL || gw->shut_down)
        return;
    gw->shut_down = true;

    /* Stop accepting. MHD hands the listening socket back; closing it refuses new clients. */
    fd = MHD_quiesce_daemon(gw->daemon);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    gw->listen_fd = -1;

    /* Close the gate, then wait for the handlers already inside the runtime (see the struct
     * for the ordering argument). */
    atomic_store(&gw->closing, true);
    while (atomic_load(&gw->users) > 0)
        sleep_ms(1);

    gs__sse_shutdown(gw->sse);
    gs__log(gw, GS_LOG_INFO, "http: stopped accepting; %u call(s) held",
            atomic_load_explicit(&gw->held, memory_order_relaxed));
}

int gs_gateway_destroy(gs_gateway_t *gw, int wait_ms)
{
    uint64_t deadline;
    unsigned held, active;

    if (gw == NULL)
        return 0;
    gs_gateway_shutdown(gw);
    deadline = gs__api_now_ns() + (uint64_t)(wait_ms > 0 ? wait_ms : 0) * 1000000u;
    for (;;) {
        held = atomic_load_explicit(&gw->held, memory_order_relaxed);
        active = atomic_load_explicit(&gw->active, memory_order_relaxed);
        if (active == 0 || gs__api_now_ns() >= deadline)
            break;
        sleep_ms(2);
    }
    if (held > 0) {
        /* Stopping MHD with suspended connections is undefined behaviour: leave it running;
         * the process is about to exit anyway. */
        gs__log(gw, GS_LOG_ERROR, "http: %u call(s) still held after %d ms; not stopping", held,
                wait_ms);
        return GS_ETIMEOUT;
    }
    if (active > 0)
        gs__log(gw, GS_LOG_WARN, "http: closing %u unfinished request(s)", active);
    MHD_stop_daemon(gw->daemon);
    gs__reaper_stop(gw->reaper); /* after the daemon: every CLOSED notification has run */
    gs__sse_destroy(gw->sse);
    free_options(gw);
    free(gw);
    return active > 0 ? GS_ETIMEOUT : 0;
}
