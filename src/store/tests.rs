//! Store-level tests small enough for Miri (docs/testing.md, "Miri"): every path that reaches
//! chunk bytes (stores of small and chained items; append, prepend and touch rewrites copying
//! chunk to chunk; incr in place and grown; deletes; eviction; page moves between classes,
//! between shards and through the pool; the crawler; the dumps), on a small `-m`, checked
//! against a model of what was stored. Counts shrink under `cfg(miri)`.

use std::collections::HashMap;
use std::sync::Arc;

use super::*;

fn store_with(kilobytes: usize, growth_factor: Option<f64>) -> (Store, Arc<Clock>) {
    store_configured(kilobytes, |c| c.growth_factor = growth_factor)
}

fn store_configured(kilobytes: usize, tweak: impl FnOnce(&mut StoreConfig)) -> (Store, Arc<Clock>) {
    let clock = Arc::new(Clock::manual(1_700_000_000));
    let mut config = StoreConfig {
        memory_limit: kilobytes << 10,
        hashpower_init: Some(8),
        ..StoreConfig::default()
    };
    tweak(&mut config);
    (Store::new(config, clock.clone()).unwrap(), clock)
}

fn store(megabytes: usize) -> (Store, Arc<Clock>) {
    store_with(megabytes << 10, None)
}

fn set(s: &Store, mode: SetMode, key: &[u8], value: &[u8], exptime: i64) -> StoreOutcome {
    s.set(&SetRequest {
        mode,
        key,
        value,
        exptime,
        ..SetRequest::default()
    })
    .0
}

fn get_with(s: &Store, req: &GetRequest<'_>) -> Option<Vec<u8>> {
    match s.get(req, |v| v.value_chunks().collect::<Vec<_>>().concat()) {
        Lookup::Hit(v) => Some(v),
        _ => None,
    }
}

fn get(s: &Store, key: &[u8]) -> Option<Vec<u8>> {
    get_with(
        s,
        &GetRequest {
            key,
            ..GetRequest::default()
        },
    )
}

/// `len` bytes that differ with `seed`, so bytes of another item or version show, and every
/// 64th byte marks its position, so bytes moved within a value show too. (A fill and a few
/// stores: filling byte by byte would take minutes under Miri.)
fn value(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![(seed % 251) as u8; len];
    for (i, b) in v.iter_mut().enumerate().step_by(64) {
        *b = (i / 64) as u8 ^ (seed as u8).rotate_left(3);
    }
    v
}

/// A small deterministic generator (xorshift), so a failure replays.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// The shard `key` lives in.
fn shard_of(s: &Store, key: &[u8]) -> usize {
    (s.shared.hash(key) as usize) & s.shared.shard_mask
}

#[test]
fn mixed_operations_on_a_small_store_keep_every_value_intact() {
    // Miri runs about a thousand times slower: the short run only there.
    let runs: &[usize] = if cfg!(miri) { &[400] } else { &[400, 20_000] };
    for &ops in runs {
        // 512 KiB: 8 pages for 8 classes (factor 2), so classes fill and evict, and pages
        // move between classes; values up to 6 chunks of the largest class.
        mixed_operations(ops, store_with(512, Some(2.0)));
        // The same over classes listed by hand (`-o slab_sizes`), the smallest above the
        // smallest items, one holding a range of sizes up to the largest class.
        let listed = |c: &mut StoreConfig| c.slab_sizes = Some(vec![60, 300, 2_500]);
        mixed_operations(ops, store_configured(512, listed));
    }
}

