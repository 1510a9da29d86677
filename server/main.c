/*
 * main.c: the genserv binary. It only wires the parts together, in this order:
 *
 *   signals blocked -> config (flags > env > file > defaults) -> open-file limit
 *   -> store (--data-dir: exit 3 if it cannot be opened) -> runtime (reads the stored
 *      states) + built-in behaviours + plugins + Lua host (and --behaviours-dir)
 *   -> HTTP gateway (its code loader: the Lua host): the port opens, /livez answers, /readyz
 *      and every route that reaches the runtime answer 503 not_ready until ready
 *   -> boot servers -> what the store kept (uploaded behaviours, servers and supervisors
 *      started over HTTP, then stored timers) -> ready (GET /readyz 200)
 *   -> "listening on http://HOST:PORT" (first stdout line) -> wait for SIGTERM/SIGINT
 *   -> drain: GET /readyz 503 while everything else still serves, for --drain-ms
 *   -> gateway stops accepting -> runtime destroyed (held calls answered 503, terminates run)
 *   -> gateway waits for the answers to go out and stops -> Lua host and plugins freed
 *   -> store closed (what was queued commits first)
 *   -> exit 0
 *
 * With a client subcommand as its first argument (`genserv call counter get_count`, cli.h) it
 * is the command-line client instead, and none of the above runs.
 *
 * With --health-check it serves nothing: it probes GET /readyz on the configured listen
 * address and exits 0 (healthy) or 1, the codes a container HEALTHCHECK expects.
 *
 * A watchdog bounds the shutdown: if it takes longer than shutdown_timeout_ms plus a grace
 * period, the process logs it and exits 1 rather than hang.
 */
#include "boot.h"
#include <genserv/builtins.h>
#include "cli.h"
#include "config.h"
#include <genserv/gateway.h>
#include <genserv/genserv.h>
#include <genserv/store.h>
#include "healthcheck.h"
#include "log.h"
#include "lua_host.h"
#include "plugins.h"
#include "process.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef GS_WITH_JEMALLOC
/*
 * jemalloc's settings, read when it starts: freed pages go back to the kernel (MADV_DONTNEED)
 * a second after they stop being used, instead of being kept "muzzy" (MADV_FREE, still
 * counted in RSS until the kernel wants them) for ten. What a burst of large requests
 * allocated then leaves RSS within seconds, which is what an operator and a memory limit see.
 * MALLOC_CONF in the environment still overrides it.
 */
const char *malloc_conf = "dirty_decay_ms:1000,muzzy_decay_ms:0";
#endif

/* The exit status when the store (--data-dir) cannot be opened or read (docs/durability.md). */
#define GS_EXIT_STORE 3

/* File descriptors kept for everything but HTTP connections (epoll, eventfds, plugins). */
#define GS_RESERVED_FDS      128u
#define GS_WATCHDOG_GRACE_MS 5000

/* Written before the watchdog thread is created, read only by it. */
static int watchdog_ms;

static void *watchdog(void *arg)
{
    int ms = watchdog_ms + GS_WATCHDOG_GRACE_MS;
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    (void)arg;
    nanosleep(&ts, NULL);
    gs_log(GS_LOG_ERROR, "shutdown did not finish within %d ms; exiting", ms);
    _exit(1);
    return NULL;
}

static void fit_connections(gs_config_t *cfg)
{
    unsigned long want = (unsigned long)cfg->gateway.max_connections + GS_RESERVED_FDS;
    unsigned long have = gs_process_raise_nofile(want);

    if (have < want) {
        unsigned long fit = have > 2 * GS_RESERVED_FDS ? have - GS_RESERVED_FDS : have / 2;

        gs_log(GS_LOG_WARN, "open-file limit is %lu (hard); max_connections lowered from %u to %lu",
               have, cfg->gateway.max_connections, fit);
        cfg->gateway.max_connections = (unsigned)fit;
    }
}

