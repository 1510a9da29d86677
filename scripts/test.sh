#!/usr/bin/env bash
# Quick start, part two: install what is missing, then build and run every test:
#   1. gcc, RelWithDebInfo: the layering check (scripts/layers.py), unit, integration,
#      fuzz-corpus replay, soak (60 s), browser and install tests (build/); the browser test
#      drives the dashboard in headless Chromium
#   2. clang, AddressSanitizer + UndefinedBehaviorSanitizer: the same suite (build-asan/)
#   3. clang, ThreadSanitizer: the runtime's tests, and the gateway under concurrent load (the
#      integration suite and the soak against a TSan-built genserv) (build-tsan/)
#   4. valgrind memcheck: the integration suite with every genserv under memcheck (build/)
#   5. clang libFuzzer: every fuzz target for FUZZ_SECONDS (60) each (build-fuzz/)
#   6. static analysis: clang-tidy and cppcheck, zero findings (build-tidy/)
#   7. the container image: built from the Dockerfile with podman, then run and checked
#   8. clang-format: every C file is formatted per .clang-format
# Every build is warning-free with -Werror. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test
jobs=$(nproc)

step() { printf '\n==== %s\n' "$*"; }

step "gcc build and tests"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
# The layers as ARCHITECTURE.md draws them: no private header reached across libraries, and no
# cycle between files other than the real two-way relationships scripts/layers.py lists.
scripts/layers.py build --check
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

step "clang TSan build: the runtime's tests, and the gateway under concurrent load"
CC=clang cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DGS_SANITIZE=thread \
    -DGS_BUILD_BENCH=OFF >/dev/null
cmake --build build-tsan -j"$jobs"
# runtime: the unit tests; integration and soak: a TSan-built genserv under real HTTP load (a
# race report makes genserv exit 66, which fails the test that started it). Not the browser
# test (Chromium adds nothing the soak does not) nor the fuzz replays (in the ASan run).
(cd build-tsan && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:exitcode=66 \
    ctest -L "runtime|integration|soak" --output-on-failure --timeout 900)

step "valgrind memcheck: the integration suite, every genserv under memcheck"
scripts/valgrind.sh build

step "libFuzzer: each fuzz target for ${FUZZ_SECONDS:-60} s (clang, ASan+UBSan)"
scripts/fuzz.sh

step "static analysis: clang-tidy and cppcheck"
scripts/lint.sh

step "container image: build the Dockerfile with podman and check how it runs"
scripts/container-check.sh

step "formatting"
files=$(git ls-files '*.c' '*.h')
if ! clang-format --dry-run --Werror $files; then
    echo "not formatted per .clang-format: run clang-format -i on the files above" >&2
    exit 1
fi
echo "all checks passed"
