# shellcheck shell=bash disable=SC2034 # its globals are for the harness that sources it
# bench/http/lib.sh: the machinery that bench/http/run.sh and bench/compare/run.sh share,
# sourced by both (bash, under `set -euo pipefail`): installing Debian packages without
# starting their services, the Release build, starting genserv, webdis + redis-server and
# nginx on free 127.0.0.1 ports and stopping them by PID, wrk runs and held-call runs that
# append one JSON sample per run to $SAMPLES, and the machine's description.
#
# API (in the order a harness uses it):
#   ROOT=<repository>; source bench/http/lib.sh
#   bench_install DO_INSTALL CHECK...     install what is missing (see bench_install)
#   bench_build                           genserv + held_calls in build-release: GENSERV, HELD_CALLS
#   bench_workdir NAME                    WORK (a temporary directory), SAMPLES, the EXIT trap
#   start_genserv NAME [ARGS...]          GS_PORT; start_webdis: WEBDIS_PORT; start_nginx: NGINX_PORT
#   start_webdis_aof                      webdis + a Redis with its AOF on: WEBDIS_PORT
#   run_wrk SYSTEM SCENARIO CONNS ROUND URL METHOD BODY [SECONDS]
#   run_held ROUND N                      a fresh genserv "held" and held_calls with N calls
#   stop NAME                             (every server left is stopped by the EXIT trap)
#   machine_json LOAD_BEFORE PACKAGE...   the machine and the versions of PACKAGEs, as JSON
#   perf_probe                            BENCH_PERF=1 when `perf stat` works here
#   perf_wrap FILE                        PERF_WRAP: the words that run a command under perf
#   perf_sample FILE ELAPSED_NS JSON      the counters of FILE as one "perf" sample
# Globals a harness may set first: WRK_DURATION (seconds of a run_wrk, default 10),
# NGINX_WORKERS (default auto), BENCH_PERF_SYSTEMS (the systems whose wrk runs get `perf
# stat -p` beside them once perf_probe found perf working, "held" for run_held's genserv;
# default none).

WRK_DURATION=${WRK_DURATION:-10}
NGINX_WORKERS=${NGINX_WORKERS:-auto}
BENCH_PERF_SYSTEMS=${BENCH_PERF_SYSTEMS:-}
NGINX=/usr/sbin/nginx

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# --- Dependencies ------------------------------------------------------------------------

