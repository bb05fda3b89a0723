//! One shard: its part of the index, its own slab classes (pages, free chunks, CLOCK hands) and
//! counters. Everything here runs under the shard's lock; pages come from the shared [`Arena`].
//! This file holds lookup, allocation and writing items; `evict.rs` the CLOCK hand and page
//! moves; `maintain.rs` the crawler, index growth and automove.

use std::sync::atomic::Ordering;

use super::arena::{Arena, Owner, Slot};
use super::classes::ClassTable;
use super::item::{self, Header, CONT_HEADER};
use crate::clock::RelTime;

mod dump;
mod evict;
pub use dump::DumpedItem;
mod maintain;
mod walk;
mod write;

pub use walk::{DumpItem, WalkPos};

/// The crawler keeps items' access times at most this old (they are stored modulo 2^20 s):
/// `l` is exact below it and reads between it and 2^20 s beyond.
const AGE_CLAMP: u32 = 1 << 19;

/// Most items the CLOCK hand spares (used recently) before it evicts one anyway.
const MAX_SPARED: usize = 4096;
/// How many classes up an item may go when its own class has nothing to give (see
/// [`Shard::alloc_larger`]): 16 steps of the default factor 1.045 is about twice the size, so
/// such an item wastes at most about half its chunk.
const UPSIZE_CLASSES: usize = 16;

/// What the shards share, read-only after start (plus the flush word).
#[derive(Debug)]
pub struct Shared {
    pub arena: Arena,
    pub classes: ClassTable,
    pub cas_enabled: bool,
    pub evict: bool,
    pub slot_bits: u32,
    pub shard_bits: u32,
    pub shard_mask: usize,
    pub hasher: ahash::RandomState,
    /// `(generation << 32) | time`: a flush_all that takes effect at `time`.
    pub flush_at: std::sync::atomic::AtomicU64,
    /// Told of every eviction (`watch evictions`); set once by the server.
    pub eviction_hook: std::sync::OnceLock<super::EvictionHook>,
    /// The shards (each padded to its own cache lines).
    pub shards: Box<[Padded<parking_lot::Mutex<Shard>>]>,
}

/// Keeps each shard's lock on its own cache lines.
#[repr(align(128))]
#[derive(Debug)]
pub struct Padded<T>(pub T);

impl Shared {
    /// Takes a page from another shard for shard `me`, which holds its own lock: only shards
    /// whose lock is free right now are considered (`try_lock`, so no lock order can
    /// deadlock), and the one holding the most pages gives up a page of its biggest class.
    fn steal_remote(&self, me: u32, now: RelTime) -> Option<u32> {
        let mut best: Option<(usize, usize)> = None;
        for (i, s) in self.shards.iter().enumerate() {
            if i as u32 == me {
                continue;
            }
            if let Some(g) = s.0.try_lock() {
                let p = g.classes.iter().map(|c| c.pages.len()).sum::<usize>();
                if p > 0 && best.map_or(true, |(_, bp)| p > bp) {
                    best = Some((i, p));
                }
            }
        }
        let (i, _) = best?;
        let mut g = self.shards[i].0.try_lock()?;
        let from = (0..g.classes.len()).max_by_key(|&c| g.classes[c].pages.len())?;
        if g.classes[from].pages.is_empty() {
            return None;
        }
        let idx = g.classes[from]
            .hand_page
            .min(g.classes[from].pages.len() - 1);
        let page = g.evacuate(self, from, idx, now);
        // Under the giver's lock: it holds the page no more; the caller claims it.
        self.arena.release(page, &mut g.owner);
        g.counters.slabs_moved += 1;
        Some(page)
    }

    #[inline]
    pub fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    #[inline]
    fn page_of(&self, h: u32) -> u32 {
        ((u64::from(h)) >> self.slot_bits) as u32
    }

    #[inline]
    fn handle(&self, page: u32, slot: usize) -> u32 {
        (page << self.slot_bits) | slot as u32
    }

    /// The class of the chunk `h`.
    #[inline]
    pub fn class_of(&self, h: u32) -> usize {
        self.arena.page_class(self.page_of(h))
    }

    /// Where chunk `h` lies.
    #[inline]
    fn slot(&self, h: u32) -> Slot {
        Slot {
            page: self.page_of(h),
            slot: h & ((1u32 << self.slot_bits) - 1),
        }
    }

