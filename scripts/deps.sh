#!/usr/bin/env bash
# Install the Debian 12 packages genserv needs, and nothing that is already there.
#   scripts/deps.sh build          what building and running needs
#   scripts/deps.sh test           that, plus what the whole test suite needs
#   scripts/deps.sh build PKG...   build's, plus these (what one script adds: scripts/fuzz.sh...)
# Runs apt-get as root, or through sudo for a normal user.
set -euo pipefail

# libcurl4-openssl-dev: the binary's command-line client (genserv call ..., docs/cli.md).
build_pkgs=(build-essential cmake pkg-config libuv1-dev libjansson-dev libmicrohttpd-dev liblua5.4-dev
    libjemalloc-dev libsqlite3-dev libcurl4-openssl-dev)
# chromium, nodejs and npm: the dashboard's browser test (tests/browser/, playwright-core from npm
# driving Debian's /usr/bin/chromium). python3, nodejs, elixir and golang-go: docs/clients.md's
# programs, run by tests/clients/ (standard libraries only, nothing from pip, npm, Hex or Go's proxy).
# prometheus: its promtool checks GET /metrics (tests/integration/test_ops.c; without recommends it
# brings no running service).
test_pkgs=(libcmocka-dev curl clang libclang-rt-14-dev clang-format
    clang-tidy cppcheck valgrind chromium nodejs npm jq openssl python3 elixir golang-go prometheus)

pkgs=("${build_pkgs[@]}")
case "${1:-build}" in
build) ;;
test) pkgs+=("${test_pkgs[@]}") ;;
*) echo "usage: $0 build|test [PKG...]" >&2; exit 2 ;;
esac
[ $# -gt 0 ] && shift
pkgs+=("$@")

# A node installed from elsewhere (NodeSource's nodejs ships npm and conflicts with Debian's
# npm package) counts as installed: asking apt for npm then would try to replace it.
have_command() {
    case "$1" in
    nodejs) command -v node >/dev/null ;;
    npm) command -v npm >/dev/null ;;
    *) return 1 ;;
    esac
}

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || have_command "$p" ||
        missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=()
[ "$(id -u)" -ne 0 ] && sudo=(sudo)
echo "installing: ${missing[*]}" >&2
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
# Debian's prometheus package enables and starts its daemon (port 9090) where systemd runs; the
# tests want only its promtool, and start what they need themselves.
case " ${missing[*]} " in
*" prometheus "*)
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
        "${sudo[@]}" systemctl disable --now prometheus >/dev/null 2>&1 || true
    fi
    ;;
esac
