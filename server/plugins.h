/*
 * plugins.h: loading behaviour plugins (shared objects exporting `const gs_plugin_t
 * gs_plugin`, see genserv.h) and registering their behaviours with a runtime.
 */
#ifndef GS_SERVER_PLUGINS_H
#define GS_SERVER_PLUGINS_H

#include <genserv/genserv.h>

#include <stddef.h>

typedef struct gs_plugins_s gs_plugins_t;

/**
 * dlopen every path (borrowed), check its ABI version and register its behaviours with rt.
 * Stops at the first failure.
 * @param out receives the loaded set (owned by the caller; release with gs_plugins_destroy
 *            after gs_runtime_destroy, since the runtime borrows the behaviours), also on
 *            failure, holding what was loaded until then.
 * @param err receives a sentence on failure.
 * @return 0, or -1 with err set.
 */
int gs_plugins_load(gs_runtime_t *rt, char *const *paths, size_t n, gs_plugins_t **out, char *err,
                    size_t errlen);

/** dlclose everything. Only once no runtime uses the behaviours. Accepts NULL. */
void gs_plugins_destroy(gs_plugins_t *p);

#endif
