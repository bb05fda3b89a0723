//! The meta commands' step of the text parser: memcached 1.6.18's `process_mget_command`,
//! `process_mset_command`, `process_mdelete_command`, `process_marithmetic_command` and
//! `process_meta_command`, up to the point where they touch the cache.
//!
//! Checks run in memcached's order, so the first refusal is memcached's. An `ms` refused after
//! its data length was read has its data block swallowed; refused before, its data line is
//! parsed as the next command, as in memcached.

use super::{MetaError, MetaFlags, MetaKey, MetaRequest};
use crate::text::item_fits;
use crate::text::number::{strtol32, strtoul32, strtoull};
use crate::text::tokens::Tokens;
use crate::{ErrorReply, Limits, StoreMode, KEY_MAX_LENGTH};

/// The most tokens (command and key included) a meta line may split into: memcached refuses
/// `ntokens > MFLAG_MAX_OPT_LENGTH` (20), its count including a terminal token.
const MAX_META_TOKENS: usize = 19;

/// The outcome of parsing one meta command line.
pub(crate) enum Step<'a> {
    /// A whole request occupying this many bytes of input.
    Done(MetaRequest<'a>, usize),
    /// An `ms` whose data has not fully arrived: total bytes needed.
    Incomplete(usize),
    /// memcached's refusal.
    Refused {
        /// The reply.
        reply: ErrorReply,
        /// Bytes after the line consumed with it (a bad data block).
        data: usize,
        /// Bytes after those to discard as they arrive (a refused `ms` data block).
        swallow: usize,
    },
}

fn refuse<'a>(reply: ErrorReply) -> Step<'a> {
    Step::Refused {
        reply,
        data: 0,
        swallow: 0,
    }
}

fn meta(error: MetaError) -> ErrorReply {
    ErrorReply::Meta(error)
}

/// Parses the meta command whose line (ending at `line_end`) was split into `t`; the command
/// token is two bytes starting with `m`.
pub(crate) fn command<'a>(
    t: &Tokens<'a>,
    input: &'a [u8],
    line_end: usize,
    limits: &Limits,
) -> Step<'a> {
    let done = |request| Step::Done(request, line_end);
    match t.get(0)[1] {
        b'g' => match prologue(t, MetaError::GetFlagsTooLong).and_then(|()| preparse(t, 2)) {
            Ok((key, flags)) => done(MetaRequest::Get { key, flags }),
            Err(reply) => refuse(reply),
        },
        b's' => set(t, input, line_end, limits),
        b'd' => match md_ma_prologue(t) {
            Err(reply) => refuse(reply),
            Ok((_, flags)) if flags.opaque_too_long() => refuse(meta(MetaError::OpaqueTooLong)),
            Ok((key, flags)) => done(MetaRequest::Delete { key, flags }),
        },
        b'a' => arith(t, line_end),
        b'n' => done(MetaRequest::Noop),
        b'e' => match debug_key(t) {
            Some(key) => done(MetaRequest::Debug { key }),
            None => refuse(ErrorReply::BadCommandLine),
        },
        _ => refuse(ErrorReply::UnknownCommand),
    }
}

/// The common checks of mg, md and ma before their flags are read: a key, of at most 250
/// bytes, and not too many flags.
fn prologue(t: &Tokens<'_>, too_many: MetaError) -> Result<(), ErrorReply> {
    if t.len < 2 {
        return Err(ErrorReply::UnknownCommand);
    }
    if t.get(1).len() > KEY_MAX_LENGTH {
        return Err(ErrorReply::BadCommandLine);
    }
    if t.len > MAX_META_TOKENS {
        return Err(meta(too_many));
    }
    Ok(())
}

/// md's and ma's prologue and flags: any flag error is worded `invalid or duplicate flag`.
fn md_ma_prologue<'a>(t: &Tokens<'a>) -> Result<(MetaKey<'a>, MetaFlags<'a>), ErrorReply> {
    prologue(t, MetaError::FlagsTooLong)?;
    preparse(t, 2).map_err(|_| meta(MetaError::InvalidOrDuplicateFlag))
}

