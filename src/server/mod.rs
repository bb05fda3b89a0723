//! The server: an acceptor thread, worker threads with one mio event loop each, and a timer.
//!
//! ```text
//!   clients ──TCP──▶ [acceptor] ── owns the listening sockets; enforces -c; sets TCP_NODELAY
//!                         │ round-robin: socket over a crossbeam channel, then Waker::wake
//!          ┌──────────────┼──────────────┐
//!          ▼              ▼              ▼
//!     [worker 0]     [worker 1] ...  [worker N-1]   one mio Poll each; owns its connections,
//!          │              │              │          reads, parses, executes, writes replies
//!          └──────┬───────┴──────┬───────┘
//!                 ▼              ▼
//!          [store: Arc<Store>, sharded locks]   touched only inside short calls; item bytes
//!                 ▲                             are copied into the connection's buffer
//!             [timer] ── ticks the clock once a second, runs store maintenance
//! ```
//!
//! Nothing crosses threads on the request path but store calls: each worker has its own
//! counters ([`stats::ThreadStats`]), summed only when someone asks for `stats`.

mod binary;
mod buffers;
mod conn;
pub(crate) mod ops;
mod registry;
pub mod socket;
pub mod stats;
pub(crate) mod text;
pub mod tls;
pub mod udp;
mod worker;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Sender;
use mio::{Events, Interest, Poll, Token, Waker};
use tern_protocol::Limits;

use crate::auth::PasswordDb;
use crate::clock::Clock;
use crate::cluster::Cluster;
use crate::config::Settings;
use crate::store::{Store, StoreConfig};
use socket::{Listener, Socket};
use stats::ThreadStats;

/// The version tern reports to clients (`version`, binary VERSION, `stats`): the memcached
/// release it is compatible with. Clients read it to decide what the server understands:
/// libmemcached's `memccapable` treats a version below 1.3 as an old memcached and then
/// expects `ERROR` for `version foo bar` and replies to `noreply` commands, so reporting tern's
/// own 0.x fails 17 of its ASCII tests. tern's own version is in `-V` and the start-up log.
pub const VERSION: &str = "1.6.18";

/// tern's own version, shown by `-V`, the start-up log and `stats` (`tern_version`).
pub const TERN_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Reply to a connection over the `-c` limit, as memcached sends it before closing.
const TOO_MANY_CONNECTIONS: &[u8] = b"ERROR Too many open connections\r\n";

/// State every thread reads.
pub struct Shared {
    /// The settings the server started with.
    pub settings: Settings,
    /// The item store.
    pub store: Arc<Store>,
    /// The seconds clock.
    pub clock: Arc<Clock>,
    /// Parser limits derived from the settings.
    pub limits: Limits,
    /// The `-Y` users, loaded at start; text connections must log in first when present.
    pub auth_file: Option<PasswordDb>,
    /// The ElastiCache auto-discovery config this node serves.
    pub cluster: Cluster,
    /// TLS (`-Z`): the configuration new connections get, and its counters.
    pub tls: Option<Arc<tls::TlsContext>>,
    /// Open connections, for `stats conns`.
    registry: registry::Registry,
    threads: Vec<Arc<ThreadStats>>,
    curr_connections: AtomicU64,
    total_connections: AtomicU64,
    rejected_connections: AtomicU64,
    verbosity: AtomicU32,
    shutting_down: AtomicBool,
    wakers: OnceLock<Vec<Arc<Waker>>>,
}

