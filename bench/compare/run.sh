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
#            once by a batcher and released by one flush (bench/http/held_calls.c);
#   durable  durable servers on the SQLite store (issue 15), with genserv --data-dir in a
#            temporary directory: a durable counter's increment at 64 connections, answered
#            once committed (POST /cast with "ack": "handled"), against webdis in front of a
#            Redis with its AOF on (appendonly yes, appendfsync everysec: Redis writes each
#            change before it replies) and against the same increment to a counter in
#            memory, plus POST /call get_count on the durable counter, with an audit of the
#            count against the increments acknowledged; bench/durable_bench.c's committed
#            state changes per second of 64 durable counters cast to from 2 threads (group
#            commit), and the commit latency a durable reply waits for (a round trip to a
#            durable counter against one to a counter in memory); and recovery: --recovery N
#            stored durable idle counters, the time genserv takes from its start to serving
#            with all of them running again, and the database's bytes per stored server.
# For each scenario genserv and its peer run alternately, and the whole set repeats --rounds
# times (odd rounds genserv first, even rounds the peer first), so that a noisy minute on a
# shared machine spreads over both sides instead of deciding one. It prints one table
# (scenario, genserv median (min-max), peer median (min-max), ratio, target, met) and writes
# it as Markdown and JSON with every sample, plus two SVG plots drawn by gnuplot:
# throughput against connections, and held calls against RSS. A ratio is printed as
# "(noisy)", and not counted as met, when either side's (max - min) / median exceeds 0.5.
# Where perf works (`perf stat -e task-clock true`), every genserv run has `perf stat` beside
# it (runtime_bench and durable_bench under it; `perf stat -p` on genserv for each of its wrk
# runs): CPUs used, context switches, migrations, page faults, and cycles, instructions and
# cache misses where the machine counts them (null where it prints "<not supported>"), per
# request for HTTP and per second otherwise, in the JSON beside each scenario's samples and in
# the Markdown; runtime_bench's own per-message profile of its cast and call scenarios
# (wake-ups, steals, inline turns, context switches, CPU ns) gets a table of its own.
#
# Usage: bench/compare/run.sh [--quick] [--rounds N] [--only runtime|http|durable]
#                             [--scenario NAME|list] [--out PREFIX] [--duration S]
#                             [--sweep-duration S] [--recovery N]
#                             [--durability process|power] [--no-perf] [--no-install]
#   --scenario NAME   rerun one scenario against its peer, to check a change in about a
#                     minute: alternating genserv and its peer as the full run does, 3 rounds
#                     (--rounds), runtime_bench --quick windows, wrk runs of 5 s (--duration);
#                     the same table, with that scenario's rows only, and the perf table;
#                     results to bench/results/compare.scenario.tmp.* (ignored by git), plots
#                     only of the sweeps the scenario has data for. `--scenario list` lists:
#   --quick           about two minutes once built: 1 round, runtime_bench --quick and gs_bench
#                     quick (100,000 idle servers and timers, 0.4 s windows; the lua group's
#                     100,000 Lua servers, awake and hibernated, take 15 s), wrk 2 s at 64
#                     connections and 1 s at 16, 1,024 and 4,096, held calls 1,000 and 10,000,
#                     durable_bench --quick (1 s windows); results to
#                     bench/results/compare.quick.tmp.* (ignored by git)
#   --rounds N        rounds (default 3; medians need at least 3)
#   --only PART       runtime, http or durable (default all three); `--quick --only durable`
#                     runs the durable scenarios alone in under a minute once built, and
#                     `--only durable` in about 4 minutes
#   --recovery N      durable servers stored for the recovery scenario (default 100,000,
#                     about 10 s a round; 1,000,000, the issue's figure, takes about a minute
#                     a round and 3 GB of memory; 0 skips it)
#   --durability D    genserv's --durability and durable_bench's (default process)
#   --out PREFIX      results prefix (default bench/results/compare): PREFIX.md, PREFIX.json,
#                     PREFIX.connections.svg, PREFIX.held.svg
#   --duration S      seconds of each wrk run at 64 connections (default 10)
#   --sweep-duration S  seconds of each wrk run at the other connection counts (default 5)
#   --no-perf         no perf stat beside the genserv runs (the report says so)
#   --no-install      fail instead of installing missing Debian packages
# Scenarios (--scenario NAME):
#   cast-1 cast-100   runtime: runtime_bench --only NAME against gs_bench's group cast (run
#   call-1 call-100            whole, its rows of that size kept) or call
#   idle timers       runtime: runtime_bench --only NAME against gs_bench's group NAME
#   batcher
#   lua               runtime: runtime_bench's Lua group (15 s a round) against gs_bench's
#                              idle,cast,call,batcher,hibernate (the Lua rows' peers)
#   http-64           http: wrk at 64 connections, genserv POST /call against webdis INCR and
#                           nginx (the targets' point; any count as http-N: http-1024)
#   held-10000        http: 10,000 held /call pushes, genserv alone, its target rows (held-N)
#   durable           durable: the durable part as `--quick --only durable` runs it (wrk 2 s,
#                              --recovery 100000 unless given), about 40 s a round
# Every server binds to 127.0.0.1 on a free port and is stopped by PID on exit, also on failure.
# The machinery (install, build, servers, wrk and held-call runs) is bench/http/lib.sh.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
args="$*"

