//! memcached's meta commands (`mg`, `ms`, `md`, `ma`, `mn`, `me`), as memcached 1.6.18 serves
//! them (`proto_text.c`; its `doc/protocol.txt` describes them, the source decides doubts).
//!
//! Meta lines arrive over the text protocol, so [`crate::text::parse`] reads them and returns
//! [`crate::Request::Meta`]; this module holds the request types, the parser step the text
//! parser dispatches to, and the reply composers.
//!
//! - Every meta command shares one flag parser (memcached's `_meta_flag_preparse`), so every
//!   command accepts every flag memcached knows and ignores the ones it does not use; one
//!   [`MetaFlags`] therefore serves all commands.
//! - Return flags are echoed in the order the client sent them, so [`MetaFlags`] keeps the raw
//!   run of flag tokens and the composers walk it, as memcached does; the executor passes the
//!   facts about the item (`*Facts` structs).
//! - Base64 keys (`b`) are checked at parse time and decoded on demand into a caller-owned
//!   [`KeyBuf`] (no allocation, and the request stays small).
//! - The common `mg` (a plain key, flags without numbers) has a one-pass parser,
//!   [`quick_get`], which [`crate::text::parse`] tries first and a connection uses for runs of
//!   quiet gets; it answers exactly what the general parser answers, or leaves the line to it.
//! - memcached 1.6.18 has no `E` (explicit CAS) and no `x` (md: drop the value) flag: both are
//!   refused as unknown flags, as 1.6.18 refuses them.

mod base64;
mod compose;
mod parse;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use compose::{
    compose_arith, compose_debug, compose_get_hit, compose_noop, compose_request, compose_set,
    compose_status, ArithFacts, DebugFacts, HitFacts, Status,
};
pub(crate) use parse::{command, Step};
pub use parse::{quick_get, quick_get_into};

use crate::KEY_MAX_LENGTH;

/// The longest key a base64 key token can decode to: the raw token is limited to
/// [`KEY_MAX_LENGTH`] bytes before decoding, as memcached checks it.
pub const DECODED_KEY_MAX: usize = KEY_MAX_LENGTH / 4 * 3;

/// Room for a decoded base64 key.
pub type KeyBuf = [u8; DECODED_KEY_MAX];

/// The longest `O` token memcached echoes, the `O` included (`MFLAG_MAX_OPAQUE_LENGTH`).
pub const OPAQUE_TOKEN_MAX: usize = 32;

/// A meta request, borrowed from the input buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaRequest<'a> {
    /// `mg <key> <flags>*`.
    Get {
        /// The key.
        key: MetaKey<'a>,
        /// The flags.
        flags: MetaFlags<'a>,
    },
    /// `ms <key> <datalen> <flags>*` and its data block.
    Set {
        /// The key.
        key: MetaKey<'a>,
        /// The flags.
        flags: MetaFlags<'a>,
        /// The data, without its `\r\n`.
        value: &'a [u8],
        /// The store mode (`M`, with `C` upgrading set and replace to cas).
        mode: crate::StoreMode,
    },
    /// An `ms` whose item would be over the size limit. memcached answers
    /// `SERVER_ERROR object too large for cache`, discards the `swallow` bytes of data after
    /// the line, bumps `store_too_large`, and unlinks the key's existing item (whatever the
    /// mode) so no stale value survives.
    SetTooLarge {
        /// The key.
        key: MetaKey<'a>,
        /// Bytes of data (including the trailing `\r\n`) to discard after the line.
        swallow: usize,
    },
    /// `md <key> <flags>*`.
    Delete {
        /// The key.
        key: MetaKey<'a>,
        /// The flags.
        flags: MetaFlags<'a>,
    },
    /// `ma <key> <flags>*`.
    Arith {
        /// The key.
        key: MetaKey<'a>,
        /// The flags.
        flags: MetaFlags<'a>,
        /// Increment (`MI`, `M+`, default) or decrement (`MD`, `M-`).
        incr: bool,
    },
    /// `mn`: answers `MN` and flushes.
    Noop,
    /// `me <key> [b]`: memcached's debug line for an item.
    Debug {
        /// The key.
        key: MetaKey<'a>,
    },
}

impl<'a> MetaRequest<'a> {
    /// The reply mode its flags ask for: [`crate::ReplyMode::Quiet`] with `q`, which hides the
    /// command's nominal reply and never an error.
    pub fn reply_mode(&self) -> crate::ReplyMode {
        match *self {
            MetaRequest::Get { flags, .. }
            | MetaRequest::Set { flags, .. }
            | MetaRequest::Delete { flags, .. }
            | MetaRequest::Arith { flags, .. } => crate::ReplyMode::from_quiet(flags.quiet),
            MetaRequest::SetTooLarge { .. } | MetaRequest::Noop | MetaRequest::Debug { .. } => {
                crate::ReplyMode::Normal
            }
        }
    }

