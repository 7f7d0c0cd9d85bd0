"""A real Pyro4 client for the soak run (bench/cmd/soak): calls the soak daemons'
objects (soak_daemon.py) through the dispatcher in a loop until --duration ends or
SIGTERM, every call carrying a payload unique to this client and call, every reply
checked against its call.

Usage: soak_client.py --addr HOST:PORT --name NAME --serializer serpent|json|marshal
                      [--hmac KEY] [--session] [--duration S] [--pause S] [--big BYTES]
                      [--big-every S] [--reconnect-every N] [--seed N] [--victim]

What it calls, in a random mix: echo(x) of 30 B to 2 KiB, echo(x) of 64 to 512 KiB
(spliced by the dispatcher), mark(tag) oneway (then, with --session, seen(tag) must be
true: oneway calls arrive in order on one connection), batches of echo and mark through
Pyro4.batch (serpent and json: Pyro4 4.82 cannot batch in marshal), item streams of
soak.stream.gen, blob(SerializedBlob) and every --big-every seconds an echo of --big
bytes (8 MiB). With --hmac KEY its proxies sign with that key. With --reconnect-every N
it releases its proxies after about every N calls (between N/2 and 3N/2), as clients that
make a proxy per task do: their next calls connect again.

Output, one JSON object a line on stdout, times in seconds since the epoch:
  {"event": "fail", "t0", "t1", "last_ok", "client", "op", "class", "reason"}   a failed
      call (class "Mismatch": a reply that is not the call's own); last_ok: when the
      previous successful call ended (0: none)
  {"event": "back", "t0", "t1", "client", "op"}    the first success after failures
  {"event": "summary", "client", "calls", "ok", "failed", "ops", "bytes"}   at the end
--victim only makes --big echo calls and prints nothing: the soak kills it mid-call.
"""
import argparse
import json
import random
import signal
import string
import sys
import time

import Pyro4
import Pyro4.core
import Pyro4.errors

Pyro4.config.COMMTIMEOUT = 30.0  # a hang shows as a TimeoutError, which the soak counts as a failure
BLOB_INFO = "pyro-dispatch.bench"
ALPHABET = string.ascii_letters + string.digits + "-_"  # no escaping in any serializer
STOP = {"now": False}


class Mismatch(Exception):
    """a reply that is not the call's own"""


def stop(signum, frame):
    STOP["now"] = True


