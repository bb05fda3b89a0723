//! Byte-exact tests. Every expected reply marked "captured" was read from memcached 1.6.18
//! (Debian build) over a socket with python; the others follow 1.6.18's source.

use super::*;
use crate::{
    ArithRequest, ConfigRequest, ErrorReply, GetRequest, Keys, Limits, ParseError, ProtocolError,
    ReplyMode, Request, Response, StatsGroup, StoreMode, StoreRequest,
};
use proptest::prelude::*;

/// A request packet built by hand, independently of `compose_request`.
fn packet(op: u8, key: &[u8], ext: &[u8], val: &[u8], opaque: u32, cas: u64) -> Vec<u8> {
    raw(
        op,
        key.len() as u16,
        ext.len() as u8,
        (key.len() + ext.len() + val.len()) as u32,
        opaque,
        cas,
        &[ext, key, val].concat(),
    )
}

fn raw(
    op: u8,
    key_len: u16,
    ext_len: u8,
    body_len: u32,
    opaque: u32,
    cas: u64,
    body: &[u8],
) -> Vec<u8> {
    let mut p = vec![0x80, op];
    p.extend_from_slice(&key_len.to_be_bytes());
    p.push(ext_len);
    p.extend_from_slice(&[0, 0, 0]);
    p.extend_from_slice(&body_len.to_be_bytes());
    p.extend_from_slice(&opaque.to_be_bytes());
    p.extend_from_slice(&cas.to_be_bytes());
    p.extend_from_slice(body);
    p
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn limits() -> Limits {
    Limits::default()
}

fn parse_ok(input: &[u8]) -> (Frame<'_>, usize) {
    parse(input, &limits()).expect("a whole valid packet")
}

fn parse_err(input: &[u8]) -> ProtocolError {
    match parse(input, &limits()) {
        Err(ParseError::Protocol(e)) => e,
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

fn reply(frame: &Frame<'_>, response: Response<'_>, cas: u64) -> Vec<u8> {
    let mut out = Vec::new();
    compose(frame, &response, cas, &mut out);
    out
}

fn error_reply(input: &[u8]) -> (Vec<u8>, ProtocolError) {
    let e = parse_err(input);
    let mut out = Vec::new();
    compose_error_reply(input, &e, &mut out);
    (out, e)
}

fn set_ext(flags: u32, exptime: u32) -> Vec<u8> {
    [flags.to_be_bytes(), exptime.to_be_bytes()].concat()
}

fn arith_ext(delta: u64, initial: u64, exptime: u32) -> Vec<u8> {
    [
        &delta.to_be_bytes()[..],
        &initial.to_be_bytes(),
        &exptime.to_be_bytes(),
    ]
    .concat()
}

// ---- parsing, opcode by opcode ----

#[test]
fn get_family_parses_one_key_and_echoes_opaque_and_cas() {
    for (op, quiet, with_key) in [
        (0x00, false, false),
        (0x09, true, false),
        (0x0c, false, true),
        (0x0d, true, true),
    ] {
        let p = packet(op, b"foo bar", &[], &[], 7, 99);
        let (f, n) = parse_ok(&p);
        assert_eq!(n, p.len());
        assert_eq!(
            (f.opaque, f.cas, f.quiet(), f.returns_key()),
            (7, 99, quiet, with_key)
        );
        assert_eq!(
            f.request,
            Request::Get(GetRequest {
                keys: Keys::single(b"foo bar"),
                with_cas: true,
                touch: None,
                key_too_long: false,
            })
        );
    }
}

#[test]
fn gat_family_and_touch_parse_expiration() {
    for op in [0x1d, 0x1e, 0x23, 0x24] {
        let p = packet(op, b"k", &100u32.to_be_bytes(), &[], 1, 0);
        let (f, _) = parse_ok(&p);
        assert_eq!(
            f.request,
            Request::Get(GetRequest {
                keys: Keys::single(b"k"),
                with_cas: true,
                touch: Some(100),
                key_too_long: false,
            })
        );
    }
    let p = packet(0x1c, b"k", &0xffff_fff0u32.to_be_bytes(), &[], 1, 0);
    assert_eq!(
        parse_ok(&p).0.request,
        Request::Touch {
            key: b"k",
            exptime: 0xffff_fff0,
            reply: ReplyMode::Normal
        }
    );
}

#[test]
fn touch_gat_and_stat_leave_surplus_body_in_the_stream() {
    // Captured: TOUCH with extras 4 + key + "zz" answers, then "zz"+NOOP reads as a bad magic.
    let p = packet(0x1c, b"k", &[0; 4], b"zz", 7, 0);
    assert_eq!(parse_ok(&p).1, 24 + 4 + 1);
    let p = packet(0x1d, b"k", &[0; 4], b"zz", 7, 0);
    assert_eq!(parse_ok(&p).1, 24 + 4 + 1);
    let p = packet(0x10, b"items", &[], b"x", 3, 0);
    assert_eq!(parse_ok(&p).1, 24 + 5);
}

#[test]
fn set_add_replace_parse_flags_exptime_value_and_quiet() {
    for (op, mode, quiet) in [
        (0x01, StoreMode::Set, false),
        (0x11, StoreMode::Set, true),
        (0x02, StoreMode::Add, false),
        (0x12, StoreMode::Add, true),
        (0x03, StoreMode::Replace, false),
        (0x13, StoreMode::Replace, true),
    ] {
        let p = packet(op, b"foo", &set_ext(5, 100), b"bar", 6, 0);
        let (f, n) = parse_ok(&p);
        assert_eq!(n, p.len());
        assert_eq!(
            f.request,
            Request::Store(StoreRequest {
                mode,
                key: b"foo",
                flags: 5,
                exptime: 100,
                value: b"bar",
                cas: 0,
                reply: ReplyMode::from_quiet(quiet)
            })
        );
    }
}

#[test]
fn set_add_replace_with_cas_become_cas_commands() {
    // memcached sets c->cmd = NREAD_CAS whenever the request CAS is non-zero.
    for op in [0x01, 0x02, 0x03, 0x11] {
        let p = packet(op, b"q", &set_ext(0, 0), b"1", 15, 12345);
        match parse_ok(&p).0.request {
            Request::Store(s) => assert_eq!((s.mode, s.cas), (StoreMode::Cas, 12345)),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn append_prepend_keep_their_mode_and_carry_the_cas() {
    for (op, mode, quiet) in [
        (0x0e, StoreMode::Append, false),
        (0x19, StoreMode::Append, true),
        (0x0f, StoreMode::Prepend, false),
        (0x1a, StoreMode::Prepend, true),
    ] {
        let p = packet(op, b"foo", &[], b"xy", 1, 8);
        assert_eq!(
            parse_ok(&p).0.request,
            Request::Store(StoreRequest {
                mode,
                key: b"foo",
                flags: 0,
                exptime: 0,
                value: b"xy",
                cas: 8,
                reply: ReplyMode::from_quiet(quiet)
            })
        );
    }
}

#[test]
fn delete_parses_key_and_quiet() {
    assert_eq!(
        parse_ok(&packet(0x04, b"foo", &[], &[], 1, 3)).0.request,
        Request::Delete {
            key: b"foo",
            reply: ReplyMode::Normal
        }
    );
    let p = packet(0x14, b"foo", &[], &[], 1, 3);
    let (f, _) = parse_ok(&p);
    assert_eq!(
        (f.request, f.cas),
        (
            Request::Delete {
                key: b"foo",
                reply: ReplyMode::Quiet
            },
            3
        )
    );
}

#[test]
fn incr_decr_parse_delta_initial_and_no_create_expiration() {
    let p = packet(0x05, b"ctr", &arith_ext(5, 10, 60), &[], 1, 0);
    assert_eq!(
        parse_ok(&p).0.request,
        Request::Arith(ArithRequest {
            key: b"ctr",
            delta: 5,
            incr: true,
            initial: Some((10, 60)),
            reply: ReplyMode::Normal
        })
    );
    let p = packet(0x16, b"ctr", &arith_ext(1, 10, 0xffff_ffff), &[], 1, 0);
    assert_eq!(
        parse_ok(&p).0.request,
        Request::Arith(ArithRequest {
            key: b"ctr",
            delta: 1,
            incr: false,
            initial: None,
            reply: ReplyMode::Quiet
        })
    );
}

#[test]
fn no_body_commands_parse() {
    assert_eq!(
        parse_ok(&packet(0x07, b"", &[], &[], 1, 0)).0.request,
        Request::Quit
    );
    let p = packet(0x17, b"", &[], &[], 1, 0);
    let (f, _) = parse_ok(&p);
    assert!(f.closes() && f.quiet());
    assert_eq!(
        parse_ok(&packet(0x0a, b"", &[], &[], 1, 0)).0.request,
        Request::Noop
    );
    assert_eq!(
        parse_ok(&packet(0x0b, b"", &[], &[], 1, 0)).0.request,
        Request::Version
    );
    assert_eq!(
        parse_ok(&packet(0x20, b"", &[], &[], 1, 0)).0.request,
        Request::SaslListMechs
    );
}

#[test]
fn flush_takes_optional_expiration() {
    assert_eq!(
        parse_ok(&packet(0x08, b"", &[], &[], 1, 0)).0.request,
        Request::FlushAll {
            delay: 0,
            reply: ReplyMode::Normal
        }
    );
    assert_eq!(
        parse_ok(&packet(0x18, b"", &30u32.to_be_bytes(), &[], 1, 0))
            .0
            .request,
        Request::FlushAll {
            delay: 30,
            reply: ReplyMode::Quiet
        }
    );
}

#[test]
fn stat_groups_match_memcached() {
    for (key, group) in [
        (&b""[..], StatsGroup::General),
        (b"reset", StatsGroup::Reset),
        (b"resetxyz", StatsGroup::Reset),
        (b"settings", StatsGroup::Settings),
        (b"items", StatsGroup::Items),
        (b"slabs", StatsGroup::Slabs),
        (b"sizes", StatsGroup::Sizes),
        // memcached's binary STAT knows no `conns` (`get_stats` does not list it).
        (b"conns", StatsGroup::Other(b"conns")),
        (b"detail dump", StatsGroup::Other(b"detail dump")),
        (b"itemsx", StatsGroup::Other(b"itemsx")),
    ] {
        assert_eq!(
            parse_ok(&packet(0x10, key, &[], &[], 1, 0)).0.request,
            Request::Stats(group)
        );
    }
}

#[test]
fn sasl_auth_and_step_parse_mechanism_and_data() {
    let p = packet(0x21, b"PLAIN", &[], b"\0u\0p", 1, 0);
    let (f, _) = parse_ok(&p);
    assert_eq!(
        f.request,
        Request::SaslAuth {
            mechanism: b"PLAIN",
            data: b"\0u\0p",
            step: false
        }
    );
    let p = packet(0x22, b"PLAIN", &[], b"", 1, 0);
    let (f, _) = parse_ok(&p);
    assert_eq!(
        f.request,
        Request::SaslAuth {
            mechanism: b"PLAIN",
            data: b"",
            step: true
        }
    );
}

#[test]
fn config_commands_parse_into_config_requests() {
    assert_eq!(
        parse_ok(&packet(0x60, b"cluster", &[], &[], 1, 0))
            .0
            .request,
        Request::Config(ConfigRequest::Get { key: b"cluster" })
    );
    assert_eq!(
        parse_ok(&packet(
            0x64,
            b"cluster",
            &7u32.to_be_bytes(),
            b"1\nh|1.2.3.4|11211",
            1,
            0
        ))
        .0
        .request,
        Request::Config(ConfigRequest::Set {
            key: b"cluster",
            flags: 7,
            data: b"1\nh|1.2.3.4|11211",
            reply: ReplyMode::Normal
        })
    );
    assert_eq!(
        parse_ok(&packet(0x66, b"cluster", &[], &[], 1, 0))
            .0
            .request,
        Request::Config(ConfigRequest::Delete {
            key: b"cluster",
            reply: ReplyMode::Normal
        })
    );
}

#[test]
fn incomplete_reports_needed_length() {
    let p = packet(0x01, b"foo", &set_ext(0, 0), b"bar", 1, 0);
    assert_eq!(
        parse(&p[..10], &limits()),
        Err(ParseError::Incomplete { needed: Some(24) })
    );
    assert_eq!(
        parse(&p[..30], &limits()),
        Err(ParseError::Incomplete { needed: Some(35) })
    );
    assert_eq!(
        parse(&p[..36], &limits()),
        Err(ParseError::Incomplete { needed: Some(38) })
    );
}

// ---- parse errors (all captured) ----

#[test]
fn bad_magic_closes_without_reply() {
    let mut p = packet(0x0a, b"", &[], &[], 0, 0);
    p[0] = 0x81;
    let (out, e) = error_reply(&p);
    assert!(out.is_empty());
    assert!(e.close);
}

#[test]
fn key_and_extras_longer_than_body_is_unknown_command_then_close() {
    let p = raw(0x00, 3, 0, 2, 3, 0, b"xxxxxx");
    let (out, e) = error_reply(&p);
    assert_eq!(
        out,
        unhex("81000000000000810000000f000000030000000000000000556e6b6e6f776e20636f6d6d616e64")
    );
    assert!(e.close);
}

#[test]
fn key_over_250_bytes_is_invalid_arguments_then_close() {
    let (out, e) = error_reply(&packet(0x00, &[b'k'; 251], &[], &[], 4, 0));
    assert_eq!(
        out,
        unhex("810000000000000400000011000000040000000000000000496e76616c696420617267756d656e7473")
    );
    assert!(e.close);
    // 250 is fine.
    parse_ok(&packet(0x00, &[b'k'; 250], &[], &[], 4, 0));
    // Also for SET.
    assert!(parse_err(&packet(0x01, &[b'k'; 251], &set_ext(0, 0), b"v", 0, 0)).close);
}

#[test]
fn unknown_opcode_swallows_body_len_more_bytes_and_stays_open() {
    // Captured: 0x30 with key "abc" then a NOOP gets no NOOP reply; with 3 junk bytes between
    // them, the NOOP is answered.
    let p = packet(0x30, b"abc", &[], &[], 2, 0);
    let (out, e) = error_reply(&p);
    assert_eq!(
        out,
        unhex("81300000000000810000000f000000020000000000000000556e6b6e6f776e20636f6d6d616e64")
    );
    assert_eq!((e.consumed + e.swallow, e.close), (24 + 3 + 3, false));
}

#[test]
fn verbosity_is_an_unknown_command_in_1_6_18() {
    let p = packet(0x1b, b"", &1u32.to_be_bytes(), &[], 1, 0);
    let (out, e) = error_reply(&p);
    assert_eq!(
        out,
        unhex("811b0000000000810000000f000000010000000000000000556e6b6e6f776e20636f6d6d616e64")
    );
    assert_eq!((e.consumed + e.swallow, e.close), (24 + 4 + 4, false));
}

#[test]
fn wrong_lengths_for_the_opcode_are_invalid_arguments_then_close() {
    let cases: Vec<Vec<u8>> = vec![
        packet(0x00, b"k", &[0; 4], &[], 5, 0),     // GET with extras
        packet(0x00, b"", &[], &[], 0, 0),          // GET without key
        packet(0x01, b"k", &[0; 4], b"v", 0, 0),    // SET with 4 bytes of extras
        packet(0x01, b"", &[0; 8], b"v", 0, 0),     // SET without key
        packet(0x0e, b"k", &[0; 8], b"v", 0, 0),    // APPEND with extras
        packet(0x0e, b"", &[], b"v", 0, 0),         // APPEND without key
        packet(0x05, b"k", &[], &[], 0, 0),         // INCR without extras
        packet(0x05, b"k", &[0; 20], b"x", 0, 0),   // INCR with a value
        packet(0x04, b"k", &[], b"x", 0, 0),        // DELETE with a value
        packet(0x10, b"", &[0; 4], &[], 0, 0),      // STAT with extras
        packet(0x08, b"", &[0; 8], &[], 0, 0),      // FLUSH with 8 bytes of extras
        packet(0x08, b"", &[0; 4], b"x", 0, 0),     // FLUSH with a value
        packet(0x21, b"", &[], b"x", 0, 0),         // SASL_AUTH without mechanism
        packet(0x21, b"PLAIN", &[0; 4], &[], 0, 0), // SASL_AUTH with extras
        packet(0x1c, b"k", &[], &[], 0, 0),         // TOUCH without extras
        packet(0x0b, b"", &[], b"x", 0, 0),         // VERSION with a body
        packet(0x07, b"", &[], b"x", 0, 0),         // QUIT with a body
        packet(0x0a, b"", &[], b"x", 0x1d, 0),      // NOOP with a body
    ];
    for p in &cases {
        let (out, e) = error_reply(p);
        assert!(e.close, "{p:?}");
        assert_eq!(&out[6..8], &[0, 4], "{p:?}");
        assert_eq!(&out[24..], b"Invalid arguments");
    }
    let (out, _) = error_reply(&cases[17]);
    assert_eq!(
        out,
        unhex("810a000000000004000000110000001d0000000000000000496e76616c696420617267756d656e7473")
    );
}

#[test]
fn set_too_large_swallows_value_without_buffering_it() {
    // Captured with -I 1m: a 3-byte key, flags 0: 1048514 fits, 1048515 is "Too large.".
    let big = 1048515usize;
    let mut p = packet(0x01, b"big", &set_ext(0, 0), &[], 0x1c, 0);
    p[8..12].copy_from_slice(&((8 + 3 + big) as u32).to_be_bytes());
    // Only the header, extras and key have arrived.
    let (f, n) = parse_ok(&p);
    assert_eq!(n, 24 + 8 + 3);
    assert_eq!(
        f.request,
        Request::TooLarge {
            mode: StoreMode::Set,
            key: b"big",
            swallow: big,
            reply: ReplyMode::Normal
        }
    );
    assert_eq!(
        reply(&f, Response::Error(ErrorReply::TooLarge), 0),
        unhex("81010000000000030000000a0000001c0000000000000000546f6f206c617267652e")
    );
    // One byte less would fit: the parser waits for the value.
    p[8..12].copy_from_slice(&((8 + 3 + big - 1) as u32).to_be_bytes());
    assert_eq!(
        parse(&p, &limits()),
        Err(ParseError::Incomplete {
            needed: Some(24 + 8 + 3 + big - 1)
        })
    );
}

#[test]
fn item_size_counts_flags_and_cas_like_memcached() {
    let l = limits();
    assert!(item_fits(&l, 3, 0, 1048514));
    assert!(!item_fits(&l, 3, 0, 1048515));
    assert!(item_fits(&l, 3, 1, 1048510));
    assert!(!item_fits(&l, 3, 1, 1048511));
    let no_cas = Limits {
        cas_enabled: false,
        ..l
    };
    assert!(item_fits(&no_cas, 3, 0, 1048522));
    assert!(!item_fits(&no_cas, 3, 0, 1048523));
}

#[test]
fn append_too_large_is_reported_with_its_mode() {
    let mut p = packet(0x19, b"big", &[], &[], 1, 0);
    p[8..12].copy_from_slice(&(3 + 1048576u32).to_be_bytes());
    assert_eq!(
        parse_ok(&p).0.request,
        Request::TooLarge {
            mode: StoreMode::Append,
            key: b"big",
            swallow: 1048576,
            reply: ReplyMode::Quiet
        }
    );
}

#[test]
fn oversized_sasl_data_is_out_of_memory_and_swallowed() {
    let mut p = packet(0x21, b"PLAIN", &[], &[], 9, 0);
    p[8..12].copy_from_slice(&(5 + 2_000_000u32).to_be_bytes());
    let (out, e) = error_reply(&p);
    assert_eq!((e.consumed, e.swallow, e.close), (29, 2_000_000, false));
    assert_eq!(&out[6..8], &[0, 0x82]);
    assert_eq!(&out[24..], b"Out of memory");
}

// ---- composing replies (captured) ----

fn frame_of(p: &[u8]) -> Frame<'_> {
    parse_ok(p).0
}

#[test]
fn set_success_reports_the_new_cas() {
    let p = packet(0x01, b"foo", &set_ext(5, 0), b"bar", 6, 0);
    assert_eq!(
        reply(&frame_of(&p), Response::Stored, 1),
        unhex("810100000000000000000000000000060000000000000001")
    );
    let p = packet(0x0e, b"foo", &[], b"x", 12, 0);
    assert_eq!(
        reply(&frame_of(&p), Response::Stored, 2),
        unhex("810e000000000000000000000000000c0000000000000002")
    );
}

#[test]
fn get_hits_carry_flags_cas_and_for_getk_the_key() {
    let hit = Response::Value {
        key: b"foo",
        flags: 5,
        cas: Some(1),
        data: b"bar",
    };
    let p = packet(0x00, b"foo", &[], &[], 7, 99);
    assert_eq!(
        reply(&frame_of(&p), hit, 0),
        unhex("81000000040000000000000700000007000000000000000100000005626172")
    );
    let p = packet(0x0c, b"foo", &[], &[], 7, 0);
    assert_eq!(
        reply(&frame_of(&p), hit, 0),
        unhex("810c0003040000000000000a00000007000000000000000100000005666f6f626172")
    );
    let p = packet(0x09, b"foo", &[], &[], 9, 0);
    assert_eq!(
        reply(&frame_of(&p), hit, 0),
        unhex("81090000040000000000000700000009000000000000000100000005626172")
    );
}

#[test]
fn get_misses_say_not_found_getk_misses_echo_the_key_quiet_misses_are_silent() {
    let p = packet(0x00, b"nope", &[], &[], 8, 0);
    assert_eq!(
        reply(&frame_of(&p), Response::NotFound, 0),
        unhex("8100000000000001000000090000000800000000000000004e6f7420666f756e64")
    );
    let p = packet(0x0c, b"nope", &[], &[], 8, 0);
    assert_eq!(
        reply(&frame_of(&p), Response::NotFound, 0),
        unhex("810c000400000001000000040000000800000000000000006e6f7065")
    );
    for op in [0x09, 0x0d] {
        assert!(reply(
            &frame_of(&packet(op, b"nope", &[], &[], 8, 0)),
            Response::NotFound,
            0
        )
        .is_empty());
    }
    for op in [0x1e, 0x24] {
        assert!(reply(
            &frame_of(&packet(op, b"nope", &100u32.to_be_bytes(), &[], 8, 0)),
            Response::NotFound,
            0
        )
        .is_empty());
    }
}

#[test]
fn touch_and_gat_hits() {
    let hit = Response::Value {
        key: b"foo",
        flags: 5,
        cas: Some(2),
        data: b"barx",
    };
    let p = packet(0x1c, b"foo", &100u32.to_be_bytes(), &[], 0x14, 0);
    assert_eq!(
        reply(&frame_of(&p), hit, 0),
        unhex("811c0000040000000000000400000014000000000000000200000005")
    );
    assert_eq!(
        reply(&frame_of(&p), Response::NotFound, 0),
        unhex("811c000000000001000000090000001400000000000000004e6f7420666f756e64")
    );
    let p = packet(0x1d, b"foo", &100u32.to_be_bytes(), &[], 0x15, 0);
    assert_eq!(
        reply(&frame_of(&p), hit, 0),
        unhex("811d000004000000000000080000001500000000000000020000000562617278")
    );
    let p = packet(0x23, b"foo", &100u32.to_be_bytes(), &[], 0x15, 0);
    assert_eq!(
        reply(&frame_of(&p), hit, 0),
        unhex("81230003040000000000000b00000015000000000000000200000005666f6f62617278")
    );
}

#[test]
fn store_failures_map_by_opcode() {
    let add = packet(0x02, b"foo", &set_ext(0, 0), b"x", 10, 0);
    assert_eq!(reply(&frame_of(&add), Response::NotStored, 0), unhex("8102000000000002000000140000000a0000000000000000446174612065786973747320666f72206b65792e"));
    let replace = packet(0x03, b"nope", &set_ext(0, 0), b"x", 11, 0);
    assert_eq!(
        reply(&frame_of(&replace), Response::NotStored, 0),
        unhex("8103000000000001000000090000000b00000000000000004e6f7420666f756e64")
    );
    let append = packet(0x0e, b"nope", &[], b"x", 12, 0);
    assert_eq!(
        reply(&frame_of(&append), Response::NotStored, 0),
        unhex("810e0000000000050000000b0000000c00000000000000004e6f742073746f7265642e")
    );
    // Quiet commands never hide errors.
    let addq = packet(0x12, b"q", &set_ext(0, 0), b"1", 14, 0);
    assert_eq!(reply(&frame_of(&addq), Response::NotStored, 0), unhex("8112000000000002000000140000000e0000000000000000446174612065786973747320666f72206b65792e"));
    // CAS commands: mismatch and missing (captured with ADD and a CAS).
    let cas = packet(0x02, b"qq", &set_ext(0, 0), b"1", 15, 12345);
    assert_eq!(reply(&frame_of(&cas), Response::Exists, 0), unhex("8102000000000002000000140000000f0000000000000000446174612065786973747320666f72206b65792e"));
    assert_eq!(
        reply(&frame_of(&cas), Response::NotFound, 0),
        unhex("8102000000000001000000090000000f00000000000000004e6f7420666f756e64")
    );
}

#[test]
fn quiet_successes_are_silent() {
    let setq = packet(0x11, b"q", &set_ext(0, 0), b"1", 13, 0);
    assert!(reply(&frame_of(&setq), Response::Stored, 5).is_empty());
    let incrq = packet(0x15, b"ctr", &arith_ext(1, 10, 0), &[], 19, 0);
    assert!(reply(&frame_of(&incrq), Response::Number { value: 11, cas: 6 }, 0).is_empty());
    let deleteq = packet(0x14, b"foo", &[], &[], 22, 0);
    assert!(reply(&frame_of(&deleteq), Response::Deleted, 0).is_empty());
    assert_eq!(
        reply(&frame_of(&deleteq), Response::NotFound, 0),
        unhex("8114000000000001000000090000001600000000000000004e6f7420666f756e64")
    );
    let flushq = packet(0x18, b"", &[], &[], 24, 0);
    assert!(reply(&frame_of(&flushq), Response::Ok, 0).is_empty());
    let quitq = packet(0x17, b"", &[], &[], 27, 0);
    assert!(reply(&frame_of(&quitq), Response::Ok, 0).is_empty());
}

#[test]
fn incr_decr_replies() {
    let p = packet(0x05, b"foo", &arith_ext(1, 0, 0), &[], 0x10, 0);
    assert_eq!(
        reply(
            &frame_of(&p),
            Response::Error(ErrorReply::SaslOutOfMemory),
            0
        )[6..8],
        [0, 0x82]
    );
    let mut out = Vec::new();
    compose_status(&frame_of(&p), Status::NonNumeric, 0, &mut out);
    assert_eq!(out, unhex("81050000000000060000002e0000001000000000000000004e6f6e2d6e756d65726963207365727665722d736964652076616c756520666f7220696e6372206f722064656372"));
    let p = packet(0x05, b"ctr", &arith_ext(1, 10, 0), &[], 0x11, 0);
    assert_eq!(
        reply(&frame_of(&p), Response::Number { value: 10, cas: 4 }, 0),
        unhex("810500000000000000000008000000110000000000000004000000000000000a")
    );
    let p = packet(0x06, b"nctr", &arith_ext(1, 10, 0xffff_ffff), &[], 0x12, 0);
    assert_eq!(
        reply(&frame_of(&p), Response::NotFound, 0),
        unhex("8106000000000001000000090000001200000000000000004e6f7420666f756e64")
    );
}

#[test]
fn delete_replies_carry_cas_zero() {
    let p = packet(0x04, b"foo", &[], &[], 0x16, 1);
    assert_eq!(reply(&frame_of(&p), Response::Exists, 0), unhex("810400000000000200000014000000160000000000000000446174612065786973747320666f72206b65792e"));
    assert_eq!(
        reply(&frame_of(&p), Response::Deleted, 9),
        unhex("810400000000000000000000000000160000000000000000")
    );
}

#[test]
fn version_flush_noop_quit_replies() {
    let p = packet(0x0b, b"", &[], &[], 0x17, 0);
    assert_eq!(
        reply(&frame_of(&p), Response::Version("1.6.18"), 0),
        unhex("810b00000000000000000006000000170000000000000000312e362e3138")
    );
    let p = packet(0x08, b"", &[], &[], 0x18, 0);
    assert_eq!(
        reply(&frame_of(&p), Response::Ok, 0),
        unhex("810800000000000000000000000000180000000000000000")
    );
    let p = packet(0x0a, b"", &[], &[], 0xaa, 0);
    assert_eq!(
        reply(&frame_of(&p), Response::Ok, 0),
        unhex("810a00000000000000000000000000aa0000000000000000")
    );
    let p = packet(0x07, b"", &[], &[], 0x1b, 0);
    assert_eq!(
        reply(&frame_of(&p), Response::Ok, 0),
        unhex("8107000000000000000000000000001b0000000000000000")
    );
}

#[test]
fn stat_replies_one_packet_per_stat_then_an_empty_one() {
    let p = packet(0x10, b"", &[], &[], 0x19, 0);
    let f = frame_of(&p);
    let mut out = reply(
        &f,
        Response::Stat {
            name: "pid",
            value: "42",
        },
        0,
    );
    assert_eq!(
        out,
        [
            &unhex("811000030000000000000005000000190000000000000000")[..],
            b"pid42"
        ]
        .concat()
    );
    out = reply(&f, Response::End, 0);
    assert_eq!(
        out,
        unhex("811000000000000000000000000000190000000000000000")
    );
    assert_eq!(reply(&f, Response::Reset, 0), out);
    assert_eq!(
        reply(&f, Response::NotFound, 0),
        unhex("8110000000000001000000090000001900000000000000004e6f7420666f756e64")
    );
}

#[test]
fn sasl_replies() {
    // Captured with -S (SASL_CONF_PATH holding "mech_list: plain").
    let p = packet(0x20, b"", &[], &[], 3, 0);
    let mut out = Vec::new();
    compose_status_body(&frame_of(&p), Status::Success, b"PLAIN", 0, &mut out);
    assert_eq!(
        out,
        unhex("812000000000000000000005000000030000000000000000504c41494e")
    );
    let p = packet(0x21, b"PLAIN", &[], b"\0alice\0wrong", 4, 0);
    out.clear();
    compose_status(&frame_of(&p), Status::AuthError, 0, &mut out);
    assert_eq!(
        out,
        unhex("81210000000000200000000d00000004000000000000000041757468206661696c7572652e")
    );
    assert_eq!(&out[24..], b"Auth failure.");
    let p = packet(0x21, b"PLAIN", &[], b"", 4, 0);
    out.clear();
    compose_status(&frame_of(&p), Status::AuthContinue, 0, &mut out);
    assert_eq!(
        out,
        unhex("812100000000002100000000000000040000000000000000")
    );
}

#[test]
fn config_get_hit_carries_flags_and_data_without_key() {
    let p = packet(0x60, b"cluster", &[], &[], 5, 0);
    let out = reply(
        &frame_of(&p),
        Response::Value {
            key: b"cluster",
            flags: 0,
            cas: None,
            data: b"1\nh|1.2.3.4|11211\n",
        },
        0,
    );
    assert_eq!(&out[..8], &[0x81, 0x60, 0, 0, 4, 0, 0, 0]);
    assert_eq!(&out[24..28], &[0, 0, 0, 0]);
    assert_eq!(&out[28..], b"1\nh|1.2.3.4|11211\n");
}

#[test]
fn value_head_lets_a_server_append_a_chunked_value() {
    let p = packet(0x0c, b"foo", &[], &[], 7, 0);
    let mut out = Vec::new();
    compose_value_head(&frame_of(&p), b"foo", 5, 1, 3, &mut out);
    out.extend_from_slice(b"ba");
    out.extend_from_slice(b"r");
    assert_eq!(
        out,
        unhex("810c0003040000000000000a00000007000000000000000100000005666f6f626172")
    );
}

// ---- properties ----

fn key_strategy(min: usize, max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), min..=max)
}

/// The fields a frame is made of; `build` turns them into the frame `parse` would return.
#[derive(Debug, Clone)]
struct Parts {
    opcode: Opcode,
    key: Vec<u8>,
    value: Vec<u8>,
    flags: u32,
    exptime: u32,
    delta: u64,
    initial: u64,
    opaque: u32,
    cas: u64,
    group: usize,
}

const GROUPS: [StatsGroup<'static>; 8] = [
    StatsGroup::General,
    StatsGroup::Settings,
    StatsGroup::Items,
    StatsGroup::Slabs,
    StatsGroup::Sizes,
    StatsGroup::Other(b"conns"),
    StatsGroup::Reset,
    StatsGroup::Other(b"detail dump"),
];

fn build(p: &Parts) -> Frame<'_> {
    use Opcode::*;
    let quiet = p.opcode.is_quiet();
    let key = &p.key[..];
    let request = match p.opcode {
        Get | GetQ | GetK | GetKQ => Request::Get(GetRequest {
            keys: Keys::single(key),
            with_cas: true,
            touch: None,
            key_too_long: false,
        }),
        Gat | GatQ | GatK | GatKQ => Request::Get(GetRequest {
            keys: Keys::single(key),
            with_cas: true,
            touch: Some(i64::from(p.exptime)),
            key_too_long: false,
        }),
        Touch => Request::Touch {
            key,
            exptime: i64::from(p.exptime),
            reply: ReplyMode::Normal,
        },
        Set | SetQ | Add | AddQ | Replace | ReplaceQ => {
            let mode = match p.opcode {
                _ if p.cas != 0 => StoreMode::Cas,
                Set | SetQ => StoreMode::Set,
                Add | AddQ => StoreMode::Add,
                _ => StoreMode::Replace,
            };
            Request::Store(StoreRequest {
                mode,
                key,
                flags: p.flags,
                exptime: i64::from(p.exptime),
                value: &p.value,
                cas: p.cas,
                reply: ReplyMode::from_quiet(quiet),
            })
        }
        Append | AppendQ | Prepend | PrependQ => Request::Store(StoreRequest {
            mode: if matches!(p.opcode, Append | AppendQ) {
                StoreMode::Append
            } else {
                StoreMode::Prepend
            },
            key,
            flags: 0,
            exptime: 0,
            value: &p.value,
            cas: p.cas,
            reply: ReplyMode::from_quiet(quiet),
        }),
        Delete | DeleteQ => Request::Delete {
            key,
            reply: ReplyMode::from_quiet(quiet),
        },
        Increment | IncrementQ | Decrement | DecrementQ => Request::Arith(ArithRequest {
            key,
            delta: p.delta,
            incr: matches!(p.opcode, Increment | IncrementQ),
            initial: (p.exptime != u32::MAX).then_some((p.initial, i64::from(p.exptime))),
            reply: ReplyMode::from_quiet(quiet),
        }),
        Quit | QuitQ => Request::Quit,
        Flush | FlushQ => Request::FlushAll {
            delay: i64::from(p.exptime),
            reply: ReplyMode::from_quiet(quiet),
        },
        Noop => Request::Noop,
        Version => Request::Version,
        Stat => Request::Stats(GROUPS[p.group]),
        SaslListMechs => Request::SaslListMechs,
        SaslAuth | SaslStep => Request::SaslAuth {
            mechanism: key,
            data: &p.value,
            step: p.opcode == SaslStep,
        },
        ConfigGet => Request::Config(ConfigRequest::Get { key }),
        ConfigSet => Request::Config(ConfigRequest::Set {
            key,
            flags: p.flags,
            data: &p.value,
            reply: ReplyMode::Normal,
        }),
        ConfigDelete => Request::Config(ConfigRequest::Delete {
            key,
            reply: ReplyMode::Normal,
        }),
    };
    Frame {
        opcode: p.opcode,
        opaque: p.opaque,
        cas: p.cas,
        request,
    }
}

fn parts() -> impl Strategy<Value = Parts> {
    (
        proptest::sample::select(Opcode::ALL),
        key_strategy(1, 40),
        key_strategy(0, 64),
        any::<u32>(),
        prop_oneof![Just(0u32), Just(u32::MAX), any::<u32>()],
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
        prop_oneof![Just(0u64), any::<u64>()],
        0..GROUPS.len(),
    )
        .prop_map(
            |(opcode, key, value, flags, exptime, delta, initial, opaque, cas, group)| Parts {
                opcode,
                key,
                value,
                flags,
                exptime,
                delta,
                initial,
                opaque,
                cas,
                group,
            },
        )
}

fn encoded(p: &Parts) -> Vec<u8> {
    let mut out = Vec::new();
    assert!(compose_request(&build(p), &mut out), "{p:?}");
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn compose_request_then_parse_round_trips(p in parts()) {
        let bytes = encoded(&p);
        let (frame, n) = parse(&bytes, &limits()).unwrap();
        prop_assert_eq!(frame, build(&p));
        prop_assert_eq!(n, bytes.len());
    }

    #[test]
    fn every_prefix_of_a_pipeline_is_incomplete_then_yields_the_same_frames(ps in proptest::collection::vec(parts(), 1..4)) {
        let mut bytes = Vec::new();
        for p in &ps {
            bytes.extend_from_slice(&encoded(p));
        }
        let mut at = 0;
        for p in &ps {
            let rest = &bytes[at..];
            let len = encoded(p).len();
            for cut in 0..len {
                match parse(&rest[..cut], &limits()) {
                    Err(ParseError::Incomplete { needed }) => {
                        if let Some(needed) = needed {
                            prop_assert!(needed > cut && needed <= len);
                        }
                    }
                    other => prop_assert!(false, "prefix {} of {}: {:?}", cut, len, other),
                }
            }
            let (frame, n) = parse(rest, &limits()).unwrap();
            prop_assert_eq!(frame, build(p));
            prop_assert_eq!(n, len);
            at += n;
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_never_overconsume(bytes in proptest::collection::vec(any::<u8>(), 0..300), magic in any::<bool>()) {
        let mut bytes = bytes;
        if magic && !bytes.is_empty() {
            bytes[0] = REQUEST_MAGIC;
        }
        match parse(&bytes, &limits()) {
            Ok((frame, n)) => {
                prop_assert!(n <= bytes.len() && n >= HEADER_LEN);
                let mut out = Vec::new();
                compose(&frame, &Response::NotFound, 0, &mut out);
            }
            Err(ParseError::Protocol(e)) => {
                prop_assert!(e.consumed <= bytes.len());
                let mut out = Vec::new();
                compose_error_reply(&bytes, &e, &mut out);
            }
            Err(ParseError::Incomplete { needed }) => {
                if let Some(needed) = needed {
                    prop_assert!(needed > bytes.len());
                }
            }
        }
    }
}

#[test]
fn non_numeric_incr_is_status_6_not_out_of_memory() {
    // memcached 1.6.18 answers INCREMENT on a non-numeric value with status 0x06 and this
    // body; the shared error must map to it in the binary codec, never to 0x82.
    let p = packet(0x05, b"foo", &arith_ext(1, 0, 0), &[], 0x10, 0);
    assert_eq!(
        reply(&frame_of(&p), Response::Error(ErrorReply::NonNumeric), 0),
        unhex("81050000000000060000002e0000001000000000000000004e6f6e2d6e756d65726963207365727665722d736964652076616c756520666f7220696e6372206f722064656372")
    );
}
