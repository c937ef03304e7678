#!/usr/bin/env bash
# bench/run.sh — throughput and latency of verifyd's two hot paths, reported
# against the shared yardstick (../shared/bench) measured in the same run.
#
# Back to back, on loopback only:
#   ceiling  the shared "ceiling" server: the most a Go net/http service reaches
#            here under the same load generator
#   trigger  POST /v2/verifications/sms, a fresh valid UK mobile per request
#   check    POST /v2/verifications/by_phone_number/{phone}/actions/verify with
#            the right code, over verifications prefilled (untimed) with
#            custom_code and timeout_secs 3600 (the load waits between the
#            prefill and the measurement can outlast the default 5 minutes)
#
# ENGINE=sqlite (default): verifyd runs on a fresh SQLite database in a temp
# dir. ENGINE=postgres: verifyd runs on a fresh schema (verifyd_bench_<random>,
# dropped at exit) of $PG_URL, with one --keys file shared by every node.
# NODES=2 (postgres only) starts two nodes on that schema and splits the load:
# two loadgen processes, C/2 workers each, one per node, run concurrently on
# disjoint phone ranges; req/s is their sum, p50/p99 the larger of the two
# (percentiles of two histograms cannot be merged exactly from summaries).
# Console sender: one temp file per node.
#
# The machine is shared: before each measurement (ceiling, trigger, check) the
# script waits until the 1-minute load average is below LOAD_MAX (1.5), polling
# every 10 s for at most 5 min, and records the load it started at. The check
# prefill runs as its own (untimed) loadgen pass so that the wait happens
# between it and the measured window.
#
# Results: one JSON line per measurement appended to $BENCH_OUT (default
# bench/out/results.jsonl; fields engine, nodes, load1, load_settled added),
# also to $RUN_OUT if set (all.sh uses it), and a markdown table on stdout.
#
# Settings (environment): ENGINE (sqlite|postgres), NODES (1|2), C
# (concurrency, 16, split over the nodes), D (measured duration, 10s), WARMUP
# (1s), PREFILL_N (ids prefilled for the check run; default: enough for the
# larger of 4x the measured trigger rate and 0.4x the ceiling rate, over
# warm-up + duration), PG_URL (postgres://postgres@127.0.0.1:5432/test),
# DB_MAX_CONNS (verifyd's default if unset), LOAD_MAX, LOAD_WAIT, BENCH_OUT,
# RUN_OUT, PPROF_DIR (if set: profile node 1 for 8 s in the middle of the
# trigger run, saved with the binary in that dir as trigger-<engine>-<nodes>.pprof).
# Needs: go, curl, jq (and psql for ENGINE=postgres).
set -euo pipefail

C=${C:-16}
D=${D:-10s}
WARMUP=${WARMUP:-1s}
ENGINE=${ENGINE:-sqlite}
NODES=${NODES:-1}
CODE=123456

case "$ENGINE/$NODES" in
  sqlite/1 | postgres/1 | postgres/2) ;;
  sqlite/*) echo "run.sh: SQLite has one process per database file: NODES must be 1" >&2; exit 2 ;;
  *) echo "run.sh: ENGINE must be sqlite or postgres, NODES 1 or 2" >&2; exit 2 ;;
esac
((C % NODES == 0)) || { echo "run.sh: C must be divisible by NODES" >&2; exit 2; }

ROOT=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
SHARED=${SHARED:-$ROOT/../shared}
[ -d "$SHARED/bench/loadgen" ] || { echo "run.sh: $SHARED/bench/loadgen not found (set SHARED)" >&2; exit 2; }
TOOLS=(go curl jq)
[ "$ENGINE" = postgres ] && TOOLS+=(psql)
for tool in "${TOOLS[@]}"; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool is required" >&2; exit 2; }
done
BENCH_OUT=${BENCH_OUT:-$ROOT/bench/out/results.jsonl}
mkdir -p "$(dirname "$BENCH_OUT")"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/verifyd-bench.XXXXXX")
BIN=$WORK/bin
mkdir -p "$BIN"
PIDS=()
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

install_cleanup

build_bins

if [ "$ENGINE" = sqlite ]; then
  DBARGS=(--db "$WORK/v.db")
  ENGINE_NAME=SQLite
else
  new_schema
  DBARGS=(--db "$PG_URL" --db-schema "$SCHEMA" --keys "$WORK/keys")
  [ -n "${DB_MAX_CONNS:-}" ] && DBARGS+=(--db-max-conns "$DB_MAX_CONNS")
  ENGINE_NAME="PostgreSQL ($NODES node$([ "$NODES" = 1 ] || echo s), schema $SCHEMA)"
fi

KEY=$("$BIN/verifyd" apikey create --name bench "${DBARGS[@]}" 2>"$WORK/apikey.err" | tail -n1) ||
  { cat "$WORK/apikey.err" >&2; exit 1; }

"$BIN/ceiling" -addr 127.0.0.1:0 2>"$WORK/ceiling.log" &
CEIL_PID=$!
PIDS+=("$CEIL_PID")
CEIL_ADDR=$(wait_for_line "$WORK/ceiling.log" 'ceiling listening on' 30 "$CEIL_PID" | sed -E 's/.*listening on ([^ ]+).*/\1/')

