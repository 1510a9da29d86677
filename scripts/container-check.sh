#!/usr/bin/env bash
# The container check: build the Dockerfile from this checkout and prove that the image serves
# and behaves as container platforms expect. With no Docker engine and no registry on the
# machine, it uses Debian's podman and makes the base image itself:
#
#   1. lint the Dockerfile (dockerfile-utils from npm, plus the image rules of docs/deploy.md)
#   2. debian:bookworm-slim = debootstrap --variant=minbase from the apt mirror of this
#      machine, slimmed like the official image; the tarball is cached between runs
#      (scripts/container-base.sh, which also runs on its own)
#   3. podman build --pull=never --format docker (the builder stage runs the unit tests)
#   4. the image: size bound, labels, non-root user, port, environment, health check
#   5. run it: /healthz, a smoke test over HTTP (start a server, cast, call, a deferred
#      batcher call held and released), the health status, PID 1 and its limits; the
#      command-line client inside the container (genserv call, ps, exit codes, a held call)
#   6. run it again read-only without capabilities, with a config file and a variable
#   7. SIGTERM with calls held: every one answered 503 shutting_down, exit code 0, in time
#
# Everything it makes (containers, images, podman storage) lives in a temporary directory and
# is removed on exit, also on failure or Ctrl-C, and every process it started is stopped by
# PID (scripts/lib/cleanup.sh); only the cache stays:
#   ${GS_CONTAINER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/genserv}/
# Needs root (or sudo) for apt-get, debootstrap and podman. Exits non-zero on any failed
# assertion. Settings: GS_IMAGE_MAX_MB (100), GS_DEBIAN_MIRROR (from /etc/apt),
# GS_BASE_MAX_AGE_DAYS (30: older cached bases are rebuilt to pick up security updates),
# GS_KEEP_LOGS=1 (keep the work directory with the build and container logs).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/steps.sh
. scripts/lib/steps.sh
# shellcheck source=scripts/lib/cleanup.sh
. scripts/lib/cleanup.sh
# cache, suite, base_ref and the base image's settings; container_cache_lock and
# container_base_tarball/_import.
# shellcheck source=scripts/container-base.sh
. scripts/container-base.sh

image_ref=localhost/genserv:container-check
max_mb=${GS_IMAGE_MAX_MB:-100}
dockerfile_utils_version=0.16.3
grace_s=20 # the stop timeout given to podman, like a platform's termination grace period

# ---------------------------------------------------------------------------------------------
# Cleanup: runs on every exit (scripts/lib/cleanup.sh), in this order: the processes this
# script started are stopped by PID (an unfinished build with everything under it, waited
# for before its storage is touched); the containers and images are removed; the work
# directory is removed, or kept with the logs after a failure or with GS_KEEP_LOGS=1; then
# the tally. Containers and images live in a private podman storage under $work, so removing
# them cannot touch anything else on the machine.
# ---------------------------------------------------------------------------------------------
work=""
declare -A held_pid=()
containers=()
pm_flags=()
cleanup_sudo=("${sudo[@]}")
cleanup_keep_on_success=${GS_KEEP_LOGS:-0}
tally() {
    [ "$cleanup_rc" -eq 0 ] || [ "$failed" -eq 1 ] || failed=1 # stopped by an error or a signal
    if [ "$cleanup_rc" -eq 0 ]; then
        printf '\ncontainer check passed in %ds\n' "$((SECONDS - t0))"
    else
        printf '\ncontainer check FAILED (exit %d) after %ds\n' "$cleanup_rc" \
            "$((SECONDS - t0))" >&2
    fi
    printf 'container-check: %d passed, %d failed\n' "$passed" "$failed"
}
cleanup_on_exit tally
remove_containers() {
    local c m
    [ -n "$work" ] && [ -d "$work" ] || return 0
    for c in "${containers[@]}"; do
        if [ "$cleanup_rc" -ne 0 ]; then
            echo "---- logs of container $c (last 40 lines)" >&2
            timeout 20 "${sudo[@]}" podman "${pm_flags[@]}" logs "$c" 2>&1 | tail -40 >&2
        fi
        timeout 30 "${sudo[@]}" podman "${pm_flags[@]}" rm -f -t 0 "$c" >/dev/null 2>&1
    done
    # An interrupted build leaves its working containers (buildah's, "external" to podman).
    for c in $(timeout 30 "${sudo[@]}" podman "${pm_flags[@]}" ps -a -q --external \
        2>/dev/null); do
        timeout 30 "${sudo[@]}" podman "${pm_flags[@]}" rm -f -t 0 "$c" >/dev/null 2>&1
    done
    timeout 60 "${sudo[@]}" podman "${pm_flags[@]}" rmi -a -f >/dev/null 2>&1
    # Anything podman left mounted under the work directory, deepest first.
    findmnt -rn -o TARGET 2>/dev/null | grep -F "$work/" | sort -r |
        while read -r m; do "${sudo[@]}" umount -l "$m"; done
    # Kept for its logs: without the storage, which is large and of no use afterwards.
    if cleanup_keeping; then
        "${sudo[@]}" rm -rf "$work/storage" "$work/run" "$work/tmp"
    fi
}

