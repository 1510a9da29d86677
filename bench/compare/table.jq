# bench/compare/table.jq: the samples that bench/compare/run.sh collected (one JSON object
# per line, read with `jq -s -L bench/http`) made into the comparison table and the two
# sweeps, with the targets of issues 7 and 13. Rows are bench/http/stats.jq's.
#
# Samples:
#   {"part": "runtime", "system": "genserv"|"otp", "group": "cast", "round": 1, "key":
#    "cast_1_sender", "unit": "M msg/s", "scale": 1e6, "value": 10300000}
#     one per metric per run of runtime_bench or gs_bench (raw units; shown as value / scale);
#     key "peak_rss_kb" is the process's peak RSS over that run (one scenario group).
#   {"system": "genserv"|"webdis"|"nginx", "scenario": "call"|"incr"|"post", "conns": 64,
#    "round": 1, ...report.lua's fields, "hwm_kb": peak RSS of the system during the run}
#   {"system": "genserv", "scenario": "held", "round": 1, ...held_calls' fields}
#   Durable servers (issue 15):
#   {"part": "durable", "system": "genserv", "key": "durable_cast_committed", ...}
#     one per metric per run of bench/durable_bench.c, like the runtime samples;
#   {"system": "genserv-durable"|"webdis-aof", "scenario": "durable"|"memory"|"incr", ...}
#     wrk runs against the durable counter, the same counter in memory, and webdis in front
#     of a Redis with its AOF on (report.lua's fields, as above);
#   {"part": "audit", "name": "durable", "acked": N, "count": N, "lost": N}
#     the counter's count after a round against the increments answered 2xx;
#   {"part": "recovery", "servers": N, "recovery_s": S, "db_bytes": B, "restored": N, ...}
#     one start of genserv on a data directory with N stored durable idle counters.
#   perf stat beside a genserv run (issue 17; bench/http/lib.sh's perf_sample):
#   {"part": "perf", "scenario": "perf", "system": "genserv", "tool": "runtime_bench"|
#    "durable_bench"|"wrk", "of": "cast-1"|"call"|..., "at_conns": 64 (wrk), "round": 1,
#    "label": ..., "requests": N|null, "elapsed_s": S, "task_clock_ms": MS, "cpus": CPUs,
#    "context_switches": N, "cpu_migrations": N, "page_faults": N, "cycles": N|null,
#    "instructions": N|null, "cache_misses": N|null}
#     (no "conns": the wrk rows below select samples by system, scenario and conns).
#
# Besides rows and sweeps: "perf", one entry per run that had perf beside it (medians over
# the rounds; per request where wrk counted them, else per second), and "where", the
# per-message profile runtime_bench reports beside each cast and call scenario (its details
# KEY_wakeups, _steals, _inline, _cswitches per 1k messages and _cpu_ns per message).

include "stats";

# The distinct elements of an array, in the order they first appear.
def uniq_ordered: reduce .[] as $x ([]; if index([$x]) then . else . + [$x] end);
# $a / $b, null when either is missing (a counter perf could not read) or $b is 0.
def per($a; $b): if $a == null or $b == null or $b == 0 then null else $a / $b end;

. as $all
| ($all | map(select(.part == "runtime"))) as $rt
| def rts($sys; $key): $rt | map(select(.system == $sys and .key == $key)) | stat(.value / .scale);
  def unit($key): ($rt | map(select(.key == $key)) | first | .unit) // "";
  def title($key): ($rt | map(select(.system == "genserv" and .key == $key)) | first | .label)
                   // $key;
  # A runtime row: genserv's metric $gk against OTP's $ok, in genserv's unit.
  def rtrow($gk; $ok; $target; $checks):
    rowc(title($gk); unit($gk); rts("genserv"; $gk); "OTP gen_server"; rts("otp"; $ok);
         $target; $checks);
  def peak($sys; $group):
    $rt | map(select(.system == $sys and .group == $group and .key == "peak_rss_kb"))
    | stat(.value / 1024);
  def web($sys; $sc; $c; f): $all | pick($sys; $sc; $c) | stat(f);
  ($all | map(select(.part == "durable"))) as $dur
