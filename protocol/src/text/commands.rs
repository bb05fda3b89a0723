//! The commands other than retrieval and storage: one small function each, mirroring the
//! matching `process_*_command` of memcached 1.6.18.

use super::item_fits;
use super::number::{strtol32, strtoul32, strtoull};
use super::parse::{byte_count, data_block, refuse, Parsed, Refusal};
use super::tokens::Tokens;
use crate::{
    ArithRequest, ConfigRequest, ErrorReply, Limits, ReplyMode, Request, StatsDetail, StatsGroup,
    WatchEvents, KEY_MAX_LENGTH,
};

/// `delete <key> [0] [noreply]`.
pub(super) fn delete<'a>(t: &Tokens<'a>) -> Result<Request<'a>, Refusal> {
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
            return Err(refuse(ErrorReply::DeleteUsage, noreply));
        }
    }
    let key = t.get(1);
    if key.len() > KEY_MAX_LENGTH {
        return Err(refuse(ErrorReply::BadCommandLine, noreply));
    }
    Ok(Request::Delete {
        key,
        reply: ReplyMode::from_noreply(noreply),
    })
}

/// `<command> <key> <argument> [noreply]` (incr, decr, touch), checked in memcached's order: a
/// wrong token count is `ERROR` (never silenced), then a key over the limit is
/// `CLIENT_ERROR bad command line format` (silenced by `noreply`). Returns the key, the
/// unparsed argument and whether `noreply` was given.
fn key_and_argument<'a>(t: &Tokens<'a>) -> Result<(&'a [u8], &'a [u8], bool), Refusal> {
    if t.len != 3 && t.len != 4 {
        return Err(refuse(ErrorReply::UnknownCommand, false));
    }
    let noreply = t.noreply();
    let key = t.get(1);
    if key.len() > KEY_MAX_LENGTH {
        return Err(refuse(ErrorReply::BadCommandLine, noreply));
    }
    Ok((key, t.get(2), noreply))
}

/// `incr|decr <key> <delta> [noreply]`.
pub(super) fn arith<'a>(t: &Tokens<'a>, incr: bool) -> Result<Request<'a>, Refusal> {
    let (key, arg, noreply) = key_and_argument(t)?;
    let delta = strtoull(arg).ok_or(refuse(ErrorReply::InvalidDelta, noreply))?;
    Ok(Request::Arith(ArithRequest {
        key,
        delta,
        incr,
        initial: None,
        reply: ReplyMode::from_noreply(noreply),
    }))
}

/// `touch <key> <exptime> [noreply]`.
pub(super) fn touch<'a>(t: &Tokens<'a>) -> Result<Request<'a>, Refusal> {
    let (key, arg, noreply) = key_and_argument(t)?;
    let exptime = strtol32(arg).ok_or(refuse(ErrorReply::InvalidExptime, noreply))?;
    Ok(Request::Touch {
        key,
        exptime: i64::from(exptime),
        reply: ReplyMode::from_noreply(noreply),
    })
}

/// `flush_all [delay] [noreply]`. With two arguments the second is ignored unless it is
/// `noreply` (memcached: `flush_all 10 20` is `flush_all 10`).
pub(super) fn flush_all<'a>(t: &Tokens<'a>) -> Result<Request<'a>, Refusal> {
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
        reply: ReplyMode::from_noreply(noreply),
    })
}

/// `verbosity <level> [noreply]`; a second argument that is not `noreply` is ignored.
pub(super) fn verbosity<'a>(t: &Tokens<'a>) -> Result<Request<'a>, Refusal> {
    if t.len != 2 && t.len != 3 {
        return Err(refuse(ErrorReply::UnknownCommand, false));
    }
    let noreply = t.noreply();
    let level = strtoul32(t.get(1)).ok_or(refuse(ErrorReply::BadCommandLine, noreply))?;
    Ok(Request::Verbosity {
        level,
        reply: ReplyMode::from_noreply(noreply),
    })
}