# bench_install DO_INSTALL CHECK...: each CHECK is "cmd:NAME=PACKAGE" (PACKAGE is needed when
# the command NAME is not on the PATH; NAME may be an absolute path) or "pkg:PACKAGE" (when
# dpkg does not list PACKAGE as installed). With DO_INSTALL 0, a missing package is an error.
bench_install() {
    local do_install=$1 check need=() name pkg
    shift
    for check in "$@"; do
        case $check in
        cmd:*)
            name=${check#cmd:} && pkg=${name#*=} && name=${name%%=*}
            if [[ $name == /* ]]; then [[ -x $name ]] || need+=("$pkg"); else
                command -v "$name" >/dev/null || need+=("$pkg")
            fi
            ;;
        pkg:*)
            pkg=${check#pkg:}
            dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" ||
                need+=("$pkg")
            ;;
        *) die "bench_install: bad check $check" ;;
        esac
    done
    ((${#need[@]})) || return 0
    ((do_install)) || die "missing packages (--no-install given): ${need[*]}"
    local sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    log "installing ${need[*]}"
    # Debian's maintainer scripts would start redis-server, webdis and nginx as system
    # services on their default ports; a policy-rc.d answering 101 keeps them stopped.
    local made_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee /usr/sbin/policy-rc.d >/dev/null
        "${sudo[@]}" chmod +x /usr/sbin/policy-rc.d
        made_policy=1
    fi
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    if ((made_policy)); then "${sudo[@]}" rm -f /usr/sbin/policy-rc.d; fi
}

# genserv's build dependencies (as scripts/deps.sh installs them), jemalloc included: the
# binary and the benchmarks link it when it is there (GS_JEMALLOC).
BENCH_BUILD_DEPS=(cmd:cmake=cmake pkg:libuv1-dev pkg:libjansson-dev pkg:libmicrohttpd-dev
    pkg:libsqlite3-dev pkg:liblua5.4-dev pkg:libjemalloc-dev pkg:pkg-config pkg:gcc pkg:make)
# What the HTTP benchmark needs, as bench_install checks: the load tool, the peers, jq, curl,
# and the build.
BENCH_HTTP_DEPS=(cmd:wrk=wrk cmd:webdis=webdis cmd:redis-server=redis-server
    cmd:/usr/sbin/nginx=nginx-light cmd:jq=jq cmd:curl=curl "${BENCH_BUILD_DEPS[@]}")

# --- Build -------------------------------------------------------------------------------

# bench_build [TARGET...]: genserv and TARGETs in build-release (Release), and held_calls.
bench_build() {
    log "building genserv${*:+ and $*} (Release) and held_calls"
    cmake -B "$ROOT/build-release" -S "$ROOT" -DCMAKE_BUILD_TYPE=Release \
        -DGS_BUILD_TESTS=OFF >/dev/null
    local t
    for t in genserv "$@"; do cmake --build "$ROOT/build-release" -j2 --target "$t" >/dev/null; done
    # held_calls builds as a project of its own, so the shared bench/CMakeLists.txt stays as is.
    cmake -S "$ROOT/bench/http" -B "$ROOT/build-release/bench-http" \
        -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$ROOT/build-release/bench-http" >/dev/null
    GENSERV=$ROOT/build-release/genserv
    HELD_CALLS=$ROOT/build-release/bench-http/held_calls
}

# --- Process bookkeeping -----------------------------------------------------------------

declare -A PIDS=() # name -> pid of every server we started
stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    # genserv answers held calls and runs every terminate before it exits (bounded by its
    # shutdown timeout); nginx's master stops its workers. Wait, then insist.
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
stop() {
    local name=$1
    [[ -n ${PIDS[$name]:-} ]] || return 0
    stop_pid "${PIDS[$name]}"
    unset "PIDS[$name]"
}
bench_cleanup() {
    local rc=$? name
    for name in "${!PIDS[@]}"; do stop "$name"; done
    if ((rc != 0)); then
        log "failed (exit $rc); logs kept in $WORK"
    else
        rm -rf "$WORK"
    fi
}

# bench_workdir NAME: a fresh WORK directory, SAMPLES in it, and the traps that stop every
# server on the way out, also on failure or Ctrl-C.
bench_workdir() {
    WORK=$(mktemp -d "/tmp/$1.XXXXXX")
    SAMPLES=$WORK/samples.jsonl
    : >"$SAMPLES"
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

# A port nobody listens on now, outside the ephemeral range so that wrk's and held_calls'
# own connections cannot take it first. Checked against /proc/net/tcp{,6}; the server start
# then verifies it really listens.
used_ports=" "
free_port() {
    local p hex
    for _ in $(seq 200); do
        p=$((20000 + RANDOM % 12000))
        hex=$(printf ':%04X ' "$p")
        [[ $used_ports == *" $p "* ]] && continue
        if ! grep -qi -- "$hex" /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
            used_ports+="$p "
            echo "$p"
            return 0
        fi
    done
    die "no free port found"
}
wait_port() {
    local port=$1 name=$2 i
    for ((i = 0; i < 100; i++)); do
        kill -0 "${PIDS[$name]}" 2>/dev/null || die "$name exited at start (see $WORK)"
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    die "$name does not listen on 127.0.0.1:$port"
}
alive() { kill -0 "${PIDS[$1]}" 2>/dev/null || die "$1 (pid ${PIDS[$1]}) died (see $WORK)"; }
peak_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }

# --- Memory of a system under one run ----------------------------------------------------

# The processes that serve a system: genserv (or any one process started under the system's
# name); webdis and its redis-server (webdis-aof and redis-aof); nginx's master and its
# workers (found through /proc, the master's children).
system_pids() {
    # shellcheck disable=SC2046 # nginx's workers: their PIDs, one word each
    case $1 in
    webdis*) echo "${PIDS[$1]} ${PIDS[redis${1#webdis}]}" ;;
    nginx) echo "${PIDS[nginx]}" $(cat /proc/"${PIDS[nginx]}"/task/*/children 2>/dev/null) ;;
    *) echo "${PIDS[$1]}" ;;
    esac
}
# Reset the peak RSS (VmHWM) of PIDs, so that the next reading is this run's peak (writing 5
# to clear_refs, Linux >= 4.0, our own children). Prints 1 when every reset worked, else 0.
rss_reset() {
    local pid ok=1
    for pid in "$@"; do { echo 5 >"/proc/$pid/clear_refs"; } 2>/dev/null || ok=0; done
    echo "$ok"
}
# The sum of a field ("VmHWM:", "VmRSS:") of PIDs' /proc/PID/status, in KiB.
rss_sum_kb() {
    local field=$1 pid sum=0 kb
    shift
    for pid in "$@"; do
        kb=$(awk -v f="$field" '$1 == f {print $2}' "/proc/$pid/status" 2>/dev/null)
        sum=$((sum + ${kb:-0}))
    done
    echo "$sum"
}

