//! Item memory: one anonymous mapping carved into fixed pages, and the global page budget.
//!
//! This is where the store manages memory by hand. The mapping is reserved up front but only
//! touched as pages are used, so resident memory tracks what is stored. Page 0 is never handed
//! out, so no item handle is 0 or 1 (the index uses those as "empty" and "deleted").
//!
//! Ownership: a page handed out by [`Arena::take_page`] belongs to exactly one [`Owner`] (a
//! shard's capability, kept inside the shard and so behind its lock) until that owner gives it
//! back. The arena records each page's owner and hands out a page's bytes only against that
//! owner: shared bytes for `&Owner`, exclusive bytes for `&mut Owner`. Since an `Owner` is unique
//! and not `Clone`, the borrow checker then enforces "read and written only under the owning
//! shard's lock, with no other reference to bytes written": a `&mut Owner` can only be reached
//! through `&mut Shard`, which can only be reached through the shard's `MutexGuard`. That is the
//! invariant every `unsafe` block below relies on, and the only `unsafe` of the store.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, Ordering};

/// A mapping the store could not get: the OS refused it (`ENOMEM`, address space or
/// `vm.max_map_count` exhausted), or a test refused it through [`Faults`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapFailed;

/// Fault injection: how many of the next mappings of each kind to refuse. A test seam that
/// costs one relaxed load of a zero counter where memory is taken (once per fresh 64 KiB page
/// and once per index growth), never on the per-request lookup path.
#[derive(Debug, Default)]
pub struct Faults {
    index: AtomicU32,
    pages: AtomicU32,
}

impl Faults {
    /// Refuses the next `index` index-table mappings and the next `pages` fresh arena pages.
    pub fn refuse(&self, index: u32, pages: u32) {
        self.index.store(index, Ordering::Relaxed);
        self.pages.store(pages, Ordering::Relaxed);
    }

    /// Whether to refuse this index-table mapping (consumes one planned refusal).
    #[inline]
    pub fn refuse_index(&self) -> bool {
        take_one(&self.index)
    }

    #[inline]
    fn refuse_page(&self) -> bool {
        take_one(&self.pages)
    }
}

#[inline]
fn take_one(c: &AtomicU32) -> bool {
    c.load(Ordering::Relaxed) != 0
        && c.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
}

use parking_lot::Mutex;

use super::classes::ClassTable;

/// A shard's claim on arena pages: the capability to read (`&Owner`) or write (`&mut Owner`)
/// the bytes of the pages the arena records as its own. Made only by [`Arena::new_owner`]: each
/// has a tag of its own within its arena and names that arena, so no two owners (even of
/// different arenas) can claim the same page.
#[derive(Debug)]
pub struct Owner {
    /// The arena's id above 16 bits, the owner's tag where a page tag keeps it (see [`tag`]),
    /// so that one comparison with a page's tag checks both.
    key: u64,
}

impl Owner {
    fn arena(&self) -> u64 {
        self.key >> 16
    }

    fn tag(&self) -> u16 {
        tag_owner(self.key as u16)
    }
}

/// Ids of arenas, for [`Owner`]s to name theirs (never reused within a process).
static NEXT_ARENA: AtomicU64 = AtomicU64::new(1);

/// A page's tag: its owner (high 6 bits, [`NO_OWNER`] for none) and slab class (low 10 bits,
/// [`NO_CLASS`] for none), in one `u16` so that a chunk access loads both at once and the
/// table costs 2 bytes a page (2 KiB at `-m 64`, within reach of L1 on every get).
const CLASS_BITS: u32 = 10;
const CLASS_MASK: u16 = (1 << CLASS_BITS) - 1;
const NO_CLASS: u16 = CLASS_MASK;
const NO_OWNER: u16 = 0;
/// Owners an arena can make (tags 1..=63; the store makes one per shard, at most 16).
const MAX_OWNERS: u16 = (1 << (16 - CLASS_BITS)) - 1;

#[inline]
fn tag(owner: u16, cls: usize) -> u16 {
    assert!(
        cls < usize::from(NO_CLASS),
        "class {cls} does not fit a page tag"
    );
    (owner << CLASS_BITS) | cls as u16
}

#[inline]
fn tag_owner(tag: u16) -> u16 {
    tag >> CLASS_BITS
}

