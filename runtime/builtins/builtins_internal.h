/*
 * builtins_internal.h: small helpers shared by the built-in behaviours and nothing else.
 *
 * Every built-in reads messages in the same Elixir-shaped convention (an atom is a string, a
 * tuple is an array whose first element is its tag), answers a message it does not understand
 * in the same way, and checks its init arguments in the same way. Keeping that in one place
 * makes the behaviours agree with each other and with docs/behaviours.md. Like the behaviours
 * themselves, these helpers use genserv.h, jansson and libc only.
 */
#ifndef GS_BUILTINS_INTERNAL_H
#define GS_BUILTINS_INTERNAL_H

#include <limits.h>
#include <stdbool.h>

#include "genserv.h"

/* The range of json_int_t, which jansson's headers do not name. */
#if JSON_INTEGER_IS_LONG_LONG
#define GS__JSON_INT_MAX LLONG_MAX
#define GS__JSON_INT_MIN LLONG_MIN
#else
#define GS__JSON_INT_MAX LONG_MAX
#define GS__JSON_INT_MIN LONG_MIN
#endif

/** True when msg (borrowed) is the atom `atom`, i.e. the JSON string atom. */
bool gs__builtin_is_atom(const json_t *msg, const char *atom);

/**
 * True when msg (borrowed) is the tuple {tag, ...} of exactly `arity` elements (tag
 * included), i.e. a JSON array of that size whose first element is the string tag.
 */
bool gs__builtin_is_tuple(const json_t *msg, const char *tag, size_t arity);

/**
 * Read an integer element from a JSON value (borrowed) that must lie in [min, max].
 * @return true and *out on success; false (and *out untouched) when v is not an integer
 *         (reals are refused so that sums stay exact) or lies outside the range.
 */
bool gs__builtin_int_in(const json_t *v, json_int_t min, json_int_t max, json_int_t *out);

/**
 * Add without undefined behaviour: true and *out = a + b, or false when the sum does not fit
 * in a json_int_t (the built-ins are fuzzed, and a wrapped counter would be a lie).
 */
bool gs__builtin_add(json_int_t a, json_int_t b, json_int_t *out);

/** The reply ["error", code]: a new reference (NULL only when out of memory). */
json_t *gs__builtin_error(const char *code);

/**
 * The answer to a call a behaviour does not understand: ["error", "unknown_message"].
 *
 * This is a deliberate difference from Elixir, where an unmatched handle_call clause crashes
 * the server with a FunctionClauseError. Over HTTP a typo in a message must not reset a
 * server's state, so the built-ins answer with an error and carry on.
 */
gs_result_t gs__builtin_unknown_call(void);

/**
 * A handle_cast or handle_info that ignores every message, for behaviours that take none.
 * A NULL handle_cast would crash the server on any cast (OTP's bad_cast), and the built-ins
 * ignore what they do not understand, so they say so explicitly with this.
 */
gs_result_t gs__builtin_ignore(gs_server_t *self, void *state, json_t *msg);

/** The answer to a known call with invalid arguments: ["error", "bad_argument"]. */
gs_result_t gs__builtin_bad_argument(void);

/**
 * Check init arguments: args (borrowed) must be JSON null or an object whose keys are all in
 * `allowed` (a NULL-terminated list), so that a typo such as "intervall_ms" is refused
 * rather than silently ignored.
 * @return 0, or -1 with *reason set to a new ["bad_args", explanation].
 */
int gs__builtin_check_args(const json_t *args, const char *const allowed[], json_t **reason);

/**
 * Read the optional integer args[key] into *out, which keeps its default when the key is
 * absent. The value must be an integer in [min, max].
 * @return 0, or -1 with *reason set to a new ["bad_args", explanation].
 */
int gs__builtin_int_option(const json_t *args, const char *key, json_int_t min, json_int_t max,
                           json_int_t *out, json_t **reason);

/**
 * Read the optional boolean args[key] into *out (unchanged when absent).
 * @return 0, or -1 with *reason set to a new ["bad_args", explanation].
 */
int gs__builtin_bool_option(const json_t *args, const char *key, bool *out, json_t **reason);

/** A new ["bad_args", explanation] for init's *reason. */
json_t *gs__builtin_bad_args(const char *explanation);

#endif