# --- Servers -----------------------------------------------------------------------------

# start_genserv NAME [ARGS...]: genserv with its default servers (counter, batcher, ...) and
# default threads (one scheduler and one HTTP thread per core), plus ARGS; port 0, so it
# prints the port it chose, which lands in GS_PORT.
GS_PORT=""
start_genserv() {
    local name=$1 i
    shift
    "$GENSERV" --listen 127.0.0.1:0 --log-level warn "$@" \
        >"$WORK/$name.out" 2>"$WORK/$name.err" &
    PIDS[$name]=$!
    for ((i = 0; i < 100; i++)); do
        GS_PORT=$(sed -n '1s|^listening on http://127.0.0.1:\([0-9]*\)$|\1|p' "$WORK/$name.out")
        [[ -n $GS_PORT ]] && return 0
        alive "$name"
        sleep 0.1
    done
    die "$name printed no listening line"
}

# start_webdis: webdis in front of an in-memory redis-server (no snapshots, no AOF), as the
# PIDs "webdis" and "redis". start_webdis_aof: the same pair as "webdis-aof" and "redis-aof",
# its Redis with `appendonly yes` and `appendfsync everysec` (every write is in the AOF, in
# the page cache, before Redis replies; fsync once a second) in a directory of its own,
# $WORK/redis-aof: the peer of genserv's durable servers (issue 15).
REDIS_PORT="" WEBDIS_PORT=""
start_webdis() { start_webdis_as webdis "$WORK" --appendonly no; }
start_webdis_aof() {
    mkdir -p "$WORK/redis-aof"
    start_webdis_as webdis-aof "$WORK/redis-aof" --appendonly yes --appendfsync everysec
}
# start_webdis_as NAME DIR REDIS_ARG...: webdis as NAME and its redis-server as
# redis${NAME#webdis}, with Redis's files (the AOF) in DIR.
start_webdis_as() {
    local name=$1 dir=$2 redis=redis${1#webdis}
    shift 2
    REDIS_PORT=$(free_port)
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' "$@" \
        --daemonize no --dir "$dir" --logfile "$WORK/$redis.log" &
    PIDS[$redis]=$!
    wait_port "$REDIS_PORT" "$redis"
    WEBDIS_PORT=$(free_port)
    # Two threads, like genserv's two HTTP threads on this 2-core machine; no ACL, no log.
    cat >"$WORK/$name.json" <<EOF
{"redis_host": "127.0.0.1", "redis_port": $REDIS_PORT, "redis_auth": null,
 "http_host": "127.0.0.1", "http_port": $WEBDIS_PORT, "threads": 2,
 "daemonize": false, "database": 0, "verbosity": 0, "logfile": "$WORK/$name.log"}
EOF
    # libevent's warnings (a write to a connection wrk has just closed) go to a file.
    webdis "$WORK/$name.json" >"$WORK/$name.out" 2>&1 &
    PIDS[$name]=$!
    wait_port "$WEBDIS_PORT" "$name"
}

NGINX_PORT=""
start_nginx() {
    NGINX_PORT=$(free_port)
    mkdir -p "$WORK/nginx"
    # keepalive_requests is raised so that nginx, like genserv and webdis, never closes a
    # keep-alive connection during a run (its default closes one every 1,000 requests).
    # worker_connections counts every connection of one worker: 4,096 wrk connections may
    # all land on one worker, so each may take twice that.
    cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes $NGINX_WORKERS;
worker_rlimit_nofile 10000;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 75s;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            default_type application/json;
            return 200 '{"ok":true}';
        }
    }
}
EOF
    "$NGINX" -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" &
    PIDS[nginx]=$!
    wait_port "$NGINX_PORT" nginx
}

