//! Byte-exact tests of the meta parser and composers. Every expected reply line and every
//! refusal below was captured from memcached 1.6.18 (see /work/notes/meta-semantics.md).

use super::*;
use crate::{ErrorReply, Limits, ParseError, ProtocolError, Request, StoreMode};

fn parse(input: &[u8]) -> Result<(MetaRequest<'_>, usize), ParseError> {
    match crate::text::parse(input, &Limits::default())? {
        (Request::Meta(meta), consumed) => Ok((meta, consumed)),
        (other, _) => panic!("not a meta request: {other:?}"),
    }
}

fn ok(input: &[u8]) -> MetaRequest<'_> {
    let (request, consumed) = parse(input).unwrap_or_else(|e| panic!("{input:?}: {e:?}"));
    assert_eq!(consumed, input.len(), "{input:?}");
    request
}

fn flags_of<'a>(request: &MetaRequest<'a>) -> MetaFlags<'a> {
    match *request {
        MetaRequest::Get { flags, .. }
        | MetaRequest::Set { flags, .. }
        | MetaRequest::Delete { flags, .. }
        | MetaRequest::Arith { flags, .. } => flags,
        _ => panic!("no flags: {request:?}"),
    }
}

/// The error line a refused input answers, with what the refusal consumes and swallows.
fn refused(input: &[u8]) -> (String, usize, usize) {
    match parse(input) {
        Err(ParseError::Protocol(ProtocolError {
            reply,
            consumed,
            swallow,
            noreply,
            close,
        })) => {
            assert!(!noreply && !close, "{input:?}");
            let mut out = Vec::new();
            crate::text::compose(&crate::Response::Error(reply), &mut out);
            let line = String::from_utf8(out).unwrap().trim_end().to_string();
            (line, consumed, swallow)
        }
        other => panic!("{input:?} not refused: {other:?}"),
    }
}

fn refusal(input: &[u8]) -> String {
    refused(input).0
}

#[test]
fn mg_parses_every_flag() {
    let request = ok(b"mg foo s v f t c k h l u q O123 P L Mx N30 R20 T10\r\n");
    let MetaRequest::Get { key, flags } = request else {
        panic!("{request:?}")
    };
    assert_eq!(key.raw(), b"foo");
    assert!(!key.is_binary());
    assert!(flags.return_size && flags.return_value && flags.return_flags && flags.return_ttl);
    assert!(flags.return_cas && flags.return_key && flags.return_hit);
    assert!(flags.return_last_access && flags.no_bump && flags.quiet);
    assert_eq!(flags.opaque, Some(&b"123"[..]));
    assert_eq!(flags.vivify, Some(30));
    assert_eq!(flags.recache, Some(20));
    assert_eq!(flags.ttl, Some(10));
    assert_eq!(flags.mode, Some(b'x'));
    assert_eq!(flags.tokens().count(), 17);
    let flags = flags_of(&ok(b"md foo C5 I\r\n"));
    assert_eq!((flags.compare_cas, flags.invalidate), (Some(5), true));
}

#[test]
fn only_the_first_byte_of_a_switch_counts() {
    let flags = flags_of(&ok(b"mg foo vxyz kk\r\n"));
    assert!(flags.return_value && flags.return_key);
}

#[test]
fn value_flags_parse_numbers_as_memcached() {
    let flags = flags_of(&ok(
        b"ms foo 1 T-1 F4294967297 C18446744073709551615\r\nx\r\n",
    ));
    assert_eq!(flags.ttl, Some(-1));
    assert_eq!(flags.client_flags, Some(1));
    assert_eq!(flags.compare_cas, Some(u64::MAX));
    let flags = flags_of(&ok(b"ma n J7 D18446744073709551615\r\n"));
    assert_eq!((flags.initial, flags.delta), (Some(7), Some(u64::MAX)));
}

#[test]
fn no_key_is_error_except_for_me() {
    for line in [
        &b"mg\r\n"[..],
        b"ms\r\n",
        b"md\r\n",
        b"ma\r\n",
        b"mz foo\r\n",
    ] {
        assert_eq!(refusal(line), "ERROR", "{line:?}");
    }
    assert_eq!(refusal(b"me\r\n"), "CLIENT_ERROR bad command line format");
    assert_eq!(ok(b"mn\r\n"), MetaRequest::Noop);
    assert_eq!(ok(b"mn junk\r\n"), MetaRequest::Noop);
}

