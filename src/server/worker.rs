//! A worker thread: one mio `Poll` owning a set of connections.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use mio::{Events, Interest, Poll, Token, Waker};
use tern_protocol::WatchEvents;

use super::buffers::BufferPool;
use super::conn::{Conn, Next};
use super::logger::{self, CloseReason};
use super::registry::Activity;
use super::socket::Socket;
use super::stats::ThreadStats;
use super::tls::TlsConn;
use super::Shared;

/// The token of the worker's waker (connections use their slot index).
pub const WAKER: Token = Token(usize::MAX);
/// Readiness events taken per `poll` call.
const EVENTS_PER_POLL: usize = 1024;
/// On shutdown, how long a worker keeps sending replies already promised to clients that are
/// slow to read them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// With `-o idle_timeout`, how often a quiet worker wakes to look for idle connections.
const IDLE_SWEEP: Duration = Duration::from_secs(1);
/// The connection table is not shrunk below this many slots: a worker's usual connection count
/// is cheap to keep, and shrinking it while it fluctuates would only reallocate.
const CLIENTS_KEEP: usize = 64;
/// How long a worker may serve turn after turn without sleeping before it offers its CPU to
/// other runnable threads (`sched_yield`). Alone on its core it gets the CPU straight back; with
/// more threads than cores (`-t` above the cores it is given, or other busy processes) a worker
/// that never sleeps would otherwise keep the CPU for a whole scheduler slice, several
/// milliseconds, while the connections of the worker waiting behind it get no answer: that was
/// the p99 gap of docs/performance.md "Tail latency".
const YIELD_AFTER: Duration = Duration::from_micros(250);
/// A `poll` that returned later than this after it was called slept (or lost the CPU) in it:
/// the worker's time on the CPU starts again.
const SLEPT: Duration = Duration::from_micros(20);
/// Heap bytes a connection holds besides its `Client` (its registry entry: two address strings,
/// the activity cell, the map node), counted toward the allocator trim when it closes.
const CLIENT_SIDE_STATE: usize = 160;

/// A connection and its socket.
struct Client {
    sock: Socket,
    conn: Conn,
    /// Whether the connection sits in the yield queue.
    queued: bool,
    /// When the client last did anything (clock seconds), for `-o idle_timeout`; shared with
    /// the registry that `stats conns` reads.
    last_active: Arc<Activity>,
    /// The socket's descriptor, its key in the registry.
    fd: i32,
    /// Whether the socket is registered for writability too (only while replies wait).
    write_interest: bool,
    /// The TLS session of a connection from a TLS listener (`-Z`); `None`, one word, for
    /// plaintext ones.
    tls: Option<Box<TlsConn>>,
}

/// A worker's state, owned by its thread.
pub struct Worker {
    poll: Poll,
    inbox: Receiver<Socket>,
    shared: Arc<Shared>,
    stats: Arc<ThreadStats>,
    clients: Vec<Option<Client>>,
    free: Vec<usize>,
    /// Connections that used their budget with work left, served after the others.
    yielded: Vec<usize>,
    /// The yield queue being served (swapped with `yielded`, so neither is reallocated).
    serving: Vec<usize>,
    /// When idle connections were last looked for (clock seconds).
    last_sweep: u32,
    /// Buffers lent to the connection being driven; idle connections hold none.
    pool: BufferPool,
    /// TLS connections still in their handshake: while there are any, the worker wakes once a
    /// second to close those past their deadline.
    handshaking: usize,
    /// When `poll` last returned: the start of the latency recorded for the requests served
    /// in this wake-up (`super::latency`; read only while metrics are served).
    woke: Instant,
    /// When the worker last slept or yielded: it offers its CPU after `YIELD_AFTER`.
    share: CpuShare,
}

/// When a busy worker offers its CPU to other runnable threads: after `YIELD_AFTER` of serving
/// without sleeping.
struct CpuShare {
    /// Since when the worker has been on the CPU, as far as it can tell.
    running_since: Instant,
}

impl CpuShare {
    fn new(now: Instant) -> CpuShare {
        CpuShare { running_since: now }
    }

    /// A `poll` called at `polled` returned at `woke`.
    fn polled(&mut self, polled: Instant, woke: Instant) {
        if woke.duration_since(polled) > SLEPT {
            self.running_since = woke;
        }
    }

    /// Whether to yield after a turn that woke at `woke` and found work (`busy`) or none.
    fn should_yield(&self, busy: bool, woke: Instant) -> bool {
        busy && woke.duration_since(self.running_since) >= YIELD_AFTER
    }

    /// The worker yielded, and has the CPU again at `now`.
    fn yielded(&mut self, now: Instant) {
        self.running_since = now;
    }
}

