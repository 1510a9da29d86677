/*
 * runtime_internal.h: the structures and functions shared by the runtime's modules, and by
 * nothing else (plugins, builtins and the gateway include genserv.h only).
 *
 * Objects and who owns them:
 *   gs_runtime_t  the caller of gs_runtime_create.
 *   gs__child_t   a named server as its supervisor sees it: name, behaviour, args, options,
 *                 restart history. The registry holds one reference; every incarnation holds
 *                 one. Fields marked "shard lock" are guarded by the registry shard's mutex.
 *   gs_server_t   one incarnation (a pid). Referenced by the child (current), by the run queue
 *                 while scheduled, by handles given out (gs_whereis), by timers aimed at it
 *                 and by held calls. Freed when the last reference goes: any messages still in
 *                 its mailbox then fail.
 *   gs__call_t    one call (the completion primitive): referenced by the mailbox message, by
 *                 the held-call table while a server may still reply, and by the timer thread
 *                 while its timeout is armed.
 *   gs__timer_t   one send_after timer: owned by the timer thread; the timer map only finds it.
 *
 * Who calls whom (scripts/layers.py checks it): runtime.c creates and destroys everything and
 * nothing calls it; supervisor.c starts children and decides after exits (a tree child's exit
 * it sends to its supervisor as a message); tree.c, the supervisors of trees, starts children
 * through supervisor.c and is called by nothing; server.c runs an
 * incarnation; call.c completes calls; sched.c runs servers; timer.c fires nodes through their
 * ops without knowing what they are; registry.c, events.c, introspect.c, pool.c and map.c call
 * nothing above them. The only two-way relationships are real ones: a server dies to its
 * supervisor, which starts servers (server.c <-> supervisor.c); a call is queued in a server,
 * and a server completes calls (server.c <-> call.c); a scheduler runs servers, and a server
 * with work is put on a scheduler (server.c <-> sched.c); a server arms its own timeouts, and
 * a timer delivers to a server (server.c <-> send_after.c); a dying server fires the monitors
 * on it, and a monitor's DOWN is delivered to a server (server.c <-> monitor.c). durable.c is
 * a durable server's output gate, between it and everything it talks to: the server hands it
 * each change and what it said, and the gate sends (server.c), completes the calls
 * (call.c), arms the stored timers (send_after.c) once the store committed, and holds the
 * child it belongs to (supervisor.c), each of which also calls into it.
 */
#ifndef GS_RUNTIME_INTERNAL_H
#define GS_RUNTIME_INTERNAL_H

#include "mpsc.h"
#include "wheel.h"

#include <genserv/genserv.h>
#include <genserv/map.h>

#include <stdatomic.h>
#include <stdbool.h>
#include <uv.h>

#define GS__CACHELINE 64
#define GS__NAME_MAX  255

/* The runtime's clock: monotonic, libuv's high-resolution time. */
static inline uint64_t gs__now_ns(void)
{
    return uv_hrtime();
}

static inline uint64_t gs__now_ms(void)
{
    return uv_hrtime() / 1000000u;
}

/* ---------------------------------------------------------------------------------------- */
/* Messages                                                                                   */
/* ---------------------------------------------------------------------------------------- */

typedef enum gs__msg_kind_e {
    GS__MSG_CAST = 1,
    GS__MSG_INFO,
    GS__MSG_CALL,      /* embedded in a gs__call_t */
    GS__MSG_STOP,      /* embedded in a gs__call_t; payload is the reason */
    GS__MSG_GET_STATE, /* embedded in a gs__call_t */
    GS__MSG_UPGRADE,   /* embedded in a gs__call_t; its arg is a gs__upgrade_req_t */
    GS__MSG_TIMEOUT,   /* a result's timeout; payload: the generation it was armed in */
    /* System messages (:sys), handled even while the server is suspended. */
    GS__MSG_SUSPEND,       /* embedded in a gs__call_t */
    GS__MSG_RESUME,        /* embedded in a gs__call_t */
    GS__MSG_REPLACE_STATE, /* embedded in a gs__call_t; payload is the new state */
    GS__MSG_KILL,          /* wakes a killed server (gs__server_kill); no payload */
} gs__msg_kind_t;

/* Whether a message of this kind is a system message: handled while suspended, in mailbox
 * order otherwise. Calls, casts, infos and a result's timeout wait out a suspension. */
static inline bool gs__msg_is_system(uint8_t kind)
{
    return kind != GS__MSG_CAST && kind != GS__MSG_INFO && kind != GS__MSG_CALL &&
           kind != GS__MSG_TIMEOUT;
}