fn mixed_operations(ops: usize, (s, clock): (Store, Arc<Clock>)) {
    // `stats sizes` counts every item: it must follow stores, replacements, rewrites,
    // deletes, expiry and evictions (checked at the end).
    s.start_size_tracking(true);
    let mut model: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for op in 0..ops {
        let key = format!("k{}", rng.below(300)).into_bytes();
        let len = match rng.below(4) {
            0 => rng.below(40) as usize,
            1 | 2 => rng.below(900) as usize,
            _ => 4_000 + rng.below(20_000) as usize,
        };
        let v = value(op as u64, len);
        match rng.below(10) {
            0..=3 => match set(&s, SetMode::Set, &key, &v, 0) {
                StoreOutcome::Stored => {
                    model.insert(key.clone(), v);
                }
                // No page could be freed for it (the chain being built and the item being
                // replaced are pinned): as memcached, the old value is dropped.
                StoreOutcome::OutOfMemory => {
                    model.remove(&key);
                    assert_eq!(get(&s, &key), None);
                }
                other => panic!("set {key:?}: {other:?}"),
            },
            4 | 5 => {
                let mode = if rng.below(2) == 0 {
                    SetMode::Append
                } else {
                    SetMode::Prepend
                };
                let got = set(&s, mode, &key, &v, 0);
                match model.get_mut(&key) {
                    Some(old) if got == StoreOutcome::Stored => {
                        *old = if mode == SetMode::Append {
                            [&old[..], &v[..]].concat()
                        } else {
                            [&v[..], &old[..]].concat()
                        };
                    }
                    // Evicted (or too large): the model forgets it below.
                    _ => {}
                }
            }
            6 => {
                // A touch gives a never-expiring item an exptime field: the item is rewritten,
                // its value copied chunk to chunk.
                let req = GetRequest {
                    key: &key,
                    touch: Some(3_600),
                    ..GetRequest::default()
                };
                let got = get_with(&s, &req);
                if let Some(got) = got {
                    assert_eq!(Some(&got), model.get(&key), "touch of {key:?}");
                }
            }
            7 => {
                let n = format!("{}", rng.below(1_000));
                if set(&s, SetMode::Set, &key, n.as_bytes(), 0) != StoreOutcome::Stored {
                    model.remove(&key);
                    continue;
                }
                let delta = rng.below(100_000);
                let out = s.arith(&ArithRequest {
                    key: &key,
                    incr: true,
                    delta,
                    ..ArithRequest::default()
                });
                let ArithOutcome::Updated { value: sum, .. } = out else {
                    panic!("incr of a stored number: {out:?}");
                };
                assert_eq!(sum, n.parse::<u64>().unwrap() + delta);
                // In place (padded with spaces) when the digits fit, else a new item.
                let stored = get(&s, &key).expect("just stored");
                assert_eq!(
                    std::str::from_utf8(&stored).unwrap().trim_end(),
                    sum.to_string()
                );
                model.insert(key.clone(), stored);
            }
            8 => {
                let present = get(&s, &key).is_some();
                let gone = s.delete(&DeleteRequest {
                    key: &key,
                    ..DeleteRequest::default()
                });
                assert_eq!(gone == DeleteOutcome::Deleted, present, "delete {key:?}");
                model.remove(&key);
            }
            _ => {}
        }
        match get(&s, &key) {
            Some(got) => assert_eq!(Some(&got), model.get(&key), "op {op}: {key:?}"),
            None => {
                model.remove(&key);
            }
        }
        if op % 97 == 0 {
            clock.advance(1);
            s.maintain();
        }
    }
    // Every item the model still has reads back as written; the counters agree.
    let mut live = 0;
    for (k, v) in &model {
        if let Some(got) = get(&s, k) {
            assert_eq!(&got, v, "{k:?}");
            live += 1;
        }
    }
    let stats = s.stats();
    assert_eq!(stats.curr_items, live);
    assert!(stats.evictions > 0, "the test must evict: {stats:?}");
    // The size histogram holds every live item once, each in the 32-byte step its size
    // rounds up to: the counts add up to curr_items, the steps bound the bytes.
    let sizes: Vec<(u64, u64)> = s
        .stats_sizes()
        .iter()
        .map(|(size, n)| (size.parse().unwrap(), n.parse().unwrap()))
        .collect();
    assert_eq!(sizes.iter().map(|&(_, n)| n).sum::<u64>(), live);
    let upper: u64 = sizes.iter().map(|&(size, n)| size * n).sum();
    let lower: u64 = sizes
        .iter()
        .map(|&(size, n)| size.saturating_sub(31) * n)
        .sum();
    assert!(
        (lower..=upper).contains(&stats.bytes),
        "{lower} <= {} <= {upper}",
        stats.bytes
    );
}

