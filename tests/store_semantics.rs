//! memcached 1.6.18 semantics of the store API: modes, CAS, TTL, flush, incr/decr, touch,
//! chained items, -C and -M.

use std::sync::Arc;

use tern::clock::Clock;
use tern::store::{
    ArithOutcome, ArithRequest, DeleteOutcome, DeleteRequest, GetRequest, Lookup, SetMode,
    SetRequest, Store, StoreConfig, StoreOutcome,
};

fn store_with(config: StoreConfig) -> (Store, Arc<Clock>) {
    let clock = Arc::new(Clock::manual(1_700_000_000));
    (Store::new(config, clock.clone()).unwrap(), clock)
}

fn store() -> (Store, Arc<Clock>) {
    store_with(StoreConfig::default())
}

fn get(s: &Store, key: &[u8]) -> Option<(Vec<u8>, u32, u64)> {
    match s.get(
        &GetRequest {
            key,
            touch: None,
            ..Default::default()
        },
        |v| {
            let mut out = Vec::with_capacity(v.value_len());
            for c in v.value_chunks() {
                out.extend_from_slice(c);
            }
            assert_eq!(out.len(), v.value_len());
            assert_eq!(v.key(), key);
            (out, v.flags(), v.cas())
        },
    ) {
        Lookup::Hit(x) => Some(x),
        _ => None,
    }
}

fn set(s: &Store, key: &[u8], value: &[u8]) -> StoreOutcome {
    s.set(&SetRequest {
        mode: SetMode::Set,
        key,
        flags: 0,
        exptime: 0,
        value,
        cas: 0,
        ..Default::default()
    })
    .0
}

#[test]
fn set_get_delete_round_trip_with_flags() {
    let (s, _) = store();
    assert_eq!(
        s.set(&SetRequest {
            mode: SetMode::Set,
            key: b"a",
            flags: 42,
            exptime: 0,
            value: b"hello",
            cas: 0,
            ..Default::default()
        })
        .0,
        StoreOutcome::Stored
    );
    let (v, flags, cas) = get(&s, b"a").unwrap();
    assert_eq!((&v[..], flags), (&b"hello"[..], 42));
    assert_ne!(cas, 0);
    assert_eq!(
        s.delete(&DeleteRequest {
            key: b"a",
            cas: None,
            ..Default::default()
        }),
        DeleteOutcome::Deleted
    );
    assert_eq!(
        s.delete(&DeleteRequest {
            key: b"a",
            cas: None,
            ..Default::default()
        }),
        DeleteOutcome::NotFound
    );
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
        s.set(&SetRequest {
            mode: SetMode::Replace,
            key: b"k",
            flags: 0,
            exptime: 0,
            value: b"x",
            cas: 0,
            ..Default::default()
        })
        .0,
        StoreOutcome::NotStored
    );
    assert_eq!(
        s.set(&SetRequest {
            mode: SetMode::Append,
            key: b"k",
            flags: 0,
            exptime: 0,
            value: b"x",
            cas: 0,
            ..Default::default()
        })
        .0,
        StoreOutcome::NotStored
    );
    assert_eq!(
        s.set(&SetRequest {
            mode: SetMode::Prepend,
            key: b"k",
            flags: 0,
            exptime: 0,
            value: b"x",
            cas: 0,
            ..Default::default()
        })
        .0,
        StoreOutcome::NotStored
    );
    assert_eq!(
        s.set(&SetRequest {
            mode: SetMode::Add,
            key: b"k",
            flags: 7,
            exptime: 100,
            value: b"mid",
            cas: 0,
            ..Default::default()
        })
        .0,
        StoreOutcome::Stored
    );
    assert_eq!(
        s.set(&SetRequest {
            mode: SetMode::Add,
            key: b"k",
            flags: 0,
            exptime: 0,
            value: b"x",
            cas: 0,
            ..Default::default()
        })
        .0,
        StoreOutcome::NotStored
    );
    assert_eq!(
        s.set(&SetRequest {
            mode: SetMode::Append,
            key: b"k",
            flags: 1,
            exptime: 0,
            value: b">>",
            cas: 0,
            ..Default::default()
        })
        .0,
        StoreOutcome::Stored
    );
    assert_eq!(
        s.set(&SetRequest {
            mode: SetMode::Prepend,
            key: b"k",
            flags: 2,
            exptime: 0,
            value: b"<<",
            cas: 0,
            ..Default::default()
        })
        .0,
        StoreOutcome::Stored
    );
    let (v, flags, _) = get(&s, b"k").unwrap();
    // append/prepend keep flags and exptime.
    assert_eq!((&v[..], flags), (&b"<<mid>>"[..], 7));
    assert_eq!(
        s.set(&SetRequest {
            mode: SetMode::Replace,
            key: b"k",
            flags: 3,
            exptime: 0,
            value: b"new",
            cas: 0,
            ..Default::default()
        })
        .0,
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
    s.set(&SetRequest {
        mode: SetMode::Set,
        key: b"k",
        flags: 0,
        exptime: 10,
        value: b"a",
        cas: 0,
        ..Default::default()
    });
    s.set(&SetRequest {
        mode: SetMode::Append,
        key: b"k",
        flags: 0,
        exptime: 0,
        value: b"b",
        cas: 0,
        ..Default::default()
    });
    clock.advance(11);
    assert_eq!(
        s.get(
            &GetRequest {
                key: b"k",
                touch: None,
                ..Default::default()
            },
            |_| ()
        ),
        Lookup::Expired
    );
}

