//! tern's own load generator: a small, memtier_benchmark-like closed-loop client for the memcached
//! text protocol, used to compare tern with memcached side by side (see `benches/sidebyside.py` and
//! `docs/performance.md`).
//!
//! ```text
//! cargo bench --bench loadgen -- --addr 127.0.0.1:22400 --threads 2 --conns 25 --duration 10 \
//!     --ratio 1:10 --keys 100000 --value-size 100 --pipeline 1 --multiget 1
//! ```
//!
//! Each thread owns `--conns` non-blocking connections on its own mio `Poll`. Every connection keeps
//! `--pipeline` requests in flight: when a reply completes, its latency is recorded and the next
//! request is sent. Requests are assembled by copying pre-built pieces (the key table, the
//! `" 0 0 <size>\r\n"` suffix, the value block) into a buffer each connection reuses, so the
//! generator allocates and formats nothing per request. Before the timed run, every key is written
//! once (the prefill), so gets hit unless the server evicts.
//!
//! It only ever connects to loopback addresses, stops by itself after `--duration` seconds (plus a
//! bounded drain), and exits non-zero on the first reply that is not what memcached would send.
//! With no `--addr` it prints its usage and exits 0, so `cargo bench` stays cheap.

// cargo builds `harness = false` benches with `cfg(test)` but without the test harness, so the
// `#[cfg(test)] mod tests` of the modules below compile here with their `#[test]`s stripped.
// They run through tests/loadgen_parts.rs instead.
#![cfg_attr(test, allow(unused_imports))]

#[path = "loadgen/histogram.rs"]
mod histogram;
#[path = "loadgen/reply.rs"]
mod reply;

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream as StdTcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use histogram::Histogram;
use reply::{GetEvent, ReplyError, SetReply};

/// Client threads. The benchmark box has 2 cores shared with the server under test: more client
/// threads than cores only adds context switches to what is measured.
const DEFAULT_THREADS: usize = 2;
/// Connections per thread (memtier's `-c` is per thread too). 2 x 25 = 50 connections with one
/// request in flight each is enough to keep a 2-4 thread server busy on loopback, while memtier's
/// 4 x 50 = 200 mostly measures the client's own scheduling on 2 cores.
const DEFAULT_CONNS: usize = 25;
/// Seconds of timed load.
const DEFAULT_DURATION: f64 = 10.0;
/// memtier_benchmark's default set:get ratio.
const DEFAULT_RATIO: (u32, u32) = (1, 10);
/// Key space: `key:0` .. `key:99999`.
const DEFAULT_KEYS: u64 = 100_000;
/// Bytes per value; small values stress the request path rather than memcpy.
const DEFAULT_VALUE_SIZE: usize = 100;
/// Requests in flight per connection (1 = strict request/reply).
const DEFAULT_PIPELINE: usize = 1;
/// Keys per `get` (1 = single-key gets).
const DEFAULT_MULTIGET: usize = 1;
/// Requests in flight per connection while prefilling: deep enough to be fast, small enough that
/// a server's output buffer never becomes the bottleneck.
const PREFILL_PIPELINE: usize = 32;
/// How long replies may take to arrive after the timed run before the run is declared failed.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the prefill may take at most (a server that stops answering must not hang the run).
const PREFILL_TIMEOUT: Duration = Duration::from_secs(120);

const USAGE: &str = "\
tern loadgen: a closed-loop memcached text-protocol load generator (loopback only)

usage: cargo bench --bench loadgen -- --addr 127.0.0.1:PORT [options]

  --addr HOST:PORT   server to load; must be a loopback address (required; without it this
                     usage is printed and the program exits 0)
  --threads N        client threads (default 2)
  --conns N          connections per thread (default 25)
  --duration SECS    timed run length, fractional allowed (default 10)
  --ratio S:G        set:get request mix (default 1:10; 0:1 = gets only, 1:0 = sets only)
  --keys N           key space key:0 .. key:N-1, chosen uniformly (default 100000)
  --key-prefix P     key prefix (default \"key:\")
  --value-size N     value bytes (default 100)
  --pipeline N       requests in flight per connection (default 1)
  --multiget N       keys per get request (default 1)
  --binary           speak the binary protocol (GET and SET packets; --multiget must be 1)
  --meta             speak the meta protocol: `ms` sets; a get is --multiget quiet
                     `mg <key> v k q` lines closed by `mn` (the meta multi-get)
  --no-prefill       do not write every key before the timed run
  --prefill-only     write every key, report, and exit
  --seed N           random seed (default 1)
";

/// The parsed command line.
#[derive(Debug, Clone)]
struct Options {
    addr: SocketAddr,
    threads: usize,
    conns: usize,
    duration: Duration,
    ratio: (u32, u32),
    keys: u64,
    key_prefix: String,
    value_size: usize,
    pipeline: usize,
    multiget: usize,
    prefill: bool,
    prefill_only: bool,
    seed: u64,
    binary: bool,
    meta: bool,
}

/// What the command line asked for.
enum Command {
    Usage,
    Run(Box<Options>),
}

fn parse_number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{flag}: invalid value {value:?}"))
}