impl Shared {
    /// Whether the server is stopping.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Asks every thread to stop.
    pub fn request_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
        if let Some(wakers) = self.wakers.get() {
            for waker in wakers {
                let _ = waker.wake();
            }
        }
    }

    /// Records that a connection went away.
    fn connection_closed(&self) {
        self.curr_connections.fetch_sub(1, Ordering::Relaxed);
    }

    /// Sets the verbosity level (`verbosity` command).
    pub fn set_verbosity(&self, level: u32) {
        self.verbosity.store(level, Ordering::Relaxed);
    }

    fn summed(&self) -> stats::StatsSnapshot {
        stats::sum(self.threads.iter().map(|t| &**t))
    }

    /// `stats reset`: zeroes the resettable counters.
    pub fn reset_stats(&self) {
        for t in &self.threads {
            t.reset();
        }
        self.total_connections.store(0, Ordering::Relaxed);
        self.rejected_connections.store(0, Ordering::Relaxed);
    }

    /// The lines of plain `stats`, in memcached's order.
    pub fn general_stats(&self) -> Vec<(String, String)> {
        let s = self.summed();
        let store = self.store.stats();
        let (user, system) = rusage();
        let now = self.clock.unix_now();
        let mut v: Vec<(String, String)> = Vec::with_capacity(64);
        let mut put = |name: &str, value: String| v.push((name.to_string(), value));
        put("pid", std::process::id().to_string());
        put(
            "uptime",
            (now - self.clock.process_started() - 62).max(0).to_string(),
        );
        put("time", now.to_string());
        put("version", VERSION.to_string());
        put("tern_version", TERN_VERSION.to_string());
        put("pointer_size", (usize::BITS).to_string());
        put("rusage_user", user);
        put("rusage_system", system);
        put("max_connections", self.settings.max_connections.to_string());
        put(
            "curr_connections",
            self.curr_connections.load(Ordering::Relaxed).to_string(),
        );
        put(
            "total_connections",
            self.total_connections.load(Ordering::Relaxed).to_string(),
        );
        put(
            "rejected_connections",
            self.rejected_connections
                .load(Ordering::Relaxed)
                .to_string(),
        );
        put(
            "connection_structures",
            self.curr_connections.load(Ordering::Relaxed).to_string(),
        );
        put("cmd_get", s.cmd_get.to_string());
        put("cmd_set", s.cmd_set.to_string());
        put("cmd_flush", s.cmd_flush.to_string());
        put("cmd_touch", s.cmd_touch.to_string());
        put("cmd_meta", "0".to_string());
        put("get_hits", s.get_hits.to_string());
        put("get_misses", s.get_misses.to_string());
        put("get_expired", s.get_expired.to_string());
        put("get_flushed", s.get_flushed.to_string());
        put("delete_misses", s.delete_misses.to_string());
        put("delete_hits", s.delete_hits.to_string());
        put("incr_misses", s.incr_misses.to_string());
        put("incr_hits", s.incr_hits.to_string());
        put("decr_misses", s.decr_misses.to_string());
        put("decr_hits", s.decr_hits.to_string());
        put("cas_misses", s.cas_misses.to_string());
        put("cas_hits", s.cas_hits.to_string());
        put("cas_badval", s.cas_badval.to_string());
        put("touch_hits", s.touch_hits.to_string());
        put("touch_misses", s.touch_misses.to_string());
        put("store_too_large", s.store_too_large.to_string());
        put("store_no_memory", s.store_no_memory.to_string());
        put("auth_cmds", s.auth_cmds.to_string());
        put("auth_errors", s.auth_errors.to_string());
        put("idle_kicks", s.idle_kicks.to_string());
        put("bytes_read", s.bytes_read.to_string());
        put("bytes_written", s.bytes_written.to_string());
        put(
            "limit_maxbytes",
            self.settings.store.memory_limit.to_string(),
        );
        put("accepting_conns", "1".to_string());
        put("threads", self.settings.threads.to_string());
        put("conn_yields", s.conn_yields.to_string());
        put("hash_power_level", store.hash_power_level.to_string());
        put("hash_bytes", store.hash_bytes.to_string());
        put(
            "hash_is_expanding",
            u8::from(store.hash_is_expanding).to_string(),
        );
        put("slabs_moved", store.slabs_moved.to_string());
        put("bytes", store.bytes.to_string());
        put("curr_items", store.curr_items.to_string());
        put("total_items", store.total_items.to_string());
        put("expired_unfetched", store.expired_unfetched.to_string());
        put("evicted_unfetched", store.evicted_unfetched.to_string());
        put("evictions", store.evictions.to_string());
        put("reclaimed", store.reclaimed.to_string());
        put("crawler_reclaimed", store.crawler_reclaimed.to_string());
        if let Some(tls) = &self.tls {
            for (name, value) in tls.stats_lines(self.clock.now()) {
                put(name, value);
            }
        }
        // tern's own: the auto-discovery config version served (0 after `config delete`).
        put("cluster_config_version", self.cluster.version().to_string());
        v
    }

    /// The lines of `stats settings`, with memcached's names, order and formats.
    pub fn settings_stats(&self) -> Vec<(String, String)> {
        self.settings
            .stats_settings_with(crate::config::stats::RuntimeSettings {
                oldest: 0,
                verbosity: self.verbosity.load(Ordering::Relaxed).min(255) as u8,
            })
            .into_iter()
            .map(|(name, value)| (name.to_string(), value))
            .collect()
    }

    /// The lines of `stats conns`: every listener and client connection.
    pub fn conns_stats(&self) -> Vec<(String, String)> {
        self.registry.lines(self.clock.now())
    }
}

