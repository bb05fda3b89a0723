//! Connection-level behaviour over real TCP: pipelining, split requests, large values, limits,
//! backpressure, fairness, expiry and counters.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::time::Duration;

use common::{stat_value, Client, Tern};

/// memcached 1.6.18's largest value for key `k` with flags 0 and CAS on under `-I 1m`:
/// 48 (header) + 2 (key and NUL) + 8 (CAS) + value + 2 (`\r\n`) <= 1048576.
const MAX_VALUE_FOR_K: usize = 1024 * 1024 - 60;

fn set_cmd(key: &str, value: &[u8]) -> Vec<u8> {
    let mut v = format!("set {key} 0 0 {}\r\n", value.len()).into_bytes();
    v.extend_from_slice(value);
    v.extend_from_slice(b"\r\n");
    v
}

fn value_reply(key: &str, value: &[u8]) -> Vec<u8> {
    let mut v = format!("VALUE {key} 0 {}\r\n", value.len()).into_bytes();
    v.extend_from_slice(value);
    v.extend_from_slice(b"\r\nEND\r\n");
    v
}

#[test]
fn pipelined_batch_answers_in_order() {
    let tern = Tern::start();
    let mut c = tern.connect();
    let mut req = Vec::new();
    let mut expect = Vec::new();
    for i in 0..200 {
        let key = format!("k{i}");
        let val = format!("v{i}");
        req.extend(set_cmd(&key, val.as_bytes()));
        req.extend(format!("get {key}\r\n").into_bytes());
        expect.extend(b"STORED\r\n");
        expect.extend(value_reply(&key, val.as_bytes()));
    }
    c.roundtrip(&req, &expect);
}

#[test]
fn request_split_at_every_byte_boundary() {
    let tern = Tern::start();
    let req = b"set key 7 0 5\r\nhello\r\nget key\r\nincr nope 1\r\n";
    let expect = b"STORED\r\nVALUE key 7 5\r\nhello\r\nEND\r\nNOT_FOUND\r\n";
    for split in 1..req.len() {
        let mut c = tern.connect();
        c.send(&req[..split]);
        std::thread::sleep(Duration::from_millis(1));
        c.send(&req[split..]);
        c.expect(expect);
    }
}

#[test]
fn request_sent_one_byte_at_a_time() {
    let tern = Tern::start();
    let mut c = tern.connect();
    let req = b"set a 0 0 3\r\nxyz\r\nget a\r\ndelete a\r\nget a\r\n";
    for b in req.iter() {
        c.send(std::slice::from_ref(b));
    }
    c.expect(b"STORED\r\nVALUE a 0 3\r\nxyz\r\nEND\r\nDELETED\r\nEND\r\n");
}

