#!/usr/bin/env bash
# bench/compare/run.sh: genserv against what its users would choose instead (issue 7), in one
# session on this machine, rerunnable by anyone:
#   runtime  the scenarios of bench/runtime_bench.c against the same scenarios written as
#            Erlang gen_servers (bench/erlang/gs_bench.erl, `erl +S 2`): cast from 1 and 100
#            senders, call round trips with 1 and 100 callers, idle servers (starts/s, bytes
#            each), 1,000,000 send_after timers (scheduling rate, lateness), a batcher with
#            10,000 producers; each program's peak RSS per scenario; and servers written in
#            Lua (issue 13: a Lua counter's casts, Lua-to-Lua call round trips, the Blocky
#            batcher with 10,000 Lua producers, 100,000 idle Lua servers awake and hibernated,
#            the instruction budget's cost) against OTP's native gen_servers;
#   http     genserv POST /call get_count against webdis GET /INCR/counter (+ redis-server)
#            and against nginx answering a constant 200 to a POST (the ceiling), with wrk
#            (2 threads, keep-alive) at 16, 64, 256, 1,024 and 4,096 connections, each
#            server's peak RSS under each run; then 1,000 to 50,000 /call pushes held at
#            once by a batcher and released by one flush (bench/http/held_calls.c).
# For each scenario genserv and its peer run alternately, and the whole set repeats --rounds
# times (odd rounds genserv first, even rounds the peer first), so that a noisy minute on a
# shared machine spreads over both sides instead of deciding one. It prints one table
# (scenario, genserv median (min-max), peer median (min-max), ratio, target, met) and writes
# it as Markdown and JSON with every sample, plus two SVG plots drawn by gnuplot:
# throughput against connections, and held calls against RSS. A ratio is printed as
# "(noisy)", and not counted as met, when either side's (max - min) / median exceeds 0.5.
#
# Usage: bench/compare/run.sh [--quick] [--rounds N] [--only runtime|http] [--out PREFIX]
#                             [--duration S] [--sweep-duration S] [--no-install]
#   --quick           about a minute once built: 1 round, runtime_bench --quick and gs_bench
#                     quick (100,000 idle servers and timers, 0.4 s windows; the lua group's
#                     100,000 Lua servers, awake and hibernated, take 15 s), wrk 2 s at 64
#                     connections and 1 s at 16, 1,024 and 4,096, held calls 1,000 and 10,000;
#                     results to bench/results/compare.quick.tmp.* (ignored by git)
#   --rounds N        rounds (default 3; medians need at least 3)
#   --only PART       runtime or http (default both)
#   --out PREFIX      results prefix (default bench/results/compare): PREFIX.md, PREFIX.json,
#                     PREFIX.connections.svg, PREFIX.held.svg
#   --duration S      seconds of each wrk run at 64 connections (default 10)
#   --sweep-duration S  seconds of each wrk run at the other connection counts (default 5)
#   --no-install      fail instead of installing missing Debian packages
# Every server binds to 127.0.0.1 on a free port and is stopped by PID on exit, also on failure.
# The machinery (install, build, servers, wrk and held-call runs) is bench/http/lib.sh.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
args="$*"

quick=0
rounds=3
only=all
out=""
duration=10
sweep_duration=5
do_install=1
usage() {
    sed -n '/^# Usage:/,/^# Every server/p' "$0" | sed 's/^# \{0,1\}//'
    exit "${1:-2}"
}
rounds_set=0 duration_set=0 sweep_set=0
while (($#)); do
    case $1 in
    --quick) quick=1 ;;
    --rounds) rounds=$2 rounds_set=1 && shift ;;
    --only) only=$2 && shift ;;
    --out) out=$2 && shift ;;
    --duration) duration=$2 duration_set=1 && shift ;;
    --sweep-duration) sweep_duration=$2 sweep_set=1 && shift ;;
    --no-install) do_install=0 ;;
    -h | --help) usage 0 ;;
    *) usage ;;
    esac
    shift
done
[[ $only == all || $only == runtime || $only == http ]] || usage
[[ $rounds =~ ^[1-9][0-9]*$ && $duration =~ ^[1-9][0-9]*$ && $sweep_duration =~ ^[1-9][0-9]*$ ]] ||
    usage
do_runtime=0 do_http=0
[[ $only == http ]] || do_runtime=1
[[ $only == runtime ]] || do_http=1

