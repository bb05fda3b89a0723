//! The text protocol's executor: runs parsed text requests on the operations of
//! [`super::ops`] and is the only place that turns their outcomes into text replies. TCP, Unix
//! sockets (`super::conn`) and UDP (`super::udp`) all answer through it, refused requests
//! included ([`refused`]), so every transport gives the same bytes. It also answers the `-Y`
//! login of an unauthenticated connection ([`ascii_auth`]).

use tern_protocol::operator::{LruCrawlerRequest, OperatorRequest};
use tern_protocol::text::{self, AuthLineError, AuthReply};
use tern_protocol::{
    ErrorReply, GetRequest, ProtocolError, ReplyMode, Request, Response, StatsDetail, StatsGroup,
    WatchEvents,
};

use super::ops::{
    arith_op, cachedump_op, config_op, delete_op, flush_op, item_shape, log_get, lookup_op,
    refusal, shutdown_op, stats_op, store_op, too_large_op, touch_op, verbosity_op, watch_op,
    After, ConfigOutcome, Ctx, StatsReply, StoreOutcome, TouchOutcome,
};
use crate::auth::PasswordDb;
use crate::cluster::{Cluster, LEGACY_KEY};
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
        Request::Store(store) => store_response(store_op(&store, cx)),
        Request::TooLarge {
            mode: store_mode,
            key,
            swallow,
            ..
        } => {
            let response = store_response(too_large_op(store_mode, key, true, cx));
            reply(&response, mode, cx.out);
            return After::Swallow(swallow);
        }
        Request::Delete { key, .. } => Response::from(delete_op(key, 0, cx)),
        Request::Arith(arith) => Response::from(arith_op(&arith, 0, cx)),
        Request::Touch { key, exptime, .. } => touch_response(touch_op(key, exptime, cx)),
        Request::FlushAll { delay, .. } => match flush_op(delay, cx) {
            Ok(()) => Response::Ok,
            Err(e) => Response::Error(e),
        },
        Request::Version => Response::Version(super::VERSION),
        Request::Verbosity { level, .. } => {
            verbosity_op(level, cx);
            Response::Ok
        }
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
        Request::StatsDetail(detail) => match detail {
            StatsDetail::On | StatsDetail::Off => {
                cx.shared.detail.set_enabled(detail == StatsDetail::On);
                Response::Ok
            }
            StatsDetail::Dump => {
                cx.shared.detail.dump(cx.out);
                return After::Continue;
            }
        },
        Request::StatsCachedump(args) => match cachedump_op(args, cx) {
            Ok(items) => {
                compose_cachedump(&items, cx.out);
                return After::Continue;
            }
            Err(e) => Response::Error(e),
        },
        Request::Watch { events, .. } => match watch_op(events, cx) {
            Ok(events) => {
                reply(&Response::Ok, mode, cx.out);
                return After::Watch(events);
            }
            Err(e) => Response::Error(e),
        },
        Request::Config(config) => {
            let outcome = config_op(config, &cx.shared.cluster);
            compose_config(&outcome, mode, cx.out);
            return After::Continue;
        }
        // Binary-only requests: the text parser never produces them.
        Request::Noop | Request::SaslListMechs | Request::SaslAuth { .. } => {
            Response::Error(ErrorReply::UnknownCommand)
        }
        // Meta commands arrive on text connections; their executor writes their replies.
        Request::Meta(meta) => return super::meta::execute(meta, cx),
        Request::Operator(OperatorRequest::LruCrawler(LruCrawlerRequest::Metadump(spec))) => {
            // Over UDP (TCP and Unix sockets compose it in parts, see `Conn`): whole.
            match super::operator::metadump_start(spec, !cx.out.is_empty(), cx) {
                Ok(classes) => {
                    let mut cursor = crate::store::DumpCursor::default();
                    super::operator::metadump_from(&classes, &mut cursor, cx, usize::MAX);
                    return After::Continue;
                }
                Err(e) => Response::Error(e),
            }
        }
        Request::Operator(op) => match super::operator::operator_op(op, cx) {
            Ok(()) => Response::Ok,
            Err(e) => Response::Error(e),
        },
    };
    reply(&response, mode, cx.out);
    After::Continue
}

// The text replies of the operations' outcomes: the only place they are decided.

