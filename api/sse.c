/*
 * sse.c: GET /events, the runtime's events as a text/event-stream.
 *
 * One runtime subscription feeds every stream. Events other than state_changed are formatted
 * on the runtime thread where they happen and appended to every stream's buffer at once.
 * state_changed is coalesced: the runtime callback only marks the server dirty, and the hub's
 * thread, every coalesce_ms, sends one state_changed per dirty server carrying its current
 * status. A busy server therefore costs a browser at most one event per period, whatever its
 * message rate. The same thread writes a keep-alive comment every 15 s, which also makes a
 * stream notice a client that went away (suspended connections do not see disconnects).
 *
 * Every data line is one JSON object with a "type": history (first: the lifecycle events kept
 * from before the client connected), snapshot (then: all servers), started, stopped, crashed,
 * restarted, down, state_changed. There is no "event:" field, so a browser's
 * EventSource.onmessage sees them all.
 *
 * History (like observer's log of what happened before you looked): the hub keeps the last
 * opts.event_history lifecycle events (every type but state_changed) in a ring, whether or not
 * a stream is open. An event enters the ring and the open streams in one critical section under
 * hub->mu, and a new stream copies the ring and is linked in another, so every event reaches a
 * client exactly once: in its history or live after it. The ring costs one formatted event per
 * lifecycle event (rare next to messages); a reason larger than GS_SSE_HISTORY_REASON_MAX is
 * kept as a short note instead, so the ring stays within event_history * about 8 KiB.
 *
 * GET /events?server=NAME watches one name: its snapshot holds that server's status only (or
 * nothing, when no server runs under the name yet: watching a name before it starts is
 * allowed), and only events about that name follow. Keep-alives go to every stream.
 *
 * API (one stream):
 *   handler        admit (at most max_subscribers, else 503), buffer "retry" and the snapshot,
 *                  answer 200 with a response whose content comes from stream_read
 *   stream_read    copy what is buffered; when nothing is, suspend the connection and return 0
 *   broadcast      append to the buffer; resume the connection if stream_read suspended it
 *   stream_free    (libmicrohttpd destroys the response) unlink from the hub, free
 *
 * Bounds: max_subscribers streams; each buffers at most max_event_buffer bytes, past which it
 * is ended (the browser reconnects and gets a fresh snapshot); at most GS_SSE_MAX_DIRTY dirty
 * servers per period (past it, the state_changed of the extra servers waits for the next
 * event of theirs).
 */
#include "api_internal.h"

#include <genserv/map.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* The kernel's send buffer of an event stream's socket: small, so that a client that stops
 * reading is seen falling behind in max_event_buffer of events, not after megabytes queued in
 * the kernel as well. */
#define GS_SSE_SNDBUF       (64 * 1024)
#define GS_SSE_MAX_DIRTY    65536u
#define GS_SSE_KEEPALIVE_NS (15ull * 1000000000ull)
/* A lifecycle event's reason larger than this (as compact JSON) is kept in the history as a
 * note of its size: a ring of event_history entries must not hold event_history huge terms. */
#define GS_SSE_HISTORY_REASON_MAX 8192

/* One kept lifecycle event: its JSON object as text, and the server it is about. */
typedef struct hist_s {
    char *server; /* owned */
    char *json;   /* owned: the event object, compact, with "at_ms" */
} hist_t;

typedef struct stream_s stream_t;

/* Bytes waiting to be sent: [off, len) of buf. */
typedef struct bytes_s {
    char *buf;
    size_t len, off, cap;
} bytes_t;

