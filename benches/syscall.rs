//! What the kernel charges per system call and per loopback round trip on this machine: the
//! floor under CPU per request for one request in flight (docs/performance.md, "Many cores").
//!
//! `cargo bench --bench syscall` prints nanoseconds per operation for:
//! - `getppid`: a system call that does nothing, i.e. entry and exit alone (what io_uring's
//!   batching would save per call);
//! - `recv EAGAIN`: a `recv` on an empty non-blocking TCP socket (entry, exit, the socket lookup);
//! - `send+recv, one thread`: 32 bytes over a loopback TCP connection and read back by the same
//!   thread (the TCP path both ways, no wake-up);
//! - `round trip, two threads`: 32 bytes to a thread that echoes them, both blocking (what one
//!   request in flight costs the two sides together, wake-ups included), as CPU time of both
//!   threads and as wall time.
//!
//! Loopback only; each measurement runs a fixed number of operations and stops.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// This thread's CPU time (user + system).
fn thread_cpu() -> Duration {
    // SAFETY: clock_gettime only writes the zeroed timespec it is given.
    unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }
}

fn report(name: &str, ops: u32, cpu: Duration, wall: Duration) {
    println!(
        "| {name} | {:.0} | {:.0} |",
        cpu.as_nanos() as f64 / f64::from(ops),
        wall.as_nanos() as f64 / f64::from(ops)
    );
}

fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let a = TcpStream::connect(listener.local_addr().unwrap()).expect("connect");
    let (b, _) = listener.accept().expect("accept");
    a.set_nodelay(true).unwrap();
    b.set_nodelay(true).unwrap();
    (a, b)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists benchmarks; there are none to list.
    }
    const N: u32 = 200_000;
    println!("| operation | CPU ns/op | wall ns/op |");
    println!("|---|---:|---:|");

    let (c0, w0) = (thread_cpu(), Instant::now());
    for _ in 0..N {
        // SAFETY: getppid takes nothing and cannot fail.
        std::hint::black_box(unsafe { libc::getppid() });
    }
    report("getppid", N, thread_cpu() - c0, w0.elapsed());

    let (mut a, mut b) = pair();
    b.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 64];
    let (c0, w0) = (thread_cpu(), Instant::now());
    for _ in 0..N {
        let r = b.read(&mut buf);
        assert!(matches!(r, Err(ref e) if e.kind() == ErrorKind::WouldBlock));
    }
    report("recv EAGAIN", N, thread_cpu() - c0, w0.elapsed());

    let msg = [b'x'; 32];
    let (c0, w0) = (thread_cpu(), Instant::now());
    for _ in 0..N {
        a.write_all(&msg).unwrap();
        let mut got = 0;
        while got < msg.len() {
            match b.read(&mut buf[got..msg.len()]) {
                Ok(n) => got += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                Err(e) => panic!("read: {e}"),
            }
        }
    }
    report("send+recv, one thread", N, thread_cpu() - c0, w0.elapsed());
    let _ = b.as_raw_fd();

    let (mut a, b) = pair();
    let echo = std::thread::spawn(move || {
        let mut b = b;
        let mut buf = [0u8; 32];
        let c0 = thread_cpu();
        while b.read_exact(&mut buf).is_ok() {
            if b.write_all(&buf).is_err() {
                break;
            }
        }
        thread_cpu() - c0
    });
    let trips = N / 4;
    let (c0, w0) = (thread_cpu(), Instant::now());
    for _ in 0..trips {
        a.write_all(&msg).unwrap();
        a.read_exact(&mut buf[..32]).unwrap();
    }
    let (mine, wall) = (thread_cpu() - c0, w0.elapsed());
    drop(a);
    let theirs = echo.join().unwrap();
    report("round trip, two threads", trips, mine + theirs, wall);
}
