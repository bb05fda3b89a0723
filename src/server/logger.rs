//! `watch`: live log streaming, as memcached 1.6.18's logger (`logger.c`).
//!
//! ```text
//!  [worker i] ──format line──▶ WorkerBuf i (bounded; full: dropped, log_worker_dropped)
//!                                   │ swapped out every LOGGER_TICK by
//!                                   ▼
//!                              [logger thread] ──▶ each watcher's buffer (bounded; full:
//!                                   │               skipped, log_watcher_skipped, then a
//!                                   ▼               `skipped=N` line once room returns)
//!                              watcher sockets (owned by the logger thread, written non-blocking)
//! ```
//!
//! Workers never wait on a watcher: an event is one lock of the worker's own buffer (contended
//! only by the logger copying it out) and a copy; if the buffer is full the event is dropped
//! and counted. With no watcher attached, [`Logger::watching`] is one relaxed load and
//! nothing else happens. Lines are memcached's: `ts=<sec>.<usec> gid=<n> type=... \n`.

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mio::{Events, Interest, Poll, Token, Waker};
use parking_lot::Mutex;
use tern_protocol::WatchEvents;

use super::socket::Socket;
use super::Shared;

/// How often the logger thread moves lines from the workers' buffers to the watchers (memcached's
/// logger thread sleeps up to 50 ms between passes when idle, less when busy).
const LOGGER_TICK: Duration = Duration::from_millis(10);
/// The logger thread's waker token (watchers use their slot index).
const WAKER: Token = Token(usize::MAX);

thread_local! {
    /// The log buffer of the thread running this code (its index among the server's
    /// event-producing threads), for events raised where no connection is at hand (evictions,
    /// inside the store).
    static THREAD_SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// Records that the calling thread logs into buffer `slot`.
pub fn set_thread_slot(slot: usize) {
    THREAD_SLOT.with(|s| s.set(slot));
}

/// Why a connection closed (`conn_close reason=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// A protocol or socket error.
    Error,
    /// `quit` or the client closed its side.
    Normal,
    /// `-o idle_timeout`.
    IdleTimeout,
    /// The server is shutting down.
    Shutdown,
}

impl CloseReason {
    fn name(self) -> &'static str {
        match self {
            CloseReason::Error => "error",
            CloseReason::Normal => "normal",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::Shutdown => "shutdown",
        }
    }
}

/// One worker's buffer of formatted lines.
#[derive(Debug, Default)]
struct WorkerBuf {
    lines: Mutex<Vec<u8>>,
}

/// A new watcher waiting for the logger thread to adopt it.
struct NewWatcher {
    sock: Socket,
    fd: i32,
    events: WatchEvents,
    /// Reply bytes the worker had not sent yet (the `OK`).
    unsent: Vec<u8>,
}

/// The logger shared by every thread of one server.
pub struct Logger {
    /// The union of the event classes of the attached watchers.
    mask: AtomicU32,
    gid: AtomicU64,
    bufs: Vec<WorkerBuf>,
    worker_cap: usize,
    watcher_cap: usize,
    inbox: Mutex<Vec<NewWatcher>>,
    waker: Mutex<Option<Arc<Waker>>>,
    /// `log_watchers`.
    watchers: AtomicU64,
    /// `log_worker_dropped`, `log_worker_written`, `log_watcher_skipped`, `log_watcher_sent`.
    worker_dropped: AtomicU64,
    worker_written: AtomicU64,
    watcher_skipped: AtomicU64,
    watcher_sent: AtomicU64,
}

/// The `log_*` lines of `stats`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LoggerStats {
    /// Lines dropped because a worker's buffer was full.
    pub worker_dropped: u64,
    /// Lines written into workers' buffers.
    pub worker_written: u64,
    /// Lines skipped because a watcher's buffer was full.
    pub watcher_skipped: u64,
    /// Lines handed to watchers.
    pub watcher_sent: u64,
    /// Watchers attached.
    pub watchers: u64,
}

