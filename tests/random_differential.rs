//! Random command streams sent to tern and to a real memcached 1.6 must get the same replies,
//! byte for byte: classic text commands, meta commands and malformed lines, mixed on one
//! connection, then the counters they move (`stats`); and binary-protocol requests the same
//! way. The hand-written scenarios of `text_protocol.rs` and `meta_protocol.rs` check what
//! someone thought of; this checks what nobody did. Runs when `TERN_DIFF_MEMCACHED` is set (tests/run.sh sets it), like the other
//! differential tests; `TERN_DIFF_CASES` sets the number of streams (default 2,000, about
//! 15 s).
//!
//! Each command is followed by `mn`, whose `MN` marks the end of the command's reply, so the
//! transcripts line up command by command. Two correct servers may number CAS uniques
//! differently: a reply's CAS values are rewritten to the order in which the stream first saw
//! them (`#0`, `#1`, ...), and a command that sends a CAS sends, to each server, that server's
//! own value for the same position. Remaining TTLs (`t`) and seconds since last access (`l`),
//! which can tick between the two servers, are rewritten too. Both servers run with the system
//! clock; exptimes are 0, negative, relative, or absolute and long past, so that no expiry
//! depends on when a command ran.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Child;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{differential, port_in, spawn_tern, Memcached};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// How long a reply may take to reach its `MN` before the transcript records a timeout.
const REPLY_WAIT: Duration = Duration::from_secs(2);

/// A piece of a command: bytes as they are, or something each server gets its own way.
#[derive(Clone)]
enum Piece {
    Lit(Vec<u8>),
    /// One of the stream's few keys (its name carries the stream's prefix).
    Key(u8),
    /// A key of exactly this many bytes (250 is the longest memcached takes).
    LongKey(usize),
    /// Key `n` of the stream in base64, for a meta command's `b` flag.
    Key64(u8),
    /// The n-th distinct CAS this server has sent in the stream (modulo how many), or a CAS
    /// no item has when none was seen yet.
    Cas(u8),
}

impl std::fmt::Debug for Piece {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Piece::Lit(b) if b.len() > 60 => write!(f, "<{} bytes>", b.len()),
            Piece::Lit(b) => write!(f, "{:?}", String::from_utf8_lossy(b)),
            Piece::Key(i) => write!(f, "k{i}"),
            Piece::LongKey(n) => write!(f, "<key of {n}>"),
            Piece::Key64(i) => write!(f, "b64(k{i})"),
            Piece::Cas(i) => write!(f, "<cas {i}>"),
        }
    }
}

type Cmd = Vec<Piece>;

fn lit(s: &str) -> Piece {
    Piece::Lit(s.as_bytes().to_vec())
}

fn key() -> impl Strategy<Value = Piece> {
    prop_oneof![
        20 => (0u8..4).prop_map(Piece::Key),
        1 => Just(Piece::LongKey(250)),
        1 => Just(Piece::LongKey(251)),
    ]
}

fn token(options: &'static [&'static str]) -> impl Strategy<Value = Piece> {
    proptest::sample::select(options).prop_map(lit)
}

fn flags_tok() -> impl Strategy<Value = Piece> {
    prop_oneof![
        8 => token(&["0", "1", "7"]),
        1 => token(&["4294967295", "4294967296", "-1", "x", "65536", "01"]),
    ]
}

/// Exptimes whose outcome cannot depend on the second a command runs in: none, already past
/// (negative, or an absolute time in 1970), or far enough ahead.
fn exptime_tok() -> impl Strategy<Value = Piece> {
    prop_oneof![
        8 => token(&["0", "1000"]),
        2 => token(&["-1", "2592001"]),
        1 => token(&["x", "99999999999999999999", "2592000"]),
    ]
}

/// Values: numbers for incr/decr, short text, and text with CR/LF inside. Never whitespace
/// alone: memcached's incr parses the value with `strtoull`, which skips whitespace and, the
/// data not being NUL-terminated, reads on past the value's end into whatever the chunk held
/// before (its `ma` on a value of `\r\n` in a used server answered `HD`).
fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => any::<u64>().prop_map(|n| n.to_string().into_bytes()),
        3 => (0u64..20).prop_map(|n| n.to_string().into_bytes()),
        4 => proptest::collection::vec(
            prop_oneof![10 => b'a'..=b'z', 1 => Just(b'\r'), 1 => Just(b'\n'), 1 => Just(b' ')],
            0..30
        )
        .prop_map(|mut v| {
            if !v.is_empty() && v.iter().all(u8::is_ascii_whitespace) {
                v.push(b'w');
            }
            // No `m`: a value read as commands (after a refused storage line) must not hold
            // an `mn`, whose `MN` would end the reply early.
            for b in &mut v {
                if *b == b'm' {
                    *b = b'M';
                }
            }
            v
        }),
        1 => Just(b"18446744073709551615".to_vec()),
        1 => Just(b" 12".to_vec()),
        1 => Just(vec![b'v'; 2000]),
    ]
}

