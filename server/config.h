/*
 * config.h: the binary's settings from flags, environment, config file and defaults.
 *
 * Every setting has a flag (--max-body-bytes N), an environment variable named GENSERV_ and
 * the flag in capitals with '-' as '_' (GENSERV_MAX_BODY_BYTES), and a key in the JSON config
 * file (limits.max_body_bytes). Precedence: flag > environment > config file > default. For
 * the one list, the plugins, the highest source that gives any replaces the lower ones
 * (GENSERV_PLUGIN holds a ':'-separated list).
 *
 * The config file may also list the servers to start at boot ("servers"); without a config
 * file, or with one that has no "servers" key, the embedded default set is started.
 */
#ifndef GS_SERVER_CONFIG_H
#define GS_SERVER_CONFIG_H

#include <genserv/gateway.h>
#include <genserv/lua.h>
#include <genserv/store.h>

#include "log.h"

#include <stdbool.h>
#include <stdio.h>

typedef struct gs_config_s {
    char *listen; /* "HOST:PORT" as given */
    char *host;   /* HOST without brackets */
    uint16_t port;
    char *config_path; /* NULL without a config file */
    unsigned schedulers;
    gs_log_level_t log_level;
    gs_log_format_t log_format; /* --log-format: text or json */
    char *access_log;           /* owned; --access-log: a file, "-" (stderr), or NULL (off) */
    int drain_ms;               /* --drain-ms: /readyz says 503 this long before closing */
    char **plugins;             /* nplugins owned paths */
    size_t nplugins;
    size_t mailbox_limit;
    int shutdown_timeout_ms;
    /* The gateway's numeric settings (GS_GATEWAY_LIMITS_MAP); its strings are the fields
     * below, copied in by gs_config_gateway_options. */
    gs_gateway_options_t gateway;
    /* The runtime's options: schedulers, mailbox_limit and GS_RUNTIME_LIMITS_MAP's bounds. */
    gs_runtime_options_t runtime;
    char *token;        /* owned; NULL: no token */
    char *read_token;   /* owned; NULL: none */
    char *cors_origins; /* owned; NULL: CORS off */
    /* The Lua host's limits (GS_LUA_LIMITS_MAP; its log callback is main.c's to set). */
    gs_lua_options_t lua;
    char *behaviours_dir; /* owned; NULL: no folder of Lua behaviours */
    char *data_dir;       /* owned; NULL: nothing is stored (everything lives in memory) */
    gs_durability_t durability;
    bool health_check; /* --health-check: probe GET /healthz instead of serving */
    /* [{"name", "behaviour", "args", "restart", ...}]: a new reference, never NULL. */
    json_t *servers;
    /* servers is the embedded default set (no config file listed any): it boots as the
     * children of the supervisor "root" (gs_boot_start_tree). */
    bool servers_default;
} gs_config_t;

/** What gs_config_load found. */
typedef enum gs_config_result_e {
    GS_CONFIG_OK = 0,    /* run */
    GS_CONFIG_EXIT = 1,  /* --help or --version was printed: exit 0 */
    GS_CONFIG_ERROR = 2, /* err says what is wrong: exit 2 */
} gs_config_result_t;

/**
 * Fill cfg from argv (borrowed), the environment and the config file.
 * @param out where --help and --version print (borrowed).
 * @param err receives a sentence on GS_CONFIG_ERROR (errlen bytes).
 * On any result cfg must be released with gs_config_close().
 */
gs_config_result_t gs_config_load(gs_config_t *cfg, int argc, char **argv, FILE *out, char *err,
                                  size_t errlen);

/** Release what cfg owns. cfg itself is the caller's. */
void gs_config_close(gs_config_t *cfg);

/** Copy the gateway's settings from cfg into opts (whose strings then borrow cfg's). */
void gs_config_gateway_options(const gs_config_t *cfg, gs_gateway_options_t *opts);

#endif
