//! The item store: keys to items with flags, CAS, TTL, under a memory limit.
//!
//! The store knows nothing of sockets or protocols. The server calls it from every worker thread
//! at once through `&Store`; a reader sees an item only inside a closure run while the item is
//! pinned, and copies what it needs into its own output buffer before the closure returns, so no
//! store lock is ever held across socket I/O.
//!
//! Layout (docs/store.md has the details and the capacity arithmetic):
//! - `arena`: one reserved mapping cut into 64 KiB pages, the global page budget (`-m`).
//! - `classes`: the slab class table (`-n`, `-f`), page-snapped chunk sizes.
//! - `item`: the variable-length item header (12 bytes for flags 0, no exptime, CAS on).
//! - `index`: per-shard open-addressing index of packed `u32` handles, outside item memory.
//! - `shard`: one shard's index, classes and free lists; `shard/evict.rs` CLOCK eviction and
//!   page moves; `shard/maintain.rs` the crawler, index growth and automove.
//! - `stats`: `stats items` / `stats slabs` lines.
//!
//! Keys are spread over [`SHARDS`] shards by hash; each shard is behind its own lock and owns its
//! part of the index and its own slab classes, so nothing global is locked on the get/set path
//! (pages are taken from the shared budget once per 64 KiB).

mod arena;
mod classes;
mod index;
mod item;
mod request;
mod shard;
mod stats;
mod value;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::clock::Clock;
use arena::{Arena, PAGE_SIZE};
use classes::ClassTable;
pub use classes::{DEFAULT_CHUNK_SIZE_MIN, DEFAULT_GROWTH_FACTOR};
pub use request::{ArithRequest, DeleteRequest, GetRequest, SetMode, SetRequest};
use shard::{Dead, Look, Padded, Shard, Shared};

/// The most shards (a power of two). 16 keeps the per-class partly used pages at 16 x 64 KiB =
/// memcached's one 1 MiB page per class, while 8 worker threads rarely meet on one lock.
pub const SHARDS: usize = 16;
/// A shard gets at least this many pages' worth of `-m`: a tiny store has fewer shards, so
/// that its few pages are not spread over more (shard, class) pairs than it has pages.
const MIN_PAGES_PER_SHARD: usize = 64;

/// memcached's default `hashpower` (2^16 buckets), spread over the shards.
const DEFAULT_HASHPOWER: u8 = 16;

/// Chunks each shard's crawler looks at per `maintain()` call (bounded background work).
const CRAWL_BUDGET: usize = 16 * 1024;

/// Index slots `maintain()` moves per shard per call while an index grows.
const INDEX_MIGRATE_PER_TICK: usize = 16 * 1024;

/// Pages automove may move per shard per `maintain()` call, at least; a shard may move 1/64 of
/// its pages per call if that is more, so that a large store rebalances as fast (in seconds)
/// as a small one. Each moved page evicts what it holds under that shard's lock.
const AUTOMOVE_PAGES_PER_TICK: usize = 4;

/// The longest key by default: memcached's `KEY_MAX_LENGTH`.
pub const DEFAULT_KEY_MAX_LENGTH: usize = 250;

/// The largest `-I` tern accepts (memcached's limit too).
pub const ITEM_SIZE_MAX_LIMIT: usize = 1024 * 1024 * 1024;
/// The smallest `-I` (memcached's limit too).
pub const ITEM_SIZE_MAX_MIN: usize = 1024;

/// The store's settings (from `-m`, `-I`, `-n`, `-f`, `-M`, `-C`, `-o ...`).
#[derive(Debug, Clone, PartialEq)]
pub struct StoreConfig {
    /// Bytes of item memory (`-m`, given in megabytes).
    pub memory_limit: usize,
    /// The largest item, in bytes (`-I`).
    pub item_size_max: usize,
    /// The longest key, in bytes (memcached's 250; the server passes its protocol's limit).
    pub key_max_length: usize,
    /// The smallest chunk size (`-n`), or `None` for tern's default.
    pub chunk_size_min: Option<usize>,
    /// The chunk size growth factor (`-f`), or `None` for tern's default.
    pub growth_factor: Option<f64>,
    /// Whether to evict when memory is full (`-M` turns it off).
    pub evict: bool,
    /// Whether items carry CAS uniques (`-C` turns them off).
    pub cas_enabled: bool,
    /// Initial hash table size as a power of two (`-o hashpower=N`), or `None` for the default.
    pub hashpower_init: Option<u8>,
    /// Whether pages move between slab classes as the size mix changes (`-o slab_automove`).
    pub slab_automove: bool,
    /// Whether the background reclaimer of expired items runs (`-o lru_crawler`).
    pub lru_crawler: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            memory_limit: 64 * 1024 * 1024,
            item_size_max: 1024 * 1024,
            key_max_length: DEFAULT_KEY_MAX_LENGTH,
            chunk_size_min: None,
            growth_factor: None,
            evict: true,
            cas_enabled: true,
            hashpower_init: None,
            slab_automove: true,
            lru_crawler: true,
        }
    }
}