/// Where a chunk lies: its page and its slot in that page (of its page's class's size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub page: u32,
    pub slot: u32,
}

/// Bytes per page. Small pages keep the per-shard, per-class partly used page cheap: 16 shards
/// x 64 KiB is the same 1 MiB per class that memcached spends with its global 1 MiB pages.
pub const PAGE_SIZE: usize = 64 * 1024;

/// The page pool shared by all shards.
#[derive(Debug)]
pub struct Arena {
    base: NonNull<u8>,
    map_len: usize,
    /// Usable pages are 1..=pages.
    pages: u32,
    /// The next never-used page.
    next_fresh: AtomicU32,
    /// How many pages may be handed out at once (`cache_memlimit` moves it, at most `pages`).
    limit: AtomicU32,
    /// Pages given back (by slab automove or emergency moves).
    returned: Mutex<Vec<u32>>,
    /// Each page's owner and slab class (see [`tag`]): who may touch its bytes, and the chunk
    /// size that turns a handle into a byte range.
    page_tag: Box<[AtomicU16]>,
    /// This arena's id (named by its owners).
    id: u64,
    /// Owner tags handed out so far.
    owners: AtomicU16,
    /// Refusals planned by a test (see [`Faults`]).
    pub faults: Faults,
}

// SAFETY: the arena hands out a page's bytes only against the page's `Owner` (`&Owner` for
// reading, `&mut Owner` for writing; see the module docs), so the borrow rules on the owner order
// every access across threads; the bookkeeping is atomic or behind a Mutex.
unsafe impl Send for Arena {}
// SAFETY: as for Send.
unsafe impl Sync for Arena {}

/// Why the arena cannot be built.
#[derive(Debug)]
pub struct ArenaError(pub String);

impl Arena {
    /// Reserves `pages` pages (plus the unused page 0).
    pub fn new(pages: u32) -> Result<Arena, ArenaError> {
        let map_len = (pages as usize + 1)
            .checked_mul(PAGE_SIZE)
            .ok_or_else(|| ArenaError("memory limit too large".into()))?;
        let base = map_zeroed(map_len, libc::MAP_NORESERVE).ok_or_else(|| {
            ArenaError(format!(
                "cannot reserve {map_len} bytes of item memory: {}",
                std::io::Error::last_os_error()
            ))
        })?;
        Ok(Arena {
            base,
            map_len,
            pages,
            next_fresh: AtomicU32::new(1),
            limit: AtomicU32::new(pages),
            returned: Mutex::new(Vec::new()),
            page_tag: (0..=pages)
                .map(|_| AtomicU16::new(tag(NO_OWNER, 0) | NO_CLASS))
                .collect(),
            id: NEXT_ARENA.fetch_add(1, Ordering::Relaxed),
            owners: AtomicU16::new(0),
            faults: Faults::default(),
        })
    }