/// User and system CPU time in memcached's `sec.usec` format.
fn rusage() -> (String, String) {
    use nix::sys::resource::{getrusage, UsageWho};
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(usage) => {
            let fmt = |tv: nix::sys::time::TimeVal| format!("{}.{:06}", tv.tv_sec(), tv.tv_usec());
            (fmt(usage.user_time()), fmt(usage.system_time()))
        }
        Err(_) => ("0.000000".to_string(), "0.000000".to_string()),
    }
}

/// A running server.
pub struct ServerHandle {
    shared: Arc<Shared>,
    addrs: Vec<SocketAddr>,
    udp_addrs: Vec<SocketAddr>,
    threads: Vec<JoinHandle<()>>,
}

impl ServerHandle {
    /// The addresses the server listens on (with the real port when 0 was asked for).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The UDP addresses the server serves (`-U`).
    pub fn udp_addrs(&self) -> &[SocketAddr] {
        &self.udp_addrs
    }

    /// The first listening address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// The state shared by the server's threads (its store, clock and counters).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Stops every thread and waits for them.
    pub fn shutdown(mut self) {
        self.shared.request_shutdown();
        self.join_threads();
    }

    /// Waits until the server stops by itself (the `shutdown` command).
    pub fn wait(mut self) {
        self.join_threads();
    }

    fn join_threads(&mut self) {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.shared.request_shutdown();
            self.join_threads();
        }
    }
}

/// Binds the listening sockets for `settings`: the Unix socket when `-s` is given (which, as in
/// memcached, turns network listening off), else TCP on the `-l` addresses and `-p` port with
/// backlog `-b` (`-p 0` turns TCP off, as in memcached).
pub fn bind(settings: &Settings) -> io::Result<Listeners> {
    if let Some(path) = &settings.unix_socket {
        return Ok(Listeners {
            unix: Some(socket::bind_unix(path, settings.unix_mask)?),
            ..Listeners::default()
        });
    }
    let mut listeners = Listeners::default();
    if settings.port.is_on() {
        for (addr, tls) in settings.listen_addrs_tls(settings.port.bind_port())? {
            let l = bind_one(addr, settings.backlog)?;
            if settings.tls.enabled && !tls {
                listeners.notls.push(l);
            } else {
                listeners.tcp.push(l);
            }
        }
    }
    if settings.udp_port.is_on() {
        listeners.udp = settings
            .listen_addrs(settings.udp_port.bind_port())?
            .into_iter()
            .map(bind_udp)
            .collect::<io::Result<Vec<_>>>()?;
    }
    Ok(listeners)
}

