/*
 * test_durable.c: durable servers in the runtime (runtime/durable.c) against two stores: a
 * fake one that holds every batch until the test lets it commit or fail (so that the output
 * gate can be watched closing and opening), and the real SQLite store in a temporary directory
 * (so that a state, a timer and an idempotency key survive closing everything and reopening).
 *
 * The behaviour under test is "dcount", defined here: a count that casts "inc" and infos
 * "tick" increment; calls "get" (the count), "inc_get" (+1, then the count), "tick_in"
 * ([tick_in, ms]: a send_after of "tick" to itself), "hold" (keeps the caller) and
 * "poison" (the next dump fails); cast "release" answers the held caller with the count.
 */
#include "testutil.h"

#include <genserv/message.h>
#include <genserv/store.h>

#include <stdatomic.h>

#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------------- */
/* The fake store                                                                             */
/* ---------------------------------------------------------------------------------------- */

typedef struct fake_s {
    gs_store_t base;
    pthread_mutex_t mu;
    gs_store_batch_t *head, *tail; /* submitted, not yet done */
    size_t submitted;
    json_t *rows; /* committed: {"TABLE/KEY": VALUE text} */
} fake_t;

static int fake_submit(gs_store_t *st, gs_store_batch_t *b)
{
    fake_t *f = (fake_t *)st;
    pthread_mutex_lock(&f->mu);
    b->next = NULL;
    if (f->tail != NULL)
        f->tail->next = b;
    else
        f->head = b;
    f->tail = b;
    f->submitted++;
    pthread_mutex_unlock(&f->mu);
    return 0;
}

static int fake_load(gs_store_t *st, int table, gs_store_row_cb cb, void *arg)
{
    fake_t *f = (fake_t *)st;
    const char *key;
    json_t *v;
    char prefix[8];
    snprintf(prefix, sizeof(prefix), "%d/", table);
    json_object_foreach(f->rows, key, v)
    {
        if (strncmp(key, prefix, strlen(prefix)) == 0 &&
            !cb(key + strlen(prefix), json_string_value(v), json_string_length(v), arg))
            break;
    }
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
    return "";
}

static void fake_destroy(gs_store_t *st)
{
    (void)st;
}

static size_t fake_pending(fake_t *f)
{
    size_t n = 0;
    pthread_mutex_lock(&f->mu);
    for (gs_store_batch_t *b = f->head; b != NULL; b = b->next)
        n++;
    pthread_mutex_unlock(&f->mu);
    return n;
}

/* Commit (status 0: apply the rows) or fail every batch submitted so far, in order. */
static void fake_finish(fake_t *f, int status)
{
    pthread_mutex_lock(&f->mu);
    gs_store_batch_t *b = f->head;
    f->head = f->tail = NULL;
    pthread_mutex_unlock(&f->mu);
    while (b != NULL) {
        gs_store_batch_t *next = b->next;
        for (size_t i = 0; status == 0 && i < b->n; i++) {
            char key[600];
            snprintf(key, sizeof(key), "%d/%s", b->ops[i].table, b->ops[i].key);
            if (b->ops[i].del)
                json_object_del(f->rows, key);
            else
                json_object_set_new(f->rows, key, json_string(b->ops[i].val));
        }
        if (b->done != NULL)
            b->done(status, b->arg);
        gs_store_batch_destroy(b);
        b = next;
    }
}

static void fake_init(fake_t *f)
{
    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->mu, NULL);
    f->rows = json_object();
    f->base = (gs_store_t){"fake",     "memory",        fake_submit,  fake_load,
                           fake_stats, fake_last_error, fake_destroy, NULL};
}

static void fake_close(fake_t *f)
{
    fake_finish(f, GS_ESTORAGE);
    json_decref(f->rows);
    pthread_mutex_destroy(&f->mu);
}

static const char *fake_row(fake_t *f, int table, const char *key)
{
    char k[600];
    snprintf(k, sizeof(k), "%d/%s", table, key);
    return json_string_value(json_object_get(f->rows, k));
}

