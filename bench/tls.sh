#!/usr/bin/env bash
# What TLS costs: the Go echo daemon behind pyro-dispatch (session mode) plain and
# terminating TLS, and behind HAProxy (mode tcp) plain and terminating TLS with the same
# certificate (ECDSA P-256, TLS 1.3 as the Go load generator negotiates it), measured in
# interleaved rounds with `pyro-dispatch bench` (calls/s with 16-byte calls, MB/s with
# 1 MiB calls), CPU per call of each proxy included. Prints the two tables for
# bench/README.md ("TLS").
#
#   bench/tls.sh                 about 3 minutes on 2 cores
#   BENCH_QUICK=1 bench/tls.sh   one short round each
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
GO=${GO:-go}
command -v haproxy >/dev/null || { log "needs haproxy (bench/compare.sh --deps installs it)"; exit 1; }

TMP=$(mktemp -d /tmp/pyro-tls.XXXXXX)
QUICK=${BENCH_QUICK:-0}
KEEP=${BENCH_KEEP:-0}
lib_traps

log "building pyro-dispatch, writing test certificates"
$GO build -trimpath -o "$TMP/pyro-dispatch" ./cmd/pyro-dispatch
$GO run ./bench/cmd/testcerts "$TMP/certs" >/dev/null
C=$TMP/certs
cat "$C/server.pem" "$C/server.key" >"$TMP/haproxy.pem"
PD=$TMP/pyro-dispatch

BASE=$(pick_ports 5)
P_ECHO=$BASE P_PD=$((BASE + 1)) P_PDTLS=$((BASE + 2)) P_HA=$((BASE + 3)) P_HATLS=$((BASE + 4))
H=127.0.0.1

start echo "$PD" echo --listen $H:$P_ECHO --max-message-size 256MiB --quiet
wait_port echo $P_ECHO
start pyro-dispatch "$PD" serve --listen $H:$P_PD --backend $H:$P_ECHO --log-level warn
start pyro-dispatch-tls "$PD" serve --listen $H:$P_PDTLS --backend $H:$P_ECHO --log-level warn \
  --tls-cert "$C/server.pem" --tls-key "$C/server.key"
cat >"$TMP/haproxy.cfg" <<CFG
global
    nbthread $(nproc)
    maxconn 4096
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
listen plain
    bind $H:$P_HA
    option splice-auto
    server echo $H:$P_ECHO
listen tls
    bind $H:$P_HATLS ssl crt $TMP/haproxy.pem
    server echo $H:$P_ECHO
CFG
start haproxy haproxy -db -f "$TMP/haproxy.cfg"
for s in pyro-dispatch:$P_PD pyro-dispatch-tls:$P_PDTLS haproxy:$P_HA; do wait_port "${s%%:*}" "${s##*:}"; done
wait_port haproxy $P_HATLS

ROUNDS=3 DUR=5s
[ "$QUICK" = 1 ] && ROUNDS=1 DUR=1s
for w in "16 16" "1MiB 4"; do
  set -- $w
  log "payload $1, $2 connections per target, $ROUNDS rounds of $DUR"
  run "$PD" bench --quiet --tls-ca "$C/ca.pem" --payload "$1" --conns "$2" --rounds $ROUNDS --duration $DUR \
    -t pyro-dispatch=$H:$P_PD -t pyro-dispatch-tls=tls:$H:$P_PDTLS -t haproxy=$H:$P_HA -t haproxy-tls=tls:$H:$P_HATLS \
    --cpu pyro-dispatch=$PID_pyro_dispatch --cpu pyro-dispatch-tls=$PID_pyro_dispatch_tls \
    --cpu haproxy=$PID_haproxy --cpu haproxy-tls=$PID_haproxy
done