struct stream_s {
    gs_sse_t *hub;
    struct MHD_Connection *conn;
    pthread_mutex_t mu; /* guards everything below */
    bytes_t out;        /* what stream_read sends next */
    /* The snapshot still to be written into out, a few servers at a time as the client reads
     * (so that it reaches the client however many servers there are), or NULL. Only the
     * thread in stream_read touches the cursor itself. Events that come meanwhile wait in
     * `later`, so that they follow the snapshot whole. */
    gs_status_cursor_t *snap;
    size_t snap_items; /* servers written so far (for the commas) */
    bytes_t later;
    char *server; /* owned: the one server this stream watches (?server=NAME), or NULL: all */
    bool waiting; /* stream_read suspended the connection; the next writer resumes it */
    bool closed;
    stream_t *prev, *next; /* hub list, guarded by hub->mu */
};

struct gs_sse_s {
    gs_gateway_t *gw;
    gs_runtime_t *rt;
    gs_subscription_t *subscription;

    pthread_mutex_t mu; /* guards the list, count, dirty set, stop, shut */
    pthread_cond_t cv;
    stream_t *head;
    unsigned count;
    /* Relaxed mirror of count for the event callback's fast path: a stale read only means one
     * event formatted for nobody, or one skipped just as the first stream opens. */
    atomic_uint nstreams;

    gs_map_t dirty; /* the names of servers with news: dirty_t records, owned */

    /* The history ring (hub->mu): ring[(first + i) % cap] for i < len, oldest first; cap is
     * opts.event_history (0: no ring). */
    hist_t *ring;
    size_t ring_cap, ring_first, ring_len;

    pthread_t thread;
    bool thread_started;
    bool stop;
    bool shut;
    atomic_uint_fast64_t too_slow; /* streams ended for falling behind (relaxed: a tally) */
};

/* ---------------------------------------------------------------------------------------- */
/* The dirty set                                                                              */
/* ---------------------------------------------------------------------------------------- */

typedef struct dirty_s {
    gs_map_node_t node; /* first: the map's node is the record */
    char name[];
} dirty_t;

static bool dirty_is(const gs_map_node_t *node, const void *name)
{
    return strcmp(((const dirty_t *)node)->name, name) == 0;
}

/* Insert name (copied) into the set; hub->mu held. Failing softly only delays an update. */
static void dirty_add(gs_sse_t *hub, const char *name)
{
    size_t len = strlen(name);
    uint64_t hash = gs_hash_bytes(name, len);
    dirty_t *d;

    if (gs_map_count(&hub->dirty) >= GS_SSE_MAX_DIRTY ||
        gs_map_find(&hub->dirty, hash, name, dirty_is) != NULL)
        return;
    d = malloc(sizeof(*d) + len + 1);
    if (d == NULL)
        return;
    memcpy(d->name, name, len + 1);
    if (gs_map_insert(&hub->dirty, &d->node, hash) != 0)
        free(d);
}

static bool free_dirty(gs_map_node_t *node, void *arg)
{
    (void)arg;
    free(node);
    return true;
}

/* The coalescing thread's visit of one dirty server: its state_changed to every stream. */
static bool send_state_changed(gs_map_node_t *node, void *arg);

/* ---------------------------------------------------------------------------------------- */
/* Broadcasting                                                                               */
/* ---------------------------------------------------------------------------------------- */

static size_t pending(const bytes_t *b)
{
    return b->len - b->off;
}

/* Append len bytes to b. Returns false when out of memory. */
static bool bytes_append(bytes_t *b, const char *text, size_t len)
{
    if (len == 0)
        return true;
    if (b->off > 0 && b->off == b->len)
        b->off = b->len = 0;
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        if (b->off > 0) { /* compact first */
            memmove(b->buf, b->buf + b->off, b->len - b->off);
            b->len -= b->off;
            b->off = 0;
        }
        while (cap < b->len + len)
            cap *= 2;
        if (cap != b->cap) {
            char *nb = realloc(b->buf, cap);
            if (nb == NULL)
                return false;
            b->buf = nb;
            b->cap = cap;
        }
    }
    memcpy(b->buf + b->len, text, len);
    b->len += len;
    return true;
}

/* A watcher of one server needs no cursor over all of them: its snapshot is one status read
 * when the client first reads. This marks a snapshot still to be written all the same. */
