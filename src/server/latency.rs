//! Server-side request latency histograms, one set per worker, summed when metrics are scraped.
//!
//! What is measured: from the moment the worker's `poll` returned with the connection ready
//! (the requests were waiting in the socket by then) to the moment the worker finished driving
//! that connection (its replies composed and handed to the socket). Every request executed in
//! that drive is recorded with that one duration: requests pipelined together are answered in
//! one `write`, so none of their replies reaches the client before the last is composed, and a
//! connection served after others in the same wake-up did wait for them.
//!
//! Why this shape: a clock read per request (two, for a start and an end) would cost about
//! 20-35 ns each with the vDSO `clock_gettime` (33 ns measured on the loaded development
//! machine; `latency::tests::clock_read_cost` prints it), on requests that take a few hundred nanoseconds of CPU when pipelined. Here the
//! clock is read once per wake-up and once per connection that executed requests: for a
//! pipelined batch that is one read per batch, and without pipelining one read per request
//! that already pays a `read` and a `write` system call (microseconds). A coarse clock
//! (`CLOCK_MONOTONIC_COARSE`, a jiffy of 1-4 ms) cannot tell 10 µs from 50 µs, and a raw TSC
//! read needs `unsafe` or a crate that calibrates it, for a saving of ~15 ns per batch.
//!
//! Recording is lock-free and allocation-free: the connection notes each executed request in
//! a per-worker pending count (one relaxed load and store, single writer), and the worker moves
//! the pending counts into the bucket of the measured duration when the drive ends.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tern_protocol::meta::MetaRequest;
use tern_protocol::Request;

/// Command families a histogram is kept for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Retrievals: get, gets, gat, gats, binary GET*, meta `mg`.
    Get = 0,
    /// Storage: set, add, replace, append, prepend, cas, meta `ms`.
    Set,
    /// delete, binary DELETE, meta `md`.
    Delete,
    /// incr, decr, binary INCREMENT/DECREMENT, meta `ma`.
    Arith,
    /// touch, binary TOUCH.
    Touch,
    /// Meta commands with no classic equivalent: `mn`, `me`.
    Meta,
    /// ElastiCache auto-discovery `config get|set|delete`.
    Config,
    /// Everything else (stats, version, flush_all, verbosity, noop, SASL, ...).
    Other,
}

/// Number of [`Family`] values.
pub const FAMILIES: usize = 8;

impl Family {
    /// Every family, in label order.
    pub const ALL: [Family; FAMILIES] = [
        Family::Get,
        Family::Set,
        Family::Delete,
        Family::Arith,
        Family::Touch,
        Family::Meta,
        Family::Config,
        Family::Other,
    ];

    /// The `family` label value.
    pub fn label(self) -> &'static str {
        match self {
            Family::Get => "get",
            Family::Set => "set",
            Family::Delete => "delete",
            Family::Arith => "arith",
            Family::Touch => "touch",
            Family::Meta => "meta",
            Family::Config => "config",
            Family::Other => "other",
        }
    }

    /// The family of a parsed request, and whether it is a meta command.
    pub fn of(request: &Request<'_>) -> (Family, bool) {
        let family = match request {
            Request::Get(_) => Family::Get,
            Request::Store(_) | Request::TooLarge { .. } => Family::Set,
            Request::Delete { .. } => Family::Delete,
            Request::Arith(_) => Family::Arith,
            Request::Touch { .. } => Family::Touch,
            Request::Config(_) => Family::Config,
            Request::Meta(meta) => {
                return (
                    match meta {
                        MetaRequest::Get { .. } => Family::Get,
                        MetaRequest::Set { .. } | MetaRequest::SetTooLarge { .. } => Family::Set,
                        MetaRequest::Delete { .. } => Family::Delete,
                        MetaRequest::Arith { .. } => Family::Arith,
                        _ => Family::Meta,
                    },
                    true,
                )
            }
            _ => Family::Other,
        };
        (family, false)
    }
}

/// The protocol a request came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// The classic text protocol.
    Text = 0,
    /// The binary protocol.
    Binary,
    /// Meta commands (carried by the text protocol).
    Meta,
}

/// Number of [`Protocol`] values.
pub const PROTOCOLS: usize = 3;

impl Protocol {
    /// Every protocol, in label order.
    pub const ALL: [Protocol; PROTOCOLS] = [Protocol::Text, Protocol::Binary, Protocol::Meta];

    /// The `protocol` label value.
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Text => "text",
            Protocol::Binary => "binary",
            Protocol::Meta => "meta",
        }
    }
}

/// Finite bucket bounds are 2^i µs for i in `0..FINITE_BUCKETS`: 1 µs to about 1.05 s,
/// log-spaced so that 8, 16, 32 and 64 µs are separate buckets (10 µs and 50 µs fall in
/// different ones) while the whole range fits 21 buckets.
pub const FINITE_BUCKETS: usize = 21;
/// Buckets including the last, unbounded one.
pub const BUCKETS: usize = FINITE_BUCKETS + 1;
const SLOTS: usize = FAMILIES * PROTOCOLS;

/// The upper bound of finite bucket `i`, in seconds.
pub fn bucket_bound_seconds(i: usize) -> f64 {
    (1u64 << i) as f64 * 1e-6
}