# The sweeps. Quick mode keeps 64 connections and 10,000 held calls (the targets' points).
CONNS=(16 64 256 1024 4096)
HELD=(1000 5000 10000 25000 50000)
if ((quick)); then
    ((rounds_set)) || rounds=1
    ((duration_set)) || duration=2
    ((sweep_set)) || sweep_duration=1
    CONNS=(16 64 1024 4096)
    HELD=(1000 10000)
fi
mode=full
((quick)) && mode=quick
if [[ -z $out ]]; then
    # Quick runs are for development: *.tmp* is ignored by git, so they are never committed.
    if ((quick)); then out=bench/results/compare.quick.tmp; else out=bench/results/compare; fi
fi

# shellcheck source=bench/http/lib.sh
source "$ROOT/bench/http/lib.sh"
WRK_DURATION=$duration

# --- Dependencies and build --------------------------------------------------------------

deps=(cmd:jq=jq "${BENCH_BUILD_DEPS[@]}")
# erlang-base is the part of Debian's `erlang` that this needs: erl, erlc, kernel, stdlib.
((do_runtime)) && deps+=(cmd:erl=erlang-base cmd:erlc=erlang-base)
((do_http)) && deps+=("${BENCH_HTTP_DEPS[@]}" cmd:gnuplot=gnuplot-nox)
bench_install "$do_install" "${deps[@]}"

# wrk at 4,096 connections, and genserv and held_calls at 50,000 held calls, need that many
# descriptors (genserv raises its own soft limit up to the hard one). Where the hard limit
# cannot be raised (no CAP_SYS_RESOURCE, e.g. in a container), held-call counts that do not
# fit are skipped and the largest thousand that fits is measured instead; the JSON and the
# Markdown say so.
max_held=0
for n in "${HELD[@]}"; do ((n > max_held)) && max_held=$n; done
fd_want=$((max_held + 1000 > 6000 ? max_held + 1000 : 6000))
fd_note="ulimit -n $fd_want"
if ! ulimit -n "$fd_want" 2>/dev/null; then
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    fd_note="ulimit -n $fd_want refused (hard limit $(ulimit -Hn)); running with $(ulimit -n)"
    log "$fd_note"
fi
fd_limit=$(ulimit -n)
[[ $fd_limit == unlimited ]] && fd_limit=1048576
held_points=() held_skipped=()
for n in "${HELD[@]}"; do
    if ((n + 300 <= fd_limit)); then held_points+=("$n"); else held_skipped+=("$n"); fi
