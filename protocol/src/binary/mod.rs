//! memcached's binary protocol, byte-compatible with memcached 1.6.18 (`proto_bin.c` and
//! `protocol_binary.h` at tag 1.6.18 are the reference).
//!
//! A packet is a 24-byte [`Header`], then `extras_len` bytes of extras, `key_len` bytes of key
//! and the value, `body_len` bytes in all. Requests carry magic 0x80, responses 0x81; the
//! response echoes the request's opcode (quiet opcodes included) and opaque.
//!
//! - [`parse`] turns the start of a buffer into a [`Frame`] (the header fields a server needs to
//!   answer, plus the shared [`Request`]) or says how many bytes are still needed, or what
//!   memcached would answer for a bad packet and whether it then closes.
//! - [`compose`], [`compose_status`], [`compose_status_body`], [`compose_error_reply`] and
//!   [`write_response_header`] append responses to a caller-owned buffer;
//!   [`compose_request`] writes requests (for tests and tools).
//!
//! # What 1.6.18 does, and what the server must do with a frame
//!
//! Every statement below was checked against the real memcached 1.6.18 over a socket unless it
//! says "(source)"; the byte-exact expectations are the unit tests in `tests.rs`.
//!
//! - **Quiet opcodes.** GETQ/GETKQ/GATQ/GATKQ hide misses only (hits are sent). Every other
//!   quiet opcode (SETQ ADDQ REPLACEQ DELETEQ INCREMENTQ DECREMENTQ APPENDQ PREPENDQ FLUSHQ
//!   QUITQ) hides its success only; errors are always sent. [`compose`] applies these rules.
//!   NOOP answers an empty success and makes memcached write out everything queued before it.
//! - **QUIT** answers an empty success and closes; **QUITQ** closes without a reply.
//! - **Status and body of each error** (see [`Status::default_body`]): key not found
//!   `Not found`, key exists `Data exists for key.`, too large `Too large.`, invalid
//!   arguments `Invalid arguments`, not stored `Not stored.`, non-numeric
//!   `Non-numeric server-side value for incr or decr`, auth error `Auth failure.`, unknown
//!   command `Unknown command`, out of memory `Out of memory` (but the store paths send
//!   `Out of memory allocating item`, (source)). GETK/GATK misses are special: status 1 with
//!   the key as both key and body, no text.
//! - **Store results** map by opcode: ADD that is not stored is `KeyExists`, REPLACE that is not
//!   stored is `KeyNotFound`, SET/APPEND/PREPEND not stored is `NotStored`. A SET/ADD/REPLACE
//!   with a non-zero CAS is a CAS command ([`StoreMode::Cas`]): mismatch `KeyExists`, missing
//!   `KeyNotFound`. APPEND/PREPEND keep their mode but still compare the CAS when non-zero.
//!   DELETE and INCREMENT/DECREMENT compare [`Frame::cas`] when non-zero (mismatch
//!   `KeyExists`). The success of a store carries the item's new CAS in the header; DELETE,
//!   FLUSH, NOOP, QUIT and VERSION carry CAS 0.
//! - **TOUCH** answers a hit with the item's flags as 4 bytes of extras, the item's CAS, and no
//!   value: answer it with [`Response::Value`] (its data is dropped for TOUCH).
//! - **INCREMENT/DECREMENT** answer the new value as 8 big-endian bytes with the item's CAS.
//!   Expiration 0xffffffff means "do not create" ([`ArithRequest::initial`] is `None`); a miss
//!   is then `KeyNotFound`.
//! - **VERBOSITY (0x1b) is not implemented by 1.6.18**: it is an unknown command.
//! - **Unknown opcodes** answer 0x81 `Unknown command` and the connection stays open, but
//!   memcached then *swallows `body_len` more bytes* after the extras and key it has already
//!   consumed: an unknown opcode with a key eats the first bytes of the next packet. Verified:
//!   `0x30` with key `abc` followed by a NOOP gets no NOOP reply. [`parse`] reproduces this
//!   through [`ProtocolError::swallow`].
//! - **TOUCH, GAT(K)(Q) and STAT** accept a packet whose body is longer than extras + key; the
//!   surplus is *not* consumed and is read as the start of the next packet (usually a bad magic,
//!   so memcached closes). [`parse`] consumes the same bytes memcached does.
//! - **Closing errors**: a bad magic closes without a reply (on a connection the first byte
//!   already made binary; an auto-negotiating connection whose first byte is not 0x80 is a text
//!   connection). `key_len + extras_len > body_len` answers 0x81 `Unknown command` then
//!   closes. A key over 250 bytes, or extras/key/body lengths the opcode does not allow, answer
//!   0x04 `Invalid arguments` then close. memcached waits for the extras and key to arrive
//!   before answering these; tern's parser answers as soon as the header is read (same bytes,
//!   never a hang on a packet that can never be valid).
//! - **Too large.** A SET/ADD/REPLACE/APPEND/PREPEND whose item would exceed the item size limit
//!   answers 0x03 `Too large.` and swallows the value; the connection stays open. The item size
//!   is memcached's ([`item_fits`]): the 48-byte item header, the key and a NUL, 4 bytes if
//!   the flags are non-zero, the value and `\r\n`, and 8 bytes if CAS is enabled, at most `-I`. For SET memcached also unlinks the old item
//!   (see [`Request::TooLarge`]).
//! - **SASL (`-S`)**: only the binary protocol is served. Until the connection has
//!   authenticated, every opcode but SASL_LIST_MECHS, SASL_AUTH, SASL_STEP and VERSION answers
//!   0x20 `Auth failure.` and closes (see [`Header::requires_auth`]); the length check above
//!   comes first. Without `-S`, SASL_LIST_MECHS and SASL_AUTH/STEP answer 0x81 `Unknown command`
//!   (connection stays open, value discarded). A SASL mechanism name over 32 bytes answers
//!   0x04 `Invalid arguments` (connection stays open). See `tern::auth` for the flow.
//! - **STAT** answers one packet per statistic (opcode 0x10, key = name, value = value, CAS 0)
//!   and an empty packet at the end; `reset`, `detail on|off` answer only the empty packet; an
//!   unknown group answers `KeyNotFound`.
//! - memcached writes queued responses only when its read buffer runs dry or on NOOP; on a
//!   closing error it drops responses still queued (verified: a STAT followed by a bad magic in
//!   the same write gets no reply at all). tern need not copy that.
//!
//! The ElastiCache auto-discovery opcodes are not in memcached 1.6.18; their layout follows the
//! AWS cluster clients: CONFIG_GET 0x60 (key, no extras), CONFIG_SET 0x64 (4 bytes of flags as
//! extras, key, value), CONFIG_DELETE 0x66 (key). A CONFIG_GET hit answers the flags as 4 bytes
//! of extras, no key, the data as value. No quiet forms exist.
//!
//! [`ProtocolError::swallow`]: crate::ProtocolError::swallow
//! [`StoreMode::Cas`]: crate::StoreMode::Cas
//! [`ArithRequest::initial`]: crate::ArithRequest::initial
//! [`Request::TooLarge`]: crate::Request::TooLarge
//! [`Request`]: crate::Request
//! [`Response::Value`]: crate::Response::Value

