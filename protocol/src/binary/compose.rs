//! Response (and request) composers. Everything appends to a caller-owned buffer; nothing
//! allocates beyond that buffer's growth.

use super::{Frame, Header, Opcode, Status, REQUEST_MAGIC, RESPONSE_MAGIC};
use crate::{ConfigRequest, ErrorReply, ProtocolError, Request, Response, StoreMode};

/// The fields of a response header a server chooses (magic and data type are fixed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHeader {
    /// The request's opcode byte, echoed.
    pub opcode: u8,
    /// The status.
    pub status: Status,
    /// Length of the key that follows the extras.
    pub key_len: u16,
    /// Length of the extras.
    pub extras_len: u8,
    /// Extras + key + value.
    pub body_len: u32,
    /// The request's opaque, echoed.
    pub opaque: u32,
    /// The CAS to report.
    pub cas: u64,
}

/// Appends a 24-byte response header. The caller then appends exactly `body_len` bytes, which
/// lets a server stream a value held in several chunks.
pub fn write_response_header(h: &ResponseHeader, out: &mut Vec<u8>) {
    Header {
        magic: RESPONSE_MAGIC,
        opcode: h.opcode,
        key_len: h.key_len,
        extras_len: h.extras_len,
        data_type: 0,
        vbucket_or_status: h.status.as_u16(),
        body_len: h.body_len,
        opaque: h.opaque,
        cas: h.cas,
    }
    .write(out);
}

fn head(
    frame: &Frame<'_>,
    status: Status,
    key_len: usize,
    extras_len: u8,
    body_len: usize,
) -> ResponseHeader {
    ResponseHeader {
        opcode: frame.opcode.as_u8(),
        status,
        key_len: key_len as u16,
        extras_len,
        body_len: body_len as u32,
        opaque: frame.opaque,
        cas: 0,
    }
}

/// Appends a response with `status`, `body` as its value (no extras, no key) and `cas` in the
/// header. This is how memcached writes errors (`write_bin_error`), VERSION, SASL replies and
/// the successes that carry no data.
pub fn compose_status_body(
    frame: &Frame<'_>,
    status: Status,
    body: &[u8],
    cas: u64,
    out: &mut Vec<u8>,
) {
    let mut h = head(frame, status, 0, 0, body.len());
    h.cas = cas;
    write_response_header(&h, out);
    out.extend_from_slice(body);
}

/// One STAT reply packet: `name` as its key, `value` as its value (bytes, as memcached sends
/// `stats detail dump`'s whole text as one value).
pub fn compose_stat(frame: &Frame<'_>, name: &[u8], value: &[u8], out: &mut Vec<u8>) {
    write_response_header(
        &head(
            frame,
            Status::Success,
            name.len(),
            0,
            name.len() + value.len(),
        ),
        out,
    );
    out.extend_from_slice(name);
    out.extend_from_slice(value);
}

/// Appends a response with `status` and memcached's default body for it
/// ([`Status::default_body`]), `cas` in the header. Quiet opcodes are not consulted: the caller
/// decided to answer.
pub fn compose_status(frame: &Frame<'_>, status: Status, cas: u64, out: &mut Vec<u8>) {
    compose_status_body(frame, status, status.default_body(), cas, out);
}

/// Appends the header, flags extras and (for GETK/GATK and their quiet forms) the key of a hit
/// whose `value_len` bytes of data the caller appends next (for a value held in chunks).
/// TOUCH hits carry no value: pass `value_len` 0.
pub fn compose_value_head(
    frame: &Frame<'_>,
    key: &[u8],
    flags: u32,
    cas: u64,
    value_len: usize,
    out: &mut Vec<u8>,
) {
    let key: &[u8] = if frame.returns_key() { key } else { b"" };
    let mut h = head(
        frame,
        Status::Success,
        key.len(),
        4,
        4 + key.len() + value_len,
    );
    h.cas = cas;
    write_response_header(&h, out);
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(key);
}

/// The binary status and body for one of the shared error replies, or `None` for
/// [`ErrorReply::Close`] (no reply): the binary codec's one table of errors. The text-only
/// argument errors all become `Invalid arguments`; a text-only command error `Unknown command`.
fn error_status(reply: ErrorReply) -> Option<(Status, &'static [u8])> {
    let status = match reply {
        ErrorReply::Close => return None,
        ErrorReply::UnknownCommand | ErrorReply::ShutdownDisabled => Status::UnknownCommand,
        ErrorReply::TooLarge => Status::TooLarge,
        ErrorReply::NonNumeric => Status::NonNumeric,
        // -F: memcached answers a binary FLUSH with an auth error.
        ErrorReply::FlushDisabled => Status::AuthError,
        ErrorReply::SaslOutOfMemory => Status::OutOfMemory,
        ErrorReply::BadCommandLine
        | ErrorReply::BadDataChunk
        | ErrorReply::InvalidExptime
        | ErrorReply::InvalidDelta
        | ErrorReply::DeleteUsage
        | ErrorReply::InvalidShutdownMode
        | ErrorReply::StatsDetailUsage
        | ErrorReply::WatchDisabled
        | ErrorReply::CachedumpUsage
        | ErrorReply::IllegalSlabId
        | ErrorReply::CachedumpDisabled
        | ErrorReply::WatchPipelined
        | ErrorReply::Meta(_)
        | ErrorReply::Operator(_) => Status::InvalidArguments,
    };
    Some((status, status.default_body()))
}