/// Resolves `addr` and insists every address it names is loopback.
fn loopback_addr(addr: &str) -> Result<SocketAddr, String> {
    let resolved: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| format!("--addr: cannot resolve {addr:?}: {e}"))?
        .collect();
    let first = *resolved
        .first()
        .ok_or_else(|| format!("--addr: {addr:?} resolves to nothing"))?;
    if let Some(bad) = resolved.iter().find(|a| !is_loopback(a.ip())) {
        return Err(format!(
            "--addr: {addr:?} resolves to {bad}, which is not a loopback address; \
             this load generator only targets loopback"
        ));
    }
    Ok(first)
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

fn parse_args(args: &[String]) -> Result<Command, String> {
    let mut addr = None;
    let mut o = Options {
        addr: SocketAddr::from(([127, 0, 0, 1], 11211)),
        threads: DEFAULT_THREADS,
        conns: DEFAULT_CONNS,
        duration: Duration::from_secs_f64(DEFAULT_DURATION),
        ratio: DEFAULT_RATIO,
        keys: DEFAULT_KEYS,
        key_prefix: "key:".to_owned(),
        value_size: DEFAULT_VALUE_SIZE,
        pipeline: DEFAULT_PIPELINE,
        multiget: DEFAULT_MULTIGET,
        prefill: true,
        prefill_only: false,
        seed: 1,
        binary: false,
        meta: false,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let flag = flag.as_str();
        // `cargo bench` passes `--bench` to every bench binary; libtest-style flags are ignored.
        if flag == "--bench" || flag == "--nocapture" {
            continue;
        }
        if flag == "-h" || flag == "--help" {
            return Ok(Command::Usage);
        }
        if flag == "--no-prefill" {
            o.prefill = false;
            continue;
        }
        if flag == "--prefill-only" {
            o.prefill_only = true;
            continue;
        }
        if flag == "--binary" {
            o.binary = true;
            continue;
        }
        if flag == "--meta" {
            o.meta = true;
            continue;
        }
        let (flag, inline) = match flag.split_once('=') {
            Some((f, v)) => (f, Some(v.to_owned())),
            None => (flag, None),
        };
        let value = match inline {
            Some(v) => v,
            None => it
                .next()
                .cloned()
                .ok_or_else(|| format!("{flag}: missing value"))?,
        };
        match flag {
            "--addr" => addr = Some(loopback_addr(&value)?),
            "--threads" => o.threads = parse_number(flag, &value)?,
            "--conns" => o.conns = parse_number(flag, &value)?,
            "--duration" => {
                let secs: f64 = parse_number(flag, &value)?;
                if !(secs > 0.0 && secs <= 3600.0) {
                    return Err(format!("--duration: {value} is not in (0, 3600]"));
                }
                o.duration = Duration::from_secs_f64(secs);
            }
            "--ratio" => {
                let (s, g) = value
                    .split_once(':')
                    .ok_or_else(|| format!("--ratio: expected SETS:GETS, got {value:?}"))?;
                o.ratio = (parse_number(flag, s)?, parse_number(flag, g)?);
                if o.ratio.0 == 0 && o.ratio.1 == 0 {
                    return Err("--ratio: 0:0 sends nothing".to_owned());
                }
            }
            "--keys" => o.keys = parse_number(flag, &value)?,
            "--key-prefix" => {
                if value.is_empty() || value.bytes().any(|b| b <= b' ' || b == 0x7f) {
                    return Err(format!(
                        "--key-prefix: {value:?} must be printable, no spaces"
                    ));
                }
                o.key_prefix = value;
            }
            "--value-size" => o.value_size = parse_number(flag, &value)?,
            "--pipeline" => o.pipeline = parse_number(flag, &value)?,
            "--multiget" => o.multiget = parse_number(flag, &value)?,
            "--seed" => o.seed = parse_number(flag, &value)?,
            _ => return Err(format!("unknown option {flag:?} (see --help)")),
        }
    }
    for (name, v) in [
        ("--threads", o.threads),
        ("--conns", o.conns),
        ("--pipeline", o.pipeline),
        ("--multiget", o.multiget),
    ] {
        if v == 0 || v > 10_000 {
            return Err(format!("{name}: {v} is not in 1..=10000"));
        }
    }
    if o.binary && o.meta {
        return Err("--binary and --meta: pick one protocol".to_owned());
    }
    if o.binary && o.multiget != 1 {
        return Err("--binary: only single-key gets (--multiget 1)".to_owned());
    }
    if o.keys == 0 || o.keys > 100_000_000 {
        return Err(format!("--keys: {} is not in 1..=100000000", o.keys));
    }
    if o.value_size > 64 << 20 {
        return Err(format!("--value-size: {} is over 64 MB", o.value_size));
    }
    let longest_key = o.key_prefix.len() + (o.keys - 1).to_string().len();
    if longest_key > 250 {
        return Err(format!(
            "--key-prefix: keys would be {longest_key} bytes, over 250"
        ));
    }
    match addr {
        None => Ok(Command::Usage),
        Some(a) => {
            o.addr = a;
            Ok(Command::Run(Box::new(o)))
        }
    }
}

