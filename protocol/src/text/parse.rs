//! The text protocol parser: one request from the start of a byte buffer.
//!
//! It follows memcached 1.6.18's `try_read_command_ascii`, `tokenize_command` and
//! `process_command_ascii` step by step, so every odd input gets memcached's exact answer:
//! - a line ends at the first `\n`; one `\r` before it is dropped, but only when the line holds
//!   something else too (a lone `\r\n` is the one-byte command `\r`, answered `ERROR`);
//! - the line is a C string: it ends at its first NUL byte;
//! - tokens are separated by runs of spaces only (a tab is part of a token); leading and
//!   trailing spaces are ignored;
//! - at most 23 tokens are split off; whatever follows is one unprocessed remainder (retrieval
//!   commands carry on splitting it, so `get` takes any number of keys);
//! - the token count is checked per command before anything else (`ERROR`), then `noreply` is
//!   looked for in the last token, then the key and numbers are checked (`CLIENT_ERROR ...`,
//!   silenced by `noreply`).

use super::commands::{arith, config, delete, flush_all, shutdown, stats, touch, verbosity, watch};
use super::item_fits;
use super::number::{strtol32, strtoul32, strtoull};
use super::tokens::Tokens;
use crate::{
    ErrorReply, GetRequest, Keys, Limits, ParseError, ProtocolError, ReplyMode, Request, StoreMode,
    StoreRequest, KEY_MAX_LENGTH,
};

/// How many bytes without a `\n` memcached buffers before it decides the client is sending
/// junk and closes the connection (unless the line is a multi-get, which may be that long).
pub const MAX_LINE_WITHOUT_NEWLINE: usize = 2048;

/// How many leading spaces a multi-get line without `\n` may carry before memcached closes.
const MAX_LEADING_SPACES: usize = 100;

/// What a parse step found wrong, before it is placed at its position in the input.
pub(super) struct Refusal {
    pub(super) reply: ErrorReply,
    pub(super) noreply: bool,
    /// Bytes after the command line that are dropped with it (a refused data block).
    pub(super) data: usize,
    /// Bytes after those to discard as they arrive.
    pub(super) swallow: usize,
}

pub(super) fn refuse(reply: ErrorReply, noreply: bool) -> Refusal {
    Refusal {
        reply,
        noreply,
        data: 0,
        swallow: 0,
    }
}

/// Parses one request from the start of `input`.
///
/// Returns the request and the number of bytes it occupies, [`ParseError::Incomplete`] when
/// more input is needed, or the [`ParseError::Protocol`] error memcached would answer. Never
/// panics; `consumed` never exceeds `input.len()`.
pub fn parse<'a>(input: &'a [u8], limits: &Limits) -> Result<(Request<'a>, usize), ParseError> {
    if let Some((request, consumed)) = crate::meta::quick_get(input) {
        return Ok((Request::Meta(request), consumed));
    }
    parse_general(input, limits)
}

/// [`parse`] without its quick path for the common `mg` ([`crate::meta::quick_get`]): what
/// that path must agree with, exposed for the tests and fuzz targets that check it does.
#[doc(hidden)]
pub fn parse_general<'a>(
    input: &'a [u8],
    limits: &Limits,
) -> Result<(Request<'a>, usize), ParseError> {
    let Some(newline) = memchr::memchr(b'\n', input) else {
        return Err(incomplete_line(input));
    };
    let line_end = newline + 1;
    let mut line = &input[..newline];
    if line.len() > 1 && line[line.len() - 1] == b'\r' {
        line = &line[..line.len() - 1];
    }
    if let Some(nul) = memchr::memchr(0, line) {
        line = &line[..nul];
    }
    let tokens = Tokens::split(line);
    match command(&tokens, input, line_end, limits) {
        Ok(Parsed::Done(request, consumed)) => Ok((request, consumed)),
        Ok(Parsed::Incomplete(needed)) => Err(ParseError::Incomplete {
            needed: Some(needed),
        }),
        Err(Refusal {
            reply,
            noreply,
            data,
            swallow,
        }) => Err(ParseError::Protocol(ProtocolError {
            reply,
            consumed: line_end + data,
            swallow,
            noreply,
            close: reply == ErrorReply::Close,
        })),
    }
}