int main(int argc, char **argv)
{
    gs_config_t cfg;
    gs_runtime_options_t ro;
    gs_gateway_options_t go;
    gs_runtime_t *rt = NULL;
    gs_plugins_t *plugins = NULL;
    gs_lua_t *lua = NULL;
    gs_gateway_code_t code;
    gs_gateway_t *gw = NULL;
    gs_subscription_t *logsub = NULL;
    gs_store_t *store = NULL;
    pthread_t dog;
    char err[512];
    int rc, sig, status = 1;

    if (argc > 1 && gs_cli_is_command(argv[1]))
        return gs_cli_main(argc, argv);
    gs_process_block_signals();
    switch (gs_config_load(&cfg, argc, argv, stdout, err, sizeof(err))) {
    case GS_CONFIG_OK:
        break;
    case GS_CONFIG_EXIT:
        gs_config_close(&cfg);
        return 0;
    case GS_CONFIG_ERROR:
        fprintf(stderr, "genserv: %s\n", err);
        rc = cfg.health_check ? 1 : 2; /* a health check only ever says 0 or 1 */
        gs_config_close(&cfg);
        return rc;
    }
    if (cfg.health_check) {
        rc = gs_healthcheck_run(cfg.host, cfg.port, GS_HEALTHCHECK_TIMEOUT_MS);
        gs_config_close(&cfg);
        return rc;
    }
    gs_log_set_level(cfg.log_level);
    gs_log_set_format(cfg.log_format);
    if (gs_log_access_open(cfg.access_log, err, sizeof(err)) < 0) {
        gs_log(GS_LOG_ERROR, "%s", err);
        gs_config_close(&cfg);
        return 2;
    }
    if (cfg.config_path != NULL)
        gs_log(GS_LOG_INFO, "config: %s", cfg.config_path);
    fit_connections(&cfg);

    ro = cfg.runtime;
    if (cfg.data_dir != NULL) {
        /* A store that cannot be opened stops the start: running without it would lose
         * every durable write (exit 3, the message names the file). */
        if (gs_store_sqlite_open(cfg.data_dir, cfg.durability, &store, err, sizeof(err)) != 0) {
            gs_log(GS_LOG_ERROR, "store: %s", err);
            status = GS_EXIT_STORE;
            goto out;
        }
        gs_log(GS_LOG_INFO, "store: %s (durability %s)", store->location,
               cfg.durability == GS_DURABILITY_POWER ? "power" : "process");
        ro.store = store;
    }
    rc = gs_runtime_create(&ro, &rt);
    if (rc < 0) {
        gs_log(GS_LOG_ERROR, "runtime: %s%s%s", gs_strerror(rc), store != NULL ? ": " : "",
               store != NULL ? store->last_error(store) : "");
        if (rc == GS_ESTORAGE)
            status = GS_EXIT_STORE;
        goto out;
    }
    gs_log(GS_LOG_INFO, "runtime: %u scheduler thread(s)", gs_runtime_schedulers(rt));
    rc = gs_builtins_register(rt);
    if (rc < 0) {
        gs_log(GS_LOG_ERROR, "builtins: %s", gs_strerror(rc));
        goto out;
    }
    if (gs_plugins_load(rt, cfg.plugins, cfg.nplugins, &plugins, err, sizeof(err)) < 0) {
        gs_log(GS_LOG_ERROR, "%s", err);
        goto out;
    }
    if (gs_lua_host_start(rt, &cfg, &lua, &code, err, sizeof(err)) < 0) {
        gs_log(GS_LOG_ERROR, "%s", err);
        goto out;
    }
    if (gs_boot_log_events(rt, &logsub) < 0)
        gs_log(GS_LOG_WARN, "runtime events will not be logged");

    /* The port opens before the boot servers start and the store's servers are restored (a
     * million of them take half a minute): meanwhile /livez answers 200, /readyz 503 with
     * what is left, and every route that reaches the runtime 503 not_ready. */
    gs_config_gateway_options(&cfg, &go);
    go.log_cb = gs_log_line_cb;
    go.code = code;
    go.access_log_cb = cfg.access_log != NULL ? gs_log_access_cb : NULL;
    go.hold_until_ready = true;
    rc = gs_gateway_create(rt, &go, &gw, err, sizeof(err));
    if (rc < 0) {
        gs_log(GS_LOG_ERROR, "http: %s", err);
        goto out;
    }
    /* Built-ins, plugins and --behaviours-dir are loaded; with no store there is nothing to
     * restore. */
    gs_gateway_set_ready(gw, GS_READY_BEHAVIOURS | (store == NULL ? GS_READY_STORE : 0u));
    /* The default servers form a tree under "root"; servers a config file lists start alone,
     * as POST /servers starts them (docs/API.md, Configuration). */
    if ((cfg.servers_default ? gs_boot_start_tree(rt, cfg.servers, err, sizeof(err))
                             : gs_boot_start_servers(rt, cfg.servers, err, sizeof(err))) < 0) {
        gs_log(GS_LOG_ERROR, "boot: %s", err);
        goto out;
    }
    gs_gateway_set_ready(gw, GS_READY_SERVERS);
    /* What clients started and uploaded over HTTP before the last stop, and stored timers. */
    if (gs_boot_restore(rt, &code, err, sizeof(err)) < 0) {
        gs_log(GS_LOG_ERROR, "store: %s", err);
        status = GS_EXIT_STORE;
        goto out;
    }

    gs_gateway_set_ready(gw, GS_READY_STORE);
    /* The contract with scripts and tests: exactly this, first, on stdout, flushed, once
     * genserv is ready (the port was open before; see above). */
    if (strchr(cfg.host, ':') != NULL)
        printf("listening on http://[%s]:%u\n", cfg.host, (unsigned)gs_gateway_port(gw));
    else
        printf("listening on http://%s:%u\n", cfg.host, (unsigned)gs_gateway_port(gw));
    fflush(stdout);

    sig = gs_process_wait_signal();
    gs_log(GS_LOG_INFO, "signal %d: shutting down", sig);
    /* A load balancer polling /readyz sees 503 and stops sending work while everything
     * still serves; only then does the listening socket close. */
    gs_gateway_drain(gw);
    if (cfg.drain_ms > 0) {
        struct timespec ts = {cfg.drain_ms / 1000, (long)(cfg.drain_ms % 1000) * 1000000L};

        gs_log(GS_LOG_INFO, "draining for %d ms", cfg.drain_ms);
        nanosleep(&ts, NULL);
    }
    watchdog_ms = cfg.shutdown_timeout_ms;
    if (pthread_create(&dog, NULL, watchdog, NULL) == 0)
        pthread_detach(dog);
    status = 0;

out:
    gs_gateway_shutdown(gw);
    if (logsub != NULL)
        gs_unsubscribe(rt, logsub);
    if (rt != NULL)
        gs_runtime_destroy(rt); /* answers every held call, runs every terminate */
    if (gw != NULL && gs_gateway_destroy(gw, cfg.shutdown_timeout_ms) < 0 && status == 0)
        gs_log(GS_LOG_WARN, "http: some answers may not have been sent");
    gs_lua_destroy(lua); /* after the runtime: no server runs its code any more */
    gs_plugins_destroy(plugins);
    if (store != NULL)
        store->destroy(store); /* after the runtime: it waited for its last commits */
    gs_config_close(&cfg);
    gs_log(status == 0 ? GS_LOG_INFO : GS_LOG_ERROR, "exit %d", status);
    gs_log_access_close(); /* the gateway, which wrote to it, is gone */
    return status;
}
