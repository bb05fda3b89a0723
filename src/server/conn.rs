//! One client connection: its socket, its input and output buffers, and the loop that reads
//! requests, executes them and writes replies.
//!
//! The loop keeps mio's edge-triggered contract: it reads until `WouldBlock` unless it has a
//! reason to stop (the output is over its cap, or the connection used its `-R` budget), and in
//! that case the worker comes back to it (on writability, or from its yield queue) and the loop
//! starts by reading again, so no readiness is ever lost.

use std::io::{self, Read, Write};

use tern_protocol::{text, ErrorReply, ParseError, Response};

use super::exec::{self, After, Ctx};
use super::stats::ThreadStats;
use super::Shared;

/// Input buffer size a connection starts with (and shrinks back to after a large request).
const READ_BUF_INITIAL: usize = 16 * 1024;
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
}

/// A byte stream a connection can be served over.
pub trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// The connection state that is independent of the socket type.
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
    /// A fresh connection.
    pub fn new() -> Conn {
        Conn {
            rbuf: vec![0; READ_BUF_INITIAL],
            rpos: 0,
            rend: 0,
            need: 0,
            swallow: 0,
            wbuf: Vec::with_capacity(READ_BUF_INITIAL),
            wpos: 0,
            eof: false,
            closing: false,
        }
    }

    /// Stops reading: requests already read are still answered, then the connection closes
    /// once every reply is sent (graceful shutdown).
    pub fn stop_reading(&mut self) {
        self.eof = true;
    }

    /// Reads, executes and writes until the socket would block, the budget is spent, or the
    /// connection must close.
    pub fn drive<S: Stream + ?Sized>(
        &mut self,
        sock: &mut S,
        shared: &Shared,
        stats: &ThreadStats,
    ) -> Next {
        let mut budget = shared.settings.reqs_per_event.max(1);
        loop {
            match self.flush(sock, stats) {
                Ok(()) => {}
                Err(_) => return Next::Close,
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
                    return match self.flush(sock, stats) {
                        Ok(()) => Next::Yield,
                        Err(_) => Next::Close,
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
            match self.fill(sock, stats) {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return match self.flush(sock, stats) {
                        Ok(()) => Next::Wait,
                        Err(_) => Next::Close,
                    };
                }
                Err(_) => return Next::Close,
            }
        }
    }

    /// Executes buffered requests until input runs out, the budget is spent or the output is
    /// full.
    fn process(&mut self, shared: &Shared, stats: &ThreadStats, budget: &mut usize) -> Processed {
        // Names the connection in -vv logs, as memcached names it by its descriptor.
        let id = self as *const Conn as usize;
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
            let input = &self.rbuf[self.rpos..self.rend];
            let mut cx = Ctx {
                shared,
                stats,
                out: &mut self.wbuf,
            };
            match text::parse(input, &shared.limits) {
                Ok((request, consumed)) => {
                    *budget -= 1;
                    self.need = 0;
                    let mark = cx.out.len();
                    if log::log_enabled!(log::Level::Debug) {
                        log::debug!("<{id:x} {request:?}");
                    }
                    let after = exec::execute(request, &mut cx);
                    if log::log_enabled!(log::Level::Debug) {
                        let reply = &cx.out[mark..];
                        let shown = &reply[..reply.len().min(200)];
                        log::debug!(">{id:x} {}", String::from_utf8_lossy(shown).trim_end());
                    }
                    self.rpos += consumed;
                    match after {
                        After::Continue => {}
                        After::Swallow(n) => self.swallow = n,
                        After::Close => self.closing = true,
                    }
                }
                Err(ParseError::Incomplete { needed }) => {
                    self.need = needed.unwrap_or(available + 1);
                    self.reserve_for(self.need);
                    self.compact();
                    return Processed::NeedInput;
                }
                Err(ParseError::Protocol(err)) => {
                    *budget -= 1;
                    self.need = 0;
                    let reply = match err.reply {
                        // memcached refuses any shutdown form when -A is off.
                        ErrorReply::Other(text::INVALID_SHUTDOWN_MODE)
                            if !shared.settings.allow_shutdown =>
                        {
                            ErrorReply::Other(text::SHUTDOWN_NOT_ENABLED)
                        }
                        other => other,
                    };
                    if !err.noreply && reply != ErrorReply::Close {
                        text::compose(&Response::Error(reply), cx.out);
                    }
                    self.rpos += err.consumed;
                    self.swallow = err.swallow;
                    if err.close {
                        self.closing = true;
                    }
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

    /// Reads once into the free part of the input buffer. `Ok(0)` is end of stream.
    fn fill<S: Stream + ?Sized>(&mut self, sock: &mut S, stats: &ThreadStats) -> io::Result<usize> {
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
            match sock.read(&mut self.rbuf[self.rend..]) {
                Ok(n) => {
                    self.rend += n;
                    stats.bytes_read.add(n as u64);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes buffered output until it is all sent or the socket would block.
    fn flush<S: Stream + ?Sized>(&mut self, sock: &mut S, stats: &ThreadStats) -> io::Result<()> {
        while self.wpos < self.wbuf.len() {
            match sock.write(&self.wbuf[self.wpos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.wpos += n;
                    stats.bytes_written.add(n as u64);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        self.wbuf.clear();
        self.wpos = 0;
        if self.wbuf.capacity() > OUTPUT_KEEP_MAX {
            self.wbuf = Vec::with_capacity(READ_BUF_INITIAL);
        }
        Ok(())
    }
}
