#!/usr/bin/env python3
"""Soak: a bounded mixed workload against tern at `-m 64`, on loopback, that stops by itself.

    python3 benches/soak.py [--phase-seconds 75] [--memory-mb 64] [--bin target/release/tern]

One client (Python standard library only) runs get / set / delete with value sizes from 1 B to
512 KB and TTLs, in two phases whose size mixes differ:

  A  mostly small values: 90% of sizes log-uniform in 1 B - 2 KB, 10% in 2 KB - 512 KB;
  B  mostly large values: 90% log-uniform in 32 KB - 512 KB, 10% in 1 B - 2 KB.

Ops: 65% get (a miss is filled with a set, as a cache-aside client does), 20% set, 5% delete,
10% set with a TTL of 1-4 s. Keys are drawn uniformly from a key space sized to about 1.5x the
memory limit for the phase's mix, so the server must evict.

It asserts, and prints a table:
- RSS (VmRSS, sampled every 2 s) stays under `-m` plus a fixed overhead (`--overhead-mb`);
- no calcification: after the mix shifts from A to B, the hit rate over the last half of phase B
  is within 5% (relative) of a fresh server's that only ever saw mix B, over the same window;
- nothing is lost or corrupted: every hit's value has the CRC32 and length of the last value
  the client stored for that key (a stale or foreign value is corruption), and the misses of
  keys the client believes live (set, not deleted, not expired) are no more than the
  evictions the server reports (each eviction explains at most one such miss), counting the
  items dropped by slab page moves (`slab_reassign_evictions_nomem`) where the server reports
  them (tern does; a server that does not gets the bound printed, not asserted).
Exit status 0 when all hold, 1 otherwise.
"""

import argparse
import math
import os
import random
import socket
import sys
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import servers  # noqa: E402

MAX_VALUE = 512 * 1024
# The bytes every value is cut from (at a per-write offset), so values cost no Python time.
POOL = random.Random(7).randbytes(MAX_VALUE + 65536)

MIX_A = [(0.9, 1, 2048), (0.1, 2048, MAX_VALUE)]
MIX_B = [(0.9, 32 * 1024, MAX_VALUE), (0.1, 1, 2048)]


def mean_size(mix):
    """Mean of the mix's log-uniform sizes (for sizing the key space)."""
    total = 0.0
    for weight, lo, hi in mix:
        total += weight * ((hi - lo) / math.log(hi / lo) if hi > lo else lo)
    return total


def draw_size(rng, mix):
    r = rng.random()
    for weight, lo, hi in mix:
        if r < weight:
            return int(math.exp(rng.uniform(math.log(lo), math.log(hi))))
        r -= weight
    return 1


class Client:
    """A minimal text-protocol client with its own reply buffer."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()

    def _fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise RuntimeError("server closed the connection")
        self.buf += chunk

    def line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                out = bytes(self.buf[:i])
                del self.buf[: i + 2]
                return out
            self._fill()

    def exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def set(self, key, value, ttl):
        self.sock.sendall(b"set %s 0 %d %d\r\n" % (key, ttl, len(value)) + value + b"\r\n")
        return self.line()

    def get(self, key):
        self.sock.sendall(b"get %s\r\n" % key)
        head = self.line()
        if head == b"END":
            return None
        parts = head.split()
        if parts[0] != b"VALUE" or parts[1] != key:
            raise RuntimeError(f"unexpected reply {head!r}")
        value = self.exact(int(parts[3]) + 2)[:-2]
        if self.line() != b"END":
            raise RuntimeError("no END after the value")
        return value

    def delete(self, key):
        self.sock.sendall(b"delete %s\r\n" % key)
        return self.line()

    def stats(self):
        self.sock.sendall(b"stats\r\n")
        out = {}
        while True:
            line = self.line()
            if line == b"END":
                return out
            _, name, value = line.decode().split(" ", 2)
            out[name] = value


class Run:
    """The client's model of what it stored, and the counts it checks."""

    def __init__(self, client, seed):
        self.c = client
        self.rng = random.Random(seed)
        self.model = {}  # key -> (crc, length, expires_at or None)
        self.gets = self.hits = self.corrupt = self.lost = self.oom = 0

    def write(self, key, mix, ttl):
        size = draw_size(self.rng, mix)
        off = self.rng.randrange(65536)
        value = POOL[off:off + size]
        reply = self.c.set(key, value, ttl)
        if reply == b"STORED":
            # The server's clock ticks in whole seconds: a TTL'd key may go up to 1 s early.
            expires = time.monotonic() + ttl - 1.5 if ttl else None
            self.model[key] = (zlib.crc32(value), size, expires)
        elif reply.startswith(b"SERVER_ERROR out of memory"):
            # The old value may stay or go (memcached drops it): either is accepted.
            self.oom += 1
            self.model[key] = ("oom", self.model.get(key))
        else:
            raise RuntimeError(f"set {key!r}: {reply!r}")

    def step(self, mix, keys, count):
        key = b"k%d" % self.rng.randrange(keys)
        r = self.rng.random()
        if r < 0.65:
            value = self.c.get(key)
            if count:
                self.gets += 1
            known = self.model.get(key)
            if known and known[0] == "oom":
                prev = known[1]
                if value is not None and (not prev or (zlib.crc32(value), len(value)) != prev[:2]):
                    self.corrupt += 1
                self.model.pop(key, None)
                if value is None:
                    self.write(key, mix, 0)
                elif count:
                    self.hits += 1
            elif value is None:
                if known and (known[2] is None or time.monotonic() < known[2]):
                    self.lost += 1  # must be explained by an eviction
                self.model.pop(key, None)
                self.write(key, mix, 0)
            else:
                if count:
                    self.hits += 1
                if not known or (zlib.crc32(value), len(value)) != known[:2]:
                    # A value the client did not store last under this key (or a deleted one).
                    self.corrupt += 1
        elif r < 0.85:
            self.write(key, mix, 0)
        elif r < 0.90:
            self.c.delete(key)
            self.model.pop(key, None)
        else:
            self.write(key, mix, self.rng.randint(1, 4))


