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
#            custom_code
#
# verifyd runs on a fresh SQLite database in a temp dir, console sender to a
# temp file. Results: one JSON line per run appended to $BENCH_OUT (default
# bench/out/results.jsonl) and a markdown table on stdout.
#
# Settings (environment): C (concurrency, 16), D (measured duration, 10s),
# WARMUP (1s), PREFILL_N (ids prefilled for the check run; default: enough for
# the larger of 4x the measured trigger rate and 0.4x the ceiling rate, over
# warm-up + duration), BENCH_OUT.
# Needs: go, curl, jq.
set -euo pipefail

C=${C:-16}
D=${D:-10s}
WARMUP=${WARMUP:-1s}
CODE=123456

ROOT=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
SHARED=${SHARED:-$ROOT/../shared}
[ -d "$SHARED/bench/loadgen" ] || { echo "run.sh: $SHARED/bench/loadgen not found (set SHARED)" >&2; exit 2; }
for tool in go curl jq; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool is required" >&2; exit 2; }
done
BENCH_OUT=${BENCH_OUT:-$ROOT/bench/out/results.jsonl}
mkdir -p "$(dirname "$BENCH_OUT")"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/verifyd-bench.XXXXXX")
BIN=$WORK/bin
mkdir -p "$BIN"
PIDS=()

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log() { printf '%s\n' "$*" >&2; }

# wait_for_line FILE REGEX SECONDS: poll FILE until a line matches; print it.
wait_for_line() {
  local file=$1 re=$2 secs=$3 pid=$4 line
  local deadline=$((SECONDS + secs))
  while ((SECONDS < deadline)); do
    if line=$(grep -m1 -E "$re" "$file" 2>/dev/null); then
      printf '%s\n' "$line"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { log "process $pid exited:"; cat "$file" >&2; return 1; }
    sleep 0.05
  done
  log "timed out after ${secs}s waiting for /$re/ in $file:"
  cat "$file" >&2
  return 1
}

# wait_quiet FILE SECONDS: wait until FILE stops growing for 1 s (the
# delivery worker has drained its queue), at most SECONDS.
wait_quiet() {
  local file=$1 secs=$2 last=-1 size stable=0
  local deadline=$((SECONDS + secs))
  while ((SECONDS < deadline)); do
    size=$(stat -c %s "$file" 2>/dev/null || echo 0)
    if [ "$size" = "$last" ]; then
      stable=$((stable + 1))
      ((stable >= 10)) && return 0
    else
      stable=0
      last=$size
    fi
    sleep 0.1
  done
  log "warning: $file still growing after ${secs}s"
}

log "building into $BIN"
(cd "$ROOT" && go build -o "$BIN/verifyd" ./cmd/verifyd)
(cd "$SHARED/bench" && go build -o "$BIN/loadgen" ./loadgen && go build -o "$BIN/ceiling" ./ceiling)

DB=$WORK/v.db
CONSOLE=$WORK/console.jsonl
: >"$CONSOLE"

KEY=$("$BIN/verifyd" apikey create --name bench --db "$DB" 2>"$WORK/apikey.err" | tail -n1) ||
  { cat "$WORK/apikey.err" >&2; exit 1; }

"$BIN/ceiling" -addr 127.0.0.1:0 2>"$WORK/ceiling.log" &
CEIL_PID=$!
PIDS+=("$CEIL_PID")
CEIL_ADDR=$(wait_for_line "$WORK/ceiling.log" 'ceiling listening on' 30 "$CEIL_PID" | sed -E 's/.*listening on ([^ ]+).*/\1/')

"$BIN/verifyd" serve --addr 127.0.0.1:0 --db "$DB" --console-out "$CONSOLE" >"$WORK/verifyd.out" 2>"$WORK/verifyd.log" &
VD_PID=$!
PIDS+=("$VD_PID")
VD_ADDR=$(wait_for_line "$WORK/verifyd.log" '"msg":"listening"' 30 "$VD_PID" | jq -r .addr)
API=http://$VD_ADDR/v2
log "ceiling on $CEIL_ADDR, verifyd on $VD_ADDR"

PROFILE=$(curl -sS --fail-with-body -X POST "$API/verify_profiles" \
  -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
  -d '{"name":"bench","sms":{"whitelisted_destinations":["GB"],"app_name":"Bench"}}' | jq -r .data.id)
[ -n "$PROFILE" ] && [ "$PROFILE" != null ] || { log "could not create a profile"; exit 1; }

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RUNJSON=$WORK/run.jsonl
LG=("$BIN/loadgen" -c "$C" -d "$D" -warmup "$WARMUP" -json "$RUNJSON")
AUTH=(-H "Authorization: Bearer $KEY" -H 'Content-Type: application/json')
FAILED=0

