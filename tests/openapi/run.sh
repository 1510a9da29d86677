#!/usr/bin/env bash
# The OpenAPI test's CTest entry: tests/openapi/run.sh PATH/TO/genserv
# Lints docs/openapi.yaml with Redocly CLI and checks the real genserv's answers against it
# (openapi.test.mjs). Installs the pinned npm packages first when they are missing (a fresh
# clone). Exits 77 (CTest: skipped) when node is not installed; scripts/deps.sh test installs
# it.
set -euo pipefail
genserv=$(realpath "${1:?usage: run.sh PATH/TO/genserv}")
cd "$(dirname "$0")"

if ! command -v node >/dev/null; then
    echo "openapi test skipped: node is not installed (scripts/deps.sh test)" >&2
    exit 77
fi
# npm ci when node_modules is missing or older than the lock file. A lock directory keeps two
# concurrent runs from installing over each other.
if [ ! -d node_modules/@redocly/cli ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    lock=.npm-install.lock
    for _ in $(seq 1 120); do mkdir "$lock" 2>/dev/null && break; sleep 1; done
    trap 'rmdir "$lock" 2>/dev/null || true' EXIT
    if [ ! -d node_modules/@redocly/cli ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
        npm ci --no-audit --no-fund --loglevel=error
    fi
    rmdir "$lock" 2>/dev/null || true
    trap - EXIT
fi
# Redocly would otherwise send usage telemetry and check for updates over the network.
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true
# exec: CTest's timeout and ^C reach node itself, whose handlers kill genserv by PID.
exec node openapi.test.mjs --genserv "$genserv" --spec ../../docs/openapi.yaml --web ../../web
