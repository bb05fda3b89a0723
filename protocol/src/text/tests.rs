//! Byte-exact tests of the text codec.
//!
//! Every expectation here was checked against Debian's memcached 1.6.18 (`memcached -p 22001
//! -U 0`, plus `-I 2m`, `-C` and `-A` instances) by sending the same bytes over TCP and reading
//! the reply. Verified that way:
//! - line ends: `\r\n` and bare `\n`; a lone `\r\n`, `\n`, `\r\r\n`, spaces only, a one-byte
//!   command, a tab-only line all answer `ERROR`; `version\r\r\n` is `ERROR` (one `\r` dropped);
//! - tokenizing: runs of leading/inner/trailing spaces, tabs inside tokens (`get\ta`, `set t
//!   0\t0 1` are `ERROR`), a NUL ending the line (`get a\0zzz`, `version\0junk`, `\0version`);
//! - tokens past the 23rd: `get` with 40 keys; `set ... x x x ...` is `ERROR`; the HTTP close
//!   looks at the 23rd token only (`GET x*21 HTTP/1.1 y` closes, `x*20` or `x*22` do not);
//! - `GET / HTTP/1.1` closes without reply; `get / HTTP/1.1` is a two-key get; `sxx HTTP/1.0`
//!   is `ERROR`;
//! - 2048 bytes without `\n` wait, 2049 close, unless `get `/`gets ` after at most 100 spaces;
//!   `gat` does not get that grace; a 3000-byte line that has its `\n` is served;
//! - storage: token counts, `noreply` only as the last token, junk last token ignored, flags
//!   `-1`/`-0`/2^32/2^64-1/2^64, byte counts `-1`/`+1`/`1\r`/2^32+1/2^31/`abc`/`1x`/2^31-3,
//!   whitespace around numbers (`\t5`, `5\t`, `5\tjunk`, `1\x0b`), keys of 250/251 bytes with
//!   and without `noreply`, bad data chunks (`xyz`, `x\n\r`) and what is parsed after them,
//!   `cas` unique forms, the size boundary for `-I 1m`, `-I 2m`, `-C` (see `item_fits`);
//! - `get`/`gets`/`gat`/`gats`/`bget`: zero keys (`gat 10` answers `END`), a 251-byte key
//!   ends the keys looked up and answers only the error, bad exptime, `noreply` is just a key;
//! - `delete` (with `0`, `1`, `00`, `0\t`, `noreply` in each place), `incr`/`decr` (bad and
//!   negative and 2^64 deltas, `-0`, junk last token, long keys), `touch`, `flush_all` (every
//!   argument form), `verbosity` (every form), `version x y`, `quit x`, `shutdown` modes with
//!   `-A`, `stats` groups and extra arguments.
use super::*;
use crate::{
    ArithRequest, ConfigRequest, ErrorReply, GetRequest, Keys, Limits, ParseError, ProtocolError,
    ReplyMode, Request, Response, StatsGroup, StoreMode, StoreRequest,
};

fn limits() -> Limits {
    Limits::default()
}

fn ok(input: &[u8]) -> (Request<'_>, usize) {
    match parse(input, &limits()) {
        Ok(parsed) => parsed,
        Err(e) => panic!("{:?} -> {e:?}", String::from_utf8_lossy(input)),
    }
}

fn refused_with(input: &[u8], limits: &Limits) -> ProtocolError {
    match parse(input, limits) {
        Err(ParseError::Protocol(e)) => e,
        other => panic!("{:?} -> {other:?}", String::from_utf8_lossy(input)),
    }
}

fn refused(input: &[u8]) -> ProtocolError {
    refused_with(input, &limits())
}

/// The error memcached sends for a whole line, with the reply and `noreply` given.
fn line_error(input: &[u8], reply: ErrorReply, noreply: bool) -> ProtocolError {
    let consumed = input.iter().position(|&b| b == b'\n').unwrap() + 1;
    ProtocolError {
        reply,
        consumed,
        swallow: 0,
        noreply,
        close: false,
    }
}

fn assert_line_error(input: &[u8], reply: ErrorReply, noreply: bool) {
    assert_eq!(
        refused(input),
        line_error(input, reply, noreply),
        "{input:?}"
    );
}

fn unknown(input: &[u8]) {
    assert_line_error(input, ErrorReply::UnknownCommand, false);
}

fn incomplete(input: &[u8]) -> Option<usize> {
    match parse(input, &limits()) {
        Err(ParseError::Incomplete { needed }) => needed,
        other => panic!("{:?} -> {other:?}", String::from_utf8_lossy(input)),
    }
}

fn keys(request: &Request<'_>) -> Vec<Vec<u8>> {
    match request {
        Request::Get(get) => get.keys.map(|k| k.to_vec()).collect(),
        other => panic!("not a get: {other:?}"),
    }
}

fn store(input: &[u8]) -> StoreRequest<'_> {
    match ok(input) {
        (Request::Store(store), _) => store,
        other => panic!("not a store: {other:?}"),
    }
}

fn composed(response: Response<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    compose(&response, &mut out);
    out
}

// ---- line ends and tokenizing ----

