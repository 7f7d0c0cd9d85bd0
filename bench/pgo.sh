#!/usr/bin/env bash
# `make pgo`: records the CPU profile that `go build` uses for profile-guided
# optimization (cmd/pyro-dispatch/default.pgo; Go applies it by itself, -pgo=auto).
# Builds pyro-dispatch without a profile, runs it in the modes `make bench` measures
# (session mode, pipelined pooled mode, and both over three replicas behind a backend
# group) in front of the Go echo daemon, drives each with `pyro-dispatch bench`
# (64 connections at 16 B and 1 KiB, one connection, 256 KiB payloads), and merges the
# processes' CPU profiles into default.pgo. About 2 minutes on 2 cores.
#
#   bench/pgo.sh                  rewrite cmd/pyro-dispatch/default.pgo
#   PGO_OUT=FILE bench/pgo.sh     write the merged profile to FILE instead
#
# Every process it starts is stopped by PID when it ends, fails or is interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
GO=${GO:-go}
OUT=${PGO_OUT:-$ROOT/cmd/pyro-dispatch/default.pgo}
SECS=${PGO_SECONDS:-6}

TMP=$(mktemp -d /tmp/pyro-pgo.XXXXXX)
KEEP=${PGO_KEEP:-0}
lib_traps

log "building pyro-dispatch without a profile"
$GO build -trimpath -pgo=off -o "$TMP/pyro-dispatch" ./cmd/pyro-dispatch
PD=$TMP/pyro-dispatch

BASE=$(pick_ports 8)
P_ECHO=$BASE P_SES=$((BASE + 1)) P_PIPE=$((BASE + 2)) P_R1=$((BASE + 3)) P_R2=$((BASE + 4)) P_R3=$((BASE + 5)) P_LB=$((BASE + 6)) P_LBPIPE=$((BASE + 7))
H=127.0.0.1

start echo "$PD" echo --listen $H:$P_ECHO --max-message-size 256MiB --quiet
start replica-1 "$PD" echo --listen $H:$P_R1 --quiet
start replica-2 "$PD" echo --listen $H:$P_R2 --quiet
start replica-3 "$PD" echo --listen $H:$P_R3 --quiet
for s in echo:$P_ECHO replica-1:$P_R1 replica-2:$P_R2 replica-3:$P_R3; do wait_port "${s%%:*}" "${s##*:}"; done

replicas_config lb-session session $P_LB $H:$P_R1 $H:$P_R2 $H:$P_R3 >"$TMP/lb-session.yaml"
replicas_config lb-pooled pooled $P_LBPIPE $H:$P_R1 $H:$P_R2 $H:$P_R3 >"$TMP/lb-pooled.yaml"

start session "$PD" serve --listen $H:$P_SES --backend $H:$P_ECHO --log-level warn --cpuprofile "$TMP/session.pprof"
start pipelined "$PD" serve --listen $H:$P_PIPE --backend $H:$P_ECHO --mode pooled --pool-pipeline 16 --pool-max-open 4 --log-level warn --cpuprofile "$TMP/pipelined.pprof"
start lb-session "$PD" serve --config "$TMP/lb-session.yaml" --log-level warn --cpuprofile "$TMP/lb-session.pprof"
start lb-pooled "$PD" serve --config "$TMP/lb-pooled.yaml" --log-level warn --cpuprofile "$TMP/lb-pooled.pprof"
for s in session:$P_SES pipelined:$P_PIPE lb-session:$P_LB lb-pooled:$P_LBPIPE; do wait_port "${s%%:*}" "${s##*:}"; done

# load PORT CONNS PAYLOAD SECONDS: one run of the Go load generator against PORT.
load() {
  log "load :$1: $2 conns, $3 B, $4 s"
  run "$PD" bench -t "p=$H:$1" -c "$2" -d "$4s" --warmup 300ms --payload "$3" --serializer json --quiet >/dev/null
}
for port in $P_SES $P_PIPE; do
  load $port 64 16 "$SECS"
  load $port 64 1024 "$SECS"
  load $port 1 16 $((SECS / 2))
  load $port 4 262144 $((SECS / 2))
done
for port in $P_LB $P_LBPIPE; do
  load $port 64 16 $((SECS / 2))
done

# Stop the proxies (each writes its profile as it exits), then merge the profiles.
for name in session pipelined lb-session lb-pooled; do
  pid="PID_${name//-/_}"
  kill -TERM "${!pid}"
  wait "${!pid}" || true
done
$GO tool pprof -proto "$TMP"/*.pprof >"$TMP/merged.pgo"
mv "$TMP/merged.pgo" "$OUT"
log "wrote $OUT ($(wc -c <"$OUT") bytes)"
