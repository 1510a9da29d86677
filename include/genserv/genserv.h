/*
 * genserv.h: the one public header of the genserv actor runtime.
 *
 * The runtime hosts many named GenServers on a small, fixed pool of scheduler threads (M:N),
 * in the image of Elixir's GenServer. A server is a name, a behaviour (a struct of callbacks),
 * the state its init created, a bounded mailbox and some counters. A scheduler thread runs one
 * server at a time, one message at a time, and moves on after a bounded batch.
 *
 * Vocabulary (Elixir on the left, this header on the right):
 *   GenServer.start_link/3      gs_start()               GenServer.stop/3   gs_stop()
 *   GenServer.call/3            gs_call(), gs_call_async()
 *   GenServer.cast/2            gs_cast()                send/2            gs_send()
 *   Process.send_after/3        gs_send_after()          Process.whereis/1 gs_whereis()
 *   Process.cancel_timer/1      gs_cancel_timer()        Process.read_timer/1 gs_read_timer()
 *   GenServer.reply/2           gs_reply()               :sys.get_state/1  gs_get_state()
 *   :gen_server.send_request/2  gs_send_request()
 *   Process.monitor/1           gs_monitor()             Process.demonitor/1 gs_demonitor()
 *   :sys.suspend/1              gs_suspend_async()       :sys.resume/1     gs_resume_async()
 *   :sys.replace_state/2        gs_replace_state_async()
 *   {:reply, r, s}              GS_REPLY(r)              {:noreply, s}     GS_NOREPLY
 *   {:stop, reason, s}          GS_STOP(reason)          {:stop, reason, r, s}
 * GS_STOP_REPLY(reason, r)
 *
 * Messages, replies, reasons and states are jansson values (json_t). Every prototype below says
 * for each json_t whether it is
 *   - borrowed: the callee does not keep it; the caller still owns its reference;
 *   - taken:    the callee owns the caller's reference from then on, even when it fails
 *               (it accepts NULL where noted), like jansson's *_new functions;
 *   - new:      the caller receives a reference it must json_decref().
 * A message moves, it is never shared: after gs_cast(rt, name, msg) the sender must not touch
 * msg again. To send one value many times, send a json_deep_copy() each time. (json_incref()
 * of an immutable value works on real hardware, since jansson counts atomically, but its
 * decref frees without an acquire fence, so ThreadSanitizer reports two threads holding one
 * value; the runtime itself never does that.)
 *
 * Errors: functions that can fail return 0 or a negative GS_E* code; gs_strerror() and
 * gs_err_name() describe them. Functions returning a pointer return NULL on failure. An
 * asynchronous function that fails up front never invokes its callback.
 *
 * Threads: every function here may be called from any thread, including from inside a
 * callback, unless its comment says otherwise. Callbacks of a behaviour run on a scheduler
 * thread and must never block it: a slow operation is a deferred reply plus a timer, and a
 * server that needs another server's answer uses gs_send_request().
 */
#ifndef GENSERV_H
#define GENSERV_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------- */
/* Errors                                                                                     */
/* ---------------------------------------------------------------------------------------- */

/*
 * XX(symbol, value, code, message): one row per error. `code` is the stable machine-readable
 * name (the HTTP gateway puts it in {"error": code}); `message` is for a human.
 */
#define GS_ERRNO_MAP(XX)                                                                           \
    XX(EINVAL, -1, "bad_argument", "an argument is invalid")                                       \
    XX(ENOMEM, -2, "out_of_memory", "out of memory")                                               \
    XX(EALREADY, -3, "already_started", "a server with this name is already started")              \
    XX(ENOSERVER, -4, "no_such_server", "no server is running under this name")                    \
    XX(ENOBEHAVIOUR, -5, "no_such_behaviour", "no behaviour is registered under this name")        \
    XX(ETIMEOUT, -6, "timeout", "the call timed out before the server replied")                    \
    XX(ECRASHED, -7, "server_crashed", "the server crashed before it replied")                     \
    XX(ESTOPPED, -8, "server_stopped", "the server was stopped before it replied")                 \
    XX(EOVERLOADED, -9, "overloaded", "the server's mailbox is full")                              \
    XX(ECALLINGSELF, -10, "calling_self", "a server cannot call itself")                           \
    XX(EWOULDBLOCK, -11, "would_block",                                                            \
       "a blocking call on a runtime thread would block it; use gs_send_request")                  \
    XX(ENOTIMER, -12, "no_such_timer", "the timer has fired or was cancelled")                     \
    XX(ENOCALL, -13, "no_such_call", "the call was already answered, timed out or failed")         \
    XX(EINIT, -14, "init_failed", "the server's init callback failed")                             \
    XX(ESHUTDOWN, -15, "shutting_down", "the runtime is shutting down")                            \
    XX(EEXIST, -16, "already_registered", "a behaviour with this name is already registered")      \
    XX(EIGNORED, -17, "ignored", "the server's init returned ignore: nothing was started")         \
    XX(EINUSE, -18, "behaviour_in_use", "a server runs this behaviour")                            \
    XX(ENOMONITOR, -19, "no_such_monitor", "no monitor has this reference, or it fired already")   \
    XX(ENOTSUP, -20, "not_supported", "the server's behaviour does not support this operation")    \
    XX(EREFUSED, -21, "state_refused", "the server's behaviour refused the new state")             \
    XX(ECALLERGONE, -22, "caller_gone", "the caller went away before the reply")                   \
    XX(ENOSUPERVISOR, -23, "no_such_supervisor", "no supervisor is running under this name")       \
    XX(ENOCHILD, -24, "no_such_child", "the supervisor has no child of this name")                 \
    XX(ESTARTCHILD, -25, "start_failed", "a child of the supervisor failed to start")              \
    XX(ERUNNING, -26, "child_running", "the child is running: terminate it first")                 \
    XX(ESTORAGE, -27, "storage_unavailable",                                                       \
       "the store could not commit: durable writes are refused until it can")                      \
    XX(EKEYBUSY, -28, "idempotency_in_progress",                                                   \
       "a request with this Idempotency-Key is still waiting for its answer")

typedef enum gs_errno_e {
#define GS__ERRNO_ENUM(sym, val, code, msg) GS_##sym = (val),
    GS_ERRNO_MAP(GS__ERRNO_ENUM)
#undef GS__ERRNO_ENUM
} gs_errno_t;

/** A sentence for a human describing err (static storage; "unknown error" if unknown). */
const char *gs_strerror(int err);
/** The stable code of err, e.g. "no_such_server" (static storage; "unknown" if unknown). */
const char *gs_err_name(int err);

/* ---------------------------------------------------------------------------------------- */
/* Types                                                                                      */
/* ---------------------------------------------------------------------------------------- */

typedef struct gs_runtime_s gs_runtime_t;
/**
 * A running server, like an Elixir pid: one incarnation of a named server. A restart makes a
 * new gs_server_t under the same name; messages sent to the old one then fail with
 * GS_ENOSERVER. Handles are reference counted (gs_server_ref/gs_server_unref).
 */
typedef struct gs_server_s gs_server_t;

/**
 * The caller of a call that handle_call chose not to answer yet (OTP's `from`). A plain value:
 * copy it, store it in the state, hand it to another thread; gs_reply() completes the call
 * exactly once, and a second reply (or one after the call timed out) is refused safely.
 */
typedef struct gs_from_s {
    gs_runtime_t *rt; /* the runtime the call belongs to */
    uint64_t id;      /* unique per call */
} gs_from_t;

/** A timer reference returned by gs_send_after(); never 0. */
typedef uint64_t gs_timer_ref_t;

/** Passed as a timeout to wait forever (Elixir's :infinity). */
#define GS_INFINITY (-1)
/** The default call timeout, as in Elixir. */
#define GS_DEFAULT_TIMEOUT_MS 5000

/* ---------------------------------------------------------------------------------------- */
/* Behaviours                                                                                 */
/* ---------------------------------------------------------------------------------------- */

typedef enum gs_action_e {
    GS_ACTION_REPLY = 1, /* {:reply, reply, state} */
    GS_ACTION_NOREPLY,   /* {:noreply, state} */
    GS_ACTION_STOP, /* {:stop, reason, state} or, with a reply, {:stop, reason, reply, state} */
} gs_action_t;

/**
 * What happens after a reply or a noreply, before the next message (the optional last element
 * of Elixir's {:reply, r, s, X} and {:noreply, s, X}).
 */
typedef enum gs_next_e {
    GS_NEXT_NONE = 0,  /* wait for the next message */
    GS_NEXT_TIMEOUT,   /* X = ms: handle_info gets "timeout" if no message comes first */
    GS_NEXT_HIBERNATE, /* X = :hibernate: the behaviour's hibernate callback runs now */
    GS_NEXT_CONTINUE,  /* X = {:continue, arg}: handle_continue(arg) runs before any message */
} gs_next_t;

