//! Memory per connection, measured on the `tern` binary from the outside: idle connections cost
//! a few hundred bytes (their buffers go back to the worker's pool once a request is answered),
//! and closing them gives the memory back.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Child;
use std::time::{Duration, Instant};

use common::{stat_value, Client};

/// Idle connections opened by the test (fewer if the descriptor limit does not allow them).
const CONNECTIONS: usize = 2000;
/// What one idle connection may add to tern's RSS. tern with a 16 KiB input buffer and a
/// 16 KiB output buffer per connection grew ~12,800 B per connection; with pooled buffers it
/// grows ~370 B (memcached 1.6.18: ~640 B). 4 KiB fails the former by 3x and leaves the latter
/// 10x headroom for allocator noise.
const MAX_BYTES_PER_IDLE_CONNECTION: u64 = 4096;
/// What may stay resident once every connection is closed: the allocator's per-thread arenas
/// keep tens of KiB each whatever the connection count. The 16+16 KiB buffers kept ~25 MB here.
const MAX_RESIDUE_AFTER_CLOSE: u64 = 1024 * 1024;

/// tern started as a process on a port the system chose (`-p -1`), killed when dropped.
struct Daemon {
    child: Child,
    addr: SocketAddr,
}

impl Daemon {
    fn start(args: &[&str]) -> Daemon {
        let mut all = vec!["-p", "-1", "-l", "127.0.0.1", "-U", "0"];
        all.extend_from_slice(args);
        let (child, ports) = common::spawn_tern(&all, false);
        let port = common::port_in(&ports, "TCP").expect("a TCP port in the port file");
        Daemon {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    /// Resident memory (VmRSS) in bytes.
    fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc/<pid>/status");
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS in /proc/<pid>/status");
        kb * 1024
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const GET: &[u8] = b"get connmem\r\n";
const HIT: &[u8] = b"VALUE connmem 0 32\r\nvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv\r\nEND\r\n";

/// Opens a connection, sends one get and reads its reply; the connection stays open.
fn one_get(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(GET).unwrap();
    let mut reply = vec![0; HIT.len()];
    s.read_exact(&mut reply).expect("reply to get");
    assert_eq!(reply, HIT);
    s
}

/// Waits until `stats` reports `want` open connections.
fn wait_connections(control: &mut Client, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now: u64 = stat_value(&control.stats(""), "curr_connections")
            .expect("curr_connections in stats")
            .parse()
            .unwrap();
        if now == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "curr_connections stays at {now}, expected {want}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Raises this process's descriptor limit as far as allowed; returns how many connections fit.
fn connections_that_fit() -> usize {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    if soft < hard {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
    let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    CONNECTIONS.min(soft.saturating_sub(100) as usize)
}

#[test]
fn idle_connections_cost_little_memory_and_closing_gives_it_back() {
    let n = connections_that_fit();
    assert!(n >= 500, "descriptor limit too low for the test: {n}");
    let limit = (n + 100).to_string();
    let tern = Daemon::start(&["-t", "2", "-c", &limit]);
    let mut control = Client::connect(tern.addr);
    control.roundtrip(
        b"set connmem 0 0 32\r\nvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv\r\n",
        b"STORED\r\n",
    );
    // One connection per worker first, so each worker has allocated what it keeps whatever its
    // connection count (its buffer pool, its allocator arena).
    drop([one_get(tern.addr), one_get(tern.addr)]);
    wait_connections(&mut control, 1);
    std::thread::sleep(Duration::from_millis(300));
    let start = tern.rss();

    let mut conns = Vec::with_capacity(n);
    while conns.len() < n {
        // In batches, so the accept queue never overflows.
        let batch = (n - conns.len()).min(100);
        for _ in 0..batch {
            conns.push(one_get(tern.addr));
        }
    }
    wait_connections(&mut control, 1 + n as u64);
    let open = tern.rss();
    let per_connection = open.saturating_sub(start) / n as u64;
    assert!(
        per_connection < MAX_BYTES_PER_IDLE_CONNECTION,
        "{n} idle connections grew RSS from {start} to {open} bytes: {per_connection} B each"
    );

    drop(conns);
    wait_connections(&mut control, 1);
    // Workers return freed memory when they next go idle; allow them a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut after = tern.rss();
    while after > start + MAX_RESIDUE_AFTER_CLOSE && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        after = tern.rss();
    }
    assert!(
        after <= start + MAX_RESIDUE_AFTER_CLOSE,
        "RSS {start} bytes before {n} connections, {open} with them open, {after} after close"
    );
}
