/*
 * genserv/message.h: helpers for behaviours (built-in, plugin, embedded) that read messages and
 * init arguments in the JSON convention of docs/behaviours.md, and answer in it.
 *
 * The convention mirrors Elixir terms: an atom is a JSON string (:increment -> "increment"), a
 * tuple is an array whose first element is its tag ({:push, 1} -> ["push", 1]). Every built-in
 * uses these helpers, so that they agree with each other and with the docs; a plugin that uses
 * them too reads and answers messages the same way.
 *
 * Every function here is pure (no runtime, no I/O), may be called from any thread, and
 * borrows every json_t it is given unless it says otherwise. Functions returning json_t* return
 * a new reference (NULL only when out of memory).
 */
#ifndef GENSERV_MESSAGE_H
#define GENSERV_MESSAGE_H

#include <genserv/genserv.h>

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The range of json_int_t, which jansson's headers do not name. */
#if JSON_INTEGER_IS_LONG_LONG
#define GS_JSON_INT_MAX LLONG_MAX
#define GS_JSON_INT_MIN LLONG_MIN
#else
#define GS_JSON_INT_MAX LONG_MAX
#define GS_JSON_INT_MIN LONG_MIN
#endif

/**
 * About how many bytes of memory v takes (jansson's records, strings, arrays' and objects'
 * tables, the allocator's headers), for bounding what a behaviour keeps in bytes and not only
 * in entries. An estimate within a small factor of the truth; 0 for NULL and for the shared
 * null, true and false. O(size of v).
 */
size_t gs_json_size(const json_t *v);

/** True when msg is the atom `atom`, i.e. the JSON string atom. */
bool gs_msg_is_atom(const json_t *msg, const char *atom);

/**
 * True when msg is the tuple {tag, ...} of exactly `arity` elements (tag included), i.e. a
 * JSON array of that size whose first element is the string tag.
 */
bool gs_msg_is_tuple(const json_t *msg, const char *tag, size_t arity);

/**
 * Read an integer that must lie in [min, max].
 * @return true and *out on success; false (*out untouched) when v is not an integer (reals
 *         are refused so that sums stay exact) or lies outside the range.
 */
bool gs_json_int_in(const json_t *v, json_int_t min, json_int_t max, json_int_t *out);

/**
 * Add without undefined behaviour: true and *out = a + b, or false when the sum does not fit
 * in a json_int_t (a wrapped counter would be a lie).
 */
bool gs_json_int_add(json_int_t a, json_int_t b, json_int_t *out);

/** The reply ["error", code] (code borrowed, copied): a new reference. */
json_t *gs_msg_error(const char *code);

/**
 * The answer to a call a behaviour does not understand: GS_REPLY(["error",
 * "unknown_message"]).
 *
 * A deliberate difference from Elixir, where an unmatched handle_call clause crashes the
 * server with a FunctionClauseError: over HTTP a typo in a message must not reset a server's
 * state, so the built-ins answer with an error and carry on. A behaviour that wants OTP's
 * crash leaves handle_call NULL instead (the runtime then crashes it with ["bad_call", msg]).
 */
gs_result_t gs_reply_unknown_message(void);

/** The answer to a known call with invalid arguments: GS_REPLY(["error", "bad_argument"]). */
gs_result_t gs_reply_bad_argument(void);

/**
 * A handle_cast or handle_info that ignores every message, for behaviours that take none. A
 * NULL handle_cast would crash the server on any cast (OTP's bad_cast); a behaviour that
 * ignores what it does not understand says so explicitly with this.
 */
gs_result_t gs_ignore_message(gs_server_t *self, void *state, json_t *msg);

/** A new ["bad_args", explanation] for init's *reason (explanation borrowed, copied). */
json_t *gs_bad_args(const char *explanation);

/**
 * Check init arguments: args must be JSON null (or NULL) or an object whose keys are all in
 * `allowed` (a NULL-terminated list of borrowed strings), so that a typo such as
 * "intervall_ms" is refused rather than silently ignored.
 * @return 0, or -1 with *reason set to a new ["bad_args", explanation].
 */
int gs_args_check(const json_t *args, const char *const allowed[], json_t **reason);

/**
 * Read the optional integer args[key] into *out, which keeps its default when the key (or
 * args) is absent. The value must be an integer in [min, max].
 * @return 0, or -1 with *reason set to a new ["bad_args", explanation].
 */
int gs_args_int(const json_t *args, const char *key, json_int_t min, json_int_t max,
                json_int_t *out, json_t **reason);

/**
 * Read the optional boolean args[key] into *out (unchanged when absent).
 * @return 0, or -1 with *reason set to a new ["bad_args", explanation].
 */
int gs_args_bool(const json_t *args, const char *key, bool *out, json_t **reason);

#ifdef __cplusplus
}
#endif
#endif /* GENSERV_MESSAGE_H */