fn bind_udp(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

fn bind_one(addr: SocketAddr, backlog: i32) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Sockets a server listens on, bound before the server starts (and before root is dropped).
#[derive(Debug, Default)]
pub struct Listeners {
    /// TCP listeners (speaking TLS when the settings enable it).
    pub tcp: Vec<std::net::TcpListener>,
    /// TCP listeners that stay plaintext under `-Z` (`-l notls:...`).
    pub notls: Vec<std::net::TcpListener>,
    /// The TLS configuration, loaded before privileges are dropped (as memcached loads its
    /// certificates); loaded by `start_on` when absent and `-Z` is on.
    pub tls: Option<tls::TlsContext>,
    /// A Unix-domain listener (`-s`).
    pub unix: Option<std::os::unix::net::UnixListener>,
    /// UDP sockets (`-U`).
    pub udp: Vec<std::net::UdpSocket>,
}

impl From<Vec<std::net::TcpListener>> for Listeners {
    fn from(tcp: Vec<std::net::TcpListener>) -> Self {
        Listeners {
            tcp,
            ..Listeners::default()
        }
    }
}

/// Starts a server with `settings` on already-bound `listeners`, reading time from `clock`.
pub fn start_on(
    settings: Settings,
    listeners: impl Into<Listeners>,
    clock: Arc<Clock>,
) -> io::Result<ServerHandle> {
    let mut listeners = listeners.into();
    let tls = match listeners.tls.take() {
        Some(ctx) => Some(Arc::new(ctx)),
        None if settings.tls.enabled => Some(Arc::new(
            tls::TlsContext::load(&settings.tls)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
        )),
        None => None,
    };
    let auth_file = match &settings.auth_file {
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot read auth file {}: {e}", path.display()),
                )
            })?;
            let db = PasswordDb::from_authfile(&bytes).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("auth file {}: {e}", path.display()),
                )
            })?;
            Some(db)
        }
        None => None,
    };
    // The store takes its key limit from its config; the server speaks memcached's.
    let store_config = StoreConfig {
        key_max_length: tern_protocol::KEY_MAX_LENGTH,
        ..settings.store.clone()
    };
    let store = Store::new(store_config, clock.clone())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let threads_n = settings.threads.max(1);
    // One set of counters per worker, then one per UDP socket's thread.
    let worker_stats: Vec<Arc<ThreadStats>> = (0..threads_n).map(|_| Arc::default()).collect();
    let udp_stats: Vec<Arc<ThreadStats>> = listeners.udp.iter().map(|_| Arc::default()).collect();
    let thread_stats: Vec<Arc<ThreadStats>> =
        worker_stats.iter().chain(&udp_stats).cloned().collect();
    let mut addrs = Vec::new();
    let mut mio_listeners = Vec::new();
    let registry = registry::Registry::default();
    let tls_tcp = tls.is_some();
    let tcp = listeners.tcp.into_iter().map(|l| (l, tls_tcp));
    for (l, speaks_tls) in tcp.chain(listeners.notls.into_iter().map(|l| (l, false))) {
        l.set_nonblocking(true)?;
        let addr = l.local_addr()?;
        registry.add_listener(format!("tcp:{addr}"));
        addrs.push(addr);
        let l = mio::net::TcpListener::from_std(l);
        mio_listeners.push(if speaks_tls {
            Listener::TlsTcp(l)
        } else {
            Listener::Tcp(l)
        });
    }
    if let Some(l) = listeners.unix {
        l.set_nonblocking(true)?;
        let name = l
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(|p| format!("unix:{}", p.display())))
            .unwrap_or_else(|| "unix:".into());
        registry.add_listener(name);
        mio_listeners.push(Listener::Unix(mio::net::UnixListener::from_std(l)));
    }
    // The node describes itself by the first TCP address it listens on (see
    // `cluster::local`); a node on a Unix socket alone is reachable by no cluster client, and
    // describes itself as loopback on its `-p` port.
    let self_addr = addrs.first().copied().unwrap_or_else(|| {
        SocketAddr::from((
            std::net::Ipv4Addr::LOCALHOST,
            settings.port.bind_port().max(1),
        ))
    });
    let cluster = Cluster::for_node(self_addr, settings.cluster_config.clone());
    let limits = Limits {
        item_size_max: settings.store.item_size_max,
        cas_enabled: settings.store.cas_enabled,
    };
    let shared = Arc::new(Shared {
        limits,
        auth_file,
        cluster,
        tls,
        registry,
        store: Arc::new(store),
        clock,
        threads: thread_stats,
        curr_connections: AtomicU64::new(0),
        total_connections: AtomicU64::new(0),
        rejected_connections: AtomicU64::new(0),
        verbosity: AtomicU32::new(u32::from(settings.verbosity)),
        shutting_down: AtomicBool::new(false),
        wakers: OnceLock::new(),
        settings,
    });

    let mut threads = Vec::new();
    let mut wakers = Vec::new();
    let mut inboxes = Vec::new();
    let mut udp_addrs = Vec::new();
    for (i, (udp, stats)) in listeners.udp.into_iter().zip(udp_stats).enumerate() {
        udp_addrs.push(udp.local_addr()?);
        let shared = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("tern-udp-{i}"))
                .spawn(move || {
                    if let Err(e) = udp::serve(udp, &shared, &stats) {
                        log::error!("udp listener {i} stopped: {e}");
                    }
                })?,
        );
    }
    for (i, stats) in worker_stats.into_iter().enumerate() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let (w, waker) = worker::Worker::new(rx, shared.clone(), stats)?;
        inboxes.push((tx, waker.clone()));
        wakers.push(waker);
        threads.push(
            std::thread::Builder::new()
                .name(format!("tern-worker-{i}"))
                .spawn(move || {
                    if let Err(e) = w.run() {
                        log::error!("worker {i} stopped: {e}");
                    }
                })?,
        );
    }

    let poll = Poll::new()?;
    let acceptor_waker = Arc::new(Waker::new(poll.registry(), ACCEPTOR_WAKER)?);
    wakers.push(acceptor_waker);
    let _ = shared.wakers.set(wakers);

    let acceptor = Acceptor {
        poll,
        listeners: mio_listeners,
        workers: inboxes,
        next: 0,
        shared: shared.clone(),
    };
    threads.push(
        std::thread::Builder::new()
            .name("tern-acceptor".into())
            .spawn(move || {
                if let Err(e) = acceptor.run() {
                    log::error!("acceptor stopped: {e}");
                }
            })?,
    );

    let timer_shared = shared.clone();
    threads.push(
        std::thread::Builder::new()
            .name("tern-timer".into())
            .spawn(move || timer(&timer_shared))?,
    );

    Ok(ServerHandle {
        shared,
        addrs,
        udp_addrs,
        threads,
    })
}

