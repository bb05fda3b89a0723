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
