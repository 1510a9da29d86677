/*
 * linger.c: what nginx calls lingering_close. When genserv answers a request before reading
 * all of it (413 for a body over the limit, 431, a refused head), libmicrohttpd closes the
 * socket right after the answer; a client still sending its body then gets a connection
 * reset, and the reset can reach it before it reads the answer (curl error 55, Python's
 * broken pipe), so the 413 is lost.
 *
 * So the gateway keeps its own duplicate of such a connection's socket: libmicrohttpd's
 * shutdown(SHUT_WR) still sends the answer and the FIN, but its close() no longer ends the
 * connection. This thread then reads and discards what the client goes on sending, until the
 * client closes its side, linger_ms pass or linger_bytes were read, and only then closes it.
 * At most GS_LINGER_MAX sockets linger at once; past that, an early answer closes as before.
 *
 * API:
 *   gs__linger_start(ms, bytes)   the thread and its epoll
 *   gs__linger_add(l, conn)       on the HTTP thread, while libmicrohttpd still owns the fd
 *   gs__linger_stop(l)            closes whatever still lingers; after MHD_stop_daemon
 */
#include "api_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define GS_LINGER_MAX  1024
#define GS_LINGER_TICK 50 /* ms between looks at the deadlines */

typedef struct entry_s {
    int fd; /* -1: free */
    uint64_t deadline_ns;
    size_t read;
} entry_t;

struct gs_linger_s {
    pthread_t thread;
    int epfd;
    unsigned max_ms;
    size_t max_bytes;
    atomic_bool stop;
    pthread_mutex_t mu; /* guards entries and count */
    entry_t entries[GS_LINGER_MAX];
    unsigned count;
    atomic_uint_fast64_t lingered; /* a tally for /metrics (relaxed) */
};

static void entry_close(gs_linger_t *l, entry_t *e)
{
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, e->fd, NULL);
    close(e->fd);
    e->fd = -1;
    l->count--;
}

/* Read and discard what is there; true when the entry is done (EOF, error, enough read). */
static bool drain(gs_linger_t *l, entry_t *e)
{
    char buf[16384];

    for (;;) {
        ssize_t n = read(e->fd, buf, sizeof(buf));
        if (n > 0) {
            e->read += (size_t)n;
            if (e->read >= l->max_bytes)
                return true;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return false;
        if (n < 0 && errno == EINTR)
            continue;
        return true; /* 0: the client closed its side; or an error */
    }
}

static void *linger_thread(void *arg)
{
    gs_linger_t *l = arg;
    struct epoll_event evs[64];

    while (!atomic_load(&l->stop)) {
        int n = epoll_wait(l->epfd, evs, 64, GS_LINGER_TICK);
        uint64_t now = gs__api_now_ns();

        pthread_mutex_lock(&l->mu);
        for (int i = 0; i < n; i++) {
            entry_t *e = evs[i].data.ptr;
            if (e->fd >= 0 && drain(l, e))
                entry_close(l, e);
        }
        for (unsigned i = 0; i < GS_LINGER_MAX && l->count > 0; i++)
            if (l->entries[i].fd >= 0 && now >= l->entries[i].deadline_ns)
                entry_close(l, &l->entries[i]);
        pthread_mutex_unlock(&l->mu);
    }
    return NULL;
}

gs_linger_t *gs__linger_start(unsigned max_ms, size_t max_bytes)
{
    gs_linger_t *l = calloc(1, sizeof(*l));

    if (l == NULL)
        return NULL;
    l->max_ms = max_ms;
    l->max_bytes = max_bytes;
    atomic_init(&l->stop, false);
    atomic_init(&l->lingered, 0);
    for (unsigned i = 0; i < GS_LINGER_MAX; i++)
        l->entries[i].fd = -1;
    pthread_mutex_init(&l->mu, NULL);
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0 || pthread_create(&l->thread, NULL, linger_thread, l) != 0) {
        if (l->epfd >= 0)
            close(l->epfd);
        pthread_mutex_destroy(&l->mu);
        free(l);
        return NULL;
    }
    return l;
}

void gs__linger_add(gs_linger_t *l, struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info;
    entry_t *e = NULL;
    int fd;

    if (l == NULL || l->max_ms == 0 || l->max_bytes == 0)
        return;
    info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (info == NULL)
        return;
    pthread_mutex_lock(&l->mu);
    for (unsigned i = 0; l->count < GS_LINGER_MAX && i < GS_LINGER_MAX && e == NULL; i++)
        if (l->entries[i].fd < 0)
            e = &l->entries[i];
    if (e != NULL && (fd = fcntl(info->connect_fd, F_DUPFD_CLOEXEC, 0)) >= 0) {
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = e};
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) == 0) {
            e->fd = fd;
            e->read = 0;
            e->deadline_ns = gs__api_now_ns() + (uint64_t)l->max_ms * 1000000u;
            l->count++;
            atomic_fetch_add_explicit(&l->lingered, 1, memory_order_relaxed);
        } else {
            close(fd);
        }
    }
    pthread_mutex_unlock(&l->mu);
}

uint64_t gs__linger_count(gs_linger_t *l)
{
    return l != NULL ? atomic_load_explicit(&l->lingered, memory_order_relaxed) : 0;
}

void gs__linger_stop(gs_linger_t *l)
{
    if (l == NULL)
        return;
    atomic_store(&l->stop, true);
    pthread_join(l->thread, NULL);
    for (unsigned i = 0; i < GS_LINGER_MAX; i++)
        if (l->entries[i].fd >= 0)
            entry_close(l, &l->entries[i]);
    close(l->epfd);
    pthread_mutex_destroy(&l->mu);
    free(l);
}