/// Appends memcached's reply to a packet [`super::parse`] refused, reading the opcode and
/// opaque from the header still at the start of `input`. Writes nothing for a bad magic (the
/// connection just closes) or if `input` holds no header.
pub fn compose_error_reply(input: &[u8], error: &ProtocolError, out: &mut Vec<u8>) {
    let (Some(h), Some((status, body))) = (Header::peek(input), error_status(error.reply)) else {
        return;
    };
    compose_header_status(&h, status, body, out);
}

/// Appends a reply with `status` and `body` (no extras, no key, CAS 0) to the request whose
/// header is `h`, for answering a packet before it is parsed (a refused length, or SASL's
/// refusal of an unauthenticated command).
pub fn compose_header_status(h: &Header, status: Status, body: &[u8], out: &mut Vec<u8>) {
    write_response_header(
        &ResponseHeader {
            opcode: h.opcode,
            status,
            key_len: 0,
            extras_len: 0,
            body_len: body.len() as u32,
            opaque: h.opaque,
            cas: 0,
        },
        out,
    );
    out.extend_from_slice(body);
}

/// Appends the binary reply to `frame` for `response`, applying memcached's quiet rules (a
/// quiet retrieval's miss and any other quiet command's success write nothing).
///
/// `cas` is the item's CAS after the command, reported where memcached reports it and
/// the response does not carry it: `Stored` and `Touched`. `Value` and `Number` carry their
/// own; every other reply reports 0.
///
/// - `Value` is a hit: flags as extras, the key for GETK/GATK(Q), the data (none for TOUCH).
/// - `NotFound` is `Not found`, or for GETK/GATK the key as key and body.
/// - `End` is the empty packet that ends a STAT reply (nothing for other opcodes); `Reset`
///   is the same empty packet. `Stat` is one statistic packet.
/// - `NotStored` is `Data exists for key.` for ADD, `Not found` for REPLACE (without a CAS),
///   `Not stored.` otherwise. `OutOfMemory` is 0x82 with memcached's text for the opcode.
/// - `Touched` answers 4 bytes of zero flags; a server that has the item's flags should answer
///   TOUCH with `Value` instead, as memcached does.
pub fn compose(frame: &Frame<'_>, response: &Response<'_>, cas: u64, out: &mut Vec<u8>) {
    let op = frame.opcode;
    let quiet = frame.quiet();
    match *response {
        Response::Value {
            key,
            flags,
            cas: item_cas,
            data,
        } => {
            let data = if op == Opcode::Touch { b"" } else { data };
            compose_value_head(frame, key, flags, item_cas.unwrap_or(0), data.len(), out);
            out.extend_from_slice(data);
        }
        Response::NotFound => {
            if quiet && op.is_retrieval() {
                return;
            }
            if frame.returns_key() {
                let key = frame.request.key();
                write_response_header(
                    &head(frame, Status::KeyNotFound, key.len(), 0, key.len()),
                    out,
                );
                out.extend_from_slice(key);
            } else {
                compose_status(frame, Status::KeyNotFound, 0, out);
            }
        }
        Response::End | Response::Reset => {
            if op == Opcode::Stat {
                compose_status_body(frame, Status::Success, b"", 0, out);
            }
        }
        Response::Stored | Response::Deleted | Response::Ok => {
            if !quiet {
                let cas = if *response == Response::Stored {
                    cas
                } else {
                    0
                };
                compose_status_body(frame, Status::Success, b"", cas, out);
            }
        }
        Response::Touched => {
            if !quiet {
                compose_value_head(frame, b"", 0, cas, 0, out);
            }
        }
        Response::NotStored => {
            let status = match (op, frame.cas) {
                (Opcode::Add | Opcode::AddQ, 0) => Status::KeyExists,
                (Opcode::Replace | Opcode::ReplaceQ, 0) => Status::KeyNotFound,
                _ => Status::NotStored,
            };
            compose_status(frame, status, 0, out);
        }
        Response::Exists => compose_status(frame, Status::KeyExists, 0, out),
        Response::Number { value, cas } => {
            if !quiet {
                compose_status_body(frame, Status::Success, &value.to_be_bytes(), cas, out);
            }
        }
        Response::Version(version) => {
            compose_status_body(frame, Status::Success, version.as_bytes(), 0, out);
        }
        Response::Stat { name, value } => {
            compose_stat(frame, name.as_bytes(), value.as_bytes(), out);
        }
        Response::Error(reply) => {
            if let Some((status, body)) = error_status(reply) {
                compose_status_body(frame, status, body, 0, out);
            }
        }
        Response::OutOfMemory => {
            let body: &[u8] = match frame.request {
                Request::Store(_) | Request::TooLarge { .. } => b"Out of memory allocating item",
                Request::Arith(_) => b"Out of memory incrementing value",
                _ => Status::OutOfMemory.default_body(),
            };
            compose_status_body(frame, Status::OutOfMemory, body, 0, out);
        }
    }
}