#[test]
fn cas_changes_on_every_modification_but_not_on_touch() {
    let (s, _) = store();
    set(&s, b"k", b"1");
    let c1 = get(&s, b"k").unwrap().2;
    assert_eq!(
        s.set(&SetRequest {
            mode: SetMode::Cas,
            key: b"k",
            flags: 0,
            exptime: 0,
            value: b"2",
            cas: c1 + 1,
            ..Default::default()
        })
        .0,
        StoreOutcome::Exists
    );
    assert_eq!(
        s.set(&SetRequest {
            mode: SetMode::Cas,
            key: b"k",
            flags: 0,
            exptime: 0,
            value: b"2",
            cas: c1,
            ..Default::default()
        })
        .0,
        StoreOutcome::Stored
    );
    let c2 = get(&s, b"k").unwrap().2;
    assert_ne!(c1, c2);
    assert_eq!(
        s.set(&SetRequest {
            mode: SetMode::Cas,
            key: b"k",
            flags: 0,
            exptime: 0,
            value: b"3",
            cas: c1,
            ..Default::default()
        })
        .0,
        StoreOutcome::Exists
    );
    assert_eq!(
        s.set(&SetRequest {
            mode: SetMode::Cas,
            key: b"nope",
            flags: 0,
            exptime: 0,
            value: b"3",
            cas: c1,
            ..Default::default()
        })
        .0,
        StoreOutcome::NotFound
    );
    s.set(&SetRequest {
        mode: SetMode::Append,
        key: b"k",
        flags: 0,
        exptime: 0,
        value: b"x",
        cas: 0,
        ..Default::default()
    });
    let c3 = get(&s, b"k").unwrap().2;
    assert_ne!(c2, c3);
    // touch keeps the CAS, also when it has to give the item an exptime field.
    assert_eq!(
        s.get(
            &GetRequest {
                key: b"k",
                touch: Some(100),
                ..Default::default()
            },
            |_| ()
        ),
        Lookup::Hit(())
    );
    assert_eq!(get(&s, b"k").unwrap().2, c3);
    assert_eq!(
        s.get(
            &GetRequest {
                key: b"k",
                touch: Some(0),
                ..Default::default()
            },
            |_| ()
        ),
        Lookup::Hit(())
    );
    assert_eq!(get(&s, b"k").unwrap().2, c3);
}

