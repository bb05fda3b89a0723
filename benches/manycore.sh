#!/usr/bin/env bash
# Issue 15 and 12 on a many-core machine, in one run: the in-process store scaling benchmark at
# 1..8 threads, then tern against memcached with the servers on their own cores at several -t,
# through tern's load generator (benches/sidebyside.py) and memtier_benchmark when bundled.
#
#   benches/bundle.sh && benches/manycore.sh            # here, as a rehearsal (small machine)
#   OUT=/tmp/mc benches/manycore.sh                      # on the many-core machine, bundle carried
#
# Needs the folder benches/bundle.sh makes (BUNDLE, default .bundle) and python3; nothing else
# is installed there. Writes every step's output under OUT (default /tmp/manycore) as it goes,
# so a run cut short still leaves the steps it finished; summary.md collects the tables.
# The server CPUs are the first SERVER_CPUS (0-5: -t up to 6), the load generator has the rest
# (CLIENT_CPUS, 6-15). STEPS picks steps (default: all, in order: syscall store sides perthread
# memtier issue12 ab); each step's output (stdout and stderr) goes to OUT/<step>.txt.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
B=$(cd "${BUNDLE:-$root/.bundle}" && pwd)
out=${OUT:-/tmp/manycore}
mkdir -p "$out"
ncpu=$(nproc)
server_cpus=${SERVER_CPUS:-0-5}
client_cpus=${CLIENT_CPUS:-6-$((ncpu - 1))}
threads=${THREADS:-1,3,6}
duration=${DURATION:-3}
rounds=${ROUNDS:-2}
steps=${STEPS:-syscall store sides perthread memtier issue12 ab}
summary=$out/summary.md
export PYTHONUNBUFFERED=1 TERN_BIN=$B/bin/tern MEMCACHED_BIN=$B/bin/memcached

{
    echo "# manycore run $(date -u +%FT%TZ), bundle $(cat "$B/REVISION" 2>/dev/null)"
    echo "nproc $ncpu; $(grep -m1 'model name' /proc/cpuinfo); kernel $(uname -r)"
    echo "servers on $server_cpus, load on $client_cpus, -t $threads, ${rounds}x${duration}s"
} | tee "$summary"

step() { # name, timeout seconds, command...
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS
    echo "== $name" | tee -a "$summary"
    timeout "$limit" "$@" >"$out/$name.txt" 2>&1
    local rc=$?
    # The tables are the lines that start with '|' and the line before them (what was run).
    grep -B2 '^|' "$out/$name.txt" | grep -v '^--$' | grep -v '^sidebyside:' >>"$summary"
    echo "($name: exit $rc, $((SECONDS - t0)) s)" | tee -a "$summary"
}

# The CPUs named by the first N of a cpu list ("0-5", 3 -> "0,1,2").
first_cpus() {
    python3 -c "import sys; sys.path.insert(0, '$root/benches'); import servers
print(','.join(map(str, sorted(servers.cpu_list('$1'))[:$2])))"
}

for s in $steps; do
    case $s in
    syscall)
        # The kernel's floor: a system call, a loopback send+recv, a round trip between threads.
        step syscall 60 "$B/bin/syscall"
        ;;
    store)
        # The store alone, no network: per-thread rate at N threads against 1.
        STORE_SCALING_THREADS=1,2,4,6,8 STORE_SCALING_SECONDS=${STORE_SECONDS:-1} \
            step store_scaling 150 "$B/bin/store_scaling" --bench
        ;;
    sides)
        # Issue 15's three workloads at each -t, servers on their first -t CPUs.
        for t in ${threads//,/ }; do
            cpus=$(first_cpus "$server_cpus" "$t")
            step "sidebyside_t$t" 200 python3 "$root/benches/sidebyside.py" --no-build \
                --loadgen-bin "$B/bin/loadgen" --workloads getset,gets,sets \
                --server-threads "$t" --server-cpus "$cpus" --client-cpus "$client_cpus" \
                --conns 20 --rounds "$rounds" --duration "$duration" --warmup 0.5
        done
        ;;
    perthread)
        # The largest -t again with as many connections per server thread as -t 1 had (200):
        # is what a thread can do at -t N held back by the load's shape or by the server?
        t=${threads##*,}
        step "perthread_t$t" 200 python3 "$root/benches/sidebyside.py" --no-build \
            --loadgen-bin "$B/bin/loadgen" --workloads getset,gets,sets \
            --server-threads "$t" --server-cpus "$(first_cpus "$server_cpus" "$t")" \
            --client-cpus "$client_cpus" --conns $((20 * t)) --rounds "$rounds" \
            --duration "$duration" --warmup 0.5
        ;;
    ab)
        # A/B of two tern builds at the largest -t: bin/tern ("memcached" in the table) against
        # bin/tern_b ("tern"), when bundle.sh was given TERN_B (an experiment's build).
        if [ -x "$B/bin/tern_b" ]; then
            t=${threads##*,}
            step ab 200 python3 "$root/benches/sidebyside.py" --no-build \
                --loadgen-bin "$B/bin/loadgen" --workloads getset,gets,sets \
                --memcached-bin "$B/bin/tern" --tern-bin "$B/bin/tern_b" \
                --server-threads "$t" --server-cpus "$(first_cpus "$server_cpus" "$t")" \
                --client-cpus "$client_cpus" --conns 20 --rounds "$rounds" \
                --duration "$duration" --warmup 0.5
        fi
        ;;
    memtier)
        if [ -x "$B/bin/memtier_benchmark" ]; then
            MEMTIER_BIN=$B/bin/memtier_benchmark step memtier 200 python3 \
                "$root/benches/memtier_side.py" --threads "$threads" \
                --server-cpus "$server_cpus" --client-cpus "$client_cpus" --conns 50 \
                --duration "$duration" --rounds "$rounds"
        else
            echo "(memtier: not bundled, skipped)" | tee -a "$summary"
        fi
        ;;
    issue12)
        # Issue 12's other workloads, -t 4: 2,000 connections, binary, multi-get.
        step sidebyside_issue12 200 python3 "$root/benches/sidebyside.py" --no-build \
            --loadgen-bin "$B/bin/loadgen" --workloads manyconns,binary,multiget10 \
            --server-threads 4 --server-cpus 0-3 --client-cpus "$client_cpus" \
            --conns 20 --rounds "$rounds" --duration "$duration" --warmup 0.5
        ;;
    esac
done
echo "== done in $SECONDS s" | tee -a "$summary"
