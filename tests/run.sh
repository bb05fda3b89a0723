#!/usr/bin/env bash
# Runs every tern test: unit, property and integration tests of both crates, the differential
# replay against a real memcached 1.6, and (when present) the client-library tests.
# Installs what the tests need first (Debian packages; a Python venv under .venv).
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v memcached >/dev/null || need_pkgs+=(memcached)
command -v memccapable >/dev/null || need_pkgs+=(libmemcached-tools)
command -v nc >/dev/null || need_pkgs+=(netcat-openbsd)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

# The opt-in differential replay is always on here: memcached was just made available.
export TERN_DIFF_MEMCACHED="${TERN_DIFF_MEMCACHED:-1}"
# memccapable was just installed: its test must run, not skip (tests/memccapable.rs).
export TERN_REQUIRE_CLIENTS="${TERN_REQUIRE_CLIENTS:-1}"
cargo test --workspace --all-targets --no-fail-fast

# ---- Client libraries against three tern nodes (issue 5: auto-discovery and clustering) ----
# elasticache-auto-discovery, pymemcache's HashClient, pylibmc (libmemcached, ketama) and
# twemproxy (Debian's nutcracker, ketama) against tern nodes on loopback; see
# tests/clients/ and docs/cluster.md.
client_pkgs=()
command -v nutcracker >/dev/null || client_pkgs+=(nutcracker)
python3 -c 'import ensurepip, venv' 2>/dev/null || client_pkgs+=(python3-venv)
apt_install() {
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}
if [ ${#client_pkgs[@]} -gt 0 ]; then apt_install "${client_pkgs[@]}"; fi
[ -x .venv/bin/python ] || python3 -m venv .venv
client_libs=(pytest elasticache-auto-discovery pymemcache pylibmc)
if ! .venv/bin/python -c 'import pytest, elasticache_auto_discovery, pymemcache, pylibmc' 2>/dev/null; then
    if ! .venv/bin/pip install -q "${client_libs[@]}"; then
        # No pylibmc wheel for this platform: build it against Debian's libmemcached.
        apt_install libmemcached-dev zlib1g-dev
        .venv/bin/pip install -q "${client_libs[@]}"
    fi
fi
cargo build --bins
(cd tests/clients && ../../.venv/bin/python -m pytest -q)
# ---- end of client libraries ----

# ---- Binary-protocol clients (issue 4: binary protocol, SASL) ----
# pylibmc with binary=True, and python-binary-memcached (bmemcached) with SASL PLAIN against
# `tern -S`; see tests/clients/test_binary_clients.py. memccapable (libmemcached-tools,
# installed above) runs from tests/memccapable.rs in the cargo test run; TERN_REQUIRE_CLIENTS
# makes it fail there rather than skip if the tool is missing.
python3 -c 'import ensurepip, venv' 2>/dev/null || {
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
}
[ -x .venv/bin/python ] || python3 -m venv .venv
binary_client_libs=(pytest pylibmc python-binary-memcached)
if ! .venv/bin/python -c 'import pytest, pylibmc, bmemcached' 2>/dev/null; then
    if ! .venv/bin/pip install -q "${binary_client_libs[@]}"; then
        # No pylibmc wheel for this platform: build it against Debian's libmemcached.
        if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libmemcached-dev zlib1g-dev >/dev/null
        .venv/bin/pip install -q "${binary_client_libs[@]}"
    fi
fi
cargo build --bins
(cd tests/clients && ../../.venv/bin/python -m pytest -q test_binary_clients.py)
# ---- end of binary-protocol clients ----
