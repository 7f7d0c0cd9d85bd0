#!/usr/bin/python3
"""Python Pyro4 clients as a load generator for `make bench`.

Each target is a Pyro4 URI (PYRO:echo@HOST:PORT). In every round of every target, --procs
client processes each run --threads threads, each thread with a Proxy of its own, making
sequential calls of blob(SerializedBlob(info, (x,))) -- Pyro4's SerializedBlob pattern,
x being a str of --payload bytes -- for --warmup then --duration seconds, and checking
that every call returns x. Rounds interleave over the targets (A B C A B C ...) like
`pyro-dispatch bench`, with fresh processes and connections in every round.

Counted per round: calls started in the measured time that returned x, errors by kind,
the latency of each such call (send to result, in a histogram of 3 significant digits),
the measured time (end of warmup to the last result), and, for a target given with
--cpu, the CPU time (user + system, from /proc) of those processes and their children
over the measured time.

usage: load.py --target NAME=URI [--target ...] [--procs 4] [--threads 4]
               [--payload 1024] [--duration 3] [--warmup 0.5] [--rounds 3]
               [--cpu NAME=PID[,PID...]] --json FILE

Writes JSON (see write_json) and prints a short table. Exit status 1 when a call failed.
"""
import argparse
import collections
import datetime
import json
import multiprocessing
import os
import signal
import sys
import threading
import time

import Pyro4
import Pyro4.core
import Pyro4.errors

BLOB_INFO = "pyro-dispatch.bench"


def bucket(ns):
    """Rounds a latency down to 3 significant digits, to keep the histogram small."""
    k = 1
    while ns >= 1000 * k:
        k *= 10
    return ns // k * k


def error_kind(e):
    if isinstance(e, Pyro4.errors.TimeoutError):
        return "timeout"
    if isinstance(e, Pyro4.errors.ConnectionClosedError):
        return "closed"
    if isinstance(e, Pyro4.errors.CommunicationError):
        return "closed"
    if isinstance(e, Pyro4.errors.ProtocolError):
        return "protocol"
    if isinstance(e, Pyro4.errors.SerializeError):
        return "serializer"
    return "exception"


def client_process(uri, threads, payload, timeout, conn):
    """One client process: binds its proxies, reports ready, waits for the start times,
    runs its threads, then sends back what they measured."""
    Pyro4.config.COMMTIMEOUT = timeout
    x = "x" * payload
    errors = collections.Counter()
    samples = {}
    lock = threading.Lock()

    def fail(kind, msg):
        with lock:
            errors[kind] += 1
            samples.setdefault(kind, msg[:300])

    proxies = []
    for _ in range(threads):
        p = Pyro4.Proxy(uri)
        try:
            p._pyroBind()
        except Exception as e:  # noqa: BLE001 - any failure is a handshake error here
            fail("handshake", "%s: %s" % (type(e).__name__, e))
        proxies.append(p)
    conn.send("ready")
    measure, end = conn.recv()

    results = []

    def run(p):
        hist = collections.Counter()
        calls = 0
        last = 0
        while True:
            t0 = time.monotonic_ns()
            if t0 >= end:
                break
            try:
                r = p.blob(Pyro4.core.SerializedBlob(BLOB_INFO, (x,)))
            except Exception as e:  # noqa: BLE001
                fail(error_kind(e), "%s: %s" % (type(e).__name__, e))
                p._pyroRelease()  # the next call reconnects
                time.sleep(0.01)
                continue
            t1 = time.monotonic_ns()
            if r != x:
                fail("value", "blob returned %r" % (r[:60] if isinstance(r, str) else r,))
                continue
            if t0 >= measure:
                calls += 1
                last = t1
                hist[bucket(t1 - t0)] += 1
        with lock:
            results.append((calls, last, hist))

    ts = [threading.Thread(target=run, args=(p,)) for p in proxies]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for p in proxies:
        p._pyroRelease()
    hist = collections.Counter()
    calls, last = 0, 0
    for c, l, h in results:
        calls += c
        last = max(last, l)
        hist.update(h)
    conn.send({"calls": calls, "last": last, "hist": dict(hist), "errors": dict(errors), "samples": samples})


def process_cpu(pids):
    """CPU seconds (user + system) of pids and all their descendants, from /proc."""
    procs = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d, "rb") as f:
                s = f.read()
        except OSError:
            continue
        rest = s[s.rindex(b")") + 2:].split()
        procs[int(d)] = (int(rest[1]), int(rest[11]) + int(rest[12]))
    children = collections.defaultdict(list)
    for pid, (ppid, _) in procs.items():
        children[ppid].append(pid)
    seen, ticks, todo = set(), 0, list(pids)
    while todo:
        pid = todo.pop()
        if pid in seen or pid not in procs:
            continue
        seen.add(pid)
        ticks += procs[pid][1]
        todo.extend(children[pid])
    return ticks / os.sysconf("SC_CLK_TCK")


