#!/usr/bin/env bash
# make demo: a real Pyro4 daemon, pyro-dispatch in front of it, and a real Pyro4 client
# making a normal call, a oneway call and a SerializedBlob call through the dispatcher.
# Prints what the client got and the dispatcher's log lines; stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin/pyro-dispatch}
BACKEND_PORT=${BACKEND_PORT:-29901}
PROXY_PORT=${PROXY_PORT:-29900}
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

wait_port() { # wait_port PORT: until something listens there (10 s at most)
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "demo: nothing listens on port $1" >&2
  return 1
}

/usr/bin/python3 -u scripts/demo/daemon.py "$BACKEND_PORT" >"$work/backend.log" 2>&1 &
pids+=($!)
wait_port "$BACKEND_PORT"
"$BIN" serve --listen "127.0.0.1:$PROXY_PORT" --backend "127.0.0.1:$BACKEND_PORT" --access-log >"$work/dispatch.log" 2>&1 &
pids+=($!)
wait_port "$PROXY_PORT"

echo "== the client (real Pyro4, unmodified) =="
/usr/bin/python3 scripts/demo/client.py "PYRO:demo.greeter@127.0.0.1:$PROXY_PORT"
sleep 0.3
kill -TERM "${pids[1]}"
wait "${pids[1]}" 2>/dev/null || true
echo
echo "== the backend daemon =="
cat "$work/backend.log"
echo
echo "== pyro-dispatch log (each call with its correlation id) =="
cat "$work/dispatch.log"