    /// The bytes of chunk `h` of the shard whose pages `owner` holds, for reading. Callers
    /// that hold other parts of a shard borrowed use this with `&shard.owner`; others use
    /// [`Shard::chunk`].
    #[inline]
    pub fn chunk<'a>(&'a self, owner: &'a Owner, h: u32) -> &'a [u8] {
        self.arena.chunk(owner, &self.classes, self.slot(h))
    }

    /// The bytes of chunk `h`, for writing (see [`Shared::chunk`]).
    #[inline]
    pub fn chunk_mut<'a>(&'a self, owner: &'a mut Owner, h: u32) -> &'a mut [u8] {
        self.arena.chunk_mut(owner, &self.classes, self.slot(h))
    }

    /// Two distinct chunks at once: `dst` for writing, `src` for reading (see
    /// [`Arena::chunk_pair`]).
    #[inline]
    pub fn chunk_pair<'a>(
        &'a self,
        owner: &'a mut Owner,
        dst: u32,
        src: u32,
    ) -> (&'a mut [u8], &'a [u8]) {
        self.arena
            .chunk_pair(owner, &self.classes, self.slot(dst), self.slot(src))
    }

    /// The exposed CAS of a sequence number in shard `shard`.
    #[inline]
    pub fn cas_of(&self, seq: u64, shard: u32) -> u64 {
        if self.cas_enabled {
            (seq << self.shard_bits) | u64::from(shard)
        } else {
            0
        }
    }
}

/// Counters of one slab class in one shard (memcached's `stats items` / `stats slabs` fields).
///
/// In declared order: the three every store writes come first, so that they share a cache
/// line with the class's free list ([`Class`]).
#[repr(C)]
#[derive(Debug, Default, Clone)]
pub struct ClassStats {
    pub number: u64,
    pub mem_requested: u64,
    pub cmd_set: u64,
    pub evicted: u64,
    pub evicted_nonzero: u64,
    pub outofmemory: u64,
    pub reclaimed: u64,
    pub expired_unfetched: u64,
    pub evicted_unfetched: u64,
    pub crawler_reclaimed: u64,
    pub crawler_items_checked: u64,
    pub get_hits: u64,
    pub delete_hits: u64,
    pub incr_hits: u64,
    pub decr_hits: u64,
    pub cas_hits: u64,
    pub cas_badval: u64,
    pub touch_hits: u64,
    /// Seconds since the last access of the last item evicted (memcached's `evicted_time`).
    pub evicted_time: u64,
    /// Evictions since automove last looked.
    pub window_evictions: u64,
    /// The oldest of those evictions' ages (seconds since last access): automove takes a
    /// class's last page for this class only if everything on it is older (`maintain.rs`).
    pub window_evict_age: u32,
}

/// One slab class in one shard.
///
/// Laid out so that a store writes one cache line of it: a store takes a chunk (`free_head`,
/// `free`, `used`, or `carve_next`) and counts the item (`stats`' first three), and the item it
/// replaces gives its chunk back to the same line. Another core that stored into this class
/// last hands over that line and no other (issue 15: each line written by the last core costs
/// a transfer).
#[repr(C, align(64))]
#[derive(Debug, Default)]
pub struct Class {
    free_head: u32,
    carve_page: u32,
    carve_next: u32,
    pub free: u64,
    pub used: u64,
    pub stats: ClassStats,
    pub pages: Vec<u32>,
    hand_page: usize,
    hand_slot: usize,
}

impl Class {
    /// Chunks of `page`, one of this class's, handed out so far: all `per_page` of them but
    /// on the page being carved.
    pub fn carved(&self, page: u32, per_page: usize) -> usize {
        if page == self.carve_page {
            self.carve_next as usize
        } else {
            per_page
        }
    }

    /// Chunks never handed out in the newest page (memcached's `free_chunks_end`).
    pub fn free_end(&self, per_page: usize) -> u64 {
        if self.carve_page == 0 {
            0
        } else {
            (per_page - self.carve_next as usize) as u64
        }
    }
}

/// Why an item is not live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dead {
    Expired,
    Flushed,
}

