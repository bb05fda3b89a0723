"""A real meta-protocol client against tern (issue 10): meta-memcache from PyPI.

meta-memcache speaks only the meta protocol (`mg`/`ms`/`md`/`ma`, multi-gets as a pipeline of
`mg` lines), so every call below crosses tern's meta executor:

- set/get/cas/delete/touch, with a key the client sends in base64 (`b`) and one it hashes;
- multi-get of 50 keys and a missing one;
- stale-while-revalidate with its RecachePolicy (`R`: the first reader under the recache TTL
  wins `W` and sees a miss, the others keep the old value with `Z`), its StalePolicy (`md … I
  T…` marks the item stale: one winner, the others get the stale value; a set with an older CAS
  and `I` stores the value still stale) and its LeasePolicy (`N` vivifies a miss: one winner,
  the others wait for its value);
- counters with `ma` (vivified with `N`/`J`, incr and decr).

Every assertion here was first checked against Debian's memcached 1.6.18 (run this file with
TERN_BIN pointing at a script that execs `memcached -u nobody "$@"`: the fixture starts any
server that takes memcached's options and writes MEMCACHED_PORT_FILENAME).
"""

import pytest

from conftest import Node

# Installed by tests/run.sh; a missing client must fail, not skip.
from meta_memcache import (  # noqa: E402
    CacheClient,
    Key,
    LeasePolicy,
    RecachePolicy,
    RequestFlags,
    ServerAddress,
    StalePolicy,
    Value,
    connection_pool_factory_builder,
)

META_FLAGS = RequestFlags(
    return_value=True,
    return_ttl=True,
    return_cas_token=True,
    return_fetched=True,
    return_client_flag=True,
)


@pytest.fixture
def node():
    n = Node()
    try:
        yield n
    finally:
        n.stop()


def client(node):
    """A client with its own connection pool (two clients race as two connections)."""
    return CacheClient.cache_client_from_servers(
        servers=[ServerAddress(host="127.0.0.1", port=node.port)],
        connection_pool_factory_fn=connection_pool_factory_builder(
            connection_timeout=2, recv_timeout=2
        ),
    )


def raw(mc, key, **extra):
    """`mg` with value, TTL, CAS, fetched and client-flags return flags (plus `extra`)."""
    return mc.meta_get(Key(key), flags=META_FLAGS.replace(**extra))


def test_set_get_cas_delete_touch(node):
    mc = client(node)
    assert mc.set("greeting", b"hello", ttl=0)
    assert mc.get("greeting") == b"hello"
    assert mc.get("absent") is None
    # Values of other types travel with their client flags (`F`), read back with `f`.
    assert mc.set("text", "bonjour", ttl=0)
    assert mc.get("text") == "bonjour"
    assert mc.set("number", 42, ttl=0)
    assert mc.get("number") == 42

    # A non-ASCII key goes out in base64 (`b`); a key over 250 bytes is hashed by the client.
    assert mc.set("clé-ünïcode", b"accents", ttl=0)
    assert mc.get("clé-ünïcode") == b"accents"
    long_key = "k" * 400
    assert mc.set(long_key, b"long", ttl=0)
    assert mc.get(long_key) == b"long"

    # cas: the token from a read lets one write through, then it is spent.
    value, token = mc.get_cas("greeting")
    assert value == b"hello" and isinstance(token, int) and token > 0
    assert mc.set("greeting", b"hola", ttl=0, cas_token=token)
    assert not mc.set("greeting", b"stale", ttl=0, cas_token=token)
    value, token2 = mc.get_cas("greeting")
    assert value == b"hola" and token2 > token
    # set_cas hands back the new item's CAS (`c` on `ms`).
    token3 = mc.set_cas("greeting", b"ciao", ttl=0, cas_token=token2)
    assert token3 is not None and token3 > token2
    assert mc.get_cas("greeting") == (b"ciao", token3)

    # touch (`mg k T<ttl>`): the TTL is set on a hit, a miss says so.
    got = raw(mc, "greeting")
    assert isinstance(got, Value) and got.flags.ttl == -1
    assert mc.touch("greeting", ttl=1000)
    got = raw(mc, "greeting")
    assert 990 <= got.flags.ttl <= 1000
    assert got.flags.fetched is True
    assert not mc.touch("absent", ttl=1000)

    # add/refill (`ms … ME`) does not overwrite.
    assert not mc.refill("greeting", b"other", ttl=0)
    assert mc.refill("fresh", b"new", ttl=0)
    assert mc.get("fresh") == b"new"

    # delete reports whether the key was there; invalidate does not care.
    assert mc.delete("greeting")
    assert mc.get("greeting") is None
    assert not mc.delete("greeting")
    assert mc.invalidate("greeting")