#[test]
fn set_with_crlf_and_bare_newline_headers() {
    let input = b"set a 0 0 1\r\nx\r\nget a\r\n";
    let (request, consumed) = ok(input);
    assert_eq!(consumed, 16);
    assert_eq!(
        request,
        Request::Store(StoreRequest {
            mode: StoreMode::Set,
            key: b"a",
            flags: 0,
            exptime: 0,
            value: b"x",
            cas: 0,
            reply: ReplyMode::Normal,
        })
    );
    assert_eq!(keys(&ok(&input[16..]).0), vec![b"a".to_vec()]);
    let (request, consumed) = ok(b"set a 0 0 1\nx\r\n");
    assert_eq!(consumed, 15);
    assert!(matches!(request, Request::Store(s) if s.value == b"x"));
    assert_eq!(ok(b"get a\n").1, 6);
}

#[test]
fn empty_and_one_byte_lines_are_unknown_commands() {
    for line in [
        &b"\r\n"[..],
        b"\n",
        b"  \r\n",
        b"x\r\n",
        b"\t\r\n",
        b"\r\r\n",
        b"\rversion\r\n",
        b"version\r\r\n",
        b"\0version\r\n",
    ] {
        unknown(line);
    }
}

#[test]
fn spaces_are_the_only_separator() {
    unknown(b"get\ta\r\n");
    unknown(b"set t 0\t0 1\r\n");
    unknown(b"GET a\r\n");
    assert_eq!(
        keys(&ok(b"get  a   b  \r\n").0),
        vec![b"a".to_vec(), b"b".to_vec()]
    );
    assert_eq!(keys(&ok(b"  get a\r\n").0), vec![b"a".to_vec()]);
    assert_eq!(keys(&ok(b"get a\rb\r\n").0), vec![b"a\rb".to_vec()]);
    assert_eq!(keys(&ok(b"get a\r\r\n").0), vec![b"a\r".to_vec()]);
}

#[test]
fn nul_byte_ends_the_line() {
    let (request, consumed) = ok(b"get a\0zzz\r\n");
    assert_eq!(keys(&request), vec![b"a".to_vec()]);
    assert_eq!(consumed, 11);
    assert_eq!(ok(b"version\0junk\r\n"), (Request::Version, 14));
}

#[test]
fn get_takes_keys_past_max_tokens() {
    let names: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
    let line = format!("get {}\r\n", names.join(" "));
    let got = keys(&ok(line.as_bytes()).0);
    assert_eq!(got.len(), 40);
    assert_eq!(got[39], b"k39");
    let spaced = b"get k1 k2 k3 k4 k5 k6 k7 k8 k9 k10 k11 k12 k13 k14 k15 k16 k17 k18 k19 k20 k21 k22       k39\r\n";
    assert_eq!(keys(&ok(spaced).0).len(), 23);
}

/// What a retrieval with a key over 250 bytes parses to: the keys before it, and the mark that
/// says to answer the error after looking them up.
fn cut_at_long_key(line: &[u8]) -> (Vec<Vec<u8>>, bool) {
    let (r, n) = ok(line);
    assert_eq!(n, line.len());
    match r {
        Request::Get(get) => (get.keys.map(<[u8]>::to_vec).collect(), get.key_too_long),
        other => panic!("{other:?}"),
    }
}

#[test]
fn get_long_key_past_max_tokens_stops_there() {
    let mut line =
        b"get k1 k2 k3 k4 k5 k6 k7 k8 k9 k10 k11 k12 k13 k14 k15 k16 k17 k18 k19 k20 k21 k22 "
            .to_vec();
    line.extend_from_slice(&[b'k'; 251]);
    line.extend_from_slice(b" k23\r\n");
    let (keys, too_long) = cut_at_long_key(&line);
    assert!(too_long);
    assert_eq!(keys.len(), 22);
    assert_eq!(keys[21], b"k22");
}

#[test]
fn set_with_more_than_max_tokens_is_unknown() {
    let mut line = b"set k0 0 0 1 ".to_vec();
    line.extend(b"x ".repeat(30));
    line.extend_from_slice(b"\r\n");
    unknown(&line);
}

#[test]
fn http_request_line_closes() {
    let e = refused(b"GET / HTTP/1.1\r\n");
    assert_eq!(e.reply, ErrorReply::Close);
    assert!(e.close);
    assert_eq!(e.consumed, 16);
    assert_eq!(
        keys(&ok(b"get / HTTP/1.1\r\n").0),
        vec![b"/".to_vec(), b"HTTP/1.1".to_vec()]
    );
    unknown(b"sxx HTTP/1.0\r\n");
}

#[test]
fn http_close_looks_at_the_23rd_token_only() {
    let line = |n: usize| {
        let mut l = b"GET ".to_vec();
        l.extend(b"x ".repeat(n));
        l.extend_from_slice(b"HTTP/1.1 y\r\n");
        l
    };
    assert!(refused(&line(21)).close);
    unknown(&line(20));
    unknown(&line(22));
    let mut l = b"GET ".to_vec();
    l.extend(b"x ".repeat(30));
    l.extend_from_slice(b"HTTP/1.1\r\n");
    unknown(&l);
}

#[test]
fn line_over_2048_bytes_without_newline_closes() {
    assert_eq!(incomplete(&[b'x'; 2048]), None);
    let e = refused(&[b'x'; 2049]);
    assert_eq!(e.reply, ErrorReply::Close);
    assert!(e.close);
    assert_eq!(e.consumed, 2049);
    let mut gat = b"gat ".to_vec();
    gat.extend([b'a'; 3000]);
    assert!(refused(&gat).close);
}

