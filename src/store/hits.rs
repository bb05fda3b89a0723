//! The per-class hit counters of `stats slabs` (`get_hits`, `touch_hits`), one row per thread.
//!
//! Every get hit bumps one of them. Kept with the shard's class stats, the bump wrote a cache line
//! of the shard that the next thread to lock the shard, on another core, had to fetch back: one
//! more line moving between cores per get, on top of the lock's (issue 15; docs/performance.md,
//! "Scaling with cores", measures it). Here a thread takes a row of its own the first time it
//! counts a hit, and only ever writes that row, so the bump stays in its core's cache.
//!
//! A row has one writer for the life of the process: rows are handed out from a process-wide
//! count, never reused, so the bump is a relaxed load and store, as the server's per-worker
//! counters are. Threads beyond [`ROWS`] get no row and count under the shard lock instead (a
//! test process that spawns many threads stays correct, only the first threads are faster).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Rows per store: more than the worker threads of any configuration tern is run with.
pub const ROWS: usize = 64;

/// Counters per class in a row.
const KINDS: usize = 2;

/// Bytes a row is padded to: two cache lines, as crossbeam's `CachePadded` does on x86-64,
/// whose prefetcher fetches lines in pairs.
const ROW_ALIGN: usize = 128;

/// Which counter.
#[derive(Debug, Clone, Copy)]
pub enum Hit {
    Get = 0,
    Touch = 1,
}

/// The next row to hand out (rows at or past [`ROWS`] do not exist).
static NEXT_ROW: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// The current thread's row, `usize::MAX` before its first hit.
    static ROW: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// This thread's row, or `None` when every row is taken.
#[inline]
fn my_row() -> Option<usize> {
    ROW.with(|r| {
        let mut row = r.get();
        if row == usize::MAX {
            row = NEXT_ROW.fetch_add(1, Ordering::Relaxed);
            r.set(row);
        }
        (row < ROWS).then_some(row)
    })
}

/// Hit counters of every class, one padded row per thread.
#[derive(Debug)]
pub struct Hits {
    cells: Box<[AtomicU64]>,
    /// Index of row 0 in `cells` (rows start on a [`ROW_ALIGN`] boundary).
    start: usize,
    /// Counters per row, padding included.
    stride: usize,
}

impl Hits {
    /// Counters for `classes` slab classes.
    pub fn new(classes: usize) -> Hits {
        let per_align = ROW_ALIGN / std::mem::size_of::<AtomicU64>();
        let stride = (classes * KINDS).div_ceil(per_align) * per_align;
        let cells: Box<[AtomicU64]> = (0..stride * ROWS + per_align)
            .map(|_| AtomicU64::new(0))
            .collect();
        let misalign = cells.as_ptr() as usize % ROW_ALIGN;
        let start = (ROW_ALIGN - misalign) % ROW_ALIGN / std::mem::size_of::<AtomicU64>();
        Hits {
            cells,
            start,
            stride,
        }
    }

    /// Counts a hit of `kind` in class `cls` in this thread's row; `false` when the thread has
    /// no row (the caller counts it elsewhere).
    #[inline]
    pub fn bump(&self, cls: usize, kind: Hit) -> bool {
        let Some(row) = my_row() else {
            return false;
        };
        let c = &self.cells[self.start + row * self.stride + cls * KINDS + kind as usize];
        // One writer per row (see the module docs): no update is lost without a locked add.
        c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        true
    }

    /// The hits of `kind` in class `cls`, summed over the rows.
    pub fn sum(&self, cls: usize, kind: Hit) -> u64 {
        (0..ROWS)
            .map(|row| {
                self.cells[self.start + row * self.stride + cls * KINDS + kind as usize]
                    .load(Ordering::Relaxed)
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hit_is_counted_once_with_or_without_a_row_and_rows_are_padded() {
        let h = Hits::new(3);
        assert_eq!(h.stride * 8 % ROW_ALIGN, 0);
        assert_eq!(h.cells[h.start..].as_ptr() as usize % ROW_ALIGN, 0);
        // Hits of threads without a row, counted by the caller as the store does.
        let elsewhere = AtomicU64::new(0);
        std::thread::scope(|s| {
            for t in 0..(ROWS + 8) {
                let (h, elsewhere) = (&h, &elsewhere);
                s.spawn(move || {
                    for _ in 0..100 {
                        if !h.bump(2, Hit::Get) {
                            elsewhere.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    if t % 2 == 0 && !h.bump(0, Hit::Touch) {
                        elsewhere.fetch_add(1_000_000, Ordering::Relaxed);
                    }
                });
            }
        });
        let e = elsewhere.load(Ordering::Relaxed);
        // More threads than rows ran: some counted elsewhere.
        assert!(e > 0);
        assert_eq!(h.sum(2, Hit::Get) + e % 1_000_000, (ROWS as u64 + 8) * 100);
        assert_eq!(h.sum(0, Hit::Touch) + e / 1_000_000, (ROWS as u64 + 8) / 2);
        assert_eq!(h.sum(1, Hit::Get) + h.sum(2, Hit::Touch), 0);
    }
}
