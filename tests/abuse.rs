//! Abuse, black-box: a real `tern` process on loopback, clients that misbehave on purpose, and
//! each time another client that must keep being served with its data intact (issue 14).
//!
//! Every test bounds its own run time (the whole file runs in well under a minute on 2 cores)
//! and checks the server's resident memory from `/proc/<pid>/status` where the abuse is about
//! memory.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{stat_value, Client};

/// The slowest round trip a well-behaved client may see while another one abuses the server.
/// This is a stall detector, not a latency claim (those live in benches/): a client blocked
/// behind an abuser waits for as long as the abuse lasts, while on 2 cores shared with a
/// parallel test run and other builds an unblocked round trip was seen to take over 1 s.
const MAX_LATENCY: Duration = Duration::from_secs(5);

/// A tern process on a system-chosen port (`-p -1`, read back from `MEMCACHED_PORT_FILENAME`),
/// killed when dropped.
struct Daemon {
    child: Child,
    addr: SocketAddr,
    /// The UDP port, when started with `-U -1`.
    udp_port: Option<u16>,
}

impl Daemon {
    fn start(args: &[&str]) -> Daemon {
        let mut all = vec!["-p", "-1", "-l", "127.0.0.1", "-U", "0", "-t", "2"];
        all.extend_from_slice(args);
        let (child, ports) = common::spawn_tern(&all, false);
        let port_of = |transport: &str| common::port_in(&ports, transport);
        let port = port_of("TCP").expect("a TCP port in the port file");
        Daemon {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            udp_port: port_of("UDP"),
        }
    }

    fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// The server's resident memory, in bytes.
    fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the server is alive");
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS");
        kb * 1024
    }

    /// Asserts the process is still running.
    fn assert_alive(&mut self) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "tern died under abuse"
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A well-behaved client: stores a fresh value and reads it back, asserting the bytes and the
/// latency of each round trip. `round` makes every call's value different.
fn served(c: &mut Client, name: &str, round: usize) {
    let key = format!("ok:{name}:{}", round % 16);
    let value = format!("{name}-{round}-{}", "v".repeat(round % 200));
    let started = Instant::now();
    c.send(format!("set {key} 7 0 {}\r\n{value}\r\n", value.len()).as_bytes());
    let stored = c.read_exact_n(8);
    assert_eq!(stored, b"STORED\r\n", "{name} round {round}");
    let expected = format!("VALUE {key} 7 {}\r\n{value}\r\nEND\r\n", value.len());
    c.send(format!("get {key}\r\n").as_bytes());
    let got = c.read_exact_n(expected.len());
    assert_eq!(
        String::from_utf8_lossy(&got),
        expected,
        "{name} round {round}"
    );
    let took = started.elapsed();
    assert!(took < MAX_LATENCY, "{name}: a round trip took {took:?}");
}

/// Runs `served` on a fresh connection in a thread until `stop`, returning the rounds done.
fn serve_in_background(
    addr: SocketAddr,
    name: &'static str,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut c = Client::connect(addr);
        let mut round = 0;
        while !stop.load(Ordering::Relaxed) {
            served(&mut c, name, round);
            round += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
        round
    })
}

/// Sends `request` and asserts the reply is `expected`, without waiting to see that nothing
/// follows (`Client::roundtrip` waits 150 ms for that, too slow for hundreds of checks).
fn exchange(c: &mut Client, request: &[u8], expected: &[u8]) {
    c.send(request);
    let got = c.read_exact_n(expected.len());
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(expected)
    );
}

/// Stores `n` keys `keep:<i>` whose values say which key they belong to.
fn store_keepers(c: &mut Client, n: usize) {
    for i in 0..n {
        let v = format!("keeper-{i}-{}", "k".repeat(i % 50));
        exchange(
            c,
            format!("set keep:{i} {i} 0 {}\r\n{v}\r\n", v.len()).as_bytes(),
            b"STORED\r\n",
        );
    }
}