#[test]
fn key_over_250_bytes_is_refused_by_every_command() {
    let key = "a".repeat(251);
    for command in ["mg", "md", "ma", "me"] {
        let line = format!("{command} {key} v\r\n");
        assert_eq!(
            refusal(line.as_bytes()),
            "CLIENT_ERROR bad command line format"
        );
    }
    // ms: refused before the data length is read, so nothing is swallowed: memcached then
    // reads the data line as a command.
    let line = format!("ms {key} 3\r\nbar\r\n");
    let (reply, consumed, swallow) = refused(line.as_bytes());
    assert_eq!(reply, "CLIENT_ERROR bad command line format");
    assert_eq!((consumed, swallow), (line.len() - 5, 0));
    let key = "a".repeat(250);
    assert!(matches!(
        ok(format!("mg {key}\r\n").as_bytes()),
        MetaRequest::Get { .. }
    ));
}

#[test]
fn preparse_errors_have_memcached_words() {
    for (line, reply) in [
        (&b"mg foo v v\r\n"[..], "CLIENT_ERROR duplicate flag"),
        (b"mg foo E5\r\n", "CLIENT_ERROR invalid flag"),
        (b"mg foo x\r\n", "CLIENT_ERROR invalid flag"),
        (b"mg foo 1\r\n", "CLIENT_ERROR invalid flag"),
        (b"mg foo \xc3\xa9\r\n", "CLIENT_ERROR duplicate flag"),
        (
            b"mg foo Tx\r\n",
            "CLIENT_ERROR bad token in command line format",
        ),
        (
            b"mg foo T\r\n",
            "CLIENT_ERROR bad token in command line format",
        ),
        (
            b"mg foo N1x\r\n",
            "CLIENT_ERROR bad token in command line format",
        ),
        (
            b"mg foo R\r\n",
            "CLIENT_ERROR bad token in command line format",
        ),
        (
            b"mg foo C-1\r\n",
            "CLIENT_ERROR bad token in command line format",
        ),
        (b"mg foo M\r\n", "CLIENT_ERROR incorrect length for M token"),
        (
            b"mg foo Mxx\r\n",
            "CLIENT_ERROR incorrect length for M token",
        ),
        (
            b"mg foo Jx\r\n",
            "CLIENT_ERROR invalid numeric initial value",
        ),
        (b"mg foo Dx\r\n", "CLIENT_ERROR invalid numeric delta value"),
        (b"mg foo Fx\r\n", "CLIENT_ERROR bad command line format"),
        (
            b"mg foo Tx Fx\r\n",
            "CLIENT_ERROR bad token in command line format",
        ),
        (
            b"mg foo Fx Tx\r\n",
            "CLIENT_ERROR bad token in command line format",
        ),
        (
            b"mg foo Tx Dx\r\n",
            "CLIENT_ERROR invalid numeric delta value",
        ),
        (b"mg foo Tx zz\r\n", "CLIENT_ERROR invalid flag"),
        (b"mg foo Tx Tx\r\n", "CLIENT_ERROR duplicate flag"),
        (b"mg foo b\r\n", "CLIENT_ERROR error decoding key"),
        (
            b"mg foo b Tx\r\n",
            "CLIENT_ERROR bad token in command line format",
        ),
        (
            b"mg foo a b c d e f g h i j k l m n o p q r s\r\n",
            "CLIENT_ERROR options flags are too long",
        ),
        (
            b"md foo s v f t c k h l u O1 P L N1 R1 T0 C1 q I\r\n",
            "CLIENT_ERROR options flags too long",
        ),
        (
            b"ma foo s v f t c k h l u O1 P L N1 R1 T0 C1 q I\r\n",
            "CLIENT_ERROR options flags too long",
        ),
        (b"md foo x\r\n", "CLIENT_ERROR invalid or duplicate flag"),
        (b"md foo E5\r\n", "CLIENT_ERROR invalid or duplicate flag"),
        (b"md foo Fx\r\n", "CLIENT_ERROR invalid or duplicate flag"),
        (b"md foo q q\r\n", "CLIENT_ERROR invalid or duplicate flag"),
        (b"ma n M\r\n", "CLIENT_ERROR invalid or duplicate flag"),
        (b"ma n Dx\r\n", "CLIENT_ERROR invalid or duplicate flag"),
        (b"ma n Jx\r\n", "CLIENT_ERROR invalid or duplicate flag"),
        (b"ma n Mx\r\n", "CLIENT_ERROR invalid mode for ma M token"),
    ] {
        assert_eq!(refusal(line), reply, "{}", String::from_utf8_lossy(line));
    }
}