#[test]
fn long_multiget_without_newline_keeps_waiting() {
    for prefix in [&b"get "[..], b"gets "] {
        let mut line = prefix.to_vec();
        line.extend([b'a'; 3000]);
        assert_eq!(incomplete(&line), None);
    }
    let mut line = vec![b' '; 100];
    line.extend_from_slice(b"get ");
    line.extend([b'a'; 3000]);
    assert_eq!(incomplete(&line), None);
    let mut line = vec![b' '; 101];
    line.extend_from_slice(b"get ");
    line.extend([b'a'; 3000]);
    assert!(refused(&line).close);
}

#[test]
fn long_line_with_its_newline_is_served() {
    let mut line = b"set aaaaaaaaaa 0 0 1".to_vec();
    line.extend([b' '; 3000]);
    line.extend_from_slice(b"\r\nx\r\n");
    assert!(matches!(ok(&line).0, Request::Store(s) if s.value == b"x"));
}

// ---- storage ----

#[test]
fn storage_commands_parse_each_mode() {
    for (name, mode) in [
        ("set", StoreMode::Set),
        ("add", StoreMode::Add),
        ("replace", StoreMode::Replace),
        ("append", StoreMode::Append),
        ("prepend", StoreMode::Prepend),
    ] {
        let line = format!("{name} k 5 100 3\r\nabc\r\n");
        let s = store(line.as_bytes());
        assert_eq!(
            (s.mode, s.key, s.flags, s.exptime),
            (mode, &b"k"[..], 5, 100)
        );
        assert_eq!(s.value, b"abc");
    }
    let s = store(b"cas k 0 0 1 18446744073709551615\r\nx\r\n");
    assert_eq!((s.mode, s.cas), (StoreMode::Cas, u64::MAX));
    let s = store(b"cas t 0 0 1 1 noreply\r\nx\r\n");
    assert_eq!((s.cas, s.reply), (1, ReplyMode::Noreply));
}

#[test]
fn storage_token_counts() {
    unknown(b"set a 0 0\r\nx\r\n");
    unknown(b"set a 0 0 1 noreply junk\r\nx\r\n");
    unknown(b"cas t 0 0 1\r\nx\r\n");
    let s = store(b"set a 0 0 1 junk\r\nx\r\n");
    assert_eq!(s.reply, ReplyMode::Normal);
    let s = store(b"set a 0 0 1 noreply\r\nx\r\n");
    assert_eq!(s.reply, ReplyMode::Noreply);
    assert_line_error(
        b"cas t 0 0 1 abc\r\nx\r\n",
        ErrorReply::BadCommandLine,
        false,
    );
    assert_line_error(
        b"cas t 0 0 1 -1\r\nx\r\n",
        ErrorReply::BadCommandLine,
        false,
    );
}

#[test]
fn flags_above_u32_keep_the_low_32_bits() {
    assert_eq!(store(b"set a 4294967296 0 1\r\nz\r\n").flags, 0);
    assert_eq!(store(b"set a 4294967295 0 1\r\nz\r\n").flags, u32::MAX);
    assert_eq!(
        store(b"set a 18446744073709551615 0 1\r\nz\r\n").flags,
        u32::MAX
    );
    assert_eq!(store(b"set t 9223372036854775808 0 1\r\nx\r\n").flags, 0);
    assert_eq!(store(b"set a -0 0 1\r\nz\r\n").flags, 0);
    assert_line_error(b"set a -1 0 1\r\nz\r\n", ErrorReply::BadCommandLine, false);
    assert_line_error(
        b"set a 18446744073709551616 0 1\r\nz\r\n",
        ErrorReply::BadCommandLine,
        false,
    );
}

#[test]
fn byte_count_quirks() {
    assert_eq!(store(b"set a 0 0 4294967297\r\nq\r\n").value, b"q");
    assert_eq!(store(b"set a 0 0 +1\r\nq\r\n").value, b"q");
    assert_eq!(store(b"set a 0 0 1\r\r\nq\r\n").value, b"q");
    assert_eq!(store(b"set t 0 0 0\r\n\r\n").value, b"");
    for line in [
        &b"set a 0 0 -1\r\nq\r\n"[..],
        b"set a 0 0 2147483648\r\nq\r\n",
        b"set a 0 0 abc\r\nq\r\n",
        b"set a 0 0 1x\r\nq\r\n",
    ] {
        assert_line_error(line, ErrorReply::BadCommandLine, false);
    }
}

#[test]
fn whitespace_around_numbers_is_accepted() {
    assert_eq!(store(b"set t \t5 0 1\r\nx\r\n").flags, 5);
    assert_eq!(store(b"set t 5\t 0 1\r\nx\r\n").flags, 5);
    assert_eq!(store(b"set t 5\tjunk 0 1\r\nx\r\n").flags, 5);
    assert_eq!(store(b"set t 5\t-3 0 1\r\nx\r\n").flags, 5);
    assert_eq!(store(b"set t 0 0 1\tjunk\r\nx\r\n").value, b"x");
    assert_eq!(store(b"set t 5 0 1\x0b\r\nx\r\n").value, b"x");
}

