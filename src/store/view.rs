//! What a reader sees of an item: [`ItemView`], valid only inside a store closure.

use super::item;
use super::shard::Shared;

/// A live item, visible only inside a store closure.
#[derive(Debug)]
pub struct ItemView<'a> {
    pub(super) key: &'a [u8],
    pub(super) flags: u32,
    pub(super) cas: u64,
    pub(super) value_len: usize,
    pub(super) first: &'a [u8],
    pub(super) next: u32,
    pub(super) shared: &'a Shared,
}

impl<'a> ItemView<'a> {
    /// The key.
    pub fn key(&self) -> &'a [u8] {
        self.key
    }

    /// The client flags.
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// The CAS unique (0 when CAS is disabled).
    pub fn cas(&self) -> u64 {
        self.cas
    }

    /// The value's length in bytes.
    pub fn value_len(&self) -> usize {
        self.value_len
    }

    /// The value, as one or more contiguous pieces in order (a large item is chained).
    pub fn value_chunks(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        ValueChunks {
            first: Some(self.first),
            next: self.next,
            rest: self.value_len - self.first.len(),
            shared: self.shared,
        }
    }
}

/// The pieces of a value, following a chain.
struct ValueChunks<'a> {
    first: Option<&'a [u8]>,
    next: u32,
    rest: usize,
    shared: &'a Shared,
}

impl<'a> Iterator for ValueChunks<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if let Some(f) = self.first.take() {
            return Some(f);
        }
        if self.rest == 0 || self.next == 0 {
            return None;
        }
        // SAFETY: an ItemView only exists inside a store closure, while the lock of the shard
        // owning the item is held and nothing writes to it; continuation chunks belong to the
        // same shard. The slice is only read.
        let c: &'a [u8] = unsafe { self.shared.chunk_ref(self.next) };
        let n = (c.len() - item::CONT_HEADER).min(self.rest);
        self.rest -= n;
        self.next = item::link(c);
        Some(&c[item::CONT_HEADER..item::CONT_HEADER + n])
    }
}