#[test]
fn seventeen_flags_are_the_most_mg_md_ma_take() {
    let flags = "s v f t c k h l u O1 P L Mx N1 R1 T0 C1";
    assert_eq!(flags.split(' ').count(), 17);
    for command in ["mg", "md", "ma"] {
        let line = format!("{command} foo {flags}\r\n");
        assert!(parse(line.as_bytes()).is_ok() || command == "ma", "{line}");
    }
    assert!(matches!(
        ok(format!("mg foo {flags}\r\n").as_bytes()),
        MetaRequest::Get { .. }
    ));
}

#[test]
fn opaque_over_32_bytes() {
    let long = format!("O{}", "x".repeat(32));
    let ok_len = format!("O{}", "x".repeat(31));
    // md and ms refuse before touching the cache.
    assert_eq!(
        refusal(format!("md foo {long}\r\n").as_bytes()),
        "CLIENT_ERROR opaque token too long"
    );
    let line = format!("ms foo 3 {long}\r\n");
    let (reply, consumed, swallow) = refused(line.as_bytes());
    assert_eq!(reply, "CLIENT_ERROR opaque token too long");
    assert_eq!((consumed, swallow), (line.len(), 5));
    assert!(parse(format!("md foo {ok_len}\r\n").as_bytes()).is_ok());
    // mg and ma find out while replying (after the lookup / the arithmetic).
    let request = ok(format!("mg foo {long} k\r\n").leak().as_bytes());
    let flags = flags_of(&request);
    assert!(flags.opaque_too_long());
    let mut out = b"before".to_vec();
    let key = MetaKey::text(b"foo");
    assert_eq!(
        compose_status(Status::En, &key, &flags, &mut out),
        Err(MetaError::OpaqueTooLong)
    );
    assert_eq!(out, b"before");
    let facts = hit_facts();
    assert_eq!(
        compose_get_hit(&flags, &facts, &mut out),
        Err(MetaError::OpaqueTooLong)
    );
    assert_eq!(out, b"before");
}

#[test]
fn ms_parses_value_and_mode() {
    let request = ok(b"ms foo 3 T0 F5 c k O123\r\nbar\r\n");
    let MetaRequest::Set {
        key,
        flags,
        value,
        mode,
    } = request
    else {
        panic!("{request:?}")
    };
    assert_eq!(
        (key.raw(), value, mode),
        (&b"foo"[..], &b"bar"[..], StoreMode::Set)
    );
    assert_eq!((flags.ttl, flags.client_flags), (Some(0), Some(5)));
    for (line, want) in [
        (&b"ms k 1 MS\r\nx\r\n"[..], StoreMode::Set),
        (b"ms k 1 ME\r\nx\r\n", StoreMode::Add),
        (b"ms k 1 MA\r\nx\r\n", StoreMode::Append),
        (b"ms k 1 MP\r\nx\r\n", StoreMode::Prepend),
        (b"ms k 1 MR\r\nx\r\n", StoreMode::Replace),
        (b"ms k 1 C5\r\nx\r\n", StoreMode::Cas),
        (b"ms k 1 MR C5\r\nx\r\n", StoreMode::Cas),
        (b"ms k 1 ME C5\r\nx\r\n", StoreMode::Add),
        (b"ms k 1 MA C5\r\nx\r\n", StoreMode::Append),
    ] {
        let MetaRequest::Set { mode, .. } = ok(line) else {
            panic!()
        };
        assert_eq!(mode, want, "{line:?}");
    }
    let MetaRequest::Set { value, .. } = ok(b"ms k 0\r\n\r\n") else {
        panic!()
    };
    assert_eq!(value, b"");
}

