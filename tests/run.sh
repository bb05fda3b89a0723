#!/usr/bin/env bash
# Runs every tern test: unit, property and integration tests of both crates, the differential
# replay against a real memcached 1.6, memccapable, a short fuzzing run and the client-library
# tests.
# Installs what the tests need first (Debian packages; a Python venv under .venv).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
apt_install() {
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

# Debian packages: the reference memcached, memccapable, nc, twemproxy, Python's venv, promtool.
need_pkgs=()
command -v memcached >/dev/null || need_pkgs+=(memcached)
command -v memccapable >/dev/null || need_pkgs+=(libmemcached-tools)
command -v nc >/dev/null || need_pkgs+=(netcat-openbsd)
command -v nutcracker >/dev/null || need_pkgs+=(nutcracker)
python3 -c 'import ensurepip, venv' 2>/dev/null || need_pkgs+=(python3-venv)
command -v prove >/dev/null || need_pkgs+=(perl)
command -v dpkg-source >/dev/null || need_pkgs+=(dpkg-dev)
# promtool (tests/metrics.rs checks the /metrics output with `promtool check metrics`).
command -v promtool >/dev/null || need_pkgs+=(prometheus)
if [ ${#need_pkgs[@]} -gt 0 ]; then apt_install "${need_pkgs[@]}"; fi

# The Rust tests. The differential replays and random streams against memcached are on
# (memcached is installed; tests/random_differential.rs runs 2,000 streams),
# and memccapable must run rather than skip (tests/memccapable.rs).
export TERN_DIFF_MEMCACHED="${TERN_DIFF_MEMCACHED:-1}"
export TERN_REQUIRE_CLIENTS="${TERN_REQUIRE_CLIENTS:-1}"
cargo test --workspace --all-targets --no-fail-fast

# A short fuzzing run of every target (fuzz/, docs/testing.md: text_parse, binary_parse, conn,
# meta_parse): seconds each, from the seeds the test scenarios give. A finding fails the
# script; its input is left in fuzz/artifacts/.
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
python3 fuzz/seed_corpus.py
for target in $(cd fuzz && cargo +nightly fuzz list); do
    (cd fuzz && cargo +nightly fuzz run "$target" -O -- -max_total_time="${TERN_FUZZ_SECONDS:-10}")
done

# Client libraries against tern processes on loopback (tests/clients/): auto-discovery and
# consistent hashing over three nodes with elasticache-auto-discovery, pymemcache, pylibmc
# (ketama) and twemproxy (issue 5); pylibmc with binary=True and python-binary-memcached with
# SASL (issue 4); meta-memcache, a client of the meta protocol only (issue 10).
[ -x .venv/bin/python ] || python3 -m venv .venv
client_libs=(pytest elasticache-auto-discovery pymemcache pylibmc python-binary-memcached
    meta-memcache)
if ! .venv/bin/python -c 'import pytest, elasticache_auto_discovery, pymemcache, pylibmc, bmemcached, meta_memcache' 2>/dev/null; then
    if ! .venv/bin/pip install -q "${client_libs[@]}"; then
        # No pylibmc wheel for this platform: build it against Debian's libmemcached.
        apt_install libmemcached-dev zlib1g-dev
        .venv/bin/pip install -q "${client_libs[@]}"
    fi
fi
cargo build --bins
(cd tests/clients && ../../.venv/bin/python -m pytest -q -rs)

# memcached 1.6.18's own test suite (t/*.t, from Debian's source package) against Debian's
# memcached and against tern (issue 13): tern must pass every file memcached passes, except
# those in tests/memcached-suite/accepted.txt and pending.txt (see its README). About 4
# minutes per server on 2 cores.
cargo build --release --bins
python3 tests/memcached-suite/run.py

# The soak (benches/soak.py, docs/testing.md "Soak"): RSS stays near -m, no calcification after
# the value sizes shift (hit rate within 5% of a fresh server's), nothing lost or corrupted.
# Phases of 30 s: about 2 minutes.
python3 benches/soak.py --phase-seconds "${TERN_SOAK_SECONDS:-30}"
