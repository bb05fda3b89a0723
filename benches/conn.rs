//! The user-space cost of a request, socket excluded: `Conn::drive` serving one request at a
//! time from memory against a filled store, for each protocol's common reads and writes.
//!
//! `cargo bench --bench conn` (criterion; each reports requests per second). A loopback run
//! adds about two system calls per request to these figures (a read and a write); the
//! side-by-side harness measures the whole (docs/performance.md). With `TERN_CONN_WORKLOAD`
//! and `TERN_CONN_REQUESTS` set it serves that many requests of one workload and exits, for
//! counting instructions (cachegrind) rather than timing.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, Criterion, Throughput};
use tern::clock::Clock;
use tern::config::Settings;
use tern::server::stats::ThreadStats;
use tern::server::{self, BufferPool, Conn, Next, Shared};

const KEYS: usize = 100_000;
/// Distinct requests per workload, taken in turn (keys spread over the store as a client's).
const VARIANTS: usize = 4096;

/// One request's bytes in, then `WouldBlock`; replies counted and dropped.
struct Pipe<'a> {
    input: &'a [u8],
    written: usize,
}

impl Read for Pipe<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.input.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = self.input.len().min(buf.len());
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input = &self.input[n..];
        Ok(n)
    }
}

impl Write for Pipe<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn key(i: usize) -> String {
    format!("key:{:09}", i * 7919 % KEYS)
}

/// The binary protocol's request header and body for `opcode` (get 0x00, set 0x01).
fn binary(opcode: u8, key: &[u8], extras: &[u8], value: &[u8]) -> Vec<u8> {
    let body = extras.len() + key.len() + value.len();
    let mut v = vec![0x80, opcode];
    v.extend_from_slice(&(key.len() as u16).to_be_bytes());
    v.push(extras.len() as u8);
    v.extend_from_slice(&[0, 0, 0]);
    v.extend_from_slice(&(body as u32).to_be_bytes());
    v.extend_from_slice(&[0; 12]);
    v.extend_from_slice(extras);
    v.extend_from_slice(key);
    v.extend_from_slice(value);
    v
}

/// `VARIANTS` requests of one workload; `i` numbers the request, each naming its own keys.
fn requests(workload: &str) -> Vec<Vec<u8>> {
    let value = [b'v'; 32];
    (0..VARIANTS)
        .map(|i| match workload {
            "text_get" => format!("get {}\r\n", key(i)).into_bytes(),
            "text_set" => {
                let mut v = format!("set {} 0 0 32\r\n", key(i)).into_bytes();
                v.extend_from_slice(&value);
                v.extend_from_slice(b"\r\n");
                v
            }
            "text_multiget10" => {
                let keys: Vec<String> = (0..10).map(|k| key(i * 10 + k)).collect();
                format!("get {}\r\n", keys.join(" ")).into_bytes()
            }
            "meta_get" => format!("mg {} v\r\n", key(i)).into_bytes(),
            "meta_set" => {
                let mut v = format!("ms {} 32\r\n", key(i)).into_bytes();
                v.extend_from_slice(&value);
                v.extend_from_slice(b"\r\n");
                v
            }
            "meta_multiget10" => {
                let mut v = String::new();
                for k in 0..10 {
                    v.push_str(&format!("mg {} v k q\r\n", key(i * 10 + k)));
                }
                v.push_str("mn\r\n");
                v.into_bytes()
            }
            "binary_get" => binary(0x00, key(i).as_bytes(), &[], &[]),
            "binary_set" => binary(0x01, key(i).as_bytes(), &[0; 8], &value),
            _ => unreachable!("no workload {workload}"),
        })
        .collect()
}

fn filled() -> server::ServerHandle {
    let mut settings = Settings {
        threads: 1,
        ..Settings::default()
    };
    settings.store.memory_limit = 64 << 20;
    let clock = Arc::new(Clock::manual(1_700_000_000));
    let handle = server::start_on(settings, server::Listeners::default(), clock).expect("start");
    let fill: Vec<u8> = (0..KEYS)
        .flat_map(|i| {
            let mut v = format!("set key:{i:09} 0 0 32 noreply\r\n").into_bytes();
            v.extend_from_slice(&[b'v'; 32]);
            v.extend_from_slice(b"\r\n");
            v
        })
        .collect();
    let stats = ThreadStats::default();
    let mut pool = BufferPool::new();
    let mut conn = Conn::new();
    let mut pipe = Pipe {
        input: &fill,
        written: 0,
    };
    while !pipe.input.is_empty() {
        drive(&mut conn, &mut pipe, handle.shared(), &stats, &mut pool);
    }
    handle
}

fn drive(
    conn: &mut Conn,
    pipe: &mut Pipe<'_>,
    shared: &Shared,
    stats: &ThreadStats,
    pool: &mut BufferPool,
) {
    match conn.drive(pipe, shared, stats, pool, false) {
        Next::Wait | Next::Yield => {}
        Next::Close | Next::Watch(_) => panic!("the connection closed"),
    }
}

fn bench(c: &mut Criterion) {
    let handle = filled();
    let shared = handle.shared();
    let mut g = c.benchmark_group("conn");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_secs(1));
    for workload in [
        "text_get",
        "meta_get",
        "binary_get",
        "text_set",
        "meta_set",
        "binary_set",
        "text_multiget10",
        "meta_multiget10",
    ] {
        let reqs = requests(workload);
        let stats = ThreadStats::default();
        let mut pool = BufferPool::new();
        let mut conn = Conn::new();
        let mut i = 0;
        g.bench_function(workload, |b| {
            b.iter(|| {
                i = (i + 1) % VARIANTS;
                let mut pipe = Pipe {
                    input: &reqs[i],
                    written: 0,
                };
                drive(&mut conn, &mut pipe, shared, &stats, &mut pool);
                assert!(pipe.written > 0, "{workload}: no reply");
                pipe.written
            })
        });
    }
    g.finish();
}

/// A fixed number of requests of one workload, outside criterion, for instruction counters:
/// `TERN_CONN_WORKLOAD=<workload> TERN_CONN_REQUESTS=<n>` (see docs/performance.md).
fn count(workload: &str, n: usize) {
    let handle = filled();
    let reqs = requests(workload);
    let stats = ThreadStats::default();
    let mut pool = BufferPool::new();
    let mut conn = Conn::new();
    let mut written = 0;
    for i in 0..n {
        let mut pipe = Pipe {
            input: &reqs[i % VARIANTS],
            written: 0,
        };
        drive(&mut conn, &mut pipe, handle.shared(), &stats, &mut pool);
        written += pipe.written;
    }
    println!("{workload}: {n} requests, {written} bytes of replies");
}

criterion_group!(benches, bench);

fn main() {
    if let (Ok(workload), Ok(n)) = (
        std::env::var("TERN_CONN_WORKLOAD"),
        std::env::var("TERN_CONN_REQUESTS"),
    ) {
        return count(&workload, n.parse().expect("TERN_CONN_REQUESTS: a number"));
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