mod compose;
mod parse;
#[cfg(test)]
mod tests;

pub use crate::item_fits;
pub use compose::{
    compose, compose_error_reply, compose_header_status, compose_request, compose_stat,
    compose_status, compose_status_body, compose_value_head, write_response_header, ResponseHeader,
};
pub use parse::parse;

use crate::Request;

/// Length of every packet header.
pub const HEADER_LEN: usize = 24;
/// Magic byte of a request.
pub const REQUEST_MAGIC: u8 = 0x80;
/// Magic byte of a response.
pub const RESPONSE_MAGIC: u8 = 0x81;
/// The body memcached sends with a successful SASL_AUTH/SASL_STEP.
pub const SASL_AUTHENTICATED: &[u8] = b"Authenticated";

/// A decoded 24-byte packet header (request or response; byte 6-7 is the vbucket id in a
/// request and the status in a response).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// 0x80 request, 0x81 response.
    pub magic: u8,
    /// The opcode byte as sent (may be one tern does not know).
    pub opcode: u8,
    /// Length of the key.
    pub key_len: u16,
    /// Length of the extras.
    pub extras_len: u8,
    /// Data type (always 0, raw bytes).
    pub data_type: u8,
    /// vbucket id (request) or status (response).
    pub vbucket_or_status: u16,
    /// Length of extras + key + value.
    pub body_len: u32,
    /// Echoed verbatim in the response.
    pub opaque: u32,
    /// The CAS unique.
    pub cas: u64,
}

impl Header {
    /// Decodes the first 24 bytes of `input`, or `None` if fewer have arrived. Checks nothing.
    pub fn peek(input: &[u8]) -> Option<Header> {
        let h: &[u8; HEADER_LEN] = input.get(..HEADER_LEN)?.try_into().ok()?;
        Some(Header {
            magic: h[0],
            opcode: h[1],
            key_len: u16::from_be_bytes([h[2], h[3]]),
            extras_len: h[4],
            data_type: h[5],
            vbucket_or_status: u16::from_be_bytes([h[6], h[7]]),
            body_len: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
            opaque: u32::from_be_bytes([h[12], h[13], h[14], h[15]]),
            cas: u64::from_be_bytes([h[16], h[17], h[18], h[19], h[20], h[21], h[22], h[23]]),
        })
    }

