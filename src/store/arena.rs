//! Item memory: one anonymous mapping carved into fixed pages, and the global page budget.
//!
//! This is where the store manages memory by hand. The mapping is reserved up front but only
//! touched as pages are used, so resident memory tracks what is stored. Page 0 is never handed
//! out, so no item handle is 0 or 1 (the index uses those as "empty" and "deleted").
//!
//! Ownership: a page handed out by [`Arena::take_page`] belongs to exactly one shard until that
//! shard gives it back; every byte of it is read and written only under that shard's lock. That
//! is the invariant every `unsafe` block below relies on.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};

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
    /// The slab class of each page (u16::MAX: none), for turning a handle into a chunk size.
    page_class: Box<[AtomicU16]>,
    /// Refusals planned by a test (see [`Faults`]).
    pub faults: Faults,
}

// SAFETY: the arena only hands out raw memory; all access to a page's bytes is serialised by the
// lock of the shard owning the page (see the module docs), and the bookkeeping is atomic or
// behind a Mutex.
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
            page_class: (0..=pages).map(|_| AtomicU16::new(u16::MAX)).collect(),
            faults: Faults::default(),
        })
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

    /// Takes a page for class `cls`, or `None` when the budget is spent or a fresh page is
    /// refused (the caller then evicts or answers out of memory, as for a spent budget).
    ///
    /// The whole arena is reserved at start-up, so taking a fresh page makes no system call
    /// that could fail; the kernel commits its memory when it is first written. A refused fresh
    /// page ([`Faults`]) stands for the arena growth that cannot get memory.
    pub fn take_page(&self, cls: usize) -> Option<u32> {
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
        self.page_class[page as usize].store(cls as u16, Ordering::Relaxed);
        Some(page)
    }

    /// Takes a page that was given back (memcached's global page pool, slab class 0) for
    /// class `cls`; never a page not used yet.
    pub fn take_returned_page(&self, cls: usize) -> Option<u32> {
        let page = self.returned.lock().pop()?;
        self.page_class[page as usize].store(cls as u16, Ordering::Relaxed);
        Some(page)
    }

    /// Gives a page back to the pool. The caller must no longer touch it.
    pub fn give_page(&self, page: u32) {
        self.page_class[page as usize].store(u16::MAX, Ordering::Relaxed);
        self.returned.lock().push(page);
    }

    /// Moves a page the caller's shard owns to another class.
    pub fn set_page_class(&self, page: u32, cls: usize) {
        self.page_class[page as usize].store(cls as u16, Ordering::Relaxed);
    }

    /// The class of a page handed out.
    #[inline]
    pub fn page_class(&self, page: u32) -> usize {
        self.page_class[page as usize].load(Ordering::Relaxed) as usize
    }

    /// The bytes of `len` bytes at `offset` in page `page`.
    ///
    /// # Safety
    /// The caller holds the lock of the shard that owns `page` (taken from [`Arena::take_page`]
    /// and not given back), `offset + len <= PAGE_SIZE`, and no other live reference covers
    /// any of these bytes while the returned one is used.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn bytes(&self, page: u32, offset: usize, len: usize) -> &mut [u8] {
        debug_assert!(page >= 1 && page <= self.pages);
        debug_assert!(offset + len <= PAGE_SIZE);
        let start = page as usize * PAGE_SIZE + offset;
        debug_assert!(start + len <= self.map_len);
        // SAFETY: the range lies inside the mapping (page <= pages, offset + len <= PAGE_SIZE);
        // the caller guarantees exclusive access under the owning shard's lock.
        unsafe { std::slice::from_raw_parts_mut(self.base.as_ptr().add(start), len) }
    }
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

    #[test]
    fn pages_are_handed_out_once_and_come_back() {
        let a = Arena::new(3).unwrap();
        let got: Vec<u32> = (0..3).filter_map(|_| a.take_page(0)).collect();
        assert_eq!(got, vec![1, 2, 3]);
        assert_eq!(a.take_page(0), None);
        assert_eq!(a.pages_in_use(), 3);
        a.give_page(2);
        assert_eq!(a.pages_in_use(), 2);
        assert_eq!(a.take_page(5), Some(2));
        assert_eq!(a.page_class(2), 5);
    }

    #[test]
    fn refused_fresh_pages_are_not_handed_out_and_recover() {
        let a = Arena::new(4).unwrap();
        assert_eq!(a.take_page(0), Some(1));
        a.faults.refuse(0, 2);
        assert_eq!(a.take_page(0), None);
        assert_eq!(a.take_page(0), None);
        assert_eq!(a.pages_in_use(), 1);
        // A returned page needs no new memory: it is not refused.
        a.give_page(1);
        a.faults.refuse(0, 1);
        assert_eq!(a.take_page(0), Some(1));
        assert_eq!(a.take_page(0), None);
        assert_eq!(a.take_page(0), Some(2));
    }
}
