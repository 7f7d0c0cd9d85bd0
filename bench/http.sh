#!/usr/bin/env bash
# The HTTP gateway against Pyro4's: one Pyro4 name server, one Pyro4 daemon (http.echo,
# echo(x)) and one Go echo daemon (`pyro-dispatch echo`, registered as http.goecho), with
# Pyro4's pyro4-httpgateway and `pyro-dispatch http` in front of both, measured with wrk in
# interleaved rounds (per round: pyro4-httpgateway and pyro-dispatch to the Pyro4 daemon,
# then both to the Go daemon) at 16 connections and at 1 connection, GET
# /pyro/NAME/echo?x=hello. The Go daemon takes the gateway's own ceiling out from under
# the Python daemon's. Its echo takes its argument positionally and both gateways pass
# query parameters as keyword arguments, so it answers each call at once with a Pyro4
# TypeError, which both relay untouched as a 500 (pyro4-httpgateway reads the raw reply,
# as for a result). Direct Pyro calls of echo("hello") to each daemon (the Go load
# generator, json) give the p50 a gateway adds to and each daemon's own ceiling.
#
#   bench/http.sh                 3 rounds of 5 s per workload, about 3.5 minutes
#   BENCH_QUICK=1 bench/http.sh   1 round of 1 s
#   bench/http.sh --md FILE       also write the results as a Markdown section to FILE
#                                 (make bench: bench/compare.sh puts it in RESULTS.md)
#   HTTP_ROUNDS=N HTTP_DURATION=S rounds and seconds per workload instead
#   PYTHON=/usr/bin/python3       the Python with Pyro4 (default)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
MD=""
if [ "${1:-}" = "--md" ] && [ $# -eq 2 ]; then
  MD=$2
elif [ $# -ne 0 ]; then
  echo "usage: bench/http.sh [--md FILE]" >&2
  exit 2
fi
GO=${GO:-go}
PY=${PYTHON:-/usr/bin/python3}
TMP=$(mktemp -d /tmp/pyro-http.XXXXXX)
QUICK=${BENCH_QUICK:-0}
KEEP=${BENCH_KEEP:-0}
lib_traps

ROUNDS=3 DUR=5 WARMUP=500ms
[ "$QUICK" = 1 ] && ROUNDS=1 DUR=1 WARMUP=200ms
ROUNDS=${HTTP_ROUNDS:-$ROUNDS} DUR=${HTTP_DURATION:-$DUR}
command -v wrk >/dev/null || { log "wrk is needed (apt-get install wrk)"; exit 1; }
"$PY" -c 'import Pyro4' 2>/dev/null || { log "$PY has no Pyro4"; exit 1; }
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

log "building pyro-dispatch"
$GO build -trimpath -o "$TMP/pyro-dispatch" ./cmd/pyro-dispatch
PD=$TMP/pyro-dispatch
BASE=$(pick_ports 5)
P_NS=$BASE P_D=$((BASE + 1)) P_PY=$((BASE + 2)) P_GO=$((BASE + 3)) P_GOD=$((BASE + 4))
H=127.0.0.1
OBJ=echo # the object id in both daemons: the Go daemon's is fixed

cat >"$TMP/daemon.py" <<'EOF'
import sys
import Pyro4
Pyro4.config.SERIALIZERS_ACCEPTED = {"json", "serpent", "marshal"}
ns_port, port, obj, go_uri = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]

@Pyro4.expose
class Echo(object):
    def echo(self, x=None):
        return x

d = Pyro4.Daemon(host="127.0.0.1", port=port)
uri = d.register(Echo(), obj)
ns = Pyro4.locateNS("127.0.0.1", ns_port)
ns.register("http.echo", uri)
ns.register("http.goecho", go_uri)
print("ready", uri, go_uri, flush=True)
d.requestLoop()
EOF

start ns "$PY" -m Pyro4.naming -n $H -p $P_NS -x
start godaemon "$PD" echo --listen $H:$P_GOD --quiet
wait_port ns $P_NS
wait_port godaemon $P_GOD
start daemon "$PY" "$TMP/daemon.py" $P_NS $P_D $OBJ "PYRO:$OBJ@$H:$P_GOD"
for _ in $(seq 200); do grep -q '^ready' "$TMP/daemon.log" && break; kill -0 "$PID_daemon" || { cat "$TMP/daemon.log" >&2; exit 1; }; sleep 0.05; done
grep -q '^ready' "$TMP/daemon.log" || { log "daemon did not register"; exit 1; }
start pygw env PYRO_NS_HOST=$H PYRO_NS_PORT=$P_NS "$PY" -m Pyro4.utils.httpgateway -H $H -p $P_PY -e 'http\.'
start gogw "$PD" http --ns $H:$P_NS --listen $H:$P_GO --log-level warn
wait_port pygw $P_PY
wait_port gogw $P_GO

# The paths, by daemon, and what both gateways must answer.
Q_PY='/pyro/http.echo/echo?x=hello' Q_GO='/pyro/http.goecho/echo?x=hello'
for g in "pyro4-httpgateway $P_PY" "pyro-dispatch $P_GO"; do
  set -- $g
  body=$(curl -sS --max-time 5 "http://$H:$2$Q_PY")
  [ "$body" = '"hello"' ] || { log "$1 answered $body"; exit 1; }
  curl -sS --max-time 5 -o "$TMP/go-answer-$1.txt" -w '%{http_code}' "http://$H:$2$Q_GO" >"$TMP/go-status-$1.txt"
  grep -q 'echo() missing 1 required positional argument' "$TMP/go-answer-$1.txt" && [ "$(cat "$TMP/go-status-$1.txt")" = 500 ] ||
    { log "$1 answered $(cat "$TMP/go-status-$1.txt") $(cat "$TMP/go-answer-$1.txt") for the Go daemon"; exit 1; }
done
cmp -s "$TMP/go-answer-pyro4-httpgateway.txt" "$TMP/go-answer-pyro-dispatch.txt" || { log "the gateways answer the Go daemon's call differently"; exit 1; }

# wrk_run GATEWAY PORT DAEMON PATH CONNS ROUND
wrk_run() {
  local t=2
  [ "$5" = 1 ] && t=1
  run wrk -t$t -c$5 -d${DUR}s --latency "http://$H:$2$4" >"$TMP/wrk-$1-$3-c$5-r$6.txt"
}

for conns in 16 1; do
  for r in $(seq $ROUNDS); do
    log "round $r/$ROUNDS, $conns connection(s)"
    wrk_run pyro4-httpgateway $P_PY pyro4 "$Q_PY" $conns $r
    wrk_run pyro-dispatch $P_GO pyro4 "$Q_PY" $conns $r
    wrk_run pyro4-httpgateway $P_PY go "$Q_GO" $conns $r
    wrk_run pyro-dispatch $P_GO go "$Q_GO" $conns $r
  done
done

for conns in 1 16; do
  log "direct Pyro calls, $conns connection(s)"
  run "$PD" bench --quiet -t pyro4=$H:$P_D -t go=$H:$P_GOD --object $OBJ --serializer json --payload 5 --conns $conns \
    --rounds $ROUNDS --duration ${DUR}s --warmup $WARMUP --json "$TMP/direct-c$conns.json" >"$TMP/direct-c$conns.txt"
done

"$PY" - "$TMP" "$ROUNDS" "$DUR" "$MD" "$LOAD_START" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(nproc)" "$(wrk -v 2>&1 | head -1 | cut -d' ' -f2 | sed 's|.*/||; s|-.*||')" <<'EOF'
import collections, json, re, statistics, sys
import Pyro4
tmp, rounds, dur, md, load_start, load_end, nproc, wrk_version = sys.argv[1:9]
rounds = int(rounds)
UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}
GATEWAYS = ("pyro4-httpgateway", "pyro-dispatch")
DAEMONS = (("pyro4", "Pyro4 daemon", 200), ("go", "Go echo daemon", 500))