/// The answer for input holding no `\n` yet: wait, or close if memcached would.
fn incomplete_line(input: &[u8]) -> ParseError {
    if input.len() > MAX_LINE_WITHOUT_NEWLINE {
        let spaces = input.iter().take_while(|&&b| b == b' ').count();
        let rest = &input[spaces..];
        let multiget = rest.starts_with(b"get ") || rest.starts_with(b"gets ");
        if spaces > MAX_LEADING_SPACES || !multiget {
            return ParseError::Protocol(ProtocolError {
                reply: ErrorReply::Close,
                consumed: input.len(),
                swallow: 0,
                noreply: false,
                close: true,
            });
        }
    }
    ParseError::Incomplete { needed: None }
}

/// A command line's outcome when it is not refused outright.
pub(super) enum Parsed<'a> {
    Done(Request<'a>, usize),
    /// A storage header whose data block has not fully arrived: total bytes needed.
    Incomplete(usize),
}

/// `process_command_ascii`: dispatch on the command token.
fn command<'a>(
    t: &Tokens<'a>,
    input: &'a [u8],
    line_end: usize,
    limits: &Limits,
) -> Result<Parsed<'a>, Refusal> {
    let done = |request| Ok(Parsed::Done(request, line_end));
    let name = t.get(0);
    if t.len == 0 || name.len() < 2 {
        return Err(refuse(ErrorReply::UnknownCommand, false));
    }
    // Meta commands are all two bytes, starting with `m`.
    if name.len() == 2 && name[0] == b'm' {
        return match crate::meta::command(t, input, line_end, limits) {
            crate::meta::Step::Done(meta, consumed) => {
                Ok(Parsed::Done(Request::Meta(meta), consumed))
            }
            crate::meta::Step::Incomplete(needed) => Ok(Parsed::Incomplete(needed)),
            crate::meta::Step::Refused {
                reply,
                data,
                swallow,
            } => Err(Refusal {
                reply,
                noreply: false,
                data,
                swallow,
            }),
        };
    }
    match name {
        b"get" | b"gets" | b"gat" | b"gats" | b"bget" => {
            // `bget` is memcached's ancient alias of `get`, still served.
            if t.len < 2 {
                return Err(refuse(ErrorReply::UnknownCommand, false));
            }
            done(retrieval(t, name)?)
        }
        b"set" => storage(t, StoreMode::Set, input, line_end, limits),
        b"add" => storage(t, StoreMode::Add, input, line_end, limits),
        b"replace" => storage(t, StoreMode::Replace, input, line_end, limits),
        b"append" => storage(t, StoreMode::Append, input, line_end, limits),
        b"prepend" => storage(t, StoreMode::Prepend, input, line_end, limits),
        b"cas" => storage(t, StoreMode::Cas, input, line_end, limits),
        b"delete" => done(delete(t)?),
        b"incr" => done(arith(t, true)?),
        b"decr" => done(arith(t, false)?),
        b"touch" => done(touch(t)?),
        b"flush_all" => done(flush_all(t)?),
        b"verbosity" => done(verbosity(t)?),
        b"version" => done(Request::Version),
        b"quit" => done(Request::Quit),
        // memcached -Z: any arguments are accepted; a last `noreply` hides `OK`.
        b"refresh_certs" => done(Request::RefreshCerts {
            reply: ReplyMode::from_noreply(t.noreply()),
        }),
        b"shutdown" => done(shutdown(t)?),
        b"stats" => done(stats(t)?),
        b"watch" => done(watch(t)),
        // tern's ElastiCache auto-discovery; memcached 1.6.18 answers ERROR here.
        b"config" => config(t, input, line_end, limits),
        // Commands memcached 1.6.18 has and tern does not serve: plain ERROR, never the
        // HTTP close below.
        b"lru_crawler" => done(super::operator::lru_crawler(t)?),
        b"slabs" => done(super::operator::slabs(t)?),
        b"lru" => done(super::operator::lru(t)?),
        b"cache_memlimit" => done(super::operator::cache_memlimit(t)?),
        b"extstore" | b"debugtime" | b"misbehave" => Err(refuse(ErrorReply::UnknownCommand, false)),
        _ => {
            // memcached closes on what looks like an HTTP request line, but only for commands
            // outside its first-letter branches (so `GET / HTTP/1.1` closes and `get / HTTP/1.1`
            // is a get of two keys).
            let branch_letter = matches!(name[0], b'g' | b's' | b'a' | b'c' | b'i' | b'd' | b't');
            if !branch_letter && t.last().starts_with(b"HTTP/") {
                Err(refuse(ErrorReply::Close, false))
            } else {
                Err(refuse(ErrorReply::UnknownCommand, false))
            }
        }
    }
}

