//! `stats sizes`: live items by total size in 32-byte steps (memcached's `-o track_sizes`,
//! `stats sizes_enable` / `sizes_disable`).
//!
//! Each shard keeps its own histogram under its lock, so counting costs a store one array
//! increment under the lock it already holds, and nothing when tracking is off. As in memcached,
//! tracking switched on while the store runs counts only items stored from then on: a shard
//! remembers the first sequence number it will hand out, and items with an older one are
//! neither added nor removed. An item's size is its header, key and value (`mem_requested`'s
//! measure), so the figures are tern's, not memcached's `ITEM_ntotal`: they are what tern's
//! slab classes hold.

use std::sync::atomic::Ordering;

use super::Store;

/// Bytes per histogram bucket (memcached's granularity).
const STEP: usize = 32;

/// One shard's histogram.
#[derive(Debug)]
pub struct SizeHist {
    /// Items with an older sequence number were stored before tracking began.
    seq_min: u64,
    /// Live items whose size rounds up to `i * STEP` bytes, for each `i`.
    counts: Box<[u32]>,
}

impl SizeHist {
    /// An empty histogram with room for items up to `item_size_max` bytes, counting those with
    /// a sequence number from `seq_min` on.
    pub fn new(seq_min: u64, item_size_max: usize) -> SizeHist {
        SizeHist {
            seq_min,
            counts: vec![0; item_size_max / STEP + 1].into_boxed_slice(),
        }
    }

    /// The bucket of an item of `total` bytes, if tracked.
    fn bucket(&mut self, seq: u64, total: u64) -> Option<&mut u32> {
        if seq < self.seq_min {
            return None;
        }
        let i = usize::try_from(total).ok()?.div_ceil(STEP);
        self.counts.get_mut(i)
    }

    /// An item of `total` bytes with sequence number `seq` was linked.
    pub fn add(&mut self, seq: u64, total: u64) {
        if let Some(c) = self.bucket(seq, total) {
            *c += 1;
        }
    }

    /// An item of `total` bytes with sequence number `seq` was unlinked.
    pub fn remove(&mut self, seq: u64, total: u64) {
        if let Some(c) = self.bucket(seq, total) {
            *c = c.saturating_sub(1);
        }
    }
}

impl Store {
    /// `stats sizes_enable`: starts counting items by size, from the items stored next on;
    /// false (nothing changes) when items carry no CAS (`-C`), as memcached refuses then.
    pub fn enable_size_tracking(&self) -> bool {
        if !self.shared.cas_enabled {
            return false;
        }
        self.start_size_tracking(false);
        true
    }

    /// Starts tracking; `everything` counts every item from now on whatever its sequence number
    /// (`-o track_sizes` at start-up, when the store is empty; with `-C` too).
    pub(super) fn start_size_tracking(&self, everything: bool) {
        let max = self.config.item_size_max;
        for s in self.shared.shards.iter() {
            s.0.lock().start_sizes(max, everything);
        }
        self.controls.size_tracking.store(true, Ordering::Release);
    }

    /// `stats sizes_disable`: stops counting and forgets the counts.
    pub fn disable_size_tracking(&self) {
        self.controls.size_tracking.store(false, Ordering::Release);
        for s in self.shared.shards.iter() {
            s.0.lock().sizes = None;
        }
    }

    /// Whether items are counted by size (`stats settings`' `track_sizes`).
    pub fn size_tracking(&self) -> bool {
        self.controls.size_tracking.load(Ordering::Acquire)
    }

    /// `stats sizes` lines: `<size> <count>` for each 32-byte step holding items (the size
    /// rounded up), smallest first; `sizes_status disabled` when not tracking, as memcached.
    pub fn stats_sizes(&self) -> Vec<(String, String)> {
        if !self.size_tracking() {
            return vec![("sizes_status".into(), "disabled".into())];
        }
        let mut sum: Vec<u64> = Vec::new();
        for s in self.shared.shards.iter() {
            let s = s.0.lock();
            if let Some(h) = &s.sizes {
                sum.resize(sum.len().max(h.counts.len()), 0);
                for (total, &c) in sum.iter_mut().zip(h.counts.iter()) {
                    *total += u64::from(c);
                }
            }
        }
        sum.iter()
            .enumerate()
            .filter(|(_, &c)| c != 0)
            .map(|(i, c)| ((i * STEP).to_string(), c.to_string()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_up_to_32_bytes_and_skip_older_items() {
        let mut h = SizeHist::new(10, 1024);
        h.add(10, 61);
        h.add(11, 64);
        h.add(12, 65);
        h.add(9, 61); // stored before tracking began
        h.add(13, 5000); // over the largest item: not counted
        assert_eq!((h.counts[2], h.counts[3]), (2, 1));
        h.remove(9, 61);
        h.remove(10, 61);
        assert_eq!(h.counts[2], 1);
        assert_eq!(h.counts.iter().map(|&c| u64::from(c)).sum::<u64>(), 2);
    }
}
