//! memcached 1.6.18 semantics of the store API: modes, CAS, TTL, flush, incr/decr, touch,
//! chained items, -C and -M.

use std::sync::Arc;

use tern::clock::Clock;
use tern::store::{ArithOutcome, DeleteOutcome, Lookup, SetMode, Store, StoreConfig, StoreOutcome};

fn store_with(config: StoreConfig) -> (Store, Arc<Clock>) {
    let clock = Arc::new(Clock::manual(1_700_000_000));
    (Store::new(config, clock.clone()).unwrap(), clock)
}

fn store() -> (Store, Arc<Clock>) {
    store_with(StoreConfig::default())
}

fn get(s: &Store, key: &[u8]) -> Option<(Vec<u8>, u32, u64)> {
    match s.get(key, |v| {
        let mut out = Vec::with_capacity(v.value_len());
        for c in v.value_chunks() {
            out.extend_from_slice(c);
        }
        assert_eq!(out.len(), v.value_len());
        assert_eq!(v.key(), key);
        (out, v.flags(), v.cas())
    }) {
        Lookup::Hit(x) => Some(x),
        _ => None,
    }
}

fn set(s: &Store, key: &[u8], value: &[u8]) -> StoreOutcome {
    s.store(SetMode::Set, key, 0, 0, value, 0)
}

#[test]
fn set_get_delete_round_trip_with_flags() {
    let (s, _) = store();
    assert_eq!(
        s.store(SetMode::Set, b"a", 42, 0, b"hello", 0),
        StoreOutcome::Stored
    );
    let (v, flags, cas) = get(&s, b"a").unwrap();
    assert_eq!((&v[..], flags), (&b"hello"[..], 42));
    assert_ne!(cas, 0);
    assert_eq!(s.delete(b"a"), Lookup::Hit(()));
    assert_eq!(s.delete(b"a"), Lookup::Miss);
    assert!(get(&s, b"a").is_none());
    assert_eq!(s.stats().curr_items, 0);
    assert_eq!(s.stats().total_items, 1);
}

#[test]
fn empty_values_and_max_length_keys_work() {
    let (s, _) = store();
    let key = vec![b'k'; 250];
    assert_eq!(set(&s, &key, b""), StoreOutcome::Stored);
    assert_eq!(get(&s, &key).unwrap().0, b"");
}

#[test]
fn add_replace_append_prepend_follow_their_conditions() {
    let (s, _) = store();
    assert_eq!(
        s.store(SetMode::Replace, b"k", 0, 0, b"x", 0),
        StoreOutcome::NotStored
    );
    assert_eq!(
        s.store(SetMode::Append, b"k", 0, 0, b"x", 0),
        StoreOutcome::NotStored
    );
    assert_eq!(
        s.store(SetMode::Prepend, b"k", 0, 0, b"x", 0),
        StoreOutcome::NotStored
    );
    assert_eq!(
        s.store(SetMode::Add, b"k", 7, 100, b"mid", 0),
        StoreOutcome::Stored
    );
    assert_eq!(
        s.store(SetMode::Add, b"k", 0, 0, b"x", 0),
        StoreOutcome::NotStored
    );
    assert_eq!(
        s.store(SetMode::Append, b"k", 1, 0, b">>", 0),
        StoreOutcome::Stored
    );
    assert_eq!(
        s.store(SetMode::Prepend, b"k", 2, 0, b"<<", 0),
        StoreOutcome::Stored
    );
    let (v, flags, _) = get(&s, b"k").unwrap();
    // append/prepend keep flags and exptime.
    assert_eq!((&v[..], flags), (&b"<<mid>>"[..], 7));
    assert_eq!(
        s.store(SetMode::Replace, b"k", 3, 0, b"new", 0),
        StoreOutcome::Stored
    );
    assert_eq!(
        get(&s, b"k").unwrap(),
        (b"new".to_vec(), 3, get(&s, b"k").unwrap().2)
    );
}

