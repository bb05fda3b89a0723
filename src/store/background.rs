//! Store-wide work outside the item operations: `flush_all` and the once-a-second
//! `maintain()` (crawler, index growth, automove).

use std::sync::atomic::Ordering;

use super::{Store, AUTOMOVE_PAGES_PER_TICK, CRAWL_BUDGET, INDEX_MIGRATE_PER_TICK};

impl Store {
    /// Invalidates every item stored before the moment `delay` names (memcached's exptime rules;
    /// 0 or negative means now). Cheap: it moves a watermark; each shard applies it on its next
    /// use and the crawler reclaims the memory.
    pub fn flush_all(&self, delay: i64) {
        let now = self.clock.now();
        // memcached 1.6.18's cut-off: with CAS on, the flush moment is one second before the
        // one `delay` names (`oldest_live = realtime(delay) - 1`), so `flush_all 1` flushes at
        // once; with -C it is the named second itself.
        let at = if delay <= 0 {
            0
        } else if self.config.cas_enabled {
            self.clock.realtime(delay).saturating_sub(1)
        } else {
            self.clock.realtime(delay)
        };
        let immediate = at <= now;
        let at = if immediate { 0 } else { at };
        // A flush whose moment has passed takes effect everywhere before a new one replaces
        // it. (memcached 1.6.18 overwrites `oldest_live`, so items nobody touched since the
        // earlier moment become visible again until the new one; tern does not resurrect.)
        if now >= self.shared.flush_at.load(Ordering::Acquire) as u32 {
            for s in self.shared.shards.iter() {
                s.0.lock().sync_flush(&self.shared, now);
            }
        }
        let _ = self
            .shared
            .flush_at
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                let gen = (v >> 32).wrapping_add(1) & 0xFFFF_FFFF;
                Some((gen << 32) | u64::from(at))
            });
        if immediate {
            for s in self.shared.shards.iter() {
                s.0.lock().sync_flush(&self.shared, now);
            }
        }
    }

    /// Runs background maintenance for about one tick: reclaims expired items, moves pages
    /// between classes. The server calls it from its timer thread once a second.
    pub fn maintain(&self) {
        let now = self.clock.now();
        for s in self.shared.shards.iter() {
            let mut s = s.0.lock();
            s.sync_flush(&self.shared, now);
            s.migrate_index(&self.shared, INDEX_MIGRATE_PER_TICK);
            if self.crawler_enabled() {
                s.crawl(&self.shared, now, CRAWL_BUDGET);
            }
            if self.automove() != 0 && self.config.evict {
                let max = (s.page_count() / 64).max(AUTOMOVE_PAGES_PER_TICK);
                s.automove(&self.shared, max, now);
            }
        }
        self.step_requested_crawl();
        self.release_over_limit();
    }
}