quick=0
rounds=3
only=all
scenario=""
out=""
recovery=100000
durability=process
duration=10
sweep_duration=5
do_install=1
do_perf=1
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
    --scenario) scenario=$2 && shift ;;
    --out) out=$2 && shift ;;
    --duration) duration=$2 duration_set=1 && shift ;;
    --sweep-duration) sweep_duration=$2 sweep_set=1 && shift ;;
    --recovery) recovery=$2 && shift ;;
    --durability) durability=$2 && shift ;;
    --no-perf) do_perf=0 ;;
    --no-install) do_install=0 ;;
    -h | --help) usage 0 ;;
    *) usage ;;
    esac
    shift
done
if [[ $scenario == list ]]; then
    sed -n '/^# Scenarios (--scenario NAME):/,/^# Every server/p' "$0" | sed '1d;$d;s/^# \{0,1\}//'
    exit 0
fi
# A scenario names its part; it replaces --only and --quick.
if [[ -n $scenario ]]; then
    if [[ $only != all ]] || ((quick)); then usage; fi
    case $scenario in
    cast-1 | cast-100 | call-1 | call-100 | idle | timers | batcher | lua) only=runtime ;;
    http-[1-9]* | held-[1-9]*) [[ ${scenario#*-} =~ ^[1-9][0-9]*$ ]] && only=http ;;
    durable) only=durable ;;
    esac
    if [[ $only == all ]]; then
        echo "unknown scenario $scenario (bench/compare/run.sh --scenario list)" >&2
        exit 2
    fi
fi
[[ $only == all || $only == runtime || $only == http || $only == durable ]] || usage
[[ $rounds =~ ^[1-9][0-9]*$ && $duration =~ ^[1-9][0-9]*$ && $sweep_duration =~ ^[1-9][0-9]*$ &&
    $recovery =~ ^[0-9]+$ && ($durability == process || $durability == power) ]] || usage
do_runtime=0 do_http=0 do_durable=0
[[ $only == all || $only == runtime ]] && do_runtime=1
[[ $only == all || $only == http ]] && do_http=1
[[ $only == all || $only == durable ]] && do_durable=1

# The sweeps. Quick mode keeps 64 connections and 10,000 held calls (the targets' points).
CONNS=(16 64 256 1024 4096)
HELD=(1000 5000 10000 25000 50000)
# The runtime groups, each one process of runtime_bench and one of gs_bench per round. lua is
# runtime_bench's Lua behaviours (issue 13); its OTP peers are the groups before it, save for
# hibernated servers, which gs_bench measures in its group "hibernate".
RT_GROUPS=(idle cast call timers batcher lua)
# held_padded: the 10,000 held calls again with 16 KiB of padding each (full and quick runs).
held_padded=1
if ((quick)); then
    ((rounds_set)) || rounds=1
    ((duration_set)) || duration=2
    ((sweep_set)) || sweep_duration=1
    CONNS=(16 64 1024 4096)
    HELD=(1000 10000)
fi
# A scenario: the tools' quick counts and windows, and of its part only the one scenario.
if [[ -n $scenario ]]; then
    held_padded=0
    case $scenario in
    http-*)
        CONNS=("${scenario#http-}") HELD=()
        ((duration_set)) || duration=5
        ;;
    held-*) CONNS=() HELD=("${scenario#held-}") ;;
    durable)
        HELD=()
        ((duration_set)) || duration=2
        ;;
    *) RT_GROUPS=("$scenario") HELD=() ;;
    esac
    ((sweep_set)) || sweep_duration=$duration
fi
# mode names the run (full, quick, scenario); tools_mode the counts and windows of
# runtime_bench, gs_bench and durable_bench (full or quick).
mode=full tools_mode=full
((quick)) && mode=quick tools_mode=quick
[[ -n $scenario ]] && mode=scenario tools_mode=quick
if [[ -z $out ]]; then
    # Quick and scenario runs are for development: *.tmp* is ignored by git, so they are never
    # committed.
    case $mode in
    quick) out=bench/results/compare.quick.tmp ;;
    scenario) out=bench/results/compare.scenario.tmp ;;
    *) out=bench/results/compare ;;
    esac
fi

# shellcheck source=bench/http/lib.sh
source "$ROOT/bench/http/lib.sh"
WRK_DURATION=$duration

# --- Dependencies and build --------------------------------------------------------------

deps=(cmd:jq=jq "${BENCH_BUILD_DEPS[@]}")
# erlang-base is the part of Debian's `erlang` that this needs: erl, erlc, kernel, stdlib.
((do_runtime)) && deps+=(cmd:erl=erlang-base cmd:erlc=erlang-base)
((do_http)) && deps+=("${BENCH_HTTP_DEPS[@]}" cmd:gnuplot=gnuplot-nox)
((do_durable)) && deps+=("${BENCH_HTTP_DEPS[@]}" cmd:sqlite3=sqlite3)
bench_install "$do_install" "${deps[@]}"
# perf is optional: without it (or where it may not count), the report says so in one line.
if ((do_perf)); then
    if ! command -v perf >/dev/null && ((do_install)); then
        (bench_install 1 cmd:perf=linux-perf) || log "linux-perf could not be installed: no perf stat"
    fi
    perf_probe
