/*
 * sqlite.c: the embedded store (genserv/store.h) on SQLite in WAL mode, with one thread that
 * group-commits.
 *
 * API:
 *   gs_store_sqlite_open  open or create DIR/genserv.db, take it for this process alone
 *                         (locking_mode=EXCLUSIVE: a second genserv on the same directory is
 *                         refused at start), make the schema, start the thread.
 *   submit                append a batch to the queue and wake the thread. Never touches the
 *                         database, so a scheduler thread never waits for the disk.
 *   the thread            takes every queued batch at once, writes them in one transaction,
 *                         commits, then runs their done callbacks in order. While it commits,
 *                         the next batches queue up: under load a transaction carries as many
 *                         batches as arrived during the previous commit (group commit).
 *   load                  reads one table in key order (start-up), under the database lock.
 *   destroy               commits what is queued, joins the thread, closes.
 * A failed transaction is rolled back whole; every batch in it is told GS_ESTORAGE, and the
 * next transaction tries again (a disk that was full may have room now).
 *
 * One table holds every row: kv(tab, key, val), WITHOUT ROWID so a row is stored once, in its
 * primary key's b-tree. What each table's values are is the runtime's business.
 */
#include <genserv/genserv.h>
#include <genserv/store.h>

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define SCHEMA_VERSION "1"

typedef struct sqlite_store_s {
    gs_store_t base; /* first: the public table */
    char *path;
    sqlite3 *db;
    pthread_mutex_t db_lock; /* the connection: the thread's transactions and load */
    sqlite3_stmt *put, *del, *begin, *commit, *rollback;

    pthread_t thread;
    pthread_mutex_t q_lock;
    pthread_cond_t q_cond;
    gs_store_batch_t *head, *tail; /* q_lock */
    bool stop;                     /* q_lock */

    pthread_mutex_t stats_lock;
    gs_store_stats_t stats; /* stats_lock */
    char last_error[256];   /* stats_lock */
} sqlite_store_t;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------------------------------------- */
/* The thread                                                                                 */
/* ---------------------------------------------------------------------------------------- */

