/*
 * fuzz_store_rows.c: fuzz what genserv reads back from its store at start (docs/durability.md):
 * the rows of every table, as a damaged or hand-edited database could hold them, through the
 * same code a start runs: gs_runtime_create (states, idempotency keys, the largest timer ref),
 * server/boot.c's gs_boot_restore (behaviours, specs of servers, supervisors and children,
 * then gs_runtime_restore_timers), and durable servers restoring their state.
 *
 * Input format (docs/fuzzing.md): records separated by 0x1e; in each, the first byte picks
 * the table (its value mod 6, plus 1: specs, behaviours, states, timers, keys, meta), the bytes
 * up to the first 0x1f are the key and the rest is the value, byte for byte (not necessarily
 * JSON, not necessarily UTF-8). A fake store (below) serves them to load and swallows what is
 * submitted (the runtime deletes rows it cannot read).
 *
 * Each input: a runtime on the fake store with the built-ins and a durable test behaviour,
 * restore, a call to each server that came back (its state must be JSON the gateway can
 * send), destroy. A crash, a leak (ASan) or a hang is a finding; unreadable rows must be
 * skipped with a log line, never trusted.
 */
#include <genserv/builtins.h>
#include <genserv/genserv.h>
#include <genserv/store.h>

#include "../server/boot.h"
#include "fuzz.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ROWS 64

typedef struct row_s {
    int table;
    char *key;
    char *val;
    size_t len;
} row_t;

typedef struct fake_s {
    gs_store_t base;
    row_t rows[MAX_ROWS];
    size_t n;
} fake_t;

/* What is submitted is "committed" by a thread of the fake store's own, as the interface
 * requires (a done callback never runs on the thread that submitted: it holds locks). */
static pthread_mutex_t q_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_cond = PTHREAD_COND_INITIALIZER;
static gs_store_batch_t *q_head, *q_tail;

static void *committer(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&q_mu);
        while (q_head == NULL)
            pthread_cond_wait(&q_cond, &q_mu);
        gs_store_batch_t *b = q_head;
        q_head = b->next;
        if (q_head == NULL)
            q_tail = NULL;
        pthread_mutex_unlock(&q_mu);
        if (b->done != NULL)
            b->done(0, b->arg);
        gs_store_batch_destroy(b);
    }
    return NULL;
}

static int fake_submit(gs_store_t *st, gs_store_batch_t *b)
{
    (void)st;
    b->next = NULL;
    pthread_mutex_lock(&q_mu);
    if (q_tail != NULL)
        q_tail->next = b;
    else
        q_head = b;
    q_tail = b;
    pthread_cond_signal(&q_cond);
    pthread_mutex_unlock(&q_mu);
    return 0;
}

static int by_key(const void *a, const void *b)
{
    const row_t *x = a, *y = b;
    return x->table != y->table ? x->table - y->table : strcmp(x->key, y->key);
}

static int fake_load(gs_store_t *st, int table, gs_store_row_cb cb, void *arg)
{
    fake_t *f = (fake_t *)st;
    for (size_t i = 0; i < f->n; i++)
        if (f->rows[i].table == table && !cb(f->rows[i].key, f->rows[i].val, f->rows[i].len, arg))
            break;
    return 0;
}

static void fake_stats(gs_store_t *st, gs_store_stats_t *out)
{
    (void)st;
    memset(out, 0, sizeof(*out));
}

static const char *fake_last_error(gs_store_t *st)
{
    (void)st;
    return "fuzz";
}

static void fake_destroy(gs_store_t *st)
{
    (void)st;
}

/* A durable behaviour whose state is any JSON: what it restores is what it dumps. */
static int any_init(gs_server_t *self, json_t *args, void **state, json_t **reason)
{
    (void)self;
    (void)reason;
    *state = json_deep_copy(args);
    return 0;
}

static gs_result_t any_call(gs_server_t *self, void *state, json_t *msg, gs_from_t from)
{
    (void)self;
    (void)msg;
    (void)from;
    return GS_REPLY(json_deep_copy(state));
}

static void any_terminate(gs_server_t *self, json_t *reason, void *state)
{
    (void)self;
    (void)reason;
    json_decref(state);
}

static json_t *any_dump(gs_server_t *self, void *state, json_t **reason)
{
    (void)self;
    (void)reason;
    return json_deep_copy(state);
}

static int any_restore(gs_server_t *self, json_t *stored, void **state, json_t **reason)
{
    (void)self;
    (void)reason;
    json_decref(*state);
    *state = json_deep_copy(stored);
    return 0;
}

static const gs_behaviour_t any = {.name = "fuzz_any",
                                   .durable = true,
                                   .init = any_init,
                                   .handle_call = any_call,
                                   .terminate = any_terminate,
                                   .dump_state = any_dump,
                                   .restore = any_restore};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    pthread_t t;
    if (pthread_create(&t, NULL, committer, NULL) != 0)
        abort();
    pthread_detach(t);
    return 0;
}

static void parse(fake_t *f, const uint8_t *data, size_t size)
{
    size_t i = 0;
    while (i < size && f->n < MAX_ROWS) {
        size_t end = i;
        while (end < size && data[end] != 0x1e)
            end++;
        if (end > i) {
            row_t *r = &f->rows[f->n];
            r->table = data[i] % 6 + 1;
            size_t k = i + 1;
            while (k < end && data[k] != 0x1f && data[k] != 0)
                k++;
            r->key = strndup((const char *)data + i + 1, k - (i + 1));
            size_t v = k < end ? k + 1 : end;
            r->len = end - v;
            r->val = malloc(r->len + 1);
            memcpy(r->val, data + v, r->len);
            r->val[r->len] = '\0';
            f->n++;
        }
        i = end + 1;
    }
    qsort(f->rows, f->n, sizeof(*f->rows), by_key); /* load reads in key order */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fake_t f = {.base = {"fuzz", "fuzz", fake_submit, fake_load, fake_stats, fake_last_error,
                         fake_destroy, NULL}};
    parse(&f, data, size);

    gs_runtime_options_t o;
    gs_runtime_options_init(&o);
    o.schedulers = 1;
    o.store = &f.base;
    gs_runtime_t *rt = NULL;
    if (gs_runtime_create(&o, &rt) == 0) {
        gs_builtins_register(rt);
        gs_behaviour_register(rt, &any);
        char err[256];
        gs_boot_restore(rt, NULL, err, sizeof(err));
        /* Every states row's name as a durable server of each kind that can restore it. */
        for (size_t i = 0; i < f.n; i++) {
            if (f.rows[i].table != GS_STORE_STATES)
                continue;
            json_t *why = NULL;
            if (gs_start(rt, f.rows[i].key, &any, NULL, NULL, &why) == 0) {
                json_t *state = NULL;
                if (gs_call(rt, f.rows[i].key, json_string("get"), 2000, &state) == 0) {
                    char *text = json_dumps(state, JSON_ENCODE_ANY);
                    if (text == NULL)
                        abort(); /* a restored state the gateway could not send */
                    free(text);
                }
                json_decref(state);
            }
            json_decref(why);
        }
        gs_runtime_destroy(rt);
    }
    for (size_t i = 0; i < f.n; i++) {
        free(f.rows[i].key);
        free(f.rows[i].val);
    }
    return 0;
}