/// A located item.
#[derive(Debug, Clone, Copy)]
pub struct Found {
    pub pos: usize,
    pub handle: u32,
    pub header: Header,
}

/// A lookup's outcome inside the shard.
#[derive(Debug, Clone, Copy)]
pub enum Look {
    Live(Found),
    Dead(Dead),
    Miss,
}

/// Store-wide counters kept per shard; the three a store writes first (see [`Shard`]).
#[repr(C)]
#[derive(Debug, Default, Clone)]
pub struct ShardCounters {
    pub total_items: u64,
    pub curr_items: u64,
    pub bytes: u64,
    pub slabs_moved: u64,
    pub reassign_evictions: u64,
    pub reassign_rescues: u64,
    pub reassign_chunk_rescues: u64,
    pub get_expired: u64,
    pub get_flushed: u64,
}

/// A shard. It lives behind its lock, so `&Shard` and `&mut Shard` prove the lock is held:
/// chunk bytes are reached only through its [`Owner`] (see `arena.rs`).
///
/// In declared order: what every store writes (`seq`, `pin`, the item counts) and what every
/// request reads (`flush_gen`, `flush_wm`) come first, so that they sit in the 56 bytes after
/// the lock word, on the line the lock brings (the lock is at the start of a 128-byte
/// aligned [`Padded`] cell): taking the lock is then the only line another core hands over
/// for the shard's own fields.
#[repr(C)]
#[derive(Debug)]
pub struct Shard {
    seq: u64,
    flush_wm: u64,
    /// A handle the allocator must not evict or move (the item being replaced).
    pin: u32,
    flush_gen: u32,
    /// The head of a chained item being built.
    building: u32,
    pub id: u32,
    pub counters: ShardCounters,
    /// The capability to this shard's pages' bytes.
    owner: Owner,
    pub index: super::index::Index,
    pub classes: Vec<Class>,
    pub crawl_class: usize,
    pub crawl_page: usize,
    pub crawl_slot: usize,
    /// Where automove's search for an idle class's last page goes on from.
    idle_cursor: usize,
    /// Live items by size, while `stats sizes` tracks them (`store/sizes.rs`).
    pub sizes: Option<super::sizes::SizeHist>,
}

/// A piece of the value being written ([`Shard::write_new`]).
#[derive(Debug, Clone, Copy)]
pub enum Part<'a> {
    /// Bytes from outside the store.
    Bytes(&'a [u8]),
    /// The value of a live item of this shard (the item being replaced: append, prepend, a
    /// rewrite), copied chunk to chunk.
    Value(Found),
}

impl Part<'_> {
    fn len(&self) -> usize {
        match self {
            Part::Bytes(b) => b.len(),
            Part::Value(f) => f.header.value_len,
        }
    }
}

impl Shard {
    /// The item whose head is in `slot` of `page` (a page of class `cls`): its handle and
    /// header; `None` for a slot not carved yet, a free chunk or a chain's continuation. The
    /// walks over a class's pages (crawler, `lru_crawler metadump`, `cachedump`) share it.
    pub(super) fn head_in(
        &self,
        sh: &Shared,
        cls: usize,
        page: u32,
        slot: usize,
    ) -> Option<(u32, Header)> {
        let c = &self.classes[cls];
        if page == c.carve_page && slot >= c.carve_next as usize {
            return None;
        }
        let h = sh.handle(page, slot);
        let chunk = self.chunk(sh, h);
        let kind = item::kind(chunk);
        if kind == item::KEY_FREE || kind == item::KEY_CONT {
            return None;
        }
        Some((h, item::parse(chunk)))
    }

    /// The bytes of chunk `h` of this shard, for reading.
    #[inline]
    pub fn chunk<'a>(&'a self, sh: &'a Shared, h: u32) -> &'a [u8] {
        sh.chunk(&self.owner, h)
    }

    /// The bytes of chunk `h` of this shard, for writing. This borrows the whole shard; to
    /// keep a chunk while updating other fields, borrow `sh.chunk_mut(&mut self.owner, h)`.
    #[inline]
    pub fn chunk_mut<'a>(&'a mut self, sh: &'a Shared, h: u32) -> &'a mut [u8] {
        sh.chunk_mut(&mut self.owner, h)
    }

