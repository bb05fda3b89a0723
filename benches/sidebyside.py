#!/usr/bin/env python3
"""Side-by-side throughput: memcached and tern, same flags, same load, interleaved rounds.

Builds tern (`cargo build --release`) and the load generator (`cargo bench --bench loadgen`),
then for every workload starts memcached and tern fresh on loopback with the same `-t` and `-m`,
prefills both with the workload's keys, and runs the load generator against each in alternation
(memcached then tern in odd rounds, tern then memcached in even rounds: the machine is shared and
noisy, and interleaving spreads the noise over both). It prints, per workload, the median ops/s of
each server, the median of the per-round ratios tern/memcached, the median p99 latencies, and each
server's VmRSS after its rounds.

Usage (from the repository root):

    python3 benches/sidebyside.py
    TERN_BIN=/usr/bin/memcached python3 benches/sidebyside.py     # validate: ratios ~1.0
    ROUNDS=5 DURATION=10 SERVER_THREADS=4 python3 benches/sidebyside.py --workloads get-heavy

Every option can also be given by environment variable (the upper-case name in --help).
Standard library only. Every server it starts is stopped, also on error or Ctrl-C.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import servers  # noqa: E402

# name -> (description, loadgen arguments)
WORKLOADS = {
    "get-heavy": (
        "1:10 set:get, 32 B values, 100k keys, 1 request in flight per connection",
        ["--ratio", "1:10", "--value-size", "32", "--keys", "100000", "--pipeline", "1"],
    ),
    "set-heavy": (
        "1:1 set:get, 100 B values, 100k keys, 1 request in flight per connection",
        ["--ratio", "1:1", "--value-size", "100", "--keys", "100000", "--pipeline", "1"],
    ),
    "multiget": (
        "gets only, 10 keys per get, 4 gets pipelined per connection, 32 B values, 100k keys",
        ["--ratio", "0:1", "--value-size", "32", "--keys", "100000", "--multiget", "10",
         "--pipeline", "4"],
    ),
}


def env(name, default):
    return os.environ.get(name, default)


def cargo(args, capture=False):
    """Runs cargo in the repository root; returns stdout when capturing."""
    cmd = ["cargo"] + args
    print(f"sidebyside: {' '.join(cmd)}", file=sys.stderr)
    done = subprocess.run(cmd, cwd=servers.repo_root(), check=True,
                          stdout=subprocess.PIPE if capture else None, text=True)
    return done.stdout


def build_loadgen():
    """Builds the load generator and returns the path of its executable."""
    out = cargo(["bench", "--bench", "loadgen", "--no-run", "--message-format=json"], capture=True)
    for line in out.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if (msg.get("reason") == "compiler-artifact" and msg.get("executable")
                and msg.get("target", {}).get("name") == "loadgen"):
            return msg["executable"]
    raise RuntimeError("could not find the loadgen executable in cargo's output")


def parse_result(stdout):
    """The `RESULT key=value ...` line of a loadgen run, as a dict of floats."""
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            return {k: float(v) for k, v in (kv.split("=", 1) for kv in line.split()[1:])}
    raise RuntimeError(f"loadgen printed no RESULT line:\n{stdout}")


def run_loadgen(loadgen, port, args, extra, timeout):
    cmd = [loadgen, "--addr", f"127.0.0.1:{port}"] + args + extra
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"loadgen failed ({' '.join(cmd)}):\n{done.stdout}{done.stderr}")
    return done.stdout


def mib(kb):
    return "-" if kb is None else f"{kb / 1024:.1f} MiB"


def median(xs):
    return statistics.median(xs) if xs else None


def main():
    # First thing: a Ctrl-C at any point must stop every server started so far.
    servers.install_signal_handlers()
    ap = argparse.ArgumentParser(
        description="memcached vs tern, interleaved rounds",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--tern-bin", default=servers.default_tern_bin(),
                    help="server compared with memcached (TERN_BIN); set it to skip the build")
    ap.add_argument("--memcached-bin", default=servers.MEMCACHED_BIN, help="MEMCACHED_BIN")
    ap.add_argument("--workloads", default=env("WORKLOADS", ",".join(WORKLOADS)),
                    help=f"WORKLOADS, comma-separated, of: {', '.join(WORKLOADS)}")
    ap.add_argument("--rounds", type=int, default=int(env("ROUNDS", "3")), help="ROUNDS")
    ap.add_argument("--duration", type=float, default=float(env("DURATION", "5")),
                    help="DURATION: seconds per loadgen run")
    ap.add_argument("--warmup", type=float, default=float(env("WARMUP", "1")),
                    help="WARMUP: unmeasured seconds of load per server before the rounds")
    ap.add_argument("--server-threads", type=int, default=int(env("SERVER_THREADS", "2")),
                    help="SERVER_THREADS: -t for both servers")
    ap.add_argument("--memory", type=int, default=int(env("MEMORY", "64")),
                    help="MEMORY: -m for both servers (MB)")
    ap.add_argument("--client-threads", type=int, default=int(env("CLIENT_THREADS", "2")),
                    help="CLIENT_THREADS: loadgen --threads")
    ap.add_argument("--conns", type=int, default=int(env("CONNS", "25")),
                    help="CONNS: loadgen --conns (per client thread)")
    ap.add_argument("--port", type=int, default=int(env("PORT", "22410")),
                    help="PORT: memcached listens here, tern on PORT+1")
    ap.add_argument("--no-build", action="store_true", default=bool(env("NO_BUILD", "")),
                    help="NO_BUILD: do not run cargo build --release for tern")
    args = ap.parse_args()

    names = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = [w for w in names if w not in WORKLOADS]
    if unknown:
        ap.error(f"unknown workload(s) {unknown}; known: {list(WORKLOADS)}")
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")

    tern_from_env = "TERN_BIN" in os.environ or args.tern_bin != servers.default_tern_bin()
    if not args.no_build and not tern_from_env:
        cargo(["build", "--release"])
    loadgen = build_loadgen()

    client = ["--threads", str(args.client_threads), "--conns", str(args.conns)]
    timeout = args.duration + 180  # loadgen stops itself; this only guards against a wedged run
    rows = []
    try:
        for name in names:
            desc, wl_args = WORKLOADS[name]
            print(f"sidebyside: workload {name}: {desc}", file=sys.stderr)
            pair = [
                servers.Server("memcached", args.memcached_bin, args.port,
                               threads=args.server_threads, memory_mb=args.memory),
                servers.Server("tern", args.tern_bin, args.port + 1,
                               threads=args.server_threads, memory_mb=args.memory),
            ]
            results = {"memcached": [], "tern": []}
            try:
                for srv in pair:
                    srv.start()
                for srv in pair:
                    run_loadgen(loadgen, srv.port, wl_args + client, ["--prefill-only"], timeout)
                    if args.warmup > 0:
                        # Connections, threads and caches warm up once, outside the rounds.
                        run_loadgen(loadgen, srv.port, wl_args + client,
                                    ["--no-prefill", "--duration", str(args.warmup)], timeout)
                for rnd in range(args.rounds):
                    order = pair if rnd % 2 == 0 else pair[::-1]
                    for srv in order:
                        out = run_loadgen(loadgen, srv.port, wl_args + client,
                                          ["--no-prefill", "--duration", str(args.duration),
                                           "--seed", str(rnd + 1)], timeout)
                        res = parse_result(out)
                        if not srv.alive():
                            raise RuntimeError(f"{srv.name} died during the run:\n{srv.log_tail()}")
                        results[srv.name].append(res)
                        print(f"sidebyside:   round {rnd + 1} {srv.name:9} "
                              f"{res['ops_per_sec']:>10,.0f} ops/s  p99 {res['p99_us']:.0f} us  "
                              f"hits {res['hit_ratio']:.3f}", file=sys.stderr)
                rss = {srv.name: srv.rss_kb() for srv in pair}
            finally:
                for srv in pair:
                    srv.stop()
            m, t = results["memcached"], results["tern"]
            rows.append({
                "workload": name,
                "m_ops": median([r["ops_per_sec"] for r in m]),
                "t_ops": median([r["ops_per_sec"] for r in t]),
                "ratios": [b["ops_per_sec"] / a["ops_per_sec"] for a, b in zip(m, t)],
                "m_p99": median([r["p99_us"] for r in m]),
                "t_p99": median([r["p99_us"] for r in t]),
                "m_rss": rss["memcached"],
                "t_rss": rss["tern"],
            })
    finally:
        servers.stop_all()

    print()
    print(f"memcached ({args.memcached_bin}) vs tern ({args.tern_bin}): -t {args.server_threads} "
          f"-m {args.memory}; loadgen {args.client_threads} threads x {args.conns} conns, "
          f"{args.rounds} interleaved rounds of {args.duration:g}s; medians")
    print()
    print("| workload | memcached ops/s | tern ops/s | tern/memcached (rounds' range) "
          "| memcached p99 | tern p99 | memcached RSS | tern RSS |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        ratios = r["ratios"]
        print(f"| {r['workload']} | {r['m_ops']:,.0f} | {r['t_ops']:,.0f} "
              f"| {median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) "
              f"| {r['m_p99']:.0f} us | {r['t_p99']:.0f} us "
              f"| {mib(r['m_rss'])} | {mib(r['t_rss'])} |")
    return 0


if __name__ == "__main__":
    started = time.monotonic()
    try:
        code = main()
    except (RuntimeError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        print(f"sidebyside: FAILED: {e}", file=sys.stderr)
        code = 1
    print(f"sidebyside: done in {time.monotonic() - started:.0f}s", file=sys.stderr)
    sys.exit(code)