#[test]
fn incr_decr_follow_do_add_delta() {
    let (s, _) = store();
    set(&s, b"n", b"10");
    let c0 = get(&s, b"n").unwrap().2;
    // decr "10" by 1 rewrites in place, padded with a space: "9 " (length 2).
    assert!(matches!(
        s.arith(&ArithRequest {
            key: b"n",
            incr: false,
            delta: 1,
            initial: None,
            cas: 0,
            ..Default::default()
        }),
        ArithOutcome::Updated { value: 9, .. }
    ));
    let (v, _, c1) = get(&s, b"n").unwrap();
    assert_eq!(v, b"9 ");
    assert_ne!(c0, c1);
    // Longer than the stored length: a new item of exactly the digits.
    assert!(matches!(
        s.arith(&ArithRequest {
            key: b"n",
            incr: true,
            delta: 100,
            initial: None,
            cas: 0,
            ..Default::default()
        }),
        ArithOutcome::Updated { value: 109, .. }
    ));
    assert_eq!(get(&s, b"n").unwrap().0, b"109");
    // decr stops at 0, incr wraps at 2^64.
    assert!(matches!(
        s.arith(&ArithRequest {
            key: b"n",
            incr: false,
            delta: 1000,
            initial: None,
            cas: 0,
            ..Default::default()
        }),
        ArithOutcome::Updated { value: 0, .. }
    ));
    assert_eq!(get(&s, b"n").unwrap().0, b"0  ");
    set(&s, b"n", b"18446744073709551615");
    assert!(matches!(
        s.arith(&ArithRequest {
            key: b"n",
            incr: true,
            delta: 2,
            initial: None,
            cas: 0,
            ..Default::default()
        }),
        ArithOutcome::Updated { value: 1, .. }
    ));
    assert_eq!(get(&s, b"n").unwrap().0, b"1                   ");
    // Non-numeric data, empty data, a negative number, more than u64.
    for bad in [&b"abc"[..], b"", b"-1", b"18446744073709551616", b"12x"] {
        set(&s, b"n", bad);
        assert_eq!(
            s.arith(&ArithRequest {
                key: b"n",
                incr: true,
                delta: 1,
                initial: None,
                cas: 0,
                ..Default::default()
            }),
            ArithOutcome::NonNumeric,
            "{bad:?}"
        );
    }
    assert_eq!(
        s.arith(&ArithRequest {
            key: b"missing",
            incr: true,
            delta: 1,
            initial: None,
            cas: 0,
            ..Default::default()
        }),
        ArithOutcome::NotFound
    );
    assert!(matches!(
        s.arith(&ArithRequest {
            key: b"created",
            incr: true,
            delta: 1,
            initial: Some((5, 0)),
            cas: 0,
            ..Default::default()
        }),
        ArithOutcome::Created { value: 5, .. }
    ));
    assert_eq!(get(&s, b"created").unwrap().0, b"5");
}

#[test]
fn expired_items_are_invisible_at_once() {
    let (s, clock) = store();
    s.set(&SetRequest {
        mode: SetMode::Set,
        key: b"k",
        flags: 0,
        exptime: 5,
        value: b"v",
        cas: 0,
        ..Default::default()
    });
    clock.advance(4);
    assert!(get(&s, b"k").is_some());
    clock.advance(1);
    assert_eq!(
        s.get(
            &GetRequest {
                key: b"k",
                touch: None,
                ..Default::default()
            },
            |_| ()
        ),
        Lookup::Expired
    );
    assert_eq!(
        s.get(
            &GetRequest {
                key: b"k",
                touch: None,
                ..Default::default()
            },
            |_| ()
        ),
        Lookup::Miss
    );
    // A negative exptime is already expired; add succeeds over an expired item.
    s.set(&SetRequest {
        mode: SetMode::Set,
        key: b"k",
        flags: 0,
        exptime: -1,
        value: b"v",
        cas: 0,
        ..Default::default()
    });
    assert_eq!(
        s.get(
            &GetRequest {
                key: b"k",
                touch: None,
                ..Default::default()
            },
            |_| ()
        ),
        Lookup::Expired
    );
    s.set(&SetRequest {
        mode: SetMode::Set,
        key: b"k",
        flags: 0,
        exptime: 5,
        value: b"v",
        cas: 0,
        ..Default::default()
    });
    clock.advance(10);
    assert_eq!(
        s.set(&SetRequest {
            mode: SetMode::Add,
            key: b"k",
            flags: 0,
            exptime: 0,
            value: b"w",
            cas: 0,
            ..Default::default()
        })
        .0,
        StoreOutcome::Stored
    );
}

