//! One shard's hash index: key hash -> item handle, kept outside item memory.
//!
//! Open addressing with linear probing over bit-packed slots. A slot packs the item handle (page
//! and chunk number, stored as `handle - first handle`, `handle_bits` wide) with a [`TAG_BITS`]
//! tag from the key's hash, so most probes that are not the key are rejected without touching
//! item memory: at `-m 64` that is 21 + 4 = 25 bits per slot. Tags run from 1, so a slot of 0 is
//! empty and 1 is deleted. The table size is not a power of two (the start slot is
//! `hash * len >> 32`, "fastrange"), so it grows by 4/3, not 2x, and costs `bits / 8 / load`
//! bytes per item: 3.9-5.2 at 25 bits and a load between 0.6 and 0.8.
//! Tables live in mappings of their own ([`ZeroedBuf`]) so a dropped table goes back to the OS.
//!
//! Growing is incremental: a full table becomes the "old" table, a bigger one is started, and
//! every insert moves a few old slots over (as does `maintain()`); lookups try the new table
//! and then the old one. No request waits for more than [`MIGRATE_PER_INSERT`] slots to move.
//!
//! A growth whose new table cannot be mapped leaves the index at its size: it keeps serving
//! above [`MAX_LOAD_TENTHS`] (probes get longer) and tries again on the next insert. Only when
//! one empty slot would be left (probes end at an empty slot) does an insert fail.

use super::arena::{Faults, MapFailed, ZeroedBuf};

const EMPTY: u32 = 0;
const DELETED: u32 = 1;
/// Grow (or clean deleted slots) above this load, in tenths. Linear probing's miss scans grow
/// as 1/(1-load)^2: about 13 slots at 0.8, 50 at 0.9; with 4-bit tags every 15th occupied
/// slot costs a key read, so misses (and sets of new keys, which begin with one) pay for load.
const MAX_LOAD_TENTHS: usize = 8;
/// Size a new table for this load, in tenths (so tables grow by 4/3).
const TARGET_LOAD_TENTHS: usize = 6;
/// The smallest table.
const MIN_SLOTS: usize = 64;
/// Old slots moved per insert while growing: the old table (at most live / 0.6 slots) is
/// empty after live / 19 inserts, long before the new one (sized live / 0.6) fills to 0.8.
pub const MIGRATE_PER_INSERT: usize = 32;
/// Marks a position in the old table.
const OLD: usize = 1 << (usize::BITS - 1);

/// Tag bits per slot (when the handle leaves room in 32 bits): tags run 1..=15, so a probe of
/// another key reads item memory to reject it 1 time in 15. Each bit costs 1/8 byte per slot;
/// measured at -m 64 (21-bit handles), 3 tag bits made misses ~2.5x slower than 11 did, 4 is
/// the chosen trade (see docs/store.md).
pub const TAG_BITS: u32 = 4;

/// Bits per slot for handles needing `handle_bits`: the handle plus [`TAG_BITS`], at most 32.
pub fn slot_bits(handle_bits: u32) -> u32 {
    (handle_bits + TAG_BITS).min(32)
}

/// One open-addressing table of `bits`-bit slots packed end to end (little-endian bit order).
#[derive(Debug)]
struct Table {
    /// The packed slots, plus 8 bytes of padding so that any slot can be read as one `u64`.
    bytes: ZeroedBuf,
    /// Slots.
    len: usize,
    /// Bits per slot: 2..=32.
    bits: usize,
    /// The low `bits` bits.
    mask: u64,
    /// Occupied plus deleted slots.
    used: usize,
}

impl Table {
    fn new(len: usize, bits: u32, faults: &Faults) -> Result<Table, MapFailed> {
        debug_assert!((2..=32).contains(&bits));
        let len = len.max(MIN_SLOTS);
        if faults.refuse_index() {
            return Err(MapFailed);
        }
        Ok(Table {
            // Zeroed (EMPTY) memory of its own mapping: it costs resident memory only as it
            // fills, and all of it goes back to the OS when the table is dropped.
            bytes: ZeroedBuf::new((len * bits as usize).div_ceil(8) + 8)?,
            len,
            bits: bits as usize,
            mask: (1u64 << bits) - 1,
            used: 0,
        })
    }