/// Why a configuration cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfigError(pub String);

impl std::fmt::Display for StoreConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreConfigError {}

impl StoreConfig {
    /// memcached's rules for `-I` against `-m` (for the config module to call): `-I` from 1 KB
    /// to 1 GB and not above half of `-m`.
    pub fn check_item_size_max(&self) -> Result<(), StoreConfigError> {
        if self.item_size_max < ITEM_SIZE_MAX_MIN {
            return Err(StoreConfigError(
                "Item max size cannot be less than 1024 bytes.".into(),
            ));
        }
        if self.item_size_max > ITEM_SIZE_MAX_LIMIT {
            return Err(StoreConfigError(
                "Cannot set item size limit higher than 1 gigabyte.".into(),
            ));
        }
        if self.item_size_max > self.memory_limit / 2 {
            return Err(StoreConfigError(
                "Cannot set item size limit higher than 1/2 of memory max.".into(),
            ));
        }
        Ok(())
    }
}

/// A live item, visible only inside a store closure.
#[derive(Debug)]
pub struct ItemView<'a> {
    key: &'a [u8],
    flags: u32,
    cas: u64,
    value_len: usize,
    first: &'a [u8],
    next: u32,
    shared: &'a Shared,
}

impl<'a> ItemView<'a> {
    /// The key.
    pub fn key(&self) -> &'a [u8] {
        self.key
    }

    /// The client flags.
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// The CAS unique (0 when CAS is disabled).
    pub fn cas(&self) -> u64 {
        self.cas
    }

    /// The value's length in bytes.
    pub fn value_len(&self) -> usize {
        self.value_len
    }

    /// The value, as one or more contiguous pieces in order (a large item is chained).
    pub fn value_chunks(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        ValueChunks {
            first: Some(self.first),
            next: self.next,
            rest: self.value_len - self.first.len(),
            shared: self.shared,
        }
    }
}

/// The pieces of a value, following a chain.
struct ValueChunks<'a> {
    first: Option<&'a [u8]>,
    next: u32,
    rest: usize,
    shared: &'a Shared,
}

impl<'a> Iterator for ValueChunks<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if let Some(f) = self.first.take() {
            return Some(f);
        }
        if self.rest == 0 || self.next == 0 {
            return None;
        }
        // SAFETY: an ItemView only exists inside a store closure, while the lock of the shard
        // owning the item is held and nothing writes to it; continuation chunks belong to the
        // same shard. The slice is only read.
        let c: &'a [u8] = unsafe { self.shared.chunk_ref(self.next) };
        let n = (c.len() - item::CONT_HEADER).min(self.rest);
        self.rest -= n;
        self.next = item::link(c);
        Some(&c[item::CONT_HEADER..item::CONT_HEADER + n])
    }
}

/// The result of a lookup, distinguishing the kinds of miss memcached counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<T> {
    /// A live item; carries what the closure returned.
    Hit(T),
    /// No item.
    Miss,
    /// An item was there but had expired (`get_expired`).
    Expired,
    /// An item was there but a `flush_all` had invalidated it (`get_flushed`).
    Flushed,
}

impl<T> Lookup<T> {
    /// Whether this is a hit.
    pub fn is_hit(&self) -> bool {
        matches!(self, Lookup::Hit(_))
    }
}

/// The result of a storage command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    /// Stored.
    Stored,
    /// The mode's condition failed (add of a live key, replace/append/prepend of a missing one).
    NotStored,
    /// `cas`: the item was modified since the client read it.
    Exists,
    /// `cas`: no such item.
    NotFound,
    /// The item is over the size limit.
    TooLarge,
    /// No memory, and eviction is off (`-M`) or found nothing to evict.
    OutOfMemory,
}

