//! The invariants tern's fuzz targets assert, shared by the targets (and runnable on a corpus by
//! any harness). Each `check_*` function panics when an invariant fails, which libFuzzer reports
//! as a crash with the input that caused it.
//!
//! The first bytes of a fuzz input are a small header the checks read their knobs from (the
//! split point and the parser limits), so one corpus entry is one self-contained case; the rest
//! is the bytes a client sent.

use tern_protocol::binary::{self, Frame, HEADER_LEN, RESPONSE_MAGIC};
use tern_protocol::meta::{
    self, ArithFacts, DebugFacts, HitFacts, KeyBuf, MetaError, MetaFlags, MetaKey, MetaRequest,
    Status, DECODED_KEY_MAX,
};
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

/// The command a `meta_parse` input starts with, picked by its first byte (after the knobs):
/// the six meta commands, or (for the other values) no prefix at all, so that the fuzzer
/// spends its time on meta lines yet can still reach whatever it likes.
const META_PREFIXES: [&[u8]; 8] = [b"mg ", b"ms ", b"md ", b"ma ", b"mn", b"me ", b"", b"m"];

/// Builds the bytes a `meta_parse` case parses: the chosen command prefix, then the rest.
pub fn meta_input(input: &[u8]) -> Vec<u8> {
    let Some((&pick, rest)) = input.split_first() else {
        return Vec::new();
    };
    let mut bytes = META_PREFIXES[usize::from(pick % 8)].to_vec();
    bytes.extend_from_slice(rest);
    bytes
}

/// The decoded fields of a meta request's flags (all but the raw run of tokens, which is
/// kept verbatim for replies while a request composed back writes its flags in a fixed order).
#[derive(Debug, PartialEq)]
struct FlagFields<'a> {
    switches: [bool; 12],
    opaque: Option<&'a [u8]>,
    ttl: Option<i32>,
    vivify: Option<i32>,
    recache: Option<i32>,
    client_flags: Option<u32>,
    compare_cas: Option<u64>,
    mode: Option<u8>,
    initial: Option<u64>,
    delta: Option<u64>,
}

impl<'a> FlagFields<'a> {
    fn of(f: &MetaFlags<'a>) -> Self {
        FlagFields {
            switches: [
                f.base64,
                f.return_cas,
                f.return_flags,
                f.return_hit,
                f.return_key,
                f.return_last_access,
                f.return_size,
                f.return_ttl,
                f.return_value,
                f.no_bump,
                f.quiet,
                f.invalidate,
            ],
            opaque: f.opaque,
            ttl: f.ttl,
            vivify: f.vivify,
            recache: f.recache,
            client_flags: f.client_flags,
            compare_cas: f.compare_cas,
            mode: f.mode,
            initial: f.initial,
            delta: f.delta,
        }
    }
}

/// What a meta request means, for comparing two parses: the request itself, with its flags
/// reduced to [`FlagFields`].
fn meta_fields<'a>(request: &MetaRequest<'a>) -> (MetaRequest<'a>, Option<FlagFields<'a>>) {
    let flags = match request {
        MetaRequest::Get { flags, .. }
        | MetaRequest::Set { flags, .. }
        | MetaRequest::Delete { flags, .. }
        | MetaRequest::Arith { flags, .. } => Some(*flags),
        _ => None,
    };
    let stripped = match *request {
        MetaRequest::Get { key, .. } => MetaRequest::Get {
            key,
            flags: MetaFlags::default(),
        },
        MetaRequest::Set {
            key, value, mode, ..
        } => MetaRequest::Set {
            key,
            flags: MetaFlags::default(),
            value,
            mode,
        },
        MetaRequest::Delete { key, .. } => MetaRequest::Delete {
            key,
            flags: MetaFlags::default(),
        },
        MetaRequest::Arith { key, incr, .. } => MetaRequest::Arith {
            key,
            flags: MetaFlags::default(),
            incr,
        },
        other => other,
    };
    (stripped, flags.as_ref().map(FlagFields::of))
}