/// `get`/`gets`/`gat`/`gats`/`bget <...>`, at least one token after the command.
fn retrieval<'a>(t: &Tokens<'a>, name: &[u8]) -> Result<Request<'a>, Refusal> {
    let with_cas = name == b"gets" || name == b"gats";
    let (touch, keys) = if name == b"gat" || name == b"gats" {
        let exptime = strtol32(t.get(1)).ok_or(refuse(ErrorReply::InvalidExptime, false))?;
        (Some(i64::from(exptime)), t.run_from(2))
    } else {
        (None, t.run_from(1))
    };
    // memcached stops at the first key over 250 bytes: the keys before it are looked up (and
    // for gat touched), then their replies are dropped for an error.
    let (mut end, mut key_too_long) = (0, false);
    for part in keys.split(|&b| b == b' ') {
        if part.len() > KEY_MAX_LENGTH {
            key_too_long = true;
            break;
        }
        end += part.len() + 1;
    }
    Ok(Request::Get(GetRequest {
        keys: Keys::spaced(&keys[..end.min(keys.len())]),
        with_cas,
        touch,
        key_too_long,
    }))
}

/// `process_update_command` and the data block read after it.
fn storage<'a>(
    t: &Tokens<'a>,
    mode: StoreMode,
    input: &'a [u8],
    line_end: usize,
    limits: &Limits,
) -> Result<Parsed<'a>, Refusal> {
    let with_cas = mode == StoreMode::Cas;
    let want = if with_cas { 6 } else { 5 };
    if t.len != want && t.len != want + 1 {
        return Err(refuse(ErrorReply::UnknownCommand, false));
    }
    let noreply = t.noreply();
    let bad = || refuse(ErrorReply::BadCommandLine, noreply);
    let key = t.get(1);
    if key.len() > KEY_MAX_LENGTH {
        return Err(bad());
    }
    let flags = strtoul32(t.get(2)).ok_or_else(bad)?;
    let exptime = strtol32(t.get(3)).ok_or_else(bad)?;
    let vlen = strtol32(t.get(4)).ok_or_else(bad)?;
    let cas = if with_cas {
        strtoull(t.get(5)).ok_or_else(bad)?
    } else {
        0
    };
    let vlen = byte_count(vlen).ok_or_else(bad)?;
    if !item_fits(limits, key.len(), flags, vlen) {
        let request = Request::TooLarge {
            mode,
            key,
            swallow: vlen + 2,
            reply: ReplyMode::from_noreply(noreply),
        };
        return Ok(Parsed::Done(request, line_end));
    }
    let value = data_block(input, line_end, vlen, noreply)?;
    let Some(value) = value else {
        return Ok(Parsed::Incomplete(line_end.saturating_add(vlen + 2)));
    };
    let request = Request::Store(StoreRequest {
        mode,
        key,
        flags,
        exptime: i64::from(exptime),
        value,
        cas,
        reply: ReplyMode::from_noreply(noreply),
    });
    Ok(Parsed::Done(request, line_end.saturating_add(vlen + 2)))
}

/// memcached's range for a data block's length: `0..=INT_MAX - 2` (the `\r\n` must still fit
/// an `int`).
pub(crate) fn byte_count(vlen: i32) -> Option<usize> {
    usize::try_from(vlen)
        .ok()
        .filter(|&n| n <= (i32::MAX - 2) as usize)
}

/// The `vlen` bytes of data after the header and their `\r\n`: `Ok(None)` until they have all
/// arrived, then the data, or `CLIENT_ERROR bad data chunk` when the two bytes after the data
/// are not `\r\n` (memcached has read and dropped all `vlen + 2` bytes by then; whatever follows
/// is parsed as the next command).
pub(super) fn data_block(
    input: &[u8],
    line_end: usize,
    vlen: usize,
    noreply: bool,
) -> Result<Option<&[u8]>, Refusal> {
    // `vlen + 2` fits any `usize` (vlen <= i32::MAX - 2); the sum saturates rather than wrap.
    let end = line_end.saturating_add(vlen + 2);
    let Some(block) = input.get(line_end..end) else {
        return Ok(None);
    };
    if &block[vlen..] != b"\r\n" {
        return Err(Refusal {
            data: vlen + 2,
            ..refuse(ErrorReply::BadDataChunk, noreply)
        });
    }
    Ok(Some(&block[..vlen]))
}
