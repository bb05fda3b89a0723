#!/usr/bin/env python3
"""Memory per connection: memcached and tern side by side, 10,000 and 50,000 idle connections.

For each server and each connection count, a fresh server is started on loopback with the same
`-t` and `-c` (connections + headroom), one key is stored, one connection per worker thread does a
get and closes (so each worker has allocated what it keeps whatever its connection count: its
buffers, its allocator arena), and then:

1. VmRSS is read from /proc/<pid>/status (the start);
2. the connections are opened, each sends one `get` (a hit, 32-byte value) and reads its reply,
   and they stay open, idle; VmRSS is read again once all replies are in: (open - start) / N is
   the memory one idle connection costs;
3. every connection is closed, the script waits until the server's `curr_connections` is back to
   its control connection, lets it settle, and reads VmRSS a third time (after close): a server
   that gives memory back returns close to the start.

Client sockets are spread over helper processes (at most --per-process connections each, so no
process needs more descriptors than its hard RLIMIT_NOFILE allows) and each helper binds its
sockets to its own source address 127.0.0.x, so 50,000 connections to one port fit in the
ephemeral port range. The server needs one descriptor per connection: a count that exceeds the
hard RLIMIT_NOFILE this script can give it is skipped with the reason printed.

Usage (from the repository root):

    cargo build --release && python3 benches/connmem.py
    python3 benches/connmem.py --counts 10000 --threads 4
    TERN_BIN=/usr/bin/memcached python3 benches/connmem.py   # validation: both columns agree

Standard library only; loopback only; every server it starts is stopped, also on error or Ctrl-C.
"""

import argparse
import multiprocessing
import os
import resource
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import servers  # noqa: E402

KEY = b"connmem"
VALUE = b"v" * 32
GET = b"get " + KEY + b"\r\n"
HIT = b"VALUE " + KEY + b" 0 32\r\n" + VALUE + b"\r\nEND\r\n"
# Connections opened (and answered) before the next batch starts: keeps the server's accept
# queue short, so no SYN is dropped and retried a second later.
BATCH = 200
# Descriptors a helper process keeps for itself beyond its sockets.
FD_SPARE = 64


def raise_nofile():
    """Raises the soft RLIMIT_NOFILE to the hard limit; returns the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


def read_reply(sock, expected):
    got = b""
    while len(got) < len(expected):
        chunk = sock.recv(len(expected) - len(got))
        if not chunk:
            raise RuntimeError(f"server closed a connection; got {got!r}")
        got += chunk
    if got != expected:
        raise RuntimeError(f"unexpected reply {got!r}, wanted {expected!r}")


def helper(conn, port, source, count):
    """A client process: opens `count` connections from `source`, each doing one get; waits for
    'close', closes them all. Talks to the parent through `conn` (a Pipe end)."""
    socks = []
    try:
        raise_nofile()
        conn.recv()  # "open"
        while len(socks) < count:
            batch = []
            for _ in range(min(BATCH, count - len(socks))):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.settimeout(30)
                s.bind((source, 0))
                s.connect(("127.0.0.1", port))
                s.sendall(GET)
                batch.append(s)
            for s in batch:
                read_reply(s, HIT)
            socks.extend(batch)
        conn.send(("open", len(socks)))
        conn.recv()  # "close"
        for s in socks:
            s.close()
        socks = []
        conn.send(("closed", count))
    except Exception as e:  # reported to the parent, which stops the servers
        for s in socks:
            s.close()
        conn.send(("error", f"{source}: {e!r} after {len(socks)} connections"))


class Control:
    """The script's own connection to the server, for stats."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.file = self.sock.makefile("rb")

    def set_key(self):
        self.sock.sendall(b"set " + KEY + b" 0 0 32\r\n" + VALUE + b"\r\n")
        if self.file.readline() != b"STORED\r\n":
            raise RuntimeError("control: set failed")

    def curr_connections(self):
        return int(servers.stats(self.file, self.sock)["curr_connections"])

    def close(self):
        self.file.close()
        self.sock.close()


def wait_connections(control, want, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        now = control.curr_connections()
        if now == want:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"curr_connections stays at {now}, expected {want}")
        time.sleep(0.1)


