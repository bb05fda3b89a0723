"""Real auto-discovery and consistent-hashing clients against three tern nodes on loopback.

- elasticache-auto-discovery discovers the nodes from any one of them;
- pymemcache's HashClient built from the discovered nodes spreads and finds 3,000 keys;
- removing a node (the next version, pushed by tern-cluster) is re-discovered and most keys
  still hit; an older version is refused;
- pylibmc (libmemcached) with ketama does the same round trip;
- twemproxy (nutcracker) with ketama in front of the nodes proxies set/get/delete.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest
from elasticache_auto_discovery import discover
from pymemcache.client.base import Client
from pymemcache.client.hash import HashClient

from conftest import Node, free_port, request, tern_cluster, wait_listening

KEYS = 3000
FAIR_SHARE = 0.20
STILL_HIT = 0.60


def keys():
    return [f"key:{i}" for i in range(KEYS)]


def value(key):
    return f"value of {key}".encode()


def discovered(addr):
    """[(host, ip, port)] as elasticache-auto-discovery reports them, decoded."""
    return [
        (h.decode(), ip.decode(), int(port.decode()))
        for h, ip, port in discover(addr, time_to_timeout=5)
    ]


def hash_client(servers):
    return HashClient(servers, connect_timeout=5, timeout=5, default_noreply=False)


def curr_items(node):
    c = Client(("127.0.0.1", node.port), connect_timeout=5, timeout=5)
    try:
        return int(c.stats()[b"curr_items"])
    finally:
        c.close()


def assert_fair(nodes):
    counts = [curr_items(n) for n in nodes]
    assert sum(counts) == KEYS, counts
    for n, count in zip(nodes, counts):
        assert count >= FAIR_SHARE * KEYS, f"{n.addr} holds {count} of {KEYS}: {counts}"


def config_version(addr):
    reply = request(addr, b"config get cluster\r\n", until=b"END\r\n")
    return int(reply.split(b"\r\n", 1)[1].split(b"\n", 1)[0])


def test_discovery_finds_all_three_nodes(nodes):
    for n in nodes:
        found = discovered(n.addr)
        assert [(ip, port) for _, ip, port in found] == [
            ("127.0.0.1", m.port) for m in nodes
        ]
        assert all(host for host, _, _ in found)


def test_hashclient_spreads_finds_and_survives_removal(nodes):
    servers = [(ip, port) for _, ip, port in discovered(nodes[0].addr)]
    client = hash_client(servers)
    for k in keys():
        assert client.set(k, value(k))
    assert all(client.get(k) == value(k) for k in keys())
    assert_fair(nodes)
    client.close()

    # Remove the third node: the next version lists two, pushed to all three.
    before = config_version(nodes[0].addr)
    tern_cluster("set", nodes[0].addr, nodes[1].addr, "--also", nodes[2].addr)
    assert config_version(nodes[0].addr) == before + 1
    for n in nodes:
        found = discovered(n.addr)
        assert [(ip, port) for _, ip, port in found] == [
            ("127.0.0.1", nodes[0].port),
            ("127.0.0.1", nodes[1].port),
        ]

    servers = [(ip, port) for _, ip, port in discovered(nodes[1].addr)]
    client = hash_client(servers)
    hits = sum(client.get(k) == value(k) for k in keys())
    client.close()
    assert hits >= STILL_HIT * KEYS, f"{hits} of {KEYS} hit after removing a node"


def test_older_version_is_refused_and_changes_nothing(nodes):
    addr = nodes[0].addr
    before = request(addr, b"config get cluster\r\n", until=b"END\r\n")
    current = config_version(addr)
    data = f"{current - 1}\nold|127.0.0.1|1\n".encode()
    reply = request(addr, b"config set cluster 0 %d\r\n%s\r\n" % (len(data), data))
    assert reply == (
        f"CLIENT_ERROR config version {current - 1} is not higher than current "
        f"version {current}\r\n"
    ).encode()
    assert request(addr, b"config get cluster\r\n", until=b"END\r\n") == before


def test_legacy_key_gives_the_same_nodes(nodes):
    c = Client(("127.0.0.1", nodes[0].port), connect_timeout=5, timeout=5)
    try:
        data = c.get("AmazonElastiCache:cluster")
    finally:
        c.close()
    version, node_line = data.decode().split("\n")[:2]
    assert int(version) == config_version(nodes[0].addr)
    assert [e.split("|")[2] for e in node_line.split(" ")] == [str(n.port) for n in nodes]


def test_pylibmc_ketama_round_trip_and_removal(nodes):
    import pylibmc

    behaviors = {"ketama": True, "tcp_nodelay": True}
    servers = [f"{ip}:{port}" for _, ip, port in discovered(nodes[0].addr)]
    client = pylibmc.Client(servers, behaviors=behaviors)
    for k in keys():
        assert client.set(k, value(k))
    assert all(client.get(k) == value(k) for k in keys())
    assert_fair(nodes)
    client.disconnect_all()

    tern_cluster("set", nodes[0].addr, nodes[1].addr, "--also", nodes[2].addr)
    servers = [f"{ip}:{port}" for _, ip, port in discovered(nodes[2].addr)]
    assert len(servers) == 2
    client = pylibmc.Client(servers, behaviors=behaviors)
    hits = sum(client.get(k) == value(k) for k in keys())
    client.disconnect_all()
    assert hits >= STILL_HIT * KEYS, f"{hits} of {KEYS} hit after removing a node"


def test_twemproxy_ketama_set_get_delete(nodes):
    port = free_port()
    stats_port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        conf = os.path.join(tmp, "nutcracker.yml")
        servers = "\n".join(f"    - 127.0.0.1:{n.port}:1" for n in nodes)
        with open(conf, "w") as f:
            f.write(
                "tern:\n"
                f"  listen: 127.0.0.1:{port}\n"
                "  hash: md5\n"
                "  distribution: ketama\n"
                "  timeout: 2000\n"
                "  auto_eject_hosts: false\n"
                "  servers:\n"
                f"{servers}\n"
            )
        proxy = subprocess.Popen(
            [
                "nutcracker",
                "-c", conf,
                "-s", str(stats_port),
                "-a", "127.0.0.1",
                "-o", os.path.join(tmp, "nutcracker.log"),
                "-p", os.path.join(tmp, "nutcracker.pid"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_listening(port, proxy, "nutcracker")
            c = Client(("127.0.0.1", port), connect_timeout=5, timeout=5)
            some = keys()[:300]
            for k in some:
                assert c.set(k, value(k), noreply=False)
            for k in some:
                assert c.get(k) == value(k)
            counts = [curr_items(n) for n in nodes]
            assert sum(counts) == len(some) and all(counts), (counts, [n.port for n in nodes])
            for k in some[:100]:
                assert c.delete(k, noreply=False)
            assert all(c.get(k) is None for k in some[:100])
            assert all(c.get(k) == value(k) for k in some[100:])
            assert not c.delete(some[0], noreply=False)
            c.close()
        finally:
            proxy.terminate()
            proxy.wait(timeout=5)


def test_cluster_config_file_is_reread_on_sighup():
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "cluster.conf")
        with open(path, "w") as f:
            f.write("5\nf|127.0.0.1|1\n")
        node = Node("-o", f"cluster_config={path}")
        try:
            def served():
                return request(node.addr, b"config get cluster\r\n", until=b"END\r\n")

            def hup_and_expect(expected):
                node.proc.send_signal(signal.SIGHUP)
                deadline = time.monotonic() + 5
                while served() != expected and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert served() == expected
                assert node.proc.poll() is None, "SIGHUP must not stop tern"

            def reply(data):
                return b"CONFIG cluster 0 %d\r\n%s\r\nEND\r\n" % (len(data), data)

            v5 = reply(b"5\nf|127.0.0.1|1\n")
            assert served() == v5
            with open(path, "w") as f:
                f.write("6\nf|127.0.0.1|1 g|127.0.0.1|2\n")
            v6 = reply(b"6\nf|127.0.0.1|1 g|127.0.0.1|2\n")
            hup_and_expect(v6)
            # Older, then bad: logged and ignored.
            with open(path, "w") as f:
                f.write("4\nold|127.0.0.1|1\n")
            hup_and_expect(v6)
            with open(path, "w") as f:
                f.write("not a config")
            hup_and_expect(v6)
        finally:
            node.stop()
