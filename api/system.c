/*
 * system.c: GET /system, the overview an operator reads first (Erlang observer's "System"
 * tab): version, uptime, the schedulers and how busy they are, memory, servers, connections,
 * held calls, event streams and the store's health.
 *
 * Scheduler utilisation is a difference of two readings of each scheduler's idle time
 * (gs_runtime_scheduler_idle): the gateway keeps the last two samples taken at least
 * GS_SYSLOAD_PERIOD_NS apart, and a request reports the busy fraction between the older one
 * and now. So a page polling every second sees the last one to two seconds, and one request
 * after a long quiet spell sees the average since the previous sample (since the start for the
 * first). Everything else is a counter read at request time; nothing here runs per message.
 */
#include "api_internal.h"

#include <genserv/store.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef GS_VERSION
#define GS_VERSION "0.0.0"
#endif

#define GS_SYSLOAD_PERIOD_NS (1000ull * 1000ull * 1000ull)

typedef struct sample_s {
    uint64_t at_ns;
    uint64_t *idle; /* n entries */
} sample_t;

struct gs_sysload_s {
    gs_runtime_t *rt;
    pthread_mutex_t mu; /* guards the samples */
    unsigned n;         /* schedulers */
    sample_t older, newer;
};

gs_sysload_t *gs__sysload_create(gs_runtime_t *rt)
{
    gs_sysload_t *l = calloc(1, sizeof(*l));
    unsigned n = gs_runtime_schedulers(rt);

    if (l == NULL)
        return NULL;
    l->rt = rt;
    l->n = n;
    l->older.idle = calloc(n ? n : 1, sizeof(uint64_t));
    l->newer.idle = calloc(n ? n : 1, sizeof(uint64_t));
    if (l->older.idle == NULL || l->newer.idle == NULL) {
        gs__sysload_destroy(l);
        return NULL;
    }
    /* Both samples start at "now, nothing idle yet": the first requests report since then. */
    l->older.at_ns = l->newer.at_ns = gs__api_now_ns();
    gs_runtime_scheduler_idle(rt, l->older.idle, n);
    gs_runtime_scheduler_idle(rt, l->newer.idle, n);
    pthread_mutex_init(&l->mu, NULL);
    return l;
}

void gs__sysload_destroy(gs_sysload_t *l)
{
    if (l == NULL)
        return;
    if (l->older.idle != NULL && l->newer.idle != NULL)
        pthread_mutex_destroy(&l->mu);
    free(l->older.idle);
    free(l->newer.idle);
    free(l);
}

/* [{"id": i, "utilisation": busy fraction}] over the last one or two sample periods. */
static json_t *schedulers_json(gs_sysload_t *l)
{
    json_t *list = json_array();
    uint64_t *now_idle = calloc(l->n ? l->n : 1, sizeof(uint64_t));
    uint64_t now = gs__api_now_ns();

    if (list == NULL || now_idle == NULL) {
        free(now_idle);
        json_decref(list);
        return NULL;
    }
    gs_runtime_scheduler_idle(l->rt, now_idle, l->n);
    pthread_mutex_lock(&l->mu);
    if (now - l->newer.at_ns >= GS_SYSLOAD_PERIOD_NS) { /* a new sample; the oldest goes */
        sample_t gone = l->older;
        l->older = l->newer;
        l->newer = gone;
        l->newer.at_ns = now;
        memcpy(l->newer.idle, now_idle, l->n * sizeof(uint64_t));
    }
    for (unsigned i = 0; i < l->n; i++) {
        uint64_t span = now - l->older.at_ns;
        uint64_t idle = now_idle[i] - l->older.idle[i];
        double busy = span > 0 ? 1.0 - (double)idle / (double)span : 0.0;

        /* A sleep counted at its end may straddle the sample: clamp to 0..1. */
        busy = busy < 0.0 ? 0.0 : busy > 1.0 ? 1.0 : busy;
        json_array_append_new(list, json_pack("{s:I,s:f}", "id", (json_int_t)i, "utilisation",
                                              (double)(long)(busy * 1000.0 + 0.5) / 1000.0));
    }
    pthread_mutex_unlock(&l->mu);
    free(now_idle);
    return list;
}

/* Resident memory from /proc/self/statm ("size resident ...", in pages), or 0 when it cannot
 * be read. */
static uint64_t rss_bytes(void)
{
    char line[128], *end = NULL;
    unsigned long long resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    long page = sysconf(_SC_PAGESIZE);
    const char *p;

    if (f == NULL)
        return 0;
    p = fgets(line, sizeof(line), f) != NULL ? strchr(line, ' ') : NULL;
    fclose(f);
    if (p == NULL)
        return 0;
    resident = strtoull(p + 1, &end, 10);
    if (end == p + 1)
        return 0;
    return (uint64_t)resident * (uint64_t)(page > 0 ? page : 4096);
}

/* The store's health, or null without one. */
static json_t *store_json(gs_store_t *st)
{
    gs_store_stats_t ss;

    if (st == NULL)
        return json_null();
    memset(&ss, 0, sizeof(ss));
    st->stats(st, &ss);
    return json_pack("{s:b,s:s,s:s?,s:I,s:I}", "healthy", ss.healthy, "path",
                     st->location != NULL ? st->location : "", "durability", st->durability,
                     "commit_lag", (json_int_t)ss.queued, "errors_total", (json_int_t)ss.errors);
}

enum MHD_Result gs__handle_system(gs_request_t *req)
{
    gs_gateway_t *gw = req->gw;
    gs_runtime_stats_t st;
    json_t *scheds = schedulers_json(gw->sysload);
    json_t *body;

    if (scheds == NULL)
        return gs__respond_runtime_error(req, GS_ENOMEM, NULL);
    gs_runtime_stats(gw->rt, &st);
    body = json_pack("{s:s,s:I,s:I,s:o,s:{s:I,s:I},s:I,s:I,s:I,s:I,s:o}", "version", GS_VERSION,
                     "started_at_ms", (json_int_t)gw->started_at_ms, "uptime_ms",
                     (json_int_t)((gs__api_now_ns() - gw->started_ns) / 1000000u), "schedulers",
                     scheds, "memory", "rss_bytes", (json_int_t)rss_bytes(), "servers_bytes",
                     (json_int_t)gs_runtime_memory(gw->rt), "servers", (json_int_t)st.servers,
                     "connections",
                     (json_int_t)atomic_load_explicit(&gw->connections, memory_order_relaxed),
                     "held_calls", (json_int_t)st.held_calls, "event_streams",
                     (json_int_t)gs__sse_subscribers(gw->sse), "store", store_json(gw->store));
    if (body == NULL)
        return gs__respond_runtime_error(req, GS_ENOMEM, NULL);
    return gs__respond_json(req, MHD_HTTP_OK, body);
}
