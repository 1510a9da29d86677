/*
 * genserv/builtins.h: the behaviours that ship with genserv. Each reproduces a GenServer from
 * the Elixir lessons it names (see docs/behaviours.md) and is written against the public
 * headers only (genserv.h, message.h), exactly like a plugin. Library genserv_builtins.
 */
#ifndef GS_BUILTINS_H
#define GS_BUILTINS_H

#include <genserv/genserv.h>

extern const gs_behaviour_t gs_builtin_counter;
extern const gs_behaviour_t gs_builtin_journal;
extern const gs_behaviour_t gs_builtin_slow;
extern const gs_behaviour_t gs_builtin_receiver;
extern const gs_behaviour_t gs_builtin_ticker;
extern const gs_behaviour_t gs_builtin_batcher;
extern const gs_behaviour_t gs_builtin_producer;
extern const gs_behaviour_t gs_builtin_misbehaving;

/** Every built-in behaviour, terminated by NULL. The pointers are static storage. */
extern const gs_behaviour_t *const gs_builtin_behaviours[];

/**
 * Register every built-in behaviour with rt (gs_behaviour_register).
 * @return 0, or the first error (GS_EEXIST if one is registered already).
 */
int gs_builtins_register(gs_runtime_t *rt);

#endif
