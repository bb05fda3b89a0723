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
    /// `touch`, meta `T`. Also applied after `vivify` to an item this request created, unless
    /// `vivify_last`.
    pub touch: Option<i64>,
    /// Meta `N` came after `T` on the line: an item this request creates keeps `vivify`'s
    /// exptime (memcached applies the two in token order). The lookup still counts as a touch.
    pub vivify_last: bool,
    /// Meta `u`: do not mark the item read (no fetched bit, CLOCK bump or access time).
    pub no_bump: bool,
    /// Meta get: take part in stale-while-revalidate. The view then reports
    /// [`super::ItemView::stale`] / [`super::ItemView::token_already_sent`] and, when this
    /// request wins (stale item with no token out, `vivify` created it, `recache` is due), sets
    /// the item's token-sent bit, all under the shard lock, so exactly one client wins until a
    /// store lands. Classic gets leave it off (they ignore stale items' marks).
    pub win_tokens: bool,
    /// Meta `N<ttl>`: on a miss, create an empty item (flags 0) with this exptime; the lookup
    /// is then a hit with [`super::ItemView::created`] (and, with `win_tokens`, the win).
    pub vivify: Option<i64>,
    /// Meta `R<ttl>`: with `win_tokens`, win when the item has an exptime earlier than this
    /// TTL from now (memcached: `exptime < realtime(R)`) and no token is out.
    pub recache: Option<i64>,
    /// Meta `R` came after `T` on the line: `recache` compares against the exptime `touch`
    /// set, not the item's exptime before it (memcached acts on the flags in order).
    pub recache_after_touch: bool,
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
    /// Meta `I` with [`SetMode::Cas`]: a `cas` *older* (lower) than the item's stores anyway,
    /// keeping the item's exptime, marking it stale and keeping its token-sent bit (memcached
    /// 1.6.18's `CAS_STALE`). Equal: a normal cas store; higher: `Exists`.
    pub invalidate: bool,
    /// Meta `b`: the key arrived base64-encoded; the item remembers it
    /// ([`super::ItemView::key_binary`]).
    pub key_binary: bool,
}

/// A delete ([`super::Store::delete`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeleteRequest<'a> {
    /// The key.
    pub key: &'a [u8],
    /// Delete only if the live item's CAS unique equals it: binary DELETE with a non-zero CAS,
    /// meta `C` with any (memcached's `md` compares even `C0`, which no item has).
    pub cas: Option<u64>,
    /// Meta `I`: do not remove the item; mark it stale, clear its token-sent bit (so the next
    /// meta get wins) and give it a new CAS. Counts no `delete_hits`.
    pub invalidate: bool,
    /// Meta `T` with `invalidate`: the stale item's new expiration time.
    pub stale_exptime: Option<i64>,
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
    /// Non-zero: change the item only if its CAS unique equals it (binary INCREMENT/DECREMENT,
    /// meta `C`).
    pub cas: u64,
    /// Meta `T`: after the arithmetic, set an existing item's expiration time to this. (An item
    /// created from `initial` takes `initial`'s exptime: pass the final one there.)
    pub touch: Option<i64>,
}