class Client(object):
    def __init__(self, opts):
        self.o = opts
        self.rng = random.Random(opts.seed)
        self.noise = "".join(self.rng.choice(ALPHABET) for _ in range(4096))
        self.noise = self.noise * (2 * max(opts.big, 1 << 20) // len(self.noise) + 2)
        self.n = 0
        self.calls = self.ok = self.failed = self.bytes = 0
        self.ops = {}
        self.failing = False
        self.last_ok = 0.0
        self.echo = self.stream = None

    def proxies(self):
        if self.echo is None:
            self.echo = Pyro4.Proxy("PYRO:soak.echo@" + self.o.addr)
            self.stream = Pyro4.Proxy("PYRO:soak.stream@" + self.o.addr)
            for p in (self.echo, self.stream):
                p._pyroSerializer = self.o.serializer
                if self.o.hmac:
                    p._pyroHmacKey = self.o.hmac.encode()
        return self.echo, self.stream

    def release(self):
        for p in (self.echo, self.stream):
            if p is not None:
                p._pyroRelease()
        self.echo = self.stream = None

    def tag(self):
        self.n += 1
        return "%s-%09d-" % (self.o.name, self.n)

    def payload(self, size):
        """a str of size bytes: this call's tag at its start and every KiB, random text between"""
        tag = self.tag()
        size = max(size, len(tag))
        off = self.rng.randrange(len(self.noise) - size)
        parts = []
        for k in range(0, size, 1024):
            end = min(k + 1024, size)
            parts.append((tag + self.noise[off + k + len(tag):off + end])[:end - k])
        return "".join(parts)

    def check(self, got, want, what):
        if got != want:
            raise Mismatch("%s: got %r (%s), want %r (%d bytes)" % (
                what, str(got)[:60], type(got).__name__, want[:60], len(want)))

    def op_echo(self, echo, stream):
        x = self.payload(self.rng.randint(30, 2048))
        self.check(echo.echo(x), x, "echo")
        return len(x)

    def op_medium(self, echo, stream):
        x = self.payload(self.rng.randint(64 << 10, 512 << 10))
        self.check(echo.echo(x), x, "echo")
        return len(x)

    def op_big(self, echo, stream):
        x = self.payload(self.o.big)
        self.check(echo.echo(x), x, "echo big")
        return len(x)

    def op_oneway(self, echo, stream):
        t = self.tag()
        echo.mark(t)
        if self.o.session:
            self.check(echo.seen(t), True, "seen after mark " + t)
        return len(t)

    def op_batch(self, echo, stream):
        xs = [self.payload(self.rng.randint(30, 512)) for _ in range(self.rng.randint(2, 5))]
        b = Pyro4.batch(echo)
        for x in xs:
            b.echo(x)
        b.mark(self.tag())
        got = list(b())
        self.check(got, xs + [None], "batch")
        return sum(len(x) for x in xs)

    def op_stream(self, echo, stream):
        t = self.tag()
        n = self.rng.randint(3, 20)
        got = list(stream.gen(t, n))
        self.check(got, ["%s:%d" % (t, i) for i in range(n)], "item stream")
        return n * len(t)

    def op_blob(self, echo, stream):
        x = self.payload(self.rng.randint(30, 4096))
        self.check(echo.blob(Pyro4.core.SerializedBlob(BLOB_INFO, (x,))), x, "blob")
        return len(x)

    def reconnect_after(self):
        """calls until the proxies are released next (-1: never)"""
        n = self.o.reconnect_every
        return self.rng.randint(max(n // 2, 1), n * 3 // 2) if n > 0 else -1

    def emit(self, **kw):
        kw["client"] = self.o.name
        sys.stdout.write(json.dumps(kw) + "\n")
        sys.stdout.flush()

    def run(self):
        ops = [("echo", self.op_echo, 40), ("medium", self.op_medium, 6), ("oneway", self.op_oneway, 10),
               ("stream", self.op_stream, 10), ("blob", self.op_blob, 12)]
        if self.o.serializer != "marshal":
            ops.append(("batch", self.op_batch, 10))
        names, funcs, weights = zip(*ops)
        end = time.time() + self.o.duration
        reconnect = self.reconnect_after()
        next_big = time.time() + self.rng.uniform(0, self.o.big_every)
        while not STOP["now"] and time.time() < end:
            if self.o.victim:
                name, f = "big", self.op_big
            elif self.o.big and time.time() >= next_big:
                name, f = "big", self.op_big
                next_big = time.time() + self.o.big_every
            else:
                i = self.rng.choices(range(len(ops)), weights)[0]
                name, f = names[i], funcs[i]
            t0 = time.time()
            try:
                echo, stream = self.proxies()
                size = f(echo, stream)
            except Exception as e:
                t1 = time.time()
                self.calls += 1
                self.failed += 1
                self.failing = True
                self.release()
                if not self.o.victim:
                    cls = type(e)
                    self.emit(event="fail", t0=t0, t1=t1, last_ok=self.last_ok, op=name,
                              reason=str(e)[:400], **{"class": cls.__module__ + "." + cls.__name__})
                time.sleep(0.02)
                continue
            t1 = self.last_ok = time.time()
            self.calls += 1
            self.ok += 1
            self.bytes += size
            self.ops[name] = self.ops.get(name, 0) + 1
            if self.failing:
                self.failing = False
                self.emit(event="back", t0=t0, t1=t1, op=name)
            reconnect -= 1
            if reconnect == 0:
                self.release()
                reconnect = self.reconnect_after()
            if self.o.pause:
                time.sleep(self.o.pause)
        self.release()
        if not self.o.victim:
            self.emit(event="summary", calls=self.calls, ok=self.ok, failed=self.failed, ops=self.ops, bytes=self.bytes)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--serializer", default="serpent", choices=("serpent", "json", "marshal"))
    ap.add_argument("--hmac")
    ap.add_argument("--session", action="store_true", help="the listener is in session mode")
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--pause", type=float, default=0.005)
    ap.add_argument("--big", type=int, default=8 << 20)
    ap.add_argument("--big-every", type=float, default=20.0)
    ap.add_argument("--reconnect-every", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--victim", action="store_true")
    opts = ap.parse_args()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    Client(opts).run()


if __name__ == "__main__":
    main()
