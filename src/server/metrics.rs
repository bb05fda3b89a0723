//! The Prometheus endpoint (`-o metrics_listen=ADDR:PORT`): `GET /metrics` served by a thread
//! of its own, and what it reports.
//!
//! The thread owns one mio `Poll` over its listening socket and at most
//! [`MAX_SCRAPERS`] connections. It never touches a worker: it reads the same per-worker
//! counters `stats` sums (relaxed loads), the per-worker latency histograms
//! (`super::latency`), the store's stats (each shard's lock taken briefly in turn, as `stats`
//! does) and a few gauges kept in [`Observed`]. A scraper that sends garbage gets a 400, 404 or
//! 405; one that is slow to send its request or to read the reply is closed at its deadline
//! ([`SCRAPE_DEADLINE`]); past [`MAX_SCRAPERS`] at once, new ones are refused with a 503 sent
//! without waiting. Each connection carries one request (`Connection: close`).
//!
//! The encoding is `prometheus-client`'s (the Prometheus project's Rust client): the Prometheus
//! text format 0.0.4 by default and OpenMetrics 1.0 when the `Accept` header asks for
//! `application/openmetrics-text` (Prometheus itself does), from one collector.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeLabelSet, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::latency::{self, Family, HistogramSnapshot, Protocol};
use super::shared::Shared;
use super::socket::Socket;
use super::{TERN_VERSION, VERSION};

/// Scrape connections served at once; more are answered 503 and closed. Prometheus scrapes a
/// target from one connection at a time, so a few dozen covers several Prometheus servers
/// plus people with curl, while bounding the memory a flood of connections can hold.
pub const MAX_SCRAPERS: usize = 64;
/// A scraper has this long from its connection to the end of the reply: a client that sends
/// half a request, or never reads the reply, is closed then. Prometheus's default scrape
/// timeout is 10 s; a scrape here takes about a millisecond.
pub const SCRAPE_DEADLINE: Duration = Duration::from_secs(5);
/// The largest request head read; longer ones are refused (431).
const REQUEST_HEAD_MAX: usize = 8 * 1024;
/// The content type of OpenMetrics text.
const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

const LISTENER: Token = Token(usize::MAX - 1);
/// The token of the metrics thread's waker (shutdown).
pub const METRICS_WAKER: Token = Token(usize::MAX);

/// How a client connection reached tern, for the per-transport connection gauges.
#[derive(Debug, Clone, Copy)]
enum Transport {
    Tcp = 0,
    Tls,
    Unix,
}
const TRANSPORTS: [(Transport, &str, &str); 3] = [
    (Transport::Tcp, "tcp", "false"),
    (Transport::Tls, "tcp", "true"),
    (Transport::Unix, "unix", "false"),
];

fn transport_of(sock: &Socket) -> Transport {
    match sock {
        Socket::Tcp(_) => Transport::Tcp,
        Socket::TlsTcp(_) => Transport::Tls,
        Socket::Unix(_) => Transport::Unix,
    }
}

/// What the metrics report that `stats` does not keep: connections by transport, the
/// maintenance thread's activity, and whether latency is recorded at all. Updated per
/// connection or per maintenance run, never per request.
#[derive(Debug, Default)]
pub struct Observed {
    /// Whether workers record request latency (metrics are served).
    pub latency_on: bool,
    open: [AtomicU64; 3],
    opened: [AtomicU64; 3],
    maintenance_runs: AtomicU64,
    maintenance_nanos: AtomicU64,
}

impl Observed {
    /// State for a server that serves metrics (`latency_on`) or not.
    pub fn new(latency_on: bool) -> Observed {
        Observed {
            latency_on,
            ..Observed::default()
        }
    }

    /// A worker adopted `sock`.
    pub fn connection_opened(&self, sock: &Socket) {
        let t = transport_of(sock) as usize;
        self.open[t].fetch_add(1, Ordering::Relaxed);
        self.opened[t].fetch_add(1, Ordering::Relaxed);
    }

    /// A worker closed `sock`, which it had adopted.
    pub fn connection_closed(&self, sock: &Socket) {
        self.open[transport_of(sock) as usize].fetch_sub(1, Ordering::Relaxed);
    }