/// Everything requests are assembled from, built once and shared by every connection.
struct Workload {
    /// Every key, back to back; key `i` is `keys[key_offsets[i]..key_offsets[i + 1]]`.
    keys: Vec<u8>,
    key_offsets: Vec<u32>,
    /// `" 0 0 <value size>\r\n"`.
    set_suffix: Vec<u8>,
    /// The value followed by `\r\n`.
    value_block: Vec<u8>,
    value_size: usize,
    ratio: (u32, u32),
    multiget: usize,
    /// Binary protocol instead of text.
    binary: bool,
    /// Meta protocol instead of text.
    meta: bool,
}

impl Workload {
    fn new(o: &Options) -> Self {
        let mut keys = Vec::new();
        let mut key_offsets = Vec::with_capacity(o.keys as usize + 1);
        for i in 0..o.keys {
            key_offsets.push(keys.len() as u32);
            keys.extend_from_slice(o.key_prefix.as_bytes());
            keys.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
        }
        key_offsets.push(keys.len() as u32);
        // Printable, not all one byte, so nothing along the way can cheat by compressing it.
        let mut value_block: Vec<u8> = (0..o.value_size)
            .map(|i| b'a' + (i * 7 % 26) as u8)
            .collect();
        value_block.extend_from_slice(b"\r\n");
        Self {
            keys,
            key_offsets,
            set_suffix: format!(" 0 0 {}\r\n", o.value_size).into_bytes(),
            value_block,
            value_size: o.value_size,
            ratio: o.ratio,
            multiget: o.multiget,
            binary: o.binary,
            meta: o.meta,
        }
    }

    fn key_count(&self) -> u64 {
        (self.key_offsets.len() - 1) as u64
    }

    fn key(&self, i: u64) -> &[u8] {
        let i = i as usize;
        &self.keys[self.key_offsets[i] as usize..self.key_offsets[i + 1] as usize]
    }

    /// Appends `set <key> 0 0 <size>\r\n<value>\r\n` to `out` (a binary SET packet with flags
    /// and exptime 0 with `--binary`).
    fn push_set(&self, out: &mut Vec<u8>, key: u64) {
        if self.binary {
            let key = self.key(key);
            push_binary_header(out, 0x01, key.len(), 8, 8 + key.len() + self.value_size);
            out.extend_from_slice(&[0; 8]);
            out.extend_from_slice(key);
            out.extend_from_slice(&self.value_block[..self.value_size]);
            return;
        }
        if self.meta {
            out.extend_from_slice(b"ms ");
            out.extend_from_slice(self.key(key));
            out.push(b' ');
            out.extend_from_slice(itoa::Buffer::new().format(self.value_size).as_bytes());
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&self.value_block);
            return;
        }
        out.extend_from_slice(b"set ");
        out.extend_from_slice(self.key(key));
        out.extend_from_slice(&self.set_suffix);
        out.extend_from_slice(&self.value_block);
    }

    /// Appends a get of `key` (the first key of a text `get` line, a binary GET packet, or a
    /// whole quiet meta `mg` line).
    fn push_get(&self, out: &mut Vec<u8>, key: u64) {
        let key = self.key(key);
        if self.meta {
            out.extend_from_slice(b"mg ");
            out.extend_from_slice(key);
            out.extend_from_slice(b" v k q\r\n");
        } else if self.binary {
            push_binary_header(out, 0x00, key.len(), 0, key.len());
            out.extend_from_slice(key);
        } else {
            out.extend_from_slice(b"get ");
            out.extend_from_slice(key);
        }
    }

    /// The largest request this workload sends, so buffers can be sized once.
    fn max_request_len(&self) -> usize {
        // Keys are numbered, so the last one is (one of) the longest.
        let longest_key = self.key(self.key_count() - 1).len();
        // A binary SET's header and extras (32 bytes) outweigh the text line's words.
        let set = 32 + longest_key + self.set_suffix.len() + self.value_block.len();
        // A meta multi-get is a `mg <key> v k q\r\n` line per key and `mn\r\n`.
        let get = 3 + self.multiget * (10 + longest_key) + 4;
        set.max(get)
    }
}