static char single_snapshot_marker;
#define SINGLE_SNAPSHOT ((gs_status_cursor_t *)(void *)&single_snapshot_marker)

static void snap_destroy(gs_status_cursor_t *c)
{
    if (c != SINGLE_SNAPSHOT)
        gs_status_cursor_destroy(c);
}

/* End s, and say why with a last event (s->mu held). A snapshot being written is closed off
 * first, so that what the client reads stays well-formed. */
static void stream_end(stream_t *s, const char *reason, const char *message)
{
    char final[256];
    int n;

    if (s->closed)
        return;
    if (s->snap != NULL) {
        snap_destroy(s->snap);
        s->snap = NULL;
        bytes_append(&s->out, "]}\n\n", 4);
    }
    s->later.len = s->later.off = 0;
    n = snprintf(final, sizeof(final),
                 "data: {\"type\":\"closed\",\"reason\":\"%s\",\"message\":\"%s\"}\n\n", reason,
                 message);
    if (n > 0 && (size_t)n < sizeof(final))
        bytes_append(&s->out, final, (size_t)n); /* past the bound: one small last event */
    s->closed = true;
}

/* Queue an event for one stream (s->mu held): after the snapshot if it is still being written.
 * A reader that falls max_event_buffer behind is ended, and told so. */
static void stream_append(stream_t *s, const char *text, size_t len)
{
    bytes_t *b = s->snap != NULL ? &s->later : &s->out;

    if (s->closed)
        return;
    if (pending(&s->out) + pending(&s->later) + len > s->hub->gw->opts.max_event_buffer) {
        atomic_fetch_add_explicit(&s->hub->too_slow, 1, memory_order_relaxed);
        stream_end(s, "too_slow",
                   "the client read events more slowly than they came; reconnect for a fresh "
                   "snapshot");
        return;
    }
    if (!bytes_append(b, text, len))
        stream_end(s, "out_of_memory", "the event could not be buffered");
}

/* Append text to every stream that watches server (NULL: to every stream); hub->mu held. The
 * connections to resume (after unlocking) go to wake; returns how many. */
static size_t broadcast_locked(gs_sse_t *hub, const char *server, const char *text, size_t len,
                               struct MHD_Connection **wake)
{
    size_t nwake = 0;
    stream_t *s;

    for (s = hub->head; s != NULL; s = s->next) {
        /* s->server is set before s is linked and never changes: read under hub->mu */
        if (server != NULL && s->server != NULL && strcmp(s->server, server) != 0)
            continue;
        pthread_mutex_lock(&s->mu);
        stream_append(s, text, len);
        if (s->waiting && nwake < GS_GATEWAY_MAX_SUBSCRIBERS_CAP) {
            s->waiting = false;
            wake[nwake++] = s->conn;
        }
        pthread_mutex_unlock(&s->mu);
    }
    return nwake;
}

/* Resume the connections broadcast_locked took out of waiting (hub->mu not held). */
static void wake_all(struct MHD_Connection **wake, size_t nwake)
{
    /* A connection whose stream was waiting is suspended, and only this thread took it out
     * of waiting, so it cannot be freed before this resume: no lock is needed around it. */
    for (size_t i = 0; i < nwake; i++)
        MHD_resume_connection(wake[i]);
}

/* Append text to every stream that watches server (NULL: to every stream) and wake those
 * waiting. Any thread; takes hub->mu. */
static void broadcast(gs_sse_t *hub, const char *server, const char *text, size_t len)
{
    struct MHD_Connection *wake[GS_GATEWAY_MAX_SUBSCRIBERS_CAP];
    size_t nwake;

    pthread_mutex_lock(&hub->mu);
    nwake = broadcast_locked(hub, server, text, len, wake);
    pthread_mutex_unlock(&hub->mu);
    wake_all(wake, nwake);
}

