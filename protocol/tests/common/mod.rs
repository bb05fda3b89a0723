//! What the protocol crate's differential tests share: a deterministic generator, the
//! memcached to compare with (started when asked to), and one request/first-line exchange.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A small deterministic generator (xorshift64*), so failures reproduce.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// memcached's first reply line, `None` for silence, `Some("<closed>")` for a close.
///
/// A `version` command follows every request that should be complete, so silence shows as
/// memcached's `VERSION` line instead of a timeout; only an incomplete request or a close
/// waits for the (long, so a loaded machine does not flake) timeout.
pub fn ask(addr: &str, bytes: &[u8], sentinel: bool) -> Option<String> {
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

/// A memcached this test started; killed when dropped.
pub struct Spawned(std::process::Child);

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The address of the memcached to compare with, starting one when asked to.
pub fn memcached_addr(setting: &str) -> (String, Option<Spawned>) {
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
