//! The results of store operations.

/// The result of a lookup, distinguishing the kinds of miss memcached counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<T> {
    /// A live item; carries what the closure returned.
    Hit(T),
    /// No item.
    Miss,
    /// An item was there but had expired (`get_expired`).
    Expired,
    /// An item was there but a `flush_all` had invalidated it (`get_flushed`).
    Flushed,
    /// A miss that [`super::GetRequest::vivify`] could not fill: no memory for the empty item.
    OutOfMemory,
}

impl<T> Lookup<T> {
    /// Whether this is a hit.
    pub fn is_hit(&self) -> bool {
        matches!(self, Lookup::Hit(_))
    }
}

/// The result of a storage command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    /// Stored.
    Stored,
    /// The mode's condition failed (add of a live key, replace/append/prepend of a missing one).
    NotStored,
    /// `cas`: the item was modified since the client read it.
    Exists,
    /// `cas`: no such item.
    NotFound,
    /// The item is over the size limit.
    TooLarge,
    /// No memory, and eviction is off (`-M`) or found nothing to evict.
    OutOfMemory,
}

/// The result of incr/decr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOutcome {
    /// The item now holds `value`, with CAS `cas`.
    Updated {
        /// The new value.
        value: u64,
        /// The new CAS unique.
        cas: u64,
        /// Seconds of life left after the operation (after [`super::ArithRequest::touch`]),
        /// -1 for none (meta `t`).
        ttl: i64,
        /// Seconds of life left before `touch` (meta `t` written before `T`).
        ttl_before: i64,
    },
    /// The item was missing and was created from the initial value (binary protocol only).
    Created {
        /// The initial value.
        value: u64,
        /// The new CAS unique.
        cas: u64,
        /// Seconds of life left, -1 for none (meta `t`).
        ttl: i64,
    },
    /// No such item (and no initial value to create it from).
    NotFound,
    /// The item's data is not a decimal unsigned 64-bit number.
    NonNumeric,
    /// The new value could not be stored.
    OutOfMemory,
    /// A non-zero [`ArithRequest::cas`] only: the item's CAS differs from the one the client gave.
    Exists,
}

/// The result of [`Store::delete`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// The item was removed (or, with [`super::DeleteRequest::invalidate`], marked stale).
    Deleted,
    /// No live item (missing, expired or flushed).
    NotFound,
    /// A live item whose CAS differs from the non-zero one given; it stays.
    Exists,
}
