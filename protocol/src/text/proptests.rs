//! Properties of the text codec: compose-then-parse round-trips, every prefix of a pipeline is
//! `Incomplete` until a request is whole, and no input makes the parser panic or overreach.

use super::{compose_request, parse};
use crate::{
    ArithRequest, ConfigRequest, GetRequest, Keys, Limits, ParseError, ReplyMode, Request,
    StatsGroup, StoreMode, StoreRequest, KEY_MAX_LENGTH,
};
use proptest::prelude::*;

/// A request that owns its bytes, so a strategy can produce it.
#[derive(Debug, Clone)]
enum Owned {
    Get {
        keys: Vec<u8>,
        with_cas: bool,
        touch: Option<i32>,
    },
    Store {
        mode: StoreMode,
        key: Vec<u8>,
        flags: u32,
        exptime: i32,
        value: Vec<u8>,
        cas: u64,
        noreply: bool,
    },
    Delete(Vec<u8>, bool),
    Arith(Vec<u8>, u64, bool, bool),
    Touch(Vec<u8>, i32, bool),
    FlushAll(i32, bool),
    Verbosity(u32, bool),
    Version,
    Quit,
    Shutdown(bool),
    Stats(u8, Vec<u8>),
    ConfigGet(Vec<u8>),
    ConfigSet(Vec<u8>, u32, Vec<u8>, bool),
    ConfigDelete(Vec<u8>, bool),
}

impl Owned {
    fn request(&self) -> Request<'_> {
        match self {
            Owned::Get {
                keys,
                with_cas,
                touch,
            } => Request::Get(GetRequest {
                keys: Keys::spaced(keys),
                with_cas: *with_cas,
                touch: touch.map(i64::from),
                key_too_long: false,
            }),
            Owned::Store {
                mode,
                key,
                flags,
                exptime,
                value,
                cas,
                noreply,
            } => Request::Store(StoreRequest {
                mode: *mode,
                key,
                flags: *flags,
                exptime: i64::from(*exptime),
                value,
                cas: if *mode == StoreMode::Cas { *cas } else { 0 },
                reply: ReplyMode::from_noreply(*noreply),
            }),
            Owned::Delete(key, noreply) => Request::Delete {
                key,
                reply: ReplyMode::from_noreply(*noreply),
            },
            Owned::Arith(key, delta, incr, noreply) => Request::Arith(ArithRequest {
                key,
                delta: *delta,
                incr: *incr,
                initial: None,
                reply: ReplyMode::from_noreply(*noreply),
            }),
            Owned::Touch(key, exptime, noreply) => Request::Touch {
                key,
                exptime: i64::from(*exptime),
                reply: ReplyMode::from_noreply(*noreply),
            },
            Owned::FlushAll(delay, noreply) => Request::FlushAll {
                delay: i64::from(*delay),
                reply: ReplyMode::from_noreply(*noreply),
            },
            Owned::Verbosity(level, noreply) => Request::Verbosity {
                level: *level,
                reply: ReplyMode::from_noreply(*noreply),
            },
            Owned::Version => Request::Version,
            Owned::Quit => Request::Quit,
            Owned::Shutdown(graceful) => Request::Shutdown {
                graceful: *graceful,
            },
            Owned::Stats(group, args) => Request::Stats(match group {
                0 => StatsGroup::General,
                1 => StatsGroup::Settings,
                2 => StatsGroup::Items,
                3 => StatsGroup::Slabs,
                4 => StatsGroup::Sizes,
                5 => StatsGroup::Conns,
                6 => StatsGroup::Reset,
                _ => StatsGroup::Other(args),
            }),
            Owned::ConfigGet(key) => Request::Config(ConfigRequest::Get { key }),
            Owned::ConfigSet(key, flags, data, noreply) => Request::Config(ConfigRequest::Set {
                key,
                flags: *flags,
                data,
                reply: ReplyMode::from_noreply(*noreply),
            }),
            Owned::ConfigDelete(key, noreply) => Request::Config(ConfigRequest::Delete {
                key,
                reply: ReplyMode::from_noreply(*noreply),
            }),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        compose_request(&self.request(), &mut out);
        out
    }
}