def measure(srv, count, per_process, first_source, settle, threads):
    """One server, `count` connections: RSS start, open, after close (kB)."""
    ctx = multiprocessing.get_context("fork")
    control = Control(srv.port)
    control.set_key()
    # The control connection counts in curr_connections (memcached's also counts listeners).
    base = control.curr_connections()
    warm = [socket.create_connection(("127.0.0.1", srv.port), timeout=10) for _ in range(threads)]
    for s in warm:
        s.sendall(GET)
    for s in warm:
        read_reply(s, HIT)
        s.close()
    wait_connections(control, base)
    time.sleep(settle)
    start = srv.rss_kb()
    helpers = []
    try:
        left, index = count, 0
        while left > 0:
            n = min(per_process, left)
            parent_end, child_end = ctx.Pipe()
            source = f"127.0.{(first_source + index) // 250}.{(first_source + index) % 250 + 2}"
            proc = ctx.Process(target=helper, args=(child_end, srv.port, source, n), daemon=True)
            proc.start()
            helpers.append((proc, parent_end))
            left -= n
            index += 1
        for proc, end in helpers:
            end.send("open")
            kind, detail = end.recv()
            if kind != "open":
                raise RuntimeError(f"{srv.name}: {detail}")
        wait_connections(control, base + count)
        time.sleep(settle)
        opened = srv.rss_kb()
        for proc, end in helpers:
            end.send("close")
        for proc, end in helpers:
            kind, detail = end.recv()
            if kind != "closed":
                raise RuntimeError(f"{srv.name}: {detail}")
        wait_connections(control, base)
        time.sleep(settle)
        after = srv.rss_kb()
    finally:
        for proc, end in helpers:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
            end.close()
        control.close()
    return start, opened, after, index


def main():
    servers.install_signal_handlers()
    ap = argparse.ArgumentParser(description="memory per idle connection, memcached vs tern",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--tern-bin", default=servers.default_tern_bin(), help="TERN_BIN")
    ap.add_argument("--memcached-bin", default=servers.MEMCACHED_BIN, help="MEMCACHED_BIN")
    ap.add_argument("--counts", default=os.environ.get("COUNTS", "10000,50000"),
                    help="COUNTS: comma-separated connection counts")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("SERVER_THREADS", "4")),
                    help="SERVER_THREADS: -t for both servers")
    ap.add_argument("--port", type=int, default=int(os.environ.get("PORT", "22430")),
                    help="PORT: memcached listens here, tern on PORT+1")
    ap.add_argument("--per-process", type=int, default=10000,
                    help="connections per client helper process (each has its own source address)")
    ap.add_argument("--settle", type=float, default=1.0,
                    help="seconds to wait before each RSS reading")
    args = ap.parse_args()

    counts = [int(c) for c in args.counts.split(",") if c.strip()]
    hard = raise_nofile()
    per_process = max(1, min(args.per_process, hard - FD_SPARE))
    rows = []
    first_source = 0
    try:
        for count in counts:
            # -c plus what the servers keep for themselves (listeners, logs, epoll, pipes).
            needed = count + 200
            if needed > hard:
                print(f"connmem: skipping {count} connections: the servers need ~{needed} "
                      f"descriptors and the hard RLIMIT_NOFILE here is {hard}", file=sys.stderr)
                rows.append((count, None))
                continue
            pair = [
                servers.Server("memcached", args.memcached_bin, args.port, threads=args.threads,
                               extra_args=["-c", str(count + 100)]),
                servers.Server("tern", args.tern_bin, args.port + 1, threads=args.threads,
                               extra_args=["-c", str(count + 100)]),
            ]
            result = {}
            for srv in pair:
                print(f"connmem: {srv.name}, {count} connections", file=sys.stderr)
                with srv:
                    result[srv.name] = measure(srv, count, per_process, first_source,
                                               args.settle, args.threads)
                    first_source += result[srv.name][3]
                    if not srv.alive():
                        raise RuntimeError(f"{srv.name} died:\n{srv.log_tail()}")
            rows.append((count, result))
    finally:
        servers.stop_all()

    print()
    print(f"-t {args.threads}; each connection sent one get (a hit, 32-byte value) and stays idle; "
          f"VmRSS in kB; per connection = (open - start) / connections")
    print()
    print("| connections | server | RSS start | RSS open | per connection | RSS after close "
          "| after close / start |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for count, result in rows:
        if result is None:
            print(f"| {count:,} | both | skipped: hard RLIMIT_NOFILE {hard} | | | | |")
            continue
        for name in ("memcached", "tern"):
            start, opened, after, _ = result[name]
            per = (opened - start) * 1024 / count
            print(f"| {count:,} | {name} | {start:,} | {opened:,} | {per:,.0f} B "
                  f"| {after:,} | {after / start:.2f} |")
    return 0


if __name__ == "__main__":
    try:
        code = main()
    except (RuntimeError, OSError) as e:
        print(f"connmem: FAILED: {e}", file=sys.stderr)
        code = 1
    sys.exit(code)
