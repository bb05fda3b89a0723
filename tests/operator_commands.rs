//! The store operator commands over TCP: `lru_crawler`, `slabs`, `lru`, `cache_memlimit`,
//! with memcached 1.6.18's replies (compared byte for byte against a real memcached when
//! `TERN_DIFF_MEMCACHED` is set), and Debian's `memcached-tool` reading tern through them.

mod common;

use std::time::{Duration, Instant};

use common::{differential, stat_value, Client, Memcached, Tern};

fn set(c: &mut Client, key: &str, exptime: u32, value: &str) {
    c.roundtrip(
        format!("set {key} 0 {exptime} {}\r\n{value}\r\n", value.len()).as_bytes(),
        b"STORED\r\n",
    );
}

/// Reads a metadump reply up to and including `END\r\n`.
fn metadump(c: &mut Client, spec: &str) -> String {
    use std::io::Read;
    c.send(format!("lru_crawler metadump {spec}\r\n").as_bytes());
    let mut text = Vec::new();
    let mut buf = [0u8; 65536];
    c.stream
        .set_read_timeout(Some(common::REPLY_TIMEOUT))
        .unwrap();
    while !text.ends_with(b"END\r\n") && !text.ends_with(b"\r\n") || text.is_empty() {
        let n = c.stream.read(&mut buf).expect("metadump reply");
        assert!(n > 0, "closed during metadump");
        text.extend_from_slice(&buf[..n]);
        if text.ends_with(b"END\r\n") {
            break;
        }
    }
    String::from_utf8(text).unwrap()
}

/// Replies that do not depend on the store's contents, as memcached 1.6.18 sends them.
const FIXED_REPLIES: &[(&str, &str)] = &[
    ("lru_crawler crawl 0\r\n", "BADCLASS invalid class id\r\n"),
    ("lru_crawler crawl x\r\n", "BADCLASS invalid class id\r\n"),
    (
        "lru_crawler metadump 0\r\n",
        "BADCLASS invalid class id\r\n",
    ),
    ("lru_crawler mgdump 1\r\n", "ERROR\r\n"),
    ("lru_crawler sleep 50\r\n", "OK\r\n"),
    (
        "lru_crawler sleep 2000000\r\n",
        "CLIENT_ERROR sleep must be one second or less\r\n",
    ),
    ("lru_crawler tocrawl 10\r\n", "OK\r\n"),
    (
        "lru_crawler tocrawl x\r\n",
        "CLIENT_ERROR bad command line format\r\n",
    ),
    ("lru_crawler bogus\r\n", "ERROR\r\n"),
    ("lru_crawler\r\n", "ERROR\r\n"),
    (
        "lru_crawler enable\r\n",
        "ERROR failed to start lru crawler thread\r\n",
    ),
    (
        "slabs reassign 1 1\r\n",
        "SAME src and dst class are identical\r\n",
    ),
    (
        "slabs reassign 1000 1\r\n",
        "BADCLASS invalid src or dst class id\r\n",
    ),
    (
        "slabs reassign -2 1\r\n",
        "BADCLASS invalid src or dst class id\r\n",
    ),
    (
        "slabs reassign 0 1\r\n",
        "NOSPARE source class has no spare pages\r\n",
    ),
    (
        "slabs reassign invalid1 invalid2\r\n",
        "CLIENT_ERROR bad command line format\r\n",
    ),
    ("slabs automove 0\r\n", "OK\r\n"),
    ("slabs automove 3\r\n", "ERROR\r\n"),
    (
        "slabs automove invalid\r\n",
        "CLIENT_ERROR bad command line format\r\n",
    ),
    ("slabs automove 1 noreply\r\n", ""),
    ("slabs bogus\r\n", "ERROR\r\n"),
    ("lru tune 10 25 0.1 2\r\n", "OK\r\n"),
    (
        "lru tune 90 25 0.1 2\r\n",
        "ERROR hot and warm pcts must not exceed 80\r\n",
    ),
    ("lru mode flat\r\n", "OK\r\n"),
    ("lru mode x\r\n", "ERROR\r\n"),
    ("lru temp_ttl 30\r\n", "OK\r\n"),
    ("lru temp_ttl -1\r\n", "OK\r\n"),
    ("lru bogus\r\n", "ERROR\r\n"),
    (
        "cache_memlimit 1\r\n",
        "MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n",
    ),
    ("cache_memlimit x\r\n", "ERROR\r\n"),
    ("cache_memlimit\r\n", "ERROR\r\n"),
    ("cache_memlimit 16 noreply\r\n", ""),
    ("cache_memlimit 32\r\n", "OK\r\n"),
    ("version\r\n", "VERSION 1.6.18\r\n"),
];