/// A key the text protocol can carry: no space, `\n` or NUL, at most 250 bytes, and not the
/// word `noreply` (which memcached reads as the flag wherever it is the last token).
fn key() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        any::<u8>().prop_filter("separator", |b| !matches!(b, b' ' | b'\n' | 0)),
        1..=KEY_MAX_LENGTH,
    )
    .prop_filter("noreply", |k| k != b"noreply")
}

fn short_key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => "[a-z0-9_:]{1,12}".prop_map(String::into_bytes),
        1 => key(),
    ]
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..48)
}

fn mode() -> impl Strategy<Value = StoreMode> {
    prop_oneof![
        Just(StoreMode::Set),
        Just(StoreMode::Add),
        Just(StoreMode::Replace),
        Just(StoreMode::Append),
        Just(StoreMode::Prepend),
        Just(StoreMode::Cas),
    ]
}

fn stats_args() -> impl Strategy<Value = Vec<u8>> {
    "[a-z_]{1,10}( [a-z0-9]{1,6}){0,3}"
        .prop_filter("known group", |s| {
            let first = s.split(' ').next().unwrap_or("");
            !matches!(
                first,
                "settings"
                    | "items"
                    | "slabs"
                    | "sizes"
                    | "conns"
                    | "reset"
                    | "sizes_enable"
                    | "sizes_disable"
            )
        })
        .prop_map(String::into_bytes)
}

fn owned() -> impl Strategy<Value = Owned> {
    prop_oneof![
        (
            prop::collection::vec(short_key(), 1..5),
            any::<bool>(),
            prop::option::of(any::<i32>())
        )
            .prop_map(|(keys, with_cas, touch)| Owned::Get {
                keys: keys.join(&b' '),
                with_cas,
                touch,
            }),
        (
            mode(),
            short_key(),
            any::<u32>(),
            any::<i32>(),
            value(),
            any::<u64>(),
            any::<bool>()
        )
            .prop_map(
                |(mode, key, flags, exptime, value, cas, noreply)| Owned::Store {
                    mode,
                    key,
                    flags,
                    exptime,
                    value,
                    cas,
                    noreply,
                }
            ),
        (short_key(), any::<bool>()).prop_map(|(k, n)| Owned::Delete(k, n)),
        (short_key(), any::<u64>(), any::<bool>(), any::<bool>())
            .prop_map(|(k, d, i, n)| Owned::Arith(k, d, i, n)),
        (short_key(), any::<i32>(), any::<bool>()).prop_map(|(k, e, n)| Owned::Touch(k, e, n)),
        (any::<i32>(), any::<bool>()).prop_map(|(d, n)| Owned::FlushAll(d, n)),
        (any::<u32>(), any::<bool>()).prop_map(|(l, n)| Owned::Verbosity(l, n)),
        Just(Owned::Version),
        Just(Owned::Quit),
        any::<bool>().prop_map(Owned::Shutdown),
        (0u8..8, stats_args()).prop_map(|(g, a)| Owned::Stats(g, a)),
        short_key().prop_map(Owned::ConfigGet),
        (short_key(), any::<u32>(), value(), any::<bool>())
            .prop_map(|(k, f, d, n)| Owned::ConfigSet(k, f, d, n)),
        (short_key(), any::<bool>()).prop_map(|(k, n)| Owned::ConfigDelete(k, n)),
    ]
}

/// Checks what every parse result must satisfy, whatever the input.
fn check_invariants(input: &[u8], limits: &Limits) -> Result<(), TestCaseError> {
    match parse(input, limits) {
        Ok((request, consumed)) => {
            prop_assert!(consumed > 0 && consumed <= input.len());
            let short = |k: &[u8]| k.len() <= KEY_MAX_LENGTH;
            match request {
                Request::Get(get) => prop_assert!(get.keys.clone().all(short)),
                Request::Store(s) => {
                    prop_assert!(short(s.key) && !s.key.is_empty());
                    prop_assert!(super::item_fits(
                        limits,
                        s.key.len(),
                        s.flags,
                        s.value.len()
                    ));
                }
                Request::TooLarge { key, swallow, .. } => {
                    prop_assert!(short(key) && swallow >= 2);
                }
                Request::Delete { key, .. } | Request::Touch { key, .. } => {
                    prop_assert!(short(key))
                }
                Request::Arith(a) => prop_assert!(short(a.key)),
                _ => {}
            }
        }
        Err(ParseError::Incomplete { needed }) => {
            if let Some(needed) = needed {
                prop_assert!(needed > input.len());
            }
        }
        Err(ParseError::Protocol(e)) => {
            prop_assert!(e.consumed > 0 && e.consumed <= input.len());
        }
    }
    Ok(())
}

