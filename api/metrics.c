/*
 * metrics.c: GET /metrics in the Prometheus text format (version 0.0.4), and the probes:
 * GET /healthz, /livez and /readyz.
 *
 * The gateway counts what it sees (requests by route, method and status, every route's
 * latency, /call latency) in relaxed atomics; everything about servers is read from the
 * runtime at scrape time (gs_servers_json, gs_runtime_stats), and the process_* family from
 * /proc, so there is one source of truth and no second copy to keep in sync.
 *
 * Series count: per-server series exist for at most metrics_max_servers servers (the first by
 * name), and the behaviour label is bounded by the registered behaviours (built-ins, plugins
 * and at most lua_max_behaviours Lua ones), so clients starting servers cannot grow a scrape
 * without bound (docs/API.md, Metrics).
 */
#include "api_internal.h"

#include <genserv/store.h>

#include <dirent.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* A growing text buffer; on allocation failure it stops growing and remembers it. */
typedef struct text_s {
    char *buf;
    size_t len, cap;
    bool failed;
} text_t;

static void put(text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(text_t *t, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (t->failed)
        return;
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = true;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap * 2 + (size_t)n;
        char *nb = realloc(t->buf, cap);
        if (nb == NULL) {
            t->failed = true;
            return;
        }
        t->buf = nb;
        t->cap = cap;
    }
}

/* A label value with \, " and newline escaped, into buf (truncated to len). */
static const char *label(const char *s, char *buf, size_t len)
{
    size_t o = 0;

    for (; s != NULL && *s && o + 3 < len; s++) {
        if (*s == '\\' || *s == '"') {
            buf[o++] = '\\';
            buf[o++] = *s;
        } else if (*s == '\n') {
            buf[o++] = '\\';
            buf[o++] = 'n';
        } else {
            buf[o++] = *s;
        }
    }
    buf[o] = '\0';
    return buf;
}

