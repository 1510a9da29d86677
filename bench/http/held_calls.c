/*
 * held_calls.c: the load tool behind the "10,000 held calls" row of bench/http/run.sh. wrk
 * keeps each connection busy with one request after another, so it can neither hold N
 * distinct requests open at once nor say when each one was answered; this tool does exactly
 * that, with raw non-blocking sockets and one epoll.
 *
 * API (one run):
 *   1. open --n connections to HOST:PORT (at most --max-connecting handshakes in flight, so
 *      the server's listen backlog is not overrun) and send one request on each:
 *      POST /call {"server": NAME, "message": ["push", i], "timeout_ms": T}, with
 *      "pad": "xxx..." of --pad bytes when asked (a field genserv ignores: what a held call
 *      costs must not depend on its body);
 *   2. poll GET /servers/NAME until the server reports held_calls == n (every call is held
 *      by the batcher), then read the server's VmRSS (--pid);
 *   3. send POST /send {"server": NAME, "message": "flush"}: the batcher answers every held
 *      caller at once; the time just before that request is written is "flush sent";
 *   4. record when each response has fully arrived, until all are in or --answer-wait-ms;
 *   5. print one JSON object: counts, statuses, the answer times relative to the flush
 *      request (first, p50, p99, last), last - first, and the server's VmRSS and VmHWM.
 *
 * The first response marks the start of the flush as seen from outside; last - first is
 * how long the server took to release all the calls once it had started. A batcher started
 * with a long interval_ms (so its own timer never fires during the run) is expected.
 *
 * Usage: held_calls --port P [--host 127.0.0.1] [--server NAME] [--n 10000]
 *                   [--timeout-ms 60000] [--pid PID] [--sources K] [--max-connecting 256]
 *                   [--hold-wait-ms 60000] [--answer-wait-ms 30000] [--pad BYTES]
 * --sources K spreads the connections over the source addresses 127.0.0.1..127.0.0.K, for
 * more connections than one address has ephemeral ports (about 28,000 by default).
 * Exit status: 0 when every call was held and answered with 200, 1 otherwise, 2 on usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RESP_BUF     1024 /* a /call answer is about 150 bytes of headers and {"reply":"ok"} */
#define MAX_EVENTS   1024
#define FLUSH_TAG    UINT64_MAX
#define PROBE_PERIOD 50 /* ms between two GET /servers/NAME while waiting for the hold */

enum conn_state { C_CONNECTING, C_SENDING, C_WAITING, C_DONE, C_FAILED };

typedef struct conn_s {
    int fd;
    enum conn_state state;
    uint32_t sent; /* request bytes written so far */
    uint32_t got;  /* response bytes read so far */
    int status;    /* HTTP status of the answer, 0 until it is complete */
    int64_t t_answer_ns;
    char buf[RESP_BUF];
} conn_t;

