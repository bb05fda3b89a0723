//! A pure parser for the replies the load generator expects from a memcached-compatible server
//! speaking the text protocol: `STORED` to a `set`, and `VALUE ... END` to a `get`.
//!
//! Anything else is a protocol error the load generator must stop on (a benchmark that silently
//! counts `ERROR` replies as operations would report a fast, broken server as a fast server).
//! `SERVER_ERROR ...` is the one failure that is not a protocol error: a server may legitimately
//! refuse a store (out of memory), so it is counted and reported instead.

/// Longest reply line accepted before the reply is declared garbage. memcached's `VALUE` line is at
/// most `VALUE ` + 250-byte key + three numbers, well under this.
pub const MAX_LINE: usize = 2048;

/// What a `set` was answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetReply {
    /// `STORED`
    Stored,
    /// `SERVER_ERROR <message>` (e.g. out of memory): counted, not fatal.
    ServerError,
}

/// One step of a `get` reply: a reply is zero or more `Value`s and then `End`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetEvent<'a> {
    /// `VALUE <key> <flags> <bytes> [<cas>]\r\n<data>\r\n`
    Value {
        /// The key the server says this value is for.
        key: &'a [u8],
        /// The client flags.
        flags: u32,
        /// The data block, without its `\r\n`.
        data: &'a [u8],
    },
    /// `END`: the reply is complete.
    End,
    /// `SERVER_ERROR <message>` in place of the reply: counted, not fatal; ends the reply.
    ServerError,
}

/// Why a reply could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// More bytes are needed; at least this many more when known (0 when unknown).
    Incomplete {
        /// A lower bound on how many more bytes are needed.
        needed: usize,
    },
    /// The server sent something that is not a valid reply to the request: the offending line.
    Unexpected(Vec<u8>),
    /// A `VALUE` line whose numbers do not parse.
    BadValueLine(Vec<u8>),
    /// A data block not followed by `\r\n`.
    BadDataTerminator,
    /// No `\r\n` within [`MAX_LINE`] bytes.
    LineTooLong,
}

impl std::fmt::Display for ReplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplyError::Incomplete { needed } => {
                write!(f, "incomplete reply ({needed} more bytes)")
            }
            ReplyError::Unexpected(line) => {
                write!(
                    f,
                    "unexpected reply line {:?}",
                    String::from_utf8_lossy(line)
                )
            }
            ReplyError::BadValueLine(line) => {
                write!(
                    f,
                    "malformed VALUE line {:?}",
                    String::from_utf8_lossy(line)
                )
            }
            ReplyError::BadDataTerminator => write!(f, "data block not terminated by \\r\\n"),
            ReplyError::LineTooLong => write!(f, "reply line longer than {MAX_LINE} bytes"),
        }
    }
}

impl std::error::Error for ReplyError {}

/// Splits off the first `\r\n`-terminated line: `(line without \r\n, bytes consumed)`.
fn line(buf: &[u8]) -> Result<(&[u8], usize), ReplyError> {
    let window = &buf[..buf.len().min(MAX_LINE)];
    match window.iter().position(|&b| b == b'\n') {
        Some(nl) if nl > 0 && buf[nl - 1] == b'\r' => Ok((&buf[..nl - 1], nl + 1)),
        Some(nl) => Err(ReplyError::Unexpected(buf[..=nl].to_vec())),
        None if buf.len() >= MAX_LINE => Err(ReplyError::LineTooLong),
        None => Err(ReplyError::Incomplete { needed: 0 }),
    }
}

/// Parses the reply to one `set`: `Ok((reply, consumed))`.
pub fn parse_set_reply(buf: &[u8]) -> Result<(SetReply, usize), ReplyError> {
    let (text, consumed) = line(buf)?;
    // `HD` answers a meta `ms`.
    if text == b"STORED" || text == b"HD" {
        Ok((SetReply::Stored, consumed))
    } else if text.starts_with(b"SERVER_ERROR") {
        Ok((SetReply::ServerError, consumed))
    } else {
        Err(ReplyError::Unexpected(text.to_vec()))
    }
}