    /// Asks the kernel to back the arena with transparent huge pages (`-L`, as memcached's
    /// `madvise(MADV_HUGEPAGE)` on its item memory): fewer TLB entries cover the items. Pages
    /// are still only taken as they are first written, 2 MiB at a time.
    pub fn advise_huge_pages(&self) -> std::io::Result<()> {
        #[cfg(not(miri))]
        {
            // SAFETY: base/map_len are exactly the live mapping this arena made and owns; the
            // advice changes how the kernel backs it, not its contents or its validity.
            let rc = unsafe {
                libc::madvise(self.base.as_ptr().cast(), self.map_len, libc::MADV_HUGEPAGE)
            };
            if rc != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }

    /// A new owner of this arena's pages, holding none yet (one per shard; at most 63).
    pub fn new_owner(&self) -> Owner {
        let tag = self
            .owners
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < MAX_OWNERS).then_some(n + 1)
            })
            .expect("at most 63 owners of one arena")
            + 1;
        Owner {
            key: (self.id << 16) | u64::from(tag << CLASS_BITS),
        }
    }

    /// Whether `owner` holds pages of this arena (rather than of another).
    #[inline]
    fn is_mine(&self, owner: &Owner) -> bool {
        owner.arena() == self.id
    }

    /// Pages handed out and not given back.
    pub fn pages_in_use(&self) -> u32 {
        let fresh = self.next_fresh.load(Ordering::Relaxed).min(self.pages + 1) - 1;
        fresh - self.returned.lock().len() as u32
    }

    /// Pages reserved: the most the limit can be raised to.
    pub fn capacity(&self) -> u32 {
        self.pages
    }

    /// How many pages may be in use at once.
    pub fn limit(&self) -> u32 {
        self.limit.load(Ordering::Relaxed)
    }

    /// Sets how many pages may be in use at once (at most [`Arena::capacity`]). Pages over a
    /// lowered limit stay with their classes until the store gives them back.
    pub fn set_limit(&self, pages: u32) {
        self.limit.store(pages.min(self.pages), Ordering::Relaxed);
    }

    /// Takes a page for class `cls` and `owner`, or `None` when the budget is spent or a fresh
    /// page is refused (the caller then evicts or answers out of memory, as for a spent budget).
    ///
    /// The whole arena is reserved at start-up, so taking a fresh page makes no system call
    /// that could fail; the kernel commits its memory when it is first written. A refused fresh
    /// page ([`Faults`]) stands for the arena growth that cannot get memory.
    pub fn take_page(&self, cls: usize, owner: &mut Owner) -> Option<u32> {
        let page = {
            let mut returned = self.returned.lock();
            let fresh = self.next_fresh.load(Ordering::Relaxed).min(self.pages + 1) - 1;
            if fresh - returned.len() as u32 >= self.limit.load(Ordering::Relaxed) {
                return None;
            }
            match returned.pop() {
                Some(p) => p,
                None => {
                    if self.faults.refuse_page() {
                        return None;
                    }
                    let p = self.next_fresh.fetch_add(1, Ordering::Relaxed);
                    if p > self.pages {
                        self.next_fresh.store(self.pages + 1, Ordering::Relaxed);
                        return None;
                    }
                    p
                }
            }
        };
        self.claim(page, cls, owner);
        Some(page)
    }

    /// Takes a page that was given back (memcached's global page pool, slab class 0) for
    /// class `cls` and `owner`; never a page not used yet.
    pub fn take_returned_page(&self, cls: usize, owner: &mut Owner) -> Option<u32> {
        let page = self.returned.lock().pop()?;
        self.claim(page, cls, owner);
        Some(page)
    }

    /// Gives a page of `owner`'s back to the pool. `&mut Owner`: no chunk of it is borrowed.
    pub fn give_page(&self, page: u32, owner: &mut Owner) {
        self.release(page, owner);
        self.returned.lock().push(page);
    }

    /// Takes a page away from `owner` without pooling it: it is handed to another owner,
    /// which [`Arena::claim`]s it. `&mut Owner`: no chunk of it is borrowed.
    pub fn release(&self, page: u32, owner: &mut Owner) {
        let t = &self.page_tag[page as usize];
        assert!(
            self.is_mine(owner) && tag_owner(t.load(Ordering::Relaxed)) == owner.tag(),
            "page {page} released by a shard that does not hold it"
        );
        // Release: the owner's writes happen before the next owner's claim (Acquire).
        t.store(tag(NO_OWNER, 0) | NO_CLASS, Ordering::Release);
    }

    /// Makes `page` (held by `owner` already, or by nobody) a page of class `cls` held by
    /// `owner`. `&mut Owner`: no chunk of `owner`'s is borrowed while its chunk size changes.
    /// Panics if another owner holds the page (a store bug; never shared bytes).
    pub fn claim(&self, page: u32, cls: usize, owner: &mut Owner) {
        assert!(
            self.is_mine(owner),
            "page {page} claimed by another arena's shard"
        );
        let t = &self.page_tag[page as usize];
        let old = t.load(Ordering::Acquire);
        let held = tag_owner(old);
        assert!(
            held == NO_OWNER || held == owner.tag(),
            "page {page} claimed while another shard holds it"
        );
        // A page held by nobody may be claimed by two owners at once only through a bug: the
        // exchange lets one of them win and the other panic.
        let won = t.compare_exchange(
            old,
            tag(owner.tag(), cls),
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
        assert!(won.is_ok(), "page {page} claimed by two shards at once");
    }

    /// The class of a page handed out.
    #[inline]
    pub fn page_class(&self, page: u32) -> usize {
        usize::from(self.page_tag[page as usize].load(Ordering::Relaxed) & CLASS_MASK)
    }

    /// Where the bytes of chunk `at` are, after checking that `owner` holds its page and that
    /// the chunk (sized by its page's class in `classes`) lies inside the page. Panics
    /// otherwise: a handle that is not this shard's is a store bug, and the check turns it into
    /// a panic instead of a data race or a write outside the page.
    #[inline]
    fn locate(&self, owner: &Owner, classes: &ClassTable, at: Slot) -> (*mut u8, usize) {
        let t = self.page_tag[at.page as usize].load(Ordering::Relaxed);
        // The page's owner and this arena's id against the owner's key, in one comparison.
        if (self.id << 16) | u64::from(t & !CLASS_MASK) != owner.key {
            not_held(at.page);
        }
        let len = classes.size(usize::from(t & CLASS_MASK));
        let end = (u64::from(at.slot) + 1).checked_mul(len as u64);
        if !matches!(end, Some(end) if end <= PAGE_SIZE as u64) {
            not_held(at.page);
        }
        // In bounds of the mapping: page <= pages (page_tag has pages + 1 entries) and
        // (slot + 1) * len <= PAGE_SIZE; wrapping_add is only address arithmetic.
        let start = at.page as usize * PAGE_SIZE + at.slot as usize * len;
        (self.base.as_ptr().wrapping_add(start), len)
    }

    /// The bytes of chunk `at`, for reading while `owner` is borrowed.
    #[inline]
    pub fn chunk<'a>(&'a self, owner: &'a Owner, classes: &ClassTable, at: Slot) -> &'a [u8] {
        let (ptr, len) = self.locate(owner, classes, at);
        // SAFETY: `locate` checked that the range lies inside the live mapping (kept alive by
        // `&'a self`) and inside a page `owner` holds. Bytes of that page are written only
        // through `&mut Owner` (`chunk_mut`, `chunk_update`, `chunk_pair`), which cannot
        // coexist with the `&'a Owner` borrowed here, and the page's class (its chunk layout)
        // changes or the page leaves `owner` only through `&mut Owner` too. An `Owner` is
        // unique (its tag within this arena, checked with the arena's id), so no other owner
        // reaches these bytes. The mapping is zero-initialised.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }

    /// The bytes of chunk `at`, for writing while `owner` is borrowed exclusively.
    #[inline]
    pub fn chunk_mut<'a>(
        &'a self,
        owner: &'a mut Owner,
        classes: &ClassTable,
        at: Slot,
    ) -> &'a mut [u8] {
        let (ptr, len) = self.locate(owner, classes, at);
        // SAFETY: as in `chunk`; `&'a mut Owner` excludes every other borrow of `owner`, so
        // no other reference to any byte of `owner`'s pages exists while this one is used.
        unsafe { std::slice::from_raw_parts_mut(ptr, len) }
    }

    /// Chunk `at` written by `f`, then the same chunk for reading, with `owner` handed back
    /// shared for reading other chunks: one look-up where a get bumps the item it then reads.
    #[inline]
    pub fn chunk_update<'a>(
        &'a self,
        owner: &'a mut Owner,
        classes: &ClassTable,
        at: Slot,
        f: impl FnOnce(&mut [u8]),
    ) -> (&'a [u8], &'a Owner) {
        let (ptr, len) = self.locate(owner, classes, at);
        // SAFETY: as in `chunk_mut` while `f` runs; the mutable slice does not outlive `f`.
        f(unsafe { std::slice::from_raw_parts_mut(ptr, len) });
        let owner: &'a Owner = owner;
        // SAFETY: as in `chunk`: from here on `owner` is borrowed shared only, for 'a, so
        // nothing writes to the owner's bytes while the slice is used.
        (unsafe { std::slice::from_raw_parts(ptr, len) }, owner)
    }

    /// Two distinct chunks of `owner`'s at once: `dst` for writing, `src` for reading (copying
    /// one item's value into another's chunks). Panics if they are the same chunk.
    #[inline]
    pub fn chunk_pair<'a>(
        &'a self,
        owner: &'a mut Owner,
        classes: &ClassTable,
        dst: Slot,
        src: Slot,
    ) -> (&'a mut [u8], &'a [u8]) {
        assert_ne!(dst, src, "a chunk copied onto itself");
        let (d, dlen) = self.locate(owner, classes, dst);
        let (s, slen) = self.locate(owner, classes, src);
        // SAFETY: as in `chunk_mut` for each. The two ranges are disjoint: on different pages
        // they are in different PAGE_SIZE ranges; on one page both are sized by that page's
        // class, so distinct slots are distinct, non-overlapping `len`-byte ranges.
        unsafe {
            (
                std::slice::from_raw_parts_mut(d, dlen),
                std::slice::from_raw_parts(s, slen),
            )
        }
    }
}

