/*
 * access_log.c: the request id every answer carries (X-Request-Id) and the access log's entry
 * for each answered request.
 *
 * A request id comes from the client's X-Request-Id when it is a safe token (1 to
 * GS_REQUEST_ID_MAX letters, digits and -_.:+/=@~, so that it can go into logs and headers
 * unquoted), else it is generated: a per-process random prefix and a counter, "1f2e3d4c-
 * 000000000000002a", unique in the process and unlikely to repeat across processes. It is
 * set on the first handler call (gs__request_id_init) and added to every answer by
 * gs__respond; answers that libmicrohttpd writes itself (a malformed request line) have none.
 *
 * The access log's entry is built in the completed callback, once the exchange is over, and
 * handed to the embedder's callback (gs_gateway_options_t.access_log_cb): the path keeps its
 * query, with the value of access_token (a bearer token, see access.c) redacted.
 */
#include "api_internal.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

#define REDACTED "REDACTED"

int gs__request_id_valid(const char *s)
{
    size_t n;

    if (s == NULL || s[0] == '\0')
        return 0;
    for (n = 0; s[n] != '\0'; n++) {
        char c = s[n];

        if (n >= GS_REQUEST_ID_MAX)
            return 0;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("-_.:+/=@~", c) != NULL))
            return 0;
    }
    return 1;
}

/* The generated ids' prefix: drawn once per gateway. */
static void id_prefix(gs_gateway_t *gw)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char r[4] = {0};
    size_t i;

    if (gw->id_prefix[0] != '\0')
        return;
    if (getrandom(r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
        /* No entropy yet (early boot): the address of the gateway still differs per run
         * under ASLR, and ids stay unique within the process either way. */
        uintptr_t a = (uintptr_t)gw;

        memcpy(r, &a, sizeof(r));
    }
    for (i = 0; i < sizeof(r); i++) {
        gw->id_prefix[2 * i] = hex[r[i] >> 4];
        gw->id_prefix[2 * i + 1] = hex[r[i] & 15];
    }
    gw->id_prefix[8] = '\0';
}

void gs__request_ids_init(gs_gateway_t *gw)
{
    id_prefix(gw);
    atomic_init(&gw->id_next, 1);
}

void gs__request_id_init(gs_request_t *req)
{
    gs_gateway_t *gw = req->gw;
    const char *given = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "X-Request-Id");
    /* Relaxed: the counter only has to hand out distinct values. */
    uint64_t n = atomic_fetch_add_explicit(&gw->id_next, 1, memory_order_relaxed);

    if (gs__request_id_valid(given)) {
        memcpy(req->request_id, given, strlen(given) + 1); /* at most GS_REQUEST_ID_MAX */
        return;
    }
    snprintf(req->request_id, sizeof(req->request_id), "%.8s-%016llx", gw->id_prefix,
             (unsigned long long)n);
}

/* Whether the query key k (klen bytes, as sent) is access_token once percent-decoded, as
 * libmicrohttpd decodes it before access.c looks it up: "%61ccess_token" is one too. */
static bool is_token_key(const char *k, size_t klen)
{
    char key[64];

    if (klen >= sizeof(key))
        return false;
    memcpy(key, k, klen);
    key[klen] = '\0';
    return gs__percent_decode(key) == 0 && strcmp(key, "access_token") == 0;
}

/* target (borrowed) into out (len bytes) with every access_token's value replaced. */
static void redact(const char *target, char *out, size_t len)
{
    const char *q = strchr(target, '?');
    size_t o = 0;

    if (len == 0)
        return;
    if (q == NULL) {
        snprintf(out, len, "%s", target);
        return;
    }
    q++;
    o = (size_t)(q - target) < len - 1 ? (size_t)(q - target) : len - 1;
    memcpy(out, target, o);
    while (*q != '\0' && o + 1 < len) {
        size_t plen = strcspn(q, "&"), klen = strcspn(q, "=&");
        const char *part = q;

        if (q[klen] == '=' && is_token_key(q, klen)) {
            int n = snprintf(out + o, len - o, "access_token=" REDACTED);

            o = n > 0 && (size_t)n < len - o ? o + (size_t)n : len - 1;
        } else {
            size_t k = plen < len - 1 - o ? plen : len - 1 - o;

            memcpy(out + o, part, k);
            o += k;
        }
        q += plen;
        if (*q == '&' && o + 1 < len) {
            out[o++] = '&';
            q++;
        } else if (*q == '&') {
            break;
        }
    }
    out[o] = '\0';
}

void gs__access_log(gs_request_t *req)
{
    gs_gateway_t *gw = req->gw;
    const union MHD_ConnectionInfo *ci;
    char path[2048], client[64] = "-";
    gs_access_entry_t e;

    if (gw->opts.access_log_cb == NULL)
        return;
    redact(req->target != NULL ? req->target : "-", path, sizeof(path));
    ci = MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci != NULL && ci->client_addr != NULL) {
        const struct sockaddr *sa = ci->client_addr;
        socklen_t sl =
            sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);

        if (getnameinfo(sa, sl, client, sizeof(client), NULL, 0, NI_NUMERICHOST) != 0)
            snprintf(client, sizeof(client), "-");
    }
    e.method = req->method_name[0] != '\0' ? req->method_name : "-";
    e.path = path;
    e.status = req->sent_status;
    e.duration_ns = gs__api_now_ns() - req->t_start_ns;
    e.bytes = req->sent_bytes;
    e.client = client;
    e.request_id = req->request_id;
    gw->opts.access_log_cb(&e, gw->opts.access_log_arg);
}