/**
 * What a handle_* callback returns. Build it with the macros below (and gs_then_*); `reply`,
 * `reason` and `arg` are taken by the runtime. A reply from handle_cast/handle_info, a
 * missing reply from REPLY or a missing reason from STOP is a bad return value and crashes
 * the server, as in OTP; so does a continue from a behaviour without handle_continue.
 */
typedef struct gs_result_s {
    gs_action_t action;
    json_t *reply;      /* taken; REPLY and STOP_REPLY only */
    json_t *reason;     /* taken; STOP only */
    gs_next_t next;     /* REPLY and NOREPLY only; GS_NEXT_NONE by default */
    int64_t timeout_ms; /* GS_NEXT_TIMEOUT: >= 0 */
    json_t *arg;        /* taken; GS_NEXT_CONTINUE: handle_continue's argument */
} gs_result_t;

/** Reply to the caller now (reply taken). handle_call only. */
#define GS_REPLY(r) ((gs_result_t){.action = GS_ACTION_REPLY, .reply = (r)})
/** No reply now; from handle_call the caller keeps waiting for gs_reply(). */
#define GS_NOREPLY ((gs_result_t){.action = GS_ACTION_NOREPLY})
/**
 * Stop the server with reason (taken). Reasons "normal" and "shutdown" (and
 * ["shutdown", ...]) are normal exits; anything else is a crash.
 */
#define GS_STOP(why) ((gs_result_t){.action = GS_ACTION_STOP, .reason = (why)})
/** Reply to the caller, then stop (both taken). handle_call only. */
#define GS_STOP_REPLY(why, r)                                                                      \
    ((gs_result_t){.action = GS_ACTION_STOP, .reply = (r), .reason = (why)})

/** r, then handle_info("timeout") unless a message comes within ms: {:noreply, s, ms}. */
static inline gs_result_t gs_then_timeout(gs_result_t r, int64_t ms)
{
    r.next = GS_NEXT_TIMEOUT;
    r.timeout_ms = ms;
    return r;
}
/** r, then hibernate: {:noreply, s, :hibernate}. */
static inline gs_result_t gs_then_hibernate(gs_result_t r)
{
    r.next = GS_NEXT_HIBERNATE;
    return r;
}
/** r, then handle_continue(arg) (arg taken) before any message: {:noreply, s, {:continue, arg}}. */
static inline gs_result_t gs_then_continue(gs_result_t r, json_t *arg)
{
    r.next = GS_NEXT_CONTINUE;
    r.arg = arg;
    return r;
}

/**
 * init's return value for OTP's :ignore: nothing is started, and no error (see gs_start). A
 * value no init returns by accident (every other nonzero value is a refusal).
 */
#define GS_INIT_IGNORE 0x49474e

/** Documentation of one message a behaviour accepts, for GET /behaviours and the dashboard. */
typedef struct gs_message_doc_s {
    const char *kind;        /* "call", "cast" or "info" */
    const char *example;     /* the message as JSON text, e.g. "[\"push\", 1]" */
    const char *description; /* one sentence */
} gs_message_doc_t;

/**
 * A behaviour: the callbacks of a GenServer module. All callbacks of one server run on one
 * scheduler thread at a time, one message at a time, and must not block.
 *
 * `state` is whatever init stored; the runtime never looks inside it. It passes the same
 * pointer to every callback; a callback changes the state by changing what it points to.
 */
typedef struct gs_behaviour_s {
    const char *name;                 /* unique, e.g. "counter" */
    const char *description;          /* one sentence for humans */
    const char *args_doc;             /* example init args as JSON text, or NULL */
    const gs_message_doc_t *messages; /* terminated by an entry with kind == NULL; may be NULL */

    const char *vsn; /* the code's version (OTP's -vsn), shown by GET /behaviours; may be NULL */

    /**
     * Set *state and return 0, or return GS_INIT_IGNORE (nothing is started: Elixir's
     * :ignore), or return anything else and set *reason (new reference, may be left NULL) to
     * refuse to start. args: borrowed (JSON null when none were given); keep a reference with
     * json_incref() if the state needs it. May call gs_send_after() and the other messaging
     * functions on self, and gs_init_then() for {:ok, state, timeout | :hibernate |
     * {:continue, arg}}. Required.
     */
    int (*init)(gs_server_t *self, json_t *args, void **state, json_t **reason);
    /** msg: borrowed. Answer with GS_REPLY, or keep `from` and return GS_NOREPLY. */
    gs_result_t (*handle_call)(gs_server_t *self, void *state, json_t *msg, gs_from_t from);
    /** msg: borrowed. Returns GS_NOREPLY or GS_STOP. */
    gs_result_t (*handle_cast)(gs_server_t *self, void *state, json_t *msg);
    /** msg: borrowed; plain messages, timers and gs_send_request() answers. */
    gs_result_t (*handle_info)(gs_server_t *self, void *state, json_t *msg);
    /**
     * The server is going away with reason (borrowed): release the state. Runs on stop, on a
     * crash returned by a handler and at runtime shutdown. Optional (NULL: nothing to free).
     */
    void (*terminate)(gs_server_t *self, json_t *reason, void *state);
    /** The state as JSON, like :sys.get_state/1: a new reference, or NULL if unknown. */
    json_t *(*format_state)(gs_server_t *self, void *state);
    /**
     * arg: borrowed. Runs when a result said {:continue, arg} (gs_then_continue), before any
     * other message. Returns GS_NOREPLY (possibly with a next action) or GS_STOP. Optional.
     */
    gs_result_t (*handle_continue)(gs_server_t *self, void *state, json_t *arg);
    /**
     * A result said :hibernate: give back what the state can do without until the next
     * message (caches, buffers); *state may be replaced. Optional (NULL: nothing to do).
     */
    void (*hibernate)(gs_server_t *self, void **state);
    /**
     * A hot upgrade to this behaviour (gs_behaviour_upgrade) reached a server that ran
     * old_vsn (borrowed; may be NULL): turn *state into this code's state and return 0, or
     * return nonzero with *reason set (new reference, may be left NULL) to keep the old code
     * and the old state. extra: borrowed. Optional: without it the state is kept as it is,
     * as OTP's default code_change does.
     */
    int (*code_change)(gs_server_t *self, const char *old_vsn, void **state, json_t *extra,
                       json_t **reason);

    /*
     * What inspection may show (OTP's format_status, declared instead of coded). Applies to
     * every view of the state: gs_get_state() and what is built on it (GET /servers/NAME,
     * the dashboard). A sensitive behaviour's state is shown as the string "[redacted]";
     * otherwise each top-level key of an object state named in redact (NULL-terminated; NULL
     * for none) has its value shown as "[redacted]". A server can also be made sensitive when
     * it is started (gs_start_options_t.sensitive).
     */
    bool sensitive;
    const char *const *redact;

    /*
     * Tell the server when a call it holds (handle_call returned GS_NOREPLY) ends without its
     * reply: its caller's timeout passed, or its caller went away (gs_call_abandon: an HTTP
     * client that disconnected). It then receives the info ["caller_gone", ID], ID being the
     * from's id (gs_from_t.id), so that it can drop the work it keeps for that caller (a
     * timer, a batch entry): a reply to it would only be dropped. Anyone can send a server an
     * info that looks like this one: check gs_call_pending(from) before acting.
     */
    bool notify_caller_gone;

    /**
     * :sys.replace_state: a client (PUT /servers/NAME/state, gs_replace_state_async) asks
     * that the state become new_state (borrowed; JSON as the client sent it). Check it, then
     * either replace *state (releasing the old one) and return 0, or return nonzero with
     * *reason set (new reference, may be left NULL) to refuse it and keep the old state. Runs
     * on the server's thread between two messages. Optional: without it every request is
     * refused with GS_ENOTSUP.
     */
    int (*replace_state)(gs_server_t *self, void **state, json_t *new_state, json_t **reason);

    /*
     * Durability (docs/durability.md). A durable server's state is written to the store after
     * every message that changed it, and read back at its next start instead of running init.
     * `durable`: every server of this behaviour is durable, whatever its start options say.
     * A behaviour can be durable only if it has both dump_state and restore.
     */
    bool durable;
    /**
     * The state as JSON to store: a new reference, or NULL with *reason set (new reference,
     * may be left NULL) when it cannot be written (the server then crashes with
     * ["unserializable_state", reason] and the stored state stays as it was). Runs on the
     * server's thread after each message. Must not change the state.
     */
    json_t *(*dump_state)(gs_server_t *self, void *state, json_t **reason);
    /**
     * Build the state from stored (borrowed: what dump_state returned, read back). *state is
     * NULL at start, where this runs instead of init (with gs_init_then and the messaging
     * functions available as in init); or it is the current state when the runtime rolls back
     * to the last committed state after a failed commit: release that one then. Return 0, or
     * nonzero with *reason set (new reference, may be left NULL): at start the server then
     * fails to start as if init had refused; on a rollback it crashes.
     */
    int (*restore)(gs_server_t *self, json_t *stored, void **state, json_t **reason);
    /**
     * Optional: runs right after restore at start (never after init), still before any
     * message, to tell the server it was restored (e.g. to re-read what is not stored). May
     * call gs_init_then and the messaging functions as init can.
     */
    void (*restored)(gs_server_t *self, void *state);
} gs_behaviour_t;

