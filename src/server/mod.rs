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
//! counters ([`stats::ThreadStats`]), summed only when someone asks for `stats`. What else
//! crosses threads: accepted sockets (acceptor → worker, over a channel), the `Arc<Store>`, the
//! clock (one atomic), the cluster config (an `RwLock` around an `Arc`), and the shutdown flag
//! with every thread's `Waker`. With `-U`, each UDP socket has a thread of its own that serves
//! its datagrams through the text and binary executors. A logger thread (`logger`) owns the
//! sockets of `watch` connections; workers hand it events through bounded per-thread buffers.
//! With `-o metrics_listen`, a `metrics` thread serves `GET /metrics` from the same per-worker
//! counters and per-worker latency histograms ([`latency`]), summed per scrape; it never
//! touches a worker.
//!
//! Where things are:
//! - starting and stopping: `bind` (listening sockets), `handle` ([`start_on`],
//!   [`ServerHandle`]); the threads: `acceptor`, `worker` (one mio loop each, driving `conn`
//!   connections over `socket`), `timer`, [`udp`];
//! - shared state: `shared` ([`Shared`]), its stats lines `stats_lines`, per-thread counters
//!   [`stats`], open connections `registry` (`stats conns`), per-prefix counters [`detail`]
//!   (`stats detail`), log streams [`logger`] (`watch`);
//! - requests: `ops` (protocol-neutral operations with typed outcomes) and one executor per
//!   protocol, `text`, `binary` and `meta` (handed meta lines by `text`), each the only place
//!   turning outcomes into its replies.

mod acceptor;
mod binary;
mod bind;
mod buffers;
mod conn;
pub mod detail;
mod handle;
pub mod latency;
pub mod logger;
mod meta;
mod metrics;
pub(crate) mod operator;
pub(crate) mod ops;
mod registry;
mod shared;
pub mod socket;
pub mod stats;
mod stats_lines;
pub(crate) mod text;
mod timer;
pub mod tls;
pub mod udp;
mod worker;

pub use bind::{bind, Listeners};
pub use handle::{start_on, ServerHandle};
pub use shared::Shared;
// The connection state machine and its buffer pool, public so the fuzz target
// (fuzz/fuzz_targets/conn.rs) can drive it over an in-memory stream.
pub use buffers::BufferPool;
pub use conn::{Conn, Next};

/// The version tern reports to clients (`version`, binary VERSION, `stats`): the memcached
/// release it is compatible with. Clients read it to decide what the server understands:
/// libmemcached's `memccapable` treats a version below 1.3 as an old memcached and then
/// expects `ERROR` for `version foo bar` and replies to `noreply` commands, so reporting tern's
/// own 0.x fails 17 of its ASCII tests. tern's own version is in `-V` and the start-up log.
pub const VERSION: &str = "1.6.18";

/// tern's own version, shown by `-V`, the start-up log and `stats` (`tern_version`).
pub const TERN_VERSION: &str = env!("CARGO_PKG_VERSION");
