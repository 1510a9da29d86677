#!/usr/bin/env bash
# The installed genserv, used as its users would: `cmake --install` into a temporary prefix,
# then, with nothing but that prefix and pkg-config,
#   1. build and run examples/embed/embed.c (cc ... $(pkg-config --cflags --libs genserv));
#   2. build and run examples/embed/embed_lua.c (pkg-config genserv-lua: a Lua GenServer,
#      loaded, called and upgraded);
#   3. build the example plugin out of tree (cmake, pkg-config genserv for the headers);
#   4. check that the private headers were not installed.
# Usage: check.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cmake --install "$build" --prefix "$tmp/prefix" >"$tmp/install.log"
export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig"
echo "installed: $(cd "$tmp/prefix" && find . -type f | sort | tr '\n' ' ')"

for h in runtime_internal.h mpsc.h wheel.h api_internal.h; do
    if find "$tmp/prefix" -name "$h" | grep -q .; then
        echo "FAIL: private header $h was installed" >&2
        exit 1
    fi
done

cc_flags=$(pkg-config --cflags --libs genserv)
echo "pkg-config --cflags --libs genserv: $cc_flags"
# shellcheck disable=SC2086 # the flags are words
cc -std=c17 -Wall -Wextra -Werror -o "$tmp/embed" "$src/examples/embed/embed.c" $cc_flags
out=$("$tmp/embed")
echo "$out"
expected=$'count 3\ndeferred 42'
if [ "$out" != "$expected" ]; then
    echo "FAIL: embed printed '$out', expected '$expected'" >&2
    exit 1
fi

lua_flags=$(pkg-config --cflags --libs genserv-lua)
echo "pkg-config --cflags --libs genserv-lua: $lua_flags"
# shellcheck disable=SC2086 # the flags are words
cc -std=c17 -Wall -Wextra -Werror -o "$tmp/embed_lua" "$src/examples/embed/embed_lua.c" $lua_flags
out=$("$tmp/embed_lua")
echo "$out"
expected=$'lua count 3\nlua v2 {"count":3,"was":"1"}'
if [ "$out" != "$expected" ]; then
    echo "FAIL: embed_lua printed '$out', expected '$expected'" >&2
    exit 1
fi

cmake -S "$src/examples/plugin" -B "$tmp/plugin" >/dev/null
cmake --build "$tmp/plugin" >/dev/null
test -f "$tmp/plugin/libgs_example_plugin.so"
echo "out-of-tree plugin built: libgs_example_plugin.so"
echo "install check passed"