/* Keep one lifecycle event in the ring (hub->mu held); server and json borrowed, copied. Out
 * of memory only loses this entry. */
static void ring_push(gs_sse_t *hub, const char *server, const char *json)
{
    hist_t h = {strdup(server != NULL ? server : ""), strdup(json)};
    hist_t *slot;

    if (hub->ring_cap == 0 || h.server == NULL || h.json == NULL) {
        free(h.server);
        free(h.json);
        return;
    }
    if (hub->ring_len == hub->ring_cap) { /* full: the oldest gives way */
        slot = &hub->ring[hub->ring_first];
        free(slot->server);
        free(slot->json);
        hub->ring_first = (hub->ring_first + 1) % hub->ring_cap;
        hub->ring_len--;
    }
    hub->ring[(hub->ring_first + hub->ring_len) % hub->ring_cap] = h;
    hub->ring_len++;
}

/* The ring's events about server (NULL: all) as the text of one history event, appended to
 * out (hub->mu held). Returns false when out of memory. */
static bool ring_text(gs_sse_t *hub, const char *server, bytes_t *out)
{
    static const char open[] = "data: {\"type\":\"history\",\"events\":[";
    bool ok = bytes_append(out, open, sizeof(open) - 1), first = true;

    for (size_t i = 0; ok && i < hub->ring_len; i++) {
        const hist_t *h = &hub->ring[(hub->ring_first + i) % hub->ring_cap];
        if (server != NULL && strcmp(server, h->server) != 0)
            continue;
        ok = (first || bytes_append(out, ",", 1)) && bytes_append(out, h->json, strlen(h->json));
        first = false;
    }
    return ok && bytes_append(out, "]}\n\n", 4);
}

json_t *gs__sse_history(gs_sse_t *hub, const char *server)
{
    json_t *list = json_array();

    pthread_mutex_lock(&hub->mu);
    for (size_t i = 0; list != NULL && i < hub->ring_len; i++) {
        const hist_t *h = &hub->ring[(hub->ring_first + i) % hub->ring_cap];
        json_t *ev;

        if (server != NULL && strcmp(server, h->server) != 0)
            continue;
        ev = json_loads(h->json, 0, NULL);
        if (ev == NULL || json_array_append_new(list, ev) != 0) {
            json_decref(list);
            list = NULL;
        }
    }
    pthread_mutex_unlock(&hub->mu);
    return list;
}

/* Unix time in milliseconds (events carry it as "at_ms"). */
static int64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "data: JSON\n\n" for obj (taken). Returns a malloc'd string and its length, or NULL. */
static char *format_event(json_t *obj, size_t *len)
{
    char *json = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    char *text = NULL;
    size_t n;

    json_decref(obj);
    if (json == NULL)
        return NULL;
    n = strlen(json);
    text = malloc(n + 9);
    if (text != NULL) {
        memcpy(text, "data: ", 6);
        memcpy(text + 6, json, n);
        memcpy(text + 6 + n, "\n\n", 3);
        *len = n + 8;
    }
    free(json);
    return text;
}

