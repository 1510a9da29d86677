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
# The machinery (install, build, servers, wrk and held-call runs) is bench/http/lib.sh, which
# bench/compare/run.sh shares; the rows and targets are table.jq (on stats.jq).
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

# shellcheck source=bench/http/lib.sh
source "$ROOT/bench/http/lib.sh"
WRK_DURATION=$duration
NGINX_WORKERS=$nginx_workers

deps=("${BENCH_HTTP_DEPS[@]}")
((do_perf)) && deps+=(cmd:perf=linux-perf)
bench_install "$do_install" "${deps[@]}"

# wrk at 1,000 connections and held_calls at 10,000 need that many descriptors; genserv
# raises its own limit. A refusal is recorded: held_calls then says what it could not open.
fd_limit_note=""
if ! ulimit -n $((held_n + 10000)) 2>/dev/null; then
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    fd_limit_note="ulimit -n $((held_n + 10000)) refused; running with $(ulimit -n)"
    log "$fd_limit_note"
fi

bench_build
bench_workdir genserv-bench-http

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
    run_held "$r" "$held_n"
done

# Peak memory of the long-lived servers over every wrk run (webdis and redis together).
printf '{"system":"genserv","scenario":"peak_rss","hwm_kb":%s}\n' \
    "$(peak_kb "${PIDS[genserv]}")" >>"$SAMPLES"
printf '{"system":"webdis","scenario":"peak_rss","hwm_kb":%s}\n' \
    $(($(peak_kb "${PIDS[webdis]}") + $(peak_kb "${PIDS[redis]}"))) >>"$SAMPLES"
for name in genserv webdis redis nginx; do stop "$name"; done

# --- Report ------------------------------------------------------------------------------

elapsed=$((SECONDS - t0))
rows=$(jq -s -c -L "$ROOT/bench/http" -f "$ROOT/bench/http/table.jq" "$SAMPLES")
mkdir -p "$(dirname "$out")"
commit=$(genserv_commit)
cmdline="bench/http/run.sh"
((quick)) && cmdline+=" --quick"
machine=$(machine_json "$load_before" "${fd_limit_note:-ulimit -n $(ulimit -n)}" \
    wrk webdis redis-server nginx-light)
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
