/*
 * kick.c: wakes HTTP threads that libmicrohttpd's epoll loop can leave asleep with work to do.
 *
 * libmicrohttpd 0.9.75 (and 1.0.1) drains epoll in a loop, `while (MAX_EVENTS == num_events)
 * epoll_wait(..., timeout_ms)` with MAX_EVENTS 128, and handles the connections the events
 * made ready only after the loop. When one wait returns exactly 128 events, the next one waits
 * again with the whole timeout (up to the idle timeout), and if nothing else happens on that
 * thread, the 128 connections it already knows are ready wait with it: after a burst of new
 * connections, 128 or 256 fully sent requests were closed unanswered at the 60 s idle timeout
 * (issue 12, point 13; the test of it in it_hostile).
 *
 * The workaround: every request and new connection counts as activity; a thread looks every
 * GS_KICK_PERIOD_MS, and once activity has stopped for a whole period after some, it opens one
 * TCP connection to the listening socket and closes it at once. The listening socket is in
 * every HTTP thread's epoll set (level-triggered), so each thread's wait returns with fewer
 * than 128 events, ends the loop and handles what it knew; libmicrohttpd accepts the empty
 * connection and closes it when it reads the end. A stall is bounded by about two periods; an
 * idle genserv costs one wakeup of this thread per period and no connection.
 *
 * API (gateway.c): gs__kick_start before the daemon starts (its threads count activity from
 * their first connection), gs__kick_activity from the request and connection callbacks (one
 * relaxed increment), gs__kick_stop when the listening socket goes (the thread ends; counting
 * goes on harmlessly), gs__kick_destroy after the daemon stopped.
 */
#include "api_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define GS_KICK_PERIOD_MS 25

struct gs_kick_s {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop; /* mu */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    /* Relaxed: a count that only has to change when there was activity. */
    _Atomic uint64_t activity;
    _Atomic uint64_t kicks; /* how many connections it opened, for tests and metrics */
};

/* Where to connect: the listening socket's address, with a wildcard made loopback. */
static int kick_address(int listen_fd, struct sockaddr_storage *ss, socklen_t *len)
{
    *len = sizeof(*ss);
    if (getsockname(listen_fd, (struct sockaddr *)ss, len) != 0)
        return -1;
    if (ss->ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        if (in->sin_addr.s_addr == htonl(INADDR_ANY))
            in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return 0;
    }
    if (ss->ss_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
        if (memcmp(&in6->sin6_addr, &in6addr_any, sizeof(in6addr_any)) == 0)
            in6->sin6_addr = in6addr_loopback;
        return 0;
    }
    return -1;
}

static void kick_once(gs_kick_t *k)
{
    int fd = socket(k->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {.tv_sec = 0, .tv_usec = 100000};

    if (fd < 0)
        return; /* out of descriptors: the next period tries again */
    /* A full accept queue would make connect wait: never longer than this. */
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&k->addr, k->addrlen) == 0)
        atomic_fetch_add_explicit(&k->kicks, 1, memory_order_relaxed);
    close(fd);
}

static void *kick_main(void *arg)
{
    gs_kick_t *k = arg;
    uint64_t seen = atomic_load_explicit(&k->activity, memory_order_relaxed), kicked = seen;

    pthread_mutex_lock(&k->mu);
    while (!k->stop) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += GS_KICK_PERIOD_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!k->stop && pthread_cond_timedwait(&k->cv, &k->mu, &until) != ETIMEDOUT) {
        }
        if (k->stop)
            break;
        uint64_t now = atomic_load_explicit(&k->activity, memory_order_relaxed);
        if (now == seen && now != kicked) {
            /* Quiet for a whole period after some activity: wake every HTTP thread once. */
            pthread_mutex_unlock(&k->mu);
            kick_once(k);
            pthread_mutex_lock(&k->mu);
            /* The kick's own connection counts as activity: do not kick for it again. */
            kicked = atomic_load_explicit(&k->activity, memory_order_relaxed);
            now = kicked;
        }
        seen = now;
    }
    pthread_mutex_unlock(&k->mu);
    return NULL;
}

gs_kick_t *gs__kick_start(int listen_fd)
{
    gs_kick_t *k = calloc(1, sizeof(*k));
    pthread_condattr_t ca;

    if (k == NULL)
        return NULL;
    if (kick_address(listen_fd, &k->addr, &k->addrlen) < 0) {
        free(k);
        return NULL;
    }
    pthread_mutex_init(&k->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&k->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&k->thread, NULL, kick_main, k) != 0) {
        pthread_cond_destroy(&k->cv);
        pthread_mutex_destroy(&k->mu);
        free(k);
        return NULL;
    }
    return k;
}

void gs__kick_activity(gs_kick_t *k)
{
    if (k != NULL)
        atomic_fetch_add_explicit(&k->activity, 1, memory_order_relaxed); /* see the struct */
}

uint64_t gs__kick_count(const gs_kick_t *k)
{
    return k != NULL ? atomic_load_explicit(&k->kicks, memory_order_relaxed) : 0;
}

void gs__kick_stop(gs_kick_t *k)
{
    if (k == NULL)
        return;
    pthread_mutex_lock(&k->mu);
    bool running = !k->stop;
    k->stop = true;
    pthread_cond_signal(&k->cv);
    pthread_mutex_unlock(&k->mu);
    if (running)
        pthread_join(k->thread, NULL);
}

void gs__kick_destroy(gs_kick_t *k)
{
    if (k == NULL)
        return;
    gs__kick_stop(k);
    pthread_cond_destroy(&k->cv);
    pthread_mutex_destroy(&k->mu);
    free(k);
}