# --- Measurements ------------------------------------------------------------------------

# run_wrk SYSTEM SCENARIO CONNS ROUND URL METHOD BODY [SECONDS]: one wrk run; its JSON summary
# (report.lua) becomes a sample, with the system's peak RSS during the run (hwm_kb, summed
# over its processes; hwm_reset false when the peak could not be reset before the run, so
# that it is the peak since the system started). ROUND 0 is a warm-up and is not kept.
run_wrk() {
    local system=$1 scenario=$2 conns=$3 round=$4 url=$5 method=$6 body=$7
    local secs=${8:-$WRK_DURATION}
    local outf="$WORK/wrk-$system-$scenario-$conns-$round.txt" pids reset
    read -r -a pids <<<"$(system_pids "$system")"
    reset=$(rss_reset "${pids[@]}")
    # perf stat on the server for exactly the run's length, when asked (not for warm-ups).
    local perff="$WORK/perf-wrk-$system-$scenario-$conns-$round.csv" perf_t0=""
    if ((BENCH_PERF && round > 0)) && [[ " $BENCH_PERF_SYSTEMS " == *" $system "* ]]; then
        perf_attach "${PIDS[$system]}" "$perff"
        perf_t0=$(date +%s%N)
    fi
    local wrk_ok=1
    WRK_METHOD=$method WRK_BODY=$body wrk -t2 -c"$conns" -d"${secs}s" --timeout 10s --latency \
        -s "$ROOT/bench/http/report.lua" "$url" >"$outf" 2>&1 || wrk_ok=0
    local perf_ns=""
    if [[ -n $perf_t0 ]]; then
        perf_ns=$(($(date +%s%N) - perf_t0))
        perf_detach
    fi
    ((wrk_ok)) || die "wrk failed: $(cat "$outf")"
    local hwm
    hwm=$(rss_sum_kb VmHWM: "${pids[@]}")
    local summary
    summary=$(grep '^{' "$outf" | tail -1)
    [[ -n $summary ]] || die "wrk printed no summary: $(cat "$outf")"
    ((round > 0)) || return 0
    jq -c --arg s "$system" --arg sc "$scenario" --argjson c "$conns" --argjson r "$round" \
        --argjson hwm "$hwm" --argjson reset "$((reset == 1))" \
        '{system: $s, scenario: $sc, conns: $c, round: $r} + .
         + {hwm_kb: $hwm, hwm_reset: ($reset == 1)}' <<<"$summary" >>"$SAMPLES"
    if [[ -n $perf_ns ]]; then
        perf_sample "$perff" "$perf_ns" "$(jq -c --arg s "$system" --arg sc "$scenario" \
            --argjson c "$conns" --argjson r "$round" \
            '{system: $s, of: $sc, at_conns: $c, round: $r, tool: "wrk",
              label: "\($s) \($sc) @\($c) (perf stat -p, during wrk)", requests: .requests}' \
            <<<"$summary")"
    fi
    log "$(printf '%-8s %-5s @%-5s round %s: %9.0f ok req/s  p50 %6.2f ms  p99 %7.2f ms  peak %5.1f MB%s' \
        "$system" "$scenario" "$conns" "$round" \
        "$(jq .ok_rps <<<"$summary")" "$(jq .p50_ms <<<"$summary")" \
        "$(jq .p99_ms <<<"$summary")" "$(jq -n "$hwm / 1024")" \
        "$(jq -r 'if .non2xx + .socket_errors > 0 then "  (\(.non2xx) non-2xx, \(.socket_errors) socket errors)" else "" end' <<<"$summary")")"
}