static void put_family(text_t *t, const char *name, const char *type, const char *help)
{
    put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The per-server families, for the first max servers of the list (sorted by name). */
static void put_servers(text_t *t, json_t *servers, size_t max)
{
    static const struct {
        const char *field, *name, *type, *help;
    } per_server[] = {
        {"mailbox_len", "genserv_server_mailbox_length", "gauge",
         "Messages waiting in the server's mailbox."},
        {"messages_handled", "genserv_server_messages_handled_total", "counter",
         "Messages the server handled, across restarts."},
        {"restarts", "genserv_server_restarts_total", "counter",
         "Times the supervisor restarted the server."},
        {"held_calls", "genserv_server_held_calls", "gauge",
         "Calls the server holds for a deferred reply."},
    };
    json_t *list = json_object_get(servers, "servers");
    char n[600], b[600];
    size_t f, i;
    json_t *s;

    for (f = 0; f < sizeof(per_server) / sizeof(per_server[0]); f++) {
        put_family(t, per_server[f].name, per_server[f].type, per_server[f].help);
        json_array_foreach(list, i, s)
        {
            json_t *v = json_object_get(s, per_server[f].field);

            if (i >= max)
                break;
            if (!json_is_integer(v))
                continue;
            put(t, "%s{server=\"%s\",behaviour=\"%s\"} %lld\n", per_server[f].name,
                label(json_string_value(json_object_get(s, "name")), n, sizeof(n)),
                label(json_string_value(json_object_get(s, "behaviour")), b, sizeof(b)),
                (long long)json_integer_value(v));
        }
    }
    put_family(t, "genserv_server_up", "gauge", "1 when the server is running, else 0.");
    json_array_foreach(list, i, s)
    {
        const char *st = json_string_value(json_object_get(s, "status"));

        if (i >= max)
            break;
        put(t, "genserv_server_up{server=\"%s\",behaviour=\"%s\"} %d\n",
            label(json_string_value(json_object_get(s, "name")), n, sizeof(n)),
            label(json_string_value(json_object_get(s, "behaviour")), b, sizeof(b)),
            st != NULL && strcmp(st, "running") == 0);
    }
}

/* genserv_behaviour_servers{behaviour}: servers by behaviour, every registered behaviour
 * (0 for the unused ones, so that a series does not vanish), whatever metrics_max_servers
 * says; and how many servers the per-server families left out. */
static void put_behaviours(text_t *t, gs_runtime_t *rt, json_t *servers, size_t max)
{
    json_t *list = json_object_get(servers, "servers"), *behaviours = gs_behaviours_json(rt);
    json_t *b, *s;
    size_t i, j, n = json_array_size(list);
    char lb[600];

    put_family(t, "genserv_behaviour_servers", "gauge",
               "Servers running each registered behaviour (restarting and down ones included).");
    json_array_foreach(behaviours, i, b)
    {
        const char *name = json_string_value(json_object_get(b, "name"));
        unsigned long long count = 0;

        if (name == NULL)
            continue;
        json_array_foreach(list, j, s)
        {
            const char *sb = json_string_value(json_object_get(s, "behaviour"));

            count += sb != NULL && strcmp(sb, name) == 0;
        }
        put(t, "genserv_behaviour_servers{behaviour=\"%s\"} %llu\n", label(name, lb, sizeof(lb)),
            count);
    }
    json_decref(behaviours);
    put_family(t, "genserv_metrics_servers_omitted", "gauge",
               "Servers without per-server series because metrics_max_servers were shown.");
    put(t, "genserv_metrics_servers_omitted %zu\n", n > max ? n - max : 0);
}

/* The standard process_* family (as Prometheus' client libraries name it), from /proc. */
static void put_process(text_t *t)
{
    char buf[1024], *p;
    FILE *f;
    unsigned long long utime = 0, stime = 0, start = 0, vsize = 0;
    long long rss = 0;
    long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    struct rlimit rl;
    DIR *d;
    struct dirent *de;
    long fds = 0;

    f = fopen("/proc/self/stat", "r");
    if (f != NULL) {
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);

        buf[n] = '\0';
        fclose(f);
        /* After the command's closing parenthesis (the command may hold spaces and
         * parentheses itself): state is field 3, utime 14, stime 15, starttime 22, vsize 23,
         * rss 24. */
        p = strrchr(buf, ')');
        if (p != NULL) {
            char *save = NULL, *tok;
            int field = 3;

            for (tok = strtok_r(p + 1, " ", &save); tok != NULL && field <= 24;
                 tok = strtok_r(NULL, " ", &save), field++) {
                unsigned long long v = strtoull(tok, NULL, 10);

                if (field == 14)
                    utime = v;
                else if (field == 15)
                    stime = v;
                else if (field == 22)
                    start = v;
                else if (field == 23)
                    vsize = v;
                else if (field == 24)
                    rss = (long long)v;
            }
        }
    }
    if (tick <= 0)
        tick = 100;
    put_family(t, "process_cpu_seconds_total", "counter",
               "Total user and system CPU time spent in seconds.");
    put(t, "process_cpu_seconds_total %.2f\n", (double)(utime + stime) / (double)tick);
    put_family(t, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    put(t, "process_resident_memory_bytes %lld\n", rss * (page > 0 ? page : 4096));
    put_family(t, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
    put(t, "process_virtual_memory_bytes %llu\n", vsize);

    d = opendir("/proc/self/fd");
    if (d != NULL) {
        while ((de = readdir(d)) != NULL)
            fds += de->d_name[0] != '.';
        closedir(d);
        fds--; /* the directory's own descriptor */
    }
    put_family(t, "process_open_fds", "gauge", "Number of open file descriptors.");
    put(t, "process_open_fds %ld\n", fds > 0 ? fds : 0);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        put_family(t, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
        put(t, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
    }

    /* The start time: the boot time (btime in /proc/stat) plus starttime, in clock ticks. */
    f = fopen("/proc/stat", "r");
    if (f != NULL) {
        unsigned long long btime = 0;

        while (fgets(buf, sizeof(buf), f) != NULL)
            if (strncmp(buf, "btime ", 6) == 0) {
                btime = strtoull(buf + 6, NULL, 10);
                break;
            }
        fclose(f);
        if (btime > 0) {
            put_family(t, "process_start_time_seconds", "gauge",
                       "Start time of the process since unix epoch in seconds.");
            put(t, "process_start_time_seconds %.2f\n",
                (double)btime + (double)start / (double)tick);
        }
    }
}

/* genserv_build_info: 1, with what was built in as labels. */
static void put_build_info(text_t *t)
{
    put_family(t, "genserv_build_info", "gauge",
               "1, labelled with genserv's version and the libraries it runs with.");
    put(t,
        "genserv_build_info{version=\"%s\",plugin_abi=\"%u\",libmicrohttpd=\"%s\","
        "jansson=\"%s\"} 1\n",
        GS_VERSION, (unsigned)GS_PLUGIN_ABI_VERSION, MHD_get_version(), JANSSON_VERSION);
}

/* One statistic of GS_RUNTIME_STATS_MAP: genserv_FIELD_total for a counter, genserv_FIELD for
 * a gauge. */
static void put_runtime_stat(text_t *t, const char *field, gs_stat_kind_t kind, const char *help,
                             uint64_t value)
{
    char name[96];

    snprintf(name, sizeof(name), "genserv_%s%s", field, kind == GS_STAT_COUNTER ? "_total" : "");
    put_family(t, name, kind == GS_STAT_COUNTER ? "counter" : "gauge", help);
    put(t, "%s %llu\n", name, (unsigned long long)value);
}

/* The store's counters (docs/durability.md), when there is a store. */
static void put_store(text_t *t, gs_store_t *st)
{
    gs_store_stats_t ss;
    if (st == NULL)
        return;
    st->stats(st, &ss);
    put_family(t, "genserv_store_commits_total", "counter",
               "Transactions the store committed (each carries the changes of many servers).");
    put(t, "genserv_store_commits_total %llu\n", (unsigned long long)ss.commits);
    put_family(t, "genserv_store_changes_total", "counter",
               "Batches committed: one server's state change and the rows that go with it, or "
               "one spec, source or timer row.");
    put(t, "genserv_store_changes_total %llu\n", (unsigned long long)ss.batches);
    put_family(t, "genserv_store_transaction_changes", "histogram",
               "Batches (servers' changes, specs, timer rows) per committed transaction: the "
               "group commit's size.");
    for (size_t i = 0; i < 10; i++) /* cumulative already: see gs_store_stats_t */
        put(t, "genserv_store_transaction_changes_bucket{le=\"%u\"} %llu\n",
            GS_STORE_SIZE_BOUNDS[i], (unsigned long long)ss.size_buckets[i]);
    put(t, "genserv_store_transaction_changes_bucket{le=\"+Inf\"} %llu\n",
        (unsigned long long)ss.commits);
    put(t, "genserv_store_transaction_changes_sum %llu\n", (unsigned long long)ss.batches);
    put(t, "genserv_store_transaction_changes_count %llu\n", (unsigned long long)ss.commits);
    put_family(t, "genserv_store_rows_total", "counter", "Rows written or deleted.");
    put(t, "genserv_store_rows_total %llu\n", (unsigned long long)ss.ops);
    put_family(t, "genserv_store_bytes_total", "counter", "Bytes of keys and values written.");
    put(t, "genserv_store_bytes_total %llu\n", (unsigned long long)ss.bytes);
    put_family(t, "genserv_store_errors_total", "counter",
               "Transactions that failed (disk full, read-only, I/O error): their changes were "
               "refused with storage_unavailable.");
    put(t, "genserv_store_errors_total %llu\n", (unsigned long long)ss.errors);
    put_family(t, "genserv_store_queued_changes", "gauge",
               "Batches submitted and not committed yet.");
    put(t, "genserv_store_queued_changes %llu\n", (unsigned long long)ss.queued);
    put_family(t, "genserv_store_healthy", "gauge", "1 when the last transaction committed.");
    put(t, "genserv_store_healthy %d\n", ss.healthy ? 1 : 0);
    put_family(t, "genserv_store_commit_latency_seconds", "histogram",
               "From a batch's submission to its commit: what a durable reply waits for.");
    for (size_t i = 0; i < 12; i++) /* cumulative already: see gs_store_stats_t */
        put(t, "genserv_store_commit_latency_seconds_bucket{le=\"%g\"} %llu\n",
            GS_STORE_LATENCY_BOUNDS[i], (unsigned long long)ss.latency_buckets[i]);
    put(t, "genserv_store_commit_latency_seconds_bucket{le=\"+Inf\"} %llu\n",
        (unsigned long long)ss.latency_count);
    put(t, "genserv_store_commit_latency_seconds_sum %.6f\n", (double)ss.latency_ns_sum / 1e9);
    put(t, "genserv_store_commit_latency_seconds_count %llu\n",
        (unsigned long long)ss.latency_count);
}

enum MHD_Result gs__handle_metrics(gs_request_t *req)
{
    gs_gateway_t *gw = req->gw;
    gs_metrics_t *m = gw->metrics;
    gs_runtime_stats_t st;
    struct MHD_Response *resp;
    text_t t = {NULL, 0, 0, false};
    json_t *servers;
    uint64_t cum = 0;
    unsigned r, k, s;
    size_t i;

    servers = gs_servers_json(gw->rt);
    gs_runtime_stats(gw->rt, &st);

    t.cap = 16384;
    t.buf = malloc(t.cap);
    if (t.buf == NULL) {
        json_decref(servers);
        return gs__respond_runtime_error(req, GS_ENOMEM, NULL);
    }
    t.buf[0] = '\0';

    put_build_info(&t);
    put_process(&t);
    put_family(&t, "genserv_http_requests_total", "counter",
               "HTTP requests answered, by route, method and status code.");
    for (r = 0; r < GS_ROUTE_COUNT; r++)
        for (k = 0; k < GS_METRICS_METHODS; k++)
            for (s = 0; s < GS_METRICS_STATUSES; s++) {
                uint64_t v = atomic_load_explicit(&m->requests[r][k][s], memory_order_relaxed);

                if (v != 0)
                    put(&t,
                        "genserv_http_requests_total{route=\"%s\",method=\"%s\",code=\"%u\"} "
                        "%llu\n",
                        gs__route_label((gs_route_t)r), gs__metrics_method(k),
                        s + GS_METRICS_MIN_STATUS, (unsigned long long)v);
            }
    put_family(&t, "genserv_http_request_duration_seconds", "histogram",
               "Time from a request line to its answer, by route (a held call's included).");
    for (r = 0; r < GS_ROUTE_COUNT; r++) {
        uint64_t n = atomic_load_explicit(&m->route_count[r], memory_order_relaxed);
        const char *route = gs__route_label((gs_route_t)r);

        if (n == 0)
            continue;
        cum = 0;
        for (i = 0; i < GS_METRICS_BUCKETS; i++) {
            cum += atomic_load_explicit(&m->route_buckets[r][i], memory_order_relaxed);
            if (i < GS_METRICS_BUCKETS - 1)
                put(&t,
                    "genserv_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} "
                    "%llu\n",
                    route, (double)gs__call_bucket_us[i] / 1e6, (unsigned long long)cum);
            else
                put(&t,
                    "genserv_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} "
                    "%llu\n",
                    route, (unsigned long long)cum);
        }
        /* The buckets and the count are read one by one, not at once: a request counted
         * between the reads could make the +Inf bucket differ from _count, which a reader
         * must not see. So _count is the +Inf bucket's value. */
        put(&t, "genserv_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", route,
            (double)atomic_load_explicit(&m->route_sum_us[r], memory_order_relaxed) / 1e6);
        put(&t, "genserv_http_request_duration_seconds_count{route=\"%s\"} %llu\n", route,
            (unsigned long long)cum);
    }
    cum = 0;
    put_family(&t, "genserv_http_open_calls", "gauge",
               "Requests held open waiting for the runtime (calls, stops, state reads).");
    put(&t, "genserv_http_open_calls %u\n", atomic_load_explicit(&gw->held, memory_order_relaxed));
    /* Not MHD_get_daemon_info(gw->daemon): handlers may run before gs_gateway_create has
     * stored the daemon pointer. */
    put_family(&t, "genserv_http_connections", "gauge", "Open HTTP connections.");
    put(&t, "genserv_http_connections %u\n",
        atomic_load_explicit(&gw->connections, memory_order_relaxed));
    put_family(&t, "genserv_http_event_streams", "gauge", "Open GET /events streams.");
    put(&t, "genserv_http_event_streams %u\n", gs__sse_subscribers(gw->sse));
    put_family(&t, "genserv_http_lingering_closes_total", "counter",
               "Connections answered before their request was read whole, then drained before "
               "being closed.");
    put(&t, "genserv_http_lingering_closes_total %llu\n",
        (unsigned long long)gs__linger_count(gw->linger));
    put_family(&t, "genserv_http_wakeups_total", "counter",
               "Connections genserv opened to itself to wake HTTP threads that libmicrohttpd's "
               "epoll loop left asleep with requests to read (after a burst).");
    put(&t, "genserv_http_wakeups_total %llu\n", (unsigned long long)gs__kick_count(gw->kick));
    put_family(&t, "genserv_http_event_streams_too_slow_total", "counter",
               "Event streams ended because their client read more slowly than events came.");
    put(&t, "genserv_http_event_streams_too_slow_total %llu\n",
        (unsigned long long)gs__sse_too_slow(gw->sse));

    put_family(&t, "genserv_call_duration_seconds", "histogram",
               "Time from a complete POST /call request to its answer.");
    for (i = 0; i < GS_METRICS_BUCKETS; i++) {
        cum += atomic_load_explicit(&m->call_buckets[i], memory_order_relaxed);
        if (i < GS_METRICS_BUCKETS - 1)
            put(&t, "genserv_call_duration_seconds_bucket{le=\"%g\"} %llu\n",
                (double)gs__call_bucket_us[i] / 1e6, (unsigned long long)cum);
        else
            put(&t, "genserv_call_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
                (unsigned long long)cum);
    }
    put(&t, "genserv_call_duration_seconds_sum %.6f\n",
        (double)atomic_load_explicit(&m->call_sum_us, memory_order_relaxed) / 1e6);
    put(&t, "genserv_call_duration_seconds_count %llu\n",
        (unsigned long long)atomic_load_explicit(&m->call_count, memory_order_relaxed));

#define GS__STATS_PUT(field, kind, help)                                                           \
    put_runtime_stat(&t, #field, GS_STAT_##kind, help, st.field);
    GS_RUNTIME_STATS_MAP(GS__STATS_PUT)
#undef GS__STATS_PUT
    {
        /* A scan of the held calls: scrapes are rare, and the hot path keeps no such gauge. */
        int64_t oldest = gs_held_oldest_ms(gw->rt);
        put_family(&t, "genserv_held_call_oldest_age_seconds", "gauge",
                   "How long the oldest call a server holds for a deferred reply has waited (0 "
                   "when none is held).");
        put(&t, "genserv_held_call_oldest_age_seconds %.3f\n",
            oldest > 0 ? (double)oldest / 1e3 : 0.0);
    }
    put_store(&t, gw->store);
    put_behaviours(&t, gw->rt, servers, gw->opts.metrics_max_servers);
    put_servers(&t, servers, gw->opts.metrics_max_servers);
    json_decref(servers);

    if (t.failed) {
        free(t.buf);
        return gs__respond_runtime_error(req, GS_ENOMEM, NULL);
    }
    resp = MHD_create_response_from_buffer(t.len, t.buf, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(t.buf);
        return MHD_NO;
    }
    req->sent_bytes = t.len;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    return gs__respond(req, MHD_HTTP_OK, resp);
}

enum MHD_Result gs__handle_healthz(gs_request_t *req)
{
    return gs__respond_json(req, MHD_HTTP_OK, json_pack("{s:b}", "ok", 1));
}

enum MHD_Result gs__handle_livez(gs_request_t *req)
{
    return gs__respond_json(req, MHD_HTTP_OK, json_pack("{s:b}", "ok", 1));
}

enum MHD_Result gs__handle_readyz(gs_request_t *req)
{
    gs_gateway_t *gw = req->gw;
    /* Relaxed: see the struct. */
    unsigned passed = atomic_load_explicit(&gw->ready_checks, memory_order_relaxed);
    bool draining =
        atomic_load_explicit(&gw->draining, memory_order_relaxed) || atomic_load(&gw->closing);
    json_t *checks = json_pack("{s:b,s:b,s:b,s:b}", "store", (passed & GS_READY_STORE) != 0,
                               "behaviours", (passed & GS_READY_BEHAVIOURS) != 0, "servers",
                               (passed & GS_READY_SERVERS) != 0, "accepting", !draining);

    if (checks == NULL)
        return gs__respond_runtime_error(req, GS_ENOMEM, NULL);
    if (draining)
        return gs__respond_json(
            req, MHD_HTTP_SERVICE_UNAVAILABLE,
            json_pack("{s:s,s:s,s:o}", "error", "not_ready", "message",
                      "genserv is shutting down: requests in progress are still answered, send "
                      "new ones elsewhere",
                      "checks", checks));
    if ((passed & GS_READY_ALL) != GS_READY_ALL)
        return gs__respond_json(req, MHD_HTTP_SERVICE_UNAVAILABLE,
                                json_pack("{s:s,s:s,s:o}", "error", "not_ready", "message",
                                          "genserv is starting: the checks marked false are "
                                          "still loading",
                                          "checks", checks));
    return gs__respond_json(req, MHD_HTTP_OK, json_pack("{s:b,s:o}", "ok", 1, "checks", checks));
}
