#!/usr/bin/env bash
# bench/sip.sh — voice-call latencies (issue 6) on loopback: verifyd (SQLite,
# a --config routing `call` to a SIP trunk) against sipp (Debian sip-tester)
# playing cmd/verifyd/testdata/uas_answer_tap_bye.xml: ring, answer at once
# with an SDP naming the driver's RTP tap, hang up after 0.5 s. The driver
# (bench/sipcalls) places N (100) call verifications one after the other and
# reports p50/p99/max of
#   API 200 → INVITE at sipp      (sipp's -trace_msg timestamps)
#   sipp's 200 OK → first RTP     (the tap's arrival times)
# after waiting for a quiet machine (wait_load). Results: a table on stderr,
# JSON lines in $BENCH_OUT (bench/out/sip.jsonl).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
BIN=$WORK/bin
PIDS=()
# shellcheck source=lib.sh
. "$ROOT/bench/lib.sh"
install_cleanup
N=${N:-100}
BENCH_OUT=${BENCH_OUT:-$ROOT/bench/out/sip.jsonl}
mkdir -p "$(dirname "$BENCH_OUT")"
command -v sipp >/dev/null || { log "sipp missing: apt-get install -y sip-tester"; exit 1; }

log "building into $BIN"
(cd "$ROOT" && go build -o "$BIN/verifyd" ./cmd/verifyd && go build -o "$BIN/sipcalls" ./bench/sipcalls)
SIP_PORT=$("$BIN/sipcalls" -freeport)
TAP_PORT=$("$BIN/sipcalls" -freeport)

sipp -sf "$ROOT/cmd/verifyd/testdata/uas_answer_tap_bye.xml" -i 127.0.0.1 -p "$SIP_PORT" -mi 127.0.0.1 \
  -key tap_port "$TAP_PORT" -m "$N" -nostdin -trace_msg -message_file "$WORK/msgs.log" \
  -trace_err -error_file "$WORK/sipp_errors.log" -timeout $((N * 3 + 60)) >"$WORK/sipp.out" 2>&1 &
SIPP_PID=$!
PIDS+=("$SIPP_PID")

cat >"$WORK/verifyd.yaml" <<YAML
senders:
  - name: trunk
    type: sip
    sip:
      trunk: 127.0.0.1:$SIP_PORT
      listen: 127.0.0.1:0
      caller_ids: ["+15550001111"]
      ring_timeout: 5s
      call_timeout: 20s
routes:
  - {channel: call, senders: [trunk]}
YAML
KEY=$("$BIN/verifyd" apikey create --name bench --db "$WORK/v.db" | tail -n1)
start_verifyd verifyd --db "$WORK/v.db" --config "$WORK/verifyd.yaml" --default-destinations GB
wait_load "sip calls"
"$BIN/sipcalls" -url "http://$VD_ADDR" -key "$KEY" -n "$N" -tap "127.0.0.1:$TAP_PORT" -msgs "$WORK/msgs.log" \
  -load "$LOAD1" -label "sip-sequential" -json "$BENCH_OUT" >/dev/null
log "load at the end: $(cut -d' ' -f1-3 /proc/loadavg); cores: $(nproc)"
rc=0
wait "$SIPP_PID" || rc=$?
[ "$rc" = 0 ] || { log "sipp exit code $rc (some call did not run the scenario to its end):"; cat "$WORK/sipp.out" >&2; }