/** What a redacted state or field shows. */
#define GS_REDACTED "[redacted]"

/** A missing handle_call/handle_cast/handle_info is answered like OTP's default: a crash
 *  for calls and casts (reason ["bad_call", msg] / ["bad_cast", msg]) and a silently ignored
 *  info message. */

/**
 * A plugin: a shared object that exports `const gs_plugin_t gs_plugin` (the symbol named by
 * GS_PLUGIN_SYMBOL) listing its behaviours, written against this header only.
 */
#define GS_PLUGIN_ABI_VERSION                                                                      \
    5u /* 3: gs_result_t's next action, gs_behaviour_t's vsn,                                      \
          handle_continue, hibernate, code_change, notify_caller_gone; 4: replace_state;           \
          5: durable, dump_state, restore, restored */
#define GS_PLUGIN_SYMBOL "gs_plugin"
/** Put before the definition of gs_plugin so that it is exported even from a shared object
 *  built with -fvisibility=hidden: GS_PLUGIN_EXPORT const gs_plugin_t gs_plugin = {...}; */
#if defined(__GNUC__)
#define GS_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define GS_PLUGIN_EXPORT
#endif
typedef struct gs_plugin_s {
    unsigned abi_version; /* GS_PLUGIN_ABI_VERSION */
    const gs_behaviour_t *const *behaviours;
    size_t count;
} gs_plugin_t;

/* ---------------------------------------------------------------------------------------- */
/* The runtime                                                                                */
/* ---------------------------------------------------------------------------------------- */

/*
 * XX(field, flag, config_key, min, max, default, metavar, help): the runtime's bounds on
 * pending timers, fields of gs_runtime_options_t (0 there means the default). Past any of
 * them gs_send_after* fails with GS_EOVERLOADED (HTTP: 503 overloaded). A server's timers are
 * counted against the named server they are sent to (its restarts included), a timer's bytes
 * as gs_json_size() of its message. The genserv binary makes flags and config keys of them.
 */
#define GS_RUNTIME_LIMITS_MAP(XX)                                                                  \
    XX(max_timers, "max-timers", "limits.max_timers", 1, 1000000000, 1000000, "N",                 \
       "pending send_after timers in all; past it 503 overloaded.")                                \
    XX(max_timer_bytes, "max-timer-bytes", "limits.max_timer_bytes", 1024, 1099511627776,          \
       536870912, "BYTES", "bytes of pending timers' messages in all; past it 503 overloaded.")    \
    XX(max_timers_per_server, "max-timers-per-server", "limits.max_timers_per_server", 1,          \
       1000000000, 100000, "N",                                                                    \
       "pending timers to one server (its own included); past it 503 overloaded.")                 \
    XX(max_timer_bytes_per_server, "max-timer-bytes-per-server",                                   \
       "limits.max_timer_bytes_per_server", 1024, 1099511627776, 67108864, "BYTES",                \
       "bytes of pending timers' messages to one server; past it 503 overloaded.")

typedef struct gs_runtime_options_s {
    unsigned schedulers;  /* scheduler threads; 0: one per core */
    size_t mailbox_limit; /* default per-server mailbox bound; 0: GS_DEFAULT_MAILBOX_LIMIT */
    unsigned batch;       /* messages a server handles per turn; 0: GS_DEFAULT_BATCH */
    /* false (the default): a thread outside the runtime (an HTTP thread, an embedding
     * program) that calls a server with an empty mailbox and no scheduler on it runs that
     * server's turn itself, so an immediate reply costs no hand-off between threads. The
     * rules do not change: one thread at a time per server, mailbox order, bounded turns,
     * and the handler runs as on a scheduler (gs_self() works, blocking calls are refused).
     * true: only the scheduler threads ever run handlers. */
    bool schedulers_only;
    /* The bounds of GS_RUNTIME_LIMITS_MAP; 0: its default. */
    uint64_t max_timers;
    uint64_t max_timer_bytes;
    uint64_t max_timers_per_server;
    uint64_t max_timer_bytes_per_server;
    /* Where durable servers are stored (genserv/store.h), borrowed: it must outlive the
     * runtime. NULL (the default): no server can be durable, everything lives in memory. At
     * gs_runtime_create the runtime reads the stored states and idempotency keys. */
    struct gs_store_s *store;
    /* How long a durable server remembers an Idempotency-Key's answer (ms); 0: 24 hours. */
    uint64_t idempotency_window_ms;
} gs_runtime_options_t;

#define GS_DEFAULT_MAILBOX_LIMIT 100000
#define GS_DEFAULT_BATCH         64

/** Fill opts with the defaults. */
void gs_runtime_options_init(gs_runtime_options_t *opts);

/**
 * Start a runtime: its scheduler threads and its timer thread.
 * @param opts borrowed; NULL for the defaults.
 * @param out  receives the runtime, owned by the caller until gs_runtime_destroy().
 * @return 0, GS_EINVAL or GS_ENOMEM.
 */
int gs_runtime_create(const gs_runtime_options_t *opts, gs_runtime_t **out);

/**
 * Stop everything and free the runtime: new requests fail with GS_ESHUTDOWN, every server is
 * stopped with reason "shutdown" (terminate runs), every pending call completes with
 * GS_ESHUTDOWN or GS_ESTOPPED, pending timers are dropped, threads are joined. Must not be
 * called from a runtime thread. rt is invalid afterwards.
 */
void gs_runtime_destroy(gs_runtime_t *rt);

/** Number of scheduler threads. */
unsigned gs_runtime_schedulers(const gs_runtime_t *rt);
/**
 * How long each scheduler thread has slept for want of work since the runtime started, in
 * nanoseconds: idle_ns[i] for scheduler i < min(max, schedulers). A sleep still going on is
 * counted when it ends (a sleeping scheduler wakes at least every 50 ms), so two readings a
 * second or more apart give a scheduler's utilisation as 1 - d(idle) / d(time) (erlang's
 * scheduler_wall_time, coarser: the spinning before a sleep counts as busy). The count costs
 * two clock reads per sleep and nothing on the path that runs servers. Any thread.
 * @return the number of schedulers.
 */
unsigned gs_runtime_scheduler_idle(const gs_runtime_t *rt, uint64_t *idle_ns, unsigned max);

/** The store the runtime was created with (borrowed), or NULL. */
struct gs_store_s *gs_runtime_store(const gs_runtime_t *rt);

/**
 * Arm the stored timers (after the stored servers were started, so that a timer due now finds
 * its server): each one is delayed to its due wall-clock time, or, if that passed while
 * genserv was down, delivered by its misfire policy (gs_misfire_t). Once, at start. *report
 * (may be NULL) receives {"restored": N, "overdue": N, "skipped": N} (new reference).
 * @return 0, GS_ESTORAGE (the rows could not be read), GS_EINVAL (no store).
 */
int gs_runtime_restore_timers(gs_runtime_t *rt, json_t **report);

/*
 * XX(field, kind, help): the runtime-wide statistics. kind is COUNTER (monotonic since the
 * runtime was created) or GAUGE (a current value). The gateway's /metrics and the docs are
 * generated from this list (a counter is exported as genserv_FIELD_total, a gauge as
 * genserv_FIELD).
 */
#define GS_RUNTIME_STATS_MAP(XX)                                                                   \
    XX(servers, GAUGE, "Servers registered (running, restarting or down).")                        \
    XX(messages_handled, COUNTER, "Messages handled by all servers.")                              \
    XX(late_replies, COUNTER, "Replies dropped because their call had already completed.")         \
    XX(dropped_messages, COUNTER, "Messages to a server that died before handling them.")          \
    XX(dropped_timers, COUNTER, "Timers whose target was gone when they fired.")                   \
    XX(pending_timers, GAUGE, "send_after timers not yet fired or cancelled.")                     \
    XX(pending_timer_bytes, GAUGE, "Bytes of the pending timers' messages (gs_json_size).")        \
    XX(held_calls, GAUGE, "Calls servers hold for a deferred reply.")                              \
    XX(callers_gone, COUNTER, "Calls whose caller went away before the reply (gs_call_abandon).")  \
    XX(stored_timers, GAUGE, "Pending timers kept in the store (durable servers').")               \
    XX(replies_to_gone_callers, COUNTER,                                                           \
       "Replies dropped because their caller had gone away (also counted in late_replies).")       \
    XX(inline_turns, COUNTER,                                                                      \
       "Calls run on their caller's own thread (an HTTP thread) because the server was idle.")     \
    XX(scheduler_wakeups, COUNTER, "Sleeping scheduler threads woken to run a server.")            \
    XX(scheduler_steals, COUNTER, "Servers an idle scheduler took from another one's run queue.")

