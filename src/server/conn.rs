//! One client connection: its socket, its input and output buffers, and the loop that reads
//! requests, executes them and writes replies.
//!
//! The loop keeps mio's edge-triggered contract: it reads until `WouldBlock` unless it has a
//! reason to stop (the output is over its cap, or the connection used its `-R` budget), and in
//! that case the worker comes back to it (on writability, or from its yield queue) and the loop
//! starts by reading again, so no readiness is ever lost.

use std::io::{self, Read, Write};

use tern_protocol::binary::{self, Header, Status, REQUEST_MAGIC};
use tern_protocol::meta::{self, MetaFlags};
use tern_protocol::operator::{LruCrawlerRequest, OperatorRequest};
use tern_protocol::{text, ParseError, Request, Response, WatchEvents};

use super::buffers::{BufferPool, BUF_SIZE};
use super::latency::{Family, Protocol};
use super::ops::{After, Ctx};
use super::stats::ThreadStats;
use super::text::{AsciiAuth, AsciiAuthOutcome};
use super::Shared;
use crate::auth::SaslSession;
use crate::config::BindingProtocol;
use crate::store::{Classes, DumpCursor};

/// Input buffer size a connection reads with (and shrinks back to after a large request).
const READ_BUF_INITIAL: usize = BUF_SIZE;
/// Read at most this far ahead of the request being processed: past it, unparsed pipelined
/// input stays in the kernel's socket buffer, which pushes back on the client through TCP.
const READ_AHEAD_MAX: usize = 256 * 1024;
/// Output above this many unsent bytes stops request processing (and so reading) until the
/// client drains it: a client that pipelines without reading cannot make tern buffer without
/// bound.
pub const OUTPUT_HIGH_WATER: usize = 1024 * 1024;
/// An output buffer grown past this is released once empty, so one huge reply does not pin
/// memory for the connection's lifetime.
const OUTPUT_KEEP_MAX: usize = 256 * 1024;

/// What the worker does with a connection after driving it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Nothing to do until the socket is readable (or writable) again.
    Wait,
    /// Used its request budget with work left: drive it again after the others.
    Yield,
    /// Close it.
    Close,
    /// It sent `watch`: hand it (and its unsent replies) to the logger.
    Watch(WatchEvents),
}

/// A byte stream a connection can be served over.
pub trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// The connection state that is independent of the socket type.
///
/// Between calls to [`Conn::drive`] a connection holds buffers only while they hold bytes
/// (unparsed input, unsent output); otherwise they are back in the worker's [`BufferPool`] and
/// `rbuf`/`wbuf` are empty, unallocated vectors.
#[derive(Debug)]
pub struct Conn {
    /// Input: bytes `rpos..rend` of `rbuf` are read and not yet consumed.
    rbuf: Vec<u8>,
    rpos: usize,
    rend: usize,
    /// Bytes the next request needs in total before parsing is worth trying again.
    need: usize,
    /// Input bytes still to discard (memcached's swallow state).
    swallow: usize,
    /// Output: bytes `wpos..` of `wbuf` are composed and not yet sent.
    wbuf: Vec<u8>,
    wpos: usize,
    /// The peer closed its side; finish what was read, then close.
    eof: bool,
    /// Close once the output is sent.
    closing: bool,
    /// The protocol this connection speaks, once its first byte (or `-B`) has decided.
    proto: Proto,
    /// SASL state (`-S`).
    sasl: SaslSession,
    /// Whether a `-Y` text connection has logged in.
    ascii_authed: bool,
    /// Keys of the text retrieval at the start of the input already answered: its reply is
    /// sent in parts of about [`OUTPUT_HIGH_WATER`] bytes, the request staying in the input
    /// until its last part.
    get_answered: usize,
    /// An `lru_crawler metadump` at the start of the input, sent in parts like a large
    /// retrieval: the classes it lists and where it stands.
    dump: Option<Box<(Classes, DumpCursor)>>,
    /// The socket's descriptor (`cfd=` in `watch` lines); -1 until the worker sets it.
    fd: i32,
    /// Set by a successful `watch`: the connection becomes a log stream, handed to the logger
    /// (which sends its `OK`) before anything else is read or sent.
    watch: Option<WatchEvents>,
    /// Whether the connection is closing because of a protocol or socket error (`watch
    /// connevents` says `reason=error`).
    failed: bool,
    /// Whether `need` is a storage command's announced size (not just "more than buffered").
    need_known: bool,
}