/// A meta key: at most 250 bytes as sent; a base64 one decodes to at most 186 (and at least
/// one) bytes, and its `k` echo decodes back to the same bytes.
fn check_meta_key(key: &MetaKey<'_>) {
    assert!(!key.raw().is_empty(), "empty meta key");
    assert!(key.raw().len() <= KEY_MAX_LENGTH, "raw key over 250 bytes");
    let mut buf: KeyBuf = [0; DECODED_KEY_MAX];
    let decoded = key.bytes(&mut buf).to_vec();
    if key.is_binary() {
        assert!(
            decoded.len() <= DECODED_KEY_MAX,
            "decoded key over {DECODED_KEY_MAX} bytes"
        );
        assert!(!decoded.is_empty(), "a base64 key decodes to nothing");
        assert_eq!(MetaKey::base64(key.raw()), Some(*key));
        let mut echo = Vec::new();
        key.echo(&mut echo);
        let token = echo.strip_suffix(b" b").expect("a binary key echoes ` b`");
        let again = MetaKey::base64(token).expect("the echo is base64");
        let mut buf2: KeyBuf = [0; DECODED_KEY_MAX];
        assert_eq!(
            again.bytes(&mut buf2),
            decoded.as_slice(),
            "echo round trip"
        );
    } else {
        assert_eq!(decoded, key.raw());
    }
}

/// A composed reply: a header line ending in `\r\n`, with no other line feed in it (keys and
/// opaques may hold a lone `\r`, as memcached echoes them), then `tail` exactly.
fn check_reply_line(out: &[u8], tail: &[u8]) {
    assert!(out.len() >= tail.len() + 4, "short reply {out:?}");
    let (head, rest) = out.split_at(out.len() - tail.len());
    assert_eq!(rest, tail, "{out:?}");
    assert!(head.ends_with(b"\r\n"), "{out:?}");
    assert!(
        !head[..head.len() - 1].contains(&b'\n'),
        "a reply header is one line: {out:?}"
    );
}

/// Composes every reply the executor could send for `request` and checks each is well formed.
fn check_meta_replies(request: &MetaRequest<'_>) {
    let statuses = [Status::Hd, Status::En, Status::Nf, Status::Ns, Status::Ex];
    let mut out = Vec::new();
    let late_opaque = |r: Result<(), MetaError>, out: &Vec<u8>, flags: &MetaFlags<'_>| match r {
        Ok(()) => assert!(!flags.opaque_too_long()),
        Err(e) => {
            assert_eq!(e, MetaError::OpaqueTooLong);
            assert!(flags.opaque_too_long());
            assert!(out.is_empty(), "a refused reply writes nothing");
        }
    };
    match *request {
        MetaRequest::Get { key, flags } => {
            let mut buf: KeyBuf = [0; DECODED_KEY_MAX];
            let facts = HitFacts {
                key: key.bytes(&mut buf),
                key_binary: key.is_binary(),
                value_len: 5,
                cas: u64::MAX,
                client_flags: u32::MAX,
                ttl: Some(u32::MAX),
                touch_ttl: None,
                created: flags.vivify.is_some(),
                vivify_ttl: Some(30),
                last_access: 7,
                fetched: true,
                token_sent: flags.invalidate,
                stale: flags.no_bump,
                won: flags.recache.is_some(),
            };
            let r = meta::compose_get_hit(&flags, &facts, &mut out);
            late_opaque(r, &out, &flags);
            if !out.is_empty() {
                check_reply_line(&out, b"");
            }
            let _ = flags.final_exptime(true);
            let _ = flags.final_exptime(false);
            for status in statuses {
                out.clear();
                let r = meta::compose_status(status, &key, &flags, &mut out);
                late_opaque(r, &out, &flags);
                if !out.is_empty() {
                    check_reply_line(&out, b"");
                }
            }
        }
        MetaRequest::Set { key, flags, .. } => {
            assert!(!flags.opaque_too_long(), "ms refuses a long opaque");
            for status in statuses {
                out.clear();
                meta::compose_set(status, &key, &flags, 42, &mut out);
                check_reply_line(&out, b"");
            }
        }
        MetaRequest::Delete { key, flags } => {
            assert!(!flags.opaque_too_long(), "md refuses a long opaque");
            for status in statuses {
                out.clear();
                let r = meta::compose_status(status, &key, &flags, &mut out);
                assert!(r.is_ok());
                check_reply_line(&out, b"");
            }
        }
        MetaRequest::Arith { key, flags, .. } => {
            let facts = ArithFacts {
                value: u64::MAX,
                cas: 9,
                ttl: None,
                touch_ttl: Some(0),
                created: flags.vivify.is_some(),
                vivify_ttl: Some(u32::MAX),
            };
            let r = meta::compose_arith(&key, &flags, &facts, &mut out);
            late_opaque(r, &out, &flags);
            if !out.is_empty() {
                let tail: &[u8] = if flags.return_value {
                    b"18446744073709551615\r\n"
                } else {
                    b""
                };
                check_reply_line(&out, tail);
            }
        }
        MetaRequest::Debug { key } => {
            let mut buf: KeyBuf = [0; DECODED_KEY_MAX];
            let facts = DebugFacts {
                key: key.bytes(&mut buf),
                key_binary: key.is_binary(),
                ttl: Some(1),
                last_access: 0,
                cas: 1,
                fetched: false,
                class: 1,
                size: 60,
            };
            meta::compose_debug(&facts, &mut out);
            check_reply_line(&out, b"");
        }
        MetaRequest::Noop => {
            meta::compose_noop(&mut out);
            assert_eq!(out, b"MN\r\n");
        }
        MetaRequest::SetTooLarge { .. } => {}
    }
}