static void on_event(const gs_event_t *ev, void *arg)
{
    gs_sse_t *hub = arg;
    struct MHD_Connection *wake[GS_GATEWAY_MAX_SUBSCRIBERS_CAP];
    size_t nwake = 0, len = 0;
    bool streams = atomic_load_explicit(&hub->nstreams, memory_order_relaxed) > 0;
    json_t *obj;
    char *text;

    if (streams && ev->server != NULL) {
        pthread_mutex_lock(&hub->mu);
        dirty_add(hub, ev->server); /* every event refreshes the server's row soon */
        pthread_mutex_unlock(&hub->mu);
    }
    if (ev->type == GS_EVENT_STATE_CHANGED || (!streams && hub->ring_cap == 0))
        return;
    obj = json_pack("{s:s,s:s?,s:s?,s:I}", "type", gs_event_name(ev->type), "server", ev->server,
                    "behaviour", ev->behaviour, "at_ms", (json_int_t)wall_ms());
    /* A copy, not a reference: the runtime frees its reason on another thread (see
     * field_take in decode.c for why sharing a json_t across threads is not safe). */
    if (obj != NULL && ev->reason != NULL)
        json_object_set_new(obj, "reason", json_deep_copy(ev->reason));
    text = format_event(obj, &len);
    if (text == NULL)
        return;
    pthread_mutex_lock(&hub->mu);
    if (hub->ring_cap > 0) {
        text[len - 2] = '\0'; /* the JSON alone, for the ring: "data: " ... "\n\n" */
        if (len - 8 <= GS_SSE_HISTORY_REASON_MAX) {
            ring_push(hub, ev->server, text + 6);
        } else {
            json_t *small = json_pack("{s:s,s:s?,s:s?,s:I,s:s}", "type", gs_event_name(ev->type),
                                      "server", ev->server, "behaviour", ev->behaviour, "at_ms",
                                      (json_int_t)wall_ms(), "reason", "(too large to keep)");
            char *one = small != NULL ? json_dumps(small, JSON_COMPACT) : NULL;
            if (one != NULL)
                ring_push(hub, ev->server, one);
            free(one);
            json_decref(small);
        }
        text[len - 2] = '\n';
    }
    nwake = broadcast_locked(hub, ev->server, text, len, wake);
    pthread_mutex_unlock(&hub->mu);
    wake_all(wake, nwake);
    free(text);
}

static bool send_state_changed(gs_map_node_t *node, void *arg)
{
    gs_sse_t *hub = arg;
    dirty_t *d = (dirty_t *)node;
    json_t *status = gs_server_status(hub->rt, d->name);
    char *text;
    size_t len;

    if (status != NULL) {
        text = format_event(json_pack("{s:s,s:s,s:o}", "type", "state_changed", "server", d->name,
                                      "status", status),
                            &len);
        if (text != NULL) {
            broadcast(hub, d->name, text, len);
            free(text);
        }
    }
    free(d);
    return true;
}

/* The coalescing thread: state_changed for every dirty server each period, and keep-alives. */
static void *hub_thread(void *arg)
{
    gs_sse_t *hub = arg;
    uint64_t last_keepalive = gs__api_now_ns();

    pthread_mutex_lock(&hub->mu);
    while (!hub->stop) {
        struct timespec until;
        gs_map_t dirty;

        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += (long)(hub->gw->opts.coalesce_ms % 1000) * 1000000L;
        until.tv_sec += hub->gw->opts.coalesce_ms / 1000 + until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&hub->cv, &hub->mu, &until);
        if (hub->stop)
            break;
        dirty = hub->dirty; /* take the set; the callbacks start a new one */
        gs_map_init(&hub->dirty);
        pthread_mutex_unlock(&hub->mu);

        gs_map_filter(&dirty, send_state_changed, hub);
        gs_map_close(&dirty);

        if (gs__api_now_ns() - last_keepalive >= GS_SSE_KEEPALIVE_NS) {
            static const char ka[] = ": keep-alive\n\n";

            broadcast(hub, NULL, ka, sizeof(ka) - 1);
            last_keepalive = gs__api_now_ns();
        }
        pthread_mutex_lock(&hub->mu);
    }
    pthread_mutex_unlock(&hub->mu);
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* The hub                                                                                    */
/* ---------------------------------------------------------------------------------------- */

