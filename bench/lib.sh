# Shared by the bench scripts (compare.sh, tls.sh); sourced, never run. The caller sets
# TMP (a directory for logs) and KEEP (1: keep it), and sets the traps of lib_traps
# once TMP exists: every process started with start is then stopped by PID when the
# script ends, fails or is interrupted.

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

PIDS=()   # servers, in start order
CUR=""    # the measuring command running now
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ -z "$CUR" ] || kill -TERM "$CUR" 2>/dev/null || true
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 50); do
    local alive=""
    for pid in $CUR "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ -n "$alive" ] || break
    sleep 0.1
  done
  for pid in $CUR "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  if [ $rc -ne 0 ] || [ "$KEEP" = 1 ]; then
    log "logs and raw results kept in $TMP"
  else
    rm -rf "$TMP"
  fi
  exit $rc
}

lib_traps() {
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# start NAME CMD...: runs CMD in the background, output to $TMP/NAME.log.
start() {
  local name=$1
  shift
  "$@" >"$TMP/$name.log" 2>&1 &
  PIDS+=($!)
  printf '%s\t%s\n' "$name" "$(shq "$@")" >>"$TMP/setup.txt"
  eval "PID_${name//-/_}=$!"
}

# run CMD...: runs a measuring command so that a signal reaches the trap at once.
run() {
  "$@" &
  CUR=$!
  local rc=0
  wait "$CUR" || rc=$?
  CUR=""
  return $rc
}

# shq ARGS...: the arguments as one shell-quoted command line, for the report.
shq() {
  local a out=()
  for a in "$@"; do
    if [[ $a =~ ^[A-Za-z0-9_./:=@,+%-]+$ ]]; then out+=("$a"); else out+=("'${a//\'/\'\\\'\'}'"); fi
  done
  printf '%s' "${out[*]}"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # wait_port NAME PORT
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0
    local pid="PID_${1//-/_}"
    kill -0 "${!pid}" 2>/dev/null || { cat "$TMP/$1.log" >&2; log "$1 exited"; return 1; }
    sleep 0.05
  done
  log "$1 is not listening on $2"
  return 1
}

# pick_ports N: the first of N free ports in a row, below 32768 (Linux hands out
# 32768-60999 to outgoing connections).
pick_ports() {
  for _ in $(seq 50); do
    local base=$((20000 + RANDOM % 12000)) ok=1 p
    for p in $(seq $base $((base + $1 - 1))); do port_free "$p" || ok=""; done
    if [ -n "$ok" ]; then
      echo "$base"
      return 0
    fi
  done
  return 1
}


# replicas_config NAME MODE PORT MEMBER...: a pyro-dispatch config with one listener NAME
# on 127.0.0.1:PORT in MODE (session, or pooled with pipeline 16 and max_open 4) routing
# everything to the group "replicas" of the MEMBERs, balance least_inflight.
replicas_config() {
  local name=$1 mode=$2 port=$3
  shift 3
  local members
  members=$(printf ', %s' "$@")
  printf 'backends:\n  - name: replicas\n    members: [%s]\n    balance: least_inflight\n' "${members#, }"
  printf 'listeners:\n  - name: %s\n    listen: 127.0.0.1:%s\n    mode: %s\n' "$name" "$port" "$mode"
  [ "$mode" = pooled ] && printf '    pool: {pipeline: 16, max_open: 4}\n'
  printf '    routes:\n      - to: replicas\n'
}
