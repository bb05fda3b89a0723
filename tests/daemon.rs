//! The `tern` binary itself: memcached's flags and their rejections, the conf file, the pid
//! file, the connection limit with real sockets, the Unix socket and signals.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{stat_value, Client};

const TERN: &str = env!("CARGO_BIN_EXE_tern");

fn run(args: &[&str]) -> Output {
    Command::new(TERN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run tern")
}

/// A tern process, killed when dropped. It listens on ports the system chose (`-p -1`, as
/// memcached's own test harness starts it), read back from `MEMCACHED_PORT_FILENAME`, so
/// parallel tests never race for a port.
struct Daemon {
    child: Child,
    addr: SocketAddr,
    udp_port: Option<u16>,
}

impl Daemon {
    fn start(args: &[&str]) -> Daemon {
        Daemon::start_on("127.0.0.1", args)
    }

    fn start_on(host: &str, args: &[&str]) -> Daemon {
        let mut all = vec!["-p", "-1", "-l", host, "-U", "0"];
        all.extend_from_slice(args);
        let (child, ports) = common::spawn_tern(&all, true);
        let port_of = |transport: &str| common::port_in(&ports, transport);
        let tcp = port_of("TCP").expect("a TCP port in the port file");
        let ip: std::net::IpAddr = host.trim_matches(|c| c == '[' || c == ']').parse().unwrap();
        Daemon {
            child,
            addr: SocketAddr::new(ip, tcp),
            udp_port: port_of("UDP"),
        }
    }

    fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{signal}");
    }

    /// Waits for the process to exit and returns its output.
    fn wait(mut self) -> Output {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if self.child.try_wait().unwrap().is_some() {
                break;
            }
            assert!(Instant::now() < deadline, "tern did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
        let child = std::mem::replace(&mut self.child, Command::new("true").spawn().unwrap());
        child.wait_with_output().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn bad_values_exit_nonzero_naming_flag_and_value() {
    for (args, code, needle) in [
        (&["-m", "abc"][..], 1, "'abc' for -m"),
        (&["-t", "0"][..], 1, "'0' for -t"),
        (&["-c", "abc"][..], 1, "'abc' for -c"),
        (&["-p", "70000"][..], 64, "Invalid port number 70000"),
        (
            &["-m", "8", "-I", "8m"][..],
            64,
            "item size limit higher than 1/2 of memory max",
        ),
        (&["--bogus"][..], 1, "--bogus"),
        (&["-o", "nonsense=1"][..], 1, "nonsense=1"),
        (&["-e", "/tmp/x"][..], 64, "-e is not supported by tern"),
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn version_flag_prints_a_version_and_exits_zero() {
    let out = run(&["-V"]);
    assert!(out.status.success());
    // -V prints tern's own version; clients are told memcached's (server::VERSION).
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn flags_take_effect_in_stats_settings() {
    let d = Daemon::start(&[
        "-m", "32", "-c", "77", "-t", "3", "-R", "7", "-I", "2m", "-C",
    ]);
    let mut c = d.connect();
    let settings = c.stats("settings");
    let get = |name: &str| stat_value(&settings, name);
    assert_eq!(get("maxbytes").as_deref(), Some("33554432"));
    assert_eq!(get("maxconns").as_deref(), Some("77"));
    assert_eq!(get("num_threads").as_deref(), Some("3"));
    assert_eq!(get("reqs_per_event").as_deref(), Some("7"));
    assert_eq!(get("item_size_max").as_deref(), Some("2097152"));
    assert_eq!(get("cas_enabled").as_deref(), Some("no"));
    // Started with -p -1 (a port the system chose): memcached reports that as -1 too.
    assert_eq!(get("tcpport").as_deref(), Some("-1"));
}

#[test]
fn connection_limit_refuses_with_memcached_error_and_keeps_others() {
    let d = Daemon::start(&["-c", "3"]);
    // The start-up probe's connection is closed; wait until the server has reaped it.
    let mut first = d.connect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while first.stat("curr_connections") != "1" {
        assert!(Instant::now() < deadline, "probe connection never reaped");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut held: Vec<Client> = vec![first, d.connect(), d.connect()];
    for c in &mut held {
        c.roundtrip(b"get a\r\n", b"END\r\n");
    }
    let mut extra = TcpStream::connect(d.addr).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut reply = Vec::new();
    let _ = extra.read_to_end(&mut reply);
    assert_eq!(reply, b"ERROR Too many open connections\r\n");
    held[0].roundtrip(b"set a 0 0 1\r\nx\r\n", b"STORED\r\n");
    assert_eq!(held[1].stat("rejected_connections"), "1");
    drop(held.pop());
    // A slot freed is a slot usable again.
    std::thread::sleep(Duration::from_millis(200));
    let mut again = d.connect();
    again.roundtrip(b"get a\r\n", b"VALUE a 0 1\r\nx\r\nEND\r\n");
}

#[test]
fn pid_file_is_written_and_removed() {
    let path = std::env::temp_dir().join(format!("tern-test-{}.pid", std::process::id()));
    let d = Daemon::start(&["-P", path.to_str().unwrap()]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !path.exists() {
        assert!(Instant::now() < deadline, "no pid file");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid: u32 = std::fs::read_to_string(&path)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid, d.child.id());
    d.signal("TERM");
    let out = d.wait();
    assert!(out.status.success());
    assert!(!path.exists(), "pid file left behind");
}

#[test]
fn debian_default_conf_file_starts_tern() {
    // Debian's /etc/memcached.conf, verbatim; the port is overridden on the command line
    // (flags win over the file) so the test does not need 11211.
    let conf: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "src/config/testdata/debian-memcached.conf",
    ]
    .iter()
    .collect();
    let d = Daemon::start(&["--config-file", conf.to_str().unwrap()]);
    let mut c = d.connect();
    c.roundtrip(
        b"set a 0 0 1\r\nx\r\nget a\r\n",
        b"STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n",
    );
    let settings = c.stats("settings");
    let maxbytes = settings.iter().find(|(k, _)| k == "maxbytes").unwrap();
    assert_eq!(maxbytes.1, (64 * 1024 * 1024).to_string());
}

#[test]
fn example_conf_file_starts_tern() {
    let conf: PathBuf = [env!("CARGO_MANIFEST_DIR"), "memcached.conf.example"]
        .iter()
        .collect();
    let d = Daemon::start(&["--config-file", conf.to_str().unwrap()]);
    d.connect().roundtrip(b"get a\r\n", b"END\r\n");
}

#[test]
fn sigterm_during_large_pipelined_reply_loses_no_promised_reply() {
    let d = Daemon::start(&[]);
    let mut c = d.connect();
    let value = vec![b'z'; 200 * 1024];
    let mut set = format!("set big 0 0 {}\r\n", value.len()).into_bytes();
    set.extend_from_slice(&value);
    set.extend_from_slice(b"\r\n");
    c.roundtrip(&set, b"STORED\r\n");
    let n = 100;
    c.send(&b"get big\r\n".repeat(n));
    let mut one = format!("VALUE big 0 {}\r\n", value.len()).into_bytes();
    one.extend_from_slice(&value);
    one.extend_from_slice(b"\r\nEND\r\n");
    let mut buf = vec![0u8; one.len()];
    c.stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    c.stream.read_exact(&mut buf).unwrap();
    d.signal("TERM");
    for i in 1..n {
        c.stream
            .read_exact(&mut buf)
            .unwrap_or_else(|e| panic!("reply {i} lost: {e}"));
        assert!(buf == one, "reply {i} differs");
    }
    let out = d.wait();
    assert!(out.status.success(), "exit status {:?}", out.status);
}

#[test]
fn sigint_and_sigusr1_stop_gracefully() {
    for sig in ["INT", "USR1"] {
        let d = Daemon::start(&[]);
        d.connect().roundtrip(b"get a\r\n", b"END\r\n");
        d.signal(sig);
        assert!(d.wait().status.success(), "SIG{sig}");
    }
}

#[test]
fn shutdown_command_with_dash_a_exits_zero() {
    let d = Daemon::start(&["-A"]);
    let mut c = d.connect();
    c.send(b"shutdown\r\n");
    assert!(c.is_closed());
    assert!(d.wait().status.success());
}

#[test]
fn very_verbose_prints_the_slab_class_table() {
    let d = Daemon::start(&["-vv"]);
    d.signal("TERM");
    let out = d.wait();
    let err = stderr(&out);
    assert!(err.contains("slab class   1: chunk size"), "{err}");
    assert!(err.contains("listening on 127.0.0.1:"), "{err}");
}

#[test]
fn running_as_root_without_dash_u_warns_and_runs() {
    if !nix_is_root() {
        return;
    }
    let d = Daemon::start(&[]);
    d.connect().roundtrip(b"get a\r\n", b"END\r\n");
    d.signal("TERM");
    let err = stderr(&d.wait());
    assert!(err.contains("RUNNING AS ROOT"), "{err}");
}

#[test]
fn dash_u_drops_root_privileges() {
    if !nix_is_root() {
        return;
    }
    let d = Daemon::start(&["-u", "nobody"]);
    // A reply proves the server is past start-up, which drops root before serving anything
    // (the listening socket, bound as root, accepts into its backlog earlier).
    d.connect().roundtrip(b"get a\r\n", b"END\r\n");
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.child.id())).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    let nobody = Command::new("id").args(["-u", "nobody"]).output().unwrap();
    let nobody = String::from_utf8_lossy(&nobody.stdout).trim().to_string();
    assert!(
        uid_line.split_whitespace().skip(1).all(|u| u == nobody),
        "{uid_line}"
    );
    d.connect().roundtrip(b"get a\r\n", b"END\r\n");
}

#[test]
fn unix_socket_flag_serves_nc() {
    let dir = std::env::temp_dir().join(format!("tern-d-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("t.sock");
    let mut child = Command::new(TERN)
        .args(["-s", sock.to_str().unwrap(), "-a", "0770"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        assert!(Instant::now() < deadline, "no unix socket");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut nc = Command::new("nc")
        .args(["-q1", "-U", sock.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    nc.stdin
        .take()
        .unwrap()
        .write_all(b"set k 0 0 2\r\nhi\r\nget k\r\n")
        .unwrap();
    let out = nc.wait_with_output().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "STORED\r\nVALUE k 0 2\r\nhi\r\nEND\r\n"
    );
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

#[test]
fn ipv6_listen_address_works() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: no IPv6 loopback on this machine");
        return;
    }
    let d = Daemon::start_on("[::1]", &[]);
    assert!(d.addr.is_ipv6());
    d.connect().roundtrip(
        b"set v6 0 0 2\r\nok\r\nget v6\r\n",
        b"STORED\r\nVALUE v6 0 2\r\nok\r\nEND\r\n",
    );
}

#[test]
fn very_verbose_logs_each_command_and_reply() {
    let d = Daemon::start(&["-vv"]);
    d.connect()
        .roundtrip(b"set logged 0 0 1\r\nx\r\n", b"STORED\r\n");
    d.signal("TERM");
    let err = stderr(&d.wait());
    assert!(
        err.contains("logged"),
        "the command is not in the log: {err}"
    );
    assert!(err.contains("STORED"), "the reply is not in the log: {err}");
}

#[test]
fn sasl_refusal_is_logged_without_the_password() {
    let dir = std::env::temp_dir().join(format!("tern-sasl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pwdb = dir.join("pwdb");
    std::fs::write(&pwdb, "alice:right-secret\n").unwrap();
    let d = Daemon::start(&["-S", "--sasl-pwdb", pwdb.to_str().unwrap(), "-vvv"]);
    let mut c = d.connect();
    // SASL_AUTH (0x21), mechanism PLAIN, "\0alice\0wrong-secret-xyzzy".
    let mech = b"PLAIN";
    let data = b"\0alice\0wrong-secret-xyzzy";
    let mut p = vec![0x80, 0x21, 0, mech.len() as u8, 0, 0, 0, 0];
    p.extend_from_slice(&((mech.len() + data.len()) as u32).to_be_bytes());
    p.extend_from_slice(&[0; 12]);
    p.extend_from_slice(mech);
    p.extend_from_slice(data);
    c.send(&p);
    let h = c.read_exact_n(24);
    assert_eq!(u16::from_be_bytes([h[6], h[7]]), 0x20, "auth error status");
    drop(c);
    d.signal("TERM");
    let err = stderr(&d.wait());
    let _ = std::fs::remove_dir_all(&dir);
    assert!(err.contains("alice"), "the refusal is not logged: {err}");
    assert!(
        !err.contains("xyzzy"),
        "the password reached the log: {err}"
    );
}

#[test]
fn help_flag_prints_usage_and_exits_zero() {
    let out = run(&["-h"]);
    assert!(out.status.success());
    let usage = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "-p, --port",
        "-U, --udp-port",
        "-m, --memory-limit",
        "-c, --conn-limit",
    ] {
        assert!(usage.contains(flag), "usage lacks {flag}: {usage}");
    }
}

#[test]
fn more_flags_take_effect_in_the_running_daemon() {
    let d = Daemon::start(&[
        "-f",
        "1.25",
        "-n",
        "48",
        "-b",
        "512",
        "-B",
        "ascii",
        "-F",
        "-X",
        "-o",
        "hashpower=20,idle_timeout=3600",
        "-M",
        "-U",
        "-1",
        "-k",
        "-v",
    ]);
    let mut c = d.connect();
    let settings = c.stats("settings");
    let get = |name: &str| stat_value(&settings, name);
    assert_eq!(get("growth_factor").as_deref(), Some("1.25"));
    assert_eq!(get("chunk_size").as_deref(), Some("48"));
    assert_eq!(get("tcp_backlog").as_deref(), Some("512"));
    assert_eq!(get("binding_protocol").as_deref(), Some("ascii"));
    assert_eq!(get("flush_enabled").as_deref(), Some("no"));
    assert_eq!(get("dump_enabled").as_deref(), Some("no"));
    assert_eq!(get("hashpower_init").as_deref(), Some("20"));
    assert_eq!(get("idle_timeout").as_deref(), Some("3600"));
    assert_eq!(get("evictions").as_deref(), Some("off"));
    assert_eq!(get("udpport").as_deref(), Some("-1"));
    // -F: flush_all is refused.
    c.roundtrip(b"flush_all\r\n", b"CLIENT_ERROR flush_all not allowed\r\n");
    // -B ascii: a binary NOOP packet is text to this server (0x0a, its opcode, ends a line).
    let mut noop = vec![0x80, 0x0a];
    noop.extend_from_slice(&[0; 22]);
    let mut b = d.connect();
    b.send(&noop);
    assert!(b.read_available().starts_with(b"ERROR\r\n"));
    // -U: a framed UDP request is answered.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    udp.connect((
        "127.0.0.1",
        d.udp_port.expect("a UDP port in the port file"),
    ))
    .unwrap();
    let mut frame = vec![0, 9, 0, 0, 0, 1, 0, 0];
    frame.extend_from_slice(b"version\r\n");
    udp.send(&frame).unwrap();
    let mut buf = [0u8; 1500];
    let n = udp.recv(&mut buf).unwrap();
    assert_eq!(&buf[..8], &[0, 9, 0, 0, 0, 1, 0, 0]);
    assert!(buf[8..n].starts_with(b"VERSION "));
}

#[test]
fn ascii_auth_file_requires_login_first() {
    let dir = std::env::temp_dir().join(format!("tern-y-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let auth = dir.join("auth");
    std::fs::write(&auth, "bob:hunter2\n").unwrap();
    let d = Daemon::start(&["-Y", auth.to_str().unwrap()]);
    let mut c = d.connect();
    c.roundtrip(b"get a\r\n", b"CLIENT_ERROR unauthenticated\r\n");
    c.roundtrip(
        b"set x 0 0 10\r\nbob nope!!\r\n",
        b"CLIENT_ERROR authentication failure\r\n",
    );
    c.roundtrip(b"set x 0 0 11\r\nbob hunter2\r\n", b"STORED\r\n");
    c.roundtrip(b"get a\r\n", b"END\r\n");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `-L`: where the kernel has transparent huge pages, item memory is advised into them (one
/// of the daemon's mappings carries the `hg` flag, and only with `-L`); where they are off,
/// tern refuses to start with memcached's words and status.
#[test]
fn dash_l_advises_item_memory_into_huge_pages() {
    let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .is_ok_and(|mode| !mode.contains("[never]"));
    if !thp {
        let out = run(&["-L"]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains("Cannot enable large pages on this system"));
        return;
    }
    let advised = |args: &[&str]| {
        let d = Daemon::start(args);
        d.connect()
            .roundtrip(b"set k 0 0 1\r\nx\r\n", b"STORED\r\n");
        let smaps = std::fs::read_to_string(format!("/proc/{}/smaps", d.child.id())).unwrap();
        smaps
            .lines()
            .filter_map(|l| l.strip_prefix("VmFlags:"))
            .any(|flags| flags.split_whitespace().any(|f| f == "hg"))
    };
    assert!(advised(&["-L"]));
    assert!(!advised(&[]));
}
