/*
 * boot.h: what the binary does with the runtime once it exists: start the configured servers
 * and log the runtime's events.
 */
#ifndef GS_SERVER_BOOT_H
#define GS_SERVER_BOOT_H

#include <genserv/genserv.h>

#include <stddef.h>

/**
 * Start every server in specs (borrowed JSON array of {"name", "behaviour", "args",
 * "restart", "max_restarts", "max_seconds", "mailbox_limit", "sensitive", "durable",
 * "memory_limit", "instruction_limit"}), in order.
 * @return 0, or -1 with err describing the first one that failed.
 */
int gs_boot_start_servers(gs_runtime_t *rt, json_t *specs, char *err, size_t errlen);

/** The supervisor the default servers boot under (see gs_boot_start_tree). */
#define GS_BOOT_ROOT "root"

/**
 * Start the supervision tree "root" (one_for_one, 3 restarts in 5 s) whose children are specs
 * (borrowed JSON array of {"name", "behaviour", "args", "restart"}), in order: how the
 * default servers boot. Not from a runtime thread.
 * @return 0, or -1 with err describing what failed.
 */
int gs_boot_start_tree(gs_runtime_t *rt, json_t *specs, char *err, size_t errlen);

/**
 * With a store (gs_runtime_store): bring back what clients made over HTTP before the last
 * stop, in this order: the uploaded behaviours (through code, the gateway's loader; may have
 * NULL functions when there is no Lua host), then the servers, supervisors and added children
 * in the order they were first started, then the stored timers (gs_runtime_restore_timers).
 * Durable servers among them restore their state instead of running init. Something that no
 * longer starts (a behaviour gone, a name taken by a default server) is logged and skipped,
 * and its row kept, so that nothing stored is lost by a failed boot.
 * @return 0, or -1 with err when the store cannot be read.
 */
struct gs_gateway_code_s;
int gs_boot_restore(gs_runtime_t *rt, const struct gs_gateway_code_s *code, char *err,
                    size_t errlen);

/**
 * Log the runtime's events (not state_changed) one line each: started, stopped and restarted
 * at info, crashed and down at warn with the reason.
 * @param out receives the subscription; release it with gs_unsubscribe.
 */
int gs_boot_log_events(gs_runtime_t *rt, gs_subscription_t **out);

#endif
