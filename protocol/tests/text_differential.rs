//! Opt-in differential test: the text parser's verdict on generated command lines against what
//! a real memcached 1.6.18 answers to the same bytes.
//!
//! It runs when `TERN_DIFF_MEMCACHED` is set (`tests/run.sh` sets it): to `host:port` of a
//! memcached started with default settings (`-I 1m`, CAS on, no `-A`), or to `1` (or the path
//! of a memcached binary) to have the test start one on a free loopback port itself:
//!
//! ```text
//! TERN_DIFF_MEMCACHED=1 cargo test -p tern-protocol --test text_differential
//! ```
//!
//! Each generated input is one command (a well-formed shape with one odd token, or a token
//! soup), possibly followed by a data block with a right or wrong terminator. The parser says
//! how many bytes the command takes and what memcached should answer; exactly those bytes
//! (plus any swallowed data) go to memcached on a fresh connection, and its first reply line
//! must match: the same error line, silence for `noreply` or an incomplete request, a close,
//! or, for a request the parser accepts, anything but a protocol error.

mod common;

use common::{ask, memcached_addr, Rng};
use tern_protocol::text::{compose, parse};
use tern_protocol::{ErrorReply, Limits, ParseError, ReplyMode, Request, Response};

const SHAPES: &[&[&str]] = &[
    &["get", "K"],
    &["gets", "K", "K"],
    &["gat", "N", "K"],
    &["gats", "N", "K", "K"],
    &["set", "K", "N", "N", "L"],
    &["add", "K", "N", "N", "L", "R"],
    &["cas", "K", "N", "N", "L", "N"],
    &["cas", "K", "N", "N", "L", "N", "R"],
    &["append", "K", "N", "N", "L"],
    &["delete", "K"],
    &["delete", "K", "N"],
    &["delete", "K", "N", "R"],
    &["incr", "K", "N"],
    &["decr", "K", "N", "R"],
    &["touch", "K", "N"],
    &["touch", "K", "N", "R"],
    &["flush_all"],
    &["flush_all", "N"],
    &["flush_all", "N", "R"],
    &["verbosity", "N"],
    &["verbosity", "N", "R"],
    &["stats", "W"],
];

const NUMBERS: &[&str] = &[
    "0",
    "1",
    "5",
    "-1",
    "-0",
    "+1",
    "00",
    "10",
    "4294967296",
    "4294967295",
    "2147483645",
    "2147483648",
    "18446744073709551615",
    "18446744073709551616",
    "abc",
    "1x",
    "\t5",
    "5\t",
    "5\tjunk",
    "-5",
    "9223372036854775808",
    "1048516",
    "1048517",
    "2000000",
];

const WORDS: &[&str] = &[
    "get",
    "gets",
    "gat",
    "set",
    "cas",
    "delete",
    "incr",
    "touch",
    "flush_all",
    "verbosity",
    "version",
    "stats",
    "reset",
    "noreply",
    "0",
    "1",
    "-1",
    "4294967296",
    "HTTP/1.1",
    "GET",
    "\t5",
    "\r",
    "abc",
    "k",
    "10",
    "+1",
    "00",
    "detail",
    "x\ty",
];

const COMMANDS: &[&str] = &[
    "get",
    "gets",
    "gat",
    "set",
    "add",
    "cas",
    "delete",
    "incr",
    "decr",
    "touch",
    "flush_all",
    "verbosity",
    "version",
    "stats",
    "GET",
    "bget",
    "xx",
    "sxx",
];

fn generate(rng: &mut Rng) -> Vec<u8> {
    let long_key = "k".repeat(250);
    let too_long_key = "k".repeat(251);
    let mut tokens: Vec<String> = Vec::new();
    if rng.chance(70) {
        for &slot in SHAPES[rng.below(SHAPES.len())] {
            tokens.push(match slot {
                "K" => match rng.below(6) {
                    0 => long_key.clone(),
                    1 => too_long_key.clone(),
                    n => ["k", "n", "a\rb", "noreply"][n - 2].to_string(),
                },
                "N" => rng.pick(NUMBERS).to_string(),
                "L" => rng
                    .pick(&[
                        "0",
                        "1",
                        "3",
                        "5",
                        "-1",
                        "4294967297",
                        "abc",
                        "1048516",
                        "1048517",
                    ])
                    .to_string(),
                "R" => rng.pick(&["noreply", "noreply", "junk", "0"]).to_string(),
                "W" => rng
                    .pick(&["reset", "items", "foo", "detail", "settings"])
                    .to_string(),
                word => word.to_string(),
            });
        }
    } else {
        tokens.push(rng.pick(COMMANDS).to_string());
        for _ in 0..rng.below(8) {
            tokens.push(rng.pick(WORDS).to_string());
        }
        if rng.chance(10) {
            for _ in 0..18 + rng.below(9) {
                tokens.push("x".to_string());
            }
        }
    }
    let mut line = Vec::new();
    if rng.chance(5) {
        line.push(b' ');
    }
    for (i, token) in tokens.iter().enumerate() {
        if i > 0 {
            line.extend(std::iter::repeat(b' ').take(1 + usize::from(rng.chance(25))));
        }
        line.extend_from_slice(token.as_bytes());
    }
    if rng.chance(10) {
        line.push(b' ');
    }
    line.extend_from_slice([&b"\r\n"[..], b"\r\n", b"\n", b"\r\r\n"][rng.below(4)]);
    if rng.chance(80) {
        let n = [0, 1, 2, 3, 5, 10][rng.below(6)];
        line.extend(std::iter::repeat(b'v').take(n));
        line.extend_from_slice([&b"\r\n"[..], b"\r\n", b"\n\r", b"xy"][rng.below(4)]);
    }
    line
}