/// Ticks the clock and runs store maintenance about once a second until shutdown.
fn timer(shared: &Shared) {
    const STEP: Duration = Duration::from_millis(50);
    let mut elapsed = Duration::ZERO;
    while !shared.is_shutting_down() {
        std::thread::sleep(STEP);
        elapsed += STEP;
        shared.clock.tick();
        if elapsed >= Duration::from_secs(1) {
            elapsed = Duration::ZERO;
            shared.store.maintain();
        }
    }
}

const ACCEPTOR_WAKER: Token = Token(usize::MAX);

/// Accepts connections and deals them out to the workers in turn.
struct Acceptor {
    poll: Poll,
    listeners: Vec<Listener>,
    workers: Vec<(Sender<Socket>, Arc<Waker>)>,
    next: usize,
    shared: Arc<Shared>,
}

impl Acceptor {
    fn run(mut self) -> io::Result<()> {
        for (i, l) in self.listeners.iter_mut().enumerate() {
            self.poll
                .registry()
                .register(l, Token(i), Interest::READABLE)?;
        }
        let mut events = Events::with_capacity(64);
        while !self.shared.is_shutting_down() {
            match self.poll.poll(&mut events, None) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for event in events.iter() {
                if event.token() != ACCEPTOR_WAKER {
                    self.accept_all(event.token().0);
                }
            }
        }
        Ok(())
    }

    fn accept_all(&mut self, index: usize) {
        loop {
            let stream = match self.listeners[index].accept() {
                Ok(stream) => stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: log and retry on the next readiness event.
                    log::warn!("accept failed: {e}");
                    return;
                }
            };
            let shared = &self.shared;
            if shared.curr_connections.load(Ordering::Relaxed)
                >= shared.settings.max_connections as u64
            {
                shared.rejected_connections.fetch_add(1, Ordering::Relaxed);
                let mut stream = stream;
                let _ = io::Write::write(&mut stream, TOO_MANY_CONNECTIONS);
                continue;
            }
            shared.curr_connections.fetch_add(1, Ordering::Relaxed);
            shared.total_connections.fetch_add(1, Ordering::Relaxed);
            let (tx, waker) = &self.workers[self.next];
            self.next = (self.next + 1) % self.workers.len();
            if tx.send(stream).is_ok() {
                let _ = waker.wake();
            } else {
                shared.connection_closed();
            }
        }
    }
}