typedef enum gs_stat_kind_e { GS_STAT_COUNTER = 1, GS_STAT_GAUGE } gs_stat_kind_t;

/** The runtime's statistics: one field per row of GS_RUNTIME_STATS_MAP. */
typedef struct gs_runtime_stats_s {
#define GS__STATS_FIELD(field, kind, help) uint64_t field;
    GS_RUNTIME_STATS_MAP(GS__STATS_FIELD)
#undef GS__STATS_FIELD
} gs_runtime_stats_t;
/** Read every statistic (relaxed: a snapshot for reporting). out: caller's memory. */
void gs_runtime_stats(gs_runtime_t *rt, gs_runtime_stats_t *out);

/* ---------------------------------------------------------------------------------------- */
/* Behaviour registry                                                                        */
/* ---------------------------------------------------------------------------------------- */

/**
 * Make a behaviour startable by name. b is borrowed and must stay valid while it is
 * registered and while a server runs it (static storage, a plugin that stays loaded, or code
 * freed only once gs_behaviour_users says nobody runs it). kind says where it comes from, for
 * listings: "c" (gs_behaviour_register), "builtin", "plugin", "lua"... (static storage).
 * @return 0, GS_EEXIST (name taken), GS_EINVAL (no name or no init).
 */
int gs_behaviour_register(gs_runtime_t *rt, const gs_behaviour_t *b);
int gs_behaviour_register_as(gs_runtime_t *rt, const gs_behaviour_t *b, const char *kind);
/** The behaviour registered under name, or NULL. Borrowed. */
const gs_behaviour_t *gs_behaviour_find(gs_runtime_t *rt, const char *name);
/** Where the behaviour registered under name comes from ("c", "builtin", ...), or NULL. */
const char *gs_behaviour_kind(gs_runtime_t *rt, const char *name);
/**
 * Every registered behaviour as JSON: [{"name", "kind", "vsn", "description", "args",
 * "messages": [{"kind", "example", "description"}]}], sorted by name. New reference.
 */
json_t *gs_behaviours_json(gs_runtime_t *rt);
/**
 * Register b (borrowed) in place of the behaviour registered under its name, which *old
 * (may be NULL) receives, borrowed: servers started from now on run b; servers already running
 * the old one keep it until gs_behaviour_upgrade moves them. The kind is kept.
 * @return 0, GS_ENOBEHAVIOUR (nothing under that name), GS_EINVAL.
 */
int gs_behaviour_replace(gs_runtime_t *rt, const gs_behaviour_t *b, const gs_behaviour_t **old);
/**
 * Forget the behaviour registered under name, unless a server runs it.
 * @return 0, GS_ENOBEHAVIOUR, GS_EINUSE (a server, running or restarting, runs it).
 */
int gs_behaviour_unregister(gs_runtime_t *rt, const char *name);
/** How many named servers run b now (restarting and down ones included). O(servers). */
size_t gs_behaviour_users(gs_runtime_t *rt, const gs_behaviour_t *b);
/** The names of the servers that run b now, sorted: a new reference (a JSON array). */
json_t *gs_behaviour_servers(gs_runtime_t *rt, const gs_behaviour_t *b);

/**
 * Completion of gs_behaviour_upgrade: outcomes (taken) is [{"server": NAME, "ok": true} |
 * {"server": NAME, "error": REASON}], one per server that ran the old code, in no order.
 * Called once, on a runtime thread; must not block.
 */
typedef void (*gs_upgrade_cb)(json_t *outcomes, void *arg);
/**
 * A hot upgrade (OTP's code_change): every server that runs `from` switches to `to`, each
 * between two of its messages, and to->code_change turns its state; a server whose
 * code_change fails keeps `from` and its state (its outcome says why). Upgraded servers also
 * restart with `to`. Call gs_behaviour_replace first so that new starts run `to` too.
 * from and to are borrowed (see gs_behaviour_register for their lifetime); extra borrowed.
 * @return 0 (cb will be called, at once when no server runs `from`), GS_EINVAL, GS_ENOMEM,
 *         GS_ESHUTDOWN.
 */
int gs_behaviour_upgrade(gs_runtime_t *rt, const gs_behaviour_t *from, const gs_behaviour_t *to,
                         json_t *extra, gs_upgrade_cb cb, void *arg);

/* ---------------------------------------------------------------------------------------- */
/* Starting, stopping and finding servers                                                     */
/* ---------------------------------------------------------------------------------------- */

/** Restart types, as in Elixir's child specs. */
typedef enum gs_restart_e {
    GS_PERMANENT = 0, /* always restarted */
    GS_TRANSIENT,     /* restarted only after an abnormal exit (a crash) */
    GS_TEMPORARY,     /* never restarted */
} gs_restart_t;

typedef struct gs_start_options_s {
    gs_restart_t restart;  /* default GS_PERMANENT */
    unsigned max_restarts; /* restart intensity: at most this many restarts ... (default 3) */
    unsigned max_seconds;  /* ... within this many seconds (default 5); past it: "down" */
    size_t mailbox_limit;  /* 0: the runtime's default */
    bool sensitive;        /* show the state as GS_REDACTED whatever the behaviour says */
    /* For behaviours that can enforce them (Lua's): 0 means the behaviour's default. */
    uint64_t memory_limit;      /* bytes the server may use */
    uint64_t instruction_limit; /* VM instructions one callback may run */
    /* Its state, its timers and its idempotency keys are stored (the runtime needs a store:
     * gs_runtime_options_t.store, and the behaviour needs dump_state and restore; else
     * gs_start fails with GS_ENOTSUP). A behaviour that says durable makes this true. */
    bool durable;
} gs_start_options_t;

/** Fill opts with the defaults above. */
void gs_start_options_init(gs_start_options_t *opts);
/** "permanent", "transient", "temporary" -> 0 and *out; anything else -> GS_EINVAL. */
int gs_restart_parse(const char *s, gs_restart_t *out);
/** The name of a restart type. Static storage. */
const char *gs_restart_name(gs_restart_t r);

/**
 * Start a server under a unique name and run its init on the calling thread (like
 * GenServer.start_link: the name is registered first, so messages sent to it during init
 * wait in its mailbox; they are handled after init returns).
 * @param name  borrowed; 1 to 255 bytes, copied.
 * @param b     borrowed; must outlive the runtime (see gs_behaviour_register).
 * @param args  borrowed; NULL means JSON null. Kept (a new reference) for restarts.
 * @param opts  borrowed; NULL for the defaults.
 * @param reason if not NULL and init fails, receives init's reason (new reference, or NULL).
 * @return 0, GS_EALREADY, GS_EINIT, GS_EIGNORED (init returned GS_INIT_IGNORE: nothing was
 *         started, the name is free), GS_EINVAL, GS_ESHUTDOWN, GS_ENOMEM.
 */
int gs_start(gs_runtime_t *rt, const char *name, const gs_behaviour_t *b, json_t *args,
             const gs_start_options_t *opts, json_t **reason);

/** Completion of gs_stop_async: status is 0 once terminate ran, or an error code. */
typedef void (*gs_done_cb)(int status, void *arg);

/**
 * Stop a server: it first handles the messages already in its mailbox, then terminate runs
 * with reason, then callers still waiting on it (queued or held for a deferred reply) fail
 * with GS_ESTOPPED and the name is free again. A stopped server is not restarted. A server
 * that is "down" is simply removed.
 * @param reason taken; NULL means "normal".
 * @param cb     called once, on a runtime thread, after terminate ran (status 0) or with an
 *               error; never called when gs_stop_async itself returns an error.
 * @return 0, GS_ENOSERVER, GS_ESHUTDOWN, GS_ENOMEM.
 */
int gs_stop_async(gs_runtime_t *rt, const char *name, json_t *reason, gs_done_cb cb, void *arg);

/**
 * Blocking gs_stop_async: returns once terminate ran, or GS_ETIMEOUT after timeout_ms (the
 * stop still goes ahead). Returns GS_EWOULDBLOCK when called on a runtime thread (a handler
 * may stop itself by returning GS_STOP, or stop others with gs_stop_async).
 */
int gs_stop(gs_runtime_t *rt, const char *name, json_t *reason, int timeout_ms);

/** How a stop waits for terminate (gs_stop_async_opts). */
typedef struct gs_stop_options_s {
    /*
     * GS_INFINITY (the default, as gs_stop_async): wait for terminate however long it takes.
     * >= 0: a shutdown timeout, as an OTP supervisor's: past it the stop completes with
     * GS_ETIMEOUT and the incarnation is killed: when the handler it runs returns (at once if
     * it is idle), it dies with reason "killed" and is not restarted; the messages it had not
     * handled yet are not handled. Callers waiting on it fail with GS_ESTOPPED and "killed",
     * monitors get it. Unlike OTP's brutal kill, terminate still runs, with reason "killed":
     * in C it is what releases the state; a behaviour that follows OTP only frees memory
     * then, and does no other cleanup.
     */
    int timeout_ms;
} gs_stop_options_t;