static size_t fake_rows(fake_t *f, int table)
{
    size_t n = 0;
    const char *key;
    json_t *v;
    char prefix[8];
    snprintf(prefix, sizeof(prefix), "%d/", table);
    json_object_foreach(f->rows, key, v) n += strncmp(key, prefix, strlen(prefix)) == 0;
    return n;
}

/* ---------------------------------------------------------------------------------------- */
/* dcount                                                                                     */
/* ---------------------------------------------------------------------------------------- */

typedef struct dcount_s {
    json_int_t count;
    bool poison;
    bool holding;
    gs_from_t held;
} dcount_t;

static _Atomic int inits, restores, restoreds;

static int dc_init(gs_server_t *self, json_t *args, void **state, json_t **reason)
{
    (void)self;
    (void)reason;
    dcount_t *d = calloc(1, sizeof(*d));
    d->count = json_integer_value(json_object_get(args, "initial"));
    *state = d;
    atomic_fetch_add(&inits, 1);
    return 0;
}

static gs_result_t dc_call(gs_server_t *self, void *state, json_t *msg, gs_from_t from)
{
    dcount_t *d = state;
    if (gs_msg_is_atom(msg, "get"))
        return GS_REPLY(json_integer(d->count));
    if (gs_msg_is_atom(msg, "inc_get")) {
        d->count++;
        return GS_REPLY(json_integer(d->count));
    }
    if (gs_msg_is_tuple(msg, "tick_in", 2)) {
        gs_timer_ref_t ref = 0;
        gs_send_after_server(self, json_string("tick"),
                             (uint64_t)json_integer_value(json_array_get(msg, 1)), &ref);
        return GS_REPLY(json_integer((json_int_t)ref));
    }
    if (gs_msg_is_atom(msg, "hold")) {
        d->holding = true;
        d->held = from;
        return GS_NOREPLY;
    }
    if (gs_msg_is_atom(msg, "poison")) {
        d->poison = true;
        return GS_REPLY(json_true());
    }
    return GS_REPLY(json_string("unknown"));
}

static gs_result_t dc_cast(gs_server_t *self, void *state, json_t *msg)
{
    dcount_t *d = state;
    (void)self;
    if (gs_msg_is_atom(msg, "inc"))
        d->count++;
    if (gs_msg_is_atom(msg, "release") && d->holding) {
        d->holding = false;
        gs_reply(d->held, json_integer(d->count));
    }
    return GS_NOREPLY;
}

static gs_result_t dc_info(gs_server_t *self, void *state, json_t *msg)
{
    dcount_t *d = state;
    (void)self;
    if (gs_msg_is_atom(msg, "tick"))
        d->count++;
    return GS_NOREPLY;
}

static void dc_terminate(gs_server_t *self, json_t *reason, void *state)
{
    (void)self;
    (void)reason;
    free(state);
}

static json_t *dc_dump(gs_server_t *self, void *state, json_t **reason)
{
    dcount_t *d = state;
    (void)self;
    if (d->poison) {
        *reason = json_string("poisoned");
        return NULL;
    }
    return json_pack("{s:I}", "count", d->count);
}

static int dc_restore(gs_server_t *self, json_t *stored, void **state, json_t **reason)
{
    (void)self;
    json_t *c = json_object_get(stored, "count");
    if (!json_is_integer(c)) {
        *reason = json_string("bad stored state");
        return -1;
    }
    free(*state); /* a rollback replaces the current one */
    dcount_t *d = calloc(1, sizeof(*d));
    d->count = json_integer_value(c);
    *state = d;
    atomic_fetch_add(&restores, 1);
    return 0;
}

static void dc_restored(gs_server_t *self, void *state)
{
    (void)self;
    (void)state;
    atomic_fetch_add(&restoreds, 1);
}

static const gs_behaviour_t dcount = {.name = "dcount",
                                      .init = dc_init,
                                      .handle_call = dc_call,
                                      .handle_cast = dc_cast,
                                      .handle_info = dc_info,
                                      .terminate = dc_terminate,
                                      .dump_state = dc_dump,
                                      .restore = dc_restore,
                                      .restored = dc_restored};