/// How a data block's declared length relates to the bytes sent: exact, or one off either
/// way (both then reply `bad data chunk` and read what follows as commands).
fn len_delta() -> impl Strategy<Value = i64> {
    prop_oneof![20 => Just(0i64), 1 => Just(-1i64), 1 => Just(1i64)]
}

fn data_len(value: &[u8], delta: i64) -> Piece {
    let n = value.len() as i64 + delta;
    Piece::Lit(n.to_string().into_bytes())
}

/// The data block as sent: the value and its `\r\n`, and for a declared length one over, a
/// line the server takes its last byte from (so that it does not take the `m` of the `mn`
/// that ends the reply).
fn data_block(value: Vec<u8>, delta: i64) -> [Piece; 2] {
    let end = if delta > 0 { "\r\nX\r\n" } else { "\r\n" };
    [Piece::Lit(value), lit(end)]
}

fn noreply() -> impl Strategy<Value = Option<Piece>> {
    prop_oneof![6 => Just(None), 1 => Just(Some(lit(" noreply")))]
}

fn sp(cmd: &mut Cmd) {
    cmd.push(lit(" "));
}

fn storage() -> impl Strategy<Value = Cmd> {
    (
        token(&["set", "add", "replace", "append", "prepend", "cas"]),
        key(),
        flags_tok(),
        exptime_tok(),
        value(),
        len_delta(),
        prop_oneof![5 => (0u8..8).prop_map(Piece::Cas), 1 => token(&["0", "x", "18446744073709551616"])],
        noreply(),
    )
        .prop_map(|(verb, k, flags, exptime, v, delta, cas, nr)| {
            let is_cas = matches!(&verb, Piece::Lit(b) if b == b"cas");
            let mut c = vec![verb];
            for p in [k, flags, exptime, data_len(&v, delta)] {
                sp(&mut c);
                c.push(p);
            }
            if is_cas {
                sp(&mut c);
                c.push(cas);
            }
            c.extend(nr);
            c.push(lit("\r\n"));
            c.extend(data_block(v, delta));
            c
        })
}

/// A value one byte over the 1 MB item limit: refused, and its data swallowed. Never with a
/// key over 250 bytes: that refusal swallows nothing, the data is then a line too long, and
/// memcached closes the connection, sending the error before it or not depending on whether
/// it had written its replies when the rest arrived (tern always sends it).
fn too_large() -> impl Strategy<Value = Cmd> {
    (0u8..4).prop_map(Piece::Key).prop_map(|k| {
        let n = 1024 * 1024 + 1;
        vec![
            lit("set "),
            k,
            Piece::Lit(format!(" 0 0 {n}\r\n").into_bytes()),
            Piece::Lit(vec![b'x'; n]),
            lit("\r\n"),
        ]
    })
}

fn retrieval() -> impl Strategy<Value = Cmd> {
    (
        token(&["get", "gets", "gat", "gats"]),
        exptime_tok(),
        proptest::collection::vec(key(), 0..4),
    )
        .prop_map(|(verb, exptime, keys)| {
            let gat = matches!(&verb, Piece::Lit(b) if b.starts_with(b"gat"));
            let mut c = vec![verb];
            if gat {
                sp(&mut c);
                c.push(exptime);
            }
            for k in keys {
                sp(&mut c);
                c.push(k);
            }
            c.push(lit("\r\n"));
            c
        })
}

fn delete() -> impl Strategy<Value = Cmd> {
    (
        key(),
        token(&["", " 0", " noreply", " 0 noreply", " 1", " x"]),
    )
        .prop_map(|(k, rest)| vec![lit("delete "), k, rest, lit("\r\n")])
}

fn arith() -> impl Strategy<Value = Cmd> {
    (
        token(&["incr", "decr"]),
        key(),
        token(&[
            "1",
            "0",
            "7",
            "18446744073709551615",
            "18446744073709551616",
            "-1",
            "x",
            "",
        ]),
        noreply(),
    )
        .prop_map(|(verb, k, delta, nr)| {
            let mut c = vec![verb, lit(" "), k, lit(" "), delta];
            c.extend(nr);
            c.push(lit("\r\n"));
            c
        })
}

fn touch() -> impl Strategy<Value = Cmd> {
    (key(), exptime_tok(), noreply()).prop_map(|(k, e, nr)| {
        let mut c = vec![lit("touch "), k, lit(" "), e];
        c.extend(nr);
        c.push(lit("\r\n"));
        c
    })
}

/// A meta command's flags: a few of `pool`, in any order, `{cas}` standing for a CAS.
fn meta_flags(pool: &'static [&'static str]) -> impl Strategy<Value = Vec<Piece>> {
    (
        proptest::sample::subsequence(pool, 0..=4).prop_shuffle(),
        0u8..8,
    )
        .prop_map(|(flags, cas)| {
            let mut out = Vec::new();
            for f in flags {
                out.push(lit(" "));
                if f == "C{cas}" {
                    out.push(lit("C"));
                    out.push(Piece::Cas(cas));
                } else {
                    out.push(lit(f));
                }
            }
            out
        })
}

