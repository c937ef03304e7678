#!/usr/bin/env bash
# bench/rows.sh — how the cost of one trigger grows with the number of stored
# verifications, on SQLite and on PostgreSQL (one node).
#
# For each engine and each N in $ROWS (1000 100000 1000000), on a fresh
# database (SQLite file in a temp dir / fresh schema verifyd_bench_<random>,
# dropped at exit):
#   1. migrate, create an API key and (through the API) one SMS profile;
#   2. stop verifyd and insert N verifications of that profile directly with
#      SQL in the store's own schema (sqlite3 CLI, recursive CTE / PostgreSQL
#      INSERT ... SELECT FROM generate_series): ~0.8 N distinct UK mobiles
#      (+4477........; 1-2 verifications each), created_at spread evenly over
#      the last 29 days (older than the 5-minute timeout, younger than the
#      30-day retention, so neither the expiry sweep nor the purge has work
#      during the measurement), inserted oldest first; status 60% expired
#      (timed_out), 35% accepted, 5% invalid (attempts_exhausted); random
#      32-byte code hashes; delivery_status sent. PostgreSQL then gets
#      VACUUM ANALYZE verifications (what autovacuum does after a bulk load);
#      SQLite gets nothing (verifyd never runs ANALYZE);
#   3. start verifyd, wait for the load to settle, measure the shared ceiling
#      (same loadgen settings), wait again, then measure trigger: POST
#      /v2/verifications/sms, a fresh number (+447400{id}) per request, c=16,
#      10 s after 1 s warm-up;
#   4. show the query plan of the trigger's newest-verification lookup.
# Events, jobs and delivery attempts are not prefilled (only verifications).
#
# Output: a markdown table per engine (N → req/s, p50, p99, ratio to N=1k,
# trigger/ceiling) on stdout; JSON lines appended to $BENCH_OUT
# (bench/out/rows.jsonl). Settings: ROWS, ENGINES (sqlite postgres), C, D,
# WARMUP, PG_URL, LOAD_MAX, LOAD_WAIT. Needs: go, curl, jq, sqlite3, psql.
set -euo pipefail

C=${C:-16}
D=${D:-10s}
WARMUP=${WARMUP:-1s}
ROWS=${ROWS:-1000 100000 1000000}
ENGINES=${ENGINES:-sqlite postgres}

ROOT=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
SHARED=${SHARED:-$ROOT/../shared}
[ -d "$SHARED/bench/loadgen" ] || { echo "rows.sh: $SHARED/bench/loadgen not found (set SHARED)" >&2; exit 2; }
for tool in go curl jq sqlite3 psql; do
  command -v "$tool" >/dev/null || { echo "rows.sh: $tool is required" >&2; exit 2; }
done
BENCH_OUT=${BENCH_OUT:-$ROOT/bench/out/rows.jsonl}
mkdir -p "$(dirname "$BENCH_OUT")"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/verifyd-rows.XXXXXX")
BIN=$WORK/bin
mkdir -p "$BIN"
PIDS=()
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

install_cleanup

build_bins

"$BIN/ceiling" -addr 127.0.0.1:0 2>"$WORK/ceiling.log" &
CEIL_PID=$!
PIDS+=("$CEIL_PID")
CEIL_ADDR=$(wait_for_line "$WORK/ceiling.log" 'ceiling listening on' 30 "$CEIL_PID" | sed -E 's/.*listening on ([^ ]+).*/\1/')

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS=$WORK/rows.jsonl
: >"$RESULTS"
PLANS=$WORK/plans.txt
: >"$PLANS"

# prefill_sqlite DB PROFILE ACCOUNT N
prefill_sqlite() {
  sqlite3 "$1" <<SQL
PRAGMA synchronous = OFF;
PRAGMA cache_size = -262144;
BEGIN;
WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < $4),
r AS (
  SELECT i,
    CAST(strftime('%s','now') AS INTEGER) * 1000000 - 360000000
      - CAST(($4 - i) * (29 * 86400000000.0 / $4) AS INTEGER) - abs(random() % 1000000) AS t,
    i % 20 AS k
  FROM s)
INSERT INTO verifications (id, account_id, profile_id, type, phone_number, code_hash, custom_code,
  extension, timeout_secs, status, attempts, completion_reason, delivery_status,
  created_at, updated_at, expires_at)