/// `shutdown [graceful]`. Anything else is `CLIENT_ERROR invalid shutdown mode`, which a server
/// without `-A` must replace by `ERROR: shutdown not enabled` (memcached checks that first).
pub(super) fn shutdown<'a>(t: &Tokens<'a>) -> Result<Request<'a>, Refusal> {
    match (t.len, t.get(1)) {
        (1, _) => Ok(Request::Shutdown { graceful: false }),
        (2, b"graceful") => Ok(Request::Shutdown { graceful: true }),
        _ => Err(refuse(ErrorReply::InvalidShutdownMode, false)),
    }
}

/// `stats ...`: `stats detail on|off|dump` (memcached looks at the word after `detail` only:
/// `stats detail on x` is `on`), or a group.
pub(super) fn stats<'a>(t: &Tokens<'a>) -> Result<Request<'a>, Refusal> {
    if t.len >= 2 && t.get(1) == b"detail" {
        let detail = match (t.len, t.get(2)) {
            (3.., b"on") => StatsDetail::On,
            (3.., b"off") => StatsDetail::Off,
            (3.., b"dump") => StatsDetail::Dump,
            _ => return Err(refuse(ErrorReply::StatsDetailUsage, false)),
        };
        return Ok(Request::StatsDetail(detail));
    }
    if t.len >= 2 && t.get(1) == b"cachedump" {
        return Ok(Request::StatsCachedump(cachedump(t)));
    }
    Ok(Request::Stats(stats_group(t)))
}

/// The limits of memcached 1.6.18's `stats cachedump <class> <limit>`.
const MAX_SLAB_CLASSES: u32 = 64;

fn cachedump(t: &Tokens<'_>) -> Result<(u32, u32), ErrorReply> {
    if t.len < 4 {
        return Err(ErrorReply::CachedumpUsage);
    }
    let class = strtoul32(t.get(2)).ok_or(ErrorReply::BadCommandLine)?;
    let limit = strtoul32(t.get(3)).ok_or(ErrorReply::BadCommandLine)?;
    if class >= MAX_SLAB_CLASSES {
        return Err(ErrorReply::IllegalSlabId);
    }
    Ok((class, limit))
}

/// `watch [class ...]`: no class is `fetchers`. A trailing `noreply` is noted (it silences the
/// replies) and, like any unknown class name, makes the request invalid, as in memcached.
pub(super) fn watch<'a>(t: &Tokens<'a>) -> Request<'a> {
    let noreply = t.noreply();
    let events = if t.len > 1 {
        (1..t.len)
            .try_fold(0, |flags, i| WatchEvents::flag(t.get(i)).map(|f| flags | f))
            .map(WatchEvents)
    } else {
        Some(WatchEvents(WatchEvents::FETCHERS))
    };
    Request::Watch {
        events,
        reply: ReplyMode::from_noreply(noreply),
    }
}

/// `stats [group ...]`: memcached looks only at the first argument for the groups it knows and
/// ignores the rest (`stats reset foo` resets).
fn stats_group<'a>(t: &Tokens<'a>) -> StatsGroup<'a> {
    if t.len == 1 {
        return StatsGroup::General;
    }
    match StatsGroup::from_name(t.get(1)) {
        // An unknown group keeps all its arguments (`stats detail on`).
        StatsGroup::Other(_) => StatsGroup::Other(t.run_from(1)),
        known => known,
    }
}

/// ElastiCache's `config get|set|delete`. Not in memcached; malformed forms follow memcached's
/// conventions for its own commands (wrong shape `ERROR`, bad key or number `CLIENT_ERROR bad
/// command line format`, data not ending in `\r\n` `CLIENT_ERROR bad data chunk`).
pub(super) fn config<'a>(
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
            done(ConfigRequest::Delete {
                key,
                reply: ReplyMode::from_noreply(noreply),
            })
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
                return Ok(Parsed::Incomplete(line_end.saturating_add(vlen + 2)));
            };
            let request = ConfigRequest::Set {
                key,
                flags,
                data,
                reply: ReplyMode::from_noreply(noreply),
            };
            Ok(Parsed::Done(
                Request::Config(request),
                line_end.saturating_add(vlen + 2),
            ))
        }
        _ => unknown(),
    }
}
