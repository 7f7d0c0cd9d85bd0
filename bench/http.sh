#!/usr/bin/env bash
# The HTTP gateway against Pyro4's: one Pyro4 name server and one Pyro4 daemon (object
# http.echo, echo(x)), Pyro4's pyro4-httpgateway and `pyro-dispatch http` in front of
# them, measured with wrk in interleaved rounds (pyro4-httpgateway, pyro-dispatch, ...)
# at 16 connections and at 1 connection, GET /pyro/http.echo/echo?x=hello. A direct
# Pyro call of the same echo (the Go load generator, json serializer, 1 connection)
# gives the p50 the gateway adds to.
#
#   bench/http.sh                 3 rounds of 5 s per workload, about 2 minutes
#   BENCH_QUICK=1 bench/http.sh   1 round of 2 s
#   PYTHON=/usr/bin/python3       the Python with Pyro4 (default)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
GO=${GO:-go}
PY=${PYTHON:-/usr/bin/python3}
TMP=$(mktemp -d /tmp/pyro-http.XXXXXX)
QUICK=${BENCH_QUICK:-0}
KEEP=${BENCH_KEEP:-0}
lib_traps

ROUNDS=3 DUR=5
[ "$QUICK" = 1 ] && ROUNDS=1 DUR=2
command -v wrk >/dev/null || { log "wrk is needed (apt-get install wrk)"; exit 1; }
"$PY" -c 'import Pyro4' 2>/dev/null || { log "$PY has no Pyro4"; exit 1; }

log "building pyro-dispatch"
$GO build -trimpath -o "$TMP/pyro-dispatch" ./cmd/pyro-dispatch
PD=$TMP/pyro-dispatch
BASE=$(pick_ports 4)
P_NS=$BASE P_D=$((BASE + 1)) P_PY=$((BASE + 2)) P_GO=$((BASE + 3))
H=127.0.0.1
OBJ=bench.http.echo

cat >"$TMP/daemon.py" <<'EOF'
import sys
import Pyro4
Pyro4.config.SERIALIZERS_ACCEPTED = {"json", "serpent", "marshal"}
ns_port, port, obj = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]

@Pyro4.expose
class Echo(object):
    def echo(self, x=None):
        return x

d = Pyro4.Daemon(host="127.0.0.1", port=port)
uri = d.register(Echo(), obj)
Pyro4.locateNS("127.0.0.1", ns_port).register("http.echo", uri)
print("ready", uri, flush=True)
d.requestLoop()
EOF

start ns "$PY" -m Pyro4.naming -n $H -p $P_NS -x
wait_port ns $P_NS
start daemon "$PY" "$TMP/daemon.py" $P_NS $P_D $OBJ
for _ in $(seq 200); do grep -q '^ready' "$TMP/daemon.log" && break; kill -0 "$PID_daemon" || { cat "$TMP/daemon.log" >&2; exit 1; }; sleep 0.05; done
grep -q '^ready' "$TMP/daemon.log" || { log "daemon did not register"; exit 1; }
start pygw env PYRO_NS_HOST=$H PYRO_NS_PORT=$P_NS "$PY" -m Pyro4.utils.httpgateway -H $H -p $P_PY -e 'http\.'
start gogw "$PD" http --ns $H:$P_NS --listen $H:$P_GO --log-level warn
wait_port pygw $P_PY
wait_port gogw $P_GO

Q='/pyro/http.echo/echo?x=hello'
for g in "pyro4-httpgateway $P_PY" "pyro-dispatch $P_GO"; do
  set -- $g
  body=$(curl -sS --max-time 5 "http://$H:$2$Q")
  [ "$body" = '"hello"' ] || { log "$1 answered $body"; exit 1; }
done

# wrk_run NAME PORT CONNS ROUND
wrk_run() {
  local t=2
  [ "$3" = 1 ] && t=1
  run wrk -t$t -c$3 -d${DUR}s --latency "http://$H:$2$Q" >"$TMP/wrk-$1-c$3-r$4.txt"
}