/// A meta command without a data block: `<verb> <key>` and a few of `flags`.
fn meta_line(verb: &'static str, flags: &'static [&'static str]) -> impl Strategy<Value = Cmd> {
    (key(), meta_flags(flags)).prop_map(move |(k, flags)| {
        let mut c = vec![lit(verb), k];
        c.extend(flags);
        c.push(lit("\r\n"));
        c
    })
}

fn meta_get() -> impl Strategy<Value = Cmd> {
    const FLAGS: &[&str] = &[
        "v", "v", "k", "c", "f", "s", "h", "t", "l", "q", "O9", "T0", "T1000", "T-1", "N1000",
        "N0", "R30", "u", "Tx", "z",
    ];
    meta_line("mg ", FLAGS)
}

fn meta_set() -> impl Strategy<Value = Cmd> {
    const FLAGS: &[&str] = &[
        "c",
        "k",
        "q",
        "O9",
        "T0",
        "T1000",
        "T-1",
        "F5",
        "F4294967296",
        "I",
        "C{cas}",
        "C{cas}",
        "MS",
        "ME",
        "MA",
        "MP",
        "MR",
        "Mx",
        "z",
    ];
    (key(), value(), len_delta(), meta_flags(FLAGS)).prop_map(|(k, v, delta, mut flags)| {
        // `I` with `C` stores when the CAS sent is *older* than the item's. The CAS here may be
        // another key's, and only memcached numbers all items from one counter (tern counts
        // per shard), so such a comparison means nothing to a client; same-key CAS values
        // order alike in both (`tests/store_meta.rs` tests `I` with them).
        let is = |p: &Piece, s: &[u8]| matches!(p, Piece::Lit(b) if b == s);
        if flags.iter().any(|p| is(p, b"C")) {
            if let Some(i) = flags.iter().position(|p| is(p, b"I")) {
                flags.drain(i - 1..=i);
            }
        }
        let mut c = vec![lit("ms "), k, lit(" "), data_len(&v, delta)];
        c.extend(flags);
        c.push(lit("\r\n"));
        c.extend(data_block(v, delta));
        c
    })
}

fn meta_delete() -> impl Strategy<Value = Cmd> {
    const FLAGS: &[&str] = &["q", "C{cas}", "C{cas}", "I", "T30", "k", "O9", "z"];
    meta_line("md ", FLAGS)
}

fn meta_arith() -> impl Strategy<Value = Cmd> {
    const FLAGS: &[&str] = &[
        "N0",
        "N1000",
        "J5",
        "J18446744073709551615",
        "D3",
        "D18446744073709551615",
        "Dx",
        // No `T`: memcached applies it to the item its incr returns, which is the old,
        // unlinked one whenever the incr could not be done in place: a longer value, or one of
        // its background threads holding the item at that moment. So whether the TTL sticks
        // depends on timing (`ma_ttl_sticks_when_the_value_grows` in tests/meta_protocol.rs).
        "MI",
        "MD",
        "M+",
        "M-",
        "Mx",
        "q",
        "t",
        "c",
        "v",
        "v",
        "k",
        "O9",
        "C{cas}",
    ];
    meta_line("ma ", FLAGS)
}

/// Lines no client should send: unknown or miscased commands, missing or extra arguments.
fn malformed() -> impl Strategy<Value = Cmd> {
    prop_oneof![
        token(&[
            "\r\n",
            " \r\n",
            "\n",
            "GET a\r\n",
            "get\r\n",
            "gets\r\n",
            "set\r\n",
            "set a\r\n",
            "set a 0 0\r\n",
            "set a 0 0 1 2 3 4\r\n",
            "cas a 0 0 1\r\n",
            "incr\r\n",
            "incr a\r\n",
            "decr a 1 2 3\r\n",
            "touch a\r\n",
            "delete\r\n",
            "mg\r\n",
            "ms\r\n",
            "ms a\r\n",
            "ms a x\r\n",
            "md\r\n",
            "ma\r\n",
            "me a\r\n",
            "bogus\r\n",
            "verbosity\r\n",
            "verbosity 1\r\n",
            "verbosity 1 noreply\r\n",
            "get a\rb\r\n",
            "gat\r\n",
            "gat 0\r\n",
        ])
        .prop_map(|p| vec![p]),
        key().prop_map(|k| vec![lit("get "), k, lit(" "), lit(&"x ".repeat(30)), lit("\r\n")]),
        // Lines of random bytes from a small alphabet: command letters, separators, NUL,
        // bytes over 127, lone CRs. Never an `mn` (it would answer a second `MN`, and the
        // transcript ends at the first); memcached reads a line only up to a NUL (`strlen`).
        proptest::collection::vec(
            proptest::sample::select(b"gsetmadcinr 0\t\r\x00\xff".as_slice()),
            0..24
        )
        .prop_filter("an mn command", |b| {
            let line = b.split(|&c| c == 0).next().unwrap_or_default();
            line.split(|&c| c == b' ' || c == b'\t')
                .find(|t| !t.is_empty())
                != Some(b"mn")
        })
        .prop_map(|mut b| {
            b.extend_from_slice(b"\r\n");
            vec![Piece::Lit(b)]
        }),
        // Real commands with tabs or runs of spaces between tokens.
        (
            storage(),
            proptest::sample::select(&[" \t", "  ", "\t"][..])
        )
            .prop_map(|(c, sep)| {
                c.into_iter()
                    .map(|p| match p {
                        Piece::Lit(b) if b == b" " => lit(sep),
                        p => p,
                    })
                    .collect()
            }),
    ]
}

/// Standard base64 with padding (what a client sends with the meta `b` flag).
fn base64(bytes: &[u8]) -> Vec<u8> {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                ABC[(n >> (18 - 6 * i) & 63) as usize]
            } else {
                b'='
            });
        }
    }
    out
}

