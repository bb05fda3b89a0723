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

use super::number::{strtol32, strtoul32, strtoull};
use super::{item_fits, DELETE_USAGE, INVALID_SHUTDOWN_MODE};
use crate::{
    ArithRequest, ConfigRequest, ErrorReply, GetRequest, Keys, Limits, ParseError, ProtocolError,
    Request, StatsGroup, StoreMode, StoreRequest, KEY_MAX_LENGTH,
};

/// memcached's `MAX_TOKENS`: 23 real tokens plus its terminal token.
const MAX_TOKENS: usize = 24;

/// How many bytes without a `\n` memcached buffers before it decides the client is sending
/// junk and closes the connection (unless the line is a multi-get, which may be that long).
pub const MAX_LINE_WITHOUT_NEWLINE: usize = 2048;

/// How many leading spaces a multi-get line without `\n` may carry before memcached closes.
const MAX_LEADING_SPACES: usize = 100;

/// The tokens of one command line, borrowed from it, without allocating.
struct Tokens<'a> {
    line: &'a [u8],
    /// `(start, end)` of each token in `line`.
    spans: [(usize, usize); MAX_TOKENS - 1],
    /// How many tokens were split off (memcached's `ntokens` minus its terminal token).
    len: usize,
    /// The unsplit remainder after the 23rd token, empty when there is none.
    rest: &'a [u8],
}

impl<'a> Tokens<'a> {
    /// memcached's `tokenize_command` with `MAX_TOKENS`.
    fn split(line: &'a [u8]) -> Self {
        let mut tokens = Tokens {
            line,
            spans: [(0, 0); MAX_TOKENS - 1],
            len: 0,
            rest: &[],
        };
        let mut start = 0;
        for (i, &b) in line.iter().enumerate() {
            if b != b' ' {
                continue;
            }
            if start != i {
                tokens.spans[tokens.len] = (start, i);
                tokens.len += 1;
                if tokens.len == MAX_TOKENS - 1 {
                    tokens.rest = &line[i + 1..];
                    return tokens;
                }
            }
            start = i + 1;
        }
        if start != line.len() {
            tokens.spans[tokens.len] = (start, line.len());
            tokens.len += 1;
        }
        tokens
    }

    /// The `i`th token; empty past the last one.
    fn get(&self, i: usize) -> &'a [u8] {
        if i < self.len {
            let (start, end) = self.spans[i];
            &self.line[start..end]
        } else {
            &[]
        }
    }

    /// The last token (memcached's `tokens[ntokens - 2]`).
    fn last(&self) -> &'a [u8] {
        self.get(self.len.wrapping_sub(1))
    }

    /// memcached's `set_noreply_maybe`: whether the last token is exactly `noreply`.
    fn noreply(&self) -> bool {
        self.last() == b"noreply"
    }

    /// Everything from the start of token `i` to the end of the line, without trailing
    /// spaces; empty when there is no token `i`.
    fn run_from(&self, i: usize) -> &'a [u8] {
        if i >= self.len {
            return &self.line[self.line.len()..];
        }
        let run = &self.line[self.spans[i].0..];
        let end = run.iter().rposition(|&b| b != b' ').map_or(0, |p| p + 1);
        &run[..end]
    }
}

/// What a parse step found wrong, before it is placed at its position in the input.
struct Refusal {
    reply: ErrorReply,
    noreply: bool,
    /// Bytes after the command line that are dropped with it (a refused data block).
    data: usize,
    /// Bytes after those to discard as they arrive.
    swallow: usize,
}

