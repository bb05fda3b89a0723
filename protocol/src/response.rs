//! The response type every codec composes from.

use crate::ErrorReply;

/// One reply (or one piece of a multi-part reply) to a request.
///
/// A text `get a b` answers `Value`, `Value`, `End`; a binary GET answers one `Value` (or a
/// `NotFound`); each codec decides the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response<'a> {
    /// A hit: `VALUE <key> <flags> <bytes> [<cas>]\r\n<data>\r\n` in text.
    Value {
        /// The key.
        key: &'a [u8],
        /// The client flags.
        flags: u32,
        /// The CAS unique, present for `gets`/`gats` (text) and always in binary.
        cas: Option<u64>,
        /// The data.
        data: &'a [u8],
    },
    /// End of a retrieval: `END`.
    End,
    /// `STORED`.
    Stored,
    /// `NOT_STORED`.
    NotStored,
    /// `EXISTS`: a CAS mismatch.
    Exists,
    /// `NOT_FOUND`.
    NotFound,
    /// `DELETED`.
    Deleted,
    /// `TOUCHED`.
    Touched,
    /// `OK`.
    Ok,
    /// The new value after incr/decr, with the item's new CAS unique (binary reports it).
    Number {
        /// The value.
        value: u64,
        /// The item's CAS unique after the update.
        cas: u64,
    },
    /// `VERSION <version>`.
    Version(&'a str),
    /// One statistic: `STAT <name> <value>`.
    Stat {
        /// The name.
        name: &'a str,
        /// The value, already formatted.
        value: &'a str,
    },
    /// `RESET` (after `stats reset`).
    Reset,
    /// An error reply.
    Error(ErrorReply),
    /// `SERVER_ERROR out of memory storing object` (with `-M`, when nothing may be evicted).
    OutOfMemory,
}