/// The reply to `get keep:<i>` once [`store_keepers`] has run.
fn keeper_reply(i: usize) -> Vec<u8> {
    let v = format!("keeper-{i}-{}", "k".repeat(i % 50));
    format!("VALUE keep:{i} {i} {}\r\n{v}\r\nEND\r\n", v.len()).into_bytes()
}

/// Asserts the keys of [`store_keepers`] hold what was stored.
fn check_keepers(c: &mut Client, n: usize) {
    for i in 0..n {
        exchange(c, format!("get keep:{i}\r\n").as_bytes(), &keeper_reply(i));
    }
}

/// The soft and hard limits on this process's open files, after raising the soft one to the
/// hard one.
fn raise_nofile() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    hard
}

/// A connection to `to` from the local address `from`.
fn connect_from(from: SocketAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    s.bind(&from.into())?;
    s.connect(&to.into())?;
    Ok(s.into())
}

/// 20,000 connections opened and held; another client is served throughout, and held
/// connections still answer.
///
/// Both processes need a descriptor per connection: where the hard limit on open files is
/// below 20,000 plus what else the processes hold (20,000 on some sandboxes, where an
/// unprivileged process cannot raise it), the test holds as many as that limit allows and says
/// so on stderr.
#[test]
fn twenty_thousand_held_connections_leave_others_served() {
    let hard = raise_nofile();
    // tern needs NOFILE_RESERVED (128) descriptors besides its connections; this process a few
    // dozen besides its sockets.
    let held_n = 20_000.min(hard.saturating_sub(256) as usize);
    if held_n < 20_000 {
        eprintln!("hard open-file limit {hard}: holding {held_n} connections, not 20,000");
    }
    let limit = (held_n + 16).to_string();
    let mut d = Daemon::start(&["-c", &limit, "-b", "4096", "-m", "64"]);
    let rss_before = d.rss();
    let stop = Arc::new(AtomicBool::new(false));
    let bg = serve_in_background(d.addr, "beside-held", stop.clone());
    let mut held = Vec::with_capacity(held_n);
    let started = Instant::now();
    while held.len() < held_n {
        // One loopback source address per 5,000 connections: one address's ephemeral ports
        // (about 28,000, shared with whatever else runs) would run out.
        let source = SocketAddr::from(([127, 0, 0, 2 + (held.len() / 5_000) as u8], 0));
        match connect_from(source, d.addr) {
            Ok(s) => held.push(s),
            Err(e) => panic!("connection {} refused: {e}", held.len()),
        }
    }
    let mut probe = d.connect();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let curr: usize = probe.stat("curr_connections").parse().unwrap();
        // The held ones, the probe and the background client.
        if curr >= held_n + 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {curr} connections accepted"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let open_took = started.elapsed();
    // Held connections are live: a sample of them is answered.
    for s in held.iter_mut().step_by(997) {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"get ok:beside-held:0\r\n").unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).unwrap();
        assert!(
            buf[..n].ends_with(b"END\r\n"),
            "{:?}",
            String::from_utf8_lossy(&buf[..n])
        );
    }
    let rss_held = d.rss();
    stop.store(true, Ordering::Relaxed);
    let rounds = bg.join().expect("the other client was served");
    assert!(rounds > 0);
    d.assert_alive();
    eprintln!(
        "{held_n} connections opened in {open_took:?}; server RSS {} MB -> {} MB ({} KB per \
         connection); {rounds} round trips beside them",
        rss_before >> 20,
        rss_held >> 20,
        (rss_held.saturating_sub(rss_before) / held_n as u64) >> 10
    );
    drop(held);
}