/** Fill opts with the defaults (timeout_ms = GS_INFINITY). */
void gs_stop_options_init(gs_stop_options_t *opts);

/**
 * gs_stop_async with options (borrowed; NULL: the defaults). reason: taken (NULL: "normal").
 * cb gets 0 once terminate ran, or GS_ETIMEOUT when the timeout passed first (the server is
 * then killed), or another error; it runs on a runtime thread. Returns as gs_stop_async, and
 * GS_EINVAL for a timeout_ms below GS_INFINITY.
 */
int gs_stop_async_opts(gs_runtime_t *rt, const char *name, json_t *reason,
                       const gs_stop_options_t *opts, gs_done_cb cb, void *arg);
/**
 * Blocking gs_stop_async_opts, for threads outside the runtime (GS_EWOULDBLOCK on a runtime
 * thread). The runtime enforces opts->timeout_ms: the result is 0, GS_ETIMEOUT (and the
 * server was killed), or an error of gs_stop_async.
 */
int gs_stop_opts(gs_runtime_t *rt, const char *name, json_t *reason, const gs_stop_options_t *opts);

/* ---------------------------------------------------------------------------------------- */
/* Monitors (Process.monitor/1 given a name)                                                  */
/* ---------------------------------------------------------------------------------------- */

/** A monitor reference returned by gs_monitor(); never 0, unique in its runtime. */
typedef uint64_t gs_monitor_ref_t;

/**
 * Watch the server registered under name, as Process.monitor(name) does: the name is
 * resolved now, to its current incarnation. When that incarnation ends, watcher receives the
 * info ["DOWN", ref, name, reason] once (reason: the crash reason, the stop's reason,
 * "normal", "killed"...), and the monitor is gone. A restart makes a new incarnation that
 * this monitor does not watch. When no server runs under name now (none, or "down"), the DOWN
 * comes at once with reason "no_such_server" (Elixir's :noproc). DOWN messages pass the
 * watcher's mailbox limit. The monitors a watcher holds are dropped when it dies.
 * @param watcher borrowed: who gets the DOWN (usually the callback's self).
 * @param name    borrowed.
 * @param ref     receives the reference (also when the DOWN is immediate); may be NULL.
 * @return 0, GS_EINVAL, GS_ESHUTDOWN, GS_ENOMEM. Any thread.
 */
int gs_monitor(gs_server_t *watcher, const char *name, gs_monitor_ref_t *ref);
/**
 * Remove a monitor that watcher (borrowed) holds, as Process.demonitor/1. A DOWN already
 * queued in watcher's mailbox still arrives (there is no :flush).
 * @return 0, or GS_ENOMONITOR (unknown ref, not watcher's, or it fired already).
 */
int gs_demonitor(gs_server_t *watcher, gs_monitor_ref_t ref);

/** The current incarnation registered under name: a new handle reference, or NULL. */
gs_server_t *gs_whereis(gs_runtime_t *rt, const char *name);
/** Take another reference on a handle. Returns s. */
gs_server_t *gs_server_ref(gs_server_t *s);
/** Drop a reference; the handle must not be used afterwards. Accepts NULL. */
void gs_server_unref(gs_server_t *s);
/** The server's name: borrowed, valid while the caller holds the handle. */
const char *gs_server_name(const gs_server_t *s);
/** The runtime a server belongs to. */
gs_runtime_t *gs_server_runtime(const gs_server_t *s);
/** The server whose callback is running on this thread (borrowed), or NULL. */
gs_server_t *gs_self(void);
/**
 * From init only: what to do once init returned successfully, as Elixir's {:ok, state, X}:
 * next is GS_NOREPLY with a next action (gs_then_timeout, gs_then_hibernate,
 * gs_then_continue; its arg taken). A later call replaces an earlier one. Ignored elsewhere
 * (its arg is then dropped).
 */
void gs_init_then(gs_server_t *self, gs_result_t next);
/** The options a server was started with (borrowed, valid while the handle is held). */
const gs_start_options_t *gs_server_options(const gs_server_t *s);
/** The behaviour a server's incarnation runs now (borrowed): it changes with an upgrade. */
const gs_behaviour_t *gs_server_behaviour(const gs_server_t *s);

/* ---------------------------------------------------------------------------------------- */
/* Messages                                                                                   */
/* ---------------------------------------------------------------------------------------- */

/**
 * Cast msg (taken) to the named server's handle_cast. Returns at once.
 * @return 0, GS_ENOSERVER, GS_EOVERLOADED (mailbox full), GS_ESHUTDOWN, GS_EINVAL (msg NULL).
 */
int gs_cast(gs_runtime_t *rt, const char *name, json_t *msg);
/** Send msg (taken) to the named server's handle_info. Returns like gs_cast. */
int gs_send(gs_runtime_t *rt, const char *name, json_t *msg);
/** gs_cast to a handle (borrowed): fails with GS_ENOSERVER once that incarnation is gone. */
int gs_cast_server(gs_server_t *to, json_t *msg);

/** How gs_cast_opts and gs_send_opts deliver. */
typedef struct gs_send_options_s {
    /*
     * When not NULL: runs once, when the message was handled (and, for a durable server, when
     * the state change it made committed) with 0; or with GS_ESTORAGE (the commit failed: the
     * change was rolled back), GS_ECRASHED (the handler crashed), or GS_ENOSERVER/GS_ESHUTDOWN
     * (the server died before handling it). Runs on the thread that handled it, or the store's
     * thread. Not run when the send fails up front.
     */
    gs_done_cb handled;
    void *handled_arg;
    /*
     * An Idempotency-Key for a durable server (borrowed, copied; NULL: none): a message whose
     * key the server already handled within the runtime's idempotency window is not handled
     * again (handled still runs, with 0). Ignored for a server that is not durable.
     */
    const char *idempotency_key;
} gs_send_options_t;

/** gs_cast / gs_send with options (borrowed; NULL: as gs_cast / gs_send). msg taken. */
int gs_cast_opts(gs_runtime_t *rt, const char *name, json_t *msg, const gs_send_options_t *opts);
int gs_send_opts(gs_runtime_t *rt, const char *name, json_t *msg, const gs_send_options_t *opts);
/** gs_send to a handle (borrowed). */
int gs_send_server(gs_server_t *to, json_t *msg);

/**
 * Completion of a call. Invoked exactly once, on whichever thread completes the call (a
 * scheduler, the timer thread, a thread calling gs_reply, or gs_runtime_destroy's thread).
 *   status 0:               result is the reply.
 *   status GS_ECRASHED:     result is the crash reason.
 *   status GS_ESTOPPED:     result is the stop reason.
 *   status GS_EREFUSED:     result is the refusal's reason or NULL (gs_replace_state_async).
 *   any other error status: result is NULL (GS_ETIMEOUT, GS_ENOSERVER, GS_ESHUTDOWN...).
 * result is a new reference owned by the callback. The callback must not block.
 */
typedef void (*gs_reply_cb)(int status, json_t *result, void *arg);

/**
 * Call the named server's handle_call with msg (taken) and invoke cb when it answers, fails
 * or times out. timeout_ms >= 0, or GS_INFINITY. The runtime enforces the timeout itself.
 * @return 0 (cb will be called exactly once), or an up-front error (cb is never called):
 *         GS_ENOSERVER, GS_EOVERLOADED, GS_ECALLINGSELF (from the server's own callback),
 *         GS_ESHUTDOWN, GS_EINVAL.
 */
int gs_call_async(gs_runtime_t *rt, const char *name, json_t *msg, int timeout_ms, gs_reply_cb cb,
                  void *arg);
/** gs_call_async to a handle (borrowed). */
int gs_call_server_async(gs_server_t *to, json_t *msg, int timeout_ms, gs_reply_cb cb, void *arg);

/** A reference to one call, for the caller that made it (gs_call_async_opts). */
typedef struct gs_call_s gs_call_t;

/** The longest caller label a call keeps (gs_call_options_t.caller), its NUL included. */
#define GS_CALLER_MAX 64

/** How gs_call_async_opts calls: its timeout, and who waits (shown in gs_server_held_json). */
typedef struct gs_call_options_s {
    int timeout_ms; /* >= 0, or GS_INFINITY; gs_call_options_init: GS_DEFAULT_TIMEOUT_MS */
    /*
     * Who waits, for the open-reply ledger: caller_kind names the kind (static storage, e.g.
     * "http"); caller is borrowed and copied (truncated to GS_CALLER_MAX - 1 bytes), e.g. the
     * client's "127.0.0.1:40312". With caller_kind NULL the runtime says itself: "server"
     * (with the calling server's name) from a server's callback, else "thread".
     */
    const char *caller_kind;
    const char *caller;
    /*
     * An Idempotency-Key for a durable server (borrowed, copied; NULL: none): a retry with a
     * key the server answered within the idempotency window gets the recorded answer without
     * being handled again; one whose first call is still waiting for a deferred reply fails
     * with GS_EKEYBUSY. Ignored for a server that is not durable.
     */
    const char *idempotency_key;
} gs_call_options_t;