static int apply(sqlite_store_t *s, const gs_store_op_t *op)
{
    sqlite3_stmt *st = op->del ? s->del : s->put;
    sqlite3_bind_int(st, 1, op->table);
    sqlite3_bind_text(st, 2, op->key, -1, SQLITE_STATIC);
    if (!op->del)
        sqlite3_bind_text(st, 3, op->val, (int)op->val_len, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int step_reset(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Write every batch of list in one transaction. SQLITE_OK or the failing code. */
static int commit_list(sqlite_store_t *s, gs_store_batch_t *list, uint64_t *ops, uint64_t *bytes)
{
    int rc = step_reset(s->begin);
    for (gs_store_batch_t *b = list; rc == SQLITE_OK && b != NULL; b = b->next) {
        for (size_t i = 0; rc == SQLITE_OK && i < b->n; i++)
            rc = apply(s, &b->ops[i]);
        *ops += b->n;
        *bytes += b->bytes;
    }
    if (rc == SQLITE_OK)
        rc = step_reset(s->commit);
    if (rc != SQLITE_OK && sqlite3_get_autocommit(s->db) == 0)
        step_reset(s->rollback);
    return rc;
}

static void *store_thread(void *arg)
{
    sqlite_store_t *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->q_lock);
        while (s->head == NULL && !s->stop)
            pthread_cond_wait(&s->q_cond, &s->q_lock);
        gs_store_batch_t *list = s->head;
        s->head = s->tail = NULL;
        bool stop = s->stop;
        pthread_mutex_unlock(&s->q_lock);
        if (list == NULL && stop)
            break;

        uint64_t ops = 0, bytes = 0;
        pthread_mutex_lock(&s->db_lock);
        int rc = commit_list(s, list, &ops, &bytes);
        char why[200] = "";
        if (rc != SQLITE_OK)
            snprintf(why, sizeof(why), "%s: %s", s->path, sqlite3_errmsg(s->db));
        pthread_mutex_unlock(&s->db_lock);

        uint64_t done_ns = now_ns(), nb = 0;
        pthread_mutex_lock(&s->stats_lock);
        for (gs_store_batch_t *b = list; b != NULL; b = b->next) {
            nb++;
            uint64_t lat = done_ns - b->submitted_ns;
            s->stats.latency_ns_sum += lat;
            s->stats.latency_count++;
            for (size_t i = 0; i < 12; i++)
                if ((double)lat <= GS_STORE_LATENCY_BOUNDS[i] * 1e9)
                    s->stats.latency_buckets[i]++;
        }
        s->stats.queued -= nb;
        if (rc == SQLITE_OK) {
            for (size_t i = 0; i < 10; i++)
                if (nb <= GS_STORE_SIZE_BOUNDS[i])
                    s->stats.size_buckets[i]++;
            s->stats.commits++;
            s->stats.batches += nb;
            s->stats.ops += ops;
            s->stats.bytes += bytes;
            s->stats.healthy = true;
        } else {
            s->stats.errors++;
            s->stats.healthy = false;
            snprintf(s->last_error, sizeof(s->last_error), "%s", why);
        }
        pthread_mutex_unlock(&s->stats_lock);
        if (rc != SQLITE_OK)
            fprintf(stderr, "genserv: store: a commit failed (%s); its writes were refused\n", why);

        while (list != NULL) {
            gs_store_batch_t *next = list->next;
            if (list->done != NULL)
                list->done(rc == SQLITE_OK ? 0 : GS_ESTORAGE, list->arg);
            gs_store_batch_destroy(list);
            list = next;
        }
    }
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* The interface                                                                              */
/* ---------------------------------------------------------------------------------------- */

static int sqlite_submit(gs_store_t *st, gs_store_batch_t *b)
{
    sqlite_store_t *s = (sqlite_store_t *)st;
    if (b == NULL)
        return GS_EINVAL;
    b->next = NULL;
    b->submitted_ns = now_ns();
    pthread_mutex_lock(&s->q_lock);
    if (s->stop) {
        pthread_mutex_unlock(&s->q_lock);
        gs_store_batch_destroy(b);
        return GS_ESHUTDOWN;
    }
    if (s->tail != NULL)
        s->tail->next = b;
    else
        s->head = b;
    s->tail = b;
    pthread_cond_signal(&s->q_cond);
    pthread_mutex_unlock(&s->q_lock);
    pthread_mutex_lock(&s->stats_lock);
    s->stats.queued++;
    pthread_mutex_unlock(&s->stats_lock);
    return 0;
}

static int sqlite_load(gs_store_t *st, int table, gs_store_row_cb cb, void *arg)
{
    sqlite_store_t *s = (sqlite_store_t *)st;
    sqlite3_stmt *q = NULL;
    int rc = GS_ESTORAGE;

    pthread_mutex_lock(&s->db_lock);
    if (sqlite3_prepare_v2(s->db, "SELECT key, val FROM kv WHERE tab = ?1 ORDER BY key", -1, &q,
                           NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_int(q, 1, table);
    int step;
    while ((step = sqlite3_step(q)) == SQLITE_ROW) {
        const char *key = (const char *)sqlite3_column_text(q, 0);
        const char *val = (const char *)sqlite3_column_text(q, 1);
        size_t len = (size_t)sqlite3_column_bytes(q, 1);
        if (key == NULL || val == NULL)
            continue; /* a NULL cannot be written by submit: not ours */
        if (!cb(key, val, len, arg))
            break;
    }
    rc = step == SQLITE_ROW || step == SQLITE_DONE ? 0 : GS_ESTORAGE;
    if (rc != 0) {
        pthread_mutex_lock(&s->stats_lock);
        snprintf(s->last_error, sizeof(s->last_error), "%s: %s", s->path, sqlite3_errmsg(s->db));
        pthread_mutex_unlock(&s->stats_lock);
    }
out:
    sqlite3_finalize(q);
    pthread_mutex_unlock(&s->db_lock);
    return rc;
}

static void sqlite_stats(gs_store_t *st, gs_store_stats_t *out)
{
    sqlite_store_t *s = (sqlite_store_t *)st;
    pthread_mutex_lock(&s->stats_lock);
    *out = s->stats;
    pthread_mutex_unlock(&s->stats_lock);
}

static const char *sqlite_last_error(gs_store_t *st)
{
    sqlite_store_t *s = (sqlite_store_t *)st;
    return s->last_error; /* written under stats_lock; a torn read only garbles a message */
}

static void close_db(sqlite_store_t *s)
{
    sqlite3_finalize(s->put);
    sqlite3_finalize(s->del);
    sqlite3_finalize(s->begin);
    sqlite3_finalize(s->commit);
    sqlite3_finalize(s->rollback);
    sqlite3_close(s->db);
}

static void free_store(sqlite_store_t *s)
{
    pthread_mutex_destroy(&s->db_lock);
    pthread_mutex_destroy(&s->q_lock);
    pthread_cond_destroy(&s->q_cond);
    pthread_mutex_destroy(&s->stats_lock);
    free(s->path);
    free(s);
}

static void sqlite_destroy(gs_store_t *st)
{
    sqlite_store_t *s = (sqlite_store_t *)st;
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->q_lock);
    s->stop = true;
    pthread_cond_signal(&s->q_cond);
    pthread_mutex_unlock(&s->q_lock);
    pthread_join(s->thread, NULL);
    close_db(s);
    free_store(s);
}

/* ---------------------------------------------------------------------------------------- */
/* Opening                                                                                    */
/* ---------------------------------------------------------------------------------------- */

static int exec(sqlite_store_t *s, const char *sql)
{
    return sqlite3_exec(s->db, sql, NULL, NULL, NULL);
}

/* The schema version stored in the file, or the one we write into a new file. */
static int check_schema(sqlite_store_t *s, char *err, size_t errlen)
{
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(s->db, "SELECT val FROM kv WHERE tab = ?1 AND key = 'schema'", -1,
                                &q, NULL);
    if (rc != SQLITE_OK)
        goto sqlerr;
    sqlite3_bind_int(q, 1, GS_STORE_META);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(q, 0);
        if (v == NULL || strcmp(v, SCHEMA_VERSION) != 0) {
            fail(err, errlen, "%s: schema version %s, this genserv reads version %s", s->path,
                 v != NULL ? v : "(none)", SCHEMA_VERSION);
            sqlite3_finalize(q);
            return GS_ESTORAGE;
        }
        sqlite3_finalize(q);
        return 0;
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE)
        goto sqlerr;
    rc = sqlite3_exec(s->db,
                      "INSERT INTO kv(tab, key, val) VALUES (6, 'schema', '" SCHEMA_VERSION "')",
                      NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        return 0;
sqlerr:
    fail(err, errlen, "%s: %s", s->path, sqlite3_errmsg(s->db));
    return GS_ESTORAGE;
}

int gs_store_sqlite_open(const char *dir, gs_durability_t durability, gs_store_t **out, char *err,
                         size_t errlen)
{
    if (out != NULL)
        *out = NULL;
    if (dir == NULL || *dir == '\0' || out == NULL) {
        fail(err, errlen, "no data directory given");
        return GS_ESTORAGE;
    }
    /* Messages name the database file, as every later one does, and say what is wrong. */
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fail(err, errlen, "%s/genserv.db: cannot create its directory %s: %s", dir, dir,
             strerror(errno));
        return GS_ESTORAGE;
    }
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        fail(err, errlen, "%s/genserv.db: %s is not a directory", dir, dir);
        return GS_ESTORAGE;
    }
    sqlite_store_t *s = calloc(1, sizeof(*s));
    size_t plen = strlen(dir) + sizeof("/genserv.db");
    if (s == NULL || (s->path = malloc(plen)) == NULL) {
        free(s);
        fail(err, errlen, "out of memory");
        return GS_ESTORAGE;
    }
    snprintf(s->path, plen, "%s/genserv.db", dir);
    pthread_mutex_init(&s->db_lock, NULL);
    pthread_mutex_init(&s->q_lock, NULL);
    pthread_cond_init(&s->q_cond, NULL);
    pthread_mutex_init(&s->stats_lock, NULL);
    s->stats.healthy = true;

    int rc = sqlite3_open_v2(
        s->path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK)
        goto sqlerr;
    sqlite3_extended_result_codes(s->db, 1);
    /* The file is ours alone while we run; WAL so that a commit is one append (and one fsync
     * of the log with synchronous=FULL), checkpoints in the background of later commits. */
    if ((rc = exec(s, "PRAGMA locking_mode=EXCLUSIVE")) != SQLITE_OK)
        goto sqlerr;
    sqlite3_stmt *jm = NULL;
    if ((rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &jm, NULL)) != SQLITE_OK)
        goto sqlerr;
    rc = sqlite3_step(jm);
    const char *mode = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(jm, 0) : NULL;
    bool wal = mode != NULL && strcmp(mode, "wal") == 0;
    sqlite3_finalize(jm);
    if (rc != SQLITE_ROW)
        goto sqlerr;
    if (!wal) {
        fail(err, errlen, "%s: cannot switch to WAL mode (is the directory writable?)", s->path);
        goto failed;
    }
    if ((rc = exec(s, durability == GS_DURABILITY_POWER ? "PRAGMA synchronous=FULL"
                                                        : "PRAGMA synchronous=NORMAL")) !=
        SQLITE_OK)
        goto sqlerr;
    if ((rc = exec(s, "CREATE TABLE IF NOT EXISTS kv(tab INTEGER NOT NULL, key TEXT NOT NULL, "
                      "val TEXT NOT NULL, PRIMARY KEY(tab, key)) WITHOUT ROWID")) != SQLITE_OK)
        goto sqlerr;
    if (check_schema(s, err, errlen) != 0)
        goto failed;
    if ((rc = sqlite3_prepare_v2(s->db,
                                 "INSERT OR REPLACE INTO kv(tab, key, val) VALUES (?1, ?2, ?3)", -1,
                                 &s->put, NULL)) != SQLITE_OK ||
        (rc = sqlite3_prepare_v2(s->db, "DELETE FROM kv WHERE tab = ?1 AND key = ?2", -1, &s->del,
                                 NULL)) != SQLITE_OK ||
        (rc = sqlite3_prepare_v2(s->db, "BEGIN IMMEDIATE", -1, &s->begin, NULL)) != SQLITE_OK ||
        (rc = sqlite3_prepare_v2(s->db, "COMMIT", -1, &s->commit, NULL)) != SQLITE_OK ||
        (rc = sqlite3_prepare_v2(s->db, "ROLLBACK", -1, &s->rollback, NULL)) != SQLITE_OK)
        goto sqlerr;

    s->base.name = "sqlite";
    s->base.location = s->path;
    s->base.durability = durability == GS_DURABILITY_POWER ? "power" : "process";
    s->base.submit = sqlite_submit;
    s->base.load = sqlite_load;
    s->base.stats = sqlite_stats;
    s->base.last_error = sqlite_last_error;
    s->base.destroy = sqlite_destroy;
    if (pthread_create(&s->thread, NULL, store_thread, s) != 0) {
        fail(err, errlen, "%s: cannot start the store's thread", s->path);
        goto failed;
    }
    *out = &s->base;
    return 0;

sqlerr:
    if (rc == SQLITE_BUSY || (rc & 0xff) == SQLITE_BUSY)
        fail(err, errlen, "%s: in use by another process (is another genserv running on it?)",
             s->path);
    else
        fail(err, errlen, "%s: %s", s->path,
             s->db != NULL ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
failed:
    close_db(s);
    free_store(s);
    return GS_ESTORAGE;
}