| ($all | map(select(.part == "recovery"))) as $rec
| ($all | map(select(.part == "audit"))) as $audit
| def dur($key): $dur | map(select(.key == $key)) | stat(.value / .scale);
  def dunit($key): ($dur | map(select(.key == $key)) | first | .unit) // "";
  def dlabel($key): ($dur | map(select(.key == $key)) | first | .label) // $key;
  def drow($key; $peer_name; $pkey; $target; $checks):
    rowc(dlabel($key); dunit($key); dur($key); $peer_name;
         if $pkey == null then null else dur($pkey) end; $target; $checks);
  ($all | map(select(.scenario == "held" and (.pad // 0) == 0))) as $held
| ($all | map(select(.scenario == "held" and (.pad // 0) > 0))) as $padded
| def held($n; f): $held | map(select(.n == $n)) | stat(f);
  ($all | map(select(.conns != null and .round > 0) | .conns) | unique) as $conns
| ($held | map(.n) | unique) as $held_ns
| {
  rows: ([
    rtrow("cast_1_sender"; "cast_1_sender"; ">= 2x OTP"; [["ratio_at_least", 2]]),
    rtrow("cast_100_senders"; "cast_100_senders"; ">= 2x OTP"; [["ratio_at_least", 2]]),
    rtrow("call_1_caller"; "call_1_caller"; ">= 2x OTP"; [["ratio_at_least", 2]]),
    rtrow("call_100_callers"; "call_100_callers"; ">= 2x OTP"; [["ratio_at_least", 2]]),
    rtrow("start_rate"; "start_rate"; ">= 2x OTP"; [["ratio_at_least", 2]]),
    rtrow("idle_bytes_rss"; "idle_bytes"; "<= 0.25x OTP and <= 700 B";
          [["ratio_at_most", 0.25], ["at_most", 700]]),
    rtrow("stop_time"; "stop_time"; "-"; []),
    rtrow("timer_schedule_rate"; "timer_schedule_rate"; ">= 2x OTP"; [["ratio_at_least", 2]]),
    rtrow("timer_lateness_p50"; "timer_lateness_p50"; "-"; []),
    rtrow("timer_lateness_p99"; "timer_lateness_p99"; "<= 5 ms"; [["at_most", 5]]),
    rtrow("batcher_10k_producers"; "batcher_10k_producers"; ">= 2x OTP";
          [["ratio_at_least", 2]]),
    # Lua behaviours (issue 13): runtime_bench's lua group, whose servers run Lua code, against
    # OTP's native gen_servers of the groups above (same run); hibernated servers against the
    # OTP group "hibernate", which exists for them.
    rtrow("lua_cast_1_sender"; "cast_1_sender"; ">= 0.7x OTP"; [["ratio_at_least", 0.7]]),
    rtrow("lua_cast_lua_sender"; "cast_1_sender"; "-"; []),
    rtrow("lua_call_1_caller"; "call_1_caller"; ">= 1x OTP"; [["ratio_at_least", 1]]),
    rtrow("lua_batcher_10k_producers"; "batcher_10k_producers"; ">= 1x OTP";
          [["ratio_at_least", 1]]),
    rtrow("lua_start_rate"; "start_rate"; "-"; []),
    rtrow("lua_idle_bytes_rss"; "idle_bytes"; "<= 16 KB"; [["at_most", 16384]]),
    rtrow("lua_hibernated_start_rate"; "hibernated_start_rate"; "-"; []),
    # Hibernated: at most what an idle OTP gen_server costs awake plus the state's own size
    # (its JSON, as the Lua server keeps it); the peer shown is OTP's hibernated gen_server.
    ((rts("otp"; "idle_bytes").median // null) as $otp_idle
     | (rts("genserv"; "lua_idle_state_bytes").median // 0) as $state
     | if $otp_idle == null then rtrow("lua_hibernated_bytes_rss"; "hibernated_idle_bytes"; "-"; [])
       else rtrow("lua_hibernated_bytes_rss"; "hibernated_idle_bytes";
                  "<= OTP idle + state = \($otp_idle + $state | round) B";
                  [["at_most", $otp_idle + $state]]) end),
    # The instruction budget's cost: the host has no switch for its count hook, so the same
    # cast scenario runs with the largest budget against the default one (both hooked).
    rowc(title("lua_cast_budget_max"); unit("lua_cast_budget_max");
         rts("genserv"; "lua_cast_budget_max"); "genserv Lua, default budget";
         rts("genserv"; "lua_cast_1_sender"); "-"; []),
    rowc(title("lua_budget_cost_ns"); unit("lua_budget_cost_ns"); rts("genserv"; "lua_budget_cost_ns");
         null; null; "-"; []),
    # A scenario run's groups are cast-1, call-100, ... (OTP's peak is its whole group's).
    (("idle", "cast", "cast-1", "cast-100", "call", "call-1", "call-100", "timers", "batcher") as $g
     | select(peak("genserv"; $g) != null or peak("otp"; $g) != null)
     | rowc("peak RSS of the process, runtime scenario \($g)"; "MB"; peak("genserv"; $g);
            "OTP (beam.smp)"; peak("otp"; $g); "-"; [])),
    # At 64 connections, the targets' point; a scenario run at another count (http-N) gets
    # the same rows there, without targets.
    (($conns | if index(64) then [64] else . end)[] as $c
     | [[">= 1.5x webdis", [["ratio_at_least", 1.5]]], [">= 0.7x nginx", [["ratio_at_least", 0.7]]],
        ["< 5 ms", [["below", 5]]]]
     | (if $c == 64 then . else map(.[0] = "-" | .[1] = []) end) as $t
     | rowc("POST /call get_count @\($c) vs webdis GET /INCR/counter"; "req/s";
            web("genserv"; "call"; $c; .ok_rps); "webdis + redis";
            web("webdis"; "incr"; $c; .ok_rps); $t[0][0]; $t[0][1]),
       rowc("POST /call get_count @\($c) vs nginx constant 200"; "req/s";
            web("genserv"; "call"; $c; .ok_rps); "nginx";
            web("nginx"; "post"; $c; .ok_rps); $t[1][0]; $t[1][1]),
       rowc("POST /call get_count @\($c): p99 latency"; "ms";
            web("genserv"; "call"; $c; .p99_ms); "webdis + redis";
            web("webdis"; "incr"; $c; .p99_ms); $t[2][0]; $t[2][1]),
       rowc("POST /call get_count @\($c): p50 latency"; "ms";
            web("genserv"; "call"; $c; .p50_ms); "webdis + redis";
            web("webdis"; "incr"; $c; .p50_ms); "-"; [])),
    ($conns[] as $c | select($c == 64 or $c == ($conns | max))
     | rowc("peak RSS of the server under @\($c) (genserv POST /call)"; "MB";
            web("genserv"; "call"; $c; .hwm_kb / 1024); "webdis + redis";
            web("webdis"; "incr"; $c; .hwm_kb / 1024); "-"; []),
       rowc("peak RSS of the server under @\($c) (genserv POST /call)"; "MB";
            web("genserv"; "call"; $c; .hwm_kb / 1024); "nginx (master + workers)";
            web("nginx"; "post"; $c; .hwm_kb / 1024); "-"; [])),
    # Durable servers (issue 15).
    (64 as $c
     | rowc("durable increment @\($c) (POST /cast, ack handled) vs webdis INCR + AOF"; "req/s";
            web("genserv-durable"; "durable"; $c; .ok_rps); "webdis + redis (AOF, everysec)";
            web("webdis-aof"; "incr"; $c; .ok_rps); ">= 1.5x webdis AOF"; [["ratio_at_least", 1.5]]),
       rowc("durable increment @\($c): p50 latency"; "ms";
            web("genserv-durable"; "durable"; $c; .p50_ms); "webdis + redis (AOF, everysec)";
            web("webdis-aof"; "incr"; $c; .p50_ms); "-"; []),
       rowc("durable increment @\($c): p99 latency"; "ms";
            web("genserv-durable"; "durable"; $c; .p99_ms); "webdis + redis (AOF, everysec)";
            web("webdis-aof"; "incr"; $c; .p99_ms); "-"; []),
       rowc("durable increment @\($c) vs the same increment to a counter in memory"; "req/s";
            web("genserv-durable"; "durable"; $c; .ok_rps); "genserv, counter in memory";
            web("genserv-durable"; "memory"; $c; .ok_rps); "-"; []),
       rowc("durable counter: POST /call get_count @\($c) (a read: nothing to commit)"; "req/s";
            web("genserv-durable"; "read"; $c; .ok_rps); "webdis + redis (AOF, everysec)";
            web("webdis-aof"; "incr"; $c; .ok_rps); "-"; []),
       rowc("durable increment @\($c): errors (non-2xx + socket)"; "per run";
            web("genserv-durable"; "durable"; $c; .non2xx + .socket_errors); "webdis + redis (AOF, everysec)";
            web("webdis-aof"; "incr"; $c; .non2xx + .socket_errors); "-"; []),
       rowc("peak RSS under @\($c) (genserv: durable increment)"; "MB";
            web("genserv-durable"; "durable"; $c; .hwm_kb / 1024); "webdis + redis (AOF, everysec)";
            web("webdis-aof"; "incr"; $c; .hwm_kb / 1024); "-"; [])),
    ($audit | map(select(.name == "durable")) | select(length > 0)
     | rowc("durable counter: increments acknowledged 2xx missing from its count"; "per round";
            stat(.lost); null; null; "0"; [["at_most", 0]])),
    drow("durable_cast_committed"; "genserv, counters in memory"; "memory_cast_changes";
         ">= 200 k changes/s"; [["at_least", 200]]),
    drow("durable_call_p50_us"; "genserv, counter in memory"; "memory_call_p50_us"; "-"; []),
    drow("durable_call_p99_us"; "genserv, counter in memory"; "memory_call_p99_us"; "-"; []),
    drow("store_commit_mean_us"; null; null; "-"; []),
    drow("durable_cast_transactions"; null; null; "-"; []),
    drow("durable_cast_batches_per_commit"; null; null; "-"; []),
    drow("durable_cast_lost"; null; null; "0"; [["at_most", 0]]),
    drow("durable_errors"; null; null; "0"; [["at_most", 0]]),
    ($rec | select(length > 0) | (first.servers) as $n
     | rowc("recovery: genserv start to all \($n) stored servers restored"; "s";
            stat(.recovery_s); null; null; "-"; []),
       rowc("recovery: stored servers found running after the restart"; "servers";
            stat(.restored); null; null; "all \($n)"; [["equals", $n]]),
       rowc("recovery: database bytes per stored idle server"; "bytes";
            stat(.db_bytes / .servers); null; null; "-"; []),
       rowc("recovery: RSS of genserv once the \($n) servers are restored"; "MB";
            stat(.rss_kb / 1024); null; null; "-"; []),
       rowc("recovery: peak RSS of genserv while restoring \($n) servers"; "MB";
            stat(.hwm_kb / 1024); null; null; "-"; [])),
    (10000 as $n | select($held_ns | index($n))
     | rowc("\($n) held /call pushes to a batcher: peak RSS"; "MB";
            held($n; .hwm_kb / 1024); null; null; "< 100 MB"; [["below", 100]]),
       rowc("\($n) held /call pushes: RSS while held"; "MB";
            held($n; .rss_held_kb / 1024); null; null; "-"; []),
       rowc("\($n) held /call pushes: last answer after the flush was sent"; "ms";
            held($n; .last_ms); null; null; "<= 100 ms"; [["at_most", 100]]),
       rowc("\($n) held /call pushes: first to last answer"; "ms";
            held($n; .spread_ms); null; null; "-"; []),
       rowc("\($n) held /call pushes: answered 200"; "calls";
            held($n; .status_200); null; null; "all \($n)"; [["equals", $n]])),
    (10000 as $n | ($padded | map(select(.n == $n))) as $p | select($p | length > 0)
     | rowc("\($n) held /call pushes with \($p[0].pad / 1024 | floor) KiB of padding each: RSS while held"; "MB";
            $p | stat(.rss_held_kb / 1024); null; null; "as without padding"; []),
       rowc("\($n) held /call pushes with padding: answered 200"; "calls";
            $p | stat(.status_200); null; null; "all \($n)"; [["equals", $n]]))
  ] | map(select(.genserv != null or .peer != null))),
  sweeps: {
    connections: [$conns[] as $c
      | [{conns: $c},
         (["genserv", "call"], ["webdis", "incr"], ["nginx", "post"]) as [$sys, $sc]
         | {($sys): {rps: web($sys; $sc; $c; .ok_rps), p99_ms: web($sys; $sc; $c; .p99_ms),
                     peak_rss_mb: web($sys; $sc; $c; .hwm_kb / 1024),
                     errors: web($sys; $sc; $c; .non2xx + .socket_errors)}}]
      | add],
    held: [$held_ns[] as $n | {n: $n, rss_held_mb: held($n; .rss_held_kb / 1024),
                               peak_rss_mb: held($n; .hwm_kb / 1024),
                               last_ms: held($n; .last_ms), spread_ms: held($n; .spread_ms),
                               answered_200: held($n; .status_200)}]
  },
  # perf stat beside each genserv run, in the order they ran: CPUs used (task-clock over the
  # wall time perf covered), and the counters per 1k requests and CPU microseconds per request
  # where wrk counted the requests, per second otherwise (a runtime_bench or durable_bench
  # process: its setup and warm-ups are in the count, so no per-message figure).
  perf: (($all | map(select(.part == "perf"))) as $perf
    | [$perf | map([.tool, .system, .of, .at_conns]) | uniq_ordered[] as [$tool, $sys, $of, $c]
       | ($perf | map(select(.tool == $tool and .system == $sys and .of == $of
                             and .at_conns == $c))) as $p
       | {label: $p[0].label, tool: $tool, system: $sys, of: $of, conns: $c,
          per_request: ($p[0].requests != null),
          cpus: ($p | stat(.cpus)),
          cs_per_1k_requests: ($p | stat(per(.context_switches; .requests) | if . then . * 1000 else null end)),
          cpu_us_per_request: ($p | stat(per(.task_clock_ms; .requests) | if . then . * 1000 else null end)),
          cs_per_s: ($p | stat(per(.context_switches; .elapsed_s))),
          migrations_per_s: ($p | stat(per(.cpu_migrations; .elapsed_s))),
          page_faults_per_s: ($p | stat(per(.page_faults; .elapsed_s))),
          cycles_per_s: ($p | stat(per(.cycles; .elapsed_s))),
          instructions_per_cycle: ($p | stat(per(.instructions; .cycles))),
          cache_misses_per_s: ($p | stat(per(.cache_misses; .elapsed_s))),
          hardware_counted: ($p | any(.[]; .cycles != null or .instructions != null
                                           or .cache_misses != null))}]),
  # Where the time goes: runtime_bench's profile of each cast and call scenario (genserv).
  where: ([$rt[] | select(.system == "genserv")
           | .key | select(test("_(wakeups|steals|inline|cswitches|cpu_ns)$"))
           | sub("_(wakeups|steals|inline|cswitches|cpu_ns)$"; "")] | uniq_ordered
    | map(. as $k | {key: $k, label: title($k), wakeups: rts("genserv"; "\($k)_wakeups"),
                     steals: rts("genserv"; "\($k)_steals"), inline: rts("genserv"; "\($k)_inline"),
                     cswitches: rts("genserv"; "\($k)_cswitches"),
                     cpu_ns: rts("genserv"; "\($k)_cpu_ns")}))
}