/// Appends a binary request header: magic 0x80, `opcode`, the key and extras lengths and the
/// total body length; data type, vbucket, opaque and CAS 0.
fn push_binary_header(out: &mut Vec<u8>, opcode: u8, key_len: usize, extras: u8, body: usize) {
    out.extend_from_slice(&[0x80, opcode]);
    out.extend_from_slice(&(key_len as u16).to_be_bytes());
    out.extend_from_slice(&[extras, 0, 0, 0]);
    out.extend_from_slice(&(body as u32).to_be_bytes());
    out.extend_from_slice(&[0; 12]);
}

/// xorshift64*: fast, allocation-free, good enough to spread keys uniformly.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; the bias is negligible for key spaces).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

/// What a request in flight expects back.
#[derive(Debug, Clone, Copy)]
enum Pending {
    Set { sent: Instant },
    Get { sent: Instant, keys: u32 },
}

/// Counters of one thread's share of a run.
#[derive(Debug, Default)]
struct Stats {
    sets: u64,
    gets: u64,
    get_keys: u64,
    hits: u64,
    server_errors: u64,
    bytes_in: u64,
    bytes_out: u64,
    latency: Histogram,
}

impl Stats {
    fn merge(&mut self, o: &Stats) {
        self.sets += o.sets;
        self.gets += o.gets;
        self.get_keys += o.get_keys;
        self.hits += o.hits;
        self.server_errors += o.server_errors;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.latency.merge(&o.latency);
    }
}

/// Where a connection's next requests come from.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// Sets of keys `next, next + step, ...` below the key count, then nothing.
    Prefill { next: u64, step: u64 },
    /// The timed mix, until the deadline.
    Load { deadline: Instant },
}

/// A fatal error: the run stops and the program exits non-zero.
#[derive(Debug)]
enum Fatal {
    Io(&'static str, io::Error),
    Protocol {
        conn: usize,
        error: ReplyError,
    },
    WrongValueSize {
        conn: usize,
        key: Vec<u8>,
        got: usize,
        want: usize,
    },
    Closed {
        conn: usize,
    },
    ReplyTooLarge {
        conn: usize,
        buffer: usize,
    },
    Timeout(&'static str, usize),
    /// This thread stopped because another one failed (that one reports why).
    Aborted(&'static str),
}

impl std::fmt::Display for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fatal::Io(what, e) => write!(f, "{what}: {e}"),
            Fatal::Protocol { conn, error } => {
                write!(f, "connection {conn}: protocol error: {error}")
            }
            Fatal::WrongValueSize {
                conn,
                key,
                got,
                want,
            } => write!(
                f,
                "connection {conn}: key {:?} came back with {got} bytes, {want} were stored",
                String::from_utf8_lossy(key)
            ),
            Fatal::Closed { conn } => write!(f, "connection {conn}: server closed the connection"),
            Fatal::ReplyTooLarge { conn, buffer } => write!(
                f,
                "connection {conn}: {buffer} bytes of replies without one complete reply"
            ),
            Fatal::Aborted(why) => write!(f, "stopped: {why}"),
            Fatal::Timeout(phase, n) => {
                write!(
                    f,
                    "{phase}: {n} requests still unanswered at the time limit"
                )
            }
        }
    }
}