# podman on the private storage; every call has a time bound (pmt SECONDS ... for a longer one).
pmt() {
    local t=$1
    shift
    TMPDIR=$work/tmp timeout "$t" "${sudo[@]}" podman "${pm_flags[@]}" "$@"
}
pm() { pmt 120 "$@"; }
# The same, quiet about what this kind of machine lacks (systemd, to time health checks).
pmq() {
    local rc=0
    pmt "$@" 2>"$work/podman.err" || rc=$?
    grep -v 'unable to get systemd connection' "$work/podman.err" >&2 || true
    return "$rc"
}

# ---------------------------------------------------------------------------------------------
step "tools: debootstrap, podman, runc, uidmap, curl, npm"
# ---------------------------------------------------------------------------------------------
need=(debootstrap podman runc uidmap curl ca-certificates)
command -v npm >/dev/null || need+=(npm)
need_packages "${need[@]}"
ok "$(podman --version), $(runc --version | head -1)"

container_cache_lock
cleanup_workdir work /var/tmp/genserv-container-check.XXXXXX "logs kept in"
cleanup_on_exit remove_containers # before the work directory goes
chmod 755 "$work"
pm_flags=(--root "$work/storage" --runroot "$work/run")
mkdir -p "$work/tmp"
# crun cannot use this kind of machine's cgroups, and containers cannot raise their own
# resource limits here: runc, and the open-file limit that many held calls need, set for
# every container. Podman's temporary files (TMPDIR, image copies) stay under $work too, so
# that an interrupted build leaves nothing in /var/tmp.
cat >"$work/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
image_copy_tmp_dir = "$work/tmp"
EOF
export CONTAINERS_CONF=$work/containers.conf
[ ${#sudo[@]} -eq 0 ] || sudo=(sudo "--preserve-env=CONTAINERS_CONF,TMPDIR")

# ---------------------------------------------------------------------------------------------
step "lint the Dockerfile"
# ---------------------------------------------------------------------------------------------
du="$cache/npm/node_modules/.bin/dockerfile-utils"
if [ ! -x "$du" ] || ! grep -q "\"version\": \"$dockerfile_utils_version\"" \
    "$cache/npm/node_modules/dockerfile-utils/package.json" 2>/dev/null; then
    echo "  installing dockerfile-utils@$dockerfile_utils_version into $cache/npm"
    timeout 300 npm install --prefix "$cache/npm" --no-audit --no-fund --no-save \
        --loglevel=error "dockerfile-utils@$dockerfile_utils_version" >/dev/null
fi
lint=$("$du" lint -j Dockerfile) || {
    "$du" lint Dockerfile >&2 || true
    die "dockerfile-utils lint found errors"
}
if [ "$lint" != "[]" ]; then
    "$du" lint Dockerfile >&2 || true
    die "dockerfile-utils lint has warnings (they count as failures here)"
fi
ok "dockerfile-utils $dockerfile_utils_version: no errors, no warnings"

# The rules of issue 5 that a generic linter does not know. Continuation lines are joined
# first, so that one RUN is one line.
joined=$(sed -e ':a' -e '/\\$/N; s/\\\n/ /; ta' Dockerfile | grep -v '^[[:space:]]*#')
[ "$(grep -c '^FROM debian:bookworm-slim' <<<"$joined")" -eq 2 ] ||
    die "expected two stages FROM debian:bookworm-slim"
while read -r line; do
    grep -q -- '--no-install-recommends' <<<"$line" ||
        die "apt-get install without --no-install-recommends: $line"
    grep -q 'rm -rf /var/lib/apt/lists' <<<"$line" ||
        die "apt lists not removed in the same RUN: $line"
done < <(grep 'apt-get install' <<<"$joined")
grep -q '^USER [1-9]' <<<"$joined" || die "the image must run as a numeric non-root USER"
grep -q '^HEALTHCHECK ' <<<"$joined" || die "no HEALTHCHECK"
ok "two bookworm-slim stages, --no-install-recommends, apt lists removed, USER, HEALTHCHECK"

# ---------------------------------------------------------------------------------------------
step "base image $base_ref (debootstrap, cached)"
# ---------------------------------------------------------------------------------------------
container_base_tarball
container_base_import "$base_tarball" pmq 300

# ---------------------------------------------------------------------------------------------
step "podman build --pull=never --format docker (builder stage runs the unit tests)"
# ---------------------------------------------------------------------------------------------
build_start=$SECONDS
# The whole log goes to build.log; its steps and the test summary are shown as they come.
# The build runs in the background so that a signal to this script stops it at once (bash
# runs traps only between foreground commands, but interrupts `wait`).
: >"$work/build.log"
TMPDIR=$work/tmp timeout 1200 "${sudo[@]}" podman "${pm_flags[@]}" build --pull=never \
    --format docker -t "$image_ref" -f Dockerfile . >"$work/build.log" 2>&1 &
build_pid=$!
# Unfinished at exit, it is stopped with everything under it (podman, the OCI runtime, the
# RUN step's processes, which sit in a session of their own), and waited for before the
# storage it uses is touched.
cleanup_track_tree "$build_pid"

tail -n +1 -f --pid="$build_pid" "$work/build.log" | while IFS= read -r line; do
    case $line in
    "["*"] STEP "* | *"tests passed"* | *"tests failed"*) printf '  %.100s\n' "$line" ;;
    esac
done &
tail_pid=$!
cleanup_track_pid "$tail_pid"
build_rc=0
wait "$build_pid" || build_rc=$?
cleanup_untrack "$build_pid"
wait "$tail_pid" || true
cleanup_untrack "$tail_pid"
if [ "$build_rc" -ne 0 ]; then
    tail -60 "$work/build.log" >&2
    die "the image did not build (exit $build_rc; log: $work/build.log)"
fi
build_s=$((SECONDS - build_start))
grep -q '100% tests passed' "$work/build.log" || die "the unit tests did not run in the builder"
ok "built $image_ref in ${build_s}s"

# ---------------------------------------------------------------------------------------------
step "the image"
# ---------------------------------------------------------------------------------------------
inspect() { pm image inspect --format "$1" "$image_ref"; }
size=$(inspect '{{.Size}}')
size_mb=$(awk -v b="$size" 'BEGIN { printf "%.1f", b / 1e6 }')
[ "$size" -lt $((max_mb * 1000000)) ] || die "image is $size_mb MB, bound $max_mb MB"
ok "size $size_mb MB (bound $max_mb MB)"

user=$(inspect '{{.Config.User}}')
case "${user%%:*}" in
"" | 0 | root) die "the image runs as root (User \"$user\")" ;;
esac
ok "user $user"
grep -qw '8080/tcp' <<<"$(inspect '{{range $k, $v := .Config.ExposedPorts}}{{$k}} {{end}}')" ||
    die "8080/tcp not exposed"