    /// Chunk `h` written by `f`, then the same chunk for reading, with the shard's owner
    /// shared again for reading other chunks (a get's bump and its view in one look-up).
    #[inline]
    pub fn chunk_update<'a>(
        &'a mut self,
        sh: &'a Shared,
        h: u32,
        f: impl FnOnce(&mut [u8]),
    ) -> (&'a [u8], &'a Owner) {
        sh.arena
            .chunk_update(&mut self.owner, &sh.classes, sh.slot(h), f)
    }

    /// A shard whose item handles lie in `handles` (page 1 slot 0 to the last page's last slot),
    /// holding pages as `owner` (made by the arena for this shard).
    pub fn new(
        id: u32,
        owner: Owner,
        handles: std::ops::RangeInclusive<u32>,
        classes: usize,
        index_slots: usize,
    ) -> Result<Shard, super::arena::MapFailed> {
        Ok(Shard {
            id,
            owner,
            index: super::index::Index::new(index_slots, *handles.start(), *handles.end())?,
            classes: (0..classes).map(|_| Class::default()).collect(),
            seq: 0,
            flush_wm: 0,
            flush_gen: 0,
            pin: 0,
            building: 0,
            crawl_class: 0,
            crawl_page: 0,
            crawl_slot: 0,
            idle_cursor: 0,
            counters: ShardCounters::default(),
            sizes: None,
        })
    }

    /// Applies a flush_all whose moment has come.
    #[inline]
    pub fn sync_flush(&mut self, sh: &Shared, now: RelTime) {
        let v = sh.flush_at.load(Ordering::Acquire);
        let gen = (v >> 32) as u32;
        if gen != self.flush_gen && now >= v as u32 {
            self.flush_gen = gen;
            self.flush_wm = self.seq + 1;
        }
    }

    /// Starts a size histogram unless one runs: counting items stored from now on, or with
    /// `everything` every item whatever its sequence number.
    pub fn start_sizes(&mut self, item_size_max: usize, everything: bool) {
        if self.sizes.is_none() {
            let seq_min = if everything { 0 } else { self.seq + 1 };
            self.sizes = Some(super::sizes::SizeHist::new(seq_min, item_size_max));
        }
    }

    #[inline]
    pub fn next_seq(&mut self) -> u64 {
        // 44 bits: 2^44 modifications of one shard (see docs/store.md, "CAS").
        self.seq = (self.seq + 1) & item::SEQ_MASK;
        self.seq
    }

    #[inline]
    fn is_flushed(&self, sh: &Shared, seq: u64) -> bool {
        if self.flush_wm == 0 {
            return false;
        }
        let _ = sh;
        seq < self.flush_wm
    }

    #[inline]
    pub fn liveness(&self, sh: &Shared, h: &Header, now: RelTime) -> Option<Dead> {
        if self.is_flushed(sh, h.seq) {
            Some(Dead::Flushed)
        } else if h.exptime != 0 && h.exptime <= now {
            Some(Dead::Expired)
        } else {
            None
        }
    }

    /// Finds `key`; a dead item found is unlinked and reported.
    pub fn lookup(&mut self, sh: &Shared, key: &[u8], hash: u64, now: RelTime) -> Look {
        let mut header = None;
        let pos = self.index.find(hash, |h| {
            let c = sh.chunk(&self.owner, h);
            if c[0] as usize != key.len() {
                return false;
            }
            let hd = item::parse(c);
            if &c[hd.key_off..hd.key_off + hd.key_len] == key {
                header = Some(hd);
                true
            } else {
                false
            }
        });
        let Some(pos) = pos else { return Look::Miss };
        let header = header.expect("set with pos");
        let handle = self.index.handle_at(pos);
        match self.liveness(sh, &header, now) {
            None => Look::Live(Found {
                pos,
                handle,
                header,
            }),
            Some(dead) => {
                // memcached counts these in its item lookup, whichever command looked.
                match dead {
                    Dead::Expired => self.counters.get_expired += 1,
                    Dead::Flushed => self.counters.get_flushed += 1,
                }
                self.unlink(sh, pos, handle, &header);
                Look::Dead(dead)
            }
        }
    }

    /// Removes the item at index position `pos` and frees its chunks.
    pub fn unlink(&mut self, sh: &Shared, pos: usize, handle: u32, h: &Header) {
        self.index.remove_at(pos);
        self.count_unlinked(sh.class_of(handle), h);
        self.free_item(sh, handle, h);
    }

    /// Counts a stored item of `total` bytes and sequence `seq` in class `cls` (a store).
    fn count_linked(&mut self, cls: usize, total: u64, seq: u64) {
        let c = &mut self.classes[cls];
        c.stats.number += 1;
        c.stats.mem_requested += total;
        c.stats.cmd_set += 1;
        self.counters.curr_items += 1;
        self.counters.total_items += 1;
        self.counters.bytes += total;
        if let Some(sizes) = &mut self.sizes {
            sizes.add(seq, total);
        }
    }

    /// Takes the item `h` of class `cls` out of the counts (it is unlinked or replaced).
    fn count_unlinked(&mut self, cls: usize, h: &Header) {
        let total = h.total() as u64;
        let c = &mut self.classes[cls];
        c.stats.number -= 1;
        c.stats.mem_requested -= total;
        self.counters.curr_items -= 1;
        self.counters.bytes -= total;
        if let Some(sizes) = &mut self.sizes {
            sizes.remove(h.seq, total);
        }
    }

    fn free_item(&mut self, sh: &Shared, handle: u32, h: &Header) {
        let mut next = if h.chained { h.next } else { 0 };
        self.free_chunk(sh, handle);
        while next != 0 {
            let n = item::link(self.chunk(sh, next));
            self.free_chunk(sh, next);
            next = n;
        }
    }

    fn free_chunk(&mut self, sh: &Shared, h: u32) {
        let cls = sh.class_of(h);
        let c = &mut self.classes[cls];
        item::write_free(sh.chunk_mut(&mut self.owner, h), c.free_head);
        c.free_head = h;
        c.free += 1;
        c.used -= 1;
    }

    /// The hash of the item whose head is `h`, a chunk of `owner`'s (reads its key).
    fn hash_of(sh: &Shared, owner: &Owner, h: u32) -> u64 {
        let c = sh.chunk(owner, h);
        let hd = item::parse(c);
        sh.hash(&c[hd.key_off..hd.key_off + hd.key_len])
    }

    /// Finds the index position of the item whose head is `h`.
    pub fn pos_of(&self, sh: &Shared, h: u32) -> usize {
        self.hash_and_pos_of(sh, h).1
    }

    /// The hash of the item whose head is `h`, and its index position.
    fn hash_and_pos_of(&self, sh: &Shared, h: u32) -> (u64, usize) {
        let hash = Self::hash_of(sh, &self.owner, h);
        let pos = self
            .index
            .find(hash, |x| x == h)
            .expect("every head chunk is indexed");
        (hash, pos)
    }

    /// A free or not yet carved chunk of class `cls`, if it has one.
    pub(super) fn take_free(&mut self, sh: &Shared, cls: usize) -> Option<u32> {
        let per_page = sh.classes.per_page(cls);
        let c = &mut self.classes[cls];
        if c.free_head != 0 {
            let h = c.free_head;
            c.free_head = item::link(sh.chunk(&self.owner, h));
            c.free -= 1;
            c.used += 1;
            return Some(h);
        }
        if c.carve_page != 0 {
            let h = sh.handle(c.carve_page, c.carve_next as usize);
            c.carve_next += 1;
            if c.carve_next as usize == per_page {
                c.carve_page = 0;
            }
            c.used += 1;
            return Some(h);
        }
        None
    }

    /// Hands out one chunk of class `cls` (or, see [`Shard::alloc_larger`], of a somewhat
    /// larger one), evicting if allowed. `None`: out of memory.
    fn alloc_chunk(&mut self, sh: &Shared, cls: usize, now: RelTime) -> Option<u32> {
        loop {
            if let Some(h) = self.take_free(sh, cls) {
                return Some(h);
            }
            if let Some(page) = sh.arena.take_page(cls, &mut self.owner) {
                let c = &mut self.classes[cls];
                c.pages.push(page);
                c.carve_page = page;
                c.carve_next = 0;
                continue;
            }
            if !sh.evict {
                break;
            }
            if self.evict_one(sh, cls, now) {
                continue;
            }
            // Nothing to evict in this class (it may have no pages at all): a chunk of a
            // larger class, or else a page taken from another class of this shard, or from
            // another shard, rather than fail.
            if let Some(h) = self.alloc_larger(sh, cls, now) {
                return Some(h);
            }
            if self.steal_page(sh, cls, now) {
                continue;
            }
            if let Some(page) = sh.steal_remote(self.id, now) {
                self.attach_page(sh, cls, page);
                continue;
            }
            break;
        }
        self.classes[cls].stats.outofmemory += 1;
        None
    }

    /// A chunk for an item of class `cls`, which has nothing to give, from one of the next
    /// [`UPSIZE_CLASSES`] classes that has pages: a free or uncarved chunk, else one its
    /// CLOCK hand frees. Without it, the class's first item when memory is full took a whole
    /// page from another class, dropping everything on it: with more classes in use than
    /// pages (many sizes at a small `-m`), classes kept taking each other's pages. The
    /// larger chunk holds the item as its own would (readers and writers go by the chunk's
    /// real length and the item's header). The class is credited with the eviction, so
    /// automove gives it pages of its own at its measured pace.
    fn alloc_larger(&mut self, sh: &Shared, cls: usize, now: RelTime) -> Option<u32> {
        let last = (cls + UPSIZE_CLASSES).min(self.classes.len() - 1);
        let with_pages = |s: &Self, c: usize| !s.classes[c].pages.is_empty();
        for up in cls + 1..=last {
            if with_pages(self, up) {
                if let Some(h) = self.take_free(sh, up) {
                    return Some(h);
                }
            }
        }
        for up in cls + 1..=last {
            if with_pages(self, up) && self.evict_one(sh, up, now) {
                if let Some(h) = self.take_free(sh, up) {
                    let age = self.classes[up].stats.window_evict_age;
                    let st = &mut self.classes[cls].stats;
                    st.window_evictions += 1;
                    st.window_evict_age = st.window_evict_age.max(age);
                    return Some(h);
                }
            }
        }
        None
    }

    /// Allocates the chunks of an item of `total` bytes (header + key + value) with a header
    /// of `hdr` bytes: one chunk, or a chain of largest-class chunks. Returns the head; for a
    /// chain the head is marked as a continuation of itself until written.
    fn alloc_item(
        &mut self,
        sh: &Shared,
        hdr_and_key: usize,
        value_len: usize,
        now: RelTime,
    ) -> Option<u32> {
        let total = hdr_and_key + value_len;
        if let Some(cls) = sh.classes.class_for(total) {
            return self.alloc_chunk(sh, cls, now);
        }
        let big = sh.classes.largest();
        let size = sh.classes.size(big);
        let head = self.alloc_chunk(sh, big, now)?;
        item::write_cont(self.chunk_mut(sh, head), 0);
        self.building = head;
        let mut rest = value_len.saturating_sub(size - hdr_and_key);
        let mut tail = head;
        let mut ok = true;
        while rest > 0 {
            // Full chunks of the largest class, then the smallest class that holds the rest.
            let cls = sh.classes.class_for(rest + CONT_HEADER).unwrap_or(big);
            let Some(h) = self.alloc_chunk(sh, cls, now) else {
                ok = false;
                break;
            };
            let c = self.chunk_mut(sh, h);
            item::write_cont(c, 0);
            item::wr32(c, 8, head);
            item::wr32(self.chunk_mut(sh, tail), 4, h);
            tail = h;
            rest = rest.saturating_sub(sh.classes.size(cls) - CONT_HEADER);
        }
        self.building = 0;
        if !ok {
            let mut h = head;
            while h != 0 {
                let n = item::link(self.chunk(sh, h));
                self.free_chunk(sh, h);
                h = n;
            }
            return None;
        }
        Some(head)
    }

    /// Writes a new item and indexes it, returning its head. It replaces `replacing` (freed
    /// here), if any: over that item's own chunk when one piece of bytes makes an item of the
    /// same class ([`Shard::rewrite`]), else into freshly allocated chunks. `facts` are the
    /// meta bits it starts with (`item::FETCHED`, `STALE`, `TOKEN_SENT`, `KEY_BINARY`; 0 for a
    /// plain store); its access time is `now`. A [`Part::Value`] must be the value of
    /// `replacing`, which stays pinned (not evicted) while the new chunks are allocated.
    #[allow(clippy::too_many_arguments)]
    pub fn write_new(
        &mut self,
        sh: &Shared,
        key: &[u8],
        hash: u64,
        flags: u32,
        exptime: RelTime,
        seq: u64,
        facts: u32,
        parts: &[Part<'_>],
        replacing: Option<Found>,
        now: RelTime,
    ) -> Option<u32> {
        let value_len: usize = parts.iter().map(Part::len).sum();
        debug_assert!(parts.iter().all(|p| match p {
            Part::Value(f) => replacing.is_some_and(|r| r.handle == f.handle),
            Part::Bytes(_) => true,
        }));
        let it = item::NewItem {
            key,
            flags,
            exptime,
            seq,
            now,
            facts,
        };
        let plain_hdr = item::header_len(flags, exptime, false);
        let class = sh.classes.class_for(plain_hdr + key.len() + value_len);
        if let (Some(old), [Part::Bytes(value)], Some(cls)) = (replacing, parts, class) {
            if !old.header.chained && cls == sh.class_of(old.handle) {
                self.rewrite(sh, old, &it, value);
                return Some(old.handle);
            }
        }
        let chained = class.is_none();
        let hdr = item::header_len(flags, exptime, chained);
        self.pin = replacing.map_or(0, |f| f.handle);
        let head = self.alloc_item(sh, hdr + key.len(), value_len, now);
        self.pin = 0;
        let head = head?;
        // The old item may have been found again at another index position if the allocator
        // removed entries; positions only change on insert, so `replacing.pos` is still valid.
        let chunk = self.chunk_mut(sh, head);
        let first_next = if chained { item::link(chunk) } else { 0 };
        let voff = item::write_header(chunk, &it, value_len, chained.then_some(first_next));
        if let (false, [Part::Bytes(b)]) = (chained, parts) {
            // The common store: one piece into one chunk.
            chunk[voff..voff + b.len()].copy_from_slice(b);
        } else {
            let end = if chained {
                chunk.len()
            } else {
                voff + value_len
            };
            let mut dst = write::Dst::new(head, voff, end, first_next);
            for part in parts {
                match part {
                    Part::Bytes(b) => self.put(sh, &mut dst, b),
                    Part::Value(f) => self.put_value(sh, &mut dst, f),
                }
            }
        }
        let cls = sh.class_of(head);
        let owner = &self.owner;
        if replacing.is_none()
            && self
                .index
                .insert(hash, head, &sh.arena.faults, |h| {
                    Self::hash_of(sh, owner, h)
                })
                .is_err()
        {
            // The index is full and cannot grow: the item is not stored.
            let written = item::parse(self.chunk(sh, head));
            self.free_item(sh, head, &written);
            self.classes[cls].stats.outofmemory += 1;
            return None;
        }
        self.count_linked(cls, (hdr + key.len() + value_len) as u64, seq);
        if let Some(old) = replacing {
            self.index.replace_at(old.pos, hash, head);
            // Unlink bookkeeping for the old item without touching the index slot again.
            self.count_unlinked(sh.class_of(old.handle), &old.header);
            self.free_item(sh, old.handle, &old.header);
        }
        Some(head)
    }

    /// Writes the new item `it` with `value` over `old`, a live single-chunk item of the class
    /// it needs: the same chunk and index slot (same key, same handle), so a set that replaces
    /// an item of its own size writes no free list and no other chunk, only lines it has just
    /// read (issue 15). Readers hold this shard's lock, so none sees the item half written.
    fn rewrite(&mut self, sh: &Shared, old: Found, it: &item::NewItem<'_>, value: &[u8]) {
        let chunk = self.chunk_mut(sh, old.handle);
        let voff = item::write_header(chunk, it, value.len(), None);
        chunk[voff..voff + value.len()].copy_from_slice(value);
        let cls = sh.class_of(old.handle);
        self.count_unlinked(cls, &old.header);
        self.count_linked(cls, (voff + value.len()) as u64, it.seq);
    }

    /// Sets the exptime of a live item. Items without an exptime field are rewritten (a
    /// never-expiring item grows by 4 bytes). CAS does not change.
    pub fn set_exptime(
        &mut self,
        sh: &Shared,
        key: &[u8],
        hash: u64,
        f: Found,
        exptime: RelTime,
        now: RelTime,
    ) -> Option<Found> {
        if item::has_exptime_field(&f.header) {
            item::set_exptime(self.chunk_mut(sh, f.handle), &f.header, exptime);
            let mut hd = f.header;
            hd.exptime = exptime;
            return Some(Found { header: hd, ..f });
        }
        if exptime == 0 {
            return Some(f);
        }
        let head = self.write_new(
            sh,
            key,
            hash,
            f.header.flags,
            exptime,
            f.header.seq,
            f.header.meta & item::FACT_BITS,
            &[Part::Value(f)],
            Some(f),
            now,
        )?;
        self.counters.total_items -= 1;
        let cls = sh.class_of(head);
        self.classes[cls].stats.cmd_set -= 1;
        let chunk = self.chunk_mut(sh, head);
        // The same item, moved: it keeps its access time (a touch stamps it when it bumps).
        item::set_atime(chunk, f.header.atime);
        let header = item::parse(chunk);
        Some(Found {
            pos: f.pos,
            handle: head,
            header,
        })
    }

    /// Seconds since the last access of the next item the CLOCK hand of class `cls` will look
    /// at: tern's stand-in for memcached's `age` (the access time of the LRU tail).
    pub fn hand_age(&self, sh: &Shared, cls: usize, now: RelTime) -> Option<u32> {
        let c = &self.classes[cls];
        let per_page = sh.classes.per_page(cls);
        let (mut p, mut slot) = (c.hand_page, c.hand_slot);
        for _ in 0..64 {
            if p >= c.pages.len() || slot >= per_page {
                return None;
            }
            let page = c.pages[p];
            if page == c.carve_page && slot >= c.carve_next as usize {
                return None;
            }
            let chunk = self.chunk(sh, sh.handle(page, slot));
            let kind = item::kind(chunk);
            if kind != item::KEY_FREE && kind != item::KEY_CONT {
                return Some(item::parse(chunk).age(now));
            }
            slot += 1;
            if slot == per_page {
                slot = 0;
                p += 1;
            }
        }
        None
    }
}

