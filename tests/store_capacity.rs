//! The capacity contract of issue 3: a `-m 64` store filled with `key:1`, `key:2`, ... until the
//! first eviction must hold at least 2.0x / 1.5x / 1.1x the items memcached 1.6.18 holds with
//! 10- / 100- / 1000-byte values (699,008 / 349,504 / 56,640 measured). Items only; resident
//! memory is the capacity benchmark's job. See docs/store.md for the arithmetic.

use std::sync::Arc;

use tern::clock::Clock;
use tern::store::{SetMode, SetRequest, Store, StoreConfig, StoreOutcome};

/// Fills a fresh `-m 64` store until it first evicts; returns the items it held then.
fn fill_until_eviction(value_len: usize) -> u64 {
    let store = Store::new(
        StoreConfig::default(),
        Arc::new(Clock::manual(1_700_000_000)),
    )
    .unwrap();
    let value = vec![b'v'; value_len];
    let mut key = Vec::with_capacity(32);
    let mut i: u64 = 0;
    loop {
        for _ in 0..512 {
            i += 1;
            key.clear();
            key.extend_from_slice(b"key:");
            key.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
            assert_eq!(
                store
                    .set(&SetRequest {
                        mode: SetMode::Set,
                        key: &key,
                        flags: 0,
                        exptime: 0,
                        value: &value,
                        cas: 0,
                        ..Default::default()
                    })
                    .0,
                StoreOutcome::Stored
            );
        }
        let st = store.stats();
        if st.evictions > 0 {
            eprintln!(
                "value {value_len} B: {} items at first eviction ({} B/item of -m), index {} B ({:.2} B/item), hash_power_level {}",
                st.curr_items,
                format_args!("{:.1}", (64u64 << 20) as f64 / st.curr_items as f64),
                st.hash_bytes,
                st.hash_bytes as f64 / st.curr_items as f64,
                st.hash_power_level
            );
            return st.curr_items;
        }
    }
}

#[test]
fn capacity_10_byte_values_is_at_least_twice_memcached() {
    let n = fill_until_eviction(10);
    assert!(n >= 1_398_016, "{n} items");
}

#[test]
fn capacity_100_byte_values_is_at_least_one_and_a_half_memcached() {
    let n = fill_until_eviction(100);
    assert!(n >= 524_256, "{n} items");
}

#[test]
fn capacity_1000_byte_values_is_at_least_1_1_memcached() {
    let n = fill_until_eviction(1000);
    assert!(n >= 62_304, "{n} items");
}
