#!/usr/bin/env bash
# Packs what benches/manycore.sh runs into one folder that runs on another x86-64 Linux machine
# with nothing installed: tern (release), memcached, the load generator and the store scaling
# benchmark, each with the shared libraries and the loader it was linked against, started through
# a wrapper that `exec`s the loader (so a server's pid is the server's, for /proc/<pid>/stat).
#
#   benches/bundle.sh                     # -> .bundle/ (git-ignored)
#   MEMTIER_BIN=/path/memtier_benchmark benches/bundle.sh    # memtier too, when built locally
#
# TERN_B=/path/to/another/tern adds it as bin/tern_b for manycore.sh's A/B step, started with
# the environment in TERN_B_ENV (e.g. TERN_B_ENV="SOME_KNOB=1"). BUNDLE names another folder. memtier_benchmark is never built by this repository: pass one you
# built yourself, or leave it out and manycore.sh skips its memtier runs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${BUNDLE:-$root/.bundle}
cd "$root"

cargo build --release
bench_exe() {
    cargo bench --bench "$1" --no-run --message-format=json |
        python3 -c 'import json, sys
name = sys.argv[1]
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == name:
        print(m["executable"])' "$1"
}
loadgen=$(bench_exe loadgen)
scaling=$(bench_exe store_scaling)
syscall=$(bench_exe syscall)
tern=${CARGO_TARGET_DIR:-$root/target}/release/tern
memcached=${MEMCACHED_BIN:-/usr/bin/memcached}

rm -rf "$out"
mkdir -p "$out/bin" "$out/real" "$out/lib"
pack() { # name, binary[, environment for the wrapper to set]
    cp -L "$2" "$out/real/$1"
    strip --strip-debug "$out/real/$1" 2>/dev/null || true
    ldd "$2" | awk '/=> \// { print $3 } /^\t\/.*ld-linux/ { print $1 }' | while read -r lib; do
        cp -L -n "$lib" "$out/lib/$(basename "$lib")"
    done
    cat >"$out/bin/$1" <<WRAP
#!/bin/sh
d=\$(cd "\$(dirname "\$0")/.." && pwd)
exec ${3:+env $3 }"\$d/lib/ld-linux-x86-64.so.2" --library-path "\$d/lib" "\$d/real/$1" "\$@"
WRAP
    chmod +x "$out/bin/$1"
}
pack tern "$tern"
pack memcached "$memcached"
pack loadgen "$loadgen"
pack store_scaling "$scaling"
pack syscall "$syscall"
if [ -n "${TERN_B:-}" ]; then
    pack tern_b "$TERN_B" "${TERN_B_ENV:-}"
fi
if [ -n "${MEMTIER_BIN:-}" ]; then
    pack memtier_benchmark "$MEMTIER_BIN"
fi
(cd "$out" && git -C "$root" rev-parse --short HEAD >REVISION 2>/dev/null || true)
du -sh "$out"
ls "$out/bin"