    /// The timer ran store maintenance for `took`.
    pub fn maintenance_ran(&self, took: Duration) {
        self.maintenance_runs.fetch_add(1, Ordering::Relaxed);
        self.maintenance_nanos.fetch_add(
            u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}

/// The metrics thread: its poller, its listener and the scrapers it is serving.
pub struct MetricsServer {
    poll: Poll,
    listener: TcpListener,
    shared: Arc<Shared>,
    registry: Registry,
    scrapers: HashMap<usize, Scraper>,
    next_token: usize,
}

/// One scrape connection.
struct Scraper {
    sock: TcpStream,
    deadline: Instant,
    head: Vec<u8>,
    reply: Vec<u8>,
    sent: usize,
    /// The request head is complete (or refused): only the reply is left to send.
    answered: bool,
}

impl MetricsServer {
    /// A metrics server on `listener` (already bound), and the waker that stops it.
    pub fn new(
        listener: std::net::TcpListener,
        shared: Arc<Shared>,
    ) -> io::Result<(MetricsServer, Arc<Waker>)> {
        listener.set_nonblocking(true)?;
        let mut listener = TcpListener::from_std(listener);
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), METRICS_WAKER)?);
        let mut registry = Registry::default();
        registry.register_collector(Box::new(TernCollector {
            shared: shared.clone(),
        }));
        Ok((
            MetricsServer {
                poll,
                listener,
                shared,
                registry,
                scrapers: HashMap::new(),
                next_token: 0,
            },
            waker,
        ))
    }

    /// Serves scrapes until the server shuts down.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(256);
        while !self.shared.is_shutting_down() {
            let timeout = self
                .scrapers
                .values()
                .map(|s| s.deadline)
                .min()
                .map(|d| d.saturating_duration_since(Instant::now()));
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for event in events.iter() {
                match event.token() {
                    METRICS_WAKER => {}
                    LISTENER => self.accept(),
                    Token(t) => self.serve(t),
                }
            }
            let now = Instant::now();
            let expired: Vec<usize> = self
                .scrapers
                .iter()
                .filter(|(_, s)| s.deadline <= now)
                .map(|(&t, _)| t)
                .collect();
            for t in expired {
                log::debug!("metrics: closing a scraper past its deadline");
                self.close(t);
            }
        }
        Ok(())
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut sock, _)) => {
                    if self.scrapers.len() >= MAX_SCRAPERS {
                        // Best effort, never waiting: the socket's send buffer takes it.
                        let _ = sock.write(&response(
                            "503 Service Unavailable",
                            "text/plain; charset=utf-8",
                            b"too many concurrent scrapes\n",
                            false,
                        ));
                        continue;
                    }
                    let token = self.next_token;
                    self.next_token = (self.next_token + 1) % (usize::MAX - 2);
                    if self
                        .poll
                        .registry()
                        .register(
                            &mut sock,
                            Token(token),
                            Interest::READABLE | Interest::WRITABLE,
                        )
                        .is_err()
                    {
                        continue;
                    }
                    self.scrapers.insert(
                        token,
                        Scraper {
                            sock,
                            deadline: Instant::now() + SCRAPE_DEADLINE,
                            head: Vec::new(),
                            reply: Vec::new(),
                            sent: 0,
                            answered: false,
                        },
                    );
                    self.serve(token);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Out of descriptors and the like: try again on the next event.
                    log::warn!("metrics: accept failed: {e}");
                    return;
                }
            }
        }
    }

    /// Reads the request (until its head is complete), answers it, and writes the reply
    /// until it is sent or the socket would block.
    fn serve(&mut self, token: usize) {
        let Some(s) = self.scrapers.get_mut(&token) else {
            return;
        };
        let mut done = false;
        if !s.answered {
            let mut buf = [0u8; 2048];
            loop {
                match s.sock.read(&mut buf) {
                    Ok(0) => {
                        done = true;
                        break;
                    }
                    Ok(n) => {
                        s.head.extend_from_slice(&buf[..n]);
                        if let Some(end) = find_head_end(&s.head) {
                            s.head.truncate(end);
                            break;
                        }
                        if s.head.len() > REQUEST_HEAD_MAX {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        done = true;
                        break;
                    }
                }
            }
            if done {
                self.close(token);
                return;
            }
            let complete = find_head_end(&s.head).is_some() || s.head.len() > REQUEST_HEAD_MAX;
            if !complete {
                return;
            }
            let head = std::mem::take(&mut s.head);
            s.reply = answer(&head, &self.registry);
            s.answered = true;
        }
        while s.sent < s.reply.len() {
            match s.sock.write(&s.reply[s.sent..]) {
                Ok(0) => {
                    done = true;
                    break;
                }
                Ok(n) => s.sent += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    done = true;
                    break;
                }
            }
        }
        let _ = done;
        self.close(token);
    }

    fn close(&mut self, token: usize) {
        if let Some(mut s) = self.scrapers.remove(&token) {
            let _ = self.poll.registry().deregister(&mut s.sock);
            let _ = s.sock.shutdown(std::net::Shutdown::Write);
        }
    }
}