impl Logger {
    /// A logger for `threads` event-producing threads, with memcached's buffer sizes
    /// (`-o worker_logbuf_size`, `-o watcher_logbuf_size`).
    pub fn new(threads: usize, worker_cap: usize, watcher_cap: usize) -> Logger {
        Logger {
            mask: AtomicU32::new(0),
            gid: AtomicU64::new(0),
            bufs: (0..threads).map(|_| WorkerBuf::default()).collect(),
            worker_cap: worker_cap.max(1024),
            watcher_cap: watcher_cap.max(1024),
            inbox: Mutex::new(Vec::new()),
            waker: Mutex::new(None),
            watchers: AtomicU64::new(0),
            worker_dropped: AtomicU64::new(0),
            worker_written: AtomicU64::new(0),
            watcher_skipped: AtomicU64::new(0),
            watcher_sent: AtomicU64::new(0),
        }
    }

    /// Whether any watcher wants `flag` events: the only cost of logging when none does.
    #[inline]
    pub fn watching(&self, flag: u16) -> bool {
        self.mask.load(Ordering::Relaxed) & u32::from(flag) != 0
    }

    /// The counters for `stats`.
    pub fn stats(&self) -> LoggerStats {
        LoggerStats {
            worker_dropped: self.worker_dropped.load(Ordering::Relaxed),
            worker_written: self.worker_written.load(Ordering::Relaxed),
            watcher_skipped: self.watcher_skipped.load(Ordering::Relaxed),
            watcher_sent: self.watcher_sent.load(Ordering::Relaxed),
            watchers: self.watchers.load(Ordering::Relaxed),
        }
    }

