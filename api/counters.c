/*
 * counters.c: what the gateway counts as it answers (requests by route, method and status,
 * every route's latency, /call latency), in relaxed atomics that metrics.c reads at scrape time.
 */
#include "api_internal.h"

/* Upper bounds of the latency buckets, in microseconds (the last is +Inf). */
const uint64_t gs__call_bucket_us[GS_METRICS_BUCKETS - 1] = {
    500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000,
};

/* The index of a method bit in the method label's values. */
static unsigned method_index(unsigned method)
{
    switch (method) {
    case GS_METHOD_GET:
        return 0;
    case GS_METHOD_HEAD:
        return 1;
    case GS_METHOD_POST:
        return 2;
    case GS_METHOD_PUT:
        return 3;
    case GS_METHOD_DELETE:
        return 4;
    case GS_METHOD_OPTIONS:
        return 5;
    default:
        return 6;
    }
}

const char *gs__metrics_method(unsigned i)
{
    static const char *const names[GS_METRICS_METHODS] = {"GET",    "HEAD",    "POST", "PUT",
                                                          "DELETE", "OPTIONS", "other"};

    return i < GS_METRICS_METHODS ? names[i] : "other";
}

static size_t bucket_of(uint64_t us)
{
    size_t i;

    for (i = 0; i < GS_METRICS_BUCKETS - 1 && us > gs__call_bucket_us[i]; i++)
        ;
    return i;
}

void gs__metrics_count(gs_metrics_t *m, gs_route_t route, unsigned method, unsigned status,
                       uint64_t ns)
{
    uint64_t us = ns / 1000;

    if (status < GS_METRICS_MIN_STATUS || status >= GS_METRICS_MAX_STATUS ||
        route >= GS_ROUTE_COUNT)
        return;
    /* Relaxed, all: independent tallies (see gs_metrics_t). */
    atomic_fetch_add_explicit(
        &m->requests[route][method_index(method)][status - GS_METRICS_MIN_STATUS], 1,
        memory_order_relaxed);
    atomic_fetch_add_explicit(&m->route_buckets[route][bucket_of(us)], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->route_count[route], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->route_sum_us[route], us, memory_order_relaxed);
}

void gs__metrics_observe_call(gs_metrics_t *m, uint64_t ns)
{
    uint64_t us = ns / 1000;

    /* Relaxed, all: independent tallies (see gs_metrics_t). */
    atomic_fetch_add_explicit(&m->call_buckets[bucket_of(us)], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->call_count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->call_sum_us, us, memory_order_relaxed);
}
