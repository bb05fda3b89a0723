#!/usr/bin/env python3
"""Side-by-side throughput: memcached and tern, same flags, same load, interleaved rounds.

Builds tern (`cargo build --release`) and the load generator (`cargo bench --bench loadgen`),
then for every workload starts memcached and tern fresh on loopback with the same `-t` and `-m`,
prefills both with the workload's keys, and runs the load generator against each in alternation
(memcached then tern in odd rounds, tern then memcached in even rounds: the machine is shared and
noisy, and interleaving spreads the noise over both). It prints, per workload, the median ops/s of
each server, the median of the per-round ratios tern/memcached, the median p50/p99/p99.9 latencies,
the server CPU time per request (user + system, all threads, from /proc/<pid>/stat around each
measured run, divided by the requests it served) and each server's VmRSS after its rounds.

With SERVER_CPUS / CLIENT_CPUS (`taskset -c` lists, e.g. 0-3 and 4-15) the servers and the load
generator run pinned apart, so neither waits out the other's time slices. With
SERVER_CPU_SHARE (e.g. 0.5, needs root) each server is held to that fraction of one CPU by a
cgroup, so that on a box with too few cores for a client faster than the server, the servers
still saturate first and their ops/s compare as they would at saturation.

Usage (from the repository root):

    python3 benches/sidebyside.py
    TERN_BIN=/usr/bin/memcached python3 benches/sidebyside.py     # validate: ratios ~1.0
    ROUNDS=5 DURATION=10 SERVER_THREADS=4 python3 benches/sidebyside.py --workloads get-heavy
    SERVER_CPUS=0-3 CLIENT_CPUS=4-15 SERVER_THREADS=4 python3 benches/sidebyside.py
    SERVER_CPUS=0 CLIENT_CPUS=1 SERVER_THREADS=1 SERVER_CPU_SHARE=0.5 python3 benches/sidebyside.py
    ROUNDS=1 DURATION=1 WARMUP=0 python3 benches/sidebyside.py    # smoke run, ~1 min

Every option can also be given by environment variable (the upper-case name in --help).
Standard library only. Every server it starts is stopped, also on error or Ctrl-C.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import servers  # noqa: E402

# name -> (description, loadgen arguments[, total connections, spread over the client threads])
WORKLOADS = {
    # Issue 12's set: one request in flight per connection unless said otherwise.
    "getset": (
        "get/set 1:10 (memtier's default), 32 B values, 100k keys",
        ["--ratio", "1:10", "--value-size", "32", "--keys", "100000", "--pipeline", "1"],
    ),
    "gets": (
        "gets only, 32 B values, 100k keys",
        ["--ratio", "0:1", "--value-size", "32", "--keys", "100000", "--pipeline", "1"],
    ),
    "sets": (
        "sets only, 32 B values, 100k keys",
        ["--ratio", "1:0", "--value-size", "32", "--keys", "100000", "--pipeline", "1"],
    ),
    "binary": (
        "binary protocol GET/SET 1:10, 32 B values, 100k keys",
        ["--binary", "--ratio", "1:10", "--value-size", "32", "--keys", "100000",
         "--pipeline", "1"],
    ),
    "multiget10": (
        "gets only, 10 keys per get, 32 B values, 100k keys",
        ["--ratio", "0:1", "--value-size", "32", "--keys", "100000", "--multiget", "10",
         "--pipeline", "1"],
    ),
    # The meta multi-get: 10 quiet `mg <key> v k q` lines closed by `mn`, against the same
    # 10-key text `get` above; issue 10 wants it no slower than "multiget10".
    "meta-multiget10": (
        "meta: gets only, 10 quiet mg + mn per request, 32 B values, 100k keys",
        ["--meta", "--ratio", "0:1", "--value-size", "32", "--keys", "100000", "--multiget",
         "10", "--pipeline", "1"],
    ),
    "meta-getset": (
        "meta: ms/mg 1:10, 32 B values, 100k keys",
        ["--meta", "--ratio", "1:10", "--value-size", "32", "--keys", "100000",
         "--pipeline", "1"],
    ),
    "manyconns": (
        "get/set 1:10, 2,000 connections, 32 B values, 100k keys",
        ["--ratio", "1:10", "--value-size", "32", "--keys", "100000", "--pipeline", "1"],
        2000,
    ),
    # The earlier set (docs/performance.md's first table).
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


DEFAULT_WORKLOADS = ["getset", "gets", "sets", "binary", "multiget10", "manyconns"]

# Connections the load generator keeps open unless a workload says otherwise.
DEFAULT_CONNECTIONS = 50


def client_threads(cpus, given):
    """The load generator's threads: as given, else one per CPU it is pinned to (2 unpinned).

    More client threads than client CPUs make the threads wait out each other's time slices
    while replies sit in their sockets, and that wait is counted as the server's latency: with
    2 threads on one CPU, the faster server saturated the client and showed a 4 ms p99 that a
    single client thread did not see (docs/performance.md, "Tail latency")."""
    if given:
        return given
    return len(servers.cpu_list(cpus)) if cpus else 2


def client_shape(workload, threads, conns):
    """(threads, connections per thread) for a workload's loadgen run."""
    _desc, _args, *total = WORKLOADS[workload]
    if total:
        return threads, max(1, total[0] // threads)
    return threads, conns or max(1, DEFAULT_CONNECTIONS // threads)


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


def run_loadgen(loadgen, port, args, extra, timeout, cpus=None):
    cmd = [loadgen, "--addr", f"127.0.0.1:{port}"] + args + extra
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=timeout, preexec_fn=servers.pinned_to(cpus))
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
    ap.add_argument("--workloads", default=env("WORKLOADS", ",".join(DEFAULT_WORKLOADS)),
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
    ap.add_argument("--client-threads", type=int, default=int(env("CLIENT_THREADS", "0")),
                    help="CLIENT_THREADS: loadgen --threads (0: one per --client-cpus CPU, "
                    "2 when not pinned)")
    ap.add_argument("--conns", type=int, default=int(env("CONNS", "0")),
                    help=f"CONNS: loadgen --conns per client thread (0: {DEFAULT_CONNECTIONS} "
                    "in all)")
    ap.add_argument("--port", type=int, default=int(env("PORT", "22410")),
                    help="PORT: memcached listens here, tern on PORT+1")
    ap.add_argument("--server-cpus", default=env("SERVER_CPUS", ""),
                    help="SERVER_CPUS: taskset -c list for both servers (empty: not pinned)")
    ap.add_argument("--client-cpus", default=env("CLIENT_CPUS", ""),
                    help="CLIENT_CPUS: taskset -c list for the load generator (empty: not pinned)")
    ap.add_argument("--server-cpu-share", type=float,
                    default=float(env("SERVER_CPU_SHARE", "0")),
                    help="SERVER_CPU_SHARE: limit each server to this fraction of one CPU with a "
                    "cgroup (e.g. 0.5; 0: no limit), so that the servers, not the load generator, "
                    "saturate on a box with few cores (needs root)")
    ap.add_argument("--loadgen-bin", default=env("LOADGEN_BIN", ""),
                    help="LOADGEN_BIN: a built load generator (empty: build it with cargo)")
    ap.add_argument("--no-build", action="store_true", default=bool(env("NO_BUILD", "")),
                    help="NO_BUILD: do not run cargo build --release for tern")
    args = ap.parse_args()
    args.client_threads = client_threads(args.client_cpus, args.client_threads)

    names = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = [w for w in names if w not in WORKLOADS]
    if unknown:
        ap.error(f"unknown workload(s) {unknown}; known: {list(WORKLOADS)}")
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")

    tern_from_env = "TERN_BIN" in os.environ or args.tern_bin != servers.default_tern_bin()
    if not args.no_build and not tern_from_env:
        cargo(["build", "--release"])
    loadgen = args.loadgen_bin or build_loadgen()

    # Many-connection workloads need a descriptor per connection, here and in the servers.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    timeout = args.duration + 180  # loadgen stops itself; this only guards against a wedged run
    cpus = args.client_cpus or None
    rows = []
    try:
        for name in names:
            desc, wl_args, *_ = WORKLOADS[name]
            threads, conns = client_shape(name, args.client_threads, args.conns)
            client = ["--threads", str(threads), "--conns", str(conns)]
            # memcached's default -c is 1024; both get the same, with room for the workload.
            limit = ["-c", str(max(1024, threads * conns + 100))]
            print(f"sidebyside: workload {name}: {desc}", file=sys.stderr)
            pair = [
                servers.Server("memcached", args.memcached_bin, args.port,
                               threads=args.server_threads, memory_mb=args.memory,
                               extra_args=limit, cpus=args.server_cpus or None,
                               cpu_share=args.server_cpu_share),
                servers.Server("tern", args.tern_bin, args.port + 1,
                               threads=args.server_threads, memory_mb=args.memory,
                               extra_args=limit, cpus=args.server_cpus or None,
                               cpu_share=args.server_cpu_share),
            ]
            results = {"memcached": [], "tern": []}
            try:
                for srv in pair:
                    srv.start()
                for srv in pair:
                    run_loadgen(loadgen, srv.port, wl_args + client, ["--prefill-only"], timeout,
                                cpus)
                    if args.warmup > 0:
                        # Connections, threads and caches warm up once, outside the rounds.
                        run_loadgen(loadgen, srv.port, wl_args + client,
                                    ["--no-prefill", "--duration", str(args.warmup)], timeout,
                                    cpus)
                for rnd in range(args.rounds):
                    order = pair if rnd % 2 == 0 else pair[::-1]
                    for srv in order:
                        cpu_before, cs_before = srv.cpu_seconds(), srv.context_switches()
                        out = run_loadgen(loadgen, srv.port, wl_args + client,
                                          ["--no-prefill", "--duration", str(args.duration),
                                           "--seed", str(rnd + 1)], timeout, cpus)
                        cpu_after, cs_after = srv.cpu_seconds(), srv.context_switches()
                        res = parse_result(out)
                        if not srv.alive() or cpu_before is None or cpu_after is None:
                            raise RuntimeError(f"{srv.name} died during the run:\n{srv.log_tail()}")
                        # Server CPU per request served, in microseconds (the loadgen's connections
                        # open and close inside the window too; their cost is per connection).
                        ops = max(res["ops"], 1)
                        res["user_us"] = (cpu_after[0] - cpu_before[0]) * 1e6 / ops
                        res["sys_us"] = (cpu_after[1] - cpu_before[1]) * 1e6 / ops
                        res["cpu_us"] = res["user_us"] + res["sys_us"]
                        # Server threads going to sleep, per 1,000 requests: each is a trip
                        # through the scheduler, paid in the server's system time.
                        res["sleeps_k"] = ((cs_after[0] - cs_before[0]) * 1e3 / ops
                                           if cs_before and cs_after else 0.0)
                        # Server CPUs busy during the run: about -t when the server saturates.
                        res["busy"] = (sum(cpu_after) - sum(cpu_before)) / args.duration
                        results[srv.name].append(res)
                        print(f"sidebyside:   round {rnd + 1} {srv.name:9} "
                              f"{res['ops_per_sec']:>10,.0f} ops/s  p99 {res['p99_us']:.0f} us  "
                              f"cpu {res['cpu_us']:.2f} us/op  busy {res['busy']:.2f} CPUs  "
                              f"hits {res['hit_ratio']:.3f}",
                              file=sys.stderr)
                rss = {srv.name: srv.rss_kb() for srv in pair}
            finally:
                for srv in pair:
                    srv.stop()
            m, t = results["memcached"], results["tern"]
            row = {
                "workload": name,
                "ratios": [b["ops_per_sec"] / a["ops_per_sec"] for a, b in zip(m, t)],
                "cpu_ratios": [b["cpu_us"] / a["cpu_us"] for a, b in zip(m, t) if a["cpu_us"] > 0],
                "m_rss": rss["memcached"],
                "t_rss": rss["tern"],
            }
            for key in ("ops_per_sec", "cpu_us", "user_us", "sys_us", "busy", "sleeps_k",
                        "p50_us", "p99_us", "p999_us"):
                row["m_" + key] = median([r[key] for r in m])
                row["t_" + key] = median([r[key] for r in t])
            rows.append(row)
    finally:
        servers.stop_all()

    print()
    pinning = (f"servers on CPUs {args.server_cpus or 'any'}, loadgen on CPUs "
               f"{args.client_cpus or 'any'}")
    if args.server_cpu_share:
        pinning += f", each server limited to {args.server_cpu_share:g} of a CPU (cgroup)"
    print(f"memcached ({args.memcached_bin}) vs tern ({args.tern_bin}): -t {args.server_threads} "
          f"-m {args.memory}; loadgen {args.client_threads} threads, "
          f"{args.conns * args.client_threads or DEFAULT_CONNECTIONS} conns unless "
          f"the workload says otherwise; {pinning}; {args.rounds} interleaved rounds of "
          f"{args.duration:g}s; medians. CPU: server user+sys microseconds per request; busy: "
          f"server CPU seconds per second of load; sleeps: server threads blocking, per 1,000 "
          f"requests.")
    print()
    print("| workload | server | ops/s | tern/memcached ops (range) | CPU us/req (user+sys) "
          "| tern/memcached CPU | busy | sleeps | p50 | p99 | p99.9 | RSS |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        ratios, cpu = r["ratios"], r["cpu_ratios"]
        for side, name in (("m", "memcached"), ("t", "tern")):
            ops_ratio = cpu_ratio = ""
            if side == "t":
                ops_ratio = f"{median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
                cpu_ratio = f"{median(cpu):.2f}" if cpu else "-"
            print(f"| {r['workload']} | {name} | {r[side + '_ops_per_sec']:,.0f} | {ops_ratio} "
                  f"| {r[side + '_cpu_us']:.2f} ({r[side + '_user_us']:.2f}+"
                  f"{r[side + '_sys_us']:.2f}) | {cpu_ratio} | {r[side + '_busy']:.2f} "
                  f"| {r[side + '_sleeps_k']:.0f} "
                  f"| {r[side + '_p50_us']:.0f} us | {r[side + '_p99_us']:.0f} us "
                  f"| {r[side + '_p999_us']:.0f} us | {mib(r[side + '_rss'])} |")
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