fn write_request(frame: &Frame<'_>, extras: &[u8], key: &[u8], value: &[u8], out: &mut Vec<u8>) {
    Header {
        magic: REQUEST_MAGIC,
        opcode: frame.opcode.as_u8(),
        key_len: key.len() as u16,
        extras_len: extras.len() as u8,
        data_type: 0,
        vbucket_or_status: 0,
        body_len: (extras.len() + key.len() + value.len()) as u32,
        opaque: frame.opaque,
        cas: frame.cas,
    }
    .write(out);
    out.extend_from_slice(extras);
    out.extend_from_slice(key);
    out.extend_from_slice(value);
}

/// Appends the request packet for `frame` (client side: tests and tools). Returns `false`, and
/// writes nothing, when the request cannot travel under the frame's opcode (for example a
/// `Verbosity`, which 1.6.18's binary protocol lacks, or a `TooLarge`).
///
/// Expiration times are written as 32-bit values, as the protocol carries them.
pub fn compose_request(frame: &Frame<'_>, out: &mut Vec<u8>) -> bool {
    use Opcode::*;
    let op = frame.opcode;
    let mut ext = [0u8; 20];
    match (op, frame.request) {
        (Get | GetQ | GetK | GetKQ, Request::Get(g)) if g.touch.is_none() => {
            write_request(frame, &[], g.keys.clone().next().unwrap_or(b""), &[], out)
        }
        (Gat | GatQ | GatK | GatKQ, Request::Get(g)) if g.touch.is_some() => {
            let exptime = g.touch.unwrap_or(0) as u32;
            write_request(
                frame,
                &exptime.to_be_bytes(),
                g.keys.clone().next().unwrap_or(b""),
                &[],
                out,
            )
        }
        (Touch, Request::Touch { key, exptime, .. }) => {
            write_request(frame, &(exptime as u32).to_be_bytes(), key, &[], out)
        }
        (Set | SetQ | Add | AddQ | Replace | ReplaceQ, Request::Store(s))
            if !matches!(s.mode, StoreMode::Append | StoreMode::Prepend) =>
        {
            ext[..4].copy_from_slice(&s.flags.to_be_bytes());
            ext[4..8].copy_from_slice(&(s.exptime as u32).to_be_bytes());
            write_request(frame, &ext[..8], s.key, s.value, out)
        }
        (Append | AppendQ | Prepend | PrependQ, Request::Store(s)) => {
            write_request(frame, &[], s.key, s.value, out)
        }
        (Delete | DeleteQ, Request::Delete { key, .. }) => write_request(frame, &[], key, &[], out),
        (Increment | IncrementQ | Decrement | DecrementQ, Request::Arith(a)) => {
            let (initial, expiration) = match a.initial {
                Some((initial, exptime)) => (initial, exptime as u32),
                None => (0, u32::MAX),
            };
            ext[..8].copy_from_slice(&a.delta.to_be_bytes());
            ext[8..16].copy_from_slice(&initial.to_be_bytes());
            ext[16..20].copy_from_slice(&expiration.to_be_bytes());
            write_request(frame, &ext, a.key, &[], out)
        }
        (Quit | QuitQ, Request::Quit)
        | (Noop, Request::Noop)
        | (Version, Request::Version)
        | (SaslListMechs, Request::SaslListMechs) => write_request(frame, &[], &[], &[], out),
        (Flush | FlushQ, Request::FlushAll { delay, .. }) => {
            let e = (delay as u32).to_be_bytes();
            write_request(frame, if delay != 0 { &e } else { &[] }, &[], &[], out)
        }
        (Stat, Request::Stats(group)) => {
            let key = group.name();
            write_request(frame, &[], key, &[], out)
        }
        (
            SaslAuth | SaslStep,
            Request::SaslAuth {
                mechanism, data, ..
            },
        ) => write_request(frame, &[], mechanism, data, out),
        (ConfigGet, Request::Config(ConfigRequest::Get { key }))
        | (ConfigDelete, Request::Config(ConfigRequest::Delete { key, .. })) => {
            write_request(frame, &[], key, &[], out)
        }
        (
            ConfigSet,
            Request::Config(ConfigRequest::Set {
                key, flags, data, ..
            }),
        ) => write_request(frame, &flags.to_be_bytes(), key, data, out),
        _ => return false,
    }
    true
}
