/*
 * healthcheck.h: `genserv --health-check`, the probe a container's HEALTHCHECK runs.
 *
 * It asks the genserv that the same settings describe (--listen, GENSERV_LISTEN or the config
 * file's "listen") for GET /readyz, so an image needs no curl and the probe follows the
 * address the server was given. The exit codes are those a HEALTHCHECK expects: 0 healthy,
 * 1 unhealthy.
 */
#ifndef GS_SERVER_HEALTHCHECK_H
#define GS_SERVER_HEALTHCHECK_H

#include <stdint.h>

/* The whole probe (resolve, connect, send, read the status line) gets this long. */
#define GS_HEALTHCHECK_TIMEOUT_MS 2000
/* What the probe asks: ready (200) or not (503 while starting or draining), docs/API.md. */
#define GS_HEALTHCHECK_PATH "/readyz"

/**
 * Connect to host:port, send GET /readyz and read the status line, all within timeout_ms.
 * A wildcard host (0.0.0.0 or ::), which a server listens on but a client cannot reach,
 * means this host's loopback (127.0.0.1 or ::1). One line saying what happened goes to
 * stdout on success and to stderr otherwise.
 * @param host borrowed; as in --listen, without brackets.
 * @return 0 when genserv answered 200, else 1.
 */
int gs_healthcheck_run(const char *host, uint16_t port, int timeout_ms);

#endif
