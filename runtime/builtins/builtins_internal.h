/*
 * builtins_internal.h: what the built-in behaviours share beyond genserv/message.h, private to
 * runtime/builtins/ (stored.c): reading back a durable server's stored state.
 *
 * A stored state is what the behaviour's dump_state wrote, read back from the store at the
 * next start or on a rollback. It may be corrupt (a disk, a hand-edited row) or come from an
 * older or newer version of the behaviour, so restore reads it as strictly as init reads its
 * arguments: the exact set of keys, every integer in its range, every array within the bounds
 * the running behaviour keeps. Whatever fails is refused with ["bad_stored_state",
 * explanation], the tag the runtime itself uses for a stored text it cannot parse, and the
 * server then fails to start (or, on a rollback, crashes) instead of running on a state it
 * would never have built itself.
 *
 * Every function borrows the json_t it reads, and is pure (no runtime, any thread).
 */
#ifndef GS_BUILTINS_INTERNAL_H
#define GS_BUILTINS_INTERNAL_H

#include <stddef.h>

#include <genserv/genserv.h>

/** A new ["bad_stored_state", explanation] (explanation borrowed, copied), for *reason. */
json_t *gs__stored_refused(const char *explanation);

/**
 * What dump_state returns once it built v: v (taken) itself, or, when building it ran out of
 * memory (v is NULL), NULL with *reason set to a new "out_of_memory" (or left NULL if even
 * that cannot be made), so that every built-in's dump_state fails the same way.
 */
json_t *gs__stored_dump(json_t *v, json_t **reason);

/**
 * Check that stored is an object whose keys are exactly those of fields (NULL-terminated,
 * borrowed): a missing key is a row from an older shape and an unknown one a row from a newer
 * one, and neither is half-read.
 * @return 0, or -1 with *reason set to a new ["bad_stored_state", explanation].
 */
int gs__stored_fields(const json_t *stored, const char *const fields[], json_t **reason);

/**
 * Read the integer stored[key] (key borrowed), which must lie in [min, max].
 * @return 0 and *out, or -1 with *reason set to a new ["bad_stored_state", explanation].
 */
int gs__stored_int(const json_t *stored, const char *key, json_int_t min, json_int_t max,
                   json_int_t *out, json_t **reason);

/**
 * Read the array stored[key] (key borrowed), which must hold at most max_len values taking at
 * most max_bytes in all (gs_json_size, as the behaviours count what they keep).
 * @param out   receives a deep copy (new reference): the stored JSON is only borrowed, and the
 *              state must share nothing with it.
 * @param bytes receives the values' gs_json_size in all.
 * @return 0, or -1 with *reason set to a new ["bad_stored_state", explanation] (or
 *         "out_of_memory": the copy's size comes from the row, so it fails softly).
 */
int gs__stored_array(const json_t *stored, const char *key, size_t max_len, size_t max_bytes,
                     json_t **out, size_t *bytes, json_t **reason);

#endif /* GS_BUILTINS_INTERNAL_H */