/// Slowloris: half a command line, one byte a second, while others are served normally; the
/// slow line still completes correctly.
#[test]
fn slowloris_half_line_does_not_stall_others() {
    let mut d = Daemon::start(&[]);
    let stop = Arc::new(AtomicBool::new(false));
    let bg = serve_in_background(d.addr, "beside-slowloris", stop.clone());
    let mut slow = d.connect();
    slow.roundtrip(b"set slow 0 0 5\r\nhello\r\n", b"STORED\r\n");
    // `get slow\r\n` is 10 bytes: 4 of them, a second apart (bounded to keep the test short).
    let line = b"get slow\r\n";
    for &b in &line[..4] {
        slow.send(&[b]);
        std::thread::sleep(Duration::from_secs(1));
    }
    // The slow connection answered nothing for half a line...
    slow.stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut buf = [0u8; 16];
    match slow.stream.read(&mut buf) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("a half line was answered: {other:?}"),
    }
    // ...and finishing it gets the right reply.
    slow.roundtrip(&line[4..], b"VALUE slow 0 5\r\nhello\r\nEND\r\n");
    stop.store(true, Ordering::Relaxed);
    let rounds = bg.join().expect("the other client was served");
    assert!(
        rounds >= 50,
        "only {rounds} round trips in 4 s beside the slow client"
    );
    d.assert_alive();
}