# run_held ROUND N [PAD]: N held calls on a fresh genserv (so that VmHWM is this run's peak alone),
# each body padded with PAD unused bytes when given (what a held call costs must not depend on
# its body: genserv frees it once decoded),
# to a batcher whose own timer never fires during the run (interval one day); held_calls
# flushes it. Past 25,000 connections held_calls spreads them over more source addresses
# (one has about 28,000 ephemeral ports). genserv's connection and held-call limits are
# raised to fit N, with room for held_calls' own GET /servers/held probes, which are held
# requests too (at the limit they get 503 and held_calls waits for nothing).
run_held() {
    local round=$1 n=$2 pad=${3:-0}
    local outf="$WORK/held-$n-$pad-$round.json" sources=$(((n + 24999) / 25000))
    start_genserv held --max-connections $((n > 16128 ? n + 256 : 16384)) \
        --max-held-calls $((n > 16128 ? n + 256 : 16384))
    curl -sf -d '{"name": "held", "behaviour": "batcher", "args": {"interval_ms": 86400000}}' \
        "http://127.0.0.1:$GS_PORT/servers" >/dev/null || die "cannot start the held batcher"
    local perff="$WORK/perf-held-$n-$pad-$round.csv" perf_t0="" perf_ns=""
    if ((BENCH_PERF)) && [[ " $BENCH_PERF_SYSTEMS " == *" held "* ]]; then
        perf_attach "${PIDS[held]}" "$perff"
        perf_t0=$(date +%s%N)
    fi
    "$HELD_CALLS" --port "$GS_PORT" --server held --n "$n" --sources "$sources" --pad "$pad" \
        --pid "${PIDS[held]}" >"$outf" 2>"$WORK/held-$n-$pad-$round.err" ||
        log "held_calls: not every call got 200 ($(cat "$WORK/held-$n-$pad-$round.err"))"
    if [[ -n $perf_t0 ]]; then
        perf_ns=$(($(date +%s%N) - perf_t0))
        perf_detach
    fi
    [[ -s $outf ]] || die "held_calls printed nothing: $(cat "$WORK/held-$n-$pad-$round.err")"
    stop held
    jq -c --argjson r "$round" '{system: "genserv", scenario: "held", round: $r} + .' \
        "$outf" >>"$SAMPLES"
    if [[ -n $perf_ns ]]; then
        perf_sample "$perff" "$perf_ns" "$(jq -n -c --argjson n "$n" --argjson pad "$pad" \
            --argjson r "$round" '{system: "genserv", of: "held-\($n)\(if $pad > 0 then "-padded" else "" end)",
              round: $r, tool: "held_calls", requests: $n,
              label: "genserv, \($n) held calls\(if $pad > 0 then " padded \($pad) B" else "" end) (perf stat -p, during held_calls)"}')"
    fi
    # The held sample itself (a perf sample may follow it in $SAMPLES).
    log "$(jq -r --argjson r "$round" '"held     \(.n) calls\(if .pad > 0 then " padded \(.pad) B" else "" end) round \($r): \(.status_200) answered 200, RSS held \(.rss_held_kb / 1024 | floor) MB, peak \(.hwm_kb / 1024 | floor) MB, last - first \(.spread_ms) ms, last - flush \(.last_ms) ms"' \
        "$outf")"
}

# --- perf stat beside a run ------------------------------------------------------------