/// A chunk access to a page the caller does not hold, or outside its page.
#[cold]
#[inline(never)]
fn not_held(page: u32) -> ! {
    panic!("chunk access to page {page}, which this shard does not hold (or out of the page)")
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: base/map_len are exactly what map_zeroed returned, and no reference into the
        // mapping outlives the arena (the shards that hand them out are dropped with the store).
        unsafe { unmap(self.base, self.map_len) }
    }
}

/// A zero-filled buffer in an anonymous mapping of its own (the index tables), given back to
/// the OS when dropped.
///
/// `Vec` would take big tables from malloc: glibc raises its mmap threshold to the size of every
/// mapped block it frees, so after the first table growth the next tables of 16 shards, all of
/// similar sizes, come from the heap or thread arenas and stay resident after they are freed.
/// Untouched pages of the mapping cost no resident memory, so a table costs what is filled.
#[derive(Debug)]
pub struct ZeroedBuf {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the buffer owns its mapping exclusively, like a `Vec<u8>`; access goes through `&self`
// / `&mut self` borrows.
unsafe impl Send for ZeroedBuf {}
// SAFETY: as for Send: shared access only reads.
unsafe impl Sync for ZeroedBuf {}

impl ZeroedBuf {
    /// `len` (> 0) zero bytes, or [`MapFailed`] when the OS refuses the mapping.
    pub fn new(len: usize) -> Result<ZeroedBuf, MapFailed> {
        debug_assert!(len > 0);
        let ptr = map_zeroed(len, 0).ok_or(MapFailed)?;
        Ok(ZeroedBuf { ptr, len })
    }

