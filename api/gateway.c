/*
 * gateway.c: the libmicrohttpd daemon's lifecycle: options, the listening socket, the HTTP
 * threads, the gate to the runtime, and shutdown. The life of each request is request.c's, and
 * router.c's table says which handler answers it.
 *
 * Shutdown: gs_gateway_shutdown closes the listening socket and the gate to the runtime, and
 * stops the thread that abandons the calls of clients that hang up (watch.c);
 * gs_runtime_destroy then completes every held call; gs_gateway_destroy waits for the answers
 * to be written and only then stops the daemon, since stopping it with suspended connections
 * is not allowed.
 */
#include "api_internal.h"

#include <genserv/store.h>

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

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    gs_gateway_t *gw = cls;

    /* Relaxed: a gauge for /metrics. */
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        atomic_fetch_add_explicit(&gw->connections, 1, memory_order_relaxed);
        gs__kick_activity(gw->kick);
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
#define GS__LIMIT_DEFAULT(field, flag, key, min, max, def, metavar, help) opts->field = def;
    GS_GATEWAY_LIMITS_MAP(GS__LIMIT_DEFAULT)
#undef GS__LIMIT_DEFAULT
    opts->log_level = GS_LOG_INFO;
}

_Static_assert(GS_GATEWAY_MAX_SUBSCRIBERS_CAP == 1024, "the max of max_subscribers in the map");

static bool out_of_range(unsigned long long v, unsigned long long min, unsigned long long max)
{
    return v < min || v > max;
}