/* What a few messages carry beside their payload (durable.c): rare, so behind one pointer. */
typedef struct gs__msg_meta_s {
    gs_timer_ref_t tref; /* a stored timer's row: deleted with the change its delivery causes */
    gs_done_cb handled;  /* gs_send_options_t.handled, or NULL */
    void *handled_arg;
    char *key; /* owned: an Idempotency-Key, or NULL */
    char *row; /* owned: a periodic stored timer's next row (its tref's), or NULL: delete */
    size_t row_len;
} gs__msg_meta_t;

typedef struct gs__msg_s {
    gs__qnode_t node;     /* first: the mailbox links through it */
    uint8_t kind;         /* gs__msg_kind_t */
    json_t *payload;      /* owned by the message until it is handled */
    gs__msg_meta_t *meta; /* owned; NULL for almost every message */
} gs__msg_t;

/* Free a message's meta (NULL accepted). Its handled callback, if still there, is not run. */
void gs__msg_meta_free(gs__msg_meta_t *meta);

/* ---------------------------------------------------------------------------------------- */
/* Pools of small records that one thread allocates and another frees (pool.c)                */
/* ---------------------------------------------------------------------------------------- */

typedef enum gs__pool_id_e {
    GS__POOL_MSG,     /* gs__msg_t: cast and info envelopes (calls embed theirs) */
    GS__POOL_CALL,    /* gs__call_t */
    GS__POOL_REQUEST, /* gs_send_request's record (call.c) */
    GS__POOL_COUNT
} gs__pool_id_t;

#define GS__POOL_REQUEST_SIZE (2 * sizeof(void *))

/* A record of the pool's size; never NULL (aborts when out of memory: fixed-size internal
 * records). Any thread. */
void *gs__pool_alloc(gs__pool_id_t id);
/* Give a record back to its pool. Any thread, not necessarily the one that allocated it. */
void gs__pool_free(gs__pool_id_t id, void *r);

static inline gs__msg_t *gs__msg_alloc(void)
{
    gs__msg_t *m = gs__pool_alloc(GS__POOL_MSG);
    m->meta = NULL;
    return m;
}

static inline void gs__msg_free(gs__msg_t *m)
{
    gs__msg_meta_free(m->meta);
    gs__pool_free(GS__POOL_MSG, m);
}

/* ---------------------------------------------------------------------------------------- */
/* Timer nodes: what the timer thread keeps in its wheel                                     */
/* ---------------------------------------------------------------------------------------- */

typedef enum { GS__TCMD_ADD = 1, GS__TCMD_CANCEL } gs__tcmd_op_t;

typedef struct gs__tnode_s gs__tnode_t;
/* What a node is to the timer thread, which knows nothing else about it: a send_after timer
 * (timer.c) or a call's timeout (call.c). All three run on the timer thread (or, at shutdown,
 * on the thread destroying the runtime). */
typedef struct gs__tnode_ops_s {
    void (*fire)(gs_runtime_t *rt, gs__tnode_t *n);     /* its time has come */
    bool (*cancelled)(gs__tnode_t *n);                  /* its ADD can be ignored */
    void (*release)(gs__tnode_t *n);                    /* after its CANCEL */
    void (*shutdown)(gs_runtime_t *rt, gs__tnode_t *n); /* still pending at shutdown */
} gs__tnode_ops_t;

typedef struct gs__tcmd_s {
    gs__qnode_t q;
    uint8_t op; /* gs__tcmd_op_t */
} gs__tcmd_t;

struct gs__tnode_s {
    gs__tcmd_t add;             /* pushed once, when armed */
    gs__tcmd_t cancel;          /* pushed at most once, when completed by someone else */
    gs__wnode_t w;              /* its place in the wheel; due_tick is set before the ADD (the
                                   push publishes it), the rest is the timer thread's */
    const gs__tnode_ops_t *ops; /* static storage */
};

/* The wheel turns in milliseconds of the gs__now_ns clock: a node armed for delay_ms is due at
 * this tick (rounded up: never early). */
static inline uint64_t gs__due_tick(uint64_t delay_ms)
{
    return (gs__now_ns() + 999999u) / 1000000u + delay_ms;
}

/* Milliseconds left before a tick: whole ones (a timer armed for N ms reads N at once), but at
 * least 1 until it has come, then 0. */
static inline int64_t gs__ms_until(uint64_t due_tick)
{
    uint64_t now = gs__now_ns(), due = due_tick * 1000000u;
    if (due <= now)
        return 0;
    return due - now < 1000000u ? 1 : (int64_t)((due - now) / 1000000u);
}

/* ---------------------------------------------------------------------------------------- */
/* Calls                                                                                      */
/* ---------------------------------------------------------------------------------------- */

/* The longest tag the ledger keeps of a held call's message, its NUL included. */
#define GS__TAG_MAX 64