    #[inline]
    fn start(&self, hash: u64) -> usize {
        (((hash >> 32) * self.len as u64) >> 32) as usize
    }

    /// The byte offset and bit shift of slot `pos`.
    #[inline]
    fn at(&self, pos: usize) -> (usize, u32) {
        let bit = pos * self.bits;
        (bit >> 3, (bit & 7) as u32)
    }

    /// The slot at `pos` (< `len`).
    #[inline]
    fn get(&self, pos: usize) -> u32 {
        let (o, sh) = self.at(pos);
        let b: [u8; 8] = self.bytes.as_slice()[o..o + 8].try_into().expect("8 bytes");
        ((u64::from_le_bytes(b) >> sh) & self.mask) as u32
    }

    /// Writes the slot at `pos` (< `len`); `v` fits in `bits` bits.
    #[inline]
    fn set(&mut self, pos: usize, v: u32) {
        debug_assert!(u64::from(v) & !self.mask == 0);
        let (o, sh) = self.at(pos);
        let (mask, v) = (self.mask << sh, u64::from(v) << sh);
        let word = &mut self.bytes.as_mut_slice()[o..o + 8];
        let old = u64::from_le_bytes((&*word).try_into().expect("8 bytes"));
        word.copy_from_slice(&((old & !mask) | v).to_le_bytes());
    }
}

/// A shard's index.
#[derive(Debug)]
pub struct Index {
    cur: Table,
    /// The table being emptied into `cur`, and the next slot to move.
    old: Option<(Table, usize)>,
    live: usize,
    /// The smallest handle; slots store `handle - base`.
    base: u32,
    /// Bits of a stored `handle - base`.
    handle_bits: u32,
    /// Bits above them: a tag from 1 to `2^tag_bits - 1` (0 marks EMPTY and DELETED), or none
    /// at all when `tag_bits` is 0 (then the raw handle is stored; handles are never 0 or 1).
    tag_bits: u32,
    /// Bits per slot, fixed at start-up from the handle range (see [`slot_bits`]).
    width: u32,
}

impl Index {
    /// An index of about `slots` slots for handles from `min_handle` (at least 2) to
    /// `max_handle`, or [`MapFailed`] when its table cannot be mapped.
    pub fn new(slots: usize, min_handle: u32, max_handle: u32) -> Result<Index, MapFailed> {
        debug_assert!(2 <= min_handle && min_handle <= max_handle);
        let span = max_handle - min_handle;
        let span_bits = u32::BITS - span.leading_zeros();
        let width = slot_bits(span_bits);
        let tag_bits = width - span_bits.min(width);
        let (base, handle_bits) = if tag_bits == 0 {
            (0, 32)
        } else {
            (min_handle, span_bits)
        };
        Ok(Index {
            cur: Table::new(slots, width, &Faults::default())?,
            old: None,
            live: 0,
            base,
            handle_bits,
            tag_bits,
            width,
        })
    }

