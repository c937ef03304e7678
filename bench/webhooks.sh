#!/usr/bin/env bash
# bench/webhooks.sh — webhook delivery under trigger load (issue 7), SQLite,
# loopback only. Three receivers, each against a fresh verifyd:
#   none  the profile has no webhook_url (the baseline)
#   fast  a receiver that answers at once
#   slow  a receiver that takes SLOW (2s) per request
# Each run drives POST /v2/verifications/sms open loop at RATE (500) per
# second for D (30s) and reports the API's req/s, p50/p99 (from when each
# request was due) and, for fast, the lag from each verify.sent event's
# occurred_at to its arrival. Then the same three closed loop (C=16
# workers, D_CLOSED=10s) for the maximum trigger throughput.
# Results: JSON lines in $BENCH_OUT (bench/out/webhooks.jsonl).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=$(cd "$ROOT/../shared" && pwd)
WORK=$(mktemp -d)
BIN=$WORK/bin
PIDS=()
# shellcheck source=lib.sh
. "$ROOT/bench/lib.sh"
install_cleanup
RATE=${RATE:-500}
D=${D:-30s}
D_CLOSED=${D_CLOSED:-10s}
C=${C:-16}
SLOW=${SLOW:-2s}
BENCH_OUT=${BENCH_OUT:-$ROOT/bench/out/webhooks.jsonl}
mkdir -p "$(dirname "$BENCH_OUT")"
build_bins
(cd "$ROOT" && go build -o "$BIN/webhookload" ./bench/webhookload)

run() { # run LABEL MODE RATE DURATION
  local label=$1 mode=$2 rate=$3 dur=$4 db=$WORK/$1.db
  local key
  key=$("$BIN/verifyd" apikey create --name bench --db "$db" | tail -n1)
  start_verifyd "$label" --db "$db" --console-out "$WORK/$label.console" --webhook-allow loopback
  wait_load "$label"
  "$BIN/webhookload" -url "http://$VD_ADDR" -key "$key" -mode "$mode" -slow "$SLOW" -rate "$rate" \
    -c "$([ "$rate" = 0 ] && echo "$C" || echo 256)" -d "$dur" -label "$label" -json "$BENCH_OUT"
  stop_pid "$VD_PID"
}

for m in none fast slow; do run "open-$m" "$m" "$RATE" "$D"; done
for m in none slow; do run "closed-$m" "$m" 0 "$D_CLOSED"; done