/// One connection and everything it needs, allocated up front.
struct Conn {
    id: usize,
    stream: TcpStream,
    out: Vec<u8>,
    out_pos: usize,
    inbuf: Vec<u8>,
    in_start: usize,
    in_end: usize,
    pending: VecDeque<Pending>,
    /// Values seen so far in the get reply at the head of `pending`.
    values_in_reply: u32,
    rng: Rng,
    /// Position in the set:get cycle.
    cycle: u32,
    source: Source,
    depth: usize,
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

impl Conn {
    fn connect(
        id: usize,
        addr: SocketAddr,
        seed: u64,
        w: &Workload,
        depth: usize,
    ) -> Result<Self, Fatal> {
        let std = StdTcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
            .map_err(|e| Fatal::Io("connect", e))?;
        std.set_nodelay(true)
            .map_err(|e| Fatal::Io("set TCP_NODELAY", e))?;
        std.set_nonblocking(true)
            .map_err(|e| Fatal::Io("set non-blocking", e))?;
        let max_req = w.max_request_len();
        let max_reply = w.multiget * (w.value_size + max_req + 64) + 64;
        Ok(Self {
            id,
            stream: TcpStream::from_std(std),
            out: Vec::with_capacity(depth.max(PREFILL_PIPELINE) * max_req + 4096),
            out_pos: 0,
            inbuf: vec![0; (depth.max(PREFILL_PIPELINE) * max_reply).max(64 * 1024)],
            in_start: 0,
            in_end: 0,
            pending: VecDeque::with_capacity(depth.max(PREFILL_PIPELINE)),
            values_in_reply: 0,
            rng: Rng::new(seed.wrapping_add(id as u64).wrapping_mul(0x9E37_79B9)),
            cycle: (id as u32).wrapping_mul(7),
            source: Source::Prefill { next: 0, step: 1 },
            depth,
        })
    }

    /// Queues requests until `depth` are in flight or the source runs dry; returns how many.
    fn fill(&mut self, w: &Workload, now: Instant) -> usize {
        let mut queued = 0;
        while self.pending.len() < self.depth {
            match &mut self.source {
                Source::Prefill { next, step } => {
                    if *next >= w.key_count() {
                        break;
                    }
                    let key = *next;
                    *next += *step;
                    w.push_set(&mut self.out, key);
                    self.pending.push_back(Pending::Set { sent: now });
                }
                Source::Load { deadline } => {
                    if now >= *deadline {
                        break;
                    }
                    let (sets, gets) = w.ratio;
                    let is_set = self.cycle % (sets + gets) < sets;
                    self.cycle = self.cycle.wrapping_add(1);
                    if is_set {
                        let key = self.rng.below(w.key_count());
                        w.push_set(&mut self.out, key);
                        self.pending.push_back(Pending::Set { sent: now });
                    } else {
                        let key = self.rng.below(w.key_count());
                        w.push_get(&mut self.out, key);
                        for _ in 1..w.multiget {
                            let key = self.rng.below(w.key_count());
                            if w.meta {
                                w.push_get(&mut self.out, key);
                            } else {
                                self.out.push(b' ');
                                self.out.extend_from_slice(w.key(key));
                            }
                        }
                        if w.meta {
                            self.out.extend_from_slice(b"mn\r\n");
                        } else if !w.binary {
                            self.out.extend_from_slice(b"\r\n");
                        }
                        self.pending.push_back(Pending::Get {
                            sent: now,
                            keys: w.multiget as u32,
                        });
                    }
                }
            }
            queued += 1;
        }
        queued
    }

