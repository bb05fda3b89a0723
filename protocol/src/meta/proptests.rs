//! Properties of the meta codec: generated requests compose to a line the parser reads back
//! field for field (and that composes to the same bytes), every proper prefix of a request is
//! `Incomplete`, and no input makes the parser panic or overreach.

use super::{compose_request, MetaFlags, MetaKey, MetaRequest};
use crate::{Limits, ParseError, Request, KEY_MAX_LENGTH};
use proptest::prelude::*;

fn parse(input: &[u8]) -> Result<(Request<'_>, usize), ParseError> {
    crate::text::parse(input, &Limits::default())
}

/// A generated request that owns its bytes.
#[derive(Debug, Clone)]
struct Owned {
    command: u8,
    key: Vec<u8>,
    base64: bool,
    switches: [bool; 11],
    opaque: Option<Vec<u8>>,
    ttl: Option<i32>,
    vivify: Option<i32>,
    recache: Option<i32>,
    client_flags: Option<u32>,
    compare_cas: Option<u64>,
    mode: Option<u8>,
    initial: Option<u64>,
    delta: Option<u64>,
    value: Vec<u8>,
}

impl Owned {
    fn flags(&self) -> MetaFlags<'_> {
        let s = self.switches;
        MetaFlags {
            tokens: b"",
            base64: self.base64,
            return_cas: s[0],
            return_flags: s[1],
            return_hit: s[2],
            return_key: s[3],
            return_last_access: s[4],
            return_size: s[5],
            return_ttl: s[6],
            return_value: s[7],
            no_bump: s[8],
            quiet: s[9],
            invalidate: s[10],
            opaque: self.opaque.as_deref(),
            ttl: self.ttl,
            vivify: self.vivify,
            recache: self.recache,
            client_flags: self.client_flags,
            compare_cas: self.compare_cas,
            mode: self.mode,
            initial: self.initial,
            delta: self.delta,
        }
    }

    fn request(&self) -> MetaRequest<'_> {
        let key = if self.base64 {
            MetaKey::base64(&self.key).expect("generated base64 decodes")
        } else {
            MetaKey::text(&self.key)
        };
        let flags = self.flags();
        match self.command {
            b'g' => MetaRequest::Get { key, flags },
            b's' => MetaRequest::Set {
                key,
                flags,
                value: &self.value,
                mode: match (self.mode, self.compare_cas.is_some()) {
                    (Some(b'E'), _) => crate::StoreMode::Add,
                    (Some(b'A'), _) => crate::StoreMode::Append,
                    (Some(b'P'), _) => crate::StoreMode::Prepend,
                    (_, true) => crate::StoreMode::Cas,
                    (Some(b'R'), false) => crate::StoreMode::Replace,
                    _ => crate::StoreMode::Set,
                },
            },
            b'd' => MetaRequest::Delete { key, flags },
            b'a' => MetaRequest::Arith {
                key,
                flags,
                incr: !matches!(self.mode, Some(b'D' | b'-')),
            },
            b'n' => MetaRequest::Noop,
            _ => MetaRequest::Debug { key },
        }
    }
}

fn text_key() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(33u8..=126, 1..=KEY_MAX_LENGTH)
}

fn base64_key() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 1..=super::DECODED_KEY_MAX).prop_map(|raw| {
        let mut out = Vec::new();
        super::base64::encode(&raw, &mut out);
        out
    })
}