static gs_runtime_t *runtime_with(gs_store_t *st)
{
    gs_runtime_options_t o;
    gs_runtime_t *rt = NULL;
    gs_runtime_options_init(&o);
    o.schedulers = 2;
    o.store = st;
    assert_int_equal(gs_runtime_create(&o, &rt), 0);
    assert_int_equal(gs_behaviour_register(rt, &dcount), 0);
    return rt;
}

static void start_durable(gs_runtime_t *rt, const char *name, const char *args)
{
    gs_start_options_t o;
    gs_start_options_init(&o);
    o.durable = true;
    json_t *a = tu_json(args);
    assert_int_equal(gs_start(rt, name, &dcount, a, &o, NULL), 0);
    json_decref(a);
}

/* An async call's outcome, collected from the runtime's thread. */
typedef struct got_s {
    _Atomic int done;
    int status;
    json_int_t value;
} got_t;

static void got_cb(int status, json_t *result, void *arg)
{
    got_t *g = arg;
    g->status = status;
    g->value = json_integer_value(result);
    json_decref(result);
    atomic_store(&g->done, 1);
}

static void call_async(gs_runtime_t *rt, const char *name, const char *msg, got_t *g)
{
    memset(g, 0, sizeof(*g));
    assert_int_equal(gs_call_async(rt, name, tu_json(msg), 5000, got_cb, g), 0);
}

/* A later fact that shows a message was handled: a call whose reply is gated too comes after
 * it in the mailbox; here the number of batches the store was given. */
static bool submitted_at_least(fake_t *f, size_t n)
{
    pthread_mutex_lock(&f->mu);
    bool ok = f->submitted >= n;
    pthread_mutex_unlock(&f->mu);
    return ok;
}

/* ---------------------------------------------------------------------------------------- */
/* The output gate                                                                            */
/* ---------------------------------------------------------------------------------------- */

/* A reply that follows a state change leaves only once the change committed. */
static void test_reply_waits_for_commit(void **ts)
{
    (void)ts;
    fake_t f;
    fake_init(&f);
    gs_runtime_t *rt = runtime_with(&f.base);
    start_durable(rt, "d", "{\"initial\": 5}");
    TU_WAIT_UNTIL(fake_pending(&f) == 1, TU_WAIT_MS); /* init's state */
    fake_finish(&f, 0);
    assert_string_equal(fake_row(&f, GS_STORE_STATES, "d"), "{\"seq\":1,\"state\":{\"count\":5}}");

    got_t g;
    call_async(rt, "d", "\"inc_get\"", &g);
    TU_WAIT_UNTIL(fake_pending(&f) == 1, TU_WAIT_MS);
    /* Handled, its change submitted, not committed: the caller still waits. */
    assert_int_equal(atomic_load(&g.done), 0);
    fake_finish(&f, 0);
    TU_WAIT_UNTIL(atomic_load(&g.done) == 1, TU_WAIT_MS);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.value, 6);
    assert_string_equal(fake_row(&f, GS_STORE_STATES, "d"), "{\"seq\":2,\"state\":{\"count\":6}}");

    /* A read changes nothing and waits for nothing when nothing is in flight. */
    call_async(rt, "d", "\"get\"", &g);
    TU_WAIT_UNTIL(atomic_load(&g.done) == 1, TU_WAIT_MS);
    assert_int_equal(g.value, 6);
    assert_int_equal(fake_pending(&f), 0);
    gs_runtime_destroy(rt);
    fake_close(&f);
}

/* While a change is in flight, later changes coalesce into one batch, and a read that follows
 * them waits too: it could show what is not committed yet. */