fn store_response(outcome: StoreOutcome) -> Response<'static> {
    match outcome {
        StoreOutcome::Stored { .. } => Response::Stored,
        StoreOutcome::NotStored => Response::NotStored,
        StoreOutcome::Exists => Response::Exists,
        StoreOutcome::NotFound => Response::NotFound,
        StoreOutcome::TooLarge => Response::Error(ErrorReply::TooLarge),
        StoreOutcome::OutOfMemory => Response::OutOfMemory,
    }
}

fn touch_response(outcome: TouchOutcome) -> Response<'static> {
    match outcome {
        TouchOutcome::Touched => Response::Touched,
        TouchOutcome::NotFound => Response::NotFound,
    }
}

/// Answers a request the text parser refused (with the server's `-A` rule applied) and says
/// what the connection does next: close, discard the request's data, or go on.
pub fn refused(err: &ProtocolError, cx: &mut Ctx<'_>) -> After {
    let error = refusal(err.reply, cx);
    if error == ErrorReply::BadDataChunk {
        // memcached counts the storage command once its data is read, good or not.
        cx.stats.cmd_set.incr();
    }
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
    retrieve_from(get, cx, 0, usize::MAX);
}

/// Answers a text retrieval's keys from the `answered`-th on, stopping once this call has
/// written `room` bytes or more (after at least one key, so every call makes progress).
/// Returns `None` when the reply is complete (`END` written), or `Some(keys answered so far)`:
/// call again with that count once the output has drained. A `get` of thousands of 1 MB values
/// is so answered in parts instead of being composed whole into memory.
pub fn retrieve_from(
    get: GetRequest<'_>,
    cx: &mut Ctx<'_>,
    answered: usize,
    room: usize,
) -> Option<usize> {
    let start = cx.out.len();
    // A key over 250 bytes ended the keys (the parser stopped there): memcached looks up the
    // ones before it and then drops their replies for the error, so nothing is composed.
    let dropped = get.key_too_long;
    for (i, key) in get.keys.enumerate().skip(answered) {
        if !dropped && i > answered && cx.out.len() - start >= room {
            return Some(i);
        }
        if key == LEGACY_KEY && get.touch.is_none() {
            // Auto-discovery for engines before 1.4.14; ElastiCache kept it as an item, so a
            // multi-key get answers it in its place among the others.
            cx.stats.cmd_get.incr();
            if compose_legacy(&cx.shared.cluster, get.with_cas, cx.out) {
                cx.stats.get_hits.incr();
            } else {
                cx.stats.get_misses.incr();
            }
            continue;
        }
        let out = &mut *cx.out;
        let with_cas = get.with_cas;
        let copy = |item: &ItemView<'_>| {
            if !dropped {
                let cas = with_cas.then(|| item.cas());
                text::compose_value_header(key, item.flags(), item.value_len(), cas, out);
                for chunk in item.value_chunks() {
                    out.extend_from_slice(chunk);
                }
                out.extend_from_slice(b"\r\n");
            }
            item_shape(item)
        };
        let req = store::GetRequest {
            key,
            touch: get.touch,
            ..Default::default()
        };
        let found = lookup_op(cx.shared, cx.stats, &req, copy);
        if cx.shared.logger.watching(WatchEvents::FETCHERS) {
            log_get(cx, key, &found);
        }
    }
    if dropped {
        cx.out.truncate(start);
        text::compose(&Response::Error(ErrorReply::BadCommandLine), cx.out);
    } else {
        text::compose(&Response::End, cx.out);
    }
    None
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
        // memcached 1.6.18 (built with extstore, as Debian's is) lists no external storage
        // stats without `-o ext_path`: a bare END. tern has none either.
        StatsReply::Unknown(args) if args.split(|&b| b == b' ').next() == Some(b"extstore") => {
            text::compose(&Response::End, cx.out);
        }
        // `stats detail` is parsed on its own; memcached answers any other unknown group (even
        // `stats detailfoo`) with a plain ERROR.
        StatsReply::Unknown(_) => {
            text::compose(&Response::Error(ErrorReply::UnknownCommand), cx.out);
        }
    }
}

/// `ITEM <key> [<bytes> b; <exptime> s]\r\n` per item, then `END\r\n` (memcached's
/// `item_cachedump`).
fn compose_cachedump(items: &[store::DumpedItem], out: &mut Vec<u8>) {
    let mut num = itoa::Buffer::new();
    for item in items {
        out.extend_from_slice(b"ITEM ");
        out.extend_from_slice(&item.key);
        out.extend_from_slice(b" [");
        out.extend_from_slice(num.format(item.value_len).as_bytes());
        out.extend_from_slice(b" b; ");
        out.extend_from_slice(num.format(item.exptime).as_bytes());
        out.extend_from_slice(b" s]\r\n");
    }
    text::compose(&Response::End, out);
}