fn owned() -> impl Strategy<Value = Owned> {
    let command = prop_oneof![
        Just(b'g'),
        Just(b's'),
        Just(b'd'),
        Just(b'a'),
        Just(b'n'),
        Just(b'e')
    ];
    let key = prop_oneof![
        text_key().prop_map(|k| (k, false)),
        base64_key().prop_map(|k| (k, true))
    ];
    let opaque = proptest::option::of(proptest::collection::vec(33u8..=126, 0..=31));
    let numbers = (
        proptest::option::of(any::<i32>()),
        proptest::option::of(any::<i32>()),
        proptest::option::of(any::<i32>()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<u64>()),
    );
    (
        command,
        key,
        any::<[bool; 11]>(),
        opaque,
        numbers,
        proptest::collection::vec(any::<u8>(), 0..64),
        0usize..8,
    )
        .prop_map(
            |(command, (key, base64), switches, opaque, n, value, mode)| {
                // A mode each command accepts.
                let modes: &[Option<u8>] = match command {
                    b's' => &[
                        None,
                        Some(b'S'),
                        Some(b'E'),
                        Some(b'A'),
                        Some(b'P'),
                        Some(b'R'),
                    ],
                    b'a' => &[None, Some(b'I'), Some(b'+'), Some(b'D'), Some(b'-')],
                    _ => &[None, Some(b'x'), Some(b'Z')],
                };
                let mut owned = Owned {
                    command,
                    key,
                    base64,
                    switches,
                    opaque,
                    ttl: n.0,
                    vivify: n.1,
                    recache: n.2,
                    client_flags: n.3,
                    compare_cas: n.4,
                    mode: modes[mode % modes.len()],
                    initial: n.5,
                    delta: n.6,
                    value,
                };
                // memcached allows 17 flags (16 after an ms data length): keep the count within.
                let max = if command == b's' { 16 } else { 17 };
                let mut budget = max;
                let mut spend = |on: bool| {
                    if on && budget > 0 {
                        budget -= 1;
                        true
                    } else {
                        false
                    }
                };
                owned.base64 = spend(owned.base64);
                for s in owned.switches.iter_mut() {
                    *s = spend(*s);
                }
                macro_rules! keep {
                ($($field:ident),*) => {$(
                    if !spend(owned.$field.is_some()) {
                        owned.$field = None;
                    }
                )*};
            }
                keep!(
                    opaque,
                    ttl,
                    vivify,
                    recache,
                    client_flags,
                    compare_cas,
                    mode,
                    initial,
                    delta
                );
                owned
            },
        )
}