    /// Bytes asked for.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The bytes.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr/len describe a live readable mapping owned by self, zero-initialised by
        // the kernel; `&self` keeps it alive and excludes writers.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes, for writing.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`; `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for ZeroedBuf {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly what map_zeroed returned and no borrow outlives self.
        unsafe { unmap(self.ptr, self.len) }
    }
}

/// `len` (> 0) zeroed bytes in an anonymous private mapping (`extra` mmap flags), or `None`.
#[cfg(not(miri))]
fn map_zeroed(len: usize, extra: libc::c_int) -> Option<NonNull<u8>> {
    // SAFETY: an anonymous private mapping with no address hint has no preconditions; the
    // result is checked against MAP_FAILED before use.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | extra,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return None;
    }
    NonNull::new(ptr.cast::<u8>())
}

/// Gives back what [`map_zeroed`] returned.
///
/// # Safety
/// `ptr`/`len` are exactly what one `map_zeroed` call returned, not given back yet, and no
/// reference into it is used afterwards.
#[cfg(not(miri))]
unsafe fn unmap(ptr: NonNull<u8>, len: usize) {
    // SAFETY: forwarded to the caller: a live mapping of exactly this range.
    unsafe {
        libc::munmap(ptr.as_ptr().cast(), len);
    }
}

/// Miri cannot map memory with `MAP_NORESERVE`: under Miri the mappings are zeroed heap
/// blocks, so the chunk and index logic above runs unchanged under its checks.
#[cfg(miri)]
fn miri_layout(len: usize) -> std::alloc::Layout {
    std::alloc::Layout::from_size_align(len, 4096).expect("mapping layout")
}

#[cfg(miri)]
fn map_zeroed(len: usize, _extra: libc::c_int) -> Option<NonNull<u8>> {
    // SAFETY: the layout has a non-zero size (every caller maps at least one byte).
    NonNull::new(unsafe { std::alloc::alloc_zeroed(miri_layout(len)) })
}