/* The public gs_call_t is this record (genserv.h declares struct gs_call_s). */
typedef struct gs_call_s {
    gs__msg_t msg;         /* while queued in a mailbox */
    _Atomic uint32_t refs; /* see the top of the file */
    _Atomic uint32_t done; /* 0 until completed; the exchange to 1 decides who completes */
    uint64_t id;           /* the from handed to handle_call */
    gs_reply_cb cb;
    void *arg;
    gs__tnode_t tnode;      /* the timeout, if armed */
    int32_t timeout_status; /* what firing the timeout completes with (GS_ETIMEOUT) */
    bool timeout_armed;
    gs_map_node_t held_node; /* in the held-call table (its shard's lock) */
    gs_server_t *holder;     /* the incarnation that may reply; referenced while held */

    /* Who waits, for the open-reply ledger (gs_server_held_json). Written by the caller
     * before the call is queued (the push publishes them), the tag by dispatch_call before
     * the insert (the shard lock publishes it); read under the held table's shard lock. */
    uint64_t since_ns;          /* gs__now_ns() when the call was made */
    uint64_t deadline_tick;     /* the timeout's due tick (gs__due_tick); 0: none */
    gs_server_t *caller_server; /* referenced: the calling server ("server"), or NULL */
    const char *caller_kind;    /* static storage: the kind the caller gave, or NULL */
    bool tagged;                /* tag holds the message's tag */
    char caller[GS_CALLER_MAX]; /* the label the caller gave, or "" */
    char tag[GS__TAG_MAX];
} gs__call_t;

gs__call_t *gs__call_create(gs_runtime_t *rt, uint8_t kind, json_t *payload, gs_reply_cb cb,
                            void *arg);
void gs__call_ref(gs__call_t *c);
void gs__call_unref(gs__call_t *c);
/* Complete c exactly once. result is taken. Returns false (and drops result) if it already
 * was. from_timer: called by the timer thread when the timeout fired. */
bool gs__call_complete(gs_runtime_t *rt, gs__call_t *c, int status, json_t *result,
                       bool from_timer);
/* Copy msg's tag (borrowed: its first element when that is a string, or msg when it is one)
 * into c, for the ledger. Before c is inserted in the held table. */
void gs__call_tag(gs__call_t *c, const json_t *msg);
/* Arm c's timeout (timeout_ms >= 0). Takes a reference for the timer thread. */
void gs__call_arm_timeout(gs_runtime_t *rt, gs__call_t *c, int64_t timeout_ms);

/* The held-call table: calls a server may still answer with gs_reply(). */
void gs__held_insert(gs_runtime_t *rt, gs__call_t *c, gs_server_t *holder);
/* Unlink c if present; drops the table's reference. */
bool gs__held_remove(gs_runtime_t *rt, gs__call_t *c);
/* Tell holder (if its behaviour asked: notify_caller_gone) that call id ended without its
 * reply: ["caller_gone", id] as an info, past the mailbox limit. */
void gs__notify_caller_gone(gs_server_t *holder, uint64_t id);
/* Fail every call held by s with status and reason (borrowed). */
void gs__held_fail_server(gs_runtime_t *rt, gs_server_t *s, int status, json_t *reason);
int gs__held_init(gs_runtime_t *rt);
void gs__held_close(gs_runtime_t *rt);

/* ---------------------------------------------------------------------------------------- */
/* Children (named servers as supervised) and servers (incarnations)                          */
/* ---------------------------------------------------------------------------------------- */

typedef struct gs__child_s {
    gs_map_node_t node; /* in the registry (shard lock) */
    _Atomic uint32_t refs;
    gs_runtime_t *rt;
    /* The code its incarnations start with: changed by an upgrade, on the running thread;
     * read anywhere (release store, acquire loads). */
    _Atomic(const gs_behaviour_t *) b;
    json_t *args;              /* owned */
    gs_start_options_t opts;   /* mailbox_limit resolved */
    gs_server_t *current;      /* shard lock; referenced; NULL when down or stopped */
    json_t *last_crash_reason; /* shard lock */
    json_t *down_reason;       /* shard lock; set when the supervisor gave up */
    _Atomic uint32_t restarts;
    _Atomic uint64_t handled_before; /* messages handled by earlier incarnations */
    _Atomic uint64_t timers;         /* pending send_after timers to it (send_after.c) */
    _Atomic uint64_t timer_bytes;    /* gs_json_size of their messages */
    _Atomic uint64_t stored_timers;  /* those of them with a row in the store */
    bool stopping;                   /* set by the thread running the current incarnation */
    /* In a supervision tree (tree.c), set before the child is registered: the supervisor's
     * incarnation (referenced) that its exits are reported to, or NULL; the registration's id
     * for that supervisor; and whether the child is a supervisor itself. */
    gs_server_t *parent;
    uint64_t tree_gen;
    bool tree;
    struct gs__durable_s *dur; /* owned: set when the child is durable (durable.c) */
    uint64_t *restart_times;   /* ring of opts.max_restarts timestamps (ms), on first crash */
    uint32_t restart_next;
    size_t name_len;
    char name[];
} gs__child_t;

