/*
 * lua_host.c: see lua_host.h. The adapters below only reorder arguments: the gateway's
 * gs_gateway_code_t passes an untyped ctx first, the Lua host takes itself first.
 */
#include "lua_host.h"

#include <genserv/store.h>

#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "log.h"

#include <stdio.h>
#include <string.h>

/* gs.log and print: "lua NAME: line", at the level the code asked for (log.c escapes it). */
static void lua_log(const char *level, const char *server, const char *line, void *arg)
{
    gs_log_level_t l = GS_LOG_INFO;

    (void)arg;
    if (strcmp(level, "warning") == 0)
        l = GS_LOG_WARN;
    else if (gs_log_parse_level(level, &l) < 0)
        l = GS_LOG_INFO;
    gs_log(l, "lua %s: %s", server, line);
}

static int code_load(void *ctx, const char *name, const char *vsn, const char *source, size_t len,
                     json_t *limits, json_t **err)
{
    return gs_lua_load(ctx, name, vsn, source, len, limits, err);
}

static int code_upgrade(void *ctx, const char *name, const char *vsn, const char *source,
                        size_t len, json_t *limits, json_t *extra, gs_upgrade_cb cb, void *arg,
                        json_t **err)
{
    return gs_lua_upgrade(ctx, name, vsn, source, len, limits, extra, cb, arg, err);
}

static int code_remove(void *ctx, const char *name)
{
    return gs_lua_delete(ctx, name);
}

static json_t *code_describe(void *ctx, const char *name)
{
    return gs_lua_describe(ctx, name);
}

/* With a store: the key that signs what Lua code holds (`from` values, timer references),
 * kept in the store's meta table so that a durable Lua server's state stays valid across
 * restarts; drawn and stored the first time. -1 with err when the store cannot be used. */
static int stored_key(gs_runtime_t *rt, uint64_t key[2], char *err, size_t errlen)
{
    gs_store_t *st = gs_runtime_store(rt);
    char hex[40];
    if (st == NULL)
        return 0;
    int found = gs_store_meta_get(st, "lua_key", hex, sizeof(hex));
    if (found == 1 && strlen(hex) == 34 && hex[0] == '"' && hex[33] == '"') {
        char word[17], *end = NULL;
        bool ok = true;
        for (int i = 0; ok && i < 2; i++) {
            memcpy(word, hex + 1 + 16 * i, 16);
            word[16] = '\0';
            key[i] = strtoull(word, &end, 16);
            ok = end == word + 16;
        }
        if (ok)
            return 0;
    }
    if (found < 0 || getrandom(key, 2 * sizeof(uint64_t), 0) != (ssize_t)(2 * sizeof(uint64_t))) {
        snprintf(err, errlen, "lua: cannot read or draw the key of %s", st->location);
        return -1;
    }
    snprintf(hex, sizeof(hex), "\"%016" PRIx64 "%016" PRIx64 "\"", key[0], key[1]);
    if (gs_store_put_wait(st, GS_STORE_META, "lua_key", hex, strlen(hex)) != 0) {
        snprintf(err, errlen, "lua: cannot store its key in %s: %s", st->location,
                 st->last_error(st));
        return -1;
    }
    return 0;
}

int gs_lua_host_start(gs_runtime_t *rt, const gs_config_t *cfg, gs_lua_t **out,
                      gs_gateway_code_t *code, char *err, size_t errlen)
{
    gs_lua_options_t o = cfg->lua;
    int rc;

    o.log = lua_log;
    o.log_arg = NULL;
    *out = NULL;
    uint64_t key[2];
    if (stored_key(rt, key, err, errlen) < 0)
        return -1;
    o.key = gs_runtime_store(rt) != NULL ? key : NULL;
    rc = gs_lua_create(rt, &o, out);
    if (rc < 0) {
        snprintf(err, errlen, "lua: %s", gs_strerror(rc));
        return -1;
    }
    if (cfg->behaviours_dir != NULL) {
        char why[400];

        if (gs_lua_load_dir(*out, cfg->behaviours_dir, why, sizeof(why)) < 0) {
            snprintf(err, errlen, "behaviours-dir: %s", why);
            return -1;
        }
        gs_log(GS_LOG_INFO, "lua: loaded the behaviours of %s", cfg->behaviours_dir);
    }
    *code = (gs_gateway_code_t){.ctx = *out,
                                .load = code_load,
                                .upgrade = code_upgrade,
                                .remove = code_remove,
                                .describe = code_describe};
    return 0;
}