ok "exposes 8080/tcp"
env_lines=$(inspect '{{range .Config.Env}}{{println .}}{{end}}')
grep -qx 'GENSERV_LISTEN=0.0.0.0:8080' <<<"$env_lines" ||
    die "GENSERV_LISTEN=0.0.0.0:8080 not set"
ok "GENSERV_LISTEN=0.0.0.0:8080"
hc=$(inspect '{{if .Config.Healthcheck}}{{.Config.Healthcheck.Test}}{{end}}')
grep -q -- '--health-check' <<<"$hc" || die "no HEALTHCHECK using genserv --health-check (\"$hc\")"
ok "health check $hc"
[ "$(inspect '{{.Config.StopSignal}}')" = SIGTERM ] || die "stop signal is not SIGTERM"
label() { inspect "{{index .Config.Labels \"org.opencontainers.image.$1\"}}"; }
for l in source version licenses title; do
    [ -n "$(label "$l")" ] || die "label org.opencontainers.image.$l missing"
done
cmake_version=$(sed -n 's/^project(genserv VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
binary_version=$(pm run --rm --no-healthcheck "$image_ref" --version | awk '{print $2}')
[ "$(label version)" = "$cmake_version" ] && [ "$binary_version" = "$cmake_version" ] ||
    die "versions disagree: label $(label version), binary $binary_version," \
        "CMakeLists.txt $cmake_version"
ok "labels source=$(label source) version=$(label version) licenses=$(label licenses)"
leftovers=$(pm run --rm --no-healthcheck --entrypoint /bin/sh "$image_ref" -c \
    'command -v gcc cc cmake curl wget
     ls /var/lib/apt/lists | grep -v -x -e lock -e partial' || true)
[ -z "$leftovers" ] || die "the runtime image holds build tools, curl or apt lists: $leftovers"
ok "no compiler, no curl, no apt lists in the runtime image"

# ---------------------------------------------------------------------------------------------
# HTTP helpers: every request has a time bound. req METHOD PATH [BODY] sets $status, $body.
# ---------------------------------------------------------------------------------------------
base=""
req() {
    local out args=(-s -o "$work/body" -w '%{http_code}' --max-time 10 -X "$1")
    [ $# -lt 3 ] || args+=(-H 'Content-Type: application/json' --data-binary "$3")
    out=$(curl "${args[@]}" "$base$2") || true
    status=${out:-000}
    body=$(cat "$work/body" 2>/dev/null || true)
}
expect() { # STATUS REGEX METHOD PATH [BODY]
    local want=$1 re=$2
    shift 2
    req "$@"
    [ "$status" = "$want" ] && grep -Eq -- "$re" <<<"$body" ||
        die "$1 $2 ${3:-}: expected $want ~ /$re/, got $status $body"
    ok "$1 $2 -> $status $(head -c 100 <<<"$body" | tr -s '\n' ' ')"
}
# Wait up to $1 s for the command "$@" to succeed.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}
pending_is() { # SERVER N: the batcher holds N calls
    req GET "/servers/$1"
    [ "$status" = 200 ] && grep -Eq "\"pending\": *$2[,}]" <<<"$body"
}
# A held POST /call in the background; its status and body go to $work/held-NAME.
held() { # NAME SERVER MESSAGE
    curl -s -o "$work/held-$1.body" -w '%{http_code}' --max-time 60 \
        -H 'Content-Type: application/json' \
        --data-binary "{\"server\": \"$2\", \"message\": $3, \"timeout_ms\": 60000}" \
        "$base/call" >"$work/held-$1.status" 2>/dev/null &
    cleanup_track_pid $!
    held_pid[$1]=$!
}
held_done() { # NAME: wait (bounded) for it and check STATUS and REGEX
    local deadline=$((SECONDS + 30))
    while kill -0 "${held_pid[$1]}" 2>/dev/null; do
        [ "$SECONDS" -lt "$deadline" ] || die "held call $1 was not answered within 30 s"
        sleep 0.1
    done
    wait "${held_pid[$1]}" || true
    cleanup_untrack "${held_pid[$1]}"
    local st body
    st=$(cat "$work/held-$1.status")
    body=$(cat "$work/held-$1.body")
    [ "$st" = "$2" ] && grep -Eq -- "$3" <<<"$body" ||
        die "held call $1: expected $2 ~ /$3/, got $st $body"
    ok "held call $1 answered $st $body"
}
# Podman schedules health checks with systemd timers, and this kind of machine has no systemd:
# the automatic timer is off (--health-interval disable) and the check runs the image's
# HEALTHCHECK itself with `podman healthcheck run`, which records the status the same way.
start_container() { # NAME [podman run options...]: runs the image, sets $base
    local name=$1
    shift
    pmq 120 run -d --name "$name" -p 127.0.0.1::8080 --health-interval disable "$@" \
        "$image_ref" >/dev/null
    containers+=("$name")
    local hostport
    hostport=$(pm port "$name" 8080/tcp | sed -n 1p)
    [ -n "$hostport" ] || die "$name: port 8080 is not published"
    base="http://$hostport"
    wait_for 30 curl -fs --max-time 2 -o /dev/null "$base/healthz" || {
        pm ps -a --filter "name=$name" --format '{{.Names}} {{.Status}}' >&2
        die "$name: /healthz did not answer within 30 s"
    }
    ok "$name serves on $base"
}
health_is_healthy() { # NAME: run the image's HEALTHCHECK now and read the status
    pmt 30 healthcheck run "$1" >/dev/null || die "$1: the health check failed"
    local st
    st=$(pm inspect --format '{{.State.Health.Status}}' "$1")
    [ "$st" = healthy ] || die "$1: health status \"$st\""
    ok "$1: health check ran in the container: $st"
}

# ---------------------------------------------------------------------------------------------
step "run the image with its defaults: health, PID 1, smoke test"
# ---------------------------------------------------------------------------------------------
c1=genserv-check-$$
start_container "$c1"
expect 200 '"ok": *true' GET /healthz
health_is_healthy "$c1"
if pm exec -e GENSERV_LISTEN=127.0.0.1:1 "$c1" /usr/local/bin/genserv --health-check \
    >"$work/probe.out" 2>&1; then
    die "genserv --health-check says healthy with nothing behind 127.0.0.1:1"
fi
ok "and unhealthy (exit 1) where nothing listens: $(cat "$work/probe.out")"

cmdline=$(pm exec "$c1" cat /proc/1/cmdline | tr '\0' ' ')
[[ "$cmdline" == /usr/local/bin/genserv* ]] || die "PID 1 is \"$cmdline\", not genserv"
uid=$(pm exec "$c1" awk '/^Uid:/ {print $2}' /proc/1/status)
[ "$uid" != 0 ] || die "genserv runs as root"
nofile=$(pm exec "$c1" awk '/^Max open files/ {print $4}' /proc/1/limits)
ok "PID 1 is genserv (uid $uid, open-file limit $nofile)"
pm logs "$c1" >"$work/$c1.log" 2>&1
! grep -q 'max_connections lowered' "$work/$c1.log" ||
    die "genserv lowered max_connections: the open-file limit $nofile is too small"
grep -qx 'listening on http://0.0.0.0:8080' "$work/$c1.log" ||
    die "genserv does not say 'listening on http://0.0.0.0:8080'"
ok "listening on http://0.0.0.0:8080 inside the container"

expect 200 '<html|<!doctype' GET /
expect 201 '"name": *"smoke"' POST /servers '{"name": "smoke", "behaviour": "counter"}'
for _ in 1 2 3; do
    expect 202 '"ok": *true' POST /cast '{"server": "smoke", "message": "increment"}'
done
expect 200 '"reply": *3' POST /call '{"server": "smoke", "message": "get_count"}'
expect 201 '"name": *"smoke_batch"' POST /servers \
    '{"name": "smoke_batch", "behaviour": "batcher", "args": {"interval_ms": 600000}}'
held push smoke_batch '["push", 7]'
wait_for 10 pending_is smoke_batch 1 || die "the push was not held by the batcher"
sleep 0.5
kill -0 "${held_pid[push]}" 2>/dev/null || die "the deferred call was answered before the flush"
ok "a call to the batcher is held (pending 1)"
expect 202 '' POST /send '{"server": "smoke_batch", "message": "flush"}'
held_done push 200 '"reply": *"ok"'
expect 200 '"last_batch_sum": *7' GET /servers/smoke_batch

# ---------------------------------------------------------------------------------------------
step "the command-line client in the image (genserv call, ps, ...) against the container"
# ---------------------------------------------------------------------------------------------
# The image's genserv is its own client (docs/cli.md): it needs libcurl in the image, and finds
# the server at its default address, 127.0.0.1:8080, inside the container.
cli() { pm exec "$c1" /usr/local/bin/genserv "$@"; }
out=$(cli call smoke get_count) || die "genserv call smoke get_count failed: $out"
[ "$out" = 3 ] || die "genserv call smoke get_count printed \"$out\", expected 3"
ok "genserv call smoke get_count: $out"
cli cast smoke '{:increment, 2}' >/dev/null || die "genserv cast smoke '{:increment, 2}' failed"
out=$(cli call smoke get_count --json) || die "genserv call smoke get_count --json failed: $out"
[ "$out" = '{"reply":5}' ] || die "genserv call --json printed \"$out\", expected {\"reply\":5}"
ok "the short form and --json: $out"
cli ps >"$work/cli-ps.out" || die "genserv ps failed"
grep -Eq '^smoke +counter +running ' "$work/cli-ps.out" ||
    die "genserv ps shows no running smoke: $(cat "$work/cli-ps.out")"
ok "genserv ps lists smoke"
rc=0
cli call nope get_count >/dev/null 2>"$work/cli.err" || rc=$?
[ "$rc" = 5 ] && grep -q '(no_such_server)' "$work/cli.err" ||
    die "genserv call nope: exit $rc, expected 5 with no_such_server: $(cat "$work/cli.err")"
ok "no such server: exit 5, $(cat "$work/cli.err")"
# A deferred reply, held in the container until the batcher's flush.
pm exec "$c1" /usr/local/bin/genserv call smoke_batch push 8 --timeout 60000 \
    >"$work/cli-held.out" 2>&1 &
cli_held=$!
cleanup_track_pid "$cli_held"
wait_for 10 pending_is smoke_batch 1 || die "genserv call smoke_batch push 8 was not held"
kill -0 "$cli_held" 2>/dev/null || die "the client's deferred call ended before the flush"
expect 202 '' POST /send '{"server": "smoke_batch", "message": "flush"}'
rc=0
wait "$cli_held" || rc=$?
cleanup_untrack "$cli_held"
[ "$rc" = 0 ] && [ "$(cat "$work/cli-held.out")" = '"ok"' ] ||
    die "the client's held call: exit $rc, $(cat "$work/cli-held.out")"
ok "genserv call smoke_batch push 8: held until the flush, then \"ok\""

# ---------------------------------------------------------------------------------------------
step "read-only, no capabilities, a config file at /etc/genserv/genserv.json, a variable"
# ---------------------------------------------------------------------------------------------
cat >"$work/genserv.json" <<'EOF'
{
  "log_level": "debug",
  "limits": {"max_body_bytes": 65536},
  "servers": [{"name": "from_config", "behaviour": "counter", "args": {"initial": 41}},
              {"name": "from_lua", "behaviour": "mounted"}]
}
EOF
chmod 644 "$work/genserv.json"
# A folder of Lua behaviours mounted over /etc/genserv/behaviours, run by a boot server.
mkdir -p "$work/behaviours"
cat >"$work/behaviours/mounted.lua" <<'EOF'
return {
  vsn = "1",
  init = function(args) return {"ok", 42} end,
  handle_call = function(msg, from, n) return {"reply", n, n} end,
}
EOF
chmod 755 "$work/behaviours" && chmod 644 "$work/behaviours/mounted.lua"
c2=genserv-check-config-$$
# As the Kubernetes example of docs/deploy.md runs it: read-only, without capabilities.
start_container "$c2" -v "$work/genserv.json:/etc/genserv/genserv.json:ro" \
    -v "$work/behaviours:/etc/genserv/behaviours:ro" \
    -e GENSERV_MAX_BODY_BYTES=2048 --read-only --cap-drop ALL --security-opt no-new-privileges
expect 200 '"reply": *41' POST /call '{"server": "from_config", "message": "get_count"}'
expect 404 'no_such_server' POST /call '{"server": "counter", "message": "get_count"}'
big=$(printf '{"server": "from_config", "message": "%03000d"}' 0)
expect 413 'too_large' POST /call "$big"
ok "the file's servers replace the defaults; GENSERV_MAX_BODY_BYTES beats the file's limit"
expect 200 '"reply": *42' POST /call '{"server": "from_lua", "message": "get"}'
ok "a Lua behaviour of the mounted folder runs a boot server"
pm logs "$c2" >"$work/$c2.log" 2>&1
grep -q 'config: /etc/genserv/genserv.json' "$work/$c2.log" || die "config file not logged"
health_is_healthy "$c2"
pmq 60 stop -t "$grace_s" "$c2" >/dev/null
[ "$(pm inspect --format '{{.State.ExitCode}}' "$c2")" = 0 ] || die "$c2 did not exit 0"
ok "$c2 stopped, exit code 0"

# ---------------------------------------------------------------------------------------------
step "SIGTERM with calls held open (podman stop -t $grace_s, like a platform's grace period)"
# ---------------------------------------------------------------------------------------------
base=http://$(pm port "$c1" 8080/tcp | sed -n 1p)
held term_push smoke_batch '["push", 1]'
held term_sleep slow '["sleep", 50000]'
wait_for 10 pending_is smoke_batch 1 || die "the push was not held by the batcher"
sleep 0.5
for n in term_push term_sleep; do
    kill -0 "${held_pid[$n]}" 2>/dev/null || die "call $n was answered before SIGTERM"
done
ok "two calls held (a batcher push, a 50 s sleep)"
stop_start=$SECONDS
pmq $((grace_s + 30)) stop -t "$grace_s" "$c1" >/dev/null
stop_s=$((SECONDS - stop_start))
held_done term_push 503 '"error": *"shutting_down"'
held_done term_sleep 503 '"error": *"shutting_down"'
code=$(pm inspect --format '{{.State.ExitCode}}' "$c1")
[ "$code" = 0 ] || die "exit code $code after SIGTERM (137 would mean it was killed)"
[ "$stop_s" -lt "$grace_s" ] || die "stopping took ${stop_s}s, the grace period is ${grace_s}s"
pm logs "$c1" >"$work/$c1.log" 2>&1
grep -q 'signal 15: shutting down' "$work/$c1.log" || die "genserv did not log SIGTERM"
ok "exit code 0 within ${stop_s}s of SIGTERM (grace ${grace_s}s), held calls answered"

printf '\nimage %s MB (bound %s MB), build %ss\n' "$size_mb" "$max_mb" "$build_s"