typedef enum gs__status_e {
    GS__STARTING = 0,
    GS__RUNNING,
    GS__DEAD,
} gs__status_t;

/* Two cache lines: what every send touches, and what only the running thread touches. A
 * field read per message by one side must not share a line with a field the other side writes
 * per message, or the line moves between the cores on every message. */
struct gs_server_s { /* NOLINT(clang-analyzer-optin.performance.Padding): see above */
    /* Written (or read per message) by producers. */
    gs__mpsc_t mailbox;
    _Atomic int64_t mailbox_len;
    int64_t mailbox_limit; /* set before the server is visible */
    _Atomic uint32_t refs;
    /* 1 while the server is on a run queue or being run (or during init): producers only
     * schedule it when they flip this from 0 to 1. */
    _Atomic uint8_t scheduled;
    _Atomic uint8_t status; /* gs__status_t */
    /* 1 + the index of the scheduler that ran it last, 0 before its first turn: where a
     * message from outside the schedulers (a timer, an HTTP thread) queues it (sched.c).
     * Written by the scheduler that runs it, only when it moved. */
    _Atomic uint16_t home;
    /* Rare writes from other threads. */
    _Atomic uint8_t killed;         /* a stop's timeout passed: die when the handler returns */
    _Atomic uint8_t mon_closed;     /* dead: monitors made from now on fire at once (monitor.c) */
    _Atomic uint32_t monitors_on;   /* monitors watching this incarnation (monitor.c) */
    _Atomic uint32_t monitors_held; /* monitors this incarnation holds on others (monitor.c) */

    /* Written by the thread running the server. */
    _Alignas(GS__CACHELINE) struct gs_server_s *rq_next; /* run queue link (run queue lock) */
    uint64_t rq_since;                                   /* when queued (run queue lock) */
    gs__mpsc_tail_t mailbox_tail;                        /* the mailbox's consumer cursor */
    gs__child_t *child;                                  /* referenced */
    gs_runtime_t *rt;
    void *state;
    const gs_behaviour_t *b; /* the code this incarnation runs (an upgrade changes it) */
    _Atomic uint64_t handled;
    uint64_t started_ms;
    /* What the last result asked for before the next message (running thread only). */
    json_t *cont;          /* owned: handle_continue's argument, or NULL */
    gs_result_t init_then; /* what init asked for with gs_init_then */
    uint64_t timeout_gen;  /* a result's timeout is pending in this generation (a message
                              since bumps it) ... */
    gs_timer_ref_t timeout_ref;
    _Atomic uint32_t held; /* calls in the held table with this holder */
    bool timeout_armed;    /* ... if this is set */
    bool exited;           /* status is GS__DEAD: the running thread's own copy */
    bool in_init;          /* init is running: gs_init_then applies */
    /* :sys.suspend: written by the running thread only; others read a snapshot (relaxed). */
    _Atomic uint8_t suspended;
    /* Messages popped while suspended that wait for the resume, in order (running thread;
     * still counted in mailbox_len, so the mailbox limit holds). */
    gs__qnode_t *saved_head, *saved_tail;
    int64_t saved_n;
    /* Memory, approximate (introspect.c's gs__server_measure): written by the running thread
     * at its start, at most once a second and when the state is read; others read a snapshot
     * (relaxed). */
    _Atomic uint64_t state_bytes; /* gs_json_size of the state as format_state shows it */
    _Atomic uint64_t msg_bytes;   /* gs_json_size of a message sampled when measuring */
    uint64_t measured_ms;         /* gs__now_ms() of the last measurement (running thread) */
};

/* One server's part of a hot upgrade (upgrade.c, server.c's dispatch_upgrade). */
typedef struct gs__upgrade_req_s {
    struct gs__upgrade_s *up; /* referenced: the whole upgrade */
    gs__child_t *child;       /* referenced */
    int tries;                /* pushes to incarnations that died first */
} gs__upgrade_req_t;

typedef struct gs__upgrade_s {
    _Atomic uint32_t refs;
    _Atomic size_t pending; /* servers still to answer, plus one while posting */
    gs_runtime_t *rt;
    const gs_behaviour_t *from, *to;
    json_t *extra; /* owned; deep-copied for each server */
    gs_upgrade_cb cb;
    void *arg;
    pthread_mutex_t mu; /* guards outcomes */
    json_t *outcomes;
} gs__upgrade_t;

/* The outcome of one server's upgrade, on its thread: result (new reference) {"ok": true} or
 * {"error": reason}. */
json_t *gs__server_upgrade(gs_server_t *s, const gs__upgrade_req_t *req);

gs_server_t *gs__server_create(gs__child_t *child);
/* Run init on the calling thread, then let the server be scheduled. 0 or GS_EINIT. */
int gs__server_init(gs_server_t *s, json_t **reason);
/* Handle up to batch messages, with the run queue's reference (which the turn passes on or
 * gives back); by a scheduler, or inline by a caller outside the runtime (server.c). */