#[test]
fn append_keeps_exptime() {
    let (s, clock) = store();
    s.store(SetMode::Set, b"k", 0, 10, b"a", 0);
    s.store(SetMode::Append, b"k", 0, 0, b"b", 0);
    clock.advance(11);
    assert_eq!(s.get(b"k", |_| ()), Lookup::Expired);
}

#[test]
fn cas_changes_on_every_modification_but_not_on_touch() {
    let (s, _) = store();
    set(&s, b"k", b"1");
    let c1 = get(&s, b"k").unwrap().2;
    assert_eq!(
        s.store(SetMode::Cas, b"k", 0, 0, b"2", c1 + 1),
        StoreOutcome::Exists
    );
    assert_eq!(
        s.store(SetMode::Cas, b"k", 0, 0, b"2", c1),
        StoreOutcome::Stored
    );
    let c2 = get(&s, b"k").unwrap().2;
    assert_ne!(c1, c2);
    assert_eq!(
        s.store(SetMode::Cas, b"k", 0, 0, b"3", c1),
        StoreOutcome::Exists
    );
    assert_eq!(
        s.store(SetMode::Cas, b"nope", 0, 0, b"3", c1),
        StoreOutcome::NotFound
    );
    s.store(SetMode::Append, b"k", 0, 0, b"x", 0);
    let c3 = get(&s, b"k").unwrap().2;
    assert_ne!(c2, c3);
    // touch keeps the CAS, also when it has to give the item an exptime field.
    assert_eq!(s.touch(b"k", 100), Lookup::Hit(()));
    assert_eq!(get(&s, b"k").unwrap().2, c3);
    assert_eq!(s.touch(b"k", 0), Lookup::Hit(()));
    assert_eq!(get(&s, b"k").unwrap().2, c3);
}

#[test]
fn incr_decr_follow_do_add_delta() {
    let (s, _) = store();
    set(&s, b"n", b"10");
    let c0 = get(&s, b"n").unwrap().2;
    // decr "10" by 1 rewrites in place, padded with a space: "9 " (length 2).
    assert!(matches!(
        s.arith(b"n", false, 1, None),
        ArithOutcome::Updated { value: 9, .. }
    ));
    let (v, _, c1) = get(&s, b"n").unwrap();
    assert_eq!(v, b"9 ");
    assert_ne!(c0, c1);
    // Longer than the stored length: a new item of exactly the digits.
    assert!(matches!(
        s.arith(b"n", true, 100, None),
        ArithOutcome::Updated { value: 109, .. }
    ));
    assert_eq!(get(&s, b"n").unwrap().0, b"109");
    // decr stops at 0, incr wraps at 2^64.
    assert!(matches!(
        s.arith(b"n", false, 1000, None),
        ArithOutcome::Updated { value: 0, .. }
    ));
    assert_eq!(get(&s, b"n").unwrap().0, b"0  ");
    set(&s, b"n", b"18446744073709551615");
    assert!(matches!(
        s.arith(b"n", true, 2, None),
        ArithOutcome::Updated { value: 1, .. }
    ));
    assert_eq!(get(&s, b"n").unwrap().0, b"1                   ");
    // Non-numeric data, empty data, a negative number, more than u64.
    for bad in [&b"abc"[..], b"", b"-1", b"18446744073709551616", b"12x"] {
        set(&s, b"n", bad);
        assert_eq!(
            s.arith(b"n", true, 1, None),
            ArithOutcome::NonNumeric,
            "{bad:?}"
        );
    }
    assert_eq!(s.arith(b"missing", true, 1, None), ArithOutcome::NotFound);
    assert!(matches!(
        s.arith(b"created", true, 1, Some((5, 0))),
        ArithOutcome::Created { value: 5, .. }
    ));
    assert_eq!(get(&s, b"created").unwrap().0, b"5");
}

