//! Walks over a shard's items for the operator commands, in bounded steps: the crawl that
//! `lru_crawler crawl <classes>` asks for, `lru_crawler metadump`, and giving pages back to
//! the arena when `cache_memlimit` shrinks the limit. A walk resumes from a [`WalkPos`], so a
//! caller holds the shard lock for at most `budget` chunks at a time; pages that move between
//! steps may be skipped or seen twice, as memcached's crawler may skip or repeat items that
//! move while it walks its LRUs.

use super::{Shard, Shared};
use crate::clock::RelTime;
use crate::store::item::Header;

/// Where a walk over a shard's classes stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalkPos {
    class: usize,
    page: usize,
    slot: usize,
}

/// One live item as `lru_crawler metadump` reports it.
#[derive(Debug, Clone, Copy)]
pub struct DumpItem<'a> {
    /// The key.
    pub key: &'a [u8],
    /// Expiry as relative time (0: never).
    pub exptime: RelTime,
    /// Seconds since the last access.
    pub age: u32,
    /// The CAS unique.
    pub cas: u64,
    /// Whether it has been read.
    pub fetched: bool,
    /// Its slab class (0-based).
    pub class: usize,
    /// Bytes the item takes (header, key and value).
    pub size: usize,
}

impl Shard {
    /// Visits up to `budget` chunks of the classes `wanted` selects, from `pos`, calling
    /// `visit` with each head chunk's handle and header. Returns whether the walk is done.
    fn walk(
        &mut self,
        sh: &Shared,
        wanted: &[bool],
        pos: &mut WalkPos,
        budget: usize,
        visit: &mut dyn FnMut(&mut Shard, u32, &Header),
    ) -> bool {
        let mut left = budget;
        while pos.class < self.classes.len() {
            if !wanted.get(pos.class).copied().unwrap_or(false)
                || pos.page >= self.classes[pos.class].pages.len()
            {
                *pos = WalkPos {
                    class: pos.class + 1,
                    ..WalkPos::default()
                };
                continue;
            }
            if left == 0 {
                return false;
            }
            left -= 1;
            let cls = pos.class;
            let per_page = sh.classes.per_page(cls);
            let page = self.classes[cls].pages[pos.page];
            let slot = pos.slot;
            pos.slot += 1;
            if pos.slot >= per_page {
                pos.slot = 0;
                pos.page += 1;
            }
            if let Some((h, hd)) = self.head_in(sh, cls, page, slot) {
                visit(self, h, &hd);
            }
        }
        true
    }

    /// The crawl `lru_crawler crawl` asks for: reclaims the expired and flushed items of the
    /// `wanted` classes, up to `budget` chunks from `pos`. Returns whether it is done.
    pub fn crawl_classes(
        &mut self,
        sh: &Shared,
        now: RelTime,
        wanted: &[bool],
        pos: &mut WalkPos,
        budget: usize,
    ) -> bool {
        self.walk(sh, wanted, pos, budget, &mut |s, h, hd| {
            let cls = sh.class_of(h);
            s.classes[cls].stats.crawler_items_checked += 1;
            if let Some(dead) = s.liveness(sh, hd, now) {
                let st = &mut s.classes[cls].stats;
                st.crawler_reclaimed += 1;
                if dead == super::Dead::Expired && !hd.fetched() {
                    st.expired_unfetched += 1;
                }
                let pos = s.pos_of(sh, h);
                s.unlink(sh, pos, h, hd);
            }
        })
    }

    /// `lru_crawler metadump`: hands every live item of the `wanted` classes to `emit`, up to
    /// `budget` chunks from `pos`. Expired and flushed items are left out, as memcached does.
    /// Returns whether it is done.
    pub fn dump(
        &mut self,
        sh: &Shared,
        now: RelTime,
        wanted: &[bool],
        pos: &mut WalkPos,
        budget: usize,
        emit: &mut dyn FnMut(&DumpItem<'_>),
    ) -> bool {
        self.walk(sh, wanted, pos, budget, &mut |s, h, hd| {
            if s.liveness(sh, hd, now).is_some() {
                return;
            }
            let chunk = s.chunk(sh, h);
            emit(&DumpItem {
                key: &chunk[hd.key_off..hd.key_off + hd.key_len],
                exptime: hd.exptime,
                age: hd.age(now),
                cas: sh.cas_of(hd.seq, s.id),
                fetched: hd.fetched(),
                class: sh.class_of(h),
                size: hd.total(),
            });
        })
    }

    /// Empties one page of `cls` (evicting what it holds) and gives it back to the arena's
    /// pool. Returns whether it did (the class may have no page that is not in use).
    pub fn release_page(&mut self, sh: &Shared, cls: usize, now: RelTime) -> bool {
        let n = self.classes[cls].pages.len();
        let idx = (0..n).find(|&i| !self.page_is_pinned(sh, cls, self.classes[cls].pages[i]));
        let Some(idx) = idx else { return false };
        let page = self.evacuate(sh, cls, idx, now);
        sh.arena.give_page(page, &mut self.owner);
        self.counters.slabs_moved += 1;
        true
    }

    /// Takes a page given back to the arena's pool earlier for class `cls`. Returns whether
    /// there was one.
    pub fn adopt_page(&mut self, sh: &Shared, cls: usize) -> bool {
        let Some(page) = sh.arena.take_returned_page(cls, &mut self.owner) else {
            return false;
        };
        self.attach_page(sh, cls, page);
        self.counters.slabs_moved += 1;
        true
    }
}