/// The parsed request with its echo run cleared, for comparing fields.
fn without_tokens(request: MetaRequest<'_>) -> MetaRequest<'_> {
    match request {
        MetaRequest::Get { key, flags } => MetaRequest::Get {
            key,
            flags: MetaFlags {
                tokens: b"",
                ..flags
            },
        },
        MetaRequest::Set {
            key,
            flags,
            value,
            mode,
        } => MetaRequest::Set {
            key,
            flags: MetaFlags {
                tokens: b"",
                ..flags
            },
            value,
            mode,
        },
        MetaRequest::Delete { key, flags } => MetaRequest::Delete {
            key,
            flags: MetaFlags {
                tokens: b"",
                ..flags
            },
        },
        MetaRequest::Arith { key, flags, incr } => MetaRequest::Arith {
            key,
            flags: MetaFlags {
                tokens: b"",
                ..flags
            },
            incr,
        },
        other => other,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn compose_then_parse_round_trips(owned in owned()) {
        let request = owned.request();
        let mut bytes = Vec::new();
        compose_request(&request, &mut bytes);
        let (parsed, consumed) = match parse(&bytes) {
            Ok((Request::Meta(parsed), consumed)) => (parsed, consumed),
            other => return Err(TestCaseError::fail(format!("{bytes:?}: {other:?}"))),
        };
        prop_assert_eq!(consumed, bytes.len());
        prop_assert_eq!(without_tokens(parsed), request);
        let mut again = Vec::new();
        compose_request(&parsed, &mut again);
        prop_assert_eq!(again, bytes);
    }

    #[test]
    fn every_proper_prefix_is_incomplete(owned in owned()) {
        let mut bytes = Vec::new();
        compose_request(&owned.request(), &mut bytes);
        for end in 0..bytes.len() {
            match parse(&bytes[..end]) {
                Err(ParseError::Incomplete { needed }) => {
                    prop_assert!(needed.map_or(true, |n| n == bytes.len() && n > end));
                }
                other => {
                    return Err(TestCaseError::fail(format!("prefix {end} of {bytes:?}: {other:?}")));
                }
            }
        }
    }

    #[test]
    fn arbitrary_meta_lines_never_panic_or_overreach(
        command in prop_oneof![Just(&b"mg "[..]), Just(&b"ms "[..]), Just(&b"md "[..]), Just(&b"ma "[..]), Just(&b"me "[..]), Just(&b"mn "[..])],
        rest in proptest::collection::vec(prop_oneof![
            Just(b' '), Just(b'\r'), Just(b'\n'), Just(b'='), Just(b'O'), Just(b'T'), Just(b'b'),
            Just(b'M'), Just(b'1'), Just(b'v'), Just(b'k'), Just(b'q'), Just(b'C'), Just(b'-'),
            any::<u8>()
        ], 0..300),
    ) {
        let mut input = command.to_vec();
        input.extend_from_slice(&rest);
        match parse(&input) {
            Ok((request, consumed)) => {
                prop_assert!(consumed <= input.len());
                if let Request::Meta(meta) = request {
                    prop_assert!(meta.raw_key().len() <= KEY_MAX_LENGTH);
                    let mut buf = [0; super::DECODED_KEY_MAX];
                    if let MetaRequest::Get { key, .. } | MetaRequest::Delete { key, .. } = meta {
                        prop_assert!(!key.bytes(&mut buf).is_empty());
                    }
                }
            }
            Err(ParseError::Protocol(e)) => prop_assert!(e.consumed <= input.len()),
            Err(ParseError::Incomplete { needed }) => {
                prop_assert!(needed.map_or(true, |n| n > input.len()));
            }
        }
    }

    /// The quick `mg` path answers exactly what the general parser answers, whenever it
    /// answers at all (mg lines built from flag letters, spaces, line ends and NULs).
    #[test]
    fn quick_get_agrees_with_the_general_parser(
        key in prop_oneof![
            3 => proptest::collection::vec(b'!'..=b'~', 1..=252),
            1 => proptest::collection::vec(prop_oneof![
                Just(b'a'), Just(b'\r'), Just(b'k'), Just(0u8), Just(b' '), any::<u8>()
            ], 0..8),
        ],
        flags in proptest::collection::vec(prop_oneof![
            Just(&b" k"[..]), Just(&b" v"[..]), Just(&b" q"[..]), Just(&b" f"[..]), Just(&b" s"[..]), Just(&b" t"[..]),
            Just(&b" c"[..]), Just(&b" h"[..]), Just(&b" l"[..]), Just(&b" u"[..]), Just(&b" O"[..]), Just(&b" Oab"[..]),
            Just(&b" T30"[..]), Just(&b" b"[..]), Just(&b" P"[..]), Just(&b" vx"[..]), Just(&b" "[..]), Just(&b"\r"[..]),
            Just(&b"\0"[..]), Just(&b"z"[..]), Just(&b" 9"[..]), Just(&b" \xff"[..])
        ], 0..14),
        end in prop_oneof![Just(&b"\r\n"[..]), Just(&b"\n"[..]), Just(&b" \r\n"[..]), Just(&b"\r\r\n"[..]), Just(&b""[..])],
        tail in prop_oneof![Just(&b""[..]), Just(&b"mn\r\n"[..])],
    ) {
        let mut input = b"mg ".to_vec();
        input.extend_from_slice(&key);
        for f in &flags {
            input.extend_from_slice(f);
        }
        input.extend_from_slice(end);
        input.extend_from_slice(tail);
        if let Some((request, consumed)) = super::quick_get(&input) {
            let general = crate::text::parse_general(&input, &Limits::default());
            prop_assert_eq!(Ok((Request::Meta(request), consumed)), general);
        }
    }

    /// Lines read one after another into the same flags (as a connection reads a pipeline)
    /// get what each gets alone: reusing the last line's flags is only a shortcut.
    #[test]
    fn quick_get_into_a_reused_flags_agrees_with_each_line_alone(
        lines in proptest::collection::vec(
            (
                prop_oneof![Just(&b"mg a"[..]), Just(&b"mg bb"[..]), Just(&b"mg  c"[..]), Just(&b"ms a"[..])],
                prop_oneof![
                    Just(&b" v k q"[..]), Just(&b" v k q"[..]), Just(&b" v k"[..]), Just(&b" v kx q"[..]),
                    Just(&b" v k q Oab"[..]), Just(&b" Oab v"[..]), Just(&b" v v"[..]), Just(&b" v k T1"[..]),
                    Just(&b""[..]), Just(&b" s"[..]), Just(&b" v k q\0"[..]), Just(&b" v k q "[..])
                ],
                prop_oneof![Just(&b"\r\n"[..]), Just(&b"\n"[..]), Just(&b"\r"[..]), Just(&b""[..])],
            ),
            1..8,
        ),
    ) {
        let mut input = Vec::new();
        let mut starts = Vec::new();
        for (head, flags, end) in &lines {
            starts.push(input.len());
            input.extend_from_slice(head);
            input.extend_from_slice(flags);
            input.extend_from_slice(end);
        }
        let mut flags = MetaFlags::default();
        for &start in &starts {
            let line = &input[start..];
            let alone = super::quick_get(line);
            let reused = super::quick_get_into(line, &mut flags)
                .map(|(key, n)| (MetaRequest::Get { key, flags }, n));
            prop_assert_eq!(reused, alone, "{:?}", String::from_utf8_lossy(line));
        }
    }
}