#[test]
fn multi_megabyte_value_in_small_pieces() {
    let tern = Tern::start_with(|s| s.store.item_size_max = 4 * 1024 * 1024);
    let mut c = tern.connect();
    let value: Vec<u8> = (0..3_000_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let req = set_cmd("big", &value);
    for piece in req.chunks(1000) {
        c.send(piece);
    }
    c.expect(b"STORED\r\n");
    c.roundtrip(b"get big\r\n", &value_reply("big", &value));
}

#[test]
fn value_exactly_at_the_limit_is_stored() {
    let tern = Tern::start();
    let mut c = tern.connect();
    let value = vec![b'x'; MAX_VALUE_FOR_K];
    c.roundtrip(&set_cmd("k", &value), b"STORED\r\n");
    c.roundtrip(b"get k\r\n", &value_reply("k", &value));
}

#[test]
fn set_too_large_swallows_data_and_unlinks_old_value() {
    let tern = Tern::start();
    let mut c = tern.connect();
    c.roundtrip(&set_cmd("k", b"old"), b"STORED\r\n");
    let value = vec![b'x'; MAX_VALUE_FOR_K + 1];
    // The data block is read and discarded: the command after it is served normally.
    let mut req = set_cmd("k", &value);
    req.extend_from_slice(b"get k\r\n");
    c.roundtrip(&req, b"SERVER_ERROR object too large for cache\r\nEND\r\n");
}

#[test]
fn too_large_data_arriving_slowly_is_swallowed() {
    let tern = Tern::start();
    let mut c = tern.connect();
    let req = set_cmd("k", &vec![b'y'; 3 * 1024 * 1024]);
    for piece in req.chunks(64 * 1024) {
        c.send(piece);
    }
    c.expect(b"SERVER_ERROR object too large for cache\r\n");
    c.roundtrip(
        b"version\r\n",
        format!("VERSION {}\r\n", tern::server::VERSION).as_bytes(),
    );
}

#[test]
fn line_over_2048_bytes_without_newline_closes() {
    let tern = Tern::start();
    let mut c = tern.connect();
    c.send(&vec![b'x'; 3000]);
    assert!(c.is_closed());
}

#[test]
fn long_multiget_line_is_served() {
    let tern = Tern::start();
    let mut c = tern.connect();
    c.roundtrip(&set_cmd("present", b"1"), b"STORED\r\n");
    let mut req = b"get".to_vec();
    for i in 0..400 {
        req.extend(format!(" missing-key-number-{i}").into_bytes());
    }
    req.extend(b" present\r\n");
    assert!(req.len() > 8000);
    for piece in req.chunks(1500) {
        c.send(piece);
        std::thread::sleep(Duration::from_millis(1));
    }
    c.expect(&value_reply("present", b"1"));
}

#[test]
fn client_that_never_reads_cannot_grow_server_buffers_without_bound() {
    let tern = Tern::start();
    let mut c = tern.connect();
    let value = vec![b'v'; 256 * 1024];
    c.roundtrip(&set_cmd("v", &value), b"STORED\r\n");
    let rss_before = rss_kib();
    // Pipeline gets of a 256 KiB value without reading any reply. If the server kept reading,
    // every write would succeed; it must stop reading once its output is over its cap, so the
    // socket buffers fill and our writes start to block.
    c.stream.set_nonblocking(true).unwrap();
    let get = b"get v\r\n";
    let mut sent = 0usize;
    let mut blocked = false;
    for _ in 0..2_000_000 {
        match c.stream.write(get) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                blocked = true;
                break;
            }
            Err(e) => panic!("write: {e}"),
        }
    }
    assert!(blocked, "the server kept reading: {sent} bytes accepted");
    // The kernel holds the unread requests; tern itself holds a bounded amount of replies. The
    // server runs in this process, so this process's resident memory tells.
    std::thread::sleep(Duration::from_millis(300));
    let grown = rss_kib().saturating_sub(rss_before);
    assert!(grown < 64 * 1024, "resident memory grew by {grown} KiB");
    // The replies that do come are complete and in order.
    c.stream.set_nonblocking(false).unwrap();
    let one = value_reply("v", &value);
    let mut buf = vec![0u8; one.len()];
    c.stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    for i in 0..20 {
        c.stream
            .read_exact(&mut buf)
            .unwrap_or_else(|e| panic!("reply {i}: {e}"));
        assert!(buf == one, "reply {i} differs");
    }
    drop(c);
    // Other clients were never affected.
    let mut other = tern.connect();
    other.roundtrip(b"get nope\r\n", b"END\r\n");
}

/// This process's resident set size, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn pipelining_client_yields_after_reqs_per_event() {
    let tern = Tern::start_with(|s| s.reqs_per_event = 5);
    let mut c = tern.connect();
    let mut req = Vec::new();
    let mut expect = Vec::new();
    for _ in 0..50 {
        req.extend(b"get nope\r\n");
        expect.extend(b"END\r\n");
    }
    c.roundtrip(&req, &expect);
    let yields: u64 = c.stat("conn_yields").parse().unwrap();
    assert!(yields >= 1, "conn_yields = {yields}");
}