fn check_fixed(c: &mut Client) {
    for (request, expected) in FIXED_REPLIES {
        c.send(request.as_bytes());
        if expected.is_empty() {
            assert!(c.read_available().is_empty(), "{request:?}");
        } else {
            c.expect(expected.as_bytes());
        }
    }
}

#[test]
fn operator_commands_answer_as_memcached() {
    let t = Tern::start();
    check_fixed(&mut t.connect());
    if differential() {
        let m = Memcached::start(&[]);
        check_fixed(&mut Client::connect(m.addr));
    }
}

#[test]
fn lru_and_memlimit_show_in_stats_settings() {
    let t = Tern::start();
    let mut c = t.connect();
    c.roundtrip(b"lru tune 10 25 0.1 2\r\n", b"OK\r\n");
    c.roundtrip(b"lru mode flat\r\n", b"OK\r\n");
    c.roundtrip(b"lru temp_ttl 30\r\n", b"OK\r\n");
    c.roundtrip(b"lru_crawler sleep 7\r\n", b"OK\r\n");
    c.roundtrip(b"slabs automove 2\r\n", b"OK\r\n");
    c.roundtrip(b"cache_memlimit 8\r\n", b"OK\r\n");
    let s = c.stats("settings");
    for (name, value) in [
        ("hot_lru_pct", "10"),
        ("warm_lru_pct", "25"),
        ("hot_max_factor", "0.10"),
        ("warm_max_factor", "2.00"),
        ("lru_segmented", "no"),
        ("temp_lru", "yes"),
        ("temporary_ttl", "30"),
        ("lru_crawler_sleep", "7"),
        ("slab_automove", "2"),
        ("maxbytes", "8388608"),
    ] {
        assert_eq!(stat_value(&s, name).as_deref(), Some(value), "{name}");
    }
    assert_eq!(c.stat("limit_maxbytes"), "8388608");
    c.roundtrip(b"lru temp_ttl -1\r\n", b"OK\r\n");
    c.roundtrip(b"lru_crawler disable\r\n", b"OK\r\n");
    let s = c.stats("settings");
    assert_eq!(stat_value(&s, "temp_lru").as_deref(), Some("no"));
    assert_eq!(stat_value(&s, "lru_crawler").as_deref(), Some("no"));
    c.roundtrip(
        b"lru_crawler crawl all\r\n",
        b"CLIENT_ERROR lru crawler disabled\r\n",
    );
    c.roundtrip(
        b"lru_crawler metadump all\r\n",
        b"CLIENT_ERROR lru crawler disabled\r\n",
    );
}

#[test]
fn lru_mode_needs_the_maintainer() {
    let t = Tern::start_with(|s| s.tuning.lru_maintainer = false);
    let mut c = t.connect();
    c.roundtrip(b"lru mode segmented\r\n", b"ERROR\r\n");
    c.roundtrip(b"lru temp_ttl 30\r\n", b"ERROR\r\n");
    c.roundtrip(b"lru tune 10 25 0.1 2\r\n", b"OK\r\n");
}

#[test]
fn crawl_reclaims_expired_items_of_the_named_classes() {
    let t = Tern::start();
    let mut c = t.connect();
    for i in 0..30 {
        set(&mut c, &format!("ifoo{i}"), 0, "ok");
        set(&mut c, &format!("sfoo{i}"), 1, "ok");
    }
    t.clock.advance(3);
    c.roundtrip(b"lru_crawler crawl 1\r\n", b"OK\r\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.stat("lru_crawler_running") != "0" {
        assert!(Instant::now() < deadline, "crawl never finished");
        std::thread::sleep(Duration::from_millis(100));
    }
    let items = c.stats("items");
    assert_eq!(
        stat_value(&items, "items:1:crawler_reclaimed").as_deref(),
        Some("30")
    );
    assert_eq!(c.stat("curr_items"), "30");
    let slabs = c.stats("slabs");
    assert_eq!(stat_value(&slabs, "1:used_chunks").as_deref(), Some("30"));
}

