#!/usr/bin/env bash
# The docs test's CTest entry: tests/docs/run.sh PATH/TO/genserv [PATH/TO/plugin.so]
# Runs every shell example of README.md and docs/*.md against a real genserv and compares what
# it prints with the document (docs.test.mjs; the conventions are in README.md here). Node
# alone, no npm package. Exits 77 (CTest: skipped) when node is not installed; scripts/deps.sh
# test installs it, and jq and openssl, which the examples use.
set -euo pipefail
genserv=$(realpath "${1:?usage: run.sh PATH/TO/genserv [PATH/TO/plugin.so]}")
plugin=()
[ $# -ge 2 ] && plugin=(--plugin "$(realpath "$2")")
cd "$(dirname "$0")"

if ! command -v node >/dev/null; then
    echo "docs test skipped: node is not installed (scripts/deps.sh test)" >&2
    exit 77
fi
# exec: CTest's timeout and ^C reach node itself, which stops genserv by PID.
exec node docs.test.mjs --genserv "$genserv" --source ../.. "${plugin[@]}"