else
    BENCH_PERF=0 BENCH_PERF_NOTE="--no-perf given"
fi
((BENCH_PERF)) || log "no perf stat beside the genserv runs: $BENCH_PERF_NOTE"
BENCH_PERF_SYSTEMS="genserv genserv-durable held"

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
    if ((do_http)); then
        log "held calls ${held_skipped[*]} skipped (open-file limit $fd_limit); measuring up to ${held_points[-1]}"
    fi
fi

targets=()
((do_runtime)) && targets+=(runtime_bench)
((do_durable)) && targets+=(durable_bench)
bench_build "${targets[@]}"
RUNTIME_BENCH=$ROOT/build-release/bench/runtime_bench
DURABLE_BENCH=$ROOT/build-release/bench/durable_bench
bench_workdir genserv-bench-compare

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
t0=$SECONDS
log "$mode mode, $rounds round(s), $(nproc) cores, load $load_before"

# --- Runtime: runtime_bench against gs_bench, one scenario group at a time -----------------

rb_mode=()
[[ $tools_mode == quick ]] && rb_mode=(--quick)

# otp_group GROUP: gs_bench's groups that are GROUP's peer. runtime_bench's cast-1, cast-100,
# call-1 and call-100 are the halves of gs_bench's cast and call; lua's peers are the other
# groups of the same run, save for gs_bench's hibernate, run for it alone (a lua scenario runs
# them all, since nothing else does).
otp_group() {
    case $1 in
    cast-* | call-*) echo "${1%-*}" ;;
    lua) if [[ -n $scenario ]]; then echo idle,cast,call,batcher,hibernate; else echo hibernate; fi ;;
    *) echo "$1" ;;
    esac
}

# run_runtime SYSTEM GROUP ROUND: one run of one scenario group, its results as samples;
# genserv's under perf stat, whose counters become a "perf" sample beside them.
run_runtime() {
    local system=$1 group=$2 round=$3 keep=""
    local json="$WORK/rt-$system-$group-$round.json" logf="$WORK/rt-$system-$group-$round.log"
    if [[ $system == genserv ]]; then
        local perff="$WORK/perf-rt-$group-$round.csv" t
        perf_wrap "$perff"
        t=$(date +%s%N)
        timeout 900 "${PERF_WRAP[@]}" "$RUNTIME_BENCH" "${rb_mode[@]}" --runs 1 --only "$group" \
            --json "$json" >"$logf" 2>&1 || die "runtime_bench --only $group failed: $(tail -3 "$logf")"
        perf_sample "$perff" $(($(date +%s%N) - t)) "$(jq -n -c --arg g "$group" --argjson r "$round" \
            '{system: "genserv", of: $g, group: $g, round: $r, tool: "runtime_bench",
              label: "runtime_bench --only \($g) (the whole process)", requests: null}')"
    else
        local og
        og=$(otp_group "$group")
        GS_BENCH_EBIN=$WORK/ebin timeout 900 "$ROOT/bench/erlang/run.sh" "$tools_mode" 1 "$og" \
            "$json" >"$logf" 2>&1 || die "gs_bench $og failed: $(tail -3 "$logf")"
        # cast-1 against the cast group: its 1-sender rows only (cast_1_..., not cast_100_...).
        [[ $group == cast-* || $group == call-* ]] && keep="^${group/-/_}_"
    fi
    jq -c --arg s "$system" --arg g "$group" --argjson r "$round" --arg keep "$keep" '
        (.results | to_entries[] | select(.key | test($keep))
         | {part: "runtime", system: $s, group: $g, round: $r, key: .key, label: .value.label,
            unit: .value.unit, scale: .value.scale, value: .value.samples[0]}),
        {part: "runtime", system: $s, group: $g, round: $r, key: "peak_rss_kb",
         label: "peak RSS", unit: "MB", scale: 1024, value: .peak_rss_kb}' "$json" >>"$SAMPLES"
    log "$(jq -r --arg s "$system" --arg g "$group" --argjson r "$round" --arg keep "$keep" '
        "\($s | .[0:7] | . + " " * (8 - length))\($g) round \($r): "
        + ([.results | to_entries[] | select(.key | test($keep))
            | select(.key | test("_overloaded$|_errors$|_heap$|_time$|_max$|_processes$|not_delivered|mean_batch|_wakeups$|_steals$|_inline$|_cswitches$|_cpu_ns$") | not)
            | "\(.key) \(.value.samples[0] / .value.scale * 100 | round / 100) \(.value.unit)"]
           | join(", "))
        + "; peak RSS \(.peak_rss_kb / 1024 | round) MB"' "$json")"
}

