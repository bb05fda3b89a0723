//! A shard's background work, driven by `Store::maintain()` with a bounded budget per call:
//! the crawler that reclaims expired and flushed items, index growth, and slab automove.

use super::{Dead, Shard, Shared, AGE_CLAMP};
use crate::clock::RelTime;
use crate::store::item;

/// Automove takes a class's last page only if nothing on it was used for longer than this, in
/// seconds, and than the items the receiving class evicts (see [`Shard::idle_class`]).
const MIN_IDLE_SECS: u32 = 2;

/// Pages [`Shard::idle_class`] may look through per `automove` call (each a read of up to a
/// page's chunk headers under the shard's lock).
const IDLE_SCAN_PAGES: usize = 8;

impl Shard {
    /// Crawls up to `budget` chunks, reclaiming expired and flushed items.
    pub fn crawl(&mut self, sh: &Shared, now: RelTime, budget: usize) {
        let mut left = budget;
        let nclasses = self.classes.len();
        let mut classes_seen = 0;
        while left > 0 && classes_seen <= nclasses {
            let cls = self.crawl_class % nclasses;
            let per_page = sh.classes.per_page(cls);
            if self.crawl_page >= self.classes[cls].pages.len() {
                self.crawl_class = (cls + 1) % nclasses;
                self.crawl_page = 0;
                self.crawl_slot = 0;
                classes_seen += 1;
                continue;
            }
            let page = self.classes[cls].pages[self.crawl_page];
            let slot = self.crawl_slot;
            self.crawl_slot += 1;
            if self.crawl_slot >= per_page {
                self.crawl_slot = 0;
                self.crawl_page += 1;
            }
            left -= 1;
            let Some((h, hd)) = self.head_in(sh, cls, page, slot) else {
                continue;
            };
            self.classes[cls].stats.crawler_items_checked += 1;
            if let Some(dead) = self.liveness(sh, &hd, now) {
                let st = &mut self.classes[cls].stats;
                st.crawler_reclaimed += 1;
                if dead == Dead::Expired && !hd.fetched() {
                    st.expired_unfetched += 1;
                }
                let pos = self.pos_of(sh, h);
                self.unlink(sh, pos, h, &hd);
            } else if hd.age(now) > AGE_CLAMP {
                // Access times are kept modulo 2^20 s: hold old ones at AGE_CLAMP so they
                // never wrap round to look recent.
                item::set_atime(self.chunk_mut(sh, h), now.wrapping_sub(AGE_CLAMP));
            }
        }
    }

    /// Moves up to `budget` slots of a growing index (background help for `maintain()`).
    pub fn migrate_index(&mut self, sh: &Shared, budget: usize) {
        let owner = &self.owner;
        self.index
            .migrate(budget, &mut |h| Self::hash_of(sh, owner, h));
    }

    /// Moves pages towards the classes that evict most (memcached's slab_automove): the class
    /// with the most evictions since the last call takes pages from a class that evicts at
    /// less than half its rate per page (or holds a page's worth of free chunks), and holds
    /// two pages or more, as memcached's mover requires. Failing that, it takes the last page
    /// of an idle class (see [`Shard::idle_class`]).
    pub fn automove(&mut self, sh: &Shared, max_moves: usize, now: RelTime) {
        let n = self.classes.len();
        let ev: Vec<u64> = self
            .classes
            .iter()
            .map(|c| c.stats.window_evictions)
            .collect();
        let Some(to) = (0..n).filter(|&c| ev[c] > 0).max_by_key(|&c| ev[c]) else {
            return;
        };
        let evict_age = self.classes[to].stats.window_evict_age;
        for c in self.classes.iter_mut() {
            c.stats.window_evictions = 0;
            c.stats.window_evict_age = 0;
        }
        let mut scans = IDLE_SCAN_PAGES;
        for _ in 0..max_moves {
            let to_pages = self.classes[to].pages.len().max(1) as u64;
            // Rate comparisons as cross products: ev[d] / pages[d] < ev[to] / pages[to] / 2.
            let donor = (0..n)
                .filter(|&d| d != to && self.classes[d].pages.len() >= 2)
                .filter(|&d| {
                    let dp = self.classes[d].pages.len() as u64;
                    let free =
                        self.classes[d].free + self.classes[d].free_end(sh.classes.per_page(d));
                    free >= sh.classes.per_page(d) as u64 || ev[d] * to_pages * 2 < ev[to] * dp
                })
                .max_by_key(|&d| {
                    let dp = self.classes[d].pages.len() as u64;
                    // Prefer the class evicting least per page, then the biggest.
                    (u64::MAX - ev[d] * 1024 / dp, dp)
                });
            let donor = donor.or_else(|| {
                let idle = evict_age.max(MIN_IDLE_SECS);
                self.idle_class(sh, to, &ev, idle, now, &mut scans)
            });
            let Some(from) = donor else { return };
            if !self.move_page(sh, from, to, now) {
                return;
            }
        }
    }

    /// A class other than `to` that holds one page, evicted nothing in the window, and whose
    /// live items were all last used more than `idle` seconds ago: taking its page loses only
    /// items older than those `to` is evicting (`idle` is the oldest of their ages). Without this, a shard
    /// whose classes hold one page each (64 pages per shard at `-m 64`, ~100 classes) could
    /// never give a class pages after the size mix shifted: the pages stayed with classes
    /// nobody used any more (calcification; `benches/soak.py` checks for it). A page in use,
    /// like that of the tail of an item being appended to, is never taken this way. Looks at
    /// `*scans` pages at most, going on from where the last search stopped.
    fn idle_class(
        &mut self,
        sh: &Shared,
        to: usize,
        ev: &[u64],
        idle: u32,
        now: RelTime,
        scans: &mut usize,
    ) -> Option<usize> {
        let n = self.classes.len();
        for i in 0..n {
            if *scans == 0 {
                return None;
            }
            let d = (self.idle_cursor + i) % n;
            if d == to || ev[d] != 0 || self.classes[d].pages.len() != 1 {
                continue;
            }
            *scans -= 1;
            let page = self.classes[d].pages[0];
            if self.page_idle_for(sh, d, page, now) > idle {
                self.idle_cursor = (d + 1) % n;
                return Some(d);
            }
        }
        None
    }

    /// Pages this shard holds.
    pub fn page_count(&self) -> usize {
        self.classes.iter().map(|c| c.pages.len()).sum()
    }
}