#[test]
fn ms_refusals_and_what_they_swallow() {
    // (input, reply, consumed, swallow)
    for (line, reply, consumed, swallow) in [
        (
            &b"ms foo\r\n"[..],
            "CLIENT_ERROR bad command line format",
            8,
            0,
        ),
        (
            b"ms foo bar\r\n",
            "CLIENT_ERROR bad command line format",
            12,
            0,
        ),
        (
            b"ms foo -1\r\n",
            "CLIENT_ERROR bad command line format",
            11,
            0,
        ),
        (
            b"ms foo 2147483646\r\n",
            "CLIENT_ERROR bad command line format",
            19,
            0,
        ),
        (b"ms foo 3 T0 Zx\r\n", "CLIENT_ERROR invalid flag", 16, 5),
        (b"ms foo 3 XX\r\n", "CLIENT_ERROR invalid flag", 13, 5),
        (
            b"ms foo 3 MX\r\n",
            "CLIENT_ERROR invalid mode for ms M token",
            13,
            5,
        ),
        (
            b"ms foo 3 MX Tx\r\n",
            "CLIENT_ERROR bad token in command line format",
            16,
            5,
        ),
        (
            b"ms foo 3 Fx\r\n",
            "CLIENT_ERROR bad command line format",
            13,
            5,
        ),
        (b"ms foo 3 Fx F1\r\n", "CLIENT_ERROR duplicate flag", 16, 5),
        (b"ms foo 3 x\r\n", "CLIENT_ERROR invalid flag", 12, 5),
        (b"ms big 3 b\r\n", "CLIENT_ERROR error decoding key", 12, 5),
        (
            b"ms foo 3 s v f t c k h l u O1 P L N1 R1 T0 C1 I\r\n",
            "CLIENT_ERROR options flags too long",
            49,
            0,
        ),
    ] {
        assert_eq!(
            refused(line),
            (reply.to_string(), consumed, swallow),
            "{line:?}"
        );
    }
    // The mode error beats a too-long opaque (memcached checks the mode in between).
    let line = format!("ms foo 3 MX O{}\r\n", "x".repeat(32));
    assert_eq!(
        refusal(line.as_bytes()),
        "CLIENT_ERROR invalid mode for ms M token"
    );
}

#[test]
fn ms_bad_data_chunk_consumes_the_block() {
    let (reply, consumed, swallow) = refused(b"ms n 2\r\n10x\r\n");
    assert_eq!(reply, "CLIENT_ERROR bad data chunk");
    // The line and 4 bytes ("10x\r"); the "\n" left is the next (empty) command.
    assert_eq!((consumed, swallow), (12, 0));
    assert_eq!(
        refused(b"ms n 2 q\r\n10x\r\n").0,
        "CLIENT_ERROR bad data chunk"
    );
}

#[test]
fn ms_over_the_item_limit_is_refused_at_the_header() {
    let request = ok(b"ms big 2000000 T0 k O5\r\n");
    assert_eq!(
        request,
        MetaRequest::SetTooLarge {
            key: MetaKey::text(b"big"),
            swallow: 2_000_002
        }
    );
    // The largest value that fits with key "big": 48 + 4 + 1048400 + 2 + 8 = 1 MiB - 114.
    let header = b"ms big 1048514\r\n";
    assert_eq!(
        parse(header),
        Err(ParseError::Incomplete {
            needed: Some(header.len() + 1_048_516)
        })
    );
    assert!(matches!(
        ok(b"ms big 1048515\r\n"),
        MetaRequest::SetTooLarge { .. }
    ));
    // Flags count against the limit (4 bytes when non-zero).
    assert!(matches!(
        ok(b"ms big 1048511 F1\r\n"),
        MetaRequest::SetTooLarge { .. }
    ));
}

