"""Real binary-protocol clients against tern (issue 4).

- pylibmc (libmemcached) with binary=True: set/get/delete/incr/decr/cas/multi-get;
- python-binary-memcached (bmemcached) with SASL PLAIN against `tern -S`: the same round
  trip authenticated, a wrong password refused (and counted in auth_cmds/auth_errors).
"""

import os
import tempfile

import pytest

from conftest import Node

import pylibmc  # noqa: E402  (installed by tests/run.sh; a missing client must fail, not skip)
import bmemcached  # noqa: E402

USER = "alice"
PASSWORD = "wonderland"


@pytest.fixture
def node():
    n = Node()
    try:
        yield n
    finally:
        n.stop()


@pytest.fixture
def sasl_node():
    fd, path = tempfile.mkstemp(prefix="tern-pwdb-")
    with os.fdopen(fd, "w") as f:
        f.write(f"{USER}:{PASSWORD}\nbob:builder\n")
    n = Node("-S", "--sasl-pwdb", path)
    try:
        yield n
    finally:
        n.stop()
        os.unlink(path)


def round_trip(mc, gets, cas, delete_reports_miss=True):
    """The operations every client must do: set/get/delete/incr/decr/cas/multi-get."""
    assert mc.set("greeting", b"hello")
    assert mc.get("greeting") == b"hello"
    assert mc.get("absent") is None

    many = {f"k{i}": f"v{i}".encode() for i in range(50)}
    for k, v in many.items():
        assert mc.set(k, v)
    got = mc.get_multi(list(many) + ["absent"])
    assert got == many

    assert mc.set("counter", b"10")
    assert mc.incr("counter", 5) == 15
    assert mc.decr("counter", 20) == 0

    value, token = gets("greeting")
    assert value == b"hello"
    assert cas("greeting", b"bonjour", token)
    assert not cas("greeting", b"stale", token)
    assert mc.get("greeting") == b"bonjour"

    assert mc.delete("greeting")
    assert mc.get("greeting") is None
    if delete_reports_miss:
        # bmemcached's delete answers True for a missing key as well; pylibmc tells.
        assert not mc.delete("greeting")


def test_pylibmc_binary_round_trip(node):
    mc = pylibmc.Client([node.addr], binary=True, behaviors={"cas": True})
    round_trip(mc, mc.gets, mc.cas)
    mc.disconnect_all()


def test_bmemcached_sasl_round_trip(sasl_node):
    mc = bmemcached.Client([sasl_node.addr], USER, PASSWORD)

    def cas(key, value, token):
        return bool(mc.cas(key, value, token))

    round_trip(mc, mc.gets, cas, delete_reports_miss=False)
    mc.disconnect_all()


def test_bmemcached_wrong_password_is_refused_and_counted(sasl_node):
    bad = bmemcached.Client([sasl_node.addr], USER, "not the password")
    # memcached (and tern) refuse with status 0x20; bmemcached expects 0x08 for
    # InvalidCredentials, so it raises its base exception with "Auth failure.".
    with pytest.raises(bmemcached.exceptions.MemcachedException, match="Auth failure"):
        bad.set("k", b"v")
    bad.disconnect_all()

    good = bmemcached.Client([sasl_node.addr], USER, PASSWORD)
    stats = {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in good.stats()[sasl_node.addr].items()
    }
    assert int(stats["auth_errors"]) >= 1
    assert int(stats["auth_cmds"]) >= 2
    good.disconnect_all()
