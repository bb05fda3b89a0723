//! Writing the text protocol: the server's replies and, for clients, requests.

use super::auth::AuthReply;
use crate::{
    ConfigRequest, ErrorReply, ReplyMode, Request, Response, StatsDetail, StoreMode, WatchEvents,
};

const CRLF: &[u8] = b"\r\n";

fn put_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn put_i64(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// The reply line for an error, without `\r\n`; `None` for [`ErrorReply::Close`], which
/// answers nothing.
pub(crate) fn error_line(error: ErrorReply) -> Option<&'static str> {
    Some(match error {
        ErrorReply::UnknownCommand => "ERROR",
        ErrorReply::BadCommandLine => "CLIENT_ERROR bad command line format",
        ErrorReply::BadDataChunk => "CLIENT_ERROR bad data chunk",
        ErrorReply::TooLarge => "SERVER_ERROR object too large for cache",
        ErrorReply::InvalidExptime => "CLIENT_ERROR invalid exptime argument",
        ErrorReply::InvalidDelta => "CLIENT_ERROR invalid numeric delta argument",
        ErrorReply::DeleteUsage => {
            "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]"
        }
        ErrorReply::InvalidShutdownMode => "CLIENT_ERROR invalid shutdown mode",
        ErrorReply::ShutdownDisabled => "ERROR: shutdown not enabled",
        ErrorReply::NonNumeric => "CLIENT_ERROR cannot increment or decrement non-numeric value",
        ErrorReply::FlushDisabled => "CLIENT_ERROR flush_all not allowed",
        ErrorReply::StatsDetailUsage => "CLIENT_ERROR usage: stats detail on|off|dump",
        ErrorReply::CachedumpUsage => "CLIENT_ERROR bad command line",
        ErrorReply::IllegalSlabId => "CLIENT_ERROR Illegal slab id",
        ErrorReply::CachedumpDisabled => "CLIENT_ERROR stats cachedump not allowed",
        ErrorReply::WatchDisabled => "CLIENT_ERROR watch commands not allowed",
        ErrorReply::WatchPipelined => "ERROR cannot pipeline other commands before watch",
        // Binary-only (SASL); the text protocol never produces it.
        ErrorReply::SaslOutOfMemory => "SERVER_ERROR out of memory",
        ErrorReply::Close => return None,
        ErrorReply::Meta(error) => error.line(),
        ErrorReply::Operator(reply) => reply.line(),
    })
}

/// The reply line of the `-Y` login, `\r\n` included.
pub fn auth_reply_line(reply: AuthReply) -> &'static [u8] {
    match reply {
        AuthReply::Stored => b"STORED\r\n",
        AuthReply::Failure => b"CLIENT_ERROR authentication failure\r\n",
        AuthReply::Unauthenticated => b"CLIENT_ERROR unauthenticated\r\n",
        AuthReply::BadTermination => b"CLIENT_ERROR bad command line termination\r\n",
        AuthReply::BadTokenFormat => b"CLIENT_ERROR bad authentication token format\r\n",
    }
}

/// Appends the text form of `response` to `out`, byte for byte as memcached 1.6.18 writes it.
///
/// [`ErrorReply::Close`] writes nothing: the connection is closed without a reply.
pub fn compose(response: &Response<'_>, out: &mut Vec<u8>) {
    let line: &[u8] = match *response {
        Response::Value {
            key,
            flags,
            cas,
            data,
        } => {
            compose_value_header(key, flags, data.len(), cas, out);
            out.extend_from_slice(data);
            CRLF
        }
        Response::End => b"END\r\n",
        Response::Stored => b"STORED\r\n",
        Response::NotStored => b"NOT_STORED\r\n",
        Response::Exists => b"EXISTS\r\n",
        Response::NotFound => b"NOT_FOUND\r\n",
        Response::Deleted => b"DELETED\r\n",
        Response::Touched => b"TOUCHED\r\n",
        Response::Ok => b"OK\r\n",
        Response::Number { value, .. } => {
            put_u64(out, value);
            CRLF
        }
        Response::Version(version) => {
            out.extend_from_slice(b"VERSION ");
            out.extend_from_slice(version.as_bytes());
            CRLF
        }
        Response::Stat { name, value } => {
            out.extend_from_slice(b"STAT ");
            out.extend_from_slice(name.as_bytes());
            out.push(b' ');
            out.extend_from_slice(value.as_bytes());
            CRLF
        }
        Response::Reset => b"RESET\r\n",
        Response::Error(error) => match error_line(error) {
            Some(line) => {
                out.extend_from_slice(line.as_bytes());
                CRLF
            }
            None => b"",
        },
        Response::OutOfMemory => b"SERVER_ERROR out of memory storing object\r\n",
    };
    out.extend_from_slice(line);
}