static void test_later_changes_coalesce(void **ts)
{
    (void)ts;
    fake_t f;
    fake_init(&f);
    gs_runtime_t *rt = runtime_with(&f.base);
    start_durable(rt, "d", "null");
    TU_WAIT_UNTIL(fake_pending(&f) == 1, TU_WAIT_MS);
    fake_finish(&f, 0);

    got_t first, read;
    call_async(rt, "d", "\"inc_get\"", &first); /* in flight from now on */
    TU_WAIT_UNTIL(fake_pending(&f) == 1, TU_WAIT_MS);
    for (int i = 0; i < 10; i++)
        assert_int_equal(gs_cast(rt, "d", json_string("inc")), 0);
    call_async(rt, "d", "\"get\"", &read);
    /* The read was handled (its reply is gated): no further batch while one is in flight. */
    TU_WAIT_UNTIL(tu_status_int(rt, "d", "messages_handled") == 12, TU_WAIT_MS);
    assert_int_equal(atomic_load(&read.done), 0);
    assert_int_equal(fake_pending(&f), 1);
    fake_finish(&f, 0); /* the first commits: its reply goes, the ten casts are submitted */
    TU_WAIT_UNTIL(atomic_load(&first.done) == 1, TU_WAIT_MS);
    assert_int_equal(first.value, 1);
    TU_WAIT_UNTIL(fake_pending(&f) == 1, TU_WAIT_MS);
    assert_int_equal(atomic_load(&read.done), 0);
    fake_finish(&f, 0);
    TU_WAIT_UNTIL(atomic_load(&read.done) == 1, TU_WAIT_MS);
    assert_int_equal(read.value, 11);
    /* One row written for the ten casts: the last state, with the last seq. */
    assert_string_equal(fake_row(&f, GS_STORE_STATES, "d"),
                        "{\"seq\":12,\"state\":{\"count\":11}}");
    gs_runtime_destroy(rt);
    fake_close(&f);
}

/* A failed commit fails the replies that waited for it and rolls the server back. */
static void test_failed_commit_rolls_back(void **ts)
{
    (void)ts;
    fake_t f;
    fake_init(&f);
    gs_runtime_t *rt = runtime_with(&f.base);
    start_durable(rt, "d", "{\"initial\": 1}");
    TU_WAIT_UNTIL(fake_pending(&f) == 1, TU_WAIT_MS);
    fake_finish(&f, 0);

    got_t g;
    call_async(rt, "d", "\"inc_get\"", &g);
    TU_WAIT_UNTIL(fake_pending(&f) == 1, TU_WAIT_MS);
    fake_finish(&f, GS_ESTORAGE);
    TU_WAIT_UNTIL(atomic_load(&g.done) == 1, TU_WAIT_MS);
    assert_int_equal(g.status, GS_ESTORAGE);
    /* Rolled back: the increment never happened, and the server still runs. */
    TU_WAIT_UNTIL(atomic_load(&restores) >= 1, TU_WAIT_MS);
    call_async(rt, "d", "\"get\"", &g);
    TU_WAIT_UNTIL(atomic_load(&g.done) == 1, TU_WAIT_MS);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.value, 1);
    assert_true(tu_status_str_is(rt, "d", "status", "running"));
    assert_string_equal(fake_row(&f, GS_STORE_STATES, "d"), "{\"seq\":1,\"state\":{\"count\":1}}");
    gs_runtime_destroy(rt);
    fake_close(&f);
}

/* A caller told of a failed commit that asks again at once: its request must find the server
 * rolled back. The follow-up call is made from inside the failure's callback, while the store's
 * thread is still telling the other waiters. */
typedef struct retry_s {
    gs_runtime_t *rt;
    got_t first, again;
} retry_t;

static void retry_cb(int status, json_t *result, void *arg)
{
    retry_t *r = arg;
    got_cb(status, result, &r->first);
    if (status == GS_ESTORAGE)
        call_async(r->rt, "d", "\"get\"", &r->again);
}

static void test_a_caller_told_of_a_failure_reads_the_rolled_back_state(void **ts)
{
    (void)ts;
    fake_t f;
    fake_init(&f);
    gs_runtime_t *rt = runtime_with(&f.base);
    start_durable(rt, "d", "{\"initial\": 1}");
    TU_WAIT_UNTIL(fake_pending(&f) == 1, TU_WAIT_MS);
    fake_finish(&f, 0);

    for (int round = 0; round < 200; round++) {
        retry_t r = {.rt = rt};
        assert_int_equal(gs_call_async(rt, "d", tu_json("\"inc_get\""), 5000, retry_cb, &r), 0);
        TU_WAIT_UNTIL(fake_pending(&f) == 1, TU_WAIT_MS);
        fake_finish(&f, GS_ESTORAGE);
        TU_WAIT_UNTIL(atomic_load(&r.first.done) == 1, TU_WAIT_MS);
        assert_int_equal(r.first.status, GS_ESTORAGE);
        TU_WAIT_UNTIL(atomic_load(&r.again.done) == 1, TU_WAIT_MS);
        /* Not a second 503 for a change this caller never asked for: the committed count. */
        assert_int_equal(r.again.status, 0);
        assert_int_equal(r.again.value, 1);
    }
    gs_runtime_destroy(rt);
    fake_close(&f);
}

