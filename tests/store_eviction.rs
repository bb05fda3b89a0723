//! Eviction, page moves between classes (automove) and the background crawler.

use std::collections::HashMap;
use std::sync::Arc;

use tern::clock::Clock;
use tern::store::{GetRequest, Lookup, SetMode, SetRequest, Store, StoreConfig, StoreOutcome};

fn store_with(config: StoreConfig) -> (Store, Arc<Clock>) {
    let clock = Arc::new(Clock::manual(1_700_000_000));
    (Store::new(config, clock.clone()).unwrap(), clock)
}

fn slabs(s: &Store) -> HashMap<String, u64> {
    s.stats_slabs()
        .into_iter()
        .map(|(k, v)| (k, v.parse().unwrap()))
        .collect()
}

/// The 1-based id of the class an item of `total` bytes (header + key + value) goes to.
fn class_id(s: &Store, total: usize) -> usize {
    s.class_table()
        .iter()
        .position(|l| {
            let size: usize = l
                .split("chunk size")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap();
            size >= total
        })
        .expect("class exists")
        + 1
}

#[test]
fn hot_set_survives_a_scan_of_keys_written_once() {
    let (s, _) = store_with(StoreConfig {
        memory_limit: 4 << 20,
        ..StoreConfig::default()
    });
    let value = [b'v'; 1000];
    // About 4096 chunks of 1024 bytes; a hot set of 10% of that, read a few times.
    let hot: Vec<String> = (0..400).map(|i| format!("hot:{i}")).collect();
    for k in &hot {
        assert_eq!(
            s.set(&SetRequest {
                mode: SetMode::Set,
                key: k.as_bytes(),
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
    for _ in 0..3 {
        for k in &hot {
            assert!(s
                .get(
                    &GetRequest {
                        key: k.as_bytes(),
                        touch: None,
                        ..Default::default()
                    },
                    |_| ()
                )
                .is_hit());
        }
    }
    // One scan of twice the cache size, each key written once and never read.
    for i in 0..8_000 {
        s.set(&SetRequest {
            mode: SetMode::Set,
            key: format!("scan:{i}").as_bytes(),
            flags: 0,
            exptime: 0,
            value: &value,
            cas: 0,
            ..Default::default()
        });
    }
    assert!(s.stats().evictions > 3_000);
    let alive = hot
        .iter()
        .filter(|k| {
            s.get(
                &GetRequest {
                    key: k.as_bytes(),
                    touch: None,
                    ..Default::default()
                },
                |_| (),
            )
            .is_hit()
        })
        .count();
    assert!(
        alive >= 390,
        "only {alive} of 400 hot keys survived the scan"
    );
    assert!(s.stats().evicted_unfetched > 3_000);
}

#[test]
fn eviction_makes_room_and_never_returns_wrong_data() {
    let (s, _) = store_with(StoreConfig {
        memory_limit: 2 << 20,
        ..StoreConfig::default()
    });
    for i in 0..60_000u32 {
        let v = format!("value-of-{i}-{}", "x".repeat((i % 60) as usize));
        assert_eq!(
            s.set(&SetRequest {
                mode: SetMode::Set,
                key: format!("k{i}").as_bytes(),
                flags: i,
                exptime: 0,
                value: v.as_bytes(),
                cas: 0,
                ..Default::default()
            })
            .0,
            StoreOutcome::Stored
        );
    }
    let mut hits = 0;
    for i in 0..60_000u32 {
        let want = format!("value-of-{i}-{}", "x".repeat((i % 60) as usize));
        if let Lookup::Hit(ok) = s.get(
            &GetRequest {
                key: format!("k{i}").as_bytes(),
                touch: None,
                ..Default::default()
            },
            |v| v.flags() == i && v.value_chunks().next().unwrap() == want.as_bytes(),
        ) {
            assert!(ok, "k{i}");
            hits += 1;
        }
    }
    assert!(hits > 10_000, "{hits}");
    let st = s.stats();
    assert_eq!(st.curr_items, hits);
    assert!(st.total_malloced <= 2 << 20);
}

#[test]
fn pages_move_to_a_new_size_class_within_a_few_ticks() {
    let (s, _) = store_with(StoreConfig {
        memory_limit: 8 << 20,
        ..StoreConfig::default()
    });
    let small = [b's'; 100];
    for i in 0..100_000 {
        s.set(&SetRequest {
            mode: SetMode::Set,
            key: format!("small:{i}").as_bytes(),
            flags: 0,
            exptime: 0,
            value: &small,
            cas: 0,
            ..Default::default()
        });
    }
    let c_big = class_id(&s, 12 + 9 + 1000);
    let before = slabs(&s);
    assert_eq!(before["total_malloced"], 8 << 20);
    assert!(!before.contains_key(&format!("{c_big}:total_pages")));
    // The mix changes: only 1000-byte values from now on.
    let big = [b'b'; 1000];
    let mut i = 0;
    for _tick in 0..10 {
        for _ in 0..2_000 {
            i += 1;
            s.set(&SetRequest {
                mode: SetMode::Set,
                key: format!("big:{i}").as_bytes(),
                flags: 0,
                exptime: 0,
                value: &big,
                cas: 0,
                ..Default::default()
            });
        }
        s.maintain();
    }
    let after = slabs(&s);
    let pages_big = after[&format!("{c_big}:total_pages")];
    // 128 pages in all: the new class must hold a fair share after ten ticks.
    assert!(
        pages_big >= 64,
        "1000-byte class has {pages_big} pages: {after:?}"
    );
    let st = s.stats();
    assert!(st.slabs_moved > 0);
    // Every item stored (each set a new key, none expiring) is still there, was evicted, or
    // went with a moved page (`slab_reassign_evictions_nomem`): nothing leaves uncounted.
    assert!(st.reassign_evictions > 0, "{st:?}");
    assert_eq!(
        st.curr_items + st.evictions + st.reassign_evictions,
        100_000 + i,
        "{st:?}"
    );
    // The moved pages serve the new class: most recent big items are there.
    let recent = (i - 500..=i)
        .filter(|j| {
            s.get(
                &GetRequest {
                    key: format!("big:{j}").as_bytes(),
                    touch: None,
                    ..Default::default()
                },
                |_| (),
            )
            .is_hit()
        })
        .count();
    assert!(recent > 450, "{recent}");
}

#[test]
fn a_class_with_no_pages_takes_one_from_another_class_instead_of_failing() {
    let (s, _) = store_with(StoreConfig {
        memory_limit: 1 << 20,
        slab_automove: false,
        ..StoreConfig::default()
    });
    for i in 0..50_000 {
        s.set(&SetRequest {
            mode: SetMode::Set,
            key: format!("small:{i}").as_bytes(),
            flags: 0,
            exptime: 0,
            value: &[b's'; 10],
            cas: 0,
            ..Default::default()
        });
    }
    // All 16 pages now belong to the small class; a large item still gets stored.
    assert_eq!(
        s.set(&SetRequest {
            mode: SetMode::Set,
            key: b"big",
            flags: 0,
            exptime: 0,
            value: &[b'b'; 20_000],
            cas: 0,
            ..Default::default()
        })
        .0,
        StoreOutcome::Stored
    );
    assert_eq!(
        s.get(
            &GetRequest {
                key: b"big",
                touch: None,
                ..Default::default()
            },
            |v| v.value_len()
        ),
        Lookup::Hit(20_000)
    );
}

#[test]
fn crawler_reclaims_expired_items_without_reads() {
    let (s, clock) = store_with(StoreConfig::default());
    for i in 0..10_000 {
        s.set(&SetRequest {
            mode: SetMode::Set,
            key: format!("ttl:{i}").as_bytes(),
            flags: 0,
            exptime: 10,
            value: b"v",
            cas: 0,
            ..Default::default()
        });
    }
    for i in 0..100 {
        s.set(&SetRequest {
            mode: SetMode::Set,
            key: format!("keep:{i}").as_bytes(),
            flags: 0,
            exptime: 0,
            value: b"v",
            cas: 0,
            ..Default::default()
        });
    }
    s.get(
        &GetRequest {
            key: b"ttl:1",
            touch: None,
            ..Default::default()
        },
        |_| (),
    );
    clock.advance(11);
    s.maintain();
    let st = s.stats();
    assert_eq!(st.curr_items, 100);
    assert_eq!(st.crawler_reclaimed, 10_000);
    assert_eq!(st.expired_unfetched, 9_999);
    let items: HashMap<_, _> = s.stats_items().into_iter().collect();
    assert!(items.keys().any(|k| k.ends_with(":crawler_reclaimed")));
}

#[test]
fn crawler_reclaims_flushed_items() {
    let (s, _) = store_with(StoreConfig::default());
    for i in 0..1_000 {
        s.set(&SetRequest {
            mode: SetMode::Set,
            key: format!("f:{i}").as_bytes(),
            flags: 0,
            exptime: 0,
            value: b"v",
            cas: 0,
            ..Default::default()
        });
    }
    s.flush_all(0);
    s.maintain();
    assert_eq!(s.stats().curr_items, 0);
}

#[test]
fn expired_items_are_reclaimed_before_live_ones_are_evicted() {
    let (s, clock) = store_with(StoreConfig {
        memory_limit: 1 << 20,
        lru_crawler: false,
        ..StoreConfig::default()
    });
    let value = [b'v'; 1000];
    for i in 0..900 {
        s.set(&SetRequest {
            mode: SetMode::Set,
            key: format!("old:{i}").as_bytes(),
            flags: 0,
            exptime: 5,
            value: &value,
            cas: 0,
            ..Default::default()
        });
    }
    let evicted_while_filling = s.stats().evictions;
    clock.advance(6);
    for i in 0..500 {
        s.set(&SetRequest {
            mode: SetMode::Set,
            key: format!("new:{i}").as_bytes(),
            flags: 0,
            exptime: 0,
            value: &value,
            cas: 0,
            ..Default::default()
        });
    }
    let st = s.stats();
    assert!(st.reclaimed > 0);
    assert_eq!(st.evictions, evicted_while_filling);
}

#[test]
fn stats_slabs_and_items_use_memcacheds_names() {
    let (s, _) = store_with(StoreConfig::default());
    s.set(&SetRequest {
        mode: SetMode::Set,
        key: b"a",
        flags: 0,
        exptime: 0,
        value: b"1",
        cas: 0,
        ..Default::default()
    });
    s.get(
        &GetRequest {
            key: b"a",
            touch: None,
            ..Default::default()
        },
        |_| (),
    );
    let sl: HashMap<_, _> = s.stats_slabs().into_iter().collect();
    for f in [
        "chunk_size",
        "chunks_per_page",
        "total_pages",
        "total_chunks",
        "used_chunks",
        "free_chunks",
        "free_chunks_end",
        "get_hits",
        "cmd_set",
        "delete_hits",
        "incr_hits",
        "decr_hits",
        "cas_hits",
        "cas_badval",
        "touch_hits",
    ] {
        assert!(sl.contains_key(&format!("1:{f}")), "{f}");
    }
    assert_eq!(sl["1:used_chunks"], "1");
    assert_eq!(sl["1:get_hits"], "1");
    assert_eq!(sl["active_slabs"], "1");
    assert_eq!(sl["total_malloced"], "65536");
    let it: HashMap<_, _> = s.stats_items().into_iter().collect();
    for f in [
        "number",
        "age",
        "evicted",
        "evicted_nonzero",
        "evicted_time",
        "outofmemory",
        "reclaimed",
        "expired_unfetched",
        "evicted_unfetched",
        "crawler_reclaimed",
    ] {
        assert!(it.contains_key(&format!("items:1:{f}")), "{f}");
    }
    assert_eq!(it["items:1:number"], "1");
    assert_eq!(
        s.stats_sizes(),
        vec![("sizes_status".to_string(), "disabled".to_string())]
    );
    let st = s.stats();
    assert!(st.hash_bytes > 0 && st.hash_power_level >= 16);
}

/// A set that replaces a live item of its own size class rewrites that item's chunk: in a full
/// store it evicts nothing (it used to take a chunk first and evict for it), every key stays,
/// and the counts `stats` reports stay those of the live items.
#[test]
fn replacing_an_item_of_the_same_size_in_a_full_store_evicts_nothing() {
    let (s, _) = store_with(StoreConfig {
        memory_limit: 1 << 20,
        lru_crawler: false,
        ..StoreConfig::default()
    });
    let set = |key: &str, value: &[u8]| {
        s.set(&SetRequest {
            mode: SetMode::Set,
            key: key.as_bytes(),
            value,
            ..Default::default()
        })
        .0
    };
    // Fill until the store evicts: the class has no free chunk left.
    let mut i = 0;
    while s.stats().evictions == 0 {
        assert_eq!(set(&format!("k:{i}"), &[b'a'; 1000]), StoreOutcome::Stored);
        i += 1;
    }
    let before = s.stats();
    let live: Vec<String> = (0..i)
        .map(|j| format!("k:{j}"))
        .filter(|k| {
            s.get(
                &GetRequest {
                    key: k.as_bytes(),
                    ..Default::default()
                },
                |_| (),
            )
            .is_hit()
        })
        .collect();
    assert!(live.len() > 500);
    // Every live key rewritten twice, with values one byte shorter and then one longer.
    for value in [&[b'b'; 999][..], &[b'c'; 1001][..]] {
        for k in &live {
            assert_eq!(set(k, value), StoreOutcome::Stored);
        }
    }
    let after = s.stats();
    assert_eq!(after.evictions, before.evictions);
    assert_eq!(after.curr_items, before.curr_items);
    assert_eq!(
        after.total_items,
        before.total_items + 2 * live.len() as u64
    );
    assert_eq!(
        after.bytes,
        before.bytes + live.len() as u64,
        "each item is a byte longer than at the fill"
    );
    for k in &live {
        let got = s.get(
            &GetRequest {
                key: k.as_bytes(),
                ..Default::default()
            },
            |v| v.value_chunks().flatten().copied().collect::<Vec<u8>>(),
        );
        assert_eq!(got, Lookup::Hit(vec![b'c'; 1001]), "{k}");
    }
    let used: u64 = slabs(&s)
        .iter()
        .filter(|(k, _)| k.ends_with(":used_chunks"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(used, live.len() as u64);
}
