/*
 * body.c: a request's body as it arrives, bounded per request (max_body_bytes) and in all
 * (max_bodies_bytes: the bytes every request still being received holds at once), so that
 * many clients uploading at the same time cannot make genserv hold more than that. The body
 * is freed as soon as it is decoded (gs__request_decode), so a held call keeps none of it.
 */
#include "api_internal.h"

#include <stdlib.h>
#include <string.h>

/* Give back what req's buffer held of the budget. */
static void release(gs_request_t *req)
{
    /* relaxed: a bound, not a publication (see struct gs_gateway_s) */
    atomic_fetch_sub_explicit(&req->gw->bodies_bytes, req->body_cap, memory_order_relaxed);
    free(req->body);
    req->body = NULL;
    req->body_len = req->body_cap = 0;
}

void gs__body_free(gs_request_t *req)
{
    if (req->body_cap > 0 || req->body != NULL)
        release(req);
}

gs_body_t gs__body_append(gs_request_t *req, const char *data, size_t len)
{
    gs_gateway_t *gw = req->gw;
    size_t limit = gw->opts.max_body_bytes;

    if (len > limit - req->body_len) {
        gs__body_free(req);
        return GS_BODY_TOO_LARGE;
    }
    if (req->body_len + len + 1 > req->body_cap) {
        /* The first chunk is usually the whole body: size it exactly. */
        size_t cap = req->body_cap ? req->body_cap : len + 1;
        char *nb;

        while (cap < req->body_len + len + 1)
            cap *= 2;
        if (cap > limit + 1)
            cap = limit + 1;
        size_t more = cap - req->body_cap;
        if (atomic_fetch_add_explicit(&gw->bodies_bytes, more, memory_order_relaxed) + more >
            gw->opts.max_bodies_bytes) {
            atomic_fetch_sub_explicit(&gw->bodies_bytes, more, memory_order_relaxed);
            gs__body_free(req);
            return GS_BODY_OVER_BUDGET;
        }
        nb = realloc(req->body, cap);
        if (nb == NULL) {
            atomic_fetch_sub_explicit(&gw->bodies_bytes, more, memory_order_relaxed);
            gs__body_free(req); /* sized by input: fail softly */
            return GS_BODY_OVER_BUDGET;
        }
        req->body = nb;
        req->body_cap = cap;
    }
    memcpy(req->body + req->body_len, data, len);
    req->body_len += len;
    req->body[req->body_len] = '\0';
    return GS_BODY_OK;
}
