/*
 * reaper.c: closes connections whose request arrives too slowly.
 *
 * libmicrohttpd's connection timeout is an idle timeout: a client that sends one byte a second
 * ("slowloris") is never idle, so it could hold a connection, and with many of them every
 * connection, forever. Every connection is therefore in one of three phases, each with a
 * deadline:
 *   IDLE       waiting for a request line (a new connection, or between keep-alive requests):
 *              at most idle_timeout_s, even if bytes trickle in;
 *   RECEIVING  the request line is in, the headers or the body are still coming: at most
 *              request_timeout_s for the rest of the request;
 *   ACTIVE     the request is complete and being answered (held calls and event streams can
 *              last long: they have deadlines of their own, or none by design).
 * A thread looks every 250 ms and shuts down (SHUT_RDWR) the socket of a connection past its
 * deadline; libmicrohttpd then sees the connection end and cleans up as for any client that
 * went away. The shutdown happens under the same lock as the removal in the CLOSED
 * notification, which libmicrohttpd sends before it closes the descriptor, so a reused
 * descriptor is never touched.
 *
 * API (gateway.c): gs__reaper_start/stop; gs__conn_started/closed from the connection
 * notification (the entry is the connection's socket context); gs__conn_phase on the request's
 * milestones (a relaxed store, no lock: the hot path stays cheap).
 */
#include "api_internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#define REAPER_PERIOD_MS 250

struct gs_conn_s {
    struct gs_conn_s *prev, *next; /* reaper lock */
    MHD_socket fd;
    /* Written by the connection's HTTP thread, read by the reaper: relaxed, since a stale
     * phase or time only shifts a deadline by one period. */
    _Atomic int phase;
    _Atomic uint64_t since_ns;
    bool reaped; /* reaper lock */
    /* The client's address, for the open-reply ledger: written before the connection's first
     * request, read by its HTTP thread. */
    char peer[GS_CALLER_MAX];
};

struct gs_reaper_s {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool stop;
    gs_conn_t *head;
    uint64_t idle_ns, request_ns; /* 0: no deadline for that phase */
    gs_gateway_t *gw;
};

static void reap(gs_reaper_t *r, uint64_t now)
{
    for (gs_conn_t *c = r->head; c != NULL; c = c->next) {
        int phase = atomic_load_explicit(&c->phase, memory_order_relaxed);
        uint64_t since = atomic_load_explicit(&c->since_ns, memory_order_relaxed);
        uint64_t limit = phase == GS_CONN_IDLE        ? r->idle_ns
                         : phase == GS_CONN_RECEIVING ? r->request_ns
                                                      : 0;

        if (c->reaped || limit == 0 || now < since || now - since <= limit)
            continue;
        c->reaped = true;
        shutdown(c->fd, SHUT_RDWR);
        gs__log(r->gw, GS_LOG_DEBUG, "http: closed a connection whose %s took over %llu s",
                phase == GS_CONN_IDLE ? "next request line" : "request",
                (unsigned long long)(limit / 1000000000u));
    }
}

static void *reaper_main(void *arg)
{
    gs_reaper_t *r = arg;

    pthread_mutex_lock(&r->mu);
    while (!r->stop) {
        struct timespec until;

        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += REAPER_PERIOD_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&r->cv, &r->mu, &until);
        if (!r->stop)
            reap(r, gs__api_now_ns());
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

gs_reaper_t *gs__reaper_start(gs_gateway_t *gw, unsigned idle_timeout_s, unsigned request_timeout_s)
{
    gs_reaper_t *r = calloc(1, sizeof(*r));
    pthread_condattr_t attr;

    if (r == NULL)
        return NULL;
    r->gw = gw;
    r->idle_ns = (uint64_t)idle_timeout_s * 1000000000u;
    r->request_ns = (uint64_t)request_timeout_s * 1000000000u;
    pthread_mutex_init(&r->mu, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &attr);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&r->thread, NULL, reaper_main, r) != 0) {
        pthread_cond_destroy(&r->cv);
        pthread_mutex_destroy(&r->mu);
        free(r);
        return NULL;
    }
    return r;
}

void gs__reaper_stop(gs_reaper_t *r)
{
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* "ADDR:PORT" ("[ADDR]:PORT" for IPv6) of conn's client into buf, or "". */
static void format_peer(struct MHD_Connection *conn, char *buf, size_t len)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char addr[INET6_ADDRSTRLEN];

    buf[0] = '\0';
    if (info == NULL || info->client_addr == NULL)
        return;
    if (info->client_addr->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)info->client_addr;
        if (inet_ntop(AF_INET, &in->sin_addr, addr, sizeof(addr)) != NULL)
            snprintf(buf, len, "%s:%u", addr, (unsigned)ntohs(in->sin_port));
    } else if (info->client_addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)info->client_addr;
        if (inet_ntop(AF_INET6, &in6->sin6_addr, addr, sizeof(addr)) != NULL)
            snprintf(buf, len, "[%s]:%u", addr, (unsigned)ntohs(in6->sin6_port));
    }
}

gs_conn_t *gs__conn_started(gs_reaper_t *r, struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    gs_conn_t *c;

    if (r == NULL || info == NULL)
        return NULL;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL; /* not watched: only the idle timeout applies to it */
    c->fd = info->connect_fd;
    format_peer(conn, c->peer, sizeof(c->peer));
    atomic_init(&c->phase, GS_CONN_IDLE);
    atomic_init(&c->since_ns, gs__api_now_ns());
    pthread_mutex_lock(&r->mu);
    c->next = r->head;
    if (r->head != NULL)
        r->head->prev = c;
    r->head = c;
    pthread_mutex_unlock(&r->mu);
    return c;
}

void gs__conn_closed(gs_reaper_t *r, gs_conn_t *c)
{
    if (c == NULL)
        return;
    if (r != NULL) {
        pthread_mutex_lock(&r->mu);
        if (c->prev != NULL)
            c->prev->next = c->next;
        else if (r->head == c)
            r->head = c->next;
        if (c->next != NULL)
            c->next->prev = c->prev;
        pthread_mutex_unlock(&r->mu);
    }
    free(c);
}

void gs__conn_phase(struct MHD_Connection *conn, gs_conn_phase_t phase)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    gs_conn_t *c = info != NULL ? info->socket_context : NULL;

    if (c == NULL)
        return;
    /* relaxed: see struct gs_conn_s */
    atomic_store_explicit(&c->since_ns, gs__api_now_ns(), memory_order_relaxed);
    atomic_store_explicit(&c->phase, (int)phase, memory_order_relaxed);
}

const char *gs__conn_peer(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    const gs_conn_t *c = info != NULL ? info->socket_context : NULL;

    return c != NULL && c->peer[0] != '\0' ? c->peer : NULL;
}