def test_multi_get(node):
    mc = client(node)
    many = {f"key{i}": f"value{i}".encode() * (i + 1) for i in range(50)}
    for k, v in many.items():
        assert mc.set(k, v, ttl=0)
    got = mc.multi_get(list(many) + ["absent"])
    assert {k.key: v for k, v in got.items()} == {**many, "absent": None}
    # With CAS tokens, each the one a single get reports.
    got = mc.multi_get_cas(["key3", "key7", "absent"])
    by_key = {k.key: v for k, v in got.items()}
    assert by_key["absent"] == (None, None)
    assert by_key["key3"] == mc.get_cas("key3")
    assert by_key["key7"][0] == many["key7"]


def test_recache_policy_elects_one_refresher(node):
    a, b = client(node), client(node)
    assert a.set("hot", b"v1", ttl=100)
    # TTL left (100) is above the recache TTL: a plain hit, nobody wins.
    assert a.get("hot", recache_policy=RecachePolicy(ttl=30)) == b"v1"
    got = raw(a, "hot", recache_ttl=30)
    assert got.flags.win is None and not got.flags.stale

    # Under the recache TTL: the first reader wins (`W`) and is told it missed, so it
    # recomputes; every other reader gets the current value and `Z` (a token is out).
    assert a.get("hot", recache_policy=RecachePolicy(ttl=200)) is None
    assert b.get("hot", recache_policy=RecachePolicy(ttl=200)) == b"v1"
    got = raw(b, "hot", recache_ttl=200)
    assert got.flags.win is False and got.value == b"v1"

    # The winner writes the fresh value with a long TTL: plain hits again, no token out.
    assert a.set("hot", b"v2", ttl=1000)
    assert b.get("hot", recache_policy=RecachePolicy(ttl=200)) == b"v2"
    got = raw(b, "hot", recache_ttl=200)
    assert got.flags.win is None


def test_stale_policy_serves_stale_while_one_revalidates(node):
    a, b = client(node), client(node)
    policy = StalePolicy(mark_stale_on_deletion_ttl=30, mark_stale_on_cas_mismatch=True)
    assert a.set("page", b"old", ttl=0)
    _, old_token = a.get_cas("page")

    # Deleting with the policy marks the item stale (`md … I T30`) instead of removing it.
    assert a.delete("page", stale_policy=policy)
    # The first reader wins the revalidation and sees a miss; the others see the stale value.
    value, win_token = a.get_cas("page")
    assert value is None and win_token > old_token
    assert b.get("page") == b"old"
    got = raw(b, "page")
    assert got.flags.stale and got.flags.win is False
    assert 0 < got.flags.ttl <= 30

    # A writer holding a CAS older than the invalidation stores its value, still stale
    # (`ms … I C<older>`): readers keep losing until a real refresh.
    assert a.set("page", b"racy", ttl=0, cas_token=old_token, stale_policy=policy)
    got = raw(b, "page")
    assert got.value == b"racy" and got.flags.stale and got.flags.win is False

    # The winner's plain write ends it: fresh, no longer stale, no token out.
    assert a.set("page", b"new", ttl=0)
    got = raw(b, "page")
    assert got.value == b"new" and not got.flags.stale and got.flags.win is None
    assert b.get("page") == b"new"


def test_lease_policy_lets_one_client_fill_a_miss(node):
    a, b = client(node), client(node)
    lease = LeasePolicy(ttl=30, miss_retries=3, miss_retry_wait=0.01)
    # The first reader of a missing key wins the lease (`mg … N30`: an empty item is created
    # and it gets `W`): it must fill the key.
    assert a.get_or_lease("lazy", lease_policy=lease) is None

    # The second loses (`Z`, empty value) and waits; the winner fills the key while it waits.
    waits = []

    def fill_while_waiting(seconds):
        waits.append(seconds)
        assert a.set("lazy", b"filled", ttl=0)

    assert b.get_or_lease("lazy", lease_policy=lease, lease_wait_fn=fill_while_waiting) == b"filled"
    assert len(waits) == 1

    # A loser that runs out of retries gets a miss, never the empty placeholder.
    assert a.get_or_lease("other", lease_policy=lease) is None
    assert b.get_or_lease("other", lease_policy=lease, lease_wait_fn=lambda s: None) is None


def test_counters(node):
    mc = client(node)
    # `ma … N0 J10`: created with the initial value on a miss, counted from there after.
    assert mc.delta_initialize_and_get("hits", 5, initial_value=10, initial_ttl=0) == 10
    assert mc.delta_initialize_and_get("hits", 5, initial_value=10, initial_ttl=0) == 15
    assert mc.delta_and_get("hits", -3) == 12
    assert mc.delta("hits", 1)
    assert mc.get("hits") == "13"
    # decr floors at 0; a missing counter without an initial value is a miss.
    assert mc.delta_and_get("hits", -100) == 0
    assert mc.delta_and_get("nothing", 1) is None
    assert not mc.delta("nothing", 1)