/// Appends the legacy `VALUE AmazonElastiCache:cluster 0 <N>[ <cas>]\r\n<data>\r\n` hit for a
/// `get` (or, with `with_cas`, a `gets`, whose CAS is the config version: it changes exactly
/// when the config does), without `END`: a multi-key `get` goes on with its other keys. Whether
/// there was a config to answer with.
pub fn compose_legacy(cluster: &Cluster, with_cas: bool, out: &mut Vec<u8>) -> bool {
    let Some(p) = cluster.current() else {
        return false;
    };
    let data = p.data();
    let cas = with_cas.then(|| u64::from(p.version()));
    text::compose_value_header(LEGACY_KEY, p.flags(), data.len(), cas, out);
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    true
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

/// How an ASCII login attempt changes the counters and the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsciiAuthOutcome {
    /// Not a login attempt (or a malformed one): nothing counted, still unauthenticated.
    Refused,
    /// `STORED`: the connection is authenticated and speaks the text protocol from now on.
    /// Counts `auth_cmds`.
    Authenticated,
    /// `CLIENT_ERROR authentication failure`. Counts `auth_cmds` and `auth_errors`.
    Failed,
}

/// What to do with the bytes an unauthenticated `-Y` text connection has sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsciiAuth {
    /// Wait for more input.
    NeedMore,
    /// Close the connection without a reply.
    Close,
    /// Send `reply` (it ends in `\r\n`) and drop `consumed` bytes of input.
    Reply {
        /// Bytes of input used.
        consumed: usize,
        /// The exact reply line.
        reply: &'static [u8],
        /// What happened.
        outcome: AsciiAuthOutcome,
    },
}