/// memcached's `_meta_flag_preparse` from token `first` on.
///
/// An unknown or repeated flag stops the scan at once; other errors are remembered and the
/// scan goes on, the last message winning (`F` records an error without a message, leaving
/// the previous one, by default `bad command line format`).
fn preparse<'a>(t: &Tokens<'a>, first: usize) -> Result<(MetaKey<'a>, MetaFlags<'a>), ErrorReply> {
    let raw_key = t.get(1);
    let mut key = MetaKey::text(raw_key);
    let mut flags = MetaFlags {
        tokens: t.run_from(first),
        ..MetaFlags::default()
    };
    // Flag bytes seen so far, one bit each (flags are below 127).
    let mut seen = 0u128;
    let mut error: Option<ErrorReply> = None;
    let mut failed = false;
    let mut fail = |reply: Option<MetaError>| {
        failed = true;
        if let Some(reply) = reply {
            error = Some(meta(reply));
        }
    };
    for i in first..t.len {
        let token = t.get(i);
        let o = token[0];
        if o >= 127 || seen & (1 << o) != 0 {
            return Err(meta(MetaError::DuplicateFlag));
        }
        seen |= 1 << o;
        let rest = &token[1..];
        match o {
            b'b' => match MetaKey::base64(raw_key) {
                Some(decoded) => key = decoded,
                None => fail(Some(MetaError::KeyDecode)),
            },
            b'N' | b'T' | b'R' => match strtol32(rest) {
                Some(ttl) => {
                    let slot = match o {
                        b'N' => &mut flags.vivify,
                        b'T' => &mut flags.ttl,
                        _ => &mut flags.recache,
                    };
                    *slot = Some(ttl);
                }
                None => fail(Some(MetaError::BadToken)),
            },
            b'l' => flags.return_last_access = true,
            b'O' => flags.opaque = Some(rest),
            // Proxy hints, accepted and ignored.
            b'P' | b'L' => {}
            b'k' => flags.return_key = true,
            b's' => flags.return_size = true,
            b't' => flags.return_ttl = true,
            b'c' => flags.return_cas = true,
            b'f' => flags.return_flags = true,
            b'v' => flags.return_value = true,
            b'h' => flags.return_hit = true,
            b'u' => flags.no_bump = true,
            b'q' => flags.quiet = true,
            b'F' => match strtoul32(rest) {
                Some(client_flags) => flags.client_flags = Some(client_flags),
                None => fail(None),
            },
            b'C' => match strtoull(rest) {
                Some(cas) => flags.compare_cas = Some(cas),
                None => fail(Some(MetaError::BadToken)),
            },
            b'M' => match *rest {
                [mode] => flags.mode = Some(mode),
                _ => fail(Some(MetaError::ModeLength)),
            },
            b'J' => match strtoull(rest) {
                Some(initial) => flags.initial = Some(initial),
                None => fail(Some(MetaError::InvalidInitial)),
            },
            b'D' => match strtoull(rest) {
                Some(delta) => flags.delta = Some(delta),
                None => fail(Some(MetaError::InvalidDelta)),
            },
            b'I' => flags.invalidate = true,
            _ => return Err(meta(MetaError::InvalidFlag)),
        }
    }
    if failed {
        return Err(error.unwrap_or(ErrorReply::BadCommandLine));
    }
    flags.base64 = key.is_binary();
    Ok((key, flags))
}

