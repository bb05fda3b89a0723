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

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use tern_protocol::meta::MetaRequest;
use tern_protocol::text::{compose, parse};
use tern_protocol::{Limits, ParseError, Request, Response};

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

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

/// memcached's first reply line, `None` for silence, `Some("<closed>")` for a close.
///
/// A `version` command follows every request that should be complete, so silence shows as
/// memcached's `VERSION` line instead of a timeout; only an incomplete request or a close
/// waits for the (long, so a loaded machine does not flake) timeout.
fn ask(addr: &str, bytes: &[u8], sentinel: bool) -> Option<String> {
    let mut stream = TcpStream::connect(addr).expect("connect to memcached");
    let wait = if sentinel { 2000 } else { 300 };
    stream
        .set_read_timeout(Some(Duration::from_millis(wait)))
        .unwrap();
    stream.write_all(bytes).unwrap();
    if sentinel {
        stream.write_all(b"version\r\n").unwrap();
    }
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    while !reply.contains(&b'\n') {
        match stream.read(&mut buf) {
            Ok(0) if reply.is_empty() => return Some("<closed>".into()),
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return Some("<closed>".into()),
            Err(e) => panic!("{e}"),
        }
    }
    if reply.is_empty() {
        return None;
    }
    let end = reply
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(reply.len());
    Some(String::from_utf8_lossy(&reply[..end]).into_owned())
}

fn is_protocol_error(line: &str) -> bool {
    line == "ERROR"
        || (line.starts_with("CLIENT_ERROR") && !line.contains("non-numeric"))
        || line == "SERVER_ERROR object too large for cache"
}

/// A memcached this test started; killed when dropped.
struct Spawned(std::process::Child);

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The address of the memcached to compare with, starting one when asked to.
fn memcached_addr(setting: &str) -> (String, Option<Spawned>) {
    if setting.contains(':') {
        return (setting.to_string(), None);
    }
    let bin = if setting == "1" { "memcached" } else { setting };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = std::process::Command::new(bin)
        .args([
            "-p",
            &port.to_string(),
            "-l",
            "127.0.0.1",
            "-U",
            "0",
            "-u",
            "nobody",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start memcached");
    let addr = format!("127.0.0.1:{port}");
    let spawned = Spawned(child);
    for _ in 0..250 {
        if TcpStream::connect(&addr).is_ok() {
            return (addr, Some(spawned));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("memcached did not start on {addr}");
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