typedef struct opts_s {
    const char *host;
    int port;
    const char *server;
    long n;
    long timeout_ms;
    long pid;
    long sources;
    long max_connecting;
    long hold_wait_ms;
    long answer_wait_ms;
    long pad;       /* bytes of "pad" in each call's body */
    char *pad_text; /* pad 'x's, NUL-terminated */
} opts_t;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double ms_since(int64_t t0, int64_t t)
{
    return (double)(t - t0) / 1e6;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static int set_nonblocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/*
 * The request of connection i, in three parts: the head and the body up to the pad (rebuilt
 * on every partial write: small), the pad (o->pad_text, shared), and the body's end. Returns
 * the head's length, or -1.
 */
static int format_call(const opts_t *o, long i, char *out, size_t cap, const char **tail)
{
    char body[512];
    int blen = snprintf(body, sizeof(body),
                        "{\"server\":\"%s\",\"message\":[\"push\",%ld],\"timeout_ms\":%ld%s",
                        o->server, i, o->timeout_ms, o->pad > 0 ? ",\"pad\":\"" : "}");
    if (blen < 0 || (size_t)blen >= sizeof(body))
        return -1;
    *tail = o->pad > 0 ? "\"}" : "";
    long total = blen + o->pad + (long)strlen(*tail);
    int len = snprintf(out, cap,
                       "POST /call HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                       "Content-Length: %ld\r\n\r\n%s",
                       o->host, o->port, total, body);
    return len < 0 || (size_t)len >= cap ? -1 : len;
}

/*
 * The HTTP status of a complete response in buf, 0 while it is incomplete. Only what
 * genserv sends is handled: a Content-Length body, no chunking.
 */
static int parse_response(const char *buf, size_t len)
{
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (end == NULL || len < 12)
        return 0;
    size_t header_len = (size_t)(end - buf) + 4;
    size_t body_len = 0;
    for (const char *p = buf; p < end; p++) {
        if ((p == buf || p[-1] == '\n') && strncasecmp(p, "content-length:", 15) == 0) {
            body_len = strtoul(p + 15, NULL, 10);
            break;
        }
    }
    if (len < header_len + body_len)
        return 0;
    int status = atoi(buf + 9); /* "HTTP/1.1 200" */
    return status > 0 ? status : -1;
}

/* Connect a blocking socket, with a receive timeout so that a silent server cannot hang us. */
static int connect_blocking(const opts_t *o)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->port)};
    if (inet_pton(AF_INET, o->host, &sa.sin_addr) != 1)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* One blocking request with Connection: close; the whole answer lands in out. */
static int http_simple(const opts_t *o, const char *method, const char *path, const char *body,
                       char *out, size_t cap)
{
    char req[1024];
    int len = snprintf(req, sizeof(req),
                       "%s %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n"
                       "Content-Length: %zu\r\n\r\n%s",
                       method, path, o->host, o->port, body ? strlen(body) : 0, body ? body : "");
    if (len < 0 || (size_t)len >= sizeof(req))
        return -1;
    int fd = connect_blocking(o);
    if (fd < 0)
        return -1;
    size_t got = 0;
    int rc = -1;
    if (write_all(fd, req, (size_t)len) < 0)
        goto out;
    for (;;) {
        ssize_t r = read(fd, out + got, cap - 1 - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
        if (got == cap - 1)
            break;
    }
    out[got] = '\0';
    rc = parse_response(out, got) > 0 ? 0 : -1;
out:
    close(fd);
    return rc;
}

/* The server's held_calls from GET /servers/NAME, or -1. */
static long probe_held(const opts_t *o)
{
    char path[300], resp[16384];
    snprintf(path, sizeof(path), "/servers/%s", o->server);
    if (http_simple(o, "GET", path, NULL, resp, sizeof(resp)) < 0)
        return -1;
    const char *p = strstr(resp, "\"held_calls\":");
    return p ? strtol(p + 13, NULL, 10) : -1;
}

/* A "VmRSS:"-style field of /proc/PID/status in KiB, or -1. */
static long proc_status_kb(long pid, const char *field)
{
    char path[64], line[256];
    long kb = -1;
    if (pid <= 0)
        return -1;
    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t flen = strlen(field);
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, field, flen) == 0) {
            kb = strtol(line + flen, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

/* Open connection i's socket and start its non-blocking connect. */
static int start_connect(const opts_t *o, conn_t *c, long i, int ep)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->port)};
    inet_pton(AF_INET, o->host, &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (o->sources > 1) {
        /* Pick the port at connect time (per destination), not at bind time (per address). */
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(i % o->sources));
        if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
            close(fd);
            return -1;
        }
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = (uint64_t)i};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
        close(fd);
        return -1;
    }
    c->fd = fd;
    c->state = C_CONNECTING;
    return 0;
}