#[test]
fn size_tracking_switched_on_counts_only_items_stored_after() {
    let (s, _clock) = store(4);
    assert_eq!(
        s.stats_sizes(),
        [("sizes_status".into(), "disabled".into())]
    );
    assert_eq!(
        set(&s, SetMode::Set, b"old", &[b'o'; 100], 0),
        StoreOutcome::Stored
    );
    assert!(s.enable_size_tracking());
    assert!(s.size_tracking());
    assert_eq!(s.stats_sizes(), []);
    assert_eq!(
        set(&s, SetMode::Set, b"new", &[b'n'; 100], 0),
        StoreOutcome::Stored
    );
    let one = s.stats_sizes();
    assert_eq!(one.len(), 1, "{one:?}");
    assert_eq!(one[0].1, "1");
    // Deleting the item stored before leaves the count alone; replacing it counts the new one.
    s.delete(&DeleteRequest {
        key: b"old",
        ..DeleteRequest::default()
    });
    assert_eq!(s.stats_sizes(), one);
    assert_eq!(
        set(&s, SetMode::Set, b"old", &[b'o'; 100], 0),
        StoreOutcome::Stored
    );
    assert_eq!(s.stats_sizes(), [(one[0].0.clone(), "2".into())]);
    // A value 100 bytes longer moves one item up by 100 bytes' worth of steps.
    assert_eq!(
        set(&s, SetMode::Append, b"new", &[b'n'; 100], 0),
        StoreOutcome::Stored
    );
    let moved = s.stats_sizes();
    assert_eq!(moved.len(), 2, "{moved:?}");
    let step = |i: usize| moved[i].0.parse::<usize>().unwrap();
    assert!((96..=128).contains(&(step(1) - step(0))), "{moved:?}");
    s.disable_size_tracking();
    assert!(!s.size_tracking());
    assert_eq!(
        s.stats_sizes(),
        [("sizes_status".into(), "disabled".into())]
    );
}

#[test]
fn size_tracking_needs_cas_unless_on_from_the_start() {
    let clock = Arc::new(Clock::manual(1_700_000_000));
    let config = StoreConfig {
        cas_enabled: false,
        ..StoreConfig::default()
    };
    let s = Store::new(config.clone(), clock.clone()).unwrap();
    assert!(!s.enable_size_tracking());
    assert!(!s.size_tracking());
    let s = Store::new(
        StoreConfig {
            track_sizes: true,
            ..config
        },
        clock,
    )
    .unwrap();
    assert!(s.size_tracking());
    assert_eq!(set(&s, SetMode::Set, b"k", b"v", 0), StoreOutcome::Stored);
    assert_eq!(s.stats_sizes().len(), 1);
}

/// Items of `len` bytes stored under fresh keys of shard `shard` until `n` are stored.
fn fill_shard(s: &Store, shard: usize, n: usize, len: usize, tag: &str) -> Vec<Vec<u8>> {
    let mut keys = Vec::new();
    let mut i = 0u64;
    while keys.len() < n {
        let key = format!("{tag}{i}").into_bytes();
        i += 1;
        if shard_of(s, &key) != shard {
            continue;
        }
        assert_eq!(
            set(s, SetMode::Set, &key, &value(i, len), 0),
            StoreOutcome::Stored
        );
        keys.push(key);
    }
    keys
}

#[test]
fn a_shard_without_pages_takes_one_from_another_shard() {
    // 8 MiB: 128 pages, two shards. Shard 0 takes every page; a store in shard 1 then has no
    // page of its own, nothing to evict and no class to take from, so it takes a page from
    // shard 0 (`steal_remote`): released under shard 0's lock, claimed under shard 1's.
    let (s, _) = store(8);
    assert_eq!(s.shared.shards.len(), 2);
    // 60,000-byte values: 15 chunks of 4 KiB each, so 128 pages hold ~136 of them.
    let len = 60_000;
    let keys = fill_shard(&s, 0, 160, len, "a");
    assert_eq!(
        s.stats().total_malloced,
        8 << 20,
        "shard 0 holds every page"
    );
    let theirs = fill_shard(&s, 1, 3, 5_000, "b");
    for (i, k) in theirs.iter().enumerate() {
        let stored = get(&s, k).expect("stored in a page taken from shard 0");
        assert_eq!(stored.len(), 5_000, "{i}");
    }
    assert!(s.stats().slabs_moved > 0);
    // What shard 0 kept is intact.
    let kept = keys.iter().filter_map(|k| get(&s, k)).count();
    assert!(kept > 100, "{kept}");
}