#[test]
fn storage_key_length_limit() {
    let key = [b'k'; 250];
    let mut line = b"set ".to_vec();
    line.extend_from_slice(&key);
    line.extend_from_slice(b" 0 0 1\r\nq\r\n");
    assert_eq!(store(&line).key, &key[..]);
    let mut line = b"set k".to_vec();
    line.extend_from_slice(&key);
    line.extend_from_slice(b" 0 0 1\r\nq\r\n");
    // memcached does not swallow the data: `q` is parsed next and answered ERROR.
    let e = refused(&line);
    assert_eq!(e, line_error(&line, ErrorReply::BadCommandLine, false));
    unknown(&line[e.consumed..]);
    let mut line = b"set k".to_vec();
    line.extend_from_slice(&key);
    line.extend_from_slice(b" 0 0 1 noreply\r\nq\r\n");
    assert_line_error(&line, ErrorReply::BadCommandLine, true);
}

#[test]
fn bad_data_chunk_consumes_exactly_the_declared_bytes() {
    let input = b"set a 0 0 1\r\nxyz\r\nget a\r\n";
    let e = refused(input);
    assert_eq!(
        e,
        ProtocolError {
            reply: ErrorReply::BadDataChunk,
            consumed: 16,
            swallow: 0,
            noreply: false,
            close: false,
        }
    );
    // What follows the three bytes `xyz` is `\r\n`: memcached answers ERROR, then serves get.
    unknown(&input[16..]);
    assert_eq!(ok(&input[18..]).1, 7);

    let input = b"set a 0 0 1\r\nx\n\r\nget a\r\n";
    assert_eq!(refused(input).consumed, 16);
    unknown(&input[16..]);
}

#[test]
fn bad_data_chunk_is_silenced_by_noreply() {
    let e = refused(b"set t 0 0 1 noreply\r\nxyz\r\n");
    assert_eq!(
        (e.reply, e.consumed, e.noreply),
        (ErrorReply::BadDataChunk, 24, true)
    );
}

#[test]
fn storage_data_not_yet_arrived_is_incomplete_with_total() {
    let full = b"set a 0 0 5\r\nhello\r\n";
    for cut in 13..full.len() {
        assert_eq!(incomplete(&full[..cut]), Some(full.len()), "cut {cut}");
    }
    for cut in 0..13 {
        assert_eq!(incomplete(&full[..cut]), None, "cut {cut}");
    }
}

#[test]
fn set_too_large_swallows_data() {
    let (request, consumed) = ok(b"set big 0 0 2000000\r\naaaa");
    assert_eq!(consumed, 21);
    assert_eq!(
        request,
        Request::TooLarge {
            mode: StoreMode::Set,
            key: b"big",
            swallow: 2_000_002,
            reply: ReplyMode::Normal,
        }
    );
    let (request, _) = ok(b"set a 0 0 2147483645 noreply\r\n");
    assert_eq!(
        request,
        Request::TooLarge {
            mode: StoreMode::Set,
            key: b"a",
            swallow: 2_147_483_647,
            reply: ReplyMode::Noreply,
        }
    );
    let (request, _) = ok(b"append old 0 0 2000000\r\n");
    assert!(matches!(
        request,
        Request::TooLarge {
            mode: StoreMode::Append,
            ..
        }
    ));
}

/// The largest value memcached 1.6.18 accepted, found by bisection on the real server.
#[test]
fn item_size_boundary_matches_memcached() {
    let one_m = Limits::default();
    let two_m = Limits {
        item_size_max: 2 * 1024 * 1024,
        cas_enabled: true,
    };
    let no_cas = Limits {
        item_size_max: 1024 * 1024,
        cas_enabled: false,
    };
    let cases = [
        (one_m, 1, 0, 1_048_516),
        (one_m, 1, 1, 1_048_512),
        (one_m, 250, 0, 1_048_267),
        (one_m, 250, 7, 1_048_263),
        (two_m, 1, 0, 2_097_092),
        (two_m, 1, 1, 2_097_088),
        (two_m, 250, 0, 2_096_843),
        (two_m, 250, 7, 2_096_839),
        (no_cas, 1, 0, 1_048_524),
        (no_cas, 1, 1, 1_048_520),
        (no_cas, 250, 0, 1_048_275),
        (no_cas, 250, 7, 1_048_271),
    ];
    for (limits, key_len, flags, largest) in cases {
        assert!(item_fits(&limits, key_len, flags, largest));
        assert!(!item_fits(&limits, key_len, flags, largest + 1));
        let key = vec![b'k'; key_len];
        let header = |n: usize| {
            let mut h = b"set ".to_vec();
            h.extend_from_slice(&key);
            h.extend_from_slice(format!(" {flags} 0 {n}\r\n").as_bytes());
            h
        };
        let fits = header(largest);
        assert_eq!(
            parse(&fits, &limits),
            Err(ParseError::Incomplete {
                needed: Some(fits.len() + largest + 2)
            })
        );
        let over = header(largest + 1);
        assert!(matches!(
            parse(&over, &limits),
            Ok((Request::TooLarge { swallow, .. }, n)) if swallow == largest + 3 && n == over.len()
        ));
    }
}

// ---- retrieval ----

