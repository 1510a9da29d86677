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

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int gs__persist_wait(gs_gateway_t *gw, int table, const char *key, const json_t *val)
{
    gs_store_t *st = gw->store;
    if (st == NULL)
        return 0;
    char *text = val != NULL ? json_dumps(val, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (val != NULL && text == NULL)
        return GS_ENOMEM;
    int rc = gs_store_put_wait(st, table, key, text, text != NULL ? strlen(text) : 0);
    free(text);
    return rc;
}

int gs__persist_spec(gs_gateway_t *gw, const char *kind, const char *name, json_t *spec)
{
    if (gw->store == NULL) {
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

int gs__persist_timer_key(gs_gateway_t *gw, gs_timer_key_t *key)
{
    gs_store_t *st = gw->store;
    uint8_t *bytes = (uint8_t *)key->k;
    char hex[2 * sizeof(key->k) + 3]; /* as a JSON string: quoted */
    if (st == NULL)
        return 0;
    int found = gs_store_meta_get(st, "timer_key", hex, sizeof(hex));
    if (found < 0)
        return found;
    if (found == 1 && strlen(hex) == 2 * sizeof(key->k) + 2) {
        bool ok = true;
        for (size_t i = 0; ok && i < sizeof(key->k); i++) {
            char two[3] = {hex[1 + 2 * i], hex[2 + 2 * i], '\0'}, *end = NULL;
            unsigned long byte = strtoul(two, &end, 16);
            ok = end == two + 2;
            bytes[i] = (uint8_t)byte;
        }
        if (ok)
            return 0;
    }
    /* None yet (or unreadable): the key drawn already becomes the stored one. */
    hex[0] = '"';
    for (size_t i = 0; i < sizeof(key->k); i++)
        snprintf(hex + 1 + 2 * i, 3, "%02x", bytes[i]);
    hex[1 + 2 * sizeof(key->k)] = '"';
    hex[2 + 2 * sizeof(key->k)] = '\0';
    return gs_store_put_wait(st, GS_STORE_META, "timer_key", hex, strlen(hex));
}