/// Where the request head ends (after its blank line), if it has.
fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// The whole HTTP response to one request head.
fn answer(head: &[u8], registry: &Registry) -> Vec<u8> {
    const PLAIN: &str = "text/plain; charset=utf-8";
    if head.len() > REQUEST_HEAD_MAX || find_head_end(head).is_none() {
        return response(
            "431 Request Header Fields Too Large",
            PLAIN,
            b"request head too large\n",
            false,
        );
    }
    let Ok(text) = std::str::from_utf8(head) else {
        return response("400 Bad Request", PLAIN, b"bad request\n", false);
    };
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return response("400 Bad Request", PLAIN, b"bad request line\n", false);
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() || !target.starts_with('/') {
        return response("400 Bad Request", PLAIN, b"bad request line\n", false);
    }
    let mut openmetrics = false;
    for line in lines.filter(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return response("400 Bad Request", PLAIN, b"bad header line\n", false);
        };
        if name.trim().eq_ignore_ascii_case("accept")
            && value.contains("application/openmetrics-text")
        {
            openmetrics = true;
        }
    }
    let path = target.split('?').next().unwrap_or(target);
    if path != "/metrics" {
        return response(
            "404 Not Found",
            PLAIN,
            b"not found: metrics are at /metrics\n",
            false,
        );
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => {
            let mut r = response(
                "405 Method Not Allowed",
                PLAIN,
                b"method not allowed\n",
                false,
            );
            // The Allow header is required with a 405: insert it before the blank line.
            let at = r.len() - b"method not allowed\n".len() - 2;
            r.splice(at..at, b"Allow: GET, HEAD\r\n".iter().copied());
            return r;
        }
    };
    let mut body = String::with_capacity(64 * 1024);
    let (encoded, content_type) = if openmetrics {
        (
            prometheus_client::encoding::text::encode(&mut body, registry),
            OPENMETRICS_CONTENT_TYPE,
        )
    } else {
        (
            prometheus_client::encoding::prometheus_text::encode(&mut body, registry),
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        )
    };
    if encoded.is_err() {
        return response(
            "500 Internal Server Error",
            PLAIN,
            b"encoding failed\n",
            false,
        );
    }
    response("200 OK", content_type, body.as_bytes(), head_only)
}

fn response(status: &str, content_type: &str, body: &[u8], head_only: bool) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        r.extend_from_slice(body);
    }
    r
}

/// Gathers everything at scrape time.
struct TernCollector {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for TernCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TernCollector")
    }
}

type EncResult = Result<(), std::fmt::Error>;

fn counter(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: impl EncodeCounterValue,
) -> EncResult {
    e.encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, _, u64>(&v, None)
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: impl EncodeGaugeValue) -> EncResult {
    e.encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&v)
}

fn labelled_counters<L: EncodeLabelSet>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[(L, u64)],
) -> EncResult {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in series {
        m.encode_family(labels)?
            .encode_counter::<NoLabelSet, _, u64>(v, None)?;
    }
    Ok(())
}

fn labelled_gauges<L: EncodeLabelSet>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[(L, u64)],
) -> EncResult {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in series {
        m.encode_family(labels)?.encode_gauge(v)?;
    }
    Ok(())
}