#[test]
fn base64_keys() {
    let request = ok(b"mg Zm9v b k v\r\n");
    let MetaRequest::Get { key, flags } = request else {
        panic!()
    };
    assert!(key.is_binary() && flags.base64);
    let mut buf = [0; DECODED_KEY_MAX];
    assert_eq!(key.bytes(&mut buf), b"foo");
    let MetaRequest::Get { key, .. } = ok(b"mg Zm-9v b\r\n") else {
        panic!()
    };
    assert_eq!(key.bytes(&mut buf), b"foo");
    let mut out = Vec::new();
    key.echo(&mut out);
    assert_eq!(out, b"Zm9v b");
    for line in [
        &b"mg Zm=9v b k\r\n"[..],
        b"mg Z=== b\r\n",
        b"mg ==== b\r\n",
        b"md foo b\r\n",
    ] {
        let want = if line.starts_with(b"md") {
            "CLIENT_ERROR invalid or duplicate flag"
        } else {
            "CLIENT_ERROR error decoding key"
        };
        assert_eq!(refusal(line), want, "{line:?}");
    }
    // ms decodes before checking the size: the decoded key is what counts.
    let MetaRequest::Set { key, .. } = ok(b"ms Zm9v 3 b\r\nbaz\r\n") else {
        panic!()
    };
    assert_eq!(key.bytes(&mut buf), b"foo");
}

#[test]
fn base64_key_decoding_to_over_250_bytes_is_refused() {
    // 336 base64 bytes decode to 252 bytes: refused, as memcached checks the raw token first.
    let raw = "QUFB".repeat(84);
    for command in ["mg", "md", "ma"] {
        let line = format!("{command} {raw} b\r\n");
        assert_eq!(
            refusal(line.as_bytes()),
            "CLIENT_ERROR bad command line format"
        );
    }
    assert_eq!(
        refusal(format!("ms {raw} 1 b\r\nx\r\n").as_bytes()),
        "CLIENT_ERROR bad command line format"
    );
    assert_eq!(
        refusal(format!("me {raw} b\r\n").as_bytes()),
        "CLIENT_ERROR bad command line format"
    );
    assert_eq!(MetaKey::base64(raw.as_bytes()), None);
    // The longest base64 token (248 bytes) decodes to 186 bytes and fits the buffer.
    let raw = "QUFB".repeat(62);
    let key = MetaKey::base64(raw.as_bytes()).unwrap();
    let mut buf = [0; DECODED_KEY_MAX];
    assert_eq!(key.bytes(&mut buf), "A".repeat(186).as_bytes());
}

#[test]
fn me_decodes_only_with_b_right_after_the_key() {
    let MetaRequest::Debug { key } = ok(b"me Zm9v b\r\n") else {
        panic!()
    };
    assert!(key.is_binary());
    let MetaRequest::Debug { key } = ok(b"me foo x b\r\n") else {
        panic!()
    };
    assert!(!key.is_binary());
    assert_eq!(
        refusal(b"me foo b\r\n"),
        "CLIENT_ERROR bad command line format"
    );
}

#[test]
fn ma_modes() {
    for (line, incr) in [
        (&b"ma n\r\n"[..], true),
        (b"ma n MI\r\n", true),
        (b"ma n M+\r\n", true),
        (b"ma n MD\r\n", false),
        (b"ma n M-\r\n", false),
    ] {
        let MetaRequest::Arith { incr: got, .. } = ok(line) else {
            panic!()
        };
        assert_eq!(got, incr, "{line:?}");
    }
}

#[test]
fn ms_waits_for_its_data() {
    let input = b"ms foo 3 T0\r\nbar\r\n";
    for end in 0..input.len() {
        match parse(&input[..end]) {
            Err(ParseError::Incomplete { needed }) => {
                if end >= 13 {
                    assert_eq!(needed, Some(input.len()));
                }
            }
            other => panic!("prefix {end}: {other:?}"),
        }
    }
}

fn hit_facts() -> HitFacts<'static> {
    HitFacts {
        key: b"foo",
        key_binary: false,
        value_len: 3,
        cas: 1,
        client_flags: 5,
        ttl: None,
        touch_ttl: Some(20),
        created: false,
        vivify_ttl: Some(30),
        last_access: 0,
        fetched: false,
        token_sent: false,
        stale: false,
        won: false,
    }
}

