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
