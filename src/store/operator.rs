//! The store's side of the operator commands: the crawler switch and the crawl that
//! `lru_crawler crawl` requests, `lru_crawler metadump`, `slabs reassign`, the automove mode,
//! and `cache_memlimit` (growing and shrinking the page budget while the store runs).
//!
//! The store reports in its own terms (0-based classes, relative times); the server turns
//! them into memcached's replies.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use parking_lot::Mutex;

use super::arena::PAGE_SIZE;
use super::shard::{DumpItem, WalkPos};
use super::Store;

/// Chunks a metadump or a requested crawl looks at per shard lock.
const WALK_STEP: usize = 4096;

/// Pages given back per `maintain()` call while the store is over a lowered limit.
const RELEASE_PAGES_PER_TICK: usize = 64;

/// Runtime switches and the crawl in progress.
#[derive(Debug)]
pub(super) struct Controls {
    /// The background crawler runs (`lru_crawler enable|disable`).
    crawler: AtomicBool,
    /// `slabs automove`'s mode: 0 off, 1 and 2 on (tern's mover has one speed).
    automove: AtomicU8,
    /// A requested crawl: the classes and each shard's position. `None` when none runs.
    crawl: Mutex<Option<RequestedCrawl>>,
    /// Mirrors `crawl.is_some()` for `stats` without taking the lock.
    crawl_running: AtomicBool,
    /// Items are counted by size (`stats sizes_enable`, `-o track_sizes`; `sizes.rs`).
    pub(super) size_tracking: AtomicBool,
}

#[derive(Debug)]
struct RequestedCrawl {
    wanted: Vec<bool>,
    positions: Vec<Option<WalkPos>>,
}

impl Controls {
    pub(super) fn new(crawler: bool, automove: bool) -> Controls {
        Controls {
            crawler: AtomicBool::new(crawler),
            automove: AtomicU8::new(u8::from(automove)),
            crawl: Mutex::new(None),
            crawl_running: AtomicBool::new(false),
            size_tracking: AtomicBool::new(false),
        }
    }
}

/// Which classes an operator command names, in the store's 0-based numbering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classes {
    /// Every class.
    All,
    /// These classes (0-based).
    Some(Vec<usize>),
}

/// Why a requested crawl did not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrawlRefusal {
    /// The crawler is disabled.
    Disabled,
    /// A crawl is already running.
    Busy,
    /// No class was named.
    NothingToCrawl,
}

/// What `slabs reassign` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReassignOutcome {
    /// A page moved.
    Moved,
    /// Source and destination are the same.
    Same,
    /// A class id out of range.
    BadClass,
    /// The source has no page to spare (memcached: fewer than two pages; the global pool:
    /// no free page).
    NoSpare,
}

/// Where a metadump stands between calls.
#[derive(Debug, Clone, Default)]
pub struct DumpCursor {
    shard: usize,
    pos: WalkPos,
}

impl Store {
    /// Slab classes, numbered 1..=this by the operator commands.
    pub fn class_count(&self) -> usize {
        self.shared.classes.len()
    }

    /// Whether the background crawler runs.
    pub fn crawler_enabled(&self) -> bool {
        self.controls.crawler.load(Ordering::Relaxed)
    }

    /// Turns the background crawler on or off; returns whether it changed.
    pub fn set_crawler(&self, on: bool) -> bool {
        self.controls.crawler.swap(on, Ordering::Relaxed) != on
    }

    /// Whether a requested crawl is running (`stats` `lru_crawler_running`).
    pub fn crawl_running(&self) -> bool {
        self.controls.crawl_running.load(Ordering::Relaxed)
    }

    /// The automove mode (0 off).
    pub fn automove(&self) -> u8 {
        self.controls.automove.load(Ordering::Relaxed)
    }

    /// Sets the automove mode (0 off, 1 or 2 on).
    pub fn set_automove(&self, mode: u8) {
        self.controls.automove.store(mode, Ordering::Relaxed);
    }

