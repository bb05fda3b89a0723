//! The server-side operator commands over TCP: `stats detail`, `watch`, `verbosity` with bad
//! arguments, and the `stats` lines memcached 1.6.18 prints. Each expected reply was read from
//! memcached 1.6.18; with `TERN_DIFF_MEMCACHED=1` the deterministic ones are also sent to a
//! real memcached and compared byte for byte.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

use common::{differential, stat_value, Client, Memcached, Tern};

/// Sends each request and checks the reply, on tern and (when enabled) memcached.
fn both(
    extra: &[&str],
    tweak: impl FnOnce(&mut tern::config::Settings),
    script: &[(&[u8], &[u8])],
) {
    let tern = Tern::start_with(tweak);
    let mut c = tern.connect();
    for (req, want) in script {
        c.roundtrip(req, want);
    }
    if differential() {
        let m = Memcached::start(extra);
        let mut c = Client::connect(m.addr);
        for (req, want) in script {
            c.roundtrip(req, want);
        }
    }
}

/// `-D <char>` names the prefix delimiter and switches `stats detail` on from the start.
#[test]
fn dash_d_sets_the_delimiter_and_counts_from_the_start() {
    both(
        &["-D", "-"],
        |s| {
            s.prefix_delimiter = b'-';
            s.detail_enabled = true;
        },
        &[
            (b"set foo-1 0 0 1\r\nx\r\n", b"STORED\r\n"),
            (b"set bar:1 0 0 1\r\nx\r\n", b"STORED\r\n"),
            (b"get foo-1 foo-2\r\n", b"VALUE foo-1 0 1\r\nx\r\nEND\r\n"),
            (
                b"stats detail dump\r\n",
                b"PREFIX foo get 2 hit 1 set 1 del 0\r\nEND\r\n",
            ),
        ],
    );
    let tern = Tern::start_with(|s| {
        s.prefix_delimiter = b'-';
        s.detail_enabled = true;
    });
    let settings = tern.connect().stats("settings");
    assert_eq!(
        stat_value(&settings, "stat_key_prefix").as_deref(),
        Some("-")
    );
    assert_eq!(
        stat_value(&settings, "detail_enabled").as_deref(),
        Some("yes")
    );
}

#[test]
fn stats_detail_counts_per_prefix_as_memcached() {
    both(
        &[],
        |_| {},
        &[
            (b"stats detail dump\r\n", b"END\r\n"),
            (
                b"stats detail\r\n",
                b"CLIENT_ERROR usage: stats detail on|off|dump\r\n",
            ),
            (
                b"stats detail bogus\r\n",
                b"CLIENT_ERROR usage: stats detail on|off|dump\r\n",
            ),
            (b"stats detail on extra\r\n", b"OK\r\n"),
            (b"set foo:123 0 0 6\r\nfooval\r\n", b"STORED\r\n"),
            (b"set plain 0 0 1\r\nx\r\n", b"STORED\r\n"),
            (
                b"stats detail dump\r\n",
                b"PREFIX foo get 0 hit 0 set 1 del 0\r\nEND\r\n",
            ),
            (
                b"get foo:123 foo:124 bar\r\n",
                b"VALUE foo:123 0 6\r\nfooval\r\nEND\r\n",
            ),
            (b"delete foo:125\r\n", b"NOT_FOUND\r\n"),
            (
                b"stats detail dump\r\n",
                b"PREFIX foo get 2 hit 1 set 1 del 1\r\nEND\r\n",
            ),
            (b"stats detail off\r\n", b"OK\r\n"),
            (
                b"get foo:123\r\n",
                b"VALUE foo:123 0 6\r\nfooval\r\nEND\r\n",
            ),
            (
                b"stats detail dump\r\n",
                b"PREFIX foo get 2 hit 1 set 1 del 1\r\nEND\r\n",
            ),
            (b"stats reset\r\n", b"RESET\r\n"),
            (b"stats detail dump\r\n", b"END\r\n"),
        ],
    );
}

#[test]
fn stats_settings_detail_enabled_follows_the_switch() {
    let tern = Tern::start();
    let mut c = tern.connect();
    assert_eq!(setting(&mut c, "detail_enabled"), "no");
    c.roundtrip(b"stats detail on\r\n", b"OK\r\n");
    assert_eq!(setting(&mut c, "detail_enabled"), "yes");
    c.roundtrip(b"stats detail off\r\n", b"OK\r\n");
    assert_eq!(setting(&mut c, "detail_enabled"), "no");
}