/** Fill opts with the defaults (GS_DEFAULT_TIMEOUT_MS, the caller left to the runtime). */
void gs_call_options_init(gs_call_options_t *opts);

/**
 * gs_call_async with options (borrowed; NULL: the defaults; its strings are read before this
 * returns, the label copied) and, when call is not NULL, a reference to the call in *call
 * (new: release it with gs_call_unref), by which the caller can say it went away
 * (gs_call_abandon). msg is taken, even on failure; arg is passed to cb untouched. *call is set
 * before cb can run, and even when cb has run by the time this returns; on an up-front error it is
 * set to NULL (and cb never runs).
 * @return as gs_call_async.
 */
int gs_call_async_opts(gs_runtime_t *rt, const char *name, json_t *msg,
                       const gs_call_options_t *opts, gs_reply_cb cb, void *arg, gs_call_t **call);

/** The call's id: the gs_from_t.id its server's handle_call receives. call: borrowed. */
uint64_t gs_call_id(const gs_call_t *call);

/**
 * The caller of call (borrowed) went away, e.g. the HTTP client disconnected: complete the call
 * now with GS_ECALLERGONE (its callback runs on this thread), take it out of its server's held
 * calls, and tell that server if its behaviour asked (notify_caller_gone: ["caller_gone",
 * ID]). Counted in callers_gone; a gs_reply that comes later is dropped, returns
 * GS_ECALLERGONE and is counted in replies_to_gone_callers (for the latest few thousand gone
 * calls; always in late_replies). A call still queued in a mailbox ends the same way: its
 * server handles the message later, and is told at once if it keeps that `from`. Any thread.
 * @return 0, or GS_ENOCALL when the call had completed already (nothing happens), GS_EINVAL.
 */
int gs_call_abandon(gs_runtime_t *rt, gs_call_t *call);

/** Drop a reference from gs_call_async_opts. Any thread, also after gs_runtime_destroy (a
 *  call outlives its runtime only as this record). Accepts NULL. */
void gs_call_unref(gs_call_t *call);

/**
 * Blocking call for threads outside the runtime (an embedding program, a test).
 * On 0, *result is the reply; on GS_ECRASHED or GS_ESTOPPED, the reason; otherwise NULL.
 * *result is a new reference. On a runtime thread it returns GS_ECALLINGSELF when the target
 * is the calling server itself and GS_EWOULDBLOCK otherwise, without waiting.
 */
int gs_call(gs_runtime_t *rt, const char *name, json_t *msg, int timeout_ms, json_t **result);

/**
 * The non-blocking call for servers (:gen_server.send_request): call `name` with msg (taken);
 * the outcome arrives later in self's handle_info as
 *   ["gs_reply", tag, reply]                on success, or
 *   ["gs_error", tag, code, reason|null]    e.g. ["gs_error", tag, "timeout", null],
 * with tag (taken) being whatever the caller chose to recognise it. If self is gone by then,
 * the outcome is dropped.
 * @param self borrowed: the calling server (usually the callback's self).
 * @return 0 or an up-front error as gs_call_async (then no message will arrive).
 */
int gs_send_request(gs_server_t *self, const char *name, json_t *msg, int timeout_ms, json_t *tag);

/**
 * Complete a call that handle_call kept (GenServer.reply/2) with reply (taken). Any thread.
 * @return 0, or GS_ENOCALL when the call was already completed (replied, timed out, or failed
 *         because its server stopped or crashed): the reply is then dropped and counted in
 *         late_replies. Replying twice is therefore safe. GS_ECALLERGONE instead when its
 *         caller went away (gs_call_abandon; counted in replies_to_gone_callers as well).
 */
int gs_reply(gs_from_t from, json_t *reply);

/**
 * Whether the call `from` is still waiting for its reply: kept by a handle_call that returned
 * GS_NOREPLY, and neither answered, timed out nor failed since. A behaviour that receives
 * ["caller_gone", ID] in a message anyone could send (a cast or info from a client) checks it
 * here before dropping that caller's work. Any thread.
 */
bool gs_call_pending(gs_from_t from);

/* ---------------------------------------------------------------------------------------- */
/* Timers                                                                                     */
/* ---------------------------------------------------------------------------------------- */

/**
 * Deliver msg (taken) to the named server's handle_info after delay_ms. As with Elixir's
 * Process.send_after/3 given a name, the name is resolved when the timer fires; a timer whose
 * target is gone then is dropped (counted in dropped_timers). The timer counts against the
 * bounds of GS_RUNTIME_LIMITS_MAP: the runtime's, and those of the server holding the name now
 * (if any). A timer fires with its target's mailbox limit lifted (a server's tick must not be
 * lost to a busy spell), except an external one (gs_send_after_opts).
 * @param ref receives the timer reference; may be NULL.
 * @return 0, GS_EOVERLOADED (past a timer bound), GS_EINVAL, GS_ESHUTDOWN, GS_ENOMEM.
 */
int gs_send_after(gs_runtime_t *rt, const char *name, json_t *msg, uint64_t delay_ms,
                  gs_timer_ref_t *ref);
/** gs_send_after to a handle (borrowed): like send_after(self(), ...) in Elixir, the timer is
 *  dropped if that incarnation is gone when it fires (a restarted server starts afresh). */
int gs_send_after_server(gs_server_t *to, json_t *msg, uint64_t delay_ms, gs_timer_ref_t *ref);

typedef struct gs_timer_options_s {
    /*
     * Made by a client outside the servers (genserv's HTTP API), not by a server for itself.
     * Its target must be registered now (else GS_ENOSERVER). It respects the target's
     * mailbox limit: one whose delay is 0 is refused up
     * front with GS_EOVERLOADED when the mailbox is full, and one that fires into a full
     * mailbox is dropped and counted in dropped_timers. Only external timers are reached by
     * gs_read_external_timer, gs_cancel_external_timer and gs_external_timers_json, so a
     * client can never read or cancel a server's own timers.
     */
    bool external;
    /*
     * Periodic (Erlang's :timer.send_interval): after firing, the timer fires again every
     * interval_ms until cancelled (its ref stays valid). 0: once.
     */
    uint64_t interval_ms;
    /* What a stored timer does when genserv was down when it was due (gs_misfire_t). */
    uint8_t misfire;
    /*
     * When not NULL: runs once the timer is armed, with 0, or GS_ESTORAGE if its target is
     * durable and the timer's row could not be committed (the timer is then cancelled). For
     * a durable target this is after the row committed (on the store's thread), else at once
     * on the calling thread. Not run when gs_send_after_opts fails up front.
     */
    gs_done_cb committed;
    void *committed_arg;
} gs_timer_options_t;

/*
 * XX(SYMBOL, name, meaning): what a stored timer does when it was due while genserv was down.
 */
#define GS_MISFIRE_MAP(XX)                                                                         \
    XX(COALESCE, "coalesce",                                                                       \
       "one delivery; a periodic timer that missed N > 1 periods delivers [\"$gs_missed\", N, "    \
       "MSG]")                                                                                     \
    XX(ALL, "all", "every missed delivery of a periodic timer, at most GS_MISFIRE_ALL_MAX")        \
    XX(SKIP, "skip",                                                                               \
       "no late delivery: a one-shot timer is dropped, a periodic one waits for its next period")

typedef enum gs_misfire_e {
#define GS__MISFIRE_ENUM(sym, name, meaning) GS_MISFIRE_##sym,
    GS_MISFIRE_MAP(GS__MISFIRE_ENUM)
#undef GS__MISFIRE_ENUM
} gs_misfire_t;

/** The most deliveries misfire "all" makes for one periodic timer after downtime. */
#define GS_MISFIRE_ALL_MAX 1000

/** "coalesce", "all", "skip" -> 0 and *out; anything else -> GS_EINVAL. */
int gs_misfire_parse(const char *s, gs_misfire_t *out);
/** The name of a misfire policy. Static storage. */
const char *gs_misfire_name(gs_misfire_t m);

/** gs_send_after with options (borrowed; NULL: the defaults, as gs_send_after). */
int gs_send_after_opts(gs_runtime_t *rt, const char *name, json_t *msg, uint64_t delay_ms,
                       const gs_timer_options_t *opts, gs_timer_ref_t *ref);

/**
 * Cancel a timer. On 0, *remaining_ms (if not NULL) is the time it had left.
 * @return 0, or GS_ENOTIMER when it already fired or was cancelled (Process.cancel_timer's
 *         false).
 */