SELECT
  printf('%s-%s-4%s-%s-%s', lower(hex(randomblob(4))), lower(hex(randomblob(2))),
    substr(lower(hex(randomblob(2))), 2), lower(hex(randomblob(2))), lower(hex(randomblob(6)))),
  '$3', '$2', 'sms',
  '+4477' || printf('%08d', (i * 7919) % max(1, $4 * 4 / 5)),
  randomblob(32), 0, '', 300,
  CASE WHEN k < 12 THEN 'expired' WHEN k < 19 THEN 'accepted' ELSE 'invalid' END,
  CASE WHEN k < 12 THEN 0 WHEN k < 19 THEN 1 ELSE 5 END,
  CASE WHEN k < 12 THEN 'timed_out' WHEN k < 19 THEN 'accepted' ELSE 'attempts_exhausted' END,
  'sent',
  t,
  t + CASE WHEN k < 12 THEN 300000000 ELSE 25000000 END,
  t + 300000000
FROM r;
COMMIT;
SQL
}

# prefill_postgres SCHEMA PROFILE ACCOUNT N
prefill_postgres() {
  "${PSQL[@]}" <<SQL
SET search_path = $1;
SET synchronous_commit = off;
INSERT INTO verifications (id, account_id, profile_id, type, phone_number, code_hash, custom_code,
  extension, timeout_secs, status, attempts, completion_reason, delivery_status,
  created_at, updated_at, expires_at)
SELECT gen_random_uuid()::text, '$3', '$2', 'sms',
  '+4477' || lpad(((i::bigint * 7919) % greatest(1, $4 * 4 / 5))::text, 8, '0'),
  decode(md5(random()::text) || md5(random()::text), 'hex'), false, '', 300,
  CASE WHEN k < 12 THEN 'expired' WHEN k < 19 THEN 'accepted' ELSE 'invalid' END,
  CASE WHEN k < 12 THEN 0 WHEN k < 19 THEN 1 ELSE 5 END,
  CASE WHEN k < 12 THEN 'timed_out' WHEN k < 19 THEN 'accepted' ELSE 'attempts_exhausted' END,
  'sent', t,
  t + CASE WHEN k < 12 THEN interval '300 s' ELSE interval '25 s' END,
  t + interval '300 s'
FROM (SELECT i, i % 20 AS k,
        date_trunc('milliseconds', now()) - interval '360 s'
          - ($4 - i) * (interval '29 days' / $4) - random() * interval '1 s' AS t
      FROM generate_series(1, $4) AS i) AS r
ORDER BY i;
VACUUM ANALYZE verifications;
SQL
}