    /// The request's key; `None` for `mn`.
    pub fn key(&self) -> Option<MetaKey<'a>> {
        match *self {
            MetaRequest::Get { key, .. }
            | MetaRequest::Set { key, .. }
            | MetaRequest::SetTooLarge { key, .. }
            | MetaRequest::Delete { key, .. }
            | MetaRequest::Arith { key, .. }
            | MetaRequest::Debug { key } => Some(key),
            MetaRequest::Noop => None,
        }
    }

    /// The key as sent (base64 keys still encoded); empty for `mn`.
    pub fn raw_key(&self) -> &'a [u8] {
        self.key().map_or(b"", |key| key.raw())
    }
}

/// A meta key: the token as sent, and whether it is base64 (`b`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaKey<'a> {
    raw: &'a [u8],
    binary: bool,
}

impl<'a> MetaKey<'a> {
    /// A plain key.
    pub fn text(raw: &'a [u8]) -> Self {
        MetaKey { raw, binary: false }
    }

    /// A base64 key, or `None` if memcached could not decode it (or it is over
    /// [`KEY_MAX_LENGTH`] bytes before decoding).
    pub fn base64(raw: &'a [u8]) -> Option<Self> {
        if raw.len() > KEY_MAX_LENGTH {
            return None;
        }
        base64::decode(raw, None)?;
        Some(MetaKey { raw, binary: true })
    }

    /// The key token as sent.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Whether the key was sent in base64 (`b`).
    pub fn is_binary(&self) -> bool {
        self.binary
    }

    /// The key's bytes: the token itself, or its decoded form written into `buf`.
    pub fn bytes<'s>(&'s self, buf: &'s mut KeyBuf) -> &'s [u8] {
        if !self.binary {
            return self.raw;
        }
        // The constructors checked that the key decodes and fits.
        let len = base64::decode(self.raw, Some(&mut buf[..])).unwrap_or(0);
        &buf[..len]
    }

    /// Appends the key as memcached echoes it for `k`: as is, or re-encoded from its decoded
    /// bytes and followed by ` b`.
    pub fn echo(&self, out: &mut Vec<u8>) {
        if !self.binary {
            return out.extend_from_slice(self.raw);
        }
        let mut buf = [0; DECODED_KEY_MAX];
        put_key(self.bytes(&mut buf), true, out);
    }
}

/// memcached's `META_KEY` after the `k`: the key, or its base64 form and ` b`.
///
/// Also base64 where memcached would break the reply's framing: a key stored without `b` (by
/// the binary protocol, or grown by `ma`) that holds a space, a newline or a NUL, none of which
/// a text key can hold. memcached prints such a key bare.
pub(crate) fn put_key(key: &[u8], binary: bool, out: &mut Vec<u8>) {
    if binary || !printable_bare(key) {
        base64::encode(key, out);
        out.extend_from_slice(b" b");
    } else {
        out.extend_from_slice(key);
    }
}

/// Whether `key` can stand in a text reply as it is: none of the bytes that end a token or a
/// line.
pub(crate) fn printable_bare(key: &[u8]) -> bool {
    !key.iter().any(|&b| matches!(b, b' ' | b'\n' | 0))
}

/// The flags of a meta request (shared by all commands, as memcached shares its flag parser).
///
/// Booleans are the return flags and switches; `Option`s are the flags carrying a value. The
/// raw run of flag tokens is kept so replies echo flags in the order the client sent them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetaFlags<'a> {
    /// The flag tokens as sent, space separated (the reply composers walk them).
    pub(crate) tokens: &'a [u8],
    /// `b`: the key is base64.
    pub base64: bool,
    /// `c`: return the CAS unique.
    pub return_cas: bool,
    /// `f`: return the client flags.
    pub return_flags: bool,
    /// `h`: return whether the item had been fetched before.
    pub return_hit: bool,
    /// `k`: return the key.
    pub return_key: bool,
    /// `l`: return the seconds since the item was last accessed.
    pub return_last_access: bool,
    /// `s`: return the value's size.
    pub return_size: bool,
    /// `t`: return the TTL left (-1 for none).
    pub return_ttl: bool,
    /// `v`: return the value (mg, ma).
    pub return_value: bool,
    /// `u`: do not bump the item in the LRU.
    pub no_bump: bool,
    /// `q`: quiet, suppress the nominal reply (which one depends on the command).
    pub quiet: bool,
    /// `I`: invalidate (md: mark stale instead of deleting; ms with `C`: a CAS older than the
    /// item's stores the value marked stale).
    pub invalidate: bool,
    /// `O<token>`: the opaque, without its `O`, echoed back. May be too long for mg and ma,
    /// whose composers refuse it ([`MetaError::OpaqueTooLong`]) as memcached does, late.
    pub opaque: Option<&'a [u8]>,
    /// `T<ttl>`: new expiration time (touch for mg/ma/md, exptime for ms).
    pub ttl: Option<i32>,
    /// `N<ttl>`: autovivify on miss with this expiration time (mg, ma).
    pub vivify: Option<i32>,
    /// `R<ttl>`: win a recache when the TTL left is below this (mg).
    pub recache: Option<i32>,
    /// `F<flags>`: client flags to store (ms).
    pub client_flags: Option<u32>,
    /// `C<cas>`: CAS unique to compare against (ms, md, ma).
    pub compare_cas: Option<u64>,
    /// `M<mode>`: the mode byte (ms, ma); validated by the command that uses it.
    pub mode: Option<u8>,
    /// `J<initial>`: initial value for an autovivified `ma` (default 0).
    pub initial: Option<u64>,
    /// `D<delta>`: delta for `ma` (default 1).
    pub delta: Option<u64>,
}