/* Write what is left of connection i's request; once it is all out, wait for the answer. */
static void send_more(const opts_t *o, conn_t *c, long i, int ep, long *n_sent)
{
    char head[1024];
    const char *tail;
    int hlen = format_call(o, i, head, sizeof(head), &tail);
    if (hlen < 0) {
        c->state = C_FAILED;
        return;
    }
    const struct {
        const char *p;
        size_t n;
    } parts[3] = {{head, (size_t)hlen}, {o->pad_text, (size_t)o->pad}, {tail, strlen(tail)}};
    size_t total = parts[0].n + parts[1].n + parts[2].n;
    while (c->sent < total) {
        size_t at = c->sent, k = 0;
        while (at >= parts[k].n) /* the part the next byte is in */
            at -= parts[k++].n;
        ssize_t w = write(c->fd, parts[k].p + at, parts[k].n - at);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return; /* EPOLLOUT brings us back */
        if (w <= 0) {
            c->state = C_FAILED;
            return;
        }
        c->sent += (uint32_t)w;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u64 = (uint64_t)i};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->state = C_WAITING;
    (*n_sent)++;
}

/* Read what connection c has; stamp the time when its response is complete. */
static void read_answer(conn_t *c, int64_t t)
{
    for (;;) {
        ssize_t r = read(c->fd, c->buf + c->got, RESP_BUF - c->got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (r <= 0) {
            /* Closed (or failed) before a whole answer: a failed call. */
            c->state = C_FAILED;
            c->t_answer_ns = t;
            return;
        }
        c->got += (uint32_t)r;
        int status = c->got == RESP_BUF ? -1 : parse_response(c->buf, c->got);
        if (status != 0) {
            c->status = status;
            c->state = C_DONE;
            c->t_answer_ns = t;
            /* Stay registered: a drained level-triggered socket gives no more events, and
             * closing 10,000 sockets now would load the server while it is still answering. */
            return;
        }
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s --port P [--host 127.0.0.1] [--server NAME] [--n 10000]\n"
            "          [--timeout-ms 60000] [--pid PID] [--sources K] [--max-connecting 256]\n"
            "          [--hold-wait-ms 60000] [--answer-wait-ms 30000] [--pad BYTES]\n",
            argv0);
    exit(2);
}

static void parse_args(int argc, char **argv, opts_t *o)
{
    *o = (opts_t){.host = "127.0.0.1",
                  .server = "held",
                  .n = 10000,
                  .timeout_ms = 60000,
                  .sources = 1,
                  .max_connecting = 256,
                  .hold_wait_ms = 60000,
                  .answer_wait_ms = 30000};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            usage(argv[0]);
        const char *v = argv[++i];
        if (strcmp(a, "--host") == 0)
            o->host = v;
        else if (strcmp(a, "--port") == 0)
            o->port = atoi(v);
        else if (strcmp(a, "--server") == 0)
            o->server = v;
        else if (strcmp(a, "--n") == 0)
            o->n = atol(v);
        else if (strcmp(a, "--timeout-ms") == 0)
            o->timeout_ms = atol(v);
        else if (strcmp(a, "--pid") == 0)
            o->pid = atol(v);
        else if (strcmp(a, "--sources") == 0)
            o->sources = atol(v);
        else if (strcmp(a, "--max-connecting") == 0)
            o->max_connecting = atol(v);
        else if (strcmp(a, "--hold-wait-ms") == 0)
            o->hold_wait_ms = atol(v);
        else if (strcmp(a, "--answer-wait-ms") == 0)
            o->answer_wait_ms = atol(v);
        else if (strcmp(a, "--pad") == 0)
            o->pad = atol(v);
        else
            usage(argv[0]);
    }
    if (o->pad < 0 || o->pad > 64L * 1024 * 1024)
        usage(argv[0]);
    o->pad_text = malloc((size_t)o->pad + 1);
    if (o->pad_text == NULL)
        die("malloc");
    memset(o->pad_text, 'x', (size_t)o->pad);
    o->pad_text[o->pad] = '\0';
    /* The name goes into JSON and a path unescaped: keep it to plain characters. */
    static const char name_chars[] = "abcdefghijklmnopqrstuvwxyz0123456789_-";
    if (o->port <= 0 || o->port > 65535 || o->n <= 0 || o->sources < 1 || o->sources > 254 ||
        o->max_connecting < 1 || strspn(o->server, name_chars) != strlen(o->server))
        usage(argv[0]);
}