#[test]
fn two_threads_on_a_full_two_shard_store_read_back_what_they_wrote() {
    // Both shards write at once into a full arena, each evicting and taking pages from the
    // other; under Miri this checks the page hand-over between threads for data races.
    let (s, _) = store(8);
    let rounds = if cfg!(miri) { 40 } else { 2_000 };
    fill_shard(&s, 0, 150, 60_000, "fill");
    std::thread::scope(|t| {
        for shard in 0..2 {
            let s = &s;
            t.spawn(move || {
                let mut rng = Rng(0xDEAD_BEEF ^ shard as u64);
                let mut i = 0u64;
                let mut done = 0;
                while done < rounds {
                    i += 1;
                    let key = format!("t{shard}-{}", i % 64).into_bytes();
                    if shard_of(s, &key) != shard {
                        continue;
                    }
                    let v = value(i, 1 + rng.below(20_000) as usize);
                    if set(s, SetMode::Set, &key, &v, 0) == StoreOutcome::Stored {
                        if let Some(got) = get(s, &key) {
                            assert_eq!(got, v);
                        }
                    }
                    done += 1;
                }
            });
        }
    });
    assert!(s.stats().curr_items > 0);
}

#[test]
fn operator_walks_and_page_moves_keep_items_intact() {
    let (s, clock) = store(2);
    let mut keys = Vec::new();
    for i in 0..240u64 {
        let key = format!("op{i}").into_bytes();
        let len = [10, 100, 1_000, 6_000][i as usize % 4];
        let exptime = if i % 3 == 0 { 5 } else { 0 };
        assert_eq!(
            set(&s, SetMode::Set, &key, &value(i, len), exptime),
            StoreOutcome::Stored
        );
        keys.push((key, value(i, len), exptime));
    }
    // Meta: an invalidated item stays, stale; a vivified one is created empty.
    let md = s.delete(&DeleteRequest {
        key: b"op1",
        invalidate: true,
        ..DeleteRequest::default()
    });
    assert_eq!(md, DeleteOutcome::Deleted);
    let won = s.get(
        &GetRequest {
            key: b"op1",
            win_tokens: true,
            ..GetRequest::default()
        },
        |v| (v.stale(), v.won()),
    );
    assert_eq!(won, Lookup::Hit((true, true)));
    let made = s.get(
        &GetRequest {
            key: b"fresh",
            vivify: Some(30),
            win_tokens: true,
            ..GetRequest::default()
        },
        |v| (v.created(), v.value_len()),
    );
    assert_eq!(made, Lookup::Hit((true, 0)));
    // Dumps read every live item's key.
    let small = s.class_id(3, 0, false, 1_000);
    let dumped = s.cachedump(small, 0, 1 << 20);
    assert!(!dumped.is_empty());
    let mut cursor = DumpCursor::default();
    let mut seen = 0;
    while !s.metadump(&Classes::All, &mut cursor, &mut |_| seen += 1) {}
    assert_eq!(seen as u64, s.stats().curr_items);
    // Pages of the chained items' class to the pool and back to another class, and straight
    // to another class.
    let big = s.class_count() as i32;
    assert_eq!(s.reassign(big, 0), ReassignOutcome::Moved);
    assert_eq!(s.reassign(0, small as i32), ReassignOutcome::Moved);
    assert_eq!(s.reassign(big, small as i32), ReassignOutcome::Moved);
    // A lowered limit gives pages back on maintain(); the crawler reclaims the expired.
    assert!(s.set_memory_limit(1 << 20));
    clock.advance(10);
    for _ in 0..4 {
        s.maintain();
    }
    assert!(s.stats().total_malloced <= 1 << 20);
    assert!(s.stats().crawler_reclaimed > 0);
    assert!(s.set_memory_limit(2 << 20));
    for (key, v, exptime) in &keys {
        if let Some(got) = get(&s, key) {
            assert_eq!(*exptime, 0, "an expired item is gone");
            if key != b"op1" {
                assert_eq!(&got, v);
            }
        }
    }
}

/// A `stats slabs` figure of class `cls` (1-based), 0 when the class has no line.
fn slab_stat(s: &Store, cls: u32, name: &str) -> u64 {
    let key = format!("{cls}:{name}");
    let found = s.stats_slabs().into_iter().find(|(k, _)| *k == key);
    found.map_or(0, |(_, v)| v.parse().unwrap())
}

/// The value, CAS and flags of `key`, if stored.
fn snapshot(s: &Store, key: &[u8]) -> Option<(Vec<u8>, u64, u32)> {
    match s.get(
        &GetRequest {
            key,
            ..GetRequest::default()
        },
        |v| {
            (
                v.value_chunks().collect::<Vec<_>>().concat(),
                v.cas(),
                v.flags(),
            )
        },
    ) {
        Lookup::Hit(x) => Some(x),
        _ => None,
    }
}