done
if ((${#held_skipped[@]})); then
    fit=$(((fd_limit - 300) / 1000 * 1000))
    last=${held_points[-1]:-0}
    ((fit > last)) && held_points+=("$fit")
    log "held calls ${held_skipped[*]} skipped (open-file limit $fd_limit); measuring up to ${held_points[-1]}"
fi

targets=()
((do_runtime)) && targets+=(runtime_bench)
bench_build "${targets[@]}"
RUNTIME_BENCH=$ROOT/build-release/bench/runtime_bench
bench_workdir genserv-bench-compare

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
t0=$SECONDS
log "$mode mode, $rounds round(s), $(nproc) cores, load $load_before"

# --- Runtime: runtime_bench against gs_bench, one scenario group at a time -----------------

# lua is runtime_bench's Lua behaviours (issue 13); its OTP peers are the groups before it,
# save for hibernated servers, which gs_bench measures in its group "hibernate".
RT_GROUPS=(idle cast call timers batcher lua)
rb_mode=()
((quick)) && rb_mode=(--quick)

# run_runtime SYSTEM GROUP ROUND: one run of one scenario group, its results as samples.
run_runtime() {
    local system=$1 group=$2 round=$3
    local json="$WORK/rt-$system-$group-$round.json" logf="$WORK/rt-$system-$group-$round.log"
    if [[ $system == genserv ]]; then
        timeout 900 "$RUNTIME_BENCH" "${rb_mode[@]}" --runs 1 --only "$group" --json "$json" \
            >"$logf" 2>&1 || die "runtime_bench --only $group failed: $(tail -3 "$logf")"
    else
        local otp_group=$group
        [[ $group == lua ]] && otp_group=hibernate
        GS_BENCH_EBIN=$WORK/ebin timeout 900 "$ROOT/bench/erlang/run.sh" "$mode" 1 "$otp_group" \
            "$json" >"$logf" 2>&1 || die "gs_bench $otp_group failed: $(tail -3 "$logf")"
    fi
    jq -c --arg s "$system" --arg g "$group" --argjson r "$round" '
        (.results | to_entries[]
         | {part: "runtime", system: $s, group: $g, round: $r, key: .key, label: .value.label,
            unit: .value.unit, scale: .value.scale, value: .value.samples[0]}),
        {part: "runtime", system: $s, group: $g, round: $r, key: "peak_rss_kb",
         label: "peak RSS", unit: "MB", scale: 1024, value: .peak_rss_kb}' "$json" >>"$SAMPLES"
    log "$(jq -r --arg s "$system" --arg g "$group" --argjson r "$round" '
        "\($s | .[0:7] | . + " " * (8 - length))\($g) round \($r): "
        + ([.results | to_entries[] | select(.key | test("_overloaded$|_errors$|_heap$|_time$|_max$|_processes$|not_delivered|mean_batch") | not)
            | "\(.key) \(.value.samples[0] / .value.scale * 100 | round / 100) \(.value.unit)"]
           | join(", "))
        + "; peak RSS \(.peak_rss_kb / 1024 | round) MB"' "$json")"
}

if ((do_runtime)); then
    log "runtime scenarios: runtime_bench ($mode) against gs_bench (erl +S 2, $mode)"
    for ((r = 1; r <= rounds; r++)); do
        for g in "${RT_GROUPS[@]}"; do
            if ((r % 2)); then order=(genserv otp); else order=(otp genserv); fi
            for s in "${order[@]}"; do run_runtime "$s" "$g" "$r"; done
        done
    done
    log "runtime scenarios done in $((SECONDS - t0)) s"
fi

# --- HTTP: wrk against genserv, webdis and nginx; held calls ------------------------------

if ((do_http)); then
    t_http=$SECONDS
    # The three servers start afresh every round and the connection counts go upward: memory
    # a server keeps after a run with many connections would otherwise be the "peak" of every
    # later run with fewer.
    start_servers() {
        start_genserv genserv
        G=http://127.0.0.1:$GS_PORT
        start_webdis
        W=http://127.0.0.1:$WEBDIS_PORT
        start_nginx
        N=http://127.0.0.1:$NGINX_PORT
    }
    CALL='{"server":"counter","message":"get_count"}'
    # wrk_one SYSTEM CONNS ROUND [SECONDS]: the scenario of SYSTEM.
    wrk_one() {
        case $1 in
        genserv) run_wrk genserv call "$2" "$3" "$G/call" POST "$CALL" "${4:-}" ;;
        webdis) run_wrk webdis incr "$2" "$3" "$W/INCR/counter" GET "" "${4:-}" ;;
        nginx) run_wrk nginx post "$2" "$3" "$N/" POST "$CALL" "${4:-}" ;;
        esac
        alive "$1"
        [[ $1 != webdis ]] || alive redis
    }
    for ((r = 1; r <= rounds; r++)); do
        start_servers
        # Warm-ups: caches, connection pools, the allocators' arenas; not kept (round 0).
        for s in genserv webdis nginx; do wrk_one "$s" 64 0 1; done
        if ((r % 2)); then order=(genserv webdis nginx); else order=(nginx webdis genserv); fi
        for c in "${CONNS[@]}"; do
            secs=$sweep_duration
            ((c == 64)) && secs=$duration
            for s in "${order[@]}"; do wrk_one "$s" "$c" "$r" "$secs"; done
        done
        for name in genserv webdis redis nginx; do stop "$name"; done
        for n in "${held_points[@]}"; do run_held "$r" "$n"; done
        # The same 10,000 with 16 KiB of padding each (160 MB of bodies, within the default
        # max_bodies_bytes): RSS while held must not follow the bodies.
        for n in "${held_points[@]}"; do ((n == 10000)) && run_held "$r" "$n" 16384; done
    done
    log "HTTP scenarios done in $((SECONDS - t_http)) s"
fi

# --- Report ------------------------------------------------------------------------------

elapsed=$((SECONDS - t0))
mkdir -p "$(dirname "$out")"
result=$(jq -s -c -L "$ROOT/bench/http" -f "$ROOT/bench/compare/table.jq" "$SAMPLES")
commit=$(genserv_commit)
machine=$(machine_json "$load_before" "$fd_note" erlang-base wrk webdis redis-server \
    nginx-light gnuplot-nox)