/* A state that cannot be dumped crashes the server with the reason; the store keeps its row. */
static void test_unserializable_state_crashes(void **ts)
{
    (void)ts;
    fake_t f;
    fake_init(&f);
    gs_runtime_t *rt = runtime_with(&f.base);
    start_durable(rt, "d", "{\"initial\": 7}");
    TU_WAIT_UNTIL(fake_pending(&f) == 1, TU_WAIT_MS);
    fake_finish(&f, 0);
    json_t *r = NULL;
    int rc = gs_call(rt, "d", json_string("poison"), 5000, &r);
    assert_int_equal(rc, GS_ECRASHED);
    assert_json_eq(r, "[\"unserializable_state\", \"poisoned\"]");
    json_decref(r);
    /* Restarted from the committed state (7), not from init. */
    tu_wait_running(rt, "d", 1);
    assert_int_equal(tu_call_int(rt, "d", "\"get\""), 7);
    assert_string_equal(fake_row(&f, GS_STORE_STATES, "d"), "{\"seq\":1,\"state\":{\"count\":7}}");
    gs_runtime_destroy(rt);
    fake_close(&f);
}

/* A timer the server starts is stored with the change that made it and armed only after it
 * committed; its row goes with the change its delivery causes. */
static void test_timer_rows(void **ts)
{
    (void)ts;
    fake_t f;
    fake_init(&f);
    gs_runtime_t *rt = runtime_with(&f.base);
    start_durable(rt, "d", "null");
    TU_WAIT_UNTIL(fake_pending(&f) == 1, TU_WAIT_MS);
    fake_finish(&f, 0);
    got_t g;
    call_async(rt, "d", "[\"tick_in\", 0]", &g);
    TU_WAIT_UNTIL(fake_pending(&f) == 1, TU_WAIT_MS);
    /* Not armed yet: a 0 ms timer would have fired and been handled by now otherwise. */
    assert_int_equal(fake_rows(&f, GS_STORE_TIMERS), 0);
    fake_finish(&f, 0);
    assert_int_equal(fake_rows(&f, GS_STORE_TIMERS), 1);
    TU_WAIT_UNTIL(atomic_load(&g.done) == 1, TU_WAIT_MS);
    /* Fired, handled (count 1), and its row deleted in that change's batch. */
    TU_WAIT_UNTIL(fake_pending(&f) == 1, TU_WAIT_MS);
    fake_finish(&f, 0);
    assert_int_equal(fake_rows(&f, GS_STORE_TIMERS), 0);
    assert_string_equal(fake_row(&f, GS_STORE_STATES, "d"), "{\"seq\":2,\"state\":{\"count\":1}}");
    gs_runtime_destroy(rt);
    fake_close(&f);
}

/* A deferred reply from a cast's handler is gated by the cast's commit as well. */
static void test_deferred_reply_gated(void **ts)
{
    (void)ts;
    fake_t f;
    fake_init(&f);
    gs_runtime_t *rt = runtime_with(&f.base);
    start_durable(rt, "d", "null");
    TU_WAIT_UNTIL(fake_pending(&f) == 1, TU_WAIT_MS);
    fake_finish(&f, 0);
    got_t held;
    call_async(rt, "d", "\"hold\"", &held); /* the stored state (the count) does not change */
    assert_int_equal(gs_cast(rt, "d", json_string("inc")), 0);
    assert_int_equal(gs_cast(rt, "d", json_string("release")), 0);
    TU_WAIT_UNTIL(tu_status_int(rt, "d", "messages_handled") == 3, TU_WAIT_MS);
    /* The release's reply shows count 1: it waits for the increment's commit. */
    assert_true(submitted_at_least(&f, 2));
    assert_int_equal(atomic_load(&held.done), 0);
    while (atomic_load(&held.done) == 0) {
        fake_finish(&f, 0);
        tu_sleep_ms(1);
    }
    assert_int_equal(held.status, 0);
    assert_int_equal(held.value, 1);
    gs_runtime_destroy(rt);
    fake_close(&f);
}