/// Words that steer random lines into every command's checks.
fn token() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::sample::select(vec![
            "get",
            "gets",
            "gat",
            "gats",
            "bget",
            "set",
            "add",
            "replace",
            "append",
            "prepend",
            "cas",
            "delete",
            "incr",
            "decr",
            "touch",
            "flush_all",
            "verbosity",
            "version",
            "quit",
            "shutdown",
            "graceful",
            "stats",
            "reset",
            "config",
            "noreply",
            "0",
            "1",
            "-1",
            "-0",
            "4294967296",
            "2147483645",
            "18446744073709551616",
            "HTTP/1.1",
            "GET",
            "mn",
            "\t5",
            "5\t",
            "\r",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        "[0-9]{1,12}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..8),
        prop::collection::vec(Just(b'k'), 249..252),
    ]
}

fn soup_line() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec((token(), 1usize..3), 0..10),
        prop::sample::select(vec![&b"\r\n"[..], b"\n", b"", b"\r"]),
        prop::collection::vec(any::<u8>(), 0..16),
    )
        .prop_map(|(tokens, end, tail)| {
            let mut line = Vec::new();
            for (token, spaces) in tokens {
                line.extend_from_slice(&token);
                line.extend(std::iter::repeat(b' ').take(spaces));
            }
            line.extend_from_slice(end);
            line.extend_from_slice(&tail);
            line
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn compose_then_parse_round_trips(owned in owned()) {
        let bytes = owned.bytes();
        let parsed = parse(&bytes, &Limits::default());
        prop_assert_eq!(parsed, Ok((owned.request(), bytes.len())));
    }

    #[test]
    fn every_prefix_of_a_pipeline_is_incomplete_until_whole(
        pipeline in prop::collection::vec(owned(), 1..4)
    ) {
        let limits = Limits::default();
        let mut input = Vec::new();
        let mut ends = Vec::new();
        for owned in &pipeline {
            input.extend(owned.bytes());
            ends.push(input.len());
        }
        for cut in 0..=input.len() {
            let mut offset = 0;
            let mut index = 0;
            loop {
                match parse(&input[offset..cut], &limits) {
                    Ok((request, consumed)) => {
                        prop_assert_eq!(request, pipeline[index].request());
                        offset += consumed;
                        prop_assert_eq!(offset, ends[index]);
                        index += 1;
                    }
                    Err(ParseError::Incomplete { needed }) => {
                        // Whole requests were all parsed; the rest is a proper prefix.
                        prop_assert!(index == ends.len() || ends[index] > cut);
                        if let Some(needed) = needed {
                            prop_assert_eq!(offset + needed, ends[index]);
                        }
                        break;
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("{e:?} at cut {cut}"))),
                }
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..3000)) {
        check_invariants(&input, &Limits::default())?;
    }

    #[test]
    fn token_soup_never_panics(lines in prop::collection::vec(soup_line(), 1..4), tiny in any::<bool>()) {
        let limits = if tiny {
            Limits { item_size_max: 300, cas_enabled: false }
        } else {
            Limits::default()
        };
        let input = lines.concat();
        let mut offset = 0;
        while offset < input.len() {
            check_invariants(&input[offset..], &limits)?;
            match parse(&input[offset..], &limits) {
                Ok((_, consumed)) => offset += consumed,
                Err(ParseError::Protocol(e)) if !e.close => offset += e.consumed,
                _ => break,
            }
        }
    }
}
