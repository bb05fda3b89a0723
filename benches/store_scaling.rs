//! Store scaling with threads (issue 15): N threads hammer one [`Store`] through its API, no
//! network, and the per-thread rate at N threads is compared with the rate of one thread.
//!
//! `cargo bench --bench store_scaling` (criterion; `-- mix` picks a workload by name). Each
//! benchmark is `<workload>/<threads>t`: every thread does the same number of operations after a
//! barrier, and the time is the wall clock from the barrier to the last thread's end, divided by
//! the operations of one thread. So criterion's rate is the per-thread rate; N times it is the
//! store's. Workloads (100-byte values over 100,000 keys, all present, chosen uniformly and
//! independently by each thread, as memtier does): `mix` is 1 set to 10 gets, `get` gets only,
//! `set` sets only. Threads are pinned to distinct CPUs when there are enough (the 4-thread case
//! on 2 CPUs shows oversubscription: two threads per CPU).
//!
//! `get_hot` gets and `set_hot` sets over 1,000 keys that stay in cache, so that what the
//! threads share is all that costs; the `_disjoint_keys` and `_private_stores` cases share less
//! and less (see [`Layout`]).
//!
//! After criterion's own report a table prints each case's per-thread rate and its ratio to the
//! 1-thread rate (1.00 is perfect scaling), and the CPU time per operation with the threads'
//! voluntary and involuntary context switches: on a machine with other load the wall clock
//! measures the scheduler's share, and CPU ns/op is what contention shows up in
//! (docs/performance.md, "Scaling with cores").
//!
//! `STORE_SCALING_THREADS=1,2,4,8` sets the thread counts of the shared-store cases (for a
//! many-core machine; `benches/manycore.sh` runs it there) and `STORE_SCALING_SECONDS` the
//! measured time per case.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use tern::clock::Clock;
use tern::store::{GetRequest, SetMode, SetRequest, Store, StoreConfig};

const KEYS: usize = 100_000;
const VALUE_LEN: usize = 100;

/// How the threads share the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// One store; every thread draws from all the keys (the server's case).
    Shared,
    /// One store; thread `t` of `n` draws only keys `i % n == t`: no item is shared, the
    /// shards (locks, counters, index) still are.
    DisjointKeys,
    /// One store per thread, each holding its thread's keys: nothing is shared. The same
    /// keys and bytes in all as `DisjointKeys`, so only sharing differs.
    PrivateStores,
}

/// One benchmark: a workload at a thread count.
#[derive(Debug, Clone, Copy)]
struct Case {
    /// `mix` (1 set to 10 gets), `get` (gets only) or `set` (sets only); a suffix names the
    /// layout when it is not `Shared`.
    name: &'static str,
    /// Gets after each set (`None`: gets only; `Some(0)`: sets only).
    gets_per_set: Option<u32>,
    layout: Layout,
    threads: usize,
    /// The 1-thread case this one's per-thread rate is compared with.
    base: &'static str,
    /// Keys drawn from: all of them, or the first few (a hot set that stays in cache, where
    /// what the threads share is all that is left to cost).
    keys: usize,
}

const fn case(name: &'static str, gets_per_set: Option<u32>, threads: usize) -> Case {
    Case {
        name,
        gets_per_set,
        layout: Layout::Shared,
        threads,
        base: name,
        keys: KEYS,
    }
}