/// Deletes `keys[0]`, `keys[2]`, ... (all stored).
fn delete_every_other(s: &Store, keys: &[Vec<u8>]) {
    for key in keys.iter().step_by(2) {
        let gone = s.delete(&DeleteRequest {
            key,
            ..DeleteRequest::default()
        });
        assert_eq!(gone, DeleteOutcome::Deleted);
    }
}

#[test]
fn a_page_move_rescues_live_items_into_free_chunks_of_their_class() {
    // 300 items of 2,000 bytes: about ten pages of one class, under Miri too.
    let (s, clock) = store(4);
    let len = 2_000;
    let n = 300;
    let keys: Vec<Vec<u8>> = (0..n).map(|i| format!("r{i:05}").into_bytes()).collect();
    for (i, key) in keys.iter().enumerate() {
        // Every fourth item expires: a page move drops it rather than rescuing it.
        let exptime = if i % 4 == 1 { 5 } else { 0 };
        let stored = s.set(&SetRequest {
            mode: SetMode::Set,
            key,
            value: &value(i as u64, len),
            flags: i as u32,
            exptime,
            ..SetRequest::default()
        });
        assert_eq!(stored.0, StoreOutcome::Stored);
    }
    let cls = s.class_id(6, 0, false, len);
    // Every other item deleted: each page of the class is half free.
    delete_every_other(&s, &keys);
    let before: Vec<_> = keys.iter().map(|k| snapshot(&s, k)).collect();
    clock.advance(10);
    let items_before = s.stats().curr_items;
    // Two pages of the class: one to the pool, one to another class.
    let other = s.class_id(6, 0, false, 100);
    assert_eq!(s.reassign(cls as i32, 0), ReassignOutcome::Moved);
    assert_eq!(s.reassign(cls as i32, other as i32), ReassignOutcome::Moved);
    let st = s.stats();
    assert_eq!(st.slabs_moved, 2);
    assert!(st.reassign_rescues > 0, "{st:?}");
    // Room for all of them: no live item was dropped.
    assert_eq!(st.reassign_evictions, 0, "{st:?}");
    assert!(st.curr_items <= items_before);
    // The class's chunk counts still add up: each live item holds one chunk, and every chunk
    // of its remaining pages is used, free or not yet carved.
    let slab = |name: &str| slab_stat(&s, cls, name);
    let number = s
        .stats_items()
        .into_iter()
        .find(|(k, _)| *k == format!("items:{cls}:number"))
        .map_or(0, |(_, v)| v.parse::<u64>().unwrap());
    assert_eq!(slab("used_chunks"), number);
    assert_eq!(
        slab("used_chunks") + slab("free_chunks") + slab("free_chunks_end"),
        slab("total_chunks")
    );
    for (i, key) in keys.iter().enumerate() {
        let now = snapshot(&s, key);
        if i % 2 == 0 || i % 4 == 1 {
            assert_eq!(now, None, "{i}: deleted or expired");
        } else {
            // Rescued or untouched: the same bytes, CAS and flags as before the moves.
            assert_eq!(now, before[i], "{i}");
            assert_eq!(
                now.as_ref().map(|x| x.0.clone()),
                Some(value(i as u64, len))
            );
        }
    }
    // The class still takes new items, into the chunks left after the rescues.
    assert_eq!(
        set(&s, SetMode::Set, b"r99999", &value(7, len), 0),
        StoreOutcome::Stored
    );
}

#[test]
fn a_class_holding_only_chain_tails_evicts_instead_of_taking_pages() {
    // Every value is chained: full largest-class chunks and a tail. First the tails all go to
    // one class, then (another value size) all to a second one, which soon holds nothing but
    // tails. Making room there must evict a chained item (which frees its tail), not move a
    // whole page from another class each time.
    let (s, _) = store(4);
    let n = if cfg!(miri) { 40 } else { 120 };
    for (phase, len) in [(0u64, 140_000usize), (1, 134_000)] {
        for i in 0..n {
            let key = format!("chain{phase}:{i:04}").into_bytes();
            assert_eq!(
                set(&s, SetMode::Set, &key, &value(i, len), 0),
                StoreOutcome::Stored
            );
        }
    }
    let st = s.stats();
    assert!(st.evictions > 0, "{st:?}");
    // The second tail class takes its first page from another class; nothing more moves.
    assert!(st.slabs_moved <= 1, "{st:?}");
    // What is left of the second size reads back whole; the newest item is there.
    let mut left = 0;
    for i in 0..n {
        if let Some(got) = get(&s, format!("chain1:{i:04}").as_bytes()) {
            assert_eq!(got, value(i, 134_000), "{i}");
            left += 1;
        }
    }
    assert!(left > 0);
    assert!(get(&s, format!("chain1:{:04}", n - 1).as_bytes()).is_some());
}