/* Every descriptor we need, plus a few for the probes; the hard limit is as far as we go. */
static void raise_nofile(long n)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    rlim_t want = (rlim_t)n + 64;
    if (rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < want)
        fprintf(stderr, "held_calls: open-file limit %lu is below the %ld needed\n",
                (unsigned long)rl.rlim_cur, (long)want);
}

int main(int argc, char **argv)
{
    opts_t o;
    parse_args(argc, argv, &o);
    raise_nofile(o.n);

    conn_t *conns = calloc((size_t)o.n, sizeof(*conns));
    int64_t *times = calloc((size_t)o.n, sizeof(*times));
    struct epoll_event *evs = calloc(MAX_EVENTS, sizeof(*evs));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (conns == NULL || times == NULL || evs == NULL)
        die("calloc");
    if (ep < 0)
        die("epoll_create1");

    /* Phase 1: connect and send, a bounded number of handshakes at a time. */
    int64_t t_start = now_ns();
    long next = 0, connecting = 0, n_sent = 0, n_failed = 0, n_early = 0;
    int64_t deadline = t_start + (int64_t)o.hold_wait_ms * 1000000;
    while (n_sent + n_failed + n_early < o.n && now_ns() < deadline) {
        while (next < o.n && connecting < o.max_connecting) {
            if (start_connect(&o, &conns[next], next, ep) < 0) {
                conns[next].state = C_FAILED;
                n_failed++;
            } else {
                connecting++;
            }
            next++;
        }
        int k = epoll_wait(ep, evs, MAX_EVENTS, 100);
        for (int e = 0; e < k; e++) {
            long i = (long)evs[e].data.u64;
            conn_t *c = &conns[i];
            if (c->state == C_CONNECTING) {
                int err = 0;
                socklen_t elen = sizeof(err);
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen);
                connecting--;
                if (err != 0) {
                    c->state = C_FAILED;
                    n_failed++;
                    continue;
                }
                c->state = C_SENDING;
            }
            if (c->state == C_SENDING) {
                send_more(&o, c, i, ep, &n_sent);
                if (c->state == C_FAILED)
                    n_failed++;
            } else if (c->state == C_WAITING) {
                /* An answer before the flush (503 overloaded, a timeout...): counted apart. */
                read_answer(c, now_ns());
                if (c->state == C_DONE || c->state == C_FAILED) {
                    n_sent--;
                    n_early++;
                }
            }
        }
    }
    int64_t t_sent = now_ns();

    /* Phase 2: wait until the server holds every call we sent. */
    long held = -1;
    while (now_ns() < deadline) {
        held = probe_held(&o);
        if (held >= n_sent)
            break;
        /* Keep reading, so that an early answer does not leave us waiting for nothing. */
        int k = epoll_wait(ep, evs, MAX_EVENTS, PROBE_PERIOD);
        for (int e = 0; e < k; e++) {
            conn_t *c = &conns[evs[e].data.u64];
            if (c->state == C_WAITING) {
                read_answer(c, now_ns());
                if (c->state == C_DONE || c->state == C_FAILED) {
                    n_sent--;
                    n_early++;
                }
            }
        }
    }
    int64_t t_held = now_ns();
    long rss_held_kb = proc_status_kb(o.pid, "VmRSS:");

    /* Phase 3: flush. The /send goes out on a connection opened beforehand, so that the
     * timestamp is taken right before the bytes leave. */
    char body[400], req[1024];
    snprintf(body, sizeof(body), "{\"server\":\"%s\",\"message\":\"flush\"}", o.server);
    int rlen = snprintf(req, sizeof(req),
                        "POST /send HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                        "Content-Length: %zu\r\n\r\n%s",
                        o.host, o.port, strlen(body), body);
    conn_t *flush = calloc(1, sizeof(*flush));
    if (flush == NULL)
        die("calloc");
    flush->fd = connect_blocking(&o);
    if (flush->fd < 0)
        die("connect (flush)");
    int64_t t_flush = now_ns();
    if (write_all(flush->fd, req, (size_t)rlen) < 0)
        die("write (flush)");
    set_nonblocking(flush->fd);
    struct epoll_event fev = {.events = EPOLLIN, .data.u64 = FLUSH_TAG};
    epoll_ctl(ep, EPOLL_CTL_ADD, flush->fd, &fev);
    flush->state = C_WAITING;

    /* Phase 4: collect the answers. */
    long answered = 0;
    int64_t answer_deadline = t_flush + (int64_t)o.answer_wait_ms * 1000000;
    while (answered < n_sent && now_ns() < answer_deadline) {
        int k = epoll_wait(ep, evs, MAX_EVENTS, 100);
        int64_t t = now_ns(); /* one stamp per wake-up: all these bytes were already here */
        for (int e = 0; e < k; e++) {
            if (evs[e].data.u64 == FLUSH_TAG) {
                if (flush->state == C_WAITING)
                    read_answer(flush, t);
                if (flush->state != C_WAITING)
                    epoll_ctl(ep, EPOLL_CTL_DEL, flush->fd, NULL);
                continue;
            }
            conn_t *c = &conns[evs[e].data.u64];
            if (c->state != C_WAITING)
                continue;
            read_answer(c, t);
            if (c->state != C_WAITING)
                answered++;
        }
    }
    long hwm_kb = proc_status_kb(o.pid, "VmHWM:");

    /* Phase 5: report. Only answers to calls that were held count in the timings. */
    long n_times = 0, n_ok = 0, n_err = 0;
    for (long i = 0; i < o.n; i++) {
        conn_t *c = &conns[i];
        if (c->t_answer_ns >= t_flush && (c->state == C_DONE || c->state == C_FAILED)) {
            times[n_times++] = c->t_answer_ns - t_flush;
            if (c->state == C_DONE && c->status == 200)
                n_ok++;
            else
                n_err++;
        }
    }
    qsort(times, (size_t)n_times, sizeof(*times), cmp_i64);
    double first = n_times ? (double)times[0] / 1e6 : -1;
    double last = n_times ? (double)times[n_times - 1] / 1e6 : -1;
    double p50 = n_times ? (double)times[(n_times - 1) / 2] / 1e6 : -1;
    double p99 = n_times ? (double)times[(n_times - 1) * 99 / 100] / 1e6 : -1;
    double flush_rtt = flush->state == C_DONE ? ms_since(t_flush, flush->t_answer_ns) : -1;

    printf("{\"n\":%ld,\"pad\":%ld,\"sent\":%ld,\"connect_failed\":%ld,\"early_answers\":%ld,"
           "\"held\":%ld,\"answered\":%ld,\"status_200\":%ld,\"errors\":%ld,"
           "\"send_all_ms\":%.1f,\"hold_wait_ms\":%.1f,\"flush_status\":%d,\"flush_rtt_ms\":%.3f,"
           "\"first_ms\":%.3f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"last_ms\":%.3f,"
           "\"spread_ms\":%.3f,\"rss_held_kb\":%ld,\"hwm_kb\":%ld}\n",
           o.n, o.pad, n_sent, n_failed, n_early, held, n_times, n_ok, n_err,
           ms_since(t_start, t_sent), ms_since(t_sent, t_held), flush->status, flush_rtt, first,
           p50, p99, last, n_times ? last - first : -1, rss_held_kb, hwm_kb);

    for (long i = 0; i < o.n; i++)
        if (conns[i].fd > 0)
            close(conns[i].fd);
    close(flush->fd);
    close(ep);
    free(flush);
    free(evs);
    free(times);
    free(conns);
    return n_ok == o.n ? 0 : 1;
}