fn compose_hit(line: &[u8], facts: &HitFacts<'_>) -> Vec<u8> {
    let flags = flags_of(&ok(line));
    let mut out = Vec::new();
    compose_get_hit(&flags, facts, &mut out).unwrap();
    out
}

#[test]
fn mg_hit_echoes_flags_in_request_order() {
    assert_eq!(
        compose_hit(b"mg foo s v f t c k O9 h l\r\n", &hit_facts()),
        b"VA 3 s3 f5 t-1 c1 kfoo O9 h0 l0\r\n"
    );
    let facts = HitFacts {
        fetched: true,
        last_access: 1,
        ..hit_facts()
    };
    assert_eq!(
        compose_hit(b"mg foo h l t\r\n", &facts),
        b"HD h1 l1 t-1\r\n"
    );
    let facts = HitFacts {
        client_flags: 0,
        cas: 2,
        fetched: true,
        last_access: 9,
        ..hit_facts()
    };
    assert_eq!(
        compose_hit(b"mg foo s v f t c k h l u O1 P L Mx N1 R1 T0\r\n", &facts),
        b"VA 3 s3 f0 t-1 c2 kfoo h1 l9 O1\r\n"
    );
    assert_eq!(compose_hit(b"mg foo q\r\n", &hit_facts()), b"HD\r\n");
}

#[test]
fn mg_hit_ttl_follows_t_and_n_in_token_order() {
    assert_eq!(compose_hit(b"mg r2 T20 t\r\n", &hit_facts()), b"HD t20\r\n");
    assert_eq!(compose_hit(b"mg r2 t T20\r\n", &hit_facts()), b"HD t-1\r\n");
    let created = HitFacts {
        created: true,
        value_len: 0,
        cas: 25,
        client_flags: 0,
        won: true,
        ..hit_facts()
    };
    assert_eq!(
        compose_hit(b"mg nov N30 v c t s f\r\n", &created),
        b"VA 0 c25 t30 s0 f0 W\r\n"
    );
    // N only counts when this request created the item.
    assert_eq!(
        compose_hit(b"mg nov N30 t\r\n", &hit_facts()),
        b"HD t-1\r\n"
    );
    let flags = flags_of(&ok(b"mg k N30 T10\r\n"));
    assert_eq!(flags.final_exptime(true), Some(10));
    assert_eq!(flags.final_exptime(false), Some(10));
    let flags = flags_of(&ok(b"mg k T10 N30\r\n"));
    assert_eq!(flags.final_exptime(true), Some(30));
    assert_eq!(flags_of(&ok(b"mg k N30\r\n")).final_exptime(false), None);
}

#[test]
fn mg_win_tokens_come_last_in_z_x_w_order() {
    let facts = HitFacts {
        cas: 22,
        ttl: Some(28),
        stale: true,
        won: true,
        ..hit_facts()
    };
    assert_eq!(
        compose_hit(b"mg s1 v c t\r\n", &facts),
        b"VA 3 c22 t28 X W\r\n"
    );
    let facts = HitFacts {
        cas: 22,
        ttl: Some(27),
        stale: true,
        token_sent: true,
        ..hit_facts()
    };
    assert_eq!(
        compose_hit(b"mg s1 v c t\r\n", &facts),
        b"VA 3 c22 t27 Z X\r\n"
    );
    let facts = HitFacts {
        token_sent: true,
        ..hit_facts()
    };
    assert_eq!(compose_hit(b"mg s1 s\r\n", &facts), b"HD s3 Z\r\n");
}

#[test]
fn key_echo_uses_the_item_binary_bit_on_a_hit() {
    let facts = HitFacts {
        key_binary: true,
        ..hit_facts()
    };
    assert_eq!(compose_hit(b"mg foo v k\r\n", &facts), b"VA 3 kZm9v b\r\n");
}

