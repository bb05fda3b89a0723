//! The UDP transport (`-U`): memcached's 8-byte frame header around the text protocol.
//!
//! Each datagram carries `[request id u16][sequence u16][datagram count u16][reserved u16]`
//! (big-endian) and then text-protocol requests (or binary-protocol packets, as memcached
//! serves them too). As memcached, tern accepts only single-datagram
//! requests (count 1, sequence 0) and drops others; a request whose data does not fit in the
//! datagram is dropped with it. The reply is split into datagrams of at most 1,400 bytes, each
//! with the request id, its sequence number and the total count, as `doc/protocol.txt` says.
//! (memcached 1.6.18 frames each internal response object separately, so a multi-key `get`
//! arrives there as several datagrams that each claim to be "0 of 1"; tern numbers the whole
//! reply, which is what clients reassemble.)
//!
//! UDP is off by default: a memcached reachable over UDP can be abused to amplify traffic.

use std::io;
use std::net::UdpSocket;
use std::time::Duration;

use tern_protocol::{binary, text, ParseError};

use super::ops::{After, Ctx};
use super::stats::ThreadStats;
use super::Shared;
use crate::auth::SaslSession;
use crate::config::BindingProtocol;

/// memcached's `UDP_HEADER_SIZE`.
pub const HEADER_LEN: usize = 8;
/// memcached's `UDP_MAX_PAYLOAD_SIZE`: the largest datagram tern sends, header included.
pub const MAX_DATAGRAM: usize = 1400;
/// Reply bytes per datagram.
const DATA_PER_DATAGRAM: usize = MAX_DATAGRAM - HEADER_LEN;
/// How often a blocked receive looks at the shutdown flag.
const SHUTDOWN_POLL: Duration = Duration::from_millis(100);

/// Serves one UDP socket until the server shuts down.
pub fn serve(socket: UdpSocket, shared: &Shared, stats: &ThreadStats) -> io::Result<()> {
    socket.set_read_timeout(Some(SHUTDOWN_POLL))?;
    if let Some(slot) = shared
        .threads
        .iter()
        .position(|t| std::ptr::eq(&**t, stats))
    {
        super::logger::set_thread_slot(slot);
    }
    let mut input = vec![0u8; 65536];
    let mut out = Vec::with_capacity(16 * 1024);
    let mut datagram = Vec::with_capacity(MAX_DATAGRAM);
    while !shared.is_shutting_down() {
        let (n, peer) = match socket.recv_from(&mut input) {
            Ok(got) => got,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => return Err(e),
        };
        stats.bytes_read.add(n as u64);
        let Some((request_id, payload)) = split_frame(&input[..n]) else {
            continue;
        };
        out.clear();
        execute_all(payload, shared, stats, &mut out);
        let total = out
            .len()
            .div_ceil(DATA_PER_DATAGRAM)
            .min(usize::from(u16::MAX));
        for (seq, chunk) in out.chunks(DATA_PER_DATAGRAM).take(total).enumerate() {
            datagram.clear();
            write_header(request_id, seq as u16, total as u16, &mut datagram);
            datagram.extend_from_slice(chunk);
            match socket.send_to(&datagram, peer) {
                Ok(sent) => stats.bytes_written.add(sent as u64),
                Err(e) => {
                    log::debug!("udp reply to {peer} failed: {e}");
                    break;
                }
            }
        }
    }
    Ok(())
}

/// The request id and the payload of a single-datagram request, or `None` for anything memcached
/// drops (too short, or part of a multi-datagram request).
pub fn split_frame(datagram: &[u8]) -> Option<(u16, &[u8])> {
    if datagram.len() <= HEADER_LEN {
        return None;
    }
    let request_id = u16::from_be_bytes([datagram[0], datagram[1]]);
    if datagram[4..6] != [0, 1] {
        return None;
    }
    Some((request_id, &datagram[HEADER_LEN..]))
}