/// memcached_exporter's per-slab metrics, from `stats slabs` fields (`<class>:<field>`):
/// (field, name, help, counter?).
const SLAB_FIELDS: &[(&str, &str, &str, bool)] = &[
    (
        "chunk_size",
        "memcached_slab_chunk_size_bytes",
        "Number of bytes allocated to each chunk within this slab class.",
        false,
    ),
    (
        "chunks_per_page",
        "memcached_slab_chunks_per_page",
        "Number of chunks within a single page for this slab class.",
        false,
    ),
    (
        "total_pages",
        "memcached_slab_current_pages",
        "Number of pages allocated to this slab class.",
        false,
    ),
    (
        "total_chunks",
        "memcached_slab_current_chunks",
        "Number of chunks allocated to this slab class.",
        false,
    ),
    (
        "used_chunks",
        "memcached_slab_chunks_used",
        "Number of chunks allocated to an item.",
        false,
    ),
    (
        "free_chunks",
        "memcached_slab_chunks_free",
        "Number of chunks not yet allocated to items.",
        false,
    ),
    (
        "free_chunks_end",
        "memcached_slab_chunks_free_end",
        "Number of free chunks at the end of the last allocated page.",
        false,
    ),
];

/// memcached_exporter's per-slab metrics, from `stats items` fields (`items:<class>:<field>`).
const ITEM_FIELDS: &[(&str, &str, &str, bool)] = &[
    ("number", "memcached_slab_current_items", "Number of items currently stored in this slab class.", false),
    ("age", "memcached_slab_items_age_seconds", "Number of seconds the oldest item has been in the slab class.", false),
    ("mem_requested", "memcached_slab_mem_requested_bytes", "Number of bytes of memory actual items take up within a slab.", false),
    ("evicted", "memcached_slab_items_evicted", "Total number of times an item had to be evicted from the LRU before it expired.", true),
    ("evicted_nonzero", "memcached_slab_items_evicted_nonzero", "Total number of times an item which had an explicit expire time set had to be evicted from the LRU before it expired.", true),
    ("evicted_time", "memcached_slab_items_evicted_time_seconds", "Seconds since the last access for the most recent item evicted from this class.", false),
    ("evicted_unfetched", "memcached_slab_items_evicted_unfetched", "Total number of items evicted and never fetched.", true),
    ("expired_unfetched", "memcached_slab_items_expired_unfetched", "Total number of valid items evicted from the LRU which were never touched after being set.", true),
    ("outofmemory", "memcached_slab_items_outofmemory", "Total number of items for this slab class that have triggered an out of memory error.", true),
    ("reclaimed", "memcached_slab_items_reclaimed", "Total number of items reclaimed.", true),
    ("crawler_reclaimed", "memcached_slab_items_crawler_reclaimed", "Number of items freed by the LRU Crawler.", true),
];

/// Encodes per-class series from `(name, value)` stats lines whose names are
/// `<prefix><class>:<field>`.
fn slab_metrics(
    e: &mut DescriptorEncoder,
    lines: &[(String, String)],
    prefix: &str,
    fields: &[(&str, &str, &str, bool)],
) -> EncResult {
    for &(field, name, help, is_counter) in fields {
        let series: Vec<([(&str, String); 1], u64)> = lines
            .iter()
            .filter_map(|(k, v)| {
                let (class, f) = k.strip_prefix(prefix)?.split_once(':')?;
                (f == field).then(|| ([("slab", class.to_string())], v.parse().unwrap_or(0)))
            })
            .collect();
        if is_counter {
            labelled_counters(e, name, help, &series)?;
        } else {
            labelled_gauges(e, name, help, &series)?;
        }
    }
    Ok(())
}

/// The process's resident set size in bytes (`/proc/self/statm`), 0 where unknown.
fn resident_bytes() -> u64 {
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096) as u64;
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * page)
}

/// User and system CPU seconds of the process.
fn cpu_seconds() -> (f64, f64) {
    use nix::sys::resource::{getrusage, UsageWho};
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(u) => {
            let secs = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
            (secs(u.user_time()), secs(u.system_time()))
        }
        Err(_) => (0.0, 0.0),
    }
}

