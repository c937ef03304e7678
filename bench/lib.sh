# bench/lib.sh — helpers shared by run.sh and rows.sh (sourced, not run).
# Expects: WORK (a temp dir), PIDS (array), ROOT, SHARED set by the caller.

log() { printf '%s\n' "$*" >&2; }

# wait_for_line FILE REGEX SECONDS PID: poll FILE until a line matches; print it.
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

# wait_load: the machine is shared; before a measurement wait until the
# 1-minute load average is below LOAD_MAX (1.5), polling every LOAD_POLL (10)
# seconds for at most LOAD_WAIT (300) seconds. Sets LOAD1 (the load when the
# measurement starts) and LOAD_SETTLED (true/false); never fails.
LOAD_MAX=${LOAD_MAX:-1.5}
LOAD_POLL=${LOAD_POLL:-10}
LOAD_WAIT=${LOAD_WAIT:-300}
wait_load() {
  local what=${1:-measurement} deadline=$((SECONDS + LOAD_WAIT))
  while :; do
    LOAD1=$(cut -d' ' -f1 /proc/loadavg)
    if awk -v l="$LOAD1" -v m="$LOAD_MAX" 'BEGIN { exit !(l < m) }'; then
      LOAD_SETTLED=true
      log "load $LOAD1 < $LOAD_MAX: starting $what"
      return 0
    fi
    if ((SECONDS >= deadline)); then
      LOAD_SETTLED=false
      log "warning: load $LOAD1 did not fall below $LOAD_MAX within ${LOAD_WAIT}s; starting $what anyway"
      return 0
    fi
    log "load $LOAD1 ≥ $LOAD_MAX: waiting ${LOAD_POLL}s before $what"
    sleep "$LOAD_POLL"
  done
}

# tag_last FILE key=json...: add fields to the last JSON line of FILE (the
# loadgen result just written).
tag_last() {
  local file=$1 filter='.'
  shift
  local args=() i=0 kv
  for kv in "$@"; do
    args+=(--argjson "v$i" "${kv#*=}")
    filter+=" | .[\"${kv%%=*}\"] = \$v$i"
    i=$((i + 1))
  done
  local n
  n=$(wc -l <"$file")
  { head -n $((n - 1)) "$file"; tail -n1 "$file" | jq -c "${args[@]}" "$filter"; } >"$file.tmp"
  mv "$file.tmp" "$file"
}

PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres test)

# new_schema: set SCHEMA to a fresh schema name, remembered for drop_schemas
# (call it directly, not in $(...), or the name is not remembered).
SCHEMAS=()
new_schema() {
  SCHEMA=verifyd_bench_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
  SCHEMAS+=("$SCHEMA")
}
drop_schemas() {
  local s
  for s in "${SCHEMAS[@]}"; do
    "${PSQL[@]}" -c "DROP SCHEMA IF EXISTS $s CASCADE" >/dev/null 2>&1 ||
      log "warning: could not drop schema $s"
  done
  SCHEMAS=()
}

# stop_pid PID: SIGTERM one process we started and wait for it.
stop_pid() {
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# The guards run in every benchmark (their cost is part of the figures), but
# with limits that do not interfere: one profile sends thousands of codes a
# second to one number range, which the default spike limits (per profile,
# per prefix, per account on checks) would refuse, and the conversion guard
# records but does not block (no bench code is ever checked in a trigger run).
BENCH_GUARDS=(${BENCH_GUARDS_OVERRIDE:---limits profile=off,prefix=off,check_account=off --fraud-monitor})

# start_verifyd NAME ARGS...: start `verifyd serve --addr 127.0.0.1:0 ARGS...`
# with logs in $WORK/NAME.log; sets VD_PID and VD_ADDR.
start_verifyd() {
  local name=$1
  shift
  "$BIN/verifyd" serve --addr 127.0.0.1:0 "${BENCH_GUARDS[@]}" "$@" >"$WORK/$name.out" 2>"$WORK/$name.log" &
  VD_PID=$!
  PIDS+=("$VD_PID")
  VD_ADDR=$(wait_for_line "$WORK/$name.log" '"msg":"listening"' 60 "$VD_PID" | jq -r .addr)
}

build_bins() {
  log "building into $BIN"
  (cd "$ROOT" && go build -o "$BIN/verifyd" ./cmd/verifyd)
  (cd "$SHARED/bench" && go build -o "$BIN/loadgen" ./loadgen && go build -o "$BIN/ceiling" ./ceiling)
}

# install_cleanup stops every process in PIDS, drops the bench schemas and
# removes WORK when the script exits, however it exits.
install_cleanup() {
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

bench_cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  drop_schemas
  rm -rf "$WORK"
  exit "$rc"
}
