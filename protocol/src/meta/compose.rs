//! Writing meta replies (for the server) and meta requests (for clients).
//!
//! Replies follow memcached 1.6.18 byte for byte: a status code, then the return flags in the
//! order the request sent them (memcached walks the request's tokens), then for `mg` the fixed
//! tail ` Z`, ` X`, ` W`, then `\r\n`. The executor supplies the facts about the item.

use super::{put_key, MetaError, MetaFlags, MetaKey, MetaRequest};

const CRLF: &[u8] = b"\r\n";

fn put_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn put_i64(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// memcached's `META_CHAR`: a space and the flag byte.
fn put_flag(out: &mut Vec<u8>, flag: u8) {
    out.extend_from_slice(&[b' ', flag]);
}

/// A TTL left as memcached prints it for `t`: `-1` for no expiry, else the seconds left as an
/// unsigned 32-bit difference.
fn put_ttl(out: &mut Vec<u8>, ttl: Option<u32>) {
    match ttl {
        None => out.extend_from_slice(b"-1"),
        Some(ttl) => put_u64(out, u64::from(ttl)),
    }
}

/// The status codes of meta replies that carry no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// `HD`: success.
    Hd,
    /// `EN`: mg miss.
    En,
    /// `NF`: not found (md, ma, ms in cas mode).
    Nf,
    /// `NS`: not stored (ms add/replace/append/prepend).
    Ns,
    /// `EX`: CAS mismatch.
    Ex,
}

impl Status {
    /// The two-byte code.
    pub fn code(self) -> &'static [u8] {
        match self {
            Status::Hd => b"HD",
            Status::En => b"EN",
            Status::Nf => b"NF",
            Status::Ns => b"NS",
            Status::Ex => b"EX",
        }
    }
}

/// Appends ` O<opaque>` for an `O` token, or refuses a too-long one as memcached does when it
/// reaches it while writing the reply.
fn put_opaque(token: &[u8], out: &mut Vec<u8>) -> Result<(), MetaError> {
    if token.len() > super::OPAQUE_TOKEN_MAX {
        return Err(MetaError::OpaqueTooLong);
    }
    out.push(b' ');
    out.extend_from_slice(token);
    Ok(())
}