def wrk(path, status):
    t = open(path).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
    lat = {}
    for p, v, u in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)\s*$", t, re.M):
        lat[int(p)] = float(v) * UNIT[u]
    reqs = int(re.search(r"(\d+) requests in", t).group(1))
    errs = collections.Counter({k: int(n) for k, n in re.findall(r"(connect|read|write|timeout) (\d+)", t)})
    non2xx = int(re.search(r"Non-2xx or 3xx responses: (\d+)", t).group(1)) if "Non-2xx" in t else 0
    errs["answers not %d" % status] = non2xx if status == 200 else reqs - non2xx  # the Go daemon's are all 500s
    return rps, lat.get(50), lat.get(99), errs

def errors(counts):
    """The errors of rounds, summed by kind: wrk's socket errors (timeout: no answer in 2 s) and unexpected statuses."""
    total = sum(counts, collections.Counter())
    return ", ".join("%s %d" % (k, n) for k, n in sorted(total.items()) if n)

res = {}
for d, _, status in DAEMONS:
    for gw in GATEWAYS:
        for c in (16, 1):
            rs = [wrk("%s/wrk-%s-%s-c%d-r%d.txt" % (tmp, gw, d, c, r), status) for r in range(1, rounds + 1)]
            res[d, gw, c] = dict(rps=statistics.median(x[0] for x in rs), p50=statistics.median(x[1] for x in rs),
                                 p99=statistics.median(x[2] for x in rs), rounds=[round(x[0]) for x in rs],
                                 errors=errors(x[3] for x in rs))