/// A decimal number made only of ASCII digits, without overflow.
fn number<T: std::str::FromStr>(digits: &[u8]) -> Option<T> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Parses the next step of a `get` reply: `Ok((event, consumed))`.
pub fn parse_get_event(buf: &[u8]) -> Result<(GetEvent<'_>, usize), ReplyError> {
    let (text, line_len) = line(buf)?;
    // `MN` ends a meta pipeline of quiet `mg … q` (hits only, misses are silent).
    if text == b"END" || text == b"MN" {
        return Ok((GetEvent::End, line_len));
    }
    if let Some(rest) = text.strip_prefix(b"VA ") {
        // A meta hit: `VA <bytes> <flags>*` (the workload asks for `k`: the key is echoed).
        let bad = || ReplyError::BadValueLine(text.to_vec());
        let mut fields = rest.split(|&b| b == b' ');
        let bytes: usize = fields.next().and_then(number).ok_or_else(bad)?;
        let key = fields
            .find_map(|f| f.strip_prefix(b"k"))
            .unwrap_or_default();
        let total = line_len
            .checked_add(bytes)
            .and_then(|n| n.checked_add(2))
            .ok_or_else(bad)?;
        if buf.len() < total {
            return Err(ReplyError::Incomplete {
                needed: total - buf.len(),
            });
        }
        if &buf[total - 2..total] != b"\r\n" {
            return Err(ReplyError::BadDataTerminator);
        }
        let data = &buf[line_len..line_len + bytes];
        return Ok((
            GetEvent::Value {
                key,
                flags: 0,
                data,
            },
            total,
        ));
    }
    if text.starts_with(b"SERVER_ERROR") {
        return Ok((GetEvent::ServerError, line_len));
    }
    let Some(rest) = text.strip_prefix(b"VALUE ") else {
        return Err(ReplyError::Unexpected(text.to_vec()));
    };
    let bad = || ReplyError::BadValueLine(text.to_vec());
    let mut fields = rest.split(|&b| b == b' ');
    let key = fields.next().filter(|k| !k.is_empty()).ok_or_else(bad)?;
    let flags: u32 = fields.next().and_then(number).ok_or_else(bad)?;
    let bytes: usize = fields.next().and_then(number).ok_or_else(bad)?;
    if let Some(cas) = fields.next() {
        number::<u64>(cas).ok_or_else(bad)?;
    }
    if fields.next().is_some() {
        return Err(bad());
    }
    let total = line_len
        .checked_add(bytes)
        .and_then(|n| n.checked_add(2))
        .ok_or_else(bad)?;
    if buf.len() < total {
        return Err(ReplyError::Incomplete {
            needed: total - buf.len(),
        });
    }
    if &buf[total - 2..total] != b"\r\n" {
        return Err(ReplyError::BadDataTerminator);
    }
    let data = &buf[line_len..line_len + bytes];
    Ok((GetEvent::Value { key, flags, data }, total))
}

/// A binary-protocol response header (`doc/protocol-binary.txt`): 24 bytes, magic 0x81.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BinaryReply {
    /// The opcode echoed from the request.
    pub opcode: u8,
    /// 0 is success, 1 key not found, 0x82 out of memory, ...
    pub status: u16,
    /// Value bytes: the body less its extras and key.
    pub value_len: usize,
}

/// Binary status: key not found (a get miss).
pub const BINARY_KEY_NOT_FOUND: u16 = 0x0001;
/// Binary status: out of memory (counted like `SERVER_ERROR`, not fatal).
pub const BINARY_OUT_OF_MEMORY: u16 = 0x0082;

/// Parses one complete binary response from the start of `buf`: the header's fields and the
/// bytes it spans (header and body).
pub fn parse_binary_reply(buf: &[u8]) -> Result<(BinaryReply, usize), ReplyError> {
    const HEADER: usize = 24;
    if buf.len() < HEADER {
        return Err(ReplyError::Incomplete {
            needed: HEADER - buf.len(),
        });
    }
    if buf[0] != 0x81 {
        return Err(ReplyError::Unexpected(buf[..HEADER].to_vec()));
    }
    let key_len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    let extras_len = usize::from(buf[4]);
    let status = u16::from_be_bytes([buf[6], buf[7]]);
    let body = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]) as usize;
    if key_len + extras_len > body {
        return Err(ReplyError::Unexpected(buf[..HEADER].to_vec()));
    }
    if buf.len() < HEADER + body {
        return Err(ReplyError::Incomplete {
            needed: HEADER + body - buf.len(),
        });
    }
    let reply = BinaryReply {
        opcode: buf[1],
        status,
        value_len: body - key_len - extras_len,
    };
    Ok((reply, HEADER + body))
}

#[cfg(test)]
mod tests {
    #[test]
    fn binary_replies_parse_after_their_last_byte() {
        // GET hit: flags extras (4), no key, 3-byte value.
        let mut hit = vec![0x81, 0x00, 0, 0, 4, 0, 0, 0, 0, 0, 0, 7];
        hit.extend_from_slice(&[0; 12]);
        hit.extend_from_slice(&[0, 0, 0, 0, b'a', b'b', b'c']);
        for cut in 0..hit.len() {
            assert!(matches!(
                super::parse_binary_reply(&hit[..cut]),
                Err(super::ReplyError::Incomplete { .. })
            ));
        }
        let (r, used) = super::parse_binary_reply(&hit).unwrap();
        assert_eq!(
            (r.opcode, r.status, r.value_len, used),
            (0, 0, 3, hit.len())
        );
        // A request header (magic 0x80) is not a reply.
        let mut bad = hit.clone();
        bad[0] = 0x80;
        assert!(matches!(
            super::parse_binary_reply(&bad),
            Err(super::ReplyError::Unexpected(_))
        ));
    }

    use super::*;

    #[test]
    fn stored_is_parsed_with_its_length() {
        assert_eq!(
            parse_set_reply(b"STORED\r\nSTORED\r\n"),
            Ok((SetReply::Stored, 8))
        );
    }

