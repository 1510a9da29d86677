/*
 * watch.c: learns at once when the client of a held POST /call goes away, and tells the
 * runtime (gs_call_abandon), which completes the call with caller_gone and tells the server
 * holding it.
 *
 * libmicrohttpd does not watch suspended connections: a client that disconnects while its
 * call is held would otherwise be noticed only on the write after the server's reply or the
 * call's timeout, and the server would go on working for nobody. So a thread beside the
 * daemon keeps an epoll set of its own. Each suspended /call's socket is in it with
 * EPOLLRDHUP (the peer closed; EPOLLHUP and EPOLLERR come unasked), not EPOLLIN: the next
 * request a client pipelines behind a held call must not count as a hang-up. The event's data
 * is the call's id, never a pointer, so an event that comes after its entry left is a
 * harmless miss in the table of watched requests. A socket leaves the set before its
 * connection is resumed (after which libmicrohttpd may close the descriptor and the kernel
 * give its number to a new client), under the same lock as the table, so the thread never
 * touches a request that is gone nor a descriptor that was reused. On a hang-up the thread
 * takes the request's call reference out under that lock and abandons the call outside it;
 * the completion then resumes the connection like any other, and libmicrohttpd finds the
 * socket dead and cleans up.
 *
 * API (gateway.c, request.c):
 *   gs__watch_start    before the daemon starts (its threads add sockets from the first
 *                      held call on)
 *   gs__watch_add      the HTTP thread, after MHD_suspend_connection and before the suspend
 *                      is published to the completion (request.c's phase)
 *   gs__watch_remove   whoever resumes the connection, just before MHD_resume_connection
 *   gs__watch_stop     in gs_gateway_shutdown, before the runtime is destroyed: no call is
 *                      abandoned after it (adds and removes go on harmlessly)
 *   gs__watch_destroy  after the daemon stopped
 */
#include "api_internal.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define WATCH_EVENTS 64
#define REQ_OF(node) ((gs_request_t *)((char *)(node)-offsetof(gs_request_t, watch_node)))
#define STOP_DATA    0 /* call ids start at 1 */

struct gs_watch_s {
    gs_runtime_t *rt;
    pthread_t thread;
    int epfd;
    int stop_fd;        /* an eventfd in the set: wakes the thread to stop */
    bool running;       /* controlling thread only */
    atomic_bool stop;   /* relaxed: the eventfd's write and read order it */
    pthread_mutex_t mu; /* guards entries and each request's watch fields */
    gs_map_t entries;   /* watched requests by call id (gs_request_t.watch_node) */
};

static bool same_call(const gs_map_node_t *node, const void *key)
{
    return REQ_OF(node)->call_id == *(const uint64_t *)key;
}

/* A hang-up of call id's client: take its call out of the table and abandon it. */
static void hang_up(gs_watch_t *w, uint64_t id)
{
    gs_call_t *call = NULL;

    pthread_mutex_lock(&w->mu);
    gs_map_node_t *n = gs_map_remove(&w->entries, gs_hash_u64(id), &id, same_call);
    if (n != NULL) {
        gs_request_t *req = REQ_OF(n);
        epoll_ctl(w->epfd, EPOLL_CTL_DEL, req->watch_fd, NULL);
        req->watched = false;
        call = req->call; /* moved: the request no longer holds it */
        req->call = NULL;
    }
    pthread_mutex_unlock(&w->mu);
    if (call == NULL)
        return; /* the call completed meanwhile and its connection was resumed */
    /* Outside the lock: the completion this runs calls gs__watch_remove. */
    gs_call_abandon(w->rt, call); /* counted by the runtime (callers_gone) */
    gs_call_unref(call);
}

static void *watch_main(void *arg)
{
    gs_watch_t *w = arg;
    struct epoll_event ev[WATCH_EVENTS];

    for (;;) {
        int n = epoll_wait(w->epfd, ev, WATCH_EVENTS, -1);
        if (n < 0 && errno != EINTR)
            break;
        for (int i = 0; i < n; i++) {
            if (ev[i].data.u64 == STOP_DATA)
                continue;
            hang_up(w, ev[i].data.u64);
        }
        if (atomic_load_explicit(&w->stop, memory_order_relaxed))
            break;
    }
    return NULL;
}

gs_watch_t *gs__watch_start(gs_runtime_t *rt)
{
    gs_watch_t *w = calloc(1, sizeof(*w));
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = STOP_DATA};

    if (w == NULL)
        return NULL;
    w->rt = rt;
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    w->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (w->epfd < 0 || w->stop_fd < 0 || epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->stop_fd, &ev) != 0)
        goto fail;
    atomic_init(&w->stop, false);
    pthread_mutex_init(&w->mu, NULL);
    gs_map_init(&w->entries);
    if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
        gs_map_close(&w->entries);
        pthread_mutex_destroy(&w->mu);
        goto fail;
    }
    w->running = true;
    return w;
fail:
    if (w->epfd >= 0)
        close(w->epfd);
    if (w->stop_fd >= 0)
        close(w->stop_fd);
    free(w);
    return NULL;
}

void gs__watch_add(gs_watch_t *w, gs_request_t *req)
{
    const union MHD_ConnectionInfo *info;
    struct epoll_event ev = {.events = EPOLLRDHUP};

    if (w == NULL || req->call == NULL)
        return;
    info = MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (info == NULL)
        return;
    req->call_id = gs_call_id(req->call);
    req->watch_fd = info->connect_fd;
    ev.data.u64 = req->call_id;
    pthread_mutex_lock(&w->mu);
    /* A map without buckets yet that cannot get any, or an epoll set that refuses the socket
     * (out of memory): the call is then noticed only on the write after its answer. */
    if (gs_map_insert(&w->entries, &req->watch_node, gs_hash_u64(req->call_id)) == 0) {
        if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, req->watch_fd, &ev) == 0)
            req->watched = true;
        else
            gs_map_unlink(&w->entries, &req->watch_node);
    }
    pthread_mutex_unlock(&w->mu);
    req->watch_added = true; /* read by whoever resumes, after request.c's phase publishes it */
}

void gs__watch_remove(gs_watch_t *w, gs_request_t *req)
{
    if (w == NULL || !req->watch_added)
        return;
    pthread_mutex_lock(&w->mu);
    if (req->watched) {
        gs_map_unlink(&w->entries, &req->watch_node);
        epoll_ctl(w->epfd, EPOLL_CTL_DEL, req->watch_fd, NULL);
        req->watched = false;
    }
    pthread_mutex_unlock(&w->mu);
}

void gs__watch_stop(gs_watch_t *w)
{
    uint64_t one = 1;

    if (w == NULL || !w->running)
        return;
    atomic_store_explicit(&w->stop, true, memory_order_relaxed);
    while (write(w->stop_fd, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
    pthread_join(w->thread, NULL);
    w->running = false;
}

void gs__watch_destroy(gs_watch_t *w)
{
    if (w == NULL)
        return;
    gs__watch_stop(w);
    gs_map_close(&w->entries); /* every connection was resumed, so every entry left */
    pthread_mutex_destroy(&w->mu);
    close(w->epfd);
    close(w->stop_fd);
    free(w);
}