/// Which codec a connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    /// `-B auto` and nothing read yet.
    Undecided,
    /// The text protocol.
    Text,
    /// The binary protocol.
    Binary,
}

/// The outcome of one attempt to handle the request at the start of the input.
enum Step {
    /// A request (or a refused one) was answered: drop `consumed` bytes and do `after`.
    Done { consumed: usize, after: After },
    /// More input is needed; `needed` is the total when known.
    Incomplete { needed: Option<usize> },
    /// Part of a retrieval was answered and the output is full: send it, then carry on with
    /// the same request.
    Partial,
}

enum Processed {
    /// No complete request is buffered.
    NeedInput,
    /// The request budget is spent and a complete request may remain.
    BudgetSpent,
    /// The output passed its cap.
    OutputFull,
}

impl Default for Conn {
    fn default() -> Self {
        Self::new()
    }
}

impl Conn {
    /// A fresh connection; it allocates nothing until it is driven.
    pub fn new() -> Conn {
        Conn {
            rbuf: Vec::new(),
            rpos: 0,
            rend: 0,
            need: 0,
            swallow: 0,
            wbuf: Vec::new(),
            wpos: 0,
            eof: false,
            closing: false,
            proto: Proto::Undecided,
            sasl: SaslSession::new(),
            ascii_authed: false,
            get_answered: 0,
            dump: None,
            fd: -1,
            watch: None,
            failed: false,
            need_known: false,
        }
    }

    /// Records the socket's descriptor, which `watch` lines name as `cfd=`.
    pub fn set_fd(&mut self, fd: i32) {
        self.fd = fd;
    }

    /// Whether the connection closed because of an error rather than `quit` or the client
    /// closing its side.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Whether the connection waits for the rest of a storage command's data (memcached's
    /// `conn_nread`, in `stats conns`).
    pub fn reading_data(&self) -> bool {
        self.need > 0 && self.rpos < self.rend && self.need_known
    }

    /// Closes because of an error.
    fn fail(&mut self) -> Next {
        self.failed = true;
        Next::Close
    }

    /// Takes the replies not yet sent (a watcher's `OK`, for the logger to send).
    pub fn take_unsent(&mut self) -> Vec<u8> {
        let unsent = self.wbuf[self.wpos..].to_vec();
        self.wpos = self.wbuf.len();
        unsent
    }

    /// Whether replies are waiting for the socket to become writable. The worker asks the poller
    /// for writability only then: registered permanently, edge-triggered EPOLLOUT would wake the
    /// worker after every reply as the send buffer drains, for nothing.
    pub fn wants_write(&self) -> bool {
        self.wpos < self.wbuf.len()
    }

    /// Stops reading: requests already read are still answered, then the connection closes
    /// once every reply is sent (graceful shutdown).
    pub fn stop_reading(&mut self) {
        self.eof = true;
    }

    /// Reads, executes and writes until the socket would block, the budget is spent, or the
    /// connection must close.
    ///
    /// `trust_short_read`: whether a read that returns less than it was offered may be taken to
    /// mean the socket is drained, saving the `read` that would only return `EAGAIN` (one system
    /// call per request). On Linux a short read on a stream socket means its receive queue was
    /// empty at that moment, and any later arrival raises a new EPOLLIN edge, so nothing is
    /// lost. The worker passes `false` when the event said the peer closed its side (the FIN may
    /// have come with the data, and no later edge would report the end of the stream) and when
    /// driving a connection for another reason than readability.
    ///
    /// The connection borrows its buffers from `pool` for the call and gives back each one that
    /// is empty when the call ends.
    pub fn drive<S: Stream + ?Sized>(
        &mut self,
        sock: &mut S,
        shared: &Shared,
        stats: &ThreadStats,
        pool: &mut BufferPool,
        trust_short_read: bool,
    ) -> Next {
        self.borrow_buffers(pool);
        let next = self.drive_borrowed(sock, shared, stats, pool, trust_short_read);
        self.return_buffers(pool);
        next
    }

    /// Takes input and output buffers from the pool unless the connection still holds its own.
    fn borrow_buffers(&mut self, pool: &mut BufferPool) {
        if self.rbuf.is_empty() {
            self.rbuf = pool.take_read();
        }
        if self.wbuf.capacity() == 0 {
            self.wbuf = pool.take_write();
        }
    }