#[test]
fn touch_and_gat_change_exptime() {
    let (s, clock) = store();
    s.set(&SetRequest {
        mode: SetMode::Set,
        key: b"k",
        flags: 0,
        exptime: 5,
        value: b"v",
        cas: 0,
        ..Default::default()
    });
    s.set(&SetRequest {
        mode: SetMode::Set,
        key: b"forever",
        flags: 0,
        exptime: 0,
        value: b"v",
        cas: 0,
        ..Default::default()
    });
    assert_eq!(
        s.get(
            &GetRequest {
                key: b"k",
                touch: Some(100),
                ..Default::default()
            },
            |_| ()
        ),
        Lookup::Hit(())
    );
    assert_eq!(
        s.get(
            &GetRequest {
                key: b"forever",
                touch: Some(50),
                ..Default::default()
            },
            |v| v.value_len()
        ),
        Lookup::Hit(1)
    );
    clock.advance(20);
    assert!(get(&s, b"k").is_some());
    assert!(get(&s, b"forever").is_some());
    clock.advance(40);
    assert_eq!(
        s.get(
            &GetRequest {
                key: b"forever",
                touch: None,
                ..Default::default()
            },
            |_| ()
        ),
        Lookup::Expired
    );
    assert!(get(&s, b"k").is_some());
    assert_eq!(
        s.get(
            &GetRequest {
                key: b"missing",
                touch: Some(1),
                ..Default::default()
            },
            |_| ()
        ),
        Lookup::Miss
    );
}

#[test]
fn flush_all_invalidates_what_was_stored_before() {
    let (s, clock) = store();
    set(&s, b"a", b"1");
    set(&s, b"b", b"2");
    s.flush_all(0);
    assert_eq!(
        s.get(
            &GetRequest {
                key: b"a",
                touch: None,
                ..Default::default()
            },
            |_| ()
        ),
        Lookup::Flushed
    );
    set(&s, b"c", b"3");
    assert!(get(&s, b"c").is_some());
    // Delayed: items stored before the moment go when it comes. With CAS on the moment is
    // memcached's `realtime(delay) - 1`: 9 seconds from now for `flush_all 10`.
    s.flush_all(10);
    set(&s, b"d", b"4");
    clock.advance(8);
    assert!(get(&s, b"c").is_some());
    clock.advance(1);
    assert_eq!(
        s.get(
            &GetRequest {
                key: b"c",
                touch: None,
                ..Default::default()
            },
            |_| ()
        ),
        Lookup::Flushed
    );
    assert_eq!(
        s.get(
            &GetRequest {
                key: b"d",
                touch: None,
                ..Default::default()
            },
            |_| ()
        ),
        Lookup::Flushed
    );
    assert_eq!(
        s.get(
            &GetRequest {
                key: b"b",
                touch: None,
                ..Default::default()
            },
            |_| ()
        ),
        Lookup::Flushed
    );
    set(&s, b"e", b"5");
    assert!(get(&s, b"e").is_some());
}

#[test]
fn flush_all_1_is_immediate_with_cas_and_a_second_away_without() {
    // memcached 1.6.18: `oldest_live = realtime(delay) - 1` with CAS on, so `flush_all 1`
    // flushes at once; with -C the moment is the named second.
    let (s, _) = store();
    set(&s, b"a", b"1");
    s.flush_all(1);
    assert!(get(&s, b"a").is_none());
    set(&s, b"b", b"2");
    assert!(get(&s, b"b").is_some(), "stored after the flush");
    let (off, clock_off) = store_with(StoreConfig {
        cas_enabled: false,
        ..StoreConfig::default()
    });
    set(&off, b"a", b"1");
    off.flush_all(1);
    assert!(get(&off, b"a").is_some());
    clock_off.advance(1);
    assert!(get(&off, b"a").is_none());
}