/// A client that pipelines 100 MB without reading: storage commands (small replies, so the
/// server reads all of it) and then gets (big replies, so the server must stop reading).
/// The server never buffers the flood (RSS bounded), others are served, and every value it
/// stored is the one last written.
#[test]
fn pipelining_100mb_without_reading_keeps_memory_bounded() {
    let mut d = Daemon::start(&["-m", "64"]);
    let mut c = d.connect();
    c.roundtrip(b"set warm 0 0 1\r\nx\r\n", b"STORED\r\n");
    let rss_before = d.rss();
    let stop = Arc::new(AtomicBool::new(false));
    let bg = serve_in_background(d.addr, "beside-pipeline", stop.clone());

    // 100 MB of `set pipe:<i % 64> 0 0 4000` with distinct values, never reading a reply.
    let flood = TcpStream::connect(d.addr).unwrap();
    let mut w = flood.try_clone().unwrap();
    const VALUE: usize = 4000;
    let total = 100 << 20;
    let per = format!("set pipe:00 0 0 {VALUE}\r\n").len() + VALUE + 2;
    let n = total / per;
    let writer = std::thread::spawn(move || {
        let mut batch = Vec::with_capacity(64 * per);
        for i in 0..n {
            let fill = b'a' + (i % 26) as u8;
            batch.extend_from_slice(format!("set pipe:{:02} 0 0 {VALUE}\r\n", i % 64).as_bytes());
            batch.extend(std::iter::repeat(fill).take(VALUE - 8));
            batch.extend_from_slice(format!("{i:08}\r\n").as_bytes());
            if batch.len() >= 63 * per {
                w.write_all(&batch).unwrap();
                batch.clear();
            }
        }
        w.write_all(&batch).unwrap();
        n
    });
    let mut peak = 0;
    while !writer.is_finished() {
        peak = peak.max(d.rss());
        std::thread::sleep(Duration::from_millis(50));
    }
    writer.join().unwrap();
    // The flood's replies (8 bytes each, about 200 KB) are never read; the values are there.
    let mut check = d.connect();
    for k in 0..64 {
        let last = (0..n).rev().find(|i| i % 64 == k).unwrap();
        let fill = b'a' + (last % 26) as u8;
        let mut value = vec![fill; VALUE - 8];
        value.extend_from_slice(format!("{last:08}").as_bytes());
        let mut expected = format!("VALUE pipe:{k:02} 0 {VALUE}\r\n").into_bytes();
        expected.extend_from_slice(&value);
        expected.extend_from_slice(b"\r\nEND\r\n");
        // The flood's last sets may still be in flight in the server: wait for the last one.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            check.send(format!("get pipe:{k:02}\r\n").as_bytes());
            let got = check.read_exact_n(expected.len());
            if got == expected {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "pipe:{k:02} never got its last value"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    // Now 20 MB of gets of a 4000-byte value (80x the input as output), still never reading:
    // the server must stop reading once its output is over its cap, so this writer blocks.
    let get_flood = TcpStream::connect(d.addr).unwrap();
    get_flood
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut w = get_flood.try_clone().unwrap();
    let gets = b"get pipe:00\r\n".repeat(80_000);
    let mut written = 0;
    for _ in 0..20 {
        match w.write(&gets) {
            Ok(k) => written += k,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) => panic!("writing gets: {e}"),
        }
    }
    assert!(
        written < 20 * gets.len(),
        "the server read all {written} bytes of gets while their replies went unread"
    );
    peak = peak.max(d.rss());
    stop.store(true, Ordering::Relaxed);
    let rounds = bg.join().expect("the other client was served");
    assert!(rounds > 0);
    d.assert_alive();
    // No flood is held in memory: well under the 100 MB sent (item memory is 64 MB at most,
    // and this test's items take about 300 KB of it).
    let grown = peak.saturating_sub(rss_before);
    assert!(
        grown < 32 << 20,
        "server RSS grew by {} MB under a 100 MB pipeline",
        grown >> 20
    );
    drop(flood);
    drop(get_flood);
}

/// A `get` of many keys of 1 MB values: the reply is far larger than the server may buffer; the
/// server must hold its output bound and still send every byte, in order, to a reader that
/// takes its time, while others are served.
///
/// 300 keys (300 MB of reply) rather than the 10,000 (10 GB): the bound is the same,
/// and reading 10 GB over loopback would take minutes on CI's 2 cores.
#[test]
fn multiget_of_1mb_values_holds_output_bound() {
    multiget_holds_output_bound(false);
}

/// The same keys as a quiet meta pipeline (`mg <key> v k q` per key, then `mn`), which tern
/// serves as runs of lines: each run stops at the output bound too. With `-R` high enough
/// that the per-event budget never stops a run first.
#[test]
fn quiet_meta_pipeline_of_1mb_values_holds_output_bound() {
    multiget_holds_output_bound(true);
}

fn multiget_holds_output_bound(meta: bool) {
    let mut d = Daemon::start(&["-m", "128", "-R", "10000"]);
    let mut c = d.connect();
    const VALUE: usize = 1_000_000;
    const DISTINCT: usize = 16;
    const KEYS: usize = 300;
    for k in 0..DISTINCT {
        let mut req = format!("set big:{k:02} {k} 0 {VALUE}\r\n").into_bytes();
        req.extend(std::iter::repeat(b'A' + k as u8).take(VALUE));
        req.extend_from_slice(b"\r\n");
        c.roundtrip(&req, b"STORED\r\n");
    }
    let rss_before = d.rss();
    let stop = Arc::new(AtomicBool::new(false));
    let bg = serve_in_background(d.addr, "beside-multiget", stop.clone());
    let mut line = if meta { Vec::new() } else { b"get".to_vec() };
    for i in 0..KEYS {
        let key = format!("big:{:02}", i % DISTINCT);
        if meta {
            line.extend_from_slice(format!("mg {key} v k q\r\n").as_bytes());
        } else {
            line.extend_from_slice(format!(" {key}").as_bytes());
        }
    }
    line.extend_from_slice(if meta { b"mn\r\n" } else { b"\r\n" });
    c.send(&line);
    // Read nothing for a while: the reply waits, but not in the server's memory.
    std::thread::sleep(Duration::from_millis(1500));
    let rss_waiting = d.rss();
    // Then read it all, checking every value.
    c.stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = std::io::BufReader::with_capacity(1 << 20, &c.stream);
    let mut peak = rss_waiting;
    let mut head = Vec::new();
    let mut value = vec![0u8; VALUE + 2];
    for i in 0..KEYS {
        let k = i % DISTINCT;
        head.clear();
        std::io::BufRead::read_until(&mut reader, b'\n', &mut head).unwrap();
        let header = if meta {
            format!("VA {VALUE} kbig:{k:02}\r\n")
        } else {
            format!("VALUE big:{k:02} {k} {VALUE}\r\n")
        };
        assert_eq!(String::from_utf8_lossy(&head), header);
        reader.read_exact(&mut value).unwrap();
        assert!(value[..VALUE].iter().all(|&b| b == b'A' + k as u8));
        assert_eq!(&value[VALUE..], b"\r\n");
        if i % 50 == 0 {
            peak = peak.max(d.rss());
        }
    }
    let end: &[u8] = if meta { b"MN\r\n" } else { b"END\r\n" };
    let mut got = vec![0u8; end.len()];
    reader.read_exact(&mut got).unwrap();
    assert_eq!(got, end);
    stop.store(true, Ordering::Relaxed);
    let rounds = bg.join().expect("the other client was served");
    assert!(rounds > 0);
    d.assert_alive();
    // Sent in parts, but each key looked up once (the other client's gets all hit too).
    let stats = c.stats("");
    let lookups = Some((KEYS + rounds).to_string());
    assert_eq!(stat_value(&stats, "get_hits"), lookups);
    assert_eq!(stat_value(&stats, "cmd_get"), lookups);
    let grown = rss_waiting.max(peak).saturating_sub(rss_before);
    eprintln!(
        "{} MB multi-get reply: server RSS grew by {} MB",
        (KEYS * VALUE) >> 20,
        grown >> 20
    );
    assert!(
        grown < 64 << 20,
        "server RSS grew by {} MB for a {} MB multi-get reply",
        grown >> 20,
        (KEYS * VALUE) >> 20
    );
}

/// A client that resets (SO_LINGER 0) in the middle of a value leaves the key as memcached
/// does: an existing item keeps its old value, a new key stays absent. A reset in the middle
/// of a large reply harms no one either.
#[test]
fn reset_mid_value_leaves_key_intact_or_absent() {
    let mut d = Daemon::start(&[]);
    let mut c = d.connect();
    c.roundtrip(b"set old 3 0 5\r\nfirst\r\n", b"STORED\r\n");
    for key in ["old", "new"] {
        let s = TcpStream::connect(d.addr).unwrap();
        let mut w = &s;
        w.write_all(format!("set {key} 0 0 100000\r\n").as_bytes())
            .unwrap();
        w.write_all(&[b'z'; 50_000]).unwrap();
        // Let the server read the half value before the reset.
        std::thread::sleep(Duration::from_millis(100));
        socket2::SockRef::from(&s)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(s);
    }
    // Reset while a 1 MB reply is being sent.
    let mut big = b"set huge 0 0 1000000\r\n".to_vec();
    big.extend(std::iter::repeat(b'h').take(1_000_000));
    big.extend_from_slice(b"\r\n");
    c.roundtrip(&big, b"STORED\r\n");
    for _ in 0..3 {
        let s = TcpStream::connect(d.addr).unwrap();
        (&s).write_all(b"get huge huge huge huge\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        socket2::SockRef::from(&s)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(s);
    }
    std::thread::sleep(Duration::from_millis(100));
    d.assert_alive();
    c.roundtrip(b"get old\r\n", b"VALUE old 3 5\r\nfirst\r\nEND\r\n");
    c.roundtrip(b"get new\r\n", b"END\r\n");
    // The aborted connections are gone, not leaked.
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.stat("curr_connections") != "1" {
        assert!(Instant::now() < deadline, "reset connections never reaped");
        std::thread::sleep(Duration::from_millis(20));
    }
    served(&mut c, "after-reset", 0);
}

/// A small seeded generator (xorshift64*): the same garbage on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Random bytes, biased towards the protocols' own vocabulary so more of them get past
    /// the first checks.
    fn garbage(&mut self, binary: bool, len: usize) -> Vec<u8> {
        const WORDS: [&[u8]; 16] = [
            b"get ",
            b"set ",
            b"gets ",
            b"cas ",
            b"incr ",
            b"decr ",
            b"touch ",
            b"gat ",
            b"delete ",
            b"append ",
            b"stats ",
            b"\r\n",
            b" 0 ",
            b" 4294967295 ",
            b"noreply",
            b"verbosity ",
        ];
        let mut v = Vec::with_capacity(len + 32);
        if binary {
            v.push(0x80);
        }
        while v.len() < len {
            match self.below(4) {
                0 if !binary => v.extend_from_slice(WORDS[self.below(WORDS.len())]),
                1 if binary => {
                    // A header with a random opcode and small lengths, then random bytes.
                    let mut op = self.below(0x70) as u8;
                    if matches!(op, 0x08 | 0x18) {
                        op = 0x30; // never FLUSH the keepers
                    }
                    let ext = self.below(24) as u8;
                    let key = self.below(40) as u16;
                    let body = u32::from(ext) + u32::from(key) + self.below(64) as u32;
                    v.push(0x80);
                    v.push(op);
                    v.extend_from_slice(&key.to_be_bytes());
                    v.push(ext);
                    v.extend_from_slice(&[0, 0, 0]);
                    v.extend_from_slice(&body.to_be_bytes());
                    v.extend_from_slice(&self.next().to_be_bytes()[..4]);
                    v.extend_from_slice(&self.next().to_be_bytes());
                }
                _ => {
                    let b = self.next().to_le_bytes();
                    v.extend_from_slice(&b[..1 + self.below(8)]);
                }
            }
        }
        // Never `flush_all` the keepers by chance.
        while let Some(p) = v.windows(5).position(|w| w == b"flush") {
            v[p] = b'F';
        }
        v
    }
}

/// Seeded random garbage on the text and binary protocols, over many connections and in
/// random pieces: the server survives, and other clients keep their data and service.
#[test]
fn random_garbage_never_kills_the_server_or_touches_other_data() {
    let mut d = Daemon::start(&["-m", "64"]);
    let mut keeper = d.connect();
    store_keepers(&mut keeper, 200);
    let stop = Arc::new(AtomicBool::new(false));
    let bg = serve_in_background(d.addr, "beside-garbage", stop.clone());
    let mut rng = Rng(0x7e57_ab05e_u64);
    let started = Instant::now();
    let mut sent = 0usize;
    for conn in 0..300 {
        let binary = conn % 2 == 1;
        let len = 2_000 + rng.below(30_000);
        let bytes = rng.garbage(binary, len);
        let s = TcpStream::connect(d.addr).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
        let reader = s.try_clone().unwrap();
        // Drain replies so a garbage connection is never stalled by its own output.
        let drain = std::thread::spawn(move || {
            let mut r = reader;
            r.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            let mut buf = [0u8; 65536];
            while matches!(r.read(&mut buf), Ok(n) if n > 0) {}
        });
        let mut pos = 0;
        while pos < bytes.len() {
            let end = (pos + 1 + rng.below(4096)).min(bytes.len());
            // The server may close a garbage connection at any point.
            if (&s).write_all(&bytes[pos..end]).is_err() {
                break;
            }
            pos = end;
        }
        sent += pos;
        let _ = s.shutdown(std::net::Shutdown::Write);
        drain.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let rounds = bg.join().expect("the other client was served");
    assert!(rounds > 0);
    d.assert_alive();
    check_keepers(&mut keeper, 200);
    served(&mut keeper, "after-garbage", 1);
    let stats = keeper.stats("");
    assert!(stat_value(&stats, "total_connections").is_some());
    eprintln!(
        "{sent} bytes of garbage over 300 connections in {:?}",
        started.elapsed()
    );
}

/// `-c` reached: new connections are refused with memcached's error while every existing one
/// keeps being served with its data intact; freed slots are usable again.
#[test]
fn connection_limit_reached_keeps_existing_clients_served() {
    let mut d = Daemon::start(&["-c", "40"]);
    let mut keeper = d.connect();
    store_keepers(&mut keeper, 50);
    let stop = Arc::new(AtomicBool::new(false));
    let bg = serve_in_background(d.addr, "beside-limit", stop.clone());
    // Fill every remaining slot, then refuse more, many times over.
    let mut held = Vec::new();
    let mut refused = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while refused < 200 {
        assert!(Instant::now() < deadline, "the limit was never reached");
        let mut s = TcpStream::connect(d.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        s.write_all(b"version\r\n").unwrap();
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(n) if buf[..n].starts_with(b"VERSION ") => held.push(s),
            Ok(n) => {
                assert_eq!(&buf[..n], b"ERROR Too many open connections\r\n");
                refused += 1;
            }
            // Refused and closed before our request arrived.
            Err(e) if e.kind() == ErrorKind::ConnectionReset => refused += 1,
            Err(e) => panic!("connection neither served nor refused: {e}"),
        }
    }
    // The keeper, the background client and the held ones fill -c 40 (memcached counts its
    // listener too: at most 39 clients).
    assert!(
        held.len() >= 30,
        "only {} connections were accepted",
        held.len()
    );
    check_keepers(&mut keeper, 50);
    for s in &mut held {
        s.write_all(b"get keep:7\r\n").unwrap();
        let mut buf = [0u8; 128];
        let n = s.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], keeper_reply(7));
    }
    held.truncate(held.len() - 5);
    std::thread::sleep(Duration::from_millis(200));
    let mut again = d.connect();
    again.roundtrip(b"get keep:3\r\n", &keeper_reply(3));
    stop.store(true, Ordering::Relaxed);
    let rounds = bg.join().expect("the other client was served");
    assert!(rounds > 0);
    d.assert_alive();
}

