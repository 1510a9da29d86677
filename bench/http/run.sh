#!/usr/bin/env bash
# bench/http/run.sh: the HTTP gateway's benchmark (issue 3), genserv against its peers in one
# run on this machine:
#   - genserv POST /call get_count and POST /cast increment to `counter`, at 64 and 1,000
#     keep-alive connections (wrk, 2 threads, report.lua for the POST body and a JSON summary);
#   - webdis answering GET /INCR/counter (its own redis-server), at 64 and 1,000;
#   - nginx answering a constant 200 to a POST (the ceiling), at 64 and 1,000;
#   - 10,000 calls held at once by a batcher, then released by one flush (held_calls.c):
#     the server's peak RSS and how long the release takes.
# Scenarios alternate (genserv, peer, genserv, ...) and the whole set repeats --rounds times,
# so that a noisy minute on the shared machine spreads over every system instead of deciding
# one. It prints one table (median (min-max) per system, ratio, target, met) and writes it as
# Markdown and JSON, with every raw sample, under bench/results/.
#
# Usage: bench/http/run.sh [--quick] [--rounds N] [--duration S] [--held N]
#                          [--nginx-workers N|auto] [--perf] [--out PREFIX] [--no-install]
#   --quick      1 round of 2 s runs, results to bench/results/http.quick.tmp.* (not committed)
#   --perf       also run `perf stat` (context switches, CPU) on genserv and nginx during the
#                first round's @64 runs; adds "perf" samples to the JSON
#   --out        results path prefix (default bench/results/http, or .../http.quick.tmp)
# Every server binds to 127.0.0.1 on a free port and is stopped by PID on exit, also on failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

quick=0
rounds=3
duration=10
held_n=10000
nginx_workers=auto
do_perf=0
do_install=1
out=""
usage() {
    sed -n '/^# Usage:/,/^# Every server/p' "$0" | sed 's/^# \{0,1\}//'
    exit "${1:-2}"
}
while (($#)); do
    case $1 in
    --quick) quick=1 rounds=1 duration=2 ;;
    --rounds) rounds=$2 && shift ;;
    --duration) duration=$2 && shift ;;
    --held) held_n=$2 && shift ;;
    --nginx-workers) nginx_workers=$2 && shift ;;
    --perf) do_perf=1 ;;
    --out) out=$2 && shift ;;
    --no-install) do_install=0 ;;
    -h | --help) usage 0 ;;
    *) usage ;;
    esac
    shift
done
if [[ -z $out ]]; then
    # Quick runs are for development: *.tmp* is ignored by git, so they are never committed.
    if ((quick)); then out=bench/results/http.quick.tmp; else out=bench/results/http; fi
fi

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# --- Dependencies ------------------------------------------------------------------------

