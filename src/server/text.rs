//! The text protocol's executor: runs parsed text requests on the operations of
//! [`super::ops`] and is the only place that turns their outcomes into text replies. TCP, Unix
//! sockets (`super::conn`) and UDP (`super::udp`) all answer through it, refused requests
//! included ([`refused`]), so every transport gives the same bytes.

use tern_protocol::text;
use tern_protocol::{
    ErrorReply, GetRequest, ProtocolError, ReplyMode, Request, Response, StatsGroup,
};

use super::ops::{
    arith_op, config_op, delete_op, flush_op, lookup_op, refusal, shutdown_op, stats_op, store_op,
    too_large_op, touch_op, verbosity_op, After, ConfigOutcome, Ctx, StatsReply,
};
use crate::store::{self, ItemView};

/// Writes `response` as the request's reply mode allows: text `noreply` silences everything,
/// errors included; a quiet request hides its successes only.
fn reply(response: &Response<'_>, mode: ReplyMode, out: &mut Vec<u8>) {
    if mode.shows(!matches!(
        response,
        Response::Error(_) | Response::OutOfMemory
    )) {
        text::compose(response, out);
    }
}

/// Executes one text request, appending its replies to `cx.out`.
pub fn execute(request: Request<'_>, cx: &mut Ctx<'_>) -> After {
    let mode = request.reply_mode();
    let response = match request {
        Request::Get(get) => {
            retrieve(get, cx);
            return After::Continue;
        }
        Request::Store(store) => store_op(&store, cx).0,
        Request::TooLarge {
            mode: store_mode,
            key,
            swallow,
            ..
        } => {
            let response = too_large_op(store_mode, key, true, cx);
            reply(&response, mode, cx.out);
            return After::Swallow(swallow);
        }
        Request::Delete { key, .. } => delete_op(key, 0, cx),
        Request::Arith(arith) => arith_op(&arith, 0, cx),
        Request::Touch { key, exptime, .. } => touch_op(key, exptime, cx),
        Request::FlushAll { delay, .. } => flush_op(delay, cx),
        Request::Version => Response::Version(super::VERSION),
        Request::Verbosity { level, .. } => verbosity_op(level, cx),
        Request::Quit => return After::Close,
        Request::RefreshCerts { .. } => {
            super::tls::refresh_certs(cx.shared, mode, cx.out);
            return After::Continue;
        }
        Request::Shutdown { graceful: _ } => match shutdown_op(cx) {
            Ok(()) => return After::Close,
            Err(e) => Response::Error(e),
        },
        Request::Stats(group) => {
            stats(group, cx);
            return After::Continue;
        }
        Request::Config(config) => {
            let outcome = config_op(config, &cx.shared.cluster);
            compose_config(&outcome, mode, cx.out);
            return After::Continue;
        }
        // Binary-only requests: the text parser never produces them.
        Request::Noop | Request::SaslListMechs | Request::SaslAuth { .. } => {
            Response::Error(ErrorReply::UnknownCommand)
        }
        // The meta protocol is parsed but not yet executed: memcached before 1.6 answered so.
        Request::Meta(_) => Response::Error(ErrorReply::UnknownCommand),
    };
    reply(&response, mode, cx.out);
    After::Continue
}

/// Answers a request the text parser refused (with the server's `-A` rule applied) and says
/// what the connection does next: close, discard the request's data, or go on.
pub fn refused(err: &ProtocolError, cx: &mut Ctx<'_>) -> After {
    let error = refusal(err.reply, cx);
    if !err.noreply {
        text::compose(&Response::Error(error), cx.out);
    }
    if err.close {
        After::Close
    } else if err.swallow > 0 {
        After::Swallow(err.swallow)
    } else {
        After::Continue
    }
}

fn retrieve(get: GetRequest<'_>, cx: &mut Ctx<'_>) {
    // No key here is over 250 bytes: the parser refuses such a line whole, before any lookup.
    for key in get.keys {
        if key == crate::cluster::LEGACY_KEY && get.touch.is_none() {
            // Auto-discovery for engines before 1.4.14; ElastiCache kept it as an item, so a
            // multi-key get answers it in its place among the others.
            cx.stats.cmd_get.incr();
            if cx.shared.cluster.compose_legacy(get.with_cas, cx.out) {
                cx.stats.get_hits.incr();
            } else {
                cx.stats.get_misses.incr();
            }
            continue;
        }
        let out = &mut *cx.out;
        let with_cas = get.with_cas;
        let copy = |item: &ItemView<'_>| {
            let cas = with_cas.then(|| item.cas());
            text::compose_value_header(key, item.flags(), item.value_len(), cas, out);
            for chunk in item.value_chunks() {
                out.extend_from_slice(chunk);
            }
            out.extend_from_slice(b"\r\n");
        };
        let req = store::GetRequest {
            key,
            touch: get.touch,
        };
        lookup_op(cx.shared, cx.stats, &req, copy);
    }
    text::compose(&Response::End, cx.out);
}

fn stats(group: StatsGroup<'_>, cx: &mut Ctx<'_>) {
    match stats_op(group, cx) {
        StatsReply::Lines(lines) => {
            for (name, value) in &lines {
                text::compose(&Response::Stat { name, value }, cx.out);
            }
            text::compose(&Response::End, cx.out);
        }
        StatsReply::Reset => text::compose(&Response::Reset, cx.out),
        StatsReply::Unknown(args) => {
            let reply = if args.starts_with(b"detail") {
                ErrorReply::StatsDetailUsage
            } else {
                ErrorReply::UnknownCommand
            };
            text::compose(&Response::Error(reply), cx.out);
        }
    }
}

/// The text replies of the `config` commands: a hit is the pre-rendered
/// `CONFIG cluster 0 <len>\r\n<version>\n<nodes>\n\r\nEND\r\n` in one append; no config is
/// `END` (as a `get` miss); a refused set is `CLIENT_ERROR <reason>`.
pub fn compose_config(outcome: &ConfigOutcome, mode: ReplyMode, out: &mut Vec<u8>) {
    match outcome {
        ConfigOutcome::Found(p) => out.extend_from_slice(p.text_reply()),
        // Like ElastiCache with no config (and like `get` of a missing key).
        ConfigOutcome::Missing => text::compose(&Response::End, out),
        // `noreply` silences a set's refusal too, as every text error.
        _ if !mode.shows(false) => {}
        ConfigOutcome::Stored => text::compose(&Response::Stored, out),
        ConfigOutcome::Refused(e) => {
            use std::io::Write;
            // `Vec`'s `Write` cannot fail.
            let _ = write!(out, "CLIENT_ERROR {e}\r\n");
        }
        ConfigOutcome::Deleted => text::compose(&Response::Deleted, out),
        ConfigOutcome::NotFound => text::compose(&Response::NotFound, out),
    }
}