direct = {}
for c in (1, 16):
    for t in json.load(open("%s/direct-c%d.json" % (tmp, c)))["targets"]:
        m = t["median"]
        direct[t["name"], c] = dict(rps=m["calls_per_sec"], p50=m["latency_us"]["p50"] / 1e3, p99=m["latency_us"]["p99"] / 1e3,
                                    rounds=[round(r["calls_per_sec"]) for r in t["rounds"]],
                                    errors="failed calls %d" % m["errors"] if m["errors"] else "")

ratio = {d: res[d, "pyro-dispatch", 16]["rps"] / res[d, "pyro4-httpgateway", 16]["rps"] for d, _, _ in DAEMONS}
added = {(d, gw): res[d, gw, 1]["p50"] - direct[d, 1]["p50"] for d, _, _ in DAEMONS for gw in GATEWAYS}
met = lambda ok: "met" if ok else "NOT met"

print("\nHTTP gateway, GET /pyro/NAME/echo?x=hello, wrk, medians of %d interleaved round(s) of %s s" % (rounds, dur))
print("%-15s %-18s %-6s %10s %9s %9s  %s" % ("daemon", "gateway", "conns", "req/s", "p50 ms", "p99 ms", "rounds req/s; errors"))
for d, dname, _ in DAEMONS:
    for c in (16, 1):
        for gw in GATEWAYS:
            v = res[d, gw, c]
            print("%-15s %-18s %-6d %10.0f %9.3f %9.3f  %s %s" % (dname, gw, c, v["rps"], v["p50"], v["p99"], v["rounds"], v["errors"]))
        v = direct[d, c]
        print("%-15s %-18s %-6d %10.0f %9.3f %9.3f  %s %s" % (dname, "direct Pyro call", c, v["rps"], v["p50"], v["p99"], v["rounds"], v["errors"]))