/// A meta command with its key in base64 and the `b` flag after it; a long key stays as it is
/// (not base64: refused either way), and now and then the key is not base64 at all.
fn with_base64_key(cmd: impl Strategy<Value = Cmd>) -> impl Strategy<Value = Cmd> {
    (
        cmd,
        prop_oneof![8 => Just(None), 1 => token(&["a", "YQ", "Y!==", "===="]).prop_map(Some)],
    )
        .prop_map(|(cmd, bad)| {
            let mut out = Vec::new();
            let mut done = false;
            for p in cmd {
                match p {
                    Piece::Key(i) if !done => {
                        out.push(bad.clone().unwrap_or(Piece::Key64(i)));
                        out.push(lit(" b"));
                        done = true;
                    }
                    Piece::LongKey(n) if !done => {
                        out.push(Piece::LongKey(n));
                        out.push(lit(" b"));
                        done = true;
                    }
                    p => out.push(p),
                }
            }
            out
        })
}

/// Commands an operator types: flush_all without a delay (a delay of 1 second or more
/// flushes, in memcached, at `realtime(delay) - 1`, so whether a later set survives depends on
/// the clock: `tests/text_protocol.rs` covers it), version, verbosity, stats groups with fixed
/// replies. (`mn` ends every command of the stream already.)
fn operator() -> impl Strategy<Value = Cmd> {
    token(&[
        "flush_all\r\n",
        "flush_all 0\r\n",
        "flush_all -1\r\n",
        "flush_all noreply\r\n",
        "flush_all 0 noreply\r\n",
        "flush_all 0 2\r\n",
        "flush_all x\r\n",
        "flush_all x noreply\r\n",
        "version\r\n",
        "verbosity 0\r\n",
        "verbosity 0 noreply\r\n",
        "stats extstore\r\n",
        "stats detail\r\n",
        "stats detail x\r\n",
        "stats bogus\r\n",
    ])
    .prop_map(|p| vec![p])
}

fn command() -> impl Strategy<Value = Cmd> {
    prop_oneof![
        10 => storage(),
        8 => retrieval(),
        2 => delete(),
        4 => arith(),
        2 => touch(),
        6 => meta_get(),
        5 => meta_set(),
        2 => meta_delete(),
        4 => meta_arith(),
        2 => with_base64_key(meta_get()),
        1 => with_base64_key(meta_set()),
        1 => with_base64_key(meta_delete()),
        1 => with_base64_key(meta_arith()),
        2 => operator(),
        3 => malformed(),
        1 => too_large(),
        1 => Just(vec![lit("quit\r\n")]),
    ]
}

/// One server's side of a stream: its connection and the CAS values it has sent so far.
struct Side {
    addr: SocketAddr,
    conn: Option<TcpStream>,
    cas_seen: Vec<u64>,
    cas_index: HashMap<u64, usize>,
}

impl Side {
    fn new(addr: SocketAddr) -> Side {
        Side {
            addr,
            conn: None,
            cas_seen: Vec::new(),
            cas_index: HashMap::new(),
        }
    }

    fn render(&self, cmd: &Cmd, prefix: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for p in cmd {
            match p {
                Piece::Lit(b) => out.extend_from_slice(b),
                Piece::Key(i) => out.extend_from_slice(format!("{prefix}k{i}").as_bytes()),
                Piece::Key64(i) => {
                    out.extend_from_slice(&base64(format!("{prefix}k{i}").as_bytes()))
                }
                Piece::LongKey(n) => {
                    out.extend_from_slice(prefix.as_bytes());
                    out.resize(out.len() + n - prefix.len(), b'L');
                }
                Piece::Cas(i) => {
                    let cas = match self.cas_seen.len() {
                        0 => 987_654_321_987,
                        n => self.cas_seen[*i as usize % n],
                    };
                    out.extend_from_slice(cas.to_string().as_bytes());
                }
            }
        }
        out
    }

    /// Sends `bytes` then `mn`, and returns what came back up to the `MN` (or to the close, or
    /// to the timeout, which the transcript then says).
    fn exchange(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.exchange_until(bytes, b"mn\r\n", b"MN\r\n")
    }

