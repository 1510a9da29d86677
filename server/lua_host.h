/*
 * lua_host.h: the Lua host (genserv/lua.h) as the binary runs it: created with the config's
 * limits, fed the --behaviours-dir folder at boot, and wired into the gateway as its loader of
 * behaviours sent as source (gs_gateway_code_t).
 */
#ifndef GS_SERVER_LUA_HOST_H
#define GS_SERVER_LUA_HOST_H

#include "config.h"

#include <genserv/gateway.h>
#include <genserv/lua.h>

/**
 * Create the host for rt (borrowed; destroy the host after the runtime) with cfg's Lua limits,
 * its log lines going to log.c, then load every *.lua of cfg->behaviours_dir, if any.
 * @param out  receives the host (owned by the caller, gs_lua_destroy), also on failure when
 *             it was created.
 * @param code receives the gateway's loader, whose ctx borrows *out.
 * @return 0, or -1 with err (errlen bytes) saying what failed.
 */
int gs_lua_host_start(gs_runtime_t *rt, const gs_config_t *cfg, gs_lua_t **out,
                      gs_gateway_code_t *code, char *err, size_t errlen);

#endif