config=$(jq -n -c --arg mode "$mode" --argjson rounds "$rounds" --arg only "$only" \
    --argjson dur "$duration" --argjson sdur "$sweep_duration" --arg commit "$commit" \
    --arg malloc "$(binary_malloc "$GENSERV")" \
    --argjson conns "$(printf '%s\n' "${CONNS[@]}" | jq -s -c .)" \
    --argjson held "$(printf '%s\n' "${held_points[@]}" | jq -s -c .)" \
    --argjson skipped "$(printf '%s\n' "${held_skipped[@]}" | jq -s -c 'map(select(. != null))')" \
    '{mode: $mode, rounds: $rounds, only: $only, genserv_commit: $commit, genserv_malloc: $malloc,
      runtime: {genserv: "runtime_bench \(if $mode == "quick" then "--quick " else "" end)--runs 1 --only GROUP (default runtime options: one scheduler per core)",
                otp: "bench/erlang/run.sh \($mode) 1 GROUP (erl +S 2\(if $mode == "full" then ", +P 2000000 for idle" else "" end); for lua, GROUP hibernate)",
                groups: ["idle", "cast", "call", "timers", "batcher", "lua"]},
      http: {wrk: "wrk -t2 --timeout 10s, keep-alive", duration_s_at_64: $dur,
             duration_s_sweep: $sdur, connections: $conns, held_calls: $held,
             held_calls_skipped: $skipped,
             genserv: "default threads (schedulers and HTTP threads: one per core), --log-level warn",
             webdis_threads: 2, nginx_worker_processes: "auto",
             load_generator: "wrk and held_calls on the same machine, sharing its cores; nothing pinned"},
      noisy_rule: "a ratio is (noisy), and not met, when (max - min) / median > 0.5 on either side"}')
jq -n --arg started "$started" --arg cmd "bench/compare/run.sh${args:+ $args}" \
    --argjson elapsed "$elapsed" --argjson machine "$machine" --argjson config "$config" \
    --argjson result "$result" --slurpfile samples "$SAMPLES" \
    '{started: $started, command: $cmd, elapsed_s: $elapsed, machine: $machine,
      config: $config, rows: $result.rows, sweeps: $result.sweeps, samples: $samples}' \
    >"$out.json"

# The rows as text (stdout) and Markdown, formatted by jq from the JSON just written.
FORMAT='
def num: if . == null then "-" elif . >= 10000 then "\(. / 1000 | . * 10 | round / 10)k"
         elif . >= 100 then "\(round)" elif . >= 10 then "\(. * 10 | round / 10)"
         else "\(. * 100 | round / 100)" end;
def st: if . == null then "-" else "\(.median | num) (\(.min | num)-\(.max | num))" end;
def ratio: if .ratio == null then "-" elif .noisy then "(noisy)"
           else "\(.ratio * 100 | round / 100)x" end;
def met: (if .target == "-" then "-" elif .met == null then (if .noisy then "(noisy)" else "-" end)
          elif .met then "yes" else "NO" end)
         + (if .target != "-" and .runs != null and .runs < 3 then " (\(.runs) run)" else "" end);
def peer: if .peer_name == null then "-" else "\(.peer_name): \(.peer | st)" end;'
{
    printf '%-72s %-28s %-44s %-9s %-26s %s\n' "scenario [unit]" "genserv median (min-max)" \
        "peer: median (min-max)" ratio target met
    jq -r "$FORMAT"'.rows[] | ["\(.scenario) [\(.metric)]", (.genserv | st), peer, ratio, .target, met] | @tsv' \
        "$out.json" | while IFS=$'\t' read -r a b c d e f; do
        printf '%-72s %-28s %-44s %-9s %-26s %s\n' "$a" "$b" "$c" "$d" "$e" "$f"
    done
} | tee "$WORK/table.txt"

