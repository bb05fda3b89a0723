//! Opt-in differential test of the meta parser: generated `mg`/`ms`/`md`/`ma`/`mn`/`me` lines,
//! the parser's verdict against what a real memcached 1.6.18 answers to the same bytes.
//!
//! Gated like `text_differential.rs`: it runs when `TERN_DIFF_MEMCACHED` is set, to
//! `host:port` of a memcached with default settings, or to `1` (or the path of a memcached
//! binary) to start one itself:
//!
//! ```text
//! TERN_DIFF_MEMCACHED=1 cargo test -p tern-protocol --test meta_differential
//! ```
//!
//! A refused line must draw memcached's exact error line (and the swallowed data block must be
//! swallowed: a `version` sent after it answers next); an accepted one must draw no protocol
//! error; an `mg`/`ma` with a too-long opaque, which memcached refuses only while replying,
//! must draw a `CLIENT_ERROR`.

mod common;

use common::{ask, memcached_addr, Rng};
use tern_protocol::meta::MetaRequest;
use tern_protocol::text::{compose, parse};
use tern_protocol::{Limits, ParseError, Request, Response};

const COMMANDS: &[&str] = &["mg", "ms", "md", "ma", "mn", "me", "mz", "m"];

const FLAGS: &[&str] = &[
    "b",
    "c",
    "f",
    "h",
    "k",
    "l",
    "O1",
    "Oabc",
    "P",
    "L",
    "s",
    "t",
    "u",
    "v",
    "q",
    "I",
    "T0",
    "T30",
    "T-1",
    "Tx",
    "T",
    "N0",
    "N30",
    "Nx",
    "R10",
    "Rx",
    "F5",
    "Fx",
    "F4294967296",
    "C0",
    "C1",
    "Cx",
    "C-1",
    "MS",
    "ME",
    "MA",
    "MP",
    "MR",
    "MI",
    "MD",
    "M+",
    "M-",
    "Mx",
    "M",
    "Mxx",
    "J5",
    "Jx",
    "D3",
    "Dx",
    "D",
    "E5",
    "x",
    "Z",
    "1",
    "vv",
    "kk",
    "Oxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "Oxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
];

const KEYS: &[&str] = &[
    "foo", "n", "Zm9v", "Zm-9v", "Zm=9v", "Zg==Zm9v", "Z===", "b", "k\tx",
];

const LENGTHS: &[&str] = &[
    "0",
    "1",
    "3",
    "5",
    "-1",
    "abc",
    "2147483646",
    "1048400",
    "1048515",
    "2000000",
];

fn generate(rng: &mut Rng) -> Vec<u8> {
    let mut tokens: Vec<String> = vec![rng.pick(COMMANDS).to_string()];
    if rng.chance(95) {
        tokens.push(match rng.below(12) {
            0 => "k".repeat(251),
            1 => "QUFB".repeat(84),
            2 => "QUFB".repeat(62),
            _ => rng.pick(KEYS).to_string(),
        });
    }
    let is_set = tokens[0] == "ms";
    if is_set && rng.chance(95) {
        tokens.push(rng.pick(LENGTHS).to_string());
    }
    let count = if rng.chance(10) {
        15 + rng.below(5)
    } else {
        rng.below(6)
    };
    for _ in 0..count {
        tokens.push(rng.pick(FLAGS).to_string());
    }
    let mut line = tokens.join(" ").into_bytes();
    line.extend_from_slice(b"\r\n");
    if is_set && rng.chance(90) {
        let n = [0, 1, 3, 5][rng.below(4)];
        line.extend(std::iter::repeat(b'v').take(n));
        line.extend_from_slice([&b"\r\n"[..], b"\r\n", b"xy"][rng.below(3)]);
    }
    line
}

enum Expect {
    Line(String),
    /// memcached notices the long opaque while replying: some `CLIENT_ERROR`.
    ClientError,
    Waiting,
    Success,
}

fn expectation(input: &[u8], limits: &Limits) -> (Expect, Vec<u8>) {
    match parse(input, limits) {
        Ok((Request::Meta(MetaRequest::SetTooLarge { swallow, .. }), n)) => {
            let mut bytes = input[..n].to_vec();
            bytes.extend(std::iter::repeat(b'v').take(swallow));
            let line = "SERVER_ERROR object too large for cache".to_string();
            (Expect::Line(line), bytes)
        }
        Ok((Request::Meta(meta), n)) => {
            let long_opaque = match meta {
                MetaRequest::Get { flags, .. } | MetaRequest::Arith { flags, .. } => {
                    flags.opaque_too_long()
                }
                _ => false,
            };
            let expect = if long_opaque {
                Expect::ClientError
            } else {
                Expect::Success
            };
            (expect, input[..n].to_vec())
        }
        Ok((other, _)) => panic!("not a meta request: {other:?}"),
        Err(ParseError::Incomplete { .. }) => (Expect::Waiting, input.to_vec()),
        Err(ParseError::Protocol(e)) => {
            assert!(!e.noreply && !e.close);
            let mut bytes = input[..e.consumed].to_vec();
            bytes.extend(std::iter::repeat(b'v').take(e.swallow));
            let mut line = Vec::new();
            compose(&Response::Error(e.reply), &mut line);
            let line = String::from_utf8_lossy(&line).trim_end().to_string();
            (Expect::Line(line), bytes)
        }
    }
}

fn is_protocol_error(line: &str) -> bool {
    line == "ERROR"
        || (line.starts_with("CLIENT_ERROR") && !line.contains("non-numeric"))
        || line == "SERVER_ERROR object too large for cache"
}

#[test]
fn meta_parser_agrees_with_memcached() {
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
    let mut rng = Rng(0x7465_726e_2d6d_6574);
    let mut mismatches = Vec::new();
    for _ in 0..cases {
        let input = generate(&mut rng);
        let (expect, bytes) = expectation(&input, &limits);
        let sentinel = !matches!(expect, Expect::Waiting);
        let got = ask(&addr, &bytes, sentinel);
        let agrees = match (&expect, got.as_deref()) {
            (Expect::Line(line), Some(got)) => line == got,
            (Expect::Line(_), None) => false,
            (Expect::ClientError, got) => got.is_some_and(|l| l.starts_with("CLIENT_ERROR")),
            (Expect::Waiting, got) => got.is_none(),
            (Expect::Success, got) => got.is_some_and(|l| l != "<closed>" && !is_protocol_error(l)),
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
