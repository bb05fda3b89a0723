//! A worker thread: one mio `Poll` owning a set of connections.

use std::io;
use std::sync::Arc;

use crossbeam_channel::Receiver;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};

use super::conn::{Conn, Next};
use super::stats::ThreadStats;
use super::Shared;

/// The token of the worker's waker (connections use their slot index).
pub const WAKER: Token = Token(usize::MAX);
/// Readiness events taken per `poll` call.
const EVENTS_PER_POLL: usize = 1024;

/// A connection and its socket.
struct Client {
    sock: TcpStream,
    conn: Conn,
    /// Whether the connection sits in the yield queue.
    queued: bool,
}

/// A worker's state, owned by its thread.
pub struct Worker {
    poll: Poll,
    inbox: Receiver<TcpStream>,
    shared: Arc<Shared>,
    stats: Arc<ThreadStats>,
    clients: Vec<Option<Client>>,
    free: Vec<usize>,
    /// Connections that used their budget with work left, served after the others.
    yielded: Vec<usize>,
}

impl Worker {
    /// A worker fed new sockets through `inbox`; returns it and the waker that tells it to look.
    pub fn new(
        inbox: Receiver<TcpStream>,
        shared: Arc<Shared>,
        stats: Arc<ThreadStats>,
    ) -> io::Result<(Worker, Arc<Waker>)> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        Ok((
            Worker {
                poll,
                inbox,
                shared,
                stats,
                clients: Vec::new(),
                free: Vec::new(),
                yielded: Vec::new(),
            },
            waker,
        ))
    }

    /// Runs until the server shuts down.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(EVENTS_PER_POLL);
        let mut again = Vec::new();
        while !self.shared.is_shutting_down() {
            let timeout = if self.yielded.is_empty() {
                None
            } else {
                Some(std::time::Duration::ZERO)
            };
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for event in events.iter() {
                match event.token() {
                    WAKER => self.adopt_new(),
                    Token(slot) => self.serve(slot),
                }
            }
            // Give each connection that yielded one more turn, after everyone polled above.
            std::mem::swap(&mut again, &mut self.yielded);
            for slot in again.drain(..) {
                if let Some(Some(client)) = self.clients.get_mut(slot) {
                    client.queued = false;
                }
                self.serve(slot);
            }
        }
        self.close_all();
        Ok(())
    }

    fn adopt_new(&mut self) {
        while let Ok(mut sock) = self.inbox.try_recv() {
            let slot = self.free.pop().unwrap_or_else(|| {
                self.clients.push(None);
                self.clients.len() - 1
            });
            let registered = self.poll.registry().register(
                &mut sock,
                Token(slot),
                Interest::READABLE | Interest::WRITABLE,
            );
            if registered.is_err() {
                self.shared.connection_closed();
                self.free.push(slot);
                continue;
            }
            self.clients[slot] = Some(Client {
                sock,
                conn: Conn::new(),
                queued: false,
            });
            // Data may have arrived before registration; serve it now rather than wait for an
            // edge that already passed.
            self.serve(slot);
        }
    }

    fn serve(&mut self, slot: usize) {
        let Some(Some(client)) = self.clients.get_mut(slot) else {
            return; // A stale event for a closed connection.
        };
        if client.queued {
            return; // Its turn comes from the yield queue.
        }
        match client
            .conn
            .drive(&mut client.sock, &self.shared, &self.stats)
        {
            Next::Wait => {}
            Next::Yield => {
                client.queued = true;
                self.yielded.push(slot);
            }
            Next::Close => self.close(slot),
        }
    }

    fn close(&mut self, slot: usize) {
        if let Some(mut client) = self.clients[slot].take() {
            let _ = self.poll.registry().deregister(&mut client.sock);
            self.free.push(slot);
            self.shared.connection_closed();
        }
    }

    fn close_all(&mut self) {
        for slot in 0..self.clients.len() {
            self.close(slot);
        }
    }
}
