#!/usr/bin/env python3
"""Where a server's CPU goes per request: system calls per request (strace -c) and the split
between kernel and user space with the hottest functions (perf record), for memcached and
tern under the same load (issue 12's "find out where the time goes first").

    cargo build --release && python3 benches/breakdown.py --workloads getset,multiget10 \
        --server-cpus 0 --client-cpus 1

Each server runs alone, pinned, on loopback; the workloads are benches/sidebyside.py's. Needs
`strace` and `perf` (linux-perf); both only attach to the server for the run and stop with it.
strace slows the server down a lot, so its run counts calls only; the perf run is separate.
Prints a markdown table per workload. Standard library only.
"""

import argparse
import collections
import os
import re
import resource
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import servers  # noqa: E402
import sidebyside  # noqa: E402


def attached(cmd, prefix, run):
    """Runs `run()` with the tool `cmd(output path)` names attached to the server (SIGINT once
    `run` returns); (path of what it wrote, result). The caller removes the file."""
    fd, path = tempfile.mkstemp(prefix=prefix)
    os.close(fd)
    tool = subprocess.Popen(cmd(path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        result = run()
    finally:
        tool.send_signal(2)
        tool.wait(timeout=60)
    return path, result


def strace_counts(pid, run):
    """Runs `run()` with strace counting the server's system calls; (calls by name, result)."""
    path, result = attached(lambda out: ["strace", "-f", "-c", "-o", out, "-p", str(pid)],
                            "tern-breakdown-strace-", run)
    calls = {}
    with open(path) as f:
        for line in f:
            fields = line.split()
            # % time, seconds, usecs/call, calls, [errors,] syscall
            if len(fields) >= 5 and fields[3].isdigit() and not line.startswith("100.00"):
                calls[fields[-1]] = int(fields[3])
    os.unlink(path)
    return calls, result


def perf_profile(pid, run, top):
    """Runs `run()` with perf sampling the server; (kernel share, top symbols, result)."""
    path, result = attached(lambda out: ["perf", "record", "-F", "999", "-o", out, "-p", str(pid)],
                            "tern-breakdown-perf-", run)

    def report(sort):
        out = subprocess.run(["perf", "report", "-i", path, "--no-children", "--sort", sort,
                              "--stdio", "--percent-limit", "0.5"],
                             capture_output=True, text=True).stdout
        return [line for line in out.splitlines() if re.match(r"^\s+\d+\.\d+%", line)]
    kernel = sum(float(line.split("%")[0]) for line in report("dso")
                 if "[kernel" in line)
    symbols = []
    for line in report("dso,sym")[:top]:
        pct, rest = line.split("%", 1)
        parts = rest.split()
        dso, sym = parts[0], " ".join(parts[2:]) if len(parts) > 2 else "?"
        symbols.append((float(pct), "kernel" if "kernel" in dso else dso, sym[:70]))
    os.unlink(path)
    return kernel, symbols, result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--tern-bin", default=servers.default_tern_bin())
    ap.add_argument("--memcached-bin", default=servers.MEMCACHED_BIN)
    ap.add_argument("--workloads", default="getset,gets,sets,binary,multiget10")
    ap.add_argument("--duration", type=float, default=4.0, help="seconds per measured run")
    ap.add_argument("--server-threads", type=int, default=2)
    ap.add_argument("--client-threads", type=int, default=0,
                    help="0: one per --client-cpus CPU")
    ap.add_argument("--conns", type=int, default=0,
                    help=f"per client thread (0: {sidebyside.DEFAULT_CONNECTIONS} in all)")
    ap.add_argument("--port", type=int, default=22510)
    ap.add_argument("--server-cpus", default="0")
    ap.add_argument("--client-cpus", default="1")
    ap.add_argument("--top", type=int, default=12, help="hottest symbols listed")
    args = ap.parse_args()
    args.client_threads = sidebyside.client_threads(args.client_cpus, args.client_threads)
    servers.install_signal_handlers()
    for tool in ("strace", "perf"):
        if not servers.have(tool):
            sys.exit(f"breakdown: {tool} is not installed")
    loadgen = sidebyside.build_loadgen()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    timeout = args.duration + 180
    for name in args.workloads.split(","):
        desc, wl_args, *_ = sidebyside.WORKLOADS[name]
        threads, conns = sidebyside.client_shape(name, args.client_threads, args.conns)
        client = ["--threads", str(threads), "--conns", str(conns)]
        print(f"\n### {name}: {desc}\n")
        rows = []
        for label, binary, port in (("memcached", args.memcached_bin, args.port),
                                    ("tern", args.tern_bin, args.port + 1)):
            srv = servers.Server(label, binary, port, threads=args.server_threads,
                                 extra_args=["-c", str(max(1024, threads * conns + 100))],
                                 cpus=args.server_cpus or None)
            with srv:
                def load(seconds=args.duration):
                    return sidebyside.parse_result(sidebyside.run_loadgen(
                        loadgen, port, wl_args + client,
                        ["--no-prefill", "--duration", str(seconds)], timeout,
                        args.client_cpus or None))
                sidebyside.run_loadgen(loadgen, port, wl_args + client, ["--prefill-only"],
                                       timeout, args.client_cpus or None)
                load(1.0)
                before = srv.cpu_seconds()
                plain = load()
                after = srv.cpu_seconds()
                ops = max(plain["ops"], 1)
                user = (after[0] - before[0]) * 1e6 / ops
                system = (after[1] - before[1]) * 1e6 / ops
                calls, traced = strace_counts(srv.proc.pid, load)
                kernel, symbols, _ = perf_profile(srv.proc.pid, load, args.top)
            traced_ops = max(traced["ops"], 1)
            per_req = collections.OrderedDict(
                (k, v / traced_ops)
                for k, v in sorted(calls.items(), key=lambda kv: -kv[1])
                if v / traced_ops >= 0.01)
            rows.append((label, plain, user, system, per_req, kernel, symbols))
        print("| server | ops/s | CPU us/req user+sys | kernel share (perf) "
              "| system calls per request |")
        print("|---|---:|---:|---:|---|")
        for label, plain, user, system, per_req, kernel, _ in rows:
            sc = ", ".join(f"{k} {v:.2f}" for k, v in per_req.items())
            print(f"| {label} | {plain['ops_per_sec']:,.0f} | {user + system:.2f} "
                  f"({user:.2f}+{system:.2f}) | {kernel:.0f}% | {sc} |")
        for label, *_, symbols in rows:
            print(f"\n{label}, hottest functions (% of the server's samples):\n")
            for pct, where, sym in symbols:
                print(f"- {pct:.1f}% {where} `{sym}`")


if __name__ == "__main__":
    main()
