//! Shared helpers for integration tests: start tern in-process on port 0 with a manual clock,
//! or a real memcached for differential runs, and talk raw bytes to either.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tern::clock::Clock;
use tern::config::Settings;
use tern::server::{self, ServerHandle};

/// How long a test waits for bytes that should come.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a test waits to be sure nothing more comes.
pub const QUIET_WAIT: Duration = Duration::from_millis(150);

/// A tern server running in this process.
pub struct Tern {
    pub handle: ServerHandle,
    pub clock: Arc<Clock>,
}

impl Tern {
    /// Starts tern on 127.0.0.1, port 0, with `settings` adjusted by `tweak`.
    pub fn start_with(tweak: impl FnOnce(&mut Settings)) -> Tern {
        let mut settings = Settings {
            port: tern::config::ListenPort::Ephemeral,
            listen: vec!["127.0.0.1".into()],
            threads: 2,
            ..Settings::default()
        };
        tweak(&mut settings);
        let clock = Arc::new(Clock::manual(1_700_000_000));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let handle = server::start_on(settings, vec![listener], clock.clone()).expect("start tern");
        Tern { handle, clock }
    }

    /// Starts tern with default settings.
    pub fn start() -> Tern {
        Self::start_with(|_| {})
    }

    pub fn addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.addr())
    }
}

/// A real memcached started for a differential run.
pub struct Memcached {
    child: Child,
    pub addr: SocketAddr,
}

impl Memcached {
    /// Starts `memcached` (from `TERN_DIFF_MEMCACHED`, or PATH) on a free loopback port.
    pub fn start(extra: &[&str]) -> Memcached {
        let bin = std::env::var("TERN_DIFF_MEMCACHED")
            .ok()
            .filter(|v| v != "1")
            .unwrap_or_else(|| "memcached".into());
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let child = Command::new(bin)
            .args([
                "-p",
                &port.to_string(),
                "-l",
                "127.0.0.1",
                "-U",
                "0",
                "-t",
                "2",
                "-u",
                "nobody",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start memcached");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + REPLY_TIMEOUT;
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "memcached did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Memcached { child, addr }
    }
}

impl Drop for Memcached {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the opt-in differential run against a real memcached is asked for.
pub fn differential() -> bool {
    std::env::var_os("TERN_DIFF_MEMCACHED").is_some()
}

/// A raw-bytes client.
pub struct Client {
    pub stream: TcpStream,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).unwrap();
        Client { stream }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Reads exactly `n` bytes (or fails after the timeout).
    pub fn read_exact_n(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        self.stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        let mut got = 0;
        while got < n {
            match self.stream.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(k) => got += k,
                Err(e) => panic!(
                    "reading reply: {e}; got so far {:?}",
                    String::from_utf8_lossy(&buf[..got])
                ),
            }
        }
        buf.truncate(got);
        buf
    }

    /// Reads whatever arrives until the connection is quiet for a moment.
    pub fn read_available(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        self.stream.set_read_timeout(Some(QUIET_WAIT)).unwrap();
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(_) => break,
            }
        }
        out
    }

    /// Sends `request` and asserts the reply is exactly `expected` (and nothing more follows).
    pub fn roundtrip(&mut self, request: &[u8], expected: &[u8]) {
        self.send(request);
        self.expect(expected);
    }

    /// Asserts the next bytes are exactly `expected` and nothing more follows quickly.
    pub fn expect(&mut self, expected: &[u8]) {
        let got = self.read_exact_n(expected.len());
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(expected),
        );
        let extra = self.read_available();
        assert!(
            extra.is_empty(),
            "unexpected extra bytes: {:?}",
            String::from_utf8_lossy(&extra)
        );
    }

    /// Whether the server has closed the connection (reads EOF within the timeout).
    pub fn is_closed(&mut self) -> bool {
        self.stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        let mut buf = [0u8; 1024];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }

    /// Reads a `stats` reply into (name, value) pairs.
    pub fn stats(&mut self, group: &str) -> Vec<(String, String)> {
        let cmd = if group.is_empty() {
            "stats\r\n".to_string()
        } else {
            format!("stats {group}\r\n")
        };
        self.send(cmd.as_bytes());
        let mut text = Vec::new();
        let mut buf = [0u8; 65536];
        self.stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        while !text.ends_with(b"END\r\n") {
            let n = self.stream.read(&mut buf).expect("stats reply");
            assert!(n > 0, "closed during stats");
            text.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(text)
            .unwrap()
            .lines()
            .filter_map(|l| l.strip_prefix("STAT "))
            .map(|l| {
                let (k, v) = l.split_once(' ').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    pub fn stat(&mut self, name: &str) -> String {
        stat_value(&self.stats(""), name).unwrap_or_else(|| panic!("no stat {name}"))
    }
}

/// The value of stat `name` in a `stats` reply read by [`Client::stats`].
pub fn stat_value(stats: &[(String, String)], name: &str) -> Option<String> {
    stats
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

/// Starts the `tern` binary as memcached's own test harness starts memcached: the caller's
/// `args` (with `-p -1` / `-U -1` for ports the system chooses) and `MEMCACHED_PORT_FILENAME`,
/// which tern fills with lines like `TCP INET: 40123`. Returns the process and those lines, so
/// parallel tests never race for a port. `output` keeps stdout and stderr for the caller.
pub fn spawn_tern(args: &[&str], output: bool) -> (Child, String) {
    static STARTED: AtomicUsize = AtomicUsize::new(0);
    let ports_file = std::env::temp_dir().join(format!(
        "tern-ports-{}-{}",
        std::process::id(),
        STARTED.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_file(&ports_file);
    let stdio = || {
        if output {
            Stdio::piped()
        } else {
            Stdio::null()
        }
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_tern"))
        .args(args)
        .env("MEMCACHED_PORT_FILENAME", &ports_file)
        .stdin(Stdio::null())
        .stdout(stdio())
        .stderr(stdio())
        .spawn()
        .expect("spawn tern");
    let deadline = Instant::now() + Duration::from_secs(10);
    let ports = loop {
        if let Ok(text) = std::fs::read_to_string(&ports_file) {
            break text;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("tern exited with {status} when started with {args:?}");
        }
        assert!(
            Instant::now() < deadline,
            "tern did not start with {args:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = std::fs::remove_file(&ports_file);
    (child, ports)
}

/// The port a port file (see [`spawn_tern`]) names for `transport` (`TCP` or `UDP`).
pub fn port_in(ports: &str, transport: &str) -> Option<u16> {
    ports
        .lines()
        .find(|l| l.starts_with(transport))
        .and_then(|l| l.rsplit(' ').next())
        .map(|p| p.parse::<u16>().expect("a port number"))
}