#[test]
fn lru_crawler_running_shows_once_the_crawler_is_enabled_live() {
    // lru-crawler.t starts with the crawler off (-o no_modern), enables it, then waits on this
    // line: it must follow the live switch, not the start-up flag.
    let t = Tern::start_with(|s| s.store.lru_crawler = false);
    let mut c = t.connect();
    assert_eq!(stat_value(&c.stats(""), "lru_crawler_running"), None);
    c.roundtrip(b"lru_crawler enable\r\n", b"OK\r\n");
    assert_eq!(c.stat("lru_crawler_running"), "0");
    c.roundtrip(b"lru_crawler disable\r\n", b"OK\r\n");
    assert_eq!(stat_value(&c.stats(""), "lru_crawler_running"), None);
}

#[test]
fn metadump_lists_live_items_once_in_memcacheds_format() {
    let t = Tern::start();
    let mut c = t.connect();
    set(&mut c, "plain", 0, "v");
    set(&mut c, "later", 100, "v");
    set(&mut c, "gone", 1, "v");
    t.clock.advance(2);
    c.roundtrip(b"get plain\r\n", b"VALUE plain 0 1\r\nv\r\nEND\r\n");
    let dump = metadump(&mut c, "all");
    let now = t.clock.unix_now();
    let lines: Vec<&str> = dump.split('\n').collect();
    assert!(dump.ends_with("\nEND\r\n"), "{dump:?}");
    let plain = lines.iter().find(|l| l.starts_with("key=plain ")).unwrap();
    assert!(
        plain.starts_with(&format!("key=plain exp=-1 la={now} cas=")),
        "{plain}"
    );
    assert!(plain.contains(" fetch=yes cls=1 size="), "{plain}");
    let later = lines.iter().find(|l| l.starts_with("key=later ")).unwrap();
    assert!(
        later.starts_with(&format!("key=later exp={} la={}", now - 2 + 100, now - 2)),
        "{later}"
    );
    assert!(later.contains(" fetch=no cls=1 "), "{later}");
    assert!(!dump.contains("key=gone"), "expired items are not listed");
    assert_eq!(dump.matches("key=").count(), 2, "{dump:?}");

    // Keys are URL-encoded.
    set(&mut c, "a%b", 0, "v");
    let dump = metadump(&mut c, "hash");
    assert!(dump.contains("key=a%25b exp=-1 "), "{dump:?}");
}

#[test]
fn metadump_of_many_items_streams_every_key_once() {
    let t = Tern::start();
    let mut c = t.connect();
    let n = 60_000;
    let mut batch = Vec::new();
    for i in 0..n {
        batch.extend_from_slice(format!("set key:{i} 0 0 1 noreply\r\nz\r\n").as_bytes());
    }
    c.send(&batch);
    c.roundtrip(b"version\r\n", b"VERSION 1.6.18\r\n");
    let dump = metadump(&mut c, "hash");
    let mut seen = vec![false; n];
    for line in dump.lines().filter(|l| l.starts_with("key=")) {
        let key = line.split(' ').next().unwrap();
        let i: usize = key["key=key%3A".len()..].parse().unwrap();
        assert!(!seen[i], "key {i} listed twice");
        seen[i] = true;
    }
    assert!(seen.iter().all(|&s| s), "some keys were not listed");
}

#[test]
fn metadump_refuses_pipelined_commands_and_dash_x() {
    let t = Tern::start();
    let mut c = t.connect();
    c.roundtrip(
        b"version\r\nlru_crawler metadump all\r\n",
        b"VERSION 1.6.18\r\nERROR cannot pipeline other commands before metadump\r\n",
    );
    let t = Tern::start_with(|s| s.dump_enabled = false);
    t.connect().roundtrip(
        b"lru_crawler metadump all\r\n",
        b"ERROR metadump not allowed\r\n",
    );
}