# Node i gets its own phone ranges: trigger +44740<2i-2>{id},
# check +44740<2i-1>{id} (six-digit ids): disjoint across nodes.
APIS=()
CONSOLES=()
DEBUG_ADDR=
if [ -n "${PPROF_DIR:-}" ]; then
  DEBUG_ADDR=127.0.0.1:$((20000 + RANDOM % 20000))
fi
for ((i = 1; i <= NODES; i++)); do
  CONSOLES+=("$WORK/console$i.jsonl")
  : >"$WORK/console$i.jsonl"
  EXTRA=()
  [ "$i" = 1 ] && [ -n "$DEBUG_ADDR" ] && EXTRA=(--debug-addr "$DEBUG_ADDR")
  start_verifyd "verifyd$i" "${DBARGS[@]}" --console-out "$WORK/console$i.jsonl" "${EXTRA[@]}"
  APIS+=("http://$VD_ADDR/v2")
  log "verifyd node $i on $VD_ADDR"
done
API=${APIS[0]}
log "ceiling on $CEIL_ADDR"

PROFILE=$(curl -sS --fail-with-body -X POST "$API/verify_profiles" \
  -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
  -d '{"name":"bench","sms":{"whitelisted_destinations":["GB"],"app_name":"Bench"}}' | jq -r .data.id)
[ -n "$PROFILE" ] && [ "$PROFILE" != null ] || { log "could not create a profile"; exit 1; }

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RUNJSON=$WORK/run.jsonl
: >"$RUNJSON"
CN=$((C / NODES))
AUTH=(-H "Authorization: Bearer $KEY" -H 'Content-Type: application/json')
FAILED=0