#[test]
fn an_item_whose_class_has_no_page_takes_a_larger_chunk_not_a_page() {
    // Memory full of 1,000-byte values, then values a class smaller: their class has no page
    // and none to take. They go into chunks of the 1,000-byte class (evicting one item each),
    // where a page move would have dropped a whole page of items for the first of them.
    let (s, _) = store_with(if cfg!(miri) { 256 } else { 2 << 10 }, None);
    let mut i = 0u64;
    // (Checked every 16 sets: `stats()` walks every class, which Miri makes slow.)
    while s.stats().evictions == 0 {
        for _ in 0..16 {
            let key = format!("big{i:06}").into_bytes();
            assert_eq!(
                set(&s, SetMode::Set, &key, &value(i, 1_000), 0),
                StoreOutcome::Stored
            );
            i += 1;
        }
    }
    let full = s.stats().curr_items;
    let big = s.class_id(9, 0, false, 1_000);
    let small = s.class_id(9, 0, false, 900);
    assert!(small < big && big - small <= 16, "{small} {big}");
    let m = if cfg!(miri) { 20 } else { 200 };
    for j in 0..m {
        let key = format!("sml{j:06}").into_bytes();
        assert_eq!(
            set(&s, SetMode::Set, &key, &value(j, 900), 0),
            StoreOutcome::Stored
        );
    }
    let st = s.stats();
    assert_eq!(st.slabs_moved, 0, "{st:?}");
    assert_eq!(st.reassign_evictions, 0, "{st:?}");
    // One eviction per smaller item, no more.
    assert_eq!(st.curr_items, full, "{st:?}");
    for j in 0..m {
        let got = get(&s, format!("sml{j:06}").as_bytes());
        assert_eq!(got, Some(value(j, 900)), "{j}");
    }
    // They are counted where they live.
    let pages = |cls: u32| slab_stat(&s, cls, "total_pages");
    assert_eq!(pages(small), 0);
    assert!(pages(big) > 0);
}

/// Pages of class `cls` (1-based, as `stats slabs` names it).
fn class_pages(s: &Store, cls: u32) -> u64 {
    let key = format!("{cls}:total_pages");
    s.stats_slabs()
        .into_iter()
        .find(|(k, _)| *k == key)
        .map_or(0, |(_, v)| v.parse::<u64>().unwrap())
}

/// The value length of the `k`th one-page class (in integers: Miri's float functions are
/// imprecise on purpose, and a store and its check must agree).
fn idle_len(k: usize) -> usize {
    (0..k).fold(100, |len, _| len * 108 / 100)
}

/// Forty classes of a one-shard store given a page each with three items (`idleKK:J`), then
/// one class (3,000-byte values) filling the rest of memory until it evicts. Returns the hot
/// class and how many hot items were written.
fn forty_one_page_classes_then_a_hot_one(s: &Store) -> (u32, u64) {
    for k in 0..40 {
        let len = idle_len(k);
        for j in 0..3 {
            let key = format!("idle{k:02}:{j}").into_bytes();
            let stored = set(s, SetMode::Set, &key, &value(j, len), 0);
            assert_eq!(stored, StoreOutcome::Stored);
        }
    }
    let mut i = 0;
    while s.stats().evictions == 0 {
        write_hot(s, &mut i, 50);
    }
    (s.class_id(9, 0, false, 3_000), i)
}

fn write_hot(s: &Store, i: &mut u64, n: u64) {
    for _ in 0..n {
        let key = format!("hot{i:07}").into_bytes();
        let stored = set(s, SetMode::Set, &key, &value(*i, 3_000), 0);
        assert_eq!(stored, StoreOutcome::Stored);
        *i += 1;
    }
}

