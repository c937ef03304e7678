#!/usr/bin/env bash
# bench/smpp.sh — SMS delivery through SMPP (issue 4), SQLite, loopback only.
#  1. End to end: verifyd (--config with one SMPP sender, window 10) bound
#     to node-smpp (smpp/testdata/smsc.cjs, receipts on); bench/smppload
#     drives POST /v2/verifications/sms open loop at RATE (200)/s for D
#     (30s), one number per request, and reports the time from each API 200
#     to the SMSC's submit_sm for that number (from the SMSC's event log,
#     "ts" in Unix ms): p50, p90, p99, max; plus missing and duplicate SMS.
#  2. The ESME alone: BenchmarkSender_NodeSMPP (window 10, 64 concurrent
#     sends, N=BENCH_N (20000) messages, COUNT (3) runs): messages/s and
#     CPU per message of the client and of the SMSC.
# Each measurement waits for a quiet machine (bench/lib.sh wait_load) and
# records the 1-min load it started at. Results: JSON lines in $BENCH_OUT
# (bench/out/smpp.jsonl); the Go benchmark's output in $ESME_OUT (bench/out/smpp-esme.txt).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
BIN=$WORK/bin
PIDS=()
# shellcheck source=lib.sh
. "$ROOT/bench/lib.sh"
install_cleanup
RATE=${RATE:-200}
D=${D:-30s}
BENCH_N=${BENCH_N:-20000}
COUNT=${COUNT:-3}
BENCH_OUT=${BENCH_OUT:-$ROOT/bench/out/smpp.jsonl}
ESME_OUT=${ESME_OUT:-$ROOT/bench/out/smpp-esme.txt}
mkdir -p "$(dirname "$BENCH_OUT")" "$(dirname "$ESME_OUT")"
MODS=$ROOT/interop/node_modules
[ -f "$MODS/smpp/package.json" ] || { log "interop/node_modules/smpp missing: run (cd interop && npm ci)"; exit 1; }

log "building into $BIN"
(cd "$ROOT" && go build -o "$BIN/verifyd" ./cmd/verifyd && go build -o "$BIN/smppload" ./bench/smppload)

# The SMSC: its stdout is the event log smppload reads.
SMSC_NODE_MODULES=$MODS SMSC_PORT=0 node "$ROOT/smpp/testdata/smsc.cjs" >"$WORK/smsc.jsonl" 2>"$WORK/smsc.err" &
SMSC_PID=$!
PIDS+=("$SMSC_PID")
SMSC_PORT=$(wait_for_line "$WORK/smsc.jsonl" '"event":"listening"' 30 "$SMSC_PID" | jq -r .port)

cat >"$WORK/verifyd.yaml" <<YAML
senders:
  - name: smsc
    type: smpp
    smpp: {address: "127.0.0.1:$SMSC_PORT", system_id: test, password: secret, source_addr: Verifyd, window: 10}
routes:
  - {channel: sms, senders: [smsc]}
YAML
DB=$WORK/e2e.db
KEY=$("$BIN/verifyd" apikey create --name bench --db "$DB" | tail -n1)
start_verifyd e2e --db "$DB" --config "$WORK/verifyd.yaml"
wait_for_line "$WORK/e2e.log" '"msg":"smpp: bound"' 30 "$VD_PID" >/dev/null

wait_load "end-to-end SMPP delivery"
"$BIN/smppload" -url "http://$VD_ADDR" -key "$KEY" -rate "$RATE" -d "$D" -smsc-log "$WORK/smsc.jsonl" \
  -label "e2e-smpp-$RATE" -json "$BENCH_OUT"
tag_last "$BENCH_OUT" load1="$LOAD1" load_settled="$LOAD_SETTLED" load1_after="$(cut -d' ' -f1 /proc/loadavg)" \
  cores="$(nproc)" at="\"$(date -u +%FT%TZ)\""
stop_pid "$VD_PID"
stop_pid "$SMSC_PID"

wait_load "ESME benchmark"
ESME_LOAD=$LOAD1
(cd "$ROOT" && go test -run '^$' -bench Sender_NodeSMPP -benchtime "${BENCH_N}x" -count "$COUNT" ./smpp/) |
  tee -a "$ESME_OUT"
log "ESME benchmark started at load $ESME_LOAD (settled: $LOAD_SETTLED), ended at $(cut -d' ' -f1 /proc/loadavg)"
tail -n1 "$BENCH_OUT"