fn refuse(reply: ErrorReply, noreply: bool) -> Refusal {
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
    let Some(newline) = input.iter().position(|&b| b == b'\n') else {
        return Err(incomplete_line(input));
    };
    let line_end = newline + 1;
    let mut line = &input[..newline];
    if line.len() > 1 && line[line.len() - 1] == b'\r' {
        line = &line[..line.len() - 1];
    }
    if let Some(nul) = line.iter().position(|&b| b == 0) {
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
enum Parsed<'a> {
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
    // Meta commands (two bytes, starting with `m`): answered ERROR until tern's meta codec
    // exists (memcached 1.6.18 serves mg, ms, md, ma, mn, me).
    if name.len() == 2 && name[0] == b'm' {
        return Err(refuse(ErrorReply::UnknownCommand, false));
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
        b"shutdown" => done(shutdown(t)?),
        b"stats" => done(Request::Stats(stats_group(t))),
        // tern's ElastiCache auto-discovery; memcached 1.6.18 answers ERROR here.
        b"config" => config(t, input, line_end, limits),
        // Commands memcached 1.6.18 has and tern does not serve: plain ERROR, never the
        // HTTP close below.
        b"slabs" | b"lru" | b"lru_crawler" | b"watch" | b"cache_memlimit" | b"extstore"
        | b"debugtime" | b"misbehave" | b"refresh_certs" => {
            Err(refuse(ErrorReply::UnknownCommand, false))
        }
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
    let keys = Keys::spaced(keys);
    // memcached refuses the whole command when any key is too long (after looking up, and
    // for gat touching, the keys before it; their replies are dropped).
    if keys.clone().any(|key| key.len() > KEY_MAX_LENGTH) {
        return Err(refuse(ErrorReply::BadCommandLine, false));
    }
    Ok(Request::Get(GetRequest {
        keys,
        with_cas,
        touch,
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
            noreply,
        };
        return Ok(Parsed::Done(request, line_end));
    }
    let value = data_block(input, line_end, vlen, noreply)?;
    let Some(value) = value else {
        return Ok(Parsed::Incomplete(line_end + vlen + 2));
    };
    let request = Request::Store(StoreRequest {
        mode,
        key,
        flags,
        exptime: i64::from(exptime),
        value,
        cas,
        noreply,
    });
    Ok(Parsed::Done(request, line_end + vlen + 2))
}

/// memcached's range for a data block's length: `0..=INT_MAX - 2` (the `\r\n` must still fit
/// an `int`).
fn byte_count(vlen: i32) -> Option<usize> {
    usize::try_from(vlen)
        .ok()
        .filter(|&n| n <= (i32::MAX - 2) as usize)
}

/// The `vlen` bytes of data after the header and their `\r\n`: `Ok(None)` until they have all
/// arrived, then the data, or `CLIENT_ERROR bad data chunk` when the two bytes after the data
/// are not `\r\n` (memcached has read and dropped all `vlen + 2` bytes by then; whatever follows
/// is parsed as the next command).
fn data_block(
    input: &[u8],
    line_end: usize,
    vlen: usize,
    noreply: bool,
) -> Result<Option<&[u8]>, Refusal> {
    let end = line_end + vlen + 2;
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

/// `delete <key> [0] [noreply]`.
fn delete<'a>(t: &Tokens<'a>) -> Result<Request<'a>, Refusal> {
    if !(2..=4).contains(&t.len) {
        return Err(refuse(ErrorReply::UnknownCommand, false));
    }
    let mut noreply = false;
    if t.len > 2 {
        let hold_is_zero = t.get(2) == b"0";
        noreply = t.noreply();
        let valid =
            (t.len == 3 && (hold_is_zero || noreply)) || (t.len == 4 && hold_is_zero && noreply);
        if !valid {
            return Err(refuse(ErrorReply::Other(DELETE_USAGE), noreply));
        }
    }
    let key = t.get(1);
    if key.len() > KEY_MAX_LENGTH {
        return Err(refuse(ErrorReply::BadCommandLine, noreply));
    }
    Ok(Request::Delete { key, noreply })
}

/// `incr|decr <key> <delta> [noreply]`.
fn arith<'a>(t: &Tokens<'a>, incr: bool) -> Result<Request<'a>, Refusal> {
    if t.len != 3 && t.len != 4 {
        return Err(refuse(ErrorReply::UnknownCommand, false));
    }
    let noreply = t.noreply();
    let key = t.get(1);
    if key.len() > KEY_MAX_LENGTH {
        return Err(refuse(ErrorReply::BadCommandLine, noreply));
    }
    let delta = strtoull(t.get(2)).ok_or(refuse(ErrorReply::InvalidDelta, noreply))?;
    Ok(Request::Arith(ArithRequest {
        key,
        delta,
        incr,
        initial: None,
        noreply,
    }))
}

/// `touch <key> <exptime> [noreply]`.
fn touch<'a>(t: &Tokens<'a>) -> Result<Request<'a>, Refusal> {
    if t.len != 3 && t.len != 4 {
        return Err(refuse(ErrorReply::UnknownCommand, false));
    }
    let noreply = t.noreply();
    let key = t.get(1);
    if key.len() > KEY_MAX_LENGTH {
        return Err(refuse(ErrorReply::BadCommandLine, noreply));
    }
    let exptime = strtol32(t.get(2)).ok_or(refuse(ErrorReply::InvalidExptime, noreply))?;
    Ok(Request::Touch {
        key,
        exptime: i64::from(exptime),
        noreply,
    })
}