impl Collector for TernCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let sh = &*self.shared;
        let s = super::stats::sum(sh.threads.iter().map(|t| &**t));
        let store = sh.store.stats();
        let e = &mut e;

        gauge(
            e,
            "memcached_up",
            "Whether the server is up (always 1 when it answers).",
            1u64,
        )?;
        let uptime = (sh.clock.unix_now() - sh.clock.process_started() - 62).max(0);
        gauge(
            e,
            "memcached_uptime_seconds",
            "Number of seconds since the server started.",
            uptime,
        )?;
        gauge(
            e,
            "memcached_time_seconds",
            "Current UNIX time according to the server.",
            sh.clock.unix_now(),
        )?;
        labelled_gauges(
            e,
            "memcached_version",
            "The version of this memcached server.",
            &[([("version", VERSION)], 1)],
        )?;
        labelled_gauges(
            e,
            "tern_build_info",
            "tern's own version (the value is always 1).",
            &[([("version", TERN_VERSION)], 1)],
        )?;

        // Process.
        let (user, system) = cpu_seconds();
        counter(
            e,
            "memcached_process_user_cpu_seconds",
            "Accumulated user time for this process.",
            user,
        )?;
        counter(
            e,
            "memcached_process_system_cpu_seconds",
            "Accumulated system time for this process.",
            system,
        )?;
        counter(
            e,
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            user + system,
        )?;
        gauge(
            e,
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            resident_bytes(),
        )?;
        gauge(
            e,
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            sh.clock.process_started(),
        )?;

        // Traffic and connections.
        counter(
            e,
            "memcached_read_bytes",
            "Total number of bytes read by this server from network.",
            s.bytes_read,
        )?;
        counter(
            e,
            "memcached_written_bytes",
            "Total number of bytes sent by this server to network.",
            s.bytes_written,
        )?;
        let curr = sh.curr_connections.load(Ordering::Relaxed);
        gauge(
            e,
            "memcached_current_connections",
            "Current number of open connections.",
            curr,
        )?;
        gauge(
            e,
            "memcached_max_connections",
            "Maximum number of clients allowed (-c).",
            sh.settings.max_connections as u64,
        )?;
        counter(
            e,
            "memcached_connections",
            "Total number of connections opened since the server started running.",
            sh.total_connections.load(Ordering::Relaxed),
        )?;
        counter(
            e,
            "memcached_connections_rejected",
            "Total number of connections refused for hitting the -c limit.",
            sh.rejected_connections.load(Ordering::Relaxed),
        )?;
        counter(
            e,
            "memcached_connections_yielded",
            "Total number of times a connection gave up its turn after -R requests.",
            s.conn_yields,
        )?;
        gauge(
            e,
            "memcached_accepting_connections",
            "Whether the server is accepting new connections.",
            1u64,
        )?;
        let by = |cells: &[AtomicU64; 3]| -> Vec<([(&str, &str); 2], u64)> {
            TRANSPORTS
                .iter()
                .map(|&(t, transport, tls)| {
                    (
                        [("transport", transport), ("tls", tls)],
                        cells[t as usize].load(Ordering::Relaxed),
                    )
                })
                .collect()
        };
        labelled_gauges(
            e,
            "tern_connections_open",
            "Client connections open now, by transport and whether they use TLS.",
            &by(&sh.observed.open),
        )?;
        labelled_counters(
            e,
            "tern_connections_opened",
            "Client connections served since start, by transport and whether they use TLS.",
            &by(&sh.observed.opened),
        )?;
        counter(
            e,
            "tern_idle_kicks",
            "Connections closed for idleness (-o idle_timeout).",
            s.idle_kicks,
        )?;
        counter(
            e,
            "tern_auth_commands",
            "Authentication attempts (SASL and ASCII auth).",
            s.auth_cmds,
        )?;
        counter(
            e,
            "tern_auth_failures",
            "Failed authentication attempts.",
            s.auth_errors,
        )?;

        // Commands, with memcached_exporter's labels.
        let set_hits = s
            .cmd_set
            .saturating_sub(s.cas_hits + s.cas_misses + s.cas_badval);
        let commands: [([(&str, &str); 2], u64); 16] = [
            ([("command", "get"), ("status", "hit")], s.get_hits),
            ([("command", "get"), ("status", "miss")], s.get_misses),
            (
                [("command", "get"), ("status", "expired")],
                store.get_expired,
            ),
            (
                [("command", "get"), ("status", "flushed")],
                store.get_flushed,
            ),
            ([("command", "delete"), ("status", "hit")], s.delete_hits),
            ([("command", "delete"), ("status", "miss")], s.delete_misses),
            ([("command", "incr"), ("status", "hit")], s.incr_hits),
            ([("command", "incr"), ("status", "miss")], s.incr_misses),
            ([("command", "decr"), ("status", "hit")], s.decr_hits),
            ([("command", "decr"), ("status", "miss")], s.decr_misses),
            ([("command", "cas"), ("status", "hit")], s.cas_hits),
            ([("command", "cas"), ("status", "miss")], s.cas_misses),
            ([("command", "cas"), ("status", "badval")], s.cas_badval),
            ([("command", "touch"), ("status", "hit")], s.touch_hits),
            ([("command", "touch"), ("status", "miss")], s.touch_misses),
            ([("command", "set"), ("status", "hit")], set_hits),
        ];
        let mut commands = commands.to_vec();
        commands.push(([("command", "flush"), ("status", "hit")], s.cmd_flush));
        labelled_counters(
            e,
            "memcached_commands",
            "Total number of all requests broken down by command (get, set, etc.) and status.",
            &commands,
        )?;

        // Items and memory.
        gauge(
            e,
            "memcached_current_items",
            "Current number of items stored by this instance.",
            store.curr_items,
        )?;
        counter(
            e,
            "memcached_items",
            "Total number of items stored during the life of this instance.",
            store.total_items,
        )?;
        counter(
            e,
            "memcached_items_evicted",
            "Total number of valid items removed from cache to free memory for new items.",
            store.evictions,
        )?;
        counter(
            e,
            "memcached_items_reclaimed",
            "Total number of times an entry was stored using memory from an expired entry.",
            store.reclaimed,
        )?;
        counter(
            e,
            "memcached_item_too_large",
            "The number of times an item exceeded the max-item-size when being stored.",
            s.store_too_large,
        )?;
        counter(
            e,
            "memcached_item_no_memory",
            "The number of times an item could not be stored due to no more memory.",
            s.store_no_memory,
        )?;
        gauge(
            e,
            "memcached_current_bytes",
            "Current number of bytes used to store items.",
            store.bytes,
        )?;
        gauge(
            e,
            "memcached_limit_bytes",
            "Number of bytes this server is allowed to use for storage.",
            sh.settings.store.memory_limit as u64,
        )?;
        gauge(
            e,
            "memcached_malloced_bytes",
            "Number of bytes of memory allocated to slab pages.",
            store.total_malloced,
        )?;
        counter(
            e,
            "memcached_lru_crawler_reclaimed",
            "Total items freed by the background crawler.",
            store.crawler_reclaimed,
        )?;

        // Store internals (tern's).
        gauge(
            e,
            "tern_hash_power_level",
            "The hash index's size as a power of two.",
            store.hash_power_level,
        )?;
        gauge(
            e,
            "tern_hash_bytes",
            "Bytes taken by the hash index.",
            store.hash_bytes,
        )?;
        gauge(
            e,
            "tern_hash_is_expanding",
            "Whether the hash index is being grown (1) or not (0).",
            u64::from(store.hash_is_expanding),
        )?;
        let slots = 1u64 << store.hash_power_level.min(63);
        gauge(
            e,
            "tern_hash_load_factor",
            "Items per hash index slot (the index grows past 1.5).",
            store.curr_items as f64 / slots as f64,
        )?;
        counter(
            e,
            "tern_slab_pages_moved",
            "Slab pages moved between classes.",
            store.slabs_moved,
        )?;
        counter(
            e,
            "tern_maintenance_runs",
            "Runs of store maintenance (crawler, page mover) by the timer thread.",
            sh.observed.maintenance_runs.load(Ordering::Relaxed),
        )?;
        counter(
            e,
            "tern_maintenance_seconds",
            "Time the timer thread spent in store maintenance.",
            sh.observed.maintenance_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        )?;
        gauge(
            e,
            "tern_cluster_config_version",
            "The ElastiCache auto-discovery config version served (0 when none).",
            u64::from(sh.cluster.version()),
        )?;
        if let Some(tls) = &sh.tls {
            for (name, value) in tls.stats_lines(sh.clock.now()) {
                if let Ok(v) = value.parse::<u64>() {
                    let metric = format!("tern_tls_{}", name.trim_start_matches("ssl_"));
                    gauge(e, &metric, "memcached's TLS stat of the same name.", v)?;
                }
            }
        }

        // Per slab class (memcached_exporter's names).
        slab_metrics(e, &sh.store.stats_slabs(), "", SLAB_FIELDS)?;
        slab_metrics(e, &sh.store.stats_items(), "items:", ITEM_FIELDS)?;

        // Latency.
        let mut m = e.encode_descriptor(
            "tern_request_duration_seconds",
            "Server-side request latency, from the worker's wake-up to the end of the connection's turn.",
            None,
            MetricType::Histogram,
        )?;
        let mut bounds = [(0.0, 0u64); latency::FINITE_BUCKETS];
        for protocol in Protocol::ALL {
            for family in Family::ALL {
                let mut h = HistogramSnapshot::default();
                for t in &sh.threads {
                    t.latency.add_to(family, protocol, &mut h);
                }
                for (i, b) in bounds.iter_mut().enumerate() {
                    *b = (latency::bucket_bound_seconds(i), h.buckets[i]);
                }
                let labels = [("family", family.label()), ("protocol", protocol.label())];
                m.encode_family(&labels)?.encode_histogram::<NoLabelSet>(
                    h.sum_nanos as f64 / 1e9,
                    h.count(),
                    &bounds,
                    None,
                )?;
            }
        }
        Ok(())
    }
}