int gs_cancel_timer(gs_runtime_t *rt, gs_timer_ref_t ref, int64_t *remaining_ms);
/** Read a timer's remaining time without cancelling it. Returns 0 or GS_ENOTIMER. */
int gs_read_timer(gs_runtime_t *rt, gs_timer_ref_t ref, int64_t *remaining_ms);
/** gs_read_timer and gs_cancel_timer for external timers only: any other ref is GS_ENOTIMER. */
int gs_read_external_timer(gs_runtime_t *rt, gs_timer_ref_t ref, int64_t *remaining_ms);
int gs_cancel_external_timer(gs_runtime_t *rt, gs_timer_ref_t ref, int64_t *remaining_ms);
/**
 * The pending external timers: {"count": N (all of them), "truncated": BOOL, "timers": [the
 * `limit` soonest, each {"ref": N, "server": NAME, "message": JSON (a copy), "remaining_ms": N,
 * "created_at_ms": N (Unix time), and "created_by" and "external" as in gs_timers_json}]}. New
 * reference. Looks at every pending timer (gs_timers_json with external_only).
 */
json_t *gs_external_timers_json(gs_runtime_t *rt, size_t limit);
/**
 * Every pending timer (or only the external ones), like observer's view of a node's timers:
 * {"count": N (all that match), "truncated": count > the timers listed, "timers": [the `limit`
 * soonest, each as gs_external_timers_json's plus "created_by": "external" (a client,
 * gs_timer_options_t.external), "server:NAME" (made in that server's callback, such as its
 * own tick), "restored" (armed again from the store at start) or "runtime" (any other thread),
 * "external": bool, and "interval_ms" for a periodic one]}. New reference. O(pending timers)
 * time under each map shard's lock in turn, O(limit) memory.
 */
json_t *gs_timers_json(gs_runtime_t *rt, size_t limit, bool external_only);

/* ---------------------------------------------------------------------------------------- */
/* Supervision trees                                                                          */
/* ---------------------------------------------------------------------------------------- */

/*
 * A supervisor (OTP's Supervisor) is a named server of its own that starts children in order
 * and restarts them by its strategy. Its spec is JSON:
 *   {"name": NAME, "strategy": "one_for_one" | "one_for_all" | "rest_for_one",
 *    "max_restarts": 3, "max_seconds": 5, "children": [CHILD...]}
 * where a CHILD is a server spec {"name", "behaviour", "args", "restart": "permanent" |
 * "transient" | "temporary", "shutdown": ms | "infinity" (default 5000)} or a nested supervisor
 * spec (it has "children"; its shutdown defaults to "infinity"). Every name in a tree is
 * unique, and a registered name (a child is a server like any other: call it by name).
 * Past max_restarts restarts in max_seconds, a supervisor stops its children in reverse start
 * order and stops with {"reason": "reached_max_restart_intensity", ...}: its parent sees a
 * child crash; at the top of a tree, it is removed (event "down"), never restarted.
 * gs_stop/gs_stop_async on a supervisor stops its children in reverse order, each given its
 * shutdown time, before the supervisor itself stops. A child stopped with gs_stop by anyone
 * but its supervisor is an exit like any other: its restart type decides (use
 * gs_supervisor_terminate_child to stop it for good).
 *
 * The functions below answer through a gs_reply_cb (status 0 and a result, or an error and
 * its details: unlike gs_call_async's, an error's result may be set), or, blocking, for
 * threads outside the runtime (GS_EWOULDBLOCK on a runtime thread), with *result (new
 * reference, may be NULL; pass NULL to drop it). Errors: GS_EINVAL (a bad spec: details
 * {"message": ...}), GS_EALREADY (the name is taken), GS_ENOSUPERVISOR, GS_ENOCHILD,
 * GS_ESTARTCHILD (details {"child", "error", "reason"}: the children already started were
 * stopped again, in reverse order), GS_ERUNNING (delete or restart of a running child),
 * GS_ESHUTDOWN, GS_ENOMEM.
 */

/**
 * Start a supervision tree: its children start in order, and cb gets status 0 and the tree
 * (as gs_supervisor_json) once all run. spec: borrowed. *reason (may be NULL): on an up-front
 * error, its details (new reference or NULL); cb is then never called.
 */
int gs_supervisor_start_async(gs_runtime_t *rt, json_t *spec, gs_reply_cb cb, void *arg,
                              json_t **reason);
/** Blocking gs_supervisor_start_async, for threads outside the runtime (GS_EWOULDBLOCK on a
 *  runtime thread). spec: borrowed. *result (may be NULL): a new reference to the tree, or to
 *  the error's details (or NULL), which the caller releases. */
int gs_supervisor_start(gs_runtime_t *rt, json_t *spec, int timeout_ms, json_t **result);
/** Supervisor.start_child: add a child (spec borrowed) at the end and start it; the result is
 *  the child as in the tree (cb's result: a new reference it owns, as every gs_reply_cb's; the
 *  blocking form's *result: a new reference or NULL, the caller's). sup: borrowed. The
 *  blocking forms below are for threads outside the runtime; the *_async ones run cb once on a
 *  runtime thread, unless they return an error up front. */
int gs_supervisor_start_child_async(gs_runtime_t *rt, const char *sup, json_t *spec, gs_reply_cb cb,
                                    void *arg);
int gs_supervisor_start_child(gs_runtime_t *rt, const char *sup, json_t *spec, int timeout_ms,
                              json_t **result);
/** Supervisor.terminate_child: stop it (given its shutdown time); it stays, "stopped", and is
 *  not restarted until gs_supervisor_restart_child. Names borrowed. */
int gs_supervisor_terminate_child_async(gs_runtime_t *rt, const char *sup, const char *child,
                                        gs_reply_cb cb, void *arg);
int gs_supervisor_terminate_child(gs_runtime_t *rt, const char *sup, const char *child,
                                  int timeout_ms);
/** Supervisor.delete_child: forget a stopped child's spec (GS_ERUNNING if it runs). */
int gs_supervisor_delete_child_async(gs_runtime_t *rt, const char *sup, const char *child,
                                     gs_reply_cb cb, void *arg);
int gs_supervisor_delete_child(gs_runtime_t *rt, const char *sup, const char *child,
                               int timeout_ms);
/** Supervisor.restart_child: start a stopped child again (GS_ERUNNING if it runs). */
int gs_supervisor_restart_child_async(gs_runtime_t *rt, const char *sup, const char *child,
                                      gs_reply_cb cb, void *arg);
int gs_supervisor_restart_child(gs_runtime_t *rt, const char *sup, const char *child,
                                int timeout_ms);
/**
 * The tree under supervisor name (borrowed), read without disturbing it: {"name", "kind":
 * "supervisor", "status", "strategy", "restarts", "max_restarts", "max_seconds", "children":
 * [...]}, each child {"name", "kind": "server" | "supervisor", "behaviour" (servers), "status":
 * "running" | "starting" | "terminating" | "restarting" | "stopped", "restarts", "restart",
 * "shutdown"} and a nested supervisor's own fields. New reference, or NULL when name is not a
 * supervisor.
 */
json_t *gs_supervisor_json(gs_runtime_t *rt, const char *name);
/** Every tree from its top, sorted by name: {"supervisors": [TREE...]}. New reference. */
json_t *gs_supervisors_json(gs_runtime_t *rt);

/* ---------------------------------------------------------------------------------------- */
/* Introspection                                                                              */
/* ---------------------------------------------------------------------------------------- */

/*
 * XX(SYMBOL, name, meaning): what a server is doing, as "status" in its status.
 */
#define GS_SERVER_STATUS_MAP(XX)                                                                   \
    XX(RUNNING, "running", "it handles messages")                                                  \
    XX(STARTING, "starting", "its first init is running")                                          \
    XX(RESTARTING, "restarting", "its supervisor is running init again after a crash")             \
    XX(DOWN, "down", "not restarted: past its restart intensity (a down_reason says why)")         \
    XX(SUSPENDED, "suspended", "suspended (:sys.suspend): it handles system messages only")

typedef enum gs_server_status_e {
#define GS__STATUS_ENUM(sym, name, meaning) GS_STATUS_##sym,
    GS_SERVER_STATUS_MAP(GS__STATUS_ENUM)
#undef GS__STATUS_ENUM
} gs_server_status_t;

/** "starting", "running", ... Static storage ("unknown" for anything else). */
const char *gs_server_status_name(gs_server_status_t status);

/*
 * XX(field, json_type, meaning): the fields of a server's status (gs_server_status), in the
 * order they are written. GET /servers, GET /servers/NAME, the event stream and the dashboard
 * all show exactly these.
 */