/// Runs `write` and, if it fails, drops what it appended so the executor can write the error
/// reply in its place.
fn or_undo(
    out: &mut Vec<u8>,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), MetaError>,
) -> Result<(), MetaError> {
    let start = out.len();
    let result = write(out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Appends a reply that carries only a status and the `O`/`k` echoes, the key echoed as the
/// request sent it: mg's miss (`EN`), every md reply, ma's `NF`/`EX`.
///
/// Fails with [`MetaError::OpaqueTooLong`] (writing nothing) for an `O` token over 32 bytes,
/// which memcached notices only here for mg and ma; it is then the reply.
pub fn compose_status(
    status: Status,
    key: &MetaKey<'_>,
    flags: &MetaFlags<'_>,
    out: &mut Vec<u8>,
) -> Result<(), MetaError> {
    or_undo(out, |out| {
        out.extend_from_slice(status.code());
        for token in flags.tokens() {
            match token[0] {
                b'O' => put_opaque(token, out)?,
                b'k' => {
                    put_flag(out, b'k');
                    key.echo(out);
                }
                _ => {}
            }
        }
        out.extend_from_slice(CRLF);
        Ok(())
    })
}

/// Appends an `ms` reply: `status` with the `O`, `k` and `c` echoes. `cas` is the stored item's
/// CAS unique on `HD`, and 0 otherwise (memcached echoes `c0` when nothing was stored).
pub fn compose_set(
    status: Status,
    key: &MetaKey<'_>,
    flags: &MetaFlags<'_>,
    cas: u64,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(status.code());
    for token in flags.tokens() {
        match token[0] {
            // The parser refused longer opaques for ms.
            b'O' => {
                out.push(b' ');
                out.extend_from_slice(token);
            }
            b'k' => {
                put_flag(out, b'k');
                key.echo(out);
            }
            b'c' => {
                put_flag(out, b'c');
                put_u64(out, cas);
            }
            _ => {}
        }
    }
    out.extend_from_slice(CRLF);
}

/// What an `mg` hit reports about its item, as it was before this request's own LRU bump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HitFacts<'k> {
    /// The item's key (decoded).
    pub key: &'k [u8],
    /// Whether the item was stored with a base64 key (memcached's `ITEM_KEY_BINARY`): `k`
    /// then echoes it re-encoded, followed by ` b`.
    pub key_binary: bool,
    /// The value's length.
    pub value_len: usize,
    /// The CAS unique.
    pub cas: u64,
    /// The client flags.
    pub client_flags: u32,
    /// TTL left before this request (`None`: no expiry, printed `-1`), as memcached computes
    /// it: `(exptime - now)` as an unsigned 32-bit number.
    pub ttl: Option<u32>,
    /// TTL left once `T` is applied (a `t` after the `T` token prints it).
    pub touch_ttl: Option<u32>,
    /// Whether this request created the item (`N` on a miss).
    pub created: bool,
    /// TTL left once `N` is applied to the created item.
    pub vivify_ttl: Option<u32>,
    /// Seconds since the item was last accessed (`now - it->time`).
    pub last_access: u32,
    /// Whether the item had been fetched before (memcached's `ITEM_FETCHED`).
    pub fetched: bool,
    /// Whether a win token had already been handed out for the item (`Z`).
    pub token_sent: bool,
    /// Whether the item is stale (`X`).
    pub stale: bool,
    /// Whether this request wins (`W`): vivified, recache due, or stale with no token out.
    pub won: bool,
}

/// Appends an `mg` hit's header line: `VA <size>` (with `v`) or `HD`, the return flags in
/// request order, then ` Z`, ` X`, ` W` as the facts say, and `\r\n`. With `v` the caller
/// appends the value and `\r\n`.
///
/// Fails with [`MetaError::OpaqueTooLong`] (writing nothing) for an `O` token over 32 bytes;
/// memcached answers that error after having done the lookup (and any `T`/`N` before the `O`).
pub fn compose_get_hit(
    flags: &MetaFlags<'_>,
    facts: &HitFacts<'_>,
    out: &mut Vec<u8>,
) -> Result<(), MetaError> {
    or_undo(out, |out| {
        if flags.return_value {
            out.extend_from_slice(b"VA ");
            put_u64(out, facts.value_len as u64);
        } else {
            out.extend_from_slice(b"HD");
        }
        let mut ttl = facts.ttl;
        // A byte walk rather than `flags.tokens()`: only a token's first byte matters, but
        // for `O`.
        let run = flags.tokens;
        let mut i = 0;
        while let Some(&first) = run.get(i) {
            let start = i;
            i += 1;
            if first == b' ' {
                continue;
            }
            while run.get(i).is_some_and(|&b| b != b' ') {
                i += 1;
            }
            match first {
                b'T' => ttl = facts.touch_ttl,
                b'N' if facts.created => ttl = facts.vivify_ttl,
                b's' => {
                    put_flag(out, b's');
                    put_u64(out, facts.value_len as u64);
                }
                b't' => {
                    put_flag(out, b't');
                    put_ttl(out, ttl);
                }
                b'c' => {
                    put_flag(out, b'c');
                    put_u64(out, facts.cas);
                }
                b'f' => {
                    put_flag(out, b'f');
                    put_u64(out, u64::from(facts.client_flags));
                }
                b'l' => {
                    put_flag(out, b'l');
                    put_u64(out, u64::from(facts.last_access));
                }
                b'h' => {
                    put_flag(out, b'h');
                    out.push(if facts.fetched { b'1' } else { b'0' });
                }
                b'O' => put_opaque(&run[start..i], out)?,
                b'k' => {
                    put_flag(out, b'k');
                    put_key(facts.key, facts.key_binary, out);
                }
                _ => {}
            }
        }
        if facts.token_sent {
            put_flag(out, b'Z');
        }
        if facts.stale {
            put_flag(out, b'X');
        }
        if facts.won {
            put_flag(out, b'W');
        }
        out.extend_from_slice(CRLF);
        Ok(())
    })
}

/// What a successful `ma` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArithFacts {
    /// The new value.
    pub value: u64,
    /// The item's CAS unique after the update.
    pub cas: u64,
    /// TTL left before any `T`/`N` of this request (`None`: no expiry).
    pub ttl: Option<u32>,
    /// TTL left once `T` is applied.
    pub touch_ttl: Option<u32>,
    /// Whether this request created the item (`N` on a miss).
    pub created: bool,
    /// TTL left once `N` is applied to the created item.
    pub vivify_ttl: Option<u32>,
}