/// `flush_all [delay] [noreply]`. With two arguments the second is ignored unless it is
/// `noreply` (memcached: `flush_all 10 20` is `flush_all 10`).
fn flush_all<'a>(t: &Tokens<'a>) -> Result<Request<'a>, Refusal> {
    if !(1..=3).contains(&t.len) {
        return Err(refuse(ErrorReply::UnknownCommand, false));
    }
    let noreply = t.noreply();
    let bare = if noreply { 2 } else { 1 };
    let delay = if t.len == bare {
        0
    } else {
        strtol32(t.get(1)).ok_or(refuse(ErrorReply::InvalidExptime, noreply))?
    };
    Ok(Request::FlushAll {
        delay: i64::from(delay),
        noreply,
    })
}

/// `verbosity <level> [noreply]`; a second argument that is not `noreply` is ignored.
fn verbosity<'a>(t: &Tokens<'a>) -> Result<Request<'a>, Refusal> {
    if t.len != 2 && t.len != 3 {
        return Err(refuse(ErrorReply::UnknownCommand, false));
    }
    let noreply = t.noreply();
    let level = strtoul32(t.get(1)).ok_or(refuse(ErrorReply::BadCommandLine, noreply))?;
    Ok(Request::Verbosity { level, noreply })
}

/// `shutdown [graceful]`. Anything else is `CLIENT_ERROR invalid shutdown mode`, which a server
/// without `-A` must replace by `ERROR: shutdown not enabled` (memcached checks that first).
fn shutdown<'a>(t: &Tokens<'a>) -> Result<Request<'a>, Refusal> {
    match (t.len, t.get(1)) {
        (1, _) => Ok(Request::Shutdown { graceful: false }),
        (2, b"graceful") => Ok(Request::Shutdown { graceful: true }),
        _ => Err(refuse(ErrorReply::Other(INVALID_SHUTDOWN_MODE), false)),
    }
}

/// `stats [group ...]`: memcached looks only at the first argument for the groups it knows and
/// ignores the rest (`stats reset foo` resets).
fn stats_group<'a>(t: &Tokens<'a>) -> StatsGroup<'a> {
    match t.get(1) {
        _ if t.len == 1 => StatsGroup::General,
        b"settings" => StatsGroup::Settings,
        b"items" => StatsGroup::Items,
        b"slabs" => StatsGroup::Slabs,
        b"sizes" => StatsGroup::Sizes,
        b"conns" => StatsGroup::Conns,
        b"reset" => StatsGroup::Reset,
        _ => StatsGroup::Other(t.run_from(1)),
    }
}

/// ElastiCache's `config get|set|delete`. Not in memcached; malformed forms follow memcached's
/// conventions for its own commands (wrong shape `ERROR`, bad key or number `CLIENT_ERROR bad
/// command line format`, data not ending in `\r\n` `CLIENT_ERROR bad data chunk`).
fn config<'a>(
    t: &Tokens<'a>,
    input: &'a [u8],
    line_end: usize,
    limits: &Limits,
) -> Result<Parsed<'a>, Refusal> {
    let unknown = || Err(refuse(ErrorReply::UnknownCommand, false));
    let done = |request| Ok(Parsed::Done(Request::Config(request), line_end));
    let key = t.get(2);
    match t.get(1) {
        b"get" if t.len == 3 => {
            if key.len() > KEY_MAX_LENGTH {
                return Err(refuse(ErrorReply::BadCommandLine, false));
            }
            done(ConfigRequest::Get { key })
        }
        b"delete" if t.len == 3 || t.len == 4 => {
            let noreply = t.noreply();
            if key.len() > KEY_MAX_LENGTH || (t.len == 4 && !noreply) {
                return Err(refuse(ErrorReply::BadCommandLine, noreply));
            }
            done(ConfigRequest::Delete { key, noreply })
        }
        b"set" if t.len == 5 || t.len == 6 => {
            let noreply = t.noreply();
            let bad = || refuse(ErrorReply::BadCommandLine, noreply);
            if key.len() > KEY_MAX_LENGTH {
                return Err(bad());
            }
            let flags = strtoul32(t.get(3)).ok_or_else(bad)?;
            let vlen = strtol32(t.get(4)).and_then(byte_count).ok_or_else(bad)?;
            if !item_fits(limits, key.len(), flags, vlen) {
                return Err(Refusal {
                    swallow: vlen + 2,
                    ..refuse(ErrorReply::TooLarge, noreply)
                });
            }
            let Some(data) = data_block(input, line_end, vlen, noreply)? else {
                return Ok(Parsed::Incomplete(line_end + vlen + 2));
            };
            let request = ConfigRequest::Set {
                key,
                flags,
                data,
                noreply,
            };
            Ok(Parsed::Done(Request::Config(request), line_end + vlen + 2))
        }
        _ => unknown(),
    }
}