fn setting(c: &mut Client, name: &str) -> String {
    common::stat_value(&c.stats("settings"), name).unwrap()
}

#[test]
fn verbosity_bad_arguments_as_memcached() {
    both(
        &[],
        |_| {},
        &[
            (b"verbosity\r\n", b"ERROR\r\n"),
            (
                b"verbosity x\r\n",
                b"CLIENT_ERROR bad command line format\r\n",
            ),
            (
                b"verbosity -1\r\n",
                b"CLIENT_ERROR bad command line format\r\n",
            ),
            (b"verbosity 1 2 3\r\n", b"ERROR\r\n"),
            (b"verbosity 1 noreply\r\nverbosity 5\r\n", b"OK\r\n"),
            (b"verbosity 1 2\r\n", b"OK\r\n"),
        ],
    );
}

#[test]
fn watch_refusals_as_memcached() {
    both(&[], |_| {}, &[(b"watch bogus\r\n", b"ERROR\r\n")]);
    both(
        &[],
        |_| {},
        &[(
            b"version\r\nwatch\r\n",
            b"VERSION 1.6.18\r\nERROR cannot pipeline other commands before watch\r\n",
        )],
    );
    both(
        &["-W"],
        |s| s.watch_enabled = false,
        &[(
            b"watch bogus\r\n",
            b"CLIENT_ERROR watch commands not allowed\r\n",
        )],
    );
}

/// A watcher's next line.
fn line(r: &mut BufReader<TcpStream>) -> String {
    let mut s = String::new();
    r.read_line(&mut s).unwrap();
    s
}

/// The descriptor `stats conns` reports for `c` (found by its address: descriptors are
/// numbered process-wide, so other tests' sockets come and go between ours).
fn own_fd(c: &mut Client) -> String {
    let me = format!("tcp:{}", c.stream.local_addr().unwrap());
    let stats = c.stats("conns");
    let (name, _) = stats
        .iter()
        .find(|(k, v)| k.ends_with(":addr") && *v == me)
        .unwrap();
    name.split(':').next().unwrap().to_string()
}

