/*
 * healthcheck.c: `genserv --health-check`, a tiny HTTP client for one request.
 *
 * Container images of genserv carry no curl or wget, so the binary probes itself: connect to
 * the listen address, send GET /readyz with Connection: close, read the status line (healthy
 * means ready to serve: the boot finished and no shutdown began). Every
 * step (connect, send, read) is non-blocking and shares one deadline, so a server that
 * accepts but never answers costs the probe timeout_ms, not the platform's own, longer, kill
 * timeout. Only the status code matters: 200 is healthy, anything else, or nothing, is not.
 *
 * API:
 *   gs_healthcheck_run(host, port, timeout_ms) -> 0 (healthy) or 1, one line printed
 */
#include "healthcheck.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for events on fd until deadline: 1 ready, 0 deadline passed, -1 error (errno set). */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        struct pollfd p = {.fd = fd, .events = events};
        int rc;

        if (left <= 0)
            return 0;
        rc = poll(&p, 1, (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        return rc;
    }
}

/* A connected non-blocking socket to ai within the deadline, or -1 with errno set. */
static int connect_one(const struct addrinfo *ai, int64_t deadline)
{
    int fd, rc, soerr = 0, saved = 0;
    socklen_t len = sizeof(soerr);

    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0)
        return -1;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
        return fd;
    if (errno != EINPROGRESS) {
        saved = errno;
        goto out;
    }
    rc = wait_fd(fd, POLLOUT, deadline);
    if (rc <= 0) {
        saved = rc == 0 ? ETIMEDOUT : errno;
        goto out;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
        saved = errno;
    else
        saved = soerr;
out:
    if (saved == 0)
        return fd;
    close(fd);
    errno = saved;
    return -1;
}

/* Send all of len bytes before the deadline: 0, or -1 with errno set. */
static int send_all(int fd, const char *data, size_t len, int64_t deadline)
{
    size_t sent = 0;

    while (sent < len) {
        ssize_t n = send(fd, data + sent, len - sent, MSG_NOSIGNAL);
        int rc;

        if (n >= 0) {
            sent += (size_t)n;
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return -1;
        rc = wait_fd(fd, POLLOUT, deadline);
        if (rc <= 0) {
            if (rc == 0)
                errno = ETIMEDOUT;
            return -1;
        }
    }
    return 0;
}

/*
 * Read into buf (NUL-terminated) until it holds a whole status line, the peer closes, or the
 * deadline passes. Returns the bytes read, or -1 with errno set (ETIMEDOUT at the deadline).
 */
static ssize_t read_status_line(int fd, char *buf, size_t len, int64_t deadline)
{
    size_t got = 0;

    buf[0] = '\0';
    while (got + 1 < len && strstr(buf, "\r\n") == NULL) {
        ssize_t n = recv(fd, buf + got, len - 1 - got, 0);
        int rc;

        if (n > 0) {
            got += (size_t)n;
            buf[got] = '\0';
            continue;
        }
        if (n == 0)
            break;
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return -1;
        rc = wait_fd(fd, POLLIN, deadline);
        if (rc <= 0) {
            if (rc == 0)
                errno = ETIMEDOUT;
            return -1;
        }
    }
    return (ssize_t)got;
}

/* The status of an HTTP status line ("HTTP/1.1 200 OK"): 0 and *status, or -1. */
static int parse_status(const char *line, int *status)
{
    const char *sp = strchr(line, ' ');
    char *end = NULL;
    long v;

    if (strncmp(line, "HTTP/", 5) != 0 || sp == NULL)
        return -1;
    errno = 0;
    v = strtol(sp + 1, &end, 10);
    if (errno != 0 || end != sp + 4 || v < 100 || v > 999)
        return -1;
    *status = (int)v;
    return 0;
}

int gs_healthcheck_run(const char *host, uint16_t port, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    const char *target = host;
    struct addrinfo hints, *res = NULL, *ai;
    char portstr[8], hostport[300], request[512], why[160], line[256];
    int fd = -1, rc, status = 0, result = 1;
    ssize_t got;

    /* A server listening on every address is reached, from inside, through the loopback. */
    if (strcmp(host, "0.0.0.0") == 0)
        target = "127.0.0.1";
    else if (strcmp(host, "::") == 0)
        target = "::1";
    snprintf(hostport, sizeof(hostport), strchr(target, ':') ? "[%s]:%u" : "%s:%u", target,
             (unsigned)port);
    snprintf(why, sizeof(why), "no answer");
    if (port == 0) {
        snprintf(why, sizeof(why),
                 "the listen port is 0 (chosen at start); give the port genserv listens on");
        goto out;
    }

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
    rc = getaddrinfo(target, portstr, &hints, &res);
    if (rc != 0) {
        snprintf(why, sizeof(why), "cannot resolve %s: %s", target, gai_strerror(rc));
        goto out;
    }
    for (ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = connect_one(ai, deadline);
        if (fd < 0)
            snprintf(why, sizeof(why), "cannot connect: %s", strerror(errno));
    }
    if (fd < 0)
        goto out;

    snprintf(request, sizeof(request),
             "GET " GS_HEALTHCHECK_PATH
             " HTTP/1.1\r\nHost: %s\r\nUser-Agent: genserv-health-check\r\n"
             "Connection: close\r\n\r\n",
             hostport);
    if (send_all(fd, request, strlen(request), deadline) < 0) {
        snprintf(why, sizeof(why), "cannot send the request: %s", strerror(errno));
        goto out;
    }
    got = read_status_line(fd, line, sizeof(line), deadline);
    if (got < 0) {
        if (errno == ETIMEDOUT)
            snprintf(why, sizeof(why), "no answer within %d ms", timeout_ms);
        else
            snprintf(why, sizeof(why), "cannot read the answer: %s", strerror(errno));
        goto out;
    }
    if (parse_status(line, &status) < 0) {
        snprintf(why, sizeof(why), "%s", got == 0 ? "closed without an answer" : "not HTTP");
        goto out;
    }
    if (status != 200) {
        snprintf(why, sizeof(why), "answered %d", status);
        goto out;
    }
    result = 0;
out:
    if (fd >= 0)
        close(fd);
    if (res != NULL)
        freeaddrinfo(res);
    if (result == 0)
        printf("healthy: GET http://%s" GS_HEALTHCHECK_PATH " answered 200\n", hostport);
    else
        fprintf(stderr, "genserv: unhealthy: GET http://%s" GS_HEALTHCHECK_PATH ": %s\n", hostport,
                why);
    return result;
}