gs_sse_t *gs__sse_create(gs_gateway_t *gw, gs_runtime_t *rt)
{
    gs_sse_t *hub = calloc(1, sizeof(*hub));

    if (hub == NULL)
        return NULL;
    hub->gw = gw;
    hub->rt = rt;
    hub->ring_cap = gw->opts.event_history;
    if (hub->ring_cap > 0 && (hub->ring = calloc(hub->ring_cap, sizeof(*hub->ring))) == NULL) {
        free(hub);
        return NULL;
    }
    pthread_mutex_init(&hub->mu, NULL);
    pthread_cond_init(&hub->cv, NULL);
    atomic_init(&hub->nstreams, 0);
    if (pthread_create(&hub->thread, NULL, hub_thread, hub) != 0)
        goto fail;
    hub->thread_started = true;
    if (gs_subscribe(rt, on_event, hub, &hub->subscription) < 0)
        goto fail;
    return hub;
fail:
    gs__sse_shutdown(hub);
    gs__sse_destroy(hub);
    return NULL;
}

void gs__sse_shutdown(gs_sse_t *hub)
{
    struct MHD_Connection *wake[GS_GATEWAY_MAX_SUBSCRIBERS_CAP];
    size_t nwake = 0, i;
    stream_t *s;

    if (hub == NULL)
        return;
    if (hub->subscription != NULL) {
        gs_unsubscribe(hub->rt, hub->subscription);
        hub->subscription = NULL;
    }
    pthread_mutex_lock(&hub->mu);
    hub->stop = true;
    hub->shut = true;
    pthread_cond_signal(&hub->cv);
    pthread_mutex_unlock(&hub->mu);
    if (hub->thread_started) {
        pthread_join(hub->thread, NULL);
        hub->thread_started = false;
    }
    pthread_mutex_lock(&hub->mu);
    for (s = hub->head; s != NULL; s = s->next) {
        pthread_mutex_lock(&s->mu);
        stream_end(s, "shutting_down", "genserv is stopping");
        if (s->waiting && nwake < GS_GATEWAY_MAX_SUBSCRIBERS_CAP) {
            s->waiting = false;
            wake[nwake++] = s->conn;
        }
        pthread_mutex_unlock(&s->mu);
    }
    pthread_mutex_unlock(&hub->mu);
    for (i = 0; i < nwake; i++)
        MHD_resume_connection(wake[i]);
}

void gs__sse_destroy(gs_sse_t *hub)
{
    if (hub == NULL)
        return;
    gs_map_filter(&hub->dirty, free_dirty, NULL);
    gs_map_close(&hub->dirty);
    for (size_t i = 0; i < hub->ring_len; i++) {
        hist_t *h = &hub->ring[(hub->ring_first + i) % hub->ring_cap];
        free(h->server);
        free(h->json);
    }
    free(hub->ring);
    pthread_cond_destroy(&hub->cv);
    pthread_mutex_destroy(&hub->mu);
    free(hub);
}

uint64_t gs__sse_too_slow(gs_sse_t *hub)
{
    return atomic_load_explicit(&hub->too_slow, memory_order_relaxed);
}

unsigned gs__sse_subscribers(gs_sse_t *hub)
{
    return atomic_load_explicit(&hub->nstreams, memory_order_relaxed);
}

/* ---------------------------------------------------------------------------------------- */
/* One stream                                                                                 */
/* ---------------------------------------------------------------------------------------- */

#define GS_SSE_SNAPSHOT_STEP 64 /* servers written into the snapshot per read */
#define SNAPSHOT_OPEN        "data: {\"type\":\"snapshot\",\"servers\":["
#define RETRY                "retry: 2000\n\n"
#define RETRY_LEN            (sizeof(RETRY) - 1)

/* The next servers of s's snapshot as text (s->mu not held: only this thread touches the
 * cursor), appended to out under the lock; at its end, the events that waited follow. */