/// Appends a successful `ma` reply: `VA <len>` (with `v`) or `HD`, the `c`, `t`, `O`, `k`
/// echoes in request order, `\r\n`, and with `v` the number and `\r\n`.
///
/// Fails with [`MetaError::OpaqueTooLong`] (writing nothing) for an `O` token over 32 bytes;
/// memcached answers that error after the arithmetic is done.
pub fn compose_arith(
    key: &MetaKey<'_>,
    flags: &MetaFlags<'_>,
    facts: &ArithFacts,
    out: &mut Vec<u8>,
) -> Result<(), MetaError> {
    let mut number = itoa::Buffer::new();
    let number = number.format(facts.value).as_bytes();
    or_undo(out, |out| {
        if flags.return_value {
            out.extend_from_slice(b"VA ");
            put_u64(out, number.len() as u64);
        } else {
            out.extend_from_slice(b"HD");
        }
        let mut ttl = facts.ttl;
        for token in flags.tokens() {
            match token[0] {
                b'c' => {
                    put_flag(out, b'c');
                    put_u64(out, facts.cas);
                }
                b't' => {
                    put_flag(out, b't');
                    put_ttl(out, ttl);
                }
                b'T' => ttl = facts.touch_ttl,
                b'N' if facts.created => ttl = facts.vivify_ttl,
                b'O' => put_opaque(token, out)?,
                b'k' => {
                    put_flag(out, b'k');
                    key.echo(out);
                }
                _ => {}
            }
        }
        out.extend_from_slice(CRLF);
        if flags.return_value {
            out.extend_from_slice(number);
            out.extend_from_slice(CRLF);
        }
        Ok(())
    })
}

/// What `me` reports about an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DebugFacts<'k> {
    /// The item's key (decoded).
    pub key: &'k [u8],
    /// Whether the item was stored with a base64 key (printed re-encoded, without ` b`).
    pub key_binary: bool,
    /// TTL left (`None`: no expiry), as for [`HitFacts::ttl`]; printed as `exp=` negated.
    pub ttl: Option<u32>,
    /// Seconds since last access.
    pub last_access: u32,
    /// The CAS unique.
    pub cas: u64,
    /// Whether the item has been fetched.
    pub fetched: bool,
    /// The slab class id.
    pub class: u32,
    /// memcached's total item size (`ITEM_ntotal`).
    pub size: u64,
}

/// Appends `me`'s hit line: `ME <key> exp=<e> la=<l> cas=<c> fetch=<yes|no> cls=<n>
/// size=<s>`. `exp` is `-1` without expiry, else memcached's `now - exptime` (negative while
/// the item lives). A miss is `EN` ([`compose_status`] with [`Status::En`] and no flags).
pub fn compose_debug(facts: &DebugFacts<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"ME ");
    if facts.key_binary || !super::printable_bare(facts.key) {
        super::base64::encode(facts.key, out);
    } else {
        out.extend_from_slice(facts.key);
    }
    out.extend_from_slice(b" exp=");
    match facts.ttl {
        None => out.extend_from_slice(b"-1"),
        Some(ttl) => put_i64(out, i64::from(ttl.wrapping_neg() as i32)),
    }
    out.extend_from_slice(b" la=");
    put_u64(out, u64::from(facts.last_access));
    out.extend_from_slice(b" cas=");
    put_u64(out, facts.cas);
    out.extend_from_slice(if facts.fetched {
        b" fetch=yes cls="
    } else {
        b" fetch=no cls="
    });
    put_u64(out, u64::from(facts.class));
    out.extend_from_slice(b" size=");
    put_u64(out, facts.size);
    out.extend_from_slice(CRLF);
}

