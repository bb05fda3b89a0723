//! memcached's wire formats, as pure functions: bytes in, typed requests out; typed responses in,
//! bytes out.
//!
//! This crate knows nothing of sockets, event loops or the item store. Every codec (the classic
//! text protocol in [`text`], the binary protocol in [`binary`], and the meta commands in
//! [`meta`])
//! parses into the same [`Request`] type and composes the same [`Response`] type, so the server
//! executes a command once whatever protocol carried it.
//!
//! Parsers take the bytes read so far and answer one of three things:
//! - `Ok((request, consumed))`: a whole request; `consumed` bytes of input belong to it and the
//!   request borrows from them (keys and values are never copied);
//! - `Err(ParseError::Incomplete { .. })`: more bytes are needed, an expected condition;
//! - `Err(ParseError::...)`: a protocol error that knows exactly what memcached would answer and
//!   what happens to the connection afterwards.
//!
//! Composers append to a caller-owned `Vec<u8>`, so a connection reuses one output buffer.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod binary;
pub mod meta;
pub mod operator;
mod request;
mod response;
pub mod text;

pub use request::{
    ArithRequest, ConfigRequest, GetRequest, Keys, ReplyMode, Request, StatsDetail, StatsGroup,
    StoreMode, StoreRequest, WatchEvents,
};
pub use response::Response;

/// The longest key memcached accepts (its `KEY_MAX_LENGTH`).
pub const KEY_MAX_LENGTH: usize = 250;

/// Limits a parser enforces as soon as a request header is read, before any body is awaited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The item size limit (`-I`), in bytes. A storage command whose item would not fit is
    /// answered `SERVER_ERROR object too large for cache` and its data is discarded.
    pub item_size_max: usize,
    /// Whether CAS is enabled (`-C` turns it off); memcached counts the 8 CAS bytes against the
    /// item size limit only when it is on.
    pub cas_enabled: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            item_size_max: 1024 * 1024,
            cas_enabled: true,
        }
    }
}

/// Why a parser could not return a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The input holds the start of a request but not all of it. `needed`, when known, is the
    /// total number of bytes (from the start of the input) the request occupies, so a connection
    /// can wait for that many before parsing again instead of re-parsing on every read.
    Incomplete {
        /// Total bytes the request needs, when the header has been read.
        needed: Option<usize>,
    },
    /// A protocol error with memcached's reply for it.
    Protocol(ProtocolError),
}

/// A request memcached would refuse, with what it sends back and what it does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError {
    /// What to answer (nothing if the command asked for `noreply`).
    pub reply: ErrorReply,
    /// Bytes of input that belong to the bad request and are dropped now.
    pub consumed: usize,
    /// Bytes that follow `consumed` and must also be discarded, possibly before they have
    /// arrived (memcached's "swallow" state after refusing a storage command's data block).
    pub swallow: usize,
    /// Whether the request carried `noreply`, which silences even this error in the text
    /// protocol.
    pub noreply: bool,
    /// Whether the connection must be closed after the reply is sent.
    pub close: bool,
}

/// The error replies of memcached's protocols. Each codec knows how to write each one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorReply {
    /// Text `ERROR`: unknown command. Binary: status 0x0081 "Unknown command".
    UnknownCommand,
    /// Text `CLIENT_ERROR bad command line format`. Binary: status 0x0004 "Invalid arguments".
    BadCommandLine,
    /// Text `CLIENT_ERROR bad data chunk`: a data block not ending in `\r\n`.
    BadDataChunk,
    /// Text `SERVER_ERROR object too large for cache`. Binary: status 0x0003 "Too large.".
    TooLarge,
    /// Text `CLIENT_ERROR invalid exptime argument` (touch, gat).
    InvalidExptime,
    /// Text `CLIENT_ERROR invalid numeric delta argument` (incr, decr).
    InvalidDelta,
    /// Text `CLIENT_ERROR line too long`-style refusal where memcached simply closes; no reply.
    Close,
    /// Text `delete <key> <n>` with `n` other than 0: memcached's usage line.
    DeleteUsage,
    /// Text `shutdown <anything but graceful>` when shutdown is enabled (`-A`).
    InvalidShutdownMode,
    /// Any `shutdown` when shutdown is not enabled (memcached checks this before the mode).
    ShutdownDisabled,
    /// incr/decr of an item whose value is not a decimal number. Binary: status 0x0006.
    NonNumeric,
    /// `flush_all` when flushing is disabled (`-F`). Binary: status 0x0020 "Auth failure.".
    FlushDisabled,
    /// `stats detail` without `on`, `off` or `dump`: memcached's usage line.
    StatsDetailUsage,
    /// `stats cachedump` with fewer than two arguments: `CLIENT_ERROR bad command line`.
    CachedumpUsage,
    /// `stats cachedump` of a class id of 64 or more: `CLIENT_ERROR Illegal slab id`.
    IllegalSlabId,
    /// `stats cachedump` when `-X` forbids dumping: `CLIENT_ERROR stats cachedump not allowed`.
    CachedumpDisabled,
    /// `watch` when `-W` forbids it: `CLIENT_ERROR watch commands not allowed`.
    WatchDisabled,
    /// `watch` after other commands in the same read: `ERROR cannot pipeline other commands
    /// before watch`.
    WatchPipelined,
    /// Binary SASL data that memcached could not hold in an item: status 0x0082 "Out of
    /// memory" (the connection stays open).
    SaslOutOfMemory,
    /// A meta-protocol error (`mg`, `ms`, `md`, `ma`), with memcached's wording.
    Meta(meta::MetaError),
    /// A store operator command's status or error line (`BADCLASS ...`, `NOSPARE ...`).
    Operator(operator::OperatorReply),
}

/// `sizeof(item)` in memcached 1.6.18 on a 64-bit machine: the per-item header its size limit
/// counts (pointers, times, lengths, flags bytes).
pub const ITEM_HEADER_SIZE: usize = 48;

/// memcached's `item_size_ok` (`item_make_header` + `slabs_clsid`): whether an item of this key,
/// flags and value length fits under `limits.item_size_max`. Both codecs refuse a storage
/// command by it as soon as its header is read.
///
/// memcached counts its item header, the key and a NUL, 4 bytes for non-zero flags, the value
/// and its `\r\n`, and 8 bytes of CAS unless `-C`. Verified at the boundary (largest value
/// accepted, next one refused) against memcached 1.6.18 with `-I 1m`, `-I 2m` and `-C`, keys of
/// 1 and 250 bytes, flags 0 and non-zero: with `-I 1m`, a 3-byte key and flags 0 fit a
/// 1048514-byte value but not 1048515; with flags 1 the limit is 1048510.
pub fn item_fits(limits: &Limits, key_len: usize, flags: u32, value_len: usize) -> bool {
    let flags_len = if flags == 0 { 0 } else { 4 };
    let cas_len = if limits.cas_enabled { 8 } else { 0 };
    let total = (ITEM_HEADER_SIZE as u64)
        .saturating_add(key_len as u64 + 1)
        .saturating_add(flags_len)
        .saturating_add(value_len as u64)
        .saturating_add(2)
        .saturating_add(cas_len);
    total <= limits.item_size_max as u64
}
