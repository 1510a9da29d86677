/*
 * cli_http.c: the client's HTTP, with libcurl's easy interface: one request and its whole
 * answer, or an event stream read line by line (GET /events).
 *
 * The token goes in an `Authorization: Bearer` header, never in the URL (proxies log those).
 * libcurl is used without signals (CURLOPT_NOSIGNAL) so that `watch`'s SIGINT handler is the
 * only one; the stream polls the stop flag from libcurl's progress callback, which libcurl
 * calls about once a second even while no byte arrives.
 */
#include "cli.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Connecting must not take long: a wrong --url should fail in seconds, not minutes. */
#define CLI_CONNECT_TIMEOUT_MS 10000L
/* The longest event-stream line kept (a snapshot of many servers is one line). */
#define CLI_MAX_LINE (64u * 1024u * 1024u)

typedef struct buf_s {
    char *data;
    size_t len, cap;
} buf_t;

static int buf_append(buf_t *b, const char *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        char *d;

        while (cap < b->len + n + 1)
            cap *= 2;
        d = realloc(b->data, cap);
        if (d == NULL)
            return -1;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

static size_t body_cb(char *p, size_t size, size_t n, void *arg)
{
    return buf_append(arg, p, size * n) == 0 ? size * n : 0;
}

/* The headers every request carries; a new list (curl_slist_free_all) or NULL. */
static struct curl_slist *base_headers(const gs_cli_conn_t *conn, const char *content_type)
{
    struct curl_slist *h = NULL;
    char line[1024];

    if (conn->token != NULL && conn->token[0] != '\0') {
        snprintf(line, sizeof(line), "Authorization: Bearer %s", conn->token);
        h = curl_slist_append(h, line);
    }
    if (content_type != NULL) {
        snprintf(line, sizeof(line), "Content-Type: %s", content_type);
        h = curl_slist_append(h, line);
    }
    /* curl's default "Expect: 100-continue" on large uploads only adds a round trip. */
    h = curl_slist_append(h, "Expect:");
    return h;
}

static CURL *easy_for(const gs_cli_conn_t *conn, const char *path, char *url, size_t urllen)
{
    CURL *c = curl_easy_init();

    if (c == NULL)
        return NULL;
    snprintf(url, urllen, "%s%s", conn->url, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, CLI_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "genserv-cli/" GS_VERSION);
    return c;
}

static void fill_error(gs_cli_resp_t *resp, CURL *c, int rc, const char *errbuf)
{
    resp->curl_rc = rc;
    if (rc == CURLE_OK || rc == CURLE_ABORTED_BY_CALLBACK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
    if (rc != CURLE_OK)
        snprintf(resp->error, sizeof(resp->error), "%s",
                 errbuf[0] != '\0' ? errbuf : curl_easy_strerror((CURLcode)rc));
}

int gs_cli_http_request(const gs_cli_conn_t *conn, const char *method, const char *path,
                        const char *body, size_t body_len, const char *content_type,
                        long timeout_ms, gs_cli_resp_t *resp)
{
    char url[4096], errbuf[CURL_ERROR_SIZE] = "";
    buf_t b = {NULL, 0, 0};
    struct curl_slist *h;
    CURL *c;
    int rc;

    memset(resp, 0, sizeof(*resp));
    c = easy_for(conn, path, url, sizeof(url));
    if (c == NULL) {
        resp->curl_rc = CURLE_FAILED_INIT;
        snprintf(resp->error, sizeof(resp->error), "libcurl could not start");
        resp->body = calloc(1, 1);
        return resp->curl_rc;
    }
    h = base_headers(conn,
                     body != NULL ? (content_type ? content_type : "application/json") : NULL);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, body_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    if (timeout_ms > 0)
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    rc = (int)curl_easy_perform(c);
    fill_error(resp, c, rc, errbuf);
    if (rc != CURLE_OK)
        resp->status = 0;
    resp->body = b.data != NULL ? b.data : calloc(1, 1);
    resp->body_len = b.len;
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return rc;
}

void gs_cli_resp_close(gs_cli_resp_t *resp)
{
    free(resp->body);
    resp->body = NULL;
}

typedef struct stream_s {
    buf_t line;  /* the current, unfinished line */
    buf_t error; /* the body of a non-200 answer */
    CURL *c;
    long status; /* 0 until the first body byte */
    gs_cli_data_cb data_cb;
    void *arg;
    volatile sig_atomic_t *stop;
    int ended; /* data_cb asked to stop */
} stream_t;

static size_t stream_cb(char *p, size_t size, size_t n, void *arg)
{
    stream_t *s = arg;
    size_t len = size * n;

    if (s->status == 0)
        curl_easy_getinfo(s->c, CURLINFO_RESPONSE_CODE, &s->status);
    if (s->status != 200)
        return buf_append(&s->error, p, len) == 0 ? len : 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] != '\n') {
            if (s->line.len >= CLI_MAX_LINE || buf_append(&s->line, p + i, 1) < 0)
                return 0;
            continue;
        }
        if (s->line.len > 0 && s->line.data[s->line.len - 1] == '\r')
            s->line.data[--s->line.len] = '\0';
        if (s->line.len >= 6 && strncmp(s->line.data, "data: ", 6) == 0 &&
            s->data_cb(s->line.data + 6, s->arg) != 0) {
            s->ended = 1;
            return 0;
        }
        s->line.len = 0;
    }
    return len;
}

static int progress_cb(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    const stream_t *s = arg;

    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return *s->stop != 0;
}

int gs_cli_http_stream(const gs_cli_conn_t *conn, const char *path, gs_cli_data_cb data_cb,
                       void *arg, volatile sig_atomic_t *stop, gs_cli_resp_t *resp)
{
    char url[4096], errbuf[CURL_ERROR_SIZE] = "";
    stream_t s;
    struct curl_slist *h;
    int rc;

    memset(resp, 0, sizeof(*resp));
    memset(&s, 0, sizeof(s));
    s.data_cb = data_cb;
    s.arg = arg;
    s.stop = stop;
    s.c = easy_for(conn, path, url, sizeof(url));
    if (s.c == NULL) {
        resp->curl_rc = CURLE_FAILED_INIT;
        resp->body = calloc(1, 1);
        return resp->curl_rc;
    }
    h = base_headers(conn, NULL);
    curl_easy_setopt(s.c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(s.c, CURLOPT_WRITEFUNCTION, stream_cb);
    curl_easy_setopt(s.c, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(s.c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(s.c, CURLOPT_XFERINFOFUNCTION, progress_cb);
    curl_easy_setopt(s.c, CURLOPT_XFERINFODATA, &s);
    curl_easy_setopt(s.c, CURLOPT_ERRORBUFFER, errbuf);
    rc = (int)curl_easy_perform(s.c);
    /* Stopped by data_cb (a write callback that refused its bytes) is a stop too. */
    if (rc == CURLE_WRITE_ERROR && s.ended)
        rc = CURLE_ABORTED_BY_CALLBACK;
    fill_error(resp, s.c, rc, errbuf);
    if (resp->status == 0)
        resp->status = s.status;
    resp->body = s.error.data != NULL ? s.error.data : calloc(1, 1);
    resp->body_len = s.error.len;
    free(s.line.data);
    curl_slist_free_all(h);
    curl_easy_cleanup(s.c);
    return rc;
}

char *gs_cli_escape(const char *s)
{
    return curl_easy_escape(NULL, s, 0);
}