/// The `-Y` login of an unauthenticated text connection: the request is read by
/// [`text::parse_auth_line`] (memcached 1.6.18's rules are there), the credentials are checked
/// against `db`, and the reply is memcached's line for the outcome.
///
/// When several commands arrive in one read, memcached 1.6.18 overwrites its reply with the
/// next one's (only the last reply of the batch is sent): tern sends every reply.
pub fn ascii_auth(input: &[u8], db: &PasswordDb) -> AsciiAuth {
    let (reply, outcome, consumed) = match text::parse_auth_line(input) {
        Err(AuthLineError::Incomplete) => return AsciiAuth::NeedMore,
        Err(AuthLineError::Close) => return AsciiAuth::Close,
        Err(AuthLineError::Refused { reply, consumed }) => {
            (reply, AsciiAuthOutcome::Refused, consumed)
        }
        Ok((login, consumed)) if db.check(login.user, login.pass) => {
            (AuthReply::Stored, AsciiAuthOutcome::Authenticated, consumed)
        }
        Ok((_, consumed)) => (AuthReply::Failure, AsciiAuthOutcome::Failed, consumed),
    };
    AsciiAuth::Reply {
        consumed,
        reply: text::auth_reply_line(reply),
        outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authfile() -> PasswordDb {
        PasswordDb::from_authfile(b"alice:secret\nbob:pw:extra\r\ncarol:with space\n").unwrap()
    }

    fn reply(consumed: usize, reply: &'static [u8], outcome: AsciiAuthOutcome) -> AsciiAuth {
        AsciiAuth::Reply {
            consumed,
            reply,
            outcome,
        }
    }

    // Each expectation below was read from memcached 1.6.18 -Y over a socket.
    #[test]
    fn ascii_auth_set_with_user_pass_authenticates() {
        let db = authfile();
        let input = b"set k 0 0 12\r\nalice secret\r\nget k\r\n";
        assert_eq!(
            ascii_auth(input, &db),
            reply(28, b"STORED\r\n", AsciiAuthOutcome::Authenticated)
        );
        // Extra tokens, noreply, a bare LF and leading spaces make no difference.
        assert_eq!(
            ascii_auth(b"set k 0 0 18\r\nalice secret extra\r\n", &db),
            reply(34, b"STORED\r\n", AsciiAuthOutcome::Authenticated)
        );
        assert_eq!(
            ascii_auth(b"set k 0 0 12 noreply\r\nalice secret\r\n", &db),
            reply(36, b"STORED\r\n", AsciiAuthOutcome::Authenticated)
        );
        assert_eq!(
            ascii_auth(b"set k 0 0 12\nalice secret\r\n", &db),
            reply(27, b"STORED\r\n", AsciiAuthOutcome::Authenticated)
        );
        assert_eq!(
            ascii_auth(b"  set   k 0 0 12\r\nalice secret\r\n", &db),
            reply(32, b"STORED\r\n", AsciiAuthOutcome::Authenticated)
        );
        assert_eq!(
            ascii_auth(b"set k 0 0 14\r\n  alice secret\r\n", &db),
            reply(30, b"STORED\r\n", AsciiAuthOutcome::Authenticated)
        );
    }

    #[test]
    fn ascii_auth_wrong_password_fails() {
        let db = authfile();
        assert_eq!(
            ascii_auth(b"set k 0 0 11\r\nalice wrong\r\n", &db),
            reply(
                27,
                b"CLIENT_ERROR authentication failure\r\n",
                AsciiAuthOutcome::Failed
            )
        );
        // A -Y password is the whole rest of the line.
        assert_eq!(
            ascii_auth(b"set k 0 0 6\r\nbob pw\r\n", &db),
            reply(
                21,
                b"CLIENT_ERROR authentication failure\r\n",
                AsciiAuthOutcome::Failed
            )
        );
        assert_eq!(
            ascii_auth(b"set k 0 0 12\r\nbob pw:extra\r\n", &db),
            reply(28, b"STORED\r\n", AsciiAuthOutcome::Authenticated)
        );
    }

    #[test]
    fn ascii_auth_anything_but_a_set_is_unauthenticated() {
        let db = authfile();
        let refused = |n| {
            reply(
                n,
                b"CLIENT_ERROR unauthenticated\r\n",
                AsciiAuthOutcome::Refused,
            )
        };
        assert_eq!(ascii_auth(b"get foo\r\n", &db), refused(9));
        assert_eq!(ascii_auth(b"stats\r\n", &db), refused(7));
        assert_eq!(ascii_auth(b"set k 0 0\r\n", &db), refused(11));
        assert_eq!(
            ascii_auth(b"add k 0 0 12\r\nalice secret\r\n", &db),
            refused(14)
        );
        assert_eq!(
            ascii_auth(b"set k 0 0 -1\r\nalice secret\r\n", &db),
            refused(14)
        );
        assert_eq!(ascii_auth(b"\r\nget foo\r\n", &db), refused(2));
    }

    #[test]
    fn ascii_auth_bad_data_blocks() {
        let db = authfile();
        assert_eq!(
            ascii_auth(b"set k 0 0 3\r\nabcde\r\n", &db),
            reply(
                18,
                b"CLIENT_ERROR bad command line termination\r\n",
                AsciiAuthOutcome::Refused
            )
        );
        let bad_format = |n| {
            reply(
                n,
                b"CLIENT_ERROR bad authentication token format\r\n",
                AsciiAuthOutcome::Refused,
            )
        };
        assert_eq!(ascii_auth(b"set k 0 0 5\r\nalice\r\n", &db), bad_format(20));
        assert_eq!(
            ascii_auth(b"set k 0 0 12\r\nalice\tsecret\r\n", &db),
            bad_format(28)
        );
        // The size is truncated to 32 bits, as memcached's safe_strtoul stores it.
        assert_eq!(
            ascii_auth(b"set k 0 0 4294967298\r\nab\r\n", &db),
            bad_format(26)
        );
    }

    #[test]
    fn ascii_auth_waits_for_line_and_data() {
        let db = authfile();
        let input = b"set k 0 0 12\r\nalice secret\r\n";
        for cut in 0..input.len() {
            assert_eq!(
                ascii_auth(&input[..cut], &db),
                AsciiAuth::NeedMore,
                "cut {cut}"
            );
        }
    }

    #[test]
    fn ascii_auth_closes_on_runaway_input() {
        let db = authfile();
        assert_eq!(ascii_auth(&[b'x'; 2049], &db), AsciiAuth::Close);
        assert_eq!(ascii_auth(&[b'x'; 2048], &db), AsciiAuth::NeedMore);
        // A data block memcached's 16 KiB read buffer cannot hold.
        assert_eq!(ascii_auth(b"set k 0 0 16383\r\n", &db), AsciiAuth::Close);
        assert_eq!(ascii_auth(b"set k 0 0 16382\r\n", &db), AsciiAuth::NeedMore);
    }
}