void gs__server_run(gs_server_t *s, unsigned batch);
/* Push a message (its reference moves to the mailbox). Refuses with GS_EOVERLOADED past the
 * limit unless force. Schedules the server if needed. */
int gs__server_push(gs_server_t *s, gs__msg_t *m, bool force);
/* Reserve a mailbox slot before pushing (for calls that arm a timeout in between). */
int gs__server_reserve(gs_server_t *s, bool force);
/* Push into a reserved slot. */
void gs__server_push_reserved(gs_server_t *s, gs__msg_t *m);
/* Mark s dead, run terminate, fail its held and queued calls with fail_status and reason
 * (borrowed), release the state. Runs on the thread running s. */
void gs__server_die(gs_server_t *s, json_t *reason, int fail_status);
/* Arm s's result timeout: a GS__MSG_TIMEOUT of s->timeout_gen after ms (send_after.c). */
int gs__send_timeout(gs_server_t *s, uint64_t ms, gs_timer_ref_t *ref);
/* Send msg (taken) as a cast or info; force ignores the mailbox limit (timers, replies). */
int gs__server_send(gs_server_t *s, uint8_t kind, json_t *msg, bool force);
/* A stop's timeout passed (supervisor.c): mark s killed and wake it; it dies with reason
 * "killed" without terminate when the handler it runs returns. Any thread. */
void gs__server_kill(gs_server_t *s);
/* Fail or drop every message in a dead server's mailbox. */
void gs__server_drain(gs_server_t *s, int status, json_t *reason);
/* Free a message that was never handled; a call in it fails with status/reason (borrowed). */
void gs__msg_discard(gs_runtime_t *rt, gs__msg_t *m, int status, json_t *reason);

/* Another reference on s (a holder exists already, so relaxed). */
static inline gs_server_t *gs__server_ref(gs_server_t *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}
/* Incarnations created and not yet dead (server.c counts them); gs__live_wait returns when
 * there are none, for shutdown. */
void gs__live_add(gs_runtime_t *rt, int delta);
void gs__live_wait(gs_runtime_t *rt);

/* Children (supervisor.c): a named server as its supervisor sees it. */
gs__child_t *gs__child_create(gs_runtime_t *rt, const char *name, size_t name_len,
                              const gs_behaviour_t *b, json_t *args,
                              const gs_start_options_t *opts);
static inline void gs__child_ref(gs__child_t *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed); /* a holder exists already */
}
void gs__child_unref(gs__child_t *c);
/* Take c out of the registry if it is still there, and drop the registry's reference; the
 * caller must hold a reference of its own (c stays valid). */
void gs__child_forget(gs_runtime_t *rt, gs__child_t *c);

/* How a child of a supervision tree is started (tree.c): see gs__child_t's parent. */
typedef struct gs__tree_link_s {
    gs_server_t *parent; /* borrowed (the child takes a reference); NULL at the top */
    uint64_t gen;
    uint32_t restarts; /* its restarts so far, for its status */
    bool tree;         /* the child is a supervisor */
    bool restart;      /* a restart: the event is "restarted", not "started" */
} gs__tree_link_t;
/* gs_start for a supervisor's child (link may be NULL: a plain server). *out (may be NULL)
 * receives the registered child, referenced, on success. */
int gs__start_child(gs_runtime_t *rt, const char *name, const gs_behaviour_t *b, json_t *args,
                    const gs_start_options_t *opts, const gs__tree_link_t *link, json_t **reason,
                    gs__child_t **out);
/* The supervisors' internal behaviour (tree.c); registered nowhere: not startable by name. */
extern const gs_behaviour_t gs__tree_behaviour;

/* Supervision: s died with reason (taken) after a crash (abnormal) or a normal exit. Decides
 * whether to restart, and does it on the calling thread. */
void gs__supervisor_exit(gs_server_t *s, json_t *reason, bool abnormal);
/* true for "normal", "shutdown" and ["shutdown", ...] */
bool gs__reason_is_normal(const json_t *reason);

/* Monitors (monitor.c). s died with reason (borrowed): DOWN to those watching it, and the
 * monitors it held are dropped. On the thread running s, after its status is GS__DEAD. */
void gs__monitors_down(gs_server_t *s, json_t *reason);
int gs__monitors_init(gs_runtime_t *rt);
void gs__monitors_close(gs_runtime_t *rt);

/* Introspection (introspect.c): s's state as inspection may show it (sensitive, redact). New
 * reference. On the thread running s. */
json_t *gs__inspect_state(gs_server_t *s);
/* How often a busy server's memory is measured again (gs__server_measure). */
#define GS__MEASURE_PERIOD_MS 1000u
/* Measure s's state for the memory its status shows: the size of shown (borrowed: the state
 * as an inspection just showed it), or when NULL of format_state's view, which a sensitive
 * server is never asked for (its size then stays 0). The thread running s only. */