#[test]
fn get_forms() {
    unknown(b"get\r\n");
    unknown(b"get \r\n");
    unknown(b"gets\r\n");
    unknown(b"gat\r\n");
    unknown(b"gx a\r\n");
    let (r, _) = ok(b"gets a\r\n");
    assert!(matches!(
        r,
        Request::Get(GetRequest {
            with_cas: true,
            touch: None,
            key_too_long: false,
            ..
        })
    ));
    let (r, _) = ok(b"bget a\r\n");
    assert!(matches!(
        r,
        Request::Get(GetRequest {
            with_cas: false,
            touch: None,
            key_too_long: false,
            ..
        })
    ));
    assert_eq!(
        keys(&ok(b"get a noreply\r\n").0),
        vec![b"a".to_vec(), b"noreply".to_vec()]
    );
}

#[test]
fn gat_forms() {
    let (r, _) = ok(b"gat 10 a\r\n");
    assert!(matches!(
        r,
        Request::Get(GetRequest {
            with_cas: false,
            touch: Some(10),
            key_too_long: false,
            ..
        })
    ));
    let (r, _) = ok(b"gats -1 a b\r\n");
    assert!(matches!(
        r,
        Request::Get(GetRequest {
            with_cas: true,
            touch: Some(-1),
            key_too_long: false,
            ..
        })
    ));
    assert_eq!(keys(&r), vec![b"a".to_vec(), b"b".to_vec()]);
    // memcached answers a bare END: a gat of no keys.
    let (r, _) = ok(b"gat 10\r\n");
    assert!(keys(&r).is_empty());
    let (r, _) = ok(b"gat 4294967296 a\r\n");
    assert!(matches!(r, Request::Get(GetRequest { touch: Some(0), .. })));
    assert_line_error(b"gat abc a\r\n", ErrorReply::InvalidExptime, false);
}

#[test]
fn get_stops_at_a_long_key_and_keeps_the_keys_before_it() {
    // memcached looks up (for gat, touches) the keys before a 251-byte key, then answers
    // only the error; the keys after it are never looked at.
    let mut line = b"get a  b ".to_vec();
    line.extend([b'k'; 251]);
    line.extend_from_slice(b" c\r\n");
    assert_eq!(
        cut_at_long_key(&line),
        (vec![b"a".to_vec(), b"b".to_vec()], true)
    );
    let mut line = b"gat 10 ".to_vec();
    line.extend([b'k'; 251]);
    line.extend_from_slice(b"\r\n");
    assert_eq!(cut_at_long_key(&line), (vec![], true));
    let mut line = b"get ".to_vec();
    line.extend([b'k'; 250]);
    line.extend_from_slice(b" b\r\n");
    let (keys, too_long) = cut_at_long_key(&line);
    assert!(!too_long);
    assert_eq!((keys[0].len(), &keys[1][..]), (250, &b"b"[..]));
}

// ---- other commands ----

#[test]
fn delete_forms() {
    let del = |key: &'static [u8], noreply| Request::Delete {
        key,
        reply: ReplyMode::from_noreply(noreply),
    };
    assert_eq!(ok(b"delete a\r\n").0, del(b"a", false));
    assert_eq!(ok(b"delete a 0\r\n").0, del(b"a", false));
    assert_eq!(ok(b"delete a noreply\r\n").0, del(b"a", true));
    assert_eq!(ok(b"delete a 0 noreply\r\n").0, del(b"a", true));
    let usage = ErrorReply::DeleteUsage;
    assert_line_error(b"delete a 1\r\n", usage, false);
    assert_line_error(b"delete a 00\r\n", usage, false);
    assert_line_error(b"delete t 0\t\r\n", usage, false);
    assert_line_error(b"delete a noreply 0\r\n", usage, false);
    assert_line_error(b"delete a 1 noreply\r\n", usage, true);
    unknown(b"delete\r\n");
    unknown(b"delete a 0 noreply x\r\n");
    let mut long = b"delete ".to_vec();
    long.extend([b'k'; 251]);
    let mut with_noreply = long.clone();
    long.extend_from_slice(b"\r\n");
    with_noreply.extend_from_slice(b" noreply\r\n");
    assert_line_error(&long, ErrorReply::BadCommandLine, false);
    assert_line_error(&with_noreply, ErrorReply::BadCommandLine, true);
}

#[test]
fn arith_forms() {
    let arith = |incr, delta, noreply| {
        Request::Arith(ArithRequest {
            key: b"n",
            delta,
            incr,
            initial: None,
            reply: ReplyMode::from_noreply(noreply),
        })
    };
    assert_eq!(ok(b"incr n 5\r\n").0, arith(true, 5, false));
    assert_eq!(ok(b"decr n 100 noreply\r\n").0, arith(false, 100, true));
    assert_eq!(ok(b"incr n 1 junk\r\n").0, arith(true, 1, false));
    assert_eq!(ok(b"incr n -0\r\n").0, arith(true, 0, false));
    assert_eq!(ok(b"incr n 5\tjunk\r\n").0, arith(true, 5, false));
    assert_eq!(
        ok(b"incr n 18446744073709551615\r\n").0,
        arith(true, u64::MAX, false)
    );
    unknown(b"incr a\r\n");
    unknown(b"decr a 1 noreply x\r\n");
    assert_line_error(b"incr n abc\r\n", ErrorReply::InvalidDelta, false);
    assert_line_error(b"incr n -1\r\n", ErrorReply::InvalidDelta, false);
    assert_line_error(b"incr n abc noreply\r\n", ErrorReply::InvalidDelta, true);
    assert_line_error(
        b"incr n 18446744073709551616\r\n",
        ErrorReply::InvalidDelta,
        false,
    );
    let mut long = b"incr ".to_vec();
    long.extend([b'k'; 251]);
    let mut with_noreply = long.clone();
    long.extend_from_slice(b" 1\r\n");
    with_noreply.extend_from_slice(b" 1 noreply\r\n");
    assert_line_error(&long, ErrorReply::BadCommandLine, false);
    assert_line_error(&with_noreply, ErrorReply::BadCommandLine, true);
}