def run_round(ctx, target, cpu_pids, args):
    """One round of one target; returns its record for the JSON report."""
    name, uri = target
    conns = []
    procs = []
    for _ in range(args.procs):
        parent, child = ctx.Pipe()
        p = ctx.Process(target=client_process, args=(uri, args.threads, args.payload, args.timeout, child), daemon=True)
        p.start()
        child.close()
        conns.append(parent)
        procs.append(p)
    ok = False
    try:
        for c in conns:
            if not c.poll(60) or c.recv() != "ready":
                raise RuntimeError("a client process of %s did not start" % name)
        start = time.monotonic_ns() + 50_000_000
        measure = start + int(args.warmup * 1e9)
        end = measure + int(args.duration * 1e9)
        for c in conns:
            c.send((measure, end))
        start_wall = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=(measure - time.monotonic_ns()) / 1e9)
        cpu0 = None
        if cpu_pids:
            time.sleep(max(0, (measure - time.monotonic_ns()) / 1e9))
            cpu0 = process_cpu(cpu_pids)
        outs = []
        deadline = time.monotonic() + (end - time.monotonic_ns()) / 1e9 + args.timeout + 30
        for c in conns:
            if not c.poll(max(0.1, deadline - time.monotonic())):
                raise RuntimeError("a client process of %s did not finish" % name)
            outs.append(c.recv())
        cpu = process_cpu(cpu_pids) - cpu0 if cpu_pids else None
        ok = True
    finally:
        # Every client process is stopped by PID: at once after a failure or a signal.
        for p in procs:
            if ok:
                p.join(5)
            if p.is_alive():
                p.kill()
                p.join(1)
    hist = collections.Counter()
    errors = collections.Counter()
    samples = {}
    calls, last = 0, 0
    for o in outs:
        calls += o["calls"]
        last = max(last, o["last"])
        hist.update(o["hist"])
        errors.update(o["errors"])
        for k, v in o["samples"].items():
            samples.setdefault(k, v)
    elapsed = max(0, last - measure) / 1e9
    rec = {
        "start": start_wall.isoformat(),
        "calls": calls,
        "errors": sum(errors.values()),
        "errors_by_kind": dict(errors),
        "error_samples": samples,
        "elapsed_s": elapsed,
        "calls_per_sec": calls / elapsed if elapsed > 0 else 0,
        "latency_ns": sorted([int(v), n] for v, n in hist.items()),
    }
    if cpu is not None:
        rec["cpu_s"] = round(cpu, 4)
    return rec


def parse_pairs(values, what):
    out = []
    for v in values:
        name, sep, rest = v.partition("=")
        if not sep or not name or not rest:
            sys.exit("load.py: bad %s %r: want NAME=VALUE" % (what, v))
        out.append((name, rest))
    return out


def main():
    ap = argparse.ArgumentParser(description="Python Pyro4 clients making blob(SerializedBlob) calls, rounds interleaved over targets")
    ap.add_argument("--target", action="append", default=[], help="NAME=PYRO:echo@HOST:PORT (repeatable, ratios are to the first)")
    ap.add_argument("--procs", type=int, default=4, help="client processes per round (default 4)")
    ap.add_argument("--threads", type=int, default=4, help="threads per process, each with its own proxy (default 4)")
    ap.add_argument("--payload", type=int, default=1024, help="length of the str x in bytes (default 1024)")
    ap.add_argument("--duration", type=float, default=3.0, help="measured seconds per round (default 3)")
    ap.add_argument("--warmup", type=float, default=0.5, help="unmeasured seconds before (default 0.5)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    ap.add_argument("--timeout", type=float, default=10.0, help="Pyro4 COMMTIMEOUT of the clients (default 10)")
    ap.add_argument("--cpu", action="append", default=[], help="NAME=PID[,PID...]: processes whose CPU per call to report for target NAME")
    ap.add_argument("--json", required=True, help="output file")
    args = ap.parse_args()
    targets = parse_pairs(args.target, "--target")
    if not targets:
        sys.exit("load.py: no --target")
    cpu = {}
    for name, pids in parse_pairs(args.cpu, "--cpu"):
        cpu[name] = [int(p) for p in pids.split(",")]
    Pyro4.config.SERIALIZER = "serpent"  # Pyro4's default, named for the record
    # SIGTERM unwinds like an exception, so that run_round stops its client processes.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))

    ctx = multiprocessing.get_context("fork")
    t_start = time.monotonic()
    wall_start = datetime.datetime.now(datetime.timezone.utc)
    rounds = {name: [] for name, _ in targets}
    order = []
    for r in range(1, args.rounds + 1):
        for t in targets:
            rec = run_round(ctx, t, cpu.get(t[0]), args)
            rec["round"] = r
            rounds[t[0]].append(rec)
            order.append({"target": t[0], "round": r})
            print("  round %d %-18s %8.0f calls/s %6d errors" % (r, t[0], rec["calls_per_sec"], rec["errors"]), file=sys.stderr, flush=True)
    out = {
        "start": wall_start.isoformat(),
        "elapsed_s": time.monotonic() - t_start,
        "description": "blob(SerializedBlob) from Python Pyro4 %s clients, x = %d B str, serpent, %d procs × %d threads per target, %gs × %d rounds (each after %gs warmup)"
        % (Pyro4.__version__, args.payload, args.procs, args.threads, args.duration, args.rounds, args.warmup),
        "config": {
            "procs": args.procs, "threads": args.threads, "payload_bytes": args.payload, "serializer": "serpent",
            "duration_s": args.duration, "warmup_s": args.warmup, "rounds": args.rounds, "timeout_s": args.timeout,
            "pyro4": Pyro4.__version__, "python": sys.version.split()[0], "cpu_pids": cpu,
        },
        "order": order,
        "targets": [{"name": n, "addr": u, "cpu_sampled": n in cpu, "rounds": rounds[n]} for n, u in targets],
    }
    with open(args.json, "w") as f:
        json.dump(out, f, indent=1)
    failed = sum(rec["errors"] for rs in rounds.values() for rec in rs)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