impl<'a> MetaFlags<'a> {
    /// The flag tokens in the order they were sent.
    pub fn tokens(&self) -> impl Iterator<Item = &'a [u8]> {
        self.tokens.split(|&b| b == b' ').filter(|t| !t.is_empty())
    }

    /// Whether the opaque is longer than memcached echoes.
    pub fn opaque_too_long(&self) -> bool {
        self.opaque.is_some_and(|o| o.len() + 1 > OPAQUE_TOKEN_MAX)
    }

    /// Whether flag `later` was sent after flag `earlier` (both present). memcached's `mg`
    /// acts on its flags in the order they were sent: an `N` after a `T` leaves an item it
    /// created with `N`'s exptime, and an `R` after a `T` compares against the new exptime.
    pub fn comes_after(&self, later: u8, earlier: u8) -> bool {
        let at = |flag| self.tokens().position(|t| t[0] == flag);
        matches!((at(later), at(earlier)), (Some(l), Some(e)) if l > e)
    }

    /// The expiration time (as the client sent it) an `mg`/`ma` leaves on the item: the last,
    /// in token order, of `T` and (only when this request created the item) `N`; `None` when
    /// the exptime is unchanged. (The item's exptime at creation is 0 for both.)
    pub fn final_exptime(&self, created: bool) -> Option<i32> {
        let mut last = None;
        for token in self.tokens() {
            match token[0] {
                b'T' => last = self.ttl,
                b'N' if created => last = self.vivify,
                _ => {}
            }
        }
        last
    }
}

/// The meta-protocol error replies. Each carries memcached 1.6.18's exact line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetaError {
    /// `mg` with more than 17 flags (the wording differs from the other commands').
    GetFlagsTooLong,
    /// `ms`/`md`/`ma` with too many flags.
    FlagsTooLong,
    /// A flag byte seen twice (or a byte ≥ 127).
    DuplicateFlag,
    /// A flag byte memcached does not know.
    InvalidFlag,
    /// `md`/`ma`: any flag error.
    InvalidOrDuplicateFlag,
    /// `b` on a key that is not base64.
    KeyDecode,
    /// `N`/`T`/`R`/`C` with a bad number.
    BadToken,
    /// `M` not followed by exactly one byte.
    ModeLength,
    /// `J` with a bad number.
    InvalidInitial,
    /// `D` with a bad number.
    InvalidDelta,
    /// An `O` token over [`OPAQUE_TOKEN_MAX`] bytes.
    OpaqueTooLong,
    /// `ms` with an unknown `M` mode.
    SetMode,
    /// `ma` with an unknown `M` mode.
    ArithMode,
    /// `mg`: a refcount overflow during fetch (executor only).
    RefcountOverflow,
    /// `ma`: out of memory while replacing the item (executor only).
    ArithOutOfMemory,
    /// `ma`: out of memory while autovivifying (executor only).
    VivifyOutOfMemory,
}

impl MetaError {
    /// memcached's reply line, without `\r\n`.
    pub fn line(self) -> &'static str {
        match self {
            MetaError::GetFlagsTooLong => "CLIENT_ERROR options flags are too long",
            MetaError::FlagsTooLong => "CLIENT_ERROR options flags too long",
            MetaError::DuplicateFlag => "CLIENT_ERROR duplicate flag",
            MetaError::InvalidFlag => "CLIENT_ERROR invalid flag",
            MetaError::InvalidOrDuplicateFlag => "CLIENT_ERROR invalid or duplicate flag",
            MetaError::KeyDecode => "CLIENT_ERROR error decoding key",
            MetaError::BadToken => "CLIENT_ERROR bad token in command line format",
            MetaError::ModeLength => "CLIENT_ERROR incorrect length for M token",
            MetaError::InvalidInitial => "CLIENT_ERROR invalid numeric initial value",
            MetaError::InvalidDelta => "CLIENT_ERROR invalid numeric delta value",
            MetaError::OpaqueTooLong => "CLIENT_ERROR opaque token too long",
            MetaError::SetMode => "CLIENT_ERROR invalid mode for ms M token",
            MetaError::ArithMode => "CLIENT_ERROR invalid mode for ma M token",
            MetaError::RefcountOverflow => "SERVER_ERROR refcount overflow during fetch",
            MetaError::ArithOutOfMemory => "SERVER_ERROR out of memory",
            MetaError::VivifyOutOfMemory => "SERVER_ERROR Out of memory allocating new item",
        }
    }
}