/* A retried call with the same Idempotency-Key is answered with the recorded reply and not
 * handled again; a cast's key likewise. */
static void test_idempotency_keys(void **ts)
{
    (void)ts;
    fake_t f;
    fake_init(&f);
    gs_runtime_t *rt = runtime_with(&f.base);
    start_durable(rt, "d", "null");
    TU_WAIT_UNTIL(fake_pending(&f) == 1, TU_WAIT_MS);
    fake_finish(&f, 0);
    gs_call_options_t o;
    gs_call_options_init(&o);
    o.idempotency_key = "k1";
    for (int i = 0; i < 3; i++) {
        got_t g = {0};
        assert_int_equal(gs_call_async_opts(rt, "d", json_string("inc_get"), &o, got_cb, &g, NULL),
                         0);
        while (atomic_load(&g.done) == 0) {
            fake_finish(&f, 0);
            tu_sleep_ms(1);
        }
        assert_int_equal(g.status, 0);
        assert_int_equal(g.value, 1); /* the first answer, every time */
    }
    gs_send_options_t so = {.idempotency_key = "c1"};
    for (int i = 0; i < 3; i++)
        assert_int_equal(gs_cast_opts(rt, "d", json_string("inc"), &so), 0);
    got_t g;
    call_async(rt, "d", "\"get\"", &g);
    while (atomic_load(&g.done) == 0) {
        fake_finish(&f, 0);
        tu_sleep_ms(1);
    }
    assert_int_equal(g.value, 2);
    assert_int_equal(fake_rows(&f, GS_STORE_KEYS), 2);
    gs_runtime_destroy(rt);
    fake_close(&f);
}

/* ---------------------------------------------------------------------------------------- */
/* The SQLite store: everything closed and opened again                                       */
/* ---------------------------------------------------------------------------------------- */

static char *temp_dir(void)
{
    char tmpl[] = "/tmp/gs_durable_XXXXXX";
    char *dir = mkdtemp(tmpl);
    assert_non_null(dir);
    return strdup(dir);
}