    #[test]
    fn set_reply_split_anywhere_is_incomplete() {
        let full = b"STORED\r\n";
        for cut in 0..full.len() {
            assert_eq!(
                parse_set_reply(&full[..cut]),
                Err(ReplyError::Incomplete { needed: 0 }),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn server_error_on_set_is_counted_not_fatal() {
        let reply = b"SERVER_ERROR out of memory storing object\r\n";
        assert_eq!(
            parse_set_reply(reply),
            Ok((SetReply::ServerError, reply.len()))
        );
    }

    #[test]
    fn error_replies_to_set_are_protocol_errors() {
        for reply in [
            &b"ERROR\r\n"[..],
            b"CLIENT_ERROR bad data chunk\r\n",
            b"NOT_STORED\r\n",
            b"EXISTS\r\n",
        ] {
            assert!(
                matches!(parse_set_reply(reply), Err(ReplyError::Unexpected(_))),
                "{:?}",
                String::from_utf8_lossy(reply)
            );
        }
    }

    #[test]
    fn bare_newline_is_a_protocol_error() {
        assert_eq!(
            parse_set_reply(b"STORED\n"),
            Err(ReplyError::Unexpected(b"STORED\n".to_vec()))
        );
    }

    #[test]
    fn endless_line_is_rejected() {
        let junk = vec![b'x'; MAX_LINE];
        assert_eq!(parse_set_reply(&junk), Err(ReplyError::LineTooLong));
        assert_eq!(parse_get_event(&junk), Err(ReplyError::LineTooLong));
    }

    #[test]
    fn get_hit_then_end() {
        let reply = b"VALUE key:1 7 5\r\nhello\r\nEND\r\n";
        let (event, used) = parse_get_event(reply).unwrap();
        assert_eq!(
            event,
            GetEvent::Value {
                key: b"key:1",
                flags: 7,
                data: b"hello"
            }
        );
        assert_eq!(used, 24);
        assert_eq!(parse_get_event(&reply[used..]), Ok((GetEvent::End, 5)));
    }

    #[test]
    fn gets_reply_with_cas_is_accepted() {
        let reply = b"VALUE k 0 2 12345\r\nab\r\n";
        assert_eq!(
            parse_get_event(reply),
            Ok((
                GetEvent::Value {
                    key: b"k",
                    flags: 0,
                    data: b"ab"
                },
                reply.len()
            ))
        );
    }

    #[test]
    fn meta_quiet_pipeline_parses_as_a_multiget() {
        let buf = b"VA 3 kfoo\r\nbar\r\nMN\r\n";
        let (event, used) = parse_get_event(buf).unwrap();
        assert_eq!(
            event,
            GetEvent::Value {
                key: b"foo",
                flags: 0,
                data: b"bar"
            }
        );
        assert_eq!(parse_get_event(&buf[used..]).unwrap(), (GetEvent::End, 4));
        assert_eq!(parse_set_reply(b"HD\r\n").unwrap(), (SetReply::Stored, 4));
        for cut in 0..used {
            assert!(matches!(
                parse_get_event(&buf[..cut]),
                Err(ReplyError::Incomplete { .. })
            ));
        }
    }

    #[test]
    fn miss_is_just_end() {
        assert_eq!(parse_get_event(b"END\r\n"), Ok((GetEvent::End, 5)));
    }

    #[test]
    fn value_split_anywhere_is_incomplete() {
        let full = b"VALUE key:42 0 10\r\n0123456789\r\n";
        for cut in 0..full.len() {
            assert!(
                matches!(
                    parse_get_event(&full[..cut]),
                    Err(ReplyError::Incomplete { .. })
                ),
                "cut at {cut}"
            );
        }
        assert!(parse_get_event(full).is_ok());
    }

    #[test]
    fn incomplete_value_says_how_much_is_missing() {
        assert_eq!(
            parse_get_event(b"VALUE k 0 10\r\n0123"),
            Err(ReplyError::Incomplete { needed: 8 })
        );
    }

    #[test]
    fn data_block_must_end_in_crlf() {
        assert_eq!(
            parse_get_event(b"VALUE k 0 3\r\nabcXY"),
            Err(ReplyError::BadDataTerminator)
        );
    }

    #[test]
    fn malformed_value_lines_are_rejected() {
        for line in [
            &b"VALUE k 0\r\n"[..],
            b"VALUE k x 3\r\n",
            b"VALUE k 0 -3\r\n",
            b"VALUE k 0 3 1 2\r\n",
            b"VALUE  0 3\r\n",
            b"VALUE k 4294967296 3\r\n",
            b"VALUE k 0 99999999999999999999999\r\n",
        ] {
            assert!(
                matches!(parse_get_event(line), Err(ReplyError::BadValueLine(_))),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn error_in_place_of_get_reply_is_a_protocol_error() {
        assert_eq!(
            parse_get_event(b"ERROR\r\n"),
            Err(ReplyError::Unexpected(b"ERROR".to_vec()))
        );
        let oom = b"SERVER_ERROR out of memory writing get response\r\n";
        assert_eq!(parse_get_event(oom), Ok((GetEvent::ServerError, oom.len())));
    }
}
