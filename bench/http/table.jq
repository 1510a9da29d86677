# bench/http/table.jq: turns the samples run.sh collected (one JSON object per line, read with
# jq -s) into the rows of the results table, with the targets of issue 3. Kept apart from
# run.sh so that another harness can feed it the same samples, or add rows.
#
# A sample is {"system", "scenario", "conns", "round", ...wrk's fields from report.lua} or,
# for the held calls, {"system": "genserv", "scenario": "held", ...held_calls' fields}.
# A row is stats.jq's (run jq with -L bench/http): {"scenario", "metric", "genserv": STAT,
# "peer_name", "peer": STAT, "ratio", "target", "met", "noisy", "runs"}.

include "stats";

. as $all
| def rps($sys; $sc; $c): $all | pick($sys; $sc; $c) | stat(.ok_rps);
  def lat($sys; $sc; $c; f): $all | pick($sys; $sc; $c) | stat(f);
  ($all | map(select(.scenario == "held"))) as $held
| ($held | map(.n) | max // 10000) as $n
| [
    row("POST /call get_count @64"; "req/s"; rps("genserv"; "call"; 64);
        "webdis INCR @64"; rps("webdis"; "incr"; 64); ">= 1.5x webdis"; "ratio_at_least"; 1.5),
    row("POST /call get_count @64"; "req/s"; rps("genserv"; "call"; 64);
        "nginx return 200 @64"; rps("nginx"; "post"; 64); ">= 0.7x nginx"; "ratio_at_least"; 0.7),
    row("POST /call get_count @64"; "p99 ms"; lat("genserv"; "call"; 64; .p99_ms);
        "webdis INCR @64"; lat("webdis"; "incr"; 64; .p99_ms); "< 5 ms"; "below"; 5),
    row("POST /call get_count @64"; "p50 ms"; lat("genserv"; "call"; 64; .p50_ms);
        "webdis INCR @64"; lat("webdis"; "incr"; 64; .p50_ms); "-"; "info"; null),
    row("POST /call get_count @1000"; "req/s"; rps("genserv"; "call"; 1000);
        "webdis INCR @1000"; rps("webdis"; "incr"; 1000); "-"; "info"; null),
    row("POST /call get_count @1000"; "req/s"; rps("genserv"; "call"; 1000);
        "nginx return 200 @1000"; rps("nginx"; "post"; 1000); "-"; "info"; null),
    row("POST /call get_count @1000"; "p50 ms"; lat("genserv"; "call"; 1000; .p50_ms);
        "webdis INCR @1000"; lat("webdis"; "incr"; 1000; .p50_ms); "-"; "info"; null),
    row("POST /call get_count @1000"; "p99 ms"; lat("genserv"; "call"; 1000; .p99_ms);
        "webdis INCR @1000"; lat("webdis"; "incr"; 1000; .p99_ms); "-"; "info"; null),
    row("POST /cast increment @64"; "req/s"; rps("genserv"; "cast"; 64);
        "webdis INCR @64"; rps("webdis"; "incr"; 64); "-"; "info"; null),
    row("POST /cast increment @64"; "p50 ms"; lat("genserv"; "cast"; 64; .p50_ms);
        "webdis INCR @64"; lat("webdis"; "incr"; 64; .p50_ms); "-"; "info"; null),
    row("POST /cast increment @64"; "p99 ms"; lat("genserv"; "cast"; 64; .p99_ms);
        "webdis INCR @64"; lat("webdis"; "incr"; 64; .p99_ms); "-"; "info"; null),
    row("POST /cast increment @1000"; "req/s"; rps("genserv"; "cast"; 1000);
        "webdis INCR @1000"; rps("webdis"; "incr"; 1000); "-"; "info"; null),
    row("POST /cast increment @1000"; "p50 ms"; lat("genserv"; "cast"; 1000; .p50_ms);
        "webdis INCR @1000"; lat("webdis"; "incr"; 1000; .p50_ms); "-"; "info"; null),
    row("POST /cast increment @1000"; "p99 ms"; lat("genserv"; "cast"; 1000; .p99_ms);
        "webdis INCR @1000"; lat("webdis"; "incr"; 1000; .p99_ms); "-"; "info"; null),
    row("peak RSS over the wrk runs"; "MB"; ($all | map(select(.scenario == "peak_rss"
        and .system == "genserv")) | stat(.hwm_kb / 1024));
        "webdis + redis"; ($all | map(select(.scenario == "peak_rss" and .system == "webdis"))
        | stat(.hwm_kb / 1024)); "-"; "info"; null),
    row("\($n) held /call pushes"; "peak RSS MB"; ($held | stat(.hwm_kb / 1024));
        null; null; "< 100 MB"; "below"; 100),
    row("\($n) held /call pushes"; "RSS while held MB"; ($held | stat(.rss_held_kb / 1024));
        null; null; "-"; "info"; null),
    row("\($n) held /call pushes"; "last - first answer ms"; ($held | stat(.spread_ms));
        null; null; "<= 100 ms"; "at_most"; 100),
    row("\($n) held /call pushes"; "last answer - flush sent ms"; ($held | stat(.last_ms));
        null; null; "-"; "info"; null),
    row("\($n) held /call pushes"; "answered 200"; ($held | stat(.status_200));
        null; null; "all \($n)"; "equals"; $n)
  ]