    /// Sends `bytes` then `sentinel`, and returns what came back up to `done`, the sentinel's
    /// reply (or to the close, or to the timeout).
    fn exchange_until(&mut self, bytes: &[u8], sentinel: &[u8], done: &[u8]) -> Vec<u8> {
        if self.conn.is_none() {
            let s = TcpStream::connect(self.addr).expect("connect");
            s.set_nodelay(true).unwrap();
            self.conn = Some(s);
        }
        let s = self.conn.as_mut().unwrap();
        let mut msg = bytes.to_vec();
        msg.extend_from_slice(sentinel);
        if s.write_all(&msg).is_err() {
            self.conn = None;
            return b"<closed before the command>".to_vec();
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 65536];
        let deadline = Instant::now() + REPLY_WAIT;
        loop {
            if got.ends_with(done) {
                return got;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                eprintln!(
                    "{}: no reply to the sentinel after {:?}; got {:?}",
                    self.addr,
                    String::from_utf8_lossy(&bytes[..bytes.len().min(200)]),
                    String::from_utf8_lossy(&got[..got.len().min(200)])
                );
                got.extend_from_slice(b"<timeout>");
                self.conn = None;
                return got;
            }
            s.set_read_timeout(Some(left)).unwrap();
            match s.read(&mut buf) {
                Ok(0) | Err(_) if got.ends_with(done) => return got,
                Ok(0) => {
                    got.extend_from_slice(b"<closed>");
                    self.conn = None;
                    return got;
                }
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => {
                    got.extend_from_slice(b"<closed>");
                    self.conn = None;
                    return got;
                }
            }
        }
    }

    /// The reply with CAS values replaced by their order of first appearance, and `t` / `l`
    /// seconds by a mark (they can tick between the servers).
    fn normalize(&mut self, reply: &[u8]) -> String {
        let mut out = String::new();
        let mut rest = reply;
        while !rest.is_empty() {
            let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
                out.push_str(&String::from_utf8_lossy(rest));
                break;
            };
            let line = String::from_utf8_lossy(&rest[..eol]).into_owned();
            rest = &rest[eol + 2..];
            let tokens: Vec<&str> = line.split(' ').collect();
            let mut data = None;
            let line = match tokens[0] {
                "VALUE" if tokens.len() >= 4 => {
                    data = tokens[3].parse::<usize>().ok();
                    let mut t: Vec<String> = tokens.iter().map(|s| s.to_string()).collect();
                    if let Some(cas) = t.get(4).and_then(|c| c.parse::<u64>().ok()) {
                        t[4] = self.cas_name(cas);
                    }
                    t.join(" ")
                }
                "VA" | "HD" | "NS" | "EX" | "NF" | "EN" | "MN" => {
                    let skip = if tokens[0] == "VA" {
                        data = tokens.get(1).and_then(|n| n.parse::<usize>().ok());
                        2
                    } else {
                        1
                    };
                    let mut t: Vec<String> = tokens.iter().map(|s| s.to_string()).collect();
                    for tok in t.iter_mut().skip(skip) {
                        *tok = self.meta_flag(tok);
                    }
                    t.join(" ")
                }
                _ => line,
            };
            out.push_str(&line);
            out.push_str("\r\n");
            if let Some(n) = data {
                let n = (n + 2).min(rest.len());
                out.push_str(&String::from_utf8_lossy(&rest[..n]));
                rest = &rest[n..];
            }
        }
        out
    }

    fn cas_name(&mut self, cas: u64) -> String {
        let next = self.cas_seen.len();
        let i = *self.cas_index.entry(cas).or_insert(next);
        if i == next {
            self.cas_seen.push(cas);
        }
        format!("#{i}")
    }

    fn meta_flag(&mut self, tok: &str) -> String {
        let (f, v) = tok.split_at(tok.len().min(1));
        match f {
            "c" => match v.parse::<u64>() {
                Ok(cas) => format!("c{}", self.cas_name(cas)),
                Err(_) => tok.to_string(),
            },
            "t" if v.parse::<i64>().is_ok_and(|t| t > 0) => "t+".into(),
            "l" if v.parse::<u64>().is_ok() => "l*".into(),
            _ => tok.to_string(),
        }
    }
}

/// The counters a command stream moves; both servers must count alike. Not `curr_items`,
/// `get_expired` or `get_flushed`: an expired item counts until something reclaims it, and
/// memcached's LRU maintainer and crawler do that in the background, in their own time (so
/// that a later lookup finds the item expired, or finds nothing). `tests/server.rs` checks
/// those counters with tern's clock in hand. `total_items` is compared because memcached runs
/// here without the threads that hold items in the background ([`compare_streams`]).
const COUNTERS: &[&str] = &[
    "total_items",
    "cmd_get",
    "cmd_set",
    "cmd_touch",
    "get_hits",
    "get_misses",
    "delete_misses",
    "delete_hits",
    "incr_misses",
    "incr_hits",
    "decr_misses",
    "decr_hits",
    "cas_misses",
    "cas_hits",
    "cas_badval",
    "touch_hits",
    "touch_misses",
];

