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
//! - `stats`: `StoreStats`, `stats items` / `stats slabs` lines; `hits`: the per-class hit
//!   counters, one row per thread so that a get hit writes nothing shared but the lock.
//! - `config`: `StoreConfig`; `request`: one request struct per operation; `outcome`: their
//!   results; `view`: `ItemView`; `ops`: get/set/delete/arith; `background`: flush_all and
//!   maintain; `value`: incr/decr arithmetic.
//!
//! Keys are spread over [`SHARDS`] shards by hash; each shard is behind its own lock and owns its
//! part of the index and its own slab classes, so nothing global is locked on the get/set path
//! (pages are taken from the shared budget once per 64 KiB).

mod arena;
mod background;
mod classes;
mod config;
mod hits;
mod index;
mod item;
mod operator;
mod ops;
mod outcome;
mod request;
mod shard;
mod sizes;
mod stats;
#[cfg(test)]
mod tests;
mod value;
mod view;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::clock::Clock;
use arena::{Arena, PAGE_SIZE};
use classes::ClassTable;
pub use classes::{DEFAULT_CHUNK_SIZE_MIN, DEFAULT_GROWTH_FACTOR};
pub use config::{
    StoreConfig, StoreConfigError, DEFAULT_KEY_MAX_LENGTH, ITEM_SIZE_MAX_LIMIT, ITEM_SIZE_MAX_MIN,
};
pub use operator::{Classes, CrawlRefusal, DumpCursor, ReassignOutcome};
pub use outcome::{ArithOutcome, DeleteOutcome, Lookup, StoreOutcome};
pub use request::{ArithRequest, DeleteRequest, GetRequest, SetMode, SetRequest};
pub use shard::DumpItem;
pub use shard::DumpedItem;
use shard::{Padded, Shard, Shared};
pub use stats::{Accounting, StoreStats};
pub use view::ItemView;

/// The most shards (a power of two). 16 keeps the per-class partly used pages at 16 x 64 KiB =
/// memcached's one 1 MiB page per class, while 8 worker threads rarely meet on one lock.
pub const SHARDS: usize = 16;
/// A shard gets at least this many pages' worth of `-m`: a tiny store has fewer shards, so
/// that its few pages are not spread over more (shard, class) pairs than it has pages.
const MIN_PAGES_PER_SHARD: usize = 64;

/// Pages reserved at least (64 MiB of address space, not memory), so that `cache_memlimit`
/// can raise a small `-m` (memcached's tests start at `-m 3` and grow to 16 MB). A larger `-m`
/// reserves exactly itself and can be lowered and raised back, not above.
const GROWABLE_PAGES: usize = 1024;

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

/// What an eviction hook is told of an evicted item.
#[derive(Debug, Clone, Copy)]
pub struct Evicted<'a> {
    /// The key.
    pub key: &'a [u8],
    /// Whether it had been read.
    pub fetched: bool,
    /// Seconds it had left to live, -1 for no expiry time.
    pub ttl: i64,
    /// Seconds since it was last accessed.
    pub last_access: u32,
    /// Its slab class id (from 1).
    pub class_id: u32,
    /// Its value's length.
    pub value_len: usize,
}

/// A function told of every eviction ([`Store::set_eviction_hook`]).
pub struct EvictionHook(pub Box<dyn Fn(&Evicted<'_>) + Send + Sync>);

impl std::fmt::Debug for EvictionHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EvictionHook")
    }
}

/// The item store: sharded index, slab classes and eviction over one page budget.
pub struct Store {
    config: StoreConfig,
    clock: Arc<Clock>,
    shared: Shared,
    controls: operator::Controls,
    /// `get_hits` / `touch_hits` per class, per thread (`hits.rs`).
    hits: hits::Hits,
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
        // The reservation `cache_memlimit` may grow into: address space only (MAP_NORESERVE).
        let capacity = pages.max(GROWABLE_PAGES);
        let classes = match &config.slab_sizes {
            Some(sizes) => ClassTable::listed(sizes),
            None => ClassTable::new(item::min_header(), n, factor),
        };
        let max_per_page = classes.per_page(0);
        let slot_bits = (usize::BITS - (max_per_page - 1).leading_zeros()).max(1);
        let page_bits = u32::BITS - (capacity as u32).leading_zeros();
        if slot_bits + page_bits > 32 {
            return Err(StoreConfigError(format!(
                "memory limit {} too large for chunks of {} bytes (at most 2^32 chunks)",
                config.memory_limit,
                classes.size(0)
            )));
        }
        let arena = Arena::new(capacity as u32).map_err(|e| StoreConfigError(e.0))?;
        if config.large_pages {
            if let Err(e) = arena.advise_huge_pages() {
                // memcached carries on with ordinary pages when the advice fails.
                log::warn!(
                    "-L: cannot advise item memory into huge pages ({e}); using small pages"
                );
            }
        }
        arena.set_limit(pages as u32);
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
        let last_handle = ((capacity as u64) << slot_bits | ((1u64 << slot_bits) - 1)) as u32;
        let shards = (0..nshards)
            .map(|i| {
                let owner = arena.new_owner();
                Shard::new(
                    i as u32,
                    owner,
                    first_handle..=last_handle,
                    nclasses,
                    per_shard,
                )
                .map(|s| Padded(Mutex::new(s)))
                .map_err(|_| StoreConfigError("cannot map the hash index".into()))
            })
            .collect::<Result<_, _>>()?;
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
            eviction_hook: std::sync::OnceLock::new(),
            shards,
        };
        let controls = operator::Controls::new(config.lru_crawler, config.slab_automove);
        let hits = hits::Hits::new(nclasses);
        let store = Store {
            config,
            clock,
            shared,
            controls,
            hits,
        };
        if store.config.track_sizes {
            store.start_size_tracking(true);
        }
        Ok(store)
    }

    /// The store's settings.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Sets the function told of every eviction (once; later calls are ignored). It runs
    /// under a shard lock on the evicting thread, so it must be quick and must not call the
    /// store.
    pub fn set_eviction_hook(&self, hook: EvictionHook) {
        let _ = self.shared.eviction_hook.set(hook);
    }

    /// The slab class id (from 1, as `stats slabs` numbers them) an item of this shape is
    /// stored in, or 0 when it is chained over several chunks (`watch` lines' `clsid=`).
    pub fn class_id(&self, key_len: usize, flags: u32, has_exptime: bool, value_len: usize) -> u32 {
        let total = item::header_len(flags, u32::from(has_exptime), false) + key_len + value_len;
        self.shared
            .classes
            .class_for(total)
            .map_or(0, |c| c as u32 + 1)
    }

    /// The slab class table as memcached prints it with `-vv`, one line per class:
    /// `slab class   1: chunk size        32 perslab    2048`.
    pub fn class_table(&self) -> Vec<String> {
        self.shared.classes.vv_lines()
    }

    /// Fault injection (tests): refuses the next `index` hash-index growths and the next
    /// `pages` fresh item-memory pages, as if the OS had no memory for them. A refused page
    /// makes the store evict or answer out of memory; a refused index growth leaves the index
    /// at its size. `refuse_mappings(0, 0)` cancels what is left.
    pub fn refuse_mappings(&self, index: u32, pages: u32) {
        self.shared.arena.faults.refuse(index, pages);
    }

    #[inline]
    pub(super) fn shard(&self, hash: u64) -> &Mutex<Shard> {
        &self.shared.shards[(hash as usize) & self.shared.shard_mask].0
    }
}