    /// Writes queued bytes until done or `WouldBlock`.
    fn flush(&mut self, stats: &mut Stats) -> Result<(), Fatal> {
        while self.out_pos < self.out.len() {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(0) => return Err(Fatal::Closed { conn: self.id }),
                Ok(n) => {
                    self.out_pos += n;
                    stats.bytes_out += n as u64;
                }
                Err(e) if would_block(&e) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Fatal::Io("write", e)),
            }
        }
        self.out.clear();
        self.out_pos = 0;
        Ok(())
    }

    /// Reads until `WouldBlock`, consuming every complete reply; returns replies completed.
    fn read(&mut self, w: &Workload, stats: &mut Stats, counting: bool) -> Result<usize, Fatal> {
        let mut completed = 0;
        loop {
            if self.in_end == self.inbuf.len() {
                // Compact; the buffer holds `depth` full replies, so after compaction there is room.
                self.inbuf.copy_within(self.in_start..self.in_end, 0);
                self.in_end -= self.in_start;
                self.in_start = 0;
                if self.in_end == self.inbuf.len() {
                    return Err(Fatal::ReplyTooLarge {
                        conn: self.id,
                        buffer: self.inbuf.len(),
                    });
                }
            }
            match self.stream.read(&mut self.inbuf[self.in_end..]) {
                Ok(0) => return Err(Fatal::Closed { conn: self.id }),
                Ok(n) => {
                    self.in_end += n;
                    stats.bytes_in += n as u64;
                    completed += self.consume(w, stats, counting)?;
                }
                Err(e) if would_block(&e) => return Ok(completed),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Fatal::Io("read", e)),
            }
        }
    }

    /// Parses complete replies out of the input buffer.
    fn consume(&mut self, w: &Workload, stats: &mut Stats, counting: bool) -> Result<usize, Fatal> {
        let mut completed = 0;
        let now = Instant::now();
        while self.in_start < self.in_end {
            let buf = &self.inbuf[self.in_start..self.in_end];
            let Some(&head) = self.pending.front() else {
                return Err(Fatal::Protocol {
                    conn: self.id,
                    error: ReplyError::Unexpected(buf[..buf.len().min(80)].to_vec()),
                });
            };
            let protocol = |error| Fatal::Protocol {
                conn: self.id,
                error,
            };
            if w.binary {
                let (r, used) = match reply::parse_binary_reply(buf) {
                    Ok(parsed) => parsed,
                    Err(ReplyError::Incomplete { .. }) => break,
                    Err(e) => return Err(protocol(e)),
                };
                let (sent, is_set) = match head {
                    Pending::Set { sent } => (sent, true),
                    Pending::Get { sent, .. } => (sent, false),
                };
                let bad = || protocol(ReplyError::Unexpected(buf[..used].to_vec()));
                let server_error = r.status == reply::BINARY_OUT_OF_MEMORY;
                let hit = !is_set && r.status == 0;
                match (is_set, r.opcode, r.status) {
                    (true, 0x01, 0) | (false, 0x00, 0 | reply::BINARY_KEY_NOT_FOUND) => {}
                    _ if server_error => {}
                    _ => return Err(bad()),
                }
                if hit && r.value_len != w.value_size {
                    return Err(Fatal::WrongValueSize {
                        conn: self.id,
                        key: Vec::new(),
                        got: r.value_len,
                        want: w.value_size,
                    });
                }
                self.in_start += used;
                self.pending.pop_front();
                completed += 1;
                if counting {
                    if is_set {
                        stats.sets += 1;
                    } else {
                        stats.gets += 1;
                        stats.get_keys += 1;
                        stats.hits += u64::from(hit);
                    }
                    stats.server_errors += u64::from(server_error);
                    stats.latency.record(nanos(now - sent));
                }
                continue;
            }
            match head {
                Pending::Set { sent } => match reply::parse_set_reply(buf) {
                    Ok((r, used)) => {
                        self.in_start += used;
                        self.pending.pop_front();
                        completed += 1;
                        if counting {
                            stats.sets += 1;
                            if r == SetReply::ServerError {
                                stats.server_errors += 1;
                            }
                            stats.latency.record(nanos(now - sent));
                        }
                    }
                    Err(ReplyError::Incomplete { .. }) => break,
                    Err(e) => return Err(protocol(e)),
                },
                Pending::Get { sent, keys } => match reply::parse_get_event(buf) {
                    Ok((GetEvent::Value { key, data, .. }, used)) => {
                        if data.len() != w.value_size {
                            return Err(Fatal::WrongValueSize {
                                conn: self.id,
                                key: key.to_vec(),
                                got: data.len(),
                                want: w.value_size,
                            });
                        }
                        self.values_in_reply += 1;
                        if self.values_in_reply > keys {
                            return Err(protocol(ReplyError::Unexpected(
                                b"more VALUEs than keys requested".to_vec(),
                            )));
                        }
                        self.in_start += used;
                    }
                    Ok((event, used)) => {
                        self.in_start += used;
                        self.pending.pop_front();
                        completed += 1;
                        if counting {
                            stats.gets += 1;
                            stats.get_keys += u64::from(keys);
                            stats.hits += u64::from(self.values_in_reply);
                            if event == GetEvent::ServerError {
                                stats.server_errors += 1;
                            }
                            stats.latency.record(nanos(now - sent));
                        }
                        self.values_in_reply = 0;
                    }
                    Err(ReplyError::Incomplete { .. }) => break,
                    Err(e) => return Err(protocol(e)),
                },
            }
        }
        if self.in_start == self.in_end {
            self.in_start = 0;
            self.in_end = 0;
        }
        Ok(completed)
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// One stretch of driving the connections: the prefill or the timed run.
#[derive(Debug, Clone, Copy)]
struct Phase {
    /// For error messages.
    name: &'static str,
    /// Every reply must be in by then.
    limit: Instant,
    /// Whether replies are counted and timed (the prefill's are not).
    counting: bool,
}

/// Drives `conns` until every source is dry and every reply is in, or the phase's limit passes.
fn drive(
    poll: &mut Poll,
    events: &mut Events,
    conns: &mut [Conn],
    w: &Workload,
    stats: &mut Stats,
    phase: Phase,
) -> Result<(), Fatal> {
    let Phase {
        name,
        limit,
        counting,
    } = phase;
    let now = Instant::now();
    for c in conns.iter_mut() {
        c.fill(w, now);
        c.flush(stats)?;
    }
    loop {
        let in_flight: usize = conns.iter().map(|c| c.pending.len()).sum();
        let now = Instant::now();
        if in_flight == 0 {
            return Ok(());
        }
        if now >= limit {
            return Err(Fatal::Timeout(name, in_flight));
        }
        let wait = (limit - now).min(Duration::from_millis(100));
        match poll.poll(events, Some(wait)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Fatal::Io("poll", e)),
        }
        for event in events.iter() {
            let c = &mut conns[event.token().0];
            if (event.is_readable() || event.is_read_closed()) && c.read(w, stats, counting)? > 0 {
                c.fill(w, Instant::now());
            }
            c.flush(stats)?;
        }
    }
}

