#!/usr/bin/env bash
# `make bench`: the comparison run. Starts the Go echo daemon (`pyro-dispatch echo`),
# pyro-dispatch in front of it (session mode, the transparent default, and pooled mode with
# pipelining),
# HAProxy (mode tcp) and nginx (stream), Pyro4's own SerializedBlob dispatcher in
# Python, a plain Go splice relay (bench/cmd/splicerelay, the physical limit of the
# 64 MiB workloads) and two echo floors (bench/floor/echofloor.c and its Go twin
# bench/cmd/echofloor: what a proxy's client side costs at the least, for the small
# workloads at 64 connections); and, for the workload "3 replicas", three more echo daemons behind
# pyro-dispatch (a YAML config: one backend group, balance: least_inflight; session and
# pipelined pooled mode) and behind HAProxy (balance leastconn). Measures them all in
# interleaved rounds with `pyro-dispatch bench` (Go load generator, json) and
# bench/python/load.py (Python Pyro4 clients); measures the memory per idle client of
# pooled mode (`go test -bench BenchmarkPooledIdleMemory ./interop`: 3 runs of 10,000 idle
# clients); measures the HTTP gateway against pyro4-httpgateway (bench/http.sh, in
# 2 rounds of 2 s: about a minute); then writes bench/RESULTS.md and the SVG charts in
# bench/charts/ (bench/cmd/compare; the HTTP section is bench/http.sh's, put in before
# "How it was measured").
#
#   bench/compare.sh            the full run (about 10 minutes on 2 cores)
#   bench/compare.sh --deps     only install what it needs (apt: haproxy, nginx + stream, wrk, gcc)
#   BENCH_QUICK=1 bench/compare.sh   a smoke test: one short round each (~1.5 minutes);
#                               writes to $BENCH_OUT / $BENCH_CHARTS, by default a temp dir
#
# Environment: BENCH_OUT (RESULTS.md path), BENCH_CHARTS (chart directory), BENCH_KEEP=1
# (keep the temp dir with logs and raw JSON; the default with BENCH_QUICK=1). Every process it starts is stopped by PID
# when it ends, fails or is interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
GO=${GO:-go}
PY=/usr/bin/python3

# --- dependencies ---------------------------------------------------------------------