#define GS_SERVER_STATUS_FIELDS(XX)                                                                \
    XX(name, "string", "the server's name")                                                        \
    XX(behaviour, "string", "its behaviour's name")                                                \
    XX(vsn, "string or null",                                                                      \
       "the version of the code it runs (after an upgrade it refused, the "                        \
       "old one's)")                                                                               \
    XX(status, "string", "running, starting, restarting, down or suspended")                       \
    XX(restart, "string", "its restart type: permanent, transient or temporary")                   \
    XX(mailbox_len, "integer", "messages waiting in its mailbox")                                  \
    XX(mailbox_limit, "integer", "its mailbox bound (past it, overloaded)")                        \
    XX(messages_handled, "integer", "messages it handled, across restarts")                        \
    XX(restarts, "integer", "times its supervisor restarted it")                                   \
    XX(held_calls, "integer", "calls it holds for a deferred reply")                               \
    XX(uptime_ms, "integer", "time since its current init returned (0 unless running)")            \
    XX(last_crash_reason, "any", "the reason of its last crash, or null")                          \
    XX(down_reason, "any", "why its supervisor gave up on it, or null")                            \
    XX(sensitive, "boolean", "its state is shown as \"[redacted]\"")                               \
    XX(durable, "boolean", "its state and timers are stored (docs/durability.md)")                 \
    XX(committed_seq, "integer or null",                                                           \
       "a durable server's sequence number of the last state the store committed")                 \
    XX(commit_lag, "integer", "state changes handled but not committed yet (0 unless durable)")    \
    XX(stored_timers, "integer", "its pending timers that are stored (0 unless durable)")          \
    XX(memory_bytes, "integer",                                                                    \
       "approximate bytes of its state and mailbox: memory.state_bytes + memory.mailbox_bytes")    \
    XX(memory, "object",                                                                           \
       "{\"state_bytes\", \"mailbox_bytes\"}: the state's size as JSON (gs_json_size), measured "  \
       "when it starts, at most once a second while it handles messages and whenever its "         \
       "state is read (0 for a sensitive server); the mailbox's messages times an envelope plus "  \
       "a sampled message's size")

/**
 * One server's status: a JSON object with the fields of GS_SERVER_STATUS_FIELDS, read without
 * disturbing the server (not through its mailbox).
 * @return a new reference, or NULL when no server has that name.
 */
json_t *gs_server_status(gs_runtime_t *rt, const char *name);
/** Every server's status, sorted by name: {"servers": [STATUS...]}. New reference. */
json_t *gs_servers_json(gs_runtime_t *rt);
/** The sum of every server's memory_bytes (see GS_SERVER_STATUS_FIELDS): approximate, and
 *  O(servers) (a pass over the registry without building JSON). Any thread. */
uint64_t gs_runtime_memory(gs_runtime_t *rt);

/**
 * Every server's status a few at a time, for a listing too large to build at once (the event
 * stream's snapshot): the cursor holds a reference to each server registered when it was
 * created (8 bytes a server), and each step reads the next statuses as they are then,
 * leaving out servers stopped meanwhile. Not sorted. One thread at a time per cursor.
 */
typedef struct gs_status_cursor_s gs_status_cursor_t;
/** A cursor over the servers registered now: owned by the caller, or NULL (out of memory). */
gs_status_cursor_t *gs_status_cursor_create(gs_runtime_t *rt);
/** Append up to max statuses to list (borrowed array). Returns how many; 0 once done. */
size_t gs_status_cursor_next(gs_status_cursor_t *c, json_t *list, size_t max);
/** Release the cursor and its references. Accepts NULL. */
void gs_status_cursor_destroy(gs_status_cursor_t *c);

/**
 * The open-reply ledger of one server: who waits on the calls it holds for a deferred reply,
 * oldest first. {"server": NAME, "count": N (all of them), "calls": [the `limit` oldest, each
 * {"id": the from's id, "kind": "http" | "server" | "thread" | the caller_kind given,
 * "caller": the label (an HTTP client's "ADDR:PORT", the calling server's name) or null,
 * "since_ms": when the call was made (Unix ms), "waited_ms": N, "deadline_ms": Unix ms or
 * null (GS_INFINITY), "remaining_ms": N or null, "tag": the message's tag (its first element
 * when that is a string, or the message when it is a string; at most 63 bytes) or null}]}. A
 * sensitive server's tags show as GS_REDACTED. Read without disturbing the server (not
 * through its mailbox): O(held calls of the whole runtime).
 * @param name borrowed.
 * @return a new reference, or NULL when no server has that name.
 */
json_t *gs_server_held_json(gs_runtime_t *rt, const char *name, size_t limit);

/** How long the oldest call any server holds has waited, in ms; -1 when none is held.
 *  O(held calls). */
int64_t gs_held_oldest_ms(gs_runtime_t *rt);

/**
 * The server's state through its format_state callback, like :sys.get_state/1. It is asked
 * through the mailbox (so it sees every message sent before it) but is not refused by a full
 * mailbox. cb gets status 0 and the state (new reference; JSON null without format_state).
 * @return 0 or GS_ENOSERVER/GS_ESHUTDOWN up front (cb never called then).
 */
int gs_get_state_async(gs_runtime_t *rt, const char *name, int timeout_ms, gs_reply_cb cb,
                       void *arg);
/** Blocking gs_get_state_async, for threads outside the runtime. *state: new reference. */
int gs_get_state(gs_runtime_t *rt, const char *name, int timeout_ms, json_t **state);

/* ---------------------------------------------------------------------------------------- */
/* :sys operations                                                                            */
/* ---------------------------------------------------------------------------------------- */

/*
 * System messages, as OTP's :sys: each goes through the mailbox in order with the other
 * messages and runs on the server's thread between two messages, like gs_get_state_async.
 * While a server is suspended it handles system messages only (state requests, resume,
 * replace_state, stop, upgrade); calls, casts, infos and timers wait in its mailbox (they
 * count against its limit, and a call may time out there), and run after the resume, in
 * order. Its status says "suspended". A stop of a suspended server fails the messages it kept
 * with GS_ESTOPPED.
 * timeout_ms >= 0, or GS_INFINITY. Each cb gets status 0 and result NULL, or an error
 * (GS_ENOSERVER when the server died first, GS_ETIMEOUT), once, on whichever thread completes
 * it; the functions return 0 or an up-front error (GS_ENOSERVER, GS_ESHUTDOWN, GS_EINVAL), and
 * then cb is never called.
 */
int gs_suspend_async(gs_runtime_t *rt, const char *name, int timeout_ms, gs_reply_cb cb, void *arg);
/** Resume a suspended server (0 also when it was not suspended). As gs_suspend_async. */
int gs_resume_async(gs_runtime_t *rt, const char *name, int timeout_ms, gs_reply_cb cb, void *arg);
/**
 * :sys.replace_state: the behaviour's replace_state callback checks new_state (taken) and
 * installs it. cb gets
 *   status 0:           result is the old state, as gs_get_state shows it (redacted if so);
 *   status GS_EREFUSED: result is the behaviour's reason (or NULL);
 *   status GS_ENOTSUP:  the behaviour has no replace_state; result NULL;
 *   or an error as above. As gs_suspend_async otherwise.
 */
int gs_replace_state_async(gs_runtime_t *rt, const char *name, json_t *new_state, int timeout_ms,
                           gs_reply_cb cb, void *arg);
/** Blocking versions, for threads outside the runtime (GS_EWOULDBLOCK on a runtime thread).
 *  *result: new reference or NULL (may itself be NULL to ignore it). */
int gs_suspend(gs_runtime_t *rt, const char *name, int timeout_ms);
int gs_resume(gs_runtime_t *rt, const char *name, int timeout_ms);
int gs_replace_state(gs_runtime_t *rt, const char *name, json_t *new_state, int timeout_ms,
                     json_t **result);

/** Runtime events, for dashboards (GET /events) without polling every server. */
typedef enum gs_event_type_e {
    GS_EVENT_STARTED = 1,   /* a server was started (not a restart) */
    GS_EVENT_STOPPED,       /* a server stopped normally or was stopped; its name is free */
    GS_EVENT_CRASHED,       /* a server crashed (reason set); RESTARTED or DOWN follows */
    GS_EVENT_RESTARTED,     /* the supervisor restarted it */
    GS_EVENT_DOWN,          /* it will not be restarted (temporary, or past its intensity) */
    GS_EVENT_STATE_CHANGED, /* it handled one or more messages in a turn */
} gs_event_type_t;

/** "started", "stopped", ... Static storage. */
const char *gs_event_name(gs_event_type_t t);

typedef struct gs_event_s {
    gs_event_type_t type;
    const char *server;    /* borrowed, valid during the callback */
    const char *behaviour; /* borrowed, valid during the callback */
    json_t *reason;        /* borrowed, may be NULL: the crash, stop or down reason; to keep
                              it past the callback, json_deep_copy() it */
} gs_event_t;

/**
 * Called on the runtime thread where the event happened, possibly on several threads at once.
 * ev is borrowed. It must return quickly and must not block; it may call the non-blocking
 * functions of this header.
 */
typedef void (*gs_event_cb)(const gs_event_t *ev, void *arg);

typedef struct gs_subscription_s gs_subscription_t;
/** Subscribe to every event. *out: owned by the caller, released with gs_unsubscribe. */
int gs_subscribe(gs_runtime_t *rt, gs_event_cb cb, void *arg, gs_subscription_t **out);
/** Stop the callbacks: when this returns, no callback of sub runs or will run. Not from
 *  inside that subscription's own callback. Accepts NULL. */
void gs_unsubscribe(gs_runtime_t *rt, gs_subscription_t *sub);

#ifdef __cplusplus
}
#endif
#endif /* GENSERV_H */