for conns in 16 1; do
  for r in $(seq $ROUNDS); do
    log "round $r/$ROUNDS, $conns connection(s)"
    wrk_run pyro4-httpgateway $P_PY $conns $r
    wrk_run pyro-dispatch $P_GO $conns $r
  done
done

for conns in 1 16; do
  log "direct Pyro calls, $conns connection(s)"
  run "$PD" bench --quiet -t direct=$H:$P_D --object $OBJ --serializer json --payload 5 --conns $conns \
    --rounds $ROUNDS --duration ${DUR}s --warmup 500ms --json "$TMP/direct-c$conns.json" >"$TMP/direct-c$conns.txt"
done

"$PY" - "$TMP" "$ROUNDS" <<'EOF'
import glob, json, re, statistics, sys
tmp, rounds = sys.argv[1], int(sys.argv[2])
UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}

def wrk(path):
    t = open(path).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
    lat = {}
    for p, v, u in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)\s*$", t, re.M):
        lat[int(p)] = float(v) * UNIT[u]
    errs = re.search(r"Socket errors:(.*)", t)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
    e = (errs.group(1).strip() if errs else "") + (" non-2xx %s" % non2xx.group(1) if non2xx else "")
    return rps, lat.get(50), lat.get(99), e

res = {}
for gw in ("pyro4-httpgateway", "pyro-dispatch"):
    for c in (16, 1):
        rs = [wrk("%s/wrk-%s-c%d-r%d.txt" % (tmp, gw, c, r)) for r in range(1, rounds + 1)]
        res[gw, c] = dict(rps=statistics.median(x[0] for x in rs), p50=statistics.median(x[1] for x in rs),
                          p99=statistics.median(x[2] for x in rs), rounds=[round(x[0]) for x in rs],
                          errors="; ".join(x[3] for x in rs if x[3]))
direct = {}
for c in (1, 16):
    m = json.load(open("%s/direct-c%d.json" % (tmp, c)))["targets"][0]["median"]
    direct[c] = (m["calls_per_sec"], m["latency_us"]["p50"] / 1e3, m["latency_us"]["p99"] / 1e3)
direct_p50 = direct[1][1]

print("\nHTTP gateway, GET /pyro/http.echo/echo?x=hello, wrk, medians of %d interleaved round(s)" % rounds)
print("%-18s %-6s %12s %9s %9s  %s" % ("gateway", "conns", "req/s", "p50 ms", "p99 ms", "rounds req/s; errors"))
for (gw, c), v in res.items():
    print("%-18s %-6d %12.0f %9.3f %9.3f  %s %s" % (gw, c, v["rps"], v["p50"], v["p99"], v["rounds"], v["errors"]))
for c in (16, 1):
    print("%-18s %-6d %12.0f %9.3f %9.3f  (pyro-dispatch bench, json, to the Pyro4 daemon itself)" % (("direct Pyro call", c) + direct[c]))
ratio = res["pyro-dispatch", 16]["rps"] / res["pyro4-httpgateway", 16]["rps"]
added = res["pyro-dispatch", 1]["p50"] - direct_p50
print("\nreq/s at 16 connections, pyro-dispatch / pyro4-httpgateway: %.1fx (target >= 20x: %s)" % (ratio, "met" if ratio >= 20 else "NOT met"))
print("  (the Pyro4 daemon alone, called directly at 16 connections: %.0f calls/s = %.1fx pyro4-httpgateway)" % (direct[16][0], direct[16][0] / res["pyro4-httpgateway", 16]["rps"]))
print("p50 at 1 connection, pyro-dispatch minus direct Pyro call: %+.3f ms (target <= +0.2 ms: %s)" % (added, "met" if added <= 0.2 else "NOT met"))
print("p50 at 1 connection, pyro4-httpgateway minus direct Pyro call: %+.3f ms" % (res["pyro4-httpgateway", 1]["p50"] - direct_p50))
EOF