#[test]
fn flush_all_works_with_cas_disabled() {
    let (s, _) = store_with(StoreConfig {
        cas_enabled: false,
        ..StoreConfig::default()
    });
    set(&s, b"a", b"1");
    s.flush_all(0);
    assert_eq!(
        s.get(
            &GetRequest {
                key: b"a",
                touch: None,
                ..Default::default()
            },
            |_| ()
        ),
        Lookup::Flushed
    );
    set(&s, b"a", b"2");
    assert_eq!(get(&s, b"a").unwrap().0, b"2");
}

#[test]
fn cas_disabled_stores_no_cas() {
    let (on, _) = store();
    let (off, _) = store_with(StoreConfig {
        cas_enabled: false,
        ..StoreConfig::default()
    });
    set(&on, b"k", b"v");
    set(&off, b"k", b"v");
    assert_eq!(get(&off, b"k").unwrap().2, 0);
    // The 8-byte word holds the flush stamp and the access time with -C too (docs/store.md).
    assert_eq!(on.stats().bytes, off.stats().bytes);
    // memcached 1.6.18 with -C answers EXISTS to every cas on an existing item.
    assert_eq!(
        off.set(&SetRequest {
            mode: SetMode::Cas,
            key: b"k",
            flags: 0,
            exptime: 0,
            value: b"w",
            cas: 0,
            ..Default::default()
        })
        .0,
        StoreOutcome::Exists
    );
    assert!(off.class_table()[0].contains("chunk size        32"));
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
        s.set(&SetRequest {
            mode: SetMode::Append,
            key: b"k",
            flags: 0,
            exptime: 0,
            value: &[b'y'; 100],
            cas: 0,
            ..Default::default()
        })
        .0,
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
        s.set(&SetRequest {
            mode: SetMode::Set,
            key: b"big",
            flags: 9,
            exptime: 0,
            value: &big,
            cas: 0,
            ..Default::default()
        })
        .0,
        StoreOutcome::Stored
    );
    let (v, flags, _) = get(&s, b"big").unwrap();
    assert_eq!(flags, 9);
    assert!(v == big);
    assert_eq!(
        s.get(
            &GetRequest {
                key: b"big",
                touch: None,
                ..Default::default()
            },
            |v| v.value_chunks().count() > 1
        ),
        Lookup::Hit(true)
    );
    // Append to a chained item, and from small to chained.
    s.set(&SetRequest {
        mode: SetMode::Append,
        key: b"big",
        flags: 0,
        exptime: 0,
        value: b"tail",
        cas: 0,
        ..Default::default()
    });
    let (v, _, _) = get(&s, b"big").unwrap();
    assert_eq!(&v[v.len() - 4..], b"tail");
    assert_eq!(v.len(), big.len() + 4);
    set(&s, b"small", b"x");
    s.set(&SetRequest {
        mode: SetMode::Prepend,
        key: b"small",
        flags: 0,
        exptime: 0,
        value: &big[..100_000],
        cas: 0,
        ..Default::default()
    });
    let (v, _, _) = get(&s, b"small").unwrap();
    assert_eq!(v.len(), 100_001);
    assert_eq!(
        s.arith(&ArithRequest {
            key: b"big",
            incr: true,
            delta: 1,
            initial: None,
            cas: 0,
            ..Default::default()
        }),
        ArithOutcome::NonNumeric
    );
    let slabs: std::collections::HashMap<_, _> = s.stats_slabs().into_iter().collect();
    let largest = s.class_table().len();
    let used: u64 = slabs[&format!("{largest}:used_chunks")].parse().unwrap();
    assert!(used > 90);
    assert_eq!(
        s.delete(&DeleteRequest {
            key: b"big",
            cas: None,
            ..Default::default()
        }),
        DeleteOutcome::Deleted
    );
    assert_eq!(
        s.delete(&DeleteRequest {
            key: b"small",
            cas: None,
            ..Default::default()
        }),
        DeleteOutcome::Deleted
    );
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
    let ok = s.get(
        &GetRequest {
            key: b"huge",
            touch: None,
            ..Default::default()
        },
        |v| {
            let mut off = 0;
            for c in v.value_chunks() {
                if c != &big[off..off + c.len()] {
                    return false;
                }
                off += c.len();
            }
            off == big.len()
        },
    );
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

