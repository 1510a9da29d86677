/*
 * genserv/store.h: the narrow interface between the runtime and a storage backend.
 *
 * The runtime knows nothing of SQL: it builds batches of row changes (put a key's value,
 * delete a key) in a handful of tables and hands each batch to the store, which commits it
 * asynchronously with the batches of other servers in one transaction (group commit) and then
 * runs the batch's done callback. At start, the runtime and the binary read the rows back.
 * A backend is a struct of function pointers (gs_store_t); the SQLite backend
 * (gs_store_sqlite_open, library genserv_store) is the embedded default, and a backend for
 * several nodes (PostgreSQL) is a second implementation of the same table.
 *
 * Ownership: a batch belongs to whoever holds it; gs_store_t.submit takes it (even when it
 * fails) and frees it after its done callback ran. Keys and values are copied in.
 *
 * Threads: submit may be called from any thread and never blocks on the disk; done callbacks
 * run on the store's own thread, one after the other, in submission order. load runs on the
 * calling thread and is meant for start-up.
 */
#ifndef GENSERV_STORE_H
#define GENSERV_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * XX(SYMBOL, id, name, what): the tables. Values are JSON texts; see docs/durability.md for
 * the shape of each.
 */
#define GS_STORE_TABLES_MAP(XX)                                                                    \
    XX(SPECS, 1, "specs", "servers and supervisors started over HTTP, by name")                    \
    XX(BEHAVIOURS, 2, "behaviours", "uploaded Lua behaviours' sources, by name")                   \
    XX(STATES, 3, "states", "durable servers' last committed states, by name")                     \
    XX(TIMERS, 4, "timers", "durable servers' pending timers, by reference")                       \
    XX(KEYS, 5, "keys", "recorded answers of idempotent requests, by server and key")              \
    XX(META, 6, "meta", "the store's own settings (schema version, secrets)")

typedef enum gs_store_table_e {
#define GS__STORE_TABLE_ENUM(sym, id, name, what) GS_STORE_##sym = id,
    GS_STORE_TABLES_MAP(GS__STORE_TABLE_ENUM)
#undef GS__STORE_TABLE_ENUM
        GS_STORE_TABLE_MAX
} gs_store_table_t;

/** The name of a table ("states"), or NULL for an unknown one. Static storage. */
const char *gs_store_table_name(int table);

/** One row change of a batch. */
typedef struct gs_store_op_s {
    uint8_t table; /* gs_store_table_t */
    bool del;      /* delete the key (val is NULL) instead of putting val */
    char *key;     /* owned by the batch */
    char *val;     /* owned by the batch; NUL-terminated, val_len bytes before the NUL */
    size_t val_len;
} gs_store_op_t;

typedef struct gs_store_batch_s gs_store_batch_t;
typedef struct gs_store_s gs_store_t;
/**
 * A batch committed (status 0) or not (status GS_ESTORAGE: nothing of it was written).
 * Runs on the store's thread; must not block. arg: as given to gs_store_batch_create.
 */
typedef void (*gs_store_done_cb)(int status, void *arg);

struct gs_store_batch_s {
    gs_store_batch_t *next; /* the backend's queue link */
    gs_store_op_t *ops;
    size_t n, cap;
    size_t bytes;          /* keys and values, for statistics */
    uint64_t submitted_ns; /* set by submit, for the commit latency */
    gs_store_done_cb done; /* may be NULL */
    void *arg;
};

/** A new empty batch whose done (may be NULL) gets arg. NULL when out of memory. */
gs_store_batch_t *gs_store_batch_create(gs_store_done_cb done, void *arg);
/** Put table/key = val (len bytes; both copied). 0 or GS_ENOMEM (the batch is unchanged). */
int gs_store_batch_put(gs_store_batch_t *b, int table, const char *key, const char *val,
                       size_t len);
/** As gs_store_batch_put, val taken (a malloc'd NUL-terminated text), even on failure. */
int gs_store_batch_put_owned(gs_store_batch_t *b, int table, const char *key, char *val,
                             size_t len);
/** Delete table/key (a missing key is no error). 0 or GS_ENOMEM. */
int gs_store_batch_delete(gs_store_batch_t *b, int table, const char *key);
/** Free a batch that was not submitted. Accepts NULL. */
void gs_store_batch_destroy(gs_store_batch_t *b);

