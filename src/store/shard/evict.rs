//! Making room in a shard: the CLOCK hand of a class, and moving whole pages between classes
//! (the emergency move when a class has nothing to evict, and automove's moves).

use super::{Dead, Shard, Shared, MAX_SPARED};
use crate::clock::RelTime;
use crate::store::item::{self, KEY_CONT, KEY_FREE};

impl Shard {
    /// Runs the CLOCK hand of class `cls` until one item is evicted or reclaimed.
    ///
    /// The hand weighs a continuation chunk by its item: evicting the item frees the chunk.
    /// Without that, a class holding only the tails of chained items (the last part of a large
    /// value goes to the smallest class that fits it) could never make room, and each of its
    /// allocations took a whole page from another class, evicting everything on it.
    pub(super) fn evict_one(&mut self, sh: &Shared, cls: usize, now: RelTime) -> bool {
        let per_page = sh.classes.per_page(cls);
        let npages = self.classes[cls].pages.len();
        if npages == 0 {
            return false;
        }
        let limit = 4 * npages * per_page + 8;
        let mut spared = 0usize;
        for _ in 0..limit {
            let c = &mut self.classes[cls];
            if c.hand_page >= c.pages.len() {
                c.hand_page = 0;
                c.hand_slot = 0;
            }
            let page = c.pages[c.hand_page];
            let slot = c.hand_slot;
            c.hand_slot += 1;
            if c.hand_slot == per_page {
                c.hand_slot = 0;
                c.hand_page += 1;
            }
            if page == c.carve_page && slot >= c.carve_next as usize {
                continue;
            }
            let h = sh.handle(page, slot);
            if h == self.pin || h == self.building {
                continue;
            }
            let chunk = self.chunk(sh, h);
            let (h, chunk) = match item::kind(chunk) {
                KEY_FREE => continue,
                KEY_CONT => {
                    // The chain's head; not one being built or copied from.
                    let head = item::rd32(chunk, 8);
                    if head == 0 || head == self.pin || head == self.building {
                        continue;
                    }
                    let head_chunk = self.chunk(sh, head);
                    if matches!(item::kind(head_chunk), KEY_FREE | KEY_CONT) {
                        continue;
                    }
                    (head, head_chunk)
                }
                _ => (h, chunk),
            };
            // The item's counters are its head's class's (as `stats items` reports them).
            let hcls = sh.class_of(h);
            let hd = item::parse(chunk);
            if let Some(dead) = self.liveness(sh, &hd, now) {
                let st = &mut self.classes[hcls].stats;
                st.reclaimed += 1;
                if dead == Dead::Expired && !hd.fetched() {
                    st.expired_unfetched += 1;
                }
                let pos = self.pos_of(sh, h);
                self.unlink(sh, pos, h, &hd);
                return true;
            }
            // Bounded work per eviction: after sparing MAX_SPARED recently used items in a
            // row, the next one goes even if used (a class that is all hot must still make
            // room without a sweep over millions of chunks under the lock). The chunk is
            // borrowed through the owner alone, so the class's counters stay writable.
            let chunk = sh.chunk_mut(&mut self.owner, h);
            if item::clock_pass(chunk) > 0 && spared < MAX_SPARED {
                spared += 1;
                continue;
            }
            // Automove gives pages to the class that needed the room.
            let w = &mut self.classes[cls].stats;
            w.window_evictions += 1;
            w.window_evict_age = w.window_evict_age.max(hd.age(now));
            let st = &mut self.classes[hcls].stats;
            st.evicted += 1;
            if hd.exptime != 0 {
                st.evicted_nonzero += 1;
            }
            if !hd.fetched() {
                st.evicted_unfetched += 1;
            }
            st.evicted_time = u64::from(hd.age(now));
            if let Some(hook) = sh.eviction_hook.get() {
                (hook.0)(&crate::store::Evicted {
                    key: &chunk[hd.key_off..hd.key_off + hd.key_len],
                    fetched: hd.fetched(),
                    ttl: if hd.exptime == 0 {
                        -1
                    } else {
                        i64::from(hd.exptime) - i64::from(now)
                    },
                    last_access: hd.age(now),
                    class_id: hcls as u32 + 1,
                    value_len: hd.value_len,
                });
            }
            let pos = self.pos_of(sh, h);
            self.unlink(sh, pos, h, &hd);
            return true;
        }
        false
    }