/// The result of incr/decr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOutcome {
    /// The item now holds `value`, with CAS `cas`.
    Updated {
        /// The new value.
        value: u64,
        /// The new CAS unique.
        cas: u64,
    },
    /// The item was missing and was created from the initial value (binary protocol only).
    Created {
        /// The initial value.
        value: u64,
        /// The new CAS unique.
        cas: u64,
    },
    /// No such item (and no initial value to create it from).
    NotFound,
    /// The item's data is not a decimal unsigned 64-bit number.
    NonNumeric,
    /// The new value could not be stored.
    OutOfMemory,
    /// A non-zero [`ArithRequest::cas`] only: the item's CAS differs from the one the client gave.
    Exists,
}

/// The result of [`Store::delete`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// The item was removed.
    Deleted,
    /// No live item (missing, expired or flushed).
    NotFound,
    /// A live item whose CAS differs from the non-zero one given; it stays.
    Exists,
}

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
}

/// The item store: sharded index, slab classes and eviction over one page budget.
pub struct Store {
    config: StoreConfig,
    clock: Arc<Clock>,
    shared: Shared,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Builds a store with `config`, reading time from `clock`. Item memory is reserved, not
    /// touched: resident memory grows as items are stored.
    pub fn new(config: StoreConfig, clock: Arc<Clock>) -> Result<Store, StoreConfigError> {
        let factor = config.growth_factor.unwrap_or(DEFAULT_GROWTH_FACTOR);
        if !(factor > 1.0 && factor.is_finite()) {
            return Err(StoreConfigError(format!(
                "Factor must be greater than 1 (got {factor})"
            )));
        }
        let n = config.chunk_size_min.unwrap_or(DEFAULT_CHUNK_SIZE_MIN);
        if n == 0 || n > PAGE_SIZE / 4 {
            return Err(StoreConfigError(format!(
                "Chunk size must be between 1 and {} (got {n})",
                PAGE_SIZE / 4
            )));
        }
        if config.item_size_max < ITEM_SIZE_MAX_MIN || config.item_size_max > ITEM_SIZE_MAX_LIMIT {
            return Err(StoreConfigError(format!(
                "item size max {} out of range",
                config.item_size_max
            )));
        }
        let pages = config.memory_limit / PAGE_SIZE;
        if pages == 0 || pages > u32::MAX as usize / 2 {
            return Err(StoreConfigError(format!(
                "memory limit {} out of range",
                config.memory_limit
            )));
        }
        let classes = ClassTable::new(item::min_header(config.cas_enabled), n, factor);
        let max_per_page = classes.per_page(0);
        let slot_bits = (usize::BITS - (max_per_page - 1).leading_zeros()).max(1);
        let page_bits = u32::BITS - (pages as u32).leading_zeros();
        if slot_bits + page_bits > 32 {
            return Err(StoreConfigError(format!(
                "memory limit {} too large for chunks of {} bytes (at most 2^32 chunks)",
                config.memory_limit,
                classes.size(0)
            )));
        }
        let arena = Arena::new(pages as u32).map_err(|e| StoreConfigError(e.0))?;
        let hp = config
            .hashpower_init
            .unwrap_or(DEFAULT_HASHPOWER)
            .clamp(8, 32);
        let nshards = (pages / MIN_PAGES_PER_SHARD).clamp(1, SHARDS);
        let nshards = if nshards.is_power_of_two() {
            nshards
        } else {
            nshards.next_power_of_two() / 2
        };
        let per_shard = (1usize << hp) / nshards;
        let nclasses = classes.len();
        // Page 0 is never used: handles run from page 1's first slot to the last page's last.
        let first_handle = 1u32 << slot_bits;
        let last_handle = ((pages as u64) << slot_bits | ((1u64 << slot_bits) - 1)) as u32;
        let shards = (0..nshards)
            .map(|i| {
                Padded(Mutex::new(Shard::new(
                    i as u32,
                    first_handle..=last_handle,
                    nclasses,
                    per_shard,
                )))
            })
            .collect();
        let shared = Shared {
            arena,
            classes,
            cas_enabled: config.cas_enabled,
            evict: config.evict,
            slot_bits,
            shard_bits: nshards.trailing_zeros(),
            shard_mask: nshards - 1,
            hasher: ahash::RandomState::new(),
            flush_at: AtomicU64::new(0),
            shards,
        };
        Ok(Store {
            config,
            clock,
            shared,
        })
    }