/// With `-M` a full store still takes an overwrite that fits the item's own chunk (it needs no
/// memory): tern rewrites the item in place. memcached 1.6.18 allocates first, answers out of
/// memory and drops the key (docs/protocol.md, deliberate differences).
#[test]
fn no_evict_mode_takes_an_overwrite_of_the_same_size() {
    let (s, _) = store_with(StoreConfig {
        memory_limit: 1 << 20,
        evict: false,
        ..StoreConfig::default()
    });
    set(&s, b"k", &[b'a'; 1000]);
    // Past the first refusal, until every shard refuses.
    let value = [b'v'; 1000];
    let mut refused = 0;
    for i in 0..3_000 {
        refused +=
            u32::from(set(&s, format!("key:{i}").as_bytes(), &value) != StoreOutcome::Stored);
    }
    assert!(refused > 1_000);
    assert_eq!(set(&s, b"k", &[b'b'; 1000]), StoreOutcome::Stored);
    assert_eq!(get(&s, b"k").map(|(v, _, _)| v), Some(vec![b'b'; 1000]));
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
    let (outcome, cas) = s.set(&SetRequest {
        mode: SetMode::Set,
        key: b"k",
        flags: 0,
        exptime: 0,
        value: b"v",
        cas: 0,
        ..Default::default()
    });
    assert_eq!(outcome, StoreOutcome::Stored);
    assert_ne!(cas, 0);
    assert_eq!(get(&s, b"k").unwrap().2, cas);
    let (outcome, cas2) = s.set(&SetRequest {
        mode: SetMode::Append,
        key: b"k",
        flags: 0,
        exptime: 0,
        value: b"w",
        cas: 0,
        ..Default::default()
    });
    assert_eq!(outcome, StoreOutcome::Stored);
    assert_ne!(cas2, cas);
    assert_eq!(get(&s, b"k").unwrap(), (b"vw".to_vec(), 0, cas2));
    assert_eq!(
        s.set(&SetRequest {
            mode: SetMode::Add,
            key: b"k",
            flags: 0,
            exptime: 0,
            value: b"x",
            cas: 0,
            ..Default::default()
        }),
        (StoreOutcome::NotStored, 0)
    );
}

#[test]
fn append_with_stale_cas_is_refused_only_when_a_cas_is_given() {
    let (s, _) = store();
    let (_, cas) = s.set(&SetRequest {
        mode: SetMode::Set,
        key: b"k",
        flags: 0,
        exptime: 0,
        value: b"v",
        cas: 0,
        ..Default::default()
    });
    assert_eq!(
        s.set(&SetRequest {
            mode: SetMode::Prepend,
            key: b"k",
            flags: 0,
            exptime: 0,
            value: b"x",
            cas: cas + 1,
            ..Default::default()
        }),
        (StoreOutcome::Exists, 0)
    );
    // The text protocol's append carries no CAS (its parser gives 0), so it is never refused.
    assert_eq!(
        s.set(&SetRequest {
            mode: SetMode::Append,
            key: b"k",
            flags: 0,
            exptime: 0,
            value: b"y",
            cas: 0,
            ..Default::default()
        })
        .0,
        StoreOutcome::Stored
    );
    let now = get(&s, b"k").unwrap().2;
    assert_eq!(
        s.set(&SetRequest {
            mode: SetMode::Prepend,
            key: b"k",
            flags: 0,
            exptime: 0,
            value: b"x",
            cas: now,
            ..Default::default()
        })
        .0,
        StoreOutcome::Stored
    );
    assert_eq!(get(&s, b"k").unwrap().0, b"xvy".to_vec());
}