/// What memcached should send first, by the parser.
enum Expect {
    Line(String),
    /// A complete request that answers nothing: the `version` sent after it answers first.
    Silence,
    /// An incomplete request: memcached waits for more and says nothing.
    Waiting,
    Close,
    /// Anything but a protocol error or a close.
    Success,
    /// Anything but a close.
    Anything,
}

fn expectation(input: &[u8], limits: &Limits) -> (Expect, Vec<u8>) {
    match parse(input, limits) {
        Ok((Request::TooLarge { reply, swallow, .. }, n)) => {
            let mut bytes = input[..n].to_vec();
            bytes.extend(std::iter::repeat(b'v').take(swallow));
            let expect = if reply == ReplyMode::Noreply {
                Expect::Silence
            } else {
                Expect::Line("SERVER_ERROR object too large for cache".into())
            };
            (expect, bytes)
        }
        Ok((request, n)) => {
            let expect = match request {
                Request::Quit => Expect::Close,
                // The keys before a key over 250 bytes are looked up, then only the error is
                // answered.
                Request::Get(get) if get.key_too_long => {
                    let mut line = Vec::new();
                    compose(&Response::Error(ErrorReply::BadCommandLine), &mut line);
                    Expect::Line(String::from_utf8_lossy(&line).trim_end().to_string())
                }
                Request::Stats(_) => Expect::Anything,
                _ => Expect::Success,
            };
            (expect, input[..n].to_vec())
        }
        Err(ParseError::Incomplete { .. }) => (Expect::Waiting, input.to_vec()),
        Err(ParseError::Protocol(e)) => {
            let mut bytes = input[..e.consumed].to_vec();
            bytes.extend(std::iter::repeat(b'v').take(e.swallow));
            let expect = if e.close {
                Expect::Close
            } else if e.noreply {
                Expect::Silence
            } else {
                let mut line = Vec::new();
                compose(&Response::Error(e.reply), &mut line);
                Expect::Line(String::from_utf8_lossy(&line).trim_end().to_string())
            };
            (expect, bytes)
        }
    }
}

fn is_protocol_error(line: &str) -> bool {
    line == "ERROR"
        || line.starts_with("CLIENT_ERROR bad")
        || line.starts_with("CLIENT_ERROR invalid")
        || line == "SERVER_ERROR object too large for cache"
}

#[test]
fn parser_agrees_with_memcached() {
    let Ok(setting) = std::env::var("TERN_DIFF_MEMCACHED") else {
        eprintln!("skipped: set TERN_DIFF_MEMCACHED=1 (or host:port) to compare with memcached");
        return;
    };
    let (addr, _memcached) = memcached_addr(&setting);
    let cases: usize = std::env::var("TERN_DIFF_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    let limits = Limits::default();
    let mut rng = Rng(0x7465_726e_2d74_6578);
    let mut mismatches = Vec::new();
    for _ in 0..cases {
        let input = generate(&mut rng);
        let (expect, bytes) = expectation(&input, &limits);
        let sentinel = !matches!(expect, Expect::Waiting | Expect::Close);
        let got = ask(&addr, &bytes, sentinel);
        let closed = got.as_deref() == Some("<closed>");
        let agrees = match (&expect, got.as_deref()) {
            (Expect::Line(line), Some(got)) => line == got,
            (Expect::Line(_), None) => false,
            (Expect::Silence, got) => got.is_some_and(|l| l.starts_with("VERSION ")),
            (Expect::Waiting, got) => got.is_none(),
            (Expect::Close, _) => closed,
            (Expect::Success, got) => !closed && !got.is_some_and(is_protocol_error),
            (Expect::Anything, _) => !closed,
        };
        if !agrees {
            let shown = &bytes[..bytes.len().min(200)];
            mismatches.push(format!(
                "{:?} ({} bytes): memcached {:?}",
                String::from_utf8_lossy(shown),
                bytes.len(),
                got
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