/// Checks the meta commands' parser (reached through `text::parse`) on one case: everything
/// [`check_text`] asserts, and for a meta request: keys within limits (decoded too), every
/// reply composer writes one well-formed line (or refuses a long opaque having written
/// nothing), and the request composed back as a client writes it parses to the same fields.
pub fn check_meta(case: &Case<'_>) {
    check_text(case);
    let whole = text::parse(case.input, &case.limits);
    // The quick path for the common `mg`, when it answers, answers what the general parser
    // answers.
    if meta::quick_get(case.input).is_some() {
        assert_eq!(
            whole,
            text::parse_general(case.input, &case.limits),
            "quick mg path"
        );
    }
    let Ok((Request::Meta(request), consumed)) = whole else {
        return;
    };
    match request {
        MetaRequest::Get { key, flags }
        | MetaRequest::Set { key, flags, .. }
        | MetaRequest::Delete { key, flags }
        | MetaRequest::Arith { key, flags, .. } => {
            assert_eq!(key.is_binary(), flags.base64, "b decides the key's form");
            check_meta_key(&key);
        }
        MetaRequest::SetTooLarge { key, swallow } => {
            check_meta_key(&key);
            assert!(swallow >= 2, "the data's \\r\\n is swallowed too");
        }
        MetaRequest::Debug { key } => check_meta_key(&key),
        MetaRequest::Noop => {}
    }
    check_meta_replies(&request);
    if let MetaRequest::SetTooLarge { .. } = request {
        // Composed back, its line loses the flags (F counts in the item size): not comparable.
        return;
    }
    let mut bytes = Vec::new();
    meta::compose_request(&request, &mut bytes);
    match text::parse(&bytes, &case.limits) {
        Ok((Request::Meta(back), n)) => {
            assert_eq!(n, bytes.len(), "{bytes:?}");
            assert_eq!(
                meta_fields(&back),
                meta_fields(&request),
                "composed back as {bytes:?} (from {:?})",
                &case.input[..consumed]
            );
        }
        other => panic!("{request:?} composed back as {bytes:?} parses to {other:?}"),
    }
}
