#!/usr/bin/env bash
# Quick start, part one: install what is missing, build in Release, and start genserv with
# its default servers and the dashboard on http://127.0.0.1:8080 (arguments go to genserv,
# e.g. scripts/run.sh --listen 127.0.0.1:9000). What clients start over HTTP, durable servers
# and stored timers are kept in ./data (docs/durability.md); GENSERV_DATA_DIR or --data-dir
# chooses another directory.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DGS_BUILD_TESTS=OFF -DGS_BUILD_BENCH=OFF >/dev/null
cmake --build build-release -j"$(nproc)" --target genserv
export GENSERV_DATA_DIR="${GENSERV_DATA_DIR:-./data}"
exec build-release/genserv "$@"