    /// `stats reset`: zeroes the counters (not `log_watchers`, a gauge), as memcached does.
    pub fn reset(&self) {
        for c in [
            &self.worker_dropped,
            &self.worker_written,
            &self.watcher_skipped,
            &self.watcher_sent,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }

    /// Appends one event to thread `thread`'s buffer: `body` writes what follows
    /// `ts=... gid=... ` (without the newline). Dropped (and counted) when the buffer is full.
    pub fn log(&self, thread: usize, body: impl FnOnce(&mut Vec<u8>)) {
        let Some(buf) = self.bufs.get(thread) else {
            return;
        };
        // A plain lock, as memcached's logger takes its per-thread buffer's mutex: the only
        // other holder is the logger copying this buffer out (bounded by the buffer's cap).
        // A `try_lock` here dropped events whenever the swap was in progress.
        let mut lines = buf.lines.lock();
        let start = lines.len();
        if start >= self.worker_cap {
            self.worker_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let gid = self.gid.fetch_add(1, Ordering::Relaxed) + 1;
        let mut num = itoa::Buffer::new();
        lines.extend_from_slice(b"ts=");
        lines.extend_from_slice(num.format(now.as_secs()).as_bytes());
        lines.push(b'.');
        // memcached prints the microseconds with `%d`: not zero-padded.
        lines.extend_from_slice(num.format(now.subsec_micros()).as_bytes());
        lines.extend_from_slice(b" gid=");
        lines.extend_from_slice(num.format(gid).as_bytes());
        lines.push(b' ');
        body(&mut lines);
        lines.push(b'\n');
        if lines.len() > self.worker_cap {
            lines.truncate(start);
            self.worker_dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            self.worker_written.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// [`Logger::log`] into the calling thread's buffer ([`set_thread_slot`]).
    pub fn log_here(&self, body: impl FnOnce(&mut Vec<u8>)) {
        self.log(THREAD_SLOT.with(Cell::get), body);
    }

    /// Hands a connection that sent `watch` to the logger thread.
    pub(super) fn add_watcher(&self, sock: Socket, fd: i32, events: WatchEvents, unsent: Vec<u8>) {
        let mut inbox = self.inbox.lock();
        inbox.push(NewWatcher {
            sock,
            fd,
            events,
            unsent,
        });
        // Events are kept from now on, before the watcher's `OK` goes out. Under the inbox
        // lock, so the logger's recomputation of the mask cannot lose it.
        self.mask.fetch_or(u32::from(events.0), Ordering::Relaxed);
        drop(inbox);
        if let Some(waker) = &*self.waker.lock() {
            let _ = waker.wake();
        }
    }

    /// Wakes the logger thread (shutdown).
    pub(super) fn wake(&self) {
        if let Some(waker) = &*self.waker.lock() {
            let _ = waker.wake();
        }
    }
}

/// Appends `key` URI-encoded as memcached's `uriencode` does: letters, digits and `-._~` as
/// they are, every other byte as `%XX`.
pub fn put_uri_key(out: &mut Vec<u8>, key: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in key {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

/// Appends ` name=value` pairs' common pieces.
pub fn put_field(out: &mut Vec<u8>, name: &str, value: impl itoa::Integer) {
    out.push(b' ');
    out.extend_from_slice(name.as_bytes());
    out.push(b'=');
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// `rip=<ip> rport=<port> transport=<tcp|local>` of a connection named as `stats conns`
/// names it (`tcp:1.2.3.4:5`, `tcp6:[::1]:5`, `unix:/path`).
pub fn put_peer(out: &mut Vec<u8>, peer: &str) {
    let (transport, ip, port) = if let Some(rest) = peer
        .strip_prefix("tcp:")
        .or_else(|| peer.strip_prefix("tcp6:"))
    {
        match rest.rsplit_once(':') {
            Some((ip, port)) => (
                "tcp",
                ip.trim_start_matches('[').trim_end_matches(']'),
                port,
            ),
            None => ("tcp", rest, "0"),
        }
    } else {
        // memcached prints an empty address and port 0 for a Unix-domain peer.
        ("local", "", "0")
    };
    out.extend_from_slice(b"rip=");
    out.extend_from_slice(ip.as_bytes());
    out.extend_from_slice(b" rport=");
    out.extend_from_slice(port.as_bytes());
    out.extend_from_slice(b" transport=");
    out.extend_from_slice(transport.as_bytes());
}

/// Formats a `conn_new` event.
pub fn conn_new(out: &mut Vec<u8>, peer: &str, fd: i32) {
    out.extend_from_slice(b"type=conn_new ");
    put_peer(out, peer);
    put_field(out, "cfd", fd);
}

/// Formats a `conn_close` event.
pub fn conn_close(out: &mut Vec<u8>, peer: &str, reason: CloseReason, fd: i32) {
    out.extend_from_slice(b"type=conn_close ");
    put_peer(out, peer);
    out.extend_from_slice(b" reason=");
    out.extend_from_slice(reason.name().as_bytes());
    put_field(out, "cfd", fd);
}

/// Formats an `eviction` event.
pub fn eviction(out: &mut Vec<u8>, e: &crate::store::Evicted<'_>) {
    out.extend_from_slice(b"type=eviction key=");
    put_uri_key(out, e.key);
    out.extend_from_slice(if e.fetched {
        b" fetch=yes".as_slice()
    } else {
        b" fetch=no"
    });
    put_field(out, "ttl", e.ttl);
    put_field(out, "la", e.last_access);
    put_field(out, "clsid", e.class_id);
    put_field(out, "size", e.value_len);
}

/// One attached watcher, owned by the logger thread.
struct Watcher {
    sock: Socket,
    fd: i32,
    events: WatchEvents,
    buf: Vec<u8>,
    sent: usize,
    skipped: u64,
}

/// Which event class a formatted line belongs to, read from its `type=` field.
fn class_of(line: &[u8]) -> u16 {
    let Some(pos) = line.windows(5).position(|w| w == b"type=") else {
        return 0;
    };
    let t = &line[pos + 5..];
    if t.starts_with(b"item_get ") {
        WatchEvents::FETCHERS
    } else if t.starts_with(b"item_store ") {
        WatchEvents::MUTATIONS
    } else if t.starts_with(b"eviction ") {
        WatchEvents::EVICTIONS
    } else if t.starts_with(b"conn_") {
        WatchEvents::CONNEVENTS
    } else {
        WatchEvents::SYSEVENTS
    }
}

/// The logger thread: adopts watchers, moves lines, writes them out, notices watchers leave.
pub(super) fn run(shared: Arc<Shared>) -> io::Result<()> {
    let logger = &shared.logger;
    let mut poll = Poll::new()?;
    *logger.waker.lock() = Some(Arc::new(Waker::new(poll.registry(), WAKER)?));
    let mut events = Events::with_capacity(64);
    let mut watchers: Vec<Option<Watcher>> = Vec::new();
    let mut batch: Vec<u8> = Vec::new();
    while !shared.is_shutting_down() {
        let timeout = poll_timeout(logger, watchers.iter().any(Option::is_some));
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        let mut changed = false;
        for ev in events.iter() {
            if ev.token() == WAKER {
                continue;
            }
            // A watcher sends nothing; anything readable is its close (or junk, ignored).
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                let slot = ev.token().0;
                if let Some(Some(w)) = watchers.get_mut(slot) {
                    let mut scratch = [0u8; 256];
                    let gone = loop {
                        match w.sock.read(&mut scratch) {
                            Ok(0) => break true,
                            Ok(_) => continue,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                            Err(_) => break true,
                        }
                    };
                    if gone {
                        drop_watcher(&shared, &mut poll, &mut watchers, slot);
                        changed = true;
                    }
                }
            }
        }
        for new in std::mem::take(&mut *logger.inbox.lock()) {
            let slot = watchers
                .iter()
                .position(Option::is_none)
                .unwrap_or_else(|| {
                    watchers.push(None);
                    watchers.len() - 1
                });
            let mut sock = new.sock;
            if poll
                .registry()
                .register(&mut sock, Token(slot), Interest::READABLE)
                .is_err()
            {
                shared.registry.remove(new.fd);
                shared.connection_closed();
                continue;
            }
            watchers[slot] = Some(Watcher {
                sock,
                fd: new.fd,
                events: new.events,
                buf: new.unsent,
                sent: 0,
                skipped: 0,
            });
            logger.watchers.fetch_add(1, Ordering::Relaxed);
            changed = true;
        }
        if changed {
            update_mask(logger, &watchers);
        }
        // Move every worker's lines out, holding each lock only for a swap.
        batch.clear();
        for buf in &logger.bufs {
            let mut lines = buf.lines.lock();
            batch.extend_from_slice(&lines);
            lines.clear();
        }
        for line in batch.split_inclusive(|&b| b == b'\n') {
            let class = class_of(line);
            for w in watchers.iter_mut().flatten() {
                if !w.events.has(class) {
                    continue;
                }
                deliver(logger, w, line);
            }
        }
        let mut dead = Vec::new();
        for (slot, w) in watchers.iter_mut().enumerate() {
            let Some(w) = w else { continue };
            if flush(w).is_err() {
                dead.push(slot);
            }
        }
        for slot in dead {
            drop_watcher(&shared, &mut poll, &mut watchers, slot);
            update_mask(logger, &watchers);
        }
    }
    for slot in 0..watchers.len() {
        drop_watcher(&shared, &mut poll, &mut watchers, slot);
    }
    Ok(())
}

/// How long the logger thread may sleep in `poll`: not at all while watchers wait in the
/// inbox, a tick while watchers are attached (`attached`), else until woken. A watcher handed
/// over before the thread had made its waker woke nobody (at start-up, a `watch` sent at once
/// could wait forever for its `OK`); the thread makes the waker before it first looks here, so
/// one handed over after the look wakes the poll.
fn poll_timeout(logger: &Logger, attached: bool) -> Option<Duration> {
    if !logger.inbox.lock().is_empty() {
        Some(Duration::ZERO)
    } else if attached {
        Some(LOGGER_TICK)
    } else {
        None
    }
}

/// Sets the event mask to what the attached watchers and those waiting to be adopted want.
fn update_mask(logger: &Logger, watchers: &[Option<Watcher>]) {
    let inbox = logger.inbox.lock();
    let waiting = inbox.iter().map(|n| n.events.0);
    let mask = watchers
        .iter()
        .flatten()
        .map(|w| w.events.0)
        .chain(waiting)
        .fold(0u32, |m, e| m | u32::from(e));
    logger.mask.store(mask, Ordering::Relaxed);
}

/// Queues `line` for `w`, or counts it skipped when `w`'s buffer is full; a `skipped=N` line
/// goes first once there is room again (memcached's order).
fn deliver(logger: &Logger, w: &mut Watcher, line: &[u8]) {
    let pending = w.buf.len() - w.sent;
    if w.skipped > 0 {
        let mut note = Vec::with_capacity(32);
        note.extend_from_slice(b"skipped=");
        note.extend_from_slice(itoa::Buffer::new().format(w.skipped).as_bytes());
        note.push(b'\n');
        if pending + note.len() + line.len() > logger.watcher_cap {
            w.skipped += 1;
            logger.watcher_skipped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        w.buf.extend_from_slice(&note);
        w.skipped = 0;
    } else if pending + line.len() > logger.watcher_cap {
        w.skipped += 1;
        logger.watcher_skipped.fetch_add(1, Ordering::Relaxed);
        return;
    }
    w.buf.extend_from_slice(line);
    logger.watcher_sent.fetch_add(1, Ordering::Relaxed);
}

/// Writes what `w` has queued until the socket would block.
fn flush(w: &mut Watcher) -> io::Result<()> {
    while w.sent < w.buf.len() {
        match w.sock.write(&w.buf[w.sent..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => w.sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if w.sent == w.buf.len() {
        w.buf.clear();
        w.sent = 0;
    } else if w.sent > w.buf.len() / 2 {
        w.buf.drain(..w.sent);
        w.sent = 0;
    }
    Ok(())
}

fn drop_watcher(shared: &Shared, poll: &mut Poll, watchers: &mut [Option<Watcher>], slot: usize) {
    if let Some(mut w) = watchers.get_mut(slot).and_then(Option::take) {
        let _ = poll.registry().deregister(&mut w.sock);
        shared.registry.remove(w.fd);
        shared.connection_closed();
        shared.logger.watchers.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watcher_handed_over_before_the_logger_thread_ran_is_not_left_waiting() {
        let logger = Logger::new(1, 1024, 1024);
        assert_eq!(poll_timeout(&logger, false), None);
        assert_eq!(poll_timeout(&logger, true), Some(LOGGER_TICK));
        // No waker yet: the hand-over wakes nobody, so the thread must not sleep on it.
        let (sock, _peer) = mio::net::UnixStream::pair().unwrap();
        logger.add_watcher(
            Socket::Unix(sock),
            -1,
            WatchEvents(WatchEvents::FETCHERS),
            b"OK\r\n".to_vec(),
        );
        assert!(logger.watching(WatchEvents::FETCHERS));
        assert_eq!(poll_timeout(&logger, false), Some(Duration::ZERO));
    }

    #[test]
    fn keys_are_uri_encoded_as_memcached_does() {
        let mut out = Vec::new();
        put_uri_key(&mut out, b"a-Z_9.~ #:/\xff");
        assert_eq!(out, b"a-Z_9.~%20%23%3A%2F%FF");
    }

    #[test]
    fn lines_carry_ts_and_gid_and_full_buffers_drop() {
        let logger = Logger::new(1, 1024, 1024);
        logger.log(0, |out| out.extend_from_slice(b"type=item_get key=a"));
        let lines = logger.bufs[0].lines.lock().clone();
        let text = String::from_utf8(lines).unwrap();
        assert!(text.starts_with("ts="), "{text}");
        assert!(text.ends_with(" gid=1 type=item_get key=a\n"), "{text}");
        for _ in 0..100 {
            logger.log(0, |out| out.extend_from_slice(&[b'x'; 100]));
        }
        let s = logger.stats();
        assert!(s.worker_dropped > 0);
        assert!(s.worker_written > 0);
        assert!(logger.bufs[0].lines.lock().len() <= 1024);
        logger.reset();
        assert_eq!(logger.stats(), LoggerStats::default());
    }

    #[test]
    fn conn_events_name_the_peer_like_memcached() {
        let mut out = Vec::new();
        conn_close(&mut out, "tcp:127.0.0.1:40426", CloseReason::Normal, 28);
        assert_eq!(
            out,
            b"type=conn_close rip=127.0.0.1 rport=40426 transport=tcp reason=normal cfd=28"
        );
    }
}
