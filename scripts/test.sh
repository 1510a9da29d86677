#!/usr/bin/env bash
# Quick start, part two: install what is missing, then build and run every test:
#   1. gcc, RelWithDebInfo: unit, integration and browser tests (build/); the browser test
#      drives the dashboard in headless Chromium (tests/browser/, npm ci on first run)
#   2. clang, AddressSanitizer + UndefinedBehaviorSanitizer: the same suite (build-asan/)
#   3. clang, ThreadSanitizer: the runtime's tests (build-tsan/)
#   4. clang-format: every C file is formatted per .clang-format
# Every build is warning-free with -Werror. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test
jobs=$(nproc)

step() { printf '\n==== %s\n' "$*"; }

step "gcc build and tests"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure --timeout 300)

step "clang ASan+UBSan build and tests"
CC=clang cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DGS_SANITIZE=address \
    -DGS_BUILD_BENCH=OFF >/dev/null
cmake --build build-asan -j"$jobs"
# The browser test runs here too: under ASan it takes about as long as without (~25 s against
# ~20 s on two cores) and drives the gateway's event streams, held calls and shutdown from a
# real browser, checking that genserv exits 0 (a leak would not). If it ever turns slow or
# flaky under the sanitizer, add -LE browser here: the gcc run above already covers web/.
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure --timeout 600)

step "clang TSan build and runtime tests"
CC=clang cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DGS_SANITIZE=thread \
    -DGS_BUILD_BENCH=OFF >/dev/null
cmake --build build-tsan -j"$jobs"
# -L runtime selects the runtime's tests only, so the browser test never runs under TSan.
(cd build-tsan && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
    ctest -L runtime --output-on-failure --timeout 900)

step "formatting"
files=$(git ls-files '*.c' '*.h')
if ! clang-format --dry-run --Werror $files; then
    echo "not formatted per .clang-format: run clang-format -i on the files above" >&2
    exit 1
fi
echo "all checks passed"