void gs__server_measure(gs_server_t *s, const json_t *shown);
/* What one server's messages in its mailbox are estimated to take: mailbox_len times an
 * envelope plus the last sampled message size. */
uint64_t gs__mailbox_bytes(int64_t mailbox_len, uint64_t msg_bytes);
/* The ledger of gs_server_held_json for child (borrowed), its tags redacted when sensitive
 * (call.c, which owns the held-call table). */
json_t *gs__held_json(gs_runtime_t *rt, gs__child_t *child, bool sensitive, size_t limit);

/* ---------------------------------------------------------------------------------------- */
/* Registry: name -> child, a sharded map (registry.c)                                        */
/* ---------------------------------------------------------------------------------------- */

int gs__registry_init(gs_runtime_t *rt);
/* Free the table; release is called on every child still registered. */
void gs__registry_close(gs_runtime_t *rt, void (*release)(gs__child_t *c));
/* Insert child, with a new reference for the registry. A "down" child of that name is
 * replaced: *replaced is then that child, with the registry's reference, which the caller
 * drops (else NULL). 0, GS_EALREADY or GS_ENOMEM. */
int gs__registry_insert(gs_runtime_t *rt, gs__child_t *child, gs__child_t **replaced);
/* Remove child if it is still the one registered under its name: true when it was (the
 * registry's reference is then the caller's to drop). */
bool gs__registry_remove(gs_runtime_t *rt, gs__child_t *child);
/* The current incarnation under name: new reference or NULL. */
gs_server_t *gs__registry_whereis(gs_runtime_t *rt, const char *name);
/* The child under name: new reference or NULL. */
gs__child_t *gs__registry_child(gs_runtime_t *rt, const char *name);
/* Lock/unlock the shard that guards child's "shard lock" fields. */
void gs__child_lock(gs__child_t *c);
void gs__child_unlock(gs__child_t *c);
/* Every child, referenced, in an array the caller frees (unref each). */
gs__child_t **gs__registry_snapshot(gs_runtime_t *rt, size_t *count);

/* ---------------------------------------------------------------------------------------- */
/* Schedulers                                                                                 */
/* ---------------------------------------------------------------------------------------- */

typedef struct gs__sched_s {
    gs_runtime_t *rt;
    unsigned index;
    uv_thread_t thread;
    uv_mutex_t lock;
    uv_cond_t cond;
    gs_server_t *head, *tail; /* run queue (lock) */
    /* The server this scheduler's running server made runnable last (lock): it runs next, on
     * this thread, where the message is in the cache (see sched.c). Not in the queue. */
    gs_server_t *next;
    _Atomic size_t len;          /* run queue length, readable without the lock */
    _Atomic uint64_t head_since; /* when the queue's head was queued, 0: empty (lock; hint) */
    _Atomic uint8_t has_next;    /* next != NULL, readable without the lock */
    _Atomic uint8_t idle;        /* looking for work or asleep (a hint for placement) */
    bool sleeping;               /* lock */
    unsigned next_streak;        /* owner only: turns in a row taken from next */
    _Atomic uint64_t turns;      /* turns run (owner writes; stealers read it to tell a stall) */
    _Atomic uint64_t idle_ns;    /* time slept for want of work (gs_runtime_scheduler_idle) */
    /* Stealer only: per other scheduler, the turn count it had when this one first saw work
     * waiting there, and when (sched.c's stalled). */
    struct gs__sched_seen_s {
        uint64_t turns, since_ns;
    } * seen;
    char pad[GS__CACHELINE];
} gs__sched_t;

int gs__sched_start(gs_runtime_t *rt);
/* Join the scheduler threads. */
void gs__sched_stop(gs_runtime_t *rt);
/* After the timer thread stopped too: release what is still queued, free the schedulers. */
void gs__sched_free(gs_runtime_t *rt);
/* Put s (with a reference for the run queue) at the tail of a run queue: a server that
 * yields, or one scheduled again by its own turn. */
void gs__sched_enqueue(gs_runtime_t *rt, gs_server_t *s);
/* s (with a reference for the run queue) was made runnable by a message: on a scheduler
 * thread it runs next on that thread, else as gs__sched_enqueue. */
void gs__sched_ready(gs_runtime_t *rt, gs_server_t *s);

/* What the current thread is doing, for gs_self(), calling_self and would_block. */
typedef struct gs__tls_s {
    gs__sched_t *sched;       /* set on scheduler threads */
    gs_server_t *current;     /* the server whose callback runs now */
    gs__call_t *current_call; /* the call its handle_call is handling */
    bool runtime_thread;      /* scheduler or timer thread */
    unsigned sends;           /* messages sent by handlers in this thread's current turn */
} gs__tls_t;
extern _Thread_local gs__tls_t gs__tls;

