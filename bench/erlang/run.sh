#!/bin/sh
# Measure the OTP side of docs/performance.md on this machine: compile gs_bench.erl and run
# it on two schedulers, like the C benchmark's default runtime on this 2-core machine.
# Usage: bench/erlang/run.sh [quick|full] [RUNS]   (defaults: full 3)
set -eu
mode=${1:-full}
runs=${2:-3}
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
erlc -o "$out" "$here/gs_bench.erl"
# +P: room for a million idle processes and the rest; +S 2: two schedulers, as issue 2 says.
exec erl +S 2 +P 2000000 -noshell -pa "$out" \
    -eval "gs_bench:main([\"$mode\", \"$runs\"]), halt()."