#[test]
fn delete_cas_deletes_only_on_matching_or_zero_cas() {
    let (s, _) = store();
    assert_eq!(
        s.delete(&DeleteRequest {
            key: b"k",
            cas: None,
            ..Default::default()
        }),
        DeleteOutcome::NotFound
    );
    let (_, cas) = s.set(&SetRequest {
        mode: SetMode::Set,
        key: b"k",
        flags: 0,
        exptime: 0,
        value: b"v",
        cas: 0,
        ..Default::default()
    });
    assert_eq!(
        s.delete(&DeleteRequest {
            key: b"k",
            cas: Some(cas + 1),
            ..Default::default()
        }),
        DeleteOutcome::Exists
    );
    assert!(get(&s, b"k").is_some());
    assert_eq!(
        s.delete(&DeleteRequest {
            key: b"k",
            cas: Some(cas),
            ..Default::default()
        }),
        DeleteOutcome::Deleted
    );
    assert!(get(&s, b"k").is_none());
    set(&s, b"k", b"v");
    assert_eq!(
        s.delete(&DeleteRequest {
            key: b"k",
            cas: None,
            ..Default::default()
        }),
        DeleteOutcome::Deleted
    );
}

#[test]
fn arith_cas_compares_a_nonzero_cas_after_the_numeric_check() {
    let (s, _) = store();
    let (_, cas) = s.set(&SetRequest {
        mode: SetMode::Set,
        key: b"n",
        flags: 0,
        exptime: 0,
        value: b"5",
        cas: 0,
        ..Default::default()
    });
    assert_eq!(
        s.arith(&ArithRequest {
            key: b"n",
            incr: true,
            delta: 1,
            initial: None,
            cas: cas + 1,
            ..Default::default()
        }),
        ArithOutcome::Exists
    );
    let ArithOutcome::Updated {
        value: 6, cas: new, ..
    } = s.arith(&ArithRequest {
        key: b"n",
        incr: true,
        delta: 1,
        initial: None,
        cas,
        ..Default::default()
    })
    else {
        panic!("matching CAS must update");
    };
    assert_eq!(get(&s, b"n").unwrap().2, new);
    assert!(matches!(
        s.arith(&ArithRequest {
            key: b"n",
            incr: false,
            delta: 1,
            initial: None,
            cas: 0,
            ..Default::default()
        }),
        ArithOutcome::Updated { value: 5, .. }
    ));
    set(&s, b"s", b"");
    assert_eq!(
        s.arith(&ArithRequest {
            key: b"s",
            incr: true,
            delta: 1,
            initial: None,
            cas: 1,
            ..Default::default()
        }),
        ArithOutcome::NonNumeric
    );
}

#[test]
fn accounting_agrees_with_stats_and_stats_items() {
    let (s, _) = store();
    for i in 0..2_000u32 {
        let key = format!("key:{i}");
        // Values across several classes, some chained (over the 512 KB chunk limit).
        let len = match i {
            _ if i % 100 == 1 => 600_000,
            _ => [10, 100, 1_000, 10_000, 20_000][i as usize % 5],
        };
        set(&s, key.as_bytes(), &vec![b'v'; len]);
    }
    for i in (0..2_000u32).step_by(3) {
        s.delete(&DeleteRequest {
            key: format!("key:{i}").as_bytes(),
            ..Default::default()
        });
    }
    let a = s.accounting();
    let st = s.stats();
    assert_eq!(a.curr_items, st.curr_items);
    assert_eq!(a.total_items, st.total_items);
    assert_eq!(a.bytes, st.bytes);
    assert_eq!(a.total_malloced, st.total_malloced);
    let numbers: u64 = s
        .stats_items()
        .iter()
        .filter(|(name, _)| name.ends_with(":number"))
        .map(|(_, v)| v.parse::<u64>().unwrap())
        .sum();
    assert_eq!(a.class_items, numbers);
    assert_eq!(a.class_items, a.curr_items);
    // Nothing was evicted: a third of the 2,000 keys were deleted.
    assert_eq!(a.curr_items, 2_000 - 667, "{a:?}");
}
