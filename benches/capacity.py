#!/usr/bin/env python3
"""Capacity benchmark: how many items fit in `-m 64` before the server evicts, and at what RSS.

For each value size (10, 100, 1000 bytes) and each server (memcached and tern, whichever exist), a
fresh server is started with `-m 64`, and `key:1`, `key:2`, ... are written with `set ... noreply`
in pipelined batches. After every batch a `stats` on the same connection (so it is answered after
the batch is processed) is checked; at the first batch after which `evictions` > 0, `curr_items`
and the server's VmRSS from /proc/<pid>/status are recorded. Once the server is full, every new set
evicts one item, so `curr_items` at that point is the server's capacity.

Usage (from the repository root):

    python3 benches/capacity.py                        # memcached, and tern if built
    TERN_BIN=/usr/bin/memcached python3 benches/capacity.py   # validate: ratios ~1.0
    python3 benches/capacity.py --sizes 100 --batch 1000

memcached 1.6.18 (Debian) gives 699,008 / 349,504 / 56,640 items at about 72 MB RSS.
Standard library only, so it runs without a virtualenv. Every server it starts is stopped, also on
error or Ctrl-C.
"""

import argparse
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import servers  # noqa: E402

# Targets from the item-store issue: tern / memcached.
ITEM_TARGETS = {10: 2.0, 100: 1.5, 1000: 1.1}
RSS_TARGET = 1.1
# Never write more than this many times the keys whose bare key+value bytes would fill -m: no
# server holds that many, so one that has not evicted by then is not honouring -m (and must not
# make this script loop for ever).
MAX_KEYS_FACTOR = 4


def fill_until_eviction(server, value_size, batch, memory_mb, use_noreply, time_limit):
    """Writes key:1, key:2, ... until stats shows evictions; returns a result dict."""
    value = (b"abcdefghijklmnopqrstuvwxyz" * (value_size // 26 + 1))[:value_size]
    suffix = b" 0 0 %d%s\r\n" % (value_size, b" noreply" if use_noreply else b"")
    block = value + b"\r\n"
    max_keys = MAX_KEYS_FACTOR * memory_mb * 1024 * 1024 // (value_size + len("key:1000000"))
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        f = sock.makefile("rb")
        written = 0
        while True:
            if written >= max_keys:
                raise RuntimeError(
                    f"{server.name}: wrote {written} keys of {value_size} B and still no eviction"
                )
            if time.monotonic() - started > time_limit:
                raise RuntimeError(f"{server.name}: no eviction within {time_limit}s")
            parts = []
            for i in range(written + 1, written + batch + 1):
                parts.append(b"set key:%d" % i)
                parts.append(suffix)
                parts.append(block)
            sock.sendall(b"".join(parts))
            if not use_noreply:
                for _ in range(batch):
                    line = f.readline()
                    if line != b"STORED\r\n":
                        raise RuntimeError(f"{server.name}: set answered {line!r}")
            written += batch
            st = servers.stats(f, sock)
            if int(st.get("total_items", written)) != written:
                # noreply hides errors; total_items counting every store is the cross-check.
                raise RuntimeError(
                    f"{server.name}: wrote {written} items but total_items is "
                    f"{st.get('total_items')} (did some sets fail silently?)"
                )
            if int(st.get("evictions", 0)) > 0:
                return {
                    "items": int(st["curr_items"]),
                    "written": written,
                    "evictions": int(st["evictions"]),
                    "bytes": int(st.get("bytes", 0)),
                    "rss_kb": server.rss_kb(),
                    "secs": time.monotonic() - started,
                }


def ratio(a, b):
    return (a / b) if (a is not None and b) else None


def fmt_ratio(r, target=None):
    if r is None:
        return "-"
    text = f"{r:.3f}x"
    if target is not None:
        text += f" ({'ok' if r >= target else 'below'} >= {target}x)"
    return text


def fmt_mb(kb):
    """VmRSS as /proc reports it (kB = KiB), with MiB beside it."""
    return "-" if kb is None else f"{kb:,} kB ({kb / 1024:.1f} MiB)"


def main():
    # First thing: a Ctrl-C at any point must stop every server started so far.
    servers.install_signal_handlers()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10,100,1000", help="value sizes, comma-separated")
    ap.add_argument("--memory", type=int, default=64, help="-m for every server (MB)")
    ap.add_argument("--batch", type=int, default=2000, help="keys between stats checks")
    ap.add_argument("--port", type=int, default=22420, help="first loopback port to use")
    ap.add_argument("--tern-bin", default=servers.default_tern_bin())
    ap.add_argument("--memcached-bin", default=servers.MEMCACHED_BIN)
    ap.add_argument("--only", choices=["memcached", "tern"], help="measure one server only")
    ap.add_argument("--replies", action="store_true",
                    help="read a STORED per set instead of using noreply")
    ap.add_argument("--time-limit", type=float, default=300, help="seconds per fill, at most")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    candidates = []
    if args.only != "tern":
        candidates.append(("memcached", args.memcached_bin))
    if args.only != "memcached":
        candidates.append(("tern", args.tern_bin))
    present = []
    for name, binary in candidates:
        if os.path.isfile(binary) and os.access(binary, os.X_OK):
            present.append((name, binary))
        else:
            print(f"capacity: {name} not found at {binary}; skipping it", file=sys.stderr)
    if not present:
        print("capacity: no server to measure", file=sys.stderr)
        return 1

    results = {}  # (name, size) -> result
    failures = 0
    port = args.port
    try:
        for size in sizes:
            for name, binary in present:
                port += 1
                try:
                    with servers.Server(name, binary, port - 1, memory_mb=args.memory) as srv:
                        r = fill_until_eviction(srv, size, args.batch, args.memory,
                                                not args.replies, args.time_limit)
                except (RuntimeError, OSError) as e:
                    # Measure everything else; the table marks this cell and the exit status is 1.
                    print(f"capacity: {name} {size} B: FAILED: {e}", file=sys.stderr)
                    failures += 1
                    continue
                results[(name, size)] = r
                print(f"capacity: {name:9} {size:5} B values: {r['items']:>9,} items at first "
                      f"eviction ({r['written']:,} written), RSS {fmt_mb(r['rss_kb'])}, "
                      f"{r['secs']:.1f}s", file=sys.stderr)
    finally:
        servers.stop_all()

    names = [n for n, _ in present]
    print()
    print(f"Items stored in -m {args.memory} before the first eviction (keys key:1, key:2, ...)")
    print()
    header = "| value | " + " | ".join(f"{n} items | {n} RSS" for n in names)
    if len(names) == 2:
        header += " | items tern/memcached | RSS tern/memcached"
    print(header + " |")
    print("|" + "---|" * (1 + 2 * len(names) + (2 if len(names) == 2 else 0)))
    for size in sizes:
        row = [f"{size} B"]
        for n in names:
            r = results.get((n, size))
            row += [f"{r['items']:,}" if r else "failed", fmt_mb(r["rss_kb"]) if r else "-"]
        if len(names) == 2:
            m, t = results.get(("memcached", size)), results.get(("tern", size))
            row.append(fmt_ratio(ratio(t and t["items"], m and m["items"]), ITEM_TARGETS.get(size)))
            r_rss = ratio(t and t["rss_kb"], m and m["rss_kb"])
            row.append("-" if r_rss is None else
                       f"{r_rss:.3f}x ({'ok' if r_rss <= RSS_TARGET else 'above'} <= {RSS_TARGET}x)")
        print("| " + " | ".join(row) + " |")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