/// `ms <key> <datalen> <flags>*` and its data block.
fn set<'a>(t: &Tokens<'a>, input: &'a [u8], line_end: usize, limits: &Limits) -> Step<'a> {
    if t.len < 2 {
        return refuse(ErrorReply::UnknownCommand);
    }
    if t.get(1).len() > KEY_MAX_LENGTH || t.len == 2 {
        return refuse(ErrorReply::BadCommandLine);
    }
    if t.len > MAX_META_TOKENS {
        return refuse(meta(MetaError::FlagsTooLong));
    }
    let Some(vlen) = strtol32(t.get(2)).and_then(crate::text::byte_count) else {
        return refuse(ErrorReply::BadCommandLine);
    };
    // From here on a refusal swallows the data block.
    let swallowed = |reply| Step::Refused {
        reply,
        data: 0,
        swallow: vlen + 2,
    };
    let (key, flags) = match preparse(t, 3) {
        Ok(parsed) => parsed,
        Err(reply) => return swallowed(reply),
    };
    let mode = match flags.mode {
        None | Some(b'S') => StoreMode::Set,
        Some(b'E') => StoreMode::Add,
        Some(b'A') => StoreMode::Append,
        Some(b'P') => StoreMode::Prepend,
        Some(b'R') => StoreMode::Replace,
        Some(_) => return swallowed(meta(MetaError::SetMode)),
    };
    // memcached notices a long opaque before the mode but reports it after.
    if flags.opaque_too_long() {
        return swallowed(meta(MetaError::OpaqueTooLong));
    }
    let mode = match mode {
        StoreMode::Set | StoreMode::Replace if flags.compare_cas.is_some() => StoreMode::Cas,
        mode => mode,
    };
    let key_len = if key.is_binary() {
        key.bytes(&mut [0; super::DECODED_KEY_MAX]).len()
    } else {
        key.raw().len()
    };
    if !item_fits(limits, key_len, flags.client_flags.unwrap_or(0), vlen) {
        let request = MetaRequest::SetTooLarge {
            key,
            swallow: vlen + 2,
        };
        return Step::Done(request, line_end);
    }
    let end = line_end.saturating_add(vlen + 2);
    let Some(block) = input.get(line_end..end) else {
        return Step::Incomplete(end);
    };
    if &block[vlen..] != b"\r\n" {
        return Step::Refused {
            reply: ErrorReply::BadDataChunk,
            data: vlen + 2,
            swallow: 0,
        };
    }
    let request = MetaRequest::Set {
        key,
        flags,
        value: &block[..vlen],
        mode,
    };
    Step::Done(request, end)
}

/// `ma <key> <flags>*`.
fn arith<'a>(t: &Tokens<'a>, line_end: usize) -> Step<'a> {
    let (key, flags) = match md_ma_prologue(t) {
        Ok(parsed) => parsed,
        Err(reply) => return refuse(reply),
    };
    let incr = match flags.mode {
        None | Some(b'I' | b'+') => true,
        Some(b'D' | b'-') => false,
        Some(_) => return refuse(meta(MetaError::ArithMode)),
    };
    Step::Done(MetaRequest::Arith { key, flags, incr }, line_end)
}

/// `me <key> [b]`: the key, decoded when the token right after it is exactly `b`; `None` for
/// memcached's `bad command line format`.
fn debug_key<'a>(t: &Tokens<'a>) -> Option<MetaKey<'a>> {
    let raw = t.get(1);
    if t.len < 2 || raw.len() > KEY_MAX_LENGTH {
        return None;
    }
    if t.len >= 3 && t.get(2) == b"b" {
        return MetaKey::base64(raw);
    }
    Some(MetaKey::text(raw))
}

/// The common `mg` in one pass over its line, without splitting it into [`Tokens`] first:
/// `mg <key> <flags>*` with single spaces, a plain key and only flags that take no number
/// (`k v q f s t c h l u`) or the opaque `O`, none repeated. Anything else (a NUL, a base64
/// key, a touch or vivify, an error to report) is `None`, left to the general path, which then
/// decides exactly as before. When it answers, it answers what the general path would: the
/// request and the bytes its line occupies.
///
/// A quiet multi-get is a run of these lines, one per key; this is what keeps it as cheap as
/// the text protocol's `get` of the same keys.
pub fn quick_get(input: &[u8]) -> Option<(MetaRequest<'_>, usize)> {
    if !input.starts_with(b"mg ") {
        return None;
    }
    let mut flags = MetaFlags::default();
    let (key, consumed) = quick_get_into(input, &mut flags)?;
    Some((MetaRequest::Get { key, flags }, consumed))
}

/// Whether a byte ends a token of an `mg` line (or, a NUL, the C string holding it).
const fn ends_token(b: u8) -> bool {
    matches!(b, b' ' | b'\r' | b'\n' | 0)
}

