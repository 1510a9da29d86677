#!/usr/bin/env bash
# Run every libFuzzer target for a bounded time (docs/fuzzing.md).
#   scripts/fuzz.sh                 each target for FUZZ_SECONDS (default 60) seconds
#   scripts/fuzz.sh behaviours      only the targets named (request, behaviours, headers,
#                                   lua_convert, lua_behaviour, store_rows)
#   FUZZ_SECONDS=300 scripts/fuzz.sh
# Installs clang and libFuzzer's runtime when missing, builds build-fuzz/ (clang,
# -DGS_FUZZ=ON: -fsanitize=fuzzer,address,undefined), then runs the targets one after the
# other, each on a copy of its seed corpus (fuzz/corpus/<target>/ plus fuzz/regressions/) in a
# temporary directory, so the repository is never modified. Exits non-zero when a target
# finds a crash, a leak, a timeout or runs out of memory, printing the reproducer and the
# command that replays it; the work directory is then kept (also when interrupted), and
# removed otherwise (scripts/lib/cleanup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/cleanup.sh
. scripts/lib/cleanup.sh

seconds=${FUZZ_SECONDS:-60}
jobs=${JOBS:-$(nproc)}
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(request behaviours headers lua_convert lua_behaviour store_rows)

# Build dependencies, then what fuzzing adds: clang and its runtimes (libFuzzer, ASan).
scripts/deps.sh build clang libclang-rt-14-dev

CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGS_FUZZ=ON \
    -DGS_BUILD_TESTS=OFF -DGS_BUILD_BENCH=OFF >/dev/null
cmake --build build-fuzz -j"$jobs" --target "${targets[@]/#/fuzz_}"

work=""
cleanup_workdir work "${TMPDIR:-/tmp}/genserv-fuzz.XXXXXX"
failed=0
for t in "${targets[@]}"; do
    bin=build-fuzz/fuzz/fuzz_$t
    corpus=$work/$t/corpus
    artifacts=$work/$t/artifacts
    log=$work/$t/fuzz.log
    mkdir -p "$corpus" "$artifacts"
    # The seeds and every past crash start the run; new inputs go to the copy only.
    cp fuzz/corpus/"$t"/* "$corpus"/
    find fuzz/regressions/"$t" -type f ! -name '.*' -exec cp {} "$corpus"/ \;
    dict=()
    [ -f fuzz/"$t".dict ] && dict=(-dict=fuzz/"$t".dict)

    printf '\n==== fuzz_%s for %s s\n' "$t" "$seconds"
    rc=0
    # LeakSanitizer checks every input (-detect_leaks) and the whole process at exit.
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
        "$bin" "$corpus" "${dict[@]}" -max_total_time="$seconds" -timeout=5 \
        -rss_limit_mb=2048 -artifact_prefix="$artifacts"/ -print_final_stats=1 \
        >"$log" 2>&1 || rc=$?
    grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb|#[0-9]+ +DONE)' \
        "$log" || true

    found=$(find "$artifacts" -type f | sort)
    if [ "$rc" -ne 0 ] || [ -n "$found" ]; then
        failed=1
        echo "fuzz_$t FAILED (exit $rc); the end of its log ($log):" >&2
        tail -n 60 "$log" >&2
        for f in $found; do
            echo "reproducer: $f" >&2
            echo "  replay:   $bin $f" >&2
            echo "  keep it:  cp $f fuzz/regressions/$t/<what-it-breaks>" >&2
        done
    fi
done

if [ "$failed" -ne 0 ]; then
    echo "fuzzing found problems; work directory kept: $work" >&2
    exit 1
fi
echo "fuzzing: no crash in ${targets[*]} (${seconds} s each)"