static void snapshot_step(stream_t *s)
{
    gs_status_cursor_t *cur = s->snap;
    json_t *list = json_array();
    bytes_t text = {NULL, 0, 0, 0};
    size_t i, first, n = 0;
    json_t *st;

    pthread_mutex_lock(&s->mu);
    first = s->snap_items;
    pthread_mutex_unlock(&s->mu);
    if (list == NULL) {
        n = 0;
    } else if (cur != SINGLE_SNAPSHOT) {
        n = gs_status_cursor_next(cur, list, GS_SSE_SNAPSHOT_STEP);
    } else if (first == 0 && (st = gs_server_status(s->hub->rt, s->server)) != NULL) {
        /* One server: its status in the first step, nothing in the next (which ends it). */
        json_array_append_new(list, st);
        n = 1;
    }
    json_array_foreach(list, i, st)
    {
        char *one = json_dumps(st, JSON_COMPACT);
        if (one == NULL)
            continue;
        if (first + i > 0)
            bytes_append(&text, ",", 1);
        bytes_append(&text, one, strlen(one));
        free(one);
    }
    json_decref(list);

    pthread_mutex_lock(&s->mu);
    if (s->snap == cur) { /* not ended meanwhile */
        if (pending(&text) > 0)
            bytes_append(&s->out, text.buf + text.off, pending(&text));
        s->snap_items += n;
        if (n == 0) {
            snap_destroy(cur);
            s->snap = NULL;
            bytes_append(&s->out, "]}\n\n", 4);
            if (pending(&s->later) > 0)
                bytes_append(&s->out, s->later.buf + s->later.off, pending(&s->later));
            s->later.len = s->later.off = 0;
        }
    }
    pthread_mutex_unlock(&s->mu);
    free(text.buf);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    stream_t *s = cls;
    ssize_t n;

    (void)pos;
    pthread_mutex_lock(&s->mu);
    while (pending(&s->out) == 0 && s->snap != NULL && !s->closed) {
        pthread_mutex_unlock(&s->mu);
        snapshot_step(s);
        pthread_mutex_lock(&s->mu);
    }
    if (pending(&s->out) > 0) {
        size_t avail = pending(&s->out);

        if (avail > max)
            avail = max;
        memcpy(buf, s->out.buf + s->out.off, avail);
        s->out.off += avail;
        n = (ssize_t)avail;
    } else if (s->closed) {
        n = MHD_CONTENT_READER_END_OF_STREAM;
    } else {
        /* Nothing to send: park the connection until a writer resumes it. Suspending under
         * s->mu orders it before that writer's resume, which needs s->mu to see waiting. */
        s->waiting = true;
        MHD_suspend_connection(s->conn);
        n = 0;
    }
    pthread_mutex_unlock(&s->mu);
    return n;
}

static void stream_free(void *cls)
{
    stream_t *s = cls;
    gs_sse_t *hub = s->hub;

    pthread_mutex_lock(&hub->mu);
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        hub->head = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    hub->count--;
    atomic_store_explicit(&hub->nstreams, hub->count, memory_order_relaxed);
    pthread_mutex_unlock(&hub->mu);
    pthread_mutex_destroy(&s->mu);
    snap_destroy(s->snap);
    free(s->server);
    free(s->out.buf);
    free(s->later.buf);
    free(s);
}

