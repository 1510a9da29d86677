/*
 * builtins.c: the table of built-in behaviours and their registration, which the server
 * binary and the tests use. The helpers every built-in shares (reading Elixir-shaped JSON
 * messages, answering what they do not understand) are public: genserv/message.h.
 */
#include <genserv/builtins.h>

const gs_behaviour_t *const gs_builtin_behaviours[] = {
    &gs_builtin_counter,  &gs_builtin_journal,     &gs_builtin_slow,
    &gs_builtin_receiver, &gs_builtin_ticker,      &gs_builtin_batcher,
    &gs_builtin_producer, &gs_builtin_misbehaving, NULL,
};

int gs_builtins_register(gs_runtime_t *rt)
{
    for (size_t i = 0; gs_builtin_behaviours[i] != NULL; i++) {
        int rc = gs_behaviour_register_as(rt, gs_builtin_behaviours[i], "builtin");
        if (rc < 0)
            return rc;
    }
    return 0;
}
