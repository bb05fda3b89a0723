//! In-process capacity check: fills a `-m 64` store with `key:1`, `key:2`, ... and 10/100/1000
//! byte values until the first eviction, and prints the items held, bytes of `-m` per item,
//! the index size and this process's resident memory (VmRSS) after each fill.
//!
//! `cargo bench --bench store_capacity` (no criterion: one pass per size, a fresh process
//! matters for RSS, so pass the size as an argument to measure one: `-- 100`).
//! The protocol-level comparison against memcached (RSS of the whole daemon) belongs to the
//! server's capacity benchmark; this one isolates the store.

use std::sync::Arc;

use tern::clock::Clock;
use tern::store::{SetMode, SetRequest, Store, StoreConfig};

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10, 100, 1000]
    } else {
        sizes
    };
    let memcached = |len| match len {
        10 => 699_008.0,
        100 => 349_504.0,
        1000 => 56_640.0,
        _ => f64::NAN,
    };
    for len in sizes {
        let base = rss_kb();
        let store = Store::new(
            StoreConfig::default(),
            Arc::new(Clock::manual(1_700_000_000)),
        )
        .unwrap();
        let value = vec![b'v'; len];
        let mut key = Vec::new();
        let mut i = 0u64;
        let start = std::time::Instant::now();
        let mut worst = std::time::Duration::ZERO;
        let items = loop {
            i += 1;
            key.clear();
            key.extend_from_slice(b"key:");
            key.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
            let t = std::time::Instant::now();
            store.set(&SetRequest {
                mode: SetMode::Set,
                key: &key,
                flags: 0,
                exptime: 0,
                value: &value,
                cas: 0,
                ..Default::default()
            });
            worst = worst.max(t.elapsed());
            if i % 256 == 0 {
                let st = store.stats();
                if st.evictions > 0 {
                    break st;
                }
            }
        };
        let rss = rss_kb();
        println!(
            "value {len:5} B: {:9} items ({:.2}x memcached), {:.1} B of -m per item, index {:.1} MB ({:.2} B/item, hash_power_level {}), RSS {:.1} MB (store adds {:.1} MB), fill {:.2?}, slowest set {:.2?}",
            items.curr_items,
            items.curr_items as f64 / memcached(len),
            (64u64 << 20) as f64 / items.curr_items as f64,
            items.hash_bytes as f64 / 1e6,
            items.hash_bytes as f64 / items.curr_items as f64,
            items.hash_power_level,
            rss as f64 / 1024.0,
            (rss.saturating_sub(base)) as f64 / 1024.0,
            start.elapsed(),
            worst,
        );
        drop(store);
    }
}