/// The bucket a duration of `nanos` falls in: the first whose bound is at least it.
#[inline]
pub fn bucket_of(nanos: u64) -> usize {
    // ns <= 2^i * 1000  <=>  ceil(ns / 1000) <= 2^i.
    let micros = nanos.div_ceil(1000);
    if micros <= 1 {
        return 0;
    }
    ((64 - (micros - 1).leading_zeros()) as usize).min(FINITE_BUCKETS)
}

/// One worker's histograms. Only the owning worker writes; a scrape reads with relaxed loads.
#[derive(Debug, Default)]
pub struct Latency {
    /// Requests executed since the last [`Latency::commit`], per slot.
    pending: [AtomicU32; SLOTS],
    /// Which slots have pending requests (bit per slot).
    pending_mask: AtomicU32,
    /// Per slot: the count in each bucket (not cumulative).
    buckets: [[AtomicU64; BUCKETS]; SLOTS],
    /// Per slot: the sum of the recorded durations, in nanoseconds.
    sum_nanos: [AtomicU64; SLOTS],
}

/// The histogram of one family and protocol, summed over workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HistogramSnapshot {
    /// Count in each bucket (not cumulative); the last is the unbounded one.
    pub buckets: [u64; BUCKETS],
    /// Sum of the durations, in nanoseconds.
    pub sum_nanos: u64,
}

impl HistogramSnapshot {
    /// Requests recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

#[inline]
fn bump(cell: &AtomicU64, n: u64) {
    // Single writer: a plain load and store, as `stats::Counter`.
    cell.store(
        cell.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

impl Latency {
    /// Notes one executed request; it is recorded by the next [`Latency::commit`].
    #[inline]
    pub fn note(&self, family: Family, protocol: Protocol) {
        let slot = protocol as usize * FAMILIES + family as usize;
        let cell = &self.pending[slot];
        cell.store(cell.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        let mask = self.pending_mask.load(Ordering::Relaxed);
        self.pending_mask
            .store(mask | (1 << slot), Ordering::Relaxed);
    }

    /// Whether requests were noted since the last commit.
    #[inline]
    pub fn has_pending(&self) -> bool {
        self.pending_mask.load(Ordering::Relaxed) != 0
    }

    /// Records every pending request with the duration `elapsed`.
    pub fn commit(&self, elapsed: Duration) {
        let mut mask = self.pending_mask.load(Ordering::Relaxed);
        if mask == 0 {
            return;
        }
        self.pending_mask.store(0, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let bucket = bucket_of(nanos);
        while mask != 0 {
            let slot = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            let n = u64::from(self.pending[slot].load(Ordering::Relaxed));
            self.pending[slot].store(0, Ordering::Relaxed);
            bump(&self.buckets[slot][bucket], n);
            bump(&self.sum_nanos[slot], n.saturating_mul(nanos));
        }
    }

    /// Adds this worker's histogram of `family` over `protocol` into `sum`.
    pub fn add_to(&self, family: Family, protocol: Protocol, sum: &mut HistogramSnapshot) {
        let slot = protocol as usize * FAMILIES + family as usize;
        for (total, cell) in sum.buckets.iter_mut().zip(&self.buckets[slot]) {
            *total += cell.load(Ordering::Relaxed);
        }
        sum.sum_nanos += self.sum_nanos[slot].load(Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_tell_10us_from_50us() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1000), 0);
        assert_eq!(bucket_of(1001), 1);
        assert_eq!(bucket_of(2000), 1);
        assert_eq!(bucket_of(2001), 2);
        assert_eq!(bucket_of(10_000), 4); // le 16 µs
        assert_eq!(bucket_of(50_000), 6); // le 64 µs
        assert_eq!(bucket_of(1 << 40), FINITE_BUCKETS);
        for i in 0..FINITE_BUCKETS {
            let bound = (1u64 << i) * 1000;
            assert_eq!(bucket_of(bound), i);
            assert_eq!(bucket_of(bound + 1), i + 1);
        }
        assert!((bucket_bound_seconds(4) - 16e-6).abs() < 1e-12);
    }

    #[test]
    fn pending_requests_land_in_the_committed_bucket() {
        let l = Latency::default();
        l.note(Family::Get, Protocol::Text);
        l.note(Family::Get, Protocol::Text);
        l.note(Family::Set, Protocol::Binary);
        assert!(l.has_pending());
        l.commit(Duration::from_micros(12));
        assert!(!l.has_pending());
        l.note(Family::Get, Protocol::Text);
        l.commit(Duration::from_micros(3));
        let mut get = HistogramSnapshot::default();
        l.add_to(Family::Get, Protocol::Text, &mut get);
        assert_eq!(get.count(), 3);
        assert_eq!(get.buckets[4], 2);
        assert_eq!(get.buckets[2], 1);
        assert_eq!(get.sum_nanos, 27_000);
        let mut set = HistogramSnapshot::default();
        l.add_to(Family::Set, Protocol::Binary, &mut set);
        assert_eq!(set.count(), 1);
        let mut none = HistogramSnapshot::default();
        l.add_to(Family::Set, Protocol::Text, &mut none);
        assert_eq!(none.count(), 0);
    }

    /// Prints what one clock read costs here (the figure the module documentation quotes).
    #[test]
    fn clock_read_cost() {
        let n = 200_000u32;
        let start = std::time::Instant::now();
        let mut last = start;
        for _ in 0..n {
            last = std::hint::black_box(std::time::Instant::now());
        }
        let per = (last - start) / n;
        println!("Instant::now(): {per:?} per read");
        assert!(per < Duration::from_micros(5));
    }
}