/// The length of the token at the start of `bytes`: up to the first byte that
/// [`ends_token`], eight bytes at a time; `None` if none does.
fn token_len(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // The high bit of each zero byte of `v`, exact for the lowest one.
    let zeros = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for word in &mut words {
        let w = u64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
        let found = zeros(w)
            | zeros(w ^ (ONES * u64::from(b' ')))
            | zeros(w ^ (ONES * u64::from(b'\r')))
            | zeros(w ^ (ONES * u64::from(b'\n')));
        if found != 0 {
            return Some(at + found.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    let tail = words.remainder();
    tail.iter().position(|&b| ends_token(b)).map(|n| at + n)
}

/// [`quick_get`] writing the flags into `flags`, which a run of lines reuses: the key and the
/// bytes the line occupies. `flags` must be [`MetaFlags::default`] or what this function left
/// in it (the last line's flags, which it reuses when this line's flag run is the same bytes).
/// On `None`, `flags` holds nothing meaningful beyond that contract.
#[inline]
pub fn quick_get_into<'a>(
    input: &'a [u8],
    flags: &mut MetaFlags<'a>,
) -> Option<(MetaKey<'a>, usize)> {
    debug_assert!(flags.ttl.is_none() && flags.vivify.is_none() && flags.recache.is_none());
    let rest = input.strip_prefix(b"mg ")?;
    let key_len = token_len(rest)?;
    if key_len == 0 || key_len > KEY_MAX_LENGTH {
        return None;
    }
    let key = MetaKey::text(&rest[..key_len]);
    let line = &rest[key_len..];
    // A pipeline's lines usually carry the same flags: when this line's flag run is the last
    // one's byte for byte (no opaque, which would differ), so are its flags.
    let last = flags.tokens;
    if !last.is_empty() && flags.opaque.is_none() && line.get(1..=last.len()) == Some(last) {
        let end = match line.get(last.len() + 1..) {
            Some([b'\r', b'\n', ..]) => Some(2),
            Some([b'\n', ..]) => Some(1),
            _ => None,
        };
        if line[0] == b' ' {
            if let Some(end) = end {
                flags.tokens = &line[1..=last.len()];
                return Some((key, 3 + key_len + 1 + last.len() + end));
            }
        }
    }
    // The flags and the line's end, from the byte after the key. Each flag is refused if
    // already set: a repeat is the general path's error. Until the line is read whole,
    // `flags.tokens` is empty (so a line refused half way is never taken as the last one).
    flags.tokens = &line[..0];
    flags.opaque = None;
    (flags.return_key, flags.return_value, flags.quiet) = (false, false, false);
    (flags.return_flags, flags.return_size, flags.return_ttl) = (false, false, false);
    (flags.return_cas, flags.return_hit, flags.return_last_access) = (false, false, false);
    flags.no_bump = false;
    let set = |flag: &mut bool| (!std::mem::replace(flag, true)).then_some(());
    // At `at`: a space and a flag token, or the line's end.
    let mut at = 0;
    let end = loop {
        match *line.get(at)? {
            b' ' => {
                let o = *line.get(at + 1)?;
                // Most flags are one letter; the token goes on to its end.
                let mut next = at + 2;
                while !ends_token(*line.get(next)?) {
                    next += 1;
                }
                match o {
                    b'k' => set(&mut flags.return_key)?,
                    b'v' => set(&mut flags.return_value)?,
                    b'q' => set(&mut flags.quiet)?,
                    b'f' => set(&mut flags.return_flags)?,
                    b's' => set(&mut flags.return_size)?,
                    b't' => set(&mut flags.return_ttl)?,
                    b'c' => set(&mut flags.return_cas)?,
                    b'h' => set(&mut flags.return_hit)?,
                    b'l' => set(&mut flags.return_last_access)?,
                    b'u' => set(&mut flags.no_bump)?,
                    b'O' if flags.opaque.is_none() => flags.opaque = Some(&line[at + 2..next]),
                    _ => return None,
                }
                at = next;
            }
            b'\n' => break at + 1,
            b'\r' if line.get(at + 1) == Some(&b'\n') => break at + 2,
            _ => return None,
        }
    };
    flags.tokens = if at > 0 { &line[1..at] } else { &line[..0] };
    Some((key, 3 + key_len + end))
}
