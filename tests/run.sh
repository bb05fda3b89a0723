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
