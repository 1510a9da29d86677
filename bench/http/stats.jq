# bench/http/stats.jq: the statistics and the row of a results table, shared by
# bench/http/table.jq and bench/compare/table.jq (`jq -L bench/http`, then `include "stats";`).
#
# A STAT is {"median", "min", "max", "n"} or null. A row is {"scenario", "metric", "genserv":
# STAT, "peer_name", "peer": STAT, "ratio", "target", "met", "noisy", "runs"} where "met" is
# true, false or null (no target, or a ratio target that cannot be judged) and "runs" is the
# fewer of the two sides' sample counts.

def median:
  sort | if length == 0 then null
         elif length % 2 == 1 then .[(length - 1) / 2]
         else (.[length / 2 - 1] + .[length / 2]) / 2 end;

def stat(f):
  [.[] | f | select(. != null)] as $v
  | if ($v | length) == 0 then null
    else {median: ($v | median), min: ($v | min), max: ($v | max), n: ($v | length)} end;

def pick($sys; $sc; $c): map(select(.system == $sys and .scenario == $sc and .conns == $c));

# A spread (max - min) above half the median makes a ratio of medians meaningless here.
def noisy($s): $s != null and $s.median > 0 and (($s.max - $s.min) / $s.median) > 0.5;

# One check of a row against its target: [$kind, $thr] with $kind
#   "ratio_at_least" genserv / peer >= $thr      "ratio_at_most" genserv / peer <= $thr
#   "below"          genserv < $thr              "at_most"       genserv <= $thr
#   "at_least"       genserv >= $thr             "equals"        genserv's min == $thr (every run)
# true, false, or null when it cannot be judged (no figure; a ratio when either side is noisy).
def check($g; $ratio; $noisy; $c):
  $c[0] as $kind | $c[1] as $thr
  | if $g == null then null
    elif ($kind | startswith("ratio_")) and ($ratio == null or $noisy) then null
    elif $kind == "ratio_at_least" then $ratio >= $thr
    elif $kind == "ratio_at_most" then $ratio <= $thr
    elif $kind == "below" then $g.median < $thr
    elif $kind == "at_most" then $g.median <= $thr
    elif $kind == "at_least" then $g.median >= $thr
    elif $kind == "equals" then $g.min == $thr
    else null end;

# A row with every check in $checks (a list of [$kind, $thr]; [] for a row without target):
# met is false if any check fails, null if any cannot be judged, else true.
def rowc($scenario; $metric; $g; $peer_name; $p; $target; $checks):
  (if $g != null and $p != null and $p.median > 0 then $g.median / $p.median else null end)
    as $ratio
  | (noisy($g) or noisy($p)) as $noisy
  | [$checks[] as $c | check($g; $ratio; $noisy; $c)] as $results
  | {scenario: $scenario, metric: $metric, genserv: $g, peer_name: $peer_name, peer: $p,
     ratio: $ratio, target: $target, noisy: $noisy,
     runs: ([$g.n, $p.n] | map(select(. != null)) | min),
     met: (if ($results | length) == 0 then null
           elif any($results[]; . == false) then false
           elif any($results[]; . == null) then null
           else true end)};

# The row of one check: $kind as above, or "info" for a row without target.
def row($scenario; $metric; $g; $peer_name; $p; $target; $kind; $thr):
  rowc($scenario; $metric; $g; $peer_name; $p; $target;
       if $kind == "info" then [] else [[$kind, $thr]] end);
