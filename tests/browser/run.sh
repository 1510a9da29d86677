#!/usr/bin/env bash
# The browser test's CTest entry: tests/browser/run.sh PATH/TO/genserv
# Installs the pinned npm packages first when they are missing (a fresh clone), then runs the
# test in headless Chromium. Exits 77 (CTest: skipped) when node or chromium is not installed;
# scripts/deps.sh test installs both.
set -euo pipefail
genserv=$(realpath "${1:?usage: run.sh PATH/TO/genserv}")
cd "$(dirname "$0")"

if ! command -v node >/dev/null; then
    echo "browser test skipped: node is not installed (scripts/deps.sh test)" >&2
    exit 77
fi
chromium=${GS_CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then
    echo "browser test skipped: no chromium at $chromium (scripts/deps.sh test)" >&2
    exit 77
fi
# npm ci when node_modules is missing or older than the lock file. A lock directory keeps two
# concurrent runs from installing over each other.
if [ ! -d node_modules/playwright-core ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    lock=.npm-install.lock
    for _ in $(seq 1 120); do mkdir "$lock" 2>/dev/null && break; sleep 1; done
    trap 'rmdir "$lock" 2>/dev/null || true' EXIT
    if [ ! -d node_modules/playwright-core ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
        npm ci --no-audit --no-fund --loglevel=error
    fi
    rmdir "$lock" 2>/dev/null || true
    trap - EXIT
fi
# exec: CTest's timeout and ^C reach node itself, whose handlers kill genserv by PID.
GS_CHROMIUM="$chromium" exec node dashboard.test.mjs --genserv "$genserv"
