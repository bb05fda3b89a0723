#!/usr/bin/env python3
"""memcached and tern under memtier_benchmark, as users measure them (issue 15's table).

memtier_benchmark is not built by this repository: pass one you built (MEMTIER_BIN). For each
server thread count, both servers start fresh with the same `-t`, pinned to SERVER_CPUS, and
memtier (pinned to CLIENT_CPUS) runs the same load against each in turn, ROUNDS times,
alternating which goes first. Prints ops/s, p99 and server CPU per request and CPUs busy.

    MEMTIER_BIN=... python3 benches/memtier_side.py --threads 1,3,6 --server-cpus 0-5 \\
        --client-cpus 6-15

With `--threads 1,3,6` the servers get the first N CPUs of SERVER_CPUS. Standard library only.
"""

import argparse
import os
import socket
import statistics
import time
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import servers  # noqa: E402


def memtier(binary, port, args, cpus, timeout):
    cmd = [binary, "-s", "127.0.0.1", "-p", str(port), "-P", "memcache_text",
           "--hide-histogram"] + args
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=timeout, preexec_fn=servers.pinned_to(cpus))
    if done.returncode != 0:
        raise RuntimeError(f"memtier failed ({' '.join(cmd)}):\n{done.stdout}{done.stderr}")
    # Totals  ops/s  hits/s  misses/s  avg-lat  p50  p99  p99.9  KB/s
    for line in done.stdout.splitlines():
        if line.startswith("Totals"):
            f = line.split()
            return {"ops": float(f[1]), "p50": float(f[5]), "p99": float(f[6]),
                    "p999": float(f[7])}
    raise RuntimeError(f"no Totals line in memtier's output:\n{done.stdout}")


def served(port):
    """Requests the server has answered so far (cmd_get + cmd_set): memtier's own ops/s is over
    its own clock, so requests and CPU are both taken from the server around each run."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        st = servers.stats(sock.makefile("rb"), sock)
    return int(st["cmd_get"]) + int(st["cmd_set"])


def main():
    servers.install_signal_handlers()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--memtier-bin", default=os.environ.get("MEMTIER_BIN", "memtier_benchmark"))
    ap.add_argument("--tern-bin", default=servers.default_tern_bin())
    ap.add_argument("--memcached-bin", default=servers.MEMCACHED_BIN)
    ap.add_argument("--threads", default="1,3,6", help="server -t values")
    ap.add_argument("--server-cpus", default="0-5")
    ap.add_argument("--client-cpus", default="6-15")
    ap.add_argument("--client-threads", type=int, default=0, help="0: one per client CPU")
    ap.add_argument("--conns", type=int, default=20, help="connections per memtier thread")
    ap.add_argument("--ratio", default="1:10")
    ap.add_argument("--data-size", type=int, default=100)
    ap.add_argument("--keys", type=int, default=100000)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--port", type=int, default=22430)
    a = ap.parse_args()
    server_cpus = sorted(servers.cpu_list(a.server_cpus))
    client_threads = a.client_threads or len(servers.cpu_list(a.client_cpus))
    load = ["--ratio", a.ratio, "-d", str(a.data_size), "--key-maximum", str(a.keys),
            "--key-pattern", "R:R", "-t", str(client_threads), "-c", str(a.conns)]
    rows = []
    try:
        for n in (int(t) for t in a.threads.split(",")):
            cpus = ",".join(str(c) for c in server_cpus[:n])
            pair = [servers.Server(name, binary, a.port + i, threads=n, memory_mb=1024,
                                   extra_args=["-c", "4096"], cpus=cpus)
                    for i, (name, binary) in enumerate((("memcached", a.memcached_bin),
                                                        ("tern", a.tern_bin)))]
            res = {"memcached": [], "tern": []}
            try:
                for srv in pair:
                    srv.start()
                    # Fill the key space (sets only), so that gets hit as in a warm cache.
                    memtier(a.memtier_bin, srv.port, [
                        "--ratio", "1:0", "-d", str(a.data_size), "--key-maximum", str(a.keys),
                        "--key-pattern", "P:P", "-t", "2", "-c", "10",
                        "--requests", "allkeys"], a.client_cpus, 120)
                for rnd in range(a.rounds):
                    for srv in (pair if rnd % 2 == 0 else pair[::-1]):
                        before, reqs, t0 = srv.cpu_seconds(), served(srv.port), time.monotonic()
                        r = memtier(a.memtier_bin, srv.port,
                                    load + ["--test-time", str(a.duration)], a.client_cpus,
                                    a.duration + 60)
                        wall = time.monotonic() - t0
                        after, reqs = srv.cpu_seconds(), served(srv.port) - reqs
                        if before is None or after is None:
                            raise RuntimeError(f"{srv.name} died:\n{srv.log_tail()}")
                        cpu = sum(after) - sum(before)
                        r["cpu_us"] = cpu * 1e6 / max(1, reqs)
                        r["busy"] = cpu / wall
                        res[srv.name].append(r)
                        print(f"memtier_side: -t {n} round {rnd + 1} {srv.name:9} "
                              f"{r['ops']:>10,.0f} ops/s p99 {r['p99']:.3f} ms "
                              f"cpu {r['cpu_us']:.2f} us/op busy {r['busy']:.2f}",
                              file=sys.stderr, flush=True)
            finally:
                for srv in pair:
                    srv.stop()
            rows.append((n, res))
    finally:
        servers.stop_all()

    med = statistics.median
    print(f"\nmemtier {' '.join(load)} --test-time {a.duration}; servers on the first -t CPUs of "
          f"{a.server_cpus}, memtier on {a.client_cpus}; medians of {a.rounds} rounds")
    print("| -t | memcached ops/s | tern ops/s | tern/memcached | tern ops/s per thread "
          "| memcached p99 ms | tern p99 ms | memcached CPU us/op | tern CPU us/op "
          "| memcached busy | tern busy |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, res in rows:
        m, t = res["memcached"], res["tern"]
        ratio = med([y["ops"] / x["ops"] for x, y in zip(m, t)])
        print(f"| {n} | {med([x['ops'] for x in m]):,.0f} | {med([x['ops'] for x in t]):,.0f} "
              f"| {ratio:.2f} | {med([x['ops'] for x in t]) / n:,.0f} "
              f"| {med([x['p99'] for x in m]):.3f} | {med([x['p99'] for x in t]):.3f} "
              f"| {med([x['cpu_us'] for x in m]):.2f} | {med([x['cpu_us'] for x in t]):.2f} "
              f"| {med([x['busy'] for x in m]):.2f} | {med([x['busy'] for x in t]):.2f} |")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        print(f"memtier_side: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