if ((do_runtime)); then
    log "runtime scenarios: runtime_bench ($tools_mode) against gs_bench (erl +S 2, $tools_mode)"
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
        if ((${#CONNS[@]})); then
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
        fi
        for n in "${held_points[@]}"; do run_held "$r" "$n"; done
        # The same 10,000 with 16 KiB of padding each (160 MB of bodies, within the default
        # max_bodies_bytes): RSS while held must not follow the bodies.
        if ((held_padded)); then
            for n in "${held_points[@]}"; do ((n == 10000)) && run_held "$r" "$n" 16384; done
        fi
    done
    log "HTTP scenarios done in $((SECONDS - t_http)) s"
fi

# --- Durable: durable_bench, the durable counter against webdis + Redis AOF, recovery -------

if ((do_durable)); then
    t_durable=$SECONDS
    db_mode=()
    [[ $tools_mode == quick ]] && db_mode=(--quick)
    # run_durable_bench ROUND: one run of durable_bench's scenarios, its results as samples,
    # under perf stat (a "perf" sample beside them).
    run_durable_bench() {
        local round=$1 json="$WORK/durable-$1.json" logf="$WORK/durable-$1.log" order=()
        local perff="$WORK/perf-durable-$1.csv" t
        ((round % 2)) || order=(--memory-first)
        perf_wrap "$perff"
        t=$(date +%s%N)
        timeout 900 "${PERF_WRAP[@]}" "$DURABLE_BENCH" "${db_mode[@]}" "${order[@]}" --runs 1 \
            --durability "$durability" --dir "$WORK" --json "$json" >"$logf" 2>&1 ||
            die "durable_bench failed: $(tail -3 "$logf")"
        perf_sample "$perff" $(($(date +%s%N) - t)) "$(jq -n -c --argjson r "$round" \
            '{system: "genserv", of: "durable_bench", group: "durable", round: $r,
              tool: "durable_bench", label: "durable_bench (the whole process)", requests: null}')"
        jq -c --argjson r "$round" '
            .results | to_entries[]
            | {part: "durable", system: "genserv", group: "durable", round: $r, key: .key,
               label: .value.label, unit: .value.unit, scale: .value.scale,
               value: .value.samples[0]}' "$json" >>"$SAMPLES"
        log "$(jq -r --argjson r "$round" '
            "durable_bench round \($r): "
            + ([.results | to_entries[] | select(.value.detail | not)
                | "\(.key) \(.value.samples[0] / .value.scale * 10 | round / 10) \(.value.unit)"]
               | join(", "))' "$json")"
    }

    # The durable counter over HTTP: a genserv with a data directory of its own each round,
    # holding the durable counter "durable" and the same counter in memory, "memory"; and
    # webdis in front of a Redis with its AOF on. The write is what INCR is to Redis: the
    # counter's increment, answered once it is committed (POST /cast with "ack": "handled":
    # 202 after the change committed; the counter's increment is a cast, it has no call that
    # changes it). The read is issue 7's POST /call get_count, on the durable counter: it
    # changes nothing, so it commits nothing, and passes the output gate at once.
    DURABLE_WRITE='{"server":"durable","message":"increment","ack":"handled"}'
    MEMORY_WRITE='{"server":"memory","message":"increment","ack":"handled"}'
    DURABLE_READ='{"server":"durable","message":"get_count"}'
    # wrk_durable SYSTEM CONNS ROUND [SECONDS]
    wrk_durable() {
        case $1 in
        durable) run_wrk genserv-durable durable "$2" "$3" "$GD/cast" POST "$DURABLE_WRITE" "${4:-}" ;;
        memory) run_wrk genserv-durable memory "$2" "$3" "$GD/cast" POST "$MEMORY_WRITE" "${4:-}" ;;
        read) run_wrk genserv-durable read "$2" "$3" "$GD/call" POST "$DURABLE_READ" "${4:-}" ;;
        webdis-aof) run_wrk webdis-aof incr "$2" "$3" "$WA/INCR/counter" GET "" "${4:-}" ;;
        esac
        if [[ $1 == webdis-aof ]]; then alive webdis-aof && alive redis-aof; else alive genserv-durable; fi
    }
    # audit_durable ROUND NAME: every increment that wrk saw answered 2xx this round (warm-up
    # included) is in the counter NAME of genserv-durable. The count may be higher by the
    # requests still in flight when a wrk run ended; never lower.
    audit_durable() {
        local round=$1 name=$2 acked=0 count f n
        for f in "$WORK/wrk-genserv-durable-$name-64-0.txt" "$WORK/wrk-genserv-durable-$name-64-$round.txt"; do
            n=$(grep '^{' "$f" | tail -1 | jq '.requests - .non2xx')
            acked=$((acked + n))
        done
        count=$(curl -sf -d "{\"server\":\"$name\",\"message\":\"get_count\"}" "$GD/call" |
            jq -r .reply) || die "cannot read the count of $name"
        jq -n -c --arg n "$name" --argjson r "$round" --argjson a "$acked" --argjson c "$count" \
            '{part: "audit", system: "genserv", name: $n, round: $r, acked: $a, count: $c,
              lost: ([$a - $c, 0] | max)}' >>"$SAMPLES"
        if ((count < acked)); then
            log "AUDIT FAILED: $name counts $count, but $acked increments were answered 2xx"
        else
            log "audit: $name counts $count >= $acked increments answered 2xx"
        fi
    }

    # run_recovery ROUND N: N durable idle counters stored, then one start of genserv on them.
    # The first counter is created over POST /servers, as a client would; genserv stops; its
    # two rows (spec and state) are then copied N - 1 times under new names with sqlite3,
    # straight into the store's one table kv(tab, key, val) (tab 1 "specs" and 3 "states",
    # GS_STORE_TABLES_MAP in include/genserv/store.h), each copy's spec naming it and ordered
    # after the one before. Creating a million servers over HTTP would take minutes and
    # measure POST /servers, not recovery. Copies in key order fill SQLite's pages as densely
    # as it fills them: the bytes per server are a floor for servers created one by one.
    # Then genserv starts on the directory: recovery_s is the time from its exec to its
    # "listening on" line, which it prints once every stored server started again (server/
    # main.c restores before it listens); restored counts the servers registered then
    # (genserv_servers of /metrics) less those of a genserv without stored servers.
    run_recovery() {
        local round=$1 n=$2 dir="$WORK/recovery" t0 t1 i port="" base total failed hwm rss rows
        rm -rf "$dir"
        start_genserv genserv-recovery --data-dir "$dir" --durability "$durability"
        base=$(curl -sf "http://127.0.0.1:$GS_PORT/metrics" | awk '$1 == "genserv_servers" {print $2}')
        curl -sf -d '{"name": "r0000000", "behaviour": "counter", "durable": true}' \
            "http://127.0.0.1:$GS_PORT/servers" >/dev/null || die "cannot start r0000000"
        stop genserv-recovery
        rows=$(sqlite3 "$dir/genserv.db" "SELECT count(*) FROM kv WHERE key = 'r0000000' AND tab IN (1, 3)")
        ((rows == 2)) || die "recovery: the store holds $rows rows of r0000000, not its spec and state"
        t0=$SECONDS
        sqlite3 "$dir/genserv.db" "
            BEGIN;
            WITH RECURSIVE i(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM i WHERE k < $n - 1)
            INSERT INTO kv(tab, key, val)
            SELECT t.tab, printf('r%07d', i.k),
                   CASE t.tab WHEN 1 THEN json_set(t.val, '\$.spec.name', printf('r%07d', i.k),
                                                   '\$.ord', json_extract(t.val, '\$.ord') + i.k)
                              ELSE t.val END
            FROM i, kv AS t WHERE t.key = 'r0000000' AND t.tab IN (1, 3);
            COMMIT;" || die "recovery: sqlite3 could not copy the rows"
        rows=$(sqlite3 "$dir/genserv.db" "SELECT count(*) FROM kv WHERE tab IN (1, 3)")
        ((rows == 2 * n)) || die "recovery: $rows rows stored, not $((2 * n))"
        log "recovery round $round: $n servers stored in $((SECONDS - t0)) s"
        # The directory as genserv will open it: the database alone (sqlite3 checkpointed and
        # removed its WAL when it closed).
        local db_bytes
        db_bytes=$(du -sb "$dir" | cut -f1)
        sync
        t0=$(date +%s%N)
        "$GENSERV" --listen 127.0.0.1:0 --log-level warn --data-dir "$dir" \
            --durability "$durability" >"$WORK/recovery.out" 2>"$WORK/recovery.err" &
        PIDS["genserv-recovery"]=$!
        for ((i = 0; i < 60000; i++)); do
            port=$(sed -n '1s|^listening on http://127.0.0.1:\([0-9]*\)$|\1|p' "$WORK/recovery.out")
            [[ -n $port ]] && break
            alive genserv-recovery
            sleep 0.01
        done
        t1=$(date +%s%N)
        [[ -n $port ]] || die "recovery: genserv printed no listening line in 600 s"
        curl -sf "http://127.0.0.1:$port/healthz" >/dev/null || die "recovery: /healthz failed"
        hwm=$(peak_kb "${PIDS[genserv-recovery]}")
        rss=$(awk '/^VmRSS:/ {print $2}' "/proc/${PIDS[genserv-recovery]}/status")
        total=$(curl -sf "http://127.0.0.1:$port/metrics" | awk '$1 == "genserv_servers" {print $2}')
        # The last one created, with its state.
        curl -sf "http://127.0.0.1:$port/servers/$(printf 'r%07d' $((n - 1)))" |
            jq -e '.status == "running" and .state.count == 0' >/dev/null ||
            die "recovery: $(printf 'r%07d' $((n - 1))) is not running with its stored state"
        failed=$(grep -c 'did not start again' "$WORK/recovery.err" || true)
        stop genserv-recovery
        jq -n -c --argjson r "$round" --argjson n "$n" --argjson ns $((t1 - t0)) \
            --argjson db "$db_bytes" --argjson restored $((total - base)) \
            --argjson failed "$failed" --argjson hwm "$hwm" --argjson rss "$rss" \
            '{part: "recovery", system: "genserv", round: $r, servers: $n,
              recovery_s: ($ns / 1e9), db_bytes: $db, restored: $restored, failed: $failed,
              hwm_kb: $hwm, rss_kb: $rss}' >>"$SAMPLES"
        log "$(jq -r '"recovery round \(.round): \(.restored) of \(.servers) servers restored in \(.recovery_s * 1000 | round / 1000) s (\(.failed) did not start), \(.db_bytes / .servers | round) bytes each in the database, RSS \(.rss_kb / 1024 | round) MB once restored, peak \(.hwm_kb / 1024 | round) MB"' <<<"$(tail -1 "$SAMPLES")")"
        rm -rf "$dir"
    }

    for ((r = 1; r <= rounds; r++)); do
        run_durable_bench "$r"

        start_genserv genserv-durable --data-dir "$WORK/data-$r" --durability "$durability"
        GD=http://127.0.0.1:$GS_PORT
        curl -sf -d '{"name": "durable", "behaviour": "counter", "durable": true}' \
            "$GD/servers" >/dev/null || die "cannot start the durable counter"
        curl -sf -d '{"name": "memory", "behaviour": "counter"}' "$GD/servers" >/dev/null ||
            die "cannot start the counter in memory"
        start_webdis_aof
        WA=http://127.0.0.1:$WEBDIS_PORT
        # Warm-ups (round 0, not kept), then the runs, genserv first in odd rounds.
        for s in durable memory read webdis-aof; do wrk_durable "$s" 64 0 1; done
        if ((r % 2)); then order=(durable webdis-aof memory read); else order=(read memory webdis-aof durable); fi
        for s in "${order[@]}"; do wrk_durable "$s" 64 "$r" "$duration"; done
        audit_durable "$r" durable
        audit_durable "$r" memory
        for name in genserv-durable webdis-aof redis-aof; do stop "$name"; done
        log "round $r: genserv's data directory $(du -sb "$WORK/data-$r" | cut -f1) bytes, Redis's AOF directory $(du -sb "$WORK/redis-aof" | cut -f1) bytes"
        rm -rf "$WORK/redis-aof" "$WORK/data-$r"
    done

    if ((recovery > 0)); then
        for ((r = 1; r <= rounds; r++)); do run_recovery "$r" "$recovery"; done
    fi
    log "durable scenarios done in $((SECONDS - t_durable)) s"
