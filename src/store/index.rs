//! One shard's hash index: key hash -> item handle, kept outside item memory.
//!
//! Open addressing with linear probing over `u32` slots. A slot packs the item handle (page and
//! chunk number, `handle_bits` wide) with as many bits of the key's hash as are left (the tag),
//! so most probes that are not the key are rejected without touching item memory. 0 is an empty
//! slot and 1 a deleted one (handles are never 0 or 1: page 0 is never used). The table size is
//! not a power of two (the start slot is `hash * len >> 32`, "fastrange"), so it grows by about
//! 1.2x, not 2x, and costs 4 bytes / load, i.e. 4.4-5.3 bytes per item at a load between 0.75
//! and 0.9.
//!
//! Growing is incremental: a full table becomes the "old" table, a bigger one is started, and
//! every insert moves a few old slots over (as does `maintain()`); lookups try the new table
//! and then the old one. No request waits for more than [`MIGRATE_PER_INSERT`] slots to move.

const EMPTY: u32 = 0;
const DELETED: u32 = 1;
/// Grow (or clean deleted slots) above this load, in tenths.
const MAX_LOAD_TENTHS: usize = 9;
/// Size a new table for this load, in quarters.
const TARGET_LOAD_QUARTERS: usize = 3;
/// The smallest table.
const MIN_SLOTS: usize = 64;
/// Old slots moved per insert while growing: the old table (at most live / 0.75 slots) is
/// empty after live / 24 inserts, long before the new one (sized live / 0.75) fills to 0.9.
pub const MIGRATE_PER_INSERT: usize = 32;
/// Marks a position in the old table.
const OLD: usize = 1 << (usize::BITS - 1);

/// One open-addressing table.
#[derive(Debug)]
struct Table {
    slots: Vec<u32>,
    /// Occupied plus deleted slots.
    used: usize,
}

impl Table {
    fn new(len: usize) -> Table {
        Table {
            slots: vec![EMPTY; len.max(MIN_SLOTS)],
            used: 0,
        }
    }

    #[inline]
    fn start(&self, hash: u64) -> usize {
        (((hash >> 32) * self.slots.len() as u64) >> 32) as usize
    }
}

/// A shard's index.
#[derive(Debug)]
pub struct Index {
    cur: Table,
    /// The table being emptied into `cur`, and the next slot to move.
    old: Option<(Table, usize)>,
    live: usize,
    handle_bits: u32,
    tag_bits: u32,
}

impl Index {
    /// An index of about `slots` slots for handles `handle_bits` wide.
    pub fn new(slots: usize, handle_bits: u32) -> Index {
        debug_assert!(handle_bits <= 32);
        Index {
            cur: Table::new(slots),
            old: None,
            live: 0,
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

    /// Slots in the tables.
    pub fn capacity(&self) -> usize {
        self.cur.slots.len() + self.old.as_ref().map_or(0, |(t, _)| t.slots.len())
    }

    /// Bytes the tables take.
    pub fn bytes(&self) -> usize {
        4 * (self.cur.slots.capacity() + self.old.as_ref().map_or(0, |(t, _)| t.slots.capacity()))
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

    #[inline]
    fn find_in(&self, t: &Table, hash: u64, is_key: &mut impl FnMut(u32) -> bool) -> Option<usize> {
        let n = t.slots.len();
        let tag = self.tag(hash);
        let mut pos = t.start(hash);
        loop {
            let s = t.slots[pos];
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
                .slots[pos & !OLD]
        } else {
            self.cur.slots[pos]
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
        t.slots[p] = v;
    }

    /// Removes the entry at `pos`.
    pub fn remove_at(&mut self, pos: usize) {
        let (t, p) = self.table_mut(pos);
        remove_slot(t, p);
        self.live -= 1;
    }

    /// Inserts a handle for a key known to be absent; `hash_of(handle)` re-hashes an indexed
    /// item (reading its key) when entries move to a bigger table.
    pub fn insert(&mut self, hash: u64, handle: u32, mut hash_of: impl FnMut(u32) -> u64) {
        if self.old.is_some() {
            self.migrate(MIGRATE_PER_INSERT, &mut hash_of);
        }
        if (self.cur.used + 1) * 10 > self.cur.slots.len() * MAX_LOAD_TENTHS {
            // Rare: a previous growth is not finished yet; finish it first.
            let all = self.old.as_ref().map_or(0, |(t, _)| t.slots.len());
            self.migrate(all, &mut hash_of);
            let want = ((self.live + 1) * 4).div_ceil(TARGET_LOAD_QUARTERS);
            let old = std::mem::replace(&mut self.cur, Table::new(want));
            self.old = Some((old, 0));
            self.migrate(MIGRATE_PER_INSERT, &mut hash_of);
        }
        let v = self.pack(self.tag(hash), handle);
        put(&mut self.cur, hash, v);
        self.live += 1;
    }

    /// Moves up to `budget` old slots into the current table. Returns whether an old table
    /// remains.
    pub fn migrate(&mut self, budget: usize, hash_of: &mut impl FnMut(u32) -> u64) -> bool {
        let Some((mut old, mut next)) = self.old.take() else {
            return false;
        };
        let end = (next + budget).min(old.slots.len());
        while next < end {
            let s = old.slots[next];
            if s != EMPTY && s != DELETED {
                let h = self.handle_of(s);
                let hash = hash_of(h);
                let v = self.pack(self.tag(hash), h);
                put(&mut self.cur, hash, v);
                // Leave a deleted mark so probes for keys further along still pass.
                old.slots[next] = DELETED;
            }
            next += 1;
        }
        if next < old.slots.len() {
            self.old = Some((old, next));
            true
        } else {
            false
        }
    }
}

fn put(t: &mut Table, hash: u64, v: u32) {
    let n = t.slots.len();
    let mut pos = t.start(hash);
    loop {
        let s = t.slots[pos];
        if s == EMPTY || s == DELETED {
            if s == EMPTY {
                t.used += 1;
            }
            t.slots[pos] = v;
            return;
        }
        pos += 1;
        if pos == n {
            pos = 0;
        }
    }
}

fn remove_slot(t: &mut Table, pos: usize) {
    let next = if pos + 1 == t.slots.len() { 0 } else { pos + 1 };
    // Nothing probes past an empty slot, so a run ending here can end sooner.
    if t.slots[next] == EMPTY {
        t.slots[pos] = EMPTY;
        t.used -= 1;
    } else {
        t.slots[pos] = DELETED;
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
            let mut saw_expanding = false;
            for i in 2..50_000u32 {
                let hash = h(u64::from(i));
                let m = &model;
                idx.insert(hash, i, |hd| m[&hd]);
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
            // Load stays between 0.75 and 0.9 once grown: about 4.4-5.3 bytes per item.
            let per_item = idx.bytes() as f64 / idx.len() as f64;
            assert!(per_item < 6.0, "{per_item}");
        }
    }
}