    /// Appends the 24 header bytes to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(self.magic);
        out.push(self.opcode);
        out.extend_from_slice(&self.key_len.to_be_bytes());
        out.push(self.extras_len);
        out.push(self.data_type);
        out.extend_from_slice(&self.vbucket_or_status.to_be_bytes());
        out.extend_from_slice(&self.body_len.to_be_bytes());
        out.extend_from_slice(&self.opaque.to_be_bytes());
        out.extend_from_slice(&self.cas.to_be_bytes());
    }

    /// Whether, with SASL on, this opcode is refused (0x20 `Auth failure.`, then close) until
    /// the connection has authenticated. memcached lets only SASL_LIST_MECHS, SASL_AUTH,
    /// SASL_STEP and VERSION through; unknown opcodes are refused too.
    ///
    /// memcached checks this after the length check (`key_len + extras_len > body_len`, which
    /// [`parse`] reports) and before everything else, so a server with SASL on calls
    /// [`Header::peek`] and this before [`parse`], and answers the length error first:
    /// [`Header::lengths_consistent`].
    pub fn requires_auth(&self) -> bool {
        !matches!(
            Opcode::from_u8(self.opcode),
            Some(Opcode::SaslListMechs | Opcode::SaslAuth | Opcode::SaslStep | Opcode::Version)
        )
    }

    /// Whether `key_len + extras_len <= body_len` (memcached answers 0x81 and closes
    /// otherwise, before any authentication check).
    pub fn lengths_consistent(&self) -> bool {
        u32::from(self.key_len) + u32::from(self.extras_len) <= self.body_len
    }
}