static int check_options(const gs_gateway_options_t *o, char *err, size_t errlen)
{
    const char *why = NULL;

    if (o->host == NULL || o->host[0] == '\0') {
        why = "the listen host is empty";
        goto out;
    }
    /* Every numeric setting within its range (a negative int is far beyond any max). */
#define GS__LIMIT_CHECK(field, flag, key, min, max, def, metavar, help)                            \
    if (out_of_range((unsigned long long)o->field, min, max)) {                                    \
        snprintf(err, errlen, "%s must be in %llu..%llu", #field, (unsigned long long)(min),       \
                 (unsigned long long)(max));                                                       \
        return GS_EINVAL;                                                                          \
    }
    GS_GATEWAY_LIMITS_MAP(GS__LIMIT_CHECK)
#undef GS__LIMIT_CHECK
    if (o->default_timeout_ms > o->max_timeout_ms)
        why = "default_timeout_ms must be in 0..max_timeout_ms";
    else if (o->max_header_bytes + 1024 > o->connection_memory)
        why = "max_header_bytes must leave 1024 bytes of connection_memory free";
    else if ((o->token != NULL && o->token[0] == '\0') ||
             (o->read_token != NULL && o->read_token[0] == '\0'))
        why = "a token must not be empty";
    else if (o->token != NULL && o->read_token != NULL && strcmp(o->token, o->read_token) == 0)
        why = "the read-only token must differ from the token";
out:
    if (why != NULL)
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
    gs__sysload_destroy(gw->sysload);
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
    gw->store = gs_runtime_store(rt);
    gw->opts = *opts;
    gw->limits = gs__decode_limits(opts);
    gw->listen_fd = -1;
    gw->host = strdup(opts->host);
    gw->opts.token = opts->token != NULL ? strdup(opts->token) : NULL;
    gw->opts.read_token = opts->read_token != NULL ? strdup(opts->read_token) : NULL;
    gw->opts.cors_origins = opts->cors_origins != NULL ? strdup(opts->cors_origins) : NULL;
    gw->metrics = calloc(1, sizeof(*gw->metrics));
    gw->sysload = gs__sysload_create(rt);
    {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        gw->started_at_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
        gw->started_ns = gs__api_now_ns();
    }
    if (gw->host == NULL || gw->metrics == NULL || gw->sysload == NULL ||
        (opts->token && !gw->opts.token) || (opts->read_token && !gw->opts.read_token) ||
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
    atomic_init(&gw->ready_checks, 0u);
    atomic_init(&gw->draining, false);
    gs__request_ids_init(gw);

    if (gs__timer_key_init(&gw->timer_key) < 0) {
        snprintf(err, errlen, "cannot draw a key from getrandom: %s", strerror(errno));
        rc = GS_ENOMEM;
        goto out;
    }
    /* With a store the key is kept there: a timer's reference outlives a restart, as the
     * stored timer does. */
    if ((rc = gs__persist_timer_key(gw, &gw->timer_key)) != 0) {
        snprintf(err, errlen, "cannot read or store the timer key: %s", gs_strerror(rc));
        goto out;
    }
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

    /* MHD_USE_TURBO: read, write and accept before asking epoll whether the socket is ready
     * (it is, most of the time, under load). Issue 17 measured POST /call at 64 connections
     * at 38 k -> 51 k requests/s and p99 6.7 -> 5.2 ms with it on this 2-core machine: fewer
     * system calls per request, and a request answered in the same pass that read it. */
    flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC |
            MHD_USE_ERROR_LOG | MHD_USE_TURBO;
    gw->linger = gs__linger_start(opts->linger_ms, opts->linger_bytes);
    gw->reaper = gs__reaper_start(gw, opts->connection_timeout_s, opts->request_timeout_s);
    if (gw->reaper == NULL) {
        rc = GS_ENOMEM;
        goto out;
    }
    /* Before the daemon: its threads add held calls to it from the first one on. */
    gw->watch = gs__watch_start(rt);
    if (gw->watch == NULL)
        gs__log(gw, GS_LOG_WARN,
                "http: no watch thread: a held call's client that hangs up is "
                "noticed only when its call ends");
    /* Before the daemon: its threads read gw->kick from their first connection on. */
    gw->kick = gs__kick_start(gw->listen_fd);
    if (gw->kick == NULL)
        gs__log(gw, GS_LOG_WARN, "http: no kick thread: a burst may leave requests unread");
    /* The logger goes first so that MHD reports even option errors through it. */
    gw->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, gs__request_access_cb, gw, MHD_OPTION_EXTERNAL_LOGGER,
        (MHD_LogCallback)gs__mhd_log, gw, MHD_OPTION_URI_LOG_CALLBACK, gs__request_uri_cb, gw,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)gw->listen_fd, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned int)opts->max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned int)opts->connection_timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        opts->connection_memory, MHD_OPTION_NOTIFY_COMPLETED,
        (MHD_RequestCompletedCallback)gs__request_completed_cb, gw, MHD_OPTION_NOTIFY_CONNECTION,
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
    gs__linger_stop(gw->linger);
    gs__kick_stop(gw->kick);
    gs__kick_destroy(gw->kick);
    gs__watch_destroy(gw->watch);
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

void gs_gateway_set_ready(gs_gateway_t *gw, unsigned checks)
{
    /* Release: with hold_until_ready, a request let through once every check passed must see
     * what the embedder loaded before (gs__gateway_ready acquires). */
    atomic_fetch_or_explicit(&gw->ready_checks, checks & GS_READY_ALL, memory_order_release);
}

void gs_gateway_drain(gs_gateway_t *gw)
{
    if (gw == NULL)
        return;
    /* Relaxed: as above. */
    if (!atomic_exchange_explicit(&gw->draining, true, memory_order_relaxed))
        gs__log(gw, GS_LOG_INFO, "http: draining: GET /readyz answers 503 from now on");
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
    gs_gateway_drain(gw);

    gs__kick_stop(gw->kick); /* it connects to the listening socket, which goes now */

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
    /* Before the runtime goes (gs_runtime_destroy follows): no call is abandoned after this.
     * Held calls still leave its set when the runtime completes them. */
    gs__watch_stop(gw->watch);
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
    gs__linger_stop(gw->linger);
    gs__kick_destroy(gw->kick);   /* after the daemon: its threads count activity in it */
    gs__watch_destroy(gw->watch); /* after the daemon: every held connection was resumed */
    gs__sse_destroy(gw->sse);
    free_options(gw);
    free(gw);
    return active > 0 ? GS_ETIMEOUT : 0;
}