log "ceiling: c=$C $D"
"${LG[@]}" -url "http://$CEIL_ADDR/" -label ceiling || FAILED=1

log "trigger: POST /v2/verifications/sms, fresh number per request"
"${LG[@]}" "${AUTH[@]}" -url "$API/verifications/sms" -id-width 6 \
  -body '{"phone_number":"+447400{id}","verify_profile_id":"'"$PROFILE"'"}' -label trigger || FAILED=1
wait_quiet "$CONSOLE" 120

if [ -z "${PREFILL_N:-}" ]; then
  TRIG_RPS=$(jq -r 'select(.label=="trigger") | .rps' "$RUNJSON" | tail -n1)
  SECS=$(awk -v d="$D" -v w="$WARMUP" 'function s(x){ if (x ~ /ms$/) return x/1000; if (x ~ /m$/) return x*60; return x+0 } BEGIN { print s(d)+s(w) }')
  CEIL_RPS0=$(jq -r 'select(.label=="ceiling") | .rps' "$RUNJSON" | tail -n1)
  PREFILL_N=$(awk -v r="${TRIG_RPS:-0}" -v c="${CEIL_RPS0:-0}" -v s="$SECS" 'BEGIN {
    x = r * 4; if (c * 0.4 > x) x = c * 0.4; n = int(x * s)
    if (n < 5000) n = 5000; if (n > 999999) n = 999999; print n }')
fi
log "check: prefill $PREFILL_N verifications with custom_code, then verify by phone"
"${LG[@]}" "${AUTH[@]}" -id-width 6 \
  -prefill-n "$PREFILL_N" -prefill-method POST -prefill-url "$API/verifications/sms" \
  -prefill-body '{"phone_number":"+447401{id}","verify_profile_id":"'"$PROFILE"'","custom_code":"'"$CODE"'"}' \
  -url "$API/verifications/by_phone_number/+447401{id}/actions/verify" \
  -body '{"code":"'"$CODE"'","verify_profile_id":"'"$PROFILE"'"}' -label check || FAILED=1

# Sanity: the checks really accepted the code (loadgen only sees HTTP 200).
FIRST=$(curl -sS -H "Authorization: Bearer $KEY" "$API/verifications/by_phone_number/+447401000000" | jq -r '.data[0].status')
[ "$FIRST" = accepted ] || { log "check sanity: +447401000000 is $FIRST, expected accepted"; FAILED=1; }

jq -c --arg stamp "$STAMP" '. + {bench_run: $stamp}' "$RUNJSON" >>"$BENCH_OUT"

CEIL_RPS=$(jq -r 'select(.label=="ceiling") | .rps' "$RUNJSON")
echo
echo "verifyd bench $STAMP — c=$C, $D measured after $WARMUP warm-up, $(nproc) cores, SQLite (results: $BENCH_OUT)"
echo
echo "| label | req/s | ratio to ceiling | p50 ms | p99 ms | non-2xx | errors |"
echo "|---|---:|---:|---:|---:|---:|---:|"
jq -r --argjson ceil "$CEIL_RPS" '
  [ .label, (.rps|floor|tostring),
    (if $ceil > 0 then (.rps / $ceil * 100 | round / 100 | tostring) + "×" else "-" end),
    (.p50_ms * 100 | round / 100 | tostring), (.p99_ms * 100 | round / 100 | tostring),
    ([.status | to_entries[] | select((.key|tonumber) < 200 or (.key|tonumber) > 299) | .value] | add // 0 | tostring),
    (.errors|tostring) ]
  | "| " + join(" | ") + " |"' "$RUNJSON"
echo
jq -r --argjson ceil "$CEIL_RPS" '
  def bar(name; ok; what): "- " + name + ": " + (if ok then "PASS" else "FAIL" end) + " (" + what + ")";
  def non2xx: [.status | to_entries[] | select((.key|tonumber) < 200 or (.key|tonumber) > 299) | .value] | add // 0;
  select(.label == "trigger" or .label == "check")
  | (if .label == "trigger" then 0.25 else 0.35 end) as $min
  | bar(.label + " ≥ \($min)× ceiling"; .rps >= $min * $ceil; "\(.rps / $ceil * 100 | round / 100)×"),
    bar(.label + " zero non-2xx"; (non2xx + .errors) == 0; "\(non2xx) non-2xx, \(.errors) errors"),
    bar(.label + " p99 < 25 ms"; .p99_ms < 25; "\(.p99_ms * 100 | round / 100) ms")' "$RUNJSON"
jq -r 'select(.ids_exhausted) | "- warning: \(.label) ran out of ids before the window ended (raise PREFILL_N)"' "$RUNJSON"
[ "$FAILED" = 0 ] || { log "a run reported failures (see above)"; exit 1; }