fn counters(addr: SocketAddr) -> Vec<(String, i64)> {
    let mut c = TcpStream::connect(addr).expect("connect for stats");
    c.write_all(b"stats\r\n").unwrap();
    c.set_read_timeout(Some(REPLY_WAIT)).unwrap();
    let mut text = Vec::new();
    let mut buf = [0u8; 65536];
    while !text.ends_with(b"END\r\n") {
        let n = c.read(&mut buf).expect("stats reply");
        assert!(n > 0, "closed during stats");
        text.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8(text).unwrap();
    COUNTERS
        .iter()
        .map(|name| {
            let v = text
                .lines()
                .find_map(|l| l.strip_prefix(&format!("STAT {name} ")))
                .unwrap_or_else(|| panic!("no stat {name}"));
            (name.to_string(), v.parse().unwrap())
        })
        .collect()
}

fn delta(before: &[(String, i64)], after: &[(String, i64)]) -> Vec<(String, i64)> {
    before
        .iter()
        .zip(after)
        .map(|((n, b), (_, a))| (n.clone(), a - b))
        .collect()
}

struct TernProcess(Child);

impl Drop for TernProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where a stream's two transcripts parted: what memcached and tern said, and at what.
#[derive(Debug)]
struct Difference {
    mc: String,
    tern: String,
    at: String,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:\n  memcached: {:?}\n  tern:      {:?}",
            self.at, self.mc, self.tern
        )
    }
}

impl Difference {
    /// memcached 1.6.18 refusing an incr or decr as non-numeric where tern counted: its
    /// `safe_strtoull` looks for a `-` in a value of 2^63 or more with `strchr`, which reads
    /// on past the value's `\r\n` into whatever the chunk held before, so such a value is
    /// refused whenever an earlier item left a `-` there (newer memcached bounds the search
    /// with `memchr`). Memory layout, not the stream, decides it.
    fn is_memcached_overread(&self) -> bool {
        let refused = |r: &str| {
            r.starts_with("CLIENT_ERROR cannot increment or decrement non-numeric value")
                || r.contains("Non-numeric server-side value")
        };
        refused(&self.mc) && !refused(&self.tern)
    }
}

/// Runs one stream on both servers: each command's transcript (`transcript` sends it and
/// returns the normalized reply) must match, then the counters the stream moved.
fn compare_one<C: std::fmt::Debug>(
    cmds: &[C],
    mc: SocketAddr,
    tern: SocketAddr,
    transcript: impl Fn(&mut Side, &C) -> String,
) -> Result<(), Difference> {
    let (mc_before, tern_before) = (counters(mc), counters(tern));
    let mut a = Side::new(mc);
    let mut b = Side::new(tern);
    for (i, cmd) in cmds.iter().enumerate() {
        let (na, nb) = (transcript(&mut a, cmd), transcript(&mut b, cmd));
        if na != nb {
            return Err(Difference {
                mc: na,
                tern: nb,
                at: format!("command {i} of the stream, {cmd:?}"),
            });
        }
    }
    drop((a, b));
    let (mc_moved, tern_moved) = (
        delta(&mc_before, &counters(mc)),
        delta(&tern_before, &counters(tern)),
    );
    if mc_moved != tern_moved {
        return Err(Difference {
            mc: format!("{mc_moved:?}"),
            tern: format!("{tern_moved:?}"),
            at: "stats counters the stream moved".to_string(),
        });
    }
    Ok(())
}

/// Starts memcached (`-o no_lru_maintainer,no_lru_crawler`, below) and tern (the binary,
/// `-t 2`) and compares [`cases`] streams of
/// `command` on them. Each stream, and each step of shrinking one, has keys of its own
/// (prefixed `<tag><n>_`), so streams never see each other's items.
fn compare_streams<C: Clone + std::fmt::Debug>(
    tag: &str,
    command: impl Strategy<Value = C>,
    transcript: impl Fn(&mut Side, &C, &str) -> String,
) {
    if !differential() {
        eprintln!("skipped: set TERN_DIFF_MEMCACHED=1 to compare random streams with memcached");
        return;
    }
    // memcached's LRU maintainer (and the LRU bumps it drains) and its crawler hold
    // references to items now and then; an incr or decr that meets such an item writes a new,
    // unpadded item instead of rewriting the value in place padded with spaces
    // (`do_add_delta`'s `refcount == 2`), so the bytes stored, what a later append makes of
    // them, and `total_items` depended on timing. Without them the in-place rule is the only
    // one, as tern's.
    let mc = Memcached::start(&["-o", "no_lru_maintainer,no_lru_crawler"]);
    let (child, ports) = spawn_tern(
        &["-p", "-1", "-U", "0", "-l", "127.0.0.1", "-t", "2"],
        false,
    );
    let tern = TernProcess(child);
    let tern_addr: SocketAddr = format!("127.0.0.1:{}", port_in(&ports, "TCP").unwrap())
        .parse()
        .unwrap();
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let stream = AtomicUsize::new(0);
    let unrepeated = Mutex::new(Vec::new());
    let result = runner.run(&proptest::collection::vec(command, 1..30), |cmds| {
        let run = || {
            let prefix = format!("{tag}{}_", stream.fetch_add(1, Ordering::Relaxed));
            compare_one(&cmds, mc.addr, tern_addr, |side, cmd| {
                transcript(side, cmd, &prefix)
            })
        };
        let Err(first) = run() else {
            return Ok(());
        };
        // The same stream twice more, on fresh keys: a difference that comes back fails (and
        // shrinks); one that does not is memory layout or timing, printed below.
        if run().is_ok() && run().is_ok() {
            unrepeated.lock().unwrap().push((
                first.is_memcached_overread(),
                format!("{first}\nthe stream: {cmds:?}"),
            ));
            Ok(())
        } else {
            Err(TestCaseError::fail(first.to_string()))
        }
    });
    drop(tern);
    let unrepeated = unrepeated.into_inner().unwrap();
    for (overread, d) in &unrepeated {
        let kind = if *overread {
            "memcached's over-read"
        } else {
            "unexplained"
        };
        eprintln!("a difference that did not come back on two reruns ({kind}): {d}");
    }
    if let Err(e) = result {
        panic!("{e}");
    }
    // memcached's over-read comes about once in 3,500 binary streams (values of 2^63 and more
    // are common in them). Anything else that does not repeat stays rare: more than one stream
    // in 500 would be something else.
    let unexplained = unrepeated.iter().filter(|(overread, _)| !overread).count();
    assert!(
        unexplained as u32 <= cases() / 500,
        "{unexplained} of {} streams differed once, not on reruns, and not by memcached's \
         over-read",
        cases()
    );
}

