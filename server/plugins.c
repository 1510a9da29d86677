/*
 * plugins.c: dlopen, find GS_PLUGIN_SYMBOL, check the ABI version, register the behaviours.
 *
 * A plugin resolves the gs_* and json_* functions it calls from the genserv binary itself,
 * which is linked with its symbols exported (see server/CMakeLists.txt). Plugins are opened
 * RTLD_NOW (a missing symbol fails at load, not at the first message) and RTLD_LOCAL (two
 * plugins may use the same internal names). They stay loaded until the runtime is gone.
 */
#include "plugins.h"

#include "log.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

struct gs_plugins_s {
    void **handles;
    size_t n;
};

int gs_plugins_load(gs_runtime_t *rt, char *const *paths, size_t n, gs_plugins_t **out, char *err,
                    size_t errlen)
{
    gs_plugins_t *p = calloc(1, sizeof(*p));
    size_t i, k;

    *out = p;
    if (p == NULL || (n > 0 && (p->handles = calloc(n, sizeof(void *))) == NULL)) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (i = 0; i < n; i++) {
        const gs_plugin_t *plugin;
        void *h = dlopen(paths[i], RTLD_NOW | RTLD_LOCAL);

        if (h == NULL) {
            snprintf(err, errlen, "plugin %s: %s", paths[i], dlerror());
            return -1;
        }
        p->handles[p->n++] = h;
        plugin = dlsym(h, GS_PLUGIN_SYMBOL);
        if (plugin == NULL) {
            snprintf(err, errlen, "plugin %s: no symbol \"%s\"", paths[i], GS_PLUGIN_SYMBOL);
            return -1;
        }
        if (plugin->abi_version != GS_PLUGIN_ABI_VERSION) {
            snprintf(err, errlen, "plugin %s: ABI version %u, this genserv speaks %u", paths[i],
                     plugin->abi_version, GS_PLUGIN_ABI_VERSION);
            return -1;
        }
        if (plugin->count > 0 && plugin->behaviours == NULL) {
            snprintf(err, errlen, "plugin %s: count %zu but no behaviours", paths[i],
                     plugin->count);
            return -1;
        }
        for (k = 0; k < plugin->count; k++) {
            const gs_behaviour_t *b = plugin->behaviours[k];
            int rc = b != NULL ? gs_behaviour_register_as(rt, b, "plugin") : GS_EINVAL;

            if (rc < 0) {
                snprintf(err, errlen, "plugin %s: behaviour #%zu (%s): %s", paths[i], k,
                         b != NULL && b->name != NULL ? b->name : "?", gs_strerror(rc));
                return -1;
            }
            gs_log(GS_LOG_INFO, "plugins: %s registers behaviour \"%s\"", paths[i], b->name);
        }
    }
    return 0;
}

void gs_plugins_destroy(gs_plugins_t *p)
{
    size_t i;

    if (p == NULL)
        return;
    for (i = 0; i < p->n; i++)
        dlclose(p->handles[i]);
    free(p->handles);
    free(p);
}