#[test]
fn expired_items_are_invisible_at_once() {
    let (s, clock) = store();
    s.store(SetMode::Set, b"k", 0, 5, b"v", 0);
    clock.advance(4);
    assert!(get(&s, b"k").is_some());
    clock.advance(1);
    assert_eq!(s.get(b"k", |_| ()), Lookup::Expired);
    assert_eq!(s.get(b"k", |_| ()), Lookup::Miss);
    // A negative exptime is already expired; add succeeds over an expired item.
    s.store(SetMode::Set, b"k", 0, -1, b"v", 0);
    assert_eq!(s.get(b"k", |_| ()), Lookup::Expired);
    s.store(SetMode::Set, b"k", 0, 5, b"v", 0);
    clock.advance(10);
    assert_eq!(
        s.store(SetMode::Add, b"k", 0, 0, b"w", 0),
        StoreOutcome::Stored
    );
}

#[test]
fn touch_and_gat_change_exptime() {
    let (s, clock) = store();
    s.store(SetMode::Set, b"k", 0, 5, b"v", 0);
    s.store(SetMode::Set, b"forever", 0, 0, b"v", 0);
    assert_eq!(s.touch(b"k", 100), Lookup::Hit(()));
    assert_eq!(
        s.get_and_touch(b"forever", 50, |v| v.value_len()),
        Lookup::Hit(1)
    );
    clock.advance(20);
    assert!(get(&s, b"k").is_some());
    assert!(get(&s, b"forever").is_some());
    clock.advance(40);
    assert_eq!(s.get(b"forever", |_| ()), Lookup::Expired);
    assert!(get(&s, b"k").is_some());
    assert_eq!(s.touch(b"missing", 1), Lookup::Miss);
}

#[test]
fn flush_all_invalidates_what_was_stored_before() {
    let (s, clock) = store();
    set(&s, b"a", b"1");
    set(&s, b"b", b"2");
    s.flush_all(0);
    assert_eq!(s.get(b"a", |_| ()), Lookup::Flushed);
    set(&s, b"c", b"3");
    assert!(get(&s, b"c").is_some());
    // Delayed: items stored before the moment go when it comes.
    s.flush_all(10);
    set(&s, b"d", b"4");
    clock.advance(9);
    assert!(get(&s, b"c").is_some());
    clock.advance(1);
    assert_eq!(s.get(b"c", |_| ()), Lookup::Flushed);
    assert_eq!(s.get(b"d", |_| ()), Lookup::Flushed);
    assert_eq!(s.get(b"b", |_| ()), Lookup::Flushed);
    set(&s, b"e", b"5");
    assert!(get(&s, b"e").is_some());
}

#[test]
fn flush_all_works_with_cas_disabled() {
    let (s, _) = store_with(StoreConfig {
        cas_enabled: false,
        ..StoreConfig::default()
    });
    set(&s, b"a", b"1");
    s.flush_all(0);
    assert_eq!(s.get(b"a", |_| ()), Lookup::Flushed);
    set(&s, b"a", b"2");
    assert_eq!(get(&s, b"a").unwrap().0, b"2");
}

#[test]
fn cas_disabled_stores_no_cas_and_saves_its_bytes() {
    let (on, _) = store();
    let (off, _) = store_with(StoreConfig {
        cas_enabled: false,
        ..StoreConfig::default()
    });
    set(&on, b"k", b"v");
    set(&off, b"k", b"v");
    assert_eq!(get(&off, b"k").unwrap().2, 0);
    assert_eq!(on.stats().bytes - off.stats().bytes, 4);
    // memcached 1.6.18 with -C answers EXISTS to every cas on an existing item.
    assert_eq!(
        off.store(SetMode::Cas, b"k", 0, 0, b"w", 0),
        StoreOutcome::Exists
    );
    assert!(off.class_table()[0].contains("chunk size        28"));
}

#[test]
fn item_size_limit_is_enforced_on_the_whole_item() {
    let (s, _) = store_with(StoreConfig {
        item_size_max: 2048,
        ..StoreConfig::default()
    });
    assert_eq!(set(&s, b"k", &[b'x'; 2048]), StoreOutcome::TooLarge);
    assert_eq!(set(&s, b"k", &[b'x'; 2000]), StoreOutcome::Stored);
    assert_eq!(
        s.store(SetMode::Append, b"k", 0, 0, &[b'y'; 100], 0),
        StoreOutcome::TooLarge
    );
}