/// A run of quick `mg` lines is served line by line out of the same budget: a pipeline of
/// them yields too, and every line is answered, in order.
#[test]
fn pipelined_meta_gets_yield_after_reqs_per_event() {
    let tern = Tern::start_with(|s| s.reqs_per_event = 5);
    let mut c = tern.connect();
    c.roundtrip(b"ms hit 2\r\nhi\r\n", b"HD\r\n");
    let mut req = Vec::new();
    let mut expect = Vec::new();
    for i in 0..50 {
        if i % 7 == 0 {
            req.extend(format!("mg hit v k O{i} q\r\n").as_bytes());
            expect.extend(format!("VA 2 khit O{i}\r\nhi\r\n").as_bytes());
        } else {
            req.extend(format!("mg nope{i} v\r\n").as_bytes());
            expect.extend(b"EN\r\n");
        }
    }
    req.extend(b"mn\r\n");
    expect.extend(b"MN\r\n");
    c.roundtrip(&req, &expect);
    let yields: u64 = c.stat("conn_yields").parse().unwrap();
    assert!(yields >= 1, "conn_yields = {yields}");
    assert_eq!(c.stat("get_hits"), "8");
    assert_eq!(c.stat("get_misses"), "42");
}

#[test]
fn relative_and_absolute_expiry_follow_the_clock() {
    let tern = Tern::start();
    let mut c = tern.connect();
    let abs = tern.clock.unix_now() + 20;
    c.roundtrip(b"set rel 0 10 1\r\nr\r\n", b"STORED\r\n");
    c.roundtrip(
        format!("set abs 0 {abs} 1\r\na\r\n").as_bytes(),
        b"STORED\r\n",
    );
    c.roundtrip(b"set never 0 0 1\r\nn\r\n", b"STORED\r\n");
    tern.clock.advance(9);
    c.roundtrip(b"get rel\r\n", b"VALUE rel 0 1\r\nr\r\nEND\r\n");
    tern.clock.advance(1);
    c.roundtrip(b"get rel\r\n", b"END\r\n");
    c.roundtrip(b"get abs\r\n", b"VALUE abs 0 1\r\na\r\nEND\r\n");
    tern.clock.advance(10);
    c.roundtrip(b"get abs never\r\n", b"VALUE never 0 1\r\nn\r\nEND\r\n");
    assert_eq!(c.stat("get_expired"), "2");
}

/// memcached counts `get_expired` and `get_flushed` in its item lookup (`do_item_get`), which
/// every command goes through: a touch, a delete, an incr, a store that finds its key's item
/// expired or flushed counts one, not only a get. (The random differential run compares the
/// other counters; these depend on when memcached's background threads reclaim items. With
/// `-o no_lru_crawler,no_lru_maintainer` memcached 1.6.18 counts the touch, gat, delete and
/// incr here alike; its next allocation then reclaims the rest from the LRU tail.)
#[test]
fn every_command_that_finds_an_expired_or_flushed_item_counts_it() {
    let tern = Tern::start_with(|s| s.store.lru_crawler = false);
    let mut c = tern.connect();
    let keys = ["t", "g", "d", "i", "s", "a", "m", "md", "ma"];
    for k in keys {
        c.roundtrip(format!("set {k} 0 10 1\r\n5\r\n").as_bytes(), b"STORED\r\n");
    }
    tern.clock.advance(11);
    c.roundtrip(b"touch t 100\r\n", b"NOT_FOUND\r\n");
    c.roundtrip(b"gat 100 g\r\n", b"END\r\n");
    c.roundtrip(b"delete d\r\n", b"NOT_FOUND\r\n");
    c.roundtrip(b"incr i 1\r\n", b"NOT_FOUND\r\n");
    c.roundtrip(b"set s 0 0 1\r\n6\r\n", b"STORED\r\n");
    c.roundtrip(b"append a 0 0 1\r\n6\r\n", b"NOT_STORED\r\n");
    c.roundtrip(b"mg m v\r\n", b"EN\r\n");
    c.roundtrip(b"md md\r\n", b"NF\r\n");
    c.roundtrip(b"ma ma\r\n", b"NF\r\n");
    assert_eq!(c.stat("get_expired"), keys.len().to_string());
    assert_eq!(c.stat("get_flushed"), "0");
    // Only the mg was a retrieval miss; the gat was a touch miss.
    assert_eq!(c.stat("get_misses"), "1");
    assert_eq!(c.stat("touch_misses"), "2");
    // Flushed: the same, counted apart.
    for k in keys {
        c.roundtrip(format!("set {k} 0 0 1\r\n5\r\n").as_bytes(), b"STORED\r\n");
    }
    tern.clock.advance(1);
    c.roundtrip(b"flush_all\r\n", b"OK\r\n");
    tern.clock.advance(1);
    c.roundtrip(b"delete d\r\n", b"NOT_FOUND\r\n");
    c.roundtrip(b"incr i 1\r\n", b"NOT_FOUND\r\n");
    c.roundtrip(b"set s 0 0 1\r\n6\r\n", b"STORED\r\n");
    assert_eq!(c.stat("get_flushed"), "3");
    assert_eq!(c.stat("get_expired"), keys.len().to_string());
}

