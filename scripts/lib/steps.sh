# shellcheck shell=bash
# Step-by-step reporting for the container scripts (scripts/container-check.sh and
# scripts/container-base.sh), so that the base image's steps count in the check's tally:
#   step TEXT          a numbered heading with the seconds since the start
#   ok TEXT            one passed assertion (counted in $passed)
#   die TEXT           a failed assertion: sets $failed and exits 1
#   need_packages PKG...   apt-get install what of the Debian packages PKG is missing
#   sudo=(...)         empty as root, (sudo) otherwise: prefix for what needs root

t0=${t0:-$SECONDS}
passed=${passed:-0}
failed=${failed:-0}

step() { printf '\n==== [%3ds] %s\n' "$((SECONDS - t0))" "$*"; }
ok() {
    passed=$((passed + 1))
    printf '  ok   %s\n' "$*"
}
die() {
    failed=1
    printf '  FAIL %s\n' "$*" >&2
    exit 1
}

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)

need_packages() {
    local p missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -gt 0 ] || return 0
    echo "  installing: ${missing[*]}"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
}
