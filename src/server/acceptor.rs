//! The acceptor thread: owns every listening socket, enforces `-c`, and deals accepted sockets
//! to the workers in turn (see the module docs of `super` for why one acceptor).
//!
//! At `-c` it answers each new connection with memcached's error and closes it (memcached's
//! `maxconns_fast`, the default). With `-o no_maxconns_fast` it stops accepting instead, as
//! memcached stops listening when an accept finds it out of descriptors: the connection it
//! has just accepted is held, unserved, the next ones wait in the kernel's backlog, and it
//! looks every 10 ms (memcached's interval) whether one closed.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use mio::{Events, Interest, Poll, Token, Waker};

use super::shared::Shared;
use super::socket::{Listener, Socket};

/// Reply to a connection over the `-c` limit, as memcached sends it before closing.
const TOO_MANY_CONNECTIONS: &[u8] = b"ERROR Too many open connections\r\n";

/// The acceptor's waker token (listeners are numbered from 0).
pub(super) const ACCEPTOR_WAKER: Token = Token(usize::MAX);

/// While stopped at `-c` (`no_maxconns_fast`), how often to look for a free slot.
const STOPPED_POLL: Duration = Duration::from_millis(10);

/// Accepts connections and deals them out to the workers in turn.
pub(super) struct Acceptor {
    poll: Poll,
    listeners: Vec<Listener>,
    workers: Vec<(Sender<Socket>, Arc<Waker>)>,
    next: usize,
    shared: Arc<Shared>,
    /// Since when accepting is stopped at `-c` (`no_maxconns_fast` only).
    stopped_since: Option<Instant>,
    /// The connection accepted over `-c` that stopped the accepting: the first served when a
    /// slot frees.
    held: Option<Socket>,
}

impl Acceptor {
    /// An acceptor over `listeners` (registered on `poll` when it runs) dealing sockets to
    /// `workers` in turn.
    pub(super) fn new(
        poll: Poll,
        listeners: Vec<Listener>,
        workers: Vec<(Sender<Socket>, Arc<Waker>)>,
        shared: Arc<Shared>,
    ) -> Acceptor {
        Acceptor {
            poll,
            listeners,
            workers,
            next: 0,
            shared,
            stopped_since: None,
            held: None,
        }
    }

    /// Accepts until shutdown.
    pub(super) fn run(mut self) -> io::Result<()> {
        for (i, l) in self.listeners.iter_mut().enumerate() {
            self.poll
                .registry()
                .register(l, Token(i), Interest::READABLE)?;
        }
        let mut events = Events::with_capacity(64);
        while !self.shared.is_shutting_down() {
            let timeout = self.stopped_since.map(|_| STOPPED_POLL);
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            if self.stopped_since.is_some() {
                // Readiness that came while stopped is not lost: starting again drains every
                // listener's backlog.
                self.start_again_if_room();
                continue;
            }
            for event in events.iter() {
                if event.token() != ACCEPTOR_WAKER {
                    self.accept_all(event.token().0);
                }
            }
        }
        Ok(())
    }

    /// Whether `-c` connections are open.
    fn at_limit(&self) -> bool {
        let shared = &self.shared;
        shared.curr_connections.load(Ordering::Relaxed) >= shared.settings.max_connections as u64
    }

    /// Stops accepting at `-c` (`no_maxconns_fast`), holding `stream`, accepted over it:
    /// `accepting_conns` 0, one more `listen_disabled_num`.
    fn stop(&mut self, stream: Socket) {
        self.held = Some(stream);
        self.stopped_since = Some(Instant::now());
        self.shared.accepting.store(false, Ordering::Relaxed);
        self.shared
            .listen_disabled_num
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Accepts again once a connection has closed, taking what waited in every backlog.
    fn start_again_if_room(&mut self) {
        let Some(since) = self.stopped_since else {
            return;
        };
        if self.at_limit() {
            return;
        }
        self.stopped_since = None;
        let stopped = u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.shared
            .time_in_listen_disabled_us
            .fetch_add(stopped, Ordering::Relaxed);
        self.shared.accepting.store(true, Ordering::Relaxed);
        if let Some(stream) = self.held.take() {
            self.deal(stream);
        }
        for index in 0..self.listeners.len() {
            if self.stopped_since.is_some() {
                return;
            }
            self.accept_all(index);
        }
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
            if !self.at_limit() {
                self.deal(stream);
            } else if self.shared.settings.tuning.maxconns_fast {
                self.shared
                    .rejected_connections
                    .fetch_add(1, Ordering::Relaxed);
                let mut stream = stream;
                let _ = io::Write::write(&mut stream, TOO_MANY_CONNECTIONS);
            } else {
                self.stop(stream);
                return;
            }
        }
    }

    /// Hands an accepted connection to the next worker in turn.
    fn deal(&mut self, stream: Socket) {
        let shared = &self.shared;
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