/// Binds the metrics listener (`-o metrics_listen`).
pub fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    std::net::TcpListener::bind(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot bind metrics_listen {addr}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(reply: &[u8]) -> &str {
        let line = reply.split(|&b| b == b'\r').next().unwrap();
        std::str::from_utf8(line).unwrap()
    }

    #[test]
    fn bad_requests_get_their_status() {
        let r = Registry::default();
        assert_eq!(
            status(&answer(b"garbage\r\n\r\n", &r)),
            "HTTP/1.1 400 Bad Request"
        );
        assert_eq!(
            status(&answer(b"GET /metrics\r\n\r\n", &r)),
            "HTTP/1.1 400 Bad Request"
        );
        assert_eq!(
            status(&answer(b"GET /metrics SPDY/3\r\n\r\n", &r)),
            "HTTP/1.1 400 Bad Request"
        );
        assert_eq!(
            status(&answer(b"GET /metrics HTTP/1.1\r\nno-colon\r\n\r\n", &r)),
            "HTTP/1.1 400 Bad Request"
        );
        assert_eq!(
            status(&answer(b"\xff\xfe\r\n\r\n", &r)),
            "HTTP/1.1 400 Bad Request"
        );
        assert_eq!(
            status(&answer(b"GET / HTTP/1.1\r\n\r\n", &r)),
            "HTTP/1.1 404 Not Found"
        );
        let post = answer(b"POST /metrics HTTP/1.1\r\n\r\n", &r);
        assert_eq!(status(&post), "HTTP/1.1 405 Method Not Allowed");
        let post = String::from_utf8(post).unwrap();
        assert!(
            post.contains("\r\nAllow: GET, HEAD\r\n\r\nmethod not allowed\n"),
            "{post}"
        );
        let ok = answer(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n", &r);
        assert_eq!(status(&ok), "HTTP/1.1 200 OK");
        assert!(String::from_utf8(ok)
            .unwrap()
            .contains("text/plain; version=0.0.4"));
        let om = answer(
            b"GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text;version=1.0.0\r\n\r\n",
            &r,
        );
        let om = String::from_utf8(om).unwrap();
        assert!(om.contains("application/openmetrics-text"), "{om}");
        assert!(om.ends_with("# EOF\n"), "{om}");
        let head = answer(b"HEAD /metrics HTTP/1.0\r\n\r\n", &r);
        assert!(String::from_utf8(head).unwrap().ends_with("\r\n\r\n"));
    }
}