/// What one thread hands back.
struct ThreadResult {
    stats: Stats,
    elapsed: Duration,
}

fn run_thread(
    thread: usize,
    o: &Options,
    w: &Workload,
    barrier: &Barrier,
    failed: &std::sync::atomic::AtomicBool,
) -> Result<ThreadResult, Fatal> {
    use std::sync::atomic::Ordering;
    let mut poll = Poll::new().map_err(|e| Fatal::Io("create poll", e))?;
    let mut events = Events::with_capacity(o.conns);
    let mut conns = Vec::with_capacity(o.conns);
    let total_conns = (o.threads * o.conns) as u64;
    let connected = (|| {
        for i in 0..o.conns {
            let id = thread * o.conns + i;
            let mut c = Conn::connect(id, o.addr, o.seed, w, o.pipeline)?;
            poll.registry()
                .register(
                    &mut c.stream,
                    Token(i),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .map_err(|e| Fatal::Io("register", e))?;
            c.source = Source::Prefill {
                next: id as u64,
                step: total_conns,
            };
            conns.push(c);
        }
        Ok(())
    })();
    if connected.is_err() {
        failed.store(true, Ordering::SeqCst);
    }
    barrier.wait();
    connected?;
    if failed.load(Ordering::SeqCst) {
        return Err(Fatal::Aborted("another thread failed to connect"));
    }

    let mut scratch = Stats::default();
    if o.prefill || o.prefill_only {
        for c in conns.iter_mut() {
            c.depth = PREFILL_PIPELINE;
        }
        let limit = Instant::now() + PREFILL_TIMEOUT;
        let r = drive(
            &mut poll,
            &mut events,
            &mut conns,
            w,
            &mut scratch,
            Phase {
                name: "prefill",
                limit,
                counting: false,
            },
        );
        if r.is_err() {
            failed.store(true, Ordering::SeqCst);
        }
        barrier.wait();
        r?;
        if failed.load(Ordering::SeqCst) {
            return Err(Fatal::Aborted("another thread failed during prefill"));
        }
    }
    if o.prefill_only {
        return Ok(ThreadResult {
            stats: Stats::default(),
            elapsed: Duration::ZERO,
        });
    }

    let start = Instant::now();
    let deadline = start + o.duration;
    for c in conns.iter_mut() {
        c.depth = o.pipeline;
        c.source = Source::Load { deadline };
    }
    let mut stats = Stats::default();
    drive(
        &mut poll,
        &mut events,
        &mut conns,
        w,
        &mut stats,
        Phase {
            name: "timed run",
            limit: deadline + DRAIN_TIMEOUT,
            counting: true,
        },
    )?;
    // Requests are only issued before the deadline; the drain after it is bounded by DRAIN_TIMEOUT.
    let elapsed = start.elapsed().min(o.duration + DRAIN_TIMEOUT);
    Ok(ThreadResult { stats, elapsed })
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

fn run(o: &Options) -> Result<(), Fatal> {
    let w = Arc::new(Workload::new(o));
    let barrier = Arc::new(Barrier::new(o.threads));
    let failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    eprintln!(
        "loadgen: {} threads x {} conns -> {}, ratio {}:{}, {} keys, {} B values, pipeline {}, multiget {}, {:.1}s",
        o.threads,
        o.conns,
        o.addr,
        o.ratio.0,
        o.ratio.1,
        o.keys,
        o.value_size,
        o.pipeline,
        o.multiget,
        o.duration.as_secs_f64()
    );
    let prefill_start = Instant::now();
    let handles: Vec<_> = (0..o.threads)
        .map(|t| {
            let (o, w, barrier, failed) = (o.clone(), w.clone(), barrier.clone(), failed.clone());
            std::thread::Builder::new()
                .name(format!("loadgen-{t}"))
                .spawn(move || run_thread(t, &o, &w, &barrier, &failed))
                .expect("spawn loadgen thread")
        })
        .collect();
    let mut total = Stats::default();
    let mut elapsed = Duration::ZERO;
    let mut first_error = None;
    for h in handles {
        match h.join().expect("loadgen thread panicked") {
            Ok(r) => {
                total.merge(&r.stats);
                elapsed = elapsed.max(r.elapsed);
            }
            // Report the failure itself, not another thread's "stopped because of it".
            Err(e) => match first_error {
                None | Some(Fatal::Aborted(_)) => first_error = Some(e),
                Some(_) => {}
            },
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    if o.prefill_only {
        println!(
            "prefill: {} keys of {} B in {:.2}s",
            o.keys,
            o.value_size,
            prefill_start.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    let ops = total.sets + total.gets;
    debug_assert_eq!(total.latency.count(), ops, "one latency sample per request");
    let secs = elapsed.as_secs_f64().max(1e-9);
    let ops_per_sec = ops as f64 / secs;
    let hit_ratio = if total.get_keys == 0 {
        0.0
    } else {
        total.hits as f64 / total.get_keys as f64
    };
    let us = |ns: u64| ns as f64 / 1000.0;
    let h = &total.latency;
    println!(
        "requests      {ops} in {secs:.2}s ({} sets, {} gets of {} keys)",
        total.sets, total.gets, total.get_keys
    );
    println!(
        "throughput    {ops_per_sec:.0} ops/s ({:.0} keys/s read)",
        total.get_keys as f64 / secs
    );
    println!(
        "get hits      {} of {} ({:.4})",
        total.hits, total.get_keys, hit_ratio
    );
    println!(
        "latency       p50 {:.1} us  p99 {:.1} us  p99.9 {:.1} us  max {:.1} us  mean {:.1} us",
        us(h.quantile(0.50)),
        us(h.quantile(0.99)),
        us(h.quantile(0.999)),
        us(h.max()),
        h.mean() / 1000.0
    );
    println!(
        "bytes         out {} ({:.1} MB/s)  in {} ({:.1} MB/s)",
        human_bytes(total.bytes_out),
        total.bytes_out as f64 / secs / 1e6,
        human_bytes(total.bytes_in),
        total.bytes_in as f64 / secs / 1e6
    );
    println!("errors        {} SERVER_ERROR replies", total.server_errors);
    // One machine-readable line for scripts (benches/sidebyside.py parses it).
    println!(
        "RESULT ops_per_sec={ops_per_sec:.1} ops={ops} secs={secs:.3} sets={} gets={} get_keys={} hits={} \
         hit_ratio={hit_ratio:.5} p50_us={:.1} p99_us={:.1} p999_us={:.1} max_us={:.1} \
         bytes_out={} bytes_in={} server_errors={}",
        total.sets,
        total.gets,
        total.get_keys,
        total.hits,
        us(h.quantile(0.50)),
        us(h.quantile(0.99)),
        us(h.quantile(0.999)),
        us(h.max()),
        total.bytes_out,
        total.bytes_in,
        total.server_errors
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse_args(&args) {
        Ok(Command::Usage) => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Command::Run(o)) => match run(&o) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("loadgen: FAILED: {e}");
                ExitCode::FAILURE
            }
        },
        Err(msg) => {
            eprintln!("loadgen: {msg}");
            ExitCode::from(2)
        }
    }
}