#[test]
fn slabs_reassign_moves_pages_and_honours_no_slab_reassign() {
    let t = Tern::start();
    let mut c = t.connect();
    // Enough 1-byte items for several pages of class 1.
    let mut batch = Vec::new();
    for i in 0..20_000 {
        batch.extend_from_slice(format!("set k{i} 0 0 1 noreply\r\nz\r\n").as_bytes());
    }
    c.send(&batch);
    c.roundtrip(b"version\r\n", b"VERSION 1.6.18\r\n");
    let pages = |c: &mut Client, cls: u32| -> u64 {
        stat_value(&c.stats("slabs"), &format!("{cls}:total_pages"))
            .map_or(0, |v| v.parse().unwrap())
    };
    let before = pages(&mut c, 1);
    assert!(before >= 2, "{before}");
    c.roundtrip(b"slabs reassign 1 5\r\n", b"OK\r\n");
    assert_eq!(pages(&mut c, 1), before - 1);
    assert_eq!(pages(&mut c, 5), 1);
    // To the global pool and back.
    c.roundtrip(b"slabs reassign 1 0\r\n", b"OK\r\n");
    assert_eq!(pages(&mut c, 1), before - 2);
    c.roundtrip(b"slabs reassign 0 7\r\n", b"OK\r\n");
    assert_eq!(pages(&mut c, 7), 1);
    c.roundtrip(
        b"slabs reassign 7 1\r\n",
        b"NOSPARE source class has no spare pages\r\n",
    );
    let t = Tern::start_with(|s| s.slab_reassign = false);
    let mut c = t.connect();
    c.roundtrip(
        b"slabs reassign 1 2\r\n",
        b"CLIENT_ERROR slab reassignment disabled\r\n",
    );
    c.roundtrip(
        b"slabs reassign x y\r\n",
        b"CLIENT_ERROR slab reassignment disabled\r\n",
    );
    c.roundtrip(b"slabs automove 1\r\n", b"OK\r\n");
}

#[test]
fn cache_memlimit_grows_and_shrinks_the_store() {
    let t = Tern::start_with(|s| s.store.memory_limit = 8 << 20);
    let mut c = t.connect();
    let value = "B".repeat(60_000);
    let fill = |c: &mut Client, from: usize, to: usize| {
        let mut batch = Vec::new();
        for i in from..to {
            batch.extend_from_slice(format!("set key{i} 0 0 60000 noreply\r\n").as_bytes());
            batch.extend_from_slice(value.as_bytes());
            batch.extend_from_slice(b"\r\n");
        }
        c.send(&batch);
        c.roundtrip(b"version\r\n", b"VERSION 1.6.18\r\n");
    };
    fill(&mut c, 0, 200);
    assert_ne!(
        c.stat("evictions"),
        "0",
        "8 MB holds fewer than 200 x 60 KB"
    );
    c.roundtrip(b"cache_memlimit 32\r\n", b"OK\r\n");
    let evictions = c.stat("evictions");
    fill(&mut c, 200, 400);
    assert_eq!(
        c.stat("evictions"),
        evictions,
        "no evictions under the new limit"
    );
    let malloced = |c: &mut Client| -> u64 {
        stat_value(&c.stats("slabs"), "total_malloced")
            .unwrap()
            .parse()
            .unwrap()
    };
    let big = malloced(&mut c);
    assert!(big > 8 << 20, "{big}");
    c.roundtrip(b"cache_memlimit 8\r\n", b"OK\r\n");
    let deadline = Instant::now() + Duration::from_secs(15);
    while malloced(&mut c) > 8 << 20 {
        assert!(
            Instant::now() < deadline,
            "pages over the limit were not given back"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Still serves sets, inside the lowered limit.
    fill(&mut c, 400, 450);
    assert!(malloced(&mut c) <= 8 << 20);
}

/// Debian's memcached-tool, when installed.
const MEMCACHED_TOOL: &str = "/usr/share/memcached/scripts/memcached-tool";

fn memcached_tool(addr: std::net::SocketAddr, mode: &str) -> String {
    let out = std::process::Command::new("perl")
        .args([MEMCACHED_TOOL, &addr.to_string(), mode])
        .output()
        .expect("run memcached-tool");
    assert!(out.status.success(), "memcached-tool {mode}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn memcached_tool_reads_tern() {
    if !std::path::Path::new(MEMCACHED_TOOL).exists() {
        eprintln!("{MEMCACHED_TOOL} not installed (apt-get install memcached): skipped");
        return;
    }
    let t = Tern::start();
    let mut c = t.connect();
    set(&mut c, "k1", 0, "hello");
    set(&mut c, "k2", 0, "world!");
    let keys = memcached_tool(t.addr(), "keys");
    assert!(
        keys.contains("key=k1 ") && keys.contains("key=k2 "),
        "{keys}"
    );
    let dump = memcached_tool(t.addr(), "dump");
    assert!(dump.contains("add k1 0 0 5\r\nhello"), "{dump}");
    assert!(dump.contains("add k2 0 0 6\r\nworld!"), "{dump}");
    let display = memcached_tool(t.addr(), "display");
    assert!(display.contains("Item_Size"), "{display}");
    let stats = memcached_tool(t.addr(), "stats");
    assert!(
        stats.contains("curr_items") && stats.contains("2"),
        "{stats}"
    );
    let settings = memcached_tool(t.addr(), "settings");
    assert!(settings.contains("maxbytes"), "{settings}");
}