fi

# --- Report ------------------------------------------------------------------------------

elapsed=$((SECONDS - t0))
mkdir -p "$(dirname "$out")"
result=$(jq -s -c -L "$ROOT/bench/http" -f "$ROOT/bench/compare/table.jq" "$SAMPLES")
# A scenario's table: its own rows, not the peers' rows it ran for (OTP's cast_100_senders
# beside cast-1, the OTP groups a lua scenario runs for the Lua rows' ratios).
[[ -z $scenario ]] || result=$(jq -c '.rows |= map(select(.genserv != null))' <<<"$result")
commit=$(genserv_commit)
machine=$(machine_json "$load_before" "$fd_note" erlang-base wrk webdis redis-server \
    nginx-light gnuplot-nox libsqlite3-0 linux-perf)
strs() { printf '%s\n' "$@" | jq -R . | jq -s -c 'map(select(. != ""))'; }
config=$(jq -n -c --arg mode "$mode" --arg tools "$tools_mode" --argjson rounds "$rounds" \
    --arg only "$only" --arg scenario "$scenario" \
    --argjson dur "$duration" --argjson sdur "$sweep_duration" --arg commit "$commit" \
    --arg durability "$durability" --argjson recovery "$((do_durable ? recovery : 0))" \
    --arg malloc "$(binary_malloc "$GENSERV")" \
    --argjson conns "$(printf '%s\n' "${CONNS[@]}" | jq -s -c .)" \
    --argjson held "$(printf '%s\n' "${held_points[@]}" | jq -s -c .)" \
    --argjson skipped "$(printf '%s\n' "${held_skipped[@]}" | jq -s -c 'map(select(. != null))')" \
    --argjson groups "$(strs "${RT_GROUPS[@]}")" \
    --argjson perf "$BENCH_PERF" --arg perf_note "$BENCH_PERF_NOTE" --arg events "$PERF_EVENTS" \
    '{mode: $mode, scenario: (if $scenario == "" then null else $scenario end),
      rounds: $rounds, only: $only, genserv_commit: $commit, genserv_malloc: $malloc,
      runtime: {genserv: "runtime_bench \(if $tools == "quick" then "--quick " else "" end)--runs 1 --only GROUP (default runtime options: one scheduler per core)",
                otp: "bench/erlang/run.sh \($tools) 1 GROUP (erl +S 2\(if $tools == "full" then ", +P 2000000 for idle" else "" end); for cast-1 and cast-100, GROUP cast, for call-1 and call-100, GROUP call, their rows of that size kept; for lua, GROUP hibernate\(if $scenario == "lua" then ", and idle,cast,call,batcher, the Lua rows'"'"' peers" else "" end))",
                groups: $groups},
      perf: {enabled: ($perf == 1), note: $perf_note,
             runs: "genserv runs only: perf stat -e \($events) around runtime_bench and durable_bench (every thread, the whole process), perf stat -p on genserv for each of its wrk runs (not the warm-ups) and each held_calls run"},
      http: {wrk: "wrk -t2 --timeout 10s, keep-alive", duration_s_at_64: $dur,
             duration_s_sweep: $sdur, connections: $conns, held_calls: $held,
             held_calls_skipped: $skipped,
             genserv: "default threads (schedulers and HTTP threads: one per core), --log-level warn",
             webdis_threads: 2, nginx_worker_processes: "auto",
             load_generator: "wrk and held_calls on the same machine, sharing its cores; nothing pinned"},
      durable: {durability: $durability,
                bench: "durable_bench \(if $tools == "quick" then "--quick " else "" end)--runs 1 --durability \($durability) (64 counters, 2 sender threads; odd rounds durable first, even rounds --memory-first)",
                http: "genserv --data-dir (fresh each round) --durability \($durability): POST /cast {\"server\": \"durable\", \"message\": \"increment\", \"ack\": \"handled\"} (202 once committed) to a counter started with \"durable\": true, the same to one in memory, and POST /call get_count to the durable one; webdis (2 threads) + redis-server --appendonly yes --appendfsync everysec: GET /INCR/counter; wrk -t2 -c64, \($dur) s",
                recovery_servers: $recovery},
      noisy_rule: "a ratio is (noisy), and not met, when (max - min) / median > 0.5 on either side"}')
