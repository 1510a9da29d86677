#!/bin/sh
# Measure the OTP side of docs/performance.md on this machine: compile gs_bench.erl and run
# it on two schedulers, like the C benchmark's default runtime on this 2-core machine.
# Usage: bench/erlang/run.sh [quick|full] [RUNS] [ONLY] [JSON]   (defaults: full 3 all, no JSON)
#   ONLY  all, or a comma-separated list of idle,cast,call,timers,batcher,hibernate
#   JSON  a file to write the results to, in runtime_bench's --json layout (bench/compare)
# GS_BENCH_EBIN=DIR compiles into DIR, and only when gs_bench.beam there is older than the
# source, so that a harness running one scenario at a time compiles once.
set -eu
mode=${1:-full}
runs=${2:-3}
only=${3:-all}
json=${4:-}
here=$(cd "$(dirname "$0")" && pwd)
if [ -n "${GS_BENCH_EBIN:-}" ]; then
    out=$GS_BENCH_EBIN
    mkdir -p "$out"
else
    out=$(mktemp -d)
    trap 'rm -rf "$out"' EXIT
fi
if [ ! "$out/gs_bench.beam" -nt "$here/gs_bench.erl" ]; then
    erlc -o "$out" "$here/gs_bench.erl"
fi
# +S 2: two schedulers, as issue 2 says. +P: room for a million idle processes, given only
# when the full idle scenario runs: the larger process table costs about 23 MB of RSS, which
# would otherwise count against OTP in every other scenario's peak RSS (the default, 262,144
# processes, fits every other scenario and the quick idle one).
procs=""
if [ "$mode" = full ]; then
    case ",$only," in
    *,idle,* | ,all,) procs="+P 2000000" ;;
    esac
fi
# No exec under a trap: the temporary directory must outlive erl, then go.
# shellcheck disable=SC2086 # $procs is empty or two words
erl +S 2 $procs -noshell -pa "$out" \
    -eval "gs_bench:main([\"$mode\", \"$runs\", \"$only\", \"$json\"]), halt()."
