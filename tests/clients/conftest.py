"""Fixtures for the client-library tests: tern nodes on loopback, and the operator command.

The binaries come from TERN_BIN and TERN_CLUSTER_BIN, or from cargo's target directory
($CARGO_TARGET_DIR or ./target, debug build). tests/run.sh builds them first.
"""

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
TERN_BIN = os.environ.get("TERN_BIN", str(TARGET / "debug" / "tern"))
TERN_CLUSTER_BIN = os.environ.get("TERN_CLUSTER_BIN", str(TARGET / "debug" / "tern-cluster"))
START_TIMEOUT = 10.0


def free_port():
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc, what):
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} on port {port} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port}")


class Node:
    """One tern process on 127.0.0.1, on a port the system chose (`-p -1`), read back from
    MEMCACHED_PORT_FILENAME as memcached's own test harness does: no race for a free port."""

    _started = 0

    def __init__(self, *extra):
        Node._started += 1
        ports_file = Path(f"/tmp/tern-client-ports-{os.getpid()}-{Node._started}")
        ports_file.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [TERN_BIN, "-p", "-1", "-l", "127.0.0.1", "-U", "0", "-t", "1", "-m", "64", *extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "MEMCACHED_PORT_FILENAME": str(ports_file)},
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not ports_file.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"tern exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("tern did not write its port file")
            time.sleep(0.02)
        # Lines like "TCP INET: 40123".
        lines = ports_file.read_text().splitlines()
        ports_file.unlink()
        self.port = int(next(l for l in lines if l.startswith("TCP")).rsplit(" ", 1)[1])
        wait_listening(self.port, self.proc, "tern")

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def tern_cluster(*args, check=True):
    """Runs the operator command; returns the finished process."""
    done = subprocess.run(
        [TERN_CLUSTER_BIN, *args], capture_output=True, text=True, timeout=30
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"tern-cluster {' '.join(args)} failed ({done.returncode}):\n"
            f"{done.stdout}{done.stderr}"
        )
    return done


def request(addr, data, until=b"\r\n"):
    """Sends raw bytes to a node and reads until the reply ends with `until`."""
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(data)
        got = b""
        while not got.endswith(until):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        return got


@pytest.fixture
def nodes():
    """Three tern nodes, with a config listing all three pushed to each (version 2)."""
    started = []
    try:
        for _ in range(3):
            started.append(Node())
        tern_cluster("set", *(n.addr for n in started))
        yield started
    finally:
        for n in started:
            n.stop()