#[test]
fn watch_streams_fetches_stores_and_connection_events() {
    let tern = Tern::start();
    let mut client = tern.connect();
    let cfd = own_fd(&mut client);
    let w = TcpStream::connect(tern.addr()).unwrap();
    w.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut watcher = BufReader::new(w.try_clone().unwrap());
    (&w).write_all(b"watch fetchers mutations connevents\r\n")
        .unwrap();
    assert_eq!(line(&mut watcher), "OK\r\n");

    client.roundtrip(b"set a#b 0 100 2\r\nhi\r\n", b"STORED\r\n");
    client.roundtrip(b"get a#b\r\n", b"VALUE a#b 0 2\r\nhi\r\nEND\r\n");
    let get = line(&mut watcher);
    assert!(get.starts_with("ts="), "{get}");
    let fields: Vec<&str> = get.trim_end().split(' ').collect();
    assert!(
        fields[0][3..].split('.').all(|n| n.parse::<u64>().is_ok()),
        "{get}"
    );
    assert!(fields[1].starts_with("gid="), "{get}");
    assert_eq!(
        fields[2..].join(" "),
        format!("type=item_get key=a%23b status=not_found clsid=0 cfd={cfd} size=0")
    );
    let store = line(&mut watcher);
    assert!(
        store.ends_with(&format!(
            "type=item_store key=a%23b status=stored cmd=set ttl=100 clsid=1 cfd={cfd} size=2\n"
        )),
        "{store}"
    );
    let hit = line(&mut watcher);
    assert!(
        hit.ends_with(&format!(
            "type=item_get key=a%23b status=found clsid=1 cfd={cfd} size=2\n"
        )),
        "{hit}"
    );

    let mut other = tern.connect();
    let other_fd = own_fd(&mut other);
    let new = line(&mut watcher);
    assert!(new.contains(" type=conn_new rip=127.0.0.1 rport="), "{new}");
    assert!(
        new.ends_with(&format!(" transport=tcp cfd={other_fd}\n")),
        "{new}"
    );
    other.send(b"quit\r\n");
    assert!(other.is_closed());
    let close = line(&mut watcher);
    assert!(
        close.ends_with(&format!(" transport=tcp reason=normal cfd={other_fd}\n")),
        "{close}"
    );
    assert_eq!(client.stat("log_watchers"), "1");

    // The watcher is listed as memcached lists it, and leaves when it closes.
    let conns = client.stats("conns");
    assert!(conns.iter().any(|(_, v)| v == "conn_watch"), "{conns:?}");
    drop(watcher);
    drop(w);
    let mut gone = false;
    for _ in 0..100 {
        if client.stat("log_watchers") == "0" {
            gone = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(gone, "the closed watcher is still counted");
}

#[test]
fn stats_has_memcached_fields() {
    let tern = Tern::start();
    let mut c = tern.connect();
    let stats = c.stats("");
    let names: Vec<&str> = stats.iter().map(|(k, _)| k.as_str()).collect();
    for name in [
        "response_obj_count",
        "read_buf_count",
        "reserved_fds",
        "listen_disabled_num",
        "time_in_listen_disabled_us",
        "slab_reassign_rescues",
        "slab_reassign_running",
        "lru_crawler_running",
        "lru_maintainer_juggles",
        "malloc_fails",
        "log_worker_dropped",
        "log_worker_written",
        "log_watcher_skipped",
        "log_watcher_sent",
        "log_watchers",
        "unexpected_napi_ids",
        "round_robin_fallback",
        "slab_global_page_pool",
        "evicted_active",
        "crawler_items_checked",
        "lrutail_reflocked",
        "moves_to_cold",
        "direct_reclaims",
        "lru_bumps_dropped",
    ] {
        assert!(names.contains(&name), "stats lacks {name}");
    }
    // memcached prints idle_kicks only with -o idle_timeout.
    assert!(!names.contains(&"idle_kicks"));
    // memcached's order: the log lines between malloc_fails and unexpected_napi_ids.
    let at = |n: &str| names.iter().position(|&x| x == n).unwrap();
    assert!(at("malloc_fails") < at("log_worker_dropped"));
    assert!(at("log_watchers") < at("unexpected_napi_ids"));
    assert!(at("bytes") < at("slab_global_page_pool"));
}

/// A tern with one UDP socket, and a client socket connected to it.
fn start_udp(
    tweak: impl FnOnce(&mut tern::config::Settings),
) -> (tern::server::ServerHandle, UdpSocket) {
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut settings = tern::config::Settings {
        threads: 1,
        ..Default::default()
    };
    tweak(&mut settings);
    let listeners = tern::server::Listeners {
        tcp: vec![std::net::TcpListener::bind("127.0.0.1:0").unwrap()],
        udp: vec![udp],
        ..Default::default()
    };
    let clock = std::sync::Arc::new(tern::clock::Clock::manual(1_700_000_000));
    let handle = tern::server::start_on(settings, listeners, clock).expect("start");
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.connect(handle.udp_addrs()[0]).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    (handle, client)
}

/// One framed request, one reply datagram: its payload after the 8-byte header (which must
/// echo the request id and say "0 of 1").
fn udp_call(sock: &UdpSocket, request_id: u16, payload: &[u8]) -> Vec<u8> {
    let mut d = request_id.to_be_bytes().to_vec();
    d.extend_from_slice(&[0, 0, 0, 1, 0, 0]);
    d.extend_from_slice(payload);
    sock.send(&d).unwrap();
    let mut buf = [0u8; 2048];
    let n = sock.recv(&mut buf).expect("udp reply");
    assert_eq!(
        &buf[..8],
        &[(request_id >> 8) as u8, request_id as u8, 0, 0, 0, 1, 0, 0]
    );
    buf[8..n].to_vec()
}

/// A binary request packet.
fn binary_packet(opcode: u8, extras: &[u8], key: &[u8], value: &[u8], opaque: u32) -> Vec<u8> {
    let mut p = vec![0x80, opcode];
    p.extend_from_slice(&(key.len() as u16).to_be_bytes());
    p.push(extras.len() as u8);
    p.extend_from_slice(&[0, 0, 0]);
    let body = extras.len() + key.len() + value.len();
    p.extend_from_slice(&(body as u32).to_be_bytes());
    p.extend_from_slice(&opaque.to_be_bytes());
    p.extend_from_slice(&[0; 8]);
    p.extend_from_slice(extras);
    p.extend_from_slice(key);
    p.extend_from_slice(value);
    p
}

#[test]
fn udp_answers_the_binary_protocol_inside_the_frame() {
    let (_server, c) = start_udp(|_| {});
    // SET k (flags 0, exptime 0) = "val", opaque 7.
    let set = binary_packet(0x01, &[0; 8], b"k", b"val", 7);
    let reply = udp_call(&c, 0x1234, &set);
    assert_eq!(reply[0], 0x81, "{reply:?}");
    assert_eq!(reply[1], 0x01);
    assert_eq!(&reply[6..8], &[0, 0], "status success");
    assert_eq!(&reply[12..16], &7u32.to_be_bytes(), "opaque echoed");
    // GET k: flags (4 bytes extras) then the value.
    let reply = udp_call(&c, 0x1235, &binary_packet(0x00, &[], b"k", b"", 8));
    assert_eq!(&reply[6..8], &[0, 0]);
    assert_eq!(reply[4], 4, "extras length");
    assert_eq!(&reply[24..], b"\0\0\0\0val");
    // A missing key: status 1 (not found).
    let reply = udp_call(&c, 0x1236, &binary_packet(0x00, &[], b"nope", b"", 9));
    assert_eq!(&reply[6..8], &[0, 1]);
    // Text still works on the same socket.
    assert_eq!(
        udp_call(&c, 0x1237, b"get k\r\n"),
        b"VALUE k 0 3\r\nval\r\nEND\r\n"
    );
}

#[test]
fn udp_shutdown_with_dash_a_stops_the_server_as_tcp_does() {
    let (server, c) = start_udp(|s| s.allow_shutdown = true);
    c.send(&[
        0, 1, 0, 0, 0, 1, 0, 0, b's', b'h', b'u', b't', b'd', b'o', b'w', b'n', b'\r', b'\n',
    ])
    .unwrap();
    // The TCP listener goes away once the server has stopped.
    let addr = server.local_addr();
    let mut stopped = false;
    for _ in 0..100 {
        if TcpStream::connect(addr).is_err() {
            stopped = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(stopped, "shutdown over UDP did not stop the server");
}

#[test]
fn stats_conns_lists_listeners_udp_and_clients_by_descriptor() {
    let (server, _c) = start_udp(|_| {});
    let mut client = Client::connect(server.local_addr());
    let mut sender = Client::connect(server.local_addr());
    sender.send(b"set k 0 0 6\r\n");
    std::thread::sleep(Duration::from_millis(100));
    let lines = client.stats("conns");
    let tcp = format!("tcp:{}", server.local_addr());
    let udp = format!("udp:{}", server.udp_addrs()[0]);
    let value = |suffix: &str, want: &str| {
        lines
            .iter()
            .find(|(k, v)| k.ends_with(suffix) && v == want)
            .map(|(k, _)| k.split(':').next().unwrap().parse::<i32>().unwrap())
    };
    // Every key is `<fd>:<field>`, as memcached's.
    assert!(lines
        .iter()
        .all(|(k, _)| k.split(':').next().unwrap().parse::<i32>().is_ok()));
    let listener = value(":addr", &tcp).expect("tcp listener");
    assert_eq!(value(":state", "conn_listening"), Some(listener));
    let udp_fd = value(":addr", &udp).expect("udp socket");
    assert_eq!(value(":UDP", "UDP"), Some(udp_fd));
    assert_eq!(value(":state", "conn_read"), Some(udp_fd));
    assert!(value(":state", "conn_nread").is_some(), "{lines:?}");
    assert!(value(":listen_addr", &tcp).is_some());
    // Descriptor order, as memcached walks its connection table.
    let fds: Vec<i32> = lines
        .iter()
        .map(|(k, _)| k.split(':').next().unwrap().parse().unwrap())
        .collect();
    assert!(fds.windows(2).all(|w| w[0] <= w[1]), "{fds:?}");
}

#[test]
fn stats_cachedump_lists_a_class_as_memcached() {
    both(
        &[],
        |_| {},
        &[
            (b"set foo 0 0 6\r\nfooval\r\n", b"STORED\r\n"),
            (
                b"stats cachedump 1 100\r\n",
                b"ITEM foo [6 b; 0 s]\r\nEND\r\n",
            ),
            (
                b"stats cachedump 1 0\r\n",
                b"ITEM foo [6 b; 0 s]\r\nEND\r\n",
            ),
            (b"stats cachedump 2 0\r\n", b"END\r\n"),
            (
                b"stats cachedump 1\r\n",
                b"CLIENT_ERROR bad command line\r\n",
            ),
            (
                b"stats cachedump x 1\r\n",
                b"CLIENT_ERROR bad command line format\r\n",
            ),
            (
                b"stats cachedump 64 1\r\n",
                b"CLIENT_ERROR Illegal slab id\r\n",
            ),
        ],
    );
    both(
        &["-X"],
        |s| s.dump_enabled = false,
        &[(
            b"stats cachedump 1\r\n",
            b"CLIENT_ERROR stats cachedump not allowed\r\n",
        )],
    );
}

#[test]
fn stats_sizes_counts_items_by_size_between_enable_and_disable() {
    let tern = Tern::start();
    let mut c = tern.connect();
    c.roundtrip(b"stats sizes\r\n", b"STAT sizes_status disabled\r\nEND\r\n");
    assert_eq!(setting(&mut c, "track_sizes"), "no");
    c.roundtrip(b"set before 0 0 1\r\nx\r\n", b"STORED\r\n");
    // memcached 1.6.18 sends no END after these lines (clients then wait forever); tern ends
    // the reply (docs/protocol.md).
    c.roundtrip(
        b"stats sizes_enable\r\n",
        b"STAT sizes_status enabled\r\nEND\r\n",
    );
    assert_eq!(setting(&mut c, "track_sizes"), "yes");
    // Only items stored from now on; a 1-byte and a 100-byte value under 1-byte keys fall in
    // different 32-byte steps.
    c.roundtrip(b"stats sizes\r\n", b"END\r\n");
    c.roundtrip(b"set a 0 0 1\r\nx\r\n", b"STORED\r\n");
    c.roundtrip(b"set b 0 0 100\r\n", b"");
    c.roundtrip(&[b'y'; 100], b"");
    c.roundtrip(b"\r\n", b"STORED\r\n");
    let sizes = c.stats("sizes");
    assert_eq!(sizes.len(), 2, "{sizes:?}");
    let steps: Vec<usize> = sizes.iter().map(|(s, _)| s.parse().unwrap()).collect();
    assert!(steps[0] % 32 == 0 && steps[1] > steps[0] + 64, "{sizes:?}");
    assert!(sizes.iter().all(|(_, n)| n == "1"), "{sizes:?}");
    c.roundtrip(b"delete b\r\n", b"DELETED\r\n");
    assert_eq!(c.stats("sizes"), [(steps[0].to_string(), "1".to_string())]);
    c.roundtrip(
        b"stats sizes_disable\r\n",
        b"STAT sizes_status disabled\r\nEND\r\n",
    );
    assert_eq!(setting(&mut c, "track_sizes"), "no");
    c.roundtrip(b"stats sizes\r\n", b"STAT sizes_status disabled\r\nEND\r\n");
}

#[test]
fn stats_sizes_from_the_start_with_track_sizes_and_refused_at_runtime_without_cas() {
    let tern = Tern::start_with(|s| s.store.track_sizes = true);
    let mut c = tern.connect();
    assert_eq!(setting(&mut c, "track_sizes"), "yes");
    c.roundtrip(b"set a 0 0 1\r\nx\r\n", b"STORED\r\n");
    assert_eq!(c.stats("sizes").len(), 1);

    let tern = Tern::start_with(|s| s.store.cas_enabled = false);
    let mut c = tern.connect();
    c.roundtrip(
        b"stats sizes_enable\r\n",
        b"STAT sizes_status error\r\nSTAT sizes_error cas_support_disabled\r\nEND\r\n",
    );
    c.roundtrip(b"stats sizes\r\n", b"STAT sizes_status disabled\r\nEND\r\n");
}

#[test]
fn binary_stat_sizes_enable_answers_its_line_and_a_terminator() {
    let tern = Tern::start();
    let mut c = tern.connect();
    c.send(&binary_packet(0x10, &[], b"sizes_enable", b"", 3));
    let want_key = b"sizes_status";
    let got = c.read_exact_n(24 + want_key.len() + b"enabled".len() + 24);
    assert_eq!(&got[2..4], &(want_key.len() as u16).to_be_bytes());
    assert_eq!(&got[24..24 + want_key.len()], want_key);
    assert_eq!(&got[24 + want_key.len()..got.len() - 24], b"enabled");
    let end = &got[got.len() - 24..];
    assert_eq!((end[0], end[1], &end[2..4]), (0x81, 0x10, &[0u8, 0][..]));
    assert_eq!(&end[8..12], &[0, 0, 0, 0], "an empty terminator");
}