#[test]
fn automove_takes_the_last_page_of_an_idle_class() {
    // With more classes than pages per shard, most classes hold one page; memcached's rule
    // (donors hold two or more) would leave the hot class stuck with what it has. Pages whose
    // items were all used longer ago than the hot class's evicted ones move to it.
    let (s, clock) = store(4);
    let (hot, mut i) = forty_one_page_classes_then_a_hot_one(&s);
    let before = class_pages(&s, hot);
    clock.advance(10);
    for _ in 0..5 {
        write_hot(&s, &mut i, 500);
        s.maintain();
    }
    let after = class_pages(&s, hot);
    assert!(after >= before + 10, "{before} -> {after}");
    assert!(s.stats().reassign_evictions > 0);
}

#[test]
fn automove_leaves_the_last_page_of_a_class_in_use() {
    // The same store, but the one-page classes' items are read between the hot writes: their
    // pages are not idle, so none is taken and no read misses. (Taking last pages without
    // looking dropped an item being appended to in memcached's chunked-items.t.)
    let (s, clock) = store(4);
    let (hot, mut i) = forty_one_page_classes_then_a_hot_one(&s);
    let before = class_pages(&s, hot);
    for _ in 0..5 {
        clock.advance(10);
        for k in 0..40 {
            for j in 0..3 {
                let key = format!("idle{k:02}:{j}").into_bytes();
                assert_eq!(get(&s, &key), Some(value(j, idle_len(k))), "{k}:{j}");
            }
        }
        write_hot(&s, &mut i, 500);
        s.maintain();
    }
    assert_eq!(class_pages(&s, hot), before);
}

#[test]
fn a_page_move_rescues_chained_items_chunk_by_chunk() {
    // 80 values of 10,000 bytes, each a head and a middle chunk of the largest class and a
    // tail in a smaller one; half deleted, so each class has free chunks on every page. Moving
    // pages of both classes must keep every live value whole, whichever of its chunks (head,
    // middle, tail) the moved page held.
    let (s, clock) = store(4);
    let n = if cfg!(miri) { 40 } else { 80 };
    let len = 10_000;
    let keys: Vec<Vec<u8>> = (0..n).map(|i| format!("c{i:04}").into_bytes()).collect();
    for (i, key) in keys.iter().enumerate() {
        let stored = set(&s, SetMode::Set, key, &value(i as u64, len), 0);
        assert_eq!(stored, StoreOutcome::Stored);
    }
    delete_every_other(&s, &keys);
    let before: Vec<_> = keys.iter().map(|k| snapshot(&s, k)).collect();
    clock.advance(10);
    let largest = s.class_count() as u32;
    let tail = (1..largest)
        .find(|&c| class_pages(&s, c) > 0)
        .expect("a tail class");
    let big_pages = class_pages(&s, largest);
    assert!(big_pages >= 4 && class_pages(&s, tail) >= 2);
    // Moves until one page of each class is left (to the pool, and one to the tail class).
    assert_eq!(
        s.reassign(largest as i32, tail as i32),
        ReassignOutcome::Moved
    );
    while class_pages(&s, largest) > 1 {
        assert_eq!(s.reassign(largest as i32, 0), ReassignOutcome::Moved);
    }
    while class_pages(&s, tail) > 1 {
        assert_eq!(s.reassign(tail as i32, 0), ReassignOutcome::Moved);
    }
    let st = s.stats();
    assert!(st.reassign_rescues > 0, "{st:?}");
    assert!(st.reassign_chunk_rescues > 0, "{st:?}");
    for (i, key) in keys.iter().enumerate() {
        let now = snapshot(&s, key);
        if i % 2 == 0 {
            assert_eq!(now, None, "{i}: deleted");
        } else if now.is_some() {
            assert_eq!(now, before[i], "{i}");
        }
    }
    // Every live item that had room was kept: what is gone was counted.
    let kept = keys.iter().filter(|k| snapshot(&s, k).is_some()).count() as u64;
    assert_eq!(kept + st.reassign_evictions, n as u64 / 2, "{st:?}");
    assert_eq!(s.accounting().curr_items, kept);
    for cls in [largest, tail] {
        let slab = |name: &str| slab_stat(&s, cls, name);
        assert_eq!(
            slab("used_chunks") + slab("free_chunks") + slab("free_chunks_end"),
            slab("total_chunks"),
            "class {cls}"
        );
    }
    // Freed chunks are reusable: the class takes new chained items.
    for i in 0..4u64 {
        let key = format!("new{i}").into_bytes();
        assert_eq!(
            set(&s, SetMode::Set, &key, &value(i, len), 0),
            StoreOutcome::Stored
        );
        assert_eq!(get(&s, &key), Some(value(i, len)));
    }
}
