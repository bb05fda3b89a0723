//! The request parser: bytes in, [`Frame`] out, with memcached 1.6.18's checks in its order.

use super::{Frame, Header, Opcode, HEADER_LEN, REQUEST_MAGIC};
use crate::item_fits;
use crate::{
    ArithRequest, ConfigRequest, ErrorReply, GetRequest, Keys, Limits, ParseError, ProtocolError,
    ReplyMode, Request, StatsGroup, StoreMode, StoreRequest, KEY_MAX_LENGTH,
};

/// The error a SASL_AUTH/SASL_STEP gets when its data could not be held in an item: memcached
/// answers 0x82 with this body and discards the data (the connection stays open).
const SASL_OUT_OF_MEMORY: ErrorReply = ErrorReply::SaslOutOfMemory;

/// A protocol error memcached answers and then closes the connection on.
fn fatal(reply: ErrorReply) -> ParseError {
    ParseError::Protocol(ProtocolError {
        reply,
        consumed: HEADER_LEN,
        swallow: 0,
        noreply: false,
        close: true,
    })
}

fn need(input: &[u8], total: usize) -> Result<(), ParseError> {
    if input.len() < total {
        Err(ParseError::Incomplete {
            needed: Some(total),
        })
    } else {
        Ok(())
    }
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be_u64(b: &[u8]) -> u64 {
    u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// Whether the opcode accepts these extras, key and body lengths (memcached's
/// `dispatch_bin_command` checks; a failure is `Invalid arguments`, then close).
fn lengths_allowed(op: Opcode, ext: usize, key: usize, body: usize) -> bool {
    use Opcode::*;
    match op {
        Version | Noop | Quit | QuitQ | SaslListMechs => ext == 0 && key == 0 && body == 0,
        Flush | FlushQ => key == 0 && body == ext && (ext == 0 || ext == 4),
        Set | SetQ | Add | AddQ | Replace | ReplaceQ => ext == 8 && key != 0 && body >= key + 8,
        Get | GetQ | GetK | GetKQ => ext == 0 && body == key && key > 0,
        Delete | DeleteQ => key > 0 && ext == 0 && body == key,
        Increment | IncrementQ | Decrement | DecrementQ => {
            key > 0 && ext == 20 && body == key + ext
        }
        Append | AppendQ | Prepend | PrependQ => key > 0 && ext == 0,
        Stat => ext == 0,
        SaslAuth | SaslStep => ext == 0 && key != 0,
        Touch | Gat | GatQ | GatK | GatKQ => ext == 4 && key != 0,
        // Not in memcached; the AWS cluster clients send these layouts.
        ConfigGet | ConfigDelete => ext == 0 && key != 0 && body == key,
        ConfigSet => key != 0 && matches!(ext, 0 | 4 | 8),
    }
}

/// The group a STAT key names, as memcached 1.6.18's `process_bin_stat` and `get_stats`
/// match it: `reset` and `settings` by prefix, `items`, `slabs` and `sizes` exactly; `detail
/// ...` and anything else (`conns` too: memcached serves it over text only) is passed on as
/// [`StatsGroup::Other`].
fn stats_group(key: &[u8]) -> StatsGroup<'_> {
    if key.starts_with(b"reset") {
        StatsGroup::Reset
    } else if key.starts_with(b"settings") {
        StatsGroup::Settings
    } else {
        match StatsGroup::from_name(key) {
            StatsGroup::Conns => StatsGroup::Other(key),
            group => group,
        }
    }
}

/// Parses one request packet from the start of `input`.
///
/// Returns the frame and the number of bytes it occupies; `ParseError::Incomplete` (with the
/// total length needed once the header is known) when more input is needed; or the
/// [`ProtocolError`] memcached would answer. Checks run in memcached's order, all on the header
/// alone: magic (close, no reply), `key_len + extras_len > body_len` (`Unknown command`, close),
/// key over 250 bytes (`Invalid arguments`, close), unknown opcode (`Unknown command`, and the
/// next `extras_len + key_len + body_len` bytes are discarded: memcached's quirk, see the module
/// docs), lengths the opcode does not allow (`Invalid arguments`, close).
///
/// A storage command whose item would not fit under [`Limits::item_size_max`] is returned, as
/// soon as its extras and key have arrived, as a frame holding [`Request::TooLarge`] whose
/// `swallow` is the value length: answer `Too large.` and discard that many bytes.
///
/// For [`ProtocolError`]s, `consumed` counts from the start of `input`; write memcached's reply
/// with [`super::compose_error_reply`].
pub fn parse<'a>(input: &'a [u8], limits: &Limits) -> Result<(Frame<'a>, usize), ParseError> {
    let Some(h) = Header::peek(input) else {
        return Err(ParseError::Incomplete {
            needed: Some(HEADER_LEN),
        });
    };
    if h.magic != REQUEST_MAGIC {
        return Err(fatal(ErrorReply::Close));
    }
    if !h.lengths_consistent() {
        return Err(fatal(ErrorReply::UnknownCommand));
    }
    let ext = usize::from(h.extras_len);
    let key_len = usize::from(h.key_len);
    let body = h.body_len as usize;
    if key_len > KEY_MAX_LENGTH {
        return Err(fatal(ErrorReply::BadCommandLine));
    }
    let Some(op) = Opcode::from_u8(h.opcode) else {
        // memcached consumes header, extras and key, then swallows `body_len` more bytes.
        return Err(ParseError::Protocol(ProtocolError {
            reply: ErrorReply::UnknownCommand,
            consumed: HEADER_LEN,
            swallow: ext + key_len + body,
            noreply: false,
            close: false,
        }));
    };
    if !lengths_allowed(op, ext, key_len, body) {
        return Err(fatal(ErrorReply::BadCommandLine));
    }

    let head_end = HEADER_LEN + ext + key_len;
    need(input, head_end)?;
    let extras = &input[HEADER_LEN..HEADER_LEN + ext];
    let key = &input[HEADER_LEN + ext..head_end];
    let value_len = body - ext - key_len;
    let quiet = op.is_quiet();
    let frame = |request| Frame {
        opcode: op,
        opaque: h.opaque,
        cas: h.cas,
        request,
    };

    use Opcode::*;
    let request = match op {
        Get | GetQ | GetK | GetKQ => Request::Get(GetRequest {
            keys: Keys::single(key),
            with_cas: true,
            touch: None,
            key_too_long: false,
        }),
        Gat | GatQ | GatK | GatKQ => Request::Get(GetRequest {
            keys: Keys::single(key),
            with_cas: true,
            touch: Some(i64::from(be_u32(extras))),
            key_too_long: false,
        }),
        Touch => Request::Touch {
            key,
            exptime: i64::from(be_u32(extras)),
            reply: ReplyMode::Normal,
        },
        Set | SetQ | Add | AddQ | Replace | ReplaceQ | Append | AppendQ | Prepend | PrependQ => {
            let (flags, exptime) = if ext == 8 {
                (be_u32(extras), i64::from(be_u32(&extras[4..])))
            } else {
                (0, 0)
            };
            let mode = match op {
                Append | AppendQ => StoreMode::Append,
                Prepend | PrependQ => StoreMode::Prepend,
                // memcached turns any SET/ADD/REPLACE with a CAS into a CAS command.
                _ if h.cas != 0 => StoreMode::Cas,
                Set | SetQ => StoreMode::Set,
                Add | AddQ => StoreMode::Add,
                _ => StoreMode::Replace,
            };
            if !item_fits(limits, key_len, flags, value_len) {
                return Ok((
                    frame(Request::TooLarge {
                        mode,
                        key,
                        swallow: value_len,
                        reply: ReplyMode::from_quiet(quiet),
                    }),
                    head_end,
                ));
            }
            need(input, HEADER_LEN + body)?;
            Request::Store(StoreRequest {
                mode,
                key,
                flags,
                exptime,
                value: &input[head_end..HEADER_LEN + body],
                cas: h.cas,
                reply: ReplyMode::from_quiet(quiet),
            })
        }
        Delete | DeleteQ => Request::Delete {
            key,
            reply: ReplyMode::from_quiet(quiet),
        },
        Increment | IncrementQ | Decrement | DecrementQ => {
            let expiration = be_u32(&extras[16..]);
            Request::Arith(ArithRequest {
                key,
                delta: be_u64(extras),
                incr: matches!(op, Increment | IncrementQ),
                initial: (expiration != u32::MAX)
                    .then(|| (be_u64(&extras[8..]), i64::from(expiration))),
                reply: ReplyMode::from_quiet(quiet),
            })
        }
        Quit | QuitQ => Request::Quit,
        Flush | FlushQ => Request::FlushAll {
            delay: if ext == 4 {
                i64::from(be_u32(extras))
            } else {
                0
            },
            reply: ReplyMode::from_quiet(quiet),
        },
        Noop => Request::Noop,
        Version => Request::Version,
        Stat => Request::Stats(stats_group(key)),
        SaslListMechs => Request::SaslListMechs,
        SaslAuth | SaslStep => {
            if !item_fits(limits, key_len, 0, value_len) {
                return Err(ParseError::Protocol(ProtocolError {
                    reply: SASL_OUT_OF_MEMORY,
                    consumed: head_end,
                    swallow: value_len,
                    noreply: false,
                    close: false,
                }));
            }
            need(input, HEADER_LEN + body)?;
            Request::SaslAuth {
                mechanism: key,
                data: &input[head_end..HEADER_LEN + body],
                step: op == SaslStep,
            }
        }
        ConfigGet => Request::Config(ConfigRequest::Get { key }),
        ConfigDelete => Request::Config(ConfigRequest::Delete {
            key,
            reply: ReplyMode::Normal,
        }),
        ConfigSet => {
            let flags = if ext >= 4 { be_u32(extras) } else { 0 };
            if !item_fits(limits, key_len, flags, value_len) {
                return Err(ParseError::Protocol(ProtocolError {
                    reply: ErrorReply::TooLarge,
                    consumed: head_end,
                    swallow: value_len,
                    noreply: false,
                    close: false,
                }));
            }
            need(input, HEADER_LEN + body)?;
            Request::Config(ConfigRequest::Set {
                key,
                flags,
                data: &input[head_end..HEADER_LEN + body],
                reply: ReplyMode::Normal,
            })
        }
    };
    // TOUCH, GAT and STAT leave any surplus body in the stream, as memcached does; every other
    // opcode's body ends here.
    let consumed = match op {
        Touch | Gat | GatQ | GatK | GatKQ | Stat => head_end,
        _ => HEADER_LEN + body,
    };
    Ok((frame(request), consumed))
}