    /// Whether page `page` of class `cls` holds the pinned item or part of a chain being built.
    pub(super) fn page_is_pinned(&self, sh: &Shared, cls: usize, page: u32) -> bool {
        if self.pin == 0 && self.building == 0 {
            return false;
        }
        for slot in 0..sh.classes.per_page(cls) {
            let h = sh.handle(page, slot);
            if h == self.pin || h == self.building {
                return true;
            }
            let c = self.chunk(sh, h);
            if item::kind(c) == KEY_CONT {
                let head = item::rd32(c, 8);
                if head == self.pin || head == self.building {
                    return true;
                }
            }
        }
        false
    }

    /// Seconds since the most recent use of any live item with a chunk on page `page` of
    /// class `cls`: `u32::MAX` when nothing live is on it, 0 when it holds the pinned item or
    /// part of a chain being built.
    pub(super) fn page_idle_for(&self, sh: &Shared, cls: usize, page: u32, now: RelTime) -> u32 {
        if self.page_is_pinned(sh, cls, page) {
            return 0;
        }
        let mut idle = u32::MAX;
        for slot in 0..self.classes[cls].carved(page, sh.classes.per_page(cls)) {
            let h = sh.handle(page, slot);
            let Some(head) = item::head_of(self.chunk(sh, h), h) else {
                continue;
            };
            let hd = item::parse(self.chunk(sh, head));
            if self.liveness(sh, &hd, now).is_none() {
                idle = idle.min(hd.age(now));
            }
        }
        idle
    }

    /// Moves one page from the class with the most pages to `to`. Returns whether it did.
    pub(super) fn steal_page(&mut self, sh: &Shared, to: usize, now: RelTime) -> bool {
        let donor = (0..self.classes.len())
            .filter(|&c| c != to && !self.classes[c].pages.is_empty())
            .max_by_key(|&c| self.classes[c].pages.len());
        let Some(donor) = donor else { return false };
        self.move_page(sh, donor, to, now)
    }

    /// Empties one page of class `from` (see [`Shard::evacuate`]) and gives it to class `to`.
    pub fn move_page(&mut self, sh: &Shared, from: usize, to: usize, now: RelTime) -> bool {
        let n = self.classes[from].pages.len();
        let start = self.classes[from].hand_page.min(n.saturating_sub(1));
        let mut chosen = None;
        for i in 0..n {
            let idx = (start + i) % n;
            let page = self.classes[from].pages[idx];
            if !self.page_is_pinned(sh, from, page) {
                chosen = Some(idx);
                break;
            }
        }
        let Some(idx) = chosen else { return false };
        let page = self.evacuate(sh, from, idx, now);
        self.attach_page(sh, to, page);
        self.counters.slabs_moved += 1;
        true
    }

    /// Adds an empty page (just evacuated) to class `to`.
    pub(super) fn attach_page(&mut self, sh: &Shared, to: usize, page: u32) {
        sh.arena.claim(page, to, &mut self.owner);
        let c = &mut self.classes[to];
        c.pages.push(page);
        if c.carve_page == 0 {
            c.carve_page = page;
            c.carve_next = 0;
        } else {
            // Only one page is carved at a time; thread the new page's chunks onto the free
            // list instead (this touches the page, which is in use already anyway).
            for slot in (0..sh.classes.per_page(to)).rev() {
                let h = sh.handle(page, slot);
                item::write_free(sh.chunk_mut(&mut self.owner, h), c.free_head);
                c.free_head = h;
                c.free += 1;
            }
        }
    }