#[test]
fn delayed_flush_all_takes_effect_at_its_moment() {
    let tern = Tern::start();
    let mut c = tern.connect();
    c.roundtrip(b"set a 0 0 1\r\nx\r\n", b"STORED\r\n");
    c.roundtrip(b"flush_all 10\r\n", b"OK\r\n");
    tern.clock.advance(5);
    c.roundtrip(b"get a\r\n", b"VALUE a 0 1\r\nx\r\nEND\r\n");
    tern.clock.advance(6);
    c.roundtrip(b"get a\r\n", b"END\r\n");
    c.roundtrip(b"set b 0 0 1\r\ny\r\n", b"STORED\r\n");
    c.roundtrip(b"get b\r\n", b"VALUE b 0 1\r\ny\r\nEND\r\n");
}

#[test]
fn touch_extends_and_gat_touches() {
    let tern = Tern::start();
    let mut c = tern.connect();
    c.roundtrip(
        b"set a 0 5 1\r\nx\r\nset b 0 5 1\r\ny\r\n",
        b"STORED\r\nSTORED\r\n",
    );
    c.roundtrip(b"touch a 100\r\n", b"TOUCHED\r\n");
    c.roundtrip(b"gat 100 b\r\n", b"VALUE b 0 1\r\ny\r\nEND\r\n");
    tern.clock.advance(50);
    c.roundtrip(
        b"get a b\r\n",
        b"VALUE a 0 1\r\nx\r\nVALUE b 0 1\r\ny\r\nEND\r\n",
    );
    c.roundtrip(b"gat 0 a\r\n", b"VALUE a 0 1\r\nx\r\nEND\r\n");
    tern.clock.advance(100);
    c.roundtrip(b"get a b\r\n", b"VALUE a 0 1\r\nx\r\nEND\r\n");
}

#[test]
fn counters_add_up_across_worker_threads() {
    let tern = Tern::start_with(|s| s.threads = 4);
    let mut clients: Vec<Client> = (0..8).map(|_| tern.connect()).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.roundtrip(&set_cmd(&format!("k{i}"), b"v"), b"STORED\r\n");
        c.roundtrip(
            format!("get k{i} nope\r\n").as_bytes(),
            &value_reply(&format!("k{i}"), b"v"),
        );
        c.roundtrip(b"delete nope\r\n", b"NOT_FOUND\r\n");
    }
    let stats = clients[0].stats("");
    let get = |name: &str| stat_value(&stats, name).unwrap();
    assert_eq!(get("cmd_set"), "8");
    assert_eq!(get("cmd_get"), "16");
    assert_eq!(get("get_hits"), "8");
    assert_eq!(get("get_misses"), "8");
    assert_eq!(get("delete_misses"), "8");
    assert_eq!(get("curr_connections"), "8");
    assert_eq!(get("curr_items"), "8");
    assert_eq!(get("threads"), "4");
}

#[test]
fn stats_has_every_required_field() {
    let tern = Tern::start();
    let mut c = tern.connect();
    let stats = c.stats("");
    for name in [
        "pid",
        "uptime",
        "time",
        "version",
        "pointer_size",
        "rusage_user",
        "rusage_system",
        "max_connections",
        "curr_connections",
        "total_connections",
        "rejected_connections",
        "connection_structures",
        "cmd_get",
        "cmd_set",
        "cmd_flush",
        "cmd_touch",
        "get_hits",
        "get_misses",
        "get_expired",
        "get_flushed",
        "delete_hits",
        "delete_misses",
        "incr_hits",
        "incr_misses",
        "decr_hits",
        "decr_misses",
        "cas_hits",
        "cas_misses",
        "cas_badval",
        "touch_hits",
        "touch_misses",
        "bytes_read",
        "bytes_written",
        "limit_maxbytes",
        "threads",
        "curr_items",
        "total_items",
        "bytes",
        "evictions",
        "reclaimed",
    ] {
        assert!(stats.iter().any(|(k, _)| k == name), "stats lacks {name}");
    }
    let rusage = &stats.iter().find(|(k, _)| k == "rusage_user").unwrap().1;
    let (secs, usecs) = rusage.split_once('.').expect("sec.usec");
    assert!(secs.parse::<u64>().is_ok() && usecs.len() == 6, "{rusage}");
}

