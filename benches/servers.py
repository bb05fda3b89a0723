"""Starting, watching and stopping the servers the benchmark scripts compare.

Shared by benches/sidebyside.py and benches/capacity.py; Python standard library only.

A server is any binary that takes memcached's flags (`-p PORT -l 127.0.0.1 -t N -m MB`): tern, or
memcached itself (which is how the harnesses are validated before tern exists: memcached against
itself must give ratios of about 1.0).
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

MEMCACHED_BIN = os.environ.get("MEMCACHED_BIN", "/usr/bin/memcached")


def repo_root():
    """The repository root (this file lives in <root>/benches/)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def target_dir():
    """Where cargo puts build outputs: $CARGO_TARGET_DIR, else <root>/target."""
    return os.environ.get("CARGO_TARGET_DIR") or os.path.join(repo_root(), "target")


def default_tern_bin():
    """tern's release binary: $TERN_BIN, else <target>/release/tern."""
    return os.environ.get("TERN_BIN") or os.path.join(target_dir(), "release", "tern")


def is_memcached(binary):
    """Whether `binary` is memcached itself (it needs `-u` when started as root)."""
    return "memcached" in os.path.basename(binary)


def cpu_list(spec):
    """The CPUs a `taskset -c` style list names ("1", "4-15", "0,2-3"), as a set."""
    cpus = set()
    for part in spec.split(","):
        lo, _, hi = part.strip().partition("-")
        cpus.update(range(int(lo), int(hi) + 1) if hi else [int(lo)])
    return cpus


def pinned_to(spec):
    """A `preexec_fn` that pins the child to the CPUs of `spec` (None: no pinning). Done in the
    child before exec, so the benchmarks need no `taskset` (the many-core machine has none)."""
    if not spec:
        return None
    cpus = cpu_list(spec)
    return lambda: os.sched_setaffinity(0, cpus)


def port_is_open(port, host="127.0.0.1"):
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def limit_cpu(pid, name, share, period_us=10000):
    """Puts process `pid`, all its threads, in a new cgroup allowed `share` of one CPU (0.5: half
    a CPU, enforced every `period_us`). Returns the group's path, for `release_cpu_limit`.

    This makes the server, not the load generator, the bottleneck on a box with too few cores
    to give the client more than the server: both servers get the same budget, so their
    throughput ratio is the one they would have once saturated. Needs root and the cgroup `cpu`
    controller (v2, or v1 mounted at /sys/fs/cgroup/cpu)."""
    quota = max(1000, int(share * period_us))
    group = f"tern-bench-{name}-{pid}"
    try:
        v2 = "/sys/fs/cgroup/cgroup.controllers"
        if os.path.exists(v2) and "cpu" in open(v2).read().split():
            with open("/sys/fs/cgroup/cgroup.subtree_control") as f:
                if "cpu" not in f.read().split():
                    _write("/sys/fs/cgroup/cgroup.subtree_control", "+cpu")
            path = os.path.join("/sys/fs/cgroup", group)
            os.mkdir(path)
            _write(os.path.join(path, "cpu.max"), f"{quota} {period_us}")
        else:
            path = os.path.join("/sys/fs/cgroup/cpu", group)
            os.mkdir(path)
            _write(os.path.join(path, "cpu.cfs_period_us"), str(period_us))
            _write(os.path.join(path, "cpu.cfs_quota_us"), str(quota))
        _write(os.path.join(path, "cgroup.procs"), str(pid))
    except OSError as e:
        raise RuntimeError(f"{name}: cannot limit its CPU to {share:g} of a CPU with a cgroup "
                           f"({e}); this needs root and the cgroup cpu controller") from e
    return path


def release_cpu_limit(path):
    """Removes a group made by `limit_cpu` once its process has exited."""
    try:
        os.rmdir(path)
    except OSError:
        pass