    /// Gives back each buffer that holds nothing the connection still needs: input with no
    /// partial request, output with every reply sent. The connection then costs its few fields
    /// while it is idle. Also called when the connection closes.
    pub fn return_buffers(&mut self, pool: &mut BufferPool) {
        if self.rpos == self.rend && !self.rbuf.is_empty() {
            self.rpos = 0;
            self.rend = 0;
            pool.give_read(std::mem::take(&mut self.rbuf));
        }
        if self.wpos == self.wbuf.len() && self.wbuf.capacity() != 0 {
            self.wpos = 0;
            pool.give_write(std::mem::take(&mut self.wbuf));
        }
    }

    /// Gives every buffer back, whatever it holds: the connection is closing.
    pub fn release_buffers(&mut self, pool: &mut BufferPool) {
        self.rpos = self.rend;
        self.wpos = self.wbuf.len();
        self.return_buffers(pool);
    }

    fn drive_borrowed<S: Stream + ?Sized>(
        &mut self,
        sock: &mut S,
        shared: &Shared,
        stats: &ThreadStats,
        pool: &mut BufferPool,
        trust_short_read: bool,
    ) -> Next {
        let mut budget = shared.settings.reqs_per_event.max(1);
        // Set by a short read during this call only: a stale flag from an earlier call could
        // skip data whose readiness came in the same event as a writability change.
        let mut drained = false;
        loop {
            if let Some(events) = self.watch {
                // Before its `OK` is sent: the logger sends it, once the watcher is attached,
                // so every event after the client reads `OK` reaches it.
                return Next::Watch(events);
            }
            match self.flush(sock, stats, pool) {
                Ok(()) => {}
                Err(_) => return self.fail(),
            }
            let unsent = self.wbuf.len() - self.wpos;
            if unsent > 0 && (self.closing || unsent >= OUTPUT_HIGH_WATER) {
                // Wait for writability; the write side's edge will bring us back.
                return Next::Wait;
            }
            if self.closing {
                return Next::Close;
            }
            match self.process(shared, stats, &mut budget) {
                Processed::OutputFull => continue,
                Processed::BudgetSpent => {
                    stats.conn_yields.incr();
                    return match self.flush(sock, stats, pool) {
                        Ok(()) => Next::Yield,
                        Err(_) => self.fail(),
                    };
                }
                Processed::NeedInput if self.closing => continue,
                Processed::NeedInput => {}
            }
            if self.eof {
                // Everything read has been answered; send it and close.
                self.closing = true;
                continue;
            }
            if drained {
                return match self.flush(sock, stats, pool) {
                    Ok(()) => Next::Wait,
                    Err(_) => self.fail(),
                };
            }
            match self.fill(sock, stats) {
                Ok((0, _)) => self.eof = true,
                Ok((_, short)) => drained = trust_short_read && short,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return match self.flush(sock, stats, pool) {
                        Ok(()) => Next::Wait,
                        Err(_) => self.fail(),
                    };
                }
                Err(_) => return self.fail(),
            }
        }
    }

    /// Executes buffered requests until input runs out, the budget is spent or the output is
    /// full.
    fn process(&mut self, shared: &Shared, stats: &ThreadStats, budget: &mut usize) -> Processed {
        loop {
            if self.swallow > 0 {
                let n = self.swallow.min(self.rend - self.rpos);
                self.rpos += n;
                self.swallow -= n;
                if self.swallow > 0 {
                    self.compact();
                    return Processed::NeedInput;
                }
            }
            let available = self.rend - self.rpos;
            if available == 0 || available < self.need {
                self.compact();
                return Processed::NeedInput;
            }
            if self.closing {
                return Processed::NeedInput;
            }
            if *budget == 0 {
                return Processed::BudgetSpent;
            }
            if self.wbuf.len() - self.wpos >= OUTPUT_HIGH_WATER {
                return Processed::OutputFull;
            }
            if self.proto == Proto::Undecided {
                self.proto = match shared.settings.protocol {
                    // SASL guards only the binary protocol: never serve text around it.
                    _ if shared.settings.sasl => Proto::Binary,
                    BindingProtocol::Ascii => Proto::Text,
                    BindingProtocol::Binary => Proto::Binary,
                    // memcached: the first byte decides, 0x80 is binary.
                    BindingProtocol::Auto if self.rbuf[self.rpos] == REQUEST_MAGIC => Proto::Binary,
                    BindingProtocol::Auto => Proto::Text,
                };
            }
            let step = match self.proto {
                Proto::Binary => self.binary_step(shared, stats),
                _ => self.text_step(shared, stats, budget),
            };
            match step {
                Step::Done { consumed, after } => {
                    *budget -= 1;
                    self.need = 0;
                    self.rpos += consumed;
                    match after {
                        After::Continue => {}
                        After::Swallow(n) => self.swallow = n,
                        After::Close => self.closing = true,
                        After::Watch(events) => {
                            // memcached stops reading a watcher: what follows is ignored.
                            self.watch = Some(events);
                            self.closing = true;
                        }
                    }
                }
                Step::Partial => {
                    *budget -= 1;
                    return Processed::OutputFull;
                }
                Step::Incomplete { needed } => {
                    self.need_known = needed.is_some();
                    self.need = needed.unwrap_or(available + 1);
                    self.reserve_for(self.need);
                    self.compact();
                    return Processed::NeedInput;
                }
            }
        }
    }

    /// Handles the text request at the start of the input.
    ///
    /// A run of common meta lines (`mg` that `meta::quick_get_into` reads, `mn`) is served as
    /// one step, each line after the first taken from `budget` (the caller takes one for the
    /// step).
    fn text_step(&mut self, shared: &Shared, stats: &ThreadStats, budget: &mut usize) -> Step {
        // Names the connection in -vv logs, as memcached names it by its descriptor.
        let id = self as *const Conn as usize;
        let input = &self.rbuf[self.rpos..self.rend];
        let out = &mut self.wbuf;
        if let (Some(db), false) = (&shared.auth_file, self.ascii_authed) {
            return match super::text::ascii_auth(input, db) {
                AsciiAuth::NeedMore => Step::Incomplete { needed: None },
                AsciiAuth::Close => Step::Done {
                    consumed: input.len(),
                    after: After::Close,
                },
                AsciiAuth::Reply {
                    consumed,
                    reply,
                    outcome,
                } => {
                    match outcome {
                        AsciiAuthOutcome::Refused => {}
                        AsciiAuthOutcome::Authenticated => {
                            stats.auth_cmds.incr();
                            self.ascii_authed = true;
                        }
                        AsciiAuthOutcome::Failed => {
                            stats.auth_cmds.incr();
                            stats.auth_errors.incr();
                            log::warn!("<{id:x} ASCII authentication refused");
                        }
                    }
                    out.extend_from_slice(reply);
                    Step::Done {
                        consumed,
                        after: After::Continue,
                    }
                }
            };
        }
        let mut cx = Ctx {
            shared,
            stats,
            out,
            fd: self.fd,
        };
        // A run of common `mg` lines and `mn` (a quiet multi-get) skips the general parser;
        // -vv logging takes the general path, which logs.
        let quick_tried = input.first() == Some(&b'm') && !log::log_enabled!(log::Level::Debug);
        if quick_tried {
            if let Some(consumed) = quick_meta(input, &mut cx, budget, self.wpos) {
                return Step::Done {
                    consumed,
                    after: After::Continue,
                };
            }
        }
        // A line the quick path just turned down (say `mg <key> T30 v`) goes straight to the
        // general parser rather than through `text::parse`'s own try of the same quick path.
        let parsed = if quick_tried {
            text::parse_general(input, &shared.limits)
        } else {
            text::parse(input, &shared.limits)
        };
        match parsed {
            Ok((request, consumed)) => {
                let mark = cx.out.len();
                if log::log_enabled!(log::Level::Debug) {
                    // As memcached's -vv: the command line as the client sent it.
                    let line = input[..consumed]
                        .split(|&b| b == b'\n')
                        .next()
                        .unwrap_or(b"");
                    let line = &line[..line.len().min(200)];
                    log::debug!("<{id:x} {}", String::from_utf8_lossy(line).trim_end());
                }
                let after = match request {
                    // A retrieval's reply may be far larger than the output cap (thousands of
                    // 1 MB values): compose it in parts, each once the last has drained.
                    Request::Get(get) => {
                        let room = OUTPUT_HIGH_WATER.saturating_sub(cx.out.len() - self.wpos);
                        match super::text::retrieve_from(get, &mut cx, self.get_answered, room) {
                            Some(answered) => {
                                self.get_answered = answered;
                                return Step::Partial;
                            }
                            None => {
                                self.get_answered = 0;
                                if shared.observed.latency_on {
                                    stats.latency.note(Family::Get, Protocol::Text);
                                }
                                After::Continue
                            }
                        }
                    }
                    Request::Operator(OperatorRequest::LruCrawler(
                        LruCrawlerRequest::Metadump(spec),
                    )) => {
                        let room = OUTPUT_HIGH_WATER.saturating_sub(cx.out.len() - self.wpos);
                        let dump = match self.dump.take() {
                            Some(dump) => Ok(dump),
                            None => {
                                let pending = cx.out.len() > self.wpos;
                                super::operator::metadump_start(spec, pending, &cx)
                                    .map(|c| Box::new((c, DumpCursor::default())))
                            }
                        };
                        match dump {
                            Ok(mut dump) => {
                                let (classes, cursor) = &mut *dump;
                                if !super::operator::metadump_from(classes, cursor, &mut cx, room) {
                                    self.dump = Some(dump);
                                    return Step::Partial;
                                }
                            }
                            Err(e) => text::compose(&Response::Error(e), cx.out),
                        }
                        After::Continue
                    }
                    request => {
                        if shared.observed.latency_on {
                            note_request(stats, &request, Protocol::Text);
                        }
                        super::text::execute(request, &mut cx)
                    }
                };
                if log::log_enabled!(log::Level::Debug) {
                    let reply = &cx.out[mark..];
                    let shown = &reply[..reply.len().min(200)];
                    log::debug!(">{id:x} {}", String::from_utf8_lossy(shown).trim_end());
                }
                Step::Done { consumed, after }
            }
            Err(ParseError::Incomplete { needed }) => Step::Incomplete { needed },
            Err(ParseError::Protocol(err)) => {
                self.failed |= err.close;
                Step::Done {
                    consumed: err.consumed,
                    after: super::text::refused(&err, &mut cx),
                }
            }
        }
    }

    /// Handles the binary packet at the start of the input.
    fn binary_step(&mut self, shared: &Shared, stats: &ThreadStats) -> Step {
        let id = self as *const Conn as usize;
        let input = &self.rbuf[self.rpos..self.rend];
        let out = &mut self.wbuf;
        if let Some(h) = Header::peek(input) {
            // memcached checks the magic and the lengths first, then SASL: an unauthenticated
            // connection may send only the SASL opcodes and VERSION.
            if h.magic == REQUEST_MAGIC
                && h.lengths_consistent()
                && !super::binary::command_allowed(shared.settings.sasl, &self.sasl, &h)
            {
                binary::compose_header_status(
                    &h,
                    Status::AuthError,
                    Status::AuthError.default_body(),
                    out,
                );
                return Step::Done {
                    consumed: input.len(),
                    after: After::Close,
                };
            }
        }
        match binary::parse(input, &shared.limits) {
            Ok((frame, consumed)) => {
                if log::log_enabled!(log::Level::Debug) {
                    // The opcode and the key; never a value (SASL data holds the password).
                    log::debug!(
                        "<{id:x} {:?} {}",
                        frame.opcode,
                        String::from_utf8_lossy(frame.request.key())
                    );
                }
                if shared.observed.latency_on {
                    note_request(stats, &frame.request, Protocol::Binary);
                }
                let mut cx = Ctx {
                    shared,
                    stats,
                    out,
                    fd: self.fd,
                };
                let after = super::binary::execute(&frame, &mut cx, &mut self.sasl);
                Step::Done { consumed, after }
            }
            Err(ParseError::Incomplete { needed }) => Step::Incomplete { needed },
            Err(ParseError::Protocol(err)) => {
                binary::compose_error_reply(input, &err, out);
                self.failed |= err.close;
                Step::Done {
                    consumed: err.consumed,
                    after: refused_after(err.swallow, err.close),
                }
            }
        }
    }

    /// Makes room for a request of `total` bytes starting at `rpos`.
    fn reserve_for(&mut self, total: usize) {
        if total > self.rbuf.len() - self.rpos {
            self.compact_always();
            if total > self.rbuf.len() {
                self.rbuf.resize(total.next_power_of_two().max(total), 0);
            }
        }
    }

    /// Moves unconsumed input to the front when the buffer is drained, or when what is left
    /// is small and starts far in.
    fn compact(&mut self) {
        if self.rpos == self.rend {
            self.rpos = 0;
            self.rend = 0;
            if self.rbuf.len() > READ_BUF_INITIAL && self.need <= READ_BUF_INITIAL {
                self.rbuf.truncate(READ_BUF_INITIAL);
                self.rbuf.shrink_to_fit();
            }
        } else if self.rpos > self.rbuf.len() / 2 {
            self.compact_always();
        }
    }

    fn compact_always(&mut self) {
        self.rbuf.copy_within(self.rpos..self.rend, 0);
        self.rend -= self.rpos;
        self.rpos = 0;
    }

    /// Reads once into the free part of the input buffer: the bytes read (0 is end of stream)
    /// and whether that was fewer than offered.
    fn fill<S: Stream + ?Sized>(
        &mut self,
        sock: &mut S,
        stats: &ThreadStats,
    ) -> io::Result<(usize, bool)> {
        if self.rend - self.rpos >= READ_AHEAD_MAX.max(self.need) {
            // Enough unprocessed input; leave the rest in the kernel until we catch up.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        if self.rend == self.rbuf.len() {
            if self.rpos > 0 {
                self.compact_always();
            } else {
                let grown = (self.rbuf.len() * 2).min(READ_AHEAD_MAX.max(self.need));
                self.rbuf.resize(grown.max(self.rbuf.len() + 1), 0);
            }
        }
        loop {
            let offered = self.rbuf.len() - self.rend;
            match sock.read(&mut self.rbuf[self.rend..]) {
                Ok(n) => {
                    self.rend += n;
                    stats.bytes_read.add(n as u64);
                    return Ok((n, n < offered));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes buffered output until it is all sent or the socket would block.
    fn flush<S: Stream + ?Sized>(
        &mut self,
        sock: &mut S,
        stats: &ThreadStats,
        pool: &mut BufferPool,
    ) -> io::Result<()> {
        while self.wpos < self.wbuf.len() {
            match sock.write(&self.wbuf[self.wpos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.wpos += n;
                    stats.bytes_written.add(n as u64);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // A reply sent in parts to a reader that never quite catches up would
                    // otherwise keep every sent byte: drop them once they outweigh the cap.
                    if self.wpos >= OUTPUT_HIGH_WATER {
                        self.wbuf.drain(..self.wpos);
                        self.wpos = 0;
                    }
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        self.wbuf.clear();
        self.wpos = 0;
        if self.wbuf.capacity() > OUTPUT_KEEP_MAX {
            let grown = std::mem::replace(&mut self.wbuf, pool.take_write());
            pool.give_write(grown);
        }
        Ok(())
    }
}

/// Serves the run of common meta lines at the start of `input` (the `mg` lines that
/// `meta::quick_get_into` reads, and `mn\r\n`, which ends a quiet pipeline) straight through
/// the meta executor, while `budget` and the output allow: the bytes they occupy, or `None`
/// when the input does not start with one. The caller takes the first line from `budget`,
/// this the others; `unsent` is where the output not yet written starts.
fn quick_meta(input: &[u8], cx: &mut Ctx<'_>, budget: &mut usize, unsent: usize) -> Option<usize> {
    let latency = cx.shared.observed.latency_on;
    let mut flags = MetaFlags::default();
    let mut consumed = 0;
    loop {
        if consumed > 0 && (*budget <= 1 || cx.out.len() - unsent >= OUTPUT_HIGH_WATER) {
            break;
        }
        let rest = &input[consumed..];
        let (n, family) = if let Some((key, n)) = meta::quick_get_into(rest, &mut flags) {
            super::meta::execute_plain_get(&key, &flags, cx);
            (n, Family::Get)
        } else if rest.starts_with(b"mn\r\n") {
            meta::compose_noop(cx.out);
            (4, Family::Meta)
        } else {
            break;
        };
        if latency {
            cx.stats.latency.note(family, Protocol::Meta);
        }
        if consumed > 0 {
            *budget -= 1;
        }
        consumed += n;
    }
    (consumed > 0).then_some(consumed)
}

/// Notes an executed request for the latency histograms (`super::latency`); the worker
/// records it with the drive's duration.
#[inline]
fn note_request(stats: &ThreadStats, request: &Request<'_>, protocol: Protocol) {
    let (family, meta) = Family::of(request);
    let protocol = if meta { Protocol::Meta } else { protocol };
    stats.latency.note(family, protocol);
}

/// What follows a refused request: close, discard its data, or go on.
fn refused_after(swallow: usize, close: bool) -> After {
    if close {
        After::Close
    } else if swallow > 0 {
        After::Swallow(swallow)
    } else {
        After::Continue
    }
}