#[cfg(test)]
mod layout_tests {
    use std::mem::{align_of, offset_of, size_of};

    use super::{Class, ClassStats, Shard, ShardCounters};

    /// Asserts that each (offset, length) in `fields`, counted from `start` bytes into a
    /// 64-byte line, ends within it.
    fn on_one_line(start: usize, fields: &[(usize, usize)], what: &str) {
        for &(at, len) in fields {
            assert!(
                start + at + len <= 64,
                "{what}: a field at {at} leaves the line"
            );
        }
    }

    /// What a store writes in a shard lies on the lock's line: the lock word first (a byte,
    /// `Shard` after it at its 8-byte alignment), then these within the line's 64 bytes.
    #[test]
    fn a_store_writes_the_shard_only_on_the_lock_line() {
        assert!(size_of::<parking_lot::RawMutex>() <= 8);
        assert_eq!(align_of::<Shard>(), 8);
        let counters = offset_of!(Shard, counters);
        let written = [
            (offset_of!(Shard, seq), 8),
            (offset_of!(Shard, flush_wm), 8),
            (offset_of!(Shard, pin), 4),
            (offset_of!(Shard, flush_gen), 4),
            (offset_of!(Shard, building), 4),
            (counters + offset_of!(ShardCounters, total_items), 8),
            (counters + offset_of!(ShardCounters, curr_items), 8),
            (counters + offset_of!(ShardCounters, bytes), 8),
        ];
        on_one_line(8, &written, "Shard");
    }

    /// What a store writes in its class (free list, carving, counts) is one 64-byte line.
    #[test]
    fn a_store_writes_one_line_of_its_class() {
        assert_eq!(align_of::<Class>(), 64);
        let stats = offset_of!(Class, stats);
        let written = [
            (offset_of!(Class, free_head), 4),
            (offset_of!(Class, carve_next), 4),
            (offset_of!(Class, free), 8),
            (offset_of!(Class, used), 8),
            (stats + offset_of!(ClassStats, number), 8),
            (stats + offset_of!(ClassStats, mem_requested), 8),
            (stats + offset_of!(ClassStats, cmd_set), 8),
        ];
        on_one_line(0, &written, "Class");
    }
}