# measure LABEL ARGS...: one measured loadgen run per node, concurrently
# (node i's args get {node_trigger}/{node_check} replaced by its phone
# prefixes and {api} by its base URL); merged into one line of $RUNJSON.
measure() {
  local label=$1
  shift
  local pids=() i args a rc=0
  [ -n "${SKIP_WAIT:-}" ] || wait_load "$label"
  for ((i = 1; i <= NODES; i++)); do
    args=()
    for a in "$@"; do
      a=${a//\{api\}/${APIS[i - 1]}}
      a=${a//\{node_trigger\}/+44740$((2 * i - 2))}
      a=${a//\{node_check\}/+44740$((2 * i - 1))}
      args+=("$a")
    done
    "$BIN/loadgen" -c "$CN" -d "$D" -warmup "$WARMUP" -json "$WORK/$label.$i.jsonl" -label "$label" "${args[@]}" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do
    wait "$pid" || rc=1
  done
  # Sum counts and rates; latency percentiles: the larger of the nodes'.
  jq -s -c --arg engine "$ENGINE" --argjson nodes "$NODES" --argjson load "$LOAD1" --argjson settled "$LOAD_SETTLED" '
    def sumkey(k): map(.[k] // 0) | add;
    (.[0] + {
      url: (map(.url) | join(" ")),
      concurrency: sumkey("concurrency"), requests: sumkey("requests"), ok: sumkey("ok"),
      bad_status: sumkey("bad_status"), errors: sumkey("errors"), rps: sumkey("rps"),
      p50_ms: (map(.p50_ms) | max), p90_ms: (map(.p90_ms) | max), p99_ms: (map(.p99_ms) | max),
      max_ms: (map(.max_ms) | max),
      status: (map(.status | to_entries) | add | group_by(.key) | map({key: .[0].key, value: (map(.value) | add)}) | from_entries),
      client_cpu_cores: sumkey("client_cpu_cores"),
      ids_exhausted: (map(.ids_exhausted // false) | any)
    }) + {engine: $engine, nodes: $nodes, load1: $load, load_settled: $settled}
    | if .ids_exhausted then . else del(.ids_exhausted) end' "$WORK/$label".*.jsonl >>"$RUNJSON"
  return $rc
}

log "ceiling: c=$C $D"
APIS_SAVED=("${APIS[@]}")
# The ceiling always takes the whole load from one loadgen process at c=C when
# NODES=1; with NODES=2 it is driven the same way as the nodes (two processes
# at C/2), so that the ratio compares like with like.
for ((i = 0; i < NODES; i++)); do APIS[i]=http://$CEIL_ADDR; done
measure ceiling -url "{api}/" || FAILED=1
APIS=("${APIS_SAVED[@]}")

log "trigger: POST /v2/verifications/sms, fresh number per request"
wait_load trigger
PROF_PID=
if [ -n "$DEBUG_ADDR" ]; then
  # 8 s of CPU profile of node 1, from 3 s into the 11 s run.
  mkdir -p "$PPROF_DIR"
  cp "$BIN/verifyd" "$PPROF_DIR/verifyd-$ENGINE-$NODES.bin"
  (sleep 3 && curl -sS -o "$PPROF_DIR/trigger-$ENGINE-$NODES.pprof" "http://$DEBUG_ADDR/debug/pprof/profile?seconds=8") &
  PROF_PID=$!
  PIDS+=("$PROF_PID")
fi
SKIP_WAIT=1 # the load wait was done just above, before the profiler started
measure trigger "${AUTH[@]}" -url "{api}/verifications/sms" -id-width 6 \
  -body '{"phone_number":"{node_trigger}{id}","verify_profile_id":"'"$PROFILE"'"}' || FAILED=1
SKIP_WAIT=
[ -z "$PROF_PID" ] || wait "$PROF_PID" || log "warning: profile not taken"
for f in "${CONSOLES[@]}"; do wait_quiet "$f" 120; done

if [ -z "${PREFILL_N:-}" ]; then
  TRIG_RPS=$(jq -r 'select(.label=="trigger") | .rps' "$RUNJSON" | tail -n1)
  SECS=$(awk -v d="$D" -v w="$WARMUP" 'function s(x){ if (x ~ /ms$/) return x/1000; if (x ~ /m$/) return x*60; return x+0 } BEGIN { print s(d)+s(w) }')
  CEIL_RPS0=$(jq -r 'select(.label=="ceiling") | .rps' "$RUNJSON" | tail -n1)
  PREFILL_N=$(awk -v r="${TRIG_RPS:-0}" -v c="${CEIL_RPS0:-0}" -v s="$SECS" 'BEGIN {
    x = r * 4; if (c * 0.4 > x) x = c * 0.4; n = int(x * s)
    if (n < 5000) n = 5000; if (n > 999999) n = 999999; print n }')
fi
# Per node: the share of its C/2 workers, with 50% to spare for an uneven split.
PREFILL_NODE=$PREFILL_N
((NODES > 1)) && PREFILL_NODE=$(((PREFILL_N * 3 / 2 + NODES - 1) / NODES))
((PREFILL_NODE > 999999)) && PREFILL_NODE=999999
log "check: prefill $PREFILL_NODE verifications per node with custom_code (untimed), then verify by phone"
PF=()
for ((i = 1; i <= NODES; i++)); do
  "$BIN/loadgen" "${AUTH[@]}" -id-width 6 -c "$CN" -prefill-only \
    -prefill-n "$PREFILL_NODE" -prefill-method POST -prefill-url "${APIS[i - 1]}/verifications/sms" \
    -prefill-body '{"phone_number":"+44740'$((2 * i - 1))'{id}","verify_profile_id":"'"$PROFILE"'","custom_code":"'"$CODE"'","timeout_secs":3600}' \
    -url "${APIS[i - 1]}/verifications/sms" &
  PF+=($!)
done
for pid in "${PF[@]}"; do wait "$pid" || { log "check prefill failed"; exit 1; }; done
for f in "${CONSOLES[@]}"; do wait_quiet "$f" 300; done
measure check "${AUTH[@]}" -id-width 6 -id-limit "$PREFILL_NODE" \
  -url "{api}/verifications/by_phone_number/{node_check}{id}/actions/verify" \
  -body '{"code":"'"$CODE"'","verify_profile_id":"'"$PROFILE"'"}' || FAILED=1
tag_last "$RUNJSON" prefill_n="$((PREFILL_NODE * NODES))"

# Sanity: the checks really accepted the code (loadgen only sees HTTP 200).
for ((i = 1; i <= NODES; i++)); do
  PHONE=+44740$((2 * i - 1))000000
  FIRST=$(curl -sS -H "Authorization: Bearer $KEY" "$API/verifications/by_phone_number/$PHONE" | jq -r '.data[0].status')
  [ "$FIRST" = accepted ] || { log "check sanity: $PHONE is $FIRST, expected accepted"; FAILED=1; }
done

jq -c --arg stamp "$STAMP" '. + {bench_run: $stamp}' "$RUNJSON" >>"$BENCH_OUT"
[ -n "${RUN_OUT:-}" ] && jq -c --arg stamp "$STAMP" '. + {bench_run: $stamp}' "$RUNJSON" >>"$RUN_OUT"

if [ "$ENGINE" = sqlite ]; then
  MIN_TRIGGER=0.25 MIN_CHECK=0.35
else
  MIN_TRIGGER=0.20 MIN_CHECK=0.30
fi
CEIL_RPS=$(jq -r 'select(.label=="ceiling") | .rps' "$RUNJSON")
echo
echo "verifyd bench $STAMP — $ENGINE_NAME, c=$C$([ "$NODES" = 1 ] || echo " ($NODES×$CN)"), $D measured after $WARMUP warm-up, $(nproc) cores (results: $BENCH_OUT)"
echo
echo "| label | req/s | ratio to ceiling | p50 ms | p99 ms | non-2xx | errors | load1 at start |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
jq -r --argjson ceil "$CEIL_RPS" '
  [ .label, (.rps|floor|tostring),
    (if $ceil > 0 then (.rps / $ceil * 100 | round / 100 | tostring) + "×" else "-" end),
    (.p50_ms * 100 | round / 100 | tostring), (.p99_ms * 100 | round / 100 | tostring),
    ([.status | to_entries[] | select((.key|tonumber) < 200 or (.key|tonumber) > 299) | .value] | add // 0 | tostring),
    (.errors|tostring), ((.load1|tostring) + (if .load_settled then "" else " (unsettled)" end)) ]
  | "| " + join(" | ") + " |"' "$RUNJSON"
echo
jq -r --argjson ceil "$CEIL_RPS" --argjson mt "$MIN_TRIGGER" --argjson mc "$MIN_CHECK" '
  def bar(name; ok; what): "- " + name + ": " + (if ok then "PASS" else "FAIL" end) + " (" + what + ")";
  def non2xx: [.status | to_entries[] | select((.key|tonumber) < 200 or (.key|tonumber) > 299) | .value] | add // 0;
  select(.label == "trigger" or .label == "check")
  | (if .label == "trigger" then $mt else $mc end) as $min
  | bar(.label + " ≥ \($min)× ceiling"; .rps >= $min * $ceil; "\(.rps / $ceil * 100 | round / 100)×"),
    bar(.label + " zero non-2xx"; (non2xx + .errors) == 0; "\(non2xx) non-2xx, \(.errors) errors"),
    bar(.label + " p99 < 25 ms"; .p99_ms < 25; "\(.p99_ms * 100 | round / 100) ms")' "$RUNJSON"
jq -r 'select(.ids_exhausted) | "- warning: \(.label) ran out of ids before the window ended (raise PREFILL_N)"' "$RUNJSON"
[ "$FAILED" = 0 ] || { log "a run reported failures (see above)"; exit 1; }