    /// Starts a crawl of `classes` that reclaims their expired and flushed items; the timer's
    /// `maintain()` carries it out in bounded steps.
    pub fn request_crawl(&self, classes: &Classes) -> Result<(), CrawlRefusal> {
        if !self.crawler_enabled() {
            return Err(CrawlRefusal::Disabled);
        }
        let wanted = self.wanted(classes);
        if !wanted.contains(&true) {
            return Err(CrawlRefusal::NothingToCrawl);
        }
        let mut crawl = self.controls.crawl.lock();
        if crawl.is_some() {
            return Err(CrawlRefusal::Busy);
        }
        *crawl = Some(RequestedCrawl {
            wanted,
            positions: vec![Some(WalkPos::default()); self.shared.shards.len()],
        });
        self.controls.crawl_running.store(true, Ordering::Relaxed);
        Ok(())
    }

    fn wanted(&self, classes: &Classes) -> Vec<bool> {
        let n = self.class_count();
        match classes {
            Classes::All => vec![true; n],
            Classes::Some(ids) => {
                let mut w = vec![false; n];
                for &id in ids {
                    if id < n {
                        w[id] = true;
                    }
                }
                w
            }
        }
    }

    /// One `maintain()` step of a requested crawl.
    pub(super) fn step_requested_crawl(&self) {
        let mut guard = self.controls.crawl.lock();
        let Some(crawl) = guard.as_mut() else { return };
        let now = self.clock.now();
        for (i, s) in self.shared.shards.iter().enumerate() {
            let Some(pos) = crawl.positions[i].as_mut() else {
                continue;
            };
            // A few steps per tick, each under the lock for at most WALK_STEP chunks.
            for _ in 0..16 {
                let mut shard = s.0.lock();
                shard.sync_flush(&self.shared, now);
                if shard.crawl_classes(&self.shared, now, &crawl.wanted, pos, WALK_STEP) {
                    crawl.positions[i] = None;
                    break;
                }
            }
        }
        if crawl.positions.iter().all(Option::is_none) {
            *guard = None;
            self.controls.crawl_running.store(false, Ordering::Relaxed);
        }
    }

