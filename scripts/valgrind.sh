#!/usr/bin/env bash
# The integration suite with every genserv it starts running under valgrind's memcheck: any
# invalid read or write, use of uninitialised memory, or definite/indirect leak makes genserv
# exit 99, which fails the test that started it (the harness wants exit 0 after SIGTERM).
#   scripts/valgrind.sh [BUILD_DIR]     default build/ (a plain, non-sanitizer build)
# The wrapper is applied by tests/integration/harness.c (GS_TEST_WRAPPER). Tests run one at a
# time with a longer timeout: memcheck makes genserv 10-50x slower.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
scripts/deps.sh build valgrind
[ -x "$build/genserv" ] || { echo "no $build/genserv: build first (cmake --build $build)" >&2; exit 2; }
# --soname-synonyms: genserv links jemalloc; memcheck must replace its malloc as it does libc's.
# --fair-sched=yes: valgrind runs one thread at a time, and its default lock lets a busy thread
# take it back again and again; a scheduler thread running actors then starved the one whose
# timers were due (a Blocky consumer's 1 s tick came after 50 s). A ticket lock hands it round.
export GS_TEST_WRAPPER="valgrind --quiet --error-exitcode=99 --leak-check=full \
--soname-synonyms=somalloc=*jemalloc* --fair-sched=yes \
--show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
--track-origins=no --num-callers=30"
# The tests' CTest timeout (GS_INTEGRATION_TIMEOUT, 180 s) is a property that ctest --timeout
# does not override: configure the longer one (only the test list changes, nothing rebuilds).
cmake -S . -B "$build" -DGS_INTEGRATION_TIMEOUT=900 >/dev/null
cd "$build"
ctest -L integration --output-on-failure