/// Appends `MN\r\n`.
pub fn compose_noop(out: &mut Vec<u8>) {
    out.extend_from_slice(b"MN\r\n");
}

/// Appends the flags as a client sends them, in a fixed order (the parser keeps no memory of
/// the order it was given beyond the echo run).
fn put_request_flags(flags: &MetaFlags<'_>, out: &mut Vec<u8>) {
    let switches = [
        (flags.base64, b'b'),
        (flags.return_cas, b'c'),
        (flags.return_flags, b'f'),
        (flags.return_hit, b'h'),
        (flags.return_key, b'k'),
        (flags.return_last_access, b'l'),
        (flags.return_size, b's'),
        (flags.return_ttl, b't'),
        (flags.no_bump, b'u'),
        (flags.return_value, b'v'),
        (flags.quiet, b'q'),
        (flags.invalidate, b'I'),
    ];
    for (on, flag) in switches {
        if on {
            put_flag(out, flag);
        }
    }
    if let Some(opaque) = flags.opaque {
        put_flag(out, b'O');
        out.extend_from_slice(opaque);
    }
    for (value, flag) in [
        (flags.ttl, b'T'),
        (flags.vivify, b'N'),
        (flags.recache, b'R'),
    ] {
        if let Some(value) = value {
            put_flag(out, flag);
            put_i64(out, i64::from(value));
        }
    }
    if let Some(client_flags) = flags.client_flags {
        put_flag(out, b'F');
        put_u64(out, u64::from(client_flags));
    }
    for (value, flag) in [
        (flags.compare_cas, b'C'),
        (flags.initial, b'J'),
        (flags.delta, b'D'),
    ] {
        if let Some(value) = value {
            put_flag(out, flag);
            put_u64(out, value);
        }
    }
    if let Some(mode) = flags.mode {
        put_flag(out, b'M');
        out.push(mode);
    }
}

/// Appends `request` as a client sends it (line, and for `ms` the data block);
/// [`crate::text::parse`] reads it back as the same request. Flags are written in a fixed
/// order. An [`MetaRequest::SetTooLarge`] is written as its `ms` line alone (the data is not
/// known).
pub fn compose_request(request: &MetaRequest<'_>, out: &mut Vec<u8>) {
    let (command, key, flags): (&[u8], _, _) = match *request {
        MetaRequest::Get { key, flags } => (b"mg ", key, Some(flags)),
        MetaRequest::Set {
            key, flags, value, ..
        } => {
            out.extend_from_slice(b"ms ");
            out.extend_from_slice(key.raw());
            out.push(b' ');
            put_u64(out, value.len() as u64);
            put_request_flags(&flags, out);
            out.extend_from_slice(CRLF);
            out.extend_from_slice(value);
            out.extend_from_slice(CRLF);
            return;
        }
        MetaRequest::SetTooLarge { key, swallow } => {
            out.extend_from_slice(b"ms ");
            out.extend_from_slice(key.raw());
            out.push(b' ');
            put_u64(out, swallow.saturating_sub(2) as u64);
            if key.is_binary() {
                out.extend_from_slice(b" b");
            }
            out.extend_from_slice(CRLF);
            return;
        }
        MetaRequest::Delete { key, flags } => (b"md ", key, Some(flags)),
        MetaRequest::Arith { key, flags, .. } => (b"ma ", key, Some(flags)),
        MetaRequest::Noop => {
            out.extend_from_slice(b"mn\r\n");
            return;
        }
        MetaRequest::Debug { key } => (b"me ", key, None),
    };
    out.extend_from_slice(command);
    out.extend_from_slice(key.raw());
    match flags {
        Some(flags) => put_request_flags(&flags, out),
        None if key.is_binary() => out.extend_from_slice(b" b"),
        None => {}
    }
    out.extend_from_slice(CRLF);
}
