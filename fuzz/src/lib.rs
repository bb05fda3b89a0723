//! The invariants tern's fuzz targets assert, shared by the targets (and runnable on a corpus by
//! any harness). Each `check_*` function panics when an invariant fails, which libFuzzer reports
//! as a crash with the input that caused it.
//!
//! The first bytes of a fuzz input are a small header the checks read their knobs from (the
//! split point and the parser limits), so one corpus entry is one self-contained case; the rest
//! is the bytes a client sent.

use tern_protocol::binary::{self, Frame, HEADER_LEN, RESPONSE_MAGIC};
use tern_protocol::{
    text, ConfigRequest, ErrorReply, Limits, ParseError, ProtocolError, Request, Response,
    KEY_MAX_LENGTH,
};

/// Bytes of knobs at the start of every parser fuzz input.
pub const KNOBS: usize = 3;

/// A parser case decoded from a fuzz input: limits, a split point and the client's bytes.
#[derive(Debug)]
pub struct Case<'a> {
    /// Parser limits: small item limits make the "too large" paths reachable with short inputs.
    pub limits: Limits,
    /// Where the input is cut to check that a prefix parses consistently (`0..=input.len()`).
    pub split: usize,
    /// The bytes to parse.
    pub input: &'a [u8],
}

impl<'a> Case<'a> {
    /// Decodes knobs and input; `None` when the input is shorter than the knobs.
    pub fn decode(data: &'a [u8]) -> Option<Case<'a>> {
        let (&[mode, s0, s1], input) = data.split_first_chunk::<KNOBS>()?;
        let item_size_max = match mode & 3 {
            0 => 1024 * 1024,
            1 => 1024,
            2 => 100,
            _ => 2048,
        };
        let limits = Limits {
            item_size_max,
            cas_enabled: mode & 4 == 0,
        };
        let split = usize::from(u16::from_le_bytes([s0, s1])) % (input.len() + 1);
        Some(Case {
            limits,
            split,
            input,
        })
    }

    /// Encodes a case back into a fuzz input (for seed corpora and regression tests).
    pub fn encode(mode: u8, split: u16, input: &[u8]) -> Vec<u8> {
        let mut v = vec![mode];
        v.extend_from_slice(&split.to_le_bytes());
        v.extend_from_slice(input);
        v
    }
}

/// Every key a request names is within memcached's limit.
fn check_keys(request: &Request<'_>) {
    match request {
        Request::Get(get) => {
            for key in get.keys {
                assert!(!key.is_empty(), "empty key in {request:?}");
                assert!(key.len() <= KEY_MAX_LENGTH, "key over 250 bytes");
            }
        }
        Request::SaslAuth { mechanism, .. } => assert!(mechanism.len() <= KEY_MAX_LENGTH),
        other => assert!(other.key().len() <= KEY_MAX_LENGTH, "key over 250 bytes"),
    }
}

/// What every protocol error must satisfy, whatever the codec.
fn check_error_fields(error: &ProtocolError, input: &[u8]) {
    assert!(error.consumed > 0, "an error that consumes nothing loops");
    assert!(error.consumed <= input.len(), "consumed past the input");
    assert!(
        !(error.close && error.swallow > 0),
        "a closing error has nothing to swallow: {error:?}"
    );
    if error.reply == ErrorReply::Close {
        assert!(error.close, "a Close reply must close: {error:?}");
    }
}

/// `Incomplete { needed }` asks for more than is there.
fn check_incomplete(needed: Option<usize>, input: &[u8]) {
    if let Some(n) = needed {
        assert!(
            n > input.len(),
            "Incomplete needs {n} but {} are here",
            input.len()
        );
    }
}

/// The bytes a parse result occupies, when it occupies any.
fn consumed_of<T>(r: &Result<(T, usize), ParseError>) -> Option<usize> {
    match r {
        Ok((_, c)) => Some(*c),
        Err(ParseError::Protocol(e)) => Some(e.consumed),
        Err(ParseError::Incomplete { .. }) => None,
    }
}

/// A prefix of the input parses to `Incomplete` (asking for no more than the whole occupies)
/// or to exactly what the whole parses to. `prefix_may_close` allows the one documented
/// exception: the text protocol closes on a prefix over 2048 bytes without a newline.
fn check_prefix<T: PartialEq + std::fmt::Debug>(
    whole: &Result<(T, usize), ParseError>,
    prefix: &Result<(T, usize), ParseError>,
    prefix_may_close: bool,
) {
    match prefix {
        Err(ParseError::Incomplete { needed: Some(n) }) => {
            if let Some(c) = consumed_of(whole) {
                assert!(*n <= c, "a prefix needs {n}, the whole occupies only {c}");
            }
        }
        Err(ParseError::Incomplete { needed: None }) => {}
        Err(ParseError::Protocol(e)) if prefix_may_close && e.reply == ErrorReply::Close => {}
        _ => assert_eq!(prefix, whole, "a prefix parses differently from the whole"),
    }
}

/// Checks the text parser on one case. Panics on a broken invariant.
pub fn check_text(case: &Case<'_>) {
    let Case {
        limits,
        split,
        input,
    } = case;
    let whole = text::parse(input, limits);
    match &whole {
        Ok((request, consumed)) => {
            let consumed = *consumed;
            assert!(
                consumed > 0 && consumed <= input.len(),
                "consumed {consumed}"
            );
            assert!(
                input[..consumed].contains(&b'\n'),
                "a request ends its line"
            );
            check_keys(request);
            let data = match request {
                Request::Store(s) => Some(s.value),
                Request::Config(ConfigRequest::Set { data, .. }) => Some(*data),
                _ => None,
            };
            if let Some(data) = data {
                // The data block is the bytes just before a final `\r\n`.
                assert!(consumed >= data.len() + 2);
                assert_eq!(&input[consumed - 2..consumed], b"\r\n");
                assert_eq!(&input[consumed - 2 - data.len()..consumed - 2], data);
            }
            if let Request::TooLarge { swallow, .. } = request {
                assert!(*swallow >= 2, "the data's \\r\\n is swallowed too");
            }
            // The request's own bytes, copied, parse to the same request.
            let copy = input[..consumed].to_vec();
            let again = text::parse(&copy, limits);
            assert_eq!(again, whole, "a copy of the request parses differently");
        }
        Err(ParseError::Incomplete { needed }) => check_incomplete(*needed, input),
        Err(ParseError::Protocol(error)) => {
            check_error_fields(error, input);
            assert_eq!(error.close, error.reply == ErrorReply::Close);
            let mut out = Vec::new();
            text::compose(&Response::Error(error.reply), &mut out);
            if error.reply == ErrorReply::Close {
                assert!(out.is_empty(), "Close answers nothing");
            } else {
                // One line: something, then `\r\n`, and no other line break.
                assert!(out.len() > 2 && out.ends_with(b"\r\n"), "{out:?}");
                let line = &out[..out.len() - 2];
                assert!(!line.contains(&b'\n') && !line.contains(&b'\r'), "{out:?}");
            }
        }
    }
    let prefix = text::parse(&input[..*split], limits);
    check_prefix(&whole, &prefix, *split > text::MAX_LINE_WITHOUT_NEWLINE);
}

/// A composed binary response: a 24-byte header of a response whose body length matches.
fn check_binary_reply(out: &[u8], request_header: &binary::Header) {
    assert!(out.len() >= HEADER_LEN, "short reply {out:?}");
    let h = binary::Header::peek(out).expect("a header");
    assert_eq!(h.magic, RESPONSE_MAGIC);
    assert_eq!(h.body_len as usize, out.len() - HEADER_LEN, "body length");
    assert!(usize::from(h.key_len) + usize::from(h.extras_len) <= h.body_len as usize);
    assert_eq!(h.opcode, request_header.opcode, "the opcode is echoed");
    assert_eq!(h.opaque, request_header.opaque, "the opaque is echoed");
}

/// Checks the binary parser on one case. Panics on a broken invariant.
pub fn check_binary(case: &Case<'_>) {
    let Case {
        limits,
        split,
        input,
    } = case;
    let whole = binary::parse(input, limits);
    match &whole {
        Ok((frame, consumed)) => {
            let consumed = *consumed;
            assert!(consumed >= HEADER_LEN && consumed <= input.len());
            check_keys(&frame.request);
            if let Request::TooLarge { swallow, .. } = frame.request {
                // The value is discarded after what was consumed: consumed + swallow is the
                // packet's end as the header declares it.
                let h = binary::Header::peek(input).expect("a header");
                assert_eq!(consumed + swallow, HEADER_LEN + h.body_len as usize);
            }
            let copy = input[..consumed].to_vec();
            let again: Result<(Frame<'_>, usize), ParseError> = binary::parse(&copy, limits);
            assert_eq!(again, whole, "a copy of the packet parses differently");
            // A request the client composer can write parses back to itself.
            let mut re = Vec::new();
            if binary::compose_request(frame, &mut re) {
                let back = binary::parse(&re, limits);
                if let Ok((back, n)) = back {
                    assert_eq!(n, re.len());
                    assert_eq!(back, *frame, "compose_request does not round-trip");
                } else {
                    panic!("compose_request wrote an unparsable packet: {back:?}");
                }
            }
        }
        Err(ParseError::Incomplete { needed }) => check_incomplete(*needed, input),
        Err(ParseError::Protocol(error)) => {
            check_error_fields(error, input);
            assert!(
                error.consumed >= HEADER_LEN,
                "errors are known from the header"
            );
            let h = binary::Header::peek(input).expect("an error needs a header");
            let mut out = Vec::new();
            binary::compose_error_reply(input, error, &mut out);
            if error.reply == ErrorReply::Close {
                assert!(out.is_empty(), "Close answers nothing");
            } else {
                check_binary_reply(&out, &h);
            }
        }
    }
    let prefix = binary::parse(&input[..*split], limits);
    check_prefix(&whole, &prefix, false);
}