/* ---------------------------------------------------------------------------------------- */
/* Timers                                                                                     */
/* ---------------------------------------------------------------------------------------- */

typedef struct gs__timer_s gs__timer_t;

typedef struct gs__timers_s {
    uv_thread_t thread;
    uv_loop_t loop;
    uv_async_t wake;
    uv_timer_t timer;
    gs__mpsc_t cmds;
    gs__mpsc_tail_t cmds_tail;     /* timer thread only */
    _Atomic uint64_t armed_due_ns; /* when the timer thread will look at its queue next */
    _Atomic int stop;
    gs__wheel_t wheel; /* timer thread only */
} gs__timers_t;

int gs__timers_start(gs_runtime_t *rt);
/* Join the timer thread. */
void gs__timers_stop(gs_runtime_t *rt);
/* After the schedulers are gone: drop pending timers, end pending call timeouts, free. */
void gs__timers_free(gs_runtime_t *rt);
/* Hand a node to the timer thread (ADD) or tell it the node is no longer needed (CANCEL). */
void gs__timers_post(gs_runtime_t *rt, gs__tnode_t *n, gs__tcmd_op_t op);

/* send_after.c: the table of pending send_after timers by reference. */
int gs__send_after_init(gs_runtime_t *rt);
void gs__send_after_close(gs_runtime_t *rt);

/* ---------------------------------------------------------------------------------------- */
/* Events                                                                                     */
/* ---------------------------------------------------------------------------------------- */

void gs__events_init(gs_runtime_t *rt);
void gs__events_close(gs_runtime_t *rt);
void gs__emit(gs_runtime_t *rt, gs_event_type_t type, const gs__child_t *child, json_t *reason);

/* ---------------------------------------------------------------------------------------- */
/* Durable servers (durable.c)                                                               */
/* ---------------------------------------------------------------------------------------- */

typedef struct gs__durable_s gs__durable_t;
/* At gs_runtime_create with a store: read the stored states and keys. 0 or GS_ESTORAGE. */
int gs__durable_init(gs_runtime_t *rt);
void gs__durable_close(gs_runtime_t *rt);
/* Make child durable (its stored state, if any, is what its first incarnation restores).
 * 0, GS_ENOTSUP (no store, or a behaviour that cannot dump and restore), GS_ENOMEM. */
int gs__durable_attach(gs__child_t *child);
/* The child record is freed. */
void gs__durable_detach(gs__child_t *child);
/* The child is gone for good (stopped, not restarted; not at shutdown): delete its stored
 * state and keys. A tree child (keep true) hands its state to the next child of its name. */
void gs__durable_forget(gs__child_t *child, bool keep);
/* In init: restore s's state instead of running init. 1 (restored: *state set), 0 (nothing
 * stored: run init), or -1 with *reason (new, may be NULL) when restore refused. */
int gs__durable_restore(gs_server_t *s, void **state, json_t **reason);
/* After each message, continue and init of a durable server, on its thread: store the state
 * if it changed, and let what the handler sent leave once that committed. Returns a stop
 * reason (new) when the state cannot be dumped, else NULL. s may be dead (exited): then only
 * what the last handler sent is passed on. */
json_t *gs__durable_after(gs_server_t *s);
/* Before each message: roll back to the committed state if a commit failed. A stop reason
 * (new) when that is impossible, else NULL. */
json_t *gs__durable_before(gs_server_t *s);
/* For its status (any thread): whether child is durable, and if so the seq of its last
 * committed state (-1: none yet) and how many changes are not committed yet. */
bool gs__durable_progress(gs__child_t *child, int64_t *committed_seq, uint64_t *lag);
/* The durable server whose callback runs on this thread now (its output is gated), or NULL. */
gs_server_t *gs__durable_current(void);
/* Output gate: what a durable server's callback does leaves after its change commits. Each
 * takes what it is given. The running thread of s only. */
void gs__durable_defer_reply(gs_server_t *s, gs__call_t *c, int status, json_t *reply);
void gs__durable_defer_send(gs_server_t *s, gs_server_t *to, const char *name, uint8_t kind,
                            json_t *msg);
void gs__durable_defer_timer(gs_server_t *s, gs_timer_ref_t ref);
void gs__durable_defer_done(gs_server_t *s, gs_done_cb cb, void *arg, int status);
/* A row change in s's next commit (val taken; NULL deletes). */
void gs__durable_op(gs_server_t *s, int table, const char *key, char *val, size_t len);
/* A row change of its own, when no durable server's commit can carry it (cb may be NULL; it
 * gets GS_ESHUTDOWN, and nothing is written, once the runtime's shutdown closed the store). */
void gs__durable_op_alone(gs_runtime_t *rt, int table, const char *key, char *val, size_t len,
                          gs_done_cb cb, void *arg);
