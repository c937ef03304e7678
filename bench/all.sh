#!/usr/bin/env bash
# bench/all.sh — bench/run.sh for SQLite (1 node), PostgreSQL (1 node) and
# PostgreSQL (2 nodes) in one go, then one combined table. Each run measures
# its own ceiling; ratios are to the ceiling of the same run.
#
# Bars: SQLite trigger ≥ 0.25×, check ≥ 0.35×; PostgreSQL trigger ≥ 0.20×,
# check ≥ 0.30× (applied to 1 node; shown for reference on 2 nodes); every
# run: zero non-2xx/errors, p99 < 25 ms.
#
# Settings: everything run.sh takes (C, D, WARMUP, PG_URL, PPROF_DIR, ...),
# passed through. Each run's own table is on stderr; the combined table on
# stdout.
set -uo pipefail

ROOT=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
OUT=$(mktemp "${TMPDIR:-/tmp}/verifyd-all.XXXXXX.jsonl")
trap 'rm -f "$OUT"' EXIT
RC=0
for cfg in sqlite/1 postgres/1 postgres/2; do
  echo "=== ENGINE=${cfg%/*} NODES=${cfg#*/}" >&2
  ENGINE=${cfg%/*} NODES=${cfg#*/} RUN_OUT=$OUT "$ROOT/bench/run.sh" >&2 || { RC=1; echo "run.sh $cfg failed" >&2; }
done

echo
echo "verifyd bench — $(date -u +%Y-%m-%dT%H:%MZ), c=${C:-16}, ${D:-10s} per measurement, $(nproc) cores; ratios to the ceiling of the same run"
echo
echo "| engine | nodes | ceiling req/s | trigger req/s | trigger ratio | trigger p50 / p99 ms | check req/s | check ratio | check p50 / p99 ms | non-2xx + errors | load1 at starts | bars |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
jq -s -r '
  def r2: . * 100 | round / 100;
  def non2xx: ([.status | to_entries[] | select((.key|tonumber) < 200 or (.key|tonumber) > 299) | .value] | add // 0) + .errors;
  group_by(.bench_run)[] as $run
  | ($run | map({key: .label, value: .}) | from_entries) as $m
  | $m.ceiling as $c | $m.trigger as $t | $m.check as $k
  | (if $c.engine == "sqlite" then [0.25, 0.35] else [0.20, 0.30] end) as $min
  | [ ($t.rps >= $min[0] * $c.rps), ($k.rps >= $min[1] * $c.rps) ] as $ratio_ok
  | [ ($t|non2xx) + ($k|non2xx) == 0, $t.p99_ms < 25, $k.p99_ms < 25 ] as $other_ok
  | [ (if $c.engine == "sqlite" then "SQLite" else "PostgreSQL" end), ($c.nodes|tostring),
      ($c.rps|floor|tostring),
      ($t.rps|floor|tostring), (($t.rps / $c.rps | r2 | tostring) + "×"),
      (($t.p50_ms|r2|tostring) + " / " + ($t.p99_ms|r2|tostring)),
      ($k.rps|floor|tostring), (($k.rps / $c.rps | r2 | tostring) + "×"),
      (($k.p50_ms|r2|tostring) + " / " + ($k.p99_ms|r2|tostring)),
      ((($t|non2xx) + ($k|non2xx))|tostring),
      ([$c, $t, $k] | map((.load1|tostring) + (if .load_settled then "" else "!" end)) | join(" / ")),
      ("trigger ≥\($min[0])×: " + (if $ratio_ok[0] then "PASS" else "FAIL" end)
       + ", check ≥\($min[1])×: " + (if $ratio_ok[1] then "PASS" else "FAIL" end)
       + ", 0 non-2xx: " + (if $other_ok[0] then "PASS" else "FAIL" end)
       + ", p99 <25 ms: " + (if $other_ok[1] and $other_ok[2] then "PASS" else "FAIL" end)
       + (if $c.nodes > 1 then " (ratio bars for reference)" else "" end)) ]
  | "| " + join(" | ") + " |"' "$OUT"
echo
echo "load1 at starts: 1-minute load average when the ceiling / trigger / check measurements began (! = did not settle below ${LOAD_MAX:-1.5} within ${LOAD_WAIT:-300} s)."
exit $RC
