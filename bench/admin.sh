#!/usr/bin/env bash
# The admin listener's cost, measured closely: one Go echo daemon behind two pyro-dispatch
# processes (session mode), one with --admin (metrics on: every call counted and timed),
# one without, in 15 interleaved rounds of 2 s per workload (16 B calls on 16 and 64
# connections), with CPU per call. `make bench` measures the same beside everything else,
# in fewer rounds.
#
#   bench/admin.sh               about 4 minutes on 2 cores
#   BENCH_QUICK=1 bench/admin.sh one short round each
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
GO=${GO:-go}
TMP=$(mktemp -d /tmp/pyro-admin.XXXXXX)
QUICK=${BENCH_QUICK:-0}
KEEP=${BENCH_KEEP:-0}
lib_traps

log "building pyro-dispatch"
$GO build -trimpath -o "$TMP/pyro-dispatch" ./cmd/pyro-dispatch
PD=$TMP/pyro-dispatch
BASE=$(pick_ports 4)
P_ECHO=$BASE P_OFF=$((BASE + 1)) P_ON=$((BASE + 2)) P_ADMIN=$((BASE + 3))
H=127.0.0.1
start echo "$PD" echo --listen $H:$P_ECHO --quiet
wait_port echo $P_ECHO
start admin-off "$PD" serve --listen $H:$P_OFF --backend $H:$P_ECHO --log-level warn
start admin-on "$PD" serve --listen $H:$P_ON --backend $H:$P_ECHO --log-level warn --admin $H:$P_ADMIN
wait_port admin-off $P_OFF
wait_port admin-on $P_ON

ROUNDS="--rounds 15 --duration 2s --warmup 500ms"
[ "$QUICK" = 1 ] && ROUNDS="--rounds 1 --duration 1s --warmup 200ms"
for conns in 16 64; do
  log "16 B calls, $conns connections"
  # shellcheck disable=SC2086
  run "$PD" bench --quiet --payload 16 --conns $conns $ROUNDS -t admin-off=$H:$P_OFF -t admin-on=$H:$P_ON \
    --cpu admin-off=$PID_admin_off --cpu admin-on=$PID_admin_on
done