#[test]
fn stats_reset_zeroes_counters() {
    let tern = Tern::start();
    let mut c = tern.connect();
    c.roundtrip(b"get a\r\n", b"END\r\n");
    assert_eq!(c.stat("cmd_get"), "1");
    c.roundtrip(b"stats reset\r\n", b"RESET\r\n");
    assert_eq!(c.stat("cmd_get"), "0");
}

#[test]
fn connection_over_the_limit_is_refused_and_others_keep_working() {
    let tern = Tern::start_with(|s| s.max_connections = 2);
    let mut a = tern.connect();
    let mut b = tern.connect();
    a.roundtrip(b"set a 0 0 1\r\nx\r\n", b"STORED\r\n");
    b.roundtrip(b"get a\r\n", b"VALUE a 0 1\r\nx\r\nEND\r\n");
    let mut c = tern.connect();
    let mut reply = Vec::new();
    c.stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = c.stream.read_to_end(&mut reply);
    assert_eq!(reply, b"ERROR Too many open connections\r\n");
    a.roundtrip(b"get a\r\n", b"VALUE a 0 1\r\nx\r\nEND\r\n");
    assert_eq!(a.stat("rejected_connections"), "1");
}

/// `-o no_maxconns_fast`: at `-c` the server stops accepting instead of refusing; a client
/// that connects meanwhile waits in the listen backlog, unanswered, and is served once another
/// connection closes. `stats` shows the stop as memcached does.
#[test]
fn without_maxconns_fast_a_connection_over_the_limit_waits_for_a_free_slot() {
    let tern = Tern::start_with(|s| {
        s.max_connections = 2;
        s.tuning.maxconns_fast = false;
    });
    let mut a = tern.connect();
    let b = tern.connect();
    a.roundtrip(b"set a 0 0 1\r\nx\r\n", b"STORED\r\n");
    // The kernel completes the handshake into the backlog; the server takes nothing from it.
    let mut c = tern.connect();
    c.send(b"get a\r\n");
    assert!(c.read_available().is_empty(), "served over -c");
    let stats = a.stats("");
    let stat = |name: &str| stat_value(&stats, name);
    assert_eq!(stat("accepting_conns").as_deref(), Some("0"));
    assert_eq!(stat("listen_disabled_num").as_deref(), Some("1"));
    assert_eq!(stat("curr_connections").as_deref(), Some("2"));
    // memcached shows rejected_connections only in maxconns_fast mode.
    assert_eq!(stat("rejected_connections"), None);
    drop(b);
    let want = b"VALUE a 0 1\r\nx\r\nEND\r\n";
    assert_eq!(c.read_exact_n(want.len()), want);
    assert_eq!(a.stat("accepting_conns"), "1");
    let stopped: u64 = a.stat("time_in_listen_disabled_us").parse().unwrap();
    assert!(stopped > 0);
    assert_eq!(a.stat("total_connections"), "3");
}

#[test]
fn shutdown_with_dash_a_stops_the_server() {
    let tern = Tern::start_with(|s| s.allow_shutdown = true);
    let mut c = tern.connect();
    c.send(b"shutdown\r\n");
    assert!(c.is_closed());
    tern.handle.wait();
}