#[test]
fn chained_items_round_trip_and_free_their_chunks() {
    let (s, _) = store_with(StoreConfig {
        item_size_max: 4 << 20,
        ..StoreConfig::default()
    });
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(
        s.store(SetMode::Set, b"big", 9, 0, &big, 0),
        StoreOutcome::Stored
    );
    let (v, flags, _) = get(&s, b"big").unwrap();
    assert_eq!(flags, 9);
    assert!(v == big);
    assert_eq!(
        s.get(b"big", |v| v.value_chunks().count() > 1),
        Lookup::Hit(true)
    );
    // Append to a chained item, and from small to chained.
    s.store(SetMode::Append, b"big", 0, 0, b"tail", 0);
    let (v, _, _) = get(&s, b"big").unwrap();
    assert_eq!(&v[v.len() - 4..], b"tail");
    assert_eq!(v.len(), big.len() + 4);
    set(&s, b"small", b"x");
    s.store(SetMode::Prepend, b"small", 0, 0, &big[..100_000], 0);
    let (v, _, _) = get(&s, b"small").unwrap();
    assert_eq!(v.len(), 100_001);
    assert_eq!(s.arith(b"big", true, 1, None), ArithOutcome::NonNumeric);
    let slabs: std::collections::HashMap<_, _> = s.stats_slabs().into_iter().collect();
    let largest = s.class_table().len();
    let used: u64 = slabs[&format!("{largest}:used_chunks")].parse().unwrap();
    assert!(used > 90);
    assert_eq!(s.delete(b"big"), Lookup::Hit(()));
    assert_eq!(s.delete(b"small"), Lookup::Hit(()));
    let slabs: std::collections::HashMap<_, _> = s.stats_slabs().into_iter().collect();
    assert_eq!(slabs[&format!("{largest}:used_chunks")], "0");
}

#[test]
fn hundred_megabyte_value_round_trips_intact() {
    let (s, _) = store_with(StoreConfig {
        memory_limit: 1024 << 20,
        item_size_max: 128 << 20,
        ..StoreConfig::default()
    });
    let big: Vec<u8> = (0..100_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    assert_eq!(set(&s, b"huge", &big), StoreOutcome::Stored);
    let ok = s.get(b"huge", |v| {
        let mut off = 0;
        for c in v.value_chunks() {
            if c != &big[off..off + c.len()] {
                return false;
            }
            off += c.len();
        }
        off == big.len()
    });
    assert_eq!(ok, Lookup::Hit(true));
}

#[test]
fn no_evict_mode_answers_out_of_memory() {
    let (s, _) = store_with(StoreConfig {
        memory_limit: 1 << 20,
        evict: false,
        ..StoreConfig::default()
    });
    let value = [b'v'; 1000];
    // Keep going after the first refusal: other shards still have room, and nothing stored
    // may disappear.
    let mut stored = Vec::new();
    let mut oom = 0;
    for i in 0..3_000 {
        match set(&s, format!("key:{i}").as_bytes(), &value) {
            StoreOutcome::Stored => stored.push(i),
            StoreOutcome::OutOfMemory => oom += 1,
            other => panic!("{other:?}"),
        }
    }
    assert!(oom > 0);
    // 16 pages of 64 chunks of 1024 bytes.
    assert!(stored.len() > 900, "{}", stored.len());
    assert!(stored.len() <= 1024, "{}", stored.len());
    assert_eq!(s.stats().evictions, 0);
    // Everything stored is still there.
    for i in stored {
        assert!(get(&s, format!("key:{i}").as_bytes()).is_some(), "key:{i}");
    }
}

#[test]
fn set_that_fails_for_memory_leaves_no_stale_value() {
    let (s, _) = store_with(StoreConfig {
        memory_limit: 1 << 20,
        evict: false,
        ..StoreConfig::default()
    });
    set(&s, b"k", b"old");
    let value = [b'v'; 1000];
    for i in 0..10_000 {
        if set(&s, format!("key:{i}").as_bytes(), &value) == StoreOutcome::OutOfMemory {
            break;
        }
    }
    assert_eq!(set(&s, b"k", &[b'z'; 5000]), StoreOutcome::OutOfMemory);
    assert!(get(&s, b"k").is_none());
}

#[test]
fn class_table_is_printed_like_memcached() {
    let (s, _) = store();
    let lines = s.class_table();
    assert_eq!(
        lines[0],
        "slab class   1: chunk size        32 perslab    2048"
    );
    assert!(lines
        .last()
        .unwrap()
        .contains("chunk size      4096 perslab      16"));
}

#[test]
fn store_is_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Store>();
}