def phase(run, server, mix, keys, seconds, rss, t0, label, count_from):
    end = time.monotonic() + seconds
    count_at = time.monotonic() + seconds * count_from
    next_sample = time.monotonic()
    while time.monotonic() < end:
        for _ in range(50):
            run.step(mix, keys, time.monotonic() >= count_at)
        if time.monotonic() >= next_sample:
            rss.append((label, time.monotonic() - t0, server.rss_kb()))
            next_sample += 2.0
        if not server.alive():
            raise RuntimeError(f"{server.name} exited:\n{server.log_tail()}")


def keyspace(mix, memory_mb):
    return int(1.5 * memory_mb * 1024 * 1024 / mean_size(mix))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=servers.default_tern_bin())
    ap.add_argument("--memory-mb", type=int, default=64)
    ap.add_argument("--phase-seconds", type=float, default=75.0)
    ap.add_argument("--overhead-mb", type=int, default=40)
    ap.add_argument("--port", type=int, default=random.randint(20000, 60000))
    args = ap.parse_args()
    servers.install_signal_handlers()
    keys_a, keys_b = keyspace(MIX_A, args.memory_mb), keyspace(MIX_B, args.memory_mb)
    print(f"soak: {args.bin} -m {args.memory_mb}, phases of {args.phase_seconds:.0f} s, "
          f"key spaces A {keys_a} / B {keys_b}")
    rss = []
    t0 = time.monotonic()
    ok = True
    with servers.Server("tern", args.bin, args.port, memory_mb=args.memory_mb) as srv:
        run = Run(Client(args.port), seed=1)
        phase(run, srv, MIX_A, keys_a, args.phase_seconds, rss, t0, "A", 1.0)
        run.gets = run.hits = 0
        phase(run, srv, MIX_B, keys_b, args.phase_seconds, rss, t0, "B (shifted)", 0.5)
        shifted = (run.hits / max(run.gets, 1), run.gets)
        st = run.c.stats()
        shifted_run = run
    with servers.Server("tern-fresh", args.bin, args.port + 1, memory_mb=args.memory_mb) as srv:
        fresh_run = Run(Client(args.port + 1), seed=2)
        fresh_rss = []
        phase(fresh_run, srv, MIX_B, keys_b, args.phase_seconds, fresh_rss, t0, "B (fresh)", 0.5)
        fresh = (fresh_run.hits / max(fresh_run.gets, 1), fresh_run.gets)
        fst = fresh_run.c.stats()

    limit_kb = (args.memory_mb + args.overhead_mb) * 1024
    print("\nRSS over time (MB), sampled every 2 s; every 5th sample shown:")
    print("| phase | t (s) | RSS (MB) |")
    print("|-------|-------|----------|")
    for i, (label, t, kb) in enumerate(rss + fresh_rss):
        if i % 5 == 0:
            print(f"| {label} | {t:.0f} | {kb / 1024:.1f} |")
    peak = max(kb for _, _, kb in rss if kb)
    peak_fresh = max(kb for _, _, kb in fresh_rss if kb)
    print(f"\npeak RSS: {peak / 1024:.1f} MB (shifted server), {peak_fresh / 1024:.1f} MB (fresh); "
          f"bound -m + {args.overhead_mb} MB = {limit_kb / 1024:.0f} MB")
    ok &= peak <= limit_kb and peak_fresh <= limit_kb
    rel = abs(shifted[0] - fresh[0]) / max(fresh[0], 1e-9)
    print(f"hit rate, last half of mix B: after the shift {shifted[0]:.3f} ({shifted[1]} gets), "
          f"fresh {fresh[0]:.3f} ({fresh[1]} gets): relative difference {rel:.3f} (bound 0.05)")
    ok &= rel <= 0.05
    for name, r, s in (("shifted", shifted_run, st), ("fresh", fresh_run, fst)):
        ev = int(s["evictions"])
        moved = s.get("slab_reassign_evictions_nomem")
        print(f"{name}: sets {s['cmd_set']}, evictions {ev}, expired_unfetched "
              f"{s['expired_unfetched']}, slabs_moved {s.get('slabs_moved', '?')}, "
              f"page-move evictions {moved or 'not reported'}, page-move rescues "
              f"{s.get('slab_reassign_rescues', 'not reported')} (+ chunks "
              f"{s.get('slab_reassign_chunk_rescues', 'not reported')}), "
              f"out-of-memory replies {r.oom}, "
              f"misses of live keys {r.lost}, corrupt values {r.corrupt}")
        ok &= r.corrupt == 0
        if moved is not None:
            ok &= r.lost <= ev + int(moved)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