# The counters recorded: the software ones work everywhere perf does; the hardware ones print
# "<not supported>" in most VMs, and are then recorded as null.
PERF_EVENTS=task-clock,context-switches,cpu-migrations,page-faults,cycles,instructions,cache-misses
BENCH_PERF=0
BENCH_PERF_NOTE="perf not installed"
# perf_probe: BENCH_PERF=1 when perf is installed and may count a process here (it may not:
# kernel.perf_event_paranoid, a container without the syscall); BENCH_PERF_NOTE says why not.
perf_probe() {
    BENCH_PERF=0
    if ! command -v perf >/dev/null; then
        BENCH_PERF_NOTE="perf not installed"
    elif ! perf stat -e task-clock true >/dev/null 2>&1; then
        BENCH_PERF_NOTE="perf installed, but \`perf stat -e task-clock true\` fails here"
    else
        BENCH_PERF=1 BENCH_PERF_NOTE=""
    fi
}
# perf_wrap FILE: PERF_WRAP=(perf stat ... --), whose counters of the command that follows it
# (every thread) go to FILE as CSV; empty when perf does not work, so that
# "${PERF_WRAP[@]}" CMD runs CMD alone. perf exits with the command's status.
PERF_WRAP=()
perf_wrap() {
    PERF_WRAP=()
    ((BENCH_PERF)) && PERF_WRAP=(perf stat -x "," -o "$1" -e "$PERF_EVENTS" --)
    return 0
}
# perf_attach PID FILE: perf stat on the running PID (its threads) until perf_detach, as
# PERF_PID. perf_detach: stop it (SIGINT, which makes it write FILE and exit 130).
PERF_PID=""
perf_attach() {
    perf stat -x "," -o "$2" -e "$PERF_EVENTS" -p "$1" >/dev/null 2>&1 &
    PERF_PID=$!
}
perf_detach() {
    [[ -n $PERF_PID ]] || return 0
    kill -INT "$PERF_PID" 2>/dev/null || true
    wait "$PERF_PID" 2>/dev/null || true
    PERF_PID=""
}
# perf_sample FILE ELAPSED_NS JSON: one sample with the counters of perf's CSV FILE (task-clock
# in ms; "<not supported>" and "<not counted>" as null), the wall time it covered, and the
# fields of the JSON object given (what ran: system, of, group, round, requests...), appended
# to $SAMPLES. Nothing when FILE is missing or empty (perf could not attach).
perf_sample() {
    local file=$1 ns=$2 extra=$3
    [[ -s $file ]] || return 0
    awk -F, '
        $0 ~ /^#/ || NF < 3 {next}
        {ev = $3; sub(/:.*/, "", ev); gsub(/-/, "_", ev)
         v = ($1 ~ /^[0-9.]+$/) ? $1 : "null"
         if (ev == "task_clock") ev = "task_clock_ms"
         out = out (out == "" ? "" : ",") "\"" ev "\":" v}
        END {print "{" out "}"}' "$file" |
        jq -c --argjson x "$extra" --argjson ns "$ns" \
            '{part: "perf", scenario: "perf"} + $x + {elapsed_s: ($ns / 1e9)} + .
             + {cpus: (if .task_clock_ms == null then null else .task_clock_ms / ($ns / 1e6) end)}' \
            >>"$SAMPLES"
}

# --- Description -------------------------------------------------------------------------

# machine_json LOAD_BEFORE FD_NOTE PACKAGE...: the CPU, cores, memory, OS, kernel, the load
# average before (given) and now, the file-descriptor note, and each PACKAGE's version.
machine_json() {
    local load_before=$1 fd_note=$2 versions='{}' pkg v
    shift 2
    for pkg in "$@"; do
        v=$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null || true)
        versions=$(jq -c --arg p "$pkg" --arg v "$v" '. + {($p): $v}' <<<"$versions")
    done
    jq -n -c --arg cpu "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)" \
        --argjson nproc "$(nproc)" \
        --arg kernel "$(uname -r)" \
        --arg os "$(
            # shellcheck source=/dev/null
            . /etc/os-release && echo "$PRETTY_NAME"
        )" \
        --arg mem "$(awk '/^MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)" \
        --arg lb "$load_before" --arg la "$(cut -d' ' -f1-3 /proc/loadavg)" --arg fd "$fd_note" \
        --argjson versions "$versions" \
        '{cpu: $cpu, nproc: $nproc, kernel: $kernel, os: $os, memory: $mem,
          load_before: $lb, load_after: $la, fd_limit: $fd, versions: $versions}'
}

# The allocator a binary is linked with: jemalloc or glibc.
binary_malloc() {
    # Not `ldd | grep -q`: under pipefail, grep's early exit makes ldd's SIGPIPE the answer.
    if [[ $(ldd "$1" 2>/dev/null) == *libjemalloc* ]]; then echo jemalloc; else echo glibc; fi
}

# The commit genserv was built from, "+dirty" when its sources differ from it.
genserv_commit() {
    local commit
    commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    git -C "$ROOT" diff --quiet HEAD -- api runtime server 2>/dev/null || commit+="+dirty"
    echo "$commit"
}