install_deps() {
  ./scripts/ensure-pyro4.sh
  local need=()
  command -v haproxy >/dev/null || need+=(haproxy)
  command -v nginx >/dev/null || need+=(nginx)
  command -v wrk >/dev/null || need+=(wrk)
  command -v cc >/dev/null || need+=(gcc libc6-dev)
  [ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || nginx -V 2>&1 | grep -q -- '--with-stream\( \|$\)' || need+=(libnginx-mod-stream)
  [ ${#need[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  log "installing ${need[*]} with apt-get"
  # Keep the packages' services from starting (nginx would take port 80): a
  # policy-rc.d that denies, only for the time of the install and only if there is none.
  local policy=/usr/sbin/policy-rc.d added=""
  if [ ! -e $policy ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee $policy >/dev/null
    $sudo chmod 755 $policy
    added=1
  fi
  local rc=0
  {
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -q >/dev/null &&
      $sudo apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
  } || rc=$?
  [ -z "$added" ] || $sudo rm -f $policy
  return $rc
}

if [ "${1:-}" = "--deps" ]; then
  install_deps
  exit 0
fi
[ $# -eq 0 ] || { echo "usage: bench/compare.sh [--deps]" >&2; exit 2; }

T0=$(date +%s)
START_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
install_deps

TMP=$(mktemp -d /tmp/pyro-bench.XXXXXX)
QUICK=${BENCH_QUICK:-0}
KEEP=${BENCH_KEEP:-$QUICK}
if [ "$QUICK" = 1 ]; then
  OUT=${BENCH_OUT:-$TMP/RESULTS.md}
  CHARTS=${BENCH_CHARTS:-$TMP/charts}
else
  OUT=${BENCH_OUT:-$ROOT/bench/RESULTS.md}
  CHARTS=${BENCH_CHARTS:-$ROOT/bench/charts}
fi

# --- processes: every one started is recorded and stopped by PID (bench/lib.sh) -------

lib_traps

# --- build ----------------------------------------------------------------------------

log "building pyro-dispatch and the report tool"
$GO build -trimpath -o "$TMP/pyro-dispatch" ./cmd/pyro-dispatch
$GO build -trimpath -o "$TMP/compare" ./bench/cmd/compare
$GO build -trimpath -o "$TMP/splice-relay" ./bench/cmd/splicerelay
cc -O2 -pthread -o "$TMP/echo-floor-c" bench/floor/echofloor.c
$GO build -trimpath -o "$TMP/echo-floor-go" ./bench/cmd/echofloor
PD=$TMP/pyro-dispatch

BASE=$(pick_ports 18)
P_ECHO=$BASE P_PD=$((BASE + 1)) P_PIPE=$((BASE + 2)) P_HAPROXY=$((BASE + 3)) P_NGINX=$((BASE + 4)) P_PYD=$((BASE + 5)) P_PD1=$((BASE + 6))
# the workload "3 replicas": three echo daemons, pyro-dispatch (session, pipelined) and HAProxy over them
P_R1=$((BASE + 7)) P_R2=$((BASE + 8)) P_R3=$((BASE + 9)) P_LB=$((BASE + 10)) P_LBPIPE=$((BASE + 11)) P_HALB=$((BASE + 12))
# pyro-dispatch with its admin listener (metrics on), and that listener
P_PDADM=$((BASE + 13)) P_ADMIN=$((BASE + 14))
# the plain Go splice relay (64 MiB workloads only)
P_SPLICE=$((BASE + 15))
# the echo floors, C and Go (small calls at 64 connections only)
P_FLOORC=$((BASE + 16)) P_FLOORGO=$((BASE + 17))
H=127.0.0.1

# --- machine ---------------------------------------------------------------------------

{
  printf 'date\t%s\n' "$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  printf 'nproc\t%s\n' "$(nproc)"
  printf 'cpu\t%s\n' "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  printf 'memory\t%s\n' "$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  printf 'kernel\t%s\n' "$(uname -sr)"
  printf 'go\t%s\n' "$($GO version)"
  printf 'haproxy\t%s\n' "$(haproxy -v | head -1)"
  printf 'nginx\t%s\n' "$(nginx -v 2>&1)"
  printf 'python\t%s\n' "$($PY -c 'import sys, Pyro4, serpent; print("Python", sys.version.split()[0], "· Pyro4", Pyro4.__version__, "· serpent", serpent.__version__)')"
  printf 'load_start\t%s\n' "$START_LOAD"
  printf 'load_bench_start\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
  printf 'stat_bench_start\t%s\n' "$(head -1 /proc/stat)"
  printf 'quick\t%s\n' "$QUICK"
} >"$TMP/machine.txt"

# --- servers ---------------------------------------------------------------------------

log "starting echo :$P_ECHO, pyro-dispatch :$P_PD (session) :$P_PIPE (pipelined), haproxy :$P_HAPROXY, nginx :$P_NGINX, Python dispatcher :$P_PYD, splice relay :$P_SPLICE"
start echo "$PD" echo --listen $H:$P_ECHO --max-message-size 256MiB --quiet
wait_port echo $P_ECHO
start pyro-dispatch "$PD" serve --listen $H:$P_PD --backend $H:$P_ECHO
start pyro-dispatch-procs1 "$PD" serve --listen $H:$P_PD1 --backend $H:$P_ECHO --procs 1
start pyro-dispatch-admin "$PD" serve --listen $H:$P_PDADM --backend $H:$P_ECHO --admin $H:$P_ADMIN
start pyro-dispatch-pipelined "$PD" serve --listen $H:$P_PIPE --backend $H:$P_ECHO --mode pooled --pool-pipeline 16 --pool-max-open 4
start splice-relay "$TMP/splice-relay" --listen $H:$P_SPLICE --backend $H:$P_ECHO
start echo-floor-c "$TMP/echo-floor-c" $H $P_FLOORC "$(nproc)"
start echo-floor-go "$TMP/echo-floor-go" --listen $H:$P_FLOORGO

sed -e "s/@THREADS@/$(nproc)/" -e "s/@LISTEN@/$H:$P_HAPROXY/" -e "s/@BACKEND@/$H:$P_ECHO/" bench/haproxy.cfg >"$TMP/haproxy.cfg"
start haproxy haproxy -db -f "$TMP/haproxy.cfg"

mkdir -p "$TMP/nginx"
LOAD_STREAM=""
if ! nginx -V 2>&1 | grep -q -- '--with-stream\( \|$\)'; then
  LOAD_STREAM="load_module /usr/lib/nginx/modules/ngx_stream_module.so;"
fi
sed -e "s|@LOAD_STREAM@|$LOAD_STREAM|" -e "s|@PREFIX@|$TMP/nginx|g" -e "s/@LISTEN@/$H:$P_NGINX/" -e "s/@BACKEND@/$H:$P_ECHO/" \
  bench/nginx.conf >"$TMP/nginx/nginx.conf"
start nginx nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -g 'daemon off;'

start python-dispatcher $PY bench/python/dispatcher.py --listen $H:$P_PYD --backend PYRO:echo@$H:$P_ECHO

# 3 replicas: the same backend group in both pyro-dispatch configs (written here, so that
# they always name the ports picked); HAProxy from bench/haproxy-replicas.cfg.
log "starting replicas :$P_R1 :$P_R2 :$P_R3, pyro-dispatch :$P_LB (session) :$P_LBPIPE (pipelined), haproxy :$P_HALB (leastconn)"
start replica-1 "$PD" echo --listen $H:$P_R1 --quiet
start replica-2 "$PD" echo --listen $H:$P_R2 --quiet
start replica-3 "$PD" echo --listen $H:$P_R3 --quiet
for s in replica-1:$P_R1 replica-2:$P_R2 replica-3:$P_R3; do wait_port "${s%%:*}" "${s##*:}"; done
replicas_config lb session $P_LB $H:$P_R1 $H:$P_R2 $H:$P_R3 >"$TMP/replicas-session.yaml"
replicas_config lb-pipelined pooled $P_LBPIPE $H:$P_R1 $H:$P_R2 $H:$P_R3 >"$TMP/replicas-pipelined.yaml"
start pyro-dispatch-lb "$PD" serve --config "$TMP/replicas-session.yaml"
start pyro-dispatch-lb-pipelined "$PD" serve --config "$TMP/replicas-pipelined.yaml"
sed -e "s/@THREADS@/$(nproc)/" -e "s/@LISTEN@/$H:$P_HALB/" \
  -e "s/@REPLICA1@/$H:$P_R1/" -e "s/@REPLICA2@/$H:$P_R2/" -e "s/@REPLICA3@/$H:$P_R3/" \
  bench/haproxy-replicas.cfg >"$TMP/haproxy-replicas.cfg"
start haproxy-lb haproxy -db -f "$TMP/haproxy-replicas.cfg"

for s in pyro-dispatch:$P_PD pyro-dispatch-procs1:$P_PD1 pyro-dispatch-admin:$P_PDADM pyro-dispatch-pipelined:$P_PIPE haproxy:$P_HAPROXY nginx:$P_NGINX python-dispatcher:$P_PYD splice-relay:$P_SPLICE echo-floor-c:$P_FLOORC echo-floor-go:$P_FLOORGO \
  pyro-dispatch-lb:$P_LB pyro-dispatch-lb-pipelined:$P_LBPIPE haproxy-lb:$P_HALB; do
  wait_port "${s%%:*}" "${s##*:}"
done
# nginx's workers are children of its master: record them to stop them by PID too.
for _ in $(seq 100); do
  [ "$(ps -o pid= --ppid "$PID_nginx" | wc -l)" -ge "$(nproc)" ] && break
  sleep 0.05
done
for pid in $(ps -o pid= --ppid "$PID_nginx"); do PIDS+=("$pid"); done
log "servers up: echo $PID_echo, pyro-dispatch $PID_pyro_dispatch, pipelined $PID_pyro_dispatch_pipelined, haproxy $PID_haproxy, nginx $PID_nginx (+ workers), Python dispatcher $PID_python_dispatcher, splice relay $PID_splice_relay"
log "replicas up: echo $PID_replica_1 $PID_replica_2 $PID_replica_3, pyro-dispatch $PID_pyro_dispatch_lb, pipelined $PID_pyro_dispatch_lb_pipelined, haproxy $PID_haproxy_lb"

# --- workloads ------------------------------------------------------------------------

if [ "$QUICK" = 1 ]; then
  SMALL="--duration 500ms --warmup 100ms --rounds 1"
  REPLICAS=$SMALL
  MIB="--duration 500ms --warmup 200ms --rounds 1"
  BIG="--duration 1s --warmup 500ms --rounds 1"
  PYARGS="--duration 0.5 --warmup 0.2 --rounds 1"
  IDLECOUNT=1
  HTTPENV=() # bench/http.sh's quick run: 1 round of 1 s
else
  # Short rounds but several: on a shared machine a median of 5 survives two disturbed rounds.
  SMALL="--duration 1200ms --warmup 300ms --rounds 5"
  # 3 replicas: the rounds of the small workloads, but three targets where they have six (~25 s).
  REPLICAS=$SMALL
  MIB="--duration 2s --warmup 500ms --rounds 3"
  BIG="--duration 3s --warmup 1s --rounds 3"
  PYARGS="--duration 3 --warmup 0.5 --rounds 3"
  # Memory per idle client: 3 runs of 10,000 idle clients (~6 s each).
  IDLECOUNT=3
  # The HTTP gateway: 2 rounds of 2 s of each of its 8 wrk runs and 4 direct ones (~1 minute).
  HTTPENV=(HTTP_ROUNDS=2 HTTP_DURATION=2)
fi
TARGETS="-t direct=$H:$P_ECHO -t pyro-dispatch=$H:$P_PD -t pyro-dispatch-pipelined=$H:$P_PIPE"
CPU="--cpu pyro-dispatch=$PID_pyro_dispatch --cpu pyro-dispatch-pipelined=$PID_pyro_dispatch_pipelined --cpu haproxy=$PID_haproxy --cpu nginx=$PID_nginx"
mkdir -p "$CHARTS"

bench_workload() { # ID GROUP TITLE FLAGS...
  local id=$1 group=$2 title=$3
  shift 3
  local cmd=("$PD" bench "$@" --serializer json --json "$TMP/$id.json" --chart "$CHARTS/$id.svg" --quiet)
  log "$title"
  printf '%s\t%s\t%s\t%s\t%s\n' "$id" "$group" "$title" "$CHARTS/$id.svg" "$(shq "${cmd[@]}")" >>"$TMP/workloads.txt"
  run "${cmd[@]}" >"$TMP/$id.txt" || log "$id: some calls failed (exit $?), see the report"
  cat "$TMP/$id.txt" >&2
}

plural() { if [ "$1" = 1 ]; then echo "1 connection"; else echo "$1 connections"; fi; }
for payload in 16 1KiB; do
  for conns in 1 16 64; do
    size="16 B"
    [ $payload = 16 ] || size="1 KiB"
    floor=""
    [ $conns != 64 ] || floor="-t echo-floor-c=$H:$P_FLOORC --cpu echo-floor-c=$PID_echo_floor_c
      -t echo-floor-go=$H:$P_FLOORGO --cpu echo-floor-go=$PID_echo_floor_go"
    # shellcheck disable=SC2086
    bench_workload "small-$payload-c$conns" small "small calls: $size payload, $(plural $conns)" \
      $TARGETS -t pyro-dispatch-procs1=$H:$P_PD1 -t pyro-dispatch-admin=$H:$P_PDADM -t haproxy=$H:$P_HAPROXY -t nginx=$H:$P_NGINX \
      $CPU --cpu pyro-dispatch-procs1=$PID_pyro_dispatch_procs1 --cpu pyro-dispatch-admin=$PID_pyro_dispatch_admin \
      $floor --payload $payload --conns $conns $SMALL
  done
done
# 3 replicas: HAProxy first, so that the ratios of `pyro-dispatch bench` are to HAProxy.
# The target names are those of the small workloads (the report judges pyro-dispatch and
# pyro-dispatch-pipelined against haproxy); the processes are the replicas' own.
# shellcheck disable=SC2086
bench_workload replicas replicas "3 replicas, least-in-flight balancing: 16 B payload, 64 connections" \
  -t haproxy=$H:$P_HALB -t pyro-dispatch=$H:$P_LB -t pyro-dispatch-pipelined=$H:$P_LBPIPE \
  --cpu haproxy=$PID_haproxy_lb --cpu pyro-dispatch=$PID_pyro_dispatch_lb \
  --cpu pyro-dispatch-pipelined=$PID_pyro_dispatch_lb_pipelined --payload 16 --conns 64 $REPLICAS
for conns in 1 4; do
  # shellcheck disable=SC2086
  bench_workload "large-1MiB-c$conns" large "large calls: 1 MiB payload, $(plural $conns)" \
    $TARGETS -t haproxy=$H:$P_HAPROXY -t nginx=$H:$P_NGINX $CPU --payload 1MiB --conns $conns $MIB --timeout 30s
done
for conns in 1 4; do
  # shellcheck disable=SC2086
  bench_workload "large-64MiB-c$conns" large "large calls: 64 MiB payload, $(plural $conns)" \
    $TARGETS -t haproxy=$H:$P_HAPROXY -t nginx=$H:$P_NGINX -t splice-relay=$H:$P_SPLICE $CPU --cpu splice-relay=$PID_splice_relay \
    --payload 64MiB --conns $conns $BIG --timeout 60s
done

log "Python clients: direct, pyro-dispatch (session, pipelined), HAProxy, Python SerializedBlob dispatcher"
pycmd=($PY bench/python/load.py --target direct=PYRO:echo@$H:$P_ECHO --target pyro-dispatch=PYRO:echo@$H:$P_PD
  --target pyro-dispatch-pipelined=PYRO:echo@$H:$P_PIPE --target haproxy=PYRO:echo@$H:$P_HAPROXY
  --target python-dispatcher=PYRO:echo@$H:$P_PYD
  --procs 4 --threads 4 --payload 1024 $PYARGS --cpu pyro-dispatch=$PID_pyro_dispatch
  --cpu pyro-dispatch-pipelined=$PID_pyro_dispatch_pipelined --cpu haproxy=$PID_haproxy
  --cpu python-dispatcher=$PID_python_dispatcher --json "$TMP/python-raw.json")
printf '%s\t%s\t%s\t%s\t%s\n' python python "Python clients: blob(SerializedBlob), 1 KiB, 4 processes × 4 threads" \
  "$CHARTS/python.svg" "$(shq "${pycmd[@]}")" >>"$TMP/workloads.txt"
run "${pycmd[@]}" || log "python: some calls failed (exit $?), see the report"

# The benchmark raises its own file limit (it needs 10,500 descriptors) and starts its own
# dispatcher; compare reads $TMP/idle-memory.txt: the command, then go test's output.
log "memory per idle client: $IDLECOUNT run(s) of 10,000 idle clients of pooled mode (interop BenchmarkPooledIdleMemory)"
idlecmd=($GO test -run '^$' -bench BenchmarkPooledIdleMemory -benchtime 1x -count $IDLECOUNT ./interop)
printf '# %s\n' "$(shq "${idlecmd[@]}")" >"$TMP/idle-memory.txt"
run "${idlecmd[@]}" >>"$TMP/idle-memory.txt" 2>&1 || log "idle memory: go test failed (exit $?): not measured, see $TMP/idle-memory.txt"
grep '^Benchmark' "$TMP/idle-memory.txt" >&2 || true

log "HTTP gateway: pyro-dispatch http and pyro4-httpgateway, in front of a Pyro4 daemon and of the Go echo daemon (bench/http.sh)"
run env "${HTTPENV[@]}" GO="$GO" PYTHON=$PY bench/http.sh --md "$TMP/http.md" >"$TMP/http.txt" ||
  log "http: bench/http.sh failed (exit $?): no HTTP section in the report"
cat "$TMP/http.txt" >&2

printf 'load_end\t%s\nstat_end\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" "$(head -1 /proc/stat)" >>"$TMP/machine.txt"
"$TMP/compare" --dir "$TMP" --out "$OUT" --charts "$CHARTS" --root "$ROOT" --elapsed $(($(date +%s) - T0))
if [ -s "$TMP/http.md" ]; then
  # bench/http.sh's section, before "How it was measured" (at the end if there is none).
  awk -v f="$TMP/http.md" '
    function section(  l) { while ((getline l < f) > 0) print l; done = 1 }
    /^## How it was measured/ && !done { section() }
    { print }
    END { if (!done) section() }' "$OUT" >"$OUT.tmp"
  mv "$OUT.tmp" "$OUT"
fi
log "wrote $OUT and $CHARTS/*.svg in $(($(date +%s) - T0))s"