/// Appends `VALUE <key> <flags> <bytes>[ <cas>]\r\n`, so a server can append the value itself
/// (possibly in pieces) and then `\r\n`.
pub fn compose_value_header(
    key: &[u8],
    flags: u32,
    value_len: usize,
    cas: Option<u64>,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(b"VALUE ");
    out.extend_from_slice(key);
    out.push(b' ');
    put_u64(out, u64::from(flags));
    out.push(b' ');
    put_u64(out, value_len as u64);
    if let Some(cas) = cas {
        out.push(b' ');
        put_u64(out, cas);
    }
    out.extend_from_slice(CRLF);
}

fn store_command(mode: StoreMode) -> &'static [u8] {
    match mode {
        StoreMode::Set => b"set",
        StoreMode::Add => b"add",
        StoreMode::Replace => b"replace",
        StoreMode::Append => b"append",
        StoreMode::Prepend => b"prepend",
        StoreMode::Cas => b"cas",
    }
}

fn put_noreply(out: &mut Vec<u8>, reply: ReplyMode) {
    if reply == ReplyMode::Noreply {
        out.extend_from_slice(b" noreply");
    }
}

/// Appends the text form of `request`, as a client sends it; [`crate::text::parse`] reads it
/// back as the same request.
///
/// Requests the text protocol cannot carry are written as near as it allows: a
/// [`Request::TooLarge`] as its header alone (`set <key> 0 0 <n>`, the data is not known), the
/// binary-only `initial` of an incr/decr is dropped, [`Request::Noop`] as the meta no-op `mn`,
/// and the binary SASL requests as nothing at all. A key containing a space (possible only in
/// the binary protocol) cannot round-trip.
pub fn compose_request(request: &Request<'_>, out: &mut Vec<u8>) {
    match *request {
        Request::Get(get) => {
            out.extend_from_slice(match (get.with_cas, get.touch.is_some()) {
                (false, false) => b"get".as_slice(),
                (true, false) => b"gets",
                (false, true) => b"gat",
                (true, true) => b"gats",
            });
            if let Some(exptime) = get.touch {
                out.push(b' ');
                put_i64(out, exptime);
            }
            for key in get.keys {
                out.push(b' ');
                out.extend_from_slice(key);
            }
        }
        Request::Store(store) => {
            out.extend_from_slice(store_command(store.mode));
            out.push(b' ');
            out.extend_from_slice(store.key);
            out.push(b' ');
            put_u64(out, u64::from(store.flags));
            out.push(b' ');
            put_i64(out, store.exptime);
            out.push(b' ');
            put_u64(out, store.value.len() as u64);
            if store.mode == StoreMode::Cas {
                out.push(b' ');
                put_u64(out, store.cas);
            }
            put_noreply(out, store.reply);
            out.extend_from_slice(CRLF);
            out.extend_from_slice(store.value);
        }
        Request::TooLarge {
            mode,
            key,
            swallow,
            reply,
        } => {
            out.extend_from_slice(store_command(mode));
            out.push(b' ');
            out.extend_from_slice(key);
            out.extend_from_slice(b" 0 0 ");
            put_u64(out, swallow.saturating_sub(2) as u64);
            if mode == StoreMode::Cas {
                out.extend_from_slice(b" 0");
            }
            put_noreply(out, reply);
        }
        Request::Delete { key, reply } => {
            out.extend_from_slice(b"delete ");
            out.extend_from_slice(key);
            put_noreply(out, reply);
        }
        Request::Arith(arith) => {
            out.extend_from_slice(if arith.incr { b"incr " } else { b"decr " });
            out.extend_from_slice(arith.key);
            out.push(b' ');
            put_u64(out, arith.delta);
            put_noreply(out, arith.reply);
        }
        Request::Touch {
            key,
            exptime,
            reply,
        } => {
            out.extend_from_slice(b"touch ");
            out.extend_from_slice(key);
            out.push(b' ');
            put_i64(out, exptime);
            put_noreply(out, reply);
        }
        Request::FlushAll { delay, reply } => {
            out.extend_from_slice(b"flush_all");
            if delay != 0 {
                out.push(b' ');
                put_i64(out, delay);
            }
            put_noreply(out, reply);
        }
        Request::Version => out.extend_from_slice(b"version"),
        Request::Verbosity { level, reply } => {
            out.extend_from_slice(b"verbosity ");
            put_u64(out, u64::from(level));
            put_noreply(out, reply);
        }
        Request::Quit => out.extend_from_slice(b"quit"),
        Request::RefreshCerts { reply } => {
            out.extend_from_slice(b"refresh_certs");
            put_noreply(out, reply);
        }
        Request::Shutdown { graceful } => {
            out.extend_from_slice(if graceful {
                b"shutdown graceful".as_slice()
            } else {
                b"shutdown"
            });
        }
        Request::Stats(group) => {
            out.extend_from_slice(b"stats");
            let arg = group.name();
            if !arg.is_empty() {
                out.push(b' ');
                out.extend_from_slice(arg);
            }
        }
        Request::StatsDetail(detail) => out.extend_from_slice(match detail {
            StatsDetail::On => b"stats detail on".as_slice(),
            StatsDetail::Off => b"stats detail off",
            StatsDetail::Dump => b"stats detail dump",
        }),
        Request::StatsCachedump(args) => {
            out.extend_from_slice(b"stats cachedump");
            if let Ok((class, limit)) = args {
                out.push(b' ');
                put_u64(out, u64::from(class));
                out.push(b' ');
                put_u64(out, u64::from(limit));
            }
        }
        Request::Watch { events, reply } => {
            out.extend_from_slice(b"watch");
            let flags = events.map_or(0, |e| e.0);
            for (name, flag) in WatchEvents::NAMES {
                if flags & flag != 0 {
                    out.push(b' ');
                    out.extend_from_slice(name.as_bytes());
                }
            }
            if events.is_none() {
                out.extend_from_slice(b" unknown");
            }
            put_noreply(out, reply);
        }
        Request::Noop => out.extend_from_slice(b"mn"),
        Request::Config(config) => match config {
            ConfigRequest::Get { key } => {
                out.extend_from_slice(b"config get ");
                out.extend_from_slice(key);
            }
            ConfigRequest::Set {
                key,
                flags,
                data,
                reply,
            } => {
                out.extend_from_slice(b"config set ");
                out.extend_from_slice(key);
                out.push(b' ');
                put_u64(out, u64::from(flags));
                out.push(b' ');
                put_u64(out, data.len() as u64);
                put_noreply(out, reply);
                out.extend_from_slice(CRLF);
                out.extend_from_slice(data);
            }
            ConfigRequest::Delete { key, reply } => {
                out.extend_from_slice(b"config delete ");
                out.extend_from_slice(key);
                put_noreply(out, reply);
            }
        },
        Request::SaslListMechs | Request::SaslAuth { .. } => return,
        Request::Meta(meta) => return crate::meta::compose_request(&meta, out),
        Request::Operator(op) => op.compose(out),
    }
    out.extend_from_slice(CRLF);
}
