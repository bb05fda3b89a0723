//! The Prometheus endpoint (`-o metrics_listen`): exact counters and histogram counts after a
//! known sequence of commands, `promtool check metrics` on the output, and scrapers that
//! misbehave (bad requests, half a request, never reading, a hundred at once) while clients
//! keep being served.
//!
//! promtool comes from Debian's `prometheus` package (tests/run.sh installs it); without it the
//! promtool test says so and passes, unless `TERN_REQUIRE_CLIENTS` is set.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{Client, Tern};

fn start() -> (Tern, SocketAddr) {
    let tern = Tern::start_with(|s| {
        s.threads = 2;
        s.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    });
    let addr = tern.handle.metrics_addr().expect("metrics listener");
    (tern, addr)
}

/// Sends `request` as is and reads the whole response (the server closes after it).
fn http(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// `GET /metrics`: the status line and the body.
fn scrape(addr: SocketAddr) -> (String, String) {
    let r = http(addr, b"GET /metrics HTTP/1.1\r\nHost: tern\r\n\r\n");
    let (head, body) = r.split_once("\r\n\r\n").expect("a head");
    (head.lines().next().unwrap().to_string(), body.to_string())
}

/// The value of the sample written exactly as `series` (name and labels).
fn value(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

fn must(body: &str, series: &str) -> f64 {
    value(body, series).unwrap_or_else(|| panic!("no sample {series} in\n{body}"))
}

/// A binary GET of `key` (opaque 7).
fn binary_get(key: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&(key.len() as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0]);
    p.extend_from_slice(&(key.len() as u32).to_be_bytes());
    p.extend_from_slice(&7u32.to_be_bytes());
    p.extend_from_slice(&[0; 8]);
    p.extend_from_slice(key);
    p
}

const FAMILIES: [&str; 8] = [
    "get", "set", "delete", "arith", "touch", "meta", "config", "other",
];
const PROTOCOLS: [&str; 3] = ["text", "binary", "meta"];

fn hist_count(body: &str, family: &str, protocol: &str) -> f64 {
    must(
        body,
        &format!(
            "tern_request_duration_seconds_count{{family=\"{family}\",protocol=\"{protocol}\"}}"
        ),
    )
}

#[test]
fn counters_and_latency_histograms_after_known_commands() {
    let (tern, maddr) = start();
    let mut text = tern.connect();
    let mut read = 0usize;
    let mut written = 0usize;
    let mut rt = |c: &mut Client, req: &[u8], reply: &[u8]| {
        c.roundtrip(req, reply);
        read += req.len();
        written += reply.len();
    };
    rt(&mut text, b"set a 0 0 1\r\nx\r\n", b"STORED\r\n");
    rt(&mut text, b"get a\r\n", b"VALUE a 0 1\r\nx\r\nEND\r\n");
    rt(&mut text, b"get b\r\n", b"END\r\n");
    rt(&mut text, b"delete a\r\n", b"DELETED\r\n");
    rt(&mut text, b"delete a\r\n", b"NOT_FOUND\r\n");
    rt(&mut text, b"incr n 1\r\n", b"NOT_FOUND\r\n");
    rt(&mut text, b"touch t 0\r\n", b"NOT_FOUND\r\n");
    rt(
        &mut text,
        b"version\r\n",
        format!("VERSION {}\r\n", tern::server::VERSION).as_bytes(),
    );
    let mut bin = tern.connect();
    let mut not_found = vec![0x81, 0x00, 0, 0, 0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0, 7];
    not_found.extend_from_slice(&[0; 8]);
    not_found.extend_from_slice(b"Not found");
    rt(&mut bin, &binary_get(b"zz"), &not_found);
    // A meta no-op: whatever the meta executor answers, one line.
    let mut meta = tern.connect();
    meta.send(b"mn\r\n");
    let reply = meta.read_available();
    assert!(reply.ends_with(b"\r\n"), "{reply:?}");
    read += 4;
    written += reply.len();

    let expected: &[(&str, &str, f64)] = &[
        ("get", "text", 2.0),
        ("set", "text", 1.0),
        ("delete", "text", 2.0),
        ("arith", "text", 1.0),
        ("touch", "text", 1.0),
        ("other", "text", 1.0),
        ("get", "binary", 1.0),
        ("meta", "meta", 1.0),
    ];
    // The worker records a connection's requests right after its turn, which ends just after
    // the reply is written: wait (briefly) until the last turns are in.
    let deadline = Instant::now() + Duration::from_secs(5);
    let body = loop {
        let (status, body) = scrape(maddr);
        assert_eq!(status, "HTTP/1.1 200 OK");
        let total: f64 = PROTOCOLS
            .iter()
            .flat_map(|p| FAMILIES.iter().map(move |f| (f, p)))
            .map(|(f, p)| hist_count(&body, f, p))
            .sum();
        if total >= 10.0 || Instant::now() > deadline {
            break body;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    for family in FAMILIES {
        for protocol in PROTOCOLS {
            let want = expected
                .iter()
                .find(|(f, p, _)| *f == family && *p == protocol)
                .map_or(0.0, |e| e.2);
            assert_eq!(
                hist_count(&body, family, protocol),
                want,
                "{family}/{protocol}"
            );
            // Buckets are cumulative and end in +Inf == count; the sum is a duration.
            let labels = format!("family=\"{family}\",protocol=\"{protocol}\"");
            let mut last = 0.0;
            for line in body.lines().filter(|l| {
                l.starts_with("tern_request_duration_seconds_bucket{") && l.contains(&labels)
            }) {
                let v: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
                assert!(v >= last, "{line}");
                last = v;
            }
            assert_eq!(last, want, "{family}/{protocol} +Inf bucket");
            let sum = must(
                &body,
                &format!("tern_request_duration_seconds_sum{{{labels}}}"),
            );
            assert!(sum >= 0.0 && (want > 0.0 || sum == 0.0));
        }
    }
    // The buckets are fine enough to tell 10 µs from 50 µs.
    assert!(body.contains("le=\"1.6e-05\""), "{body}");
    assert!(body.contains("le=\"6.4e-05\""));

    let cmd = |c: &str, s: &str| {
        must(
            &body,
            &format!("memcached_commands_total{{command=\"{c}\",status=\"{s}\"}}"),
        )
    };
    assert_eq!(cmd("get", "hit"), 1.0);
    assert_eq!(cmd("get", "miss"), 2.0);
    assert_eq!(cmd("set", "hit"), 1.0);
    assert_eq!(cmd("delete", "hit"), 1.0);
    assert_eq!(cmd("delete", "miss"), 1.0);
    assert_eq!(cmd("incr", "miss"), 1.0);
    assert_eq!(cmd("incr", "hit"), 0.0);
    assert_eq!(cmd("touch", "miss"), 1.0);
    assert_eq!(cmd("cas", "badval"), 0.0);
    assert_eq!(must(&body, "memcached_read_bytes_total"), read as f64);
    assert_eq!(must(&body, "memcached_written_bytes_total"), written as f64);
    assert_eq!(must(&body, "memcached_current_connections"), 3.0);
    assert_eq!(must(&body, "memcached_connections_total"), 3.0);
    assert_eq!(
        must(
            &body,
            "tern_connections_open{transport=\"tcp\",tls=\"false\"}"
        ),
        3.0
    );
    assert_eq!(
        must(
            &body,
            "tern_connections_opened_total{transport=\"tcp\",tls=\"false\"}"
        ),
        3.0
    );
    assert_eq!(
        must(
            &body,
            "tern_connections_open{transport=\"tcp\",tls=\"true\"}"
        ),
        0.0
    );
    assert_eq!(must(&body, "memcached_current_items"), 0.0);
    assert_eq!(must(&body, "memcached_items_total"), 1.0);
    assert_eq!(must(&body, "memcached_items_evicted_total"), 0.0);
    assert_eq!(must(&body, "memcached_limit_bytes"), 64.0 * 1024.0 * 1024.0);
    assert_eq!(must(&body, "memcached_up"), 1.0);
    assert_eq!(must(&body, "tern_auth_failures_total"), 0.0);
    // The auto-discovery config version is the one `stats` reports.
    let version: f64 = text.stat("cluster_config_version").parse().unwrap();
    assert_eq!(must(&body, "tern_cluster_config_version"), version);
    assert!(must(&body, "process_resident_memory_bytes") > 1e6);
    assert!(value(&body, "process_cpu_seconds_total").is_some());
    assert!(value(&body, "tern_hash_load_factor").is_some());
    assert!(value(&body, "tern_slab_pages_moved_total").is_some());
    assert!(value(&body, "tern_maintenance_runs_total").is_some());
    // The item stored went to a slab class, which has its gauges.
    assert!(
        body.lines()
            .any(|l| l.starts_with("memcached_slab_current_pages{slab=\"")),
        "{body}"
    );

    // A closed connection leaves the gauges.
    drop(meta);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, body) = scrape(maddr);
        let open = must(
            &body,
            "tern_connections_open{transport=\"tcp\",tls=\"false\"}",
        );
        if open == 2.0 {
            assert_eq!(must(&body, "memcached_current_connections"), 2.0);
            break;
        }
        assert!(Instant::now() < deadline, "open connections stay at {open}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn promtool_accepts_the_output() {
    let (tern, maddr) = start();
    let mut c = tern.connect();
    c.roundtrip(b"set k 0 0 2\r\nhi\r\n", b"STORED\r\n");
    c.roundtrip(b"get k\r\n", b"VALUE k 0 2\r\nhi\r\nEND\r\n");
    let (status, body) = scrape(maddr);
    assert_eq!(status, "HTTP/1.1 200 OK");
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if std::env::var_os("TERN_REQUIRE_CLIENTS").is_none() => {
            eprintln!("promtool not found ({e}); install Debian's prometheus package");
            return;
        }
        Err(e) => panic!("promtool: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // OpenMetrics when asked for, as Prometheus asks.
    let om = http(
        maddr,
        b"GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n\r\n",
    );
    assert!(om.contains("Content-Type: application/openmetrics-text; version=1.0.0"));
    assert!(om.ends_with("# EOF\n"));
    assert!(om.contains("# TYPE memcached_commands counter\n"));
}

/// Metric names (`memcached_*`, `tern_*`, `process_*`) used in a text.
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let boundary = text.is_char_boundary(i)
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'));
        let rest = if boundary { &text[i..] } else { "" };
        if boundary
            && ["memcached_", "tern_", "process_"]
                .iter()
                .any(|p| rest.starts_with(p))
        {
            let len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            names.insert(rest[..len].to_string());
            i += len;
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn dashboard_and_alerts_use_only_served_metrics() {
    let (tern, maddr) = start();
    let mut c = tern.connect();
    c.roundtrip(b"set k 0 0 2\r\nhi\r\n", b"STORED\r\n");
    let (_, body) = scrape(maddr);
    let served: std::collections::BTreeSet<String> = body
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect();
    let root = env!("CARGO_MANIFEST_DIR");
    for doc in ["docs/grafana-dashboard.json", "docs/operations.md"] {
        let text = std::fs::read_to_string(format!("{root}/{doc}")).unwrap();
        for name in metric_names(&text) {
            // Prose names families with a wildcard (`tern_tls_*`) or by prefix.
            if name.ends_with('_') || name.starts_with("tern_tls_") || name == "memcached_exporter"
            {
                continue;
            }
            let histogram = format!("{name}_bucket");
            assert!(
                served.contains(&name) || served.contains(&histogram),
                "{doc} uses {name}, which tern does not serve"
            );
        }
    }
}

#[test]
fn misbehaving_scrapers_do_not_affect_serving() {
    let (tern, maddr) = start();
    let mut c = tern.connect();
    let status = |r: &str| r.lines().next().unwrap_or("").to_string();

    // Bad requests each get their status.
    assert_eq!(
        status(&http(maddr, b"hello\r\n\r\n")),
        "HTTP/1.1 400 Bad Request"
    );
    assert_eq!(
        status(&http(maddr, b"GET /nope HTTP/1.1\r\n\r\n")),
        "HTTP/1.1 404 Not Found"
    );
    assert_eq!(
        status(&http(maddr, b"DELETE /metrics HTTP/1.1\r\n\r\n")),
        "HTTP/1.1 405 Method Not Allowed"
    );
    let mut huge = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
    huge.extend(std::iter::repeat(b'a').take(20_000));
    assert_eq!(
        status(&http(maddr, &huge)),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );

    // A scraper that sends half a request, and one that asks and never reads.
    let mut half = TcpStream::connect(maddr).unwrap();
    half.write_all(b"GET /met").unwrap();
    let mut mute = TcpStream::connect(maddr).unwrap();
    mute.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();

    // A hundred scrapers at once, while a client keeps storing and reading.
    let scrapers: Vec<_> = (0..100)
        .map(|_| std::thread::spawn(move || http(maddr, b"GET /metrics HTTP/1.1\r\n\r\n")))
        .collect();
    for i in 0..200 {
        let v = format!("{i:08}");
        c.send(format!("set k{i} 0 0 8\r\n{v}\r\n").as_bytes());
        assert_eq!(c.read_exact_n(8), b"STORED\r\n");
        c.send(format!("get k{i}\r\n").as_bytes());
        let want = format!("VALUE k{i} 0 8\r\n{v}\r\nEND\r\n");
        assert_eq!(String::from_utf8(c.read_exact_n(want.len())).unwrap(), want);
    }
    let mut ok = 0;
    for t in scrapers {
        let r = t.join().unwrap();
        match status(&r).as_str() {
            "HTTP/1.1 200 OK" => {
                ok += 1;
                assert!(r.contains("memcached_commands_total"));
            }
            "HTTP/1.1 503 Service Unavailable" => {}
            other => panic!("scraper got {other:?}"),
        }
    }
    assert!(ok > 0);

    // The half request is closed at its deadline, and the listener still answers.
    half.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(half.read(&mut buf).unwrap(), 0, "closed without an answer");
    let (s, body) = scrape(maddr);
    assert_eq!(s, "HTTP/1.1 200 OK");
    assert!(
        must(
            &body,
            "memcached_commands_total{command=\"set\",status=\"hit\"}"
        ) >= 200.0
    );
    c.roundtrip(b"get k0\r\n", b"VALUE k0 0 8\r\n00000000\r\nEND\r\n");
    drop(mute);
}

fn parse_args(args: &[&str]) -> Result<tern::config::Settings, tern::config::ConfigError> {
    let args = std::iter::once("tern")
        .chain(args.iter().copied())
        .map(std::ffi::OsString::from);
    tern::config::Settings::from_args_env(args, std::iter::empty())
}

#[test]
fn off_by_default_and_loopback_for_a_bare_port() {
    let tern = Tern::start();
    assert!(tern.handle.metrics_addr().is_none());
    let s = parse_args(&["-o", "metrics_listen=9150"]).unwrap();
    assert_eq!(s.metrics_listen, Some("127.0.0.1:9150".parse().unwrap()));
    let s = parse_args(&["-o", "metrics_listen=[::1]:9151"]).unwrap();
    assert_eq!(s.metrics_listen, Some("[::1]:9151".parse().unwrap()));
    let e = parse_args(&["-o", "metrics_listen=nowhere"]).unwrap_err();
    assert!(e.to_string().contains("metrics_listen"), "{e}");
}