#[test]
fn touch_forms() {
    let touch = |exptime, noreply| Request::Touch {
        key: b"n",
        exptime,
        reply: ReplyMode::from_noreply(noreply),
    };
    assert_eq!(ok(b"touch n 10\r\n").0, touch(10, false));
    assert_eq!(ok(b"touch n 2592001 noreply\r\n").0, touch(2_592_001, true));
    unknown(b"touch n\r\n");
    assert_line_error(b"touch n abc\r\n", ErrorReply::InvalidExptime, false);
    assert_line_error(b"touch n abc noreply\r\n", ErrorReply::InvalidExptime, true);
    let mut long = b"touch ".to_vec();
    long.extend([b'k'; 251]);
    long.extend_from_slice(b" 10\r\n");
    assert_line_error(&long, ErrorReply::BadCommandLine, false);
}

#[test]
fn flush_all_forms() {
    let flush = |delay, noreply| Request::FlushAll {
        delay,
        reply: ReplyMode::from_noreply(noreply),
    };
    assert_eq!(ok(b"flush_all\r\n").0, flush(0, false));
    assert_eq!(ok(b"flush_all 0\r\n").0, flush(0, false));
    assert_eq!(ok(b"flush_all noreply\r\n").0, flush(0, true));
    assert_eq!(ok(b"flush_all 10 noreply\r\n").0, flush(10, true));
    assert_eq!(ok(b"flush_all 10 20\r\n").0, flush(10, false));
    assert_eq!(ok(b"flush_all -1\r\n").0, flush(-1, false));
    assert_line_error(b"flush_all abc\r\n", ErrorReply::InvalidExptime, false);
    assert_line_error(
        b"flush_all abc noreply\r\n",
        ErrorReply::InvalidExptime,
        true,
    );
    assert_line_error(
        b"flush_all noreply 10\r\n",
        ErrorReply::InvalidExptime,
        false,
    );
    unknown(b"flush_all 1 2 3\r\n");
}

#[test]
fn verbosity_forms() {
    let v = |level, noreply| Request::Verbosity {
        level,
        reply: ReplyMode::from_noreply(noreply),
    };
    assert_eq!(ok(b"verbosity 1\r\n").0, v(1, false));
    assert_eq!(ok(b"verbosity 1 noreply\r\n").0, v(1, true));
    assert_eq!(ok(b"verbosity 1 2\r\n").0, v(1, false));
    unknown(b"verbosity\r\n");
    unknown(b"verbosity 1 2 3\r\n");
    assert_line_error(b"verbosity noreply\r\n", ErrorReply::BadCommandLine, true);
    assert_line_error(b"verbosity abc\r\n", ErrorReply::BadCommandLine, false);
}

#[test]
fn version_quit_shutdown() {
    assert_eq!(ok(b"version\r\n").0, Request::Version);
    assert_eq!(ok(b"version x y\r\n").0, Request::Version);
    assert_eq!(ok(b"quit\r\nversion\r\n"), (Request::Quit, 6));
    assert_eq!(ok(b"quit x\r\n").0, Request::Quit);
    assert_eq!(ok(b"shutdown\r\n").0, Request::Shutdown { graceful: false });
    assert_eq!(
        ok(b"shutdown graceful\r\n").0,
        Request::Shutdown { graceful: true }
    );
    let mode = ErrorReply::InvalidShutdownMode;
    assert_line_error(b"shutdown foo\r\n", mode, false);
    assert_line_error(b"shutdown graceful x\r\n", mode, false);
}

#[test]
fn stats_groups() {
    let stats = |input: &'static [u8]| match ok(input).0 {
        Request::Stats(group) => group,
        other => panic!("{other:?}"),
    };
    assert_eq!(stats(b"stats\r\n"), StatsGroup::General);
    assert_eq!(stats(b"stats settings\r\n"), StatsGroup::Settings);
    assert_eq!(stats(b"stats items\r\n"), StatsGroup::Items);
    assert_eq!(stats(b"stats slabs\r\n"), StatsGroup::Slabs);
    assert_eq!(stats(b"stats sizes\r\n"), StatsGroup::Sizes);
    assert_eq!(stats(b"stats conns\r\n"), StatsGroup::Conns);
    assert_eq!(stats(b"stats reset\r\n"), StatsGroup::Reset);
    assert_eq!(stats(b"stats reset foo\r\n"), StatsGroup::Reset);
    assert_eq!(stats(b"stats foo\r\n"), StatsGroup::Other(b"foo"));
    // Only the exact word `detail` is `stats detail`.
    assert_eq!(
        stats(b"stats  detailfoo   on  \r\n"),
        StatsGroup::Other(b"detailfoo   on")
    );
    assert_eq!(
        ok(b"stats  detail   on  \r\n").0,
        Request::StatsDetail(crate::StatsDetail::On)
    );
    assert_eq!(
        stats(b"stats extstore x\r\n"),
        StatsGroup::Other(b"extstore x")
    );
}

