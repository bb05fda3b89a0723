//! The store's counters: `stats`, `stats items`, `stats slabs`, `stats sizes`.
//!
//! Each shard keeps per-class counters under its own lock; these functions lock the shards one
//! at a time and add them up, so a stats call never stops the whole store.

use super::arena::PAGE_SIZE;
use super::hits::Hit;
use super::shard::{ClassStats, ShardCounters};
use super::Store;

/// Counters and gauges the store reports in `stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Items currently stored.
    pub curr_items: u64,
    /// Items ever stored.
    pub total_items: u64,
    /// Bytes used by items.
    pub bytes: u64,
    /// Live items evicted to make room.
    pub evictions: u64,
    /// Times an expired item's memory was reused for a new item.
    pub reclaimed: u64,
    /// Expired items reclaimed by the background crawler.
    pub crawler_reclaimed: u64,
    /// Items evicted before anyone read them.
    pub evicted_unfetched: u64,
    /// Expired items reclaimed before anyone read them.
    pub expired_unfetched: u64,
    /// Bytes taken by the hash index.
    pub hash_bytes: u64,
    /// The hash index's size as a power of two.
    pub hash_power_level: u32,
    /// Whether the index is being grown.
    pub hash_is_expanding: bool,
    /// Bytes of item memory allocated so far (pages handed to slab classes).
    pub total_malloced: u64,
    /// Pages moved between slab classes.
    pub slabs_moved: u64,
    /// Live items dropped because the page holding them was moved to another class and they
    /// could not be rescued (memcached's `slab_reassign_evictions_nomem`).
    pub reassign_evictions: u64,
    /// Live items a page move copied into another chunk of their class instead of dropping
    /// them (memcached's `slab_reassign_rescues`).
    pub reassign_rescues: u64,
    /// Continuation chunks of chained items a page move copied into another chunk of their
    /// class, linked in where they were (memcached's `slab_reassign_chunk_rescues`).
    pub reassign_chunk_rescues: u64,
    /// Lookups that found the key's item expired, and freed it: by any command, a store or
    /// a delete as well as a get, as memcached counts its `get_expired`.
    pub get_expired: u64,
    /// Lookups that found the key's item invalidated by `flush_all`, and freed it
    /// (`get_flushed`, counted as `get_expired` is).
    pub get_flushed: u64,
}

/// The store's own bookkeeping, read in one pass for consistency checks (the fuzz targets
/// and tests): what `stats` and `stats items` would report, without the strings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Accounting {
    /// `curr_items`, from the shards' counters.
    pub curr_items: u64,
    /// `total_items`.
    pub total_items: u64,
    /// `bytes`.
    pub bytes: u64,
    /// `total_malloced`.
    pub total_malloced: u64,
    /// The `stats items` `number` lines added up over the classes.
    pub class_items: u64,
}

/// One class summed over the shards.
#[derive(Default)]
struct ClassSum {
    pages: u64,
    used: u64,
    free: u64,
    free_end: u64,
    st: ClassStats,
    /// The oldest access time at any shard's CLOCK hand (`age`).
    age: u64,
}

fn add(a: &mut ClassStats, b: &ClassStats) {
    a.number += b.number;
    a.mem_requested += b.mem_requested;
    a.evicted += b.evicted;
    a.evicted_nonzero += b.evicted_nonzero;
    a.outofmemory += b.outofmemory;
    a.reclaimed += b.reclaimed;
    a.expired_unfetched += b.expired_unfetched;
    a.evicted_unfetched += b.evicted_unfetched;
    a.crawler_reclaimed += b.crawler_reclaimed;
    a.crawler_items_checked += b.crawler_items_checked;
    a.get_hits += b.get_hits;
    a.cmd_set += b.cmd_set;
    a.delete_hits += b.delete_hits;
    a.incr_hits += b.incr_hits;
    a.decr_hits += b.decr_hits;
    a.cas_hits += b.cas_hits;
    a.cas_badval += b.cas_badval;
    a.touch_hits += b.touch_hits;
    a.evicted_time = a.evicted_time.max(b.evicted_time);
}

impl Store {
    fn sums(&self) -> (Vec<ClassSum>, ShardCounters, u64, u64, bool) {
        let n = self.shared.classes.len();
        let mut sums: Vec<ClassSum> = (0..n).map(|_| ClassSum::default()).collect();
        let mut totals = ShardCounters::default();
        let mut hash_bytes = 0u64;
        let mut hash_slots = 0u64;
        let mut expanding = false;
        let now = self.clock.now();
        for s in self.shared.shards.iter() {
            let s = s.0.lock();
            for (i, c) in s.classes.iter().enumerate() {
                let sum = &mut sums[i];
                sum.pages += c.pages.len() as u64;
                sum.used += c.used;
                sum.free += c.free;
                sum.free_end += c.free_end(self.shared.classes.per_page(i));
                add(&mut sum.st, &c.stats);
                if let Some(a) = s.hand_age(&self.shared, i, now) {
                    sum.age = sum.age.max(u64::from(a));
                }
            }
            totals.total_items += s.counters.total_items;
            totals.curr_items += s.counters.curr_items;
            totals.bytes += s.counters.bytes;
            totals.slabs_moved += s.counters.slabs_moved;
            totals.reassign_evictions += s.counters.reassign_evictions;
            totals.reassign_rescues += s.counters.reassign_rescues;
            totals.reassign_chunk_rescues += s.counters.reassign_chunk_rescues;
            totals.get_expired += s.counters.get_expired;
            totals.get_flushed += s.counters.get_flushed;
            hash_bytes += s.index.bytes() as u64;
            hash_slots += s.index.capacity() as u64;
            expanding |= s.index.is_expanding();
        }
        for (i, sum) in sums.iter_mut().enumerate() {
            sum.st.get_hits += self.hits.sum(i, Hit::Get);
            sum.st.touch_hits += self.hits.sum(i, Hit::Touch);
        }
        (sums, totals, hash_bytes, hash_slots, expanding)
    }