    /// The store's settings.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// The slab class table as memcached prints it with `-vv`, one line per class:
    /// `slab class   1: chunk size        32 perslab    2048`.
    pub fn class_table(&self) -> Vec<String> {
        self.shared.classes.vv_lines()
    }

    #[inline]
    fn shard(&self, hash: u64) -> &Mutex<Shard> {
        &self.shared.shards[(hash as usize) & self.shared.shard_mask].0
    }

    /// Looks `req.key` up and, on a hit, sets its exptime when `req.touch` says so (memcached's
    /// exptime rules) and runs `f` on the item.
    pub fn get<R>(&self, req: &GetRequest<'_>, f: impl FnOnce(&ItemView<'_>) -> R) -> Lookup<R> {
        self.get_inner(req.key, req.touch, f)
    }

    fn get_inner<R>(
        &self,
        key: &[u8],
        exptime: Option<i64>,
        f: impl FnOnce(&ItemView<'_>) -> R,
    ) -> Lookup<R> {
        let sh = &self.shared;
        let hash = sh.hash(key);
        let now = self.clock.now();
        let mut s = self.shard(hash).lock();
        s.sync_flush(sh, now);
        let mut found = match s.lookup(sh, key, hash, now) {
            Look::Live(found) => found,
            Look::Dead(Dead::Expired) => return Lookup::Expired,
            Look::Dead(Dead::Flushed) => return Lookup::Flushed,
            Look::Miss => return Lookup::Miss,
        };
        let cls = sh.class_of(found.handle);
        if let Some(e) = exptime {
            let e = self.clock.realtime(e);
            // Out of memory while giving a never-expiring item an exptime field: keep the
            // item as it is (memcached's touch cannot fail that way).
            if let Some(f2) = s.set_exptime(sh, key, hash, found, e, now) {
                found = f2;
            }
            s.classes[cls].stats.touch_hits += 1;
        } else {
            s.classes[cls].stats.get_hits += 1;
        }
        // SAFETY: the live item's head chunk, under the shard lock; no other reference.
        item::mark_read(unsafe { sh.chunk(found.handle) });
        // SAFETY: as above; from here on the chunk is only read, while the lock is held.
        let chunk: &[u8] = unsafe { sh.chunk_ref(found.handle) };
        let h = &found.header;
        let voff = h.key_off + h.key_len;
        let first = if h.chained {
            &chunk[voff..voff + (chunk.len() - voff).min(h.value_len)]
        } else {
            &chunk[voff..voff + h.value_len]
        };
        let view = ItemView {
            key: &chunk[h.key_off..voff],
            flags: h.flags,
            cas: sh.cas_of(h.seq, s.id),
            value_len: h.value_len,
            first,
            next: h.next,
            shared: sh,
        };
        let r = f(&view);
        drop(s);
        Lookup::Hit(r)
    }

    /// Runs a storage command and returns, with the outcome, the stored item's new CAS unique
    /// (0 unless [`StoreOutcome::Stored`]): binary replies carry it.
    ///
    /// As memcached's `do_store_item` does for every mode, a non-zero `cas` is compared by
    /// append and prepend too (binary APPEND/PREPEND): a live item with another CAS answers
    /// [`StoreOutcome::Exists`].
    pub fn set(&self, req: &SetRequest<'_>) -> (StoreOutcome, u64) {
        let SetRequest {
            mode,
            key,
            flags,
            exptime,
            value,
            cas,
        } = *req;
        let sh = &self.shared;
        if key.is_empty() || key.len() > self.config.key_max_length {
            return (StoreOutcome::NotStored, 0);
        }
        let exptime = self.clock.realtime(exptime);
        if item::header_len(sh.cas_enabled, flags, exptime, false) + key.len() + value.len()
            > self.config.item_size_max
        {
            return (StoreOutcome::TooLarge, 0);
        }
        let hash = sh.hash(key);
        let now = self.clock.now();
        let mut s = self.shard(hash).lock();
        s.sync_flush(sh, now);
        let old = match s.lookup(sh, key, hash, now) {
            Look::Live(f) => Some(f),
            _ => None,
        };
        let seq_flags_exp = match (mode, old) {
            (SetMode::Add, Some(_)) => return (StoreOutcome::NotStored, 0),
            (SetMode::Replace | SetMode::Append | SetMode::Prepend, None) => {
                return (StoreOutcome::NotStored, 0)
            }
            (SetMode::Cas, None) => return (StoreOutcome::NotFound, 0),
            (SetMode::Cas, Some(f)) => {
                let cls = sh.class_of(f.handle);
                // With -C memcached answers EXISTS to every cas (observed on 1.6.18).
                if !sh.cas_enabled || sh.cas_of(f.header.seq, s.id) != cas {
                    s.classes[cls].stats.cas_badval += 1;
                    return (StoreOutcome::Exists, 0);
                }
                s.classes[cls].stats.cas_hits += 1;
                (flags, exptime)
            }
            (SetMode::Append | SetMode::Prepend, Some(f)) => {
                if cas != 0 && (!sh.cas_enabled || sh.cas_of(f.header.seq, s.id) != cas) {
                    return (StoreOutcome::Exists, 0);
                }
                (f.header.flags, f.header.exptime)
            }
            _ => (flags, exptime),
        };
        let (flags, exptime) = seq_flags_exp;
        let seq = s.next_seq();
        let stored = match (mode, old) {
            (SetMode::Append | SetMode::Prepend, Some(f)) => {
                let old_parts = s.value_parts(sh, &f);
                let total = old_parts.iter().map(|p| p.len()).sum::<usize>() + value.len();
                if item::header_len(sh.cas_enabled, flags, exptime, false) + key.len() + total
                    > self.config.item_size_max
                {
                    return (StoreOutcome::TooLarge, 0);
                }
                let mut parts: Vec<&[u8]> = Vec::with_capacity(old_parts.len() + 1);
                if mode == SetMode::Prepend {
                    parts.push(value);
                    parts.extend_from_slice(&old_parts);
                } else {
                    parts.extend_from_slice(&old_parts);
                    parts.push(value);
                }
                s.write_new(sh, key, hash, flags, exptime, seq, &parts, old, now)
            }
            _ => s.write_new(sh, key, hash, flags, exptime, seq, &[value], old, now),
        };
        if stored.is_some() {
            return (StoreOutcome::Stored, sh.cas_of(seq, s.id));
        }
        // memcached drops the old value when a set fails for memory, so no stale data stays.
        if let (SetMode::Set, Some(f)) = (mode, old) {
            s.unlink(sh, f.pos, f.handle, &f.header);
        }
        (StoreOutcome::OutOfMemory, 0)
    }

    /// Removes `req.key` if `req.cas` is 0 or equals the item's CAS unique (binary DELETE).
    /// Counts a hit in `stats items`; a mismatch counts nothing, as in memcached.
    pub fn delete(&self, req: &DeleteRequest<'_>) -> DeleteOutcome {
        let DeleteRequest { key, cas } = *req;
        let sh = &self.shared;
        let hash = sh.hash(key);
        let now = self.clock.now();
        let mut s = self.shard(hash).lock();
        s.sync_flush(sh, now);
        match s.lookup(sh, key, hash, now) {
            Look::Live(f) => {
                if cas != 0 && sh.cas_of(f.header.seq, s.id) != cas {
                    return DeleteOutcome::Exists;
                }
                let cls = sh.class_of(f.handle);
                s.classes[cls].stats.delete_hits += 1;
                s.unlink(sh, f.pos, f.handle, &f.header);
                DeleteOutcome::Deleted
            }
            _ => DeleteOutcome::NotFound,
        }
    }

    /// incr (`req.incr`) or decr by `req.delta`; `req.initial` creates a missing item
    /// (binary). When `req.cas` is non-zero a live item changes only if its CAS unique still
    /// equals it ([`ArithOutcome::Exists`] otherwise), as binary INCREMENT/DECREMENT do. As in
    /// memcached's `do_add_delta`, an empty or chained value is non-numeric before the CAS is
    /// compared.
    pub fn arith(&self, req: &ArithRequest<'_>) -> ArithOutcome {
        let ArithRequest {
            key,
            incr,
            delta,
            initial,
            cas,
        } = *req;
        let sh = &self.shared;
        let hash = sh.hash(key);
        let now = self.clock.now();
        let mut s = self.shard(hash).lock();
        s.sync_flush(sh, now);
        let mut buf = itoa::Buffer::new();
        match s.lookup(sh, key, hash, now) {
            Look::Live(f) => {
                let h = f.header;
                if h.chained || h.value_len == 0 {
                    return ArithOutcome::NonNumeric;
                }
                if cas != 0 && sh.cas_of(h.seq, s.id) != cas {
                    return ArithOutcome::Exists;
                }
                let voff = h.key_off + h.key_len;
                // SAFETY: the live item's head chunk, under the shard lock, only read here.
                let old = {
                    let chunk = unsafe { sh.chunk_ref(f.handle) };
                    value::parse_u64(&chunk[voff..voff + h.value_len])
                };
                let Some(old) = old else {
                    return ArithOutcome::NonNumeric;
                };
                let value = value::apply_delta(old, incr, delta);
                let digits = buf.format(value).as_bytes();
                let cls = sh.class_of(f.handle);
                if incr {
                    s.classes[cls].stats.incr_hits += 1;
                } else {
                    s.classes[cls].stats.decr_hits += 1;
                }
                let seq = s.next_seq();
                if digits.len() <= h.value_len {
                    // In place, padded with spaces like memcached ("10" decr 1 -> "9 ").
                    // SAFETY: the live item's head chunk, under the lock; no other reference.
                    let chunk = unsafe { sh.chunk(f.handle) };
                    let v = &mut chunk[voff..voff + h.value_len];
                    v[..digits.len()].copy_from_slice(digits);
                    v[digits.len()..].fill(b' ');
                    item::set_seq(chunk, sh.cas_enabled, seq);
                    return ArithOutcome::Updated {
                        value,
                        cas: sh.cas_of(seq, s.id),
                    };
                }
                match s.write_new(
                    sh,
                    key,
                    hash,
                    h.flags,
                    h.exptime,
                    seq,
                    &[digits],
                    Some(f),
                    now,
                ) {
                    Some(_) => ArithOutcome::Updated {
                        value,
                        cas: sh.cas_of(seq, s.id),
                    },
                    None => ArithOutcome::OutOfMemory,
                }
            }
            _ => match initial {
                None => ArithOutcome::NotFound,
                Some((value, exptime)) => {
                    let exptime = self.clock.realtime(exptime);
                    let seq = s.next_seq();
                    let digits = buf.format(value).as_bytes();
                    match s.write_new(sh, key, hash, 0, exptime, seq, &[digits], None, now) {
                        Some(_) => ArithOutcome::Created {
                            value,
                            cas: sh.cas_of(seq, s.id),
                        },
                        None => ArithOutcome::OutOfMemory,
                    }
                }
            },
        }
    }

    /// Invalidates every item stored before the moment `delay` names (memcached's exptime rules;
    /// 0 or negative means now). Cheap: it moves a watermark; each shard applies it on its next
    /// use and the crawler reclaims the memory.
    pub fn flush_all(&self, delay: i64) {
        let at = if delay <= 0 {
            0
        } else {
            self.clock.realtime(delay)
        };
        // A flush whose moment has passed takes effect everywhere before a new one replaces
        // it. (memcached 1.6.18 overwrites `oldest_live`, so items nobody touched since the
        // earlier moment become visible again until the new one; tern does not resurrect.)
        let now = self.clock.now();
        if now >= self.shared.flush_at.load(Ordering::Acquire) as u32 {
            for s in self.shared.shards.iter() {
                s.0.lock().sync_flush(&self.shared, now);
            }
        }
        let _ = self
            .shared
            .flush_at
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                let gen = (v >> 32).wrapping_add(1) & 0xFFFF_FFFF;
                Some((gen << 32) | u64::from(at))
            });
        if delay <= 0 {
            for s in self.shared.shards.iter() {
                s.0.lock().sync_flush(&self.shared, now);
            }
        }
    }

    /// Runs background maintenance for about one tick: reclaims expired items, moves pages
    /// between classes. The server calls it from its timer thread once a second.
    pub fn maintain(&self) {
        let now = self.clock.now();
        for s in self.shared.shards.iter() {
            let mut s = s.0.lock();
            s.sync_flush(&self.shared, now);
            s.migrate_index(&self.shared, INDEX_MIGRATE_PER_TICK);
            if self.config.lru_crawler {
                s.crawl(&self.shared, now, CRAWL_BUDGET);
            }
            if self.config.slab_automove && self.config.evict {
                let max = (s.page_count() / 64).max(AUTOMOVE_PAGES_PER_TICK);
                s.automove(&self.shared, max);
            }
        }
    }
}
