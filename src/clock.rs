//! The server's notion of "now", in whole seconds, as memcached keeps it.
//!
//! memcached reads the wall clock once a second into `current_time` (seconds since the process
//! started) and every TTL is a comparison against it. tern does the same: a [`Clock`] holds the
//! current relative time in an atomic, the server's timer thread calls [`Clock::tick`], and tests
//! call [`Clock::advance`] instead of sleeping.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// memcached's `REALTIME_MAXDELTA`: an exptime up to 30 days is relative to now, a larger one is
/// an absolute unix time.
pub const REALTIME_MAXDELTA: i64 = 60 * 60 * 24 * 30;

/// memcached starts its clock this many seconds in the past (`ITEM_UPDATE_INTERVAL + 2`), so that
/// relative time 0 ("never expires") is never a real moment and early timestamps stay positive.
const START_OFFSET: u32 = 62;

/// Seconds since the process started, memcached's `rel_time_t`.
pub type RelTime = u32;

/// A seconds clock shared by every thread; cheap to read.
#[derive(Debug)]
pub struct Clock {
    /// Unix time of relative time 0.
    process_started: i64,
    /// The current relative time.
    now: AtomicU32,
    /// Whether [`Clock::tick`] follows the wall clock (false for a test clock).
    follows_wall: bool,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Clock {
    /// A clock that follows the wall clock (refreshed by [`Clock::tick`]).
    pub fn system() -> Clock {
        Clock {
            process_started: unix_now() - i64::from(START_OFFSET),
            now: AtomicU32::new(START_OFFSET),
            follows_wall: true,
        }
    }

    /// A clock that only moves when [`Clock::advance`] is called, starting at unix time
    /// `unix_start`.
    pub fn manual(unix_start: i64) -> Clock {
        Clock {
            process_started: unix_start - i64::from(START_OFFSET),
            now: AtomicU32::new(START_OFFSET),
            follows_wall: false,
        }
    }

    /// Re-reads the wall clock (a no-op for a manual clock). Time never goes backwards.
    pub fn tick(&self) {
        if !self.follows_wall {
            return;
        }
        let rel = (unix_now() - self.process_started).clamp(0, i64::from(u32::MAX)) as u32;
        // Ticks come every 50 ms and the second changes once in 20: a read-modify-write on
        // every tick would take the line every worker reads on every request away from their
        // caches 20 times a second. Only the timer thread ticks, so load-then-max loses nothing.
        if rel > self.now.load(Ordering::Relaxed) {
            self.now.fetch_max(rel, Ordering::Relaxed);
        }
    }

    /// Moves a clock forward by `secs` seconds.
    pub fn advance(&self, secs: u32) {
        self.now.fetch_add(secs, Ordering::Relaxed);
    }

    /// The current relative time.
    #[inline]
    pub fn now(&self) -> RelTime {
        self.now.load(Ordering::Relaxed)
    }

    /// The unix time of the current moment.
    pub fn unix_now(&self) -> i64 {
        self.process_started + i64::from(self.now())
    }

    /// The unix time of relative time 0.
    pub fn process_started(&self) -> i64 {
        self.process_started
    }

    /// Converts a client's exptime into relative time with memcached's `realtime()` rules:
    /// 0 is "never" (0); negative is "already expired" (1, a moment long past); up to 30 days is
    /// relative to now; larger is an absolute unix time, already expired (1) if not after the
    /// process started.
    pub fn realtime(&self, exptime: i64) -> RelTime {
        if exptime == 0 {
            return 0;
        }
        if exptime < 0 {
            return 1;
        }
        if exptime > REALTIME_MAXDELTA {
            if exptime <= self.process_started {
                return 1;
            }
            return (exptime - self.process_started).min(i64::from(u32::MAX)) as RelTime;
        }
        (exptime + i64::from(self.now())).min(i64::from(u32::MAX)) as RelTime
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realtime_follows_memcached_rules() {
        let clock = Clock::manual(1_700_000_000);
        let now = clock.now();
        assert_eq!(clock.realtime(0), 0);
        assert_eq!(clock.realtime(-1), 1);
        assert_eq!(clock.realtime(10), now + 10);
        assert_eq!(
            clock.realtime(REALTIME_MAXDELTA),
            now + REALTIME_MAXDELTA as u32
        );
        // An absolute time in the past expires at once.
        assert_eq!(clock.realtime(REALTIME_MAXDELTA + 1), 1);
        // An absolute time 100 s from now is 100 s from now.
        assert_eq!(clock.realtime(clock.unix_now() + 100), now + 100);
    }

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let clock = Clock::manual(1_700_000_000);
        let t0 = clock.now();
        clock.tick();
        assert_eq!(clock.now(), t0);
        clock.advance(5);
        assert_eq!(clock.now(), t0 + 5);
        assert_eq!(clock.unix_now(), 1_700_000_005);
    }
}