class Server:
    """One server process on loopback, started fresh and always stopped (use as a context manager).
    `cpu_share` (a fraction of one CPU) limits the process with a cgroup (`limit_cpu`)."""

    def __init__(self, name, binary, port, threads=None, memory_mb=64, extra_args=(), cpus=None,
                 cpu_share=None):
        self.name = name
        self.binary = binary
        self.port = port
        self.cpus = cpus
        self.args = [binary, "-p", str(port), "-l", "127.0.0.1", "-m", str(memory_mb)]
        if threads is not None:
            self.args += ["-t", str(threads)]
        if is_memcached(binary) and os.geteuid() == 0:
            # memcached refuses to run as root without -u.
            self.args += ["-u", "root"]
        self.args += list(extra_args)
        self.cpu_share = cpu_share
        self.cgroup = None
        self.proc = None
        self.log_path = None
        self._log = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def start(self, timeout=10.0):
        """Starts the process and waits until it accepts connections; raises on failure."""
        if not (os.path.isfile(self.binary) and os.access(self.binary, os.X_OK)):
            raise RuntimeError(f"{self.name}: {self.binary} is not an executable file")
        if port_is_open(self.port):
            raise RuntimeError(
                f"{self.name}: something already listens on 127.0.0.1:{self.port}; "
                "refusing to benchmark an unknown server (pick other ports)"
            )
        fd, self.log_path = tempfile.mkstemp(prefix=f"tern-bench-{self.name}-", suffix=".log")
        self._log = os.fdopen(fd, "w")
        self.proc = subprocess.Popen(
            self.args, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            preexec_fn=pinned_to(self.cpus),
        )
        _started.append(self)
        if self.cpu_share:
            self.cgroup = limit_cpu(self.proc.pid, self.name, self.cpu_share)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name}: exited with status {self.proc.returncode} at start-up "
                    f"({' '.join(self.args)}); log:\n{self.log_tail()}"
                )
            if port_is_open(self.port):
                return
            time.sleep(0.05)
        raise RuntimeError(
            f"{self.name}: not accepting connections on 127.0.0.1:{self.port} after {timeout}s "
            f"({' '.join(self.args)}); log:\n{self.log_tail()}"
        )

    def alive(self):
        """Whether the process is still running."""
        return self.proc is not None and self.proc.poll() is None

    def rss_kb(self):
        """Resident memory (VmRSS) in kB, from /proc; None when unknown."""
        if not self.alive():
            return None
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def cpu_seconds(self):
        """(user, system) CPU seconds the process has used so far, all threads together (fields
        14 and 15 of /proc/<pid>/stat, in clock ticks); None when unknown."""
        if not self.alive():
            return None
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                stat = f.read()
        except OSError:
            return None
        # The command name (field 2) may hold spaces; the fields after it are plain numbers.
        fields = stat[stat.rindex(")") + 2:].split()
        tick = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / tick, int(fields[12]) / tick

    def context_switches(self):
        """(voluntary, involuntary) context switches of all the process's threads so far, from
        /proc/<pid>/task/*/status: a voluntary one is a thread going to sleep (a worker waiting
        in epoll_wait, or on a lock); None when unknown. Threads that exited are not counted."""
        if not self.alive():
            return None
        vol = invol = 0
        try:
            for tid in os.listdir(f"/proc/{self.proc.pid}/task"):
                try:
                    with open(f"/proc/{self.proc.pid}/task/{tid}/status") as f:
                        for line in f:
                            if line.startswith("voluntary_ctxt_switches:"):
                                vol += int(line.split()[1])
                            elif line.startswith("nonvoluntary_ctxt_switches:"):
                                invol += int(line.split()[1])
                except OSError:
                    continue
        except OSError:
            return None
        return vol, invol

    def log_tail(self, lines=20):
        """The last lines the server printed."""
        if not self.log_path:
            return ""
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def stop(self):
        """Stops the process (SIGTERM, then SIGKILL after 3 s) and removes its log."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.cgroup:
            release_cpu_limit(self.cgroup)
            self.cgroup = None
        if self in _started:
            _started.remove(self)
        if self._log:
            self._log.close()
            self._log = None
        if self.log_path and os.path.exists(self.log_path):
            os.unlink(self.log_path)


# Every server started and not yet stopped, so a signal can stop them all.
_started = []


def stop_all():
    """Stops every server this process started."""
    for server in list(_started):
        server.stop()


def _on_signal(signum, _frame):
    stop_all()
    sys.exit(128 + signum)


def install_signal_handlers():
    """Stops every started server on SIGINT/SIGTERM/SIGHUP before exiting."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)


def stats(sock_file, sock):
    """Sends `stats` on a connected socket and returns the reply as a dict of strings."""
    sock.sendall(b"stats\r\n")
    result = {}
    while True:
        line = sock_file.readline()
        if not line:
            raise RuntimeError("server closed the connection during stats")
        line = line.rstrip(b"\r\n")
        if line == b"END":
            return result
        parts = line.split(b" ", 2)
        if len(parts) != 3 or parts[0] != b"STAT":
            raise RuntimeError(f"unexpected line in stats reply: {line!r}")
        result[parts[1].decode()] = parts[2].decode()


def have(binary):
    """Whether `binary` exists and is executable (a path, or a name on $PATH)."""
    return os.access(binary, os.X_OK) or shutil.which(binary) is not None
