#!/usr/bin/env bash
# Static analysis with zero findings as the bar:
#   clang-tidy  the checks of .clang-tidy (each one left out is there with its reason)
#   cppcheck    warning, style, performance, portability (variableScope off: blocks declare
#               their variables at the top in some files, on purpose)
# over the project's own C: runtime/, api/, server/, examples/, fuzz/ (tests/ and bench/ are
# exercised by running them). Needs a compile_commands.json: this configures build-tidy/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build clang clang-tidy cppcheck
CC=clang cmake -S . -B build-tidy -DCMAKE_EXPORT_COMPILE_COMMANDS=ON -DGS_BUILD_BENCH=OFF \
    >/dev/null
# The embedded web assets are generated sources: build them so every file compiles.
cmake --build build-tidy -j"$(nproc)" --target genserv_api >/dev/null
files=$(git ls-files 'runtime/*.c' 'api/*.c' 'server/*.c' 'examples/*.c' 'fuzz/*.c')

echo "clang-tidy ($(clang-tidy --version | sed -n 's/.*version //p' | head -1))"
status=0
# shellcheck disable=SC2086
printf '%s\n' $files | xargs -P "$(nproc)" -n 4 clang-tidy -p build-tidy --quiet 2>/dev/null \
    >build-tidy/clang-tidy.txt || status=1
if grep -E "warning:|error:" build-tidy/clang-tidy.txt; then
    echo "clang-tidy: findings above" >&2
    status=1
fi

echo "cppcheck ($(cppcheck --version))"
# shellcheck disable=SC2086
if ! cppcheck --enable=warning,style,performance,portability --std=c11 --inline-suppr \
    --error-exitcode=1 --quiet --suppress=missingIncludeSystem --suppress=variableScope \
    -D_GNU_SOURCE -I include -I runtime -I api -I server $files; then
    echo "cppcheck: findings above" >&2
    status=1
fi
[ "$status" -eq 0 ] && echo "lint: no findings"
exit "$status"
