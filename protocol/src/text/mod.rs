//! memcached's classic text protocol; memcached 1.6.18's `proto_text.c` is the reference.
//!
//! - [`parse`] reads one request from the start of a buffer (zero-copy: keys and values borrow
//!   from it), telling apart a whole request, an incomplete one, and memcached's exact error.
//! - [`compose`] and [`compose_value_header`] write the server's replies;
//!   [`compose_request`] writes requests, for clients (tests, load generator, cluster tool).
//!
//! The reply strings memcached sends that have no [`crate::ErrorReply`] variant of their own are
//! constants here, so a server can recognise and reuse them.

mod commands;
mod compose;
pub(crate) mod number;

pub use number::strtoull as safe_strtoull;
mod parse;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
pub(crate) mod tokens;

pub use compose::{compose, compose_request, compose_value_header};
pub(crate) use parse::byte_count;
pub use parse::{parse, MAX_LINE_WITHOUT_NEWLINE};

use crate::Limits;

/// `delete <key> <n>` with `n` other than `0` (memcached's reply, two spaces included).
pub const DELETE_USAGE: &str =
    "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]";

/// `shutdown <anything but graceful>` when shutdown is enabled (`-A`).
pub const INVALID_SHUTDOWN_MODE: &str = "CLIENT_ERROR invalid shutdown mode";

/// Any `shutdown` line when shutdown is not enabled (memcached checks this before the mode).
pub const SHUTDOWN_NOT_ENABLED: &str = "ERROR: shutdown not enabled";

/// incr/decr on an item whose value is not a decimal number.
pub const NON_NUMERIC_VALUE: &str = "CLIENT_ERROR cannot increment or decrement non-numeric value";

/// `flush_all` when flushing is disabled (`-F`); memcached checks this before the delay.
pub const FLUSH_ALL_NOT_ALLOWED: &str = "CLIENT_ERROR flush_all not allowed";

/// `sizeof(item)` in memcached 1.6.18 on a 64-bit machine: the per-item header its size limit
/// counts (pointers, times, lengths, flags bytes).
pub const ITEM_HEADER_SIZE: usize = 48;

/// memcached's `item_size_ok`: whether an item of this key, flags and value length fits under
/// `limits.item_size_max`.
///
/// memcached counts its item header, the key and a NUL, 4 bytes for non-zero flags, the value
/// and its `\r\n`, and 8 bytes of CAS unless `-C`. Verified at the boundary (largest value
/// accepted, next one refused) against memcached 1.6.18 with `-I 1m`, `-I 2m` and `-C`, keys of
/// 1 and 250 bytes, flags 0 and non-zero.
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