jq -n --arg started "$started" --arg cmd "bench/compare/run.sh${args:+ $args}" \
    --argjson elapsed "$elapsed" --argjson machine "$machine" --argjson config "$config" \
    --argjson result "$result" --slurpfile samples "$SAMPLES" \
    '{started: $started, command: $cmd, elapsed_s: $elapsed, machine: $machine,
      config: $config, rows: $result.rows, sweeps: $result.sweeps, perf: $result.perf,
      where: $result.where, samples: $samples}' \
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
def peer: if .peer_name == null then "-" else "\(.peer_name): \(.peer | st)" end;
def fine: if . != null and . > 0 and . < 0.1 then "\(. * 10000 | round / 10000)" else num end;
def stf: if . == null then "-" else "\(.median | fine) (\(.min | fine)-\(.max | fine))" end;
def cswitches: if .per_request then "\(.cs_per_1k_requests | stf) per 1k requests"
               else "\(.cs_per_s | stf)/s" end;
def hardware: if .hardware_counted | not then "not supported"
              else "\(.cycles_per_s | stf) cycles/s, \(.instructions_per_cycle | stf) instructions/cycle, \(.cache_misses_per_s | stf) cache misses/s" end;'
# The two small tables beside the main one: perf stat, and runtime_bench's own profile.
PERF_MD='"| \(.label) | \(.cpus.n // "-") | \(.cpus | stf) | \(cswitches) | \(.cpu_us_per_request | stf) | \(.migrations_per_s | stf) | \(.page_faults_per_s | stf) | \(hardware) |"'
WHERE_MD='"| \(.label) | \(.wakeups | stf) | \(.steals | stf) | \(.inline | stf) | \(.cswitches | stf) | \(.cpu_ns | stf) |"'
{
    printf '%-72s %-28s %-44s %-9s %-26s %s\n' "scenario [unit]" "genserv median (min-max)" \
        "peer: median (min-max)" ratio target met
    jq -r "$FORMAT"'.rows[] | ["\(.scenario) [\(.metric)]", (.genserv | st), peer, ratio, .target, met] | @tsv' \
        "$out.json" | while IFS=$'\t' read -r a b c d e f; do
        printf '%-72s %-28s %-44s %-9s %-26s %s\n' "$a" "$b" "$c" "$d" "$e" "$f"
    done
    jq -r "$FORMAT"'
        (.where | select(length > 0)
         | "\nwhere the time goes (runtime_bench): per 1k messages wake-ups, steals, inline turns, context switches; CPU ns per message",
           (.[] | "  \(.label): \(.wakeups | stf), \(.steals | stf), \(.inline | stf), \(.cswitches | stf); \(.cpu_ns | stf) ns")),
        (if .config.perf.enabled | not then "\nperf stat: not recorded (\(.config.perf.note))"
         else (.perf | select(length > 0)
               | "\nperf stat beside each genserv run: CPUs used; context switches; CPU us per request; migrations/s; page faults/s; hardware counters",
                 (.[] | "  \(.label): \(.cpus | stf) CPUs; \(cswitches); \(.cpu_us_per_request | stf) us/request; \(.migrations_per_s | stf) migrations/s; \(.page_faults_per_s | stf) faults/s; \(hardware)"))
         end)' "$out.json"
} | tee "$WORK/table.txt"

