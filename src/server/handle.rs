//! Starting a server ([`start_on`]) on already-bound listeners, and the [`ServerHandle`] that
//! stops it: builds the shared state, then spawns the UDP threads, the workers, the acceptor and
//! the timer.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

use mio::{Poll, Waker};
use tern_protocol::{Limits, WatchEvents};

use super::acceptor::{Acceptor, ACCEPTOR_WAKER};
use super::bind::Listeners;
use super::registry::Registry;
use super::shared::Shared;
use super::socket::Listener;
use super::stats::ThreadStats;
use super::{timer, udp, worker};
use crate::auth::PasswordDb;
use crate::clock::Clock;
use crate::cluster::Cluster;
use crate::config::Settings;
use crate::store::{Store, StoreConfig};

/// A running server.
pub struct ServerHandle {
    shared: Arc<Shared>,
    addrs: Vec<SocketAddr>,
    udp_addrs: Vec<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
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

    /// Where `GET /metrics` is served (`-o metrics_listen`), with the real port.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
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
            super::tls::TlsContext::load(&settings.tls)
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
    let registry = Registry::default();
    let tls_tcp = tls.is_some();
    let tcp = listeners.tcp.into_iter().map(|l| (l, tls_tcp));
    for (l, speaks_tls) in tcp.chain(listeners.notls.into_iter().map(|l| (l, false))) {
        l.set_nonblocking(true)?;
        let addr = l.local_addr()?;
        registry.add_listener(l.as_raw_fd(), format!("tcp:{addr}"), clock.now());
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
        registry.add_listener(l.as_raw_fd(), name, clock.now());
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
    let metrics_listener = match settings.metrics_listen {
        Some(addr) => Some(super::metrics::bind(addr)?),
        None => None,
    };
    let metrics_addr = match &metrics_listener {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    let shared = Arc::new(Shared {
        limits,
        auth_file,
        cluster,
        tls,
        registry,
        detail: super::detail::PrefixStats::new(settings.prefix_delimiter, settings.detail_enabled),
        logger: Arc::new(super::logger::Logger::new(
            thread_stats.len(),
            settings.tuning.worker_logbuf_size as usize,
            settings.tuning.watcher_logbuf_size as usize,
        )),
        store: Arc::new(store),
        clock,
        threads: thread_stats,
        curr_connections: AtomicU64::new(0),
        total_connections: AtomicU64::new(0),
        rejected_connections: AtomicU64::new(0),
        accepting: AtomicBool::new(true),
        listen_disabled_num: AtomicU64::new(0),
        time_in_listen_disabled_us: AtomicU64::new(0),
        verbosity: AtomicU32::new(u32::from(settings.verbosity)),
        observed: super::metrics::Observed::new(metrics_listener.is_some()),
        shutting_down: AtomicBool::new(false),
        wakers: OnceLock::new(),
        live: super::operator::LiveSettings::new(&settings),
        settings,
    });

    let logger = shared.logger.clone();
    shared
        .store
        .set_eviction_hook(crate::store::EvictionHook(Box::new(move |e| {
            if logger.watching(WatchEvents::EVICTIONS) {
                logger.log_here(|out| super::logger::eviction(out, e));
            }
        })));

    let mut threads = Vec::new();
    let mut wakers = Vec::new();
    let mut inboxes = Vec::new();
    let mut udp_addrs = Vec::new();
    for (i, (udp, stats)) in listeners.udp.into_iter().zip(udp_stats).enumerate() {
        let udp_addr = udp.local_addr()?;
        udp_addrs.push(udp_addr);
        shared.registry.add_udp(
            udp.as_raw_fd(),
            format!("udp:{udp_addr}"),
            shared.clock.now(),
        );
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

    if let Some(listener) = metrics_listener {
        let (server, waker) = super::metrics::MetricsServer::new(listener, shared.clone())?;
        wakers.push(waker);
        threads.push(
            std::thread::Builder::new()
                .name("tern-metrics".into())
                .spawn(move || {
                    if let Err(e) = server.run() {
                        log::error!("metrics listener stopped: {e}");
                    }
                })?,
        );
    }

    let poll = Poll::new()?;
    let acceptor_waker = Arc::new(Waker::new(poll.registry(), ACCEPTOR_WAKER)?);
    wakers.push(acceptor_waker);
    let _ = shared.wakers.set(wakers);

    let acceptor = Acceptor::new(poll, mio_listeners, inboxes, shared.clone());
    threads.push(
        std::thread::Builder::new()
            .name("tern-acceptor".into())
            .spawn(move || {
                if let Err(e) = acceptor.run() {
                    log::error!("acceptor stopped: {e}");
                }
            })?,
    );

    let logger_shared = shared.clone();
    threads.push(
        std::thread::Builder::new()
            .name("tern-logger".into())
            .spawn(move || {
                if let Err(e) = super::logger::run(logger_shared) {
                    log::error!("logger stopped: {e}");
                }
            })?,
    );

    let timer_shared = shared.clone();
    threads.push(
        std::thread::Builder::new()
            .name("tern-timer".into())
            .spawn(move || timer::run(&timer_shared))?,
    );

    Ok(ServerHandle {
        shared,
        addrs,
        udp_addrs,
        metrics_addr,
        threads,
    })
}
