//! The acceptor thread: owns every listening socket, enforces `-c`, and deals accepted sockets
//! to the workers in turn (see the module docs of `super` for why one acceptor).

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam_channel::Sender;
use mio::{Events, Interest, Poll, Token, Waker};

use super::shared::Shared;
use super::socket::{Listener, Socket};

/// Reply to a connection over the `-c` limit, as memcached sends it before closing.
const TOO_MANY_CONNECTIONS: &[u8] = b"ERROR Too many open connections\r\n";

/// The acceptor's waker token (listeners are numbered from 0).
pub(super) const ACCEPTOR_WAKER: Token = Token(usize::MAX);

/// Accepts connections and deals them out to the workers in turn.
pub(super) struct Acceptor {
    poll: Poll,
    listeners: Vec<Listener>,
    workers: Vec<(Sender<Socket>, Arc<Waker>)>,
    next: usize,
    shared: Arc<Shared>,
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