# Plots of the sweeps this run has data for: the connections plot wants wrk runs (the HTTP
# part, or a scenario http-N), the held plot held calls (a scenario held-N has one point).
svg_conns=$out.connections.svg svg_held=$out.held.svg
plot_conns=0 plot_held=0
if ((do_http)); then
    jq -e '.sweeps.connections | any(.[]; .genserv.rps != null)' "$out.json" >/dev/null &&
        plot_conns=1
    jq -e '.sweeps.held | length > 0' "$out.json" >/dev/null && plot_held=1
fi
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
    echo
    if jq -e '.config.perf.enabled' "$out.json" >/dev/null; then
        echo "### perf stat beside each genserv scenario"
        echo
        jq -r '"\(.config.perf.runs); linux-perf \(.machine.versions["linux-perf"] // "?"). Medians over the rounds (min-max). CPUs used: task-clock over the wall time perf covered. Context switches and CPU per request where wrk counted the requests (per held call for held_calls); per second for a runtime_bench or durable_bench process, whose count includes its setup and warm-ups (runtime_bench'"'"'s own per-message figures are the next table). Hardware counters: \"not supported\" where this machine does not count them (a VM, most often); recorded as null."' \
            "$out.json"
        echo
        echo "| genserv run | runs | CPUs used | context switches | CPU µs per request | migrations/s | page faults/s | cycles, instructions, cache misses |"
        echo "|---|---:|---:|---:|---:|---:|---:|---|"
        jq -r "$FORMAT"'.perf[] | '"$PERF_MD" "$out.json"
    else
        jq -r '"perf stat: not recorded beside the genserv runs (\(.config.perf.note))."' "$out.json"
    fi
    if jq -e '.where | length > 0' "$out.json" >/dev/null; then
        echo
        echo "### Where the time goes"
        echo
        echo "runtime_bench's profile of each cast and call scenario over its measured window (genserv alone; the runtime's own counters and getrusage of every thread): scheduler wake-ups, servers stolen by idle schedulers, turns run on the caller's thread and context switches per 1,000 messages, and CPU time per message."
        echo
        echo "| scenario | wake-ups per 1k msgs | steals per 1k | inline turns per 1k | context switches per 1k | CPU ns per msg |"
        echo "|---|---:|---:|---:|---:|---:|"
        jq -r "$FORMAT"'.where[] | '"$WHERE_MD" "$out.json"
    fi
    if ((do_durable)); then
        echo
        echo "### Durable servers"
        echo
        jq -r '"Durability `\(.config.durable.durability)`; SQLite \(.machine.versions["libsqlite3-0"]). HTTP: \(.config.durable.http). Runtime: `\(.config.durable.bench)`. Recovery: \(if .config.durable.recovery_servers > 0 then "\(.config.durable.recovery_servers) durable idle counters (one created over POST /servers, its spec and state rows copied with sqlite3), then genserv started on them: exec to its listening line, which it prints once every stored server is running again" else "skipped (--recovery 0)" end)."' \
            "$out.json"
        echo
        jq -r '.samples[] | select(.part == "audit")
            | "- audit, round \(.round): counter `\(.name)` counts \(.count); \(.acked) increments were acknowledged 2xx\(if .lost > 0 then ": \(.lost) MISSING" else "" end)"' \
            "$out.json"
    fi
    if ((plot_conns)); then
        echo
        echo "### Throughput against connections"
        echo
        echo "![throughput against connections]($(basename "$svg_conns"))"
        echo
        echo "| connections | genserv POST /call req/s | webdis INCR req/s | nginx 200 req/s | genserv p99 ms | webdis p99 ms | nginx p99 ms | genserv peak RSS MB | webdis + redis MB | nginx MB | errors (g/w/n) |"
        echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        jq -r "$FORMAT"'.sweeps.connections[] | "| \(.conns) | \(.genserv.rps | st) | \(.webdis.rps | st) | \(.nginx.rps | st) | \(.genserv.p99_ms | st) | \(.webdis.p99_ms | st) | \(.nginx.p99_ms | st) | \(.genserv.peak_rss_mb | st) | \(.webdis.peak_rss_mb | st) | \(.nginx.peak_rss_mb | st) | \(.genserv.errors.max // "-")/\(.webdis.errors.max // "-")/\(.nginx.errors.max // "-") |"' \
            "$out.json"
    fi
    if ((plot_held)); then
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
    fi
    if ((do_http)); then
        jq -r '.config.http.held_calls_skipped | select(length > 0)
            | "\nNot measured: \(map(tostring) | join(", ")) held calls, which need more open files than this machine allows (\($m))."' \
            --arg m "$fd_note" "$out.json"
    fi
} >"$out.md"

