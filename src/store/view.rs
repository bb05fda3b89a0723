//! What a reader sees of an item: [`ItemView`], valid only inside a store closure.

use super::arena::Owner;
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
    /// The item's shard's capability, borrowed from the locked shard: the view cannot
    /// outlive the lock.
    pub(super) owner: &'a Owner,
    pub(super) facts: Facts,
}

/// What the meta protocol reports about an item, as it was when the lookup found it (before
/// this request's own bump), plus what this request did.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Facts {
    pub ttl: i64,
    pub ttl_before: i64,
    pub age: u32,
    pub fetched: bool,
    pub stale: bool,
    pub token_sent: bool,
    pub key_binary: bool,
    pub won: bool,
    pub created: bool,
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

    /// Seconds of life left (after this request's touch), -1 for none (meta `t`).
    pub fn ttl(&self) -> i64 {
        self.facts.ttl
    }

    /// Seconds of life left before this request's touch, -1 for none (meta `t` before `T`).
    pub fn ttl_before_touch(&self) -> i64 {
        self.facts.ttl_before
    }

    /// Seconds since the item was last accessed, before this request (meta `l`, `me la=`):
    /// since it was stored, or since the last get that bumped it. Exact up to 2^20 s (~12
    /// days); older items read between 2^19 and 2^20 s while the crawler runs.
    pub fn last_access(&self) -> u32 {
        self.facts.age
    }

    /// Whether the item had been read before this request (memcached's ITEM_FETCHED; meta `h`,
    /// `me fetch=`).
    pub fn fetched(&self) -> bool {
        self.facts.fetched
    }

    /// Whether the item is stale (invalidated by `md … I` or `ms … I`; meta `X`).
    pub fn stale(&self) -> bool {
        self.facts.stale
    }

    /// Whether a win token was already out before this request (meta `Z`). Only with
    /// [`super::GetRequest::win_tokens`] (always false otherwise).
    pub fn token_already_sent(&self) -> bool {
        self.facts.token_sent
    }

    /// Whether this request won the right to recache the item (meta `W`). Only with
    /// [`super::GetRequest::win_tokens`].
    pub fn won(&self) -> bool {
        self.facts.won
    }

    /// Whether this request created the (empty) item: [`super::GetRequest::vivify`] on a miss.
    pub fn created(&self) -> bool {
        self.facts.created
    }

    /// Whether the item was stored with a base64 key (meta `b`; echo `k` encoded).
    pub fn key_binary(&self) -> bool {
        self.facts.key_binary
    }

    /// The value, as one or more contiguous pieces in order (a large item is chained).
    pub fn value_chunks(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        ValueChunks {
            first: Some(self.first),
            next: self.next,
            rest: self.value_len - self.first.len(),
            shared: self.shared,
            owner: self.owner,
        }
    }
}

/// The pieces of a value, following a chain.
struct ValueChunks<'a> {
    first: Option<&'a [u8]>,
    next: u32,
    rest: usize,
    shared: &'a Shared,
    owner: &'a Owner,
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
        let c = self.shared.chunk(self.owner, self.next);
        let n = (c.len() - item::CONT_HEADER).min(self.rest);
        self.rest -= n;
        self.next = item::link(c);
        Some(&c[item::CONT_HEADER..item::CONT_HEADER + n])
    }
}
