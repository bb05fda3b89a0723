//! One shard's hash index: key hash -> item handle, kept outside item memory.
//!
//! Open addressing with linear probing over `u32` slots. A slot packs the item handle (page and
//! chunk number, `handle_bits` wide) with as many bits of the key's hash as are left (the tag),
//! so most probes that are not the key are rejected without touching item memory. 0 is an empty
//! slot and 1 a deleted one (handles are never 0 or 1: page 0 is never used). The table size is
//! not a power of two (the start slot is `hash * len >> 32`, "fastrange"), so it grows by 4/3,
//! not 2x, and costs 4 bytes / load, i.e. 4.4-5.3 bytes per item, at a load between 0.75 and
//! 0.9. Growing rebuilds this shard's table only (a pause of this shard alone, proportional to
//! its share of the items: see docs/store.md).

const EMPTY: u32 = 0;
const DELETED: u32 = 1;
/// Grow (or clean deleted slots) above this load, in tenths.
const MAX_LOAD_TENTHS: usize = 9;
/// Rebuild to this load, in quarters.
const TARGET_LOAD_QUARTERS: usize = 3;
/// The smallest table.
const MIN_SLOTS: usize = 64;

/// A shard's index.
#[derive(Debug)]
pub struct Index {
    slots: Vec<u32>,
    live: usize,
    deleted: usize,
    handle_bits: u32,
    tag_bits: u32,
}

impl Index {
    /// An index of about `slots` slots for handles `handle_bits` wide.
    pub fn new(slots: usize, handle_bits: u32) -> Index {
        debug_assert!(handle_bits <= 32);
        Index {
            slots: vec![EMPTY; slots.max(MIN_SLOTS)],
            live: 0,
            deleted: 0,
            handle_bits,
            tag_bits: 32 - handle_bits,
        }
    }

    /// Items indexed.
    #[cfg(test)]
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.live
    }

    /// Slots in the table.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Bytes the table takes.
    pub fn bytes(&self) -> usize {
        self.slots.capacity() * 4
    }

    #[inline]
    fn start(&self, hash: u64) -> usize {
        (((hash >> 32) * self.slots.len() as u64) >> 32) as usize
    }

    #[inline]
    fn tag(&self, hash: u64) -> u32 {
        if self.tag_bits == 0 {
            0
        } else {
            // Bits 8.. of the hash: the low bits pick the shard, the high ones the start slot.
            ((hash >> 8) as u32) & ((1u32 << self.tag_bits) - 1)
        }
    }

    #[inline]
    fn pack(&self, tag: u32, handle: u32) -> u32 {
        if self.tag_bits == 0 {
            handle
        } else {
            (tag << self.handle_bits) | handle
        }
    }

    #[inline]
    fn handle_of(&self, slot: u32) -> u32 {
        if self.handle_bits >= 32 {
            slot
        } else {
            slot & ((1u32 << self.handle_bits) - 1)
        }
    }

    /// Finds the position of the item for which `is_key(handle)` holds, among those whose hash
    /// matches `hash`.
    #[inline]
    pub fn find(&self, hash: u64, mut is_key: impl FnMut(u32) -> bool) -> Option<usize> {
        let n = self.slots.len();
        let tag = self.tag(hash);
        let mut pos = self.start(hash);
        loop {
            let s = self.slots[pos];
            if s == EMPTY {
                return None;
            }
            if s != DELETED && (self.tag_bits == 0 || s >> self.handle_bits == tag) {
                let h = self.handle_of(s);
                if is_key(h) {
                    return Some(pos);
                }
            }
            pos += 1;
            if pos == n {
                pos = 0;
            }
        }
    }

    /// The handle at a position `find` returned.
    #[inline]
    pub fn handle_at(&self, pos: usize) -> u32 {
        self.handle_of(self.slots[pos])
    }

    /// Points the entry at `pos` at another handle of the same key.
    pub fn replace_at(&mut self, pos: usize, hash: u64, handle: u32) {
        self.slots[pos] = self.pack(self.tag(hash), handle);
    }

    /// Removes the entry at `pos`.
    pub fn remove_at(&mut self, pos: usize) {
        let next = if pos + 1 == self.slots.len() {
            0
        } else {
            pos + 1
        };
        // Nothing probes past an empty slot, so a run ending here can end sooner.
        if self.slots[next] == EMPTY {
            self.slots[pos] = EMPTY;
        } else {
            self.slots[pos] = DELETED;
            self.deleted += 1;
        }
        self.live -= 1;
    }

    /// Whether the next insert rebuilds the table.
    pub fn needs_rebuild(&self) -> bool {
        (self.live + self.deleted + 1) * 10 > self.slots.len() * MAX_LOAD_TENTHS
    }

    /// Inserts a handle for a key known to be absent. Call [`Index::rebuild`] first when
    /// [`Index::needs_rebuild`] says so.
    pub fn insert(&mut self, hash: u64, handle: u32) {
        debug_assert!(!self.needs_rebuild());
        let n = self.slots.len();
        let mut pos = self.start(hash);
        loop {
            let s = self.slots[pos];
            if s == EMPTY || s == DELETED {
                if s == DELETED {
                    self.deleted -= 1;
                }
                self.slots[pos] = self.pack(self.tag(hash), handle);
                self.live += 1;
                return;
            }
            pos += 1;
            if pos == n {
                pos = 0;
            }
        }
    }

    /// Rebuilds the table at a 3/4 load for one more item, re-hashing every item with
    /// `hash_of(handle)` (which reads the key from item memory).
    pub fn rebuild(&mut self, mut hash_of: impl FnMut(u32) -> u64) {
        let want = ((self.live + 1) * 4)
            .div_ceil(TARGET_LOAD_QUARTERS)
            .max(MIN_SLOTS);
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; want]);
        self.live = 0;
        self.deleted = 0;
        for s in old {
            if s != EMPTY && s != DELETED {
                let h = self.handle_of(s);
                self.insert(hash_of(h), h);
            }
        }
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
    fn insert_find_remove_and_grow_agree_with_a_map() {
        for bits in [20u32, 32] {
            let mut idx = Index::new(0, bits);
            let mut model: HashMap<u32, u64> = HashMap::new();
            for i in 2..5000u32 {
                let hash = h(u64::from(i));
                if idx.needs_rebuild() {
                    idx.rebuild(|hd| model[&hd]);
                }
                idx.insert(hash, i);
                model.insert(i, hash);
                if i % 3 == 0 {
                    let victim = i / 2;
                    if let Some(vh) = model.remove(&victim) {
                        let pos = idx.find(vh, |x| x == victim).unwrap();
                        idx.remove_at(pos);
                    }
                }
            }
            assert_eq!(idx.len(), model.len());
            for (&k, &hash) in &model {
                let pos = idx.find(hash, |x| x == k).expect("present");
                assert_eq!(idx.handle_at(pos), k);
            }
            assert!(idx.find(h(1), |x| x == 1).is_none());
            // Load stays between 0.75 and 0.9 after growth: about 4.4-5.3 bytes per item.
            let per_item = idx.bytes() as f64 / idx.len() as f64;
            assert!(per_item < 6.0, "{per_item}");
        }
    }
}