macro_rules! opcodes {
    ($($(#[$doc:meta])* $name:ident = $value:literal,)*) => {
        /// The opcodes tern understands: every one memcached 1.6.18 implements, plus the
        /// ElastiCache `config` commands.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum Opcode {
            $($(#[$doc])* $name = $value,)*
        }

        impl Opcode {
            /// The opcode for a byte, or `None` for one memcached answers "Unknown command".
            pub fn from_u8(byte: u8) -> Option<Opcode> {
                match byte {
                    $($value => Some(Opcode::$name),)*
                    _ => None,
                }
            }

            /// Every opcode, for tests and tools.
            pub const ALL: &'static [Opcode] = &[$(Opcode::$name,)*];
        }
    };
}

opcodes! {
    /// GET: value and flags of a key; a miss answers `Not found`.
    Get = 0x00,
    /// SET.
    Set = 0x01,
    /// ADD.
    Add = 0x02,
    /// REPLACE.
    Replace = 0x03,
    /// DELETE.
    Delete = 0x04,
    /// INCREMENT.
    Increment = 0x05,
    /// DECREMENT.
    Decrement = 0x06,
    /// QUIT: answer, then close.
    Quit = 0x07,
    /// FLUSH (optional 4-byte expiration extras).
    Flush = 0x08,
    /// GETQ: GET whose miss is silent.
    GetQ = 0x09,
    /// NOOP: empty success; flushes quiet replies.
    Noop = 0x0a,
    /// VERSION.
    Version = 0x0b,
    /// GETK: GET whose reply carries the key.
    GetK = 0x0c,
    /// GETKQ: GETK whose miss is silent.
    GetKQ = 0x0d,
    /// APPEND.
    Append = 0x0e,
    /// PREPEND.
    Prepend = 0x0f,
    /// STAT: one packet per statistic, then an empty one.
    Stat = 0x10,
    /// SETQ.
    SetQ = 0x11,
    /// ADDQ.
    AddQ = 0x12,
    /// REPLACEQ.
    ReplaceQ = 0x13,
    /// DELETEQ.
    DeleteQ = 0x14,
    /// INCREMENTQ.
    IncrementQ = 0x15,
    /// DECREMENTQ.
    DecrementQ = 0x16,
    /// QUITQ: close without a reply.
    QuitQ = 0x17,
    /// FLUSHQ.
    FlushQ = 0x18,
    /// APPENDQ.
    AppendQ = 0x19,
    /// PREPENDQ.
    PrependQ = 0x1a,
    /// TOUCH: new expiration; a hit answers the flags (no value).
    Touch = 0x1c,
    /// GAT: get and touch.
    Gat = 0x1d,
    /// GATQ: GAT whose miss is silent.
    GatQ = 0x1e,
    /// SASL_LIST_MECHS.
    SaslListMechs = 0x20,
    /// SASL_AUTH.
    SaslAuth = 0x21,
    /// SASL_STEP.
    SaslStep = 0x22,
    /// GATK: GAT whose reply carries the key.
    GatK = 0x23,
    /// GATKQ: GATK whose miss is silent.
    GatKQ = 0x24,
    /// ElastiCache CONFIG_GET.
    ConfigGet = 0x60,
    /// ElastiCache CONFIG_SET.
    ConfigSet = 0x64,
    /// ElastiCache CONFIG_DELETE.
    ConfigDelete = 0x66,
}

impl Opcode {
    /// Whether this is a quiet opcode (see the module docs for what each hides).
    pub fn is_quiet(self) -> bool {
        use Opcode::*;
        matches!(
            self,
            GetQ | GetKQ
                | SetQ
                | AddQ
                | ReplaceQ
                | DeleteQ
                | IncrementQ
                | DecrementQ
                | QuitQ
                | FlushQ
                | AppendQ
                | PrependQ
                | GatQ
                | GatKQ
        )
    }

    /// Whether a hit (and a miss) carries the key: GETK, GETKQ, GATK, GATKQ.
    pub fn returns_key(self) -> bool {
        matches!(
            self,
            Opcode::GetK | Opcode::GetKQ | Opcode::GatK | Opcode::GatKQ
        )
    }

    /// Whether this is a retrieval whose quiet form hides misses (GET/GAT family).
    pub fn is_retrieval(self) -> bool {
        use Opcode::*;
        matches!(self, Get | GetQ | GetK | GetKQ | Gat | GatQ | GatK | GatKQ)
    }

    /// The opcode's byte.
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

/// A response status. memcached 1.6.18 sends exactly these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Status {
    /// 0x0000.
    Success = 0x0000,
    /// 0x0001 `Not found`.
    KeyNotFound = 0x0001,
    /// 0x0002 `Data exists for key.`
    KeyExists = 0x0002,
    /// 0x0003 `Too large.`
    TooLarge = 0x0003,
    /// 0x0004 `Invalid arguments`.
    InvalidArguments = 0x0004,
    /// 0x0005 `Not stored.`
    NotStored = 0x0005,
    /// 0x0006 `Non-numeric server-side value for incr or decr`.
    NonNumeric = 0x0006,
    /// 0x0020 `Auth failure.`
    AuthError = 0x0020,
    /// 0x0021: SASL wants another step; the body is the server's challenge.
    AuthContinue = 0x0021,
    /// 0x0081 `Unknown command`.
    UnknownCommand = 0x0081,
    /// 0x0082 `Out of memory`.
    OutOfMemory = 0x0082,
}

impl Status {
    /// The body memcached's `write_bin_error` sends with this status when it gives no other
    /// text (empty for the two non-errors).
    pub fn default_body(self) -> &'static [u8] {
        match self {
            Status::Success | Status::AuthContinue => b"",
            Status::KeyNotFound => b"Not found",
            Status::KeyExists => b"Data exists for key.",
            Status::TooLarge => b"Too large.",
            Status::InvalidArguments => b"Invalid arguments",
            Status::NotStored => b"Not stored.",
            Status::NonNumeric => b"Non-numeric server-side value for incr or decr",
            Status::AuthError => b"Auth failure.",
            Status::UnknownCommand => b"Unknown command",
            Status::OutOfMemory => b"Out of memory",
        }
    }

    /// The status's wire value.
    pub fn as_u16(self) -> u16 {
        self as u16
    }
}

/// One parsed request packet: what the server needs to answer it, and the shared request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The opcode as sent (quiet forms stay quiet; the response echoes it).
    pub opcode: Opcode,
    /// Echoed in the response.
    pub opaque: u32,
    /// The request's CAS: compared by SET/ADD/REPLACE (as [`StoreRequest::cas`]),
    /// APPEND/PREPEND, DELETE and INCREMENT/DECREMENT when non-zero; ignored by the rest.
    ///
    /// [`StoreRequest::cas`]: crate::StoreRequest::cas
    pub cas: u64,
    /// The request, borrowing key and value from the input.
    pub request: Request<'a>,
}

impl Frame<'_> {
    /// Whether the opcode is quiet.
    pub fn quiet(&self) -> bool {
        self.opcode.is_quiet()
    }

    /// Whether replies carry the key (GETK, GETKQ, GATK, GATKQ).
    pub fn returns_key(&self) -> bool {
        self.opcode.returns_key()
    }

    /// Whether the server must close the connection after answering: QUIT and QUITQ.
    pub fn closes(&self) -> bool {
        matches!(self.opcode, Opcode::Quit | Opcode::QuitQ)
    }
}
