//! Store micro-benchmarks: get, set, delete and set-with-eviction on the store alone.
//!
//! `cargo bench --bench store` (criterion; each reports elements per second).

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tern::clock::Clock;
use tern::store::{
    ArithRequest, DeleteRequest, GetRequest, SetMode, SetRequest, Store, StoreConfig,
};

const KEYS: u64 = 100_000;

fn key(buf: &mut Vec<u8>, i: u64) {
    buf.clear();
    buf.extend_from_slice(b"key:");
    buf.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
}

fn filled(memory: usize, value_len: usize) -> Store {
    let config = StoreConfig {
        memory_limit: memory,
        ..StoreConfig::default()
    };
    let s = Store::new(config, Arc::new(Clock::manual(1_700_000_000))).unwrap();
    let v = vec![b'v'; value_len];
    let mut k = Vec::new();
    for i in 0..KEYS {
        key(&mut k, i);
        s.set(&SetRequest {
            mode: SetMode::Set,
            key: &k,
            flags: 0,
            exptime: 0,
            value: &v,
            cas: 0,
            ..Default::default()
        });
    }
    s
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("store");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_secs(1));

    let s = filled(64 << 20, 100);
    let mut k = Vec::new();
    let mut out = Vec::with_capacity(256);
    let mut i = 0u64;
    g.bench_function("get_hit_100B", |b| {
        b.iter(|| {
            i = (i + 7919) % KEYS;
            key(&mut k, i);
            s.get(
                &GetRequest {
                    key: &k,
                    touch: None,
                    ..Default::default()
                },
                |v| {
                    out.clear();
                    for c in v.value_chunks() {
                        out.extend_from_slice(c);
                    }
                },
            )
        })
    });
    g.bench_function("get_miss", |b| {
        b.iter(|| {
            i = (i + 7919) % KEYS;
            key(&mut k, i + KEYS);
            s.get(
                &GetRequest {
                    key: &k,
                    touch: None,
                    ..Default::default()
                },
                |_| (),
            )
        })
    });
    let v = vec![b'w'; 100];
    g.bench_function("set_overwrite_100B", |b| {
        b.iter(|| {
            i = (i + 7919) % KEYS;
            key(&mut k, i);
            s.set(&SetRequest {
                mode: SetMode::Set,
                key: &k,
                flags: 0,
                exptime: 0,
                value: &v,
                cas: 0,
                ..Default::default()
            })
            .0
        })
    });
    g.bench_function("delete_then_set_100B", |b| {
        b.iter(|| {
            i = (i + 7919) % KEYS;
            key(&mut k, i);
            s.delete(&DeleteRequest {
                key: &k,
                cas: None,
                ..Default::default()
            });
            s.set(&SetRequest {
                mode: SetMode::Set,
                key: &k,
                flags: 0,
                exptime: 0,
                value: &v,
                cas: 0,
                ..Default::default()
            })
            .0
        })
    });
    g.bench_function("incr", |b| {
        s.set(&SetRequest {
            mode: SetMode::Set,
            key: b"counter",
            flags: 0,
            exptime: 0,
            value: b"0",
            cas: 0,
            ..Default::default()
        });
        b.iter(|| {
            s.arith(&ArithRequest {
                key: b"counter",
                incr: true,
                delta: 1,
                initial: None,
                cas: 0,
                ..Default::default()
            })
        })
    });

    // A 4 MB store written with ever-new keys: every set evicts.
    let small = filled(4 << 20, 100);
    let mut n = KEYS;
    g.bench_function("set_with_eviction_100B", |b| {
        b.iter(|| {
            n += 1;
            key(&mut k, n);
            small
                .set(&SetRequest {
                    mode: SetMode::Set,
                    key: &k,
                    flags: 0,
                    exptime: 0,
                    value: &v,
                    cas: 0,
                    ..Default::default()
                })
                .0
        })
    });
    g.bench_function("set_1MB_value", |b| {
        let big = vec![b'b'; 1 << 20];
        let s = Store::new(
            StoreConfig {
                memory_limit: 64 << 20,
                item_size_max: 2 << 20,
                ..StoreConfig::default()
            },
            Arc::new(Clock::manual(1_700_000_000)),
        )
        .unwrap();
        b.iter_batched(
            || (),
            |_| {
                s.set(&SetRequest {
                    mode: SetMode::Set,
                    key: b"big",
                    flags: 0,
                    exptime: 0,
                    value: &big,
                    cas: 0,
                    ..Default::default()
                })
                .0
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
