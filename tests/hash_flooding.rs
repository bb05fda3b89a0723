//! Hash flooding: keys chosen to collide cannot degrade the store's index.
//!
//! The store hashes keys with `ahash::RandomState::new()` (src/store/mod.rs), seeded from the
//! operating system's random source once per process and varied per instance, and picks a key's
//! shard from the hash's low bits and its index slot from the high ones. An attacker who knew
//! the seed could choose keys that all land in one shard (and one run of slots): that shard's
//! index would grow without end while its lock serialised every request for them. With a
//! random seed the same keys spread like any others.
//!
//! Timing-free: whether any shard's index had to grow shows in the store's `hash_bytes`. At
//! `-m 64` there are 16 shards of 4,096 index slots, which grow past a load of 0.8; 40,000
//! evenly spread keys load each shard to about 0.61 (2,500 keys, a standard deviation of 48),
//! so no shard grows, while the same keys in one shard would grow it ten times over.

use std::sync::Arc;

use tern::clock::Clock;
use tern::store::{SetMode, SetRequest, Store, StoreConfig, StoreOutcome, SHARDS};

/// Keys in the flood.
const FLOOD: usize = 40_000;

fn store() -> Store {
    let clock = Arc::new(Clock::manual(1_700_000_000));
    Store::new(StoreConfig::default(), clock).expect("a default store")
}

/// `FLOOD` keys whose hashes under `seeded` all pick shard 0 (low bits 0) — what an attacker
/// would send if the store's seed were fixed and known.
fn colliding_keys(seeded: &ahash::RandomState) -> Vec<String> {
    let mask = SHARDS as u64 - 1;
    (0u64..)
        .map(|n| format!("flood:{n}"))
        .filter(|k| seeded.hash_one(k.as_bytes()) & mask == 0)
        .take(FLOOD)
        .collect()
}

fn insert_all(s: &Store, keys: &[String]) {
    for k in keys {
        let (outcome, _) = s.set(&SetRequest {
            mode: SetMode::Set,
            key: k.as_bytes(),
            value: b"v",
            ..Default::default()
        });
        assert!(matches!(outcome, StoreOutcome::Stored), "{k}: {outcome:?}");
    }
}

#[test]
fn keys_colliding_under_a_fixed_seed_do_not_grow_the_index() {
    // Any fixed seed stands in for "the seed the attacker knows".
    let fixed = ahash::RandomState::with_seeds(1, 2, 3, 4);
    let keys = colliding_keys(&fixed);
    // Under that seed every key would land in one shard, ten times its index's capacity.
    let mask = SHARDS as u64 - 1;
    assert!(keys
        .iter()
        .all(|k| fixed.hash_one(k.as_bytes()) & mask == 0));

    for _ in 0..2 {
        // Two stores: each draws its own seed, and neither is flooded.
        let s = store();
        let fresh = s.stats();
        insert_all(&s, &keys);
        let after = s.stats();
        assert_eq!(after.curr_items, FLOOD as u64);
        assert_eq!(
            after.hash_bytes, fresh.hash_bytes,
            "a shard's index grew: the crafted keys did not spread over the shards"
        );
        assert_eq!(after.hash_power_level, fresh.hash_power_level);
        assert!(!after.hash_is_expanding);
    }
}

/// The control: the observable works. Enough ordinary keys to load every shard past 0.8 do
/// grow the index, so an unchanged `hash_bytes` above means the flood spread out.
#[test]
fn index_growth_shows_in_hash_bytes() {
    let s = store();
    let fresh = s.stats();
    let keys: Vec<String> = (0..60_000).map(|n| format!("plain:{n}")).collect();
    insert_all(&s, &keys);
    assert!(s.stats().hash_bytes > fresh.hash_bytes);
}
