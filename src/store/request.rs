//! The store's operations take one request struct each (Pelikan's storage API is the model), so
//! a new option (the meta protocol's invalidate, vivify, explicit CAS, no-LRU-bump, ...) adds a
//! field here, not a method or a positional argument. Every struct has a `Default` with the
//! plain behaviour (no CAS check, no touch), so callers name only what they use.

/// How a storage command treats an existing (or missing) item. Mirrors the protocol's modes; the
/// store keeps its own type so it does not depend on any wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SetMode {
    /// Store unconditionally.
    #[default]
    Set,
    /// Store only if no live item has the key.
    Add,
    /// Store only if a live item has the key.
    Replace,
    /// Append to the live item's data (keeps its flags and exptime).
    Append,
    /// Prepend to the live item's data (keeps its flags and exptime).
    Prepend,
    /// Store only if the live item's CAS equals the given one.
    Cas,
}

/// A lookup ([`super::Store::get`]): `get`, `gat`, `touch` and their binary forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GetRequest<'a> {
    /// The key.
    pub key: &'a [u8],
    /// On a hit, set the item's expiration time to this (memcached's exptime rules): `gat`,
    /// `touch`.
    pub touch: Option<i64>,
}

/// A storage command ([`super::Store::set`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SetRequest<'a> {
    /// How an existing (or missing) item is treated.
    pub mode: SetMode,
    /// The key.
    pub key: &'a [u8],
    /// The client flags (ignored by append and prepend, which keep the item's).
    pub flags: u32,
    /// The expiration time as the client sent it (ignored by append and prepend).
    pub exptime: i64,
    /// The data.
    pub value: &'a [u8],
    /// Non-zero: store only if the live item's CAS unique equals it. As memcached's
    /// `do_store_item`, every mode compares it (binary APPEND/PREPEND with a CAS); `cas` mode
    /// requires it.
    pub cas: u64,
}

/// A delete ([`super::Store::delete`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeleteRequest<'a> {
    /// The key.
    pub key: &'a [u8],
    /// Non-zero: delete only if the live item's CAS unique equals it (binary DELETE).
    pub cas: u64,
}

/// incr/decr ([`super::Store::arith`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ArithRequest<'a> {
    /// The key.
    pub key: &'a [u8],
    /// `true` for incr, `false` for decr.
    pub incr: bool,
    /// The unsigned 64-bit delta.
    pub delta: u64,
    /// Create a missing item with this value and expiration time (binary protocol); `None`
    /// answers [`super::ArithOutcome::NotFound`] instead.
    pub initial: Option<(u64, i64)>,
    /// Non-zero: change the item only if its CAS unique equals it (binary INCREMENT/DECREMENT).
    pub cas: u64,
}