    /// Continues a metadump of `classes` from `cursor`, handing each live item to `emit`, for
    /// up to one shard lock of [`WALK_STEP`] chunks. Returns whether the dump is complete;
    /// call again (once the output has drained) until it is.
    pub fn metadump(
        &self,
        classes: &Classes,
        cursor: &mut DumpCursor,
        emit: &mut dyn FnMut(&DumpItem<'_>),
    ) -> bool {
        let wanted = self.wanted(classes);
        let now = self.clock.now();
        let Some(s) = self.shared.shards.get(cursor.shard) else {
            return true;
        };
        let mut shard = s.0.lock();
        shard.sync_flush(&self.shared, now);
        if shard.dump(&self.shared, now, &wanted, &mut cursor.pos, WALK_STEP, emit) {
            cursor.shard += 1;
            cursor.pos = WalkPos::default();
        }
        cursor.shard >= self.shared.shards.len()
    }

    /// `slabs reassign <src> <dst>` with memcached's 1-based class ids (0: the global page
    /// pool, -1 for `src`: the class with the most pages). Moves one page now.
    pub fn reassign(&self, src: i32, dst: i32) -> ReassignOutcome {
        if src == dst {
            return ReassignOutcome::Same;
        }
        let n = self.class_count() as i32;
        let src = if src == -1 {
            self.busiest_class(dst).map_or(-1, |c| c as i32 + 1)
        } else {
            src
        };
        if !(0..=n).contains(&src) || !(0..=n).contains(&dst) {
            return ReassignOutcome::BadClass;
        }
        let moved = match (src, dst) {
            (0, _) => self.pool_to_class(dst as usize - 1),
            (_, 0) => self.class_to_pool(src as usize - 1),
            _ => self.class_to_class(src as usize - 1, dst as usize - 1),
        };
        if moved {
            ReassignOutcome::Moved
        } else {
            ReassignOutcome::NoSpare
        }
    }

    fn class_pages(&self, cls: usize) -> Vec<usize> {
        self.shared
            .shards
            .iter()
            .map(|s| s.0.lock().classes[cls].pages.len())
            .collect()
    }

    fn busiest_class(&self, not: i32) -> Option<usize> {
        (0..self.class_count())
            .filter(|&c| c as i32 + 1 != not)
            .map(|c| (c, self.class_pages(c).iter().sum::<usize>()))
            .filter(|&(_, p)| p > 0)
            .max_by_key(|&(_, p)| p)
            .map(|(c, _)| c)
    }

    /// The shard holding the most pages of `cls`, when the class has two pages or more.
    fn donor_shard(&self, cls: usize) -> Option<usize> {
        let pages = self.class_pages(cls);
        if pages.iter().sum::<usize>() < 2 {
            return None;
        }
        (0..pages.len())
            .filter(|&i| pages[i] > 0)
            .max_by_key(|&i| pages[i])
    }

    fn class_to_class(&self, from: usize, to: usize) -> bool {
        let Some(i) = self.donor_shard(from) else {
            return false;
        };
        self.shared.shards[i]
            .0
            .lock()
            .move_page(&self.shared, from, to, self.clock.now())
    }

    fn class_to_pool(&self, from: usize) -> bool {
        let Some(i) = self.donor_shard(from) else {
            return false;
        };
        self.shared.shards[i]
            .0
            .lock()
            .release_page(&self.shared, from, self.clock.now())
    }

    fn pool_to_class(&self, to: usize) -> bool {
        // The shard holding the fewest pages of the class gets it.
        let pages = self.class_pages(to);
        let i = (0..pages.len()).min_by_key(|&i| pages[i]).unwrap_or(0);
        self.shared.shards[i].0.lock().adopt_page(&self.shared, to)
    }

    /// The memory limit in bytes now.
    pub fn memory_limit(&self) -> usize {
        self.shared.arena.limit() as usize * PAGE_SIZE
    }

    /// The largest limit the store can grow to (its reservation), in bytes.
    pub fn memory_capacity(&self) -> usize {
        self.shared.arena.capacity() as usize * PAGE_SIZE
    }

    /// Sets the memory limit (`cache_memlimit`). Growing takes effect at once; shrinking
    /// stops new pages being taken and `maintain()` gives back pages over the new limit,
    /// evicting what they hold, a few each second. Returns false when `bytes` is over the
    /// reservation made at start-up or under one page.
    pub fn set_memory_limit(&self, bytes: usize) -> bool {
        let pages = bytes / PAGE_SIZE;
        if pages == 0 || pages > self.shared.arena.capacity() as usize {
            return false;
        }
        self.shared.arena.set_limit(pages as u32);
        true
    }

    /// One `maintain()` step of shrinking to a lowered limit.
    pub(super) fn release_over_limit(&self) {
        let arena = &self.shared.arena;
        for _ in 0..RELEASE_PAGES_PER_TICK {
            if arena.pages_in_use() <= arena.limit() {
                return;
            }
            // The largest class of the shard with the most pages gives one back.
            let mut best: Option<(usize, usize, usize)> = None;
            for (i, s) in self.shared.shards.iter().enumerate() {
                let s = s.0.lock();
                for (c, class) in s.classes.iter().enumerate() {
                    let p = class.pages.len();
                    if p > 0 && best.map_or(true, |(_, _, bp)| p > bp) {
                        best = Some((i, c, p));
                    }
                }
            }
            let Some((i, c, _)) = best else { return };
            let now = self.clock.now();
            if !self.shared.shards[i]
                .0
                .lock()
                .release_page(&self.shared, c, now)
            {
                return;
            }
        }
    }
}