/// A key without the binary bit that a text key could not hold (the binary protocol stores
/// such keys) is echoed base64 all the same; a tab or a lone CR can stand bare.
#[test]
fn key_echo_is_base64_where_a_bare_key_would_break_the_line() {
    for (key, echo) in [
        (&b"a b"[..], &b"kYSBi b"[..]),
        (b"a\nb", b"kYQpi b"),
        (b"a\0b", b"kYQBi b"),
        (b"a\tb", b"ka\tb"),
        (b"a\rb", b"ka\rb"),
    ] {
        let facts = HitFacts { key, ..hit_facts() };
        let mut want = b"HD ".to_vec();
        want.extend_from_slice(echo);
        want.extend_from_slice(b"\r\n");
        assert_eq!(compose_hit(b"mg x k\r\n", &facts), want, "{key:?}");
    }
}

#[test]
fn status_replies_echo_opaque_and_key() {
    let mut out = Vec::new();
    let request = ok(b"mg bm9uZQ== b k O1 v\r\n");
    let MetaRequest::Get { key, flags } = request else {
        panic!()
    };
    compose_status(Status::En, &key, &flags, &mut out).unwrap();
    assert_eq!(out, b"EN kbm9uZQ== b O1\r\n");
    out.clear();
    let MetaRequest::Get { key, flags } = ok(b"mg Zg==Zm9v b k\r\n") else {
        panic!()
    };
    compose_status(Status::En, &key, &flags, &mut out).unwrap();
    assert_eq!(out, b"EN kZg== b\r\n");
    out.clear();
    let MetaRequest::Delete { key, flags } = ok(b"md foo s v f t c k h l u O1 P L N1 R1 C1\r\n")
    else {
        panic!()
    };
    compose_status(Status::Ex, &key, &flags, &mut out).unwrap();
    assert_eq!(out, b"EX kfoo O1\r\n");
    out.clear();
    let MetaRequest::Delete { key, flags } = ok(b"md Zm9v b k q\r\n") else {
        panic!()
    };
    compose_status(Status::Nf, &key, &flags, &mut out).unwrap();
    assert_eq!(out, b"NF kZm9v b\r\n");
    for (status, line) in [
        (Status::Hd, &b"HD\r\n"[..]),
        (Status::En, b"EN\r\n"),
        (Status::Nf, b"NF\r\n"),
        (Status::Ns, b"NS\r\n"),
        (Status::Ex, b"EX\r\n"),
    ] {
        out.clear();
        compose_status(
            status,
            &MetaKey::text(b"k"),
            &MetaFlags::default(),
            &mut out,
        )
        .unwrap();
        assert_eq!(out, line);
    }
}

#[test]
fn ms_replies() {
    let mut out = Vec::new();
    let MetaRequest::Set { key, flags, .. } = ok(b"ms foo 3 T0 F5 c k O123\r\nbar\r\n") else {
        panic!()
    };
    compose_set(Status::Hd, &key, &flags, 1, &mut out);
    assert_eq!(out, b"HD c1 kfoo O123\r\n");
    out.clear();
    let MetaRequest::Set { key, flags, .. } =
        ok(b"ms foo 3 s v f t c k h l u O1 P L N1 R1 T0 C1\r\nbar\r\n")
    else {
        panic!()
    };
    compose_set(Status::Ex, &key, &flags, 0, &mut out);
    assert_eq!(out, b"EX c0 kfoo O1\r\n");
    out.clear();
    let MetaRequest::Set { key, flags, .. } = ok(b"ms Zm9v 3 b k c\r\nbaz\r\n") else {
        panic!()
    };
    compose_set(Status::Hd, &key, &flags, 16, &mut out);
    assert_eq!(out, b"HD kZm9v b c16\r\n");
}

