/*
 * persist.c: what the gateway writes to the store (genserv/store.h) so that what clients
 * started and uploaded comes back after a restart: the specs of servers and supervisors started
 * over HTTP (and children added to a supervisor), the sources of uploaded behaviours, and the
 * key that signs timer references (so that a client's reference still works after a restart).
 *
 * API:
 *   gs__persist_wait   one row put or deleted, committed before it returns: for the control
 *                      operations (start, stop, upload), whose acknowledgement must mean
 *                      "committed". It waits on the HTTP thread for one group commit (a WAL
 *                      append, plus an fsync with --durability power): these operations are
 *                      rare next to calls and casts, which never wait here.
 *   gs__persist_spec   the row of a server, a supervisor or a supervisor's added child:
 *                      {"kind", "ord", "spec"}; ord orders them as they were started.
 *   gs__persist_timer_key  load the signing key, or store a new one.
 * Without a store every function is a no-op that succeeds.
 */
#include "api_internal.h"

#include <genserv/store.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct waiter_s {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool done;
    int status;
} waiter_t;

static void waiter_done(int status, void *arg)
{
    waiter_t *w = arg;
    pthread_mutex_lock(&w->mu);
    w->done = true;
    w->status = status;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

int gs__persist_wait(gs_gateway_t *gw, int table, const char *key, const json_t *val)
{
    gs_store_t *st = gs_runtime_store(gw->rt);
    if (st == NULL)
        return 0;
    waiter_t w = {.done = false};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cond, NULL);
    gs_store_batch_t *b = gs_store_batch_create(waiter_done, &w);
    int rc = b == NULL ? GS_ENOMEM : 0;
    if (rc == 0 && val != NULL) {
        char *text = json_dumps(val, JSON_COMPACT | JSON_ENCODE_ANY);
        rc = text == NULL ? GS_ENOMEM
                          : gs_store_batch_put_owned(b, table, key, text, strlen(text));
    } else if (rc == 0) {
        rc = gs_store_batch_delete(b, table, key);
    }
    if (rc != 0) {
        gs_store_batch_destroy(b);
        goto out;
    }
    if ((rc = st->submit(st, b)) != 0)
        goto out; /* submit freed b without running it */
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cond, &w.mu);
    rc = w.status;
    pthread_mutex_unlock(&w.mu);
out:
    pthread_cond_destroy(&w.cond);
    pthread_mutex_destroy(&w.mu);
    return rc;
}

int gs__persist_spec(gs_gateway_t *gw, const char *kind, const char *name, json_t *spec)
{
    if (gs_runtime_store(gw->rt) == NULL) {
        json_decref(spec);
        return 0;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    /* Microseconds since the epoch: later starts sort later, across restarts too. */
    json_int_t ord = (json_int_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    json_t *row = json_pack("{s:s, s:I, s:o}", "kind", kind, "ord", ord, "spec", spec);
    if (row == NULL)
        return GS_ENOMEM;
    int rc = gs__persist_wait(gw, GS_STORE_SPECS, name, row);
    json_decref(row);
    return rc;
}

typedef struct stored_key_s {
    uint8_t k[sizeof(((gs_timer_key_t *)0)->k)];
    bool loaded;
} stored_key_t;

static bool read_key(const char *key, const char *val, size_t len, void *arg)
{
    stored_key_t *k = arg;
    if (strcmp(key, "timer_key") != 0)
        return true;
    json_t *v = json_loadb(val, len, JSON_DECODE_ANY, NULL);
    const char *hex = json_string_value(v);
    if (hex != NULL && strlen(hex) == 2 * sizeof(k->k)) {
        bool ok = true;
        for (size_t i = 0; ok && i < sizeof(k->k); i++) {
            unsigned byte;
            ok = sscanf(hex + 2 * i, "%2x", &byte) == 1;
            k->k[i] = (uint8_t)byte;
        }
        k->loaded = ok;
    }
    json_decref(v);
    return false;
}

int gs__persist_timer_key(gs_gateway_t *gw, gs_timer_key_t *key)
{
    gs_store_t *st = gs_runtime_store(gw->rt);
    if (st == NULL)
        return 0;
    stored_key_t stored = {.loaded = false};
    if (st->load(st, GS_STORE_META, read_key, &stored) != 0)
        return GS_ESTORAGE;
    if (stored.loaded) {
        memcpy(key->k, stored.k, sizeof(key->k));
        return 0;
    }
    const uint8_t *bytes = (const uint8_t *)key->k;
    char hex[2 * sizeof(key->k) + 1];
    for (size_t i = 0; i < sizeof(key->k); i++)
        snprintf(hex + 2 * i, 3, "%02x", bytes[i]);
    json_t *v = json_string(hex);
    int rc = gs__persist_wait(gw, GS_STORE_META, "timer_key", v);
    json_decref(v);
    return rc;
}
