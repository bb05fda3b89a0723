//! The item store: keys to items with flags, CAS, TTL, under a memory limit.
//!
//! The store knows nothing of sockets or protocols. The server calls it from every worker thread
//! at once through `&Store`; a reader sees an item only inside a closure run while the item is
//! pinned, and copies what it needs into its own output buffer before the closure returns, so no
//! store lock is ever held across socket I/O.
//!
//! PLACEHOLDER: this module currently holds a simple `Mutex<HashMap>` store with the real API, so
//! the server can be written against it; the slab allocator, LRU and index of issue 3 replace the
//! internals behind the same API.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::clock::{Clock, RelTime};

/// How a storage command treats an existing (or missing) item. Mirrors the protocol's modes; the
/// store keeps its own type so it does not depend on any wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SetMode {
    /// Store unconditionally.
    Set,
    /// Store only if no live item has the key.
    Add,
    /// Store only if a live item has the key.
    Replace,
    /// Append to the live item's data (keeps its flags and exptime).
    Append,
    /// Prepend to the live item's data (keeps its flags and exptime).
    Prepend,
    /// Store only if the live item's CAS equals the given one.
    Cas,
}

/// The store's settings (from `-m`, `-I`, `-n`, `-f`, `-M`, `-C`, `-o ...`).
#[derive(Debug, Clone, PartialEq)]
pub struct StoreConfig {
    /// Bytes of item memory (`-m`, given in megabytes).
    pub memory_limit: usize,
    /// The largest item, in bytes (`-I`).
    pub item_size_max: usize,
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

/// A live item, visible only inside a store closure.
#[derive(Debug)]
pub struct ItemView<'a> {
    key: &'a [u8],
    flags: u32,
    cas: u64,
    value: &'a [u8],
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
        self.value.len()
    }

    /// The value, as one or more contiguous pieces in order (a large item may be chained).
    pub fn value_chunks(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        std::iter::once(self.value)
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

#[derive(Debug, Clone)]
struct Entry {
    flags: u32,
    exptime: RelTime,
    cas: u64,
    stored_at_cas: u64,
    value: Vec<u8>,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<Vec<u8>, Entry>,
    next_cas: u64,
    oldest_cas: u64,
    pending_flush: Option<RelTime>,
    total_items: u64,
}

/// The item store (placeholder implementation; see the module docs).
#[derive(Debug)]
pub struct Store {
    config: StoreConfig,
    clock: Arc<Clock>,
    inner: Mutex<Inner>,
}

impl Store {
    /// Builds a store with `config`, reading time from `clock`.
    pub fn new(config: StoreConfig, clock: Arc<Clock>) -> Result<Store, StoreConfigError> {
        Ok(Store {
            config,
            clock,
            inner: Mutex::new(Inner::default()),
        })
    }

    /// The store's settings.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    fn live<'m>(inner: &'m mut Inner, key: &[u8], now: RelTime) -> Lookup<&'m mut Entry> {
        if let Some(at) = inner.pending_flush {
            if now >= at {
                inner.oldest_cas = inner.next_cas + 1;
                inner.pending_flush = None;
            }
        }
        let oldest = inner.oldest_cas;
        let state = match inner.map.get(key) {
            None => return Lookup::Miss,
            Some(e) if e.stored_at_cas < oldest => Lookup::Flushed,
            Some(e) if e.exptime != 0 && e.exptime <= now => Lookup::Expired,
            Some(_) => Lookup::Hit(()),
        };
        match state {
            Lookup::Hit(()) => Lookup::Hit(inner.map.get_mut(key).expect("present")),
            other => {
                inner.map.remove(key);
                match other {
                    Lookup::Flushed => Lookup::Flushed,
                    _ => Lookup::Expired,
                }
            }
        }
    }

    fn next_cas(inner: &mut Inner) -> u64 {
        inner.next_cas += 1;
        inner.next_cas
    }

    /// Looks `key` up and, on a hit, runs `f` on the item.
    pub fn get<R>(&self, key: &[u8], f: impl FnOnce(&ItemView<'_>) -> R) -> Lookup<R> {
        self.get_and_touch_inner(key, None, f)
    }

    /// Looks `key` up and, on a hit, sets its exptime (memcached's exptime rules) and runs `f`.
    pub fn get_and_touch<R>(
        &self,
        key: &[u8],
        exptime: i64,
        f: impl FnOnce(&ItemView<'_>) -> R,
    ) -> Lookup<R> {
        self.get_and_touch_inner(key, Some(exptime), f)
    }

    fn get_and_touch_inner<R>(
        &self,
        key: &[u8],
        exptime: Option<i64>,
        f: impl FnOnce(&ItemView<'_>) -> R,
    ) -> Lookup<R> {
        let now = self.clock.now();
        let mut inner = self.inner.lock();
        let cas_enabled = self.config.cas_enabled;
        match Self::live(&mut inner, key, now) {
            Lookup::Hit(e) => {
                if let Some(exptime) = exptime {
                    e.exptime = self.clock.realtime(exptime);
                }
                Lookup::Hit(f(&ItemView {
                    key,
                    flags: e.flags,
                    cas: if cas_enabled { e.cas } else { 0 },
                    value: &e.value,
                }))
            }
            Lookup::Miss => Lookup::Miss,
            Lookup::Expired => Lookup::Expired,
            Lookup::Flushed => Lookup::Flushed,
        }
    }

    /// Sets the exptime of `key`.
    pub fn touch(&self, key: &[u8], exptime: i64) -> Lookup<()> {
        self.get_and_touch(key, exptime, |_| ())
    }

    /// Runs a storage command.
    pub fn store(
        &self,
        mode: SetMode,
        key: &[u8],
        flags: u32,
        exptime: i64,
        value: &[u8],
        cas: u64,
    ) -> StoreOutcome {
        if key.len() + value.len() + 48 > self.config.item_size_max {
            return StoreOutcome::TooLarge;
        }
        let now = self.clock.now();
        let exptime = self.clock.realtime(exptime);
        let mut inner = self.inner.lock();
        let existing = match Self::live(&mut inner, key, now) {
            Lookup::Hit(e) => Some(e.clone()),
            _ => None,
        };
        let new_value = match (mode, &existing) {
            (SetMode::Add, Some(_)) => return StoreOutcome::NotStored,
            (SetMode::Replace | SetMode::Append | SetMode::Prepend, None) => {
                return StoreOutcome::NotStored
            }
            (SetMode::Cas, None) => return StoreOutcome::NotFound,
            (SetMode::Cas, Some(e)) if e.cas != cas => return StoreOutcome::Exists,
            (SetMode::Append, Some(e)) => [&e.value[..], value].concat(),
            (SetMode::Prepend, Some(e)) => [value, &e.value[..]].concat(),
            _ => value.to_vec(),
        };
        let (flags, exptime) = match (mode, &existing) {
            (SetMode::Append | SetMode::Prepend, Some(e)) => (e.flags, e.exptime),
            _ => (flags, exptime),
        };
        let cas = Self::next_cas(&mut inner);
        inner.total_items += 1;
        inner.map.insert(
            key.to_vec(),
            Entry {
                flags,
                exptime,
                cas,
                stored_at_cas: cas,
                value: new_value,
            },
        );
        StoreOutcome::Stored
    }

    /// Removes `key`.
    pub fn delete(&self, key: &[u8]) -> Lookup<()> {
        let now = self.clock.now();
        let mut inner = self.inner.lock();
        match Self::live(&mut inner, key, now) {
            Lookup::Hit(_) => {
                inner.map.remove(key);
                Lookup::Hit(())
            }
            other => match other {
                Lookup::Expired => Lookup::Expired,
                Lookup::Flushed => Lookup::Flushed,
                _ => Lookup::Miss,
            },
        }
    }

    /// incr (`incr == true`) or decr by `delta`; `initial` creates a missing item (binary).
    pub fn arith(
        &self,
        key: &[u8],
        incr: bool,
        delta: u64,
        initial: Option<(u64, i64)>,
    ) -> ArithOutcome {
        let now = self.clock.now();
        let mut inner = self.inner.lock();
        let cas = Self::next_cas(&mut inner);
        match Self::live(&mut inner, key, now) {
            Lookup::Hit(e) => {
                let Some(old) = std::str::from_utf8(&e.value)
                    .ok()
                    .and_then(|s| s.trim_end_matches(' ').parse::<u64>().ok())
                else {
                    return ArithOutcome::NonNumeric;
                };
                let value = if incr {
                    old.wrapping_add(delta)
                } else {
                    old.saturating_sub(delta)
                };
                let mut text = value.to_string().into_bytes();
                if text.len() < e.value.len() {
                    text.resize(e.value.len(), b' ');
                }
                e.value = text;
                e.cas = cas;
                ArithOutcome::Updated { value, cas }
            }
            _ => match initial {
                None => ArithOutcome::NotFound,
                Some((value, exptime)) => {
                    let exptime = self.clock.realtime(exptime);
                    inner.total_items += 1;
                    inner.map.insert(
                        key.to_vec(),
                        Entry {
                            flags: 0,
                            exptime,
                            cas,
                            stored_at_cas: cas,
                            value: value.to_string().into_bytes(),
                        },
                    );
                    ArithOutcome::Created { value, cas }
                }
            },
        }
    }

    /// Invalidates every item stored before the moment `delay` names (memcached's exptime rules;
    /// 0 or negative means now).
    pub fn flush_all(&self, delay: i64) {
        let mut inner = self.inner.lock();
        if delay <= 0 {
            inner.oldest_cas = inner.next_cas + 1;
            inner.pending_flush = None;
        } else {
            inner.pending_flush = Some(self.clock.realtime(delay));
        }
    }

    /// The store's counters.
    pub fn stats(&self) -> StoreStats {
        let inner = self.inner.lock();
        StoreStats {
            curr_items: inner.map.len() as u64,
            total_items: inner.total_items,
            bytes: inner
                .map
                .iter()
                .map(|(k, e)| (k.len() + e.value.len() + 48) as u64)
                .sum(),
            ..StoreStats::default()
        }
    }

    /// `stats items` lines, as (name, value) pairs (`items:<class>:<field>`).
    pub fn stats_items(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// `stats slabs` lines, as (name, value) pairs (`<class>:<field>` and totals).
    pub fn stats_slabs(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// `stats sizes` lines, as (name, value) pairs.
    pub fn stats_sizes(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// Runs background maintenance for about one tick: reclaims expired items, moves pages
    /// between classes. The server calls it from its timer thread once a second.
    pub fn maintain(&self) {}
}