#[test]
fn store_with_cas_reports_the_cas_get_sees() {
    let (s, _) = store();
    let (outcome, cas) = s.store_with_cas(SetMode::Set, b"k", 0, 0, b"v", 0);
    assert_eq!(outcome, StoreOutcome::Stored);
    assert_ne!(cas, 0);
    assert_eq!(get(&s, b"k").unwrap().2, cas);
    let (outcome, cas2) = s.store_with_cas(SetMode::Append, b"k", 0, 0, b"w", 0);
    assert_eq!(outcome, StoreOutcome::Stored);
    assert_ne!(cas2, cas);
    assert_eq!(get(&s, b"k").unwrap(), (b"vw".to_vec(), 0, cas2));
    assert_eq!(
        s.store_with_cas(SetMode::Add, b"k", 0, 0, b"x", 0),
        (StoreOutcome::NotStored, 0)
    );
}

#[test]
fn append_with_stale_cas_is_refused_only_by_store_with_cas() {
    let (s, _) = store();
    let (_, cas) = s.store_with_cas(SetMode::Set, b"k", 0, 0, b"v", 0);
    assert_eq!(
        s.store_with_cas(SetMode::Prepend, b"k", 0, 0, b"x", cas + 1),
        (StoreOutcome::Exists, 0)
    );
    // The text protocol's path ignores a CAS on append.
    assert_eq!(
        s.store(SetMode::Append, b"k", 0, 0, b"y", cas + 1),
        StoreOutcome::Stored
    );
    let now = get(&s, b"k").unwrap().2;
    assert_eq!(
        s.store_with_cas(SetMode::Prepend, b"k", 0, 0, b"x", now).0,
        StoreOutcome::Stored
    );
    assert_eq!(get(&s, b"k").unwrap().0, b"xvy".to_vec());
}

#[test]
fn delete_cas_deletes_only_on_matching_or_zero_cas() {
    let (s, _) = store();
    assert_eq!(s.delete_cas(b"k", 0), DeleteOutcome::NotFound);
    let (_, cas) = s.store_with_cas(SetMode::Set, b"k", 0, 0, b"v", 0);
    assert_eq!(s.delete_cas(b"k", cas + 1), DeleteOutcome::Exists);
    assert!(get(&s, b"k").is_some());
    assert_eq!(s.delete_cas(b"k", cas), DeleteOutcome::Deleted);
    assert!(get(&s, b"k").is_none());
    set(&s, b"k", b"v");
    assert_eq!(s.delete_cas(b"k", 0), DeleteOutcome::Deleted);
}

#[test]
fn arith_cas_compares_a_nonzero_cas_after_the_numeric_check() {
    let (s, _) = store();
    let (_, cas) = s.store_with_cas(SetMode::Set, b"n", 0, 0, b"5", 0);
    assert_eq!(
        s.arith_cas(b"n", true, 1, None, cas + 1),
        ArithOutcome::Exists
    );
    let ArithOutcome::Updated { value: 6, cas: new } = s.arith_cas(b"n", true, 1, None, cas) else {
        panic!("matching CAS must update");
    };
    assert_eq!(get(&s, b"n").unwrap().2, new);
    assert!(matches!(
        s.arith_cas(b"n", false, 1, None, 0),
        ArithOutcome::Updated { value: 5, .. }
    ));
    set(&s, b"s", b"");
    assert_eq!(
        s.arith_cas(b"s", true, 1, None, 1),
        ArithOutcome::NonNumeric
    );
}