#[test]
fn commands_tern_does_not_serve_are_unknown() {
    for line in [&b"mz a\r\n"[..], b"extstore HTTP/1.1\r\n"] {
        unknown(line);
    }
}

#[test]
fn config_forms() {
    let (r, n) = ok(b"config get cluster\r\n");
    assert_eq!(
        (r, n),
        (Request::Config(ConfigRequest::Get { key: b"cluster" }), 20)
    );
    assert_eq!(ok(b"config get cluster \n").0, r);
    let input = b"config set cluster 0 8\r\n1\nh|i|1\n\r\n";
    let (r, n) = ok(input);
    assert_eq!(n, input.len());
    assert_eq!(
        r,
        Request::Config(ConfigRequest::Set {
            key: b"cluster",
            flags: 0,
            data: b"1\nh|i|1\n",
            reply: ReplyMode::Normal,
        })
    );
    assert_eq!(incomplete(&input[..30]), Some(input.len()));
    let (r, _) = ok(b"config delete cluster noreply\r\n");
    assert_eq!(
        r,
        Request::Config(ConfigRequest::Delete {
            key: b"cluster",
            reply: ReplyMode::Noreply
        })
    );
    unknown(b"config\r\n");
    unknown(b"config get\r\n");
    unknown(b"config frob cluster\r\n");
    assert_eq!(
        refused(b"config set cluster 0 1\r\nxyz\r\n").reply,
        ErrorReply::BadDataChunk
    );
    let e = refused(b"config set cluster 0 2000000\r\n");
    assert_eq!(
        (e.reply, e.consumed, e.swallow),
        (ErrorReply::TooLarge, 30, 2_000_002)
    );
}

#[test]
fn keys_of_a_get_borrow_the_trimmed_run() {
    match ok(b"get  a  b  \r\n").0 {
        Request::Get(get) => assert_eq!(get.keys, Keys::spaced(b"a  b")),
        other => panic!("{other:?}"),
    }
}

// ---- composer ----