/* send_after.c: after a failed commit rolled a durable server back, arm again its stored
 * timers whose deliveries were undone (their rows are in the store, no longer pending here).
 * Reads the store: an error path only. */
void gs__timers_reload(gs_runtime_t *rt, const char *name);
/* send_after.c: arm a timer whose ADD an output gate held back (a no-op if it was cancelled
 * meanwhile), or cancel it (the commit failed). */
void gs__timer_release(gs_runtime_t *rt, gs_timer_ref_t ref, bool arm);
/* Idempotency keys of a durable server s (its thread): dispatch_call asks before handling c
 * whether it is a retry (then answered: true); a cast or send likewise by its key; and a
 * call's answer is recorded for its key when it is given. */
bool gs__durable_replay_call(gs_server_t *s, gs__call_t *c);
bool gs__durable_replay_send(gs_server_t *s, const char *key);
void gs__durable_answered(gs_server_t *s, gs__call_t *c, const json_t *reply);
/* A handled message's meta: its ack runs (now, or after the commit for a durable server). */
void gs__msg_handled(gs_server_t *s, gs__msg_meta_t *meta, int status);

/* ---------------------------------------------------------------------------------------- */
/* The runtime                                                                                */
/* ---------------------------------------------------------------------------------------- */

/* A registered behaviour and where it comes from (behaviour.c). */
typedef struct gs__behaviour_entry_s {
    const gs_behaviour_t *b; /* borrowed */
    const char *kind;        /* static storage: "c", "builtin", "plugin", "lua" */
} gs__behaviour_entry_t;

struct gs_subscription_s {
    gs_event_cb cb;
    void *arg;
    struct gs_subscription_s *next;
};

#define GS__GONE_SLOTS 8192 /* a power of two */

struct gs_runtime_s {
    gs_runtime_options_t opts;
    gs__sched_t *scheds;
    unsigned nsched;
    _Atomic unsigned rr;       /* round robin, for a server's first turn (sched.c) */
    _Atomic unsigned sleeping; /* schedulers asleep on their condition variable */
    _Atomic int stop_scheds;
    _Atomic int shutting_down;

    gs_shmap_t registry; /* name -> gs__child_t */
    gs_shmap_t held;     /* call id -> gs__call_t a server may still answer */
    _Atomic uint64_t next_call_id;
    gs__timers_t timers;
    gs_shmap_t timer_refs; /* send_after ref -> pending timer (send_after.c) */
    _Atomic uint64_t next_timer_ref;
    gs_shmap_t monitors; /* monitor ref -> gs__monitor_t (monitor.c) */
    _Atomic uint64_t next_monitor_ref;

    uv_mutex_t behaviours_lock;
    gs__behaviour_entry_t *behaviours;
    size_t nbehaviours, behaviours_cap;

    uv_rwlock_t subs_lock;
    struct gs_subscription_s *subs;
    _Atomic unsigned nsubs;

    /* Live incarnations (created and not yet dead), for shutdown. */
    uv_mutex_t live_lock;
    uv_cond_t live_cond;
    _Atomic int64_t live;

    /* The ids of the latest calls whose caller went away (gs_call_abandon), each in the slot
     * of its low bits, so that a reply that comes later is counted as one to a gone caller.
     * Relaxed: a best-effort attribution of a counter, nothing is published through it. */
    _Atomic uint64_t gone[GS__GONE_SLOTS];
    /* The supervisors (tree.c's gs__tree_t list): their decisions and introspection only. */
    uv_mutex_t trees_lock;
    struct gs__tree_s *trees;

    /* Durable servers (durable.c): the states read from the store at start, by name, until
     * a child of that name takes its own. */
    gs_shmap_t restore;
    /* Batches handed to the store and not yet done: shutdown sets durable_closed, then waits
     * for them. A submitter counts itself in first and checks closed second (both seq_cst),
     * so either shutdown waits for its batch or it sees closed and submits nothing. */
    _Atomic int64_t durable_inflight;
    _Atomic int durable_closed;
    /* GS_RUNTIME_STATS_MAP's statistics, relaxed atomics (independent tallies). */
    struct {
#define GS__STATS_ATOMIC(field, kind, help) _Atomic uint64_t field;
        GS_RUNTIME_STATS_MAP(GS__STATS_ATOMIC)
#undef GS__STATS_ATOMIC
    } stats;
};

/* A deep copy of v (NULL stays NULL). The runtime never lets two threads hold references to
 * one json_t at once: jansson's decref reads the count non-atomically and frees without an
 * acquire fence, which ThreadSanitizer rightly reports. Values that cross threads while the
 * runtime keeps them (crash reasons, init args) are copied; messages simply move. */
static inline json_t *gs__json_copy(json_t *v)
{
    return v != NULL ? json_deep_copy(v) : NULL;
}
#endif