    /// Items indexed.
    #[cfg(test)]
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.live
    }

    /// Slots in the tables.
    pub fn capacity(&self) -> usize {
        self.cur.len + self.old.as_ref().map_or(0, |(t, _)| t.len)
    }

    /// Bytes the tables take.
    pub fn bytes(&self) -> usize {
        self.cur.bytes.len() + self.old.as_ref().map_or(0, |(t, _)| t.bytes.len())
    }

    /// Whether an old table is being emptied.
    pub fn is_expanding(&self) -> bool {
        self.old.is_some()
    }

    #[inline]
    fn tag(&self, hash: u64) -> u32 {
        if self.tag_bits == 0 {
            0
        } else {
            // Bits 8..32 of the hash (the low bits pick the shard, the high 32 the start slot)
            // mapped onto 1..2^tag_bits by a multiply-shift: tag 0 is kept for the marks.
            let x = (hash >> 8) & 0xFF_FFFF;
            ((x * ((1u64 << self.tag_bits) - 1)) >> 24) as u32 + 1
        }
    }

    #[inline]
    fn pack(&self, tag: u32, handle: u32) -> u32 {
        if self.tag_bits == 0 {
            handle
        } else {
            debug_assert!(handle >= self.base && handle - self.base < 1 << self.handle_bits);
            (tag << self.handle_bits) | (handle - self.base)
        }
    }

    #[inline]
    fn handle_of(&self, slot: u32) -> u32 {
        if self.tag_bits == 0 {
            slot
        } else {
            (slot & ((1u32 << self.handle_bits) - 1)) + self.base
        }
    }

    #[inline]
    fn find_in(&self, t: &Table, hash: u64, is_key: &mut impl FnMut(u32) -> bool) -> Option<usize> {
        let n = t.len;
        let tag = self.tag(hash);
        let mut pos = t.start(hash);
        loop {
            let s = t.get(pos);
            if s == EMPTY {
                return None;
            }
            if s != DELETED
                && (self.tag_bits == 0 || s >> self.handle_bits == tag)
                && is_key(self.handle_of(s))
            {
                return Some(pos);
            }
            pos += 1;
            if pos == n {
                pos = 0;
            }
        }
    }

    /// Finds the position of the item for which `is_key(handle)` holds, among those whose hash
    /// matches `hash`. Positions stay valid until the next insert or migration step.
    #[inline]
    pub fn find(&self, hash: u64, mut is_key: impl FnMut(u32) -> bool) -> Option<usize> {
        if let Some(p) = self.find_in(&self.cur, hash, &mut is_key) {
            return Some(p);
        }
        let (old, _) = self.old.as_ref()?;
        self.find_in(old, hash, &mut is_key).map(|p| p | OLD)
    }

    fn slot(&self, pos: usize) -> u32 {
        if pos & OLD != 0 {
            self.old
                .as_ref()
                .expect("old position without old table")
                .0
                .get(pos & !OLD)
        } else {
            self.cur.get(pos)
        }
    }

    fn table_mut(&mut self, pos: usize) -> (&mut Table, usize) {
        if pos & OLD != 0 {
            (
                &mut self.old.as_mut().expect("old position without old table").0,
                pos & !OLD,
            )
        } else {
            (&mut self.cur, pos)
        }
    }

    /// The handle at a position `find` returned.
    #[inline]
    pub fn handle_at(&self, pos: usize) -> u32 {
        self.handle_of(self.slot(pos))
    }

    /// Points the entry at `pos` at another handle of the same key.
    pub fn replace_at(&mut self, pos: usize, hash: u64, handle: u32) {
        let v = self.pack(self.tag(hash), handle);
        let (t, p) = self.table_mut(pos);
        t.set(p, v);
    }

    /// Removes the entry at `pos`.
    pub fn remove_at(&mut self, pos: usize) {
        let (t, p) = self.table_mut(pos);
        remove_slot(t, p);
        self.live -= 1;
    }

    /// Inserts a handle for a key known to be absent; `hash_of(handle)` re-hashes an indexed
    /// item (reading its key) when entries move to a bigger table. A bigger table is mapped
    /// when the load passes [`MAX_LOAD_TENTHS`] (its refusals are planned by `faults`); if that
    /// fails the index stays at its size, and only an insert that would leave no empty slot
    /// fails, with nothing inserted.
    pub fn insert(
        &mut self,
        hash: u64,
        handle: u32,
        faults: &Faults,
        mut hash_of: impl FnMut(u32) -> u64,
    ) -> Result<(), MapFailed> {
        if self.old.is_some() {
            self.migrate(MIGRATE_PER_INSERT, &mut hash_of);
        }
        if (self.cur.used + 1) * 10 > self.cur.len * MAX_LOAD_TENTHS {
            // Rare: a previous growth is not finished yet; finish it first.
            let all = self.old.as_ref().map_or(0, |(t, _)| t.len);
            self.migrate(all, &mut hash_of);
            let want = ((self.live + 1) * 10).div_ceil(TARGET_LOAD_TENTHS);
            match Table::new(want, self.width, faults) {
                Ok(bigger) => {
                    let old = std::mem::replace(&mut self.cur, bigger);
                    self.old = Some((old, 0));
                    self.migrate(MIGRATE_PER_INSERT, &mut hash_of);
                }
                // No memory for a bigger table: stay at this size while an empty slot is left
                // after the insert (probes stop at one).
                Err(e) if self.cur.used + 2 > self.cur.len => return Err(e),
                Err(_) => {}
            }
        }
        let v = self.pack(self.tag(hash), handle);
        put(&mut self.cur, hash, v);
        self.live += 1;
        Ok(())
    }

    /// Moves up to `budget` old slots into the current table. Returns whether an old table
    /// remains.
    pub fn migrate(&mut self, budget: usize, hash_of: &mut impl FnMut(u32) -> u64) -> bool {
        let Some((mut old, mut next)) = self.old.take() else {
            return false;
        };
        let end = (next + budget).min(old.len);
        while next < end {
            let s = old.get(next);
            if s != EMPTY && s != DELETED {
                let h = self.handle_of(s);
                let hash = hash_of(h);
                let v = self.pack(self.tag(hash), h);
                put(&mut self.cur, hash, v);
                // Leave a deleted mark so probes for keys further along still pass.
                old.set(next, DELETED);
            }
            next += 1;
        }
        if next < old.len {
            self.old = Some((old, next));
            true
        } else {
            false
        }
    }
}