/// Appends a frame header.
pub fn write_header(request_id: u16, seq: u16, total: u16, out: &mut Vec<u8>) {
    out.extend_from_slice(&request_id.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
}

/// Executes every whole request in `payload`, composing the replies into `out`. As over TCP,
/// the first byte picks the protocol (0x80: binary, unless `-B ascii`); memcached answers
/// binary requests inside the same 8-byte frame.
fn execute_all(payload: &[u8], shared: &Shared, stats: &ThreadStats, out: &mut Vec<u8>) {
    let binary = match shared.settings.protocol {
        BindingProtocol::Ascii => false,
        BindingProtocol::Binary => true,
        BindingProtocol::Auto => payload.first() == Some(&binary::REQUEST_MAGIC),
    };
    if binary {
        execute_binary(payload, shared, stats, out);
    } else {
        execute_text(payload, shared, stats, out);
    }
}

/// The binary packets of a datagram, each answered through the binary executor.
fn execute_binary(mut payload: &[u8], shared: &Shared, stats: &ThreadStats, out: &mut Vec<u8>) {
    // A datagram has no session: SASL (which memcached refuses over UDP anyway) starts afresh.
    let mut sasl = SaslSession::new();
    while !payload.is_empty() {
        match binary::parse(payload, &shared.limits) {
            Ok((frame, used)) => {
                let mut cx = Ctx {
                    shared,
                    stats,
                    out,
                    fd: -1,
                };
                let after = super::binary::execute(&frame, &mut cx, &mut sasl);
                payload = &payload[used.min(payload.len())..];
                match after {
                    After::Continue => {}
                    After::Swallow(n) => payload = &payload[n.min(payload.len())..],
                    After::Close | After::Watch(_) => return,
                }
            }
            Err(ParseError::Incomplete { .. }) => return,
            Err(ParseError::Protocol(err)) => {
                binary::compose_error_reply(payload, &err, out);
                if err.close {
                    return;
                }
                let skip = err.consumed.saturating_add(err.swallow);
                payload = &payload[skip.min(payload.len())..];
            }
        }
    }
}

/// The text requests of a datagram.
fn execute_text(mut payload: &[u8], shared: &Shared, stats: &ThreadStats, out: &mut Vec<u8>) {
    while !payload.is_empty() {
        let mut cx = Ctx {
            shared,
            stats,
            out,
            fd: -1,
        };
        match text::parse(payload, &shared.limits) {
            Ok((request, used)) => {
                let after = super::text::execute(request, &mut cx);
                payload = &payload[used..];
                match after {
                    After::Continue => {}
                    // The discarded data, if it came at all, is in this datagram.
                    After::Swallow(n) => payload = &payload[n.min(payload.len())..],
                    // A datagram socket cannot become a log stream: the `OK` goes out and
                    // nothing follows (the rest of the datagram is ignored, as after `quit`).
                    After::Close | After::Watch(_) => return,
                }
            }
            // The rest of a request cannot arrive in another datagram.
            Err(ParseError::Incomplete { .. }) => return,
            Err(ParseError::Protocol(err)) => {
                // The same step as TCP's: the same bytes, the same `-A` rule.
                if super::text::refused(&err, &mut cx) == After::Close {
                    return;
                }
                let skip = err.consumed.saturating_add(err.swallow);
                payload = &payload[skip.min(payload.len())..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_split_and_written_big_endian() {
        let mut d = Vec::new();
        write_header(0x1234, 2, 3, &mut d);
        assert_eq!(d, [0x12, 0x34, 0, 2, 0, 3, 0, 0]);
        d.extend_from_slice(b"get a\r\n");
        let mut single = d.clone();
        single[2..6].copy_from_slice(&[0, 0, 0, 1]);
        assert_eq!(split_frame(&single), Some((0x1234, &b"get a\r\n"[..])));
        // Part of a multi-datagram request: dropped, as memcached does.
        assert_eq!(split_frame(&d), None);
        // Nothing after the header: dropped.
        assert_eq!(split_frame(&single[..HEADER_LEN]), None);
    }
}
