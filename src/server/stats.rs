//! Request counters: one set per worker thread, summed when `stats` is read.
//!
//! Only the owning worker ever writes its counters, so a bump is a relaxed load and store (no
//! locked read-modify-write, no cache line shared between workers); a reader on another thread
//! sums whatever values it sees, exactly as memcached sums its per-thread stats.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! thread_counters {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// Counters of one worker thread.
        ///
        /// Aligned (and so sized) to 128 bytes, two cache lines as crossbeam's `CachePadded`
        /// on x86-64: the workers' counters are allocated one after another, and unpadded the
        /// last line of one worker's (its latency `pending` counts, written on every request)
        /// held the next worker's `cmd_get`, also written on every request (issue 15).
        #[derive(Debug, Default)]
        #[repr(align(128))]
        pub struct ThreadStats {
            $($(#[$doc])* pub $name: Counter,)*
            /// Request latency histograms (`tern_request_duration_seconds`); never reset.
            pub latency: super::latency::Latency,
        }

        /// A snapshot of counters summed over threads.
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
        pub struct StatsSnapshot {
            $($(#[$doc])* pub $name: u64,)*
        }

        impl ThreadStats {
            /// Adds this thread's counters into `sum`.
            pub fn add_to(&self, sum: &mut StatsSnapshot) {
                $(sum.$name += self.$name.get();)*
            }

            /// Zeroes every counter (`stats reset`).
            pub fn reset(&self) {
                $(self.$name.0.store(0, Ordering::Relaxed);)*
            }
        }
    };
}

thread_counters! {
    /// Retrieval requests (one per key).
    cmd_get,
    /// Storage requests.
    cmd_set,
    /// `flush_all` requests.
    cmd_flush,
    /// Touch requests (`touch`, `gat`).
    cmd_touch,
    /// Meta debug requests (`me`; 1.6.18 counts no other meta command here).
    cmd_meta,
    /// Keys found by retrievals.
    get_hits,
    /// Keys not found by retrievals.
    get_misses,
    /// Deletes of present keys.
    delete_hits,
    /// Deletes of missing keys.
    delete_misses,
    /// incr of present keys.
    incr_hits,
    /// incr of missing keys.
    incr_misses,
    /// decr of present keys.
    decr_hits,
    /// decr of missing keys.
    decr_misses,
    /// cas that stored.
    cas_hits,
    /// cas of missing keys.
    cas_misses,
    /// cas refused for a stale CAS unique.
    cas_badval,
    /// Touches of present keys.
    touch_hits,
    /// Touches of missing keys.
    touch_misses,
    /// Storage refused as over the item size limit.
    store_too_large,
    /// Storage refused for lack of memory.
    store_no_memory,
    /// Authentication requests.
    auth_cmds,
    /// Failed authentication requests.
    auth_errors,
    /// Bytes read from clients.
    bytes_read,
    /// Bytes written to clients.
    bytes_written,
    /// Times a connection gave up its turn after `-R` requests.
    conn_yields,
    /// Connections closed for idleness.
    idle_kicks,
}

/// A counter written by one thread and read by any.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Only the owning thread calls this.
    #[inline]
    pub fn add(&self, n: u64) {
        // A plain load and store: the owner is the only writer, so no update is lost, and
        // readers tolerate a slightly stale value.
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// Adds one.
    #[inline]
    pub fn incr(&self) {
        self.add(1);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Sums the counters of every thread.
pub fn sum<'a>(threads: impl IntoIterator<Item = &'a ThreadStats>) -> StatsSnapshot {
    let mut total = StatsSnapshot::default();
    for t in threads {
        t.add_to(&mut total);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_sum_over_threads_and_reset() {
        let a = ThreadStats::default();
        let b = ThreadStats::default();
        a.cmd_get.add(3);
        b.cmd_get.incr();
        b.get_hits.add(2);
        let s = sum([&a, &b]);
        assert_eq!(s.cmd_get, 4);
        assert_eq!(s.get_hits, 2);
        a.reset();
        assert_eq!(sum([&a, &b]).cmd_get, 1);
    }

    #[test]
    fn workers_counters_share_no_cache_line() {
        assert_eq!(std::mem::align_of::<ThreadStats>() % 128, 0);
        assert_eq!(std::mem::size_of::<ThreadStats>() % 128, 0);
        // Allocated as the server does, one after another: no two within a line pair.
        let v: Vec<std::sync::Arc<ThreadStats>> =
            (0..4).map(|_| std::sync::Arc::default()).collect();
        for w in v.windows(2) {
            let (a, b) = (std::sync::Arc::as_ptr(&w[0]), std::sync::Arc::as_ptr(&w[1]));
            let (a, b) = (a as usize, b as usize);
            let end_a = a + std::mem::size_of::<ThreadStats>();
            assert!(end_a <= b || b + std::mem::size_of::<ThreadStats>() <= a);
            assert_eq!(a % 128, 0);
            assert_eq!(b % 128, 0);
        }
    }
}