# A scenario run's prefix is reused by the next scenario: a plot it did not draw is an older
# scenario's, which its Markdown does not show; it goes.
if [[ -n $scenario ]]; then
    ((plot_conns)) || rm -f "$svg_conns"
    ((plot_held)) || rm -f "$svg_held"
fi
if ((plot_conns || plot_held)); then
    # plots.gp draws each plot whose output it is given.
    subtitle="$mode mode${scenario:+ $scenario}, median of $rounds round(s), bars from min to max; $started, genserv $commit, $(nproc) cores"
    gp="subtitle='$subtitle'" made=()
    if ((plot_conns)); then
        jq -r '.sweeps.connections as $c | ("genserv", "webdis", "nginx") as $s
            | ($c[] | select(.[$s].rps != null) | "\(.conns) \(.[$s].rps.median) \(.[$s].rps.min) \(.[$s].rps.max)"), "", ""' \
            "$out.json" >"$WORK/conns.dat"
        gp+="; conns_dat='$WORK/conns.dat'; conns_svg='$svg_conns'"
        made+=("$svg_conns")
    fi
    if ((plot_held)); then
        jq -r '.sweeps.held[] | "\(.n) \(.rss_held_mb.median) \(.rss_held_mb.min) \(.rss_held_mb.max) \(.peak_rss_mb.median) \(.peak_rss_mb.min) \(.peak_rss_mb.max)"' \
            "$out.json" >"$WORK/held.dat"
        gp+="; held_dat='$WORK/held.dat'; held_svg='$svg_held'"
        made+=("$svg_held")
    fi
    gnuplot -e "$gp" "$ROOT/bench/compare/plots.gp" 2>"$WORK/gnuplot.err" ||
        die "gnuplot failed: $(cat "$WORK/gnuplot.err")"
    log "plots: ${made[*]}"
fi
log "done in $((SECONDS - t0)) s; results in $out.md and $out.json"