for d, dname, _ in DAEMONS:
    print("\n%s: req/s at 16 connections, pyro-dispatch / pyro4-httpgateway: %.1fx (target >= 20x: %s);"
          " the daemon called directly: %.1fx pyro4-httpgateway" % (dname, ratio[d], met(ratio[d] >= 20), direct[d, 16]["rps"] / res[d, "pyro4-httpgateway", 16]["rps"]))
    print("%s: p50 at 1 connection over a direct call: pyro-dispatch %+.3f ms (target <= +0.2 ms: %s), pyro4-httpgateway %+.3f ms"
          % (dname, added[d, "pyro-dispatch"], met(added[d, "pyro-dispatch"] <= 0.2), added[d, "pyro4-httpgateway"]))
print("load average: %s at the start, %s at the end (%s CPUs)" % (load_start, load_end, nproc))

if md:
    ms = lambda v: "%.3f ms" % v
    out = ["## HTTP gateway: pyro-dispatch http against pyro4-httpgateway\n",
           "`bench/http.sh` (see bench/README.md, \"HTTP gateway\"): a Pyro4 %s name server with two objects, `http.echo` "
           "on a Pyro4 daemon (default thread pool) and `http.goecho` on the Go echo daemon (`pyro-dispatch echo`); "
           "Pyro4's `pyro4-httpgateway -e 'http\\.'` and `pyro-dispatch http` in front of both; wrk %s sends "
           "`GET /pyro/NAME/echo?x=hello` at 16 connections (`-t2 -c16`) and at 1 connection, rounds interleaved "
           "(both gateways to the Pyro4 daemon, then both to the Go daemon); medians of %d round(s) of %s s. The Go "
           "daemon's echo takes its argument positionally and the gateways pass keyword arguments, so it answers each "
           "call at once with a Pyro4 TypeError, which both gateways relay untouched as a 500. *Direct*: `pyro-dispatch "
           "bench`, json, echo(\"hello\") to the daemon itself. Load average %s at the start, %s at the end (%s CPUs).\n"
           % (Pyro4.__version__, wrk_version, rounds, dur, load_start, load_end, nproc),
           "| daemon | target | req/s, 16 conns | p50 / p99, 16 conns | req/s, 1 conn | p50, 1 conn | rounds at 16 conns, req/s |",
           "| --- | --- | --- | --- | --- | --- | --- |"]
    for d, dname, _ in DAEMONS:
        rows = [(gw, res[d, gw, 16], res[d, gw, 1]) for gw in GATEWAYS] + [("direct Pyro call", direct[d, 16], direct[d, 1])]
        for name, a, b in rows:
            r = " (%.1f×)" % ratio[d] if name == "pyro-dispatch" else ""
            errs = "; ".join(x for x in (a["errors"], b["errors"]) if x)
            out.append("| %s | %s | %s%s | %s / %s | %s | %s | %s%s |" % (
                dname, name, format(round(a["rps"]), ","), r, ms(a["p50"]), ms(a["p99"]), format(round(b["rps"]), ","),
                ms(b["p50"]), ", ".join(format(x, ",") for x in a["rounds"]), "; errors: " + errs if errs else ""))
    out.append("")
    for d, dname, _ in DAEMONS:
        out.append("- %s: pyro-dispatch **%.1f×** pyro4-httpgateway's req/s at 16 connections (target ≥ 20×: %s; the daemon "
                   "called directly does %.1f×); p50 at 1 connection %s over a direct call (target ≤ +0.2 ms: %s; "
                   "pyro4-httpgateway %s)." % (dname, ratio[d], met(ratio[d] >= 20).lower(),
                   direct[d, 16]["rps"] / res[d, "pyro4-httpgateway", 16]["rps"], "%+.3f ms" % added[d, "pyro-dispatch"],
                   met(added[d, "pyro-dispatch"] <= 0.2).lower(), "%+.3f ms" % added[d, "pyro4-httpgateway"]))
    out.append("\nRun alone, `bench/http.sh` takes 3 rounds of 5 s; bench/README.md has its figures and the gateway's "
               "allocations per request (`go test ./httpgw -run '^$' -bench 'ServeHTTP|Invoke' -benchmem`).")
    open(md, "w").write("\n".join(out) + "\n\n")
EOF