#[cfg(miri)]
unsafe fn unmap(ptr: NonNull<u8>, len: usize) {
    // SAFETY: allocated by `map_zeroed` with this very layout; the caller no longer uses it.
    unsafe { std::alloc::dealloc(ptr.as_ptr(), miri_layout(len)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_buf_starts_zero_and_keeps_writes() {
        let mut b = ZeroedBuf::new(100_003).unwrap();
        assert_eq!(b.len(), 100_003);
        assert!(b.as_slice().iter().all(|&x| x == 0));
        b.as_mut_slice()[100_002] = 7;
        assert_eq!(b.as_slice()[100_002], 7);
    }

    /// The flags of the mapping that holds `addr`, from `/proc/self/smaps` (`hg`: huge page
    /// advice).
    fn vm_flags(addr: usize) -> String {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ') {
                if let Some((lo, hi)) = range.split_once('-') {
                    if let (Ok(lo), Ok(hi)) =
                        (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
                    {
                        inside = (lo..hi).contains(&addr);
                        continue;
                    }
                }
            }
            if inside {
                if let Some(flags) = line.strip_prefix("VmFlags:") {
                    return flags.trim().to_string();
                }
            }
        }
        panic!("no mapping holds {addr:#x}");
    }

    #[test]
    #[cfg(not(miri))]
    fn huge_page_advice_covers_the_arena() {
        let a = Arena::new(64).unwrap();
        let flags = || vm_flags(a.base.as_ptr() as usize + PAGE_SIZE);
        assert!(!flags().split(' ').any(|f| f == "hg"), "{}", flags());
        match a.advise_huge_pages() {
            Ok(()) => assert!(flags().split(' ').any(|f| f == "hg"), "{}", flags()),
            // A kernel built without transparent huge pages refuses the advice.
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EINVAL)),
        }
    }

    #[test]
    fn pages_are_handed_out_once_and_come_back() {
        let a = Arena::new(3).unwrap();
        let mut o = a.new_owner();
        let got: Vec<u32> = (0..3).filter_map(|_| a.take_page(0, &mut o)).collect();
        assert_eq!(got, vec![1, 2, 3]);
        assert_eq!(a.take_page(0, &mut o), None);
        assert_eq!(a.pages_in_use(), 3);
        a.give_page(2, &mut o);
        assert_eq!(a.pages_in_use(), 2);
        assert_eq!(a.take_page(5, &mut o), Some(2));
        assert_eq!(a.page_class(2), 5);
    }

    #[test]
    fn refused_fresh_pages_are_not_handed_out_and_recover() {
        let a = Arena::new(4).unwrap();
        let mut o = a.new_owner();
        assert_eq!(a.take_page(0, &mut o), Some(1));
        a.faults.refuse(0, 2);
        assert_eq!(a.take_page(0, &mut o), None);
        assert_eq!(a.take_page(0, &mut o), None);
        assert_eq!(a.pages_in_use(), 1);
        // A returned page needs no new memory: it is not refused.
        a.give_page(1, &mut o);
        a.faults.refuse(0, 1);
        assert_eq!(a.take_page(0, &mut o), Some(1));
        assert_eq!(a.take_page(0, &mut o), None);
        assert_eq!(a.take_page(0, &mut o), Some(2));
    }

    fn table() -> ClassTable {
        ClassTable::new(12, 20, 2.0)
    }

    #[test]
    fn chunks_of_a_page_are_disjoint_and_keep_their_bytes() {
        let a = Arena::new(2).unwrap();
        let classes = table();
        let mut o = a.new_owner();
        let page = a.take_page(0, &mut o).unwrap();
        let size = classes.size(0);
        let per_page = classes.per_page(0);
        for slot in 0..per_page as u32 {
            let c = a.chunk_mut(&mut o, &classes, Slot { page, slot });
            assert_eq!(c.len(), size);
            assert!(c.iter().all(|&b| b == 0), "a fresh page is zeroed");
            c.fill(slot as u8);
        }
        for slot in 0..per_page as u32 {
            let c = a.chunk(&o, &classes, Slot { page, slot });
            assert!(
                c.iter().all(|&b| b == slot as u8),
                "slot {slot} overwritten"
            );
        }
        let (d, s) = a.chunk_pair(
            &mut o,
            &classes,
            Slot { page, slot: 1 },
            Slot { page, slot: 2 },
        );
        d.copy_from_slice(s);
        assert!(a
            .chunk(&o, &classes, Slot { page, slot: 1 })
            .iter()
            .all(|&b| b == 2));
        // A page moved to another class is cut into that class's chunks.
        a.claim(page, 1, &mut o);
        assert_eq!(
            a.chunk(&o, &classes, Slot { page, slot: 0 }).len(),
            classes.size(1)
        );
    }

    #[test]
    #[should_panic(expected = "does not hold")]
    fn a_chunk_of_another_owners_page_is_refused() {
        let a = Arena::new(2).unwrap();
        let classes = table();
        let (mut mine, theirs) = (a.new_owner(), a.new_owner());
        let page = a.take_page(0, &mut mine).unwrap();
        a.chunk(&theirs, &classes, Slot { page, slot: 0 });
    }

    #[test]
    #[should_panic(expected = "does not hold")]
    fn a_chunk_past_the_end_of_its_page_is_refused() {
        let a = Arena::new(2).unwrap();
        let classes = table();
        let mut o = a.new_owner();
        let page = a.take_page(0, &mut o).unwrap();
        let slot = classes.per_page(0) as u32;
        a.chunk(&o, &classes, Slot { page, slot });
    }

    #[test]
    #[should_panic(expected = "does not hold")]
    fn the_largest_slot_number_is_refused_not_wrapped() {
        let a = Arena::new(2).unwrap();
        let classes = table();
        let mut o = a.new_owner();
        let page = a.take_page(classes.largest(), &mut o).unwrap();
        a.chunk(
            &o,
            &classes,
            Slot {
                page,
                slot: u32::MAX,
            },
        );
    }

    #[test]
    #[should_panic(expected = "does not hold")]
    fn an_owner_of_another_arena_is_refused() {
        let (a, b) = (Arena::new(2).unwrap(), Arena::new(2).unwrap());
        let classes = table();
        let (mut mine, theirs) = (a.new_owner(), b.new_owner());
        // Both are their arena's first owner: the same tag, told apart by the arena's id.
        let page = a.take_page(0, &mut mine).unwrap();
        a.chunk(&theirs, &classes, Slot { page, slot: 0 });
    }

    #[test]
    fn an_arena_makes_at_most_63_owners() {
        let a = Arena::new(1).unwrap();
        let tags: Vec<u16> = (0..63).map(|_| a.new_owner().tag()).collect();
        assert_eq!(tags, (1..=63).collect::<Vec<u16>>());
        assert!(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| a.new_owner())).is_err());
    }

    #[test]
    #[should_panic(expected = "does not hold")]
    fn a_released_page_is_no_longer_readable() {
        let a = Arena::new(2).unwrap();
        let classes = table();
        let mut o = a.new_owner();
        let page = a.take_page(0, &mut o).unwrap();
        a.give_page(page, &mut o);
        a.chunk(&o, &classes, Slot { page, slot: 0 });
    }

    #[test]
    #[should_panic(expected = "another shard holds it")]
    fn a_page_held_by_one_owner_cannot_be_claimed_by_another() {
        let a = Arena::new(2).unwrap();
        let (mut mine, mut theirs) = (a.new_owner(), a.new_owner());
        let page = a.take_page(0, &mut mine).unwrap();
        a.claim(page, 0, &mut theirs);
    }

    #[test]
    #[should_panic(expected = "onto itself")]
    fn a_chunk_pair_must_be_two_chunks() {
        let a = Arena::new(2).unwrap();
        let classes = table();
        let mut o = a.new_owner();
        let page = a.take_page(0, &mut o).unwrap();
        let at = Slot { page, slot: 3 };
        a.chunk_pair(&mut o, &classes, at, at);
    }

    #[test]
    fn a_released_page_can_be_claimed_by_another_owner() {
        let a = Arena::new(2).unwrap();
        let classes = table();
        let (mut from, mut to) = (a.new_owner(), a.new_owner());
        let page = a.take_page(0, &mut from).unwrap();
        a.chunk_mut(&mut from, &classes, Slot { page, slot: 0 })[0] = 9;
        a.release(page, &mut from);
        a.claim(page, 0, &mut to);
        assert_eq!(a.chunk(&to, &classes, Slot { page, slot: 0 })[0], 9);
    }
}
