/*
 * counters.c: what the gateway counts as it answers (requests by route and status, /call
 * latency), in relaxed atomics that metrics.c reads at scrape time.
 */
#include "api_internal.h"

/* Upper bounds of the /call latency buckets, in microseconds (the last is +Inf). */
const uint64_t gs__call_bucket_us[GS_METRICS_BUCKETS - 1] = {
    500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000,
};

void gs__metrics_count(gs_metrics_t *m, gs_route_t route, unsigned status)
{
    if (status >= GS_METRICS_MAX_STATUS || route >= GS_ROUTE_COUNT)
        return;
    atomic_fetch_add_explicit(&m->requests[route][status], 1, memory_order_relaxed);
}

void gs__metrics_observe_call(gs_metrics_t *m, uint64_t ns)
{
    uint64_t us = ns / 1000;
    size_t i;

    for (i = 0; i < GS_METRICS_BUCKETS - 1 && us > gs__call_bucket_us[i]; i++)
        ;
    atomic_fetch_add_explicit(&m->call_buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->call_count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->call_sum_us, us, memory_order_relaxed);
}