install_deps() {
    local need=()
    command -v wrk >/dev/null || need+=(wrk)
    command -v webdis >/dev/null || need+=(webdis)
    command -v redis-server >/dev/null || need+=(redis-server)
    [[ -x /usr/sbin/nginx ]] || need+=(nginx-light)
    command -v jq >/dev/null || need+=(jq)
    command -v curl >/dev/null || need+=(curl)
    command -v cmake >/dev/null || need+=(cmake)
    ((do_perf)) && ! command -v perf >/dev/null && need+=(linux-perf)
    # genserv's own build dependencies, as scripts/run.sh installs them.
    for dev in libuv1-dev libjansson-dev libmicrohttpd-dev pkg-config gcc make; do
        dpkg-query -W -f='${Status}' "$dev" 2>/dev/null | grep -q "ok installed" || need+=("$dev")
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
install_deps
NGINX=/usr/sbin/nginx

# wrk at 1,000 connections and held_calls at 10,000 need that many descriptors; genserv
# raises its own limit. A refusal is recorded: held_calls then says what it could not open.
fd_limit_note=""
if ! ulimit -n $((held_n + 10000)) 2>/dev/null; then
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    fd_limit_note="ulimit -n $((held_n + 10000)) refused; running with $(ulimit -n)"
    log "$fd_limit_note"
fi

# --- Build -------------------------------------------------------------------------------

log "building genserv (Release) and held_calls"
cmake -B build-release -DCMAKE_BUILD_TYPE=Release -DGS_BUILD_TESTS=OFF >/dev/null
cmake --build build-release -j2 --target genserv >/dev/null
# held_calls builds as a project of its own, so the shared bench/CMakeLists.txt stays as is.
cmake -S bench/http -B build-release/bench-http -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-release/bench-http >/dev/null
GENSERV=$ROOT/build-release/genserv
HELD_CALLS=$ROOT/build-release/bench-http/held_calls

# --- Process bookkeeping -----------------------------------------------------------------

WORK=$(mktemp -d /tmp/genserv-bench-http.XXXXXX)
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
cleanup() {
    local rc=$? name
    for name in "${!PIDS[@]}"; do stop "$name"; done
    if ((rc != 0)); then
        log "failed (exit $rc); logs kept in $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

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

# --- Servers -----------------------------------------------------------------------------

# genserv with its default servers (counter, batcher, ...), default threads (one scheduler
# and one HTTP thread per core); port 0, so it prints the port it chose.
GS_PORT=""
start_genserv() {
    local name=$1 i
    "$GENSERV" --listen 127.0.0.1:0 --log-level warn >"$WORK/$name.out" 2>"$WORK/$name.err" &
    PIDS[$name]=$!
    for ((i = 0; i < 100; i++)); do
        GS_PORT=$(sed -n '1s|^listening on http://127.0.0.1:\([0-9]*\)$|\1|p' "$WORK/$name.out")
        [[ -n $GS_PORT ]] && return 0
        alive "$name"
        sleep 0.1
    done
    die "$name printed no listening line"
}

REDIS_PORT="" WEBDIS_PORT=""
start_webdis() {
    REDIS_PORT=$(free_port)
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
        --daemonize no --dir "$WORK" --logfile "$WORK/redis.log" &
    PIDS[redis]=$!
    wait_port "$REDIS_PORT" redis
    WEBDIS_PORT=$(free_port)
    # Two threads, like genserv's two HTTP threads on this 2-core machine; no ACL, no log.
    cat >"$WORK/webdis.json" <<EOF
{"redis_host": "127.0.0.1", "redis_port": $REDIS_PORT, "redis_auth": null,
 "http_host": "127.0.0.1", "http_port": $WEBDIS_PORT, "threads": 2,
 "daemonize": false, "database": 0, "verbosity": 0, "logfile": "$WORK/webdis.log"}
EOF
    webdis "$WORK/webdis.json" &
    PIDS[webdis]=$!
    wait_port "$WEBDIS_PORT" webdis
}

NGINX_PORT=""
start_nginx() {
    NGINX_PORT=$(free_port)
    mkdir -p "$WORK/nginx"
    # keepalive_requests is raised so that nginx, like genserv and webdis, never closes a
    # keep-alive connection during a run (its default closes one every 1,000 requests).
    cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes $nginx_workers;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
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

SAMPLES=$WORK/samples.jsonl
: >"$SAMPLES"

# run_wrk SYSTEM SCENARIO CONNS ROUND URL METHOD BODY [SECONDS]: one wrk run; its JSON summary
# (report.lua) becomes a sample. ROUND 0 is a warm-up and is not kept.
run_wrk() {
    local system=$1 scenario=$2 conns=$3 round=$4 url=$5 method=$6 body=$7 secs=${8:-$duration}
    local outf="$WORK/wrk-$system-$scenario-$conns-$round.txt"
    WRK_METHOD=$method WRK_BODY=$body wrk -t2 -c"$conns" -d"${secs}s" --timeout 10s --latency \
        -s "$ROOT/bench/http/report.lua" "$url" >"$outf" 2>&1 || die "wrk failed: $(cat "$outf")"
    local summary
    summary=$(grep '^{' "$outf" | tail -1)
    [[ -n $summary ]] || die "wrk printed no summary: $(cat "$outf")"
    ((round > 0)) || return 0
    jq -c --arg s "$system" --arg sc "$scenario" --argjson c "$conns" --argjson r "$round" \
        '{system: $s, scenario: $sc, conns: $c, round: $r} + .' <<<"$summary" >>"$SAMPLES"
    log "$(printf '%-8s %-5s @%-5s round %s: %9.0f ok req/s  p50 %6.2f ms  p99 %7.2f ms%s' \
        "$system" "$scenario" "$conns" "$round" \
        "$(jq .ok_rps <<<"$summary")" "$(jq .p50_ms <<<"$summary")" \
        "$(jq .p99_ms <<<"$summary")" \
        "$(jq -r 'if .non2xx + .socket_errors > 0 then "  (\(.non2xx) non-2xx, \(.socket_errors) socket errors)" else "" end' <<<"$summary")")"
}

# perf_during NAME PID SYSTEM SCENARIO CONNS: `perf stat` on PID for the next wrk run's length.
PERF_PID=""
perf_start() {
    local pid=$1 tag=$2
    perf stat -e context-switches,cpu-migrations,task-clock -x, -o "$WORK/perf-$tag.csv" \
        -p "$pid" -- sleep "$duration" >/dev/null 2>&1 &
    PERF_PID=$!
}
perf_finish() {
    local system=$1 scenario=$2 conns=$3 tag=$4
    wait "$PERF_PID" || true
    # Counters per request of the run that ran beside perf (the last sample of that kind).
    local reqs
    reqs=$(jq -s --arg s "$system" --arg sc "$scenario" --argjson c "$conns" \
        'map(select(.system == $s and .scenario == $sc and .conns == $c)) | last | .requests' \
        "$SAMPLES")
    awk -F, -v s="$system" -v sc="$scenario" -v c="$conns" -v r="$reqs" '
        $3 == "context-switches" {cs = $1} $3 == "cpu-migrations" {mig = $1}
        $3 == "task-clock" {cpu = $1}
        END {printf "{\"system\":\"%s\",\"scenario\":\"perf\",\"of\":\"%s\",\"conns\":%d,"
             "\"requests\":%d,\"context_switches\":%d,\"cpu_migrations\":%d,\"cpu_ms\":%.1f,"
             "\"cs_per_request\":%.3f,\"cpu_us_per_request\":%.2f}\n",
             s, sc, c, r, cs, mig, cpu, cs / r, cpu * 1000 / r}' \
        "$WORK/perf-$tag.csv" >>"$SAMPLES"
}

# One round of the held calls: a fresh genserv (so VmHWM is this scenario's peak alone), a
# batcher whose own timer never fires during the run (interval one day), held_calls flushes it.
run_held() {
    local round=$1
    local outf="$WORK/held-$round.json"
    start_genserv held
    curl -sf -d '{"name": "held", "behaviour": "batcher", "args": {"interval_ms": 86400000}}' \
        "http://127.0.0.1:$GS_PORT/servers" >/dev/null || die "cannot start the held batcher"
    "$HELD_CALLS" --port "$GS_PORT" --server held --n "$held_n" --pid "${PIDS[held]}" \
        >"$outf" 2>"$WORK/held-$round.err" || log "held_calls: not every call got 200 ($(cat "$WORK/held-$round.err"))"
    [[ -s $outf ]] || die "held_calls printed nothing: $(cat "$WORK/held-$round.err")"
    stop held
    jq -c --argjson r "$round" '{system: "genserv", scenario: "held", round: $r} + .' \
        "$outf" >>"$SAMPLES"
    log "$(jq -r '"held     \(.n) calls round \(.round): \(.status_200) answered 200, RSS held \(.rss_held_kb / 1024 | floor) MB, peak \(.hwm_kb / 1024 | floor) MB, last - first \(.spread_ms) ms, last - flush \(.last_ms) ms"' \
        <<<"$(tail -1 "$SAMPLES")")"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
t0=$SECONDS
log "rounds $rounds, ${duration} s per run, $(nproc) cores, load $load_before"

start_genserv genserv
GENSERV_PORT=$GS_PORT
start_webdis
start_nginx
G=http://127.0.0.1:$GENSERV_PORT
W=http://127.0.0.1:$WEBDIS_PORT
N=http://127.0.0.1:$NGINX_PORT
CALL='{"server":"counter","message":"get_count"}'
CAST='{"server":"counter","message":"increment"}'

# Warm-ups: caches, connection pools, the allocators' arenas; not kept.
log "warming up"
run_wrk genserv call 64 0 "$G/call" POST "$CALL" 1
run_wrk webdis incr 64 0 "$W/INCR/counter" GET "" 1
run_wrk nginx post 64 0 "$N/" POST "$CALL" 1

for ((r = 1; r <= rounds; r++)); do
    for c in 64 1000; do
        if ((do_perf && r == 1 && c == 64)); then perf_start "${PIDS[genserv]}" genserv-call; fi
        run_wrk genserv call "$c" "$r" "$G/call" POST "$CALL"
        if ((do_perf && r == 1 && c == 64)); then perf_finish genserv call 64 genserv-call; fi
        alive genserv
        run_wrk webdis incr "$c" "$r" "$W/INCR/counter" GET ""
        alive webdis
        alive redis
        run_wrk genserv cast "$c" "$r" "$G/cast" POST "$CAST"
        alive genserv
        # nginx's workers do the work: perf follows the master's children through -p? No:
        # -p takes one pid, so the workers' pids are listed.
        if ((do_perf && r == 1 && c == 64)); then
            perf_start "$(pgrep -d, -P "${PIDS[nginx]}")" nginx-post
        fi
        run_wrk nginx post "$c" "$r" "$N/" POST "$CALL"
        if ((do_perf && r == 1 && c == 64)); then perf_finish nginx post 64 nginx-post; fi
        alive nginx
    done
    run_held "$r"
done

# Peak memory of the long-lived servers over every wrk run (webdis and redis together).
printf '{"system":"genserv","scenario":"peak_rss","hwm_kb":%s}\n' \
    "$(peak_kb "${PIDS[genserv]}")" >>"$SAMPLES"
printf '{"system":"webdis","scenario":"peak_rss","hwm_kb":%s}\n' \
    $(($(peak_kb "${PIDS[webdis]}") + $(peak_kb "${PIDS[redis]}"))) >>"$SAMPLES"
for name in genserv webdis redis nginx; do stop "$name"; done

# --- Report ------------------------------------------------------------------------------

load_after=$(cut -d' ' -f1-3 /proc/loadavg)
elapsed=$((SECONDS - t0))
rows=$(jq -s -c -f "$ROOT/bench/http/table.jq" "$SAMPLES")
mkdir -p "$(dirname "$out")"
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- api runtime server 2>/dev/null || commit+="+dirty"
cmdline="bench/http/run.sh"
((quick)) && cmdline+=" --quick"
machine=$(jq -n -c --arg cpu "$cpu_model" --argjson nproc "$(nproc)" \
    --arg kernel "$(uname -r)" --arg os "$(. /etc/os-release && echo "$PRETTY_NAME")" \
    --arg mem "$(awk '/^MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)" \
    --arg lb "$load_before" --arg la "$load_after" --arg fd "${fd_limit_note:-ulimit -n $(ulimit -n)}" \
    --arg wrk "$(dpkg-query -W -f='${Version}' wrk)" \
    --arg webdis "$(dpkg-query -W -f='${Version}' webdis)" \
    --arg redis "$(dpkg-query -W -f='${Version}' redis-server)" \
    --arg nginx "$(dpkg-query -W -f='${Version}' nginx-light)" \
    '{cpu: $cpu, nproc: $nproc, kernel: $kernel, os: $os, memory: $mem,
      load_before: $lb, load_after: $la, fd_limit: $fd,
      versions: {wrk: $wrk, webdis: $webdis, "redis-server": $redis, "nginx-light": $nginx}}')
config=$(jq -n -c --argjson rounds "$rounds" --argjson dur "$duration" --argjson held "$held_n" \
    --arg nw "$nginx_workers" --arg commit "$commit" \
    '{rounds: $rounds, duration_s: $dur, wrk_threads: 2, held_calls: $held,
      genserv: "default threads (schedulers and HTTP threads: one per core), --log-level warn",
      webdis_threads: 2, nginx_worker_processes: $nw, genserv_commit: $commit,
      load_generator: "wrk and held_calls on the same machine, sharing its cores; nothing pinned"}')
jq -n --arg started "$started" --arg cmd "$cmdline" --argjson elapsed "$elapsed" \
    --argjson machine "$machine" --argjson config "$config" --argjson rows "$rows" \
    --slurpfile samples "$SAMPLES" \
    '{started: $started, command: $cmd, elapsed_s: $elapsed, machine: $machine,
      config: $config, rows: $rows, samples: $samples}' >"$out.json"

# The same rows as text (stdout) and as Markdown; jq formats both from the JSON just written.
FORMAT='
def k: if . >= 10000 then "\(. / 1000 | . * 10 | round / 10)k" else "\(. * 100 | round / 100)" end;
def st: if . == null then "-" else "\(.median | k) (\(.min | k)-\(.max | k))" end;
def ratio: if .ratio == null then "-" elif .noisy then "(noisy)" else "\(.ratio * 100 | round / 100)x" end;
def met: if .met == null then "-" elif .met then "yes" else "NO" end;
.rows[] | ["\(.scenario): \(.metric)", (.genserv | st), (if .peer_name == null then "-" else "\(.peer | st) \(.peer_name)" end), ratio, .target, met]'
{
    printf '%-52s %-26s %-44s %-8s %-16s %s\n' scenario "genserv median (min-max)" \
        "peer median (min-max)" ratio target met
    jq -r "$FORMAT | @tsv" "$out.json" | while IFS=$'\t' read -r a b c d e f; do
        printf '%-52s %-26s %-44s %-8s %-16s %s\n' "$a" "$b" "$c" "$d" "$e" "$f"
    done
} | tee "$WORK/table.txt"

{
    echo "| scenario | genserv median (min-max) | peer median (min-max) | ratio | target | met |"
    echo "|---|---|---|---|---|---|"
    jq -r "$FORMAT | \"| \" + join(\" | \") + \" |\"" "$out.json"
    echo
    jq -r '"Command: `\(.command)` (\(.config.rounds) rounds of \(.config.duration_s) s wrk runs, wrk -t\(.config.wrk_threads), \(.elapsed_s) s in all), started \(.started), genserv \(.config.genserv_commit).",
        "",
        "Machine: \(.machine.cpu), \(.machine.nproc) cores (`nproc`), \(.machine.memory), \(.machine.os), Linux \(.machine.kernel). Load average before: \(.machine.load_before); after: \(.machine.load_after) (the machine is shared). The load generator (wrk, held_calls) runs on the same cores as the servers; nothing is pinned. \(.machine.fd_limit).",
        "",
        "Peers: webdis \(.machine.versions.webdis) (2 threads) + redis-server \(.machine.versions["redis-server"]); nginx-light \(.machine.versions["nginx-light"]) (worker_processes \(.config.nginx_worker_processes)); wrk \(.machine.versions.wrk). genserv: \(.config.genserv)."' \
        "$out.json"
} >"$out.md"
log "done in ${elapsed} s; results in $out.md and $out.json"
