//! The state every server thread shares ([`Shared`]): settings, store, clock, cluster config,
//! the `-Y` users, connection counts and the shutdown flag. Its stats lines are in
//! `super::stats_lines`.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use mio::Waker;
use tern_protocol::Limits;

use super::detail::PrefixStats;
use super::logger::Logger;
use super::registry::Registry;
use super::stats::ThreadStats;
use crate::auth::PasswordDb;
use crate::clock::Clock;
use crate::cluster::Cluster;
use crate::config::Settings;
use crate::store::Store;

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
    pub tls: Option<Arc<super::tls::TlsContext>>,
    /// The settings the operator commands change (`lru`, `lru_crawler sleep`, ...).
    pub live: super::operator::LiveSettings,
    /// `watch`'s log streams.
    pub logger: Arc<Logger>,
    /// `stats detail`'s per-prefix counters.
    pub detail: PrefixStats,
    /// Open connections, for `stats conns`.
    pub(super) registry: Registry,
    /// Each worker's and each UDP thread's counters, summed by `stats`.
    pub(super) threads: Vec<Arc<ThreadStats>>,
    pub(super) curr_connections: AtomicU64,
    pub(super) total_connections: AtomicU64,
    pub(super) rejected_connections: AtomicU64,
    /// Whether the acceptor accepts (`accepting_conns`): with `-o no_maxconns_fast` it stops at
    /// `-c` until a connection closes.
    pub(super) accepting: AtomicBool,
    /// Times the acceptor stopped at `-c` (`listen_disabled_num`).
    pub(super) listen_disabled_num: AtomicU64,
    /// Microseconds it spent stopped, counted when it starts again (`time_in_listen_disabled_us`).
    pub(super) time_in_listen_disabled_us: AtomicU64,
    pub(super) verbosity: AtomicU32,
    /// What the metrics endpoint reports beyond `stats` (`super::metrics`).
    pub(super) observed: super::metrics::Observed,
    pub(super) shutting_down: AtomicBool,
    /// Every thread's waker, so a shutdown reaches threads blocked in `poll`.
    pub(super) wakers: OnceLock<Vec<Arc<Waker>>>,
}

impl Shared {
    /// Whether the server is stopping.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Asks every thread to stop.
    pub fn request_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
        self.logger.wake();
        if let Some(wakers) = self.wakers.get() {
            for waker in wakers {
                let _ = waker.wake();
            }
        }
    }

    /// Records that a connection went away.
    pub(super) fn connection_closed(&self) {
        self.curr_connections.fetch_sub(1, Ordering::Relaxed);
    }

    /// Logs an event into the calling thread's log buffer. Call only when
    /// [`Logger::watching`] says someone wants it.
    #[cold]
    pub fn log_event(&self, body: impl FnOnce(&mut Vec<u8>)) {
        self.logger.log_here(body);
    }

    /// Sets the verbosity level (`verbosity` command).
    pub fn set_verbosity(&self, level: u32) {
        self.verbosity.store(level, Ordering::Relaxed);
    }
}