#[test]
fn compose_every_response() {
    let value = Response::Value {
        key: b"a",
        flags: 4_294_967_295,
        cas: None,
        data: b"x",
    };
    assert_eq!(composed(value), b"VALUE a 4294967295 1\r\nx\r\n");
    let value = Response::Value {
        key: b"a",
        flags: 0,
        cas: Some(59),
        data: b"",
    };
    assert_eq!(composed(value), b"VALUE a 0 0 59\r\n\r\n");
    let fixed: [(Response<'_>, &[u8]); 14] = [
        (Response::End, b"END\r\n"),
        (Response::Stored, b"STORED\r\n"),
        (Response::NotStored, b"NOT_STORED\r\n"),
        (Response::Exists, b"EXISTS\r\n"),
        (Response::NotFound, b"NOT_FOUND\r\n"),
        (Response::Deleted, b"DELETED\r\n"),
        (Response::Touched, b"TOUCHED\r\n"),
        (Response::Ok, b"OK\r\n"),
        (
            Response::Number {
                value: u64::MAX,
                cas: 3,
            },
            b"18446744073709551615\r\n",
        ),
        (Response::Version("1.6.18"), b"VERSION 1.6.18\r\n"),
        (
            Response::Stat {
                name: "pid",
                value: "42",
            },
            b"STAT pid 42\r\n",
        ),
        (Response::Reset, b"RESET\r\n"),
        (
            Response::OutOfMemory,
            b"SERVER_ERROR out of memory storing object\r\n",
        ),
        (Response::Error(ErrorReply::Close), b""),
    ];
    for (response, bytes) in fixed {
        assert_eq!(composed(response), bytes, "{response:?}");
    }
}

#[test]
fn compose_every_error() {
    let errors: [(ErrorReply, &[u8]); 8] = [
        (ErrorReply::UnknownCommand, b"ERROR\r\n"),
        (
            ErrorReply::BadCommandLine,
            b"CLIENT_ERROR bad command line format\r\n",
        ),
        (ErrorReply::BadDataChunk, b"CLIENT_ERROR bad data chunk\r\n"),
        (
            ErrorReply::TooLarge,
            b"SERVER_ERROR object too large for cache\r\n",
        ),
        (
            ErrorReply::InvalidExptime,
            b"CLIENT_ERROR invalid exptime argument\r\n",
        ),
        (
            ErrorReply::InvalidDelta,
            b"CLIENT_ERROR invalid numeric delta argument\r\n",
        ),
        (
            ErrorReply::DeleteUsage,
            b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n",
        ),
        (
            ErrorReply::ShutdownDisabled,
            b"ERROR: shutdown not enabled\r\n",
        ),
    ];
    for (error, bytes) in errors {
        assert_eq!(composed(Response::Error(error)), bytes, "{error:?}");
    }
}

#[test]
fn compose_value_header_then_data() {
    let mut out = Vec::new();
    compose_value_header(b"key", 7, 3, None, &mut out);
    assert_eq!(out, b"VALUE key 7 3\r\n");
    out.clear();
    compose_value_header(b"key", 0, 1_048_516, Some(u64::MAX), &mut out);
    assert_eq!(out, b"VALUE key 0 1048516 18446744073709551615\r\n");
}

#[test]
fn compose_requests() {
    let cases: [(Request<'_>, &[u8]); 6] = [
        (
            Request::Store(StoreRequest {
                mode: StoreMode::Cas,
                key: b"k",
                flags: 1,
                exptime: -1,
                value: b"v",
                cas: 9,
                reply: ReplyMode::Noreply,
            }),
            b"cas k 1 -1 1 9 noreply\r\nv\r\n",
        ),
        (
            Request::Get(GetRequest {
                keys: Keys::spaced(b"a b"),
                with_cas: true,
                touch: Some(5),
                key_too_long: false,
            }),
            b"gats 5 a b\r\n",
        ),
        (
            Request::FlushAll {
                delay: 0,
                reply: ReplyMode::Noreply,
            },
            b"flush_all noreply\r\n",
        ),
        (
            Request::StatsCachedump(Ok((1, 1))),
            b"stats cachedump 1 1\r\n",
        ),
        (
            Request::TooLarge {
                mode: StoreMode::Set,
                key: b"k",
                swallow: 12,
                reply: ReplyMode::Normal,
            },
            b"set k 0 0 10\r\n",
        ),
        (Request::SaslListMechs, b""),
    ];
    for (request, bytes) in cases {
        let mut out = Vec::new();
        compose_request(&request, &mut out);
        assert_eq!(out, bytes, "{request:?}");
    }
}

#[test]
fn stats_detail_subcommands_parse_by_their_first_word() {
    use crate::StatsDetail;
    assert_eq!(
        ok(b"stats detail on\r\n").0,
        Request::StatsDetail(StatsDetail::On)
    );
    assert_eq!(
        ok(b"stats detail off\r\n").0,
        Request::StatsDetail(StatsDetail::Off)
    );
    // memcached looks at the word after `detail` only.
    assert_eq!(
        ok(b"stats detail dump extra\r\n").0,
        Request::StatsDetail(StatsDetail::Dump)
    );
    for bad in [
        &b"stats detail\r\n"[..],
        b"stats detail bogus\r\n",
        b"stats detail ON\r\n",
    ] {
        assert_line_error(bad, ErrorReply::StatsDetailUsage, false);
    }
    assert_eq!(
        composed(Response::Error(ErrorReply::StatsDetailUsage)),
        b"CLIENT_ERROR usage: stats detail on|off|dump\r\n"
    );
}

#[test]
fn watch_names_event_classes_and_defaults_to_fetchers() {
    use crate::WatchEvents;
    let events = |input: &[u8]| match ok(input).0 {
        Request::Watch { events, reply } => (events.map(|e| e.0), reply),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        events(b"watch\r\n"),
        (Some(WatchEvents::FETCHERS), ReplyMode::Normal)
    );
    assert_eq!(
        events(b"watch mutations evictions connevents\r\n"),
        (
            Some(WatchEvents::MUTATIONS | WatchEvents::EVICTIONS | WatchEvents::CONNEVENTS),
            ReplyMode::Normal
        )
    );
    // An unknown class (and `noreply`, which is none) makes the request invalid; the server
    // answers ERROR, unless -W refuses watch first.
    assert_eq!(events(b"watch bogus\r\n"), (None, ReplyMode::Normal));
    assert_eq!(
        events(b"watch fetchers noreply\r\n"),
        (None, ReplyMode::Noreply)
    );
    assert_eq!(
        composed(Response::Error(ErrorReply::WatchDisabled)),
        b"CLIENT_ERROR watch commands not allowed\r\n"
    );
    assert_eq!(
        composed(Response::Error(ErrorReply::WatchPipelined)),
        b"ERROR cannot pipeline other commands before watch\r\n"
    );
}

#[test]
fn operator_requests_compose_back_to_what_parses_to_them() {
    use crate::{StatsDetail, WatchEvents};
    for request in [
        Request::StatsDetail(StatsDetail::Dump),
        Request::Watch {
            events: Some(WatchEvents(WatchEvents::FETCHERS | WatchEvents::MUTATIONS)),
            reply: ReplyMode::Normal,
        },
    ] {
        let mut out = Vec::new();
        compose_request(&request, &mut out);
        assert_eq!(ok(&out).0, request, "{:?}", String::from_utf8_lossy(&out));
    }
}

#[test]
fn stats_cachedump_arguments_as_memcached_checks_them() {
    let dump = |input: &'static [u8]| match ok(input).0 {
        Request::StatsCachedump(args) => args,
        other => panic!("{other:?}"),
    };
    assert_eq!(dump(b"stats cachedump 1 100\r\n"), Ok((1, 100)));
    assert_eq!(dump(b"stats cachedump 63 0 extra\r\n"), Ok((63, 0)));
    assert_eq!(
        dump(b"stats cachedump 1\r\n"),
        Err(ErrorReply::CachedumpUsage)
    );
    assert_eq!(
        dump(b"stats cachedump x 1\r\n"),
        Err(ErrorReply::BadCommandLine)
    );
    assert_eq!(
        dump(b"stats cachedump 1 -1\r\n"),
        Err(ErrorReply::BadCommandLine)
    );
    assert_eq!(
        dump(b"stats cachedump 64 1\r\n"),
        Err(ErrorReply::IllegalSlabId)
    );
    assert_eq!(
        composed(Response::Error(ErrorReply::CachedumpUsage)),
        b"CLIENT_ERROR bad command line\r\n"
    );
    assert_eq!(
        composed(Response::Error(ErrorReply::IllegalSlabId)),
        b"CLIENT_ERROR Illegal slab id\r\n"
    );
}