/// Streams per test: `TERN_DIFF_CASES`, or 2,000.
fn cases() -> u32 {
    std::env::var("TERN_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

#[test]
fn random_streams_match_memcached() {
    compare_streams("s", command(), |side, cmd, prefix| {
        let bytes = side.render(cmd, prefix);
        let reply = side.exchange(&bytes);
        side.normalize(&reply)
    });
}

// ---- The binary protocol ----

/// The opaque of the `NOOP` that ends each binary command's replies.
const SENTINEL_OPAQUE: u32 = 0xFEED_FACE;

/// One binary request: its header fields, extras and value, and what each server gets its
/// own way (the key, the CAS).
#[derive(Clone, Debug)]
struct BinCmd {
    opcode: u8,
    key: Option<Piece>,
    extras: Vec<u8>,
    value: Vec<u8>,
    cas: Option<Piece>,
    opaque: u32,
}

fn bin_extras(opcode: u8) -> impl Strategy<Value = Vec<u8>> {
    let exptime = prop_oneof![
        Just(0u32),
        Just(1000u32),
        Just(u32::MAX),
        Just(2_592_001u32)
    ];
    let flags = prop_oneof![Just(0u32), Just(5u32), Just(u32::MAX)];
    let delta = prop_oneof![
        Just(1u64),
        Just(0u64),
        Just(7u64),
        Just(u64::MAX),
        any::<u64>()
    ];
    let proper: BoxedStrategy<Vec<u8>> = match opcode {
        // set, add, replace and their quiet forms: flags, exptime.
        0x01..=0x03 | 0x11..=0x13 => (flags, exptime.clone())
            .prop_map(|(f, e)| [f.to_be_bytes(), e.to_be_bytes()].concat())
            .boxed(),
        // incr, decr: delta, initial, exptime (0xffffffff: do not create).
        0x05 | 0x06 | 0x15 | 0x16 => (delta.clone(), delta, exptime.clone())
            .prop_map(|(d, i, e)| {
                let mut v = d.to_be_bytes().to_vec();
                v.extend(i.to_be_bytes());
                v.extend(e.to_be_bytes());
                v
            })
            .boxed(),
        // touch, gat and friends: exptime.
        0x1c..=0x1e | 0x23 | 0x24 => exptime.prop_map(|e| e.to_be_bytes().to_vec()).boxed(),
        // flush: none, or an expiration of 0. A delay flushes in memcached at `realtime(delay) -
        // 1` and loses a set made in that second, which depends on the clock (`docs/testing.md`);
        // so its wrong lengths below are never 4.
        0x08 | 0x18 => prop_oneof![Just(Vec::new()), Just(vec![0u8; 4])].boxed(),
        _ => Just(Vec::new()).boxed(),
    };
    let wrong = proptest::collection::vec(any::<u8>(), 0..24);
    let wrong = if matches!(opcode, 0x08 | 0x18) {
        wrong.prop_filter("a flush delay", |v| v.len() != 4).boxed()
    } else {
        wrong.boxed()
    };
    prop_oneof![
        12 => proper,
        1 => wrong,
    ]
}

fn binary_command() -> impl Strategy<Value = BinCmd> {
    // No unknown opcodes: both servers then swallow more than the request's body (the NOOP
    // that ends the reply too), so each costs a timeout; `tests/binary_protocol.rs` has them.
    const OPCODES: &[u8] = &[
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x09, 0x0c, 0x0d, 0x0e, 0x0f, 0x11, 0x12, 0x13,
        0x14, 0x15, 0x16, 0x19, 0x1a, 0x1c, 0x1d, 0x1e, 0x23, 0x24, 0x0a, 0x07, 0x17, 0x08, 0x18,
        0x0b, 0x10,
    ];
    let opcode = prop_oneof![
        20 => proptest::sample::select(&OPCODES[..25]),
        2 => proptest::sample::select(&OPCODES[25..]),
    ];
    opcode.prop_flat_map(|op| {
        let key = if op == 0x10 {
            // STAT groups whose replies hold no numbers that differ between the servers (no
            // key in these streams has a `:`, so `detail dump` lists no prefix).
            token(&[
                "bogus",
                "extstore",
                "conns",
                "detail",
                "detailx",
                "detail dump",
                "detail on",
                "detail off",
                "sizesx",
            ])
            .prop_map(Some)
            .boxed()
        } else {
            prop_oneof![12 => key().prop_map(Some), 1 => Just(None)].boxed()
        };
        (
            Just(op),
            key,
            bin_extras(op),
            prop_oneof![4 => value(), 1 => Just(Vec::new())],
            prop_oneof![
                4 => Just(None),
                2 => (0u8..8).prop_map(|i| Some(Piece::Cas(i))),
                // A CAS no item has: memcached numbers every change from one counter, which
                // passes any small number early in a run (12345 once matched an item there).
                1 => Just(Some(lit("987654321987"))),
            ],
            prop_oneof![Just(0u32), Just(7u32), any::<u32>()],
        )
            .prop_map(|(opcode, key, extras, value, cas, opaque)| {
                // Commands that carry no value send none (memcached refuses one otherwise, a
                // path the malformed extras already cover).
                let takes_value =
                    matches!(opcode, 0x01..=0x03 | 0x0e | 0x0f | 0x11..=0x13 | 0x19 | 0x1a);
                BinCmd {
                    opcode,
                    key,
                    extras,
                    value: if takes_value { value } else { Vec::new() },
                    cas,
                    opaque,
                }
            })
    })
}

fn frame(opcode: u8, key: &[u8], extras: &[u8], value: &[u8], opaque: u32, cas: u64) -> Vec<u8> {
    let body = key.len() + extras.len() + value.len();
    let mut f = vec![0x80, opcode];
    f.extend((key.len() as u16).to_be_bytes());
    f.push(extras.len() as u8);
    f.extend([0, 0, 0]);
    f.extend((body as u32).to_be_bytes());
    f.extend(opaque.to_be_bytes());
    f.extend(cas.to_be_bytes());
    f.extend_from_slice(extras);
    f.extend_from_slice(key);
    f.extend_from_slice(value);
    f
}

impl Side {
    fn render_binary(&self, cmd: &BinCmd, prefix: &str) -> Vec<u8> {
        let key = cmd
            .key
            .as_ref()
            .map(|k| self.render(&vec![k.clone()], prefix))
            .unwrap_or_default();
        let cas = cmd.cas.as_ref().map_or(0, |c| {
            String::from_utf8(self.render(&vec![c.clone()], prefix))
                .unwrap()
                .parse()
                .unwrap()
        });
        // Always the body length sent: one declared shorter leaves bytes that read as a bad
        // header, on which memcached closes and drops the replies it had not written yet (or
        // not, as its reads fall); tern writes them first. `tests/binary_protocol.rs` covers
        // inconsistent lengths.
        frame(cmd.opcode, &key, &cmd.extras, &cmd.value, cmd.opaque, cas)
    }

    /// The binary replies, one line per response header (CAS renamed) with its body.
    fn normalize_binary(&mut self, reply: &[u8]) -> String {
        let mut out = String::new();
        let mut rest = reply;
        while rest.len() >= 24 && rest[0] == 0x81 {
            let body_len = u32::from_be_bytes(rest[8..12].try_into().unwrap()) as usize;
            if rest.len() < 24 + body_len {
                break;
            }
            let cas = u64::from_be_bytes(rest[16..24].try_into().unwrap());
            let cas = if cas == 0 {
                "0".to_string()
            } else {
                self.cas_name(cas)
            };
            out.push_str(&format!(
                "op {:02x} keylen {} extlen {} status {} opaque {:x} cas {} body {:?}\n",
                rest[1],
                u16::from_be_bytes([rest[2], rest[3]]),
                rest[4],
                u16::from_be_bytes([rest[6], rest[7]]),
                u32::from_be_bytes(rest[12..16].try_into().unwrap()),
                cas,
                String::from_utf8_lossy(&rest[24..24 + body_len]),
            ));
            rest = &rest[24 + body_len..];
        }
        if !rest.is_empty() {
            out.push_str(&format!("raw {:?}", String::from_utf8_lossy(rest)));
        }
        out
    }
}

#[test]
fn random_binary_streams_match_memcached() {
    let sentinel = frame(0x0a, b"", b"", b"", SENTINEL_OPAQUE, 0);
    let mut done = vec![0x81, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    done.extend(SENTINEL_OPAQUE.to_be_bytes());
    done.extend([0; 8]);
    compare_streams("b", binary_command(), |side, cmd, prefix| {
        let bytes = side.render_binary(cmd, prefix);
        let reply = side.exchange_until(&bytes, &sentinel, &done);
        side.normalize_binary(&reply)
    });
}