/// Seeded random datagrams on UDP (memcached's 8-byte frame header, then garbage, or garbage
/// alone): the server survives, TCP clients keep their data, and a well-formed UDP request is
/// still answered.
#[test]
fn random_udp_datagrams_never_kill_the_server() {
    let mut d = Daemon::start(&["-U", "-1"]);
    let mut keeper = d.connect();
    store_keepers(&mut keeper, 50);
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.connect(("127.0.0.1", d.udp_port.expect("a UDP port")))
        .unwrap();
    let mut rng = Rng(0x0dd_da7a);
    for i in 0..3_000u16 {
        let mut datagram = Vec::new();
        if i % 3 != 0 {
            // A plausible frame header: request id, sequence 0, 1 datagram, reserved 0.
            datagram.extend_from_slice(&i.to_be_bytes());
            datagram.extend_from_slice(&[0, 0, 0, 1, 0, 0]);
        }
        let len = rng.below(1_400);
        datagram.extend(rng.garbage(i % 2 == 1, len));
        datagram.truncate(1_400);
        let _ = udp.send(&datagram);
    }
    std::thread::sleep(Duration::from_millis(200));
    d.assert_alive();
    check_keepers(&mut keeper, 50);
    // Drain whatever the garbage was answered, then one good request.
    udp.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 2048];
    while udp.recv(&mut buf).is_ok() {}
    udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut frame = vec![0xab, 0xcd, 0, 0, 0, 1, 0, 0];
    frame.extend_from_slice(b"get keep:4\r\n");
    udp.send(&frame).unwrap();
    let n = udp.recv(&mut buf).expect("a UDP reply");
    assert_eq!(&buf[..8], &[0xab, 0xcd, 0, 0, 0, 1, 0, 0]);
    assert_eq!(&buf[8..n], keeper_reply(4));
    served(&mut keeper, "after-udp-garbage", 2);
}