/// The thread counts of the shared-store cases: `$STORE_SCALING_THREADS` (e.g. `1,2,4,8` on a
/// many-core machine), else 1 and 2 (the two cores of the development machine) and 4 (two per
/// CPU there).
fn thread_counts() -> Vec<usize> {
    let mut counts: Vec<usize> = std::env::var("STORE_SCALING_THREADS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_default();
    counts.retain(|&n| n > 0);
    if !counts.contains(&1) {
        // Every ratio is to the 1-thread rate.
        counts.insert(0, 1);
    }
    if counts.len() == 1 {
        counts = vec![1, 2, 4];
    }
    counts
}

/// Each workload at each thread count; and the mix and the hot gets at 2 threads with less and
/// less shared, to tell what the threads contend for.
fn cases() -> Vec<Case> {
    let threads = thread_counts();
    let mut all = Vec::new();
    let workloads = [
        ("mix", Some(10), KEYS),
        ("get", None, KEYS),
        ("set", Some(0), KEYS),
        ("get_hot", None, HOT_KEYS),
        ("set_hot", Some(0), HOT_KEYS),
    ];
    for (name, gets_per_set, keys) in workloads {
        for &n in &threads {
            all.push(Case {
                keys,
                ..case(name, gets_per_set, n)
            });
        }
    }
    all.push(Case {
        name: "mix_disjoint_keys",
        layout: Layout::DisjointKeys,
        base: "mix",
        ..case("mix", Some(10), 2)
    });
    all.push(Case {
        name: "mix_private_stores",
        layout: Layout::PrivateStores,
        base: "mix",
        ..case("mix", Some(10), 2)
    });
    all.push(Case {
        name: "get_hot_private_stores",
        layout: Layout::PrivateStores,
        base: "get_hot",
        keys: HOT_KEYS,
        ..case("get_hot", None, 2)
    });
    all.push(Case {
        name: "set_hot_disjoint_keys",
        layout: Layout::DisjointKeys,
        base: "set_hot",
        keys: HOT_KEYS,
        ..case("set_hot", Some(0), 2)
    });
    all.push(Case {
        name: "set_hot_private_stores",
        layout: Layout::PrivateStores,
        base: "set_hot",
        keys: HOT_KEYS,
        ..case("set_hot", Some(0), 2)
    });
    all
}

/// The hot set of `get_hot` and `set_hot`: 1,000 keys (their items and index slots fit in a core's cache).
const HOT_KEYS: usize = 1_000;

/// The keys `key:0 .. key:99999`, formatted once.
struct Keys {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Keys {
    fn new() -> Keys {
        let mut bytes = Vec::new();
        let mut ends = Vec::with_capacity(KEYS);
        for i in 0..KEYS {
            bytes.extend_from_slice(b"key:");
            bytes.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
            ends.push(bytes.len());
        }
        Keys { bytes, ends }
    }

    #[inline]
    fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }
}

/// A 64 MiB store holding the keys `i` with `i % parts == part`.
fn filled(keys: &Keys, part: usize, parts: usize) -> Store {
    let config = StoreConfig {
        memory_limit: 64 << 20,
        ..StoreConfig::default()
    };
    let s = Store::new(config, Arc::new(Clock::manual(1_700_000_000))).unwrap();
    let v = [b'v'; VALUE_LEN];
    for i in (part..KEYS).step_by(parts) {
        s.set(&SetRequest {
            mode: SetMode::Set,
            key: keys.get(i),
            value: &v,
            ..Default::default()
        });
    }
    s
}

/// Pins the calling thread to CPU `cpu` (Linux); elsewhere, or if refused, it runs unpinned.
fn pin(cpu: usize) {
    #[cfg(target_os = "linux")]
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside it (cpu is below
    // CPU_SETSIZE, checked); sched_setaffinity(0, ..) only reads the set for this thread.
    unsafe {
        if cpu >= libc::CPU_SETSIZE as usize {
            return;
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cpu;
}

/// The CPUs this process may run on, in order.
fn allowed_cpus() -> Vec<usize> {
    #[cfg(target_os = "linux")]
    // SAFETY: as in `pin`; sched_getaffinity fills the set it is given.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
                .filter(|&c| libc::CPU_ISSET(c, &set))
                .collect();
            if !cpus.is_empty() {
                return cpus;
            }
        }
    }
    (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect()
}

/// One thread's run: `ops` operations on the keys `i % parts == part`, drawn from its own random
/// sequence (xorshift seeded by `seed`). Returns the gets that did not find a 100-byte value.
#[allow(clippy::too_many_arguments)]
fn worker(
    store: &Store,
    keys: &Keys,
    (part, parts): (usize, usize),
    nkeys: usize,
    gets_per_set: Option<u32>,
    seed: u64,
    ops: u64,
) -> u64 {
    let span = (nkeys / parts) as u64;
    let value = [b'w'; VALUE_LEN];
    let mut out = [0u8; 256];
    let mut x = seed | 1;
    let mut misses = 0u64;
    let mut phase = 0u32;
    for _ in 0..ops {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let key = keys.get(part + parts * (x % span) as usize);
        let is_set = match gets_per_set {
            None => false,
            Some(n) => {
                let set = phase == 0;
                phase = if phase == n { 0 } else { phase + 1 };
                set
            }
        };
        if is_set {
            store.set(&SetRequest {
                mode: SetMode::Set,
                key,
                value: &value,
                ..Default::default()
            });
        } else {
            let hit = store.get(
                &GetRequest {
                    key,
                    ..Default::default()
                },
                |v| {
                    let mut at = 0;
                    for c in v.value_chunks() {
                        out[at..at + c.len()].copy_from_slice(c);
                        at += c.len();
                    }
                    at
                },
            );
            misses += u64::from(!matches!(hit, tern::store::Lookup::Hit(VALUE_LEN)));
        }
    }
    misses
}

/// CPU time and context switches of the calling thread so far.
#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    cpu: Duration,
    /// Voluntary switches: the thread slept, here only by parking on a contended lock.
    voluntary: u64,
    /// Involuntary switches: the scheduler took the CPU away (other threads, other load).
    involuntary: u64,
}

impl Usage {
    fn now() -> Usage {
        #[cfg(target_os = "linux")]
        // SAFETY: getrusage and clock_gettime only write the zeroed structs they are given.
        unsafe {
            let mut ts: libc::timespec = std::mem::zeroed();
            let mut ru: libc::rusage = std::mem::zeroed();
            libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
            libc::getrusage(libc::RUSAGE_THREAD, &mut ru);
            Usage {
                cpu: Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32),
                voluntary: ru.ru_nvcsw as u64,
                involuntary: ru.ru_nivcsw as u64,
            }
        }
        #[cfg(not(target_os = "linux"))]
        Usage::default()
    }

    fn since(self, before: Usage) -> Usage {
        Usage {
            cpu: self.cpu.saturating_sub(before.cpu),
            voluntary: self.voluntary - before.voluntary,
            involuntary: self.involuntary - before.involuntary,
        }
    }

    fn add(&mut self, o: Usage) {
        self.cpu += o.cpu;
        self.voluntary += o.voluntary;
        self.involuntary += o.involuntary;
    }
}

/// Wall-clock time for `threads` threads to do `ops` operations each, started together, and
/// what the threads used together.
fn run(
    stores: &[Store],
    keys: &Keys,
    cpus: &[usize],
    case: &Case,
    ops: u64,
    round: u64,
) -> (Duration, Usage) {
    let threads = case.threads;
    let barrier = Barrier::new(threads + 1);
    let misses = AtomicU64::new(0);
    let usage = Mutex::new(Usage::default());
    let start = std::thread::scope(|scope| {
        for t in 0..threads {
            let (barrier, misses, usage) = (&barrier, &misses, &usage);
            scope.spawn(move || {
                pin(cpus[t % cpus.len()]);
                let seed = (round << 8 | t as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                barrier.wait();
                let before = Usage::now();
                let (store, part) = match case.layout {
                    Layout::Shared => (&stores[0], (0, 1)),
                    Layout::DisjointKeys => (&stores[0], (t, threads)),
                    Layout::PrivateStores => (&stores[t], (t, threads)),
                };
                let m = worker(store, keys, part, case.keys, case.gets_per_set, seed, ops);
                let used = Usage::now().since(before);
                misses.fetch_add(m, Ordering::Relaxed);
                usage.lock().unwrap().add(used);
            });
        }
        barrier.wait();
        Instant::now()
    });
    let elapsed = start.elapsed();
    // Every key is present and no set can fail in 64 MiB: a miss means the store lost an item.
    assert_eq!(misses.load(Ordering::Relaxed), 0, "a get missed");
    (elapsed, usage.into_inner().unwrap())
}

/// What every criterion sample of one case added up to.
#[derive(Debug, Default, Clone, Copy)]
struct Total {
    wall: Duration,
    /// Operations of one thread.
    ops: u64,
    /// Summed over the threads.
    usage: Usage,
}

/// Each case run, with its totals over every criterion sample.
type Totals = Mutex<Vec<(Case, Total)>>;

fn bench(c: &mut Criterion, totals: &Totals) {
    let keys = Keys::new();
    let shared = [filled(&keys, 0, 1)];
    let cpus = allowed_cpus();
    let mut round = 0u64;
    let mut private: Vec<Store>;
    // Measured seconds per case (`$STORE_SCALING_SECONDS`, default 3), a third of it warming up.
    let seconds = std::env::var("STORE_SCALING_SECONDS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .map_or(Duration::from_secs(3), Duration::from_secs_f64);
    for case in cases() {
        let id = format!("{}/{}t", case.name, case.threads);
        let stores: &[Store] = if case.layout == Layout::PrivateStores {
            private = (0..case.threads)
                .map(|t| filled(&keys, t, case.threads))
                .collect();
            &private
        } else {
            &shared
        };
        let mut g = c.benchmark_group("store_scaling");
        g.throughput(Throughput::Elements(1));
        g.measurement_time(seconds);
        g.warm_up_time(seconds / 3);
        g.bench_function(&id, |b| {
            b.iter_custom(|iters| {
                round += 1;
                let (d, u) = run(stores, &keys, &cpus, &case, iters, round);
                let mut t = totals.lock().unwrap();
                let i = match t
                    .iter()
                    .position(|(k, _)| k.name == case.name && k.threads == case.threads)
                {
                    Some(i) => i,
                    None => {
                        t.push((case, Total::default()));
                        t.len() - 1
                    }
                };
                let total = &mut t[i].1;
                total.wall += d;
                total.ops += iters;
                total.usage.add(u);
                d
            })
        });
        g.finish();
    }
}

fn main() {
    let totals: Totals = Mutex::new(Vec::new());
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c, &totals);
    c.final_summary();
    let t = totals.into_inner().unwrap();
    if t.is_empty() {
        return;
    }
    println!(
        "\nper-thread rate (wall clock) and its ratio to 1 thread, on {} CPUs; CPU time per \
         operation and voluntary context switches (lock parking) per million operations",
        allowed_cpus().len()
    );
    println!(
        "| workload | threads | per-thread Mops/s | total Mops/s | ratio to 1 thread | \
         CPU ns/op | parks/Mop | preempted/Mop |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let rate = |t: &Total| t.ops as f64 / t.wall.as_secs_f64() / 1e6;
    for (case, total) in &t {
        let (name, threads) = (case.name, case.threads);
        let one = t
            .iter()
            .find(|(k, _)| k.name == case.base && k.threads == 1)
            .map(|(_, t1)| rate(t1));
        let r = rate(total);
        let ratio = one.map_or("-".to_string(), |o| format!("{:.2}", r / o));
        let all_ops = (total.ops * threads as u64) as f64;
        println!(
            "| {name} | {threads} | {r:.2} | {:.2} | {ratio} | {:.0} | {:.0} | {:.0} |",
            r * threads as f64,
            total.usage.cpu.as_nanos() as f64 / all_ops,
            total.usage.voluntary as f64 * 1e6 / all_ops,
            total.usage.involuntary as f64 * 1e6 / all_ops,
        );
    }
}