#[test]
fn graceful_shutdown_sends_every_reply_already_promised() {
    let tern = Tern::start();
    let mut c = tern.connect();
    let value = vec![b'z'; 100 * 1024];
    c.roundtrip(&set_cmd("big", &value), b"STORED\r\n");
    // 200 pipelined gets: 20 MB of replies, far more than the socket buffers hold, so most are
    // still to be composed or sent when the shutdown begins.
    let n = 200;
    c.send(&b"get big\r\n".repeat(n));
    let one = value_reply("big", &value);
    let mut buf = vec![0u8; one.len()];
    c.stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    c.stream.read_exact(&mut buf).unwrap();
    assert!(buf == one);
    let stopper = std::thread::spawn(move || tern.handle.shutdown());
    for i in 1..n {
        c.stream
            .read_exact(&mut buf)
            .unwrap_or_else(|e| panic!("reply {i} lost: {e}"));
        assert!(buf == one, "reply {i} differs");
    }
    assert!(c.is_closed());
    stopper.join().unwrap();
}

#[test]
fn stats_conns_lists_every_connection() {
    let tern = Tern::start();
    let mut a = tern.connect();
    let b = tern.connect();
    a.roundtrip(b"get x\r\n", b"END\r\n");
    let lines = a.stats("conns");
    let ours = format!("tcp:{}", b.stream.local_addr().unwrap());
    assert!(
        lines
            .iter()
            .any(|(k, v)| k.ends_with(":addr") && *v == ours),
        "{lines:?}"
    );
    let listening = format!("tcp:{}", tern.addr());
    assert!(lines
        .iter()
        .any(|(k, v)| k.ends_with(":listen_addr") && *v == listening));
    assert!(lines.iter().any(|(_, v)| v == "conn_listening"));
    tern.clock.advance(4);
    let lines = a.stats("conns");
    assert!(
        lines
            .iter()
            .any(|(k, v)| k.ends_with(":secs_since_last_cmd") && v == "4"),
        "{lines:?}"
    );
}

#[test]
fn dash_m_capital_refuses_with_out_of_memory_and_evicts_nothing() {
    let tern = Tern::start_with(|s| {
        s.store.memory_limit = 4 * 1024 * 1024;
        s.store.evict = false;
    });
    let mut c = tern.connect();
    let value = vec![b'm'; 10_000];
    let mut stored = 0;
    let refusal = loop {
        c.send(&set_cmd(&format!("k{stored}"), &value));
        let reply = read_line(&mut c);
        if reply != "STORED\r\n" {
            break reply;
        }
        stored += 1;
        assert!(stored < 2000, "-m 4 held {stored} 10 KB values");
    };
    assert_eq!(refusal, "SERVER_ERROR out of memory storing object\r\n");
    assert!(stored > 100, "only {stored} values fit in 4 MB");
    // Nothing was evicted to make room: every stored value is still there.
    let mut gets = Vec::new();
    let mut expect = Vec::new();
    for i in 0..stored {
        gets.extend(format!("get k{i}\r\n").into_bytes());
        expect.extend(value_reply(&format!("k{i}"), &value));
    }
    c.roundtrip(&gets, &expect);
    assert_eq!(c.stat("evictions"), "0");
}

/// Reads one reply line, through its `\r\n`.
fn read_line(c: &mut Client) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    c.stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    while !line.ends_with(b"\r\n") {
        c.stream.read_exact(&mut byte).expect("reply line");
        line.push(byte[0]);
    }
    String::from_utf8_lossy(&line).into_owned()
}

#[test]
fn half_closed_client_gets_its_replies_and_the_connection_ends() {
    // `printf 'get a\r\n' | nc -q1 ...`: the request and the FIN arrive together. The server
    // must answer, then see the end of the stream and close (not wait forever for more data).
    let tern = Tern::start();
    let mut control = tern.connect();
    for _ in 0..20 {
        let mut c = tern.connect();
        // First make it an established, idle connection the worker already polls (a new one
        // is read to the end anyway), then send a request and the FIN back to back.
        c.send(b"get nope\r\n");
        assert_eq!(c.read_exact_n(5), b"END\r\n");
        c.send(b"set a 0 0 1\r\nx\r\nget a\r\n");
        c.stream.shutdown(std::net::Shutdown::Write).unwrap();
        let mut reply = Vec::new();
        c.stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        c.stream
            .read_to_end(&mut reply)
            .expect("the server closes after answering");
        assert_eq!(reply, b"STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n");
    }
    // Every one of them is gone on the server's side too.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while control.stat("curr_connections") != "1" {
        assert!(
            std::time::Instant::now() < deadline,
            "half-closed connections leaked"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