fn put(t: &mut Table, hash: u64, v: u32) {
    let n = t.len;
    let mut pos = t.start(hash);
    loop {
        let s = t.get(pos);
        if s == EMPTY || s == DELETED {
            if s == EMPTY {
                t.used += 1;
            }
            t.set(pos, v);
            return;
        }
        pos += 1;
        if pos == n {
            pos = 0;
        }
    }
}

fn remove_slot(t: &mut Table, pos: usize) {
    let next = if pos + 1 == t.len { 0 } else { pos + 1 };
    // Nothing probes past an empty slot, so a run ending here can end sooner.
    if t.get(next) == EMPTY {
        t.set(pos, EMPTY);
        t.used -= 1;
    } else {
        t.set(pos, DELETED);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn h(i: u64) -> u64 {
        i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i << 17)
    }

    #[test]
    fn default_64mb_store_gets_25_bit_slots_with_4_tag_bits() {
        // -m 64: 1024 pages of 2048 32-byte chunks, page 0 unused.
        let idx = Index::new(0, 1 << 11, (1024 << 11) | 2047).unwrap();
        assert_eq!((idx.width, idx.handle_bits, idx.tag_bits), (25, 21, 4));
        // One page more needs a 22nd bit.
        let idx = Index::new(0, 1 << 11, (1025 << 11) | 2047).unwrap();
        assert_eq!((idx.width, idx.handle_bits, idx.tag_bits), (26, 22, 4));
        // Handles of 29 bits and more leave fewer tag bits in 32.
        let idx = Index::new(0, 2, 1 << 29).unwrap();
        assert_eq!((idx.width, idx.handle_bits, idx.tag_bits), (32, 29, 3));
    }

    #[test]
    fn extreme_handles_and_every_tag_round_trip() {
        for (min, max) in [(2048u32, (1024 << 11) | 2047), (2, u32::MAX), (2, 1 << 31)] {
            let mut idx = Index::new(0, min, max).unwrap();
            let mut model = Vec::new();
            // Hashes whose bits 8..32 sweep the whole range hit every tag, including the top one.
            for i in 0..4096u64 {
                let hash = (i << 20) | ((0xFF_FFFF << 8) * (i & 1)) | (i & 0xff);
                let handle = if i % 2 == 0 {
                    min + i as u32
                } else {
                    max - i as u32
                };
                let m: &Vec<(u32, u64)> = &model;
                idx.insert(hash, handle, &Faults::default(), |hd| {
                    m.iter().find(|e| e.0 == hd).unwrap().1
                })
                .unwrap();
                model.push((handle, hash));
            }
            for &(handle, hash) in &model {
                let pos = idx.find(hash, |x| x == handle).expect("present");
                assert_eq!(idx.handle_at(pos), handle);
            }
        }
    }

    #[test]
    fn insert_find_remove_and_grow_agree_with_a_map() {
        for bits in [20u32, 21, 22, 31, 32] {
            // Handles 2.. as in a store whose page 1 starts at handle 2.
            let mut idx = Index::new(
                0,
                2,
                (2 + ((1u64 << bits) - 1)).min(u64::from(u32::MAX)) as u32,
            )
            .unwrap();
            let mut model: HashMap<u32, u64> = HashMap::new();
            let mut saw_expanding = false;
            for i in 2..50_000u32 {
                let hash = h(u64::from(i));
                let m = &model;
                idx.insert(hash, i, &Faults::default(), |hd| m[&hd])
                    .unwrap();
                model.insert(i, hash);
                saw_expanding |= idx.is_expanding();
                if i % 3 == 0 {
                    let victim = i / 2;
                    if let Some(vh) = model.remove(&victim) {
                        let pos = idx.find(vh, |x| x == victim).unwrap();
                        idx.remove_at(pos);
                    }
                }
                if i % 7 == 0 {
                    // Replacing keeps the key findable, in whichever table it is.
                    let k = i - 1;
                    if let Some(&kh) = model.get(&k) {
                        let pos = idx.find(kh, |x| x == k).unwrap();
                        idx.replace_at(pos, kh, k);
                    }
                }
            }
            assert!(saw_expanding);
            assert_eq!(idx.len(), model.len());
            for (&k, &hash) in &model {
                let pos = idx.find(hash, |x| x == k).expect("present");
                assert_eq!(idx.handle_at(pos), k);
            }
            assert!(idx.find(h(1), |x| x == 1).is_none());
            let m = &model;
            while idx.migrate(1000, &mut |hd| m[&hd]) {}
            // Load stays between 0.6 and 0.8 once grown: width / 8 / load bytes per item.
            let width = f64::from(idx.width) / 8.0;
            let per_item = idx.bytes() as f64 / idx.len() as f64;
            assert!(per_item <= width / 0.6 + 0.01, "{bits}: {per_item}");
        }
    }

    #[test]
    fn refused_growth_keeps_serving_at_its_size_then_grows() {
        let faults = Faults::default();
        let mut idx = Index::new(0, 2, 1 << 20).unwrap();
        let slots = idx.capacity();
        let mut model: HashMap<u32, u64> = HashMap::new();
        faults.refuse(u32::MAX, 0);
        let mut refused = 0;
        for i in 2..10_000u32 {
            let hash = h(u64::from(i));
            let m = &model;
            match idx.insert(hash, i, &faults, |hd| m[&hd]) {
                Ok(()) => {
                    model.insert(i, hash);
                }
                Err(MapFailed) => refused += 1,
            }
        }
        // Full but for one empty slot: everything inserted is found, misses still end.
        assert_eq!(idx.capacity(), slots);
        assert_eq!(model.len(), slots - 1);
        assert_eq!(refused, 10_000 - 2 - (slots - 1));
        for (&k, &hash) in &model {
            assert_eq!(idx.handle_at(idx.find(hash, |x| x == k).unwrap()), k);
        }
        assert!(idx.find(h(1), |x| x == 1).is_none());
        // Memory again: the next insert grows, and nothing is lost.
        faults.refuse(0, 0);
        let m = &model;
        idx.insert(h(20_000), 20_000, &faults, |hd| m[&hd]).unwrap();
        model.insert(20_000, h(20_000));
        assert!(idx.capacity() > slots);
        let m = &model;
        while idx.migrate(1000, &mut |hd| m[&hd]) {}
        for (&k, &hash) in &model {
            assert_eq!(idx.handle_at(idx.find(hash, |x| x == k).unwrap()), k);
        }
    }
}