for ENGINE in $ENGINES; do
  for N in $ROWS; do
    log "=== $ENGINE, N=$N"
    if [ "$ENGINE" = sqlite ]; then
      DBDIR=$WORK/db-$N
      mkdir -p "$DBDIR"
      DBARGS=(--db "$DBDIR/v.db")
    else
      new_schema
      DBARGS=(--db "$PG_URL" --db-schema "$SCHEMA" --keys "$WORK/keys")
    fi
    KEY=$("$BIN/verifyd" apikey create --name bench "${DBARGS[@]}" 2>"$WORK/apikey.err" | tail -n1) ||
      { cat "$WORK/apikey.err" >&2; exit 1; }
    CONSOLE=$WORK/console-$ENGINE-$N.jsonl
    : >"$CONSOLE"
    start_verifyd "verifyd-$ENGINE-$N-setup" "${DBARGS[@]}" --console-out "$CONSOLE"
    API=http://$VD_ADDR/v2
    PROFILE_JSON=$(curl -sS --fail-with-body -X POST "$API/verify_profiles" \
      -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
      -d '{"name":"bench","sms":{"whitelisted_destinations":["GB"],"app_name":"Bench"}}')
    PROFILE=$(jq -r .data.id <<<"$PROFILE_JSON")
    stop_pid "$VD_PID"
    if [ "$ENGINE" = sqlite ]; then
      ACCOUNT=$(sqlite3 "$DBDIR/v.db" "SELECT account_id FROM profiles WHERE id = '$PROFILE'")
    else
      ACCOUNT=$("${PSQL[@]}" -At -c "SELECT account_id FROM $SCHEMA.profiles WHERE id = '$PROFILE'")
    fi
    [ -n "$ACCOUNT" ] || { log "no account for profile $PROFILE"; exit 1; }

    t0=$(date +%s.%N)
    if [ "$ENGINE" = sqlite ]; then
      prefill_sqlite "$DBDIR/v.db" "$PROFILE" "$ACCOUNT" "$N"
      COUNT=$(sqlite3 "$DBDIR/v.db" 'SELECT count(*) FROM verifications')
      SIZE=$(du -sh "$DBDIR" | cut -f1)
    else
      prefill_postgres "$SCHEMA" "$PROFILE" "$ACCOUNT" "$N"
      COUNT=$("${PSQL[@]}" -At -c "SELECT count(*) FROM $SCHEMA.verifications")
      SIZE=$("${PSQL[@]}" -At -c "SELECT pg_size_pretty(pg_total_relation_size('$SCHEMA.verifications'))")
    fi
    PREFILL_S=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    log "prefilled $COUNT verifications in ${PREFILL_S}s ($SIZE)"

    start_verifyd "verifyd-$ENGINE-$N" "${DBARGS[@]}" --console-out "$CONSOLE"
    API=http://$VD_ADDR/v2

    wait_load "ceiling ($ENGINE, N=$N)"
    CEIL_LOAD=$LOAD1
    "$BIN/loadgen" -c "$C" -d "$D" -warmup "$WARMUP" -json "$WORK/ceil.jsonl" -label ceiling \
      -url "http://$CEIL_ADDR/" >&2
    CEIL_RPS=$(tail -n1 "$WORK/ceil.jsonl" | jq .rps)

    wait_load "trigger ($ENGINE, N=$N)"
    "$BIN/loadgen" -c "$C" -d "$D" -warmup "$WARMUP" -json "$WORK/trig.jsonl" -label trigger -id-width 6 \
      -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
      -url "$API/verifications/sms" \
      -body '{"phone_number":"+447400{id}","verify_profile_id":"'"$PROFILE"'"}' >&2 || log "warning: trigger run reported failures"
    tail -n1 "$WORK/trig.jsonl" | jq -c --arg engine "$ENGINE" --argjson n "$N" --argjson count "$COUNT" \
      --argjson ceil "$CEIL_RPS" --argjson load "$LOAD1" --argjson settled "$LOAD_SETTLED" \
      --argjson cload "$CEIL_LOAD" --argjson prefill_s "$PREFILL_S" --arg size "$SIZE" --arg stamp "$STAMP" \
      '. + {engine: $engine, rows: $n, rows_counted: $count, ceiling_rps: $ceil, ceiling_load1: $cload,
            load1: $load, load_settled: $settled, prefill_s: $prefill_s, db_size: $size, bench_run: $stamp}' >>"$RESULTS"
    wait_quiet "$CONSOLE" 120

    # The plan of the trigger's newest lookup, on the grown table.
    {
      echo "-- $ENGINE, N=$N: newest verification of (profile, phone)"
      if [ "$ENGINE" = sqlite ]; then
        sqlite3 "$DBDIR/v.db" "EXPLAIN QUERY PLAN SELECT * FROM verifications
          WHERE profile_id = '$PROFILE' AND phone_number = '+447400000001' AND account_id = '$ACCOUNT'
          ORDER BY created_at DESC, id DESC LIMIT 1"
      else
        "${PSQL[@]}" -At -c "SET search_path = $SCHEMA" -c "EXPLAIN SELECT * FROM verifications
          WHERE profile_id = '$PROFILE' AND phone_number = '+447400000001' AND account_id = '$ACCOUNT'
          ORDER BY created_at DESC, id DESC LIMIT 1"
      fi
    } >>"$PLANS" 2>&1

    stop_pid "$VD_PID"
    if [ "$ENGINE" = sqlite ]; then
      rm -rf "$DBDIR"
    else
      drop_schemas
    fi
  done
done

jq -c '.' "$RESULTS" >>"$BENCH_OUT"

echo
echo "verifyd rows bench $STAMP — trigger (fresh numbers) vs stored verifications; c=$C, $D after $WARMUP warm-up, $(nproc) cores (results: $BENCH_OUT)"
for ENGINE in $ENGINES; do
  echo
  echo "$([ "$ENGINE" = sqlite ] && echo SQLite || echo PostgreSQL):"
  echo
  echo "| stored verifications | prefill s | size | trigger req/s | p50 ms | p99 ms | req/s ratio to N=1k | trigger/ceiling | ceiling/trigger load1 | non-2xx + errors |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  jq -s -r --arg engine "$ENGINE" '
    def r2: . * 100 | round / 100;
    def non2xx: ([.status | to_entries[] | select((.key|tonumber) < 200 or (.key|tonumber) > 299) | .value] | add // 0) + .errors;
    map(select(.engine == $engine)) | sort_by(.rows) | (.[0].rps) as $base | (.[0].rps / .[0].ceiling_rps) as $bratio | .[]
    | [ (.rows|tostring), (.prefill_s|tostring), .db_size, (.rps|floor|tostring), (.p50_ms|r2|tostring), (.p99_ms|r2|tostring),
        ((.rps / $base | r2 | tostring) + "×"),
        ((.rps / .ceiling_rps | r2 | tostring) + "× (" + ((.rps / .ceiling_rps) / $bratio | r2 | tostring) + "× of N=1k)"),
        ((.ceiling_load1|tostring) + " / " + (.load1|tostring) + (if .load_settled then "" else "!" end)),
        (non2xx|tostring) ]
    | "| " + join(" | ") + " |"' "$RESULTS"
done
echo
echo "Query plans of the newest-verification lookup after each run:"
echo
echo '```'
cat "$PLANS"
echo '```'