svg_conns=$out.connections.svg svg_held=$out.held.svg
{
    echo "| scenario | unit | genserv median (min-max) | peer | peer median (min-max) | ratio | target | met |"
    echo "|---|---|---|---|---|---|---|---|"
    jq -r "$FORMAT"'.rows[] | "| \(.scenario) | \(.metric) | \(.genserv | st) | \(.peer_name // "-") | \(.peer | st) | \(ratio) | \(.target) | \(met) |"' \
        "$out.json"
    echo
    jq -r '"Command: `\(.command)` (\(.config.mode) mode, \(.config.rounds) round\(if .config.rounds > 1 then "s" else "" end), \(.elapsed_s) s in all), started \(.started), genserv \(.config.genserv_commit) (Release, malloc: \(.config.genserv_malloc)). Medians over the rounds, min and max in brackets; a ratio is genserv / peer; \(.config.noisy_rule)\(if .config.rounds < 3 then "; with fewer than 3 runs the spread is unknown and \"met\" says how many runs it rests on" else "" end).",
        "",
        "Machine: \(.machine.cpu), \(.machine.nproc) cores (`nproc`), \(.machine.memory), \(.machine.os), Linux \(.machine.kernel). Load average before: \(.machine.load_before); after: \(.machine.load_after). The load generators run on the same cores as the servers; nothing is pinned. \(.machine.fd_limit).",
        "",
        "Peers: Erlang/OTP from erlang-base \(.machine.versions["erlang-base"]) (`\(.config.runtime.otp)`); webdis \(.machine.versions.webdis) (2 threads) + redis-server \(.machine.versions["redis-server"]); nginx-light \(.machine.versions["nginx-light"]) (worker_processes auto); wrk \(.machine.versions.wrk). genserv: `\(.config.runtime.genserv)`; the HTTP server with \(.config.http.genserv)."' \
        "$out.json"
    if ((do_http)); then
        echo
        echo "### Throughput against connections"
        echo
        echo "![throughput against connections]($(basename "$svg_conns"))"
        echo
        echo "| connections | genserv POST /call req/s | webdis INCR req/s | nginx 200 req/s | genserv p99 ms | webdis p99 ms | nginx p99 ms | genserv peak RSS MB | webdis + redis MB | nginx MB | errors (g/w/n) |"
        echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        jq -r "$FORMAT"'.sweeps.connections[] | "| \(.conns) | \(.genserv.rps | st) | \(.webdis.rps | st) | \(.nginx.rps | st) | \(.genserv.p99_ms | st) | \(.webdis.p99_ms | st) | \(.nginx.p99_ms | st) | \(.genserv.peak_rss_mb | st) | \(.webdis.peak_rss_mb | st) | \(.nginx.peak_rss_mb | st) | \(.genserv.errors.max // "-")/\(.webdis.errors.max // "-")/\(.nginx.errors.max // "-") |"' \
            "$out.json"
        echo
        echo "### Held calls against memory"
        echo
        echo "![genserv RSS against held calls]($(basename "$svg_held"))"
        echo
        echo "| held calls | genserv RSS while held MB | peak RSS MB | last answer after the flush ms | first to last answer ms | answered 200 |"
        echo "|---:|---:|---:|---:|---:|---:|"
        jq -r "$FORMAT"'.sweeps.held[] | "| \(.n) | \(.rss_held_mb | st) | \(.peak_rss_mb | st) | \(.last_ms | st) | \(.spread_ms | st) | \(.answered_200.min) of \(.n) (fewest) |"' \
            "$out.json"
        jq -r '.sweeps.held | select(length >= 2) | (first) as $a | (last) as $b
            | "\nRSS while held grows by \(($b.rss_held_mb.median - $a.rss_held_mb.median) * 1048576 / ($b.n - $a.n) | round) bytes per held call between \($a.n) and \($b.n) (medians)."' \
            "$out.json"
        jq -r '.config.http.held_calls_skipped | select(length > 0)
            | "\nNot measured: \(map(tostring) | join(", ")) held calls, which need more open files than this machine allows (\($m))."' \
            --arg m "$fd_note" "$out.json"
    fi
} >"$out.md"

if ((do_http)); then
    jq -r '.sweeps.connections as $c | ("genserv", "webdis", "nginx") as $s
        | ($c[] | select(.[$s].rps != null) | "\(.conns) \(.[$s].rps.median) \(.[$s].rps.min) \(.[$s].rps.max)"), "", ""' \
        "$out.json" >"$WORK/conns.dat"
    jq -r '.sweeps.held[] | "\(.n) \(.rss_held_mb.median) \(.rss_held_mb.min) \(.rss_held_mb.max) \(.peak_rss_mb.median) \(.peak_rss_mb.min) \(.peak_rss_mb.max)"' \
        "$out.json" >"$WORK/held.dat"
    subtitle="$mode mode, median of $rounds round(s), bars from min to max; $started, genserv $commit, $(nproc) cores"
    gnuplot -e "conns_dat='$WORK/conns.dat'; conns_svg='$svg_conns'; held_dat='$WORK/held.dat'; held_svg='$svg_held'; subtitle='$subtitle'" \
        "$ROOT/bench/compare/plots.gp" 2>"$WORK/gnuplot.err" ||
        die "gnuplot failed: $(cat "$WORK/gnuplot.err")"
    log "plots: $svg_conns, $svg_held"
fi
log "done in $((SECONDS - t0)) s; results in $out.md and $out.json"