    /// The counters that must agree with each other, in one pass over the shards.
    pub fn accounting(&self) -> Accounting {
        let mut a = Accounting {
            total_malloced: u64::from(self.shared.arena.pages_in_use()) * PAGE_SIZE as u64,
            ..Accounting::default()
        };
        for s in self.shared.shards.iter() {
            let s = s.0.lock();
            a.curr_items += s.counters.curr_items;
            a.total_items += s.counters.total_items;
            a.bytes += s.counters.bytes;
            a.class_items += s.classes.iter().map(|c| c.stats.number).sum::<u64>();
        }
        a
    }

    /// The store's counters.
    pub fn stats(&self) -> StoreStats {
        let (sums, t, hash_bytes, hash_slots, expanding) = self.sums();
        let mut all = ClassStats::default();
        for s in &sums {
            add(&mut all, &s.st);
        }
        StoreStats {
            curr_items: t.curr_items,
            total_items: t.total_items,
            bytes: t.bytes,
            evictions: all.evicted,
            reclaimed: all.reclaimed,
            crawler_reclaimed: all.crawler_reclaimed,
            evicted_unfetched: all.evicted_unfetched,
            expired_unfetched: all.expired_unfetched,
            hash_bytes,
            hash_power_level: 64 - hash_slots.max(1).next_power_of_two().leading_zeros() - 1,
            hash_is_expanding: expanding,
            total_malloced: u64::from(self.shared.arena.pages_in_use()) * PAGE_SIZE as u64,
            slabs_moved: t.slabs_moved,
            reassign_evictions: t.reassign_evictions,
            reassign_rescues: t.reassign_rescues,
            reassign_chunk_rescues: t.reassign_chunk_rescues,
            get_expired: t.get_expired,
            get_flushed: t.get_flushed,
        }
    }

    /// `stats items` lines, as (name, value) pairs (`items:<class>:<field>`), for classes that
    /// hold items, with memcached 1.6.18's field names. tern has no hot/warm/cold queues; those
    /// fields report the single CLOCK queue as "cold".
    pub fn stats_items(&self) -> Vec<(String, String)> {
        let (sums, ..) = self.sums();
        let mut out = Vec::new();
        for (i, s) in sums.iter().enumerate() {
            if s.pages == 0 && s.st.number == 0 {
                continue;
            }
            let st = &s.st;
            let id = i + 1;
            let fields: [(&str, u64); 28] = [
                ("number", st.number),
                ("number_hot", 0),
                ("number_warm", 0),
                ("number_cold", st.number),
                ("age_hot", 0),
                ("age_warm", 0),
                ("age", s.age),
                ("mem_requested", st.mem_requested),
                ("evicted", st.evicted),
                ("evicted_nonzero", st.evicted_nonzero),
                ("evicted_time", st.evicted_time),
                ("outofmemory", st.outofmemory),
                ("tailrepairs", 0),
                ("reclaimed", st.reclaimed),
                ("expired_unfetched", st.expired_unfetched),
                ("evicted_unfetched", st.evicted_unfetched),
                ("evicted_active", 0),
                ("crawler_reclaimed", st.crawler_reclaimed),
                ("crawler_items_checked", st.crawler_items_checked),
                ("lrutail_reflocked", 0),
                ("moves_to_cold", 0),
                ("moves_to_warm", 0),
                ("moves_within_lru", 0),
                ("direct_reclaims", st.evicted + st.reclaimed),
                ("hits_to_hot", 0),
                ("hits_to_warm", 0),
                ("hits_to_cold", st.get_hits + st.touch_hits),
                ("hits_to_temp", 0),
            ];
            for (name, v) in fields {
                out.push((format!("items:{id}:{name}"), v.to_string()));
            }
        }
        out
    }

    /// `stats slabs` lines, as (name, value) pairs (`<class>:<field>` and totals), with
    /// memcached 1.6.18's field names.
    pub fn stats_slabs(&self) -> Vec<(String, String)> {
        let (sums, ..) = self.sums();
        let mut out = Vec::new();
        let mut active = 0;
        for (i, s) in sums.iter().enumerate() {
            if s.pages == 0 {
                continue;
            }
            active += 1;
            let id = i + 1;
            let per_page = self.shared.classes.per_page(i) as u64;
            let st = &s.st;
            let fields: [(&str, u64); 15] = [
                ("chunk_size", self.shared.classes.size(i) as u64),
                ("chunks_per_page", per_page),
                ("total_pages", s.pages),
                ("total_chunks", s.pages * per_page),
                ("used_chunks", s.used),
                ("free_chunks", s.free),
                ("free_chunks_end", s.free_end),
                ("get_hits", st.get_hits),
                ("cmd_set", st.cmd_set),
                ("delete_hits", st.delete_hits),
                ("incr_hits", st.incr_hits),
                ("decr_hits", st.decr_hits),
                ("cas_hits", st.cas_hits),
                ("cas_badval", st.cas_badval),
                ("touch_hits", st.touch_hits),
            ];
            for (name, v) in fields {
                out.push((format!("{id}:{name}"), v.to_string()));
            }
        }
        out.push(("active_slabs".into(), active.to_string()));
        out.push((
            "total_malloced".into(),
            (u64::from(self.shared.arena.pages_in_use()) * PAGE_SIZE as u64).to_string(),
        ));
        out
    }
}
