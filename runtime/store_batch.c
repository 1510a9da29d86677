/*
 * store_batch.c: the batches of row changes that the runtime, the gateway and the binary hand
 * to a storage backend (genserv/store.h). Backend-neutral: a batch is a growable array of
 * owned keys and values, freed by whoever holds it last (the backend after its done callback).
 */
#include <genserv/genserv.h>
#include <genserv/store.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double GS_STORE_LATENCY_BOUNDS[12] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02,
                                            0.05,   0.1,   0.2,   0.5,   1.0,  5.0};

const unsigned GS_STORE_SIZE_BOUNDS[10] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 1024};

const char *gs_store_table_name(int table)
{
    switch (table) {
#define GS__STORE_TABLE_NAME(sym, id, name, what)                                                  \
    case id:                                                                                       \
        return name;
        GS_STORE_TABLES_MAP(GS__STORE_TABLE_NAME)
#undef GS__STORE_TABLE_NAME
    default:
        return NULL;
    }
}

gs_store_batch_t *gs_store_batch_create(gs_store_done_cb done, void *arg)
{
    gs_store_batch_t *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    b->done = done;
    b->arg = arg;
    return b;
}

/* Append an op whose key is copied and whose val (may be NULL) is taken. */
static int append(gs_store_batch_t *b, int table, bool del, const char *key, char *val, size_t len)
{
    if (b == NULL || key == NULL || gs_store_table_name(table) == NULL) {
        free(val);
        return GS_EINVAL;
    }
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4;
        gs_store_op_t *ops = realloc(b->ops, cap * sizeof(*ops));
        if (ops == NULL) {
            free(val);
            return GS_ENOMEM;
        }
        b->ops = ops;
        b->cap = cap;
    }
    char *k = strdup(key);
    if (k == NULL) {
        free(val);
        return GS_ENOMEM;
    }
    gs_store_op_t *op = &b->ops[b->n++];
    op->table = (uint8_t)table;
    op->del = del;
    op->key = k; /* the batch's now, with val */
    op->val = val;
    op->val_len = len;
    b->bytes += strlen(k) + len;
    return 0;
}

int gs_store_batch_put_owned(gs_store_batch_t *b, int table, const char *key, char *val, size_t len)
{
    if (val == NULL)
        return GS_EINVAL;
    return append(b, table, false, key, val, len);
}

int gs_store_batch_put(gs_store_batch_t *b, int table, const char *key, const char *val, size_t len)
{
    if (val == NULL)
        return GS_EINVAL;
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return GS_ENOMEM;
    memcpy(copy, val, len);
    copy[len] = '\0';
    return append(b, table, false, key, copy, len);
}

int gs_store_batch_delete(gs_store_batch_t *b, int table, const char *key)
{
    return append(b, table, true, key, NULL, 0);
}

void gs_store_batch_destroy(gs_store_batch_t *b)
{
    if (b == NULL)
        return;
    for (size_t i = 0; i < b->n; i++) {
        free(b->ops[i].key);
        free(b->ops[i].val);
    }
    free(b->ops);
    free(b);
}

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

int gs_store_put_wait(gs_store_t *st, int table, const char *key, const char *val, size_t len)
{
    if (st == NULL || key == NULL)
        return GS_EINVAL;
    waiter_t w = {.done = false};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cond, NULL);
    gs_store_batch_t *b = gs_store_batch_create(waiter_done, &w);
    int rc = b == NULL     ? GS_ENOMEM
             : val != NULL ? gs_store_batch_put(b, table, key, val, len)
                           : gs_store_batch_delete(b, table, key);
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

typedef struct meta_read_s {
    const char *key;
    char *val;
    size_t vlen;
    int found;
} meta_read_t;

static bool read_meta(const char *key, const char *val, size_t len, void *arg)
{
    meta_read_t *m = arg;
    if (strcmp(key, m->key) != 0)
        return true;
    snprintf(m->val, m->vlen, "%.*s", (int)len, val);
    m->found = 1;
    return false;
}

int gs_store_meta_get(gs_store_t *st, const char *key, char *val, size_t vlen)
{
    meta_read_t m = {key, val, vlen, 0};
    if (st == NULL || key == NULL || val == NULL || vlen == 0)
        return GS_EINVAL;
    if (st->load(st, GS_STORE_META, read_meta, &m) != 0)
        return GS_ESTORAGE;
    return m.found;
}