static void remove_dir(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_sqlite_restart(void **ts)
{
    (void)ts;
    char *dir = temp_dir();
    char err[512];
    gs_store_t *st = NULL;
    assert_int_equal(gs_store_sqlite_open(dir, GS_DURABILITY_PROCESS, &st, err, sizeof(err)), 0);
    gs_runtime_t *rt = runtime_with(st);
    start_durable(rt, "d", "{\"initial\": 100}");
    for (int i = 0; i < 5; i++)
        assert_int_equal(tu_call_int(rt, "d", "\"inc_get\""), 101 + i);
    /* A timer an hour away, stored; and one key. */
    json_t *ref = NULL;
    assert_int_equal(gs_call(rt, "d", tu_json("[\"tick_in\", 3600000]"), 5000, &ref), 0);
    json_decref(ref);
    gs_call_options_t o;
    gs_call_options_init(&o);
    o.idempotency_key = "once";
    got_t g = {0};
    assert_int_equal(gs_call_async_opts(rt, "d", json_string("inc_get"), &o, got_cb, &g, NULL), 0);
    TU_WAIT_UNTIL(atomic_load(&g.done) == 1, TU_WAIT_MS);
    assert_int_equal(g.value, 106);
    gs_runtime_destroy(rt);
    st->destroy(st);

    int inits_before = atomic_load(&inits), restoreds_before = atomic_load(&restoreds);
    assert_int_equal(gs_store_sqlite_open(dir, GS_DURABILITY_POWER, &st, err, sizeof(err)), 0);
    rt = runtime_with(st);
    start_durable(rt, "d", "{\"initial\": 100}");
    assert_int_equal(atomic_load(&inits), inits_before); /* restored, not initialised */
    assert_int_equal(atomic_load(&restoreds), restoreds_before + 1);
    assert_int_equal(tu_call_int(rt, "d", "\"get\""), 106);
    json_t *report = NULL;
    assert_int_equal(gs_runtime_restore_timers(rt, &report), 0);
    assert_json_eq(report, "{\"restored\": 1, \"overdue\": 0, \"skipped\": 0, \"unreadable\": 0}");
    json_decref(report);
    /* The key's answer came back too: a retry is not applied again. */
    memset(&g, 0, sizeof(g));
    assert_int_equal(gs_call_async_opts(rt, "d", json_string("inc_get"), &o, got_cb, &g, NULL), 0);
    TU_WAIT_UNTIL(atomic_load(&g.done) == 1, TU_WAIT_MS);
    assert_int_equal(g.value, 106);
    assert_int_equal(tu_call_int(rt, "d", "\"get\""), 106);
    /* Stopping it for good deletes its row: a new server of that name starts afresh. */
    assert_int_equal(gs_stop(rt, "d", NULL, 5000), 0);
    gs_runtime_destroy(rt);
    st->destroy(st);
    assert_int_equal(gs_store_sqlite_open(dir, GS_DURABILITY_PROCESS, &st, err, sizeof(err)), 0);
    rt = runtime_with(st);
    start_durable(rt, "d", "{\"initial\": 100}");
    assert_int_equal(tu_call_int(rt, "d", "\"get\""), 100);
    gs_runtime_destroy(rt);
    st->destroy(st);
    remove_dir(dir);
    free(dir);
}

/* Refusals: durable without a store, or for a behaviour that cannot be stored; a second
 * process on one data dir; a file that is not a database. */
static void test_refusals(void **ts)
{
    (void)ts;
    gs_runtime_t *rt = runtime_with(NULL);
    gs_start_options_t o;
    gs_start_options_init(&o);
    o.durable = true;
    assert_int_equal(gs_start(rt, "d", &dcount, NULL, &o, NULL), GS_ENOTSUP);
    gs_runtime_destroy(rt);

    char *dir = temp_dir();
    char err[512];
    gs_store_t *st = NULL, *second = NULL;
    assert_int_equal(gs_store_sqlite_open(dir, GS_DURABILITY_PROCESS, &st, err, sizeof(err)), 0);
    rt = runtime_with(st);
    assert_int_equal(gs_builtins_register(rt), 0);
    gs_behaviour_t plain = dcount;
    plain.name = "plain";
    plain.dump_state = NULL;
    assert_int_equal(gs_behaviour_register(rt, &plain), 0);
    assert_int_equal(gs_start(rt, "p", &plain, NULL, &o, NULL), GS_ENOTSUP);
    /* The file is this process's alone while it runs. */
    assert_int_equal(gs_store_sqlite_open(dir, GS_DURABILITY_PROCESS, &second, err, sizeof(err)),
                     GS_ESTORAGE);
    assert_non_null(strstr(err, "genserv.db"));
    gs_runtime_destroy(rt);
    st->destroy(st);

    /* Not a database: refused at open, naming the file. */
    char path[600];
    snprintf(path, sizeof(path), "%s/genserv.db", dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    for (int i = 0; i < 200; i++)
        fputs("this is not an SQLite database, but it is long enough to look at. ", fp);
    fclose(fp);
    unlink(strcat(strcpy(err, path), "-wal"));
    assert_int_equal(gs_store_sqlite_open(dir, GS_DURABILITY_PROCESS, &st, err, sizeof(err)),
                     GS_ESTORAGE);
    assert_non_null(strstr(err, "genserv.db"));
    remove_dir(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reply_waits_for_commit),
        cmocka_unit_test(test_later_changes_coalesce),
        cmocka_unit_test(test_failed_commit_rolls_back),
        cmocka_unit_test(test_a_caller_told_of_a_failure_reads_the_rolled_back_state),
        cmocka_unit_test(test_unserializable_state_crashes),
        cmocka_unit_test(test_timer_rows),
        cmocka_unit_test(test_deferred_reply_gated),
        cmocka_unit_test(test_idempotency_keys),
        cmocka_unit_test(test_sqlite_restart),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