impl Worker {
    /// A worker fed new sockets through `inbox`; returns it and the waker that tells it to look.
    pub fn new(
        inbox: Receiver<Socket>,
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
                serving: Vec::new(),
                last_sweep: 0,
                pool: BufferPool::new(),
                handshaking: 0,
                woke: Instant::now(),
                share: CpuShare::new(Instant::now()),
            },
            waker,
        ))
    }

    /// Runs until the server shuts down.
    pub fn run(mut self) -> io::Result<()> {
        if let Some(slot) = self
            .shared
            .threads
            .iter()
            .position(|t| Arc::ptr_eq(t, &self.stats))
        {
            logger::set_thread_slot(slot);
        }
        let mut events = Events::with_capacity(EVENTS_PER_POLL);
        let idle_timeout = self.shared.settings.idle_timeout;
        while !self.shared.is_shutting_down() {
            let timeout = if !self.yielded.is_empty() {
                Some(Duration::ZERO)
            } else if idle_timeout > 0 || self.handshaking > 0 {
                Some(IDLE_SWEEP)
            } else {
                None
            };
            if self.yielded.is_empty() {
                // Likely to sleep in `poll`: a good moment to return memory freed by closes.
                self.pool.trim_when_idle();
            }
            self.turn(&mut events, timeout)?;
            if idle_timeout > 0 {
                self.kick_idle(idle_timeout);
            }
            if self.handshaking > 0 {
                self.kick_stalled_handshakes();
            }
        }
        self.drain(&mut events)?;
        self.close_all();
        Ok(())
    }

    /// Closes connections that did nothing for more than `idle_timeout` seconds
    /// (`-o idle_timeout`, counted in `idle_kicks`), looking at most once a second.
    fn kick_idle(&mut self, idle_timeout: u32) {
        let now = self.shared.clock.now();
        if now == self.last_sweep {
            return;
        }
        self.last_sweep = now;
        for slot in 0..self.clients.len() {
            let idle = matches!(self.clients.get(slot),
                Some(Some(c)) if now.saturating_sub(c.last_active.last_active.load(Ordering::Relaxed)) > idle_timeout);
            if idle {
                log::debug!("closing connection idle for over {idle_timeout} s");
                self.stats.idle_kicks.incr();
                self.close(slot, CloseReason::IdleTimeout);
            }
        }
    }

    /// Closes TLS connections whose handshake is past its deadline (counted in
    /// `ssl_handshake_errors` and `ssl_handshake_timeouts`): a client that connects and stalls
    /// holds a slot, never the worker.
    fn kick_stalled_handshakes(&mut self) {
        let now = self.shared.clock.now();
        for slot in 0..self.clients.len() {
            let overdue = matches!(self.clients.get(slot),
                Some(Some(Client { tls: Some(tls), .. })) if tls.handshake_overdue(now));
            if overdue {
                log::debug!("closing a TLS connection whose handshake stalled");
                if let Some(tls) = &self.shared.tls {
                    tls.handshake_timed_out();
                }
                self.close(slot, CloseReason::Error);
            }
        }
    }

    /// Graceful stop: read nothing more, answer what was read, send every reply, then return
    /// (or give up on clients that do not read within `DRAIN_TIMEOUT`).
    fn drain(&mut self, events: &mut Events) -> io::Result<()> {
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        // Sockets handed over but not yet adopted are closed unserved: they sent nothing yet.
        while let Ok(sock) = self.inbox.try_recv() {
            drop(sock);
            self.shared.connection_closed();
        }
        for slot in 0..self.clients.len() {
            // A TLS client still in its handshake has asked for nothing yet.
            if matches!(self.clients.get(slot),
                Some(Some(Client { tls: Some(tls), .. })) if tls.is_handshaking())
            {
                self.close(slot, CloseReason::Shutdown);
                continue;
            }
            if let Some(Some(client)) = self.clients.get_mut(slot) {
                client.conn.stop_reading();
                client.queued = false;
                self.serve(slot);
            }
        }
        self.yielded
            .retain(|&slot| matches!(self.clients.get(slot), Some(Some(_))));
        while self.clients.iter().any(Option::is_some) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let timeout = if self.yielded.is_empty() {
                deadline - now
            } else {
                Duration::ZERO
            };
            self.turn(events, Some(timeout))?;
        }
        Ok(())
    }

    /// One poll and the work it brings, then one more turn for each connection that yielded.
    fn turn(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        {
            let polled = Instant::now();
            match self.poll.poll(events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
                Err(e) => return Err(e),
            }
            let woke = Instant::now();
            self.share.polled(polled, woke);
            self.woke = woke;
            let busy = !events.is_empty() || !self.yielded.is_empty();
            for event in events.iter() {
                match event.token() {
                    WAKER => {
                        if !self.shared.is_shutting_down() {
                            self.adopt_new();
                        }
                    }
                    // A short read may end the reading only for a plain readability event; when
                    // the peer closed its side, read on until the end of the stream.
                    Token(slot) => {
                        self.serve_with(slot, event.is_readable() && !event.is_read_closed())
                    }
                }
            }
            // Give each connection that yielded one more turn, after everyone polled above.
            std::mem::swap(&mut self.serving, &mut self.yielded);
            for i in 0..self.serving.len() {
                let slot = self.serving[i];
                if let Some(Some(client)) = self.clients.get_mut(slot) {
                    client.queued = false;
                }
                self.serve(slot);
            }
            self.serving.clear();
            if self.share.should_yield(busy, woke) {
                std::thread::yield_now();
                self.share.yielded(Instant::now());
            }
        }
        Ok(())
    }

    /// A free slot in the connection table. Free-list entries the table outgrew (slots past
    /// its end when it shrank, or taken again since) are dropped here.
    fn free_slot(&mut self) -> usize {
        while let Some(slot) = self.free.pop() {
            if matches!(self.clients.get(slot), Some(None)) {
                return slot;
            }
        }
        self.clients.push(None);
        self.clients.len() - 1
    }

    fn adopt_new(&mut self) {
        while let Ok(mut sock) = self.inbox.try_recv() {
            let slot = self.free_slot();
            let registered =
                self.poll
                    .registry()
                    .register(&mut sock, Token(slot), Interest::READABLE);
            if registered.is_err() {
                self.shared.connection_closed();
                self.free.push(slot);
                continue;
            }
            let fd = sock.fd();
            let last_active = self.shared.registry.add(
                fd,
                sock.peer_name(),
                sock.local_name(),
                self.shared.clock.now(),
            );
            log::trace!("fd {fd}: new connection from {}", sock.peer_name());
            let tls = match (sock.is_tls(), &self.shared.tls) {
                (false, _) => None,
                (true, Some(ctx)) => match ctx.accept() {
                    Ok(mut session) => {
                        session.set_started(self.shared.clock.now());
                        self.handshaking += 1;
                        Some(Box::new(session))
                    }
                    Err(e) => {
                        log::warn!("cannot start a TLS session: {e}");
                        None
                    }
                },
                (true, None) => None,
            };
            if sock.is_tls() && tls.is_none() {
                // Never serve a TLS listener's client in plaintext.
                self.shared.registry.remove(fd);
                let _ = self.poll.registry().deregister(&mut sock);
                self.shared.connection_closed();
                self.free.push(slot);
                continue;
            }
            if self.shared.logger.watching(WatchEvents::CONNEVENTS) {
                let peer = sock.peer_name();
                self.shared
                    .log_event(|out| logger::conn_new(out, &peer, fd));
            }
            let mut conn = Conn::new();
            conn.set_fd(fd);
            self.clients[slot] = Some(Client {
                sock,
                conn,
                queued: false,
                last_active,
                fd,
                write_interest: false,
                tls,
            });
            if let Some(Some(client)) = self.clients.get(slot) {
                self.shared.observed.connection_opened(&client.sock);
            }
            // Data may have arrived before registration; serve it now rather than wait for an
            // edge that already passed.
            self.serve(slot);
        }
    }

    /// Drives a connection, reading until `WouldBlock`.
    fn serve(&mut self, slot: usize) {
        self.serve_with(slot, false);
    }

    /// Drives a connection; see [`Conn::drive`] for `trust_short_read`.
    fn serve_with(&mut self, slot: usize, trust_short_read: bool) {
        let Some(Some(client)) = self.clients.get_mut(slot) else {
            return; // A stale event for a closed connection.
        };
        if client.queued {
            return; // Its turn comes from the yield queue.
        }
        client
            .last_active
            .last_active
            .store(self.shared.clock.now(), Ordering::Relaxed);
        let next = match &mut client.tls {
            None => client.conn.drive(
                &mut client.sock,
                &self.shared,
                &self.stats,
                &mut self.pool,
                trust_short_read,
            ),
            Some(tls) => {
                let was_handshaking = tls.is_handshaking();
                let next = tls.drive(
                    &mut client.sock,
                    &mut client.conn,
                    &self.shared,
                    &self.stats,
                    &mut self.pool,
                    trust_short_read,
                );
                if was_handshaking && !tls.is_handshaking() {
                    self.handshaking -= 1;
                }
                next
            }
        };
        client
            .last_active
            .reading_data
            .store(client.conn.reading_data(), Ordering::Relaxed);
        if self.stats.latency.has_pending() {
            self.stats.latency.commit(self.woke.elapsed());
        }
        match next {
            Next::Wait => {
                let want = client.conn.wants_write()
                    || client.tls.as_ref().is_some_and(|tls| tls.wants_write());
                if want != client.write_interest {
                    let interest = if want {
                        Interest::READABLE | Interest::WRITABLE
                    } else {
                        Interest::READABLE
                    };
                    // Re-registering reports the current state, so a socket that is already
                    // writable wakes us at once: no edge is lost.
                    if self
                        .poll
                        .registry()
                        .reregister(&mut client.sock, Token(slot), interest)
                        .is_err()
                    {
                        self.close(slot, CloseReason::Error);
                        return;
                    }
                    client.write_interest = want;
                }
            }
            Next::Yield => {
                log::trace!("fd {}: yields after its request budget", client.fd);
                client.queued = true;
                self.yielded.push(slot);
            }
            Next::Close => {
                let reason = if client.conn.failed() {
                    CloseReason::Error
                } else {
                    CloseReason::Normal
                };
                self.close(slot, reason);
            }
            Next::Watch(events) => self.become_watcher(slot, events),
        }
    }

    fn close(&mut self, slot: usize, reason: CloseReason) {
        if let Some(mut client) = self.clients.get_mut(slot).and_then(Option::take) {
            log::trace!("fd {}: closed", client.fd);
            if client.tls.as_ref().is_some_and(|tls| tls.is_handshaking()) {
                self.handshaking -= 1;
            }
            if self.shared.logger.watching(WatchEvents::CONNEVENTS) {
                let peer = client.sock.peer_name();
                self.shared.log_event(|out| {
                    logger::conn_close(out, &peer, reason, client.fd);
                });
            }
            self.shared.registry.remove(client.fd);
            self.shared.observed.connection_closed(&client.sock);
            let _ = self.poll.registry().deregister(&mut client.sock);
            client.conn.release_buffers(&mut self.pool);
            self.free.push(slot);
            self.shared.connection_closed();
            // The connection's own state and its registry entry (addresses, activity cell).
            self.pool
                .note_freed(std::mem::size_of::<Client>() + CLIENT_SIDE_STATE);
            self.shrink_table();
            self.pool.trim_if_due();
        }
    }

    /// Gives back the connection table's unused tail once most of it is free, so that a wave
    /// of connections that came and went does not keep its slots for the worker's lifetime.
    fn shrink_table(&mut self) {
        while matches!(self.clients.last(), Some(None)) {
            self.clients.pop();
        }
        let len = self.clients.len();
        if self.clients.capacity() > CLIENTS_KEEP.max(len * 4) {
            self.free.retain(|&slot| slot < len);
            self.clients.shrink_to(CLIENTS_KEEP.max(len * 2));
            self.free.shrink_to(CLIENTS_KEEP.max(len * 2));
            // Many connections went away: return what they freed once the worker is idle.
            self.pool.request_trim();
        }
    }

    fn close_all(&mut self) {
        for slot in 0..self.clients.len() {
            self.close(slot, CloseReason::Shutdown);
        }
    }

    /// Hands a connection whose `watch` was accepted to the logger thread, with its `OK` if
    /// the socket has not taken it yet. It stays in `stats conns` (as `conn_watch`) and counts
    /// as a connection until the logger closes it.
    fn become_watcher(&mut self, slot: usize, events: WatchEvents) {
        if let Some(mut client) = self.clients.get_mut(slot).and_then(Option::take) {
            let _ = self.poll.registry().deregister(&mut client.sock);
            let unsent = client.conn.take_unsent();
            client.conn.release_buffers(&mut self.pool);
            self.free.push(slot);
            self.shared.registry.mark_watching(client.fd);
            self.shared
                .logger
                .add_watcher(client.sock, client.fd, events, unsent);
            self.shrink_table();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_worker_yields_after_its_share_and_not_before() {
        let start = Instant::now();
        let mut share = CpuShare::new(start);
        // Turns back to back, each poll returning at once.
        let mut t = start;
        while t.duration_since(start) < YIELD_AFTER {
            assert!(!share.should_yield(true, t));
            share.polled(t, t + Duration::from_micros(1));
            t += Duration::from_micros(50);
        }
        assert!(share.should_yield(true, t));
        // An idle turn (a poll that timed out with nothing) never yields.
        assert!(!share.should_yield(false, t));
        share.yielded(t);
        assert!(!share.should_yield(true, t + Duration::from_micros(10)));
    }

    #[test]
    fn sleeping_in_poll_starts_the_share_again() {
        let start = Instant::now();
        let mut share = CpuShare::new(start);
        let late = start + YIELD_AFTER * 4;
        // The poll slept: serving what it brought is a fresh start, no yield.
        share.polled(late - SLEPT * 2, late);
        assert!(!share.should_yield(true, late));
        assert!(share.should_yield(true, late + YIELD_AFTER));
    }
}