    /// Empties page `pages[idx]` of class `cls`, takes it out of the class and returns it.
    ///
    /// Each live item's chunk on the page is rescued, as memcached's slab mover does: copied
    /// into a free chunk of the same class on another page (or one not yet carved). A one-chunk
    /// item or a chain's head has its index entry pointed at the copy (and a chain's chunks
    /// their head pointer; `slab_reassign_rescues`); a chain's other chunk is linked in where
    /// it was (`slab_reassign_chunk_rescues`). What has no spare chunk to go to is unlinked,
    /// the whole item (`slab_reassign_evictions_nomem`), and so are dead items (expired or
    /// flushed, not counted).
    pub fn evacuate(&mut self, sh: &Shared, cls: usize, idx: usize, now: RelTime) -> u32 {
        let page = self.classes[cls].pages[idx];
        let limit = self.classes[cls].carved(page, sh.classes.per_page(cls));
        // Rescued items must not land on this page: it is no longer carved.
        if self.classes[cls].carve_page == page {
            self.classes[cls].carve_page = 0;
        }
        for slot in 0..limit {
            let h = sh.handle(page, slot);
            let Some(head) = item::head_of(self.chunk(sh, h), h) else {
                continue;
            };
            let hd = item::parse(self.chunk(sh, head));
            let live = self.liveness(sh, &hd, now).is_none();
            if live {
                if let Some(to) = self.spare_chunk(sh, cls, page) {
                    if head == h {
                        let (hash, pos) = self.hash_and_pos_of(sh, head);
                        self.relocate(sh, pos, hash, h, to);
                        if hd.chained {
                            self.repoint_chain(sh, hd.next, to);
                        }
                        self.counters.reassign_rescues += 1;
                    } else {
                        self.relocate_link(sh, head, &hd, h, to);
                        self.counters.reassign_chunk_rescues += 1;
                    }
                    continue;
                }
            }
            let pos = self.pos_of(sh, head);
            self.unlink(sh, pos, head, &hd);
            if live {
                self.counters.reassign_evictions += 1;
            }
        }
        // Drop this page's chunks from the free list.
        let c = &mut self.classes[cls];
        let mut h = c.free_head;
        let mut kept_head = 0u32;
        let mut kept_tail = 0u32;
        let mut kept = 0u64;
        while h != 0 {
            let next = item::link(sh.chunk(&self.owner, h));
            if sh.page_of(h) != page {
                if kept_tail == 0 {
                    kept_head = h;
                } else {
                    item::wr32(sh.chunk_mut(&mut self.owner, kept_tail), 4, h);
                }
                kept_tail = h;
                kept += 1;
            }
            h = next;
        }
        if kept_tail != 0 {
            item::wr32(sh.chunk_mut(&mut self.owner, kept_tail), 4, 0);
        }
        c.free_head = kept_head;
        c.free = kept;
        c.pages.remove(idx);
        if c.hand_page > idx {
            c.hand_page -= 1;
        }
        if c.hand_page >= c.pages.len() {
            c.hand_page = 0;
            c.hand_slot = 0;
        }
        page
    }

    /// A chunk of class `cls` to rescue an item into, not on `page` (being emptied): a free
    /// one, or one not yet carved. Never takes a new page or evicts. Free chunks of `page` met
    /// on the way are taken off the free list (the caller drops them with the page anyway).
    fn spare_chunk(&mut self, sh: &Shared, cls: usize, page: u32) -> Option<u32> {
        let c = &mut self.classes[cls];
        while c.free_head != 0 && sh.page_of(c.free_head) == page {
            c.free_head = item::link(sh.chunk(&self.owner, c.free_head));
            c.free -= 1;
        }
        // The carve page is never `page` here (`evacuate` stopped carving it).
        self.take_free(sh, cls)
    }

    /// Moves the head chunk at `from` (index position `pos`, key hash `hash`) into chunk `to`
    /// of the same class; `from` is left to the page it is on.
    fn relocate(&mut self, sh: &Shared, pos: usize, hash: u64, from: u32, to: u32) {
        let (dst, src) = sh.chunk_pair(&mut self.owner, to, from);
        dst.copy_from_slice(src);
        self.index.replace_at(pos, hash, to);
        self.classes[sh.class_of(from)].used -= 1;
    }

    /// Points the chunks of a chain, from `next` on, at their head's new place `head`.
    fn repoint_chain(&mut self, sh: &Shared, mut next: u32, head: u32) {
        while next != 0 {
            let c = sh.chunk_mut(&mut self.owner, next);
            item::wr32(c, 8, head);
            next = item::link(c);
        }
    }

    /// Moves continuation chunk `from` of the chain whose head is `head` (header `hd`) into
    /// chunk `to` of the same class and links it in where `from` was.
    fn relocate_link(&mut self, sh: &Shared, head: u32, hd: &item::Header, from: u32, to: u32) {
        let (dst, src) = sh.chunk_pair(&mut self.owner, to, from);
        dst.copy_from_slice(src);
        self.classes[sh.class_of(from)].used -= 1;
        if hd.next == from {
            item::set_next(sh.chunk_mut(&mut self.owner, head), hd, to);
            return;
        }
        let mut prev = hd.next;
        while prev != 0 {
            let c = sh.chunk_mut(&mut self.owner, prev);
            let next = item::link(c);
            if next == from {
                item::wr32(c, 4, to);
                return;
            }
            prev = next;
        }
        debug_assert!(false, "chunk {from} is not in the chain of {head}");
    }
}