enum MHD_Result gs__handle_events(gs_request_t *req)
{
    gs_gateway_t *gw = req->gw;
    gs_sse_t *hub = gw->sse;
    struct MHD_Response *resp;
    stream_t *s;
    bytes_t hist = {NULL, 0, 0, 0};
    const char *only = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "server");

    if (only != NULL && (only[0] == '\0' || strlen(only) > GS_NAME_MAX))
        return gs__respond_error(req, GS_HTTP_EBAD_REQUEST,
                                 "the query argument \"server\" must be a name of 1 to %d bytes",
                                 GS_NAME_MAX);
    if (req->match.method == GS_METHOD_HEAD) {
        /* What a GET would answer, without starting a stream: libmicrohttpd would send a
         * chunked stream's closing chunk even to a HEAD. */
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        if (resp == NULL)
            return MHD_NO;
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
        return gs__respond(req, MHD_HTTP_OK, resp);
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return gs__respond_runtime_error(req, GS_ENOMEM, NULL);
    s->hub = hub;
    s->conn = req->conn;
    pthread_mutex_init(&s->mu, NULL);
    if (only != NULL && (s->server = strdup(only)) == NULL) {
        pthread_mutex_destroy(&s->mu);
        free(s);
        return gs__respond_runtime_error(req, GS_ENOMEM, NULL);
    }

    /* The first event is a snapshot, so a page needs no separate GET /servers (and cannot
     * miss an event between the two); it is written as the client reads (stream_read). */
    s->snap = only != NULL ? SINGLE_SNAPSHOT : gs_status_cursor_create(gw->rt);
    if (s->snap == NULL || !bytes_append(&s->out, RETRY, RETRY_LEN) ||
        !bytes_append(&s->out, SNAPSHOT_OPEN, sizeof(SNAPSHOT_OPEN) - 1)) {
        snap_destroy(s->snap);
        pthread_mutex_destroy(&s->mu);
        free(s->server);
        free(s->out.buf);
        free(s);
        return gs__respond_runtime_error(req, GS_ENOMEM, NULL);
    }

    pthread_mutex_lock(&hub->mu);
    if (hub->shut || hub->count >= gw->opts.max_subscribers) {
        bool shut = hub->shut;

        pthread_mutex_unlock(&hub->mu);
        pthread_mutex_destroy(&s->mu);
        snap_destroy(s->snap);
        free(s->server);
        free(s->out.buf);
        free(s);
        if (shut)
            return gs__respond_shutting_down(req);
        return gs__respond_error(req, GS_EOVERLOADED,
                                 "%u event streams are open already; retry later",
                                 gw->opts.max_subscribers);
    }
    /* The history, taken in the same critical section that links the stream (see the top). */
    if (!ring_text(hub, s->server, &hist)) {
        free(hist.buf);
        hist = (bytes_t){NULL, 0, 0, 0}; /* out of memory: a stream without its history */
    }
    s->next = hub->head;
    if (hub->head != NULL)
        hub->head->prev = s;
    hub->head = s;
    hub->count++;
    atomic_store_explicit(&hub->nstreams, hub->count, memory_order_relaxed);
    pthread_mutex_unlock(&hub->mu);

    /* retry, history, then the snapshot's opening (events since the link wait in `later`). */
    pthread_mutex_lock(&s->mu);
    if (hist.len > 0 && !s->closed) {
        bytes_t out = {NULL, 0, 0, 0};
        if (bytes_append(&out, s->out.buf, RETRY_LEN) && bytes_append(&out, hist.buf, hist.len) &&
            bytes_append(&out, s->out.buf + RETRY_LEN, s->out.len - RETRY_LEN)) {
            free(s->out.buf);
            s->out = out;
        } else {
            free(out.buf);
        }
    }
    pthread_mutex_unlock(&s->mu);
    free(hist.buf);

    {
        const union MHD_ConnectionInfo *info =
            MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        int sndbuf = GS_SSE_SNDBUF;
        if (info != NULL)
            setsockopt(info->connect_fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    }
    resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, s, stream_free);
    if (resp == NULL) {
        stream_free(s);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    return gs__respond(req, MHD_HTTP_OK, resp);
}

enum MHD_Result gs__handle_events_history(gs_request_t *req)
{
    const char *only = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "server");
    json_t *list;

    if (only != NULL && (only[0] == '\0' || strlen(only) > GS_NAME_MAX))
        return gs__respond_error(req, GS_HTTP_EBAD_REQUEST,
                                 "the query argument \"server\" must be a name of 1 to %d bytes",
                                 GS_NAME_MAX);
    list = gs__sse_history(req->gw->sse, only);
    if (list == NULL)
        return gs__respond_runtime_error(req, GS_ENOMEM, NULL);
    return gs__respond_json(req, MHD_HTTP_OK,
                            json_pack("{s:o,s:I}", "events", list, "capacity",
                                      (json_int_t)req->gw->opts.event_history));
}
