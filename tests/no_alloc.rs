//! The get/set hot path allocates nothing per request.
//!
//! A counting global allocator sees every allocation in this process: the in-process server's
//! worker threads and the test's client alike. After a warm-up (connections accepted, buffers
//! grown, keys stored once), thousands of small gets and sets must not allocate at all: buffers
//! are reused, replies are composed in place, items are written into slab memory.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use common::Tern;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: defers every operation to the system allocator unchanged; it only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which we pass on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` through `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as for `alloc`; `ptr` came from `System` with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Sends one batch and reads exactly `reply_len` bytes back, into buffers owned by the caller.
fn exchange(stream: &mut std::net::TcpStream, req: &[u8], reply: &mut [u8]) {
    stream.write_all(req).unwrap();
    stream.read_exact(reply).unwrap();
}

#[test]
fn small_get_and_set_do_not_allocate_per_request() {
    // One after the other, in one test: the allocation counter is process-wide.
    get_and_set_rounds(false);
    // With `-o metrics_listen`, every request is also recorded in the latency histograms.
    get_and_set_rounds(true);
}

fn get_and_set_rounds(metrics: bool) {
    let tern = Tern::start_with(|s| {
        s.threads = 2;
        if metrics {
            s.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
        }
    });
    let mut c = tern.connect();
    const KEYS: usize = 64;
    let mut sets = Vec::new();
    let mut gets = Vec::new();
    let mut get_reply_len = 0;
    for i in 0..KEYS {
        sets.extend(format!("set key:{i:04} 0 0 32\r\n{:032}\r\n", i).into_bytes());
        gets.extend(format!("get key:{i:04}\r\n").into_bytes());
        get_reply_len += format!("VALUE key:{i:04} 0 32\r\n{:032}\r\nEND\r\n", i).len();
    }
    let mut set_reply = vec![0u8; KEYS * b"STORED\r\n".len()];
    let mut get_reply = vec![0u8; get_reply_len];
    // Warm up: first use of every buffer, every key stored once.
    for _ in 0..20 {
        exchange(&mut c.stream, &sets, &mut set_reply);
        exchange(&mut c.stream, &gets, &mut get_reply);
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    const ROUNDS: usize = 150;
    for _ in 0..ROUNDS {
        exchange(&mut c.stream, &sets, &mut set_reply);
        exchange(&mut c.stream, &gets, &mut get_reply);
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert!(set_reply.starts_with(b"STORED\r\n"));
    assert!(get_reply.starts_with(b"VALUE key:"));
    let requests = (ROUNDS * KEYS * 2) as u64;
    // Background threads (the timer's store maintenance) may allocate a handful of times;
    // anything per request would show up as thousands.
    assert!(
        allocations < 50,
        "{allocations} allocations for {requests} requests (metrics: {metrics})"
    );
}

/// The meta protocol's hot path allocates nothing either: `ms`, `mg k v`, base64 keys
/// (decoded on the stack), and a quiet `mg … q` pipeline closed by `mn`.
#[test]
fn meta_get_and_set_do_not_allocate_per_request() {
    let tern = Tern::start_with(|s| s.threads = 2);
    let mut c = tern.connect();
    const KEYS: usize = 64;
    let mut sets = Vec::new();
    let mut gets = Vec::new();
    let mut get_reply_len = 0;
    let mut quiet = Vec::new();
    let mut quiet_reply_len = 0;
    for i in 0..KEYS {
        sets.extend(format!("ms key:{i:04} 32 T0 F7\r\n{:032}\r\n", i).into_bytes());
        gets.extend(format!("mg key:{i:04} v f c k\r\n").into_bytes());
        // Half the quiet gets miss (their EN is hidden).
        if i % 2 == 0 {
            quiet.extend(format!("mg key:{i:04} v q\r\n").into_bytes());
            quiet_reply_len += format!("VA 32\r\n{:032}\r\n", i).len();
        } else {
            quiet.extend(format!("mg nokey:{i:04} v q\r\n").into_bytes());
        }
    }
    quiet.extend_from_slice(b"mg a2V5OjAwMDA= b s\r\nmn\r\n");
    quiet_reply_len += b"HD s32\r\nMN\r\n".len();
    let mut set_reply = vec![0u8; KEYS * b"HD\r\n".len()];
    // Warm up once to learn the reply length (the CAS uniques' digits vary).
    exchange(&mut c.stream, &sets, &mut set_reply);
    c.stream.write_all(&gets).unwrap();
    let sample = c.read_available();
    get_reply_len += sample.len();
    let mut get_reply = vec![0u8; get_reply_len];
    let mut quiet_reply = vec![0u8; quiet_reply_len];
    for _ in 0..20 {
        exchange(&mut c.stream, &gets, &mut get_reply);
        exchange(&mut c.stream, &quiet, &mut quiet_reply);
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    const ROUNDS: usize = 150;
    for _ in 0..ROUNDS {
        exchange(&mut c.stream, &gets, &mut get_reply);
        exchange(&mut c.stream, &quiet, &mut quiet_reply);
    }
    // Sets change the CAS uniques (and so the reply length): run them apart.
    for _ in 0..ROUNDS {
        exchange(&mut c.stream, &sets, &mut set_reply);
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert!(set_reply.starts_with(b"HD\r\n"));
    assert!(get_reply.starts_with(b"VA 32 f7 c"), "{get_reply:?}");
    assert!(quiet_reply.ends_with(b"HD s32\r\nMN\r\n"));
    let requests = (ROUNDS * KEYS * 3) as u64;
    assert!(
        allocations < 50,
        "{allocations} allocations for {requests} requests"
    );
}