#[test]
fn ma_replies() {
    let mut out = Vec::new();
    let MetaRequest::Arith { key, flags, incr } = ok(b"ma n MD D100 v t c k O5\r\n") else {
        panic!()
    };
    assert!(!incr);
    assert_eq!(flags.delta, Some(100));
    let facts = ArithFacts {
        value: 0,
        cas: 10,
        ttl: None,
        touch_ttl: None,
        created: false,
        vivify_ttl: None,
    };
    compose_arith(&key, &flags, &facts, &mut out).unwrap();
    assert_eq!(out, b"VA 1 t-1 c10 kn O5\r\n0\r\n");
    out.clear();
    let MetaRequest::Arith { key, flags, .. } = ok(b"ma n\r\n") else {
        panic!()
    };
    let facts = ArithFacts { value: 8, ..facts };
    compose_arith(&key, &flags, &facts, &mut out).unwrap();
    assert_eq!(out, b"HD\r\n");
    out.clear();
    let MetaRequest::Arith { key, flags, .. } = ok(b"ma nx N0 J13 v q\r\n") else {
        panic!()
    };
    let facts = ArithFacts {
        value: 13,
        created: true,
        ..facts
    };
    compose_arith(&key, &flags, &facts, &mut out).unwrap();
    assert_eq!(out, b"VA 2\r\n13\r\n");
    let long = format!("ma n O{}\r\n", "x".repeat(32));
    let MetaRequest::Arith { key, flags, .. } = ok(long.as_bytes()) else {
        panic!()
    };
    out.clear();
    assert_eq!(
        compose_arith(&key, &flags, &facts, &mut out),
        Err(MetaError::OpaqueTooLong)
    );
    assert!(out.is_empty());
}

#[test]
fn me_and_mn_replies() {
    let mut out = Vec::new();
    compose_debug(
        &DebugFacts {
            key: b"foo",
            key_binary: true,
            ttl: None,
            last_access: 0,
            cas: 16,
            fetched: true,
            class: 1,
            size: 65,
        },
        &mut out,
    );
    assert_eq!(
        out,
        b"ME Zm9v exp=-1 la=0 cas=16 fetch=yes cls=1 size=65\r\n"
    );
    out.clear();
    compose_debug(
        &DebugFacts {
            key: b"r2",
            key_binary: false,
            ttl: Some(13),
            last_access: 7,
            cas: 28,
            fetched: false,
            class: 1,
            size: 62,
        },
        &mut out,
    );
    assert_eq!(out, b"ME r2 exp=-13 la=7 cas=28 fetch=no cls=1 size=62\r\n");
    out.clear();
    compose_noop(&mut out);
    assert_eq!(out, b"MN\r\n");
}

#[test]
fn meta_errors_compose_through_the_text_codec() {
    let mut out = Vec::new();
    crate::text::compose(
        &crate::Response::Error(ErrorReply::Meta(MetaError::OpaqueTooLong)),
        &mut out,
    );
    assert_eq!(out, b"CLIENT_ERROR opaque token too long\r\n");
}

#[test]
fn request_key_is_the_raw_token() {
    assert_eq!(Request::Meta(ok(b"mg Zm9v b\r\n")).key(), b"Zm9v");
    assert_eq!(Request::Meta(MetaRequest::Noop).key(), b"");
}

/// The quick path takes the common quiet multi-get line (so the pipeline stays cheap) and
/// leaves every line it does not fully understand to the general parser.
#[test]
fn quick_get_takes_common_lines_and_leaves_the_rest() {
    let (request, consumed) = super::quick_get(b"mg foo k v q Oab\r\nmn\r\n").unwrap();
    assert_eq!(consumed, 18);
    let MetaRequest::Get { key, flags } = request else {
        panic!("{request:?}");
    };
    assert_eq!(key.raw(), b"foo");
    assert_eq!(flags.tokens, b"k v q Oab");
    assert!(flags.return_key && flags.return_value && flags.quiet);
    assert_eq!(flags.opaque, Some(&b"ab"[..]));
    assert_eq!(super::quick_get(b"mg foo\n").unwrap().1, 7);
    for general in [
        &b"mg foo v"[..],    // no line end yet
        b"mg foo v \r\n",    // trailing space
        b"mg  foo v\r\n",    // a run of spaces
        b"mg Zm9v b v\r\n",  // base64 key
        b"mg foo T30 v\r\n", // touch
        b"mg foo v v\r\n",   // duplicate: the general path's error
        b"mg foo\0x v\r\n",  // NUL ends the C string
        b"mg foo P v\r\n",   // a proxy hint
        b"mg foo v\r\r\n",   // a \r kept in the token
    ] {
        assert_eq!(super::quick_get(general), None, "{general:?}");
    }
    let long = [b'k'; 251];
    let mut line = b"mg ".to_vec();
    line.extend_from_slice(&long);
    line.extend_from_slice(b" v\r\n");
    assert_eq!(super::quick_get(&line), None);
}