/**
 * Put table/key = val (len bytes; NULL deletes the key) in a batch of its own, submit it and
 * wait until it committed. For rare writes off the hot path (start-up, uploads, starts over
 * HTTP); never on a scheduler thread, nor on the store's own. key and val borrowed.
 * @return 0, GS_ESTORAGE, GS_ESHUTDOWN, GS_ENOMEM.
 */
int gs_store_put_wait(gs_store_t *st, int table, const char *key, const char *val, size_t len);

/**
 * The META row key (borrowed), read into val (vlen bytes with its NUL): 1 when found, 0 when
 * absent (val untouched), GS_ESTORAGE when the table cannot be read. Start-up.
 */
int gs_store_meta_get(gs_store_t *st, const char *key, char *val, size_t vlen);

/** One stored row, for load: key and val are borrowed for the callback's duration. Return
 *  false to stop. */
typedef bool (*gs_store_row_cb)(const char *key, const char *val, size_t len, void *arg);

/** What a store has done since it opened (all monotonic but `healthy`). */
typedef struct gs_store_stats_s {
    uint64_t commits;             /* transactions committed */
    uint64_t batches;             /* batches committed (one per server change, at most) */
    uint64_t ops;                 /* rows put or deleted */
    uint64_t bytes;               /* bytes of keys and values written */
    uint64_t errors;              /* transactions that failed */
    uint64_t latency_ns_sum;      /* sum over batches done of submit -> done */
    uint64_t latency_count;       /* batches done (committed or failed) */
    uint64_t latency_buckets[12]; /* of those, the ones done within GS_STORE_LATENCY_BOUNDS[i]
                                     seconds (cumulative, as Prometheus buckets are) */
    uint64_t queued;              /* batches submitted and not yet done (a gauge) */
    /* Transactions that carried at most GS_STORE_SIZE_BOUNDS[i] batches (cumulative). */
    uint64_t size_buckets[10];
    bool healthy; /* the last transaction committed (or none failed yet) */
} gs_store_stats_t;

/** The upper bounds (seconds) of latency_buckets, for a Prometheus histogram. */
extern const double GS_STORE_LATENCY_BOUNDS[12];
/** The upper bounds (batches per transaction) of size_buckets. */
extern const unsigned GS_STORE_SIZE_BOUNDS[10];

/** A storage backend. Every function pointer is set. */
struct gs_store_s {
    const char *name;     /* "sqlite" */
    const char *location; /* the database file, for messages */
    /**
     * Commit b (taken, even on failure) with other batches in one transaction, on the store's
     * thread; then run b->done with 0, or with GS_ESTORAGE when the transaction failed. Any
     * thread; never waits for the disk.
     * @return 0, or GS_ESHUTDOWN after close (b->done does not run).
     */
    int (*submit)(struct gs_store_s *st, gs_store_batch_t *b);
    /** Every row of table to cb, in key order; the calling thread. 0 or GS_ESTORAGE. */
    int (*load)(struct gs_store_s *st, int table, gs_store_row_cb cb, void *arg);
    /** Statistics into *out. Any thread. */
    void (*stats)(struct gs_store_s *st, gs_store_stats_t *out);
    /** The last error's text (static or the store's own storage; "" if none). */
    const char *(*last_error)(struct gs_store_s *st);
    /** Commit what is queued, stop the thread, close and free. Not from the store's thread. */
    void (*destroy)(struct gs_store_s *st);
    /* What a commit survives: "process" or "power" (--durability), or NULL when the backend
     * does not say (static storage; GET /system shows it). Last, so that a backend written
     * before it, which initialises the members above in order, leaves it NULL. */
    const char *durability;
};

/** --durability: what a committed write survives. */
typedef enum gs_durability_e {
    GS_DURABILITY_PROCESS = 0, /* the process dying (SQLite synchronous=NORMAL in WAL mode) */
    GS_DURABILITY_POWER,       /* the machine losing power too (synchronous=FULL) */
} gs_durability_t;

/**
 * Open (creating if needed) the SQLite store in directory dir (created if missing, mode 0700)
 * as dir/genserv.db, in WAL mode, and start its thread.
 * @param dir borrowed.
 * @param out receives the store (the caller's; free with (*out)->destroy(*out)).
 * @param err receives a message naming the file on failure (errlen bytes, may be 0).
 * @return 0 or GS_ESTORAGE.
 */
int gs_store_sqlite_open(const char *dir, gs_durability_t durability, gs_store_t **out, char *err,
                         size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
